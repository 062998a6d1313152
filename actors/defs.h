/*
 * Derived actor definitions, shared by the standard actors (internal; not
 * installed). The supervisor and the pool spawn children from a
 * definition derived from the user's (an init that acknowledges, a
 * mailbox bound that makes the queue measurable). A child may outlive
 * the actor that spawned it, so a derived definition is made once per
 * distinct user definition and kept for the life of the process, in a
 * lock-free push-only list per module.
 */
#ifndef TR_ACTORS_DEFS_H
#define TR_ACTORS_DEFS_H

#include <stdatomic.h>

#include <troupe/troupe.h>

struct tr__def {
	struct tr__def *next;
	tr_actor_def user; /* the key, compared by value */
	tr_actor_def def;  /* what children are spawned with */
};

/* Fill @out (zeroed, size set) from @user. */
typedef void (*tr__def_derive)(const tr_actor_def *user, tr_actor_def *out);

/*
 * The entry of @list for @user, made with @derive on first use. Entries
 * are compared by value, so a definition at an address that held another
 * one earlier gets an entry of its own.
 * Thread: any. Return: the entry, or NULL without memory.
 */
const struct tr__def *
tr__def_get(_Atomic(struct tr__def *) *list, const tr_actor_def *user,
	    tr__def_derive derive);

#endif /* TR_ACTORS_DEFS_H */
