/*
 * troupe-bench: the single-node workloads of the benchmark specification
 * (shared/bench/WORKLOADS.md), written against the public API only.
 *
 *     troupe-bench <bench> [n]     workers from $BENCH_THREADS (default:
 *                                  online cores), watchdog $BENCH_TIMEOUT
 *                                  seconds (default 600); BENCH_METRICS=1
 *                                  prints the runtime metrics on stderr;
 *                                  BENCH_CHUNK sets the messages a sender
 *                                  sends per handler call (0: all at once)
 *                                  BENCH_IO_DEDICATED=1 the runtime's
 *                                  io_dedicated and BENCH_PIN=1 its
 *                                  pin_workers
 *
 * The program prints exactly one JSON line on stdout, for example
 *     {"impl":"troupe","bench":"pingpong","threads":2,"n":1000000,
 *      "wall_s":0.53,"rate":1886792.5,"unit":"round_trips/s","check":"ok"}
 * and exits 0 when the check is exact, 1 when it is not, 2 on a bad command
 * line and 3 when the watchdog fired.
 *
 * Threads: the main thread creates and starts the runtime, spawns the
 * long-lived actors, starts the workload with tr_send() on an inbox's
 * context, and waits for the final report with tr_inbox_recv(): the inbox
 * is the reporting target of every workload. Handlers run on the workers.
 * bench_fail() may be called from any thread and ends the process; the
 * watchdog runs in a signal handler and does the same.
 *
 * Invariants: every logical message is one troupe message (tr_send);
 * nothing is batched and actors share no mutable memory. The only memory
 * two actors see is a pid table that the main thread fills before the
 * workload starts and does not change while it runs; a pointer to it
 * travels inside a copied setup message, the way a shared immutable message
 * would. wall_s covers the workload only: the runtime is started before and
 * stopped after the clock runs.
 */

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <troupe/net/net.h>
#include <troupe/troupe.h>

/* Message types; all below TR_MSG_SYSTEM_BASE. */
enum {
	MSG_START = 1, /* main thread -> actor: begin (payload per workload) */
	MSG_SETUP,     /* main thread -> actor: configuration, before timing */
	MSG_CONT,      /* actor -> itself: send the next chunk */
	MSG_PING,
	MSG_PONG,
	MSG_INC,
	MSG_GET,
	MSG_TOTAL,
	MSG_DATA,
	MSG_TOKEN,
	MSG_REQ,
	MSG_ANS,
	MSG_GO,
	MSG_TASK,
	MSG_RESULT,
	MSG_DONE, /* actor -> inbox: the final report */
};

/*
 * Senders in counting and fanin send at most this many messages per
 * handler call and then send themselves MSG_CONT for the next chunk. The
 * handler returns between chunks and MSG_CONT waits for the sender's next
 * turn, so the receiver runs in between. Every message is still its own
 * message; the chunk only decides where the sender's handler returns.
 *
 * The chunk equals the runtime's default batch (100 messages per turn), so
 * one sender turn gives the receiver one turn's worth of work. Measured at
 * the default n on two workers, fanin reached 36M msgs/s with chunks of
 * 100 against 16M with 50 and 6M with 200; counting ran at 34M to 38M
 * with chunks of 20 to 200 and at 11M with 1000. Before the runtime had
 * sender backpressure, chunks of 1000 left nearly all n messages queued
 * on one worker (about 1 GB). MSG_CONT adds 1% to the messages sent.
 * BENCH_CHUNK=auto lets tr_should_yield() decide instead, which is what
 * an application should do (GUIDE, section 9).
 */
#define SEND_CHUNK 100u

/*
 * The chunk in use: SEND_CHUNK, or $BENCH_CHUNK (0: no chunks, a sender
 * sends all its messages in one handler call; "auto": the sender returns
 * when tr_should_yield() says so), to compare them.
 */
static uint64_t g_chunk = SEND_CHUNK;
static bool g_chunk_auto;

/* A sender that has sent @i messages in this call: return now? */
static bool
chunk_over(tr_ctx *cx, uint64_t i)
{
	return g_chunk_auto ? tr_should_yield(cx) : i >= g_chunk;
}

#define FANIN_SENDERS    20u
#define FANOUT_CONSUMERS 20u
#define RING_SIZE        503u
#define BIG_ACTORS       1000u
#define COMPUTE_WORKERS  1000u
#define COMPUTE_ITERS    20000u
#define COMPUTE_MUL      6364136223846793005ull
#define COMPUTE_ADD      1442695040888963407ull

/* The largest pid table a workload needs (big and compute: 1000). */
#define MAX_TABLE 1000u

/* How long a post-workload condition (actors gone, runtime idle) may take. */
#define SETTLE_MS 30000

struct bench {
	tr_runtime *rt;
	tr_inbox *inbox;
	tr_pid inbox_pid;
	uint64_t n;
	double wall_s;
	bool has_rate; /* rate is not n / wall_s (big, idle) */
	double rate;
	char why[192];  /* empty while the check holds */
	char extra[96]; /* more JSON fields, starting with a comma, or "" */
	tr_pid *idle_pids;
	/* Two-node workloads: this node, node B's process and its stdin. */
	tr_net *net;
	pid_t child;
	int to_child;
	uint64_t retries;
	/* Filled before a workload starts and immutable while it runs. */
	tr_pid table[MAX_TABLE];
};

struct workload {
	const char *name;
	uint64_t default_n;
	const char *unit;
	void (*run)(struct bench *b);
};

/* ------------------------------------------------------------------------
 * Reporting, failure and the watchdog
 */

/* Set once by whoever prints the one JSON line (result, failure, alarm). */
static atomic_int g_reported;

/* The JSON prefix up to and including "n":..., and the unit. */
static char g_head[160];
static const char *g_unit = "";

/* Preformatted at start-up because the alarm handler may not format. */
static char g_timeout_line[320];
static size_t g_timeout_len;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double
now_s(void)
{
	return (double)now_ns() * 1e-9;
}

/*
 * True for the one caller that may print the result line. The exchange is
 * acq_rel so that whichever of main, a handler or the alarm handler wins,
 * the others see the claim (each exchange pairs with the others).
 */
static bool
claim_report(void)
{
	return atomic_exchange_explicit(&g_reported, 1, memory_order_acq_rel) ==
	       0;
}

/*
 * Make a reason safe inside a JSON string: quotes, backslashes and control
 * characters become an apostrophe, which is all these texts need.
 */
static void
json_clean(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) {
			*s = '\'';
		}
	}
}

/*
 * Print the failed result line once and end the process. Called from
 * handlers too: a failed send or an unexpected message means the result
 * can no longer be exact, and ending at once beats waiting for the watchdog.
 */
__attribute__((format(printf, 1, 2))) static _Noreturn void
bench_fail(const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	json_clean(why);
	if (claim_report()) {
		printf("%s,\"wall_s\":0,\"rate\":0,\"unit\":\"%s\","
		       "\"check\":\"fail: %s\"}\n",
		       g_head, g_unit, why);
		fflush(stdout);
	}
	_exit(1);
}

static void
on_alarm(int sig)
{
	(void)sig;
	if (claim_report()) {
		if (write(STDOUT_FILENO, g_timeout_line, g_timeout_len) < 0) {
			/* Nobody to tell: exit status 3 says it. */
		}
	}
	_exit(3);
}

static void
watchdog_arm(void)
{
	const char *env = getenv("BENCH_TIMEOUT");
	long secs = env != NULL ? strtol(env, NULL, 10) : 0;
	struct sigaction sa;

	if (secs <= 0) {
		secs = 600;
	}
	snprintf(g_timeout_line, sizeof(g_timeout_line),
		 "%s,\"wall_s\":0,\"rate\":0,\"unit\":\"%s\","
		 "\"check\":\"fail: watchdog fired after %ld s\"}\n",
		 g_head, g_unit, secs);
	g_timeout_len = strlen(g_timeout_line);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)secs);
}

static void
must(tr_err err, const char *what)
{
	if (err < 0) {
		bench_fail("%s: %s", what, tr_err_name(err));
	}
}

