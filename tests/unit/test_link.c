/*
 * Public-API tests of links, monitors and exit signals: propagation of
 * error reasons, TR_EXIT_NORMAL not propagating, trap_exit, the
 * untrappable TR_EXIT_KILL, unlink, chains of links, monitors (one down
 * per monitor, with its ref), demonitor, and TR_EXIT_NOPROC for dead pids.
 *
 * The probe is an inbox and cannot link or monitor, so a "mon" actor
 * monitors for it and forwards TR_MSG_DOWN, and "linker" actors link and
 * forward the TR_MSG_EXIT they trap. Handlers never call CHECK.
 */
#include <troupe/troupe.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/* Deadlines, generous so that the suite also passes under ThreadSanitizer
 * on a loaded machine: reaching one is a failure. */
#define REPLY_MS 30000
#define IDLE_MS  30000

enum {
	MSG_PING = 1, /* reply MSG_PONG (payload: own pid) */
	MSG_PONG,
	MSG_RESULT,   /* payload int32_t */
	MSG_L_LINK,   /* struct cmd: tr_link(who); reply MSG_RESULT */
	MSG_L_UNLINK, /* struct cmd: tr_unlink(who); reply MSG_RESULT */
	MSG_L_TRAP,   /* struct cmd: tr_trap_exit(on); reply MSG_RESULT */
	MSG_L_STOP,   /* struct cmd: tr_stop_self(reason); no reply */
	MSG_L_EXIT,   /* struct cmd: tr_exit(who, reason); reply MSG_RESULT */
	MSG_EXIT_FWD, /* struct exit_fwd */
	MSG_WATCH,    /* mon: struct cmd; reply MSG_WATCHING */
	MSG_WATCHING,
	MSG_UNWATCH,    /* mon: tr_ref ref; reply MSG_RESULT */
	MSG_DOWN_FWD,   /* mon: tr_down */
	MSG_DEMON_RACE, /* mon: struct cmd; see test_demonitor_queued_down */
	MSG_L_HOLD,     /* linker: stay busy until race_go is set */
};

struct cmd {
	tr_pid who;
	int32_t reason;
	int32_t on;
};

struct exit_fwd {
	tr_pid by;   /* the linker that trapped it */
	tr_pid from; /* tr_exit_signal.from */
	int32_t reason;
	int32_t size_ok;
};

struct watching {
	tr_ref ref;
	int32_t err;
};

/* ---- fixture ---------------------------------------------------------- */

/* Messages that may arrive in any order (they come from different actors). */
struct got {
	int nres, ndown, nexit, npong;
	int32_t res[8];
	tr_down down[8];
	struct exit_fwd exit[8];
	tr_pid pong[8];
};

static bool
collect(struct fx *f, int n, struct got *g)
{
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < n; i++) {
		tr_received r;
		bool ok = false;
		memset(&r, 0, sizeof(r));
		int err = tr_inbox_recv(f->ib, NULL, REPLY_MS, &r);
		if (err != TR_OK) {
			fprintf(stderr, "  probe: message %d of %d: %s\n",
				i + 1, n, tr_err_name(err));
			return false;
		}
		if (r.type == MSG_RESULT && r.size == sizeof(int32_t) &&
		    g->nres < 8) {
			memcpy(&g->res[g->nres++], r.data, r.size);
			ok = true;
		} else if (r.type == MSG_DOWN_FWD &&
			   r.size == sizeof(tr_down) && g->ndown < 8) {
			memcpy(&g->down[g->ndown++], r.data, r.size);
			ok = true;
		} else if (r.type == MSG_EXIT_FWD &&
			   r.size == sizeof(struct exit_fwd) && g->nexit < 8) {
			memcpy(&g->exit[g->nexit++], r.data, r.size);
			ok = true;
		} else if (r.type == MSG_PONG && r.size == sizeof(tr_pid) &&
			   g->npong < 8) {
			memcpy(&g->pong[g->npong++], r.data, r.size);
			ok = true;
		}
		if (!ok) {
			fprintf(stderr,
				"  probe: unexpected type %u size %zu\n",
				r.type, r.size);
		}
		tr_received_fini(&r);
		if (!ok) {
			return false;
		}
	}
	return true;
}

