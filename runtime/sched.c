/*
 * Work-stealing scheduler.
 *
 * Each worker has:
 * - a next slot: the actor most recently made runnable by a send from this
 *   worker. The worker runs it next, so two actors that talk to each other
 *   stay on one core (locality). Thieves take it only from a worker whose
 *   current turn is older than the steal threshold (the owner is stuck).
 * - a ck_ring run queue (single producer: the owner; multiple consumers:
 *   the owner and thieves). A new next-slot actor pushes the previous one
 *   here; actors that used up their batch go here, behind the others.
 * Threads that are not workers push runnable actors on the inject queue
 * (a ck_stack that workers take whole and reverse to FIFO).
 *
 * Idle workers spin for `spin_us` looking for work (own queues, inject,
 * stealing), then park (park.c), without a time limit unless actors wait
 * behind another worker's turn: on a futex, or,
 * when their I/O loop is free, in a poll of that loop. Lost wake-ups are
 * excluded by a Dekker pair: a parking worker increments n_sleeping
 * (seq_cst) and then checks every queue (tr__sched_work_for); an
 * injecting thread publishes and then (seq_cst RMW) reads n_sleeping,
 * waking a sleeper if there is one. Pushes by a worker onto its own
 * queues need no such guarantee (that worker is awake and will run
 * them); they wake a sleeper only as a hint.
 *
 * Work queued behind a long turn is rescued in one way, after Go's sysmon:
 * each worker stamps when its current turn began (turn_start); a monitor
 * thread that ticks while any worker is awake wakes a sleeper when some
 * worker's turn is older than STUCK_US and that worker has actors queued;
 * a thief treats a victim whose turn is that old as stuck and takes even
 * its lone queued actor or its next slot. When every worker sleeps, the
 * monitor sleeps too, and the first worker to wake up wakes it.
 *
 * The monitor also learns whether spreading work over workers pays, from
 * the messages handled per second with one worker busy and with several
 * (see "Spreading" below); while it does not, the runtime runs compact on
 * one worker, the keeper.
 *
 * Threads: everything here runs on worker threads except
 * tr__sched_schedule (any thread), the monitor thread's functions, and
 * the init/start/shutdown functions (setup).
 */
#include <ck_pr.h>

#include "runtime/sched.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/internal.h"
#include "runtime/io_loop.h"
#include "runtime/msg.h"
#include "runtime/park.h"
#include "runtime/runtime.h"
#include "runtime/stack.h"

/* Entries per worker ring (a power of two; capacity is one less). */
#define RING_SIZE 16384u
/* Consecutive next-slot runs before the ring gets a turn (Go uses a
 * similar cap so that two chatty actors cannot starve the queue). */
#define NEXT_STREAK_MAX 64u
/* Sample the scheduling delay of one wake-up in this many. */
#define SAMPLE_EVERY 16u

static _Thread_local struct tr__worker *tl_worker;

struct tr__worker *
tr__sched_current(tr_runtime *rt)
{
	struct tr__worker *w = tl_worker;

	return (w != NULL && w->rt == rt) ? w : NULL;
}

/* ------------------------------------------------------------------ */
/* Waking                                                              */

/* A hint: more runnable work exists than this worker can run right now. */
static void
maybe_wake(tr_runtime *rt)
{
	if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) > 0 &&
	    atomic_load_explicit(&rt->n_spinning, memory_order_relaxed) == 0) {
		tr__park_wake_one(rt);
	}
}

/*
 * Is the backlog behind @v's current turn worth moving to another core?
 * Moving an actor costs cache misses on its state and on every message
 * that crosses cores afterwards (a few microseconds in all), so work is
 * moved only when what waits on the victim is longer than that: more than
 * one actor queued, and the queue times the victim's average turn over
 * STEAL_BACKLOG_US. A producer and its consumer, or many short actors
 * talking among themselves, stay on one core; long handlers spread.
 */
#define STEAL_BACKLOG_US 50u

static bool
worth_moving(tr_runtime *rt, struct tr__worker *v, unsigned queued)
{
	/* Compact: the monitor measured that spreading this work loses. */
	if (queued < 2 ||
	    atomic_load_explicit(&rt->compact, memory_order_relaxed)) {
		return false;
	}
	uint64_t avg = atomic_load_explicit(&v->turn_avg, memory_order_relaxed);
	return (uint64_t)queued * avg > rt->steal_backlog_ticks;
}

static void
inject(tr_runtime *rt, struct tr__actor *a)
{
	ck_stack_push_upmc(&rt->inject, &a->qlink);
	/*
	 * seq_cst read-modify-write of n_sleeping: the Dekker pair of the
	 * fetch_add in tr__park(). Both are RMWs on one location, so they are
	 * ordered: either we read the sleeper's increment, or the sleeper's
	 * RMW reads ours and then sees our push. (An RMW rather than a fence:
	 * ThreadSanitizer does not model fences.)
	 */
	if (atomic_fetch_add_explicit(&rt->n_sleeping, 0,
				      memory_order_seq_cst) > 0 &&
	    atomic_load_explicit(&rt->n_spinning, memory_order_relaxed) == 0) {
		/*
		 * Nobody is spinning. A spinner counted here either takes
		 * the push in its loop or, giving up, parks: its decrement
		 * of n_spinning comes before its RMW of n_sleeping, so if
		 * that RMW preceded ours we read the decrement (and wake),
		 * and if it follows ours its check sees the push. Skipping
		 * the futex call while a worker spins is what keeps an I/O
		 * thread's sends cheap.
		 */
		tr__park_wake_one(rt);
	}
}