/* Record why the check failed (the first reason wins). */
__attribute__((format(printf, 2, 3))) static void
check_fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->why[0] != '\0') {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------
 * Helpers for handlers
 */

static inline void
send_msg(tr_ctx *cx, tr_pid to, uint32_t type, const void *data, size_t len)
{
	tr_err err = tr_send(cx, to, type, data, len);

	if (err < 0) {
		bench_fail("tr_send type %" PRIu32 ": %s", type,
			   tr_err_name(err));
	}
}

static inline void
send_u64(tr_ctx *cx, tr_pid to, uint32_t type, uint64_t x)
{
	send_msg(cx, to, type, &x, sizeof(x));
}

/* Copy a payload out; the data pointer need not be aligned for @out. */
static inline void
msg_read(const tr_msg *m, void *out, size_t len)
{
	if (m->size != len || m->data == NULL) {
		bench_fail("message type %" PRIu32 " has %zu bytes, want %zu",
			   m->type, m->size, len);
	}
	memcpy(out, m->data, len);
}

static inline uint64_t
msg_u64(const tr_msg *m)
{
	uint64_t x;

	msg_read(m, &x, sizeof(x));
	return x;
}

static _Noreturn void
unexpected(const char *who, const tr_msg *m)
{
	bench_fail("%s got unexpected message type %" PRIu32, who, m->type);
}

/* ------------------------------------------------------------------------
 * Helpers for the main thread
 */

static tr_pid
spawn_main(struct bench *b, const tr_actor_def *def)
{
	tr_pid pid;

	must(tr_spawn(tr_runtime_ctx(b->rt), def, NULL, &pid), "tr_spawn");
	return pid;
}

/* Send from the inbox, so that the receiver's replies come back to it. */
static void
send_main(struct bench *b, tr_pid to, uint32_t type, const void *data,
	  size_t len)
{
	must(tr_send(tr_inbox_ctx(b->inbox), to, type, data, len), "tr_send");
}

static void
send_u64_main(struct bench *b, tr_pid to, uint32_t type, uint64_t x)
{
	send_main(b, to, type, &x, sizeof(x));
}

/* Wait for the next report; it must be of @type with exactly @len bytes. */
static void
recv_report(struct bench *b, uint32_t type, void *out, size_t len)
{
	tr_received r;

	/* No timeout here: the watchdog bounds the whole run. */
	must(tr_inbox_recv(b->inbox, NULL, -1, &r), "tr_inbox_recv");
	if (r.type != type || r.size != len) {
		bench_fail("report of type %" PRIu32 " with %zu bytes, "
			   "want type %" PRIu32 " with %zu",
			   r.type, r.size, type, len);
	}
	if (len > 0) {
		memcpy(out, r.data, len);
	}
	tr_received_fini(&r);
}

static tr_metrics
metrics(struct bench *b)
{
	tr_metrics m = { .size = sizeof(m) };

	must(tr_runtime_metrics(b->rt, &m), "tr_runtime_metrics");
	return m;
}

/*
 * Let setup messages be handled before the clock starts, so that setup is
 * not timed and no workload message can overtake it.
 */
static void
settle(struct bench *b)
{
	must(tr_runtime_wait_idle(b->rt, SETTLE_MS), "settle");
}

/*
 * Wait until actors_alive is @want, in a bounded loop of waits for the
 * runtime to go idle: an actor leaves the count only once the runtime has
 * finished stopping it, which can lag behind its last message. Return the
 * last count seen.
 */
static uint64_t
wait_alive(struct bench *b, uint64_t want)
{
	double deadline = now_s() + SETTLE_MS / 1000.0;

	for (;;) {
		uint64_t alive = metrics(b).actors_alive;

		if (alive == want || now_s() > deadline) {
			return alive;
		}
		tr_err err = tr_runtime_wait_idle(b->rt, 100);
		if (err < 0 && err != TR_ETIMEDOUT) {
			must(err, "tr_runtime_wait_idle");
		}
	}
}

/* ------------------------------------------------------------------------
 * pingpong: n round trips between two actors, one at a time
 */

struct ping {
	tr_pid pong;
	tr_pid report;
	uint64_t n;
	uint64_t received;
};

struct ping_start {
	tr_pid pong;
	uint64_t n;
};

static void
pong_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_PING) {
		unexpected("pong", m);
	}
	send_u64(cx, m->from, MSG_PONG, msg_u64(m));
}

static void
ping_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct ping *p = state;

	switch (m->type) {
	case MSG_START: {
		struct ping_start s;

		msg_read(m, &s, sizeof(s));
		p->pong = s.pong;
		p->n = s.n;
		p->report = m->from;
		send_u64(cx, p->pong, MSG_PING, 1);
		break;
	}
	case MSG_PONG: {
		uint64_t x = msg_u64(m);

		/* The echo must be the value of the ping in flight. */
		if (x != p->received + 1) {
			bench_fail("pingpong: echo %" PRIu64 " for ping "
				   "%" PRIu64,
				   x, p->received + 1);
		}
		if (++p->received == p->n) {
			send_u64(cx, p->report, MSG_DONE, p->received);
		} else {
			send_u64(cx, p->pong, MSG_PING, x + 1);
		}
		break;
	}
	default:
		unexpected("ping", m);
	}
}

static const tr_actor_def pong_def = {
	.size = sizeof(tr_actor_def),
	.name = "pong",
	.handle = pong_handle,
};

static const tr_actor_def ping_def = {
	.size = sizeof(tr_actor_def),
	.name = "ping",
	.state_size = sizeof(struct ping),
	.handle = ping_handle,
};

static void
run_pingpong(struct bench *b)
{
	struct ping_start s = { .pong = spawn_main(b, &pong_def), .n = b->n };
	tr_pid ping = spawn_main(b, &ping_def);
	uint64_t got;

	double t0 = now_s();
	send_main(b, ping, MSG_START, &s, sizeof(s));
	recv_report(b, MSG_DONE, &got, sizeof(got));
	b->wall_s = now_s() - t0;
	if (got != b->n) {
		check_fail(b, "answers=%" PRIu64, got);
	}
}

/* ------------------------------------------------------------------------
 * counting: n `inc` messages, then one `get` answered with the total
 */

struct counter {
	uint64_t count;
};

struct producer {
	tr_pid counter;
	tr_pid report;
	uint64_t n;
	uint64_t sent;
};

struct producer_start {
	tr_pid counter;
	uint64_t n;
};

static void
counter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct counter *c = state;

	switch (m->type) {
	case MSG_INC:
		c->count++;
		break;
	case MSG_GET:
		send_u64(cx, m->from, MSG_TOTAL, c->count);
		break;
	default:
		unexpected("counter", m);
	}
}

/* One chunk of inc messages; see SEND_CHUNK for why it is chunked. */
static void
producer_chunk(tr_ctx *cx, struct producer *p)
{
	for (uint64_t i = 0; p->sent < p->n;) {
		send_msg(cx, p->counter, MSG_INC, NULL, 0);
		p->sent++;
		if (chunk_over(cx, ++i)) {
			break;
		}
	}
	if (p->sent < p->n) {
		send_msg(cx, tr_self(cx), MSG_CONT, NULL, 0);
	} else {
		/* Same sender, same receiver: FIFO puts it after every inc. */
		send_msg(cx, p->counter, MSG_GET, NULL, 0);
	}
}

static void
producer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct producer *p = state;

	switch (m->type) {
	case MSG_START: {
		struct producer_start s;

		msg_read(m, &s, sizeof(s));
		p->counter = s.counter;
		p->n = s.n;
		p->report = m->from;
		producer_chunk(cx, p);
		break;
	}
	case MSG_CONT:
		producer_chunk(cx, p);
		break;
	case MSG_TOTAL:
		send_u64(cx, p->report, MSG_DONE, msg_u64(m));
		break;
	default:
		unexpected("producer", m);
	}
}

static const tr_actor_def counter_def = {
	.size = sizeof(tr_actor_def),
	.name = "counter",
	.state_size = sizeof(struct counter),
	.handle = counter_handle,
};

static const tr_actor_def producer_def = {
	.size = sizeof(tr_actor_def),
	.name = "producer",
	.state_size = sizeof(struct producer),
	.handle = producer_handle,
};

static void
run_counting(struct bench *b)
{
	struct producer_start s = {
		.counter = spawn_main(b, &counter_def),
		.n = b->n,
	};
	tr_pid producer = spawn_main(b, &producer_def);
	uint64_t total;

	double t0 = now_s();
	send_main(b, producer, MSG_START, &s, sizeof(s));
	recv_report(b, MSG_DONE, &total, sizeof(total));
	b->wall_s = now_s() - t0;
	if (total != b->n) {
		check_fail(b, "total=%" PRIu64, total);
	}
}

