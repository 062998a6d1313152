/*
 * Signals and name resolution on the I/O thread (<troupe/io.h>): SIGTERM
 * and SIGINT become TR_MSG_SIGNAL messages to the chosen actor, the
 * default target stops the runtime gracefully, and tr_resolve answers
 * exactly once with addresses or libuv's error name, without a worker
 * blocking.
 */
#include <troupe/troupe.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

enum {
	MSG_GO = 1,
	MSG_SIG_FWD, /* to the probe: int32_t signal number */
	MSG_RESOLVED,
	MSG_REPORT,
};

/* catcher: remembers the probe, forwards every TR_MSG_SIGNAL to it. */
static void
catcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		*probe = tr_sender(cx);
		(void)tr_send(cx, *probe, MSG_REPORT, NULL, 0);
	} else if (m->type == TR_MSG_SIGNAL) {
		(void)tr_send(cx, *probe, MSG_SIG_FWD, m->data, m->size);
	}
}

static const tr_actor_def catcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "catcher",
	.state_size = sizeof(tr_pid),
	.handle = catcher_handle,
};

static void
test_signals_to_actor(void)
{
	struct fx f;
	int32_t sig = 0;

	fx_start(&f, 2);
	tr_pid c = fx_spawn(&f, &catcher_def, NULL);
	SEND(&f, c, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, NULL, 0));
	CHECK_ERR(tr_runtime_handle_signals(NULL, c), TR_EINVAL);
	CHECK_OK(tr_runtime_handle_signals(f.rt, c));
	raise(SIGTERM);
	CHECK(fx_recv(&f, MSG_SIG_FWD, &sig, sizeof(sig)));
	CHECK_EQ_INT(sig, SIGTERM);
	raise(SIGINT);
	CHECK(fx_recv(&f, MSG_SIG_FWD, &sig, sizeof(sig)));
	CHECK_EQ_INT(sig, SIGINT);
	fx_finish(&f);
}

static void
test_signal_default_stops_runtime(void)
{
	tr_runtime *rt;
	tr_config cfg = tr_config_default();

	cfg.workers = 2;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	/* Not started yet: there is no I/O thread to install them. */
	CHECK_ERR(tr_runtime_handle_signals(rt, TR_PID_NONE), TR_ESTATE);
	CHECK_OK(tr_runtime_start(rt));
	tr_pid c;
	CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &catcher_def, NULL, &c));
	CHECK_OK(tr_runtime_handle_signals(rt, TR_PID_NONE));
	raise(SIGINT);
	/* join returns only once a stop was requested: the signal did it. */
	CHECK_OK(tr_runtime_join(rt));
	CHECK_ERR(tr_runtime_handle_signals(rt, TR_PID_NONE), TR_ECLOSED);
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

/* resolver: runs three resolutions and reports what came back. */
struct resolve_report {
	int32_t err[3];
	int32_t status[3];
	uint32_t count[3];
	int32_t family[3];
	uint32_t v4[3];
	char error[3][32];
};

struct resolver {
	tr_pid probe;
	unsigned got;
	struct resolve_report r;
};

static void
resolver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct resolver *s = state;

	if (m->type == MSG_GO) {
		s->probe = tr_sender(cx);
		/* Three requests; replies are told apart by type. */
		s->r.err[0] = tr_resolve(cx, "127.0.0.1", NULL, MSG_RESOLVED);
		/* Numeric hosts: no /etc/hosts or DNS server needed. */
		s->r.err[1] = tr_resolve(cx, "::1", "80", MSG_RESOLVED + 10);
		s->r.err[2] = tr_resolve(cx, "127.0.0.1", "no-such-service-xyz",
					 MSG_RESOLVED + 20);
		return;
	}
	unsigned i = m->type == MSG_RESOLVED        ? 0
		     : m->type == MSG_RESOLVED + 10 ? 1
		     : m->type == MSG_RESOLVED + 20 ? 2
						    : 3;
	const tr_resolved *res = TR_MSG_AS_FAM(m, tr_resolved, count, addrs);
	if (i == 3 || !(m->flags & TR_MSG_F_PTR) || res == NULL) {
		return;
	}
	s->r.status[i] = res->status;
	s->r.count[i] = res->count;
	memcpy(s->r.error[i], res->error, sizeof(res->error));
	if (res->count > 0) {
		const struct sockaddr_storage *ss =
			(const struct sockaddr_storage *)&res->addrs[0];
		s->r.family[i] = ss->ss_family;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *in =
				(const struct sockaddr_in *)&res->addrs[0];
			s->r.v4[i] = ntohl(in->sin_addr.s_addr);
		}
	}
	if (++s->got == 3) {
		(void)tr_send(cx, s->probe, MSG_REPORT, &s->r, sizeof(s->r));
	}
}

static const tr_actor_def resolver_def = {
	.size = sizeof(tr_actor_def),
	.name = "resolver",
	.state_size = sizeof(struct resolver),
	.handle = resolver_handle,
};

static void
test_resolve(void)
{
	struct fx f;
	struct resolve_report r;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &resolver_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	for (int i = 0; i < 3; i++) {
		CHECK_OK(r.err[i]);
	}
	CHECK_EQ_INT(r.status[0], 0);
	CHECK_EQ_U64(r.count[0], 1);
	CHECK_EQ_INT(r.family[0], AF_INET);
	CHECK_EQ_U64(r.v4[0], 0x7f000001u);
	CHECK_EQ_INT(r.status[1], 0);
	CHECK(r.count[1] >= 1);
	CHECK_EQ_INT(r.family[1], AF_INET6);
	CHECK(r.status[2] < 0);
	CHECK(strncmp(r.error[2], "EAI_", 4) == 0);
	printf("  ::1 port 80: %u addresses; bad service: %s\n", r.count[1],
	       r.error[2]);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "io: SIGTERM and SIGINT become messages to an actor",
	  test_signals_to_actor },
	{ "io: by default a signal stops the runtime gracefully",
	  test_signal_default_stops_runtime },
	{ "io: name resolution answers once, with addresses or an error",
	  test_resolve },
	{ NULL, NULL },
};

TEST_MAIN(tests)
