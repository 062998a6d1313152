/*
 * Requests: the requester's table, the timer tick, and the public calls
 * tr_request(), tr_reply(), tr_reply_ptr() and tr_forward(). See
 * runtime/request.h for the protocol and docs/ARCHITECTURE.md ("Requests")
 * for why it needs no proxy actor.
 */
#include <string.h>

#include <troupe/actor.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/inbox.h"
#include "runtime/internal.h"
#include "runtime/io_loop.h"
#include "runtime/request.h"
#include "runtime/runtime.h"

uint64_t
tr__req_ref(struct tr_runtime *rt)
{
	/* The monitors' counter: one sequence of references per runtime. */
	return atomic_fetch_add_explicit(&rt->next_ref, 1,
					 memory_order_relaxed) |
	       TR__REF_REQ;
}

/* ------------------------------------------------------------------ */
/* The table: open addressing on the reference, linear probing, removal
 * by backward shift (no tombstones). References are sequential, so the
 * multiplicative hash spreads them. */

static uint32_t
slot_of(const struct tr__reqtab *t, uint64_t ref)
{
	return (uint32_t)((ref * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
	       (t->cap - 1);
}

static void
put(struct tr__reqtab *t, const struct tr__req *r)
{
	uint32_t i = slot_of(t, r->ref);

	while (t->v[i].ref != 0) {
		i = (i + 1) & (t->cap - 1);
	}
	t->v[i] = *r;
}

static int
grow(struct tr__reqtab *t)
{
	uint32_t cap = t->cap == 0 ? 8 : t->cap * 2;
	struct tr__req *v = tr__calloc(sizeof(*v) * cap);

	if (v == NULL) {
		return TR_ENOMEM;
	}
	struct tr__req *old = t->v;
	uint32_t ocap = t->cap;
	t->v = v;
	t->cap = cap;
	for (uint32_t i = 0; i < ocap; i++) {
		if (old[i].ref != 0) {
			put(t, &old[i]);
		}
	}
	if (old != NULL) {
		tr__free(old, sizeof(*old) * ocap);
	}
	return TR_OK;
}

/* At most 3/4 full, so a probe always ends. */
static bool
full(const struct tr__reqtab *t)
{
	return (t->n + 1) * 4 > t->cap * 3;
}

int
tr__reqtab_add(struct tr__reqtab *t, uint64_t ref, uint64_t to,
	       uint64_t deadline)
{
	if (full(t) && grow(t) < 0) {
		return TR_ENOMEM;
	}
	struct tr__req r = { .ref = ref, .to = to, .deadline = deadline };
	put(t, &r);
	t->n++;
	return TR_OK;
}

static void
remove_at(struct tr__reqtab *t, uint32_t i)
{
	uint32_t mask = t->cap - 1;
	uint32_t j = i;

	t->v[i].ref = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (t->v[j].ref == 0) {
			break;
		}
		/* Move j back into the hole at i unless its home lies
		 * cyclically in (i, j]. */
		uint32_t home = slot_of(t, t->v[j].ref);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->v[i] = t->v[j];
			t->v[j].ref = 0;
			i = j;
		}
	}
	t->n--;
}

bool
tr__reqtab_take(struct tr__reqtab *t, uint64_t ref, struct tr__req *out)
{
	if (t->n == 0 || ref == 0) {
		return false;
	}
	for (uint32_t i = slot_of(t, ref);; i = (i + 1) & (t->cap - 1)) {
		if (t->v[i].ref == 0) {
			return false;
		}
		if (t->v[i].ref == ref) {
			if (out != NULL) {
				*out = t->v[i];
			}
			remove_at(t, i);
			return true;
		}
	}
}

bool
tr__reqtab_due(struct tr__reqtab *t, uint64_t now, struct tr__req *out)
{
	for (uint32_t i = 0; t->n > 0 && i < t->cap; i++) {
		const struct tr__req *r = &t->v[i];
		if (r->ref != 0 && r->deadline != 0 && r->deadline <= now) {
			*out = *r;
			remove_at(t, i);
			return true;
		}
	}
	return false;
}

