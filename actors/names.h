/*
 * A sharded table of names, shared by the registry and pubsub (internal;
 * not installed). Entries embed struct tr__name as their first member;
 * each shard has a rwlock that lookups take for reading, and writers,
 * already serialised by their module's own mutex, take for writing only
 * to change a chain, so readers never wait for an allocation.
 */
#ifndef TR_ACTORS_NAMES_H
#define TR_ACTORS_NAMES_H

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#include "hash.h"

#define TR__CACHE_LINE 64

struct tr__name {
	struct tr__hnode node; /* first; node.hash is tr__hash_bytes(name) */
	size_t len;
	const char *name; /* len bytes and a NUL, in the entry */
};

struct tr__shard {
	alignas(TR__CACHE_LINE) pthread_rwlock_t lock;
	struct tr__htab tab;
};

/* Return: TR_OK, TR_ENOMEM, TR_ESYS. */
tr_err tr__shard_init(struct tr__shard *sh, size_t nbuckets);
/* Free the shard, calling @free_entry on each entry's node left. */
void
tr__shard_fini(struct tr__shard *sh, void (*free_entry)(struct tr__hnode *n));
/* Under the shard's lock (either mode), or the module's writer mutex. */
struct tr__name *tr__shard_find(const struct tr__shard *sh, uint64_t hash,
				const char *name, size_t len);
/* Writer mutex held; takes the shard's lock for writing. */
void tr__shard_insert(struct tr__shard *sh, struct tr__name *e);
void tr__shard_remove(struct tr__shard *sh, struct tr__name *e);

#endif /* TR_ACTORS_NAMES_H */