static const tr_down *
find_down(const struct got *g, tr_pid who)
{
	for (int i = 0; i < g->ndown; i++) {
		if (tr_pid_eq(g->down[i].who, who)) {
			return &g->down[i];
		}
	}
	fprintf(stderr, "  no TR_MSG_DOWN for that actor\n");
	return NULL;
}

/* ---- actors ------------------------------------------------------------ */

static void
reply_i32(tr_ctx *cx, tr_pid to, int32_t v)
{
	(void)tr_send(cx, to, MSG_RESULT, &v, sizeof(v));
}

static atomic_int lk_teardowns;
static atomic_int race_ready;
static atomic_int race_go;
static atomic_int holding;

static uint64_t now_ns(void);

struct lk {
	tr_pid probe;
};

static void
lk_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct lk *s = state;
	struct cmd c;

	memset(&c, 0, sizeof(c));
	if (m->type >= MSG_L_LINK && m->type <= MSG_L_EXIT) {
		s->probe = tr_sender(cx);
		if (!payload(m, &c, sizeof(c))) {
			reply_i32(cx, s->probe, -100);
			return;
		}
	}
	switch (m->type) {
	case MSG_PING: {
		tr_pid self = tr_self(cx);
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, &self, sizeof(self));
		break;
	}
	case MSG_L_LINK:
		reply_i32(cx, s->probe, tr_link(cx, c.who));
		break;
	case MSG_L_UNLINK:
		reply_i32(cx, s->probe, tr_unlink(cx, c.who));
		break;
	case MSG_L_TRAP:
		tr_trap_exit(cx, c.on != 0);
		reply_i32(cx, s->probe, TR_OK);
		break;
	case MSG_L_STOP:
		tr_stop_self(cx, c.reason);
		break;
	case MSG_L_EXIT:
		reply_i32(cx, s->probe, tr_exit(cx, c.who, c.reason));
		break;
	case MSG_L_HOLD: {
		uint64_t deadline = now_ns() + (uint64_t)REPLY_MS * 1000000u;
		atomic_store(&holding, 1);
		while (!atomic_load(&race_go) && now_ns() < deadline) {
			harness_nap_us(100);
		}
		break;
	}
	case TR_MSG_EXIT: {
		struct exit_fwd e;
		tr_exit_signal sig;
		memset(&e, 0, sizeof(e));
		memset(&sig, 0, sizeof(sig));
		e.by = tr_self(cx);
		e.size_ok = payload(m, &sig, sizeof(sig));
		e.from = sig.from;
		e.reason = sig.reason;
		(void)tr_send(cx, s->probe, MSG_EXIT_FWD, &e, sizeof(e));
		break;
	}
	default:
		break;
	}
}

static void
lk_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	(void)cx;
	(void)state;
	(void)reason;
	atomic_fetch_add(&lk_teardowns, 1);
}

static const tr_actor_def lk_def = {
	.size = sizeof(tr_actor_def),
	.name = "linker",
	.state_size = sizeof(struct lk),
	.teardown = lk_teardown,
	.handle = lk_handle,
};

struct mon {
	tr_pid probe;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
mon_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct mon *s = state;
	struct cmd c;
	struct watching w;
	tr_ref ref = { 0 };

