/*
 * The I/O thread and the timers on it.
 *
 * Threads: tr__io_timer_add/cancel run on workers (inside handlers); they
 * allocate a command, push it on a ck_stack and call uv_async_send, the
 * only libuv call that is safe from another thread. Everything else here,
 * and every uv_ handle, belongs to the I/O thread. The async callback
 * takes the whole stack (one exchange), reverses it to FIFO and runs the
 * commands, so one actor's commands run in the order it issued them.
 *
 * Invariants: a timer's memory is freed only in its close callback (the
 * libuv uv_close rule); the async handle is closed only by the stop
 * command, which the runtime sends after every actor has stopped, so no
 * thread can call uv_async_send on a closed handle.
 */
#include "runtime/io_loop.h"

#include <pthread.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_stack.h>
#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/internal.h"
#include "runtime/runtime.h"

/* Timer table: chained hash by id, touched only by the I/O thread. */
#define TIMER_BUCKETS 4096u

struct io_timer {
	uv_timer_t h;
	struct io_timer *next;
	struct tr__io *io;
	uint64_t id;
	uint64_t owner;
	uint64_t to;
	uint32_t type;
	bool periodic;
	size_t len;
	unsigned char data[];
};

enum cmd_kind {
	CMD_TIMER_ADD,
	CMD_TIMER_CANCEL,
	CMD_STOP,
};

struct cmd {
	ck_stack_entry_t link;
	enum cmd_kind kind;
	uint64_t id;
	uint64_t delay_ms;
	uint64_t period_ms;
	/* CMD_TIMER_ADD: made by the caller, so that running out of memory
	 * is reported to it and an accepted timer always fires. */
	struct io_timer *timer;
};

struct tr__io {
	tr_runtime *rt;
	uv_loop_t loop;
	uv_async_t async;
	pthread_t thread;
	bool started;
	ck_stack_t cmds;
	_Atomic uint64_t next_id;
	_Atomic uint64_t active; /* timers armed */
	struct cmd *stop_cmd;    /* made at create, so stopping cannot fail */
	struct io_timer *timers[TIMER_BUCKETS];
};

static size_t
timer_size(size_t len)
{
	return sizeof(struct io_timer) + len;
}

static struct io_timer **
bucket(struct tr__io *io, uint64_t id)
{
	return &io->timers[id % TIMER_BUCKETS];
}

static void
timer_closed(uv_handle_t *h)
{
	struct io_timer *t = h->data;

	atomic_fetch_sub_explicit(&t->io->active, 1, memory_order_relaxed);
	tr__free(t, timer_size(t->len));
}

/* Unhook a timer from the table and close it (memory goes in timer_closed). */
static void
timer_remove(struct io_timer *t)
{
	struct io_timer **pp = bucket(t->io, t->id);

	while (*pp != NULL && *pp != t) {
		pp = &(*pp)->next;
	}
	if (*pp == t) {
		*pp = t->next;
	}
	uv_timer_stop(&t->h);
	uv_close((uv_handle_t *)&t->h, timer_closed);
}

static bool
owner_alive(tr_runtime *rt, uint64_t owner)
{
	struct tr__actor *a = tr__actor_lookup(rt, owner);

	return a != NULL &&
	       atomic_load_explicit(&a->pid, memory_order_relaxed) == owner;
}

static void
timer_fired(uv_timer_t *h)
{
	struct io_timer *t = h->data;
	tr_runtime *rt = t->io->rt;

	if (!owner_alive(rt, t->owner)) {
		/* The owner stopped: its timers end with it. */
		timer_remove(t);
		return;
	}
	(void)tr__send_copy(rt, NULL, t->owner, t->to, t->type, t->data,
			    t->len);
	if (!t->periodic) {
		timer_remove(t);
	}
}

static void
run_cmd(struct tr__io *io, struct cmd *c)
{
	switch (c->kind) {
	case CMD_TIMER_ADD: {
		struct io_timer *t = c->timer;
		uv_timer_init(&io->loop, &t->h);
		t->h.data = t;
		atomic_fetch_add_explicit(&io->active, 1, memory_order_relaxed);
		t->next = *bucket(io, t->id);
		*bucket(io, t->id) = t;
		uv_timer_start(&t->h, timer_fired, c->delay_ms, c->period_ms);
		break;
	}
	case CMD_TIMER_CANCEL: {
		struct io_timer *t = *bucket(io, c->id);
		while (t != NULL && t->id != c->id) {
			t = t->next;
		}
		if (t != NULL) {
			timer_remove(t);
		}
		break;
	}
	case CMD_STOP:
		for (unsigned i = 0; i < TIMER_BUCKETS; i++) {
			while (io->timers[i] != NULL) {
				timer_remove(io->timers[i]);
			}
		}
		uv_close((uv_handle_t *)&io->async, NULL);
		break;
	}
}

