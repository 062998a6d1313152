/*
 * The I/O loops, who runs them, and the timers on them.
 *
 * Threads: tr__io_timer_add/cancel run on workers (inside handlers); they
 * allocate a command, push it on a ck_stack and call uv_async_send, the
 * only libuv call that is safe from another thread. Everything else here,
 * and every uv_ handle, belongs to whichever thread holds the loop: an
 * idle worker polling it, or the loop's own thread (see "Who runs a
 * loop" below). The async callback takes the whole stack (one exchange),
 * reverses it to FIFO and runs the commands, so one actor's commands run
 * in the order it issued them.
 *
 * Invariants: a timer's memory is freed only in its close callback (the
 * libuv uv_close rule); the async handle is only unreferenced by the
 * stop command and closed in loop_destroy(), after every thread that
 * could call uv_async_send on it has been joined.
 */
#include "runtime/io_loop.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/io.h>

#include <ck_pr.h>
#include <ck_stack.h>
#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/futex.h"
#include "runtime/internal.h"
#include "runtime/msg.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"
#include "runtime/stack.h"

#include <sys/socket.h>
#include <troupe/io.h>
_Static_assert(sizeof(tr_sockaddr) == sizeof(struct sockaddr_storage) &&
		       _Alignof(tr_sockaddr) >=
			       _Alignof(struct sockaddr_storage),
	       "tr_sockaddr must hold any struct sockaddr_storage");

/* Timer table: chained hash by id, touched only by the loop's holder. */
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
	CMD_SIGNALS,
	CMD_RESOLVE,
	CMD_CALL,
	CMD_STOP,
};

/* A name resolution in flight; freed in its callback. */
struct resolve {
	uv_getaddrinfo_t req;
	struct tr__io *io;
	uint64_t owner;
	uint32_t reply_type;
	char *host;
	char *service;
	size_t host_len;
	size_t service_len;
};

struct cmd {
	struct tr__io_op op; /* first: drain() runs op.run */
	enum cmd_kind kind;
	uint64_t id;
	uint64_t delay_ms;
	uint64_t period_ms;
	/* CMD_TIMER_ADD: made by the caller, so that running out of memory
	 * is reported to it and an accepted timer always fires. */
	struct io_timer *timer;
	/* CMD_RESOLVE: likewise. */
	struct resolve *resolve;
	/* CMD_SIGNALS: the target, 0 for "stop the runtime", and the
	 * caller's semaphore, posted once the watchers are installed. */
	uint64_t to;
	sem_t *done;
	/* CMD_CALL: run fn(io, arg) on the I/O thread. */
	void (*fn)(struct tr__io *io, void *arg);
	void *arg;
};

struct tr__io {
	tr_runtime *rt;
	struct tr__io **group; /* every loop of the runtime; [0] is the first */
	unsigned index;        /* in group */
	unsigned count;        /* loops that timers and sockets are spread on */
	/*
	 * group[count] is one more loop, for child processes only: uv_spawn
	 * forks and then blocks until the child has exec'd, which for a big
	 * parent takes milliseconds per child, and a burst of tool runs
	 * must not hold up timers and sockets.
	 */
	uv_loop_t loop;
	uv_async_t async;
	uv_prepare_t prepare;
	uv_check_t check;
	/* Ends a worker's poll by a deadline (tr__io_run_once); unref'd. */
	uv_timer_t wake;
	/*
	 * 1 while the loop may block in (or is about to enter) its poll, 0
	 * while it runs callbacks. A producer that pushes a command while it
	 * is 0 skips uv_async_send (a write to an eventfd), because the loop
	 * drains the stack in its prepare callback before it polls again.
	 * Both sides use read-modify-writes of this one word, so they are
	 * totally ordered: either the producer's RMW comes first and the
	 * prepare callback's exchange sees its push, or it comes after and
	 * reads 1 and wakes the loop.
	 */
	_Atomic unsigned polling;
	pthread_t thread;
	bool started;
	ck_stack_t cmds;
	_Atomic uint64_t next_id;
	_Atomic uint64_t active; /* timers armed */
	struct cmd *stop_cmd;    /* made at create, so stopping cannot fail */
	void *procs;             /* child processes (runtime/io_process.c) */
	void *tcps;              /* listeners and connections (io_tcp.c) */
	_Atomic bool closed;     /* stop command sent: no more commands */
	bool shared;             /* workers poll it too (park.c) */
	struct tr__hold hold;    /* who runs it, if shared (park.c) */
	uv_signal_t sig[2];      /* SIGINT, SIGTERM once asked for */
	struct tr__msg_cache cache[TR__MSG_CLASSES]; /* this thread's nodes */
	bool sig_on;
	uint64_t sig_to;
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
	if (t->periodic) {
		/*
		 * A tick a full bounded mailbox refuses is dropped (and
		 * counted in mailbox_full), as Go's Ticker drops ticks for a
		 * slow receiver: the next one comes anyway.
		 */
		(void)tr__send_copy(rt, tr__io_worker(t->io), t->owner, t->to,
				    t->type, t->data, t->len);
	} else {
		/*
		 * A one-shot timer is often a timeout that nothing else will
		 * repeat: it is delivered past the bound (by at most one
		 * message per pending timer), as a system message would be.
		 * Its type was checked when it was started.
		 */
		(void)tr__send_sys(rt, tr__io_worker(t->io), t->owner, t->to,
				   t->type, t->data, t->len);
		timer_remove(t);
	}
}

