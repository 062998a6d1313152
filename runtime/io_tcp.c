/*
 * TCP listeners and connections on the I/O loops (<troupe/tcp.h>).
 *
 * Threads: the public calls copy their arguments into a request that
 * embeds its own queue entry (struct tr__io_op) and post it to the loop
 * that owns the connection (tr__io_pick by id); every uv_ handle and each
 * loop's connection table belong to whichever thread holds that loop (an
 * idle worker or the loop's thread, see io_loop.c). The one exception
 * is the release hook of a DATA message, which runs wherever the message
 * is consumed: it lowers the connection's count of unread bytes (atomic;
 * counted as the memory of the DATA nodes, not just the bytes read)
 * and, when reading was paused for that reason and the count is back
 * under the low watermark, asks the loop to resume. A connection is
 * therefore reference-counted: one reference for its loop until the
 * handle's close callback, one per DATA message in flight, one per write
 * or shutdown request and one for a connect timer.
 *
 * The hot path, per request of an echo-like protocol: the loop reads
 * into one buffer per loop, copies exactly what was read into the DATA
 * message, and a write first tries uv_try_write straight from the
 * request; only bytes the socket does not take at once are queued with
 * uv_write, from the same memory. So a request costs one allocation per
 * direction and no uv_write bookkeeping when the socket keeps up.
 *
 * With several loops, a listener accepts on its own loop; a connection
 * whose id belongs to another loop is handed over as a duplicated file
 * descriptor and opened there, and only then gets its actor.
 *
 * Closing (the rule is stated in tcp.h): tr_tcp_close() and the stop of
 * a connection's owner close it gracefully. The connection is marked
 * `draining`, and from then on no direct write and no newly queued write
 * touches it. Reading continues only to discard, so that unread bytes in
 * the kernel do not turn the final close() into a reset. libuv runs the
 * uv_shutdown after the writes already queued, and its callback closes the
 * handle. The timer bounds the wait: if the peer takes no pending byte for
 * TR_TCP_LINGER_MS, the connection is reset. An abortive close
 * (tr_tcp_abort, that deadline) sets SO_LINGER to zero and closes at once.
 * When the runtime stops, every handle closes at once.
 *
 * Invariants: each connection sends exactly one OPEN-or-CLOSED first and
 * exactly one CLOSED last; a connection or listener whose owner stopped is
 * closed (actor.c calls tr__io_owner_gone, which also lands here).
 */
#include <troupe/tcp.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/internal.h"
#include "runtime/io_loop.h"
#include "runtime/msg.h"
#include "runtime/runtime.h"

#define TCP_BUCKETS 1024u

struct wreq;
#define READ_BUF (64u * 1024u)

struct tcp {
	uv_tcp_t h;
	/* A connect's timeout, then a graceful close's deadline. */
	uv_timer_t timer;
	/* A graceful close's: built in, so that it cannot run out of memory
	 * and drop the writes it is meant to flush. */
	uv_shutdown_t shut;
	struct tcp *next;       /* chain by id */
	struct tcp *owner_next; /* chain by owner */
	struct tr__io *io;
	uint64_t id;
	uint64_t owner;
	const tr_actor_def *conn_def; /* listeners */
	void *conn_arg;               /* listeners */
	bool is_listener;
	bool has_timer;
	bool reading;
	bool closing;
	bool closed_sent;
	bool eof;           /* the peer shut down its sending side */
	bool is_open;       /* connected or accepted, OPEN sent */
	bool draining;      /* closing gracefully: writes flush, then the FIN */
	int64_t pending;    /* write bytes queued (loop thread) */
	size_t linger_left; /* bytes libuv still held at the last progress */
	uint64_t linger_since;  /* loop time of that progress */
	_Atomic int64_t unread; /* memory of DATA not yet handled */
	_Atomic int refs;
	/*
	 * Direct writes (see tr_tcp_write): `wlock` is held by whoever puts
	 * bytes on the socket outside libuv's queue, a worker or the loop;
	 * WLOCK_CLOSED once the loop closes the handle, for good. A worker
	 * writes directly only while no write for this connection is with
	 * the loop (inflight_of(id) is zero). `front` is the rest of a
	 * direct write the socket did not take, which the loop writes
	 * before anything else.
	 */
	int fd;
	_Atomic unsigned wlock;
	_Atomic(struct wreq *) front;
	_Atomic bool broken;      /* a direct write lost bytes: close */
	_Atomic bool kick_queued; /* kick_op is on the loop's stack */
	struct tr__io_op kick_op; /* "write front", without allocating */
	bool loop_holds;          /* the loop holds wlock (loop thread) */
	/*
	 * Writes gathered in this pass of the loop (see tr__io_tcp_flush),
	 * and the link in the table's list of connections that have some.
	 */
	struct wreq *gq_head, *gq_tail;
	struct tcp *dirty_next;
	bool dirty;
};

#define WLOCK_FREE   0u
#define WLOCK_HELD   1u
#define WLOCK_CLOSED 2u

/*
 * How often the loop, waiting for wlock, pauses before it yields its CPU.
 * A worker holds the lock for one send() of a reply, a few microseconds,
 * and a pause costs 10 to 140 cycles depending on the CPU, so 128 of them
 * cover such a send. A longer wait means the holder was preempted inside
 * send(): spinning on then would only keep it off the CPU.
 */
#define WLOCK_SPINS 128u

/* A graceful close checks for progress four times per TR_TCP_LINGER_MS. */
#define LINGER_TICK_MS (TR_TCP_LINGER_MS / 4u)

/* One per loop, made on first use. */
struct tcp_table {
	struct tcp *by_id[TCP_BUCKETS];
	struct tcp *by_owner[TCP_BUCKETS];
	struct tcp *dirty;            /* connections with gathered writes */
	unsigned char rbuf[READ_BUF]; /* every read lands here first */
};

/* Private header in front of each DATA payload, at the node's data. */
struct data_hdr {
	struct tcp *t;
	_Alignas(16) tr_tcp_data pub;
};

