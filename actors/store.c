/*
 * Store (<troupe/actors/store.h>): one SQLite database owned by an actor,
 * with every SQLite call on a thread of the store's own.
 *
 * Two sides, one hand-off:
 *
 *   The actor   takes requests on a worker, checks them (sizes, ids, the
 *               JSON of a log body) and answers what it refuses at once.
 *               What it accepts becomes an op (the request's header and a
 *               copy of its payload) appended to the last pending batch,
 *               or to a new one when that batch is full (max_batch ops).
 *   The thread  opens the file, then runs one batch at a time: one
 *               transaction, a savepoint per write, a commit. It writes
 *               each op's outcome into the op and nothing else.
 *
 * The hand-off is a channel of one slot each way under a mutex: the actor
 * puts a batch in `todo` when the thread is idle (at most one batch is
 * with the thread), the thread puts it back in `done` and wakes the actor
 * with an empty MSG_DONE sent on the runtime's context. The actor then
 * answers every op of the batch with tr_reply() from its own turn, and
 * hands over what gathered meanwhile: writes that arrive while a commit
 * runs join the next transaction (group commit), and a writer's
 * acknowledgement leaves only after its transaction committed.
 *
 * Why the actor answers and not the thread: when the store takes a
 * request, the runtime records a watch on the store for it, which the
 * store's tr_reply() removes. A reply from the thread on an inbox's
 * context would come from the inbox and leave that watch behind, one per
 * request for the life of the store. Answering from the actor costs one
 * wake message per transaction, not per request, and the requesters see
 * the store's pid on their replies.
 *
 * Stop. The teardown (on a worker) tells the thread it is closing, waits
 * for the batch the thread holds, answers it, hands over the pending
 * batches one at a time, waits for each and answers it, and joins the
 * thread, which closes the database. The wait is bounded by one
 * transaction per max_batch ops the store took. What was still in the
 * mailbox is failed by the runtime (TR_EXIT_NOPROC).
 *
 * Threads: the handler and teardown run on workers (one at a time, the
 * actor's turns); store_thread() on its own thread. They share only
 * struct chan, under chan.mu; an op belongs to the actor until it is in
 * `todo`, to the thread until it is in `done`, then to the actor again.
 * The thread never calls into the runtime except tr_send() on the
 * runtime's context (the wake), which any thread may call.
 *
 * Invariants:
 * - at most one batch is out of the actor's hands (`inflight`);
 * - no batch is handed over before the open succeeded;
 * - every op the actor accepted gets exactly one answer (from
 *   answer_batch() or the open's failure), or the runtime fails it when
 *   the actor stops without answering (a teardown at runtime destroy).
 */
#include <troupe/actors/store.h>

#include "boot.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The store's own messages (the header keeps 0x80 and up private). */
#define MSG_START (TR_MSG_STORE_BASE + 0x80u) /* pointer to struct boot */
#define MSG_DONE  (TR_MSG_STORE_BASE + 0x81u) /* the thread: look at chan */

#define DEFAULT_BUSY_MS   5000u
#define DEFAULT_COUNT     1000u
#define DEFAULT_LOG_LIMIT 100u
#define DEFAULT_BYTES     (1u << 20)

/*
 * Ops in one transaction when the configuration says 0. A bound keeps a
 * transaction's memory (the ops, SQLite's dirty pages) and the teardown's
 * wait in proportion to it. 4096 still shares each commit among
 * thousands of writes; 10,000 writers with one write in flight each
 * gather about 5,000 per transaction, so they meet it only now and then.
 */
#define DEFAULT_MAX_BATCH 4096u

/* "TRPS" in PRAGMA application_id: a file with tables and another id is
 * not the store's. */
#define APPLICATION_ID 0x54525053

/* ------------------------------------------------------------------ */
/* Ops and batches                                                     */

enum op_state {
	OP_TODO = 0, /* not carried out (or undone by a rollback) */
	OP_RAN,      /* carried out in the open transaction */
	OP_FINAL,    /* outcome decided */
};

/* One request the store accepted. */
struct op {
	tr_msg hdr; /* from, ref, flags and type; data NULL */
	bool is_write;
	enum op_state state;
	/* The outcome, written by the thread. */
	int32_t status;
	int32_t code;
	uint64_t value;
	char *err; /* the error's text, on error */
	void *out; /* a pointer reply (malloc'd), on success */
	size_t out_size;
	size_t size;     /* payload bytes in data */
	uint64_t data[]; /* a copy of the payload, aligned for its structs */
};

struct batch {
	struct op **v;
	uint32_t n;
	uint32_t cap;
	bool committed;     /* a transaction with writes committed */
	struct batch *next; /* the pending batch after it (see accept()) */
};

static void
op_free(struct op *o)
{
	free(o->err);
	free(o->out);
	free(o);
}

static void
batch_free(struct batch *b)
{
	if (b == NULL) {
		return;
	}
	for (uint32_t i = 0; i < b->n; i++) {
		op_free(b->v[i]);
	}
	free(b->v);
	free(b);
}

/* Sets the op's error (status, SQLite code, text) and makes it final. */
static void
op_fail(struct op *o, int32_t status, int32_t code, const char *fmt, ...)
{
	va_list ap;
	char buf[TR_STORE_ERROR_SIZE];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(o->out);
	o->out = NULL;
	o->out_size = 0;
	free(o->err);
	o->err = strdup(buf); /* NULL without memory: an empty text */
	o->status = status;
	o->code = code;
	o->state = OP_FINAL;
}

/* ------------------------------------------------------------------ */
/* The channel                                                         */

struct boot {
	uint32_t max_batch; /* ops per transaction, never 0 */
	uint32_t durability;
	uint32_t busy_timeout_ms;
	uint32_t max_page_count;
	char path[];
};

struct chan {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* todo, quit, done, opened: broadcast */
	struct batch *todo;
	struct batch *done;
	bool quit;    /* the thread closes once todo is empty */
	bool closing; /* the teardown waits: no wake messages */
	bool opened;  /* the open's outcome is in open_* */
	int32_t open_status;
	int32_t open_code;
	char open_err[TR_STORE_ERROR_SIZE];
	/* Set before the thread starts, read-only after. */
	tr_runtime *rt;
	tr_pid owner;
	const struct boot *boot;
};

/* ------------------------------------------------------------------ */
/* The database (the thread's side)                                    */

enum {
	ST_BEGIN,
	ST_BEGIN_IMM,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_KV_PUT,
	ST_KV_GET,
	ST_KV_DEL,
	ST_HEAD_GET,
	ST_HEAD_SET,
	ST_EV_INS,
	ST_EV_READ,
	ST_EV_TRIM,
	ST_SNAP_GET,
	ST_SNAP_PUT,
	ST_LOG_INS,
	ST_LOG_QUERY,
	ST_LOG_PRUNE_AGE,
	ST_LOG_PRUNE_KEEP,
	ST_N
};

