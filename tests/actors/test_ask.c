/*
 * Ask (<troupe/actors/ask.h>): every tr_ask() ends in exactly one result:
 * the reply with its bytes, a timeout, or ENOENT for a target that stops
 * or never existed; replies racing the timeout never produce a second
 * message and late ones are dead letters; a thousand concurrent asks all
 * resolve; an asker that stops takes its proxies with it; a full asker
 * mailbox delays the result but does not lose it; the blocking form works
 * from a plain thread; bad input is refused.
 */
#include <troupe/actors/ask.h>

#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/*
 * No check bounds how long a result took: a busy machine makes every
 * result later. An ask that must not time out gets NEVER_MS, so that a
 * timeout cannot pass for the outcome under test, and waits for a
 * condition fail after WAIT_MS.
 */
#define NEVER_MS 600000u
#define WAIT_MS 30000

enum {
	MSG_GO = 1, /* probe -> asker: struct go */
	MSG_ASKED,  /* asker -> probe: struct asked */
	MSG_FWD,    /* asker -> probe: a result payload, as received */
	MSG_REPORT, /* asker -> probe: struct report */
	MSG_EXTRA,  /* asker -> probe: a result after the report */
	MSG_PING,   /* request to the targets */
	MSG_PONG,   /* their reply */
	MSG_LATER,  /* a delayed target's own timer: struct later */
	MSG_BAD,    /* probe -> asker: try bad input, reply struct bad */
};

enum mode {
	MODE_FORWARD, /* forward every result to the probe */
	MODE_TALLY,   /* count results, one report when all are in */
};

#define MAX_ASKS 256

struct go {
	tr_pid target;
	uint64_t timeout_ms;
	uint32_t n;
	uint32_t mode;
	uint32_t len;
	uint8_t payload[16];
	uint32_t delay_lo; /* >0: payload is a delay in lo..hi ms per ask */
	uint32_t delay_hi;
	uint8_t until_full; /* stay in the handler until a result is refused */
	uint8_t stop_after; /* stop the asker right after asking */
};

struct asked {
	int32_t err;
	uint64_t id;
};

struct report {
	uint32_t results;
	uint32_t ok;
	uint32_t timedout;
	uint32_t noent;
	uint32_t other;
	uint32_t dup;     /* a second result for one id */
	uint32_t unknown; /* a result for an id never issued */
	uint32_t bad;     /* wrong bytes, type or sender in an OK */
};

struct bad {
	int32_t err[6];
};

struct asker {
	tr_pid probe;
	tr_pid target;
	uint32_t mode;
	uint32_t n;
	uint64_t ids[MAX_ASKS];
	bool seen[MAX_ASKS];
	struct report r;
	bool reported;
};

/* ---- targets ---------------------------------------------------------- */

static _Atomic uint32_t requests_seen;
static _Atomic uint32_t late_sent;

/* Replies MSG_PONG with every byte plus one. */
static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	uint8_t out[16];

	(void)state;
	if (m->type != MSG_PING || m->size > sizeof(out)) {
		return;
	}
	for (size_t i = 0; i < m->size; i++) {
		out[i] = (uint8_t)(((const uint8_t *)m->data)[i] + 1);
	}
	(void)tr_ask_reply(cx, MSG_PONG, out, m->size);
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

/* Never answers. */
static void
silent_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == MSG_PING) {
		atomic_fetch_add_explicit(&requests_seen, 1,
					  memory_order_relaxed);
	}
}

static const tr_actor_def silent_def = {
	.size = sizeof(tr_actor_def),
	.name = "silent",
	.handle = silent_handle,
};

/* Stops on the first request; with a payload byte 1 it replies first. */
static void
stopper_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_PING) {
		return;
	}
	if (m->size == 1 && ((const uint8_t *)m->data)[0] == 1) {
		(void)tr_ask_reply(cx, MSG_PONG, "x", 1);
	}
	tr_stop_self(cx, TR_EXIT_NORMAL);
}

static const tr_actor_def stopper_def = {
	.size = sizeof(tr_actor_def),
	.name = "stopper",
	.handle = stopper_handle,
};