/*
 * What a DATA message counts in t->unread: the whole node, not the bytes
 * read (a read of 500 bytes holds a 2 KiB node), so the read watermarks
 * bound memory.
 */
static int64_t
data_charge(struct data_hdr *d)
{
	return (int64_t)tr__container_of((void *)d, struct tr__msg, data)
		->alloc_size;
}

enum req_kind {
	REQ_LISTEN,
	REQ_CONNECT,
	REQ_CLOSE,
	REQ_ABORT,
	REQ_RESUME,
	REQ_ADOPT, /* an accepted socket handed to its loop */
};

struct tcp_req {
	struct tr__io_op op;
	enum req_kind kind;
	uint64_t id;
	uint64_t owner;
	const tr_actor_def *conn_def;
	void *conn_arg;
	uint32_t timeout_ms;
	int fd; /* REQ_ADOPT */
	uint16_t port;
	char host[64];
};

/* A write: queued, tried at once, and if need be kept as the uv_write. */
struct wreq {
	struct tr__io_op op;
	uint64_t id;
	uv_write_t req;
	struct tcp *t;
	struct wreq *gnext; /* in t's gathered writes */
	bool counted; /* one unit of t->inflight until the kernel has it */
	size_t len;
	size_t off; /* bytes taken by uv_try_write */
	unsigned char data[];
};

static _Atomic uint64_t next_tcp_id = 1;

/*
 * Writes handed to a loop and not yet taken by the kernel, per connection
 * id, in buckets: a writer that has only the id (any actor may write to
 * any connection) can count its write here without finding the
 * connection, and a bucket shared by two ids only sends a writer down the
 * queued path more often. Ids are unique in the process, so the array is
 * shared by every runtime.
 */
#define INFLIGHT_BUCKETS 4096u
static _Atomic int64_t inflight[INFLIGHT_BUCKETS];

static _Atomic int64_t *
inflight_of(uint64_t id)
{
	return &inflight[id % INFLIGHT_BUCKETS];
}

static void run_kick(struct tr__io *io, struct tr__io_op *op);
static void drop_gathered(struct tcp *t);

static struct tcp_table *
table(struct tr__io *io)
{
	void **slot = tr__io_tcps(io);

	if (*slot == NULL) {
		*slot = tr__calloc(sizeof(struct tcp_table));
	}
	return *slot;
}

static struct tcp **
id_bucket(struct tcp_table *tb, uint64_t id)
{
	return &tb->by_id[id % TCP_BUCKETS];
}

static struct tcp **
owner_bucket(struct tcp_table *tb, uint64_t owner)
{
	/* Pids differ mostly in their slot bits, which are the low ones. */
	return &tb->by_owner[(owner ^ (owner >> 28)) % TCP_BUCKETS];
}

static struct tcp *
find(struct tr__io *io, uint64_t id)
{
	struct tcp_table *tb = *tr__io_tcps(io);

	if (tb == NULL) {
		return NULL;
	}
	for (struct tcp *t = *id_bucket(tb, id); t != NULL; t = t->next) {
		if (t->id == id) {
			return t;
		}
	}
	return NULL;
}

static void
link_owner(struct tcp_table *tb, struct tcp *t)
{
	struct tcp **b = owner_bucket(tb, t->owner);

	t->owner_next = *b;
	*b = t;
}

static void
unlink_owner(struct tcp_table *tb, struct tcp *t)
{
	struct tcp **pp = owner_bucket(tb, t->owner);

	while (*pp != NULL && *pp != t) {
		pp = &(*pp)->owner_next;
	}
	if (*pp == t) {
		*pp = t->owner_next;
	}
}

static void
unref(struct tcp *t)
{
	/* acq_rel: the last reference frees what the others wrote. */
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
		tr__free(t, sizeof(*t));
	}
}

static void
closed_cb(uv_handle_t *h)
{
	unref(h->data);
}

/*
 * Take the write lock if it is free: one CAS, and no waiting. Only two
 * parties ever want it: the worker running the owner's handler for a DATA
 * message (one at a time, since an actor runs on one worker at a time)
 * and the loop. A worker that finds it taken writes through the loop
 * instead (see try_direct), so a worker never waits for the loop, which
 * may itself be held up by a long pass. Return false if held or closed.
 */
static bool
wlock_try(struct tcp *t)
{
	unsigned v = WLOCK_FREE;

	/* acquire: pairs with the release in wlock_give and wlock_close, so
	 * the last holder's writes and `front` are seen. */
	return atomic_compare_exchange_strong_explicit(
		&t->wlock, &v, WLOCK_HELD, memory_order_acquire,
		memory_order_relaxed);
}

/*
 * Loop: take the write lock, waiting for a worker that holds it inside
 * one send(). The fast path is the one CAS of wlock_try. The holder's
 * thread may have been preempted inside send(), and on a machine with
 * few cores the loop's spinning would then take the CPU that the holder
 * needs: so the loop pauses WLOCK_SPINS times, then yields its CPU at
 * every further look. Return false once the lock is closed.
 */
static bool
wlock_wait(struct tcp *t)
{
	for (unsigned spins = 0;; spins++) {
		if (wlock_try(t)) {
			return true;
		}
		/* Relaxed: only a hint; wlock_try's CAS is what orders. */
		if (atomic_load_explicit(&t->wlock, memory_order_relaxed) ==
		    WLOCK_CLOSED) {
			return false;
		}
		if (spins < WLOCK_SPINS) {
			tr__cpu_relax();
		} else {
			sched_yield();
		}
	}
}

static void
wlock_give(struct tcp *t)
{
	/* release: pairs with the acquire CAS in wlock_try. */
	atomic_store_explicit(&t->wlock, WLOCK_FREE, memory_order_release);
}

/* Loop: no direct write ever again (closing, or a graceful close). */
static void
wlock_close(struct tcp *t)
{
	if (!t->loop_holds && !wlock_wait(t)) {
		return; /* already closed */
	}
	t->loop_holds = false;
	/* release: pairs with the acquire CAS in wlock_try, which then
	 * fails for good. */
	atomic_store_explicit(&t->wlock, WLOCK_CLOSED, memory_order_release);
}

