/*
 * Registry: names for pids, removed when their holder stops.
 *
 * Threads. Every entry point runs on any thread, handlers included. The
 * registry's own actor (the watcher) runs on a worker like any actor; it
 * monitors the pids that hold names and handles their TR_MSG_DOWN.
 *
 * Locks.
 *   wmu          serialises every writer: register, unregister, replace,
 *                and the watcher's SYNC and DOWN handling. It guards the
 *                holder table, the counters and watcher_gone, and since
 *                every change to a shard is made under it, a writer reads
 *                the shards without their locks.
 *   shard->lock  a rwlock per name shard. Lookups take it shared; a
 *                writer takes it exclusive while holding wmu (order: wmu,
 *                then one shard lock, never two shard locks).
 *
 * Invariants (under wmu).
 *   - Every name is in exactly one shard chain and on the name list of
 *     the holder of its pid; a holder's list holds exactly its names.
 *   - A holder with names is monitored by the watcher, or a SYNC for its
 *     pid is queued to the watcher (sent when the holder was created).
 *   - A holder without names is kept only while a SYNC for its pid is
 *     queued (or, if that send failed for lack of memory, until its DOWN);
 *     the watcher frees it.
 *   Together: a holder that stops loses its names when the watcher
 *   handles its DOWN, and the watcher never monitors a pid for long after
 *   its last name went.
 *
 * Lifetime. The registry is reference counted: one reference belongs to
 * the owner (dropped by tr_registry_destroy()), one to the watcher
 * (dropped by its teardown), so a handler still running in the watcher
 * never sees freed memory.
 */
#include <troupe/actors/registry.h>

#include "names.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * 16 shards: enough that lookups from a few dozen threads rarely meet on
 * one lock, few enough that a registry of a handful of names stays small.
 */
#define NSHARDS 16u
#define SHARD_BITS 4u
#define SHARD_BUCKETS0 8u
#define HOLDER_BUCKETS0 16u

/* alignas on the struct members below puts each shard on its own lines. */
#define CACHE_LINE 64u

struct holder;

struct rname {
	struct tra_name key; /* first: the name table's entry */
	struct rname *hprev; /* holder's name list */
	struct rname *hnext;
	struct holder *holder;
	tr_pid pid; /* == holder->pid; what a lookup reads */
	char name[]; /* len bytes and a NUL */
};

struct holder {
	struct holder *next; /* holder table chain */
	tr_pid pid;
	uint64_t ref; /* the watcher's monitor, when monitored */
	bool monitored;
	size_t nnames;
	struct rname *names;
};

struct tr_registry {
	struct tra_shard shards[NSHARDS];
	alignas(CACHE_LINE) pthread_mutex_t wmu;
	tr_runtime *rt;
	tr_pid watcher;
	atomic_uint refs;
	bool watcher_gone;
	struct holder **holders;
	size_t nholder_buckets;
	size_t nholders; /* table entries, those without names included */
	tr_registry_stats st;
};

struct watcher {
	tr_registry *reg;
};

static tr_err
check_name(const char *name, size_t *len)
{
	if (name == NULL) {
		return TR_EINVAL;
	}
	*len = strnlen(name, TR_REGISTRY_NAME_MAX + 1);
	if (*len == 0 || *len > TR_REGISTRY_NAME_MAX) {
		return TR_EINVAL;
	}
	return TR_OK;
}

static bool
pid_ok(tr_pid pid)
{
	return !tr_pid_is_none(pid) && tr_pid_node(pid) == 0;
}

static struct tra_shard *
shard_of(tr_registry *reg, uint64_t hash)
{
	return &reg->shards[hash >> (64u - SHARD_BITS)];
}

/* ---- name shards (actors/names.c) -------------------------------------- */

static struct rname *
rname_find(const struct tra_shard *sh, uint64_t hash, const char *name,
	   size_t len)
{
	/* The key is the first member. */
	return (struct rname *)tra_shard_find(sh, hash, name, len);
}