static void
signal_fired(uv_signal_t *h, int signum)
{
	struct tr__io *io = h->data;
	int32_t sig = signum;

	if (io->sig_to == 0) {
		tr_runtime_stop(io->rt);
		return;
	}
	(void)tr__send_sys(io->rt, tr__io_worker(io), 0, io->sig_to,
			   TR_MSG_SIGNAL, &sig, sizeof(sig));
}

static void
resolve_free(struct resolve *r)
{
	tr__free(r->host, r->host_len);
	tr__free(r->service, r->service_len);
	tr__free(r, sizeof(*r));
}

/* Build the reply (malloc'd: a handler may take it and free() it). */
static void
resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct resolve *r = req->data;
	uint32_t n = 0;

	for (struct addrinfo *ai = res; status == 0 && ai != NULL;
	     ai = ai->ai_next) {
		n++;
	}
	size_t size = sizeof(tr_resolved) + n * sizeof(tr_sockaddr);
	tr_resolved *out = calloc(1, size);
	if (out != NULL) {
		out->status = status;
		if (status != 0) {
			snprintf(out->error, sizeof(out->error), "%s",
				 uv_err_name(status));
		}
		for (struct addrinfo *ai = res; status == 0 && ai != NULL;
		     ai = ai->ai_next) {
			if (ai->ai_addrlen <= sizeof(struct sockaddr_storage)) {
				memcpy(&out->addrs[out->count++], ai->ai_addr,
				       ai->ai_addrlen);
			}
		}
		(void)tr__send_ptr(r->io->rt, tr__io_worker(r->io), r->owner,
				   r->owner, r->reply_type, out, size, free,
				   false);
	}
	uv_freeaddrinfo(res);
	resolve_free(r);
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
		/*
		 * libuv counts the delay from the loop's cached time, taken
		 * when this pass began, which can be long before the caller
		 * asked (a busy pass, a loop that slept): from it, a timer
		 * could fire before its delay had passed since the call.
		 * Now is never earlier than the call.
		 */
		uv_update_time(&io->loop);
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
	case CMD_SIGNALS:
		io->sig_to = c->to;
		if (!io->sig_on) {
			static const int signums[2] = { SIGINT, SIGTERM };
			for (int i = 0; i < 2; i++) {
				uv_signal_init(&io->loop, &io->sig[i]);
				io->sig[i].data = io;
				uv_signal_start(&io->sig[i], signal_fired,
						signums[i]);
			}
			io->sig_on = true;
		}
		sem_post(c->done);
		break;
	case CMD_RESOLVE: {
		struct resolve *r = c->resolve;
		struct addrinfo hints;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		r->req.data = r;
		int err = uv_getaddrinfo(&io->loop, &r->req, resolved, r->host,
					 r->service, &hints);
		if (err != 0) {
			resolved(&r->req, err, NULL);
		}
		break;
	}
	case CMD_CALL:
		c->fn(io, c->arg);
		break;
	case CMD_STOP:
		tr__io_process_owner_gone(io, 0);
		tr__io_tcp_close_owned(io, 0);
		if (io->sig_on) {
			uv_close((uv_handle_t *)&io->sig[0], NULL);
			uv_close((uv_handle_t *)&io->sig[1], NULL);
			io->sig_on = false;
		}
		for (unsigned i = 0; i < TIMER_BUCKETS; i++) {
			while (io->timers[i] != NULL) {
				timer_remove(io->timers[i]);
			}
		}
		uv_close((uv_handle_t *)&io->prepare, NULL);
		uv_close((uv_handle_t *)&io->check, NULL);
		uv_close((uv_handle_t *)&io->wake, NULL);
		/*
		 * The async handle stays open, unreferenced, until
		 * loop_destroy(): a waker may still kick a worker's poll
		 * (tr__io_kick) until every worker has been joined.
		 */
		uv_unref((uv_handle_t *)&io->async);
		break;
	}
}

