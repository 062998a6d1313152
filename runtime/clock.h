/*
 * A cheap monotonic tick counter for per-handler timing (slow handlers,
 * scheduling delay). On x86-64 it is the TSC, read in about 8 ns instead of
 * about 20 ns for clock_gettime; elsewhere it is CLOCK_MONOTONIC in ns.
 * tr__clock_init() calibrates ticks per microsecond once per process.
 */
#ifndef TR_RUNTIME_CLOCK_H
#define TR_RUNTIME_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
tr__clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
tr__ticks(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#else
	return tr__clock_ns();
#endif
}

/* Calibrate (idempotent, thread-safe). */
void tr__clock_init(void);

/* Ticks per microsecond, after tr__clock_init(). */
uint64_t tr__ticks_per_us(void);

static inline uint64_t
tr__ticks_to_ns(uint64_t ticks)
{
	return ticks * 1000u / tr__ticks_per_us();
}

#endif /* TR_RUNTIME_CLOCK_H */