static void
uncount(struct wreq *w)
{
	if (w->counted) {
		/* release: a direct writer that reads the drop also sees the
		 * queue emptied. */
		atomic_fetch_sub_explicit(inflight_of(w->id), 1,
					  memory_order_release);
		w->counted = false;
	}
}

static void
send_event(struct tcp *t, uint32_t type, int status)
{
	tr_tcp_event e;

	memset(&e, 0, sizeof(e));
	e.conn.v = t->id;
	e.status = status;
	if (status < 0) {
		snprintf(e.error, sizeof(e.error), "%s", uv_err_name(status));
	}
	(void)tr__send_sys(tr__io_runtime(t->io), tr__io_worker(t->io),
			   t->owner, t->owner, type, &e, sizeof(e));
}

/* Loop: free the writes gathered for @t (it is closing). */
static void
drop_gathered(struct tcp *t)
{
	while (t->gq_head != NULL) {
		struct wreq *w = t->gq_head;
		t->gq_head = w->gnext;
		uncount(w);
		tr__free(w, sizeof(*w) + w->len);
	}
	t->gq_tail = NULL;
}

/* Close once; the owner of a connection hears CLOSED exactly once. */
static void
tcp_close(struct tcp *t, int status)
{
	if (t->closing) {
		return;
	}
	t->closing = true;
	if (!t->is_listener && !t->closed_sent) {
		t->closed_sent = true;
		send_event(t, TR_MSG_TCP_CLOSED, status);
	}
	struct tcp_table *tb = *tr__io_tcps(t->io);
	struct tcp **pp = id_bucket(tb, t->id);
	while (*pp != NULL && *pp != t) {
		pp = &(*pp)->next;
	}
	if (*pp == t) {
		*pp = t->next;
	}
	unlink_owner(tb, t);
	wlock_close(t);
	struct wreq *f =
		atomic_exchange_explicit(&t->front, NULL, memory_order_acquire);
	if (f != NULL) {
		uncount(f);
		tr__free(f, sizeof(*f) + f->len);
	}
	drop_gathered(t);
	if (t->has_timer) {
		uv_close((uv_handle_t *)&t->timer, closed_cb);
	}
	uv_close((uv_handle_t *)&t->h, closed_cb);
}

/*
 * Close at once with a reset: the peer gets RST instead of FIN, and what
 * libuv or the kernel still holds for it is dropped.
 */
static void
tcp_reset(struct tcp *t, int status)
{
	uv_os_fd_t fd;
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (!t->closing && !t->is_listener &&
	    uv_fileno((uv_handle_t *)&t->h, &fd) == 0) {
		/* What uv_tcp_close_reset does, which refuses a stream that
		 * is shutting down: close() then resets. */
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	tcp_close(t, status);
}

static struct tcp *
tcp_new(struct tr__io *io, uint64_t id, uint64_t owner)
{
	struct tcp_table *tb = table(io);
	struct tcp *t = tb != NULL ? tr__calloc(sizeof(*t)) : NULL;

	if (t == NULL) {
		return NULL;
	}
	t->io = io;
	t->id = id;
	t->owner = owner;
	t->fd = -1;
	t->kick_op.run = run_kick;
	atomic_init(&t->refs, 1);
	atomic_init(&t->wlock, WLOCK_FREE);
	uv_tcp_init(tr__io_uv_loop(io), &t->h);
	t->h.data = t;
	t->next = *id_bucket(tb, id);
	*id_bucket(tb, id) = t;
	link_owner(tb, t);
	return t;
}

/* Set the owner of an accepted connection once its actor exists. */
static void
set_owner(struct tcp *t, uint64_t owner)
{
	struct tcp_table *tb = *tr__io_tcps(t->io);

	unlink_owner(tb, t);
	t->owner = owner;
	link_owner(tb, t);
}

static void run_req(struct tr__io *io, struct tr__io_op *op);

static struct tcp_req *
req_new(enum req_kind kind, uint64_t id)
{
	struct tcp_req *r = tr__calloc(sizeof(*r));

	if (r != NULL) {
		r->op.run = run_req;
		r->kind = kind;
		r->id = id;
	}
	return r;
}

/* Release hook of a DATA message: the bytes go with the node. */
static void
data_release(void *p)
{
	struct data_hdr *d = tr__container_of(p, struct data_hdr, pub);
	struct tcp *t = d->t;
	int64_t c = data_charge(d);
	int64_t left =
		atomic_fetch_sub_explicit(&t->unread, c, memory_order_relaxed) -
		c;

	if (left <= TR_TCP_READ_LOW && left + c > TR_TCP_READ_LOW) {
		/* Crossed the low watermark: let the loop resume. */
		struct tcp_req *r = req_new(REQ_RESUME, t->id);
		if (r != NULL && tr__io_post(t->io, &r->op) < 0) {
			tr__free(r, sizeof(*r));
		}
	}
	unref(t);
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tcp *t = h->data;
	struct tcp_table *tb = *tr__io_tcps(t->io);

	(void)suggested;
	/* libuv reads synchronously into it and calls read_cb at once, so
	 * one buffer per loop serves every connection. */
	buf->base = (char *)tb->rbuf;
	buf->len = READ_BUF;
}

static void update_reading(struct tcp *t);

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp *t = s->data;

	if (t->draining) {
		/* Closed by its owner: nobody wants these bytes. */
		if (nread == UV_EOF) {
			uv_read_stop(s);
			t->reading = false;
			t->eof = true;
		} else if (nread < 0) {
			tcp_close(t, (int)nread);
		}
		return;
	}
	if (nread <= 0) {
		if (nread == UV_EOF) {
			/* Half-close: the owner may still write, then close. */
			uv_read_stop(s);
			t->reading = false;
			t->eof = true;
			send_event(t, TR_MSG_TCP_EOF, 0);
		} else if (nread < 0) {
			tcp_close(t, (int)nread);
		}
		return;
	}
	/*
	 * One node holds the header and the bytes: memory stays proportional
	 * to the data, and a read of a few KiB comes from the loop's node
	 * cache (nodes the workers freed), not from malloc.
	 */
	struct tr__msg *msg =
		tr__msg_new(NULL, sizeof(struct data_hdr) + (size_t)nread);
	if (msg == NULL) {
		tcp_close(t, UV_ENOMEM);
		return;
	}
	struct data_hdr *out = (struct data_hdr *)(void *)msg->data;
	memcpy(out->pub.bytes, buf->base, (size_t)nread);
	out->t = t;
	out->pub.conn.v = t->id;
	out->pub.len = (size_t)nread;
	msg->m.data = &out->pub;
	msg->m.size = sizeof(tr_tcp_data) + (size_t)nread;
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->unread, data_charge(out),
				  memory_order_relaxed);
	(void)tr__send_built(tr__io_runtime(t->io), tr__io_worker(t->io),
			     t->owner, t->owner, TR_MSG_TCP_DATA, msg,
			     data_release);
	update_reading(t);
}

