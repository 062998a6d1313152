/*
 * load.c - simulated clients: real TCP clients of the hub, over loopback.
 *
 * Each client is an actor that owns one connection (tr_tcp_connect()),
 * keeps --inflight tasks open and sends a new one as each result comes
 * in, until main() tells it to drain (MSG_DRAIN) or, with
 * --tasks-per-client N, until it has sent N. Then it waits for its last
 * results, closes, and reports what it saw to main's inbox.
 *
 * It checks the protocol as it goes, so that the final self-check can say
 * more than "no crash": every task it sent must get one "accepted", then
 * "progress" events whose "done" counts up by one to "total", then one
 * "result" with "ok", "result" and "ms" (a task that timed out may end
 * before "done" reaches "total", with "ok": false). Anything else (an
 * unknown id, a second result, a progress out of order) is counted as
 * unexpected, with the first one kept for the report.
 *
 * A task refused with "the hub is stopping" (a Ctrl-C came) is not owed
 * a result; it is counted as refused.
 *
 * It also tries the unhappy paths a person with nc would hit:
 * - the first line it sends is malformed JSON or has an unknown field, and
 *   it expects exactly one {"event": "error"} for it;
 * - every fifth task is sent as plain words, not JSON, so its id is the
 *   hub's "auto-N";
 * - the one extra "rogue" client sends a line longer than the hub accepts
 *   and expects an error and then to be disconnected.
 *
 * Threads: one actor per client. main() keeps the spawn arguments alive.
 */
#include "agenthub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

enum {
	CLIENT_INFLIGHT_MAX = 16,
	CONNECT_TIMEOUT_MS = 10000,
	REPLY_LINE_MAX = 1 << 20, /* results are a few KB */
	ID_MAX = 48,
};

/* What the clients ask for: a mix that uses every tool. The planner
 * (plan.c) says what each becomes. */
static const char *const task_texts[] = {
	"summarise the docs",
	"count words in orders.csv",
	"find error in server.log and summarise it",
	"top words in the handbook",
	"search for refund in faq and orders, then explain",
	"how many distinct lines does orders.csv have",
	"review server.log",
	"grep bread in handbook and report",
};

struct req {
	bool is_used;
	bool is_accepted;
	char id[ID_MAX]; /* as the hub echoes it */
	uint32_t done, total;
};

struct client {
	struct client_args a;
	tr_tcp conn;
	tr_framer framer;
	struct req req[CLIENT_INFLIGHT_MAX];
	uint32_t n_open;
	uint32_t n_auto; /* plain-words tasks sent: their ids are auto-N */
	uint64_t rng;
	bool is_rogue;
	bool is_open, is_draining, is_closing;
	struct client_report rep;
};

static void problem(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Something broke the protocol: count it, keep the first for the report. */
static void
problem(struct client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->rep.unexpected++ == 0) {
		va_start(ap, fmt);
		vsnprintf(c->rep.problem, sizeof(c->rep.problem), fmt, ap);
		va_end(ap);
	}
}

static struct req *
req_by_id(struct client *c, const char *id)
{
	for (int i = 0; i < CLIENT_INFLIGHT_MAX; i++) {
		if (c->req[i].is_used && strcmp(c->req[i].id, id) == 0) {
			return &c->req[i];
		}
	}
	return NULL;
}

static void
client_close(tr_ctx *cx, struct client *c)
{
	if (c->is_open && !c->is_closing) {
		c->is_closing = true;
		(void)tr_tcp_close(cx, c->conn);
	}
}

static bool
wants_more(const struct client *c)
{
	unsigned limit = hub.opt.tasks_per_client;

	return !c->is_draining && (limit == 0 || c->rep.sent < limit);
}

