/*
 * Linux futex wait/wake for the worker park path. Threads: any.
 * FUTEX_PRIVATE: the words live in this process only.
 */
#include "runtime/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void
tr__futex_wait(_Atomic uint32_t *word, uint32_t expect)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL,
		NULL, 0);
}

void
tr__futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
		0);
}
