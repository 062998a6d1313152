/*
 * server.c - the listener and the session actor, one per client.
 *
 * tr_tcp_listen() spawns a session from session_def for every connection.
 * The session owns the socket: a framer cuts the bytes into lines, each
 * line becomes a task for the manager, and the manager's answers come back
 * to the session as messages, which it writes to the client as JSON
 * lines. A session keeps up to SESSION_INFLIGHT tasks open at once, each
 * under the client's id; it is the asyncio per-client coroutine of
 * start_server(), except that it never awaits: it returns from every
 * handler, and the next message, a line or an answer, comes in later.
 *
 * The protocol (also at the top of main.c and in the agent hub chapter of
 * docs/GUIDE.md):
 *
 *   client: {"task": "summarise the docs", "id": "a1"}   (id optional)
 *   hub:    {"id": "a1", "event": "accepted", "subtasks": 8}
 *           {"id": "a1", "event": "progress", "done": 1, "total": 8,
 *            "subtask": "wc faq.txt"}   ... one per subtask ...
 *           {"id": "a1", "event": "result", "ok": true,
 *            "result": {...}, "ms": 41}
 *
 * A line that does not start with "{" is a task in plain words, so a
 * person can type into nc; a task without an id gets "auto-1", "auto-2",
 * ... in the order of the session. Malformed JSON, a field other than
 * "task" and "id", or a task the session cannot take gets one
 * {"event": "error", "error": "..."} and the session carries on. A line
 * over LINE_MAX_LEN bytes gets {"event": "error", "error": "line too
 * long"} and the connection is closed: the framer never holds more than
 * that for one client.
 *
 * Every accepted task gets exactly one result. If the manager stops with
 * tasks open (the session monitors it), each of them gets a result with
 * "ok": false at once. If the client goes away first, the manager (which
 * monitors the session) cancels its tasks. While the hub stops, new tasks
 * get {"event": "error", "error": "the hub is stopping"}.
 *
 * The session counts each task it sent twice, each time in exactly one
 * place (stats in agenthub.h): how it ended (a result written, refused,
 * or abandoned because the client went away first) and whether it was
 * accepted (an "accepted" written, refused, or ended before the manager's
 * "accepted" could reach us). The self-check adds both up.
 *
 * Threads: one actor per connection plus the listener; state is per
 * actor. They read `hub` (read-only) and add to `stats`.
 */
#include "agenthub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* A task this session sent to the manager and has no result for yet. */
struct open_task {
	bool is_used;
	bool is_accepted; /* "accepted" written */
	uint32_t seq;
	uint64_t t0_ns;
	char id[ID_TEXT_MAX]; /* the id as JSON text: "\"a1\"" or "17" */
};

struct session {
	tr_tcp conn;
	tr_framer framer;
	struct open_task open[SESSION_INFLIGHT];
	uint32_t n_open;
	uint32_t next_seq;
	uint32_t next_auto; /* ids of tasks that came without one */
	tr_pid manager;     /* the one we monitor */
	tr_ref manager_ref;
	bool is_closing;   /* we asked to close: ignore further input */
	bool is_peer_done; /* the client sent everything it will */
};

/* ------------------------------------------------------------------ */
/* Writing JSON lines                                                  */

/* Print @o as one line to the client and free it. */
static void
send_json(tr_ctx *cx, struct session *s, cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);

	cJSON_Delete(o);
	if (text == NULL) {
		return; /* out of memory: the client misses a line */
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* over the NUL: write len + 1 bytes */
	(void)tr_tcp_write(cx, s->conn, text, len + 1);
	cJSON_free(text);
}

/* An event object with the id first, as a client reads it. */
static cJSON *
event(const char *id, const char *name)
{
	cJSON *o = cJSON_CreateObject();

	if (id != NULL) {
		cJSON_AddRawToObject(o, "id", id);
	}
	cJSON_AddStringToObject(o, "event", name);
	return o;
}

static void
send_error(tr_ctx *cx, struct session *s, const char *id, const char *why)
{
	cJSON *o = event(id, "error");

	cJSON_AddStringToObject(o, "error", why);
	stat_add(&stats.sess_errors, 1);
	send_json(cx, s, o);
}

/* ------------------------------------------------------------------ */
/* The session's table of open tasks                                   */

static struct open_task *
open_by_seq(struct session *s, uint32_t seq)
{
	for (int i = 0; i < SESSION_INFLIGHT; i++) {
		if (s->open[i].is_used && s->open[i].seq == seq) {
			return &s->open[i];
		}
	}
	return NULL;
}

static void
close_conn(tr_ctx *cx, struct session *s)
{
	if (!s->is_closing) {
		s->is_closing = true;
		(void)tr_tcp_close(cx, s->conn); /* after pending writes */
	}
}

