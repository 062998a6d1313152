/*
 * Public-API tests of tr_blocking(): the call runs off the workers (a
 * one-worker runtime keeps answering while it blocks), the reply has the
 * right type, sender and pointer, the result is freed exactly once when
 * not taken or when the actor stopped first, the pool runs calls in
 * parallel, and a pending call keeps the runtime from being idle.
 *
 * Blocking functions wait on a pipe the test writes to, so nothing here
 * depends on timing. Handlers never call CHECK.
 */
#include <troupe/troupe.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "fixture.h"

/* Deadlines, generous so that the suite also passes under ThreadSanitizer
 * on a loaded machine: reaching one is a failure. */
#define REPLY_MS 30000
#define IDLE_MS  30000

enum {
	MSG_PING = 1,
	MSG_PONG,
	MSG_GO,      /* struct go */
	MSG_STARTED, /* int32_t: what tr_blocking() returned */
	MSG_DONE,    /* the blocking reply */
	MSG_REPORT,  /* struct report */
	MSG_RDV_GO,
	MSG_RDV_DONE,
};

/* ---- fixture ---------------------------------------------------------- */

/* ---- blocking functions ------------------------------------------------ */

struct job {
	int fd; /* read end of a pipe */
};

struct result {
	char byte;
	pthread_t thread;
};

static atomic_int res_frees;

static void
counting_free(void *p)
{
	atomic_fetch_add(&res_frees, 1);
	free(p);
}

/* Blocks until one byte can be read from the pipe. */
static void *
read_pipe(void *arg)
{
	struct job *j = arg;
	struct result *r = malloc(sizeof(*r));
	char c = 0;
	ssize_t n;

	if (r == NULL) {
		abort();
	}
	do {
		n = read(j->fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	r->byte = n == 1 ? c : 0;
	r->thread = pthread_self();
	return r;
}

/* Waits, up to RDV_S seconds (a failure), until RDV_N calls are inside
 * this function at once. */
#define RDV_N 3
#define RDV_S 30

static pthread_mutex_t rdv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rdv_cond = PTHREAD_COND_INITIALIZER;
static int rdv_inside;
static int rdv_ok = 1;
static int rdv_fail = 0;

static void *
rendezvous(void *arg)
{
	struct timespec deadline;
	bool met = true;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += RDV_S;
	pthread_mutex_lock(&rdv_lock);
	rdv_inside++;
	pthread_cond_broadcast(&rdv_cond);
	while (rdv_inside < RDV_N) {
		if (pthread_cond_timedwait(&rdv_cond, &rdv_lock, &deadline) ==
		    ETIMEDOUT) {
			met = rdv_inside >= RDV_N;
			break;
		}
	}
	pthread_mutex_unlock(&rdv_lock);
	/* Static results: the reply is a pointer with nothing to free. */
	return met ? (void *)&rdv_ok : (void *)&rdv_fail;
}

/* ---- actors ------------------------------------------------------------ */

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING) {
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, NULL, 0);
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

struct go {
	struct job *job;
	int32_t take;
};

struct report {
	int32_t is_ptr;
	int32_t size_zero;
	int32_t from_self;
	int32_t off_worker;
	int32_t byte;
	int32_t took;
};

struct blk {
	tr_pid probe;
	pthread_t worker;
	int32_t take;
};

static atomic_int blk_done_seen;
static atomic_int blk_teardowns;

static void
blk_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct blk *s = state;
	struct go g;

	if (m->type == MSG_GO && payload(m, &g, sizeof(g))) {
		s->probe = tr_sender(cx);
		s->worker = pthread_self();
		s->take = g.take;
		int32_t err = tr_blocking(cx, read_pipe, g.job, MSG_DONE,
					  counting_free);
		(void)tr_send(cx, s->probe, MSG_STARTED, &err, sizeof(err));
	} else if (m->type == MSG_DONE) {
		const struct result *r = m->data;
		struct report rep;
		memset(&rep, 0, sizeof(rep));
		atomic_fetch_add(&blk_done_seen, 1);
		rep.is_ptr = (m->flags & TR_MSG_F_PTR) != 0;
		rep.size_zero = m->size == 0;
		rep.from_self = tr_pid_eq(m->from, tr_self(cx));
		if (r != NULL) {
			rep.off_worker = !pthread_equal(r->thread, s->worker);
			rep.byte = r->byte;
		}
		if (s->take && r != NULL) {
			void *p = tr_msg_take_ptr(cx, m);
			rep.took = p == r;
			free(p); /* ours now: not counting_free */
		}
		(void)tr_send(cx, s->probe, MSG_REPORT, &rep, sizeof(rep));
	}
}

