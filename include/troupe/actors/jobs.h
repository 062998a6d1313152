#ifndef TROUPE_ACTORS_JOBS_H
#define TROUPE_ACTORS_JOBS_H

/*
 * Jobs: a background job runner (in the manner of Oban and Sidekiq, with
 * one actor per running job as in an Erlang worker pool).
 *
 * The service is an actor. tr_jobs_start() spawns it with its job kinds
 * (a name, an actor definition and a concurrency limit each), and it is
 * stopped like any actor. Everything else is a request to it, answered
 * by exactly one message under the request's reference (m->ref, with
 * TR_MSG_F_REPLY), as for any tr_request():
 *
 *   request              payload              success reply
 *   TR_MSG_JOBS_SUBMIT   tr_jobs_submit_req   TR_MSG_JOBS_REPLY (the id)
 *   TR_MSG_JOBS_CANCEL   tr_jobs_job_req      TR_MSG_JOBS_REPLY
 *   TR_MSG_JOBS_STATUS   tr_jobs_job_req      TR_MSG_JOBS_STATUS_REPLY
 *   TR_MSG_JOBS_WATCH    tr_jobs_watch_req    TR_MSG_JOBS_REPLY
 *   TR_MSG_JOBS_STATS    none (size 0)        TR_MSG_JOBS_STATS_REPLY
 *
 * Every refusal, whatever the request, is a TR_MSG_JOBS_REPLY whose
 * status says why (TR_EINVAL for a payload of the wrong size or a type
 * the service does not know, TR_ENOENT for an unknown kind or job, ...).
 * A service that is gone gives TR_MSG_REQUEST_FAILED, from the runtime.
 * The same messages sent with tr_send() are acted on too, and answered
 * with a plain message (tr_reply() semantics); sent on tr_runtime_ctx()
 * they get no answer. A message the service cannot use is counted in
 * tr_jobs_stats.unhandled; a request among them is answered with
 * TR_EINVAL, anything else is a dead letter (tr_unhandled()).
 *
 * A submitted job waits in its kind's queue (first in, first out) until
 * one of the kind's slots is free, then runs as a fresh actor spawned
 * from the kind's definition. Its first message is TR_MSG_JOB_START,
 * which names the job (struct tr_job) and carries its payload. The job
 * actor reports progress with tr_job_progress() and ends with
 * tr_job_complete() (result bytes) or tr_job_fail() (a reason), each
 * given the struct tr_job it was started with. A job actor that stops
 * without doing either (a crash) is a failed job.
 *
 *   QUEUED --start--> RUNNING --complete--> SUCCEEDED
 *     |                  |------fail/crash--> FAILED
 *     |                  |------cancel------> CANCELLED
 *     |                  '------timeout-----> TIMED_OUT
 *     '------cancel----------------------->  CANCELLED
 *
 * and, with a store, at a restart: RUNNING --> INTERRUPTED (or QUEUED
 * again, per kind).
 *
 * The first of those events that the service handles decides the final
 * state; whatever comes later (a complete after a cancel, say) is
 * ignored. Each job gets exactly one TR_JOB_EV_FINISHED event, also when
 * the service stops first (then the job ends FAILED, see
 * tr_jobs_start()).
 *
 * The service's actor makes every state change and sends every event,
 * so a watcher sees one job's events in order (queued, started,
 * progress..., finished).
 *
 * Durable jobs. Without a store (tr_jobs_config.store TR_PID_NONE) jobs
 * live in memory only. Given a store (<troupe/actors/store.h>) and a
 * name, the service keeps a journal under the name: one event per
 * change (submitted, with kind, timeout and payload; started; progress;
 * finished, with state, note and result). A submit is answered only once
 * the store has committed it; the other events are written behind, in
 * their order. At its start the service reads the journal back before
 * it answers: finished jobs are in the table again (max_finished
 * applies), queued jobs are queued again in their order, and each job
 * that was running ends TR_JOB_INTERRUPTED (written to the journal) or
 * is queued again, as its kind's on_restart says. Ids go on from the
 * highest one read. Nothing is sent to the watchers or job actors of an
 * earlier life. A service that stops writes nothing of its stop: its
 * unfinished jobs are what a restart finds. The store gone or refusing
 * an event written behind stops the service with TR_EXIT_ERROR.
 *
 * A running job's slot is freed when its actor has stopped (not when its
 * final state is decided), so the concurrency limit counts actors that
 * exist, also a cancelled one that is still finishing a handler.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>
#include <troupe/actors/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the jobs module. */
#define TR_MSG_JOBS_BASE (TR_MSG_ACTORS_BASE + 0x800u)

