/*
 * Sleeping and waking one thread on a 32-bit word (Linux futex; see
 * futex_linux.c). Wait returns when the word differs from @expect, on a
 * wake, or spuriously; callers loop on their own condition.
 */
#ifndef TR_RUNTIME_FUTEX_H
#define TR_RUNTIME_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

/* @timeout_ns 0 waits without a time limit. */
void
tr__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t timeout_ns);
void tr__futex_wake(_Atomic uint32_t *word);

#endif /* TR_RUNTIME_FUTEX_H */
