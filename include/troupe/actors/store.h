#ifndef TROUPE_ACTORS_STORE_H
#define TROUPE_ACTORS_STORE_H

/*
 * Store: one SQLite database owned by an actor, for key-value state, event
 * journals with snapshots, and an activity log.
 *
 * The store is an actor. tr_store_start() spawns it with the file's path
 * and settings; it opens the database (WAL mode) on a thread of its own and
 * answers the start once the schema is in place. It is stopped like any
 * actor. Everything else is a request to it, answered by exactly one
 * message under the request's reference (m->ref, with TR_MSG_F_REPLY), as
 * OTP documents a gen_server's calls:
 *
 *   request                     payload                success reply
 *   TR_MSG_STORE_PUT            tr_store_put_req       TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_GET            tr_store_key_req       TR_MSG_STORE_VALUE
 *   TR_MSG_STORE_DELETE         tr_store_key_req       TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_APPEND         tr_store_append_req    TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_READ           tr_store_read_req      TR_MSG_STORE_EVENTS
 *   TR_MSG_STORE_TRIM           tr_store_trim_req      TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_SNAPSHOT_SAVE  tr_store_snapshot_req  TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_SNAPSHOT_LOAD  tr_store_key_req       TR_MSG_STORE_SNAPSHOT
 *   TR_MSG_STORE_LOG_APPEND     tr_store_log_req       TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_LOG_QUERY      tr_store_log_query     TR_MSG_STORE_LOG
 *   TR_MSG_STORE_LOG_PRUNE      tr_store_prune_req     TR_MSG_STORE_REPLY
 *   TR_MSG_STORE_STATS          none (size 0)          TR_MSG_STORE_STATS_REPLY
 *
 * Every failure, whatever the request, is a TR_MSG_STORE_ERROR (struct
 * tr_store_error): a status, SQLite's result code when SQLite said no, and
 * a text that names the file and the reason. A store that is gone gives
 * TR_MSG_REQUEST_FAILED, from the runtime. For example, from a handler
 * (or a thread, on tr_inbox_ctx(ib)):
 *
 *     size_t n = sizeof(tr_store_put_req) + len;
 *     tr_store_put_req *q = calloc(1, n);
 *     snprintf(q->id, sizeof(q->id), "counter/%u", k);
 *     q->size = len;
 *     memcpy(q->data, bytes, len);
 *     tr_request(cx, store, TR_MSG_STORE_PUT, q, n, 0, &ref);
 *     free(q);
 *     ...
 *     // then, for the message whose m->ref is ref:
 *     if (m->type == TR_MSG_STORE_REPLY) { ... on disk ... }
 *     else if (m->type == TR_MSG_STORE_ERROR) {
 *             const tr_store_error *e = TR_MSG_AS(m, tr_store_error);
 *             ... e->status, e->text ...
 *     }
 *
 * Acknowledgements. A write (put, delete, append, trim, snapshot save, log
 * append, prune) is answered only after the transaction that holds it has
 * committed. Writes that arrive while a transaction commits are gathered
 * into the next one (group commit), so a commit is paid once for many
 * writers. A write that fails gets its TR_MSG_STORE_ERROR and the others
 * of its transaction are committed without it (the transaction is run
 * again with a savepoint per write). The store must be its file's only
 * writer. What an acknowledged write survives depends on
 * tr_store_config.durability: TR_STORE_NORMAL the process being killed,
 * TR_STORE_FULL also a power loss.
 *
 * Order. Requests are carried out in the order the store takes them, reads
 * included, so a read sees every write the store took before it, and one
 * requester's writes are acknowledged in the order it sent them.
 *
 * Ids. State and journals are kept under a persistent id: a string chosen
 * by the user (not a pid, which changes on restart), 1 to
 * TR_STORE_ID_SIZE - 1 bytes, NUL-terminated in its array.
 *
 * Refusals. A request the store cannot understand (an unknown type, a
 * payload whose size does not add up, an id or kind without its NUL, an
 * empty id, a log body that is not JSON) gets a TR_MSG_STORE_ERROR with
 * TR_EINVAL and is counted in tr_store_stats.unhandled; a plain message
 * (not a request) it cannot use is counted too and is a dead letter. The
 * valid messages sent with tr_send() are carried out and answered with a
 * plain message (tr_reply() semantics).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the store module. */
#define TR_MSG_STORE_BASE (TR_MSG_ACTORS_BASE + 0x900u)