/*
 * A task ended: its result was written, or it was refused. Count it once
 * (a result with no "accepted" before it comes only when the manager
 * stopped first), free its slot; a client that is done sending and has
 * nothing open is done.
 */
static void
open_release(tr_ctx *cx, struct session *s, struct open_task *t,
	     bool is_refused)
{
	if (is_refused) {
		stat_add_release(&stats.sess_rejected, 1);
	} else {
		stat_add_release(&stats.sess_results, 1);
		if (!t->is_accepted) {
			stat_add(&stats.sess_unaccepted, 1);
		}
	}
	t->is_used = false;
	s->n_open--;
	if (s->is_peer_done && s->n_open == 0) {
		close_conn(cx, s);
	}
}

/*
 * The manager is found by name. We monitor the one we hand tasks to, so
 * that if it stops, our open tasks get a failed result instead of none.
 */
static tr_err
find_manager(tr_ctx *cx, struct session *s, tr_pid *out)
{
	tr_err err = tr_registry_whereis(hub.reg, NAME_MANAGER, out);

	if (err < 0) {
		return err;
	}
	if (!tr_pid_eq(*out, s->manager)) {
		if (!tr_pid_is_none(s->manager)) {
			(void)tr_demonitor(cx, s->manager_ref);
		}
		err = tr_monitor(cx, *out, &s->manager_ref);
		if (err < 0) {
			s->manager = TR_PID_NONE;
			return err;
		}
		s->manager = *out;
	}
	return TR_OK;
}

/* ------------------------------------------------------------------ */
/* Reading requests                                                    */

/* Hand a task to the manager. @id is the JSON text of its id. */
static void
submit(tr_ctx *cx, struct session *s, const char *id, const char *text,
       size_t len)
{
	unsigned char
		buf[sizeof(struct task_msg) + TASK_TEXT_MAX + ID_TEXT_MAX];
	struct open_task *t = NULL;
	tr_pid manager;

	if (len == 0) {
		send_error(cx, s, id, "empty task");
		return;
	}
	if (len > TASK_TEXT_MAX) {
		send_error(cx, s, id, "task too long");
		return;
	}
	for (int i = 0; i < SESSION_INFLIGHT; i++) {
		if (s->open[i].is_used && strcmp(s->open[i].id, id) == 0) {
			send_error(cx, s, id, "id already in use");
			return;
		}
		if (!s->open[i].is_used && t == NULL) {
			t = &s->open[i];
		}
	}
	if (t == NULL) {
		send_error(cx, s, id, "too many tasks in flight");
		return;
	}
	if (find_manager(cx, s, &manager) < 0) {
		send_error(cx, s, id, "manager unavailable");
		return;
	}
	/* The id goes along for the activity log (--db). */
	size_t id_len = strnlen(id, ID_TEXT_MAX - 1);
	struct task_msg hdr = { .seq = ++s->next_seq,
				.len = (uint32_t)len,
				.id_len = (uint32_t)id_len };
	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), text, len);
	memcpy(buf + sizeof(hdr) + len, id, id_len);
	if (tr_send(cx, manager, MSG_TASK, buf, sizeof(hdr) + len + id_len) <
	    0) {
		send_error(cx, s, id, "manager unavailable");
		return;
	}
	t->is_used = true;
	t->is_accepted = false;
	t->seq = hdr.seq;
	t->t0_ns = now_ns();
	snprintf(t->id, sizeof(t->id), "%s", id);
	s->n_open++;
	stat_add(&stats.sess_tasks, 1);
}

/* {"task": "...", "id": "..."}: check it field by field. */
static void
json_request(tr_ctx *cx, struct session *s, const char *line, size_t len)
{
	const char *end = NULL;
	cJSON *req = cJSON_ParseWithLengthOpts(line, len, &end, false);
	cJSON *task = NULL;
	char *id = NULL;
	const cJSON *f;

	if (req == NULL || !cJSON_IsObject(req)) {
		send_error(cx, s, NULL, "malformed JSON");
		goto out;
	}
	while (end != NULL && end < line + len &&
	       (*end == ' ' || *end == '\t')) {
		end++;
	}
	if (end != NULL && end < line + len) {
		send_error(cx, s, NULL,
			   "malformed JSON: text after the object");
		goto out;
	}
	cJSON_ArrayForEach(f, req)
	{
		if (strcmp(f->string, "task") == 0) {
			task = (cJSON *)f;
		} else if (strcmp(f->string, "id") == 0) {
			if (!cJSON_IsString(f) && !cJSON_IsNumber(f)) {
				send_error(cx, s, NULL,
					   "id must be a string or a number");
				goto out;
			}
			id = cJSON_PrintUnformatted(f);
		} else {
			char why[96];

			snprintf(why, sizeof(why), "unknown field \"%.60s\"",
				 f->string);
			send_error(cx, s, NULL, why);
			goto out;
		}
	}
	if (id != NULL && strlen(id) >= ID_TEXT_MAX) {
		send_error(cx, s, NULL, "id too long");
		goto out;
	}
	if (!cJSON_IsString(task)) {
		send_error(cx, s, id, "\"task\" must be a string");
		goto out;
	}
	if (id == NULL) {
		char auto_id[32];

		snprintf(auto_id, sizeof(auto_id), "\"auto-%u\"",
			 ++s->next_auto);
		submit(cx, s, auto_id, task->valuestring,
		       strlen(task->valuestring));
	} else {
		submit(cx, s, id, task->valuestring, strlen(task->valuestring));
	}
out:
	cJSON_free(id);
	cJSON_Delete(req);
}

