/* Sending again what a full mailbox refused (see resend.h). */
#include "resend.h"

void
tr__resend_init(struct tr__resend *rs, uint32_t type, uint32_t first_ms,
		uint32_t max_ms)
{
	rs->type = type;
	rs->next_ms = first_ms;
	rs->max_ms = max_ms;
	rs->armed = false;
}

bool
tr__resend_arm(tr_ctx *cx, struct tr__resend *rs)
{
	if (rs->armed) {
		return true;
	}
	uint32_t delay = rs->next_ms;
	rs->next_ms = delay > rs->max_ms / 2 ? rs->max_ms : delay * 2;
	rs->armed = tr_send_after(cx, tr_self(cx), rs->type, NULL, 0, delay,
				  NULL) == TR_OK;
	return rs->armed;
}

bool
tr__resend_fired(tr_ctx *cx, struct tr__resend *rs, const tr_msg *m)
{
	if (m->type != rs->type || !tr_pid_eq(m->from, tr_self(cx))) {
		return false;
	}
	rs->armed = false;
	return true;
}
