/*
 * Requests: tr_request / tr_reply / tr_forward, and the inbox context.
 * Every request must have exactly one outcome at its requester: the reply,
 * or TR_MSG_REQUEST_FAILED with TR_EXIT_NOPROC, the target's exit reason,
 * or TR_EXIT_TIMEOUT. A late reply is a counted dead letter. No test here
 * depends on timing: timeouts are short where a timeout is the point, and
 * everything else waits for an event with FX_REPLY_MS as the failure.
 */
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

#include "harness.h"
#include "fixture.h"

enum {
	ECHO = 1,    /* int: reply with n + 1 */
	HOLD,        /* keep the request, answer on RELEASE */
	RELEASE,     /* answer the held request with 99 */
	DIE,         /* int32 reason: stop holding the request */
	START,       /* struct start, to a client */
	REPORT,      /* struct report, client -> probe */
	PLAIN_ECHO,  /* int: tr_reply to a plain send */
	ANSWER,
};

/* ---- server ---- */

struct server {
	tr_msg held; /* header of a held request (from, ref, flags) */
	bool holding;
	unsigned n; /* requests seen, for the stress's holds */
	unsigned hold_every;
};

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct server *s = state;
	const int *n = TR_MSG_AS(m, int);

	switch (m->type) {
	case ECHO:
	case PLAIN_ECHO:
		if (n != NULL) {
			int v = *n + 1;
			s->n++;
			if (s->hold_every != 0 && s->n % s->hold_every == 0) {
				break; /* never answered: its timeout answers */
			}
			CHECK_OK(tr_reply(cx, m, ANSWER, &v, sizeof(v)));
		}
		break;
	case HOLD:
		s->held = *m;
		s->held.data = NULL;
		s->held.size = 0;
		s->holding = true;
		break;
	case RELEASE:
		if (s->holding) {
			int v = 99;
			s->holding = false;
			CHECK_OK(tr_reply(cx, &s->held, ANSWER, &v, sizeof(v)));
		}
		break;
	case DIE: {
		const int32_t *why = TR_MSG_AS(m, int32_t);
		tr_stop_self(cx, why != NULL ? *why : TR_EXIT_ERROR);
		break;
	}
	default:
		break;
	}
}

static int
server_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	((struct server *)state)->hold_every =
		arg != NULL ? *(unsigned *)arg : 0;
	return 0;
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "server",
	.state_size = sizeof(struct server),
	.init = server_init,
	.handle = server_handle,
};

/* ---- router: forwards every request, optionally stops after ---- */

struct router_arg {
	tr_pid to;
	bool stop_after;
};

static int
router_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	memcpy(state, arg, sizeof(struct router_arg));
	return 0;
}

static void
router_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct router_arg *r = state;

	CHECK_OK(tr_forward(cx, r->to, m));
	if (r->stop_after) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def router_def = {
	.size = sizeof(tr_actor_def),
	.name = "router",
	.state_size = sizeof(struct router_arg),
	.init = router_init,
	.handle = router_handle,
};

/* ---- client: makes requests, reports every outcome ---- */

struct start {
	tr_pid to;
	tr_pid report_to;
	uint32_t type;
	int value;
	uint64_t timeout_ms;
	unsigned count; /* requests to make at once (stress) */
};

struct report {
	uint32_t type;    /* ANSWER or TR_MSG_REQUEST_FAILED */
	bool ref_matches; /* m->ref is one of ours, seen the first time */
	bool flagged;     /* TR_MSG_F_REPLY set */
	int value;        /* ANSWER's value */
	int32_t reason;   /* the failure's reason */
	tr_pid from;
	unsigned outcomes; /* stress: outcomes so far */
	unsigned dups;     /* stress: outcomes for a closed or foreign ref */
};

struct client {
	struct start st;
	uint64_t *refs; /* open references */
	unsigned nrefs;
	unsigned outcomes, dups;
};

static void
client_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct client *c = state;
	(void)cx;
	(void)reason;
	free(c->refs);
}

