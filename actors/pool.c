/*
 * Pool (<troupe/actors/pool.h>): a router actor over supervised workers,
 * written on the public API only.
 *
 * Actors. A pool is one actor. When it takes its start (MSG_START, the
 * first message, see boot.h) it starts a one_for_one supervisor linked
 * to itself (tr_sup_start() with is_linked) with no children, and then
 * grows to its size as a resize would: one permanent child per slot, with
 * the child id "w<num>", started by START_CHILD requests, which the
 * supervisor acts on in order after its own start. The pool is the
 * supervisor's observer: TR_SUP_EV_STARTED and TR_SUP_EV_RESTARTED give
 * a slot its current pid, TR_SUP_EV_EXITED takes it away. A
 * scatter-gather runs in a collector actor that the caller starts (so its
 * one result does not depend on the pool staying alive); the pool only
 * picks the workers, answering the collector's request with their pids,
 * and the collector sends them the request itself.
 *
 * Slots. Slot numbers only grow and the slot array is kept sorted by
 * number; a shrink removes the highest ones. A key belongs to a slot by
 * its place in that array (jump consistent hashing, see hash_owner()),
 * so a restarted worker keeps its keys and a resize moves only the keys
 * of the slots it adds or removes (about 1/N of them).
 *
 * Sending for the client. The pool hands each message on with
 * tr_forward() from its own turn: the worker sees the client as the
 * sender, and the runtime keeps the order of one thread's sends, so
 * messages the pool passes on to one worker arrive in the order the pool
 * took them.
 *
 * Waiting messages. A message for a slot whose worker is not running
 * waits in the pool's list, marked with the slot's number (at most
 * max_pending), and is sent, in order, when the slot gets its pid. Before
 * sending to a pid the pool checks tr_actor_alive(): a worker known to be
 * dead is treated as not running at once, without waiting for the
 * supervisor's event, which keeps the messages lost to a crash to those
 * already in its mailbox.
 *
 * Control. The start, resizes and stops are acted on one at a time, in
 * arrival order: one is in progress, and those that come meanwhile wait
 * in the core's stash (tr_stash()) until it is done; stats and worker
 * lists are answered at once. The start is a grow from no slots whose
 * answer has op 0 and which stops the pool when it fails. A resize sends
 * START_CHILD (grow) or TERMINATE_CHILD + DELETE_CHILD (shrink) requests
 * to the supervisor and answers when every reply is in. A stop answers
 * what is still stashed once the supervisor is gone; a pool stopped from
 * outside leaves it to the runtime, which fails those requests.
 *
 * Worker definitions. Workers are spawned from a copy of the user's
 * definition with a mailbox bound (the user's, or UINT32_MAX) so that
 * tr_mailbox_len() can measure them. An actor's definition must outlive
 * it and a worker may outlive its pool (a runtime stop ends actors in any
 * order), so the copies live in a process-wide list that only grows, one
 * per distinct definition, as the supervisor does for its own copies.
 *
 * Threads: every function that takes a struct pool or struct collector
 * runs in that actor's turns; the public functions only validate, copy
 * and send. The definition list is the one piece of shared memory
 * (lock-free, push only).
 */
#include <troupe/actors/pool.h>

#include "boot.h"
#include "defs.h"
#include "hash.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/actors/supervisor.h>

/* The pool's own messages (the header keeps 0x80 and up private). */
#define MSG_ROUTE    (TR_MSG_POOL_BASE + 0x80u) /* struct route_hdr + bytes */
#define MSG_GATHER   (TR_MSG_POOL_BASE + 0x82u) /* uint32_t count; reply pids */
#define MSG_GTIMEOUT (TR_MSG_POOL_BASE + 0x84u) /* collector's timeout */
#define MSG_GBOOT    (TR_MSG_POOL_BASE + 0x85u) /* pointer to gather_arg */
#define MSG_START    (TR_MSG_POOL_BASE + 0x86u) /* pointer to tr_pool_config */

/* Defaults of struct tr_pool_config (documented there). */
#define DEFAULT_INTENSITY   10u
#define DEFAULT_PERIOD_MS   10000u
#define DEFAULT_SHUTDOWN_MS 5000u
#define DEFAULT_MAX_PENDING 10000u

/* Child ids are "w" and a decimal number below TR_POOL_MAX_WORKERS * k. */
#define ID_LEN 16

/* ------------------------------------------------------------------ */
/* Wire formats (read in place: copied payloads are 16-aligned)        */

struct route_hdr {
	uint64_t key;
	uint32_t how;
	uint32_t type;
};

/*
 * A scatter-gather: what a collector starts with (its start message,
 * boot.h). The caller's request is copied whole, its bytes after it
 * (req.data still points at the caller's: never read).
 */
struct gather_arg {
	tr_pid pool;
	tr_pool_gather_req req;
	unsigned char data[];
};

/* ------------------------------------------------------------------ */
/* Measurable copies of worker definitions                             */

static _Atomic(struct tr__def *) wdefs;

static void
derive_measurable(const tr_actor_def *user, tr_actor_def *out)
{
	*out = *user;
	if (out->mailbox_bound == 0) {
		/* A bound that never refuses, only so that the queue length
		 * is counted (see tr_mailbox_len()). */
		out->mailbox_bound = UINT32_MAX;
	}
}

