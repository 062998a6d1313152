#ifndef TROUPE_METRICS_H
#define TROUPE_METRICS_H

/*
 * Runtime metrics. Counters are kept per worker without locks and summed
 * when read, so a snapshot taken while actors run is consistent per
 * counter, not across counters.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TR_METRICS_MAX_WORKERS 64

/**
 * struct tr_metrics - A snapshot.
 * @size:              sizeof(tr_metrics), set by the caller
 * @actors_alive:      spawned and not yet stopped
 * @actors_spawned:    since start
 * @actors_stopped:    since start
 * @msgs_sent:         messages accepted by a send (user and system),
 *                     including those that became dead letters at once;
 *                     once quiet, msgs_sent == msgs_handled + dead_letters
 * @msgs_handled:      messages taken out of a mailbox and handled
 * @dead_letters:      messages that reached no actor (stale or unknown
 *                     pid, receiver stopped before handling them)
 * @mailbox_full:      sends refused with TR_EFULL
 * @steals:            actors taken from another worker's run queue
 * @parks:             times a worker went to sleep (on its futex, or in a
 *                     poll of an I/O loop)
 * @wakes:             times a worker came back from such a sleep
 * @slow_handlers:     handler calls longer than the slow threshold
 * @sched_delay_p50_ns, @sched_delay_p99_ns: time from runnable to running,
 *                     50th and 99th percentile in ns, over every sample
 *                     since start (one wake-up in 16 is sampled). Kept
 *                     as a log2 histogram: the value is the upper bound
 *                     of the bucket, 2^k - 1 (e.g. 8191 means 4-8 us)
 * @sched_delay_samples: number of samples behind the percentiles
 * @blocking_pending:  tr_blocking() calls queued or running
 * @workers:           number of workers
 * @runq_len:          per-worker run-queue length (first @workers used)
 * @mutes:             times an actor that sent to an overloaded actor was
 *                     held back until that actor caught up (backpressure)
 * @io_polls:          times an idle worker polled an I/O loop itself
 *                     instead of sleeping (tr_config.io_dedicated off)
 * @io_takeovers:      times an I/O thread took its loop over because no
 *                     worker had polled it for a millisecond or two: every
 *                     worker was busy (or, once per loop, no worker polls
 *                     that loop: io_threads > workers). Often rising means
 *                     the workers are saturated and I/O waits for the I/O
 *                     threads
 * @msgs_remote_out:   operations (sends, replies, links, monitors, exit
 *                     signals, DOWNs) handed to the distribution layer for
 *                     actors of other nodes; not in @msgs_sent
 * @msgs_remote_in:    operations the distribution layer handed in from
 *                     other nodes; each is then a local message in
 *                     @msgs_sent
 */
typedef struct tr_metrics {
	size_t size;
	uint64_t actors_alive;
	uint64_t actors_spawned;
	uint64_t actors_stopped;
	uint64_t msgs_sent;
	uint64_t msgs_handled;
	uint64_t dead_letters;
	uint64_t mailbox_full;
	uint64_t steals;
	uint64_t parks;
	uint64_t wakes;
	uint64_t slow_handlers;
	uint64_t sched_delay_p50_ns;
	uint64_t sched_delay_p99_ns;
	uint64_t sched_delay_samples;
	uint64_t blocking_pending;
	unsigned workers;
	uint32_t runq_len[TR_METRICS_MAX_WORKERS];
	uint64_t mutes;
	uint64_t io_polls;
	uint64_t io_takeovers;
	uint64_t msgs_remote_out;
	uint64_t msgs_remote_in;
} tr_metrics;

/**
 * tr_runtime_metrics() - Fill @out with a snapshot (@out->size must be set).
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL for a NULL or too small @out.
 */
TR_API tr_err tr_runtime_metrics(tr_runtime *rt, tr_metrics *out);

/**
 * tr_runtime_metrics_json() - The same snapshot as a JSON object text,
 * with the field names above and "runq_len" as an array.
 * Ownership: the caller frees the string with tr_free_string().
 * Thread:    any.
 * Return:    the text, or NULL when out of memory.
 */
TR_API char *tr_runtime_metrics_json(tr_runtime *rt);

/** tr_free_string() - Free a string returned by troupe. NULL: no-op. */
TR_API void tr_free_string(char *s);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_METRICS_H */
