/*
 * Rate limiter (<troupe/actors/ratelimit.h>): a full bucket grants its
 * burst at once and no more; over a second the grants follow the rate,
 * in FIFO order; requests past the maximum wait are rejected at once;
 * multi-token requests are served in order; the synchronous try; an
 * actor as requester, also with a full mailbox; waiters answered when the
 * limiter stops; bad configuration and requests are refused.
 */
#include <troupe/actors/ratelimit.h>

#include <string.h>

#include "harness.h"
#include "fixture.h"

enum {
	MSG_GO = 1, /* probe -> requester: struct go */
	MSG_FWD,    /* requester -> probe: a reply, as received, + type */
	MSG_DONE,   /* requester -> probe: int32_t error of acquire */
};

/*
 * Grants follow the monotonic clock, so a grant is never ahead of the
 * rate: those lower bounds are checked, from a t0 read before the first
 * request. How late a grant is depends on the machine's load and is
 * printed, not checked. Where a test needs a token not to come back
 * while it looks, the rate is 1 per second and the tokens missing are
 * many, so that it takes many seconds. Waits for a condition fail after
 * WAIT_MS.
 */
#define WAIT_MS 30000

struct got {
	uint32_t type;
	tr_ratelimit_reply r;
	uint64_t at; /* ms since the test's t0 */
};

/* Takes one limiter reply from the probe. */
static bool
recv_reply(struct fx *f, uint64_t t0, struct got *g)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	memset(g, 0, sizeof(*g));
	if (tr_inbox_recv(f->ib, FX_REPLY_MS, &r) != TR_OK) {
		fprintf(stderr, "  probe: no reply\n");
		return false;
	}
	g->at = harness_now_ms() - t0;
	g->type = r.type;
	bool ok = (r.type == TR_MSG_RATELIMIT_GRANT ||
		   r.type == TR_MSG_RATELIMIT_REJECT) &&
		  r.size == sizeof(g->r);
	if (ok) {
		memcpy(&g->r, r.data, sizeof(g->r));
	} else {
		fprintf(stderr, "  probe: type %u size %zu is no reply\n",
			r.type, r.size);
	}
	tr_received_fini(&r);
	return ok;
}

static tr_ratelimit *
make(struct fx *f, uint32_t rate, uint32_t burst, int64_t max_wait_ms)
{
	tr_ratelimit_config c = {
		.size = sizeof(c),
		.rate = rate,
		.burst = burst,
		.max_wait_ms = max_wait_ms,
	};
	tr_ratelimit *rl = NULL;

	CHECK_OK(tr_ratelimit_create(f->rt, &c, &rl));
	return rl;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_burst_then_wait(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	/* 10 per second: the sixth token comes 100 ms after the fifth. */
	tr_ratelimit *rl = make(&f, 10, 5, 10000);
	uint64_t t0 = harness_now_ms();
	for (uint64_t i = 0; i < 6; i++) {
		CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, i,
					      TR_RATELIMIT_WAIT_DEFAULT));
	}
	for (uint64_t i = 0; i < 5; i++) {
		CHECK(recv_reply(&f, t0, &g));
		CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
		CHECK_EQ_U64(g.r.tag, i);
		CHECK_OK(g.r.status);
		CHECK_EQ_U64(g.r.tokens, 1);
		CHECK_EQ_U64(g.r.wait_ms, 0);
	}
	/* The sixth waits for a token that cannot be there before 100 ms
	 * (1 ms for the truncation of both clock reads). */
	CHECK(recv_reply(&f, t0, &g));
	printf("  sixth grant after %" PRIu64 " ms, waited %" PRIu64 " ms\n",
	       g.at, g.r.wait_ms);
	CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
	CHECK_EQ_U64(g.r.tag, 5);
	CHECK(g.at >= 99);
	/* It waited from when the limiter saw it, after t0. */
	CHECK(g.r.wait_ms <= g.at);
	CHECK(fx_recv_none(&f, 50));
	tr_ratelimit_destroy(rl);
	fx_finish(&f);
}

#define N_PRECISE 250