/* ------------------------------------------------------------------ */
/* The pool actor                                                      */

/* A message waiting for a slot's worker: the client's, as forwarded. */
struct pend {
	struct pend *next;
	tr_msg m; /* m.data points at data */
	uint64_t key;
	uint32_t how;
	uint32_t num; /* its slot's */
	unsigned char data[];
};

struct slot {
	uint32_t num;
	char id[ID_LEN]; /* its child id, "w<num>" */
	tr_pid pid;      /* TR_PID_NONE while its worker does not run */
	tr_ref starting; /* the supervisor's start of its worker, if asked */
};

struct pool {
	tr_pid sup; /* TR_PID_NONE before it started and once it is gone */
	const tr_actor_def *wdef;
	tr_pool_config
		cfg; /* the defaults filled in; def NULL until the start */
	bool is_stopping;
	int32_t stop_reason;
	/* Slots, sorted by number. */
	struct slot *slots;
	uint32_t n;
	uint32_t next_num;
	uint32_t rr;
	/* Messages waiting for their slot's worker, in arrival order. */
	struct pend *pending;
	struct pend **pending_end;
	/* Control: the request in progress (op 0: the start) and the
	 * supervisor replies it awaits; those that come meanwhile are
	 * stashed. */
	bool busy;
	tr_msg cur; /* its header, for tr_reply() */
	uint32_t cur_op;
	int32_t cur_status;
	uint32_t waiting;
	uint32_t nstashed;
	/* Counters of struct tr_pool_reply. */
	uint64_t routed[TR_POOL_CONSISTENT_HASH + 1]; /* by strategy */
	tr_pool_reply st; /* delivered, dropped, gathers, restarts, pending */
};

/*
 * The slot that owns @key: jump consistent hashing (Lamping and Veach)
 * over the slot array, which keeps no table and takes O(log N) steps. A
 * restarted worker keeps its slot, and so its keys; a grow moves to each
 * new slot its share of the keys (about 1/N of them) and no other key,
 * and a shrink, which removes the last slots, moves only theirs.
 */
static uint32_t
hash_owner(const struct pool *p, uint64_t key)
{
	/* Keys are often small consecutive numbers: mix them first. */
	uint64_t x = tr__hash_u64(key);
	int64_t b = 0, j = 0;

	while (j < (int64_t)p->n) {
		b = j;
		x = x * 2862933555777941757ull + 1;
		j = (int64_t)((double)(b + 1) *
			      ((double)(1ll << 31) / (double)((x >> 33) + 1)));
	}
	return (uint32_t)b;
}

/*
 * Is the slot's worker running? A pid the runtime no longer knows is
 * forgotten at once: the supervisor's EXITED event for it will follow.
 */
static bool
slot_live(tr_ctx *cx, struct slot *s)
{
	if (!tr_pid_is_none(s->pid) &&
	    !tr_actor_alive(tr_ctx_runtime(cx), s->pid)) {
		s->pid = TR_PID_NONE;
	}
	return !tr_pid_is_none(s->pid);
}

/*
 * Sends the client's message @m to @s's worker, forwarded: the worker
 * sees the client as the sender, and for a request the worker's
 * tr_reply() answers the requester directly.
 */
static tr_err
deliver(tr_ctx *cx, struct pool *p, struct slot *s, const tr_msg *m)
{
	tr_err err = tr_forward(cx, s->pid, m);

	if (err == TR_OK) {
		p->st.delivered++;
	}
	return err;
}

/* Keeps a message for @s until its worker runs. */
static void
hold(struct pool *p, struct slot *s, uint32_t how, uint64_t key,
     const tr_msg *m)
{
	struct pend *e = NULL;

	/* A message's size is below the runtime's maximum: no overflow. */
	if (p->st.pending < p->cfg.max_pending) {
		e = malloc(sizeof(*e) + m->size);
	}
	if (e == NULL) {
		p->st.dropped++;
		return;
	}
	e->next = NULL;
	e->m = *m;
	e->m.data = e->data;
	e->key = key;
	e->how = how;
	e->num = s->num;
	if (m->size > 0) {
		memcpy(e->data, m->data, m->size);
	}
	*p->pending_end = e;
	p->pending_end = &e->next;
	p->st.pending++;
}

/* To @s's worker, or kept until it runs; a refusal drops it. */
static void
send_or_hold(tr_ctx *cx, struct pool *p, struct slot *s, uint32_t how,
	     uint64_t key, const tr_msg *m)
{
	if (!slot_live(cx, s)) {
		hold(p, s, how, key, m);
	} else if (deliver(cx, p, s, m) < 0) {
		p->st.dropped++;
	}
}

/*
 * One message to one worker by round robin or least loaded (the running
 * worker with the shortest queue, ties in round-robin order); held for
 * the next slot in turn when no worker runs.
 */
