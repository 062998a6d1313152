#ifndef TROUPE_RUNTIME_H
#define TROUPE_RUNTIME_H

/*
 * The runtime: workers, lifecycle, and the contexts other threads use to
 * talk to actors: the runtime's own (tr_runtime_ctx), and an inbox's,
 * which can also receive replies (tr_inbox_ctx).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/msg.h>
#include <troupe/pid.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct tr_config - Runtime settings. Start from tr_config_default().
 * @size:             sizeof(tr_config), an ABI guard
 * @workers:          scheduler threads; 0 = number of online cores
 * @batch:            messages an actor handles per turn before it yields;
 *                    0 = 100
 * @slow_handler_us:  a handler that runs longer than this is counted in
 *                    the slow_handlers metric; 0 = 10000 (10 ms)
 * @blocking_threads: threads of the tr_blocking() pool; 0 = 4
 * @max_msg_size:     largest payload accepted by a send; 0 = 64 MiB
 * @spin_us:          how long an idle worker looks for work before it
 *                    sleeps; 0 = 50
 * @io_threads:       I/O threads, each running its own libuv loop; timers
 *                    and TCP connections are spread over them, signals
 *                    and name resolution use the first; 0 = 1, at most
 *                    64. Child processes always have one more loop and
 *                    thread of their own, so starting one never holds up
 *                    a timer or a socket.
 * @io_dedicated:     nonzero: only the I/O threads run their loops. By
 *                    default (0) an idle worker polls a loop itself, so
 *                    that a read, the turn it causes and the reply run on
 *                    one thread; the I/O thread takes the loop over when
 *                    no worker has polled it for a millisecond or two. No user
 * code runs inside a loop either way.
 * @stop_drain_ms:    how long a runtime stop lets each actor handle what
 *                    was queued for it before its stop; after that the
 *                    stop overtakes what is left (dead letters), so a stop
 *                    is bounded by this plus the longest single handler;
 *                    0 = 5000
 * @pin_workers:      nonzero: worker i runs only on the i-th CPU this
 *                    process may use (round robin past the last), as
 *                    Pony's --ponypin; the monitor, I/O and blocking
 *                    threads are not pinned. A woken worker then never
 *                    queues behind a busy one on the same core, which a
 *                    kernel that does not look for an idle core on wake-up
 *                    can leave it doing for milliseconds. Off by default:
 *                    two processes pinned alike would share their first
 *                    cores while the others idle.
 */
typedef struct tr_config {
	size_t size;
	unsigned workers;
	unsigned batch;
	unsigned slow_handler_us;
	unsigned blocking_threads;
	size_t max_msg_size;
	unsigned spin_us;
	unsigned io_threads;
	unsigned io_dedicated;
	unsigned stop_drain_ms;
	unsigned pin_workers;
} tr_config;

/** tr_config_default() - Defaults, with .size set. Thread: any. */
TR_API tr_config tr_config_default(void);

/**
 * tr_runtime_create() - Make a runtime (no thread runs yet).
 * @cfg: settings; NULL means tr_config_default()
 * @out: the new runtime
 *
 * Thread:    setup.
 * Return:    TR_OK, TR_EINVAL (bad @cfg), TR_ENOMEM.
 */
TR_API tr_err tr_runtime_create(const tr_config *cfg, tr_runtime **out);

/**
 * tr_runtime_start() - Start the worker and blocking-pool threads.
 * Actors may be spawned before this; they run once it is called.
 * Thread:    setup.
 * Return:    TR_OK, TR_ESTATE (already started), TR_ESYS (a thread could
 *            not be created; nothing is left running).
 */
TR_API tr_err tr_runtime_start(tr_runtime *rt);

/**
 * tr_runtime_stop() - Begin a graceful stop: spawns fail with TR_ECLOSED
 * from now on, and every actor gets a stop (reason TR_EXIT_SHUTDOWN)
 * behind the messages already queued for it; messages queued after it are
 * counted as dead letters. An actor still alive cfg.stop_drain_ms after
 * the stop began gets a stop that overtakes its queue (see tr_stop()), so
 * a stop is never stuck behind a backlog: it takes at most that long plus
 * the longest single handler. Returns at once; tr_runtime_join() waits.
 * Calling it more than once is harmless.
 * Thread:    any (also from a handler).
 */
TR_API void tr_runtime_stop(tr_runtime *rt);

