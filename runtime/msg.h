/*
 * Message nodes: the mailbox link, the receiver's pid, the public tr_msg
 * view, the payload's free function, and (for copied sends) the payload
 * itself inline, so a copying send is one allocation.
 *
 * Nodes of the size classes are recycled through per-thread caches (no
 * lock, no atomic: a cache belongs to one worker or one I/O loop). A node
 * freed on another thread than the one that allocated it simply joins
 * that thread's cache. Other foreign threads pass a NULL cache and use
 * the allocator.
 */
#ifndef TR_RUNTIME_MSG_H
#define TR_RUNTIME_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_stack.h>

#include <troupe/msg.h>

#include "runtime/mailbox.h"

#define TR__MSG_CLASSES 4
#define TR__MSG_BIG     0xFFFFu /* not from a size class */

/* Internal flag bits in tr__msg.iflags. */
#define TR__MSG_I_COUNTED 0x1u /* counted in the receiver's mb_len */
/*
 * The payload lies inline in the node but has a release hook: free_fn
 * runs on m.data when the payload is freed (after the handler, or as a
 * dead letter) and must not free the bytes, which go with the node.
 */
#define TR__MSG_I_HOOK 0x2u

struct tr__msg {
	struct tr__mnode node;
	uint64_t to; /* receiver pid value; checked against the slot on pop */
	tr_msg m;
	tr_free_fn free_fn;
	uint16_t cls;
	uint16_t iflags;
	uint32_t alloc_size; /* for TR__MSG_BIG nodes */
	/* A request's deadline on tr__clock_ns(), 0 for none: its holder's
	 * watch expires with it (see request.h). In what was padding. */
	uint64_t deadline;
	_Alignas(16) unsigned char data[];
};

struct tr__msg_cache {
	struct tr__msg *head; /* linked through node.next (relaxed use) */
	uint32_t count;
	ck_stack_t *spare; /* the runtime's shared batches of this class */
	_Atomic int32_t *nspare; /* batches in spare (approximate) */
};

/*
 * Shared spare nodes, one stack of batches per class. A worker whose cache
 * overflows pushes a batch of nodes (one CAS); a worker whose cache is
 * empty takes every batch at once (one exchange). Push-one / pop-all has no
 * ABA problem, and the traffic is one atomic per batch, not per message.
 * This is what lets a producer on one worker reuse the nodes its consumer
 * on another worker frees.
 */
struct tr__msg_pool {
	ck_stack_t spare[TR__MSG_CLASSES];
	/*
	 * Batches held per class, capped (about 32 MiB a class): past the
	 * cap a spilled batch goes back to malloc, so a burst (a few
	 * thousand connections' reads in flight, say) does not keep its
	 * nodes for the life of the runtime. Relaxed, so a taker may count
	 * its batches off before their giver counted them on: the value can
	 * dip below zero for a moment, hence signed.
	 */
	_Atomic int32_t nspare[TR__MSG_CLASSES];
};

void tr__msg_pool_init(struct tr__msg_pool *pool);
void tr__msg_pool_fini(struct tr__msg_pool *pool);
/* Free every spare batch (the runtime went idle). Any thread. */
void tr__msg_pool_trim(struct tr__msg_pool *pool);
/* Point a thread's caches (TR__MSG_CLASSES of them) at the pool. */
void
tr__msg_cache_init(struct tr__msg_cache *caches, struct tr__msg_pool *pool);

/*
 * The caches of a thread that is not a worker but sends many messages (an
 * I/O loop): set once on that thread, cleared before the caches are freed.
 * NULL for every other thread.
 */
struct tr__msg_cache *tr__msg_thread_cache(void);
void tr__msg_thread_cache_set(struct tr__msg_cache *caches);

/*
 * Allocate a node with room for @len inline bytes, iflags clear. NULL when
 * out of memory.
 */
struct tr__msg *tr__msg_alloc(struct tr__msg_cache *caches, size_t len);

/* Free a node (not its pointer payload). */
void tr__msg_free(struct tr__msg_cache *caches, struct tr__msg *msg);

/*
 * Free the pointer payload, if the node has one, or run its release hook,
 * and clear the flag so this happens once only. The node itself stays.
 */
static inline void
tr__msg_free_payload(struct tr__msg *msg)
{
	if (msg->m.flags & TR_MSG_F_PTR) {
		if (msg->free_fn != NULL && msg->m.data != NULL) {
			msg->free_fn((void *)(uintptr_t)msg->m.data);
		}
		msg->m.flags &= ~TR_MSG_F_PTR;
	} else if (msg->iflags & TR__MSG_I_HOOK) {
		msg->iflags &= (uint16_t)~TR__MSG_I_HOOK;
		msg->free_fn((void *)(uintptr_t)msg->m.data);
	}
}

/* Free a node and its pointer payload if it has one. */
void tr__msg_discard(struct tr__msg_cache *caches, struct tr__msg *msg);

/* Release every cached node. */
void tr__msg_cache_fini(struct tr__msg_cache *caches);

static inline struct tr__msg *
tr__msg_of(struct tr__mnode *n)
{
	return (struct tr__msg *)(void *)n;
}

#endif /* TR_RUNTIME_MSG_H */
