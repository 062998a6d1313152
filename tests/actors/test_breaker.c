/*
 * Circuit breaker (<troupe/actors/breaker.h>), mostly on a fake clock:
 * it opens after exactly N consecutive failures or on the failure rate
 * once the minimum of calls is there; open rejects; after the recovery
 * time exactly K trials pass; trials that succeed close it, one that
 * fails opens it again with a fresh recovery time; every change reaches
 * each subscriber once and in order; the same on the real clock; four
 * threads at once leave a gapless sequence of changes; bad input.
 */
#include <troupe/actors/breaker.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

struct fake_clock {
	_Atomic uint64_t now;
};

static uint64_t
fake_now(void *arg)
{
	struct fake_clock *c = arg;

	return atomic_load_explicit(&c->now, memory_order_relaxed);
}

static void
set_time(struct fake_clock *c, uint64_t ms)
{
	atomic_store_explicit(&c->now, ms, memory_order_relaxed);
}

static tr_breaker_config
config(struct fake_clock *c)
{
	tr_breaker_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.recovery_ms = 100;
	cfg.half_open_trials = 1;
	cfg.id = 42;
	if (c != NULL) {
		cfg.clock = fake_now;
		cfg.clock_arg = c;
	}
	return cfg;
}

/* One call through the breaker. Returns what allow() said. */
static int
call(tr_breaker *b, bool success)
{
	uint64_t t = 99;
	tr_err err = tr_breaker_allow(b, &t);

	if (err == TR_OK) {
		CHECK(t != 0);
		tr_breaker_record(b, t,
				  success ? TR_BREAKER_SUCCESS
					  : TR_BREAKER_FAILURE);
	} else {
		CHECK_EQ_U64(t, 0);
	}
	return err;
}

static tr_breaker_stats
stats(tr_breaker *b)
{
	tr_breaker_stats s;

	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	CHECK_OK(tr_breaker_snapshot(b, &s));
	return s;
}

/* Takes one state message from @ib; it must be @from -> @to. */
static bool
recv_change(tr_inbox *ib, int64_t ms, tr_breaker_change *c)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	memset(c, 0, sizeof(*c));
	if (tr_inbox_recv(ib, NULL, ms, &r) != TR_OK) {
		fprintf(stderr, "  subscriber: no state message\n");
		return false;
	}
	bool ok = r.type == TR_MSG_BREAKER_STATE && r.size == sizeof(*c);
	if (ok) {
		memcpy(c, r.data, sizeof(*c));
	}
	tr_received_fini(&r);
	return ok;
}

/*
 * Every change so far reached the probe once, numbered 1..changes, each
 * starting where the one before ended; then the final check.
 */
static void
finish(struct fx *f, tr_breaker *b)
{
	tr_breaker_stats s = stats(b);
	uint32_t state = TR_BREAKER_CLOSED;
	uint64_t gaps = 0, breaks = 0;

	for (uint64_t i = 1; i <= s.changes; i++) {
		tr_breaker_change c;
		if (!recv_change(f->ib, FX_REPLY_MS, &c)) {
			break;
		}
		gaps += c.seq != i;
		breaks += c.from != state || c.from == c.to;
		state = c.to;
	}
	CHECK_EQ_U64(gaps, 0);
	CHECK_EQ_U64(breaks, 0);
	CHECK_EQ_U64(state, s.state);
	CHECK_EQ_U64(s.send_errors, 0);
	CHECK(fx_recv_none(f, 20));
	tr_breaker_destroy(b);
	fx_finish(f);
}

/* A breaker on @rt whose changes go to the probe. */
static tr_breaker *
make(struct fx *f, const tr_breaker_config *cfg)
{
	tr_breaker *b = NULL;

	CHECK_OK(tr_breaker_create(f->rt, cfg, &b));
	CHECK_OK(tr_breaker_subscribe(b, f->probe));
	return b;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_consecutive_failures(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);

	fx_start(&f, 1);
	cfg.failure_threshold = 3;
	tr_breaker *b = make(&f, &cfg);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, true)); /* resets the run */
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, false)); /* the third in a row */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	/* Open rejects at once, and keeps rejecting. */
	for (int i = 0; i < 5; i++) {
		CHECK_ERR(call(b, true), TR_EREJECTED);
	}
	tr_breaker_stats s = stats(b);
	CHECK_EQ_U64(s.changes, 1);
	CHECK_EQ_U64(s.allowed, 6);
	CHECK_EQ_U64(s.rejected, 5);
	CHECK_EQ_U64(s.failures, 5);
	CHECK_EQ_U64(s.successes, 1);
	CHECK_EQ_U64(s.stale, 0);
	CHECK_EQ_U64(s.state, TR_BREAKER_OPEN);
	finish(&f, b);
}

