/*
 * Actors and their slots.
 *
 * An actor lives in a slot of a chunked table that is never freed while
 * the runtime exists (type-stable memory): a sender may look a slot up and
 * push into its mailbox while the actor stops, and the push is still safe.
 * The mailbox is continuous across the generations of a slot; every message
 * carries the pid it was sent to, and the worker running the slot drops (as
 * a dead letter) any message whose pid is not the slot's current one. So a
 * stale pid never reaches the actor that reused the slot.
 *
 * Threads: `pid`, `bound`, `mb_len` and the mailbox head are touched by
 * senders on any thread. Everything else belongs to the thread running the
 * actor, or to the spawner before the pid is published.
 */
#ifndef TR_RUNTIME_ACTOR_H
#define TR_RUNTIME_ACTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_stack.h>

#include <troupe/actor.h>

#include "runtime/mailbox.h"
#include "runtime/msg.h"

struct tr__worker;
struct tr__actor_ext;

/* Payloads of system messages. */
struct tr__sys_exit {
	uint64_t from;
	int32_t reason;
	/* The sender stopped (a link fired), so the link is gone. A signal
	 * from tr_exit() leaves the link in place, as Erlang's exit/2. */
	bool link_ended;
};

struct tr__sys_down {
	uint64_t ref;
	uint64_t who;
	int32_t reason;
};

/* Internal message types (all at or above TR_MSG_SYSTEM_BASE). */
#define TR__SYS_BASE      0xFFFFFF00u
#define TR__SYS_INIT      (TR__SYS_BASE + 1)
#define TR__SYS_STOP      (TR__SYS_BASE + 2)
#define TR__SYS_EXIT      (TR__SYS_BASE + 3)
#define TR__SYS_LINK      (TR__SYS_BASE + 4)
#define TR__SYS_UNLINK    (TR__SYS_BASE + 5)
#define TR__SYS_MONITOR   (TR__SYS_BASE + 6)
#define TR__SYS_DEMONITOR (TR__SYS_BASE + 7)
#define TR__SYS_DOWN      (TR__SYS_BASE + 8)
#define TR__SYS_REQ_TICK  (TR__SYS_BASE + 9) /* a request deadline is due */

/* Runner-owned flag bits. */
#define TR__A_TRAP_EXIT    0x1u
#define TR__A_INIT_PENDING 0x2u /* has an init that has not run yet */
/* An inbox's actor: its table of open requests is the inbox's, kept under
 * the inbox's mutex (runtime/inbox.c), and its state is the inbox's. */
#define TR__A_INBOX 0x4u

struct tr__actor {
	/* Touched by senders. */
	struct tr__mailbox mb;
	_Atomic uint64_t pid; /* current pid value; 0 while the slot is free */
	/*
	 * A stop that overtakes the mailbox (tr__actor_stop): the pid it is
	 * for, and its reason. The runner checks it before each message.
	 */
	_Atomic uint64_t stop_for;
	_Atomic int32_t stop_why;
	_Atomic uint32_t
		bound; /* mailbox bound of the current actor, 0 = none */
	_Atomic uint32_t mb_len; /* messages counted against the bound */
	ck_stack_entry_t qlink;  /* link in the inject stack */
	/*
	 * Written with release by whoever hands the actor to a run queue and
	 * read with acquire by the worker that runs it next: the run queues
	 * are ck structures whose ordering TSan cannot see, so this pair is
	 * what carries happens-before from one turn to the next.
	 */
	_Atomic uint32_t handoff;
	uint32_t flags;
	/*
	 * Backpressure (after Pony's muting). `overloaded` is set by the
	 * runner when a turn used its whole batch and cleared when a turn
	 * ends with the mailbox caught up. An actor that sent to an
	 * overloaded one during its turn, and would be requeued, is parked
	 * on `muted` (a Treiber stack linked through qlink) instead, and
	 * requeued when the receiver catches up, or when the muted actor is
	 * stopped. See docs/ARCHITECTURE.md.
	 */
	_Atomic uint32_t overloaded;
	/* The slot + 1 of the actor this one is muted on, 0 if none (a
	 * stop releases it: tr__actor_stop). */
	_Atomic uint32_t muted_on;
	_Atomic(struct tr__actor *) muted;

