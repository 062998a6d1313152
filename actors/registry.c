/*
 * Registry: names for pids, removed when their holder stops.
 *
 * Threads. Every entry point runs on any thread, handlers included. The
 * registry's own actor (the watcher, actors/watch.c) runs on a worker
 * like any actor; it monitors the pids that hold names and, on their
 * TR_MSG_DOWN, has holder_drop() remove their names.
 *
 * Locks.
 *   wmu (t.mu)   serialises every writer: register, unregister, replace,
 *                and the watcher's SYNC and DOWN handling. It guards the
 *                holder table (the watch set), the counters, and since
 *                every change to a shard is made under it, a writer reads
 *                the shards without their locks.
 *   shard->lock  a rwlock per name shard. Lookups take it shared; a
 *                writer takes it exclusive while holding wmu (order: wmu,
 *                then one shard lock, never two shard locks).
 *
 * Invariants (under wmu).
 *   - Every name is in exactly one shard chain and on the name list of
 *     the holder of its pid; a holder's list holds exactly its names.
 *   - Holders are the watch set's entries (actors/watch.h), whose
 *     protocol keeps a holder with names monitored or with a SYNC queued.
 *   Together: a holder that stops loses its names when the watcher
 *   handles its DOWN, and the watcher never monitors a pid for long after
 *   its last name went.
 *
 * Lifetime. The registry is reference counted (in the watch set, whose
 * struct tr__watch begins it and holds the shards and wmu): one
 * reference belongs to the owner (dropped by tr_registry_destroy()), one
 * to the watcher (dropped by its teardown), so a handler still running in
 * the watcher never sees freed memory.
 */
#include <troupe/actors/registry.h>

#include "names.h"
#include "watch.h"

#include <pthread.h>
#include <stdlib.h>

/* The registry tells its own actor to start or stop monitoring a pid.
 * Applications never receive it. */
#define MSG_SYNC (TR_MSG_REGISTRY_BASE + 0x80u)

struct rname {
	struct tr__name key;  /* first: the name table's entry */
	struct tr__hold hold; /* on its holder's list */
	tr_pid pid; /* its holder is the watch set's entry of this pid */
};

struct tr_registry {
	struct tr__watch t;   /* first: the shards, wmu, holders, watcher */
	tr_registry_stats st; /* names and holders are derived, in stats_get */
};

/* ---- name shards (actors/names.c) -------------------------------------- */

/* For names and holders both: the node is first, and a holder's names
 * went with the shards. */
static void
free_node(struct tr__hnode *n)
{
	free(n);
}

/* ---- holders (all under wmu) --------------------------------------------- */

/* Take @n off its holder's list; before @n->pid changes. */
static void
holder_unlink(tr_registry *reg, struct rname *n)
{
	(void)tr__watch_put(&reg->t, tr__watch_find(&reg->t, n->pid), &n->hold);
}

/* Take @n out of its shard and off its holder's list (not freed). */
static void
name_drop(tr_registry *reg, struct rname *n)
{
	tr__names_remove(&reg->t.names, &n->key);
	holder_unlink(reg, n);
}

/* The watch set's drop: a name of a holder that stopped (or cannot be
 * watched). On a dead holder tr__watch_put sends nothing: it is not
 * monitored. */
static tr_err
holder_drop(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h)
{
	tr_registry *reg = (tr_registry *)ws; /* the first member */
	struct rname *n = TR__HELD(h, struct rname, hold);

	(void)e;
	name_drop(reg, n);
	free(n);
	reg->st.removed++;
	return TR_OK;
}

static const struct tr__watch_ops watch_ops = {
	.sync_type = MSG_SYNC,
	.size = sizeof(tr_registry),
	.name_max = TR_REGISTRY_NAME_MAX,
	.drop = holder_drop,
	.free_name = free_node,
	.free_entry = free_node,
};

/* ---- create and destroy -------------------------------------------------- */

