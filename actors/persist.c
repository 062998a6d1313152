/*
 * Persistent actors: event sourcing on a store (see
 * include/troupe/actors/persist.h for the contract).
 *
 * A persistent actor runs this module's handler around the user's. The
 * handler has three phases: boot (the start's configuration is the first
 * message, actors/boot.h), recovery (a snapshot load, then pages of the
 * journal read one request at a time), and live. Recovery and a live
 * wait for the store are the two times messages are stashed: everything
 * that is not an answer this module awaits goes to the core stash, and
 * comes back (tr_unstash_all) when the wait ends, so the user's handler
 * sees messages in their order and always with its events applied.
 *
 * Events wait in a FIFO, each with its APPEND's reference and the
 * command's header. The store may answer them out of order (a refused
 * write is answered at once, a committed one after its transaction), so
 * an answer marks its event and events leave the FIFO from the head only:
 * apply runs in sequence order. Sequence numbers are given explicitly
 * (the last assigned plus one), so once one event is refused, the store
 * refuses those after it in the same wait instead of leaving a gap.
 */
#include <troupe/actors/persist.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "defs.h"
#include "journal.h"

/* Private messages. */
#define MSG_BOOT (TR_MSG_PERSIST_BASE + 0x80u)

enum phase { P_BOOT, P_SNAPSHOT, P_EVENTS, P_LIVE };

/* The start's configuration, as its first message. */
struct boot {
	const tr_persist_def *def;
	tr_pid store;
	char id[TR_STORE_ID_SIZE];
	uint32_t snapshot_every;
	bool trim;
	const void *arg; /* when arg_size is 0 */
	size_t arg_size; /* bytes of arg_copy */
	unsigned char arg_copy[];
};

/* An event waiting for the store. */
struct pending {
	struct pending *next;
	tr_ref ref;     /* its APPEND's */
	uint64_t seq;   /* what the store answered, once it did */
	int32_t status; /* 1: waiting; TR_OK: committed; else refused */
	tr_msg cmd;     /* the command's header; from is none without one */
	size_t len;
	unsigned char event[];
};

/* A TR_MSG_PERSIST_SNAPSHOT request waiting for its snapshot. */
struct waiter {
	struct waiter *next;
	tr_msg req;
};

struct pa {
	const tr_persist_def *def; /* NULL until the boot */
	tr_pid store;
	char id[TR_STORE_ID_SIZE];
	uint32_t snapshot_every;
	bool trim;
	enum phase phase;
	tr_msg start;        /* answered when recovered */
	tr_ref rec_ref;      /* the recovery step's request */
	void *state;         /* the user's */
	uint64_t last_seq;   /* applied */
	uint64_t next_seq;   /* for the next tr_persist() */
	uint64_t since_snap; /* events applied since the last snapshot */
	uint64_t snapshot_seq;
	uint64_t replayed;
	struct pending *head, *tail;
	tr_ref snap_ref;          /* zero: no snapshot under way */
	uint64_t snap_seq;        /* the one under way */
	struct waiter *snap_wait; /* answered by the one under way */
	struct waiter *snap_next; /* asked after it began */
	tr_ref trim_ref;          /* zero: no trim under way */
};

/* The persistent actor whose handler runs on this thread, for
 * tr_persist(). */
static _Thread_local struct pa *tl_pa;
static _Thread_local tr_ctx *tl_cx;

static _Atomic(struct tr__def *) defs;

/* ------------------------------------------------------------------ */
/* Helpers */

static bool
is_reply_to(const tr_msg *m, tr_ref ref)
{
	return ref.v != 0 && (m->flags & TR_MSG_F_REPLY) && m->ref.v == ref.v;
}

/* Runs the user's handler on @m, with tr_persist() allowed. */
static void
user_handle(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	struct pa *outer = tl_pa;
	tr_ctx *outer_cx = tl_cx;

	tl_pa = p;
	tl_cx = cx;
	p->def->actor->handle(cx, p->state, m);
	tl_pa = outer;
	tl_cx = outer_cx;
}

/* An error of this module, as the store would give it. */
static void
error_of(tr_store_error *e, int32_t status, const char *id, const char *what)
{
	memset(e, 0, sizeof(*e));
	e->status = status;
	(void)snprintf(e->text, sizeof(e->text), "persistent id \"%s\": %s", id,
		       what);
}