/**
 * TR_MSG_JOB_EVENT - Something happened to a watched job. Payload:
 * struct tr_job_event, of variable length: read m->data as a
 * `const tr_job_event *`; m->size is sizeof(tr_job_event) plus
 * result_size. The sender is the service.
 */
#define TR_MSG_JOB_EVENT (TR_MSG_JOBS_BASE + 0x00u)

/**
 * TR_MSG_JOBS_REPLY - The answer to a start, a submit, a cancel or a
 * watch, and to any request the service refuses. Payload: struct
 * tr_jobs_reply, read with TR_MSG_AS(m, tr_jobs_reply).
 */
#define TR_MSG_JOBS_REPLY (TR_MSG_JOBS_BASE + 0x01u)

/**
 * TR_MSG_JOBS_STATUS_REPLY - The answer to a status request for a job
 * the table holds: the job's latest event (its @event and @seq), as
 * its watchers got it. Payload: struct tr_job_event, of variable
 * length, in a pointer message: read m->data as a
 * `const tr_job_event *`; m->size is sizeof(tr_job_event) plus
 * result_size; from an inbox, tr_received_fini() frees it.
 */
#define TR_MSG_JOBS_STATUS_REPLY (TR_MSG_JOBS_BASE + 0x02u)

/**
 * TR_MSG_JOBS_STATS_REPLY - The answer to TR_MSG_JOBS_STATS. Payload:
 * struct tr_jobs_stats, read with TR_MSG_AS(m, tr_jobs_stats).
 */
#define TR_MSG_JOBS_STATS_REPLY (TR_MSG_JOBS_BASE + 0x03u)

/**
 * TR_MSG_JOB_START - A job actor's job: the first message the service
 * sends it, before anything else can reach it. Payload: struct
 * tr_job_start, of variable length, a copied message (as an event):
 * read m->data as a `const tr_job_start *` in place, and copy what you
 * keep past the handler. The sender is the service.
 */
#define TR_MSG_JOB_START (TR_MSG_JOBS_BASE + 0x04u)

/**
 * TR_MSG_JOBS_SUBMIT - Request: queue a job. Payload: struct
 * tr_jobs_submit_req followed by its payload bytes (m->size is
 * sizeof(tr_jobs_submit_req) + payload_size). Reply: TR_MSG_JOBS_REPLY
 * with the new job's id (never 0); status TR_ENOENT (no such kind),
 * TR_EINVAL (a size that does not add up, a kind name without a NUL, a
 * remote watcher), TR_ENOMEM; with a store, the store's status when it
 * refused the write (TR_EFULL...), and then nothing was queued. With a
 * store the reply waits until the job is committed. The job is in the
 * table (TR_JOB_QUEUED) when the reply is sent, and the reply comes
 * before any of the job's events when the requester is its watcher.
 */
#define TR_MSG_JOBS_SUBMIT (TR_MSG_JOBS_BASE + 0x10u)

/**
 * TR_MSG_JOBS_CANCEL - Request: cancel job tr_jobs_job_req.id. A queued
 * job leaves its queue; a running job's actor is stopped with
 * TR_JOBS_EXIT_CANCELLED. Reply: TR_MSG_JOBS_REPLY; status TR_OK (the job
 * is TR_JOB_CANCELLED now, and a complete its actor sends after this is
 * ignored), TR_ENOENT (no such job), TR_ESTATE (it had already finished:
 * the outcome that came first stands).
 */
#define TR_MSG_JOBS_CANCEL (TR_MSG_JOBS_BASE + 0x11u)

