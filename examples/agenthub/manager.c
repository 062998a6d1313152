/*
 * manager.c - the manager: the hub's front door for tasks.
 *
 * Sessions find it by name ("manager") and send it MSG_TASK. For each
 * task it:
 *
 * 1. plans it (plan.c: which tools on which files, then the model);
 * 2. submits it to the jobs service as a job of kind "task", with the plan
 *    as the payload and itself as the watcher: a request
 *    (TR_MSG_JOBS_SUBMIT) whose reply, matched by its reference, gives the
 *    job's id, or says the task cannot be taken (then the session gets
 *    MSG_REJECTED). The manager does not wait for it: the task is in its
 *    table meanwhile, under the request's reference. The service queues
 *    the job until one of LEADS_MAX slots is free, then starts a task
 *    lead for it (lead.c), which runs the subtasks on the employees;
 * 3. turns the job's events into answers for the session, in order (the
 *    submit's reply comes before the first of them):
 *
 *      job event                     session gets
 *      TR_JOB_EV_QUEUED              MSG_ACCEPTED   (with the plan's size)
 *      TR_JOB_EV_PROGRESS            MSG_PROGRESS   (one per subtask ended)
 *      TR_JOB_EV_FINISHED            MSG_RESULT     (exactly once)
 *
 * The jobs service sends every event of a job from one actor and exactly
 * one FINISHED per job, whatever happens to the lead: it completes, fails,
 * crashes, runs past the task timeout (--task-timeout), or is cancelled.
 * So a session gets exactly one result for every task the manager
 * accepted. The manager monitors each session that has tasks; when one
 * goes away, its jobs are cancelled.
 *
 * Stopping (main.c): after MSG_SHUTDOWN the manager refuses new tasks
 * (MSG_REJECTED, REJECT_STOPPING), and lets the open ones finish. After
 * MSG_ABORT, which comes if they do not finish in time, every task still
 * open gets a failed result at once ("the hub is stopping") and its job
 * is cancelled: an accepted task still gets exactly one result, even
 * when the hub stops before it is done. The task stays in the table
 * until its job's FINISHED event, so "none in flight" still means every
 * job has ended.
 *
 * The manager also relays the circuit breaker's state changes to the
 * "breaker" topic and publishes each task's lifecycle on "tasks", where
 * the monitor listens.
 *
 * With --db it writes the same lifecycle to the activity log, a store
 * actor's (<troupe/actors/store.h>): one record when a task is taken
 * (LOG_TASK: its number, the client's id, the text, the subtasks) and one
 * when it ends (LOG_RESULT with the result or a summary of it,
 * LOG_ABORTED, LOG_CANCELLED), each a TR_MSG_STORE_LOG_APPEND request
 * with the run's id in its body. The store acknowledges a record once it
 * is on disk; nothing waits for that, and a record the store refuses is
 * counted, never a task's failure. A restarted hub reads the records back
 * (main.c) to tell which tasks of the last run finished and which were
 * interrupted.
 *
 * In asyncio terms: the manager is the dispatcher that would call
 * job_manager.submit_job() and forward status updates to the websocket of
 * whoever asked.
 *
 * Threads: one actor; its state is its own. It reads `hub` (read-only).
 */
#include "agenthub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <troupe/actors/jobs.h>
#include <troupe/actors/store.h>

/* A task the manager took and has not answered yet. */
struct task {
	uint64_t job;  /* the job's id, also the task's number; 0 until... */
	tr_ref submit; /* ...the reply to this submit request comes */
	tr_pid session;
	uint32_t seq;   /* the session's number for it */
	uint32_t total; /* subtasks in the plan */
	uint32_t done;  /* progress events so far */
	uint64_t t0_ns;
	bool is_accepted; /* MSG_ACCEPTED sent */
	bool is_answered; /* MSG_RESULT sent (by MSG_ABORT): nothing more */
	bool is_orphan;   /* its session stopped before the job had an id */
	/* With --db, until the task's record is written: its text, then
	 * the client's id as JSON text, each NUL-terminated; may be NULL. */
	char *note;
};

/* A session we monitor because it has tasks. */
struct watch {
	tr_pid pid;
	tr_ref ref;
};

