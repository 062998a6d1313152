/*
 * Ask: one request, exactly one result (<troupe/actors/ask.h>).
 *
 * Every ask gets its own proxy actor, as in Akka's ask pattern. The proxy
 * is spawned with the request as its init argument; init monitors the
 * asker and the target, arms the timeout and sends the request as the
 * proxy, so the target's tr_sender() is the proxy. From then on the proxy
 * waits for the first of: any user message (the reply), its own timeout
 * message, or the DOWN of the target. It turns that into one result,
 * sends it to the asker and stops. Anything sent to it afterwards is a
 * dead letter of the runtime.
 *
 * Why the outcome is exactly one:
 * - The proxy chooses the outcome once (`done`), and only then sends.
 * - A reply sent by the target before it stops is queued at the proxy
 *   before the target's DOWN, because the runtime keeps the order of one
 *   sender's messages and sends the DOWN from the stopping target. So a
 *   "reply then stop" target is an OK, not an ENOENT.
 * - A result the asker's mailbox refuses (TR_EFULL, TR_ENOMEM) is kept and
 *   sent again on a backing-off timer until it is taken or the asker
 *   stops; the asker's DOWN is the only way out without a result.
 *
 * Threads: the proxy runs on workers like any actor; tr_ask_sync() runs
 * on a caller thread and waits on a private inbox.
 */
#include <troupe/actors/ask.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Proxy-private messages, at the top of the module's range. */
#define MSG_PROXY_TIMEOUT (TR_MSG_ASK_BASE + 0x80u)
#define MSG_PROXY_RETRY (TR_MSG_ASK_BASE + 0x81u)

/*
 * Backoff for a result the asker's mailbox refused: start at 1 ms, double
 * up to 100 ms, which keeps a full mailbox from being polled in a tight
 * loop while still delivering soon after it drains.
 */
#define RETRY_FIRST_MS 1u
#define RETRY_MAX_MS 100u

/* How long tr_ask_sync() waits beyond the timeout for the proxy to act. */
#define SYNC_GRACE_MS 1000u

/*
 * Wire header of TR_MSG_ASK_RESULT, followed by the reply's bytes. It is
 * copied in and out with memcpy because payloads carry no alignment.
 */
struct wire {
	uint64_t id;
	tr_pid from;
	int32_t status;
	uint32_t type;
	uint64_t size;
};

/* The init argument of a proxy; the proxy frees it in init. */
struct ask_req {
	tr_pid asker;
	tr_pid target;
	uint64_t id;
	uint64_t timeout_ms;
	uint32_t type;
	size_t len;
	unsigned char data[];
};

struct proxy {
	tr_pid asker;
	tr_pid target;
	uint64_t id;
	uint64_t asker_ref;
	uint64_t target_ref;
	tr_timer_id timer;
	bool has_timer;
	bool done;             /* the outcome is chosen */
	unsigned char *result; /* wire result not yet taken by the asker */
	size_t result_len;
	uint32_t retry_ms;
};

/* Correlation ids are unique in the process, across runtimes. */
static _Atomic uint64_t next_id = 1;

static uint64_t
take_id(void)
{
	/* relaxed: only uniqueness matters, no data is published by it. */
	return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
}

static unsigned char *
wire_make(uint64_t id, int32_t status, uint32_t type, tr_pid from,
	  const void *data, size_t size, size_t *len)
{
	struct wire w = {
		.id = id,
		.from = from,
		.status = status,
		.type = type,
		.size = size,
	};
	unsigned char *buf;

	if (size > SIZE_MAX - sizeof(w)) {
		return NULL;
	}
	buf = malloc(sizeof(w) + size);
	if (buf == NULL) {
		return NULL;
	}
	memcpy(buf, &w, sizeof(w));
	if (size > 0) {
		memcpy(buf + sizeof(w), data, size);
	}
	*len = sizeof(w) + size;
	return buf;
}

/* Send the pending result; on a refusal try again later. */
static void
proxy_deliver(tr_ctx *cx, struct proxy *p)
{
	for (;;) {
		tr_err err = tr_send(cx, p->asker, TR_MSG_ASK_RESULT,
				     p->result, p->result_len);
		if (err == TR_OK) {
			free(p->result);
			p->result = NULL;
			tr_stop_self(cx, TR_EXIT_NORMAL);
			return;
		}
		if (err == TR_EMSGSIZE && p->result_len > sizeof(struct wire)) {
			/* The reply fits the target's send but not with our
			 * header: tell the asker instead of the bytes. */
			size_t len;
			unsigned char *small = wire_make(p->id, TR_EMSGSIZE, 0,
							 TR_PID_NONE, NULL, 0,
							 &len);
			if (small == NULL) {
				err = TR_ENOMEM;
			} else {
				free(p->result);
				p->result = small;
				p->result_len = len;
				continue;
			}
		}
		if (err == TR_EFULL || err == TR_ENOMEM) {
			uint32_t delay = p->retry_ms;
			p->retry_ms = delay * 2;
			if (p->retry_ms > RETRY_MAX_MS) {
				p->retry_ms = RETRY_MAX_MS;
			}
			if (tr_send_after(cx, tr_self(cx), MSG_PROXY_RETRY, NULL,
					  0, delay, NULL) == TR_OK) {
				return;
			}
		}
		/* Nothing more can be done (the runtime is stopping). */
		tr_stop_self(cx, TR_EXIT_NORMAL);
		return;
	}
}