static void
route_any(tr_ctx *cx, struct pool *p, uint32_t how, const tr_msg *m)
{
	uint32_t best = UINT32_MAX, best_len = UINT32_MAX;
	bool any_live = false;

	for (uint32_t i = 0; i < p->n; i++) {
		uint32_t idx = (p->rr + i) % p->n;
		struct slot *s = &p->slots[idx];
		uint32_t q = 0;
		if (!slot_live(cx, s)) {
			continue;
		}
		if (how == TR_POOL_LEAST_LOADED &&
		    tr_mailbox_len(tr_ctx_runtime(cx), s->pid, &q) < 0) {
			continue; /* stopped between the two calls */
		}
		any_live = true;
		if (how == TR_POOL_LEAST_LOADED) {
			if (q < best_len) {
				best = idx;
				best_len = q;
			}
		} else if (deliver(cx, p, s, m) == TR_OK) {
			p->rr = idx + 1;
			return;
		}
		/* Round robin: on TR_EFULL or TR_ENOMEM the next worker may
		 * take it. */
	}
	/* The emptiest queue refusing (TR_EFULL) means all of them are full:
	 * drop, as a bounded mailbox would. */
	if (best != UINT32_MAX && deliver(cx, p, &p->slots[best], m) == TR_OK) {
		p->rr = best + 1;
	} else if (any_live) {
		p->st.dropped++;
	} else {
		/* No worker runs: wait for the next slot in turn. */
		uint32_t idx = p->rr % p->n;
		p->rr = idx + 1;
		hold(p, &p->slots[idx], how, 0, m);
	}
}

static void
route(tr_ctx *cx, struct pool *p, uint32_t how, uint64_t key, const tr_msg *m)
{
	if (p->n == 0) {
		p->st.dropped++;
		return;
	}
	if ((m->flags & TR_MSG_F_REQUEST) && how == TR_POOL_BROADCAST) {
		/* A request has one answer: one worker gets it. */
		how = TR_POOL_ROUND_ROBIN;
	}
	if (how == TR_POOL_CONSISTENT_HASH) {
		/* The key belongs to its slot: wait for its worker if need
		 * be. */
		struct slot *s = &p->slots[hash_owner(p, key)];
		send_or_hold(cx, p, s, how, key, m);
	} else if (how == TR_POOL_BROADCAST) {
		for (uint32_t i = 0; i < p->n; i++) {
			send_or_hold(cx, p, &p->slots[i], how, 0, m);
		}
	} else {
		route_any(cx, p, how, m);
	}
}

/*
 * Hands on the messages waiting for the slots numbered @lo to @hi: to
 * @to's worker, which now runs, or, with @to NULL, routed again, their
 * slots being gone (a broadcast copy was for that worker only). While the
 * pool stops they are dropped.
 */
static void
settle(tr_ctx *cx, struct pool *p, uint32_t lo, uint32_t hi, struct slot *to)
{
	/* Routing one again may add it at the end, for a slot outside the
	 * range: the walk passes it by. */
	for (struct pend **pp = &p->pending; *pp != NULL;) {
		struct pend *e = *pp;
		if (e->num < lo || e->num > hi) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (p->pending_end == &e->next) {
			p->pending_end = pp;
		}
		p->st.pending--;
		if (p->is_stopping ||
		    (to == NULL && e->how == TR_POOL_BROADCAST)) {
			p->st.dropped++;
		} else if (to == NULL) {
			route(cx, p, e->how, e->key, &e->m);
		} else if (deliver(cx, p, to, &e->m) < 0) {
			p->st.dropped++;
		}
		free(e);
	}
}

/* Answers the control request @req (a request, or a plain message). */
static void
reply(tr_ctx *cx, struct pool *p, const tr_msg *req, uint32_t op,
      int32_t status)
{
	tr_pool_reply rp = p->st;

	rp.op = op;
	rp.status = status;
	rp.workers = p->n;
	rp.round_robin = p->routed[TR_POOL_ROUND_ROBIN];
	rp.least_loaded = p->routed[TR_POOL_LEAST_LOADED];
	rp.broadcast = p->routed[TR_POOL_BROADCAST];
	rp.consistent_hash = p->routed[TR_POOL_CONSISTENT_HASH];

	for (uint32_t i = 0; i < p->n; i++) {
		rp.live += !tr_pid_is_none(p->slots[i].pid);
	}
	if (op == TR_POOL_OP_WORKERS && status == TR_OK) {
		size_t size =
			sizeof(tr_pool_workers) + (size_t)p->n * sizeof(tr_pid);
		tr_pool_workers *w = malloc(size);
		if (w != NULL) {
			w->reply = rp;
			w->reply.count = p->n;
			for (uint32_t i = 0; i < p->n; i++) {
				w->pids[i] = p->slots[i].pid;
			}
			(void)tr_reply_ptr(cx, req, TR_MSG_POOL_WORKERS, w,
					   size, free);
			return;
		}
		/* The same type, without the list: one answer either way. */
		rp.status = TR_ENOMEM;
	}
	/* A plain message from nobody (tr_runtime_ctx()) gets none. */
	(void)tr_reply(cx, req, TR_MSG_POOL_REPLY, &rp, sizeof(rp));
}

/* The pool stops: the control request in progress, if any, is answered
 * (a stop is done, the rest are not). */
static void
ctl_close(tr_ctx *cx, struct pool *p)
{
	if (p->busy) {
		p->busy = false;
		reply(cx, p, &p->cur, p->cur_op,
		      p->cur_op == TR_POOL_OP_STOP ? TR_OK : TR_ECLOSED);
	}
}