static void
session_line(tr_ctx *cx, struct session *s, const char *line, size_t len)
{
	/* Trim blanks around it; an empty line is no request. */
	while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
		len--;
	}
	if (len == 0) {
		return;
	}
	if (line[0] == '{') {
		json_request(cx, s, line, len);
		return;
	}
	/* Plain words, typed by a person: {"task": line}. */
	char auto_id[32];
	snprintf(auto_id, sizeof(auto_id), "\"auto-%u\"", ++s->next_auto);
	submit(cx, s, auto_id, line, len);
}

static void
session_data(tr_ctx *cx, struct session *s, const tr_tcp_data *d)
{
	const void *line;
	size_t len;
	int r;

	if (s->is_closing) {
		return;
	}
	/* The framer borrows d->bytes until next() returns 0 or an error,
	 * which happens before this handler returns. */
	r = tr_framer_feed(&s->framer, d->bytes, d->len);
	if (r == TR_OK) {
		while ((r = tr_framer_next(&s->framer, &line, &len)) > 0 &&
		       !s->is_closing) {
			session_line(cx, s, line, len);
		}
	}
	if (r < 0 && !s->is_closing) {
		if (r == TR_EMSGSIZE) {
			stat_add(&stats.sess_too_long, 1);
			send_error(cx, s, NULL, "line too long");
		}
		close_conn(cx, s);
	}
}

/* ------------------------------------------------------------------ */
/* Answers from the manager                                            */

static void
answer_accepted(tr_ctx *cx, struct session *s, const struct accepted_msg *a)
{
	struct open_task *t = open_by_seq(s, a->seq);

	if (t == NULL || t->is_accepted) {
		return;
	}
	t->is_accepted = true;
	cJSON *o = event(t->id, "accepted");
	cJSON_AddNumberToObject(o, "subtasks", a->total);
	stat_add(&stats.sess_accepted, 1);
	send_json(cx, s, o);
}

static void
answer_progress(tr_ctx *cx, struct session *s, struct progress_msg *p)
{
	struct open_task *t = open_by_seq(s, p->seq);

	if (t == NULL) {
		return;
	}
	p->subtask[LABEL_MAX - 1] = '\0';
	cJSON *o = event(t->id, "progress");
	cJSON_AddNumberToObject(o, "done", p->done);
	cJSON_AddNumberToObject(o, "total", p->total);
	cJSON_AddStringToObject(o, "subtask", p->subtask);
	send_json(cx, s, o);
}

static void
answer_result(tr_ctx *cx, struct session *s, const tr_msg *m)
{
	const struct result_msg *r = m->data;

	if (m->size <= sizeof(*r) || ((const char *)m->data)[m->size - 1]) {
		return; /* not a NUL-terminated result */
	}
	struct open_task *t = open_by_seq(s, r->seq);
	if (t == NULL) {
		return;
	}
	cJSON *o = event(t->id, "result");
	cJSON_AddBoolToObject(o, "ok", r->ok);
	/* The manager built the result object; it goes in as it is. */
	cJSON_AddRawToObject(o, "result", r->json);
	cJSON_AddNumberToObject(o, "ms", (double)r->ms);
	send_json(cx, s, o);
	open_release(cx, s, t, false);
}

/* The manager stopped: every task it had gets a failed result now. */
static void
manager_gone(tr_ctx *cx, struct session *s)
{
	s->manager = TR_PID_NONE;
	for (int i = 0; i < SESSION_INFLIGHT; i++) {
		struct open_task *t = &s->open[i];

		if (!t->is_used) {
			continue;
		}
		cJSON *o = event(t->id, "result");
		cJSON_AddBoolToObject(o, "ok", false);
		cJSON *r = cJSON_AddObjectToObject(o, "result");
		cJSON_AddStringToObject(r, "error", "the manager stopped");
		cJSON_AddNumberToObject(
			o, "ms", (double)((now_ns() - t->t0_ns) / 1000000u));
		send_json(cx, s, o);
		open_release(cx, s, t, false);
	}
}

