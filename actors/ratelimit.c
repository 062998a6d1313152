/*
 * Rate limiter: a token bucket shared between callers and one actor
 * (<troupe/actors/ratelimit.h>).
 *
 * The bucket (credit, the time it was last refilled, the number of
 * waiters, the closed flag) lives in struct tr_ratelimit under its mutex,
 * so tr_ratelimit_try() can answer on the caller's thread. Everything
 * that waits belongs to the limiter actor: the FIFO queue of waiters, the
 * one timer armed for the first waiter's due time, and replies that a
 * full mailbox refused and that are sent again later.
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
 * Threads: the actor on workers; try, acquire and destroy on any thread.
 * The handle is freed by the last of the user (destroy) and the actor
 * (teardown) to let go.
 */
#include <troupe/actors/ratelimit.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ref.h"
#include "resend.h"

/* The limiter's own messages. */
#define MSG_RL_REQUEST (TR_MSG_RATELIMIT_BASE + 0x80u)
#define MSG_RL_TICK    (TR_MSG_RATELIMIT_BASE + 0x81u)
#define MSG_RL_RETRY   (TR_MSG_RATELIMIT_BASE + 0x82u)

#define UNITS_PER_TOKEN 1000000000u
/* Credit never grows past this, far above any burst (2^32 tokens). */
#define CREDIT_LIMIT (UINT64_MAX / 2)
#define NS_PER_MS    1000000u

/* A refused reply is sent again after this long. */
#define RETRY_MS 5u

struct tr_ratelimit {
	tr_runtime *rt;
	tr_pid pid;
	uint32_t rate;
	uint32_t burst;
	int64_t max_wait_ms;
	uint32_t max_queue;
	atomic_uint refs; /* the caller's handle and the actor */
	pthread_mutex_t mu;
	/* Under mu. */
	uint64_t credit;  /* nano-tokens, at most burst * UNITS_PER_TOKEN */
	uint64_t last_ns; /* when credit was last brought up to date */
	uint32_t waiting; /* requests in the actor's queue */
	bool closed;      /* the actor stopped */
};

struct request {
	uint64_t tag;
	int64_t max_wait_ms;
	uint32_t tokens;
	uint32_t pad;
};

struct waiter {
	tr_pid to;
	uint64_t tag;
	uint64_t since_ns;
	uint32_t tokens;
};

struct pending {
	tr_pid to;
	uint32_t type;
	tr_ratelimit_reply reply;
};

struct limiter {
	tr_ratelimit *rl;
	struct waiter *q; /* ring of cap entries, n used from head */
	size_t cap;
	size_t head;
	size_t n;
	uint64_t queued;   /* tokens asked for by the queue */
	uint64_t tick_seq; /* the armed tick; older ticks are ignored */
	bool tick_armed;
	struct pending *retry; /* replies refused by a full mailbox */
	size_t retry_n;
	size_t retry_cap;
	struct tr__resend resend; /* MSG_RL_RETRY, every RETRY_MS */
};

/*
 * Bring the credit up to @now. Caller holds rl->mu.
 *
 * With waiters queued the credit is not capped at the burst: served on
 * time, the queue would have taken every token as it came, so a timer
 * that fires late must find all of them, or the lateness would add up
 * and the rate drift down. Once the queue is empty the cap applies again
 * (cap_credit()).
 */
static void
refill(tr_ratelimit *rl, uint64_t now)
{
	uint64_t cap = rl->waiting > 0 ? CREDIT_LIMIT
				       : (uint64_t)rl->burst * UNITS_PER_TOKEN;

	if (now <= rl->last_ns) {
		return;
	}
	uint64_t elapsed = now - rl->last_ns;
	rl->last_ns = now;
	if (rl->credit >= cap) {
		return;
	}
	uint64_t room = cap - rl->credit;
	/* Compare before multiplying, so elapsed * rate cannot overflow. */
	if (elapsed >= room / rl->rate + 1) {
		rl->credit = cap;
		return;
	}
	rl->credit += elapsed * rl->rate;
	if (rl->credit > cap) {
		rl->credit = cap;
	}
}

/* The bucket holds at most the burst when nobody waits. Holds rl->mu. */
static void
cap_credit(tr_ratelimit *rl)
{
	uint64_t cap = (uint64_t)rl->burst * UNITS_PER_TOKEN;

	if (rl->waiting == 0 && rl->credit > cap) {
		rl->credit = cap;
	}
}

/*
 * Nanoseconds until @tokens more than the queue's are there, from the
 * current credit. UINT64_MAX when it does not fit in 64 bits. Caller
 * holds rl->mu.
 */