/* Read while neither the owner nor the peer is behind. */
static void
update_reading(struct tcp *t)
{
	if (t->closing || t->draining || t->is_listener || t->eof) {
		return;
	}
	int64_t unread = atomic_load_explicit(&t->unread, memory_order_relaxed);
	bool want = t->reading ? unread <= TR_TCP_READ_HIGH &&
					 t->pending <= TR_TCP_READ_HIGH
			       : unread <= TR_TCP_READ_LOW &&
					 t->pending <= TR_TCP_READ_LOW;
	if (want && !t->reading) {
		uv_read_start((uv_stream_t *)&t->h, alloc_cb, read_cb);
		t->reading = true;
	} else if (!want && t->reading) {
		uv_read_stop((uv_stream_t *)&t->h);
		t->reading = false;
	}
}

static void
open_conn(struct tcp *t)
{
	uv_os_fd_t fd = -1;

	/* Request/response protocols want small writes to leave at once. */
	uv_tcp_nodelay(&t->h, 1);
	/* Published to workers by the DATA messages that carry t. */
	t->fd = uv_fileno((uv_handle_t *)&t->h, &fd) == 0 ? fd : -1;
	if (t->fd < 0) {
		wlock_close(t);
	}
	t->is_open = true;
	send_event(t, TR_MSG_TCP_OPEN, 0);
	update_reading(t);
}

/* Give @t (already on its loop) an actor, then let it read. */
static void
start_accepted(struct tcp *t, const tr_actor_def *def, void *arg)
{
	tr_pid pid;
	/* The actor owns its connection: its stop closes it (tcp.h). */
	struct tr__spawn_opts o = { .flags = TR__SPAWN_OWNS_IO };

	if (tr__spawn(tr__io_runtime(t->io), NULL, def, arg, &o, &pid) < 0) {
		t->closed_sent = true; /* nobody to tell */
		tcp_close(t, 0);
		return;
	}
	set_owner(t, pid.v);
	open_conn(t);
}

static void
temp_closed(uv_handle_t *h)
{
	tr__free(h, sizeof(uv_tcp_t));
}

/*
 * Out of memory for a connection: accept it into a throwaway handle and
 * close it, because libuv stops accepting until the pending one is taken.
 */
static void
reject(struct tcp *l)
{
	uv_tcp_t *tmp = tr__alloc(sizeof(*tmp));

	if (tmp != NULL) {
		uv_tcp_init(tr__io_uv_loop(l->io), tmp);
		(void)uv_accept((uv_stream_t *)&l->h, (uv_stream_t *)tmp);
		uv_close((uv_handle_t *)tmp, temp_closed);
	}
}

/*
 * Accept on the listener's loop and move the socket to the loop its id
 * belongs to. libuv cannot move a handle between loops, so the socket
 * goes as a duplicated descriptor and the accepting handle is closed.
 */
static void
hand_over(struct tcp *l, struct tr__io *to, uint64_t id)
{
	uv_tcp_t *tmp = tr__alloc(sizeof(*tmp));
	struct tcp_req *r = req_new(REQ_ADOPT, id);
	uv_os_fd_t fd = -1;
	int dup_fd = -1;

	if (tmp != NULL) {
		uv_tcp_init(tr__io_uv_loop(l->io), tmp);
		if (uv_accept((uv_stream_t *)&l->h, (uv_stream_t *)tmp) == 0 &&
		    uv_fileno((uv_handle_t *)tmp, &fd) == 0) {
			dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		}
		uv_close((uv_handle_t *)tmp, temp_closed);
	}
	if (r == NULL || dup_fd < 0) {
		/* Dropped: the peer sees the connection close. */
		if (dup_fd >= 0) {
			close(dup_fd);
		}
		tr__free(r, sizeof(*r));
		return;
	}
	r->fd = dup_fd;
	r->conn_def = l->conn_def;
	r->conn_arg = l->conn_arg;
	if (tr__io_post(to, &r->op) < 0) {
		close(dup_fd);
		tr__free(r, sizeof(*r));
	}
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct tcp *l = server->data;

	if (status < 0) {
		return;
	}
	uint64_t id = atomic_fetch_add_explicit(&next_tcp_id, 1,
						memory_order_relaxed);
	struct tr__io *to = tr__io_pick(l->io, id);
	if (to != l->io) {
		hand_over(l, to, id);
		return;
	}
	struct tcp *t = tcp_new(l->io, id, 0);
	if (t == NULL) {
		reject(l);
		return;
	}
	if (uv_accept(server, (uv_stream_t *)&t->h) != 0) {
		t->closed_sent = true;
		tcp_close(t, 0);
		return;
	}
	start_accepted(t, l->conn_def, l->conn_arg);
}

static void
connected(uv_connect_t *req, int status)
{
	struct tcp *t = req->data;

	tr__free(req, sizeof(*req));
	if (status < 0) {
		tcp_close(t, status);
		return;
	}
	if (t->has_timer) {
		uv_timer_stop(&t->timer);
	}
	if (!t->closing) {
		open_conn(t);
	}
}

