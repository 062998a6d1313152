/* Starting an actor that answers its own start (see boot.h). */
#include "boot.h"

#include <stdlib.h>
#include <string.h>

tr_err
tr__boot_fail(tr_err err, tr_pid *out, tr_ref *ref)
{
	if (out != NULL) {
		*out = TR_PID_NONE;
	}
	if (ref != NULL) {
		*ref = (tr_ref){ 0 };
	}
	return err;
}

tr_err
tr__boot_start(tr_ctx *cx, const tr_actor_def *def, bool link, uint32_t type,
	       void *boot, size_t size, tr_free_fn free_fn, tr_pid *out,
	       tr_ref *ref)
{
	tr_pid pid = TR_PID_NONE;
	tr_ref r = { 0 };
	tr_err err = link ? tr_spawn_link(cx, def, NULL, &pid)
			  : tr_spawn(cx, def, NULL, &pid);

	if (err < 0) {
		free_fn(boot);
		return tr__boot_fail(err, out, ref);
	}
	if (!tr_pid_is_none(tr_self(cx))) {
		err = tr_request_ptr(cx, pid, type, boot, size, free_fn, 0, &r);
	} else {
		err = tr_send_ptr(cx, pid, type, boot, size, free_fn);
	}
	if (err < 0) {
		/* Never started: it goes quietly, without an exit signal
		 * to the caller. */
		if (link) {
			(void)tr_unlink(cx, pid);
		}
		(void)tr_stop(cx, pid, TR_EXIT_NORMAL);
		return tr__boot_fail(err, out, ref);
	}
	if (out != NULL) {
		*out = pid;
	}
	if (ref != NULL) {
		*ref = r;
	}
	return TR_OK;
}

tr_err
tr__boot_copy(tr_ctx *cx, const tr_actor_def *def, bool link, uint32_t type,
	      const void *cfg, size_t size, tr_pid *out, tr_ref *ref)
{
	void *boot = cfg != NULL ? malloc(size) : NULL;

	if (boot == NULL) {
		return tr__boot_fail(cfg != NULL ? TR_ENOMEM : TR_EINVAL, out,
				     ref);
	}
	memcpy(boot, cfg, size);
	return tr__boot_start(cx, def, link, type, boot, size, free, out, ref);
}

void *
tr__boot_take(tr_ctx *cx, const tr_msg *m, size_t size, tr_msg *start)
{
	if (!(m->flags & TR_MSG_F_PTR) || m->size != size) {
		return NULL;
	}
	void *boot = tr_msg_take_ptr(cx, m);
	if (boot == NULL) {
		return NULL;
	}
	*start = *m;
	start->data = NULL;
	start->size = 0;
	return boot;
}
