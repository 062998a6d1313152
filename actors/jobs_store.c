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
 * start.
 *
 * Compaction. Once the records written since the last snapshot pass a
 * bound that grows with the table (COMPACT_MIN + 2 per job held), the
 * service writes a MARK record. Its acknowledgement names its sequence
 * number S and comes after those of every record written before it, so
 * the table then holds all that the records up to S say (a refused write
 * either stopped the service or changed nothing), and perhaps some of
 * what came after. That table, as records (image()), is saved as the
 * journal's snapshot at S; once it is committed the events up to S are
 * trimmed. A start loads the snapshot, then replays the events after it,
 * which the image may already hold: a second QUEUED of a job is skipped,
 * and the other events are idempotent on the state they led to. A
 * refusal along the way only leaves the journal longer.
 *
 * Threads: the service's turns only, as jobs.c.
 */
#include "jobs_store.h"
#include "journal.h"

#include <stdlib.h>
#include <string.h>

#define SUBS_BUCKETS0 64u
/* Records written before the first compaction, with an empty table. */
#define COMPACT_MIN 256u
/* A record that is no change of a job: the compaction's mark, and the
 * first record of an image. Its id is the highest job id given so far. */
#define J_MARK 0x4d41524bu

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
	bool loading;    /* the replay's snapshot load is read_ref */
	uint64_t since;  /* records written since the last compaction began */
	tr_ref mark_ref; /* the MARK under way; zero: none */
	tr_ref snap_ref, trim_ref; /* the image's save, then the trim */
	uint64_t snap_seq;         /* the MARK's sequence number */
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

/* Writes the @type record of @jb at @at, with @len bytes of @data after
 * it; returns its size. */
static size_t
put_record(unsigned char *at, const struct job *jb, uint32_t type,
	   const void *data, size_t len)
{
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
	memcpy(at, &r, sizeof(r));
	if (len > 0) {
		memcpy(at + sizeof(r), data, len);
	}
	return sizeof(r) + len;
}

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

	if (type == TR_JOB_EV_QUEUED && jb->start != NULL) {
		data = jb->start->payload;
		len = jb->start->payload_size;
	} else if (type == TR_JOB_EV_FINISHED && jb->done != NULL) {
		data = jb->done + 1;
		len = jb->st.result_size;
	}
	size_t n = sizeof(tr_store_append_req) + sizeof(struct jrec) + len;
	tr_store_append_req *q = calloc(1, n);
	if (q != NULL) {
		memcpy(q->id, j->boot->name, sizeof(q->id));
		q->size = put_record(q->data, jb, type, data, len);
		/* The runtime owns @q from here, on every path. */
		err = tr_request_ptr(cx, j->boot->store, TR_MSG_STORE_APPEND, q,
				     n, free, 0, ref != NULL ? ref : &behind);
	}
	if (err < 0 && ref == NULL) {
		tr_stop_self(cx, TR_EXIT_ERROR);
	}
	if (err == TR_OK) {
		j->store->since++;
	}
	return err;
}

static void maybe_compact(tr_ctx *cx, struct jobs *j);