/**
 * TR_MSG_STORE_REPLY - The acknowledgement of a write, and the answer to a
 * start that succeeded. Payload: struct tr_store_reply, read with
 * TR_MSG_AS(m, tr_store_reply).
 */
#define TR_MSG_STORE_REPLY (TR_MSG_STORE_BASE + 0x00u)

/**
 * TR_MSG_STORE_ERROR - Any request that failed or was refused, and a
 * start that failed. Payload: struct tr_store_error, read with
 * TR_MSG_AS(m, tr_store_error).
 */
#define TR_MSG_STORE_ERROR (TR_MSG_STORE_BASE + 0x01u)

/**
 * TR_MSG_STORE_VALUE - The answer to a get. Payload: struct
 * tr_store_value in a pointer message, read with
 * TR_MSG_AS_FAM(m, tr_store_value, size, data).
 */
#define TR_MSG_STORE_VALUE (TR_MSG_STORE_BASE + 0x02u)

/**
 * TR_MSG_STORE_EVENTS - The answer to a read of a journal. Payload:
 * struct tr_store_events in a pointer message (see there).
 */
#define TR_MSG_STORE_EVENTS (TR_MSG_STORE_BASE + 0x03u)

/**
 * TR_MSG_STORE_SNAPSHOT - The answer to a snapshot load. Payload: struct
 * tr_store_snapshot in a pointer message, read with
 * TR_MSG_AS_FAM(m, tr_store_snapshot, size, data).
 */
#define TR_MSG_STORE_SNAPSHOT (TR_MSG_STORE_BASE + 0x04u)

/**
 * TR_MSG_STORE_LOG - The answer to a log query. Payload: struct
 * tr_store_log_page in a pointer message (see there).
 */
#define TR_MSG_STORE_LOG (TR_MSG_STORE_BASE + 0x05u)

/**
 * TR_MSG_STORE_STATS_REPLY - The answer to TR_MSG_STORE_STATS. Payload:
 * struct tr_store_stats, read with TR_MSG_AS(m, tr_store_stats).
 */
#define TR_MSG_STORE_STATS_REPLY (TR_MSG_STORE_BASE + 0x06u)

/**
 * TR_MSG_STORE_PUT - Request: set the value under an id (struct
 * tr_store_put_req, followed by the value). Reply: TR_MSG_STORE_REPLY
 * (value 0) once committed; TR_MSG_STORE_ERROR otherwise.
 */
#define TR_MSG_STORE_PUT (TR_MSG_STORE_BASE + 0x10u)

/**
 * TR_MSG_STORE_GET - Request: the value under tr_store_key_req.id. Reply:
 * TR_MSG_STORE_VALUE; TR_MSG_STORE_ERROR with TR_ENOENT when the id has
 * no value.
 */
#define TR_MSG_STORE_GET (TR_MSG_STORE_BASE + 0x11u)

/**
 * TR_MSG_STORE_DELETE - Request: remove the value under
 * tr_store_key_req.id. Reply: TR_MSG_STORE_REPLY once committed, value 1
 * if there was one and 0 if not.
 */
#define TR_MSG_STORE_DELETE (TR_MSG_STORE_BASE + 0x12u)

/**
 * TR_MSG_STORE_APPEND - Request: append one event to an id's journal
 * (struct tr_store_append_req, followed by the event's bytes). Reply:
 * TR_MSG_STORE_REPLY once committed, value the event's sequence number;
 * TR_MSG_STORE_ERROR with TR_EEXIST when a sequence number was given and
 * is not the next one.
 */
#define TR_MSG_STORE_APPEND (TR_MSG_STORE_BASE + 0x13u)

/**
 * TR_MSG_STORE_READ - Request: events of an id after a sequence number,
 * a page at a time (struct tr_store_read_req). Reply: TR_MSG_STORE_EVENTS
 * (an empty page for an id with no events after it).
 */
#define TR_MSG_STORE_READ (TR_MSG_STORE_BASE + 0x14u)

/**
 * TR_MSG_STORE_TRIM - Request: delete an id's events up to and including
 * a sequence number (struct tr_store_trim_req), typically after a
 * snapshot. The sequence numbers go on from where they were. Reply:
 * TR_MSG_STORE_REPLY once committed, value the number of events deleted.
 */
#define TR_MSG_STORE_TRIM (TR_MSG_STORE_BASE + 0x15u)

