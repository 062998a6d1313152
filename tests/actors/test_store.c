/*
 * Store (<troupe/actors/store.h>): key-value state, journals with
 * snapshots and trimming, the activity log, group commit over many
 * writers (every write acknowledged and present after a reopen, fewer
 * transactions than writes), a stop that commits and answers what the
 * store took, and the faults: requests it cannot understand, a file that
 * is not a database, a newer schema, a foreign one, a full database
 * (max_page_count), a lock another connection holds.
 *
 * The probe is an inbox: it starts stores and makes every request with
 * tr_request(), taking each outcome with tr_inbox_recv() and its
 * reference. Files live in a directory made with mkdtemp() and removed at
 * the end; the test opens them with SQLite itself to check what is on
 * disk and to hold a lock.
 */
#include <troupe/troupe.h>
#include <troupe/actors/store.h>

#include <dirent.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Generous, for the sanitizer builds on a busy machine: reaching one of
 * these deadlines is a failure. */
#define FX_REPLY_MS 60000
#include "harness.h"
#include "fixture.h"

#define WAIT_MS 60000

static char dir[64];

static void
dir_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/troupe-store-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "cannot make a temporary directory\n");
		exit(1);
	}
}

static void
dir_remove(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	}
	if (d != NULL) {
		closedir(d);
	}
	rmdir(dir);
}

static void
path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static bool
file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

/* The whole file, malloc'd, its size in *n; NULL if absent. */
static char *
file_read(const char *p, size_t *n)
{
	FILE *fp = fopen(p, "rb");

	if (fp == NULL) {
		return NULL;
	}
	fseek(fp, 0, SEEK_END);
	long len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *b = malloc((size_t)len + 1);
	*n = fread(b, 1, (size_t)len, fp);
	fclose(fp);
	return b;
}

/* ---- requests from the probe --------------------------------------------- */

static tr_received
call(struct fx *f, tr_pid to, uint32_t type, const void *p, size_t n)
{
	tr_ref ref = { 0 };
	tr_received r;

	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_request(tr_inbox_ctx(f->ib), to, type, p, n, 0, &ref));
	CHECK_OK(tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r));
	return r;
}

/* The outcome's status: TR_OK for a reply, the error's status, or 1 for
 * anything else (a failed request, a wrong type). */
static int
status_of(const tr_received *r)
{
	if (r->type == TR_MSG_STORE_ERROR) {
		const tr_store_error *e = TR_MSG_AS(r, tr_store_error);
		return e != NULL ? e->status : 1;
	}
	if (r->type == TR_MSG_REQUEST_FAILED) {
		return 1;
	}
	return TR_OK;
}

static const char *
error_text(const tr_received *r)
{
	const tr_store_error *e = TR_MSG_AS(r, tr_store_error);

	return e != NULL ? e->text : "";
}

/* The value of a TR_MSG_STORE_REPLY outcome (UINT64_MAX for another). */
static uint64_t
value_of(const tr_received *r)
{
	const tr_store_reply *v = TR_MSG_AS(r, tr_store_reply);

	return r->type == TR_MSG_STORE_REPLY && v != NULL ? v->value
							  : UINT64_MAX;
}

static tr_store_config
config(const char *path)
{
	tr_store_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.path = path;
	return c;
}

/* Starts a store and takes the start's outcome into *out. */
static tr_pid
start(struct fx *f, const tr_store_config *c, tr_received *out)
{
	tr_pid pid = TR_PID_NONE;
	tr_ref ref = { 0 };

	memset(out, 0, sizeof(*out));
	CHECK_OK(tr_store_start(tr_inbox_ctx(f->ib), c, &pid, &ref));
	CHECK_OK(tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, out));
	return pid;
}

static tr_pid
open_ok(struct fx *f, const tr_store_config *c)
{
	tr_received r;
	tr_pid pid = start(f, c, &r);

	CHECK_EQ_U64(r.type, TR_MSG_STORE_REPLY);
	if (r.type == TR_MSG_STORE_ERROR) {
		fprintf(stderr, "  start: %s\n", error_text(&r));
	}
	tr_received_fini(&r);
	return pid;
}

/* Stops the store and waits until it is gone (its file closed). */
static void
stop_store(struct fx *f, tr_pid s)
{
	CHECK_OK(tr_stop(tr_runtime_ctx(f->rt), s, TR_EXIT_SHUTDOWN));
	WAIT_UNTIL(!tr_actor_alive(f->rt, s), WAIT_MS);
}

static tr_received
put(struct fx *f, tr_pid s, const char *id, const void *v, size_t n)
{
	size_t sz = sizeof(tr_store_put_req) + n;
	tr_store_put_req *q = calloc(1, sz);

	snprintf(q->id, sizeof(q->id), "%s", id);
	q->size = n;
	memcpy(q->data, v, n);
	tr_received r = call(f, s, TR_MSG_STORE_PUT, q, sz);
	free(q);
	return r;
}

static int
put_str(struct fx *f, tr_pid s, const char *id, const char *v)
{
	tr_received r = put(f, s, id, v, strlen(v));
	int st = status_of(&r);

	tr_received_fini(&r);
	return st;
}

static tr_received
key_req(struct fx *f, tr_pid s, uint32_t type, const char *id)
{
	tr_store_key_req q;

	memset(&q, 0, sizeof(q));
	snprintf(q.id, sizeof(q.id), "%s", id);
	return call(f, s, type, &q, sizeof(q));
}

/* The value under @id as a string in @out (status returned). */
static int
get_str(struct fx *f, tr_pid s, const char *id, char *out, size_t n)
{
	tr_received r = key_req(f, s, TR_MSG_STORE_GET, id);
	int st = status_of(&r);

	out[0] = '\0';
	if (st == TR_OK) {
		const tr_store_value *v =
			TR_MSG_AS_FAM(&r, tr_store_value, size, data);
		CHECK(r.type == TR_MSG_STORE_VALUE && v != NULL);
		if (v != NULL && v->size < n) {
			memcpy(out, v->data, v->size);
			out[v->size] = '\0';
		}
	}
	tr_received_fini(&r);
	return st;
}

