/*
 * The I/O thread: one libuv loop that owns every uv_ handle of the
 * runtime. Actors talk to it through a command stack plus uv_async_send
 * (which coalesces, so the callback drains every queued command); libuv
 * callbacks turn into ordinary messages. No user code runs on this thread.
 * Only runtime/io_*.c include <uv.h>.
 */
#ifndef TR_RUNTIME_IO_LOOP_H
#define TR_RUNTIME_IO_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include <ck_stack.h>

#include <troupe/actor.h>
#include <troupe/error.h>

#include "runtime/park.h"

/*
 * One loop. A runtime has one or more (tr_config.io_threads), each with
 * its own thread; the runtime holds the first, which knows the others.
 * Timers and TCP handles are spread over the loops by id (tr__io_pick);
 * signals and name resolution stay on the first. Child processes have a
 * loop of their own (tr__io_proc_loop), which is not among those counted.
 */
struct tr__io;

/*
 * A command embedded in the caller's own request, so that queueing it
 * costs no allocation: @run executes on the loop's thread and owns the
 * request from then on.
 */
struct tr__io_op {
	ck_stack_entry_t link;
	void (*run)(struct tr__io *io, struct tr__io_op *op);
};

/*
 * Make @loops loops (0 means 1; no thread yet); *out is the first. With
 * @shared, idle workers poll them too (not the process loop).
 */
tr_err
tr__io_create(tr_runtime *rt, unsigned loops, bool shared, struct tr__io **out);
/* Start every loop's thread. */
tr_err tr__io_start(struct tr__io *io);
/*
 * Close every handle, wait for the close callbacks and join the threads.
 * Call only when no actor can send commands any more.
 */
void tr__io_shutdown(struct tr__io *io);
void tr__io_destroy(struct tr__io *io);
/* The loop that owns handles with this id. */
struct tr__io *tr__io_pick(struct tr__io *io, uint64_t key);
unsigned tr__io_loops(struct tr__io *io);
/* The loop that runs child processes (and nothing else). */
struct tr__io *tr__io_proc_loop(struct tr__io *io);
/*
 * Queue @op on loop @io (already picked). On an error @op was not queued
 * and stays the caller's: TR_ECLOSED after the runtime stopped.
 */
tr_err tr__io_post(struct tr__io *io, struct tr__io_op *op);

/* Timers (commands; run on the I/O thread). */
uint64_t tr__io_timer_id(struct tr__io *io);
tr_err tr__io_timer_add(struct tr__io *io, uint64_t id, uint64_t owner,
			uint64_t to, uint32_t type, const void *data,
			size_t len, uint64_t delay_ms, uint64_t period_ms);
tr_err tr__io_timer_cancel(struct tr__io *io, uint64_t id);

/* Signal watchers for SIGINT/SIGTERM; @to 0 means "stop the runtime". */
tr_err tr__io_signals(struct tr__io *io, uint64_t to);

/* Resolve @host/@service; one reply of @reply_type goes to @owner. */
tr_err tr__io_resolve(struct tr__io *io, uint64_t owner, const char *host,
		      const char *service, uint32_t reply_type);

/*
 * Run @fn(@io, @arg) on the I/O thread, in order with the other commands.
 * On TR_ENOMEM @fn never runs and @arg stays the caller's.
 */
tr_err tr__io_call(struct tr__io *io, void (*fn)(struct tr__io *io, void *arg),
		   void *arg);
/* I/O thread only: its loop, the runtime, the process list head. */
struct uv_loop_s *tr__io_uv_loop(struct tr__io *io);
tr_runtime *tr__io_runtime(struct tr__io *io);
void **tr__io_procs(struct tr__io *io);
/*
 * I/O thread only: the actor @owner stopped (0: the runtime is stopping).
 * Its children's process groups get SIGKILL and the pipes of those that
 * already exited are closed, so none of them keeps its record alive.
 */
void tr__io_process_owner_gone(struct tr__io *io, uint64_t owner);
/* I/O thread only, at the end of each pass over the loop's commands: put
 * the stdin writes gathered in the pass on their pipes. */
void tr__io_process_flush(struct tr__io *io);
/* Any thread: times reading a child's output paused (tests). */
uint64_t tr__io_process_pauses(void);
void **tr__io_tcps(struct tr__io *io);
/* I/O thread only: run a TCP request (io_tcp.c); close an owner's TCP. */
void tr__io_tcp_run(struct tr__io *io, void *arg);
void tr__io_tcp_close_owned(struct tr__io *io, uint64_t owner);
/* I/O thread only, at the end of each pass over the loop's commands: put
 * the writes gathered in the pass on their sockets. */
void tr__io_tcp_flush(struct tr__io *io);
/* Any thread (tests): writes whole on a socket by a flush, and the
 * system calls that took them. */
void tr__io_tcp_gather_stats(uint64_t *writes, uint64_t *calls);
/* Free the loop's connection table (after the loop has closed). */
void tr__io_tcp_fini(struct tr__io *io);
/*
 * What an actor that owns processes or sockets needs to release them when
 * it stops, allocated when it first takes one (NULL: out of memory), so
 * that releasing cannot fail. Any thread.
 */
struct tr__io_gone;
struct tr__io_gone *tr__io_gone_prepare(struct tr__io *io);
/* Free one that was never used (the actor never ran). */
void tr__io_gone_discard(struct tr__io_gone *g);
/* Any thread: @owner stopped; consumes @g. Cannot fail. */
void
tr__io_owner_gone(struct tr__io *io, uint64_t owner, struct tr__io_gone *g);

/* Times a loop's thread took it over from idle workers, over every loop. */
uint64_t tr__io_takeovers(struct tr__io *io);
/* Timers armed right now, over every loop (metrics, tests). */
uint64_t tr__io_timers_active(struct tr__io *io);

/*
 * Workers polling a loop (park.c). The loop worker @worker may poll when
 * idle, or NULL (loops not shared).
 */
struct tr__io *tr__io_for_worker(struct tr__io *io, unsigned worker);
/* Who runs loop @io (park.c). */
struct tr__hold *tr__io_hold(struct tr__io *io);
/*
 * Holding it: one pass, polling until an event, a kick (tr__io_kick) or,
 * if @within_ns is not 0, that long (rounded up to a millisecond).
 */
void tr__io_run_once(struct tr__io *io, uint64_t within_ns);
/*
 * In a callback of loop @io: the worker running the loop, whose queues
 * the turns it causes go to, or NULL on the loop's own thread.
 */
struct tr__worker *tr__io_worker(struct tr__io *io);
/* Any thread: make the poll in progress on @io return. */
void tr__io_kick(struct tr__io *io);

#endif /* TR_RUNTIME_IO_LOOP_H */