/* Owner only: append to the private overflow FIFO. */
static void
ovf_append(struct tr__worker *w, struct tr__actor *a)
{
	a->qlink.next = NULL;
	if (w->ovf_tail != NULL) {
		w->ovf_tail->next = &a->qlink;
	} else {
		w->ovf_head = &a->qlink;
	}
	w->ovf_tail = &a->qlink;
	atomic_store_explicit(
		&w->ovf_n,
		atomic_load_explicit(&w->ovf_n, memory_order_relaxed) + 1,
		memory_order_relaxed);
}

/* Owner only: take the oldest overflow entry, or NULL. */
static struct tr__actor *
ovf_take(struct tr__worker *w)
{
	ck_stack_entry_t *e = w->ovf_head;

	if (e == NULL) {
		return NULL;
	}
	w->ovf_head = e->next;
	if (w->ovf_head == NULL) {
		w->ovf_tail = NULL;
	}
	atomic_store_explicit(
		&w->ovf_n,
		atomic_load_explicit(&w->ovf_n, memory_order_relaxed) - 1,
		memory_order_relaxed);
	return tr__container_of(e, struct tr__actor, qlink);
}

/*
 * Queue @a behind the others on @w. A full ring spills into the private
 * overflow (never back to the shared inject stack, which would make a
 * burst of a million runnable actors bounce between the two).
 */
static void
ring_push(struct tr__worker *w, struct tr__actor *a)
{
	if (w->ovf_head != NULL ||
	    !ck_ring_enqueue_spmc(&w->ring, w->ring_buf, a)) {
		ovf_append(w, a);
		return;
	}
	/*
	 * Wake a sleeper only for a backlog worth another core: a lone
	 * queued actor is this worker's next job, and waking someone for it
	 * would cost a futex call per turn of a producer / consumer pair and
	 * only move one of them to another core.
	 */
	if (worth_moving(w->rt, w, ck_ring_size(&w->ring))) {
		maybe_wake(w->rt);
	}
}

/* Owner only: move overflow entries into the ring while it has room. */
static void
ovf_refill(struct tr__worker *w)
{
	while (w->ovf_head != NULL) {
		struct tr__actor *a =
			tr__container_of(w->ovf_head, struct tr__actor, qlink);
		/* release: ovf_append wrote qlink after the last one. */
		atomic_store_explicit(&a->handoff, 1, memory_order_release);
		if (!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, a)) {
			break;
		}
		(void)ovf_take(w);
	}
}

/* ------------------------------------------------------------------ */
/* Making actors runnable                                              */

void
tr__sched_schedule(tr_runtime *rt, struct tr__worker *w, struct tr__actor *a)
{
	if (w != NULL) {
		a->sched_ts = (++w->sample_tick % SAMPLE_EVERY) == 0
				      ? tr__ticks()
				      : 0;
		/* release: pairs with the acquire in tr__actor_run. */
		atomic_store_explicit(&a->handoff, 1, memory_order_release);
		/* acq_rel: a thief's CAS on next_slot acquires `a`. */
		struct tr__actor *old = atomic_exchange_explicit(
			&w->next_slot, a, memory_order_acq_rel);
		if (old != NULL) {
			ring_push(w, old);
		}
		return;
	}
	a->sched_ts = tr__ticks();
	/* release: pairs with the acquire in tr__actor_run. */
	atomic_store_explicit(&a->handoff, 1, memory_order_release);
	inject(rt, a);
}

void
tr__sched_reschedule(struct tr__worker *w, struct tr__actor *a)
{
	/* release: pairs with the acquire in tr__actor_run. */
	atomic_store_explicit(&a->handoff, 1, memory_order_release);
	ring_push(w, a);
}

/* ------------------------------------------------------------------ */
/* Finding work                                                        */

/* Take all of @s (the inject stack or our hand-in stack): run the first,
 * queue the rest in order. */
static struct tr__actor *
take_stack(struct tr__worker *w, ck_stack_t *s)
{
	if (ck_pr_load_ptr(&s->head) == NULL) {
		return NULL;
	}
	ck_stack_entry_t *rev = tr__stack_take_fifo(s);
	if (rev == NULL) {
		return NULL;
	}
	ck_stack_entry_t *e;
	struct tr__actor *first =
		tr__container_of(rev, struct tr__actor, qlink);
	for (e = rev->next; e != NULL;) {
		ck_stack_entry_t *next = e->next;
		/* Release after our writes to qlink: a thief may run it. */
		tr__sched_reschedule(
			w, tr__container_of(e, struct tr__actor, qlink));
		e = next;
	}
	return first;
}

static struct tr__actor *
take_inject(struct tr__worker *w)
{
	return take_stack(w, &w->rt->inject);
}

/*
 * A turn older than this is stuck: whatever waits behind it waits at least
 * this long, however short the worker's other turns are. It is four times
 * a whole batch of short handlers whose every message misses the cache
 * (100 x about 0.5 us): a worker that merely runs chatty actors split over
 * two cores must not look stuck, or its queue would be spread further.
 */
#define STUCK_US 200u
/* A spinner waiting for a turn to get stuck spins this much longer. */
#define SPIN_STUCK_SLACK_NS 10000u
/* The monitor looks this long after a turn would be stuck, so that it is. */
#define MON_EARLY_SLACK_NS 20000u

/*
 * Has @v been in its current turn for longer than STUCK_US? Then a thief
 * may take even its lone queued actor or the one in its next slot, and
 * the monitor wakes a sleeper for it. @now is the caller's tr__ticks().
 */
