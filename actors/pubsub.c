/*
 * PubSub: topics with subscriber lists, published to without a central
 * actor, and subscribers removed when they stop.
 *
 * Threads. Every entry point runs on any thread, handlers included. The
 * service's own actor (the watcher, actors/watch.c) runs on a worker like
 * any actor; it monitors subscribers and, on their TR_MSG_DOWN, has
 * sub_drop() remove their memberships.
 *
 * Snapshots. A topic's subscribers are an immutable array with a
 * reference count (struct snap). A publish takes a reference under the
 * shard's read lock and sends after dropping the lock; a writer never
 * changes a published array, it builds a new one, swaps the topic's
 * pointer under the shard's write lock and drops the table's reference
 * to the old one. Whoever drops the last reference frees the array. So a
 * publish sends to one consistent list, and a slow publish (a long list)
 * never holds a lock that writers or other publishers wait for.
 *
 * Locks.
 *   wmu (t.mu)   serialises every writer: subscribe, unsubscribe and the
 *                watcher's SYNC and DOWN handling. It guards the
 *                subscriber table (the watch set), the membership lists
 *                and the writer-side counters; since every change to a shard
 *                is made under it, a writer reads the shards without their
 *                locks.
 *   shard->lock  a rwlock per topic shard. Publishes and counts take it
 *                shared; a writer takes it exclusive while holding wmu
 *                (order: wmu, then one shard lock).
 *
 * Invariants (under wmu).
 *   - A topic is in its shard while it has at least one subscriber; its
 *     snapshot lists each subscriber once, and each listed pid has a
 *     membership for it on its sub's list, and no other memberships
 *     exist.
 *   - Subs are the watch set's entries (actors/watch.h), which hold
 *     their memberships, and whose protocol keeps a sub with memberships
 *     monitored, or with a SYNC queued (when it is dead and being purged,
 *     for a retry).
 *
 * Lifetime. The service is reference counted (in the watch set, whose
 * struct tr__watch begins it and holds the shards and wmu): one
 * reference belongs to the owner (dropped by tr_pubsub_destroy()), one to
 * the watcher (dropped by its teardown).
 */
#include <troupe/actors/pubsub.h>

#include "names.h"
#include "ref.h"
#include "watch.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* The service tells its own actor to start or stop monitoring a
 * subscriber, or to retry a removal. Applications never receive it. */
#define MSG_SYNC (TR_MSG_PUBSUB_BASE + 0x80u)

struct snap {
	atomic_uint refs;
	size_t n;
	tr_pid pids[];
};

struct topic {
	struct tr__name key; /* first: the name table's entry */
	struct snap *snap;   /* never NULL; swapped under the shard's wrlock */
};

struct member {
	struct tr__hold hold; /* first: on its sub's list */
	struct topic *topic;
};

/* Publish counters: relaxed, on their own line, away from wmu's. */
struct pub_counters {
	alignas(TR__CACHE_LINE) atomic_uint_fast64_t published;
	atomic_uint_fast64_t unheard;
	atomic_uint_fast64_t delivered;
	atomic_uint_fast64_t failed;
};

struct tr_pubsub {
	struct tr__watch t; /* first: the topic shards, wmu, subs, watcher */
	tr_pubsub_stats st; /* writer-side fields but subscriptions (derived) */
	struct pub_counters pc;
};

