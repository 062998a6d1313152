/*
 * Supervisor (Erlang/OTP's supervisor behaviour), written on the public
 * API only.
 *
 * A supervisor is one actor. It traps exits, links every child it
 * spawns, and runs one task at a time: its own start, a restart, its
 * shutdown, or a request that starts or stops a child. A task is a series
 * of steps on children marked for it: first the terminations, from the
 * last child backwards, then the starts, from the first child onwards.
 * A step that has to wait (for a child's init to return, or for a child
 * to stop) ends the turn; the message it waits for resumes the task.
 * Everything else that needs an action meanwhile (another child's exit,
 * the parent's exit, requests) gets a stamp from one counter and is acted
 * on in stamp order once the task is done: this is OTP's supervisor,
 * whose synchronous calls leave those messages in its mailbox.
 *
 * Knowing that a child started means knowing that its init returned. A
 * worker whose definition has an init is spawned from a copy of that
 * definition whose init calls the real one and then sends the supervisor
 * an acknowledgement (MSG_ACK) before returning. The copies live in a
 * process-wide list that only grows, one entry per distinct definition,
 * and is never freed: a child may outlive its supervisor (a runtime stop,
 * a kill), and the definition an actor was spawned with must outlive the
 * actor. A worker without init cannot fail to start and needs no copy. A
 * nested supervisor acknowledges itself, once all its own children have
 * started.
 *
 * Starting. Whoever starts a supervisor spawns it and sends it its
 * flags and specs as its first message (MSG_START, actors/boot.h): a
 * request from an actor or an inbox, answered with TR_MSG_SUP_REPLY once
 * the children have started (or one failed), a plain message from the
 * runtime's context, or, from a parent supervisor, a message answered
 * with MSG_ACK. Nothing happens before it: the supervisor's init only
 * traps exits.
 *
 * Threads: every function that takes a struct sup runs in that
 * supervisor's turns. The public start and request functions run on the
 * caller's thread and only copy and validate. The list of definition
 * copies is the one piece of shared memory (lock-free, push only).
 *
 * A child is stopped as OTP does it: monitor, unlink, exit signal, and
 * the DOWN reports the end. The link cannot: an actor that receives an
 * exit signal drops its link to the sender.
 *
 * Invariants:
 * - a child's pid is TR_PID_NONE exactly when it is not running (a child
 *   whose init has not returned yet counts as running);
 * - at most one child is starting at a time (s->is_starting), and
 *   s->nterm children are being stopped;
 * - a child whose exit is not yet acted on has exit_pending set; a task
 *   that stops or starts that child consumes it (OTP flushes the EXIT).
 */
#include <troupe/actors/supervisor.h>

#include "boot.h"
#include "clock.h"
#include "defs.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The supervisor's own messages (see the header: 0x80 and up are private). */
#define MSG_REQ   (TR_MSG_SUP_BASE + 0x80u) /* pointer to struct req */
#define MSG_ACK   (TR_MSG_SUP_BASE + 0x81u) /* uint64_t start sequence */
#define MSG_TIMER (TR_MSG_SUP_BASE + 0x82u) /* uint64_t timer sequence */
#define MSG_START (TR_MSG_SUP_BASE + 0x83u) /* pointer to struct boot */

/* ------------------------------------------------------------------ */
/* Copied specs                                                        */

struct conf;

/* A child spec in supervisor-owned memory. */
struct spec {
	char id[TR_SUP_ID_MAX];
	const tr_actor_def *def;
	void *arg;
	struct conf *nested; /* owned; set for a nested supervisor */
	uint64_t shutdown_ms;
	uint32_t restart;
	uint32_t type;
};

/* Flags and specs of a supervisor, deep-copied. */
struct conf {
	uint32_t strategy;
	uint32_t intensity;
	uint64_t period_ms;
	tr_pid observer;
	size_t n;
	struct spec *specs;
};

static void conf_free(struct conf *c);
static tr_err
conf_copy(const tr_sup_flags *flags, const tr_sup_child_spec *specs, size_t n,
	  unsigned depth, struct conf **out);
static tr_err conf_dup(const struct conf *src, struct conf **out);

static void
spec_fini(struct spec *sp)
{
	conf_free(sp->nested);
	sp->nested = NULL;
}

static tr_err
id_copy(char *dst, const char *id)
{
	if (id == NULL) {
		return TR_EINVAL;
	}
	size_t len = strnlen(id, TR_SUP_ID_MAX);
	if (len == 0 || len == TR_SUP_ID_MAX) {
		return TR_EINVAL;
	}
	memcpy(dst, id, len + 1);
	return TR_OK;
}

static tr_err
spec_copy(struct spec *dst, const tr_sup_child_spec *src, unsigned depth)
{
	memset(dst, 0, sizeof(*dst));
	if (src->size < sizeof(*src) ||
	    (unsigned)src->restart > TR_SUP_TEMPORARY ||
	    (unsigned)src->type > TR_SUP_SUPERVISOR) {
		return TR_EINVAL;
	}
	tr_err err = id_copy(dst->id, src->id);
	if (err < 0) {
		return err;
	}
	dst->restart = (uint32_t)src->restart;
	dst->type = (uint32_t)src->type;
	dst->shutdown_ms = src->shutdown_ms;
	if (src->sup_flags != NULL) {
		if (src->def != NULL || src->arg != NULL) {
			return TR_EINVAL;
		}
		dst->type = TR_SUP_SUPERVISOR;
		return conf_copy(src->sup_flags, src->sup_specs,
				 src->sup_nspecs, depth + 1, &dst->nested);
	}
	if (src->def == NULL || src->def->size < sizeof(tr_actor_def) ||
	    src->def->handle == NULL || src->sup_specs != NULL ||
	    src->sup_nspecs != 0) {
		return TR_EINVAL;
	}
	dst->def = src->def;
	dst->arg = src->arg;
	return TR_OK;
}

