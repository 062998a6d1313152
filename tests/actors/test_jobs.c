/*
 * Jobs (<troupe/actors/jobs.h>): submit and complete with a result,
 * progress in order, the concurrency limit with FIFO starts, cancelling
 * queued and running jobs (a late complete is ignored), timeouts, crashes
 * and failures, watchers, the table's limit, unknown ids and bad input,
 * and exactly one final event per job over 200 mixed jobs.
 *
 * The probe watches jobs; every event it gets is appended to one log in
 * arrival order, and tests wait on conditions over that log. Job actors
 * report through atomics in struct world (high-water mark of running
 * jobs, start order, teardown reasons, return codes). Handlers never call
 * CHECK.
 */
#include <troupe/troupe.h>
#include <troupe/actors/jobs.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Generous, for the sanitizer builds on a busy machine: reaching one of
 * these deadlines is a failure. */
#define FX_REPLY_MS 30000
#include "harness.h"
#include "fixture.h"

#define WAIT_MS 30000

enum {
	MSG_STEP = 1, /* steps: uint32_t step number */
	MSG_POLL,     /* slow: is the release flag set? */
	MSG_HOLD,     /* hang: wait for the gate, then complete */
	MSG_CRASH,    /* stop with TR_EXIT_ERROR */
	MSG_TRY,      /* outsider: call the job functions, report */
	MSG_TRIED,    /* outsider -> probe: int32_t[3] */
};

#define ORDER_MAX 64

struct world {
	atomic_int running;
	atomic_int high;
	atomic_uint norder;
	_Atomic uint64_t order[ORDER_MAX];
	atomic_int release;
	atomic_int gate_in;
	atomic_int gate_open;
	atomic_int last_reason;
	atomic_int teardowns;
	atomic_int complete_ret;
	atomic_int rc_progress_bad;
	atomic_int rc_complete_twice;
	atomic_int rc_progress_after;
	atomic_int rc_checks;
};

static struct world g;

static void
world_reset(void)
{
	memset(&g, 0, sizeof(g));
	atomic_store(&g.last_reason, -1);
	atomic_store(&g.complete_ret, 1);
}

/* ---- the probe's log of events ------------------------------------------- */

/* An event as received: a copy of the whole payload, result included. */
struct evrec {
	tr_job_event *ev;
};

#define EV_MAX 8192

static struct evrec evs[EV_MAX];
static size_t nev;
static int stray; /* probe messages that were not job events */

static void
log_reset(void)
{
	for (size_t i = 0; i < nev; i++) {
		free(evs[i].ev);
		evs[i].ev = NULL;
	}
	nev = 0;
	stray = 0;
}

static bool
pump(struct fx *f, int64_t ms)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(f->ib, NULL, ms, &r) != TR_OK) {
		return false;
	}
	const tr_job_event *ev = r.data;
	/* The header's contract: the event, then result_size bytes. */
	bool ok = r.type == TR_MSG_JOB_EVENT && r.size >= sizeof(*ev) &&
		  r.size - sizeof(*ev) == ev->result_size &&
		  memchr(ev->kind, '\0', sizeof(ev->kind)) != NULL &&
		  memchr(ev->note, '\0', sizeof(ev->note)) != NULL;
	if (ok && nev < EV_MAX && (evs[nev].ev = malloc(r.size)) != NULL) {
		memcpy(evs[nev].ev, r.data, r.size);
		nev++;
	} else {
		fprintf(stderr, "  probe: unexpected type %u size %zu\n",
			r.type, r.size);
		stray++;
	}
	tr_received_fini(&r);
	return true;
}