static void
test_rate_over_a_second(void)
{
	struct fx f;
	static struct got g[N_PRECISE];

	fx_start(&f, 2);
	tr_ratelimit *rl = make(&f, 200, 1, 0);
	uint64_t t0 = harness_now_ms();
	for (uint64_t i = 0; i < N_PRECISE; i++) {
		CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, i,
					      INT64_MAX));
	}
	unsigned in_order = 0, in_first_second = 0, early = 0;
	for (unsigned i = 0; i < N_PRECISE; i++) {
		if (!recv_reply(&f, t0, &g[i])) {
			break;
		}
		if (g[i].type == TR_MSG_RATELIMIT_GRANT && g[i].r.tag == i) {
			in_order++;
		}
		if (g[i].at < g[0].at + 1000) {
			in_first_second++; /* printed: it depends on the load */
		}
		/* Grant i needs i tokens after the first: never before
		 * 5 * i ms from t0 (1 ms for the truncation of both). */
		if (g[i].at + 1 < 5u * i) {
			early++;
		}
	}
	uint64_t span = g[N_PRECISE - 1].at - g[0].at;
	/* Each grant may be late, never early. How close the grants keep
	 * to the rate (200 in the first second, 1245 ms for all) is a
	 * matter of the machine's load: printed, not checked. */
	printf("  %u grants in the first second (200 on time), all %u in "
	       "%" PRIu64 " ms (1245 on time)\n",
	       in_first_second, N_PRECISE, span);
	CHECK_EQ_U64(in_order, N_PRECISE);
	CHECK_EQ_U64(early, 0);
	/* 249 intervals of 5 ms: 1245 ms, never less from t0 (taken before
	 * the first request). */
	CHECK(g[N_PRECISE - 1].at + 1 >= 1245);
	CHECK(fx_recv_none(&f, 50));
	tr_ratelimit_destroy(rl);
	fx_finish(&f);
}

static void
test_max_wait_rejects_at_once(void)
{
	struct fx f;
	struct got g;
	enum { N_QUEUED = 20 };

	fx_start(&f, 2);
	/*
	 * 1 per second, default max wait 10 s. The first request takes the
	 * only token; N_QUEUED more wait as long as it takes, so a request
	 * behind them needs about 20 s of tokens: more than the default 10 s
	 * (tag 100) and more than 0 (tag 101), so both are rejected at once,
	 * with how long they would have waited; one allowed ten minutes
	 * (tag 102) waits. Only a limiter 10 s late could see it otherwise.
	 */
	tr_ratelimit *rl = make(&f, 1, 1, 10000);
	uint64_t t0 = harness_now_ms();
	for (uint64_t k = 0; k <= N_QUEUED; k++) {
		CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, k,
					      INT64_MAX));
	}
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, 100,
				      TR_RATELIMIT_WAIT_DEFAULT));
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, 101, 0));
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, 102, 600000));
	/*
	 * Rejected at once like 101, and handled after 102 (one sender, one
	 * receiver: in order): its reject says 102 is queued in the limiter,
	 * so the stop below answers it instead of finding it still in the
	 * mailbox, where a stop that overtakes makes it a dead letter.
	 */
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, 103, 0));
	/* The first grant, then the three rejects; a grant that came in
	 * between is in order and never early. */
	unsigned grants = 0, rejects = 0, replies = 0;
	while (rejects < 3 && replies < N_QUEUED + 5) {
		if (!recv_reply(&f, t0, &g)) {
			break;
		}
		replies++;
		if (g.type == TR_MSG_RATELIMIT_GRANT) {
			CHECK_EQ_U64(g.r.tag, grants);
			CHECK_OK(g.r.status);
			/* The k-th grant needs k tokens after the first. */
			CHECK(g.at + 1 >= 1000u * grants);
			grants++;
			continue;
		}
		rejects++;
		CHECK_ERR(g.r.status, TR_EREJECTED);
		CHECK(g.r.tag == 100 || g.r.tag == 101 || g.r.tag == 103);
		if (g.r.tag == 100) {
			CHECK(g.r.wait_ms > 10000);
		} else {
			CHECK(g.r.wait_ms > 0);
		}
	}
	CHECK(grants >= 1);
	CHECK_EQ_U64(rejects, 3);
	/* The rest still wait: stopping the limiter answers each once (a
	 * grant sent before the stop may come first, in order). */
	tr_ratelimit_destroy(rl);
	bool seen102 = false;
	unsigned next = grants;
	for (unsigned k = grants; k <= N_QUEUED + 1; k++) {
		if (!recv_reply(&f, t0, &g)) {
			break;
		}
		if (g.type == TR_MSG_RATELIMIT_GRANT) {
			CHECK_EQ_U64(g.r.tag, next);
			CHECK(g.at + 1 >= 1000u * next);
			next++;
			continue;
		}
		CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_REJECT);
		CHECK_ERR(g.r.status, TR_ECLOSED);
		if (g.r.tag == 102) {
			seen102 = true;
		} else {
			CHECK_EQ_U64(g.r.tag, next);
			next++;
		}
	}
	CHECK(seen102);
	CHECK(fx_recv_none(&f, 50));
	fx_finish(&f);
}

