#ifndef TROUPE_ACTORS_POOL_H
#define TROUPE_ACTORS_POOL_H

/*
 * Pool: one actor that owns N identical workers and routes messages to
 * them (Akka's pool routers: RoundRobinPool, SmallestMailboxPool,
 * BroadcastPool, ConsistentHashingPool, ScatterGatherFirstCompleted; in
 * Erlang, a poolboy-like pool whose checkout is a message).
 *
 * The workers are children of a supervisor (<troupe/actors/supervisor.h>,
 * one_for_one, permanent children) that the pool starts linked to itself
 * and observes: a worker that stops is restarted, and the pool routes to
 * the replacement from the moment the supervisor reports it. A worker
 * keeps its slot when it is replaced, so a consistent hash still sends
 * its keys there.
 *
 * Routing keeps the sender. A client sends its message to the pool
 * (tr_send(), tr_pool_route()); the pool passes it on with
 * tr_forward(), so the worker sees the client's type, bytes and pid
 * (tr_sender()) exactly as if the client had sent it directly, and
 * answers the client, never the pool. Workers need not know they are in
 * a pool. A plain tr_send() or tr_request() of an application type (below
 * TR_MSG_ACTORS_BASE, copied) to the pool itself is routed with the pool's
 * strategy; a request is passed on with tr_forward(), so the worker's
 * tr_reply() answers the requester. tr_pool_route() picks the strategy
 * per message, and also routes the other types below
 * TR_MSG_SYSTEM_BASE.
 *
 * A message routed to a slot whose worker is not running (starting, or
 * being restarted) waits in the pool, in order, and is sent to the new
 * worker once the supervisor reports it started. Messages already queued
 * at a worker that stops are lost with it (counted as dead letters, as
 * for any actor).
 *
 * Control (resize, stats, the worker list, stop) is a request in the core:
 * tr_request() of a TR_MSG_POOL_CONTROL to the pool. The requester gets
 * exactly one outcome under the request's reference: the pool's reply
 * (TR_MSG_POOL_REPLY, or TR_MSG_POOL_WORKERS for the worker list), or
 * TR_MSG_REQUEST_FAILED when the pool stopped first or the timeout
 * passed. A resize or stop still waiting for its turn when the pool is
 * stopped from outside (tr_stop(), the runtime's stop) gets that failure
 * (sent as a plain message, it becomes a counted dead letter); the one in
 * progress is answered (a stop as done, a resize with TR_ECLOSED).
 *
 * Every call that sends takes the caller's context, an actor's or a
 * thread's (tr_inbox_ctx(), tr_runtime_ctx()): its pid is the sender the
 * workers see and where replies and results go. There are no variants
 * for threads. The start is one of them: tr_pool_start() returns at once
 * and its outcome comes as a reply; the pool is linked with the calling
 * actor only when its config asks for it (is_linked).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>
#include <troupe/actors/supervisor.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the pool module. */
#define TR_MSG_POOL_BASE (TR_MSG_ACTORS_BASE + 0x700u)

/**
 * TR_MSG_POOL_REPLY - The answer to a control request (but
 * TR_POOL_OP_WORKERS) or to a start (op 0). Payload: struct tr_pool_reply, read
 * with TR_MSG_AS(m, tr_pool_reply). The sender is the pool.
 */
#define TR_MSG_POOL_REPLY (TR_MSG_POOL_BASE + 0x00u)

/**
 * TR_MSG_POOL_GATHERED - The result of a scatter-gather: the reply to the
 * request tr_pool_gather() made. Payload: struct tr_pool_gather_result,
 * of variable length.
 */
#define TR_MSG_POOL_GATHERED (TR_MSG_POOL_BASE + 0x01u)

/**
 * TR_MSG_POOL_WORKERS - The answer to TR_POOL_OP_WORKERS. Payload:
 * struct tr_pool_workers, of variable length: read it with
 * TR_MSG_AS_FAM(m, tr_pool_workers, reply.count, pids); m->size is
 * sizeof(tr_pool_workers) plus reply.count pids. The sender is the pool.
 */
#define TR_MSG_POOL_WORKERS (TR_MSG_POOL_BASE + 0x02u)