	memset(&c, 0, sizeof(c));
	memset(&w, 0, sizeof(w));
	switch (m->type) {
	case MSG_WATCH:
		s->probe = tr_sender(cx);
		w.err = payload(m, &c, sizeof(c))
				? tr_monitor(cx, c.who, &w.ref)
				: -100;
		(void)tr_send(cx, s->probe, MSG_WATCHING, &w, sizeof(w));
		break;
	case MSG_UNWATCH:
		s->probe = tr_sender(cx);
		reply_i32(cx, s->probe,
			  payload(m, &ref, sizeof(ref)) ? tr_demonitor(cx, ref)
							: -100);
		break;
	case MSG_DEMON_RACE: {
		/*
		 * Monitor, tell the test it may stop the target now, and keep
		 * this handler busy until the target has stopped: a stopping
		 * actor sends its TR_MSG_DOWN before it is counted in
		 * actors_stopped, so the down is queued here by then. Then
		 * demonitor: that queued TR_MSG_DOWN must not be delivered.
		 * Reaching the deadline first is reported as -200.
		 */
		s->probe = tr_sender(cx);
		if (!payload(m, &c, sizeof(c))) {
			reply_i32(cx, s->probe, -100);
			break;
		}
		tr_runtime *rt = tr_ctx_runtime(cx);
		tr_metrics mt = { .size = sizeof(mt) };
		(void)tr_runtime_metrics(rt, &mt);
		uint64_t stopped0 = mt.actors_stopped;
		int err = tr_monitor(cx, c.who, &ref);
		atomic_store(&race_ready, 1);
		uint64_t deadline = now_ns() + (uint64_t)REPLY_MS * 1000000u;
		bool stopped = false;
		while (!stopped && now_ns() < deadline) {
			harness_nap_us(100);
			(void)tr_runtime_metrics(rt, &mt);
			stopped = mt.actors_stopped > stopped0;
		}
		if (err == TR_OK) {
			err = tr_demonitor(cx, ref);
		}
		reply_i32(cx, s->probe, stopped ? err : -200);
		break;
	}
	case TR_MSG_DOWN:
		(void)tr_send(cx, s->probe, MSG_DOWN_FWD, m->data, m->size);
		break;
	default:
		break;
	}
}

static const tr_actor_def mon_def = {
	.size = sizeof(tr_actor_def),
	.name = "mon",
	.state_size = sizeof(struct mon),
	.handle = mon_handle,
};

/* ---- test helpers ----------------------------------------------------- */

static int32_t
cmd(struct fx *f, tr_pid to, uint32_t type, tr_pid who, int32_t arg)
{
	struct cmd c = { who, arg, arg };
	int32_t r = -1000;

	SEND(f, to, type, &c, sizeof(c));
	CHECK(fx_recv(f, MSG_RESULT, &r, sizeof(r)));
	return r;
}

static void
stop_cmd(struct fx *f, tr_pid to, int32_t reason)
{
	struct cmd c = { TR_PID_NONE, reason, 0 };

	SEND(f, to, MSG_L_STOP, &c, sizeof(c));
}

static tr_ref
watch(struct fx *f, tr_pid mon, tr_pid who)
{
	struct cmd c = { who, 0, 0 };
	struct watching w = { { 0 }, -1000 };

	SEND(f, mon, MSG_WATCH, &c, sizeof(c));
	CHECK(fx_recv(f, MSG_WATCHING, &w, sizeof(w)));
	CHECK_OK(w.err);
	return w.ref;
}

static void
expect_down(struct fx *f, tr_pid who, tr_ref ref, int32_t reason)
{
	tr_down d;

	memset(&d, 0, sizeof(d));
	CHECK(fx_recv(f, MSG_DOWN_FWD, &d, sizeof(d)));
	CHECK(tr_pid_eq(d.who, who));
	CHECK_EQ_U64(d.ref.v, ref.v);
	CHECK_EQ_INT(d.reason, reason);
}

static void
check_down(const struct got *g, tr_pid who, tr_ref ref, int32_t reason)
{
	const tr_down *d = find_down(g, who);

	CHECK(d != NULL);
	if (d != NULL) {
		CHECK_EQ_U64(d->ref.v, ref.v);
		CHECK_EQ_INT(d->reason, reason);
	}
}

/* The actor answers a ping: it is alive. */
static void
expect_alive(struct fx *f, tr_pid p)
{
	tr_pid got = TR_PID_NONE;

	SEND(f, p, MSG_PING, NULL, 0);
	CHECK(fx_recv(f, MSG_PONG, &got, sizeof(got)));
	CHECK(tr_pid_eq(got, p));
}

/* Everything settled and nothing else reached the probe: once the runtime
 * is idle, anything sent to the probe is already in its queue. */
