/*
 * Public-API tests of the runtime: configuration and lifecycle, FIFO per
 * sender-receiver pair under contention, fairness, quiescence
 * (tr_runtime_wait_idle), graceful stop with messages in flight, spawns
 * after stop, spawning and sending from foreign threads, idle CPU use and
 * waking a sleeping runtime.
 *
 * No check here bounds how long something took: a busy machine makes
 * everything later. Waits are on conditions, with deadlines of many
 * seconds as their failure; latencies are printed, not checked (the
 * benchmark program measures speed).
 *
 * Handlers run on worker threads, so they never call CHECK: they report
 * to the probe inbox or through atomic counters, and the test thread
 * checks. The counters are seq_cst atomics.
 */
#include <troupe/troupe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "fixture.h"

/* Deadlines, generous so that the suite also passes under ThreadSanitizer
 * on a loaded machine: reaching one is a failure. */
#define REPLY_MS 30000
#define IDLE_MS  30000

enum {
	MSG_PING = 1, /* reply MSG_PONG with the handling time (uint64_t ns) */
	MSG_PONG,
	MSG_SEQ,   /* struct seq */
	MSG_START, /* struct seq_start */
	MSG_CONT,
	MSG_QUERY,
	MSG_RESULTS,
	MSG_LOOP,
	MSG_HOP,   /* uint32_t hops left; reply to the sender */
	MSG_SERVE, /* struct serve: start a rally with another hop */
	MSG_WORK,
	MSG_GO,
};

/* ---- fixture ---------------------------------------------------------- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- actors ------------------------------------------------------------ */

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING) {
		uint64_t t = now_ns();
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, &t, sizeof(t));
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

/* counter: counts every message; teardown counts too. */
static atomic_ulong cnt_handled;
static atomic_ulong cnt_teardowns;
static atomic_ulong cnt_td_sum;

struct counter {
	uint64_t n;
};

static void
counter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct counter *s = state;

	(void)cx;
	(void)m;
	s->n++;
	atomic_fetch_add(&cnt_handled, 1);
}

static void
counter_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct counter *s = state;

	(void)cx;
	(void)reason;
	atomic_fetch_add(&cnt_td_sum, s->n);
	atomic_fetch_add(&cnt_teardowns, 1);
}

static const tr_actor_def counter_def = {
	.size = sizeof(tr_actor_def),
	.name = "counter",
	.state_size = sizeof(struct counter),
	.teardown = counter_teardown,
	.handle = counter_handle,
};

static void
counter_reset(void)
{
	atomic_store(&cnt_handled, 0);
	atomic_store(&cnt_teardowns, 0);
	atomic_store(&cnt_td_sum, 0);
}

/* FIFO: senders number their messages, the receiver checks the order. */
#define FIFO_ACTORS  4
#define FIFO_THREADS 2
#define FIFO_IDS     (FIFO_ACTORS + FIFO_THREADS)
#define FIFO_N       3000
#define FIFO_CHUNK   50

struct seq {
	uint32_t id;
	uint32_t seq;
};

struct seq_start {
	tr_pid target;
	uint32_t id;
};

struct fifo_report {
	uint64_t total;
	uint64_t errors;
	uint64_t from_errors;
};

struct fifo_recv {
	uint32_t next[FIFO_IDS];
	tr_pid from[FIFO_IDS];
	struct fifo_report rep;
};

static atomic_ulong fifo_send_err;

static void
fifo_recv_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fifo_recv *s = state;
	struct seq q;

	if (m->type == MSG_QUERY) {
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &s->rep,
			      sizeof(s->rep));
		return;
	}
	if (m->type != MSG_SEQ || !payload(m, &q, sizeof(q)) ||
	    q.id >= FIFO_IDS) {
		s->rep.errors++;
		return;
	}
	s->rep.total++;
	if (q.seq != s->next[q.id]) {
		s->rep.errors++;
	}
	s->next[q.id] = q.seq + 1;
	/* The sender of one sequence is always the same pid. */
	if (q.seq == 0) {
		s->from[q.id] = m->from;
	} else if (!tr_pid_eq(s->from[q.id], m->from)) {
		s->rep.from_errors++;
	}
}

static const tr_actor_def fifo_recv_def = {
	.size = sizeof(tr_actor_def),
	.name = "fifo_recv",
	.state_size = sizeof(struct fifo_recv),
	.handle = fifo_recv_handle,
};

struct fifo_send {
	tr_pid target;
	uint32_t id;
	uint32_t seq;
};

static void
fifo_send_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fifo_send *s = state;
	struct seq_start st;

	if (m->type == MSG_START && payload(m, &st, sizeof(st))) {
		s->target = st.target;
		s->id = st.id;
	} else if (m->type != MSG_CONT) {
		return;
	}
	/* A chunk per turn, then continue later: senders interleave. */
	for (int i = 0; i < FIFO_CHUNK && s->seq < FIFO_N; i++) {
		struct seq q = { s->id, s->seq };
		int err;
		/* Copied and pointer messages share one order. */
		if (s->seq % 3 == 0) {
			struct seq *p = malloc(sizeof(*p));
			if (p == NULL) {
				abort();
			}
			*p = q;
			err = tr_send_ptr(cx, s->target, MSG_SEQ, p, sizeof(*p),
					  free);
		} else {
			err = tr_send(cx, s->target, MSG_SEQ, &q, sizeof(q));
		}
		if (err != TR_OK) {
			atomic_fetch_add(&fifo_send_err, 1);
		}
		s->seq++;
	}
	if (s->seq < FIFO_N) {
		(void)tr_send(cx, tr_self(cx), MSG_CONT, NULL, 0);
	}
}

static const tr_actor_def fifo_send_def = {
	.size = sizeof(tr_actor_def),
	.name = "fifo_send",
	.state_size = sizeof(struct fifo_send),
	.handle = fifo_send_handle,
};

struct fifo_thread {
	tr_runtime *rt;
	tr_pid target;
	uint32_t id;
};

