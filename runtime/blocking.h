/*
 * The blocking pool behind tr_blocking(): its own threads, not libuv's and
 * not the workers, fed through a mutex-protected FIFO. A lock is fine here:
 * the calls it queues block for milliseconds by definition.
 */
#ifndef TR_RUNTIME_BLOCKING_H
#define TR_RUNTIME_BLOCKING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <troupe/actor.h>

struct tr__blocking_job;

struct tr__blocking {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tr__blocking_job *head;
	struct tr__blocking_job *tail;
	pthread_t *threads;
	unsigned nthreads;
	unsigned started;
	bool stop;
	_Atomic uint64_t pending; /* queued or running */
};

tr_err tr__blocking_init(struct tr__blocking *b, unsigned nthreads);
tr_err tr__blocking_start(struct tr__blocking *b, tr_runtime *rt);
tr_err tr__blocking_submit(struct tr__blocking *b, tr_blocking_fn fn, void *arg,
			   uint64_t to, uint32_t type, tr_free_fn free_fn);
/* Stop the threads once the queue is empty and join them. */
void tr__blocking_shutdown(struct tr__blocking *b);
void tr__blocking_fini(struct tr__blocking *b);

#endif /* TR_RUNTIME_BLOCKING_H */