/**
 * TR_MSG_JOBS_STATUS - Request: read job tr_jobs_job_req.id from the
 * table. Reply: TR_MSG_JOBS_STATUS_REPLY; or TR_MSG_JOBS_REPLY with
 * TR_ENOENT (no such job, or a finished one the table no longer keeps)
 * or TR_ENOMEM.
 */
#define TR_MSG_JOBS_STATUS (TR_MSG_JOBS_BASE + 0x12u)

/**
 * TR_MSG_JOBS_WATCH - Request: start or stop sending a pid a job's
 * events (struct tr_jobs_watch_req). A watcher of a job that has already
 * finished gets its FINISHED event at once (with the current seq);
 * otherwise it gets the events after this one. A watcher of every job
 * is dropped when it stops (the service monitors it); a watcher of one
 * job when the job finishes. Reply: TR_MSG_JOBS_REPLY; status TR_OK
 * (also when a pid that did not watch is told to stop), TR_ENOENT (no
 * such job), TR_EINVAL (TR_PID_NONE or a remote pid), TR_ENOMEM.
 */
#define TR_MSG_JOBS_WATCH (TR_MSG_JOBS_BASE + 0x13u)

/**
 * TR_MSG_JOBS_STATS - Request, no payload: the service's counters.
 * Reply: TR_MSG_JOBS_STATS_REPLY.
 */
#define TR_MSG_JOBS_STATS (TR_MSG_JOBS_BASE + 0x14u)

/* TR_MSG_JOBS_BASE + 0x80 ... + 0xFF are the service's own messages. */

/*
 * Exit reasons of job actors the service stops, in the range below
 * TR_EXIT_USER that the standard actors use.
 */
/** The job was cancelled (TR_MSG_JOBS_CANCEL). */
#define TR_JOBS_EXIT_CANCELLED 0x90
/** The job ran longer than its timeout. */
#define TR_JOBS_EXIT_TIMEOUT 0x91

/** Longest kind name in bytes, not counting the terminating NUL. */
#define TR_JOBS_KIND_MAX 63

/** Most kinds one service runs. */
#define TR_JOBS_MAX_KINDS 256u

/** Size of a note (progress text or failure reason), NUL included. */
#define TR_JOB_NOTE_MAX 128

/**
 * enum tr_job_state - Where a job is.
 * @TR_JOB_QUEUED:    waiting for a slot of its kind
 * @TR_JOB_RUNNING:   its actor runs
 * @TR_JOB_SUCCEEDED: it called tr_job_complete(); the result is kept
 * @TR_JOB_FAILED:    it called tr_job_fail(), its actor stopped without a
 *                    result (@exit_reason says how), or the service
 *                    stopped first
 * @TR_JOB_CANCELLED: a cancel came first
 * @TR_JOB_TIMED_OUT: it was still running when its timeout passed
 * @TR_JOB_INTERRUPTED: it was running when the service of a store
 *                    stopped, and its kind is not resubmitted: the
 *                    service's restart ended it
 */
typedef enum tr_job_state {
	TR_JOB_QUEUED = 1,
	TR_JOB_RUNNING = 2,
	TR_JOB_SUCCEEDED = 3,
	TR_JOB_FAILED = 4,
	TR_JOB_CANCELLED = 5,
	TR_JOB_TIMED_OUT = 6,
	TR_JOB_INTERRUPTED = 7,
} tr_job_state;

/**
 * enum tr_jobs_on_restart - What a restart of a service with a store does
 * with a kind's jobs that were running (struct tr_jobs_kind).
 * @TR_JOBS_RESTART_INTERRUPT: they end TR_JOB_INTERRUPTED (the default)
 * @TR_JOBS_RESTART_RESUBMIT:  they are queued again with their payload
 *                             and run again from the start
 */
