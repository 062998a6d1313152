/*
 * The distribution hook (include/troupe/remote.h). Outgoing, a node the
 * runtime built for a remote pid becomes one tr_remote_op; incoming, an
 * operation becomes the node a local actor would have sent. Neither side
 * keeps state: the layer tracks what crosses each link (and fails it
 * with TR_EXIT_NOCONNECTION when the link is lost).
 *
 * Threads: both run on any thread. The layer is attached once and never
 * changes (release store, acquire loads).
 */
#include "runtime/remote.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/actor.h"
#include "runtime/pid.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"
#include "runtime/stats.h"

#define STAT(rt, w, field, n)                                                  \
	tr__stat_inc((rt), (w), offsetof(struct tr__stats, field), (n))

/* The operation @msg stands for; false for what cannot cross a node. */
static bool
op_of(const struct tr__msg *msg, tr_remote_op *op)
{
	const tr_msg *m = &msg->m;
	const struct tr__sys_exit *e = m->data;
	const struct tr__sys_down *d = m->data;

	memset(op, 0, sizeof(*op));
	op->from = m->from;
	op->to.v = msg->to;
	if (m->type < TR_MSG_SYSTEM_BASE) {
		op->kind = TR_REMOTE_SEND;
		op->type = m->type;
		op->flags = m->flags & (TR_MSG_F_REQUEST | TR_MSG_F_REPLY);
		op->ref = m->ref;
		op->data = m->data;
		op->size = m->size;
		return true;
	}
	switch (m->type) {
	case TR__SYS_LINK:
		op->kind = TR_REMOTE_LINK;
		return true;
	case TR__SYS_UNLINK:
		op->kind = TR_REMOTE_UNLINK;
		return true;
	case TR__SYS_EXIT:
		op->kind = TR_REMOTE_EXIT;
		op->who.v = e->from;
		op->reason = e->reason;
		op->link_ended = e->link_ended;
		return true;
	case TR__SYS_STOP:
		op->kind = TR_REMOTE_STOP;
		memcpy(&op->reason, m->data, sizeof(op->reason));
		return true;
	case TR__SYS_MONITOR:
	case TR__SYS_DEMONITOR:
		op->kind = m->type == TR__SYS_MONITOR ? TR_REMOTE_MONITOR
						      : TR_REMOTE_DEMONITOR;
		memcpy(&op->ref.v, m->data, sizeof(op->ref.v));
		return true;
	case TR__SYS_DOWN:
		op->kind = TR_REMOTE_DOWN;
		op->ref.v = d->ref;
		op->who.v = d->who;
		op->reason = d->reason;
		return true;
	default:
		return false; /* the runtime's own, never for another node */
	}
}

tr_err
tr__remote_out(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg)
{
	const struct tr__remote *r =
		atomic_load_explicit(&rt->remote, memory_order_acquire);
	tr_remote_op op;

	if (msg->m.flags & TR_MSG_F_PTR) {
		/* A pointer means nothing on another node. */
		tr__msg_discard_any(w, msg);
		return TR_EREMOTE;
	}
	if (r != NULL && op_of(msg, &op) && r->out(r->arg, &op) == TR_OK) {
		STAT(rt, w, remote_out, 1);
		tr__msg_discard_any(w, msg);
		if (op.hold.v != 0) {
			tr__actor_hold_sender(rt, w, op.hold.v);
		}
		return TR_OK;
	}
	tr__dead_letter(rt, w, msg);
	return TR_EUNREACH;
}

static bool
is_remote(uint64_t pid)
{
	return tr__pid_node(pid) != 0;
}

