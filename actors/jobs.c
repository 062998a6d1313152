/*
 * Jobs (<troupe/actors/jobs.h>): a background job runner with one actor
 * per running job, written on the public API only.
 *
 * Three parts, kept apart so that a persistence layer can replace the
 * first one and write through the second:
 *
 *   The job table  records by id in a hash table, the finished ones in
 *                  a FIFO for eviction. table_*() are the only functions
 *                  that create, find or drop records.
 *   The state      job_transition() is the one place a job's state
 *   machine        changes: it checks the move against the diagram in the
 *                  header and keeps the per-state counters.
 *   The runner     the service's actor. It owns the kind queues, starts
 *                  job actors (monitored), arms timeouts, takes reports
 *                  from job actors, cancels, and sends every event.
 *
 * Threads and locks. The public service functions run on any thread;
 * they take the service's mutex, read or insert records, and send the
 * runner a message while holding it, so the runner receives submissions
 * in id order. The runner takes the same mutex for each message it
 * handles; it is the only writer of a record after its insertion. The
 * functions for job actors (tr_job_*) take no lock: they send to the
 * runner.
 *
 * Job actors. A kind's definition is wrapped: job actors are spawned from
 * a copy whose state starts with a header (the job id, the runner's pid,
 * the payload), followed by the user's state, and whose init, handler and
 * teardown call the user's with that state. While the user's init or
 * handler runs, a thread-local pointer names the header, which is how
 * tr_job_progress() and friends find their job from a tr_ctx alone (a
 * handler runs to completion on one thread). The copies live in a
 * process-wide list that only grows, one per distinct definition: a job
 * actor may outlive the service (a runtime stop ends actors in any
 * order), and an actor's definition must outlive it.
 *
 * Invariants (under the mutex):
 * - a record in TR_JOB_QUEUED whose MSG_SUBMIT the runner has handled is
 *   in its kind's queue exactly once;
 * - kind->active counts the kind's job actors that exist (spawned, DOWN
 *   not handled yet); it never exceeds kind->max;
 * - a record with a final state is in the finished FIFO, has no
 *   watchers, no payload and no timer.
 *
 * Lifetime: the service is reference counted, one reference for the
 * owner (tr_jobs_destroy()), one for the runner (its teardown).
 */
#include <troupe/actors/jobs.h>

#include "defs.h"
#include "hash.h"
#include "ref.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The runner's own messages (the header keeps 0x80 and up private). */
#define MSG_SUBMIT   (TR_MSG_JOBS_BASE + 0x80u) /* uint64_t id */
#define MSG_CANCEL   (TR_MSG_JOBS_BASE + 0x81u) /* uint64_t id */
#define MSG_WATCH    (TR_MSG_JOBS_BASE + 0x82u) /* struct watch_wire */
#define MSG_DONE     (TR_MSG_JOBS_BASE + 0x83u) /* struct done_wire + bytes */
#define MSG_PROGRESS (TR_MSG_JOBS_BASE + 0x84u) /* struct progress_wire */
#define MSG_TIMEOUT  (TR_MSG_JOBS_BASE + 0x85u) /* uint64_t id */

#define DEFAULT_MAX_FINISHED 10000u
#define TABLE_BUCKETS0       64u

/* ------------------------------------------------------------------ */
/* Wire formats (copied with memcpy: payloads carry no alignment)      */

struct watch_wire {
	uint64_t id;
	tr_pid pid;
	uint32_t on;
	uint32_t reserved;
};

struct done_wire {
	uint64_t id;
	uint32_t ok;
	uint32_t reserved;
	char note[TR_JOB_NOTE_MAX];
};

struct progress_wire {
	uint64_t id;
	uint32_t percent;
	uint32_t reserved;
	char note[TR_JOB_NOTE_MAX];
};

static void
note_copy(char *dst, const char *src)
{
	size_t n = 0;

	if (src != NULL) {
		n = strnlen(src, TR_JOB_NOTE_MAX - 1);
		memcpy(dst, src, n);
	}
	memset(dst + n, 0, TR_JOB_NOTE_MAX - n);
}

/* ------------------------------------------------------------------ */
/* Wrapped job definitions                                             */

/* What a job actor's state starts with; the user's state follows. */
struct jhdr {
	const tr_actor_def *user;
	tr_pid runner;
	tr_pid self;
	tr_job_info info;
	void *payload;
	bool finished; /* tr_job_complete() or tr_job_fail() was called */
	bool init_ran; /* the user's init was called */
	char kind[TR_JOBS_KIND_MAX + 1];
};

/* The header rounded up, so that the user's state is aligned as any
 * allocation is. */
#define HDR_SIZE                                                               \
	((sizeof(struct jhdr) + alignof(max_align_t) - 1) /                    \
	 alignof(max_align_t) * alignof(max_align_t))

/* The init argument of a job actor; freed by its init. */
struct start_rec {
	const tr_actor_def *user;
	tr_pid runner;
	uint64_t id;
	void *payload; /* moves to the header */
	size_t len;
	char kind[TR_JOBS_KIND_MAX + 1];
};