static void
test_failure_rate(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);

	/* 50 % of the last 10, once 5 calls are in. */
	fx_start(&f, 1);
	cfg.window = 10;
	cfg.min_calls = 5;
	cfg.failure_rate_pct = 50;
	tr_breaker *b = make(&f, &cfg);
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false)); /* 100 %, but only 4 calls */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, false)); /* the fifth */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	finish(&f, b);

	fx_start(&f, 1);
	b = make(&f, &cfg);
	CHECK_OK(call(b, true));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, true));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, true)); /* 2 of 5: 40 % */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, false)); /* 3 of 6: 50 % */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	finish(&f, b);

	/* A sliding window: 75 % of the last 4; the oldest falls out. */
	cfg.window = 4;
	cfg.min_calls = 0; /* = the window */
	cfg.failure_rate_pct = 75;
	fx_start(&f, 1);
	b = make(&f, &cfg);
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, true));
	CHECK_OK(call(b, true));  /* F F S S: 50 % */
	CHECK_OK(call(b, false)); /* F S S F: 50 % */
	CHECK_OK(call(b, false)); /* S S F F: 50 % */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, false)); /* S F F F: 75 % */
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	CHECK_EQ_U64(stats(b).changes, 1);
	finish(&f, b);
}

static void
test_half_open_trials(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);
	uint64_t t1, t2, t3;

	fx_start(&f, 1);
	cfg.failure_threshold = 1;
	cfg.recovery_ms = 100;
	cfg.half_open_trials = 2;
	tr_breaker *b = make(&f, &cfg);
	set_time(&clk, 1000);
	CHECK_OK(call(b, false));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	set_time(&clk, 1099);
	CHECK_ERR(tr_breaker_allow(b, &t1), TR_EREJECTED);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	set_time(&clk, 1100);
	/* Exactly two trials, the third is rejected while they run. */
	CHECK_OK(tr_breaker_allow(b, &t1));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_HALF_OPEN);
	CHECK_OK(tr_breaker_allow(b, &t2));
	CHECK_ERR(tr_breaker_allow(b, &t3), TR_EREJECTED);
	tr_breaker_record(b, t1, TR_BREAKER_SUCCESS);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_HALF_OPEN);
	/* One trial done does not free a place for another. */
	CHECK_ERR(tr_breaker_allow(b, &t3), TR_EREJECTED);
	tr_breaker_record(b, t2, TR_BREAKER_SUCCESS);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	CHECK_OK(call(b, true));
	tr_breaker_stats s = stats(b);
	CHECK_EQ_U64(s.changes, 3); /* open, half-open, closed */
	CHECK_EQ_U64(s.rejected, 3);
	finish(&f, b);
}

/*
 * A trial whose caller stopped: released, it frees its place for another
 * trial instead of holding the breaker half-open with nothing to decide;
 * nothing is counted as a success or failure, and a stale or a CLOSED
 * release changes nothing.
 */
static void
test_release_frees_a_trial(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);
	uint64_t t0, t1, t2, t3;

	fx_start(&f, 1);
	cfg.failure_threshold = 1;
	cfg.recovery_ms = 100;
	cfg.half_open_trials = 1;
	tr_breaker *b = make(&f, &cfg);
	set_time(&clk, 1000);
	CHECK_OK(tr_breaker_allow(b, &t0)); /* from the CLOSED epoch */
	CHECK_OK(call(b, false));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	set_time(&clk, 1100);
	CHECK_OK(tr_breaker_allow(b, &t1));
	CHECK_ERR(tr_breaker_allow(b, &t2), TR_EREJECTED);
	/* A stale release frees nothing. */
	tr_breaker_record(b, t0, TR_BREAKER_RELEASED);
	CHECK_ERR(tr_breaker_allow(b, &t2), TR_EREJECTED);
	/* The trial's caller is gone: its place goes to the next call. */
	tr_breaker_record(b, t1, TR_BREAKER_RELEASED);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_HALF_OPEN);
	CHECK_OK(tr_breaker_allow(b, &t2));
	CHECK_ERR(tr_breaker_allow(b, &t3), TR_EREJECTED);
	tr_breaker_record(b, t2, TR_BREAKER_SUCCESS);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	/* Released while CLOSED: neither a success nor a failure. */
	CHECK_OK(tr_breaker_allow(b, &t3));
	tr_breaker_record(b, t3, TR_BREAKER_RELEASED);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_CLOSED);
	tr_breaker_stats s = stats(b);
	CHECK_EQ_U64(s.released, 2);
	CHECK_EQ_U64(s.stale, 1);
	CHECK_EQ_U64(s.failures, 1);
	CHECK_EQ_U64(s.successes, 1);
	CHECK_EQ_U64(s.changes, 3); /* open, half-open, closed */
	finish(&f, b);
}

