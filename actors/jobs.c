/*
 * Jobs (<troupe/actors/jobs.h>): a background job runner with one actor
 * per running job, written on the public API only.
 *
 * The service is one actor that owns everything: the job table, the
 * kind queues, the job actors it started, the watchers. Three parts are
 * kept apart, so that the durable part (jobs_store.c) can fill the first
 * one and write through the second:
 *
 *   The job table  records by id in a hash table, the finished ones in
 *                  a FIFO for eviction. tr__jobs_find(), _enqueue() and
 *                  _finished() are the only functions that put records
 *                  in the table, find or drop them.
 *   The state      job_transition() is the one place a job's state
 *   machine        changes: it checks the move against the diagram in the
 *                  header, takes a job that leaves TR_JOB_QUEUED out of
 *                  its kind's queue and keeps the per-state counters (a
 *                  replay moves a record to the state it reads back).
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
 * the actor's first message (TR_MSG_JOB_START, a copy of the record's
 * start message), and it names the job with
 * a struct tr_job (this service's pid and the job's id) that the job
 * actor passes to tr_job_progress(), tr_job_complete() and tr_job_fail().
 * Those functions only send to the service, which believes a report only
 * from the job's own actor (m->from is the worker it spawned) while the
 * job runs. Earlier job actors ran a copy of the definition whose state
 * began with a header, found through a thread-local pointer while a
 * wrapped handler ran; a tr_become() in a job replaced the wrapper, and
 * the user's handler was then given the header as its state.
 *
 * Durable jobs. With a store, jobs_store.c keeps the table in a journal
 * and reads it back at the start (see there). This file calls it for
 * the configuration's store, at the start, for a submit (answered once
 * committed), for every event but the queued one (written behind, in
 * emit()) and at the teardown, which writes nothing; and it lets it see
 * every message first.
 *
 * Threads: none of its own, and no lock: every function but
 * tr_jobs_start() and the tr_job_*() calls runs in the service's turns.
 *
 * Invariants:
 * - a record in TR_JOB_QUEUED is in its kind's queue exactly once;
 * - kind->active counts the kind's job actors that exist (spawned, DOWN
 *   not handled yet); it never exceeds kind->cfg.max_concurrency;
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
#include "jobs_store.h"

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

#define DEFAULT_MAX_FINISHED 10000u
#define TABLE_BUCKETS0       64u

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

/* ---- the job table ------------------------------------------------------ */

static void
fifo_push(struct fifo *q, struct job *jb)
{
	jb->qnext = NULL;
	jb->qprev = q->tail;
	/* The link that points at the new last record: the old last's, or
	 * the head of an empty queue. */
	*(q->tail != NULL ? &q->tail->qnext : &q->head) = jb;
	q->tail = jb;
}

void
tr__jobs_fifo_remove(struct fifo *q, struct job *jb)
{
	/* Each neighbour's link to @jb, or the queue's end where it has
	 * none. */
	*(jb->qprev != NULL ? &jb->qprev->qnext : &q->head) = jb->qnext;
	*(jb->qnext != NULL ? &jb->qnext->qprev : &q->tail) = jb->qprev;
}

struct job *
tr__jobs_find(const struct jobs *j, uint64_t id)
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

