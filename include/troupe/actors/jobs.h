#ifndef TROUPE_ACTORS_JOBS_H
#define TROUPE_ACTORS_JOBS_H

/*
 * Jobs: a background job runner (in the manner of Oban and Sidekiq, with
 * one actor per running job as in an Erlang worker pool).
 *
 * A jobs service belongs to one runtime. Job kinds are registered by name
 * with an actor definition and a concurrency limit. tr_jobs_submit()
 * returns a 64-bit job id at once; the job waits in its kind's queue
 * (first in, first out) until one of the kind's slots is free, then runs
 * as a fresh actor spawned from the kind's definition, with the job's
 * payload. The job actor reports progress with tr_job_progress() and
 * ends with tr_job_complete() (result bytes) or tr_job_fail() (a reason).
 * A job actor that stops without doing either (a crash) is a failed job.
 *
 *   QUEUED --start--> RUNNING --complete--> SUCCEEDED
 *     |                  |------fail/crash--> FAILED
 *     |                  |------cancel------> CANCELLED
 *     |                  '------timeout-----> TIMED_OUT
 *     '------cancel----------------------->  CANCELLED
 *
 * The first of those events that the service handles decides the final
 * state; whatever comes later (a complete after a cancel, say) is
 * ignored. Each job gets exactly one TR_JOB_EV_FINISHED event.
 *
 * The service's actor (the runner) makes every state change and sends
 * every event, so a subscriber sees one job's events in order (queued,
 * started, progress..., finished). The job table is also readable from
 * any thread: tr_jobs_status() answers at once from the table. Jobs live
 * in memory only; the table and the state machine are kept apart so that
 * a persistence layer can take over the table.
 *
 * A running job's slot is freed when its actor has stopped (not when its
 * final state is decided), so the concurrency limit counts actors that
 * exist, also a cancelled one that is still finishing a handler.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the jobs module. */
#define TR_MSG_JOBS_BASE (TR_MSG_ACTORS_BASE + 0x800u)

/**
 * TR_MSG_JOB_EVENT - Something happened to a watched job. Payload:
 * struct tr_job_event, of variable length: read m->data as a
 * `const tr_job_event *`; m->size is sizeof(tr_job_event) plus
 * result_size. The sender is the service's runner actor.
 */
#define TR_MSG_JOB_EVENT (TR_MSG_JOBS_BASE + 0x00u)

/* TR_MSG_JOBS_BASE + 0x80 ... + 0xFF are the service's own messages. */

/*
 * Exit reasons of job actors the service stops, in the range below
 * TR_EXIT_USER that the standard actors use.
 */
/** The job was cancelled (tr_jobs_cancel()). */
#define TR_JOBS_EXIT_CANCELLED 0x90
/** The job ran longer than its timeout. */
#define TR_JOBS_EXIT_TIMEOUT 0x91

/** Longest kind name in bytes, not counting the terminating NUL. */
#define TR_JOBS_KIND_MAX 63

/** Size of a note (progress text or failure reason), NUL included. */
#define TR_JOB_NOTE_MAX 128

/**
 * enum tr_job_state - Where a job is.
 * @TR_JOB_QUEUED:    waiting for a slot of its kind
 * @TR_JOB_RUNNING:   its actor runs
 * @TR_JOB_SUCCEEDED: it called tr_job_complete(); the result is kept
 * @TR_JOB_FAILED:    it called tr_job_fail(), or its actor stopped
 *                    without a result (@exit_reason says how)
 * @TR_JOB_CANCELLED: tr_jobs_cancel() came first
 * @TR_JOB_TIMED_OUT: it was still running when its timeout passed
 */
typedef enum tr_job_state {
	TR_JOB_QUEUED = 1,
	TR_JOB_RUNNING = 2,
	TR_JOB_SUCCEEDED = 3,
	TR_JOB_FAILED = 4,
	TR_JOB_CANCELLED = 5,
	TR_JOB_TIMED_OUT = 6,
} tr_job_state;

/**
 * enum tr_job_event_kind - What a TR_MSG_JOB_EVENT reports.
 * @TR_JOB_EV_QUEUED:   the job was accepted (the first event of a job)
 * @TR_JOB_EV_STARTED:  its actor was spawned; @worker is its pid
 * @TR_JOB_EV_PROGRESS: the job reported progress (@progress, @note)
 * @TR_JOB_EV_FINISHED: the job reached its final state (@state); the
 *                      last event of a job, exactly once
 */
typedef enum tr_job_event_kind {
	TR_JOB_EV_QUEUED = 1,
	TR_JOB_EV_STARTED = 2,
	TR_JOB_EV_PROGRESS = 3,
	TR_JOB_EV_FINISHED = 4,
} tr_job_event_kind;

