/*
 * Jobs (<troupe/actors/jobs.h>): submit and complete with a result,
 * progress in order, the concurrency limit with FIFO starts, cancelling
 * queued and running jobs (a late complete is ignored), timeouts, crashes
 * and failures, watchers, the table's limit, a job actor that changes its
 * behaviour, the service's stop (by tr_stop and through its parent's
 * link) with jobs running, the start's checks, requests it cannot use
 * (answered with an error, or counted), and exactly one final event per
 * job over 200 mixed jobs; durable jobs on a store: what a restart
 * finds (finished, interrupted, resubmitted, queued jobs, ids going on),
 * a submit the store refuses, and the store stopping under the service.
 *
 * The probe is an inbox: it starts the service and makes every request
 * with tr_request(), taking each outcome with tr_inbox_recv() and its
 * reference, so the job events it watches stay queued; every event is appended
 * to one log in arrival order, and tests wait on conditions over that log. Job
 * actors report through atomics in struct world (high-water mark of
 * running jobs, start order, teardown reasons, return codes). Handlers
 * never call CHECK.
 */
#include <troupe/troupe.h>
#include <troupe/actors/jobs.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Generous, for the sanitizer builds on a busy machine: reaching one of
 * these deadlines is a failure. */
#define FX_REPLY_MS 30000
#include "harness.h"
#include "fixture.h"

#define WAIT_MS 30000

enum {
	MSG_STEP = 1,   /* steps: uint32_t step number */
	MSG_POLL,       /* slow: is the release flag set? */
	MSG_HOLD,       /* hang: wait for the gate, then complete */
	MSG_CRASH,      /* stop with TR_EXIT_ERROR */
	MSG_TRY,        /* outsider: call the job functions, report */
	MSG_TRIED,      /* outsider -> probe: int32_t[3] */
	MSG_STRANGE,    /* a type the service does not know */
	MSG_START_JOBS, /* parent: start a linked service, report its pid */
	MSG_STARTED,    /* parent -> probe: tr_pid of the service */
	MSG_MONITOR,    /* monitor: monitor this tr_pid, tell the sender */
	MSG_GONE,       /* monitor -> probe: int32_t reason of the DOWN */
};

#define ORDER_MAX 64

struct world {
	atomic_int running;
	atomic_int high;
	atomic_uint norder;
	_Atomic uint64_t order[ORDER_MAX];
	_Atomic uint64_t payload[ORDER_MAX]; /* its first 8 bytes */
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

/* ---- requests from the probe ----------------------------------------------
 */

/*
 * Sends a request from the probe and takes its outcome into *@r (the
 * caller releases it). False when none came in time, or when it is not
 * the outcome of this request.
 */
static bool
ask(struct fx *f, tr_pid to, uint32_t type, const void *data, size_t len,
    tr_received *r)
{
	tr_ref ref;

	memset(r, 0, sizeof(*r));
	if (tr_request(tr_inbox_ctx(f->ib), to, type, data, len, 0, &ref) !=
	    TR_OK) {
		fprintf(stderr, "  probe: request %u not sent\n", type);
		return false;
	}
	if (tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, r) != TR_OK) {
		fprintf(stderr, "  probe: no outcome of request %u\n", type);
		return false;
	}
	return (r->flags & TR_MSG_F_REPLY) && r->ref.v == ref.v;
}

/* The status of a TR_MSG_JOBS_REPLY outcome; TR_ECLOSED for another. */
static tr_err
reply_status(const tr_received *r, uint64_t *id)
{
	const tr_jobs_reply *rep = TR_MSG_AS(r, tr_jobs_reply);

	if (r->type != TR_MSG_JOBS_REPLY || rep == NULL) {
		return TR_ECLOSED;
	}
	if (id != NULL) {
		*id = rep->id;
	}
	return rep->status;
}

/* A request answered by TR_MSG_JOBS_REPLY: its status. */
static tr_err
ask_status(struct fx *f, tr_pid j, uint32_t type, const void *data, size_t len,
	   uint64_t *id)
{
	tr_received r;
	tr_err err = TR_ETIMEDOUT;

	if (ask(f, j, type, data, len, &r)) {
		err = reply_status(&r, id);
	}
	tr_received_fini(&r);
	return err;
}

static tr_err
submit_req(struct fx *f, tr_pid j, const char *kind, const void *p, size_t len,
	   uint64_t timeout_ms, tr_pid watcher, uint64_t *id)
{
	size_t size = sizeof(tr_jobs_submit_req) + len;
	tr_jobs_submit_req *rq = calloc(1, size);

	if (rq == NULL) {
		return TR_ENOMEM;
	}
	snprintf(rq->kind, sizeof(rq->kind), "%s", kind);
	rq->timeout_ms = timeout_ms;
	rq->watcher = watcher;
	rq->payload_size = len;
	if (len > 0) {
		memcpy(rq->payload, p, len);
	}
	*id = 0;
	tr_err err = ask_status(f, j, TR_MSG_JOBS_SUBMIT, rq, size, id);
	free(rq);
	return err;
}

/* Submits with the probe as the watcher. */
static uint64_t
submit(struct fx *f, tr_pid j, const char *kind, const void *p, size_t len,
       uint64_t timeout_ms)
{
	uint64_t id = 0;

	CHECK_OK(submit_req(f, j, kind, p, len, timeout_ms, f->probe, &id));
	CHECK(id != 0);
	return id;
}

static tr_err
cancel(struct fx *f, tr_pid j, uint64_t id)
{
	tr_jobs_job_req rq = { .id = id };

	return ask_status(f, j, TR_MSG_JOBS_CANCEL, &rq, sizeof(rq), NULL);
}

static tr_err
watch(struct fx *f, tr_pid j, uint64_t id, tr_pid pid, bool on)
{
	tr_jobs_watch_req rq = { .id = id, .pid = pid, .on = on };

	return ask_status(f, j, TR_MSG_JOBS_WATCH, &rq, sizeof(rq), NULL);
}

/* A status reply, copied out (the result up to 64 bytes). */
struct status {
	tr_err err;
	uint32_t state;
	uint32_t progress;
	int32_t exit_reason;
	tr_pid worker;
	char kind[TR_JOBS_KIND_MAX + 1];
	char note[TR_JOB_NOTE_MAX];
	uint64_t result_size;
	unsigned char result[64];
};

static struct status
status_get(struct fx *f, tr_pid j, uint64_t id)
{
	tr_jobs_job_req rq = { .id = id };
	struct status s;
	tr_received r;

	memset(&s, 0, sizeof(s));
	s.err = TR_ETIMEDOUT;
	if (ask(f, j, TR_MSG_JOBS_STATUS, &rq, sizeof(rq), &r)) {
		const tr_job_event *st = r.data;
		if (r.type == TR_MSG_JOBS_STATUS_REPLY &&
		    (r.flags & TR_MSG_F_PTR) && r.size >= sizeof(*st) &&
		    r.size - sizeof(*st) == st->result_size &&
		    st->result_size <= sizeof(s.result) && st->id == id) {
			s.err = TR_OK;
			s.state = st->state;
			s.progress = st->progress;
			s.exit_reason = st->exit_reason;
			s.worker = st->worker;
			memcpy(s.kind, st->kind, sizeof(s.kind));
			memcpy(s.note, st->note, sizeof(s.note));
			s.result_size = st->result_size;
			memcpy(s.result, st->result, st->result_size);
		} else {
			s.err = reply_status(&r, NULL);
		}
	}
	tr_received_fini(&r);
	return s;
}

static struct status
status_of(struct fx *f, tr_pid j, uint64_t id)
{
	struct status s = status_get(f, j, id);

	CHECK_OK(s.err);
	return s;
}

static uint32_t
state_of(struct fx *f, tr_pid j, uint64_t id)
{
	return status_of(f, j, id).state;
}

