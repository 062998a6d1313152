/*
 * Tick calibration: measure the tick counter against CLOCK_MONOTONIC over
 * 2 ms once per process (pthread_once), the first time a runtime is made.
 */
#include "runtime/clock.h"

#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t ticks_per_us = 1000;

/*
 * One reading of both clocks, taken close together: the tick counter
 * between two clock reads that are less than READ_PAIR_NS apart, so that
 * a preemption between the two reads cannot pair a tick count with a
 * clock time from much later. Gives up after a few tries and takes the
 * last pair (a machine that busy is not worth stalling start-up for).
 */
#define READ_PAIR_NS 2000u

static void
read_pair(uint64_t *ns, uint64_t *ticks)
{
	for (int i = 0; i < 100; i++) {
		uint64_t a = tr__clock_ns();
		*ticks = tr__ticks();
		uint64_t b = tr__clock_ns();
		*ns = a + (b - a) / 2;
		if (b - a < READ_PAIR_NS) {
			return;
		}
	}
}

static void
calibrate(void)
{
#if defined(__x86_64__)
	uint64_t n0, t0, n1, t1;

	read_pair(&n0, &t0);
	do {
		read_pair(&n1, &t1);
	} while (n1 - n0 < 2000000u);
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