struct manager {
	struct task *tasks; /* in flight, in arrival order */
	size_t n_tasks, cap_tasks;
	struct watch *watches;
	size_t n_watches, cap_watches;
	uint64_t taken, answered, cancelled, aborted;
	uint64_t log_sent, log_written, log_failed; /* records, with --db */
	char log_error[128]; /* the first record the store refused, and why */
	bool is_stopping;    /* MSG_SHUTDOWN came: no new tasks */
	bool is_aborted;     /* MSG_ABORT came: open tasks fail at once */
};

/* ------------------------------------------------------------------ */
/* Small tables                                                        */

/*
 * Linear searches keep the example short: a few dozen tasks are in flight
 * at once. A hub for thousands would use a hash table here; the state is
 * still the manager's alone, so whatever it picks needs no lock.
 */
static struct task *
task_by_job(struct manager *mg, uint64_t job)
{
	for (size_t i = 0; i < mg->n_tasks; i++) {
		if (mg->tasks[i].job == job) {
			return &mg->tasks[i];
		}
	}
	return NULL;
}

static struct task *
task_by_submit(struct manager *mg, tr_ref ref)
{
	for (size_t i = 0; i < mg->n_tasks; i++) {
		if (mg->tasks[i].job == 0 && mg->tasks[i].submit.v == ref.v) {
			return &mg->tasks[i];
		}
	}
	return NULL;
}

static void
task_remove(struct manager *mg, struct task *t)
{
	size_t i = (size_t)(t - mg->tasks);

	free(t->note);
	memmove(&mg->tasks[i], &mg->tasks[i + 1],
		(mg->n_tasks - i - 1) * sizeof(*mg->tasks));
	mg->n_tasks--;
}

/* Make room for one more item in a growing array; false when out of
 * memory (the array is untouched then). */
static bool
grow(void **items, size_t *cap, size_t n, size_t size)
{
	if (n < *cap) {
		return true;
	}
	size_t ncap = *cap > 0 ? *cap * 2 : 16;
	void *p = realloc(*items, ncap * size);
	if (p == NULL) {
		return false;
	}
	*items = p;
	*cap = ncap;
	return true;
}

/* Monitor a session unless we already do. */
static bool
watch(tr_ctx *cx, struct manager *mg, tr_pid pid)
{
	for (size_t i = 0; i < mg->n_watches; i++) {
		if (tr_pid_eq(mg->watches[i].pid, pid)) {
			return true;
		}
	}
	if (!grow((void **)&mg->watches, &mg->cap_watches, mg->n_watches,
		  sizeof(*mg->watches))) {
		return false;
	}
	struct watch *w = &mg->watches[mg->n_watches];
	/* A session that is already gone gets its DOWN (NOPROC) at once. */
	if (tr_monitor(cx, pid, &w->ref) < 0) {
		return false;
	}
	w->pid = pid;
	mg->n_watches++;
	return true;
}

static void
publish(tr_ctx *cx, const struct task *t, uint32_t kind, bool ok, uint64_t ms)
{
	struct task_event ev = {
		.kind = kind,
		.task = t->job,
		.subtasks = t->total,
		.ok = ok,
		.ms = ms,
	};

	/* To every subscriber of "tasks" (the monitor); none is fine too. */
	(void)tr_pubsub_publish(cx, hub.bus, TOPIC_TASKS, MSG_TASK_EVENT, &ev,
				sizeof(ev));
}

/* ------------------------------------------------------------------ */
/* The activity log (--db)                                             */

/* Results longer than this are logged as a summary (log_result()). */
enum { LOG_RESULT_MAX = 4096 };

/* A record's body: {"run": ..., "task": ...}, the rest added by the
 * caller; NULL without --db or memory. */
static cJSON *
log_body(const struct task *t)
{
	cJSON *o;

	if (hub.opt.db == NULL || (o = cJSON_CreateObject()) == NULL) {
		return NULL;
	}
	cJSON_AddNumberToObject(o, "run", (double)hub.run);
	cJSON_AddNumberToObject(o, "task", (double)t->job);
	return o;
}

