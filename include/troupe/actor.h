#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

/*
 * Writing actors: definitions, spawning, sending, lifecycle, links and
 * monitors, and moving blocking calls off the scheduler.
 *
 * Functions that take a tr_ctx run inside a handler (or init/teardown) of
 * the actor that cx belongs to. Other threads make the same calls with a
 * thread's context from <troupe/runtime.h>: an inbox's (tr_inbox_ctx()),
 * whose pid is the sender and which receives the replies, or the
 * runtime's (tr_runtime_ctx()), which sends as nobody. Each function says
 * which contexts it takes; the others get TR_EINVAL.
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

typedef struct tr_ctx tr_ctx;
typedef struct tr_runtime tr_runtime;

/** tr_handler_fn - Handles one message. @state is the actor's state. */
typedef void (*tr_handler_fn)(tr_ctx *cx, void *state, const tr_msg *m);

/**
 * tr_init_fn - Runs once, as the actor's first turn, before any message.
 * Return TR_OK, or a negative value to stop the actor with
 * TR_EXIT_INIT_FAILED. Links and monitors made with tr_spawn_link() or
 * tr_spawn_monitor() see that reason; a tr_monitor() issued after a plain
 * tr_spawn() may arrive after the actor stopped and see TR_EXIT_NOPROC.
 */
typedef int (*tr_init_fn)(tr_ctx *cx, void *state, void *arg);

/** tr_teardown_fn - Runs once when the actor stops, after its last handler. */
typedef void (*tr_teardown_fn)(tr_ctx *cx, void *state, int32_t reason);

/**
 * struct tr_actor_def - What an actor is.
 * @size:          sizeof(tr_actor_def), an ABI guard; required
 * @name:          for logs and metrics; may be NULL
 * @state_size:    bytes of zeroed state the runtime allocates (may be 0)
 * @init:          optional; without it the spawn argument is ignored and
 *                 the actor costs nothing until its first message
 * @teardown:      optional
 * @handle:        required; the initial behaviour
 * @mailbox_bound: 0 for unbounded (the default); otherwise a send that
 *                 would make the mailbox hold more than this many
 *                 messages fails with TR_EFULL
 * @arg_size:      0: init gets the spawn argument itself, which the
 *                 spawner must keep alive until init has run. Otherwise
 *                 the spawn copies this many bytes from the argument (up
 *                 to the runtime's max_msg_size), and init gets a pointer
 *                 to the copy, valid during init: the spawner may reuse
 *                 its argument as soon as the spawn returns. NULL stays
 *                 NULL.
 *
 * The definition must outlive every actor spawned from it (normally it is
 * a static const).
 */
typedef struct tr_actor_def {
	size_t size;
	const char *name;
	size_t state_size;
	tr_init_fn init;
	tr_teardown_fn teardown;
	tr_handler_fn handle;
	uint32_t mailbox_bound;
	size_t arg_size;
} tr_actor_def;

/**
 * tr_spawn() - Start a new actor.
 * @cx:  context of the calling actor or thread
 * @def: its definition
 * @arg: passed to def->init on the new actor's first turn: borrowed by the
 *       runtime until then (the caller keeps it alive or passes ownership
 *       through its own convention), or copied now when def->arg_size is
 *       set
 * @out: on success the new pid; may be NULL
 *
 * Thread:    actor, or a thread's context (tr_inbox_ctx(),
 *            tr_runtime_ctx()).
 * Return:    TR_OK; TR_EINVAL for a bad definition; TR_EMSGSIZE (arg_size
 *            over the configured maximum); TR_ENOMEM; TR_ECLOSED when the
 *            runtime is stopping.
 */
TR_API tr_err tr_spawn(tr_ctx *cx, const tr_actor_def *def, void *arg,
		       tr_pid *out);

/**
 * tr_spawn_link() - tr_spawn(), linked with the calling actor before the
 * new actor runs (Erlang's spawn_link): even an init that fails at once
 * sends its exit signal to the caller.
 *
 * Thread:    actor.
 * Return:    as tr_spawn().
 */
TR_API tr_err tr_spawn_link(tr_ctx *cx, const tr_actor_def *def, void *arg,
			    tr_pid *out);

/**
 * tr_spawn_monitor() - tr_spawn(), monitored by the calling actor before the
 * new actor runs (Erlang's spawn_monitor): exactly one TR_MSG_DOWN with
 * the real reason (also TR_EXIT_INIT_FAILED) follows when it stops.
 * @ref: on success the monitor reference, for tr_demonitor(); may be NULL
 *
 * Thread:    actor.
 * Return:    as tr_spawn().
 */