static tr_received
append(struct fx *f, tr_pid s, const char *id, uint64_t seq, const char *ev)
{
	size_t n = strlen(ev);
	size_t sz = sizeof(tr_store_append_req) + n;
	tr_store_append_req *q = calloc(1, sz);

	snprintf(q->id, sizeof(q->id), "%s", id);
	q->seq = seq;
	q->size = n;
	memcpy(q->data, ev, n);
	tr_received r = call(f, s, TR_MSG_STORE_APPEND, q, sz);
	free(q);
	return r;
}

static uint64_t
append_v(struct fx *f, tr_pid s, const char *id, uint64_t seq, const char *ev)
{
	tr_received r = append(f, s, id, seq, ev);
	uint64_t v = value_of(&r);

	tr_received_fini(&r);
	return v;
}

static tr_received
log_append(struct fx *f, tr_pid s, int64_t t, const char *kind,
	   const char *body)
{
	size_t n = strlen(body);
	size_t sz = sizeof(tr_store_log_req) + n;
	tr_store_log_req *q = calloc(1, sz);

	q->time_ms = t;
	snprintf(q->kind, sizeof(q->kind), "%s", kind);
	snprintf(q->actor, sizeof(q->actor), "actor-%s", kind);
	q->size = n;
	memcpy(q->body, body, n);
	tr_received r = call(f, s, TR_MSG_STORE_LOG_APPEND, q, sz);
	free(q);
	return r;
}

static tr_store_stats
stats(struct fx *f, tr_pid s)
{
	tr_store_stats st;
	tr_received r = call(f, s, TR_MSG_STORE_STATS, NULL, 0);
	const tr_store_stats *p = TR_MSG_AS(&r, tr_store_stats);

	memset(&st, 0, sizeof(st));
	CHECK(r.type == TR_MSG_STORE_STATS_REPLY && p != NULL);
	if (p != NULL) {
		st = *p;
	}
	tr_received_fini(&r);
	return st;
}

