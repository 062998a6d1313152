/*
 * The distribution layer's allocations (net/alloc.h): malloc and its
 * kin, after a countdown that tests set.
 */
#include "net/alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

static _Atomic uint64_t countdown; /* 0: no failure armed */
static _Atomic uint64_t count;

static bool
should_fail(void)
{
	atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
	if (atomic_load_explicit(&countdown, memory_order_relaxed) == 0) {
		return false;
	}
	return atomic_fetch_sub_explicit(&countdown, 1, memory_order_relaxed) ==
	       1;
}

void *
trn_malloc(size_t size)
{
	return should_fail() ? NULL : malloc(size);
}

void *
trn_calloc(size_t n, size_t size)
{
	return should_fail() ? NULL : calloc(n, size);
}

void *
trn_realloc(void *p, size_t size)
{
	return should_fail() ? NULL : realloc(p, size);
}

void
trn_alloc_fail_after(uint64_t n)
{
	atomic_store_explicit(&countdown, n, memory_order_relaxed);
}

uint64_t
trn_alloc_count(void)
{
	return atomic_load_explicit(&count, memory_order_relaxed);
}