/*
 * Stops the workers through the supervisor (once; @reason is the pool's
 * exit reason). What waits for a worker is dropped, not routed. The
 * supervisor's exit ends the stop (stop_end()).
 */
static void
stop_begin(tr_ctx *cx, struct pool *p, int32_t reason)
{
	if (p->is_stopping) {
		return;
	}
	p->is_stopping = true;
	p->stop_reason = reason;
	settle(cx, p, 0, UINT32_MAX, NULL);
	if (!tr_pid_is_none(p->sup)) {
		/* An exit signal from its parent is the supervisor's orderly
		 * shutdown: it stops the workers, then itself, and the link
		 * brings its exit back to us. (Needed from our teardown too:
		 * a normal stop does not travel along the link.) */
		(void)tr_exit(cx, p->sup, TR_EXIT_SHUTDOWN);
	}
}

/* The supervisor is gone: answer the control request in progress and
 * those stashed behind it (a stop is done, the rest are not), and stop. */
static void
stop_end(tr_ctx *cx, struct pool *p)
{
	ctl_close(cx, p);
	if (p->nstashed == 0) {
		tr_stop_self(cx, p->stop_reason);
	} else {
		/* They come back to on_ctl() before anything else, which
		 * answers them and stops the pool after the last. */
		(void)tr_unstash_all(cx);
	}
}

/* The control request in progress got its last reply: answer it, then
 * take those that came meanwhile, in arrival order. A start that failed
 * stops the pool instead. */
static void
ctl_next(tr_ctx *cx, struct pool *p)
{
	p->busy = false;
	reply(cx, p, &p->cur, p->cur_op, p->cur_status);
	if (p->cur_op == 0 && p->cur_status != TR_OK) {
		stop_begin(cx, p, TR_SUP_EXIT_START_FAILED);
		if (tr_pid_is_none(p->sup)) {
			stop_end(cx, p); /* the supervisor never started */
		}
		return;
	}
	(void)tr_unstash_all(cx);
	p->nstashed = 0;
}

/* Removes @count slots from @at on (a shrink, or workers that did not
 * start): out of routing, their waiting messages routed again. */
static void
remove_slots(tr_ctx *cx, struct pool *p, uint32_t at, uint32_t count)
{
	/* Slots are sorted by number: no other has one in between. */
	uint32_t lo = p->slots[at].num, hi = p->slots[at + count - 1].num;

	memmove(&p->slots[at], &p->slots[at + count],
		(p->n - at - count) * sizeof(p->slots[0]));
	p->n -= count;
	settle(cx, p, lo, hi, NULL);
}

/* One request to the supervisor for the control request in progress,
 * whose reply it then awaits; an error is its status. */
static tr_err
sup_ask(tr_ctx *cx, struct pool *p, tr_sup_op op, const char *id,
	const tr_sup_child_spec *spec, tr_ref *ref)
{
	tr_sup_request q = {
		.size = sizeof(q), .op = op, .spec = spec, .id = id
	};
	tr_err err = tr_sup_call(cx, p->sup, &q, 0, ref);

	if (err == TR_OK) {
		p->waiting++;
	} else if (p->cur_status == TR_OK) {
		p->cur_status = err;
	}
	return err;
}

static void
resize_grow(tr_ctx *cx, struct pool *p, uint32_t target)
{
	struct slot *s = realloc(p->slots, target * sizeof(*s));

	if (s == NULL) {
		p->cur_status = TR_ENOMEM;
		return;
	}
	p->slots = s;
	for (uint32_t i = p->n; i < target; i++) {
		s[i] = (struct slot){ .num = p->next_num++ };
		snprintf(s[i].id, sizeof(s[i].id), "w%u", s[i].num);
		p->n = i + 1;
		tr_sup_child_spec spec = {
			.size = sizeof(spec),
			.id = s[i].id,
			.def = p->wdef,
			.arg = p->cfg.arg,
			.restart = TR_SUP_PERMANENT,
			.type = TR_SUP_WORKER,
			.shutdown_ms = p->cfg.shutdown_ms,
		};
		if (sup_ask(cx, p, TR_SUP_OP_START_CHILD, NULL, &spec,
			    &s[i].starting) < 0) {
			/* It will not start: drop it (nothing can wait for it
			 * yet), and grow no further. */
			remove_slots(cx, p, i, 1);
			return;
		}
	}
}

static void
resize_shrink(tr_ctx *cx, struct pool *p, uint32_t target)
{
	for (uint32_t i = target; i < p->n; i++) {
		/* The supervisor acts on requests in order: the delete finds
		 * the child stopped. */
		const char *id = p->slots[i].id;
		tr_err err = sup_ask(cx, p, TR_SUP_OP_TERMINATE_CHILD, id, NULL,
				     NULL);
		if (err == TR_OK) {
			(void)sup_ask(cx, p, TR_SUP_OP_DELETE_CHILD, id, NULL,
				      NULL);
		}
	}
	remove_slots(cx, p, target, p->n - target);
}

/* Acts on control request @req: a stop, or a resize to @workers (op 0:
 * the start's grow; @status is an error when the start failed already,
 * and nothing grows). */
