/*
 * The distribution hook (tr_remote_attach), tested with two runtimes in
 * one process joined by a loopback layer: what one runtime's `out` takes
 * goes straight to the other's `in`, each pid rewritten to the other
 * node's view (node 0 here is node 1 there). Covered: sends with their
 * sender, requests and replies, monitors, links, remote stop, a request
 * whose target stops, the outcomes of an unreachable node
 * (TR_EXIT_NOCONNECTION at once), pointer payloads refused, malformed
 * incoming operations refused, and the counts on both sides.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>
#include <troupe/remote.h>

#include "harness.h"
#include "fixture.h"
#include "runtime/pid.h"

/* ---- the loopback layer ---- */

struct side {
	struct fx f;
	tr_remote_hook hook;
	struct side *peer;
	_Atomic bool cut;      /* refuse everything, as a lost link */
	_Atomic unsigned busy; /* calls of loop_out under way */
	_Atomic unsigned refused;
	_Atomic uint64_t gate; /* tags every taken send with it (hold) */
};

/* @p in the other node's view: ours (node 0) is its node 1, and back. */
static tr_pid
flip(tr_pid p)
{
	if (tr_pid_is_none(p)) {
		return p;
	}
	uint32_t node = tr_pid_node(p) == 0 ? 1 : 0;
	return (tr_pid){ tr__pid_make(node, tr_pid_generation(p),
				      tr_pid_slot(p)) };
}

/* Our view of a pid of the other node. */
static tr_pid
remote(tr_pid local_there)
{
	return flip(local_there);
}

static tr_err
loop_out(void *arg, tr_remote_op *op)
{
	struct side *s = arg;

	/* busy before cut (both seq_cst): once the finish saw busy at 0
	 * after it set cut, no call reaches the peer any more. */
	atomic_fetch_add(&s->busy, 1);
	if (atomic_load(&s->cut) || tr_pid_node(op->to) != 1) {
		atomic_fetch_add(&s->refused, 1);
		atomic_fetch_sub(&s->busy, 1);
		return TR_EUNREACH;
	}
	tr_remote_op in = *op;
	in.from = flip(op->from);
	in.to = flip(op->to);
	in.who = flip(op->who);
	tr_err err = s->peer->hook.in(s->peer->f.rt, &in);
	CHECK_OK(err);
	op->hold.v = atomic_load(&s->gate);
	atomic_fetch_sub(&s->busy, 1);
	return err;
}

static void
sides_start(struct side *a, struct side *b)
{
	struct side *s[2] = { a, b };

	for (int i = 0; i < 2; i++) {
		memset(s[i], 0, sizeof(*s[i]));
		fx_start(&s[i]->f, 2);
		s[i]->peer = s[1 - i];
		s[i]->hook.size = sizeof(s[i]->hook);
		s[i]->hook.out = loop_out;
		s[i]->hook.arg = s[i];
		CHECK_OK(tr_remote_attach(s[i]->f.rt, &s[i]->hook));
		CHECK(s[i]->hook.in != NULL);
	}
}

/* Both quiet, then every message on each node counted, and what one
 * node's layer took the other's got (plus @direct_in_b operations a test
 * handed to b's `in` itself). */
