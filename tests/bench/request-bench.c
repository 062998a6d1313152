/*
 * request-bench: round trips of one request at a time between two actors,
 * two ways, to measure what a request costs over a plain message:
 *
 *     request-bench send [n]      plain tr_send there and back (the floor)
 *     request-bench request [n]   tr_request + tr_reply (the core's)
 *
 * It also measured the standard actors' ask (tr_ask, a proxy actor, two
 * monitors and a timer per call), which core requests replaced; that
 * module was removed, and its figure is kept in docs/BENCHMARKS.md.
 *
 * Workers from $BENCH_THREADS (default: online cores). Prints one JSON
 * line like troupe-bench: {"bench":"request","threads":2,"n":...,
 * "wall_s":...,"rate":...,"unit":"round_trips/s","check":"ok"}; the check
 * is that every round trip returned the value it sent plus one, as the
 * reply to its own request. Exit 0 when the check holds, 1 otherwise.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <troupe/troupe.h>

enum { START = 1, ASK, ANSWER, DONE };
enum mode { M_SEND, M_REQUEST };

static enum mode g_mode;

struct start {
	tr_pid server;
	uint64_t n;
};

struct asker {
	tr_pid server;
	tr_pid report;
	uint64_t n, done;
	uint64_t want; /* the reference of the request in flight */
	bool bad;
};

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const uint64_t *v = TR_MSG_AS(m, uint64_t);
	uint64_t r = v != NULL ? *v + 1 : 0;

	/* A plain send is answered by a plain send. */
	(void)tr_reply(cx, m, ANSWER, &r, sizeof(r));
}

static void
ask_next(tr_ctx *cx, struct asker *a)
{
	uint64_t v = a->done;
	tr_err err = TR_OK;

	switch (g_mode) {
	case M_SEND:
		err = tr_send(cx, a->server, ASK, &v, sizeof(v));
		break;
	case M_REQUEST: {
		tr_ref ref;
		err = tr_request(cx, a->server, ASK, &v, sizeof(v), 5000, &ref);
		a->want = ref.v;
		break;
	}
	}
	if (err != TR_OK) {
		a->bad = true;
	}
}

static void
asker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct asker *a = state;
	uint64_t got = UINT64_MAX;

	if (m->type == START) {
		const struct start *s = TR_MSG_AS(m, struct start);
		if (s == NULL) {
			abort();
		}
		a->server = s->server;
		a->n = s->n;
		a->report = m->from;
		ask_next(cx, a);
		return;
	}
	const uint64_t *v = TR_MSG_AS(m, uint64_t);
	if (m->type != ANSWER || v == NULL ||
	    (g_mode == M_REQUEST && m->ref.v != a->want)) {
		a->bad = true;
	} else {
		got = *v;
	}
	if (got != a->done + 1) {
		a->bad = true;
	}
	if (++a->done == a->n || a->bad) {
		uint64_t res[2] = { a->done, a->bad };
		(void)tr_send(cx, a->report, DONE, res, sizeof(res));
		return;
	}
	ask_next(cx, a);
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "server",
	.handle = server_handle,
};

static const tr_actor_def asker_def = {
	.size = sizeof(tr_actor_def),
	.name = "asker",
	.state_size = sizeof(struct asker),
	.handle = asker_handle,
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: request-bench send|request [n]\n");
		return 2;
	}
	const char *name = argv[1];
	if (strcmp(name, "send") == 0) {
		g_mode = M_SEND;
	} else if (strcmp(name, "request") == 0) {
		g_mode = M_REQUEST;
	} else {
		fprintf(stderr, "request-bench: unknown mode %s\n", name);
		return 2;
	}
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	const char *th = getenv("BENCH_THREADS");
	unsigned threads = th != NULL ? (unsigned)atoi(th)
				      : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	tr_config cfg = tr_config_default();
	cfg.workers = threads;
	tr_runtime *rt;
	tr_inbox *ib;
	if (n == 0 || tr_runtime_create(&cfg, &rt) != TR_OK ||
	    tr_runtime_start(rt) != TR_OK ||
	    tr_inbox_create(rt, &ib) != TR_OK) {
		fprintf(stderr, "request-bench: cannot start\n");
		return 2;
	}
	tr_ctx *cx = tr_inbox_ctx(ib);
	tr_pid server, asker;
	if (tr_spawn(cx, &server_def, NULL, &server) != TR_OK ||
	    tr_spawn(cx, &asker_def, NULL, &asker) != TR_OK) {
		fprintf(stderr, "request-bench: cannot spawn\n");
		return 2;
	}
	struct start st = { server, n };
	double t0 = now_s();
	tr_received r;
	uint64_t res[2] = { 0, 1 };
	if (tr_send(cx, asker, START, &st, sizeof(st)) != TR_OK ||
	    tr_inbox_recv(ib, NULL, 600000, &r) != TR_OK) {
		fprintf(stderr, "request-bench: no report\n");
		return 2;
	}
	double wall = now_s() - t0;
	const uint64_t *got = (const uint64_t *)r.data;
	if (r.type == DONE && r.size == sizeof(res)) {
		memcpy(res, got, sizeof(res));
	}
	tr_received_fini(&r);
	bool ok = res[0] == n && res[1] == 0;
	printf("{\"impl\":\"troupe\",\"bench\":\"%s\",\"threads\":%u,"
	       "\"n\":%" PRIu64 ",\"wall_s\":%.6f,\"rate\":%.1f,"
	       "\"unit\":\"round_trips/s\",\"check\":\"%s\"}\n",
	       name, threads, n, wall, (double)n / wall,
	       ok ? "ok" : "fail: a round trip went wrong");
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	(void)tr_runtime_join(rt);
	tr_runtime_destroy(rt);
	return ok ? 0 : 1;
}
