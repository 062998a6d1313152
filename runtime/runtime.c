/*
 * Runtime lifecycle (create, start, stop, join, wait for quiescence,
 * destroy), and the context that threads outside any actor use
 * (tr_runtime_ctx).
 *
 * Threads: create/start/join/destroy are `setup`; stop and the runtime's
 * context are `any`. life_mu/life_cv only wake a joiner when a stop is
 * requested; the join itself polls the counters with short sleeps, because
 * the conditions it waits for (every actor stopped, every worker parked)
 * are spread over all workers and are not worth a lock on their paths.
 *
 * Invariant at the end of join: every actor stopped, every mailbox empty,
 * sum(sent) == sum(handled) + sum(dead), every worker thread joined.
 */
#include "runtime/runtime.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <troupe/metrics.h>

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/internal.h"
#include "runtime/sched.h"

tr_config
tr_config_default(void)
{
	tr_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	return c;
}

static void
nap_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

void
tr__runtime_sum_stats(tr_runtime *rt, struct tr__stats *out)
{
	const size_t nfields = sizeof(struct tr__stats) / sizeof(uint64_t);
	uint64_t *dst = (uint64_t *)(void *)out;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i <= rt->nworkers; i++) {
		struct tr__stats *s =
			i < rt->nworkers ? &rt->workers[i].stats : &rt->foreign;
		_Atomic uint64_t *src = (_Atomic uint64_t *)(void *)s;

		for (size_t f = 0; f < nfields; f++) {
			dst[f] += atomic_load_explicit(&src[f],
						       memory_order_relaxed);
		}
	}
}

tr_err
tr_runtime_create(const tr_config *cfg, tr_runtime **out)
{
	tr_config c = cfg != NULL ? *cfg : tr_config_default();
	tr_err err;

	if (out == NULL || c.size < sizeof(tr_config)) {
		return TR_EINVAL;
	}
	tr__alloc_tune();
	if (c.workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c.workers = n > 0 ? (unsigned)n : 1;
	}
	if (c.workers > TR_METRICS_MAX_WORKERS) {
		return TR_EINVAL;
	}
	if (c.batch == 0) {
		c.batch = 100;
	}
	if (c.slow_handler_us == 0) {
		c.slow_handler_us = 10000;
	}
	if (c.blocking_threads == 0) {
		c.blocking_threads = 4;
	}
	if (c.max_msg_size == 0) {
		c.max_msg_size = (size_t)64 << 20;
	}
	if (c.spin_us == 0) {
		c.spin_us = 50;
	}
	if (c.stop_drain_ms == 0) {
		c.stop_drain_ms = 5000;
	}
	if (c.io_threads == 0) {
		c.io_threads = 1;
	}
	if (c.io_threads > 64) {
		return TR_EINVAL;
	}
	tr__clock_init();

	tr_runtime *rt = tr__calloc(sizeof(*rt));
	if (rt == NULL) {
		return TR_ENOMEM;
	}
	rt->cfg = c;
	rt->nworkers = c.workers;
	rt->batch = c.batch;
	rt->slow_ticks = (uint64_t)c.slow_handler_us * tr__ticks_per_us();
	rt->cx.rt = rt; /* tr_runtime_ctx(): no actor, no inbox, no sender */
	atomic_init(&rt->next_ref, 1);
	rt->chunks = tr__calloc(sizeof(*rt->chunks) * TR__MAX_CHUNKS);
	if (rt->chunks == NULL) {
		err = TR_ENOMEM;
		goto err_free;
	}
	err = tr__sched_init(rt);
	if (err < 0) {
		goto err_chunks;
	}
	err = tr__blocking_init(&rt->blocking, c.blocking_threads);
	if (err < 0) {
		goto err_sched;
	}
	err = tr__io_create(rt, c.io_threads, !c.io_dedicated, &rt->io);
	if (err < 0) {
		goto err_blocking;
	}
	pthread_mutex_init(&rt->slot_mu, NULL);
	pthread_mutex_init(&rt->life_mu, NULL);
	pthread_cond_init(&rt->life_cv, NULL);
	atomic_init(&rt->state, TR__RT_CREATED);
	*out = rt;
	return TR_OK;

err_blocking:
	tr__blocking_fini(&rt->blocking);
err_sched:
	tr__sched_fini(rt);
err_chunks:
	tr__free(rt->chunks, sizeof(*rt->chunks) * TR__MAX_CHUNKS);
err_free:
	tr__free(rt, sizeof(*rt));
	return err;
}