static bool
stuck(tr_runtime *rt, struct tr__worker *v, uint64_t now)
{
	uint64_t began =
		atomic_load_explicit(&v->turn_start, memory_order_relaxed);

	/* TSCs of different cores may differ by a few ticks: now < began. */
	return began != 0 && now > began && now - began > rt->stuck_ticks;
}

/* Does @v have actors that only it would run (ring or next slot)? */
static bool
has_queued(struct tr__worker *v)
{
	return ck_ring_size(&v->ring) > 0 ||
	       atomic_load_explicit(&v->next_slot, memory_order_relaxed) !=
		       NULL;
}

/*
 * The runtime runs compact with another worker as the keeper: hand it
 * everything queued here, so that a swarm of chatty actors split over two
 * cores comes back together on one (actors that are idle follow by
 * themselves: whoever wakes one runs it).
 */
static void
hand_back(struct tr__worker *w, struct tr__worker *k)
{
	tr_runtime *rt = w->rt;
	/* acquire: takes the actor from the exchange that queued it. */
	struct tr__actor *a = atomic_exchange_explicit(&w->next_slot, NULL,
						       memory_order_acquire);
	unsigned n = 0;

	for (;;) {
		if (a == NULL &&
		    !ck_ring_dequeue_spmc(&w->ring, w->ring_buf, &a)) {
			a = ovf_take(w);
			if (a == NULL) {
				break;
			}
		}
		/* release: pairs with the acquire in tr__actor_run. */
		atomic_store_explicit(&a->handoff, 1, memory_order_release);
		ck_stack_push_upmc(&k->handin, &a->qlink);
		a = NULL;
		n++;
	}
	if (n == 0) {
		return;
	}
	/*
	 * seq_cst RMW of n_sleeping, as in inject(): the Dekker pair of the
	 * keeper's increment in tr__park(), after which it looks at its
	 * hand-in stack. Either it sees our pushes, or we see it asleep.
	 */
	(void)atomic_fetch_add_explicit(&rt->n_sleeping, 0,
					memory_order_seq_cst);
	(void)tr__park_wake(k);
}

/*
 * Every 64 ticks, while the runtime runs compact, a worker that is not
 * the keeper hands what it has queued to the keeper: what it stole from
 * a keeper stuck in a long turn (rescue), or what its own turns made
 * runnable. Not while the keeper is stuck: then this is the rescue.
 */
static void
check_compact(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;

	if (!atomic_load_explicit(&rt->compact, memory_order_relaxed)) {
		return;
	}
	uint32_t k = atomic_load_explicit(&rt->keeper, memory_order_relaxed);
	if (k != w->index && k < rt->nworkers &&
	    !stuck(rt, &rt->workers[k], tr__ticks())) {
		hand_back(w, &rt->workers[k]);
	}
}

static struct tr__actor *
find_local(struct tr__worker *w)
{
	struct tr__actor *a;

	w->tick++;
	if ((w->tick & 63) == 0) {
		check_compact(w);
		a = take_stack(w, &w->handin);
		if (a != NULL) {
			return a;
		}
		/* Foreign work must not wait behind a busy local queue. */
		a = take_inject(w);
		if (a != NULL) {
			return a;
		}
		if (worth_moving(w->rt, w, ck_ring_size(&w->ring))) {
			maybe_wake(w->rt);
		}
	}
	if (atomic_load_explicit(&w->next_slot, memory_order_relaxed) != NULL) {
		/* acquire: pairs with the exchange in tr__sched_schedule. */
		a = atomic_exchange_explicit(&w->next_slot, NULL,
					     memory_order_acquire);
		if (a != NULL) {
			if (w->streak++ < NEXT_STREAK_MAX) {
				return a;
			}
			/* Let the ring have a turn: queue it behind. */
			w->streak = 0;
			ring_push(w, a);
		}
	}
	w->streak = 0;
	if (ck_ring_dequeue_spmc(&w->ring, w->ring_buf, &a)) {
		if (w->ovf_head != NULL) {
			ovf_refill(w);
		}
		return a;
	}
	if (w->ovf_head != NULL) {
		a = ovf_take(w);
		ovf_refill(w);
		return a;
	}
	a = take_stack(w, &w->handin);
	if (a != NULL) {
		return a;
	}
	return take_inject(w);
}

/*
 * A steal for backlog takes half of the victim's ring, up to this many
 * actors (Go steals half of a local queue of 256). Taking one at a time
 * left a thousand chatty actors in limbo on two workers: each steal woke
 * the thief for one actor, whose peers mostly sat queued on the victim,
 * so it ran dry within microseconds and slept again, thousands of times a
 * second, each time at the cost of a wake-up on the victim's core. Half a
 * backlog either keeps the thief busy (the work spreads, and the monitor
 * then measures whether spreading pays) or not at all. The cap keeps a
 * tree of spawns local: what is stolen is the oldest of the ring, each a
 * subtree of its own; a thief that took a thousand fresh leaves would
 * send every one's result back across cores.
 */
#define STEAL_BATCH_MAX 128u

/* After the first actor of a steal from @v's ring: move up to @want - 1
 * more of it onto our own ring, behind nothing (we were idle). */
