/*
 * employee.c - the employees: they run tools and call the model.
 *
 * An employee gets MSG_SUBTASK from a task's lead (lead.c), through the
 * pool, which keeps the lead as the sender. It claims the subtask at once
 * (MSG_CLAIMED: now the lead knows who has it, and monitors us) and
 * later answers with exactly one MSG_SUBTASK_DONE, unless it crashes
 * first: then the lead gets a TR_MSG_DOWN and sends the subtask again,
 * to whichever employee the pool picks. It works on up to SLOTS subtasks
 * at once; more wait in a FIFO backlog in its state, since an actor
 * cannot leave messages in its mailbox for later.
 *
 * A tool subtask is a real child process, started with tr_process_spawn()
 * in the data directory: `wc`, `grep`, or a small `sh -c` pipeline of
 * tr, sort and uniq. Its stdout arrives as one message per line; its end
 * as one TR_MSG_PROC_EXIT, always last. The employee turns the output
 * into a JSON object ({"lines": 110, "words": 1432, "bytes": 6817}).
 *
 * A model subtask goes through the three guards an asyncio agent would
 * stack around an LLM client:
 *
 *   1. the rate limiter: a TR_MSG_RATELIMIT_ACQUIRE request for one
 *      token, answered under its reference by a grant, or by a reject
 *      at once if the wait would pass LIMITER_WAIT_MS;
 *   2. the circuit breaker: tr_breaker_allow() fails at once while the
 *      model is known to be down, without a call;
 *   3. the call itself: tr_request() to the actor registered as "model",
 *      with a timeout, which ends in exactly one outcome carrying the
 *      request's reference: the model's reply, or TR_MSG_REQUEST_FAILED
 *      (the timeout, or the model gone); it is recorded in the breaker
 *      with tr_breaker_record().
 *
 * Crashes. With --crash-rate R an employee crashes on a fraction R of the
 * subtask attempts it handles: it starts the work (the tool runs, or the
 * token is granted) and then stops with REASON_CRASH. Whether an attempt
 * crashes depends only on (seed, task, subtask, attempt), so runs are
 * reproducible and a retry gets a fresh roll. The crash takes every
 * subtask the employee holds with it: the runtime kills its child
 * processes, forgets its open model requests (the model's late answers
 * become counted dead letters), and its supervisor starts a fresh
 * employee (a new pid, an empty state). What
 * must not be lost is a breaker trial: in half-open state the breaker
 * waits for the outcome of each trial call, so the teardown, which runs
 * on every stop, gives every unanswered call back: tr_breaker_record()
 * with TR_BREAKER_RELEASED (asyncio code would do that in a `finally:`).
 *
 * Threads: one actor per employee; its state is its own. It reads `hub`
 * (read-only) and adds to `stats`.
 */
#include "agenthub.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

enum {
	SLOTS = 4,             /* subtasks in progress at once */
	LIMITER_WAIT_MS = 500, /* longest wait for a model token */
	/*
	 * Longest wait for the model's answer. The model takes 5 to 30 ms,
	 * but its answer rides on a timer, and timers share the I/O thread
	 * with the spawning of child processes: a burst of tool runs can
	 * hold them back by a few hundred milliseconds. A tighter timeout
	 * would count that as the model failing and open the breaker.
	 */
	MODEL_TIMEOUT_MS = 1000,
};

enum phase {
	PH_FREE = 0,
	PH_TOOL,  /* the child process runs */
	PH_TOKEN, /* waiting for the rate limiter */
	PH_MODEL, /* the model request is out */
};

struct job {
	enum phase phase;
	bool is_doomed;         /* this attempt crashes the employee */
	tr_pid lead;            /* who sent it, who gets the answer */
	struct subtask_msg sub; /* without the prompt */
	char *prompt;           /* TOOL_MODEL: the prompt, NUL-terminated */
	tr_process proc;        /* PH_TOOL */
	char out[OUTPUT_MAX];   /* the tool's stdout, lines joined by '\n' */
	size_t out_len;
	tr_ref req;      /* PH_TOKEN, PH_MODEL: the request's reference */
	uint64_t ticket; /* the breaker's ticket while a call is out */
};

/* A subtask waiting for a free slot: a copy of the message. */
struct queued {
	struct queued *next;
	tr_pid lead;
	size_t size;
	unsigned char msg[];
};

struct employee {
	struct job slot[SLOTS];
	struct queued *head, *tail;
	bool is_crashing; /* start nothing more: we stop after this turn */
};

/* ------------------------------------------------------------------ */
/* Answering the lead                                                  */

