/*
 * Public-API tests of the metrics: counters move as documented
 * (spawned, stopped, alive, sent, handled), the JSON snapshot has every
 * documented key with the same values, scheduling delay is sampled, slow
 * handlers are counted, and work spreads to idle workers (steals).
 */
#include <troupe/troupe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "harness.h"
#include "fixture.h"

/* Deadlines, generous so that the suite also passes under ThreadSanitizer
 * on a loaded machine: reaching one is a failure. */
#define REPLY_MS 30000
#define IDLE_MS  30000

enum {
	MSG_NOTE = 1,
	MSG_HOP,   /* uint32_t hops left; reply to the sender */
	MSG_SERVE, /* struct serve: start a rally with another hop */
	MSG_SLOW,  /* busy for SLOW_NS */
	MSG_FAN,   /* spawn FAN_N children and give each a MSG_WORK */
	MSG_WORK,  /* record the thread, wait for a second one */
};

static tr_runtime *
start(unsigned workers, unsigned slow_us)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();

	cfg.workers = workers;
	cfg.slow_handler_us = slow_us;
	if (tr_runtime_create(&cfg, &rt) != TR_OK ||
	    tr_runtime_start(rt) != TR_OK) {
		fprintf(stderr, "fixture: cannot start a runtime\n");
		exit(1);
	}
	return rt;
}

static tr_metrics
metrics(tr_runtime *rt)
{
	tr_metrics m;

	memset(&m, 0, sizeof(m));
	m.size = sizeof(m);
	CHECK_OK(tr_runtime_metrics(rt, &m));
	return m;
}

static void
finish(tr_runtime *rt)
{
	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	tr_metrics m = metrics(rt);
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_U64(m.actors_stopped, m.actors_spawned);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	tr_runtime_destroy(rt);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
busy_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end) {
	}
}

/* ---- actors ------------------------------------------------------------ */

static void
quiet_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
}

static const tr_actor_def quiet_def = {
	.size = sizeof(tr_actor_def),
	.name = "quiet",
	.handle = quiet_handle,
};

/* hop: answers the sender with one hop less, down to zero; a serve starts
 * the rally by sending the first hop to the other player. */
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
	} else if (m->type == MSG_HOP && m->size == sizeof(left)) {
		memcpy(&left, m->data, sizeof(left));
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

/*
 * A slow handler runs for at least 20 ms of wall time, 20 times the
 * threshold of these tests, so it is slow however the runtime's tick
 * counter was calibrated against the clock on a loaded machine.
 */
#define SLOW_NS 20000000u

static void
slow_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == MSG_SLOW) {
		busy_ns(SLOW_NS);
	}
}

static const tr_actor_def slow_def = {
	.size = sizeof(tr_actor_def),
	.name = "slow",
	.handle = slow_handle,
};

/*
 * fan: children record which thread ran them, and each waits in its
 * handler until a second thread has run one: the worker that ran the
 * fan is held by the first child, so only the other worker can run the
 * rest, and it must take them from the first one's run queue. Without
 * that, the first child waits out the deadline and the test fails.
 */
#define FAN_N 32

static pthread_mutex_t fan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t fan_threads[FAN_N];
static int fan_nthreads;
static atomic_int fan_done;
static atomic_int fan_errors;

static void
work_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type != MSG_WORK) {
		return;
	}
	pthread_t self = pthread_self();
	pthread_mutex_lock(&fan_lock);
	bool known = false;
	for (int i = 0; i < fan_nthreads; i++) {
		known = known || pthread_equal(fan_threads[i], self);
	}
	if (!known && fan_nthreads < FAN_N) {
		fan_threads[fan_nthreads++] = self;
	}
	pthread_mutex_unlock(&fan_lock);
	uint64_t deadline = now_ns() + (uint64_t)REPLY_MS * 1000000u;
	for (;;) {
		pthread_mutex_lock(&fan_lock);
		int n = fan_nthreads;
		pthread_mutex_unlock(&fan_lock);
		if (n >= 2 || now_ns() > deadline) {
			break;
		}
		harness_nap_us(100);
	}
	atomic_fetch_add(&fan_done, 1);
}

static const tr_actor_def work_def = {
	.size = sizeof(tr_actor_def),
	.name = "work",
	.handle = work_handle,
};

static void
fan_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_FAN) {
		return;
	}
	/* Everything becomes runnable on this worker: others must steal. */
	for (int i = 0; i < FAN_N; i++) {
		tr_pid c;
		if (tr_spawn(cx, &work_def, NULL, &c) != TR_OK ||
		    tr_send(cx, c, MSG_WORK, NULL, 0) != TR_OK) {
			atomic_fetch_add(&fan_errors, 1);
		}
	}
}

static const tr_actor_def fan_def = {
	.size = sizeof(tr_actor_def),
	.name = "fan",
	.handle = fan_handle,
};

/* ---- tests ------------------------------------------------------------- */