static void *
fifo_thread_main(void *arg)
{
	struct fifo_thread *t = arg;

	for (uint32_t i = 0; i < FIFO_N; i++) {
		struct seq q = { t->id, i };
		if (tr_send(tr_runtime_ctx(t->rt), t->target, MSG_SEQ, &q,
			    sizeof(q)) != TR_OK) {
			atomic_fetch_add(&fifo_send_err, 1);
		}
	}
	return NULL;
}

/* flood: sends itself a message each time it handles one. */
static atomic_ulong flood_count;
static atomic_bool flood_halt;

static void
flood_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_LOOP) {
		atomic_fetch_add(&flood_count, 1);
		if (!atomic_load(&flood_halt)) {
			(void)tr_send(cx, tr_self(cx), MSG_LOOP, NULL, 0);
		}
	}
}

static const tr_actor_def flood_def = {
	.size = sizeof(tr_actor_def),
	.name = "flood",
	.handle = flood_handle,
};

/* forever: like flood, but never halts. */
static void
forever_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	(void)m;
	atomic_fetch_add(&flood_count, 1);
	(void)tr_send(cx, tr_self(cx), MSG_LOOP, NULL, 0);
}

static void
forever_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	(void)reason;
	atomic_fetch_add(&cnt_teardowns, 1);
}

static const tr_actor_def forever_def = {
	.size = sizeof(tr_actor_def),
	.name = "forever",
	.teardown = forever_teardown,
	.handle = forever_handle,
};

/* hop: answers the sender with one hop less, down to zero; a serve starts
 * the rally by sending the first hop to the other player. */
static atomic_ulong hops_done;

struct serve {
	tr_pid to;
	uint32_t left;
};

static void
hop_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	uint32_t left;

	const struct serve *sv = TR_MSG_AS(m, struct serve);

	(void)state;
	if (m->type == MSG_SERVE && sv != NULL) {
		(void)tr_send(cx, sv->to, MSG_HOP, &sv->left, sizeof(sv->left));
	} else if (m->type == MSG_HOP && payload(m, &left, sizeof(left))) {
		atomic_fetch_add(&hops_done, 1);
		if (left > 0) {
			left--;
			(void)tr_send(cx, tr_sender(cx), MSG_HOP, &left,
				      sizeof(left));
		}
	}
}

static const tr_actor_def hop_def = {
	.size = sizeof(tr_actor_def),
	.name = "hop",
	.handle = hop_handle,
};

/* gs: graceful stop workers; a hop-0 message is forwarded once. */
#define GS_ACTORS 200
#define GS_MSGS   20

struct gs_msg {
	uint32_t hop;
	uint32_t seq;
};

static tr_pid gs_pids[GS_ACTORS];
static atomic_ulong gs_hop0, gs_hop1, gs_fwd_ok, gs_fwd_err;
static atomic_ulong gs_teardowns, gs_bad_reason;

static void
gs_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct gs_msg g;

	(void)state;
	if (m->type != MSG_WORK || !payload(m, &g, sizeof(g))) {
		return;
	}
	/* A little work so that the stop lands while plenty is queued. */
	volatile uint32_t spin = 0;
	for (int i = 0; i < 200; i++) {
		spin += (uint32_t)i;
	}
	if (g.hop == 0) {
		atomic_fetch_add(&gs_hop0, 1);
		struct gs_msg fwd = { 1, g.seq };
		tr_pid to = gs_pids[(g.seq * 7919u + 13u) % GS_ACTORS];
		if (tr_send(cx, to, MSG_WORK, &fwd, sizeof(fwd)) == TR_OK) {
			atomic_fetch_add(&gs_fwd_ok, 1);
		} else {
			atomic_fetch_add(&gs_fwd_err, 1);
		}
	} else {
		atomic_fetch_add(&gs_hop1, 1);
	}
}

static void
gs_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	if (reason != TR_EXIT_SHUTDOWN) {
		atomic_fetch_add(&gs_bad_reason, 1);
	}
	atomic_fetch_add(&gs_teardowns, 1);
}

static const tr_actor_def gs_def = {
	.size = sizeof(tr_actor_def),
	.name = "gs",
	.teardown = gs_teardown,
	.handle = gs_handle,
};

/* late: spawns from a handler that runs after tr_runtime_stop(). */
static atomic_int late_running, late_go, late_err, late_ctx_ok;
static tr_runtime *late_rt;

static void
late_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid p;

	(void)state;
	(void)m;
	atomic_store(&late_ctx_ok, tr_ctx_runtime(cx) == late_rt);
	atomic_store(&late_running, 1);
	uint64_t deadline = now_ns() + (uint64_t)REPLY_MS * 1000000u;
	while (!atomic_load(&late_go) && now_ns() < deadline) {
		harness_nap_us(100);
	}
	atomic_store(&late_err, tr_spawn(cx, &echo_def, NULL, &p));
}

static const tr_actor_def late_def = {
	.size = sizeof(tr_actor_def),
	.name = "late",
	.handle = late_handle,
};

/* stopper: stops the whole runtime from a handler. */
static void
stopper_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	(void)m;
	atomic_store(&late_ctx_ok, tr_ctx_runtime(cx) == late_rt);
	tr_runtime_stop(tr_ctx_runtime(cx));
}

static const tr_actor_def stopper_def = {
	.size = sizeof(tr_actor_def),
	.name = "stopper",
	.handle = stopper_handle,
};

/*
 * busy: makes another actor runnable, then stays in its handler until
 * that actor has run (or a deadline passes), so the other actor can only
 * have run on another worker.
 */
static atomic_ullong busy_sent_at, stamp_at;
static atomic_bool busy_saw_stamp;

static void
stamp_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_store(&stamp_at, now_ns());
}

static const tr_actor_def stamp_def = {
	.size = sizeof(tr_actor_def),
	.name = "stamp",
	.handle = stamp_handle,
};

static void
busy_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid target;

	(void)state;
	if (m->type != MSG_GO || !payload(m, &target, sizeof(target))) {
		return;
	}
	atomic_store(&busy_sent_at, now_ns());
	(void)tr_send(cx, target, MSG_PING, NULL, 0);
	uint64_t end = now_ns() + (uint64_t)REPLY_MS * 1000000u;
	while (atomic_load(&stamp_at) == 0 && now_ns() < end) {
	}
	atomic_store(&busy_saw_stamp, atomic_load(&stamp_at) != 0);
}