/* A count from the file itself, through a connection of the test's. */
static int64_t
sql_count(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* ---- tests --------------------------------------------------------------- */

static void
test_start_checks(void)
{
	struct fx f;
	tr_pid pid;
	tr_ref ref;

	fx_start(&f, 2);
	tr_store_config c = config(NULL);
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	CHECK(tr_pid_is_none(pid));
	c = config("");
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	c = config("x.db");
	c.durability = 7;
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	c = config("x.db");
	c.size = 8;
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), NULL, &pid, &ref),
		  TR_EINVAL);
	CHECK_EQ_U64(ref.v, 0);
	/* Only an actor can be linked. */
	char p[256], v[16];
	path_of(p, sizeof(p), "quiet.db");
	c = config(p);
	c.is_linked = true;
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	CHECK(tr_pid_is_none(pid));
	/* On the runtime's context nobody hears of the start, and the
	 * store works all the same. */
	c.is_linked = false;
	CHECK_OK(tr_store_start(tr_runtime_ctx(f.rt), &c, &pid, &ref));
	CHECK_EQ_U64(ref.v, 0);
	CHECK_EQ_INT(put_str(&f, pid, "k", "v"), TR_OK);
	CHECK_EQ_INT(get_str(&f, pid, "k", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "v");
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

static void
test_kv(void)
{
	struct fx f;
	char p[256], v[64];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "kv.db");
	tr_store_config c = config(p);
	c.durability = TR_STORE_FULL;
	/* A write sent before the start's answer waits and is carried out. */
	tr_pid s = TR_PID_NONE;
	tr_ref sref = { 0 }, pref = { 0 };
	tr_received r;
	struct {
		tr_store_put_req q;
		char v[8];
	} early;
	memset(&early, 0, sizeof(early));
	snprintf(early.q.id, sizeof(early.q.id), "early");
	early.q.size = 5;
	memcpy(early.v, "first", 5);
	CHECK_OK(tr_store_start(tr_inbox_ctx(f.ib), &c, &s, &sref));
	CHECK_OK(tr_request(tr_inbox_ctx(f.ib), s, TR_MSG_STORE_PUT, &early,
			    sizeof(early.q) + 5, 0, &pref));
	tr_store_reply ack;
	CHECK(fx_recv_ref(&f, sref, TR_MSG_STORE_REPLY, s, &ack, sizeof(ack)));
	CHECK(fx_recv_ref(&f, pref, TR_MSG_STORE_REPLY, s, &ack, sizeof(ack)));
	CHECK_EQ_INT(get_str(&f, s, "early", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "first");

	CHECK_EQ_INT(put_str(&f, s, "counter/1", "one"), TR_OK);
	CHECK_EQ_INT(put_str(&f, s, "counter/2", "two"), TR_OK);
	CHECK_EQ_INT(put_str(&f, s, "counter/1", "uno"), TR_OK);
	CHECK_EQ_INT(put_str(&f, s, "empty", ""), TR_OK);
	CHECK_EQ_INT(get_str(&f, s, "counter/1", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "uno");
	CHECK_EQ_INT(get_str(&f, s, "counter/2", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "two");
	CHECK_EQ_INT(get_str(&f, s, "empty", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "");
	CHECK_EQ_INT(get_str(&f, s, "nobody", v, sizeof(v)), TR_ENOENT);

	r = key_req(&f, s, TR_MSG_STORE_DELETE, "counter/2");
	CHECK_EQ_U64(value_of(&r), 1);
	tr_received_fini(&r);
	r = key_req(&f, s, TR_MSG_STORE_DELETE, "counter/2");
	CHECK_EQ_U64(value_of(&r), 0);
	tr_received_fini(&r);
	CHECK_EQ_INT(get_str(&f, s, "counter/2", v, sizeof(v)), TR_ENOENT);

	/* Another store on the same file sees it all after a stop. */
	stop_store(&f, s);
	s = open_ok(&f, &c);
	CHECK_EQ_INT(get_str(&f, s, "counter/1", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "uno");
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.reads, 1);
	CHECK_EQ_U64(st.writes, 0);
	CHECK_EQ_U64(st.transactions, 0);
	CHECK_EQ_INT(sql_count(p, "PRAGMA user_version"),
		     TR_STORE_SCHEMA_VERSION);
	fx_finish(&f);
}

/* Reads every event of @id after @after in pages of @count (and
 * @bytes), checking the pages; returns the events in @seqs/@bodies. */
static uint32_t
read_all(struct fx *f, tr_pid s, const char *id, uint64_t after, uint32_t count,
	 uint32_t bytes, uint64_t *seqs, char bodies[][16], uint32_t max,
	 uint64_t *last)
{
	uint32_t n = 0;

	for (int guard = 0; guard < 100; guard++) {
		tr_store_read_req q;
		memset(&q, 0, sizeof(q));
		snprintf(q.id, sizeof(q.id), "%s", id);
		q.after_seq = after;
		q.max_count = count;
		q.max_bytes = bytes;
		tr_received r = call(f, s, TR_MSG_STORE_READ, &q, sizeof(q));
		CHECK_EQ_U64(r.type, TR_MSG_STORE_EVENTS);
		if (r.type != TR_MSG_STORE_EVENTS) {
			tr_received_fini(&r);
			return n;
		}
		const tr_store_events *p = r.data;
		CHECK(r.size >= sizeof(*p) + p->count * sizeof(p->events[0]));
		CHECK(p->count <= count || count == 0);
		*last = p->last_seq;
		for (uint32_t i = 0; i < p->count && n < max; i++) {
			const tr_store_event *e = &p->events[i];
			CHECK(e->offset + e->size <= r.size);
			seqs[n] = e->seq;
			snprintf(bodies[n], 16, "%.*s", (int)e->size,
				 (const char *)r.data + e->offset);
			after = e->seq;
			n++;
		}
		bool more = p->more != 0;
		tr_received_fini(&r);
		if (!more) {
			return n;
		}
	}
	CHECK(!"read_all: too many pages");
	return n;
}

static void
test_journal(void)
{
	struct fx f;
	char p[256], ev[16];
	uint64_t seqs[32], last = 0;
	char bodies[32][16];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "journal.db");
	tr_store_config c = config(p);
	tr_pid s = open_ok(&f, &c);

	for (uint64_t i = 1; i <= 10; i++) {
		snprintf(ev, sizeof(ev), "e%llu", (unsigned long long)i);
		CHECK_EQ_U64(append_v(&f, s, "acct", 0, ev), i);
	}
	/* An explicit sequence number must be the next one. */
	tr_received r = append(&f, s, "acct", 5, "late");
	CHECK_EQ_INT(status_of(&r), TR_EEXIST);
	tr_received_fini(&r);
	CHECK_EQ_U64(append_v(&f, s, "acct", 11, "e11"), 11);
	CHECK_EQ_U64(append_v(&f, s, "other", 1, "o1"), 1);

	uint32_t n = read_all(&f, s, "acct", 0, 4, 0, seqs, bodies, 32, &last);
	CHECK_EQ_U64(n, 11);
	CHECK_EQ_U64(last, 11);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(ev, sizeof(ev), "e%u", i + 1);
		CHECK_EQ_U64(seqs[i], i + 1);
		CHECK_STR(bodies[i], ev);
	}
	/* A byte limit of 1: one event per page, all of them in the end. */
	n = read_all(&f, s, "acct", 8, 0, 1, seqs, bodies, 32, &last);
	CHECK_EQ_U64(n, 3);
	CHECK_EQ_U64(seqs[0], 9);
	CHECK_STR(bodies[2], "e11");
	/* A journal never written: an empty page. */
	n = read_all(&f, s, "nobody", 0, 0, 0, seqs, bodies, 32, &last);
	CHECK_EQ_U64(n, 0);
	CHECK_EQ_U64(last, 0);

	/* Snapshot at 6, then trim up to it. */
	size_t sz = sizeof(tr_store_snapshot_req) + 6;
	tr_store_snapshot_req *q = calloc(1, sz);
	snprintf(q->id, sizeof(q->id), "acct");
	q->seq = 6;
	q->size = 6;
	memcpy(q->data, "state6", 6);
	r = call(&f, s, TR_MSG_STORE_SNAPSHOT_SAVE, q, sz);
	CHECK_EQ_U64(value_of(&r), 0);
	tr_received_fini(&r);
	q->seq = 3; /* older than the one kept */
	r = call(&f, s, TR_MSG_STORE_SNAPSHOT_SAVE, q, sz);
	CHECK_EQ_INT(status_of(&r), TR_EEXIST);
	tr_received_fini(&r);
	free(q);

	r = key_req(&f, s, TR_MSG_STORE_SNAPSHOT_LOAD, "acct");
	const tr_store_snapshot *snap =
		TR_MSG_AS_FAM(&r, tr_store_snapshot, size, data);
	CHECK(r.type == TR_MSG_STORE_SNAPSHOT && snap != NULL);
	if (snap != NULL) {
		CHECK_EQ_U64(snap->seq, 6);
		CHECK(snap->size == 6 && memcmp(snap->data, "state6", 6) == 0);
	}
	tr_received_fini(&r);
	r = key_req(&f, s, TR_MSG_STORE_SNAPSHOT_LOAD, "other");
	CHECK_EQ_INT(status_of(&r), TR_ENOENT);
	tr_received_fini(&r);

	tr_store_trim_req t;
	memset(&t, 0, sizeof(t));
	snprintf(t.id, sizeof(t.id), "acct");
	t.to_seq = 6;
	r = call(&f, s, TR_MSG_STORE_TRIM, &t, sizeof(t));
	CHECK_EQ_U64(value_of(&r), 6);
	tr_received_fini(&r);
	n = read_all(&f, s, "acct", 0, 0, 0, seqs, bodies, 32, &last);
	CHECK_EQ_U64(n, 5);
	CHECK_EQ_U64(seqs[0], 7);
	CHECK_EQ_U64(last, 11);
	/* The numbers go on after a trim, and after a reopen. */
	stop_store(&f, s);
	s = open_ok(&f, &c);
	CHECK_EQ_U64(append_v(&f, s, "acct", 0, "e12"), 12);
	n = read_all(&f, s, "acct", 6, 0, 0, seqs, bodies, 32, &last);
	CHECK_EQ_U64(n, 6);
	CHECK_STR(bodies[5], "e12");
	CHECK_EQ_U64(sql_count(p, "SELECT count(*) FROM troupe_journal"), 7);

	/* A trim that takes every event keeps the journal's head. */
	memset(&t, 0, sizeof(t));
	snprintf(t.id, sizeof(t.id), "other");
	t.to_seq = 1;
	r = call(&f, s, TR_MSG_STORE_TRIM, &t, sizeof(t));
	CHECK_EQ_U64(value_of(&r), 1);
	tr_received_fini(&r);
	/* A file of version 1 kept a head row per journal: it still
	 * counts ("old" had 9 events, all trimmed). */
	stop_store(&f, s);
	sql_exec(p, "INSERT INTO troupe_journal_head (id, last_seq) "
		    "VALUES ('old', 9); PRAGMA user_version = 1;");
	s = open_ok(&f, &c);
	CHECK_EQ_INT(sql_count(p, "PRAGMA user_version"),
		     TR_STORE_SCHEMA_VERSION);
	CHECK_EQ_U64(append_v(&f, s, "other", 0, "o2"), 2);
	CHECK_EQ_U64(append_v(&f, s, "old", 0, "x"), 10);
	CHECK_EQ_U64(append_v(&f, s, "acct", 0, "e13"), 13);
	fx_finish(&f);
}

/* Queries the log, every page, returning the record ids in @ids. */
static uint32_t
query_all(struct fx *f, tr_pid s, int64_t from, int64_t to, const char *kind,
	  uint32_t limit, uint64_t *ids, int *is, uint32_t max)
{
	uint32_t n = 0;
	uint64_t after = 0;

	for (int guard = 0; guard < 100; guard++) {
		tr_store_log_query q;
		memset(&q, 0, sizeof(q));
		q.from_ms = from;
		q.to_ms = to;
		snprintf(q.kind, sizeof(q.kind), "%s", kind);
		q.after_id = after;
		q.limit = limit;
		tr_received r =
			call(f, s, TR_MSG_STORE_LOG_QUERY, &q, sizeof(q));
		CHECK_EQ_U64(r.type, TR_MSG_STORE_LOG);
		if (r.type != TR_MSG_STORE_LOG) {
			tr_received_fini(&r);
			return n;
		}
		const tr_store_log_page *p = r.data;
		CHECK(p->count <= limit);
		for (uint32_t i = 0; i < p->count && n < max; i++) {
			const tr_store_log_record *rec = &p->records[i];
			const char *body =
				(const char *)r.data + rec->body_offset;
			CHECK(rec->body_offset + rec->body_size < r.size);
			CHECK_EQ_U64(strlen(body), rec->body_size);
			CHECK(kind[0] == '\0' || strcmp(rec->kind, kind) == 0);
			CHECK(rec->time_ms >= from &&
			      (to == 0 || rec->time_ms < to));
			int i_ = -1;
			CHECK(sscanf(body, "{\"i\":%d}", &i_) == 1);
			char actor[TR_STORE_ACTOR_SIZE];
			snprintf(actor, sizeof(actor), "actor-%s", rec->kind);
			CHECK_STR(rec->actor, actor);
			ids[n] = rec->id;
			is[n] = i_;
			after = rec->id;
			n++;
		}
		bool more = p->more != 0;
		tr_received_fini(&r);
		if (!more) {
			return n;
		}
	}
	CHECK(!"query_all: too many pages");
	return n;
}

static void
test_log(void)
{
	struct fx f;
	char p[256], body[32];
	uint64_t ids[32];
	int is[32];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "log.db");
	tr_store_config c = config(p);
	tr_pid s = open_ok(&f, &c);

	uint64_t prev = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "{\"i\":%d}", i);
		tr_received r =
			log_append(&f, s, 1000 + i * 100,
				   i % 2 == 0 ? "task" : "result", body);
		uint64_t id = value_of(&r);
		CHECK(id != UINT64_MAX && id > prev);
		prev = id;
		tr_received_fini(&r);
	}
	const char *bad[] = { "{bad", "{} x", "", "[1,", "\"open" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tr_received r = log_append(&f, s, 5000, "task", bad[i]);
		CHECK_EQ_INT(status_of(&r), TR_EINVAL);
		tr_received_fini(&r);
	}
	uint32_t n = query_all(&f, s, 0, 0, "", 3, ids, is, 32);
	CHECK_EQ_U64(n, 10);
	for (uint32_t i = 0; i < n; i++) {
		CHECK_EQ_INT(is[i], (int)i);
	}
	/* Kind "task" in [1200, 1700): i = 2, 4, 6. */
	n = query_all(&f, s, 1200, 1700, "task", 2, ids, is, 32);
	CHECK_EQ_U64(n, 3);
	CHECK_EQ_INT(is[0], 2);
	CHECK_EQ_INT(is[2], 6);

	tr_store_prune_req q = { .before_ms = 1300, .keep = 0 };
	tr_received r = call(&f, s, TR_MSG_STORE_LOG_PRUNE, &q, sizeof(q));
	CHECK_EQ_U64(value_of(&r), 3);
	tr_received_fini(&r);
	q.before_ms = 0;
	q.keep = 4;
	r = call(&f, s, TR_MSG_STORE_LOG_PRUNE, &q, sizeof(q));
	CHECK_EQ_U64(value_of(&r), 3);
	tr_received_fini(&r);
	n = query_all(&f, s, 0, 0, "", 100, ids, is, 32);
	CHECK_EQ_U64(n, 4);
	CHECK_EQ_INT(is[0], 6);
	CHECK_EQ_INT(is[3], 9);
	/* Ids are not reused after a prune. */
	r = log_append(&f, s, 9000, "task", "{\"i\":10}");
	CHECK(value_of(&r) > prev && value_of(&r) != UINT64_MAX);
	tr_received_fini(&r);
	fx_finish(&f);
}

