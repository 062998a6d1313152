#ifndef TROUPE_ACTORS_BREAKER_H
#define TROUPE_ACTORS_BREAKER_H

/*
 * Circuit breaker: stop calling a dependency that keeps failing, and try
 * it again after a while (resilience4j's CircuitBreaker, Polly's circuit
 * breaker, Erlang's fuse).
 *
 * A breaker is a thread-safe object, not an actor: callers ask
 * tr_breaker_allow() before a call and report with tr_breaker_record()
 * after it, so an open breaker rejects at once, without a round trip.
 *
 *   CLOSED    calls pass; N consecutive failures, or a failure rate at or
 *             above a threshold over the last M calls (once at least a
 *             minimum number were made), open it.
 *   OPEN      calls are rejected (TR_EREJECTED) until the recovery time
 *             has passed; the first tr_breaker_allow() or
 *             tr_breaker_current() after that moves it to HALF_OPEN.
 *   HALF_OPEN a fixed number of trial calls pass, the rest are rejected;
 *             when every trial succeeded it closes, when one fails it
 *             opens again with a fresh recovery time.
 *
 * Every change of state is sent, as TR_MSG_BREAKER_STATE, to each
 * subscribed pid, numbered without gaps.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the circuit breaker module. */
#define TR_MSG_BREAKER_BASE (TR_MSG_ACTORS_BASE + 0x600u)

/** How an allowed call ended (tr_breaker_record()). */
typedef enum tr_breaker_outcome {
	TR_BREAKER_FAILURE = 0,
	TR_BREAKER_SUCCESS = 1,
	TR_BREAKER_RELEASED = 2,
} tr_breaker_outcome;

/**
 * TR_MSG_BREAKER_STATE - A breaker changed state. Payload:
 * struct tr_breaker_change. The sender is TR_PID_NONE.
 */
#define TR_MSG_BREAKER_STATE (TR_MSG_BREAKER_BASE + 0x00u)

/** States of a breaker. */
typedef enum tr_breaker_state {
	TR_BREAKER_CLOSED = 0,
	TR_BREAKER_OPEN = 1,
	TR_BREAKER_HALF_OPEN = 2,
} tr_breaker_state;

/**
 * tr_breaker_clock_fn - A clock in milliseconds that never goes back.
 * Called with the breaker's lock held: it must not call the breaker.
 */
typedef uint64_t (*tr_breaker_clock_fn)(void *arg);

/**
 * struct tr_breaker_config - How a breaker trips and recovers.
 * @size:              sizeof(tr_breaker_config), an ABI guard
 * @failure_threshold: consecutive failures that open it; 0 = rule off
 * @window:            the failure-rate rule looks at the last @window
 *                     recorded calls (at most 65536); 0 = rule off
 * @min_calls:         the rate rule applies once the window holds at
 *                     least this many calls (at most @window); 0 means
 *                     @window
 * @failure_rate_pct:  open when failures * 100 >= pct * calls in the
 *                     window; 1 to 100 (ignored when the rule is off)
 * @recovery_ms:       time in OPEN before trials are let through
 * @half_open_trials:  trial calls let through in HALF_OPEN, at least 1
 * @id:                any value, copied into every state message so that
 *                     a subscriber of several breakers can tell them apart
 * @clock:             time source in ms; NULL = CLOCK_MONOTONIC
 * @clock_arg:         passed to @clock
 *
 * At least one of the two rules must be on.
 */
typedef struct tr_breaker_config {
	size_t size;
	uint32_t failure_threshold;
	uint32_t window;
	uint32_t min_calls;
	uint32_t failure_rate_pct;
	uint64_t recovery_ms;
	uint32_t half_open_trials;
	uint64_t id;
	tr_breaker_clock_fn clock;
	void *clock_arg;
} tr_breaker_config;

/**
 * struct tr_breaker_change - Payload of TR_MSG_BREAKER_STATE.
 * @id:    the breaker's configured id
 * @seq:   1 for the first change of this breaker, then one more for each
 *         change: a subscriber sees a gap only if it subscribed late or
 *         a send to it failed
 * @from:  old state (tr_breaker_state)
 * @to:    new state
 * @at_ms: the breaker's clock when it changed
 */
typedef struct tr_breaker_change {
	uint64_t id;
	uint64_t seq;
	uint32_t from;
	uint32_t to;
	uint64_t at_ms;
} tr_breaker_change;

/**
 * struct tr_breaker_stats - Counters, for monitoring and tests.
 * @size:        sizeof(tr_breaker_stats), set by the caller
 * @state:       current state (tr_breaker_state)
 * @changes:     state changes so far (the last @seq sent)
 * @allowed:     calls tr_breaker_allow() let through
 * @rejected:    calls it rejected
 * @successes:   successes recorded
 * @failures:    failures recorded
 * @stale:       records ignored because the breaker changed state since
 *               their call was allowed
 * @send_errors: state messages a subscriber could not be sent
 * @released:    allowed calls given back without an outcome
 *               (TR_BREAKER_RELEASED)
 */
