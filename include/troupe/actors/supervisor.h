#ifndef TROUPE_ACTORS_SUPERVISOR_H
#define TROUPE_ACTORS_SUPERVISOR_H

/*
 * Supervisor: an actor that starts children, watches them through links
 * and restarts them by a strategy (Erlang/OTP's supervisor behaviour).
 *
 * A supervisor is described by flags (strategy, restart intensity, an
 * optional observer) and an ordered list of child specs. It traps exits,
 * starts its children one at a time in spec order (each child's init must
 * have returned before the next one is spawned), and links every child.
 * When a child stops, its restart type decides whether it is restarted,
 * and the strategy decides which siblings are restarted with it. More
 * than @intensity restarts within @period_ms make the supervisor stop all
 * its children and stop itself with TR_SUP_EXIT_INTENSITY, so that its
 * own supervisor decides what happens next.
 *
 * Children are stopped one at a time in reverse start order: an exit
 * signal TR_EXIT_SHUTDOWN (a child that traps exits sees it as a message
 * and may clean up), then TR_EXIT_KILL if it has not stopped within its
 * shutdown time. Children of a simple_one_for_one supervisor are stopped
 * all at once, as in OTP. The supervisor never blocks: while it waits for
 * a child it keeps taking messages and handles them, in arrival order,
 * once what it is doing (a start, a restart, a request) is done.
 *
 * One start serves every caller: tr_sup_start() on an actor's context or
 * a thread's (an inbox's, the runtime's) returns at once, and the outcome
 * of the start comes later as a reply to the caller (none on the
 * runtime's context). The supervisor is linked with the calling actor
 * only when its flags ask for it (is_linked), as OTP's start_link against
 * start. It ends by TR_SUP_OP_STOP, by its parent's exit, by its restart
 * intensity, or with the runtime.
 *
 * Requests (start_child, terminate_child, ...) are requests in the core,
 * made with tr_sup_call(): the requester gets exactly one outcome under
 * the request's reference, the supervisor's TR_MSG_SUP_REPLY (a
 * TR_MSG_SUP_CHILDREN for TR_SUP_OP_WHICH_CHILDREN), or
 * TR_MSG_REQUEST_FAILED when the supervisor stopped first or the timeout
 * passed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the supervisor module. */
#define TR_MSG_SUP_BASE (TR_MSG_ACTORS_BASE + 0x100u)

/**
 * TR_MSG_SUP_EVENT - Sent to the observer of a supervisor (see struct
 * tr_sup_flags). Payload: struct tr_sup_event, read with
 * TR_MSG_AS(m, tr_sup_event); the sender is the supervisor.
 */
#define TR_MSG_SUP_EVENT (TR_MSG_SUP_BASE + 0x01u)

/**
 * TR_MSG_SUP_REPLY - The answer to a request (but
 * TR_SUP_OP_WHICH_CHILDREN) or to a start (op 0). Payload: struct tr_sup_reply,
 * read with TR_MSG_AS(m, tr_sup_reply). The sender is the supervisor.
 */
#define TR_MSG_SUP_REPLY (TR_MSG_SUP_BASE + 0x02u)

/**
 * TR_MSG_SUP_CHILDREN - The answer to TR_SUP_OP_WHICH_CHILDREN. Payload:
 * struct tr_sup_children, of variable length: read it with
 * TR_MSG_AS_FAM(m, tr_sup_children, reply.count, children); m->size is
 * sizeof(tr_sup_children) plus
 * reply.count struct tr_sup_child_info. The sender is the supervisor.
 */
#define TR_MSG_SUP_CHILDREN (TR_MSG_SUP_BASE + 0x03u)

/* TR_MSG_SUP_BASE + 0x80 ... + 0xFF are the supervisor's own messages. */

/*
 * Exit reasons of a supervisor, in the range below TR_EXIT_USER that the
 * standard actors use (the runtime's own reasons are small numbers).
 */
/** More than @intensity restarts within @period_ms. */
#define TR_SUP_EXIT_INTENSITY 0x80
/** A child failed to start while the supervisor started. */
#define TR_SUP_EXIT_START_FAILED 0x81

/** Size of a child id, terminating NUL included (ids are 1 to 31 bytes). */
#define TR_SUP_ID_MAX 32

/** Shutdown time that waits for the child as long as it takes. */
#define TR_SUP_INFINITY UINT64_MAX

/** Largest restart intensity accepted. */
#define TR_SUP_MAX_INTENSITY 100000u

