#ifndef TROUPE_ACTORS_RATELIMIT_H
#define TROUPE_ACTORS_RATELIMIT_H

/*
 * Rate limiter: a token bucket as an actor, with a synchronous try.
 *
 * The bucket holds up to `burst` tokens and gains `rate` tokens per
 * second, measured on the monotonic clock (so grants do not drift with
 * timer delays). It starts full. A request for N tokens gets exactly one
 * reply: TR_MSG_RATELIMIT_GRANT when the tokens are taken, or
 * TR_MSG_RATELIMIT_REJECT at once when the wait, computed from the tokens
 * queued ahead and the rate, would exceed the request's maximum wait.
 * Waiters are served first come, first served: a small request never
 * overtakes a larger one queued before it.
 *
 * tr_ratelimit_try() takes tokens without waiting and without a message.
 * The bucket lives in memory shared by the limiter actor and its callers,
 * under a mutex; the actor only keeps the queue of waiters and the one
 * timer for the first of them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the rate limiter module. */
#define TR_MSG_RATELIMIT_BASE (TR_MSG_ACTORS_BASE + 0x500u)

/** TR_MSG_RATELIMIT_GRANT - Tokens granted. Payload: tr_ratelimit_reply. */
#define TR_MSG_RATELIMIT_GRANT (TR_MSG_RATELIMIT_BASE + 0x00u)

/**
 * TR_MSG_RATELIMIT_REJECT - Request refused; the reply's status says why.
 * Payload: tr_ratelimit_reply.
 */
#define TR_MSG_RATELIMIT_REJECT (TR_MSG_RATELIMIT_BASE + 0x01u)

/* TR_MSG_RATELIMIT_BASE + 0x80 ... + 0xFF are the limiter's own messages. */

/** Pass as a request's @max_wait_ms to use the limiter's default. */
#define TR_RATELIMIT_WAIT_DEFAULT (-1)

/**
 * struct tr_ratelimit_config - How a limiter behaves.
 * @size:        sizeof(tr_ratelimit_config), an ABI guard
 * @rate:        tokens added per second, at least 1
 * @burst:       bucket capacity, at least 1; the bucket starts full, and
 *               no request may ask for more
 * @max_wait_ms: default maximum wait of a request; 0 means "grant now or
 *               reject"; negative means no limit
 * @max_queue:   most waiters queued at once (further requests are
 *               rejected); 0 means no limit
 */
typedef struct tr_ratelimit_config {
	size_t size;
	uint32_t rate;
	uint32_t burst;
	int64_t max_wait_ms;
	uint32_t max_queue;
} tr_ratelimit_config;

/**
 * struct tr_ratelimit_reply - Payload of GRANT and REJECT.
 * @tag:     the caller's tag from the request
 * @status:  TR_OK (GRANT); TR_EREJECTED (the wait would exceed the
 *           maximum, or the queue is full); TR_ECLOSED (the limiter
 *           stopped with the request queued)
 * @tokens:  tokens requested
 * @wait_ms: GRANT: how long the request waited at the limiter; REJECT
 *           with TR_EREJECTED: how long it would have waited
 *           (UINT64_MAX when too long to compute); otherwise 0
 *
 * Copy it out of m->data with memcpy after checking m->size.
 */
typedef struct tr_ratelimit_reply {
	uint64_t tag;
	int32_t status;
	uint32_t tokens;
	uint64_t wait_ms;
} tr_ratelimit_reply;

typedef struct tr_ratelimit tr_ratelimit;

/**
 * tr_ratelimit_create() - Start a limiter actor and return its handle.
 * @rt:  the runtime it runs in
 * @cfg: its settings (copied)
 * @out: the handle, for tr_ratelimit_acquire(), tr_ratelimit_try() and
 *       tr_ratelimit_destroy()
 *
 * Callable from a handler too (pass tr_ctx_runtime(cx)).
 * Ownership: the caller owns *@out and releases it with
 *            tr_ratelimit_destroy().
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (NULL argument, small @cfg->size, zero
 *            rate or burst); TR_ENOMEM; TR_ECLOSED (runtime stopping).
 */
TR_API tr_err tr_ratelimit_create(tr_runtime *rt,
				  const tr_ratelimit_config *cfg,
				  tr_ratelimit **out);

/**
 * tr_ratelimit_destroy() - Stop the limiter and release the handle.
 * Requests still queued get a REJECT with TR_ECLOSED; requests still on
 * their way become dead letters. NULL is a no-op.
 * Call it before tr_runtime_destroy() (after tr_runtime_join() is fine).
 * Ownership: the handle must not be used afterwards; its memory goes when
 *            the actor has stopped too.
 * Thread:    any.
 * Return:    nothing; it cannot fail.
 */
TR_API void tr_ratelimit_destroy(tr_ratelimit *rl);

/**
 * tr_ratelimit_pid() - The limiter actor's pid, to monitor it.
 * Ownership: none.
 * Thread:    any.
 * Return:    the pid; TR_PID_NONE for NULL.
 */
TR_API tr_pid tr_ratelimit_pid(const tr_ratelimit *rl);

/**
 * tr_ratelimit_acquire() - Ask for @tokens; the caller gets exactly one
 * GRANT or REJECT carrying @tag.
 * @cx:          context of the calling actor, or of a thread's inbox
 *               (tr_inbox_ctx()), which gets the reply
 * @rl:          the limiter
 * @tokens:      1 to the limiter's burst
 * @tag:         any value, returned in the reply
 * @max_wait_ms: longest acceptable wait from when the limiter sees the
 *               request: 0 = now or never; TR_RATELIMIT_WAIT_DEFAULT (any
 *               negative value) = the limiter's default; INT64_MAX
 *               waits as long as it takes
 *
 * Exactly one reply follows a TR_OK, unless the limiter stops while the
 * request is on its way (then the request is a dead letter: monitor
 * tr_ratelimit_pid() when that matters). A reply refused by a full
 * bounded mailbox is sent again later, never dropped.
 * Ownership: none; @rl must stay valid for the call.
 * Thread:    actor, or an inbox's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @rl, tr_runtime_ctx(), which
 *            has no pid for the reply, @tokens 0 or above the burst);
 *            TR_ECLOSED (the limiter stopped); as tr_send().
 */
TR_API tr_err tr_ratelimit_acquire(tr_ctx *cx, tr_ratelimit *rl,
				   uint32_t tokens, uint64_t tag,
				   int64_t max_wait_ms);

/**
 * tr_ratelimit_try() - Take @tokens now if they are there, without a
 * message. Never takes tokens while requests are queued, so it cannot
 * overtake a waiter.
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK (taken); TR_EREJECTED (not enough tokens now, or
 *            waiters queued); TR_EINVAL (NULL @rl, @tokens 0 or above
 *            the burst); TR_ECLOSED (the limiter stopped).
 */
TR_API tr_err tr_ratelimit_try(tr_ratelimit *rl, uint32_t tokens);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_RATELIMIT_H */