static void
job_finish(tr_ctx *cx, struct job *j, enum outcome outcome, const char *text,
	   size_t len)
{
	unsigned char buf[sizeof(struct done_msg) + OUTPUT_MAX];
	struct done_msg d = {
		.task = j->sub.task,
		.index = j->sub.index,
		.attempt = j->sub.attempt,
		.outcome = outcome,
	};

	if (len > OUTPUT_MAX) {
		len = OUTPUT_MAX;
	}
	d.len = (uint32_t)len;
	memcpy(buf, &d, sizeof(d));
	memcpy(buf + sizeof(d), text, len);
	/* Copied by the runtime. If the lead is gone, a dead letter. */
	(void)tr_send(cx, j->lead, MSG_SUBTASK_DONE, buf, sizeof(d) + len);

	free(j->prompt);
	memset(j, 0, sizeof(*j));
}

static void
job_failf(tr_ctx *cx, struct job *j, enum outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
job_failf(tr_ctx *cx, struct job *j, enum outcome outcome, const char *fmt, ...)
{
	char text[160];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	job_finish(cx, j, outcome, text,
		   n < 0                      ? 0
		   : (size_t)n < sizeof(text) ? (size_t)n
					      : sizeof(text) - 1);
}

/* The injected crash: the whole employee stops when this handler returns.
 * The messages still in its mailbox become dead letters. */
static void
crash(tr_ctx *cx, struct employee *e)
{
	if (!e->is_crashing) {
		stat_add(&stats.crashes, 1);
		e->is_crashing = true;
		tr_stop_self(cx, REASON_CRASH);
	}
}

/* ------------------------------------------------------------------ */
/* Tools                                                               */

/*
 * The pipelines run under `sh -c` with the file as "$1", never pasted into
 * the script, and with LC_ALL=C so that sort orders bytes the same way
 * everywhere. The top words are words of four letters or more (so not
 * "the" and "a"), and the second sort breaks ties by word, so the top
 * five are the same on every run.
 */
static const char top_script[] =
	"export LC_ALL=C; tr -cs '[:alpha:]' '\\n' < \"$1\" | "
	"tr '[:upper:]' '[:lower:]' | grep -E '^.{4,}$' | sort | uniq -c | "
	"sort -k1,1nr -k2,2 | head -n 5";
static const char uniq_script[] = "export LC_ALL=C; sort \"$1\" | uniq | wc -l";

static tr_err
tool_start(tr_ctx *cx, struct job *j)
{
	const char *file = j->sub.file;
	/* -e and --: a word or a file that starts with "-" is still a word
	 * and a file. grep's exit status 1 means "no line matched". */
	const char *wc[] = { "wc", "-l", "-w", "-c", file, NULL };
	const char *grep[] = { "grep",      "-c", "-i", "-w", "-e",
			       j->sub.word, "--", file, NULL };
	const char *top[] = { "sh", "-c", top_script, "sh", file, NULL };
	const char *uniq[] = { "sh", "-c", uniq_script, "sh", file, NULL };
	const char *const *argv;

	switch (j->sub.tool) {
	case TOOL_WC:
		argv = wc;
		break;
	case TOOL_GREP:
		argv = grep;
		break;
	case TOOL_TOP:
		argv = top;
		break;
	case TOOL_UNIQ:
		argv = uniq;
		break;
	default:
		return TR_EINVAL;
	}
	/* Everything in the options is copied: the arrays may go. */
	tr_process_opts o = {
		.size = sizeof(o),
		.file = argv[0],
		.args = argv,
		.cwd = hub.data_dir,
	};
	stat_add(&stats.tool_runs, 1);
	return tr_process_spawn(cx, &o, &j->proc);
}

/* Turn what the tool printed into the subtask's JSON output. */
static cJSON *
tool_output(const struct job *j)
{
	char text[OUTPUT_MAX + 1];
	unsigned long a, b, c;
	cJSON *o = cJSON_CreateObject();

	memcpy(text, j->out, j->out_len);
	text[j->out_len] = '\0';
	switch (j->sub.tool) {
	case TOOL_WC: /* "  110  1432  6817 server.log" */
		if (sscanf(text, "%lu %lu %lu", &a, &b, &c) != 3) {
			break;
		}
		cJSON_AddNumberToObject(o, "lines", (double)a);
		cJSON_AddNumberToObject(o, "words", (double)b);
		cJSON_AddNumberToObject(o, "bytes", (double)c);
		return o;
	case TOOL_GREP: /* "14" */
		if (sscanf(text, "%lu", &a) != 1) {
			break;
		}
		cJSON_AddStringToObject(o, "word", j->sub.word);
		cJSON_AddNumberToObject(o, "matches", (double)a);
		return o;
	case TOOL_TOP: { /* "     12 bread\n      9 shift\n..." */
		cJSON *arr = cJSON_AddArrayToObject(o, "words");
		char *save = NULL;

		for (char *line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			char word[WORD_MAX];
			if (sscanf(line, "%lu %31s", &a, word) == 2) {
				cJSON *e = cJSON_CreateObject();
				cJSON_AddStringToObject(e, "word", word);
				cJSON_AddNumberToObject(e, "count", (double)a);
				cJSON_AddItemToArray(arr, e);
			}
		}
		return o;
	}
	case TOOL_UNIQ: /* "98" */
		if (sscanf(text, "%lu", &a) != 1) {
			break;
		}
		cJSON_AddNumberToObject(o, "distinct_lines", (double)a);
		return o;
	default:
		break;
	}
	cJSON_Delete(o);
	return NULL;
}

static void
tool_exit(tr_ctx *cx, struct employee *e, struct job *j,
	  const tr_process_exit *x)
{
	char text[OUTPUT_MAX];
	bool is_grep_none = j->sub.tool == TOOL_GREP && x->status == 1;

	if (j->is_doomed) {
		crash(cx, e);
		return;
	}
	if (x->error[0] != '\0') {
		stat_add(&stats.tool_failures, 1);
		job_failf(cx, j, OUT_TOOL_FAILED, "cannot start %s: %s",
			  tool_name(j->sub.tool), x->error);
		return;
	}
	if ((x->status != 0 && !is_grep_none) || x->term_signal != 0) {
		stat_add(&stats.tool_failures, 1);
		job_failf(cx, j, OUT_TOOL_FAILED,
			  "%s ended with status %" PRId64 ", signal %d",
			  tool_name(j->sub.tool), x->status,
			  (int)x->term_signal);
		return;
	}
	cJSON *o = tool_output(j);
	if (o == NULL ||
	    !cJSON_PrintPreallocated(o, text, (int)sizeof(text), false)) {
		cJSON_Delete(o);
		stat_add(&stats.tool_failures, 1);
		job_failf(cx, j, OUT_TOOL_FAILED,
			  "%s printed something unexpected",
			  tool_name(j->sub.tool));
		return;
	}
	cJSON_Delete(o);
	job_finish(cx, j, OUT_OK, text, strlen(text));
}

/* ------------------------------------------------------------------ */
/* The model                                                           */

static void
model_granted(tr_ctx *cx, struct employee *e, struct job *j)
{
	tr_pid model;

	if (j->is_doomed) {
		crash(cx, e);
		return;
	}
	if (tr_breaker_allow(hub.breaker, &j->ticket) != TR_OK) {
		/* Open: fail fast, no call. The lead retries later. */
		stat_add(&stats.breaker_rejects, 1);
		job_failf(
			cx, j, OUT_BREAKER_OPEN,
			"model unavailable: circuit %s",
			tr_breaker_state_name(tr_breaker_current(hub.breaker)));
		return;
	}
	/* By name: the model may have been restarted with a new pid. */
	if (tr_registry_whereis(hub.reg, NAME_MODEL, &model) != TR_OK ||
	    tr_request(cx, model, MSG_MODEL_CALL, j->prompt, strlen(j->prompt),
		       MODEL_TIMEOUT_MS, &j->req) != TR_OK) {
		tr_breaker_record(hub.breaker, j->ticket, TR_BREAKER_FAILURE);
		j->ticket = 0;
		job_failf(cx, j, OUT_MODEL_ERROR, "model not reachable");
		return;
	}
	stat_add(&stats.model_calls, 1);
	j->phase = PH_MODEL;
}

/*
 * The one outcome of the model request: the model's reply
 * (MSG_MODEL_REPLY or MSG_MODEL_ERROR), or TR_MSG_REQUEST_FAILED with
 * TR_EXIT_TIMEOUT, TR_EXIT_NOPROC (the registered model was already gone)
 * or the reason the model stopped with while it held the call.
 */
static void
model_answered(tr_ctx *cx, struct job *j, const tr_msg *m)
{
	bool is_ok = m->type == MSG_MODEL_REPLY && m->size > 0;

	/* Exactly once per allowed call: now, or in the teardown. */
	tr_breaker_record(hub.breaker, j->ticket,
			  is_ok ? TR_BREAKER_SUCCESS : TR_BREAKER_FAILURE);
	j->ticket = 0;
	if (is_ok) {
		job_finish(cx, j, OUT_OK, m->data, m->size);
		return;
	}
	stat_add(&stats.model_failures, 1);
	if (m->type != TR_MSG_REQUEST_FAILED) {
		job_failf(cx, j, OUT_MODEL_ERROR, "model: %.*s",
			  (int)(m->size < 100 ? m->size : 100),
			  (const char *)m->data);
		return;
	}
	const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);
	int32_t reason = f != NULL ? f->reason : TR_EXIT_ERROR;
	if (reason == TR_EXIT_TIMEOUT) {
		job_failf(cx, j, OUT_MODEL_TIMEOUT, "model: no answer in %d ms",
			  MODEL_TIMEOUT_MS);
	} else if (reason == TR_EXIT_NOPROC) {
		job_failf(cx, j, OUT_MODEL_ERROR, "model: not running");
	} else {
		job_failf(cx, j, OUT_MODEL_ERROR,
			  "model: stopped with reason %" PRId32, reason);
	}
}

