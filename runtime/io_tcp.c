/*
 * TCP listeners and connections on the I/O thread (<troupe/tcp.h>).
 *
 * Threads: the public calls copy their arguments and pass them with
 * tr__io_call(); every uv_ handle and the connection table belong to the
 * I/O thread. The one exception is the free function of a DATA message,
 * which runs wherever the message is consumed: it lowers the connection's
 * count of unread bytes (atomic) and, when reading was paused for that
 * reason and the count is back under the low watermark, asks the I/O
 * thread to resume. A connection is therefore reference-counted: one
 * reference for the I/O thread until its handle's close callback, one per
 * DATA message in flight.
 *
 * Invariants: each connection sends exactly one OPEN-or-CLOSED first and
 * exactly one CLOSED last; a connection or listener whose owner stopped is
 * closed (actor.c calls tr__io_owner_gone, which also lands here).
 */
#include <troupe/tcp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/internal.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

struct tcp {
	uv_tcp_t h;
	struct tcp *next;
	struct tr__io *io;
	uint64_t id;
	uint64_t owner;
	bool is_listener;
	const tr_actor_def *conn_def; /* listeners */
	bool reading;
	bool paused_unread;
	bool closing;
	bool closed_sent;
	bool eof; /* the peer shut down its sending side */
	int64_t pending; /* write bytes queued (I/O thread) */
	_Atomic int64_t unread;
	_Atomic int refs;
};

/* Private header in front of each DATA payload. */
struct data_hdr {
	struct tcp *t;
	size_t len;
	_Alignas(16) tr_tcp_data pub;
};

struct tcp_req {
	int op; /* 0 listen, 1 connect, 2 write, 3 close, 4 owner gone, 5 resume */
	uint64_t id;
	uint64_t owner;
	const tr_actor_def *conn_def;
	uint16_t port;
	char host[64];
	size_t len;
	unsigned char data[];
};

struct wreq {
	uv_write_t req;
	struct tcp *t;
	size_t len;
	unsigned char data[];
};

static _Atomic uint64_t next_tcp_id = 1;
static void **
table(struct tr__io *io)
{
	return tr__io_tcps(io);
}

static struct tcp *
find(struct tr__io *io, uint64_t id)
{
	for (struct tcp *t = *table(io); t != NULL; t = t->next) {
		if (t->id == id) {
			return t;
		}
	}
	return NULL;
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
	(void)tr__send_sys(tr__io_runtime(t->io), NULL, t->owner, t->owner,
			   type, &e, sizeof(e));
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
	struct tcp **pp = (struct tcp **)table(t->io);
	while (*pp != NULL && *pp != t) {
		pp = &(*pp)->next;
	}
	if (*pp == t) {
		*pp = t->next;
	}
	uv_close((uv_handle_t *)&t->h, closed_cb);
}

static struct tcp *
tcp_new(struct tr__io *io, uint64_t id, uint64_t owner)
{
	struct tcp *t = tr__calloc(sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	t->io = io;
	t->id = id;
	t->owner = owner;
	atomic_init(&t->refs, 1);
	uv_tcp_init(tr__io_uv_loop(io), &t->h);
	t->h.data = t;
	t->next = *table(io);
	*table(io) = t;
	return t;
}

static void
data_free(void *p)
{
	struct data_hdr *d = tr__container_of(p, struct data_hdr, pub);
	struct tcp *t = d->t;
	int64_t left = atomic_fetch_sub_explicit(&t->unread, (int64_t)d->len,
						 memory_order_relaxed) -
		       (int64_t)d->len;

	if (left <= TR_TCP_READ_LOW &&
	    left + (int64_t)d->len > TR_TCP_READ_LOW) {
		/* Crossed the low watermark: let the I/O thread resume. */
		struct tcp_req *r = tr__calloc(sizeof(*r));
		if (r != NULL) {
			r->op = 5;
			r->id = t->id;
			if (tr__io_call(t->io, tr__io_tcp_run, r) < 0) {
				tr__free(r, sizeof(*r));
			}
		}
	}
	tr__free(d, sizeof(*d) + d->len);
	unref(t);
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	struct data_hdr *d = tr__alloc(sizeof(*d) + 65536);
	buf->base = d != NULL ? (char *)d->pub.bytes : NULL;
	buf->len = d != NULL ? 65536 : 0;
}

static void update_reading(struct tcp *t);

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp *t = s->data;
	struct data_hdr *d = buf->base != NULL
		? tr__container_of((void *)buf->base, struct data_hdr, pub.bytes)
		: NULL;

	if (nread <= 0) {
		if (d != NULL) {
			tr__free(d, sizeof(*d) + 65536);
		}
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
	/* Shrink to what was read; the copy keeps memory proportional. */
	struct data_hdr *out = tr__alloc(sizeof(*out) + (size_t)nread);
	if (out == NULL) {
		tr__free(d, sizeof(*d) + 65536);
		tcp_close(t, UV_ENOMEM);
		return;
	}
	memcpy(out->pub.bytes, d->pub.bytes, (size_t)nread);
	tr__free(d, sizeof(*d) + 65536);
	out->t = t;
	out->len = (size_t)nread;
	out->pub.conn.v = t->id;
	out->pub.len = (size_t)nread;
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->unread, nread, memory_order_relaxed);
	(void)tr__send_ptr(tr__io_runtime(t->io), NULL, t->owner, t->owner,
			   TR_MSG_TCP_DATA, &out->pub,
			   sizeof(tr_tcp_data) + (size_t)nread, data_free,
			   false);
	update_reading(t);
}

