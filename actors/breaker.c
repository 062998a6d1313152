/*
 * Circuit breaker (<troupe/actors/breaker.h>): a state machine under one
 * mutex, used directly by the calling threads.
 *
 * Invariants, all under b->mu:
 * - `epoch` grows by one with every state change and equals the number
 *   of changes plus one. A ticket is the epoch in which a call was
 *   allowed; an outcome with another epoch is stale and ignored, so calls
 *   from one state never count in the next.
 * - CLOSED keeps `consecutive` failures and a ring of the last `window`
 *   outcomes (`win_n` of them, `win_fail` failures). Both are cleared on
 *   every change, so each CLOSED period judges only its own calls.
 * - HALF_OPEN lets `trials_out` calls through, at most half_open_trials,
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
	uint64_t epoch;
	uint64_t opened_at;
	uint32_t consecutive;
	uint8_t *win; /* 1 = failure; cfg.window entries */
	uint32_t win_pos;
	uint32_t win_n;
	uint32_t win_fail;
	uint32_t trials_out;
	uint32_t trials_ok;
	tr_pid *subs;
	size_t subs_n;
	size_t subs_cap;
	tr_breaker_stats stats;
};

/* The default of cfg.clock. */
static uint64_t
mono_ms(void *arg)
{
	(void)arg;
	return tr__clock_ms();
}

static uint64_t
now_ms(const tr_breaker *b)
{
	return b->cfg.clock(b->cfg.clock_arg);
}

static void
counts_clear(tr_breaker *b)
{
	b->consecutive = 0;
	b->win_pos = 0;
	b->win_n = 0;
	b->win_fail = 0;
	b->trials_out = 0;
	b->trials_ok = 0;
}

/* Change state and tell every subscriber. Caller holds b->mu. */
static void
transition(tr_breaker *b, tr_breaker_state to, uint64_t now)
{
	tr_breaker_change c = {
		.id = b->cfg.id,
		.from = (uint32_t)b->state,
		.to = (uint32_t)to,
		.at_ms = now,
	};

	b->state = to;
	b->epoch++;
	counts_clear(b);
	if (to == TR_BREAKER_OPEN) {
		b->opened_at = now;
	}
	c.seq = ++b->stats.changes;
	for (size_t i = 0; i < b->subs_n; i++) {
		if (tr_send(tr_runtime_ctx(b->rt), b->subs[i],
			    TR_MSG_BREAKER_STATE, &c, sizeof(c)) != TR_OK) {
			b->stats.send_errors++;
		}
	}
}

/* The lazy OPEN -> HALF_OPEN change. Caller holds b->mu. */
static void
maybe_half_open(tr_breaker *b, uint64_t now)
{
	if (b->state == TR_BREAKER_OPEN && now >= b->opened_at &&
	    now - b->opened_at >= b->cfg.recovery_ms) {
		transition(b, TR_BREAKER_HALF_OPEN, now);
	}
}

/* Does the CLOSED record so far call for opening? Caller holds b->mu. */
static bool
should_trip(const tr_breaker *b)
{
	const tr_breaker_config *c = &b->cfg;

	if (c->failure_threshold > 0 &&
	    b->consecutive >= c->failure_threshold) {
		return true;
	}
	if (c->window > 0 && b->win_n >= c->min_calls &&
	    (uint64_t)b->win_fail * 100u >=
		    (uint64_t)c->failure_rate_pct * b->win_n) {
		return true;
	}
	return false;
}

static void
window_push(tr_breaker *b, bool failed)
{
	uint32_t m = b->cfg.window;

	if (m == 0) {
		return;
	}
	if (b->win_n == m) {
		b->win_fail -= b->win[b->win_pos]; /* the oldest falls out */
	} else {
		b->win_n++;
	}
	b->win[b->win_pos] = failed ? 1 : 0;
	b->win_fail += failed ? 1 : 0;
	b->win_pos = (b->win_pos + 1) % m;
}

tr_err
tr_breaker_create(tr_runtime *rt, const tr_breaker_config *cfg,
		  tr_breaker **out)
{
	tr_breaker *b;

	if (cfg == NULL || out == NULL || cfg->size < sizeof(*cfg) ||
	    (cfg->failure_threshold == 0 && cfg->window == 0) ||
	    cfg->window > WINDOW_MAX || cfg->min_calls > cfg->window ||
	    (cfg->window > 0 &&
	     (cfg->failure_rate_pct == 0 || cfg->failure_rate_pct > 100)) ||
	    cfg->half_open_trials == 0) {
		return TR_EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		return TR_ENOMEM;
	}
	b->cfg = *cfg;
	b->cfg.size = sizeof(b->cfg);
	if (b->cfg.clock == NULL) {
		b->cfg.clock = mono_ms;
	}
	if (b->cfg.window > 0 && b->cfg.min_calls == 0) {
		b->cfg.min_calls = b->cfg.window;
	}
	if (b->cfg.window > 0) {
		b->win = calloc(b->cfg.window, 1);
		if (b->win == NULL) {
			free(b);
			return TR_ENOMEM;
		}
	}
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		free(b->win);
		free(b);
		return TR_ENOMEM;
	}
	b->rt = rt;
	b->state = TR_BREAKER_CLOSED;
	b->epoch = 1;
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
	free(b->win);
	free(b);
}

