/*
 * Durable jobs: what a store adds to the jobs service (jobs.c; see
 * jobs_store.h for the seam).
 *
 * With a store, the table is kept in a journal under the service's name
 * (struct jrec, one per change; host byte order, as the file is this
 * machine's). journal() is the one writer: a submit waits for its commit
 * (struct sub) before it enters the table, every other event of a job is
 * written behind, its acknowledgement ignored and a refusal fatal. The
 * start reads the journal back (replay_*()) with every other message
 * stashed, then decides what the jobs that were running become
 * (replay_end()) and answers the start. The teardown writes nothing:
 * the jobs it ends in memory are left as they are on disk, for the next
 * start. The journal is not trimmed.
 *
 * Threads: the service's turns only, as jobs.c.
 */
#include "jobs_store.h"
#include "journal.h"

#include <stdlib.h>
#include <string.h>

#define SUBS_BUCKETS0 64u

/*
 * One event of the journal: a change of one job, with @size bytes after
 * it. Its @type is the job's event (enum tr_job_event_kind): QUEUED is
 * the submit (the payload follows), STARTED, PROGRESS, and FINISHED (the
 * result follows).
 */
struct jrec {
	uint32_t type;
	uint32_t state; /* FINISHED: the final state */
	uint64_t id;
	uint64_t timeout_ms; /* QUEUED */
	uint32_t progress;   /* PROGRESS, FINISHED */
	int32_t exit_reason; /* FINISHED */
	char kind[TR_JOBS_KIND_MAX + 1];
	char note[TR_JOB_NOTE_MAX]; /* PROGRESS, FINISHED */
	uint64_t size;
};

/* A submit waiting for the store to commit it. */
struct sub {
	struct tr__hnode node; /* first: the pending table's; hash of ref */
	tr_ref ref;            /* the APPEND's */
	tr_msg req;            /* the submit's header, to answer */
	tr_pid watcher;
	struct job *jb; /* not in the table yet */
};

struct jobs_store {
	tr_ref mon;           /* the store's monitor */
	tr_ref read_ref;      /* the replay's page under way; zero after */
	tr_msg start;         /* answered once replayed */
	struct tr__htab subs; /* submits waiting for their commit, by ref */
	/* The kind of the replayed jobs whose kind the service no longer
	 * runs: its queue holds them until the replay ends, and it has no
	 * slot (max 0), so none of them is started. */
	struct kind orphans;
};

/* The status of the store's refusal @m (TR_ESYS if it has none), or
 * TR_OK when @m is no refusal. */
static tr_err
refusal(const tr_msg *m)
{
	const tr_store_error *se = TR_MSG_AS(m, tr_store_error);

	if (m->type != TR_MSG_STORE_ERROR || se == NULL) {
		return TR_OK;
	}
	return se->status < 0 ? se->status : TR_ESYS;
}

/* ---- the journal -------------------------------------------------------- */

/*
 * Appends the @type record of @jb to the journal, with the bytes that
 * follow it (QUEUED: the payload; FINISHED: the result). With @ref, the
 * caller waits for the answer under *@ref; without it the record is
 * written behind, and one that cannot even be sent stops the service,
 * whose journal would no longer be its table.
 */
static tr_err
journal(tr_ctx *cx, struct jobs *j, const struct job *jb, uint32_t type,
	tr_ref *ref)
{
	const void *data = NULL;
	size_t len = 0;
	tr_ref behind;
	tr_err err = TR_ENOMEM;

	if (type == TR_JOB_EV_QUEUED) {
		data = jb->start->payload;
		len = jb->start->payload_size;
	} else if (type == TR_JOB_EV_FINISHED && jb->done != NULL) {
		data = jb->done + 1;
		len = jb->st.result_size;
	}
	size_t n = sizeof(tr_store_append_req) + sizeof(struct jrec) + len;
	tr_store_append_req *q = calloc(1, n);
	if (q != NULL) {
		struct jrec r;
		memset(&r, 0, sizeof(r));
		r.type = type;
		r.state = jb->st.state;
		r.id = jb->st.id;
		r.timeout_ms = jb->timeout_ms;
		r.progress = jb->st.progress;
		r.exit_reason = jb->st.exit_reason;
		memcpy(r.kind, jb->st.kind, sizeof(r.kind));
		memcpy(r.note, jb->st.note, sizeof(r.note));
		r.size = len;
		memcpy(q->id, j->boot->name, sizeof(q->id));
		q->size = sizeof(r) + len;
		memcpy(q->data, &r, sizeof(r));
		if (len > 0) {
			memcpy(q->data + sizeof(r), data, len);
		}
		/* The runtime owns @q from here, on every path. */
		err = tr_request_ptr(cx, j->boot->store, TR_MSG_STORE_APPEND, q,
				     n, free, 0, ref != NULL ? ref : &behind);
	}
	if (err < 0 && ref == NULL) {
		tr_stop_self(cx, TR_EXIT_ERROR);
	}
	return err;
}