static tr_err
spec_dup(struct spec *dst, const struct spec *src)
{
	*dst = *src;
	dst->nested = NULL;
	if (src->nested != NULL) {
		return conf_dup(src->nested, &dst->nested);
	}
	return TR_OK;
}

static void
conf_free(struct conf *c)
{
	if (c == NULL) {
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		spec_fini(&c->specs[i]);
	}
	free(c->specs);
	free(c);
}

static tr_err
conf_copy(const tr_sup_flags *flags, const tr_sup_child_spec *specs, size_t n,
	  unsigned depth, struct conf **out)
{
	*out = NULL;
	if (flags == NULL || flags->size < sizeof(*flags) ||
	    (unsigned)flags->strategy > TR_SUP_SIMPLE_ONE_FOR_ONE ||
	    flags->period_ms == 0 || flags->intensity > TR_SUP_MAX_INTENSITY ||
	    (n > 0 && specs == NULL) || depth > TR_SUP_MAX_DEPTH ||
	    n > SIZE_MAX / sizeof(struct spec)) {
		return TR_EINVAL;
	}
	/* The template is the whole description of a simple_one_for_one. */
	if (flags->strategy == TR_SUP_SIMPLE_ONE_FOR_ONE && n != 1) {
		return TR_EINVAL;
	}
	struct conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return TR_ENOMEM;
	}
	c->strategy = (uint32_t)flags->strategy;
	c->intensity = flags->intensity;
	c->period_ms = flags->period_ms;
	c->observer = flags->observer;
	tr_err err = TR_OK;
	if (n > 0) {
		c->specs = calloc(n, sizeof(*c->specs));
		if (c->specs == NULL) {
			err = TR_ENOMEM;
			goto err_conf;
		}
	}
	for (size_t i = 0; i < n; i++) {
		err = spec_copy(&c->specs[i], &specs[i], depth);
		c->n = i + 1; /* conf_free() releases what this copy holds */
		if (err < 0) {
			goto err_conf;
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(c->specs[i].id, c->specs[j].id) == 0) {
				err = TR_EEXIST;
				goto err_conf;
			}
		}
	}
	/* Dynamic children take an argument, which a nested spec has no
	 * place for. */
	if (c->strategy == TR_SUP_SIMPLE_ONE_FOR_ONE &&
	    c->specs[0].nested != NULL) {
		err = TR_EINVAL;
		goto err_conf;
	}
	*out = c;
	return TR_OK;

err_conf:
	conf_free(c);
	return err;
}

static tr_err
conf_dup(const struct conf *src, struct conf **out)
{
	*out = NULL;
	struct conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return TR_ENOMEM;
	}
	*c = *src;
	c->n = 0;
	c->specs = NULL;
	if (src->n > 0) {
		c->specs = calloc(src->n, sizeof(*c->specs));
		if (c->specs == NULL) {
			free(c);
			return TR_ENOMEM;
		}
	}
	for (size_t i = 0; i < src->n; i++) {
		tr_err err = spec_dup(&c->specs[i], &src->specs[i]);
		c->n = i + 1;
		if (err < 0) {
			conf_free(c);
			return err;
		}
	}
	*out = c;
	return TR_OK;
}

/* ------------------------------------------------------------------ */
/* Acknowledged starts of workers                                      */

/* What the wrapped init needs; made per start, freed by that init. */
struct start_rec {
	tr_init_fn init;
	void *arg;
	tr_pid sup;
	uint64_t seq;
};

static int
wrap_init(tr_ctx *cx, void *state, void *arg)
{
	struct start_rec rec;

	memcpy(&rec, arg, sizeof(rec));
	free(arg);
	int r = rec.init(cx, state, rec.arg);
	if (r < 0) {
		return r;
	}
	/* Without the acknowledgement the supervisor would wait forever, so
	 * failing to send it fails the start (teardown still runs). */
	tr_err err = tr_send(cx, rec.sup, MSG_ACK, &rec.seq, sizeof(rec.seq));
	return err < 0 ? err : r;
}

static _Atomic(struct tr__def *) wraps;

