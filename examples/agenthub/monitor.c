/*
 * monitor.c - the progress printer: it listens to the hub and prints one
 * line a second.
 *
 * It knows nothing of the manager, the leads or the employees. It
 * subscribes to two topics on the bus (tr_pubsub), the way a dashboard
 * subscribes to an asyncio message bus:
 *
 *   "tasks"    TASK_EV_ACCEPTED, TASK_EV_DONE and TASK_EV_CANCELLED from
 *              the manager, TASK_EV_RETRY from the task leads; the done
 *              events carry each task's latency, kept here in a histogram
 *   "breaker"  every state change of the circuit breaker in front of the
 *              model (relayed by the manager)
 *
 * Once a second (tr_send_every) it adds what the runtime and the other
 * services report: messages handled from tr_runtime_metrics(), restarts
 * of employees from the pool (which counts its supervisor's events;
 * asked with a TR_POOL_OP_STATS request), and the rate limiter's waits
 * from the employees' counters. Reading the breaker's state on each tick
 * with tr_breaker_current() also moves an open breaker to half-open as
 * soon as its recovery time is over, instead of at the next call.
 *
 * main() asks for the totals at the end (MSG_REPORT) and turns the
 * printing off (MSG_QUIET) before its summary.
 *
 * Threads: one actor; its state is its own.
 */
#include "agenthub.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <troupe/actors/pool.h>

/*
 * Latencies go into a log-linear histogram: 1 ms buckets below 1 s,
 * 10 ms buckets below 10 s, 100 ms buckets below 100 s, and one bucket
 * for anything slower. A percentile is read as the upper end of its
 * bucket, so it is exact below 1 s and at most 1% high above.
 */
enum {
	HIST_BUCKETS = 1000 + 900 + 900 + 1,
	TICK_MS = 1000, /* a line of figures, and the pool's answer's bound */
};

struct hist {
	uint32_t bucket[HIST_BUCKETS];
	uint64_t n;
	uint64_t max_ms;
};

static unsigned
hist_bucket(uint64_t ms)
{
	if (ms < 1000) {
		return (unsigned)ms;
	}
	if (ms < 10000) {
		return 1000 + (unsigned)((ms - 1000) / 10);
	}
	if (ms < 100000) {
		return 1900 + (unsigned)((ms - 10000) / 100);
	}
	return HIST_BUCKETS - 1;
}

/* The largest value a bucket holds (the slowest: the maximum seen). */
static uint64_t
hist_upper(const struct hist *h, unsigned b)
{
	uint64_t v;

	if (b < 1000) {
		v = b;
	} else if (b < 1900) {
		v = 1000 + (uint64_t)(b - 1000) * 10 + 9;
	} else if (b < HIST_BUCKETS - 1) {
		v = 10000 + (uint64_t)(b - 1900) * 100 + 99;
	} else {
		v = h->max_ms;
	}
	return v < h->max_ms ? v : h->max_ms;
}

struct monitor {
	tr_timer_id tick;
	bool is_ticking;
	/* from "tasks" */
	uint64_t accepted, done, ok, cancelled;
	uint64_t retries[4]; /* by enum retry_why */
	struct hist total;   /* every task of the run */
	struct hist window;  /* the tasks of the last second */
	/* from "breaker" */
	uint64_t breaker_changes;
	uint32_t breaker_state;
	char breaker_log[256];
	size_t breaker_log_len;
	/* from the pool */
	uint64_t restarts;
	uint32_t live;
	/* the previous tick, for rates */
	double last_t;
	uint64_t last_handled, last_done;
};

static void
hist_add(struct hist *h, uint64_t ms)
{
	h->bucket[hist_bucket(ms)]++;
	h->n++;
	if (ms > h->max_ms) {
		h->max_ms = ms;
	}
}

/* The value with at least @pct percent of the samples at or below it. */
static uint64_t
hist_pct(const struct hist *h, double pct)
{
	uint64_t need = (uint64_t)((double)h->n * pct / 100.0 + 0.999999);
	uint64_t seen = 0;

	if (h->n == 0) {
		return 0;
	}
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen >= need) {
			return hist_upper(h, b);
		}
	}
	return h->max_ms;
}

static void
task_event(struct monitor *mo, const struct task_event *ev)
{
	switch (ev->kind) {
	case TASK_EV_ACCEPTED:
		mo->accepted++;
		break;
	case TASK_EV_RETRY:
		if (ev->retry < 4) {
			mo->retries[ev->retry]++;
		}
		break;
	case TASK_EV_DONE:
		mo->done++;
		mo->ok += ev->ok ? 1 : 0;
		hist_add(&mo->total, ev->ms);
		hist_add(&mo->window, ev->ms);
		break;
	case TASK_EV_CANCELLED:
		mo->cancelled++;
		break;
	default:
		break;
	}
}

static void
breaker_event(struct monitor *mo, const tr_breaker_change *c)
{
	mo->breaker_changes++;
	mo->breaker_state = c->to;
	if (mo->breaker_log_len + 24 < sizeof(mo->breaker_log)) {
		int n = snprintf(mo->breaker_log + mo->breaker_log_len,
				 sizeof(mo->breaker_log) - mo->breaker_log_len,
				 "%s%.1fs %s", mo->breaker_log_len ? ", " : "",
				 hub_seconds(),
				 tr_breaker_state_name((int)c->to));
		mo->breaker_log_len += n > 0 ? (size_t)n : 0;
	} else if (mo->breaker_log_len + 5 < sizeof(mo->breaker_log)) {
		memcpy(mo->breaker_log + mo->breaker_log_len, ", ...", 6);
		mo->breaker_log_len = sizeof(mo->breaker_log); /* full */
	}
}

