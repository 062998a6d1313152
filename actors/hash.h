/*
 * Hashing and one chained hash table, shared by the standard actors
 * (internal; not installed). The registry's and pubsub's name shards
 * (names.c), the watched pid set (watch.c) and the job table (jobs.c) are
 * all this table: nodes embedded first in the caller's records, buckets
 * a power of two, doubled when an insertion would pass a load of one.
 * The caller walks a chain itself, since only it knows its key.
 *
 * Threads: none of its own; the caller serialises changes (and, for the
 * name shards, holds its rwlock around tr__hash_grow, tr__hash_link and
 * tr__hash_unlink, which change chains).
 */
#ifndef TR_ACTORS_HASH_H
#define TR_ACTORS_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

struct tr__hnode {
	struct tr__hnode *next; /* bucket chain */
	uint64_t hash;
};

struct tr__htab {
	struct tr__hnode **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

/* splitmix64's finaliser: every input bit reaches every output bit. */
uint64_t tr__hash_u64(uint64_t x);
/* FNV-1a, mixed so that both the top (shard) and low (bucket) bits are
 * usable. */
uint64_t tr__hash_bytes(const void *p, size_t len);

/* @nbuckets is a power of two. Return: TR_OK or TR_ENOMEM. */
tr_err tr__hash_init(struct tr__htab *t, size_t nbuckets);
/* Free the buckets, calling @free_node (if not NULL) on each node left. */
void tr__hash_fini(struct tr__htab *t, void (*free_node)(struct tr__hnode *n));

/* The chain that holds the nodes of @hash, if any. */
static inline struct tr__hnode *
tr__hash_chain(const struct tr__htab *t, uint64_t hash)
{
	return t->buckets[hash & (t->nbuckets - 1)];
}

/* Double the buckets when the next insertion would pass a load of one
 * (without memory the chains just grow longer). */
void tr__hash_grow(struct tr__htab *t);

/* Put @n (its hash set) in its chain; no growing. */
void tr__hash_link(struct tr__htab *t, struct tr__hnode *n);
/* Take @n, which is in the table, out of its chain. */
void tr__hash_unlink(struct tr__htab *t, struct tr__hnode *n);

#endif /* TR_ACTORS_HASH_H */
