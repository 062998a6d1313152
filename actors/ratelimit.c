/*
 * Rate limiter (<troupe/actors/ratelimit.h>): a token bucket owned by one
 * actor, which answers requests.
 *
 * The actor holds everything: the credit, when it was last refilled, the
 * FIFO queue of waiting requests (a copy of each request's header, which
 * tr_reply() answers later) and the one timer armed for the first
 * waiter's due time. Every request that fits joins the queue; at its
 * head it is granted as soon as its tokens are there, which for a
 * request to an empty queue with the tokens ready is at once. It starts from its first message (MSG_START, see
 * boot.h), which carries the configuration checked by
 * tr_ratelimit_start().
 *
 * Credit is kept in nano-tokens (one token = 10^9 units): refilling by
 * elapsed_ns * rate units is exact integer arithmetic on the monotonic
 * clock, so grants follow the clock, never the timer, and do not drift.
 * The timer only wakes the actor; a timer that fires early finds the
 * tokens short and is armed again for the rest.
 *
 * While waiters are queued the credit grows linearly, without the burst
 * cap (see refill()), until the head is served. That makes the due time
 * of a new request exact: the tokens queued ahead plus its own, less the
 * credit, divided by the rate.
 *
 * Answers are replies to requests, which a bounded mailbox never refuses,
 * so nothing is kept to be sent again. A requester that stopped cannot
 * take a grant: before granting the head, and before refusing a new
 * request, the limiter drops the waiters whose requester is gone.
 * Waiters it still holds when it stops are failed by the runtime with
 * its stop reason.
 *
 * Threads: the actor's turns only.
 */
#include <troupe/actors/ratelimit.h>

#include <stdlib.h>

#include "boot.h"
#include "clock.h"

/* The limiter's own messages. */
#define MSG_START (TR_MSG_RATELIMIT_BASE + 0x80u) /* ptr to the config */
#define MSG_TICK  (TR_MSG_RATELIMIT_BASE + 0x81u) /* uint64_t tick_seq */

#define UNITS_PER_TOKEN 1000000000u
/* Credit never grows past this, far above any burst (2^32 tokens). */
#define CREDIT_LIMIT (UINT64_MAX / 2)
#define NS_PER_MS    1000000u

struct waiter {
	struct waiter *next;
	tr_msg req; /* the request's header, answered later */
	uint64_t since_ns;
	uint32_t tokens;
};

struct limiter {
	tr_ratelimit_config cfg; /* rate == 0 until the start */
	uint64_t credit;         /* nano-tokens */
	uint64_t last_ns;        /* when credit was last brought up to date */
	struct waiter *head;     /* the FIFO of n waiters */
	struct waiter **tail;    /* set by the start */
	size_t n;
	uint64_t queued;   /* tokens asked for by the queue */
	uint64_t tick_seq; /* the armed tick; older ticks are ignored */
	bool tick_armed;
	tr_ratelimit_stats st; /* tokens and waiting are filled on demand */
};

/*
 * Bring the credit up to @now.
 *
 * With waiters queued the credit is not capped at the burst: served on
 * time, the queue would have taken every token as it came, so a timer
 * that fires late must find all of them, or the lateness would add up
 * and the rate drift down. Once the queue is empty the cap applies again,
 * here: every reading of the credit comes after a refill.
 */
static void
refill(struct limiter *l, uint64_t now)
{
	uint64_t burst = (uint64_t)l->cfg.burst * UNITS_PER_TOKEN;

	if (now > l->last_ns) {
		uint64_t elapsed = now - l->last_ns;
		l->last_ns = now;
		/* Compare before multiplying, so elapsed * rate cannot
		 * overflow. */
		if (elapsed >= (CREDIT_LIMIT - l->credit) / l->cfg.rate + 1) {
			l->credit = CREDIT_LIMIT;
		} else {
			l->credit += elapsed * l->cfg.rate;
		}
	}
	if (l->n == 0 && l->credit > burst) {
		l->credit = burst;
	}
}

/*
 * Nanoseconds until @tokens are there, from the current credit.
 * UINT64_MAX when it does not fit in 64 bits.
 */
static uint64_t
wait_ns(const struct limiter *l, uint64_t tokens)
{
	if (tokens > UINT64_MAX / UNITS_PER_TOKEN) {
		return UINT64_MAX;
	}
	uint64_t need = tokens * UNITS_PER_TOKEN;
	if (need <= l->credit) {
		return 0;
	}
	need -= l->credit;
	return need / l->cfg.rate + (need % l->cfg.rate != 0);
}

