/*
 * Sending again what a full mailbox refused (internal; not installed).
 * A reply or a result that an actor owes must not be lost to a full
 * mailbox: the actor keeps what was refused and, when a message it sent
 * itself after a delay comes back, sends it again. The delay starts at
 * first_ms and doubles with each try up to max_ms (equal values give a
 * fixed delay), and one such message at a time is armed.
 *
 * The pool's scatter-gather collector uses it for its result (1 ms
 * doubling to 100 ms).
 *
 * Threads: actor, the one whose state holds the struct.
 */
#ifndef TR_ACTORS_RESEND_H
#define TR_ACTORS_RESEND_H

#include <stdbool.h>
#include <stdint.h>

#include <troupe/troupe.h>

struct tr__resend {
	uint32_t type; /* the message the actor sends itself */
	uint32_t next_ms;
	uint32_t max_ms;
	bool armed;
};

void tr__resend_init(struct tr__resend *rs, uint32_t type, uint32_t first_ms,
		     uint32_t max_ms);

/* Can a later try succeed where a send failed with @err? */
static inline bool
tr__resend_worth(tr_err err)
{
	return err == TR_EFULL || err == TR_ENOMEM;
}

/*
 * Arm the message for the next delay, unless it is armed already, and
 * double the delay up to its maximum.
 * Return: true if the message is armed (a try will come).
 */
bool tr__resend_arm(tr_ctx *cx, struct tr__resend *rs);

/*
 * Is @m the armed message, sent by this actor? If so it is no longer
 * armed, and the caller sends again what it keeps.
 */
bool tr__resend_fired(tr_ctx *cx, struct tr__resend *rs, const tr_msg *m);

#endif /* TR_ACTORS_RESEND_H */
