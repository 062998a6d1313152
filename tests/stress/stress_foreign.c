/*
 * Stress: foreign threads hammer a runtime with sends, spawns and stops
 * while the runtime is being stopped. Nothing may crash, every actor that
 * was spawned must run its teardown, and the counts must add up:
 * msgs_sent == msgs_handled + dead_letters, and no actor received more
 * than was sent to it (sent - received <= dead letters).
 *
 * Several rounds, each with a new runtime, to meet more interleavings.
 * TROUPE_SEED=<n> repeats a seed (thread interleaving still varies).
 */
#include <troupe/troupe.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define THREADS         6
#define TABLE           256
#define ROUNDS          8
#define OPS_BEFORE_STOP 150000  /* over all threads */
#define OPS_AFTER_STOP  2000    /* per thread, once it saw TR_ECLOSED */
#define MAX_OPS         2000000 /* per thread; a safety net on memory */
#define STOP_WAIT_MS    120000  /* a thread waits this long for the stop */

enum {
	MSG_HIT = 1,
};

struct hit_state {
	uint64_t received;
};

static uint64_t seed;
static atomic_ullong received, teardowns, bad_reasons, ops_done;
static atomic_bool stop_called; /* set once tr_runtime_stop() returned */

static void
hit_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct hit_state *s = state;

	(void)cx;
	if (m->type == MSG_HIT) {
		s->received++;
	}
}

static void
hit_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct hit_state *s = state;

	(void)cx;
	if (reason != TR_EXIT_SHUTDOWN && reason < TR_EXIT_USER) {
		atomic_fetch_add(&bad_reasons, 1);
	}
	atomic_fetch_add(&received, s->received);
	atomic_fetch_add(&teardowns, 1);
}

static const tr_actor_def hit_def = {
	.size = sizeof(tr_actor_def),
	.name = "hit",
	.state_size = sizeof(struct hit_state),
	.teardown = hit_teardown,
	.handle = hit_handle,
};

