/*
 * The distribution layer's allocations, through one place so that a test
 * can make the N-th of them fail (tests/net/test_net_fault.c), as
 * tests/fault/fault_alloc.c does for the runtime's. Frees are free().
 * Threads: any.
 */
#ifndef TRN_ALLOC_H
#define TRN_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *trn_malloc(size_t size);
void *trn_calloc(size_t n, size_t size);
void *trn_realloc(void *p, size_t size);

/* Tests: make the @n-th allocation from now fail, once (0: none). */
void trn_alloc_fail_after(uint64_t n);
/* Tests: allocations so far, failed ones included. */
uint64_t trn_alloc_count(void);

#endif /* TRN_ALLOC_H */
