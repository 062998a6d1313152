/*
 * Work-stealing scheduler.
 *
 * Each worker has:
 * - a next slot: the actor most recently made runnable by a send from this
 *   worker. The worker runs it next, so two actors that talk to each other
 *   stay on one core (locality). Thieves may take it only if they see the
 *   same actor there on two probes a few microseconds apart, i.e. the
 *   owner is busy elsewhere.
 * - a ck_ring run queue (single producer: the owner; multiple consumers:
 *   the owner and thieves). A new next-slot actor pushes the previous one
 *   here; actors that used up their batch go here, behind the others.
 * Threads that are not workers push runnable actors on the inject queue
 * (a ck_stack that workers take whole and reverse to FIFO).
 *
 * Idle workers spin for `spin_us` looking for work (own queues, inject,
 * stealing), then park on a futex; a worker whose I/O loop is free instead
 * looks at the others once and parks in a poll of that loop, woken by
 * uv_async_send (see park() and "Who runs a loop" in io_loop.c). Its
 * `sleeping` word and its place in n_sleeping are the same either way.
 * Lost wake-ups are excluded by a Dekker
 * pair: a parking worker increments n_sleeping (seq_cst) and then checks
 * every queue; an injecting thread publishes and then (seq_cst RMW)
 * reads n_sleeping, waking a sleeper if there is one. Pushes by a worker
 * onto its own queues need no such guarantee (that worker is awake and
 * will run them); they wake a sleeper only as a hint for parallelism, and
 * each worker re-checks that hint every 64 scheduling ticks.
 *
 * Threads: everything here runs on worker threads except
 * tr__sched_schedule (any thread) and the init/start/shutdown functions
 * (setup).
 */
#include <ck_pr.h>

#include "runtime/sched.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/futex.h"
#include "runtime/internal.h"
#include "runtime/io_loop.h"
#include "runtime/msg.h"
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

/* @v's `sleeping` was just cleared by us: get it out of its sleep. */
static void
rouse(struct tr__worker *v)
{
	/* Set before `sleeping` (release), so our acq_rel RMW sees it. */
	struct tr__io *loop =
		atomic_load_explicit(&v->polling, memory_order_relaxed);

	if (loop != NULL) {
		/* Asleep in the loop's poll (see park()). If it has left the
		 * poll meanwhile, this wakes the loop's next holder once. */
		tr__io_kick(loop);
	} else {
		tr__futex_wake(&v->sleeping);
	}
}

/* Wake @v if it is parked; false if it was not (or someone else won). */
static bool
wake_worker(struct tr__worker *v)
{
	uint32_t one = 1;

	if (atomic_load_explicit(&v->sleeping, memory_order_relaxed) == 1 &&
	    atomic_compare_exchange_strong_explicit(&v->sleeping, &one, 0,
						    memory_order_acq_rel,
						    memory_order_relaxed)) {
		rouse(v);
		return true;
	}
	return false;
}

static void
wake_one(tr_runtime *rt)
{
	unsigned n = rt->nworkers;
	unsigned start = atomic_fetch_add_explicit(&rt->wake_rr, 1,
						   memory_order_relaxed);

	for (unsigned k = 0; k < n; k++) {
		struct tr__worker *v = &rt->workers[(start + k) % n];
		/* A worker polling its I/O loop sends from its callbacks
		 * while it counts as asleep: it must not pick itself. */
		if (v != tl_worker && wake_worker(v)) {
			return;
		}
	}
}

