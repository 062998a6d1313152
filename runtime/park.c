/*
 * Parking: where an idle worker sleeps, who wakes it, and who runs each
 * shared I/O loop. docs/SCHEDULER.md draws the two state machines; this
 * comment is the short version.
 *
 * A worker's `park` word is AWAKE, FUTEX (asleep on that word) or POLL
 * (asleep in its loop's poll). Only the worker moves it out of AWAKE;
 * only a waker (or the worker, leaving a poll) moves it back, with a CAS,
 * and the old value says how to wake: a futex wake or a kick of the loop.
 *
 * A loop's `word` says who runs it: nobody (FREE), an idle worker polling
 * it once (WORKER), or the loop's own thread (THREAD), plus the index of
 * a worker asking the thread for it, a bit saying the thread sleeps until
 * a worker gives the loop back, and a count of workers' takes and gives
 * (GEN), by which the thread tells that workers poll the loop. Each move
 * is one CAS on the word:
 *
 *   FREE   -> WORKER   an idle worker takes it to poll (GEN + 1)
 *   WORKER -> FREE     its poll returned (GEN + 1; wakes a sleeping thread)
 *   FREE   -> THREAD   the thread saw no take or give for a whole look
 *   THREAD -> THREAD+asker   an idle worker asks for it
 *   THREAD+asker -> FREE     the thread, at the end of a pass; it wakes
 *                            the asker
 *
 * Lost wake-ups are excluded by Dekker pairs of seq_cst operations: a
 * parking worker stores its state, increments n_sleeping and then looks
 * at every queue (and at its loop); a thread that makes work for it
 * publishes the work and then reads n_sleeping (sched.c, inject()) or the
 * worker's state (the loop's hand-over).
 *
 * Threads: tr__park runs on its worker; the wakes on any thread;
 * tr__hold_watch on a loop's own thread; tr__park_monitor_* on the
 * monitor thread, except the _stop functions (the stopping thread).
 */
#include "runtime/park.h"

#include <troupe/metrics.h>

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/futex.h"
#include "runtime/io_loop.h"
#include "runtime/msg.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"

/* ------------------------------------------------------------------ */
/* Workers                                                             */

/* Wake @v, whose state we just moved from @was to AWAKE. */
static void
rouse(struct tr__worker *v, uint32_t was)
{
	if (was == TR__PARK_POLL) {
		/* If it has left the poll meanwhile, this wakes the loop's
		 * next holder once. */
		tr__io_kick(v->loop);
	} else {
		tr__futex_wake(&v->park);
	}
}

bool
tr__park_wake(struct tr__worker *v)
{
	uint32_t s = atomic_load_explicit(&v->park, memory_order_relaxed);

	if (s != TR__PARK_AWAKE &&
	    atomic_compare_exchange_strong_explicit(
		    &v->park, &s, TR__PARK_AWAKE, memory_order_acq_rel,
		    memory_order_relaxed)) {
		rouse(v, s);
		return true;
	}
	return false;
}

/* The loop's hand-over: wake worker @i, which asked for the loop. */
static void
wake_asker(tr_runtime *rt, unsigned i)
{
	/*
	 * seq_cst, no relaxed pre-check: the Dekker pair of the worker's
	 * store of its state and its load of the loop's word in tr__park().
	 * An asker does not hold the loop, so it sleeps on its futex.
	 */
	uint32_t s = TR__PARK_FUTEX;

	if (i < rt->nworkers &&
	    atomic_compare_exchange_strong_explicit(
		    &rt->workers[i].park, &s, TR__PARK_AWAKE,
		    memory_order_seq_cst, memory_order_relaxed)) {
		rouse(&rt->workers[i], s);
	}
}

void
tr__park_wake_one(tr_runtime *rt)
{
	struct tr__worker *self = tr__sched_current(rt);
	unsigned n = rt->nworkers;
	unsigned start = atomic_fetch_add_explicit(&rt->wake_rr, 1,
						   memory_order_relaxed);

	for (unsigned k = 0; k < n; k++) {
		struct tr__worker *v = &rt->workers[(start + k) % n];
		/* A worker polling its loop sends from its callbacks while
		 * it counts as asleep: it must not pick itself. */
		if (v != self && tr__park_wake(v)) {
			return;
		}
	}
}