int
tr__watch_add(struct tr__reqtab *t, uint64_t ref, uint64_t to,
	      uint64_t deadline)
{
	if (full(t) && t->n > 0) {
		uint64_t now = tr__clock_ns();
		/* One pass: a removal moves later entries back into the
		 * hole, so the slot is looked at again. */
		for (uint32_t i = 0; i < t->cap; i++) {
			while (t->v[i].ref != 0 && t->v[i].deadline != 0 &&
			       t->v[i].deadline <= now) {
				remove_at(t, i);
			}
		}
	}
	return tr__reqtab_add(t, ref, to, deadline);
}

bool
tr__reqtab_any(struct tr__reqtab *t, struct tr__req *out)
{
	for (uint32_t i = 0; t->n > 0 && i < t->cap; i++) {
		if (t->v[i].ref != 0) {
			*out = t->v[i];
			remove_at(t, i);
			return true;
		}
	}
	return false;
}

uint64_t
tr__reqtab_next(const struct tr__reqtab *t)
{
	uint64_t next = 0;

	for (uint32_t i = 0; t->n > 0 && i < t->cap; i++) {
		uint64_t d = t->v[i].deadline;
		if (t->v[i].ref != 0 && d != 0 && (next == 0 || d < next)) {
			next = d;
		}
	}
	return next;
}