/* ------------------------------------------------------------------------
 * fanin: 20 senders, n messages in all, one receiver
 */

struct fanin_receiver {
	tr_pid report;
	uint64_t n; /* 0 until MSG_SETUP arrived */
	uint64_t count;
};

struct fanin_sender {
	tr_pid to;
	uint64_t left;
};

static void
fanin_receiver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fanin_receiver *r = state;

	switch (m->type) {
	case MSG_SETUP:
		r->n = msg_u64(m);
		r->report = m->from;
		break;
	case MSG_DATA:
		if (++r->count == r->n) {
			send_u64(cx, r->report, MSG_DONE, r->count);
		}
		break;
	case MSG_GET:
		/* After the report: proves no message arrived beyond n. */
		send_u64(cx, m->from, MSG_TOTAL, r->count);
		break;
	default:
		unexpected("fanin receiver", m);
	}
}

/* One chunk of data messages; see SEND_CHUNK for why it is chunked. */
static void
fanin_sender_chunk(tr_ctx *cx, struct fanin_sender *s)
{
	for (uint64_t i = 0; s->left > 0;) {
		send_msg(cx, s->to, MSG_DATA, NULL, 0);
		s->left--;
		if (chunk_over(cx, ++i)) {
			break;
		}
	}
	if (s->left > 0) {
		send_msg(cx, tr_self(cx), MSG_CONT, NULL, 0);
	}
}

static void
fanin_sender_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fanin_sender *s = state;

	switch (m->type) {
	case MSG_START:
		msg_read(m, s, sizeof(*s));
		fanin_sender_chunk(cx, s);
		break;
	case MSG_CONT:
		fanin_sender_chunk(cx, s);
		break;
	default:
		unexpected("fanin sender", m);
	}
}

static const tr_actor_def fanin_receiver_def = {
	.size = sizeof(tr_actor_def),
	.name = "fanin_receiver",
	.state_size = sizeof(struct fanin_receiver),
	.handle = fanin_receiver_handle,
};

static const tr_actor_def fanin_sender_def = {
	.size = sizeof(tr_actor_def),
	.name = "fanin_sender",
	.state_size = sizeof(struct fanin_sender),
	.handle = fanin_sender_handle,
};

static void
run_fanin(struct bench *b)
{
	tr_pid receiver = spawn_main(b, &fanin_receiver_def);
	tr_pid senders[FANIN_SENDERS];
	uint64_t count;

	for (unsigned i = 0; i < FANIN_SENDERS; i++) {
		senders[i] = spawn_main(b, &fanin_sender_def);
	}
	send_main(b, receiver, MSG_SETUP, &b->n, sizeof(b->n));
	settle(b);

	double t0 = now_s();
	for (unsigned i = 0; i < FANIN_SENDERS; i++) {
		/* n need not divide by 20: the first n % 20 send one more. */
		struct fanin_sender s = {
			.to = receiver,
			.left = b->n / FANIN_SENDERS +
				(i < b->n % FANIN_SENDERS ? 1 : 0),
		};
		send_main(b, senders[i], MSG_START, &s, sizeof(s));
	}
	recv_report(b, MSG_DONE, &count, sizeof(count));
	b->wall_s = now_s() - t0;
	if (count != b->n) {
		check_fail(b, "count=%" PRIu64, count);
		return;
	}
	/* Not timed: once every sender is done, the count must still be n. */
	settle(b);
	send_main(b, receiver, MSG_GET, NULL, 0);
	recv_report(b, MSG_TOTAL, &count, sizeof(count));
	if (count != b->n) {
		check_fail(b, "count=%" PRIu64 " once all senders finished",
			   count);
	}
}

/* ------------------------------------------------------------------------
 * ring: 503 actors, one token passed for n hops
 */

struct ring_node {
	tr_pid next;
	tr_pid report;
	uint64_t n;
};

struct ring_setup {
	tr_pid next;
	uint64_t n;
};

static void
ring_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct ring_node *r = state;

	switch (m->type) {
	case MSG_SETUP: {
		struct ring_setup s;

		msg_read(m, &s, sizeof(s));
		r->next = s.next;
		r->n = s.n;
		r->report = m->from;
		break;
	}
	case MSG_TOKEN: {
		/* The token carries the number of hops made so far. */
		uint64_t hops = msg_u64(m);

		if (tr_pid_is_none(r->next)) {
			bench_fail("ring: token before setup");
		}
		if (hops == r->n) {
			send_u64(cx, r->report, MSG_DONE, hops);
		} else {
			send_u64(cx, r->next, MSG_TOKEN, hops + 1);
		}
		break;
	}
	default:
		unexpected("ring node", m);
	}
}

static const tr_actor_def ring_def = {
	.size = sizeof(tr_actor_def),
	.name = "ring",
	.state_size = sizeof(struct ring_node),
	.handle = ring_handle,
};

static void
run_ring(struct bench *b)
{
	uint64_t hops = 0;

	for (unsigned i = 0; i < RING_SIZE; i++) {
		b->table[i] = spawn_main(b, &ring_def);
	}
	for (unsigned i = 0; i < RING_SIZE; i++) {
		struct ring_setup s = {
			.next = b->table[(i + 1) % RING_SIZE],
			.n = b->n,
		};
		send_main(b, b->table[i], MSG_SETUP, &s, sizeof(s));
	}
	settle(b);

	double t0 = now_s();
	send_main(b, b->table[0], MSG_TOKEN, &hops, sizeof(hops));
	recv_report(b, MSG_DONE, &hops, sizeof(hops));
	b->wall_s = now_s() - t0;
	if (hops != b->n) {
		check_fail(b, "hops=%" PRIu64, hops);
	}
}

/* ------------------------------------------------------------------------
 * spawn: a driver spawns n actors strictly one after another
 */

struct spawn_driver {
	tr_pid report;
	uint64_t n;
	uint64_t spawned;
	uint64_t answers;
	uint64_t sum;
};

struct spawn_done {
	uint64_t answers;
	uint64_t sum;
};

/* The child answers the one message it gets and terminates. */
static void
spawn_child_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_REQ) {
		unexpected("spawn child", m);
	}
	send_u64(cx, m->from, MSG_ANS, msg_u64(m));
	tr_stop_self(cx, TR_EXIT_NORMAL);
}

/* No state and no init: a child costs nothing until its one message. */
static const tr_actor_def spawn_child_def = {
	.size = sizeof(tr_actor_def),
	.name = "spawn_child",
	.handle = spawn_child_handle,
};

static void
spawn_next(tr_ctx *cx, struct spawn_driver *d)
{
	tr_pid child;

	must(tr_spawn(cx, &spawn_child_def, NULL, &child), "tr_spawn");
	send_u64(cx, child, MSG_REQ, d->spawned++);
}

static void
spawn_driver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct spawn_driver *d = state;

	switch (m->type) {
	case MSG_START:
		d->n = msg_u64(m);
		d->report = m->from;
		spawn_next(cx, d);
		break;
	case MSG_ANS:
		d->sum += msg_u64(m);
		if (++d->answers == d->n) {
			struct spawn_done r = { d->answers, d->sum };

			send_msg(cx, d->report, MSG_DONE, &r, sizeof(r));
			tr_stop_self(cx, TR_EXIT_NORMAL);
		} else {
			spawn_next(cx, d);
		}
		break;
	default:
		unexpected("spawn driver", m);
	}
}

static const tr_actor_def spawn_driver_def = {
	.size = sizeof(tr_actor_def),
	.name = "spawn_driver",
	.state_size = sizeof(struct spawn_driver),
	.handle = spawn_driver_handle,
};

/* n * (n - 1) / 2 in 64-bit wrapping arithmetic without overflowing early. */
static uint64_t
triangle(uint64_t n)
{
	return n % 2 == 0 ? n / 2 * (n - 1) : n * ((n - 1) / 2);
}