static const char *const sql_text[ST_N] = {
	[ST_BEGIN] = "BEGIN",
	[ST_BEGIN_IMM] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT w",
	[ST_RELEASE] = "RELEASE w",
	[ST_ROLLBACK_TO] = "ROLLBACK TO w",
	[ST_KV_PUT] = "INSERT OR REPLACE INTO troupe_kv (id, value) "
		      "VALUES (?1, ?2)",
	[ST_KV_GET] = "SELECT value FROM troupe_kv WHERE id = ?1",
	[ST_KV_DEL] = "DELETE FROM troupe_kv WHERE id = ?1",
	/* A journal's head is its last event, or the row a trim left. */
	[ST_HEAD_GET] = "SELECT max(coalesce((SELECT last_seq FROM "
			"troupe_journal_head WHERE id = ?1), 0), "
			"coalesce((SELECT max(seq) FROM troupe_journal "
			"WHERE id = ?1), 0))",
	[ST_HEAD_SET] = "INSERT OR REPLACE INTO troupe_journal_head "
			"(id, last_seq) VALUES (?1, ?2)",
	[ST_EV_INS] = "INSERT INTO troupe_journal (id, seq, data) "
		      "VALUES (?1, ?2, ?3)",
	[ST_EV_READ] = "SELECT seq, data FROM troupe_journal "
		       "WHERE id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
	[ST_EV_TRIM] = "DELETE FROM troupe_journal WHERE id = ?1 AND seq <= ?2",
	[ST_SNAP_GET] = "SELECT seq, data FROM troupe_snapshot WHERE id = ?1",
	[ST_SNAP_PUT] = "INSERT OR REPLACE INTO troupe_snapshot "
			"(id, seq, data) VALUES (?1, ?2, ?3)",
	[ST_LOG_INS] = "INSERT INTO troupe_log (time_ms, kind, actor, body) "
		       "VALUES (?1, ?2, ?3, ?4)",
	[ST_LOG_QUERY] = "SELECT rid, time_ms, kind, actor, body "
			 "FROM troupe_log WHERE rid > ?1 AND time_ms >= ?2 "
			 "AND time_ms < ?3 AND (?4 = '' OR kind = ?4) "
			 "ORDER BY rid LIMIT ?5",
	[ST_LOG_PRUNE_AGE] = "DELETE FROM troupe_log WHERE time_ms < ?1",
	[ST_LOG_PRUNE_KEEP] = "DELETE FROM troupe_log WHERE rid <= "
			      "(SELECT rid FROM troupe_log ORDER BY rid DESC "
			      "LIMIT 1 OFFSET ?1)",
};

/*
 * The migrations: migrations[v] takes a database from user_version v to
 * v + 1. They run in one transaction at open, with the new user_version
 * and the application id; add a step at the end and raise
 * TR_STORE_SCHEMA_VERSION, never change a step that shipped.
 */
static const char *const migrations[TR_STORE_SCHEMA_VERSION] = {
	/* 0 -> 1: key-value state, journals, snapshots, the activity log. */
	"CREATE TABLE troupe_kv (id TEXT PRIMARY KEY, value BLOB NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE TABLE troupe_journal (id TEXT NOT NULL, seq INTEGER NOT NULL,"
	" data BLOB NOT NULL, PRIMARY KEY (id, seq)) WITHOUT ROWID;"
	"CREATE TABLE troupe_journal_head (id TEXT PRIMARY KEY,"
	" last_seq INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE troupe_snapshot (id TEXT PRIMARY KEY,"
	" seq INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE troupe_log (rid INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time_ms INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,"
	" body TEXT NOT NULL);"
	"CREATE INDEX troupe_log_time ON troupe_log (time_ms);"
	"CREATE INDEX troupe_log_kind ON troupe_log (kind, time_ms);",
	/* 1 -> 2: troupe_journal_head keeps a journal's last sequence
	 * number only for what its events no longer show (a trim that took
	 * them all); an append writes no head row. Version 1's rows, one
	 * per journal, stay valid, so no table changes; the version is
	 * raised so that a library that reads heads from that table alone
	 * refuses a file written without them. */
	"-- no change to the tables",
};

/*
 * The journals' last sequence numbers, as this transaction sees them, so
 * that an append reads no row to learn it: the store is its database's
 * only writer. Set by a read of the head and by an append once its row
 * is written, and emptied by every rollback.
 *
 * A hash table (open addressing, linear probing, at most half full) of
 * the ids, whose text is kept in one arena. It grows up to HEADS_MAX
 * slots, enough for 32,768 journals; past that it is emptied and fills
 * again, which only costs reads. It was a direct-mapped array of 1,024
 * slots: with 10,000 writers each append missed and read its head.
 */
#define HEADS_MIN 1024u
/*
 * WAL frames after which a commit checkpoints (SQLite's default is 1,000).
 * A group commit of thousands of writes to as many journals writes about
 * that many frames, so with the default nearly every commit ran a
 * checkpoint, copying back pages the next commit would write again: with
 * 10,000 writers that halved the acknowledged rate (docs/BENCHMARKS.md,
 * "Heads from the events, and fewer checkpoints"). At 4 KiB pages this
 * lets the WAL reach about 64 MiB between checkpoints.
 */
#define CHECKPOINT_FRAMES 16384u
#define HEADS_MAX         65536u

struct head {
	uint64_t last;
	uint32_t hash;
	uint32_t at; /* the id's offset in the arena plus one; 0: empty */
};

struct heads {
	struct head *v;
	uint32_t cap; /* a power of two, 0 before the first use */
	uint32_t n;
	char *ids; /* the arena: NUL-terminated ids */
	size_t ids_n;
	size_t ids_cap;
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *st[ST_N];
	const char *path;
	struct heads heads;
};

/* The tr_err a SQLite result code stands for. */
static int32_t
status_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return TR_EFULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return TR_ETIMEDOUT;
	case SQLITE_NOMEM:
		return TR_ENOMEM;
	case SQLITE_NOTADB:
		return TR_EREJECTED;
	default:
		return TR_ESYS;
	}
}

/* The op failed on SQLite's result @rc while doing @what. */
static void
op_fail_db(struct db *d, struct op *o, int rc, const char *what)
{
	op_fail(o, status_of(rc), sqlite3_extended_errcode(d->h),
		"store %s: %s: %s", d->path, what, sqlite3_errmsg(d->h));
}