static void
expect_quiet(struct fx *f)
{
	CHECK_OK(tr_runtime_wait_idle(f->rt, IDLE_MS));
	CHECK(fx_recv_none(f, 20));
}

/* ---- tests ------------------------------------------------------------- */

static void
link_then_stop(int from_outside)
{
	struct fx f;
	struct got g;
	int32_t reason = from_outside ? TR_EXIT_USER + 1 : TR_EXIT_ERROR;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref ra = watch(&f, mon, a);
	tr_ref rb = watch(&f, mon, b);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	if (from_outside) {
		/* b took the link first: a stop from outside overtakes what
		 * is queued, though a link queued ahead of it sees its
		 * reason too (test_stop_overtakes_in_order). */
		CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
		CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), b, reason));
	} else {
		stop_cmd(&f, b, reason);
	}
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.ndown, 2);
	check_down(&g, b, rb, reason);
	check_down(&g, a, ra, reason);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_link_error_propagates(void)
{
	link_then_stop(0);
}

static void
test_link_stop_from_outside_propagates(void)
{
	link_then_stop(1);
}

static void
test_link_normal_does_not_propagate(void)
{
	struct fx f;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref rb = watch(&f, mon, b);
	(void)watch(&f, mon, a);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	stop_cmd(&f, b, TR_EXIT_NORMAL);
	expect_down(&f, b, rb, TR_EXIT_NORMAL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	expect_alive(&f, a);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_trap_exit(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref rb = watch(&f, mon, b);
	(void)watch(&f, mon, a);
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 1));
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	stop_cmd(&f, b, TR_EXIT_USER + 1);
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.ndown, 1);
	CHECK_EQ_INT(g.nexit, 1);
	check_down(&g, b, rb, TR_EXIT_USER + 1);
	CHECK(tr_pid_eq(g.exit[0].by, a));
	CHECK(tr_pid_eq(g.exit[0].from, b));
	CHECK_EQ_INT(g.exit[0].reason, TR_EXIT_USER + 1);
	CHECK_EQ_INT(g.exit[0].size_ok, 1);
	expect_alive(&f, a);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_kill_is_not_trappable(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_pid c = fx_spawn(&f, &lk_def, NULL);
	tr_ref ra = watch(&f, mon, a);
	(void)watch(&f, mon, c);
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 1));
	CHECK_OK(cmd(&f, c, MSG_L_TRAP, TR_PID_NONE, 1));
	CHECK_OK(cmd(&f, c, MSG_L_LINK, a, 0));
	/* b sends a trapping a the kill signal: a stops anyway, and its
	 * link c (also trapping) sees TR_EXIT_KILLED. */
	struct cmd k = { a, TR_EXIT_KILL, 0 };
	SEND(&f, b, MSG_L_EXIT, &k, sizeof(k));
	CHECK(collect(&f, 3, &g));
	CHECK_EQ_INT(g.nres, 1);
	CHECK_OK(g.res[0]);
	CHECK_EQ_INT(g.ndown, 1);
	check_down(&g, a, ra, TR_EXIT_KILLED);
	CHECK_EQ_INT(g.nexit, 1);
	CHECK(tr_pid_eq(g.exit[0].by, c));
	CHECK(tr_pid_eq(g.exit[0].from, a));
	CHECK_EQ_INT(g.exit[0].reason, TR_EXIT_KILLED);
	expect_alive(&f, c);
	expect_alive(&f, b);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_exit_signal(void)
{
	struct fx f;
	struct got g;
	struct cmd c;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref ra = watch(&f, mon, a);

	/* Not trapping: TR_EXIT_NORMAL is ignored. */
	CHECK_OK(cmd(&f, b, MSG_L_EXIT, a, TR_EXIT_NORMAL));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	expect_alive(&f, a);

	/* Trapping: both arrive as TR_MSG_EXIT from b. */
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 1));
	int32_t reasons[2] = { TR_EXIT_NORMAL, TR_EXIT_USER + 5 };
	for (int i = 0; i < 2; i++) {
		c = (struct cmd){ a, reasons[i], 0 };
		SEND(&f, b, MSG_L_EXIT, &c, sizeof(c));
		CHECK(collect(&f, 2, &g));
		CHECK_EQ_INT(g.nres, 1);
		CHECK_OK(g.res[0]);
		CHECK_EQ_INT(g.nexit, 1);
		CHECK(tr_pid_eq(g.exit[0].from, b));
		CHECK_EQ_INT(g.exit[0].reason, reasons[i]);
	}
	expect_alive(&f, a);

	/* Not trapping any more: an error reason stops it. */
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 0));
	c = (struct cmd){ a, TR_EXIT_USER + 6, 0 };
	SEND(&f, b, MSG_L_EXIT, &c, sizeof(c));
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.nres, 1);
	CHECK_OK(g.res[0]);
	check_down(&g, a, ra, TR_EXIT_USER + 6);
	expect_quiet(&f);
	fx_finish(&f);
}

