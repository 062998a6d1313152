/*
 * A set of watched pids, shared by the registry and pubsub (internal; not
 * installed). Every pid that holds something in the module (names,
 * subscriptions) has an entry, embedded first in the module's own record
 * for that pid; a watcher actor monitors each entry that holds anything
 * and, when its pid stops, has the module drop what it held.
 *
 * Threads: every call below except init and destroy is made with the
 * module's writer mutex held (`mu`, given at init); the watcher takes
 * that mutex itself around each message it handles.
 *
 * Protocol, which keeps every entry that holds something monitored, or
 * with a SYNC for its pid queued to the watcher:
 *   - a new entry is announced with a SYNC sent before it is inserted; if
 *     the send fails there is no entry (tra_watch_get fails);
 *   - when an entry's uses drop to zero the module calls tra_watch_idle,
 *     which sends a SYNC if the entry is monitored (an unmonitored one has
 *     its creation SYNC queued already);
 *   - on a SYNC the watcher frees an entry without uses (dropping its
 *     monitor) and monitors one with uses; if it cannot, the entry is
 *     purged as if its pid had stopped, so nothing stays that nobody
 *     watches;
 *   - on a DOWN that matches an entry's monitor the entry is marked dead
 *     and purged: the module drops its uses and frees the entry, or, out
 *     of memory, asks for a RETRY and is called again from the watcher.
 */
#ifndef TR_ACTORS_WATCH_H
#define TR_ACTORS_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

struct tra_watched {
	struct tra_watched *next; /* table chain */
	tr_pid pid;
	tr_ref ref;     /* the watcher's monitor, when monitored */
	bool monitored;
	bool dead;      /* its pid stopped: being purged */
	size_t uses;    /* what the module counts as held; 0 = idle */
};

struct tra_watch;

struct tra_watch_ops {
	tr_actor_def def;    /* the watcher: TRA_WATCH_DEF("name") */
	uint32_t sync_type;  /* message types the watcher is sent */
	uint32_t retry_type; /* 0 when purge never defers */
	size_t entry_size;   /* the module's record, tra_watched first */
	/*
	 * mu held: @e's pid stopped or cannot be watched. Drop all it holds
	 * and tra_watch_free() it, or, out of memory, tra_watch_retry() and
	 * return with @e kept.
	 */
	void (*purge)(struct tra_watch *ws, struct tra_watched *e);
	/* The last reference went: free the module (which calls fini). */
	void (*free_owner)(struct tra_watch *ws);
	/* From tra_watch_fini: free an entry and what it still holds. */
	void (*free_entry)(struct tra_watched *e);
};

struct tra_watch {
	pthread_mutex_t *mu;
	tr_runtime *rt;
	tr_pid watcher;
	atomic_uint refs;  /* the module's creator and the watcher */
	bool watcher_gone; /* under mu: no new entries */
	struct tra_watched **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	const struct tra_watch_ops *ops;
};

/* The watcher actor's functions, for TRA_WATCH_DEF. */
int tra_watch_actor_init(tr_ctx *cx, void *state, void *arg);
void tra_watch_actor_handle(tr_ctx *cx, void *state, const tr_msg *m);
void tra_watch_actor_teardown(tr_ctx *cx, void *state, int32_t reason);

/* The watcher's definition, named after its module. */
#define TRA_WATCH_DEF(NAME)                                                   \
	{                                                                     \
		.size = sizeof(tr_actor_def), .name = (NAME),                 \
		.state_size = sizeof(struct tra_watch *),                     \
		.init = tra_watch_actor_init,                                 \
		.teardown = tra_watch_actor_teardown,                         \
		.handle = tra_watch_actor_handle,                             \
	}

/*
 * Make the table and start the watcher (@mu is initialised). On an error
 * (TR_ENOMEM, or what spawning returned) nothing is left to undo here.
 */
tr_err tra_watch_init(struct tra_watch *ws, tr_runtime *rt,
		      pthread_mutex_t *mu, const struct tra_watch_ops *ops);
/* The module is destroyed: stop the watcher, drop the creator's share. */
void tra_watch_destroy(struct tra_watch *ws);
/* From ops->free_owner: free every entry left, and the table. */
void tra_watch_fini(struct tra_watch *ws);

/* mu held. The entry of @pid, or NULL. */
struct tra_watched *tra_watch_find(struct tra_watch *ws, tr_pid pid);
/*
 * mu held. The entry of @pid, made (and announced) if there is none.
 * Return: TR_OK, TR_ECLOSED (the watcher is gone), TR_ENOMEM, or the
 * send's error.
 */
tr_err tra_watch_get(struct tra_watch *ws, tr_pid pid,
		     struct tra_watched **out);
/* mu held: @e's uses just dropped to zero. */
void tra_watch_idle(struct tra_watch *ws, struct tra_watched *e);
/* mu held: take @e out of the table and free it. */
void tra_watch_free(struct tra_watch *ws, struct tra_watched *e);
/* mu held, from purge: call purge on @e again later, from the watcher. */
void tra_watch_retry(struct tra_watch *ws, struct tra_watched *e);

#endif /* TR_ACTORS_WATCH_H */
