/*
 * lead.c - the task lead: one actor per task, run as a job.
 *
 * In the manager -> supervisor -> employee hierarchy of the asyncio agent
 * systems, the lead is the middle layer: it oversees one task from its
 * plan to its result. (It is called the lead here so that it is not
 * confused with the OTP-style supervisors that restart actors.) Where
 * asyncio code would run a coroutine per task that awaits
 * asyncio.gather() over the subtasks, with try/except and retry loops
 * around each, the lead holds the task as data and every await becomes a
 * message:
 *
 *   pool     <--MSG_SUBTASK--       lead   for each subtask that is ready
 *   employee --MSG_CLAIMED-->       lead   now it knows who has it
 *   employee --MSG_SUBTASK_DONE-->  lead   output, or why it failed
 *   jobs     <--tr_job_progress--   lead   after each subtask
 *   jobs     <--tr_job_complete--   lead   when the last one has ended
 *
 * The manager submits each task to the jobs service (kind "task") with
 * the plan as the payload; the service starts a lead for it when one of
 * LEADS_MAX slots is free, stops it if it runs past the task timeout or
 * is cancelled, and tells the manager about every step, exactly once at
 * the end. The lead's first message is the job (TR_MSG_JOB_START): it
 * keeps the struct tr_job in its state and names it in every report.
 *
 * Subtasks go to the pool registered as "employees", which picks an
 * employee round robin and passes the message on with the lead as the
 * sender. The employee claims it, so the lead learns which employee holds
 * which subtask, and monitors that employee.
 *
 * Every subtask ends, one way or another, so every task ends:
 *
 * - Crash: the employee stops (--crash-rate). Its TR_MSG_DOWN sends every
 *   subtask it had claimed out again at once, to whichever employee the
 *   pool picks (its supervisor has restarted the crashed one meanwhile).
 * - Lost on the way: a subtask still in a crashed employee's mailbox is
 *   never claimed. If no claim comes within CLAIM_TIMEOUT_MS, it goes out
 *   again. A claimed subtask that takes longer than WORK_TIMEOUT_MS goes
 *   out again too (nothing here hangs, but a real tool could).
 * - Model failure: the model answered with an error or not in time, the
 *   circuit breaker is open, or the rate limiter would wait too long. The
 *   subtask is retried after a backoff that doubles (50, 100, 200, 400,
 *   800, 800 ms, plus jitter), which gives an open breaker time to
 *   recover. After MAX_FAILURES failures the subtask gives up.
 * - Tool failure: deterministic, so it is not retried.
 * - A subtask that went out MAX_REDISPATCH times because of crashes or
 *   timeouts gives up too: a "poison" subtask must not take every
 *   employee down forever.
 *
 * A task whose subtasks all succeeded ends "ok". One with subtasks that
 * gave up ends with a partial result: what did succeed, and a "failed"
 * list saying what did not and why. That is the lead's decision: an
 * answer in bounded time is worth more than waiting out an outage.
 *
 * Each attempt of a subtask has a number. Answers, claims and timers of
 * an older attempt are stale and ignored, so a slow employee that answers
 * after its subtask went elsewhere changes nothing.
 *
 * Threads: one actor per running task; its state is its own. It reads
 * `hub` (read-only).
 */
#include "agenthub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <troupe/actors/jobs.h>
#include <troupe/actors/pool.h>

enum {
	CLAIM_TIMEOUT_MS = 500,
	WORK_TIMEOUT_MS = 10000,
	/* Model failures before a subtask gives up. With the backoff below
	 * that is about 2.4 s of trying: longer than a typical outage (1 s)
	 * plus the breaker's recovery time (0.5 s). */
	MAX_FAILURES = 7,
	MAX_REDISPATCH = 8,
	BACKOFF_MS = 50,
	BACKOFF_MAX_MS = 800,
	MAX_WATCHES = 32, /* employees monitored at once; more rely on the
			     work deadline */
};

enum sub_state {
	SUB_BLOCKED, /* a model step waiting for its file's tools */
	SUB_BACKOFF, /* waiting for its retry timer */
	SUB_SENT,    /* routed to the pool, not claimed yet */
	SUB_CLAIMED, /* an employee has it */
	SUB_DONE,
	SUB_FAILED,
};