static void
free_rname(struct tra_name *e)
{
	free(e);
}

/* ---- holders (all under wmu) --------------------------------------------- */

static struct holder **
holder_slot(tr_registry *reg, tr_pid pid)
{
	struct holder **pp =
		&reg->holders[tra_mix64(pid.v) & (reg->nholder_buckets - 1)];

	while (*pp != NULL && !tr_pid_eq((*pp)->pid, pid)) {
		pp = &(*pp)->next;
	}
	return pp;
}

static void
holders_maybe_grow(tr_registry *reg)
{
	if (reg->nholders + 1 <= reg->nholder_buckets) {
		return;
	}
	size_t nb = reg->nholder_buckets * 2;
	struct holder **fresh = calloc(nb, sizeof(*fresh));
	if (fresh == NULL) {
		return;
	}
	for (size_t i = 0; i < reg->nholder_buckets; i++) {
		struct holder *h = reg->holders[i];
		while (h != NULL) {
			struct holder *next = h->next;
			size_t b = tra_mix64(h->pid.v) & (nb - 1);
			h->next = fresh[b];
			fresh[b] = h;
			h = next;
		}
	}
	free(reg->holders);
	reg->holders = fresh;
	reg->nholder_buckets = nb;
}

static tr_err
send_sync(tr_registry *reg, tr_pid pid)
{
	return tr_runtime_send(reg->rt, reg->watcher, TR_MSG_REGISTRY_SYNC,
			       &pid, sizeof(pid));
}

/*
 * The holder of @pid, created if needed. A new holder is announced to the
 * watcher with a SYNC; if that send fails the holder is dropped again, so
 * that no name can exist that the watcher will never hear of.
 */
static tr_err
holder_get(tr_registry *reg, tr_pid pid, struct holder **out)
{
	struct holder **pp = holder_slot(reg, pid);

	if (*pp != NULL) {
		*out = *pp;
		return TR_OK;
	}
	struct holder *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		return TR_ENOMEM;
	}
	h->pid = pid;
	tr_err err = send_sync(reg, pid);
	if (err < 0) {
		free(h);
		return err;
	}
	holders_maybe_grow(reg);
	pp = holder_slot(reg, pid);
	*pp = h;
	reg->nholders++;
	*out = h;
	return TR_OK;
}

static void
holder_free(tr_registry *reg, struct holder *h)
{
	struct holder **pp = holder_slot(reg, h->pid);

	*pp = h->next;
	reg->nholders--;
	free(h);
}

static void
holder_link(tr_registry *reg, struct holder *h, struct rname *n)
{
	n->holder = h;
	n->hprev = NULL;
	n->hnext = h->names;
	if (h->names != NULL) {
		h->names->hprev = n;
	}
	h->names = n;
	if (h->nnames++ == 0) {
		reg->st.holders++;
	}
}

/*
 * Take @n off its holder's list. A monitored holder left without names
 * gets a SYNC so that the watcher drops the monitor; an unmonitored one
 * already has its creation SYNC queued.
 */
static void
holder_unlink(tr_registry *reg, struct rname *n)
{
	struct holder *h = n->holder;

	if (n->hprev != NULL) {
		n->hprev->hnext = n->hnext;
	} else {
		h->names = n->hnext;
	}
	if (n->hnext != NULL) {
		n->hnext->hprev = n->hprev;
	}
	n->holder = NULL;
	if (--h->nnames == 0) {
		reg->st.holders--;
		if (h->monitored) {
			/* On failure the monitor stays until the pid stops. */
			(void)send_sync(reg, h->pid);
		}
	}
}

/* @h stopped (or cannot be watched): remove all its names and free it. */
static void
holder_purge(tr_registry *reg, struct holder *h)
{
	while (h->names != NULL) {
		struct rname *n = h->names;
		h->names = n->hnext;
		tra_shard_remove(shard_of(reg, n->key.hash), &n->key);
		free(n);
		reg->st.removed++;
		reg->st.names--;
	}
	if (h->nnames > 0) {
		reg->st.holders--;
	}
	holder_free(reg, h);
}

