/*
 * The monotonic clock of the standard actors (internal; not installed).
 * The rate limiter's bucket, the circuit breaker's recovery time and the
 * supervisor's restart window read it; all need time that never steps
 * back when the wall clock is set.
 *
 * Threads: any.
 */
#ifndef TR_ACTORS_CLOCK_H
#define TR_ACTORS_CLOCK_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t tr__clock_ns(void);
/* Milliseconds of CLOCK_MONOTONIC, rounded down. */
uint64_t tr__clock_ms(void);

#endif /* TR_ACTORS_CLOCK_H */