/* Children with an init start from a copy whose init acknowledges. */
static void
derive_wrap(const tr_actor_def *user, tr_actor_def *out)
{
	*out = *user;
	out->init = wrap_init;
	/* wrap_init gets its own record; the user's argument is the
	 * supervisor's to keep alive (see tr_sup_child_spec.arg). */
	out->arg_size = 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

/* A request in flight; the message's pointer payload. */
struct req {
	struct req *next; /* deferred queue */
	uint64_t stamp;
	tr_msg hdr; /* the request's header, for tr_reply() */
	tr_pid pid;
	void *arg;
	uint32_t op;
	bool has_spec;
	bool has_id;
	char id[TR_SUP_ID_MAX];
	struct spec spec; /* owned copy when has_spec */
};

static void
req_free(void *p)
{
	struct req *r = p;

	if (r == NULL) {
		return;
	}
	if (r->has_spec) {
		spec_fini(&r->spec);
	}
	free(r);
}

static tr_err
req_make(const tr_sup_request *in, struct req **out)
{
	*out = NULL;
	if (in == NULL || in->size < sizeof(*in)) {
		return TR_EINVAL;
	}
	switch (in->op) {
	case TR_SUP_OP_START_CHILD:
	case TR_SUP_OP_WHICH_CHILDREN:
	case TR_SUP_OP_COUNT_CHILDREN:
	case TR_SUP_OP_STOP:
		break;
	case TR_SUP_OP_TERMINATE_CHILD:
		if (in->id == NULL && tr_pid_is_none(in->pid)) {
			return TR_EINVAL;
		}
		break;
	case TR_SUP_OP_RESTART_CHILD:
	case TR_SUP_OP_DELETE_CHILD:
		if (in->id == NULL) {
			return TR_EINVAL;
		}
		break;
	default:
		return TR_EINVAL;
	}
	struct req *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->op = (uint32_t)in->op;
	r->pid = in->pid;
	r->arg = in->arg;
	tr_err err = TR_OK;
	if (in->id != NULL) {
		err = id_copy(r->id, in->id);
		r->has_id = true;
		if (err < 0) {
			goto err_req;
		}
	}
	if (in->op == TR_SUP_OP_START_CHILD && in->spec != NULL) {
		err = spec_copy(&r->spec, in->spec, 0);
		r->has_spec = true;
		if (err < 0) {
			goto err_req;
		}
	}
	*out = r;
	return TR_OK;

err_req:
	req_free(r);
	return err;
}

/* ------------------------------------------------------------------ */
/* The supervisor actor                                                */

/* How a supervisor reports that its start is done. */
enum { BOOT_REPLY, BOOT_ACK };

/*
 * What a supervisor starts with: the payload of its MSG_START, sent by
 * whoever spawned it right after the spawn, so that the message owns it
 * (the runtime frees it if the supervisor never takes it).
 */
struct boot {
	struct conf *conf; /* owned */
	tr_pid parent;     /* TR_PID_NONE when not linked */
	uint64_t seq;      /* BOOT_ACK: the parent's start sequence */
	int kind;
};

static void
boot_free(void *p)
{
	struct boot *b = p;

	if (b != NULL) {
		conf_free(b->conf);
		free(b);
	}
}

struct child {
	struct spec sp;
	tr_pid pid;
	uint64_t start_seq;
	uint64_t exit_stamp;
	tr_ref mon_ref; /* monitor of a child being stopped */
	int32_t exit_reason;
	bool has_mon;
	bool mark_term;   /* the task stops it */
	bool mark_start;  /* the task starts it */
	bool starting;    /* its init has not acknowledged yet */
	bool terminating; /* stopped by the task, its exit not seen yet */
	bool exit_pending;
};

enum task {
	T_NONE,
	T_INIT,
	T_INIT_FAILED,
	T_RESTART,
	T_SHUTDOWN,
	T_REQ_START,
	T_REQ_RESTART,
	T_REQ_TERMINATE,
};

struct sup {
	tr_pid self;
	tr_pid parent;
	tr_pid observer;
	uint32_t strategy;
	uint32_t intensity;
	uint64_t period_ms;
	struct spec tmpl; /* simple_one_for_one */
	struct child *kids;
	size_t n;
	size_t cap;
	/* Restart times (ms), a ring of @intensity entries. */
	uint64_t *hist;
	uint32_t hist_head;
	uint32_t hist_n;
	uint64_t next_seq;
	uint64_t next_stamp;
	/* How to report the end of the start: to boot.from (a reply to
	 * the start, or an acknowledgement to the parent supervisor);
	 * nobody once it is reported, or when boot.from is TR_PID_NONE. */
	bool is_booted; /* MSG_START taken */
	int boot_kind;
	uint64_t boot_seq;
	tr_msg boot;
	/* The task. */
	enum task task;
	bool is_starting;
	uint32_t nterm;
	bool has_timer;
	tr_timer_id timer;
	uint64_t timer_seq;
	struct req *task_req;
	tr_pid task_pid;
	int32_t task_reason;
	int32_t fail_reason;
	int32_t fail_status;
	/* Deferred work. */
	struct req *dq_head;
	struct req *dq_tail;
	size_t npending;
	bool parent_exit_pending;
	int32_t parent_exit_reason;
	uint64_t parent_exit_stamp;
	bool is_stopped;
};

static const tr_actor_def sup_def;

static bool
is_simple(const struct sup *s)
{
	return s->strategy == TR_SUP_SIMPLE_ONE_FOR_ONE;
}

static void
emit(tr_ctx *cx, struct sup *s, uint32_t kind, const struct child *c,
     tr_pid pid, int32_t reason, int32_t status)
{
	tr_sup_event ev;

	if (tr_pid_is_none(s->observer)) {
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.reason = reason;
	ev.status = status;
	ev.sup = s->self;
	ev.pid = pid;
	if (c != NULL) {
		memcpy(ev.id, c->sp.id, sizeof(ev.id));
	}
	/* Best effort, as documented: the supervisor must not fail for it. */
	(void)tr_send(cx, s->observer, TR_MSG_SUP_EVENT, &ev, sizeof(ev));
}

static tr_err
reply(tr_ctx *cx, const struct req *r, int32_t status, int32_t reason,
      tr_pid pid)
{
	tr_sup_reply rp;

	if (tr_pid_is_none(r->hdr.from)) {
		return TR_OK;
	}
	memset(&rp, 0, sizeof(rp));
	rp.op = r->op;
	rp.status = status;
	rp.reason = reason;
	rp.pid = pid;
	return tr_reply(cx, &r->hdr, TR_MSG_SUP_REPLY, &rp, sizeof(rp));
}

static struct child *
find_pid(struct sup *s, tr_pid pid)
{
	if (tr_pid_is_none(pid)) {
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (tr_pid_eq(s->kids[i].pid, pid)) {
			return &s->kids[i];
		}
	}
	return NULL;
}

static struct child *
find_id(struct sup *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->kids[i].sp.id, id) == 0) {
			return &s->kids[i];
		}
	}
	return NULL;
}

/* Appends a child that takes over @sp (its nested conf included). */
static struct child *
add_child(struct sup *s, const struct spec *sp)
{
	if (s->n == s->cap) {
		size_t cap = s->cap < 8 ? 8 : s->cap * 2;
		struct child *k = realloc(s->kids, cap * sizeof(*k));
		if (k == NULL) {
			return NULL;
		}
		s->kids = k;
		s->cap = cap;
	}
	struct child *c = &s->kids[s->n++];
	memset(c, 0, sizeof(*c));
	c->sp = *sp;
	return c;
}

static void consume_exit(struct sup *s, struct child *c);

static void
remove_child(struct sup *s, struct child *c)
{
	size_t i = (size_t)(c - s->kids);

	consume_exit(s, c);
	spec_fini(&c->sp);
	memmove(&s->kids[i], &s->kids[i + 1], (s->n - i - 1) * sizeof(*c));
	s->n--;
}

static void
consume_exit(struct sup *s, struct child *c)
{
	if (c->exit_pending) {
		c->exit_pending = false;
		s->npending--;
	}
}

