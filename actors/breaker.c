/*
 * Circuit breaker (<troupe/actors/breaker.h>): a state machine under one
 * mutex, used directly by the calling threads.
 *
 * Invariants, all under b->mu:
 * - The epoch, stats.changes + 1, grows by one with every state change.
 *   A ticket is the epoch in which a call was allowed; an outcome with
 *   another epoch is stale and ignored, so calls from one state never
 *   count in the next.
 * - `c` holds the current state's counts and is cleared on every change,
 *   so each period judges only its own calls. CLOSED keeps `consecutive`
 *   failures and a ring of the last `window` outcomes (the last
 *   min(calls, window) of `calls`, `win_fail` of them failures).
 * - HALF_OPEN lets `allowed` calls through, at most half_open_trials,
 *   and closes when `trials_ok` reaches that number.
 * - OPEN turns into HALF_OPEN lazily: the first allow(), current() or
 *   snapshot() at or after opened_at + recovery_ms makes the change.
 *
 * State messages are sent while the mutex is held. That costs a send per
 * subscriber inside the lock, but it is what keeps every subscriber's
 * messages in sequence order when several threads change the state: a
 * send from outside any actor goes straight into the receiver's mailbox,
 * so the order of the sends is the order of arrival.
 */
#include <troupe/actors/breaker.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Largest failure-rate window: a byte per call, 64 KiB at most. */
#define WINDOW_MAX 65536u

struct tr_breaker {
	tr_runtime *rt;
	tr_breaker_config cfg;
	pthread_mutex_t mu;
	/* Under mu. */
	tr_breaker_state state;
	uint64_t opened_at;
	struct {
		uint64_t calls; /* recorded in CLOSED */
		uint32_t consecutive;
		uint32_t win_fail;
		uint32_t allowed; /* compared in HALF_OPEN only */
		uint32_t trials_ok;
	} c;
	tr_pid *subs; /* in the order they subscribed */
	size_t subs_n;
	tr_breaker_stats stats;
	uint8_t win[]; /* 1 = failure; cfg.window entries */
};

/* The default of cfg.clock. */
static uint64_t
mono_ms(void *arg)
{
	(void)arg;
	return tr__clock_ns() / 1000000u;
}

static uint64_t
now_ms(const tr_breaker *b)
{
	return b->cfg.clock(b->cfg.clock_arg);
}

/* Change state and tell every subscriber. Caller holds b->mu. */
static void
transition(tr_breaker *b, tr_breaker_state to, uint64_t now)
{
	tr_breaker_change c = {
		.id = b->cfg.id,
		.seq = ++b->stats.changes,
		.from = (uint32_t)b->state,
		.to = (uint32_t)to,
		.at_ms = now,
	};

	b->state = to;
	memset(&b->c, 0, sizeof(b->c));
	b->opened_at = now; /* read in OPEN only */
	for (size_t i = 0; i < b->subs_n; i++) {
		if (tr_send(tr_runtime_ctx(b->rt), b->subs[i],
			    TR_MSG_BREAKER_STATE, &c, sizeof(c)) != TR_OK) {
			b->stats.send_errors++;
		}
	}
}

/* The lazy OPEN -> HALF_OPEN change. Caller holds b->mu. */
static void
maybe_half_open(tr_breaker *b)
{
	uint64_t now = now_ms(b);

	if (b->state == TR_BREAKER_OPEN && now >= b->opened_at &&
	    now - b->opened_at >= b->cfg.recovery_ms) {
		transition(b, TR_BREAKER_HALF_OPEN, now);
	}
}

/* Does a failure just recorded call for opening? Caller holds b->mu. */
static bool
should_trip(const tr_breaker *b)
{
	const tr_breaker_config *c = &b->cfg;
	uint64_t n = b->c.calls < c->window ? b->c.calls : c->window;

	if (b->state == TR_BREAKER_HALF_OPEN) {
		return true; /* a failed trial */
	}
	if (c->failure_threshold > 0 &&
	    b->c.consecutive >= c->failure_threshold) {
		return true;
	}
	return c->window > 0 && n >= c->min_calls &&
	       (uint64_t)b->c.win_fail * 100u >= c->failure_rate_pct * n;
}

/* Record a CLOSED outcome in the window's ring. */
static void
window_push(tr_breaker *b, bool failed)
{
	uint32_t m = b->cfg.window;

	if (m == 0) {
		return;
	}
	uint8_t *slot = &b->win[b->c.calls % m];
	if (b->c.calls >= m) {
		b->c.win_fail -= *slot; /* the oldest falls out */
	}
	*slot = failed ? 1 : 0;
	b->c.win_fail += *slot;
	b->c.calls++;
}

tr_err
tr_breaker_create(tr_runtime *rt, const tr_breaker_config *cfg,
		  tr_breaker **out)
{
	if (cfg == NULL || out == NULL || cfg->size < sizeof(*cfg) ||
	    (cfg->failure_threshold == 0 && cfg->window == 0) ||
	    cfg->window > WINDOW_MAX || cfg->min_calls > cfg->window ||
	    (cfg->window > 0 &&
	     (cfg->failure_rate_pct == 0 || cfg->failure_rate_pct > 100)) ||
	    cfg->half_open_trials == 0) {
		return TR_EINVAL;
	}
	tr_breaker *b = calloc(1, sizeof(*b) + cfg->window);
	if (b == NULL) {
		return TR_ENOMEM;
	}
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		free(b);
		return TR_ENOMEM;
	}
	b->cfg = *cfg;
	b->cfg.size = sizeof(b->cfg);
	if (b->cfg.clock == NULL) {
		b->cfg.clock = mono_ms;
	}
	if (b->cfg.min_calls == 0) {
		b->cfg.min_calls = b->cfg.window;
	}
	b->rt = rt;
	b->state = TR_BREAKER_CLOSED;
	*out = b;
	return TR_OK;
}

