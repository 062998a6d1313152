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
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC (milliseconds: divide by 10^6, which
 * rounds down). */
static inline uint64_t
tr__clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* TR_ACTORS_CLOCK_H */