struct sub {
	struct plan_step step;
	enum sub_state state;
	uint32_t attempt;      /* dispatches so far */
	uint32_t failures;     /* model failures so far */
	uint32_t redispatches; /* crashes and timeouts so far */
	tr_pid employee;       /* SUB_CLAIMED */
	uint64_t claimed_ns;
	char *text; /* DONE: output (JSON); FAILED: why */
};

/* An employee we monitor because it claimed one of our subtasks. */
struct watch {
	tr_pid pid;
	tr_ref ref;
};

struct lead {
	tr_job job;    /* for tr_job_progress() and tr_job_complete() */
	uint64_t task; /* the job's id */
	uint32_t n, done, retries;
	bool is_finished;
	uint64_t rng; /* backoff jitter */
	char text[TASK_TEXT_MAX + 1];
	struct sub sub[MAX_STEPS];
	struct watch watches[MAX_WATCHES];
	uint32_t n_watches;
};

static void
publish_retry(tr_ctx *cx, const struct lead *l, enum retry_why why)
{
	struct task_event ev = {
		.kind = TASK_EV_RETRY,
		.retry = why,
		.task = l->task,
		.subtasks = l->n,
	};

	(void)tr_pubsub_publish(cx, hub.bus, TOPIC_TASKS, MSG_TASK_EVENT, &ev,
				sizeof(ev));
}

/* Monitor the employee that claimed a subtask, unless we already do. */
static bool
watch(tr_ctx *cx, struct lead *l, tr_pid pid)
{
	for (uint32_t i = 0; i < l->n_watches; i++) {
		if (tr_pid_eq(l->watches[i].pid, pid)) {
			return true;
		}
	}
	if (l->n_watches == MAX_WATCHES) {
		return false;
	}
	struct watch *w = &l->watches[l->n_watches];
	/* A pid that is already gone gets its DOWN (NOPROC) at once. */
	if (tr_monitor(cx, pid, &w->ref) < 0) {
		return false;
	}
	w->pid = pid;
	l->n_watches++;
	return true;
}

/* ------------------------------------------------------------------ */
/* Sending subtasks                                                    */

/*
 * The prompt of a model step: the task, the file, and the outputs of the
 * file's tools that succeeded, as one JSON object. The model (model.c)
 * writes its sentence from the facts.
 */
static size_t
build_prompt(const struct lead *l, uint32_t i, char *out, size_t cap)
{
	const struct sub *s = &l->sub[i];
	cJSON *p = cJSON_CreateObject();
	cJSON *facts = cJSON_CreateObject();
	size_t len = 0;

	cJSON_AddStringToObject(p, "task", l->text);
	cJSON_AddStringToObject(p, "file", hub.files[s->step.file].name);
	for (uint32_t k = 0; k < l->n; k++) {
		const struct sub *d = &l->sub[k];

		if (d->step.file == s->step.file &&
		    d->step.tool != TOOL_MODEL && d->state == SUB_DONE) {
			cJSON *o = cJSON_Parse(d->text);
			if (o != NULL) {
				cJSON_AddItemToObject(
					facts, tool_name(d->step.tool), o);
			}
		}
	}
	cJSON_AddItemToObject(p, "facts", facts);
	if (cJSON_PrintPreallocated(p, out, (int)cap, false)) {
		len = strlen(out);
	}
	cJSON_Delete(p);
	return len;
}

static void
arm_deadline(tr_ctx *cx, const struct lead *l, uint32_t i, uint64_t ms)
{
	struct subtask_ref ref = { .task = l->task,
				   .index = i,
				   .attempt = l->sub[i].attempt };

	/* Not cancelled when the subtask ends: a timer message for an
	 * attempt that is over is recognised as stale and ignored. */
	(void)tr_send_after(cx, tr_self(cx), MSG_DEADLINE, &ref, sizeof(ref),
			    ms, NULL);
}