static const tr_actor_def busy_def = {
	.size = sizeof(tr_actor_def),
	.name = "busy",
	.handle = busy_handle,
};

/* burst: sends BURST_N numbered messages back to the sender. */
#define BURST_N 1000

static void
burst_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	(void)m;
	for (uint32_t i = 0; i < BURST_N; i++) {
		(void)tr_send(cx, tr_sender(cx), MSG_SEQ, &i, sizeof(i));
	}
}

static const tr_actor_def burst_def = {
	.size = sizeof(tr_actor_def),
	.name = "burst",
	.handle = burst_handle,
};

/* ---- tests ------------------------------------------------------------- */

static void
test_errors_and_version(void)
{
	CHECK(strcmp(tr_strerror(TR_EFULL), "mailbox full") == 0);
	CHECK(strcmp(tr_err_name(TR_EFULL), "TR_EFULL") == 0);
	CHECK(strcmp(tr_err_name(TR_ECLOSED), "TR_ECLOSED") == 0);
	CHECK(strcmp(tr_strerror(12345), "unknown error") == 0);
	CHECK(strcmp(tr_err_name(-12345), "TR_E?") == 0);
	CHECK(strcmp(tr_version(), TR_VERSION_STRING) == 0);
}

static void
test_config_and_lifecycle(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	CHECK_EQ_U64(cfg.size, sizeof(tr_config));
	CHECK_OK(tr_runtime_create(NULL, &rt));
	CHECK(rt != NULL && tr_runtime_workers(rt) >= 1);
	tr_runtime_destroy(rt); /* never started */
	tr_runtime_destroy(NULL);

	cfg.size = 0;
	rt = NULL;
	CHECK_ERR(tr_runtime_create(&cfg, &rt), TR_EINVAL);
	CHECK(rt == NULL);

	cfg = tr_config_default();
	cfg.workers = 3;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_EQ_U64(tr_runtime_workers(rt), 3);
	CHECK_ERR(tr_runtime_join(rt), TR_ESTATE);
	CHECK_ERR(tr_runtime_wait_idle(rt, 10), TR_ESTATE);
	CHECK_OK(tr_runtime_start(rt));
	CHECK_ERR(tr_runtime_start(rt), TR_ESTATE);
	CHECK_EQ_U64(rt_metrics(rt).workers, 3);
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_runtime_stop(rt);
	tr_runtime_stop(rt); /* harmless */
	CHECK_OK(tr_runtime_join(rt));
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

static void
test_spawn_before_start(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	counter_reset();
	cfg.workers = 2;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	tr_pid p = spawn(rt, &counter_def, NULL);
	for (int i = 0; i < 5; i++) {
		CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_WORK, NULL, 0));
	}
	CHECK_EQ_U64(atomic_load(&cnt_handled), 0); /* no thread runs yet */
	CHECK_OK(tr_runtime_start(rt));
	WAIT_UNTIL(atomic_load(&cnt_handled) == 5, REPLY_MS);
	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
	CHECK_EQ_U64(atomic_load(&cnt_teardowns), 1);
	CHECK_EQ_U64(atomic_load(&cnt_td_sum), 5);
}

static void
test_fifo_per_pair(void)
{
	struct fx f;
	pthread_t th[FIFO_THREADS];
	struct fifo_thread ta[FIFO_THREADS];
	struct fifo_report rep;

	atomic_store(&fifo_send_err, 0);
	fx_start(&f, 4);
	tr_pid recv = fx_spawn(&f, &fifo_recv_def, NULL);
	for (uint32_t i = 0; i < FIFO_ACTORS; i++) {
		struct seq_start st = { recv, i };
		tr_pid s = fx_spawn(&f, &fifo_send_def, NULL);
		CHECK_OK(tr_send(tr_runtime_ctx(f.rt), s, MSG_START, &st,
				 sizeof(st)));
	}
	for (int i = 0; i < FIFO_THREADS; i++) {
		ta[i] = (struct fifo_thread){ f.rt, recv,
					      (uint32_t)(FIFO_ACTORS + i) };
		CHECK(pthread_create(&th[i], NULL, fifo_thread_main, &ta[i]) ==
		      0);
	}
	for (int i = 0; i < FIFO_THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	memset(&rep, 0xFF, sizeof(rep));
	SEND(&f, recv, MSG_QUERY, NULL, 0);
	CHECK(fx_recv(&f, MSG_RESULTS, &rep, sizeof(rep)));
	CHECK_EQ_U64(rep.total, (uint64_t)FIFO_IDS * FIFO_N);
	CHECK_EQ_U64(rep.errors, 0);
	CHECK_EQ_U64(rep.from_errors, 0);
	CHECK_EQ_U64(atomic_load(&fifo_send_err), 0);
	fx_finish(&f);
}

static void
test_fairness_one_worker(void)
{
	struct fx f;
	uint64_t worst = 0;

	atomic_store(&flood_count, 0);
	atomic_store(&flood_halt, false);
	fx_start(&f, 1);
	tr_pid fl = fx_spawn(&f, &flood_def, NULL);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), fl, MSG_LOOP, NULL, 0));
	WAIT_UNTIL(atomic_load(&flood_count) > 1000, REPLY_MS);
	uint64_t before = atomic_load(&flood_count);
	for (int i = 0; i < 20; i++) {
		uint64_t t0 = now_ns(), t = 0;
		/* Starved, the ping would wait for the flood forever: the
		 * receive's deadline is the failure. */
		SEND(&f, e, MSG_PING, NULL, 0);
		if (!fx_recv(&f, MSG_PONG, &t, sizeof(t))) {
			CHECK(!"ping starved by a flooding actor");
			break;
		}
		uint64_t dt = now_ns() - t0;
		worst = dt > worst ? dt : worst;
	}
	/* The flood kept running too. */
	CHECK(atomic_load(&flood_count) > before);
	printf("  fairness: worst ping %.3f ms while flooded\n",
	       (double)worst / 1e6);
	atomic_store(&flood_halt, true);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	fx_finish(&f);
}