static void
connect_timed_out(uv_timer_t *h)
{
	struct tcp *t = h->data;

	/* Closing the handle cancels the connect request (ECANCELED),
	 * which then finds the connection already closed. */
	tcp_close(t, UV_ETIMEDOUT);
}

static void
write_done(uv_write_t *req, int status)
{
	struct wreq *w = tr__container_of(req, struct wreq, req);
	struct tcp *t = w->t;

	t->pending -= (int64_t)(w->len - w->off);
	uncount(w);
	tr__free(w, sizeof(*w) + w->len);
	if (status < 0) {
		tcp_close(t, status);
	} else {
		update_reading(t);
	}
	unref(t);
}

/*
 * Loop, holding wlock: queue @w's bytes behind libuv's queue.
 * Return: true if @w was kept as a uv_write (freed in write_done).
 */
static bool
queue(struct tcp *t, struct wreq *w)
{
	if (t->pending + (int64_t)(w->len - w->off) > TR_TCP_WRITE_MAX) {
		/* The peer does not read: drop it, not the memory. */
		tcp_close(t, UV_ENOBUFS);
		return false;
	}
	uv_buf_t b = uv_buf_init((char *)w->data + w->off,
				 (unsigned)(w->len - w->off));
	w->t = t;
	if (uv_write(&w->req, (uv_stream_t *)&t->h, &b, 1, write_done) != 0) {
		tcp_close(t, UV_EPIPE);
		return false;
	}
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	t->pending += (int64_t)(w->len - w->off);
	update_reading(t);
	return true;
}

/*
 * Loop, holding wlock: put @w's bytes on the socket, straight away when
 * nothing is queued (order allows it), else behind libuv's queue.
 * Return: true if @w was kept as a uv_write (freed in write_done).
 */
static bool
put(struct tcp *t, struct wreq *w)
{
	if (t->pending + (int64_t)(w->len - w->off) > TR_TCP_WRITE_MAX) {
		/* The peer does not read: drop it, not the memory. */
		tcp_close(t, UV_ENOBUFS);
		return false;
	}
	if (t->pending == 0) {
		uv_buf_t b = uv_buf_init((char *)w->data + w->off,
					 (unsigned)(w->len - w->off));
		int n = uv_try_write((uv_stream_t *)&t->h, &b, 1);
		if (n == (int)(w->len - w->off)) {
			return false;
		}
		if (n >= 0) {
			w->off += (size_t)n;
		} else if (n != UV_EAGAIN) {
			tcp_close(t, n);
			return false;
		}
	}
	return queue(t, w);
}

/*
 * Loop, holding wlock: put every gathered write of @t on the socket, as
 * few system calls as the socket allows: while libuv holds nothing for
 * it, up to GATHER_MAX of them leave in one writev (uv_try_write with
 * several buffers); what the socket does not take is queued in order.
 */
#define GATHER_MAX 64u

/* Writes put on sockets by a flush, and the calls that took them. */
static _Atomic uint64_t gathered_writes, gathered_calls;

void
tr__io_tcp_gather_stats(uint64_t *writes, uint64_t *calls)
{
	*writes = atomic_load_explicit(&gathered_writes, memory_order_relaxed);
	*calls = atomic_load_explicit(&gathered_calls, memory_order_relaxed);
}

static void
flush_locked(struct tcp *t)
{
	while (!t->closing && t->gq_head != NULL) {
		if (t->pending > 0) {
			struct wreq *w = t->gq_head;
			t->gq_head = w->gnext;
			if (!queue(t, w)) {
				uncount(w);
				tr__free(w, sizeof(*w) + w->len);
			}
			continue;
		}
		uv_buf_t bufs[GATHER_MAX];
		unsigned n = 0;
		size_t total = 0;
		for (struct wreq *w = t->gq_head; w != NULL && n < GATHER_MAX;
		     w = w->gnext) {
			bufs[n++] = uv_buf_init((char *)w->data + w->off,
						(unsigned)(w->len - w->off));
			total += w->len - w->off;
		}
		int r = uv_try_write((uv_stream_t *)&t->h, bufs, n);
		if (r < 0 && r != UV_EAGAIN) {
			tcp_close(t, r);
			break;
		}
		atomic_fetch_add_explicit(&gathered_calls, 1,
					  memory_order_relaxed);
		size_t done = r > 0 ? (size_t)r : 0;
		while (t->gq_head != NULL &&
		       done >= t->gq_head->len - t->gq_head->off) {
			struct wreq *w = t->gq_head;
			done -= w->len - w->off;
			t->gq_head = w->gnext;
			uncount(w);
			tr__free(w, sizeof(*w) + w->len);
			atomic_fetch_add_explicit(&gathered_writes, 1,
						  memory_order_relaxed);
		}
		if (done > 0) {
			t->gq_head->off += done;
		}
		if ((size_t)(r > 0 ? r : 0) < total) {
			/* The socket is full: the rest waits in libuv's
			 * queue (the next round queues it, pending > 0). */
			struct wreq *w = t->gq_head;
			t->gq_head = w->gnext;
			if (!queue(t, w)) {
				uncount(w);
				tr__free(w, sizeof(*w) + w->len);
			}
		}
	}
	if (t->gq_head == NULL) {
		t->gq_tail = NULL;
	}
}

/* Loop: take the lock unless closed; remember that the loop holds it. */
static void
loop_lock(struct tcp *t)
{
	t->loop_holds = wlock_wait(t);
}

static void
loop_unlock(struct tcp *t)
{
	if (t->loop_holds) {
		t->loop_holds = false;
		wlock_give(t);
	}
}

/* Loop, holding wlock: the rest of a direct write goes first. */
static void
put_front(struct tcp *t)
{
	struct wreq *f =
		atomic_exchange_explicit(&t->front, NULL, memory_order_acquire);

	if (f != NULL && (t->closing || !put(t, f))) {
		uncount(f);
		tr__free(f, sizeof(*f) + f->len);
	}
}