struct later {
	tr_pid to;
	uint32_t delay;
};

/* Replies after the delay (uint32_t ms) in the request. */
static void
delayed_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING && m->size == sizeof(uint32_t)) {
		struct later l = { .to = tr_sender(cx) };

		memcpy(&l.delay, m->data, sizeof(l.delay));
		(void)tr_send_after(cx, tr_self(cx), MSG_LATER, &l, sizeof(l),
				    l.delay, NULL);
		return;
	}
	if (m->type == MSG_LATER && m->size == sizeof(struct later)) {
		struct later l;

		memcpy(&l, m->data, sizeof(l));
		(void)tr_send(cx, l.to, MSG_PONG, &l.delay, sizeof(l.delay));
		atomic_fetch_add_explicit(&late_sent, 1, memory_order_relaxed);
	}
}

static const tr_actor_def delayed_def = {
	.size = sizeof(tr_actor_def),
	.name = "delayed",
	.handle = delayed_handle,
};

/* ---- the asker -------------------------------------------------------- */

static void
asker_go(tr_ctx *cx, struct asker *a, const struct go *g)
{
	a->probe = tr_sender(cx);
	a->target = g->target;
	a->mode = g->mode;
	a->n = g->n > MAX_ASKS ? MAX_ASKS : g->n;
	for (uint32_t i = 0; i < a->n; i++) {
		struct asked r = { 0 };
		const void *data = g->payload;
		size_t len = g->len;
		uint32_t delay;

		if (g->delay_hi > 0) {
			/* Spread evenly over lo..hi, in a scrambled order. */
			uint32_t span = g->delay_hi - g->delay_lo + 1;
			delay = g->delay_lo + (i * 7919u) % span;
			data = &delay;
			len = sizeof(delay);
		}
		r.err = tr_ask(cx, g->target, MSG_PING, data, len,
			       g->timeout_ms, &r.id);
		a->ids[i] = r.id;
		if (a->mode == MODE_FORWARD) {
			(void)tr_send(cx, a->probe, MSG_ASKED, &r, sizeof(r));
		} else if (r.err < 0) {
			a->r.other++;
		}
	}
	if (g->until_full) {
		/*
		 * Keeps results queued behind this turn until the bounded
		 * mailbox has refused one (or WAIT_MS passed: the test then
		 * finds no refusal and fails).
		 */
		tr_runtime *rt = tr_ctx_runtime(cx);
		tr_metrics m = { .size = sizeof(m) };
		(void)tr_runtime_metrics(rt, &m);
		uint64_t full0 = m.mailbox_full;
		uint64_t until = harness_now_ms() + WAIT_MS;
		while (m.mailbox_full == full0 && harness_now_ms() < until) {
			harness_nap_us(1000);
			(void)tr_runtime_metrics(rt, &m);
		}
	}
	if (g->stop_after) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static void
asker_tally(tr_ctx *cx, struct asker *a, const tr_msg *m)
{
	tr_ask_result res;

	if (a->reported) {
		(void)tr_send(cx, a->probe, MSG_EXTRA, m->data, m->size);
		return;
	}
	if (tr_ask_result_parse(m->data, m->size, &res) != TR_OK) {
		a->r.unknown++;
		return;
	}
	uint32_t i = 0;
	while (i < a->n && a->ids[i] != res.id) {
		i++;
	}
	if (i == a->n) {
		a->r.unknown++;
		return;
	}
	if (a->seen[i]) {
		a->r.dup++;
		return;
	}
	a->seen[i] = true;
	a->r.results++;
	switch (res.status) {
	case TR_OK:
		a->r.ok++;
		if (res.type != MSG_PONG || !tr_pid_eq(res.from, a->target)) {
			a->r.bad++;
		}
		break;
	case TR_ETIMEDOUT:
		a->r.timedout++;
		break;
	case TR_ENOENT:
		a->r.noent++;
		break;
	default:
		a->r.other++;
		break;
	}
	if (a->r.results == a->n) {
		a->reported = true;
		(void)tr_send(cx, a->probe, MSG_REPORT, &a->r, sizeof(a->r));
	}
}

static void
asker_bad(tr_ctx *cx, const tr_msg *m)
{
	struct bad b;
	tr_pid self = tr_self(cx);
	uint64_t id = 77;

	b.err[0] = tr_ask(cx, TR_PID_NONE, MSG_PING, NULL, 0, 100, &id);
	b.err[1] = tr_ask(cx, self, MSG_PING, NULL, 0, 0, &id);
	b.err[2] = tr_ask(cx, self, TR_MSG_SYSTEM_BASE, NULL, 0, 100, &id);
	b.err[3] = tr_ask(cx, self, MSG_PING, NULL, 4, 100, &id);
	b.err[4] = tr_ask(NULL, self, MSG_PING, NULL, 0, 100, &id);
	b.err[5] = id == 77 ? TR_OK : TR_ESTATE; /* untouched on errors */
	(void)tr_send(cx, m->from, MSG_BAD, &b, sizeof(b));
}

static void
asker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct asker *a = state;

	if (m->type == MSG_GO && m->size == sizeof(struct go)) {
		struct go g;

		memcpy(&g, m->data, sizeof(g));
		asker_go(cx, a, &g);
	} else if (m->type == MSG_BAD) {
		asker_bad(cx, m);
	} else if (m->type == TR_MSG_ASK_RESULT) {
		if (a->mode == MODE_FORWARD) {
			(void)tr_send(cx, a->probe, MSG_FWD, m->data, m->size);
		} else {
			asker_tally(cx, a, m);
		}
	}
}