static void
test_wait_idle_settles(void)
{
	struct fx f;
	enum { PAIRS = 8, HOPS = 2000 };

	atomic_store(&hops_done, 0);
	fx_start(&f, 4);
	for (int i = 0; i < PAIRS; i++) {
		tr_pid a = fx_spawn(&f, &hop_def, NULL);
		tr_pid b = fx_spawn(&f, &hop_def, NULL);
		struct serve sv = { .to = a, .left = HOPS };
		/* b serves to a, so a answers b and the two play it out. */
		SEND(&f, b, MSG_SERVE, &sv, sizeof(sv));
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	/* Read right after: everything must have settled already. */
	CHECK_EQ_U64(atomic_load(&hops_done), (uint64_t)PAIRS * (HOPS + 1));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	/* Still idle when asked again (a worker may be looking around). */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	fx_finish(&f);
}

static void
test_wait_idle_times_out_when_busy(void)
{
	struct fx f;

	atomic_store(&flood_count, 0);
	atomic_store(&flood_halt, false);
	fx_start(&f, 2);
	tr_pid fl = fx_spawn(&f, &flood_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), fl, MSG_LOOP, NULL, 0));
	WAIT_UNTIL(atomic_load(&flood_count) > 100, REPLY_MS);
	uint64_t t0 = now_ns();
	CHECK_ERR(tr_runtime_wait_idle(f.rt, 200), TR_ETIMEDOUT);
	/* It gave up no earlier than asked (t0 was read before the call). */
	CHECK(now_ns() - t0 >= 200000000u);
	atomic_store(&flood_halt, true);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	fx_finish(&f);
}

static void
test_graceful_stop_in_flight(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();
	tr_pid p = TR_PID_NONE;
	tr_inbox *ib = NULL;

	atomic_store(&gs_hop0, 0);
	atomic_store(&gs_hop1, 0);
	atomic_store(&gs_fwd_ok, 0);
	atomic_store(&gs_fwd_err, 0);
	atomic_store(&gs_teardowns, 0);
	atomic_store(&gs_bad_reason, 0);
	cfg.workers = 4;
	/* Everything queued is handled: no cut-off a slow machine could
	 * reach. */
	cfg.stop_drain_ms = 600000;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	for (int i = 0; i < GS_ACTORS; i++) {
		gs_pids[i] = spawn(rt, &gs_def, NULL);
	}
	for (uint32_t j = 0; j < GS_MSGS; j++) {
		for (uint32_t i = 0; i < GS_ACTORS; i++) {
			struct gs_msg g = { 0, i * GS_MSGS + j };
			CHECK_OK(tr_send(tr_runtime_ctx(rt), gs_pids[i],
					 MSG_WORK, &g, sizeof(g)));
		}
	}
	tr_runtime_stop(rt);
	CHECK_ERR(tr_spawn(tr_runtime_ctx(rt), &gs_def, NULL, &p), TR_ECLOSED);
	CHECK_ERR(tr_inbox_create(rt, &ib), TR_ECLOSED);
	CHECK_OK(tr_runtime_join(rt));
	CHECK_ERR(tr_spawn(tr_runtime_ctx(rt), &gs_def, NULL, &p), TR_ECLOSED);

	tr_metrics m = rt_metrics(rt);
	printf("  graceful stop: %lu forwarded, %lu handled, %" PRIu64
	       " dead letters\n",
	       atomic_load(&gs_fwd_ok), atomic_load(&gs_hop1), m.dead_letters);
	CHECK_EQ_U64(atomic_load(&gs_teardowns), GS_ACTORS);
	CHECK_EQ_U64(atomic_load(&gs_bad_reason), 0);
	/* Everything queued before the stop was handled. */
	CHECK_EQ_U64(atomic_load(&gs_hop0), GS_ACTORS * GS_MSGS);
	CHECK_EQ_U64(atomic_load(&gs_fwd_err), 0);
	/* A forwarded message was handled or is a dead letter. */
	CHECK_EQ_U64(atomic_load(&gs_hop1) + m.dead_letters,
		     atomic_load(&gs_fwd_ok));
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_U64(m.actors_spawned, GS_ACTORS);
	CHECK_EQ_U64(m.actors_stopped, GS_ACTORS);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	tr_runtime_destroy(rt);
}

static void
test_stop_self_sending_actor(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	atomic_store(&flood_count, 0);
	counter_reset();
	cfg.workers = 2;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	tr_pid p = spawn(rt, &forever_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_LOOP, NULL, 0));
	WAIT_UNTIL(atomic_load(&flood_count) > 1000, REPLY_MS);
	/* It always has one message queued: the stop lands behind it. */
	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	CHECK_EQ_U64(atomic_load(&cnt_teardowns), 1);
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

static void
test_spawn_in_handler_after_stop(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	atomic_store(&late_running, 0);
	atomic_store(&late_go, 0);
	atomic_store(&late_err, 1000);
	atomic_store(&late_ctx_ok, 0);
	cfg.workers = 1;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	late_rt = rt;
	CHECK_OK(tr_runtime_start(rt));
	tr_pid p = spawn(rt, &late_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_GO, NULL, 0));
	WAIT_UNTIL(atomic_load(&late_running) == 1, REPLY_MS);
	tr_runtime_stop(rt);
	atomic_store(&late_go, 1);
	CHECK_OK(tr_runtime_join(rt));
	CHECK_ERR(atomic_load(&late_err), TR_ECLOSED);
	CHECK_EQ_INT(atomic_load(&late_ctx_ok), 1);
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

static void
test_stop_from_handler(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	atomic_store(&late_ctx_ok, 0);
	counter_reset();
	cfg.workers = 2;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	late_rt = rt;
	CHECK_OK(tr_runtime_start(rt));
	(void)spawn(rt, &counter_def, NULL);
	tr_pid p = spawn(rt, &stopper_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_GO, NULL, 0));
	/* No tr_runtime_stop() here: the handler asked for it. */
	CHECK_OK(tr_runtime_join(rt));
	CHECK_EQ_INT(atomic_load(&late_ctx_ok), 1);
	CHECK_EQ_U64(atomic_load(&cnt_teardowns), 1);
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

