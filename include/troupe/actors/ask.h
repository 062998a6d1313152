#ifndef TROUPE_ACTORS_ASK_H
#define TROUPE_ACTORS_ASK_H

/*
 * Ask: a request that ends in exactly one result message (Akka's ask
 * pattern, Erlang's gen_server:call made asynchronous).
 *
 * tr_ask() starts a short-lived proxy actor. The proxy sends the request
 * to the target as itself, so the target answers it like any other
 * message, by sending to tr_sender(cx). The first of three events wins:
 * the target's reply (TR_OK), the timeout (TR_ETIMEDOUT), or the target
 * stopping (TR_ENOENT, also for a pid that never existed). The proxy
 * forwards that outcome to the asker as one TR_MSG_ASK_RESULT message and
 * stops, so a reply that comes later reaches a stopped actor and is
 * counted as a dead letter, never delivered as a stray message.
 *
 * tr_ask_sync() is the blocking form for threads that are not actors.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the ask module. */
#define TR_MSG_ASK_BASE (TR_MSG_ACTORS_BASE + 0x400u)

/**
 * TR_MSG_ASK_RESULT - The one outcome of a tr_ask(). Read the payload
 * with tr_ask_result_parse(); its layout is private. The sender is the
 * proxy, not the target.
 */
#define TR_MSG_ASK_RESULT (TR_MSG_ASK_BASE + 0x00u)

/* TR_MSG_ASK_BASE + 0x80 ... + 0xFF are the proxy's own messages. */

/**
 * struct tr_ask_result - One outcome of an ask.
 * @id:     the correlation id tr_ask() returned
 * @status: TR_OK (the target replied); TR_ETIMEDOUT; TR_ENOENT (the
 *          target stopped, or did not exist, before it replied); or the
 *          error that kept the proxy from sending the request or the
 *          reply (TR_ENOMEM, TR_EFULL from a bounded target mailbox,
 *          TR_EMSGSIZE for a reply too large to forward, TR_ECLOSED when
 *          the runtime was stopping)
 * @type:   the reply's message type (TR_OK only; 0 otherwise)
 * @from:   who replied (TR_OK only; TR_PID_NONE otherwise)
 * @data:   the reply's bytes (TR_OK only; NULL when there are none)
 * @size:   number of bytes at @data
 * @owned:  private: memory tr_ask_result_fini() frees
 */
typedef struct tr_ask_result {
	uint64_t id;
	int32_t status;
	uint32_t type;
	tr_pid from;
	const void *data;
	size_t size;
	void *owned;
} tr_ask_result;

/**
 * tr_ask() - Send a request and get exactly one TR_MSG_ASK_RESULT back.
 * @cx:         context of the asking actor, which receives the result
 * @to:         target; it replies by sending any user type to
 *              tr_sender(cx) (see tr_ask_reply())
 * @type:       the request's message type, below TR_MSG_SYSTEM_BASE
 * @data:       request payload, copied; may be NULL when @len is 0
 * @len:        request payload size
 * @timeout_ms: how long to wait for the reply, at least 1
 * @id:         on success the correlation id of the result; may be NULL
 *
 * On TR_OK exactly one TR_MSG_ASK_RESULT with this id reaches the asker,
 * unless the asker stops first (its proxy then stops without sending).
 * The timeout runs from when the proxy starts, just after this call. The
 * first message the proxy gets after the request is the reply, whoever
 * sends it, so a target may hand the proxy's pid on to a worker that
 * answers. Only the reply's type and bytes are forwarded: a pointer
 * reply (tr_send_ptr) is copied as m->size bytes and then freed.
 * Ownership: none (@data is copied).
 * Thread:    actor.
 * Return:    TR_OK; TR_EINVAL (NULL @cx, TR_PID_NONE @to, a reserved
 *            @type, NULL @data with @len > 0, a zero @timeout_ms);
 *            TR_ENOMEM; TR_ECLOSED (the runtime is stopping). On an
 *            error no result will arrive.
 */
TR_API tr_err tr_ask(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
		     size_t len, uint64_t timeout_ms, uint64_t *id);

/**
 * tr_ask_reply() - Answer the message being handled: tr_send() to
 * tr_sender(cx). Meant for targets of tr_ask(), but works for any
 * request.
 * @cx:   context of the replying actor
 * @type: reply type, chosen by the replier (any user type)
 * @data: reply payload, copied; may be NULL when @len is 0
 * @len:  reply payload size
 *
 * Ownership: none (@data is copied).
 * Thread:    actor.
 * Return:    as tr_send(); TR_EINVAL also when the current message has no
 *            sender (it came from outside any actor, or inside init).
 */
TR_API tr_err tr_ask_reply(tr_ctx *cx, uint32_t type, const void *data,
			   size_t len);

/**
 * tr_ask_result_parse() - Read a TR_MSG_ASK_RESULT payload.
 * @data: the message's payload (m->data, or tr_received.data)
 * @size: its size
 * @out:  filled on success; out->data points into @data
 *
 * Ownership: @out borrows from @data: valid as long as the message is
 *            (the handler call, or until tr_received_fini()).
 *            tr_ask_result_fini() on it is a harmless no-op.
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL when the payload is not an ask result.
 */
TR_API tr_err tr_ask_result_parse(const void *data, size_t size,
				  tr_ask_result *out);

/**
 * tr_ask_sync() - tr_ask() for a thread that is not an actor: send the
 * request and block until its one outcome.
 * @rt:         the runtime
 * @to:         target, as for tr_ask()
 * @type:       request type, below TR_MSG_SYSTEM_BASE
 * @data:       request payload, copied; may be NULL when @len is 0
 * @len:        request payload size
 * @timeout_ms: how long to wait for the reply, at least 1
 * @out:        the outcome; filled whenever the return value is not
 *              TR_EINVAL (zeroed on TR_EINVAL when not NULL)
 *
 * A private inbox receives the result, so replies to other requests do
 * not mix with it. If the runtime is too busy to run the proxy's timer,
 * the call still returns TR_ETIMEDOUT one second after @timeout_ms.
 * Ownership: on TR_OK out->data is owned by @out: release it with
 *            tr_ask_result_fini().
 * Thread:    any thread that is not a worker (it blocks).
 * Return:    out->status: TR_OK, TR_ETIMEDOUT, TR_ENOENT, and the other
 *            statuses of struct tr_ask_result; TR_EINVAL for bad
 *            arguments as in tr_ask() or a NULL @rt or @out.
 */
TR_API tr_err tr_ask_sync(tr_runtime *rt, tr_pid to, uint32_t type,
			  const void *data, size_t len, uint64_t timeout_ms,
			  tr_ask_result *out);

/**
 * tr_ask_result_fini() - Free what tr_ask_sync() left in @r and zero it.
 * NULL, a zeroed result, or one filled by tr_ask_result_parse(): no-op
 * apart from the zeroing.
 * Ownership: releases the reply bytes @r owns; @r itself stays the
 *            caller's.
 * Thread:    any.
 * Return:    nothing; it cannot fail.
 */
TR_API void tr_ask_result_fini(tr_ask_result *r);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_ASK_H */