static void
run_kick(struct tr__io *io, struct tr__io_op *op)
{
	struct tcp *t = tr__container_of(op, struct tcp, kick_op);

	(void)io;
	atomic_store_explicit(&t->kick_queued, false, memory_order_relaxed);
	if (!t->closing && !t->draining) {
		if (atomic_load_explicit(&t->broken, memory_order_acquire)) {
			tcp_close(t, UV_ENOMEM);
		} else {
			loop_lock(t);
			put_front(t);
			if (!t->closing) {
				loop_unlock(t);
			}
		}
	}
	unref(t);
}

static void
run_write(struct tr__io *io, struct tr__io_op *op)
{
	struct wreq *w = (struct wreq *)op;
	struct tcp *t = find(io, w->id);

	/* Queued after a graceful close began: dropped, as after a close. */
	if (t == NULL || t->closing || t->draining || t->is_listener ||
	    w->len == 0) {
		goto done;
	}
	/*
	 * Gathered, not written: every write that reaches this connection
	 * in this pass of the loop leaves with the others in one writev
	 * when the pass ends (tr__io_tcp_flush), with no timer and no
	 * added wait. A room that sends a line to each of its members, a
	 * few lines a turn, costs a system call per member per pass
	 * instead of one per member per line.
	 */
	w->t = t;
	w->gnext = NULL;
	if (t->gq_tail != NULL) {
		t->gq_tail->gnext = w;
	} else {
		t->gq_head = w;
	}
	t->gq_tail = w;
	if (!t->dirty) {
		struct tcp_table *tb = *tr__io_tcps(io);
		t->dirty = true;
		t->dirty_next = tb->dirty;
		tb->dirty = t;
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	}
	return;

done:
	uncount(w);
	tr__free(w, sizeof(*w) + w->len);
}

void
tr__io_tcp_flush(struct tr__io *io)
{
	struct tcp_table *tb = *tr__io_tcps(io);

	if (tb == NULL) {
		return;
	}
	while (tb->dirty != NULL) {
		struct tcp *t = tb->dirty;
		tb->dirty = t->dirty_next;
		t->dirty = false;
		if (t->gq_head != NULL && !t->closing) {
			loop_lock(t);
			put_front(t);
			flush_locked(t);
			if (!t->closing) {
				loop_unlock(t);
			}
		}
		drop_gathered(t); /* closed on the way: nothing to flush */
		unref(t);
	}
}

static void
shut_done(uv_shutdown_t *req, int status)
{
	struct tcp *t = req->data;

	/* ECANCELED when the handle closed first, then nothing happens. */
	(void)status;
	tcp_close(t, 0);
	unref(t);
}

static void
listen_reply(struct tr__io *io, const struct tcp_req *r, int status,
	     uint16_t port)
{
	tr_tcp_listening l;

	memset(&l, 0, sizeof(l));
	l.listener.v = r->id;
	l.status = status;
	l.port = port;
	if (status < 0) {
		snprintf(l.error, sizeof(l.error), "%s", uv_err_name(status));
	}
	(void)tr__send_sys(tr__io_runtime(io), tr__io_worker(io), r->owner,
			   r->owner, TR_MSG_TCP_LISTENING, &l, sizeof(l));
}

static int
addr_of(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
		return 0;
	}
	return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

static void
do_listen(struct tr__io *io, const struct tcp_req *r)
{
	struct sockaddr_storage ss;
	struct tcp *l = tcp_new(io, r->id, r->owner);

	if (l == NULL) {
		listen_reply(io, r, UV_ENOMEM, 0);
		return;
	}
	l->is_listener = true;
	l->conn_def = r->conn_def;
	l->conn_arg = r->conn_arg;
	int err = addr_of(r->host, r->port, &ss);
	if (err == 0) {
		err = uv_tcp_bind(&l->h, (struct sockaddr *)&ss, 0);
	}
	if (err == 0) {
		err = uv_listen((uv_stream_t *)&l->h, 511, on_connection);
	}
	uint16_t port = 0;
	if (err == 0) {
		struct sockaddr_storage got;
		int len = sizeof(got);
		uv_tcp_getsockname(&l->h, (struct sockaddr *)&got, &len);
		port = ntohs(got.ss_family == AF_INET6
				     ? ((struct sockaddr_in6 *)&got)->sin6_port
				     : ((struct sockaddr_in *)&got)->sin_port);
	}
	listen_reply(io, r, err, port);
	if (err != 0) {
		tcp_close(l, err);
	}
}

static void
do_connect(struct tr__io *io, const struct tcp_req *r)
{
	struct sockaddr_storage ss;
	struct tcp *t = tcp_new(io, r->id, r->owner);
	uv_connect_t *req = tr__alloc(sizeof(*req));
	int err = t == NULL || req == NULL ? UV_ENOMEM
					   : addr_of(r->host, r->port, &ss);

	if (err == 0) {
		req->data = t;
		err = uv_tcp_connect(req, &t->h, (struct sockaddr *)&ss,
				     connected);
	}
	if (err != 0) {
		tr__free(req, sizeof(*req));
		if (t != NULL) {
			tcp_close(t, err);
			return;
		}
		tr_tcp_event e = { .conn = { r->id }, .status = UV_ENOMEM };
		snprintf(e.error, sizeof(e.error), "ENOMEM");
		(void)tr__send_sys(tr__io_runtime(io), tr__io_worker(io),
				   r->owner, r->owner, TR_MSG_TCP_CLOSED, &e,
				   sizeof(e));
		return;
	}
	if (r->timeout_ms > 0) {
		uv_timer_init(tr__io_uv_loop(io), &t->timer);
		t->timer.data = t;
		t->has_timer = true;
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
		uv_timer_start(&t->timer, connect_timed_out, r->timeout_ms, 0);
	}
}

/*
 * A graceful close makes no progress when libuv has held the same bytes
 * for TR_TCP_LINGER_MS: the peer stopped reading, so reset it.
 */