/* 1234567 -> "1.23M": short numbers for the progress line. */
static const char *
si(double v, char *buf, size_t len)
{
	if (v >= 1e6) {
		snprintf(buf, len, "%.2fM", v / 1e6);
	} else if (v >= 1e4) {
		snprintf(buf, len, "%.1fk", v / 1e3);
	} else {
		snprintf(buf, len, "%.0f", v);
	}
	return buf;
}

static void
tick(tr_ctx *cx, struct monitor *mo)
{
	tr_metrics m = { .size = sizeof(m) };
	double t = hub_seconds();
	double dt = t - mo->last_t > 0.001 ? t - mo->last_t : 0.001;
	char a[16];
	tr_pid pool;

	/* Ask the pool for its counters; the answer comes as a message and
	 * shows on the next line. */
	if (tr_registry_whereis(hub.reg, NAME_EMPLOYEES, &pool) == TR_OK) {
		tr_pool_request q = { .op = TR_POOL_OP_STATS };
		(void)tr_request(cx, pool, TR_MSG_POOL_CONTROL, &q, sizeof(q),
				 TICK_MS, NULL);
	}
	(void)tr_runtime_metrics(tr_ctx_runtime(cx), &m);
	tr_breaker_state bs = tr_breaker_current(hub.breaker);

	printf("[%5.1fs] tasks %" PRIu64 " done, %.0f/s, %" PRIu64
	       " open | msgs %s/s | latency p50 %" PRIu64 " p99 %" PRIu64
	       " ms | restarts %" PRIu64
	       " | breaker %s | limiter waits %" PRIu64 "\n",
	       t, mo->done, (double)(mo->done - mo->last_done) / dt,
	       mo->accepted - mo->done - mo->cancelled,
	       si((double)(m.msgs_handled - mo->last_handled) / dt, a,
		  sizeof(a)),
	       hist_pct(&mo->window, 50), hist_pct(&mo->window, 99),
	       mo->restarts, tr_breaker_state_name((int)bs),
	       stat_get(&stats.limiter_waits));
	fflush(stdout);
	memset(&mo->window, 0, sizeof(mo->window));
	mo->last_t = t;
	mo->last_handled = m.msgs_handled;
	mo->last_done = mo->done;
}

static void
report(tr_ctx *cx, struct monitor *mo)
{
	struct report r = {
		.accepted = mo->accepted,
		.done = mo->done,
		.ok = mo->ok,
		.cancelled = mo->cancelled,
		.retries_crash = mo->retries[RETRY_CRASH],
		.retries_timeout = mo->retries[RETRY_TIMEOUT],
		.retries_failure = mo->retries[RETRY_FAILURE],
		.restarts = mo->restarts,
		.breaker_changes = mo->breaker_changes,
		.breaker_state = mo->breaker_state,
		.p50_ms = hist_pct(&mo->total, 50),
		.p90_ms = hist_pct(&mo->total, 90),
		.p99_ms = hist_pct(&mo->total, 99),
		.max_ms = mo->total.max_ms,
	};

	memcpy(r.breaker_log, mo->breaker_log, sizeof(r.breaker_log));
	r.breaker_log[sizeof(r.breaker_log) - 1] = '\0';
	(void)tr_send(cx, tr_sender(cx), MSG_REPORT_REPLY, &r, sizeof(r));
}

static int
monitor_init(tr_ctx *cx, void *state, void *arg)
{
	struct monitor *mo = state;
	tr_err err;

	(void)arg;
	tr_pid me = tr_self(cx);
	if ((err = tr_pubsub_subscribe(hub.bus, TOPIC_TASKS, me)) < 0 ||
	    (err = tr_pubsub_subscribe(hub.bus, TOPIC_BREAKER, me)) < 0) {
		return err;
	}
	mo->last_t = hub_seconds();
	if (!hub.opt.is_quiet) {
		err = tr_send_every(cx, tr_self(cx), MSG_TICK, NULL, 0, TICK_MS,
				    &mo->tick);
		mo->is_ticking = err == TR_OK;
	}
	return TR_OK;
}

static void
monitor_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct monitor *mo = state;

	switch (m->type) {
	case MSG_TASK_EVENT: {
		struct task_event ev;

		if (payload(m, &ev, sizeof(ev))) {
			task_event(mo, &ev);
		}
		break;
	}
	case MSG_BREAKER_EVENT: {
		tr_breaker_change c;

		if (payload(m, &c, sizeof(c))) {
			breaker_event(mo, &c);
		}
		break;
	}
	case TR_MSG_POOL_REPLY: {
		const tr_pool_reply *r = TR_MSG_AS(m, tr_pool_reply);

		if (r != NULL && r->status == TR_OK) {
			mo->restarts = r->restarts;
			mo->live = r->live;
		}
		break;
	}
	case MSG_TICK:
		/* A tick sent just before MSG_QUIET may still come. */
		if (mo->is_ticking) {
			tick(cx, mo);
		}
		break;
	case MSG_QUIET:
		if (mo->is_ticking) {
			(void)tr_timer_cancel(cx, mo->tick);
			mo->is_ticking = false;
		}
		break;
	case MSG_REPORT:
		report(cx, mo);
		break;
	default:
		break;
	}
}

const tr_actor_def monitor_def = {
	.size = sizeof(tr_actor_def),
	.name = "monitor",
	.state_size = sizeof(struct monitor),
	.init = monitor_init,
	.handle = monitor_handle,
};