static tr_jobs_stats
stats_of(struct fx *f, tr_pid j)
{
	tr_jobs_stats s;
	tr_received r;

	memset(&s, 0, sizeof(s));
	if (ask(f, j, TR_MSG_JOBS_STATS, NULL, 0, &r) &&
	    r.type == TR_MSG_JOBS_STATS_REPLY &&
	    TR_MSG_AS(&r, tr_jobs_stats) != NULL) {
		s = *TR_MSG_AS(&r, tr_jobs_stats);
	} else {
		fprintf(stderr, "  probe: no stats\n");
		harness_failed_checks++;
	}
	tr_received_fini(&r);
	return s;
}

/* ---- job kinds ------------------------------------------------------------
 *
 * Each keeps its job (from TR_MSG_JOB_START) in its state.
 */

/* The job of a TR_MSG_JOB_START, or NULL. */
static const tr_job_start *
job_start(const tr_msg *m)
{
	const tr_job_start *js = m->data;

	if (m->type != TR_MSG_JOB_START || m->size < sizeof(*js) ||
	    m->size - sizeof(*js) != js->payload_size) {
		return NULL;
	}
	return js;
}

struct jstate {
	tr_job job;
};

/* echo: completes at once with "echo:" + payload. */
static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);
	char out[64];

	if (js == NULL) {
		return;
	}
	s->job = js->job;
	memcpy(out, "echo:", 5);
	size_t n = js->payload_size < sizeof(out) - 5 ? js->payload_size
						      : sizeof(out) - 5;
	if (n > 0) {
		memcpy(out + 5, js->payload, n);
	}
	(void)tr_job_complete(cx, &s->job, out, 5 + n);
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.state_size = sizeof(struct jstate),
	.handle = echo_handle,
};

/* steps: ten progress reports, one per message, then "done". */
static void
steps_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);
	uint32_t n = 1;
	char note[32];

	if (js != NULL) {
		s->job = js->job;
		(void)tr_send(cx, tr_self(cx), MSG_STEP, &n, sizeof(n));
		return;
	}
	if (m->type != MSG_STEP || !payload(m, &n, sizeof(n))) {
		return;
	}
	snprintf(note, sizeof(note), "step %u", n);
	(void)tr_job_progress(cx, &s->job, n * 10, note);
	if (n == 10) {
		(void)tr_job_complete(cx, &s->job, "done", 4);
		return;
	}
	n++;
	(void)tr_send(cx, tr_self(cx), MSG_STEP, &n, sizeof(n));
}

static const tr_actor_def steps_def = {
	.size = sizeof(tr_actor_def),
	.name = "steps",
	.state_size = sizeof(struct jstate),
	.handle = steps_handle,
};

/* slow: counts itself running and finishes once released. */
struct slow {
	tr_job job;
	bool counted;
};

static void
slow_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct slow *s = state;
	const tr_job_start *js = job_start(m);

	if (js != NULL) {
		s->job = js->job;
		s->counted = true;
		int now = atomic_fetch_add(&g.running, 1) + 1;
		int high = atomic_load(&g.high);
		while (now > high &&
		       !atomic_compare_exchange_weak(&g.high, &high, now)) {
		}
		unsigned k = atomic_fetch_add(&g.norder, 1);
		if (k < ORDER_MAX) {
			uint64_t head = 0;
			memcpy(&head, js->payload,
			       js->payload_size < 8 ? js->payload_size : 8);
			atomic_store(&g.payload[k], head);
			atomic_store(&g.order[k], js->job.id);
		}
		(void)tr_send_every(cx, tr_self(cx), MSG_POLL, NULL, 0, 2,
				    NULL);
		return;
	}
	if (m->type == MSG_POLL && atomic_load(&g.release) != 0) {
		(void)tr_job_complete(cx, &s->job, NULL, 0);
	}
}

static void
slow_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct slow *s = state;

	(void)cx;
	(void)reason;
	if (s->counted) {
		atomic_fetch_sub(&g.running, 1);
	}
}

static const tr_actor_def slow_def = {
	.size = sizeof(tr_actor_def),
	.name = "slow",
	.state_size = sizeof(struct slow),
	.teardown = slow_teardown,
	.handle = slow_handle,
};

/* hang: does nothing until told; records how it stopped. */
static void
hang_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);

	if (js != NULL) {
		s->job = js->job;
	} else if (m->type == MSG_HOLD) {
		/* A test-only stall: the job is inside a handler while the
		 * test cancels it. */
		atomic_store(&g.gate_in, 1);
		while (atomic_load(&g.gate_open) == 0) {
			harness_nap_us(200);
		}
		atomic_store(&g.complete_ret,
			     tr_job_complete(cx, &s->job, "late", 4));
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
	.state_size = sizeof(struct jstate),
	.teardown = hang_teardown,
	.handle = hang_handle,
};

/* crash: stops with TR_EXIT_ERROR on the message after its start. */
static void
crash_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (job_start(m) != NULL) {
		(void)tr_send(cx, tr_self(cx), MSG_CRASH, NULL, 0);
	} else if (m->type == MSG_CRASH) {
		tr_stop_self(cx, TR_EXIT_ERROR);
	}
}

static const tr_actor_def crash_def = {
	.size = sizeof(tr_actor_def),
	.name = "crash",
	.handle = crash_handle,
};

/* failer: fails with a reason as soon as it has its job. */
static void
failer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);

	if (js != NULL) {
		s->job = js->job;
		(void)tr_job_fail(cx, &s->job, "disk full");
	}
}

static const tr_actor_def failer_def = {
	.size = sizeof(tr_actor_def),
	.name = "failer",
	.state_size = sizeof(struct jstate),
	.handle = failer_handle,
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
	.handle = failer_handle,
};

/* misuse: calls the job functions wrongly, records the return codes. */
static void
misuse_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);

	if (js == NULL) {
		return;
	}
	s->job = js->job;
	atomic_store(&g.rc_progress_bad,
		     tr_job_progress(cx, &s->job, 101, "x"));
	(void)tr_job_complete(cx, &s->job, "ok", 2);
	atomic_store(&g.rc_complete_twice,
		     tr_job_complete(cx, &s->job, "again", 5));
	atomic_store(&g.rc_progress_after,
		     tr_job_progress(cx, &s->job, 50, NULL));
	atomic_store(&g.rc_checks, 1);
}

static const tr_actor_def misuse_def = {
	.size = sizeof(tr_actor_def),
	.name = "misuse",
	.state_size = sizeof(struct jstate),
	.handle = misuse_handle,
};

/*
 * shifter: its init gets the kind's argument and marks its state; its
 * start changes behaviour with tr_become(); the new handler, with the
 * same state, completes with the mark and the argument.
 */
struct shifter {
	tr_job job;
	uint32_t magic;
	const char *arg;
};

static void
shifter_then(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct shifter *s = state;
	char out[64];

	if (m->type != MSG_STEP) {
		return;
	}
	int n = snprintf(out, sizeof(out), "%s %x",
			 s->arg != NULL ? s->arg : "-", s->magic);
	(void)tr_job_progress(cx, &s->job, 50, "shifted");
	(void)tr_job_complete(cx, &s->job, out, (size_t)n);
}

static int
shifter_init(tr_ctx *cx, void *state, void *arg)
{
	struct shifter *s = state;

	(void)cx;
	s->magic = 0xC0FFEE;
	s->arg = arg;
	return TR_OK;
}

static void
shifter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct shifter *s = state;
	const tr_job_start *js = job_start(m);

	if (js != NULL) {
		s->job = js->job;
		(void)tr_become(cx, shifter_then);
		(void)tr_send(cx, tr_self(cx), MSG_STEP, NULL, 0);
	}
}

static const tr_actor_def shifter_def = {
	.size = sizeof(tr_actor_def),
	.name = "shifter",
	.state_size = sizeof(struct shifter),
	.init = shifter_init,
	.handle = shifter_handle,
};

/* mixed: the payload byte says how the job ends. */
enum { M_COMPLETE, M_FAIL, M_CRASH, M_CANCEL, M_TIMEOUT, M_MODES };