tr_err
tr_runtime_start(tr_runtime *rt)
{
	if (rt == NULL) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&rt->state, memory_order_acquire) !=
	    TR__RT_CREATED) {
		return TR_ESTATE;
	}
	tr_err err = tr__blocking_start(&rt->blocking, rt);
	if (err < 0) {
		return err;
	}
	err = tr__io_start(rt->io);
	if (err < 0) {
		tr__io_shutdown(rt->io); /* the loops that did start */
		tr__blocking_shutdown(&rt->blocking);
		return err;
	}
	err = tr__sched_start(rt);
	if (err < 0) {
		tr__io_shutdown(rt->io);
		tr__blocking_shutdown(&rt->blocking);
		return err;
	}
	atomic_store_explicit(&rt->state, TR__RT_RUNNING, memory_order_release);
	return TR_OK;
}

void
tr_runtime_stop(tr_runtime *rt)
{
	if (rt == NULL) {
		return;
	}
	pthread_mutex_lock(&rt->life_mu);
	atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
	pthread_cond_broadcast(&rt->life_cv);
	pthread_mutex_unlock(&rt->life_mu);
}

static uint64_t
actors_alive(tr_runtime *rt)
{
	struct tr__stats s;

	tr__runtime_sum_stats(rt, &s);
	return s.spawned - s.stopped;
}

/*
 * Quiescent: nothing queued, no worker inside a turn, no blocking call
 * pending, and every message sent has been handled or counted dead.
 */
static bool
quiescent_once(tr_runtime *rt)
{
	struct tr__stats s;

	if (!tr__sched_settled(rt) ||
	    atomic_load_explicit(&rt->blocking.pending, memory_order_acquire) !=
		    0) {
		return false;
	}
	tr__runtime_sum_stats(rt, &s);
	/* An unhandled message is in both handled and dead. */
	return s.sent + s.unhandled == s.handled + s.dead &&
	       tr__sched_settled(rt);
}

static bool
quiescent(tr_runtime *rt)
{
	/*
	 * Two observations apart: a turn that started between the counter
	 * sums and the settled check is caught by the second.
	 */
	if (!quiescent_once(rt)) {
		return false;
	}
	nap_us(100);
	return quiescent_once(rt);
}

tr_err
tr_runtime_join(tr_runtime *rt)
{
	if (rt == NULL) {
		return TR_EINVAL;
	}
	int st = atomic_load_explicit(&rt->state, memory_order_acquire);
	if (st == TR__RT_JOINED) {
		return TR_OK;
	}
	if (tr__sched_current(rt) != NULL) {
		tr__misuse("tr_runtime_join() in a handler: it waits for every "
			   "actor to stop, the caller's own included");
		return TR_ESTATE;
	}
	if (st != TR__RT_RUNNING) {
		return TR_ESTATE;
	}
	pthread_mutex_lock(&rt->life_mu);
	while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
		pthread_cond_wait(&rt->life_cv, &rt->life_mu);
	}
	pthread_mutex_unlock(&rt->life_mu);

	/*
	 * A foreign thread's spawn that read `stopping` false has raised
	 * foreign_spawning first (seq_cst on both sides): wait until it has
	 * published its actor and queued its first message, or the sweep
	 * below could miss it and nothing alive would count it.
	 */
	while (atomic_load_explicit(&rt->foreign_spawning,
				    memory_order_seq_cst) != 0) {
		nap_us(50);
	}
	/*
	 * Stop every actor, then keep stopping whatever is still alive (an
	 * actor spawned while the first sweep ran) until none is left. A pid
	 * that already has its STOP queued, behind a long queue or a long
	 * turn, is not sent another (tr__actor_stop_all): it would end as a
	 * dead letter.
	 */
	uint64_t overtake_at =
		tr__clock_ns() + (uint64_t)rt->cfg.stop_drain_ms * 1000000u;
	bool overtake = false;
	tr__actor_stop_all(rt, false);
	for (unsigned round = 1; actors_alive(rt) > 0; round++) {
		nap_us(1000);
		if (!overtake && tr__clock_ns() >= overtake_at) {
			/* Drained long enough: what is left is dropped. */
			overtake = true;
			tr__actor_stop_all(rt, true);
		} else if (round % 50 == 0) {
			tr__actor_stop_all(rt, overtake);
		}
	}
	while (!quiescent(rt)) {
		nap_us(500);
	}
	/* No actor is left to send it commands: close every handle. A timer
	 * that fires meanwhile finds its owner gone and sends nothing. */
	tr__io_shutdown(rt->io);
	while (!quiescent(rt)) {
		nap_us(500);
	}
	tr__sched_shutdown(rt);
	tr__blocking_shutdown(&rt->blocking);
	atomic_store_explicit(&rt->state, TR__RT_JOINED, memory_order_release);
	return TR_OK;
}