static void
blk_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	(void)reason;
	atomic_fetch_add(&blk_teardowns, 1);
}

static const tr_actor_def blk_def = {
	.size = sizeof(tr_actor_def),
	.name = "blk",
	.state_size = sizeof(struct blk),
	.teardown = blk_teardown,
	.handle = blk_handle,
};

struct rdv {
	tr_pid probe;
	int32_t replies;
	int32_t ok;
};

static void
rdv_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct rdv *s = state;

	if (m->type == MSG_RDV_GO) {
		int32_t err = TR_OK;
		s->probe = tr_sender(cx);
		for (int i = 0; i < RDV_N && err == TR_OK; i++) {
			err = tr_blocking(cx, rendezvous, NULL, MSG_RDV_DONE,
					  NULL);
		}
		(void)tr_send(cx, s->probe, MSG_STARTED, &err, sizeof(err));
	} else if (m->type == MSG_RDV_DONE) {
		s->replies++;
		s->ok += m->data == &rdv_ok;
		if (s->replies == RDV_N) {
			(void)tr_send(cx, s->probe, MSG_REPORT, &s->ok,
				      sizeof(s->ok));
		}
	}
}

static const tr_actor_def rdv_def = {
	.size = sizeof(tr_actor_def),
	.name = "rdv",
	.state_size = sizeof(struct rdv),
	.handle = rdv_handle,
};

/* ---- tests ------------------------------------------------------------- */

static void
reset(void)
{
	atomic_store(&res_frees, 0);
	atomic_store(&blk_done_seen, 0);
	atomic_store(&blk_teardowns, 0);
}

static void
start_blocking(struct fx *f, tr_pid b, struct job *job, int take)
{
	struct go g = { job, take };
	int32_t err = -1000;

	SEND(f, b, MSG_GO, &g, sizeof(g));
	CHECK(fx_recv(f, MSG_STARTED, &err, sizeof(err)));
	CHECK_OK(err);
}

static void
blocking_reply(int take)
{
	struct fx f;
	int fds[2];
	struct job job;
	struct report rep;

	reset();
	CHECK(pipe(fds) == 0);
	job.fd = fds[0];
	/* One worker: if the call ran on it, nothing else could run. */
	fx_start(&f, 1);
	tr_pid b = fx_spawn(&f, &blk_def, NULL);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	start_blocking(&f, b, &job, take);
	WAIT_UNTIL(fx_metrics(&f).blocking_pending == 1, REPLY_MS);
	/* A pending blocking call means the runtime is not idle. */
	CHECK_ERR(tr_runtime_wait_idle(f.rt, 50), TR_ETIMEDOUT);
	for (int i = 0; i < 20; i++) {
		SEND(&f, e, MSG_PING, NULL, 0);
		CHECK(fx_recv(&f, MSG_PONG, NULL, 0));
	}
	CHECK_EQ_INT(atomic_load(&blk_done_seen), 0);
	CHECK(write(fds[1], "k", 1) == 1);
	memset(&rep, 0, sizeof(rep));
	CHECK(fx_recv(&f, MSG_REPORT, &rep, sizeof(rep)));
	CHECK_EQ_INT(rep.is_ptr, 1);
	CHECK_EQ_INT(rep.size_zero, 1);
	CHECK_EQ_INT(rep.from_self, 1);
	CHECK_EQ_INT(rep.off_worker, 1);
	CHECK_EQ_INT(rep.byte, 'k');
	CHECK_EQ_INT(rep.took, take);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_U64(fx_metrics(&f).blocking_pending, 0);
	/* Not taken: the runtime frees it once. Taken: the handler did. */
	WAIT_UNTIL(atomic_load(&res_frees) == (take ? 0 : 1), REPLY_MS);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&res_frees), take ? 0 : 1);
	CHECK_EQ_INT(atomic_load(&blk_done_seen), 1);
	close(fds[0]);
	close(fds[1]);
}