static int
session_init(tr_ctx *cx, void *state, void *arg)
{
	struct session *s = state;

	(void)cx;
	(void)arg;
	return tr_framer_init(&s->framer, TR_FRAME_LINE, LINE_MAX_LEN);
}

static void
session_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct session *s = state;

	switch (m->type) {
	case TR_MSG_TCP_OPEN: {
		tr_tcp_event e;

		if (payload(m, &e, sizeof(e))) {
			s->conn = e.conn;
			stat_add(&stats.sessions, 1);
		}
		break;
	}
	case TR_MSG_TCP_DATA: {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d != NULL) {
			session_data(cx, s, d);
		}
		break;
	}
	case TR_MSG_TCP_EOF:
		/* The client sent all it will (nc after end of input): answer
		 * what is open, then close. */
		s->is_peer_done = true;
		if (s->n_open == 0) {
			close_conn(cx, s);
		}
		break;
	case TR_MSG_TCP_CLOSED:
		/* By us, by the peer, or by the runtime. Stopping is enough:
		 * the manager monitors us and cancels our open tasks. */
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	case MSG_ACCEPTED: {
		struct accepted_msg a;

		if (payload(m, &a, sizeof(a))) {
			answer_accepted(cx, s, &a);
		}
		break;
	}
	case MSG_PROGRESS: {
		struct progress_msg p;

		if (payload(m, &p, sizeof(p))) {
			answer_progress(cx, s, &p);
		}
		break;
	}
	case MSG_RESULT:
		answer_result(cx, s, m);
		break;
	case MSG_REJECTED: {
		struct rejected_msg r;
		struct open_task *t;

		if (payload(m, &r, sizeof(r)) &&
		    (t = open_by_seq(s, r.seq)) != NULL) {
			send_error(cx, s, t->id,
				   r.why == REJECT_STOPPING
					   ? "the hub is stopping"
					   : "hub busy, try again");
			open_release(cx, s, t, true);
		}
		break;
	}
	case TR_MSG_DOWN: {
		tr_down d;

		if (payload(m, &d, sizeof(d)) && d.ref.v == s->manager_ref.v &&
		    tr_pid_eq(d.who, s->manager)) {
			manager_gone(cx, s);
		}
		break;
	}
	default:
		break;
	}
}

static void
session_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct session *s = state;

	(void)cx;
	(void)reason;
	/* Tasks still open when the client went away: nobody to answer.
	 * Some may have gone before their "accepted" could reach us. */
	for (int i = 0; i < SESSION_INFLIGHT; i++) {
		if (s->open[i].is_used) {
			stat_add_release(&stats.sess_abandoned, 1);
			if (!s->open[i].is_accepted) {
				stat_add(&stats.sess_unaccepted, 1);
			}
		}
	}
	tr_framer_fini(&s->framer);
}

const tr_actor_def session_def = {
	.size = sizeof(tr_actor_def),
	.name = "session",
	.state_size = sizeof(struct session),
	.init = session_init,
	.teardown = session_teardown,
	.handle = session_handle,
};

/* ------------------------------------------------------------------ */
/* The listener                                                        */

struct server {
	tr_pid reply_to; /* main's inbox: where MSG_LISTENING goes */
};

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct server *sv = state;

	if (m->type == MSG_LISTEN) {
		uint16_t port;
		struct listening l = { .status = TR_EINVAL };

		if (!payload(m, &port, sizeof(port))) {
			return;
		}
		sv->reply_to = tr_sender(cx);
		/* Loopback only: the hub runs programs on request. */
		if (tr_tcp_listen(cx, "127.0.0.1", port, &session_def, NULL,
				  NULL) < 0) {
			snprintf(l.error, sizeof(l.error), "cannot listen");
			(void)tr_send(cx, sv->reply_to, MSG_LISTENING, &l,
				      sizeof(l));
		}
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening tl;
		struct listening l;

		if (!payload(m, &tl, sizeof(tl))) {
			return;
		}
		l.status = tl.status;
		l.port = tl.port;
		memcpy(l.error, tl.error, sizeof(l.error));
		(void)tr_send(cx, sv->reply_to, MSG_LISTENING, &l, sizeof(l));
	}
}

const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "listener",
	.state_size = sizeof(struct server),
	.handle = server_handle,
};
