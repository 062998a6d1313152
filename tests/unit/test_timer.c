/*
 * Timers (<troupe/timer.h>): one-shot timers fire in order of their
 * deadlines and not early, periodic timers repeat until cancelled, a
 * cancelled timer sends nothing, a stopped owner's timers send nothing,
 * bad input is refused, and a runtime stops with timers armed without
 * waiting for them (ASan checks that nothing leaks).
 *
 * No check bounds how late a timer is: a busy machine makes every timer
 * later. "Nothing more arrives" is shown with a later timer as a marker:
 * all timers of these tests run on the runtime's one timer loop (the
 * default of one I/O thread), which arms them in the order they were
 * started and fires them in order of deadline, so a timer that is still
 * live fires before a marker with a later deadline.
 */
#include <troupe/troupe.h>

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "fixture.h"

/* A deadline for a condition; reaching it is a failure. */
#define REPLY_MS 30000

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

/* ---- order and never early --------------------------------------------- */

/*
 * Started in this order. A later start with a shorter delay must fire
 * before the 60 s timer (a queue in start order would not); the others
 * are started in order of deadline, so their order is fixed whatever
 * the delay between the starts; equal delays fire in start order. The
 * 60 s timer cannot fire while the test runs, whatever the load.
 */
#define N_ORDER       5
#define ORDER_LONG_MS 60000u
static const uint64_t order_delays[N_ORDER] = { ORDER_LONG_MS, 20, 40, 40,
						100 };

struct order_tag {
	uint64_t delay;
	uint32_t seq;
};

struct order_state {
	tr_pid probe;
	uint64_t t0;
	tr_timer_id long_id;
	unsigned n;
	struct order_tag got[N_ORDER - 1];
	uint64_t at[N_ORDER - 1];
};

struct order_report {
	struct order_tag got[N_ORDER - 1];
	uint64_t at[N_ORDER - 1];
	int32_t err;
};