tr_err
tr_runtime_wait_idle(tr_runtime *rt, int64_t timeout_ms)
{
	if (rt == NULL) {
		return TR_EINVAL;
	}
	if (tr__sched_current(rt) != NULL) {
		tr__misuse("tr_runtime_wait_idle() in a handler: the runtime "
			   "is not idle while the caller runs");
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&rt->state, memory_order_acquire) !=
	    TR__RT_RUNNING) {
		return TR_ESTATE;
	}
	uint64_t deadline = tr__clock_ns() + (uint64_t)timeout_ms * 1000000u;
	unsigned us = 50;
	for (;;) {
		if (quiescent(rt)) {
			return TR_OK;
		}
		if (timeout_ms >= 0 && tr__clock_ns() > deadline) {
			return TR_ETIMEDOUT;
		}
		nap_us(us);
		if (us < 2000) {
			us *= 2;
		}
	}
}

void
tr_runtime_destroy(tr_runtime *rt)
{
	if (rt == NULL) {
		return;
	}
	if (tr__sched_current(rt) != NULL) {
		tr__misuse("tr_runtime_destroy() in a handler: it would free "
			   "the worker it runs on");
		return;
	}
	if (atomic_load_explicit(&rt->state, memory_order_acquire) ==
	    TR__RT_RUNNING) {
		tr_runtime_stop(rt);
		tr_runtime_join(rt);
	}
	tr__actor_table_fini(rt);
	tr__io_destroy(rt->io);
	tr__blocking_fini(&rt->blocking);
	tr__sched_fini(rt);
	tr__free(rt->chunks, sizeof(*rt->chunks) * TR__MAX_CHUNKS);
	struct tr__remote *remote =
		(struct tr__remote *)(uintptr_t)atomic_load_explicit(
			&rt->remote, memory_order_relaxed);
	if (remote != NULL && remote->release != NULL) {
		remote->release(remote->arg);
	}
	free(remote);
	pthread_mutex_destroy(&rt->slot_mu);
	pthread_mutex_destroy(&rt->life_mu);
	pthread_cond_destroy(&rt->life_cv);
	tr__free(rt, sizeof(*rt));
}

unsigned
tr_runtime_workers(const tr_runtime *rt)
{
	return rt != NULL ? rt->nworkers : 0;
}

tr_ctx *
tr_runtime_ctx(tr_runtime *rt)
{
	return rt != NULL ? &rt->cx : NULL;
}

bool
tr_runtime_on_worker(const tr_runtime *rt)
{
	return rt != NULL && tr__sched_current((tr_runtime *)rt) != NULL;
}

bool
tr_actor_alive(tr_runtime *rt, tr_pid pid)
{
	if (rt == NULL || pid.v == 0) {
		return false;
	}
	struct tr__actor *a = tr__actor_lookup(rt, pid.v);

	return a != NULL &&
	       atomic_load_explicit(&a->pid, memory_order_acquire) == pid.v;
}

tr_err
tr_mailbox_len(tr_runtime *rt, tr_pid pid, uint32_t *out)
{
	if (rt == NULL || out == NULL || pid.v == 0) {
		return TR_EINVAL;
	}
	struct tr__actor *a = tr__actor_lookup(rt, pid.v);

	if (a == NULL ||
	    atomic_load_explicit(&a->pid, memory_order_acquire) != pid.v) {
		return TR_ENOENT;
	}
	if (atomic_load_explicit(&a->bound, memory_order_relaxed) == 0) {
		return TR_ESTATE;
	}
	*out = atomic_load_explicit(&a->mb_len, memory_order_relaxed);
	return TR_OK;
}