/**
 * TR_MSG_STORE_SNAPSHOT_SAVE - Request: keep a snapshot of an id's state
 * as of a sequence number (struct tr_store_snapshot_req, followed by the
 * bytes). One snapshot per id is kept: the new one replaces an older one.
 * Reply: TR_MSG_STORE_REPLY once committed; TR_MSG_STORE_ERROR with
 * TR_EEXIST when the saved snapshot has a higher sequence number.
 */
#define TR_MSG_STORE_SNAPSHOT_SAVE (TR_MSG_STORE_BASE + 0x16u)

/**
 * TR_MSG_STORE_SNAPSHOT_LOAD - Request: the snapshot of
 * tr_store_key_req.id. Reply: TR_MSG_STORE_SNAPSHOT; TR_MSG_STORE_ERROR
 * with TR_ENOENT when the id has none.
 */
#define TR_MSG_STORE_SNAPSHOT_LOAD (TR_MSG_STORE_BASE + 0x17u)

/**
 * TR_MSG_STORE_LOG_APPEND - Request: append a record to the activity log
 * (struct tr_store_log_req, followed by its JSON body). Reply:
 * TR_MSG_STORE_REPLY once committed, value the record's id (ids rise and
 * are never reused); TR_MSG_STORE_ERROR with TR_EINVAL for a body that is
 * not valid JSON.
 */
#define TR_MSG_STORE_LOG_APPEND (TR_MSG_STORE_BASE + 0x18u)

/**
 * TR_MSG_STORE_LOG_QUERY - Request: records by time range and kind, in
 * id order, a page at a time (struct tr_store_log_query). Reply:
 * TR_MSG_STORE_LOG.
 */
#define TR_MSG_STORE_LOG_QUERY (TR_MSG_STORE_BASE + 0x19u)

/**
 * TR_MSG_STORE_LOG_PRUNE - Request: delete old records, by age, by count
 * or both (struct tr_store_prune_req). Reply: TR_MSG_STORE_REPLY once
 * committed, value the number of records deleted.
 */
#define TR_MSG_STORE_LOG_PRUNE (TR_MSG_STORE_BASE + 0x1Au)

/**
 * TR_MSG_STORE_STATS - Request, no payload: the store's counters, as of
 * the transactions that have finished. Reply: TR_MSG_STORE_STATS_REPLY.
 */
#define TR_MSG_STORE_STATS (TR_MSG_STORE_BASE + 0x1Bu)

/* TR_MSG_STORE_BASE + 0x80 ... + 0xFF are the store's own messages. */

/** Size of a persistent id's array; an id holds at most this less one. */
#define TR_STORE_ID_SIZE 128

/** Size of a log record's kind array (NUL included). */
#define TR_STORE_KIND_SIZE 64

/** Size of a log record's actor array (NUL included). */
#define TR_STORE_ACTOR_SIZE 128

/** Size of an error's text (NUL included). */
#define TR_STORE_ERROR_SIZE 384

/**
 * The version of the schema this library writes (PRAGMA user_version). A
 * database of a higher version is refused at start.
 */
#define TR_STORE_SCHEMA_VERSION 2

/**
 * enum tr_store_durability - What an acknowledged write survives.
 * @TR_STORE_NORMAL: WAL with synchronous=NORMAL: the process being killed
 *                   (kill -9, a crash), not a power loss or an operating
 *                   system crash, which may lose the last transactions
 *                   (never corrupt the file)
 * @TR_STORE_FULL:   WAL with synchronous=FULL: also a power loss, at the
 *                   cost of an fsync per transaction
 */
typedef enum tr_store_durability {
	TR_STORE_NORMAL = 0,
	TR_STORE_FULL = 1,
} tr_store_durability;

/**
 * struct tr_store_config - What a store opens.
 * @size:            sizeof(tr_store_config), an ABI guard; required
 * @path:            the database file, created if absent; copied
 * @durability:      enum tr_store_durability
 * @busy_timeout_ms: how long a transaction waits for a lock another
 *                   connection holds before it fails; 0 means 5000
 * @max_page_count:  a limit on the file's size in pages (PRAGMA
 *                   max_page_count), for quotas and for tests of a full
 *                   disk: a write past it fails with TR_EFULL; 0 for
 *                   SQLite's default (no practical limit)
 * @is_linked:       tr_store_start() links the store with the calling
 *                   actor (OTP's start_link); only an actor can be linked
 *                   (a thread's context gives TR_EINVAL)
 * @max_batch:       at most this many requests in one transaction; what
 *                   gathers beyond it waits for the next one, in order;
 *                   0 means 4096. It bounds a transaction's memory and
 *                   how long a stop waits per transaction; a small one
 *                   costs commits under many writers. A caller whose
 *                   @size ends before this field gets the default.
 */
