/*
 * store-bench: the store (<troupe/actors/store.h>) and persistent actors
 * (<troupe/actors/persist.h>) under load, one JSON line per run:
 *
 *     store-bench append WRITERS EVENTS
 *         WRITERS actors each append EVENTS / WRITERS events to a journal
 *         of their own, one at a time: append, wait for the
 *         acknowledgement, append again (TR_STORE_NORMAL). Reports the
 *         acknowledged events/s, the latency of each acknowledgement from
 *         the send to its arrival (p50, p99, max), and, in the same run,
 *         the limit: the same rows inserted by one thread with raw
 *         sqlite3 calls in one transaction into a second file that has
 *         the store's own tables (made by a store and closed), with the
 *         store's settings (WAL, synchronous=NORMAL). Two limits: the
 *         journal rows alone ("limit"), and the journal rows with the
 *         head row the store also writes for each event ("limit_head").
 *     store-bench recover ACTORS EVENTS SNAP_EVERY
 *         A file with ACTORS journals of EVENTS events each (and, with
 *         SNAP_EVERY > 0, a snapshot at the last multiple of SNAP_EVERY,
 *         the journal left whole) is written with raw sqlite3; then a
 *         store opens it and ACTORS persistent actors are started at
 *         once. Reports the time from the first start to the last
 *         TR_MSG_PERSIST_RECOVERED, and the events replayed per second.
 *
 * Workers from $BENCH_THREADS (default: online cores); files in $TMPDIR
 * (default /tmp), removed afterwards. The check: every acknowledgement
 * carries the sequence number its append asked for and the store counted
 * every write; every recovered state is the one its events give. Exit 0
 * when the check holds, 1 otherwise.
 */
#include <troupe/troupe.h>
#include <troupe/actors/persist.h>
#include <troupe/actors/store.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 600000

enum {
	GO = 1, /* struct go */
	DONE,   /* uint64_t: 0 ok, else the events that went wrong */
	GET,    /* request to a persistent actor: reply STATE */
	STATE,  /* struct sum */
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
remove_db(const char *path)
{
	static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
	char p[512];

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, tails[i]);
		(void)unlink(p);
	}
}

/* The 16 bytes of event @seq of writer @w. */
static void
event_bytes(uint32_t w, uint64_t seq, unsigned char out[16])
{
	uint64_t a = seq, b = ((uint64_t)w << 32) ^ (seq * 2654435761u);

	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
}

/* ---- the runtime, a store ------------------------------------------------ */

static tr_runtime *rt;
static tr_inbox *ib;

static bool
start_runtime(void)
{
	const char *th = getenv("BENCH_THREADS");
	tr_config cfg = tr_config_default();

	cfg.workers = th != NULL ? (unsigned)atoi(th)
				 : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	return tr_runtime_create(&cfg, &rt) == TR_OK &&
	       tr_runtime_start(rt) == TR_OK &&
	       tr_inbox_create(rt, &ib) == TR_OK;
}

static void
stop_runtime(void)
{
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	(void)tr_runtime_join(rt);
	tr_runtime_destroy(rt);
}

/* The outcome of @ref: its type (0 for none) and payload in @r. */
static uint32_t
outcome(tr_ref ref, tr_received *r)
{
	memset(r, 0, sizeof(*r));
	if (tr_inbox_recv(ib, &ref, WAIT_MS, r) != TR_OK) {
		return 0;
	}
	return r->type;
}

static bool
store_open(const char *path, tr_pid *out)
{
	tr_store_config c = { .size = sizeof(c),
			      .path = path,
			      .durability = TR_STORE_NORMAL };
	tr_received r;
	tr_ref ref;

	if (tr_store_start(tr_inbox_ctx(ib), &c, out, &ref) != TR_OK) {
		return false;
	}
	bool ok = outcome(ref, &r) == TR_MSG_STORE_REPLY;
	if (!ok && r.size == sizeof(tr_store_error)) {
		fprintf(stderr, "store-bench: %s\n",
			((const tr_store_error *)r.data)->text);
	}
	tr_received_fini(&r);
	return ok;
}

/* Stops the store and waits until it is gone (its teardown closed the
 * file). */
static void
store_close(tr_pid store)
{
	(void)tr_stop(tr_inbox_ctx(ib), store, TR_EXIT_NORMAL);
	(void)tr_runtime_wait_idle(rt, WAIT_MS);
}

