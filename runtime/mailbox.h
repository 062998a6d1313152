/*
 * Actor mailbox: an intrusive multi-producer single-consumer queue in which
 * a send is one atomic exchange, after Dmitry Vyukov's MPSC queue and Pony's
 * messageq. Bit 0 of the head pointer means "empty and not scheduled":
 * the one sender whose exchange returns a tagged pointer is the one that
 * must schedule the actor, so exactly one sender wakes an idle actor.
 *
 * Threads: push from any thread; pop and mark_empty only by the thread
 * that currently runs the actor (the consumer).
 */
#ifndef TR_RUNTIME_MAILBOX_H
#define TR_RUNTIME_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tr__mnode {
	_Atomic(struct tr__mnode *) next;
};

struct tr__mailbox {
	_Atomic(uintptr_t) head; /* last node pushed | 1 if empty+unscheduled */
	struct tr__mnode *tail; /* consumer: the node before the next message */
	struct tr__mnode stub; /* the first tail, so the queue is never empty */
};

/* Empty and not scheduled. Does not allocate; cannot fail. */
void tr__mailbox_init(struct tr__mailbox *mb);

/*
 * Append @node. Returns true when the mailbox was empty and unscheduled:
 * the caller must then schedule the actor.
 */
static inline bool
tr__mailbox_push(struct tr__mailbox *mb, struct tr__mnode *node)
{
	atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
	/*
	 * acq_rel: the release half publishes the node's contents to the
	 * consumer's acquire in tr__mailbox_pop (through prev->next below);
	 * the acquire half pairs with the release CAS in mark_empty, so the
	 * sender that schedules the actor sees everything its last turn did.
	 */
	uintptr_t prev = atomic_exchange_explicit(&mb->head, (uintptr_t)node,
						  memory_order_acq_rel);
	struct tr__mnode *p = (struct tr__mnode *)(prev & ~(uintptr_t)1);
	/* release: pairs with the acquire load of tail->next in pop. */
	atomic_store_explicit(&p->next, node, memory_order_release);
	return (prev & 1) != 0;
}

/*
 * Take the next node, or NULL when none is visible. The node returned stays
 * owned by the mailbox as its new tail until the following pop; the node it
 * replaces is returned through @retired (NULL for the stub) and the caller
 * frees it.
 */
static inline struct tr__mnode *
tr__mailbox_pop(struct tr__mailbox *mb, struct tr__mnode **retired)
{
	struct tr__mnode *tail = mb->tail;
	/* acquire: pairs with the release store of p->next in push. */
	struct tr__mnode *next =
		atomic_load_explicit(&tail->next, memory_order_acquire);

	*retired = NULL;
	if (next == NULL) {
		return NULL;
	}
	mb->tail = next;
	if (tail != &mb->stub) {
		*retired = tail;
	}
	return next;
}

/*
 * Try to go idle: succeeds only if nothing was pushed since the last pop.
 * After success the consumer must not touch the mailbox again; the next
 * push schedules the actor. On failure the actor stays scheduled.
 */
static inline bool
tr__mailbox_mark_empty(struct tr__mailbox *mb)
{
	uintptr_t tail = (uintptr_t)mb->tail;
	uintptr_t expect = tail;

	/*
	 * release: pairs with the acquire half of the exchange in push, so
	 * the sender that reschedules us (and the worker it hands us to) sees
	 * all writes of this turn.
	 */
	return atomic_compare_exchange_strong_explicit(
		&mb->head, &expect, tail | 1, memory_order_release,
		memory_order_relaxed);
}

/* True when nothing is queued (consumer only; a racing push may follow). */
static inline bool
tr__mailbox_is_empty(struct tr__mailbox *mb)
{
	return atomic_load_explicit(&mb->tail->next, memory_order_acquire) ==
	       NULL;
}

#endif /* TR_RUNTIME_MAILBOX_H */