void
tr__jobs_store_write(tr_ctx *cx, struct jobs *j, const struct job *jb,
		     uint32_t event)
{
	if (j->store != NULL) {
		(void)journal(cx, j, jb, event, NULL);
		maybe_compact(cx, j);
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
	maybe_compact(cx, j);
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

/* ---- compaction ---------------------------------------------------------- */

/* The records of @jb in an image, at @at (NULL: only measured). */
static size_t
image_job(unsigned char *at, const struct job *jb)
{
	size_t n = 0;
	const tr_job_start *st = jb->start;
	const void *payload = st != NULL ? st->payload : NULL;
	size_t plen = st != NULL ? st->payload_size : 0;
	size_t rlen = jb->done != NULL ? jb->st.result_size : 0;
	unsigned char *p = at;

	/* Measured as written: a record and its bytes. */
	n += sizeof(struct jrec) + plen;
	if (p != NULL) {
		p += put_record(p, jb, TR_JOB_EV_QUEUED, payload, plen);
	}
	if (tr__jobs_is_final(jb->st.state)) {
		n += sizeof(struct jrec) + rlen;
		if (p != NULL) {
			p += put_record(p, jb, TR_JOB_EV_FINISHED,
					jb->done != NULL ? jb->done + 1 : NULL,
					rlen);
		}
	} else if (jb->st.state == TR_JOB_RUNNING) {
		n += 2 * sizeof(struct jrec);
		if (p != NULL) {
			p += put_record(p, jb, TR_JOB_EV_STARTED, NULL, 0);
			p += put_record(p, jb, TR_JOB_EV_PROGRESS, NULL, 0);
		}
	}
	return n;
}

/*
 * The table as records (@at NULL: only measured): a MARK with the
 * highest id given, the finished jobs oldest first, the running ones,
 * then each kind's queue in order, so that a replay rebuilds the same
 * table, queues and finished order included.
 */
static size_t
image(unsigned char *at, const struct jobs *j)
{
	struct job mark;
	size_t n = sizeof(struct jrec);

	memset(&mark, 0, sizeof(mark));
	mark.st.id = j->next_id;
	if (at != NULL) {
		put_record(at, &mark, J_MARK, NULL, 0);
	}
	for (const struct job *jb = j->finished.head; jb != NULL;
	     jb = jb->qnext) {
		n += image_job(at != NULL ? at + n : NULL, jb);
	}
	for (const struct job *jb = j->active; jb != NULL; jb = jb->anext) {
		if (jb->st.id != 0 && jb->st.state == TR_JOB_RUNNING) {
			n += image_job(at != NULL ? at + n : NULL, jb);
		}
	}
	for (uint32_t i = 0; i < j->boot->nkinds; i++) {
		for (const struct job *jb = j->boot->kinds[i].queue.head;
		     jb != NULL; jb = jb->qnext) {
			n += image_job(at != NULL ? at + n : NULL, jb);
		}
	}
	return n;
}

/* Past the bound, and nothing of a compaction under way: write a MARK. */
static void
maybe_compact(tr_ctx *cx, struct jobs *j)
{
	struct jobs_store *s = j->store;
	struct job mark;

	if (s->since < COMPACT_MIN + 2 * (uint64_t)j->tab.count ||
	    s->read_ref.v != 0 || s->mark_ref.v != 0 || s->snap_ref.v != 0 ||
	    s->trim_ref.v != 0) {
		return;
	}
	memset(&mark, 0, sizeof(mark));
	mark.st.id = j->next_id;
	if (journal(cx, j, &mark, J_MARK, &s->mark_ref) == TR_OK) {
		s->since = 0;
	}
}

/*
 * The MARK is committed at @seq: save the table, as it is now, as the
 * snapshot at @seq. The table may already hold changes written after the
 * MARK; their records replay onto it harmlessly (a second QUEUED of a
 * job is skipped, the other events are idempotent on the state they
 * led to).
 */
static void
mark_done(tr_ctx *cx, struct jobs *j, uint64_t seq)
{
	struct jobs_store *s = j->store;
	size_t len = image(NULL, j);
	size_t n = sizeof(tr_store_snapshot_req) + len;
	tr_store_snapshot_req *q = calloc(1, n);

	if (q == NULL) {
		return; /* the journal stays longer */
	}
	memcpy(q->id, j->boot->name, sizeof(q->id));
	q->seq = seq;
	q->size = image(q->data, j);
	if (tr_request_ptr(cx, j->boot->store, TR_MSG_STORE_SNAPSHOT_SAVE, q, n,
			   free, 0, &s->snap_ref) == TR_OK) {
		s->snap_seq = seq;
	}
}

/* The snapshot is committed: the events it holds can go. */
static void
snap_done(tr_ctx *cx, struct jobs *j)
{
	struct jobs_store *s = j->store;
	tr_store_trim_req q;

	memset(&q, 0, sizeof(q));
	memcpy(q.id, j->boot->name, sizeof(q.id));
	q.to_seq = s->snap_seq;
	(void)tr_request(cx, j->boot->store, TR_MSG_STORE_TRIM, &q, sizeof(q),
			 0, &s->trim_ref);
}

/* The answers to the compaction's own requests; false for another. A
 * refusal only leaves the journal longer. */
static bool
on_compaction(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	struct jobs_store *s = j->store;
	const tr_store_reply *r = TR_MSG_AS(m, tr_store_reply);
	bool ok = m->type == TR_MSG_STORE_REPLY && r != NULL;

	if (m->ref.v == s->mark_ref.v) {
		s->mark_ref = (tr_ref){ 0 };
		if (ok) {
			mark_done(cx, j, r->value);
		}
	} else if (m->ref.v == s->snap_ref.v) {
		s->snap_ref = (tr_ref){ 0 };
		if (ok) {
			snap_done(cx, j);
		}
	} else if (m->ref.v == s->trim_ref.v) {
		s->trim_ref = (tr_ref){ 0 };
	} else {
		return false;
	}
	return true;
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
	if (m->ref.v != 0 && on_compaction(cx, j, m)) {
		return true;
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

	if (r->id == 0) {
		return TR_EINVAL;
	}
	if (tr__jobs_find(j, r->id) != NULL) {
		return TR_OK; /* in the snapshot already */
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
	jb->st.event = TR_JOB_EV_FINISHED;
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
	if (r.type == J_MARK) {
		if (r.id > j->next_id) {
			j->next_id = r.id; /* ids are never given twice */
		}
		return TR_OK;
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
			   k->cfg.on_restart != TR_JOBS_RESTART_RESUBMIT) {
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

/* The snapshot, or its absence: its records, then the events after it. */
static void
replay_snapshot(tr_ctx *cx, struct jobs *j, const tr_msg *m)
{
	const tr_store_snapshot *sn =
		TR_MSG_AS_FAM(m, tr_store_snapshot, size, data);
	tr_err err = refusal(m);
	uint64_t seq = 0;

	j->store->loading = false;
	if (m->type == TR_MSG_STORE_SNAPSHOT && sn != NULL) {
		size_t off = 0;
		while (err == TR_OK && off < sn->size) {
			struct jrec r;
			if (sn->size - off < sizeof(r)) {
				err = TR_EINVAL;
				break;
			}
			memcpy(&r, sn->data + off, sizeof(r));
			if (r.size > sn->size - off - sizeof(r)) {
				err = TR_EINVAL;
				break;
			}
			err = replay_event(cx, j, sn->data + off,
					   sizeof(r) + r.size);
			off += sizeof(r) + r.size;
		}
		seq = sn->seq;
	} else if (err == TR_ENOENT) {
		err = TR_OK; /* none yet: every event */
	} else if (err == TR_OK) {
		err = m->type == TR_MSG_REQUEST_FAILED ? TR_ECLOSED : TR_EINVAL;
	}
	if (err == TR_OK) {
		err = replay_read(cx, j, seq);
	}
	if (err < 0) {
		replay_fail(cx, j, err);
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
		tr_store_key_req q;
		memset(&q, 0, sizeof(q));
		memcpy(q.id, j->boot->name, sizeof(q.id));
		err = tr_request(cx, j->boot->store, TR_MSG_STORE_SNAPSHOT_LOAD,
				 &q, sizeof(q), 0, &s->read_ref);
		s->loading = err == TR_OK;
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
			if (s->loading) {
				replay_snapshot(cx, j, m);
			} else {
				replay_page(cx, j, m);
			}
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