static void
cmd_free(struct cmd *c)
{
	tr__free(c, sizeof(*c));
}

static void
cmd_run(struct tr__io *io, struct tr__io_op *op)
{
	struct cmd *c = (struct cmd *)op;

	run_cmd(io, c);
	if (c != io->stop_cmd) {
		cmd_free(c);
	}
}

static void
drain_io(struct tr__io *io)
{
	ck_stack_entry_t *rev = tr__stack_take_fifo(&io->cmds);

	while (rev != NULL) {
		ck_stack_entry_t *next = rev->next;
		struct tr__io_op *op =
			tr__container_of(rev, struct tr__io_op, link);
		op->run(io, op);
		rev = next;
	}
	/* The pass is over: writes it gathered leave now, together. */
	tr__io_tcp_flush(io);
	tr__io_process_flush(io);
}

static void
drain(uv_async_t *async)
{
	drain_io(async->data);
}

/* Right before the loop polls: from now on producers must wake it. */
static void
before_poll(uv_prepare_t *h)
{
	struct tr__io *io = h->data;

	/* seq_cst RMW: see `polling`. */
	(void)atomic_exchange_explicit(&io->polling, 1, memory_order_seq_cst);
	if (ck_pr_load_ptr(&io->cmds.head) != NULL) {
		/* Pushed while we ran callbacks, without a wake-up. */
		drain_io(io);
	}
	/*
	 * A worker running the loop must not block in the poll with turns
	 * that this pass's callbacks (timers, commands) queued on it: make
	 * the poll return at once.
	 */
	struct tr__worker *w = tr__io_worker(io);
	if (w != NULL && tr__sched_has_local(w)) {
		uv_stop(&io->loop);
	}
}

/* Back from the poll: callbacks run, producers need not wake us. */
static void
after_poll(uv_check_t *h)
{
	struct tr__io *io = h->data;

	(void)atomic_exchange_explicit(&io->polling, 0, memory_order_seq_cst);
}

/*
 * Who runs a shared loop (one timers and sockets are spread on) is
 * park.c's business: an idle worker polls it once instead of sleeping on
 * its futex, or, when every worker is busy, the loop's own thread runs it
 * until an idle worker asks for it. A libuv loop is single-threaded:
 * whoever holds it runs it, and only that thread touches its handles
 * meanwhile. No user code runs while a loop is being run, on any thread:
 * callbacks only turn events into messages.
 */
static void
wake_fired(uv_timer_t *h)
{
	(void)h; /* its firing ended the poll: nothing else to do */
}

void
tr__io_run_once(struct tr__io *io, uint64_t within_ns)
{
	bool timed = within_ns != 0 && !uv_is_closing((uv_handle_t *)&io->wake);

	if (timed) {
		/* The loop's clock is as old as its last pass, which may be
		 * long ago: a timer armed on it would be due at once. */
		uv_update_time(&io->loop);
		/* libuv polls in whole milliseconds: round up. */
		uv_timer_start(&io->wake, wake_fired,
			       (within_ns + 999999u) / 1000000u, 0);
	}
	uv_run(&io->loop, UV_RUN_ONCE);
	if (timed) {
		uv_timer_stop(&io->wake);
	}
}

struct tr__hold *
tr__io_hold(struct tr__io *io)
{
	return &io->hold;
}

static void *
io_main(void *arg)
{
	struct tr__io *io = arg;

	if (io->index < io->count) {
		tr__thread_name("tr-io-", (int)io->index);
	} else {
		tr__thread_name("tr-io-proc", -1);
	}
	/* It runs libuv writes; so do the workers that poll it. */
	tr__thread_block_sigpipe();
	/* Reads become messages here: recycle the nodes workers free. */
	tr__msg_cache_init(io->cache, &io->rt->msg_pool);
	tr__msg_thread_cache_set(io->cache);
	if (io->shared) {
		/* Returns holding the loop, once it is closing. */
		tr__hold_watch(io);
	}
	uv_run(&io->loop, UV_RUN_DEFAULT);
	tr__msg_thread_cache_set(NULL);
	tr__msg_cache_fini(io->cache);
	return NULL;
}