/* Recovery failed: answer the start with @e and stop. */
static void
fail(tr_ctx *cx, struct pa *p, const tr_store_error *e)
{
	if (!tr_pid_is_none(p->start.from)) {
		(void)tr_reply(cx, &p->start, TR_MSG_STORE_ERROR, e,
			       sizeof(*e));
		p->start.from = TR_PID_NONE;
	}
	tr_stop_self(cx, TR_EXIT_ERROR);
}

/* The store's error in @m, or one made from what @m is. */
static void
fail_with(tr_ctx *cx, struct pa *p, const tr_msg *m, const char *what)
{
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);
	tr_store_error e;

	if (m->type == TR_MSG_STORE_ERROR && se != NULL) {
		e = *se;
		e.text[sizeof(e.text) - 1] = '\0';
	} else if (m->type == TR_MSG_REQUEST_FAILED) {
		error_of(&e, TR_ECLOSED, p->id, "the store is gone");
	} else {
		error_of(&e, TR_EINVAL, p->id, what);
	}
	fail(cx, p, &e);
}

/* ------------------------------------------------------------------ */
/* Recovery */

static void
read_after(tr_ctx *cx, struct pa *p, uint64_t seq)
{
	p->phase = P_EVENTS;
	tr_err err = tr__journal_read(cx, p->store, p->id, seq, &p->rec_ref);
	if (err < 0) {
		tr_store_error e;
		error_of(&e, err, p->id, "cannot ask the store for events");
		fail(cx, p, &e);
	}
}

static bool
load_snapshot(struct pa *p, const tr_msg *m)
{
	const tr_store_snapshot *s =
		TR_MSG_AS_FAM(m, tr_store_snapshot, size, data);

	if (s == NULL) {
		return false;
	}
	if (p->def->load != NULL) {
		return p->def->load(p->state, s->data, s->size) == TR_OK;
	}
	if (s->size != p->def->actor->state_size) {
		return false;
	}
	memcpy(p->state, s->data, s->size);
	return true;
}

static void
recovered(tr_ctx *cx, struct pa *p, uint64_t journal_last)
{
	if (journal_last != p->last_seq) {
		/* Events were deleted that no snapshot holds. */
		tr_store_error e;
		error_of(&e, TR_ESTATE, p->id,
			 "the journal was trimmed past the latest snapshot");
		fail(cx, p, &e);
		return;
	}
	tr_persist_recovered r = { .last_seq = p->last_seq,
				   .snapshot_seq = p->snapshot_seq,
				   .replayed = p->replayed };
	p->phase = P_LIVE;
	p->rec_ref.v = 0;
	p->next_seq = p->last_seq + 1;
	p->since_snap = p->replayed;
	if (!tr_pid_is_none(p->start.from)) {
		(void)tr_reply(cx, &p->start, TR_MSG_PERSIST_RECOVERED, &r,
			       sizeof(r));
	}
	tr_msg first = { .type = TR_MSG_PERSIST_RECOVERED,
			 .from = tr_self(cx),
			 .data = &r,
			 .size = sizeof(r) };
	user_handle(cx, p, &first);
	if (p->head == NULL) {
		(void)tr_unstash_all(cx);
	}
}

/* An answer to the recovery step under way. */
static void
recovery_step(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);

	if (p->phase == P_SNAPSHOT) {
		if (m->type == TR_MSG_STORE_SNAPSHOT) {
			const tr_store_snapshot *s = m->data;
			if (!load_snapshot(p, m)) {
				tr_store_error e;
				error_of(&e, TR_EINVAL, p->id,
					 "the snapshot cannot be loaded");
				fail(cx, p, &e);
				return;
			}
			p->snapshot_seq = p->last_seq = s->seq;
			read_after(cx, p, s->seq);
		} else if (m->type == TR_MSG_STORE_ERROR && se != NULL &&
			   se->status == TR_ENOENT) {
			read_after(cx, p, 0); /* no snapshot: every event */
		} else {
			fail_with(cx, p, m, "a strange answer to a load");
		}
		return;
	}
	const tr_store_events *pg = tr__journal_page(m, p->last_seq);
	if (pg == NULL) {
		fail_with(cx, p, m, "a strange page of events");
		return;
	}
	for (uint32_t i = 0; i < pg->count; i++) {
		const tr_store_event *ev = &pg->events[i];
		p->def->apply(p->state, ev->seq,
			      (const unsigned char *)m->data + ev->offset,
			      ev->size);
		p->last_seq = ev->seq;
		p->replayed++;
	}
	if (pg->more != 0 && pg->count > 0) {
		read_after(cx, p, p->last_seq);
	} else {
		recovered(cx, p, pg->last_seq);
	}
}