static const tr_actor_def asker_def = {
	.size = sizeof(tr_actor_def),
	.name = "asker",
	.state_size = sizeof(struct asker),
	.handle = asker_handle,
};

/* A small mailbox, so that results are refused with TR_EFULL. */
static const tr_actor_def tight_asker_def = {
	.size = sizeof(tr_actor_def),
	.name = "tight-asker",
	.state_size = sizeof(struct asker),
	.handle = asker_handle,
	.mailbox_bound = 2,
};

/* ---- receiving on the probe ------------------------------------------ */

static bool
recv_asked(struct fx *f, struct asked *a)
{
	return fx_recv(f, MSG_ASKED, a, sizeof(*a));
}

/* Receives one forwarded result; its bytes are copied into @bytes. */
static bool
recv_result(struct fx *f, tr_ask_result *res, uint8_t *bytes, size_t cap)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	if (tr_inbox_recv(f->ib, FX_REPLY_MS, &r) != TR_OK) {
		fprintf(stderr, "  probe: no result\n");
		return false;
	}
	bool ok = r.type == MSG_FWD &&
		  tr_ask_result_parse(r.data, r.size, res) == TR_OK &&
		  res->size <= cap;
	if (ok && res->size > 0) {
		memcpy(bytes, res->data, res->size);
	}
	res->data = NULL;
	tr_received_fini(&r);
	if (!ok) {
		fprintf(stderr, "  probe: not a result (type %u)\n", r.type);
	}
	return ok;
}

static struct go
go_one(tr_pid target, uint64_t timeout_ms)
{
	struct go g;

	memset(&g, 0, sizeof(g));
	g.target = target;
	g.timeout_ms = timeout_ms;
	g.n = 1;
	g.mode = MODE_FORWARD;
	return g;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_reply(void)
{
	struct fx f;
	struct asked a;
	tr_ask_result res;
	uint8_t bytes[16];

	fx_start(&f, 2);
	tr_pid echo = fx_spawn(&f, &echo_def, NULL);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	struct go g = go_one(echo, NEVER_MS);
	g.len = 3;
	memcpy(g.payload, "abc", 3);
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(recv_asked(&f, &a));
	CHECK_OK(a.err);
	CHECK(a.id != 0);
	CHECK(recv_result(&f, &res, bytes, sizeof(bytes)));
	CHECK_EQ_U64(res.id, a.id);
	CHECK_OK(res.status);
	CHECK_EQ_U64(res.type, MSG_PONG);
	CHECK(tr_pid_eq(res.from, echo));
	CHECK_EQ_U64(res.size, 3);
	CHECK(memcmp(bytes, "bcd", 3) == 0);
	/* Exactly one: the proxy, which alone could send another result,
	 * is gone (probe, echo and asker remain) and sent nothing more. */
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 3, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 200));
	fx_finish(&f);
}