static void loop_destroy(struct tr__io *io);

static tr_err
loop_create(tr_runtime *rt, struct tr__io **out)
{
	struct tr__io *io = tr__calloc(sizeof(*io));

	if (io == NULL) {
		return TR_ENOMEM;
	}
	io->rt = rt;
	ck_stack_init(&io->cmds);
	atomic_init(&io->next_id, 1);
	atomic_init(&io->polling, 1);
	tr__hold_init(&io->hold);
	io->stop_cmd = tr__calloc(sizeof(struct cmd));
	if (io->stop_cmd == NULL) {
		tr__free(io, sizeof(*io));
		return TR_ENOMEM;
	}
	io->stop_cmd->op.run = cmd_run;
	io->stop_cmd->kind = CMD_STOP;
	if (uv_loop_init(&io->loop) != 0) {
		goto err_free;
	}
	if (uv_async_init(&io->loop, &io->async, drain) != 0) {
		uv_loop_close(&io->loop);
		goto err_free;
	}
	io->async.data = io;
	/* Neither keeps the loop alive; the async handle does that. */
	uv_prepare_init(&io->loop, &io->prepare);
	io->prepare.data = io;
	uv_prepare_start(&io->prepare, before_poll);
	uv_unref((uv_handle_t *)&io->prepare);
	uv_timer_init(&io->loop, &io->wake);
	uv_unref((uv_handle_t *)&io->wake);
	uv_check_init(&io->loop, &io->check);
	io->check.data = io;
	uv_check_start(&io->check, after_poll);
	uv_unref((uv_handle_t *)&io->check);
	*out = io;
	return TR_OK;

err_free:
	tr__free(io->stop_cmd, sizeof(struct cmd));
	tr__free(io, sizeof(*io));
	return TR_ESYS;
}

/* Every loop of @io's group: the spread ones and the process loop. */
static unsigned
group_len(const struct tr__io *io)
{
	return io->count + 1;
}

tr_err
tr__io_create(tr_runtime *rt, unsigned loops, bool shared, struct tr__io **out)
{
	struct tr__io **group;

	if (loops == 0) {
		loops = 1;
	}
	/* The last one is the process loop. */
	unsigned all = loops + 1;
	group = tr__calloc(sizeof(*group) * all);
	if (group == NULL) {
		return TR_ENOMEM;
	}
	for (unsigned i = 0; i < all; i++) {
		tr_err err = loop_create(rt, &group[i]);
		if (err < 0) {
			while (i-- > 0) {
				loop_destroy(group[i]);
			}
			tr__free(group, sizeof(*group) * all);
			return err;
		}
		group[i]->group = group;
		group[i]->index = i;
		group[i]->count = loops;
		/* The process loop is never shared: uv_spawn blocks. */
		group[i]->shared = shared && i < loops;
	}
	*out = group[0];
	return TR_OK;
}

tr_err
tr__io_start(struct tr__io *io)
{
	for (unsigned i = 0; i < group_len(io); i++) {
		struct tr__io *l = io->group[i];
		if (pthread_create(&l->thread, NULL, io_main, l) != 0) {
			return TR_ESYS; /* the started ones stop at shutdown */
		}
		l->started = true;
	}
	return TR_OK;
}

struct tr__io *
tr__io_pick(struct tr__io *io, uint64_t key)
{
	return io->group[key % io->count];
}

struct tr__io *
tr__io_proc_loop(struct tr__io *io)
{
	return io->group[io->count];
}

static tr_err
push_op(struct tr__io *io, struct tr__io_op *op)
{
	ck_stack_push_upmc(&io->cmds, &op->link);
	/* seq_cst RMW: see `polling`. */
	if (atomic_fetch_or_explicit(&io->polling, 0, memory_order_seq_cst) !=
	    0) {
		uv_async_send(&io->async);
	}
	return TR_OK;
}

static tr_err
push(struct tr__io *io, struct cmd *c)
{
	c->op.run = cmd_run;
	return push_op(io, &c->op);
}