static uint64_t
ns_to_ms_up(uint64_t ns)
{
	return ns == UINT64_MAX ? UINT64_MAX
				: ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

static void
answer(tr_ctx *cx, const tr_msg *req, int32_t status, uint32_t tokens,
       uint64_t wait_ms)
{
	tr_ratelimit_reply r = {
		.status = status,
		.tokens = tokens,
		.wait_ms = wait_ms,
	};

	/* A requester that stopped or gave up makes it a dead letter. */
	(void)tr_reply(cx, req, TR_MSG_RATELIMIT_REPLY, &r, sizeof(r));
}

/*
 * Whether the requester of @w has stopped. Only a local pid can be
 * asked; a remote requester is kept.
 */
static bool
gone(tr_ctx *cx, const struct waiter *w)
{
	return tr_pid_node(w->req.from) == 0 &&
	       !tr_actor_alive(tr_ctx_runtime(cx), w->req.from);
}

/* ---- the queue ------------------------------------------------------ */

static bool
queue_push(struct limiter *l, const tr_msg *m, uint32_t tokens, uint64_t now)
{
	struct waiter *w = malloc(sizeof(*w));

	if (w == NULL) {
		return false;
	}
	/* Only the header is kept: tr_reply() reads no payload. */
	*w = (struct waiter){ .req = *m, .since_ns = now, .tokens = tokens };
	*l->tail = w;
	l->tail = &w->next;
	l->n++;
	l->queued += tokens;
	return true;
}

/* Take the waiter at @pp out of the queue, for the caller to free. */
static struct waiter *
queue_take(struct limiter *l, struct waiter **pp)
{
	struct waiter *w = *pp;

	*pp = w->next;
	if (l->tail == &w->next) {
		l->tail = pp;
	}
	l->n--;
	l->queued -= w->tokens;
	return w;
}

/* Drop the waiters whose requester stopped, keeping the order. */
static size_t
purge(tr_ctx *cx, struct limiter *l)
{
	size_t n = l->n;

	for (struct waiter **pp = &l->head; *pp != NULL;) {
		if (gone(cx, *pp)) {
			free(queue_take(l, pp));
			l->st.abandoned++;
		} else {
			pp = &(*pp)->next;
		}
	}
	return n - l->n;
}

/* Arm the one timer for the head's due time, @ns (> 0) from now. */
static void
tick_arm(tr_ctx *cx, struct limiter *l, uint64_t ns)
{
	uint64_t ms = ns_to_ms_up(ns);

	l->tick_seq++;
	/* On failure (the runtime is stopping, or no memory) the next
	 * acquire serves the queue and arms again. */
	l->tick_armed = tr_send_after(cx, tr_self(cx), MSG_TICK, &l->tick_seq,
				      sizeof(l->tick_seq), ms, NULL) == TR_OK;
}

/* Grant every waiter whose tokens are there at @now, then arm for the
 * next. */
static void
serve(tr_ctx *cx, struct limiter *l, uint64_t now)
{
	while (l->head != NULL) {
		struct waiter *h = l->head;

		if (gone(cx, h)) {
			/* Its tokens stay in the bucket. */
			free(queue_take(l, &l->head));
			l->st.abandoned++;
			continue;
		}
		refill(l, now);
		uint64_t need = wait_ns(l, h->tokens);
		if (need > 0) {
			tick_arm(cx, l, need);
			return;
		}
		l->credit -= (uint64_t)h->tokens * UNITS_PER_TOKEN;
		(void)queue_take(l, &l->head);
		l->st.granted++;
		answer(cx, &h->req, TR_OK, h->tokens,
		       (now - h->since_ns) / NS_PER_MS);
		free(h);
	}
	l->tick_armed = false;
}

/* ---- requests ------------------------------------------------------- */

/* Can a request wait @need ns, with room left in the queue? */
static bool
fits(const struct limiter *l, uint64_t need, int64_t max_wait_ms)
{
	bool in_time = max_wait_ms < 0 ||
		       (uint64_t)max_wait_ms >= UINT64_MAX / NS_PER_MS ||
		       need <= (uint64_t)max_wait_ms * NS_PER_MS;

	return in_time && (l->cfg.max_queue == 0 || l->n < l->cfg.max_queue);
}

static void
on_acquire(tr_ctx *cx, struct limiter *l, const tr_msg *m)
{
	const tr_ratelimit_acquire_req *q =
		TR_MSG_AS(m, tr_ratelimit_acquire_req);

	if (q == NULL || q->tokens == 0 || q->tokens > l->cfg.burst) {
		/* It could never be granted. */
		l->st.invalid++;
		answer(cx, m, TR_EINVAL, q != NULL ? q->tokens : 0, 0);
		return;
	}
	/* A negative wait means the default; a negative default, none. */
	int64_t max_wait =
		q->max_wait_ms < 0 ? l->cfg.max_wait_ms : q->max_wait_ms;
	uint64_t now = tr__clock_ns();
	if (l->n > 0 && !l->tick_armed) {
		serve(cx, l, now); /* its timer could not be armed */
	}
	refill(l, now);
	uint64_t need = wait_ns(l, l->queued + q->tokens);
	if (!fits(l, need, max_wait) && purge(cx, l) > 0) {
		/* Waiters ahead had stopped: the head may be new, or due. */
		serve(cx, l, now);
		refill(l, now);
		need = wait_ns(l, l->queued + q->tokens);
	}
	if (!fits(l, need, max_wait)) {
		l->st.rejected++;
		answer(cx, m, TR_EREJECTED, q->tokens, ns_to_ms_up(need));
		return;
	}
	if (!queue_push(l, m, q->tokens, now)) {
		l->st.rejected++;
		answer(cx, m, TR_ENOMEM, q->tokens, 0);
		return;
	}
	if (l->n == 1) {
		/* A new head, granted now or when its timer fires; otherwise
		 * the head's timer is already armed. */
		serve(cx, l, now);
	}
}

static void
on_stats(tr_ctx *cx, struct limiter *l, const tr_msg *m)
{
	if (m->size != 0) {
		l->st.invalid++;
		answer(cx, m, TR_EINVAL, 0, 0);
		return;
	}
	refill(l, tr__clock_ns());
	uint64_t tokens = l->credit / UNITS_PER_TOKEN;
	l->st.tokens = tokens < l->cfg.burst ? (uint32_t)tokens : l->cfg.burst;
	l->st.waiting = l->n > UINT32_MAX ? UINT32_MAX : (uint32_t)l->n;
	(void)tr_reply(cx, m, TR_MSG_RATELIMIT_STATS_REPLY, &l->st,
		       sizeof(l->st));
}

/* The first message (see boot.h): the configuration, answered with the
 * stats. */
static void
on_start(tr_ctx *cx, struct limiter *l, const tr_msg *m)
{
	tr_msg start;
	tr_ratelimit_config *cfg = tr__boot_take(cx, m, sizeof(*cfg), &start);

	l->cfg = *cfg;
	free(cfg);
	l->credit = (uint64_t)l->cfg.burst * UNITS_PER_TOKEN;
	l->last_ns = tr__clock_ns();
	l->tail = &l->head;
	/* Nobody to answer (tr_runtime_ctx()) makes the reply fail. */
	on_stats(cx, l, &start);
}

static void
limiter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct limiter *l = state;

	if (l->cfg.rate == 0) {
		on_start(cx, l, m); /* the rate is not 0 after it */
		return;
	}
	if (m->type == MSG_TICK && tr_pid_eq(m->from, tr_self(cx))) {
		const uint64_t *seq = TR_MSG_AS(m, uint64_t);
		if (seq != NULL && l->tick_armed && *seq == l->tick_seq) {
			serve(cx, l, tr__clock_ns());
		}
		return;
	}
	if (!(m->flags & TR_MSG_F_REQUEST)) {
		/* Nobody could match an answer to it. */
		l->st.dropped++;
		(void)tr_unhandled(cx, m);
		return;
	}
	if (m->type == TR_MSG_RATELIMIT_ACQUIRE) {
		on_acquire(cx, l, m);
	} else if (m->type == TR_MSG_RATELIMIT_STATS) {
		on_stats(cx, l, m);
	} else {
		l->st.invalid++;
		answer(cx, m, TR_EINVAL, 0, 0);
	}
}

static void
limiter_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct limiter *l = state;

	(void)cx;
	(void)reason;
	/* The runtime fails the requests still queued, with our reason. */
	while (l->head != NULL) {
		free(queue_take(l, &l->head));
	}
}

static const tr_actor_def limiter_def = {
	.size = sizeof(tr_actor_def),
	.name = "ratelimit",
	.state_size = sizeof(struct limiter),
	.teardown = limiter_teardown,
	.handle = limiter_handle,
};

tr_err
tr_ratelimit_start(tr_ctx *cx, const tr_ratelimit_config *cfg, tr_pid *out,
		   tr_ref *ref)
{
	bool ok = cx != NULL && cfg != NULL && cfg->size >= sizeof(*cfg) &&
		  cfg->rate != 0 && cfg->burst != 0;

	return tr__boot_copy(cx, &limiter_def, ok && cfg->is_linked, MSG_START,
			     ok ? cfg : NULL, sizeof(*cfg), out, ref);
}