void
tr__park_stop(struct tr__worker *v)
{
	/* seq_cst: after the runtime's store of `shutdown`; a worker that
	 * parks later reads it in tr__park(). */
	uint32_t s = atomic_exchange_explicit(&v->park, TR__PARK_AWAKE,
					      memory_order_seq_cst);

	rouse(v, s == TR__PARK_POLL ? s : TR__PARK_FUTEX);
}

/* The monitor's futex word: ticking, or asleep while every worker is. */
enum { MON_TICKING, MON_ASLEEP };

/* Leave the count of sleepers; the first awake of an idle runtime wakes
 * the monitor, for this worker may now start a long turn. */
static void
unpark(tr_runtime *rt)
{
	uint32_t asleep = MON_ASLEEP;
	/* seq_cst: the Dekker pair of tr__park_monitor_idle()'s store of
	 * MON_ASLEEP and its load of n_sleeping. */
	uint32_t before = atomic_fetch_sub_explicit(&rt->n_sleeping, 1,
						    memory_order_seq_cst);

	if (before == rt->nworkers &&
	    atomic_load_explicit(&rt->mon, memory_order_seq_cst) ==
		    MON_ASLEEP &&
	    atomic_compare_exchange_strong_explicit(
		    &rt->mon, &asleep, MON_TICKING, memory_order_relaxed,
		    memory_order_relaxed)) {
		tr__futex_wake(&rt->mon);
	}
}

/*
 * The last worker to go to sleep: the runtime is idle. Memory freed since
 * a burst of load (message nodes kept for reuse, and what glibc keeps in
 * its arenas) goes back to the OS, so an idle server returns to near its
 * baseline, as Erlang's and Go's do. At most once per GIVE_BACK_NS, and
 * never while work waits: it costs a walk of the heap, and the first
 * touch of a page given back costs ~11 us when load returns.
 */
#define GIVE_BACK_NS 1000000000u

static void
idle_give_back(tr_runtime *rt)
{
	uint64_t now = tr__clock_ns();
	uint64_t last =
		atomic_load_explicit(&rt->gave_back_ns, memory_order_relaxed);

	if (now - last < GIVE_BACK_NS ||
	    !atomic_compare_exchange_strong_explicit(&rt->gave_back_ns, &last,
						     now, memory_order_relaxed,
						     memory_order_relaxed)) {
		return;
	}
	tr__msg_pool_trim(&rt->msg_pool);
	tr__alloc_give_back();
}

/*
 * Ask the monitor to look at @due (ticks), if it would not look by then
 * anyway: one futex wake, and only for the earliest pending request.
 */
static void
monitor_due(tr_runtime *rt, uint64_t due)
{
	uint64_t next =
		atomic_load_explicit(&rt->mon_next, memory_order_relaxed);
	uint64_t cur = atomic_load_explicit(&rt->mon_due, memory_order_relaxed);

	if (next != 0 && next <= due) {
		return; /* it looks by then */
	}
	do {
		if (cur != 0 && cur <= due) {
			return; /* asked already, for earlier */
		}
	} while (!atomic_compare_exchange_weak_explicit(&rt->mon_due, &cur, due,
							memory_order_relaxed,
							memory_order_relaxed));
	tr__futex_wake(&rt->mon);
}

/*
 * A sleeper with actors queued behind another worker's turn wakes itself
 * when that turn would be stuck (@due, ticks; 0: not timed), should the
 * monitor's wake-up be late: the kernel may queue the monitor behind the
 * very turn it is to rescue. Return: ns from now, at least 1.
 */
static uint64_t
due_in(uint64_t due)
{
	uint64_t now = tr__ticks();

	if (due == 0) {
		return 0;
	}
	return due > now ? tr__ticks_to_ns(due - now) : 1;
}

static bool hold_take(struct tr__io *io);
static void hold_give(struct tr__io *io);