#define WAIT_EV(f, cond, ms)                                                   \
	({                                                                     \
		uint64_t wd_ = harness_now_ms() + (ms);                        \
		bool wok_ = false;                                             \
		for (;;) {                                                     \
			if (cond) {                                            \
				wok_ = true;                                   \
				break;                                         \
			}                                                      \
			if (harness_now_ms() > wd_) {                          \
				break;                                         \
			}                                                      \
			(void)pump((f), 20);                                   \
		}                                                              \
		if (!wok_) {                                                   \
			fprintf(stderr, "%s:%d: timed out waiting for %s\n",   \
				__FILE__, __LINE__, #cond);                    \
			harness_failed_checks++;                               \
		}                                                              \
		wok_;                                                          \
	})

static int
count_ev(uint64_t id, uint32_t event)
{
	int n = 0;

	for (size_t i = 0; i < nev; i++) {
		if ((id == 0 || evs[i].ev->id == id) &&
		    (event == 0 || evs[i].ev->event == event)) {
			n++;
		}
	}
	return n;
}

static const struct evrec *
find_ev(uint64_t id, uint32_t event)
{
	for (size_t i = 0; i < nev; i++) {
		if (evs[i].ev->id == id && evs[i].ev->event == event) {
			return &evs[i];
		}
	}
	return NULL;
}

/* The job's events as a string of their kinds ("QSPPF"), in order, and
 * whether their seq numbers run 1, 2, 3... */
static const char *
story(uint64_t id, bool *seq_ok)
{
	static char buf[256];
	size_t n = 0;
	uint32_t seq = 0;

	*seq_ok = true;
	for (size_t i = 0; i < nev && n + 1 < sizeof(buf); i++) {
		if (evs[i].ev->id != id) {
			continue;
		}
		buf[n++] =
			"?QSPF"[evs[i].ev->event <= 4 ? evs[i].ev->event : 0];
		if (evs[i].ev->seq != ++seq) {
			*seq_ok = false;
		}
	}
	buf[n] = '\0';
	return buf;
}

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *sa_ = (a), *sb_ = (b);                             \
		if (strcmp(sa_, sb_) != 0) {                                   \
			fprintf(stderr,                                        \
				"%s:%d: %s == \"%s\" failed: \"%s\"\n",        \
				__FILE__, __LINE__, #a, sb_, sa_);             \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

static tr_job_status
status_of(tr_jobs *j, uint64_t id)
{
	tr_job_status st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	CHECK_OK(tr_jobs_status(j, id, &st));
	return st;
}

static uint32_t
state_of(tr_jobs *j, uint64_t id)
{
	tr_job_status st = status_of(j, id);
	uint32_t state = st.state;

	tr_jobs_status_fini(&st);
	return state;
}

static tr_pid
worker_of(tr_jobs *j, uint64_t id)
{
	tr_job_status st = status_of(j, id);
	tr_pid worker = st.worker;

	tr_jobs_status_fini(&st);
	return worker;
}

static tr_jobs_stats
stats_of(tr_jobs *j)
{
	tr_jobs_stats s;

	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	CHECK_OK(tr_jobs_stats_get(j, &s));
	return s;
}

static uint64_t
submit(struct fx *f, tr_jobs *j, const char *kind, const void *p, size_t len,
       uint64_t timeout_ms)
{
	uint64_t id = 0;

	CHECK_OK(tr_jobs_submit(j, kind, p, len, timeout_ms, f->probe, &id));
	CHECK(id != 0);
	return id;
}

/* ---- job kinds ------------------------------------------------------------
 */

/* echo: completes at once with "echo:" + payload. */
static int
echo_init(tr_ctx *cx, void *state, void *arg)
{
	const tr_job_info *info = arg;
	char out[64];

	(void)state;
	memcpy(out, "echo:", 5);
	size_t n = info->size < sizeof(out) - 5 ? info->size : sizeof(out) - 5;
	if (n > 0) {
		memcpy(out + 5, info->payload, n);
	}
	(void)tr_job_complete(cx, out, 5 + n);
	return TR_OK;
}

static void
ignore_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.init = echo_init,
	.handle = ignore_handle,
};

/* steps: ten progress reports, one per message, then "done". */
struct steps {
	uint64_t id;
};

static int
steps_init(tr_ctx *cx, void *state, void *arg)
{
	struct steps *s = state;
	const tr_job_info *info = arg;
	uint32_t n = 1;

	s->id = info->id;
	return tr_send(cx, tr_self(cx), MSG_STEP, &n, sizeof(n));
}

static void
steps_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	uint32_t n;
	char note[32];

	(void)state;
	if (m->type != MSG_STEP || !payload(m, &n, sizeof(n))) {
		return;
	}
	snprintf(note, sizeof(note), "step %u", n);
	(void)tr_job_progress(cx, n * 10, note);
	if (n == 10) {
		(void)tr_job_complete(cx, "done", 4);
		return;
	}
	n++;
	(void)tr_send(cx, tr_self(cx), MSG_STEP, &n, sizeof(n));
}

static const tr_actor_def steps_def = {
	.size = sizeof(tr_actor_def),
	.name = "steps",
	.state_size = sizeof(struct steps),
	.init = steps_init,
	.handle = steps_handle,
};

/* slow: counts itself running and finishes once released. */
static int
slow_init(tr_ctx *cx, void *state, void *arg)
{
	const tr_job_info *info = arg;

	(void)state;
	int now = atomic_fetch_add(&g.running, 1) + 1;
	int high = atomic_load(&g.high);
	while (now > high &&
	       !atomic_compare_exchange_weak(&g.high, &high, now)) {
	}
	unsigned k = atomic_fetch_add(&g.norder, 1);
	if (k < ORDER_MAX) {
		atomic_store(&g.order[k], info->id);
	}
	return tr_send_every(cx, tr_self(cx), MSG_POLL, NULL, 0, 2, NULL);
}

static void
slow_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_POLL && atomic_load(&g.release) != 0) {
		(void)tr_job_complete(cx, NULL, 0);
	}
}