static void
mixed_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct jstate *s = state;
	const tr_job_start *js = job_start(m);
	unsigned char mode = M_CANCEL;

	if (js == NULL) {
		if (m->type == MSG_CRASH) {
			tr_stop_self(cx, TR_EXIT_ERROR);
		}
		return;
	}
	s->job = js->job;
	if (js->payload_size == 1) {
		mode = js->payload[0];
	}
	switch (mode) {
	case M_COMPLETE:
		(void)tr_job_progress(cx, &s->job, 50, "half");
		(void)tr_job_complete(cx, &s->job, "ok", 2);
		break;
	case M_FAIL:
		(void)tr_job_fail(cx, &s->job, "no");
		break;
	case M_CRASH:
		(void)tr_send(cx, tr_self(cx), MSG_CRASH, NULL, 0);
		break;
	default:
		break; /* hang until cancelled or timed out */
	}
}

static const tr_actor_def mixed_def = {
	.size = sizeof(tr_actor_def),
	.name = "mixed",
	.state_size = sizeof(struct jstate),
	.handle = mixed_handle,
};

/* An ordinary actor that is not a job: its tr_job is zeroed. */
static void
outsider_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_job none = { 0 };
	int32_t rc[3];

	(void)state;
	if (m->type != MSG_TRY) {
		return;
	}
	rc[0] = tr_job_progress(cx, &none, 10, "x");
	rc[1] = tr_job_complete(cx, &none, NULL, 0);
	rc[2] = tr_job_fail(cx, &none, "x");
	(void)tr_send(cx, tr_sender(cx), MSG_TRIED, rc, sizeof(rc));
}

static const tr_actor_def outsider_def = {
	.size = sizeof(tr_actor_def),
	.name = "outsider",
	.handle = outsider_handle,
};

/* ---- the service ----------------------------------------------------------
 */

#define KIND(n, d, max)                                                        \
	{                                                                      \
		.name = (n), .def = (d), .max_concurrency = (max)              \
	}

static tr_pid
start_cfg(struct fx *f, unsigned workers, const tr_jobs_config *cfg)
{
	tr_pid j = TR_PID_NONE;
	tr_ref ref;
	tr_jobs_reply rep = { .status = 1 };

	world_reset();
	log_reset();
	fx_start(f, workers);
	CHECK_OK(tr_jobs_start(tr_inbox_ctx(f->ib), cfg, &j, &ref));
	CHECK(fx_recv_ref(f, ref, TR_MSG_JOBS_REPLY, j, &rep, sizeof(rep)));
	CHECK_OK(rep.status);
	CHECK_EQ_U64(rep.id, 0);
	return j;
}

static tr_pid
jobs_start(struct fx *f, unsigned workers, const tr_jobs_kind *kinds,
	   uint32_t nkinds)
{
	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = nkinds };

	return start_cfg(f, workers, &cfg);
}

static void
jobs_finish(struct fx *f)
{
	CHECK_EQ_INT(stray, 0);
	fx_finish(f); /* the runtime's stop ends the service too */
}

/* ---- tests ----------------------------------------------------------------
 */

static void
test_complete(void)
{
	static const tr_jobs_kind kinds[] = { KIND("echo", &echo_def, 2) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 1);
	bool seq_ok;

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
	struct status st = status_of(&f, j, id);
	CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(st.progress, 100);
	CHECK_EQ_U64(st.result_size, 10);
	CHECK(memcmp(st.result, "echo:hello", 10) == 0);
	CHECK_STR(st.kind, "echo");

	/* A watcher of every job; a late watcher of a finished job. */
	CHECK_OK(watch(&f, j, 0, f.probe, true));
	uint64_t id2 = 0;
	CHECK_OK(submit_req(&f, j, "echo", NULL, 0, 0, TR_PID_NONE, &id2));
	CHECK(WAIT_EV(&f, count_ev(id2, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(story(id2, &seq_ok), "QSF");
	CHECK_OK(watch(&f, j, id, f.probe, true));
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 2, WAIT_MS));
	CHECK_EQ_U64(evs[nev - 1].ev->seq, 3);
	CHECK_OK(watch(&f, j, 0, f.probe, false));
	uint64_t id3 = 0;
	CHECK_OK(submit_req(&f, j, "echo", "x", 1, 0, TR_PID_NONE, &id3));
	CHECK(WAIT_UNTIL(state_of(&f, j, id3) == TR_JOB_SUCCEEDED, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.submitted, 3);
	CHECK_EQ_U64(s.succeeded, 3);
	CHECK_EQ_U64(
		s.queued + s.running + s.failed + s.cancelled + s.timed_out, 0);
	CHECK_EQ_U64(s.unhandled, 0);
	jobs_finish(&f);
}

static void
test_progress(void)
{
	static const tr_jobs_kind kinds[] = { KIND("steps", &steps_def, 1) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 1);
	bool seq_ok;

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
	jobs_finish(&f);
}

static void
test_concurrency(void)
{
	static const tr_jobs_kind kinds[] = { KIND("slow", &slow_def, 2) };
	struct fx f;
	tr_pid j = jobs_start(&f, 3, kinds, 1);
	uint64_t ids[6];

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
	CHECK_EQ_U64(stats_of(&f, j).running, 2);
	CHECK_EQ_U64(stats_of(&f, j).queued, 4);
	for (int i = 2; i < 6; i++) {
		CHECK_EQ_U64(state_of(&f, j, ids[i]), TR_JOB_QUEUED);
	}
	atomic_store(&g.release, 1);
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_FINISHED) == 6, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.high), 2);
	CHECK_EQ_U64(atomic_load(&g.norder), 6);
	/* Every job ran once (two starts may be handled at the same time,
	 * so their order among themselves is the scheduler's). */
	for (int i = 0; i < 6; i++) {
		int seen = 0;
		for (int k = 0; k < 6; k++) {
			seen += atomic_load(&g.order[k]) == ids[i];
		}
		CHECK_EQ_INT(seen, 1);
	}
	/* FIFO: the service started them in submission order. */
	int k = 0;
	for (size_t i = 0; i < nev; i++) {
		if (evs[i].ev->event == TR_JOB_EV_STARTED && k < 6) {
			CHECK_EQ_U64(evs[i].ev->id, ids[k]);
			k++;
		}
	}
	for (int i = 0; i < 6; i++) {
		CHECK_EQ_U64(state_of(&f, j, ids[i]), TR_JOB_SUCCEEDED);
	}
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 0, WAIT_MS));
	jobs_finish(&f);
}

static void
test_cancel_queued(void)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 1) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 1);

	uint64_t a = submit(&f, j, "hang", NULL, 0, 0);
	uint64_t b = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK_OK(cancel(&f, j, b));
	CHECK(WAIT_EV(&f, count_ev(b, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	bool seq_ok;
	CHECK_STR(story(b, &seq_ok), "QF");
	struct status st = status_of(&f, j, b);
	CHECK_EQ_U64(st.state, TR_JOB_CANCELLED);
	CHECK(tr_pid_is_none(st.worker));
	CHECK_ERR(cancel(&f, j, b), TR_ESTATE);
	CHECK_EQ_U64(state_of(&f, j, a), TR_JOB_RUNNING);
	/* Cancelling the running one stops its actor and frees its slot;
	 * the state is final when the reply comes. */
	tr_pid worker = status_of(&f, j, a).worker;
	CHECK(tr_actor_alive(f.rt, worker));
	CHECK_OK(cancel(&f, j, a));
	CHECK_EQ_U64(state_of(&f, j, a), TR_JOB_CANCELLED);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	const struct evrec *e = find_ev(a, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->state == TR_JOB_CANCELLED &&
	      e->ev->exit_reason == TR_JOBS_EXIT_CANCELLED);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_JOBS_EXIT_CANCELLED);
	uint64_t c = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK_OK(cancel(&f, j, c));
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.cancelled, 3);
	CHECK_EQ_U64(s.submitted, 3);
	jobs_finish(&f);
}