tr_err
tr_registry_create(tr_runtime *rt, tr_registry **out)
{
	tr_err err = TR_EINVAL;

	if (rt != NULL && out != NULL) {
		*out = tr__watch_new(rt, &watch_ops, &err);
	}
	return err;
}

void
tr_registry_destroy(tr_registry *reg)
{
	/* The watch set is the first member. */
	tr__watch_destroy((struct tr__watch *)reg);
}

/* ---- writers ------------------------------------------------------------- */

tr_err
tr_registry_register(tr_registry *reg, const char *name, tr_pid pid)
{
	/* No holder is TR_PID_NONE: this is a replace of a free name. */
	return tr_registry_replace(reg, name, TR_PID_NONE, pid);
}

tr_err
tr_registry_replace(tr_registry *reg, const char *name, tr_pid expected,
		    tr_pid pid)
{
	struct tr__name_key k;
	tr_err err;

	if (reg == NULL || !tr__watch_can_hold(pid)) {
		return TR_EINVAL;
	}
	err = tr__names_key(&reg->t.names, name, &k);
	if (err < 0) {
		return err;
	}
	/* Allocated before the lock; freed unused if the name exists. */
	struct rname *fresh = tr__names_new(&k, sizeof(*fresh));
	if (fresh == NULL) {
		return TR_ENOMEM;
	}
	pthread_mutex_lock(&reg->t.mu);
	struct rname *n = tr__names_find(&k);
	if (n != NULL && !tr_pid_eq(n->pid, expected)) {
		err = TR_EEXIST;
		goto out;
	}
	if (n != NULL && tr_pid_eq(n->pid, pid)) {
		goto out; /* already so */
	}
	struct tr__watched *h = tr__watch_get(&reg->t, pid, &err);
	if (h == NULL) {
		goto out;
	}
	if (n == NULL) {
		n = fresh;
		fresh = NULL;
		n->pid = pid;
		tr__names_insert(&reg->t.names, &n->key);
	} else {
		holder_unlink(reg, n);
		pthread_rwlock_wrlock(&k.sh->lock);
		n->pid = pid;
		pthread_rwlock_unlock(&k.sh->lock);
		reg->st.replaced++;
	}
	tr__watch_hold(&reg->t, h, &n->hold);
	reg->st.registered++;
out:
	pthread_mutex_unlock(&reg->t.mu);
	free(fresh);
	return err;
}

tr_err
tr_registry_unregister(tr_registry *reg, const char *name)
{
	struct tr__name_key k;
	tr_err err;

	if (reg == NULL) {
		return TR_EINVAL;
	}
	err = tr__names_key(&reg->t.names, name, &k);
	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&reg->t.mu);
	struct rname *n = tr__names_find(&k);
	if (n != NULL) {
		name_drop(reg, n);
		reg->st.unregistered++;
	}
	pthread_mutex_unlock(&reg->t.mu);
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
	struct tr__name_key k;
	tr_err err;

	if (out != NULL) {
		*out = TR_PID_NONE;
	}
	if (reg == NULL || out == NULL) {
		return TR_EINVAL;
	}
	err = tr__names_key(&reg->t.names, name, &k);
	if (err < 0) {
		return err;
	}
	pthread_rwlock_rdlock(&k.sh->lock);
	struct rname *n = tr__names_find(&k);
	if (n != NULL) {
		*out = n->pid;
	}
	pthread_rwlock_unlock(&k.sh->lock);
	return n != NULL ? TR_OK : TR_ENOENT;
}

tr_err
tr_registry_stats_get(tr_registry *reg, tr_registry_stats *out)
{
	if (reg == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&reg->t.mu);
	*out = reg->st;
	out->holders = reg->t.holding;
	pthread_mutex_unlock(&reg->t.mu);
	out->size = sizeof(*out);
	/* Derived: the identity the header states. */
	out->names = out->registered - out->unregistered - out->replaced -
		     out->removed;
	return TR_OK;
}