static void
test_multi_token_fifo(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	/* 100 per second, burst 10. */
	tr_ratelimit *rl = make(&f, 100, 10, -1);
	/* Taken before the bucket empties, so that every due time below is
	 * a lower bound from t0. */
	uint64_t t0 = harness_now_ms();
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 10, 1, -1));
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
	CHECK_EQ_U64(g.r.tag, 1);
	CHECK_EQ_U64(g.r.tokens, 10);
	/* Empty now: 10 tokens in 100 ms, then 1 more in 10 ms. The single
	 * token must not overtake the ten queued before it. */
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 10, 2, -1));
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 1, 3, -1));
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 5, 4, -1));
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.r.tag, 2);
	CHECK(g.at >= 99);
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.r.tag, 3);
	CHECK(g.at >= 109);
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.r.tag, 4);
	CHECK_EQ_U64(g.r.tokens, 5);
	CHECK(g.at >= 159);
	CHECK(fx_recv_none(&f, 50));
	tr_ratelimit_destroy(rl);
	fx_finish(&f);
}

static void
test_try(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	/* 1 per second, burst 50: tokens taken do not come back for many
	 * seconds while the test looks. */
	tr_ratelimit *rl = make(&f, 1, 50, -1);
	CHECK_OK(tr_ratelimit_try(rl, 20));
	CHECK_OK(tr_ratelimit_try(rl, 10));
	/* 20 left: 40 would need 20 more, 20 s away. */
	CHECK_ERR(tr_ratelimit_try(rl, 40), TR_EREJECTED);
	CHECK_ERR(tr_ratelimit_try(rl, 51), TR_EINVAL);
	CHECK_ERR(tr_ratelimit_try(rl, 0), TR_EINVAL);
	CHECK_ERR(tr_ratelimit_try(NULL, 1), TR_EINVAL);
	/* A waiter for 50 is queued (30 s of tokens away): try may not
	 * overtake it, though the 20 tokens it would take are there. */
	CHECK_OK(
		tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 50, 7, INT64_MAX));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS)); /* it is queued */
	CHECK_ERR(tr_ratelimit_try(rl, 1), TR_EREJECTED);
	tr_ratelimit_destroy(rl);
	CHECK(recv_reply(&f, 0, &g));
	CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_REJECT);
	CHECK_EQ_U64(g.r.tag, 7);
	CHECK_ERR(g.r.status, TR_ECLOSED);

	/* Once the waiter had its tokens, try works again, not before the
	 * rate allows: 10 per second, the waiter's two at 200 ms after the
	 * bucket emptied, the next at 300 ms. */
	rl = make(&f, 10, 5, 10000);
	uint64_t t0 = harness_now_ms();
	CHECK_OK(tr_ratelimit_try(rl, 5));
	CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 2, 8, INT64_MAX));
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
	CHECK_EQ_U64(g.r.tag, 8);
	CHECK(g.at >= 199);
	CHECK(WAIT_UNTIL(tr_ratelimit_try(rl, 1) == TR_OK, WAIT_MS));
	uint64_t took = harness_now_ms() - t0;
	CHECK(took >= 299);
	tr_ratelimit_destroy(rl);
	fx_finish(&f);
}

