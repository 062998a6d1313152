/*
 * The stash: tr_stash() keeps the message being handled, tr_unstash_all()
 * puts every kept message back ahead of the mailbox, in the order kept.
 * What must hold: order (stashed messages come back first, oldest first,
 * and per-sender order survives any mix of stashing and handling), every
 * message counted (sent == handled + dead letters at every quiet moment,
 * a message still stashed at the stop is a dead letter), pointer payloads
 * freed exactly once, a stashed request keeps its one outcome.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

#include "harness.h"
#include "fixture.h"

enum {
	VAL = 1, /* int: stashed while closed, reported while open */
	PVAL,    /* int * (counted pointer): the same */
	REQ,     /* request, int: stashed while closed, answered n + 1 */
	OPEN,    /* unstash everything, handle from now on */
	CLOSE,   /* stash from now on */
	REPORT,  /* int, gate -> probe */
	WATCH,   /* tr_pid: monitor it */
	DOWNREP, /* int32_t reason of a DOWN the gate handled */
	MISUSE,  /* struct misuse: the gate's misuse checks */
	RESTASH, /* while open: the next VAL is stashed once more, at once
		  * put back, then handled */
};

static _Atomic unsigned ptr_allocs, ptr_frees;

static int *
counted_int(int v)
{
	int *p = malloc(sizeof(*p));

	if (p != NULL) {
		*p = v;
		atomic_fetch_add(&ptr_allocs, 1);
	}
	return p;
}

static void
counted_free(void *p)
{
	atomic_fetch_add(&ptr_frees, 1);
	free(p);
}

struct gate {
	bool open;
	bool restash;
	tr_pid watcher; /* who asked for WATCH: told of the DOWN */
};

static void
report(tr_ctx *cx, tr_pid to, uint32_t type, const void *v, size_t len)
{
	CHECK_OK(tr_send(cx, to, type, v, len));
}

static void
gate_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct gate *g = state;

	switch (m->type) {
	case OPEN:
		g->open = true;
		CHECK_OK(tr_unstash_all(cx));
		return;
	case CLOSE:
		g->open = false;
		return;
	case RESTASH:
		g->restash = true;
		return;
	case WATCH: {
		const tr_pid *p = TR_MSG_AS(m, tr_pid);
		tr_ref ref;
		CHECK(p != NULL);
		if (p != NULL) {
			g->watcher = m->from;
			CHECK_OK(tr_monitor(cx, *p, &ref));
		}
		return;
	}
	default:
		break;
	}
	if (!g->open) {
		CHECK_OK(tr_stash(cx, m));
		return;
	}
	if (g->restash && m->type == VAL) {
		/* Back at once, ahead of the rest: handled again next. */
		g->restash = false;
		CHECK_OK(tr_stash(cx, m));
		CHECK_OK(tr_unstash_all(cx));
		return;
	}
	switch (m->type) {
	case VAL: {
		const int *v = TR_MSG_AS(m, int);
		CHECK(v != NULL);
		report(cx, m->from, REPORT, v, sizeof(*v));
		break;
	}
	case PVAL: {
		CHECK((m->flags & TR_MSG_F_PTR) && m->data != NULL);
		const int *v = m->data;
		report(cx, m->from, REPORT, v, sizeof(*v));
		break;
	}
	case REQ: {
		const int *v = TR_MSG_AS(m, int);
		CHECK(v != NULL && (m->flags & TR_MSG_F_REQUEST));
		int n = v != NULL ? *v + 1 : 0;
		CHECK_OK(tr_reply(cx, m, REQ, &n, sizeof(n)));
		break;
	}
	case TR_MSG_DOWN: {
		const tr_down *d = TR_MSG_AS(m, tr_down);
		CHECK(d != NULL);
		int32_t reason = d != NULL ? d->reason : 0;
		report(cx, g->watcher, DOWNREP, &reason, sizeof(reason));
		break;
	}
	default:
		CHECK(false);
	}
}

static const tr_actor_def gate_def = {
	.size = sizeof(tr_actor_def),
	.name = "gate",
	.state_size = sizeof(struct gate),
	.handle = gate_handle,
};