static void
run_spawn(struct bench *b)
{
	/* The inbox (and nothing else) lives on after the workload. */
	uint64_t base = metrics(b).actors_alive;
	struct spawn_done r;

	double t0 = now_s();
	tr_pid driver = spawn_main(b, &spawn_driver_def);
	send_main(b, driver, MSG_START, &b->n, sizeof(b->n));
	recv_report(b, MSG_DONE, &r, sizeof(r));
	/* Timed, as the check is part of the workload: every actor is gone. */
	uint64_t alive = wait_alive(b, base);
	b->wall_s = now_s() - t0;
	if (r.answers != b->n || r.sum != triangle(b->n)) {
		check_fail(b, "answers=%" PRIu64 " sum=%" PRIu64, r.answers,
			   r.sum);
	}
	if (alive != base) {
		check_fail(b,
			   "%" PRIu64 " actors alive after %d ms, "
			   "want %" PRIu64,
			   alive, SETTLE_MS, base);
	}
}

/* ------------------------------------------------------------------------
 * skynet: a 10-ary tree of actors; leaf k answers k, parents sum
 */

struct skynet_node {
	tr_pid parent;
	uint64_t sum;
	uint32_t pending;
};

/* What a node covers: leaves [num, num + size). */
struct skynet_start {
	uint64_t num;
	uint64_t size;
};

static void skynet_node_handle(tr_ctx *cx, void *state, const tr_msg *m);
static void skynet_leaf_handle(tr_ctx *cx, void *state, const tr_msg *m);

static const tr_actor_def skynet_node_def = {
	.size = sizeof(tr_actor_def),
	.name = "skynet_node",
	.state_size = sizeof(struct skynet_node),
	.handle = skynet_node_handle,
};

/* No state and no init: a leaf lives for one message. */
static const tr_actor_def skynet_leaf_def = {
	.size = sizeof(tr_actor_def),
	.name = "skynet_leaf",
	.handle = skynet_leaf_handle,
};

/*
 * The range travels as the first message rather than as a spawn argument:
 * the parent then becomes the message's sender, and no argument memory has
 * to outlive the spawn.
 */
static void
skynet_node_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct skynet_node *s = state;

	switch (m->type) {
	case MSG_START: {
		struct skynet_start st;

		msg_read(m, &st, sizeof(st));
		s->parent = m->from;
		s->pending = 10;
		uint64_t sub = st.size / 10;
		const tr_actor_def *def =
			sub == 1 ? &skynet_leaf_def : &skynet_node_def;
		for (uint64_t i = 0; i < 10; i++) {
			struct skynet_start c = { st.num + i * sub, sub };
			tr_pid child;

			must(tr_spawn(cx, def, NULL, &child), "tr_spawn");
			send_msg(cx, child, MSG_START, &c, sizeof(c));
		}
		break;
	}
	case MSG_ANS:
		s->sum += msg_u64(m);
		if (--s->pending == 0) {
			send_u64(cx, s->parent, MSG_ANS, s->sum);
			tr_stop_self(cx, TR_EXIT_NORMAL);
		}
		break;
	default:
		unexpected("skynet node", m);
	}
}

static void
skynet_leaf_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct skynet_start st;

	(void)state;
	if (m->type != MSG_START) {
		unexpected("skynet leaf", m);
	}
	msg_read(m, &st, sizeof(st));
	send_u64(cx, m->from, MSG_ANS, st.num);
	tr_stop_self(cx, TR_EXIT_NORMAL);
}

static void
run_skynet(struct bench *b)
{
	uint64_t p = 1;

	while (p < b->n) {
		p *= 10;
	}
	if (p != b->n) {
		check_fail(b, "n must be a power of 10");
		return;
	}
	struct skynet_start st = { 0, b->n };
	uint64_t sum;

	double t0 = now_s();
	tr_pid root =
		spawn_main(b, b->n == 1 ? &skynet_leaf_def : &skynet_node_def);
	send_main(b, root, MSG_START, &st, sizeof(st));
	recv_report(b, MSG_ANS, &sum, sizeof(sum));
	b->wall_s = now_s() - t0;
	if (sum != triangle(b->n)) {
		check_fail(b, "sum=%" PRIu64 ", want %" PRIu64, sum,
			   triangle(b->n));
	}
}

/* ------------------------------------------------------------------------
 * big: 1000 actors ping random peers, one ping in flight each
 */

struct big_setup {
	const tr_pid *peers; /* BIG_ACTORS pids, immutable during the run */
	uint64_t index;
	uint64_t pings;
};

struct big_actor {
	const tr_pid *peers;
	tr_pid report;
	uint64_t index;
	uint64_t rng;
	uint64_t pings;
	uint64_t pongs;
};

struct big_done {
	uint64_t index;
	uint64_t pongs;
};

/* xorshift64 with shifts 13, 7, 17, as the specification fixes it. */
static inline uint64_t
xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
big_ping(tr_ctx *cx, struct big_actor *a)
{
	send_msg(cx, a->peers[xorshift64(&a->rng) % BIG_ACTORS], MSG_PING, NULL,
		 0);
}

static void
big_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct big_actor *a = state;

	switch (m->type) {
	case MSG_SETUP: {
		struct big_setup s;

		msg_read(m, &s, sizeof(s));
		a->peers = s.peers;
		a->index = s.index;
		a->rng = s.index + 1;
		a->pings = s.pings;
		a->report = m->from;
		break;
	}
	case MSG_GO:
		big_ping(cx, a);
		break;
	case MSG_PING:
		send_msg(cx, m->from, MSG_PONG, NULL, 0);
		break;
	case MSG_PONG:
		if (++a->pongs == a->pings) {
			struct big_done d = { a->index, a->pongs };

			send_msg(cx, a->report, MSG_DONE, &d, sizeof(d));
		} else {
			big_ping(cx, a);
		}
		break;
	default:
		unexpected("big", m);
	}
}

static const tr_actor_def big_def = {
	.size = sizeof(tr_actor_def),
	.name = "big",
	.state_size = sizeof(struct big_actor),
	.handle = big_handle,
};

static void
run_big(struct bench *b)
{
	bool seen[BIG_ACTORS] = { false };
	uint64_t exact = 0;

	if (b->n == 0 || b->n % BIG_ACTORS != 0) {
		check_fail(b, "n must be a positive multiple of %u",
			   BIG_ACTORS);
		return;
	}
	for (unsigned i = 0; i < BIG_ACTORS; i++) {
		b->table[i] = spawn_main(b, &big_def);
	}
	for (unsigned i = 0; i < BIG_ACTORS; i++) {
		struct big_setup s = { b->table, i, b->n / BIG_ACTORS };

		send_main(b, b->table[i], MSG_SETUP, &s, sizeof(s));
	}
	settle(b);

	double t0 = now_s();
	for (unsigned i = 0; i < BIG_ACTORS; i++) {
		send_main(b, b->table[i], MSG_GO, NULL, 0);
	}
	for (unsigned i = 0; i < BIG_ACTORS; i++) {
		struct big_done d;

		recv_report(b, MSG_DONE, &d, sizeof(d));
		if (d.index < BIG_ACTORS && !seen[d.index] &&
		    d.pongs == b->n / BIG_ACTORS) {
			seen[d.index] = true;
			exact++;
		}
	}
	b->wall_s = now_s() - t0;
	/* The unit is messages: n pings and n pongs. */
	b->has_rate = true;
	b->rate = b->wall_s > 0 ? 2.0 * (double)b->n / b->wall_s : 0.0;
	if (exact != BIG_ACTORS) {
		check_fail(b,
			   "%" PRIu64 " of %u actors got exactly %" PRIu64
			   " pongs",
			   exact, BIG_ACTORS, b->n / BIG_ACTORS);
	}
}

/* ------------------------------------------------------------------------
 * idle: resident memory per actor that waits for a message
 */

static size_t
resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long total = 0;
	unsigned long resident = 0;

	if (f == NULL) {
		bench_fail("cannot open /proc/self/statm");
	}
	if (fscanf(f, "%lu %lu", &total, &resident) != 2) {
		resident = 0;
	}
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void
idle_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	unexpected("idle", m);
}

/* No state and no init: nothing to pay for until a message arrives. */
static const tr_actor_def idle_def = {
	.size = sizeof(tr_actor_def),
	.name = "idle",
	.handle = idle_handle,
};