/* OTP's add_restart: false when this restart is one too many. */
static bool
add_restart(struct sup *s)
{
	uint64_t now = tr__clock_ms();

	while (s->hist_n > 0) {
		uint32_t oldest = (s->hist_head + s->intensity - s->hist_n) %
				  s->intensity;
		if (now - s->hist[oldest] <= s->period_ms) {
			break;
		}
		s->hist_n--;
	}
	if (s->hist_n == s->intensity) {
		return false;
	}
	s->hist[s->hist_head] = now;
	s->hist_head = (s->hist_head + 1) % s->intensity;
	s->hist_n++;
	return true;
}

/*
 * Answers the start: a reply to the starter (BOOT_REPLY) or an
 * acknowledgement to the parent supervisor. False when a successful
 * start could not be told: whoever waits for it would wait forever, so
 * the caller shuts down instead (and the starter's request then fails).
 */
static bool
boot_done(tr_ctx *cx, struct sup *s, int32_t status, int32_t reason)
{
	tr_err err = TR_OK;

	if (tr_pid_is_none(s->boot.from)) {
		return true;
	}
	if (s->boot_kind == BOOT_ACK) {
		if (status == TR_OK) {
			err = tr_send(cx, s->boot.from, MSG_ACK, &s->boot_seq,
				      sizeof(s->boot_seq));
		}
	} else {
		tr_sup_reply rp;
		memset(&rp, 0, sizeof(rp));
		rp.op = 0; /* the start */
		rp.status = status;
		rp.reason = reason;
		rp.pid = s->self;
		err = tr_reply(cx, &s->boot, TR_MSG_SUP_REPLY, &rp, sizeof(rp));
	}
	if (status == TR_OK && err < 0) {
		return false;
	}
	s->boot.from = TR_PID_NONE;
	return true;
}

/* Answers what is left when the supervisor stops: a stop is done, any
 * other request is not. */
static void
flush_requests(tr_ctx *cx, struct sup *s)
{
	if (s->task_req != NULL) {
		struct req *r = s->task_req;
		(void)reply(cx, r, r->op == TR_SUP_OP_STOP ? TR_OK : TR_ECLOSED,
			    0, TR_PID_NONE);
		req_free(r);
		s->task_req = NULL;
	}
	while (s->dq_head != NULL) {
		struct req *r = s->dq_head;
		s->dq_head = r->next;
		(void)reply(cx, r, r->op == TR_SUP_OP_STOP ? TR_OK : TR_ECLOSED,
			    0, TR_PID_NONE);
		req_free(r);
	}
	s->dq_tail = NULL;
}

static void
stop(tr_ctx *cx, struct sup *s, int32_t reason)
{
	flush_requests(cx, s);
	tr_stop_self(cx, reason);
	s->is_stopped = true;
}

static void
begin_shutdown(tr_ctx *cx, struct sup *s, int32_t reason)
{
	emit(cx, s, TR_SUP_EV_SHUTDOWN, NULL, TR_PID_NONE, reason, 0);
	for (size_t i = 0; i < s->n; i++) {
		s->kids[i].mark_start = false;
		s->kids[i].mark_term = true;
	}
	s->task = T_SHUTDOWN;
	s->task_reason = reason;
}

/* ---- starting ------------------------------------------------------ */

static tr_err
spawn_child(tr_ctx *cx, struct sup *s, struct child *c, tr_pid *pid,
	    bool *needs_ack)
{
	uint64_t seq = ++s->next_seq;
	tr_err err;

	c->start_seq = seq;
	*needs_ack = true;
	if (c->sp.nested != NULL) {
		struct boot *b = calloc(1, sizeof(*b));
		if (b == NULL) {
			return TR_ENOMEM;
		}
		err = conf_dup(c->sp.nested, &b->conf);
		if (err < 0) {
			boot_free(b);
			return err;
		}
		b->parent = s->self;
		b->seq = seq;
		b->kind = BOOT_ACK;
		return tr__boot_start(cx, &sup_def, TR__BOOT_LINK, MSG_START, b,
				      sizeof(*b), boot_free, pid, NULL);
	}
	if (c->sp.def->init == NULL) {
		/* Nothing can fail before its first message. */
		*needs_ack = false;
		return tr_spawn_link(cx, c->sp.def, c->sp.arg, pid);
	}
	const struct tr__def *wd = tr__def_get(&wraps, c->sp.def, derive_wrap);
	const tr_actor_def *w = wd != NULL ? &wd->def : NULL;
	struct start_rec *rec = malloc(sizeof(*rec));
	if (w == NULL || rec == NULL) {
		free(rec);
		return TR_ENOMEM;
	}
	rec->init = c->sp.def->init;
	rec->arg = c->sp.arg;
	rec->sup = s->self;
	rec->seq = seq;
	err = tr_spawn_link(cx, w, rec, pid);
	if (err < 0) {
		free(rec);
	}
	return err;
}

static void
started(tr_ctx *cx, struct sup *s, struct child *c)
{
	uint32_t kind =
		s->task == T_RESTART ? TR_SUP_EV_RESTARTED : TR_SUP_EV_STARTED;

	emit(cx, s, kind, c, c->pid, 0, 0);
	s->task_pid = c->pid;
}