/**
 * TR_MSG_POOL_CONTROL - A control request to a pool, sent with
 * tr_request() (or tr_send(), then the answer is a plain message).
 * Payload: struct tr_pool_request, copied. Answered with a
 * TR_MSG_POOL_REPLY, or a TR_MSG_POOL_WORKERS for TR_POOL_OP_WORKERS; a
 * payload of the wrong size, an unknown op or a resize out of range is
 * answered with status TR_EINVAL.
 */
#define TR_MSG_POOL_CONTROL (TR_MSG_POOL_BASE + 0x03u)

/* TR_MSG_POOL_BASE + 0x80 ... + 0xFF are the pool's own messages. */

/** Largest number of workers in one pool. */
#define TR_POOL_MAX_WORKERS 1024u

/**
 * enum tr_pool_strategy - How a message picks its worker.
 * @TR_POOL_DEFAULT:         the pool's configured strategy
 * @TR_POOL_ROUND_ROBIN:     the next running worker in slot order
 * @TR_POOL_LEAST_LOADED:    the running worker with the fewest messages
 *                           waiting in its mailbox (tr_mailbox_len());
 *                           ties go round robin
 * @TR_POOL_BROADCAST:       a copy to every worker
 * @TR_POOL_CONSISTENT_HASH: the worker that owns the caller's 64-bit key
 *                           by jump consistent hashing over the slots,
 *                           so a resize moves about 1/N of the keys
 */
typedef enum tr_pool_strategy {
	TR_POOL_DEFAULT = 0,
	TR_POOL_ROUND_ROBIN = 1,
	TR_POOL_LEAST_LOADED = 2,
	TR_POOL_BROADCAST = 3,
	TR_POOL_CONSISTENT_HASH = 4,
} tr_pool_strategy;

/**
 * struct tr_pool_config - What a pool is made of.
 * @size:        sizeof(tr_pool_config), an ABI guard; required
 * @def:         the workers' definition; must outlive the pool and every
 *               worker (normally a static const). The workers are spawned
 *               from a copy whose mailbox_bound is @def's bound, or
 *               UINT32_MAX when @def has none, so that their queues can
 *               be measured; the copy is kept for the life of the process
 *               (one per distinct definition)
 * @arg:         passed to every worker's init, on every start and restart;
 *               the caller keeps it alive as long as the pool runs
 * @workers:     initial number of workers, 1 to TR_POOL_MAX_WORKERS
 * @strategy:    the strategy of a plain send to the pool and of
 *               TR_POOL_DEFAULT:
 *               TR_POOL_ROUND_ROBIN (also for 0), TR_POOL_LEAST_LOADED or
 *               TR_POOL_BROADCAST (a hash needs a key)
 * @intensity:   restarts allowed within @period_ms before the workers'
 *               supervisor gives up (and the pool stops with
 *               TR_SUP_EXIT_INTENSITY); 0 means 10
 * @period_ms:   the window of @intensity; 0 means 10000
 * @shutdown_ms: how long a worker may take to stop after TR_EXIT_SHUTDOWN
 *               (on shrink and stop) before it is killed; 0 means 5000;
 *               TR_SUP_INFINITY waits as long as it takes
 * @max_pending: messages the pool holds for workers that are not running,
 *               over all slots; more are dropped and counted; 0 means
 *               10000
 * @is_linked:   tr_pool_start() links the pool with the calling actor,
 *               its parent: an exit signal from the parent (other than
 *               TR_EXIT_NORMAL) stops the workers and then the pool with
 *               the parent's reason, and the pool's own exit reaches the
 *               parent. Only an actor can be linked (a thread's context
 *               gives TR_EINVAL). False (the default): no link; the pool
 *               runs until TR_POOL_OP_STOP, its workers' restart
 *               intensity, or the runtime stops it
 */
typedef struct tr_pool_config {
	size_t size;
	const tr_actor_def *def;
	void *arg;
	uint32_t workers;
	tr_pool_strategy strategy;
	uint32_t intensity;
	uint64_t period_ms;
	uint64_t shutdown_ms;
	uint32_t max_pending;
	bool is_linked;
} tr_pool_config;