static void
log_failed(struct manager *mg, const char *why)
{
	if (mg->log_failed++ == 0) {
		snprintf(mg->log_error, sizeof(mg->log_error), "%s", why);
	}
}

/*
 * Append a record of @kind with @body (freed here) to the log: a request
 * whose outcome comes to log_outcome(). Nothing waits for it.
 */
static void
log_append(tr_ctx *cx, struct manager *mg, const char *kind, cJSON *body)
{
	if (body == NULL) {
		if (hub.opt.db != NULL) { /* out of memory: one record less */
			mg->log_sent++;
			log_failed(mg, "out of memory");
		}
		return;
	}
	char *text = cJSON_PrintUnformatted(body);
	size_t len = text != NULL ? strlen(text) : 0;
	tr_store_log_req *q = text != NULL ? calloc(1, sizeof(*q) + len) : NULL;

	cJSON_Delete(body);
	mg->log_sent++;
	if (q == NULL) {
		cJSON_free(text);
		log_failed(mg, "out of memory");
		return;
	}
	q->time_ms = (int64_t)wall_ms();
	snprintf(q->kind, sizeof(q->kind), "%s", kind);
	snprintf(q->actor, sizeof(q->actor), "manager");
	q->size = len;
	memcpy(q->body, text, len);
	cJSON_free(text);
	/* No timeout: the store answers every write, once it is on disk or
	 * refused, so that the counts in the summary are exact. */
	tr_ref ref;
	tr_err err = tr_request_ptr(cx, hub.store, TR_MSG_STORE_LOG_APPEND, q,
				    sizeof(*q) + len, free, 0, &ref);
	if (err < 0) {
		log_failed(mg, tr_strerror(err));
	}
}

/* The store's answer to a record, or TR_MSG_REQUEST_FAILED (it is gone). */
static void
log_outcome(struct manager *mg, const tr_msg *m)
{
	const tr_store_error *e = TR_MSG_AS(m, tr_store_error);

	if (m->type == TR_MSG_STORE_REPLY) {
		mg->log_written++;
	} else if (m->type == TR_MSG_STORE_ERROR && e != NULL) {
		char why[sizeof(mg->log_error)];
		size_t n = strnlen(e->text, sizeof(why) - 1); /* cut */

		memcpy(why, e->text, n);
		why[n] = '\0';
		log_failed(mg, why);
	} else if (m->type == TR_MSG_STORE_ERROR) {
		log_failed(mg, "an error the manager cannot read");
	} else {
		log_failed(mg, "the store is gone");
	}
}

/* LOG_TASK, once the task has its number. */
static void
log_task(tr_ctx *cx, struct manager *mg, struct task *t)
{
	cJSON *o = log_body(t);

	if (o != NULL) {
		cJSON_AddNumberToObject(o, "seq", t->seq);
		if (t->note != NULL) {
			const char *text = t->note;
			cJSON *id = cJSON_Parse(text + strlen(text) + 1);

			if (id != NULL) {
				cJSON_AddItemToObject(o, "id", id);
			}
			cJSON_AddStringToObject(o, "text", text);
		}
		cJSON_AddNumberToObject(o, "subtasks", t->total);
	}
	free(t->note);
	t->note = NULL;
	log_append(cx, mg, LOG_TASK, o);
}

/*
 * LOG_RESULT or LOG_ABORTED: how it ended, and the result object itself
 * if it is short; a long one is summed up by its numbers ("subtasks",
 * "retries"), its "error", and how many files and failed subtasks it
 * lists.
 */