/* The job whose init or handler runs on this thread, if any. */
static _Thread_local struct jhdr *cur_job;

static void *
user_state(struct jhdr *h)
{
	return h->user->state_size > 0 ? (char *)h + HDR_SIZE : NULL;
}

static int
jw_init(tr_ctx *cx, void *state, void *arg)
{
	struct jhdr *h = state;
	struct start_rec *rec = arg;

	h->user = rec->user;
	h->runner = rec->runner;
	h->self = tr_self(cx);
	h->payload = rec->payload;
	memcpy(h->kind, rec->kind, sizeof(h->kind));
	h->info.id = rec->id;
	h->info.kind = h->kind;
	h->info.payload = h->payload;
	h->info.size = rec->len;
	free(rec);
	if (h->user->init == NULL) {
		return TR_OK;
	}
	struct jhdr *prev = cur_job;
	cur_job = h;
	h->init_ran = true;
	int r = h->user->init(cx, user_state(h), &h->info);
	cur_job = prev;
	return r;
}

static void
jw_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jhdr *h = state;
	struct jhdr *prev = cur_job;

	cur_job = h;
	h->user->handle(cx, user_state(h), m);
	cur_job = prev;
}

static void
jw_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct jhdr *h = state;

	/* As the runtime does: teardown follows an init that ran, also one
	 * that failed. A job cannot report from its teardown. */
	if (h->user != NULL && h->user->teardown != NULL &&
	    (h->user->init == NULL || h->init_ran)) {
		struct jhdr *prev = cur_job;
		cur_job = NULL;
		h->user->teardown(cx, user_state(h), reason);
		cur_job = prev;
	}
	free(h->payload);
	h->payload = NULL;
}

static _Atomic(struct tr__def *) jdefs;

/* Job actors run the wrapper, with the job's header before the state. */
static void
derive_job(const tr_actor_def *user, tr_actor_def *out)
{
	out->name = user->name;
	out->state_size = HDR_SIZE + user->state_size;
	out->init = jw_init;
	out->teardown = jw_teardown;
	out->handle = jw_handle;
	out->mailbox_bound = user->mailbox_bound;
}

/* ------------------------------------------------------------------ */
/* The service                                                         */

struct watcher {
	struct watcher *next;
	tr_pid pid;
	tr_ref ref; /* watchers of every job: the runner's monitor */
};

struct kind;

struct job {
	struct tr__hnode node; /* first: the table's; node.hash of the id */
	struct job *qnext;     /* kind queue, then finished FIFO */
	struct job *qprev;     /* kind queue only */
	uint64_t id;
	struct kind *kind;
	uint32_t state;
	uint32_t progress;
	uint32_t seq; /* events sent */
	int32_t exit_reason;
	tr_pid worker;
	tr_pid first_watcher;
	uint64_t timeout_ms;
	tr_timer_id timer;
	bool has_timer;
	bool in_queue;
	void *payload; /* until the job starts */
	size_t len;
	void *result;
	size_t result_len;
	struct watcher *watchers;
	char note[TR_JOB_NOTE_MAX];
};

struct kind {
	struct kind *next;
	char name[TR_JOBS_KIND_MAX + 1];
	const struct tr__def *jd;
	uint32_t max;
	uint32_t active;
	struct job *qhead;
	struct job *qtail;
};

/* A job actor that exists: its slot is held until its DOWN. */
struct active {
	struct active *next;
	tr_pid pid;
	tr_ref ref;
	uint64_t id;
	struct kind *kind;
};

struct tr_jobs {
	tr_runtime *rt;
	tr_pid runner;
	atomic_uint refs;
	pthread_mutex_t mu;
	bool closed;
	uint32_t max_finished;
	uint64_t next_id;
	/* The table. */
	struct tr__htab tab;
	struct job *fin_head;
	struct job *fin_tail;
	size_t nfinished;
	/* The runner's. */
	struct kind *kinds;
	struct active *active;
	struct watcher *all;
	/* Counters of struct tr_jobs_stats. */
	uint64_t submitted;
	uint64_t by_state[TR_JOB_TIMED_OUT + 1];
	uint64_t events_dropped;
};

/* ---- the job table ------------------------------------------------------ */

static struct job *
table_find(const tr_jobs *j, uint64_t id)
{
	uint64_t hash = tr__hash_u64(id);

	for (struct tr__hnode *n = tr__hash_chain(&j->tab, hash); n != NULL;
	     n = n->next) {
		struct job *jb = (struct job *)n; /* the node is first */
		if (jb->id == id) {
			return jb;
		}
	}
	return NULL;
}

