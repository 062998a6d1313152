/*
 * Thread names for the runtime's own threads. Threads: the named one.
 * A name is a debugging aid only: failure (a name too long, a platform
 * without the call) changes nothing else.
 */
#include <pthread.h>
#include <stdio.h>

#include "runtime/internal.h"

void
tr__thread_name(const char *prefix, int index)
{
	char name[16]; /* the kernel keeps 15 characters and the NUL */

	if (index < 0) {
		snprintf(name, sizeof(name), "%s", prefix);
	} else {
		snprintf(name, sizeof(name), "%s%d", prefix, index);
	}
	(void)pthread_setname_np(pthread_self(), name);
}
