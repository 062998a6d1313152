/*
 * Persistent actors (<troupe/actors/persist.h>) on a store: recovery from
 * the journal after a restart, snapshots every N events with and without
 * trimming (snapshot + replay gives the state a full replay gives, with a
 * state written by save/load and with the state's own bytes), messages
 * sent during recovery handled after TR_MSG_PERSIST_RECOVERED and in
 * order, two events in one turn, a snapshot on request, a refused event
 * (a full database) leaving the state as it was, the store stopping under
 * a waiting event (the actor stops, the command's requester gets its one
 * outcome), a recovery that fails, and the calls' checks.
 *
 * The probe is an inbox; every command is a request whose outcome it
 * takes by reference. Each test has its own database in a fresh
 * directory.
 */
#include <troupe/troupe.h>
#include <troupe/actors/persist.h>
#include <troupe/actors/store.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "fixture.h"

enum {
	ADD = 1,   /* request, int64_t n: persist n; reply TOTAL */
	ADD_TWICE, /* request, int64_t n: persist n twice in one turn */
	BIG,       /* request, a large event of zeros: reply TOTAL or ERR */
	GET,       /* request: reply TOTAL */
	TOTAL,     /* struct total */
	ERR,       /* int32_t status */
	TRY,       /* request: call tr_persist outside a persistent actor */
};

struct counter {
	int64_t total;
	uint64_t events;
	uint64_t last_seq; /* the seq apply saw last */
	uint64_t out_of_order;
};

struct total {
	int64_t total;
	uint64_t events;
};

/* What handlers report; handlers never CHECK. */
static atomic_uint first_type;   /* the first message a handler saw */
static atomic_int misuse_rc = 1; /* tr_persist from a plain actor */

static void
apply(void *state, uint64_t seq, const void *ev, size_t len)
{
	struct counter *c = state;
	int64_t n = 0;

	if (len == sizeof(n)) {
		memcpy(&n, ev, sizeof(n));
	}
	if (seq != c->last_seq + 1) {
		c->out_of_order++;
	}
	c->last_seq = seq;
	c->total += n;
	c->events++;
}

static void
reply_total(tr_ctx *cx, const tr_msg *m, const struct counter *c)
{
	struct total t = { .total = c->total, .events = c->events };

	(void)tr_reply(cx, m, TOTAL, &t, sizeof(t));
}

static void
counter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct counter *c = state;
	const int64_t *n = TR_MSG_AS(m, int64_t);
	unsigned none = 0;

	(void)atomic_compare_exchange_strong(&first_type, &none, m->type);
	switch (m->type) {
	case ADD:
		if (n != NULL && tr_persist(cx, m, n, sizeof(*n)) < 0) {
			int32_t st = TR_ENOMEM;
			(void)tr_reply(cx, m, ERR, &st, sizeof(st));
		}
		break;
	case ADD_TWICE:
		if (n != NULL) {
			(void)tr_persist(cx, NULL, n, sizeof(*n));
			(void)tr_persist(cx, m, n, sizeof(*n));
		}
		break;
	case BIG: {
		static const unsigned char zeros[64 * 1024];
		(void)tr_persist(cx, m, zeros, sizeof(zeros));
		break;
	}
	case GET:
		reply_total(cx, m, c);
		break;
	case TR_MSG_PERSISTED: {
		const tr_persist_done *d = TR_MSG_AS(m, tr_persist_done);
		if (d == NULL || !(m->flags & TR_MSG_F_REQUEST)) {
			break;
		}
		if (d->status == TR_OK) {
			reply_total(cx, m, c);
		} else {
			int32_t st = d->status;
			(void)tr_reply(cx, m, ERR, &st, sizeof(st));
		}
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def counter_actor = {
	.size = sizeof(tr_actor_def),
	.name = "counter",
	.state_size = sizeof(struct counter),
	.handle = counter_handle,
};

/* The state's own bytes are the snapshot. */
static const tr_persist_def counter_def = {
	.size = sizeof(tr_persist_def),
	.actor = &counter_actor,
	.apply = apply,
};

/* A snapshot in a format of its own: text. */
static tr_err
save_text(const void *state, void **out, size_t *len)
{
	const struct counter *c = state;
	char *buf = malloc(96);

	if (buf == NULL) {
		return TR_ENOMEM;
	}
	int n = snprintf(buf, 96, "%" PRId64 " %" PRIu64 " %" PRIu64, c->total,
			 c->events, c->last_seq);
	*out = buf;
	*len = (size_t)n;
	return TR_OK;
}

static tr_err
load_text(void *state, const void *data, size_t len)
{
	struct counter *c = state;
	char buf[96];

	if (len >= sizeof(buf)) {
		return TR_EINVAL;
	}
	memcpy(buf, data, len);
	buf[len] = '\0';
	if (sscanf(buf, "%" SCNd64 " %" SCNu64 " %" SCNu64, &c->total,
		   &c->events, &c->last_seq) != 3) {
		return TR_EINVAL;
	}
	return TR_OK;
}

static const tr_persist_def counter_text_def = {
	.size = sizeof(tr_persist_def),
	.actor = &counter_actor,
	.apply = apply,
	.save = save_text,
	.load = load_text,
};

/* A plain actor that tries tr_persist. */
static void
plain_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	int64_t n = 1;

	if (m->type == TRY) {
		atomic_store(&misuse_rc, tr_persist(cx, m, &n, sizeof(n)));
		(void)tr_reply(cx, m, TRY, NULL, 0);
	}
}

static const tr_actor_def plain_def = {
	.size = sizeof(tr_actor_def),
	.name = "plain",
	.handle = plain_handle,
};

/* ---- the probe's side ---------------------------------------------------- */

struct world {
	struct fx f;
	char dir[64];
	char path[96];
	tr_pid store;
};

static tr_ctx *
pcx(struct world *w)
{
	return tr_inbox_ctx(w->f.ib);
}

/* Takes the outcome of @ref: its type, and its payload copied to @out
 * when it has exactly @len bytes. */
static uint32_t
outcome(struct world *w, tr_ref ref, void *out, size_t len)
{
	tr_received r;
	uint32_t type = 0;

	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(w->f.ib, &ref, FX_REPLY_MS, &r) != TR_OK) {
		fprintf(stderr, "  no outcome of request %" PRIu64 "\n", ref.v);
		return 0;
	}
	type = r.type;
	if (out != NULL && r.size == len) {
		memcpy(out, r.data, len);
	} else if (out != NULL) {
		memset(out, 0, len);
	}
	tr_received_fini(&r);
	return type;
}