static void
slow_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	(void)reason;
	atomic_fetch_sub(&g.running, 1);
}

static const tr_actor_def slow_def = {
	.size = sizeof(tr_actor_def),
	.name = "slow",
	.init = slow_init,
	.teardown = slow_teardown,
	.handle = slow_handle,
};

/* hang: does nothing until told; records how it stopped. */
static void
hang_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_HOLD) {
		/* A test-only stall: the job is inside a handler while the
		 * test cancels it. */
		atomic_store(&g.gate_in, 1);
		while (atomic_load(&g.gate_open) == 0) {
			harness_nap_us(200);
		}
		atomic_store(&g.complete_ret, tr_job_complete(cx, "late", 4));
	}
}

static void
hang_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	atomic_store(&g.last_reason, reason);
	atomic_fetch_add(&g.teardowns, 1);
}

static const tr_actor_def hang_def = {
	.size = sizeof(tr_actor_def),
	.name = "hang",
	.teardown = hang_teardown,
	.handle = hang_handle,
};

/* crash: stops with TR_EXIT_ERROR on its first message. */
static int
crash_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	return tr_send(cx, tr_self(cx), MSG_CRASH, NULL, 0);
}

static void
crash_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_CRASH) {
		tr_stop_self(cx, TR_EXIT_ERROR);
	}
}

static const tr_actor_def crash_def = {
	.size = sizeof(tr_actor_def),
	.name = "crash",
	.init = crash_init,
	.handle = crash_handle,
};

/* failer: fails with a reason in its init. */
static int
failer_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	(void)tr_job_fail(cx, "disk full");
	return TR_OK;
}

static const tr_actor_def failer_def = {
	.size = sizeof(tr_actor_def),
	.name = "failer",
	.init = failer_init,
	.handle = ignore_handle,
};

/* badinit: its init fails. */
static int
badinit_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)state;
	(void)arg;
	return TR_EINVAL;
}

static const tr_actor_def badinit_def = {
	.size = sizeof(tr_actor_def),
	.name = "badinit",
	.init = badinit_init,
	.handle = ignore_handle,
};

/* misuse: calls the job functions wrongly, records the return codes. */
static int
misuse_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	atomic_store(&g.rc_progress_bad, tr_job_progress(cx, 101, "x"));
	(void)tr_job_complete(cx, "ok", 2);
	atomic_store(&g.rc_complete_twice, tr_job_complete(cx, "again", 5));
	atomic_store(&g.rc_progress_after, tr_job_progress(cx, 50, NULL));
	atomic_store(&g.rc_checks, 1);
	return TR_OK;
}

static const tr_actor_def misuse_def = {
	.size = sizeof(tr_actor_def),
	.name = "misuse",
	.init = misuse_init,
	.handle = ignore_handle,
};

/* mixed: the payload byte says how the job ends. */
enum { M_COMPLETE, M_FAIL, M_CRASH, M_CANCEL, M_TIMEOUT, M_MODES };

static int
mixed_init(tr_ctx *cx, void *state, void *arg)
{
	const tr_job_info *info = arg;
	unsigned char mode = M_CANCEL;

	(void)state;
	if (info->size == 1) {
		memcpy(&mode, info->payload, 1);
	}
	switch (mode) {
	case M_COMPLETE:
		(void)tr_job_progress(cx, 50, "half");
		(void)tr_job_complete(cx, "ok", 2);
		break;
	case M_FAIL:
		(void)tr_job_fail(cx, "no");
		break;
	case M_CRASH:
		return tr_send(cx, tr_self(cx), MSG_CRASH, NULL, 0);
	default:
		break; /* hang until cancelled or timed out */
	}
	return TR_OK;
}

static const tr_actor_def mixed_def = {
	.size = sizeof(tr_actor_def),
	.name = "mixed",
	.init = mixed_init,
	.handle = crash_handle,
};

/* An ordinary actor that is not a job. */
static void
outsider_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	int32_t rc[3];

	(void)state;
	if (m->type != MSG_TRY) {
		return;
	}
	rc[0] = tr_job_progress(cx, 10, "x");
	rc[1] = tr_job_complete(cx, NULL, 0);
	rc[2] = tr_job_fail(cx, "x");
	(void)tr_send(cx, tr_sender(cx), MSG_TRIED, rc, sizeof(rc));
}

static const tr_actor_def outsider_def = {
	.size = sizeof(tr_actor_def),
	.name = "outsider",
	.handle = outsider_handle,
};

static tr_jobs *
jobs_start(struct fx *f, unsigned workers)
{
	tr_jobs *j = NULL;

	world_reset();
	log_reset();
	fx_start(f, workers);
	CHECK_OK(tr_jobs_create(f->rt, NULL, &j));
	return j;
}