/* tr_exit() does not undo a link: the sender's later death still
 * reaches the receiver (Erlang's exit/2 keeps links too). */
static void
test_exit_keeps_link(void)
{
	struct fx f;
	struct got g;
	struct cmd c;

	fx_start(&f, 2);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	CHECK_OK(cmd(&f, b, MSG_L_TRAP, TR_PID_NONE, 1));
	c = (struct cmd){ b, TR_EXIT_USER + 1, 0 };
	SEND(&f, a, MSG_L_EXIT, &c, sizeof(c));
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.nres, 1);
	CHECK_EQ_INT(g.nexit, 1);
	CHECK(tr_pid_eq(g.exit[0].from, a));
	CHECK_EQ_INT(g.exit[0].reason, TR_EXIT_USER + 1);
	/* Now a stops: the link still fires. */
	c = (struct cmd){ TR_PID_NONE, TR_EXIT_USER + 2, 0 };
	SEND(&f, a, MSG_L_STOP, &c, sizeof(c));
	CHECK(collect(&f, 1, &g));
	CHECK_EQ_INT(g.nexit, 1);
	CHECK(tr_pid_eq(g.exit[0].from, a));
	CHECK_EQ_INT(g.exit[0].reason, TR_EXIT_USER + 2);
	expect_alive(&f, b);
	expect_quiet(&f);
	fx_finish(&f);
}

