#ifndef TROUPE_REMOTE_H
#define TROUPE_REMOTE_H

/*
 * The distribution hook: the one place where the runtime meets the layer
 * that carries messages to other nodes (libtroupe-net). Applications do
 * not use it; they send to a remote pid with tr_send() as to any pid.
 *
 * A pid whose node part is not 0 names an actor of another node; the node
 * part is the distribution layer's own number for that node (and that
 * node's life: a node restarted under the same name gets a new number, so
 * pids of its previous life stay stale). Everything the runtime does to
 * such a pid (a send, a request, a reply, a forward, a link, an unlink, an
 * exit signal, a stop, a monitor, a demonitor, the DOWN or exit signal an
 * actor's stop sends to a remote watcher or link) becomes one tr_remote_op
 * handed to the layer's `out` function. What arrives from other nodes the
 * layer hands to the runtime's `in` function, which does for the local
 * target what the same operation from a local actor would do.
 *
 * Counting: an operation handed to `out` is not a local message (not in
 * msgs_sent) but counted in msgs_remote_out; one `out` refuses is a local
 * dead letter, as a send to a stopped actor is, and gives a request,
 * monitor or link its outcome at once with TR_EXIT_NOCONNECTION. What
 * `in` takes is counted in msgs_remote_in and then as a local message
 * (sent, then handled or dead). So each node keeps sent == handled + dead
 * letters, and what one node's `out` took is what the other's `in` got
 * plus what the layer counts as lost.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/error.h>
#include <troupe/msg.h>
#include <troupe/pid.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_runtime tr_runtime;

/** enum tr_remote_kind - What a tr_remote_op asks of its target. */
typedef enum tr_remote_kind {
	TR_REMOTE_SEND = 1,  /* a message: type, flags, ref, data, size */
	TR_REMOTE_LINK,      /* link @from and @to */
	TR_REMOTE_UNLINK,    /* remove that link */
	TR_REMOTE_EXIT,      /* exit signal from @who with @reason */
	TR_REMOTE_STOP,      /* stop @to with @reason (tr_stop) */
	TR_REMOTE_MONITOR,   /* @from monitors @to under @ref */
	TR_REMOTE_DEMONITOR, /* @from drops its monitor @ref on @to */
	TR_REMOTE_DOWN, /* @who stopped with @reason: monitor or request @ref */
} tr_remote_kind;

/**
 * struct tr_remote_op - One operation between an actor of this node and
 * one of another node. Pids are this node's view: node part 0 for local
 * actors, the layer's node number for the others.
 * @kind:       a tr_remote_kind
 * @type:       SEND: the message type (below TR_MSG_SYSTEM_BASE)
 * @flags:      SEND: TR_MSG_F_REQUEST or TR_MSG_F_REPLY, or 0
 * @reason:     EXIT, STOP, DOWN: the exit reason
 * @link_ended: EXIT: the sender stopped, so the link is gone (an exit
 *              signal from tr_exit() leaves it)
 * @from:       the acting actor (the sender, linker, monitor holder; for
 *              DOWN and EXIT the actor the signal comes from); may be
 *              TR_PID_NONE for a SEND from a thread's context
 * @to:         the target
 * @who:        EXIT, DOWN: the actor that stopped or signals
 * @ref:        SEND: the request's reference (with REQUEST or REPLY);
 *              MONITOR, DEMONITOR, DOWN: the monitor's or request's
 * @data:       SEND: the payload (copied bytes; never a pointer payload)
 * @size:       SEND: its length
 * @hold:       set by @out when it took the operation but the link is
 *              congested: an actor of the layer's that @hold (the hook)
 *              holds; the sending actor is muted on it at the end of its
 *              turn, as a sender to an overloaded actor is, until the
 *              layer lets it go. TR_PID_NONE (as the runtime passes it):
 *              no holding back.
 */