static void
cmd_free(struct cmd *c)
{
	tr__free(c, sizeof(*c));
}

static void
drain(uv_async_t *async)
{
	struct tr__io *io = async->data;
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&io->cmds);
	ck_stack_entry_t *rev = NULL;

	while (e != NULL) {
		ck_stack_entry_t *next = e->next;
		e->next = rev;
		rev = e;
		e = next;
	}
	while (rev != NULL) {
		ck_stack_entry_t *next = rev->next;
		struct cmd *c = tr__container_of(rev, struct cmd, link);
		run_cmd(io, c);
		if (c != io->stop_cmd) {
			cmd_free(c);
		}
		rev = next;
	}
}

static void *
io_main(void *arg)
{
	struct tr__io *io = arg;

	uv_run(&io->loop, UV_RUN_DEFAULT);
	return NULL;
}

tr_err
tr__io_create(tr_runtime *rt, struct tr__io **out)
{
	struct tr__io *io = tr__calloc(sizeof(*io));

	if (io == NULL) {
		return TR_ENOMEM;
	}
	io->rt = rt;
	ck_stack_init(&io->cmds);
	atomic_init(&io->next_id, 1);
	io->stop_cmd = tr__calloc(sizeof(struct cmd));
	if (io->stop_cmd == NULL) {
		tr__free(io, sizeof(*io));
		return TR_ENOMEM;
	}
	io->stop_cmd->kind = CMD_STOP;
	if (uv_loop_init(&io->loop) != 0) {
		goto err_free;
	}
	if (uv_async_init(&io->loop, &io->async, drain) != 0) {
		uv_loop_close(&io->loop);
		goto err_free;
	}
	io->async.data = io;
	*out = io;
	return TR_OK;

err_free:
	tr__free(io->stop_cmd, sizeof(struct cmd));
	tr__free(io, sizeof(*io));
	return TR_ESYS;
}

tr_err
tr__io_start(struct tr__io *io)
{
	if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
		return TR_ESYS;
	}
	io->started = true;
	return TR_OK;
}

static tr_err
push(struct tr__io *io, struct cmd *c)
{
	ck_stack_push_upmc(&io->cmds, &c->link);
	uv_async_send(&io->async);
	return TR_OK;
}

void
tr__io_shutdown(struct tr__io *io)
{
	if (io == NULL || !io->started) {
		return;
	}
	push(io, io->stop_cmd);
	pthread_join(io->thread, NULL);
	io->started = false;
}

void
tr__io_destroy(struct tr__io *io)
{
	if (io == NULL) {
		return;
	}
	if (!uv_is_closing((uv_handle_t *)&io->async)) {
		/* Never started: close the handles on this thread. */
		drain(&io->async);
		run_cmd(io, io->stop_cmd);
	}
	uv_run(&io->loop, UV_RUN_DEFAULT);
	uv_loop_close(&io->loop);
	/* Commands that arrived after the stop (none by contract). */
	drain(&io->async);
	tr__free(io->stop_cmd, sizeof(struct cmd));
	tr__free(io, sizeof(*io));
}

uint64_t
tr__io_timer_id(struct tr__io *io)
{
	return atomic_fetch_add_explicit(&io->next_id, 1, memory_order_relaxed);
}

tr_err
tr__io_timer_add(struct tr__io *io, uint64_t id, uint64_t owner, uint64_t to,
		 uint32_t type, const void *data, size_t len,
		 uint64_t delay_ms, uint64_t period_ms)
{
	struct cmd *c = tr__calloc(sizeof(*c));
	struct io_timer *t = tr__alloc(timer_size(len));

	if (c == NULL || t == NULL) {
		tr__free(c, sizeof(*c));
		tr__free(t, timer_size(len));
		return TR_ENOMEM;
	}
	memset(t, 0, sizeof(*t));
	t->io = io;
	t->id = id;
	t->owner = owner;
	t->to = to;
	t->type = type;
	t->periodic = period_ms != 0;
	t->len = len;
	if (len > 0) {
		memcpy(t->data, data, len);
	}
	c->kind = CMD_TIMER_ADD;
	c->id = id;
	c->delay_ms = delay_ms;
	c->period_ms = period_ms;
	c->timer = t;
	return push(io, c);
}

tr_err
tr__io_timer_cancel(struct tr__io *io, uint64_t id)
{
	struct cmd *c = tr__calloc(sizeof(*c));

	if (c == NULL) {
		return TR_ENOMEM;
	}
	c->kind = CMD_TIMER_CANCEL;
	c->id = id;
	return push(io, c);
}

uint64_t
tr__io_timers_active(struct tr__io *io)
{
	return atomic_load_explicit(&io->active, memory_order_relaxed);
}