static bool
store_stats(tr_pid store, tr_store_stats *out)
{
	tr_received r;
	tr_ref ref;

	memset(out, 0, sizeof(*out));
	if (tr_request(tr_inbox_ctx(ib), store, TR_MSG_STORE_STATS, NULL, 0, 0,
		       &ref) != TR_OK) {
		return false;
	}
	bool ok = outcome(ref, &r) == TR_MSG_STORE_STATS_REPLY &&
		  r.size == sizeof(*out);
	if (ok) {
		memcpy(out, r.data, sizeof(*out));
	}
	tr_received_fini(&r);
	return ok;
}

/* ---- append: writers ----------------------------------------------------- */

struct go {
	tr_pid store;
	tr_pid report;
	uint32_t w;
	uint64_t n;
	uint64_t *lat; /* n slots of this writer's latencies, in ns */
};

struct writer {
	struct go g;
	uint64_t done;
	uint64_t bad;
	uint64_t sent_at;
	tr_ref ref;
	tr_store_append_req *q; /* one request, reused */
};

static void
writer_send(tr_ctx *cx, struct writer *w)
{
	uint64_t seq = w->done + 1;

	w->q->seq = seq;
	event_bytes(w->g.w, seq, w->q->data);
	w->sent_at = now_ns();
	if (tr_request(cx, w->g.store, TR_MSG_STORE_APPEND, w->q,
		       sizeof(*w->q) + 16, 0, &w->ref) != TR_OK) {
		w->bad = w->g.n - w->done;
		(void)tr_send(cx, w->g.report, DONE, &w->bad, sizeof(w->bad));
	}
}

static void
writer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct writer *w = state;

	if (m->type == GO) {
		const struct go *g = TR_MSG_AS(m, struct go);
		if (g == NULL) {
			return;
		}
		w->g = *g;
		w->q = calloc(1, sizeof(*w->q) + 16);
		if (w->q == NULL) {
			abort();
		}
		snprintf(w->q->id, sizeof(w->q->id), "w/%u", g->w);
		w->q->size = 16;
		writer_send(cx, w);
		return;
	}
	if (!(m->flags & TR_MSG_F_REPLY) || m->ref.v != w->ref.v) {
		return;
	}
	uint64_t t = now_ns();
	const tr_store_reply *r = TR_MSG_AS(m, tr_store_reply);
	if (m->type != TR_MSG_STORE_REPLY || r == NULL ||
	    r->value != w->done + 1) {
		w->bad++;
	}
	w->g.lat[w->done] = t - w->sent_at;
	if (++w->done == w->g.n) {
		free(w->q);
		w->q = NULL;
		(void)tr_send(cx, w->g.report, DONE, &w->bad, sizeof(w->bad));
		return;
	}
	writer_send(cx, w);
}

static void
writer_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct writer *w = state;

	(void)cx;
	(void)reason;
	free(w->q);
}

static const tr_actor_def writer_def = {
	.size = sizeof(tr_actor_def),
	.name = "writer",
	.state_size = sizeof(struct writer),
	.teardown = writer_teardown,
	.handle = writer_handle,
};

/* The limit: the same rows by one thread in one transaction, with the
 * store's tables and settings; with @heads, the head row of each event
 * too. Seconds, or a negative number on failure. */
static double
raw_limit(const char *path, uint32_t writers, uint64_t per, bool heads)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *ins = NULL, *head = NULL;
	char id[32];
	unsigned char ev[16];
	double secs = -1;

	if (sqlite3_open(path, &h) != SQLITE_OK ||
	    sqlite3_exec(h,
			 "PRAGMA journal_mode = WAL; PRAGMA synchronous = "
			 "NORMAL",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "INSERT INTO troupe_journal (id, seq, data) "
			       "VALUES (?1, ?2, ?3)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "INSERT OR REPLACE INTO troupe_journal_head "
			       "(id, last_seq) VALUES (?1, ?2)",
			       -1, &head, NULL) != SQLITE_OK) {
		fprintf(stderr, "store-bench: raw: %s\n", sqlite3_errmsg(h));
		goto out;
	}
	uint64_t t0 = now_ns();
	if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		goto out;
	}
	/* In the order the store sees them: a round over the writers. */
	for (uint64_t seq = 1; seq <= per; seq++) {
		for (uint32_t w = 0; w < writers; w++) {
			int n = snprintf(id, sizeof(id), "w/%u", w);
			event_bytes(w, seq, ev);
			sqlite3_bind_text(ins, 1, id, n, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 2, (sqlite3_int64)seq);
			sqlite3_bind_blob(ins, 3, ev, sizeof(ev),
					  SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE) {
				goto out;
			}
			sqlite3_reset(ins);
			if (heads) {
				sqlite3_bind_text(head, 1, id, n,
						  SQLITE_STATIC);
				sqlite3_bind_int64(head, 2, (sqlite3_int64)seq);
				if (sqlite3_step(head) != SQLITE_DONE) {
					goto out;
				}
				sqlite3_reset(head);
			}
		}
	}
	if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		goto out;
	}
	secs = (double)(now_ns() - t0) * 1e-9;