/** Deepest nesting of supervisor specs inside one another. */
#define TR_SUP_MAX_DEPTH 8

/**
 * enum tr_sup_strategy - What is restarted when a child stops.
 * @TR_SUP_ONE_FOR_ONE:   only that child
 * @TR_SUP_ONE_FOR_ALL:   all children: the others are stopped (reverse
 *                        order), then all are started again (in order)
 * @TR_SUP_REST_FOR_ONE:  that child and the ones after it in start order
 * @TR_SUP_SIMPLE_ONE_FOR_ONE: one_for_one over dynamic children that are
 *                        all made from one template spec and started with
 *                        a per-child argument (TR_SUP_OP_START_CHILD)
 */
typedef enum tr_sup_strategy {
	TR_SUP_ONE_FOR_ONE = 0,
	TR_SUP_ONE_FOR_ALL = 1,
	TR_SUP_REST_FOR_ONE = 2,
	TR_SUP_SIMPLE_ONE_FOR_ONE = 3,
} tr_sup_strategy;

/**
 * enum tr_sup_restart - When a stopped child is restarted.
 * @TR_SUP_PERMANENT: always
 * @TR_SUP_TRANSIENT: only after an abnormal exit (a reason other than
 *                    TR_EXIT_NORMAL and TR_EXIT_SHUTDOWN)
 * @TR_SUP_TEMPORARY: never; its spec is removed when it stops
 */
typedef enum tr_sup_restart {
	TR_SUP_PERMANENT = 0,
	TR_SUP_TRANSIENT = 1,
	TR_SUP_TEMPORARY = 2,
} tr_sup_restart;

/** enum tr_sup_child_type - What a child is (reported by requests). */
typedef enum tr_sup_child_type {
	TR_SUP_WORKER = 0,
	TR_SUP_SUPERVISOR = 1,
} tr_sup_child_type;

/**
 * struct tr_sup_flags - How a supervisor behaves.
 * @size:      sizeof(tr_sup_flags), an ABI guard; required
 * @strategy:  enum tr_sup_strategy
 * @intensity: restarts allowed within @period_ms (0: the first restart
 *             already stops the supervisor, as MaxR = 0 in OTP); at most
 *             TR_SUP_MAX_INTENSITY
 * @period_ms: the sliding window of @intensity; at least 1
 * @observer:  receives a TR_MSG_SUP_EVENT for each thing that happens to
 *             a child; TR_PID_NONE for none. Events are best effort: a
 *             bounded observer mailbox that is full drops them
 * @is_linked: tr_sup_start() links the supervisor with the calling actor,
 *             its parent (OTP's start_link): an exit signal from the
 *             parent makes the supervisor stop its children in reverse
 *             order and then stop with the parent's reason, and the
 *             supervisor's own exit reaches the parent. Only an actor can
 *             be linked (a thread's context gives TR_EINVAL). False (the
 *             default): no link, as OTP's start; the supervisor then runs
 *             until it is stopped (TR_SUP_OP_STOP, its restart intensity,
 *             the runtime). Ignored in a nested spec's @sup_flags: a child
 *             is always linked with its supervisor
 */
typedef struct tr_sup_flags {
	size_t size;
	tr_sup_strategy strategy;
	uint32_t intensity;
	uint64_t period_ms;
	tr_pid observer;
	bool is_linked;
} tr_sup_flags;

/**
 * struct tr_sup_child_spec - One child of a supervisor.
 * @size:        sizeof(tr_sup_child_spec), an ABI guard; required
 * @id:          a name, unique within the supervisor, 1 to
 *               TR_SUP_ID_MAX - 1 bytes; copied
 * @def:         the child's definition; must outlive the supervisor and
 *               every child started from it (normally a static const)
 * @arg:         passed to def->init on every start and restart; the
 *               caller keeps it alive as long as the supervisor may
 *               restart the child. For a simple_one_for_one template it
 *               is ignored: each child gets the argument of its
 *               TR_SUP_OP_START_CHILD request
 * @restart:     enum tr_sup_restart
 * @type:        enum tr_sup_child_type; forced to TR_SUP_SUPERVISOR when
 *               @sup_flags is set
 * @shutdown_ms: how long a shutdown waits after TR_EXIT_SHUTDOWN before
 *               TR_EXIT_KILL; 0 kills at once; TR_SUP_INFINITY waits as
 *               long as it takes (what a nested supervisor should have,
 *               so that it can stop its own children in order)
 * @sup_flags, @sup_specs, @sup_nspecs: instead of @def and @arg (which
 *               must then be NULL): the child is a supervisor with these
 *               flags and children, the same three things tr_sup_start()
 *               takes. They are copied with this spec, recursively, so
 *               they need to stay valid only during the call that takes
 *               the spec; every restart of the child starts from the copy
 */
