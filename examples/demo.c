/*
 * demo.c - troupe at work: many actors, failures, slow tools and overload,
 * all at once and on every core, with live metrics.
 *
 * What runs:
 *
 *   driver ─WAVE─> root ─> 10 ─> 100 ─> 1000 nodes ─> 10000 leaves
 *          <─RESULT─ sums flow back up; each wave must sum to the leaf count
 *
 *   watcher   linked to every leaf, traps exits. Leaves crash now and then
 *             (tr_stop_self with an error reason, like an agent whose tool
 *             call blew up); the watcher spawns a replacement, links it and
 *             tells the leaf's parent, which re-sends the waves the dead
 *             leaf never answered. Nothing is lost, so the sums still hold.
 *   agents    each calls a slow "tool" (a nanosleep) with tr_blocking(); the
 *             scheduler threads never wait for it, and the result comes
 *             back as a message.
 *   firehose  offers bursts of events to a slow sink whose mailbox is
 *             bounded; a full mailbox refuses with TR_EFULL, the firehose
 *             keeps the rest as backlog and resumes when the sink sends
 *             credit (back-pressure instead of unbounded queues).
 *
 * main is not an actor: it ticks the firehose with tr_send() on the
 * runtime's context (tr_runtime_ctx()), prints a progress line every second
 * from tr_runtime_metrics(), then drains the load (the driver's "drained"
 * report arrives in a tr_inbox), stops the runtime and checks that every
 * message is accounted for: msgs_sent == msgs_handled + dead_letters, and
 * the application's own counts agree with each other and with the metrics.
 * It exits 1 when a check fails.
 *
 * Threads: main, the runtime's workers and blocking pool. Actors share no
 * mutable state. The only other shared memory is the spawn arguments that
 * main prepares and the actors' init functions copy (read-only), and the
 * relaxed counters in `stats`, written by actors and read by main for the
 * progress line and the final checks.
 *
 * Run it: ./troupe-demo [--seconds N] [--leaves N] [--workers N]
 */

/* clock_gettime(), clock_nanosleep() and nanosleep() are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe/troupe.h>

/* Children per tree node: 10,000 leaves make a tree of depth 4. */
#define FANOUT 10
/* Waves in flight at once. Each node keeps one slot per wave in flight,
 * and the per-child "unanswered" sets are bitmasks, hence at most 32. */
#define WINDOW 8
/* A leaf crashes after 1 in this many waves: tens of crashes per second
 * at a few million leaf messages per second. */
#define CRASH_ONE_IN 100000u
/* The exit reason of a crash. Reasons from TR_EXIT_USER up are ours. */
#define REASON_CRASH (TR_EXIT_USER + 1)
/* Agents calling the slow tool, and how long one call sleeps. With the
 * default 4 blocking threads, 8 agents keep the pool busy with a queue. */
#define N_AGENTS 8
#define TOOL_MS  20
/* The sink's mailbox holds at most this many events. */
#define SINK_BOUND 256
/* The sink sends one credit per this many events handled. */
#define CREDIT_EVERY 64
/* Busy work per event in the sink (a few microseconds), so that a burst
 * outruns it. */
#define SINK_WORK 4000
/* main ticks the firehose every TICK_MS; each tick offers BURST events,
 * far more than the sink's mailbox holds. The backlog never exceeds
 * BACKLOG_MAX: beyond it events are shed (counted and dropped). */
#define TICK_MS     100
#define BURST       2000
#define BACKLOG_MAX 20000

enum {
	MSG_GO = 1,    /* main -> driver: start the waves */
	MSG_WAVE,      /* down the tree; payload struct wave */
	MSG_RESULT,    /* up the tree; payload struct result */
	MSG_REPLACED,  /* watcher -> node: payload struct replaced */
	MSG_DRAIN,     /* main -> driver, agents, firehose: finish up */
	MSG_DRAINED,   /* driver -> main's inbox: payload struct drain_report */
	MSG_START,     /* main -> agent */
	MSG_TOOL_DONE, /* tr_blocking reply: pointer to struct tool_result */
	MSG_TICK,      /* main -> firehose */
	MSG_EVENT,     /* firehose -> sink; payload uint64_t sequence number */
	MSG_CREDIT,    /* sink -> firehose */
};

struct wave {
	uint64_t id;
};

struct result {
	uint64_t id;
	uint64_t sum; /* leaves that answered below this node */
};

struct replaced {
	tr_pid pid;     /* the replacement */
	uint64_t index; /* which child of the receiving node it replaces */
};

struct drain_report {
	uint64_t completed;
	uint64_t bad;
	uint64_t lat_avg_ns;
	uint64_t lat_max_ns;
};

/*
 * Counters for the progress line and the final checks. Actors add to them
 * with relaxed atomics: no decision depends on their order while the run
 * goes on, and the final checks read them after tr_runtime_join(), which
 * joins the worker threads and so orders every write before the reads.
 */
static struct {
	_Atomic uint64_t waves;
	_Atomic uint64_t crashes;
	_Atomic uint64_t restarts;
	_Atomic uint64_t restart_failures;
	_Atomic uint64_t replayed;
	_Atomic uint64_t late_results;
	_Atomic uint64_t send_errors;
	_Atomic uint64_t tools_started;
	_Atomic uint64_t tools_done;
	_Atomic uint64_t tool_sleep_ns;
	_Atomic uint64_t tool_turnaround_ns;
	_Atomic uint64_t events_offered;
	_Atomic uint64_t events_sent;
	_Atomic uint64_t events_handled;
	_Atomic uint64_t events_refused;
	_Atomic uint64_t events_shed;
	_Atomic uint64_t events_dropped; /* backlog left at the drain */
} stats;

static void
bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t
get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a tiny per-actor random number generator. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Du;
}