static void
test_blocking_off_worker_not_taken(void)
{
	blocking_reply(0);
}

static void
test_blocking_off_worker_taken(void)
{
	blocking_reply(1);
}

static void
test_blocking_actor_stopped_first(void)
{
	struct fx f;
	int fds[2];
	struct job job;

	reset();
	CHECK(pipe(fds) == 0);
	job.fd = fds[0];
	fx_start(&f, 2);
	tr_pid b = fx_spawn(&f, &blk_def, NULL);
	start_blocking(&f, b, &job, 0);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), b, TR_EXIT_USER));
	WAIT_UNTIL(atomic_load(&blk_teardowns) == 1, REPLY_MS);
	CHECK(write(fds[1], "x", 1) == 1);
	/* The reply has nobody to go to: its result is freed once. */
	WAIT_UNTIL(atomic_load(&res_frees) == 1, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&blk_done_seen), 0);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&res_frees), 1);
	close(fds[0]);
	close(fds[1]);
}

static void
test_blocking_runtime_stop_pending(void)
{
	struct fx f;
	int fds[2];
	struct job job;

	reset();
	CHECK(pipe(fds) == 0);
	job.fd = fds[0];
	fx_start(&f, 2);
	tr_pid b = fx_spawn(&f, &blk_def, NULL);
	start_blocking(&f, b, &job, 0);
	tr_inbox_destroy(f.ib);
	tr_runtime_stop(f.rt);
	/* Released only after the stop began; join waits for the call. */
	CHECK(write(fds[1], "x", 1) == 1);
	CHECK_OK(tr_runtime_join(f.rt));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.blocking_pending, 0);
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_INT(atomic_load(&res_frees), 1);
	CHECK_EQ_INT(atomic_load(&blk_teardowns), 1);
	tr_runtime_destroy(f.rt);
	close(fds[0]);
	close(fds[1]);
}

static void
test_blocking_pool_runs_in_parallel(void)
{
	struct fx f;
	tr_config cfg = tr_config_default();
	int32_t err = -1000, ok = -1;

	rdv_inside = 0;
	cfg.workers = 1;
	cfg.blocking_threads = RDV_N;
	fx_start_cfg(&f, &cfg);
	tr_pid r = fx_spawn(&f, &rdv_def, NULL);
	SEND(&f, r, MSG_RDV_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_STARTED, &err, sizeof(err)));
	CHECK_OK(err);
	/* Each call waits for the others: all must run at the same time. */
	CHECK(fx_recv(&f, MSG_REPORT, &ok, sizeof(ok)));
	CHECK_EQ_INT(ok, RDV_N);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "blocking: runs off the worker, reply not taken is freed",
	  test_blocking_off_worker_not_taken },
	{ "blocking: runs off the worker, reply taken by the handler",
	  test_blocking_off_worker_taken },
	{ "blocking: result freed once when the actor stopped first",
	  test_blocking_actor_stopped_first },
	{ "blocking: runtime stop with a call pending",
	  test_blocking_runtime_stop_pending },
	{ "blocking: the pool runs calls in parallel",
	  test_blocking_pool_runs_in_parallel },
	{ NULL, NULL },
};

TEST_MAIN(tests)