static void
test_destroy_running(void)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	counter_reset();
	cfg.workers = 2;
	cfg.stop_drain_ms = 600000; /* every message handled, however slow */
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	for (int i = 0; i < 10; i++) {
		tr_pid p = spawn(rt, &counter_def, NULL);
		CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_WORK, NULL, 0));
	}
	/* Stops and joins first: every teardown runs. */
	tr_runtime_destroy(rt);
	CHECK_EQ_U64(atomic_load(&cnt_teardowns), 10);
	CHECK_EQ_U64(atomic_load(&cnt_td_sum), 10);
}

#define FT_THREADS 4
#define FT_ACTORS  25
#define FT_MSGS    100

struct ft_arg {
	tr_runtime *rt;
	tr_pid shared;
	tr_pid pids[FT_ACTORS];
	uint64_t sent_ok;
	uint64_t errors;
};

static void *
ft_main(void *arg)
{
	struct ft_arg *a = arg;

	for (int i = 0; i < FT_ACTORS; i++) {
		if (tr_spawn(tr_runtime_ctx(a->rt), &counter_def, NULL,
			     &a->pids[i]) != TR_OK) {
			a->errors++;
		}
		/* A message right away, to an actor that may not run yet. */
		if (tr_send(tr_runtime_ctx(a->rt), a->pids[i], MSG_WORK, NULL,
			    0) == TR_OK) {
			a->sent_ok++;
		} else {
			a->errors++;
		}
	}
	for (uint32_t j = 1; j < FT_MSGS; j++) {
		for (int i = 0; i < FT_ACTORS; i++) {
			if (tr_send(tr_runtime_ctx(a->rt), a->pids[i], MSG_WORK,
				    &j, sizeof(j)) == TR_OK) {
				a->sent_ok++;
			} else {
				a->errors++;
			}
		}
		if (tr_send(tr_runtime_ctx(a->rt), a->shared, MSG_WORK, &j,
			    sizeof(j)) == TR_OK) {
			a->sent_ok++;
		} else {
			a->errors++;
		}
	}
	return NULL;
}

static void
test_foreign_threads(void)
{
	struct fx f;
	pthread_t th[FT_THREADS];
	static struct ft_arg args[FT_THREADS];
	uint64_t sent = 0, errors = 0;

	counter_reset();
	fx_start(&f, 2);
	tr_pid shared = fx_spawn(&f, &counter_def, NULL);
	tr_metrics m0 = fx_metrics(&f);
	for (int i = 0; i < FT_THREADS; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].rt = f.rt;
		args[i].shared = shared;
		CHECK(pthread_create(&th[i], NULL, ft_main, &args[i]) == 0);
	}
	for (int i = 0; i < FT_THREADS; i++) {
		pthread_join(th[i], NULL);
		sent += args[i].sent_ok;
		errors += args[i].errors;
	}
	CHECK_EQ_U64(errors, 0);
	CHECK_EQ_U64(sent, (uint64_t)FT_THREADS * FT_MSGS * FT_ACTORS +
				   (uint64_t)FT_THREADS * (FT_MSGS - 1));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_U64(atomic_load(&cnt_handled), sent);
	tr_metrics m1 = fx_metrics(&f);
	CHECK_EQ_U64(m1.actors_spawned - m0.actors_spawned,
		     FT_THREADS * FT_ACTORS);
	CHECK_EQ_U64(m1.msgs_handled - m0.msgs_handled, sent);
	/* Every pid handed out is distinct. */
	int dup = 0;
	for (int i = 0; i < FT_THREADS * FT_ACTORS; i++) {
		for (int j = i + 1; j < FT_THREADS * FT_ACTORS; j++) {
			dup += tr_pid_eq(
				args[i / FT_ACTORS].pids[i % FT_ACTORS],
				args[j / FT_ACTORS].pids[j % FT_ACTORS]);
		}
	}
	CHECK_EQ_INT(dup, 0);
	fx_finish(&f);
	CHECK_EQ_U64(atomic_load(&cnt_teardowns), FT_THREADS * FT_ACTORS + 1);
	CHECK_EQ_U64(atomic_load(&cnt_td_sum), sent);
}

static void
idle_cpu(unsigned workers, unsigned loops)
{
	struct fx f;
	uint64_t t = 0;
	tr_config cfg = tr_config_default();

	cfg.workers = workers;
	cfg.io_threads = loops;
	fx_start_cfg(&f, &cfg);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	for (int i = 0; i < 10; i++) {
		SEND(&f, e, MSG_PING, NULL, 0);
		CHECK(fx_recv(&f, MSG_PONG, &t, sizeof(t)));
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	WAIT_UNTIL(fx_metrics(&f).parks >= 1, REPLY_MS);
	/*
	 * Measure over a fixed window. The naps are the measurement, not
	 * a wait for a condition: nothing is expected to happen.
	 */
	uint64_t c0 = cpu_ns(), w0 = now_ns();
	while (now_ns() - w0 < 2000000000u) {
		harness_nap_us(100000);
	}
	uint64_t used = cpu_ns() - c0;
	printf("  idle: %.2f ms of CPU over 2 s with %u workers, %u I/O "
	       "loops\n",
	       (double)used / 1e6, workers, loops);
	CHECK(used < 20000000u);
	fx_finish(&f);
}

static void
test_idle_cpu(void)
{
	idle_cpu(2, 1);
}

/* Each worker polls a loop of its own: idle pollers must not keep
 * waking each other. */
static void
test_idle_cpu_loop_per_worker(void)
{
	idle_cpu(4, 4);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_wake_latency(void)
{
	struct fx f;
	enum { ROUNDS = 100 };
	uint64_t oneway[ROUNDS], rtt[ROUNDS];
	int done = 0;

	fx_start(&f, 2);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	/* Warm-up: the first message of a process pays one-time costs. */
	uint64_t w0 = now_ns(), wt = 0;
	SEND(&f, e, MSG_PING, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &wt, sizeof(wt)));
	printf("  wake: first message handled after %.1f us\n",
	       (double)(wt - w0) / 1e3);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	WAIT_UNTIL(fx_metrics(&f).parks >= 1, REPLY_MS);
	tr_metrics m0 = fx_metrics(&f);
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t parks = fx_metrics(&f).parks, handled = 0;
		uint64_t t0 = now_ns();
		SEND(&f, e, MSG_PING, NULL, 0);
		if (!fx_recv(&f, MSG_PONG, &handled, sizeof(handled))) {
			CHECK(!"message to a sleeping runtime was not handled");
			break;
		}
		rtt[i] = now_ns() - t0;
		oneway[i] = handled - t0;
		done++;
		/* Let the worker that woke go back to sleep. */
		if (!WAIT_UNTIL(fx_metrics(&f).parks > parks, REPLY_MS)) {
			break;
		}
	}
	tr_metrics m1 = fx_metrics(&f);
	if (done > 0) {
		qsort(oneway, (size_t)done, sizeof(oneway[0]), cmp_u64);
		qsort(rtt, (size_t)done, sizeof(rtt[0]), cmp_u64);
		printf("  wake: send->handle p50 %.1f us max %.1f us; "
		       "round trip p50 %.1f us max %.1f us; "
		       "%" PRIu64 " wakes, %" PRIu64 " parks\n",
		       (double)oneway[done / 2] / 1e3,
		       (double)oneway[done - 1] / 1e3,
		       (double)rtt[done / 2] / 1e3, (double)rtt[done - 1] / 1e3,
		       m1.wakes - m0.wakes, m1.parks - m0.parks);
	}
	CHECK_EQ_INT(done, ROUNDS);
	fx_finish(&f);
}