/* Choose the outcome (once) and start delivering it. */
static void
proxy_finish(tr_ctx *cx, struct proxy *p, int32_t status, const tr_msg *m)
{
	size_t len = 0;

	p->done = true;
	if (p->has_timer) {
		/* Frees the timer now instead of at its expiry. */
		(void)tr_timer_cancel(cx, p->timer);
		p->has_timer = false;
	}
	if (m != NULL) {
		p->result = wire_make(p->id, status, m->type, m->from,
				      m->data, m->data != NULL ? m->size : 0,
				      &len);
	} else {
		p->result = wire_make(p->id, status, 0, TR_PID_NONE, NULL, 0,
				      &len);
	}
	if (p->result == NULL && m != NULL) {
		/* No room for the reply's bytes: report that instead. */
		p->result = wire_make(p->id, TR_ENOMEM, 0, TR_PID_NONE, NULL,
				      0, &len);
	}
	if (p->result == NULL) {
		/* Not even a header fits in memory; the asker cannot be
		 * told, and a proxy kept alive would help nobody. */
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}
	p->result_len = len;
	p->retry_ms = RETRY_FIRST_MS;
	proxy_deliver(cx, p);
}

static int
proxy_init(tr_ctx *cx, void *state, void *arg)
{
	struct proxy *p = state;
	struct ask_req *req = arg;
	tr_err err;

	p->asker = req->asker;
	p->target = req->target;
	p->id = req->id;
	/* The asker first: if it is already gone, nobody wants the result. */
	err = tr_monitor(cx, p->asker, &p->asker_ref);
	if (err == TR_OK) {
		err = tr_monitor(cx, p->target, &p->target_ref);
	}
	if (err == TR_OK) {
		/* Armed before the request goes out, so that a failure here
		 * never leaves a request without a timeout. */
		err = tr_send_after(cx, tr_self(cx), MSG_PROXY_TIMEOUT, NULL, 0,
				    req->timeout_ms, &p->timer);
		p->has_timer = err == TR_OK;
	}
	if (err == TR_OK) {
		err = tr_send(cx, p->target, req->type,
			      req->len > 0 ? req->data : NULL, req->len);
	}
	free(req);
	if (err < 0) {
		proxy_finish(cx, p, err, NULL);
	}
	return TR_OK;
}

static void
proxy_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct proxy *p = state;
	bool from_self = tr_pid_eq(m->from, tr_self(cx));

	if (m->type == TR_MSG_DOWN) {
		tr_down d;

		if (m->size != sizeof(d)) {
			return;
		}
		memcpy(&d, m->data, sizeof(d));
		if (d.ref == p->asker_ref) {
			/* Nobody to tell: stop without a result. */
			tr_stop_self(cx, TR_EXIT_NORMAL);
		} else if (d.ref == p->target_ref && !p->done) {
			proxy_finish(cx, p, TR_ENOENT, NULL);
		}
		return;
	}
	if (from_self && m->type == MSG_PROXY_TIMEOUT) {
		p->has_timer = false;
		if (!p->done) {
			proxy_finish(cx, p, TR_ETIMEDOUT, NULL);
		}
		return;
	}
	if (from_self && m->type == MSG_PROXY_RETRY) {
		if (p->result != NULL) {
			proxy_deliver(cx, p);
		}
		return;
	}
	if (!p->done && m->type < TR_MSG_SYSTEM_BASE) {
		proxy_finish(cx, p, TR_OK, m);
	}
	/* A second reply while a refused result waits is dropped. */
}

static void
proxy_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct proxy *p = state;

	(void)cx;
	(void)reason;
	free(p->result);
	p->result = NULL;
}

static const tr_actor_def proxy_def = {
	.size = sizeof(tr_actor_def),
	.name = "ask-proxy",
	.state_size = sizeof(struct proxy),
	.init = proxy_init,
	.teardown = proxy_teardown,
	.handle = proxy_handle,
};

static tr_err
check_args(tr_pid to, uint32_t type, const void *data, size_t len,
	   uint64_t timeout_ms)
{
	if (tr_pid_is_none(to) || type >= TR_MSG_SYSTEM_BASE ||
	    (data == NULL && len > 0) || timeout_ms == 0) {
		return TR_EINVAL;
	}
	return TR_OK;
}

static struct ask_req *
req_make(tr_pid asker, tr_pid to, uint32_t type, const void *data,
	 size_t len, uint64_t timeout_ms)
{
	struct ask_req *req;

	if (len > SIZE_MAX - sizeof(*req)) {
		return NULL;
	}
	req = malloc(sizeof(*req) + len);
	if (req == NULL) {
		return NULL;
	}
	req->asker = asker;
	req->target = to;
	req->id = take_id();
	req->timeout_ms = timeout_ms;
	req->type = type;
	req->len = len;
	if (len > 0) {
		memcpy(req->data, data, len);
	}
	return req;
}