/*
 * Copy a fixed-size payload out of a message. Payload bytes carry no
 * alignment promise, and a size check keeps a wrong message from being
 * read as the wrong struct.
 */
static bool
payload(const tr_msg *m, void *out, size_t size)
{
	if (m->size != size || m->data == NULL) {
		return false;
	}
	memcpy(out, m->data, size);
	return true;
}

/* A send whose failure would stall the demo is counted and checked. */
static void
send_or_count(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
	      size_t len)
{
	if (tr_send(cx, to, type, data, len) < 0) {
		bump(&stats.send_errors, 1);
	}
}

/* ---- leaves: the workers ---------------------------------------------- */

struct leaf {
	uint64_t rng;
};

/*
 * A leaf answers each wave with a sum of 1 to whoever sent it (its parent)
 * and, rarely, crashes right after. A crash is an exit with an error
 * reason: the runtime turns messages still queued for the leaf into dead
 * letters and tells every linked actor.
 */
static void
leaf_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct leaf *l = state;
	struct wave w;

	if (m->type != MSG_WAVE || !payload(m, &w, sizeof(w))) {
		return;
	}
	struct result r = { .id = w.id, .sum = 1 };
	send_or_count(cx, tr_sender(cx), MSG_RESULT, &r, sizeof(r));

	if (l->rng == 0) {
		tr_pid self = tr_self(cx);

		l->rng = (((uint64_t)tr_pid_slot(self) << 20) ^
			  tr_pid_generation(self) ^ now_ns()) |
			 1u;
	}
	if (rng_next(&l->rng) % CRASH_ONE_IN == 0) {
		bump(&stats.crashes, 1);
		tr_stop_self(cx, REASON_CRASH);
	}
}

/* No init: a leaf costs nothing until its first message. */
static const tr_actor_def leaf_def = {
	.size = sizeof(tr_actor_def),
	.name = "leaf",
	.state_size = sizeof(struct leaf),
	.handle = leaf_handle,
};

/* ---- tree nodes: scatter and gather ----------------------------------- */

/* Built by main before the start; a node's init copies it. */
struct node_spec {
	uint32_t nchild;
	tr_pid child[FANOUT];
};

struct node {
	uint32_t nchild;
	tr_pid child[FANOUT];
	tr_pid parent; /* the sender of the waves */
	uint64_t wave_id[WINDOW];
	uint64_t sum[WINDOW];
	uint32_t pending[WINDOW];
	/* Bit s of unanswered[i]: the wave in slot s was sent to child i
	 * and it has not answered yet. */
	uint32_t unanswered[FANOUT];
};

static int
node_init(tr_ctx *cx, void *state, void *arg)
{
	struct node *n = state;
	const struct node_spec *spec = arg;

	(void)cx;
	n->nchild = spec->nchild;
	memcpy(n->child, spec->child, sizeof(n->child));
	return TR_OK;
}

static void
node_send_wave(tr_ctx *cx, struct node *n, uint32_t i, uint64_t id)
{
	struct wave w = { .id = id };

	n->unanswered[i] |= 1u << (id % WINDOW);
	send_or_count(cx, n->child[i], MSG_WAVE, &w, sizeof(w));
}

static void
node_wave(tr_ctx *cx, struct node *n, const tr_msg *m)
{
	struct wave w;

	if (!payload(m, &w, sizeof(w))) {
		return;
	}
	uint32_t s = w.id % WINDOW;
	n->parent = tr_sender(cx);
	n->wave_id[s] = w.id;
	n->sum[s] = 0;
	n->pending[s] = n->nchild;
	for (uint32_t i = 0; i < n->nchild; i++) {
		node_send_wave(cx, n, i, w.id);
	}
}

static void
node_result(tr_ctx *cx, struct node *n, const tr_msg *m)
{
	struct result r;
	uint32_t i;

	if (!payload(m, &r, sizeof(r))) {
		return;
	}
	for (i = 0; i < n->nchild; i++) {
		if (tr_pid_eq(n->child[i], tr_sender(cx))) {
			break;
		}
	}
	uint32_t s = r.id % WINDOW;
	uint32_t bit = 1u << s;
	/*
	 * An answer from a child that was replaced, or for a wave it no
	 * longer owes, duplicates one that was re-sent to the replacement:
	 * the replacement's answer is the one that counts.
	 */
	if (i == n->nchild || !(n->unanswered[i] & bit) ||
	    n->wave_id[s] != r.id) {
		bump(&stats.late_results, 1);
		return;
	}
	n->unanswered[i] &= ~bit;
	n->sum[s] += r.sum;
	if (--n->pending[s] == 0) {
		struct result up = { .id = r.id, .sum = n->sum[s] };

		send_or_count(cx, n->parent, MSG_RESULT, &up, sizeof(up));
	}
}

/*
 * A child crashed and the watcher replaced it. Every wave the old child
 * still owed was lost with it (it answered before crashing or never got
 * the wave), so send those again to the new one.
 */
static void
node_replaced(tr_ctx *cx, struct node *n, const tr_msg *m)
{
	struct replaced rp;

	if (!payload(m, &rp, sizeof(rp)) || rp.index >= n->nchild) {
		return;
	}
	n->child[rp.index] = rp.pid;
	uint32_t owed = n->unanswered[rp.index];
	for (uint32_t s = 0; s < WINDOW; s++) {
		if (owed & (1u << s)) {
			bump(&stats.replayed, 1);
			node_send_wave(cx, n, (uint32_t)rp.index,
				       n->wave_id[s]);
		}
	}
}

static void
node_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct node *n = state;

	switch (m->type) {
	case MSG_WAVE:
		node_wave(cx, n, m);
		break;
	case MSG_RESULT:
		node_result(cx, n, m);
		break;
	case MSG_REPLACED:
		node_replaced(cx, n, m);
		break;
	default:
		break;
	}
}