static void
ctl_begin(tr_ctx *cx, struct pool *p, const tr_msg *req, uint32_t op,
	  uint32_t workers, int32_t status)
{
	p->busy = true;
	p->cur = *req;
	p->cur_op = op;
	p->cur_status = status;
	if (op == TR_POOL_OP_STOP) {
		stop_begin(cx, p, TR_EXIT_NORMAL);
		return;
	}
	if (workers > p->n) {
		resize_grow(cx, p, workers);
	} else if (workers < p->n) {
		resize_shrink(cx, p, workers);
	}
	if (p->waiting == 0) {
		ctl_next(cx, p);
	}
}

/*
 * A client's message: a MSG_ROUTE (tr_pool_route(): a struct route_hdr,
 * then the client's type's bytes), or a message of an application type
 * sent to the pool itself (tr_send, tr_request, a registry name), routed
 * with the pool's strategy as an Akka router takes a plain tell. A request
 * goes to one worker, whose reply answers the requester. Another module's
 * message, or a pointer the pool cannot pass on, is not routed, and not
 * silently.
 */
static void
on_client(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const struct route_hdr *h = m->data;
	bool is_route = m->type == MSG_ROUTE && m->size >= sizeof(*h);
	uint32_t how = is_route ? h->how : TR_POOL_DEFAULT;
	bool is_bad = (m->flags & TR_MSG_F_PTR) ||
		      how > TR_POOL_CONSISTENT_HASH ||
		      (!is_route && m->type >= TR_MSG_ACTORS_BASE);

	if (!is_bad) {
		how = how == TR_POOL_DEFAULT ? p->cfg.strategy : how;
		p->routed[how]++;
	}
	if (is_bad || p->is_stopping) {
		/* A dead letter; a request fails at once. */
		p->st.dropped++;
		(void)tr_unhandled(cx, m);
		return;
	}
	tr_msg fw = *m;
	if (is_route) {
		fw = (tr_msg){ .type = h->type,
			       .from = m->from,
			       .data = h + 1,
			       .size = m->size - sizeof(*h) };
	}
	route(cx, p, how, is_route ? h->key : 0, &fw);
}

static void
on_ctl(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const tr_pool_request *q = TR_MSG_AS(m, tr_pool_request);
	uint32_t op = q != NULL ? q->op : 0;

	if (op == TR_POOL_OP_STATS || op == TR_POOL_OP_WORKERS) {
		reply(cx, p, m, op, TR_OK);
		return;
	}
	if ((op != TR_POOL_OP_RESIZE && op != TR_POOL_OP_STOP) ||
	    (op == TR_POOL_OP_RESIZE &&
	     (q->workers == 0 || q->workers > TR_POOL_MAX_WORKERS))) {
		reply(cx, p, m, op, TR_EINVAL);
		return;
	}
	if (tr_pid_is_none(p->sup) ||
	    (p->is_stopping && op != TR_POOL_OP_STOP)) {
		/* Too late to act on; a stop is done once the supervisor is
		 * gone. After that only those stashed come here, put back by
		 * stop_end(), and the pool stops after the last. */
		reply(cx, p, m, op, op == TR_POOL_OP_STOP ? TR_OK : TR_ECLOSED);
		if (tr_pid_is_none(p->sup) && --p->nstashed == 0) {
			tr_stop_self(cx, p->stop_reason);
		}
		return;
	}
	if (p->busy || p->is_stopping) {
		/* One at a time, in arrival order: it comes back when the one
		 * in progress is done (a stop: when the pool is). */
		tr_err err = tr_stash(cx, m);
		if (err < 0) {
			reply(cx, p, m, op, err);
		} else {
			p->nstashed++;
		}
		return;
	}
	ctl_begin(cx, p, m, op, q->workers, TR_OK);
}

/*
 * Picks the workers of a scatter-gather: the next @count running workers
 * in round-robin order (all when 0). The collector sends them the
 * request itself; none when the pool stops or no worker runs, and the
 * collector then ends at once.
 */
static void
on_gather(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const uint32_t *count = TR_MSG_AS(m, uint32_t);
	tr_pid pids[TR_POOL_MAX_WORKERS];
	uint32_t n = 0;

	if (count == NULL) {
		(void)tr_unhandled(cx, m);
		return;
	}
	p->st.gathers++;
	for (uint32_t i = 0; !p->is_stopping && i < p->n; i++) {
		uint32_t idx = (p->rr + i) % p->n;
		if (slot_live(cx, &p->slots[idx])) {
			pids[n++] = p->slots[idx].pid;
		}
		if (n == *count) {
			p->rr = idx + 1;
			break;
		}
	}
	/* Without memory for the reply the collector ends with its timeout. */
	(void)tr_reply(cx, m, MSG_GATHER, pids, n * sizeof(tr_pid));
}

static void
on_event(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const tr_sup_event *ev = TR_MSG_AS(m, tr_sup_event);
	struct slot *s = NULL;

	if (ev == NULL || !tr_pid_eq(m->from, p->sup)) {
		(void)tr_unhandled(cx, m); /* not from our supervisor */
		return;
	}
	for (uint32_t i = 0; i < p->n && s == NULL; i++) {
		if (strncmp(p->slots[i].id, ev->id, TR_SUP_ID_MAX) == 0) {
			s = &p->slots[i];
		}
	}
	if (s == NULL) {
		return; /* a slot removed by a shrink, or a shutdown */
	}
	switch (ev->kind) {
	case TR_SUP_EV_RESTARTED:
		p->st.restarts++;
		/* fall through */
	case TR_SUP_EV_STARTED:
		s->pid = ev->pid;
		settle(cx, p, s->num, s->num, s);
		break;
	case TR_SUP_EV_EXITED:
		if (tr_pid_eq(s->pid, ev->pid)) {
			s->pid = TR_PID_NONE;
		}
		break;
	default:
		break;
	}
}