typedef struct tr_store_config {
	size_t size;
	const char *path;
	uint32_t durability;
	uint32_t busy_timeout_ms;
	uint32_t max_page_count;
	bool is_linked;
	uint32_t max_batch;
} tr_store_config;

/**
 * struct tr_store_reply - Payload of TR_MSG_STORE_REPLY.
 * @value: what the request says: an appended event's sequence number, a
 *         log record's id, a count of rows deleted; 0 otherwise
 */
typedef struct tr_store_reply {
	uint64_t value;
} tr_store_reply;

/**
 * struct tr_store_error - Payload of TR_MSG_STORE_ERROR.
 * @status: why: TR_EINVAL (a request the store cannot understand),
 *          TR_ENOENT (nothing under the id), TR_EEXIST (a sequence number
 *          out of turn), TR_EFULL (the disk or max_page_count is full),
 *          TR_ETIMEDOUT (another connection held the lock past the busy
 *          timeout), TR_EREJECTED (at start: not a database, a newer
 *          schema, a foreign schema), TR_ENOMEM, TR_ESYS (anything else
 *          SQLite or the system refused)
 * @code:   SQLite's extended result code when SQLite said no; 0 otherwise
 * @text:   what happened, naming the file; NUL-terminated
 */
typedef struct tr_store_error {
	int32_t status;
	int32_t code;
	char text[TR_STORE_ERROR_SIZE];
} tr_store_error;

/**
 * struct tr_store_key_req - Payload of TR_MSG_STORE_GET, TR_MSG_STORE_DELETE
 * and TR_MSG_STORE_SNAPSHOT_LOAD.
 * @id: the persistent id, NUL-terminated
 */
typedef struct tr_store_key_req {
	char id[TR_STORE_ID_SIZE];
} tr_store_key_req;

/**
 * struct tr_store_put_req - Payload of TR_MSG_STORE_PUT.
 * @id:   the persistent id, NUL-terminated
 * @size: number of bytes in @data
 * @data: the value
 *
 * Variable length: send sizeof(tr_store_put_req) + size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_store_put_req {
	char id[TR_STORE_ID_SIZE];
	uint64_t size;
	unsigned char data[];
} tr_store_put_req;
TR_FAM_END

/**
 * struct tr_store_value - Payload of TR_MSG_STORE_VALUE.
 * @size: number of bytes in @data
 * @data: the value
 *
 * In a pointer message of sizeof(tr_store_value) + size bytes; from an
 * inbox, tr_received_fini() frees it.
 */
TR_FAM_BEGIN
typedef struct tr_store_value {
	uint64_t size;
	unsigned char data[];
} tr_store_value;
TR_FAM_END

/**
 * struct tr_store_append_req - Payload of TR_MSG_STORE_APPEND.
 * @id:   the journal's persistent id, NUL-terminated
 * @seq:  0: the next sequence number, whatever it is; otherwise the one
 *        the caller expects to be next (the last appended plus one, 1 for
 *        a new journal): another number is refused with TR_EEXIST, which
 *        tells two writers of one journal apart
 * @size: number of bytes in @data
 * @data: the event
 *
 * Variable length: send sizeof(tr_store_append_req) + size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_store_append_req {
	char id[TR_STORE_ID_SIZE];
	uint64_t seq;
	uint64_t size;
	unsigned char data[];
} tr_store_append_req;
TR_FAM_END

/**
 * struct tr_store_read_req - Payload of TR_MSG_STORE_READ.
 * @id:        the journal's persistent id, NUL-terminated
 * @after_seq: events with a higher sequence number are read (0: from the
 *             first)
 * @max_count: at most this many events; 0 means 1000
 * @max_bytes: at most about this many bytes of events in the page (one
 *             event is always returned, however large); 0 means 1 MiB
 */
typedef struct tr_store_read_req {
	char id[TR_STORE_ID_SIZE];
	uint64_t after_seq;
	uint32_t max_count;
	uint32_t max_bytes;
} tr_store_read_req;

