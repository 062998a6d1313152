/*
 * A set of watched pids, shared by the registry and pubsub (internal; not
 * installed), and the rest of what both tables are made of: the name
 * table, the writer mutex, the reference count and the allocation. The
 * module's own struct embeds struct tr__watch first. Every pid that holds
 * something in the module (names, subscriptions) has an entry, with the
 * list of what it holds (a struct tr__hold embedded in each); a watcher
 * actor monitors each entry that holds anything and, when its pid stops,
 * has the module drop what it held.
 *
 * Threads: every call below except new and destroy is made with the
 * module's writer mutex held (`mu`); the watcher takes that mutex itself
 * around each message it handles.
 *
 * Protocol, which keeps every entry that holds something monitored, or
 * with a SYNC for its pid queued to the watcher:
 *   - a new entry is announced with a SYNC sent before it is inserted; if
 *     the send fails there is no entry (tr__watch_get fails);
 *   - when tr__watch_put takes an entry's last hold it sends a SYNC
 *     if the entry is monitored (an unmonitored one has a SYNC queued
 *     already: its creation's, or a purge's retry);
 *   - a SYNC brings the entry of its pid in line with what it holds,
 *     so one more SYNC than needed is harmless: the watcher frees an
 *     entry that holds nothing (dropping its monitor) and monitors one
 *     that holds something; if it cannot, it is purged as if its pid had
 *     stopped, so nothing stays that nobody watches;
 *   - on a DOWN that matches an entry's monitor the entry is purged: the
 *     module drops its holds one by one and the entry is freed, or, out
 *     of memory, the monitor is gone and a SYNC is sent: the monitor
 *     made again reports a stopped pid at once (TR_EXIT_NOPROC), and the
 *     purge goes on.
 */
#ifndef TR_ACTORS_WATCH_H
#define TR_ACTORS_WATCH_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#include "hash.h"
#include "names.h"

/* One thing a pid holds, embedded in the module's record of that thing. */
struct tr__hold {
	struct tr__hold *next;
	struct tr__hold **pprev;
};

/* The record of type T whose member M is the hold @h. */
#define TR__HELD(h, T, M) ((T *)(void *)((char *)(h)-offsetof(T, M)))

struct tr__watched {
	struct tr__hnode node; /* first; node.hash is tr_pid_hash(pid) */
	tr_pid pid;
	tr_ref ref; /* the watcher's monitor; zero when not monitored */
	struct tr__hold *held; /* what it holds; NULL = idle */
};

struct tr__watch;

struct tr__watch_ops {
	uint32_t sync_type; /* the message type the watcher is sent */
	size_t size;        /* the module's struct, tr__watch first */
	size_t name_max;    /* the longest name in its table */
	/*
	 * mu held: @e's pid stopped or cannot be watched. Drop @h, the
	 * first thing it holds, and tr__watch_put() it. Return: TR_OK, or
	 * TR_ENOMEM with nothing changed (the rest is purged again later).
	 */
	tr_err (*drop)(struct tr__watch *ws, struct tr__watched *e,
		       struct tr__hold *h);
	/* When the last reference goes: free a name entry and an entry
	 * (each given by its node, its first member) and what it holds. */
	void (*free_name)(struct tr__hnode *n);
	void (*free_entry)(struct tr__hnode *n);
};

struct tr__watch {
	struct tr__names names; /* first: the shards that readers lock */
	/* Every writer's mutex; aligned to keep it off the last shard. */
	alignas(TR__CACHE_LINE) pthread_mutex_t mu;
	tr_runtime *rt;
	tr_pid watcher;
	atomic_uint refs;  /* the module's owner and the watcher */
	bool watcher_gone; /* under mu: no new entries */
	size_t holding;    /* under mu: entries that hold something */
	struct tr__htab tab;
	const struct tr__watch_ops *ops;
};

/* Can @pid hold anything: a local pid, which the watcher can monitor? */
static inline bool
tr__watch_can_hold(tr_pid pid)
{
	return !tr_pid_is_none(pid) && tr_pid_node(pid) == 0;
}

/*
 * Allocate the module's struct (ops->size bytes, zeroed), make its tables
 * and mutex and start the watcher. The last reference frees it all.
 * Return: the module's struct and @err TR_OK, or NULL and @err
 * (TR_ENOMEM, TR_ESYS, or what spawning returned) with nothing left.
 */
void *
tr__watch_new(tr_runtime *rt, const struct tr__watch_ops *ops, tr_err *err);
/* The module is destroyed: stop the watcher, drop the owner's share.
 * NULL: nothing. */
void tr__watch_destroy(struct tr__watch *ws);

/* mu held. The entry of @pid, or NULL. */
struct tr__watched *tr__watch_find(struct tr__watch *ws, tr_pid pid);
/*
 * mu held. The entry of @pid, made (and announced) if there is none,
 * and @err TR_OK; or NULL and @err: TR_ECLOSED (the watcher is gone: no
 * pid can hold more), TR_ENOMEM, or the send's error.
 */
struct tr__watched *
tr__watch_get(struct tr__watch *ws, tr_pid pid, tr_err *err);
/* mu held: @e's pid holds @h too. */
void
tr__watch_hold(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h);
/* mu held: @e's pid gives up @h. Return: true if it holds nothing now. */
bool
tr__watch_put(struct tr__watch *ws, struct tr__watched *e, struct tr__hold *h);

#endif /* TR_ACTORS_WATCH_H */