static void
table_insert(tr_jobs *j, struct job *jb)
{
	jb->node.hash = tr__hash_u64(jb->id);
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

static void
job_free(struct job *jb)
{
	watchers_clear(&jb->watchers);
	free(jb->payload);
	free(jb->result);
	free(jb);
}

static void
job_free_node(struct tr__hnode *n)
{
	job_free((struct job *)n); /* the node is first */
}

/* Unlinks @jb from the hash table (not from the queues) and frees it. */
static void
table_remove(tr_jobs *j, struct job *jb)
{
	tr__hash_unlink(&j->tab, &jb->node);
	job_free(jb);
}

/* Keeps a finished record; drops the oldest beyond the limit. */
static void
table_finished(tr_jobs *j, struct job *jb)
{
	jb->qnext = NULL;
	if (j->fin_tail != NULL) {
		j->fin_tail->qnext = jb;
	} else {
		j->fin_head = jb;
	}
	j->fin_tail = jb;
	j->nfinished++;
	while (j->nfinished > j->max_finished) {
		struct job *old = j->fin_head;
		j->fin_head = old->qnext;
		if (j->fin_head == NULL) {
			j->fin_tail = NULL;
		}
		j->nfinished--;
		table_remove(j, old);
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
 * through here, which is where a persistent store writes the record.
 */
static bool
job_transition(tr_jobs *j, struct job *jb, uint32_t to)
{
	bool ok;

	switch (jb->state) {
	case TR_JOB_QUEUED:
		ok = to == TR_JOB_RUNNING || to == TR_JOB_CANCELLED ||
		     to == TR_JOB_FAILED; /* it could not be started */
		break;
	case TR_JOB_RUNNING:
		ok = is_final(to);
		break;
	default:
		ok = false;
		break;
	}
	if (!ok) {
		return false;
	}
	j->by_state[jb->state]--;
	j->by_state[to]++;
	jb->state = to;
	return true;
}

/* ---- the runner --------------------------------------------------------- */

struct runner {
	tr_jobs *j;
};

static struct kind *
kind_find(const tr_jobs *j, const char *name)
{
	for (struct kind *k = j->kinds; k != NULL; k = k->next) {
		if (strcmp(k->name, name) == 0) {
			return k;
		}
	}
	return NULL;
}

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

static void
event_send(tr_ctx *cx, tr_jobs *j, tr_pid to, const void *buf, size_t len)
{
	if (tr_send(cx, to, TR_MSG_JOB_EVENT, buf, len) == TR_EFULL) {
		j->events_dropped++;
	}
}

/* The event of @jb numbered @seq (struct tr_job_event and the result
 * bytes); NULL without memory. */
static unsigned char *
event_make(const struct job *jb, uint32_t event, uint32_t seq, size_t *len)
{
	size_t rlen = 0;

	if (event == TR_JOB_EV_FINISHED && jb->state == TR_JOB_SUCCEEDED) {
		rlen = jb->result_len;
	}
	tr_job_event *ev = calloc(1, sizeof(*ev) + rlen);
	if (ev == NULL) {
		return NULL;
	}
	ev->seq = seq;
	ev->id = jb->id;
	ev->event = event;
	ev->state = jb->state;
	ev->progress = jb->progress;
	ev->exit_reason = jb->exit_reason;
	ev->worker = jb->worker;
	memcpy(ev->kind, jb->kind->name, sizeof(ev->kind));
	ev->kind[TR_JOBS_KIND_MAX] = '\0';
	memcpy(ev->note, jb->note, sizeof(ev->note));
	ev->note[TR_JOB_NOTE_MAX - 1] = '\0';
	ev->result_size = rlen;
	if (rlen > 0) {
		memcpy(ev->result, jb->result, rlen);
	}
	*len = sizeof(*ev) + rlen;
	return (unsigned char *)ev;
}

/* Tells the job's watchers and the watchers of every job. */
static void
emit(tr_ctx *cx, tr_jobs *j, struct job *jb, uint32_t event)
{
	size_t len;
	uint32_t seq = ++jb->seq;

	if (jb->watchers == NULL && j->all == NULL) {
		return;
	}
	unsigned char *buf = event_make(jb, event, seq, &len);
	if (buf == NULL) {
		/* Best effort, as documented: the gap in seq shows it. */
		j->events_dropped++;
		return;
	}
	for (struct watcher *w = jb->watchers; w != NULL; w = w->next) {
		event_send(cx, j, w->pid, buf, len);
	}
	for (struct watcher *w = j->all; w != NULL; w = w->next) {
		if (!has_watcher(jb->watchers, w->pid)) {
			event_send(cx, j, w->pid, buf, len);
		}
	}
	free(buf);
}

static void
queue_remove(struct kind *k, struct job *jb)
{
	if (jb->qprev != NULL) {
		jb->qprev->qnext = jb->qnext;
	} else {
		k->qhead = jb->qnext;
	}
	if (jb->qnext != NULL) {
		jb->qnext->qprev = jb->qprev;
	} else {
		k->qtail = jb->qprev;
	}
	jb->qnext = NULL;
	jb->qprev = NULL;
	jb->in_queue = false;
}

/* After the final state was set: the one FINISHED event, then the
 * record keeps only what status needs. */
static void
finish(tr_ctx *cx, tr_jobs *j, struct job *jb)
{
	if (jb->has_timer) {
		(void)tr_timer_cancel(cx, jb->timer);
		jb->has_timer = false;
	}
	emit(cx, j, jb, TR_JOB_EV_FINISHED);
	watchers_clear(&jb->watchers);
	free(jb->payload);
	jb->payload = NULL;
	jb->len = 0;
	table_finished(j, jb);
}

static void
fail_start(tr_ctx *cx, tr_jobs *j, struct job *jb, tr_err err)
{
	if (job_transition(j, jb, TR_JOB_FAILED)) {
		snprintf(jb->note, sizeof(jb->note), "could not start: %s",
			 tr_err_name(err));
		finish(cx, j, jb);
	}
}

static void
start(tr_ctx *cx, tr_jobs *j, struct kind *k, struct job *jb)
{
	struct start_rec *rec = malloc(sizeof(*rec));
	struct active *a = malloc(sizeof(*a));
	tr_pid pid;
	tr_ref ref;

	if (rec == NULL || a == NULL) {
		free(rec);
		free(a);
		fail_start(cx, j, jb, TR_ENOMEM);
		return;
	}
	rec->user = &k->jd->user;
	rec->runner = tr_self(cx);
	rec->id = jb->id;
	rec->payload = jb->payload;
	rec->len = jb->len;
	memcpy(rec->kind, k->name, sizeof(rec->kind));
	/* Monitored before it runs: even a failing init is seen. */
	tr_err err = tr_spawn_monitor(cx, &k->jd->def, rec, &pid, &ref);
	if (err < 0) {
		free(rec);
		free(a);
		fail_start(cx, j, jb, err);
		return;
	}
	jb->payload = NULL; /* the job actor's now */
	jb->len = 0;
	a->pid = pid;
	a->ref = ref;
	a->id = jb->id;
	a->kind = k;
	a->next = j->active;
	j->active = a;
	k->active++;
	jb->worker = pid;
	(void)job_transition(j, jb, TR_JOB_RUNNING);
	emit(cx, j, jb, TR_JOB_EV_STARTED);
	if (jb->timeout_ms > 0) {
		/* A timer that cannot be armed (no memory, the runtime
		 * stopping) leaves the job without a limit rather than
		 * failing a job that did nothing wrong. */
		jb->has_timer =
			tr_send_after(cx, tr_self(cx), MSG_TIMEOUT, &jb->id,
				      sizeof(jb->id), jb->timeout_ms,
				      &jb->timer) == TR_OK;
	}
}

/* Starts queued jobs of @k while it has free slots. */
static void
pump(tr_ctx *cx, tr_jobs *j, struct kind *k)
{
	while (k->active < k->max && k->qhead != NULL) {
		struct job *jb = k->qhead;
		queue_remove(k, jb);
		start(cx, j, k, jb);
	}
}

static bool
read_id(const tr_msg *m, uint64_t *id)
{
	if (m->data == NULL || m->size != sizeof(*id)) {
		return false;
	}
	memcpy(id, m->data, sizeof(*id));
	return true;
}

static tr_err
watcher_add(struct watcher **list, tr_pid pid, tr_ref ref)
{
	if (has_watcher(*list, pid)) {
		return TR_EEXIST;
	}
	struct watcher *w = malloc(sizeof(*w));
	if (w == NULL) {
		return TR_ENOMEM;
	}
	w->pid = pid;
	w->ref = ref;
	w->next = *list;
	*list = w;
	return TR_OK;
}

/* Removes @pid; returns the removed entry's ref through @ref. */
static bool
watcher_remove(struct watcher **list, tr_pid pid, tr_ref *ref)
{
	for (struct watcher **pp = list; *pp != NULL; pp = &(*pp)->next) {
		struct watcher *w = *pp;
		if (tr_pid_eq(w->pid, pid)) {
			*pp = w->next;
			if (ref != NULL) {
				*ref = w->ref;
			}
			free(w);
			return true;
		}
	}
	return false;
}

static void
on_submit(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	uint64_t id;

	if (!read_id(m, &id)) {
		return;
	}
	struct job *jb = table_find(j, id);
	if (jb == NULL || jb->state != TR_JOB_QUEUED || jb->in_queue) {
		return;
	}
	if (!tr_pid_is_none(jb->first_watcher)) {
		/* Without memory the watcher misses the events; the job
		 * itself is not affected. */
		(void)watcher_add(&jb->watchers, jb->first_watcher,
				  (tr_ref){ 0 });
	}
	emit(cx, j, jb, TR_JOB_EV_QUEUED);
	struct kind *k = jb->kind;
	jb->qnext = NULL;
	jb->qprev = k->qtail;
	if (k->qtail != NULL) {
		k->qtail->qnext = jb;
	} else {
		k->qhead = jb;
	}
	k->qtail = jb;
	jb->in_queue = true;
	pump(cx, j, k);
}

/* Ends a running job by the service's decision and stops its actor. */
static void
stop_running(tr_ctx *cx, tr_jobs *j, struct job *jb, uint32_t to,
	     int32_t reason, const char *note)
{
	if (!job_transition(j, jb, to)) {
		return;
	}
	jb->exit_reason = reason;
	note_copy(jb->note, note);
	/* Queued behind what its mailbox holds; a complete it sends
	 * meanwhile finds the job final and is ignored. */
	(void)tr_stop(cx, jb->worker, reason);
	finish(cx, j, jb);
}

static void
on_cancel(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	uint64_t id;

	if (!read_id(m, &id)) {
		return;
	}
	struct job *jb = table_find(j, id);
	if (jb == NULL) {
		return;
	}
	if (jb->state == TR_JOB_QUEUED) {
		if (jb->in_queue) {
			queue_remove(jb->kind, jb);
		}
		if (job_transition(j, jb, TR_JOB_CANCELLED)) {
			note_copy(jb->note, "cancelled");
			finish(cx, j, jb);
		}
	} else if (jb->state == TR_JOB_RUNNING) {
		stop_running(cx, j, jb, TR_JOB_CANCELLED,
			     TR_JOBS_EXIT_CANCELLED, "cancelled");
	}
}

static void
on_timeout(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	uint64_t id;

	if (!tr_pid_eq(m->from, tr_self(cx)) || !read_id(m, &id)) {
		return;
	}
	struct job *jb = table_find(j, id);
	if (jb == NULL || jb->state != TR_JOB_RUNNING || !jb->has_timer) {
		return; /* a tick from a timer cancelled too late */
	}
	jb->has_timer = false;
	stop_running(cx, j, jb, TR_JOB_TIMED_OUT, TR_JOBS_EXIT_TIMEOUT,
		     "timed out");
}

static void
on_done(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	struct done_wire d;

	if (m->data == NULL || m->size < sizeof(d)) {
		return;
	}
	memcpy(&d, m->data, sizeof(d));
	struct job *jb = table_find(j, d.id);
	if (jb == NULL || jb->state != TR_JOB_RUNNING ||
	    !tr_pid_eq(jb->worker, m->from)) {
		return; /* late: the job was cancelled or timed out */
	}
	size_t rlen = m->size - sizeof(d);
	void *result = NULL;
	if (d.ok && rlen > 0) {
		result = malloc(rlen);
		if (result == NULL) {
			/* Better a failed job than a result that lies. */
			d.ok = 0;
			note_copy(d.note, "no memory for the result");
		} else {
			memcpy(result,
			       (const unsigned char *)m->data + sizeof(d),
			       rlen);
		}
	}
	if (!job_transition(j, jb, d.ok ? TR_JOB_SUCCEEDED : TR_JOB_FAILED)) {
		free(result);
		return;
	}
	d.note[TR_JOB_NOTE_MAX - 1] = '\0';
	note_copy(jb->note, d.ok ? NULL : d.note);
	if (d.ok) {
		jb->progress = 100;
		jb->result = result;
		jb->result_len = result != NULL ? rlen : 0;
	}
	jb->exit_reason = TR_EXIT_NORMAL;
	finish(cx, j, jb);
}

static void
on_progress(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	struct progress_wire p;

	if (m->data == NULL || m->size != sizeof(p)) {
		return;
	}
	memcpy(&p, m->data, sizeof(p));
	struct job *jb = table_find(j, p.id);
	if (jb == NULL || jb->state != TR_JOB_RUNNING ||
	    !tr_pid_eq(jb->worker, m->from) || p.percent > 100) {
		return;
	}
	p.note[TR_JOB_NOTE_MAX - 1] = '\0';
	jb->progress = p.percent;
	note_copy(jb->note, p.note);
	emit(cx, j, jb, TR_JOB_EV_PROGRESS);
}

static void
on_watch(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	struct watch_wire w;
	tr_ref ref;

	if (m->data == NULL || m->size != sizeof(w)) {
		return;
	}
	memcpy(&w, m->data, sizeof(w));
	if (w.id == 0) {
		if (!w.on) {
			if (watcher_remove(&j->all, w.pid, &ref)) {
				(void)tr_demonitor(cx, ref);
			}
			return;
		}
		if (has_watcher(j->all, w.pid) ||
		    tr_monitor(cx, w.pid, &ref) < 0) {
			return;
		}
		if (watcher_add(&j->all, w.pid, ref) < 0) {
			(void)tr_demonitor(cx, ref);
		}
		return;
	}
	struct job *jb = table_find(j, w.id);
	if (jb == NULL) {
		return;
	}
	if (!w.on) {
		(void)watcher_remove(&jb->watchers, w.pid, NULL);
		return;
	}
	if (is_final(jb->state)) {
		/* It already happened: repeat the last event to this one. */
		size_t len;
		unsigned char *buf =
			event_make(jb, TR_JOB_EV_FINISHED, jb->seq, &len);
		if (buf != NULL) {
			event_send(cx, j, w.pid, buf, len);
			free(buf);
		}
		return;
	}
	(void)watcher_add(&jb->watchers, w.pid, (tr_ref){ 0 });
}

static void
on_down(tr_ctx *cx, tr_jobs *j, const tr_msg *m)
{
	tr_down d;

	if (m->data == NULL || m->size != sizeof(d)) {
		return;
	}
	memcpy(&d, m->data, sizeof(d));
	for (struct active **pp = &j->active; *pp != NULL; pp = &(*pp)->next) {
		struct active *a = *pp;
		if (a->ref.v != d.ref.v) {
			continue;
		}
		*pp = a->next;
		struct kind *k = a->kind;
		struct job *jb = table_find(j, a->id);
		free(a);
		k->active--;
		if (jb != NULL && jb->state == TR_JOB_RUNNING &&
		    job_transition(j, jb, TR_JOB_FAILED)) {
			/* It stopped without a result: a crash. */
			jb->exit_reason = d.reason;
			note_copy(jb->note,
				  d.reason == TR_EXIT_INIT_FAILED
					  ? "init failed"
					  : "stopped without a result");
			finish(cx, j, jb);
		}
		pump(cx, j, k);
		return;
	}
	for (struct watcher *w = j->all; w != NULL; w = w->next) {
		if (w->ref.v == d.ref.v) {
			(void)watcher_remove(&j->all, w->pid, NULL);
			return;
		}
	}
}

static int
runner_init(tr_ctx *cx, void *state, void *arg)
{
	struct runner *r = state;

	(void)cx;
	r->j = arg;
	return TR_OK;
}

static void
runner_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_jobs *j = ((struct runner *)state)->j;

	pthread_mutex_lock(&j->mu);
	switch (m->type) {
	case MSG_SUBMIT:
		on_submit(cx, j, m);
		break;
	case MSG_CANCEL:
		on_cancel(cx, j, m);
		break;
	case MSG_WATCH:
		on_watch(cx, j, m);
		break;
	case MSG_DONE:
		on_done(cx, j, m);
		break;
	case MSG_PROGRESS:
		on_progress(cx, j, m);
		break;
	case MSG_TIMEOUT:
		on_timeout(cx, j, m);
		break;
	case TR_MSG_DOWN:
		on_down(cx, j, m);
		break;
	default:
		break; /* not ours: ignored */
	}
	pthread_mutex_unlock(&j->mu);
}

static void jobs_release(tr_jobs *j);

static void
runner_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	tr_jobs *j = ((struct runner *)state)->j;

	(void)reason;
	pthread_mutex_lock(&j->mu);
	j->closed = true;
	/* Job actors do not outlive the service that watches them. */
	while (j->active != NULL) {
		struct active *a = j->active;
		j->active = a->next;
		(void)tr_stop(cx, a->pid, TR_EXIT_SHUTDOWN);
		a->kind->active--;
		free(a);
	}
	watchers_clear(&j->all);
	pthread_mutex_unlock(&j->mu);
	jobs_release(j);
}

static const tr_actor_def runner_def = {
	.size = sizeof(tr_actor_def),
	.name = "jobs",
	.state_size = sizeof(struct runner),
	.init = runner_init,
	.teardown = runner_teardown,
	.handle = runner_handle,
};

/* ---- create and destroy ------------------------------------------------- */

static void
jobs_free(tr_jobs *j)
{
	tr__hash_fini(&j->tab, job_free_node);
	while (j->kinds != NULL) {
		struct kind *k = j->kinds;
		j->kinds = k->next;
		free(k);
	}
	while (j->active != NULL) {
		struct active *a = j->active;
		j->active = a->next;
		free(a);
	}
	watchers_clear(&j->all);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void
jobs_release(tr_jobs *j)
{
	if (tr__ref_put(&j->refs)) {
		jobs_free(j);
	}
}

tr_err
tr_jobs_create(tr_runtime *rt, const tr_jobs_config *cfg, tr_jobs **out)
{
	tr_err err;

	if (out != NULL) {
		*out = NULL;
	}
	if (rt == NULL || out == NULL ||
	    (cfg != NULL && cfg->size < sizeof(*cfg))) {
		return TR_EINVAL;
	}
	tr_jobs *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		return TR_ENOMEM;
	}
	j->rt = rt;
	j->max_finished = cfg != NULL && cfg->max_finished != 0
				  ? cfg->max_finished
				  : DEFAULT_MAX_FINISHED;
	err = tr__hash_init(&j->tab, TABLE_BUCKETS0);
	if (err < 0) {
		goto err_free;
	}
	if (pthread_mutex_init(&j->mu, NULL) != 0) {
		err = TR_ESYS;
		goto err_buckets;
	}
	/* One reference for the caller, one for the runner's teardown. */
	atomic_init(&j->refs, 2);
	err = tr_spawn(tr_runtime_ctx(rt), &runner_def, j, &j->runner);
	if (err < 0) {
		goto err_mutex;
	}
	*out = j;
	return TR_OK;

err_mutex:
	pthread_mutex_destroy(&j->mu);
err_buckets:
	tr__hash_fini(&j->tab, NULL);
err_free:
	free(j);
	return err;
}

void
tr_jobs_destroy(tr_jobs *j)
{
	if (j == NULL) {
		return;
	}
	pthread_mutex_lock(&j->mu);
	j->closed = true;
	pthread_mutex_unlock(&j->mu);
	/* After a join the runner is gone: this is a counted dead letter. */
	(void)tr_stop(tr_runtime_ctx(j->rt), j->runner, TR_EXIT_SHUTDOWN);
	jobs_release(j);
}

/* ---- the service's functions -------------------------------------------- */

static tr_err
check_kind(const char *kind)
{
	if (kind == NULL) {
		return TR_EINVAL;
	}
	size_t n = strnlen(kind, TR_JOBS_KIND_MAX + 1);
	return n == 0 || n > TR_JOBS_KIND_MAX ? TR_EINVAL : TR_OK;
}

tr_err
tr_jobs_register(tr_jobs *j, const char *kind, const tr_actor_def *def,
		 uint32_t max_concurrency)
{
	tr_err err = TR_OK;

	if (j == NULL || check_kind(kind) < 0 || def == NULL ||
	    def->size < sizeof(tr_actor_def) || def->handle == NULL ||
	    max_concurrency == 0) {
		return TR_EINVAL;
	}
	const struct tr__def *jd =
		def->state_size > SIZE_MAX - HDR_SIZE
			? NULL
			: tr__def_get(&jdefs, def, derive_job);
	if (jd == NULL) {
		return TR_ENOMEM;
	}
	struct kind *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		return TR_ENOMEM;
	}
	memcpy(k->name, kind, strlen(kind) + 1);
	k->jd = jd;
	k->max = max_concurrency;
	pthread_mutex_lock(&j->mu);
	if (j->closed) {
		err = TR_ECLOSED;
	} else if (kind_find(j, kind) != NULL) {
		err = TR_EEXIST;
	} else {
		k->next = j->kinds;
		j->kinds = k;
		k = NULL;
	}
	pthread_mutex_unlock(&j->mu);
	free(k);
	return err;
}