typedef enum tr_jobs_on_restart {
	TR_JOBS_RESTART_INTERRUPT = 0,
	TR_JOBS_RESTART_RESUBMIT = 1,
} tr_jobs_on_restart;

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
 * struct tr_job_event - Payload of TR_MSG_JOB_EVENT, and of
 * TR_MSG_JOBS_STATUS_REPLY (a job as the table holds it: its latest
 * event).
 * @id:          the job
 * @seq:         1 for the job's first event, then one more for each;
 *               a watcher that sees a gap subscribed late or lost an
 *               event to a full mailbox. A job read back from a store
 *               counts from 0 again (its earlier events are not sent)
 * @event:       enum tr_job_event_kind
 * @state:       enum tr_job_state after the event
 * @progress:    last reported progress, 0 to 100
 * @exit_reason: FINISHED of a failed, cancelled or timed out job whose
 *               actor ran: the reason it stopped with, when known
 *               (TR_EXIT_NORMAL for tr_job_fail()); 0 otherwise
 * @worker:      the job's actor (TR_PID_NONE before it started)
 * @kind:        the job's kind
 * @note:        the last progress note; FINISHED: the failure
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
 * struct tr_job - A job, as its actor names it to tr_job_progress(),
 * tr_job_complete() and tr_job_fail(). Plain data: keep it in the job
 * actor's state (it survives tr_become()). A zeroed one is no job.
 * @service: the service that runs the job
 * @id:      the job
 */
typedef struct tr_job {
	tr_pid service;
	uint64_t id;
} tr_job;

/**
 * struct tr_job_start - Payload of TR_MSG_JOB_START.
 * @job:          the job, for the tr_job_*() calls
 * @kind:         its kind, NUL-terminated
 * @payload_size: number of bytes in @payload
 * @payload:      the bytes given at submit
 *
 * Variable length, a copied message: m->size is
 * sizeof(tr_job_start) + payload_size.
 */
TR_FAM_BEGIN
typedef struct tr_job_start {
	tr_job job;
	char kind[TR_JOBS_KIND_MAX + 1];
	uint64_t payload_size;
	unsigned char payload[];
} tr_job_start;
TR_FAM_END

/**
 * struct tr_jobs_kind - One kind of job (in struct tr_jobs_config).
 * @name:            1 to TR_JOBS_KIND_MAX bytes, unique in the service;
 *                   copied
 * @def:             the job actors' definition, spawned as it is (no
 *                   wrapper): its init gets @arg, and the job comes as
 *                   the first message (TR_MSG_JOB_START). It must outlive
 *                   every job actor (normally a static const)
 * @arg:             passed to every job actor's init; kept alive by the
 *                   caller as long as the service may start jobs
 * @max_concurrency: at most this many actors of the kind exist at once,
 *                   at least 1
 * @on_restart:      enum tr_jobs_on_restart: what a restart with a store
 *                   does with the kind's jobs that were running; 0
 *                   (TR_JOBS_RESTART_INTERRUPT) by default. Resubmit only
 *                   jobs that can run twice
 */
typedef struct tr_jobs_kind {
	const char *name;
	const tr_actor_def *def;
	void *arg;
	uint32_t max_concurrency;
	uint32_t on_restart;
} tr_jobs_kind;

/**
 * struct tr_jobs_config - What a service runs.
 * @size:         sizeof(tr_jobs_config), an ABI guard; required
 * @kinds:        the job kinds, copied; may be NULL when @nkinds is 0
 * @nkinds:       entries of @kinds, at most TR_JOBS_MAX_KINDS
 * @max_finished: finished jobs kept in the table for status requests;
 *                the oldest are dropped beyond it (their status becomes
 *                TR_ENOENT); 0 means 10000
 * @is_linked:    tr_jobs_start() links the service with the calling
 *                actor, its parent (OTP's start_link): the parent's
 *                abnormal exit stops the service, and so its job actors.
 *                Only an actor can be linked (a thread's context gives
 *                TR_EINVAL). False (the default): no link
 * @store:        a store (tr_store_start()) that keeps the jobs, see
 *                "Durable jobs" above; TR_PID_NONE (the default): jobs
 *                in memory only
 * @name:         with @store: the journal's persistent id, 1 to
 *                TR_STORE_ID_SIZE - 1 bytes, copied; one service per name
 *                and store. Ignored without @store
 *
 * A @size that ends before @store (a caller built against an older
 * header) is a service without a store.
 */
typedef struct tr_jobs_config {
	size_t size;
	const tr_jobs_kind *kinds;
	uint32_t nkinds;
	uint32_t max_finished;
	bool is_linked;
	tr_pid store;
	const char *name;
} tr_jobs_config;