static void
send_ptr(struct fx *f, tr_pid to, int v)
{
	int *p = counted_int(v);

	CHECK(p != NULL);
	CHECK_OK(tr_send_ptr(tr_inbox_ctx(f->ib), to, PVAL, p, sizeof(*p),
			     counted_free));
}

static bool
recv_report(struct fx *f, int want)
{
	int got = -1;

	if (!fx_recv(f, REPORT, &got, sizeof(got))) {
		return false;
	}
	if (got != want) {
		fprintf(stderr, "  report %d, want %d\n", got, want);
		return false;
	}
	return true;
}

/* Kept messages come back in the order kept, ahead of newer ones; a
 * quiet runtime with messages stashed is idle and its counts balance. */
static void
test_order_and_counts(void)
{
	struct fx f;
	tr_ctx *cx;
	tr_ref ref;
	unsigned allocs0 = atomic_load(&ptr_allocs);
	unsigned frees0 = atomic_load(&ptr_frees);

	fx_start(&f, 2);
	cx = tr_inbox_ctx(f.ib);
	tr_pid g = fx_spawn(&f, &gate_def, NULL);
	for (int i = 0; i < 30; i++) {
		if (i % 3 == 1) {
			send_ptr(&f, g, i);
		} else {
			SEND(&f, g, VAL, &i, sizeof(i));
		}
	}
	int q = 41;
	CHECK_OK(tr_request(cx, g, REQ, &q, sizeof(q), 0, &ref));
	/* All 31 are stashed: nothing is queued or running. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	CHECK(fx_recv_none(&f, 20));
	CHECK_EQ_INT(atomic_load(&ptr_frees), frees0); /* kept, not freed */

	SEND(&f, g, OPEN, NULL, 0);
	int after = 100;
	SEND(&f, g, VAL, &after, sizeof(after));
	for (int i = 0; i < 30; i++) {
		CHECK(recv_report(&f, i));
	}
	int n = 0;
	CHECK(fx_recv_ref(&f, ref, REQ, g, &n, sizeof(n)));
	CHECK_EQ_INT(n, 42);
	CHECK(recv_report(&f, after)); /* after every stashed one */

	/* Stashed again and put back at once: handled next, ahead of the
	 * rest of what was put back. */
	SEND(&f, g, CLOSE, NULL, 0);
	for (int i = 200; i < 203; i++) {
		SEND(&f, g, VAL, &i, sizeof(i));
	}
	SEND(&f, g, RESTASH, NULL, 0);
	SEND(&f, g, OPEN, NULL, 0);
	for (int i = 200; i < 203; i++) {
		CHECK(recv_report(&f, i));
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	m = fx_metrics(&f);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	CHECK_EQ_INT(atomic_load(&ptr_allocs) - allocs0, 10);
	CHECK_EQ_INT(atomic_load(&ptr_frees) - frees0, 10);
	fx_finish(&f);
}

/* What is still stashed at the stop is a dead letter; a stashed request
 * gets its one outcome, the stop's reason. */
static void
test_stop_drops_stash(void)
{
	struct fx f;
	tr_ref ref;
	tr_received r;
	unsigned frees0 = atomic_load(&ptr_frees);

	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_pid g = fx_spawn(&f, &gate_def, NULL);
	for (int i = 0; i < 10; i++) {
		SEND(&f, g, VAL, &i, sizeof(i));
	}
	send_ptr(&f, g, 10);
	int q = 1;
	CHECK_OK(tr_request(cx, g, REQ, &q, sizeof(q), 0, &ref));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_metrics before = fx_metrics(&f);

	CHECK_OK(tr_stop(cx, g, 77));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == 77);
	tr_received_fini(&r);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_metrics after = fx_metrics(&f);
	CHECK_EQ_U64(after.dead_letters, before.dead_letters + 12);
	CHECK_EQ_U64(after.msgs_sent, after.msgs_handled + after.dead_letters);
	CHECK_EQ_INT(atomic_load(&ptr_frees) - frees0, 1);
	CHECK(fx_recv_none(&f, 20)); /* no second outcome, no report */
	fx_finish(&f);
}

