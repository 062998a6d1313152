/*
 * Per-thread set-up of the runtime's own threads: names, SIGPIPE and
 * CPU pinning.
 * Threads: the calling one. A name is a debugging aid only: failure (a
 * name too long, a platform without the call) changes nothing else.
 */
#include <pthread.h>
#include <sched.h>
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

bool
tr__thread_pin(unsigned index)
{
	cpu_set_t allowed, one;

	if (pthread_getaffinity_np(pthread_self(), sizeof(allowed), &allowed) !=
	    0) {
		return false;
	}
	int n = CPU_COUNT(&allowed);
	if (n <= 0) {
		return false;
	}
	unsigned want = index % (unsigned)n;
	CPU_ZERO(&one);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &allowed) && want-- == 0) {
			CPU_SET(cpu, &one);
			break;
		}
	}
	return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}