/**
 * struct tr_job_event - Payload of TR_MSG_JOB_EVENT.
 * @id:          the job
 * @seq:         1 for the job's first event, then one more for each;
 *               a watcher that sees a gap subscribed late or lost an
 *               event to a full mailbox
 * @event:       enum tr_job_event_kind
 * @state:       enum tr_job_state after the event
 * @progress:    last reported progress, 0 to 100
 * @exit_reason: FINISHED of a failed, cancelled or timed out job whose
 *               actor ran: the reason it stopped with, when known
 *               (TR_EXIT_NORMAL for tr_job_fail()); 0 otherwise
 * @worker:      the job's actor (TR_PID_NONE before it started)
 * @kind:        the job's kind
 * @note:        PROGRESS: the progress note; FINISHED: the failure
 *               reason, or what ended the job; may be empty
 * @result_size: number of bytes in @result
 * @result:      FINISHED of a succeeded job: the result bytes; none
 *               otherwise
 *
 * Variable length: m->size is sizeof(tr_job_event) + result_size. A
 * copied message, so it is read in place and may be kept by copying
 * m->size bytes:
 *
 *     const tr_job_event *ev = m->data;
 *     if (m->size >= sizeof(*ev) &&
 *         m->size - sizeof(*ev) == ev->result_size) ...
 *
 * @kind and @note always hold a NUL.
 */
TR_FAM_BEGIN
typedef struct tr_job_event {
	uint64_t id;
	uint32_t seq;
	uint32_t event;
	uint32_t state;
	uint32_t progress;
	int32_t exit_reason;
	tr_pid worker;
	char kind[TR_JOBS_KIND_MAX + 1];
	char note[TR_JOB_NOTE_MAX];
	uint64_t result_size;
	unsigned char result[];
} tr_job_event;
TR_FAM_END

/**
 * struct tr_job_status - A job as the table holds it (tr_jobs_status()).
 * @size:        sizeof(tr_job_status), set by the caller
 * @id:          the job
 * @state:       enum tr_job_state
 * @progress:    last reported progress, 0 to 100
 * @exit_reason: as in struct tr_job_event
 * @worker:      the job's actor (TR_PID_NONE before it started)
 * @kind:        the job's kind
 * @note:        the last progress note, or the failure reason
 * @result:      TR_JOB_SUCCEEDED: a copy of the result bytes (NULL when
 *               empty); release with tr_jobs_status_fini()
 * @result_size: number of bytes at @result
 */
typedef struct tr_job_status {
	size_t size;
	uint64_t id;
	uint32_t state;
	uint32_t progress;
	int32_t exit_reason;
	tr_pid worker;
	char kind[TR_JOBS_KIND_MAX + 1];
	char note[TR_JOB_NOTE_MAX];
	void *result;
	size_t result_size;
} tr_job_status;

/**
 * struct tr_job_info - What a job actor's init gets as its argument.
 * @id:      the job
 * @kind:    the job's kind
 * @payload: the bytes given to tr_jobs_submit() (NULL when empty); valid
 *           until the job actor stops
 * @size:    number of bytes at @payload
 */
typedef struct tr_job_info {
	uint64_t id;
	const char *kind;
	const void *payload;
	size_t size;
} tr_job_info;

/**
 * struct tr_jobs_config - Settings of a service.
 * @size:         sizeof(tr_jobs_config), an ABI guard; required
 * @max_finished: finished jobs kept in the table for tr_jobs_status();
 *                the oldest are dropped beyond it (their status becomes
 *                TR_ENOENT); 0 means 10000
 */
typedef struct tr_jobs_config {
	size_t size;
	uint32_t max_finished;
} tr_jobs_config;

/**
 * struct tr_jobs_stats - Counters of one service.
 * @size:      sizeof(tr_jobs_stats), set by the caller
 * @submitted: jobs accepted by tr_jobs_submit()
 * @queued:    jobs waiting for a slot now (including submitted jobs the
 *             runner has not seen yet)
 * @running:   jobs in TR_JOB_RUNNING now
 * @succeeded, @failed, @cancelled, @timed_out: jobs that ended so
 *             (each job counts once)
 * @events_dropped: events a watcher's mailbox refused (TR_EFULL)
 *
 * submitted == queued + running + succeeded + failed + cancelled +
 * timed_out, read under one lock.
 */
typedef struct tr_jobs_stats {
	size_t size;
	uint64_t submitted;
	uint64_t queued;
	uint64_t running;
	uint64_t succeeded;
	uint64_t failed;
	uint64_t cancelled;
	uint64_t timed_out;
	uint64_t events_dropped;
} tr_jobs_stats;