typedef struct tr_remote_op {
	uint32_t kind;
	uint32_t type;
	uint32_t flags;
	int32_t reason;
	bool link_ended;
	tr_pid from;
	tr_pid to;
	tr_pid who;
	tr_ref ref;
	const void *data;
	size_t size;
	tr_pid hold;
} tr_remote_op;

/**
 * struct tr_remote_hook - Both directions of the hook.
 * @size: sizeof(tr_remote_hook), set by the layer
 * @out:  set by the layer: takes one operation for another node. Called
 *        on any thread (workers, threads' contexts, I/O threads), several
 *        at once; must not block and must not call back into the runtime
 *        except @in. It copies what it keeps (@op and its data are the
 *        caller's); it may set @op->hold. Returns TR_OK when it took
 *        the operation, TR_EUNREACH (the node is unknown, down or its
 *        link full) to refuse it.
 * @arg:  set by the layer: passed to @out
 * @release: set by the layer, may be NULL: called once by
 *        tr_runtime_destroy() with @arg, after which @out is never
 *        called again, so the layer can free what @out uses
 * @in:   set by the runtime at attach: hands it one operation from another
 *        node, for a local @to (a remote @from, or TR_PID_NONE). Any
 *        thread. Returns TR_OK; TR_EINVAL for an operation that is not
 *        well formed (a local @from, a remote @to, a reserved type, a
 *        SEND over the configured maximum message size); TR_ENOMEM. A
 *        target that does not exist makes it a dead letter, as a local
 *        send would (TR_OK). Remote messages are not held back by a
 *        mailbox bound: the link's own bound holds remote senders back.
 * @hold: set by the runtime at attach: @on, makes @gate (a local actor
 *        of the layer's that is sent nothing) hold back the actors whose
 *        sends @out tags with it; off, lets them all go. Any thread, also
 *        under the layer's locks (it only flags and requeues). Returns
 *        TR_OK, or TR_EINVAL for a @gate that is not a live local actor.
 */
typedef struct tr_remote_hook {
	size_t size;
	tr_err (*out)(void *arg, tr_remote_op *op);
	void *arg;
	void (*release)(void *arg);
	tr_err (*in)(tr_runtime *rt, const tr_remote_op *op);
	tr_err (*hold)(tr_runtime *rt, tr_pid gate, bool on);
} tr_remote_hook;

/*
 * A pid of another node as the layer builds it: node @node (1..65535, the
 * layer's number for that node's life) and the pid's local part on its
 * own node (@local, its generation and slot: tr_remote_pid_local() of the
 * pid there). The runtime owns the layout; these are its two accessors
 * for the layer.
 */
#define TR_REMOTE_LOCAL_BITS 48
#define TR_REMOTE_LOCAL_MASK ((UINT64_C(1) << TR_REMOTE_LOCAL_BITS) - 1)

static inline tr_pid
tr_remote_pid(uint32_t node, uint64_t local)
{
	tr_pid p;

	p.v = ((uint64_t)(node & 0xFFFFu) << TR_REMOTE_LOCAL_BITS) |
	      (local & TR_REMOTE_LOCAL_MASK);
	return p;
}

static inline uint64_t
tr_remote_pid_local(tr_pid p)
{
	return p.v & TR_REMOTE_LOCAL_MASK;
}

/**
 * tr_remote_attach() - Attach the distribution layer to @rt: from now on
 * operations on remote pids go to @hook->out, and @hook->in is set. Before
 * it (or without it) every such operation is refused as TR_EUNREACH.
 * Attaching is for the life of the runtime: the layer keeps @hook->out
 * callable until tr_runtime_destroy() and refuses what comes after its
 * own stop.
 * @rt:   the runtime
 * @hook: the layer's side filled in; the runtime fills in @hook->in.
 *        The runtime keeps a copy.
 *
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (NULL, a too small @hook->size, no @out);
 *            TR_ESTATE (a layer is attached already).
 */
TR_API tr_err tr_remote_attach(tr_runtime *rt, tr_remote_hook *hook);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_REMOTE_H */
