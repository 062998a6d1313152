/*
 * Jobs (<troupe/actors/jobs.h>): a background job runner with one actor
 * per running job, written on the public API only.
 *
 * The service is one actor that owns everything: the job table, the
 * kind queues, the job actors it started, the watchers. Three parts are
 * kept apart so that a persistence layer can replace the first one and
 * write through the second:
 *
 *   The job table  records by id in a hash table, the finished ones in
 *                  a FIFO for eviction. table_*() are the only functions
 *                  that put records in the table, find or drop them.
 *   The state      job_transition() is the one place a job's state
 *   machine        changes: it checks the move against the diagram in the
 *                  header, takes a job that leaves TR_JOB_QUEUED out of
 *                  its kind's queue and keeps the per-state counters.
 *   The service    the handler: requests (submit, cancel, status, watch,
 *                  stats), reports from job actors, timeouts and DOWNs.
 *                  It starts job actors (monitored), arms timeouts,
 *                  cancels, and sends every event.
 *
 * Start. tr_jobs_start() checks and copies the kinds, spawns the actor
 * and sends them as its first message (boot.h); the actor answers that
 * start once its table exists.
 *
 * Job actors are spawned from the kind's definition as it is, with the
 * kind's argument: nothing wraps the user's init, handler or state, so
 * tr_become() in a job actor is an ordinary tr_become(). The job comes as
 * the actor's first message (TR_MSG_JOB_START, a pointer message that the
 * runtime frees if the actor never takes it), and it names the job with
 * a struct tr_job (this service's pid and the job's id) that the job
 * actor passes to tr_job_progress(), tr_job_complete() and tr_job_fail().
 * Those functions only send to the service, which believes a report only
 * from the job's own actor (m->from is the worker it spawned) while the
 * job runs. Earlier job actors ran a copy of the definition whose state
 * began with a header, found through a thread-local pointer while a
 * wrapped handler ran; a tr_become() in a job replaced the wrapper, and
 * the user's handler was then given the header as its state.
 *
 * Durable jobs. With a store, the table is kept in a journal under the
 * service's name (struct jrec, one per change; host byte order, as the
 * file is this machine's). journal() is the one writer: a submit waits
 * for its commit (struct sub) before it enters the table, every other
 * change is written behind, its acknowledgement ignored and a refusal
 * fatal. The start reads the journal back (replay_*()) with every other
 * message stashed, then decides what the jobs that were running become
 * (replay_end()) and answers the start. The teardown writes nothing:
 * the jobs it ends in memory are left as they are on disk, for the next
 * start. The journal is not trimmed.
 *
 * Threads: none of its own, and no lock: every function but
 * tr_jobs_start() and the tr_job_*() calls runs in the service's turns.
 *
 * Invariants:
 * - a record in TR_JOB_QUEUED is in its kind's queue exactly once;
 * - kind->active counts the kind's job actors that exist (spawned, DOWN
 *   not handled yet); it never exceeds kind->max;
 * - a record is in the active list (anext) exactly while its actor
 *   exists; one that the table drops meanwhile has id 0 and waits there
 *   for the DOWN, which frees it;
 * - a record with a final state is in the finished FIFO (or, dropped
 *   from the table, in the active list only), has no watchers, no start
 *   message and no timer.
 */
#include <troupe/actors/jobs.h>

#include "boot.h"
#include "hash.h"
#include "journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The service's own messages (the header keeps 0x80 and up private). */
#define MSG_START   (TR_MSG_JOBS_BASE + 0x80u) /* pointer to struct boot */
#define MSG_REPORT  (TR_MSG_JOBS_BASE + 0x81u) /* struct report + bytes */
#define MSG_TIMEOUT (TR_MSG_JOBS_BASE + 0x83u) /* uint64_t id, from itself */

/* Journal records (struct jrec's type). */
enum { J_SUBMIT = 1, J_START, J_PROGRESS, J_FINISH };

/* One event of the journal: a change of one job, with @size bytes after
 * it (SUBMIT: the payload; FINISH: the result). */
struct jrec {
	uint32_t type;
	uint32_t state; /* FINISH: the final state */
	uint64_t id;
	uint64_t timeout_ms; /* SUBMIT */
	uint32_t progress;   /* PROGRESS, FINISH */
	int32_t exit_reason; /* FINISH */
	char kind[TR_JOBS_KIND_MAX + 1];
	char note[TR_JOB_NOTE_MAX]; /* PROGRESS, FINISH */
	uint64_t size;
};

#define DEFAULT_MAX_FINISHED 10000u
#define TABLE_BUCKETS0       64u

/* What a job actor sends (tr_job_*()), in a pointer message: progress
 * (state TR_JOB_RUNNING) or the end (TR_JOB_SUCCEEDED, with the result
 * bytes after it, or TR_JOB_FAILED). */
struct report {
	uint64_t id;
	uint32_t state;
	uint32_t percent;
	char note[TR_JOB_NOTE_MAX];
};

/* Copies @src (NULL for none), truncated, and zeroes the rest: nothing
 * of an older note stays behind the NUL. */
static void
note_copy(char *dst, const char *src)
{
	memset(dst, 0, TR_JOB_NOTE_MAX);
	snprintf(dst, TR_JOB_NOTE_MAX, "%s", src != NULL ? src : "");
}

/* ------------------------------------------------------------------ */
/* The service's state                                                 */

struct watcher {
	struct watcher *next;
	tr_pid pid;
	tr_ref ref; /* watchers of every job: the service's monitor */
};

/* Records in order, linked through their qnext and qprev. */
struct fifo {
	struct job *head;
	struct job *tail;
};

struct kind {
	char name[TR_JOBS_KIND_MAX + 1];
	const tr_actor_def *def;
	void *arg;
	uint32_t max;
	uint32_t active;
	uint32_t on_restart;
	struct fifo queue;
};

struct job {
	struct tr__hnode node; /* first: the table's; node.hash of the id */
	struct job *qnext;     /* kind queue, then finished FIFO */
	struct job *qprev;
	struct job *anext; /* records whose actor exists (its DOWN to come) */
	tr_ref mon;        /* that actor's monitor; zero without one */
	/* The job as status tells it (the result bytes are done's): id,
	 * state, progress, exit_reason, worker, kind's name, note. */
	tr_job_status st;
	struct kind *kind;
	uint32_t seq; /* events sent */
	uint64_t timeout_ms;
	tr_timer_id timer;   /* zero when none was armed */
	tr_job_start *start; /* the job actor's first message, until then */
	struct report *done; /* TR_JOB_SUCCEEDED: the result follows it */
	struct watcher *watchers;
	bool was_running; /* replay: started and not finished */
};