void
tr__park(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;
	/*
	 * With the loop free, sleep in its poll rather than on the futex:
	 * the events it returns become turns on this worker, with no
	 * hand-off to another thread.
	 */
	struct tr__io *loop =
		w->loop != NULL && hold_take(w->loop) ? w->loop : NULL;

	/* seq_cst: the Dekker pair of the loop thread's hand-over (word
	 * to FREE, then CAS on this state in wake_asker()). */
	atomic_store_explicit(&w->park,
			      loop != NULL ? TR__PARK_POLL : TR__PARK_FUTEX,
			      memory_order_seq_cst);
	/* seq_cst: the Dekker pair of the RMW in inject() (sched.c). */
	uint32_t before = atomic_fetch_add_explicit(&rt->n_sleeping, 1,
						    memory_order_seq_cst);
	if (tr__sched_work_for(w) ||
	    atomic_load_explicit(&rt->shutdown, memory_order_seq_cst) ||
	    /* The loop was handed back to us meanwhile: go and take it. */
	    (loop == NULL && w->loop != NULL && tr__hold_free(w->loop))) {
		/* A waker that won meanwhile woke us for nothing: harmless. */
		atomic_store_explicit(&w->park, TR__PARK_AWAKE,
				      memory_order_relaxed);
		unpark(rt);
		if (loop != NULL) {
			hold_give(loop);
		}
		return;
	}
	/* Its own thread runs the loop (all workers were busy): ask. */
	if (loop == NULL && w->loop != NULL) {
		(void)tr__hold_ask(w->loop, w->index);
	}
	tr__stat_add(&w->stats.parks, 1);
	if (before + 1 == rt->nworkers) {
		idle_give_back(rt);
	}
	/*
	 * Actors queued behind another worker's turn: if that turn gets
	 * stuck, the monitor wakes us to take them. Make sure it looks then,
	 * not up to a tick later.
	 */
	uint64_t due = tr__sched_stuck_due(w);
	if (due != 0) {
		monitor_due(rt, due);
	}
	if (loop != NULL) {
		/* One poll: it returns with events (their turns are now
		 * queued here) or when a waker kicks it. */
		tr__stat_add(&w->stats.io_polls, 1);
		tr__io_run_once(loop, due_in(due));
		/* acq_rel: pairs with a waker's CAS, or beats it. */
		(void)atomic_exchange_explicit(&w->park, TR__PARK_AWAKE,
					       memory_order_acq_rel);
		hold_give(loop);
	} else {
		/* acquire: pairs with the waker's CAS (acq_rel). */
		while (atomic_load_explicit(&w->park, memory_order_acquire) ==
		       TR__PARK_FUTEX) {
			uint64_t within = due_in(due);
			uint32_t s = TR__PARK_FUTEX;

			if (within == 1 &&
			    atomic_compare_exchange_strong_explicit(
				    &w->park, &s, TR__PARK_AWAKE,
				    memory_order_acq_rel,
				    memory_order_relaxed)) {
				break; /* our own deadline: look again */
			}
			tr__futex_wait(&w->park, TR__PARK_FUTEX, within);
		}
	}
	unpark(rt);
	tr__stat_add(&w->stats.wakes, 1);
}

/* ------------------------------------------------------------------ */
/* The monitor                                                         */

void
tr__park_monitor_nap(tr_runtime *rt, uint64_t ns)
{
	tr__futex_wait(&rt->mon, MON_TICKING, ns);
}

uint64_t
tr__park_monitor_next(tr_runtime *rt, uint64_t looked, uint64_t sleep_ns)
{
	uint64_t due = atomic_load_explicit(&rt->mon_due, memory_order_relaxed);

	if (due == 0) {
		return sleep_ns;
	}
	if (due <= looked) {
		/* Served; a later request waits for the next look. */
		(void)atomic_compare_exchange_strong_explicit(
			&rt->mon_due, &due, 0, memory_order_relaxed,
			memory_order_relaxed);
		return sleep_ns;
	}
	uint64_t left = tr__ticks_to_ns(due - looked);
	return left < sleep_ns ? left : sleep_ns;
}

void
tr__park_monitor_idle(tr_runtime *rt)
{
	/*
	 * seq_cst: the Dekker pair of a waking worker's RMW of n_sleeping
	 * and its load of `mon` (unpark): either we see it awake here, or
	 * it sees us asleep and wakes us.
	 */
	atomic_store_explicit(&rt->mon_next, 0, memory_order_relaxed);
	atomic_store_explicit(&rt->mon, MON_ASLEEP, memory_order_seq_cst);
	while (atomic_load_explicit(&rt->n_sleeping, memory_order_seq_cst) ==
		       rt->nworkers &&
	       atomic_load_explicit(&rt->mon, memory_order_relaxed) ==
		       MON_ASLEEP &&
	       !atomic_load_explicit(&rt->shutdown, memory_order_relaxed)) {
		tr__futex_wait(&rt->mon, MON_ASLEEP, 0);
	}
	atomic_store_explicit(&rt->mon, MON_TICKING, memory_order_relaxed);
}