enum { MSG_STRANGE = 77 };

static void
test_bad_requests(void)
{
	struct fx f;
	char p[256], v[64];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "bad.db");
	tr_store_config c = config(p);
	tr_pid s = open_ok(&f, &c);
	unsigned char junk[300];
	memset(junk, 'a', sizeof(junk));

	/* A payload of the wrong size. */
	tr_received r = call(&f, s, TR_MSG_STORE_GET, junk, 10);
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	CHECK(strstr(error_text(&r), p) != NULL);
	tr_received_fini(&r);
	/* A put whose counted size does not add up. */
	tr_store_put_req *pq = calloc(1, sizeof(*pq) + 8);
	snprintf(pq->id, sizeof(pq->id), "k");
	pq->size = 9;
	r = call(&f, s, TR_MSG_STORE_PUT, pq, sizeof(*pq) + 8);
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	tr_received_fini(&r);
	pq->size = UINT64_MAX; /* no overflow either */
	r = call(&f, s, TR_MSG_STORE_PUT, pq, sizeof(*pq) + 8);
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	tr_received_fini(&r);
	free(pq);
	/* A type the store does not know. */
	r = call(&f, s, TR_MSG_STORE_BASE + 0x50u, NULL, 0);
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	tr_received_fini(&r);
	r = call(&f, s, MSG_STRANGE, junk, 4);
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	tr_received_fini(&r);
	/* An id too long (no NUL in its array), and an empty one. */
	tr_store_key_req k;
	memset(k.id, 'x', sizeof(k.id));
	r = call(&f, s, TR_MSG_STORE_GET, &k, sizeof(k));
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	CHECK(strstr(error_text(&r), "id too long") != NULL);
	tr_received_fini(&r);
	memset(&k, 0, sizeof(k));
	r = call(&f, s, TR_MSG_STORE_DELETE, &k, sizeof(k));
	CHECK_EQ_INT(status_of(&r), TR_EINVAL);
	tr_received_fini(&r);
	/* A plain message it cannot use is a dead letter, counted. */
	uint64_t dead = fx_metrics(&f).dead_letters;
	SEND(&f, s, MSG_STRANGE, junk, 3);
	/* Still working. */
	CHECK_EQ_INT(put_str(&f, s, "k", "v"), TR_OK);
	CHECK_EQ_INT(get_str(&f, s, "k", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "v");
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.unhandled, 8);
	CHECK_EQ_U64(st.writes, 1);
	CHECK(fx_metrics(&f).dead_letters >= dead + 1);
	fx_finish(&f);
}