static void
test_timeout(void)
{
	struct fx f;
	struct asked a;
	tr_ask_result res;
	uint8_t bytes[16];

	atomic_store(&requests_seen, 0);
	fx_start(&f, 2);
	tr_pid silent = fx_spawn(&f, &silent_def, NULL);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	struct go g = go_one(silent, 50);
	uint64_t t0 = harness_now_ms();
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(recv_asked(&f, &a));
	CHECK_OK(a.err);
	CHECK(recv_result(&f, &res, bytes, sizeof(bytes)));
	uint64_t took = harness_now_ms() - t0;
	printf("  timeout of 50 ms reported after %" PRIu64 " ms\n", took);
	CHECK_EQ_U64(res.id, a.id);
	CHECK_ERR(res.status, TR_ETIMEDOUT);
	CHECK_EQ_U64(res.size, 0);
	CHECK_EQ_U64(res.type, 0);
	/* Not early: t0 was read before the ask was made (1 ms for the
	 * clocks' millisecond rounding). */
	CHECK(took >= 49);
	CHECK_EQ_U64(atomic_load(&requests_seen), 1);
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 3, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 200));
	fx_finish(&f);
}

static void
test_target_stops(void)
{
	struct fx f;
	struct asked a;
	tr_ask_result res;
	uint8_t bytes[16];

	fx_start(&f, 2);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);

	/* Stops without replying: ENOENT at once, not the timeout (which
	 * would be TR_ETIMEDOUT, ten minutes on). */
	tr_pid stopper = fx_spawn(&f, &stopper_def, NULL);
	struct go g = go_one(stopper, NEVER_MS);
	uint64_t t0 = harness_now_ms();
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(recv_asked(&f, &a));
	CHECK_OK(a.err);
	CHECK(recv_result(&f, &res, bytes, sizeof(bytes)));
	uint64_t took = harness_now_ms() - t0;
	printf("  stopped target reported after %" PRIu64 " ms\n", took);
	CHECK_EQ_U64(res.id, a.id);
	CHECK_ERR(res.status, TR_ENOENT);

	/* Replies, then stops at once: the reply wins over the DOWN. */
	stopper = fx_spawn(&f, &stopper_def, NULL);
	g = go_one(stopper, NEVER_MS);
	g.len = 1;
	g.payload[0] = 1;
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(recv_asked(&f, &a));
	CHECK(recv_result(&f, &res, bytes, sizeof(bytes)));
	CHECK_EQ_U64(res.id, a.id);
	CHECK_OK(res.status);
	CHECK_EQ_U64(res.size, 1);
	CHECK(bytes[0] == 'x');
	CHECK(fx_recv_none(&f, 200));
	fx_finish(&f);
}

static void
test_unknown_target(void)
{
	struct fx f;
	struct asked a;
	tr_ask_result res;
	uint8_t bytes[16];

	fx_start(&f, 2);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	tr_pid gone = fx_spawn(&f, &silent_def, NULL);
	CHECK_OK(tr_runtime_stop_actor(f.rt, gone, TR_EXIT_NORMAL));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 2, WAIT_MS));
	tr_metrics m0 = fx_metrics(&f);
	struct go g = go_one(gone, NEVER_MS);
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(recv_asked(&f, &a));
	CHECK_OK(a.err);
	CHECK(recv_result(&f, &res, bytes, sizeof(bytes)));
	CHECK_EQ_U64(res.id, a.id);
	/* At once: the timeout would be TR_ETIMEDOUT, ten minutes on. */
	CHECK_ERR(res.status, TR_ENOENT);
	/* The request itself went to a stale pid: one dead letter (the
	 * monitor's NOPROC answer is the runtime's, also counted). */
	CHECK(fx_metrics(&f).dead_letters - m0.dead_letters >= 1);
	CHECK(fx_recv_none(&f, 200));
	fx_finish(&f);
}