/* A submit waiting for the store to commit it. */
struct sub {
	struct tr__hnode node; /* first: the pending table's; hash of ref */
	tr_ref ref;            /* the APPEND's */
	tr_msg req;            /* the submit's header, to answer */
	tr_pid watcher;
	struct job *jb; /* not in the table yet */
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
	/* With a store. */
	tr_ref store_mon;
	tr_ref read_ref;      /* the replay's page under way */
	bool replaying;       /* until the journal is read back */
	bool stopping;        /* the teardown: nothing more is written */
	tr_msg start;         /* answered once replayed */
	struct tr__htab subs; /* submits waiting for their commit, by ref */
	struct fifo orphan;   /* replayed jobs of a kind no longer run */
	/* Counters of struct tr_jobs_stats. */
	uint64_t submitted;
	uint64_t by_state[TR_JOB_INTERRUPTED + 1];
	uint64_t events_dropped;
	uint64_t unhandled;
};

/* ---- the job table ------------------------------------------------------ */

static void
fifo_push(struct fifo *q, struct job *jb)
{
	jb->qnext = NULL;
	jb->qprev = q->tail;
	if (q->tail != NULL) {
		q->tail->qnext = jb;
	} else {
		q->head = jb;
	}
	q->tail = jb;
}

static void
fifo_remove(struct fifo *q, struct job *jb)
{
	if (jb->qprev != NULL) {
		jb->qprev->qnext = jb->qnext;
	} else {
		q->head = jb->qnext;
	}
	if (jb->qnext != NULL) {
		jb->qnext->qprev = jb->qprev;
	} else {
		q->tail = jb->qprev;
	}
}

/* The queue a queued record is in: its kind's, or for a replayed job
 * whose kind the service no longer runs, the orphans'. */
static struct fifo *
queue_of(struct jobs *j, struct job *jb)
{
	return jb->kind != NULL ? &jb->kind->queue : &j->orphan;
}

static struct job *
table_find(const struct jobs *j, uint64_t id)
{
	uint64_t hash = tr__hash_u64(id);

	for (struct tr__hnode *n = tr__hash_chain(&j->tab, hash); n != NULL;
	     n = n->next) {
		struct job *jb = (struct job *)n; /* the node is first */
		if (jb->st.id == id) {
			return jb;
		}
	}
	return NULL;
}

static void
table_insert(struct jobs *j, struct job *jb)
{
	jb->node.hash = tr__hash_u64(jb->st.id);
	tr__hash_grow(&j->tab);
	tr__hash_link(&j->tab, &jb->node);
}

static void
watchers_clear(struct watcher **list)
{
	while (*list != NULL) {
		struct watcher *w = *list;
		*list = w->next;
		free(w);
	}
}

/* Frees the record whose node is @n (the table's free function too). */
static void
job_free(struct tr__hnode *n)
{
	struct job *jb = (struct job *)n; /* the node is first */

	watchers_clear(&jb->watchers);
	free(jb->start);
	free(jb->done);
	free(jb);
}

/* Keeps a finished record; drops the oldest beyond the limit. The
 * finished records are those of the table that are neither queued nor
 * running. */
static void
table_finished(struct jobs *j, struct job *jb)
{
	fifo_push(&j->finished, jb);
	while (j->tab.count - j->by_state[TR_JOB_QUEUED] -
		       j->by_state[TR_JOB_RUNNING] >
	       j->boot->max_finished) {
		struct job *old = j->finished.head;
		fifo_remove(&j->finished, old);
		tr__hash_unlink(&j->tab, &old->node);
		if (old->mon.v != 0) {
			old->st.id =
				0; /* out of the table; freed at its DOWN */
		} else {
			job_free(&old->node);
		}
	}
}

/* ---- the state machine -------------------------------------------------- */

static bool
is_final(uint32_t state)
{
	return state >= TR_JOB_SUCCEEDED;
}

/*
 * Moves @jb to @to if the diagram allows it. Every change of state goes
 * through here, which is where a persistent store writes the record. A
 * record that leaves TR_JOB_QUEUED leaves its kind's queue here too.
 */
static bool
job_transition(struct jobs *j, struct job *jb, uint32_t to)
{
	/* A queued job starts, is cancelled or fails (it could not be
	 * started); a running one ends any way; a final state stays. */
	/* A replayed queued job that was running is interrupted. */
	bool ok = jb->st.state == TR_JOB_QUEUED
			  ? to == TR_JOB_RUNNING || to == TR_JOB_CANCELLED ||
				    to == TR_JOB_FAILED ||
				    to == TR_JOB_INTERRUPTED
			  : jb->st.state == TR_JOB_RUNNING && is_final(to);

	if (!ok) {
		return false;
	}
	if (jb->st.state == TR_JOB_QUEUED) {
		fifo_remove(queue_of(j, jb), jb);
	}
	j->by_state[jb->st.state]--;
	j->by_state[to]++;
	jb->st.state = to;
	return true;
}

/* ---- the journal -------------------------------------------------------- */

/*
 * Appends a @type record of @jb to the journal, with @len bytes of @data
 * after it. With @ref, the caller waits for the answer under *@ref; without
 * it the record is written behind, and one that cannot even be sent stops
 * the service, whose journal would no longer be its table. Without a
 * store, and in the teardown, nothing is written.
 */
