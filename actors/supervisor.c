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
 * the parent's exit, requests) is stashed (tr_stash()) and put back
 * when the task is done (tr_unstash_all()), ahead of anything newer, so
 * that it is acted on in arrival order: this is OTP's supervisor, whose
 * synchronous calls leave those messages in its mailbox. A message put
 * back while a new task runs is stashed again, behind the ones before it.
 * A child's exit is seen at once all the same (the child no longer runs,
 * and the observer hears of it), and only its consequence waits. What is
 * still stashed when the supervisor stops was never taken: the runtime
 * fails those requests as it fails the ones left in its mailbox.
 *
 * Knowing that a child started means knowing that its init returned. A
 * worker is spawned from a copy of its definition whose init calls the
 * real one, if there is one, and then sends the supervisor an
 * acknowledgement (MSG_ACK) before returning: a worker without init is
 * started once it has run its first turn, the same way. The copies live
 * in a process-wide list that only grows, one entry per distinct
 * definition, and is never freed: a child may outlive its supervisor (a
 * runtime stop, a kill), and the definition an actor was spawned with
 * must outlive the actor. A nested supervisor is started as any
 * supervisor is, and its start's reply is its acknowledgement.
 *
 * Starting. Whoever starts a supervisor spawns it and sends it its
 * flags and specs as its first message (MSG_START, actors/boot.h): a
 * request from an actor (a parent supervisor too) or an inbox, answered
 * with TR_MSG_SUP_REPLY once the children have started (or one failed),
 * or a plain message from the runtime's context. Nothing happens before
 * it: the supervisor has no init, and traps exits from its start on.
 *
 * Threads: every function that takes a struct sup runs in that
 * supervisor's turns. The public start and request functions run on the
 * caller's thread and only copy and validate. Shared memory: the list of
 * definition copies (lock-free, push only), and the copied confs, which
 * never change once made and are freed by their last holder.
 *
 * A child is stopped as OTP does it: monitor, unlink, exit signal, and
 * the DOWN reports the end. The link cannot: an actor that receives an
 * exit signal drops its link to the sender.
 *
 * Invariants:
 * - a child's pid is TR_PID_NONE exactly when it is not running (a child
 *   whose init has not returned yet counts as running);
 * - at most one child is starting at a time, and none while children
 *   are being stopped (the task waits while one is: is_waiting());
 * - a child whose exit is not yet acted on keeps the pid that exited in
 *   gone (its pid is then TR_PID_NONE), and that exit is stashed; a
 *   task that stops or starts that child consumes it (OTP flushes the
 *   EXIT), and the exit, when put back, then names no child;
 * - nothing but the task's own messages (acknowledgements, the ends of
 *   the children it stops, their kill timers) is acted on while a task
 *   is in progress or before the start: is_busy().
 */
#include <troupe/actors/supervisor.h>

#include "boot.h"
#include "clock.h"
#include "defs.h"
#include "ref.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The supervisor's own messages (see the header: 0x80 and up are private). */
#define MSG_REQ   (TR_MSG_SUP_BASE + 0x80u) /* pointer to struct req */
#define MSG_ACK   (TR_MSG_SUP_BASE + 0x81u) /* no payload */
#define MSG_TIMER (TR_MSG_SUP_BASE + 0x82u) /* tr_pid of a child to kill */
#define MSG_START (TR_MSG_SUP_BASE + 0x83u) /* pointer to struct conf */

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

/*
 * Flags and specs of a supervisor, deep-copied once and then never
 * changed: a nested spec's conf is shared by reference among the parent's
 * copies of the spec and each nested supervisor started from it, which
 * may outlive the parent.
 */
struct conf {
	atomic_uint refs;
	tr_sup_flags fl; /* is_linked: linked with its starter, the parent */
	size_t n;
	struct spec specs[];
};

static struct conf *
conf_hold(struct conf *c)
{
	if (c != NULL) {
		/* relaxed: the caller holds a reference already, so the
		 * count cannot reach zero meanwhile. */
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	}
	return c;
}

/* Drops a reference to conf @p; the last one frees it. */
static void
conf_put(void *p)
{
	struct conf *c = p;

	if (c == NULL || !tr__ref_put(&c->refs)) {
		return;
	}
	for (size_t i = 0; i < c->n; i++) {
		conf_put(c->specs[i].nested);
	}
	free(c);
}

static tr_err
id_copy(char *dst, const char *id)
{
	size_t len = id != NULL ? strnlen(id, TR_SUP_ID_MAX) : 0;

	if (len == 0 || len == TR_SUP_ID_MAX) {
		return TR_EINVAL;
	}
	memcpy(dst, id, len + 1);
	return TR_OK;
}