static void
start_failed(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason,
	     int32_t status)
{
	tr_pid failed = c->pid;

	c->starting = false;
	s->is_starting = false;
	c->pid = TR_PID_NONE;
	emit(cx, s, TR_SUP_EV_START_FAILED, c, failed, reason,
	     status == TR_EREJECTED ? 0 : status);
	for (size_t i = 0; i < s->n; i++) {
		s->kids[i].mark_start = false;
	}
	switch (s->task) {
	case T_INIT:
		/* OTP: stop the children already started, then fail. */
		for (size_t i = 0; i < s->n; i++) {
			s->kids[i].mark_term = true;
		}
		s->task = T_INIT_FAILED;
		s->fail_reason = reason;
		s->fail_status = status;
		break;
	case T_RESTART:
		if (status == TR_ECLOSED) {
			/* The runtime is stopping: nothing can start again. */
			begin_shutdown(cx, s, TR_EXIT_SHUTDOWN);
			break;
		}
		/*
		 * As OTP's try_again_restart: the failure is one more exit
		 * of this child, acted on after the task, and it counts
		 * against the intensity, which bounds the retries.
		 */
		c->exit_pending = true;
		c->exit_reason = reason;
		c->exit_stamp = ++s->next_stamp;
		s->npending++;
		break;
	case T_REQ_START:
		(void)reply(cx, s->task_req, status, reason, TR_PID_NONE);
		req_free(s->task_req);
		s->task_req = NULL;
		remove_child(s, c); /* OTP keeps no spec that failed to start */
		break;
	case T_REQ_RESTART:
		(void)reply(cx, s->task_req, status, reason, TR_PID_NONE);
		req_free(s->task_req);
		s->task_req = NULL;
		break;
	default:
		break;
	}
}

static void
start_begin(tr_ctx *cx, struct sup *s, struct child *c)
{
	tr_pid pid = TR_PID_NONE;
	bool needs_ack;

	c->mark_start = false;
	consume_exit(s, c);
	tr_err err = spawn_child(cx, s, c, &pid, &needs_ack);
	if (err < 0) {
		start_failed(cx, s, c, TR_EXIT_ERROR, err);
		return;
	}
	c->pid = pid;
	if (needs_ack) {
		c->starting = true;
		s->is_starting = true;
		return;
	}
	started(cx, s, c);
}

/* ---- stopping ------------------------------------------------------ */

static void
kill_terminating(tr_ctx *cx, struct sup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->kids[i].terminating) {
			(void)tr_exit(cx, s->kids[i].pid, TR_EXIT_KILL);
		}
	}
}

static void
arm_timer(tr_ctx *cx, struct sup *s, uint64_t ms)
{
	if (s->nterm == 0 || ms == 0 || ms == TR_SUP_INFINITY) {
		return;
	}
	uint64_t seq = ++s->timer_seq;
	if (tr_send_after(cx, s->self, MSG_TIMER, &seq, sizeof(seq), ms,
			  &s->timer) < 0) {
		/* Without a timer there is no waiting: kill now. */
		kill_terminating(cx, s);
		return;
	}
	s->has_timer = true;
}

/* What a stop by the task means for the child's spec. */
static void
after_terminated(struct sup *s, struct child *c)
{
	bool drop = false;

	if (s->task == T_RESTART) {
		/* OTP: a temporary child stopped by its siblings' restart is
		 * removed, not restarted. */
		drop = c->sp.restart == TR_SUP_TEMPORARY;
	} else if (s->task == T_REQ_TERMINATE) {
		drop = c->sp.restart == TR_SUP_TEMPORARY || is_simple(s);
	}
	if (drop) {
		remove_child(s, c);
	}
}

static void
terminate_done(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason);

/*
 * OTP's shutdown: monitor, unlink, exit signal, wait for the DOWN. The
 * monitor is what reports the end: a child that receives an exit signal
 * drops its link to the sender, so no exit signal comes back. A child
 * that was stopping anyway may still send one first; whichever of the
 * two comes first ends the wait, and the other is ignored (a stale pid)
 * or cancelled (tr_demonitor()).
 */
static void
terminate_begin(tr_ctx *cx, struct sup *s, struct child *c)
{
	c->mark_term = false;
	if (tr_pid_is_none(c->pid)) {
		/* Already gone: its exit, if not acted on yet, never
		 * will be. */
		consume_exit(s, c);
		after_terminated(s, c);
		return;
	}
	int32_t how = c->sp.shutdown_ms == 0 ? TR_EXIT_KILL : TR_EXIT_SHUTDOWN;
	c->terminating = true;
	s->nterm++;
	if (tr_monitor(cx, c->pid, &c->mon_ref) < 0) {
		/* Out of memory: its end could not be seen, so it must end
		 * now, unseen. */
		(void)tr_exit(cx, c->pid, TR_EXIT_KILL);
		terminate_done(cx, s, c, TR_EXIT_KILLED);
		return;
	}
	c->has_mon = true;
	(void)tr_unlink(cx, c->pid);
	if (tr_exit(cx, c->pid, how) < 0 && how != TR_EXIT_KILL) {
		(void)tr_exit(cx, c->pid, TR_EXIT_KILL);
	}
}

static void
terminate_done(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason)
{
	tr_pid old = c->pid;

	if (c->has_mon) {
		(void)tr_demonitor(cx, c->mon_ref);
		c->has_mon = false;
	}
	c->terminating = false;
	c->pid = TR_PID_NONE;
	s->nterm--;
	emit(cx, s, TR_SUP_EV_EXITED, c, old, reason, 0);
	if (s->task == T_REQ_TERMINATE) {
		s->task_pid = old;
	}
	after_terminated(s, c);
	if (s->nterm == 0 && s->has_timer) {
		(void)tr_timer_cancel(cx, s->timer);
		s->has_timer = false;
	}
}

/* ---- tasks --------------------------------------------------------- */

/* One step of the task; false when there is nothing left to do. */
static bool
step(tr_ctx *cx, struct sup *s)
{
	/* Stops first, last child first (reverse start order). */
	for (size_t i = s->n; i-- > 0;) {
		struct child *c = &s->kids[i];
		if (!c->mark_term) {
			continue;
		}
		if (is_simple(s)) {
			/* OTP stops dynamic children all at once. Going down,
			 * a removal only moves entries already passed. */
			for (size_t j = i + 1; j-- > 0;) {
				if (s->kids[j].mark_term) {
					terminate_begin(cx, s, &s->kids[j]);
				}
			}
			arm_timer(cx, s, s->tmpl.shutdown_ms);
		} else {
			uint64_t ms = c->sp.shutdown_ms;
			terminate_begin(cx, s, c);
			arm_timer(cx, s, ms);
		}
		return true;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->kids[i].mark_start) {
			start_begin(cx, s, &s->kids[i]);
			return true;
		}
	}
	return false;
}