static void
test_cancel_running_late_complete(void)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 1) };
	struct fx f;
	tr_pid j = jobs_start(&f, 3, kinds, 1);

	uint64_t a = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	tr_pid worker = find_ev(a, TR_JOB_EV_STARTED)->ev->worker;
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), worker, MSG_HOLD, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&g.gate_in) == 1, WAIT_MS));
	CHECK_OK(cancel(&f, j, a));
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	/* Now the job completes, too late. */
	atomic_store(&g.gate_open, 1);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.complete_ret), TR_OK);
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_INT(count_ev(a, TR_JOB_EV_FINISHED), 1);
	struct status st = status_of(&f, j, a);
	CHECK_EQ_U64(st.state, TR_JOB_CANCELLED);
	CHECK_EQ_U64(st.result_size, 0);
	CHECK_EQ_INT(st.exit_reason, TR_JOBS_EXIT_CANCELLED);
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.cancelled, 1);
	CHECK_EQ_U64(s.succeeded, 0);
	jobs_finish(&f);
}

static void
test_timeout(void)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 1),
					      KIND("echo", &echo_def, 1) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 2);

	uint64_t t0 = harness_now_ms();
	uint64_t a = submit(&f, j, "hang", NULL, 0, 150);
	CHECK(WAIT_EV(&f, count_ev(a, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK(harness_now_ms() - t0 >= 150);
	const struct evrec *e = find_ev(a, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->state == TR_JOB_TIMED_OUT &&
	      e->ev->exit_reason == TR_JOBS_EXIT_TIMEOUT);
	tr_pid worker = status_of(&f, j, a).worker;
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_JOBS_EXIT_TIMEOUT);
	CHECK_EQ_U64(state_of(&f, j, a), TR_JOB_TIMED_OUT);
	/*
	 * A job that ends in time does not time out afterwards. The hang c,
	 * started right after b with the same timeout, is the marker: the
	 * service arms c's timer after b's, so it hears of b's timer first,
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
	CHECK_EQ_U64(state_of(&f, j, b),
		     in_time ? TR_JOB_SUCCEEDED : TR_JOB_TIMED_OUT);
	CHECK_EQ_U64(state_of(&f, j, c), TR_JOB_TIMED_OUT);
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_INT(count_ev(b, TR_JOB_EV_FINISHED), 1);
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.timed_out, in_time ? 2 : 3);
	CHECK_EQ_U64(s.succeeded, in_time ? 1 : 0);
	jobs_finish(&f);
}

static void
test_crash_and_fail(void)
{
	static const tr_jobs_kind kinds[] = {
		KIND("crash", &crash_def, 1),
		KIND("failer", &failer_def, 1),
		KIND("badinit", &badinit_def, 1),
	};
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 3);
	bool seq_ok;

	uint64_t a = submit(&f, j, "crash", NULL, 0, 0);
	uint64_t b = submit(&f, j, "failer", NULL, 0, 0);
	uint64_t c = submit(&f, j, "badinit", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_FINISHED) == 3, WAIT_MS));
	CHECK_STR(story(a, &seq_ok), "QSF");
	CHECK_STR(story(b, &seq_ok), "QSF");
	CHECK_STR(story(c, &seq_ok), "QSF");
	struct status st = status_of(&f, j, a);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_ERROR);
	CHECK_STR(st.note, "stopped without a result");
	st = status_of(&f, j, b);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_NORMAL);
	CHECK_STR(st.note, "disk full");
	const struct evrec *e = find_ev(b, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && strcmp(e->ev->note, "disk full") == 0);
	st = status_of(&f, j, c);
	CHECK_EQ_U64(st.state, TR_JOB_FAILED);
	CHECK_EQ_INT(st.exit_reason, TR_EXIT_INIT_FAILED);
	CHECK_EQ_U64(stats_of(&f, j).failed, 3);
	jobs_finish(&f);
}

static void
test_become(void)
{
	static const tr_jobs_kind kinds[] = { { .name = "shifter",
						.def = &shifter_def,
						.arg = "kind-arg",
						.max_concurrency = 1 } };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 1);
	bool seq_ok;

	uint64_t id = submit(&f, j, "shifter", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(story(id, &seq_ok), "QSPF");
	CHECK(seq_ok);
	const struct evrec *e = find_ev(id, TR_JOB_EV_FINISHED);
	CHECK(e != NULL && e->ev->state == TR_JOB_SUCCEEDED &&
	      e->ev->result_size == 15 &&
	      memcmp(e->ev->result, "kind-arg c0ffee", 15) == 0);
	jobs_finish(&f);
}

static void
test_max_finished(void)
{
	static const tr_jobs_kind kinds[] = { KIND("echo", &echo_def, 1) };
	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = 1,
			       .max_finished = 2 };
	struct fx f;
	tr_pid j = start_cfg(&f, 2, &cfg);
	uint64_t ids[3];

	for (int i = 0; i < 3; i++) {
		ids[i] = submit(&f, j, "echo", NULL, 0, 0);
		CHECK(WAIT_EV(&f, count_ev(ids[i], TR_JOB_EV_FINISHED) == 1,
			      WAIT_MS));
	}
	CHECK_ERR(status_get(&f, j, ids[0]).err, TR_ENOENT);
	CHECK_EQ_U64(state_of(&f, j, ids[1]), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(state_of(&f, j, ids[2]), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(stats_of(&f, j).succeeded, 3);
	jobs_finish(&f);
}

/*
 * A finished job that the table drops while its actor still exists (the
 * actor of a cancelled job is still in a handler): its status is gone at
 * once, its late complete is ignored, and its actor's stop frees the slot.
 */
static void
test_max_finished_actor_alive(void)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 2) };
	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = 1,
			       .max_finished = 1 };
	struct fx f;
	tr_pid j = start_cfg(&f, 3, &cfg);

	uint64_t a = submit(&f, j, "hang", NULL, 0, 0);
	uint64_t b = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_STARTED) == 2, WAIT_MS));
	tr_pid worker = find_ev(a, TR_JOB_EV_STARTED)->ev->worker;
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), worker, MSG_HOLD, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&g.gate_in) == 1, WAIT_MS));
	CHECK_OK(cancel(&f, j, a));
	CHECK_OK(cancel(&f, j, b));
	CHECK_ERR(status_get(&f, j, a).err, TR_ENOENT);
	CHECK_EQ_U64(state_of(&f, j, b), TR_JOB_CANCELLED);
	CHECK(tr_actor_alive(f.rt, worker));
	atomic_store(&g.gate_open, 1);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, worker), WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.complete_ret), TR_OK);
	/* Both slots are free again: two more jobs run at once. */
	uint64_t c = submit(&f, j, "hang", NULL, 0, 0);
	uint64_t d = submit(&f, j, "hang", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(c, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK(WAIT_EV(&f, count_ev(d, TR_JOB_EV_STARTED) == 1, WAIT_MS));
	CHECK_EQ_INT(count_ev(a, TR_JOB_EV_FINISHED), 1);
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.cancelled, 2);
	CHECK_EQ_U64(s.succeeded, 0);
	CHECK_EQ_U64(s.running, 2);
	jobs_finish(&f);
}

/* The pids of the first @n STARTED events. */
static void
started_workers(tr_pid *out, int n)
{
	int k = 0;

	for (size_t i = 0; i < nev && k < n; i++) {
		if (evs[i].ev->event == TR_JOB_EV_STARTED) {
			out[k++] = evs[i].ev->worker;
		}
	}
}

/* Five jobs of a kind of three at once, after the service stopped: the
 * three actors stopped with it, and every job ended once, failed. */
static void
check_stopped_with_jobs(struct fx *f, tr_pid j, const uint64_t *ids,
			const tr_pid *workers, int32_t why)
{
	for (int i = 0; i < 3; i++) {
		CHECK(WAIT_UNTIL(!tr_actor_alive(f->rt, workers[i]), WAIT_MS));
	}
	CHECK(WAIT_UNTIL(atomic_load(&g.teardowns) == 3, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.last_reason), TR_EXIT_SHUTDOWN);
	CHECK(WAIT_EV(f, count_ev(0, TR_JOB_EV_FINISHED) == 5, WAIT_MS));
	for (int i = 0; i < 5; i++) {
		const struct evrec *e = find_ev(ids[i], TR_JOB_EV_FINISHED);
		CHECK(e != NULL && e->ev->state == TR_JOB_FAILED &&
		      strcmp(e->ev->note, "the service stopped") == 0 &&
		      e->ev->exit_reason == (i < 3 ? TR_EXIT_SHUTDOWN : 0));
	}
	/* A request to a stopped service: the runtime answers it. */
	tr_received r;
	CHECK(ask(f, j, TR_MSG_JOBS_STATS, NULL, 0, &r));
	const tr_request_failed *rf = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && rf != NULL &&
	      rf->reason == why);
	tr_received_fini(&r);
}