static void
steal_more(struct tr__worker *w, struct tr__worker *v, unsigned want)
{
	struct tr__actor *a;

	want = want < STEAL_BATCH_MAX ? want : STEAL_BATCH_MAX;
	while (want > 1 && w->ovf_head == NULL &&
	       ck_ring_dequeue_spmc(&v->ring, v->ring_buf, &a)) {
		/* acquire, then release: whoever runs `a` from our ring
		 * (us or a thief of ours) sees what its scheduler wrote. */
		(void)atomic_load_explicit(&a->handoff, memory_order_acquire);
		atomic_store_explicit(&a->handoff, 1, memory_order_release);
		if (!ck_ring_enqueue_spmc(&w->ring, w->ring_buf, a)) {
			ovf_append(w, a);
		}
		tr__stat_add(&w->stats.steals, 1);
		want--;
	}
}

/*
 * Take work from another worker. A victim that keeps starting new turns is
 * making progress: take from its ring only if worth_moving(), and then
 * half of it (steal_more()). A victim in a turn older than STUCK_US is
 * stuck in a long handler: then take even its lone ring entry or the actor
 * in its next slot, which would otherwise wait for the whole turn.
 */
static struct tr__actor *
steal(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;
	unsigned n = rt->nworkers;
	uint64_t now = tr__ticks();

	for (unsigned k = 1; k < n; k++) {
		struct tr__worker *v = &rt->workers[(w->index + k) % n];
		struct tr__actor *a;
		bool is_stuck = stuck(rt, v, now);
		unsigned queued = ck_ring_size(&v->ring);

		if ((is_stuck ? queued > 0 : worth_moving(rt, v, queued)) &&
		    ck_ring_dequeue_spmc(&v->ring, v->ring_buf, &a)) {
			tr__stat_add(&w->stats.steals, 1);
			if (!is_stuck) {
				steal_more(w, v, queued / 2);
			}
			return a;
		}
		if (!is_stuck) {
			continue;
		}
		a = atomic_load_explicit(&v->next_slot, memory_order_relaxed);
		if (a != NULL) {
			struct tr__actor *expect = a;
			/* acquire: takes `a` from the owner's exchange. */
			if (atomic_compare_exchange_strong_explicit(
				    &v->next_slot, &expect, NULL,
				    memory_order_acquire,
				    memory_order_relaxed)) {
				tr__stat_add(&w->stats.steals, 1);
				return a;
			}
		}
	}
	return NULL;
}

static bool
has_work(tr_runtime *rt)
{
	if (ck_pr_load_ptr(&rt->inject.head) != NULL) {
		return true;
	}
	for (unsigned i = 0; i < rt->nworkers; i++) {
		if (ck_ring_size(&rt->workers[i].ring) > 0 ||
		    ck_pr_load_ptr(&rt->workers[i].handin.head) != NULL) {
			return true;
		}
	}
	return false;
}

/*
 * Is there work that @w, about to park, would take if it stayed awake:
 * the inject stack, its own queues, or a backlog it may steal? Another
 * worker's ring that is not worth moving is not: that worker is awake and
 * runs it. A worker that stayed awake for it spun on that worker's ring
 * and turn stamp, and every one of its reads took those cache lines away
 * from the worker that writes them at each turn; two workers then ran a
 * chatty swarm slower than one.
 */
bool
tr__sched_work_for(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;

	if (ck_pr_load_ptr(&rt->inject.head) != NULL ||
	    tr__sched_has_local(w)) {
		return true;
	}
	uint64_t now = tr__ticks();
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];
		unsigned queued = ck_ring_size(&v->ring);

		if (v != w && queued > 0 &&
		    (worth_moving(rt, v, queued) || stuck(rt, v, now))) {
			return true;
		}
	}
	return false;
}

/*
 * A spinner about to give up: is some other worker in a turn that began
 * before we started spinning (@since, ticks), with actors queued behind
 * it? Then that turn is long already and will soon be stuck: return how
 * many ns to keep spinning so as to steal them then, or 0. Turns that
 * began while we spun are the short turns of a busy worker, and waiting
 * for them would only keep us reading that worker's lines.
 */
static uint64_t
stuck_soon(struct tr__worker *w, uint64_t since)
{
	tr_runtime *rt = w->rt;
	uint64_t now = tr__ticks();
	uint64_t most = 0;

	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];
		uint64_t began = atomic_load_explicit(&v->turn_start,
						      memory_order_relaxed);

		if (v == w || began == 0 || began >= since || now <= began ||
		    now - began >= rt->stuck_ticks || !has_queued(v)) {
			continue;
		}
		uint64_t left = rt->stuck_ticks - (now - began);
		most = left > most ? left : most;
	}
	return most == 0 ? 0 : tr__ticks_to_ns(most) + SPIN_STUCK_SLACK_NS;
}

uint64_t
tr__sched_stuck_due(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;
	uint64_t now = tr__ticks();
	uint64_t due = 0;

	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];

		if (v == w || !has_queued(v)) {
			continue;
		}
		/* Between turns, or about to stamp one: it could begin now. */
		uint64_t began = atomic_load_explicit(&v->turn_start,
						      memory_order_relaxed);
		uint64_t at = (began != 0 && began < now ? began : now) +
			      rt->stuck_ticks +
			      MON_EARLY_SLACK_NS / 1000u * tr__ticks_per_us();
		due = due == 0 || at < due ? at : due;
	}
	return due;
}

