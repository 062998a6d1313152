/*
 * Timers (<troupe/timer.h>): one-shot timers fire in order of their
 * delays and not early, periodic timers repeat until cancelled, a
 * cancelled timer sends nothing, a stopped owner's timers send nothing,
 * bad input is refused, and a runtime stops promptly with timers armed
 * (ASan checks that nothing leaks).
 */
#include <troupe/troupe.h>

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "fixture.h"

enum {
	MSG_GO = 1,
	MSG_TICK,   /* timer payload: uint64_t tag */
	MSG_REPORT, /* to the probe: struct report */
	MSG_DONE,
};

static uint64_t
now_ms(void)
{
	return harness_now_ms();
}

/* ---- order and tolerance ------------------------------------------------ */

#define N_ORDER 5
static const uint64_t order_delays[N_ORDER] = { 80, 20, 60, 40, 100 };

struct order_state {
	tr_pid probe;
	uint64_t t0;
	unsigned n;
	uint64_t got[N_ORDER];
	uint64_t at[N_ORDER];
};

struct order_report {
	uint64_t got[N_ORDER];
	uint64_t at[N_ORDER];
	int32_t err;
};

static void
order_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct order_state *s = state;

	if (m->type == MSG_GO) {
		s->probe = tr_sender(cx);
		s->t0 = now_ms();
		for (unsigned i = 0; i < N_ORDER; i++) {
			tr_err err = tr_send_after(cx, tr_self(cx), MSG_TICK,
						   &order_delays[i],
						   sizeof(uint64_t),
						   order_delays[i], NULL);
			if (err < 0) {
				struct order_report r = { .err = err };
				(void)tr_send(cx, s->probe, MSG_REPORT, &r,
					      sizeof(r));
				return;
			}
		}
		return;
	}
	if (m->type == MSG_TICK && s->n < N_ORDER) {
		memcpy(&s->got[s->n], m->data, sizeof(uint64_t));
		s->at[s->n] = now_ms() - s->t0;
		if (++s->n == N_ORDER) {
			struct order_report r;
			memcpy(r.got, s->got, sizeof(r.got));
			memcpy(r.at, s->at, sizeof(r.at));
			r.err = 0;
			(void)tr_send(cx, s->probe, MSG_REPORT, &r, sizeof(r));
		}
	}
}

static const tr_actor_def order_def = {
	.size = sizeof(tr_actor_def),
	.name = "order",
	.state_size = sizeof(struct order_state),
	.handle = order_handle,
};

static void
test_order_and_tolerance(void)
{
	struct fx f;
	struct order_report r;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &order_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_OK(r.err);
	for (unsigned i = 0; i < N_ORDER; i++) {
		/* Sorted: 20, 40, 60, 80, 100. */
		CHECK_EQ_U64(r.got[i], 20 * (i + 1));
		/* Never early; late by at most 250 ms even under TSan. */
		CHECK(r.at[i] + 1 >= r.got[i]);
		CHECK(r.at[i] <= r.got[i] + 250);
		printf("  timer %3" PRIu64 " ms fired after %3" PRIu64 " ms\n",
		       r.got[i], r.at[i]);
	}
	fx_finish(&f);
}

/* ---- periodic, cancel ------------------------------------------------------ */

struct ticker {
	tr_pid probe;
	tr_timer_id id;
	uint32_t ticks;
	uint32_t stop_after;
	bool stop_self; /* stop the actor instead of cancelling */
};

static _Atomic uint32_t ticks_seen;

static void
ticker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct ticker *t = state;

	if (m->type == MSG_GO) {
		memcpy(&t->stop_after, m->data, sizeof(t->stop_after));
		t->stop_self = t->stop_after >= 1000;
		t->stop_after %= 1000;
		t->probe = tr_sender(cx);
		int32_t err = tr_send_every(cx, tr_self(cx), MSG_TICK, NULL, 0,
					    10, &t->id);
		if (err < 0) {
			(void)tr_send(cx, t->probe, MSG_DONE, &err, sizeof(err));
		}
		return;
	}
	if (m->type != MSG_TICK) {
		return;
	}
	atomic_fetch_add(&ticks_seen, 1);
	if (++t->ticks == t->stop_after) {
		int32_t err = 0;
		if (t->stop_self) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
		} else {
			err = tr_timer_cancel(cx, t->id);
		}
		(void)tr_send(cx, t->probe, MSG_DONE, &err, sizeof(err));
	}
}