static const tr_actor_def node_def = {
	.size = sizeof(tr_actor_def),
	.name = "node",
	.state_size = sizeof(struct node),
	.init = node_init,
	.handle = node_handle,
};

/* ---- watcher: restarts crashed leaves --------------------------------- */

/* One leaf as the watcher knows it; main fills the first table. */
struct leaf_entry {
	tr_pid pid;
	tr_pid parent;
	uint32_t index; /* in the parent's child array */
};

/*
 * pid -> leaf number, open addressing with linear probing. Empty slots
 * hold TR_PID_NONE; removal shifts later entries back, so lookups never
 * need tombstones.
 */
struct pidmap_entry {
	tr_pid pid;
	size_t value;
};

struct pidmap {
	struct pidmap_entry *e;
	size_t mask;
};

static size_t
pidmap_home(const struct pidmap *pm, tr_pid p)
{
	uint64_t h = ((uint64_t)tr_pid_slot(p) << 20) ^ tr_pid_generation(p);

	return (size_t)((h * 0x9E3779B97F4A7C15u) >> 32) & pm->mask;
}

static bool
pidmap_init(struct pidmap *pm, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n) {
		cap *= 2;
	}
	pm->e = calloc(cap, sizeof(*pm->e));
	pm->mask = cap - 1;
	return pm->e != NULL;
}

static void
pidmap_put(struct pidmap *pm, tr_pid p, size_t value)
{
	size_t i = pidmap_home(pm, p);

	while (!tr_pid_is_none(pm->e[i].pid)) {
		i = (i + 1) & pm->mask;
	}
	pm->e[i].pid = p;
	pm->e[i].value = value;
}

static bool
pidmap_take(struct pidmap *pm, tr_pid p, size_t *value)
{
	size_t hole = pidmap_home(pm, p);

	while (!tr_pid_eq(pm->e[hole].pid, p)) {
		if (tr_pid_is_none(pm->e[hole].pid)) {
			return false;
		}
		hole = (hole + 1) & pm->mask;
	}
	*value = pm->e[hole].value;
	for (size_t j = (hole + 1) & pm->mask; !tr_pid_is_none(pm->e[j].pid);
	     j = (j + 1) & pm->mask) {
		size_t home = pidmap_home(pm, pm->e[j].pid);

		/* The entry at j may fill the hole unless its home lies
		 * (cyclically) after the hole and at or before j. */
		if (((j - home) & pm->mask) >= ((j - hole) & pm->mask)) {
			pm->e[hole] = pm->e[j];
			hole = j;
		}
	}
	pm->e[hole].pid = TR_PID_NONE;
	return true;
}

struct watcher_args {
	size_t n;
	const struct leaf_entry *leaf;
};

struct watcher {
	size_t n;
	struct leaf_entry *leaf;
	struct pidmap map;
	uint64_t restarts;
};

static void
watcher_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct watcher *w = state;

	(void)cx;
	(void)reason;
	free(w->leaf);
	free(w->map.e);
	w->leaf = NULL;
	w->map.e = NULL;
}

/*
 * The watcher traps exits, so a linked leaf's crash arrives as a
 * TR_MSG_EXIT message instead of stopping the watcher too. It copies the
 * leaf table (the spawn argument is only borrowed) and links every leaf.
 * A leaf that already stopped shows up at once as an exit with
 * TR_EXIT_NOPROC, which is restarted like any crash.
 */
static int
watcher_init(tr_ctx *cx, void *state, void *arg)
{
	struct watcher *w = state;
	const struct watcher_args *a = arg;

	tr_trap_exit(cx, true);
	w->leaf = malloc(a->n * sizeof(*w->leaf));
	if (w->leaf == NULL || !pidmap_init(&w->map, a->n)) {
		free(w->leaf);
		w->leaf = NULL;
		return TR_ENOMEM;
	}
	w->n = a->n;
	memcpy(w->leaf, a->leaf, a->n * sizeof(*w->leaf));
	for (size_t i = 0; i < w->n; i++) {
		pidmap_put(&w->map, w->leaf[i].pid, i);
		tr_err err = tr_link(cx, w->leaf[i].pid);
		if (err < 0) {
			watcher_teardown(cx, w, TR_EXIT_INIT_FAILED);
			return err;
		}
	}
	return TR_OK;
}

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct watcher *w = state;
	tr_exit_signal sig;
	size_t i;

	if (m->type != TR_MSG_EXIT || !payload(m, &sig, sizeof(sig))) {
		return;
	}
	if (!pidmap_take(&w->map, sig.from, &i)) {
		return; /* not one of ours */
	}
	/* A shutdown is not a failure: the runtime is stopping. */
	if (sig.reason == TR_EXIT_SHUTDOWN || sig.reason == TR_EXIT_NORMAL) {
		return;
	}
	/* Spawn the replacement from inside a handler, link it, and tell
	 * the parent so that it can resend what the old one owed. */
	tr_pid fresh;
	if (tr_spawn(cx, &leaf_def, NULL, &fresh) < 0) {
		bump(&stats.restart_failures, 1);
		return;
	}
	if (tr_link(cx, fresh) < 0) {
		bump(&stats.restart_failures, 1);
	}
	w->leaf[i].pid = fresh;
	pidmap_put(&w->map, fresh, i);
	struct replaced rp = { .index = w->leaf[i].index, .pid = fresh };
	send_or_count(cx, w->leaf[i].parent, MSG_REPLACED, &rp, sizeof(rp));
	w->restarts++;
	bump(&stats.restarts, 1);
}

static const tr_actor_def watcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "watcher",
	.state_size = sizeof(struct watcher),
	.init = watcher_init,
	.teardown = watcher_teardown,
	.handle = watcher_handle,
};

