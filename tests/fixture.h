/*
 * Shared fixture of the public-API tests: a started runtime with an inbox
 * as the probe that receives replies, helpers to spawn, send as the probe,
 * receive one expected message, read metrics, and a finish that stops the
 * runtime and checks that nothing is left: no actor alive, every message
 * handled or counted as a dead letter, no blocking call pending.
 *
 * Include after harness.h and <troupe/troupe.h>. FX_REPLY_MS is how long a
 * receive waits for an expected message. Reaching it is the failure, so it
 * is many seconds: a sanitizer build on a loaded machine is slow.
 */
#ifndef TR_TESTS_FIXTURE_H
#define TR_TESTS_FIXTURE_H

#include <string.h>

#include <troupe/troupe.h>

#include "harness.h"

#ifndef FX_REPLY_MS
#define FX_REPLY_MS 30000
#endif

struct fx {
	tr_runtime *rt;
	tr_inbox *ib;
	tr_pid probe;
};

static inline void
fx_start_cfg(struct fx *f, const tr_config *cfg)
{
	memset(f, 0, sizeof(*f));
	if (tr_runtime_create(cfg, &f->rt) != TR_OK ||
	    tr_runtime_start(f->rt) != TR_OK ||
	    tr_inbox_create(f->rt, &f->ib) != TR_OK) {
		fprintf(stderr, "fixture: cannot start a runtime\n");
		exit(1);
	}
	f->probe = tr_self(tr_inbox_ctx(f->ib));
}

static inline void
fx_start(struct fx *f, unsigned workers)
{
	tr_config cfg = tr_config_default();

	cfg.workers = workers;
	fx_start_cfg(f, &cfg);
}

static inline tr_metrics
rt_metrics(tr_runtime *rt)
{
	tr_metrics m;

	memset(&m, 0, sizeof(m));
	m.size = sizeof(m);
	CHECK_OK(tr_runtime_metrics(rt, &m));
	return m;
}

static inline tr_metrics
fx_metrics(const struct fx *f)
{
	return rt_metrics(f->rt);
}

/* After join: nothing alive, every message accounted for, no call pending. */
static inline void
check_final_metrics(tr_runtime *rt)
{
	tr_metrics m = rt_metrics(rt);

	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_U64(m.actors_stopped, m.actors_spawned);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	CHECK_EQ_U64(m.blocking_pending, 0);
}

static inline void
fx_finish(struct fx *f)
{
	tr_inbox_destroy(f->ib);
	tr_runtime_stop(f->rt);
	CHECK_OK(tr_runtime_join(f->rt));
	check_final_metrics(f->rt);
	tr_runtime_destroy(f->rt);
}

static inline tr_pid
spawn(tr_runtime *rt, const tr_actor_def *def, void *arg)
{
	tr_pid p = TR_PID_NONE;

	CHECK_OK(tr_spawn(tr_runtime_ctx(rt), def, arg, &p));
	CHECK(!tr_pid_is_none(p));
	return p;
}

static inline tr_pid
fx_spawn(struct fx *f, const tr_actor_def *def, void *arg)
{
	return spawn(f->rt, def, arg);
}

/* Sends from the probe, so that replies come back to it. */
#define SEND(f, to, type, data, len)                                           \
	CHECK_OK(tr_send(tr_inbox_ctx((f)->ib), (to), (type), (data), (len)))

/* Takes the next probe message; it must be @type with exactly @len bytes. */
static inline bool
fx_recv(struct fx *f, uint32_t type, void *out, size_t len)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	int err = tr_inbox_recv(f->ib, NULL, FX_REPLY_MS, &r);
	if (err != TR_OK) {
		fprintf(stderr, "  probe: no message of type %u: %s\n", type,
			tr_err_name(err));
		return false;
	}
	bool ok = r.type == type && r.size == len;
	if (!ok) {
		fprintf(stderr,
			"  probe: got type %u size %zu, want %u size %zu\n",
			r.type, r.size, type, len);
	} else if (len > 0) {
		memcpy(out, r.data, len);
	}
	tr_received_fini(&r);
	return ok;
}

/* True when nothing reaches the probe within @ms. On a busy machine a
 * short window proves little: wait for the runtime to be idle first, then
 * anything sent to the probe is already queued. */
static inline bool
fx_recv_none(struct fx *f, int64_t ms)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	int err = tr_inbox_recv(f->ib, NULL, ms, &r);
	if (err == TR_OK) {
		fprintf(stderr, "  probe: unexpected message type %u\n",
			r.type);
		tr_received_fini(&r);
		return false;
	}
	return err == TR_ETIMEDOUT;
}

/*
 * Takes the outcome of the request @ref made on the probe's context
 * (tr_inbox_recv() with the reference: other messages stay queued). It must be
 * the reply itself, under @ref, of @type from @from, with exactly @len bytes,
 * copied to @out.
 */
static inline bool
fx_recv_ref(struct fx *f, tr_ref ref, uint32_t type, tr_pid from, void *out,
	    size_t len)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	int err = tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r);
	if (err != TR_OK) {
		fprintf(stderr, "  probe: no outcome of request %llu: %s\n",
			(unsigned long long)ref.v, tr_err_name(err));
		return false;
	}
	bool ok = r.type == type && r.size == len &&
		  (r.flags & TR_MSG_F_REPLY) && r.ref.v == ref.v &&
		  tr_pid_eq(r.from, from);
	if (!ok) {
		fprintf(stderr,
			"  probe: outcome of request %llu: type %u size %zu, "
			"want %u size %zu\n",
			(unsigned long long)ref.v, r.type, r.size, type, len);
	} else if (len > 0) {
		memcpy(out, r.data, len);
	}
	tr_received_fini(&r);
	return ok;
}

/* Copies a handler's payload of exactly @len bytes. */
static inline bool
payload(const tr_msg *m, void *out, size_t len)
{
	if (m->size != len || m->data == NULL) {
		return false;
	}
	memcpy(out, m->data, len);
	return true;
}

#endif /* TR_TESTS_FIXTURE_H */