/* ------------------------------------------------------------------ */
/* Taking work                                                         */

static void
job_start(tr_ctx *cx, struct job *j, tr_pid lead, const unsigned char *msg,
	  size_t size)
{
	struct subtask_msg sub;

	memcpy(&sub, msg, sizeof(sub));
	memset(j, 0, sizeof(*j));
	j->lead = lead;
	j->sub = sub;
	j->sub.file[FILE_NAME_MAX - 1] = '\0';
	j->sub.word[WORD_MAX - 1] = '\0';
	j->is_doomed = fate(hub.opt.seed, sub.task, sub.index, sub.attempt) <
		       hub.opt.crash_rate;

	if (sub.tool != TOOL_MODEL) {
		j->phase = PH_TOOL;
		if (tool_start(cx, j) < 0) {
			stat_add(&stats.tool_failures, 1);
			job_failf(cx, j, OUT_TOOL_FAILED, "cannot run %s",
				  tool_name(sub.tool));
		}
		return;
	}
	size_t len = size - sizeof(sub);
	j->prompt = malloc(len + 1);
	if (j->prompt == NULL) {
		job_failf(cx, j, OUT_MODEL_ERROR, "out of memory");
		return;
	}
	memcpy(j->prompt, msg + sizeof(sub), len);
	j->prompt[len] = '\0';
	j->phase = PH_TOKEN;
	/* No timeout of our own: the limiter answers within
	 * LIMITER_WAIT_MS, and the runtime fails the request if the limiter
	 * is gone. */
	tr_ratelimit_acquire_req q = { .tokens = 1,
				       .max_wait_ms = LIMITER_WAIT_MS };
	if (tr_request(cx, hub.limiter, TR_MSG_RATELIMIT_ACQUIRE, &q, sizeof(q),
		       0, &j->req) < 0) {
		job_failf(cx, j, OUT_RATE_LIMITED, "rate limiter unavailable");
	}
}