static void
dispatch(tr_ctx *cx, struct lead *l, uint32_t i)
{
	struct sub *s = &l->sub[i];
	unsigned char buf[sizeof(struct subtask_msg) + PROMPT_MAX];
	struct subtask_msg msg;
	tr_pid pool;

	memset(&msg, 0, sizeof(msg));
	s->attempt++;
	msg.task = l->task;
	msg.index = i;
	msg.attempt = s->attempt;
	msg.tool = s->step.tool;
	memcpy(msg.file, hub.files[s->step.file].name, sizeof(msg.file));
	memcpy(msg.word, s->step.word, sizeof(msg.word));
	if (s->step.tool == TOOL_MODEL) {
		msg.prompt_len = (uint32_t)build_prompt(
			l, i, (char *)buf + sizeof(msg), PROMPT_MAX);
	}
	memcpy(buf, &msg, sizeof(msg));

	/*
	 * By name, every time: the registry lookup is a hash and a read
	 * lock. If the pool is not there, or the send fails, the subtask is
	 * as good as lost on the way, and the claim deadline resends it.
	 */
	s->state = SUB_SENT;
	s->employee = TR_PID_NONE;
	if (tr_registry_whereis(hub.reg, NAME_EMPLOYEES, &pool) == TR_OK) {
		/* A plain send: the pool routes it with its strategy. */
		(void)tr_send(cx, pool, MSG_SUBTASK, buf,
			      sizeof(msg) + msg.prompt_len);
	}
	arm_deadline(cx, l, i, CLAIM_TIMEOUT_MS);
}

/* A model step can go once every tool step of its file has ended. */
static bool
is_ready(const struct lead *l, uint32_t i)
{
	const struct sub *s = &l->sub[i];

	if (s->step.tool != TOOL_MODEL) {
		return true;
	}
	for (uint32_t k = 0; k < l->n; k++) {
		const struct sub *d = &l->sub[k];

		if (d->step.file == s->step.file &&
		    d->step.tool != TOOL_MODEL && d->state != SUB_DONE &&
		    d->state != SUB_FAILED) {
			return false;
		}
	}
	return true;
}

