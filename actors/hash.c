/* Hashing and one chained hash table (see hash.h). */
#include "hash.h"

#include <stdlib.h>

uint64_t
tr__hash_u64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebu;
	x ^= x >> 31;
	return x;
}

uint64_t
tr__hash_bytes(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 1099511628211u;
	}
	return tr__hash_u64(h);
}

tr_err
tr__hash_init(struct tr__htab *t, size_t nbuckets)
{
	t->buckets = calloc(nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		return TR_ENOMEM;
	}
	t->nbuckets = nbuckets;
	t->count = 0;
	return TR_OK;
}

void
tr__hash_fini(struct tr__htab *t, void (*free_node)(struct tr__hnode *n))
{
	for (size_t b = 0; b < t->nbuckets && free_node != NULL; b++) {
		struct tr__hnode *n = t->buckets[b];
		while (n != NULL) {
			struct tr__hnode *next = n->next;
			free_node(n);
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
}

void
tr__hash_grow(struct tr__htab *t)
{
	size_t nb = t->nbuckets * 2;
	struct tr__hnode **fresh =
		t->count + 1 <= t->nbuckets ? NULL : calloc(nb, sizeof(*fresh));

	if (fresh == NULL) {
		return;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct tr__hnode *n = t->buckets[i];
		while (n != NULL) {
			struct tr__hnode *next = n->next;
			size_t b = n->hash & (nb - 1);
			n->next = fresh[b];
			fresh[b] = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = fresh;
	t->nbuckets = nb;
}

void
tr__hash_link(struct tr__htab *t, struct tr__hnode *n)
{
	size_t b = n->hash & (t->nbuckets - 1);

	n->next = t->buckets[b];
	t->buckets[b] = n;
	t->count++;
}

void
tr__hash_unlink(struct tr__htab *t, struct tr__hnode *n)
{
	struct tr__hnode **pp = &t->buckets[n->hash & (t->nbuckets - 1)];

	while (*pp != n) {
		pp = &(*pp)->next;
	}
	*pp = n->next;
	t->count--;
}
