/*
 * Stress: thousands of actors on every worker send random messages to
 * random actors, some of them stale (stopped before the run) and some
 * that stop themselves during the run. A hop budget makes the traffic
 * end. Every message is counted: at quiescence and after the stop,
 * msgs_sent == msgs_handled + dead_letters, and the user-level counts
 * agree: what the actors received == what was sent - dead letters.
 *
 * TROUPE_SEED=<n> repeats a seed (thread interleaving still varies).
 */
#include <troupe/troupe.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_ACTORS      2000
#define N_STALE       200
#define FANOUT        3
#define HOPS          5
#define ROUNDS        4  /* each with a new runtime */
#define STOPPER_EVERY 50 /* every 50th actor stops itself ... */
#define STOP_AFTER    3  /* ... after handling this many messages */
#define STALE_PERCENT 10

enum {
	MSG_HOP = 1,
};

struct hop {
	uint32_t left;
};

struct node {
	uint32_t id;
	uint64_t rng;
	uint64_t received;
	uint64_t sent_ok;
	uint64_t send_errors;
};

static uint64_t seed;
static tr_pid pids[N_ACTORS];
static tr_pid stale[N_STALE];
static uint64_t received_by[N_ACTORS]; /* written once, at teardown */
static atomic_ullong total_received, total_sent_ok, total_send_errors;
static atomic_ullong teardowns, bad_reasons;

static uint64_t
next_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Du;
}

static int
node_init(tr_ctx *cx, void *state, void *arg)
{
	struct node *s = state;

	(void)cx;
	s->id = (uint32_t)(uintptr_t)arg;
	s->rng = (seed ^ (0x9E3779B97F4A7C15u * (s->id + 1))) | 1;
	return 0;
}

static void
node_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct node *s = state;
	struct hop h;

	if (m->type != MSG_HOP || m->size != sizeof(h)) {
		return;
	}
	memcpy(&h, m->data, sizeof(h));
	s->received++;
	if (h.left > 0) {
		struct hop fwd = { h.left - 1 };
		for (int k = 0; k < FANOUT; k++) {
			uint64_t r = next_rand(&s->rng);
			tr_pid to = r % 100 < STALE_PERCENT
					    ? stale[(r >> 8) % N_STALE]
					    : pids[(r >> 8) % N_ACTORS];
			if (tr_send(cx, to, MSG_HOP, &fwd, sizeof(fwd)) ==
			    TR_OK) {
				s->sent_ok++;
			} else {
				s->send_errors++;
			}
		}
	}
	if (s->id % STOPPER_EVERY == 0 && s->received == STOP_AFTER) {
		/* What is still queued for it becomes dead letters. */
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static void
node_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct node *s = state;

	(void)cx;
	if (s->id >= N_ACTORS) {
		return; /* a stale-to-be actor */
	}
	if (reason != TR_EXIT_NORMAL && reason != TR_EXIT_SHUTDOWN) {
		atomic_fetch_add(&bad_reasons, 1);
	}
	received_by[s->id] = s->received;
	atomic_fetch_add(&total_received, s->received);
	atomic_fetch_add(&total_sent_ok, s->sent_ok);
	atomic_fetch_add(&total_send_errors, s->send_errors);
	atomic_fetch_add(&teardowns, 1);
}

static const tr_actor_def node_def = {
	.size = sizeof(tr_actor_def),
	.name = "node",
	.state_size = sizeof(struct node),
	.init = node_init,
	.teardown = node_teardown,
	.handle = node_handle,
};

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
	uint64_t main_sent = 0;

	atomic_store(&total_received, 0);
	atomic_store(&total_sent_ok, 0);
	atomic_store(&total_send_errors, 0);
	atomic_store(&teardowns, 0);
	atomic_store(&bad_reasons, 0);
	memset(received_by, 0, sizeof(received_by));
	seed += (uint64_t)round * 0x9E3779B97F4A7C15u;
	cfg.workers = 0; /* every core */
	CHECK_OK(tr_runtime_create(&cfg, &rt));
	CHECK_OK(tr_runtime_start(rt));
	unsigned workers = tr_runtime_workers(rt);

	/* Stale pids: actors that stopped before the traffic starts. */
	for (int i = 0; i < N_STALE; i++) {
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &node_def,
				  (void *)(uintptr_t)(N_ACTORS + i),
				  &stale[i]));
		CHECK_OK(tr_stop(tr_runtime_ctx(rt), stale[i], TR_EXIT_NORMAL));
	}
	WAIT_UNTIL(metrics(rt).actors_stopped == N_STALE, 30000);
	for (int i = 0; i < N_ACTORS; i++) {
		CHECK_OK(tr_spawn(tr_runtime_ctx(rt), &node_def,
				  (void *)(uintptr_t)i, &pids[i]));
	}

	uint64_t t0 = harness_now_ms();
	for (int i = 0; i < N_ACTORS; i++) {
		struct hop h = { HOPS };
		if (tr_send(tr_runtime_ctx(rt), pids[i], MSG_HOP, &h,
			    sizeof(h)) == TR_OK) {
			main_sent++;
		}
	}
	CHECK_EQ_U64(main_sent, N_ACTORS);
	CHECK_OK(tr_runtime_wait_idle(rt, 300000));
	uint64_t elapsed = harness_now_ms() - t0;

	/* At quiescence every message is accounted for. */
	tr_metrics q = metrics(rt);
	CHECK_EQ_U64(q.msgs_sent, q.msgs_handled + q.dead_letters);
	CHECK_EQ_U64(q.runq_len[0], 0);

	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	tr_metrics m = metrics(rt);

	uint64_t sent = main_sent + atomic_load(&total_sent_ok);
	uint64_t received = atomic_load(&total_received);
	uint64_t sum = 0;
	for (int i = 0; i < N_ACTORS; i++) {
		sum += received_by[i];
	}
	printf("  round %d: seed %" PRIu64 ", %u workers: %" PRIu64
	       " sent, %" PRIu64 " received, %" PRIu64
	       " dead letters in %" PRIu64 " ms\n",
	       round, seed, workers, sent, received, m.dead_letters, elapsed);
	printf("  runtime: sent %" PRIu64 " handled %" PRIu64 " steals %" PRIu64
	       " parks %" PRIu64 " sched p50 %" PRIu64 " ns p99 %" PRIu64
	       " ns\n",
	       m.msgs_sent, m.msgs_handled, m.steals, m.parks,
	       m.sched_delay_p50_ns, m.sched_delay_p99_ns);
	CHECK_EQ_U64(atomic_load(&teardowns), N_ACTORS);
	CHECK_EQ_U64(atomic_load(&bad_reasons), 0);
	CHECK_EQ_U64(atomic_load(&total_send_errors), 0);
	CHECK_EQ_U64(sum, received);
	/* The stops here carry no user message, so every dead letter is
	 * one of ours. */
	CHECK_EQ_U64(received + m.dead_letters, sent);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_U64(m.actors_spawned, N_ACTORS + N_STALE);
	CHECK_EQ_U64(m.actors_stopped, N_ACTORS + N_STALE);
	/* Dead letters did happen (stale targets), or the test is weak. */
	CHECK(m.dead_letters > 0);
	tr_runtime_destroy(rt);
}

static void
test_counting(void)
{
	for (int r = 0; r < ROUNDS; r++) {
		one_round(r);
	}
}

static const struct test_case tests[] = {
	{ "stress: counting every message", test_counting },
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
