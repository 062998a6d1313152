/* A set of watched pids (see watch.h). */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

#include "names.h"

#define BUCKETS0 16u

static struct tr__watched **
slot(struct tr__watch *ws, tr_pid pid)
{
	struct tr__watched **pp =
		&ws->buckets[tr_pid_hash(pid) & (ws->nbuckets - 1)];

	while (*pp != NULL && !tr_pid_eq((*pp)->pid, pid)) {
		pp = &(*pp)->next;
	}
	return pp;
}

/* Double the buckets when full; without memory the chains just grow. */
static void
maybe_grow(struct tr__watch *ws)
{
	if (ws->count + 1 <= ws->nbuckets) {
		return;
	}
	size_t nb = ws->nbuckets * 2;
	struct tr__watched **fresh = calloc(nb, sizeof(*fresh));
	if (fresh == NULL) {
		return;
	}
	for (size_t i = 0; i < ws->nbuckets; i++) {
		struct tr__watched *e = ws->buckets[i];
		while (e != NULL) {
			struct tr__watched *next = e->next;
			size_t b = tr_pid_hash(e->pid) & (nb - 1);
			e->next = fresh[b];
			fresh[b] = e;
			e = next;
		}
	}
	free(ws->buckets);
	ws->buckets = fresh;
	ws->nbuckets = nb;
}

static tr_err
send_watcher(struct tr__watch *ws, uint32_t type, tr_pid pid)
{
	return tr_send(tr_runtime_ctx(ws->rt), ws->watcher, type, &pid,
		       sizeof(pid));
}

struct tr__watched *
tr__watch_find(struct tr__watch *ws, tr_pid pid)
{
	return *slot(ws, pid);
}

tr_err
tr__watch_get(struct tr__watch *ws, tr_pid pid, struct tr__watched **out)
{
	struct tr__watched **pp = slot(ws, pid);

	if (*pp != NULL) {
		*out = *pp;
		return TR_OK;
	}
	if (ws->watcher_gone) {
		return TR_ECLOSED;
	}
	struct tr__watched *e = calloc(1, ws->ops->entry_size);
	if (e == NULL) {
		return TR_ENOMEM;
	}
	e->pid = pid;
	/* Announced before it exists: no entry the watcher never hears of. */
	tr_err err = send_watcher(ws, ws->ops->sync_type, pid);
	if (err < 0) {
		free(e);
		return err;
	}
	maybe_grow(ws);
	pp = slot(ws, pid);
	*pp = e;
	ws->count++;
	*out = e;
	return TR_OK;
}

void
tr__watch_idle(struct tr__watch *ws, struct tr__watched *e)
{
	if (e->monitored) {
		/* The watcher drops the monitor and the entry. On failure the
		 * monitor stays until the pid stops. */
		(void)send_watcher(ws, ws->ops->sync_type, e->pid);
	}
}

void
tr__watch_free(struct tr__watch *ws, struct tr__watched *e)
{
	struct tr__watched **pp = slot(ws, e->pid);

	*pp = e->next;
	ws->count--;
	free(e);
}

void
tr__watch_retry(struct tr__watch *ws, struct tr__watched *e)
{
	/* If even this fails the entry stays, and what it holds with it. */
	(void)send_watcher(ws, ws->ops->retry_type, e->pid);
}

/* ---- the watcher actor --------------------------------------------------- */

static void
release(struct tr__watch *ws)
{
	/*
	 * acq_rel: the release publishes this side's last writes, the
	 * acquire of the final decrement (pairing with the other side's
	 * release) makes them visible to the one that frees.
	 */
	if (atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) ==
	    1) {
		ws->ops->free_owner(ws);
	}
}

static void
purge(struct tr__watch *ws, struct tr__watched *e)
{
	e->dead = true;
	e->monitored = false;
	ws->ops->purge(ws, e);
}

