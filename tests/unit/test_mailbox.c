/*
 * Unit tests of the mailbox (runtime/mailbox.h): FIFO order, the
 * "exactly one sender schedules" rule, and per-producer order with many
 * producers racing one consumer.
 */
#include "runtime/mailbox.h"

#include <pthread.h>
#include <stdatomic.h>

#include <troupe/error.h>

#include "harness.h"

struct node {
	struct tr__mnode link; /* first: the mailbox works on this */
	unsigned producer;
	unsigned seq;
};

static struct node *
node_of(struct tr__mnode *n)
{
	return (struct node *)(void *)n;
}

static void
test_fifo_single_thread(void)
{
	struct tr__mailbox mb;
	struct node nodes[5];
	struct tr__mnode *retired;

	tr__mailbox_init(&mb);
	CHECK(tr__mailbox_is_empty(&mb));
	for (unsigned i = 0; i < 5; i++) {
		nodes[i].seq = i;
		bool first = tr__mailbox_push(&mb, &nodes[i].link);
		/* Only the push onto the idle mailbox must schedule. */
		CHECK(first == (i == 0));
	}
	for (unsigned i = 0; i < 5; i++) {
		struct tr__mnode *n = tr__mailbox_pop(&mb, &retired);
		CHECK(n != NULL);
		if (n != NULL) {
			CHECK_EQ_U64(node_of(n)->seq, i);
		}
		/* The stub is never handed back; later tails are. */
		if (i == 0) {
			CHECK(retired == NULL);
		} else {
			CHECK(retired == &nodes[i - 1].link);
		}
	}
	CHECK(tr__mailbox_pop(&mb, &retired) == NULL);
	CHECK(tr__mailbox_mark_empty(&mb));
	/* Idle again: the next push must schedule once more. */
	struct node extra = { .seq = 99 };
	CHECK(tr__mailbox_push(&mb, &extra.link));
	CHECK(!tr__mailbox_mark_empty(&mb)); /* something is queued */
}

#define PRODUCERS    4
#define PER_PRODUCER 100000

struct race {
	struct tr__mailbox mb;
	struct node *nodes;
	_Atomic uint64_t schedules; /* pushes that found the mailbox idle */
	_Atomic bool go;
};

static void *
producer(void *arg)
{
	struct race *r = *(struct race **)arg;
	unsigned id = (unsigned)(((uintptr_t *)arg)[1]);

	while (!atomic_load_explicit(&r->go, memory_order_acquire)) {
	}
	for (unsigned i = 0; i < PER_PRODUCER; i++) {
		struct node *n = &r->nodes[id * PER_PRODUCER + i];
		n->producer = id;
		n->seq = i;
		if (tr__mailbox_push(&r->mb, &n->link)) {
			atomic_fetch_add_explicit(&r->schedules, 1,
						  memory_order_relaxed);
		}
	}
	return NULL;
}

/*
 * Producers race one consumer that goes idle (mark_empty) whenever it
 * finds nothing. Each successful mark_empty must be matched by exactly
 * one later push that reports "schedule me", and every producer's
 * messages must arrive in the order it sent them.
 */
static void
test_many_producers_order_and_single_schedule(void)
{
	static struct race r;
	pthread_t th[PRODUCERS];
	uintptr_t args[PRODUCERS][2];
	unsigned next_seq[PRODUCERS] = { 0 };
	uint64_t received = 0, idles = 0, order_errors = 0;
	struct tr__mnode *retired;

	tr__mailbox_init(&r.mb);
	r.nodes = calloc(PRODUCERS * PER_PRODUCER, sizeof(struct node));
	atomic_store(&r.schedules, 0);
	/* The first push onto a fresh mailbox schedules: start "idle". */
	idles = 1;
	for (unsigned i = 0; i < PRODUCERS; i++) {
		args[i][0] = (uintptr_t)&r;
		args[i][1] = i;
		pthread_create(&th[i], NULL, producer, args[i]);
	}
	atomic_store_explicit(&r.go, true, memory_order_release);
	while (received < (uint64_t)PRODUCERS * PER_PRODUCER) {
		struct tr__mnode *n = tr__mailbox_pop(&r.mb, &retired);
		if (n == NULL) {
			if (tr__mailbox_mark_empty(&r.mb)) {
				idles++;
				/* Wait until some push schedules us again. */
				while (atomic_load_explicit(
					       &r.schedules,
					       memory_order_acquire) < idles) {
				}
			}
			continue;
		}
		struct node *x = node_of(n);
		if (x->seq != next_seq[x->producer]) {
			order_errors++;
		}
		next_seq[x->producer] = x->seq + 1;
		received++;
	}
	for (unsigned i = 0; i < PRODUCERS; i++) {
		pthread_join(th[i], NULL);
	}
	CHECK_EQ_U64(order_errors, 0);
	CHECK_EQ_U64(received, (uint64_t)PRODUCERS * PER_PRODUCER);
	CHECK_EQ_U64(atomic_load(&r.schedules), idles);
	CHECK(tr__mailbox_pop(&r.mb, &retired) == NULL);
	free(r.nodes);
}

static const struct test_case tests[] = {
	{ "mailbox: FIFO and schedule-once on one thread",
	  test_fifo_single_thread },
	{ "mailbox: many producers keep order, one schedule per idle",
	  test_many_producers_order_and_single_schedule },
	{ NULL, NULL },
};

TEST_MAIN(tests)
