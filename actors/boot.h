/*
 * Starting an actor that answers its own start, shared by the services
 * (supervisor, pool and its gather collector, jobs, rate limiter;
 * internal, not installed).
 *
 * The starter spawns the actor with no init argument and sends it what it
 * starts with (its "boot") as its first message. Nothing can come before
 * it, since nobody else knows the pid yet, so the started actor takes its
 * first message as its boot without checking it. It is a request when the
 * starter can receive the outcome, so that exactly one answer reaches it
 * (the actor's reply, or TR_MSG_REQUEST_FAILED if the actor stops before
 * it takes the boot), and a plain message otherwise. The boot is a
 * message rather than the spawn argument so that the runtime frees it
 * when the actor never takes it (a runtime stop, a kill).
 */
#ifndef TR_ACTORS_BOOT_H
#define TR_ACTORS_BOOT_H

#include <stdbool.h>
#include <stddef.h>

#include <troupe/troupe.h>

/*
 * Spawn an actor from @def and send it @boot, a pointer message of @type
 * and @size handed over with @free_fn. With @link the actor is linked
 * with the calling actor. On a context that has a pid (an actor's or an
 * inbox's) the message is a request with no timeout whose reference goes
 * to *@ref; otherwise it is a plain send and *@ref is zero.
 * @out, @ref: may be NULL; set on every path (TR_PID_NONE and zero on
 * error).
 * Ownership: @boot moves on every path (@free_fn frees it on error).
 * Return: TR_OK; otherwise the error of the spawn or the send, and
 * nothing is left running (an actor spawned before the send failed is
 * unlinked and stopped).
 */
tr_err tr__boot_start(tr_ctx *cx, const tr_actor_def *def, bool link,
		      uint32_t type, void *boot, size_t size,
		      tr_free_fn free_fn, tr_pid *out, tr_ref *ref);

/*
 * tr__boot_start() with a copy of @cfg, @size bytes freed with free(),
 * as the boot: a start whose configuration is one flat struct. @cfg is
 * NULL when the caller found the configuration invalid: TR_EINVAL.
 */
tr_err
tr__boot_copy(tr_ctx *cx, const tr_actor_def *def, bool link, uint32_t type,
	      const void *cfg, size_t size, tr_pid *out, tr_ref *ref);

/* A start that fails before it spawns: set *@out and *@ref (each may be
 * NULL) as tr__boot_start() does on error, and return @err. */
tr_err tr__boot_fail(tr_err err, tr_pid *out, tr_ref *ref);

/*
 * In the started actor's handler: take the boot out of the start message
 * @m (a pointer message of @size bytes), and keep in *@start the header
 * that tr_reply() answers later (start->from is TR_PID_NONE when nobody
 * waits for the answer). It takes any pointer request the same way:
 * the supervisor takes its other requests with it too.
 * Return: the boot, now owned by the caller; NULL when @m is not a
 * pointer message of @size bytes.
 */
void *tr__boot_take(tr_ctx *cx, const tr_msg *m, size_t size, tr_msg *start);

#endif /* TR_ACTORS_BOOT_H */