/* Send tasks until --inflight are open; close once nothing is left. */
static void
fill(tr_ctx *cx, struct client *c)
{
	unsigned want = hub.opt.inflight < CLIENT_INFLIGHT_MAX
				? hub.opt.inflight
				: CLIENT_INFLIGHT_MAX;

	while (c->is_open && !c->is_closing && wants_more(c) &&
	       c->n_open < want) {
		struct req *r = NULL;
		for (int i = 0; i < CLIENT_INFLIGHT_MAX && r == NULL; i++) {
			if (!c->req[i].is_used) {
				r = &c->req[i];
			}
		}
		const char *text =
			task_texts[rng_next(&c->rng) % (sizeof(task_texts) /
							sizeof(task_texts[0]))];
		char line[256];
		int n;

		memset(r, 0, sizeof(*r));
		if (c->rep.sent % 5 == 4) {
			/* Plain words, as typed into nc. */
			snprintf(r->id, sizeof(r->id), "auto-%u", ++c->n_auto);
			n = snprintf(line, sizeof(line), "%s\n", text);
		} else {
			snprintf(r->id, sizeof(r->id), "c%u-%llu", c->a.index,
				 (unsigned long long)c->rep.sent + 1);
			n = snprintf(line, sizeof(line),
				     "{\"task\": \"%s\", \"id\": \"%s\"}\n",
				     text, r->id);
		}
		r->is_used = true;
		c->n_open++;
		c->rep.sent++;
		(void)tr_tcp_write(cx, c->conn, line, (size_t)n);
	}
	if (c->is_open && c->n_open == 0 && !wants_more(c)) {
		client_close(cx, c);
	}
}

/* One event from the hub. */
static void
client_event(tr_ctx *cx, struct client *c, const char *line, size_t len)
{
	cJSON *ev = cJSON_ParseWithLength(line, len);
	const char *name =
		cJSON_GetStringValue(cJSON_GetObjectItem(ev, "event"));
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "id"));
	struct req *r = id != NULL ? req_by_id(c, id) : NULL;

	if (name == NULL) {
		problem(c, "not an event: %.60s", line);
		goto out;
	}
	if (strcmp(name, "error") == 0) {
		const char *why =
			cJSON_GetStringValue(cJSON_GetObjectItem(ev, "error"));

		if (r != NULL && !r->is_accepted && why != NULL &&
		    strcmp(why, "the hub is stopping") == 0) {
			/* Sent just before the stop reached us: the hub
			 * took nothing, so nothing is owed. */
			c->rep.refused++;
			r->is_used = false;
			c->n_open--;
			fill(cx, c);
			goto out;
		}
		c->rep.errors_seen++;
		if (id != NULL) {
			problem(c, "task %s refused: %.40s", id,
				why != NULL ? why : "?");
		}
		goto out;
	}
	if (r == NULL) {
		problem(c, "%s for unknown id %s", name, id != NULL ? id : "-");
		goto out;
	}
	if (strcmp(name, "accepted") == 0) {
		if (r->is_accepted) {
			problem(c, "%s accepted twice", id);
		}
		r->is_accepted = true;
		r->total = (uint32_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(ev, "subtasks"));
		c->rep.accepted++;
	} else if (strcmp(name, "progress") == 0) {
		uint32_t done = (uint32_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(ev, "done"));
		uint32_t total = (uint32_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(ev, "total"));
		if (!r->is_accepted || done != r->done + 1 ||
		    total != r->total ||
		    !cJSON_IsString(cJSON_GetObjectItem(ev, "subtask"))) {
			problem(c, "%s: progress %u/%u after %u/%u", id, done,
				total, r->done, r->total);
		}
		r->done = done;
		c->rep.progress++;
	} else if (strcmp(name, "result") == 0) {
		cJSON *ok = cJSON_GetObjectItem(ev, "ok");
		/* Every subtask reported first, unless the task failed as a
		 * whole (it timed out): then the result may come early. */
		if (!r->is_accepted ||
		    (r->done != r->total && !cJSON_IsFalse(ok)) ||
		    !cJSON_IsBool(ok) ||
		    !cJSON_IsObject(cJSON_GetObjectItem(ev, "result")) ||
		    !cJSON_IsNumber(cJSON_GetObjectItem(ev, "ms"))) {
			problem(c, "%s: bad result after %u/%u", id, r->done,
				r->total);
		}
		c->rep.results++;
		c->rep.ok += cJSON_IsTrue(ok) ? 1 : 0;
		r->is_used = false;
		c->n_open--;
		fill(cx, c);
	} else {
		problem(c, "unknown event %.20s", name);
	}
