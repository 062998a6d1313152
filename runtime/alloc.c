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
#include <pthread.h>
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

/*
 * glibc's free() shrinks a thread's arena as soon as 128 KiB at its top
 * are free: an madvise() that flushes the TLB of every core running the
 * process, and the next malloc() faults the pages in again. A worker
 * that frees a burst of write buffers each pass of its loop paid that
 * every pass (15% of the chat server's CPU, see docs/BENCHMARKS.md).
 * The runtime gives memory back itself when it goes idle, so free()
 * need not: trim only past 64 MiB, and take blocks up to glibc's largest
 * mmap threshold (32 MiB) from the arenas, where they are reused, rather
 * than from mmap() and munmap() each time. Setting the trim threshold
 * turns off glibc's own adjustment of both, hence the second call.
 */
static void
tune_once(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (getenv("MALLOC_TRIM_THRESHOLD_") != NULL ||
	    getenv("MALLOC_MMAP_THRESHOLD_") != NULL ||
	    (t != NULL && strstr(t, "glibc.malloc.") != NULL)) {
		return; /* the user tuned it: theirs to decide */
	}
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
}

void
tr__alloc_tune(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, tune_once);
}
#else
void
tr__alloc_give_back(void)
{
}

void
tr__alloc_tune(void)
{
}
#endif