/* The first message: the configuration. */
static void
boot(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	struct boot *b = NULL;

	if (m->type == MSG_BOOT && m->size >= sizeof(*b)) {
		b = tr__boot_take(cx, m, m->size, &p->start);
	}
	if (b == NULL) {
		(void)tr_unhandled(cx, m);
		return;
	}
	const tr_actor_def *ad = b->def->actor;
	p->def = b->def;
	p->store = b->store;
	memcpy(p->id, b->id, sizeof(p->id));
	p->snapshot_every = b->snapshot_every;
	p->trim = b->trim;
	p->phase = P_SNAPSHOT;
	p->state = calloc(1, ad->state_size > 0 ? ad->state_size : 1);
	tr_store_error e;
	if (p->state == NULL) {
		free(b);
		error_of(&e, TR_ENOMEM, p->id, "no memory for the state");
		fail(cx, p, &e);
		return;
	}
	int rc = 0;
	if (ad->init != NULL) {
		void *arg = b->arg_size > 0 ? b->arg_copy : (void *)b->arg;
		rc = ad->init(cx, p->state, arg);
	}
	free(b);
	if (rc < 0) {
		error_of(&e, rc, p->id, "init failed");
		fail(cx, p, &e);
		return;
	}
	tr_store_key_req q;
	memset(&q, 0, sizeof(q));
	memcpy(q.id, p->id, sizeof(q.id));
	tr_err err = tr_request(cx, p->store, TR_MSG_STORE_SNAPSHOT_LOAD, &q,
				sizeof(q), 0, &p->rec_ref);
	if (err < 0) {
		error_of(&e, err, p->id, "cannot ask the store for a snapshot");
		fail(cx, p, &e);
	}
}

/* ------------------------------------------------------------------ */
/* Snapshots */

static void
answer_waiters(tr_ctx *cx, struct waiter *w, const tr_msg *m, uint64_t seq)
{
	while (w != NULL) {
		struct waiter *next = w->next;
		if (m != NULL && m->type == TR_MSG_STORE_ERROR) {
			(void)tr_reply(cx, &w->req, TR_MSG_STORE_ERROR, m->data,
				       m->size);
		} else if (m != NULL && m->type == TR_MSG_STORE_REPLY) {
			tr_store_reply r = { .value = seq };
			(void)tr_reply(cx, &w->req, TR_MSG_STORE_REPLY, &r,
				       sizeof(r));
		}
		/* Otherwise the store is gone: the runtime fails the
		 * request when this actor stops, which its next write
		 * brings about. */
		free(w);
		w = next;
	}
}

/* No snapshot can be taken now: its waiters get @status. */
static void
snapshot_fail(tr_ctx *cx, struct pa *p, int32_t status, const char *what)
{
	tr_store_error e;
	tr_msg m = { .type = TR_MSG_STORE_ERROR,
		     .data = &e,
		     .size = sizeof(e) };

	error_of(&e, status, p->id, what);
	answer_waiters(cx, p->snap_wait, &m, 0);
	p->snap_wait = NULL;
}

/* Save a snapshot of the state as it is now, unless one is under way. */
static void
snapshot(tr_ctx *cx, struct pa *p)
{
	void *data = p->state;
	size_t len = p->def->actor->state_size;

	if (p->snap_ref.v != 0) {
		return;
	}
	p->since_snap = 0;
	if (p->def->save != NULL &&
	    p->def->save(p->state, &data, &len) != TR_OK) {
		snapshot_fail(cx, p, TR_EINVAL, "save refused the state");
		return;
	}
	size_t n = sizeof(tr_store_snapshot_req) + len;
	tr_store_snapshot_req *q = calloc(1, n);
	if (q != NULL) {
		memcpy(q->id, p->id, sizeof(q->id));
		q->seq = p->last_seq;
		q->size = len;
		memcpy(q->data, data, len);
	}
	if (data != p->state) {
		free(data);
	}
	tr_err err = q == NULL ? TR_ENOMEM
			       : tr_request_ptr(cx, p->store,
						TR_MSG_STORE_SNAPSHOT_SAVE, q,
						n, free, 0, &p->snap_ref);
	if (err < 0) {
		p->snap_ref.v = 0;
		snapshot_fail(cx, p, err, "cannot send the snapshot");
		return;
	}
	p->snap_seq = p->last_seq;
}