/* mode 0: unlink from a; 1: unlink from b; 2: link twice, unlink once. */
static void
unlink_case(int mode)
{
	struct fx f;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref rb = watch(&f, mon, b);
	(void)watch(&f, mon, a);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	if (mode == 2) {
		CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	}
	if (mode == 1) {
		CHECK_OK(cmd(&f, b, MSG_L_UNLINK, a, 0));
	} else {
		CHECK_OK(cmd(&f, a, MSG_L_UNLINK, b, 0));
	}
	stop_cmd(&f, b, TR_EXIT_ERROR);
	expect_down(&f, b, rb, TR_EXIT_ERROR);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	expect_alive(&f, a);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_unlink(void)
{
	unlink_case(0);
}

static void
test_unlink_other_side(void)
{
	unlink_case(1);
}

static void
test_link_twice_is_one_link(void)
{
	unlink_case(2);
}

static void
test_link_chain(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 4);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_pid c = fx_spawn(&f, &lk_def, NULL);
	tr_pid d = fx_spawn(&f, &lk_def, NULL); /* not linked: must survive */
	tr_ref ra = watch(&f, mon, a);
	tr_ref rb = watch(&f, mon, b);
	tr_ref rc = watch(&f, mon, c);
	(void)watch(&f, mon, d);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	CHECK_OK(cmd(&f, b, MSG_L_LINK, c, 0));
	stop_cmd(&f, c, TR_EXIT_ERROR);
	CHECK(collect(&f, 3, &g));
	CHECK_EQ_INT(g.ndown, 3);
	check_down(&g, a, ra, TR_EXIT_ERROR);
	check_down(&g, b, rb, TR_EXIT_ERROR);
	check_down(&g, c, rc, TR_EXIT_ERROR);
	expect_alive(&f, d);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_monitor_one_down_per_monitor(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_ref r1 = watch(&f, mon, b);
	tr_ref r2 = watch(&f, mon, b);
	CHECK(r1.v != r2.v);
	stop_cmd(&f, b, TR_EXIT_USER + 9);
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.ndown, 2);
	int seen1 = 0, seen2 = 0;
	for (int i = 0; i < g.ndown; i++) {
		CHECK(tr_pid_eq(g.down[i].who, b));
		CHECK_EQ_INT(g.down[i].reason, TR_EXIT_USER + 9);
		seen1 += g.down[i].ref.v == r1.v;
		seen2 += g.down[i].ref.v == r2.v;
	}
	CHECK_EQ_INT(seen1, 1);
	CHECK_EQ_INT(seen2, 1);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_monitor_inbox(void)
{
	struct fx f;
	tr_inbox *other = NULL;
	tr_down d;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	CHECK_OK(tr_inbox_create(f.rt, &other));
	tr_pid op = tr_self(tr_inbox_ctx(other));
	tr_ref ref = watch(&f, mon, op);
	tr_inbox_destroy(other);
	/* An inbox is an actor: destroying it is seen by its monitors. */
	memset(&d, 0, sizeof(d));
	CHECK(fx_recv(&f, MSG_DOWN_FWD, &d, sizeof(d)));
	CHECK(tr_pid_eq(d.who, op));
	CHECK_EQ_U64(d.ref.v, ref.v);
	fx_finish(&f);
}

static int32_t
unwatch(struct fx *f, tr_pid mon, tr_ref ref)
{
	int32_t r = -1000;

	SEND(f, mon, MSG_UNWATCH, &ref, sizeof(ref));
	CHECK(fx_recv(f, MSG_RESULT, &r, sizeof(r)));
	return r;
}

static void
test_demonitor(void)
{
	struct fx f;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	tr_pid c = fx_spawn(&f, &lk_def, NULL);
	tr_ref ref = watch(&f, mon, b);
	tr_ref rc = watch(&f, mon, c);
	CHECK_OK(unwatch(&f, mon, ref));
	CHECK_ERR(unwatch(&f, mon, ref), TR_ENOENT);
	CHECK_ERR(unwatch(&f, mon, (tr_ref){ ref.v + rc.v + 12345 }),
		  TR_ENOENT);
	stop_cmd(&f, b, TR_EXIT_ERROR);
	/* The other monitor still works, and only it fires. */
	stop_cmd(&f, c, TR_EXIT_ERROR);
	expect_down(&f, c, rc, TR_EXIT_ERROR);
	expect_quiet(&f);
	fx_finish(&f);
}

/*
 * The TR_MSG_DOWN reaches mon's mailbox while mon is still in the handler
 * that then demonitors. b holds a worker while mon's monitor request is
 * queued to it, so b is never waiting in a run queue behind busy mon.
 */
static void
test_demonitor_queued_down(void)
{
	struct fx f;
	struct cmd c;
	int32_t r = -1000;

	atomic_store(&race_ready, 0);
	atomic_store(&race_go, 0);
	atomic_store(&holding, 0);
	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	c = (struct cmd){ b, 0, 0 };
	SEND(&f, b, MSG_L_HOLD, &c, sizeof(c));
	WAIT_UNTIL(atomic_load(&holding) == 1, REPLY_MS);
	SEND(&f, mon, MSG_DEMON_RACE, &c, sizeof(c));
	WAIT_UNTIL(atomic_load(&race_ready) == 1, REPLY_MS);
	atomic_store(&race_go, 1);
	/* b answers a ping queued after mon's monitor request: it took the
	 * monitor before the stop, which would overtake it. */
	expect_alive(&f, b);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), b, TR_EXIT_ERROR));
	/* OK: b stopped while mon was still busy, and the demonitor of
	 * the queued down succeeded. */
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_OK(r);
	/* After the idle wait a forwarded down would be in the inbox. */
	expect_quiet(&f);
	fx_finish(&f);
}

