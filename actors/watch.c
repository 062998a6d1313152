/* A set of watched pids (see watch.h). */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

#include "ref.h"

#define BUCKETS0 16u

static tr_err
send_watcher(struct tr__watch *ws, uint32_t type, tr_pid pid)
{
	return tr_send(tr_runtime_ctx(ws->rt), ws->watcher, type, &pid,
		       sizeof(pid));
}

struct tr__watched *
tr__watch_find(struct tr__watch *ws, tr_pid pid)
{
	struct tr__hnode *n = tr__hash_chain(&ws->tab, tr_pid_hash(pid));

	/* The node is the entry's first member. */
	while (n != NULL && !tr_pid_eq(((struct tr__watched *)n)->pid, pid)) {
		n = n->next;
	}
	return (struct tr__watched *)n;
}

tr_err
tr__watch_get(struct tr__watch *ws, tr_pid pid, struct tr__watched **out)
{
	struct tr__watched *e = tr__watch_find(ws, pid);

	if (e != NULL) {
		*out = e;
		return TR_OK;
	}
	if (ws->watcher_gone) {
		return TR_ECLOSED;
	}
	e = calloc(1, ws->ops->entry_size);
	if (e == NULL) {
		return TR_ENOMEM;
	}
	e->node.hash = tr_pid_hash(pid);
	e->pid = pid;
	/* Announced before it exists: no entry the watcher never hears of. */
	tr_err err = send_watcher(ws, ws->ops->sync_type, pid);
	if (err < 0) {
		free(e);
		return err;
	}
	tr__hash_grow(&ws->tab);
	tr__hash_link(&ws->tab, &e->node);
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
	tr__hash_unlink(&ws->tab, &e->node);
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
	if (tr__ref_put(&ws->refs)) {
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
	struct tr__watched *e = tr__watch_find(ws, pid);

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
			struct tr__watched *e = tr__watch_find(ws, pid);
			if (e != NULL && e->dead) {
				ops->purge(ws, e);
			}
		}
		pthread_mutex_unlock(ws->mu);
	} else if (m->type == TR_MSG_DOWN && m->size == sizeof(tr_down)) {
		tr_down d;
		memcpy(&d, m->data, sizeof(d));
		pthread_mutex_lock(ws->mu);
		struct tr__watched *e = tr__watch_find(ws, d.who);
		if (e != NULL && e->monitored && e->ref.v == d.ref.v) {
			purge(ws, e);
		}
		pthread_mutex_unlock(ws->mu);
	} else {
		(void)tr_unhandled(cx, m); /* not for a table's own actor */
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
	if (tr__hash_init(&ws->tab, BUCKETS0) < 0) {
		return TR_ENOMEM;
	}
	/* One reference for the creator, one for the watcher's teardown. */
	atomic_init(&ws->refs, 2);
	/* The definition is in the module's static ops: it outlives us. */
	tr_err err = tr_spawn(tr_runtime_ctx(rt), &ops->def, ws, &ws->watcher);
	if (err < 0) {
		tr__hash_fini(&ws->tab, NULL);
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
	tr__hash_fini(&ws->tab, ws->ops->free_entry);
}