/* The publish counters are relaxed: exact once publishing stopped. */
static void
count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t
load(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- snapshots ----------------------------------------------------------- */

/*
 * A new list: @old's (none when NULL) with @pid added at the end, or
 * (@add false) taken out; it has the reference of the topic that will
 * hold it. NULL without memory.
 */
static struct snap *
snap_edit(const struct snap *old, tr_pid pid, bool add)
{
	size_t n = old != NULL ? old->n : 0;
	struct snap *s =
		malloc(sizeof(*s) + (add ? n + 1 : n - 1) * sizeof(tr_pid));

	if (s == NULL) {
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (!tr_pid_eq(old->pids[i], pid)) {
			s->pids[s->n++] = old->pids[i];
		}
	}
	if (add) {
		s->pids[s->n++] = pid;
	}
	return s;
}

static void
snap_release(struct snap *s)
{
	/* The reads of pids[] come before the drop (see tr__ref_put). */
	if (tr__ref_put(&s->refs)) {
		free(s);
	}
}

/* ---- topic shards (actors/names.c) ------------------------------------- */

static void
free_topic(struct tr__hnode *n)
{
	struct topic *t = (struct topic *)n; /* the node is first */

	snap_release(t->snap);
	free(t);
}

/* Under wmu: publish @fresh as @t's list and drop the table's old one. */
static void
topic_swap(struct tr__shard *sh, struct topic *t, struct snap *fresh)
{
	pthread_rwlock_wrlock(&sh->lock);
	struct snap *old = t->snap;
	t->snap = fresh;
	pthread_rwlock_unlock(&sh->lock);
	snap_release(old);
}

/*
 * Take @pid out of @t's list; a topic left empty leaves the table.
 * Under wmu.
 * Return: TR_OK, or TR_ENOMEM (nothing changed).
 */
static tr_err
topic_remove_pid(tr_pubsub *ps, struct topic *t, tr_pid pid)
{
	struct snap *old = t->snap;

	if (old->n == 1) {
		tr__names_remove(&ps->t.names, &t->key);
		free_topic(&t->key.node);
		ps->st.topics--;
		return TR_OK;
	}
	struct snap *fresh = snap_edit(old, pid, false);
	if (fresh == NULL) {
		return TR_ENOMEM;
	}
	topic_swap(tr__names_shard(&ps->t.names, t->key.node.hash), t, fresh);
	return TR_OK;
}

/* ---- subscribers (all under wmu) ----------------------------------------- */

/* @s's membership of @t, or NULL (also when @s is NULL). */
static struct member *
member_find(struct tr__watched *s, const struct topic *t)
{
	struct tr__hold *h = s != NULL ? s->held : NULL;

	/* The hold is the membership's first member. */
	while (h != NULL && ((struct member *)h)->topic != t) {
		h = h->next;
	}
	return (struct member *)h;
}

/*
 * Drop @s's membership @mb: its pid leaves the topic's list.
 * On a dead sub tr__watch_put sends nothing: it is not monitored.
 * Return: TR_OK, or TR_ENOMEM (nothing changed).
 */
static tr_err
member_drop(tr_pubsub *ps, struct tr__watched *s, struct member *mb)
{
	tr_err err = topic_remove_pid(ps, mb->topic, s->pid);

	if (err < 0) {
		return err;
	}
	(void)tr__watch_put(&ps->t, s, &mb->hold);
	free(mb);
	return TR_OK;
}

/* The watch set's drop: a membership of a sub whose pid stopped (or
 * cannot be watched). */
static tr_err
sub_drop(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h)
{
	tr_pubsub *ps = (tr_pubsub *)ws; /* the first member */
	tr_err err = member_drop(ps, e, (struct member *)h);

	if (err == TR_OK) {
		ps->st.removed++;
	}
	return err;
}

static void
sub_free_entry(struct tr__hnode *n)
{
	struct tr__watched *s = (struct tr__watched *)n; /* the node is first */

	while (s->held != NULL) {
		struct tr__hold *h = s->held;
		s->held = h->next;
		free(h); /* the membership it is first in */
	}
	free(s);
}

static const struct tr__watch_ops watch_ops = {
	.sync_type = MSG_SYNC,
	.size = sizeof(tr_pubsub),
	.name_max = TR_PUBSUB_TOPIC_MAX,
	.drop = sub_drop,
	.free_name = free_topic,
	.free_entry = sub_free_entry,
};

/* ---- create and destroy -------------------------------------------------- */

tr_err
tr_pubsub_create(tr_runtime *rt, tr_pubsub **out)
{
	tr_err err = TR_EINVAL;

	/* The publish counters start as tr__watch_new zeroed them. */
	if (rt != NULL && out != NULL) {
		*out = tr__watch_new(rt, &watch_ops, &err);
	}
	return err;
}

void
tr_pubsub_destroy(tr_pubsub *ps)
{
	/* The watch set is the first member. */
	tr__watch_destroy((struct tr__watch *)ps);
}

/* ---- subscribe and unsubscribe ------------------------------------------- */

/* The checks both make. */
static tr_err
member_args(tr_pubsub *ps, const char *topic, tr_pid pid,
	    struct tr__name_key *k)
{
	if (ps == NULL || !tr__watch_can_hold(pid)) {
		return TR_EINVAL;
	}
	return tr__names_key(&ps->t.names, topic, k);
}

tr_err
tr_pubsub_subscribe(tr_pubsub *ps, const char *topic, tr_pid pid)
{
	struct tr__name_key k;
	tr_err err = member_args(ps, topic, pid, &k);

	if (err < 0) {
		return err;
	}
	struct topic *fresh_t = NULL;
	struct snap *fresh = NULL;
	struct member *mb = NULL;

	pthread_mutex_lock(&ps->t.mu);
	struct topic *t = tr__names_find(&k);
	if (member_find(tr__watch_find(&ps->t, pid), t) != NULL) {
		err = TR_EEXIST;
		goto out;
	}
	/* Everything that can fail first, then the changes. */
	err = TR_ENOMEM;
	fresh = snap_edit(t != NULL ? t->snap : NULL, pid, true);
	mb = malloc(sizeof(*mb));
	if (t == NULL) {
		fresh_t = tr__names_new(&k, sizeof(*fresh_t));
	}
	if (fresh == NULL || mb == NULL || (t == NULL && fresh_t == NULL)) {
		goto out;
	}
	struct tr__watched *s = tr__watch_get(&ps->t, pid, &err);
	if (s == NULL) {
		goto out;
	}
	if (t == NULL) {
		t = fresh_t;
		fresh_t = NULL;
		t->snap = fresh;
		tr__names_insert(&ps->t.names, &t->key);
		ps->st.topics++;
	} else {
		topic_swap(k.sh, t, fresh);
	}
	fresh = NULL;
	mb->topic = t;
	tr__watch_hold(&ps->t, s, &mb->hold);
	mb = NULL;
	ps->st.subscribed++;
out:
	pthread_mutex_unlock(&ps->t.mu);
	free(fresh_t);
	free(fresh);
	free(mb);
	return err;
}

tr_err
tr_pubsub_unsubscribe(tr_pubsub *ps, const char *topic, tr_pid pid)
{
	struct tr__name_key k;
	tr_err err = member_args(ps, topic, pid, &k);

	if (err < 0) {
		return err;
	}
	pthread_mutex_lock(&ps->t.mu);
	struct tr__watched *s = tr__watch_find(&ps->t, pid);
	struct member *mb = member_find(s, tr__names_find(&k));
	err = mb != NULL ? member_drop(ps, s, mb) : TR_ENOENT;
	if (err == TR_OK) {
		ps->st.unsubscribed++;
	}
	pthread_mutex_unlock(&ps->t.mu);
	return err;
}

/* ---- publish ------------------------------------------------------------- */

int
tr_pubsub_publish(tr_ctx *cx, tr_pubsub *ps, const char *topic, uint32_t type,
		  const void *data, size_t len)
{
	struct tr__name_key k;

	/* @cx is the publisher's context: its pid is the sender. */
	if (cx == NULL || ps == NULL || tr_ctx_runtime(cx) != ps->t.rt ||
	    tr__names_key(&ps->t.names, topic, &k) < 0 ||
	    type >= TR_MSG_SYSTEM_BASE || (len > 0 && data == NULL)) {
		return TR_EINVAL;
	}
	struct snap *snap = NULL;

	pthread_rwlock_rdlock(&k.sh->lock);
	struct topic *t = tr__names_find(&k);
	if (t != NULL) {
		snap = t->snap;
		/*
		 * relaxed: the read lock keeps the table's reference, so the
		 * array cannot go before this increment; snap_release()
		 * orders the reads that follow.
		 */
		atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
	}
	pthread_rwlock_unlock(&k.sh->lock);
	if (snap == NULL) {
		count(&ps->pc.published, 1);
		count(&ps->pc.unheard, 1);
		return 0;
	}
	int sent = 0;
	uint64_t failed = 0;
	tr_err err = TR_OK;
	for (size_t i = 0; i < snap->n; i++) {
		err = tr_send(cx, snap->pids[i], type, data, len);
		if (err == TR_OK) {
			sent++;
		} else if (err == TR_EINVAL || err == TR_EMSGSIZE) {
			/* About the message: the first send, so none sent. */
			break;
		} else {
			failed++;
			err = TR_OK;
		}
	}
	snap_release(snap);
	count(&ps->pc.delivered, (uint64_t)sent);
	count(&ps->pc.failed, failed);
	if (err < 0) {
		return err;
	}
	count(&ps->pc.published, 1);
	return sent;
}

/* ---- inspection ---------------------------------------------------------- */

int
tr_pubsub_subscribers(tr_pubsub *ps, const char *topic)
{
	struct tr__name_key k;

	if (ps == NULL || tr__names_key(&ps->t.names, topic, &k) < 0) {
		return TR_EINVAL;
	}
	pthread_rwlock_rdlock(&k.sh->lock);
	struct topic *t = tr__names_find(&k);
	size_t n = t != NULL ? t->snap->n : 0;
	pthread_rwlock_unlock(&k.sh->lock);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

tr_err
tr_pubsub_stats_get(tr_pubsub *ps, tr_pubsub_stats *out)
{
	if (ps == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&ps->t.mu);
	*out = ps->st;
	pthread_mutex_unlock(&ps->t.mu);
	out->size = sizeof(*out);
	/* Derived: the identity the header states. */
	out->subscriptions = out->subscribed - out->unsubscribed - out->removed;
	out->published = load(&ps->pc.published);
	out->unheard = load(&ps->pc.unheard);
	out->delivered = load(&ps->pc.delivered);
	out->failed = load(&ps->pc.failed);
	return TR_OK;
}
