/*
 * Allocation fault injection (after SQLite's *fault.test): make the N-th
 * allocation of the runtime fail, for every N that a scenario reaches, and
 * check that each call either succeeds or returns TR_ENOMEM, that nothing
 * crashes, and that after destroy every byte allocated through tr__alloc
 * is back (no leak on any error path).
 */
#include "runtime/alloc.h"

#include <string.h>

#include <troupe/troupe.h>

#include "harness.h"

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (!tr_pid_is_none(m->from)) {
		(void)tr_send(cx, m->from, 2, m->data, m->size);
	}
}

static int
echo_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)arg;
	memset(state, 7, 16);
	return TR_OK;
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.state_size = 64,
	.init = echo_init,
	.handle = echo_handle,
};

static void
free_box(void *p)
{
	free(p);
}

/*
 * One scenario: create, spawn, send (copied and pointer), link through
 * an inbox, and destroy; optionally started. Returns how many calls
 * failed with TR_ENOMEM; any other error is a failed check.
 */
static int
scenario(bool start)
{
	tr_config cfg = tr_config_default();
	tr_runtime *rt = NULL;
	int enomem = 0;

	cfg.workers = 2;
	cfg.blocking_threads = 1;
	tr_err err = tr_runtime_create(&cfg, &rt);
	if (err == TR_ENOMEM) {
		return 1;
	}
	CHECK_OK(err);
	if (err != TR_OK) {
		return 0;
	}
	if (start) {
		err = tr_runtime_start(rt);
		CHECK(err == TR_OK || err == TR_ENOMEM);
		enomem += err == TR_ENOMEM;
		if (err != TR_OK) {
			start = false;
		}
	}
	tr_inbox *ib = NULL;
	err = tr_inbox_create(rt, &ib);
	CHECK(err == TR_OK || err == TR_ENOMEM);
	enomem += err == TR_ENOMEM;
	for (int i = 0; i < 4; i++) {
		tr_pid p = TR_PID_NONE;
		err = tr_spawn(tr_runtime_ctx(rt), &echo_def, NULL, &p);
		CHECK(err == TR_OK || err == TR_ENOMEM);
		enomem += err == TR_ENOMEM;
		if (err != TR_OK) {
			continue;
		}
		char big[300];
		memset(big, i, sizeof(big));
		/* As the inbox, or as nobody when it could not be made. */
		tr_ctx *cx = ib != NULL ? tr_inbox_ctx(ib) : tr_runtime_ctx(rt);
		err = tr_send(cx, p, 1, big, (size_t)(i + 1) * 70);
		CHECK(err == TR_OK || err == TR_ENOMEM);
		enomem += err == TR_ENOMEM;
		void *box = malloc(32);
		/* Ownership moves on every path, failure included. */
		err = tr_send_ptr(tr_runtime_ctx(rt), p, 1, box, 32, free_box);
		CHECK(err == TR_OK || err == TR_ENOMEM);
		enomem += err == TR_ENOMEM;
	}
	if (start) {
		(void)tr_runtime_wait_idle(rt, 5000);
	}
	tr_inbox_destroy(ib);
	tr_runtime_destroy(rt);
	return enomem;
}

static void
run_all_fault_points(bool start)
{
	int64_t base = tr__alloc_outstanding();
	unsigned points = 0, failures = 0;

	for (uint64_t n = 1; n < 150; n++) {
		tr__alloc_fail_after(n);
		int enomem = scenario(start);
		tr__alloc_fail_after(0);
		int64_t left = tr__alloc_outstanding() - base;
		if (left != 0) {
			fprintf(stderr,
				"  fault at allocation %" PRIu64 ": %" PRId64
				" bytes leaked\n",
				n, left);
			CHECK_EQ_INT(left, 0);
			break;
		}
		points++;
		failures += enomem > 0;
	}
	printf("  %s: %u fault points, %u reported TR_ENOMEM, no leak\n",
	       start ? "started" : "never started", points, failures);
	/* The scenario must really have hit failures it could report. */
	CHECK(failures > 10);
}

static void
test_faults_never_started(void)
{
	run_all_fault_points(false);
}

static void
test_faults_started(void)
{
	run_all_fault_points(true);
}

static const struct test_case tests[] = {
	{ "fault: every allocation failure, runtime never started",
	  test_faults_never_started },
	{ "fault: every allocation failure, runtime running",
	  test_faults_started },
	{ NULL, NULL },
};

TEST_MAIN(tests)
