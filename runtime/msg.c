/*
 * Message node allocation. Threads: the cache array belongs to one worker
 * and is only touched by it; NULL caches (foreign threads) go straight to
 * the allocator. Invariant: a cached node is never referenced elsewhere.
 */
#include "runtime/msg.h"

#include "runtime/alloc.h"
#include "runtime/internal.h"

/* 96 bytes hold a 32-byte payload: ints, pids and small structs. */
static const uint32_t class_size[TR__MSG_CLASSES] = { 96, 192, 512 };

/*
 * Nodes a worker keeps per class. 4096 x 96 B is 384 KiB: enough to absorb
 * the burst of a producer that outruns its consumer on another worker
 * without handing memory back to malloc on every message.
 */
#define CACHE_MAX 4096u

struct tr__msg *
tr__msg_alloc(struct tr__msg_cache *caches, size_t len)
{
	size_t need = sizeof(struct tr__msg) + len;
	unsigned cls = TR__MSG_CLASSES;
	struct tr__msg *msg;

	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		if (need <= class_size[i]) {
			cls = i;
			break;
		}
	}
	if (cls == TR__MSG_CLASSES) {
		msg = tr__alloc(need);
		if (msg == NULL) {
			return NULL;
		}
		msg->cls = TR__MSG_BIG;
		msg->alloc_size = (uint32_t)need;
		return msg;
	}
	if (caches != NULL && caches[cls].head != NULL) {
		msg = caches[cls].head;
		caches[cls].head = tr__msg_of(atomic_load_explicit(
			&msg->node.next, memory_order_relaxed));
		caches[cls].count--;
	} else {
		msg = tr__alloc(class_size[cls]);
		if (msg == NULL) {
			return NULL;
		}
	}
	msg->cls = (uint16_t)cls;
	msg->alloc_size = class_size[cls];
	return msg;
}

void
tr__msg_free(struct tr__msg_cache *caches, struct tr__msg *msg)
{
	if (msg->cls != TR__MSG_BIG && caches != NULL &&
	    caches[msg->cls].count < CACHE_MAX) {
		struct tr__msg_cache *c = &caches[msg->cls];

		atomic_store_explicit(&msg->node.next,
				      (struct tr__mnode *)(void *)c->head,
				      memory_order_relaxed);
		c->head = msg;
		c->count++;
		return;
	}
	tr__free(msg, msg->alloc_size);
}

void
tr__msg_discard(struct tr__msg_cache *caches, struct tr__msg *msg)
{
	if ((msg->m.flags & TR_MSG_F_PTR) && msg->free_fn != NULL &&
	    msg->m.data != NULL) {
		msg->free_fn((void *)(uintptr_t)msg->m.data);
	}
	tr__msg_free(caches, msg);
}

void
tr__msg_cache_fini(struct tr__msg_cache *caches)
{
	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		struct tr__msg *m = caches[i].head;

		while (m != NULL) {
			struct tr__msg *next = tr__msg_of(atomic_load_explicit(
				&m->node.next, memory_order_relaxed));
			tr__free(m, class_size[i]);
			m = next;
		}
		caches[i].head = NULL;
		caches[i].count = 0;
	}
}
