/*
 * Scheduler: workers, their run queues, the inject queue, stealing and
 * parking. See sched.c for the design and docs/ARCHITECTURE.md.
 */
#ifndef TR_RUNTIME_SCHED_H
#define TR_RUNTIME_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_ring.h>
#include <ck_stack.h>

#include "runtime/actor.h"
#include "runtime/msg.h"
#include "runtime/stats.h"

struct tr__io;

struct tr__worker {
	/* Read by thieves and wakers. */
	_Alignas(64) tr_runtime *rt;
	unsigned index;
	ck_ring_t ring;
	ck_ring_buffer_t *ring_buf;
	_Alignas(64) _Atomic(struct tr__actor *) next_slot;
	_Atomic uint64_t turns; /* +1 at turn start and end; odd = in a turn */
	/* When the current turn began (tr__ticks), 0 between turns: how
	 * thieves and the monitor tell a worker stuck in a long turn. */
	_Atomic uint64_t turn_start;
	_Atomic uint64_t turn_avg; /* moving average of turn length, ticks */
	_Atomic uint64_t busy;     /* ticks spent in turns, for the monitor */
	_Atomic uint32_t park;     /* TR__PARK_*: where it sleeps (park.c) */
	/*
	 * Actors handed to this worker by others when the runtime runs
	 * compact (see "Spreading" in sched.c): any worker pushes, the owner
	 * takes the whole stack.
	 */
	_Alignas(64) ck_stack_t handin;

	/* Owned by the worker thread. */
	_Alignas(64) pthread_t thread;
	struct tr_ctx cx;
	struct tr__io *loop; /* the I/O loop it may poll when idle, or NULL */
	unsigned tick;
	unsigned streak;
	unsigned sample_tick;
	/*
	 * Private FIFO for actors that did not fit in the ring (linked
	 * through qlink). Refilled into the ring as it drains, so thieves
	 * still find work; ovf_n is read by metrics.
	 */
	ck_stack_entry_t *ovf_head;
	ck_stack_entry_t *ovf_tail;
	_Atomic uint32_t ovf_n;
	struct tr__actor *free_slots;
	unsigned n_free_slots;
	/*
	 * The last turn, until it is accounted for (tr__sched_settle): when
	 * it began and when its last handler call began (ticks), 0 if none
	 * waits. Its end is the next reading of the clock the worker makes
	 * anyway, the next turn's start or the moment it finds nothing to
	 * run, so a turn costs one reading, not two.
	 */
	uint64_t prev_start;
	uint64_t prev_last;
	struct tr__msg_cache cache[TR__MSG_CLASSES];
	struct tr__stats stats;
};

/* The worker running on this thread for @rt, or NULL. */
struct tr__worker *tr__sched_current(tr_runtime *rt);

/* Called by the sender whose push found the mailbox idle. */
void
tr__sched_schedule(tr_runtime *rt, struct tr__worker *w, struct tr__actor *a);

/*
 * Is there work that @w, about to park, would take if it stayed awake?
 * (tr__park looks after counting itself asleep.)
 */
bool tr__sched_work_for(struct tr__worker *w);
/*
 * @w is going to sleep: the earliest moment (ticks) at which actors queued
 * behind another worker's turn would be stuck behind it (a little after,
 * so that a look then finds it stuck), were that turn to last, or 0 if
 * nothing is queued behind any turn.
 */
uint64_t tr__sched_stuck_due(struct tr__worker *w);
/* Owner: @w has runnable actors of its own queued. */
bool tr__sched_has_local(struct tr__worker *w);

/*
 * tr__actor_run, as a turn begins at @start (tr__ticks): from now on the
 * turn's age tells others whether the actors queued here are stuck behind
 * it. The owner clears it when the turn ends.
 */
static inline void
tr__sched_turn_began(struct tr__worker *w, uint64_t start)
{
	atomic_store_explicit(&w->turn_start, start, memory_order_relaxed);
}

/*
 * A handler call that began at @began (tr__ticks) ended by @now: count it
 * in the slow handlers if it took longer than @slow ticks. The one rule
 * for both places a call's end is read (tr__actor_run, tr__sched_settle).
 */
static inline void
tr__sched_call_ended(struct tr__worker *w, uint64_t began, uint64_t now,
		     uint64_t slow)
{
	if (now > began && now - began > slow) {
		tr__stat_add(&w->stats.slow, 1);
	}
}

/*
 * Account for @w's last turn, which ended before @now (tr__ticks): its
 * length goes to the monitor's busy time and the thieves' average, and
 * its last handler call, if longer than the slow threshold, to the slow
 * handlers. Owner only; nothing if no turn waits.
 */
void tr__sched_settle(struct tr__worker *w, uint64_t now);

/* Put @a back on @w's queue after a turn that left messages. */
void tr__sched_reschedule(struct tr__worker *w, struct tr__actor *a);

tr_err tr__sched_init(tr_runtime *rt);
tr_err tr__sched_start(tr_runtime *rt);
/* Tell workers to exit and join them. */
void tr__sched_shutdown(tr_runtime *rt);
void tr__sched_fini(tr_runtime *rt);

/*
 * True when no actor is queued anywhere and no worker is inside a turn
 * (a snapshot: callers check twice and also compare message counters).
 */
bool tr__sched_settled(tr_runtime *rt);

/* Run-queue length of worker @i (approximate). */
uint32_t tr__sched_runq_len(tr_runtime *rt, unsigned i);

#endif /* TR_RUNTIME_SCHED_H */