TR_API tr_err tr_spawn_monitor(tr_ctx *cx, const tr_actor_def *def, void *arg,
			       tr_pid *out, tr_ref *ref);

/**
 * tr_send() - Send a copy of @len bytes at @data.
 * @cx:   context of the calling actor or thread; its pid becomes the
 *        sender (none for tr_runtime_ctx())
 * @to:   receiver
 * @type: type tag, below TR_MSG_SYSTEM_BASE
 * @data: payload, may be NULL when @len is 0
 * @len:  payload size
 *
 * A stopped or unknown receiver makes the message a counted dead letter
 * and the call still returns TR_OK (delivery is asynchronous in general).
 * Thread:    actor, or a thread's context (tr_inbox_ctx(),
 *            tr_runtime_ctx()).
 * Return:    TR_OK; TR_EFULL (bounded mailbox full; nothing was sent);
 *            TR_EMSGSIZE (over the configured maximum); TR_EINVAL
 *            (TR_PID_NONE or a reserved type); TR_EUNREACH (a pid of
 *            another node; counted as a dead letter); TR_ENOMEM.
 */
TR_API tr_err tr_send(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
		      size_t len);

/**
 * tr_send_ptr() - Hand over @ptr without copying.
 * @cx:      as tr_send()
 * @to:      receiver
 * @type:    type tag
 * @ptr:     payload; the receiver sees it as m->data
 * @len:     size to report in m->size (not interpreted)
 * @free_fn: frees @ptr; may be NULL when nothing needs freeing
 *
 * Ownership: @ptr moves to the runtime on every path. When the message is
 *            not delivered (any error, dead letter, receiver stopped with
 *            the message queued, runtime stop) the runtime calls
 *            @free_fn(@ptr). After a handler returns the runtime frees the
 *            payload unless the handler took it with tr_msg_take_ptr().
 * Thread:    as tr_send().
 * Return:    as tr_send().
 */
TR_API tr_err tr_send_ptr(tr_ctx *cx, tr_pid to, uint32_t type, void *ptr,
			  size_t len, tr_free_fn free_fn);

/**
 * tr_request() - Send a request: a message whose one outcome comes back.
 * @cx:         context of the calling actor, or of a thread's inbox
 *              (tr_inbox_ctx()); the runtime's context (tr_runtime_ctx())
 *              has no one to receive the outcome: TR_EINVAL
 * @to:         the actor asked
 * @type:       type tag, below TR_MSG_SYSTEM_BASE
 * @data:       payload (copied), may be NULL when @len is 0
 * @len:        payload size
 * @timeout_ms: how long to wait for the reply; 0 waits without limit
 * @ref:        on success the request's reference; may be NULL
 *
 * The target sees a message with TR_MSG_F_REQUEST and m->ref set, and
 * answers it with tr_reply(), now or in a later turn, or passes it on with
 * tr_forward(). Exactly one outcome reaches the requester, a message with
 * TR_MSG_F_REPLY and m->ref equal to *@ref: the reply, or
 * TR_MSG_REQUEST_FAILED (payload struct tr_request_failed) with
 * TR_EXIT_NOPROC if @to did not exist or stopped before it took the
 * request, the reason @to stopped with if it stopped holding it, or
 * TR_EXIT_TIMEOUT when @timeout_ms passed first. A reply that comes after
 * that is a counted dead letter. No proxy actor and no timer per request:
 * the runtime watches the target for the request and keeps one timer per
 * requester (docs/ARCHITECTURE.md, "Requests").
 *
 * From a thread, the outcome joins the inbox: take it with
 * tr_inbox_recv() with the reference, which is the blocking call.
 * Thread:    actor, or the thread of an inbox context.
 * Return:    TR_OK (the outcome will come); on an error nothing was sent
 *            and no outcome comes: TR_EFULL, TR_EMSGSIZE, TR_EINVAL,
 *            TR_ENOMEM as tr_send().
 */
TR_API tr_err tr_request(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
			 size_t len, uint64_t timeout_ms, tr_ref *ref);

/**
 * tr_request_ptr() - tr_request() handing over @ptr, as tr_send_ptr().
 * @cx:         as tr_request()
 * @to:         as tr_request()
 * @type:       as tr_request()
 * @ptr:        payload; the target sees it as m->data
 * @len:        size to report in m->size
 * @free_fn:    frees @ptr; may be NULL
 * @timeout_ms: as tr_request()
 * @ref:        as tr_request()
 *
 * Ownership: as tr_send_ptr(): @ptr moves to the runtime on every path.
 * Thread:    actor, or the thread of an inbox context.
 * Return:    as tr_request().
 */