/**
 * struct tr_store_event - One event of a struct tr_store_events.
 * @seq:    its sequence number
 * @offset: where its bytes start, from the start of the payload (m->data)
 * @size:   number of its bytes
 */
typedef struct tr_store_event {
	uint64_t seq;
	uint64_t offset;
	uint64_t size;
} tr_store_event;

/**
 * struct tr_store_events - Payload of TR_MSG_STORE_EVENTS: a page of a
 * journal.
 * @last_seq: the journal's last sequence number (the highest ever
 *            appended, trimmed events included); 0 for a journal never
 *            written
 * @count:    entries in @events
 * @more:     1 when events follow the page's last one: read again with
 *            after_seq = events[count - 1].seq
 * @events:   the events, in sequence order; their bytes follow the array
 *
 * In a pointer message; an event's bytes are at
 * (const unsigned char *)m->data + events[i].offset:
 *
 *     const tr_store_events *p = m->data;
 *     for (uint32_t i = 0; i < p->count; i++) {
 *             const unsigned char *b =
 *                     (const unsigned char *)m->data + p->events[i].offset;
 *             apply(p->events[i].seq, b, p->events[i].size);
 *     }
 */
TR_FAM_BEGIN
typedef struct tr_store_events {
	uint64_t last_seq;
	uint32_t count;
	uint32_t more;
	tr_store_event events[];
} tr_store_events;
TR_FAM_END

/**
 * struct tr_store_trim_req - Payload of TR_MSG_STORE_TRIM.
 * @id:     the journal's persistent id, NUL-terminated
 * @to_seq: events with this sequence number or a lower one are deleted
 */
typedef struct tr_store_trim_req {
	char id[TR_STORE_ID_SIZE];
	uint64_t to_seq;
} tr_store_trim_req;

/**
 * struct tr_store_snapshot_req - Payload of TR_MSG_STORE_SNAPSHOT_SAVE.
 * @id:   the persistent id, NUL-terminated
 * @seq:  the sequence number of the last event the state includes
 * @size: number of bytes in @data
 * @data: the state
 *
 * Variable length: send sizeof(tr_store_snapshot_req) + size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_store_snapshot_req {
	char id[TR_STORE_ID_SIZE];
	uint64_t seq;
	uint64_t size;
	unsigned char data[];
} tr_store_snapshot_req;
TR_FAM_END

/**
 * struct tr_store_snapshot - Payload of TR_MSG_STORE_SNAPSHOT.
 * @seq:  as saved
 * @size: number of bytes in @data
 * @data: the state
 *
 * In a pointer message of sizeof(tr_store_snapshot) + size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_store_snapshot {
	uint64_t seq;
	uint64_t size;
	unsigned char data[];
} tr_store_snapshot;
TR_FAM_END

/**
 * struct tr_store_log_req - Payload of TR_MSG_STORE_LOG_APPEND.
 * @time_ms: when, in milliseconds since the epoch (the caller's clock)
 * @kind:    what kind of record, NUL-terminated (may be empty)
 * @actor:   who, NUL-terminated (may be empty)
 * @size:    number of bytes in @body
 * @body:    a JSON text (no NUL needed); checked with cJSON
 *
 * Variable length: send sizeof(tr_store_log_req) + size bytes.
 */
TR_FAM_BEGIN
typedef struct tr_store_log_req {
	int64_t time_ms;
	char kind[TR_STORE_KIND_SIZE];
	char actor[TR_STORE_ACTOR_SIZE];
	uint64_t size;
	char body[];
} tr_store_log_req;
TR_FAM_END

/**
 * struct tr_store_log_query - Payload of TR_MSG_STORE_LOG_QUERY.
 * @from_ms:   records at or after this time
 * @to_ms:     records before this time; 0 for no upper bound
 * @kind:      records of this kind only; empty for every kind
 * @after_id:  records with a higher id (the cursor: 0 for the first page,
 *             then the last id of the previous page)
 * @limit:     at most this many records; 0 means 100
 * @max_bytes: at most about this many bytes of bodies in the page (one
 *             record is always returned); 0 means 1 MiB
 */
typedef struct tr_store_log_query {
	int64_t from_ms;
	int64_t to_ms;
	char kind[TR_STORE_KIND_SIZE];
	uint64_t after_id;
	uint32_t limit;
	uint32_t max_bytes;
} tr_store_log_query;