static tr_err
conf_copy(const tr_sup_flags *flags, const tr_sup_child_spec *specs, size_t n,
	  unsigned depth, struct conf **out);

static tr_err
spec_copy(struct spec *dst, const tr_sup_child_spec *src, unsigned depth)
{
	memset(dst, 0, sizeof(*dst));
	if (src->size < sizeof(*src) ||
	    (unsigned)src->restart > TR_SUP_TEMPORARY ||
	    (unsigned)src->type > TR_SUP_SUPERVISOR) {
		return TR_EINVAL;
	}
	/* A definition (with its argument), or a nested supervisor. */
	bool nested = src->sup_flags != NULL;
	bool is_def = src->def != NULL &&
		      src->def->size >= sizeof(tr_actor_def) &&
		      src->def->handle != NULL && src->sup_specs == NULL &&
		      src->sup_nspecs == 0;
	if ((nested ? src->def != NULL || src->arg != NULL : !is_def) ||
	    id_copy(dst->id, src->id) < 0) {
		return TR_EINVAL;
	}
	dst->def = src->def;
	dst->arg = src->arg;
	dst->shutdown_ms = src->shutdown_ms;
	dst->restart = (uint32_t)src->restart;
	dst->type = nested ? TR_SUP_SUPERVISOR : (uint32_t)src->type;
	return nested ? conf_copy(src->sup_flags, src->sup_specs,
				  src->sup_nspecs, depth + 1, &dst->nested)
		      : TR_OK;
}

static tr_err
conf_copy(const tr_sup_flags *flags, const tr_sup_child_spec *specs, size_t n,
	  unsigned depth, struct conf **out)
{
	*out = NULL;
	/* The template is the whole description of a simple_one_for_one. */
	if (flags == NULL || flags->size < sizeof(*flags) ||
	    (unsigned)flags->strategy > TR_SUP_SIMPLE_ONE_FOR_ONE ||
	    flags->period_ms == 0 || flags->intensity > TR_SUP_MAX_INTENSITY ||
	    (n > 0 && specs == NULL) || depth > TR_SUP_MAX_DEPTH ||
	    n > (SIZE_MAX - sizeof(struct conf)) / sizeof(struct spec) ||
	    (flags->strategy == TR_SUP_SIMPLE_ONE_FOR_ONE && n != 1)) {
		return TR_EINVAL;
	}
	struct conf *c = calloc(1, sizeof(*c) + n * sizeof(c->specs[0]));
	if (c == NULL) {
		return TR_ENOMEM;
	}
	atomic_init(&c->refs, 1);
	c->fl = *flags;
	/* A nested supervisor is always linked with its parent. */
	c->fl.is_linked = depth > 0 || flags->is_linked;
	tr_err err = TR_OK;
	for (size_t i = 0; i < n && err == TR_OK; i++) {
		err = spec_copy(&c->specs[i], &specs[i], depth);
		c->n = i + 1; /* conf_put() releases what this copy holds */
		for (size_t j = 0; err == TR_OK && j < i; j++) {
			err = strcmp(c->specs[i].id, c->specs[j].id) == 0
				      ? TR_EEXIST
				      : TR_OK;
		}
	}
	/* Dynamic children take an argument, which a nested spec has no
	 * place for. */
	if (err == TR_OK && c->fl.strategy == TR_SUP_SIMPLE_ONE_FOR_ONE &&
	    c->specs[0].nested != NULL) {
		err = TR_EINVAL;
	}
	if (err < 0) {
		conf_put(c);
		return err;
	}
	*out = c;
	return TR_OK;
}

/* ------------------------------------------------------------------ */
/* Acknowledged starts of workers                                      */

/* What the wrapped init needs; the spawn copies it (arg_size). */
struct start_rec {
	tr_init_fn init;
	void *arg;
	tr_pid sup;
};

static int
wrap_init(tr_ctx *cx, void *state, void *arg)
{
	const struct start_rec *rec = arg;

	int r = rec->init != NULL ? rec->init(cx, state, rec->arg) : TR_OK;

	/* Without the acknowledgement the supervisor would wait forever, so
	 * failing to send it fails the start (teardown still runs). */
	return r < 0 ? r : tr_send(cx, rec->sup, MSG_ACK, NULL, 0);
}

static _Atomic(struct tr__def *) wraps;

