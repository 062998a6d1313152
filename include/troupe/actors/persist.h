#ifndef TROUPE_ACTORS_PERSIST_H
#define TROUPE_ACTORS_PERSIST_H

/*
 * Persistent actors: event sourcing on a store (<troupe/actors/store.h>),
 * as Akka Persistence does it.
 *
 * A persistent actor has a persistent id, a name chosen by the user that
 * outlives pids. Its state changes only through events: a handler decides
 * on an event and persists it with tr_persist(); once the store has
 * committed it, the event is applied to the state (def->apply) and the
 * handler is told (TR_MSG_PERSISTED). On start, the state is rebuilt
 * from the latest snapshot plus the events after it, by the same apply;
 * then the actor receives TR_MSG_PERSIST_RECOVERED before any other
 * message. Snapshot + replay gives the same state as a full replay as
 * long as apply is deterministic and def->save writes everything apply
 * reads.
 *
 *     static void
 *     apply(void *state, uint64_t seq, const void *ev, size_t len)
 *     {
 *             struct counter *c = state;
 *             c->total += *(const int64_t *)ev;    // len is checked by
 *     }                                            // the handler below
 *
 *     static void
 *     handle(tr_ctx *cx, void *state, const tr_msg *m)
 *     {
 *             struct counter *c = state;
 *             const int64_t *n = TR_MSG_AS(m, int64_t);
 *
 *             if (m->type == ADD && n != NULL) {
 *                     tr_persist(cx, m, n, sizeof(*n));
 *             } else if (m->type == TR_MSG_PERSISTED) {
 *                     // m's header is the ADD's: this answers its sender
 *                     tr_reply(cx, m, TOTAL, &c->total, sizeof(c->total));
 *             }
 *     }
 *
 * Order. Messages that arrive while the actor recovers, and while an
 * event it persisted waits for the store, are kept (tr_stash) and handled
 * afterwards in their order: a handler always sees the state with every
 * event it persisted applied. Persisting is therefore one store round
 * trip per handled command that persists; several tr_persist() calls in
 * one turn share it.
 *
 * Failure. A store that refuses an event (TR_MSG_STORE_ERROR: a full
 * disk, say) leaves the state as it was: TR_MSG_PERSISTED carries the
 * error, the event is not applied, and events persisted after it in the
 * same wait are refused too (their sequence numbers would leave a gap). A
 * store that stops while an event waits leaves its fate unknown; the
 * actor then stops with TR_EXIT_ERROR, as Akka's does, and a restart
 * recovers whatever was committed. Recovery that fails (the store gone
 * or refusing, a snapshot def->load rejects) answers the start with the
 * error and stops the actor with TR_EXIT_ERROR.
 *
 * Requests a persistent actor answers itself, whatever its handler:
 *
 *   request                   payload   reply
 *   TR_MSG_PERSIST_SNAPSHOT   none      TR_MSG_STORE_REPLY (value: the
 *                                       snapshot's sequence number) once
 *                                       the store has it, or
 *                                       TR_MSG_STORE_ERROR
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>
#include <troupe/actors/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the persistence module. */
#define TR_MSG_PERSIST_BASE (TR_MSG_ACTORS_BASE + 0xA00u)

/**
 * TR_MSG_PERSIST_RECOVERED - The first message a persistent actor's
 * handler gets, once its state is rebuilt; also the answer to
 * tr_persist_start(). Payload: struct tr_persist_recovered.
 */
#define TR_MSG_PERSIST_RECOVERED (TR_MSG_PERSIST_BASE + 0x00u)

/**
 * TR_MSG_PERSISTED - To the handler, after the store answered an event
 * of tr_persist(). Payload: struct tr_persist_done. Its header (from,
 * ref, flags) is the command's that tr_persist() was given, so tr_reply()
 * on it answers that command's sender; with no command it is a plain
 * message from the actor itself.
 */
#define TR_MSG_PERSISTED (TR_MSG_PERSIST_BASE + 0x01u)

/**
 * TR_MSG_PERSIST_SNAPSHOT - Request, no payload: save a snapshot of the
 * state now (see the table above).
 */
#define TR_MSG_PERSIST_SNAPSHOT (TR_MSG_PERSIST_BASE + 0x02u)

/**
 * struct tr_persist_recovered - Payload of TR_MSG_PERSIST_RECOVERED.
 * @last_seq:     the journal's last sequence number: the state includes
 *                every event up to it
 * @snapshot_seq: the sequence number of the snapshot recovery started
 *                from (0: none)
 * @replayed:     events applied after the snapshot
 */
typedef struct tr_persist_recovered {
	uint64_t last_seq;
	uint64_t snapshot_seq;
	uint64_t replayed;
} tr_persist_recovered;