static void
client_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct client *c = state;

	if (m->type == START) {
		const struct start *st = TR_MSG_AS(m, struct start);
		CHECK(st != NULL);
		c->st = *st;
		unsigned k = st->count == 0 ? 1 : st->count;
		c->refs = calloc(k, sizeof(*c->refs));
		CHECK(c->refs != NULL);
		for (unsigned i = 0; i < k; i++) {
			tr_ref ref = { 0 };
			int v = st->value + (int)i;
			CHECK_OK(tr_request(cx, st->to, st->type, &v,
					    sizeof(v), st->timeout_ms, &ref));
			CHECK(ref.v != 0);
			c->refs[c->nrefs++] = ref.v;
		}
		return;
	}
	struct report r = { .type = m->type, .from = m->from };
	r.flagged = (m->flags & TR_MSG_F_REPLY) != 0;
	for (unsigned i = 0; i < c->nrefs; i++) {
		if (c->refs[i] == m->ref.v && m->ref.v != 0) {
			r.ref_matches = true;
			c->refs[i] = 0; /* closed: a second outcome is a dup */
			break;
		}
	}
	if (!r.ref_matches) {
		c->dups++;
	}
	c->outcomes++;
	if (m->type == ANSWER) {
		const int *v = TR_MSG_AS(m, int);
		r.value = v != NULL ? *v : -1;
	} else if (m->type == TR_MSG_REQUEST_FAILED) {
		const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);
		CHECK(f != NULL);
		if (f != NULL) {
			r.reason = f->reason;
			CHECK_EQ_U64(f->ref.v, m->ref.v);
		}
	}
	r.outcomes = c->outcomes;
	r.dups = c->dups;
	if (c->st.count <= 1 || c->outcomes == c->st.count) {
		CHECK_OK(tr_send(cx, c->st.report_to, REPORT, &r, sizeof(r)));
	}
}

static const tr_actor_def client_def = {
	.size = sizeof(tr_actor_def),
	.name = "client",
	.state_size = sizeof(struct client),
	.teardown = client_teardown,
	.handle = client_handle,
};

static tr_pid
start_client(struct fx *f, tr_pid to, uint32_t type, int value,
	     uint64_t timeout_ms)
{
	tr_pid c = fx_spawn(f, &client_def, NULL);
	struct start st = { .to = to, .report_to = f->probe, .type = type,
			    .value = value, .timeout_ms = timeout_ms };
	SEND(f, c, START, &st, sizeof(st));
	return c;
}

static struct report
recv_report(struct fx *f)
{
	struct report r;

	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(f, REPORT, &r, sizeof(r)));
	return r;
}

/* ---- tests ---- */

static void
test_reply(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, ECHO, 41, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 42);
	CHECK(r.ref_matches);
	CHECK(r.flagged);
	CHECK_EQ_U64(r.from.v, s.v);
	fx_finish(&f);
}

static void
test_noproc(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	int32_t why = TR_EXIT_NORMAL;
	SEND(&f, s, DIE, &why, sizeof(why));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	start_client(&f, s, ECHO, 1, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_NOPROC);
	CHECK(r.ref_matches);
	CHECK(r.flagged);
	fx_finish(&f);
}

static void
test_target_stops_holding(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, HOLD, 0, 0);
	/* The request is held once the server has handled it. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	int32_t why = TR_EXIT_USER + 44;
	SEND(&f, s, DIE, &why, sizeof(why));
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_USER + 44);
	CHECK(r.ref_matches);
	fx_finish(&f);
}

static void
test_timeout_then_late_reply(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, HOLD, 0, 20);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_TIMEOUT);
	CHECK(r.ref_matches);

	/* The server answers after all: a counted dead letter, nothing
	 * reaches the client (which would report it). */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	uint64_t dead = fx_metrics(&f).dead_letters;
	SEND(&f, s, RELEASE, NULL, 0);
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters > dead, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));

	/* The timeout cancelled the server's watch: its stop now fails
	 * nothing (a second outcome would be reported). */
	start_client(&f, s, HOLD, 0, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	int32_t why = TR_EXIT_USER;
	SEND(&f, s, DIE, &why, sizeof(why));
	r = recv_report(&f); /* the second client's request only */
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_USER);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

static void
test_forward(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	struct router_arg ra = { .to = s, .stop_after = false };
	tr_pid rt = fx_spawn(&f, &router_def, &ra);
	start_client(&f, rt, ECHO, 9, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 10);
	CHECK(r.ref_matches);
	CHECK_EQ_U64(r.from.v, s.v); /* answered by the server itself */

	/* A router that stops after forwarding does not fail the request:
	 * the watch moved to the server with it. */
	struct router_arg rb = { .to = s, .stop_after = true };
	tr_pid r2 = fx_spawn(&f, &router_def, &rb);
	start_client(&f, r2, HOLD, 0, 0);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, r2), FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	SEND(&f, s, RELEASE, NULL, 0);
	r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 99);
	CHECK(r.ref_matches);

	/* Forwarded to nobody: the request fails with noproc. */
	int32_t why = TR_EXIT_NORMAL;
	SEND(&f, s, DIE, &why, sizeof(why));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	start_client(&f, rt, ECHO, 1, 0);
	r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_NOPROC);
	fx_finish(&f);
}