static void
test_idle_worker_takes_work(void)
{
	struct fx f;

	atomic_store(&busy_sent_at, 0);
	atomic_store(&stamp_at, 0);
	fx_start(&f, 2);
	tr_pid st = fx_spawn(&f, &stamp_def, NULL);
	tr_pid b = fx_spawn(&f, &busy_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	atomic_store(&busy_saw_stamp, false);
	/* b makes st runnable and then stays in its handler until st has
	 * run: the other, idle worker must run st meanwhile. Left behind
	 * b, st would run only after b's deadline. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), b, MSG_GO, &st, sizeof(st)));
	WAIT_UNTIL(atomic_load(&stamp_at) != 0, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK(atomic_load(&busy_saw_stamp));
	uint64_t delay = atomic_load(&stamp_at) - atomic_load(&busy_sent_at);
	printf("  runnable behind a busy handler: ran after %.3f ms\n",
	       (double)delay / 1e6);
	fx_finish(&f);
}

static void
test_inbox_closed_after_stop(void)
{
	struct fx f;
	tr_inbox *ib = NULL;
	tr_received r;

	fx_start(&f, 2);
	CHECK_OK(tr_inbox_create(f.rt, &ib));
	tr_pid p = tr_self(tr_inbox_ctx(ib));
	CHECK(!tr_pid_is_none(p));
	CHECK(!tr_pid_eq(p, f.probe));
	memset(&r, 0, sizeof(r));
	tr_received_fini(&r); /* zeroed: no-op */
	CHECK_ERR(tr_inbox_recv(ib, NULL, 0, &r), TR_ETIMEDOUT);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), p, MSG_WORK, "a", 1));
	SEND(&f, p, MSG_WORK, "bc", 2);
	/* Both are in the inbox's queue once the runtime is idle (a stop
	 * overtakes what its actor has not taken yet): still received
	 * after the stop. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), p, TR_EXIT_NORMAL));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(ib, NULL, REPLY_MS, &r));
	CHECK_EQ_U64(r.size, 1);
	CHECK(tr_pid_is_none(r.from));
	CHECK(r.size == 1 && memcmp(r.data, "a", 1) == 0);
	tr_received_fini(&r);
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(ib, NULL, REPLY_MS, &r));
	CHECK_EQ_U64(r.size, 2);
	CHECK(tr_pid_eq(r.from, f.probe));
	CHECK(r.size == 2 && memcmp(r.data, "bc", 2) == 0);
	tr_received_fini(&r);
	memset(&r, 0, sizeof(r));
	CHECK_ERR(tr_inbox_recv(ib, NULL, REPLY_MS, &r), TR_ECLOSED);
	tr_inbox_destroy(ib);
	tr_inbox_destroy(NULL);

	/* An inbox gets one sender's messages in order. */
	tr_pid b = fx_spawn(&f, &burst_def, NULL);
	SEND(&f, b, MSG_GO, NULL, 0);
	int out_of_order = 0;
	for (uint32_t i = 0; i < BURST_N; i++) {
		uint32_t got = UINT32_MAX;
		if (!fx_recv(&f, MSG_SEQ, &got, sizeof(got))) {
			CHECK(!"burst message missing");
			break;
		}
		out_of_order += got != i;
	}
	CHECK_EQ_INT(out_of_order, 0);
	fx_finish(&f);
}

/*
 * chat: two actors that answer each other until `left` reaches 0, then
 * report to the probe. Used to check locality: a conversation must stay
 * on one worker instead of bouncing between cores.
 */
struct chat_start {
	tr_pid peer;
	tr_pid report;
	uint32_t rounds;
};

struct chat {
	tr_pid peer;
	tr_pid report;
	uint32_t left;
};

static void
chat_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct chat *c = state;

	if (m->type == MSG_START) {
		struct chat_start st;
		memcpy(&st, m->data, sizeof(st));
		c->peer = st.peer;
		c->report = st.report;
		c->left = st.rounds;
	} else if (m->type == MSG_HOP && tr_pid_is_none(c->report)) {
		/* The answering side: send the hop straight back. */
		(void)tr_send(cx, tr_sender(cx), MSG_HOP, NULL, 0);
		return;
	} else if (--c->left == 0) {
		(void)tr_send(cx, c->report, MSG_RESULTS, NULL, 0);
		return;
	}
	(void)tr_send(cx, c->peer, MSG_HOP, NULL, 0);
}

static const tr_actor_def chat_def = {
	.size = sizeof(tr_actor_def),
	.name = "chat",
	.state_size = sizeof(struct chat),
	.handle = chat_handle,
};