static uint64_t
wait_ns(const tr_ratelimit *rl, uint64_t tokens)
{
	if (tokens > UINT64_MAX / UNITS_PER_TOKEN) {
		return UINT64_MAX;
	}
	uint64_t need = tokens * UNITS_PER_TOKEN;
	if (need <= rl->credit) {
		return 0;
	}
	need -= rl->credit;
	return need / rl->rate + (need % rl->rate != 0);
}

static uint64_t
ns_to_ms_up(uint64_t ns)
{
	return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

static void
handle_unref(tr_ratelimit *rl)
{
	if (tr__ref_put(&rl->refs)) {
		pthread_mutex_destroy(&rl->mu);
		free(rl);
	}
}

/* ---- replies -------------------------------------------------------- */

/* Keep a refused reply for later. False when there is no room at all. */
static bool
retry_push(struct limiter *l, tr_pid to, uint32_t type,
	   const tr_ratelimit_reply *r)
{
	if (l->retry_n == l->retry_cap) {
		size_t cap = l->retry_cap == 0 ? 8 : l->retry_cap * 2;
		struct pending *v = realloc(l->retry, cap * sizeof(*v));
		if (v == NULL) {
			return false;
		}
		l->retry = v;
		l->retry_cap = cap;
	}
	l->retry[l->retry_n].to = to;
	l->retry[l->retry_n].type = type;
	l->retry[l->retry_n].reply = *r;
	l->retry_n++;
	return true;
}

static void
reply(tr_ctx *cx, struct limiter *l, tr_pid to, uint32_t type, uint64_t tag,
      int32_t status, uint32_t tokens, uint64_t wait_ms)
{
	tr_ratelimit_reply r = {
		.tag = tag,
		.status = status,
		.tokens = tokens,
		.wait_ms = wait_ms,
	};

	/* Replies to one requester stay in order: once one waits for a
	 * retry, the later ones queue behind it. */
	bool behind = false;
	for (size_t i = 0; i < l->retry_n && !behind; i++) {
		behind = tr_pid_eq(l->retry[i].to, to);
	}
	if (!behind) {
		tr_err err = tr_send(cx, to, type, &r, sizeof(r));
		if (!tr__resend_worth(err)) {
			return; /* sent, or to a pid that can never take it */
		}
	}
	if (retry_push(l, to, type, &r)) {
		(void)tr__resend_arm(cx, &l->resend);
	}
}

static void
retry_run(tr_ctx *cx, struct limiter *l)
{
	size_t kept = 0;

	for (size_t i = 0; i < l->retry_n; i++) {
		struct pending *p = &l->retry[i];
		bool behind = false;
		for (size_t j = 0; j < kept && !behind; j++) {
			behind = tr_pid_eq(l->retry[j].to, p->to);
		}
		if (!behind) {
			tr_err err = tr_send(cx, p->to, p->type, &p->reply,
					     sizeof(p->reply));
			if (!tr__resend_worth(err)) {
				continue;
			}
		}
		l->retry[kept++] = *p;
	}
	l->retry_n = kept;
	if (kept > 0) {
		(void)tr__resend_arm(cx, &l->resend);
	}
}

/* ---- the queue ------------------------------------------------------ */

static bool
queue_push(struct limiter *l, const struct waiter *w)
{
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 16 : l->cap * 2;
		struct waiter *v = malloc(cap * sizeof(*v));
		if (v == NULL) {
			return false;
		}
		for (size_t i = 0; i < l->n; i++) {
			v[i] = l->q[(l->head + i) % l->cap];
		}
		free(l->q);
		l->q = v;
		l->cap = cap;
		l->head = 0;
	}
	l->q[(l->head + l->n) % l->cap] = *w;
	l->n++;
	l->queued += w->tokens;
	return true;
}

static struct waiter
queue_pop(struct limiter *l)
{
	struct waiter w = l->q[l->head];

	l->head = (l->head + 1) % l->cap;
	l->n--;
	l->queued -= w.tokens;
	return w;
}

/* Arm the one timer for the head's due time, @ns from now. */
static void
tick_arm(tr_ctx *cx, struct limiter *l, uint64_t ns)
{
	uint64_t ms = ns_to_ms_up(ns);

	l->tick_seq++;
	if (ms == 0) {
		ms = 1;
	}
	/* Without a timer the queue would stall; on failure (the runtime is
	 * stopping) teardown answers the waiters instead. */
	l->tick_armed =
		tr_send_after(cx, tr_self(cx), MSG_RL_TICK, &l->tick_seq,
			      sizeof(l->tick_seq), ms, NULL) == TR_OK;
}