/* Workers start from a copy whose init acknowledges. */
static void
derive_wrap(const tr_actor_def *user, tr_actor_def *out)
{
	*out = *user;
	out->init = wrap_init;
	/* wrap_init gets a copy of its record; the user's argument is the
	 * supervisor's to keep alive (see tr_sup_child_spec.arg). */
	out->arg_size = sizeof(struct start_rec);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

/* A request in flight; the message's pointer payload. */
struct req {
	tr_pid pid;
	void *arg;
	uint32_t op;
	/* START_CHILD: an owned copy of the spec; otherwise only the id of
	 * the child. The id is empty when none was given. */
	struct spec spec;
};

static void
req_free(void *p)
{
	struct req *r = p;

	conf_put(r->spec.nested);
	free(r);
}

/* ------------------------------------------------------------------ */
/* The supervisor actor                                                */

struct child {
	struct spec sp;
	tr_pid pid;
	tr_pid gone;       /* the pid whose exit is not acted on yet */
	tr_ref mon_ref;    /* monitor of a child being stopped */
	tr_timer_id timer; /* its kill after shutdown_ms, while stopped */
	bool mark_term;    /* the task stops it */
	bool mark_start;   /* the task starts it */
	bool starting;     /* its init has not acknowledged yet */
	bool terminating;  /* stopped by the task, its exit not seen yet */
};

enum task {
	T_NONE,
	T_INIT,     /* the start: answers op 0 */
	T_RESTART,  /* after an exit */
	T_SHUTDOWN, /* then the supervisor stops */
	T_REQ,      /* a start, restart or termination of one child */
};

struct sup {
	tr_pid parent;
	struct conf *conf; /* the start's, shared; NULL until it is taken */
	struct child *kids;
	size_t n;
	size_t cap;
	/* The last restart times (ms), a ring of conf->fl.intensity. */
	uint64_t *hist;
	uint32_t hist_n;
	uint32_t hist_i;
	/* The task, and the request it answers when done (the start's for
	 * T_INIT, op 0): hdr.from is TR_PID_NONE once it is answered, or
	 * when nobody waits. */
	enum task task;
	tr_msg hdr;
	uint32_t op;
	tr_pid task_pid;
	int32_t task_reason;
	int32_t fail_reason; /* a failed start, answered after the shutdown */
	int32_t fail_status;
};

static const tr_actor_def sup_def;

static bool
is_simple(const struct sup *s)
{
	return s->conf->fl.strategy == TR_SUP_SIMPLE_ONE_FOR_ONE;
}

static void
emit(tr_ctx *cx, struct sup *s, uint32_t kind, const struct child *c,
     tr_pid pid, int32_t reason, int32_t status)
{
	tr_sup_event ev = {
		.kind = kind,
		.reason = reason,
		.status = status,
		.sup = tr_self(cx),
		.pid = pid,
	};

	if (tr_pid_is_none(s->conf->fl.observer)) {
		return;
	}
	if (c != NULL) {
		memcpy(ev.id, c->sp.id, sizeof(ev.id));
	}
	/* Best effort, as documented: the supervisor must not fail for it. */
	(void)tr_send(cx, s->conf->fl.observer, TR_MSG_SUP_EVENT, &ev,
		      sizeof(ev));
}

/*
 * Answers the task's request (hdr, op), once: the start's carries the
 * supervisor's pid, a request's the pid it is about. False when a
 * successful start could not be told: whoever waits for it would wait
 * forever, so the caller shuts down instead (and the starter's request
 * then fails).
 */
static bool
answer(tr_ctx *cx, struct sup *s, int32_t status, int32_t reason)
{
	tr_sup_reply rp = {
		.op = s->op,
		.status = status,
		.reason = reason,
		.pid = s->op == 0 ? tr_self(cx) : s->task_pid,
	};
	tr_err err = tr_pid_is_none(s->hdr.from)
			     ? TR_OK
			     : tr_reply(cx, &s->hdr, TR_MSG_SUP_REPLY, &rp,
					sizeof(rp));

	s->hdr.from = TR_PID_NONE;
	return status != TR_OK || err == TR_OK;
}

/* The child named @id, or else the one running as @pid or whose exit as
 * @pid is not acted on yet (gone: OTP still has that child until it
 * takes the EXIT). */
static struct child *
find(struct sup *s, const char *id, tr_pid pid)
{
	for (size_t i = 0; i < s->n; i++) {
		struct child *c = &s->kids[i];
		if (id != NULL ? strcmp(c->sp.id, id) == 0
			       : !tr_pid_is_none(pid) &&
					 (tr_pid_eq(c->pid, pid) ||
					  tr_pid_eq(c->gone, pid))) {
			return c;
		}
	}
	return NULL;
}

/* Appends a child made from a copy of @sp (sharing its nested conf). */
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
	*c = (struct child){ .sp = *sp };
	(void)conf_hold(sp->nested);
	return c;
}

static void
remove_child(struct sup *s, struct child *c)
{
	conf_put(c->sp.nested);
	s->n--;
	memmove(c, c + 1, (size_t)(&s->kids[s->n] - c) * sizeof(*c));
}

/* Is the task waiting for a child: for its init to return, or its end? */
static bool
is_waiting(const struct sup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->kids[i].starting || s->kids[i].terminating) {
			return true;
		}
	}
	return false;
}