/* A start that must be refused with @status and a text that names the
 * file and holds @why; the file must be as it was. */
static void
refused(struct fx *f, const char *path, int status, const char *why)
{
	size_t n0 = 0, n1 = 0;
	char *before = file_read(path, &n0);
	char wal[300];
	tr_received r;
	tr_store_config c = config(path);

	tr_pid s = TR_PID_NONE;
	tr_ref sref = { 0 }, qref = { 0 };
	tr_store_key_req q;

	/* A request sent at once waits for the open, and gets the open's
	 * error (or, if it came after the store stopped, a failure). */
	memset(&q, 0, sizeof(q));
	snprintf(q.id, sizeof(q.id), "k");
	CHECK_OK(tr_store_start(tr_inbox_ctx(f->ib), &c, &s, &sref));
	CHECK_OK(tr_request(tr_inbox_ctx(f->ib), s, TR_MSG_STORE_GET, &q,
			    sizeof(q), 0, &qref));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f->ib, &qref, FX_REPLY_MS, &r));
	CHECK(r.type == TR_MSG_REQUEST_FAILED ||
	      (r.type == TR_MSG_STORE_ERROR && status_of(&r) == status));
	tr_received_fini(&r);
	CHECK_OK(tr_inbox_recv(f->ib, &sref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_STORE_ERROR);
	CHECK_EQ_INT(status_of(&r), status);
	CHECK(strstr(error_text(&r), path) != NULL);
	CHECK(strstr(error_text(&r), why) != NULL);
	if (strstr(error_text(&r), why) == NULL) {
		fprintf(stderr, "  text: %s\n", error_text(&r));
	}
	tr_received_fini(&r);
	WAIT_UNTIL(!tr_actor_alive(f->rt, s), WAIT_MS);
	char *after = file_read(path, &n1);
	CHECK(before != NULL && after != NULL && n0 == n1 &&
	      memcmp(before, after, n0) == 0);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	CHECK(!file_exists(wal));
	free(before);
	free(after);
}

static void
test_not_a_database(void)
{
	struct fx f;
	char p[256];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "notes.txt");
	FILE *fp = fopen(p, "w");
	for (int i = 0; i < 200; i++) {
		fprintf(fp, "line %d: this is a text file, not a database\n",
			i);
	}
	fclose(fp);
	refused(&f, p, TR_EREJECTED, "not a database");
	fx_finish(&f);
}