/**
 * struct tr_store_log_record - One record of a struct tr_store_log_page.
 * @id:          the record's id
 * @time_ms:     as appended
 * @kind:        as appended, NUL-terminated
 * @actor:       as appended, NUL-terminated
 * @body_offset: where its JSON body starts, from the start of the payload;
 *               the body is followed by a NUL
 * @body_size:   its length, the NUL not counted
 */
typedef struct tr_store_log_record {
	uint64_t id;
	int64_t time_ms;
	char kind[TR_STORE_KIND_SIZE];
	char actor[TR_STORE_ACTOR_SIZE];
	uint64_t body_offset;
	uint64_t body_size;
} tr_store_log_record;

/**
 * struct tr_store_log_page - Payload of TR_MSG_STORE_LOG: a page of the
 * activity log.
 * @count:   entries in @records
 * @more:    1 when more records match: query again with after_id =
 *           records[count - 1].id
 * @records: in id order; their bodies follow the array, at
 *           (const char *)m->data + records[i].body_offset
 *
 * In a pointer message.
 */
TR_FAM_BEGIN
typedef struct tr_store_log_page {
	uint32_t count;
	uint32_t more;
	tr_store_log_record records[];
} tr_store_log_page;
TR_FAM_END

/**
 * struct tr_store_prune_req - Payload of TR_MSG_STORE_LOG_PRUNE.
 * @before_ms: delete records older than this time; 0 for no age limit
 * @keep:      then keep at most this many of the newest records; 0 for no
 *             count limit
 */
typedef struct tr_store_prune_req {
	int64_t before_ms;
	uint64_t keep;
} tr_store_prune_req;

/**
 * struct tr_store_stats - Payload of TR_MSG_STORE_STATS_REPLY.
 * @writes:       writes acknowledged
 * @write_errors: writes answered with an error
 * @reads:        reads answered, with data or an error (TR_ENOENT...)
 * @transactions: transactions committed that held writes; fewer than
 *                @writes when writes were gathered
 * @batch_max:    the most requests one transaction held (at most
 *                tr_store_config.max_batch)
 * @unhandled:    messages the store could not use (requests among them
 *                were answered with TR_EINVAL)
 */
typedef struct tr_store_stats {
	uint64_t writes;
	uint64_t write_errors;
	uint64_t reads;
	uint64_t transactions;
	uint64_t batch_max;
	uint64_t unhandled;
} tr_store_stats;

/**
 * tr_store_start() - Start a store: from an actor, or from any thread
 * through its inbox's or the runtime's context. It never blocks.
 * @cx:  context of the calling actor or thread; the start's answer goes
 *       to its pid (none with tr_runtime_ctx(), which gets no answer)
 * @cfg: the file and settings (copied)
 * @out: on success the store's pid; may be NULL
 * @ref: on success the start's reference (zero with tr_runtime_ctx());
 *       may be NULL
 *
 * The store opens the file on its own thread. The start is a request
 * with no timeout: the caller gets exactly one outcome under *@ref, a
 * TR_MSG_STORE_REPLY once the database is open and its schema current,
 * or a TR_MSG_STORE_ERROR that names the file and the reason, after which
 * the store stops (TR_EXIT_ERROR) and answers what was sent to it
 * meanwhile with the same error: a file that is not a database, a
 * database of a newer schema version, one of a foreign schema (tables
 * that are not the store's), a lock held past the busy timeout, a file
 * that cannot be opened. A refused file is not written to. Requests sent
 * before the answer wait and are carried out after it.
 *
 * The store stops like any actor: tr_stop(), an exit signal, its parent's
 * exit with @cfg->is_linked, the runtime's stop. Then it commits what it
 * holds (its teardown waits for those transactions, one per
 * @cfg->max_batch requests), answers it, and closes the file; what was
 * still in its mailbox gets TR_MSG_REQUEST_FAILED (TR_EXIT_NOPROC), as
 * for any actor.
 * Ownership: @cfg and its path are copied.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @cfg, a @cfg->size that ends
 *            before @cfg->max_batch, no
 *            path, an unknown durability, @cfg->is_linked on a thread's
 *            context); TR_ENOMEM; TR_ECLOSED (the runtime is stopping). On
 *            error no actor was left running and no answer comes.
 */
TR_API tr_err tr_store_start(tr_ctx *cx, const tr_store_config *cfg,
			     tr_pid *out, tr_ref *ref);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_STORE_H */