static void
store_open(struct world *w, uint32_t max_pages)
{
	tr_store_config cfg = { .size = sizeof(cfg),
				.path = w->path,
				.max_page_count = max_pages };
	tr_ref ref;

	CHECK_OK(tr_store_start(pcx(w), &cfg, &w->store, &ref));
	CHECK_EQ_INT(outcome(w, ref, NULL, 0), TR_MSG_STORE_REPLY);
}

static void
world_start(struct world *w, uint32_t max_pages)
{
	memset(w, 0, sizeof(*w));
	fx_start(&w->f, 2);
	snprintf(w->dir, sizeof(w->dir), "/tmp/troupe-persist-XXXXXX");
	CHECK(mkdtemp(w->dir) != NULL);
	snprintf(w->path, sizeof(w->path), "%s/db", w->dir);
	store_open(w, max_pages);
}

static void
world_finish(struct world *w)
{
	static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
	char p[128];

	CHECK_OK(tr_runtime_wait_idle(w->f.rt, FX_REPLY_MS));
	fx_finish(&w->f);
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", w->path, tails[i]);
		(void)unlink(p);
	}
	CHECK_OK(rmdir(w->dir));
}

/* Starts a persistent actor; its recovery report goes to @rec. */
static tr_pid
start(struct world *w, const tr_persist_def *def, const char *id,
      uint32_t every, bool trim, tr_persist_recovered *rec)
{
	tr_persist_config cfg = { .size = sizeof(cfg),
				  .store = w->store,
				  .id = id,
				  .snapshot_every = every,
				  .trim = trim };
	tr_pid pid = TR_PID_NONE;
	tr_ref ref;

	CHECK_OK(tr_persist_start(pcx(w), def, &cfg, &pid, &ref));
	CHECK_EQ_INT(outcome(w, ref, rec, sizeof(*rec)),
		     TR_MSG_PERSIST_RECOVERED);
	return pid;
}

/* A request @type with @n; the reply's total. */
static struct total
ask(struct world *w, tr_pid to, uint32_t type, int64_t n)
{
	struct total t = { 0 };
	tr_ref ref;

	CHECK_OK(tr_request(pcx(w), to, type, &n, sizeof(n), 0, &ref));
	CHECK_EQ_INT(outcome(w, ref, &t, sizeof(t)), TOTAL);
	return t;
}