tr_err
tr_jobs_submit(tr_jobs *j, const char *kind, const void *payload, size_t len,
	       uint64_t timeout_ms, tr_pid watcher, uint64_t *id)
{
	tr_err err;

	if (id != NULL) {
		*id = 0;
	}
	if (j == NULL || check_kind(kind) < 0 || id == NULL ||
	    (payload == NULL && len > 0) || tr_pid_node(watcher) != 0) {
		return TR_EINVAL;
	}
	struct job *jb = calloc(1, sizeof(*jb));
	if (jb == NULL) {
		return TR_ENOMEM;
	}
	if (len > 0) {
		jb->payload = malloc(len);
		if (jb->payload == NULL) {
			free(jb);
			return TR_ENOMEM;
		}
		memcpy(jb->payload, payload, len);
	}
	jb->len = len;
	jb->timeout_ms = timeout_ms;
	jb->first_watcher = watcher;
	jb->state = TR_JOB_QUEUED;
	pthread_mutex_lock(&j->mu);
	if (j->closed) {
		err = TR_ECLOSED;
		goto err_unlock;
	}
	jb->kind = kind_find(j, kind);
	if (jb->kind == NULL) {
		err = TR_ENOENT;
		goto err_unlock;
	}
	jb->id = ++j->next_id;
	/* Sent under the lock, so the runner takes submissions in id
	 * order, which is the FIFO order of each kind. */
	err = tr_send(tr_runtime_ctx(j->rt), j->runner, MSG_SUBMIT, &jb->id,
		      sizeof(jb->id));
	if (err < 0) {
		goto err_unlock;
	}
	table_insert(j, jb);
	j->submitted++;
	j->by_state[TR_JOB_QUEUED]++;
	*id = jb->id;
	pthread_mutex_unlock(&j->mu);
	return TR_OK;

err_unlock:
	pthread_mutex_unlock(&j->mu);
	job_free(jb);
	return err;
}

