/*
 * Per-thread set-up of the runtime's own threads: names and SIGPIPE.
 * Threads: the calling one. A name is a debugging aid only: failure (a
 * name too long, a platform without the call) changes nothing else.
 */
#include <pthread.h>
#include <signal.h>
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

void
tr__thread_block_sigpipe(void)
{
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
}