/*
 * The one outcome of the limiter request: a TR_MSG_RATELIMIT_REPLY that
 * grants the token or refuses it (the wait would pass LIMITER_WAIT_MS),
 * or TR_MSG_REQUEST_FAILED if the limiter is gone.
 */
static void
limiter_answered(tr_ctx *cx, struct employee *e, struct job *j, const tr_msg *m)
{
	const tr_ratelimit_reply *r = TR_MSG_AS(m, tr_ratelimit_reply);

	j->req = (tr_ref){ 0 };
	if (m->type != TR_MSG_RATELIMIT_REPLY || r == NULL) {
		job_failf(cx, j, OUT_RATE_LIMITED, "rate limiter unavailable");
		return;
	}
	if (r->status != TR_OK) {
		stat_add(&stats.limiter_rejects, 1);
		job_failf(cx, j, OUT_RATE_LIMITED,
			  "rate limited: would wait %" PRIu64 " ms",
			  r->wait_ms);
		return;
	}
	if (r->wait_ms > 0) {
		stat_add(&stats.limiter_waits, 1);
		stat_add(&stats.limiter_wait_ms, r->wait_ms);
	}
	model_granted(cx, e, j);
}

static struct job *
free_slot(struct employee *e)
{
	for (int i = 0; i < SLOTS; i++) {
		if (e->slot[i].phase == PH_FREE) {
			return &e->slot[i];
		}
	}
	return NULL;
}

