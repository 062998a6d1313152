/*
 * Public timer calls (<troupe/timer.h>): validate, take an id, and hand
 * the command to the I/O thread (runtime/io_loop.c). Threads: actor.
 */
#include <troupe/timer.h>

#include "runtime/actor.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

static tr_err
start_timer(tr_ctx *cx, tr_pid to, uint32_t type, const void *data, size_t len,
	    uint64_t delay_ms, uint64_t period_ms, tr_timer_id *out)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || to.v == 0 ||
	    type >= TR_MSG_SYSTEM_BASE || (len > 0 && data == NULL)) {
		return TR_EINVAL;
	}
	if (len > TR_TIMER_MAX_PAYLOAD || len > cx->rt->cfg.max_msg_size) {
		return TR_EMSGSIZE;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	uint64_t id = tr__io_timer_id(cx->rt->io);
	tr_err err = tr__io_timer_add(cx->rt->io, id, cx->self, to.v, type,
				      data, len, delay_ms, period_ms);
	if (err < 0) {
		return err;
	}
	if (out != NULL) {
		out->v = id;
	}
	return TR_OK;
}

tr_err
tr_send_after(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
	      size_t len, uint64_t delay_ms, tr_timer_id *out)
{
	return start_timer(cx, to, type, data, len, delay_ms, 0, out);
}

tr_err
tr_send_every(tr_ctx *cx, tr_pid to, uint32_t type, const void *data,
	      size_t len, uint64_t period_ms, tr_timer_id *out)
{
	if (period_ms == 0) {
		return TR_EINVAL;
	}
	return start_timer(cx, to, type, data, len, period_ms, period_ms, out);
}

tr_err
tr_timer_cancel(tr_ctx *cx, tr_timer_id id)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || id.v == 0) {
		return TR_EINVAL;
	}
	return tr__io_timer_cancel(cx->rt->io, id.v);
}
