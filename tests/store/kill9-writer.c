/*
 * kill9-writer: one life of the kill -9 test (kill9.c). It opens a store
 * on a file (TR_STORE_NORMAL), checks what the previous lives left there,
 * then writes until it is killed.
 *
 *     kill9-writer DB run      check, print READY, write until killed
 *     kill9-writer DB check    check, print CHECKED, stop cleanly
 *
 * On stdin, one line per id, what the lives before were told was written
 * and the most that can be there:
 *
 *     J <k> <acked> <most>     journal j/<k>
 *     P <k> <acked> <most>     persistent actor p/<k>
 *
 * The check, for each journal: its events are numbered 1, 2, 3... with no
 * gap, each holds the bytes kill9.h gives for its number, and the last is
 * at least <acked> (nothing acknowledged is missing) and at most <most>
 * (nothing appears that was never sent). For each persistent actor: it
 * recovers (from its snapshot, if any, and the events after it) to a
 * last_seq between <acked> and <most>, and its state is the full replay
 * of events 1 to last_seq computed from kill9.h; the snapshot holds the
 * state of its own sequence number; the journal has no gap, holds the
 * right events, and an untrimmed one replayed from its first event gives
 * the recovered state. Each failure is a line "FAIL ..." that says what
 * was missing or wrong; then "CHECK FAILED" and exit status 1. Before
 * READY, a line "HEAD J|P <k> <last>" per id says where writing resumes.
 *
 * Writing: journal writer k appends the next events of j/<k>, each with
 * its sequence number, k9_window(k) of them in flight; persistent actor
 * k persists 1 to K9_BATCH_MAX events in a turn and waits for them. Every
 * acknowledgement is printed at once, one write(2) per line (atomic on a
 * pipe), so a line the parent reads is a write the store acknowledged:
 *
 *     J <k> <seq>                       an append was acknowledged
 *     P <k> <seq> <total> <chain>       TR_MSG_PERSISTED, and the state
 *     E ...                             a write failed (a test failure)
 */
#include <troupe/troupe.h>
#include <troupe/actors/persist.h>
#include <troupe/actors/store.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kill9.h"

/* How long the main thread waits for one answer: a failure if reached. */
#define WAIT_MS 60000

enum {
	GO = 1, /* to a writer: struct go; to a persistent actor: none */
	GET,    /* request to a persistent actor: reply STATE */
	STATE,  /* struct k9_sum */
};

/* One line on stdout, in one write. */
static void
say(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0) {
		return;
	}
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	const char *p = line;
	while (len > 0) {
		ssize_t w = write(STDOUT_FILENO, p, len);
		if (w <= 0) {
			return;
		}
		p += w;
		len -= (size_t)w;
	}
}

/* ---- journal writers ------------------------------------------------- */

struct go {
	tr_pid store;
	uint32_t k;
	uint64_t next; /* the sequence number to write next */
};

#define WINDOW_MAX 8

struct jw {
	tr_pid store;
	uint32_t k;
	uint64_t next;
	bool failed;
	/* The appends in flight, oldest first: acknowledged in this order. */
	tr_ref refs[WINDOW_MAX];
	uint64_t seqs[WINDOW_MAX];
	unsigned head, count;
};

static void
jw_append(tr_ctx *cx, struct jw *w)
{
	unsigned char ev[K9_EVENT_MAX];
	size_t len = k9_journal_event(w->k, w->next, ev);
	size_t n = sizeof(tr_store_append_req) + len;
	tr_store_append_req *q = calloc(1, n);
	tr_ref ref;

	if (q == NULL) {
		say("E J %u out of memory\n", w->k);
		w->failed = true;
		return;
	}
	snprintf(q->id, sizeof(q->id), "j/%u", w->k);
	q->seq = w->next;
	q->size = len;
	memcpy(q->data, ev, len);
	tr_err err = tr_request_ptr(cx, w->store, TR_MSG_STORE_APPEND, q, n,
				    free, 0, &ref);
	if (err != TR_OK) {
		say("E J %u request: %s\n", w->k, tr_err_name(err));
		w->failed = true;
		return;
	}
	unsigned slot = (w->head + w->count) % WINDOW_MAX;
	w->refs[slot] = ref;
	w->seqs[slot] = w->next;
	w->count++;
	w->next++;
}