/* ---- the watcher actor --------------------------------------------------- */

static int
watcher_init(tr_ctx *cx, void *state, void *arg)
{
	struct watcher *w = state;

	(void)cx;
	w->reg = arg;
	return TR_OK;
}

static void
registry_release(tr_registry *reg);

static void
watcher_sync(tr_ctx *cx, tr_registry *reg, tr_pid pid)
{
	struct holder *h = *holder_slot(reg, pid);

	if (h == NULL) {
		return;
	}
	if (h->nnames == 0) {
		if (h->monitored) {
			(void)tr_demonitor(cx, h->ref);
		}
		holder_free(reg, h);
		return;
	}
	if (h->monitored) {
		return;
	}
	if (tr_monitor(cx, pid, &h->ref) == TR_OK) {
		h->monitored = true;
	} else {
		/*
		 * Out of memory: a name we cannot watch could name a
		 * stopped actor forever, so it goes now, as if its holder
		 * had stopped.
		 */
		holder_purge(reg, h);
	}
}

static void
watcher_down(tr_registry *reg, const tr_down *d)
{
	struct holder *h = *holder_slot(reg, d->who);

	if (h != NULL && h->monitored && h->ref == d->ref) {
		holder_purge(reg, h);
	}
}

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_registry *reg = ((struct watcher *)state)->reg;

	if (m->type == TR_MSG_REGISTRY_SYNC && m->size == sizeof(tr_pid)) {
		tr_pid pid;
		memcpy(&pid, m->data, sizeof(pid));
		pthread_mutex_lock(&reg->wmu);
		watcher_sync(cx, reg, pid);
		pthread_mutex_unlock(&reg->wmu);
	} else if (m->type == TR_MSG_DOWN && m->size == sizeof(tr_down)) {
		tr_down d;
		memcpy(&d, m->data, sizeof(d));
		pthread_mutex_lock(&reg->wmu);
		watcher_down(reg, &d);
		pthread_mutex_unlock(&reg->wmu);
	}
}

static void
watcher_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	tr_registry *reg = ((struct watcher *)state)->reg;

	(void)cx;
	(void)reason;
	if (reg == NULL) {
		return; /* init never ran: the spawn reference was not taken */
	}
	pthread_mutex_lock(&reg->wmu);
	reg->watcher_gone = true;
	pthread_mutex_unlock(&reg->wmu);
	registry_release(reg);
}

static const tr_actor_def watcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "registry",
	.state_size = sizeof(struct watcher),
	.init = watcher_init,
	.teardown = watcher_teardown,
	.handle = watcher_handle,
};

/* ---- create and destroy -------------------------------------------------- */

static void
registry_free(tr_registry *reg)
{
	for (unsigned i = 0; i < NSHARDS; i++) {
		tra_shard_fini(&reg->shards[i], free_rname);
	}
	for (size_t b = 0; b < reg->nholder_buckets; b++) {
		struct holder *h = reg->holders[b];
		while (h != NULL) {
			struct holder *next = h->next;
			free(h);
			h = next;
		}
	}
	free(reg->holders);
	pthread_mutex_destroy(&reg->wmu);
	free(reg);
}

static void
registry_release(tr_registry *reg)
{
	/*
	 * acq_rel: the release publishes this side's last writes, the
	 * acquire of the final decrement (pairing with the other side's
	 * release) makes them visible to the one that frees.
	 */
	if (atomic_fetch_sub_explicit(&reg->refs, 1, memory_order_acq_rel) ==
	    1) {
		registry_free(reg);
	}
}

