/*
 * model.c - the simulated model service.
 *
 * It stands in for an LLM behind an HTTP API: a call takes a prompt and,
 * some milliseconds later, returns a completion or an error. Nothing here
 * blocks. A call arms a timer for its latency (5 to 30 ms, drawn from a
 * seeded generator) and the answer goes out when the timer's message comes
 * back, so one actor serves any number of calls at once, the way one
 * asyncio task per request would, without the event loop.
 *
 * Failures, so that the employees' resilience has something to do:
 * - a fraction of calls (--model-fail) answers with an error;
 * - the service has outages: for --outage-ms out of every --outage-every
 *   it answers every call with an error, which is what opens the circuit
 *   breaker in front of it.
 *
 * The "completion" is one sentence written from the facts in the prompt
 * (the outputs of the tools the employee ran before), so a person reading
 * the result over nc sees something that makes sense.
 *
 * Callers reach it with tr_request(), by name: it registers itself as
 * "model" in init. It keeps a copy of each call's message header (the
 * sender, the reference and the flags are all tr_reply() reads) and
 * answers it with tr_reply() when the latency has passed. The runtime
 * turns the answer, the caller's timeout or our stop into exactly one
 * outcome for the caller.
 *
 * Threads: one actor; its state is its own. It reads `hub` (read-only).
 */
#include "agenthub.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

enum {
	LATENCY_MIN_MS = 5,
	LATENCY_SPAN_MS = 26, /* so 5 to 30 ms */
	SENTENCE_MAX = 320,   /* the summary; quoted, it fits in a reply */
	REPLY_MAX = 512,
};

/* A call whose answer waits for its timer. Few are in flight (the rate
 * limiter sees to that), so a list is enough. */
struct pending {
	struct pending *next;
	tr_msg req; /* the call's header, without its payload */
	uint64_t call;
	size_t len;
	char text[REPLY_MAX];
};

struct model {
	uint64_t rng;
	uint64_t calls;
	struct pending *pending;
};

/* During an outage every call fails: the last outage_ms of every
 * outage_every_ms since the run began. */
static bool
in_outage(void)
{
	unsigned every = hub.opt.outage_every_ms;

	if (every == 0 || hub.opt.outage_ms == 0) {
		return false;
	}
	uint64_t t = now_ms() - hub.t0_ns / 1000000u;
	return t % every >= every - hub.opt.outage_ms;
}

static void appendf(char *buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append to a sentence of at most SENTENCE_MAX - 1 bytes; the rest is cut. */
static void
appendf(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;

	if (*len >= SENTENCE_MAX - 1) {
		return;
	}
	va_start(ap, fmt);
	int k = vsnprintf(buf + *len, SENTENCE_MAX - *len, fmt, ap);
	va_end(ap);
	if (k > 0) {
		*len += (size_t)k < SENTENCE_MAX - *len
				? (size_t)k
				: SENTENCE_MAX - 1 - *len;
	}
}

static double
number(const cJSON *obj, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(obj, key));
}

/*
 * The completion: a sentence from the facts. The prompt is
 * {"task": ..., "file": ..., "facts": {"wc": {...}, "grep": {...}, ...}}
 * (see the employee's tool_output() for each tool's object), and the
 * reply is {"model": "sim-1", "summary": ..., "tokens": ..., "call": ...}.
 */