/**
 * tr_runtime_join() - Wait for a stop and for it to finish. Blocks until
 * someone calls tr_runtime_stop() (this thread before joining, another
 * thread, or a handler), then until every actor stopped, every message
 * was handled or counted as a dead letter, and every thread is joined.
 * Thread:    setup (not from a handler: debug builds abort on that).
 * Return:    TR_OK, or TR_ESTATE when the runtime was never started or
 *            when called from a handler.
 */
TR_API tr_err tr_runtime_join(tr_runtime *rt);

/**
 * tr_runtime_wait_idle() - Wait until the runtime is quiescent: no
 * message queued or being handled, no blocking call running, every worker
 * idle.
 * @timeout_ms: how long to wait; negative waits forever
 *
 * Thread:    any thread that is not a worker (debug builds abort on a
 *            worker; use tr_runtime_on_worker() to tell).
 * Return:    TR_OK; TR_ETIMEDOUT; TR_ESTATE if not started; TR_EINVAL on
 *            a worker.
 */
TR_API tr_err tr_runtime_wait_idle(tr_runtime *rt, int64_t timeout_ms);

/**
 * tr_runtime_destroy() - Free the runtime. Stops and joins it first if it
 * is still running. NULL is a no-op.
 * Thread:    setup (from a handler it does nothing; debug builds abort).
 */
TR_API void tr_runtime_destroy(tr_runtime *rt);

/**
 * tr_runtime_on_worker() - True when the calling thread is one of @rt's
 * workers, that is inside a handler, where calls that wait for the
 * runtime (join, wait_idle, a tr_inbox_recv that
 * waits) must not be made.
 * Thread:    any.
 */
TR_API bool tr_runtime_on_worker(const tr_runtime *rt);

/** tr_runtime_workers() - Number of worker threads. Thread: any. */
TR_API unsigned tr_runtime_workers(const tr_runtime *rt);

/**
 * tr_runtime_ctx() - The context of a thread that is neither an actor nor
 * the owner of an inbox: with it, code outside any actor makes the calls
 * an actor makes, where they make sense without an actor. Messages sent
 * through it have no sender (m->from is TR_PID_NONE), so nothing can
 * answer them.
 * @rt: the runtime; NULL gives NULL
 *
 * What works: tr_send(), tr_send_ptr(), tr_spawn(), tr_stop() and tr_exit()
 * (as if sent by nobody), and tr_ctx_runtime(). A call made on one of
 * @rt's workers (from a handler, through library code, say) goes through
 * that worker, as the running actor's own sends do. What needs an actor
 * or an inbox returns TR_EINVAL, and does nothing else: tr_request() and
 * tr_request_ptr() (no one would receive the outcome: use an inbox's
 * context, tr_inbox_ctx()), tr_reply(), tr_reply_ptr(), tr_forward(),
 * tr_spawn_link(), tr_spawn_monitor(), tr_link(), tr_unlink(),
 * tr_monitor(), tr_demonitor(), tr_become(), tr_blocking(), timers, TCP
 * and child processes; tr_self() and tr_sender() give TR_PID_NONE,
 * tr_msg_take_ptr() NULL, tr_should_yield() false, and tr_stop_self() and
 * tr_trap_exit() do nothing.
 *
 * There is one such context per runtime, shared by every thread: none of
 * these calls changes it, so unlike Pony's ponyint_register_thread() no
 * thread registers first.
 * Thread:    any; the context lives as long as @rt.
 */
TR_API tr_ctx *tr_runtime_ctx(tr_runtime *rt);

/**
 * tr_actor_alive() - Whether @pid names a local actor that has not stopped.
 *
 * The answer can be stale as soon as it is returned (the actor may stop
 * right after), so use it for bookkeeping such as taking over a name, not
 * to decide whether a send will arrive.
 * Thread:    any.
 * Return:    true or false (false for TR_PID_NONE and remote pids).
 */
TR_API bool tr_actor_alive(tr_runtime *rt, tr_pid pid);

/**
 * tr_mailbox_len() - Messages waiting in the mailbox of @pid.
 * @out: set to the count
 *
 * Only mailboxes with a bound (tr_actor_def.mailbox_bound) are counted;
 * counting every mailbox would cost an atomic operation per message on
 * both sides. An actor that should be measurable without a real limit
 * gets the bound UINT32_MAX. The count is a snapshot.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (not a live local actor); TR_ESTATE (its
 *            mailbox has no bound, so it is not counted); TR_EINVAL.
 */