tr_err
tr_registry_create(tr_runtime *rt, tr_registry **out)
{
	tr_err err = TR_ENOMEM;
	unsigned ninit = 0;

	if (rt == NULL || out == NULL) {
		return TR_EINVAL;
	}
	/* sizeof is a multiple of the struct's alignment, as C11 requires. */
	tr_registry *reg = aligned_alloc(alignof(tr_registry), sizeof(*reg));
	if (reg == NULL) {
		return TR_ENOMEM;
	}
	memset(reg, 0, sizeof(*reg));
	reg->rt = rt;
	reg->st.size = sizeof(reg->st);
	for (; ninit < NSHARDS; ninit++) {
		err = tra_shard_init(&reg->shards[ninit], SHARD_BUCKETS0);
		if (err < 0) {
			goto err_shards;
		}
	}
	err = TR_ENOMEM;
	reg->holders = calloc(HOLDER_BUCKETS0, sizeof(*reg->holders));
	if (reg->holders == NULL) {
		goto err_shards;
	}
	reg->nholder_buckets = HOLDER_BUCKETS0;
	if (pthread_mutex_init(&reg->wmu, NULL) != 0) {
		err = TR_ESYS;
		goto err_holders;
	}
	/* One reference for the caller, one for the watcher's teardown. */
	atomic_init(&reg->refs, 2);
	err = tr_runtime_spawn(rt, &watcher_def, reg, &reg->watcher);
	if (err < 0) {
		goto err_mutex;
	}
	*out = reg;
	return TR_OK;

err_mutex:
	pthread_mutex_destroy(&reg->wmu);
err_holders:
	free(reg->holders);
err_shards:
	while (ninit-- > 0) {
		tra_shard_fini(&reg->shards[ninit], free_rname);
	}
	free(reg);
	return err;
}

void
tr_registry_destroy(tr_registry *reg)
{
	if (reg == NULL) {
		return;
	}
	/* After a join the watcher is gone: this is a counted dead letter. */
	(void)tr_runtime_stop_actor(reg->rt, reg->watcher, TR_EXIT_SHUTDOWN);
	registry_release(reg);
}

/* ---- writers ------------------------------------------------------------- */

static struct rname *
rname_new(const char *name, size_t len, uint64_t hash)
{
	struct rname *n = malloc(sizeof(*n) + len + 1);

	if (n != NULL) {
		memset(n, 0, sizeof(*n));
		n->key.hash = hash;
		n->key.len = len;
		n->key.name = n->name;
		memcpy(n->name, name, len);
		n->name[len] = '\0';
	}
	return n;
}

/*
 * Register or replace: give @name to @pid if it is free, or (replace
 * only) held by @expected.
 */
static tr_err
do_register(tr_registry *reg, const char *name, tr_pid pid, bool replace,
	    tr_pid expected)
{
	size_t len;
	tr_err err;

	if (reg == NULL || !pid_ok(pid)) {
		return TR_EINVAL;
	}
	err = check_name(name, &len);
	if (err < 0) {
		return err;
	}
	uint64_t hash = tra_hash_name(name, len);
	struct tra_shard *sh = shard_of(reg, hash);
	/* Allocated before the lock; freed unused if the name exists. */
	struct rname *fresh = rname_new(name, len, hash);
	if (fresh == NULL) {
		return TR_ENOMEM;
	}
	pthread_mutex_lock(&reg->wmu);
	if (reg->watcher_gone) {
		err = TR_ECLOSED;
		goto out;
	}
	struct rname *n = rname_find(sh, hash, name, len);
	struct holder *h;
	if (n == NULL) {
		err = holder_get(reg, pid, &h);
		if (err < 0) {
			goto out;
		}
		fresh->pid = pid;
		tra_shard_insert(sh, &fresh->key);
		holder_link(reg, h, fresh);
		fresh = NULL;
		reg->st.registered++;
		reg->st.names++;
		goto out;
	}
	if (!replace || !tr_pid_eq(n->pid, expected)) {
		err = TR_EEXIST;
		goto out;
	}
	if (tr_pid_eq(n->pid, pid)) {
		goto out; /* already so */
	}
	err = holder_get(reg, pid, &h);
	if (err < 0) {
		goto out;
	}
	pthread_rwlock_wrlock(&sh->lock);
	n->pid = pid;
	pthread_rwlock_unlock(&sh->lock);
	holder_unlink(reg, n);
	holder_link(reg, h, n);
	reg->st.registered++;
	reg->st.replaced++;
out:
	pthread_mutex_unlock(&reg->wmu);
	free(fresh);
	return err;
}