void
tr__jobs_enqueue(struct jobs *j, struct job *jb)
{
	jb->node.hash = tr__hash_u64(jb->st.id);
	tr__hash_grow(&j->tab);
	tr__hash_link(&j->tab, &jb->node);
	j->by_state[TR_JOB_QUEUED]++;
	j->stats.submitted++;
	fifo_push(&jb->kind->queue, jb);
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

void
tr__jobs_free(struct tr__hnode *n)
{
	struct job *jb = (struct job *)n; /* the node is first */

	watchers_clear(&jb->watchers);
	free(jb->start);
	free(jb->done);
	free(jb);
}

void
tr__jobs_finished(struct jobs *j, struct job *jb)
{
	fifo_push(&j->finished, jb);
	while (j->tab.count - j->by_state[TR_JOB_QUEUED] -
		       j->by_state[TR_JOB_RUNNING] >
	       j->boot->max_finished) {
		struct job *old = j->finished.head;
		tr__jobs_fifo_remove(&j->finished, old);
		tr__hash_unlink(&j->tab, &old->node);
		if (old->mon.v != 0) {
			/* Out of the table; freed at its DOWN. */
			old->st.id = 0;
		} else {
			tr__jobs_free(&old->node);
		}
	}
}

/* ---- the state machine -------------------------------------------------- */

/*
 * Moves @jb to @to if the diagram allows it. Every change of state goes
 * through here (and then to emit(), where a store writes it). A record
 * that leaves TR_JOB_QUEUED leaves its kind's queue here too.
 */
static bool
job_transition(struct jobs *j, struct job *jb, uint32_t to)
{
	/* A queued job starts, is cancelled or fails (it could not be
	 * started); a running one ends any way; a final state stays. */
	bool ok = jb->st.state == TR_JOB_QUEUED
			  ? to == TR_JOB_RUNNING || to == TR_JOB_CANCELLED ||
				    to == TR_JOB_FAILED ||
				    to == TR_JOB_INTERRUPTED
			  : jb->st.state == TR_JOB_RUNNING &&
				    tr__jobs_is_final(to);

	if (!ok) {
		return false;
	}
	if (jb->st.state == TR_JOB_QUEUED) {
		tr__jobs_fifo_remove(&jb->kind->queue, jb);
	}
	j->by_state[jb->st.state]--;
	j->by_state[to]++;
	jb->st.state = to;
	return true;
}

/* ---- events ------------------------------------------------------------- */

/* Where @pid is in @list: the link that points to it, or the list's
 * end. */
static struct watcher **
watcher_at(struct watcher **list, tr_pid pid)
{
	while (*list != NULL && !tr_pid_eq((*list)->pid, pid)) {
		list = &(*list)->next;
	}
	return list;
}

/* Adds @pid to @list unless it is there; a watcher of every job is
 * monitored (@monitor), to be dropped when it stops. */
static tr_err
watcher_add(tr_ctx *cx, struct watcher **list, tr_pid pid, bool monitor)
{
	if (*watcher_at(list, pid) != NULL) {
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
	struct watcher **at = watcher_at(list, pid);
	struct watcher *w = *at;

	if (w != NULL) {
		*at = w->next;
		(void)tr_demonitor(cx, w->ref);
		free(w);
	}
}

static void
event_send(tr_ctx *cx, struct jobs *j, tr_pid to, const tr_job_event *ev)
{
	size_t len = sizeof(*ev) + ev->result_size;

	if (tr_send(cx, to, TR_MSG_JOB_EVENT, ev, len) == TR_EFULL) {
		j->stats.events_dropped++;
	}
}

/* The job's latest event (jb->st) with the result bytes, which only a
 * succeeded job has, so only its FINISHED carries them; NULL without
 * memory. */
static tr_job_event *
event_make(const struct job *jb)
{
	tr_job_event *ev = malloc(sizeof(*ev) + jb->st.result_size);
	if (ev != NULL) {
		*ev = jb->st;
	}
	if (ev != NULL && jb->st.result_size > 0) {
		memcpy(ev->result, jb->done + 1, jb->st.result_size);
	}
	return ev;
}

/* Writes the event to the store (the queued one was written with the
 * submit), then tells the job's watchers and the watchers of every job. */
static void
emit(tr_ctx *cx, struct jobs *j, struct job *jb, uint32_t event)
{
	if (event != TR_JOB_EV_QUEUED) {
		tr__jobs_store_write(cx, j, jb, event);
	}
	jb->st.seq++;
	jb->st.event = event;
	if (jb->watchers == NULL && j->all == NULL) {
		return;
	}
	tr_job_event *ev = event_make(jb);
	if (ev == NULL) {
		/* Best effort, as documented: the gap in seq shows it. */
		j->stats.events_dropped++;
		return;
	}
	for (struct watcher *w = jb->watchers; w != NULL; w = w->next) {
		event_send(cx, j, w->pid, ev);
	}
	for (struct watcher *w = j->all; w != NULL; w = w->next) {
		if (*watcher_at(&jb->watchers, w->pid) == NULL) {
			event_send(cx, j, w->pid, ev);
		}
	}
	free(ev);
}

/* ---- running jobs ------------------------------------------------------- */

/* Ends @jb in state @to, with @reason and @note, if the diagram allows:
 * the one FINISHED event, then the record keeps only what status needs. */
void
tr__jobs_end(tr_ctx *cx, struct jobs *j, struct job *jb, uint32_t to,
	     int32_t reason, const char *note)
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
	emit(cx, j, jb, TR_JOB_EV_FINISHED);
	watchers_clear(&jb->watchers);
	free(jb->start);
	jb->start = NULL;
	tr__jobs_finished(j, jb);
}

/* Starts @jb, the head of its kind's queue; on an error it stays
 * there, TR_JOB_QUEUED, for the caller to end. */
static tr_err
start(tr_ctx *cx, struct jobs *j, struct kind *k, struct job *jb)
{
	tr_pid pid;
	tr_ref ref;

	/* Monitored before it runs: even a failing init is seen. */
	tr_err err = tr_spawn_monitor(cx, k->cfg.def, k->cfg.arg, &pid, &ref);
	if (err < 0) {
		return err;
	}
	/* The actor exists: its record holds a slot until its DOWN. */
	jb->mon = ref;
	jb->anext = j->active;
	j->active = jb;
	k->active++;
	/* Its first message is a copy: the record keeps the start until
	 * the job ends, for the journal's snapshots (jobs_store.c). */
	err = tr_send(cx, pid, TR_MSG_JOB_START, jb->start,
		      sizeof(*jb->start) + jb->start->payload_size);
	if (err < 0) {
		(void)tr_stop(cx, pid, TR_EXIT_ERROR);
		return err;
	}
	jb->st.worker = pid;
	(void)job_transition(j, jb, TR_JOB_RUNNING);
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
void
tr__jobs_pump(tr_ctx *cx, struct jobs *j, struct kind *k)
{
	while (k->active < k->cfg.max_concurrency && k->queue.head != NULL) {
		struct job *jb = k->queue.head;
		tr_err err = start(cx, j, k, jb);
		if (err < 0) {
			char note[TR_JOB_NOTE_MAX];
			snprintf(note, sizeof(note), "could not start: %s",
				 tr_err_name(err));
			tr__jobs_end(cx, j, jb, TR_JOB_FAILED, 0, note);
		}
	}
}

/* ---- requests ----------------------------------------------------------- */

void
tr__jobs_answer(tr_ctx *cx, const tr_msg *m, tr_err status, uint64_t id)
{
	tr_jobs_reply rep = { .id = id, .status = status };

	/* A sender that is gone makes it a dead letter; a message sent on
	 * the runtime's context has nobody to answer. */
	(void)tr_reply(cx, m, TR_MSG_JOBS_REPLY, &rep, sizeof(rep));
}

/* A message the service cannot use: counted, and a request is told;
 * anything else is a dead letter. */
void
tr__jobs_unhandled(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	j->stats.unhandled++;
	if (m->flags & TR_MSG_F_REQUEST) {
		tr__jobs_answer(cx, m, TR_EINVAL, 0);
	} else {
		(void)tr_unhandled(cx, m);
	}
}

struct kind *
tr__jobs_kind(struct boot *b, const char *name)
{
	for (uint32_t i = 0; i < b->nkinds; i++) {
		if (strcmp(b->kinds[i].name, name) == 0) {
			return &b->kinds[i];
		}
	}
	return NULL;
}

/* The start message is made whole now: each start sends a copy of it. */
struct job *
tr__jobs_new(tr_ctx *cx, struct kind *k, const char *kind, uint64_t id,
	     uint64_t timeout_ms, const void *payload, size_t len)
{
	struct job *jb = calloc(1, sizeof(*jb));
	tr_job_start *js = calloc(1, sizeof(*js) + len);
	if (jb == NULL || js == NULL) {
		free(jb);
		free(js);
		return NULL;
	}
	js->job = (tr_job){ .service = tr_self(cx), .id = id };
	memcpy(js->kind, kind, sizeof(js->kind));
	js->payload_size = len;
	memcpy(js->payload, payload, len);
	jb->start = js;
	jb->kind = k;
	jb->st.id = id;
	memcpy(jb->st.kind, kind, sizeof(jb->st.kind));
	jb->timeout_ms = timeout_ms;
	jb->st.state = TR_JOB_QUEUED;
	jb->st.event = TR_JOB_EV_QUEUED;
	return jb;
}

void
tr__jobs_accept(tr_ctx *cx, struct jobs *j, struct job *jb, const tr_msg *m,
		tr_pid watcher)
{
	tr__jobs_enqueue(j, jb);
	/* The reply before the first event: a requester that watches the
	 * job knows its id when the events come (one sender, in order). */
	tr__jobs_answer(cx, m, TR_OK, jb->st.id);
	if (!tr_pid_is_none(watcher)) {
		/* Without memory the watcher misses the events; the job
		 * itself is not affected. */
		(void)watcher_add(cx, &jb->watchers, watcher, false);
	}
	emit(cx, j, jb, TR_JOB_EV_QUEUED);
	tr__jobs_pump(cx, j, jb->kind);
}

static void
on_submit(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_submit_req *rq = m->data;

	if (m->size - sizeof(*rq) != rq->payload_size ||
	    memchr(rq->kind, '\0', sizeof(rq->kind)) == NULL) {
		tr__jobs_unhandled(cx, j, m);
		return;
	}
	struct kind *k = tr__jobs_kind(j->boot, rq->kind);
	/* What the submit is answered with when no record is made. */
	tr_err err = tr_pid_node(rq->watcher) != 0 ? TR_EINVAL
		     : k == NULL                   ? TR_ENOENT
						   : TR_ENOMEM;
	struct job *jb = err == TR_ENOMEM
				 ? tr__jobs_new(cx, k, k->name, j->next_id + 1,
						rq->timeout_ms, rq->payload,
						rq->payload_size)
				 : NULL;
	if (jb == NULL) {
		tr__jobs_answer(cx, m, err, 0);
		return;
	}
	j->next_id++;
	if (j->store != NULL) {
		tr__jobs_store_submit(cx, j, jb, m, rq->watcher);
	} else {
		tr__jobs_accept(cx, j, jb, m, rq->watcher);
	}
}

static void
on_cancel(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_job_req *rq = m->data;
	struct job *jb = tr__jobs_find(j, rq->id);
	tr_err err = jb == NULL                        ? TR_ENOENT
		     : tr__jobs_is_final(jb->st.state) ? TR_ESTATE
						       : TR_OK;

	if (err == TR_OK) {
		tr__jobs_end(cx, j, jb, TR_JOB_CANCELLED,
			     jb->st.state == TR_JOB_RUNNING
				     ? TR_JOBS_EXIT_CANCELLED
				     : 0,
			     "cancelled");
	}
	tr__jobs_answer(cx, m, err, rq->id);
}

static void
on_status(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_job_req *rq = m->data;
	struct job *jb = tr__jobs_find(j, rq->id);
	tr_job_event *ev = jb != NULL ? event_make(jb) : NULL;

	if (ev == NULL) {
		tr__jobs_answer(cx, m, jb == NULL ? TR_ENOENT : TR_ENOMEM,
				rq->id);
		return;
	}
	(void)tr_reply_ptr(cx, m, TR_MSG_JOBS_STATUS_REPLY, ev,
			   sizeof(*ev) + ev->result_size, free);
}

static void
on_watch(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_jobs_watch_req *rq = m->data;
	struct job *jb = rq->id != 0 ? tr__jobs_find(j, rq->id) : NULL;
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
	} else if (jb == NULL || !tr__jobs_is_final(jb->st.state)) {
		err = watcher_add(cx, list, rq->pid, jb == NULL);
	} else {
		/* It already happened: repeat the last event to this one. */
		ev = event_make(jb);
		err = ev != NULL ? TR_OK : TR_ENOMEM;
	}
	tr__jobs_answer(cx, m, err, rq->id);
	if (ev != NULL) {
		event_send(cx, j, rq->pid, ev);
		free(ev);
	}
}

static void
on_stats(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	(void)tr_reply(cx, m, TR_MSG_JOBS_STATS_REPLY, &j->stats,
		       sizeof(j->stats));
}

/* ---- reports, timeouts and DOWNs ---------------------------------------- */

static void
on_report(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const struct report *r = m->data;
	struct job *jb = tr__jobs_find(j, r->id);

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
		emit(cx, j, jb, TR_JOB_EV_PROGRESS);
	} else if (r->state == TR_JOB_SUCCEEDED) {
		/* The record keeps the report if a result follows it. */
		jb->st.result_size = m->size - sizeof(*r);
		jb->done =
			jb->st.result_size > 0 ? tr_msg_take_ptr(cx, m) : NULL;
		jb->st.progress = 100;
		tr__jobs_end(cx, j, jb, TR_JOB_SUCCEEDED, TR_EXIT_NORMAL, NULL);
	} else {
		tr__jobs_end(cx, j, jb, TR_JOB_FAILED, TR_EXIT_NORMAL, r->note);
	}
}