TR_API tr_err tr_request_ptr(tr_ctx *cx, tr_pid to, uint32_t type, void *ptr,
			     size_t len, tr_free_fn free_fn,
			     uint64_t timeout_ms, tr_ref *ref);

/**
 * tr_reply() - Answer the request @req with a copy of @len bytes.
 * @cx:   context of the actor that holds the request
 * @req:  the request; only its from, ref and flags are read, so a copy of
 *        the tr_msg header kept past the handler answers it later
 * @type: type tag of the reply, below TR_MSG_SYSTEM_BASE
 * @data: payload, may be NULL when @len is 0
 * @len:  payload size
 *
 * The reply carries the request's reference and goes to its sender. It is
 * not held back by the requester's mailbox bound (the requester asked for
 * it). A message that is not a request (no TR_MSG_F_REQUEST) is answered
 * with a plain send to its sender, so one handler serves tr_send() and
 * tr_request() callers alike. A requester that stopped, or whose request
 * timed out, makes the reply a counted dead letter; that is not an error.
 * Thread:    actor, or the thread of an inbox context.
 * Return:    TR_OK; TR_EINVAL (no sender, reserved type); TR_EMSGSIZE;
 *            TR_EFULL (a plain send refused by a bounded mailbox);
 *            TR_ENOMEM.
 */
TR_API tr_err tr_reply(tr_ctx *cx, const tr_msg *req, uint32_t type,
		       const void *data, size_t len);

/**
 * tr_reply_ptr() - Answer @req handing over @ptr (a variable-length reply:
 * a struct with a flexible array member).
 * @cx:      as tr_reply()
 * @req:     as tr_reply()
 * @type:    as tr_reply()
 * @ptr:     payload; the requester sees it as m->data
 * @len:     size to report in m->size
 * @free_fn: frees @ptr; may be NULL
 *
 * Ownership: as tr_send_ptr().
 * Thread:    actor, or the thread of an inbox context.
 * Return:    as tr_reply().
 */
TR_API tr_err tr_reply_ptr(tr_ctx *cx, const tr_msg *req, uint32_t type,
			   void *ptr, size_t len, tr_free_fn free_fn);

/**
 * tr_forward() - Pass message @m on to @to, keeping its sender and, for a
 * request, its reference (CAF's delegate): @to's tr_reply() answers the
 * original requester, and the requester now watches @to instead of this
 * actor.
 * @cx: context of the calling actor
 * @to: the next holder
 * @m:  a message this actor holds; a pointer payload moves on with it and
 *      must be this turn's message (its pointer is freed on an error)
 *
 * A dead or unknown @to fails the request with TR_EXIT_NOPROC, as any
 * request that reaches no actor.
 * Thread:    actor.
 * Return:    TR_OK; TR_EINVAL (a pointer message of another turn, a
 *            reserved type, an inbox context); TR_EFULL; TR_ENOMEM. On an
 *            error this actor still holds the request.
 */
TR_API tr_err tr_forward(tr_ctx *cx, tr_pid to, const tr_msg *m);

/**
 * tr_msg_take_ptr() - Keep the pointer payload of the current message.
 * @cx: context of the calling actor
 * @m:  the message being handled (must carry TR_MSG_F_PTR)
 *
 * Ownership: the caller now owns the pointer and frees it itself.
 * Thread:    actor.
 * Return:    the pointer, or NULL when @m is not a pointer message.
 */
TR_API void *tr_msg_take_ptr(tr_ctx *cx, const tr_msg *m);

/**
 * tr_unhandled() - Say that the current message was not for this actor:
 * an unknown type, a payload of the wrong size, a message it cannot take
 * in its present state. Akka's unhandled(), Erlang's dropped message,
 * counted instead of silent.
 * @cx: context of the calling actor
 * @m:  the message being handled
 *
 * The message counts as a dead letter (the dead_letters metric) instead
 * of a handled one; the runtime's own messages (types from
 * TR_MSG_SYSTEM_BASE up, such as a DOWN nobody asked for) are left as
 * they are, since an actor may ignore those. A
 * request gets its one outcome at once: TR_MSG_REQUEST_FAILED with
 * reason TR_EXIT_UNHANDLED, instead of its requester waiting for its
 * timeout; the actor must not reply to it afterwards (the reply would be
 * a late one). The handler goes on as it likes; a pointer payload is
 * freed after it returns, as always.
 * Ownership: none.
 * Thread:    actor.
 * Return:    TR_OK; TR_EINVAL (not the message of this turn, not an
 *            actor's context, or already said for this message).
 */
