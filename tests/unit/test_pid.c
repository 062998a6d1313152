/*
 * Public-API tests of pids: the parts and the text form, distinct pids
 * for live actors, and stale pids after slot reuse (a send to a stale pid
 * never reaches the new actor in that slot and is one dead letter).
 */
#include <troupe/troupe.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/* Generous so that the suite also passes under ThreadSanitizer. */
#define REPLY_MS 5000
#define IDLE_MS  10000

enum {
	MSG_NOTE = 1, /* counted */
	MSG_QUERY,    /* reply MSG_COUNT with the count */
	MSG_COUNT,
};

static atomic_int frees;

static void
counting_free(void *p)
{
	atomic_fetch_add(&frees, 1);
	free(p);
}

struct counter {
	uint64_t n;
};

static void
counter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct counter *s = state;

	if (m->type == MSG_QUERY) {
		(void)tr_send(cx, tr_sender(cx), MSG_COUNT, &s->n,
			      sizeof(s->n));
	} else {
		s->n++;
	}
}

static const tr_actor_def counter_def = {
	.size = sizeof(tr_actor_def),
	.name = "counter",
	.state_size = sizeof(struct counter),
	.handle = counter_handle,
};

static tr_pid
spawn_counter(struct fx *f)
{
	tr_pid p = TR_PID_NONE;

	CHECK_OK(tr_spawn(tr_runtime_ctx(f->rt), &counter_def, NULL, &p));
	return p;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_format_and_parts(void)
{
	struct fx f;
	char buf[32], want[64];

	fx_start(&f, 2);
	tr_pid p = spawn_counter(&f);
	CHECK(!tr_pid_is_none(p));
	CHECK(tr_pid_is_none(TR_PID_NONE));
	CHECK(tr_pid_eq(p, p));
	CHECK(!tr_pid_eq(p, TR_PID_NONE));
	CHECK_EQ_U64(tr_pid_node(p), 0); /* local */
	CHECK(tr_pid_slot(p) < (1u << 28));
	CHECK(tr_pid_generation(p) < (1u << 20));

	snprintf(want, sizeof(want), "<%u.%u.%u>", tr_pid_node(p),
		 tr_pid_slot(p), tr_pid_generation(p));
	CHECK(tr_pid_format(p, buf, sizeof(buf)) == buf);
	CHECK(strcmp(buf, want) == 0);

	/* Too small: truncated and still terminated. */
	char small[4];
	memset(small, 'z', sizeof(small));
	CHECK(tr_pid_format(p, small, sizeof(small)) == small);
	CHECK_EQ_U64(strlen(small), 3);
	CHECK(strncmp(small, want, 3) == 0);

	CHECK(strcmp(tr_pid_format(TR_PID_NONE, buf, sizeof(buf)), "<0.0.0>") ==
	      0);
	CHECK_EQ_U64(tr_pid_slot(TR_PID_NONE), 0);
	CHECK_EQ_U64(tr_pid_generation(TR_PID_NONE), 0);
	fx_finish(&f);
}

static void
test_live_pids_distinct(void)
{
	struct fx f;
	enum { N = 200 };
	tr_pid p[N];
	int same_pid = 0, same_slot = 0;

	fx_start(&f, 2);
	for (int i = 0; i < N; i++) {
		p[i] = spawn_counter(&f);
	}
	for (int i = 0; i < N; i++) {
		CHECK_EQ_U64(tr_pid_node(p[i]), 0);
		CHECK(!tr_pid_eq(p[i], f.probe));
		for (int j = i + 1; j < N; j++) {
			same_pid += tr_pid_eq(p[i], p[j]);
			same_slot += tr_pid_slot(p[i]) == tr_pid_slot(p[j]);
		}
	}
	CHECK_EQ_INT(same_pid, 0);
	CHECK_EQ_INT(same_slot, 0); /* two live actors never share a slot */
	fx_finish(&f);
}

static void
test_stale_pid_after_reuse(void)
{
	struct fx f;
	enum { BATCH = 64, ROUNDS = 200, STALE_MAX = BATCH * ROUNDS };
	static tr_pid stale[STALE_MAX];
	int nstale = 0;
	tr_pid cur = TR_PID_NONE, old = TR_PID_NONE;
	tr_pid batch[BATCH];

	atomic_store(&frees, 0);
	fx_start(&f, 2);
	/* Spawn, stop, spawn again until a new actor gets a stale slot. */
	for (int round = 0; round < ROUNDS && tr_pid_is_none(cur); round++) {
		int n = 0;
		for (; n < BATCH && tr_pid_is_none(cur); n++) {
			batch[n] = spawn_counter(&f);
			for (int k = 0; k < nstale; k++) {
				if (tr_pid_slot(stale[k]) ==
				    tr_pid_slot(batch[n])) {
					cur = batch[n];
					old = stale[k];
					break;
				}
			}
		}
		/* Stop everything but the one that reused a slot. */
		tr_metrics m0 = fx_metrics(&f);
		uint64_t stopping = 0;
		for (int i = 0; i < n; i++) {
			if (tr_pid_eq(batch[i], cur)) {
				continue;
			}
			CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), batch[i],
					 TR_EXIT_NORMAL));
			stale[nstale++] = batch[i];
			stopping++;
		}
		WAIT_UNTIL(fx_metrics(&f).actors_stopped >=
				   m0.actors_stopped + stopping,
			   REPLY_MS);
	}
	if (tr_pid_is_none(cur)) {
		CHECK(!"no slot was reused after many spawns and stops");
		fx_finish(&f);
		return;
	}
	char a[32], b[32];
	printf("  slot reused: old %s, new %s\n", tr_pid_format(old, a, 32),
	       tr_pid_format(cur, b, 32));
	CHECK(!tr_pid_eq(cur, old));
	CHECK_EQ_U64(tr_pid_slot(cur), tr_pid_slot(old));
	CHECK(tr_pid_generation(cur) != tr_pid_generation(old));

	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);
	/* A send to the stale pid succeeds and is one dead letter. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), old, MSG_NOTE, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_U64(fx_metrics(&f).dead_letters, m0.dead_letters + 1);
	/* And so is a pointer message, whose payload is freed. */
	void *ptr = malloc(16);
	CHECK_OK(tr_send_ptr(tr_runtime_ctx(f.rt), old, MSG_NOTE, ptr, 16,
			     counting_free));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_U64(fx_metrics(&f).dead_letters, m0.dead_letters + 2);
	WAIT_UNTIL(atomic_load(&frees) == 1, REPLY_MS);
	/* Stopping a stale pid does not stop the new actor either. */
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), old, TR_EXIT_ERROR));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));

	/* The new actor in that slot got none of it. */
	uint64_t n = 99;
	SEND(&f, cur, MSG_QUERY, NULL, 0);
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, NULL, REPLY_MS, &r));
	CHECK_EQ_U64(r.type, MSG_COUNT);
	CHECK(tr_pid_eq(r.from, cur));
	if (r.size == sizeof(n)) {
		memcpy(&n, r.data, sizeof(n));
	}
	tr_received_fini(&r);
	CHECK_EQ_U64(n, 0);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&frees), 1);
}

