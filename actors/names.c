/* A sharded table of names (see names.h). */
#include "names.h"

#include <stdlib.h>
#include <string.h>

tr_err
tr__shard_init(struct tr__shard *sh, size_t nbuckets)
{
	if (tr__hash_init(&sh->tab, nbuckets) < 0) {
		return TR_ENOMEM;
	}
	if (pthread_rwlock_init(&sh->lock, NULL) != 0) {
		tr__hash_fini(&sh->tab, NULL);
		return TR_ESYS;
	}
	return TR_OK;
}

void
tr__shard_fini(struct tr__shard *sh, void (*free_entry)(struct tr__hnode *n))
{
	tr__hash_fini(&sh->tab, free_entry);
	pthread_rwlock_destroy(&sh->lock);
}

struct tr__name *
tr__shard_find(const struct tr__shard *sh, uint64_t hash, const char *name,
	       size_t len)
{
	struct tr__hnode *n = tr__hash_chain(&sh->tab, hash);

	for (; n != NULL; n = n->next) {
		/* The node is the entry's first member. */
		struct tr__name *e = (struct tr__name *)n;
		if (n->hash == hash && e->len == len &&
		    memcmp(e->name, name, len) == 0) {
			return e;
		}
	}
	return NULL;
}

void
tr__shard_insert(struct tr__shard *sh, struct tr__name *e)
{
	/* The doubled buckets are allocated before the lock is taken, so
	 * readers wait only for the rehash. */
	struct tr__hnode **fresh = tr__hash_grow_prepare(&sh->tab);
	struct tr__hnode **old = NULL;

	pthread_rwlock_wrlock(&sh->lock);
	if (fresh != NULL) {
		old = tr__hash_grow_commit(&sh->tab, fresh);
	}
	tr__hash_link(&sh->tab, &e->node);
	pthread_rwlock_unlock(&sh->lock);
	free(old);
}

void
tr__shard_remove(struct tr__shard *sh, struct tr__name *e)
{
	pthread_rwlock_wrlock(&sh->lock);
	tr__hash_unlink(&sh->tab, &e->node);
	pthread_rwlock_unlock(&sh->lock);
}