TR_API tr_err tr_mailbox_len(tr_runtime *rt, tr_pid pid, uint32_t *out);

/*
 * Inbox: a mailbox that a non-actor thread reads, for replies and tests.
 * It is an actor (it has a pid, it can be linked and monitored); its
 * messages are queued for tr_inbox_recv() instead of a handler.
 */
typedef struct tr_inbox tr_inbox;

/**
 * struct tr_received - One message taken from an inbox (fields as in
 * struct tr_msg; TR_MSG_AS() reads its payload).
 * @type, @from, @flags, @ref: as in tr_msg
 * @data: payload (a private copy, or the handed-over pointer)
 * @size: payload size
 *
 * Ownership: the caller owns it; release with tr_received_fini().
 */
typedef struct tr_received {
	uint32_t type;
	uint32_t flags;
	tr_pid from;
	tr_ref ref;
	void *data;
	size_t size;
	tr_free_fn free_fn; /* private: how data is freed */
} tr_received;

/**
 * tr_inbox_create() - Make an inbox actor.
 * Thread:    any.
 * Return:    TR_OK, TR_ENOMEM, TR_ECLOSED.
 */
TR_API tr_err tr_inbox_create(tr_runtime *rt, tr_inbox **out);

/**
 * tr_inbox_recv() - Take a message, waiting up to @timeout_ms: the oldest
 * one, or the outcome of one request. A blocking request is tr_request()
 * on tr_inbox_ctx(@ib), then tr_inbox_recv(@ib, &ref, ...).
 * @ib:         the inbox
 * @ref:        NULL for the oldest message; otherwise the reference of a
 *              request made on tr_inbox_ctx(@ib), and only its outcome
 *              (the reply, or TR_MSG_REQUEST_FAILED, with TR_MSG_F_REPLY)
 *              is taken: other messages stay queued, in order
 * @timeout_ms: negative waits without limit (for an outcome, the
 *              request's own timeout bounds that, if it has one); 0 does
 *              not wait
 * @out:        the message
 *
 * A request's own timeout is enforced by the receives of its inbox: a
 * receive first turns every request whose deadline passed into its
 * TR_MSG_REQUEST_FAILED outcome. Giving up here (TR_ETIMEDOUT) leaves
 * the request open. The inbox's pid, the sender its messages show, is
 * tr_self(tr_inbox_ctx(@ib)).
 * Thread:    any (one reader at a time), outside handlers; on a worker
 *            only with @timeout_ms 0 (waiting there is misuse: debug
 *            builds abort, release builds return TR_EINVAL).
 * Return:    TR_OK and *out filled; TR_ETIMEDOUT; TR_ECLOSED when the
 *            inbox actor stopped and nothing (or not that outcome) is
 *            left; TR_EINVAL (also a zero @ref->v).
 */
TR_API tr_err tr_inbox_recv(tr_inbox *ib, const tr_ref *ref, int64_t timeout_ms,
			    tr_received *out);

/**
 * tr_inbox_ctx() - The context of the thread that uses @ib: with it that
 * thread calls what an actor calls, as the inbox's actor (tr_self() is the
 * inbox's pid and replies come to the inbox): tr_send(), tr_send_ptr(),
 * tr_spawn(), tr_request(), tr_request_ptr(), tr_reply(), tr_reply_ptr().
 * Calls that change an actor's own state or act for it (tr_link(),
 * tr_monitor(), tr_trap_exit(), tr_become(), tr_forward(), tr_blocking(),
 * timers, TCP and child processes) return TR_EINVAL with it;
 * tr_stop_self() does nothing (tr_inbox_destroy() stops the inbox). To
 * answer a request the thread received, pass tr_reply() a tr_msg with the
 * received message's from, ref and flags.
 * @ib: the inbox; NULL gives NULL
 *
 * Thread: one thread at a time, the one that receives from @ib; the
 * context lives as long as the inbox.
 */
TR_API tr_ctx *tr_inbox_ctx(tr_inbox *ib);

/** tr_received_fini() - Free a received payload. Zeroed: no-op. Thread: any. */
TR_API void tr_received_fini(tr_received *r);

/**
 * tr_inbox_destroy() - Stop the inbox actor and free it; messages still
 * queued are freed. NULL is a no-op.
 * Thread:    any (not concurrently with tr_inbox_recv on the same inbox).
 */
TR_API void tr_inbox_destroy(tr_inbox *ib);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_RUNTIME_H */