static const tr_actor_def ticker_def = {
	.size = sizeof(tr_actor_def),
	.name = "ticker",
	.state_size = sizeof(struct ticker),
	.handle = ticker_handle,
};

static void
run_ticker(bool stop_self)
{
	struct fx f;
	int32_t err = -100;
	uint32_t stop_after = 5 + (stop_self ? 1000 : 0);

	atomic_store(&ticks_seen, 0);
	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &ticker_def, NULL);
	SEND(&f, a, MSG_GO, &stop_after, sizeof(stop_after));
	CHECK(fx_recv(&f, MSG_DONE, &err, sizeof(err)));
	CHECK_OK(err);
	CHECK_EQ_U64(atomic_load(&ticks_seen), 5);
	tr_metrics m0 = fx_metrics(&f);
	/* Ten more periods: a live timer would tick (or, to a stopped
	 * owner, make dead letters). At most one tick may have been in
	 * flight when the cancel reached the I/O thread. */
	harness_nap_us(100000);
	tr_metrics m1 = fx_metrics(&f);
	uint32_t after = atomic_load(&ticks_seen) - 5;
	printf("  ticks after %s: %u, dead letters %" PRIu64 "\n",
	       stop_self ? "the owner stopped" : "cancel", after,
	       m1.dead_letters - m0.dead_letters);
	CHECK(after <= 1);
	CHECK(m1.dead_letters - m0.dead_letters <= 1);
	fx_finish(&f);
}

static void
test_periodic_then_cancel(void)
{
	run_ticker(false);
}

static void
test_owner_stop_ends_its_timers(void)
{
	run_ticker(true);
}

/* ---- one-shot cancel, bad input, shutdown with timers armed -------------- */

struct misc_result {
	int32_t err[8];
};

static void
misc_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_GO) {
		return;
	}
	tr_pid probe = tr_sender(cx);
	struct misc_result r;
	char big[TR_TIMER_MAX_PAYLOAD + 1];
	tr_timer_id id = { 0 };
	uint64_t tag = 1;

	memset(&r, 0, sizeof(r));
	memset(big, 0, sizeof(big));
	/* A 50 ms timer to the probe, cancelled at once: never arrives. */
	r.err[0] = tr_send_after(cx, probe, MSG_TICK, &tag, sizeof(tag), 50,
				 &id);
	r.err[1] = tr_timer_cancel(cx, id);
	r.err[2] = tr_send_every(cx, probe, MSG_TICK, NULL, 0, 0, NULL);
	r.err[3] = tr_send_after(cx, TR_PID_NONE, MSG_TICK, NULL, 0, 1, NULL);
	r.err[4] = tr_send_after(cx, probe, TR_MSG_SYSTEM_BASE, NULL, 0, 1,
				 NULL);
	r.err[5] = tr_send_after(cx, probe, MSG_TICK, big, sizeof(big), 1,
				 NULL);
	/* Armed for 10 s: the runtime must stop without waiting for it. */
	tag = 2;
	r.err[6] = tr_send_after(cx, probe, MSG_TICK, &tag, sizeof(tag),
				 10000, NULL);
	r.err[7] = tr_send_every(cx, tr_self(cx), MSG_GO + 100, NULL, 0,
				 5000, NULL);
	(void)tr_send(cx, probe, MSG_REPORT, &r, sizeof(r));
}

static const tr_actor_def misc_def = {
	.size = sizeof(tr_actor_def),
	.name = "misc",
	.handle = misc_handle,
};

