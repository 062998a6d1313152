/*
 * Inboxes: an actor whose handler queues each message for a thread that
 * is not an actor, which takes them with tr_inbox_recv() or, for the
 * outcome of one request, tr_inbox_recv() with the reference. The inbox also
 * gives that thread a context (tr_inbox_ctx) for the calls an actor makes:
 * sends, spawns, requests and replies, sent as the inbox's actor.
 *
 * Requests made through the context are kept in the inbox's table under
 * its mutex (runtime/inbox.h). Their deadlines are checked by the
 * receiving thread, which is the only one that can observe them: a
 * receive expires what is due before it looks, and waits no longer than
 * the next deadline.
 *
 * Threads: the handler runs on workers; recv and destroy on any thread.
 * The queue is guarded by the inbox's mutex (the reader must block, so a
 * condition variable is needed anyway). The inbox memory is shared by the
 * actor and the user and freed by whichever lets go last (`refs`).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <troupe/runtime.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/inbox.h"
#include "runtime/internal.h"
#include "runtime/msg.h"
#include "runtime/request.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"

struct item {
	struct item *next;
	tr_received r;
};

struct tr_inbox {
	tr_runtime *rt;
	tr_pid pid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct item *head;
	struct item *tail;
	bool closed; /* the actor stopped */
	int refs;
	struct tr__reqtab reqs; /* requests made through cx, under mu */
	tr_ctx cx;              /* the owning thread's context */
};

struct inbox_state {
	struct tr_inbox *ib;
};

static void
inbox_unref_locked(struct tr_inbox *ib)
{
	if (--ib->refs > 0) {
		pthread_mutex_unlock(&ib->mu);
		return;
	}
	pthread_mutex_unlock(&ib->mu);
	while (ib->head != NULL) {
		struct item *it = ib->head;
		ib->head = it->next;
		tr_received_fini(&it->r);
		tr__free(it, sizeof(*it));
	}
	tr__reqtab_fini(&ib->reqs);
	pthread_mutex_destroy(&ib->mu);
	pthread_cond_destroy(&ib->cv);
	tr__free(ib, sizeof(*ib));
}

static void
enqueue_locked(struct tr_inbox *ib, struct item *it)
{
	if (ib->tail != NULL) {
		ib->tail->next = it;
	} else {
		ib->head = it;
	}
	ib->tail = it;
	/* Broadcast: a thread may wait for one reference while another
	 * item arrives (only one thread may use an inbox at a time, but a
	 * signal could wake a waiter the item is not for). */
	pthread_cond_broadcast(&ib->cv);
}

static void
free_copy(void *p)
{
	free(p);
}

/* A queue item with @m's header; the caller attaches the payload. */
static struct item *
item_new(const tr_msg *m)
{
	struct item *it = tr__alloc(sizeof(*it));

	if (it != NULL) {
		memset(it, 0, sizeof(*it));
		it->r.type = m->type;
		it->r.flags = m->flags;
		it->r.from = m->from;
		it->r.ref = m->ref;
		it->r.size = m->size;
	}
	return it;
}

/* item_new() with a private copy of @m's bytes; NULL without memory. */
static struct item *
item_copy(const tr_msg *m)
{
	struct item *it = item_new(m);

	if (it == NULL || m->size == 0) {
		return it;
	}
	it->r.data = malloc(m->size);
	if (it->r.data == NULL) {
		tr__free(it, sizeof(*it));
		return NULL;
	}
	memcpy(it->r.data, m->data, m->size);
	it->r.free_fn = free_copy;
	return it;
}

static void
inbox_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct tr_inbox *ib = ((struct inbox_state *)state)->ib;
	struct item *it;

	if (m->flags & TR_MSG_F_PTR) {
		/* A pointer message from the runtime's own nodes: keep its
		 * free function with it. */
		const struct tr__msg *node =
			tr__container_of(m, const struct tr__msg, m);
		it = item_new(m);
		if (it != NULL) {
			it->r.free_fn = node->free_fn;
			it->r.data = tr_msg_take_ptr(cx, m);
		}
	} else {
		it = item_copy(m);
	}
	if (it == NULL) {
		/* Handled and lost: counted as handled, nothing leaks. */
		return;
	}
	pthread_mutex_lock(&ib->mu);
	enqueue_locked(ib, it);
	pthread_mutex_unlock(&ib->mu);
}

