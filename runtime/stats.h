/*
 * Per-worker counters. Each worker writes only its own, with a relaxed
 * load and store (a plain add on x86, no locked instruction); readers sum
 * all workers with relaxed loads. Threads that are not workers use the
 * runtime's `foreign` block, which takes real atomic adds.
 */
#ifndef TR_RUNTIME_STATS_H
#define TR_RUNTIME_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Scheduling delay histogram: bucket i holds delays in [2^i, 2^(i+1)) ns. */
#define TR__HIST_BUCKETS 40

struct tr__stats {
	_Atomic uint64_t sent;
	_Atomic uint64_t handled; /* delivered to a handler */
	_Atomic uint64_t dead;
	/* Of those handled, the ones the handler called unhandled, which
	 * count as dead letters too (tr_unhandled). */
	_Atomic uint64_t unhandled;
	_Atomic uint64_t full;
	_Atomic uint64_t steals;
	_Atomic uint64_t parks;
	_Atomic uint64_t wakes;
	_Atomic uint64_t slow;
	_Atomic uint64_t spawned;
	_Atomic uint64_t stopped;
	_Atomic uint64_t mutes;
	_Atomic uint64_t io_polls;
	_Atomic uint64_t
		rescues; /* the monitor woke a worker for a stuck queue */
	_Atomic uint64_t compacts; /* the monitor found spreading slower */
	_Atomic uint64_t
		remote_out;         /* operations the distribution layer took */
	_Atomic uint64_t remote_in; /* operations it handed in */
	_Atomic uint64_t hist[TR__HIST_BUCKETS];
};

/* Single-writer increment (the owning worker). */
static inline void
tr__stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Multi-writer increment (foreign threads). */
static inline void
tr__stat_add_shared(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif /* TR_RUNTIME_STATS_H */
