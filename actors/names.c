/* A sharded table of names (see names.h). */
#include "names.h"

#include <stdlib.h>
#include <string.h>

/* Eight buckets a shard at first; they double as names come. */
#define SHARD_BUCKETS0 8u

tr_err
tr__names_init(struct tr__names *t, size_t max)
{
	unsigned i = 0;
	tr_err err = TR_OK;

	t->max = max;
	for (; i < TR__NAMES_COUNT; i++) {
		struct tr__shard *sh = &t->shards[i];
		err = tr__hash_init(&sh->tab, SHARD_BUCKETS0);
		if (err < 0) {
			break;
		}
		if (pthread_rwlock_init(&sh->lock, NULL) != 0) {
			tr__hash_fini(&sh->tab, NULL);
			err = TR_ESYS;
			break;
		}
	}
	if (err < 0) {
		while (i-- > 0) {
			tr__hash_fini(&t->shards[i].tab, NULL);
			pthread_rwlock_destroy(&t->shards[i].lock);
		}
	}
	return err;
}

void
tr__names_fini(struct tr__names *t, void (*free_entry)(struct tr__hnode *n))
{
	for (unsigned i = 0; i < TR__NAMES_COUNT; i++) {
		tr__hash_fini(&t->shards[i].tab, free_entry);
		pthread_rwlock_destroy(&t->shards[i].lock);
	}
}

tr_err
tr__names_key(struct tr__names *t, const char *name, struct tr__name_key *k)
{
	if (name == NULL) {
		return TR_EINVAL;
	}
	k->name = name;
	k->len = strnlen(name, t->max + 1);
	if (k->len == 0 || k->len > t->max) {
		return TR_EINVAL;
	}
	k->hash = tr__hash_bytes(name, k->len);
	k->sh = tr__names_shard(t, k->hash);
	return TR_OK;
}

void *
tr__names_new(const struct tr__name_key *k, size_t size)
{
	struct tr__name *e = calloc(1, size + k->len + 1);

	if (e != NULL) {
		char *name = (char *)e + size;
		memcpy(name, k->name, k->len); /* the NUL is calloc's */
		e->node.hash = k->hash;
		e->len = k->len;
		e->name = name;
	}
	return e;
}

struct tr__shard *
tr__names_shard(struct tr__names *t, uint64_t hash)
{
	/* The top bits: the low ones pick the bucket inside the shard. */
	return &t->shards[hash >> (64u - TR__NAMES_BITS)];
}

void *
tr__names_find(const struct tr__name_key *k)
{
	struct tr__hnode *n = tr__hash_chain(&k->sh->tab, k->hash);

	for (; n != NULL; n = n->next) {
		/* The node is the entry's first member. */
		struct tr__name *e = (struct tr__name *)n;
		if (n->hash == k->hash && e->len == k->len &&
		    memcmp(e->name, k->name, k->len) == 0) {
			return e;
		}
	}
	return NULL;
}

void
tr__names_insert(struct tr__names *t, struct tr__name *e)
{
	struct tr__shard *sh = tr__names_shard(t, e->node.hash);

	/* Readers wait for a doubling, which happens log2(names) times:
	 * zeroing the new buckets costs what the rehash does. */
	pthread_rwlock_wrlock(&sh->lock);
	tr__hash_grow(&sh->tab);
	tr__hash_link(&sh->tab, &e->node);
	pthread_rwlock_unlock(&sh->lock);
}

void
tr__names_remove(struct tr__names *t, struct tr__name *e)
{
	struct tr__shard *sh = tr__names_shard(t, e->node.hash);

	pthread_rwlock_wrlock(&sh->lock);
	tr__hash_unlink(&sh->tab, &e->node);
	pthread_rwlock_unlock(&sh->lock);
}
