/*
 * Dropping a reference, shared by the standard actors (internal; not
 * installed). A service and its own actor (the watch set, the rate
 * limiter) and a published subscriber list (pubsub) are freed by the
 * last of their holders to let go.
 *
 * Threads: any.
 */
#ifndef TR_ACTORS_REF_H
#define TR_ACTORS_REF_H

#include <stdatomic.h>
#include <stdbool.h>

/* Drop one of @refs. Return: true for the last one; the caller frees. */
static inline bool
tr__ref_put(atomic_uint *refs)
{
	/*
	 * acq_rel: the release orders this holder's reads and writes of the
	 * object before the decrement; the acquire of the last decrement
	 * pairs with every other holder's release, so the one that frees
	 * comes after all of them.
	 */
	return atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel) == 1;
}

#endif /* TR_ACTORS_REF_H */