/* A statement, reset and unbound, ready for its parameters. */
static sqlite3_stmt *
stmt(struct db *d, int which)
{
	sqlite3_stmt *s = d->st[which];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Steps a statement that returns no row; SQLITE_OK or the error. */
static int
run(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int
run_st(struct db *d, int which)
{
	return run(stmt(d, which));
}

/* Binds bytes as a blob: an empty one is a zero-length blob, not NULL. */
static int
bind_bytes(sqlite3_stmt *s, int i, const void *p, uint64_t n)
{
	if (n == 0) {
		return sqlite3_bind_zeroblob(s, i, 0);
	}
	return sqlite3_bind_blob64(s, i, p, n, SQLITE_STATIC);
}

static int
bind_id(sqlite3_stmt *s, int i, const char *id)
{
	return sqlite3_bind_text(s, i, id, -1, SQLITE_STATIC);
}

static uint32_t
id_hash(const char *id, size_t *len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	const unsigned char *p = (const void *)id;

	for (; *p != 0; p++) {
		h = (h ^ *p) * 16777619u;
	}
	*len = (size_t)(p - (const unsigned char *)id);
	return h;
}

/* The slot of @id, or the empty slot where it would go. */
static struct head *
heads_find(const struct heads *t, const char *id, uint32_t hash)
{
	for (uint32_t i = hash & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		struct head *c = &t->v[i];
		if (c->at == 0 ||
		    (c->hash == hash && strcmp(t->ids + c->at - 1, id) == 0)) {
			return c;
		}
	}
}

static void
heads_forget(struct db *d)
{
	struct heads *t = &d->heads;

	if (t->n > 0) {
		memset(t->v, 0, t->cap * sizeof(*t->v));
	}
	t->n = 0;
	t->ids_n = 0;
}

static void
heads_fini(struct heads *t)
{
	free(t->v);
	free(t->ids);
	memset(t, 0, sizeof(*t));
}

/* Doubles the table (from none to HEADS_MIN); false without memory. */
static bool
heads_grow(struct heads *t)
{
	uint32_t cap = t->cap == 0 ? HEADS_MIN : t->cap * 2;
	struct head *v = calloc(cap, sizeof(*v));

	if (v == NULL) {
		return false;
	}
	struct heads old = *t;
	t->v = v;
	t->cap = cap;
	for (uint32_t i = 0; i < old.cap; i++) {
		if (old.v[i].at != 0) {
			*heads_find(t, old.ids + old.v[i].at - 1,
				    old.v[i].hash) = old.v[i];
		}
	}
	free(old.v);
	return true;
}

/* The journal @id's last sequence number is @last. Without memory the
 * head is not kept, which only costs a read. */
static void
head_set(struct db *d, const char *id, uint64_t last)
{
	struct heads *t = &d->heads;
	size_t len;
	uint32_t hash = id_hash(id, &len);

	if (t->cap > 0) {
		struct head *c = heads_find(t, id, hash);
		if (c->at != 0) {
			c->last = last;
			return;
		}
	}
	if ((t->n + 1) * 2 > t->cap) {
		if (t->cap >= HEADS_MAX) {
			heads_forget(d);
		} else if (!heads_grow(t)) {
			return;
		}
	}
	if (t->ids_n + len + 1 > t->ids_cap) {
		size_t cap = t->ids_cap == 0 ? 4096 : t->ids_cap * 2;
		while (cap < t->ids_n + len + 1) {
			cap *= 2;
		}
		char *ids = realloc(t->ids, cap);
		if (ids == NULL) {
			return;
		}
		t->ids = ids;
		t->ids_cap = cap;
	}
	memcpy(t->ids + t->ids_n, id, len + 1);
	struct head *c = heads_find(t, id, hash);
	c->last = last;
	c->hash = hash;
	c->at = (uint32_t)t->ids_n + 1;
	t->ids_n += len + 1;
	t->n++;
}

/* The journal's last sequence number into *@out (0 for none). */
static int
head_get(struct db *d, const char *id, uint64_t *out)
{
	const struct heads *t = &d->heads;

	if (t->n > 0) {
		size_t len;
		const struct head *c = heads_find(t, id, id_hash(id, &len));
		if (c->at != 0) {
			*out = c->last;
			return SQLITE_OK;
		}
	}
	sqlite3_stmt *s = stmt(d, ST_HEAD_GET);
	bind_id(s, 1, id);
	int rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return rc;
	}
	head_set(d, id, *out);
	return SQLITE_OK;
}

/* ---- the requests, each on the open transaction ---------------------- */

static int
do_put(struct db *d, struct op *o)
{
	const tr_store_put_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_KV_PUT);

	bind_id(s, 1, q->id);
	bind_bytes(s, 2, q->data, q->size);
	return run(s);
}

static int
do_get(struct db *d, struct op *o)
{
	const tr_store_key_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_KV_GET);

	bind_id(s, 1, q->id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		op_fail(o, TR_ENOENT, 0, "store %s: no value under \"%s\"",
			d->path, q->id);
		return SQLITE_OK;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc;
	}
	size_t n = (size_t)sqlite3_column_bytes(s, 0);
	tr_store_value *v = malloc(sizeof(*v) + n);
	if (v == NULL) {
		sqlite3_reset(s);
		return SQLITE_NOMEM;
	}
	v->size = n;
	if (n > 0) {
		memcpy(v->data, sqlite3_column_blob(s, 0), n);
	}
	sqlite3_reset(s);
	o->out = v;
	o->out_size = sizeof(*v) + n;
	return SQLITE_OK;
}

static int
do_delete(struct db *d, struct op *o)
{
	const tr_store_key_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_KV_DEL);

	bind_id(s, 1, q->id);
	int rc = run(s);
	o->value = rc == SQLITE_OK ? (uint64_t)sqlite3_changes(d->h) : 0;
	return rc;
}

static int
do_append(struct db *d, struct op *o)
{
	const tr_store_append_req *q = (const void *)o->data;
	uint64_t last;
	int rc = head_get(d, q->id, &last);

	if (rc != SQLITE_OK) {
		return rc;
	}
	if (q->seq != 0 && q->seq != last + 1) {
		op_fail(o, TR_EEXIST, 0,
			"store %s: journal \"%s\": sequence number %llu is not "
			"the next one (%llu)",
			d->path, q->id, (unsigned long long)q->seq,
			(unsigned long long)(last + 1));
		return SQLITE_OK;
	}
	/* The event is its journal's head: no head row (see ST_HEAD_GET). */
	sqlite3_stmt *s = stmt(d, ST_EV_INS);
	bind_id(s, 1, q->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(last + 1));
	bind_bytes(s, 3, q->data, q->size);
	rc = run(s);
	o->value = last + 1;
	if (rc == SQLITE_OK) {
		head_set(d, q->id, last + 1);
	}
	return rc;
}

/* A growing buffer for a page's bytes. */
struct buf {
	unsigned char *p;
	size_t n;
	size_t cap;
};

static bool
buf_add(struct buf *b, const void *src, size_t n, size_t align)
{
	size_t at = (b->n + align - 1) & ~(align - 1);

	if (at + n > b->cap) {
		size_t cap = b->cap == 0 ? 256 : b->cap;
		while (cap < at + n) {
			cap *= 2;
		}
		unsigned char *p = realloc(b->p, cap);
		if (p == NULL) {
			return false;
		}
		b->p = p;
		b->cap = cap;
	}
	if (at > b->n) {
		memset(b->p + b->n, 0, at - b->n);
	}
	if (n > 0) {
		memcpy(b->p + at, src, n);
	}
	b->n = at + n;
	return true;
}

static int
do_read(struct db *d, struct op *o)
{
	const tr_store_read_req *q = (const void *)o->data;
	uint32_t max = q->max_count != 0 ? q->max_count : DEFAULT_COUNT;
	uint64_t max_bytes = q->max_bytes != 0 ? q->max_bytes : DEFAULT_BYTES;
	struct buf evs = { 0 }, bytes = { 0 };
	uint32_t count = 0;
	bool more = false;
	uint64_t last;
	int rc = head_get(d, q->id, &last);

	if (rc != SQLITE_OK) {
		return rc;
	}
	sqlite3_stmt *s = stmt(d, ST_EV_READ);
	bind_id(s, 1, q->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)q->after_seq);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)max + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 1);
		if (count == max || (count > 0 && bytes.n + n > max_bytes)) {
			more = true;
			break;
		}
		tr_store_event ev = {
			.seq = (uint64_t)sqlite3_column_int64(s, 0), .size = n
		};
		if (!buf_add(&bytes, NULL, 0, 8)) {
			rc = SQLITE_NOMEM;
			break;
		}
		ev.offset = bytes.n; /* relative for now */
		if (!buf_add(&bytes, sqlite3_column_blob(s, 1), n, 1) ||
		    !buf_add(&evs, &ev, sizeof(ev), 8)) {
			rc = SQLITE_NOMEM;
			break;
		}
		count++;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		size_t head = sizeof(tr_store_events) + evs.n;
		tr_store_events *p = malloc(head + bytes.n);
		if (p != NULL) {
			p->last_seq = last;
			p->count = count;
			p->more = more;
			for (uint32_t i = 0; i < count; i++) {
				memcpy(&p->events[i],
				       evs.p + i * sizeof(tr_store_event),
				       sizeof(tr_store_event));
				p->events[i].offset += head;
			}
			if (bytes.n > 0) {
				memcpy((unsigned char *)p + head, bytes.p,
				       bytes.n);
			}
			o->out = p;
			o->out_size = head + bytes.n;
			rc = SQLITE_OK;
		} else {
			rc = SQLITE_NOMEM;
		}
	}
	free(evs.p);
	free(bytes.p);
	return rc;
}

