/*
 * Starting an actor from a thread that is not an actor and waiting for its
 * answer, shared by the supervisor and the pool (internal; not installed).
 */
#ifndef TR_ACTORS_BOOT_H
#define TR_ACTORS_BOOT_H

#include <stdbool.h>

#include <troupe/troupe.h>

/*
 * Wait on @ib (linked to @pid) for @pid's answer to its start, skipping
 * anything else that arrives. @status_of says whether a message from
 * @pid is that answer and, if so, gives its status.
 * Return: that status, or TR_ECLOSED if the inbox stopped first (the
 * runtime is stopping, or the actor died and the link took the inbox).
 */
tr_err tr__await_start(tr_inbox *ib, tr_pid pid,
		       bool (*status_of)(const tr_received *r, tr_err *status));

#endif /* TR_ACTORS_BOOT_H */