void
tr__park_monitor_stop(tr_runtime *rt)
{
	atomic_store_explicit(&rt->mon, MON_TICKING, memory_order_relaxed);
	tr__futex_wake(&rt->mon);
}

/* ------------------------------------------------------------------ */
/* Who runs a shared loop                                              */

#define HOLD_FREE   0u
#define HOLD_WORKER 1u
#define HOLD_THREAD 2u
#define HOLD_MASK   3u
/* The loop's thread sleeps until a worker gives the loop back. */
#define HOLD_ASLEEP 4u
/* Worker index + 1 asking the thread for the loop; 0: nobody. */
#define ASKER_SHIFT 3u
#define ASKER_MASK  (0xFFu << ASKER_SHIFT)
/* Workers' takes and gives, counted in the high half. */
#define GEN_ONE  (1u << 16)
#define GEN_MASK (0xFFFFu << 16)

/* How often the thread looks, and how many looks at one unbroken poll
 * make it sleep until that poll ends (the runtime is idle). */
#define WATCH_NS          1000000u
#define WATCH_IDLE_CHECKS 4u

_Static_assert(TR_METRICS_MAX_WORKERS < 0xFF, "asker field too narrow");

static uint32_t
holder(uint32_t x)
{
	return x & HOLD_MASK;
}

static uint32_t
asker(uint32_t x)
{
	return (x & ASKER_MASK) >> ASKER_SHIFT;
}

static bool
closing(struct tr__hold *h)
{
	return atomic_load_explicit(&h->closing, memory_order_seq_cst) != 0;
}

void
tr__hold_init(struct tr__hold *h)
{
	atomic_init(&h->word, HOLD_FREE);
	atomic_init(&h->closing, 0);
	atomic_init(&h->takeovers, 0);
}

bool
tr__hold_free(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);

	/* seq_cst: see the store of the state in tr__park(). */
	return holder(atomic_load_explicit(&h->word, memory_order_seq_cst)) ==
		       HOLD_FREE &&
	       !closing(h);
}

/* Idle worker: FREE -> WORKER. */
static bool
hold_take(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);
	uint32_t x = atomic_load_explicit(&h->word, memory_order_relaxed);

	do {
		if (holder(x) != HOLD_FREE || closing(h)) {
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&h->word, &x, ((x & GEN_MASK) + GEN_ONE) | HOLD_WORKER,
		memory_order_seq_cst, memory_order_relaxed));
	/*
	 * `closing` is set before the stop command is queued: a worker that
	 * reads it clear now may poll, and may run the stop command; the
	 * loop's thread then finishes the loop. One that reads it set must
	 * not poll: nothing would end that poll.
	 */
	if (closing(h)) {
		hold_give(io);
		return false;
	}
	return true;
}

/* WORKER -> FREE; wakes the loop's thread if it slept until now. */
static void
hold_give(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);
	uint32_t x = atomic_load_explicit(&h->word, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
		&h->word, &x, ((x & GEN_MASK) + GEN_ONE) | HOLD_FREE,
		memory_order_seq_cst, memory_order_relaxed)) {
	}
	if (x & HOLD_ASLEEP) {
		tr__futex_wake(&h->word);
	}
}

bool
tr__hold_ask(struct tr__io *io, unsigned worker)
{
	struct tr__hold *h = tr__io_hold(io);
	uint32_t me = worker + 1;
	uint32_t x = atomic_load_explicit(&h->word, memory_order_relaxed);

	if (holder(x) == HOLD_THREAD && asker(x) == me) {
		return true; /* asked already */
	}
	if (holder(x) != HOLD_THREAD || asker(x) != 0 || closing(h) ||
	    !atomic_compare_exchange_strong_explicit(
		    &h->word, &x, x | (me << ASKER_SHIFT), memory_order_seq_cst,
		    memory_order_relaxed)) {
		return false;
	}
	tr__io_kick(io); /* end the thread's current pass */
	return true;
}