	/* Owned by the running thread. */
	const tr_actor_def *def;
	tr_handler_fn handler;
	void *state;
	struct tr__actor_ext *ext; /* links and monitors, made on first use */
	uint64_t sched_ts;         /* ticks when made runnable; 0 = no sample */
	uint64_t overtaken;        /* last pid stopped ahead of its queue */
	int32_t overtaken_why;     /* its reason */
	bool overtaken_ahead;      /* its STOP copy not seen yet (deliver) */
	uint32_t gen; /* generation of the next spawn in this slot */
	/*
	 * The pid the runtime's stop already sent its STOP to, and whether
	 * that stop overtook: a later sweep does not send that pid the same
	 * stop again (a second queued STOP would end as a dead letter).
	 * Touched only by the thread that stops the runtime.
	 */
	uint64_t swept;
	bool swept_overtook;
	uint32_t slot; /* index in the table, fixed */
	struct tr__actor *free_next;
};

struct tr_ctx {
	tr_runtime *rt;
	struct tr__worker *w; /* NULL for teardown run outside a worker */
	struct tr__actor *a;
	uint64_t self;
	const tr_msg *msg;
	bool ptr_taken;
	bool unhandled; /* tr_unhandled() was called for msg */
	bool stashed;   /* tr_stash() was called for msg */
	/* The running turn may have put-back messages (tr_unstash_all): set
	 * per turn, not per message. */
	bool unstashed;
	/* msg's node; NULL for a message the runtime made on the stack
	 * (a DOWN, an exit signal, a failed request). */
	struct tr__msg *node;
	bool stop_requested;
	int32_t stop_reason;
	/* An overloaded receiver sent to this turn. */
	struct tr__actor *mute_on;
	/* The worker's sent count when this handler call began. */
	uint64_t sent0;
	/* Not NULL: the context of a thread that is not a worker, which
	 * acts as the inbox's actor (tr_inbox_ctx). w and msg are NULL. */
	struct tr_inbox *inbox;
};

/*
 * Debug builds: abort unless @cx is the context of a turn running now on
 * the calling thread (see tr__ctx_ok).
 */
void tr__ctx_check(const tr_ctx *cx, const char *fn);

/*
 * The check at the top of every call that takes a tr_ctx: false for NULL
 * (the caller returns TR_EINVAL). A context used from another thread or
 * kept after its handler returned would touch a worker's caches from the
 * wrong thread: debug builds abort on it, naming @fn; release builds pay
 * nothing more than the NULL test.
 */
static inline bool
tr__ctx_ok(const tr_ctx *cx, const char *fn)
{
	if (cx == NULL) {
		return false;
	}
#ifndef NDEBUG
	tr__ctx_check(cx, fn);
#else
	(void)fn;
#endif
	return true;
}

/*
 * Run one turn of @a on worker @w (at most the configured batch). The turn
 * is left for tr__sched_settle() to account for, after the turn before.
 */
void tr__actor_run(struct tr__worker *w, struct tr__actor *a);

/*
 * Send a prepared node (type, flags, from, data, size, free_fn set) to @to.
 * @w is the calling worker or NULL. @bounded: apply the mailbox bound.
 * Ownership: the node and its pointer payload are consumed on every path.
 */
tr_err tr__send_node(tr_runtime *rt, struct tr__worker *w, uint64_t to,
		     struct tr__msg *msg, bool bounded);

/*
 * Stop actor @to with @reason, ahead of the messages queued for it: the
 * worker running it stops it before its next message (after its init, if
 * that has not run), and what is still queued becomes dead letters. Any
 * thread; @from is the stopper's pid or 0.
 */
tr_err tr__actor_stop(tr_runtime *rt, struct tr__worker *w, uint64_t from,
		      uint64_t to, int32_t reason);

/* Runtime-internal message (system type, no bound), from any thread. */
tr_err tr__send_sys(tr_runtime *rt, struct tr__worker *w, uint64_t from,
		    uint64_t to, uint32_t type, const void *data, size_t len);

/* Copying send with an explicit sender, from any thread. */
tr_err tr__send_copy(tr_runtime *rt, struct tr__worker *w, uint64_t from,
		     uint64_t to, uint32_t type, const void *data, size_t len);