static void
test_counters_move(void)
{
	tr_runtime *rt = start(2, 0);
	enum { N = 10, MSGS = 10 };
	tr_pid p[N];

	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m0 = metrics(rt);
	CHECK_EQ_U64(m0.workers, 2);
	for (int i = 0; i < N; i++) {
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &quiet_def, NULL, &p[i]));
	}
	tr_metrics m1 = metrics(rt);
	CHECK_EQ_U64(m1.actors_spawned, m0.actors_spawned + N);
	CHECK_EQ_U64(m1.actors_alive, m0.actors_alive + N);
	CHECK_EQ_U64(m1.actors_stopped, m0.actors_stopped);

	for (int j = 0; j < MSGS; j++) {
		for (int i = 0; i < N; i++) {
			CHECK_OK(tr_send(tr_runtime_ctx(rt), p[i], MSG_NOTE, &j,
					 sizeof(j)));
		}
	}
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m2 = metrics(rt);
	CHECK_EQ_U64(m2.msgs_sent, m1.msgs_sent + N * MSGS);
	CHECK_EQ_U64(m2.msgs_handled, m1.msgs_handled + N * MSGS);
	CHECK_EQ_U64(m2.dead_letters, m1.dead_letters);
	CHECK_EQ_U64(m2.blocking_pending, 0);
	uint64_t runq = 0;
	for (unsigned w = 0; w < m2.workers && w < TR_METRICS_MAX_WORKERS;
	     w++) {
		runq += m2.runq_len[w];
	}
	CHECK_EQ_U64(runq, 0); /* idle: nothing queued to run */

	for (int i = 0; i < N; i++) {
		CHECK_OK(tr_stop(tr_runtime_ctx(rt), p[i], TR_EXIT_NORMAL));
	}
	WAIT_UNTIL(metrics(rt).actors_stopped == m0.actors_stopped + N,
		   REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m3 = metrics(rt);
	CHECK_EQ_U64(m3.actors_alive, m0.actors_alive);
	CHECK_EQ_U64(m3.actors_spawned, m0.actors_spawned + N);
	CHECK_EQ_U64(m3.dead_letters, m0.dead_letters);
	CHECK_EQ_U64(m3.msgs_sent, m3.msgs_handled + m3.dead_letters);

	/* A send to a stopped actor is a dead letter. */
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p[0], MSG_NOTE, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	CHECK_EQ_U64(metrics(rt).dead_letters, m0.dead_letters + 1);
	finish(rt);
}

static void
test_bad_arguments(void)
{
	tr_runtime *rt = start(1, 0);
	tr_metrics m;

	CHECK_ERR(tr_runtime_metrics(rt, NULL), TR_EINVAL);
	memset(&m, 0, sizeof(m));
	m.size = 0;
	CHECK_ERR(tr_runtime_metrics(rt, &m), TR_EINVAL);
	m.size = sizeof(size_t);
	CHECK_ERR(tr_runtime_metrics(rt, &m), TR_EINVAL);
	tr_free_string(NULL);
	finish(rt);
}

static const cJSON *
num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v)) {
		fprintf(stderr, "  json: \"%s\" missing or not a number\n",
			key);
		return NULL;
	}
	return v;
}

static void
test_json(void)
{
	static const char *keys[] = {
		"actors_alive",
		"actors_spawned",
		"actors_stopped",
		"msgs_sent",
		"msgs_handled",
		"dead_letters",
		"mailbox_full",
		"steals",
		"parks",
		"wakes",
		"slow_handlers",
		"sched_delay_p50_ns",
		"sched_delay_p99_ns",
		"sched_delay_samples",
		"blocking_pending",
		"workers",
		"mutes",
		"io_polls",
		"io_takeovers",
	};
	tr_runtime *rt = start(3, 0);
	tr_pid p;

	CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &quiet_def, NULL, &p));
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_NOTE, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m = metrics(rt);
	char *text = tr_runtime_metrics_json(rt);
	CHECK(text != NULL);
	cJSON *o = text != NULL ? cJSON_Parse(text) : NULL;
	CHECK(cJSON_IsObject(o));
	if (o == NULL) {
		fprintf(stderr, "  json text: %s\n", text ? text : "(null)");
		tr_free_string(text);
		finish(rt);
		return;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		CHECK(num(o, keys[i]) != NULL);
	}
	/* Counters that cannot move while idle match the struct. */
	const struct {
		const char *key;
		uint64_t v;
	} same[] = {
		{ "actors_alive", m.actors_alive },
		{ "actors_spawned", m.actors_spawned },
		{ "actors_stopped", m.actors_stopped },
		{ "msgs_sent", m.msgs_sent },
		{ "msgs_handled", m.msgs_handled },
		{ "dead_letters", m.dead_letters },
		{ "mailbox_full", m.mailbox_full },
		{ "workers", m.workers },
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		const cJSON *v = num(o, same[i].key);
		if (v != NULL) {
			if ((uint64_t)v->valuedouble != same[i].v) {
				fprintf(stderr, "  json: %s\n", same[i].key);
			}
			CHECK_EQ_U64((uint64_t)v->valuedouble, same[i].v);
		}
	}
	CHECK_EQ_U64(m.actors_spawned, 1);
	const cJSON *rq = cJSON_GetObjectItemCaseSensitive(o, "runq_len");
	CHECK(cJSON_IsArray(rq));
	CHECK_EQ_INT(cJSON_GetArraySize(rq), 3);
	const cJSON *it;
	cJSON_ArrayForEach(it, rq)
	{
		CHECK(cJSON_IsNumber(it));
	}
	cJSON_Delete(o);
	tr_free_string(text);
	finish(rt);
}