static void
test_conversation_stays_local(void)
{
	struct fx f;
	const uint32_t rounds = 100000;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &chat_def, NULL);
	tr_pid b = fx_spawn(&f, &chat_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);
	struct chat_start st = { .peer = b,
				 .report = f.probe,
				 .rounds = rounds };
	SEND(&f, a, MSG_START, &st, sizeof(st));
	CHECK(fx_recv(&f, MSG_RESULTS, NULL, 0));
	tr_metrics m1 = fx_metrics(&f);
	uint64_t steals = m1.steals - m0.steals;
	/*
	 * Each partner is woken by the other's send and goes to that
	 * worker's next slot, so the pair shares a worker, and a steal
	 * happens only when the OS preempts the worker. How often that is
	 * depends on the machine's load, so the count is printed, not
	 * checked (the benchmark program measures locality).
	 */
	printf("  conversation: %u round trips, %" PRIu64 " steals\n", rounds,
	       steals);
	/* START, rounds hops each way, and the report the inbox handled. */
	CHECK_EQ_U64(m1.msgs_handled - m0.msgs_handled,
		     2 * (uint64_t)rounds + 2);
	fx_finish(&f);
}

/*
 * A stop racing spawns: the runtime's stop sweep may see a new actor's pid
 * before its spawner has queued its init. Init owns the spawn argument, so
 * it must still run exactly once, before the stop: every argument handed
 * to a successful spawn is freed by an init, every refused one stays with
 * the spawner. Foreign threads and actors spawn in a loop while the
 * runtime stops.
 */
static _Atomic uint64_t race_given, race_inits, race_refused;

static int
race_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)state;
	free(arg);
	atomic_fetch_add(&race_inits, 1);
	return 0;
}

static void
race_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
}

static const tr_actor_def race_def = {
	.size = sizeof(tr_actor_def),
	.name = "race-child",
	.init = race_init,
	.handle = race_handle,
};

/* An actor that spawns a child per message and sends itself the next. */
static void
race_parent_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	(void)m;
	for (int i = 0; i < 8; i++) {
		int *arg = malloc(sizeof(int));
		if (arg == NULL) {
			return;
		}
		atomic_fetch_add(&race_given, 1);
		if (tr_spawn(cx, &race_def, arg, NULL) != TR_OK) {
			free(arg);
			atomic_fetch_add(&race_refused, 1);
			return;
		}
	}
	(void)tr_send(cx, tr_self(cx), MSG_GO, NULL, 0);
}

static const tr_actor_def race_parent_def = {
	.size = sizeof(tr_actor_def),
	.name = "race-parent",
	.handle = race_parent_handle,
};

static void *
race_spawner(void *p)
{
	tr_runtime *rt = p;

	for (;;) {
		int *arg = malloc(sizeof(int));
		tr_pid pid;

		if (arg == NULL) {
			return NULL;
		}
		atomic_fetch_add(&race_given, 1);
		if (tr_spawn(tr_runtime_ctx(rt), &race_def, arg, &pid) !=
		    TR_OK) {
			free(arg);
			atomic_fetch_add(&race_refused, 1);
			return NULL; /* stopping */
		}
	}
}

/* Busy threads: a worker preempted inside tr_spawn widens the window. */
static _Atomic bool race_hog_stop;

static void *
race_hog(void *p)
{
	(void)p;
	while (!atomic_load_explicit(&race_hog_stop, memory_order_relaxed)) {
	}
	return NULL;
}

static void
test_stop_racing_spawns_runs_init(void)
{
	pthread_t hog[2];

	atomic_store(&race_hog_stop, false);
	for (int i = 0; i < 2; i++) {
		CHECK(pthread_create(&hog[i], NULL, race_hog, NULL) == 0);
	}
	for (int round = 0; round < 20; round++) {
		tr_runtime *rt = NULL;
		tr_config cfg = tr_config_default();
		pthread_t th[2];

		atomic_store(&race_given, 0);
		atomic_store(&race_inits, 0);
		atomic_store(&race_refused, 0);
		cfg.workers = 2;
		CHECK_OK(tr_runtime_create(&cfg, &rt));
		CHECK_OK(tr_runtime_start(rt));
		for (int i = 0; i < 2; i++) {
			CHECK(pthread_create(&th[i], NULL, race_spawner, rt) ==
			      0);
			tr_pid p = spawn(rt, &race_parent_def, NULL);
			CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_GO, NULL,
					 0));
		}
		WAIT_UNTIL(atomic_load(&race_given) > 2000, REPLY_MS);
		tr_runtime_stop(rt);
		CHECK_OK(tr_runtime_join(rt));
		for (int i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
		}
		CHECK_EQ_U64(atomic_load(&race_inits) +
				     atomic_load(&race_refused),
			     atomic_load(&race_given));
		check_final_metrics(rt);
		tr_runtime_destroy(rt);
	}
	atomic_store(&race_hog_stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(hog[i], NULL);
	}
}

/* ---- a stop that waits behind a long turn is sent once ---- */

static atomic_int slow_in, slow_release;

static void
slow_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_store(&slow_in, 1);
	uint64_t until = harness_now_ms() + FX_REPLY_MS;
	while (atomic_load(&slow_release) == 0 && harness_now_ms() < until) {
		harness_nap_us(200);
	}
}

static const tr_actor_def slow_def = {
	.size = sizeof(tr_actor_def),
	.name = "slow",
	.handle = slow_handle,
};

static void *
release_later(void *arg)
{
	(void)arg;
	/* Long enough for the stop loop to sweep several times (it sweeps
	 * every 50 ms); a shorter wait only makes the check weaker. */
	harness_nap_us(400000);
	atomic_store(&slow_release, 1);
	return NULL;
}

/*
 * The runtime's stop sweeps its actors again while any is alive; an actor
 * whose STOP waits behind a long turn must not get a second STOP each
 * sweep (each would end as a dead letter once it stopped).
 */
static void
test_stop_sent_once_behind_long_turn(void)
{
	tr_runtime *rt;
	tr_config cfg = tr_config_default();
	pthread_t th;

	atomic_store(&slow_in, 0);
	atomic_store(&slow_release, 0);
	cfg.workers = 1;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	tr_pid p = spawn(rt, &slow_def, NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, 1, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&slow_in) == 1, FX_REPLY_MS));
	CHECK(pthread_create(&th, NULL, release_later, NULL) == 0);
	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	CHECK(pthread_join(th, NULL) == 0);
	tr_metrics m = rt_metrics(rt);
	CHECK_EQ_U64(m.dead_letters, 0);
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