/*
 * A stop from outside overtakes b's queue, but the signals queued ahead of
 * it keep their place among signals: a monitor and a link that reached b
 * before the stop see the stop's reason, as they would had the stop waited
 * its turn; a monitor that came after the stop finds b gone (noproc), as
 * in Erlang, where a process handles the signals it receives in order.
 */
static void
test_stop_overtakes_in_order(void)
{
	struct fx f;
	struct got g;
	struct cmd c;
	int32_t reason = TR_EXIT_USER + 5;

	atomic_store(&race_go, 0);
	atomic_store(&holding, 0);
	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	tr_pid b = fx_spawn(&f, &lk_def, NULL);
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 1));
	c = (struct cmd){ b, 0, 0 };
	SEND(&f, b, MSG_L_HOLD, &c, sizeof(c));
	WAIT_UNTIL(atomic_load(&holding) == 1, REPLY_MS);
	/* While b holds its worker: a monitor and a link queue up, */
	tr_ref before = watch(&f, mon, b);
	CHECK_OK(cmd(&f, a, MSG_L_LINK, b, 0));
	/* then the stop, then a monitor behind it. */
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), b, reason));
	tr_ref after = watch(&f, mon, b);
	atomic_store(&race_go, 1);
	CHECK(collect(&f, 3, &g));
	CHECK_EQ_INT(g.ndown, 2);
	CHECK_EQ_INT(g.nexit, 1);
	int seen = 0;
	for (int i = 0; i < g.ndown; i++) {
		CHECK(tr_pid_eq(g.down[i].who, b));
		if (g.down[i].ref.v == before.v) {
			CHECK_EQ_INT(g.down[i].reason, reason);
			seen |= 1;
		} else if (g.down[i].ref.v == after.v) {
			CHECK_EQ_INT(g.down[i].reason, TR_EXIT_NOPROC);
			seen |= 2;
		}
	}
	CHECK_EQ_INT(seen, 3);
	CHECK(tr_pid_eq(g.exit[0].by, a));
	CHECK(tr_pid_eq(g.exit[0].from, b));
	CHECK_EQ_INT(g.exit[0].reason, reason);
	expect_quiet(&f);
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	fx_finish(&f);
}

static void
test_noproc(void)
{
	struct fx f;
	struct got g;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid dead = fx_spawn(&f, &lk_def, NULL);
	tr_ref rd = watch(&f, mon, dead);
	stop_cmd(&f, dead, TR_EXIT_NORMAL);
	expect_down(&f, dead, rd, TR_EXIT_NORMAL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));

	/* Monitoring a dead pid: one TR_MSG_DOWN with TR_EXIT_NOPROC. */
	tr_ref r2 = watch(&f, mon, dead);
	expect_down(&f, dead, r2, TR_EXIT_NOPROC);
	/* That monitor is over: nothing left to cancel. */
	CHECK_ERR(unwatch(&f, mon, r2), TR_ENOENT);

	/* Linking a dead pid while trapping: TR_MSG_EXIT with NOPROC. */
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	CHECK_OK(cmd(&f, a, MSG_L_TRAP, TR_PID_NONE, 1));
	struct cmd c = { dead, 0, 0 };
	SEND(&f, a, MSG_L_LINK, &c, sizeof(c));
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.nres, 1);
	CHECK_OK(g.res[0]);
	CHECK_EQ_INT(g.nexit, 1);
	CHECK(tr_pid_eq(g.exit[0].from, dead));
	CHECK_EQ_INT(g.exit[0].reason, TR_EXIT_NOPROC);
	expect_alive(&f, a);

	/* Not trapping: the NOPROC exit signal stops the linker. */
	tr_pid a2 = fx_spawn(&f, &lk_def, NULL);
	tr_ref ra2 = watch(&f, mon, a2);
	SEND(&f, a2, MSG_L_LINK, &c, sizeof(c));
	CHECK(collect(&f, 2, &g));
	CHECK_EQ_INT(g.nres, 1);
	CHECK_OK(g.res[0]);
	check_down(&g, a2, ra2, TR_EXIT_NOPROC);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_misuse(void)
{
	struct fx f;
	struct cmd c;
	struct watching w;

	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid a = fx_spawn(&f, &lk_def, NULL);
	CHECK_ERR(cmd(&f, a, MSG_L_LINK, a, 0), TR_EINVAL);
	CHECK_ERR(cmd(&f, a, MSG_L_LINK, TR_PID_NONE, 0), TR_EINVAL);
	CHECK_ERR(cmd(&f, a, MSG_L_EXIT, TR_PID_NONE, TR_EXIT_ERROR),
		  TR_EINVAL);
	CHECK_OK(cmd(&f, a, MSG_L_UNLINK, mon, 0)); /* no link: a no-op */
	c = (struct cmd){ TR_PID_NONE, 0, 0 };
	w = (struct watching){ { 0 }, -1000 };
	SEND(&f, mon, MSG_WATCH, &c, sizeof(c));
	CHECK(fx_recv(&f, MSG_WATCHING, &w, sizeof(w)));
	CHECK_ERR(w.err, TR_EINVAL);
	expect_alive(&f, a);
	expect_quiet(&f);
	fx_finish(&f);
}