#define N_RACE 200

static void
test_replies_around_the_timeout(void)
{
	struct fx f;
	struct report r;

	atomic_store(&late_sent, 0);
	fx_start(&f, 2);
	tr_pid delayed = fx_spawn(&f, &delayed_def, NULL);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	tr_metrics m0 = fx_metrics(&f);
	struct go g;
	memset(&g, 0, sizeof(g));
	g.target = delayed;
	g.timeout_ms = 20;
	g.n = N_RACE;
	g.mode = MODE_TALLY;
	g.delay_lo = 10;
	g.delay_hi = 30;
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	printf("  %u asks: %u replies in time, %u timeouts\n", N_RACE, r.ok,
	       r.timedout);
	CHECK_EQ_U64(r.results, N_RACE);
	CHECK_EQ_U64(r.ok + r.timedout, N_RACE);
	CHECK_EQ_U64(r.noent, 0);
	CHECK_EQ_U64(r.other, 0);
	CHECK_EQ_U64(r.dup, 0);
	CHECK_EQ_U64(r.unknown, 0);
	CHECK_EQ_U64(r.bad, 0);
	/*
	 * The proxy arms its timeout before it sends the request, and the
	 * target arms its reply timer after it got it, on the same timer
	 * loop: a reply delayed by more than the timeout always loses.
	 * Which of the others win depends on the machine's load, so the
	 * replies in time are printed, not checked.
	 */
	CHECK(r.timedout > 0);
	/* Every reply has been sent; then nothing more reaches the asker. */
	CHECK(WAIT_UNTIL(atomic_load(&late_sent) == N_RACE, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(fx_recv_none(&f, 100));
	/* Each late reply met a stopped proxy: a dead letter. A timeout
	 * that fired just as a reply won is one too, hence at most. */
	uint64_t dead = fx_metrics(&f).dead_letters - m0.dead_letters;
	printf("  dead letters: %" PRIu64 "\n", dead);
	CHECK(dead >= r.timedout);
	CHECK(dead <= N_RACE);
	CHECK_EQ_U64(fx_metrics(&f).actors_alive, 3);
	fx_finish(&f);
}

#define N_ASKERS 10
#define N_PER_ASKER 100

static void
test_thousand_concurrent(void)
{
	struct fx f;
	tr_pid echo[4];

	fx_start(&f, 2);
	for (int i = 0; i < 4; i++) {
		echo[i] = fx_spawn(&f, &echo_def, NULL);
	}
	for (int i = 0; i < N_ASKERS; i++) {
		tr_pid asker = fx_spawn(&f, &asker_def, NULL);
		struct go g;
		memset(&g, 0, sizeof(g));
		g.target = echo[i % 4];
		g.timeout_ms = 60000;
		g.n = N_PER_ASKER;
		g.mode = MODE_TALLY;
		SEND(&f, asker, MSG_GO, &g, sizeof(g));
	}
	uint32_t ok = 0;
	for (int i = 0; i < N_ASKERS; i++) {
		struct report r;
		memset(&r, 0, sizeof(r));
		CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
		CHECK_EQ_U64(r.results, N_PER_ASKER);
		CHECK_EQ_U64(r.dup + r.unknown + r.bad + r.other, 0);
		ok += r.ok;
	}
	CHECK_EQ_U64(ok, N_ASKERS * N_PER_ASKER);
	CHECK(fx_recv_none(&f, 100));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 1 + 4 + N_ASKERS,
			 WAIT_MS));
	fx_finish(&f);
}