/*
 * Pointer send with an explicit sender; @bounded as for tr__send_node.
 * Unbounded sends are runtime-internal and may use reserved types.
 */
tr_err tr__send_ptr(tr_runtime *rt, struct tr__worker *w, uint64_t from,
		    uint64_t to, uint32_t type, void *ptr, size_t len,
		    tr_free_fn free_fn, bool bounded);

/*
 * A message built in place, for hot paths that would otherwise copy or
 * allocate twice: tr__msg_new() gives a node with @len inline bytes at
 * msg->data (m.data and m.size set; the caller may point m.data inside
 * the bytes); tr__send_built() sends it unbounded (runtime-internal, may
 * use reserved types). @release, if not NULL, runs on m.data when the
 * payload is freed, on every path, and must not free the bytes.
 */
struct tr__msg *tr__msg_new(struct tr__worker *w, size_t len);
tr_err
tr__send_built(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	       uint32_t type, struct tr__msg *msg, tr_free_fn release);

/* Options of tr__spawn beyond the public ones. */
#define TR__SPAWN_LINK    0x1u /* link the new actor with opts.parent */
#define TR__SPAWN_MONITOR 0x2u /* opts.parent monitors the new actor */
/* The new actor owns I/O (an accepted connection): see tr__actor_note_io. */
#define TR__SPAWN_OWNS_IO 0x4u
#define TR__SPAWN_INBOX   0x8u /* sets TR__A_INBOX */

struct tr__spawn_opts {
	const void *state_init; /* copied into the new state if not NULL */
	size_t state_init_len;
	tr_ctx *parent; /* the spawning actor, for link/monitor */
	unsigned flags;
	uint64_t *ref_out; /* the monitor reference (TR__SPAWN_MONITOR) */
};

/*
 * Spawn. Link and monitor are set up before the new actor can run (as
 * Erlang's spawn_link/spawn_monitor), so even an init that fails at once
 * is seen. @opts may be NULL.
 */
tr_err tr__spawn(tr_runtime *rt, struct tr__worker *w, const tr_actor_def *def,
		 void *arg, const struct tr__spawn_opts *opts, tr_pid *out);

/*
 * The calling actor owns I/O resources to release when it stops. Call it
 * before handing the resource to the I/O thread: it allocates what the
 * release needs, so a TR_ENOMEM here means nothing was started.
 */
tr_err tr__actor_note_io(tr_ctx *cx);

/*
 * Requests (runtime/request.c). tr__actor_reqs: @a's table of open
 * requests, made on first use; NULL without memory. tr__actor_unwatch:
 * the request @ref that the context's actor holds is answered or passed
 * on; forget the watch its arrival took. Both on @a's own turn.
 */
struct tr__reqtab *tr__actor_reqs(struct tr__actor *a);
void tr__actor_unwatch(tr_ctx *cx, uint64_t ref);

/* Free a node that was never sent, on worker @w or any thread (NULL). */
void tr__msg_discard_any(struct tr__worker *w, struct tr__msg *msg);

/* Add @n to the counter at @off of @w's stats (the shared ones when @w is
 * NULL). */
void tr__stat_inc(tr_runtime *rt, struct tr__worker *w, size_t off, uint64_t n);

/* Slot table: the actor for a local pid value, or NULL (unknown slot). */
struct tr__actor *tr__actor_lookup(tr_runtime *rt, uint64_t pid);

/*
 * Send a stop (TR_EXIT_SHUTDOWN) to every live actor, queued behind its
 * messages or, with @overtake, ahead of them (tr__actor_stop). Returns
 * how many.
 */
uint64_t tr__actor_stop_all(tr_runtime *rt, bool overtake);

/* The distribution layer's hold on its actor @gate (remote.h); and the
 * running turn's actor, which sent on a congested link, muted on it. */
tr_err tr__actor_hold(tr_runtime *rt, uint64_t gate, bool on);
void tr__actor_hold_sender(tr_runtime *rt, struct tr__worker *w, uint64_t gate);

/* Free all slots, states and queued messages (runtime destroy). */
void tr__actor_table_fini(tr_runtime *rt);

#endif /* TR_RUNTIME_ACTOR_H */
