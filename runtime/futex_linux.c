/*
 * Linux futex wait/wake for the worker park path. Threads: any.
 * FUTEX_PRIVATE: the words live in this process only.
 */
#include "runtime/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void
tr__futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t timeout_ns)
{
	struct timespec ts = { (time_t)(timeout_ns / 1000000000u),
			       (long)(timeout_ns % 1000000000u) };

	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect,
		timeout_ns != 0 ? &ts : NULL, NULL, 0);
}

void
tr__futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
		0);
}