static tr_err
journal(tr_ctx *cx, struct jobs *j, const struct job *jb, uint32_t type,
	const void *data, size_t len, tr_ref *ref)
{
	tr_ref behind;
	tr_err err = TR_ENOMEM;

	if (tr_pid_is_none(j->boot->store) || j->stopping) {
		return TR_OK;
	}
	size_t n = sizeof(tr_store_append_req) + sizeof(struct jrec) + len;
	tr_store_append_req *q = calloc(1, n);
	if (q != NULL) {
		struct jrec r;
		memset(&r, 0, sizeof(r));
		r.type = type;
		r.state = jb->st.state;
		r.id = jb->st.id;
		r.timeout_ms = jb->timeout_ms;
		r.progress = jb->st.progress;
		r.exit_reason = jb->st.exit_reason;
		memcpy(r.kind, jb->st.kind, sizeof(r.kind));
		memcpy(r.note, jb->st.note, sizeof(r.note));
		r.size = len;
		memcpy(q->id, j->boot->name, sizeof(q->id));
		q->size = sizeof(r) + len;
		memcpy(q->data, &r, sizeof(r));
		if (len > 0) {
			memcpy(q->data + sizeof(r), data, len);
		}
		/* The runtime owns @q from here, on every path. */
		err = tr_request_ptr(cx, j->boot->store, TR_MSG_STORE_APPEND, q,
				     n, free, 0, ref != NULL ? ref : &behind);
	}
	if (err < 0 && ref == NULL) {
		tr_stop_self(cx, TR_EXIT_ERROR);
	}
	return err;
}

/* ---- events ------------------------------------------------------------- */

static bool
has_watcher(const struct watcher *w, tr_pid pid)
{
	for (; w != NULL; w = w->next) {
		if (tr_pid_eq(w->pid, pid)) {
			return true;
		}
	}
	return false;
}

/* Adds @pid to @list unless it is there; a watcher of every job is
 * monitored (@monitor), to be dropped when it stops. */
static tr_err
watcher_add(tr_ctx *cx, struct watcher **list, tr_pid pid, bool monitor)
{
	if (has_watcher(*list, pid)) {
		return TR_OK;
	}
	struct watcher *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return TR_ENOMEM;
	}
	tr_err err = monitor ? tr_monitor(cx, pid, &w->ref) : TR_OK;
	if (err < 0) {
		free(w);
		return err;
	}
	w->pid = pid;
	w->next = *list;
	*list = w;
	return TR_OK;
}

/* Removes @pid from @list, if it is there. Its monitor goes too: a
 * demonitor of none (zero) or of one that fired is harmless. */
static void
watcher_remove(tr_ctx *cx, struct watcher **list, tr_pid pid)
{
	for (struct watcher **pp = list; *pp != NULL; pp = &(*pp)->next) {
		struct watcher *w = *pp;
		if (tr_pid_eq(w->pid, pid)) {
			*pp = w->next;
			(void)tr_demonitor(cx, w->ref);
			free(w);
			return;
		}
	}
}

static void
event_send(tr_ctx *cx, struct jobs *j, tr_pid to, const tr_job_event *ev)
{
	size_t len = sizeof(*ev) + ev->result_size;

	if (tr_send(cx, to, TR_MSG_JOB_EVENT, ev, len) == TR_EFULL) {
		j->events_dropped++;
	}
}

/* The job's latest event, numbered jb->seq (struct tr_job_event and the
 * result bytes, which only a succeeded job has, so only its FINISHED
 * carries them); NULL without memory. */
static tr_job_event *
event_make(const struct job *jb, uint32_t event)
{
	tr_job_event *ev = calloc(1, sizeof(*ev) + jb->st.result_size);
	if (ev == NULL) {
		return NULL;
	}
	ev->id = jb->st.id;
	ev->seq = jb->seq;
	ev->event = event;
	ev->state = jb->st.state;
	ev->progress = jb->st.progress;
	ev->exit_reason = jb->st.exit_reason;
	ev->worker = jb->st.worker;
	memcpy(ev->kind, jb->st.kind, sizeof(ev->kind));
	memcpy(ev->note, jb->st.note, sizeof(ev->note));
	ev->result_size = jb->st.result_size;
	if (jb->st.result_size > 0) {
		memcpy(ev->result, jb->done + 1, jb->st.result_size);
	}
	return ev;
}

/* Tells the job's watchers and the watchers of every job. */
static void
emit(tr_ctx *cx, struct jobs *j, struct job *jb, uint32_t event)
{
	jb->seq++;
	if (jb->watchers == NULL && j->all == NULL) {
		return;
	}
	tr_job_event *ev = event_make(jb, event);
	if (ev == NULL) {
		/* Best effort, as documented: the gap in seq shows it. */
		j->events_dropped++;
		return;
	}
	for (struct watcher *w = jb->watchers; w != NULL; w = w->next) {
		event_send(cx, j, w->pid, ev);
	}
	for (struct watcher *w = j->all; w != NULL; w = w->next) {
		if (!has_watcher(jb->watchers, w->pid)) {
			event_send(cx, j, w->pid, ev);
		}
	}
	free(ev);
}

/* ---- running jobs ------------------------------------------------------- */

/* Ends @jb in state @to, with @reason and @note, if the diagram allows:
 * the one FINISHED event, then the record keeps only what status needs. */
static void
end_job(tr_ctx *cx, struct jobs *j, struct job *jb, uint32_t to, int32_t reason,
	const char *note)
{
	if (!job_transition(j, jb, to)) {
		return;
	}
	jb->st.exit_reason = reason;
	note_copy(jb->st.note, note);
	if (to == TR_JOB_CANCELLED || to == TR_JOB_TIMED_OUT) {
		/* The service's decision stops the job's actor (none for a
		 * queued job: TR_PID_NONE). The stop overtakes its queue; a
		 * complete it sends meanwhile finds the job final and is
		 * ignored. */
		(void)tr_stop(cx, jb->st.worker, reason);
	}
	/* Harmless on a timer that fired, and on none (zero). */
	(void)tr_timer_cancel(cx, jb->timer);
	(void)journal(cx, j, jb, J_FINISH,
		      jb->done != NULL ? (const void *)(jb->done + 1) : NULL,
		      jb->st.result_size, NULL);
	emit(cx, j, jb, TR_JOB_EV_FINISHED);
	watchers_clear(&jb->watchers);
	free(jb->start);
	jb->start = NULL;
	table_finished(j, jb);
}

/* Starts @jb, the head of its kind's queue; on an error it stays
 * there, TR_JOB_QUEUED, for the caller to end. */