/* ---- driver: keeps WINDOW waves in flight ----------------------------- */

struct driver_args {
	tr_pid root;
	uint64_t expect; /* the leaf count: what every wave must sum to */
};

struct driver {
	struct driver_args args;
	uint64_t next_id;
	uint32_t inflight;
	bool is_draining;
	tr_pid report_to;
	uint64_t started_ns[WINDOW];
	uint64_t completed;
	uint64_t bad;
	uint64_t lat_sum_ns;
	uint64_t lat_max_ns;
};

static int
driver_init(tr_ctx *cx, void *state, void *arg)
{
	struct driver *d = state;

	(void)cx;
	memcpy(&d->args, arg, sizeof(d->args));
	return TR_OK;
}

static void
driver_start_wave(tr_ctx *cx, struct driver *d)
{
	struct wave w = { .id = d->next_id++ };

	d->started_ns[w.id % WINDOW] = now_ns();
	d->inflight++;
	send_or_count(cx, d->args.root, MSG_WAVE, &w, sizeof(w));
}

static void
driver_report(tr_ctx *cx, struct driver *d)
{
	struct drain_report rep = {
		.completed = d->completed,
		.bad = d->bad,
		.lat_avg_ns = d->completed ? d->lat_sum_ns / d->completed : 0,
		.lat_max_ns = d->lat_max_ns,
	};

	send_or_count(cx, d->report_to, MSG_DRAINED, &rep, sizeof(rep));
}

static void
driver_result(tr_ctx *cx, struct driver *d, const tr_msg *m)
{
	struct result r;

	if (!payload(m, &r, sizeof(r))) {
		return;
	}
	uint64_t lat = now_ns() - d->started_ns[r.id % WINDOW];
	d->lat_sum_ns += lat;
	d->lat_max_ns = lat > d->lat_max_ns ? lat : d->lat_max_ns;
	d->completed++;
	d->inflight--;
	if (r.sum != d->args.expect) {
		d->bad++;
	}
	bump(&stats.waves, 1);
	if (!d->is_draining) {
		driver_start_wave(cx, d);
	} else if (d->inflight == 0) {
		driver_report(cx, d);
	}
}

static void
driver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct driver *d = state;

	switch (m->type) {
	case MSG_GO:
		for (uint32_t i = 0; i < WINDOW; i++) {
			driver_start_wave(cx, d);
		}
		break;
	case MSG_RESULT:
		driver_result(cx, d, m);
		break;
	case MSG_DRAIN:
		/* Finish the waves in flight, start no more, then report to
		 * whoever asked (main's inbox). */
		d->is_draining = true;
		d->report_to = tr_sender(cx);
		if (d->inflight == 0) {
			driver_report(cx, d);
		}
		break;
	default:
		break;
	}
}

static const tr_actor_def driver_def = {
	.size = sizeof(tr_actor_def),
	.name = "driver",
	.state_size = sizeof(struct driver),
	.init = driver_init,
	.handle = driver_handle,
};

/* ---- agents: slow tool calls with tr_blocking() ------------------------ */

struct tool_req {
	uint64_t call;
};

struct tool_result {
	uint64_t call;
	uint64_t slept_ns;
};

/*
 * The "tool": it blocks its thread, as a synchronous HTTP client or a
 * database driver would. It runs on the blocking pool, never on a
 * scheduler thread, and its return value becomes the reply's payload.
 */
static void *
slow_tool(void *arg)
{
	const struct tool_req *rq = arg;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = TOOL_MS * 1000000L };
	uint64_t t0 = now_ns();

	nanosleep(&ts, NULL);
	struct tool_result *res = malloc(sizeof(*res));
	if (res != NULL) {
		res->call = rq->call;
		res->slept_ns = now_ns() - t0;
	}
	return res;
}

struct agent {
	struct tool_req req; /* lent to the tool until the reply */
	uint64_t called_ns;
	bool is_draining;
	struct tool_result *last; /* the latest result, kept */
};

static void
agent_call_tool(tr_ctx *cx, struct agent *a)
{
	a->req.call++;
	a->called_ns = now_ns();
	if (tr_blocking(cx, slow_tool, &a->req, MSG_TOOL_DONE, free) < 0) {
		bump(&stats.send_errors, 1);
		return;
	}
	bump(&stats.tools_started, 1);
}

static void
agent_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct agent *a = state;

	switch (m->type) {
	case MSG_START:
		agent_call_tool(cx, a);
		break;
	case MSG_TOOL_DONE:
		bump(&stats.tools_done, 1);
		bump(&stats.tool_turnaround_ns, now_ns() - a->called_ns);
		/* Keep the result past this handler: take the pointer, so
		 * the runtime does not free it when the handler returns. */
		free(a->last);
		a->last = tr_msg_take_ptr(cx, m);
		if (a->last != NULL) {
			bump(&stats.tool_sleep_ns, a->last->slept_ns);
		}
		if (!a->is_draining) {
			agent_call_tool(cx, a);
		}
		break;
	case MSG_DRAIN:
		a->is_draining = true;
		break;
	default:
		break;
	}
}

static void
agent_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct agent *a = state;

	(void)cx;
	(void)reason;
	free(a->last);
	a->last = NULL;
}

static const tr_actor_def agent_def = {
	.size = sizeof(tr_actor_def),
	.name = "agent",
	.state_size = sizeof(struct agent),
	.teardown = agent_teardown,
	.handle = agent_handle,
};

/* ---- firehose and sink: a bounded mailbox under overload --------------- */