static void
order_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct order_state *s = state;

	if (m->type == MSG_GO) {
		s->probe = tr_sender(cx);
		/* Read before any start: a timer's delay runs from after it. */
		s->t0 = now_ms();
		for (unsigned i = 0; i < N_ORDER; i++) {
			struct order_tag tag = { order_delays[i], i };
			tr_err err = tr_send_after(
				cx, tr_self(cx), MSG_TICK, &tag, sizeof(tag),
				order_delays[i], i == 0 ? &s->long_id : NULL);
			if (err < 0) {
				struct order_report r = { .err = err };
				(void)tr_send(cx, s->probe, MSG_REPORT, &r,
					      sizeof(r));
				return;
			}
		}
		return;
	}
	if (m->type == MSG_TICK && s->n < N_ORDER - 1) {
		memcpy(&s->got[s->n], m->data, sizeof(struct order_tag));
		s->at[s->n] = now_ms() - s->t0;
		if (++s->n == N_ORDER - 1) {
			struct order_report r;
			memcpy(r.got, s->got, sizeof(r.got));
			memcpy(r.at, s->at, sizeof(r.at));
			r.err = tr_timer_cancel(cx, s->long_id);
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
test_order_never_early(void)
{
	struct fx f;
	struct order_report r;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &order_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_OK(r.err);
	for (unsigned i = 0; i < N_ORDER - 1; i++) {
		/* Started 2nd to 5th, they arrive in that order, all
		 * before the 60 s timer started first. */
		CHECK_EQ_U64(r.got[i].seq, i + 1);
		CHECK_EQ_U64(r.got[i].delay, order_delays[i + 1]);
		/* Never early (1 ms for the clocks' millisecond rounding). */
		CHECK(r.at[i] + 1 >= r.got[i].delay);
		printf("  timer %3" PRIu64 " ms fired after %3" PRIu64 " ms\n",
		       r.got[i].delay, r.at[i]);
	}
	fx_finish(&f);
}

/* ---- periodic, cancel ------------------------------------------------------
 */

/*
 * After the cancel (or the owner's stop), a chain of MARK_STAGES one-shot
 * markers of MARK_MS each, started one after the other: the cancel is
 * done on the timer loop before the first marker is armed, so no tick
 * may come after the first marker. A periodic timer still live would
 * tick before each later marker (its next deadline is at most one period
 * away, less than MARK_MS).
 */
#define TICK_MS     10
#define MARK_MS     20
#define MARK_STAGES 3

enum { MSG_MARK = 20 };

struct ticker {
	tr_pid probe;
	tr_timer_id id;
	uint32_t ticks;
	uint32_t stop_after;
	bool stop_self; /* stop the actor instead of cancelling */
	uint32_t marks;
	uint32_t ticks_at_mark; /* ticks handled when the first marker came */
};

struct ticker_report {
	int32_t err;
	uint32_t before_mark; /* ticks after the cancel, before the marker */
	uint32_t after_mark;  /* ticks after the first marker: must be 0 */
};

static _Atomic uint32_t ticks_seen;

static void
ticker_report(tr_ctx *cx, struct ticker *t, int32_t err)
{
	struct ticker_report r = { err, 0, 0 };

	if (err == 0 && !t->stop_self) {
		r.before_mark = t->ticks_at_mark - t->stop_after;
		r.after_mark = t->ticks - t->ticks_at_mark;
	}
	(void)tr_send(cx, t->probe, MSG_DONE, &r, sizeof(r));
}

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
					    TICK_MS, &t->id);
		if (err < 0) {
			ticker_report(cx, t, err);
		}
		return;
	}
	if (m->type == MSG_MARK) {
		if (++t->marks == 1) {
			t->ticks_at_mark = t->ticks;
		}
		if (t->marks < MARK_STAGES) {
			int32_t err = tr_send_after(cx, tr_self(cx), MSG_MARK,
						    NULL, 0, MARK_MS, NULL);
			if (err < 0) {
				ticker_report(cx, t, err);
			}
			return;
		}
		ticker_report(cx, t, 0);
		return;
	}
	if (m->type != MSG_TICK) {
		return;
	}
	atomic_fetch_add(&ticks_seen, 1);
	if (++t->ticks == t->stop_after) {
		if (t->stop_self) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
			ticker_report(cx, t, 0);
			return;
		}
		int32_t err = tr_timer_cancel(cx, t->id);
		if (err == 0) {
			err = tr_send_after(cx, tr_self(cx), MSG_MARK, NULL, 0,
					    MARK_MS, NULL);
		}
		if (err < 0) {
			ticker_report(cx, t, err);
		}
	}
}

static const tr_actor_def ticker_def = {
	.size = sizeof(tr_actor_def),
	.name = "ticker",
	.state_size = sizeof(struct ticker),
	.handle = ticker_handle,
};

/* chain: runs the marker chain for the probe (the ticker has stopped). */
struct chain {
	tr_pid probe;
	uint32_t marks;
};

static void
chain_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct chain *c = state;
	int32_t err = 0;

	if (m->type == MSG_GO) {
		c->probe = tr_sender(cx);
	} else if (m->type != MSG_MARK) {
		return;
	} else if (++c->marks == MARK_STAGES) {
		(void)tr_send(cx, c->probe, MSG_DONE, &err, sizeof(err));
		return;
	}
	err = tr_send_after(cx, tr_self(cx), MSG_MARK, NULL, 0, MARK_MS, NULL);
	if (err < 0) {
		(void)tr_send(cx, c->probe, MSG_DONE, &err, sizeof(err));
	}
}

static const tr_actor_def chain_def = {
	.size = sizeof(tr_actor_def),
	.name = "chain",
	.state_size = sizeof(struct chain),
	.handle = chain_handle,
};