static void
finish_task(tr_ctx *cx, struct sup *s)
{
	enum task t = s->task;

	s->task = T_NONE;
	switch (t) {
	case T_INIT:
		if (!boot_done(cx, s, TR_OK, 0)) {
			begin_shutdown(cx, s, TR_SUP_EXIT_START_FAILED);
		}
		break;
	case T_INIT_FAILED:
		(void)boot_done(cx, s, s->fail_status, s->fail_reason);
		stop(cx, s, TR_SUP_EXIT_START_FAILED);
		break;
	case T_SHUTDOWN:
		stop(cx, s, s->task_reason);
		break;
	case T_REQ_START:
	case T_REQ_RESTART:
	case T_REQ_TERMINATE:
		if (s->task_req != NULL) {
			(void)reply(cx, s->task_req, TR_OK, 0, s->task_pid);
		}
		break;
	default:
		break;
	}
	req_free(s->task_req);
	s->task_req = NULL;
	s->task_pid = TR_PID_NONE;
}

/* Acts on an exit of @c that no task consumed. */
static void
process_exit(tr_ctx *cx, struct sup *s, struct child *c)
{
	int32_t reason = c->exit_reason;

	consume_exit(s, c);
	bool again = c->sp.restart == TR_SUP_PERMANENT ||
		     (c->sp.restart == TR_SUP_TRANSIENT &&
		      reason != TR_EXIT_NORMAL && reason != TR_EXIT_SHUTDOWN);
	if (!again) {
		if (c->sp.restart == TR_SUP_TEMPORARY || is_simple(s)) {
			remove_child(s, c);
		}
		return;
	}
	if (!add_restart(s)) {
		emit(cx, s, TR_SUP_EV_INTENSITY, c, TR_PID_NONE, reason, 0);
		begin_shutdown(cx, s, TR_SUP_EXIT_INTENSITY);
		return;
	}
	size_t at = (size_t)(c - s->kids);
	switch (s->strategy) {
	case TR_SUP_ONE_FOR_ALL:
		for (size_t i = 0; i < s->n; i++) {
			struct child *k = &s->kids[i];
			k->mark_term = k != c;
			k->mark_start = k->sp.restart != TR_SUP_TEMPORARY;
		}
		break;
	case TR_SUP_REST_FOR_ONE:
		for (size_t i = at; i < s->n; i++) {
			struct child *k = &s->kids[i];
			k->mark_term = k != c;
			k->mark_start = k->sp.restart != TR_SUP_TEMPORARY;
		}
		break;
	default:
		c->mark_start = true;
		break;
	}
	s->task = T_RESTART;
}

static void
reply_children(tr_ctx *cx, struct sup *s, const struct req *r)
{
	if (tr_pid_is_none(r->hdr.from)) {
		return;
	}
	size_t size =
		sizeof(tr_sup_children) + s->n * sizeof(tr_sup_child_info);
	tr_sup_children *c = calloc(1, size);
	if (c == NULL) {
		/* The same type, without the list: one answer either way. */
		(void)reply(cx, r, TR_ENOMEM, 0, TR_PID_NONE);
		return;
	}
	c->reply.op = r->op;
	c->reply.count = (uint32_t)s->n;
	for (size_t i = 0; i < s->n; i++) {
		tr_sup_child_info *ci = &c->children[i];
		memcpy(ci->id, s->kids[i].sp.id, sizeof(ci->id));
		ci->pid = s->kids[i].pid;
		ci->type = s->kids[i].sp.type;
		ci->restart = s->kids[i].sp.restart;
	}
	(void)tr_reply_ptr(cx, &r->hdr, TR_MSG_SUP_CHILDREN, c, size, free);
}

static void
reply_counts(tr_ctx *cx, struct sup *s, const struct req *r)
{
	tr_sup_reply rp;

	if (tr_pid_is_none(r->hdr.from)) {
		return;
	}
	memset(&rp, 0, sizeof(rp));
	rp.op = r->op;
	rp.specs = is_simple(s) ? 1u : (uint32_t)s->n;
	for (size_t i = 0; i < s->n; i++) {
		if (!tr_pid_is_none(s->kids[i].pid)) {
			rp.active++;
		}
		if (s->kids[i].sp.type == TR_SUP_SUPERVISOR) {
			rp.supervisors++;
		} else {
			rp.workers++;
		}
	}
	(void)tr_reply(cx, &r->hdr, TR_MSG_SUP_REPLY, &rp, sizeof(rp));
}