void
tr__jobs_store_write(tr_ctx *cx, struct jobs *j, const struct job *jb,
		     uint32_t event)
{
	if (j->store != NULL) {
		(void)journal(cx, j, jb, event, NULL);
	}
}

void
tr__jobs_store_submit(tr_ctx *cx, struct jobs *j, struct job *jb,
		      const tr_msg *m, tr_pid watcher)
{
	/* Acknowledged once committed: until then the job is nowhere. */
	struct sub *sb = calloc(1, sizeof(*sb));
	tr_err err = sb != NULL ? journal(cx, j, jb, TR_JOB_EV_QUEUED, &sb->ref)
				: TR_ENOMEM;
	if (err < 0) {
		free(sb);
		tr__jobs_free(&jb->node);
		tr__jobs_answer(cx, m, err, 0);
		return;
	}
	sb->req = *m;
	sb->req.data = NULL;
	sb->req.size = 0;
	sb->watcher = watcher;
	sb->jb = jb;
	sb->node.hash = tr__hash_u64(sb->ref.v);
	tr__hash_grow(&j->store->subs);
	tr__hash_link(&j->store->subs, &sb->node);
}

/* Frees a submit that waited (the pending table's free function). */
static void
sub_free(struct tr__hnode *n)
{
	struct sub *sb = (struct sub *)n; /* the node is first */

	tr__jobs_free(&sb->jb->node);
	free(sb);
}

/* The store's answer to the submit @sb waits for. */
static void
submit_done(tr_ctx *cx, struct jobs *j, struct sub *sb, const tr_msg *m)
{
	tr_err err = refusal(m);

	if (m->type == TR_MSG_STORE_REPLY) {
		tr__jobs_accept(cx, j, sb->jb, &sb->req, sb->watcher);
	} else {
		tr__jobs_free(&sb->jb->node);
		if (err < 0) {
			tr__jobs_answer(cx, &sb->req, err, 0);
		} else {
			/* The store is gone: so is the service (the runtime
			 * fails the submit). */
			tr_stop_self(cx, TR_EXIT_ERROR);
		}
	}
	free(sb);
}

/*
 * A reply to one of the service's own requests to the store: a submit's
 * commit, or a record written behind (its acknowledgement is not needed;
 * its refusal means the journal lost a change, and the service stops).
 * False when @m is no such reply.
 */
static bool
on_store_reply(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	struct tr__htab *subs = &j->store->subs;

	if (!(m->flags & TR_MSG_F_REPLY)) {
		return false;
	}
	for (struct tr__hnode *n = tr__hash_chain(subs, tr__hash_u64(m->ref.v));
	     n != NULL; n = n->next) {
		struct sub *sb = (struct sub *)n; /* the node is first */
		if (sb->ref.v == m->ref.v) {
			tr__hash_unlink(subs, n);
			submit_done(cx, j, sb, m);
			return true;
		}
	}
	if (m->type == TR_MSG_STORE_ERROR || m->type == TR_MSG_REQUEST_FAILED) {
		tr_stop_self(cx, TR_EXIT_ERROR);
		return true;
	}
	return m->type == TR_MSG_STORE_REPLY;
}

/* ---- the replay --------------------------------------------------------- */

/* Asks the store for the journal's events after @seq. */
static tr_err
replay_read(tr_ctx *cx, struct jobs *j, uint64_t seq)
{
	return tr__journal_read(cx, j->boot->store, j->boot->name, seq,
				&j->store->read_ref);
}

/* The start cannot be answered with a table: answer it with @err, and
 * stop. */
static void
replay_fail(tr_ctx *cx, struct jobs *j, tr_err err)
{
	tr__jobs_answer(cx, &j->store->start, err, 0);
	tr_stop_self(cx, TR_EXIT_ERROR);
}