static void
test_cancel_bad_input_and_shutdown(void)
{
	struct fx f;
	struct misc_result r;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &misc_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_OK(r.err[0]);
	CHECK_OK(r.err[1]);
	CHECK_ERR(r.err[2], TR_EINVAL);
	CHECK_ERR(r.err[3], TR_EINVAL);
	CHECK_ERR(r.err[4], TR_EINVAL);
	CHECK_ERR(r.err[5], TR_EMSGSIZE);
	CHECK_OK(r.err[6]);
	CHECK_OK(r.err[7]);
	/* The cancelled 50 ms timer must not arrive. */
	CHECK(fx_recv_none(&f, 200));
	uint64_t t0 = now_ms();
	fx_finish(&f);
	uint64_t took = now_ms() - t0;
	printf("  stop with timers armed took %" PRIu64 " ms\n", took);
	CHECK(took < 5000);
}

/* ---- a full bounded mailbox ---------------------------------------------- */

/*
 * An actor with a mailbox bound of 4 arms a 10 ms one-shot and a 2 ms
 * periodic timer, fills its own mailbox and stays in its handler for
 * 60 ms, so both timers fire at a full mailbox. The one-shot (a timeout,
 * typically) must still arrive; the ticks are dropped and counted.
 */
enum { MSG_FILL = 50, MSG_ONESHOT, MSG_EVERY, BOUND = 4 };

struct full_state {
	tr_pid probe;
	unsigned fills, ticks;
	int32_t fill_err;
};

struct full_report {
	unsigned fills, ticks;
	int32_t fill_err;
};

static void
full_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct full_state *s = state;

	switch (m->type) {
	case MSG_GO: {
		s->probe = tr_sender(cx);
		CHECK_OK(tr_send_after(cx, tr_self(cx), MSG_ONESHOT, NULL, 0, 10,
				       NULL));
		CHECK_OK(tr_send_every(cx, tr_self(cx), MSG_EVERY, NULL, 0, 2,
				       NULL));
		for (unsigned i = 0; i < BOUND; i++) {
			CHECK_OK(tr_send(cx, tr_self(cx), MSG_FILL, NULL, 0));
		}
		/* The mailbox is full now: one more is refused. */
		s->fill_err = tr_send(cx, tr_self(cx), MSG_FILL, NULL, 0);
		uint64_t until = now_ms() + 60;
		while (now_ms() < until) {
			/* busy: both timers fire meanwhile */
		}
		break;
	}
	case MSG_FILL:
		s->fills++;
		break;
	case MSG_EVERY:
		s->ticks++;
		break;
	case MSG_ONESHOT: {
		struct full_report r = { s->fills, s->ticks, s->fill_err };
		(void)tr_send(cx, s->probe, MSG_REPORT, &r, sizeof(r));
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def full_def = {
	.size = sizeof(tr_actor_def),
	.name = "full",
	.state_size = sizeof(struct full_state),
	.mailbox_bound = BOUND,
	.handle = full_handle,
};

static void
test_full_mailbox_oneshot_arrives_ticks_drop(void)
{
	struct fx f;
	struct full_report r;

	fx_start(&f, 2);
	uint64_t full0 = fx_metrics(&f).mailbox_full;
	tr_pid a = fx_spawn(&f, &full_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_ERR(r.fill_err, TR_EFULL);
	/* The one-shot came after the four that filled the mailbox. */
	CHECK_EQ_U64(r.fills, BOUND);
	uint64_t full = fx_metrics(&f).mailbox_full - full0;
	printf("  ticks handled %u, refused at the full mailbox %llu\n",
	       r.ticks, (unsigned long long)full);
	/* The fifth fill and at least one tick were refused. */
	CHECK(full >= 2);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "timer: one-shots fire in order of delay, never early",
	  test_order_and_tolerance },
	{ "timer: periodic until cancelled", test_periodic_then_cancel },
	{ "timer: a stopped owner's timer sends nothing",
	  test_owner_stop_ends_its_timers },
	{ "timer: cancel, bad input, stop with timers armed",
	  test_cancel_bad_input_and_shutdown },
	{ "timer: a one-shot reaches a full mailbox, ticks are dropped",
	  test_full_mailbox_oneshot_arrives_ticks_drop },
	{ NULL, NULL },
};

TEST_MAIN(tests)