static int
do_trim(struct db *d, struct op *o)
{
	const tr_store_trim_req *q = (const void *)o->data;
	uint64_t last;
	int rc = head_get(d, q->id, &last);

	/* The events may all go: their head is kept as a row. */
	if (rc == SQLITE_OK && last > 0) {
		sqlite3_stmt *h = stmt(d, ST_HEAD_SET);
		bind_id(h, 1, q->id);
		sqlite3_bind_int64(h, 2, (sqlite3_int64)last);
		rc = run(h);
	}
	if (rc != SQLITE_OK) {
		return rc;
	}
	sqlite3_stmt *s = stmt(d, ST_EV_TRIM);
	bind_id(s, 1, q->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)q->to_seq);
	rc = run(s);
	o->value = rc == SQLITE_OK ? (uint64_t)sqlite3_changes(d->h) : 0;
	return rc;
}

static int
do_snap_save(struct db *d, struct op *o)
{
	const tr_store_snapshot_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_SNAP_GET);

	bind_id(s, 1, q->id);
	int rc = sqlite3_step(s);
	uint64_t have =
		rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return rc;
	}
	if (rc == SQLITE_ROW && have > q->seq) {
		op_fail(o, TR_EEXIST, 0,
			"store %s: snapshot of \"%s\" at %llu is newer than "
			"%llu",
			d->path, q->id, (unsigned long long)have,
			(unsigned long long)q->seq);
		return SQLITE_OK;
	}
	s = stmt(d, ST_SNAP_PUT);
	bind_id(s, 1, q->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)q->seq);
	bind_bytes(s, 3, q->data, q->size);
	return run(s);
}

static int
do_snap_load(struct db *d, struct op *o)
{
	const tr_store_key_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_SNAP_GET);

	bind_id(s, 1, q->id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		op_fail(o, TR_ENOENT, 0, "store %s: no snapshot of \"%s\"",
			d->path, q->id);
		return SQLITE_OK;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc;
	}
	size_t n = (size_t)sqlite3_column_bytes(s, 1);
	tr_store_snapshot *p = malloc(sizeof(*p) + n);
	if (p == NULL) {
		sqlite3_reset(s);
		return SQLITE_NOMEM;
	}
	p->seq = (uint64_t)sqlite3_column_int64(s, 0);
	p->size = n;
	if (n > 0) {
		memcpy(p->data, sqlite3_column_blob(s, 1), n);
	}
	sqlite3_reset(s);
	o->out = p;
	o->out_size = sizeof(*p) + n;
	return SQLITE_OK;
}

static int
do_log_append(struct db *d, struct op *o)
{
	const tr_store_log_req *q = (const void *)o->data;
	sqlite3_stmt *s = stmt(d, ST_LOG_INS);

	sqlite3_bind_int64(s, 1, q->time_ms);
	bind_id(s, 2, q->kind);
	bind_id(s, 3, q->actor);
	sqlite3_bind_text64(s, 4, q->body, q->size, SQLITE_STATIC, SQLITE_UTF8);
	int rc = run(s);
	o->value =
		rc == SQLITE_OK ? (uint64_t)sqlite3_last_insert_rowid(d->h) : 0;
	return rc;
}

static void
copy_text(char *dst, size_t size, const unsigned char *src)
{
	snprintf(dst, size, "%s", src != NULL ? (const char *)src : "");
}

static int
do_log_query(struct db *d, struct op *o)
{
	const tr_store_log_query *q = (const void *)o->data;
	uint32_t max = q->limit != 0 ? q->limit : DEFAULT_LOG_LIMIT;
	uint64_t max_bytes = q->max_bytes != 0 ? q->max_bytes : DEFAULT_BYTES;
	struct buf recs = { 0 }, bodies = { 0 };
	uint32_t count = 0;
	bool more = false;
	sqlite3_stmt *s = stmt(d, ST_LOG_QUERY);
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)q->after_id);
	sqlite3_bind_int64(s, 2, q->from_ms);
	sqlite3_bind_int64(s, 3, q->to_ms != 0 ? q->to_ms : INT64_MAX);
	bind_id(s, 4, q->kind);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)max + 1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(s, 4);
		if (count == max || (count > 0 && bodies.n + n > max_bytes)) {
			more = true;
			break;
		}
		tr_store_log_record r;
		memset(&r, 0, sizeof(r));
		r.id = (uint64_t)sqlite3_column_int64(s, 0);
		r.time_ms = sqlite3_column_int64(s, 1);
		copy_text(r.kind, sizeof(r.kind), sqlite3_column_text(s, 2));
		copy_text(r.actor, sizeof(r.actor), sqlite3_column_text(s, 3));
		const unsigned char *body = sqlite3_column_text(s, 4);
		r.body_offset = bodies.n;
		r.body_size = n;
		if (!buf_add(&bodies, body, n, 1) ||
		    !buf_add(&bodies, "", 1, 1) ||
		    !buf_add(&recs, &r, sizeof(r), 8)) {
			rc = SQLITE_NOMEM;
			break;
		}
		count++;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		size_t head = sizeof(tr_store_log_page) + recs.n;
		tr_store_log_page *p = malloc(head + bodies.n);
		if (p != NULL) {
			p->count = count;
			p->more = more;
			for (uint32_t i = 0; i < count; i++) {
				memcpy(&p->records[i],
				       recs.p + i * sizeof(tr_store_log_record),
				       sizeof(tr_store_log_record));
				p->records[i].body_offset += head;
			}
			if (bodies.n > 0) {
				memcpy((unsigned char *)p + head, bodies.p,
				       bodies.n);
			}
			o->out = p;
			o->out_size = head + bodies.n;
			rc = SQLITE_OK;
		} else {
			rc = SQLITE_NOMEM;
		}
	}
	free(recs.p);
	free(bodies.p);
	return rc;
}

static int
do_log_prune(struct db *d, struct op *o)
{
	const tr_store_prune_req *q = (const void *)o->data;
	int rc = SQLITE_OK;

	o->value = 0;
	if (q->before_ms != 0) {
		sqlite3_stmt *s = stmt(d, ST_LOG_PRUNE_AGE);
		sqlite3_bind_int64(s, 1, q->before_ms);
		rc = run(s);
		if (rc == SQLITE_OK) {
			o->value += (uint64_t)sqlite3_changes(d->h);
		}
	}
	if (rc == SQLITE_OK && q->keep != 0) {
		sqlite3_stmt *s = stmt(d, ST_LOG_PRUNE_KEEP);
		sqlite3_bind_int64(s, 1, (sqlite3_int64)q->keep);
		rc = run(s);
		if (rc == SQLITE_OK) {
			o->value += (uint64_t)sqlite3_changes(d->h);
		}
	}
	return rc;
}

/* What each request does on the thread, and whether it writes. */
static const struct kind {
	uint32_t type;
	bool is_write;
	int (*fn)(struct db *d, struct op *o);
	const char *what;
} kinds[] = {
	{ TR_MSG_STORE_PUT, true, do_put, "put" },
	{ TR_MSG_STORE_GET, false, do_get, "get" },
	{ TR_MSG_STORE_DELETE, true, do_delete, "delete" },
	{ TR_MSG_STORE_APPEND, true, do_append, "append" },
	{ TR_MSG_STORE_READ, false, do_read, "read" },
	{ TR_MSG_STORE_TRIM, true, do_trim, "trim" },
	{ TR_MSG_STORE_SNAPSHOT_SAVE, true, do_snap_save, "snapshot save" },
	{ TR_MSG_STORE_SNAPSHOT_LOAD, false, do_snap_load, "snapshot load" },
	{ TR_MSG_STORE_LOG_APPEND, true, do_log_append, "log append" },
	{ TR_MSG_STORE_LOG_QUERY, false, do_log_query, "log query" },
	{ TR_MSG_STORE_LOG_PRUNE, true, do_log_prune, "log prune" },
};

static const struct kind *
kind_of(uint32_t type)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (kinds[i].type == type) {
			return &kinds[i];
		}
	}
	return NULL;
}