/* A submit read back: the job, queued (the orphans' queue for a kind
 * the service no longer runs). */
static tr_err
replay_submit(tr_ctx *cx, struct jobs *j, const struct jrec *r,
	      const unsigned char *payload)
{
	struct kind *k = tr__jobs_kind(j->boot, r->kind);

	if (r->id == 0 || tr__jobs_find(j, r->id) != NULL) {
		return TR_EINVAL;
	}
	struct job *jb =
		tr__jobs_new(cx, k != NULL ? k : &j->store->orphans, r->kind,
			     r->id, r->timeout_ms, payload, r->size);
	if (jb == NULL) {
		return TR_ENOMEM;
	}
	tr__jobs_enqueue(j, jb);
	if (r->id > j->next_id) {
		j->next_id = r->id;
	}
	return TR_OK;
}

/* A FINISHED read back: the job leaves its queue for the finished ones,
 * without a diagram to check (it is a record of what happened). */
static tr_err
replay_finish(struct jobs *j, struct job *jb, const struct jrec *r,
	      const unsigned char *result)
{
	if (!tr__jobs_is_final(r->state) || r->state > TR_JOB_INTERRUPTED) {
		return TR_EINVAL;
	}
	if (r->size > 0) {
		jb->done = malloc(sizeof(struct report) + r->size);
		if (jb->done == NULL) {
			return TR_ENOMEM;
		}
		memcpy(jb->done + 1, result, r->size);
	}
	tr__jobs_fifo_remove(&jb->kind->queue, jb);
	j->by_state[TR_JOB_QUEUED]--;
	j->by_state[r->state]++;
	jb->st.state = r->state;
	jb->st.progress = r->progress;
	jb->st.exit_reason = r->exit_reason;
	jb->st.result_size = r->size;
	memcpy(jb->st.note, r->note, sizeof(jb->st.note));
	jb->was_running = false;
	free(jb->start);
	jb->start = NULL;
	tr__jobs_finished(j, jb);
	return TR_OK;
}

/*
 * Applies one event of the journal. Until the replay ends, every job
 * not finished is TR_JOB_QUEUED in its queue, and one that was started
 * is marked: replay_end() decides what it becomes. An event of a job
 * the table no longer holds (dropped beyond max_finished) is skipped.
 */
static tr_err
replay_event(tr_ctx *cx, struct jobs *j, const unsigned char *data, size_t len)
{
	struct jrec r;

	if (len < sizeof(r)) {
		return TR_EINVAL;
	}
	memcpy(&r, data, sizeof(r));
	if (len - sizeof(r) != r.size) {
		return TR_EINVAL;
	}
	r.kind[sizeof(r.kind) - 1] = '\0';
	r.note[sizeof(r.note) - 1] = '\0';
	if (r.type == TR_JOB_EV_QUEUED) {
		return replay_submit(cx, j, &r, data + sizeof(r));
	}
	struct job *jb = tr__jobs_find(j, r.id);
	if (jb == NULL || tr__jobs_is_final(jb->st.state)) {
		return r.type >= TR_JOB_EV_STARTED &&
				       r.type <= TR_JOB_EV_FINISHED
			       ? TR_OK
			       : TR_EINVAL;
	}
	switch (r.type) {
	case TR_JOB_EV_STARTED:
		jb->was_running = true;
		return TR_OK;
	case TR_JOB_EV_PROGRESS:
		jb->st.progress = r.progress <= 100 ? r.progress : 100;
		memcpy(jb->st.note, r.note, sizeof(jb->st.note));
		return TR_OK;
	case TR_JOB_EV_FINISHED:
		return replay_finish(j, jb, &r, data + sizeof(r));
	default:
		return TR_EINVAL;
	}
}

/* The jobs of kind @k that were running end interrupted, or stay
 * queued (run again) when their kind says so; a job of a kind the
 * service no longer runs ends interrupted. */
static void
replay_settle(tr_ctx *cx, struct jobs *j, struct kind *k)
{
	struct job *next;

	for (struct job *jb = k->queue.head; jb != NULL; jb = next) {
		next = jb->qnext;
		if (k == &j->store->orphans) {
			tr__jobs_end(cx, j, jb, TR_JOB_INTERRUPTED, 0,
				     "its kind is not run any more");
		} else if (jb->was_running &&
			   k->on_restart != TR_JOBS_RESTART_RESUBMIT) {
			tr__jobs_end(cx, j, jb, TR_JOB_INTERRUPTED, 0,
				     "interrupted by a restart");
		} else if (jb->was_running) {
			/* Runs again from the start. */
			jb->st.progress = 0;
			memset(jb->st.note, 0, sizeof(jb->st.note));
		}
		jb->was_running = false;
	}
}