tr_err
tr_jobs_cancel(tr_jobs *j, uint64_t id)
{
	tr_err err;

	if (j == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&j->mu);
	struct job *jb = table_find(j, id);
	if (j->closed) {
		err = TR_ECLOSED;
	} else if (jb == NULL) {
		err = TR_ENOENT;
	} else if (is_final(jb->state)) {
		err = TR_ESTATE;
	} else {
		err = tr_send(tr_runtime_ctx(j->rt), j->runner, MSG_CANCEL, &id,
			      sizeof(id));
	}
	pthread_mutex_unlock(&j->mu);
	return err;
}

tr_err
tr_jobs_status(tr_jobs *j, uint64_t id, tr_job_status *out)
{
	tr_err err = TR_OK;

	if (j == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	size_t size = out->size;
	memset(out, 0, sizeof(*out));
	out->size = size;
	pthread_mutex_lock(&j->mu);
	struct job *jb = table_find(j, id);
	if (jb == NULL) {
		err = TR_ENOENT;
		goto out;
	}
	if (jb->result_len > 0) {
		out->result = malloc(jb->result_len);
		if (out->result == NULL) {
			err = TR_ENOMEM;
			goto out;
		}
		memcpy(out->result, jb->result, jb->result_len);
		out->result_size = jb->result_len;
	}
	out->id = jb->id;
	out->state = jb->state;
	out->progress = jb->progress;
	out->exit_reason = jb->exit_reason;
	out->worker = jb->worker;
	memcpy(out->kind, jb->kind->name, sizeof(out->kind));
	memcpy(out->note, jb->note, sizeof(out->note));
out:
	pthread_mutex_unlock(&j->mu);
	return err;
}

void
tr_jobs_status_fini(tr_job_status *st)
{
	if (st == NULL) {
		return;
	}
	size_t size = st->size;
	free(st->result);
	memset(st, 0, sizeof(*st));
	st->size = size;
}

static tr_err
watch_send(tr_jobs *j, uint64_t id, tr_pid pid, bool on)
{
	struct watch_wire w = { .id = id, .pid = pid, .on = on };
	tr_err err;

	if (j == NULL || tr_pid_is_none(pid) || tr_pid_node(pid) != 0) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&j->mu);
	if (j->closed) {
		err = TR_ECLOSED;
	} else if (on && id != 0 && table_find(j, id) == NULL) {
		err = TR_ENOENT;
	} else {
		err = tr_send(tr_runtime_ctx(j->rt), j->runner, MSG_WATCH, &w,
			      sizeof(w));
	}
	pthread_mutex_unlock(&j->mu);
	return err;
}