static void
dispatch_ready(tr_ctx *cx, struct lead *l)
{
	for (uint32_t i = 0; i < l->n; i++) {
		if (l->sub[i].state == SUB_BLOCKED && is_ready(l, i)) {
			dispatch(cx, l, i);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Finishing                                                           */

/*
 * The "result" object:
 *   {"subtasks": 8, "retries": 1,
 *    "files": {"server.log": {"wc": {...}, "model": {...}}, ...},
 *    "failed": [{"subtask": "model faq.txt", "error": "..."}]}
 * "failed" is there only when a subtask gave up.
 */
static char *
build_result(const struct lead *l, bool *ok)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *files = cJSON_CreateObject();
	cJSON *failed = cJSON_CreateArray();

	*ok = true;
	cJSON_AddNumberToObject(r, "subtasks", l->n);
	cJSON_AddNumberToObject(r, "retries", l->retries);
	for (uint32_t i = 0; i < l->n; i++) {
		const struct sub *s = &l->sub[i];
		const char *name = hub.files[s->step.file].name;

		if (s->state == SUB_DONE) {
			cJSON *f = cJSON_GetObjectItem(files, name);
			if (f == NULL) {
				f = cJSON_AddObjectToObject(files, name);
			}
			cJSON *o = cJSON_Parse(s->text);
			if (f != NULL && o != NULL) {
				cJSON_AddItemToObject(
					f, tool_name(s->step.tool), o);
			} else {
				cJSON_Delete(o);
			}
		} else {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "subtask", s->step.label);
			cJSON_AddStringToObject(
				e, "error", s->text != NULL ? s->text : "?");
			cJSON_AddItemToArray(failed, e);
			*ok = false;
		}
	}
	cJSON_AddItemToObject(r, "files", files);
	if (*ok) {
		cJSON_Delete(failed);
	} else {
		cJSON_AddItemToObject(r, "failed", failed);
	}
	char *text = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return text;
}

/* Every subtask has ended: the job's result is a struct lead_result with
 * the JSON text. tr_job_complete() stops us after this handler. */
static void
finish(tr_ctx *cx, struct lead *l)
{
	bool ok;
	char *json = build_result(l, &ok);
	size_t len = json != NULL ? strlen(json) : 2;
	struct lead_result *r = malloc(sizeof(*r) + len + 1);

	l->is_finished = true;
	if (r == NULL) {
		(void)tr_job_fail(cx, &l->job, "out of memory");
	} else {
		r->ok = ok && json != NULL;
		memcpy(r->json, json != NULL ? json : "{}", len + 1);
		(void)tr_job_complete(cx, &l->job, r, sizeof(*r) + len + 1);
	}
	free(r);
	cJSON_free(json);
}

/* Subtask @i ended (done, or gave up): report it, go on. */
static void
sub_ended(tr_ctx *cx, struct lead *l, uint32_t i)
{
	l->done++;
	/* The label is the progress note; the manager counts the events. */
	(void)tr_job_progress(cx, &l->job, l->done * 100 / l->n,
			      l->sub[i].step.label);
	if (l->done == l->n) {
		finish(cx, l);
		return;
	}
	dispatch_ready(cx, l);
}

static void
sub_fail(tr_ctx *cx, struct lead *l, uint32_t i, const char *why, size_t len)
{
	struct sub *s = &l->sub[i];

	free(s->text);
	s->text = strndup(why, len);
	s->state = SUB_FAILED;
	sub_ended(cx, l, i);
}

/* Send a subtask again after a crash or a timeout, unless it already went
 * out too often. */
static void
redispatch(tr_ctx *cx, struct lead *l, uint32_t i, enum retry_why why)
{
	struct sub *s = &l->sub[i];

	if (++s->redispatches > MAX_REDISPATCH) {
		char text[80];
		int n = snprintf(text, sizeof(text),
				 "gave up after %u attempts (crashes or "
				 "timeouts)",
				 (unsigned)s->attempt);
		sub_fail(cx, l, i, text, (size_t)n);
		return;
	}
	l->retries++;
	publish_retry(cx, l, why);
	dispatch(cx, l, i);
}

/* A failure worth another try: wait, then send it again. */
static void
backoff(tr_ctx *cx, struct lead *l, uint32_t i, const char *why, size_t len)
{
	struct sub *s = &l->sub[i];

	if (++s->failures >= MAX_FAILURES) {
		sub_fail(cx, l, i, why, len);
		return;
	}
	/* 50, 100, 200, 400, 800, 800 ms, plus up to a quarter more, so that
	 * retries of many subtasks do not all come back at the same time. */
	uint64_t ms = (uint64_t)BACKOFF_MS << (s->failures - 1);
	if (ms > BACKOFF_MAX_MS) {
		ms = BACKOFF_MAX_MS;
	}
	ms += rng_next(&l->rng) % (ms / 4 + 1);
	struct subtask_ref ref = { .task = l->task,
				   .index = i,
				   .attempt = s->attempt };
	s->state = SUB_BACKOFF;
	l->retries++;
	publish_retry(cx, l, RETRY_FAILURE);
	if (tr_send_after(cx, tr_self(cx), MSG_RETRY, &ref, sizeof(ref), ms,
			  NULL) < 0) {
		sub_fail(cx, l, i, why, len); /* the runtime is stopping */
	}
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* The subtask a message is about, if that attempt is still on. */
static struct sub *
current(struct lead *l, const struct subtask_ref *r)
{
	if (l->is_finished || r->task != l->task || r->index >= l->n ||
	    l->sub[r->index].attempt != r->attempt) {
		return NULL; /* stale: a newer attempt runs, or we are done */
	}
	return &l->sub[r->index];
}

static void
claimed(tr_ctx *cx, struct lead *l, const struct subtask_ref *r)
{
	struct sub *s = current(l, r);

	if (s == NULL || s->state != SUB_SENT) {
		return;
	}
	s->state = SUB_CLAIMED;
	s->employee = tr_sender(cx);
	s->claimed_ns = now_ns();
	if (!watch(cx, l, s->employee)) {
		s->employee = TR_PID_NONE; /* the work deadline covers it */
	}
	arm_deadline(cx, l, r->index, WORK_TIMEOUT_MS);
}

static void
subtask_done(tr_ctx *cx, struct lead *l, const tr_msg *m)
{
	struct done_msg d;

	if (m->size < sizeof(d)) {
		return;
	}
	memcpy(&d, m->data, sizeof(d));
	if (m->size != sizeof(d) + d.len) {
		return;
	}
	struct subtask_ref r = { .task = d.task,
				 .index = d.index,
				 .attempt = d.attempt };
	struct sub *s = current(l, &r);
	if (s == NULL || (s->state != SUB_SENT && s->state != SUB_CLAIMED)) {
		return;
	}
	const char *text = (const char *)m->data + sizeof(d);
	switch (d.outcome) {
	case OUT_OK:
		s->text = strndup(text, d.len);
		s->state = SUB_DONE;
		sub_ended(cx, l, d.index);
		break;
	case OUT_TOOL_FAILED:
		sub_fail(cx, l, d.index, text, d.len);
		break;
	default: /* the model, the breaker or the limiter: try again later */
		backoff(cx, l, d.index, text, d.len);
		break;
	}
}

static void
deadline(tr_ctx *cx, struct lead *l, const struct subtask_ref *r)
{
	struct sub *s = current(l, r);

	if (s == NULL) {
		return;
	}
	if (s->state == SUB_SENT ||
	    (s->state == SUB_CLAIMED &&
	     now_ns() - s->claimed_ns >= WORK_TIMEOUT_MS * 1000000ull)) {
		redispatch(cx, l, r->index, RETRY_TIMEOUT);
	}
}

static void
retry(tr_ctx *cx, struct lead *l, const struct subtask_ref *r)
{
	struct sub *s = current(l, r);

	if (s != NULL && s->state == SUB_BACKOFF) {
		dispatch(cx, l, r->index);
	}
}

/* An employee we watch stopped: what it had claimed goes out again. */
static void
down(tr_ctx *cx, struct lead *l, const tr_down *d)
{
	for (uint32_t i = 0; i < l->n_watches; i++) {
		if (l->watches[i].ref.v == d->ref.v) {
			l->watches[i] = l->watches[--l->n_watches];
			break;
		}
	}
	for (uint32_t i = 0; i < l->n && !l->is_finished; i++) {
		struct sub *s = &l->sub[i];

		if (s->state == SUB_CLAIMED && tr_pid_eq(s->employee, d->who)) {
			redispatch(cx, l, i, RETRY_CRASH);
		}
	}
}

/* The job starts (TR_MSG_JOB_START): copy the plan and send out what can
 * go at once. A payload that is not a plan fails the job. */
static void
job_started(tr_ctx *cx, struct lead *l, const tr_msg *m)
{
	const tr_job_start *job = m->data;
	struct lead_args a;

	if (m->size < sizeof(*job) || l->job.id != 0) {
		return; /* not a job, or a second one */
	}
	l->job = job->job;
	if (job->payload_size < sizeof(a)) {
		(void)tr_job_fail(cx, &l->job, "not a plan");
		return;
	}
	memcpy(&a, job->payload, sizeof(a));
	if (a.len > TASK_TEXT_MAX || job->payload_size != sizeof(a) + a.len ||
	    a.plan.n > MAX_STEPS) {
		(void)tr_job_fail(cx, &l->job, "not a plan");
		return;
	}
	l->task = job->job.id;
	l->rng = (hub.opt.seed ^ l->task * 0x9E3779B97F4A7C15u) | 1;
	memcpy(l->text, job->payload + sizeof(a), a.len);
	l->text[a.len] = '\0';
	l->n = a.plan.n;
	for (uint32_t i = 0; i < l->n; i++) {
		l->sub[i].step = a.plan.step[i];
		l->sub[i].state = SUB_BLOCKED;
	}
	if (l->n == 0) {
		finish(cx, l); /* no data files: nothing to do */
		return;
	}
	dispatch_ready(cx, l);
}

static void
lead_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct lead *l = state;
	struct subtask_ref ref;

	switch (m->type) {
	case TR_MSG_JOB_START:
		job_started(cx, l, m);
		break;
	case MSG_CLAIMED:
		if (payload(m, &ref, sizeof(ref))) {
			claimed(cx, l, &ref);
		}
		break;
	case MSG_SUBTASK_DONE:
		subtask_done(cx, l, m);
		break;
	case MSG_DEADLINE:
		if (payload(m, &ref, sizeof(ref))) {
			deadline(cx, l, &ref);
		}
		break;
	case MSG_RETRY:
		if (payload(m, &ref, sizeof(ref))) {
			retry(cx, l, &ref);
		}
		break;
	case TR_MSG_DOWN: {
		tr_down d;

		if (payload(m, &d, sizeof(d))) {
			down(cx, l, &d);
		}
		break;
	}
	default:
		break;
	}
}

static void
lead_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct lead *l = state;

	(void)cx;
	(void)reason;
	for (uint32_t i = 0; i < l->n; i++) {
		free(l->sub[i].text);
	}
}

const tr_actor_def lead_def = {
	.size = sizeof(tr_actor_def),
	.name = "lead",
	.state_size = sizeof(struct lead),
	.teardown = lead_teardown,
	.handle = lead_handle,
};