static void
jobs_finish(struct fx *f, tr_jobs *j)
{
	CHECK_EQ_INT(stray, 0);
	tr_jobs_destroy(j);
	fx_finish(f);
}

/* ---- tests ----------------------------------------------------------------
 */

static void
test_complete(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);
	bool seq_ok;

	CHECK_OK(tr_jobs_register(j, "echo", &echo_def, 2));
	uint64_t id = submit(&f, j, "echo", "hello", 5, 0);
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(story(id, &seq_ok), "QSF");
	CHECK(seq_ok);
	const struct evrec *e = find_ev(id, TR_JOB_EV_STARTED);
	CHECK(e != NULL && !tr_pid_is_none(e->ev->worker));
	e = find_ev(id, TR_JOB_EV_FINISHED);
	if (e != NULL) {
		CHECK_EQ_U64(e->ev->state, TR_JOB_SUCCEEDED);
		CHECK_EQ_U64(e->ev->result_size, 10);
		CHECK(memcmp(e->ev->result, "echo:hello", 10) == 0);
		CHECK_STR(e->ev->kind, "echo");
	}
	tr_job_status st = status_of(j, id);
	CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(st.progress, 100);
	CHECK_EQ_U64(st.result_size, 10);
	CHECK(st.result != NULL && memcmp(st.result, "echo:hello", 10) == 0);
	CHECK_STR(st.kind, "echo");
	tr_jobs_status_fini(&st);
	CHECK(st.result == NULL);

	/* A watcher of every job; a late watcher of a finished job. */
	CHECK_OK(tr_jobs_watch(j, 0, f.probe));
	uint64_t id2 = 0;
	CHECK_OK(tr_jobs_submit(j, "echo", NULL, 0, 0, TR_PID_NONE, &id2));
	CHECK(WAIT_EV(&f, count_ev(id2, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(story(id2, &seq_ok), "QSF");
	CHECK_OK(tr_jobs_watch(j, id, f.probe));
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 2, WAIT_MS));
	CHECK_EQ_U64(evs[nev - 1].ev->seq, 3);
	CHECK_OK(tr_jobs_unwatch(j, 0, f.probe));
	uint64_t id3 = 0;
	CHECK_OK(tr_jobs_submit(j, "echo", "x", 1, 0, TR_PID_NONE, &id3));
	CHECK(WAIT_UNTIL(state_of(j, id3) == TR_JOB_SUCCEEDED, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	tr_jobs_stats s = stats_of(j);
	CHECK_EQ_U64(s.submitted, 3);
	CHECK_EQ_U64(s.succeeded, 3);
	CHECK_EQ_U64(
		s.queued + s.running + s.failed + s.cancelled + s.timed_out, 0);
	jobs_finish(&f, j);
}

static void
test_progress(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);
	bool seq_ok;

	CHECK_OK(tr_jobs_register(j, "steps", &steps_def, 1));
	uint64_t id = submit(&f, j, "steps", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(story(id, &seq_ok), "QSPPPPPPPPPPF");
	CHECK(seq_ok);
	uint32_t want = 10;
	for (size_t i = 0; i < nev; i++) {
		if (evs[i].ev->event != TR_JOB_EV_PROGRESS) {
			continue;
		}
		char note[32];
		snprintf(note, sizeof(note), "step %u", want / 10);
		CHECK_EQ_U64(evs[i].ev->progress, want);
		CHECK_STR(evs[i].ev->note, note);
		CHECK_EQ_U64(evs[i].ev->state, TR_JOB_RUNNING);
		want += 10;
	}
	const struct evrec *e = find_ev(id, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->result_size == 4 &&
	      memcmp(e->ev->result, "done", 4) == 0);
	jobs_finish(&f, j);
}

static void
test_concurrency(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 3);
	uint64_t ids[6];

	CHECK_OK(tr_jobs_register(j, "slow", &slow_def, 2));
	for (int i = 0; i < 6; i++) {
		ids[i] = submit(&f, j, "slow", NULL, 0, 0);
	}
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_STARTED) == 2, WAIT_MS));
	/* Nothing else starts while both run. */
	uint64_t until = harness_now_ms() + 100;
	while (harness_now_ms() < until) {
		(void)pump(&f, 10);
	}
	CHECK_EQ_INT(count_ev(0, TR_JOB_EV_STARTED), 2);
	CHECK_EQ_U64(stats_of(j).running, 2);
	CHECK_EQ_U64(stats_of(j).queued, 4);
	for (int i = 2; i < 6; i++) {
		CHECK_EQ_U64(state_of(j, ids[i]), TR_JOB_QUEUED);
	}
	atomic_store(&g.release, 1);
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_FINISHED) == 6, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.high), 2);
	CHECK_EQ_U64(atomic_load(&g.norder), 6);
	/* Every job ran once (two inits may run at the same time, so their
	 * order among themselves is the scheduler's). */
	for (int i = 0; i < 6; i++) {
		int seen = 0;
		for (int k = 0; k < 6; k++) {
			seen += atomic_load(&g.order[k]) == ids[i];
		}
		CHECK_EQ_INT(seen, 1);
	}
	/* FIFO: the runner started them in submission order. */
	int k = 0;
	for (size_t i = 0; i < nev; i++) {
		if (evs[i].ev->event == TR_JOB_EV_STARTED && k < 6) {
			CHECK_EQ_U64(evs[i].ev->id, ids[k]);
			k++;
		}
	}
	for (int i = 0; i < 6; i++) {
		CHECK_EQ_U64(state_of(j, ids[i]), TR_JOB_SUCCEEDED);
	}
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 0, WAIT_MS));
	jobs_finish(&f, j);
}