static void
log_result(tr_ctx *cx, struct manager *mg, const struct task *t,
	   const char *kind, bool ok, uint64_t ms, const char *json)
{
	cJSON *o = log_body(t);
	size_t len = strlen(json);
	cJSON *res = o != NULL ? cJSON_Parse(json) : NULL;

	if (o != NULL) {
		cJSON_AddBoolToObject(o, "ok", ok);
		cJSON_AddNumberToObject(o, "ms", (double)ms);
	}
	if (res != NULL && len > LOG_RESULT_MAX) {
		cJSON *sum = cJSON_CreateObject();
		const cJSON *f;

		cJSON_AddNumberToObject(sum, "bytes", (double)len);
		cJSON_ArrayForEach(f, res)
		{
			if (cJSON_IsNumber(f)) {
				cJSON_AddNumberToObject(sum, f->string,
							f->valuedouble);
			} else if (cJSON_IsString(f) &&
				   strlen(f->valuestring) < 256) {
				cJSON_AddStringToObject(sum, f->string,
							f->valuestring);
			} else if (cJSON_IsArray(f) || cJSON_IsObject(f)) {
				cJSON_AddNumberToObject(sum, f->string,
							cJSON_GetArraySize(f));
			}
		}
		cJSON_Delete(res);
		res = sum;
		cJSON_AddItemToObject(o, "summary", res);
	} else if (res != NULL) {
		cJSON_AddItemToObject(o, "result", res);
	}
	log_append(cx, mg, kind, o);
}

/* ------------------------------------------------------------------ */
/* Taking tasks                                                        */

static void
reject(tr_ctx *cx, tr_pid session, uint32_t seq, enum reject_why why)
{
	struct rejected_msg r = { .seq = seq, .why = why };

	(void)tr_send(cx, session, MSG_REJECTED, &r, sizeof(r));
}

/* Cancel a job. A plain send: the service's answer to it comes as a
 * plain TR_MSG_JOBS_REPLY, which we ignore; the job's one FINISHED event
 * is what tells. */
static void
cancel_job(tr_ctx *cx, uint64_t job)
{
	tr_jobs_job_req rq = { .id = job };

	(void)tr_send(cx, hub.jobs, TR_MSG_JOBS_CANCEL, &rq, sizeof(rq));
}

static void
take_task(tr_ctx *cx, struct manager *mg, const tr_msg *m)
{
	struct task_msg hdr;
	struct lead_args *a = NULL;
	tr_jobs_submit_req *rq = NULL;
	tr_pid session = tr_sender(cx);
	tr_ref ref;

	if (m->size < sizeof(hdr)) {
		return;
	}
	memcpy(&hdr, m->data, sizeof(hdr));
	if (hdr.len > TASK_TEXT_MAX || hdr.id_len >= ID_TEXT_MAX ||
	    m->size != sizeof(hdr) + hdr.len + hdr.id_len) {
		return;
	}
	if (mg->is_stopping) {
		reject(cx, session, hdr.seq, REJECT_STOPPING);
		return;
	}
	size_t len = sizeof(*a) + hdr.len;
	if (!grow((void **)&mg->tasks, &mg->cap_tasks, mg->n_tasks,
		  sizeof(*mg->tasks)) ||
	    !watch(cx, mg, session) || (a = malloc(len)) == NULL ||
	    (rq = calloc(1, sizeof(*rq) + len)) == NULL) {
		goto err_reject;
	}
	const char *text = (const char *)m->data + sizeof(hdr);
	plan_task(text, hdr.len, &a->plan);
	a->len = hdr.len;
	memcpy(a->text, text, hdr.len);
	/* The job's payload is the plan and the text. We watch the job, so
	 * its events, from QUEUED on, come to us. */
	snprintf(rq->kind, sizeof(rq->kind), "%s", JOB_KIND_TASK);
	rq->timeout_ms = hub.opt.task_timeout_ms;
	rq->watcher = tr_self(cx);
	rq->payload_size = len;
	memcpy(rq->payload, a, len);
	uint32_t total = a->plan.n;
	free(a);
	/* For the task's record, once it has a number (log_task()). */
	char *note = NULL;
	if (hub.opt.db != NULL &&
	    (note = malloc(hdr.len + hdr.id_len + 2)) != NULL) {
		memcpy(note, text, hdr.len);
		note[hdr.len] = '\0';
		memcpy(note + hdr.len + 1, text + hdr.len, hdr.id_len);
		note[hdr.len + 1 + hdr.id_len] = '\0';
	}
	/* The request moves as a pointer (freed by the runtime on every
	 * path); its one outcome comes to submitted(). */
	if (tr_request_ptr(cx, hub.jobs, TR_MSG_JOBS_SUBMIT, rq,
			   sizeof(*rq) + len, free, 0, &ref) < 0) {
		free(note);
		reject(cx, session, hdr.seq, REJECT_BUSY);
		return;
	}
	mg->tasks[mg->n_tasks++] = (struct task){
		.submit = ref,
		.session = session,
		.seq = hdr.seq,
		.total = total,
		.t0_ns = now_ns(),
		.note = note,
	};
	return;

err_reject:
	/* The task is refused, never accepted, so the session answers
	 * with an error instead of waiting for a result. */
	free(a);
	free(rq);
	reject(cx, session, hdr.seq, REJECT_BUSY);
}