/* relay: on MSG_GO (payload: a pid), sends MSG_WORK to that pid through
 * the runtime's context, from its handler, so on a worker thread. */
static atomic_int relay_err = 1;

static void
relay_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const tr_pid *to = TR_MSG_AS(m, tr_pid);

	(void)state;
	if (m->type == MSG_GO && to != NULL) {
		tr_ctx *rcx = tr_runtime_ctx(tr_ctx_runtime(cx));
		atomic_store(&relay_err,
			     tr_send(rcx, *to, MSG_WORK, "relayed", 7));
	}
}

static const tr_actor_def relay_def = {
	.size = sizeof(tr_actor_def),
	.name = "relay",
	.handle = relay_handle,
};

static atomic_ulong freed;

static void
free_count(void *p)
{
	free(p);
	atomic_fetch_add(&freed, 1);
}

/*
 * The runtime's context: what it sends has no sender, from any thread
 * and from a handler; what needs an actor or an inbox to receive the
 * outcome is refused with TR_EINVAL, and a payload handed over is freed.
 */
static void
test_runtime_ctx(void)
{
	struct fx f;
	tr_received r;
	tr_ref ref = { 0 };

	fx_start(&f, 2);
	tr_ctx *cx = tr_runtime_ctx(f.rt);
	CHECK(cx != NULL);
	CHECK(tr_runtime_ctx(NULL) == NULL);
	CHECK(tr_runtime_ctx(f.rt) == cx); /* one per runtime */
	CHECK(tr_ctx_runtime(cx) == f.rt);
	CHECK(tr_pid_is_none(tr_self(cx)));
	CHECK(tr_pid_is_none(tr_sender(cx)));
	CHECK(!tr_should_yield(cx));

	/* Refused: nobody would receive an outcome, or no actor to act for. */
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	CHECK_ERR(tr_request(cx, e, MSG_PING, NULL, 0, 0, &ref), TR_EINVAL);
	CHECK_EQ_U64(ref.v, 0);
	atomic_store(&freed, 0);
	CHECK_ERR(tr_request_ptr(cx, e, MSG_PING, malloc(8), 8, free_count, 0,
				 NULL),
		  TR_EINVAL);
	CHECK_EQ_U64(atomic_load(&freed), 1); /* freed on refusal */
	tr_msg fake = { .type = MSG_PING,
			.flags = TR_MSG_F_REQUEST,
			.from = f.probe,
			.ref = { 1 } };
	CHECK_ERR(tr_reply(cx, &fake, MSG_PONG, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_forward(cx, e, &fake), TR_EINVAL);
	CHECK_ERR(tr_link(cx, e), TR_EINVAL);
	CHECK_ERR(tr_monitor(cx, e, &ref), TR_EINVAL);
	CHECK_ERR(tr_spawn_link(cx, &echo_def, NULL, NULL), TR_EINVAL);
	CHECK_ERR(tr_send_after(cx, e, MSG_PING, NULL, 0, 1, NULL), TR_EINVAL);
	tr_stop_self(cx, TR_EXIT_ERROR); /* nothing to stop */

	/* A send from a handler, on a worker, has no sender either. */
	tr_pid relay = TR_PID_NONE;
	CHECK_OK(tr_spawn(cx, &relay_def, NULL, &relay));
	CHECK_OK(tr_send(cx, relay, MSG_GO, &f.probe, sizeof(f.probe)));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, NULL, REPLY_MS, &r));
	CHECK_EQ_INT(atomic_load(&relay_err), TR_OK);
	CHECK_EQ_U64(r.type, MSG_WORK);
	CHECK(tr_pid_is_none(r.from));
	CHECK(r.size == 7 && memcmp(r.data, "relayed", 7) == 0);
	tr_received_fini(&r);

	/* A stop through it works as from anywhere. */
	CHECK_OK(tr_stop(cx, relay, TR_EXIT_NORMAL));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, relay), REPLY_MS));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "runtime: error names and version", test_errors_and_version },
	{ "runtime: config and lifecycle errors", test_config_and_lifecycle },
	{ "runtime: a stop behind a long turn is sent once",
	  test_stop_sent_once_behind_long_turn },
	{ "runtime: actors spawned before start run after it",
	  test_spawn_before_start },
	{ "runtime: FIFO per sender-receiver pair under contention",
	  test_fifo_per_pair },
	{ "runtime: a flooding actor does not starve another (1 worker)",
	  test_fairness_one_worker },
	{ "runtime: an idle worker runs what a busy handler made runnable",
	  test_idle_worker_takes_work },
	{ "runtime: wait_idle returns after all work settled",
	  test_wait_idle_settles },
	{ "runtime: wait_idle times out while busy",
	  test_wait_idle_times_out_when_busy },
	{ "runtime: graceful stop with messages in flight",
	  test_graceful_stop_in_flight },
	{ "runtime: stop ends an actor that keeps sending itself messages",
	  test_stop_self_sending_actor },
	{ "runtime: spawn in a handler after stop is TR_ECLOSED",
	  test_spawn_in_handler_after_stop },
	{ "runtime: stop from inside a handler", test_stop_from_handler },
	{ "runtime: a stop racing spawns still runs every init first",
	  test_stop_racing_spawns_runs_init },
	{ "runtime: destroy stops and joins a running runtime",
	  test_destroy_running },
	{ "runtime: spawn and send from foreign threads",
	  test_foreign_threads },
	{ "runtime: inbox receives what was queued, then TR_ECLOSED",
	  test_inbox_closed_after_stop },
	{ "runtime: the runtime's context sends as nobody, refuses the rest",
	  test_runtime_ctx },
	{ "runtime: a two-actor conversation, every hop handled once",
	  test_conversation_stays_local },
	{ "runtime: idle runtime uses almost no CPU", test_idle_cpu },
	{ "runtime: idle, with an I/O loop per worker, uses almost no CPU",
	  test_idle_cpu_loop_per_worker },
	{ "runtime: a message wakes a sleeping runtime, every time",
	  test_wake_latency },
	{ NULL, NULL },
};

TEST_MAIN(tests)