static tr_err
start(tr_ctx *cx, struct jobs *j, struct kind *k, struct job *jb)
{
	tr_pid pid;
	tr_ref ref;

	/* Monitored before it runs: even a failing init is seen. */
	tr_err err = tr_spawn_monitor(cx, k->def, k->arg, &pid, &ref);
	if (err < 0) {
		return err;
	}
	/* The actor exists: its record holds a slot until its DOWN. */
	jb->mon = ref;
	jb->anext = j->active;
	j->active = jb;
	k->active++;
	/* Its first message; the runtime frees it on every path. */
	err = tr_send_ptr(cx, pid, TR_MSG_JOB_START, jb->start,
			  sizeof(*jb->start) + jb->start->payload_size, free);
	jb->start = NULL;
	if (err < 0) {
		(void)tr_stop(cx, pid, TR_EXIT_ERROR);
		return err;
	}
	jb->st.worker = pid;
	(void)job_transition(j, jb, TR_JOB_RUNNING);
	(void)journal(cx, j, jb, J_START, NULL, 0, NULL);
	emit(cx, j, jb, TR_JOB_EV_STARTED);
	if (jb->timeout_ms > 0) {
		/* A timer that cannot be armed (no memory, the runtime
		 * stopping) leaves the job without a limit rather than
		 * failing a job that did nothing wrong. */
		(void)tr_send_after(cx, tr_self(cx), MSG_TIMEOUT, &jb->st.id,
				    sizeof(jb->st.id), jb->timeout_ms,
				    &jb->timer);
	}
	return TR_OK;
}

/* Starts queued jobs of @k while it has free slots. */
static void
pump(tr_ctx *cx, struct jobs *j, struct kind *k)
{
	while (k->active < k->max && k->queue.head != NULL) {
		struct job *jb = k->queue.head;
		tr_err err = start(cx, j, k, jb);
		if (err < 0) {
			char note[TR_JOB_NOTE_MAX];
			snprintf(note, sizeof(note), "could not start: %s",
				 tr_err_name(err));
			end_job(cx, j, jb, TR_JOB_FAILED, 0, note);
		}
	}
}

/* ---- requests ----------------------------------------------------------- */

static void
answer(tr_ctx *cx, const tr_msg *m, tr_err status, uint64_t id)
{
	tr_jobs_reply rep = { .id = id, .status = status };

	/* A sender that is gone makes it a dead letter; a message sent on
	 * the runtime's context has nobody to answer. */
	(void)tr_reply(cx, m, TR_MSG_JOBS_REPLY, &rep, sizeof(rep));
}

/* A message the service cannot use: counted, and a request is told;
 * anything else is a dead letter. */
static void
unhandled(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	j->unhandled++;
	if (m->flags & TR_MSG_F_REQUEST) {
		answer(cx, m, TR_EINVAL, 0);
	} else {
		(void)tr_unhandled(cx, m);
	}
}

static struct kind *
kind_find(struct boot *b, const char *name)
{
	for (uint32_t i = 0; i < b->nkinds; i++) {
		if (strcmp(b->kinds[i].name, name) == 0) {
			return &b->kinds[i];
		}
	}
	return NULL;
}

/* Puts the new job @jb in the table and its queue, and answers the
 * submit @m with its id. */
static void
job_accept(tr_ctx *cx, struct jobs *j, struct job *jb, const tr_msg *m,
	   tr_pid watcher)
{
	table_insert(j, jb);
	j->by_state[TR_JOB_QUEUED]++;
	j->submitted++;
	/* The reply before the first event: a requester that watches the
	 * job knows its id when the events come (one sender, in order). */
	answer(cx, m, TR_OK, jb->st.id);
	if (!tr_pid_is_none(watcher)) {
		/* Without memory the watcher misses the events; the job
		 * itself is not affected. */
		(void)watcher_add(cx, &jb->watchers, watcher, false);
	}
	emit(cx, j, jb, TR_JOB_EV_QUEUED);
	fifo_push(&jb->kind->queue, jb);
	pump(cx, j, jb->kind);
}

static void
on_submit(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_submit_req *rq = m->data;

	if (m->size - sizeof(*rq) != rq->payload_size ||
	    memchr(rq->kind, '\0', sizeof(rq->kind)) == NULL) {
		unhandled(cx, j, m);
		return;
	}
	struct kind *k = kind_find(j->boot, rq->kind);
	if (k == NULL || tr_pid_node(rq->watcher) != 0) {
		answer(cx, m,
		       tr_pid_node(rq->watcher) != 0 ? TR_EINVAL : TR_ENOENT,
		       0);
		return;
	}
	/* The start message is made whole now, so the payload is copied
	 * once. */
	size_t size = sizeof(tr_job_start) + rq->payload_size;
	struct job *jb = calloc(1, sizeof(*jb));
	tr_job_start *js = calloc(1, size);
	if (jb == NULL || js == NULL) {
		free(jb);
		free(js);
		answer(cx, m, TR_ENOMEM, 0);
		return;
	}
	jb->st.id = ++j->next_id;
	js->job = (tr_job){ .service = tr_self(cx), .id = jb->st.id };
	memcpy(js->kind, k->name, sizeof(js->kind));
	js->payload_size = rq->payload_size;
	memcpy(js->payload, rq->payload, rq->payload_size);
	jb->start = js;
	jb->kind = k;
	memcpy(jb->st.kind, k->name, sizeof(jb->st.kind));
	jb->timeout_ms = rq->timeout_ms;
	jb->st.state = TR_JOB_QUEUED;
	if (tr_pid_is_none(j->boot->store)) {
		job_accept(cx, j, jb, m, rq->watcher);
		return;
	}
	/* Acknowledged once committed: until then the job is nowhere. */
	struct sub *sb = calloc(1, sizeof(*sb));
	tr_err err = sb != NULL ? journal(cx, j, jb, J_SUBMIT, js->payload,
					  js->payload_size, &sb->ref)
				: TR_ENOMEM;
	if (err < 0) {
		free(sb);
		job_free(&jb->node);
		answer(cx, m, err, 0);
		return;
	}
	sb->req = *m;
	sb->req.data = NULL;
	sb->req.size = 0;
	sb->watcher = rq->watcher;
	sb->jb = jb;
	sb->node.hash = tr__hash_u64(sb->ref.v);
	tr__hash_grow(&j->subs);
	tr__hash_link(&j->subs, &sb->node);
}

/* Frees a submit that waited (the pending table's free function). */
static void
sub_free(struct tr__hnode *n)
{
	struct sub *sb = (struct sub *)n; /* the node is first */

	job_free(&sb->jb->node);
	free(sb);
}