/* Takes @r: it is freed here or becomes the task's request. */
static void
process_req(tr_ctx *cx, struct sup *s, struct req *r)
{
	struct child *c = NULL;
	int32_t status = TR_OK;
	tr_pid pid = TR_PID_NONE;

	switch (r->op) {
	case TR_SUP_OP_STOP:
		begin_shutdown(cx, s, TR_EXIT_SHUTDOWN);
		s->task_req = r;
		return;
	case TR_SUP_OP_WHICH_CHILDREN:
		reply_children(cx, s, r);
		req_free(r);
		return;
	case TR_SUP_OP_COUNT_CHILDREN:
		reply_counts(cx, s, r);
		req_free(r);
		return;
	case TR_SUP_OP_START_CHILD:
		if (is_simple(s) ? r->has_spec : !r->has_spec) {
			status = TR_EINVAL;
			break;
		}
		if (is_simple(s)) {
			/* A template has no nested conf to share. */
			struct spec sp = s->tmpl;
			sp.arg = r->arg;
			c = add_child(s, &sp);
		} else {
			struct child *old = find_id(s, r->spec.id);
			if (old != NULL) {
				status = TR_EEXIST;
				pid = old->pid;
				break;
			}
			c = add_child(s, &r->spec);
			if (c != NULL) {
				r->has_spec = false; /* the child owns it now */
			}
		}
		if (c == NULL) {
			status = TR_ENOMEM;
			break;
		}
		c->mark_start = true;
		s->task = T_REQ_START;
		s->task_req = r;
		return;
	case TR_SUP_OP_TERMINATE_CHILD:
		if (is_simple(s)) {
			c = find_pid(s, r->pid);
		} else if (r->has_id) {
			c = find_id(s, r->id);
		} else {
			status = TR_EINVAL;
			break;
		}
		if (c == NULL) {
			status = TR_ENOENT;
			break;
		}
		c->mark_term = true;
		s->task = T_REQ_TERMINATE;
		s->task_req = r;
		s->task_pid = c->pid;
		return;
	case TR_SUP_OP_RESTART_CHILD:
	case TR_SUP_OP_DELETE_CHILD:
		if (is_simple(s)) {
			status = TR_EINVAL;
			break;
		}
		c = find_id(s, r->id);
		if (c == NULL) {
			status = TR_ENOENT;
			break;
		}
		if (!tr_pid_is_none(c->pid) || c->exit_pending) {
			/* OTP: {error, running}; an exit not yet acted on
			 * still belongs to the restart logic. */
			status = TR_ESTATE;
			pid = c->pid;
			break;
		}
		if (r->op == TR_SUP_OP_DELETE_CHILD) {
			remove_child(s, c);
			break;
		}
		c->mark_start = true;
		s->task = T_REQ_RESTART;
		s->task_req = r;
		return;
	default:
		status = TR_EINVAL;
		break;
	}
	(void)reply(cx, r, status, 0, pid);
	req_free(r);
}

/* Acts on the oldest deferred thing; false when there is none. */
static bool
drain_one(tr_ctx *cx, struct sup *s)
{
	enum { NONE, REQ, PARENT, CHILD } what = NONE;
	uint64_t best = UINT64_MAX;
	struct child *bc = NULL;

	if (s->dq_head != NULL) {
		best = s->dq_head->stamp;
		what = REQ;
	}
	if (s->parent_exit_pending && s->parent_exit_stamp < best) {
		best = s->parent_exit_stamp;
		what = PARENT;
	}
	for (size_t i = 0; s->npending > 0 && i < s->n; i++) {
		if (s->kids[i].exit_pending && s->kids[i].exit_stamp < best) {
			best = s->kids[i].exit_stamp;
			bc = &s->kids[i];
			what = CHILD;
		}
	}
	switch (what) {
	case REQ: {
		struct req *r = s->dq_head;
		s->dq_head = r->next;
		if (s->dq_head == NULL) {
			s->dq_tail = NULL;
		}
		r->next = NULL;
		process_req(cx, s, r);
		return true;
	}
	case PARENT:
		/* OTP: an exit from the parent means shut down, with its
		 * reason. */
		s->parent_exit_pending = false;
		begin_shutdown(cx, s, s->parent_exit_reason);
		return true;
	case CHILD:
		process_exit(cx, s, bc);
		return true;
	default:
		return false;
	}
}

/* Runs the task and the deferred work until something must be awaited. */
static void
run(tr_ctx *cx, struct sup *s)
{
	if (!s->is_booted) {
		return; /* nothing to act on before the start */
	}
	while (!s->is_stopped) {
		if (s->task != T_NONE) {
			if (s->is_starting || s->nterm > 0) {
				return;
			}
			if (!step(cx, s)) {
				finish_task(cx, s);
			}
			continue;
		}
		if (!drain_one(cx, s)) {
			return;
		}
	}
}

static void
on_exit_signal(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	tr_exit_signal sig;

	if (m->size != sizeof(sig) || m->data == NULL) {
		return;
	}
	memcpy(&sig, m->data, sizeof(sig));
	struct child *c = find_pid(s, sig.from);
	if (c != NULL) {
		if (c->starting) {
			/* Before its acknowledgement: its init failed. */
			start_failed(cx, s, c, sig.reason, TR_EREJECTED);
		} else if (c->terminating) {
			terminate_done(cx, s, c, sig.reason);
		} else {
			emit(cx, s, TR_SUP_EV_EXITED, c, c->pid, sig.reason, 0);
			c->pid = TR_PID_NONE;
			c->exit_pending = true;
			c->exit_reason = sig.reason;
			c->exit_stamp = ++s->next_stamp;
			s->npending++;
		}
		return;
	}
	if (!tr_pid_is_none(s->parent) && tr_pid_eq(sig.from, s->parent) &&
	    !s->parent_exit_pending) {
		s->parent_exit_pending = true;
		s->parent_exit_reason = sig.reason;
		s->parent_exit_stamp = ++s->next_stamp;
	}
	/* Anything else is not ours to act on (OTP ignores it too). */
}

static void
on_down(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	tr_down d;

	if (m->size != sizeof(d) || m->data == NULL) {
		return;
	}
	memcpy(&d, m->data, sizeof(d));
	for (size_t i = 0; i < s->n; i++) {
		struct child *c = &s->kids[i];
		if (c->terminating && c->has_mon && c->mon_ref.v == d.ref.v) {
			c->has_mon = false; /* delivered: nothing to cancel */
			terminate_done(cx, s, c, d.reason);
			return;
		}
	}
}

static void
on_ack(struct sup *s, tr_ctx *cx, const tr_msg *m)
{
	uint64_t seq;

	if (m->size != sizeof(seq) || m->data == NULL) {
		return;
	}
	memcpy(&seq, m->data, sizeof(seq));
	struct child *c = find_pid(s, m->from);
	if (c == NULL || !c->starting || c->start_seq != seq) {
		return;
	}
	c->starting = false;
	s->is_starting = false;
	started(cx, s, c);
}

static void
on_timer(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	uint64_t seq;

	if (m->size != sizeof(seq) || m->data == NULL) {
		return;
	}
	memcpy(&seq, m->data, sizeof(seq));
	if (!s->has_timer || seq != s->timer_seq) {
		return; /* a tick from a timer cancelled too late */
	}
	s->has_timer = false;
	kill_terminating(cx, s);
}