/* Pids shared by all threads; slots are overwritten by new spawns. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_pid table[TABLE];

struct worker {
	pthread_t thread;
	tr_runtime *rt;
	uint64_t rng;
	uint64_t spawned, sent, stops;
	uint64_t closed_spawns, spawn_errors, send_errors, stop_errors;
};

static uint64_t
next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Du;
}

static tr_pid
table_get(uint64_t r)
{
	pthread_mutex_lock(&table_lock);
	tr_pid p = table[r % TABLE];
	pthread_mutex_unlock(&table_lock);
	return p;
}

static void
table_put(uint64_t r, tr_pid p)
{
	pthread_mutex_lock(&table_lock);
	table[r % TABLE] = p;
	pthread_mutex_unlock(&table_lock);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t after_stop = 0;

	for (uint64_t i = 0; after_stop < OPS_AFTER_STOP; i++) {
		uint64_t r = next_rand(&w->rng);
		unsigned op = (unsigned)(r % 10);
		tr_pid p;
		int err;

		if (i >= MAX_OPS && w->closed_spawns == 0) {
			/*
			 * Done before the stop (the main thread may not run
			 * for a long time on a loaded machine): wait for it,
			 * then see it once, as every thread must.
			 */
			uint64_t until = harness_now_ms() + STOP_WAIT_MS;
			while (!atomic_load(&stop_called) &&
			       harness_now_ms() < until) {
				harness_nap_us(1000);
			}
			err = tr_spawn(tr_runtime_ctx(w->rt), &hit_def, NULL,
				       &p);
			if (err == TR_ECLOSED) {
				w->closed_spawns++;
			} else if (err == TR_OK) {
				w->spawned++;
			} else {
				w->spawn_errors++;
			}
			break;
		}
		if (w->closed_spawns > 0) {
			after_stop++;
		}
		if (op < 2) {
			err = tr_spawn(tr_runtime_ctx(w->rt), &hit_def, NULL,
				       &p);
			if (err == TR_OK) {
				w->spawned++;
				table_put(r >> 16, p);
			} else if (err == TR_ECLOSED) {
				w->closed_spawns++;
			} else {
				w->spawn_errors++;
			}
		} else if (op == 2) {
			err = tr_stop(tr_runtime_ctx(w->rt), table_get(r >> 16),
				      TR_EXIT_USER + (int)(r % 7));
			if (err == TR_OK) {
				w->stops++;
			} else {
				w->stop_errors++;
			}
		} else {
			err = tr_send(tr_runtime_ctx(w->rt), table_get(r >> 16),
				      MSG_HIT, &r, sizeof(r));
			if (err == TR_OK) {
				w->sent++;
			} else {
				w->send_errors++;
			}
		}
		atomic_fetch_add(&ops_done, 1);
	}
	return NULL;
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
one_round(int round)
{
	tr_runtime *rt = NULL;
	tr_config cfg = tr_config_default();
	struct worker w[THREADS];
	uint64_t spawned = 0, sent = 0, stops = 0;
	uint64_t spawn_errors = 0, send_errors = 0, stop_errors = 0;
	uint64_t closed = 0;

	atomic_store(&received, 0);
	atomic_store(&teardowns, 0);
	atomic_store(&bad_reasons, 0);
	atomic_store(&ops_done, 0);
	atomic_store(&stop_called, false);
	cfg.workers = 4;
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	for (int i = 0; i < TABLE; i++) {
		tr_pid p = TR_PID_NONE;
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &hit_def, NULL, &p));
		table[i] = p;
		spawned++;
	}
	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].rt = rt;
		w[i].rng = (seed + (uint64_t)round * 1000003u +
			    (uint64_t)i * 0x9E3779B97F4A7C15u) |
			   1;
		CHECK(pthread_create(&w[i].thread, NULL, worker_main, &w[i]) ==
		      0);
	}
	WAIT_UNTIL(atomic_load(&ops_done) >= OPS_BEFORE_STOP, 60000);
	/* Stop while the threads keep going; they finish some time after
	 * their spawns start failing with TR_ECLOSED. */
	tr_runtime_stop(rt);
	atomic_store(&stop_called, true);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(w[i].thread, NULL);
		spawned += w[i].spawned;
		sent += w[i].sent;
		stops += w[i].stops;
		closed += w[i].closed_spawns;
		spawn_errors += w[i].spawn_errors;
		send_errors += w[i].send_errors;
		stop_errors += w[i].stop_errors;
	}
	CHECK_OK(tr_runtime_join(rt));
	tr_metrics m = metrics(rt);
	uint64_t got = atomic_load(&received);

	printf("  round %d: %" PRIu64 " spawned, %" PRIu64 " sent, %" PRIu64
	       " received, %" PRIu64 " stops, %" PRIu64
	       " closed spawns, %" PRIu64 " dead letters\n",
	       round, spawned, sent, got, stops, closed, m.dead_letters);
	CHECK_EQ_U64(spawn_errors, 0);
	CHECK_EQ_U64(send_errors, 0);
	CHECK_EQ_U64(stop_errors, 0);
	CHECK(closed >= THREADS); /* every thread saw the stop */
	CHECK_EQ_U64(atomic_load(&teardowns), spawned);
	CHECK_EQ_U64(atomic_load(&bad_reasons), 0);
	CHECK_EQ_U64(m.actors_spawned, spawned);
	CHECK_EQ_U64(m.actors_stopped, spawned);
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK(got <= sent);
	/* Each of our messages was handled or is a dead letter; dead
	 * letters also include stops sent to stopped actors. */
	CHECK(sent - got <= m.dead_letters);
	CHECK(m.dead_letters <= sent - got + stops + spawned);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	tr_runtime_destroy(rt);
}

static void
test_foreign_hammer(void)
{
	for (int r = 0; r < ROUNDS; r++) {
		one_round(r);
	}
}

static const struct test_case tests[] = {
	{ "stress: foreign threads hammer a stopping runtime",
	  test_foreign_hammer },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	const char *s = getenv("TROUPE_SEED");

	seed = s != NULL ? strtoull(s, NULL, 0) : (uint64_t)harness_now_ms();
	printf("TROUPE_SEED=%" PRIu64 "\n", seed);
	return harness_run(tests, argc, argv);
}
