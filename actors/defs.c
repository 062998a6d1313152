/* Derived actor definitions (see defs.h). */
#include "defs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool
def_same(const tr_actor_def *a, const tr_actor_def *b)
{
	return a->name == b->name && a->state_size == b->state_size &&
	       a->init == b->init && a->teardown == b->teardown &&
	       a->handle == b->handle && a->mailbox_bound == b->mailbox_bound &&
	       a->arg_size == b->arg_size;
}

static const struct tr__def *
find(const struct tr__def *d, const tr_actor_def *user)
{
	for (; d != NULL; d = d->next) {
		if (def_same(&d->user, user)) {
			return d;
		}
	}
	return NULL;
}

const struct tr__def *
tr__def_get(_Atomic(struct tr__def *) *list, const tr_actor_def *user,
	    tr__def_derive derive)
{
	/* acquire: pairs with the release CAS below, so the entries walked
	 * are complete. */
	struct tr__def *head = atomic_load_explicit(list, memory_order_acquire);
	const struct tr__def *found = find(head, user);
	if (found != NULL) {
		return found;
	}
	struct tr__def *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return NULL;
	}
	memcpy(&d->user, user, sizeof(tr_actor_def));
	d->user.size = sizeof(tr_actor_def);
	d->def.size = sizeof(tr_actor_def);
	derive(&d->user, &d->def);
	for (;;) {
		d->next = head;
		/* acq_rel: the release half publishes *d to the acquire load
		 * above (C11 wants the success order at least as strong as the
		 * failure one); on failure, acquire the newer head, whose
		 * entries we then walk. */
		if (atomic_compare_exchange_weak_explicit(
			    list, &head, d, memory_order_acq_rel,
			    memory_order_acquire)) {
			return d;
		}
		found = find(head, user);
		if (found != NULL) {
			free(d);
			return found;
		}
	}
}
