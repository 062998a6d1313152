/*
 * All allocations of the runtime go through tr__alloc/tr__free, which count
 * the bytes outstanding so that tests can prove nothing leaked, and which a
 * test can make fail on purpose (tr__alloc_fail_after).
 */
#ifndef TR_RUNTIME_ALLOC_H
#define TR_RUNTIME_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *tr__alloc(size_t size);
void *tr__calloc(size_t size);
void tr__free(void *p, size_t size);

/* Bytes allocated through tr__alloc and not yet freed (all runtimes). */
int64_t tr__alloc_outstanding(void);

/* Make the n-th allocation from now fail (n >= 1); 0 disarms. Tests only. */
void tr__alloc_fail_after(uint64_t n);

/*
 * Return free memory to the operating system (the runtime went idle).
 * Slow (it walks the allocator's arenas): never on a hot path.
 */
void tr__alloc_give_back(void);

/*
 * Set the allocator up for a runtime, once per process: with glibc, keep
 * freed memory in the arenas instead of returning it on every free()
 * (tr__alloc_give_back() returns it when the runtime goes idle). Leaves
 * the allocator alone when the environment sets its thresholds.
 */
void tr__alloc_tune(void);

#endif /* TR_RUNTIME_ALLOC_H */