/* The store's answer to the submit @sb waits for. */
static void
submit_done(tr_ctx *cx, struct jobs *j, struct sub *sb, const tr_msg *m)
{
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);

	if (m->type == TR_MSG_STORE_REPLY) {
		job_accept(cx, j, sb->jb, &sb->req, sb->watcher);
	} else {
		job_free(&sb->jb->node);
		if (m->type == TR_MSG_STORE_ERROR && se != NULL) {
			answer(cx, &sb->req,
			       se->status < 0 ? se->status : TR_ESYS, 0);
		} else {
			/* The store is gone: so is the service (the runtime
			 * fails the submit). */
			tr_stop_self(cx, TR_EXIT_ERROR);
		}
	}
	free(sb);
}

static void
on_cancel(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_job_req *rq = m->data;

	struct job *jb = table_find(j, rq->id);
	if (jb == NULL || is_final(jb->st.state)) {
		answer(cx, m, jb == NULL ? TR_ENOENT : TR_ESTATE, rq->id);
		return;
	}
	end_job(cx, j, jb, TR_JOB_CANCELLED,
		jb->st.state == TR_JOB_RUNNING ? TR_JOBS_EXIT_CANCELLED : 0,
		"cancelled");
	answer(cx, m, TR_OK, rq->id);
}

static void
on_status(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_job_req *rq = m->data;

	struct job *jb = table_find(j, rq->id);
	size_t size =
		sizeof(tr_job_status) + (jb != NULL ? jb->st.result_size : 0);
	tr_job_status *st = jb != NULL ? calloc(1, size) : NULL;
	if (st == NULL) {
		answer(cx, m, jb == NULL ? TR_ENOENT : TR_ENOMEM, rq->id);
		return;
	}
	*st = jb->st;
	if (jb->st.result_size > 0) {
		memcpy(st->result, jb->done + 1, jb->st.result_size);
	}
	(void)tr_reply_ptr(cx, m, TR_MSG_JOBS_STATUS_REPLY, st, size, free);
}

static void
on_watch(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_watch_req *rq = m->data;
	struct job *jb = rq->id != 0 ? table_find(j, rq->id) : NULL;
	struct watcher **list = rq->id == 0  ? &j->all
				: jb != NULL ? &jb->watchers
					     : NULL;
	tr_job_event *ev = NULL;
	tr_err err = TR_OK;

	if (tr_pid_is_none(rq->pid) || tr_pid_node(rq->pid) != 0) {
		err = TR_EINVAL;
	} else if (!rq->on) {
		if (list != NULL) {
			watcher_remove(cx, list, rq->pid);
		}
	} else if (list == NULL) {
		err = TR_ENOENT;
	} else if (jb == NULL || !is_final(jb->st.state)) {
		err = watcher_add(cx, list, rq->pid, jb == NULL);
	} else {
		/* It already happened: repeat the last event to this one. */
		ev = event_make(jb, TR_JOB_EV_FINISHED);
		err = ev != NULL ? TR_OK : TR_ENOMEM;
	}
	answer(cx, m, err, rq->id);
	if (ev != NULL) {
		event_send(cx, j, rq->pid, ev);
		free(ev);
	}
}

static void
on_stats(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	tr_jobs_stats s = {
		.submitted = j->submitted,
		.queued = j->by_state[TR_JOB_QUEUED],
		.running = j->by_state[TR_JOB_RUNNING],
		.succeeded = j->by_state[TR_JOB_SUCCEEDED],
		.failed = j->by_state[TR_JOB_FAILED],
		.cancelled = j->by_state[TR_JOB_CANCELLED],
		.timed_out = j->by_state[TR_JOB_TIMED_OUT],
		.interrupted = j->by_state[TR_JOB_INTERRUPTED],
		.events_dropped = j->events_dropped,
		.unhandled = j->unhandled,
	};
	(void)tr_reply(cx, m, TR_MSG_JOBS_STATS_REPLY, &s, sizeof(s));
}

/* ---- reports, timeouts and DOWNs ---------------------------------------- */

static void
on_report(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const struct report *r = m->data;
	struct job *jb = table_find(j, r->id);

	/* Believed only from the job's own actor while the job runs: a late
	 * report (the job was cancelled or timed out) or a stranger's is
	 * ignored, and so is one that tr_job_*() did not make. */
	if (jb == NULL || jb->st.state != TR_JOB_RUNNING ||
	    !tr_pid_eq(jb->st.worker, m->from) || !(m->flags & TR_MSG_F_PTR) ||
	    r->percent > 100) {
		return;
	}
	if (r->state == TR_JOB_RUNNING) {
		jb->st.progress = r->percent;
		note_copy(jb->st.note, r->note);
		(void)journal(cx, j, jb, J_PROGRESS, NULL, 0, NULL);
		emit(cx, j, jb, TR_JOB_EV_PROGRESS);
	} else if (r->state == TR_JOB_SUCCEEDED) {
		/* The record keeps the report if a result follows it. */
		jb->st.result_size = m->size - sizeof(*r);
		jb->done =
			jb->st.result_size > 0 ? tr_msg_take_ptr(cx, m) : NULL;
		jb->st.progress = 100;
		end_job(cx, j, jb, TR_JOB_SUCCEEDED, TR_EXIT_NORMAL, NULL);
	} else {
		end_job(cx, j, jb, TR_JOB_FAILED, TR_EXIT_NORMAL, r->note);
	}
}

static void
on_timeout(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const uint64_t *id = m->data;

	if (!tr_pid_eq(m->from, tr_self(cx))) {
		unhandled(cx, j, m);
		return;
	}
	/* A tick from a timer cancelled too late finds the job final. */
	struct job *jb = table_find(j, *id);
	if (jb != NULL) {
		end_job(cx, j, jb, TR_JOB_TIMED_OUT, TR_JOBS_EXIT_TIMEOUT,
			"timed out");
	}
}

/* The actor of @jb is gone (@reason), its record out of the active
 * list: its slot is free, and a job still running has failed. */
static void
actor_gone(tr_ctx *cx, struct jobs *j, struct job *jb, int32_t reason,
	   const char *note)
{
	jb->mon = (tr_ref){ 0 };
	jb->kind->active--;
	if (jb->st.id == 0) {
		job_free(&jb->node); /* dropped from the table meanwhile */
	} else {
		end_job(cx, j, jb, TR_JOB_FAILED, reason, note);
	}
}

