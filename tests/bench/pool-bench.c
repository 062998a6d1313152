/*
 * pool-bench: messages routed through a pool, to measure what the pool's
 * choice of a worker costs:
 *
 *     pool-bench round_robin|hash W [n]
 *
 * A thread routes n messages (a 64-bit payload; for `hash` also the key,
 * the message's number) through a pool of W workers that count them, then
 * waits until the runtime is idle. Workers from $BENCH_THREADS (default:
 * online cores). Prints one JSON line like troupe-bench, with the rate in
 * msgs/s; the check is that the workers got all n messages (which
 * worker a key reaches is the pool tests' job: tests/actors/test_pool.c).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <troupe/actors/pool.h>
#include <troupe/troupe.h>

enum { MSG = 1 };

static _Atomic uint64_t got;

static void
count_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == MSG && TR_MSG_AS(m, uint64_t) != NULL) {
		atomic_fetch_add_explicit(&got, 1, memory_order_relaxed);
	}
}

static const tr_actor_def count_def = {
	.size = sizeof(tr_actor_def),
	.name = "count",
	.handle = count_handle,
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pool-bench round_robin|hash W [n]\n");
		return 2;
	}
	const char *name = argv[1];
	tr_pool_strategy how;
	if (strcmp(name, "round_robin") == 0) {
		how = TR_POOL_ROUND_ROBIN;
	} else if (strcmp(name, "hash") == 0) {
		how = TR_POOL_CONSISTENT_HASH;
	} else {
		fprintf(stderr, "pool-bench: unknown strategy %s\n", name);
		return 2;
	}
	uint32_t w = (uint32_t)strtoul(argv[2], NULL, 10);
	uint64_t n = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000000;
	const char *th = getenv("BENCH_THREADS");
	unsigned threads = th != NULL ? (unsigned)atoi(th)
				      : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	tr_config cfg = tr_config_default();
	cfg.workers = threads;
	tr_runtime *rt;
	tr_inbox *ib;
	if (n == 0 || w == 0 || tr_runtime_create(&cfg, &rt) != TR_OK ||
	    tr_runtime_start(rt) != TR_OK ||
	    tr_inbox_create(rt, &ib) != TR_OK) {
		fprintf(stderr, "pool-bench: cannot start\n");
		return 2;
	}
	tr_ctx *cx = tr_inbox_ctx(ib);
	tr_pool_config pc = { .size = sizeof(pc),
			      .def = &count_def,
			      .workers = w };
	tr_pid pool;
	tr_ref ref;
	tr_received r;
	if (tr_pool_start(cx, &pc, &pool, &ref) != TR_OK ||
	    tr_inbox_recv(ib, &ref, 60000, &r) != TR_OK) {
		fprintf(stderr, "pool-bench: the pool did not start\n");
		return 2;
	}
	tr_received_fini(&r);
	double t0 = now_s();
	bool sent = true;
	for (uint64_t i = 0; i < n && sent; i++) {
		sent = tr_pool_route(cx, pool, how, i, MSG, &i, sizeof(i)) ==
		       TR_OK;
	}
	bool idle = tr_runtime_wait_idle(rt, 600000) == TR_OK;
	double wall = now_s() - t0;
	uint64_t all = atomic_load(&got);
	bool ok = sent && idle && all == n;
	printf("{\"impl\":\"troupe\",\"bench\":\"pool-%s-%u\",\"threads\":%u,"
	       "\"n\":%" PRIu64 ",\"wall_s\":%.6f,\"rate\":%.1f,"
	       "\"unit\":\"msgs/s\",\"check\":\"%s\"}\n",
	       name, (unsigned)w, threads, n, wall, (double)n / wall,
	       ok ? "ok" : "fail: messages were lost");
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	(void)tr_runtime_join(rt);
	tr_runtime_destroy(rt);
	return ok ? 0 : 1;
}