static void
sides_finish(struct side *a, struct side *b, uint64_t direct_in_b)
{
	CHECK_OK(tr_runtime_wait_idle(a->f.rt, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(b->f.rt, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(a->f.rt, FX_REPLY_MS));
	tr_metrics ma = fx_metrics(&a->f);
	tr_metrics mb = fx_metrics(&b->f);
	CHECK_EQ_U64(ma.msgs_remote_out + direct_in_b, mb.msgs_remote_in);
	CHECK_EQ_U64(mb.msgs_remote_out, ma.msgs_remote_in);
	/* The stops of the runtimes may still send DOWNs across: cut both
	 * first so each is a counted dead letter, and wait for calls under
	 * way, so that neither runtime is reached while it is destroyed. */
	atomic_store(&a->cut, true);
	atomic_store(&b->cut, true);
	CHECK(WAIT_UNTIL(atomic_load(&a->busy) == 0 &&
				 atomic_load(&b->busy) == 0,
			 FX_REPLY_MS));
	fx_finish(&a->f);
	fx_finish(&b->f);
}

/* ---- actors ---- */

enum {
	ECHO = 1, /* int: send n + 1 back to m->from; a request is replied */
	HOLD,     /* request: keep it, never answer */
	WATCH,    /* struct watch: monitor or link the pid, report to probe */
	WATCHED,  /* struct seen, watcher -> probe */
	TRY_LINK, /* tr_pid: link to it, report the error */
	LINK_ERR, /* int32_t */
	PTR_TO,   /* tr_pid: tr_send_ptr to it, report the error */
	PTR_ERR,  /* int32_t */
	PUSH,     /* struct push: send SINK to a pid, one per turn */
	NEXT,     /* pusher -> itself: the next turn */
	SINK,     /* counted by the sink */
};

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const int *n = TR_MSG_AS(m, int);

	if (m->type == HOLD) {
		return; /* the request stays open until this actor stops */
	}
	if (m->type != ECHO || n == NULL) {
		CHECK(false);
		return;
	}
	int v = *n + 1;
	if (m->flags & TR_MSG_F_REQUEST) {
		CHECK_OK(tr_reply(cx, m, ECHO, &v, sizeof(v)));
	} else {
		CHECK_OK(tr_send(cx, m->from, ECHO, &v, sizeof(v)));
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

struct watch {
	tr_pid who;
	bool link; /* link (trapping exits) instead of monitor */
};

struct seen {
	uint32_t type; /* TR_MSG_DOWN or TR_MSG_EXIT */
	int32_t reason;
	tr_pid who;
};

struct watcher {
	tr_pid probe;
};

static int
watcher_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	tr_trap_exit(cx, true);
	return 0;
}

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct watcher *w = state;

	switch (m->type) {
	case WATCH: {
		const struct watch *q = TR_MSG_AS(m, struct watch);
		tr_ref ref;
		CHECK(q != NULL);
		w->probe = m->from;
		if (q != NULL && q->link) {
			CHECK_OK(tr_link(cx, q->who));
		} else if (q != NULL) {
			CHECK_OK(tr_monitor(cx, q->who, &ref));
		}
		break;
	}
	case TR_MSG_DOWN: {
		const tr_down *d = TR_MSG_AS(m, tr_down);
		CHECK(d != NULL);
		struct seen s = { TR_MSG_DOWN, d->reason, d->who };
		CHECK_OK(tr_send(cx, w->probe, WATCHED, &s, sizeof(s)));
		break;
	}
	case TR_MSG_EXIT: {
		const tr_exit_signal *e = TR_MSG_AS(m, tr_exit_signal);
		CHECK(e != NULL);
		struct seen s = { TR_MSG_EXIT, e->reason, e->from };
		CHECK_OK(tr_send(cx, w->probe, WATCHED, &s, sizeof(s)));
		break;
	}
	case TRY_LINK: {
		const tr_pid *p = TR_MSG_AS(m, tr_pid);
		int32_t e = p != NULL ? tr_link(cx, *p) : TR_EINVAL;
		w->probe = m->from;
		CHECK_OK(tr_send(cx, m->from, LINK_ERR, &e, sizeof(e)));
		break;
	}
	case PTR_TO: {
		const tr_pid *p = TR_MSG_AS(m, tr_pid);
		int *v = malloc(sizeof(*v));
		int32_t e = p != NULL ? tr_send_ptr(cx, *p, ECHO, v, sizeof(*v),
						    free)
				      : TR_EINVAL;
		CHECK_OK(tr_send(cx, m->from, PTR_ERR, &e, sizeof(e)));
		break;
	}
	default:
		CHECK(false);
	}
}

static const tr_actor_def watcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "watcher",
	.state_size = sizeof(struct watcher),
	.init = watcher_init,
	.handle = watcher_handle,
};

static bool
recv_seen(struct fx *f, uint32_t type, int32_t reason, tr_pid who)
{
	struct seen s;

	memset(&s, 0, sizeof(s));
	if (!fx_recv(f, WATCHED, &s, sizeof(s))) {
		return false;
	}
	if (s.type != type || s.reason != reason || !tr_pid_eq(s.who, who)) {
		fprintf(stderr, "  seen type %x reason %d, want %x %d\n",
			s.type, s.reason, type, reason);
		return false;
	}
	return true;
}

/* A pusher sends one SINK per turn and posts itself the next turn. */
struct push {
	tr_pid to;
	int32_t left;
};

static _Atomic unsigned push_turns, sunk;

