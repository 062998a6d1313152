/*
 * The blocking pool behind tr_blocking().
 *
 * Its own threads (not the workers, not libuv's pool): a call queued here
 * may block for as long as it likes without taking a core away from the
 * scheduler, and a slow disk or DNS call elsewhere cannot delay it. Jobs
 * wait in a mutex-protected FIFO; the lock is only taken by submitters and
 * pool threads, never on the send or schedule path.
 *
 * Invariant: every job submitted ends in exactly one message to its
 * submitter (delivered, or a counted dead letter whose payload is freed).
 * `pending` counts jobs from submit until that message is sent, so a
 * runtime is not quiescent while one is outstanding.
 */
#include "runtime/blocking.h"

#include <string.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/internal.h"
#include "runtime/sched.h"

struct tr__blocking_job {
	struct tr__blocking_job *next;
	tr_blocking_fn fn;
	void *arg;
	uint64_t to;
	uint32_t type;
	tr_free_fn free_fn;
};

struct pool_arg {
	struct tr__blocking *b;
	tr_runtime *rt;
	unsigned index;
};

tr_err
tr__blocking_init(struct tr__blocking *b, unsigned nthreads)
{
	memset(b, 0, sizeof(*b));
	b->threads = tr__calloc(sizeof(pthread_t) * nthreads);
	if (b->threads == NULL) {
		return TR_ENOMEM;
	}
	b->nthreads = nthreads;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	return TR_OK;
}

static void *
pool_main(void *p)
{
	struct pool_arg pa = *(struct pool_arg *)p;
	struct tr__blocking *b = pa.b;

	tr__free(p, sizeof(struct pool_arg));
	tr__thread_name("tr-blocking-", (int)pa.index);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (b->head == NULL && !b->stop) {
			pthread_cond_wait(&b->cv, &b->mu);
		}
		if (b->head == NULL) {
			break;
		}
		struct tr__blocking_job *j = b->head;
		b->head = j->next;
		if (b->head == NULL) {
			b->tail = NULL;
		}
		pthread_mutex_unlock(&b->mu);

		void *result = j->fn(j->arg);
		/* Not bounded: the reply to a call the actor made always fits.
		 */
		(void)tr__send_ptr(pa.rt, NULL, j->to, j->to, j->type, result,
				   0, j->free_fn, false);
		tr__free(j, sizeof(*j));
		/* release: pairs with the acquire in the quiescence check. */
		atomic_fetch_sub_explicit(&b->pending, 1, memory_order_release);

		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

tr_err
tr__blocking_start(struct tr__blocking *b, tr_runtime *rt)
{
	for (unsigned i = 0; i < b->nthreads; i++) {
		struct pool_arg *pa = tr__alloc(sizeof(*pa));
		if (pa == NULL) {
			tr__blocking_shutdown(b);
			return TR_ENOMEM;
		}
		pa->b = b;
		pa->rt = rt;
		pa->index = i;
		if (pthread_create(&b->threads[i], NULL, pool_main, pa) != 0) {
			tr__free(pa, sizeof(*pa));
			tr__blocking_shutdown(b);
			return TR_ESYS;
		}
		b->started++;
	}
	return TR_OK;
}

tr_err
tr__blocking_submit(struct tr__blocking *b, tr_blocking_fn fn, void *arg,
		    uint64_t to, uint32_t type, tr_free_fn free_fn)
{
	struct tr__blocking_job *j = tr__alloc(sizeof(*j));

	if (j == NULL) {
		return TR_ENOMEM;
	}
	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	j->to = to;
	j->type = type;
	j->free_fn = free_fn;
	atomic_fetch_add_explicit(&b->pending, 1, memory_order_relaxed);
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL) {
		b->tail->next = j;
	} else {
		b->head = j;
	}
	b->tail = j;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return TR_OK;
}

void
tr__blocking_shutdown(struct tr__blocking *b)
{
	pthread_mutex_lock(&b->mu);
	b->stop = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (unsigned i = 0; i < b->started; i++) {
		pthread_join(b->threads[i], NULL);
	}
	b->started = 0;
}

void
tr__blocking_fini(struct tr__blocking *b)
{
	if (b->threads == NULL) {
		return;
	}
	/* Jobs never run (the runtime was never started): drop them. */
	while (b->head != NULL) {
		struct tr__blocking_job *j = b->head;
		b->head = j->next;
		tr__free(j, sizeof(*j));
	}
	tr__free(b->threads, sizeof(pthread_t) * b->nthreads);
	b->threads = NULL;
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
}
