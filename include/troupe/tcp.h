#ifndef TROUPE_TCP_H
#define TROUPE_TCP_H

/*
 * TCP: listeners and connections as actors. A listener accepts on the I/O
 * thread and spawns one actor per connection from a definition you give;
 * that actor owns the connection and gets its bytes as messages.
 *
 * Memory per connection stays bounded whatever the peer does: reading
 * pauses while the DATA messages the owner has not yet handled take more
 * than TR_TCP_READ_HIGH bytes of memory, or while more than
 * TR_TCP_READ_HIGH bytes of writes are
 * pending, and resumes below TR_TCP_READ_LOW; a connection whose pending
 * writes pass TR_TCP_WRITE_MAX (a peer that does not read) is closed with
 * the error "ENOBUFS".
 *
 * Closing. A connection closes gracefully when its owner calls
 * tr_tcp_close() or stops. No data reaches the owner any more: bytes that
 * still arrive are read and discarded. Every write queued before the
 * close goes out, then the FIN, and only then is the socket released.
 * Writes queued after the close are dropped. The wait is bounded: it
 * holds at most TR_TCP_WRITE_MAX bytes, and if the peer takes none of
 * them for TR_TCP_LINGER_MS, the connection is reset and the rest is
 * dropped (a live owner then gets TR_MSG_TCP_CLOSED with "ETIMEDOUT").
 * tr_tcp_abort() closes at once with a reset and drops whatever is
 * queued. When the runtime stops, every connection closes at once and
 * writes still queued are dropped.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_tcp {
	uint64_t v;
} tr_tcp;

#define TR_TCP_READ_HIGH (256 * 1024)
#define TR_TCP_READ_LOW  (64 * 1024)
#define TR_TCP_WRITE_MAX (4 * 1024 * 1024)
/** A graceful close whose peer takes no pending byte this long is reset. */
#define TR_TCP_LINGER_MS 10000

/** Messages. Payloads start with the connection or listener id. */
#define TR_MSG_TCP_LISTENING 0xFFFF0030u /* struct tr_tcp_listening */
#define TR_MSG_TCP_OPEN      0xFFFF0031u /* struct tr_tcp_event */
#define TR_MSG_TCP_DATA      0xFFFF0032u /* struct tr_tcp_data */
#define TR_MSG_TCP_CLOSED    0xFFFF0033u /* struct tr_tcp_event */
#define TR_MSG_TCP_EOF       0xFFFF0034u /* struct tr_tcp_event */

typedef struct tr_tcp_listening {
	tr_tcp listener;
	int32_t status; /* 0, or a negative libuv code */
	uint16_t port;  /* the bound port (useful after asking for 0) */
	char error[32];
} tr_tcp_listening;

/**
 * struct tr_tcp_event - TR_MSG_TCP_OPEN (status 0); TR_MSG_TCP_EOF (the
 * peer shut down its sending side: no more data, but writes still go
 * out; call tr_tcp_close() when done); TR_MSG_TCP_CLOSED (status 0 after
 * tr_tcp_close() or tr_tcp_abort(), else a negative libuv code named in
 * @error, such as "ECONNRESET", "ECONNREFUSED", "ENOBUFS" or, when a
 * graceful close timed out, "ETIMEDOUT").
 */
typedef struct tr_tcp_event {
	tr_tcp conn;
	int32_t status;
	char error[32];
} tr_tcp_event;

/** Received bytes; freed by the runtime after the handler. Read with
 * TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes). */
TR_FAM_BEGIN
typedef struct tr_tcp_data {
	tr_tcp conn;
	size_t len;
	unsigned char bytes[];
} tr_tcp_data;
TR_FAM_END

/**
 * tr_tcp_listen() - Listen on @host:@port (port 0: any free port). The
 * caller gets one TR_MSG_TCP_LISTENING. Each accepted connection gets a
 * new actor spawned from @conn_def with @conn_arg as its spawn argument
 * (the same pointer for every connection), which receives
 * TR_MSG_TCP_OPEN, then TR_MSG_TCP_DATA messages, TR_MSG_TCP_EOF if the
 * peer half-closes, and exactly one TR_MSG_TCP_CLOSED last. The listener
 * closes when its caller stops; a connection closes when its actor stops,
 * gracefully (see "Closing" above): the peer gets what the actor wrote,
 * then end of file.
 * Connections have TCP_NODELAY set. With several I/O threads
 * (tr_config.io_threads) connections are spread over them.
 * @conn_arg: passed to conn_def->init; borrowed: it must outlive the
 *            listener and every connection actor. May be NULL.
 * @out:      the listener id; may be NULL
 *
 * Thread:    actor.
 * Return:    TR_OK (one TR_MSG_TCP_LISTENING follows), TR_EINVAL,
 *            TR_ENOMEM, TR_ECLOSED.
 */
TR_API tr_err tr_tcp_listen(tr_ctx *cx, const char *host, uint16_t port,
			    const tr_actor_def *conn_def, void *conn_arg,
			    tr_tcp *out);

/**
 * tr_tcp_connect() - Connect to the numeric address @host:@port. The
 * calling actor owns the connection: it gets TR_MSG_TCP_OPEN and then data,
 * or one TR_MSG_TCP_CLOSED with the error ("ECONNREFUSED", and
 * "ETIMEDOUT" when @timeout_ms passed first).
 * @timeout_ms: give up connecting after this long; 0 = the system's
 *              own limit (minutes)
 *
 * Thread:    actor.
 * Return:    TR_OK (an OPEN or a CLOSED follows), TR_EINVAL, TR_ENOMEM,
 *            TR_ECLOSED.
 */
TR_API tr_err tr_tcp_connect(tr_ctx *cx, const char *host, uint16_t port,
			     uint32_t timeout_ms, tr_tcp *out);

/**
 * tr_tcp_write() - Queue @len bytes (copied) on a connection. Writes from
 * one actor go out in order. A write to a closed connection is dropped.
 * Thread:    actor (any actor, not only the owner).
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_tcp_write(tr_ctx *cx, tr_tcp conn, const void *data,
			   size_t len);

/**
 * tr_tcp_close() - Close a connection gracefully (see "Closing" above):
 * its pending writes go out, then the FIN. Its owner then gets
 * TR_MSG_TCP_CLOSED with status 0, or with "ETIMEDOUT" if the peer took
 * nothing for TR_TCP_LINGER_MS. Closing twice is harmless.
 *
 * Ownership: none.
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ECLOSED (the runtime is
 *            stopping, which closes every connection anyway).
 */
TR_API tr_err tr_tcp_close(tr_ctx *cx, tr_tcp conn);

/**
 * tr_tcp_abort() - Close a connection at once with a reset (RST): pending
 * writes are dropped, and so is what the kernel has not yet sent. Use it
 * for a peer that broke the protocol. Its owner then gets
 * TR_MSG_TCP_CLOSED with status 0. It also cuts short a graceful close in
 * progress. On an already closed connection it does nothing.
 *
 * Ownership: none.
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ECLOSED (the runtime is
 *            stopping, which closes every connection anyway).
 */
TR_API tr_err tr_tcp_abort(tr_ctx *cx, tr_tcp conn);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_TCP_H */
