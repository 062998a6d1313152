/*
 * Allocation faults in the distribution layer (after
 * tests/fault/fault_alloc.c): for N = 1, 2, 3, ... the N-th allocation of
 * net/ (net/alloc.h) fails in a run of two nodes that connect, answer a
 * request across the link and stop, until a run ends without reaching
 * its fault. Each run checks that:
 *   - tr_net_start() and tr_net_connect() either work or say TR_ENOMEM;
 *   - once both nodes run and the connect was taken, the link comes up
 *     (a failure inside a link closes it, and the dialer dials again);
 *   - the request gets exactly one outcome: its reply, or a failure;
 *   - every message of each node is handled or a counted dead letter
 *     (check_final_metrics), and nothing crashes or leaks (ASan).
 * Allocations on other threads make the N-th one differ between runs, so
 * the sweep covers the sites it meets, not a fixed list.
 */
#include <string.h>

#include <troupe/net/net.h>

#include "fixture.h"
#include "net/alloc.h"

static const char secret[] = "a cluster secret of some length";

enum { ECHO = 1 };

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == ECHO) {
		(void)tr_reply(cx, m, ECHO, m->data, m->size);
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

static tr_err
net_start(struct fx *f, const char *name, tr_net **out)
{
	tr_net_config cfg = { .size = sizeof(cfg),
			      .name = name,
			      .listen = "tcp://127.0.0.1:0",
			      .secret = secret,
			      .secret_len = strlen(secret),
			      .heartbeat_ms = 200,
			      .timeout_ms = 20000,
			      .reconnect_min_ms = 20,
			      .reconnect_max_ms = 200 };

	*out = NULL;
	return tr_net_start(f->rt, &cfg, out);
}

static bool
is_up(tr_net *net, const char *peer)
{
	tr_net_node v[8];
	size_t k = tr_net_nodes(net, v, 8);

	for (size_t i = 0; i < k && i < 8; i++) {
		if (strcmp(v[i].name, peer) == 0 && v[i].state == TR_NET_UP) {
			return true;
		}
	}
	return false;
}

/* One run; false when it ended without reaching the armed fault. */
static bool
scenario(uint64_t fail_at, unsigned *outcomes)
{
	struct fx a, b;
	tr_net *na = NULL, *nb = NULL;
	char addr[160];

	fx_start(&a, 2);
	fx_start(&b, 2);
	uint64_t count0 = trn_alloc_count();
	trn_alloc_fail_after(fail_at);
	tr_err ea = net_start(&a, "alpha", &na);
	tr_err eb = net_start(&b, "beta", &nb);
	CHECK(ea == TR_OK || ea == TR_ENOMEM);
	CHECK(eb == TR_OK || eb == TR_ENOMEM);
	tr_err ec = TR_ENOMEM;
	if (na != NULL && nb != NULL) {
		CHECK_OK(tr_net_address(na, addr, sizeof(addr)));
		ec = tr_net_connect(nb, addr);
		CHECK(ec == TR_OK || ec == TR_ENOMEM);
	}
	if (ec == TR_OK) {
		CHECK(WAIT_UNTIL(is_up(nb, "alpha") && is_up(na, "beta"),
				 FX_REPLY_MS));
		unsigned char buf[TR_NET_PID_SIZE];
		tr_pid e = fx_spawn(&a, &echo_def, NULL), far = TR_PID_NONE;
		CHECK_OK(tr_net_pid_encode(na, e, buf));
		CHECK_OK(tr_net_pid_decode(nb, buf, &far));
		int v = 7;
		tr_ref ref;
		CHECK_OK(tr_request(tr_inbox_ctx(b.ib), far, ECHO, &v,
				    sizeof(v), 5000, &ref));
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(b.ib, &ref, FX_REPLY_MS, &r) == TR_OK) {
			const int *back = TR_MSG_AS(&r, int);
			CHECK((r.type == ECHO && back != NULL && *back == 7) ||
			      r.type == TR_MSG_REQUEST_FAILED);
			(*outcomes)++;
			tr_received_fini(&r);
		} else {
			CHECK(!"the request got no outcome");
		}
	}
	bool reached = trn_alloc_count() - count0 >= fail_at;
	trn_alloc_fail_after(0);
	tr_inbox_destroy(a.ib);
	tr_inbox_destroy(b.ib);
	tr_runtime_stop(a.rt);
	tr_runtime_stop(b.rt);
	CHECK_OK(tr_runtime_join(a.rt));
	CHECK_OK(tr_runtime_join(b.rt));
	tr_net_stop(na);
	tr_net_stop(nb);
	check_final_metrics(a.rt);
	check_final_metrics(b.rt);
	tr_runtime_destroy(a.rt);
	tr_runtime_destroy(b.rt);
	return reached;
}

static void
test_every_allocation(void)
{
	unsigned outcomes = 0;
	uint64_t n = 1;

	while (scenario(n, &outcomes) && n < 2000) {
		n++;
	}
	CHECK(n > 10);   /* the runs did allocate */
	CHECK(n < 2000); /* and one ran out of faults to meet */
	CHECK(outcomes > 0);
	printf("net fault: %llu runs, %u requests answered or failed\n",
	       (unsigned long long)n, outcomes);
}

static const struct test_case tests[] = {
	{ "every allocation of net/ fails once", test_every_allocation },
	{ NULL, NULL },
};

TEST_MAIN(tests)