/* A slot came free: start the oldest waiting subtask. */
static void
take_backlog(tr_ctx *cx, struct employee *e)
{
	struct job *j;

	while (e->head != NULL && (j = free_slot(e)) != NULL) {
		struct queued *q = e->head;

		e->head = q->next;
		if (e->head == NULL) {
			e->tail = NULL;
		}
		job_start(cx, j, q->lead, q->msg, q->size);
		free(q);
	}
}

static void
subtask(tr_ctx *cx, struct employee *e, const tr_msg *m)
{
	struct subtask_msg sub;

	if (m->size < sizeof(sub)) {
		return;
	}
	memcpy(&sub, m->data, sizeof(sub));
	if (m->size != sizeof(sub) + sub.prompt_len) {
		return;
	}
	/* Claim it: from now on the lead watches us for it. */
	struct subtask_ref claim = { .task = sub.task,
				     .index = sub.index,
				     .attempt = sub.attempt };
	(void)tr_send(cx, tr_sender(cx), MSG_CLAIMED, &claim, sizeof(claim));

	struct job *j = free_slot(e);
	if (j != NULL && e->head == NULL && !e->is_crashing) {
		job_start(cx, j, tr_sender(cx), m->data, m->size);
		return;
	}
	struct queued *q = malloc(sizeof(*q) + m->size);
	if (q == NULL) {
		return; /* out of memory: the lead's work deadline resends it */
	}
	q->next = NULL;
	q->lead = tr_sender(cx);
	q->size = m->size;
	memcpy(q->msg, m->data, m->size);
	if (e->tail != NULL) {
		e->tail->next = q;
	} else {
		e->head = q;
	}
	e->tail = q;
}

static struct job *
job_by_proc(struct employee *e, tr_process p)
{
	for (int i = 0; i < SLOTS; i++) {
		if (e->slot[i].phase == PH_TOOL && e->slot[i].proc.v == p.v) {
			return &e->slot[i];
		}
	}
	return NULL;
}

static void
employee_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct employee *e = state;

	switch (m->type) {
	case MSG_SUBTASK:
		subtask(cx, e, m);
		break;
	case TR_MSG_PROC_STDOUT: {
		const tr_process_line *l = m->data;
		struct job *j = job_by_proc(e, l->proc);

		if (j == NULL) {
			break;
		}
		if (j->is_doomed) {
			crash(cx, e); /* with the tool still running */
			break;
		}
		/* Keep what fits; the outputs we ask for are a few lines. */
		if (j->out_len + l->len + 1 <= OUTPUT_MAX) {
			memcpy(j->out + j->out_len, l->text, l->len);
			j->out_len += l->len;
			j->out[j->out_len++] = '\n';
		}
		break;
	}
	case TR_MSG_PROC_EXIT: {
		tr_process_exit x;

		if (!payload(m, &x, sizeof(x))) {
			break;
		}
		struct job *j = job_by_proc(e, x.proc);
		if (j != NULL) {
			tool_exit(cx, e, j, &x);
		}
		break;
	}
	default:
		/* The outcome of a limiter or model request, matched by its
		 * reference. */
		if (!(m->flags & TR_MSG_F_REPLY)) {
			break;
		}
		for (int i = 0; i < SLOTS; i++) {
			struct job *j = &e->slot[i];

			if (j->phase == PH_TOKEN && j->req.v == m->ref.v) {
				limiter_answered(cx, e, j, m);
				break;
			}
			if (j->phase == PH_MODEL && j->req.v == m->ref.v) {
				model_answered(cx, j, m);
				break;
			}
		}
		break;
	}
	if (!e->is_crashing) {
		take_backlog(cx, e);
	}
}

static void
employee_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct employee *e = state;

	(void)cx;
	(void)reason;
	/*
	 * Calls the breaker let through whose outcome we will never see:
	 * give them back. Counting them as failures would let employee
	 * crashes open the breaker in front of a healthy model; leaving them
	 * out would leave a half-open breaker waiting for trials that will
	 * never end, rejecting every other call meanwhile.
	 */
	for (int i = 0; i < SLOTS; i++) {
		struct job *j = &e->slot[i];

		if (j->ticket != 0) {
			tr_breaker_record(hub.breaker, j->ticket,
					  TR_BREAKER_RELEASED);
		}
		free(j->prompt);
	}
	while (e->head != NULL) {
		struct queued *q = e->head;

		e->head = q->next;
		free(q);
	}
}

const tr_actor_def employee_def = {
	.size = sizeof(tr_actor_def),
	.name = "employee",
	.state_size = sizeof(struct employee),
	.teardown = employee_teardown,
	.handle = employee_handle,
};