/* @handover: we asked for our I/O loop; stop when it is handed over. */
static struct tr__actor *
spin(struct tr__worker *w, bool handover)
{
	tr_runtime *rt = w->rt;
	struct tr__actor *a = NULL;
	uint64_t deadline = tr__clock_ns() + (uint64_t)rt->cfg.spin_us * 1000u;
	uint64_t since = tr__ticks();
	bool extended = false;

	atomic_fetch_add_explicit(&rt->n_spinning, 1, memory_order_relaxed);
	for (unsigned i = 1;; i++) {
		a = find_local(w);
		if (a != NULL) {
			break;
		}
		a = steal(w);
		if (a != NULL) {
			break;
		}
		if ((i & 63) == 0 &&
		    (tr__clock_ns() > deadline ||
		     atomic_load_explicit(&rt->shutdown,
					  memory_order_relaxed))) {
			uint64_t more = extended ? 0 : stuck_soon(w, since);
			if (more == 0 ||
			    atomic_load_explicit(&rt->shutdown,
						 memory_order_relaxed)) {
				break;
			}
			/* Once: stay until that long turn is stuck. */
			extended = true;
			deadline = tr__clock_ns() + more;
		}
		if ((i & 7) == 0) {
			if (handover && tr__hold_free(w->loop)) {
				break; /* go and poll it */
			}
			/*
			 * Let another thread have this core now and then: on
			 * a machine with no spare core (the I/O thread, a
			 * client in the same box) spinning would otherwise
			 * delay the very thread that produces our next
			 * message. When nothing else is runnable this
			 * returns at once.
			 */
			sched_yield();
		} else {
			for (int k = 0; k < 8; k++) {
				tr__cpu_relax();
			}
		}
	}
	uint32_t spinners = atomic_fetch_sub_explicit(&rt->n_spinning, 1,
						      memory_order_relaxed);
	/*
	 * Go's rule: the last spinner that found work, with more queued
	 * (what it took from the inject stack, say), wakes another worker,
	 * which spins in its turn. Senders skip the wake-up while a worker
	 * spins, so without this a spinner that took two actors at once
	 * would leave the second behind its own turn while others sleep.
	 */
	if (a != NULL && spinners == 1 &&
	    (tr__sched_has_local(w) ||
	     ck_pr_load_ptr(&rt->inject.head) != NULL)) {
		maybe_wake(rt);
	}
	return a;
}

/* ------------------------------------------------------------------ */
/* The monitor                                                         */

/*
 * How often the monitor looks while some worker is awake. A queue behind
 * a stuck turn is found within about this (plus the steal threshold),
 * whatever every other worker is doing; each look costs a timed futex
 * wake-up, about 0.1% of a core at this period.
 */
#define MON_TICK_NS 1000000u
/* Looks with every worker asleep before the monitor sleeps too. */
#define MON_IDLE_LOOKS 4u

/*
 * One look: if a worker is stuck in a long turn with actors queued behind
 * it while others sleep and none spins, wake one; it steals them (see
 * steal()). One wake per look: a worker woken for nothing costs a futex
 * call, and the next look catches a second stuck worker.
 *
 * Return: how long to sleep before the next look, in ns. A turn that has
 * lasted a quarter of STUCK_US with actors queued behind it is likely to
 * get stuck: look again when it would be, rather than up to a tick later.
 * Shorter turns, which are nearly all turns, never shorten the tick.
 */
static uint64_t
monitor_look(tr_runtime *rt)
{
	uint64_t sleep_ns = MON_TICK_NS;

	if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&rt->n_spinning, memory_order_relaxed) > 0) {
		return sleep_ns; /* nobody to wake, or a spinner will steal */
	}
	uint64_t now = tr__ticks();
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];

		if (!has_queued(v)) {
			continue;
		}
		if (stuck(rt, v, now)) {
			tr__stat_add_shared(&rt->foreign.rescues, 1);
			tr__park_wake_one(rt);
			return sleep_ns;
		}
		uint64_t began = atomic_load_explicit(&v->turn_start,
						      memory_order_relaxed);
		if (began != 0 && now > began &&
		    now - began > rt->stuck_ticks / 4) {
			uint64_t left = tr__ticks_to_ns(rt->stuck_ticks -
							(now - began)) +
					MON_EARLY_SLACK_NS;
			sleep_ns = left < sleep_ns ? left : sleep_ns;
		}
	}
	return sleep_ns;
}

/* ------------------------------------------------------------------ */
/* Spreading: does running on more workers pay?                        */

/*
 * Moving an actor to another core costs cache misses on its state, on its
 * mailbox and on every message that crosses cores afterwards: about half a
 * microsecond each on this class of machine, against some 10 ns for a
 * message between two actors on one core. For handlers that compute, or
 * for actors that mostly talk among their own kind (a tree of spawns),
 * spreading over the workers multiplies the throughput; for a swarm of
 * short actors that talk to each other at random (a fan-in, a thousand
 * actors pinging random peers) it divides it, and a swarm once split over
 * two cores stays split: each message to an idle actor moves it to the
 * sender's core. No property of a turn tells the two apart in advance,
 * so the monitor measures them: every epoch (EPOCH_NS) it reads
 * the messages handled and the time spent in turns over all workers. An
 * epoch in which one worker did the work gives the rate of running
 * compact; with spreading allowed, an epoch in which more than one and a
 * half workers were busy gives the rate of running spread. If spread is
 * slower than compact (by a tenth), the runtime runs compact for a hold
 * that doubles at each such finding (HOLD_MIN_NS up to HOLD_MAX_NS), then
 * tries spreading again; if spread wins it is trusted for a period that
 * doubles likewise, after which a short compact hold measures the compact
 * rate again, since the work may have changed. Compact means: no steal
 * for backlog (a stuck worker is still robbed), no wake-up for a backlog,
 * and the workers other than the busiest of the last epoch (the keeper)
 * hand it what they have queued, every 64 ticks (see check_compact()).
 * The runtime starts compact, and after an idle spell new work starts
 * compact unless spreading had won; so a trial always has a compact rate
 * to be compared with. The constants are periods of the controller, not
 * properties of any workload: what decides is the measured rates.
 */