static void
test_asker_stops(void)
{
	struct fx f;

	atomic_store(&requests_seen, 0);
	fx_start(&f, 2);
	tr_pid silent = fx_spawn(&f, &silent_def, NULL);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	struct go g;
	memset(&g, 0, sizeof(g));
	g.target = silent;
	g.timeout_ms = 600000;
	g.n = 50;
	g.mode = MODE_TALLY;
	g.stop_after = 1;
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	/* The 50 proxies and the asker go; the probe and the target stay,
	 * long before any timeout. */
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 2, WAIT_MS));
	CHECK(WAIT_UNTIL(atomic_load(&requests_seen) == 50, WAIT_MS));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.actors_spawned - m.actors_stopped, 2);
	CHECK(fx_recv_none(&f, 100));
	fx_finish(&f);
}

static void
test_full_asker_mailbox(void)
{
	struct fx f;
	struct report r;

	fx_start(&f, 2);
	tr_pid echo = fx_spawn(&f, &echo_def, NULL);
	tr_pid asker = fx_spawn(&f, &tight_asker_def, NULL);
	struct go g;
	memset(&g, 0, sizeof(g));
	g.target = echo;
	g.timeout_ms = 60000;
	g.n = 20;
	g.mode = MODE_TALLY;
	g.until_full = 1;
	SEND(&f, asker, MSG_GO, &g, sizeof(g));
	CHECK(fx_recv(&f, MSG_REPORT, &r, sizeof(r)));
	CHECK_EQ_U64(r.results, 20);
	CHECK_EQ_U64(r.ok, 20);
	CHECK_EQ_U64(r.dup + r.unknown + r.bad + r.other, 0);
	/* The results really were refused at first. */
	CHECK(fx_metrics(&f).mailbox_full > 0);
	CHECK(fx_recv_none(&f, 100));
	fx_finish(&f);
}

static void
test_sync(void)
{
	struct fx f;
	tr_ask_result res;

	fx_start(&f, 2);
	tr_pid echo = fx_spawn(&f, &echo_def, NULL);
	tr_pid silent = fx_spawn(&f, &silent_def, NULL);

	CHECK_OK(tr_ask_sync(f.rt, echo, MSG_PING, "hi", 2, NEVER_MS, &res));
	CHECK_OK(res.status);
	CHECK(res.id != 0);
	CHECK_EQ_U64(res.type, MSG_PONG);
	CHECK(tr_pid_eq(res.from, echo));
	CHECK_EQ_U64(res.size, 2);
	CHECK(res.data != NULL && memcmp(res.data, "ij", 2) == 0);
	tr_ask_result_fini(&res);
	CHECK(res.data == NULL && res.owned == NULL);
	tr_ask_result_fini(&res); /* twice: harmless */
	tr_ask_result_fini(NULL);

	uint64_t t0 = harness_now_ms();
	CHECK_ERR(tr_ask_sync(f.rt, silent, MSG_PING, NULL, 0, 50, &res),
		  TR_ETIMEDOUT);
	uint64_t took = harness_now_ms() - t0;
	CHECK_ERR(res.status, TR_ETIMEDOUT);
	/* Not early (1 ms for the clocks' millisecond rounding). */
	CHECK(took >= 49);
	tr_ask_result_fini(&res);

	tr_pid stopper = fx_spawn(&f, &stopper_def, NULL);
	CHECK_ERR(tr_ask_sync(f.rt, stopper, MSG_PING, NULL, 0, NEVER_MS,
			      &res),
		  TR_ENOENT);
	CHECK_ERR(res.status, TR_ENOENT);
	/* Now a stale pid. */
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 3, WAIT_MS));
	CHECK_ERR(tr_ask_sync(f.rt, stopper, MSG_PING, NULL, 0, NEVER_MS,
			      &res),
		  TR_ENOENT);

	CHECK_ERR(tr_ask_sync(NULL, echo, MSG_PING, NULL, 0, 10, &res),
		  TR_EINVAL);
	CHECK_ERR(tr_ask_sync(f.rt, echo, MSG_PING, NULL, 0, 10, NULL),
		  TR_EINVAL);
	CHECK_ERR(tr_ask_sync(f.rt, TR_PID_NONE, MSG_PING, NULL, 0, 10, &res),
		  TR_EINVAL);
	CHECK_ERR(tr_ask_sync(f.rt, echo, MSG_PING, NULL, 0, 0, &res),
		  TR_EINVAL);
	CHECK_ERR(tr_ask_sync(f.rt, echo, MSG_PING, NULL, 1, 10, &res),
		  TR_EINVAL);
	CHECK_ERR(tr_ask_sync(f.rt, echo, TR_MSG_DOWN, NULL, 0, 10, &res),
		  TR_EINVAL);
	/* Only the probe and the two targets are left: no proxy, no inbox. */
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 3, WAIT_MS));
	fx_finish(&f);
}