static void
test_cancel_queued(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);

	CHECK_OK(tr_jobs_register(j, "hang", &hang_def, 1));
	uint64_t a = submit(&f, j, "hang", NULL, 0, 0);
	uint64_t b = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK_OK(tr_jobs_cancel(j, b));
	CHECK(WAIT_EV(&f, count_ev(b, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	bool seq_ok;
	CHECK_STR(story(b, &seq_ok), "QF");
	tr_job_status st = status_of(j, b);
	CHECK_EQ_U64(st.state, TR_JOB_CANCELLED);
	CHECK(tr_pid_is_none(st.worker));
	CHECK_ERR(tr_jobs_cancel(j, b), TR_ESTATE);
	CHECK_EQ_U64(state_of(j, a), TR_JOB_RUNNING);
	/* Cancelling the running one stops its actor and frees its slot. */
	tr_pid worker = worker_of(j, a);
	CHECK(tr_actor_alive(f.rt, worker));
	CHECK_OK(tr_jobs_cancel(j, a));
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	const struct evrec *e = find_ev(a, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->state == TR_JOB_CANCELLED &&
	      e->ev->exit_reason == TR_JOBS_EXIT_CANCELLED);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_JOBS_EXIT_CANCELLED);
	uint64_t c = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK_OK(tr_jobs_cancel(j, c));
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	tr_jobs_stats s = stats_of(j);
	CHECK_EQ_U64(s.cancelled, 3);
	CHECK_EQ_U64(s.submitted, 3);
	jobs_finish(&f, j);
}

static void
test_cancel_running_late_complete(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 3);

	CHECK_OK(tr_jobs_register(j, "hang", &hang_def, 1));
	uint64_t a = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	tr_pid worker = find_ev(a, TR_JOB_EV_STARTED)->ev->worker;
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), worker, MSG_HOLD, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&g.gate_in) == 1, WAIT_MS));
	CHECK_OK(tr_jobs_cancel(j, a));
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	/* Now the job completes, too late. */
	atomic_store(&g.gate_open, 1);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.complete_ret), TR_OK);
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_INT(count_ev(a, TR_JOB_EV_FINISHED), 1);
	tr_job_status st = status_of(j, a);
	CHECK_EQ_U64(st.state, TR_JOB_CANCELLED);
	CHECK_EQ_U64(st.result_size, 0);
	CHECK(st.result == NULL);
	CHECK_EQ_INT(st.exit_reason, TR_JOBS_EXIT_CANCELLED);
	tr_jobs_stats s = stats_of(j);
	CHECK_EQ_U64(s.cancelled, 1);
	CHECK_EQ_U64(s.succeeded, 0);
	jobs_finish(&f, j);
}

static void
test_timeout(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);

	CHECK_OK(tr_jobs_register(j, "hang", &hang_def, 1));
	CHECK_OK(tr_jobs_register(j, "echo", &echo_def, 1));
	uint64_t t0 = harness_now_ms();
	uint64_t a = submit(&f, j, "hang", NULL, 0, 150);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK(harness_now_ms() - t0 >= 150);
	const struct evrec *e = find_ev(a, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->state == TR_JOB_TIMED_OUT &&
	      e->ev->exit_reason == TR_JOBS_EXIT_TIMEOUT);
	tr_pid worker = worker_of(j, a);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_JOBS_EXIT_TIMEOUT);
	CHECK_EQ_U64(state_of(j, a), TR_JOB_TIMED_OUT);
	/*
	 * A job that ends in time does not time out afterwards. The hang c,
	 * started right after b with the same timeout, is the marker: the
	 * runner arms c's timer after b's, so it hears of b's timer first,
	 * and once c has timed out b's timer has had its turn. Whether the
	 * echo ends within its 100 ms is up to the machine's load; either
	 * way it has exactly one final state, and keeps it.
	 */
	uint64_t b = submit(&f, j, "echo", "y", 1, 100);
	uint64_t c = submit(&f, j, "hang", NULL, 0, 100);
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_EQ_INT(count_ev(b, TR_JOB_EV_FINISHED), 1);
	e = find_ev(b, TR_JOB_EV_FINISHED);
	bool in_time = e != NULL && e->ev->state == TR_JOB_SUCCEEDED;
	CHECK(in_time || (e != NULL && e->ev->state == TR_JOB_TIMED_OUT));
	if (!in_time) {
		printf("  the echo job did not end within its 100 ms\n");
	}
	CHECK_EQ_U64(state_of(j, b),
		     in_time ? TR_JOB_SUCCEEDED : TR_JOB_TIMED_OUT);
	CHECK_EQ_U64(state_of(j, c), TR_JOB_TIMED_OUT);
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_INT(count_ev(b, TR_JOB_EV_FINISHED), 1);
	tr_jobs_stats s = stats_of(j);
	CHECK_EQ_U64(s.timed_out, in_time ? 2 : 3);
	CHECK_EQ_U64(s.succeeded, in_time ? 1 : 0);
	jobs_finish(&f, j);
}