/* Grant every waiter whose tokens are there, then arm for the next. */
static void
serve(tr_ctx *cx, struct limiter *l)
{
	tr_ratelimit *rl = l->rl;

	while (l->n > 0) {
		struct waiter *h = &l->q[l->head];
		uint64_t now = tr__clock_ns();

		pthread_mutex_lock(&rl->mu);
		refill(rl, now);
		uint64_t need = wait_ns(rl, h->tokens);
		if (need == 0) {
			rl->credit -= (uint64_t)h->tokens * UNITS_PER_TOKEN;
			rl->waiting--;
			cap_credit(rl);
		}
		pthread_mutex_unlock(&rl->mu);
		if (need > 0) {
			tick_arm(cx, l, need);
			return;
		}
		struct waiter w = queue_pop(l);
		reply(cx, l, w.to, TR_MSG_RATELIMIT_GRANT, w.tag, TR_OK,
		      w.tokens, (now - w.since_ns) / NS_PER_MS);
	}
	l->tick_armed = false;
}

static void
on_request(tr_ctx *cx, struct limiter *l, tr_pid from, const struct request *q)
{
	tr_ratelimit *rl = l->rl;
	uint64_t now = tr__clock_ns();

	if (q->tokens == 0 || q->tokens > rl->burst) {
		/* acquire() refuses these; only a forged message gets here. */
		reply(cx, l, from, TR_MSG_RATELIMIT_REJECT, q->tag, TR_EINVAL,
		      q->tokens, 0);
		return;
	}
	pthread_mutex_lock(&rl->mu);
	refill(rl, now);
	uint64_t need = wait_ns(rl, l->queued + q->tokens);
	bool grant = l->n == 0 && need == 0;
	bool fits = q->max_wait_ms < 0 ||
		    (uint64_t)q->max_wait_ms >= UINT64_MAX / NS_PER_MS ||
		    need <= (uint64_t)q->max_wait_ms * NS_PER_MS;
	bool room = rl->max_queue == 0 || l->n < rl->max_queue;
	if (grant) {
		rl->credit -= (uint64_t)q->tokens * UNITS_PER_TOKEN;
	} else if (fits && room) {
		rl->waiting++;
	}
	pthread_mutex_unlock(&rl->mu);

	if (grant) {
		reply(cx, l, from, TR_MSG_RATELIMIT_GRANT, q->tag, TR_OK,
		      q->tokens, 0);
		return;
	}
	uint64_t need_ms = need == UINT64_MAX ? UINT64_MAX : ns_to_ms_up(need);
	if (!fits || !room) {
		reply(cx, l, from, TR_MSG_RATELIMIT_REJECT, q->tag,
		      TR_EREJECTED, q->tokens, need_ms);
		return;
	}
	struct waiter w = {
		.to = from,
		.tag = q->tag,
		.since_ns = now,
		.tokens = q->tokens,
	};
	if (!queue_push(l, &w)) {
		pthread_mutex_lock(&rl->mu);
		rl->waiting--;
		cap_credit(rl);
		pthread_mutex_unlock(&rl->mu);
		reply(cx, l, from, TR_MSG_RATELIMIT_REJECT, q->tag,
		      TR_EREJECTED, q->tokens, need_ms);
		return;
	}
	if (l->n == 1) {
		/* A new head; otherwise the head's timer is already armed. */
		tick_arm(cx, l, need);
	}
}

static int
limiter_init(tr_ctx *cx, void *state, void *arg)
{
	struct limiter *l = state;

	(void)cx;
	l->rl = arg;
	tr__resend_init(&l->resend, MSG_RL_RETRY, RETRY_MS, RETRY_MS);
	return TR_OK;
}

static void
limiter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct limiter *l = state;

	switch (m->type) {
	case MSG_RL_REQUEST: {
		struct request q;

		if (m->size != sizeof(q) || tr_pid_is_none(m->from)) {
			return; /* nobody to answer */
		}
		memcpy(&q, m->data, sizeof(q));
		on_request(cx, l, m->from, &q);
		break;
	}
	case MSG_RL_TICK: {
		uint64_t seq;

		if (!tr_pid_eq(m->from, tr_self(cx)) ||
		    m->size != sizeof(seq)) {
			return;
		}
		memcpy(&seq, m->data, sizeof(seq));
		if (l->tick_armed && seq == l->tick_seq) {
			serve(cx, l);
		}
		break;
	}
	case MSG_RL_RETRY:
		if (tr__resend_fired(cx, &l->resend, m)) {
			retry_run(cx, l);
		}
		break;
	default:
		break;
	}
}

static void
limiter_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct limiter *l = state;
	tr_ratelimit *rl = l->rl;

	(void)reason;
	pthread_mutex_lock(&rl->mu);
	rl->closed = true;
	rl->waiting = 0;
	pthread_mutex_unlock(&rl->mu);
	/* Replies refused earlier go first, in their order; one last try. */
	for (size_t i = 0; i < l->retry_n; i++) {
		struct pending *p = &l->retry[i];
		(void)tr_send(cx, p->to, p->type, &p->reply, sizeof(p->reply));
	}
	while (l->n > 0) {
		struct waiter w = queue_pop(l);
		tr_ratelimit_reply r = {
			.tag = w.tag,
			.status = TR_ECLOSED,
			.tokens = w.tokens,
		};
		(void)tr_send(cx, w.to, TR_MSG_RATELIMIT_REJECT, &r, sizeof(r));
	}
	free(l->retry);
	free(l->q);
	handle_unref(rl);
}

