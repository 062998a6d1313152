#ifndef TROUPE_MSG_H
#define TROUPE_MSG_H

/*
 * Messages as a handler sees them.
 *
 * A message has a 32-bit type tag, the sender's pid and a payload. The
 * payload is either bytes copied at send time (tr_send) or a pointer whose
 * ownership moved with the message (tr_send_ptr). Types at or above
 * TR_MSG_SYSTEM_BASE are reserved for the runtime; user types are below it.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/pid.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First type tag reserved for the runtime. */
#define TR_MSG_SYSTEM_BASE 0xFFFF0000u

/**
 * First type tag of the standard actors library (<troupe/actors/...>):
 * 0xFFFE0000 to 0xFFFEFFFF, 256 types per module. Applications use types
 * below it.
 */
#define TR_MSG_ACTORS_BASE 0xFFFE0000u

/**
 * TR_MSG_DOWN - A monitored actor stopped. Payload: struct tr_down.
 * Delivered once per tr_monitor() call that was not cancelled.
 */
#define TR_MSG_DOWN 0xFFFF0001u

/**
 * TR_MSG_EXIT - A linked actor stopped and this actor traps exits.
 * Payload: struct tr_exit_signal.
 */
#define TR_MSG_EXIT 0xFFFF0002u

/**
 * TR_MSG_REQUEST_FAILED - A request of ours ended without a reply.
 * Payload: struct tr_request_failed; m->ref is the request's reference and
 * TR_MSG_F_REPLY is set. See tr_request().
 */
#define TR_MSG_REQUEST_FAILED 0xFFFF0004u

/** Exit reasons. Values from TR_EXIT_USER upwards belong to applications. */
#define TR_EXIT_NORMAL      0 /* finished its work; links do not propagate it */
#define TR_EXIT_SHUTDOWN    1 /* stopped by runtime or supervisor shutdown */
#define TR_EXIT_KILL        2 /* untrappable: a linked actor stops too */
#define TR_EXIT_NOPROC      3 /* the linked or monitored actor did not exist */
#define TR_EXIT_ERROR       4 /* generic failure */
#define TR_EXIT_INIT_FAILED 5 /* the definition's init returned an error */
#define TR_EXIT_KILLED      6 /* what links see when an actor got TR_EXIT_KILL */
#define TR_EXIT_TIMEOUT                                                        \
	7 /* a request's timeout passed (TR_MSG_REQUEST_FAILED) */
#define TR_EXIT_UNHANDLED                                                      \
	8 /* the target did not handle the request (tr_unhandled()) */
#define TR_EXIT_NOCONNECTION                                                   \
	9 /* the actor's node is unknown, down, or its link was lost */
#define TR_EXIT_USER 256

/** TR_MSG_F_PTR - Flag in tr_msg.flags: the payload is an owned pointer. */
#define TR_MSG_F_PTR 0x1u

/**
 * TR_MSG_F_REQUEST - Flag in tr_msg.flags: the message is a request
 * (tr_request()); m->ref names it and tr_reply() answers it.
 */
#define TR_MSG_F_REQUEST 0x2u

/**
 * TR_MSG_F_REPLY - Flag in tr_msg.flags: the message is the outcome of a
 * request this actor made, a reply or TR_MSG_REQUEST_FAILED; m->ref is the
 * reference tr_request() returned.
 */
#define TR_MSG_F_REPLY 0x4u

/**
 * struct tr_ref - A reference: names one request, unique for the life of
 * the runtime. Zero is no reference.
 */
typedef struct tr_ref {
	uint64_t v;
} tr_ref;

/**
 * struct tr_msg - A message, as passed to a handler.
 * @type:  type tag given by the sender
 * @flags: TR_MSG_F_* bits
 * @from:  sender's pid: an actor's, an inbox's (sent on tr_inbox_ctx()),
 *         or TR_PID_NONE (sent on tr_runtime_ctx())
 * @ref:   for a request or a reply, the request's reference; else zero
 * @data:  payload bytes (copied send) or the pointer (tr_send_ptr); bytes
 *         of a copied send are aligned to 16
 * @size:  payload size in bytes as given by the sender
 *
 * Valid only during the handler call. Read-only. Read a fixed-size
 * payload with TR_MSG_AS().
 */
typedef struct tr_msg {
	uint32_t type;
	uint32_t flags;
	tr_pid from;
	tr_ref ref;
	const void *data;
	size_t size;
} tr_msg;

/** struct tr_down - Payload of TR_MSG_DOWN. */
typedef struct tr_down {
	tr_ref ref; /* the reference tr_monitor() returned */
	tr_pid who; /* the actor that stopped */
	int32_t reason;
} tr_down;

/** struct tr_exit_signal - Payload of TR_MSG_EXIT. */
typedef struct tr_exit_signal {
	tr_pid from;
	int32_t reason;
} tr_exit_signal;

/**
 * struct tr_request_failed - Payload of TR_MSG_REQUEST_FAILED.
 * @ref:    the request's reference (also in m->ref)
 * @to:     for a timeout, the actor the request was sent to; otherwise
 *          the actor that held it last (after tr_forward(), the last one)
 * @reason: TR_EXIT_TIMEOUT, TR_EXIT_NOPROC (the target did not exist or
 *          stopped before it took the request), or the reason the target
 *          stopped with while it held the request
 */
typedef struct tr_request_failed {
	tr_ref ref;
	tr_pid to;
	int32_t reason;
} tr_request_failed;

/**
 * TR_MSG_AS - The payload of @m as a `const T *`, or NULL unless its size
 * is exactly sizeof(T). Works on a tr_msg and on a tr_received. Copied
 * payloads are aligned to 16, so any T of alignment 16 or less may be
 * read in place; for a pointer message it is the pointer sent.
 */
#define TR_MSG_AS(m, T)                                                        \
	((m)->size == sizeof(T) ? (const T *)(const void *)(m)->data           \
				: (const T *)NULL)

/**
 * TR_MSG_AS_FAM - The payload of @m as a `const T *`, for a T that ends in
 * a flexible array member @array whose length is the member @count of
 * the payload itself; NULL unless @m->size is exactly sizeof(T) plus
 * @count elements. For example
 *
 *     const tr_tcp_data *d = TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
 *     const tr_pool_workers *w =
 *             TR_MSG_AS_FAM(m, tr_pool_workers, reply.count, pids);
 *
 * The count is read only once the head is known to be there, and the
 * size check divides, so no count can overflow it.
 */
#define TR_MSG_AS_FAM(m, T, count, array)                                      \
	((m)->data != NULL && (m)->size >= sizeof(T) &&                        \
			 ((m)->size - sizeof(T)) %                             \
					 sizeof(((const T *)0)->array[0]) ==   \
				 0 &&                                          \
			 ((m)->size - sizeof(T)) /                             \
					 sizeof(((const T *)0)->array[0]) ==   \
				 ((const T *)(const void *)(m)->data)->count   \
		 ? (const T *)(const void *)(m)->data                          \
		 : (const T *)NULL)

/** tr_free_fn - Frees a payload handed over with tr_send_ptr(). */
typedef void (*tr_free_fn)(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_MSG_H */