static void
on_down(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_down *d = m->data;

	if (j->store_mon.v != 0 && d->ref.v == j->store_mon.v) {
		/* What is on disk is what it is; the table cannot go on
		 * without it (as a persistent actor's state cannot). */
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}

	for (struct job **pp = &j->active; *pp != NULL; pp = &(*pp)->anext) {
		struct job *jb = *pp;
		if (jb->mon.v == d->ref.v) {
			struct kind *k = jb->kind;
			*pp = jb->anext;
			/* Stopped without a result, if it runs: a crash. */
			actor_gone(cx, j, jb, d->reason,
				   d->reason == TR_EXIT_INIT_FAILED
					   ? "init failed"
					   : "stopped without a result");
			pump(cx, j, k);
			return;
		}
	}
	/* Not a job's: a watcher of every job stopped. */
	watcher_remove(cx, &j->all, d->who);
}

/* ---- the actor ---------------------------------------------------------- */

/* ---- the replay --------------------------------------------------------- */

/* Asks the store for the journal's events after @seq. */
static tr_err
replay_read(tr_ctx *cx, struct jobs *j, uint64_t seq)
{
	return tr__journal_read(cx, j->boot->store, j->boot->name, seq,
				&j->read_ref);
}

/* The start cannot be answered with a table: answer it with @err, and
 * stop. */
static void
replay_fail(tr_ctx *cx, struct jobs *j, tr_err err)
{
	answer(cx, &j->start, err, 0);
	tr_stop_self(cx, TR_EXIT_ERROR);
}

/* A SUBMIT read back: the job, queued (the orphans' queue for a kind
 * the service no longer runs). */
static tr_err
replay_submit(tr_ctx *cx, struct jobs *j, const struct jrec *r,
	      const unsigned char *payload)
{
	if (r->id == 0 || table_find(j, r->id) != NULL) {
		return TR_EINVAL;
	}
	struct job *jb = calloc(1, sizeof(*jb));
	tr_job_start *js = calloc(1, sizeof(*js) + r->size);
	if (jb == NULL || js == NULL) {
		free(jb);
		free(js);
		return TR_ENOMEM;
	}
	js->job = (tr_job){ .service = tr_self(cx), .id = r->id };
	memcpy(js->kind, r->kind, sizeof(js->kind));
	js->payload_size = r->size;
	memcpy(js->payload, payload, r->size);
	jb->start = js;
	jb->kind = kind_find(j->boot, r->kind);
	jb->st.id = r->id;
	memcpy(jb->st.kind, r->kind, sizeof(jb->st.kind));
	jb->timeout_ms = r->timeout_ms;
	jb->st.state = TR_JOB_QUEUED;
	table_insert(j, jb);
	j->by_state[TR_JOB_QUEUED]++;
	j->submitted++;
	fifo_push(queue_of(j, jb), jb);
	if (r->id > j->next_id) {
		j->next_id = r->id;
	}
	return TR_OK;
}

/* A FINISH read back: the job leaves its queue for the finished ones,
 * without a diagram to check (it is a record of what happened). */
static tr_err
replay_finish(struct jobs *j, struct job *jb, const struct jrec *r,
	      const unsigned char *result)
{
	if (!is_final(r->state) || r->state > TR_JOB_INTERRUPTED) {
		return TR_EINVAL;
	}
	if (r->size > 0) {
		jb->done = malloc(sizeof(struct report) + r->size);
		if (jb->done == NULL) {
			return TR_ENOMEM;
		}
		memcpy(jb->done + 1, result, r->size);
	}
	fifo_remove(queue_of(j, jb), jb);
	j->by_state[TR_JOB_QUEUED]--;
	j->by_state[r->state]++;
	jb->st.state = r->state;
	jb->st.progress = r->progress;
	jb->st.exit_reason = r->exit_reason;
	jb->st.result_size = r->size;
	memcpy(jb->st.note, r->note, sizeof(jb->st.note));
	jb->was_running = false;
	free(jb->start);
	jb->start = NULL;
	table_finished(j, jb);
	return TR_OK;
}

/*
 * Applies one event of the journal. Until the replay ends, every job
 * not finished is TR_JOB_QUEUED in its queue, and one that was started
 * is marked: replay_end() decides what it becomes. An event of a job
 * the table no longer holds (dropped beyond max_finished) is skipped.
 */
static tr_err
replay_event(tr_ctx *cx, struct jobs *j, const unsigned char *data, size_t len)
{
	struct jrec r;

	if (len < sizeof(r)) {
		return TR_EINVAL;
	}
	memcpy(&r, data, sizeof(r));
	if (len - sizeof(r) != r.size) {
		return TR_EINVAL;
	}
	r.kind[sizeof(r.kind) - 1] = '\0';
	r.note[sizeof(r.note) - 1] = '\0';
	if (r.type == J_SUBMIT) {
		return replay_submit(cx, j, &r, data + sizeof(r));
	}
	struct job *jb = table_find(j, r.id);
	if (jb == NULL || is_final(jb->st.state)) {
		return r.type >= J_START && r.type <= J_FINISH ? TR_OK
							       : TR_EINVAL;
	}
	switch (r.type) {
	case J_START:
		jb->was_running = true;
		return TR_OK;
	case J_PROGRESS:
		jb->st.progress = r.progress <= 100 ? r.progress : 100;
		memcpy(jb->st.note, r.note, sizeof(jb->st.note));
		return TR_OK;
	case J_FINISH:
		return replay_finish(j, jb, &r, data + sizeof(r));
	default:
		return TR_EINVAL;
	}
}

/* The jobs of queue @q that were running end interrupted, or stay
 * queued (run again) when their kind says so; a job of a kind the
 * service no longer runs ends interrupted. */
static void
replay_settle(tr_ctx *cx, struct jobs *j, struct fifo *q)
{
	struct job *next;

	for (struct job *jb = q->head; jb != NULL; jb = next) {
		next = jb->qnext;
		if (jb->kind == NULL) {
			end_job(cx, j, jb, TR_JOB_INTERRUPTED, 0,
				"its kind is not run any more");
		} else if (jb->was_running &&
			   jb->kind->on_restart != TR_JOBS_RESTART_RESUBMIT) {
			end_job(cx, j, jb, TR_JOB_INTERRUPTED, 0,
				"interrupted by a restart");
		} else if (jb->was_running) {
			/* Runs again from the start. */
			jb->st.progress = 0;
			note_copy(jb->st.note, NULL);
		}
		jb->was_running = false;
	}
}

/* The journal is read: settle the jobs that ran, answer the start, take
 * the requests that waited, and start jobs. */