static void
pusher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct push *p = state;

	if (m->type == PUSH) {
		const struct push *q = TR_MSG_AS(m, struct push);
		CHECK(q != NULL);
		if (q == NULL) {
			return;
		}
		*p = *q;
	} else if (m->type != NEXT) {
		CHECK(false);
		return;
	}
	atomic_fetch_add(&push_turns, 1);
	CHECK_OK(tr_send(cx, p->to, SINK, NULL, 0));
	if (--p->left > 0) {
		CHECK_OK(tr_send(cx, tr_self(cx), NEXT, NULL, 0));
	}
}

static const tr_actor_def pusher_def = {
	.size = sizeof(tr_actor_def),
	.name = "pusher",
	.state_size = sizeof(struct push),
	.handle = pusher_handle,
};

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	CHECK_EQ_INT(m->type, SINK);
	atomic_fetch_add(&sunk, 1);
}

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.handle = sink_handle,
};

/* The layer's gate: sent nothing, so it never runs a turn. */
static void
gate_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	tr_unhandled(cx, m);
}

static const tr_actor_def gate_def = {
	.size = sizeof(tr_actor_def),
	.name = "gate",
	.handle = gate_handle,
};

/* ---- tests ---- */

/* A plain send carries its sender across, so the answer comes back. */
static void
test_send_and_answer(void)
{
	struct side a, b;

	sides_start(&a, &b);
	tr_pid e = fx_spawn(&b.f, &echo_def, NULL);
	int n = 41;
	CHECK_OK(tr_send(tr_inbox_ctx(a.f.ib), remote(e), ECHO, &n, sizeof(n)));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(a.f.ib, NULL, FX_REPLY_MS, &r));
	const int *v = TR_MSG_AS(&r, int);
	CHECK(r.type == ECHO && v != NULL && *v == 42);
	CHECK(tr_pid_eq(r.from, remote(e)));
	tr_received_fini(&r);
	sides_finish(&a, &b, 0);
}

/* A request across nodes: the reply under its reference; and a request
 * whose target stops while holding it fails with the target's reason. */
static void
test_request(void)
{
	struct side a, b;
	tr_ref ref;

	sides_start(&a, &b);
	tr_ctx *cx = tr_inbox_ctx(a.f.ib);
	tr_pid e = fx_spawn(&b.f, &echo_def, NULL);
	int n = 1, got = 0;
	CHECK_OK(tr_request(cx, remote(e), ECHO, &n, sizeof(n), 0, &ref));
	CHECK(fx_recv_ref(&a.f, ref, ECHO, remote(e), &got, sizeof(got)));
	CHECK_EQ_INT(got, 2);

	CHECK_OK(tr_request(cx, remote(e), HOLD, NULL, 0, 0, &ref));
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_stop(tr_inbox_ctx(b.f.ib), e, 66));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(a.f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == 66 && tr_pid_eq(fl->to, remote(e)));
	tr_received_fini(&r);
	sides_finish(&a, &b, 0);
}

/* Monitors, links and stops across nodes give what they give locally. */
static void
test_monitor_link_stop(void)
{
	struct side a, b;

	sides_start(&a, &b);
	tr_pid w = fx_spawn(&a.f, &watcher_def, NULL);
	tr_pid e1 = fx_spawn(&b.f, &echo_def, NULL);
	tr_pid e2 = fx_spawn(&b.f, &echo_def, NULL);
	struct watch q1 = { remote(e1), false };
	struct watch q2 = { remote(e2), true };
	SEND(&a.f, w, WATCH, &q1, sizeof(q1));
	SEND(&a.f, w, WATCH, &q2, sizeof(q2));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	/* A stop from the other node, then one from the actor's own. */
	CHECK_OK(tr_stop(tr_inbox_ctx(a.f.ib), remote(e1), 71));
	CHECK(recv_seen(&a.f, TR_MSG_DOWN, 71, remote(e1)));
	CHECK_OK(tr_stop(tr_inbox_ctx(b.f.ib), e2, 72));
	CHECK(recv_seen(&a.f, TR_MSG_EXIT, 72, remote(e2)));

	/* The other way round: an actor of B linked to A's watcher gets
	 * its exit signal when the watcher stops. */
	tr_pid w2 = fx_spawn(&b.f, &watcher_def, NULL);
	struct watch q3 = { remote(w), true };
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), w2, WATCH, &q3, sizeof(q3)));
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_stop(tr_inbox_ctx(a.f.ib), w, 73));
	CHECK(recv_seen(&b.f, TR_MSG_EXIT, 73, remote(w)));
	sides_finish(&a, &b, 0);
}

/* An unreachable node: every operation has its outcome at once, with
 * TR_EXIT_NOCONNECTION, and every refused message is a dead letter. */
