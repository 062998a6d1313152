#ifndef TROUPE_TIMER_H
#define TROUPE_TIMER_H

/*
 * Timers: a message sent to an actor after a delay, once or periodically.
 *
 * Timers run on the runtime's I/O thread (a libuv loop); a timer that
 * fires sends an ordinary copied message, so it arrives like any other.
 * A timer belongs to the actor that created it: once that actor has
 * stopped, the timer never sends again and is freed at its next expiry.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/pid.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_timer_id {
	uint64_t v;
} tr_timer_id;

/** Longest payload a timer message may carry. */
#define TR_TIMER_MAX_PAYLOAD 256

/**
 * tr_send_after() - Send a message to @to after @delay_ms milliseconds.
 * @cx:       context of the calling actor, which owns the timer
 * @to:       receiver (often tr_self(cx)); a stopped receiver makes the
 *            message a dead letter at fire time
 * @type:     message type tag, below TR_MSG_SYSTEM_BASE
 * @data:     payload copied now (at most TR_TIMER_MAX_PAYLOAD bytes)
 * @len:      payload size
 * @delay_ms: delay; 0 means on the next turn of the I/O loop
 * @out:      on success the timer id, for tr_timer_cancel(); may be NULL
 *
 * The message's sender is the owner. Timers with equal delays started by
 * one actor fire in the order they were started. The message is delivered
 * even to a full bounded mailbox (a timeout must not be lost): each
 * pending one-shot timer can exceed the bound by one message.
 * Ownership: none (the payload is copied).
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_EMSGSIZE, TR_ENOMEM, TR_ECLOSED (the
 *            runtime is stopping; no message will be sent).
 */
TR_API tr_err tr_send_after(tr_ctx *cx, tr_pid to, uint32_t type,
			    const void *data, size_t len, uint64_t delay_ms,
			    tr_timer_id *out);

/**
 * tr_send_every() - Like tr_send_after(), then again every @period_ms
 * until cancelled or until the owner stops.
 * @period_ms: first delay and period; at least 1
 *
 * Unlike a one-shot timer, a tick that a full bounded mailbox refuses is
 * dropped (counted in the mailbox_full metric), as Go's time.Ticker drops
 * ticks for a slow receiver: ticks never pile up behind a busy actor.
 *
 * Thread:    actor.
 * Return:    as tr_send_after().
 */
TR_API tr_err tr_send_every(tr_ctx *cx, tr_pid to, uint32_t type,
			    const void *data, size_t len, uint64_t period_ms,
			    tr_timer_id *out);

/**
 * tr_timer_cancel() - Stop a timer: it sends nothing after it has been
 * cancelled on the I/O thread. As with Erlang's cancel_timer, a message
 * the timer sent just before may already be queued at the receiver.
 * Cancelling a timer that already fired (one-shot), was cancelled, or
 * never existed is harmless.
 *
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_timer_cancel(tr_ctx *cx, tr_timer_id id);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_TIMER_H */