tr_err
tr__io_post(struct tr__io *io, struct tr__io_op *op)
{
	if (atomic_load_explicit(&io->closed, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	return push_op(io, op);
}

void
tr__io_shutdown(struct tr__io *io)
{
	if (io == NULL) {
		return;
	}
	for (unsigned i = 0; i < group_len(io); i++) {
		struct tr__io *l = io->group[i];
		atomic_store_explicit(&l->closed, true, memory_order_release);
		/* No worker takes it from now on; its thread finishes it. */
		tr__hold_close(l);
		if (l->started) {
			push(l, l->stop_cmd);
		}
	}
	for (unsigned i = 0; i < group_len(io); i++) {
		struct tr__io *l = io->group[i];
		if (l->started) {
			pthread_join(l->thread, NULL);
			l->started = false;
		}
	}
}

static void
loop_destroy(struct tr__io *io)
{
	if (!uv_is_closing((uv_handle_t *)&io->prepare)) {
		/* Never started: close the handles on this thread. */
		drain_io(io);
		run_cmd(io, io->stop_cmd);
	}
	/* Every thread that could kick it has been joined. */
	uv_close((uv_handle_t *)&io->async, NULL);
	uv_run(&io->loop, UV_RUN_DEFAULT);
	uv_loop_close(&io->loop);
	/* Commands that arrived after the stop (none by contract). */
	drain_io(io);
	tr__io_tcp_fini(io);
	tr__free(io->stop_cmd, sizeof(struct cmd));
	tr__free(io, sizeof(*io));
}

void
tr__io_destroy(struct tr__io *io)
{
	if (io == NULL) {
		return;
	}
	struct tr__io **group = io->group;
	unsigned all = group_len(io);

	for (unsigned i = 0; i < all; i++) {
		loop_destroy(group[i]);
	}
	tr__free(group, sizeof(*group) * all);
}

uint64_t
tr__io_timer_id(struct tr__io *io)
{
	return atomic_fetch_add_explicit(&io->next_id, 1, memory_order_relaxed);
}

tr_err
tr__io_timer_add(struct tr__io *io, uint64_t id, uint64_t owner, uint64_t to,
		 uint32_t type, const void *data, size_t len, uint64_t delay_ms,
		 uint64_t period_ms)
{
	io = tr__io_pick(io, id);
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
	io = tr__io_pick(io, id);
	struct cmd *c = tr__calloc(sizeof(*c));

	if (c == NULL) {
		return TR_ENOMEM;
	}
	c->kind = CMD_TIMER_CANCEL;
	c->id = id;
	return push(io, c);
}

uint64_t
tr__io_takeovers(struct tr__io *io)
{
	uint64_t n = 0;

	for (unsigned i = 0; io != NULL && i < io->count; i++) {
		n += atomic_load_explicit(&io->group[i]->hold.takeovers,
					  memory_order_relaxed);
	}
	return n;
}

uint64_t
tr__io_timers_active(struct tr__io *io)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < io->count; i++) {
		n += atomic_load_explicit(&io->group[i]->active,
					  memory_order_relaxed);
	}
	return n;
}

tr_err
tr__io_signals(struct tr__io *io, uint64_t to)
{
	struct cmd *c = tr__calloc(sizeof(*c));
	sem_t done;

	if (c == NULL) {
		return TR_ENOMEM;
	}
	if (!io->started) {
		tr__free(c, sizeof(*c));
		return TR_ESTATE;
	}
	sem_init(&done, 0, 0);
	c->kind = CMD_SIGNALS;
	c->to = to;
	c->done = &done;
	push(io, c);
	/* Wait until installed, so that a signal right after this call is
	 * never met by the default action (which ends the process). */
	while (sem_wait(&done) != 0) {
	}
	sem_destroy(&done);
	return TR_OK;
}

static char *
dup_str(const char *s, size_t *len)
{
	*len = strlen(s) + 1;
	char *d = tr__alloc(*len);
	if (d != NULL) {
		memcpy(d, s, *len);
	}
	return d;
}

