/*
 * Message node allocation. Threads: a cache array belongs to one thread
 * (a worker, or an I/O loop through tr__msg_thread_cache) and is only
 * touched by it; NULL caches (other foreign threads) go straight to the
 * allocator. Invariant: a cached node is never referenced elsewhere.
 */
#include <ck_pr.h>

#include "runtime/msg.h"

#include "runtime/alloc.h"
#include "runtime/internal.h"

/*
 * 112 bytes hold a 32-byte payload: ints, pids and small structs. 2048
 * holds a socket read of a few dozen request lines, so a TCP connection's
 * DATA usually needs no malloc on the I/O thread and no free on a worker.
 */
static const uint32_t class_size[TR__MSG_CLASSES] = { 112, 192, 512, 2048 };

/*
 * Nodes a thread keeps per class. 4096 x 112 B is 448 KiB: enough to absorb
 * the burst of a producer that outruns its consumer on another worker
 * without handing memory back to malloc on every message. The larger
 * classes keep about 1 MiB each.
 */
static const uint32_t class_cap[TR__MSG_CLASSES] = { 4096, 4096, 2048, 512 };
/* Nodes per batch handed to the shared pool (at most any cap). */
#define BATCH 256u
/* Batches the shared pool keeps per class: 32 MiB, and at least 64. */
static const int32_t pool_cap[TR__MSG_CLASSES] = { 1170, 682, 256, 64 };

_Static_assert(BATCH <= 512, "a batch must fit in every class's cache");

/*
 * The cache of the calling thread when it is not a worker (an I/O loop
 * sets one; other foreign threads have none and use the allocator).
 */
static _Thread_local struct tr__msg_cache *tl_cache;

struct tr__msg_cache *
tr__msg_thread_cache(void)
{
	return tl_cache;
}

void
tr__msg_thread_cache_set(struct tr__msg_cache *caches)
{
	tl_cache = caches;
}

/*
 * A batch is a chain of nodes; its header (stack entry, last node, count)
 * lives in the first node's payload area, which is unused while the node
 * is spare, so taking a batch never walks its (cold) nodes.
 */
struct batch_hdr {
	ck_stack_entry_t link;
	struct tr__msg *last;
	uint32_t count;
};

_Static_assert(sizeof(struct batch_hdr) + sizeof(struct tr__msg) <= 112,
	       "a batch header must fit in the smallest node's payload");

static struct batch_hdr *
batch_hdr(struct tr__msg *first)
{
	return (struct batch_hdr *)(void *)first->data;
}

static struct tr__msg *
batch_first(ck_stack_entry_t *e)
{
	return (struct tr__msg *)(void *)((char *)e -
					  offsetof(struct tr__msg, data) -
					  offsetof(struct batch_hdr, link));
}

static struct tr__msg *
next_of(struct tr__msg *m)
{
	return tr__msg_of(
		atomic_load_explicit(&m->node.next, memory_order_relaxed));
}

static void
set_next(struct tr__msg *m, struct tr__msg *next)
{
	atomic_store_explicit(&m->node.next, (struct tr__mnode *)(void *)next,
			      memory_order_relaxed);
}

void
tr__msg_pool_init(struct tr__msg_pool *pool)
{
	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		ck_stack_init(&pool->spare[i]);
		atomic_init(&pool->nspare[i], 0);
	}
}

void
tr__msg_cache_init(struct tr__msg_cache *caches, struct tr__msg_pool *pool)
{
	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		caches[i].head = NULL;
		caches[i].count = 0;
		caches[i].spare = &pool->spare[i];
		caches[i].nspare = &pool->nspare[i];
	}
}

/* Take every shared batch of this class into the cache. */
static bool
refill(struct tr__msg_cache *c)
{
	if (ck_pr_load_ptr(&c->spare->head) == NULL) {
		return false;
	}
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(c->spare);
	int32_t taken = 0;
	while (e != NULL) {
		ck_stack_entry_t *next_batch = e->next;
		struct tr__msg *first = batch_first(e);
		struct batch_hdr *h = batch_hdr(first);

		set_next(h->last, c->head);
		c->head = first;
		c->count += h->count;
		taken++;
		e = next_batch;
	}
	if (taken > 0) {
		atomic_fetch_sub_explicit(c->nspare, taken,
					  memory_order_relaxed);
	}
	return taken > 0;
}

static void free_chain(struct tr__msg *m, unsigned cls);

/* Hand BATCH nodes from the cache to the shared pool, or to malloc. */
static void
spill(struct tr__msg_cache *c, unsigned cls)
{
	struct tr__msg *first = c->head, *last = first;

	for (unsigned i = 1; i < BATCH; i++) {
		last = next_of(last);
	}
	c->head = next_of(last);
	c->count -= BATCH;
	set_next(last, NULL);
	/* The count may pass the cap by a batch or two in a race: fine. */
	if (atomic_load_explicit(c->nspare, memory_order_relaxed) >=
	    pool_cap[cls]) {
		free_chain(first, cls);
		return;
	}
	atomic_fetch_add_explicit(c->nspare, 1, memory_order_relaxed);
	struct batch_hdr *h = batch_hdr(first);
	h->last = last;
	h->count = BATCH;
	ck_stack_push_upmc(c->spare, &h->link);
}

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
		msg->iflags = 0;
		msg->m.ref.v = 0;
		msg->deadline = 0;
		return msg;
	}
	if (caches != NULL &&
	    (caches[cls].head != NULL || refill(&caches[cls]))) {
		msg = caches[cls].head;
		caches[cls].head = next_of(msg);
		caches[cls].count--;
	} else {
		msg = tr__alloc(class_size[cls]);
		if (msg == NULL) {
			return NULL;
		}
	}
	msg->cls = (uint16_t)cls;
	msg->alloc_size = class_size[cls];
	msg->iflags = 0;
	msg->m.ref.v = 0; /* only requests and replies set it */
	msg->deadline = 0;
	return msg;
}

void
tr__msg_free(struct tr__msg_cache *caches, struct tr__msg *msg)
{
	if (msg->cls != TR__MSG_BIG && caches != NULL) {
		struct tr__msg_cache *c = &caches[msg->cls];

		set_next(msg, c->head);
		c->head = msg;
		if (++c->count > class_cap[msg->cls]) {
			spill(c, msg->cls);
		}
		return;
	}
	tr__free(msg, msg->alloc_size);
}

void
tr__msg_discard(struct tr__msg_cache *caches, struct tr__msg *msg)
{
	tr__msg_free_payload(msg);
	tr__msg_free(caches, msg);
}

static void
free_chain(struct tr__msg *m, unsigned cls)
{
	while (m != NULL) {
		struct tr__msg *next = next_of(m);
		tr__free(m, class_size[cls]);
		m = next;
	}
}

void
tr__msg_cache_fini(struct tr__msg_cache *caches)
{
	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		free_chain(caches[i].head, i);
		caches[i].head = NULL;
		caches[i].count = 0;
	}
}

void
tr__msg_pool_trim(struct tr__msg_pool *pool)
{
	for (unsigned i = 0; i < TR__MSG_CLASSES; i++) {
		ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&pool->spare[i]);
		int32_t n = 0;
		while (e != NULL) {
			ck_stack_entry_t *next = e->next;
			free_chain(batch_first(e), i);
			e = next;
			n++;
		}
		atomic_fetch_sub_explicit(&pool->nspare[i], n,
					  memory_order_relaxed);
	}
}

void
tr__msg_pool_fini(struct tr__msg_pool *pool)
{
	tr__msg_pool_trim(pool);
}