/* ------------------------------------------------------------------ */
/* Job events                                                          */

/* A small "result" object saying why a task failed as a whole. */
static char *
failure_json(const struct task *t, const char *why)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "subtasks", t->total);
	cJSON_AddStringToObject(r, "error", why);
	char *text = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return text;
}

/* The one "accepted" of a task (the job's QUEUED event, or an abort that
 * comes before it). */
static void
accept_task(tr_ctx *cx, struct task *t)
{
	struct accepted_msg a = { .seq = t->seq,
				  .total = t->total,
				  .task = t->job };

	t->is_accepted = true;
	(void)tr_send(cx, t->session, MSG_ACCEPTED, &a, sizeof(a));
	publish(cx, t, TASK_EV_ACCEPTED, false, 0);
}

/* The one result of a task. @json is the "result" object; @kind is how
 * the activity log records it (LOG_RESULT, LOG_ABORTED). */
static void
answer_task(tr_ctx *cx, struct manager *mg, struct task *t, bool ok,
	    const char *json, const char *kind)
{
	uint64_t ms = (now_ns() - t->t0_ns) / 1000000u;
	size_t len = strlen(json);
	struct result_msg *r = malloc(sizeof(*r) + len + 1);

	if (r != NULL) {
		r->seq = t->seq;
		r->ok = ok;
		r->ms = ms;
		memcpy(r->json, json, len + 1);
		/* The result can be a few KB: it moves as a pointer, not a
		 * copy. If the session is gone, the runtime frees it. */
		(void)tr_send_ptr(cx, t->session, MSG_RESULT, r,
				  sizeof(*r) + len + 1, free);
	}
	t->is_answered = true;
	mg->answered++;
	publish(cx, t, TASK_EV_DONE, ok, ms);
	if (hub.opt.db != NULL) {
		log_result(cx, mg, t, kind, ok, ms, json);
	}
}

static void
job_finished(tr_ctx *cx, struct manager *mg, struct task *t,
	     const tr_job_event *ev)
{
	const struct lead_result *lr = (const void *)ev->result;
	char why[160];
	char *owned = NULL;

	if (t->is_answered) {
		/* Failed by MSG_ABORT already; its job has ended now. */
		task_remove(mg, t);
		return;
	}
	switch (ev->state) {
	case TR_JOB_SUCCEEDED:
		if (ev->result_size > sizeof(*lr) &&
		    ((const char *)ev->result)[ev->result_size - 1] == '\0') {
			answer_task(cx, mg, t, lr->ok, lr->json, LOG_RESULT);
			task_remove(mg, t);
			return;
		}
		snprintf(why, sizeof(why), "the task's lead sent no result");
		break;
	case TR_JOB_CANCELLED: {
		/* Only when its session went away: nobody to answer. */
		uint64_t ms = (now_ns() - t->t0_ns) / 1000000u;

		mg->cancelled++;
		publish(cx, t, TASK_EV_CANCELLED, false, ms);
		if (hub.opt.db != NULL) {
			cJSON *o = log_body(t);

			if (o != NULL) {
				cJSON_AddNumberToObject(o, "ms", (double)ms);
			}
			log_append(cx, mg, LOG_CANCELLED, o);
		}
		task_remove(mg, t);
		return;
	}
	case TR_JOB_TIMED_OUT:
		snprintf(why, sizeof(why), "timed out after %u ms",
			 hub.opt.task_timeout_ms);
		break;
	case TR_JOB_INTERRUPTED:
		/* Only a jobs service with a store ends a job so: it was
		 * running when the service stopped, and a restart ended it
		 * rather than run it again. The hub's service keeps no store,
		 * but a task must not read as its lead's failure. */
		snprintf(why, sizeof(why),
			 "the jobs service was restarted while the task ran");
		break;
	case TR_JOB_FAILED:
		snprintf(why, sizeof(why), "the task's lead failed%s%s",
			 ev->note[0] ? ": " : "", ev->note);
		break;
	default:
		/* A state this program does not know (a newer library's). */
		snprintf(why, sizeof(why), "the task's job ended in state %u",
			 (unsigned)ev->state);
		break;
	}
	owned = failure_json(t, why);
	answer_task(cx, mg, t, false, owned != NULL ? owned : "{}", LOG_RESULT);
	cJSON_free(owned);
	task_remove(mg, t);
}

