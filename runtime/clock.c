/*
 * Tick calibration: measure the tick counter against CLOCK_MONOTONIC over
 * 2 ms once per process (pthread_once), the first time a runtime is made.
 */
#include "runtime/clock.h"

#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t ticks_per_us = 1000;

static void
calibrate(void)
{
#if defined(__x86_64__)
	uint64_t n0 = tr__clock_ns();
	uint64_t t0 = tr__ticks();
	uint64_t n1;

	do {
		n1 = tr__clock_ns();
	} while (n1 - n0 < 2000000u);
	uint64_t t1 = tr__ticks();
	uint64_t per_us = (t1 - t0) / ((n1 - n0) / 1000u);
	ticks_per_us = per_us == 0 ? 1 : per_us;
#else
	ticks_per_us = 1000;
#endif
}

void
tr__clock_init(void)
{
	pthread_once(&once, calibrate);
}

uint64_t
tr__ticks_per_us(void)
{
	return ticks_per_us;
}