static tr_err
send_in(tr_runtime *rt, struct tr__worker *w, const tr_remote_op *op)
{
	uint32_t both = TR_MSG_F_REQUEST | TR_MSG_F_REPLY;

	if (op->type >= TR_MSG_SYSTEM_BASE || (op->flags & ~both) != 0 ||
	    op->flags == both || op->size > rt->cfg.max_msg_size ||
	    (op->size > 0 && op->data == NULL) ||
	    (op->flags != 0 && op->from.v == 0)) {
		return TR_EINVAL;
	}
	struct tr__msg *msg = tr__msg_new(w, op->size);
	if (msg == NULL) {
		return TR_ENOMEM;
	}
	msg->m.type = op->type;
	msg->m.flags = op->flags;
	msg->m.from = op->from;
	msg->m.ref = op->ref;
	if (op->size > 0) {
		memcpy(msg->data, op->data, op->size);
	}
	/* Unbounded, as a system message: the link bounds remote senders. */
	return tr__send_node(rt, w, op->to.v, msg, false);
}

static tr_err
remote_in(tr_runtime *rt, const tr_remote_op *op)
{
	if (rt == NULL || op == NULL || op->to.v == 0 || is_remote(op->to.v) ||
	    (op->from.v != 0 && !is_remote(op->from.v))) {
		return TR_EINVAL;
	}
	/* Everything but a send answers its sender, so it needs one. */
	if (op->kind != TR_REMOTE_SEND &&
	    (op->from.v == 0 || op->kind > TR_REMOTE_DOWN)) {
		return TR_EINVAL;
	}
	struct tr__worker *w = tr__sched_current(rt);
	uint64_t from = op->from.v;
	uint64_t to = op->to.v;
	tr_err err;

	switch (op->kind) {
	case TR_REMOTE_SEND:
		err = send_in(rt, w, op);
		break;
	case TR_REMOTE_LINK:
	case TR_REMOTE_UNLINK:
		err = tr__send_sys(rt, w, from, to,
				   op->kind == TR_REMOTE_LINK ? TR__SYS_LINK
							      : TR__SYS_UNLINK,
				   NULL, 0);
		break;
	case TR_REMOTE_EXIT: {
		struct tr__sys_exit e = { .from = op->who.v,
					  .reason = op->reason,
					  .link_ended = op->link_ended };
		err = tr__send_sys(rt, w, from, to, TR__SYS_EXIT, &e,
				   sizeof(e));
		break;
	}
	case TR_REMOTE_STOP:
		err = tr__actor_stop(rt, w, from, to, op->reason);
		break;
	case TR_REMOTE_MONITOR:
	case TR_REMOTE_DEMONITOR:
		err = tr__send_sys(rt, w, from, to,
				   op->kind == TR_REMOTE_MONITOR
					   ? TR__SYS_MONITOR
					   : TR__SYS_DEMONITOR,
				   &op->ref.v, sizeof(op->ref.v));
		break;
	case TR_REMOTE_DOWN: {
		struct tr__sys_down d = { .ref = op->ref.v,
					  .who = op->who.v,
					  .reason = op->reason };
		err = tr__send_sys(rt, w, from, to, TR__SYS_DOWN, &d,
				   sizeof(d));
		break;
	}
	default:
		return TR_EINVAL;
	}
	if (err == TR_OK) {
		STAT(rt, w, remote_in, 1);
	}
	return err;
}

static tr_err
remote_hold(tr_runtime *rt, tr_pid gate, bool on)
{
	return rt != NULL ? tr__actor_hold(rt, gate.v, on) : TR_EINVAL;
}

tr_err
tr_remote_attach(tr_runtime *rt, tr_remote_hook *hook)
{
	if (rt == NULL || hook == NULL || hook->size < sizeof(*hook) ||
	    hook->out == NULL) {
		return TR_EINVAL;
	}
	struct tr__remote *r = malloc(sizeof(*r));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->out = hook->out;
	r->arg = hook->arg;
	r->release = hook->release;
	const struct tr__remote *none = NULL;
	/* release: pairs with the acquire in tr__remote_out. */
	if (!atomic_compare_exchange_strong_explicit(&rt->remote, &none, r,
						     memory_order_acq_rel,
						     memory_order_acquire)) {
		free(r);
		return TR_ESTATE;
	}
	hook->in = remote_in;
	hook->hold = remote_hold;
	return TR_OK;
}