/**
 * struct tr_jobs_submit_req - Payload of TR_MSG_JOBS_SUBMIT.
 * @kind:         a kind of the service, NUL-terminated
 * @timeout_ms:   how long the job may run, counted from its start (time
 *                in the queue does not count); 0 for no limit
 * @watcher:      gets this job's events, from the first (QUEUED) on;
 *                TR_PID_NONE for none
 * @payload_size: number of bytes in @payload
 * @payload:      bytes for the job actor (in its TR_MSG_JOB_START)
 *
 * Variable length: send sizeof(tr_jobs_submit_req) + payload_size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_jobs_submit_req {
	char kind[TR_JOBS_KIND_MAX + 1];
	uint64_t timeout_ms;
	tr_pid watcher;
	uint64_t payload_size;
	unsigned char payload[];
} tr_jobs_submit_req;
TR_FAM_END

/**
 * struct tr_jobs_job_req - Payload of TR_MSG_JOBS_CANCEL and
 * TR_MSG_JOBS_STATUS.
 * @id: the job
 */
typedef struct tr_jobs_job_req {
	uint64_t id;
} tr_jobs_job_req;

/**
 * struct tr_jobs_watch_req - Payload of TR_MSG_JOBS_WATCH.
 * @id:  a job, or 0 for every job from now on
 * @pid: the watcher
 * @on:  true to start sending it events, false to stop (events already
 *       sent may still arrive)
 */
typedef struct tr_jobs_watch_req {
	uint64_t id;
	tr_pid pid;
	bool on;
} tr_jobs_watch_req;

/**
 * struct tr_jobs_reply - Payload of TR_MSG_JOBS_REPLY.
 * @id:     a submit's new job; otherwise the job the request named (0 for
 *          a start and the requests that name none)
 * @status: TR_OK, or why the request was refused (see each request)
 */
typedef struct tr_jobs_reply {
	uint64_t id;
	int32_t status;
} tr_jobs_reply;

/**
 * struct tr_jobs_stats - Payload of TR_MSG_JOBS_STATS_REPLY.
 * @submitted: jobs accepted; with a store, those the start read back
 *             from the journal included
 * @queued:    jobs waiting for a slot now
 * @running:   jobs in TR_JOB_RUNNING now
 * @succeeded, @failed, @cancelled, @timed_out, @interrupted: jobs that
 *             ended so (each job counts once)
 * @events_dropped: events a watcher's mailbox refused (TR_EFULL)
 * @unhandled: messages the service could not use: an unknown type, a
 *             payload of the wrong size (requests among them were
 *             answered with TR_EINVAL)
 *
 * submitted == queued + running + succeeded + failed + cancelled +
 * timed_out + interrupted.
 */
typedef struct tr_jobs_stats {
	uint64_t submitted;
	uint64_t queued;
	uint64_t running;
	uint64_t succeeded;
	uint64_t failed;
	uint64_t cancelled;
	uint64_t timed_out;
	uint64_t interrupted;
	uint64_t events_dropped;
	uint64_t unhandled;
} tr_jobs_stats;