static void
replay_end(tr_ctx *cx, struct jobs *j)
{
	j->replaying = false;
	j->read_ref = (tr_ref){ 0 };
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		replay_settle(cx, j, &j->boot->kinds[i].queue);
	}
	replay_settle(cx, j, &j->orphan);
	answer(cx, &j->start, TR_OK, 0);
	(void)tr_unstash_all(cx);
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		pump(cx, j, &j->boot->kinds[i]);
	}
}

/* A page of the journal, or the store's refusal to give one. */
static void
replay_page(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_store_events *pg = tr__journal_page(m, 0);
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);

	if (m->type == TR_MSG_STORE_ERROR && se != NULL) {
		replay_fail(cx, j, se->status < 0 ? se->status : TR_ESYS);
		return;
	}
	if (m->type != TR_MSG_STORE_EVENTS) {
		replay_fail(cx, j, TR_ECLOSED); /* the store is gone */
		return;
	}
	if (pg == NULL) {
		replay_fail(cx, j, TR_EINVAL);
		return;
	}
	uint64_t seq = 0;
	for (uint32_t i = 0; i < pg->count; i++) {
		const tr_store_event *ev = &pg->events[i];
		tr_err err = replay_event(
			cx, j, (const unsigned char *)m->data + ev->offset,
			ev->size);
		if (err < 0) {
			replay_fail(cx, j, err);
			return;
		}
		seq = ev->seq;
	}
	if (pg->more != 0 && pg->count > 0) {
		tr_err err = replay_read(cx, j, seq);
		if (err < 0) {
			replay_fail(cx, j, err);
		}
		return;
	}
	replay_end(cx, j);
}

/* The start, the first message (see boot.h): the kinds and the table;
 * with a store, the journal is read back before the start is answered. */
static void
on_start(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	/* Its size counts the kinds. */
	struct boot *b = tr__boot_take(cx, m, m->size, &j->start);
	tr_err err = tr__hash_init(&j->tab, TABLE_BUCKETS0);
	if (err < 0) {
		free(b);
		replay_fail(cx, j, err);
		return;
	}
	j->boot = b;
	if (tr_pid_is_none(b->store)) {
		answer(cx, &j->start, TR_OK, 0);
		return;
	}
	j->replaying = true;
	err = tr__hash_init(&j->subs, TABLE_BUCKETS0);
	if (err == TR_OK) {
		err = tr_monitor(cx, b->store, &j->store_mon);
	}
	if (err == TR_OK) {
		err = replay_read(cx, j, 0);
	}
	if (err < 0) {
		replay_fail(cx, j, err);
	}
}

/* A reply to one of the service's own requests to the store: a submit's
 * commit, or a record written behind (its acknowledgement is not needed;
 * its refusal means the journal lost a change, and the service stops).
 * False when @m is no such reply. */
static bool
on_store_reply(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	if (!(m->flags & TR_MSG_F_REPLY) || tr_pid_is_none(j->boot->store)) {
		return false;
	}
	for (struct tr__hnode *n =
		     tr__hash_chain(&j->subs, tr__hash_u64(m->ref.v));
	     n != NULL; n = n->next) {
		struct sub *sb = (struct sub *)n; /* the node is first */
		if (sb->ref.v == m->ref.v) {
			tr__hash_unlink(&j->subs, n);
			submit_done(cx, j, sb, m);
			return true;
		}
	}
	if (m->type == TR_MSG_STORE_ERROR || m->type == TR_MSG_REQUEST_FAILED) {
		tr_stop_self(cx, TR_EXIT_ERROR);
		return true;
	}
	return m->type == TR_MSG_STORE_REPLY;
}

/*
 * What the service handles once started. A payload of another size than
 * the handler's is not understood: a request is refused with TR_EINVAL,
 * anything else is a dead letter.
 */
static const struct handler {
	uint32_t type;
	size_t size; /* of the payload, or of its head when fam */
	bool fam;    /* the head counts the bytes after it */
	void (*fn)(tr_ctx *cx, struct jobs *j, const tr_msg *m);
} handlers[] = {
	{ TR_MSG_JOBS_SUBMIT, sizeof(tr_jobs_submit_req), true, on_submit },
	{ TR_MSG_JOBS_CANCEL, sizeof(tr_jobs_job_req), false, on_cancel },
	{ TR_MSG_JOBS_STATUS, sizeof(tr_jobs_job_req), false, on_status },
	{ TR_MSG_JOBS_WATCH, sizeof(tr_jobs_watch_req), false, on_watch },
	{ TR_MSG_JOBS_STATS, 0, false, on_stats },
	{ MSG_REPORT, sizeof(struct report), true, on_report },
	{ MSG_TIMEOUT, sizeof(uint64_t), false, on_timeout },
	{ TR_MSG_DOWN, sizeof(tr_down), false, on_down },
};

static void
jobs_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jobs *j = state;

	if (j->boot == NULL) {
		on_start(cx, j, m);
		return;
	}
	if (j->replaying) {
		/* Everything else waits for the table. */
		if ((m->flags & TR_MSG_F_REPLY) && m->ref.v == j->read_ref.v) {
			replay_page(cx, j, m);
		} else if (tr_stash(cx, m) < 0) {
			unhandled(cx, j, m);
		}
		return;
	}
	if (on_store_reply(cx, j, m)) {
		return;
	}
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		const struct handler *h = &handlers[i];
		if (h->type == m->type &&
		    (m->size == h->size || (h->fam && m->size > h->size))) {
			h->fn(cx, j, m);
			return;
		}
	}
	unhandled(cx, j, m);
}

/*
 * However the service stops, its job actors stop with it (OTP: linked
 * workers die with their supervisor), and every job that has not
 * finished gets its one FINISHED event.
 */
static void
jobs_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct jobs *j = state;

	(void)reason;
	if (j->boot == NULL) {
		return; /* never started: it has nothing */
	}
	/* The journal keeps the jobs as they were: a restart decides. */
	j->stopping = true;
	tr__hash_fini(&j->subs, sub_free);
	while (j->active != NULL) {
		struct job *jb = j->active;
		j->active = jb->anext;
		(void)tr_stop(cx, jb->st.worker, TR_EXIT_SHUTDOWN);
		actor_gone(cx, j, jb, TR_EXIT_SHUTDOWN, "the service stopped");
	}
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		struct kind *k = &j->boot->kinds[i];
		while (k->queue.head != NULL) {
			end_job(cx, j, k->queue.head, TR_JOB_FAILED, 0,
				"the service stopped");
		}
	}
	while (j->orphan.head != NULL) { /* stopped while replaying */
		end_job(cx, j, j->orphan.head, TR_JOB_FAILED, 0,
			"the service stopped");
	}
	watchers_clear(&j->all);
	tr__hash_fini(&j->tab, job_free);
	free(j->boot);
}