void
tr_breaker_destroy(tr_breaker *b)
{
	if (b == NULL) {
		return;
	}
	pthread_mutex_destroy(&b->mu);
	free(b->subs);
	free(b);
}

tr_err
tr_breaker_allow(tr_breaker *b, uint64_t *ticket)
{
	if (b == NULL || ticket == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	maybe_half_open(b);
	bool ok = b->state == TR_BREAKER_CLOSED ||
		  (b->state == TR_BREAKER_HALF_OPEN &&
		   b->c.allowed < b->cfg.half_open_trials);
	if (ok) {
		b->c.allowed++;
		b->stats.allowed++;
	} else {
		b->stats.rejected++;
	}
	*ticket = ok ? b->stats.changes + 1 : 0; /* the epoch */
	pthread_mutex_unlock(&b->mu);
	return ok ? TR_OK : TR_EREJECTED;
}

void
tr_breaker_record(tr_breaker *b, uint64_t ticket, tr_breaker_outcome outcome)
{
	if (b == NULL || ticket == 0 ||
	    (unsigned)outcome > TR_BREAKER_RELEASED) {
		return;
	}
	bool success = outcome == TR_BREAKER_SUCCESS;
	pthread_mutex_lock(&b->mu);
	/* A ticket of another epoch is stale; otherwise its state is the
	 * current one: CLOSED or HALF_OPEN, since allow() gives no ticket in
	 * OPEN. */
	if (ticket != b->stats.changes + 1) {
		b->stats.stale++;
	} else if (outcome == TR_BREAKER_RELEASED) {
		/* No outcome: a trial still running frees its place (calls
		 * allowed include the successful ones). */
		b->stats.released++;
		if (b->state == TR_BREAKER_HALF_OPEN &&
		    b->c.allowed > b->c.trials_ok) {
			b->c.allowed--;
		}
	} else if (!success) {
		b->stats.failures++;
		if (b->state == TR_BREAKER_CLOSED) {
			b->c.consecutive++;
			window_push(b, true);
		}
		if (should_trip(b)) {
			transition(b, TR_BREAKER_OPEN, now_ms(b));
		}
	} else {
		b->stats.successes++;
		if (b->state == TR_BREAKER_CLOSED) {
			b->c.consecutive = 0;
			window_push(b, false);
		} else if (++b->c.trials_ok == b->cfg.half_open_trials) {
			transition(b, TR_BREAKER_CLOSED, now_ms(b));
		}
	}
	pthread_mutex_unlock(&b->mu);
}

tr_breaker_state
tr_breaker_current(tr_breaker *b)
{
	tr_breaker_stats st = { .size = sizeof(st) };

	/* A NULL @b leaves the state 0, CLOSED. */
	(void)tr_breaker_snapshot(b, &st);
	return (tr_breaker_state)st.state;
}

/* The index of @pid among the subscribers, subs_n if it is not one. */
static size_t
sub_index(const tr_breaker *b, tr_pid pid)
{
	size_t i = 0;

	while (i < b->subs_n && !tr_pid_eq(b->subs[i], pid)) {
		i++;
	}
	return i;
}

tr_err
tr_breaker_subscribe(tr_breaker *b, tr_pid pid)
{
	tr_err err = TR_EEXIST;

	if (b == NULL || b->rt == NULL || tr_pid_is_none(pid)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	if (sub_index(b, pid) == b->subs_n) {
		/* Subscribing is rare: the list grows by one. */
		tr_pid *v = realloc(b->subs, (b->subs_n + 1) * sizeof(*v));
		err = v != NULL ? TR_OK : TR_ENOMEM;
		if (v != NULL) {
			b->subs = v;
			b->subs[b->subs_n++] = pid;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return err;
}

tr_err
tr_breaker_unsubscribe(tr_breaker *b, tr_pid pid)
{
	tr_err err = TR_ENOENT;

	if (b == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	size_t i = sub_index(b, pid);
	if (i < b->subs_n) {
		/* Keep the order: subscribers are told in the order they
		 * subscribed. */
		memmove(&b->subs[i], &b->subs[i + 1],
			(b->subs_n - i - 1) * sizeof(*b->subs));
		b->subs_n--;
		err = TR_OK;
	}
	pthread_mutex_unlock(&b->mu);
	return err;
}

tr_err
tr_breaker_snapshot(tr_breaker *b, tr_breaker_stats *out)
{
	if (b == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	maybe_half_open(b);
	*out = b->stats;
	out->size = sizeof(*out);
	out->state = (uint32_t)b->state;
	pthread_mutex_unlock(&b->mu);
	return TR_OK;
}

const char *
tr_breaker_state_name(int state)
{
	static const char *const names[] = {
		[TR_BREAKER_CLOSED] = "closed",
		[TR_BREAKER_OPEN] = "open",
		[TR_BREAKER_HALF_OPEN] = "half-open",
	};

	return state >= 0 && state <= TR_BREAKER_HALF_OPEN ? names[state] : "?";
}
