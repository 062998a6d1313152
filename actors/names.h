/*
 * A sharded table of names, shared by the registry and pubsub (internal;
 * not installed). Entries embed struct tra_name as their first member;
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

#define TRA_CACHE_LINE 64

struct tra_name {
	struct tra_name *next; /* shard chain */
	uint64_t hash;
	size_t len;
	const char *name; /* len bytes and a NUL, in the entry */
};

struct tra_shard {
	alignas(TRA_CACHE_LINE) pthread_rwlock_t lock;
	struct tra_name **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

/* splitmix64's finaliser: every input bit reaches every output bit. */
uint64_t tra_mix64(uint64_t x);
/* FNV-1a, mixed so that both the top (shard) and low (bucket) bits are
 * usable. */
uint64_t tra_hash_name(const char *s, size_t len);

/* Return: TR_OK, TR_ENOMEM, TR_ESYS. */
tr_err tra_shard_init(struct tra_shard *sh, size_t nbuckets);
/* Free the shard, calling @free_entry on each entry left. */
void tra_shard_fini(struct tra_shard *sh,
		    void (*free_entry)(struct tra_name *e));
/* Under the shard's lock (either mode), or the module's writer mutex. */
struct tra_name *tra_shard_find(const struct tra_shard *sh, uint64_t hash,
				const char *name, size_t len);
/* Writer mutex held; takes the shard's lock for writing. */
void tra_shard_insert(struct tra_shard *sh, struct tra_name *e);
void tra_shard_remove(struct tra_shard *sh, struct tra_name *e);

#endif /* TR_ACTORS_NAMES_H */