static void
victim_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	(void)m;
	tr_stop_self(cx, 33);
}

static const tr_actor_def victim_def = {
	.size = sizeof(tr_actor_def),
	.name = "victim",
	.handle = victim_handle,
};

/* A message the runtime makes for the handler (a DOWN) can be kept too. */
static void
test_runtime_messages(void)
{
	struct fx f;

	fx_start(&f, 2);
	tr_pid g = fx_spawn(&f, &gate_def, NULL);
	tr_pid v = fx_spawn(&f, &victim_def, NULL);
	SEND(&f, g, WATCH, &v, sizeof(v));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	SEND(&f, v, VAL, NULL, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 20)); /* the DOWN is stashed */
	SEND(&f, g, OPEN, NULL, 0);
	int32_t reason = 0;
	CHECK(fx_recv(&f, DOWNREP, &reason, sizeof(reason)));
	CHECK_EQ_INT(reason, 33);
	fx_finish(&f);
}

struct misuse {
	int32_t other; /* tr_stash() of a copy of the message */
	int32_t twice; /* a second tr_stash() of the same message */
	int32_t seen;  /* times the handler saw MISUSE */
};

static void
misuse_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct misuse *st = state;

	if (m->type == MISUSE) {
		if (st->seen++ == 0) {
			tr_msg other = *m;
			st->other = tr_stash(cx, &other);
			CHECK_OK(tr_stash(cx, m));
			st->twice = tr_stash(cx, m);
			CHECK_OK(tr_unstash_all(cx)); /* seen again next */
			return;
		}
		CHECK_OK(tr_send(cx, m->from, MISUSE, st, sizeof(*st)));
		return;
	}
	int32_t e = TR_OK;
	if (m->type == VAL) {
		CHECK_OK(tr_unhandled(cx, m));
		e = tr_stash(cx, m);
	} else if (m->type == PVAL) {
		void *p = tr_msg_take_ptr(cx, m);
		e = tr_stash(cx, m);
		counted_free(p);
	}
	CHECK_OK(tr_send(cx, m->from, m->type, &e, sizeof(e)));
}

static const tr_actor_def misuse_def = {
	.size = sizeof(tr_actor_def),
	.name = "misuse",
	.state_size = sizeof(struct misuse),
	.handle = misuse_handle,
};

static void
test_misuse(void)
{
	struct fx f;
	tr_ctx *cx;
	struct misuse r;
	int32_t e = 0;
	unsigned frees0 = atomic_load(&ptr_frees);

	fx_start(&f, 1);
	cx = tr_inbox_ctx(f.ib);
	tr_pid p = fx_spawn(&f, &misuse_def, NULL);
	SEND(&f, p, MISUSE, NULL, 0);
	CHECK(fx_recv(&f, MISUSE, &r, sizeof(r)));
	CHECK_ERR(r.other, TR_EINVAL); /* not this turn's message */
	CHECK_ERR(r.twice, TR_EINVAL);
	CHECK_EQ_INT(r.seen, 2); /* stashed once, put back, seen again */
	SEND(&f, p, VAL, NULL, 0);
	CHECK(fx_recv(&f, VAL, &e, sizeof(e)));
	CHECK_ERR(e, TR_EINVAL); /* after tr_unhandled */
	send_ptr(&f, p, 5);
	CHECK(fx_recv(&f, PVAL, &e, sizeof(e)));
	CHECK_ERR(e, TR_EINVAL); /* its pointer was taken */
	CHECK_EQ_INT(atomic_load(&ptr_frees) - frees0, 1);
	/* On a thread's context, which handles no message. */
	tr_msg none = { .type = VAL };
	CHECK_ERR(tr_stash(cx, &none), TR_EINVAL);
	CHECK_ERR(tr_unstash_all(cx), TR_EINVAL);
	fx_finish(&f);
}

/* ---- stress: many senders, a receiver that keeps stashing ---- */

#define SENDERS    4
#define PER_SENDER 20000
#define KEEP       7 /* the toggler stashes this many, then handles */