/* How run_op() left the transaction. */
enum run_result {
	RUN_OK,          /* the op is done; the transaction goes on */
	RUN_ROLLED_BACK, /* SQLite rolled the whole transaction back */
	RUN_CAREFUL,     /* a write failed part way: undo, then savepoints */
};

/*
 * One op in the open transaction. A batch runs first without savepoints
 * (two statements fewer per write): a write that SQLite fails part way
 * may have left part of itself, so the whole transaction is undone and
 * the batch run again (@careful) with each write in a savepoint of its
 * own, so that its failure undoes only it. A write refused by its own
 * check (a sequence number, an older snapshot) writes nothing first, so
 * it needs no savepoint. SQLite may also roll the whole transaction back
 * by itself (after SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY or
 * SQLITE_NOMEM): the batch is then run again without the op, which is
 * final.
 */
static enum run_result
run_op(struct db *d, struct op *o, bool careful)
{
	const struct kind *k = kind_of(o->hdr.type);
	bool sp = o->is_write && careful;
	int rc = sp ? run_st(d, ST_SAVEPOINT) : SQLITE_OK;

	if (rc == SQLITE_OK) {
		rc = k->fn(d, o);
	}
	if (rc != SQLITE_OK && o->is_write && !careful) {
		return RUN_CAREFUL;
	}
	if (rc != SQLITE_OK) {
		op_fail_db(d, o, rc, k->what);
		if (sqlite3_get_autocommit(d->h)) {
			return RUN_ROLLED_BACK;
		}
	}
	if (sp && o->status != TR_OK) {
		(void)run_st(d, ST_ROLLBACK_TO);
	}
	if (sp) {
		(void)run_st(d, ST_RELEASE);
	}
	if (sp && sqlite3_get_autocommit(d->h)) {
		/* The savepoint's end took the transaction with it: what
		 * ran in it is undone, so the batch runs again. */
		return RUN_ROLLED_BACK;
	}
	if (o->state != OP_FINAL) {
		o->state = OP_RAN;
	}
	return RUN_OK;
}

/* Undo what the rolled-back transaction did for the ops that ran. */
static void
batch_undo(struct batch *b)
{
	for (uint32_t i = 0; i < b->n; i++) {
		struct op *o = b->v[i];
		if (o->state == OP_RAN) {
			free(o->out);
			o->out = NULL;
			o->out_size = 0;
			o->value = 0;
			o->state = OP_TODO;
		}
	}
}

/* One transaction for the batch (more after a rollback). */
static void
run_batch(struct db *d, struct batch *b)
{
	bool careful = false;

	for (;;) {
		bool writes = false, any = false;
		for (uint32_t i = 0; i < b->n; i++) {
			if (b->v[i]->state == OP_TODO) {
				any = true;
				writes = writes || b->v[i]->is_write;
			}
		}
		if (!any) {
			return;
		}
		/* IMMEDIATE takes the write lock now, so a lock another
		 * connection holds is met (with its busy timeout) here and
		 * not in the middle of the batch. */
		int rc = run_st(d, writes ? ST_BEGIN_IMM : ST_BEGIN);
		if (rc != SQLITE_OK) {
			for (uint32_t i = 0; i < b->n; i++) {
				if (b->v[i]->state == OP_TODO) {
					op_fail_db(
						d, b->v[i], rc,
						"cannot begin a transaction");
				}
			}
			return;
		}
		enum run_result r = RUN_OK;
		for (uint32_t i = 0; i < b->n && r == RUN_OK; i++) {
			if (b->v[i]->state == OP_TODO) {
				r = run_op(d, b->v[i], careful);
			}
		}
		if (r != RUN_OK) {
			if (!sqlite3_get_autocommit(d->h)) {
				(void)run_st(d, ST_ROLLBACK);
			}
			heads_forget(d);
			batch_undo(b);
			careful = careful || r == RUN_CAREFUL;
			continue;
		}
		rc = run_st(d, ST_COMMIT);
		if (rc != SQLITE_OK) {
			struct op tmp;
			memset(&tmp, 0, sizeof(tmp));
			op_fail_db(d, &tmp, rc, "commit");
			(void)run_st(d, ST_ROLLBACK);
			heads_forget(d);
			for (uint32_t i = 0; i < b->n; i++) {
				struct op *o = b->v[i];
				if (o->state == OP_RAN) {
					op_fail(o, tmp.status, tmp.code, "%s",
						tmp.err != NULL ? tmp.err : "");
				}
			}
			free(tmp.err);
			return;
		}
		for (uint32_t i = 0; i < b->n; i++) {
			if (b->v[i]->state == OP_RAN) {
				b->v[i]->state = OP_FINAL;
			}
		}
		b->committed = writes;
		return;
	}
}

/* ---- opening ---------------------------------------------------------- */

struct open_err {
	int32_t status;
	int32_t code;
	char text[TR_STORE_ERROR_SIZE];
};

static int
open_fail(struct open_err *e, int32_t status, int32_t code, const char *fmt,
	  ...)
{
	va_list ap;

	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return status;
}

static int
open_fail_db(struct db *d, struct open_err *e, int rc, const char *what)
{
	if ((rc & 0xff) == SQLITE_NOTADB) {
		return open_fail(e, TR_EREJECTED,
				 sqlite3_extended_errcode(d->h),
				 "store %s: refused: the file is not a "
				 "database (%s)",
				 d->path, sqlite3_errmsg(d->h));
	}
	return open_fail(e, status_of(rc), sqlite3_extended_errcode(d->h),
			 "store %s: %s: %s", d->path, what,
			 sqlite3_errmsg(d->h));
}

/* The integer a one-row statement gives into *@out. */
static int
query_int(struct db *d, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(d->h, sql, -1, &s, NULL);

	if (rc != SQLITE_OK) {
		return rc;
	}
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	sqlite3_finalize(s);
	return rc;
}

/*
 * Reads what the file is before anything is written to it: a database at
 * all, of this store's schema (or empty), of a version this library
 * knows. *@version gets its user_version.
 */
static int
check_file(struct db *d, struct open_err *e, int64_t *version)
{
	int64_t app, tables, ours;
	int rc = query_int(d, "PRAGMA user_version", version);

	if (rc == SQLITE_OK) {
		rc = query_int(d, "PRAGMA application_id", &app);
	}
	if (rc == SQLITE_OK) {
		rc = query_int(d,
			       "SELECT count(*) FROM sqlite_master WHERE "
			       "type = 'table' AND name NOT LIKE 'sqlite_%'",
			       &tables);
	}
	if (rc == SQLITE_OK) {
		rc = query_int(d,
			       "SELECT count(*) FROM sqlite_master WHERE "
			       "type = 'table' AND name LIKE 'troupe_%'",
			       &ours);
	}
	if (rc != SQLITE_OK) {
		return open_fail_db(d, e, rc, "cannot read the schema");
	}
	if (*version > TR_STORE_SCHEMA_VERSION && app == APPLICATION_ID) {
		return open_fail(e, TR_EREJECTED, 0,
				 "store %s: refused: schema version %lld is "
				 "newer than this library's (%d)",
				 d->path, (long long)*version,
				 TR_STORE_SCHEMA_VERSION);
	}
	if ((*version == 0 && tables > 0) ||
	    (*version != 0 && (app != APPLICATION_ID || ours == 0))) {
		return open_fail(e, TR_EREJECTED, 0,
				 "store %s: refused: a foreign schema (%lld "
				 "tables, user_version %lld, application_id "
				 "%lld, not the store's)",
				 d->path, (long long)tables,
				 (long long)*version, (long long)app);
	}
	return TR_OK;
}

