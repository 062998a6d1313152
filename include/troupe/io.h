#ifndef TROUPE_IO_H
#define TROUPE_IO_H

/*
 * I/O on the runtime's I/O thread (a libuv loop): signals and name
 * resolution. Results arrive as ordinary messages; no user code runs on
 * the I/O thread.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/msg.h>
#include <troupe/pid.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * TR_MSG_SIGNAL - SIGINT or SIGTERM arrived. Payload: int32_t signal
 * number. Sent to the actor named in tr_runtime_handle_signals().
 */
#define TR_MSG_SIGNAL 0xFFFF0003u

/**
 * tr_runtime_handle_signals() - Turn SIGINT and SIGTERM into messages.
 * @to: the actor that gets TR_MSG_SIGNAL for each signal; TR_PID_NONE
 *      means the default: the first signal starts a graceful
 *      tr_runtime_stop()
 *
 * Installs libuv signal watchers on the I/O thread and returns once they
 * are in place (the process's previous handlers for these two signals no
 * longer run). Calling it again replaces the target. The watchers are
 * removed when the runtime stops.
 * Thread:    any, on a started runtime.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ESTATE (not started),
 *            TR_ECLOSED (stopping).
 */
TR_API tr_err tr_runtime_handle_signals(tr_runtime *rt, tr_pid to);

/**
 * struct tr_sockaddr - Room for one socket address: the size and alignment
 * of the system's struct sockaddr_storage, without making every user of
 * <troupe/troupe.h> include <sys/socket.h>. Read it through a cast:
 * `(const struct sockaddr_storage *)&res->addrs[i]`.
 */
typedef struct tr_sockaddr {
	union {
		unsigned char bytes[128];
		uint64_t align_; /* sockaddr_storage's alignment */
	} u;
} tr_sockaddr;

/**
 * struct tr_resolved - Payload of the reply to tr_resolve() (a pointer
 * message; the runtime frees it after the handler unless taken). Read
 * with TR_MSG_AS_FAM(m, tr_resolved, count, addrs).
 * @status: 0, or a negative libuv error code (see @error)
 * @error:  libuv's name of the error ("EAI_NONAME", ...), "" on success
 * @count:  number of addresses in @addrs
 * @addrs:  the addresses, in resolver order (IPv4 and IPv6); each is a
 *          struct sockaddr_storage (see struct tr_sockaddr)
 */
TR_FAM_BEGIN
typedef struct tr_resolved {
	int32_t status;
	char error[32];
	uint32_t count;
	tr_sockaddr addrs[];
} tr_resolved;
TR_FAM_END

/**
 * tr_resolve() - Resolve @host (and optional @service) without blocking
 * a worker; the calling actor gets one message of @reply_type whose data
 * is a tr_resolved (size = its byte size).
 * @host:    name or numeric address (copied)
 * @service: port number or service name, or NULL (copied)
 *
 * Thread:    actor.
 * Return:    TR_OK (exactly one reply follows), TR_EINVAL, TR_ENOMEM,
 *            TR_ECLOSED.
 */
TR_API tr_err tr_resolve(tr_ctx *cx, const char *host, const char *service,
			 uint32_t reply_type);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_IO_H */