static void
job_event(tr_ctx *cx, struct manager *mg, const tr_msg *m)
{
	const tr_job_event *ev = m->data;

	/* Variable length: the event, then result_size bytes. */
	if (m->size < sizeof(*ev) || m->size - sizeof(*ev) != ev->result_size) {
		return;
	}
	struct task *t = task_by_job(mg, ev->id);
	if (t == NULL) {
		return;
	}
	switch (ev->event) {
	case TR_JOB_EV_QUEUED:
		if (!t->is_accepted) {
			accept_task(cx, t);
		}
		break;
	case TR_JOB_EV_PROGRESS: {
		if (t->is_answered) {
			break; /* the client has its result: nothing after it */
		}
		/* The lead reports one event per subtask that ended, with the
		 * subtask's label as the note. */
		struct progress_msg p = { .seq = t->seq,
					  .done = ++t->done,
					  .total = t->total };
		/* Labels are shorter than LABEL_MAX; cut anything longer. */
		size_t n = strnlen(ev->note, sizeof(p.subtask) - 1);
		memcpy(p.subtask, ev->note, n);
		p.subtask[n] = '\0';
		(void)tr_send(cx, t->session, MSG_PROGRESS, &p, sizeof(p));
		break;
	}
	case TR_JOB_EV_FINISHED:
		job_finished(cx, mg, t, ev);
		break;
	default: /* TR_JOB_EV_STARTED: nothing to tell */
		break;
	}
}

/*
 * The hub stops and the open tasks did not finish in time: each gets its
 * result now, a failure, so that no accepted task goes without one; its
 * job is cancelled, and its FINISHED event removes it later.
 */
static void
abort_task(tr_ctx *cx, struct manager *mg, struct task *t)
{
	if (!t->is_accepted) {
		accept_task(cx, t); /* taken, so accepted first */
	}
	char *json = failure_json(t, "the hub is stopping");
	answer_task(cx, mg, t, false, json != NULL ? json : "{}", LOG_ABORTED);
	cJSON_free(json);
	mg->aborted++;
	cancel_job(cx, t->job);
}

static void
abort_open_tasks(tr_ctx *cx, struct manager *mg)
{
	mg->is_stopping = true;
	mg->is_aborted = true;
	for (size_t i = 0; i < mg->n_tasks; i++) {
		struct task *t = &mg->tasks[i];

		/* One still without a job id is aborted when the id comes. */
		if (!t->is_answered && t->job != 0) {
			abort_task(cx, mg, t);
		}
	}
}

/*
 * The outcome of a submit: the job's id, or the reason the task cannot
 * be taken (the service refused it, or is gone: TR_MSG_REQUEST_FAILED),
 * which the session hears as a rejection. A task that was taken is
 * counted now.
 */
static void
submitted(tr_ctx *cx, struct manager *mg, const tr_msg *m)
{
	struct task *t = task_by_submit(mg, m->ref);
	const tr_jobs_reply *rep = TR_MSG_AS(m, tr_jobs_reply);

	if (t == NULL) {
		return;
	}
	if (m->type != TR_MSG_JOBS_REPLY || rep == NULL || rep->status < 0) {
		reject(cx, t->session, t->seq,
		       mg->is_stopping ? REJECT_STOPPING : REJECT_BUSY);
		task_remove(mg, t);
		return;
	}
	t->job = rep->id;
	mg->taken++;
	if (hub.opt.db != NULL) {
		log_task(cx, mg, t);
	}
	if (mg->is_aborted) {
		abort_task(cx, mg, t);
	} else if (t->is_orphan) {
		cancel_job(cx, t->job);
	}
}