static int
migrate(struct db *d, struct open_err *e, int64_t from)
{
	char sql[96];
	int rc = sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	for (int64_t v = from; rc == SQLITE_OK && v < TR_STORE_SCHEMA_VERSION;
	     v++) {
		rc = sqlite3_exec(d->h, migrations[v], NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql),
			 "PRAGMA user_version = %d; PRAGMA application_id = %d",
			 TR_STORE_SCHEMA_VERSION, APPLICATION_ID);
		rc = sqlite3_exec(d->h, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		int err = open_fail_db(d, e, rc, "cannot migrate the schema");
		if (!sqlite3_get_autocommit(d->h)) {
			(void)sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL);
		}
		return err;
	}
	return TR_OK;
}

static void
db_close(struct db *d)
{
	for (int i = 0; i < ST_N; i++) {
		sqlite3_finalize(d->st[i]);
		d->st[i] = NULL;
	}
	sqlite3_close(d->h); /* NULL is a no-op */
	d->h = NULL;
	heads_fini(&d->heads);
}

static int
db_open(struct db *d, const struct boot *b, struct open_err *e)
{
	int64_t version = 0;
	char sql[96];

	d->path = b->path;
	int rc = sqlite3_open_v2(b->path, &d->h,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		int err = d->h != NULL
				  ? open_fail_db(d, e, rc, "cannot open")
				  : open_fail(e, TR_ENOMEM, rc,
					      "store %s: cannot open: out of "
					      "memory",
					      b->path);
		db_close(d);
		return err;
	}
	sqlite3_extended_result_codes(d->h, 1);
	sqlite3_busy_timeout(d->h, (int)(b->busy_timeout_ms > INT32_MAX
						 ? INT32_MAX
						 : b->busy_timeout_ms));
	int err = check_file(d, e, &version);
	if (err < 0) {
		db_close(d);
		return err;
	}
	/* Only now is anything written: the WAL header, the settings. */
	int64_t dummy;
	rc = sqlite3_exec(d->h, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
			 b->durability == TR_STORE_FULL ? "FULL" : "NORMAL");
		rc = sqlite3_exec(d->h, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %u",
			 CHECKPOINT_FRAMES);
		rc = query_int(d, sql, &dummy);
	}
	if (rc == SQLITE_OK && b->max_page_count != 0) {
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %u",
			 b->max_page_count);
		rc = query_int(d, sql, &dummy);
	}
	if (rc != SQLITE_OK) {
		err = open_fail_db(d, e, rc, "cannot set up");
		db_close(d);
		return err;
	}
	if (version < TR_STORE_SCHEMA_VERSION) {
		err = migrate(d, e, version);
		if (err < 0) {
			db_close(d);
			return err;
		}
	}
	for (int i = 0; i < ST_N; i++) {
		rc = sqlite3_prepare_v3(d->h, sql_text[i], -1,
					SQLITE_PREPARE_PERSISTENT, &d->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			err = open_fail_db(d, e, rc, "cannot prepare");
			db_close(d);
			return err;
		}
	}
	return TR_OK;
}

/* ---- the thread ------------------------------------------------------- */

