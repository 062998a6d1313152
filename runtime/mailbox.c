/*
 * Mailbox set-up; the hot operations are inline in mailbox.h.
 *
 * Why C11 atomics and not ck_pr here: the whole exactly-once scheduling
 * argument rests on three orderings (the exchange in push, the acquire of
 * tail->next in pop, the release CAS in mark_empty). With C11 each is
 * visible to ThreadSanitizer, so the suite checks this code rather than
 * suppressing it; ck_pr would express the same with volatile accesses and
 * separate fences that TSan cannot see. See docs/ARCHITECTURE.md.
 */
#include "runtime/mailbox.h"

void
tr__mailbox_init(struct tr__mailbox *mb)
{
	atomic_init(&mb->stub.next, NULL);
	mb->tail = &mb->stub;
	atomic_init(&mb->head, (uintptr_t)&mb->stub | 1);
}