static const tr_actor_def jobs_def = {
	.size = sizeof(tr_actor_def),
	.name = "jobs",
	.state_size = sizeof(struct jobs),
	.teardown = jobs_teardown,
	.handle = jobs_handle,
};

/* ---- the public functions ----------------------------------------------- */

static bool
kind_ok(const tr_jobs_kind *k)
{
	size_t n = k->name != NULL ? strnlen(k->name, TR_JOBS_KIND_MAX + 1) : 0;

	return n > 0 && n <= TR_JOBS_KIND_MAX && k->def != NULL &&
	       k->def->size >= sizeof(tr_actor_def) && k->def->handle != NULL &&
	       k->max_concurrency > 0 &&
	       (k->on_restart == TR_JOBS_RESTART_INTERRUPT ||
		k->on_restart == TR_JOBS_RESTART_RESUBMIT);
}

tr_err
tr_jobs_start(tr_ctx *cx, const tr_jobs_config *cfg, tr_pid *out, tr_ref *ref)
{
	/* A size that ends before the store: a caller of an older header,
	 * with no store. */
	if (cx == NULL || cfg == NULL ||
	    cfg->size < offsetof(tr_jobs_config, store) ||
	    cfg->nkinds > TR_JOBS_MAX_KINDS ||
	    (cfg->kinds == NULL && cfg->nkinds > 0)) {
		return tr__boot_fail(TR_EINVAL, out, ref);
	}
	tr_pid store = cfg->size >= sizeof(*cfg) ? cfg->store : TR_PID_NONE;
	size_t nlen = !tr_pid_is_none(store) && cfg->name != NULL
			      ? strnlen(cfg->name, TR_STORE_ID_SIZE)
			      : 0;
	if (!tr_pid_is_none(store) && (nlen == 0 || nlen >= TR_STORE_ID_SIZE)) {
		return tr__boot_fail(TR_EINVAL, out, ref);
	}
	/* The boot carries copies of the kinds, which the service keeps;
	 * each is checked against those copied before it. */
	size_t size = sizeof(struct boot) + cfg->nkinds * sizeof(struct kind);
	struct boot *b = calloc(1, size);
	if (b == NULL) {
		return tr__boot_fail(TR_ENOMEM, out, ref);
	}
	b->max_finished = cfg->max_finished != 0 ? cfg->max_finished
						 : DEFAULT_MAX_FINISHED;
	b->store = store;
	memcpy(b->name, cfg->name != NULL ? cfg->name : "", nlen);
	for (uint32_t i = 0; i < cfg->nkinds; i++) {
		const tr_jobs_kind *k = &cfg->kinds[i];
		tr_err err = !kind_ok(k)                     ? TR_EINVAL
			     : kind_find(b, k->name) != NULL ? TR_EEXIST
							     : TR_OK;
		if (err < 0) {
			free(b);
			return tr__boot_fail(err, out, ref);
		}
		struct kind *to = &b->kinds[b->nkinds++];
		memcpy(to->name, k->name, strlen(k->name));
		to->def = k->def;
		to->arg = k->arg;
		to->max = k->max_concurrency;
		to->on_restart = k->on_restart;
	}
	return tr__boot_start(cx, &jobs_def, cfg->is_linked, MSG_START, b, size,
			      free, out, ref);
}

const char *
tr_job_state_name(int state)
{
	static const char *const names[] = {
		"?",      "queued",    "running",   "succeeded",
		"failed", "cancelled", "timed out", "interrupted",
	};

	return state >= TR_JOB_QUEUED && state <= TR_JOB_INTERRUPTED
		       ? names[state]
		       : "?";
}

/* ---- inside job actors -------------------------------------------------- */

/*
 * Sends @job's service a report, with @len bytes of @data after it. An
 * end (@state final) spends @job, so that a second report is TR_ESTATE,
 * and stops the calling actor: when the report could not be sent, the
 * service sees that stop as a failed job.
 */
static tr_err
report(tr_ctx *cx, tr_job *job, uint32_t state, uint32_t percent,
       const char *note, const void *data, size_t len)
{
	if (cx == NULL || job == NULL || percent > 100 ||
	    (data == NULL && len > 0)) {
		return TR_EINVAL;
	}
	if (job->id == 0 || tr_pid_is_none(job->service)) {
		return TR_ESTATE; /* zeroed: no job */
	}
	struct report *r = len <= SIZE_MAX - sizeof(*r)
				   ? calloc(1, sizeof(*r) + len)
				   : NULL;
	tr_err err = len > SIZE_MAX - sizeof(*r) ? TR_EMSGSIZE : TR_ENOMEM;
	if (r != NULL) {
		r->id = job->id;
		r->state = state;
		r->percent = percent;
		note_copy(r->note, note);
		if (len > 0) {
			memcpy(r + 1, data, len);
		}
		err = tr_send_ptr(cx, job->service, MSG_REPORT, r,
				  sizeof(*r) + len, free);
	}
	if (is_final(state)) {
		*job = (tr_job){ 0 };
		tr_stop_self(cx, err == TR_OK ? TR_EXIT_NORMAL : TR_EXIT_ERROR);
	}
	return err;
}

tr_err
tr_job_progress(tr_ctx *cx, const tr_job *job, uint32_t percent,
		const char *note)
{
	/* A progress report leaves the job as it is. */
	tr_job copy = job != NULL ? *job : (tr_job){ 0 };

	return report(cx, job != NULL ? &copy : NULL, TR_JOB_RUNNING, percent,
		      note, NULL, 0);
}

tr_err
tr_job_complete(tr_ctx *cx, tr_job *job, const void *data, size_t len)
{
	return report(cx, job, TR_JOB_SUCCEEDED, 0, NULL, data, len);
}

tr_err
tr_job_fail(tr_ctx *cx, tr_job *job, const char *reason)
{
	return report(cx, job, TR_JOB_FAILED, 0, reason, NULL, 0);
}
