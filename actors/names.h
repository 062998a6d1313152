/*
 * A sharded table of names, shared by the registry and pubsub (internal;
 * not installed). Entries embed struct tr__name as their first member.
 * The table has 16 shards: enough that lookups from a few dozen threads
 * rarely meet on one lock, few enough that a table of a handful of names
 * stays small. Each shard has a rwlock that lookups take for reading,
 * and writers, already serialised by their module's own mutex, take for
 * writing only to change a chain (entries are allocated before), so
 * readers wait for no allocation but a doubling of the shard's buckets.
 */
#ifndef TR_ACTORS_NAMES_H
#define TR_ACTORS_NAMES_H

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#include "hash.h"

#define TR__CACHE_LINE  64
#define TR__NAMES_BITS  4u
#define TR__NAMES_COUNT (1u << TR__NAMES_BITS)

struct tr__name {
	struct tr__hnode node; /* first; node.hash is tr__hash_bytes(name) */
	size_t len;
	const char *name; /* len bytes and a NUL, after the entry */
};

struct tr__shard {
	alignas(TR__CACHE_LINE) pthread_rwlock_t lock;
	struct tr__htab tab;
};

struct tr__names {
	struct tr__shard shards[TR__NAMES_COUNT];
	size_t max; /* the longest name, in bytes */
};

/* A name checked and hashed, and the shard it belongs in. */
struct tr__name_key {
	const char *name;
	size_t len;
	uint64_t hash;
	struct tr__shard *sh;
};

/* For names of 1 to @max bytes. Return: TR_OK, TR_ENOMEM, TR_ESYS; on an
 * error nothing is left. */
tr_err tr__names_init(struct tr__names *t, size_t max);
/* Free the table, calling @free_entry on each entry's node left. */
void
tr__names_fini(struct tr__names *t, void (*free_entry)(struct tr__hnode *n));
/*
 * Fill @k for @name, which must be 1 to the table's max bytes long.
 * Return: TR_OK, or TR_EINVAL (NULL, empty or too long).
 */
tr_err
tr__names_key(struct tr__names *t, const char *name, struct tr__name_key *k);
/* A zeroed entry of @size bytes (struct tr__name first), @k's name copied
 * after them. NULL without memory. */
void *tr__names_new(const struct tr__name_key *k, size_t size);
/* The shard of @hash. */
struct tr__shard *tr__names_shard(struct tr__names *t, uint64_t hash);
/* The entry of @k (its struct tr__name first), or NULL. Under its shard's
 * lock (either mode), or the module's writer mutex. */
void *tr__names_find(const struct tr__name_key *k);
/* Writer mutex held; take @e's shard lock for writing. @e's node.hash,
 * len and name are set. */
void tr__names_insert(struct tr__names *t, struct tr__name *e);
void tr__names_remove(struct tr__names *t, struct tr__name *e);

#endif /* TR_ACTORS_NAMES_H */