static void
test_stop_stops_jobs(void)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 3) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 1);
	tr_pid workers[3];
	uint64_t ids[5];

	for (int i = 0; i < 5; i++) {
		ids[i] = submit(&f, j, "hang", NULL, 0, 0);
	}
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_STARTED) == 3, WAIT_MS));
	started_workers(workers, 3);
	CHECK_OK(tr_stop(tr_inbox_ctx(f.ib), j, TR_EXIT_SHUTDOWN));
	check_stopped_with_jobs(&f, j, ids, workers, TR_EXIT_NOPROC);
	jobs_finish(&f);
}

/* parent: starts a service linked with itself and tells the probe. */
static void
parent_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	static const tr_jobs_kind kinds[] = { KIND("hang", &hang_def, 3) };
	tr_pid *probe = state;

	if (m->type == MSG_START_JOBS && payload(m, probe, sizeof(*probe))) {
		tr_jobs_config cfg = { .size = sizeof(cfg),
				       .kinds = kinds,
				       .nkinds = 1,
				       .is_linked = true };
		tr_pid j = TR_PID_NONE;
		(void)tr_jobs_start(cx, &cfg, &j, NULL);
		(void)tr_send(cx, *probe, MSG_STARTED, &j, sizeof(j));
	}
	/* The start's reply comes here too; nothing to do with it. */
}

static const tr_actor_def parent_def = {
	.size = sizeof(tr_actor_def),
	.name = "parent",
	.state_size = sizeof(tr_pid),
	.handle = parent_handle,
};

static void
test_parent_exit_stops_jobs(void)
{
	struct fx f;
	tr_pid workers[3];
	uint64_t ids[5];
	tr_pid j = TR_PID_NONE;

	world_reset();
	log_reset();
	fx_start(&f, 2);
	tr_pid parent = fx_spawn(&f, &parent_def, NULL);
	SEND(&f, parent, MSG_START_JOBS, &f.probe, sizeof(f.probe));
	CHECK(fx_recv(&f, MSG_STARTED, &j, sizeof(j)));
	CHECK(!tr_pid_is_none(j));
	for (int i = 0; i < 5; i++) {
		ids[i] = submit(&f, j, "hang", NULL, 0, 0);
	}
	CHECK(WAIT_EV(&f, count_ev(0, TR_JOB_EV_STARTED) == 3, WAIT_MS));
	started_workers(workers, 3);
	/* The parent fails: the link takes the service down, and the
	 * service its jobs. */
	CHECK_OK(tr_stop(tr_inbox_ctx(f.ib), parent, TR_EXIT_ERROR));
	check_stopped_with_jobs(&f, j, ids, workers, TR_EXIT_NOPROC);
	jobs_finish(&f);
}