/* The journal is read: settle the jobs that ran, answer the start, take
 * the requests that waited, and start jobs. */
static void
replay_end(tr_ctx *cx, struct jobs *j)
{
	j->store->read_ref = (tr_ref){ 0 };
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		replay_settle(cx, j, &j->boot->kinds[i]);
	}
	replay_settle(cx, j, &j->store->orphans);
	tr__jobs_answer(cx, &j->store->start, TR_OK, 0);
	(void)tr_unstash_all(cx);
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		tr__jobs_pump(cx, j, &j->boot->kinds[i]);
	}
}

/* A page of the journal, or the store's refusal to give one. */
static void
replay_page(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_store_events *pg = tr__journal_page(m, 0);
	tr_err err = refusal(m);

	if (err < 0) {
		replay_fail(cx, j, err);
		return;
	}
	if (m->type != TR_MSG_STORE_EVENTS) {
		replay_fail(cx, j, TR_ECLOSED); /* the store is gone */
		return;
	}
	if (pg == NULL) {
		replay_fail(cx, j, TR_EINVAL);
		return;
	}
	uint64_t seq = 0;
	for (uint32_t i = 0; i < pg->count; i++) {
		const tr_store_event *ev = &pg->events[i];
		err = replay_event(cx, j,
				   (const unsigned char *)m->data + ev->offset,
				   ev->size);
		if (err < 0) {
			replay_fail(cx, j, err);
			return;
		}
		seq = ev->seq;
	}
	if (pg->more != 0 && pg->count > 0) {
		err = replay_read(cx, j, seq);
		if (err < 0) {
			replay_fail(cx, j, err);
		}
		return;
	}
	replay_end(cx, j);
}

/* ---- the seam ------------------------------------------------------------ */

tr_err
tr__jobs_store_config(struct boot *b, const tr_jobs_config *cfg)
{
	/* A size that ends before the store: a caller of an older header,
	 * with no store. */
	if (cfg->size < sizeof(*cfg) || tr_pid_is_none(cfg->store)) {
		return TR_OK;
	}
	size_t n = cfg->name != NULL ? strnlen(cfg->name, TR_STORE_ID_SIZE) : 0;
	if (n == 0 || n >= TR_STORE_ID_SIZE) {
		return TR_EINVAL;
	}
	b->store = cfg->store;
	memcpy(b->name, cfg->name, n);
	return TR_OK;
}

void
tr__jobs_store_start(tr_ctx *cx, struct jobs *j, const tr_msg *start)
{
	struct jobs_store *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		tr__jobs_answer(cx, start, TR_ENOMEM, 0);
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}
	j->store = s;
	s->start = *start;
	tr_err err = tr__hash_init(&s->subs, SUBS_BUCKETS0);
	if (err == TR_OK) {
		err = tr_monitor(cx, j->boot->store, &s->mon);
	}
	if (err == TR_OK) {
		err = replay_read(cx, j, 0);
	}
	if (err < 0) {
		replay_fail(cx, j, err);
	}
}

bool
tr__jobs_store_handle(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	struct jobs_store *s = j->store;
	const tr_down *d = TR_MSG_AS(m, tr_down);

	if (s == NULL) {
		return false;
	}
	if (s->read_ref.v != 0) {
		/* Everything else waits for the table. */
		if ((m->flags & TR_MSG_F_REPLY) && m->ref.v == s->read_ref.v) {
			replay_page(cx, j, m);
		} else if (tr_stash(cx, m) < 0) {
			tr__jobs_unhandled(cx, j, m);
		}
		return true;
	}
	if (m->type == TR_MSG_DOWN && d != NULL && d->ref.v == s->mon.v) {
		/* What is on disk is what it is; the table cannot go on
		 * without it (as a persistent actor's state cannot). */
		tr_stop_self(cx, TR_EXIT_ERROR);
		return true;
	}
	return on_store_reply(cx, j, m);
}

void
tr__jobs_store_stop(struct jobs *j)
{
	if (j->store != NULL) {
		tr__hash_fini(&j->store->subs, sub_free);
		free(j->store);
		j->store = NULL;
	}
}