/* Read while neither the owner nor the peer is behind. */
static void
update_reading(struct tcp *t)
{
	if (t->closing || t->is_listener || t->eof) {
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
	send_event(t, TR_MSG_TCP_OPEN, 0);
	update_reading(t);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct tcp *l = server->data;
	tr_runtime *rt = tr__io_runtime(l->io);

	if (status < 0) {
		return;
	}
	uint64_t id = atomic_fetch_add_explicit(&next_tcp_id, 1,
						memory_order_relaxed);
	struct tcp *t = tcp_new(l->io, id, 0);
	if (t == NULL) {
		return;
	}
	tr_pid pid;
	if (uv_accept(server, (uv_stream_t *)&t->h) != 0 ||
	    tr__spawn(rt, NULL, l->conn_def, NULL, NULL, &pid) < 0) {
		t->closed_sent = true; /* nobody to tell */
		tcp_close(t, 0);
		return;
	}
	t->owner = pid.v;
	open_conn(t);
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
	if (!t->closing) {
		open_conn(t);
	}
}

static void
write_done(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct tcp *t = w->t;

	t->pending -= (int64_t)w->len;
	tr__free(w, sizeof(*w) + w->len);
	if (status < 0) {
		tcp_close(t, status);
	} else {
		update_reading(t);
	}
	unref(t);
}

static void
shut_done(uv_shutdown_t *req, int status)
{
	struct tcp *t = req->data;

	(void)status;
	tr__free(req, sizeof(*req));
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
	(void)tr__send_sys(tr__io_runtime(io), NULL, r->owner, r->owner,
			   TR_MSG_TCP_LISTENING, &l, sizeof(l));
}

static int
addr_of(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
		return 0;
	}
	return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

void
tr__io_tcp_run(struct tr__io *io, void *arg)
{
	struct tcp_req *r = arg;
	struct sockaddr_storage ss;

	switch (r->op) {
	case 0: { /* listen */
		struct tcp *l = tcp_new(io, r->id, r->owner);
		if (l == NULL) {
			listen_reply(io, r, UV_ENOMEM, 0);
			break;
		}
		l->is_listener = true;
		l->conn_def = r->conn_def;
		int err = addr_of(r->host, r->port, &ss);
		if (err == 0) {
			err = uv_tcp_bind(&l->h, (struct sockaddr *)&ss, 0);
		}
		if (err == 0) {
			err = uv_listen((uv_stream_t *)&l->h, 511,
					on_connection);
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
		break;
	}
	case 1: { /* connect */
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
			} else {
				tr_tcp_event e = { .conn = { r->id },
						   .status = UV_ENOMEM };
				snprintf(e.error, sizeof(e.error), "ENOMEM");
				(void)tr__send_sys(tr__io_runtime(io), NULL,
						   r->owner, r->owner,
						   TR_MSG_TCP_CLOSED, &e,
						   sizeof(e));
			}
		}
		break;
	}
	case 2: { /* write */
		struct tcp *t = find(io, r->id);
		if (t == NULL || t->closing || t->is_listener) {
			break;
		}
		if (t->pending + (int64_t)r->len > TR_TCP_WRITE_MAX) {
			/* The peer does not read: drop it, not the memory. */
			tcp_close(t, UV_ENOBUFS);
			break;
		}
		struct wreq *w = tr__alloc(sizeof(*w) + r->len);
		if (w == NULL) {
			tcp_close(t, UV_ENOMEM);
			break;
		}
		w->t = t;
		w->len = r->len;
		memcpy(w->data, r->data, r->len);
		uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)r->len);
		if (uv_write(&w->req, (uv_stream_t *)&t->h, &b, 1,
			     write_done) != 0) {
			tr__free(w, sizeof(*w) + r->len);
			tcp_close(t, UV_EPIPE);
			break;
		}
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
		t->pending += (int64_t)r->len;
		update_reading(t);
		break;
	}
	case 3: { /* close after pending writes */
		struct tcp *t = find(io, r->id);
		if (t == NULL || t->closing) {
			break;
		}
		uv_shutdown_t *req = t->is_listener ? NULL
						    : tr__alloc(sizeof(*req));
		if (req == NULL) {
			tcp_close(t, 0);
			break;
		}
		req->data = t;
		uv_read_stop((uv_stream_t *)&t->h);
		t->reading = false;
		if (uv_shutdown(req, (uv_stream_t *)&t->h, shut_done) != 0) {
			tr__free(req, sizeof(*req));
			tcp_close(t, 0);
			break;
		}
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
		break;
	}
	case 4: /* owner gone */
		tr__io_tcp_close_owned(io, r->owner);
		break;
	case 5: { /* resume reading */
		struct tcp *t = find(io, r->id);
		if (t != NULL) {
			update_reading(t);
		}
		break;
	}
	}
	tr__free(r, sizeof(*r) + r->len);
}