static void
jw_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jw *w = state;

	if (m->type == GO) {
		const struct go *g = TR_MSG_AS(m, struct go);
		if (g == NULL) {
			return;
		}
		w->store = g->store;
		w->k = g->k;
		w->next = g->next;
		while (!w->failed && w->count < k9_window(w->k)) {
			jw_append(cx, w);
		}
		return;
	}
	if (!(m->flags & TR_MSG_F_REPLY) || w->count == 0 || w->failed) {
		return;
	}
	uint64_t want = w->seqs[w->head];
	const tr_store_reply *r = TR_MSG_AS(m, tr_store_reply);
	if (m->ref.v != w->refs[w->head].v) {
		say("E J %u an answer out of order (seq %" PRIu64 " waits)\n",
		    w->k, want);
		w->failed = true;
		return;
	}
	if (m->type != TR_MSG_STORE_REPLY || r == NULL || r->value != want) {
		const tr_store_error *e = TR_MSG_AS(m, tr_store_error);
		say("E J %u seq %" PRIu64 ": type 0x%x status %d %s\n", w->k,
		    want, m->type, e != NULL ? e->status : 0,
		    e != NULL ? e->text : "");
		w->failed = true;
		return;
	}
	say("J %u %" PRIu64 "\n", w->k, want);
	w->head = (w->head + 1) % WINDOW_MAX;
	w->count--;
	jw_append(cx, w);
}

static const tr_actor_def jw_def = {
	.size = sizeof(tr_actor_def),
	.name = "journal-writer",
	.state_size = sizeof(struct jw),
	.handle = jw_handle,
};

/* ---- persistent actors ------------------------------------------------- */

struct pa {
	struct k9_sum sum; /* first: what apply builds and snapshots hold */
	uint32_t k;
	bool going;
	bool failed;
	uint64_t next;        /* the sequence number the next event gets */
	uint32_t outstanding; /* events persisted and not yet answered */
};

static int
pa_init(tr_ctx *cx, void *state, void *arg)
{
	struct pa *p = state;

	(void)cx;
	memcpy(&p->k, arg, sizeof(p->k));
	return 0;
}

static void
pa_apply(void *state, uint64_t seq, const void *event, size_t len)
{
	struct pa *p = state;
	struct k9_event ev = { 0, 0 };

	if (len == sizeof(ev)) {
		memcpy(&ev, event, sizeof(ev));
	}
	k9_apply(&p->sum, seq, &ev);
}

/* Snapshots of odd ids hold the sum alone (save/load); even ids use the
 * state's own bytes. */
static tr_err
pa_save(const void *state, void **out, size_t *len)
{
	const struct pa *p = state;
	void *b = malloc(sizeof(p->sum));

	if (b == NULL) {
		return TR_ENOMEM;
	}
	memcpy(b, &p->sum, sizeof(p->sum));
	*out = b;
	*len = sizeof(p->sum);
	return TR_OK;
}

static tr_err
pa_load(void *state, const void *data, size_t len)
{
	struct pa *p = state;

	if (len != sizeof(p->sum)) {
		return TR_EINVAL;
	}
	memcpy(&p->sum, data, sizeof(p->sum));
	return TR_OK;
}

static void
pa_batch(tr_ctx *cx, struct pa *p)
{
	uint32_t b = 1 + (uint32_t)(p->next % K9_BATCH_MAX);

	for (uint32_t i = 0; i < b && !p->failed; i++) {
		struct k9_event ev = { .seq = p->next,
				       .value = k9_value(p->k, p->next) };
		tr_err err = tr_persist(cx, NULL, &ev, sizeof(ev));
		if (err != TR_OK) {
			say("E P %u persist: %s\n", p->k, tr_err_name(err));
			p->failed = true;
			return;
		}
		p->next++;
		p->outstanding++;
	}
}