enum { SEQ = 50, GO, DONE };

struct seq {
	uint32_t id;
	uint32_t seq;
};

struct go {
	tr_pid to;
	uint32_t id;
	uint32_t next;
};

static void
sender_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct go *s = state;
	const struct go *g = TR_MSG_AS(m, struct go);

	if (m->type == GO && g != NULL && tr_pid_is_none(s->to)) {
		*s = *g;
	}
	while (s->next < PER_SENDER) {
		struct seq v = { s->id, s->next++ };
		CHECK_OK(tr_send(cx, s->to, SEQ, &v, sizeof(v)));
		if (s->next < PER_SENDER && tr_should_yield(cx)) {
			CHECK_OK(tr_send(cx, tr_self(cx), GO, NULL, 0));
			return;
		}
	}
}

static const tr_actor_def sender_def = {
	.size = sizeof(tr_actor_def),
	.name = "sender",
	.state_size = sizeof(struct go),
	.handle = sender_handle,
};

struct toggler {
	bool open;
	unsigned kept; /* stashed since the last put back */
	unsigned left; /* to handle before closing again */
	uint32_t next[SENDERS];
	uint64_t total;
	uint64_t out_of_order;
	uint64_t stashes;
	tr_pid probe;
};

struct done {
	uint64_t total;
	uint64_t out_of_order;
	uint64_t stashes;
};

static void
toggler_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct toggler *t = state;
	const struct seq *v = TR_MSG_AS(m, struct seq);

	if (m->type == GO) {
		t->probe = m->from;
		return;
	}
	if (m->type != SEQ || v == NULL || v->id >= SENDERS) {
		CHECK(false);
		return;
	}
	if (!t->open) {
		CHECK_OK(tr_stash(cx, m));
		t->stashes++;
		if (++t->kept == KEEP) {
			t->open = true;
			t->left = KEEP + 3; /* the kept ones, then a few new */
			t->kept = 0;
			CHECK_OK(tr_unstash_all(cx));
		}
		return;
	}
	if (v->seq != t->next[v->id]) {
		t->out_of_order++;
	}
	t->next[v->id] = v->seq + 1;
	t->total++;
	if (--t->left == 0) {
		t->open = false;
	}
	if (t->total == (uint64_t)SENDERS * PER_SENDER) {
		struct done d = { t->total, t->out_of_order, t->stashes };
		CHECK_OK(tr_send(cx, t->probe, DONE, &d, sizeof(d)));
	}
}

static const tr_actor_def toggler_def = {
	.size = sizeof(tr_actor_def),
	.name = "toggler",
	.state_size = sizeof(struct toggler),
	.handle = toggler_handle,
};

/* Per-sender order and every message counted, with stashing and put-back
 * mixed in at random points of four senders' streams on two workers. */
static void
test_stress_order(void)
{
	struct fx f;
	struct done d;

	fx_start(&f, 2);
	tr_pid t = fx_spawn(&f, &toggler_def, NULL);
	SEND(&f, t, GO, NULL, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	for (uint32_t i = 0; i < SENDERS; i++) {
		struct go g = { t, i, 0 };
		tr_pid s = fx_spawn(&f, &sender_def, NULL);
		SEND(&f, s, GO, &g, sizeof(g));
	}
	memset(&d, 0, sizeof(d));
	CHECK(fx_recv(&f, DONE, &d, sizeof(d)));
	CHECK_EQ_U64(d.total, (uint64_t)SENDERS * PER_SENDER);
	CHECK_EQ_U64(d.out_of_order, 0);
	CHECK(d.stashes > 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_metrics m = fx_metrics(&f);
	CHECK_EQ_U64(m.msgs_sent, m.msgs_handled + m.dead_letters);
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "order_and_counts", test_order_and_counts },
	{ "stop_drops_stash", test_stop_drops_stash },
	{ "runtime_messages", test_runtime_messages },
	{ "misuse", test_misuse },
	{ "stress_order", test_stress_order },
	{ NULL, NULL },
};

TEST_MAIN(tests)
