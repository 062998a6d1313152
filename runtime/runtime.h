/*
 * The runtime object. Fields are grouped by who writes them; see the
 * comments on each group.
 */
#ifndef TR_RUNTIME_RUNTIME_H
#define TR_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_stack.h>

#include <troupe/runtime.h>

#include "runtime/actor.h"
#include "runtime/blocking.h"
#include "runtime/io_loop.h"
#include "runtime/remote.h"
#include "runtime/stats.h"

/* Slot table geometry: 2^12 actors per chunk, 2^16 chunks = 2^28 slots. */
#define TR__CHUNK_BITS  12
#define TR__CHUNK_SLOTS (1u << TR__CHUNK_BITS)
#define TR__MAX_CHUNKS  (1u << 16)

enum tr__rt_state {
	TR__RT_CREATED,
	TR__RT_RUNNING,
	TR__RT_JOINED,
};

struct tr_runtime {
	/* Set at create, read-only afterwards. */
	tr_config cfg;
	unsigned nworkers;
	unsigned batch;
	uint64_t slow_ticks;
	uint64_t steal_backlog_ticks;
	uint64_t stuck_ticks; /* a turn this old is stuck (sched.c) */
	struct tr__worker *workers;
	/*
	 * The context of threads that are not actors (tr_runtime_ctx): no
	 * actor, no inbox, no worker, sender 0. Every thread shares it,
	 * which is safe because the calls write to a context only while it
	 * has an actor (ptr_taken, stop_requested: runtime/actor.c); a send
	 * through it picks the calling thread's worker at the call.
	 */
	tr_ctx cx;

	/* Slot table: chunks published with release, read with acquire. */
	_Atomic(struct tr__actor *) *chunks;
	_Atomic uint32_t next_fresh;
	pthread_mutex_t slot_mu; /* guards free_slots (foreign spawns only) */
	struct tr__actor *free_slots;
	_Atomic uint64_t slots_retired; /* slots whose generations ran out */

	/* Inject queue for threads that are not workers. */
	_Alignas(64) ck_stack_t inject;
	_Alignas(64) _Atomic uint32_t n_sleeping;
	_Atomic uint32_t n_spinning;
	_Atomic uint32_t wake_rr;
	_Atomic bool shutdown; /* workers exit */
	/* The monitor thread (sched.c): its futex word (park.c). */
	_Atomic uint32_t mon;
	pthread_t mon_thread;
	/*
	 * Ticks: when the monitor next looks (0 while it sleeps idle), and
	 * an earlier look a parking worker asked for (0: none). See
	 * tr__park_monitor_due().
	 */
	_Atomic uint64_t mon_next;
	_Atomic uint64_t mon_due;
	/*
	 * Set by the monitor (sched.c, "Spreading"): while `compact`, short
	 * work is not spread over workers, and it stays with `keeper`.
	 */
	_Atomic bool compact;
	_Atomic uint32_t keeper;
	uint64_t *mon_handled; /* the monitor's, one per worker */

	/* Lifecycle. */
	_Alignas(64) _Atomic int state;
	_Atomic bool stopping; /* no new spawns; join stops every actor */
	/*
	 * Spawns by threads that are not workers (through a thread's
	 * context, accepted connections) between their check of `stopping`
	 * and the queueing of the new actor's first message. Such a spawn
	 * has no live parent to keep join's sweep going, so join waits for
	 * this to reach zero before it sweeps: a Dekker pair of seq_cst
	 * operations with `stopping` (see tr__spawn and tr_runtime_join).
	 */
	_Atomic uint32_t foreign_spawning;
	pthread_mutex_t life_mu;
	pthread_cond_t life_cv;
	_Atomic uint64_t next_ref;
	_Atomic uint64_t gave_back_ns; /* last idle give-back (sched.c) */

	struct tr__io *io; /* the I/O thread (runtime/io_loop.c) */
	/* The distribution layer, attached once (runtime/remote.c). */
	_Atomic(const struct tr__remote *) remote;
	struct tr__msg_pool msg_pool;
	struct tr__stats foreign;
	struct tr__blocking blocking;
};

/* Sum of every worker's and the foreign counters. */
void tr__runtime_sum_stats(tr_runtime *rt, struct tr__stats *out);

#endif /* TR_RUNTIME_RUNTIME_H */