static void
linger_tick(uv_timer_t *h)
{
	struct tcp *t = h->data;
	size_t left = uv_stream_get_write_queue_size((uv_stream_t *)&t->h);
	uint64_t now = uv_now(h->loop);

	if (left < t->linger_left) {
		t->linger_left = left;
		t->linger_since = now;
	} else if (now - t->linger_since >= TR_TCP_LINGER_MS) {
		tcp_reset(t, UV_ETIMEDOUT);
	}
}

/*
 * Loop: close @t after what is queued for it (tcp.h states the rule).
 * What is not yet on the socket goes first, `front` included; then libuv
 * runs the shutdown behind the queued writes, and shut_done closes the
 * handle. A write error on the way closes at once (write_done).
 */
static void
close_gracefully(struct tcp *t)
{
	if (t->closing || t->draining) {
		return;
	}
	/* A listener, or a connect still in progress, has nothing to flush. */
	if (t->is_listener || !t->is_open) {
		tcp_close(t, 0);
		return;
	}
	/* The rest of a direct write, then what was gathered, still go
	 * before the FIN. */
	loop_lock(t);
	put_front(t);
	flush_locked(t);
	if (t->closing) {
		return;
	}
	wlock_close(t);
	t->shut.data = t;
	if (uv_shutdown(&t->shut, (uv_stream_t *)&t->h, shut_done) != 0) {
		/* No longer writable: there is nothing left to flush. */
		tcp_close(t, 0);
		return;
	}
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	t->draining = true;
	/* Keep reading, to discard: bytes left unread in the kernel would
	 * make the final close() reset the connection and drop the rest of
	 * our writes with it. */
	if (!t->eof && !t->reading) {
		uv_read_start((uv_stream_t *)&t->h, alloc_cb, read_cb);
		t->reading = true;
	}
	if (!t->has_timer) {
		uv_timer_init(tr__io_uv_loop(t->io), &t->timer);
		t->timer.data = t;
		t->has_timer = true;
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	}
	t->linger_left = uv_stream_get_write_queue_size((uv_stream_t *)&t->h);
	t->linger_since = uv_now(tr__io_uv_loop(t->io));
	uv_timer_start(&t->timer, linger_tick, LINGER_TICK_MS, LINGER_TICK_MS);
}

static void
do_close(struct tr__io *io, const struct tcp_req *r)
{
	struct tcp *t = find(io, r->id);

	if (t != NULL) {
		close_gracefully(t);
	}
}

static void
do_abort(struct tr__io *io, const struct tcp_req *r)
{
	struct tcp *t = find(io, r->id);

	/* Also cuts a graceful close short. */
	if (t != NULL) {
		tcp_reset(t, 0);
	}
}

static void
do_adopt(struct tr__io *io, const struct tcp_req *r)
{
	struct tcp *t = tcp_new(io, r->id, 0);

	if (t == NULL) {
		close(r->fd);
		return;
	}
	if (uv_tcp_open(&t->h, r->fd) != 0) {
		close(r->fd);
		t->closed_sent = true;
		tcp_close(t, 0);
		return;
	}
	start_accepted(t, r->conn_def, r->conn_arg);
}

static void
run_req(struct tr__io *io, struct tr__io_op *op)
{
	struct tcp_req *r = (struct tcp_req *)op;

	switch (r->kind) {
	case REQ_LISTEN:
		do_listen(io, r);
		break;
	case REQ_CONNECT:
		do_connect(io, r);
		break;
	case REQ_CLOSE:
		do_close(io, r);
		break;
	case REQ_ABORT:
		do_abort(io, r);
		break;
	case REQ_RESUME: {
		struct tcp *t = find(io, r->id);
		if (t != NULL) {
			update_reading(t);
		}
		break;
	}
	case REQ_ADOPT:
		do_adopt(io, r);
		break;
	}
	tr__free(r, sizeof(*r));
}

void
tr__io_tcp_close_owned(struct tr__io *io, uint64_t owner)
{
	struct tcp_table *tb = *tr__io_tcps(io);

	if (tb == NULL) {
		return;
	}
	if (owner != 0) {
		/* The owner stopped: its connections close gracefully. */
		struct tcp *t = *owner_bucket(tb, owner);
		while (t != NULL) {
			struct tcp *next = t->owner_next;
			if (t->owner == owner) {
				/* Unlinks nothing but t, if anything. */
				close_gracefully(t);
			}
			t = next;
		}
		return;
	}
	/* The runtime is stopping: everything closes at once. */
	for (unsigned i = 0; i < TCP_BUCKETS; i++) {
		while (tb->by_id[i] != NULL) {
			tcp_close(tb->by_id[i], 0);
		}
	}
}

void
tr__io_tcp_fini(struct tr__io *io)
{
	void **slot = tr__io_tcps(io);

	tr__free(*slot, sizeof(struct tcp_table));
	*slot = NULL;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

static tr_err
post(tr_ctx *cx, uint64_t id, struct tr__io_op *op)
{
	return tr__io_post(tr__io_pick(cx->rt->io, id), op);
}

static tr_err
endpoint_req(tr_ctx *cx, enum req_kind kind, const char *host, uint16_t port,
	     struct tcp_req **out)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || host == NULL ||
	    strlen(host) >= sizeof(((struct tcp_req *)0)->host)) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	struct tcp_req *r =
		req_new(kind, atomic_fetch_add_explicit(&next_tcp_id, 1,
							memory_order_relaxed));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->owner = cx->self;
	r->port = port;
	snprintf(r->host, sizeof(r->host), "%s", host);
	*out = r;
	return TR_OK;
}

static tr_err
endpoint_submit(tr_ctx *cx, struct tcp_req *r, tr_tcp *out)
{
	uint64_t id = r->id;
	tr_err err = tr__actor_note_io(cx);

	if (err == TR_OK) {
		err = post(cx, id, &r->op);
	}
	if (err < 0) {
		tr__free(r, sizeof(*r));
		return err;
	}
	if (out != NULL) {
		out->v = id;
	}
	return TR_OK;
}