static void
on_sup_reply(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const tr_sup_reply *rp = TR_MSG_AS(m, tr_sup_reply);

	if (!tr_pid_eq(m->from, p->sup) || rp == NULL) {
		(void)tr_unhandled(cx, m);
		return;
	}
	if (rp->op == 0) {
		/* The supervisor's start: had it failed, it stops, and its
		 * exit signal tells us. */
		return;
	}
	/* A START_CHILD, TERMINATE_CHILD or DELETE_CHILD of a resize. */
	for (uint32_t i = 0; rp->status != TR_OK && i < p->n; i++) {
		if (p->slots[i].starting.v == m->ref.v) {
			/* Its worker did not start, and the supervisor kept
			 * no spec for it: drop the slot. */
			remove_slots(cx, p, i, 1);
			break;
		}
	}
	if (rp->status != TR_OK && p->cur_status == TR_OK) {
		p->cur_status = rp->status;
	}
	if (p->waiting > 0 && --p->waiting == 0) {
		ctl_next(cx, p);
	}
}

static void
on_exit_signal(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	const tr_exit_signal *sig = TR_MSG_AS(m, tr_exit_signal);

	if (sig == NULL) {
		return;
	}
	if (tr_pid_eq(sig->from, p->sup)) {
		/* The supervisor is gone, and the workers with it: at the
		 * end of our stop, or because it gave up (its restart
		 * intensity), and then so does the pool, with its reason. */
		p->sup = TR_PID_NONE;
		for (uint32_t i = 0; i < p->n; i++) {
			p->slots[i].pid = TR_PID_NONE;
		}
		stop_begin(cx, p, sig->reason);
		stop_end(cx, p);
	} else if (sig->reason != TR_EXIT_NORMAL) {
		/* The parent (or another linked actor) failed: stop in
		 * order. A normal exit is what a link that does not trap
		 * would ignore too. */
		stop_begin(cx, p, sig->reason);
	}
}

/* @v, or @def when it is 0 (the defaults of struct tr_pool_config). */
static uint64_t
or_default(uint64_t v, uint64_t def)
{
	return v != 0 ? v : def;
}

/* The start: the supervisor, then a grow to the configured size. */
static void
on_start(tr_ctx *cx, struct pool *p, const tr_msg *m)
{
	tr_msg start;
	tr_pool_config *cfg = tr__boot_take(cx, m, sizeof(*cfg), &start);

	p->cfg = *cfg;
	free(cfg);
	cfg = &p->cfg;
	cfg->strategy = or_default(cfg->strategy, TR_POOL_ROUND_ROBIN);
	cfg->shutdown_ms = or_default(cfg->shutdown_ms, DEFAULT_SHUTDOWN_MS);
	cfg->max_pending = or_default(cfg->max_pending, DEFAULT_MAX_PENDING);
	tr_sup_flags flags = {
		.size = sizeof(flags),
		.strategy = TR_SUP_ONE_FOR_ONE,
		.intensity = or_default(cfg->intensity, DEFAULT_INTENSITY),
		.period_ms = or_default(cfg->period_ms, DEFAULT_PERIOD_MS),
		.observer = tr_self(cx),
		.is_linked = true,
	};
	const struct tr__def *wd =
		tr__def_get(&wdefs, cfg->def, derive_measurable);
	tr_err err = TR_ENOMEM;
	if (wd != NULL) {
		p->wdef = &wd->def;
		/* Its start reply comes to on_sup_reply(), before the
		 * replies to the grow's requests. */
		err = tr_sup_start(cx, &flags, NULL, 0, &p->sup, NULL);
	}
	/* A start that failed (the supervisor's pid is none) grows nothing,
	 * and ctl_next() stops the pool. */
	ctl_begin(cx, p, &start, 0, err < 0 ? 0 : cfg->workers, err);
}

static void
pool_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct pool *p = state;

	if (p->cfg.def == NULL) {
		on_start(cx, p, m); /* the first message (see boot.h) */
		return;
	}
	switch (m->type) {
	case TR_MSG_POOL_CONTROL:
		on_ctl(cx, p, m);
		break;
	case MSG_GATHER:
		on_gather(cx, p, m);
		break;
	case TR_MSG_SUP_EVENT:
		on_event(cx, p, m);
		break;
	case TR_MSG_SUP_REPLY:
		on_sup_reply(cx, p, m);
		break;
	case TR_MSG_EXIT:
		on_exit_signal(cx, p, m);
		break;
	case TR_MSG_REQUEST_FAILED:
	case MSG_START:
		/* A request to the supervisor that it did not take: its exit
		 * signal tells us. A second start is not one. */
		break;
	default:
		on_client(cx, p, m);
		break;
	}
}