struct sink {
	uint64_t handled;
	uint64_t work; /* keeps the busy work from being optimised away */
};

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct sink *k = state;
	uint64_t seq;

	if (m->type != MSG_EVENT || !payload(m, &seq, sizeof(seq))) {
		return;
	}
	/* A slow consumer: a few microseconds of computation per event
	 * (handlers must not block, so this is work, not a sleep). */
	uint64_t x = seq | 1u;
	for (unsigned i = 0; i < SINK_WORK; i++) {
		rng_next(&x);
	}
	k->work += x;
	k->handled++;
	bump(&stats.events_handled, 1);
	if (k->handled % CREDIT_EVERY == 0) {
		send_or_count(cx, tr_sender(cx), MSG_CREDIT, NULL, 0);
	}
}

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.state_size = sizeof(struct sink),
	.handle = sink_handle,
	.mailbox_bound = SINK_BOUND,
};

struct firehose {
	tr_pid sink;
	uint64_t seq;
	uint64_t backlog;
	bool is_draining;
};

static int
firehose_init(tr_ctx *cx, void *state, void *arg)
{
	struct firehose *f = state;

	(void)cx;
	memcpy(&f->sink, arg, sizeof(f->sink));
	return TR_OK;
}

/*
 * Send the backlog until the sink's mailbox is full. TR_EFULL means the
 * message was not sent: the event stays in the backlog and the firehose
 * waits for the sink's next credit (or the next tick) to try again.
 */
static void
firehose_pump(tr_ctx *cx, struct firehose *f)
{
	while (f->backlog > 0) {
		tr_err err = tr_send(cx, f->sink, MSG_EVENT, &f->seq,
				     sizeof(f->seq));
		if (err == TR_EFULL) {
			bump(&stats.events_refused, 1);
			return;
		}
		if (err < 0) {
			bump(&stats.send_errors, 1);
			return;
		}
		f->seq++;
		f->backlog--;
		bump(&stats.events_sent, 1);
	}
}

static void
firehose_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct firehose *f = state;

	switch (m->type) {
	case MSG_TICK:
		if (f->is_draining) {
			break;
		}
		bump(&stats.events_offered, BURST);
		f->backlog += BURST;
		if (f->backlog > BACKLOG_MAX) {
			/* Bounded backlog: shed the excess and count it. */
			bump(&stats.events_shed, f->backlog - BACKLOG_MAX);
			f->backlog = BACKLOG_MAX;
		}
		firehose_pump(cx, f);
		break;
	case MSG_CREDIT:
		firehose_pump(cx, f);
		break;
	case MSG_DRAIN:
		f->is_draining = true;
		bump(&stats.events_dropped, f->backlog);
		f->backlog = 0;
		break;
	default:
		break;
	}
}

static const tr_actor_def firehose_def = {
	.size = sizeof(tr_actor_def),
	.name = "firehose",
	.state_size = sizeof(struct firehose),
	.init = firehose_init,
	.handle = firehose_handle,
};

/* ---- main: build, run, report, check ----------------------------------- */

struct options {
	unsigned seconds;
	unsigned leaves;
	unsigned workers;
};

struct tree {
	size_t n_leaves;
	struct leaf_entry *leaf;
	size_t n_nodes;
	struct node_spec *spec; /* read by the nodes' init: kept to the end */
	tr_pid root;
};

static void
die(const char *what, tr_err err)
{
	fprintf(stderr, "troupe-demo: %s: %s\n", what, tr_strerror(err));
	exit(1);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: troupe-demo [--seconds N] [--leaves N] "
		   "[--workers N]\n"
		   "  --seconds N  how long to run the load (default 8)\n"
		   "  --leaves N   leaf actors in the tree (default 10000)\n"
		   "  --workers N  scheduler threads (default: all cores)\n");
}

static bool
parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0') {
		return false;
	}
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v < lo || v > hi) {
		return false;
	}
	*out = (unsigned)v;
	return true;
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	*o = (struct options){ .seconds = 8, .leaves = 10000, .workers = 0 };
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok;

		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(argv[i], "--seconds") == 0) {
			ok = parse_uint(v, 1, 86400, &o->seconds);
		} else if (strcmp(argv[i], "--leaves") == 0) {
			ok = parse_uint(v, 1, 10000000, &o->leaves);
		} else if (strcmp(argv[i], "--workers") == 0) {
			ok = parse_uint(v, 0, TR_METRICS_MAX_WORKERS,
					&o->workers);
		} else {
			ok = false;
		}
		if (!ok) {
			usage(stderr);
			exit(2);
		}
		i++;
	}
}

/*
 * Spawn the tree bottom-up from main, before the runtime starts: the
 * leaves first, then one node per FANOUT children, up to a single root.
 * Spawning children first means every node's spec already holds its
 * children's pids; the children learn their parent from tr_sender().
 */
static void
build_tree(tr_runtime *rt, size_t n_leaves, struct tree *t)
{
	tr_ctx *cx = tr_runtime_ctx(rt); /* main is not an actor */
	tr_pid *cur = malloc(n_leaves * sizeof(*cur));
	tr_pid *next = malloc(n_leaves * sizeof(*next));

	t->n_leaves = n_leaves;
	t->leaf = calloc(n_leaves, sizeof(*t->leaf));
	/* A tree with fan-out >= 2 has fewer inner nodes than leaves, plus
	 * the root of a one-leaf tree. */
	t->spec = calloc(n_leaves + 1, sizeof(*t->spec));
	t->n_nodes = 0;
	if (cur == NULL || next == NULL || t->leaf == NULL || t->spec == NULL) {
		die("building the tree", TR_ENOMEM);
	}
	for (size_t i = 0; i < n_leaves; i++) {
		tr_err err = tr_spawn(cx, &leaf_def, NULL, &cur[i]);
		if (err < 0) {
			die("spawning a leaf", err);
		}
		t->leaf[i].pid = cur[i];
	}
	size_t ncur = n_leaves;
	bool is_leaf_level = true;
	do {
		size_t nnext = (ncur + FANOUT - 1) / FANOUT;

		for (size_t j = 0; j < nnext; j++) {
			struct node_spec *spec = &t->spec[t->n_nodes++];
			size_t first = j * FANOUT;

			spec->nchild =
				(uint32_t)(ncur - first < FANOUT ? ncur - first
								 : FANOUT);
			memcpy(spec->child, &cur[first],
			       spec->nchild * sizeof(tr_pid));
			tr_err err = tr_spawn(cx, &node_def, spec, &next[j]);
			if (err < 0) {
				die("spawning a node", err);
			}
			for (uint32_t k = 0; is_leaf_level && k < spec->nchild;
			     k++) {
				t->leaf[first + k].parent = next[j];
				t->leaf[first + k].index = k;
			}
		}
		tr_pid *tmp = cur;
		cur = next;
		next = tmp;
		ncur = nnext;
		is_leaf_level = false;
	} while (ncur > 1);
	t->root = cur[0];
	free(cur);
	free(next);
}