typedef struct tr_breaker_stats {
	size_t size;
	uint32_t state;
	uint64_t changes;
	uint64_t allowed;
	uint64_t rejected;
	uint64_t successes;
	uint64_t failures;
	uint64_t stale;
	uint64_t send_errors;
	uint64_t released;
} tr_breaker_stats;

typedef struct tr_breaker tr_breaker;

/**
 * tr_breaker_create() - Make a breaker, CLOSED.
 * @rt:  runtime used to send state messages; may be NULL when nobody
 *       subscribes
 * @cfg: settings (copied)
 * @out: the breaker
 *
 * Ownership: the caller owns *@out; free it with tr_breaker_destroy().
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (NULL @cfg or @out, small @cfg->size, no
 *            rule on, @min_calls above @window, @window above 65536,
 *            @failure_rate_pct not in 1..100 with the rate rule on,
 *            @half_open_trials 0); TR_ENOMEM.
 */
TR_API tr_err tr_breaker_create(tr_runtime *rt, const tr_breaker_config *cfg,
				tr_breaker **out);

/**
 * tr_breaker_destroy() - Free a breaker. Subscribers are not told. NULL
 * is a no-op.
 * Ownership: frees @b; messages already sent stay with their receivers.
 * Thread:    any, once no other thread uses the breaker.
 * Return:    nothing; it cannot fail.
 */
TR_API void tr_breaker_destroy(tr_breaker *b);

/**
 * tr_breaker_allow() - May a call go ahead now?
 * @b:      the breaker
 * @ticket: on TR_OK the ticket to pass to tr_breaker_record(); 0 on
 *          TR_EREJECTED
 *
 * Every allowed call must end in exactly one tr_breaker_record(), with
 * TR_BREAKER_RELEASED if it has no outcome: in HALF_OPEN the breaker
 * waits for each trial.
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK; TR_EREJECTED (OPEN, or HALF_OPEN with every trial
 *            taken); TR_EINVAL (NULL argument).
 */
TR_API tr_err tr_breaker_allow(tr_breaker *b, uint64_t *ticket);

/**
 * tr_breaker_record() - End an allowed call with its outcome.
 * @b:       the breaker
 * @ticket:  what tr_breaker_allow() gave for the call
 * @outcome: TR_BREAKER_SUCCESS, TR_BREAKER_FAILURE, or TR_BREAKER_RELEASED
 *           for a call that will have no outcome (its caller stopped, or
 *           gave up before the call was made)
 *
 * A success or failure counts toward the breaker's decisions. A released
 * call counts as neither: in HALF_OPEN its trial's place is freed, so
 * another call may try, instead of the breaker waiting for an outcome
 * that will never come (an Erlang-style caller that crashed mid-call,
 * say). An outcome whose ticket comes from an earlier state (the breaker
 * changed state while the call ran) is ignored and counted as stale, as
 * in sony/gobreaker's generations: a slow call from before the breaker
 * opened must not decide a half-open trial. A NULL @b, a zero ticket or
 * an unknown @outcome is ignored.
 * Ownership: none.
 * Thread:    any.
 * Return:    nothing: an outcome that does not count is not an error.
 */
TR_API void
tr_breaker_record(tr_breaker *b, uint64_t ticket, tr_breaker_outcome outcome);

/**
 * tr_breaker_current() - The current state. Like tr_breaker_allow(), it
 * moves an OPEN breaker whose recovery time has passed to HALF_OPEN (and
 * publishes that), so a periodic call, for example from a timer, makes
 * that change eager instead of waiting for the next call.
 * Ownership: none.
 * Thread:    any.
 * Return:    the state; TR_BREAKER_CLOSED for NULL.
 */
TR_API tr_breaker_state tr_breaker_current(tr_breaker *b);

/**
 * tr_breaker_subscribe() - Send every later state change to @pid.
 * Ownership: none. The breaker does not watch @pid: a subscriber that
 *            stops turns its messages into dead letters until it is
 *            unsubscribed.
 * Thread:    any.
 * Return:    TR_OK; TR_EEXIST (already subscribed); TR_EINVAL (NULL @b,
 *            TR_PID_NONE, or a breaker made without a runtime);
 *            TR_ENOMEM.
 */
TR_API tr_err tr_breaker_subscribe(tr_breaker *b, tr_pid pid);

/**
 * tr_breaker_unsubscribe() - Stop sending state changes to @pid; none is
 * sent after this returns.
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (not subscribed); TR_EINVAL (NULL @b).
 */
TR_API tr_err tr_breaker_unsubscribe(tr_breaker *b, tr_pid pid);

/**
 * tr_breaker_snapshot() - Fill @out (@out->size must be set) with the
 * counters, after applying a due OPEN to HALF_OPEN change.
 * Ownership: none (@out is the caller's).
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL for a NULL @b or @out, or a small
 *            @out->size.
 */
TR_API tr_err tr_breaker_snapshot(tr_breaker *b, tr_breaker_stats *out);

/**
 * tr_breaker_state_name() - Name of a tr_breaker_state.
 * Ownership: none.
 * Thread:    any.
 * Return:    a static string: "closed", "open", "half-open", or "?" for
 *            anything else.
 */
TR_API const char *tr_breaker_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_BREAKER_H */