/**
 * enum tr_pool_op - Control requests (struct tr_pool_request).
 * @TR_POOL_OP_RESIZE:  grow or shrink to @workers workers. New workers are
 *                      started through the supervisor; the reply comes
 *                      when they have started (their init returned).
 *                      Shrinking takes the highest slots out of routing at
 *                      once and stops their workers through the
 *                      supervisor (TR_EXIT_SHUTDOWN, then TR_EXIT_KILL
 *                      after @shutdown_ms); each handles the messages
 *                      already in its mailbox first, unless it traps exits
 *                      and chooses otherwise. The reply comes when they are
 *                      gone. Resizes and stops are acted on one at a time,
 *                      in arrival order
 * @TR_POOL_OP_STATS:   the counters of struct tr_pool_reply
 * @TR_POOL_OP_WORKERS: the counters and one pid per slot, in slot order
 *                      (TR_PID_NONE for a slot whose worker is not
 *                      running): a TR_MSG_POOL_WORKERS
 * @TR_POOL_OP_STOP:    stop the workers (through the supervisor), then the
 *                      pool (TR_EXIT_NORMAL); the reply comes when the
 *                      workers are gone. Messages routed meanwhile are
 *                      dropped
 */
typedef enum tr_pool_op {
	TR_POOL_OP_RESIZE = 2,
	TR_POOL_OP_STATS = 3,
	TR_POOL_OP_WORKERS = 4,
	TR_POOL_OP_STOP = 5,
} tr_pool_op;

/**
 * struct tr_pool_request - Payload of TR_MSG_POOL_CONTROL.
 * @op:      enum tr_pool_op
 * @workers: TR_POOL_OP_RESIZE: the new size, 1 to TR_POOL_MAX_WORKERS
 *
 *     tr_pool_request q = { .op = TR_POOL_OP_RESIZE, .workers = 8 };
 *     tr_request(cx, pool, TR_MSG_POOL_CONTROL, &q, sizeof(q), 5000, &ref);
 */
typedef struct tr_pool_request {
	uint32_t op;
	uint32_t workers;
} tr_pool_request;

/**
 * struct tr_pool_reply - Payload of TR_MSG_POOL_REPLY.
 * @op:              enum tr_pool_op answered; 0 for the start's reply
 * @status:          TR_OK; TR_EREJECTED (a worker's init failed, at start
 *                   or on grow; a failed grow keeps the workers that did
 *                   start); TR_ECLOSED (the pool stopped before it could
 *                   act); TR_ENOMEM; or a supervisor's error
 * @workers:         slots now (the pool's size)
 * @live:            slots whose worker runs now
 * @count:           TR_POOL_OP_WORKERS: entries of tr_pool_workers.pids
 * @pending:         messages waiting in the pool for a worker to start
 * @round_robin, @least_loaded, @broadcast, @consistent_hash: messages
 *                   routed by each strategy (a broadcast counts once)
 * @delivered:       messages handed to workers (each broadcast copy
 *                   counts; a scatter-gather's requests do not, its
 *                   collector sends them); handled or counted as dead
 *                   letters by the runtime from there
 * @dropped:         messages the pool could not hand to any worker: a
 *                   bounded worker mailbox full (TR_EFULL), more than
 *                   @max_pending waiting, routed while the pool stops,
 *                   still waiting when it stopped, or not routable at
 *                   all (another module's type, a pointer message). The
 *                   last two kinds and those routed while it stops are
 *                   also dead letters (tr_unhandled()); a request among
 *                   them fails at once with TR_EXIT_UNHANDLED
 * @gathers:         scatter-gather requests served
 * @restarts:        workers the supervisor restarted
 *
 * Payload of TR_MSG_POOL_REPLY (fixed size: TR_MSG_AS(m, tr_pool_reply)),
 * and the head of struct tr_pool_workers.
 */
typedef struct tr_pool_reply {
	uint32_t op;
	int32_t status;
	uint32_t workers;
	uint32_t live;
	uint32_t count;
	uint32_t pending;
	uint64_t round_robin;
	uint64_t least_loaded;
	uint64_t broadcast;
	uint64_t consistent_hash;
	uint64_t delivered;
	uint64_t dropped;
	uint64_t gathers;
	uint64_t restarts;
} tr_pool_reply;