static void
test_runtime_stop_with_links(void)
{
	struct fx f;
	enum { N = 40 };
	tr_pid p[N];

	atomic_store(&lk_teardowns, 0);
	fx_start(&f, 4);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	for (int i = 0; i < N; i++) {
		p[i] = fx_spawn(&f, &lk_def, NULL);
	}
	/* A ring of links, every other actor trapping, all monitored. */
	for (int i = 0; i < N; i++) {
		if (i % 2 == 0) {
			CHECK_OK(cmd(&f, p[i], MSG_L_TRAP, TR_PID_NONE, 1));
		}
		CHECK_OK(cmd(&f, p[i], MSG_L_LINK, p[(i + 1) % N], 0));
		(void)watch(&f, mon, p[i]);
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	/* Shutdown exit signals and downs cross between stopping actors. */
	tr_inbox_destroy(f.ib);
	tr_runtime_stop(f.rt);
	CHECK_OK(tr_runtime_join(f.rt));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_INT(atomic_load(&lk_teardowns), N);
	CHECK_EQ_U64(m.actors_alive, 0);
	CHECK_EQ_U64(m.actors_stopped, m.actors_spawned);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	tr_runtime_destroy(f.rt);
}

static const struct test_case tests[] = {
	{ "link: error reason propagates", test_link_error_propagates },
	{ "link: stop from outside with an error propagates",
	  test_link_stop_from_outside_propagates },
	{ "link: TR_EXIT_NORMAL does not propagate",
	  test_link_normal_does_not_propagate },
	{ "link: trap_exit turns the signal into TR_MSG_EXIT", test_trap_exit },
	{ "link: TR_EXIT_KILL is not trappable, links see KILLED",
	  test_kill_is_not_trappable },
	{ "link: tr_exit to trapping and non-trapping actors",
	  test_exit_signal },
	{ "link: tr_exit leaves the link in place", test_exit_keeps_link },
	{ "link: unlink prevents propagation", test_unlink },
	{ "link: unlink from the other side", test_unlink_other_side },
	{ "link: linking twice is one link", test_link_twice_is_one_link },
	{ "link: chain A-B-C propagates", test_link_chain },
	{ "monitor: one TR_MSG_DOWN per monitor with its ref",
	  test_monitor_one_down_per_monitor },
	{ "monitor: an inbox can be monitored", test_monitor_inbox },
	{ "monitor: demonitor suppresses the down", test_demonitor },
	{ "monitor: demonitor suppresses an already queued down",
	  test_demonitor_queued_down },
	{ "link: a stop overtakes the queue, signals ahead see its reason",
	  test_stop_overtakes_in_order },
	{ "monitor: dead pid gives TR_EXIT_NOPROC to monitor and link",
	  test_noproc },
	{ "link: misuse returns TR_EINVAL", test_misuse },
	{ "link: runtime stop with links and monitors between actors",
	  test_runtime_stop_with_links },
	{ NULL, NULL },
};

TEST_MAIN(tests)