static int
pool_init(tr_ctx *cx, void *state, void *arg)
{
	struct pool *p = state;

	(void)arg;
	p->pending_end = &p->pending;
	tr_trap_exit(cx, true);
	return TR_OK;
}

static void
pool_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct pool *p = state;

	/* Stopped from outside (tr_stop, the runtime): nobody may wait
	 * forever for an answer. Those stashed fail as the runtime drops
	 * them. */
	ctl_close(cx, p);
	stop_begin(cx, p, reason);
	free(p->slots);
}

static const tr_actor_def pool_def = {
	.size = sizeof(tr_actor_def),
	.name = "pool",
	.state_size = sizeof(struct pool),
	.init = pool_init,
	.teardown = pool_teardown,
	.handle = pool_handle,
};

/* ------------------------------------------------------------------ */
/* The scatter-gather collector                                        */

/*
 * The result is built in place as the replies come: the struct
 * tr_pool_gather_result, one entry per worker asked, then each reply's
 * bytes at a 16-aligned offset, in the order of the entries. Entries
 * [0, replied) are the replies in arrival order, [replied, asked) the
 * workers that have not answered yet.
 */
struct collector {
	tr_msg start; /* the caller's request, answered by the result */
	struct gather_arg *arg; /* what it started with */
	tr_ref pool_ref;   /* our request to the pool; zero until it is made */
	tr_timer_id timer; /* zero until armed */
	tr_pool_gather_result *res; /* once the pool said whom to ask */
	size_t len;                 /* its size */
};

static size_t
align16(size_t n)
{
	return (n + 15u) & ~(size_t)15u;
}

/* Where the bytes of the replies start in a result for @asked workers. */
static size_t
bytes_at(uint32_t asked)
{
	return align16(sizeof(tr_pool_gather_result) +
		       asked * sizeof(tr_pool_gather_entry));
}

/*
 * Answers the caller's request with the result and stops. A reply is not
 * held back by the caller's mailbox bound, so it is sent once; a caller
 * that stopped makes it a dead letter.
 */
static void
collector_finish(tr_ctx *cx, struct collector *c, int32_t status)
{
	tr_pool_gather_result *res = c->res;
	tr_err err = TR_ENOMEM;

	c->res = NULL;
	/* Harmless when it fired already or was never armed. */
	(void)tr_timer_cancel(cx, c->timer);
	if (res == NULL) {
		/* Nobody known to be asked: the counts only. */
		c->len = sizeof(*res);
		res = calloc(1, c->len);
	}
	if (res != NULL) {
		res->status = status;
		res->missing = res->asked - res->replied;
		unsigned char *at = (unsigned char *)res + bytes_at(res->asked);
		for (uint32_t i = 0; i < res->replied; i++) {
			tr_pool_gather_entry *e = &res->replies[i];
			e->data = e->size > 0 ? at : NULL;
			at += align16(e->size);
		}
		err = tr_reply_ptr(cx, &c->start, TR_MSG_POOL_GATHERED, res,
				   c->len, free);
	}
	/* Without a result, the caller's request fails when we stop: still
	 * one outcome. */
	tr_stop_self(cx, err == TR_OK ? TR_EXIT_NORMAL : TR_EXIT_ERROR);
}

/*
 * The start: arm the timeout and ask the pool which workers to ask. The
 * pool's answer, or its death, is the outcome of that request in the
 * core. The start is the first message, made by tr_pool_gather() before
 * anyone else knows our pid, so it is well formed.
 */
static void
on_gather_start(tr_ctx *cx, struct collector *c, const tr_msg *m)
{
	struct gather_arg *a = tr__boot_take(cx, m, m->size, &c->start);
	tr_err err = tr_send_after(cx, tr_self(cx), MSG_GTIMEOUT, NULL, 0,
				   a->req.timeout_ms, &c->timer);

	c->arg = a;
	if (err == TR_OK) {
		err = tr_request(cx, a->pool, MSG_GATHER, &a->req.count,
				 sizeof(a->req.count), 0, &c->pool_ref);
	}
	if (err < 0) {
		collector_finish(cx, c, err);
	}
}

/* The pool's answer: the workers to ask. The request goes from us, so
 * they answer us. */
static void
on_targets(tr_ctx *cx, struct collector *c, const tr_msg *m)
{
	/* At most TR_POOL_MAX_WORKERS, from the pool (its reply). */
	const tr_pid *pids = m->data;
	size_t n = m->size / sizeof(tr_pid);
	const struct gather_arg *a = c->arg;

	c->res = calloc(1, bytes_at((uint32_t)n));
	if (c->res == NULL) {
		collector_finish(cx, c, TR_ENOMEM);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (tr_send(cx, pids[i], a->req.type, a->data, a->req.len) ==
		    TR_OK) {
			c->res->replies[c->res->asked++].worker = pids[i];
		}
	}
	c->len = bytes_at(c->res->asked);
	if (c->res->asked == 0) {
		collector_finish(cx, c, TR_ENOENT);
	}
}

