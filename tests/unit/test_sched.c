/*
 * Scheduler tests: work queued behind a long handler is taken by another
 * worker, whatever that worker was doing (asleep on its futex, asleep in
 * a poll of an I/O loop, spinning), with both I/O modes.
 *
 * The long handler L computes until the short handler S has run, so a
 * test passes only if some other worker runs S while L's turn lasts: with
 * nobody to take S, L would wait for ever, and its deadline of many
 * seconds is the failure. Each trial starts with every worker asleep, so
 * that nothing but the scheduler's rescue can wake one. Nothing here
 * depends on how fast anything is.
 *
 * Handlers run on worker threads, so they never call CHECK: they report
 * to the probe inbox or through atomics, and the test thread checks.
 */
#include <troupe/troupe.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#define FX_REPLY_MS 90000 /* longer than L waits for S */
#include "fixture.h"
#include "runtime/runtime.h"

/* Deadlines, generous so that the suite also passes under ThreadSanitizer
 * on a loaded machine: reaching one is a failure. */
#define WAIT_MS 30000
#define LONG_MS 30000

enum {
	MSG_GO = 1,   /* to L: struct go; compute until S ran, then MSG_DONE */
	MSG_GO_THEN,  /* to L: struct go; send S its request first */
	MSG_DISPATCH, /* to D: struct go; send S its request, then L its GO */
	MSG_REQ,      /* to S: mark that S ran */
	MSG_DONE,     /* L to the probe: uint32_t, 1 if L gave up waiting */
	MSG_CPUS,     /* to W: reply MSG_CPUS, uint32_t, the CPUs it may use */
};

struct go {
	tr_pid s;
	tr_pid l;
	tr_pid report;
};

/* seq_cst: S's store is what L's loop and the test thread wait for. */
static atomic_int s_ran;

static uint64_t
ms_now(void)
{
	return harness_now_ms();
}

static void
long_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct go g;

	(void)state;
	if (!payload(m, &g, sizeof(g))) {
		return;
	}
	if (m->type == MSG_GO_THEN) {
		/* S lands in this worker's next slot, behind this turn. */
		tr_send(cx, g.s, MSG_REQ, NULL, 0);
	}
	uint64_t until = ms_now() + LONG_MS;
	uint32_t gave_up = 0;
	while (atomic_load(&s_ran) == 0) {
		if (ms_now() > until) {
			gave_up = 1;
			break;
		}
	}
	tr_send(cx, g.report, MSG_DONE, &gave_up, sizeof(gave_up));
}

static void
short_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == MSG_REQ) {
		atomic_store(&s_ran, 1);
	}
}

/*
 * Sends S its request and then L its GO in one turn: both become runnable
 * on this worker, L in the next slot and S in the ring behind it, and a
 * lone queued actor wakes nobody.
 */
static void
dispatch_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct go g;

	(void)state;
	if (m->type != MSG_DISPATCH || !payload(m, &g, sizeof(g))) {
		return;
	}
	tr_send(cx, g.s, MSG_REQ, NULL, 0);
	tr_send(cx, g.l, MSG_GO, &g, sizeof(g));
}

static const tr_actor_def long_def = {
	.size = sizeof(tr_actor_def),
	.name = "long",
	.handle = long_handle,
};

static const tr_actor_def short_def = {
	.size = sizeof(tr_actor_def),
	.name = "short",
	.handle = short_handle,
};

static const tr_actor_def dispatch_def = {
	.size = sizeof(tr_actor_def),
	.name = "dispatch",
	.handle = dispatch_handle,
};

/* Reports how many CPUs the worker running it may use. */
static void
cpus_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	cpu_set_t set;
	uint32_t n = 0;

	(void)state;
	if (m->type != MSG_CPUS) {
		return;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		n = (uint32_t)CPU_COUNT(&set);
	}
	tr_send(cx, m->from, MSG_CPUS, &n, sizeof(n));
}

static const tr_actor_def cpus_def = {
	.size = sizeof(tr_actor_def),
	.name = "cpus",
	.handle = cpus_handle,
};

/* How L and S are started. */
enum how {
	/* One turn of D sends to both: they queue on one worker. */
	BY_DISPATCH,
	/* L's own turn sends to S: S waits in that worker's next slot. */
	BY_LONG,
	/* A foreign thread sends L's GO and, right after, S's request. */
	BY_FOREIGN,
};

/* Every worker counts as asleep: on its futex or in a poll of a loop. */
static bool
all_asleep(tr_runtime *rt, unsigned workers)
{
	return atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) ==
	       workers;
}