static void
test_start_checks(void)
{
	tr_jobs_kind kinds[2] = { KIND("echo", &echo_def, 1),
				  KIND("x", &echo_def, 1) };
	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = 2 };
	char longname[TR_JOBS_KIND_MAX + 2];
	struct fx f;
	tr_pid pid = TR_PID_NONE;
	tr_ref ref = { 7 };

	world_reset();
	log_reset();
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	kinds[1].name = "echo";
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EEXIST);
	CHECK(tr_pid_is_none(pid));
	CHECK_EQ_U64(ref.v, 0);
	kinds[1] = (tr_jobs_kind)KIND("x", NULL, 1);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	kinds[1] = (tr_jobs_kind)KIND("x", &echo_def, 0);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	kinds[1] = (tr_jobs_kind)KIND("", &echo_def, 1);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	kinds[1] = (tr_jobs_kind)KIND(NULL, &echo_def, 1);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	kinds[1] = (tr_jobs_kind)KIND(longname, &echo_def, 1);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	tr_actor_def nohandle = echo_def;
	nohandle.handle = NULL;
	kinds[1] = (tr_jobs_kind)KIND("x", &nohandle, 1);
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	kinds[1] = (tr_jobs_kind)KIND("x", &echo_def, 1);
	CHECK_ERR(tr_jobs_start(NULL, &cfg, &pid, &ref), TR_EINVAL);
	CHECK_ERR(tr_jobs_start(cx, NULL, &pid, &ref), TR_EINVAL);
	cfg.size = 2;
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	cfg.size = sizeof(cfg);
	cfg.nkinds = TR_JOBS_MAX_KINDS + 1;
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	cfg.nkinds = 2;
	cfg.is_linked = true; /* only an actor has a link */
	CHECK_ERR(tr_jobs_start(cx, &cfg, &pid, &ref), TR_EINVAL);
	cfg.is_linked = false;
	/* A name of exactly TR_JOBS_KIND_MAX bytes is fine; a start on the
	 * runtime's context gets no reply, and the service runs. */
	longname[TR_JOBS_KIND_MAX] = '\0';
	kinds[1] = (tr_jobs_kind)KIND(longname, &echo_def, 1);
	CHECK_OK(tr_jobs_start(tr_runtime_ctx(f.rt), &cfg, &pid, &ref));
	CHECK(!tr_pid_is_none(pid));
	CHECK_EQ_U64(ref.v, 0);
	uint64_t id = submit(&f, pid, longname, "z", 1, 0);
	CHECK(WAIT_EV(&f, count_ev(id, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_STR(find_ev(id, TR_JOB_EV_FINISHED)->ev->kind, longname);
	/* No kinds at all is a service that refuses every submit. */
	tr_jobs_config none = { .size = sizeof(none) };
	CHECK_OK(tr_jobs_start(tr_runtime_ctx(f.rt), &none, &pid, NULL));
	CHECK_ERR(submit_req(&f, pid, "echo", NULL, 0, 0, TR_PID_NONE, &id),
		  TR_ENOENT);
	jobs_finish(&f);
}

static void
test_unknown_and_bad_input(void)
{
	static const tr_jobs_kind kinds[] = { KIND("echo", &echo_def, 1),
					      KIND("misuse", &misuse_def, 1) };
	struct fx f;
	tr_pid j = jobs_start(&f, 2, kinds, 2);
	uint64_t id = 1;
	tr_jobs_job_req jr = { .id = 12345 };

	/* Unknown kinds and jobs. */
	CHECK_ERR(submit_req(&f, j, "nope", NULL, 0, 0, TR_PID_NONE, &id),
		  TR_ENOENT);
	CHECK_EQ_U64(id, 0);
	CHECK_ERR(status_get(&f, j, 12345).err, TR_ENOENT);
	CHECK_ERR(status_get(&f, j, 0).err, TR_ENOENT);
	CHECK_ERR(cancel(&f, j, 12345), TR_ENOENT);
	CHECK_ERR(watch(&f, j, 12345, f.probe, true), TR_ENOENT);
	CHECK_OK(watch(&f, j, 12345, f.probe, false));
	CHECK_ERR(watch(&f, j, 0, TR_PID_NONE, true), TR_EINVAL);
	CHECK_ERR(watch(&f, j, 0, TR_PID_NONE, false), TR_EINVAL);
	CHECK_EQ_U64(stats_of(&f, j).unhandled, 0);

	/* Requests of the wrong size, or of a type the service does not
	 * know: TR_EINVAL, and counted. */
	tr_jobs_submit_req sr = { .kind = "echo", .payload_size = 5 };
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_SUBMIT, &sr, sizeof(sr), NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_SUBMIT, &sr, 8, NULL),
		  TR_EINVAL);
	memset(sr.kind, 'e', sizeof(sr.kind)); /* no NUL */
	sr.payload_size = 0;
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_SUBMIT, &sr, sizeof(sr), NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_CANCEL, &jr, 4, NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_STATUS, NULL, 0, NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_WATCH, &jr, sizeof(jr), NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_STATS, &jr, sizeof(jr), NULL),
		  TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, MSG_STRANGE, NULL, 0, NULL), TR_EINVAL);
	CHECK_ERR(ask_status(&f, j, TR_MSG_JOBS_REPLY, NULL, 0, NULL),
		  TR_EINVAL);
	CHECK_EQ_U64(stats_of(&f, j).unhandled, 9);
	/* A plain message it cannot use is counted, and not answered. */
	SEND(&f, j, MSG_STRANGE, "?", 1);
	SEND(&f, j, TR_MSG_JOBS_CANCEL, "?", 1);
	CHECK(WAIT_UNTIL(stats_of(&f, j).unhandled == 11, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_U64(stats_of(&f, j).submitted, 0);

	CHECK_STR(tr_job_state_name(TR_JOB_QUEUED), "queued");
	CHECK_STR(tr_job_state_name(TR_JOB_TIMED_OUT), "timed out");
	CHECK_STR(tr_job_state_name(0), "?");
	CHECK_STR(tr_job_state_name(99), "?");

	/* The job functions without a job, and misused inside one. */
	tr_job none = { 0 };
	CHECK_ERR(tr_job_progress(NULL, &none, 1, NULL), TR_EINVAL);
	CHECK_ERR(tr_job_complete(NULL, &none, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_job_fail(NULL, &none, NULL), TR_EINVAL);
	CHECK_ERR(tr_job_progress(tr_inbox_ctx(f.ib), NULL, 1, NULL),
		  TR_EINVAL);
	tr_pid out = fx_spawn(&f, &outsider_def, NULL);
	int32_t rc[3];
	SEND(&f, out, MSG_TRY, NULL, 0);
	CHECK(fx_recv(&f, MSG_TRIED, rc, sizeof(rc)));
	CHECK_ERR(rc[0], TR_ESTATE);
	CHECK_ERR(rc[1], TR_ESTATE);
	CHECK_ERR(rc[2], TR_ESTATE);
	uint64_t m = submit(&f, j, "misuse", NULL, 0, 0);
	CHECK(WAIT_EV(&f, count_ev(m, TR_JOB_EV_FINISHED) == 1, WAIT_MS));
	CHECK_EQ_INT(atomic_load(&g.rc_checks), 1);
	CHECK_ERR(atomic_load(&g.rc_progress_bad), TR_EINVAL);
	CHECK_ERR(atomic_load(&g.rc_complete_twice), TR_ESTATE);
	CHECK_ERR(atomic_load(&g.rc_progress_after), TR_ESTATE);
	struct status st = status_of(&f, j, m);
	CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
	CHECK(st.result_size == 2 && memcmp(st.result, "ok", 2) == 0);
	bool seq_ok;
	CHECK_STR(story(m, &seq_ok), "QSF");
	/* A report that does not come from the job's actor is not one. */
	CHECK_EQ_U64(stats_of(&f, j).succeeded, 1);
	jobs_finish(&f);
}

#define NMIXED 200

static void
test_mixed_200(void)
{
	static const tr_jobs_kind kinds[] = { KIND("mixed", &mixed_def, 8) };
	static uint64_t ids[NMIXED];
	struct fx f;
	tr_pid j = jobs_start(&f, 3, kinds, 1);

	for (int i = 0; i < NMIXED; i++) {
		unsigned char mode = (unsigned char)(i % M_MODES);
		uint64_t timeout = mode == M_TIMEOUT  ? 30
				   : mode == M_CANCEL ? 0
						      : 60000;
		ids[i] = submit(&f, j, "mixed", &mode, 1, timeout);
		if (mode == M_CANCEL && i % 2 == 1) {
			/* Half of them at once, most likely still queued. */
			CHECK_OK(cancel(&f, j, ids[i]));
		}
	}
	for (int i = 0; i < NMIXED; i++) {
		if (i % M_MODES == M_CANCEL && i % 2 == 0) {
			CHECK_OK(cancel(&f, j, ids[i]));
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
			  state_of(&f, j, ids[i]) == want[i % M_MODES];
		if (!ok && bad++ < 5) {
			fprintf(stderr, "  job %d (mode %d): \"%s\" state %s\n",
				i, i % M_MODES, s,
				e != NULL ? tr_job_state_name((int)e->ev->state)
					  : "-");
		}
	}
	CHECK_EQ_INT(bad, 0);
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.submitted, NMIXED);
	CHECK_EQ_U64(s.succeeded, NMIXED / M_MODES);
	CHECK_EQ_U64(s.failed, 2 * NMIXED / M_MODES);
	CHECK_EQ_U64(s.cancelled, NMIXED / M_MODES);
	CHECK_EQ_U64(s.timed_out, NMIXED / M_MODES);
	CHECK_EQ_U64(s.queued + s.running, 0);
	CHECK_EQ_U64(s.events_dropped, 0);
	CHECK_EQ_U64(s.unhandled, 0);
	jobs_finish(&f);
}

/* ---- durable jobs ----------------------------------------------------------
 */

/* A store on a file of a temporary directory, for several lives. */
struct disk {
	char dir[64];
	char path[96];
	tr_pid store;
};

static void
disk_make(struct disk *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/troupe-jobs-XXXXXX");
	CHECK(mkdtemp(d->dir) != NULL);
	snprintf(d->path, sizeof(d->path), "%s/db", d->dir);
}

static void
disk_remove(struct disk *d)
{
	static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
	char p[128];

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", d->path, tails[i]);
		(void)unlink(p);
	}
	CHECK_OK(rmdir(d->dir));
}

/* A new runtime, the store on @d's file, and a jobs service "jobs" on
 * it with @kinds (and @max_finished, 0 for the default): one life. */
static tr_pid
life_start_with(struct fx *f, struct disk *d, uint32_t max_pages,
		uint32_t max_finished, const tr_jobs_kind *kinds,
		uint32_t nkinds)
{
	tr_store_config sc = { .size = sizeof(sc),
			       .path = d->path,
			       .max_page_count = max_pages };
	tr_ref ref;
	tr_store_reply sr;

	world_reset();
	log_reset();
	fx_start(f, 2);
	CHECK_OK(tr_store_start(tr_inbox_ctx(f->ib), &sc, &d->store, &ref));
	CHECK(fx_recv_ref(f, ref, TR_MSG_STORE_REPLY, d->store, &sr,
			  sizeof(sr)));

	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = nkinds,
			       .max_finished = max_finished,
			       .store = d->store,
			       .name = "jobs" };
	tr_pid j = TR_PID_NONE;
	tr_jobs_reply rep = { .status = 1 };
	CHECK_OK(tr_jobs_start(tr_inbox_ctx(f->ib), &cfg, &j, &ref));
	CHECK(fx_recv_ref(f, ref, TR_MSG_JOBS_REPLY, j, &rep, sizeof(rep)));
	CHECK_OK(rep.status);
	return j;
}

static tr_pid
life_start(struct fx *f, struct disk *d, uint32_t max_pages,
	   const tr_jobs_kind *kinds, uint32_t nkinds)
{
	return life_start_with(f, d, max_pages, 0, kinds, nkinds);
}

/*
 * The journal's last sequence number, read by the probe. The store takes
 * requests in order, so once this answers, every record the service
 * sent before the probe asked is in the database: the next stop loses
 * none of them.
 */
/* The journal's first page of one event: its first sequence number left
 * (0: none) and its last one. False when no page came. */
static bool
journal_page(struct fx *f, struct disk *d, uint64_t *first, uint64_t *last)
{
	tr_store_read_req q = { .max_count = 1 };
	tr_received r;
	bool ok = false;

	snprintf(q.id, sizeof(q.id), "jobs");
	if (ask(f, d->store, TR_MSG_STORE_READ, &q, sizeof(q), &r) &&
	    r.type == TR_MSG_STORE_EVENTS &&
	    r.size >= sizeof(tr_store_events)) {
		const tr_store_events *pg = r.data;
		*first = pg->count > 0 ? pg->events[0].seq : 0;
		*last = pg->last_seq;
		ok = true;
	}
	tr_received_fini(&r);
	return ok;
}

