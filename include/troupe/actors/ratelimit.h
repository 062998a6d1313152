#ifndef TROUPE_ACTORS_RATELIMIT_H
#define TROUPE_ACTORS_RATELIMIT_H

/*
 * Rate limiter: a token bucket as an actor.
 *
 * The bucket holds up to `burst` tokens and gains `rate` tokens per
 * second, measured on the monotonic clock (so grants do not drift with
 * timer delays). It starts full. Waiters are served first come, first
 * served: a small request never overtakes a larger one queued before it.
 *
 * A limiter is started with tr_ratelimit_start() and stopped like any
 * actor (tr_stop(), an exit signal, its parent's exit with is_linked, the
 * runtime's stop). Everything else is a request to its pid, made with
 * tr_request() and answered with tr_reply() under the request's
 * reference (m->ref, TR_MSG_F_REPLY), as OTP documents a gen_server's
 * calls:
 *
 * - TR_MSG_RATELIMIT_ACQUIRE, payload struct tr_ratelimit_acquire_req:
 *   take tokens; answered by a TR_MSG_RATELIMIT_REPLY;
 * - TR_MSG_RATELIMIT_STATS, no payload: the counters; answered by a
 *   TR_MSG_RATELIMIT_STATS_REPLY.
 *
 * For example, from a handler (or a thread, on tr_inbox_ctx(ib)):
 *
 *     tr_ratelimit_acquire_req q = { .tokens = 1, .max_wait_ms = 500 };
 *     tr_request(cx, limiter, TR_MSG_RATELIMIT_ACQUIRE, &q, sizeof(q),
 *                0, &ref);
 *     ...
 *     // then, for the message whose m->ref is ref:
 *     const tr_ratelimit_reply *r = TR_MSG_AS(m, tr_ratelimit_reply);
 *     if (m->type == TR_MSG_RATELIMIT_REPLY && r != NULL &&
 *         r->status == TR_OK) { ... granted ... }
 *
 * An acquire is answered at once (granted when the tokens are there and
 * nobody waits; TR_EREJECTED when the wait, computed from the tokens
 * queued ahead and the rate, would pass the request's maximum wait, or
 * the queue is full), or queued and granted when its tokens have accrued:
 * so never later than its maximum wait after the limiter took it, give or
 * take the timer's delay (about a millisecond). A synchronous "try" is an
 * acquire with max_wait_ms 0.
 *
 * The request's own timeout (tr_request()'s timeout_ms) is the caller's
 * bound on the limiter itself, not on the wait for tokens: 0 (no limit)
 * is safe, since the runtime fails the request if the limiter stops; a
 * finite timeout should exceed the maximum wait. The limiter cannot see a
 * request's timeout: a request that timed out while queued keeps its place
 * and takes its tokens when they come (its grant is then a counted dead
 * letter), so bound the wait with max_wait_ms, not with the timeout. A
 * queued request whose requester has stopped takes nothing: it is
 * dropped, and counted as abandoned, when it reaches the head of the
 * queue or when a new request would otherwise be refused.
 *
 * Every request gets exactly one outcome: the answer, or
 * TR_MSG_REQUEST_FAILED when the limiter stopped first (the reason it
 * stopped with for a request it had queued, TR_EXIT_NOPROC for one it had
 * not taken yet). A request it cannot understand (an unknown type, a
 * payload of the wrong size, 0 tokens or more than the burst) is answered
 * by a TR_MSG_RATELIMIT_REPLY with TR_EINVAL; a plain message (not a
 * request) is counted in tr_ratelimit_stats.dropped and is a dead
 * letter (tr_unhandled()), since an answer could not be matched to it.
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

/**
 * TR_MSG_RATELIMIT_ACQUIRE - Request: take tokens, now or when they come.
 * Payload: struct tr_ratelimit_acquire_req. Answer: TR_MSG_RATELIMIT_REPLY.
 */
#define TR_MSG_RATELIMIT_ACQUIRE (TR_MSG_RATELIMIT_BASE + 0x00u)

/**
 * TR_MSG_RATELIMIT_REPLY - The answer to an acquire, and to a request the
 * limiter cannot understand. Payload: struct tr_ratelimit_reply, read with
 * TR_MSG_AS(m, tr_ratelimit_reply). The sender is the limiter.
 */
#define TR_MSG_RATELIMIT_REPLY (TR_MSG_RATELIMIT_BASE + 0x01u)

/**
 * TR_MSG_RATELIMIT_STATS - Request: the limiter's counters. No payload.
 * Answer: TR_MSG_RATELIMIT_STATS_REPLY.
 */
#define TR_MSG_RATELIMIT_STATS (TR_MSG_RATELIMIT_BASE + 0x02u)