/* The first reply from each worker asked counts. */
static void
on_worker_reply(tr_ctx *cx, struct collector *c, const tr_msg *m)
{
	tr_pool_gather_result *res = c->res;
	uint32_t i = res->replied;

	while (i < res->asked && !tr_pid_eq(res->replies[i].worker, m->from)) {
		i++;
	}
	size_t size = m->data != NULL ? m->size : 0;
	if (i == res->asked || size > SIZE_MAX - 15u - c->len) {
		return; /* not asked, or answered already */
	}
	res = realloc(res, c->len + align16(size));
	if (res == NULL) {
		return; /* counted as missing */
	}
	if (size > 0) {
		memcpy((unsigned char *)res + c->len, m->data, size);
	}
	c->res = res;
	c->len += align16(size);
	/* Into arrival order: it takes the place of the first worker that
	 * has not answered. */
	res->replies[i] = res->replies[res->replied];
	res->replies[res->replied++] = (tr_pool_gather_entry){
		.worker = m->from, .type = m->type, .size = size
	};
	if (res->replied == res->asked) {
		collector_finish(cx, c, TR_OK);
	}
}

static void
collector_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct collector *c = state;

	/* The start is the first message (see on_gather_start()); once it
	 * is done it stops: nothing comes after that turn. */
	if (c->pool_ref.v == 0) {
		on_gather_start(cx, c, m);
		return;
	}
	if ((m->flags & TR_MSG_F_REPLY) && m->ref.v == c->pool_ref.v) {
		if (m->type == TR_MSG_REQUEST_FAILED) {
			/* The pool stopped before it answered. */
			collector_finish(cx, c, TR_ENOENT);
		} else {
			on_targets(cx, c, m);
		}
	} else if (m->type == MSG_GTIMEOUT && tr_pid_eq(m->from, tr_self(cx))) {
		collector_finish(cx, c, TR_ETIMEDOUT);
	} else if (m->type < TR_MSG_SYSTEM_BASE && c->res != NULL) {
		/* Only once the workers were asked. */
		on_worker_reply(cx, c, m);
	}
}

static void
collector_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct collector *c = state;

	(void)cx;
	(void)reason;
	free(c->res);
	free(c->arg);
}

static const tr_actor_def collector_def = {
	.size = sizeof(tr_actor_def),
	.name = "pool-gather",
	.state_size = sizeof(struct collector),
	.teardown = collector_teardown,
	.handle = collector_handle,
};

/* ------------------------------------------------------------------ */
/* Public functions                                                    */

tr_err
tr_pool_start(tr_ctx *cx, const tr_pool_config *cfg, tr_pid *out, tr_ref *ref)
{
	/* A hash needs a key: it cannot be the strategy of a plain send. */
	bool ok = cx != NULL && cfg != NULL && cfg->size >= sizeof(*cfg) &&
		  cfg->def != NULL && cfg->def->size >= sizeof(tr_actor_def) &&
		  cfg->def->handle != NULL && cfg->workers != 0 &&
		  cfg->workers <= TR_POOL_MAX_WORKERS &&
		  (unsigned)cfg->strategy <= TR_POOL_BROADCAST;

	return tr__boot_copy(cx, &pool_def, ok && cfg->is_linked, MSG_START,
			     ok ? cfg : NULL, sizeof(*cfg), out, ref);
}

tr_err
tr_pool_route(tr_ctx *cx, tr_pid pool, tr_pool_strategy how, uint64_t key,
	      uint32_t type, const void *data, size_t len)
{
	struct route_hdr h = { .key = key, .how = (uint32_t)how, .type = type };

	if (cx == NULL || tr_pid_is_none(pool) ||
	    (unsigned)how > TR_POOL_CONSISTENT_HASH ||
	    type >= TR_MSG_SYSTEM_BASE || (data == NULL && len > 0)) {
		return TR_EINVAL;
	}
	if (len > SIZE_MAX - sizeof(h)) {
		return TR_EMSGSIZE;
	}
	/* One message: the header, then the caller's bytes. */
	unsigned char *buf = malloc(sizeof(h) + len);
	if (buf == NULL) {
		return TR_ENOMEM;
	}
	memcpy(buf, &h, sizeof(h));
	if (len > 0) {
		memcpy(buf + sizeof(h), data, len);
	}
	tr_err err = tr_send(cx, pool, MSG_ROUTE, buf, sizeof(h) + len);
	free(buf);
	return err;
}

tr_err
tr_pool_gather(tr_ctx *cx, tr_pid pool, const tr_pool_gather_req *req,
	       tr_ref *ref)
{
	if (cx == NULL || req == NULL || req->size < sizeof(*req) ||
	    tr_pid_is_none(pool) || tr_pid_is_none(tr_self(cx)) ||
	    req->type >= TR_MSG_SYSTEM_BASE ||
	    (req->data == NULL && req->len > 0) || req->timeout_ms == 0) {
		return tr__boot_fail(TR_EINVAL, NULL, ref);
	}
	if (req->len > SIZE_MAX - sizeof(struct gather_arg)) {
		return tr__boot_fail(TR_EMSGSIZE, NULL, ref);
	}
	size_t size = sizeof(struct gather_arg) + req->len;
	struct gather_arg *a = malloc(size);
	if (a == NULL) {
		return tr__boot_fail(TR_ENOMEM, NULL, ref);
	}
	a->pool = pool;
	a->req = *req;
	if (req->len > 0) {
		memcpy(a->data, req->data, req->len);
	}
	return tr__boot_start(cx, &collector_def, false, MSG_GBOOT, a, size,
			      free, NULL, ref);
}