static void
pa_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct pa *p = state;

	switch (m->type) {
	case TR_MSG_PERSIST_RECOVERED: {
		const tr_persist_recovered *r =
			TR_MSG_AS(m, tr_persist_recovered);
		p->next = r != NULL ? r->last_seq + 1 : 0;
		break;
	}
	case GO:
		if (!p->going && !p->failed) {
			p->going = true;
			pa_batch(cx, p);
		}
		break;
	case GET:
		(void)tr_reply(cx, m, STATE, &p->sum, sizeof(p->sum));
		break;
	case TR_MSG_PERSISTED: {
		const tr_persist_done *d = TR_MSG_AS(m, tr_persist_done);
		if (d == NULL || d->status != TR_OK || p->failed) {
			say("E P %u persisted: status %d\n", p->k,
			    d != NULL ? d->status : 0);
			p->failed = true;
			break;
		}
		/* The state has every event up to this one applied. */
		say("P %u %" PRIu64 " %" PRId64 " %" PRIu64 "\n", p->k, d->seq,
		    p->sum.total, p->sum.chain);
		if (d->seq != p->sum.count) {
			say("E P %u persisted seq %" PRIu64
			    " but count %" PRIu64 "\n",
			    p->k, d->seq, p->sum.count);
			p->failed = true;
			break;
		}
		if (--p->outstanding == 0 && p->going) {
			pa_batch(cx, p);
		}
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def pa_actor = {
	.size = sizeof(tr_actor_def),
	.name = "persistent-writer",
	.state_size = sizeof(struct pa),
	.init = pa_init,
	.handle = pa_handle,
};

static const tr_persist_def pa_bytes = {
	.size = sizeof(tr_persist_def),
	.actor = &pa_actor,
	.apply = pa_apply,
};

static const tr_persist_def pa_text = {
	.size = sizeof(tr_persist_def),
	.actor = &pa_actor,
	.apply = pa_apply,
	.save = pa_save,
	.load = pa_load,
};

/* ---- the check (main thread) ------------------------------------------ */

struct expect {
	uint64_t acked;
	uint64_t most;
};

static tr_inbox *ib;
static tr_pid store;
static int failures;

#define FAIL(...)                                                              \
	do {                                                                   \
		say("FAIL " __VA_ARGS__);                                      \
		failures++;                                                    \
	} while (0)

/* The outcome of @ref; its type, 0 when none came. */
static uint32_t
outcome(tr_ref ref, tr_received *r)
{
	memset(r, 0, sizeof(*r));
	if (tr_inbox_recv(ib, &ref, WAIT_MS, r) != TR_OK) {
		return 0;
	}
	return r->type;
}

/* Visits every event of journal @id in order; *@last gets the journal's
 * last sequence number (trimmed events included). */
typedef void (*visit_fn)(void *arg, uint64_t seq, const unsigned char *b,
			 size_t n);

static bool
read_journal(const char *id, uint64_t *last, visit_fn fn, void *arg)
{
	uint64_t after = 0;

	*last = 0;
	for (;;) {
		tr_store_read_req q;
		tr_received r;
		tr_ref ref;
		memset(&r, 0, sizeof(r));
		memset(&q, 0, sizeof(q));
		snprintf(q.id, sizeof(q.id), "%s", id);
		q.after_seq = after;
		if (tr_request(tr_inbox_ctx(ib), store, TR_MSG_STORE_READ, &q,
			       sizeof(q), 0, &ref) != TR_OK ||
		    outcome(ref, &r) != TR_MSG_STORE_EVENTS) {
			FAIL("%s: cannot read the journal (type 0x%x)\n", id,
			     r.type);
			tr_received_fini(&r);
			return false;
		}
		const tr_store_events *pg = r.data;
		*last = pg->last_seq;
		for (uint32_t i = 0; i < pg->count; i++) {
			const tr_store_event *ev = &pg->events[i];
			fn(arg, ev->seq,
			   (const unsigned char *)r.data + ev->offset,
			   ev->size);
			after = ev->seq;
		}
		bool more = pg->more != 0 && pg->count > 0;
		tr_received_fini(&r);
		if (!more) {
			return true;
		}
	}
}

/* What a walk through a journal found. */
struct walk {
	const char *id;
	unsigned k;
	bool persistent;
	uint64_t first, prev, events, wrong;
	struct k9_sum sum; /* persistent: the replay from the first event */
};

static void
walk_event(void *arg, uint64_t seq, const unsigned char *b, size_t n)
{
	struct walk *w = arg;

	if (w->events == 0) {
		w->first = seq;
	} else if (seq != w->prev + 1) {
		FAIL("%s: a gap: event %" PRIu64 " follows %" PRIu64 "\n",
		     w->id, seq, w->prev);
	}
	w->prev = seq;
	w->events++;
	if (w->persistent) {
		struct k9_event ev = { 0, 0 };
		if (n == sizeof(ev)) {
			memcpy(&ev, b, n);
		}
		if (n != sizeof(ev) || ev.seq != seq ||
		    ev.value != k9_value(w->k, seq)) {
			if (w->wrong++ == 0) {
				FAIL("%s: event %" PRIu64 " is not the one "
				     "persisted\n",
				     w->id, seq);
			}
		}
		k9_apply(&w->sum, seq, &ev);
		return;
	}
	unsigned char want[K9_EVENT_MAX];
	size_t len = k9_journal_event(w->k, seq, want);
	if (n != len || memcmp(b, want, len) != 0) {
		if (w->wrong++ == 0) {
			FAIL("%s: event %" PRIu64 " holds other bytes than "
			     "were appended\n",
			     w->id, seq);
		}
	}
}

/* Journal j/<k>; its last sequence number. */
static uint64_t
check_journal(unsigned k, const struct expect *x)
{
	char id[32];
	struct walk w;
	uint64_t last;

	snprintf(id, sizeof(id), "j/%u", k);
	memset(&w, 0, sizeof(w));
	w.id = id;
	w.k = k;
	if (!read_journal(id, &last, walk_event, &w)) {
		return 0;
	}
	if (w.events > 0 && w.first != 1) {
		FAIL("%s: events 1 to %" PRIu64 " are missing\n", id,
		     w.first - 1);
	}
	if (w.prev != last) {
		FAIL("%s: the last event is %" PRIu64 ", the head says %" PRIu64
		     "\n",
		     id, w.prev, last);
	}
	if (last < x->acked) {
		FAIL("%s: acknowledged up to %" PRIu64 ", only %" PRIu64
		     " there: events %" PRIu64 " to %" PRIu64 " are missing\n",
		     id, x->acked, last, last + 1, x->acked);
	}
	if (last > x->most) {
		FAIL("%s: %" PRIu64 " events, at most %" PRIu64 " were sent\n",
		     id, last, x->most);
	}
	return last;
}

static bool
sum_eq(const struct k9_sum *a, const struct k9_sum *b)
{
	return a->count == b->count && a->total == b->total &&
	       a->chain == b->chain && a->bad == b->bad;
}

static tr_pid pas[K9_PERSISTENT];

/* Persistent actor p/<k>: recovered, compared; its last sequence
 * number. */
static uint64_t
check_persistent(unsigned k, const struct expect *x)
{
	char id[32];
	tr_received r;
	tr_ref ref;

	memset(&r, 0, sizeof(r));
	snprintf(id, sizeof(id), "p/%u", k);
	tr_persist_config cfg = { .size = sizeof(cfg),
				  .store = store,
				  .id = id,
				  .snapshot_every = k9_snap_every(k),
				  .trim = k9_trim(k),
				  .arg = &k,
				  .arg_size = sizeof(k) };
	const tr_persist_def *def = k % 2 != 0 ? &pa_text : &pa_bytes;
	if (tr_persist_start(tr_inbox_ctx(ib), def, &cfg, &pas[k], &ref) !=
		    TR_OK ||
	    outcome(ref, &r) != TR_MSG_PERSIST_RECOVERED ||
	    r.size != sizeof(tr_persist_recovered)) {
		const tr_store_error *e =
			r.size == sizeof(tr_store_error) ? r.data : NULL;
		FAIL("%s: recovery failed (type 0x%x): %s\n", id, r.type,
		     e != NULL ? e->text : "");
		tr_received_fini(&r);
		return 0;
	}
	tr_persist_recovered rec;
	memcpy(&rec, r.data, sizeof(rec));
	tr_received_fini(&r);

	/* The recovered state: the full replay of what the journal holds. */
	struct k9_sum got;
	memset(&got, 0, sizeof(got));
	if (tr_request(tr_inbox_ctx(ib), pas[k], GET, NULL, 0, 0, &ref) !=
		    TR_OK ||
	    outcome(ref, &r) != STATE || r.size != sizeof(got)) {
		FAIL("%s: no state (type 0x%x)\n", id, r.type);
	} else {
		memcpy(&got, r.data, sizeof(got));
	}
	tr_received_fini(&r);
	struct k9_sum want = k9_fold(k, rec.last_seq);
	if (!sum_eq(&got, &want)) {
		FAIL("%s: recovered to %" PRIu64 " (snapshot %" PRIu64
		     ", %" PRIu64 " replayed): count %" PRIu64 " total %" PRId64
		     " bad %" PRIu64 ", a full replay gives count %" PRIu64
		     " total %" PRId64 "\n",
		     id, rec.last_seq, rec.snapshot_seq, rec.replayed,
		     got.count, got.total, got.bad, want.count, want.total);
	}
	if (rec.last_seq < x->acked) {
		FAIL("%s: acknowledged up to %" PRIu64 ", recovered to %" PRIu64
		     ": events %" PRIu64 " to %" PRIu64 " are missing\n",
		     id, x->acked, rec.last_seq, rec.last_seq + 1, x->acked);
	}
	if (rec.last_seq > x->most) {
		FAIL("%s: recovered to %" PRIu64 ", at most %" PRIu64
		     " events were persisted\n",
		     id, rec.last_seq, x->most);
	}

	/* The snapshot holds the state of its sequence number. */
	uint64_t snap_seq = 0;
	tr_store_key_req kq;
	memset(&kq, 0, sizeof(kq));
	snprintf(kq.id, sizeof(kq.id), "%s", id);
	memset(&r, 0, sizeof(r));
	if (tr_request(tr_inbox_ctx(ib), store, TR_MSG_STORE_SNAPSHOT_LOAD, &kq,
		       sizeof(kq), 0, &ref) != TR_OK) {
		FAIL("%s: cannot ask for the snapshot\n", id);
	} else if (outcome(ref, &r) == TR_MSG_STORE_SNAPSHOT) {
		const tr_store_snapshot *s = r.data;
		struct k9_sum held;
		memset(&held, 0, sizeof(held));
		if (s->size >= sizeof(held)) {
			memcpy(&held, s->data, sizeof(held));
		}
		struct k9_sum at = k9_fold(k, s->seq);
		snap_seq = s->seq;
		if (!sum_eq(&held, &at) || s->seq > rec.last_seq ||
		    k9_snap_every(k) == 0) {
			FAIL("%s: the snapshot at %" PRIu64
			     " holds count %" PRIu64 " total %" PRId64
			     ", want count %" PRIu64 " total %" PRId64
			     " (recovered to %" PRIu64 ")\n",
			     id, s->seq, held.count, held.total, at.count,
			     at.total, rec.last_seq);
		}
		if (s->seq != rec.snapshot_seq) {
			FAIL("%s: recovery started from %" PRIu64
			     ", the snapshot is at %" PRIu64 "\n",
			     id, rec.snapshot_seq, s->seq);
		}
	} else if (r.type != TR_MSG_STORE_ERROR || rec.snapshot_seq != 0) {
		FAIL("%s: no snapshot (type 0x%x), recovery used one at "
		     "%" PRIu64 "\n",
		     id, r.type, rec.snapshot_seq);
	}
	tr_received_fini(&r);

	/* The journal: no gap, the events persisted, and, untrimmed, a
	 * replay from its first event gives the recovered state. */
	struct walk w;
	uint64_t last;
	memset(&w, 0, sizeof(w));
	w.id = id;
	w.k = k;
	w.persistent = true;
	if (read_journal(id, &last, walk_event, &w)) {
		if (last != rec.last_seq) {
			FAIL("%s: the journal ends at %" PRIu64
			     ", recovery at %" PRIu64 "\n",
			     id, last, rec.last_seq);
		}
		if (w.events > 0 && w.prev != last) {
			FAIL("%s: the last event is %" PRIu64
			     ", the head says %" PRIu64 "\n",
			     id, w.prev, last);
		}
		if (!k9_trim(k)) {
			if (w.events != last ||
			    (w.events > 0 && w.first != 1)) {
				FAIL("%s: %" PRIu64 " events from %" PRIu64
				     " in an untrimmed journal of %" PRIu64
				     "\n",
				     id, w.events, w.first, last);
			} else if (!sum_eq(&w.sum, &got)) {
				FAIL("%s: a full replay of the journal gives "
				     "total %" PRId64 ", recovery %" PRId64
				     "\n",
				     id, w.sum.total, got.total);
			}
		} else if (w.events > 0 && w.first > snap_seq + 1) {
			FAIL("%s: events %" PRIu64 " to %" PRIu64
			     " are trimmed, the snapshot is at %" PRIu64 "\n",
			     id, snap_seq + 1, w.first - 1, snap_seq);
		}
	}
	return rec.last_seq;
}

static bool
read_expectations(struct expect *j, struct expect *p)
{
	char line[128];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		char what;
		unsigned k;
		uint64_t acked, most;
		if (sscanf(line, "%c %u %" SCNu64 " %" SCNu64, &what, &k,
			   &acked, &most) != 4) {
			return false;
		}
		if (what == 'J' && k < K9_JOURNALS) {
			j[k] = (struct expect){ acked, most };
		} else if (what == 'P' && k < K9_PERSISTENT) {
			p[k] = (struct expect){ acked, most };
		} else {
			return false;
		}
	}
	return true;
}

int
main(int argc, char **argv)
{
	struct expect ej[K9_JOURNALS], ep[K9_PERSISTENT];
	uint64_t heads[K9_JOURNALS];
	tr_runtime *rt;
	tr_received r;
	tr_ref ref;

	memset(&r, 0, sizeof(r));
	if (argc != 3 ||
	    (strcmp(argv[2], "run") != 0 && strcmp(argv[2], "check") != 0)) {
		fprintf(stderr, "usage: kill9-writer DB run|check\n");
		return 2;
	}
	bool run = strcmp(argv[2], "run") == 0;
	/* A life the parent forgets to end ends itself. */
	if (run) {
		alarm(600);
	}
	memset(ej, 0, sizeof(ej));
	memset(ep, 0, sizeof(ep));
	if (!read_expectations(ej, ep)) {
		fprintf(stderr, "kill9-writer: bad expectations on stdin\n");
		return 2;
	}
	tr_config cfg = tr_config_default();
	cfg.workers = 2;
	if (tr_runtime_create(&cfg, &rt) != TR_OK ||
	    tr_runtime_start(rt) != TR_OK ||
	    tr_inbox_create(rt, &ib) != TR_OK) {
		fprintf(stderr, "kill9-writer: cannot start a runtime\n");
		return 2;
	}
	tr_store_config sc = { .size = sizeof(sc),
			       .path = argv[1],
			       .durability = TR_STORE_NORMAL };
	if (tr_store_start(tr_inbox_ctx(ib), &sc, &store, &ref) != TR_OK ||
	    outcome(ref, &r) != TR_MSG_STORE_REPLY) {
		const tr_store_error *e =
			r.size == sizeof(tr_store_error) ? r.data : NULL;
		FAIL("store %s does not open (type 0x%x): %s\n", argv[1],
		     r.type, e != NULL ? e->text : "");
		tr_received_fini(&r);
		say("CHECK FAILED\n");
		_exit(1);
	}
	tr_received_fini(&r);

	for (unsigned k = 0; k < K9_JOURNALS; k++) {
		heads[k] = check_journal(k, &ej[k]);
		say("HEAD J %u %" PRIu64 "\n", k, heads[k]);
	}
	for (unsigned k = 0; k < K9_PERSISTENT; k++) {
		uint64_t last = check_persistent(k, &ep[k]);
		say("HEAD P %u %" PRIu64 "\n", k, last);
	}
	if (failures > 0) {
		say("CHECK FAILED\n");
		_exit(1);
	}
	if (!run) {
		say("CHECKED\n");
		tr_inbox_destroy(ib);
		tr_runtime_stop(rt);
		int err = tr_runtime_join(rt);
		tr_runtime_destroy(rt);
		return err == TR_OK ? 0 : 1;
	}

	say("READY\n");
	tr_ctx *cx = tr_inbox_ctx(ib);
	for (unsigned k = 0; k < K9_JOURNALS; k++) {
		struct go g = { .store = store, .k = k, .next = heads[k] + 1 };
		tr_pid w;
		if (tr_spawn(cx, &jw_def, NULL, &w) != TR_OK ||
		    tr_send(cx, w, GO, &g, sizeof(g)) != TR_OK) {
			say("E J %u cannot start its writer\n", k);
		}
	}
	for (unsigned k = 0; k < K9_PERSISTENT; k++) {
		if (tr_send(cx, pas[k], GO, NULL, 0) != TR_OK) {
			say("E P %u cannot start it\n", k);
		}
	}
	/* Write until killed. */
	for (;;) {
		pause();
	}
}