static uint64_t
journal_last(struct fx *f, struct disk *d)
{
	uint64_t first = 0, last = 0;

	if (!journal_page(f, d, &first, &last)) {
		fprintf(stderr, "  probe: no page of the journal\n");
		harness_failed_checks++;
	}
	return last;
}

/* Submits without a watcher (events of one life are not looked at). */
static uint64_t
submit_quiet(struct fx *f, tr_pid j, const char *kind, const char *p)
{
	uint64_t id = 0;

	CHECK_OK(submit_req(f, j, kind, p, strlen(p), 0, TR_PID_NONE, &id));
	return id;
}

static bool
order_has(uint64_t id, unsigned n)
{
	for (unsigned i = 0; i < n && i < ORDER_MAX; i++) {
		if (atomic_load(&g.order[i]) == id) {
			return true;
		}
	}
	return false;
}

static void
test_durable_restart(void)
{
	/* "held" jobs are interrupted by a restart, "again" jobs run again;
	 * both hold their slot until released. */
	static const tr_jobs_kind kinds[] = {
		KIND("echo", &echo_def, 2),
		KIND("held", &slow_def, 1),
		{ .name = "again",
		  .def = &slow_def,
		  .max_concurrency = 1,
		  .on_restart = TR_JOBS_RESTART_RESUBMIT },
	};
	struct disk d;
	struct fx f;

	disk_make(&d);

	/* First life: one job finished, one of each kind running, one of
	 * each queued behind it. */
	tr_pid j = life_start(&f, &d, 0, kinds, 3);
	uint64_t echo = submit_quiet(&f, j, "echo", "a");
	CHECK(WAIT_UNTIL(state_of(&f, j, echo) == TR_JOB_SUCCEEDED, WAIT_MS));
	uint64_t held = submit_quiet(&f, j, "held", "h1");
	uint64_t held_q = submit_quiet(&f, j, "held", "h2");
	uint64_t again = submit_quiet(&f, j, "again", "g1");
	uint64_t again_q = submit_quiet(&f, j, "again", "g2");
	CHECK_EQ_U64(echo, 1);
	CHECK_EQ_U64(again_q, 5);
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 2, WAIT_MS));
	CHECK_EQ_U64(state_of(&f, j, held), TR_JOB_RUNNING);
	CHECK_EQ_U64(state_of(&f, j, held_q), TR_JOB_QUEUED);
	CHECK_EQ_U64(state_of(&f, j, again), TR_JOB_RUNNING);
	CHECK_EQ_U64(state_of(&f, j, again_q), TR_JOB_QUEUED);
	/* One event per change: five submits, three starts, one finish. */
	CHECK_EQ_U64(journal_last(&f, &d), 9);
	/* The runtime stops with the jobs as they are: the service writes
	 * nothing of its stop, as if the process had been killed. */
	jobs_finish(&f);

	/* Second life: the journal read back. */
	j = life_start(&f, &d, 0, kinds, 3);
	struct status st = status_of(&f, j, echo);
	CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(st.result_size, 6);
	CHECK(memcmp(st.result, "echo:a", 6) == 0);
	CHECK(tr_pid_is_none(st.worker)); /* a pid of an earlier life */
	st = status_of(&f, j, held);
	CHECK_EQ_U64(st.state, TR_JOB_INTERRUPTED);
	CHECK_STR(st.note, "interrupted by a restart");
	CHECK_STR(st.kind, "held");
	/* The queued "held" job and the resubmitted "again" job run; the
	 * queued "again" job waits behind it. */
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 2, WAIT_MS));
	CHECK(order_has(held_q, 2));
	CHECK(order_has(again, 2));
	CHECK_EQ_U64(state_of(&f, j, again), TR_JOB_RUNNING);
	CHECK_EQ_U64(state_of(&f, j, again_q), TR_JOB_QUEUED);
	/* Ids go on after the old ones. */
	uint64_t echo2 = submit_quiet(&f, j, "echo", "b");
	CHECK_EQ_U64(echo2, 6);
	atomic_store(&g.release, 1);
	CHECK(WAIT_UNTIL(state_of(&f, j, held_q) == TR_JOB_SUCCEEDED &&
				 state_of(&f, j, again) == TR_JOB_SUCCEEDED &&
				 state_of(&f, j, again_q) == TR_JOB_SUCCEEDED &&
				 state_of(&f, j, echo2) == TR_JOB_SUCCEEDED,
			 WAIT_MS));
	CHECK(order_has(again_q, 3));
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.submitted, 6);
	CHECK_EQ_U64(s.succeeded, 5);
	CHECK_EQ_U64(s.interrupted, 1);
	CHECK_EQ_U64(
		s.queued + s.running + s.failed + s.cancelled + s.timed_out, 0);
	CHECK_EQ_U64(s.unhandled, 0);
	(void)journal_last(&f, &d);
	jobs_finish(&f);

	/* Third life: the interruption and the second life's ends were
	 * written too; nothing runs again. */
	j = life_start(&f, &d, 0, kinds, 3);
	CHECK_EQ_U64(state_of(&f, j, held), TR_JOB_INTERRUPTED);
	CHECK_EQ_U64(state_of(&f, j, again), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(state_of(&f, j, echo2), TR_JOB_SUCCEEDED);
	CHECK_EQ_U64(submit_quiet(&f, j, "echo", "c"), 7);
	CHECK(WAIT_UNTIL(state_of(&f, j, 7) == TR_JOB_SUCCEEDED, WAIT_MS));
	s = stats_of(&f, j);
	CHECK_EQ_U64(s.submitted, 7);
	CHECK_EQ_U64(s.succeeded, 6);
	CHECK_EQ_U64(s.interrupted, 1);
	CHECK_EQ_U64(atomic_load(&g.norder), 0); /* no slow job started */
	jobs_finish(&f);
	disk_remove(&d);
}

/* The sequence number of the journal's first event left (0: none). */
static uint64_t
journal_first(struct fx *f, struct disk *d)
{
	uint64_t first = 0, last = 0;

	(void)journal_page(f, d, &first, &last);
	return first;
}

/*
 * The journal is compacted: after hundreds of jobs its early events are
 * gone, replaced by a snapshot of the table, and a restart rebuilds the
 * same table from it: the finished jobs kept (with their results), a
 * running job interrupted, one that runs again with its payload, the
 * queue in order, and ids that go on after the highest given.
 */