#define EPOCH_NS     4000000ull
#define HOLD_MIN_NS  8000000ull
#define HOLD_MAX_NS  1000000000ull
#define TRUST_MIN_NS 100000000ull
#define TRUST_MAX_NS 4000000000ull
/* An epoch with more steals than this did not run compact. */
#define EPOCH_STEALS_MAX 16u
/* A compact rate older than this says nothing about the work now. */
#define SOLO_STALE_NS 1000000000ull

enum ctl_state {
	CTL_SOLO,   /* compact, measuring one worker alone */
	CTL_TRIAL,  /* spreading allowed, waiting for a spread epoch */
	CTL_SPREAD, /* spreading won; trusted until `until` */
};

/* The monitor thread's own state. */
struct ctl {
	enum ctl_state state;
	unsigned skip; /* epochs to ignore after a change (transition) */
	uint64_t t0;   /* epoch start (ticks) and the sums then */
	uint64_t msgs0;
	uint64_t busy0;
	uint64_t *handled0; /* per worker, to find the busiest */
	uint64_t steals0;
	uint64_t solo_rate; /* messages per 2^20 ticks alone; 0: none yet */
	uint64_t solo_at;   /* when it was measured */
	bool solo_fresh;    /* measured during the current hold */
	uint64_t hold;      /* the next compact hold, ticks */
	uint64_t trust;     /* the next period spreading is trusted, ticks */
	uint64_t until;     /* end of the current hold or trust period */
};

static uint64_t
ns_to_ticks(uint64_t ns)
{
	return ns / 1000u * tr__ticks_per_us();
}

static void
ctl_compact(tr_runtime *rt, struct ctl *c, unsigned keeper, uint64_t now,
	    uint64_t hold)
{
	atomic_store_explicit(&rt->keeper, keeper, memory_order_relaxed);
	atomic_store_explicit(&rt->compact, true, memory_order_relaxed);
	tr__stat_add_shared(&rt->foreign.compacts, 1);
	c->state = CTL_SOLO;
	c->until = now + hold;
	c->solo_fresh = false;
	c->skip = 1;
}

/* Start a new epoch from here, ignoring the time before (idle, say). */
static void
ctl_restart(tr_runtime *rt, struct ctl *c, uint64_t now)
{
	c->t0 = now;
	c->msgs0 = 0;
	c->busy0 = 0;
	c->steals0 = 0;
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];

		c->handled0[i] = atomic_load_explicit(&v->stats.handled,
						      memory_order_relaxed);
		c->msgs0 += c->handled0[i];
		c->busy0 +=
			atomic_load_explicit(&v->busy, memory_order_relaxed);
		c->steals0 += atomic_load_explicit(&v->stats.steals,
						   memory_order_relaxed);
	}
	c->skip = 1;
}

static void
ctl_epoch(tr_runtime *rt, struct ctl *c, uint64_t now)
{
	uint64_t msgs = 0, busy = 0, most = 0, steals = 0;
	unsigned busiest = 0;

	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];
		uint64_t h = atomic_load_explicit(&v->stats.handled,
						  memory_order_relaxed);

		if (h - c->handled0[i] >= most) {
			most = h - c->handled0[i];
			busiest = i;
		}
		c->handled0[i] = h;
		msgs += h;
		busy += atomic_load_explicit(&v->busy, memory_order_relaxed);
		steals += atomic_load_explicit(&v->stats.steals,
					       memory_order_relaxed);
	}
	uint64_t dt = now - c->t0;
	uint64_t dm = msgs - c->msgs0;
	uint64_t db = busy - c->busy0;
	uint64_t ds = steals - c->steals0;

	c->t0 = now;
	c->msgs0 = msgs;
	c->busy0 = busy;
	c->steals0 = steals;
	if (dt == 0 || c->skip > 0) {
		if (c->skip > 0) {
			c->skip--;
		}
		return;
	}
	/* Workers busy on average, in sixteenths; messages per 2^20 ticks. */
	uint64_t busy16 = db * 16u / dt;
	uint64_t rate = (dm << 20) / dt;
	/*
	 * Compact: about one worker busy and (nearly) nothing moved between
	 * workers, so the work sat on one. Spread: one and a half or more.
	 */
	bool solo = busy16 >= 8 && busy16 <= 20 && ds <= EPOCH_STEALS_MAX;
	bool spread = busy16 >= 24;

	if (solo) {
		c->solo_rate = rate;
		c->solo_at = now;
		c->solo_fresh = true;
	}
	bool judge = spread && c->state != CTL_SOLO;
	if (judge && (c->solo_rate == 0 ||
		      now - c->solo_at >= ns_to_ticks(SOLO_STALE_NS))) {
		/* Nothing to compare with: measure compact first. */
		ctl_compact(rt, c, busiest, now, ns_to_ticks(HOLD_MIN_NS));
		return;
	}
	if (judge && rate * 10u < c->solo_rate * 9u) {
		/* Spread is slower than one worker was: run compact. */
		ctl_compact(rt, c, busiest, now, c->hold);
		c->hold = c->hold * 2 < ns_to_ticks(HOLD_MAX_NS)
				  ? c->hold * 2
				  : ns_to_ticks(HOLD_MAX_NS);
		c->trust = ns_to_ticks(TRUST_MIN_NS);
		return;
	}
	switch (c->state) {
	case CTL_SOLO:
		/* Without a measurement the hold lasts four times as long. */
		if (now >= c->until &&
		    (c->solo_fresh || now - c->until >= 3 * c->hold)) {
			atomic_store_explicit(&rt->compact, false,
					      memory_order_relaxed);
			c->state = CTL_TRIAL;
			c->skip = 1;
		}
		break;
	case CTL_TRIAL:
		if (judge) {
			/* Spread won (see above): trust it for a while. */
			c->hold = ns_to_ticks(HOLD_MIN_NS);
			c->state = CTL_SPREAD;
			c->until = now + c->trust;
			c->trust = c->trust * 2 < ns_to_ticks(TRUST_MAX_NS)
					   ? c->trust * 2
					   : ns_to_ticks(TRUST_MAX_NS);
		}
		break;
	case CTL_SPREAD:
		if (now >= c->until) {
			/* Measure compact again: the work may have changed. */
			ctl_compact(rt, c, busiest, now,
				    ns_to_ticks(HOLD_MIN_NS));
		}
		break;
	}
}

