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

#include <troupe/actor.h>
#include <troupe/error.h>

struct tr__io;

/* Make the loop's state (no thread yet). */
tr_err tr__io_create(tr_runtime *rt, struct tr__io **out);
/* Start the I/O thread. */
tr_err tr__io_start(struct tr__io *io);
/*
 * Close every handle, wait for the close callbacks and join the thread.
 * Call only when no actor can send it commands any more.
 */
void tr__io_shutdown(struct tr__io *io);
void tr__io_destroy(struct tr__io *io);

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
/* I/O thread only: SIGKILL the children of @owner (0: all); each closes
 * once reaped. */
void tr__io_process_kill_owned(struct tr__io *io, uint64_t owner);
void **tr__io_tcps(struct tr__io *io);
/* I/O thread only: run a TCP request (io_tcp.c); close an owner's TCP. */
void tr__io_tcp_run(struct tr__io *io, void *arg);
void tr__io_tcp_close_owned(struct tr__io *io, uint64_t owner);
/* Any thread: an actor that owned processes or sockets stopped. */
tr_err tr__io_owner_gone(struct tr__io *io, uint64_t owner);

/* Timers armed right now (metrics, tests). */
uint64_t tr__io_timers_active(struct tr__io *io);

#endif /* TR_RUNTIME_IO_LOOP_H */