static const tr_actor_def limiter_def = {
	.size = sizeof(tr_actor_def),
	.name = "ratelimit",
	.state_size = sizeof(struct limiter),
	.init = limiter_init,
	.teardown = limiter_teardown,
	.handle = limiter_handle,
};

/* ---- public calls --------------------------------------------------- */

tr_err
tr_ratelimit_create(tr_runtime *rt, const tr_ratelimit_config *cfg,
		    tr_ratelimit **out)
{
	tr_ratelimit *rl;
	tr_err err;

	if (rt == NULL || cfg == NULL || out == NULL ||
	    cfg->size < sizeof(*cfg) || cfg->rate == 0 || cfg->burst == 0) {
		return TR_EINVAL;
	}
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL) {
		return TR_ENOMEM;
	}
	if (pthread_mutex_init(&rl->mu, NULL) != 0) {
		free(rl);
		return TR_ENOMEM;
	}
	rl->rt = rt;
	rl->rate = cfg->rate;
	rl->burst = cfg->burst;
	rl->max_wait_ms = cfg->max_wait_ms;
	rl->max_queue = cfg->max_queue;
	rl->credit = (uint64_t)cfg->burst * UNITS_PER_TOKEN;
	rl->last_ns = tr__clock_ns();
	atomic_init(&rl->refs, 2);
	/* On success init and teardown will run: the actor's reference is
	 * dropped in teardown. */
	err = tr_spawn(tr_runtime_ctx(rt), &limiter_def, rl, &rl->pid);
	if (err < 0) {
		pthread_mutex_destroy(&rl->mu);
		free(rl);
		return err;
	}
	*out = rl;
	return TR_OK;
}

void
tr_ratelimit_destroy(tr_ratelimit *rl)
{
	if (rl == NULL) {
		return;
	}
	pthread_mutex_lock(&rl->mu);
	bool closed = rl->closed;
	pthread_mutex_unlock(&rl->mu);
	if (!closed) {
		/* Its teardown answers the waiters and drops its reference. */
		(void)tr_stop(tr_runtime_ctx(rl->rt), rl->pid, TR_EXIT_NORMAL);
	}
	handle_unref(rl);
}

tr_pid
tr_ratelimit_pid(const tr_ratelimit *rl)
{
	return rl != NULL ? rl->pid : TR_PID_NONE;
}

/* Checks shared by the acquire calls; fills the request. */
static tr_err
request_make(tr_ratelimit *rl, uint32_t tokens, uint64_t tag,
	     int64_t max_wait_ms, struct request *q)
{
	if (rl == NULL || tokens == 0 || tokens > rl->burst) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&rl->mu);
	bool closed = rl->closed;
	pthread_mutex_unlock(&rl->mu);
	if (closed) {
		return TR_ECLOSED;
	}
	memset(q, 0, sizeof(*q));
	q->tag = tag;
	q->tokens = tokens;
	/* The default is resolved here, so that a negative value in the
	 * message always means "no limit". */
	q->max_wait_ms = max_wait_ms < 0 ? rl->max_wait_ms : max_wait_ms;
	return TR_OK;
}

tr_err
tr_ratelimit_acquire(tr_ctx *cx, tr_ratelimit *rl, uint32_t tokens,
		     uint64_t tag, int64_t max_wait_ms)
{
	struct request q;

	/* The grant goes to the context's pid: the runtime's context has
	 * none to send it to. */
	if (cx == NULL || tr_pid_is_none(tr_self(cx))) {
		return TR_EINVAL;
	}
	tr_err err = request_make(rl, tokens, tag, max_wait_ms, &q);
	if (err < 0) {
		return err;
	}
	return tr_send(cx, rl->pid, MSG_RL_REQUEST, &q, sizeof(q));
}

tr_err
tr_ratelimit_try(tr_ratelimit *rl, uint32_t tokens)
{
	tr_err err = TR_EREJECTED;

	if (rl == NULL || tokens == 0 || tokens > rl->burst) {
		return TR_EINVAL;
	}
	uint64_t now = tr__clock_ns();
	pthread_mutex_lock(&rl->mu);
	if (rl->closed) {
		err = TR_ECLOSED;
	} else if (rl->waiting == 0) {
		refill(rl, now);
		uint64_t need = (uint64_t)tokens * UNITS_PER_TOKEN;
		if (rl->credit >= need) {
			rl->credit -= need;
			err = TR_OK;
		}
	}
	pthread_mutex_unlock(&rl->mu);
	return err;
}