static void
test_bad_input(void)
{
	struct fx f;
	struct bad b;
	tr_ask_result res;
	unsigned char junk[64];

	fx_start(&f, 1);
	tr_pid asker = fx_spawn(&f, &asker_def, NULL);
	SEND(&f, asker, MSG_BAD, NULL, 0);
	CHECK(fx_recv(&f, MSG_BAD, &b, sizeof(b)));
	CHECK_ERR(b.err[0], TR_EINVAL);
	CHECK_ERR(b.err[1], TR_EINVAL);
	CHECK_ERR(b.err[2], TR_EINVAL);
	CHECK_ERR(b.err[3], TR_EINVAL);
	CHECK_ERR(b.err[4], TR_EINVAL);
	CHECK_OK(b.err[5]);
	/* No proxy was started, so no result comes. */
	CHECK(fx_recv_none(&f, 100));
	CHECK_EQ_U64(fx_metrics(&f).actors_alive, 2);

	/* Payloads that are not results. */
	memset(junk, 0xAB, sizeof(junk));
	CHECK_ERR(tr_ask_result_parse(NULL, 0, &res), TR_EINVAL);
	CHECK_ERR(tr_ask_result_parse(junk, 3, &res), TR_EINVAL);
	CHECK_ERR(tr_ask_result_parse(junk, sizeof(junk), &res), TR_EINVAL);
	CHECK_ERR(tr_ask_result_parse(junk, sizeof(junk), NULL), TR_EINVAL);
	CHECK(res.data == NULL && res.size == 0);
	fx_finish(&f);
}

/* tr_ask_reply() needs a sender to answer. */
static void
noreply_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING) {
		int32_t err = tr_ask_reply(cx, MSG_PONG, NULL, 0);
		tr_pid probe;

		memcpy(&probe, m->data, sizeof(probe));
		(void)tr_send(cx, probe, MSG_REPORT, &err, sizeof(err));
	}
}

static const tr_actor_def noreply_def = {
	.size = sizeof(tr_actor_def),
	.name = "noreply",
	.handle = noreply_handle,
};

static void
test_reply_without_sender(void)
{
	struct fx f;
	int32_t err = 0;

	fx_start(&f, 1);
	tr_pid a = fx_spawn(&f, &noreply_def, NULL);
	CHECK_OK(tr_runtime_send(f.rt, a, MSG_PING, &f.probe, sizeof(f.probe)));
	CHECK(fx_recv(&f, MSG_REPORT, &err, sizeof(err)));
	CHECK_ERR(err, TR_EINVAL);
	CHECK_ERR(tr_ask_reply(NULL, MSG_PONG, NULL, 0), TR_EINVAL);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "ask: a reply is one OK result with its bytes", test_reply },
	{ "ask: no reply is one timeout", test_timeout },
	{ "ask: a target that stops is ENOENT at once", test_target_stops },
	{ "ask: an unknown target is ENOENT", test_unknown_target },
	{ "ask: replies around the timeout give exactly one result",
	  test_replies_around_the_timeout },
	{ "ask: 1000 concurrent asks from 10 actors", test_thousand_concurrent },
	{ "ask: an asker that stops takes its proxies", test_asker_stops },
	{ "ask: a full asker mailbox delays, never loses",
	  test_full_asker_mailbox },
	{ "ask: tr_ask_sync from a plain thread", test_sync },
	{ "ask: bad input is refused", test_bad_input },
	{ "ask: tr_ask_reply needs a sender", test_reply_without_sender },
	{ NULL, NULL },
};

TEST_MAIN(tests)