static void
test_crash_and_fail(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);
	bool seq_ok;

	CHECK_OK(tr_jobs_register(j, "crash", &crash_def, 1));
	CHECK_OK(tr_jobs_register(j, "failer", &failer_def, 1));
	CHECK_OK(tr_jobs_register(j, "badinit", &badinit_def, 1));
	uint64_t a = submit(&f, j, "crash", NULL, 0, 0);
	uint64_t b = submit(&f, j, "failer", NULL, 0, 0);
	uint64_t c = submit(&f, j, "badinit", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_FINISHED) == 3, WAIT_MS));
	CHECK_STR(story(a, &seq_ok), "QSF");
	CHECK_STR(story(b, &seq_ok), "QSF");
	CHECK_STR(story(c, &seq_ok), "QSF");
	tr_job_status st = status_of(j, a);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_ERROR);
	CHECK_STR(st.note, "stopped without a result");
	st = status_of(j, b);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_NORMAL);
	CHECK_STR(st.note, "disk full");
	const struct evrec *e = find_ev(b, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && strcmp(e->ev->note, "disk full") == 0);
	st = status_of(j, c);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_INIT_FAILED);
	CHECK_EQ_U64(stats_of(j).failed, 3);
	jobs_finish(&f, j);
}

static void
test_max_finished(void)
{
	struct fx f;
	tr_jobs *j = NULL;
	tr_jobs_config cfg = { .size = sizeof(cfg), .max_finished = 2 };
	uint64_t ids[3];

	world_reset();
	log_reset();
	fx_start(&f, 2);
	CHECK_OK(tr_jobs_create(f.rt, &cfg, &j));
	CHECK_OK(tr_jobs_register(j, "echo", &echo_def, 1));
	for (int i = 0; i < 3; i++) {
		ids[i] = submit(&f, j, "echo", NULL, 0, 0);
		CHECK(WAIT_EV(&f, count_ev(ids[i], TR_JOB_EV_FINISHED) == 1,
			      WAIT_MS));
	}
	tr_job_status st = { .size = sizeof(st) };
	CHECK_ERR(tr_jobs_status(j, ids[0], &st), TR_ENOENT);
	CHECK_EQ_U64(state_of(j, ids[1]), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(state_of(j, ids[2]), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(stats_of(j).succeeded, 3);
	jobs_finish(&f, j);
}

static void
test_destroy_stops_jobs(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);
	tr_pid workers[3];

	CHECK_OK(tr_jobs_register(j, "hang", &hang_def, 3));
	for (int i = 0; i < 5; i++) {
		(void)submit(&f, j, "hang", NULL, 0, 0);
	}
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_STARTED) == 3, WAIT_MS));
	int k = 0;
	for (size_t i = 0; i < nev && k < 3; i++) {
		if (evs[i].ev->event == TR_JOB_EV_STARTED) {
			workers[k++] = evs[i].ev->worker;
		}
	}
	tr_jobs_destroy(j);
	for (int i = 0; i < 3; i++) {
		CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, workers[i]), WAIT_MS));
	}
	CHECK(WAIT_UNTIL(atomic_load(&g.teardowns) == 3, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_EXIT_SHUTDOWN);
	CHECK_EQ_INT(stray, 0);
	fx_finish(&f);
}