static void
test_sched_delay_sampled(void)
{
	tr_runtime *rt = start(2, 0);
	enum { PAIRS = 4, HOPS = 2000 };

	for (int i = 0; i < PAIRS; i++) {
		tr_pid a, b;
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &hop_def, NULL, &a));
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &hop_def, NULL, &b));
		/* b serves to a, so a answers b and the two play it out. */
		struct serve sv = { .to = a, .left = HOPS };
		CHECK_OK(tr_send(tr_runtime_ctx(rt), b, MSG_SERVE, &sv,
				 sizeof(sv)));
	}
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m = metrics(rt);
	printf("  sched delay: p50 %" PRIu64 " ns, p99 %" PRIu64 " ns, %" PRIu64
	       " samples\n",
	       m.sched_delay_p50_ns, m.sched_delay_p99_ns,
	       m.sched_delay_samples);
	CHECK(m.sched_delay_samples > 0);
	CHECK(m.sched_delay_p50_ns <= m.sched_delay_p99_ns);
	CHECK(m.sched_delay_p99_ns > 0);
	/* Each pair: the serve, then HOPS + 1 hops. */
	CHECK_EQ_U64(m.msgs_handled, (uint64_t)PAIRS * (HOPS + 2));
	finish(rt);
}

static void
test_slow_handlers(void)
{
	tr_runtime *rt = start(1, 1000); /* 1 ms threshold */
	tr_pid p;

	CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &slow_def, NULL, &p));
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m0 = metrics(rt);
	for (int i = 0; i < 3; i++) {
		CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_SLOW, NULL, 0));
	}
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	tr_metrics m1 = metrics(rt);
	printf("  slow handlers: %" PRIu64 "\n",
	       m1.slow_handlers - m0.slow_handlers);
	CHECK(m1.slow_handlers - m0.slow_handlers >= 3);
	finish(rt);
}

/* Workers asleep now, from one snapshot (the counters of each worker are
 * read parks first, so an awake worker is never counted as asleep). */
static bool
all_asleep(tr_runtime *rt, tr_metrics *out)
{
	*out = metrics(rt);
	return out->parks - out->wakes == out->workers;
}

static void
test_work_spreads(void)
{
	tr_runtime *rt = start(2, 0);
	tr_pid p;

	fan_nthreads = 0;
	atomic_store(&fan_done, 0);
	atomic_store(&fan_errors, 0);
	CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &fan_def, NULL, &p));
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	/* Both workers asleep: each must wake to run. */
	tr_metrics m0;
	WAIT_UNTIL(all_asleep(rt, &m0), REPLY_MS);
	CHECK_OK(tr_send(tr_runtime_ctx(rt), p, MSG_FAN, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(rt, IDLE_MS));
	/* And back to sleep. */
	tr_metrics m1;
	WAIT_UNTIL(all_asleep(rt, &m1), REPLY_MS);
	CHECK_EQ_INT(atomic_load(&fan_done), FAN_N);
	CHECK_EQ_INT(atomic_load(&fan_errors), 0);
	pthread_mutex_lock(&fan_lock);
	int nthreads = fan_nthreads;
	pthread_mutex_unlock(&fan_lock);
	printf("  spread: %d threads, %" PRIu64 " steals, %" PRIu64
	       " wakes, %" PRIu64 " parks\n",
	       nthreads, m1.steals - m0.steals, m1.wakes - m0.wakes,
	       m1.parks - m0.parks);
	/* Work made runnable on one worker, which the first child holds:
	 * the idle one must have woken up and taken some. */
	CHECK_EQ_INT(nthreads, 2);
	CHECK(m1.steals > m0.steals);
	CHECK(m1.wakes >= m0.wakes + 2);
	CHECK(m1.parks >= m0.parks + 2);
	finish(rt);
}

static const struct test_case tests[] = {
	{ "metrics: counters move as documented", test_counters_move },
	{ "metrics: bad arguments", test_bad_arguments },
	{ "metrics: JSON snapshot has every key", test_json },
	{ "metrics: scheduling delay is sampled", test_sched_delay_sampled },
	{ "metrics: slow handlers are counted", test_slow_handlers },
	{ "metrics: work spreads to idle workers (steals, wakes)",
	  test_work_spreads },
	{ NULL, NULL },
};

TEST_MAIN(tests)