out:
	cJSON_Delete(ev);
}

static void
client_data(tr_ctx *cx, struct client *c, const tr_tcp_data *d)
{
	const void *line;
	size_t len;
	int r = tr_framer_feed(&c->framer, d->bytes, d->len);

	if (r == TR_OK) {
		while ((r = tr_framer_next(&c->framer, &line, &len)) > 0) {
			client_event(cx, c, line, len);
		}
	}
	if (r < 0) {
		problem(c, "unreadable reply: %s", tr_strerror(r));
		client_close(cx, c);
	}
}

static void
client_opened(tr_ctx *cx, struct client *c)
{
	static const char *const bad[] = {
		"{\"task\": \"count words\",\n", /* cut short */
		/* an unknown field */
		"{\"task\": \"count words\", \"colour\": \"red\"}\n",
	};

	c->is_open = true;
	if (c->is_rogue) {
		/* A line one byte longer than allowed, then its newline. */
		size_t n = LINE_MAX_LEN + 1;
		char *flood = malloc(n + 1);

		if (flood != NULL) {
			memset(flood, 'x', n);
			flood[n] = '\n';
			(void)tr_tcp_write(cx, c->conn, flood, n + 1);
			free(flood);
		}
		c->rep.errors_expected = 1;
		return; /* and wait to be thrown out */
	}
	if (c->is_draining) {
		client_close(cx, c);
		return;
	}
	const char *b = bad[c->a.index % 2];
	(void)tr_tcp_write(cx, c->conn, b, strlen(b));
	c->rep.errors_expected = 1;
	fill(cx, c);
}

static int
client_init(tr_ctx *cx, void *state, void *arg)
{
	struct client *c = state;
	const struct client_args *a = arg;

	c->a = *a;
	c->rep.index = a->index;
	c->is_rogue = a->index == hub.opt.clients; /* the one extra */
	c->rng = hub.opt.seed ^ (0xC11E47u + a->index * 0x9E3779B97F4A7C15u);
	c->rng |= 1;
	tr_err err = tr_framer_init(&c->framer, TR_FRAME_LINE, REPLY_LINE_MAX);
	if (err < 0) {
		return err;
	}
	return tr_tcp_connect(cx, "127.0.0.1", a->port, CONNECT_TIMEOUT_MS,
			      &c->conn);
}

static void
client_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct client *c = state;

	switch (m->type) {
	case TR_MSG_TCP_OPEN:
		client_opened(cx, c);
		break;
	case TR_MSG_TCP_DATA: {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d != NULL) {
			client_data(cx, c, d);
		}
		break;
	}
	case TR_MSG_TCP_EOF:
		/* The hub closed its side: only the rogue expects that. */
		if (!c->is_rogue) {
			problem(c, "the hub hung up");
		}
		client_close(cx, c);
		break;
	case TR_MSG_TCP_CLOSED: {
		tr_tcp_event e;

		(void)payload(m, &e, sizeof(e));
		c->rep.is_clean = c->is_open && c->n_open == 0 &&
				  (c->is_closing || c->is_rogue);
		if (!c->is_open) {
			problem(c, "cannot connect: %s", e.error);
		}
		(void)tr_send(cx, c->a.report_to, MSG_CLIENT_DONE, &c->rep,
			      sizeof(c->rep));
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	}
	case MSG_DRAIN:
		c->is_draining = true;
		if (c->is_open && c->n_open == 0) {
			client_close(cx, c);
		}
		break;
	default:
		break;
	}
}

static void
client_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct client *c = state;

	(void)cx;
	(void)reason;
	tr_framer_fini(&c->framer);
}

const tr_actor_def client_def = {
	.size = sizeof(tr_actor_def),
	.name = "client",
	.state_size = sizeof(struct client),
	.init = client_init,
	.teardown = client_teardown,
	.handle = client_handle,
};