static void *
monitor_main(void *arg)
{
	tr_runtime *rt = arg;
	unsigned idle = 0;
	struct ctl c = {
		.state = CTL_SOLO,
		.handled0 = rt->mon_handled,
		.hold = ns_to_ticks(HOLD_MIN_NS),
		.trust = ns_to_ticks(TRUST_MIN_NS),
	};

	tr__thread_name("tr-monitor", -1);
	ctl_restart(rt, &c, tr__ticks());
	c.until = c.t0 + c.hold;
	uint64_t sleep_ns = MON_TICK_NS;
	uint64_t last_epoch = c.t0;
	for (;;) {
		atomic_store_explicit(&rt->mon_next,
				      tr__ticks() + ns_to_ticks(sleep_ns),
				      memory_order_relaxed);
		tr__park_monitor_nap(rt, sleep_ns);
		if (atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
			break;
		}
		uint64_t looked = tr__ticks();
		sleep_ns = tr__park_monitor_next(rt, looked, monitor_look(rt));
		uint64_t now = tr__ticks();
		if (now - last_epoch >= ns_to_ticks(EPOCH_NS)) {
			last_epoch = now;
			ctl_epoch(rt, &c, now);
		}
		if (atomic_load_explicit(&rt->n_sleeping,
					 memory_order_relaxed) < rt->nworkers) {
			idle = 0;
			continue;
		}
		if (++idle < MON_IDLE_LOOKS) {
			continue;
		}
		/* Every worker has slept for several looks: the runtime is
		 * idle, and an idle runtime uses no CPU. */
		idle = 0;
		tr__park_monitor_idle(rt);
		ctl_restart(rt, &c, tr__ticks());
		last_epoch = c.t0;
		/* Work just arrived: look when its first turn could be stuck.
		 */
		sleep_ns =
			tr__ticks_to_ns(rt->stuck_ticks) + MON_EARLY_SLACK_NS;
		if (c.state == CTL_TRIAL) {
			/* No verdict yet: new work starts compact. */
			ctl_compact(rt, &c, 0, c.t0, ns_to_ticks(HOLD_MIN_NS));
		}
	}
	return NULL;
}

void
tr__sched_settle(struct tr__worker *w, uint64_t now)
{
	if (w->prev_start == 0) {
		return;
	}
	uint64_t len = now > w->prev_start ? now - w->prev_start : 0;

	if (w->prev_last != 0) {
		tr__sched_call_ended(w, w->prev_last, now, w->rt->slow_ticks);
	}
	w->prev_start = 0;
	atomic_store_explicit(
		&w->busy,
		atomic_load_explicit(&w->busy, memory_order_relaxed) + len,
		memory_order_relaxed);
	/* avg += (len - avg) / 8, kept for thieves (steal()). */
	uint64_t avg = atomic_load_explicit(&w->turn_avg, memory_order_relaxed);
	atomic_store_explicit(&w->turn_avg, avg - avg / 8 + len / 8,
			      memory_order_relaxed);
}