typedef struct tr_jobs tr_jobs;

/**
 * tr_jobs_create() - Make a jobs service for @rt and spawn its runner.
 * @rt:  the runtime the jobs run in
 * @cfg: settings; NULL for the defaults
 * @out: the new service
 *
 * The runtime need not be started yet; jobs start once it runs.
 * Ownership: the caller owns *@out; release with tr_jobs_destroy().
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (NULL @rt or @out, a small @cfg->size);
 *            TR_ENOMEM; TR_ESYS; TR_ECLOSED (the runtime is stopping).
 */
TR_API tr_err tr_jobs_create(tr_runtime *rt, const tr_jobs_config *cfg,
			     tr_jobs **out);

/**
 * tr_jobs_destroy() - Stop the service: its runner stops, and so does
 * every running job actor (TR_EXIT_SHUTDOWN). Watchers get no more
 * events; jobs still queued never run.
 * @j: the service; NULL is a no-op
 *
 * The memory is released once the runner has stopped too: at once when
 * the runtime was already joined, otherwise on one of its workers
 * shortly after. Call it before tr_runtime_destroy(), and not while
 * another thread still uses @j.
 * Ownership: @j is the caller's no more.
 * Thread:    any.
 * Return:    nothing; it cannot fail.
 */
TR_API void tr_jobs_destroy(tr_jobs *j);

/**
 * tr_jobs_register() - Add a job kind.
 * @j:    the service
 * @kind: its name, 1 to TR_JOBS_KIND_MAX bytes; copied
 * @def:  the job actors' definition; must outlive the service and every
 *        job actor (normally a static const). Its init gets a
 *        const struct tr_job_info *; a definition without init never
 *        sees the payload. Job actors are spawned from a copy of it
 *        (with room for the service's own bookkeeping in their state),
 *        kept for the life of the process, one per distinct definition
 * @max_concurrency: at most this many actors of the kind exist at once,
 *        at least 1
 *
 * Ownership: @kind is copied; @def is borrowed as said.
 * Thread:    any.
 * Return:    TR_OK; TR_EEXIST (the kind exists; nothing changed);
 *            TR_EINVAL (NULL, a bad name or definition, a zero limit);
 *            TR_ENOMEM; TR_ECLOSED (the service stopped).
 */
TR_API tr_err tr_jobs_register(tr_jobs *j, const char *kind,
			       const tr_actor_def *def,
			       uint32_t max_concurrency);

/**
 * tr_jobs_submit() - Queue a job.
 * @j:          the service
 * @kind:       a registered kind
 * @payload:    bytes for the job actor, copied; may be NULL when @len is 0
 * @len:        payload size
 * @timeout_ms: how long the job may run, counted from its start (time
 *              in the queue does not count); 0 for no limit
 * @watcher:    gets this job's events, from the first (QUEUED) on, as if
 *              tr_jobs_watch() had been called before the job existed;
 *              TR_PID_NONE for none
 * @id:         on success the job's id (never 0)
 *
 * The job is in the table (TR_JOB_QUEUED) when this returns.
 * Ownership: @payload is copied.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such kind); TR_EINVAL (NULL @j, @kind
 *            or @id, NULL @payload with @len > 0, a remote @watcher);
 *            TR_ENOMEM; TR_ECLOSED (the service was destroyed, or its
 *            runner stopped with the runtime).
 */
TR_API tr_err tr_jobs_submit(tr_jobs *j, const char *kind, const void *payload,
			     size_t len, uint64_t timeout_ms, tr_pid watcher,
			     uint64_t *id);

/**
 * tr_jobs_cancel() - Cancel a job: a queued job is removed from its
 * queue; a running job's actor is stopped with TR_JOBS_EXIT_CANCELLED.
 * @j:  the service
 * @id: the job
 *
 * The cancel is acted on by the runner, in order with what it handles:
 * a job that completes (or fails, or times out) before the runner takes
 * the cancel keeps that outcome. Its state becomes TR_JOB_CANCELLED
 * otherwise, and a complete the job's actor sends after that is ignored.
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK (the cancel is on its way); TR_ENOENT (no such job);
 *            TR_ESTATE (the job has already finished); TR_EINVAL;
 *            TR_ENOMEM; TR_ECLOSED (the service stopped).
 */
TR_API tr_err tr_jobs_cancel(tr_jobs *j, uint64_t id);