/* The loop's thread: FREE -> THREAD. */
static bool
thread_take(struct tr__hold *h)
{
	uint32_t x = atomic_load_explicit(&h->word, memory_order_relaxed);

	do {
		if (holder(x) != HOLD_FREE) {
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&h->word, &x, (x & GEN_MASK) | HOLD_THREAD,
		memory_order_seq_cst, memory_order_relaxed));
	return true;
}

/*
 * The loop's thread, holding the loop: run it as a dedicated I/O thread
 * would until a worker asks for it. Return: true (still holding it) once
 * the loop is closing.
 */
static bool
thread_drive(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);

	for (;;) {
		tr__io_run_once(io, 0);
		if (closing(h)) {
			return true;
		}
		uint32_t x =
			atomic_load_explicit(&h->word, memory_order_relaxed);
		if (asker(x) == 0) {
			continue;
		}
		/* Only the asker's CAS changed a THREAD word: it stays. */
		while (!atomic_compare_exchange_weak_explicit(
			&h->word, &x, (x & GEN_MASK) | HOLD_FREE,
			memory_order_seq_cst, memory_order_relaxed)) {
		}
		/*
		 * If the asker sleeps, this wakes it. If it is awake (it asks
		 * before spinning too), it stops spinning once the loop is
		 * free, or takes it when it next parks. Handing over only to
		 * a sleeping worker would, under request/response traffic,
		 * keep the loop on this thread for as long as it lasts.
		 */
		wake_asker(tr__io_runtime(io), asker(x) - 1);
		return false;
	}
}

void
tr__hold_watch(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);
	uint32_t seen =
		atomic_load_explicit(&h->word, memory_order_relaxed) & GEN_MASK;
	unsigned still = 0;

	for (;;) {
		if (closing(h)) {
			/* The holder leaves its poll for the stop command. */
			if (thread_take(h)) {
				return;
			}
			tr__futex_wait(&h->closing, 1, WATCH_NS / 10);
			continue;
		}
		/* One look: it ends early only when the loop is closing. */
		tr__futex_wait(&h->closing, 0, WATCH_NS);
		uint32_t x =
			atomic_load_explicit(&h->word, memory_order_seq_cst);
		if ((x & GEN_MASK) != seen) {
			/* A worker took or gave the loop: it is polled. */
			seen = x & GEN_MASK;
			still = 0;
			continue;
		}
		if (holder(x) == HOLD_FREE) {
			if (!thread_take(h)) {
				continue;
			}
			/*
			 * Nobody polled for a whole look: every worker is in
			 * a turn or asleep on its futex. (Actors queued behind
			 * a long turn are the monitor's business.)
			 */
			atomic_fetch_add_explicit(&h->takeovers, 1,
						  memory_order_relaxed);
			if (thread_drive(io)) {
				return;
			}
			seen = atomic_load_explicit(&h->word,
						    memory_order_relaxed) &
			       GEN_MASK;
			still = 0;
			continue;
		}
		if (++still < WATCH_IDLE_CHECKS) {
			continue;
		}
		/* One worker's poll has lasted several looks: idle. Sleep
		 * until it gives the loop back (hold_give wakes us). */
		still = 0;
		uint32_t asleep = x | HOLD_ASLEEP;
		if (!atomic_compare_exchange_strong_explicit(
			    &h->word, &x, asleep, memory_order_seq_cst,
			    memory_order_relaxed)) {
			continue;
		}
		while (atomic_load_explicit(&h->word, memory_order_acquire) ==
			       asleep &&
		       !closing(h)) {
			tr__futex_wait(&h->word, asleep, 0);
		}
	}
}

void
tr__hold_close(struct tr__io *io)
{
	struct tr__hold *h = tr__io_hold(io);

	atomic_store_explicit(&h->closing, 1, memory_order_seq_cst);
	tr__futex_wake(&h->closing);
	/* Out of an untimed sleep too: the thread finishes the loop. */
	(void)atomic_fetch_and_explicit(&h->word, ~HOLD_ASLEEP,
					memory_order_seq_cst);
	tr__futex_wake(&h->word);
}