static void *
worker_main(void *arg)
{
	struct tr__worker *w = arg;
	tr_runtime *rt = w->rt;

	tl_worker = w;
	tr__thread_name("tr-worker-", (int)w->index);
	if (rt->cfg.pin_workers != 0) {
		/* Unpinned is still correct: a failure changes nothing else. */
		(void)tr__thread_pin(w->index);
	}
	if (w->loop != NULL) {
		tr__thread_block_sigpipe(); /* it runs libuv writes too */
	}
	/* Reads this worker polls become messages from its own nodes. */
	tr__msg_thread_cache_set(w->cache);
	for (;;) {
		struct tr__actor *a = find_local(w);

		if (a == NULL) {
			/* The last turn ended: before any wait. */
			if (w->prev_start != 0) {
				tr__sched_settle(w, tr__ticks());
			}
			/*
			 * Spinning catches work without a futex call; a free
			 * loop's poll catches it as cheaply, and I/O too.
			 * Either way look at the other workers first (one
			 * stuck in a long turn gives up its queue).
			 */
			if (w->loop == NULL) {
				a = spin(w, false);
			} else if (tr__hold_free(w->loop)) {
				a = steal(w);
			} else {
				/*
				 * If its own thread holds the loop (every
				 * worker was busy), ask for it now, not only
				 * when going to sleep: a worker that keeps
				 * finding work while it spins would never get
				 * it back. spin() stops once it is handed
				 * over. (A worker's poll is left alone.)
				 */
				a = spin(w, tr__hold_ask(w->loop, w->index));
			}
		}
		if (a != NULL) {
			/* Odd while a turn runs: see tr__sched_settled(). */
			tr__stat_add(&w->turns, 1);
			/* tr__actor_run stamps turn_start (turn_began()) and
			 * settles the turn before. */
			tr__actor_run(w, a);
			atomic_store_explicit(&w->turn_start, 0,
					      memory_order_relaxed);
			tr__stat_add(&w->turns, 1);
			continue;
		}
		if (atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
			break;
		}
		tr__park(w);
	}
	tr__msg_thread_cache_set(NULL);
	tl_worker = NULL;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                              */

tr_err
tr__sched_init(tr_runtime *rt)
{
	unsigned n = rt->nworkers;

	rt->workers = tr__calloc(sizeof(struct tr__worker) * n);
	if (rt->workers == NULL) {
		return TR_ENOMEM;
	}
	rt->mon_handled = tr__calloc(sizeof(uint64_t) * n);
	if (rt->mon_handled == NULL) {
		tr__free(rt->workers, sizeof(struct tr__worker) * n);
		rt->workers = NULL;
		return TR_ENOMEM;
	}
	ck_stack_init(&rt->inject);
	tr__msg_pool_init(&rt->msg_pool);
	rt->steal_backlog_ticks =
		(uint64_t)STEAL_BACKLOG_US * tr__ticks_per_us();
	rt->stuck_ticks = (uint64_t)STUCK_US * tr__ticks_per_us();
	for (unsigned i = 0; i < n; i++) {
		struct tr__worker *w = &rt->workers[i];

		w->rt = rt;
		w->index = i;
		w->cx.rt = rt;
		w->cx.w = w;
		tr__msg_cache_init(w->cache, &rt->msg_pool);
		w->ring_buf = tr__calloc(sizeof(ck_ring_buffer_t) * RING_SIZE);
		if (w->ring_buf == NULL) {
			tr__sched_fini(rt);
			return TR_ENOMEM;
		}
		ck_ring_init(&w->ring, RING_SIZE);
		ck_stack_init(&w->handin);
	}
	/* Compact until the monitor has measured one worker alone. */
	atomic_store_explicit(&rt->compact, n > 1, memory_order_relaxed);
	return TR_OK;
}

/* Tell the first @started workers and, if it runs, the monitor to exit,
 * and join them. */
static void
stop_threads(tr_runtime *rt, unsigned started, bool monitor)
{
	/* seq_cst: a worker that parks after tr__park_stop reads it. */
	atomic_store_explicit(&rt->shutdown, true, memory_order_seq_cst);
	for (unsigned i = 0; i < started; i++) {
		tr__park_stop(&rt->workers[i]);
	}
	if (monitor) {
		tr__park_monitor_stop(rt);
		pthread_join(rt->mon_thread, NULL);
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(rt->workers[i].thread, NULL);
	}
}

tr_err
tr__sched_start(tr_runtime *rt)
{
	for (unsigned i = 0; i < rt->nworkers; i++) {
		rt->workers[i].loop = tr__io_for_worker(rt->io, i);
	}
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *w = &rt->workers[i];

		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			stop_threads(rt, i, false);
			return TR_ESYS;
		}
	}
	/* A single worker has nobody to hand work to: no monitor. */
	if (rt->nworkers > 1 &&
	    pthread_create(&rt->mon_thread, NULL, monitor_main, rt) != 0) {
		stop_threads(rt, rt->nworkers, false);
		return TR_ESYS;
	}
	return TR_OK;
}

void
tr__sched_shutdown(tr_runtime *rt)
{
	stop_threads(rt, rt->nworkers, rt->nworkers > 1);
}

void
tr__sched_fini(tr_runtime *rt)
{
	if (rt->workers == NULL) {
		return;
	}
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *w = &rt->workers[i];

		tr__msg_cache_fini(w->cache);
		tr__free(w->ring_buf, sizeof(ck_ring_buffer_t) * RING_SIZE);
	}
	tr__msg_pool_fini(&rt->msg_pool);
	tr__free(rt->workers, sizeof(struct tr__worker) * rt->nworkers);
	rt->workers = NULL;
	tr__free(rt->mon_handled, sizeof(uint64_t) * rt->nworkers);
	rt->mon_handled = NULL;
}

bool
tr__sched_settled(tr_runtime *rt)
{
	if (has_work(rt)) {
		return false;
	}
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *w = &rt->workers[i];

		if ((atomic_load_explicit(&w->turns, memory_order_acquire) &
		     1) != 0 ||
		    atomic_load_explicit(&w->next_slot, memory_order_relaxed) !=
			    NULL ||
		    atomic_load_explicit(&w->ovf_n, memory_order_relaxed) !=
			    0) {
			return false;
		}
	}
	return true;
}

uint32_t
tr__sched_runq_len(tr_runtime *rt, unsigned i)
{
	struct tr__worker *w = &rt->workers[i];

	return ck_ring_size(&w->ring) +
	       atomic_load_explicit(&w->ovf_n, memory_order_relaxed) +
	       (atomic_load_explicit(&w->next_slot, memory_order_relaxed) !=
				NULL
			? 1u
			: 0u);
}

bool
tr__sched_has_local(struct tr__worker *w)
{
	return atomic_load_explicit(&w->next_slot, memory_order_relaxed) !=
		       NULL ||
	       ck_ring_size(&w->ring) > 0 || w->ovf_head != NULL ||
	       ck_pr_load_ptr(&w->handin.head) != NULL;
}