/**
 * tr_jobs_status() - Read a job from the table.
 * @j:   the service
 * @id:  the job
 * @out: filled on TR_OK (@out->size must be set)
 *
 * Ownership: on TR_OK out->result is the caller's: release it with
 *            tr_jobs_status_fini().
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such job, or a finished one that the
 *            table no longer keeps); TR_EINVAL (NULL, a small
 *            @out->size); TR_ENOMEM (no memory for the result copy).
 */
TR_API tr_err tr_jobs_status(tr_jobs *j, uint64_t id, tr_job_status *out);

/**
 * tr_jobs_status_fini() - Free the result copy of a status and zero it
 * (its size field is kept). NULL or a zeroed status: no-op.
 * Ownership: releases st->result; @st itself stays the caller's.
 * Thread:    any.
 * Return:    nothing; it cannot fail.
 */
TR_API void tr_jobs_status_fini(tr_job_status *st);

/**
 * tr_jobs_watch() - Send @pid the events of job @id, or of every job.
 * @j:   the service
 * @id:  a job, or 0 for every job from now on
 * @pid: the watcher
 *
 * A watcher of a job that has already finished gets its FINISHED event
 * at once (with the current seq); otherwise it gets the events that
 * happen after the runner took the request. A watcher of every job is
 * dropped when it stops (the runner monitors it); a watcher of one job
 * when the job finishes. Events are best effort towards a bounded
 * mailbox that is full (counted in the stats).
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such job); TR_EINVAL (NULL @j, a
 *            TR_PID_NONE or remote @pid); TR_ENOMEM; TR_ECLOSED.
 */
TR_API tr_err tr_jobs_watch(tr_jobs *j, uint64_t id, tr_pid pid);

/**
 * tr_jobs_unwatch() - Stop sending @pid the events of @id (0: of every
 * job). Events already sent may still arrive.
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK (also when @pid did not watch); TR_EINVAL; TR_ENOMEM;
 *            TR_ECLOSED.
 */
TR_API tr_err tr_jobs_unwatch(tr_jobs *j, uint64_t id, tr_pid pid);

/**
 * tr_jobs_stats_get() - Fill @out with the service's counters.
 * @j:   the service
 * @out: destination; @out->size must be set
 *
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL for NULL or a too small @out->size.
 */
TR_API tr_err tr_jobs_stats_get(tr_jobs *j, tr_jobs_stats *out);

/**
 * tr_job_state_name() - Name of a tr_job_state.
 * Ownership: none (the string is static).
 * Thread:    any.
 * Return:    a static string ("queued", "running", "succeeded", "failed",
 *            "cancelled", "timed out"), or "?" for anything else.
 */
TR_API const char *tr_job_state_name(int state);

/**
 * tr_job_progress() - Report the calling job's progress.
 * @cx:      context of a job actor (in its init or a handler)
 * @percent: 0 to 100
 * @note:    a short text, truncated to TR_JOB_NOTE_MAX - 1 bytes; may be
 *           NULL
 *
 * Ownership: @note is copied.
 * Thread:    actor (a job actor).
 * Return:    TR_OK; TR_EINVAL (NULL @cx, @percent above 100); TR_ESTATE
 *            (not a job actor, or the job already completed or failed);
 *            the errors of tr_send().
 */
TR_API tr_err tr_job_progress(tr_ctx *cx, uint32_t percent, const char *note);

/**
 * tr_job_complete() - Finish the calling job with a result, and stop its
 * actor (TR_EXIT_NORMAL) when the current handler returns.
 * @cx:   context of a job actor (in its init or a handler)
 * @data: the result, copied; may be NULL when @len is 0
 * @len:  its size
 *
 * When the result cannot be sent the actor stops with TR_EXIT_ERROR, so
 * the job ends failed rather than never.
 * Ownership: @data is copied.
 * Thread:    actor (a job actor).
 * Return:    TR_OK (also when the runner then ignores it, because the
 *            job was cancelled or timed out first); TR_EINVAL (NULL @cx,
 *            NULL @data with @len > 0); TR_ESTATE (not a job actor, or
 *            already completed or failed); TR_ENOMEM; the errors of
 *            tr_send_ptr().
 */
TR_API tr_err tr_job_complete(tr_ctx *cx, const void *data, size_t len);

/**
 * tr_job_fail() - Finish the calling job as failed, and stop its actor
 * (TR_EXIT_NORMAL) when the current handler returns.
 * @cx:     context of a job actor (in its init or a handler)
 * @reason: why, truncated to TR_JOB_NOTE_MAX - 1 bytes; may be NULL
 *
 * Ownership: @reason is copied.
 * Thread:    actor (a job actor).
 * Return:    as tr_job_complete().
 */
TR_API tr_err tr_job_fail(tr_ctx *cx, const char *reason);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_JOBS_H */