/* ---- an actor as requester ------------------------------------------- */

struct go {
	tr_ratelimit *rl;
	uint32_t n;
	uint32_t until_full; /* stay in the handler until a reply is refused */
};

static void
requester_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO && m->size == sizeof(struct go)) {
		struct go g;
		int32_t err = 0;

		memcpy(&g, m->data, sizeof(g));
		*probe = tr_sender(cx);
		for (uint32_t i = 0; i < g.n && err == 0; i++) {
			err = tr_ratelimit_acquire(cx, g.rl, 1, i, INT64_MAX);
		}
		(void)tr_send(cx, *probe, MSG_DONE, &err, sizeof(err));
		if (g.until_full) {
			/* Grants queue up behind this turn until the bounded
			 * mailbox has refused one (or WAIT_MS passed: the test
			 * then finds no refusal and fails). */
			tr_runtime *rt = tr_ctx_runtime(cx);
			tr_metrics mt = { .size = sizeof(mt) };
			(void)tr_runtime_metrics(rt, &mt);
			uint64_t full0 = mt.mailbox_full;
			uint64_t until = harness_now_ms() + WAIT_MS;
			while (mt.mailbox_full == full0 &&
			       harness_now_ms() < until) {
				harness_nap_us(1000);
				(void)tr_runtime_metrics(rt, &mt);
			}
		}
		return;
	}
	if (m->type == TR_MSG_RATELIMIT_GRANT ||
	    m->type == TR_MSG_RATELIMIT_REJECT) {
		/* Forward as is: the probe reads it like a direct reply. */
		(void)tr_send(cx, *probe, m->type, m->data, m->size);
	}
}

static const tr_actor_def requester_def = {
	.size = sizeof(tr_actor_def),
	.name = "requester",
	.state_size = sizeof(tr_pid),
	.handle = requester_handle,
};

/* Mailbox of two: most grants are refused at first and sent again. */
static const tr_actor_def tight_requester_def = {
	.size = sizeof(tr_actor_def),
	.name = "tight-requester",
	.state_size = sizeof(tr_pid),
	.handle = requester_handle,
	.mailbox_bound = 2,
};

static void
run_requester(const tr_actor_def *def, uint32_t until_full)
{
	struct fx f;
	struct got g;
	int32_t err = -100;

	fx_start(&f, 2);
	/* Fast enough that grants come while the requester is busy. */
	tr_ratelimit *rl = make(&f, 1000, 5, -1);
	tr_pid a = fx_spawn(&f, def, NULL);
	struct go go = { .rl = rl, .n = 20, .until_full = until_full };
	uint64_t t0 = harness_now_ms();
	SEND(&f, a, MSG_GO, &go, sizeof(go));
	CHECK(fx_recv(&f, MSG_DONE, &err, sizeof(err)));
	CHECK_OK(err);
	for (uint64_t i = 0; i < 20; i++) {
		CHECK(recv_reply(&f, t0, &g));
		CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
		CHECK_EQ_U64(g.r.tag, i);
	}
	CHECK(fx_recv_none(&f, 50));
	if (def->mailbox_bound != 0) {
		CHECK(fx_metrics(&f).mailbox_full > 0);
	}
	tr_ratelimit_destroy(rl);
	fx_finish(&f);
}

static void
test_actor_requester(void)
{
	run_requester(&requester_def, 0);
}

static void
test_full_requester_mailbox(void)
{
	run_requester(&tight_requester_def, 1);
}