tr_err
tr_registry_register(tr_registry *reg, const char *name, tr_pid pid)
{
	return do_register(reg, name, pid, false, TR_PID_NONE);
}

tr_err
tr_registry_register_self(tr_ctx *cx, tr_registry *reg, const char *name)
{
	if (cx == NULL || reg == NULL || tr_ctx_runtime(cx) != reg->rt) {
		return TR_EINVAL;
	}
	return do_register(reg, name, tr_self(cx), false, TR_PID_NONE);
}

tr_err
tr_registry_replace(tr_registry *reg, const char *name, tr_pid expected,
		    tr_pid pid)
{
	return do_register(reg, name, pid, true, expected);
}

tr_err
tr_registry_unregister(tr_registry *reg, const char *name)
{
	size_t len;
	tr_err err;

	if (reg == NULL) {
		return TR_EINVAL;
	}
	err = check_name(name, &len);
	if (err < 0) {
		return err;
	}
	uint64_t hash = tra_hash_name(name, len);
	struct tra_shard *sh = shard_of(reg, hash);
	pthread_mutex_lock(&reg->wmu);
	struct rname *n = rname_find(sh, hash, name, len);
	if (n != NULL) {
		tra_shard_remove(sh, &n->key);
		holder_unlink(reg, n);
		reg->st.unregistered++;
		reg->st.names--;
	}
	pthread_mutex_unlock(&reg->wmu);
	if (n == NULL) {
		return TR_ENOENT;
	}
	free(n);
	return TR_OK;
}

/* ---- readers ------------------------------------------------------------- */

tr_err
tr_registry_whereis(tr_registry *reg, const char *name, tr_pid *out)
{
	size_t len;
	tr_err err;

	if (out != NULL) {
		*out = TR_PID_NONE;
	}
	if (reg == NULL || out == NULL) {
		return TR_EINVAL;
	}
	err = check_name(name, &len);
	if (err < 0) {
		return err;
	}
	uint64_t hash = tra_hash_name(name, len);
	struct tra_shard *sh = shard_of(reg, hash);
	pthread_rwlock_rdlock(&sh->lock);
	struct rname *n = rname_find(sh, hash, name, len);
	if (n != NULL) {
		*out = n->pid;
	}
	pthread_rwlock_unlock(&sh->lock);
	return n != NULL ? TR_OK : TR_ENOENT;
}

tr_err
tr_registry_send(tr_ctx *cx, tr_registry *reg, const char *name,
		 uint32_t type, const void *data, size_t len)
{
	tr_pid to;

	if (cx == NULL || reg == NULL || tr_ctx_runtime(cx) != reg->rt) {
		return TR_EINVAL;
	}
	tr_err err = tr_registry_whereis(reg, name, &to);
	if (err < 0) {
		return err;
	}
	return tr_send(cx, to, type, data, len);
}

tr_err
tr_registry_send_as(tr_registry *reg, tr_pid from, const char *name,
		    uint32_t type, const void *data, size_t len)
{
	tr_pid to;

	if (reg == NULL) {
		return TR_EINVAL;
	}
	tr_err err = tr_registry_whereis(reg, name, &to);
	if (err < 0) {
		return err;
	}
	return tr_runtime_send_as(reg->rt, from, to, type, data, len);
}

tr_err
tr_registry_stats_get(tr_registry *reg, tr_registry_stats *out)
{
	if (reg == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	size_t size = out->size;
	pthread_mutex_lock(&reg->wmu);
	*out = reg->st;
	pthread_mutex_unlock(&reg->wmu);
	out->size = size;
	return TR_OK;
}