/* Stops @pid and waits until the runtime is quiet (its teardown ran). */
static void
stop(struct world *w, tr_pid pid)
{
	CHECK_OK(tr_stop(pcx(w), pid, TR_EXIT_NORMAL));
	CHECK_OK(tr_runtime_wait_idle(w->f.rt, FX_REPLY_MS));
}

/* ---- tests -----------------------------------------------------------------
 */

/* Events persisted in one life are the state of the next. */
static void
test_recover_after_restart(void)
{
	struct world w;
	tr_persist_recovered rec;

	world_start(&w, 0);
	tr_pid a = start(&w, &counter_def, "c1", 0, false, &rec);
	CHECK_EQ_U64(rec.last_seq, 0);
	CHECK_EQ_U64(rec.replayed, 0);
	int64_t sum = 0;
	for (int64_t i = 1; i <= 100; i++) {
		sum += i;
		struct total t = ask(&w, a, ADD, i);
		CHECK_EQ_U64(t.total, sum);
		CHECK_EQ_U64(t.events, i);
	}
	struct total t = ask(&w, a, ADD_TWICE, 7);
	CHECK_EQ_U64(t.total, sum + 14);
	CHECK_EQ_U64(t.events, 102);
	stop(&w, a);

	a = start(&w, &counter_def, "c1", 0, false, &rec);
	CHECK_EQ_U64(rec.last_seq, 102);
	CHECK_EQ_U64(rec.replayed, 102);
	CHECK_EQ_U64(rec.snapshot_seq, 0);
	t = ask(&w, a, GET, 0);
	CHECK_EQ_U64(t.total, sum + 14);
	CHECK_EQ_U64(t.events, 102);
	/* Another id is another journal. */
	tr_pid b = start(&w, &counter_def, "c2", 0, false, &rec);
	CHECK_EQ_U64(rec.last_seq, 0);
	CHECK_EQ_U64(ask(&w, b, GET, 0).total, 0);
	world_finish(&w);
}

/*
 * The same 95 commands to three ids: snapshots every 10 events in the
 * state's own bytes (trimmed), in text (not trimmed), and none. After a
 * restart all three have the same state; the first two started from the
 * snapshot at 90, and the trimmed journal holds only what follows it.
 */
static void
test_snapshots(void)
{
	struct world w;
	tr_persist_recovered rec;
	const char *ids[] = { "snap-bytes", "snap-text", "full" };
	const tr_persist_def *defs[] = { &counter_def, &counter_text_def,
					 &counter_def };
	const uint32_t every[] = { 10, 10, 0 };
	const bool trim[] = { true, false, false };
	tr_pid p[3];

	world_start(&w, 0);
	for (int k = 0; k < 3; k++) {
		p[k] = start(&w, defs[k], ids[k], every[k], trim[k], &rec);
	}
	for (int64_t i = 1; i <= 95; i++) {
		for (int k = 0; k < 3; k++) {
			(void)ask(&w, p[k], ADD, i * i);
		}
	}
	for (int k = 0; k < 3; k++) {
		stop(&w, p[k]);
	}
	struct total want = { 0 };
	for (int64_t i = 1; i <= 95; i++) {
		want.total += i * i;
	}
	for (int k = 0; k < 3; k++) {
		p[k] = start(&w, defs[k], ids[k], every[k], trim[k], &rec);
		CHECK_EQ_U64(rec.last_seq, 95);
		CHECK_EQ_U64(rec.snapshot_seq, every[k] != 0 ? 90 : 0);
		CHECK_EQ_U64(rec.replayed, every[k] != 0 ? 5 : 95);
		struct total t = ask(&w, p[k], GET, 0);
		CHECK_EQ_U64(t.total, want.total);
		CHECK_EQ_U64(t.events, 95);
	}
	/* The trimmed journal starts after the snapshot; the other one is
	 * whole. */
	for (int k = 0; k < 2; k++) {
		tr_store_read_req q = { .after_seq = 0 };
		tr_received r;
		tr_ref ref;
		snprintf(q.id, sizeof(q.id), "%s", ids[k]);
		CHECK_OK(tr_request(pcx(&w), w.store, TR_MSG_STORE_READ, &q,
				    sizeof(q), 0, &ref));
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(w.f.ib, &ref, FX_REPLY_MS, &r));
		const tr_store_events *pg = r.data;
		CHECK(r.type == TR_MSG_STORE_EVENTS && pg != NULL);
		if (r.type == TR_MSG_STORE_EVENTS && pg != NULL) {
			CHECK_EQ_U64(pg->count, trim[k] ? 5 : 95);
			CHECK_EQ_U64(pg->events[0].seq, trim[k] ? 91 : 1);
			CHECK_EQ_U64(pg->last_seq, 95);
		}
		tr_received_fini(&r);
	}
	world_finish(&w);
}