/**
 * struct tr_persist_done - Payload of TR_MSG_PERSISTED.
 * @seq:    the event's sequence number (0 when it was refused)
 * @status: TR_OK when it was committed and applied; otherwise the
 *          store's status (tr_store_error.status) and nothing changed
 */
typedef struct tr_persist_done {
	uint64_t seq;
	int32_t status;
	uint32_t reserved;
} tr_persist_done;

/**
 * struct tr_persist_def - What a persistent actor is.
 * @size:   sizeof(tr_persist_def), an ABI guard; required
 * @actor:  its actor part: state_size, init (with the configuration's
 *          argument, before recovery), teardown, handle (required),
 *          mailbox_bound; arg_size is ignored
 * @apply:  required: apply one event to the state. It runs during
 *          recovery and after each event is committed; it must depend on
 *          nothing but the state and the event (no sends, no clock)
 * @save:   optional: write the state for a snapshot into a buffer from
 *          malloc(), *@out and *@len; NULL: the state's bytes as they are
 *          (state_size of them), for a state without pointers. Return
 *          TR_OK or an error (the snapshot is skipped)
 * @load:   optional: read a snapshot @save wrote into the state (zeroed,
 *          after init); NULL: a snapshot must be state_size bytes and is
 *          copied. An error fails the recovery
 *
 * The definition must outlive every actor started from it.
 */
typedef struct tr_persist_def {
	size_t size;
	const tr_actor_def *actor;
	void (*apply)(void *state, uint64_t seq, const void *event, size_t len);
	tr_err (*save)(const void *state, void **out, size_t *len);
	tr_err (*load)(void *state, const void *data, size_t len);
} tr_persist_def;

/**
 * struct tr_persist_config - One persistent actor.
 * @size:           sizeof(tr_persist_config), an ABI guard; required
 * @store:          the store that keeps its journal and snapshots
 * @id:             its persistent id (1 to TR_STORE_ID_SIZE - 1 bytes);
 *                  two actors alive with one id would both write its
 *                  journal: the store refuses the second writer's events
 *                  (TR_EEXIST), so do not
 * @snapshot_every: save a snapshot after this many events (0: only on a
 *                  TR_MSG_PERSIST_SNAPSHOT request)
 * @trim:           once a snapshot is saved, delete the events it holds
 *                  (recovery then needs the snapshot)
 * @is_linked:      link the actor with the calling actor
 * @arg:            given to actor->init, @arg_size bytes of it copied
 *                  (the pointer itself when @arg_size is 0)
 * @arg_size:       see @arg
 */
typedef struct tr_persist_config {
	size_t size;
	tr_pid store;
	const char *id;
	uint32_t snapshot_every;
	bool trim;
	bool is_linked;
	const void *arg;
	size_t arg_size;
} tr_persist_config;

/**
 * tr_persist_start() - Start a persistent actor and recover its state.
 * @cx:  context of the calling actor or thread
 * @def: what it is; must outlive the actor
 * @cfg: its store, id and settings (copied)
 * @out: on success its pid; may be NULL
 * @ref: on success the start's reference (zero with tr_runtime_ctx());
 *       may be NULL
 *
 * The start is a request with no timeout: the caller gets exactly one
 * outcome under *@ref, TR_MSG_PERSIST_RECOVERED once the state is
 * rebuilt, or TR_MSG_STORE_ERROR when recovery failed (the actor then
 * stops with TR_EXIT_ERROR). Messages sent to the actor meanwhile are
 * handled after recovery, in order.
 * Thread:    actor, or a thread's context.
 * Return:    TR_OK; TR_EINVAL (a bad @def or @cfg, an id that does not
 *            fit); TR_ENOMEM; TR_ECLOSED. On error nothing is left
 *            running and no answer comes.
 */
TR_API tr_err tr_persist_start(tr_ctx *cx, const tr_persist_def *def,
			       const tr_persist_config *cfg, tr_pid *out,
			       tr_ref *ref);

/**
 * tr_persist() - Persist an event, from a persistent actor's handler.
 * @cx:    the handler's context
 * @cmd:   the message being handled that the event answers (its header
 *         comes back on TR_MSG_PERSISTED, for tr_reply()), or NULL
 * @event: the event's bytes (copied)
 * @len:   their number
 *
 * The event goes to the store; once committed it is applied and the
 * handler gets TR_MSG_PERSISTED. Until then other messages wait.
 * Thread:    a persistent actor's handler, after recovery.
 * Return:    TR_OK; TR_EINVAL (not a persistent actor's handler, or
 *            during recovery); TR_EMSGSIZE; TR_ENOMEM.
 */
TR_API tr_err tr_persist(tr_ctx *cx, const tr_msg *cmd, const void *event,
			 size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_PERSIST_H */