TR_API tr_err tr_unhandled(tr_ctx *cx, const tr_msg *m);

/**
 * tr_stash() - Keep the current message to handle it later (Akka's
 * stash; Erlang's selective receive, which leaves a message in the
 * mailbox). An actor that cannot take a message in its present state
 * (a supervisor waiting for a child to start, a service not ready yet)
 * stashes it and calls tr_unstash_all() once it can.
 * @cx: context of the calling actor
 * @m:  the message being handled: any message its handler sees, a DOWN,
 *      an exit signal or a failed request included
 *
 * Counting: the handler saw the message, so it counts as handled;
 * tr_unstash_all() counts each message it puts back as sent again, a
 * message to itself; one still stashed when the actor stops counts as
 * sent and as a dead letter. The totals balance while messages are
 * stashed (sent == handled + dead letters), and tr_runtime_wait_idle()
 * does not wait for them: they are the actor's to put back. A request
 * keeps its reference, its requester's timeout and the watch on
 * this actor while it is stashed: its requester learns of this actor's
 * stop, and a reply after the requester's timeout is a late one. The
 * stash is the actor's own memory: it has no bound but what the actor
 * puts in it, and does not count against the mailbox bound.
 * Ownership: a pointer payload moves to the stash (as with
 * tr_msg_take_ptr()) and comes back with the message.
 * Thread:    actor.
 * Return:    TR_OK; TR_EINVAL (not the message of this turn, not an
 *            actor's context, already stashed, said unhandled, or a
 *            pointer the handler took); TR_ENOMEM (the message stays
 *            the handler's, handled as usual).
 */
TR_API tr_err tr_stash(tr_ctx *cx, const tr_msg *m);

/**
 * tr_unstash_all() - Put every stashed message back: they are handled
 * from this actor's next handler call on, in the order they were
 * stashed, before anything else in its mailbox (and before what an
 * earlier tr_unstash_all() put back and is not handled yet). A message
 * handled again may be stashed again.
 * @cx: context of the calling actor
 *
 * Thread:    actor.
 * Return:    TR_OK (also with nothing stashed); TR_EINVAL (not an
 *            actor's context).
 */
TR_API tr_err tr_unstash_all(tr_ctx *cx);

/**
 * tr_should_yield() - True when the running handler should return soon: it
 * has sent at least the runtime's batch of messages (tr_config.batch, 100
 * by default) since it was called. A handler with more to send then posts
 * itself a message to continue and returns, so that its receivers run in
 * between and, when one is overloaded, the runtime can hold the sender
 * back (it mutes it when the call returns):
 *
 *     case MSG_CONT:
 *         while (p->left > 0) {
 *             tr_send(cx, p->to, MSG_DATA, ...);
 *             p->left--;
 *             if (p->left > 0 && tr_should_yield(cx)) {
 *                 tr_send(cx, tr_self(cx), MSG_CONT, NULL, 0);
 *                 break;
 *             }
 *         }
 *
 * A loop that sends everything in one call instead queues it all before
 * any receiver can answer, and runs 1.2x to 12x slower on two workers
 * (docs/BENCHMARKS.md, "Sending in a loop").
 * @cx: context of the calling actor
 *
 * Thread:    actor.
 * Return:    true to return now; false otherwise, and for a thread's
 *            context.
 */
TR_API bool tr_should_yield(tr_ctx *cx);

/**
 * tr_self() - Pid of the calling actor; with a thread's context, the
 * inbox's pid (tr_inbox_ctx()) or TR_PID_NONE (tr_runtime_ctx()).
 * Thread: actor, or a thread's context.
 */
TR_API tr_pid tr_self(tr_ctx *cx);

/**
 * tr_sender() - Sender of the message being handled (TR_PID_NONE inside
 * init/teardown, for a thread's context, and for messages sent on
 * tr_runtime_ctx()). Thread: actor.
 */
TR_API tr_pid tr_sender(tr_ctx *cx);

/** tr_ctx_runtime() - The runtime the calling actor runs in. Thread: actor. */
TR_API tr_runtime *tr_ctx_runtime(tr_ctx *cx);

/**
 * tr_become() - Handle the next messages with @handler instead.
 * Thread:    actor.
 * Return:    TR_OK, or TR_EINVAL when @handler is NULL.
 */