/*
 * Pids are never handed out twice. On one worker, a looper spawns a child
 * and stops it, one per turn: the child's stop runs before the looper's
 * next turn, so every spawn reuses the same slot (the free list is LIFO)
 * and walks its generations. A slot has 2^20 - 1 of them; past that a pid
 * repeated and a message to a long-dead pid reached a live actor. Now the
 * slot must be retired after its last generation: the looper runs that
 * far and beyond, and every pid it saw is distinct.
 */
enum { MSG_SPIN = 10, MSG_SPUN, GEN_MAX = (1 << 20) - 1, SPINS = GEN_MAX + 64 };

struct looper {
	tr_pid probe;
	uint32_t done;
	uint64_t *pids; /* SPINS of them, owned by the test */
};

static void
looper_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct looper *s = state;

	if (m->type == MSG_SPIN && m->size == sizeof(s->pids)) {
		s->probe = tr_sender(cx);
		memcpy(&s->pids, m->data, sizeof(s->pids));
	} else if (m->type != MSG_SPIN) {
		return;
	}
	tr_pid c = TR_PID_NONE;
	if (tr_spawn(cx, &counter_def, NULL, &c) != TR_OK ||
	    tr_stop(cx, c, TR_EXIT_NORMAL) != TR_OK) {
		uint32_t bad = UINT32_MAX;
		(void)tr_send(cx, s->probe, MSG_SPUN, &bad, sizeof(bad));
		return;
	}
	s->pids[s->done++] = c.v;
	if (s->done == SPINS) {
		(void)tr_send(cx, s->probe, MSG_SPUN, &s->done,
			      sizeof(s->done));
		return;
	}
	(void)tr_send(cx, tr_self(cx), MSG_SPIN, NULL, 0);
}

static const tr_actor_def looper_def = {
	.size = sizeof(tr_actor_def),
	.name = "looper",
	.state_size = sizeof(struct looper),
	.handle = looper_handle,
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_pid_never_reused(void)
{
	struct fx f;
	uint64_t *pids = calloc(SPINS, sizeof(*pids));
	uint32_t done = 0;

	CHECK(pids != NULL);
	if (pids == NULL) {
		return;
	}
	fx_start(&f, 1);
	tr_pid l = fx_spawn(&f, &looper_def, NULL);
	SEND(&f, l, MSG_SPIN, &pids, sizeof(pids));
	/* A million spawns: give slow (sanitizer) builds minutes. */
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, NULL, 600000, &r));
	CHECK_EQ_U64(r.type, MSG_SPUN);
	if (r.size == sizeof(done)) {
		memcpy(&done, r.data, sizeof(done));
	}
	tr_received_fini(&r);
	CHECK_EQ_U64(done, SPINS);

	/* The walk did reach the end of the first slot's generations. */
	uint32_t slot0 = tr_pid_slot((tr_pid){ pids[0] });
	uint64_t in_slot0 = 0;
	for (uint32_t i = 0; i < done; i++) {
		in_slot0 += tr_pid_slot((tr_pid){ pids[i] }) == slot0;
	}
	CHECK_EQ_U64(in_slot0, GEN_MAX);

	/* The first child's pid now names nobody: a dead letter. */
	tr_metrics m0 = fx_metrics(&f);
	SEND(&f, (tr_pid){ pids[0] }, MSG_NOTE, NULL, 0);
	WAIT_UNTIL(fx_metrics(&f).dead_letters > m0.dead_letters, IDLE_MS);

	qsort(pids, done, sizeof(*pids), cmp_u64);
	uint64_t repeats = 0;
	for (uint32_t i = 1; i < done; i++) {
		repeats += pids[i] == pids[i - 1];
	}
	CHECK_EQ_U64(repeats, 0);
	fx_finish(&f);
	free(pids);
}

static const struct test_case tests[] = {
	{ "pid: format and parts", test_format_and_parts },
	{ "pid: live actors have distinct pids and slots",
	  test_live_pids_distinct },
	{ "pid: a pid is never handed out twice (a slot retires)",
	  test_pid_never_reused },
	{ "pid: stale pid after slot reuse is a dead letter",
	  test_stale_pid_after_reuse },
	{ NULL, NULL },
};

TEST_MAIN(tests)