static void
run_ticker(bool stop_self)
{
	struct fx f;
	struct ticker_report r = { -100, 0, 0 };
	uint32_t stop_after = 5 + (stop_self ? 1000 : 0);

	atomic_store(&ticks_seen, 0);
	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &ticker_def, NULL);
	SEND(&f, a, MSG_GO, &stop_after, sizeof(stop_after));
	CHECK(fx_recv(&f, MSG_DONE, &r, sizeof(r)));
	CHECK_OK(r.err);
	if (!stop_self) {
		/* Ticks the timer sent before the cancel was done may still
		 * come; none after the first marker. */
		printf("  ticks after the cancel: %u before the marker, %u "
		       "after\n",
		       r.before_mark, r.after_mark);
		CHECK_EQ_U64(r.after_mark, 0);
		CHECK_EQ_U64(atomic_load(&ticks_seen),
			     5 + r.before_mark + r.after_mark);
		fx_finish(&f);
		return;
	}
	/* The owner handled its last tick: the ticks queued behind it
	 * become dead letters, never handled. */
	CHECK_EQ_U64(atomic_load(&ticks_seen), 5);
	WAIT_UNTIL(!tr_actor_alive(f.rt, a), REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, REPLY_MS));
	tr_metrics m0 = fx_metrics(&f);
	/* Then a chain of markers. At most one tick, sent by a fire that
	 * saw the owner alive just before it stopped, may come after m0; a
	 * timer that outlived its owner would add one per marker. */
	tr_pid c = fx_spawn(&f, &chain_def, NULL);
	int32_t err = -100;
	SEND(&f, c, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_DONE, &err, sizeof(err)));
	CHECK_OK(err);
	tr_metrics m1 = fx_metrics(&f);
	printf("  dead letters after the owner stopped: %" PRIu64 "\n",
	       m1.dead_letters - m0.dead_letters);
	CHECK(m1.dead_letters - m0.dead_letters <= 1);
	CHECK_EQ_U64(atomic_load(&ticks_seen), 5);
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

/* An hour: a stop that waited for these timers would run into the
 * suite's timeout, which is then the failure. */
#define ARMED_MS 3600000u

struct misc_result {
	int32_t err[8];
};

static void
misc_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	tr_pid probe = tr_sender(cx);
	uint64_t tag;

	if (m->type == MSG_DONE) {
		/* The marker: armed after the cancel above was done, with a
		 * later deadline than the cancelled timer's. */
		tag = 3;
		int32_t err = tr_send_after(cx, probe, MSG_TICK, &tag,
					    sizeof(tag), 100, NULL);
		if (err < 0) {
			(void)tr_send(cx, probe, MSG_DONE, &err, sizeof(err));
		}
		return;
	}
	if (m->type != MSG_GO) {
		return;
	}
	struct misc_result r;
	char big[TR_TIMER_MAX_PAYLOAD + 1];
	tr_timer_id id = { 0 };

	memset(&r, 0, sizeof(r));
	memset(big, 0, sizeof(big));
	/* A 50 ms timer to the probe, cancelled at once: never arrives. */
	tag = 1;
	r.err[0] =
		tr_send_after(cx, probe, MSG_TICK, &tag, sizeof(tag), 50, &id);
	r.err[1] = tr_timer_cancel(cx, id);
	r.err[2] = tr_send_every(cx, probe, MSG_TICK, NULL, 0, 0, NULL);
	r.err[3] = tr_send_after(cx, TR_PID_NONE, MSG_TICK, NULL, 0, 1, NULL);
	r.err[4] =
		tr_send_after(cx, probe, TR_MSG_SYSTEM_BASE, NULL, 0, 1, NULL);
	r.err[5] =
		tr_send_after(cx, probe, MSG_TICK, big, sizeof(big), 1, NULL);
	/* Armed for a minute: the runtime must stop without waiting. */
	tag = 2;
	r.err[6] = tr_send_after(cx, probe, MSG_TICK, &tag, sizeof(tag),
				 ARMED_MS, NULL);
	r.err[7] = tr_send_every(cx, tr_self(cx), MSG_GO + 100, NULL, 0,
				 ARMED_MS, NULL);
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
	uint64_t tag = 0;

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
	/* The cancelled 50 ms timer must not arrive: the next message is
	 * the 100 ms marker started after it, not the timer (tag 1). */
	SEND(&f, a, MSG_DONE, NULL, 0);
	CHECK(fx_recv(&f, MSG_TICK, &tag, sizeof(tag)));
	CHECK_EQ_U64(tag, 3);
	/* The stop must not wait for the armed timers: the event is that
	 * it returns at all (fx_finish also checks that every message was
	 * accounted for and no actor is left). */
	uint64_t t0 = now_ms();
	fx_finish(&f);
	printf("  stop with timers armed took %" PRIu64 " ms\n", now_ms() - t0);
}