/* A hint: more runnable work exists than this worker can run right now. */
static void
maybe_wake(tr_runtime *rt)
{
	if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) > 0 &&
	    atomic_load_explicit(&rt->n_spinning, memory_order_relaxed) == 0) {
		wake_one(rt);
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
	if (queued < 2) {
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
	 * fetch_add in park(). Both are RMWs on one location, so they are
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
		wake_one(rt);
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
	atomic_store_explicit(&w->ovf_n,
			      atomic_load_explicit(&w->ovf_n,
						   memory_order_relaxed) + 1,
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
	atomic_store_explicit(&w->ovf_n,
			      atomic_load_explicit(&w->ovf_n,
						   memory_order_relaxed) - 1,
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

static struct tr__actor *
take_inject(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;

	if (ck_pr_load_ptr(&rt->inject.head) == NULL) {
		return NULL;
	}
	ck_stack_entry_t *rev = tr__stack_take_fifo(&rt->inject);
	if (rev == NULL) {
		return NULL;
	}
	ck_stack_entry_t *e;
	struct tr__actor *first = tr__container_of(rev, struct tr__actor, qlink);
	for (e = rev->next; e != NULL;) {
		ck_stack_entry_t *next = e->next;
		ring_push(w, tr__container_of(e, struct tr__actor, qlink));
		e = next;
	}
	return first;
}

static struct tr__actor *
find_local(struct tr__worker *w)
{
	struct tr__actor *a;

	w->tick++;
	if ((w->tick & 63) == 0) {
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
	return take_inject(w);
}

/*
 * Take work from another worker. A victim that keeps starting new turns is
 * making progress: take from its ring only if worth_moving(). A victim that has not started
 * a turn since our previous probe (@probe rounds are several microseconds
 * apart) is stuck in a long handler: then take even its lone ring entry or
 * the actor in its next slot, which would otherwise wait.
 */
static struct tr__actor *
steal(struct tr__worker *w, bool probe)
{
	tr_runtime *rt = w->rt;
	unsigned n = rt->nworkers;

	for (unsigned k = 1; k < n; k++) {
		struct tr__worker *v = &rt->workers[(w->index + k) % n];
		struct tr__actor *a;
		uint64_t turns =
			atomic_load_explicit(&v->turns, memory_order_relaxed);
		bool stuck = probe && turns == w->seen_turns[v->index];

		if (probe) {
			w->seen_turns[v->index] = turns;
		}
		unsigned queued = ck_ring_size(&v->ring);
		if ((stuck ? queued > 0 : worth_moving(rt, v, queued)) &&
		    ck_ring_dequeue_spmc(&v->ring, v->ring_buf, &a)) {
			tr__stat_add(&w->stats.steals, 1);
			return a;
		}
		if (!stuck) {
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
		if (ck_ring_size(&rt->workers[i].ring) > 0) {
			return true;
		}
	}
	return false;
}

/* @handover: we asked for our I/O loop; stop when it is handed over. */
static struct tr__actor *
spin(struct tr__worker *w, bool handover)
{
	tr_runtime *rt = w->rt;
	struct tr__actor *a = NULL;
	uint64_t deadline = tr__clock_ns() + (uint64_t)rt->cfg.spin_us * 1000u;

	atomic_fetch_add_explicit(&rt->n_spinning, 1, memory_order_relaxed);
	for (unsigned i = 1;; i++) {
		a = find_local(w);
		if (a != NULL) {
			break;
		}
		a = steal(w, (i & 15) == 0);
		if (a != NULL) {
			break;
		}
		if ((i & 63) == 0 &&
		    (tr__clock_ns() > deadline ||
		     atomic_load_explicit(&rt->shutdown,
					  memory_order_relaxed))) {
			break;
		}
		if ((i & 7) == 0) {
			if (handover && tr__io_drive_free(w->loop)) {
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
	atomic_fetch_sub_explicit(&rt->n_spinning, 1, memory_order_relaxed);
	return a;
}

/*
 * How long a parked worker sleeps while another worker is still awake.
 * It then looks once for a worker stuck in a long handler with actors
 * waiting behind it (see steal()). When every worker is parked the
 * runtime is idle and they sleep until woken, so an idle runtime uses no
 * CPU; this timeout only costs about one wake-up per millisecond while a
 * neighbour is busy.
 */
#define PARK_CHECK_NS 1000000u

/* If a worker sleeps without a time limit, wake it (it sleeps again
 * with one), so that someone looks for a worker stuck in a long turn. */
static void
wake_untimed(tr_runtime *rt, const struct tr__worker *except)
{
	for (unsigned i = 0; i < rt->nworkers; i++) {
		struct tr__worker *v = &rt->workers[i];
		uint32_t untimed = 2;
		/*
		 * Mark it (3) so that it does not take this for a wake-up
		 * for work and wake another in turn: idle workers would
		 * otherwise keep waking each other.
		 */
		if (v != except &&
		    atomic_load_explicit(&v->park_mode, memory_order_relaxed) ==
			    2 &&
		    atomic_compare_exchange_strong_explicit(
			    &v->park_mode, &untimed, 3, memory_order_relaxed,
			    memory_order_relaxed) &&
		    wake_worker(v)) {
			break;
		}
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
	uint64_t last = atomic_load_explicit(&rt->gave_back_ns,
					     memory_order_relaxed);

	if (now - last < GIVE_BACK_NS ||
	    !atomic_compare_exchange_strong_explicit(&rt->gave_back_ns, &last,
						     now, memory_order_relaxed,
						     memory_order_relaxed)) {
		return;
	}
	tr__msg_pool_trim(&rt->msg_pool);
	tr__alloc_give_back();
}

static void
park(struct tr__worker *w)
{
	tr_runtime *rt = w->rt;
	/*
	 * With the I/O loop free, sleep in its poll rather than on the
	 * futex: the events it returns become turns on this worker, with no
	 * hand-off to another thread (see "Who runs a loop", io_loop.c).
	 */
	struct tr__io *loop = w->loop != NULL && tr__io_drive_take(w->loop)
				      ? w->loop
				      : NULL;

	atomic_store_explicit(&w->polling, loop, memory_order_relaxed);
	/*
	 * release: a waker that clears the word reads `polling`. seq_cst:
	 * with the load of the loop's state below, the Dekker pair of the
	 * loop thread's handover (store FREE, then CAS on this word).
	 */
	atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
	/* seq_cst: the Dekker pair of the RMW in inject(). */
	uint32_t before = atomic_fetch_add_explicit(&rt->n_sleeping, 1,
						    memory_order_seq_cst);
	if (has_work(rt) ||
	    atomic_load_explicit(&w->next_slot, memory_order_relaxed) != NULL ||
	    atomic_load_explicit(&rt->shutdown, memory_order_acquire) ||
	    /* The loop was handed back to us meanwhile: go and take it. */
	    (loop == NULL && w->loop != NULL && tr__io_drive_free(w->loop))) {
		atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
		atomic_fetch_sub_explicit(&rt->n_sleeping, 1,
					  memory_order_seq_cst);
		if (loop != NULL) {
			tr__io_drive_give(loop);
			atomic_store_explicit(&w->polling, NULL,
					      memory_order_relaxed);
		}
		return;
	}
	/* Held by its own thread (all workers were busy): ask for it. */
	bool asked = loop == NULL && w->loop != NULL &&
		     tr__io_drive_ask(w->loop, w->index);
	tr__stat_add(&w->stats.parks, 1);
	bool timed = before + 1 < rt->nworkers;
	if (!timed) {
		idle_give_back(rt);
	}
	bool woken = false;
	atomic_store_explicit(&w->park_mode, timed ? 1 : 2, memory_order_relaxed);
	if (loop != NULL) {
		/*
		 * One poll: it returns with events (their turns are now
		 * queued here), when a waker kicks it, or, if timed, after
		 * the check period. A waker's kick is a wake-up for work;
		 * turns this poll made runnable are not: waking an untimed
		 * sleeper for each would cost a futex call per poll, and
		 * the loop's thread does that if nobody polls for a while.
		 */
		tr__stat_add(&w->stats.io_polls, 1);
		tr__io_drive_poll(loop, timed);
		woken = atomic_exchange_explicit(&w->sleeping, 0,
						 memory_order_acq_rel) == 0;
		tr__io_drive_give(loop);
		atomic_store_explicit(&w->polling, NULL, memory_order_relaxed);
	} else {
		for (;;) {
			tr__futex_wait(&w->sleeping, 1,
				       timed ? PARK_CHECK_NS : 0);
			/* acquire: pairs with the waker's CAS (acq_rel). */
			if (atomic_load_explicit(&w->sleeping,
						 memory_order_acquire) == 0) {
				woken = true;
				break;
			}
			if (timed) {
				/* Timed out: look around once. A waker that
				 * wins the word after this still finds us
				 * awake. */
				woken = atomic_exchange_explicit(
						&w->sleeping, 0,
						memory_order_acq_rel) == 0;
				break;
			}
		}
	}
	if (atomic_exchange_explicit(&w->park_mode, 0, memory_order_relaxed) ==
	    3) {
		woken = false; /* only told to sleep with a time limit */
	}
	atomic_fetch_sub_explicit(&rt->n_sleeping, 1, memory_order_seq_cst);
	tr__stat_add(&w->stats.wakes, 1);
	if (woken && asked && tr__io_drive_free(w->loop)) {
		woken = false; /* handed the loop, not work */
	}
	if (woken) {
		/*
		 * Woken for work: make a worker that sleeps without a time
		 * limit sleep with one, in case this worker gets stuck in a
		 * long handler with actors queued behind it. Timeouts never
		 * do this, so an idle runtime settles with every worker in
		 * an untimed sleep.
		 */
		wake_untimed(rt, w);
	}
}

static void *
worker_main(void *arg)
{
	struct tr__worker *w = arg;
	tr_runtime *rt = w->rt;

	tl_worker = w;
	tr__thread_name("tr-worker-", (int)w->index);
	if (w->loop != NULL) {
		tr__thread_block_sigpipe(); /* it runs libuv writes too */
	}
	/* Reads this worker polls become messages from its own nodes. */
	tr__msg_thread_cache_set(w->cache);
	for (;;) {
		struct tr__actor *a = find_local(w);

		if (a == NULL) {
			/*
			 * Spinning catches work without a futex call; a free
			 * loop's poll catches it as cheaply, and I/O too.
			 * Either way look at the other workers first (one
			 * stuck in a long turn gives up its queue).
			 */
			if (w->loop == NULL) {
				a = spin(w, false);
			} else if (tr__io_drive_free(w->loop)) {
				a = steal(w, true);
			} else {
				/*
				 * If its own thread holds the loop (every
				 * worker was busy), ask for it now, not only
				 * when going to sleep: a worker that keeps
				 * finding work while it spins would never get
				 * it back. spin() stops once it is handed
				 * over. (A worker's poll is left alone.)
				 */
				a = spin(w, tr__io_drive_ask(w->loop,
							     w->index));
			}
		}
		if (a != NULL) {
			/* Odd while a turn runs: see tr__sched_settled(). */
			tr__stat_add(&w->turns, 1);
			uint64_t len = tr__actor_run(w, a);
			tr__stat_add(&w->turns, 1);
			/* avg += (len - avg) / 8, kept for thieves (steal()). */
			uint64_t avg = atomic_load_explicit(
				&w->turn_avg, memory_order_relaxed);
			atomic_store_explicit(&w->turn_avg,
					      avg - avg / 8 + len / 8,
					      memory_order_relaxed);
			continue;
		}
		if (atomic_load_explicit(&rt->shutdown, memory_order_acquire)) {
			break;
		}
		park(w);
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
	ck_stack_init(&rt->inject);
	tr__msg_pool_init(&rt->msg_pool);
	rt->steal_backlog_ticks = (uint64_t)STEAL_BACKLOG_US * tr__ticks_per_us();
	for (unsigned i = 0; i < n; i++) {
		struct tr__worker *w = &rt->workers[i];

		w->rt = rt;
		w->index = i;
		w->cx.rt = rt;
		w->cx.w = w;
		tr__msg_cache_init(w->cache, &rt->msg_pool);
		w->ring_buf = tr__calloc(sizeof(ck_ring_buffer_t) * RING_SIZE);
		w->seen_turns = tr__calloc(sizeof(uint64_t) * n);
		if (w->ring_buf == NULL || w->seen_turns == NULL) {
			tr__sched_fini(rt);
			return TR_ENOMEM;
		}
		ck_ring_init(&w->ring, RING_SIZE);
	}
	return TR_OK;
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
			atomic_store_explicit(&rt->shutdown, true,
					      memory_order_release);
			for (unsigned j = 0; j < i; j++) {
				/* acq_rel: rouse() reads `polling`. */
				(void)atomic_exchange_explicit(
					&rt->workers[j].sleeping, 0,
					memory_order_acq_rel);
				rouse(&rt->workers[j]);
				pthread_join(rt->workers[j].thread, NULL);
			}
			return TR_ESYS;
		}
	}
	return TR_OK;
}

void
tr__sched_shutdown(tr_runtime *rt)
{
	atomic_store_explicit(&rt->shutdown, true, memory_order_release);
	for (unsigned i = 0; i < rt->nworkers; i++) {
		/* acq_rel: rouse() reads `polling`. */
		(void)atomic_exchange_explicit(&rt->workers[i].sleeping, 0,
					       memory_order_acq_rel);
		rouse(&rt->workers[i]);
	}
	for (unsigned i = 0; i < rt->nworkers; i++) {
		pthread_join(rt->workers[i].thread, NULL);
	}
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
		tr__free(w->seen_turns, sizeof(uint64_t) * rt->nworkers);
	}
	tr__msg_pool_fini(&rt->msg_pool);
	tr__free(rt->workers, sizeof(struct tr__worker) * rt->nworkers);
	rt->workers = NULL;
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
		    atomic_load_explicit(&w->ovf_n, memory_order_relaxed) != 0) {
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

void
tr__sched_wake_worker(tr_runtime *rt, unsigned i)
{
	uint32_t one = 1;

	/* seq_cst, no relaxed pre-check: see the store in park(). */
	if (i < rt->nworkers &&
	    atomic_compare_exchange_strong_explicit(
		    &rt->workers[i].sleeping, &one, 0, memory_order_seq_cst,
		    memory_order_relaxed)) {
		rouse(&rt->workers[i]);
	}
}

void
tr__sched_nudge(tr_runtime *rt)
{
	wake_untimed(rt, NULL);
}

bool
tr__sched_has_local(struct tr__worker *w)
{
	return atomic_load_explicit(&w->next_slot, memory_order_relaxed) !=
		       NULL ||
	       ck_ring_size(&w->ring) > 0 || w->ovf_head != NULL;
}