/**
 * struct tr_pool_workers - Payload of TR_MSG_POOL_WORKERS.
 * @reply: the counters, as in TR_MSG_POOL_REPLY; @reply.count is the
 *         number of @pids (0 when @reply.status is an error)
 * @pids:  one pid per slot, in slot order
 *
 * Variable length: m->size is sizeof(tr_pool_workers) +
 * reply.count * sizeof(tr_pid). Read it in place:
 *
 *     const tr_pool_workers *w =
 *             TR_MSG_AS_FAM(m, tr_pool_workers, reply.count, pids);
 *     for (uint32_t i = 0; i < w->reply.count; i++) ... w->pids[i] ...
 */
TR_FAM_BEGIN
typedef struct tr_pool_workers {
	tr_pool_reply reply;
	tr_pid pids[];
} tr_pool_workers;
TR_FAM_END

/**
 * struct tr_pool_gather_req - A scatter-gather request.
 * @size:       sizeof(tr_pool_gather_req), an ABI guard; required
 * @type:       the request's message type, below TR_MSG_SYSTEM_BASE
 * @data:       its payload, copied; may be NULL when @len is 0
 * @len:        payload size
 * @count:      how many workers to ask: 0 (or more than run) asks every
 *              running worker; otherwise the next @count running workers
 *              in round-robin order
 * @timeout_ms: how long to wait for the replies, at least 1
 */
typedef struct tr_pool_gather_req {
	size_t size;
	uint32_t type;
	const void *data;
	size_t len;
	uint32_t count;
	uint64_t timeout_ms;
} tr_pool_gather_req;

/**
 * struct tr_pool_gather_entry - One reply in a scatter-gather result.
 * @worker: who replied
 * @type:   the reply's type
 * @data:   its bytes, inside the result message and aligned to 16; NULL
 *          when empty
 * @size:   number of bytes
 */
typedef struct tr_pool_gather_entry {
	tr_pid worker;
	uint32_t type;
	const void *data;
	size_t size;
} tr_pool_gather_entry;

/**
 * struct tr_pool_gather_result - A scatter-gather result, the payload of
 * TR_MSG_POOL_GATHERED.
 * @status:  TR_OK (every worker asked replied); TR_ETIMEDOUT (the timeout
 *           came first: the replies received are included, @missing
 *           did not answer); TR_ENOENT (the pool stopped, or had no
 *           running worker, before the request was sent); TR_ENOMEM (the
 *           replies could not be kept: only the counts come, with
 *           @replied 0)
 * @asked:   workers the request was sent to
 * @replied: entries of @replies, at most one per worker asked, in
 *           arrival order
 * @missing: @asked - @replied
 * @replies: the replies, then @missing entries naming the workers that
 *           did not answer (type 0, no bytes); the replies' bytes follow
 *           in the same block
 *
 * A pointer message of variable length (its entries point into it, so
 * it is handed over, never copied): read m->data in place as a
 * `const tr_pool_gather_result *`; m->size is the size of the whole
 * block, entries and bytes included. Keep it past the handler with
 * tr_msg_take_ptr() and free() it; from an inbox, tr_received_fini()
 * frees it.
 */
TR_FAM_BEGIN
typedef struct tr_pool_gather_result {
	int32_t status;
	uint32_t asked;
	uint32_t replied;
	uint32_t missing;
	tr_pool_gather_entry replies[];
} tr_pool_gather_result;
TR_FAM_END

