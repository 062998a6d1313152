/*
 * Misuse of the API aborts in a debug build with a message that says what
 * was wrong (STYLE.md, "API misuse"). Each scenario is one run of this
 * program, named by its argument, and is registered with should_fail: a
 * scenario that does not abort ends normally, which fails it. Run with no
 * argument, the program checks the one legitimate way to ask the question
 * the misuse answers: tr_runtime_on_worker().
 */
#include <troupe/troupe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

enum { MSG_GO = 1, MSG_DONE };

static tr_runtime *g_rt;
static tr_inbox *g_ib;
static const char *g_scenario;
static _Atomic(tr_ctx *) g_kept;
static atomic_int g_on_worker = -1;

static void
misuser_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_GO) {
		return;
	}
	const char *s = g_scenario;
	tr_err err = TR_OK;

	if (strcmp(s, "ctx-other-thread") == 0) {
		atomic_store(&g_kept, cx); /* kept past the turn: misuse */
	} else if (strcmp(s, "join-in-handler") == 0) {
		err = tr_runtime_join(g_rt);
	} else if (strcmp(s, "wait-idle-in-handler") == 0) {
		err = tr_runtime_wait_idle(g_rt, 1000);
	} else if (strcmp(s, "recv-in-handler") == 0) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		err = tr_inbox_recv(g_ib, NULL, 1000, &r);
	} else if (strcmp(s, "destroy-in-handler") == 0) {
		tr_runtime_destroy(g_rt);
	} else {
		atomic_store(&g_on_worker, tr_runtime_on_worker(g_rt) ? 1 : 0);
	}
	(void)tr_send(cx, tr_sender(cx), MSG_DONE, &err, sizeof(err));
}

static const tr_actor_def misuser_def = {
	.size = sizeof(tr_actor_def),
	.name = "misuser",
	.handle = misuser_handle,
};

int
main(int argc, char **argv)
{
	struct fx f;
	tr_err err = TR_OK;

	g_scenario = argc > 1 ? argv[1] : "on-worker";
	fx_start(&f, 2);
	g_rt = f.rt;
	g_ib = f.ib;
	tr_pid a = fx_spawn(&f, &misuser_def, NULL);
	SEND(&f, a, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_DONE, &err, sizeof(err)));
	if (strcmp(g_scenario, "ctx-other-thread") == 0) {
		tr_ctx *kept = atomic_load(&g_kept);
		/* From this thread, after the turn: must abort here. */
		err = tr_send(kept, a, MSG_GO, NULL, 0);
	}
	printf("%s: no abort (returned %s)\n", g_scenario, tr_err_name(err));
	if (argc <= 1) {
		CHECK(!tr_runtime_on_worker(f.rt));
		CHECK(!tr_runtime_on_worker(NULL));
		CHECK_EQ_INT(atomic_load(&g_on_worker), 1);
	}
	fx_finish(&f);
	printf("%d passed, %d failed\n", harness_failed_checks == 0,
	       harness_failed_checks != 0);
	return harness_failed_checks == 0 ? 0 : 1;
}
