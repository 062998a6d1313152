/*
 * Public I/O calls of <troupe/io.h>: signals and name resolution, handed
 * to the I/O thread (runtime/io_loop.c). Threads: as documented per call.
 */
#include <troupe/io.h>

#include <troupe/runtime.h>

#include "runtime/actor.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

tr_err
tr_runtime_handle_signals(tr_runtime *rt, tr_pid to)
{
	if (rt == NULL) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	return tr__io_signals(rt->io, to.v);
}

tr_err
tr_resolve(tr_ctx *cx, const char *host, const char *service,
	   uint32_t reply_type)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || host == NULL ||
	    host[0] == '\0' || reply_type >= TR_MSG_SYSTEM_BASE) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	return tr__io_resolve(cx->rt->io, cx->self, host, service, reply_type);
}
