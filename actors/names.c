/* A sharded table of names (see names.h). */
#include "names.h"

#include <stdlib.h>
#include <string.h>

uint64_t
tr__mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebu;
	x ^= x >> 31;
	return x;
}

uint64_t
tr__hash_name(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211u;
	}
	return tr__mix64(h);
}

tr_err
tr__shard_init(struct tr__shard *sh, size_t nbuckets)
{
	sh->buckets = calloc(nbuckets, sizeof(*sh->buckets));
	if (sh->buckets == NULL) {
		return TR_ENOMEM;
	}
	if (pthread_rwlock_init(&sh->lock, NULL) != 0) {
		free(sh->buckets);
		return TR_ESYS;
	}
	sh->nbuckets = nbuckets;
	sh->count = 0;
	return TR_OK;
}

void
tr__shard_fini(struct tr__shard *sh, void (*free_entry)(struct tr__name *e))
{
	for (size_t b = 0; b < sh->nbuckets; b++) {
		struct tr__name *e = sh->buckets[b];
		while (e != NULL) {
			struct tr__name *next = e->next;
			free_entry(e);
			e = next;
		}
	}
	free(sh->buckets);
	pthread_rwlock_destroy(&sh->lock);
}

struct tr__name *
tr__shard_find(const struct tr__shard *sh, uint64_t hash, const char *name,
	       size_t len)
{
	struct tr__name *e = sh->buckets[hash & (sh->nbuckets - 1)];

	for (; e != NULL; e = e->next) {
		if (e->hash == hash && e->len == len &&
		    memcmp(e->name, name, len) == 0) {
			return e;
		}
	}
	return NULL;
}

/*
 * Double the buckets when the next insertion would pass a load of 1. The
 * new array is allocated before the lock is taken, so readers wait only
 * for the rehash. Without memory the chains just grow longer.
 */
static void
maybe_grow(struct tr__shard *sh)
{
	if (sh->count + 1 <= sh->nbuckets) {
		return;
	}
	size_t nb = sh->nbuckets * 2;
	struct tr__name **fresh = calloc(nb, sizeof(*fresh));
	if (fresh == NULL) {
		return;
	}
	pthread_rwlock_wrlock(&sh->lock);
	struct tr__name **old = sh->buckets;
	for (size_t i = 0; i < sh->nbuckets; i++) {
		struct tr__name *e = old[i];
		while (e != NULL) {
			struct tr__name *next = e->next;
			size_t b = e->hash & (nb - 1);
			e->next = fresh[b];
			fresh[b] = e;
			e = next;
		}
	}
	sh->buckets = fresh;
	sh->nbuckets = nb;
	pthread_rwlock_unlock(&sh->lock);
	free(old);
}

void
tr__shard_insert(struct tr__shard *sh, struct tr__name *e)
{
	maybe_grow(sh);
	pthread_rwlock_wrlock(&sh->lock);
	size_t b = e->hash & (sh->nbuckets - 1);
	e->next = sh->buckets[b];
	sh->buckets[b] = e;
	sh->count++;
	pthread_rwlock_unlock(&sh->lock);
}

void
tr__shard_remove(struct tr__shard *sh, struct tr__name *e)
{
	pthread_rwlock_wrlock(&sh->lock);
	struct tr__name **pp = &sh->buckets[e->hash & (sh->nbuckets - 1)];
	while (*pp != e) {
		pp = &(*pp)->next;
	}
	*pp = e->next;
	sh->count--;
	pthread_rwlock_unlock(&sh->lock);
}