/* A session stopped: cancel its jobs. Each still ends with one FINISHED
 * event (cancelled, or whatever came first), which removes it. */
static void
session_down(tr_ctx *cx, struct manager *mg, const tr_down *d)
{
	for (size_t i = 0; i < mg->n_watches; i++) {
		if (mg->watches[i].ref.v == d->ref.v) {
			mg->watches[i] = mg->watches[--mg->n_watches];
			break;
		}
	}
	for (size_t i = 0; i < mg->n_tasks; i++) {
		struct task *t = &mg->tasks[i];

		if (!tr_pid_eq(t->session, d->who)) {
			continue;
		}
		if (t->job != 0) {
			cancel_job(cx, t->job);
		} else {
			t->is_orphan = true; /* cancelled when the id comes */
		}
	}
}

static int
manager_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	/* State changes of the breaker come to us; we relay them to the
	 * "breaker" topic, where anyone may listen. */
	tr_err err = tr_breaker_subscribe(hub.breaker, tr_self(cx));
	if (err < 0 && err != TR_EEXIST) {
		return err;
	}
	return register_name(cx, NAME_MANAGER);
}

static void
manager_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct manager *mg = state;

	switch (m->type) {
	case MSG_TASK:
		take_task(cx, mg, m);
		break;
	case TR_MSG_JOB_EVENT:
		job_event(cx, mg, m);
		break;
	case TR_MSG_JOBS_REPLY:
		/* A submit's outcome; the plain answers to cancels go. */
		if (m->flags & TR_MSG_F_REPLY) {
			submitted(cx, mg, m);
		}
		break;
	case TR_MSG_REQUEST_FAILED: {
		/* Of a submit, or of a record: the failure names whom the
		 * request went to. */
		const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);

		if (!(m->flags & TR_MSG_F_REPLY)) {
			break;
		}
		if (hub.opt.db != NULL && f != NULL &&
		    tr_pid_eq(f->to, hub.store)) {
			log_outcome(mg, m);
		} else {
			submitted(cx, mg, m);
		}
		break;
	}
	case TR_MSG_STORE_REPLY:
	case TR_MSG_STORE_ERROR:
		/* A record is on disk, or the store refused it. */
		if ((m->flags & TR_MSG_F_REPLY) && hub.opt.db != NULL) {
			log_outcome(mg, m);
		}
		break;
	case TR_MSG_DOWN: {
		tr_down d;

		if (payload(m, &d, sizeof(d))) {
			session_down(cx, mg, &d);
		}
		break;
	}
	case TR_MSG_BREAKER_STATE:
		(void)tr_pubsub_publish(cx, hub.bus, TOPIC_BREAKER,
					MSG_BREAKER_EVENT, m->data, m->size);
		break;
	case MSG_SHUTDOWN:
		mg->is_stopping = true;
		break;
	case MSG_ABORT:
		abort_open_tasks(cx, mg);
		break;
	case MSG_STATUS: {
		struct mgr_status st = {
			.tasks = mg->taken,
			.results = mg->answered,
			.cancelled = mg->cancelled,
			.aborted = mg->aborted,
			.in_flight = mg->n_tasks,
			.log_sent = mg->log_sent,
			.log_written = mg->log_written,
			.log_failed = mg->log_failed,
		};
		memcpy(st.log_error, mg->log_error, sizeof(st.log_error));
		(void)tr_send(cx, tr_sender(cx), MSG_STATUS_REPLY, &st,
			      sizeof(st));
		break;
	}
	default:
		break;
	}
}

static void
manager_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct manager *mg = state;

	(void)reason;
	(void)tr_breaker_unsubscribe(hub.breaker, tr_self(cx));
	for (size_t i = 0; i < mg->n_tasks; i++) {
		free(mg->tasks[i].note);
	}
	free(mg->tasks);
	free(mg->watches);
}

const tr_actor_def manager_def = {
	.size = sizeof(tr_actor_def),
	.name = "manager",
	.state_size = sizeof(struct manager),
	.init = manager_init,
	.teardown = manager_teardown,
	.handle = manager_handle,
};
