/*
 * Parking: where an idle worker sleeps, who wakes it, and who runs each
 * shared I/O loop. One state word per worker and one per loop; every
 * transition is a compare-and-swap on one of them. See park.c and
 * docs/SCHEDULER.md.
 */
#ifndef TR_RUNTIME_PARK_H
#define TR_RUNTIME_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <troupe/runtime.h>

struct tr__worker;
struct tr__io;

/* A worker's state word (struct tr__worker.park), a futex word. */
enum {
	TR__PARK_AWAKE, /* running, spinning, or on its way to sleep */
	TR__PARK_FUTEX, /* asleep on the futex */
	TR__PARK_POLL,  /* asleep in its loop's poll */
};

/*
 * The hand-over state of one shared loop (inside struct tr__io). `word`
 * holds who runs the loop, who asks for it and a count of a worker's
 * takes and gives; `closing` is set once, when the loop is stopping.
 * Both are futex words of the loop's own thread.
 */
struct tr__hold {
	_Atomic uint32_t word;
	_Atomic uint32_t closing;
	_Atomic uint64_t takeovers; /* by the loop's thread (metrics) */
};

/* ---- Workers ---------------------------------------------------------- */

/*
 * Sleep until woken: in the poll of @w's loop if it is free (the events
 * become turns on @w), on the futex otherwise. Without a time limit,
 * unless actors wait behind another worker's turn: then until that turn
 * would be stuck. Returns at once if work_for(@w) or shutdown is seen
 * after @w counts as asleep.
 */
void tr__park(struct tr__worker *w);
/* Wake @v if it sleeps; false if it did not, or another waker won. */
bool tr__park_wake(struct tr__worker *v);
/* Wake one sleeping worker other than the caller's, if any. */
void tr__park_wake_one(tr_runtime *rt);
/* Runtime stop: get @v out of any sleep; it sees `shutdown` and exits. */
void tr__park_stop(struct tr__worker *v);

/* ---- The monitor ------------------------------------------------------ */

/* The monitor thread: sleep @ns between looks, or until stopped. */
void tr__park_monitor_nap(tr_runtime *rt, uint64_t ns);
/*
 * The monitor thread, with every worker asleep for a while: sleep until
 * one wakes up (or shutdown). The first worker out of an idle runtime
 * wakes it (its unpark).
 */
void tr__park_monitor_idle(tr_runtime *rt);
/*
 * The monitor, after its nap: a look a parking worker asked for (ticks),
 * served by a look at @looked or later; returns how long to sleep at
 * most (ns) for the next one, or @sleep_ns if none is pending.
 */
uint64_t
tr__park_monitor_next(tr_runtime *rt, uint64_t looked, uint64_t sleep_ns);
/* Runtime stop: get the monitor out of its sleep. */
void tr__park_monitor_stop(tr_runtime *rt);

/* ---- Who runs a shared loop ------------------------------------------- */

void tr__hold_init(struct tr__hold *h);
/* Nobody runs loop @io: an idle worker should poll it rather than spin. */
bool tr__hold_free(struct tr__io *io);
/*
 * Idle worker @worker: if the loop's own thread runs @io, ask for it;
 * the thread frees it at the end of its current pass and wakes the asker.
 * Return: true if asked (now or before).
 */
bool tr__hold_ask(struct tr__io *io, unsigned worker);
/*
 * The loop's own thread: watch the loop, run it while no worker does, and
 * return holding it once it is closing (to run it until every handle has
 * closed).
 */
void tr__hold_watch(struct tr__io *io);
/* Stopping: no worker takes the loop from now on; the watcher wakes. */
void tr__hold_close(struct tr__io *io);

#endif /* TR_RUNTIME_PARK_H */