static void
test_newer_schema(void)
{
	struct fx f;
	char p[256];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "newer.db");
	sql_exec(p, "PRAGMA application_id = 1414680659;"
		    "CREATE TABLE troupe_kv (id TEXT PRIMARY KEY, value BLOB);"
		    "CREATE TABLE troupe_future (x);"
		    "PRAGMA user_version = 99;");
	refused(&f, p, TR_EREJECTED, "newer");
	CHECK_EQ_INT(sql_count(p, "PRAGMA user_version"), 99);
	fx_finish(&f);
}

static void
test_foreign_schema(void)
{
	struct fx f;
	char p[256];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "foreign.db");
	sql_exec(p, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
		    "INSERT INTO users (name) VALUES ('ada');");
	refused(&f, p, TR_EREJECTED, "foreign schema");
	CHECK_EQ_INT(sql_count(p, "SELECT count(*) FROM users"), 1);
	/* Another application's versioned file is foreign too. */
	path_of(p, sizeof(p), "foreign2.db");
	sql_exec(p, "CREATE TABLE t (x); PRAGMA user_version = 1;");
	refused(&f, p, TR_EREJECTED, "foreign schema");
	fx_finish(&f);
}

static void
test_full(void)
{
	struct fx f;
	char p[256], id[32], v[64];
	unsigned char big[3000];
	bool acked[200];
	int nacked = 0, full = 0;

	fx_start(&f, 2);
	path_of(p, sizeof(p), "full.db");
	tr_store_config c = config(p);
	c.max_page_count = 24;
	tr_pid s = open_ok(&f, &c);
	memset(big, 'b', sizeof(big));
	memset(acked, 0, sizeof(acked));
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "big/%d", i);
		tr_received r = put(&f, s, id, big, sizeof(big));
		int st = status_of(&r);
		if (st == TR_OK) {
			acked[i] = true;
			nacked++;
		} else {
			CHECK_EQ_INT(st, TR_EFULL);
			const tr_store_error *e = TR_MSG_AS(&r, tr_store_error);
			CHECK(e != NULL && (e->code & 0xff) == SQLITE_FULL);
			CHECK(strstr(error_text(&r), p) != NULL);
			full++;
		}
		tr_received_fini(&r);
	}
	CHECK(nacked > 0);
	CHECK(full > 0);
	/* The store and the node keep working: reads are answered. */
	CHECK_EQ_INT(get_str(&f, s, "nobody", v, sizeof(v)), TR_ENOENT);
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.writes, (uint64_t)nacked);
	CHECK_EQ_U64(st.write_errors, (uint64_t)full);
	stop_store(&f, s);

	/* Nothing acknowledged was lost, nothing refused was written. */
	c.max_page_count = 0;
	s = open_ok(&f, &c);
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "big/%d", i);
		tr_received r = key_req(&f, s, TR_MSG_STORE_GET, id);
		CHECK_EQ_INT(status_of(&r), acked[i] ? TR_OK : TR_ENOENT);
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(put_str(&f, s, "after", "room"), TR_OK);
	fx_finish(&f);
}

/* Writes in flight together, so that transactions hold several: the
 * ones that do not fit fail alone, and the others of their transaction
 * are on disk. */
static void
test_full_batch(void)
{
	enum { N = 120 };
	struct fx f;
	char p[256], id[32];
	static unsigned char big[3000];
	tr_ref refs[N];
	int outcome[N]; /* 1 acknowledged, 0 refused as full */
	int nacked = 0, nfull = 0;

	fx_start(&f, 2);
	path_of(p, sizeof(p), "fullbatch.db");
	tr_store_config c = config(p);
	c.max_page_count = 24;
	tr_pid s = open_ok(&f, &c);
	memset(big, 'b', sizeof(big));
	for (int i = 0; i < N; i++) {
		size_t n = i % 2 == 0 ? sizeof(big) : 1;
		size_t sz = sizeof(tr_store_put_req) + n;
		tr_store_put_req *q = calloc(1, sz);
		snprintf(q->id, sizeof(q->id), "fb/%d", i);
		q->size = n;
		memcpy(q->data, big, n);
		CHECK_OK(tr_request(tr_inbox_ctx(f.ib), s, TR_MSG_STORE_PUT, q,
				    sz, 0, &refs[i]));
		free(q);
	}
	for (int i = 0; i < N; i++) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(f.ib, &refs[i], FX_REPLY_MS, &r));
		int st = status_of(&r);
		CHECK(st == TR_OK || st == TR_EFULL);
		outcome[i] = st == TR_OK;
		nacked += st == TR_OK;
		nfull += st == TR_EFULL;
		tr_received_fini(&r);
	}
	CHECK(nacked > 0);
	CHECK(nfull > 0);
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.writes, (uint64_t)nacked);
	CHECK_EQ_U64(st.write_errors, (uint64_t)nfull);
	fprintf(stderr, "  %d acknowledged, %d full, batches of up to %llu\n",
		nacked, nfull, (unsigned long long)st.batch_max);
	stop_store(&f, s);
	for (int i = 0; i < N; i++) {
		char sql[128];
		snprintf(id, sizeof(id), "fb/%d", i);
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM troupe_kv WHERE id = '%s'", id);
		CHECK_EQ_INT(sql_count(p, sql), outcome[i]);
	}
	fx_finish(&f);
}