static void
inbox_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct tr_inbox *ib = ((struct inbox_state *)state)->ib;

	(void)cx;
	(void)reason;
	pthread_mutex_lock(&ib->mu);
	ib->closed = true;
	pthread_cond_broadcast(&ib->cv);
	inbox_unref_locked(ib);
}

static const tr_actor_def inbox_def = {
	.size = sizeof(tr_actor_def),
	.name = "inbox",
	.state_size = sizeof(struct inbox_state),
	.teardown = inbox_teardown,
	.handle = inbox_handle,
};

tr_err
tr_inbox_create(tr_runtime *rt, tr_inbox **out)
{
	if (rt == NULL || out == NULL) {
		return TR_EINVAL;
	}
	struct tr_inbox *ib = tr__calloc(sizeof(*ib));
	if (ib == NULL) {
		return TR_ENOMEM;
	}
	ib->rt = rt;
	ib->refs = 2; /* the user and the actor */
	pthread_mutex_init(&ib->mu, NULL);
	/* Deadlines on the monotonic clock: a wall-clock jump must not
	 * stretch or cut a receive timeout. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ib->cv, &ca);
	pthread_condattr_destroy(&ca);
	struct inbox_state st = { .ib = ib };
	struct tr__spawn_opts so = { .state_init = &st,
				     .state_init_len = sizeof(st),
				     .flags = TR__SPAWN_INBOX };
	tr_err err = tr__spawn(rt, tr__sched_current(rt), &inbox_def, NULL, &so,
			       &ib->pid);
	if (err < 0) {
		pthread_mutex_destroy(&ib->mu);
		pthread_cond_destroy(&ib->cv);
		tr__free(ib, sizeof(*ib));
		return err;
	}
	ib->cx.rt = rt;
	ib->cx.self = ib->pid.v;
	ib->cx.inbox = ib;
	*out = ib;
	return TR_OK;
}

tr_ctx *
tr_inbox_ctx(tr_inbox *ib)
{
	return ib != NULL ? &ib->cx : NULL;
}

int
tr__inbox_req_add(struct tr_inbox *ib, uint64_t ref, uint64_t to,
		  uint64_t deadline)
{
	pthread_mutex_lock(&ib->mu);
	int err = tr__reqtab_add(&ib->reqs, ref, to, deadline);
	pthread_mutex_unlock(&ib->mu);
	return err;
}

void
tr__inbox_req_drop(struct tr_inbox *ib, uint64_t ref)
{
	pthread_mutex_lock(&ib->mu);
	(void)tr__reqtab_take(&ib->reqs, ref, NULL);
	pthread_mutex_unlock(&ib->mu);
}

bool
tr__inbox_req_take(void *actor_state, uint64_t ref)
{
	struct tr_inbox *ib = ((struct inbox_state *)actor_state)->ib;

	pthread_mutex_lock(&ib->mu);
	bool open = tr__reqtab_take(&ib->reqs, ref, NULL);
	pthread_mutex_unlock(&ib->mu);
	return open;
}

/*
 * Fail every request whose deadline passed (under mu): its outcome joins
 * the queue, and its target forgets the watch. Returns the next deadline,
 * in clock ns, 0 if none. An item that cannot be allocated leaves its
 * request open, to be expired by the next receive.
 */
static uint64_t
expire_locked(struct tr_inbox *ib)
{
	uint64_t now = tr__clock_ns();

	for (;;) {
		uint64_t next = tr__reqtab_next(&ib->reqs);
		struct tr__req r;
		if (next == 0 || next > now ||
		    !tr__reqtab_due(&ib->reqs, now, &r)) {
			return next;
		}
		tr_request_failed f;
		tr_msg m;
		tr__req_failed_msg(&m, &f, r.ref, r.to, TR_EXIT_TIMEOUT);
		struct item *it = item_copy(&m);
		if (it == NULL) {
			/* Open again (no growth: it was just in the table),
			 * for the next receive to expire. */
			(void)tr__reqtab_add(&ib->reqs, r.ref, r.to,
					     r.deadline);
			return next;
		}
		tr__req_unwatch_target(ib->rt, NULL, ib->pid.v, r.to, r.ref);
		enqueue_locked(ib, it);
	}
}

static struct timespec
ts_of_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };
	return ts;
}