tr_err
tr_breaker_allow(tr_breaker *b, uint64_t *ticket)
{
	tr_err err = TR_OK;

	if (b == NULL || ticket == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	maybe_half_open(b, now_ms(b));
	switch (b->state) {
	case TR_BREAKER_CLOSED:
		break;
	case TR_BREAKER_HALF_OPEN:
		if (b->trials_out < b->cfg.half_open_trials) {
			b->trials_out++;
		} else {
			err = TR_EREJECTED;
		}
		break;
	case TR_BREAKER_OPEN:
	default:
		err = TR_EREJECTED;
		break;
	}
	if (err == TR_OK) {
		b->stats.allowed++;
		*ticket = b->epoch;
	} else {
		b->stats.rejected++;
		*ticket = 0;
	}
	pthread_mutex_unlock(&b->mu);
	return err;
}

/* A call given back without an outcome: in HALF_OPEN, a trial still
 * running frees its place (trials out include the successful ones). */
static void
release(tr_breaker *b)
{
	b->stats.released++;
	if (b->state == TR_BREAKER_HALF_OPEN && b->trials_out > b->trials_ok) {
		b->trials_out--;
	}
}

void
tr_breaker_record(tr_breaker *b, uint64_t ticket, tr_breaker_outcome outcome)
{
	if (b == NULL || ticket == 0 ||
	    (unsigned)outcome > TR_BREAKER_RELEASED) {
		return;
	}
	pthread_mutex_lock(&b->mu);
	if (ticket != b->epoch) {
		b->stats.stale++;
		pthread_mutex_unlock(&b->mu);
		return;
	}
	if (outcome == TR_BREAKER_RELEASED) {
		release(b);
		pthread_mutex_unlock(&b->mu);
		return;
	}
	bool success = outcome == TR_BREAKER_SUCCESS;
	if (success) {
		b->stats.successes++;
	} else {
		b->stats.failures++;
	}
	uint64_t now = now_ms(b);
	switch (b->state) {
	case TR_BREAKER_CLOSED:
		b->consecutive = success ? 0 : b->consecutive + 1;
		window_push(b, !success);
		if (!success && should_trip(b)) {
			transition(b, TR_BREAKER_OPEN, now);
		}
		break;
	case TR_BREAKER_HALF_OPEN:
		if (!success) {
			transition(b, TR_BREAKER_OPEN, now);
		} else if (++b->trials_ok == b->cfg.half_open_trials) {
			transition(b, TR_BREAKER_CLOSED, now);
		}
		break;
	case TR_BREAKER_OPEN:
	default:
		/* No ticket of an OPEN epoch exists: allow() rejects. */
		break;
	}
	pthread_mutex_unlock(&b->mu);
}

tr_breaker_state
tr_breaker_current(tr_breaker *b)
{
	if (b == NULL) {
		return TR_BREAKER_CLOSED;
	}
	pthread_mutex_lock(&b->mu);
	maybe_half_open(b, now_ms(b));
	tr_breaker_state s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}

tr_err
tr_breaker_subscribe(tr_breaker *b, tr_pid pid)
{
	tr_err err = TR_OK;

	if (b == NULL || b->rt == NULL || tr_pid_is_none(pid)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < b->subs_n; i++) {
		if (tr_pid_eq(b->subs[i], pid)) {
			err = TR_EEXIST;
			goto out;
		}
	}
	if (b->subs_n == b->subs_cap) {
		size_t cap = b->subs_cap == 0 ? 4 : b->subs_cap * 2;
		tr_pid *v = realloc(b->subs, cap * sizeof(*v));
		if (v == NULL) {
			err = TR_ENOMEM;
			goto out;
		}
		b->subs = v;
		b->subs_cap = cap;
	}
	b->subs[b->subs_n++] = pid;
out:
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
	for (size_t i = 0; i < b->subs_n; i++) {
		if (tr_pid_eq(b->subs[i], pid)) {
			/* Keep the order: subscribers are told in the order
			 * they subscribed. */
			memmove(&b->subs[i], &b->subs[i + 1],
				(b->subs_n - i - 1) * sizeof(*b->subs));
			b->subs_n--;
			err = TR_OK;
			break;
		}
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
	maybe_half_open(b, now_ms(b));
	*out = b->stats;
	out->size = sizeof(*out);
	out->state = (uint32_t)b->state;
	pthread_mutex_unlock(&b->mu);
	return TR_OK;
}

const char *
tr_breaker_state_name(int state)
{
	switch (state) {
	case TR_BREAKER_CLOSED:
		return "closed";
	case TR_BREAKER_OPEN:
		return "open";
	case TR_BREAKER_HALF_OPEN:
		return "half-open";
	default:
		return "?";
	}
}