static void
snapshot_done(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	uint64_t seq = p->snap_seq;

	p->snap_ref.v = 0;
	answer_waiters(cx, p->snap_wait, m, seq);
	p->snap_wait = p->snap_next;
	p->snap_next = NULL;
	if (m->type == TR_MSG_STORE_REPLY) {
		p->snapshot_seq = seq;
		if (p->trim && p->trim_ref.v == 0 && seq > 0) {
			tr_store_trim_req q;
			memset(&q, 0, sizeof(q));
			memcpy(q.id, p->id, sizeof(q.id));
			q.to_seq = seq;
			if (tr_request(cx, p->store, TR_MSG_STORE_TRIM, &q,
				       sizeof(q), 0, &p->trim_ref) < 0) {
				p->trim_ref.v = 0;
			}
		}
	}
	if (p->snap_wait != NULL) {
		snapshot(cx, p);
	}
}

static void
snapshot_asked(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		tr_store_error e;
		error_of(&e, TR_ENOMEM, p->id, "no memory for a snapshot");
		(void)tr_reply(cx, m, TR_MSG_STORE_ERROR, &e, sizeof(e));
		return;
	}
	w->req = *m;
	w->req.data = NULL;
	w->req.size = 0;
	struct waiter **list =
		p->snap_ref.v != 0 ? &p->snap_next : &p->snap_wait;
	w->next = *list;
	*list = w;
	snapshot(cx, p);
}

/* ------------------------------------------------------------------ */
/* Live: events */

/* The head events the store has answered leave the FIFO in order. */
static void
events_settle(tr_ctx *cx, struct pa *p)
{
	while (p->head != NULL && p->head->status != 1) {
		struct pending *e = p->head;
		tr_persist_done done = { .seq = e->seq, .status = e->status };

		p->head = e->next;
		if (p->head == NULL) {
			p->tail = NULL;
		}
		if (e->status == TR_OK) {
			p->def->apply(p->state, e->seq, e->event, e->len);
			p->last_seq = e->seq;
			p->since_snap++;
		} else {
			done.seq = 0;
		}
		if (p->head == NULL) {
			/* After a refusal the numbers go on from what is
			 * applied. */
			p->next_seq = p->last_seq + 1;
		}
		tr_msg msg = e->cmd;
		msg.type = TR_MSG_PERSISTED;
		msg.flags &= TR_MSG_F_REQUEST;
		msg.data = &done;
		msg.size = sizeof(done);
		if (tr_pid_is_none(msg.from)) {
			msg.from = tr_self(cx);
		}
		free(e);
		user_handle(cx, p, &msg);
	}
	if (p->head != NULL) {
		return;
	}
	if (p->snapshot_every != 0 && p->since_snap >= p->snapshot_every) {
		snapshot(cx, p);
	}
	(void)tr_unstash_all(cx);
}

/* An answer to one of the events waiting; false if @m is none. */
static bool
event_answer(tr_ctx *cx, struct pa *p, const tr_msg *m)
{
	struct pending *e = p->head;

	while (e != NULL && !is_reply_to(m, e->ref)) {
		e = e->next;
	}
	if (e == NULL) {
		return false;
	}
	const tr_store_reply *ok = TR_MSG_AS(m, tr_store_reply);
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);
	if (m->type == TR_MSG_STORE_REPLY && ok != NULL) {
		e->seq = ok->value;
		e->status = TR_OK;
	} else if (m->type == TR_MSG_STORE_ERROR && se != NULL) {
		e->status = se->status < 0 ? se->status : TR_ESYS;
	} else {
		/* The store is gone with the event: whether it was written
		 * is unknown, so the state cannot go on. */
		tr_stop_self(cx, TR_EXIT_ERROR);
		return true;
	}
	events_settle(cx, p);
	return true;
}

tr_err
tr_persist(tr_ctx *cx, const tr_msg *cmd, const void *event, size_t len)
{
	struct pa *p = tl_pa;

	if (p == NULL || cx == NULL || tl_cx != cx || p->phase != P_LIVE ||
	    (len > 0 && event == NULL)) {
		return TR_EINVAL;
	}
	size_t n = sizeof(tr_store_append_req) + len;
	if (n < len) {
		return TR_EMSGSIZE;
	}
	struct pending *e = malloc(sizeof(*e) + len);
	tr_store_append_req *q = calloc(1, n);
	if (e == NULL || q == NULL) {
		free(e);
		free(q);
		return TR_ENOMEM;
	}
	memcpy(q->id, p->id, sizeof(q->id));
	q->seq = p->next_seq;
	q->size = len;
	if (len > 0) {
		memcpy(q->data, event, len);
		memcpy(e->event, event, len);
	}
	tr_err err = tr_request_ptr(cx, p->store, TR_MSG_STORE_APPEND, q, n,
				    free, 0, &e->ref);
	if (err < 0) {
		free(e);
		return err;
	}
	e->next = NULL;
	e->seq = 0;
	e->status = 1;
	e->len = len;
	memset(&e->cmd, 0, sizeof(e->cmd));
	if (cmd != NULL) {
		e->cmd = *cmd;
		e->cmd.data = NULL;
		e->cmd.size = 0;
	}
	if (p->tail != NULL) {
		p->tail->next = e;
	} else {
		p->head = e;
	}
	p->tail = e;
	p->next_seq++;
	return TR_OK;
}