/* Run @trials trials; stop at the first failure (each costs LONG_MS). */
static void
rescue_trials(unsigned io_dedicated, enum how how, unsigned trials,
	      unsigned pin)
{
	const unsigned workers = 2;
	struct fx f;
	tr_config cfg = tr_config_default();

	cfg.workers = workers;
	cfg.io_dedicated = io_dedicated;
	cfg.pin_workers = pin;
	fx_start_cfg(&f, &cfg);
	struct go g = {
		.s = fx_spawn(&f, &short_def, NULL),
		.l = fx_spawn(&f, &long_def, NULL),
		.report = f.probe,
	};
	tr_pid d = fx_spawn(&f, &dispatch_def, NULL);

	for (unsigned i = 0; i < trials; i++) {
		atomic_store(&s_ran, 0);
		CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
		if (!WAIT_UNTIL(all_asleep(f.rt, workers), WAIT_MS)) {
			break;
		}
		switch (how) {
		case BY_DISPATCH:
			SEND(&f, d, MSG_DISPATCH, &g, sizeof(g));
			break;
		case BY_LONG:
			SEND(&f, g.l, MSG_GO_THEN, &g, sizeof(g));
			break;
		case BY_FOREIGN:
			SEND(&f, g.l, MSG_GO, &g, sizeof(g));
			CHECK_OK(tr_send(tr_runtime_ctx(f.rt), g.s, MSG_REQ,
					 NULL, 0));
			break;
		}
		uint32_t gave_up = 1;
		CHECK(fx_recv(&f, MSG_DONE, &gave_up, sizeof(gave_up)));
		CHECK_EQ_U64(gave_up, 0);
		CHECK_EQ_INT(atomic_load(&s_ran), 1);
		if (gave_up != 0) {
			fprintf(stderr,
				"  trial %u: S never ran while L "
				"computed\n",
				i);
			break;
		}
	}
	fx_finish(&f);
}

static void
test_dispatch_futex(void)
{
	rescue_trials(1, BY_DISPATCH, 20, 0);
}

static void
test_dispatch_poll(void)
{
	rescue_trials(0, BY_DISPATCH, 20, 0);
}

static void
test_next_slot_futex(void)
{
	rescue_trials(1, BY_LONG, 20, 0);
}

static void
test_next_slot_poll(void)
{
	rescue_trials(0, BY_LONG, 20, 0);
}

static void
test_foreign_futex(void)
{
	rescue_trials(1, BY_FOREIGN, 200, 0);
}

static void
test_foreign_poll(void)
{
	rescue_trials(0, BY_FOREIGN, 200, 0);
}

/*
 * pin_workers: every worker may use exactly one CPU (whichever worker runs
 * the probe actor, each time), and the rescue still works pinned. On a
 * one-CPU machine both workers share that CPU: the rescue then needs the
 * kernel to preempt L, which it does within its time slice.
 */
static void
test_pinned(void)
{
	struct fx f;
	tr_config cfg = tr_config_default();

	cfg.workers = 2;
	cfg.pin_workers = 1;
	fx_start_cfg(&f, &cfg);
	for (unsigned i = 0; i < 20; i++) {
		tr_pid w = fx_spawn(&f, &cpus_def, NULL);
		uint32_t n = 0;

		SEND(&f, w, MSG_CPUS, NULL, 0);
		CHECK(fx_recv(&f, MSG_CPUS, &n, sizeof(n)));
		CHECK_EQ_U64(n, 1);
	}
	fx_finish(&f);
	rescue_trials(0, BY_DISPATCH, 20, 1);
	rescue_trials(1, BY_FOREIGN, 20, 1);
}

/*
 * A sender muted on a receiver stuck in a long turn can still be stopped.
 * The flooder F sends the sink K 300 messages per turn, the first time
 * followed by a block, and posts itself the next turn. K is first held in
 * a gate until F's first turn is done, so that K's next turn finds more
 * than a batch queued and uses its whole batch: K is overloaded from then
 * on (only a turn that ends short of its batch clears that). Then K
 * reaches the block and stays in it until the test lets it go, so F is
 * muted on K with its next turn queued and nothing will unmute it. A stop
 * of F must not wait for K: F's stop is seen (an actor stopped) while K
 * still blocks. Without the release, F stays parked until K catches up,
 * which it does only after the wait below ran out.
 */
enum {
	MSG_FLOOD = 10, /* to F: struct flood; and F's own next turn */
	MSG_DATA,       /* F to K */
	MSG_GATE,       /* to K: wait until `k_fill` */
	MSG_BLOCK,      /* F to K: block until `k_go` */
};

