/*
 * Counting allocator. Threads: any. The counters are relaxed atomics: they
 * are statistics, read by tests once the runtime is quiet. Hot paths
 * (message nodes) keep per-worker caches in msg.c and come here only to
 * refill or trim them, so the atomic add is not paid per message. Debug
 * builds fill freed memory with 0xdb.
 */
#include "runtime/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static _Atomic int64_t outstanding;
static _Atomic uint64_t fail_countdown;

static int
should_fail(void)
{
	if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) == 0) {
		return 0;
	}
	return atomic_fetch_sub_explicit(&fail_countdown, 1,
					 memory_order_relaxed) == 1;
}

void *
tr__alloc(size_t size)
{
	if (should_fail()) {
		return NULL;
	}
	void *p = malloc(size);
	if (p != NULL) {
		atomic_fetch_add_explicit(&outstanding, (int64_t)size,
					  memory_order_relaxed);
	}
	return p;
}

void *
tr__calloc(size_t size)
{
	if (should_fail()) {
		return NULL;
	}
	void *p = calloc(1, size);
	if (p != NULL) {
		atomic_fetch_add_explicit(&outstanding, (int64_t)size,
					  memory_order_relaxed);
	}
	return p;
}

void
tr__free(void *p, size_t size)
{
	if (p == NULL) {
		return;
	}
	atomic_fetch_sub_explicit(&outstanding, (int64_t)size,
				  memory_order_relaxed);
#ifndef NDEBUG
	/*
	 * Poison what is freed, so a use after free by code we cannot
	 * instrument (libuv finishing a close inside a freed record, say)
	 * reads garbage that trips its own checks instead of stale values
	 * that happen to work. 0xdb sets every flag bit libuv tests.
	 */
	memset(p, 0xdb, size);
	/* Keep the compiler from dropping the fill as a dead store. */
	__asm__ __volatile__("" : : "r"(p) : "memory");
#endif
	free(p);
}

int64_t
tr__alloc_outstanding(void)
{
	return atomic_load_explicit(&outstanding, memory_order_relaxed);
}

void
tr__alloc_fail_after(uint64_t n)
{
	atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

#if defined(__GLIBC__)
void
tr__alloc_give_back(void)
{
	/* glibc keeps freed memory in its arenas (one per thread that
	 * allocated); this returns the free pages of all of them. */
	(void)malloc_trim(0);
}
#else
void
tr__alloc_give_back(void)
{
}
#endif