static void
on_request(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	if (!(m->flags & TR_MSG_F_PTR) || m->size != sizeof(struct req)) {
		return;
	}
	struct req *r = tr_msg_take_ptr(cx, m);
	if (r == NULL) {
		return;
	}
	r->next = NULL;
	r->stamp = ++s->next_stamp;
	r->hdr = *m;
	r->hdr.data = NULL; /* the header only: the pointer is ours now */
	if (s->dq_tail != NULL) {
		s->dq_tail->next = r;
	} else {
		s->dq_head = r;
	}
	s->dq_tail = r;
}

/* The start: what to supervise, and whom to tell when it has started. */
static void
on_start(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	if (s->is_booted) {
		return; /* one start only; the runtime frees the copy */
	}
	struct boot *b = tr__boot_take(cx, m, sizeof(*b), &s->boot);
	if (b == NULL) {
		return;
	}
	struct conf *conf = b->conf;

	s->is_booted = true;
	s->parent = b->parent;
	s->boot_kind = b->kind;
	s->boot_seq = b->seq;
	b->conf = NULL;
	boot_free(b);
	s->strategy = conf->strategy;
	s->intensity = conf->intensity;
	s->period_ms = conf->period_ms;
	s->observer = conf->observer;
	if (s->intensity > 0) {
		s->hist = calloc(s->intensity, sizeof(*s->hist));
		if (s->hist == NULL) {
			goto err_nomem;
		}
	}
	if (is_simple(s)) {
		s->tmpl = conf->specs[0];
		conf->n = 0;
	} else if (conf->n > 0) {
		s->kids = calloc(conf->n, sizeof(*s->kids));
		if (s->kids == NULL) {
			goto err_nomem;
		}
		s->cap = conf->n;
		for (size_t i = 0; i < conf->n; i++) {
			s->kids[i].sp = conf->specs[i];
			s->kids[i].mark_start = true;
		}
		s->n = conf->n;
		conf->n = 0; /* the children own the specs now */
	}
	conf_free(conf);
	s->task = T_INIT;
	return;

err_nomem:
	conf_free(conf);
	(void)boot_done(cx, s, TR_ENOMEM, TR_SUP_EXIT_START_FAILED);
	stop(cx, s, TR_SUP_EXIT_START_FAILED);
}

static void
sup_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct sup *s = state;

	if (s->is_stopped) {
		(void)tr_unhandled(cx, m);
		return;
	}
	switch (m->type) {
	case TR_MSG_EXIT:
		on_exit_signal(cx, s, m);
		break;
	case TR_MSG_DOWN:
		on_down(cx, s, m);
		break;
	case MSG_ACK:
		on_ack(s, cx, m);
		break;
	case MSG_TIMER:
		on_timer(cx, s, m);
		break;
	case MSG_REQ:
		on_request(cx, s, m);
		break;
	case MSG_START:
		on_start(cx, s, m);
		break;
	default:
		/* Not a supervisor message: a counted dead letter, and a
		 * request gets its failure at once. */
		(void)tr_unhandled(cx, m);
		return;
	}
	run(cx, s);
}

/* The start itself comes as the first message (MSG_START, see boot.h). */
static int
sup_init(tr_ctx *cx, void *state, void *arg)
{
	struct sup *s = state;

	(void)arg;
	s->self = tr_self(cx);
	tr_trap_exit(cx, true);
	return TR_OK;
}

static void
sup_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct sup *s = state;

	if (s->task == T_INIT || s->task == T_INIT_FAILED) {
		/* Stopped from outside while starting: whoever waits for
		 * the start must not wait forever. */
		(void)boot_done(cx, s, TR_ECLOSED, reason);
	}
	flush_requests(cx, s);
	for (size_t i = 0; i < s->n; i++) {
		spec_fini(&s->kids[i].sp);
	}
	free(s->kids);
	s->kids = NULL;
	s->n = 0;
	spec_fini(&s->tmpl);
	free(s->hist);
	s->hist = NULL;
}

static const tr_actor_def sup_def = {
	.size = sizeof(tr_actor_def),
	.name = "supervisor",
	.state_size = sizeof(struct sup),
	.init = sup_init,
	.teardown = sup_teardown,
	.handle = sup_handle,
};

/* ------------------------------------------------------------------ */
/* Public functions                                                    */

tr_err
tr_sup_start(tr_ctx *cx, const tr_sup_flags *flags,
	     const tr_sup_child_spec *specs, size_t n, tr_pid *out, tr_ref *ref)
{
	struct conf *conf;

	if (out != NULL) {
		*out = TR_PID_NONE;
	}
	if (ref != NULL) {
		*ref = (tr_ref){ 0 };
	}
	if (cx == NULL) {
		return TR_EINVAL;
	}
	tr_err err = conf_copy(flags, specs, n, 0, &conf);
	if (err < 0) {
		return err;
	}
	struct boot *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		conf_free(conf);
		return TR_ENOMEM;
	}
	b->conf = conf;
	b->kind = BOOT_REPLY;
	unsigned how = TR__BOOT_ASK;
	if (flags->is_linked) {
		b->parent = tr_self(cx);
		how |= TR__BOOT_LINK;
	}
	return tr__boot_start(cx, &sup_def, how, MSG_START, b, sizeof(*b),
			      boot_free, out, ref);
}

tr_err
tr_sup_call(tr_ctx *cx, tr_pid sup, const tr_sup_request *req,
	    uint64_t timeout_ms, tr_ref *ref)
{
	struct req *r;

	if (ref != NULL) {
		*ref = (tr_ref){ 0 };
	}
	if (cx == NULL || tr_pid_is_none(sup)) {
		return TR_EINVAL;
	}
	tr_err err = req_make(req, &r);
	if (err < 0) {
		return err;
	}
	if (tr_pid_is_none(tr_self(cx))) {
		return tr_send_ptr(cx, sup, MSG_REQ, r, sizeof(*r), req_free);
	}
	return tr_request_ptr(cx, sup, MSG_REQ, r, sizeof(*r), req_free,
			      timeout_ms, ref);
}