tr_err
tr_jobs_watch(tr_jobs *j, uint64_t id, tr_pid pid)
{
	return watch_send(j, id, pid, true);
}

tr_err
tr_jobs_unwatch(tr_jobs *j, uint64_t id, tr_pid pid)
{
	return watch_send(j, id, pid, false);
}

tr_err
tr_jobs_stats_get(tr_jobs *j, tr_jobs_stats *out)
{
	if (j == NULL || out == NULL || out->size < sizeof(*out)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&j->mu);
	out->submitted = j->submitted;
	out->queued = j->by_state[TR_JOB_QUEUED];
	out->running = j->by_state[TR_JOB_RUNNING];
	out->succeeded = j->by_state[TR_JOB_SUCCEEDED];
	out->failed = j->by_state[TR_JOB_FAILED];
	out->cancelled = j->by_state[TR_JOB_CANCELLED];
	out->timed_out = j->by_state[TR_JOB_TIMED_OUT];
	out->events_dropped = j->events_dropped;
	pthread_mutex_unlock(&j->mu);
	return TR_OK;
}

const char *
tr_job_state_name(int state)
{
	switch (state) {
	case TR_JOB_QUEUED:
		return "queued";
	case TR_JOB_RUNNING:
		return "running";
	case TR_JOB_SUCCEEDED:
		return "succeeded";
	case TR_JOB_FAILED:
		return "failed";
	case TR_JOB_CANCELLED:
		return "cancelled";
	case TR_JOB_TIMED_OUT:
		return "timed out";
	default:
		return "?";
	}
}