static void
test_durable_compaction(void)
{
	static const tr_jobs_kind kinds[] = {
		KIND("echo", &echo_def, 2),
		KIND("held", &slow_def, 1),
		{ .name = "again",
		  .def = &slow_def,
		  .max_concurrency = 1,
		  .on_restart = TR_JOBS_RESTART_RESUBMIT },
	};
	enum { N = 400, KEPT = 8 };
	struct disk d;
	struct fx f;

	disk_make(&d);
	tr_pid j = life_start_with(&f, &d, 0, KEPT, kinds, 3);
	uint64_t held = submit_quiet(&f, j, "held", "h1");
	uint64_t again = submit_quiet(&f, j, "again", "g1");
	uint64_t again_q = submit_quiet(&f, j, "again", "g2");
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 2, WAIT_MS));
	uint64_t last = 0;
	char p[16];
	for (int i = 0; i < N; i++) {
		snprintf(p, sizeof(p), "%d", i);
		last = submit_quiet(&f, j, "echo", p);
	}
	CHECK(WAIT_UNTIL(state_of(&f, j, last) == TR_JOB_SUCCEEDED, WAIT_MS));
	/* 1,200 records and more; the early ones are trimmed once a
	 * snapshot holds them. */
	CHECK(WAIT_UNTIL(journal_first(&f, &d) > 200, WAIT_MS));
	(void)journal_last(&f, &d);
	jobs_finish(&f);

	j = life_start_with(&f, &d, 0, KEPT, kinds, 3);
	CHECK_EQ_U64(state_of(&f, j, held), TR_JOB_INTERRUPTED);
	/* The job that runs again has its payload back. */
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 1, WAIT_MS));
	CHECK_EQ_U64(atomic_load(&g.order[0]), again);
	uint64_t g1 = 0;
	memcpy(&g1, "g1", 2);
	CHECK_EQ_U64(atomic_load(&g.payload[0]), g1);
	CHECK_EQ_U64(state_of(&f, j, again), TR_JOB_RUNNING);
	CHECK_EQ_U64(state_of(&f, j, again_q), TR_JOB_QUEUED);
	/* KEPT finished jobs: the interrupted one and the last echo jobs,
	 * with their results; none before. */
	for (uint64_t id = last - KEPT + 2; id <= last; id++) {
		struct status st = status_of(&f, j, id);
		char want[32];
		int n = snprintf(want, sizeof(want), "echo:%d",
				 (int)(id - (last - N + 1)));
		CHECK_EQ_U64(st.state, TR_JOB_SUCCEEDED);
		CHECK_EQ_U64(st.result_size, (uint64_t)n);
		CHECK(memcmp(st.result, want, (size_t)n) == 0);
	}
	CHECK(status_get(&f, j, last - KEPT + 1).err < 0);
	CHECK_EQ_U64(submit_quiet(&f, j, "echo", "x"), last + 1);
	atomic_store(&g.release, 1);
	CHECK(WAIT_UNTIL(state_of(&f, j, again) == TR_JOB_SUCCEEDED &&
				 state_of(&f, j, again_q) == TR_JOB_SUCCEEDED,
			 WAIT_MS));
	jobs_finish(&f);
	disk_remove(&d);
}

/* A store that is full refuses a submit: the submitter gets its status
 * and nothing is queued; the service goes on. */
static void
test_durable_store_full(void)
{
	static const tr_jobs_kind kinds[] = { KIND("held", &slow_def, 1) };
	static char big[64 * 1024];
	struct disk d;
	struct fx f;
	uint64_t accepted = 0;
	tr_err refused = TR_OK;

	disk_make(&d);
	memset(big, 'x', sizeof(big) - 1);
	tr_pid j = life_start(&f, &d, 64, kinds, 1); /* a few of them fill it */
	for (int i = 0; i < 64 && refused == TR_OK; i++) {
		uint64_t id = 0;
		tr_err err = submit_req(&f, j, "held", big, sizeof(big), 0,
					TR_PID_NONE, &id);
		if (err == TR_OK) {
			CHECK_EQ_U64(id, accepted + 1);
			accepted++;
		} else {
			CHECK_EQ_U64(id, 0);
			refused = err;
		}
	}
	CHECK_EQ_INT(refused, TR_EFULL);
	CHECK(accepted > 0);
	tr_jobs_stats s = stats_of(&f, j);
	CHECK_EQ_U64(s.submitted, accepted);
	CHECK_EQ_U64(s.queued + s.running, accepted);
	CHECK_EQ_U64(s.unhandled, 0);
	CHECK_ERR(status_get(&f, j, accepted + 1).err, TR_ENOENT);
	jobs_finish(&f);
	disk_remove(&d);
}

/* monitor: watches a pid for the probe (an inbox has no monitors). */
static void
monitor_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;
	tr_ref ref;

	if (m->type == MSG_MONITOR && m->size == sizeof(tr_pid)) {
		*probe = m->from;
		(void)tr_monitor(cx, *(const tr_pid *)m->data, &ref);
		(void)tr_send(cx, *probe, MSG_MONITOR, NULL, 0);
	} else if (m->type == TR_MSG_DOWN && m->size == sizeof(tr_down)) {
		int32_t reason = ((const tr_down *)m->data)->reason;
		(void)tr_send(cx, *probe, MSG_GONE, &reason, sizeof(reason));
	}
}

static const tr_actor_def monitor_def = {
	.size = sizeof(tr_actor_def),
	.name = "monitor",
	.state_size = sizeof(tr_pid),
	.handle = monitor_handle,
};

/* The store stops under the service: the service stops with
 * TR_EXIT_ERROR; a restart on the file finds the jobs. */
static void
test_durable_store_gone(void)
{
	static const tr_jobs_kind kinds[] = { KIND("held", &slow_def, 1) };
	struct disk d;
	struct fx f;
	int32_t reason = -1;

	disk_make(&d);
	tr_pid j = life_start(&f, &d, 0, kinds, 1);
	/* A store needs a name that fits a persistent id. */
	char longname[TR_STORE_ID_SIZE + 1];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	tr_jobs_config cfg = { .size = sizeof(cfg),
			       .kinds = kinds,
			       .nkinds = 1,
			       .store = d.store };
	tr_pid other = TR_PID_NONE;
	CHECK_ERR(tr_jobs_start(tr_runtime_ctx(f.rt), &cfg, &other, NULL),
		  TR_EINVAL);
	cfg.name = "";
	CHECK_ERR(tr_jobs_start(tr_runtime_ctx(f.rt), &cfg, &other, NULL),
		  TR_EINVAL);
	cfg.name = longname;
	CHECK_ERR(tr_jobs_start(tr_runtime_ctx(f.rt), &cfg, &other, NULL),
		  TR_EINVAL);
	/* A config of the size before the store is one without it. */
	cfg.size = offsetof(tr_jobs_config, store);
	CHECK_OK(tr_jobs_start(tr_runtime_ctx(f.rt), &cfg, &other, NULL));
	CHECK(!tr_pid_is_none(other));
	CHECK_OK(tr_stop(tr_inbox_ctx(f.ib), other, TR_EXIT_SHUTDOWN));
	uint64_t id = submit_quiet(&f, j, "held", "x");
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 1, WAIT_MS));
	CHECK_EQ_U64(journal_last(&f, &d), 2); /* its start is written */
	tr_pid mon = fx_spawn(&f, &monitor_def, NULL);
	SEND(&f, mon, MSG_MONITOR, &j, sizeof(j));
	CHECK(fx_recv(&f, MSG_MONITOR, NULL, 0));
	CHECK_OK(tr_stop(tr_inbox_ctx(f.ib), d.store, TR_EXIT_SHUTDOWN));
	CHECK(fx_recv(&f, MSG_GONE, &reason, sizeof(reason)));
	CHECK_EQ_INT(reason, TR_EXIT_ERROR);
	CHECK(WAIT_UNTIL(atomic_load(&g.running) == 0, WAIT_MS));
	jobs_finish(&f);

	j = life_start(&f, &d, 0, kinds, 1);
	CHECK_EQ_U64(state_of(&f, j, id), TR_JOB_INTERRUPTED);
	jobs_finish(&f);
	disk_remove(&d);
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
	{ "jobs: a job actor's tr_become keeps its state and its job",
	  test_become },
	{ "jobs: the table keeps max_finished finished jobs",
	  test_max_finished },
	{ "jobs: the table drops a finished job whose actor still runs",
	  test_max_finished_actor_alive },
	{ "jobs: stopping the service stops the running jobs",
	  test_stop_stops_jobs },
	{ "jobs: a linked parent's exit stops the service and its jobs",
	  test_parent_exit_stops_jobs },
	{ "jobs: the start's checks, and a start on the runtime's context",
	  test_start_checks },
	{ "jobs: unknown ids and kinds, bad requests, plain strangers",
	  test_unknown_and_bad_input },
	{ "jobs: exactly one final event per job over 200 mixed jobs",
	  test_mixed_200 },
	{ "jobs: the journal is compacted into a snapshot a restart reads",
	  test_durable_compaction },
	{ "jobs: a restart on the store finds finished, interrupted, "
	  "resubmitted and queued jobs",
	  test_durable_restart },
	{ "jobs: a submit the full store refuses is answered with its status",
	  test_durable_store_full },
	{ "jobs: the store gone stops the service; a restart finds its jobs",
	  test_durable_store_gone },
	{ NULL, NULL },
};

TEST_MAIN(tests)
