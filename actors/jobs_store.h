/*
 * The jobs service in two parts (internal; not installed): jobs.c is the
 * service in memory, jobs_store.c what a store adds (the journal, its
 * record format, the replay). The structs are the service's; the store's
 * own state is behind jobs.store, NULL without a store. jobs.c calls the
 * tr__jobs_store_*() functions, which use the tr__jobs_*() ones.
 */
#ifndef TR_ACTORS_JOBS_STORE_H
#define TR_ACTORS_JOBS_STORE_H

#include <troupe/troupe.h>
#include <troupe/actors/jobs.h>

#include "hash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a job actor sends (tr_job_*()), in a pointer message: progress
 * (state TR_JOB_RUNNING) or the end (TR_JOB_SUCCEEDED, with the result
 * bytes after it, or TR_JOB_FAILED). */
struct report {
	uint64_t id;
	uint32_t state;
	uint32_t percent;
	char note[TR_JOB_NOTE_MAX];
};

/* Records in order, linked through their qnext and qprev. */
struct fifo {
	struct job *head;
	struct job *tail;
};

struct kind {
	char name[TR_JOBS_KIND_MAX + 1];
	tr_jobs_kind cfg; /* as given, but its name is the copy above */
	uint32_t active;
	struct fifo queue;
};

struct job {
	struct tr__hnode node; /* first: the table's; node.hash of the id */
	struct job *qnext;     /* kind queue, then finished FIFO */
	struct job *qprev;
	struct job *anext; /* records whose actor exists (its DOWN to come) */
	tr_ref mon;        /* that actor's monitor; zero without one */
	/* The job's latest event, which status tells too (the result
	 * bytes are done's); seq counts the events sent. */
	tr_job_event st;
	struct kind *kind;
	uint64_t timeout_ms;
	tr_timer_id timer;   /* zero when none was armed */
	tr_job_start *start; /* the job actor's first message, until the end */
	struct report *done; /* TR_JOB_SUCCEEDED: the result follows it */
	struct watcher *watchers;
	bool was_running; /* replay: started and not finished */
};

/* What the service starts with: the payload of its MSG_START. */
struct boot {
	tr_pid store;                /* TR_PID_NONE: memory only */
	char name[TR_STORE_ID_SIZE]; /* the journal's id */
	uint32_t max_finished;
	uint32_t nkinds;
	struct kind kinds[];
};

struct jobs {
	struct boot *boot; /* the kinds; NULL until the start */
	uint64_t next_id;  /* ids count the accepted jobs, from 1 */
	/* The table. */
	struct tr__htab tab;
	struct fifo finished;
	/* The running part. */
	struct job *active; /* through anext */
	struct watcher *all;
	struct jobs_store *store; /* with a store, until the teardown */
	/* The counters, as a stats request reads them. The struct lists
	 * the jobs in each state in the order of enum tr_job_state, right
	 * after submitted: by_state[s] is the count of state s. */
	union {
		tr_jobs_stats stats;
		uint64_t by_state[TR_JOB_INTERRUPTED + 1];
	};
};

_Static_assert(offsetof(tr_jobs_stats, interrupted) ==
		       TR_JOB_INTERRUPTED * sizeof(uint64_t),
	       "by_state[s] is the counter of state s");

static inline bool
tr__jobs_is_final(uint32_t state)
{
	return state >= TR_JOB_SUCCEEDED;
}

/* ---- jobs.c ---- */

/* Answers the request @m with a TR_MSG_JOBS_REPLY. */
void tr__jobs_answer(tr_ctx *cx, const tr_msg *m, tr_err status, uint64_t id);
/* Counts @m, which the service cannot use; a request is refused. */
void tr__jobs_unhandled(tr_ctx *cx, struct jobs *j, const tr_msg *m);
struct kind *tr__jobs_kind(struct boot *b, const char *name);
struct job *tr__jobs_find(const struct jobs *j, uint64_t id);
/* A new record of kind @k, TR_JOB_QUEUED, with its start message; in no
 * table or queue yet. NULL without memory. */
struct job *
tr__jobs_new(tr_ctx *cx, struct kind *k, const char *kind, uint64_t id,
	     uint64_t timeout_ms, const void *payload, size_t len);
/* Frees the record whose node is @n (the table's free function too). */
void tr__jobs_free(struct tr__hnode *n);
/* Puts the new @jb in the table and its kind's queue. */
void tr__jobs_enqueue(struct jobs *j, struct job *jb);
/* Enqueues the new @jb, answers the submit @m with its id, and tells
 * @watcher (or none) it was queued. */
void tr__jobs_accept(tr_ctx *cx, struct jobs *j, struct job *jb,
		     const tr_msg *m, tr_pid watcher);
void tr__jobs_fifo_remove(struct fifo *q, struct job *jb);
/* Keeps a finished record; drops the oldest beyond the limit. The
 * finished records are those of the table that are neither queued nor
 * running. */
void tr__jobs_finished(struct jobs *j, struct job *jb);
/* Ends @jb in the final state @to if the diagram allows (end_job()). */
void tr__jobs_end(tr_ctx *cx, struct jobs *j, struct job *jb, uint32_t to,
		  int32_t reason, const char *note);
/* Starts queued jobs of @k while it has free slots. */
void tr__jobs_pump(tr_ctx *cx, struct jobs *j, struct kind *k);

/* ---- jobs_store.c ---- */

/* The start's store and name, from @cfg (whose size reaches the store)
 * into @b; TR_EINVAL for a store without a valid name. */
tr_err tr__jobs_store_config(struct boot *b, const tr_jobs_config *cfg);

/* The start with a store: the journal is read back before the start
 * @start is answered. An error answers it, and stops the service. */
void tr__jobs_store_start(tr_ctx *cx, struct jobs *j, const tr_msg *start);
/* A message for the store's part: stashed during the replay, a page of
 * it, an answer of the store, the store's DOWN. False for any other. */
bool tr__jobs_store_handle(tr_ctx *cx, struct jobs *j, const tr_msg *m);
/* Writes the new @jb and accepts it once committed (tr__jobs_accept()),
 * or answers the submit @m with the error. */
void tr__jobs_store_submit(tr_ctx *cx, struct jobs *j, struct job *jb,
			   const tr_msg *m, tr_pid watcher);
/* Writes the @event of @jb behind; nothing without a store. */
void tr__jobs_store_write(tr_ctx *cx, struct jobs *j, const struct job *jb,
			  uint32_t event);
/* The teardown: drops the submits waiting and the store's state; from
 * here nothing is written. */
void tr__jobs_store_stop(struct jobs *j);

#endif /* TR_ACTORS_JOBS_STORE_H */