/* ---- a full bounded mailbox ---------------------------------------------- */

/*
 * An actor with a mailbox bound of 4 fills its own mailbox, then arms a
 * 2 ms periodic timer, a 10 ms one-shot to itself and a 10 ms one-shot
 * witness to the probe, and stays in its handler until the test lets it
 * go. The witness fires after the one-shot (equal delays fire in start
 * order) and after at least one tick (an earlier deadline), so once the
 * probe has it, both timers have fired at the full mailbox. The one-shot
 * (a timeout, typically) must still arrive; the ticks are dropped and
 * counted.
 */
enum { MSG_FILL = 50, MSG_ONESHOT, MSG_EVERY, MSG_WITNESS, BOUND = 4 };

static atomic_bool full_release;

struct full_state {
	tr_pid probe;
	unsigned fills, ticks;
	int32_t fill_err, arm_err;
};

struct full_report {
	unsigned fills, ticks;
	int32_t fill_err, arm_err;
};

static void
full_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct full_state *s = state;

	switch (m->type) {
	case MSG_GO: {
		s->probe = tr_sender(cx);
		for (unsigned i = 0; i < BOUND; i++) {
			if (tr_send(cx, tr_self(cx), MSG_FILL, NULL, 0) < 0) {
				s->fill_err = -1000;
			}
		}
		/* The mailbox is full now: one more is refused. */
		if (s->fill_err == 0) {
			s->fill_err =
				tr_send(cx, tr_self(cx), MSG_FILL, NULL, 0);
		}
		int32_t e[3];
		e[0] = tr_send_every(cx, tr_self(cx), MSG_EVERY, NULL, 0, 2,
				     NULL);
		e[1] = tr_send_after(cx, tr_self(cx), MSG_ONESHOT, NULL, 0, 10,
				     NULL);
		e[2] = tr_send_after(cx, s->probe, MSG_WITNESS, NULL, 0, 10,
				     NULL);
		s->arm_err = e[0] < 0 ? e[0] : e[1] < 0 ? e[1] : e[2];
		/* Busy until released: nothing leaves the mailbox meanwhile. */
		uint64_t until = now_ms() + REPLY_MS;
		while (!atomic_load(&full_release) && now_ms() < until) {
			harness_nap_us(200);
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
		struct full_report r = { s->fills, s->ticks, s->fill_err,
					 s->arm_err };
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

	atomic_store(&full_release, false);
	fx_start(&f, 2);
	uint64_t full0 = fx_metrics(&f).mailbox_full;
	tr_pid a = fx_spawn(&f, &full_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_WITNESS, NULL, 0));
	uint64_t full = fx_metrics(&f).mailbox_full - full0;
	atomic_store(&full_release, true);
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_ERR(r.fill_err, TR_EFULL);
	CHECK_OK(r.arm_err);
	/* The one-shot came after the four that filled the mailbox, and
	 * no tick got in before it: the mailbox stayed full. */
	CHECK_EQ_U64(r.fills, BOUND);
	CHECK_EQ_U64(r.ticks, 0);
	printf("  ticks refused at the full mailbox before the witness: "
	       "%llu\n",
	       (unsigned long long)(full - 1));
	/* The fifth fill and at least one tick were refused. */
	CHECK(full >= 2);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "timer: one-shots fire in order of deadline, never early",
	  test_order_never_early },
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