struct flood {
	tr_pid k;
	uint32_t turns;
};

/* seq_cst: set by the test thread, or by an actor for the test thread. */
static atomic_int k_fill, k_go, k_blocked, f_turns;

static void
flood_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct flood *f = state;
	const struct flood *first = TR_MSG_AS(m, struct flood);

	if (m->type != MSG_FLOOD) {
		return;
	}
	if (first != NULL) {
		*f = *first;
	}
	for (unsigned i = 0; i < 300; i++) {
		tr_send(cx, f->k, MSG_DATA, NULL, 0);
	}
	if (f->turns++ == 0) {
		tr_send(cx, f->k, MSG_BLOCK, NULL, 0);
	}
	tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0);
	atomic_fetch_add(&f_turns, 1);
}

/* Wait until @flag is set, or for longer than the test waits for anything:
 * K gives up only after the test has failed. */
static void
wait_flag(atomic_int *flag)
{
	uint64_t until = ms_now() + 2 * WAIT_MS;

	while (atomic_load(flag) == 0 && ms_now() < until) {
		sched_yield();
	}
}

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == MSG_GATE) {
		wait_flag(&k_fill);
	} else if (m->type == MSG_BLOCK) {
		atomic_store(&k_blocked, 1);
		wait_flag(&k_go);
	}
}

static const tr_actor_def flood_def = {
	.size = sizeof(tr_actor_def),
	.name = "flood",
	.state_size = sizeof(struct flood),
	.handle = flood_handle,
};

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.handle = sink_handle,
};

static void
stop_muted(unsigned io_dedicated)
{
	struct fx f;
	tr_config cfg = tr_config_default();

	cfg.workers = 2;
	cfg.io_dedicated = io_dedicated;
	fx_start_cfg(&f, &cfg);
	atomic_store(&k_fill, 0);
	atomic_store(&k_go, 0);
	atomic_store(&k_blocked, 0);
	atomic_store(&f_turns, 0);
	tr_pid k = fx_spawn(&f, &sink_def, NULL);
	tr_pid fl = fx_spawn(&f, &flood_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	tr_metrics before = fx_metrics(&f);
	struct flood go = { k, 0 };

	SEND(&f, k, MSG_GATE, NULL, 0);
	SEND(&f, fl, MSG_FLOOD, &go, sizeof(go));
	CHECK(WAIT_UNTIL(atomic_load(&f_turns) >= 1, WAIT_MS));
	atomic_store(&k_fill, 1);
	CHECK(WAIT_UNTIL(atomic_load(&k_blocked) == 1, WAIT_MS));
	CHECK(WAIT_UNTIL(fx_metrics(&f).mutes > before.mutes, WAIT_MS));
	CHECK_OK(tr_stop(tr_inbox_ctx(f.ib), fl, TR_EXIT_SHUTDOWN));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_stopped > before.actors_stopped,
			 WAIT_MS));
	atomic_store(&k_fill, 1);
	atomic_store(&k_go, 1);
	fx_finish(&f);
}

static void
test_stop_muted_futex(void)
{
	stop_muted(1);
}

static void
test_stop_muted_poll(void)
{
	stop_muted(0);
}

static const struct test_case tests[] = {
	{ "sched: an actor queued behind a long turn runs elsewhere "
	  "(io_dedicated)",
	  test_dispatch_futex },
	{ "sched: an actor queued behind a long turn runs elsewhere "
	  "(workers poll I/O)",
	  test_dispatch_poll },
	{ "sched: the next slot behind a long turn runs elsewhere "
	  "(io_dedicated)",
	  test_next_slot_futex },
	{ "sched: the next slot behind a long turn runs elsewhere "
	  "(workers poll I/O)",
	  test_next_slot_poll },
	{ "sched: a foreign send right behind a long one runs while it "
	  "computes "
	  "(io_dedicated)",
	  test_foreign_futex },
	{ "sched: a foreign send right behind a long one runs while it "
	  "computes "
	  "(workers poll I/O)",
	  test_foreign_poll },
	{ "sched: pinned workers run on one CPU each, and are rescued too",
	  test_pinned },
	{ "sched: a sender muted on a stuck receiver can be stopped "
	  "(io_dedicated)",
	  test_stop_muted_futex },
	{ "sched: a sender muted on a stuck receiver can be stopped "
	  "(workers poll I/O)",
	  test_stop_muted_poll },
	{ NULL, NULL },
};

TEST_MAIN(tests)