out:
	if (secs < 0 && h != NULL) {
		fprintf(stderr, "store-bench: raw: %s\n", sqlite3_errmsg(h));
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(head);
	sqlite3_close(h);
	return secs;
}

/* A fresh file with the store's tables, for the limit. */
static double
limit_run(const char *dir, uint32_t writers, uint64_t per, bool heads)
{
	char path[512];
	tr_pid s;

	snprintf(path, sizeof(path), "%s/store-bench-limit-%d.db", dir,
		 (int)getpid());
	remove_db(path);
	if (!store_open(path, &s)) {
		return -1;
	}
	store_close(s);
	double secs = raw_limit(path, writers, per, heads);
	remove_db(path);
	return secs;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
bench_append(const char *dir, uint32_t writers, uint64_t events)
{
	uint64_t per = events / writers;
	uint64_t n = per * writers;
	char path[512];
	tr_pid store;

	if (per == 0) {
		fprintf(stderr, "store-bench: fewer events than writers\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/store-bench-%d.db", dir,
		 (int)getpid());
	remove_db(path);
	uint64_t *lat = calloc(n, sizeof(*lat));
	if (lat == NULL || !store_open(path, &store)) {
		fprintf(stderr, "store-bench: cannot start\n");
		return 2;
	}
	tr_ctx *cx = tr_inbox_ctx(ib);
	tr_pid *pids = calloc(writers, sizeof(*pids));
	for (uint32_t w = 0; pids != NULL && w < writers; w++) {
		if (tr_spawn(cx, &writer_def, NULL, &pids[w]) != TR_OK) {
			fprintf(stderr, "store-bench: cannot spawn\n");
			return 2;
		}
	}
	uint64_t t0 = now_ns();
	for (uint32_t w = 0; w < writers; w++) {
		struct go g = { .store = store,
				.report = tr_self(cx),
				.w = w,
				.n = per,
				.lat = lat + (uint64_t)w * per };
		if (tr_send(cx, pids[w], GO, &g, sizeof(g)) != TR_OK) {
			fprintf(stderr, "store-bench: cannot start a writer\n");
			return 2;
		}
	}
	uint64_t bad = 0;
	for (uint32_t done = 0; done < writers; done++) {
		tr_received r;
		uint64_t b = 1;
		if (tr_inbox_recv(ib, NULL, WAIT_MS, &r) != TR_OK) {
			fprintf(stderr, "store-bench: writers stuck\n");
			return 2;
		}
		if (r.type == DONE && r.size == sizeof(b)) {
			memcpy(&b, r.data, sizeof(b));
		}
		bad += b;
		tr_received_fini(&r);
	}
	double wall = (double)(now_ns() - t0) * 1e-9;
	tr_store_stats st;
	bool ok = store_stats(store, &st) && st.writes == n &&
		  st.write_errors == 0 && bad == 0;
	store_close(store);
	remove_db(path);

	double lim = limit_run(dir, writers, per, false);
	double lim_head = limit_run(dir, writers, per, true);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	double rate = (double)n / wall;
	double lrate = lim > 0 ? (double)n / lim : 0;
	double hrate = lim_head > 0 ? (double)n / lim_head : 0;
	printf("{\"impl\":\"troupe\",\"bench\":\"store_append\",\"threads\":%u,"
	       "\"writers\":%u,\"n\":%" PRIu64 ",\"wall_s\":%.6f,"
	       "\"rate\":%.1f,\"unit\":\"acked_events/s\","
	       "\"limit\":%.1f,\"ratio\":%.3f,\"limit_head\":%.1f,"
	       "\"ratio_head\":%.3f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,"
	       "\"lat_max_us\":%.1f,\"transactions\":%" PRIu64
	       ",\"batch_max\":%" PRIu64 ",\"check\":\"%s\"}\n",
	       tr_runtime_workers(rt), writers, n, wall, rate, lrate,
	       lrate > 0 ? rate / lrate : 0, hrate,
	       hrate > 0 ? rate / hrate : 0, (double)lat[n / 2] * 1e-3,
	       (double)lat[n - 1 - n / 100] * 1e-3, (double)lat[n - 1] * 1e-3,
	       st.transactions, st.batch_max,
	       ok && lim > 0 ? "ok" : "fail: a write went wrong");
	free(lat);
	free(pids);
	return ok && lim > 0 ? 0 : 1;
}

/* ---- recover: persistent actors ------------------------------------------ */

struct sum {
	uint64_t count;
	int64_t total;
	uint64_t chain;
};

static int64_t
value_of(uint32_t a, uint64_t seq)
{
	return (int64_t)((((uint64_t)a * 7919u) ^ (seq * 2654435761u)) % 1000u);
}

struct event {
	uint64_t seq;
	int64_t value;
};

static void
sum_apply(struct sum *s, uint64_t seq, const struct event *e)
{
	s->count = seq;
	s->total += e->value;
	s->chain = s->chain * 6364136223846793005ull + (uint64_t)e->value + seq;
}

static void
pa_apply(void *state, uint64_t seq, const void *event, size_t len)
{
	struct event e = { 0, 0 };

	if (len == sizeof(e)) {
		memcpy(&e, event, sizeof(e));
	}
	sum_apply(state, seq, &e);
}

static void
pa_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	if (m->type == GET) {
		(void)tr_reply(cx, m, STATE, state, sizeof(struct sum));
	}
}

static const tr_actor_def pa_actor = {
	.size = sizeof(tr_actor_def),
	.name = "recovering",
	.state_size = sizeof(struct sum),
	.handle = pa_handle,
};

/* The snapshot is the state's bytes. */
static const tr_persist_def pa_def = {
	.size = sizeof(tr_persist_def),
	.actor = &pa_actor,
	.apply = pa_apply,
};

static struct sum
fold(uint32_t a, uint64_t n)
{
	struct sum s = { 0, 0, 0 };

	for (uint64_t seq = 1; seq <= n; seq++) {
		struct event e = { seq, value_of(a, seq) };
		sum_apply(&s, seq, &e);
	}
	return s;
}

/* Writes the journals (and snapshots) with raw sqlite3 into a file that
 * has the store's tables. */
static bool
prepare(const char *path, uint32_t actors, uint64_t events, uint64_t every)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *ins = NULL, *head = NULL, *snap = NULL;
	char id[32];
	bool ok = false;
	uint64_t snap_at = every > 0 ? events / every * every : 0;

	if (sqlite3_open(path, &h) != SQLITE_OK ||
	    sqlite3_exec(h, "PRAGMA synchronous = NORMAL; BEGIN", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "INSERT INTO troupe_journal (id, seq, data) "
			       "VALUES (?1, ?2, ?3)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "INSERT INTO troupe_journal_head (id, last_seq) "
			       "VALUES (?1, ?2)",
			       -1, &head, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "INSERT INTO troupe_snapshot (id, seq, data) "
			       "VALUES (?1, ?2, ?3)",
			       -1, &snap, NULL) != SQLITE_OK) {
		goto out;
	}
	for (uint32_t a = 0; a < actors; a++) {
		int n = snprintf(id, sizeof(id), "r/%u", a);
		for (uint64_t seq = 1; seq <= events; seq++) {
			struct event e = { seq, value_of(a, seq) };
			sqlite3_bind_text(ins, 1, id, n, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 2, (sqlite3_int64)seq);
			sqlite3_bind_blob(ins, 3, &e, sizeof(e), SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE) {
				goto out;
			}
			sqlite3_reset(ins);
		}
		sqlite3_bind_text(head, 1, id, n, SQLITE_STATIC);
		sqlite3_bind_int64(head, 2, (sqlite3_int64)events);
		if (sqlite3_step(head) != SQLITE_DONE) {
			goto out;
		}
		sqlite3_reset(head);
		if (snap_at > 0) {
			struct sum s = fold(a, snap_at);
			sqlite3_bind_text(snap, 1, id, n, SQLITE_STATIC);
			sqlite3_bind_int64(snap, 2, (sqlite3_int64)snap_at);
			sqlite3_bind_blob(snap, 3, &s, sizeof(s),
					  SQLITE_STATIC);
			if (sqlite3_step(snap) != SQLITE_DONE) {
				goto out;
			}
			sqlite3_reset(snap);
		}
	}
	ok = sqlite3_exec(h, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", NULL,
			  NULL, NULL) == SQLITE_OK;
out:
	if (!ok) {
		fprintf(stderr, "store-bench: prepare: %s\n",
			h != NULL ? sqlite3_errmsg(h) : "no memory");
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(head);
	sqlite3_finalize(snap);
	sqlite3_close(h);
	return ok;
}

static int
bench_recover(const char *dir, uint32_t actors, uint64_t events, uint64_t every)
{
	char path[512];
	tr_pid store;

	snprintf(path, sizeof(path), "%s/store-bench-rec-%d.db", dir,
		 (int)getpid());
	remove_db(path);
	/* The store makes the tables; raw sqlite3 fills them. */
	if (!store_open(path, &store)) {
		return 2;
	}
	store_close(store);
	if (!prepare(path, actors, events, every)) {
		return 2;
	}
	uint64_t t_open = now_ns();
	if (!store_open(path, &store)) {
		return 2;
	}
	double open_s = (double)(now_ns() - t_open) * 1e-9;
	tr_ctx *cx = tr_inbox_ctx(ib);
	tr_pid *pids = calloc(actors, sizeof(*pids));
	tr_ref *refs = calloc(actors, sizeof(*refs));
	if (pids == NULL || refs == NULL) {
		return 2;
	}
	uint64_t t0 = now_ns();
	for (uint32_t a = 0; a < actors; a++) {
		char id[32];
		snprintf(id, sizeof(id), "r/%u", a);
		tr_persist_config c = { .size = sizeof(c),
					.store = store,
					.id = id,
					.snapshot_every = (uint32_t)every };
		if (tr_persist_start(cx, &pa_def, &c, &pids[a], &refs[a]) !=
		    TR_OK) {
			fprintf(stderr, "store-bench: cannot start\n");
			return 2;
		}
	}
	uint64_t replayed = 0, bad = 0;
	for (uint32_t a = 0; a < actors; a++) {
		tr_received r;
		tr_persist_recovered rec;
		memset(&rec, 0, sizeof(rec));
		if (outcome(refs[a], &r) == TR_MSG_PERSIST_RECOVERED &&
		    r.size == sizeof(rec)) {
			memcpy(&rec, r.data, sizeof(rec));
		}
		tr_received_fini(&r);
		replayed += rec.replayed;
		bad += rec.last_seq != events;
	}
	double wall = (double)(now_ns() - t0) * 1e-9;
	/* Every state is what its events give. */
	for (uint32_t a = 0; a < actors; a++) {
		tr_received r;
		tr_ref ref;
		struct sum got = { 0, 0, 0 }, want = fold(a, events);
		if (tr_request(cx, pids[a], GET, NULL, 0, 0, &ref) == TR_OK &&
		    outcome(ref, &r) == STATE && r.size == sizeof(got)) {
			memcpy(&got, r.data, sizeof(got));
		}
		tr_received_fini(&r);
		bad += got.count != want.count || got.total != want.total ||
		       got.chain != want.chain;
	}
	for (uint32_t a = 0; a < actors; a++) {
		(void)tr_stop(cx, pids[a], TR_EXIT_NORMAL);
	}
	store_close(store);
	remove_db(path);
	bool ok = bad == 0;
	printf("{\"impl\":\"troupe\",\"bench\":\"store_recover\","
	       "\"threads\":%u,\"actors\":%u,\"events\":%" PRIu64
	       ",\"snapshot_every\":%" PRIu64 ",\"replayed\":%" PRIu64
	       ",\"open_s\":%.6f,\"wall_s\":%.6f,\"rate\":%.1f,"
	       "\"unit\":\"replayed_events/s\",\"check\":\"%s\"}\n",
	       tr_runtime_workers(rt), actors, (uint64_t)actors * events, every,
	       replayed, open_s, wall, (double)replayed / wall,
	       ok ? "ok" : "fail: a state is wrong");
	free(pids);
	free(refs);
	return ok ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	const char *dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
	int rc = 2;

	if (argc < 2 || !start_runtime()) {
		fprintf(stderr, "usage: store-bench append WRITERS EVENTS\n"
				"       store-bench recover ACTORS EVENTS "
				"SNAP_EVERY\n");
		return 2;
	}
	if (strcmp(argv[1], "append") == 0 && argc == 4) {
		rc = bench_append(dir, (uint32_t)strtoul(argv[2], NULL, 10),
				  strtoull(argv[3], NULL, 10));
	} else if (strcmp(argv[1], "recover") == 0 && argc == 5) {
		rc = bench_recover(dir, (uint32_t)strtoul(argv[2], NULL, 10),
				   strtoull(argv[3], NULL, 10),
				   strtoull(argv[4], NULL, 10));
	} else {
		fprintf(stderr, "store-bench: unknown bench\n");
	}
	stop_runtime();
	return rc;
}