static void
test_unreachable(void)
{
	struct side a, b;
	tr_ref ref;

	sides_start(&a, &b);
	tr_ctx *cx = tr_inbox_ctx(a.f.ib);
	tr_pid e = fx_spawn(&b.f, &echo_def, NULL);
	tr_pid w = fx_spawn(&a.f, &watcher_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	atomic_store(&a.cut, true);
	tr_metrics before = fx_metrics(&a.f);

	int n = 1;
	CHECK_ERR(tr_send(cx, remote(e), ECHO, &n, sizeof(n)), TR_EUNREACH);
	CHECK_OK(tr_request(cx, remote(e), ECHO, &n, sizeof(n), 0, &ref));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(a.f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOCONNECTION);
	tr_received_fini(&r);

	struct watch q1 = { remote(e), false };
	SEND(&a.f, w, WATCH, &q1, sizeof(q1));
	CHECK(recv_seen(&a.f, TR_MSG_DOWN, TR_EXIT_NOCONNECTION, remote(e)));
	tr_pid re = remote(e);
	SEND(&a.f, w, TRY_LINK, &re, sizeof(re));
	int32_t err = -99;
	CHECK(fx_recv(&a.f, LINK_ERR, &err, sizeof(err)));
	CHECK_OK(err); /* the outcome is the exit signal */
	CHECK(recv_seen(&a.f, TR_MSG_EXIT, TR_EXIT_NOCONNECTION, remote(e)));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	tr_metrics after = fx_metrics(&a.f);
	/* The send, the request, the monitor, the link. */
	CHECK_EQ_U64(after.dead_letters - before.dead_letters, 4);
	CHECK_EQ_U64(after.msgs_remote_out, before.msgs_remote_out);
	CHECK_EQ_U64(after.msgs_sent, after.msgs_handled + after.dead_letters);
	sides_finish(&a, &b, 0);
}

/* A pointer payload cannot go to another node: refused, freed, not sent;
 * and without a layer attached every remote pid is unreachable. */
static void
test_pointers_and_no_layer(void)
{
	struct side a, b;

	sides_start(&a, &b);
	tr_pid e = fx_spawn(&b.f, &echo_def, NULL);
	tr_pid w = fx_spawn(&a.f, &watcher_def, NULL);
	tr_pid re = remote(e);
	SEND(&a.f, w, PTR_TO, &re, sizeof(re));
	int32_t err = 0;
	CHECK(fx_recv(&a.f, PTR_ERR, &err, sizeof(err)));
	CHECK_ERR(err, TR_EREMOTE);
	/* A second layer is refused. */
	tr_remote_hook again = a.hook;
	CHECK_ERR(tr_remote_attach(a.f.rt, &again), TR_ESTATE);
	sides_finish(&a, &b, 0);

	struct fx f;
	fx_start(&f, 1);
	int n = 0;
	tr_pid far = { tr__pid_make(7, 1, 1) };
	CHECK_ERR(tr_send(tr_inbox_ctx(f.ib), far, ECHO, &n, sizeof(n)),
		  TR_EUNREACH);
	tr_remote_hook bad = { .size = sizeof(bad) };
	CHECK_ERR(tr_remote_attach(f.rt, &bad), TR_EINVAL);
	fx_finish(&f);
}

/* What the layer hands in is checked before it reaches an actor. */
static void
test_bad_input(void)
{
	struct side a, b;

	sides_start(&a, &b);
	tr_pid e = fx_spawn(&b.f, &echo_def, NULL);
	tr_pid far = { tr__pid_make(1, 1, 1) };
	int n = 0;
	tr_remote_op ok = { .kind = TR_REMOTE_SEND,
			    .type = ECHO,
			    .from = far,
			    .to = e,
			    .data = &n,
			    .size = sizeof(n) };
	tr_remote_op op;
	tr_runtime *rt = b.f.rt;

	op = ok;
	op.from = e; /* a local sender */
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.to = far; /* a remote target */
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.type = TR_MSG_DOWN; /* a reserved type */
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.flags = TR_MSG_F_REQUEST | TR_MSG_F_REPLY;
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.flags = TR_MSG_F_PTR;
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.size = (size_t)1 << 40; /* over the maximum message size */
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.data = NULL;
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.kind = 99;
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	op = ok;
	op.kind = TR_REMOTE_MONITOR;
	op.from = TR_PID_NONE; /* nobody to tell */
	CHECK_ERR(b.hook.in(rt, &op), TR_EINVAL);
	CHECK_ERR(b.hook.in(rt, NULL), TR_EINVAL);
	/* A well-formed one to a pid that does not exist: a dead letter. */
	tr_metrics before = fx_metrics(&b.f);
	op = ok;
	op.to = (tr_pid){ tr__pid_make(0, 1, 4000) };
	CHECK_OK(b.hook.in(rt, &op));
	CHECK_OK(tr_runtime_wait_idle(rt, FX_REPLY_MS));
	tr_metrics after = fx_metrics(&b.f);
	CHECK_EQ_U64(after.dead_letters, before.dead_letters + 1);
	sides_finish(&a, &b, 1);
}

/*
 * A congested link holds its senders back as an overloaded actor does:
 * the layer tags a send with its gate, which it holds; the sender is muted
 * on the gate at the end of that turn and runs no other until the layer
 * lets go (from a thread that is not a worker here). A gate that is not
 * a live local actor is refused.
 */
static void
test_hold(void)
{
	struct side a, b;
	const int32_t n = 50;

	sides_start(&a, &b);
	CHECK(a.hook.hold != NULL);
	atomic_store(&push_turns, 0);
	atomic_store(&sunk, 0);
	tr_pid sink = remote(fx_spawn(&b.f, &sink_def, NULL));
	tr_pid gate = fx_spawn(&a.f, &gate_def, NULL);
	tr_pid pusher = fx_spawn(&a.f, &pusher_def, NULL);
	CHECK_ERR(a.hook.hold(a.f.rt, sink, true), TR_EINVAL);
	CHECK_ERR(
		a.hook.hold(a.f.rt, (tr_pid){ tr__pid_make(0, 1, 4000) }, true),
		TR_EINVAL);
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	tr_metrics before = fx_metrics(&a.f);

	CHECK_OK(a.hook.hold(a.f.rt, gate, true));
	atomic_store(&a.gate, gate.v);
	struct push go = { sink, n };
	SEND(&a.f, pusher, PUSH, &go, sizeof(go));
	/* Muted after its first turn, with its NEXT queued. */
	CHECK(WAIT_UNTIL(fx_metrics(&a.f).mutes > before.mutes, FX_REPLY_MS));
	CHECK_EQ_INT(atomic_load(&push_turns), 1);
	CHECK(WAIT_UNTIL(atomic_load(&sunk) == 1, FX_REPLY_MS));
	CHECK_EQ_INT(atomic_load(&push_turns), 1);

	/* Let go: it runs to the end. */
	atomic_store(&a.gate, 0);
	CHECK_OK(a.hook.hold(a.f.rt, gate, false));
	CHECK(WAIT_UNTIL(atomic_load(&sunk) == (unsigned)n, FX_REPLY_MS));
	CHECK_EQ_INT(atomic_load(&push_turns), n);

	/* A sender muted on a held gate can still be stopped: its stop does
	 * not wait for the layer to let go, and it runs no other turn. */
	before = fx_metrics(&a.f);
	atomic_store(&push_turns, 0);
	CHECK_OK(a.hook.hold(a.f.rt, gate, true));
	atomic_store(&a.gate, gate.v);
	tr_pid second = fx_spawn(&a.f, &pusher_def, NULL);
	SEND(&a.f, second, PUSH, &go, sizeof(go));
	CHECK(WAIT_UNTIL(fx_metrics(&a.f).mutes > before.mutes, FX_REPLY_MS));
	CHECK_OK(tr_stop(tr_inbox_ctx(a.f.ib), second, TR_EXIT_SHUTDOWN));
	CHECK(WAIT_UNTIL(fx_metrics(&a.f).actors_stopped >
				 before.actors_stopped,
			 FX_REPLY_MS));
	CHECK_EQ_INT(atomic_load(&push_turns), 1);
	atomic_store(&a.gate, 0);
	CHECK_OK(a.hook.hold(a.f.rt, gate, false));
	sides_finish(&a, &b, 0);
}

static const struct test_case tests[] = {
	{ "send_and_answer", test_send_and_answer },
	{ "request", test_request },
	{ "monitor_link_stop", test_monitor_link_stop },
	{ "unreachable", test_unreachable },
	{ "pointers_and_no_layer", test_pointers_and_no_layer },
	{ "bad_input", test_bad_input },
	{ "hold", test_hold },
	{ NULL, NULL },
};

TEST_MAIN(tests)