/* Commands sent before recovery ends wait, and come after
 * TR_MSG_PERSIST_RECOVERED, in order. */
static void
test_messages_during_recovery(void)
{
	struct world w;
	tr_persist_recovered rec;
	tr_persist_config cfg = { .size = sizeof(cfg), .id = "early" };
	enum { N = 50 };
	tr_ref refs[N];

	world_start(&w, 0);
	tr_pid a = start(&w, &counter_def, "early", 0, false, &rec);
	for (int64_t i = 1; i <= 200; i++) {
		(void)ask(&w, a, ADD, 1);
	}
	stop(&w, a);

	atomic_store(&first_type, 0);
	cfg.store = w.store;
	tr_ref sref;
	CHECK_OK(tr_persist_start(pcx(&w), &counter_def, &cfg, &a, &sref));
	for (int i = 0; i < N; i++) {
		int64_t n = i + 1;
		CHECK_OK(tr_request(pcx(&w), a, ADD, &n, sizeof(n), 0,
				    &refs[i]));
	}
	CHECK_EQ_INT(outcome(&w, sref, &rec, sizeof(rec)),
		     TR_MSG_PERSIST_RECOVERED);
	CHECK_EQ_U64(rec.replayed, 200);
	int64_t sum = 200;
	for (int i = 0; i < N; i++) {
		struct total t;
		sum += i + 1;
		CHECK_EQ_INT(outcome(&w, refs[i], &t, sizeof(t)), TOTAL);
		CHECK_EQ_U64(t.total, sum);
		CHECK_EQ_U64(t.events, 201 + i);
	}
	CHECK_EQ_INT(atomic_load(&first_type), TR_MSG_PERSIST_RECOVERED);
	world_finish(&w);
}

/* TR_MSG_PERSIST_SNAPSHOT: answered once the snapshot is saved, with its
 * sequence number; the next start begins there. */
static void
test_snapshot_on_request(void)
{
	struct world w;
	tr_persist_recovered rec;
	tr_store_reply r = { 0 };
	tr_ref ref;

	world_start(&w, 0);
	tr_pid a = start(&w, &counter_text_def, "asked", 0, false, &rec);
	for (int64_t i = 1; i <= 12; i++) {
		(void)ask(&w, a, ADD, i);
	}
	CHECK_OK(tr_request(pcx(&w), a, TR_MSG_PERSIST_SNAPSHOT, NULL, 0, 0,
			    &ref));
	CHECK_EQ_INT(outcome(&w, ref, &r, sizeof(r)), TR_MSG_STORE_REPLY);
	CHECK_EQ_U64(r.value, 12);
	(void)ask(&w, a, ADD, 100);
	stop(&w, a);
	a = start(&w, &counter_text_def, "asked", 0, false, &rec);
	CHECK_EQ_U64(rec.snapshot_seq, 12);
	CHECK_EQ_U64(rec.replayed, 1);
	CHECK_EQ_U64(ask(&w, a, GET, 0).total, 78 + 100);
	world_finish(&w);
}

/* A full database refuses events: the handler hears the status, the state
 * keeps only what was committed, and so does the next life. */
static void
test_refused_event(void)
{
	struct world w;
	tr_persist_recovered rec;
	struct total last = { 0 };
	int refused = 0;

	world_start(&w, 64); /* pages: a few 64 KiB events fill it */
	tr_pid a = start(&w, &counter_def, "full", 0, false, &rec);
	last = ask(&w, a, ADD, 5);
	for (int i = 0; i < 64 && refused == 0; i++) {
		int64_t n = 0;
		tr_ref ref;
		union {
			struct total t;
			int32_t st;
		} u;
		CHECK_OK(tr_request(pcx(&w), a, BIG, &n, sizeof(n), 0, &ref));
		memset(&u, 0, sizeof(u));
		tr_received r;
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(w.f.ib, &ref, FX_REPLY_MS, &r));
		if (r.type == TOTAL && r.size == sizeof(u.t)) {
			memcpy(&last, r.data, sizeof(last));
		} else if (r.type == ERR && r.size == sizeof(u.st)) {
			memcpy(&u.st, r.data, sizeof(u.st));
			CHECK_EQ_INT(u.st, TR_EFULL);
			refused++;
		} else {
			CHECK(false);
		}
		tr_received_fini(&r);
	}
	CHECK(refused == 1);
	struct total t = ask(&w, a, GET, 0);
	CHECK_EQ_U64(t.events, last.events);
	CHECK_EQ_U64(t.total, 5);
	stop(&w, a);
	a = start(&w, &counter_def, "full", 0, false, &rec);
	CHECK_EQ_U64(rec.last_seq, last.events);
	CHECK_EQ_U64(ask(&w, a, GET, 0).events, last.events);
	world_finish(&w);
}

