/* A set of watched pids (see watch.h). */
#include "watch.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

#define BUCKETS0 16u

/* A SYNC for @pid to the watcher. */
static tr_err
sync_send(struct tr__watch *ws, tr_pid pid)
{
	return tr_send(tr_runtime_ctx(ws->rt), ws->watcher, ws->ops->sync_type,
		       &pid, sizeof(pid));
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

struct tr__watched *
tr__watch_get(struct tr__watch *ws, tr_pid pid, tr_err *err)
{
	if (ws->watcher_gone) {
		*err = TR_ECLOSED;
		return NULL;
	}
	struct tr__watched *e = tr__watch_find(ws, pid);
	*err = TR_OK;
	if (e != NULL) {
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		*err = TR_ENOMEM;
		return NULL;
	}
	e->node.hash = tr_pid_hash(pid);
	e->pid = pid;
	/* Announced before it exists: no entry the watcher never hears of. */
	*err = sync_send(ws, pid);
	if (*err < 0) {
		free(e);
		return NULL;
	}
	tr__hash_grow(&ws->tab);
	tr__hash_link(&ws->tab, &e->node);
	return e;
}

void
tr__watch_hold(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h)
{
	if (e->held == NULL) {
		ws->holding++;
	}
	h->next = e->held;
	h->pprev = &e->held;
	if (e->held != NULL) {
		e->held->pprev = &h->next;
	}
	e->held = h;
}

bool
tr__watch_put(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h)
{
	*h->pprev = h->next;
	if (h->next != NULL) {
		h->next->pprev = h->pprev;
	}
	if (e->held != NULL) {
		return false;
	}
	ws->holding--;
	if (e->ref.v != 0) {
		/* The watcher drops the monitor and the entry. On failure the
		 * monitor stays until the pid stops. */
		(void)sync_send(ws, e->pid);
	}
	return true;
}

/* ---- the watcher actor --------------------------------------------------- */

static void
release(struct tr__watch *ws)
{
	if (tr__ref_put(&ws->refs)) {
		tr__names_fini(&ws->names, ws->ops->free_name);
		tr__hash_fini(&ws->tab, ws->ops->free_entry);
		pthread_mutex_destroy(&ws->mu);
		free(ws);
	}
}

static void
entry_free(struct tr__watch *ws, struct tr__watched *e)
{
	tr__hash_unlink(&ws->tab, &e->node);
	free(e);
}

/* What @e's pid held goes, then the entry. Out of memory, the rest is
 * retried from the watcher's mailbox; if even that send fails, it stays
 * (and publishes to it, say, are dead letters). */
static void
purge(struct tr__watch *ws, struct tr__watched *e)
{
	e->ref = (tr_ref){ 0 }; /* it fired, or there was none */
	while (e->held != NULL) {
		if (ws->ops->drop(ws, e, e->held) < 0) {
			(void)sync_send(ws, e->pid);
			return;
		}
	}
	entry_free(ws, e);
}

static void
on_sync(tr_ctx *cx, struct tr__watch *ws, tr_pid pid)
{
	struct tr__watched *e = tr__watch_find(ws, pid);

	if (e == NULL) {
		return;
	}
	if (e->held == NULL) {
		/* A demonitor of none (zero) is harmless. */
		(void)tr_demonitor(cx, e->ref);
		entry_free(ws, e);
	} else if (e->ref.v == 0 && tr_monitor(cx, pid, &e->ref) != TR_OK) {
		/* Out of memory: what we cannot watch could outlive its
		 * holder forever, so it goes now. */
		purge(ws, e);
	}
}

static int
watcher_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	*(struct tr__watch **)state = arg;
	return TR_OK;
}

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct tr__watch *ws = *(struct tr__watch **)state;
	const tr_pid *pid = TR_MSG_AS(m, tr_pid);
	const tr_down *d = TR_MSG_AS(m, tr_down);

	if (m->type == ws->ops->sync_type && pid != NULL) {
		pthread_mutex_lock(&ws->mu);
		on_sync(cx, ws, *pid);
		pthread_mutex_unlock(&ws->mu);
	} else if (m->type == TR_MSG_DOWN && d != NULL) {
		pthread_mutex_lock(&ws->mu);
		struct tr__watched *e = tr__watch_find(ws, d->who);
		if (e != NULL && e->ref.v == d->ref.v) {
			purge(ws, e);
		}
		pthread_mutex_unlock(&ws->mu);
	} else {
		(void)tr_unhandled(cx, m); /* not for a table's own actor */
	}
}

static void
watcher_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct tr__watch *ws = *(struct tr__watch **)state;

	(void)cx;
	(void)reason;
	if (ws == NULL) {
		return; /* init never ran: the spawn reference was not taken */
	}
	pthread_mutex_lock(&ws->mu);
	ws->watcher_gone = true;
	pthread_mutex_unlock(&ws->mu);
	release(ws);
}

/* One definition for every module's watcher: it outlives them all. */
static const tr_actor_def watcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "watch",
	.state_size = sizeof(struct tr__watch *),
	.init = watcher_init,
	.teardown = watcher_teardown,
	.handle = watcher_handle,
};

/* ---- new and destroy ----------------------------------------------------- */

void *
tr__watch_new(tr_runtime *rt, const struct tr__watch_ops *ops, tr_err *err)
{
	/* The size rounded up to the alignment, as C11 requires. */
	size_t align = alignof(struct tr__watch);
	struct tr__watch *ws =
		aligned_alloc(align, (ops->size + align - 1) / align * align);

	if (ws == NULL) {
		*err = TR_ENOMEM;
		return NULL;
	}
	memset(ws, 0, ops->size);
	ws->rt = rt;
	ws->ops = ops;
	*err = tr__names_init(&ws->names, ops->name_max);
	if (*err < 0) {
		goto err_free;
	}
	*err = tr__hash_init(&ws->tab, BUCKETS0);
	if (*err < 0) {
		goto err_names;
	}
	if (pthread_mutex_init(&ws->mu, NULL) != 0) {
		*err = TR_ESYS;
		goto err_tab;
	}
	/* One reference for the owner, one for the watcher's teardown. */
	atomic_init(&ws->refs, 2);
	*err = tr_spawn(tr_runtime_ctx(rt), &watcher_def, ws, &ws->watcher);
	if (*err == TR_OK) {
		return ws;
	}
	pthread_mutex_destroy(&ws->mu);
err_tab:
	tr__hash_fini(&ws->tab, NULL);
err_names:
	tr__names_fini(&ws->names, NULL);
err_free:
	free(ws);
	return NULL;
}

void
tr__watch_destroy(struct tr__watch *ws)
{
	if (ws == NULL) {
		return;
	}
	/* After a join the watcher is gone: this is a counted dead letter. */
	(void)tr_stop(tr_runtime_ctx(ws->rt), ws->watcher, TR_EXIT_SHUTDOWN);
	release(ws);
}