static void
on_timeout(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const uint64_t *id = m->data;

	if (!tr_pid_eq(m->from, tr_self(cx))) {
		tr__jobs_unhandled(cx, j, m);
		return;
	}
	/* A tick from a timer cancelled too late finds the job final. */
	struct job *jb = tr__jobs_find(j, *id);
	if (jb != NULL) {
		tr__jobs_end(cx, j, jb, TR_JOB_TIMED_OUT, TR_JOBS_EXIT_TIMEOUT,
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
		tr__jobs_free(&jb->node); /* dropped from the table meanwhile */
	} else {
		tr__jobs_end(cx, j, jb, TR_JOB_FAILED, reason, note);
	}
}

static void
on_down(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_down *d = m->data;

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
			tr__jobs_pump(cx, j, k);
			return;
		}
	}
	/* Not a job's: a watcher of every job stopped. */
	watcher_remove(cx, &j->all, d->who);
}

/* ---- the actor ---------------------------------------------------------- */

/* The start, the first message (see boot.h): the kinds and the table;
 * with a store, the journal is read back before the start is answered. */
static void
on_start(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	tr_msg start;
	/* Its size counts the kinds. Held from now on, the teardown frees
	 * it whatever happens next. */
	j->boot = tr__boot_take(cx, m, m->size, &start);
	tr_err err = tr__hash_init(&j->tab, TABLE_BUCKETS0);
	if (err < 0) {
		tr__jobs_answer(cx, &start, err, 0);
		tr_stop_self(cx, TR_EXIT_ERROR);
	} else if (tr_pid_is_none(j->boot->store)) {
		tr__jobs_answer(cx, &start, TR_OK, 0);
	} else {
		tr__jobs_store_start(cx, j, &start);
	}
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
	if (tr__jobs_store_handle(cx, j, m)) {
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
	tr__jobs_unhandled(cx, j, m);
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
	tr__jobs_store_stop(j);
	while (j->active != NULL) {
		struct job *jb = j->active;
		j->active = jb->anext;
		(void)tr_stop(cx, jb->st.worker, TR_EXIT_SHUTDOWN);
		actor_gone(cx, j, jb, TR_EXIT_SHUTDOWN, "the service stopped");
	}
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		struct kind *k = &j->boot->kinds[i];
		while (k->queue.head != NULL) {
			tr__jobs_end(cx, j, k->queue.head, TR_JOB_FAILED, 0,
				     "the service stopped");
		}
	}
	watchers_clear(&j->all);
	tr__hash_fini(&j->tab, tr__jobs_free);
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
	/* The boot carries copies of the kinds, which the service keeps;
	 * each is checked against those copied before it. */
	size_t size = sizeof(struct boot) + cfg->nkinds * sizeof(struct kind);
	struct boot *b = calloc(1, size);
	if (b == NULL) {
		return tr__boot_fail(TR_ENOMEM, out, ref);
	}
	b->max_finished = cfg->max_finished != 0 ? cfg->max_finished
						 : DEFAULT_MAX_FINISHED;
	tr_err err = tr__jobs_store_config(b, cfg);
	for (uint32_t i = 0; err == TR_OK && i < cfg->nkinds; i++) {
		const tr_jobs_kind *k = &cfg->kinds[i];
		err = !kind_ok(k)                         ? TR_EINVAL
		      : tr__jobs_kind(b, k->name) != NULL ? TR_EEXIST
							  : TR_OK;
		if (err < 0) {
			break;
		}
		struct kind *to = &b->kinds[b->nkinds++];
		memcpy(to->name, k->name, strlen(k->name));
		to->cfg = *k;
		to->cfg.name = to->name;
	}
	if (err < 0) {
		free(b);
		return tr__boot_fail(err, out, ref);
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
	if (tr__jobs_is_final(state)) {
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
