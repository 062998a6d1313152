#ifndef TROUPE_ERROR_H
#define TROUPE_ERROR_H

/*
 * Error codes. TR_OK is zero and every error is negative, so functions that
 * return "a count or an error" are read with `if (r < 0)`.
 * The list is one X-macro that makes the enum, tr_strerror() and
 * tr_err_name().
 */

#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TR_ERR_MAP(X)                                                          \
	X(EINVAL, -1, "invalid argument")                                      \
	X(ENOMEM, -2, "out of memory")                                         \
	X(ENOENT, -3, "no such actor or name")                                 \
	X(ETIMEDOUT, -4, "timed out")                                          \
	X(ECLOSED, -5, "runtime is stopping or stopped")                       \
	X(EFULL, -6, "mailbox full")                                           \
	X(EMSGSIZE, -7, "message too large")                                   \
	X(ESTATE, -8, "operation not valid in this state")                     \
	X(EUNREACH, -9, "node unreachable")                                    \
	X(ESYS, -10, "system call failed")                                     \
	X(EREJECTED, -11, "rejected")                                          \
	X(EEXIST, -12, "already exists")                                       \
	X(EREMOTE, -13, "a pointer payload cannot go to another node")

typedef enum tr_err {
	TR_OK = 0,
#define TR__ERR_ENUM(name, val, str) TR_##name = (val),
	TR_ERR_MAP(TR__ERR_ENUM)
#undef TR__ERR_ENUM
} tr_err;

/**
 * tr_strerror() - Human-readable text for an error code.
 * @err: a tr_err value
 *
 * Thread:    any.
 * Return:    a static string; "unknown error" for a value not in the list.
 */
TR_API const char *tr_strerror(int err);

/**
 * tr_err_name() - Symbolic name of an error code, such as "TR_EFULL".
 * @err: a tr_err value
 *
 * Thread:    any.
 * Return:    a static string; "TR_E?" for a value not in the list.
 */
TR_API const char *tr_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ERROR_H */