/* 1234567 -> "1.23M": short numbers for the progress line. */
static const char *
si(double v, char *buf, size_t len)
{
	if (v >= 1e9) {
		snprintf(buf, len, "%.2fG", v / 1e9);
	} else if (v >= 1e6) {
		snprintf(buf, len, "%.2fM", v / 1e6);
	} else if (v >= 1e4) {
		snprintf(buf, len, "%.1fk", v / 1e3);
	} else {
		snprintf(buf, len, "%.0f", v);
	}
	return buf;
}

static const char *
dur(uint64_t ns, char *buf, size_t len)
{
	if (ns >= 1000000000u) {
		snprintf(buf, len, "%.2fs", (double)ns / 1e9);
	} else if (ns >= 1000000u) {
		snprintf(buf, len, "%.2fms", (double)ns / 1e6);
	} else if (ns >= 1000u) {
		snprintf(buf, len, "%.1fus", (double)ns / 1e3);
	} else {
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	}
	return buf;
}

static void
snapshot(tr_runtime *rt, tr_metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->size = sizeof(*m);
	tr_err err = tr_runtime_metrics(rt, m);
	if (err < 0) {
		die("tr_runtime_metrics", err);
	}
}

/* Everything main keeps about the run, for the summary and the checks. */
struct run {
	struct options opt;
	struct tree tree;
	tr_runtime *rt;
	tr_pid driver;
	tr_pid firehose;
	tr_pid agents[N_AGENTS];
	tr_metrics ready; /* every actor started, before the load */
	tr_metrics idle;  /* after the drain */
	tr_metrics fin;   /* after tr_runtime_join() */
	struct drain_report rep;
	bool has_report;
	double load_s;
	uint64_t spawn_ns, ready_ns, stop_ns;
};

static void
progress(struct run *r, double t, uint64_t *last_handled, double *last_t)
{
	tr_metrics m;
	char a[16], b[16], c[16];

	snapshot(r->rt, &m);
	double rate = (double)(m.msgs_handled - *last_handled) / (t - *last_t);
	*last_handled = m.msgs_handled;
	*last_t = t;
	printf("[%4.1fs] %s msg/s | alive %" PRIu64 " | waves %" PRIu64
	       " | restarts %" PRIu64 " | dead %" PRIu64 " | tools %" PRIu64
	       " (%" PRIu64 " pending) | full %" PRIu64
	       " | delay p50 %s p99 %s\n",
	       t, si(rate, a, sizeof(a)), m.actors_alive, get(&stats.waves),
	       get(&stats.restarts), m.dead_letters, get(&stats.tools_done),
	       m.blocking_pending, m.mailbox_full,
	       dur(m.sched_delay_p50_ns, b, sizeof(b)),
	       dur(m.sched_delay_p99_ns, c, sizeof(c)));
	fflush(stdout);
}

static void
sleep_until(uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000u),
		.tv_nsec = (long)(deadline_ns % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) !=
	       0) {
		/* interrupted by a signal: sleep again */
	}
}

/*
 * Create the runtime and spawn every actor from main before the start,
 * then start and wait until every init has run (the watcher has linked
 * all the leaves) so that the load begins on a ready system.
 */
static void
setup(struct run *r)
{
	tr_pid watcher, sink;
	tr_err err;

	tr_config cfg = tr_config_default();
	cfg.workers = r->opt.workers; /* 0: one per online core */
	err = tr_runtime_create(&cfg, &r->rt);
	if (err < 0) {
		die("tr_runtime_create", err);
	}

	uint64_t t0 = now_ns();
	build_tree(r->rt, r->opt.leaves, &r->tree);
	/* Both argument structs are read by init on the first turn, after
	 * this function returned: they must not live on its stack. */
	static struct watcher_args wargs;
	static struct driver_args dargs;
	wargs = (struct watcher_args){ .n = r->tree.n_leaves,
				       .leaf = r->tree.leaf };
	dargs = (struct driver_args){ .root = r->tree.root,
				      .expect = r->tree.n_leaves };
	static tr_pid sink_pid;
	tr_ctx *cx = tr_runtime_ctx(r->rt);
	if ((err = tr_spawn(cx, &watcher_def, &wargs, &watcher)) < 0 ||
	    (err = tr_spawn(cx, &driver_def, &dargs, &r->driver)) < 0 ||
	    (err = tr_spawn(cx, &sink_def, NULL, &sink)) < 0) {
		die("tr_spawn", err);
	}
	sink_pid = sink;
	err = tr_spawn(cx, &firehose_def, &sink_pid, &r->firehose);
	if (err < 0) {
		die("spawning the firehose", err);
	}
	for (unsigned i = 0; i < N_AGENTS; i++) {
		err = tr_spawn(cx, &agent_def, NULL, &r->agents[i]);
		if (err < 0) {
			die("spawning an agent", err);
		}
	}
	r->spawn_ns = now_ns() - t0;

	err = tr_runtime_start(r->rt);
	if (err < 0) {
		die("tr_runtime_start", err);
	}
	err = tr_runtime_wait_idle(r->rt, 30000);
	if (err < 0) {
		die("waiting for the actors to start", err);
	}
	r->ready_ns = now_ns() - t0;
	snapshot(r->rt, &r->ready);
}

