/*
 * Metrics snapshot and its JSON form. Threads: any. Sums the per-worker
 * counters with relaxed loads (see stats.h); the percentiles come from the
 * merged log2 histogram of sampled scheduling delays, reported as the
 * upper bound of the bucket that holds the percentile.
 */
#include <troupe/metrics.h>

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/io_loop.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"

static uint64_t
percentile(const uint64_t *hist, uint64_t total, unsigned pct)
{
	if (total == 0) {
		return 0;
	}
	uint64_t want = (total * pct + 99) / 100;
	uint64_t seen = 0;

	for (unsigned b = 0; b < TR__HIST_BUCKETS; b++) {
		seen += hist[b];
		if (seen >= want) {
			return (UINT64_C(2) << b) - 1;
		}
	}
	return UINT64_MAX;
}

tr_err
tr_runtime_metrics(tr_runtime *rt, tr_metrics *out)
{
	if (rt == NULL || out == NULL || out->size < sizeof(tr_metrics)) {
		return TR_EINVAL;
	}
	struct tr__stats s;
	size_t size = out->size;

	tr__runtime_sum_stats(rt, &s);
	memset(out, 0, sizeof(*out));
	out->size = size;
	out->actors_spawned = s.spawned;
	out->actors_stopped = s.stopped;
	out->actors_alive = s.spawned - s.stopped;
	out->msgs_sent = s.sent;
	/* Read without a lock, unhandled may briefly be ahead of the
	 * handled count that includes it. */
	out->msgs_handled =
		s.handled > s.unhandled ? s.handled - s.unhandled : 0;
	out->dead_letters = s.dead;
	out->mailbox_full = s.full;
	out->steals = s.steals;
	out->parks = s.parks;
	out->wakes = s.wakes;
	out->slow_handlers = s.slow;
	out->mutes = s.mutes;
	out->io_polls = s.io_polls;
	out->io_takeovers = tr__io_takeovers(rt->io);
	out->msgs_remote_out = s.remote_out;
	out->msgs_remote_in = s.remote_in;
	uint64_t hist[TR__HIST_BUCKETS];
	uint64_t total = 0;
	for (unsigned b = 0; b < TR__HIST_BUCKETS; b++) {
		hist[b] =
			atomic_load_explicit(&s.hist[b], memory_order_relaxed);
		total += hist[b];
	}
	out->sched_delay_samples = total;
	out->sched_delay_p50_ns = percentile(hist, total, 50);
	out->sched_delay_p99_ns = percentile(hist, total, 99);
	out->blocking_pending = atomic_load_explicit(&rt->blocking.pending,
						     memory_order_relaxed);
	out->workers = rt->nworkers;
	for (unsigned i = 0; i < rt->nworkers; i++) {
		out->runq_len[i] = tr__sched_runq_len(rt, i);
	}
	return TR_OK;
}

char *
tr_runtime_metrics_json(tr_runtime *rt)
{
	tr_metrics m = { .size = sizeof(m) };

	if (tr_runtime_metrics(rt, &m) < 0) {
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	if (o == NULL) {
		return NULL;
	}
	const struct {
		const char *name;
		uint64_t v;
	} fields[] = {
		{ "actors_alive", m.actors_alive },
		{ "actors_spawned", m.actors_spawned },
		{ "actors_stopped", m.actors_stopped },
		{ "msgs_sent", m.msgs_sent },
		{ "msgs_handled", m.msgs_handled },
		{ "dead_letters", m.dead_letters },
		{ "mailbox_full", m.mailbox_full },
		{ "steals", m.steals },
		{ "parks", m.parks },
		{ "wakes", m.wakes },
		{ "slow_handlers", m.slow_handlers },
		{ "sched_delay_p50_ns", m.sched_delay_p50_ns },
		{ "sched_delay_p99_ns", m.sched_delay_p99_ns },
		{ "sched_delay_samples", m.sched_delay_samples },
		{ "blocking_pending", m.blocking_pending },
		{ "workers", m.workers },
		{ "mutes", m.mutes },
		{ "io_polls", m.io_polls },
		{ "io_takeovers", m.io_takeovers },
		{ "msgs_remote_out", m.msgs_remote_out },
		{ "msgs_remote_in", m.msgs_remote_in },
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		ok &= cJSON_AddNumberToObject(o, fields[i].name,
					      (double)fields[i].v) != NULL;
	}
	cJSON *arr = cJSON_AddArrayToObject(o, "runq_len");
	ok &= arr != NULL;
	for (unsigned i = 0; ok && i < m.workers; i++) {
		cJSON *n = cJSON_CreateNumber(m.runq_len[i]);
		ok &= n != NULL && cJSON_AddItemToArray(arr, n);
	}
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

void
tr_free_string(char *s)
{
	/* cJSON allocates with malloc unless hooks are installed; we install
	 * none. */
	free(s);
}