static void
on_sync(tr_ctx *cx, struct tr__watch *ws, tr_pid pid)
{
	struct tr__watched *e = *slot(ws, pid);

	if (e == NULL || e->dead) {
		return;
	}
	if (e->uses == 0) {
		if (e->monitored) {
			(void)tr_demonitor(cx, e->ref);
		}
		tr__watch_free(ws, e);
		return;
	}
	if (e->monitored) {
		return;
	}
	if (tr_monitor(cx, pid, &e->ref) == TR_OK) {
		e->monitored = true;
	} else {
		/* Out of memory: what we cannot watch could outlive its
		 * holder forever, so it goes now. */
		purge(ws, e);
	}
}

int
tr__watch_actor_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	*(struct tr__watch **)state = arg;
	return TR_OK;
}

void
tr__watch_actor_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct tr__watch *ws = *(struct tr__watch **)state;
	const struct tr__watch_ops *ops = ws->ops;

	if ((m->type == ops->sync_type ||
	     (ops->retry_type != 0 && m->type == ops->retry_type)) &&
	    m->size == sizeof(tr_pid)) {
		tr_pid pid;
		memcpy(&pid, m->data, sizeof(pid));
		pthread_mutex_lock(ws->mu);
		if (m->type == ops->sync_type) {
			on_sync(cx, ws, pid);
		} else {
			struct tr__watched *e = *slot(ws, pid);
			if (e != NULL && e->dead) {
				ops->purge(ws, e);
			}
		}
		pthread_mutex_unlock(ws->mu);
	} else if (m->type == TR_MSG_DOWN && m->size == sizeof(tr_down)) {
		tr_down d;
		memcpy(&d, m->data, sizeof(d));
		pthread_mutex_lock(ws->mu);
		struct tr__watched *e = *slot(ws, d.who);
		if (e != NULL && e->monitored && e->ref.v == d.ref.v) {
			purge(ws, e);
		}
		pthread_mutex_unlock(ws->mu);
	}
}

void
tr__watch_actor_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct tr__watch *ws = *(struct tr__watch **)state;

	(void)cx;
	(void)reason;
	if (ws == NULL) {
		return; /* init never ran: the spawn reference was not taken */
	}
	pthread_mutex_lock(ws->mu);
	ws->watcher_gone = true;
	pthread_mutex_unlock(ws->mu);
	release(ws);
}

/* ---- init and destroy ---------------------------------------------------- */

tr_err
tr__watch_init(struct tr__watch *ws, tr_runtime *rt, pthread_mutex_t *mu,
	       const struct tr__watch_ops *ops)
{
	ws->mu = mu;
	ws->rt = rt;
	ws->ops = ops;
	ws->watcher_gone = false;
	ws->count = 0;
	ws->buckets = calloc(BUCKETS0, sizeof(*ws->buckets));
	if (ws->buckets == NULL) {
		return TR_ENOMEM;
	}
	ws->nbuckets = BUCKETS0;
	/* One reference for the creator, one for the watcher's teardown. */
	atomic_init(&ws->refs, 2);
	/* The definition is in the module's static ops: it outlives us. */
	tr_err err = tr_spawn(tr_runtime_ctx(rt), &ops->def, ws, &ws->watcher);
	if (err < 0) {
		free(ws->buckets);
		ws->buckets = NULL;
	}
	return err;
}

void
tr__watch_destroy(struct tr__watch *ws)
{
	/* After a join the watcher is gone: this is a counted dead letter. */
	(void)tr_stop(tr_runtime_ctx(ws->rt), ws->watcher, TR_EXIT_SHUTDOWN);
	release(ws);
}

void
tr__watch_fini(struct tr__watch *ws)
{
	for (size_t b = 0; b < ws->nbuckets; b++) {
		struct tr__watched *e = ws->buckets[b];
		while (e != NULL) {
			struct tr__watched *next = e->next;
			ws->ops->free_entry(e);
			e = next;
		}
	}
	free(ws->buckets);
	ws->buckets = NULL;
}