static void
write_summary(const char *prompt, size_t len, uint64_t call, char *out,
	      size_t *out_len)
{
	char s[SENTENCE_MAX] = "";
	size_t n = 0;
	cJSON *p = cJSON_ParseWithLength(prompt, len);
	const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(p, "file"));
	cJSON *facts = cJSON_GetObjectItem(p, "facts");
	cJSON *wc = cJSON_GetObjectItem(facts, "wc");
	cJSON *grep = cJSON_GetObjectItem(facts, "grep");
	cJSON *top =
		cJSON_GetObjectItem(cJSON_GetObjectItem(facts, "top"), "words");
	cJSON *uniq = cJSON_GetObjectItem(facts, "uniq");
	const char *sep = "";

	appendf(s, &n, "%s:", file != NULL ? file : "the file");
	if (cJSON_IsObject(wc)) {
		appendf(s, &n, "%s %.0f lines and %.0f words", sep,
			number(wc, "lines"), number(wc, "words"));
		sep = ";";
	}
	if (cJSON_IsObject(grep)) {
		const char *w =
			cJSON_GetStringValue(cJSON_GetObjectItem(grep, "word"));
		appendf(s, &n, "%s %.0f lines mention \"%s\"", sep,
			number(grep, "matches"), w != NULL ? w : "?");
		sep = ";";
	}
	if (cJSON_IsArray(top) && cJSON_GetArraySize(top) > 0) {
		const cJSON *e;
		int k = 0;

		appendf(s, &n, "%s mostly about", sep);
		cJSON_ArrayForEach(e, top)
		{
			const char *w = cJSON_GetStringValue(
				cJSON_GetObjectItem(e, "word"));
			if (w != NULL && k < 3) {
				appendf(s, &n, "%s %s", k > 0 ? "," : "", w);
				k++;
			}
		}
		sep = ";";
	}
	if (cJSON_IsObject(uniq)) {
		appendf(s, &n, "%s %.0f distinct lines", sep,
			number(uniq, "distinct_lines"));
		sep = ";";
	}
	if (*sep == '\0') {
		appendf(s, &n, " no facts to go on");
	}
	appendf(s, &n, ".");
	cJSON_Delete(p);

	cJSON *reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "model", "sim-1");
	cJSON_AddStringToObject(reply, "summary", s);
	cJSON_AddNumberToObject(reply, "tokens", (double)((len + n) / 4));
	cJSON_AddNumberToObject(reply, "call", (double)call);
	*out_len = 0;
	if (reply != NULL &&
	    cJSON_PrintPreallocated(reply, out, REPLY_MAX, false)) {
		*out_len = strlen(out);
	}
	cJSON_Delete(reply);
}

static void
model_call(tr_ctx *cx, struct model *md, const tr_msg *m)
{
	struct pending *p = malloc(sizeof(*p));
	struct model_due due = { .call = ++md->calls };
	uint64_t latency =
		LATENCY_MIN_MS + rng_next(&md->rng) % LATENCY_SPAN_MS;
	double roll = (double)(rng_next(&md->rng) >> 11) / 9007199254740992.0;

	if (p == NULL) {
		return; /* out of memory: the caller's request times out */
	}
	due.ok = roll >= hub.opt.model_fail && !in_outage();
	/* Only the header outlives this turn: the payload is the
	 * runtime's, and tr_reply() does not read it. */
	p->req = *m;
	p->req.data = NULL;
	p->req.size = 0;
	p->call = due.call;
	if (due.ok) {
		write_summary(m->data, m->size, due.call, p->text, &p->len);
	} else {
		p->len = (size_t)snprintf(
			p->text, sizeof(p->text),
			"503 model overloaded (call %" PRIu64 ")", due.call);
	}
	if (tr_send_after(cx, tr_self(cx), MSG_MODEL_DUE, &due, sizeof(due),
			  latency, NULL) < 0) {
		free(p); /* the runtime is stopping */
		return;
	}
	p->next = md->pending;
	md->pending = p;
}

static void
model_due(tr_ctx *cx, struct model *md, const struct model_due *due)
{
	for (struct pending **pp = &md->pending; *pp != NULL;
	     pp = &(*pp)->next) {
		struct pending *p = *pp;

		if (p->call != due->call) {
			continue;
		}
		*pp = p->next;
		stat_add(due->ok ? &stats.model_served : &stats.model_errors,
			 1);
		/* To the caller. If its request timed out already, or it
		 * stopped, this is a counted dead letter. */
		(void)tr_reply(cx, &p->req,
			       due->ok ? MSG_MODEL_REPLY : MSG_MODEL_ERROR,
			       p->text, p->len);
		free(p);
		return;
	}
}

static int
model_init(tr_ctx *cx, void *state, void *arg)
{
	struct model *md = state;

	(void)arg;
	md->rng = hub.opt.seed ^ 0x6D6F64656C000000u; /* "model" */
	md->rng |= 1;
	return register_name(cx, NAME_MODEL);
}

static void
model_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct model *md = state;
	struct model_due due;

	switch (m->type) {
	case MSG_MODEL_CALL:
		model_call(cx, md, m);
		break;
	case MSG_MODEL_DUE:
		if (payload(m, &due, sizeof(due))) {
			model_due(cx, md, &due);
		}
		break;
	default:
		break;
	}
}

static void
model_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct model *md = state;

	(void)cx;
	(void)reason;
	while (md->pending != NULL) {
		struct pending *p = md->pending;

		md->pending = p->next;
		free(p);
	}
}

const tr_actor_def model_def = {
	.size = sizeof(tr_actor_def),
	.name = "model",
	.state_size = sizeof(struct model),
	.init = model_init,
	.teardown = model_teardown,
	.handle = model_handle,
};