tr_err
tr__io_resolve(struct tr__io *io, uint64_t owner, const char *host,
	       const char *service, uint32_t reply_type)
{
	struct cmd *c = tr__calloc(sizeof(*c));
	struct resolve *r = tr__calloc(sizeof(*r));

	if (c == NULL || r == NULL) {
		goto err;
	}
	r->io = io;
	r->owner = owner;
	r->reply_type = reply_type;
	r->host = dup_str(host, &r->host_len);
	if (r->host == NULL) {
		goto err;
	}
	if (service != NULL) {
		r->service = dup_str(service, &r->service_len);
		if (r->service == NULL) {
			goto err;
		}
	}
	c->kind = CMD_RESOLVE;
	c->resolve = r;
	return push(io, c);

err:
	if (r != NULL) {
		resolve_free(r);
	}
	tr__free(c, sizeof(*c));
	return TR_ENOMEM;
}

tr_err
tr__io_call(struct tr__io *io, void (*fn)(struct tr__io *io, void *arg),
	    void *arg)
{
	if (atomic_load_explicit(&io->closed, memory_order_acquire)) {
		/* After the stop: e.g. DATA freed at destroy. */
		return TR_ECLOSED;
	}
	struct cmd *c = tr__calloc(sizeof(*c));

	if (c == NULL) {
		return TR_ENOMEM;
	}
	c->kind = CMD_CALL;
	c->fn = fn;
	c->arg = arg;
	return push(io, c);
}

uv_loop_t *
tr__io_uv_loop(struct tr__io *io)
{
	return &io->loop;
}

tr_runtime *
tr__io_runtime(struct tr__io *io)
{
	return io->rt;
}

void **
tr__io_procs(struct tr__io *io)
{
	return &io->procs;
}

void **
tr__io_tcps(struct tr__io *io)
{
	return &io->tcps;
}

/*
 * An actor that owns I/O gets, when it first takes some, one command per
 * loop to post when it stops (tr__io_gone_prepare). Stopping then cannot
 * fail for want of memory, so its children and sockets never outlive it.
 * The commands live in one block, freed by whichever runs last.
 */
struct gone_op {
	struct tr__io_op op;
	struct tr__io_gone *g;
};

struct tr__io_gone {
	uint64_t owner;
	unsigned n;
	_Atomic unsigned left; /* commands not yet run or refused */
	struct gone_op ops[];
};

static size_t
gone_size(unsigned n)
{
	return sizeof(struct tr__io_gone) + n * sizeof(struct gone_op);
}

static void
gone_put(struct tr__io_gone *g)
{
	/* acq_rel: the last one to finish sees every other loop's run
	 * complete before it frees the block. */
	if (atomic_fetch_sub_explicit(&g->left, 1, memory_order_acq_rel) == 1) {
		tr__free(g, gone_size(g->n));
	}
}

/* I/O thread: an actor stopped; end its children and its sockets. */
static void
owner_gone(struct tr__io *io, struct tr__io_op *op)
{
	struct gone_op *o = (struct gone_op *)op;
	uint64_t owner = o->g->owner;

	tr__io_process_owner_gone(io, owner);
	tr__io_tcp_close_owned(io, owner);
	gone_put(o->g);
}

struct tr__io_gone *
tr__io_gone_prepare(struct tr__io *io)
{
	unsigned n = group_len(io);
	struct tr__io_gone *g = tr__calloc(gone_size(n));

	if (g != NULL) {
		g->n = n;
	}
	return g;
}

void
tr__io_gone_discard(struct tr__io_gone *g)
{
	if (g != NULL) {
		tr__free(g, gone_size(g->n));
	}
}

void
tr__io_owner_gone(struct tr__io *io, uint64_t owner, struct tr__io_gone *g)
{
	/* Read before the posts: once the last is posted, its loop may run
	 * it and free the block. */
	unsigned n = g->n;

	g->owner = owner;
	atomic_init(&g->left, n);
	/* Its handles may live on any loop, the process loop included. */
	for (unsigned i = 0; i < n; i++) {
		g->ops[i].g = g;
		g->ops[i].op.run = owner_gone;
		/* A closed loop has already closed everything it held. */
		if (tr__io_post(io->group[i], &g->ops[i].op) < 0) {
			gone_put(g);
		}
	}
}

unsigned
tr__io_loops(struct tr__io *io)
{
	return io->count;
}

struct tr__worker *
tr__io_worker(struct tr__io *io)
{
	return tr__sched_current(io->rt);
}

struct tr__io *
tr__io_for_worker(struct tr__io *io, unsigned worker)
{
	struct tr__io *l = io->group[worker % io->count];

	return l->shared ? l : NULL;
}

void
tr__io_kick(struct tr__io *io)
{
	uv_async_send(&io->async);
}