typedef struct tr_sup_child_spec {
	size_t size;
	const char *id;
	const tr_actor_def *def;
	void *arg;
	tr_sup_restart restart;
	tr_sup_child_type type;
	uint64_t shutdown_ms;
	const tr_sup_flags *sup_flags;
	const struct tr_sup_child_spec *sup_specs;
	size_t sup_nspecs;
} tr_sup_child_spec;

/**
 * enum tr_sup_event_kind - What a TR_MSG_SUP_EVENT reports.
 * @TR_SUP_EV_STARTED:      a child started (at supervisor start, by
 *                          TR_SUP_OP_START_CHILD or TR_SUP_OP_RESTART_CHILD);
 *                          @pid is the new pid
 * @TR_SUP_EV_RESTARTED:    the supervisor restarted a child after an exit
 *                          (also the siblings restarted with it); @pid is
 *                          the new pid
 * @TR_SUP_EV_EXITED:       a child stopped, for whatever cause (also when
 *                          the supervisor stopped it); @pid is the pid
 *                          that stopped, @reason its exit reason
 * @TR_SUP_EV_START_FAILED: a child's init failed (@reason is its exit
 *                          reason, normally TR_EXIT_INIT_FAILED), or it
 *                          could not be spawned (@status is the error)
 * @TR_SUP_EV_INTENSITY:    the restart intensity was exceeded; @id names
 *                          the child whose exit was one too many
 * @TR_SUP_EV_SHUTDOWN:     the supervisor begins to stop its children and
 *                          will then stop with @reason
 */
typedef enum tr_sup_event_kind {
	TR_SUP_EV_STARTED = 1,
	TR_SUP_EV_RESTARTED = 2,
	TR_SUP_EV_EXITED = 3,
	TR_SUP_EV_START_FAILED = 4,
	TR_SUP_EV_INTENSITY = 5,
	TR_SUP_EV_SHUTDOWN = 6,
} tr_sup_event_kind;

/**
 * struct tr_sup_event - Payload of TR_MSG_SUP_EVENT.
 * @kind:   enum tr_sup_event_kind
 * @reason: an exit reason (see the kinds); 0 otherwise
 * @status: TR_OK, or the spawn error of TR_SUP_EV_START_FAILED
 * @sup:    the supervisor
 * @pid:    the child (see the kinds); TR_PID_NONE when none
 * @id:     the child's id; empty for TR_SUP_EV_SHUTDOWN
 */
typedef struct tr_sup_event {
	uint32_t kind;
	int32_t reason;
	int32_t status;
	uint32_t reserved;
	tr_pid sup;
	tr_pid pid;
	char id[TR_SUP_ID_MAX];
} tr_sup_event;

/**
 * enum tr_sup_op - Requests to a supervisor (struct tr_sup_request).
 * @TR_SUP_OP_START_CHILD:    add @spec and start it (@arg instead for
 *                            simple_one_for_one); reply @pid
 * @TR_SUP_OP_TERMINATE_CHILD: stop child @id (by @pid for
 *                            simple_one_for_one, also one that stopped
 *                            and whose exit waits its turn, as in OTP)
 *                            as a shutdown would; the spec stays
 *                            (temporary and simple_one_for_one children
 *                            are removed); reply @pid = the pid that was
 *                            stopped, TR_PID_NONE if none ran
 * @TR_SUP_OP_RESTART_CHILD:  start the stopped child @id again; reply @pid
 * @TR_SUP_OP_DELETE_CHILD:   remove the spec of the stopped child @id
 * @TR_SUP_OP_WHICH_CHILDREN: reply with one tr_sup_child_info per child,
 *                            in start order: a TR_MSG_SUP_CHILDREN
 * @TR_SUP_OP_COUNT_CHILDREN: reply with the counts of struct tr_sup_reply
 * @TR_SUP_OP_STOP:           stop all children in reverse order, then the
 *                            supervisor (reason TR_EXIT_SHUTDOWN); the
 *                            reply comes when the children are gone
 */