static void
test_unknown_and_bad_input(void)
{
	struct fx f;
	tr_jobs *j = jobs_start(&f, 2);
	tr_job_status st = { .size = sizeof(st) };
	tr_jobs_stats s = { .size = sizeof(s) };
	uint64_t id = 0;
	char longname[TR_JOBS_KIND_MAX + 2];

	CHECK_OK(tr_jobs_register(j, "echo", &echo_def, 1));
	CHECK_ERR(tr_jobs_status(j, 12345, &st), TR_ENOENT);
	CHECK_ERR(tr_jobs_status(j, 0, &st), TR_ENOENT);
	CHECK_ERR(tr_jobs_cancel(j, 12345), TR_ENOENT);
	CHECK_ERR(tr_jobs_watch(j, 12345, f.probe), TR_ENOENT);
	CHECK_ERR(tr_jobs_submit(j, "nope", NULL, 0, 0, TR_PID_NONE, &id),
		  TR_ENOENT);
	CHECK_EQ_U64(id, 0);
	CHECK_ERR(tr_jobs_register(j, "echo", &echo_def, 1), TR_EEXIST);
	CHECK_ERR(tr_jobs_register(j, "x", NULL, 1), TR_EINVAL);
	CHECK_ERR(tr_jobs_register(j, "x", &echo_def, 0), TR_EINVAL);
	CHECK_ERR(tr_jobs_register(j, "", &echo_def, 1), TR_EINVAL);
	CHECK_ERR(tr_jobs_register(j, NULL, &echo_def, 1), TR_EINVAL);
	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_ERR(tr_jobs_register(j, longname, &echo_def, 1), TR_EINVAL);
	longname[TR_JOBS_KIND_MAX] = '\0';
	CHECK_OK(tr_jobs_register(j, longname, &echo_def, 1));
	CHECK_ERR(tr_jobs_register(NULL, "x", &echo_def, 1), TR_EINVAL);
	tr_actor_def nohandle = echo_def;
	nohandle.handle = NULL;
	CHECK_ERR(tr_jobs_register(j, "x", &nohandle, 1), TR_EINVAL);
	CHECK_ERR(tr_jobs_submit(j, "echo", NULL, 0, 0, TR_PID_NONE, NULL),
		  TR_EINVAL);
	CHECK_ERR(tr_jobs_submit(j, "echo", NULL, 5, 0, TR_PID_NONE, &id),
		  TR_EINVAL);
	CHECK_ERR(tr_jobs_submit(NULL, "echo", NULL, 0, 0, TR_PID_NONE, &id),
		  TR_EINVAL);
	CHECK_ERR(tr_jobs_submit(j, NULL, NULL, 0, 0, TR_PID_NONE, &id),
		  TR_EINVAL);
	CHECK_ERR(tr_jobs_status(NULL, 1, &st), TR_EINVAL);
	CHECK_ERR(tr_jobs_status(j, 1, NULL), TR_EINVAL);
	st.size = 4;
	CHECK_ERR(tr_jobs_status(j, 1, &st), TR_EINVAL);
	CHECK_ERR(tr_jobs_cancel(NULL, 1), TR_EINVAL);
	CHECK_ERR(tr_jobs_watch(j, 0, TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_jobs_watch(NULL, 0, f.probe), TR_EINVAL);
	CHECK_ERR(tr_jobs_unwatch(j, 0, TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_jobs_stats_get(j, NULL), TR_EINVAL);
	s.size = 3;
	CHECK_ERR(tr_jobs_stats_get(j, &s), TR_EINVAL);
	tr_jobs_config cfg = { .size = 2 };
	tr_jobs *other = NULL;
	CHECK_ERR(tr_jobs_create(NULL, NULL, &other), TR_EINVAL);
	CHECK_ERR(tr_jobs_create(f.rt, &cfg, &other), TR_EINVAL);
	CHECK(other == NULL);
	CHECK_ERR(tr_jobs_create(f.rt, NULL, NULL), TR_EINVAL);
	tr_jobs_destroy(NULL);
	tr_jobs_status_fini(NULL);

	CHECK_STR(tr_job_state_name(TR_JOB_QUEUED), "queued");
	CHECK_STR(tr_job_state_name(TR_JOB_TIMED_OUT), "timed out");
	CHECK_STR(tr_job_state_name(0), "?");
	CHECK_STR(tr_job_state_name(99), "?");

	/* The job functions outside a job actor, and misused inside one. */
	CHECK_ERR(tr_job_progress(NULL, 1, NULL), TR_EINVAL);
	CHECK_ERR(tr_job_complete(NULL, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_job_fail(NULL, NULL), TR_EINVAL);
	tr_pid out = fx_spawn(&f, &outsider_def, NULL);
	int32_t rc[3];
	SEND(&f, out, MSG_TRY, NULL, 0);
	CHECK(fx_recv(&f, MSG_TRIED, rc, sizeof(rc)));
	CHECK_ERR(rc[0], TR_ESTATE);
	CHECK_ERR(rc[1], TR_ESTATE);
	CHECK_ERR(rc[2], TR_ESTATE);
	CHECK_OK(tr_jobs_register(j, "misuse", &misuse_def, 1));
	uint64_t m = submit(&f, j, "misuse", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(m, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.rc_checks), 1);
	CHECK_ERR(atomic_load(&g.rc_progress_bad), TR_EINVAL);
	CHECK_ERR(atomic_load(&g.rc_complete_twice), TR_ESTATE);
	CHECK_ERR(atomic_load(&g.rc_progress_after), TR_ESTATE);
	st.size = sizeof(st);
	st = status_of(j, m);
	CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
	CHECK(st.result_size == 2 && memcmp(st.result, "ok", 2) == 0);
	tr_jobs_status_fini(&st);
	bool seq_ok;
	CHECK_STR(story(m, &seq_ok), "QSF");
	jobs_finish(&f, j);
}

#define NMIXED 200

static void
test_mixed_200(void)
{
	static uint64_t ids[NMIXED];
	struct fx f;
	tr_jobs *j = jobs_start(&f, 3);

	CHECK_OK(tr_jobs_register(j, "mixed", &mixed_def, 8));
	for (int i = 0; i < NMIXED; i++) {
		unsigned char mode = (unsigned char)(i % M_MODES);
		uint64_t timeout = mode == M_TIMEOUT  ? 30
				   : mode == M_CANCEL ? 0
						      : 60000;
		ids[i] = submit(&f, j, "mixed", &mode, 1, timeout);
		if (mode == M_CANCEL && i % 2 == 1) {
			/* Half of them at once, most likely still queued. */
			CHECK_OK(tr_jobs_cancel(j, ids[i]));
		}
	}
	for (int i = 0; i < NMIXED; i++) {
		if (i % M_MODES == M_CANCEL && i % 2 == 0) {
			tr_err err = tr_jobs_cancel(j, ids[i]);
			CHECK_OK(err);
		}
	}
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_FINISHED) == NMIXED, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 300));
	static const uint32_t want[M_MODES] = {
		TR_JOB_SUCCEEDED, TR_JOB_FAILED,    TR_JOB_FAILED,
		TR_JOB_CANCELLED, TR_JOB_TIMED_OUT,
	};
	int bad = 0;
	for (int i = 0; i < NMIXED; i++) {
		bool seq_ok;
		const char *s = story(ids[i], &seq_ok);
		size_t n = strlen(s);
		const struct evrec *e = find_ev(ids[i], TR_JOB_EV_FINISHED);
		bool ok = seq_ok && n >= 2 && s[0] == 'Q' && s[n - 1] == 'F' &&
			  count_ev(ids[i], TR_JOB_EV_FINISHED) == 1 &&
			  count_ev(ids[i], TR_JOB_EV_QUEUED) == 1 &&
			  count_ev(ids[i], TR_JOB_EV_STARTED) <= 1 &&
			  e != NULL && e->ev->state == want[i % M_MODES] &&
			  state_of(j, ids[i]) == want[i % M_MODES];
		if (!ok && bad++ < 5) {
			fprintf(stderr, "  job %d (mode %d): \"%s\" state %s\n",
				i, i % M_MODES, s,
				e != NULL ? tr_job_state_name((int)e->ev->state)
					  : "-");
		}
	}
	CHECK_EQ_INT(bad, 0);
	tr_jobs_stats s = stats_of(j);
	CHECK_EQ_U64(s.submitted, NMIXED);
	CHECK_EQ_U64(s.succeeded, NMIXED / M_MODES);
	CHECK_EQ_U64(s.failed, 2 * NMIXED / M_MODES);
	CHECK_EQ_U64(s.cancelled, NMIXED / M_MODES);
	CHECK_EQ_U64(s.timed_out, NMIXED / M_MODES);
	CHECK_EQ_U64(s.queued + s.running, 0);
	CHECK_EQ_U64(s.events_dropped, 0);
	jobs_finish(&f, j);
}

static const struct test_case tests[] = {
	{ "jobs: submit and complete with a result", test_complete },
	{ "jobs: progress events in order", test_progress },
	{ "jobs: concurrency limit and FIFO starts", test_concurrency },
	{ "jobs: cancel a queued job, then a running one", test_cancel_queued },
	{ "jobs: cancel a running job; its late complete is ignored",
	  test_cancel_running_late_complete },
	{ "jobs: a job past its timeout is timed out", test_timeout },
	{ "jobs: crashes and failures are failed jobs", test_crash_and_fail },
	{ "jobs: the table keeps max_finished finished jobs",
	  test_max_finished },
	{ "jobs: destroy stops the running jobs", test_destroy_stops_jobs },
	{ "jobs: unknown ids and bad input", test_unknown_and_bad_input },
	{ "jobs: exactly one final event per job over 200 mixed jobs",
	  test_mixed_200 },
	{ NULL, NULL },
};

TEST_MAIN(tests)