static void
test_trial_failure_reopens(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);
	uint64_t t1, t2, t_old, t;

	fx_start(&f, 1);
	cfg.failure_threshold = 2;
	cfg.recovery_ms = 100;
	cfg.half_open_trials = 2;
	tr_breaker *b = make(&f, &cfg);
	/* A slow call allowed while closed, recorded much later. */
	CHECK_OK(tr_breaker_allow(b, &t_old));
	CHECK_OK(call(b, false));
	CHECK_OK(call(b, false));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	set_time(&clk, 100);
	CHECK_OK(tr_breaker_allow(b, &t1));
	CHECK_OK(tr_breaker_allow(b, &t2));
	/* The slow call's outcome must not count as a trial. */
	tr_breaker_record(b, t_old, TR_BREAKER_SUCCESS);
	tr_breaker_record(b, t_old, TR_BREAKER_FAILURE);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_HALF_OPEN);
	set_time(&clk, 150);
	tr_breaker_record(b, t1, TR_BREAKER_FAILURE);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	/* The other trial ends after the verdict: ignored. */
	tr_breaker_record(b, t2, TR_BREAKER_SUCCESS);
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_OPEN);
	/* A fresh recovery time from 150, not from the first opening. */
	set_time(&clk, 249);
	CHECK_ERR(tr_breaker_allow(b, &t), TR_EREJECTED);
	set_time(&clk, 250);
	CHECK_OK(tr_breaker_allow(b, &t));
	CHECK_EQ_INT(tr_breaker_current(b), TR_BREAKER_HALF_OPEN);
	tr_breaker_record(b, t, TR_BREAKER_SUCCESS);
	tr_breaker_stats s = stats(b);
	CHECK_EQ_U64(s.stale, 3);
	CHECK_EQ_U64(s.changes, 4);
	tr_breaker_record(b, 0, TR_BREAKER_FAILURE); /* no ticket: ignored */
	tr_breaker_record(NULL, t, TR_BREAKER_FAILURE);
	tr_breaker_record(b, t, (tr_breaker_outcome)7); /* unknown: ignored */
	tr_breaker_stats after = stats(b);
	CHECK_EQ_U64(after.stale, 3);
	CHECK_EQ_U64(after.successes, s.successes);
	CHECK_EQ_U64(after.failures, s.failures);
	CHECK_EQ_U64(after.released, s.released);
	finish(&f, b);
}

static void
test_changes_published_in_order(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);
	tr_breaker *b = NULL;
	tr_inbox *ib2 = NULL;
	tr_breaker_change c;

	fx_start(&f, 2);
	CHECK_OK(tr_inbox_create(f.rt, &ib2));
	cfg.failure_threshold = 1;
	cfg.recovery_ms = 10;
	CHECK_OK(tr_breaker_create(f.rt, &cfg, &b));
	CHECK_OK(tr_breaker_subscribe(b, f.probe));
	CHECK_OK(tr_breaker_subscribe(b, tr_self(tr_inbox_ctx(ib2))));
	CHECK_ERR(tr_breaker_subscribe(b, f.probe), TR_EEXIST);

	static const uint32_t want[][2] = {
		{ TR_BREAKER_CLOSED, TR_BREAKER_OPEN },
		{ TR_BREAKER_OPEN, TR_BREAKER_HALF_OPEN },
		{ TR_BREAKER_HALF_OPEN, TR_BREAKER_OPEN },
		{ TR_BREAKER_OPEN, TR_BREAKER_HALF_OPEN },
		{ TR_BREAKER_HALF_OPEN, TR_BREAKER_CLOSED },
	};
	static const uint64_t at[] = { 0, 10, 10, 20, 20 };
	CHECK_OK(call(b, false)); /* closed -> open at 0 */
	set_time(&clk, 10);
	CHECK_OK(call(b, false)); /* -> half-open, -> open at 10 */
	set_time(&clk, 20);
	CHECK_OK(call(b, true)); /* -> half-open, -> closed at 20 */
	for (int sub = 0; sub < 2; sub++) {
		tr_inbox *ib = sub == 0 ? f.ib : ib2;
		for (uint64_t i = 0; i < 5; i++) {
			CHECK(recv_change(ib, FX_REPLY_MS, &c));
			CHECK_EQ_U64(c.id, 42);
			CHECK_EQ_U64(c.seq, i + 1);
			CHECK_EQ_U64(c.from, want[i][0]);
			CHECK_EQ_U64(c.to, want[i][1]);
			CHECK_EQ_U64(c.at_ms, at[i]);
		}
	}
	/* Exactly once: nothing more for either. */
	CHECK(fx_recv_none(&f, 50));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_ERR(tr_inbox_recv(ib2, NULL, 0, &r), TR_ETIMEDOUT);

	/* After unsubscribing, only the other hears of the next change. */
	CHECK_OK(tr_breaker_unsubscribe(b, tr_self(tr_inbox_ctx(ib2))));
	CHECK_ERR(tr_breaker_unsubscribe(b, tr_self(tr_inbox_ctx(ib2))),
		  TR_ENOENT);
	CHECK_OK(call(b, false));
	CHECK(recv_change(f.ib, FX_REPLY_MS, &c));
	CHECK_EQ_U64(c.seq, 6);
	CHECK_EQ_U64(c.to, TR_BREAKER_OPEN);
	CHECK_ERR(tr_inbox_recv(ib2, NULL, 50, &r), TR_ETIMEDOUT);
	CHECK_EQ_U64(stats(b).send_errors, 0);
	tr_breaker_destroy(b);
	tr_inbox_destroy(ib2);
	fx_finish(&f);
}