/**
 * tr_pool_start() - Start a pool: from an actor, or from any thread
 * through its inbox's or the runtime's context. It never blocks.
 * @cx:  context of the calling actor or thread; the start reply goes to
 *       its pid (none with tr_runtime_ctx(), which gets no reply)
 * @cfg: the pool (copied); @cfg->is_linked links it with the calling
 *       actor, its parent
 * @out: on success the pool's pid; may be NULL
 * @ref: on success the start's reference (zero with tr_runtime_ctx());
 *       may be NULL
 *
 * The workers start after this returns. The start is a request
 * (tr_request()) with no timeout: the caller then gets exactly one
 * outcome, with TR_MSG_F_REPLY and m->ref equal to *@ref. It is a
 * TR_MSG_POOL_REPLY with op 0 and status TR_OK once the
 * workers all started; or the same reply with the error (TR_EREJECTED
 * when a worker's init failed; TR_ECLOSED when the pool was stopped
 * first), after which the pool stops and nothing of it is left running;
 * or TR_MSG_REQUEST_FAILED if the pool stopped before it took the start.
 * Messages routed before the workers run wait in the pool. A thread that
 * wants to wait starts the pool on its inbox's context, then takes the
 * reply with tr_inbox_recv(ib, &ref, -1, &r) (see tr_sup_start()).
 * Ownership: @cfg is copied; @cfg->def and @cfg->arg are borrowed as
 *            struct tr_pool_config says.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @cfg, a small @cfg->size, a bad
 *            definition, a worker count out of range, an unknown or hash
 *            default strategy, @cfg->is_linked on a thread's context);
 *            TR_ENOMEM; TR_ECLOSED (the runtime is stopping). On error no
 *            actor was left running and no reply comes.
 */
TR_API tr_err tr_pool_start(tr_ctx *cx, const tr_pool_config *cfg, tr_pid *out,
			    tr_ref *ref);

/**
 * tr_pool_route() - Route a message through pool @pool.
 * @cx:   context of the calling actor or thread: the worker sees its pid
 *        as the sender (TR_PID_NONE for tr_runtime_ctx())
 * @pool: the pool
 * @how:  enum tr_pool_strategy
 * @key:  TR_POOL_CONSISTENT_HASH: the key (equal keys reach the same
 *        worker while the pool's size stays the same); ignored otherwise
 * @type: the message's type, below TR_MSG_SYSTEM_BASE; the worker gets it
 *        unchanged
 * @data: payload, copied; may be NULL when @len is 0
 * @len:  payload size
 *
 * The message is one send to the pool; the pool's choice and its send to
 * the worker happen in the pool's next turn. Messages routed one after
 * another by one sender to the same worker arrive in order.
 * Ownership: none (@data is copied).
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK (a stopped pool makes it a dead letter, as any send);
 *            TR_EINVAL (NULL @cx, TR_PID_NONE @pool, an unknown @how, a
 *            reserved @type, NULL @data with @len > 0); TR_EMSGSIZE;
 *            TR_ENOMEM; the other errors of tr_send().
 */
TR_API tr_err tr_pool_route(tr_ctx *cx, tr_pid pool, tr_pool_strategy how,
			    uint64_t key, uint32_t type, const void *data,
			    size_t len);

/**
 * tr_pool_gather() - Send a request to the workers of @pool and get one
 * reply with all of theirs (scatter-gather).
 * @cx:   context of the calling actor, or of a thread's inbox
 *        (tr_inbox_ctx()), which receives the result
 * @pool: the pool
 * @req:  the request
 * @ref:  on success the reference the result answers; may be NULL
 *
 * A request in the core to a short-lived collector actor, which asks the
 * pool which workers to ask and sends them the request itself, so a
 * worker answers it like any message, with tr_reply() or by sending to
 * tr_sender(). The pool counts it in @gathers, not its copies in
 * @delivered. A reply counts when it comes from a worker that was asked
 * (the first one from each). When every asked worker replied, or when
 * @req->timeout_ms has passed since the collector started, it answers
 * with a TR_MSG_POOL_GATHERED whose payload is a struct
 * tr_pool_gather_result. A worker's reply that comes later is dropped (a
 * dead letter once the collector is gone). On TR_OK the caller gets
 * exactly one outcome with TR_MSG_F_REPLY and m->ref equal to *@ref: the
 * result, or TR_MSG_REQUEST_FAILED if the collector was stopped first (a
 * kill, the runtime's stop).
 * Ownership: @req and the bytes it points to are copied.
 * Thread:    actor, or an inbox's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @req, tr_runtime_ctx(), which
 *            has no pid to receive the result, a small @req->size,
 *            TR_PID_NONE @pool, a reserved type, NULL data with a length,
 *            a zero timeout); TR_EMSGSIZE; TR_ENOMEM; TR_ECLOSED. On
 *            error no outcome will come.
 */
TR_API tr_err tr_pool_gather(tr_ctx *cx, tr_pid pool,
			     const tr_pool_gather_req *req, tr_ref *ref);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_POOL_H */
