/*
 * idle-rss: does memory go back after a burst of load?
 *
 *     build/release/tests/bench/idle-rss [actors] [messages per actor]
 *
 * Spawns the actors, sends each its messages (1 KiB copies) from a
 * foreign thread while they are held in a slow first handler, so their
 * mailboxes fill up, then lets them drain and waits until the runtime is
 * idle. Prints one JSON line with the resident set size (from
 * /proc/self/statm) before the load, at its peak (every message queued),
 * right after the drain, and 10 s later. Each message is counted: the run
 * fails unless every one was handled.
 */
#include <troupe/troupe.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MSG_WORK = 1, PAYLOAD = 1024 };

static atomic_bool hold = true;
static atomic_uint_fast64_t handled;

static void
nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double
rss_mib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
			resident = 0;
		}
		fclose(f);
	}
	return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type != MSG_WORK) {
		return;
	}
	while (atomic_load_explicit(&hold, memory_order_acquire)) {
		nap_ms(1);
	}
	atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
}

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.handle = sink_handle,
};

int
main(int argc, char **argv)
{
	unsigned actors = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	unsigned per = argc > 2 ? (unsigned)atoi(argv[2]) : 500;
	static char payload[PAYLOAD];
	tr_runtime *rt;
	tr_pid *pids = calloc(actors, sizeof(*pids));

	if (pids == NULL || actors == 0 || per == 0 ||
	    tr_runtime_create(NULL, &rt) != TR_OK ||
	    tr_runtime_start(rt) != TR_OK) {
		fprintf(stderr, "idle-rss: cannot start\n");
		return 1;
	}
	nap_ms(200);
	double before = rss_mib();
	for (unsigned i = 0; i < actors; i++) {
		if (tr_spawn(tr_runtime_ctx(rt), &sink_def, NULL, &pids[i]) !=
		    TR_OK) {
			fprintf(stderr, "idle-rss: spawn failed\n");
			return 1;
		}
	}
	uint64_t sent = 0;
	for (unsigned k = 0; k < per; k++) {
		for (unsigned i = 0; i < actors; i++) {
			if (tr_send(tr_runtime_ctx(rt), pids[i], MSG_WORK,
				    payload, sizeof(payload)) == TR_OK) {
				sent++;
			}
		}
	}
	double peak = rss_mib();
	atomic_store_explicit(&hold, false, memory_order_release);
	if (tr_runtime_wait_idle(rt, 120000) != TR_OK) {
		fprintf(stderr, "idle-rss: never idle\n");
		return 1;
	}
	double drained = rss_mib();
	nap_ms(10000);
	double after = rss_mib();
	uint64_t got = atomic_load(&handled);
	printf("{\"actors\":%u,\"messages\":%llu,\"rss_before_mib\":%.1f,"
	       "\"rss_peak_mib\":%.1f,\"rss_drained_mib\":%.1f,"
	       "\"rss_10s_after_mib\":%.1f}\n",
	       actors, (unsigned long long)sent, before, peak, drained, after);
	tr_runtime_stop(rt);
	tr_runtime_join(rt);
	tr_runtime_destroy(rt);
	free(pids);
	if (got != sent) {
		fprintf(stderr, "idle-rss: %llu sent, %llu handled\n",
			(unsigned long long)sent, (unsigned long long)got);
		return 1;
	}
	return 0;
}