/* ------------------------------------------------------------------ */
/* The actor */

static void
pa_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct pa *p = state;

	if (p->def == NULL) {
		boot(cx, p, m);
		return;
	}
	if (p->phase != P_LIVE) {
		if (is_reply_to(m, p->rec_ref)) {
			recovery_step(cx, p, m);
		} else if (tr_stash(cx, m) < 0) {
			(void)tr_unhandled(cx, m);
		}
		return;
	}
	if (is_reply_to(m, p->snap_ref)) {
		snapshot_done(cx, p, m);
		return;
	}
	if (is_reply_to(m, p->trim_ref)) {
		p->trim_ref.v = 0;
		return;
	}
	if (event_answer(cx, p, m)) {
		return;
	}
	if (p->head != NULL) {
		/* Events wait: what comes meanwhile sees them applied. */
		if (tr_stash(cx, m) < 0) {
			(void)tr_unhandled(cx, m);
		}
		return;
	}
	if (m->type == TR_MSG_PERSIST_SNAPSHOT &&
	    (m->flags & TR_MSG_F_REQUEST)) {
		snapshot_asked(cx, p, m);
		return;
	}
	user_handle(cx, p, m);
}

static void
pa_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct pa *p = state;

	if (p->def == NULL) {
		return;
	}
	if (p->state != NULL && p->def->actor->teardown != NULL) {
		p->def->actor->teardown(cx, p->state, reason);
	}
	free(p->state);
	while (p->head != NULL) {
		struct pending *e = p->head;
		p->head = e->next;
		free(e);
	}
	/* The requests they hold are failed by the runtime, as any
	 * request this actor leaves unanswered. */
	answer_waiters(cx, p->snap_wait, NULL, 0);
	answer_waiters(cx, p->snap_next, NULL, 0);
}

static void
derive(const tr_actor_def *user, tr_actor_def *out)
{
	out->name = user->name != NULL ? user->name : "persistent";
	out->state_size = sizeof(struct pa);
	out->teardown = pa_teardown;
	out->handle = pa_handle;
	out->mailbox_bound = user->mailbox_bound;
}

tr_err
tr_persist_start(tr_ctx *cx, const tr_persist_def *def,
		 const tr_persist_config *cfg, tr_pid *out, tr_ref *ref)
{
	if (cx == NULL || def == NULL || def->size < sizeof(*def) ||
	    def->actor == NULL || def->actor->handle == NULL ||
	    def->apply == NULL || cfg == NULL || cfg->size < sizeof(*cfg) ||
	    tr_pid_is_none(cfg->store) || cfg->id == NULL ||
	    cfg->id[0] == '\0' || strlen(cfg->id) >= TR_STORE_ID_SIZE ||
	    (cfg->arg_size > 0 && cfg->arg == NULL)) {
		return tr__boot_fail(TR_EINVAL, out, ref);
	}
	const struct tr__def *d = tr__def_get(&defs, def->actor, derive);
	size_t n = sizeof(struct boot) + cfg->arg_size;
	struct boot *b = d != NULL ? calloc(1, n) : NULL;
	if (b == NULL) {
		return tr__boot_fail(TR_ENOMEM, out, ref);
	}
	b->def = def;
	b->store = cfg->store;
	memcpy(b->id, cfg->id, strlen(cfg->id) + 1);
	b->snapshot_every = cfg->snapshot_every;
	b->trim = cfg->trim;
	b->arg = cfg->arg;
	b->arg_size = cfg->arg_size;
	if (cfg->arg_size > 0) {
		memcpy(b->arg_copy, cfg->arg, cfg->arg_size);
	}
	return tr__boot_start(cx, &d->def, cfg->is_linked, MSG_BOOT, b, n, free,
			      out, ref);
}