static void
test_stop_answers_waiters(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	/* 1 per second, 30 tokens a request: the next grant would come 30 s
	 * after the first. */
	tr_ratelimit *rl = make(&f, 1, 30, -1);
	tr_pid pid = tr_ratelimit_pid(rl);
	CHECK(!tr_pid_is_none(pid));
	uint64_t t0 = harness_now_ms();
	for (uint64_t i = 0; i < 4; i++) {
		CHECK_OK(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 30, i,
					      -1));
	}
	CHECK(recv_reply(&f, t0, &g));
	CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_GRANT);
	CHECK_EQ_U64(g.r.tag, 0);
	/* Stop the limiter long before the next grant. */
	CHECK(fx_recv_none(&f, 50));
	tr_ratelimit_destroy(rl);
	for (uint64_t i = 1; i < 4; i++) {
		CHECK(recv_reply(&f, t0, &g));
		CHECK_EQ_U64(g.type, TR_MSG_RATELIMIT_REJECT);
		CHECK_EQ_U64(g.r.tag, i);
		CHECK_ERR(g.r.status, TR_ECLOSED);
	}
	CHECK(fx_recv_none(&f, 50));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 1, WAIT_MS));
	fx_finish(&f);
}

static void
test_bad_config_and_requests(void)
{
	struct fx f;
	tr_ratelimit *rl = NULL;
	tr_ratelimit_config c = { .size = sizeof(c), .rate = 10, .burst = 5 };

	fx_start(&f, 1);
	c.rate = 0;
	CHECK_ERR(tr_ratelimit_create(f.rt, &c, &rl), TR_EINVAL);
	c.rate = 10;
	c.burst = 0;
	CHECK_ERR(tr_ratelimit_create(f.rt, &c, &rl), TR_EINVAL);
	c.burst = 5;
	c.size = sizeof(c) - 1;
	CHECK_ERR(tr_ratelimit_create(f.rt, &c, &rl), TR_EINVAL);
	c.size = sizeof(c);
	CHECK_ERR(tr_ratelimit_create(NULL, &c, &rl), TR_EINVAL);
	CHECK_ERR(tr_ratelimit_create(f.rt, NULL, &rl), TR_EINVAL);
	CHECK_ERR(tr_ratelimit_create(f.rt, &c, NULL), TR_EINVAL);
	CHECK(rl == NULL);
	CHECK_EQ_U64(fx_metrics(&f).actors_alive, 1);

	CHECK_OK(tr_ratelimit_create(f.rt, &c, &rl));
	CHECK_ERR(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 6, 1, -1),
		  TR_EINVAL);
	CHECK_ERR(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), rl, 0, 1, -1),
		  TR_EINVAL);
	CHECK_ERR(tr_ratelimit_acquire(tr_runtime_ctx(f.rt), rl, 1, 1, -1),
		  TR_EINVAL);
	CHECK_ERR(tr_ratelimit_acquire(tr_inbox_ctx(f.ib), NULL, 1, 1, -1),
		  TR_EINVAL);
	CHECK_ERR(tr_ratelimit_acquire(NULL, rl, 1, 1, -1), TR_EINVAL);
	/* A forged request without a sender is ignored, one with a bad
	 * token count is answered, neither crashes the limiter. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), tr_ratelimit_pid(rl),
			 TR_MSG_RATELIMIT_BASE + 0x80u, "junk", 4));
	CHECK(fx_recv_none(&f, 50));
	CHECK_OK(tr_ratelimit_try(rl, 5));
	tr_ratelimit_destroy(rl);
	tr_ratelimit_destroy(NULL);
	CHECK(tr_pid_is_none(tr_ratelimit_pid(NULL)));
	CHECK(fx_recv_none(&f, 50));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "ratelimit: the burst at once, then the rate", test_burst_then_wait },
	{ "ratelimit: 200 per second, in FIFO order, never ahead",
	  test_rate_over_a_second },
	{ "ratelimit: past the maximum wait is rejected at once",
	  test_max_wait_rejects_at_once },
	{ "ratelimit: N-token requests in FIFO order", test_multi_token_fifo },
	{ "ratelimit: try never waits and never overtakes", test_try },
	{ "ratelimit: an actor as requester", test_actor_requester },
	{ "ratelimit: a full requester mailbox delays, never loses",
	  test_full_requester_mailbox },
	{ "ratelimit: stopping answers the waiters",
	  test_stop_answers_waiters },
	{ "ratelimit: bad configuration and requests",
	  test_bad_config_and_requests },
	{ NULL, NULL },
};

TEST_MAIN(tests)