/* The store stops while an event waits: the actor stops (what the store
 * did is unknown), and the command's requester gets its one outcome. */
static void
test_store_gone(void)
{
	struct world w;
	tr_persist_recovered rec;
	tr_ref ref, mref;
	int64_t n = 3;

	world_start(&w, 0);
	tr_pid a = start(&w, &counter_def, "orphan", 0, false, &rec);
	(void)ask(&w, a, ADD, 1);
	stop(&w, w.store);
	CHECK_OK(tr_request(pcx(&w), a, ADD, &n, sizeof(n), 0, &ref));
	CHECK_EQ_INT(outcome(&w, ref, NULL, 0), TR_MSG_REQUEST_FAILED);
	/* The actor is gone: a request to it fails at once. */
	CHECK_OK(tr_request(pcx(&w), a, GET, NULL, 0, 0, &mref));
	CHECK_EQ_INT(outcome(&w, mref, NULL, 0), TR_MSG_REQUEST_FAILED);
	/* A start on the gone store fails its recovery, with an answer. */
	tr_persist_config cfg = { .size = sizeof(cfg),
				  .store = w.store,
				  .id = "orphan" };
	tr_store_error e;
	CHECK_OK(tr_persist_start(pcx(&w), &counter_def, &cfg, &a, &ref));
	CHECK_EQ_INT(outcome(&w, ref, &e, sizeof(e)), TR_MSG_STORE_ERROR);
	CHECK_EQ_INT(e.status, TR_ECLOSED);
	CHECK(strstr(e.text, "orphan") != NULL);
	world_finish(&w);
}

/* The calls' checks. */
static void
test_checks(void)
{
	struct world w;
	tr_pid pid;
	tr_ref ref;
	char long_id[TR_STORE_ID_SIZE + 1];

	world_start(&w, 0);
	tr_persist_config cfg = { .size = sizeof(cfg),
				  .store = w.store,
				  .id = "ok" };
	tr_persist_def no_apply = counter_def;
	no_apply.apply = NULL;
	CHECK_ERR(tr_persist_start(pcx(&w), &no_apply, &cfg, &pid, &ref),
		  TR_EINVAL);
	CHECK(tr_pid_is_none(pid));
	CHECK_ERR(tr_persist_start(pcx(&w), NULL, &cfg, &pid, &ref), TR_EINVAL);
	cfg.id = "";
	CHECK_ERR(tr_persist_start(pcx(&w), &counter_def, &cfg, &pid, &ref),
		  TR_EINVAL);
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	cfg.id = long_id;
	CHECK_ERR(tr_persist_start(pcx(&w), &counter_def, &cfg, &pid, &ref),
		  TR_EINVAL);
	cfg.id = "ok";
	cfg.store = TR_PID_NONE;
	CHECK_ERR(tr_persist_start(pcx(&w), &counter_def, &cfg, &pid, &ref),
		  TR_EINVAL);
	/* tr_persist outside a persistent actor's handler. */
	int64_t n = 1;
	CHECK_ERR(tr_persist(pcx(&w), NULL, &n, sizeof(n)), TR_EINVAL);
	tr_pid plain = fx_spawn(&w.f, &plain_def, NULL);
	CHECK_OK(tr_request(pcx(&w), plain, TRY, NULL, 0, 0, &ref));
	CHECK_EQ_INT(outcome(&w, ref, NULL, 0), TRY);
	CHECK_EQ_INT(atomic_load(&misuse_rc), TR_EINVAL);
	world_finish(&w);
}

static const struct test_case tests[] = {
	{ "persist: recover_after_restart", test_recover_after_restart },
	{ "persist: snapshots", test_snapshots },
	{ "persist: messages_during_recovery", test_messages_during_recovery },
	{ "persist: snapshot_on_request", test_snapshot_on_request },
	{ "persist: refused_event", test_refused_event },
	{ "persist: store_gone", test_store_gone },
	{ "persist: checks", test_checks },
	{ NULL, NULL },
};

TEST_MAIN(tests)
