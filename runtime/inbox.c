/*
 * Inboxes: an actor whose handler queues each message for a thread that
 * is not an actor, which takes them with tr_inbox_recv().
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

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/internal.h"
#include "runtime/msg.h"
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
	pthread_mutex_destroy(&ib->mu);
	pthread_cond_destroy(&ib->cv);
	tr__free(ib, sizeof(*ib));
}

static void
free_copy(void *p)
{
	free(p);
}

static void
inbox_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct tr_inbox *ib = ((struct inbox_state *)state)->ib;
	struct item *it = tr__alloc(sizeof(*it));

	if (it == NULL) {
		return; /* handled and lost: counted as handled, nothing leaks */
	}
	memset(it, 0, sizeof(*it));
	it->r.type = m->type;
	it->r.flags = m->flags;
	it->r.from = m->from;
	it->r.size = m->size;
	if (m->flags & TR_MSG_F_PTR) {
		/* A pointer message from the runtime's own nodes: keep its
		 * free function with it. */
		const struct tr__msg *node =
			tr__container_of(m, const struct tr__msg, m);
		it->r.free_fn = node->free_fn;
		it->r.data = tr_msg_take_ptr(cx, m);
	} else if (m->size > 0) {
		it->r.data = malloc(m->size);
		if (it->r.data == NULL) {
			tr__free(it, sizeof(*it));
			return;
		}
		memcpy(it->r.data, m->data, m->size);
		it->r.free_fn = free_copy;
	}
	pthread_mutex_lock(&ib->mu);
	if (ib->tail != NULL) {
		ib->tail->next = it;
	} else {
		ib->head = it;
	}
	ib->tail = it;
	pthread_cond_signal(&ib->cv);
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
				     .state_init_len = sizeof(st) };
	tr_err err = tr__spawn(rt, tr__sched_current(rt), &inbox_def, NULL, &so,
			       &ib->pid);
	if (err < 0) {
		pthread_mutex_destroy(&ib->mu);
		pthread_cond_destroy(&ib->cv);
		tr__free(ib, sizeof(*ib));
		return err;
	}
	*out = ib;
	return TR_OK;
}

tr_pid
tr_inbox_pid(const tr_inbox *ib)
{
	return ib != NULL ? ib->pid : TR_PID_NONE;
}

tr_err
tr_inbox_recv(tr_inbox *ib, int64_t timeout_ms, tr_received *out)
{
	if (ib == NULL || out == NULL) {
		return TR_EINVAL;
	}
	if (timeout_ms != 0 && tr__sched_current(ib->rt) != NULL) {
		tr__misuse("tr_inbox_recv() waiting in a handler: it blocks a "
			   "worker, which the reply may need");
		return TR_EINVAL;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&ib->mu);
	while (ib->head == NULL) {
		if (ib->closed) {
			pthread_mutex_unlock(&ib->mu);
			return TR_ECLOSED;
		}
		if (timeout_ms == 0) {
			pthread_mutex_unlock(&ib->mu);
			return TR_ETIMEDOUT;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&ib->cv, &ib->mu);
		} else if (pthread_cond_timedwait(&ib->cv, &ib->mu,
						  &deadline) != 0 &&
			   ib->head == NULL) {
			pthread_mutex_unlock(&ib->mu);
			return TR_ETIMEDOUT;
		}
	}
	struct item *it = ib->head;
	ib->head = it->next;
	if (ib->head == NULL) {
		ib->tail = NULL;
	}
	pthread_mutex_unlock(&ib->mu);
	*out = it->r;
	tr__free(it, sizeof(*it));
	return TR_OK;
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
		(void)tr_runtime_stop_actor(ib->rt, ib->pid, TR_EXIT_NORMAL);
	}
	inbox_unref_locked(ib);
}
