/*
 * 02_pingpong.c - two actors bounce a message back and forth.
 *
 * It shows:
 *   - an init function that receives a spawn argument (ping learns pong's
 *     pid, the number of round trips and where to report),
 *   - replying to whoever sent the current message with tr_sender(),
 *   - an actor that stops itself with a normal exit reason when done,
 *   - main receiving the final report through a tr_inbox, the way any
 *     non-actor thread gets answers from actors,
 *   - timing the exchange and printing the rate.
 *
 * In asyncio terms this is two tasks connected by two queues, but there is
 * no event loop to share: each handler call is a few nanoseconds of work
 * and the runtime is free to run the two actors on different cores.
 *
 * Run it: ./example-pingpong [round-trips]   (default 1000000)
 */

/* clock_gettime() is POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe/troupe.h>

enum {
	MSG_PING = 1, /* payload: uint64_t round number */
	MSG_PONG,     /* payload: the same round number, sent back */
	MSG_DONE,     /* payload: struct ping_report, sent to main's inbox */
};

/* What main gives ping when it spawns it. */
struct ping_args {
	tr_pid pong;      /* the partner */
	tr_pid report_to; /* main's inbox */
	uint64_t rounds;  /* round trips to make */
};

/* What ping sends to main when it is done. */
struct ping_report {
	uint64_t rounds;
};

/* Ping's state: a copy of its arguments and the round it is on. */
struct ping {
	struct ping_args args;
	uint64_t round;
};

/*
 * Pong has no state at all: it sends every MSG_PING straight back to its
 * sender. tr_sender() is the pid of whoever sent the message being
 * handled, so pong needs no configuration to know whom to answer.
 */
static void
pong_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_PING) {
		return;
	}
	/* Replying copies the payload again; the copy we got is freed by
	 * the runtime when this handler returns. A send error here could
	 * only be TR_ENOMEM, and then ping simply never finishes: main's
	 * timeout reports it. */
	(void)tr_send(cx, tr_sender(cx), MSG_PONG, m->data, m->size);
}

static const tr_actor_def pong_def = {
	.size = sizeof(tr_actor_def),
	.name = "pong",
	.handle = pong_handle,
};

/*
 * Ping's init runs as its first turn, before any message. The spawn
 * argument is only borrowed, so ping copies what it needs into its state.
 * Then it serves the first ball. Returning an error would stop ping with
 * TR_EXIT_INIT_FAILED.
 */
static int
ping_init(tr_ctx *cx, void *state, void *arg)
{
	struct ping *p = state;

	memcpy(&p->args, arg, sizeof(p->args));
	p->round = 1;
	return tr_send(cx, p->args.pong, MSG_PING, &p->round, sizeof(p->round));
}

static void
ping_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct ping *p = state;
	uint64_t round;

	if (m->type != MSG_PONG || m->size != sizeof(round)) {
		return;
	}
	/* Payload bytes carry no alignment promise: copy them out. */
	memcpy(&round, m->data, sizeof(round));
	if (round < p->args.rounds) {
		p->round = round + 1;
		(void)tr_send(cx, p->args.pong, MSG_PING, &p->round,
			      sizeof(p->round));
		return;
	}
	/* Done: tell main, then stop. TR_EXIT_NORMAL means "finished its
	 * work"; links would not treat it as a failure. */
	struct ping_report rep = { .rounds = round };
	(void)tr_send(cx, p->args.report_to, MSG_DONE, &rep, sizeof(rep));
	tr_stop_self(cx, TR_EXIT_NORMAL);
}

static const tr_actor_def ping_def = {
	.size = sizeof(tr_actor_def),
	.name = "ping",
	.state_size = sizeof(struct ping),
	.init = ping_init,
	.handle = ping_handle,
};

static void
check(tr_err err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "%s: %s\n", what, tr_strerror(err));
		exit(1);
	}
}

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
	uint64_t rounds = 1000000;
	tr_runtime *rt;
	tr_inbox *inbox;
	tr_pid pong, ping;
	char buf[2][32];

	if (argc > 1) {
		char *end;

		rounds = strtoull(argv[1], &end, 10);
		if (*end != '\0' || rounds == 0) {
			fprintf(stderr, "usage: %s [round-trips]\n", argv[0]);
			return 2;
		}
	}

	check(tr_runtime_create(NULL, &rt), "tr_runtime_create");
	check(tr_runtime_start(rt), "tr_runtime_start");

	/* An inbox is an actor whose messages main reads with
	 * tr_inbox_recv(). Its pid can be handed to any actor. */
	check(tr_inbox_create(rt, &inbox), "tr_inbox_create");

	/* Pong first, so that ping can be told its pid. The arguments live
	 * on main's stack, which outlives ping's init. */
	check(tr_spawn(tr_runtime_ctx(rt), &pong_def, NULL, &pong),
	      "spawn pong");
	struct ping_args args = {
		.pong = pong,
		.report_to = tr_self(tr_inbox_ctx(inbox)),
		.rounds = rounds,
	};
	double t0 = now_s();
	check(tr_spawn(tr_runtime_ctx(rt), &ping_def, &args, &ping),
	      "spawn ping");
	printf("ping %s <-> pong %s, %" PRIu64 " round trips on %u workers\n",
	       tr_pid_format(ping, buf[0], sizeof(buf[0])),
	       tr_pid_format(pong, buf[1], sizeof(buf[1])), rounds,
	       tr_runtime_workers(rt));

	/* Wait for ping's report, at most 60 s. */
	tr_received r;
	check(tr_inbox_recv(inbox, NULL, 60000, &r), "waiting for ping");
	double secs = now_s() - t0;
	struct ping_report rep = { 0 };
	if (r.type == MSG_DONE && r.size == sizeof(rep)) {
		memcpy(&rep, r.data, sizeof(rep));
	}
	tr_received_fini(&r);
	if (rep.rounds != rounds) {
		fprintf(stderr,
			"ping reported %" PRIu64 " rounds, want %" PRIu64 "\n",
			rep.rounds, rounds);
		return 1;
	}

	/* Two messages per round trip. */
	printf("%" PRIu64 " round trips in %.3f s: %.2f M round trips/s, "
	       "%.2f M msgs/s, %.0f ns per round trip\n",
	       rounds, secs, (double)rounds / secs / 1e6,
	       2.0 * (double)rounds / secs / 1e6, secs * 1e9 / (double)rounds);

	tr_inbox_destroy(inbox);
	tr_runtime_stop(rt);
	check(tr_runtime_join(rt), "tr_runtime_join");
	tr_runtime_destroy(rt);
	return 0;
}