/* Unlink and return the first item (@ref 0) or the first outcome of the
 * request @ref, or NULL (under mu). */
static struct item *
take_locked(struct tr_inbox *ib, uint64_t ref)
{
	struct item *prev = NULL;

	for (struct item *it = ib->head; it != NULL; prev = it, it = it->next) {
		if (ref != 0 &&
		    (it->r.ref.v != ref || !(it->r.flags & TR_MSG_F_REPLY))) {
			continue;
		}
		if (prev != NULL) {
			prev->next = it->next;
		} else {
			ib->head = it->next;
		}
		if (ib->tail == it) {
			ib->tail = prev;
		}
		return it;
	}
	return NULL;
}

static tr_err
recv(tr_inbox *ib, uint64_t ref, int64_t timeout_ms, tr_received *out)
{
	if (ib == NULL || out == NULL) {
		return TR_EINVAL;
	}
	if (timeout_ms != 0 && tr__sched_current(ib->rt) != NULL) {
		tr__misuse("tr_inbox_recv() waiting in a handler: it blocks a "
			   "worker, which the reply may need");
		return TR_EINVAL;
	}
	/* Deadlines on the monotonic clock (the condition variable's): a
	 * wall-clock jump must not stretch or cut a receive timeout. */
	uint64_t until =
		timeout_ms > 0
			? tr__clock_ns() + (uint64_t)timeout_ms * 1000000u
			: 0;
	struct item *it;

	pthread_mutex_lock(&ib->mu);
	for (;;) {
		uint64_t next = expire_locked(ib);
		it = take_locked(ib, ref);
		if (it != NULL) {
			break;
		}
		if (ib->closed) {
			pthread_mutex_unlock(&ib->mu);
			return TR_ECLOSED;
		}
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 && tr__clock_ns() >= until)) {
			pthread_mutex_unlock(&ib->mu);
			return TR_ETIMEDOUT;
		}
		/* Wake for an item, the caller's deadline or a request's. */
		uint64_t wake = timeout_ms > 0 ? until : 0;
		if (next != 0 && (wake == 0 || next < wake)) {
			wake = next;
		}
		if (wake == 0) {
			pthread_cond_wait(&ib->cv, &ib->mu);
		} else {
			struct timespec ts = ts_of_ns(wake);
			(void)pthread_cond_timedwait(&ib->cv, &ib->mu, &ts);
		}
	}
	pthread_mutex_unlock(&ib->mu);
	*out = it->r;
	tr__free(it, sizeof(*it));
	return TR_OK;
}

tr_err
tr_inbox_recv(tr_inbox *ib, const tr_ref *ref, int64_t timeout_ms,
	      tr_received *out)
{
	if (ref != NULL && ref->v == 0) {
		return TR_EINVAL;
	}
	return recv(ib, ref != NULL ? ref->v : 0, timeout_ms, out);
}

void
tr_received_fini(tr_received *r)
{
	if (r == NULL) {
		return;
	}
	if (r->data != NULL && r->free_fn != NULL) {
		r->free_fn(r->data);
	}
	r->data = NULL;
	r->free_fn = NULL;
}

void
tr_inbox_destroy(tr_inbox *ib)
{
	if (ib == NULL) {
		return;
	}
	pthread_mutex_lock(&ib->mu);
	if (!ib->closed) {
		/* The actor is alive, so the runtime is too. */
		(void)tr_stop(tr_runtime_ctx(ib->rt), ib->pid, TR_EXIT_NORMAL);
	}
	inbox_unref_locked(ib);
}