/*
 * The load phase: start the driver and the agents, then tick the
 * firehose every TICK_MS and print a progress line every second.
 */
static void
run_load(struct run *r)
{
	tr_err err;
	tr_ctx *cx = tr_runtime_ctx(r->rt);

	err = tr_send(cx, r->driver, MSG_GO, NULL, 0);
	for (unsigned i = 0; err == TR_OK && i < N_AGENTS; i++) {
		err = tr_send(cx, r->agents[i], MSG_START, NULL, 0);
	}
	if (err < 0) {
		die("starting the load", err);
	}
	uint64_t start = now_ns();
	uint64_t last_handled = r->ready.msgs_handled;
	double last_t = 0;
	unsigned ticks_per_s = 1000 / TICK_MS;
	for (unsigned i = 1; i <= r->opt.seconds * ticks_per_s; i++) {
		sleep_until(start + (uint64_t)i * TICK_MS * 1000000u);
		err = tr_send(cx, r->firehose, MSG_TICK, NULL, 0);
		if (err < 0) {
			die("ticking the firehose", err);
		}
		if (i % ticks_per_s == 0) {
			progress(r, (double)(now_ns() - start) / 1e9,
				 &last_handled, &last_t);
		}
	}
	r->load_s = (double)(now_ns() - start) / 1e9;
}

/*
 * Drain: stop making new work and let the work in flight finish. The
 * driver answers its DRAIN's sender, so main sends it "as" an inbox and
 * waits there for the report. Then stop the runtime gracefully.
 */
static void
drain_and_stop(struct run *r)
{
	tr_inbox *inbox;
	tr_received msg;
	tr_err err;

	printf("draining...\n");
	fflush(stdout);
	err = tr_inbox_create(r->rt, &inbox);
	if (err < 0) {
		die("tr_inbox_create", err);
	}
	/* The driver answers the inbox, so its drain is sent on the inbox's
	 * context; the others answer nobody. */
	err = tr_send(tr_inbox_ctx(inbox), r->driver, MSG_DRAIN, NULL, 0);
	tr_ctx *cx = tr_runtime_ctx(r->rt);
	for (unsigned i = 0; err == TR_OK && i < N_AGENTS; i++) {
		err = tr_send(cx, r->agents[i], MSG_DRAIN, NULL, 0);
	}
	if (err == TR_OK) {
		err = tr_send(cx, r->firehose, MSG_DRAIN, NULL, 0);
	}
	if (err < 0) {
		die("draining", err);
	}
	/* A lost message would stall a wave: the checks report it. */
	err = tr_inbox_recv(inbox, NULL, 20000, &msg);
	if (err < 0) {
		printf("the driver did not report: %s\n", tr_strerror(err));
	} else {
		if (msg.type == MSG_DRAINED && msg.size == sizeof(r->rep)) {
			memcpy(&r->rep, msg.data, sizeof(r->rep));
			r->has_report = true;
		}
		tr_received_fini(&msg);
	}
	tr_inbox_destroy(inbox);
	err = tr_runtime_wait_idle(r->rt, 20000);
	if (err < 0) {
		printf("no idle after the drain: %s\n", tr_strerror(err));
	}
	snapshot(r->rt, &r->idle);

	/* Graceful stop: every actor gets a shutdown behind its queue. */
	uint64_t t0 = now_ns();
	tr_runtime_stop(r->rt);
	err = tr_runtime_join(r->rt);
	if (err < 0) {
		die("tr_runtime_join", err);
	}
	r->stop_ns = now_ns() - t0;
	snapshot(r->rt, &r->fin);
}

static void
print_summary(const struct run *r)
{
	const tr_metrics *fin = &r->fin;
	uint64_t handled = r->idle.msgs_handled - r->ready.msgs_handled;
	uint64_t tools = get(&stats.tools_done);
	char a[16], b[16], c[16];

	printf("\nsummary: %.1f s of load on %u worker%s\n", r->load_s,
	       fin->workers, fin->workers == 1 ? "" : "s");
	printf("  messages   %" PRIu64
	       " handled, %s msg/s; dead letters: %" PRIu64
	       " lost with crashed leaves, %" PRIu64 " at shutdown\n",
	       handled, si((double)handled / r->load_s, a, sizeof(a)),
	       r->idle.dead_letters, fin->dead_letters - r->idle.dead_letters);
	printf("  waves      %" PRIu64 " through %zu actors, %" PRIu64
	       " with a wrong sum; latency avg %s, max %s\n",
	       r->rep.completed, r->tree.n_leaves + r->tree.n_nodes, r->rep.bad,
	       dur(r->rep.lat_avg_ns, a, sizeof(a)),
	       dur(r->rep.lat_max_ns, b, sizeof(b)));
	printf("  failures   %" PRIu64 " leaves crashed, %" PRIu64
	       " restarted by the watcher, %" PRIu64 " waves re-sent, %" PRIu64
	       " late answers ignored\n",
	       get(&stats.crashes), get(&stats.restarts), get(&stats.replayed),
	       get(&stats.late_results));
	printf("  tools      %" PRIu64 " tr_blocking calls, %s in the tool, "
	       "%s from call to reply\n",
	       tools,
	       dur(tools ? get(&stats.tool_sleep_ns) / tools : 0, a, sizeof(a)),
	       dur(tools ? get(&stats.tool_turnaround_ns) / tools : 0, b,
		   sizeof(b)));
	printf("  overload   %" PRIu64 " events offered, %" PRIu64
	       " accepted, %" PRIu64 " TR_EFULL refusals, %" PRIu64
	       " shed, %" PRIu64 " dropped at the drain\n",
	       get(&stats.events_offered), get(&stats.events_sent),
	       get(&stats.events_refused), get(&stats.events_shed),
	       get(&stats.events_dropped));
	printf("  scheduler  delay p50 %s p99 %s (%" PRIu64
	       " samples); %" PRIu64 " steals, %" PRIu64 " parks, %" PRIu64
	       " slow handlers\n",
	       dur(fin->sched_delay_p50_ns, a, sizeof(a)),
	       dur(fin->sched_delay_p99_ns, b, sizeof(b)),
	       fin->sched_delay_samples, fin->steals, fin->parks,
	       fin->slow_handlers);
	printf("  lifecycle  %" PRIu64 " actors spawned in %s, ready in %s; "
	       "%" PRIu64 " stopped in %s at the end\n",
	       r->ready.actors_spawned, dur(r->spawn_ns, a, sizeof(a)),
	       dur(r->ready_ns, b, sizeof(b)),
	       fin->actors_stopped - r->idle.actors_stopped,
	       dur(r->stop_ns, c, sizeof(c)));
	fflush(stdout);
}