static void
test_locked(void)
{
	struct fx f;
	char p[256], v[64];
	sqlite3 *db = NULL;

	fx_start(&f, 2);
	path_of(p, sizeof(p), "locked.db");
	tr_store_config c = config(p);
	c.busy_timeout_ms = 50;
	tr_pid s = open_ok(&f, &c);
	CHECK_EQ_INT(put_str(&f, s, "k", "before"), TR_OK);

	CHECK_EQ_INT(sqlite3_open(p, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	CHECK_EQ_INT(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
		     SQLITE_OK);
	tr_received r = put(&f, s, "k", "during", 6);
	CHECK_EQ_INT(status_of(&r), TR_ETIMEDOUT);
	CHECK(strstr(error_text(&r), p) != NULL);
	CHECK(strstr(error_text(&r), "locked") != NULL);
	tr_received_fini(&r);
	/* A WAL reader does not wait for the writer's lock. */
	CHECK_EQ_INT(get_str(&f, s, "k", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "before");
	CHECK_EQ_INT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	CHECK_EQ_INT(put_str(&f, s, "k", "after"), TR_OK);
	CHECK_EQ_INT(get_str(&f, s, "k", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "after");
	fx_finish(&f);
}

/* ---- group commit: many writers, one write in flight each -------------- */

#define WRITERS 50
#define WRITES  200

enum { MSG_GO = 1 };

static atomic_int acks;
static atomic_int errors;

struct writer {
	tr_pid store;
	uint32_t idx;
	uint32_t sent;
};

static int
writer_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	memcpy(state, arg, sizeof(struct writer));
	return 0;
}

static void
writer_send(tr_ctx *cx, struct writer *w)
{
	struct {
		tr_store_put_req q;
		char v[16];
	} b;

	memset(&b, 0, sizeof(b));
	snprintf(b.q.id, sizeof(b.q.id), "w%u/%u", w->idx, w->sent);
	int n = snprintf(b.v, sizeof(b.v), "%u", w->sent);
	b.q.size = (uint64_t)n;
	w->sent++;
	if (tr_request(cx, w->store, TR_MSG_STORE_PUT, &b,
		       sizeof(b.q) + (size_t)n, 0, NULL) != TR_OK) {
		atomic_fetch_add(&errors, 1);
	}
}

static void
writer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct writer *w = state;

	if (m->type == MSG_GO) {
		writer_send(cx, w);
		return;
	}
	if (m->type == TR_MSG_STORE_REPLY) {
		atomic_fetch_add(&acks, 1);
	} else {
		atomic_fetch_add(&errors, 1);
	}
	if (w->sent < WRITES) {
		writer_send(cx, w);
	} else {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def writer_def = {
	.size = sizeof(tr_actor_def),
	.name = "writer",
	.state_size = sizeof(struct writer),
	.init = writer_init,
	.handle = writer_handle,
	.arg_size = sizeof(struct writer),
};

static void
test_group_commit(void)
{
	struct fx f;
	char p[256], v[64];
	tr_pid w[WRITERS];

	atomic_store(&acks, 0);
	atomic_store(&errors, 0);
	fx_start(&f, 2);
	path_of(p, sizeof(p), "group.db");
	tr_store_config c = config(p);
	tr_pid s = open_ok(&f, &c);
	for (uint32_t i = 0; i < WRITERS; i++) {
		struct writer a = { .store = s, .idx = i };
		w[i] = fx_spawn(&f, &writer_def, &a);
	}
	for (uint32_t i = 0; i < WRITERS; i++) {
		CHECK_OK(tr_send(tr_runtime_ctx(f.rt), w[i], MSG_GO, NULL, 0));
	}
	WAIT_UNTIL(atomic_load(&acks) + atomic_load(&errors) ==
			   WRITERS * WRITES,
		   WAIT_MS);
	CHECK_EQ_INT(atomic_load(&acks), WRITERS * WRITES);
	CHECK_EQ_INT(atomic_load(&errors), 0);
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.writes, WRITERS * WRITES);
	CHECK(st.transactions > 0);
	CHECK(st.transactions < st.writes);
	CHECK(st.batch_max > 1);
	fprintf(stderr, "  %llu writes in %llu transactions (at most %llu)\n",
		(unsigned long long)st.writes,
		(unsigned long long)st.transactions,
		(unsigned long long)st.batch_max);
	stop_store(&f, s);

	/* Every row is in the file, and a new store reads them. */
	CHECK_EQ_INT(sql_count(p, "SELECT count(*) FROM troupe_kv"),
		     WRITERS * WRITES);
	s = open_ok(&f, &c);
	CHECK_EQ_INT(get_str(&f, s, "w49/199", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "199");
	CHECK_EQ_INT(get_str(&f, s, "w0/0", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "0");
	fx_finish(&f);
}

/*
 * A bound on a transaction: the writers of the group commit test and a
 * burst of requests sent without waiting (which, unbounded, gather by the
 * hundred behind the first transaction) under max_batch = 8. No
 * transaction holds more, every write is acknowledged once, and every row
 * is in the file after a reopen.
 */
static void
test_batch_cap(void)
{
	enum { CAP = 8, BURST = 600 };
	struct fx f;
	char p[256], v[64];
	tr_pid w[WRITERS];
	static tr_ref refs[BURST];
	int burst_acked = 0;

	atomic_store(&acks, 0);
	atomic_store(&errors, 0);
	fx_start(&f, 2);
	path_of(p, sizeof(p), "cap.db");
	tr_store_config c = config(p);
	c.max_batch = CAP;
	tr_pid s = open_ok(&f, &c);
	for (uint32_t i = 0; i < WRITERS; i++) {
		struct writer a = { .store = s, .idx = i };
		w[i] = fx_spawn(&f, &writer_def, &a);
	}
	for (uint32_t i = 0; i < WRITERS; i++) {
		CHECK_OK(tr_send(tr_runtime_ctx(f.rt), w[i], MSG_GO, NULL, 0));
	}
	for (int i = 0; i < BURST; i++) {
		struct {
			tr_store_put_req q;
			char v[16];
		} b;
		memset(&b, 0, sizeof(b));
		snprintf(b.q.id, sizeof(b.q.id), "burst/%d", i);
		int n = snprintf(b.v, sizeof(b.v), "%d", i);
		b.q.size = (uint64_t)n;
		CHECK_OK(tr_request(tr_inbox_ctx(f.ib), s, TR_MSG_STORE_PUT, &b,
				    sizeof(b.q) + (size_t)n, 0, &refs[i]));
	}
	for (int i = 0; i < BURST; i++) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(f.ib, &refs[i], FX_REPLY_MS, &r));
		burst_acked += r.type == TR_MSG_STORE_REPLY;
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(burst_acked, BURST);
	WAIT_UNTIL(atomic_load(&acks) + atomic_load(&errors) ==
			   WRITERS * WRITES,
		   WAIT_MS);
	CHECK_EQ_INT(atomic_load(&acks), WRITERS * WRITES);
	CHECK_EQ_INT(atomic_load(&errors), 0);
	tr_store_stats st = stats(&f, s);
	CHECK_EQ_U64(st.writes, WRITERS * WRITES + BURST);
	CHECK_EQ_U64(st.write_errors, 0);
	CHECK(st.batch_max <= CAP);
	CHECK(st.transactions * CAP >= st.writes);
	fprintf(stderr, "  %llu writes in %llu transactions (at most %llu)\n",
		(unsigned long long)st.writes,
		(unsigned long long)st.transactions,
		(unsigned long long)st.batch_max);
	stop_store(&f, s);
	/* No outcome came twice: none is left in the inbox, and the
	 * writers, all stopped, counted one each. */
	CHECK(fx_recv_none(&f, 0));
	CHECK_EQ_INT(atomic_load(&acks), WRITERS * WRITES);

	CHECK_EQ_INT(sql_count(p, "SELECT count(*) FROM troupe_kv"),
		     WRITERS * WRITES + BURST);
	s = open_ok(&f, &c);
	CHECK_EQ_INT(get_str(&f, s, "w49/199", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "199");
	CHECK_EQ_INT(get_str(&f, s, "burst/599", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "599");
	fx_finish(&f);
}

/* A config of the size before max_batch is taken, with the default
 * bound. */
static void
test_old_config_size(void)
{
	struct fx f;
	char p[256], v[16];

	fx_start(&f, 2);
	path_of(p, sizeof(p), "oldsize.db");
	tr_store_config c = config(p);
	c.size = offsetof(tr_store_config, max_batch);
	c.max_batch = 1; /* beyond the size: not read */
	tr_pid s = open_ok(&f, &c);
	CHECK_EQ_INT(put_str(&f, s, "k", "v"), TR_OK);
	CHECK_EQ_INT(get_str(&f, s, "k", v, sizeof(v)), TR_OK);
	CHECK_STR(v, "v");
	c.size = offsetof(tr_store_config, max_batch) - 1;
	tr_pid pid;
	tr_ref ref;
	CHECK_ERR(tr_store_start(tr_inbox_ctx(f.ib), &c, &pid, &ref),
		  TR_EINVAL);
	fx_finish(&f);
}

/* A stop while writes are queued: each write has one outcome, and every
 * acknowledged one is on disk. With a small @max_batch the teardown has
 * several pending batches to commit. */
static void
stop_flushes(const char *name, uint32_t max_batch)
{
	enum { N = 400 };
	struct fx f;
	char p[256], id[32];
	tr_ref refs[N];
	bool acked[N];
	int nacked = 0, nfailed = 0;

	fx_start(&f, 2);
	path_of(p, sizeof(p), name);
	tr_store_config c = config(p);
	c.max_batch = max_batch;
	tr_pid s = open_ok(&f, &c);
	for (int i = 0; i < N; i++) {
		struct {
			tr_store_put_req q;
			char v[8];
		} b;
		memset(&b, 0, sizeof(b));
		snprintf(b.q.id, sizeof(b.q.id), "s/%d", i);
		b.q.size = 1;
		b.v[0] = 'x';
		CHECK_OK(tr_request(tr_inbox_ctx(f.ib), s, TR_MSG_STORE_PUT, &b,
				    sizeof(b.q) + 1, 0, &refs[i]));
		if (i == N / 2) {
			CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s,
					 TR_EXIT_SHUTDOWN));
		}
	}
	for (int i = 0; i < N; i++) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(f.ib, &refs[i], FX_REPLY_MS, &r));
		acked[i] = r.type == TR_MSG_STORE_REPLY;
		if (acked[i]) {
			nacked++;
		} else {
			CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
			nfailed++;
		}
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(nacked + nfailed, N);
	WAIT_UNTIL(!tr_actor_alive(f.rt, s), WAIT_MS);
	for (int i = 0; i < N; i++) {
		char sql[128];
		snprintf(id, sizeof(id), "s/%d", i);
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM troupe_kv WHERE id = '%s'", id);
		if (acked[i]) {
			CHECK_EQ_INT(sql_count(p, sql), 1);
		}
	}
	/* Nothing the runtime failed was acknowledged twice: the inbox holds
	 * no stray outcome. */
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

static void
test_stop_flushes(void)
{
	stop_flushes("stop.db", 0);
}

static void
test_stop_flushes_bounded(void)
{
	stop_flushes("stopcap.db", 16);
}

static const struct test_case tests[] = {
	{ "store: start checks its configuration", test_start_checks },
	{ "store: put, get, delete, across a reopen", test_kv },
	{ "store: journal, pages, snapshot, trim", test_journal },
	{ "store: activity log, query, prune", test_log },
	{ "store: requests it cannot understand", test_bad_requests },
	{ "store: a file that is not a database", test_not_a_database },
	{ "store: a newer schema version", test_newer_schema },
	{ "store: a foreign schema", test_foreign_schema },
	{ "store: a full database loses no acknowledged write", test_full },
	{ "store: a full database in the middle of a transaction",
	  test_full_batch },
	{ "store: a lock held by another connection", test_locked },
	{ "store: group commit over 50 writers", test_group_commit },
	{ "store: a bound on a transaction", test_batch_cap },
	{ "store: a config of an older size", test_old_config_size },
	{ "store: a stop commits and answers what it took", test_stop_flushes },
	{ "store: a stop commits its pending batches one by one",
	  test_stop_flushes_bounded },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	dir_make();
	int rc = harness_run(tests, argc, argv);
	dir_remove();
	return rc;
}