/**
 * tr_jobs_start() - Start a jobs service: from an actor, or from any
 * thread through its inbox's or the runtime's context. It never blocks.
 * @cx:  context of the calling actor or thread; the start reply goes to
 *       its pid (none with tr_runtime_ctx(), which gets no reply)
 * @cfg: the service's kinds and settings (copied)
 * @out: on success the service's pid; may be NULL
 * @ref: on success the start's reference (zero with tr_runtime_ctx());
 *       may be NULL
 *
 * The start is a request with no timeout: the caller gets exactly one
 * outcome under *@ref, a TR_MSG_JOBS_REPLY with status TR_OK once the
 * service runs, with a store once it has read its journal back (or an
 * error, after which it stops with TR_EXIT_ERROR: TR_ENOMEM; with a
 * store, the store's status, TR_ECLOSED for a store that is gone,
 * TR_EINVAL for a journal it cannot read), or
 * TR_MSG_REQUEST_FAILED if it was stopped before it took its start.
 * Requests sent before that wait in its mailbox. Waiting is optional.
 *
 * The service stops like any actor: tr_stop(), an exit signal, its
 * parent's exit with @cfg->is_linked, or the runtime's stop. Whatever the
 * reason, it then stops every job actor that exists (TR_EXIT_SHUTDOWN,
 * which overtakes their queues), and every job that has not finished
 * ends TR_JOB_FAILED with the note "the service stopped" (exit_reason
 * TR_EXIT_SHUTDOWN for one that ran): its watchers get its FINISHED
 * event. With a store that end is not written: the journal keeps those
 * jobs queued or running, for the next start. Requests after that get
 * TR_MSG_REQUEST_FAILED.
 * Ownership: @cfg and its kinds are copied; each kind's def and arg are
 *            borrowed as struct tr_jobs_kind says.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @cfg, a small @cfg->size,
 *            too many kinds, a bad name, definition, limit or
 *            on_restart, a store without a valid @cfg->name,
 *            @cfg->is_linked on a thread's context); TR_EEXIST (two
 *            kinds of one name); TR_ENOMEM; TR_ECLOSED (the runtime is
 *            stopping). On error no actor was left running and no reply
 *            comes.
 */
TR_API tr_err tr_jobs_start(tr_ctx *cx, const tr_jobs_config *cfg, tr_pid *out,
			    tr_ref *ref);

/**
 * tr_job_state_name() - Name of a tr_job_state.
 * Ownership: none (the string is static).
 * Thread:    any.
 * Return:    a static string ("queued", "running", "succeeded", "failed",
 *            "cancelled", "timed out", "interrupted"), or "?" for
 *            anything else.
 */
TR_API const char *tr_job_state_name(int state);

/**
 * tr_job_progress() - Report a job's progress.
 * @cx:      context of the job's actor
 * @job:     the job, from its TR_MSG_JOB_START
 * @percent: 0 to 100
 * @note:    a short text, truncated to TR_JOB_NOTE_MAX - 1 bytes; may be
 *           NULL
 *
 * The service takes reports only from the job's own actor, while the
 * job runs.
 * Ownership: @note is copied.
 * Thread:    actor (the job's).
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @job, @percent above 100);
 *            TR_ESTATE (a zeroed @job: no job, or one already completed
 *            or failed); TR_ENOMEM; the errors of tr_send_ptr().
 */
TR_API tr_err tr_job_progress(tr_ctx *cx, const tr_job *job, uint32_t percent,
			      const char *note);

/**
 * tr_job_complete() - Finish a job with a result, and stop the calling
 * actor (TR_EXIT_NORMAL) when the current handler returns.
 * @cx:   context of the job's actor
 * @job:  the job, from its TR_MSG_JOB_START; zeroed on return, so that a
 *        second report is TR_ESTATE
 * @data: the result, copied; may be NULL when @len is 0
 * @len:  its size
 *
 * When the result cannot be sent the actor stops with TR_EXIT_ERROR, so
 * the job ends failed rather than never.
 * Ownership: @data is copied.
 * Thread:    actor (the job's).
 * Return:    TR_OK (also when the service then ignores it, because the
 *            job was cancelled or timed out first); TR_EINVAL (NULL @cx
 *            or @job, NULL @data with @len > 0); TR_ESTATE (a zeroed
 *            @job); TR_EMSGSIZE; TR_ENOMEM; the errors of tr_send_ptr().
 */
TR_API tr_err tr_job_complete(tr_ctx *cx, tr_job *job, const void *data,
			      size_t len);

/**
 * tr_job_fail() - Finish a job as failed, and stop the calling actor
 * (TR_EXIT_NORMAL) when the current handler returns.
 * @cx:     context of the job's actor
 * @job:    as tr_job_complete()
 * @reason: why, truncated to TR_JOB_NOTE_MAX - 1 bytes; may be NULL
 *
 * Ownership: @reason is copied.
 * Thread:    actor (the job's).
 * Return:    as tr_job_complete().
 */
TR_API tr_err tr_job_fail(tr_ctx *cx, tr_job *job, const char *reason);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_JOBS_H */