static void
test_real_clock_half_opens(void)
{
	struct fx f;
	tr_breaker_config cfg = config(NULL);
	tr_breaker *b = NULL;
	tr_breaker_change c;
	uint64_t t;

	fx_start(&f, 1);
	cfg.failure_threshold = 1;
	cfg.recovery_ms = 50;
	CHECK_OK(tr_breaker_create(f.rt, &cfg, &b));
	CHECK_OK(tr_breaker_subscribe(b, f.probe));
	uint64_t t0 = harness_now_ms();
	CHECK_OK(call(b, false));
	CHECK(recv_change(f.ib, FX_REPLY_MS, &c));
	CHECK_EQ_U64(c.to, TR_BREAKER_OPEN);
	CHECK(WAIT_UNTIL(tr_breaker_current(b) == TR_BREAKER_HALF_OPEN, 30000));
	uint64_t took = harness_now_ms() - t0;
	printf("  half-open after %" PRIu64 " ms (recovery 50 ms)\n", took);
	CHECK(took >= 49);
	CHECK(recv_change(f.ib, FX_REPLY_MS, &c));
	CHECK_EQ_U64(c.to, TR_BREAKER_HALF_OPEN);
	CHECK_EQ_U64(c.seq, 2);
	CHECK(c.at_ms >= 50);
	CHECK_OK(tr_breaker_allow(b, &t));
	tr_breaker_record(b, t, TR_BREAKER_SUCCESS);
	CHECK(recv_change(f.ib, FX_REPLY_MS, &c));
	CHECK_EQ_U64(c.to, TR_BREAKER_CLOSED);
	CHECK(fx_recv_none(&f, 50));
	tr_breaker_destroy(b);
	fx_finish(&f);
}

/* ---- four threads ------------------------------------------------------ */

#define N_THREADS 4
#define N_CALLS   20000

struct hammer {
	tr_breaker *b;
	struct fake_clock *clk;
	unsigned seed;
	uint64_t calls;
};