static void
run_idle(struct bench *b)
{
	/*
	 * The pid array is allocated and touched before the baseline, so it
	 * does not count as actor memory.
	 */
	b->idle_pids = calloc(b->n, sizeof(tr_pid));
	if (b->idle_pids == NULL) {
		bench_fail("out of memory for %" PRIu64 " pids", b->n);
	}
	memset(b->idle_pids, 0xff, b->n * sizeof(tr_pid));
	uint64_t base = metrics(b).actors_alive;
	size_t rss0 = resident_bytes();

	double t0 = now_s();
	for (uint64_t i = 0; i < b->n; i++) {
		b->idle_pids[i] = spawn_main(b, &idle_def);
	}
	size_t rss1 = resident_bytes();
	uint64_t alive = metrics(b).actors_alive - base;
	for (uint64_t i = 0; i < b->n; i++) {
		must(tr_stop(tr_runtime_ctx(b->rt), b->idle_pids[i],
			     TR_EXIT_SHUTDOWN),
		     "tr_stop");
	}
	uint64_t left = wait_alive(b, base) - base;
	b->wall_s = now_s() - t0;
	b->has_rate = true;
	b->rate = ((double)rss1 - (double)rss0) / (double)b->n;
	if (alive != b->n) {
		check_fail(b, "%" PRIu64 " actors alive at the measurement",
			   alive);
	}
	if (left != 0) {
		check_fail(b, "%" PRIu64 " actors alive %d ms after stopping",
			   left, SETTLE_MS);
	}
}

/* ------------------------------------------------------------------------
 * compute: n CPU-bound tasks, round-robin to 1000 worker actors
 */

struct compute_start {
	const tr_pid *workers; /* COMPUTE_WORKERS pids, immutable */
	uint64_t n;
};

struct compute_driver {
	tr_pid report;
	uint64_t n;
	uint64_t answers;
	uint64_t sum;
};

struct compute_done {
	uint64_t answers;
	uint64_t sum;
};

static uint64_t
compute_task(uint64_t index)
{
	uint64_t x = index;

	for (unsigned i = 0; i < COMPUTE_ITERS; i++) {
		x = x * COMPUTE_MUL + COMPUTE_ADD;
	}
	return x;
}

/*
 * The reference sum, single-threaded and by another method than the
 * workers use, so that it checks them rather than repeats them: applying
 * x -> a*x + c 20,000 times is the affine map x -> A*x + C (mod 2^64),
 * and the sum over the task indices 0..n-1 is A * n(n-1)/2 + n * C. This
 * takes microseconds where the loop would take seconds, and gives the same
 * value (7304275605198879072 for n = 200,000).
 */
static uint64_t
compute_reference(uint64_t n)
{
	uint64_t a = 1;
	uint64_t c = 0;

	for (unsigned i = 0; i < COMPUTE_ITERS; i++) {
		a = a * COMPUTE_MUL;
		c = c * COMPUTE_MUL + COMPUTE_ADD;
	}
	return a * triangle(n) + n * c;
}

static void
compute_worker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_TASK) {
		unexpected("compute worker", m);
	}
	send_u64(cx, m->from, MSG_RESULT, compute_task(msg_u64(m)));
}

static void
compute_driver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct compute_driver *d = state;

	switch (m->type) {
	case MSG_START: {
		struct compute_start s;

		msg_read(m, &s, sizeof(s));
		d->n = s.n;
		d->report = m->from;
		/*
		 * All tasks in one turn: each is a separate message, and the
		 * workers start on them (on other cores) while this loop runs.
		 */
		for (uint64_t i = 0; i < s.n; i++) {
			tr_pid to = s.workers[i % COMPUTE_WORKERS];

			send_u64(cx, to, MSG_TASK, i);
		}
		break;
	}
	case MSG_RESULT:
		d->sum += msg_u64(m);
		if (++d->answers == d->n) {
			struct compute_done r = { d->answers, d->sum };

			send_msg(cx, d->report, MSG_DONE, &r, sizeof(r));
		}
		break;
	default:
		unexpected("compute driver", m);
	}
}

static const tr_actor_def compute_worker_def = {
	.size = sizeof(tr_actor_def),
	.name = "compute_worker",
	.handle = compute_worker_handle,
};

static const tr_actor_def compute_driver_def = {
	.size = sizeof(tr_actor_def),
	.name = "compute_driver",
	.state_size = sizeof(struct compute_driver),
	.handle = compute_driver_handle,
};

static void
run_compute(struct bench *b)
{
	uint64_t expected = compute_reference(b->n);
	struct compute_start s = { b->table, b->n };
	struct compute_done r;

	for (unsigned i = 0; i < COMPUTE_WORKERS; i++) {
		b->table[i] = spawn_main(b, &compute_worker_def);
	}
	tr_pid driver = spawn_main(b, &compute_driver_def);

	double t0 = now_s();
	send_main(b, driver, MSG_START, &s, sizeof(s));
	recv_report(b, MSG_DONE, &r, sizeof(r));
	b->wall_s = now_s() - t0;
	if (r.answers != b->n || r.sum != expected) {
		check_fail(b,
			   "answers=%" PRIu64 " sum=%" PRIu64
			   " expected=%" PRIu64,
			   r.answers, r.sum, expected);
	}
}

/* ------------------------------------------------------------------------
 * fanout: one producer, n messages round robin to 20 consumers
 */

struct fanout_producer {
	tr_pid to[FANOUT_CONSUMERS];
	uint64_t left;
	unsigned next;
};

struct fanout_consumer {
	tr_pid report;
	uint64_t want; /* 0 until MSG_SETUP arrived */
	uint64_t count;
};

static void
fanout_chunk(tr_ctx *cx, struct fanout_producer *p)
{
	for (uint64_t i = 0; p->left > 0;) {
		send_msg(cx, p->to[p->next], MSG_DATA, NULL, 0);
		p->next = (p->next + 1) % FANOUT_CONSUMERS;
		p->left--;
		if (chunk_over(cx, ++i)) {
			break;
		}
	}
	if (p->left > 0) {
		send_msg(cx, tr_self(cx), MSG_CONT, NULL, 0);
	}
}

static void
fanout_producer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fanout_producer *p = state;

	switch (m->type) {
	case MSG_START:
		msg_read(m, p, sizeof(*p));
		fanout_chunk(cx, p);
		break;
	case MSG_CONT:
		fanout_chunk(cx, p);
		break;
	default:
		unexpected("fanout producer", m);
	}
}

static void
fanout_consumer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct fanout_consumer *c = state;

	switch (m->type) {
	case MSG_SETUP:
		c->want = msg_u64(m);
		c->report = m->from;
		break;
	case MSG_DATA:
		if (++c->count == c->want) {
			send_u64(cx, c->report, MSG_DONE, c->count);
		}
		break;
	case MSG_GET:
		/* After the reports: proves no message arrived beyond want. */
		send_u64(cx, m->from, MSG_TOTAL, c->count);
		break;
	default:
		unexpected("fanout consumer", m);
	}
}

static const tr_actor_def fanout_producer_def = {
	.size = sizeof(tr_actor_def),
	.name = "fanout_producer",
	.state_size = sizeof(struct fanout_producer),
	.handle = fanout_producer_handle,
};

static const tr_actor_def fanout_consumer_def = {
	.size = sizeof(tr_actor_def),
	.name = "fanout_consumer",
	.state_size = sizeof(struct fanout_consumer),
	.handle = fanout_consumer_handle,
};

static void
run_fanout(struct bench *b)
{
	struct fanout_producer s = { .left = b->n };
	tr_pid producer = spawn_main(b, &fanout_producer_def);
	uint64_t total = 0;

	if (b->n < FANOUT_CONSUMERS) {
		check_fail(b, "n must be at least %u", FANOUT_CONSUMERS);
		return;
	}
	for (unsigned i = 0; i < FANOUT_CONSUMERS; i++) {
		/* Round robin from consumer 0: the first n % 20 get one more.
		 */
		uint64_t want = b->n / FANOUT_CONSUMERS +
				(i < b->n % FANOUT_CONSUMERS ? 1 : 0);

		s.to[i] = spawn_main(b, &fanout_consumer_def);
		send_main(b, s.to[i], MSG_SETUP, &want, sizeof(want));
	}
	settle(b);

	double t0 = now_s();
	send_main(b, producer, MSG_START, &s, sizeof(s));
	for (unsigned i = 0; i < FANOUT_CONSUMERS; i++) {
		uint64_t count;

		recv_report(b, MSG_DONE, &count, sizeof(count));
		total += count;
	}
	b->wall_s = now_s() - t0;
	if (total != b->n) {
		check_fail(b, "total=%" PRIu64, total);
		return;
	}
	settle(b);
	total = 0;
	for (unsigned i = 0; i < FANOUT_CONSUMERS; i++) {
		uint64_t count;

		send_main(b, s.to[i], MSG_GET, NULL, 0);
		recv_report(b, MSG_TOTAL, &count, sizeof(count));
		total += count;
	}
	if (total != b->n) {
		check_fail(b, "total=%" PRIu64 " once the producer finished",
			   total);
	}
}