static int failures;

static void
expect(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("  %s  ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		failures++;
	}
}

/* The invariants of the run. Every one of them would catch a lost,
 * duplicated or miscounted message somewhere. */
static void
check(const struct run *r)
{
	const tr_metrics *fin = &r->fin;
	uint64_t crashes = get(&stats.crashes);
	uint64_t restarts = get(&stats.restarts);
	uint64_t started = get(&stats.tools_started);
	uint64_t tools = get(&stats.tools_done);
	uint64_t offered = get(&stats.events_offered);
	uint64_t sent = get(&stats.events_sent);
	uint64_t shed = get(&stats.events_shed);
	uint64_t dropped = get(&stats.events_dropped);
	uint64_t handled = get(&stats.events_handled);
	uint64_t refused = get(&stats.events_refused);

	printf("\nchecks\n");
	expect(fin->msgs_sent == fin->msgs_handled + fin->dead_letters,
	       "msgs_sent %" PRIu64 " == msgs_handled %" PRIu64
	       " + dead_letters %" PRIu64,
	       fin->msgs_sent, fin->msgs_handled, fin->dead_letters);
	expect(fin->actors_alive == 0 &&
		       fin->actors_spawned == fin->actors_stopped,
	       "after join: actors_alive %" PRIu64 " == 0, spawned %" PRIu64
	       " == stopped %" PRIu64,
	       fin->actors_alive, fin->actors_spawned, fin->actors_stopped);
	expect(r->has_report && r->rep.completed > 0 && r->rep.bad == 0 &&
		       r->rep.completed == get(&stats.waves),
	       "the driver reported %" PRIu64 " waves, each summed to %zu",
	       r->rep.completed, r->tree.n_leaves);
	expect(crashes == restarts && get(&stats.restart_failures) == 0,
	       "every crash restarted: crashes %" PRIu64
	       " == restarts %" PRIu64,
	       crashes, restarts);
	/* The inbox made for the drain is one more actor. */
	expect(fin->actors_spawned == r->ready.actors_spawned + restarts + 1,
	       "actors_spawned %" PRIu64 " == %" PRIu64
	       " at start + restarts + the inbox",
	       fin->actors_spawned, r->ready.actors_spawned);
	expect(tools > 0 && tools == started && r->idle.blocking_pending == 0,
	       "tr_blocking calls: %" PRIu64 " started == %" PRIu64
	       " replied, none pending at idle",
	       started, tools);
	expect(fin->mailbox_full == refused,
	       "mailbox_full %" PRIu64
	       " == TR_EFULL seen by the firehose %" PRIu64,
	       fin->mailbox_full, refused);
	expect(offered == sent + shed + dropped && sent == handled,
	       "events: offered %" PRIu64 " == accepted + shed + dropped, "
	       "accepted %" PRIu64 " == handled by the sink %" PRIu64,
	       offered, sent, handled);
	expect(get(&stats.send_errors) == 0,
	       "no unexpected send errors (%" PRIu64 ")",
	       get(&stats.send_errors));
}

int
main(int argc, char **argv)
{
	struct run r = { 0 };

	parse_options(argc, argv, &r.opt);
	setup(&r);
	unsigned workers = tr_runtime_workers(r.rt);
	printf("troupe %s demo: %u worker%s, %u s of load\n", tr_version(),
	       workers, workers == 1 ? "" : "s", r.opt.seconds);
	printf("%" PRIu64 " actors: a tree of %zu leaves and %zu nodes "
	       "(fan-out %d), a watcher, a driver, %d agents, a firehose "
	       "and a sink\n",
	       r.ready.actors_spawned, r.tree.n_leaves, r.tree.n_nodes, FANOUT,
	       N_AGENTS);
	printf("load: %d waves in flight, leaves crash 1 in %u, tools sleep "
	       "%d ms, %d events per %d ms into a %d-slot mailbox\n",
	       WINDOW, CRASH_ONE_IN, TOOL_MS, BURST, TICK_MS, SINK_BOUND);
	fflush(stdout);

	run_load(&r);
	drain_and_stop(&r);
	print_summary(&r);

	char *json = tr_runtime_metrics_json(r.rt);
	printf("\nmetrics %s\n", json != NULL ? json : "(out of memory)");
	tr_free_string(json);

	check(&r);
	tr_runtime_destroy(r.rt);
	free(r.tree.leaf);
	free(r.tree.spec);
	printf("%s\n", failures == 0 ? "all checks passed" : "CHECKS FAILED");
	return failures == 0 ? 0 : 1;
}