/* Tells the actor to look at the channel, unless its teardown waits. */
static void
wake(struct chan *ch)
{
	for (;;) {
		pthread_mutex_lock(&ch->mu);
		bool closing = ch->closing;
		pthread_mutex_unlock(&ch->mu);
		if (closing) {
			return;
		}
		/* A stopped actor makes it a dead letter, which is fine: its
		 * teardown takes the batch from the channel. Only a lack of
		 * memory is worth another try, after a pause. */
		tr_err err = tr_send(tr_runtime_ctx(ch->rt), ch->owner,
				     MSG_DONE, NULL, 0);
		if (err != TR_ENOMEM) {
			return;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void *
store_thread(void *arg)
{
	struct chan *ch = arg;
	struct db d;
	struct open_err e;

	/* Its own name, not the worker's that started it, so profiles and
	 * top tell the two apart. */
	(void)pthread_setname_np(pthread_self(), "tr-store");
	memset(&d, 0, sizeof(d));
	memset(&e, 0, sizeof(e));
	int err = db_open(&d, ch->boot, &e);
	pthread_mutex_lock(&ch->mu);
	ch->opened = true;
	ch->open_status = err;
	ch->open_code = e.code;
	memcpy(ch->open_err, e.text, sizeof(e.text));
	pthread_cond_broadcast(&ch->cv);
	pthread_mutex_unlock(&ch->mu);
	wake(ch);
	if (err < 0) {
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&ch->mu);
		while (ch->todo == NULL && !ch->quit) {
			pthread_cond_wait(&ch->cv, &ch->mu);
		}
		struct batch *b = ch->todo;
		ch->todo = NULL;
		pthread_mutex_unlock(&ch->mu);
		if (b == NULL) {
			break;
		}
		run_batch(&d, b);
		pthread_mutex_lock(&ch->mu);
		ch->done = b;
		pthread_cond_broadcast(&ch->cv);
		pthread_mutex_unlock(&ch->mu);
		wake(ch);
	}
	db_close(&d);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The actor                                                           */

struct store {
	struct boot *boot; /* NULL until the start */
	struct chan *ch;
	pthread_t th;
	bool has_thread;
	bool open;     /* the open succeeded */
	bool inflight; /* a batch is with the thread */
	tr_msg start;  /* the start's header */
	bool started;  /* the start was answered */
	/* What waits for the thread: a list of batches of at most
	 * boot->max_batch ops each, in the order the store took them. */
	struct batch *pending;
	struct batch *pending_tail;
	tr_store_stats stats;
};

static void
send_error(tr_ctx *cx, const tr_msg *m, int32_t status, int32_t code,
	   const char *text)
{
	tr_store_error e;

	memset(&e, 0, sizeof(e));
	e.status = status;
	e.code = code;
	snprintf(e.text, sizeof(e.text), "%s", text != NULL ? text : "");
	/* A sender that is gone makes it a dead letter; a message sent on
	 * the runtime's context has nobody to answer. */
	(void)tr_reply(cx, m, TR_MSG_STORE_ERROR, &e, sizeof(e));
}

/* A message the store cannot use: counted; a request is told why. */
static void
refuse(tr_ctx *cx, struct store *s, const tr_msg *m, const char *fmt, ...)
{
	char text[TR_STORE_ERROR_SIZE];
	va_list ap;

	s->stats.unhandled++;
	if (!(m->flags & TR_MSG_F_REQUEST)) {
		(void)tr_unhandled(cx, m);
		return;
	}
	va_start(ap, fmt);
	int n = snprintf(text, sizeof(text), "store %s: ",
			 s->boot != NULL ? s->boot->path : "(not started)");
	if (n > 0 && (size_t)n < sizeof(text)) {
		vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	}
	va_end(ap);
	send_error(cx, m, TR_EINVAL, 0, text);
}

static void
answer_op(tr_ctx *cx, struct store *s, struct op *o)
{
	if (o->status != TR_OK) {
		send_error(cx, &o->hdr, o->status, o->code, o->err);
		if (o->is_write) {
			s->stats.write_errors++;
		} else {
			s->stats.reads++;
		}
		return;
	}
	if (o->is_write) {
		s->stats.writes++;
	} else {
		s->stats.reads++;
	}
	if (o->out != NULL) {
		static const uint32_t reply_of[][2] = {
			{ TR_MSG_STORE_GET, TR_MSG_STORE_VALUE },
			{ TR_MSG_STORE_READ, TR_MSG_STORE_EVENTS },
			{ TR_MSG_STORE_SNAPSHOT_LOAD, TR_MSG_STORE_SNAPSHOT },
			{ TR_MSG_STORE_LOG_QUERY, TR_MSG_STORE_LOG },
		};
		uint32_t type = 0;
		for (size_t i = 0; i < sizeof(reply_of) / sizeof(reply_of[0]);
		     i++) {
			if (reply_of[i][0] == o->hdr.type) {
				type = reply_of[i][1];
			}
		}
		void *out = o->out;
		o->out = NULL;
		/* The pointer moves on every path. */
		(void)tr_reply_ptr(cx, &o->hdr, type, out, o->out_size, free);
		return;
	}
	tr_store_reply r = { .value = o->value };
	(void)tr_reply(cx, &o->hdr, TR_MSG_STORE_REPLY, &r, sizeof(r));
}

/* Answers every op of @b, in the order the store took them, and frees it. */
static void
answer_batch(tr_ctx *cx, struct store *s, struct batch *b)
{
	if (b->committed) {
		s->stats.transactions++;
	}
	if (b->n > s->stats.batch_max) {
		s->stats.batch_max = b->n;
	}
	for (uint32_t i = 0; i < b->n; i++) {
		answer_op(cx, s, b->v[i]);
	}
	batch_free(b);
}

/* Takes the first pending batch off the list (NULL when none). */
static struct batch *
pending_pop(struct store *s)
{
	struct batch *b = s->pending;

	if (b != NULL) {
		s->pending = b->next;
		b->next = NULL;
		if (s->pending == NULL) {
			s->pending_tail = NULL;
		}
	}
	return b;
}

/* The thread is idle: give it the oldest batch that gathered. */
static void
hand_over(struct store *s)
{
	if (s->inflight || !s->open || s->pending == NULL) {
		return;
	}
	struct batch *b = pending_pop(s);
	pthread_mutex_lock(&s->ch->mu);
	s->ch->todo = b;
	pthread_cond_broadcast(&s->ch->cv);
	pthread_mutex_unlock(&s->ch->mu);
	s->inflight = true;
}

/* Every op of every pending batch fails with the open's error. */
static void
fail_pending(tr_ctx *cx, struct store *s)
{
	struct batch *b;

	while ((b = pending_pop(s)) != NULL) {
		for (uint32_t i = 0; i < b->n; i++) {
			struct op *o = b->v[i];
			op_fail(o, s->ch->open_status, s->ch->open_code, "%s",
				s->ch->open_err);
			answer_op(cx, s, o);
		}
		batch_free(b);
	}
}

/*
 * Adds the request @m (checked) to the last pending batch, or to a new
 * one when that batch holds boot->max_batch ops: what is over the bound
 * waits for a later transaction, in order.
 */
static void
accept(tr_ctx *cx, struct store *s, const tr_msg *m, bool is_write)
{
	struct op *o = calloc(1, sizeof(*o) + m->size);
	struct batch *b = s->pending_tail;

	if ((b == NULL || b->n == s->boot->max_batch) && o != NULL) {
		b = calloc(1, sizeof(*b));
		if (b != NULL && s->pending_tail != NULL) {
			s->pending_tail->next = b;
			s->pending_tail = b;
		} else if (b != NULL) {
			s->pending = s->pending_tail = b;
		}
	}
	if (b != NULL && o != NULL && b->n == b->cap) {
		uint32_t cap = b->cap == 0 ? 16 : b->cap * 2;
		if (cap > s->boot->max_batch) {
			cap = s->boot->max_batch;
		}
		struct op **v = realloc(b->v, cap * sizeof(*v));
		if (v != NULL) {
			b->v = v;
			b->cap = cap;
		}
	}
	if (b == NULL || o == NULL || b->n == b->cap) {
		free(o);
		send_error(cx, m, TR_ENOMEM, 0, "store: out of memory");
		return;
	}
	o->hdr = *m;
	o->hdr.data = NULL;
	o->hdr.size = 0;
	o->is_write = is_write;
	o->size = m->size;
	if (m->size > 0) {
		memcpy(o->data, m->data, m->size);
	}
	b->v[b->n++] = o;
	hand_over(s);
}

static bool
has_nul(const char *a, size_t n)
{
	return memchr(a, '\0', n) != NULL;
}

/* Whether a NUL-terminated non-empty id; else the request is refused. */
static bool
id_ok(tr_ctx *cx, struct store *s, const tr_msg *m, const char *id)
{
	if (!has_nul(id, TR_STORE_ID_SIZE)) {
		refuse(cx, s, m, "id too long (no NUL in its %d bytes)",
		       TR_STORE_ID_SIZE);
		return false;
	}
	if (id[0] == '\0') {
		refuse(cx, s, m, "empty id");
		return false;
	}
	return true;
}

/* A JSON text of exactly @n bytes (whitespace after it allowed). */
static bool
json_ok(const char *p, size_t n)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(p, n, &end, false);

	if (j == NULL) {
		return false;
	}
	cJSON_Delete(j);
	for (; end != NULL && end < p + n; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' &&
		    *end != '\r') {
			return false;
		}
	}
	return end != NULL;
}

/* A payload of @head bytes, or (@fam) of @head and the @counted bytes
 * that follow it. */
static bool
size_ok(const tr_msg *m, size_t head, bool fam, uint64_t counted)
{
	if (!fam) {
		return m->size == head;
	}
	return m->size >= head && m->size - head == counted;
}

static void
on_request(tr_ctx *cx, struct store *s, const tr_msg *m, const struct kind *k)
{
	const char *id = NULL;
	bool ok = false;
	const void *p = m->data;

	/* The counted size is read only once the head is known to be there. */
	switch (m->type) {
	case TR_MSG_STORE_PUT:
		ok = m->size >= sizeof(tr_store_put_req) &&
		     size_ok(m, sizeof(tr_store_put_req), true,
			     ((const tr_store_put_req *)p)->size);
		id = ok ? ((const tr_store_put_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_GET:
	case TR_MSG_STORE_DELETE:
	case TR_MSG_STORE_SNAPSHOT_LOAD:
		ok = size_ok(m, sizeof(tr_store_key_req), false, 0);
		id = ok ? ((const tr_store_key_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_APPEND:
		ok = m->size >= sizeof(tr_store_append_req) &&
		     size_ok(m, sizeof(tr_store_append_req), true,
			     ((const tr_store_append_req *)p)->size);
		id = ok ? ((const tr_store_append_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_READ:
		ok = size_ok(m, sizeof(tr_store_read_req), false, 0);
		id = ok ? ((const tr_store_read_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_TRIM:
		ok = size_ok(m, sizeof(tr_store_trim_req), false, 0);
		id = ok ? ((const tr_store_trim_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_SNAPSHOT_SAVE:
		ok = m->size >= sizeof(tr_store_snapshot_req) &&
		     size_ok(m, sizeof(tr_store_snapshot_req), true,
			     ((const tr_store_snapshot_req *)p)->size);
		id = ok ? ((const tr_store_snapshot_req *)p)->id : NULL;
		break;
	case TR_MSG_STORE_LOG_APPEND: {
		const tr_store_log_req *q = p;
		ok = m->size >= sizeof(*q) &&
		     size_ok(m, sizeof(*q), true, q->size);
		if (ok && (!has_nul(q->kind, sizeof(q->kind)) ||
			   !has_nul(q->actor, sizeof(q->actor)))) {
			refuse(cx, s, m, "log kind or actor too long");
			return;
		}
		if (ok && !json_ok(q->body, q->size)) {
			refuse(cx, s, m, "log body is not valid JSON");
			return;
		}
		break;
	}
	case TR_MSG_STORE_LOG_QUERY: {
		const tr_store_log_query *q = p;
		ok = size_ok(m, sizeof(*q), false, 0);
		if (ok && !has_nul(q->kind, sizeof(q->kind))) {
			refuse(cx, s, m, "log kind too long");
			return;
		}
		break;
	}
	case TR_MSG_STORE_LOG_PRUNE:
		ok = size_ok(m, sizeof(tr_store_prune_req), false, 0);
		break;
	default:
		break;
	}
	if (!ok) {
		refuse(cx, s, m, "%s: a payload of %zu bytes does not add up",
		       k->what, m->size);
		return;
	}
	if (id != NULL && !id_ok(cx, s, m, id)) {
		return;
	}
	accept(cx, s, m, k->is_write);
}

static void
on_stats(tr_ctx *cx, struct store *s, const tr_msg *m)
{
	(void)tr_reply(cx, m, TR_MSG_STORE_STATS_REPLY, &s->stats,
		       sizeof(s->stats));
}

/* The thread says: the open's outcome, or a batch, is in the channel. */
static void
on_done(tr_ctx *cx, struct store *s)
{
	pthread_mutex_lock(&s->ch->mu);
	bool opened = s->ch->opened;
	struct batch *b = s->ch->done;
	s->ch->done = NULL;
	pthread_mutex_unlock(&s->ch->mu);

	if (!s->started && opened) {
		tr_msg start = s->start;
		s->started = true;
		if (s->ch->open_status < 0) {
			send_error(cx, &start, s->ch->open_status,
				   s->ch->open_code, s->ch->open_err);
			fail_pending(cx, s);
			tr_stop_self(cx, TR_EXIT_ERROR);
			return;
		}
		s->open = true;
		tr_store_reply r = { 0 };
		(void)tr_reply(cx, &start, TR_MSG_STORE_REPLY, &r, sizeof(r));
	}
	/* The thread first: what gathered meanwhile commits while this
	 * batch's answers go out, instead of after them. */
	if (b != NULL) {
		s->inflight = false;
	}
	hand_over(s);
	if (b != NULL) {
		answer_batch(cx, s, b);
	}
}

static void
chan_free(struct chan *ch)
{
	pthread_mutex_destroy(&ch->mu);
	pthread_cond_destroy(&ch->cv);
	free(ch);
}

static void
on_start(tr_ctx *cx, struct store *s, const tr_msg *m)
{
	tr_msg start;
	struct boot *b = tr__boot_take(cx, m, m->size, &start);

	if (b == NULL) {
		refuse(cx, s, m, "a start that is not one");
		return;
	}
	s->boot = b;
	struct chan *ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		send_error(cx, &start, TR_ENOMEM, 0, "store: out of memory");
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}
	pthread_mutex_init(&ch->mu, NULL);
	pthread_cond_init(&ch->cv, NULL);
	ch->rt = tr_ctx_runtime(cx);
	ch->owner = tr_self(cx);
	ch->boot = b;
	if (pthread_create(&s->th, NULL, store_thread, ch) != 0) {
		chan_free(ch);
		char text[TR_STORE_ERROR_SIZE];
		snprintf(text, sizeof(text),
			 "store %s: cannot start its thread", b->path);
		send_error(cx, &start, TR_ESYS, 0, text);
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}
	s->ch = ch;
	s->has_thread = true;
	s->start = start;
}

static void
store_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct store *s = state;

	/* The start is the first message (see boot.h), and only the first. */
	if ((m->type == MSG_START) == (s->boot != NULL)) {
		refuse(cx, s, m, "unexpected message type 0x%x", m->type);
		return;
	}
	if (m->type == MSG_START) {
		on_start(cx, s, m);
		return;
	}
	if (m->type == MSG_DONE && m->size == 0 && s->ch != NULL) {
		on_done(cx, s);
		return;
	}
	if (m->type == TR_MSG_STORE_STATS && m->size == 0) {
		on_stats(cx, s, m);
		return;
	}
	const struct kind *k = kind_of(m->type);
	if (k == NULL) {
		refuse(cx, s, m, "unknown request type 0x%x", m->type);
		return;
	}
	on_request(cx, s, m, k);
}

/* Waits (under mu) for the batch the thread holds, and takes it. */
static struct batch *
wait_done(struct chan *ch)
{
	while (ch->done == NULL) {
		pthread_cond_wait(&ch->cv, &ch->mu);
	}
	struct batch *b = ch->done;
	ch->done = NULL;
	return b;
}

/*
 * However the store stops, what it took is committed and answered before
 * the file closes: the batch with the thread, then the pending one. The
 * wait is on a worker, bounded by those two transactions.
 */
static void
store_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct store *s = state;
	struct chan *ch = s->ch;

	(void)reason;
	if (ch == NULL) {
		struct batch *p;
		while ((p = pending_pop(s)) != NULL) {
			batch_free(p);
		}
		free(s->boot);
		return;
	}
	pthread_mutex_lock(&ch->mu);
	ch->closing = true;
	while (!ch->opened) {
		pthread_cond_wait(&ch->cv, &ch->mu);
	}
	bool open_ok = ch->open_status == TR_OK;
	struct batch *b = s->inflight ? wait_done(ch) : NULL;
	pthread_mutex_unlock(&ch->mu);
	if (b != NULL) {
		answer_batch(cx, s, b);
	}
	if (!s->started) {
		/* Stopped before it answered its start. */
		s->started = true;
		if (open_ok) {
			tr_store_reply r = { 0 };
			(void)tr_reply(cx, &s->start, TR_MSG_STORE_REPLY, &r,
				       sizeof(r));
		} else {
			send_error(cx, &s->start, ch->open_status,
				   ch->open_code, ch->open_err);
		}
	}
	s->open = open_ok;
	s->inflight = false;
	while (open_ok && s->pending != NULL) {
		b = pending_pop(s);
		pthread_mutex_lock(&ch->mu);
		ch->todo = b;
		pthread_cond_broadcast(&ch->cv);
		b = wait_done(ch);
		pthread_mutex_unlock(&ch->mu);
		answer_batch(cx, s, b);
	}
	fail_pending(cx, s);
	pthread_mutex_lock(&ch->mu);
	ch->quit = true;
	pthread_cond_broadcast(&ch->cv);
	pthread_mutex_unlock(&ch->mu);
	pthread_join(s->th, NULL);
	chan_free(ch);
	free(s->boot);
}

static const tr_actor_def store_def = {
	.size = sizeof(tr_actor_def),
	.name = "store",
	.state_size = sizeof(struct store),
	.teardown = store_teardown,
	.handle = store_handle,
};

/* ---- the public function ------------------------------------------------ */

tr_err
tr_store_start(tr_ctx *cx, const tr_store_config *cfg, tr_pid *out, tr_ref *ref)
{
	/* A size that ends before max_batch: a caller of an older header,
	 * which gets the default bound. */
	if (cx == NULL || cfg == NULL ||
	    cfg->size < offsetof(tr_store_config, max_batch) ||
	    cfg->path == NULL || cfg->path[0] == '\0' ||
	    cfg->durability > TR_STORE_FULL) {
		return tr__boot_fail(TR_EINVAL, out, ref);
	}
	size_t n = strlen(cfg->path);
	size_t size = sizeof(struct boot) + n + 1;
	struct boot *b = calloc(1, size);
	if (b == NULL) {
		return tr__boot_fail(TR_ENOMEM, out, ref);
	}
	b->max_batch = cfg->size >= offsetof(tr_store_config, max_batch) +
						       sizeof(cfg->max_batch) &&
				       cfg->max_batch != 0
			       ? cfg->max_batch
			       : DEFAULT_MAX_BATCH;
	b->durability = cfg->durability;
	b->busy_timeout_ms = cfg->busy_timeout_ms != 0 ? cfg->busy_timeout_ms
						       : DEFAULT_BUSY_MS;
	b->max_page_count = cfg->max_page_count;
	memcpy(b->path, cfg->path, n + 1);
	return tr__boot_start(cx, &store_def, cfg->is_linked, MSG_START, b,
			      size, free, out, ref);
}