void
tr__reqtab_fini(struct tr__reqtab *t)
{
	if (t->v != NULL) {
		tr__free(t->v, sizeof(*t->v) * t->cap);
	}
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* Timeouts and failures */

void
tr__req_arm(struct tr_runtime *rt, struct tr__reqtab *t, uint64_t owner,
	    uint64_t deadline)
{
	if (deadline == 0 || (t->armed != 0 && t->armed <= deadline)) {
		return;
	}
	uint64_t now = tr__clock_ns();
	uint64_t ms =
		deadline > now ? (deadline - now + 999999u) / 1000000u : 0;
	/*
	 * If the timer cannot be started (no memory, runtime stopping), no
	 * tick is armed and the deadline is checked at the next request or
	 * tick instead: t->armed stays as it was.
	 */
	/* The tick names its deadline: see requests_due() in actor.c. */
	if (tr__io_timer_add(rt->io, tr__io_timer_id(rt->io), owner, owner,
			     TR__SYS_REQ_TICK, &deadline, sizeof(deadline), ms,
			     0) == TR_OK) {
		t->armed = deadline;
	}
}

void
tr__req_failed_msg(tr_msg *m, tr_request_failed *f, uint64_t ref, uint64_t to,
		   int32_t reason)
{
	f->ref.v = ref;
	f->to.v = to;
	f->reason = reason;
	memset(m, 0, sizeof(*m));
	m->type = TR_MSG_REQUEST_FAILED;
	m->flags = TR_MSG_F_REPLY;
	m->from.v = to;
	m->ref.v = ref;
	m->data = f;
	m->size = sizeof(*f);
}

void
tr__req_unwatch_target(struct tr_runtime *rt, struct tr__worker *w,
		       uint64_t from, uint64_t to, uint64_t ref)
{
	(void)tr__send_sys(rt, w, from, to, TR__SYS_DEMONITOR, &ref,
			   sizeof(ref));
}

/* ------------------------------------------------------------------ */
/* Public calls */

/*
 * Register @ref in the requester's table: an actor's (its own turn) or an
 * inbox's (under its mutex, tr__inbox_req_add).
 */
static tr_err
register_req(tr_ctx *cx, uint64_t ref, uint64_t to, uint64_t deadline)
{
	if (cx->inbox != NULL) {
		return tr__inbox_req_add(cx->inbox, ref, to, deadline);
	}
	struct tr__reqtab *t = tr__actor_reqs(cx->a);
	if (t == NULL || tr__reqtab_add(t, ref, to, deadline) < 0) {
		return TR_ENOMEM;
	}
	tr__req_arm(cx->rt, t, cx->self, deadline);
	return TR_OK;
}

static void
unregister_req(tr_ctx *cx, uint64_t ref)
{
	if (cx->inbox != NULL) {
		tr__inbox_req_drop(cx->inbox, ref);
		return;
	}
	(void)tr__reqtab_take(tr__actor_reqs(cx->a), ref, NULL);
}

static tr_err
request(tr_ctx *cx, tr_pid to, struct tr__msg *msg, uint64_t timeout_ms,
	tr_ref *out)
{
	if (cx->inbox == NULL && cx->a == NULL) {
		tr__msg_discard_any(cx->w, msg); /* frees a pointer payload */
		return TR_EINVAL; /* a teardown's context, or a stale one */
	}
	uint64_t ref = tr__req_ref(cx->rt);
	/* Past about 100 years a timeout is no timeout (and the product
	 * would wrap). */
	uint64_t deadline = timeout_ms == 0 || timeout_ms > UINT64_C(3) << 40
				    ? 0
				    : tr__clock_ns() + timeout_ms * 1000000u;
	tr_err err = register_req(cx, ref, to.v, deadline);

	if (err < 0) {
		tr__msg_discard_any(cx->w, msg);
		return err;
	}
	msg->m.flags |= TR_MSG_F_REQUEST;
	msg->m.ref.v = ref;
	msg->m.from.v = cx->self;
	msg->deadline = deadline;
	/*
	 * A target that does not exist makes the request a dead letter,
	 * which answers it with TR_MSG_REQUEST_FAILED (TR_EXIT_NOPROC):
	 * that is its one outcome. A refusal (a full mailbox) is not sent
	 * at all: then there is no outcome, and the error says so.
	 */
	err = tr__send_node(cx->rt, cx->w, to.v, msg, true);
	if (err < 0 && err != TR_EUNREACH) {
		unregister_req(cx, ref);
		return err;
	}
	if (out != NULL) {
		out->v = ref;
	}
	return TR_OK;
}

/* A node holding a copy of @len bytes at @data; NULL with *err set. */
static struct tr__msg *
node_copy(tr_ctx *cx, uint32_t type, const void *data, size_t len, tr_err *err)
{
	if (len > 0 && data == NULL) {
		*err = TR_EINVAL;
		return NULL;
	}
	if (len > cx->rt->cfg.max_msg_size) {
		*err = TR_EMSGSIZE;
		return NULL;
	}
	struct tr__msg *msg = tr__msg_new(cx->w, len);
	if (msg == NULL) {
		*err = TR_ENOMEM;
		return NULL;
	}
	msg->m.type = type;
	if (len > 0) {
		memcpy(msg->data, data, len);
	}
	return msg;
}

/*
 * A node carrying @ptr, when the caller's checks passed (@ok); else, or
 * without memory, NULL with *err set and @ptr freed: a pointer payload
 * moves to the runtime on every path.
 */
static struct tr__msg *
node_ptr(tr_ctx *cx, bool ok, uint32_t type, void *ptr, size_t len,
	 tr_free_fn free_fn, tr_err *err)
{
	struct tr__msg *msg = ok ? tr__msg_new(cx->w, 0) : NULL;

	if (msg == NULL) {
		if (free_fn != NULL && ptr != NULL) {
			free_fn(ptr);
		}
		*err = ok ? TR_ENOMEM : TR_EINVAL;
		return NULL;
	}
	msg->m.type = type;
	msg->m.flags = TR_MSG_F_PTR;
	msg->m.data = ptr;
	msg->m.size = len;
	msg->free_fn = free_fn;
	return msg;
}

tr_err
tr_request(tr_ctx *cx, tr_pid to, uint32_t type, const void *data, size_t len,
	   uint64_t timeout_ms, tr_ref *out)
{
	tr_err err;

	if (!tr__ctx_ok(cx, __func__) || to.v == 0 ||
	    type >= TR_MSG_SYSTEM_BASE) {
		return TR_EINVAL;
	}
	struct tr__msg *msg = node_copy(cx, type, data, len, &err);
	return msg != NULL ? request(cx, to, msg, timeout_ms, out) : err;
}

tr_err
tr_request_ptr(tr_ctx *cx, tr_pid to, uint32_t type, void *ptr, size_t len,
	       tr_free_fn free_fn, uint64_t timeout_ms, tr_ref *out)
{
	tr_err err;
	bool ok = tr__ctx_ok(cx, __func__) && to.v != 0 &&
		  type < TR_MSG_SYSTEM_BASE;
	struct tr__msg *msg = node_ptr(cx, ok, type, ptr, len, free_fn, &err);

	return msg != NULL ? request(cx, to, msg, timeout_ms, out) : err;
}

/*
 * The answer to @req leaves this actor: forget the watch taken when the
 * request arrived (see request.h), so its stop no longer fails it.
 */
static void
answered(tr_ctx *cx, const tr_msg *req)
{
	if ((req->flags & TR_MSG_F_REQUEST) && req->ref.v != 0) {
		tr__actor_unwatch(cx, req->ref.v);
	}
}

static tr_err
reply(tr_ctx *cx, const tr_msg *req, struct tr__msg *msg)
{
	if (req->flags & TR_MSG_F_REQUEST) {
		msg->m.flags |= TR_MSG_F_REPLY;
		msg->m.ref = req->ref;
	}
	msg->m.from.v = cx->self;
	/*
	 * A reply is not held back by the requester's bound, as a system
	 * message: the requester asked for it, and its open requests limit
	 * how many come. A plain answer is a plain send.
	 */
	tr_err err = tr__send_node(cx->rt, cx->w, req->from.v, msg,
				   !(req->flags & TR_MSG_F_REQUEST));
	answered(cx, req);
	return err == TR_EUNREACH ? TR_OK : err;
}

/* The checks tr_reply and tr_reply_ptr share. */
static bool
reply_ok(tr_ctx *cx, const tr_msg *req, uint32_t type, const char *fn)
{
	return tr__ctx_ok(cx, fn) && (cx->a != NULL || cx->inbox != NULL) &&
	       req != NULL && req->from.v != 0 && type < TR_MSG_SYSTEM_BASE;
}

tr_err
tr_reply(tr_ctx *cx, const tr_msg *req, uint32_t type, const void *data,
	 size_t len)
{
	tr_err err;

	if (!reply_ok(cx, req, type, __func__)) {
		return TR_EINVAL;
	}
	struct tr__msg *msg = node_copy(cx, type, data, len, &err);
	return msg != NULL ? reply(cx, req, msg) : err;
}

tr_err
tr_reply_ptr(tr_ctx *cx, const tr_msg *req, uint32_t type, void *ptr,
	     size_t len, tr_free_fn free_fn)
{
	tr_err err;
	struct tr__msg *msg = node_ptr(cx, reply_ok(cx, req, type, __func__),
				       type, ptr, len, free_fn, &err);

	return msg != NULL ? reply(cx, req, msg) : err;
}

tr_err
tr_forward(tr_ctx *cx, tr_pid to, const tr_msg *m)
{
	tr_err err;

	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || m == NULL ||
	    to.v == 0 || m->type >= TR_MSG_SYSTEM_BASE) {
		return TR_EINVAL;
	}
	struct tr__msg *msg;
	if (m->flags & TR_MSG_F_PTR) {
		/* The pointer moves on with the message. */
		const struct tr__msg *node =
			tr__container_of(m, const struct tr__msg, m);
		void *ptr = tr_msg_take_ptr(cx, m);
		if (ptr == NULL) {
			return TR_EINVAL; /* not this turn's, or taken */
		}
		msg = node_ptr(cx, true, m->type, ptr, m->size, node->free_fn,
			       &err);
	} else {
		msg = node_copy(cx, m->type, m->data, m->size, &err);
	}
	if (msg == NULL) {
		return err;
	}
	if (m->flags & TR_MSG_F_REQUEST) {
		msg->m.flags |= TR_MSG_F_REQUEST;
		msg->m.ref = m->ref;
		/* The next holder's watch expires when the requester's
		 * timeout does (a stash copy knows it too). */
		if (cx->node != NULL && &cx->node->m == m) {
			msg->deadline = cx->node->deadline;
		}
	}
	msg->m.from = m->from; /* the reply goes to the original sender */
	err = tr__send_node(cx->rt, cx->w, to.v, msg, true);
	if (err == TR_EUNREACH) {
		err = TR_OK; /* a dead letter, which fails the request */
	}
	if (err == TR_OK) {
		answered(cx, m);
	}
	return err;
}