/*
 * OTP's add_restart: false when this restart is one too many, that is
 * when the last @intensity restarts all fall within the period. The
 * history is a ring of the last @intensity restart times; hist_n counts
 * the restarts up to its size, hist_i is where the oldest is.
 */
static bool
add_restart(struct sup *s)
{
	uint64_t now = tr__clock_ns() / 1000000u;
	uint32_t max = s->conf->fl.intensity;

	if (max == 0 || (s->hist_n == max &&
			 now - s->hist[s->hist_i] <= s->conf->fl.period_ms)) {
		return false;
	}
	s->hist[s->hist_i] = now;
	s->hist_i = (s->hist_i + 1) % max;
	s->hist_n += s->hist_n < max ? 1u : 0u;
	return true;
}

/*
 * The task becomes stopping every child, then the supervisor. A start
 * that fails is no shutdown to the observer, which hears of the child
 * that failed.
 */
static void
begin_shutdown(tr_ctx *cx, struct sup *s, int32_t reason)
{
	if (s->task != T_INIT) {
		emit(cx, s, TR_SUP_EV_SHUTDOWN, NULL, TR_PID_NONE, reason, 0);
	}
	for (size_t i = 0; i < s->n; i++) {
		s->kids[i].mark_start = false;
		s->kids[i].mark_term = true;
	}
	s->task = T_SHUTDOWN;
	s->task_reason = reason;
}

/* Is a task in progress (or the start not taken yet)? */
static bool
is_busy(const struct sup *s)
{
	return s->conf == NULL || s->task != T_NONE;
}

/*
 * Keeps @m, which the task in progress cannot take, for after the task.
 * Out of memory a request fails at once; an exit that cannot wait its
 * turn would be lost, so the supervisor shuts down instead (with
 * @reason), as when its restart intensity is exceeded, for its own
 * supervisor to decide.
 */
static void
defer(tr_ctx *cx, struct sup *s, const tr_msg *m, int32_t reason)
{
	if (tr_stash(cx, m) == TR_OK) {
		return;
	}
	if (m->type == MSG_REQ) {
		(void)tr_unhandled(cx, m);
	} else if (s->task != T_SHUTDOWN) {
		s->fail_status = TR_ENOMEM;
		begin_shutdown(cx, s, reason);
	}
}

/* ---- starting ------------------------------------------------------ */

static tr_err
spawn_child(tr_ctx *cx, const struct spec *sp, tr_pid *pid)
{
	if (sp->nested != NULL) {
		/* It answers its start request once its children have; the
		 * conf is a reference, taken on every path (see
		 * tr_sup_start()). */
		return tr__boot_start(cx, &sup_def, true, MSG_START,
				      conf_hold(sp->nested),
				      sizeof(struct conf), conf_put, pid, NULL);
	}
	const struct tr__def *wd = tr__def_get(&wraps, sp->def, derive_wrap);
	if (wd == NULL) {
		return TR_ENOMEM;
	}
	struct start_rec rec = {
		.init = sp->def->init,
		.arg = sp->arg,
		.sup = tr_self(cx),
	};
	return tr_spawn_link(cx, &wd->def, &rec, pid);
}

/* A child's init returned (a nested supervisor's children started).
 * Pids are never reused, so the sender's pid names this start. */
static void
on_ack(tr_ctx *cx, struct sup *s, tr_pid from)
{
	struct child *c = find(s, NULL, from);
	uint32_t kind =
		s->task == T_RESTART ? TR_SUP_EV_RESTARTED : TR_SUP_EV_STARTED;

	if (c != NULL && c->starting) {
		c->starting = false;
		emit(cx, s, kind, c, c->pid, 0, 0);
		s->task_pid = c->pid;
	}
}

static void
process_exit(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason);

/* @c did not start: its init failed (@m is its exit), or its spawn. */
static void
start_failed(tr_ctx *cx, struct sup *s, struct child *c, const tr_msg *m,
	     int32_t reason, int32_t status)
{
	tr_pid failed = c->pid;

	c->starting = false;
	c->pid = TR_PID_NONE;
	emit(cx, s, TR_SUP_EV_START_FAILED, c, failed, reason,
	     status == TR_EREJECTED ? 0 : status);
	for (size_t i = 0; i < s->n; i++) {
		s->kids[i].mark_start = false;
	}
	if (s->task == T_INIT) {
		/* OTP: stop the children already started, then fail; the
		 * start is answered once they are gone. */
		s->fail_reason = reason;
		s->fail_status = status;
		begin_shutdown(cx, s, TR_SUP_EXIT_START_FAILED);
	} else if (s->task == T_RESTART && status == TR_ECLOSED) {
		/* The runtime is stopping: nothing can start again. */
		begin_shutdown(cx, s, TR_EXIT_SHUTDOWN);
	} else if (s->task == T_RESTART && m != NULL) {
		/*
		 * As OTP's try_again_restart: the failure is one more exit
		 * of this child, acted on after the task in arrival order,
		 * and it counts against the intensity, which bounds the
		 * retries.
		 */
		c->gone = failed;
		defer(cx, s, m, TR_EXIT_ERROR);
	} else if (s->task == T_RESTART) {
		/* A spawn that failed has no exit to wait its turn: it is
		 * one more exit all the same, acted on at once. */
		process_exit(cx, s, c, reason);
	} else {
		(void)answer(cx, s, status, reason);
		if (s->op == TR_SUP_OP_START_CHILD) {
			/* OTP keeps no spec that failed to start */
			remove_child(s, c);
		}
	}
}