/* ------------------------------------------------------------------------
 * rescue: how long a short message waits behind a long handler
 *
 * Not a workload of the specification: it measures the scheduler's rescue
 * of work queued behind a long turn. Each of n trials starts with every
 * worker asleep; the main thread then sends L to a long actor and, right
 * after, S to a short one. L's handler computes until S's handler has run
 * (at most RESCUE_CAP_MS); S's handler stamps when it ran. When both
 * landed on one worker, S runs only if another worker takes it from there
 * while L computes. The result is the median wait from the send of S to
 * its handler (rate, in microseconds) and the 99th percentile and worst.
 *
 * On a machine with no spare core the main thread itself may lose its
 * core between reading the clock and queueing S (to the worker L woke),
 * and that wait, the kernel's, would be counted as the runtime's. So the
 * main thread reads the clock before and after sending S; a trial in
 * which the two differ by more than RESCUE_SEND_US is run again, and the
 * number of such trials is reported ("resent").
 *
 * This is the one workload whose actors share memory: L and S meet on an
 * atomic flag, because what is measured is when S runs, and a message
 * could not reach L while its handler computes.
 */

#define RESCUE_CAP_MS  1000u
#define RESCUE_SEND_US 20.0

static atomic_bool g_s_ran;
static _Atomic uint64_t g_s_ran_ns;

static void
rescue_long_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_GO) {
		unexpected("rescue long", m);
	}
	double until = now_s() + RESCUE_CAP_MS / 1000.0;
	/* acquire: pairs with the release store in rescue_short_handle. */
	while (!atomic_load_explicit(&g_s_ran, memory_order_acquire) &&
	       now_s() < until) {
		/* computing */
	}
	send_msg(cx, m->from, MSG_DONE, NULL, 0);
}

static void
rescue_short_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_REQ) {
		unexpected("rescue short", m);
	}
	atomic_store_explicit(&g_s_ran_ns, now_ns(), memory_order_relaxed);
	/* release: L's acquire load sees it and ends its turn. */
	atomic_store_explicit(&g_s_ran, true, memory_order_release);
	send_msg(cx, m->from, MSG_ANS, NULL, 0);
}

static const tr_actor_def rescue_long_def = {
	.size = sizeof(tr_actor_def),
	.name = "rescue_long",
	.handle = rescue_long_handle,
};

static const tr_actor_def rescue_short_def = {
	.size = sizeof(tr_actor_def),
	.name = "rescue_short",
	.handle = rescue_short_handle,
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void
run_rescue(struct bench *b)
{
	tr_pid lng = spawn_main(b, &rescue_long_def);
	tr_pid shrt = spawn_main(b, &rescue_short_def);
	double *waits = malloc(sizeof(double) * b->n);
	unsigned capped = 0;
	uint64_t resent = 0;

	if (waits == NULL) {
		bench_fail("out of memory");
	}
	uint64_t rng = 88172645463325252ull;
	double t0 = now_s();
	for (uint64_t i = 0; i < b->n;) {
		settle(b);
		/*
		 * Let the workers finish spinning and go to sleep, for 2 to 3
		 * ms: a random part, so that trials do not start in step with
		 * the runtime's own millisecond tick.
		 */
		struct timespec nap = { 0, 2000000 + (long)(xorshift64(&rng) %
							    1000000u) };
		nanosleep(&nap, NULL);
		atomic_store_explicit(&g_s_ran, false, memory_order_relaxed);
		send_main(b, lng, MSG_GO, NULL, 0);
		uint64_t before = now_ns();
		send_main(b, shrt, MSG_REQ, NULL, 0);
		uint64_t after = now_ns();
		for (int k = 0; k < 2; k++) {
			tr_received r;

			must(tr_inbox_recv(b->inbox, NULL, -1, &r),
			     "tr_inbox_recv");
			if (r.type != MSG_ANS && r.type != MSG_DONE) {
				bench_fail("unexpected report type %" PRIu32,
					   r.type);
			}
			tr_received_fini(&r);
		}
		if ((double)(after - before) > RESCUE_SEND_US * 1000.0 &&
		    resent < 10 * b->n) {
			resent++; /* the kernel, not the runtime, held S */
			continue;
		}
		uint64_t ran =
			atomic_load_explicit(&g_s_ran_ns, memory_order_relaxed);
		waits[i] = ran > before ? (double)(ran - before) / 1000.0 : 0;
		if (waits[i] >= RESCUE_CAP_MS * 1000.0) {
			capped++;
		}
		i++;
	}
	b->wall_s = now_s() - t0;
	qsort(waits, b->n, sizeof(double), cmp_double);
	b->has_rate = true;
	b->rate = waits[b->n / 2];
	snprintf(b->extra, sizeof(b->extra),
		 ",\"p99_us\":%.1f,\"max_us\":%.1f,\"resent\":%" PRIu64,
		 waits[b->n * 99 / 100], waits[b->n - 1], resent);
	if (capped > 0) {
		check_fail(b, "S waited the whole of L in %u trials", capped);
	}
	free(waits);
}

/* ------------------------------------------------------------------------
 * remote_pingpong, remote_stream: two nodes, two processes
 *
 * Node A is this process; node B is this program again
 * (/proc/self/exe with the hidden arguments NODE_B_ARG <bench> <url>),
 * started as a child with pipes on its stdin and stdout. A listens on a
 * loopback port the system picks; B dials it, spawns its actor and writes
 * that actor's pid (tr_net_pid_encode, in hex) on one line of its stdout,
 * then waits for the end of its stdin. A decodes the pid once the link is
 * up, runs the workload (the clock starts after the link is up and one
 * untimed exchange has proved B's actor answers), closes B's stdin, reaps
 * B and reports B's CPU time (wait4) per message on stderr.
 *
 * remote_pingpong reuses ping and pong: ping on A, pong on B, one round
 * trip at a time. remote_stream: a sender on A sends n messages of 64
 * bytes (byte 0 is the index mod 256, byte 63 its complement) to a sink on
 * B, which checks both bytes of each (order per pair gives the index) and
 * answers its count once it has all n. A send the link refuses because
 * its queue is full (TR_EUNREACH past link_bytes) is tried again on the
 * sender's next turn, never dropped; the retries are reported on stderr.
 * After the n messages the sender sends an end marker, ordered after
 * them, so that a sink that did not reach n answers at once.
 */

static unsigned bench_threads(void);

#define NODE_B_ARG      "--node-b"
#define REMOTE_PAYLOAD  64u
#define REMOTE_SECRET   "troupe-bench two-node secret"
#define REMOTE_PID_LINE (2 * TR_NET_PID_SIZE + 2)

/* This process's node; set before any actor sends to a remote pid. */
static tr_net *g_net;

struct stream_start {
	tr_pid sink;
	uint64_t n;
};

struct stream_sender {
	tr_pid sink;
	tr_pid report;
	uint64_t n;
	uint64_t sent; /* n + 1 once the end marker is sent */
	uint64_t retries;
	uint8_t buf[REMOTE_PAYLOAD];
};

struct stream_sink {
	tr_pid report;
	uint64_t want;
	uint64_t count;
	uint64_t bad;
};

struct stream_total {
	uint64_t count;
	uint64_t bad;
};

/* The link refused a send: fine while it is up (its queue is full). */
static void
remote_refused(void)
{
	tr_net_stats st;

	if (tr_net_stats_get(g_net, &st) < 0 || st.links_up == 0) {
		bench_fail("the link to node B is down");
	}
}

static void
stream_chunk(tr_ctx *cx, struct stream_sender *s)
{
	for (uint64_t i = 0; s->sent <= s->n;) {
		tr_err err;

		if (s->sent < s->n) {
			s->buf[0] = (uint8_t)s->sent;
			s->buf[REMOTE_PAYLOAD - 1] = (uint8_t)~s->sent;
			err = tr_send(cx, s->sink, MSG_DATA, s->buf,
				      sizeof(s->buf));
		} else {
			err = tr_send(cx, s->sink, MSG_GET, NULL, 0);
		}
		if (err == TR_EUNREACH) {
			/* The link's queue is full: again on a later turn. */
			remote_refused();
			s->retries++;
			send_msg(cx, tr_self(cx), MSG_CONT, NULL, 0);
			return;
		}
		if (err < 0) {
			bench_fail("remote tr_send: %s", tr_err_name(err));
		}
		s->sent++;
		if (s->sent <= s->n && chunk_over(cx, ++i)) {
			send_msg(cx, tr_self(cx), MSG_CONT, NULL, 0);
			return;
		}
	}
	send_u64(cx, s->report, MSG_DONE, s->retries);
}

static void
stream_sender_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct stream_sender *s = state;

	switch (m->type) {
	case MSG_START: {
		struct stream_start st;

		msg_read(m, &st, sizeof(st));
		s->sink = st.sink;
		s->n = st.n;
		s->report = m->from;
		for (unsigned i = 0; i < REMOTE_PAYLOAD; i++) {
			s->buf[i] = (uint8_t)('a' + i % 26);
		}
		stream_chunk(cx, s);
		break;
	}
	case MSG_CONT:
		stream_chunk(cx, s);
		break;
	default:
		unexpected("stream sender", m);
	}
}