TR_API tr_err tr_become(tr_ctx *cx, tr_handler_fn handler);

/**
 * tr_stop_self() - Stop the calling actor when the current handler returns.
 * @reason: exit reason seen by links and monitors (TR_EXIT_*)
 *
 * Messages still in the mailbox become dead letters.
 * Thread:    actor.
 */
TR_API void tr_stop_self(tr_ctx *cx, int32_t reason);

/**
 * tr_stop() - Stop another actor with @reason.
 *
 * The stop overtakes the messages already in its mailbox, as an Erlang
 * exit signal does: the actor finishes the message it is handling (and
 * its init, if that has not run yet) and stops before the next one; what
 * was still queued for it becomes dead letters. A monitor, link or request
 * queued ahead of the stop is answered with @reason (it was made while
 * the actor lived), one queued behind it with TR_EXIT_NOPROC. It cannot
 * be trapped. To have an actor finish its queue first, send it a message
 * of your own that makes it call tr_stop_self(). Stopping the calling
 * actor itself is tr_stop_self().
 * Thread:    as tr_send().
 * Return:    TR_OK (a stale pid is a dead letter), TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_stop(tr_ctx *cx, tr_pid who, int32_t reason);

/**
 * tr_exit() - Send an exit signal to @who as if a linked actor had stopped
 * with @reason: it stops unless it traps exits (then it gets TR_MSG_EXIT),
 * and TR_EXIT_NORMAL is ignored by an actor that does not trap exits.
 * TR_EXIT_KILL stops it even when it traps exits. A link between the two
 * stays (as with Erlang's exit/2): if @who stops, the caller still gets
 * its exit signal. From tr_runtime_ctx() the signal comes from
 * TR_PID_NONE.
 * Thread:    as tr_send().
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_exit(tr_ctx *cx, tr_pid who, int32_t reason);

/**
 * tr_link() - Link the calling actor with @other, both ways.
 *
 * When either stops with a reason other than TR_EXIT_NORMAL the other gets
 * an exit signal (see tr_exit()). Linking to a stopped actor delivers an
 * exit signal with TR_EXIT_NOPROC. Linking twice is one link.
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL (self or none), TR_ENOMEM.
 */
TR_API tr_err tr_link(tr_ctx *cx, tr_pid other);

/** tr_unlink() - Remove a link (no-op if none). Thread: actor. */
TR_API tr_err tr_unlink(tr_ctx *cx, tr_pid other);

/**
 * tr_trap_exit() - Receive exit signals from links as TR_MSG_EXIT messages
 * instead of stopping (TR_EXIT_KILL is never trapped). Thread: actor.
 */
TR_API void tr_trap_exit(tr_ctx *cx, bool on);

/**
 * tr_monitor() - Watch @who: one TR_MSG_DOWN arrives when it stops (with
 * TR_EXIT_NOPROC at once if it does not exist).
 * @out: the monitor reference, for tr_demonitor() and tr_down.ref
 *
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_monitor(tr_ctx *cx, tr_pid who, tr_ref *out);

/**
 * tr_demonitor() - Cancel a monitor; no TR_MSG_DOWN for it is delivered
 * after this returns, even one already queued.
 * Thread:    actor.
 * Return:    TR_OK, or TR_ENOENT when @ref is not an active monitor.
 */
TR_API tr_err tr_demonitor(tr_ctx *cx, tr_ref ref);

/**
 * tr_blocking_fn - A blocking call run by tr_blocking() on the blocking
 * pool. Its return value becomes the payload of the reply.
 */
typedef void *(*tr_blocking_fn)(void *arg);

/**
 * tr_blocking() - Run @fn(@arg) on the blocking pool, off the scheduler
 * threads; when it returns the calling actor gets a message of
 * @reply_type whose data is fn's return value (a pointer message, size 0,
 * sender = the calling actor).
 * @free_fn: frees the return value when the reply cannot be delivered or
 *           is not taken by the handler; may be NULL
 *
 * Ownership: @arg stays the caller's; @fn runs on another thread, so the
 *            caller must not touch what @arg points to until the reply.
 * Thread:    actor.
 * Return:    TR_OK (exactly one reply follows, or the result is freed if
 *            the actor stopped first), TR_EINVAL, TR_ENOMEM, TR_ECLOSED.
 */
TR_API tr_err tr_blocking(tr_ctx *cx, tr_blocking_fn fn, void *arg,
			  uint32_t reply_type, tr_free_fn free_fn);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTOR_H */