static void
start_begin(tr_ctx *cx, struct sup *s, struct child *c)
{
	c->mark_start = false;
	c->gone = TR_PID_NONE; /* OTP flushes the exit it replaces */
	c->starting = true;
	tr_err err = spawn_child(cx, &c->sp, &c->pid);
	if (err < 0) {
		start_failed(cx, s, c, NULL, TR_EXIT_ERROR, err);
	}
}

/* ---- stopping ------------------------------------------------------ */

/* What a stop by the task means for the child's spec. */
static void
after_terminated(struct sup *s, struct child *c)
{
	bool by_req = s->task == T_REQ;

	/* OTP: a temporary child stopped by its siblings' restart or by a
	 * request is removed, not restarted; so is a dynamic child stopped
	 * by a request. */
	if ((c->sp.restart == TR_SUP_TEMPORARY &&
	     (by_req || s->task == T_RESTART)) ||
	    (by_req && is_simple(s))) {
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
 * or cancelled (tr_demonitor()). After shutdown_ms a timer, which names
 * the child by its pid, has it killed; a tick that comes after its end
 * names no child.
 */
static void
terminate_begin(tr_ctx *cx, struct sup *s, struct child *c)
{
	uint64_t ms = c->sp.shutdown_ms;

	c->mark_term = false;
	if (tr_pid_is_none(c->pid)) {
		/* Already gone: its exit, if not acted on yet, never
		 * will be. */
		c->gone = TR_PID_NONE;
		after_terminated(s, c);
		return;
	}
	c->terminating = true;
	if (tr_monitor(cx, c->pid, &c->mon_ref) < 0) {
		/* Out of memory: its end could not be seen, so it must end
		 * now, unseen. */
		(void)tr_exit(cx, c->pid, TR_EXIT_KILL);
		terminate_done(cx, s, c, TR_EXIT_KILLED);
		return;
	}
	(void)tr_unlink(cx, c->pid);
	/* Without the shutdown signal or the timer there is no waiting:
	 * kill now. */
	if (ms == 0 || tr_exit(cx, c->pid, TR_EXIT_SHUTDOWN) < 0 ||
	    (ms != TR_SUP_INFINITY &&
	     tr_send_after(cx, tr_self(cx), MSG_TIMER, &c->pid, sizeof(c->pid),
			   ms, &c->timer) < 0)) {
		(void)tr_exit(cx, c->pid, TR_EXIT_KILL);
	}
}

static void
terminate_done(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason)
{
	tr_pid old = c->pid;

	/* No DOWN may come later (TR_ENOENT if it came already). */
	(void)tr_demonitor(cx, c->mon_ref);
	(void)tr_timer_cancel(cx, c->timer); /* TR_EINVAL if none */
	c->timer = (tr_timer_id){ 0 };
	c->terminating = false;
	c->pid = TR_PID_NONE;
	emit(cx, s, TR_SUP_EV_EXITED, c, old, reason, 0);
	if (s->task == T_REQ) {
		s->task_pid = old;
	}
	after_terminated(s, c);
}

/* ---- tasks --------------------------------------------------------- */

/* One step of the task; false when there is nothing left to do. */
static bool
step(tr_ctx *cx, struct sup *s)
{
	bool stops = false;

	/* Stops first, last child first (reverse start order); OTP stops
	 * dynamic children all at once (they share the template's shutdown
	 * time). Going down, a removal only moves entries already passed. */
	for (size_t i = s->n; i-- > 0 && (!stops || is_simple(s));) {
		if (s->kids[i].mark_term) {
			terminate_begin(cx, s, &s->kids[i]);
			stops = true;
		}
	}
	if (stops) {
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
	if (t == T_SHUTDOWN) {
		/* A start that failed is answered now (see start_failed()). */
		(void)answer(cx, s, s->fail_status, s->fail_reason);
		tr_stop_self(cx, s->task_reason);
	} else if (!answer(cx, s, TR_OK, 0) && t == T_INIT) {
		begin_shutdown(cx, s, TR_SUP_EXIT_START_FAILED);
	} else {
		/* What came meanwhile, in arrival order. */
		(void)tr_unstash_all(cx);
	}
	s->task_pid = TR_PID_NONE;
}

/* Acts on an exit of @c that no task consumed. */
static void
process_exit(tr_ctx *cx, struct sup *s, struct child *c, int32_t reason)
{
	c->gone = TR_PID_NONE;
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
	/* One loop for every strategy: all children (one_for_all), @c and
	 * the ones after it (rest_for_one), or @c alone. A temporary
	 * sibling is stopped and not started again. */
	tr_sup_strategy st = s->conf->fl.strategy;
	size_t at = (size_t)(c - s->kids);
	size_t end = st == TR_SUP_ONE_FOR_ALL || st == TR_SUP_REST_FOR_ONE
			     ? s->n
			     : at + 1;
	for (size_t i = st == TR_SUP_ONE_FOR_ALL ? 0 : at; i < end; i++) {
		struct child *k = &s->kids[i];
		k->mark_term = k != c;
		k->mark_start = k->sp.restart != TR_SUP_TEMPORARY;
	}
	s->task = T_RESTART;
}

/* which_children and count_children (the request in s->hdr), from one
 * walk over the children: the counts are the head of the list, which
 * count_children sends alone. */
static void
reply_children(tr_ctx *cx, struct sup *s)
{
	size_t n = s->op == TR_SUP_OP_WHICH_CHILDREN ? s->n : 0;
	size_t size = sizeof(tr_sup_children) + n * sizeof(tr_sup_child_info);
	tr_sup_children *c = calloc(1, size);

	s->task_pid = TR_PID_NONE;
	if (c == NULL) {
		(void)answer(cx, s, TR_ENOMEM, 0);
		return;
	}
	c->reply.op = s->op;
	c->reply.count = (uint32_t)n;
	c->reply.specs = is_simple(s) ? 1u : (uint32_t)s->n;
	for (size_t i = 0; i < s->n; i++) {
		const struct child *k = &s->kids[i];
		c->reply.active += tr_pid_is_none(k->pid) ? 0u : 1u;
		c->reply.supervisors +=
			k->sp.type == TR_SUP_SUPERVISOR ? 1u : 0u;
		if (i < n) {
			tr_sup_child_info *ci = &c->children[i];
			memcpy(ci->id, k->sp.id, sizeof(ci->id));
			ci->pid = k->pid;
			ci->type = k->sp.type;
			ci->restart = k->sp.restart;
		}
	}
	c->reply.workers = (uint32_t)s->n - c->reply.supervisors;
	if (s->op == TR_SUP_OP_WHICH_CHILDREN) {
		(void)tr_reply_ptr(cx, &s->hdr, TR_MSG_SUP_CHILDREN, c, size,
				   free);
	} else {
		(void)tr_reply(cx, &s->hdr, TR_MSG_SUP_REPLY, &c->reply,
			       sizeof(c->reply));
		free(c);
	}
	s->hdr.from = TR_PID_NONE;
}

/* Acts on request @r (its header in s->hdr): answers it, or makes it
 * the task's request. */
static void
process_req(tr_ctx *cx, struct sup *s, struct req *r)
{
	bool simple = is_simple(s);
	struct child *c = NULL;
	int32_t status = TR_OK;

	s->op = r->op;
	switch (r->op) {
	case TR_SUP_OP_STOP:
		begin_shutdown(cx, s, TR_EXIT_SHUTDOWN);
		return;
	case TR_SUP_OP_WHICH_CHILDREN:
	case TR_SUP_OP_COUNT_CHILDREN:
		reply_children(cx, s);
		return;
	case TR_SUP_OP_START_CHILD:
		if (simple == (r->spec.id[0] != '\0')) {
			/* A spec, or an argument for simple_one_for_one. */
			status = TR_EINVAL;
		} else if (!simple &&
			   (c = find(s, r->spec.id, TR_PID_NONE)) != NULL) {
			status = TR_EEXIST;
		} else {
			if (simple) {
				/* The template, with this child's argument. */
				r->spec = s->conf->specs[0];
				r->spec.arg = r->arg;
			}
			c = add_child(s, &r->spec);
			status = c != NULL ? TR_OK : TR_ENOMEM;
		}
		break;
	case TR_SUP_OP_TERMINATE_CHILD:
		if (!simple && r->spec.id[0] == '\0') {
			/* By pid is for simple_one_for_one. */
			status = TR_EINVAL;
			break;
		}
		c = find(s, simple ? NULL : r->spec.id, r->pid);
		status = c != NULL ? TR_OK : TR_ENOENT;
		break;
	case TR_SUP_OP_RESTART_CHILD:
	case TR_SUP_OP_DELETE_CHILD:
		c = simple ? NULL : find(s, r->spec.id, TR_PID_NONE);
		if (c == NULL) {
			status = simple ? TR_EINVAL : TR_ENOENT;
		} else if (!tr_pid_is_none(c->pid) ||
			   !tr_pid_is_none(c->gone)) {
			/* OTP: {error, running}; an exit not yet acted on
			 * still belongs to the restart logic. */
			status = TR_ESTATE;
		} else if (r->op == TR_SUP_OP_DELETE_CHILD) {
			remove_child(s, c);
			c = NULL;
		}
		break;
	default:
		status = TR_EINVAL;
		break;
	}
	s->task_pid = c != NULL ? c->pid : TR_PID_NONE;
	if (status == TR_OK && c != NULL) {
		/* A start, restart or termination of @c: the task's. */
		c->mark_term = r->op == TR_SUP_OP_TERMINATE_CHILD;
		c->mark_start = !c->mark_term;
		s->task = T_REQ;
		return;
	}
	(void)answer(cx, s, status, 0);
}

/* Runs the task until it must wait for a child. */
static void
run(tr_ctx *cx, struct sup *s)
{
	while (s->task != T_NONE && !is_waiting(s)) {
		if (!step(cx, s)) {
			finish_task(cx, s);
		}
	}
}

/*
 * @pid stopped with @reason (@m says so): an exit signal, or the DOWN of
 * a child being stopped (only those are monitored, and pids are never
 * reused). A child's exit is seen at once (it no longer runs) and acted
 * on in turn.
 */
static void
on_end(tr_ctx *cx, struct sup *s, const tr_msg *m, tr_pid pid, int32_t reason)
{
	struct child *c = find(s, NULL, pid);

	if (c != NULL && c->starting) {
		/* Before its acknowledgement: its init failed. */
		start_failed(cx, s, c, m, reason, TR_EREJECTED);
		return;
	}
	if (c != NULL && c->terminating) {
		terminate_done(cx, s, c, reason);
		return;
	}
	/* Seen now, or before (gone), while a task was in progress, and
	 * put back. */
	if (c != NULL && tr_pid_eq(c->pid, pid)) {
		emit(cx, s, TR_SUP_EV_EXITED, c, pid, reason, 0);
		c->pid = TR_PID_NONE;
		c->gone = pid;
	}
	if (c == NULL && (tr_pid_is_none(pid) || !tr_pid_eq(pid, s->parent))) {
		return; /* not ours to act on (OTP ignores it too) */
	}
	if (is_busy(s)) {
		defer(cx, s, m, c != NULL ? TR_EXIT_ERROR : reason);
	} else if (c != NULL) {
		process_exit(cx, s, c, reason);
	} else {
		/* OTP: an exit from the parent means shut down, with its
		 * reason. */
		begin_shutdown(cx, s, reason);
	}
}

static void
on_request(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	if (is_busy(s)) {
		defer(cx, s, m, 0);
		return;
	}
	/* Taken as a start is: the pointer, and the header to answer, which
	 * becomes the task's (nothing else waits for an answer now). */
	struct req *r = tr__boot_take(cx, m, sizeof(*r), &s->hdr);
	if (r != NULL) {
		process_req(cx, s, r);
		req_free(r);
	}
}

/* The start: what to supervise, and whom to tell when it has started. */
static void
on_start(tr_ctx *cx, struct sup *s, const tr_msg *m)
{
	struct conf *conf;

	/* One start only; the runtime drops the reference of another. */
	if (s->conf != NULL ||
	    (conf = tr__boot_take(cx, m, sizeof(*conf), &s->hdr)) == NULL) {
		return;
	}
	s->conf = conf;
	s->parent = conf->fl.is_linked ? s->hdr.from : TR_PID_NONE;
	/* Exits become messages from the start on, before any child runs.
	 * Only a linked parent could signal earlier: an abnormal exit of
	 * the parent before the start stops the supervisor, with no
	 * children to stop, as the shutdown would. */
	tr_trap_exit(cx, true);
	/* One more entry than used: no allocation of size zero. */
	s->hist = calloc(conf->fl.intensity + 1u, sizeof(*s->hist));
	if (s->hist == NULL) {
		goto err_nomem;
	}
	for (size_t i = 0; !is_simple(s) && i < conf->n; i++) {
		struct child *c = add_child(s, &conf->specs[i]);
		if (c == NULL) {
			goto err_nomem;
		}
		c->mark_start = true;
	}
	s->task = T_INIT;
	return;

err_nomem:
	(void)answer(cx, s, TR_ENOMEM, TR_SUP_EXIT_START_FAILED);
	tr_stop_self(cx, TR_SUP_EXIT_START_FAILED);
}

static void
sup_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct sup *s = state;
	const tr_exit_signal *sig;
	const tr_down *down;
	const tr_sup_reply *rp;
	const tr_pid *pid;
	struct child *c;

	switch (m->type) {
	case TR_MSG_EXIT:
		sig = TR_MSG_AS(m, tr_exit_signal);
		if (sig != NULL) {
			on_end(cx, s, m, sig->from, sig->reason);
		}
		break;
	case TR_MSG_DOWN:
		down = TR_MSG_AS(m, tr_down);
		if (down != NULL) {
			on_end(cx, s, m, down->who, down->reason);
		}
		break;
	case TR_MSG_SUP_REPLY:
		/* A nested supervisor answers its start; when it failed, its
		 * exit signal follows, and that is what is acted on. */
		rp = TR_MSG_AS(m, tr_sup_reply);
		if (!(m->flags & TR_MSG_F_REPLY) || rp == NULL) {
			(void)tr_unhandled(cx, m);
			return;
		}
		if (rp->status != TR_OK) {
			break;
		}
		/* fallthrough */
	case MSG_ACK:
		on_ack(cx, s, m->from);
		break;
	case MSG_TIMER:
		/* A child's shutdown time is up: kill it if it still runs. */
		pid = TR_MSG_AS(m, tr_pid);
		c = pid != NULL ? find(s, NULL, *pid) : NULL;
		if (c != NULL && c->terminating) {
			(void)tr_exit(cx, c->pid, TR_EXIT_KILL);
		}
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

static void
sup_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct sup *s = state;

	/* Stopped from outside while starting or acting on a request:
	 * whoever waits must not wait forever. A stop is done. What is
	 * still stashed was never taken: the runtime fails those requests
	 * as it fails the ones left in the mailbox. */
	(void)answer(cx, s, s->op == TR_SUP_OP_STOP ? TR_OK : TR_ECLOSED,
		     s->op == 0 ? reason : 0);
	for (size_t i = 0; i < s->n; i++) {
		conf_put(s->kids[i].sp.nested);
	}
	free(s->kids);
	conf_put(s->conf);
	free(s->hist);
}

static const tr_actor_def sup_def = {
	.size = sizeof(tr_actor_def),
	.name = "supervisor",
	.state_size = sizeof(struct sup),
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
	tr_err err =
		cx != NULL ? conf_copy(flags, specs, n, 0, &conf) : TR_EINVAL;

	if (err < 0) {
		return tr__boot_fail(err, out, ref);
	}
	/* The conf is the start message's payload, so that the runtime
	 * drops the reference if the supervisor never takes it (a runtime
	 * stop, a kill). */
	return tr__boot_start(cx, &sup_def, conf->fl.is_linked, MSG_START, conf,
			      sizeof(*conf), conf_put, out, ref);
}

tr_err
tr_sup_call(tr_ctx *cx, tr_pid sup, const tr_sup_request *req,
	    uint64_t timeout_ms, tr_ref *ref)
{
	if (ref != NULL) {
		*ref = (tr_ref){ 0 };
	}
	/* The ops that name a child need the id (or, to terminate a
	 * simple_one_for_one child, the pid). */
	if (cx == NULL || tr_pid_is_none(sup) || req == NULL ||
	    req->size < sizeof(*req) || req->op < TR_SUP_OP_START_CHILD ||
	    req->op > TR_SUP_OP_STOP ||
	    (req->op == TR_SUP_OP_TERMINATE_CHILD && req->id == NULL &&
	     tr_pid_is_none(req->pid)) ||
	    ((req->op == TR_SUP_OP_RESTART_CHILD ||
	      req->op == TR_SUP_OP_DELETE_CHILD) &&
	     req->id == NULL)) {
		return TR_EINVAL;
	}
	struct req *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return TR_ENOMEM;
	}
	r->op = (uint32_t)req->op;
	r->pid = req->pid;
	r->arg = req->arg;
	tr_err err = TR_OK;
	if (req->op == TR_SUP_OP_START_CHILD && req->spec != NULL) {
		err = spec_copy(&r->spec, req->spec, 0);
	} else if (req->op != TR_SUP_OP_START_CHILD && req->id != NULL) {
		err = id_copy(r->spec.id, req->id);
	}
	if (err < 0) {
		req_free(r);
		return err;
	}
	if (tr_pid_is_none(tr_self(cx))) {
		return tr_send_ptr(cx, sup, MSG_REQ, r, sizeof(*r), req_free);
	}
	return tr_request_ptr(cx, sup, MSG_REQ, r, sizeof(*r), req_free,
			      timeout_ms, ref);
}