tr_err
tr_ask(tr_ctx *cx, tr_pid to, uint32_t type, const void *data, size_t len,
       uint64_t timeout_ms, uint64_t *id)
{
	struct ask_req *req;
	tr_err err;

	if (cx == NULL) {
		return TR_EINVAL;
	}
	err = check_args(to, type, data, len, timeout_ms);
	if (err < 0) {
		return err;
	}
	req = req_make(tr_self(cx), to, type, data, len, timeout_ms);
	if (req == NULL) {
		return TR_ENOMEM;
	}
	uint64_t rid = req->id;
	/* On success init runs as the proxy's first turn and frees req. */
	err = tr_spawn(cx, &proxy_def, req, NULL);
	if (err < 0) {
		free(req);
		return err;
	}
	if (id != NULL) {
		*id = rid;
	}
	return TR_OK;
}

tr_err
tr_ask_reply(tr_ctx *cx, uint32_t type, const void *data, size_t len)
{
	if (cx == NULL) {
		return TR_EINVAL;
	}
	tr_pid to = tr_sender(cx);
	if (tr_pid_is_none(to)) {
		return TR_EINVAL;
	}
	return tr_send(cx, to, type, data, len);
}

tr_err
tr_ask_result_parse(const void *data, size_t size, tr_ask_result *out)
{
	struct wire w;

	if (out == NULL) {
		return TR_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (data == NULL || size < sizeof(w)) {
		return TR_EINVAL;
	}
	memcpy(&w, data, sizeof(w));
	if (w.size != size - sizeof(w)) {
		return TR_EINVAL;
	}
	out->id = w.id;
	out->status = w.status;
	out->type = w.type;
	out->from = w.from;
	out->size = (size_t)w.size;
	out->data = w.size > 0 ? (const unsigned char *)data + sizeof(w)
			       : NULL;
	return TR_OK;
}

void
tr_ask_result_fini(tr_ask_result *r)
{
	if (r == NULL) {
		return;
	}
	free(r->owned);
	memset(r, 0, sizeof(*r));
}

/* Milliseconds of CLOCK_MONOTONIC, for the sync wait's deadline. */
static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Move a received result into @out, with a private copy of the bytes. */
static tr_err
sync_take(const tr_received *r, uint64_t id, tr_ask_result *out)
{
	tr_ask_result view;

	if (r->type != TR_MSG_ASK_RESULT ||
	    tr_ask_result_parse(r->data, r->size, &view) != TR_OK ||
	    view.id != id) {
		return TR_EINVAL;
	}
	*out = view;
	out->data = NULL;
	if (view.size > 0) {
		out->owned = malloc(view.size);
		if (out->owned == NULL) {
			memset(out, 0, sizeof(*out));
			out->id = id;
			out->status = TR_ENOMEM;
			return TR_OK;
		}
		memcpy(out->owned, view.data, view.size);
		out->data = out->owned;
	}
	return TR_OK;
}

tr_err
tr_ask_sync(tr_runtime *rt, tr_pid to, uint32_t type, const void *data,
	    size_t len, uint64_t timeout_ms, tr_ask_result *out)
{
	tr_inbox *ib;
	struct ask_req *req;
	tr_err err;

	if (out != NULL) {
		memset(out, 0, sizeof(*out));
	}
	if (rt == NULL || out == NULL) {
		return TR_EINVAL;
	}
	err = check_args(to, type, data, len, timeout_ms);
	if (err < 0) {
		return err;
	}
	err = tr_inbox_create(rt, &ib);
	if (err < 0) {
		goto out_status;
	}
	req = req_make(tr_inbox_pid(ib), to, type, data, len, timeout_ms);
	if (req == NULL) {
		err = TR_ENOMEM;
		goto err_inbox;
	}
	uint64_t id = req->id;
	err = tr_runtime_spawn(rt, &proxy_def, req, NULL);
	if (err < 0) {
		free(req);
		goto err_inbox;
	}
	out->id = id;
	/* The proxy decides the outcome; the deadline here only guards
	 * against a runtime too busy to run it at all. */
	uint64_t limit = timeout_ms > UINT64_MAX / 2 ? UINT64_MAX / 2
						     : timeout_ms;
	uint64_t deadline = mono_ms() + limit + SYNC_GRACE_MS;
	for (;;) {
		tr_received r;
		uint64_t now = mono_ms();

		memset(&r, 0, sizeof(r));
		if (now >= deadline) {
			err = TR_ETIMEDOUT;
			break;
		}
		uint64_t left = deadline - now;
		err = tr_inbox_recv(ib, left > INT64_MAX ? -1 : (int64_t)left,
				    &r);
		if (err < 0) {
			break;
		}
		err = sync_take(&r, id, out);
		tr_received_fini(&r);
		if (err == TR_OK) {
			err = out->status;
			break;
		}
		/* Not our result (someone else used the inbox's pid). */
	}
err_inbox:
	/* A proxy still running sees the inbox's DOWN and stops. */
	tr_inbox_destroy(ib);
out_status:
	if (err < 0 && out->status == 0) {
		out->status = err;
	}
	return err;
}