static void
stream_sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct stream_sink *k = state;

	switch (m->type) {
	case MSG_SETUP:
		/* Untimed: proves the sink is there and the path works. */
		k->want = msg_u64(m);
		k->report = m->from;
		send_msg(cx, m->from, MSG_ANS, NULL, 0);
		break;
	case MSG_DATA: {
		const uint8_t *p = m->data;

		if (m->size != REMOTE_PAYLOAD || p == NULL ||
		    p[0] != (uint8_t)k->count ||
		    p[REMOTE_PAYLOAD - 1] != (uint8_t)~k->count) {
			k->bad++;
		}
		if (++k->count == k->want) {
			struct stream_total t = { k->count, k->bad };

			send_msg(cx, k->report, MSG_TOTAL, &t, sizeof(t));
		}
		break;
	}
	case MSG_GET:
		/* The end marker: answered only if the count fell short. */
		if (k->count != k->want) {
			struct stream_total t = { k->count, k->bad };

			send_msg(cx, k->report, MSG_TOTAL, &t, sizeof(t));
		}
		break;
	default:
		unexpected("stream sink", m);
	}
}

static const tr_actor_def stream_sender_def = {
	.size = sizeof(tr_actor_def),
	.name = "stream_sender",
	.state_size = sizeof(struct stream_sender),
	.handle = stream_sender_handle,
};

static const tr_actor_def stream_sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "stream_sink",
	.state_size = sizeof(struct stream_sink),
	.handle = stream_sink_handle,
};

static tr_net_config
remote_config(const char *name, const char *listen, const char *const *seeds)
{
	tr_net_config nc = { .size = sizeof(nc),
			     .name = name,
			     .listen = listen,
			     .seeds = seeds,
			     .secret = REMOTE_SECRET,
			     .secret_len = strlen(REMOTE_SECRET) };

	return nc;
}

/*
 * Node B: dial A at @url, spawn the actor of @bench, write its pid on
 * stdout, and stop cleanly at the end of stdin.
 */
static int
node_b_main(const char *bench, const char *url)
{
	const char *seeds[] = { url, NULL };
	tr_net_config nc = remote_config("bench_b", NULL, seeds);
	tr_config cfg = tr_config_default();
	uint8_t raw[TR_NET_PID_SIZE];
	char line[REMOTE_PID_LINE];
	tr_runtime *rt;
	tr_pid pid;
	char c;

	cfg.workers = bench_threads();
	must(tr_runtime_create(&cfg, &rt), "node B: tr_runtime_create");
	must(tr_runtime_start(rt), "node B: tr_runtime_start");
	must(tr_net_start(rt, &nc, &g_net), "node B: tr_net_start");
	const tr_actor_def *def = strcmp(bench, "remote_pingpong") == 0
					  ? &pong_def
					  : &stream_sink_def;
	must(tr_spawn(tr_runtime_ctx(rt), def, NULL, &pid), "node B: tr_spawn");
	must(tr_net_pid_encode(g_net, pid, raw), "node B: tr_net_pid_encode");
	for (unsigned i = 0; i < TR_NET_PID_SIZE; i++) {
		snprintf(line + 2 * i, 3, "%02x", raw[i]);
	}
	printf("%s\n", line);
	fflush(stdout);
	/* Node A closes our stdin when it is done (or dies). */
	while (read(STDIN_FILENO, &c, 1) > 0) {
	}
	tr_runtime_stop(rt);
	must(tr_runtime_join(rt), "node B: tr_runtime_join");
	tr_net_stop(g_net);
	tr_runtime_destroy(rt);
	return 0;
}

/* Start node B and return its actor's pid, once the link is up. */
static tr_pid
node_b_start(struct bench *b, const char *bench)
{
	char url[160];
	int to_b[2], from_b[2];
	tr_net_config nc = remote_config("bench_a", "tcp://127.0.0.1:0", NULL);

	must(tr_net_start(b->rt, &nc, &g_net), "tr_net_start");
	b->net = g_net;
	must(tr_net_address(g_net, url, sizeof(url)), "tr_net_address");
	must(tr_net_monitor_nodes(g_net, b->inbox_pid, true),
	     "tr_net_monitor_nodes");
	if (pipe2(to_b, O_CLOEXEC) < 0 || pipe2(from_b, O_CLOEXEC) < 0) {
		bench_fail("pipe: %s", strerror(errno));
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0) {
		bench_fail("fork: %s", strerror(errno));
	}
	if (child == 0) {
		/* Node B never outlives node A. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(to_b[0], STDIN_FILENO) < 0 ||
		    dup2(from_b[1], STDOUT_FILENO) < 0) {
			_exit(127);
		}
		execl("/proc/self/exe", "troupe-bench", NODE_B_ARG, bench, url,
		      (char *)NULL);
		_exit(127);
	}
	close(to_b[0]);
	close(from_b[1]);
	b->child = child;
	b->to_child = to_b[1];

	/* B's pid, in hex on one line; anything else is B's failure. */
	char line[512];
	uint8_t raw[TR_NET_PID_SIZE];
	FILE *in = fdopen(from_b[0], "r");
	if (in == NULL || fgets(line, sizeof(line), in) == NULL) {
		bench_fail("node B wrote no pid");
	}
	fclose(in);
	line[strcspn(line, "\n")] = '\0';
	for (unsigned i = 0; i < TR_NET_PID_SIZE; i++) {
		unsigned x;

		if (strlen(line) != 2 * TR_NET_PID_SIZE ||
		    sscanf(line + 2 * i, "%2x", &x) != 1) {
			bench_fail("node B: %s", line);
		}
		raw[i] = (uint8_t)x;
	}
	tr_net_node_event ev;
	recv_report(b, TR_MSG_NET_NODEUP, &ev, sizeof(ev));
	must(tr_net_monitor_nodes(g_net, b->inbox_pid, false),
	     "tr_net_monitor_nodes");
	tr_pid pid;
	must(tr_net_pid_decode(g_net, raw, &pid), "tr_net_pid_decode");
	return pid;
}

static void
run_remote_pingpong(struct bench *b)
{
	tr_pid pong = node_b_start(b, "remote_pingpong");
	struct ping_start s = { .pong = pong, .n = b->n };
	tr_pid ping = spawn_main(b, &ping_def);
	uint64_t got;

	/* One untimed round trip: B's actor answers over the link. */
	send_u64_main(b, pong, MSG_PING, 0);
	recv_report(b, MSG_PONG, &got, sizeof(got));

	double t0 = now_s();
	send_main(b, ping, MSG_START, &s, sizeof(s));
	recv_report(b, MSG_DONE, &got, sizeof(got));
	b->wall_s = now_s() - t0;
	if (got != b->n) {
		check_fail(b, "answers=%" PRIu64, got);
	}
}

static void
run_remote_stream(struct bench *b)
{
	tr_pid sink = node_b_start(b, "remote_stream");
	struct stream_start s = { .sink = sink, .n = b->n };
	tr_pid sender = spawn_main(b, &stream_sender_def);
	struct stream_total t = { 0, 0 };
	bool total = false, done = false;

	send_u64_main(b, sink, MSG_SETUP, b->n);
	recv_report(b, MSG_ANS, NULL, 0);

	double t0 = now_s();
	send_main(b, sender, MSG_START, &s, sizeof(s));
	/* The sink's answer stops the clock; the sender's retries come in
	 * either order with it. */
	while (!total || !done) {
		tr_received r;

		must(tr_inbox_recv(b->inbox, NULL, -1, &r), "tr_inbox_recv");
		if (r.type == MSG_TOTAL && r.size == sizeof(t) && !total) {
			b->wall_s = now_s() - t0;
			memcpy(&t, r.data, sizeof(t));
			total = true;
		} else if (r.type == MSG_DONE && r.size == sizeof(uint64_t) &&
			   !done) {
			memcpy(&b->retries, r.data, sizeof(uint64_t));
			done = true;
		} else {
			bench_fail("report of type %" PRIu32, r.type);
		}
		tr_received_fini(&r);
	}
	if (t.count != b->n || t.bad != 0) {
		check_fail(b, "count=%" PRIu64 " bad_payloads=%" PRIu64,
			   t.count, t.bad);
	}
}

/*
 * After the workload: close B's stdin so that it stops, reap it, and
 * report its CPU time per message (start-up and shutdown included).
 */
static void
node_b_finish(struct bench *b)
{
	struct rusage ru;
	int status;

	close(b->to_child);
	if (wait4(b->child, &status, 0, &ru) < 0) {
		bench_fail("wait4: %s", strerror(errno));
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		check_fail(b, "node B ended with status %d", status);
	}
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
	fprintf(stderr,
		"node B cpu: %.3f s (user %.3f, sys %.3f), %.3f us per "
		"message of n\n",
		cpu, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6,
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6,
		cpu * 1e6 / (double)b->n);
}

/* ------------------------------------------------------------------------
 * main
 */

static const struct workload workloads[] = {
	{ "pingpong", 1000000, "round_trips/s", run_pingpong },
	{ "counting", 10000000, "msgs/s", run_counting },
	{ "fanin", 10000000, "msgs/s", run_fanin },
	{ "ring", 10000000, "hops/s", run_ring },
	{ "spawn", 1000000, "actors/s", run_spawn },
	{ "skynet", 1000000, "leaves/s", run_skynet },
	{ "big", 2000000, "msgs/s", run_big },
	{ "idle", 1000000, "bytes/actor", run_idle },
	{ "compute", 200000, "tasks/s", run_compute },
	{ "fanout", 10000000, "msgs/s", run_fanout },
	{ "rescue", 1000, "us_median_wait", run_rescue },
	{ "remote_pingpong", 200000, "round_trips/s", run_remote_pingpong },
	{ "remote_stream", 2000000, "msgs/s", run_remote_stream },
};

#define N_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: troupe-bench <bench> [n]\n"
			"  bench: ");
	for (size_t i = 0; i < N_WORKLOADS; i++) {
		fprintf(stderr, "%s%s", i > 0 ? " " : "", workloads[i].name);
	}
	fprintf(stderr, "\n  env:   BENCH_THREADS (default: online cores), "
			"BENCH_TIMEOUT seconds (default: 600)\n");
	exit(2);
}