static void *
hammer_run(void *arg)
{
	struct hammer *h = arg;
	uint32_t x = h->seed;

	for (int i = 0; i < N_CALLS; i++) {
		uint64_t t;

		/* xorshift: a cheap private random stream per thread. */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		atomic_fetch_add_explicit(&h->clk->now, 1,
					  memory_order_relaxed);
		if (tr_breaker_allow(h->b, &t) == TR_OK) {
			/* A slow call now and then, so that outcomes also
			 * arrive after the state they were allowed in. */
			if (x % 8 == 0) {
				sched_yield();
			}
			/* Mostly failures, so that it trips often. */
			tr_breaker_record(h->b, t,
					  (x % 100) < 40 ? TR_BREAKER_SUCCESS
							 : TR_BREAKER_FAILURE);
		}
		h->calls++;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct fx f;
	struct fake_clock clk = { 0 };
	tr_breaker_config cfg = config(&clk);
	pthread_t th[N_THREADS];
	struct hammer h[N_THREADS];

	fx_start(&f, 2);
	cfg.failure_threshold = 3;
	cfg.window = 10;
	cfg.min_calls = 5;
	cfg.failure_rate_pct = 60;
	cfg.recovery_ms = 20;
	cfg.half_open_trials = 2;
	tr_breaker *b = make(&f, &cfg);
	for (int i = 0; i < N_THREADS; i++) {
		h[i] = (struct hammer){ .b = b,
					.clk = &clk,
					.seed = 2463534242u + (unsigned)i };
		CHECK(pthread_create(&th[i], NULL, hammer_run, &h[i]) == 0);
	}
	uint64_t calls = 0;
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(th[i], NULL);
		calls += h[i].calls;
	}
	tr_breaker_stats s = stats(b);
	printf("  %" PRIu64 " changes; %" PRIu64 " allowed, %" PRIu64
	       " rejected, %" PRIu64 " stale\n",
	       s.changes, s.allowed, s.rejected, s.stale);
	CHECK_EQ_U64(calls, N_THREADS * N_CALLS);
	CHECK_EQ_U64(s.allowed + s.rejected, calls);
	/* Every allowed call was recorded once: counted or stale. */
	CHECK_EQ_U64(s.successes + s.failures + s.stale, s.allowed);
	CHECK(s.changes >= 3);
	/* The subscriber saw 1..changes, in order, without a gap. */
	finish(&f, b);
}

static void
test_bad_input(void)
{
	struct fx f;
	tr_breaker_config cfg = config(NULL);
	tr_breaker *b = NULL;
	uint64_t t;

	fx_start(&f, 1);
	cfg.failure_threshold = 3;
	CHECK_ERR(tr_breaker_create(NULL, NULL, &b), TR_EINVAL);
	CHECK_ERR(tr_breaker_create(NULL, &cfg, NULL), TR_EINVAL);
	cfg.size = sizeof(cfg) - 1;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.size = sizeof(cfg);
	cfg.failure_threshold = 0; /* no rule at all */
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.window = 10;
	cfg.failure_rate_pct = 0;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.failure_rate_pct = 101;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.failure_rate_pct = 50;
	cfg.min_calls = 11;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.min_calls = 5;
	cfg.window = 65537;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	cfg.window = 10;
	cfg.half_open_trials = 0;
	CHECK_ERR(tr_breaker_create(NULL, &cfg, &b), TR_EINVAL);
	CHECK(b == NULL);
	cfg.half_open_trials = 1;
	CHECK_OK(tr_breaker_create(NULL, &cfg, &b));
	/* Without a runtime there is nobody to send to. */
	CHECK_ERR(tr_breaker_subscribe(b, TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_breaker_subscribe(NULL, TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_breaker_unsubscribe(NULL, TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_breaker_allow(NULL, &t), TR_EINVAL);
	CHECK_ERR(tr_breaker_allow(b, NULL), TR_EINVAL);
	CHECK_ERR(tr_breaker_snapshot(NULL, NULL), TR_EINVAL);
	tr_breaker_stats s = { .size = 4 };
	CHECK_ERR(tr_breaker_snapshot(b, &s), TR_EINVAL);
	CHECK_EQ_INT(tr_breaker_current(NULL), TR_BREAKER_CLOSED);
	CHECK(strcmp(tr_breaker_state_name(TR_BREAKER_HALF_OPEN),
		     "half-open") == 0);
	CHECK(strcmp(tr_breaker_state_name(7), "?") == 0);
	tr_breaker_destroy(b);
	tr_breaker_destroy(NULL);

	/* A subscriber needs a runtime. */
	CHECK_OK(tr_breaker_create(NULL, &cfg, &b));
	CHECK_ERR(tr_breaker_subscribe(b, f.probe), TR_EINVAL);
	tr_breaker_destroy(b);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "breaker: opens after exactly N consecutive failures",
	  test_consecutive_failures },
	{ "breaker: opens on the failure rate after the minimum of calls",
	  test_failure_rate },
	{ "breaker: half-open lets exactly K trials through",
	  test_half_open_trials },
	{ "breaker: a released trial frees its place, counts nothing",
	  test_release_frees_a_trial },
	{ "breaker: a failed trial opens it with a fresh recovery time",
	  test_trial_failure_reopens },
	{ "breaker: each change reaches every subscriber once, in order",
	  test_changes_published_in_order },
	{ "breaker: half-opens on the real clock", test_real_clock_half_opens },
	{ "breaker: four threads, a gapless sequence of changes",
	  test_threads },
	{ "breaker: bad input", test_bad_input },
	{ NULL, NULL },
};

TEST_MAIN(tests)
