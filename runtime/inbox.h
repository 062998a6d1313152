/*
 * Inboxes, as the rest of the runtime sees them: the table of requests a
 * thread made through its inbox's context (tr_inbox_ctx). The table lives
 * in the inbox, under its mutex: the thread adds to it before it sends,
 * and the inbox's actor takes from it, on a worker, when an outcome comes.
 */
#ifndef TR_RUNTIME_INBOX_H
#define TR_RUNTIME_INBOX_H

#include <stdbool.h>
#include <stdint.h>

struct tr_inbox;

/* The thread opens request @ref to @to (deadline in clock ns, 0: none). */
int tr__inbox_req_add(struct tr_inbox *ib, uint64_t ref, uint64_t to,
		      uint64_t deadline);

/* The request was not sent after all. */
void tr__inbox_req_drop(struct tr_inbox *ib, uint64_t ref);

/*
 * An outcome for @ref reached the inbox's actor, whose state is
 * @actor_state: true if the request was open (and is closed now).
 */
bool tr__inbox_req_take(void *actor_state, uint64_t ref);

#endif /* TR_RUNTIME_INBOX_H */