typedef enum tr_sup_op {
	TR_SUP_OP_START_CHILD = 2,
	TR_SUP_OP_TERMINATE_CHILD = 3,
	TR_SUP_OP_RESTART_CHILD = 4,
	TR_SUP_OP_DELETE_CHILD = 5,
	TR_SUP_OP_WHICH_CHILDREN = 6,
	TR_SUP_OP_COUNT_CHILDREN = 7,
	TR_SUP_OP_STOP = 8,
} tr_sup_op;

/**
 * struct tr_sup_request - A request; see enum tr_sup_op for each op.
 * @size: sizeof(tr_sup_request), an ABI guard; required
 * @op:   enum tr_sup_op
 * @spec: TR_SUP_OP_START_CHILD of a supervisor that is not
 *        simple_one_for_one; copied (as by tr_sup_start())
 * @arg:  TR_SUP_OP_START_CHILD of a simple_one_for_one supervisor: the
 *        child's init argument (kept alive by the caller for restarts)
 * @id:   the child, for TERMINATE_CHILD, RESTART_CHILD and DELETE_CHILD;
 *        copied
 * @pid:  the child, for TERMINATE_CHILD of a simple_one_for_one supervisor
 */
typedef struct tr_sup_request {
	size_t size;
	tr_sup_op op;
	const tr_sup_child_spec *spec;
	void *arg;
	const char *id;
	tr_pid pid;
} tr_sup_request;

/**
 * struct tr_sup_reply - Payload of TR_MSG_SUP_REPLY.
 * @op:     enum tr_sup_op of the request answered; 0 for the start's
 *          reply, whose @pid is the supervisor
 * @status: TR_OK; TR_EINVAL (the op does not apply to this supervisor or
 *          lacks its argument); TR_ENOENT (no such child); TR_EEXIST (a
 *          child with that id exists; @pid is its pid if it runs);
 *          TR_ESTATE (the child runs, for RESTART_CHILD and DELETE_CHILD;
 *          @pid is its pid); TR_EREJECTED (the child's init failed:
 *          @reason is its exit reason); TR_ECLOSED (the supervisor
 *          was stopped from outside while it acted on the request, or
 *          on its start; a request still waiting its turn then fails
 *          with TR_MSG_REQUEST_FAILED); TR_ENOMEM; or the error that
 *          kept a child from being spawned
 * @reason: see @status
 * @count:  TR_SUP_OP_WHICH_CHILDREN: entries of tr_sup_children.children
 * @pid:    see enum tr_sup_op
 * @specs, @active, @supervisors, @workers: TR_SUP_OP_COUNT_CHILDREN, as
 *          OTP's count_children: child specs (1 for simple_one_for_one),
 *          children running, and children of each type, running or not
 *
 * Payload of TR_MSG_SUP_REPLY (fixed size: TR_MSG_AS(m, tr_sup_reply)),
 * and the head of struct tr_sup_children.
 */
typedef struct tr_sup_reply {
	uint32_t op;
	int32_t status;
	int32_t reason;
	uint32_t count;
	tr_pid pid;
	uint32_t specs;
	uint32_t active;
	uint32_t supervisors;
	uint32_t workers;
} tr_sup_reply;

/**
 * struct tr_sup_child_info - One child in a TR_SUP_OP_WHICH_CHILDREN reply.
 * @id:      its id (the template's id for simple_one_for_one)
 * @pid:     its pid; TR_PID_NONE when it does not run
 * @type:    enum tr_sup_child_type
 * @restart: enum tr_sup_restart
 */
typedef struct tr_sup_child_info {
	char id[TR_SUP_ID_MAX];
	tr_pid pid;
	uint32_t type;
	uint32_t restart;
} tr_sup_child_info;

/**
 * struct tr_sup_children - Payload of TR_MSG_SUP_CHILDREN.
 * @reply:    op and status as in TR_MSG_SUP_REPLY; @reply.count is
 *            the number of @children (0 when @reply.status is an error)
 * @children: one entry per child, in start order
 *
 * Variable length: m->size is sizeof(tr_sup_children) +
 * reply.count * sizeof(tr_sup_child_info). Read it in place:
 *
 *     const tr_sup_children *c =
 *             TR_MSG_AS_FAM(m, tr_sup_children, reply.count, children);
 *     for (uint32_t i = 0; i < c->reply.count; i++) ... c->children[i] ...
 */
TR_FAM_BEGIN
typedef struct tr_sup_children {
	tr_sup_reply reply;
	tr_sup_child_info children[];
} tr_sup_children;
TR_FAM_END