/**
 * TR_MSG_RATELIMIT_STATS_REPLY - The answer to a stats request and to the
 * start. Payload: struct tr_ratelimit_stats, read with
 * TR_MSG_AS(m, tr_ratelimit_stats). The sender is the limiter.
 */
#define TR_MSG_RATELIMIT_STATS_REPLY (TR_MSG_RATELIMIT_BASE + 0x03u)

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
 * @is_linked:   tr_ratelimit_start() links the limiter with the calling
 *               actor, its parent, so that each stops when the other
 *               fails. Only an actor can be linked (a thread's context
 *               gives TR_EINVAL). False (the default): no link
 */
typedef struct tr_ratelimit_config {
	size_t size;
	uint32_t rate;
	uint32_t burst;
	int64_t max_wait_ms;
	uint32_t max_queue;
	bool is_linked;
} tr_ratelimit_config;

/**
 * struct tr_ratelimit_acquire_req - Payload of TR_MSG_RATELIMIT_ACQUIRE.
 * @tokens:      1 to the limiter's burst
 * @max_wait_ms: longest acceptable wait from when the limiter takes the
 *               request: 0 = now or never (a "try");
 *               TR_RATELIMIT_WAIT_DEFAULT (any negative value) = the
 *               limiter's default; INT64_MAX = as long as it takes
 */
typedef struct tr_ratelimit_acquire_req {
	uint32_t tokens;
	int64_t max_wait_ms;
} tr_ratelimit_acquire_req;

/**
 * struct tr_ratelimit_reply - Payload of TR_MSG_RATELIMIT_REPLY.
 * @status:  TR_OK (the tokens are taken); TR_EREJECTED (the wait would
 *           pass the maximum, or the queue is full); TR_EINVAL (a request
 *           the limiter cannot understand: an unknown type, a payload of
 *           the wrong size, 0 tokens or more than the burst); TR_ENOMEM
 *           (the request could not be queued)
 * @tokens:  tokens requested (0 when the payload could not be read)
 * @wait_ms: TR_OK: how long the request waited at the limiter;
 *           TR_EREJECTED: how long it would have waited (UINT64_MAX when
 *           too long to compute); otherwise 0
 */
typedef struct tr_ratelimit_reply {
	int32_t status;
	uint32_t tokens;
	uint64_t wait_ms;
} tr_ratelimit_reply;

/**
 * struct tr_ratelimit_stats - Payload of TR_MSG_RATELIMIT_STATS_REPLY.
 * @tokens:    whole tokens in the bucket now (at most the burst)
 * @waiting:   requests queued now
 * @granted:   acquires granted
 * @rejected:  acquires answered with TR_EREJECTED or TR_ENOMEM
 * @invalid:   requests answered with TR_EINVAL
 * @abandoned: queued acquires dropped because their requester had
 *             stopped; their tokens were not taken
 * @dropped:   plain messages (not requests) ignored
 */
typedef struct tr_ratelimit_stats {
	uint32_t tokens;
	uint32_t waiting;
	uint64_t granted;
	uint64_t rejected;
	uint64_t invalid;
	uint64_t abandoned;
	uint64_t dropped;
} tr_ratelimit_stats;

/**
 * tr_ratelimit_start() - Start a limiter: from an actor, or from any
 * thread through its inbox's or the runtime's context. It never blocks.
 * @cx:  context of the calling actor or thread; the start's answer goes
 *       to its pid (none with tr_runtime_ctx(), which gets no answer)
 * @cfg: the limiter's settings (copied); @cfg->is_linked links it with
 *       the calling actor
 * @out: on success the limiter's pid, the address of its requests; may
 *       be NULL
 * @ref: on success the start's reference (zero with tr_runtime_ctx());
 *       may be NULL
 *
 * The start is a request with no timeout: the caller gets exactly one
 * outcome under *@ref, a TR_MSG_RATELIMIT_STATS_REPLY (zero counters, a
 * full bucket) once the limiter runs, or TR_MSG_REQUEST_FAILED if it
 * stopped before it took its start. Requests sent before that answer
 * are served after the start, in order. The settings are checked here,
 * so a limiter that starts cannot fail later. A thread that wants to wait
 * takes the answer with tr_inbox_recv(ib, &ref, -1, &r); it need not:
 * requests queue behind the start.
 * Ownership: @cfg is copied.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @cfg, a small @cfg->size, a
 *            zero rate or burst, @cfg->is_linked on a thread's context);
 *            TR_ENOMEM; TR_ECLOSED (the runtime is stopping). On error no
 *            actor was left running and no answer comes.
 */
TR_API tr_err tr_ratelimit_start(tr_ctx *cx, const tr_ratelimit_config *cfg,
				 tr_pid *out, tr_ref *ref);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_RATELIMIT_H */