void
tr__io_tcp_close_owned(struct tr__io *io, uint64_t owner)
{
	struct tcp *t = *table(io);

	while (t != NULL) {
		struct tcp *next = t->next;
		if (owner == 0 || t->owner == owner) {
			tcp_close(t, 0);
		}
		t = next;
	}
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

static tr_err
submit(tr_ctx *cx, struct tcp_req *r)
{
	tr_err err = tr__io_call(cx->rt->io, tr__io_tcp_run, r);

	if (err < 0) {
		tr__free(r, sizeof(*r) + r->len);
	}
	return err;
}

static tr_err
endpoint_req(tr_ctx *cx, int op, const char *host, uint16_t port,
	     const tr_actor_def *def, tr_tcp *out)
{
	if (cx == NULL || cx->a == NULL || host == NULL ||
	    strlen(host) >= sizeof(((struct tcp_req *)0)->host)) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	struct tcp_req *r = tr__calloc(sizeof(*r));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->op = op;
	r->id = atomic_fetch_add_explicit(&next_tcp_id, 1, memory_order_relaxed);
	r->owner = cx->self;
	r->conn_def = def;
	r->port = port;
	snprintf(r->host, sizeof(r->host), "%s", host);
	uint64_t id = r->id;
	tr_err err = tr__actor_note_io(cx);
	if (err < 0) {
		tr__free(r, sizeof(*r));
		return err;
	}
	err = submit(cx, r);
	if (err == TR_OK && out != NULL) {
		out->v = id;
	}
	return err;
}

tr_err
tr_tcp_listen(tr_ctx *cx, const char *host, uint16_t port,
	      const tr_actor_def *conn_def, tr_tcp *out)
{
	if (conn_def == NULL || conn_def->size < sizeof(tr_actor_def) ||
	    conn_def->handle == NULL) {
		return TR_EINVAL;
	}
	return endpoint_req(cx, 0, host, port, conn_def, out);
}

tr_err
tr_tcp_connect(tr_ctx *cx, const char *host, uint16_t port, tr_tcp *out)
{
	return endpoint_req(cx, 1, host, port, NULL, out);
}

tr_err
tr_tcp_write(tr_ctx *cx, tr_tcp conn, const void *data, size_t len)
{
	if (cx == NULL || conn.v == 0 || (len > 0 && data == NULL) ||
	    len > TR_TCP_WRITE_MAX) {
		return TR_EINVAL;
	}
	struct tcp_req *r = tr__alloc(sizeof(*r) + len);
	if (r == NULL) {
		return TR_ENOMEM;
	}
	memset(r, 0, sizeof(*r));
	r->op = 2;
	r->id = conn.v;
	r->len = len;
	memcpy(r->data, data, len);
	return submit(cx, r);
}

tr_err
tr_tcp_close(tr_ctx *cx, tr_tcp conn)
{
	if (cx == NULL || conn.v == 0) {
		return TR_EINVAL;
	}
	struct tcp_req *r = tr__calloc(sizeof(*r));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->op = 3;
	r->id = conn.v;
	return submit(cx, r);
}