static unsigned
bench_threads(void)
{
	const char *env = getenv("BENCH_THREADS");
	long t = env != NULL ? strtol(env, NULL, 10) : 0;

	if (t <= 0) {
		t = sysconf(_SC_NPROCESSORS_ONLN);
	}
	if (t <= 0) {
		t = 1;
	}
	return (unsigned)t;
}

int
main(int argc, char **argv)
{
	const struct workload *w = NULL;
	struct bench b = { .n = 0 };

	if (argc == 4 && strcmp(argv[1], NODE_B_ARG) == 0) {
		snprintf(g_head, sizeof(g_head),
			 "{\"impl\":\"troupe\",\"bench\":\"%s\",\"node\":\"B\"",
			 argv[2]);
		watchdog_arm();
		return node_b_main(argv[2], argv[3]);
	}
	if (argc < 2 || argc > 3) {
		usage();
	}
	for (size_t i = 0; i < N_WORKLOADS; i++) {
		if (strcmp(argv[1], workloads[i].name) == 0) {
			w = &workloads[i];
		}
	}
	if (w == NULL) {
		usage();
	}
	b.n = w->default_n;
	if (argc == 3) {
		char *end;

		b.n = strtoull(argv[2], &end, 10);
		if (*argv[2] == '\0' || *argv[2] == '-' || *end != '\0' ||
		    b.n == 0) {
			usage();
		}
	}
	unsigned threads = bench_threads();

	snprintf(g_head, sizeof(g_head),
		 "{\"impl\":\"troupe\",\"bench\":\"%s\",\"threads\":%u,"
		 "\"n\":%" PRIu64,
		 w->name, threads, b.n);
	g_unit = w->unit;
	watchdog_arm();

	const char *chunk = getenv("BENCH_CHUNK");
	if (chunk != NULL && strcmp(chunk, "auto") == 0) {
		g_chunk_auto = true;
	} else if (chunk != NULL && *chunk != '\0') {
		g_chunk = strtoull(chunk, NULL, 10);
		if (g_chunk == 0) {
			g_chunk = UINT64_MAX;
		}
	}

	tr_config cfg = tr_config_default();
	cfg.workers = threads;
	/* BENCH_IO_DEDICATED=1: only the I/O threads run their loops. */
	const char *ded = getenv("BENCH_IO_DEDICATED");
	cfg.io_dedicated = ded != NULL && *ded != '\0' && *ded != '0';
	/* BENCH_PIN=1: each worker on a CPU of its own. */
	const char *pin = getenv("BENCH_PIN");
	cfg.pin_workers = pin != NULL && *pin != '\0' && *pin != '0';
	must(tr_runtime_create(&cfg, &b.rt), "tr_runtime_create");
	must(tr_runtime_start(b.rt), "tr_runtime_start");
	must(tr_inbox_create(b.rt, &b.inbox), "tr_inbox_create");
	b.inbox_pid = tr_self(tr_inbox_ctx(b.inbox));

	w->run(&b);

	/*
	 * BENCH_METRICS=1 shows the runtime's counters (steals, parks, ...)
	 * on stderr, to explain a rate; stdout keeps its one line.
	 */
	const char *show = getenv("BENCH_METRICS");
	if (show != NULL && *show != '\0' && *show != '0') {
		char *json = tr_runtime_metrics_json(b.rt);

		fprintf(stderr, "%s\n", json != NULL ? json : "(no metrics)");
		tr_free_string(json);
	}

	if (b.child > 0) {
		node_b_finish(&b);
		if (strcmp(w->name, "remote_stream") == 0) {
			fprintf(stderr,
				"sends refused by a full link and retried: "
				"%" PRIu64 "\n",
				b.retries);
			tr_net_stats ns;
			if (tr_net_stats_get(b.net, &ns) == TR_OK) {
				fprintf(stderr,
					"senders held by a full link: "
					"%" PRIu64 "\n",
					ns.holds);
			}
		}
	}
	tr_inbox_destroy(b.inbox);
	tr_runtime_stop(b.rt);
	must(tr_runtime_join(b.rt), "tr_runtime_join");
	/* The node after the runtime's join, before its destroy. */
	tr_net_stop(b.net);
	tr_runtime_destroy(b.rt);
	free(b.idle_pids);

	/*
	 * Printed only after shutdown, so that a shutdown that hangs ends in
	 * the watchdog's failed line rather than in a second line.
	 */
	if (!b.has_rate) {
		b.rate = b.wall_s > 0 ? (double)b.n / b.wall_s : 0.0;
	}
	json_clean(b.why);
	/*
	 * Disarm first: an alarm after the exchange below would find the line
	 * claimed and exit without anything printed.
	 */
	alarm(0);
	if (!claim_report()) {
		_exit(3);
	}
	printf("%s,\"wall_s\":%.6f,\"rate\":%.1f,\"unit\":\"%s\"%s,"
	       "\"check\":\"%s%s\"}\n",
	       g_head, b.wall_s, b.rate, w->unit, b.extra,
	       b.why[0] == '\0' ? "ok" : "fail: ", b.why);
	fflush(stdout);
	return b.why[0] == '\0' ? 0 : 1;
}