/* ---- inside job actors -------------------------------------------------- */

/* The calling job actor's header, or NULL when @cx is not one. */
static struct jhdr *
current(tr_ctx *cx)
{
	struct jhdr *h = cur_job;

	if (h == NULL || !tr_pid_eq(h->self, tr_self(cx))) {
		return NULL;
	}
	return h;
}

tr_err
tr_job_progress(tr_ctx *cx, uint32_t percent, const char *note)
{
	struct progress_wire p;

	if (cx == NULL || percent > 100) {
		return TR_EINVAL;
	}
	struct jhdr *h = current(cx);
	if (h == NULL || h->finished) {
		return TR_ESTATE;
	}
	memset(&p, 0, sizeof(p));
	p.id = h->info.id;
	p.percent = percent;
	note_copy(p.note, note);
	return tr_send(cx, h->runner, MSG_PROGRESS, &p, sizeof(p));
}

static tr_err
job_end(tr_ctx *cx, bool ok, const char *note, const void *data, size_t len)
{
	struct done_wire d;

	if (cx == NULL || (data == NULL && len > 0)) {
		return TR_EINVAL;
	}
	struct jhdr *h = current(cx);
	if (h == NULL || h->finished) {
		return TR_ESTATE;
	}
	h->finished = true;
	if (len > SIZE_MAX - sizeof(d)) {
		tr_stop_self(cx, TR_EXIT_ERROR);
		return TR_EMSGSIZE;
	}
	unsigned char *buf = malloc(sizeof(d) + len);
	if (buf == NULL) {
		/* The runner sees the stop as a failed job. */
		tr_stop_self(cx, TR_EXIT_ERROR);
		return TR_ENOMEM;
	}
	memset(&d, 0, sizeof(d));
	d.id = h->info.id;
	d.ok = ok;
	note_copy(d.note, note);
	memcpy(buf, &d, sizeof(d));
	if (len > 0) {
		memcpy(buf + sizeof(d), data, len);
	}
	tr_err err = tr_send_ptr(cx, h->runner, MSG_DONE, buf, sizeof(d) + len,
				 free);
	tr_stop_self(cx, err == TR_OK ? TR_EXIT_NORMAL : TR_EXIT_ERROR);
	return err;
}

tr_err
tr_job_complete(tr_ctx *cx, const void *data, size_t len)
{
	return job_end(cx, true, NULL, data, len);
}

tr_err
tr_job_fail(tr_ctx *cx, const char *reason)
{
	return job_end(cx, false, reason, NULL, 0);
}