static void
test_inbox_context(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	CHECK(cx != NULL);
	CHECK_EQ_U64(tr_self(cx).v, f.probe.v);
	tr_pid s = fx_spawn(&f, &server_def, NULL);

	/* A plain send, answered by tr_reply with a plain message, queued
	 * ahead of the request's reply. */
	int v = 1;
	CHECK_OK(tr_send(cx, s, PLAIN_ECHO, &v, sizeof(v)));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_ref ref = { 0 };
	v = 10;
	CHECK_OK(tr_request(cx, s, ECHO, &v, sizeof(v), 0, &ref));
	tr_received r;
	CHECK_OK(tr_inbox_recv_ref(f.ib, ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_U64(r.ref.v, ref.v);
	CHECK(r.flags & TR_MSG_F_REPLY);
	const int *got = TR_MSG_AS(&r, int);
	CHECK(got != NULL && *got == 11);
	CHECK(TR_MSG_AS(&r, int64_t) == NULL); /* size-checked */
	tr_received_fini(&r);
	/* The plain answer is still there, in order. */
	CHECK_OK(tr_inbox_recv(f.ib, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_U64(r.ref.v, 0);
	got = TR_MSG_AS(&r, int);
	CHECK(got != NULL && *got == 2);
	tr_received_fini(&r);

	/* A request's own timeout, seen by the receive. */
	CHECK_OK(tr_request(cx, s, HOLD, NULL, 0, 20, &ref));
	CHECK_OK(tr_inbox_recv_ref(f.ib, ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(fl != NULL && fl->reason == TR_EXIT_TIMEOUT &&
	      fl->ref.v == ref.v && fl->to.v == s.v);
	tr_received_fini(&r);

	/* The late answer is a dead letter, not a message. */
	uint64_t dead = fx_metrics(&f).dead_letters;
	CHECK_OK(tr_send(cx, s, RELEASE, NULL, 0));
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters > dead, FX_REPLY_MS));
	CHECK_ERR(tr_inbox_recv(f.ib, 0, &r), TR_ETIMEDOUT);

	/* Unknown target: noproc. Actor-only calls are refused. */
	int32_t why = TR_EXIT_NORMAL;
	CHECK_OK(tr_send(cx, s, DIE, &why, sizeof(why)));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	CHECK_OK(tr_request(cx, s, ECHO, &v, sizeof(v), 0, &ref));
	CHECK_OK(tr_inbox_recv_ref(f.ib, ref, FX_REPLY_MS, &r));
	fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOPROC);
	tr_received_fini(&r);
	uint64_t mref;
	CHECK_ERR(tr_monitor(cx, s, &mref), TR_EINVAL);
	CHECK_ERR(tr_link(cx, s), TR_EINVAL);
	fx_finish(&f);
}

/*
 * Many requesters, many requests open at once, servers that leave some
 * requests unanswered (their timeouts answer) and stop while requests are
 * queued or held: each request has exactly one outcome, and every message
 * is handled or a dead letter.
 */
static void
test_stress_one_outcome(void)
{
	enum { SERVERS = 4, CLIENTS = 40, EACH = 300 };
	struct fx f;
	fx_start(&f, 2);
	tr_pid servers[SERVERS];
	/* A spawn argument is read by init, later: it must outlive it. */
	static unsigned hold_every[SERVERS];
	for (unsigned i = 0; i < SERVERS; i++) {
		hold_every[i] = 7 + i;
		servers[i] = fx_spawn(&f, &server_def, &hold_every[i]);
	}
	for (unsigned i = 0; i < CLIENTS; i++) {
		tr_pid c = fx_spawn(&f, &client_def, NULL);
		struct start st = { .to = servers[i % SERVERS],
				    .report_to = f.probe,
				    .type = ECHO,
				    .timeout_ms = 50,
				    .count = EACH };
		SEND(&f, c, START, &st, sizeof(st));
	}
	/* Stop two servers while their queues are full of requests. */
	int32_t why = TR_EXIT_USER + 1;
	SEND(&f, servers[0], DIE, &why, sizeof(why));
	CHECK_OK(tr_runtime_stop_actor(f.rt, servers[1], TR_EXIT_USER + 2));
	unsigned done = 0;
	for (unsigned i = 0; i < CLIENTS; i++) {
		struct report r = recv_report(&f);
		CHECK_EQ_U64(r.outcomes, EACH);
		CHECK_EQ_U64(r.dups, 0);
		done++;
	}
	CHECK_EQ_U64(done, CLIENTS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "reply", test_reply },
	{ "noproc", test_noproc },
	{ "target_stops_holding", test_target_stops_holding },
	{ "timeout_then_late_reply", test_timeout_then_late_reply },
	{ "forward", test_forward },
	{ "inbox_context", test_inbox_context },
	{ "stress_one_outcome", test_stress_one_outcome },
	{ NULL, NULL },
};

TEST_MAIN(tests)
