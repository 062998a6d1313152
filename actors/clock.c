/* The monotonic clock of the standard actors (see clock.h). */
#include "clock.h"

#include <time.h>

uint64_t
tr__clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
tr__clock_ms(void)
{
	/* Equal to tv_sec * 1000 + tv_nsec / 10^6: tv_nsec < 10^9. */
	return tr__clock_ns() / 1000000u;
}