/**
 * tr_sup_start() - Start a supervisor (OTP's supervisor:start_link or
 * start, CAF's spawn): from an actor, or from any thread through its
 * inbox's or the runtime's context. It never blocks.
 * @cx:    context of the calling actor or thread; the start reply goes to
 *         its pid (an inbox's with tr_inbox_ctx(); none with
 *         tr_runtime_ctx(), which gets no reply)
 * @flags: how it behaves; @flags->is_linked links it with the calling
 *         actor, its parent
 * @specs: its children, started in this order; may be NULL when @n is 0
 * @n:     number of specs (exactly 1, the template, for
 *         simple_one_for_one, which starts with no child)
 * @out:   on success the supervisor's pid; may be NULL
 * @ref:   on success the start's reference (zero with tr_runtime_ctx());
 *         may be NULL
 *
 * The children start after this returns, in the supervisor's first
 * turns. The start is a request (tr_request()) with no timeout: the
 * caller then gets exactly one outcome, with TR_MSG_F_REPLY and m->ref
 * equal to *@ref. It is a TR_MSG_SUP_REPLY with op 0 and
 * status TR_OK once every child has started; or the same reply with the
 * status of the child that failed, sent after the children already
 * started have been stopped again (the supervisor then stops with
 * TR_SUP_EXIT_START_FAILED, which a parent also sees through the link);
 * or status TR_ECLOSED if the supervisor was stopped from outside while
 * it started; or TR_MSG_REQUEST_FAILED if it stopped before it took the
 * start. A thread that wants to wait starts the supervisor on its
 * inbox's context and takes the reply with tr_inbox_recv() with the reference
 * (other messages, such as the observer's events, stay queued):
 *
 *     tr_ref ref;
 *     tr_received r;
 *     bool up = false;
 *     if (tr_sup_start(tr_inbox_ctx(ib), &fl, specs, n, &sup, &ref) == 0 &&
 *         tr_inbox_recv(ib, &ref, -1, &r) == TR_OK) {
 *             const tr_sup_reply *rp = TR_MSG_AS(&r, tr_sup_reply);
 *             up = r.type == TR_MSG_SUP_REPLY && rp != NULL &&
 *                  rp->status == TR_OK;
 *             tr_received_fini(&r);
 *     }
 *
 * Ownership: @flags and @specs are copied (deeply, nested supervisor
 *            specs included); each spec's @def and @arg are borrowed as
 *            struct tr_sup_child_spec says.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @flags, a bad flag, a bad
 *            spec, a wrong number of specs, nesting deeper than
 *            TR_SUP_MAX_DEPTH, @flags->is_linked on a thread's context);
 *            TR_EEXIST (two specs with the same id); TR_ENOMEM;
 *            TR_ECLOSED (the runtime is stopping). On error no actor was
 *            left running and no reply will come.
 */
TR_API tr_err tr_sup_start(tr_ctx *cx, const tr_sup_flags *flags,
			   const tr_sup_child_spec *specs, size_t n,
			   tr_pid *out, tr_ref *ref);

/**
 * tr_sup_call() - Make a request to supervisor @sup.
 * @cx:         context of the calling actor or thread; the outcome goes
 *              to its pid (an inbox's with tr_inbox_ctx()). On
 *              tr_runtime_ctx(), which has no pid, the request is sent
 *              and nothing answers it.
 * @sup:        the supervisor
 * @req:        the request
 * @timeout_ms: as for tr_request(): 0 waits without limit
 * @ref:        on success the request's reference (zero on
 *              tr_runtime_ctx()); may be NULL
 *
 * A request in the core, as tr_request() (it cannot be one the caller
 * builds: the child spec it carries is copied deeply at this call). The
 * caller gets exactly one outcome, with TR_MSG_F_REPLY and m->ref equal
 * to *@ref: a TR_MSG_SUP_REPLY (a TR_MSG_SUP_CHILDREN for
 * TR_SUP_OP_WHICH_CHILDREN), or TR_MSG_REQUEST_FAILED when @sup does not
 * exist, stops before it answers, or the timeout passes.
 * Ownership: @req is copied, with the spec and id it points to (not the
 *            spec's @def and @arg, see struct tr_sup_child_spec).
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (NULL @cx or @req, a too small @req->size,
 *            TR_PID_NONE @sup, an unknown op, a bad spec or id, an op
 *            without the id or pid it needs); TR_ENOMEM; the errors of
 *            tr_request(). On error no outcome will come.
 */
TR_API tr_err tr_sup_call(tr_ctx *cx, tr_pid sup, const tr_sup_request *req,
			  uint64_t timeout_ms, tr_ref *ref);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_SUPERVISOR_H */