tr_err
tr_tcp_listen(tr_ctx *cx, const char *host, uint16_t port,
	      const tr_actor_def *conn_def, void *conn_arg, tr_tcp *out)
{
	struct tcp_req *r;

	if (conn_def == NULL || conn_def->size < sizeof(tr_actor_def) ||
	    conn_def->handle == NULL) {
		return TR_EINVAL;
	}
	tr_err err = endpoint_req(cx, REQ_LISTEN, host, port, &r);
	if (err < 0) {
		return err;
	}
	r->conn_def = conn_def;
	r->conn_arg = conn_arg;
	return endpoint_submit(cx, r, out);
}

tr_err
tr_tcp_connect(tr_ctx *cx, const char *host, uint16_t port, uint32_t timeout_ms,
	       tr_tcp *out)
{
	struct tcp_req *r;
	tr_err err = endpoint_req(cx, REQ_CONNECT, host, port, &r);

	if (err < 0) {
		return err;
	}
	r->timeout_ms = timeout_ms;
	return endpoint_submit(cx, r, out);
}

/* The connection of the DATA message being handled, if it is @conn. */
static struct tcp *
current_conn(tr_ctx *cx, tr_tcp conn)
{
	const tr_msg *m = cx->msg;

	/* Only the runtime sends this type, always built with its hook. */
	if (m == NULL || m->type != TR_MSG_TCP_DATA || m->data == NULL ||
	    !(tr__container_of(m, const struct tr__msg, m)->iflags &
	      TR__MSG_I_HOOK)) {
		return NULL;
	}
	const tr_tcp_data *d = m->data;
	if (d->conn.v != conn.v) {
		return NULL;
	}
	/* The message holds a reference, so t lives while we use it. */
	return tr__container_of((void *)(uintptr_t)d, struct data_hdr, pub)->t;
}

/* Have the loop write `front` (or close a broken connection). */
static void
kick(struct tcp *t)
{
	if (atomic_exchange_explicit(&t->kick_queued, true,
				     memory_order_acq_rel)) {
		return; /* already on the stack */
	}
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	if (tr__io_post(t->io, &t->kick_op) < 0) {
		/* Stopping: tcp_close frees `front`. */
		atomic_store_explicit(&t->kick_queued, false,
				      memory_order_relaxed);
		unref(t);
	}
}

/*
 * A worker answering the connection whose data it is handling writes to
 * the socket itself when nothing for it waits at the loop: the reply then
 * costs one send() and no hop to the I/O thread. The write lock keeps the
 * loop and other workers off the socket meanwhile; what the socket does
 * not take becomes `front`, which the loop writes before anything queued
 * later. Return: true when the bytes are taken care of.
 */
static bool
try_direct(struct tcp *t, tr_tcp conn, const void *data, size_t len)
{
	_Atomic int64_t *queued = inflight_of(conn.v);

	/* Held means held by the loop, which is writing for this connection
	 * now: the write goes behind, through the loop, without waiting. */
	if (atomic_load_explicit(queued, memory_order_acquire) != 0 ||
	    !wlock_try(t)) {
		return false;
	}
	if (atomic_load_explicit(queued, memory_order_acquire) != 0) {
		wlock_give(t);
		return false;
	}
	ssize_t n = send(t->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == (ssize_t)len) {
		wlock_give(t);
		return true;
	}
	if (n <= 0) {
		/* Nothing went: the loop writes it all, and reports errors
		 * with libuv's names. */
		wlock_give(t);
		return false;
	}
	size_t rest = len - (size_t)n;
	struct wreq *f = tr__alloc(sizeof(*f) + rest);
	if (f == NULL) {
		/* Part of a message went out and the rest cannot follow. */
		atomic_store_explicit(&t->broken, true, memory_order_release);
	} else {
		memset(f, 0, sizeof(*f));
		f->id = conn.v;
		f->counted = true;
		f->len = rest;
		memcpy(f->data, (const char *)data + n, rest);
		atomic_fetch_add_explicit(queued, 1, memory_order_relaxed);
		atomic_store_explicit(&t->front, f, memory_order_release);
	}
	kick(t);
	wlock_give(t);
	return true;
}

tr_err
tr_tcp_write(tr_ctx *cx, tr_tcp conn, const void *data, size_t len)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || conn.v == 0 ||
	    (len > 0 && data == NULL) || len > TR_TCP_WRITE_MAX) {
		return TR_EINVAL;
	}
	if (len == 0) {
		return TR_OK;
	}
	struct tcp *t = current_conn(cx, conn);
	if (t != NULL && try_direct(t, conn, data, len)) {
		return TR_OK;
	}
	struct wreq *w = tr__alloc(sizeof(*w) + len);
	if (w == NULL) {
		return TR_ENOMEM;
	}
	w->op.run = run_write;
	w->id = conn.v;
	w->t = NULL;
	w->len = len;
	w->off = 0;
	w->counted = true;
	memcpy(w->data, data, len);
	/* Counted before it is queued: a writer that happens after us
	 * sees it and queues behind instead of writing directly. */
	atomic_fetch_add_explicit(inflight_of(conn.v), 1, memory_order_relaxed);
	tr_err err = post(cx, conn.v, &w->op);
	if (err < 0) {
		uncount(w);
		tr__free(w, sizeof(*w) + len);
	}
	return err;
}

static tr_err
conn_req(tr_ctx *cx, tr_tcp conn, enum req_kind kind)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || conn.v == 0) {
		return TR_EINVAL;
	}
	struct tcp_req *r = req_new(kind, conn.v);
	if (r == NULL) {
		return TR_ENOMEM;
	}
	tr_err err = post(cx, conn.v, &r->op);
	if (err < 0) {
		tr__free(r, sizeof(*r));
	}
	return err;
}

tr_err
tr_tcp_close(tr_ctx *cx, tr_tcp conn)
{
	return conn_req(cx, conn, REQ_CLOSE);
}

tr_err
tr_tcp_abort(tr_ctx *cx, tr_tcp conn)
{
	return conn_req(cx, conn, REQ_ABORT);
}
