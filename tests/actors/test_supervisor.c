/*
 * Supervisor (<troupe/actors/supervisor.h>): the three static strategies
 * and simple_one_for_one, restart types, restart intensity (exceeded and
 * not), nested supervisors, orderly shutdown in reverse order with the
 * kill after a shutdown timeout, the parent's exit, dynamic children
 * through requests, a child whose init fails at start, and bad input.
 *
 * Children are "kid" actors that crash or quit when told to, count their
 * starts, and report start, failed init, trapped exit signals and
 * teardown (with the reason) to the probe. The probe is also every
 * supervisor's observer. Everything the probe gets is appended to one
 * log in arrival order; tests wait on conditions over that log and check
 * orders as short strings such as "dC dB dA" (teardown of C, then B,
 * then A). The test thread starts supervisors on the probe's context and
 * waits for the start reply with tr_inbox_recv() with the reference; a "boss"
 * actor starts supervisors linked with itself and forwards what it gets.
 * Handlers never call CHECK.
 */
#include <troupe/troupe.h>
#include <troupe/actors/supervisor.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/* Generous, for the sanitizer builds on a busy machine: reaching it is a
 * failure. */
#define WAIT_MS 30000
/*
 * A restart-intensity period and a child's shutdown time that no test
 * means to reach: with seconds instead of a minute, a busy machine could
 * spread the restarts of an "exceeded" test over more than the period,
 * or a child that stops on the shutdown could be killed first.
 */
#define PERIOD_MS 60000
#define NOKILL_MS 60000

enum {
	MSG_CRASH = 1,    /* kid: stop with TR_EXIT_ERROR */
	MSG_QUIT,         /* kid: stop with TR_EXIT_NORMAL */
	MSG_REPORT,       /* kid -> probe: struct report */
	MSG_BOSS_START,   /* boss: struct boss_start; reply MSG_BOSS_RESULT */
	MSG_BOSS_REQ,     /* boss: tr_sup_request; reply MSG_BOSS_RESULT */
	MSG_BOSS_STOPSUP, /* boss: TR_SUP_OP_STOP; reply MSG_BOSS_RESULT */
	MSG_BOSS_DIE,     /* boss: int32_t reason */
	MSG_BOSS_RESULT,  /* boss -> probe: struct boss_result */
	MSG_BOSS_EXIT,    /* boss -> probe: tr_exit_signal it trapped */
	MSG_BOSS_REPLY,   /* boss -> probe: struct boss_reply */
};

/* Kinds of struct report. */
enum { R_START = 's', R_FAIL = 'f', R_DOWN = 'd', R_GOT_EXIT = 'x' };

struct report {
	char name[8];
	tr_pid pid;
	int32_t reason;
	int32_t kind;
};

/* ---- the probe's log ---------------------------------------------------- */

struct entry {
	uint32_t type;
	tr_pid from;
	struct report rep;
	tr_sup_event ev;
	tr_sup_reply rp;
	tr_exit_signal sig;
	int32_t result;
	tr_pid result_pid;
	uint64_t result_ref;
	uint64_t ref; /* a reply's: the reference of what it answers */
};

#define LOG_MAX  8192
#define KIDS_MAX 256

static struct entry log_v[LOG_MAX];
static size_t log_n;
/* The entries of the last TR_SUP_OP_WHICH_CHILDREN reply. */
static tr_sup_child_info last_kids[KIDS_MAX];
static uint32_t last_nkids;

static void
log_reset(void)
{
	log_n = 0;
	last_nkids = 0;
}

struct boss_result {
	int32_t err;
	tr_pid pid;
	uint64_t ref; /* of the start or request the boss made */
};

/* A reply the boss got, passed on with the reference it answers. */
struct boss_reply {
	uint64_t ref;
	tr_sup_reply rp;
};

/* Takes one probe message (waiting up to @ms) into the log. */
static bool
pump(struct fx *f, int64_t ms)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(f->ib, NULL, ms, &r) != TR_OK) {
		return false;
	}
	if (log_n == LOG_MAX) {
		fprintf(stderr, "  probe log full\n");
		tr_received_fini(&r);
		return false;
	}
	struct entry *e = &log_v[log_n++];
	memset(e, 0, sizeof(*e));
	e->type = r.type;
	e->from = r.from;
	e->ref = (r.flags & TR_MSG_F_REPLY) ? r.ref.v : 0;
	if (r.type == MSG_REPORT && r.size == sizeof(e->rep)) {
		memcpy(&e->rep, r.data, sizeof(e->rep));
	} else if (r.type == TR_MSG_SUP_EVENT && r.size == sizeof(e->ev)) {
		memcpy(&e->ev, r.data, sizeof(e->ev));
	} else if (r.type == TR_MSG_SUP_REPLY &&
		   TR_MSG_AS(&r, tr_sup_reply) != NULL) {
		e->rp = *TR_MSG_AS(&r, tr_sup_reply);
	} else if (r.type == TR_MSG_SUP_CHILDREN &&
		   TR_MSG_AS_FAM(&r, tr_sup_children, reply.count, children) !=
			   NULL) {
		/* Variable length: the reply, then reply.count children. */
		const tr_sup_children *c = r.data;
		e->rp = c->reply;
		last_nkids = 0;
		for (uint32_t i = 0; i < c->reply.count && i < KIDS_MAX; i++) {
			last_kids[last_nkids++] = c->children[i];
		}
	} else if (r.type == MSG_BOSS_EXIT && r.size == sizeof(e->sig)) {
		memcpy(&e->sig, r.data, sizeof(e->sig));
	} else if (r.type == MSG_BOSS_RESULT &&
		   r.size == sizeof(struct boss_result)) {
		struct boss_result br;
		memcpy(&br, r.data, sizeof(br));
		e->result = br.err;
		e->result_pid = br.pid;
		e->result_ref = br.ref;
	} else if (r.type == MSG_BOSS_REPLY &&
		   r.size == sizeof(struct boss_reply)) {
		struct boss_reply br;
		memcpy(&br, r.data, sizeof(br));
		e->type = TR_MSG_SUP_REPLY;
		e->rp = br.rp;
		e->ref = br.ref;
	} else {
		fprintf(stderr, "  probe: unexpected type %u size %zu\n",
			r.type, r.size);
		e->type = 0;
	}
	tr_received_fini(&r);
	return true;
}

/* Pumps the probe until @cond holds; a timeout is a failed check. */
#define WAIT_LOG(f, cond, ms)                                                  \
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

/* Events of @kind (any supervisor when @sup is none, any child when @id
 * is NULL). */
static int
count_ev_sup(tr_pid sup, uint32_t kind, const char *id)
{
	int n = 0;

	for (size_t i = 0; i < log_n; i++) {
		const struct entry *e = &log_v[i];
		if (e->type == TR_MSG_SUP_EVENT && e->ev.kind == kind &&
		    (tr_pid_is_none(sup) || tr_pid_eq(e->ev.sup, sup)) &&
		    (id == NULL || strcmp(e->ev.id, id) == 0)) {
			n++;
		}
	}
	return n;
}

static int
count_ev(uint32_t kind, const char *id)
{
	return count_ev_sup(TR_PID_NONE, kind, id);
}

/* The last event of @kind for @id, or NULL. */
static const tr_sup_event *
last_ev(uint32_t kind, const char *id)
{
	for (size_t i = log_n; i-- > 0;) {
		const struct entry *e = &log_v[i];
		if (e->type == TR_MSG_SUP_EVENT && e->ev.kind == kind &&
		    (id == NULL || strcmp(e->ev.id, id) == 0)) {
			return &e->ev;
		}
	}
	return NULL;
}

/* Kid reports of @kind for @name (any when NULL) with @reason (any when
 * negative). */
static int
count_rep(int kind, const char *name, int32_t reason)
{
	int n = 0;

	for (size_t i = 0; i < log_n; i++) {
		const struct entry *e = &log_v[i];
		if (e->type == MSG_REPORT && e->rep.kind == kind &&
		    (name == NULL || strcmp(e->rep.name, name) == 0) &&
		    (reason < 0 || e->rep.reason == reason)) {
			n++;
		}
	}
	return n;
}

/* Start and teardown reports since @mark, as "sA dB ..." in order. */
static const char *
order_since(size_t mark, bool with_starts)
{
	static char buf[4096];
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = mark; i < log_n && len + 16 < sizeof(buf); i++) {
		const struct entry *e = &log_v[i];
		if (e->type != MSG_REPORT ||
		    (e->rep.kind != R_DOWN && e->rep.kind != R_FAIL &&
		     !(with_starts && e->rep.kind == R_START))) {
			continue;
		}
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%c%s",
					len > 0 ? " " : "", e->rep.kind,
					e->rep.name);
	}
	return buf;
}

/* The reply to the request or start of reference @ref. */
static const struct entry *
find_reply(uint64_t ref)
{
	for (size_t i = 0; i < log_n; i++) {
		if ((log_v[i].type == TR_MSG_SUP_REPLY ||
		     log_v[i].type == TR_MSG_SUP_CHILDREN) &&
		    ref != 0 && log_v[i].ref == ref) {
			return &log_v[i];
		}
	}
	return NULL;
}

static const struct entry *
find_type(uint32_t type, size_t from)
{
	for (size_t i = from; i < log_n; i++) {
		if (log_v[i].type == type) {
			return &log_v[i];
		}
	}
	return NULL;
}

/* ---- kids --------------------------------------------------------------- */

struct kid_arg {
	char name[8];
	tr_pid probe;
	atomic_int starts;     /* inits that ran */
	atomic_int fail_inits; /* the next this many inits fail */
	bool trap;             /* trap exits */
	bool ignore_shutdown;  /* trapped TR_EXIT_SHUTDOWN is ignored */
};

static void
kid_arg_init(struct kid_arg *a, const char *name, tr_pid probe)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->probe = probe;
	atomic_init(&a->starts, 0);
	atomic_init(&a->fail_inits, 0);
}

struct kid {
	struct kid_arg *a;
};

static void
kid_report(tr_ctx *cx, const struct kid_arg *a, int kind, int32_t reason)
{
	struct report r;

	memset(&r, 0, sizeof(r));
	memcpy(r.name, a->name, sizeof(r.name));
	r.pid = tr_self(cx);
	r.reason = reason;
	r.kind = kind;
	(void)tr_send(cx, a->probe, MSG_REPORT, &r, sizeof(r));
}

static int
kid_init(tr_ctx *cx, void *state, void *arg)
{
	struct kid *k = state;
	struct kid_arg *a = arg;

	k->a = a;
	atomic_fetch_add(&a->starts, 1);
	if (atomic_load(&a->fail_inits) > 0) {
		atomic_fetch_sub(&a->fail_inits, 1);
		kid_report(cx, a, R_FAIL, 0);
		return TR_EINVAL;
	}
	if (a->trap) {
		tr_trap_exit(cx, true);
	}
	kid_report(cx, a, R_START, 0);
	return TR_OK;
}

static void
kid_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct kid *k = state;
	tr_exit_signal sig;

	switch (m->type) {
	case MSG_CRASH:
		tr_stop_self(cx, TR_EXIT_ERROR);
		break;
	case MSG_QUIT:
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	case TR_MSG_EXIT:
		if (!payload(m, &sig, sizeof(sig))) {
			break;
		}
		kid_report(cx, k->a, R_GOT_EXIT, sig.reason);
		if (!(k->a->ignore_shutdown &&
		      sig.reason == TR_EXIT_SHUTDOWN)) {
			tr_stop_self(cx, sig.reason);
		}
		break;
	default:
		break;
	}
}

static void
kid_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct kid *k = state;

	if (k->a != NULL) {
		kid_report(cx, k->a, R_DOWN, reason);
	}
}

static const tr_actor_def kid_def = {
	.size = sizeof(tr_actor_def),
	.name = "kid",
	.state_size = sizeof(struct kid),
	.init = kid_init,
	.teardown = kid_teardown,
	.handle = kid_handle,
};

/* A child without init: it cannot fail to start and gets no argument,
 * so it reports its teardown, as "P", to a probe set by the test. */
static tr_pid plain_probe;

static void
plain_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct kid_arg a;

	(void)state;
	memset(&a, 0, sizeof(a));
	memcpy(a.name, "P", 2);
	a.probe = plain_probe;
	kid_report(cx, &a, R_DOWN, reason);
}

static const tr_actor_def plain_def = {
	.size = sizeof(tr_actor_def),
	.name = "plain",
	.teardown = plain_teardown,
	.handle = kid_handle,
};

static tr_sup_child_spec
kspec(const char *id, const tr_actor_def *def, void *arg,
      tr_sup_restart restart, uint64_t shutdown_ms)
{
	tr_sup_child_spec s;

	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.id = id;
	s.def = def;
	s.arg = arg;
	s.restart = restart;
	s.type = TR_SUP_WORKER;
	s.shutdown_ms = shutdown_ms;
	return s;
}

static tr_sup_flags
kflags(tr_sup_strategy strategy, uint32_t intensity, uint64_t period_ms,
       tr_pid observer)
{
	tr_sup_flags fl;

	memset(&fl, 0, sizeof(fl));
	fl.size = sizeof(fl);
	fl.strategy = strategy;
	fl.intensity = intensity;
	fl.period_ms = period_ms;
	fl.observer = observer;
	return fl;
}

/* ---- the boss ----------------------------------------------------------- */

struct boss_start {
	const tr_sup_flags *flags;
	const tr_sup_child_spec *specs;
	size_t n;
};

struct boss {
	tr_pid probe;
	tr_pid sup;
};

static void
boss_result(tr_ctx *cx, struct boss *b, int32_t err, tr_pid pid, tr_ref ref)
{
	struct boss_result r = { .err = err, .pid = pid, .ref = ref.v };

	(void)tr_send(cx, b->probe, MSG_BOSS_RESULT, &r, sizeof(r));
}

static void
boss_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct boss *b = state;

	switch (m->type) {
	case MSG_BOSS_START: {
		struct boss_start bs;
		b->probe = tr_sender(cx);
		tr_ref ref = { 0 };
		if (!payload(m, &bs, sizeof(bs))) {
			boss_result(cx, b, -100, TR_PID_NONE, ref);
			break;
		}
		tr_trap_exit(cx, true);
		tr_sup_flags fl = *bs.flags;
		fl.is_linked = true; /* the boss is the parent */
		int32_t err =
			tr_sup_start(cx, &fl, bs.specs, bs.n, &b->sup, &ref);
		if (err == TR_OK && ref.v == 0) {
			err = -101; /* an actor's start is a request */
		}
		boss_result(cx, b, err, b->sup, ref);
		break;
	}
	case MSG_BOSS_REQ: {
		tr_sup_request q;
		tr_ref ref = { 0 };
		if (!payload(m, &q, sizeof(q))) {
			boss_result(cx, b, -100, TR_PID_NONE, ref);
			break;
		}
		int32_t err = tr_sup_call(cx, b->sup, &q, 0, &ref);
		boss_result(cx, b, err, b->sup, ref);
		break;
	}
	case MSG_BOSS_STOPSUP: {
		tr_sup_request q = { .size = sizeof(q), .op = TR_SUP_OP_STOP };
		tr_ref ref = { 0 };
		int32_t err = tr_sup_call(cx, b->sup, &q, 0, &ref);
		boss_result(cx, b, err, b->sup, ref);
		break;
	}
	case MSG_BOSS_DIE: {
		int32_t reason = TR_EXIT_NORMAL;
		(void)payload(m, &reason, sizeof(reason));
		tr_stop_self(cx, reason);
		break;
	}
	case TR_MSG_EXIT:
		(void)tr_send(cx, b->probe, MSG_BOSS_EXIT, m->data, m->size);
		break;
	case TR_MSG_SUP_REPLY: {
		const tr_sup_reply *rp = TR_MSG_AS(m, tr_sup_reply);
		if (rp == NULL) {
			break;
		}
		struct boss_reply fw = { .ref = m->ref.v, .rp = *rp };
		if (!(m->flags & TR_MSG_F_REPLY)) {
			fw.ref = 0; /* not an answer: the probe flags it */
		}
		(void)tr_send(cx, b->probe, MSG_BOSS_REPLY, &fw, sizeof(fw));
		break;
	}
	case TR_MSG_SUP_CHILDREN:
		(void)tr_send(cx, b->probe, m->type, m->data, m->size);
		break;
	default:
		break;
	}
}

static const tr_actor_def boss_def = {
	.size = sizeof(tr_actor_def),
	.name = "boss",
	.state_size = sizeof(struct boss),
	.handle = boss_handle,
};

/* Starts a supervisor under a new boss; returns the supervisor's pid
 * once its start reply (status @want) has come back through the boss. */
static tr_pid
boss_start(struct fx *f, tr_pid *boss, const tr_sup_flags *fl,
	   const tr_sup_child_spec *specs, size_t n, int32_t want)
{
	struct boss_start bs = { .flags = fl, .specs = specs, .n = n };
	size_t mark = log_n;

	*boss = fx_spawn(f, &boss_def, NULL);
	SEND(f, *boss, MSG_BOSS_START, &bs, sizeof(bs));
	WAIT_LOG(f, find_type(MSG_BOSS_RESULT, mark) != NULL, WAIT_MS);
	const struct entry *e = find_type(MSG_BOSS_RESULT, mark);
	if (e == NULL) {
		return TR_PID_NONE;
	}
	CHECK_OK(e->result);
	tr_pid sup = e->result_pid;
	uint64_t ref = e->result_ref;
	CHECK(!tr_pid_is_none(sup));
	WAIT_LOG(f, find_reply(ref) != NULL, WAIT_MS);
	e = find_reply(ref);
	if (e != NULL) {
		CHECK_EQ_INT(e->rp.op, 0); /* the start's reply */
		CHECK_EQ_INT(e->rp.status, want);
		CHECK(tr_pid_eq(e->rp.pid, sup));
	}
	return sup;
}

/* ---- requests and waits ----------------------------------------------- */

static uint64_t
alive(struct fx *f)
{
	return fx_metrics(f).actors_alive;
}

/* A request from the probe whose reply nobody reads: its error only. */
static tr_err
call(struct fx *f, tr_pid sup, const tr_sup_request *q)
{
	return tr_sup_call(tr_inbox_ctx(f->ib), sup, q, 0, NULL);
}

/* Sends @q from the probe and waits for its reply. */
static tr_sup_reply
request(struct fx *f, tr_pid sup, tr_sup_request q)
{
	tr_sup_reply none;

	memset(&none, 0, sizeof(none));
	none.status = -1000;
	q.size = sizeof(q);
	tr_ref ref;
	tr_err err = tr_sup_call(tr_inbox_ctx(f->ib), sup, &q, 0, &ref);
	CHECK_OK(err);
	if (err < 0) {
		return none;
	}
	if (!WAIT_LOG(f, find_reply(ref.v) != NULL, WAIT_MS)) {
		return none;
	}
	tr_sup_reply rp = find_reply(ref.v)->rp;
	CHECK_EQ_INT(rp.op, q.op);
	return rp;
}

static tr_sup_reply
req_op(struct fx *f, tr_pid sup, tr_sup_op op, const char *id, tr_pid pid)
{
	tr_sup_request q;

	memset(&q, 0, sizeof(q));
	q.op = op;
	q.id = id;
	q.pid = pid;
	return request(f, sup, q);
}

/* which_children into last_kids; returns the count (or -1). */
static int
which(struct fx *f, tr_pid sup)
{
	tr_sup_reply rp =
		req_op(f, sup, TR_SUP_OP_WHICH_CHILDREN, NULL, TR_PID_NONE);
	CHECK_OK(rp.status);
	if (rp.status != TR_OK) {
		return -1;
	}
	CHECK_EQ_U64(last_nkids, rp.count);
	return (int)rp.count;
}

static tr_pid
kid_pid(const char *id)
{
	for (uint32_t i = 0; i < last_nkids; i++) {
		if (strcmp(last_kids[i].id, id) == 0) {
			return last_kids[i].pid;
		}
	}
	return TR_PID_NONE;
}

/*
 * Starts a supervisor on the probe's context and waits for the outcome of
 * the start with tr_inbox_recv() with the reference (the observer's events stay
 * queued for the log). Returns the start reply's status, or the call's error.
 */
static int32_t
start_wait(struct fx *f, const tr_sup_flags *fl, const tr_sup_child_spec *specs,
	   size_t n, tr_pid *sup)
{
	tr_ref ref;
	tr_sup_reply rp;

	tr_err err = tr_sup_start(tr_inbox_ctx(f->ib), fl, specs, n, sup, &ref);
	if (err < 0) {
		CHECK(tr_pid_is_none(*sup) && ref.v == 0);
		return err;
	}
	CHECK(!tr_pid_is_none(*sup) && ref.v != 0);
	bool got = fx_recv_ref(f, ref, TR_MSG_SUP_REPLY, *sup, &rp, sizeof(rp));
	CHECK(got);
	if (!got) {
		return -1000;
	}
	CHECK_EQ_INT(rp.op, 0); /* the start's reply */
	CHECK(tr_pid_eq(rp.pid, *sup));
	return rp.status;
}

static tr_pid
start_sup(struct fx *f, const tr_sup_flags *fl, const tr_sup_child_spec *specs,
	  size_t n)
{
	tr_pid sup = TR_PID_NONE;

	CHECK_OK(start_wait(f, fl, specs, n, &sup));
	CHECK(!tr_pid_is_none(sup));
	return sup;
}

/* Orderly stop from the probe; waits until only @left actors remain. */
static void
stop_sup(struct fx *f, tr_pid sup, uint64_t left)
{
	tr_sup_reply rp = req_op(f, sup, TR_SUP_OP_STOP, NULL, TR_PID_NONE);

	CHECK_OK(rp.status);
	WAIT_UNTIL(alive(f) == left, WAIT_MS);
}

static void
crash(struct fx *f, tr_pid who)
{
	CHECK(!tr_pid_is_none(who));
	CHECK_OK(tr_send(tr_runtime_ctx(f->rt), who, MSG_CRASH, NULL, 0));
}

/* ---- strategies --------------------------------------------------------- */

static void
test_one_for_one(void)
{
	struct fx f;
	struct kid_arg ka, kb;

	fx_start(&f, 2);
	log_reset();
	plain_probe = f.probe;
	kid_arg_init(&ka, "A", f.probe);
	kid_arg_init(&kb, "B", f.probe);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_sup_child_spec specs[] = {
		kspec("A", &kid_def, &ka, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("B", &kid_def, &kb, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("C", &plain_def, NULL, TR_SUP_PERMANENT, NOKILL_MS),
	};
	tr_pid sup = start_sup(&f, &fl, specs, 3);
	/* The start reply comes once all three have started. */
	WAIT_LOG(&f, count_ev(TR_SUP_EV_STARTED, NULL) == 3, WAIT_MS);
	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK_STR(last_kids[0].id, "A");
	CHECK_STR(last_kids[1].id, "B");
	CHECK_STR(last_kids[2].id, "C");
	tr_pid a = kid_pid("A"), b = kid_pid("B"), c = kid_pid("C");
	CHECK(!tr_pid_is_none(a) && !tr_pid_is_none(b) && !tr_pid_is_none(c));

	size_t mark = log_n;
	crash(&f, b);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, "B") == 1, WAIT_MS);
	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK(tr_pid_eq(kid_pid("A"), a));
	CHECK(tr_pid_eq(kid_pid("C"), c));
	CHECK(!tr_pid_is_none(kid_pid("B")) && !tr_pid_eq(kid_pid("B"), b));
	CHECK(tr_pid_eq(last_ev(TR_SUP_EV_RESTARTED, "B")->pid, kid_pid("B")));
	CHECK_STR(order_since(mark, true), "dB sB");
	CHECK_EQ_INT(count_rep(R_DOWN, "B", TR_EXIT_ERROR), 1);
	const tr_sup_event *ex = last_ev(TR_SUP_EV_EXITED, "B");
	CHECK(ex != NULL && ex->reason == TR_EXIT_ERROR &&
	      tr_pid_eq(ex->pid, b) && tr_pid_eq(ex->sup, sup));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 1);
	CHECK_EQ_INT(atomic_load(&ka.starts), 1);
	CHECK_EQ_INT(atomic_load(&kb.starts), 2);

	mark = log_n;
	stop_sup(&f, sup, 1);
	CHECK_STR(order_since(mark, true), "dP dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, TR_EXIT_SHUTDOWN), 3);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 1);
	fx_finish(&f);
}

/* A, B, C under @strategy; B crashes; checks the order of the reports
 * that follow, the restarts, and which children kept their pids. */
static void
crash_middle(tr_sup_strategy strategy, const char *want_order,
	     int want_restarts, bool a_keeps, bool c_keeps)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	tr_sup_child_spec specs[3];
	tr_pid old[3];

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 NOKILL_MS);
	}
	tr_sup_flags fl = kflags(strategy, 3, PERIOD_MS, f.probe);
	tr_pid sup = start_sup(&f, &fl, specs, 3);
	WAIT_LOG(&f, count_rep(R_START, NULL, -1) == 3, WAIT_MS);
	CHECK_STR(order_since(0, true), "sA sB sC");
	CHECK_EQ_INT(which(&f, sup), 3);
	for (int i = 0; i < 3; i++) {
		old[i] = kid_pid(ids[i]);
	}
	size_t mark = log_n;
	crash(&f, old[1]);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, NULL) == want_restarts,
		 WAIT_MS);
	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK_STR(order_since(mark, true), want_order);
	CHECK_EQ_INT(tr_pid_eq(kid_pid("A"), old[0]), a_keeps);
	CHECK(!tr_pid_eq(kid_pid("B"), old[1]));
	CHECK_EQ_INT(tr_pid_eq(kid_pid("C"), old[2]), c_keeps);
	for (int i = 0; i < 3; i++) {
		CHECK(!tr_pid_is_none(kid_pid(ids[i])));
	}
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "B")->reason, TR_EXIT_ERROR);
	if (!c_keeps) {
		CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "C")->reason,
			     TR_EXIT_SHUTDOWN);
	}
	CHECK_EQ_INT(atomic_load(&k[0].starts), a_keeps ? 1 : 2);
	CHECK_EQ_INT(atomic_load(&k[1].starts), 2);
	CHECK_EQ_INT(atomic_load(&k[2].starts), c_keeps ? 1 : 2);

	stop_sup(&f, sup, 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), want_restarts);
	fx_finish(&f);
}

static void
test_one_for_all(void)
{
	/* B first (it crashed), then the others in reverse, then all in
	 * order. */
	crash_middle(TR_SUP_ONE_FOR_ALL, "dB dC dA sA sB sC", 3, false, false);
}

static void
test_rest_for_one(void)
{
	/* C is stopped before B starts again. */
	crash_middle(TR_SUP_REST_FOR_ONE, "dB dC sB sC", 2, true, false);
}

static void
test_restart_types(void)
{
	struct fx f;
	struct kid_arg kp, kt1, kt2, kx;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&kp, "P", f.probe);
	kid_arg_init(&kt1, "T1", f.probe);
	kid_arg_init(&kt2, "T2", f.probe);
	kid_arg_init(&kx, "X", f.probe);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 10, PERIOD_MS, f.probe);
	tr_sup_child_spec specs[] = {
		kspec("P", &kid_def, &kp, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("T1", &kid_def, &kt1, TR_SUP_TRANSIENT, NOKILL_MS),
		kspec("T2", &kid_def, &kt2, TR_SUP_TRANSIENT, NOKILL_MS),
		kspec("X", &kid_def, &kx, TR_SUP_TEMPORARY, NOKILL_MS),
	};
	tr_pid sup = start_sup(&f, &fl, specs, 4);
	CHECK_EQ_INT(which(&f, sup), 4);
	tr_pid p = kid_pid("P"), t2 = kid_pid("T2");

	/* Transient, normal exit: not restarted, the spec stays. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), kid_pid("T1"), MSG_QUIT, NULL,
			 0));
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "T1") == 1, WAIT_MS);
	CHECK_EQ_INT(which(&f, sup), 4);
	CHECK(tr_pid_is_none(kid_pid("T1")));
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "T1")->reason, TR_EXIT_NORMAL);

	/* Transient, error: restarted. */
	crash(&f, t2);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, "T2") == 1, WAIT_MS);

	/* Temporary: never restarted, and its spec goes. */
	crash(&f, kid_pid("X"));
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "X") == 1, WAIT_MS);
	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK(tr_pid_is_none(kid_pid("X")));

	/* Permanent, normal exit: restarted all the same. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), p, MSG_QUIT, NULL, 0));
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, "P") == 1, WAIT_MS);

	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK_STR(last_kids[0].id, "P");
	CHECK_STR(last_kids[1].id, "T1");
	CHECK_STR(last_kids[2].id, "T2");
	CHECK(!tr_pid_is_none(kid_pid("P")) && !tr_pid_eq(kid_pid("P"), p));
	CHECK(tr_pid_is_none(kid_pid("T1")));
	CHECK(!tr_pid_is_none(kid_pid("T2")) && !tr_pid_eq(kid_pid("T2"), t2));
	CHECK_EQ_INT(last_kids[1].restart, TR_SUP_TRANSIENT);
	tr_sup_reply rp =
		req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK_EQ_U64(rp.specs, 3);
	CHECK_EQ_U64(rp.active, 2);
	CHECK_EQ_U64(rp.workers, 3);
	CHECK_EQ_U64(rp.supervisors, 0);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 2);
	CHECK_EQ_INT(atomic_load(&kp.starts), 2);
	CHECK_EQ_INT(atomic_load(&kt1.starts), 1);
	CHECK_EQ_INT(atomic_load(&kt2.starts), 2);
	CHECK_EQ_INT(atomic_load(&kx.starts), 1);

	stop_sup(&f, sup, 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 2);
	fx_finish(&f);
}

/* ---- intensity ---------------------------------------------------------- */

static void
test_intensity_exceeded(void)
{
	struct fx f;
	struct kid_arg ka, kb;
	tr_pid boss;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&ka, "A", f.probe);
	kid_arg_init(&kb, "B", f.probe);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_sup_child_spec specs[] = {
		kspec("A", &kid_def, &ka, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("B", &kid_def, &kb, TR_SUP_PERMANENT, NOKILL_MS),
	};
	tr_pid sup = boss_start(&f, &boss, &fl, specs, 2, TR_OK);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(which(&f, sup), 2);
		crash(&f, kid_pid("A"));
		if (i < 3) {
			WAIT_LOG(&f,
				 count_ev(TR_SUP_EV_RESTARTED, "A") == i + 1,
				 WAIT_MS);
		}
	}
	WAIT_LOG(&f, find_type(MSG_BOSS_EXIT, 0) != NULL, WAIT_MS);
	const struct entry *e = find_type(MSG_BOSS_EXIT, 0);
	CHECK(e != NULL && tr_pid_eq(e->sig.from, sup) &&
	      e->sig.reason == TR_SUP_EXIT_INTENSITY);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_INTENSITY, "A"), 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_SHUTDOWN, NULL), 1);
	CHECK_EQ_INT(last_ev(TR_SUP_EV_SHUTDOWN, NULL)->reason,
		     TR_SUP_EXIT_INTENSITY);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 3);
	/* Every child is gone: four crashes of A, B stopped by the shutdown. */
	CHECK_EQ_INT(count_rep(R_DOWN, "A", TR_EXIT_ERROR), 4);
	CHECK_EQ_INT(count_rep(R_DOWN, "B", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, -1), 5);
	WAIT_UNTIL(alive(&f) == 2, WAIT_MS); /* the probe and the boss */
	int32_t normal = TR_EXIT_NORMAL;
	SEND(&f, boss, MSG_BOSS_DIE, &normal, sizeof(normal));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	fx_finish(&f);
}

static void
test_intensity_not_exceeded(void)
{
	struct fx f;
	struct kid_arg ka;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&ka, "A", f.probe);
	tr_sup_child_spec specs[] = {
		kspec("A", &kid_def, &ka, TR_SUP_PERMANENT, NOKILL_MS),
	};

	/* Three restarts are allowed within the period: exactly three. */
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = start_sup(&f, &fl, specs, 1);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(which(&f, sup), 1);
		crash(&f, kid_pid("A"));
		WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, "A") == i + 1,
			 WAIT_MS);
	}
	CHECK_EQ_INT(which(&f, sup), 1);
	CHECK(!tr_pid_is_none(kid_pid("A")));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_INTENSITY, NULL), 0);
	stop_sup(&f, sup, 1);

	/*
	 * One restart per 150 ms, crashes 300 ms apart: the window slides,
	 * so four crashes never make two restarts in one period. The gap is
	 * the point of the test, not a way to wait for something.
	 */
	log_reset();
	fl = kflags(TR_SUP_ONE_FOR_ONE, 1, 150, f.probe);
	sup = start_sup(&f, &fl, specs, 1);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(which(&f, sup), 1);
		crash(&f, kid_pid("A"));
		WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, "A") == i + 1,
			 WAIT_MS);
		uint64_t until = harness_now_ms() + 300;
		WAIT_UNTIL(harness_now_ms() >= until, 1000);
	}
	CHECK_EQ_INT(which(&f, sup), 1);
	CHECK(!tr_pid_is_none(kid_pid("A")));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_INTENSITY, NULL), 0);
	stop_sup(&f, sup, 1);
	CHECK_EQ_INT(atomic_load(&ka.starts), 4 + 5);
	fx_finish(&f);
}

/* ---- nesting ------------------------------------------------------------ */

static void
test_nested(void)
{
	struct fx f;
	struct kid_arg kw, kg1, kg2;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&kw, "W", f.probe);
	kid_arg_init(&kg1, "G1", f.probe);
	kid_arg_init(&kg2, "G2", f.probe);
	tr_sup_flags inner_fl =
		kflags(TR_SUP_ONE_FOR_ONE, 1, PERIOD_MS, f.probe);
	tr_sup_child_spec inner[] = {
		kspec("G1", &kid_def, &kg1, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("G2", &kid_def, &kg2, TR_SUP_PERMANENT, NOKILL_MS),
	};
	tr_sup_flags top_fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_sup_child_spec top[2];
	top[0] = kspec("W", &kid_def, &kw, TR_SUP_PERMANENT, NOKILL_MS);
	top[1] = kspec("inner", NULL, NULL, TR_SUP_PERMANENT, TR_SUP_INFINITY);
	top[1].sup_flags = &inner_fl;
	top[1].sup_specs = inner;
	top[1].sup_nspecs = 2;
	tr_pid sup = start_sup(&f, &top_fl, top, 2);
	/* The inner supervisor counts as started once its children have. */
	WAIT_LOG(&f, count_ev_sup(sup, TR_SUP_EV_STARTED, "inner") == 1,
		 WAIT_MS);
	CHECK_STR(order_since(0, true), "sW sG1 sG2");
	CHECK_EQ_INT(which(&f, sup), 2);
	tr_pid w = kid_pid("W"), in1 = kid_pid("inner");
	CHECK_EQ_INT(last_kids[1].type, TR_SUP_SUPERVISOR);
	tr_sup_reply rp =
		req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.supervisors, 1);
	CHECK_EQ_U64(rp.workers, 1);
	CHECK_EQ_INT(which(&f, in1), 2);
	tr_pid g1 = kid_pid("G1"), g2 = kid_pid("G2");

	/* One restart is within the inner intensity... */
	crash(&f, g1);
	WAIT_LOG(&f, count_ev_sup(in1, TR_SUP_EV_RESTARTED, "G1") == 1,
		 WAIT_MS);
	CHECK_EQ_INT(which(&f, in1), 2);
	tr_pid g1b = kid_pid("G1");
	/* ...the second is not: the inner one gives up and the top one
	 * restarts it, with fresh grandchildren. */
	size_t mark = log_n;
	crash(&f, g1b);
	WAIT_LOG(&f, count_ev_sup(sup, TR_SUP_EV_RESTARTED, "inner") == 1,
		 WAIT_MS);
	CHECK_EQ_INT(count_ev_sup(in1, TR_SUP_EV_INTENSITY, "G1"), 1);
	const tr_sup_event *ex = last_ev(TR_SUP_EV_EXITED, "inner");
	CHECK(ex != NULL && tr_pid_eq(ex->sup, sup) &&
	      tr_pid_eq(ex->pid, in1) && ex->reason == TR_SUP_EXIT_INTENSITY);
	CHECK_STR(order_since(mark, true), "dG1 dG2 sG1 sG2");
	CHECK_EQ_INT(which(&f, sup), 2);
	CHECK(tr_pid_eq(kid_pid("W"), w));
	tr_pid in2 = kid_pid("inner");
	CHECK(!tr_pid_is_none(in2) && !tr_pid_eq(in2, in1));
	CHECK_EQ_INT(which(&f, in2), 2);
	CHECK(!tr_pid_is_none(kid_pid("G1")) && !tr_pid_eq(kid_pid("G1"), g1) &&
	      !tr_pid_eq(kid_pid("G1"), g1b));
	CHECK(!tr_pid_is_none(kid_pid("G2")) && !tr_pid_eq(kid_pid("G2"), g2));
	CHECK_EQ_INT(atomic_load(&kw.starts), 1);
	CHECK_EQ_INT(atomic_load(&kg1.starts), 3);
	CHECK_EQ_INT(atomic_load(&kg2.starts), 2);

	/* The whole tree stops in order: inner (its children in reverse),
	 * then W. */
	mark = log_n;
	stop_sup(&f, sup, 1);
	CHECK_STR(order_since(mark, true), "dG2 dG1 dW");
	CHECK_EQ_INT(count_ev_sup(sup, TR_SUP_EV_RESTARTED, NULL), 1);
	CHECK_EQ_INT(count_ev_sup(in2, TR_SUP_EV_RESTARTED, NULL), 0);
	fx_finish(&f);
}

/* ---- shutdown ----------------------------------------------------------- */

static void
test_shutdown_order(void)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	tr_sup_child_spec specs[3];
	tr_pid boss;

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 NOKILL_MS);
	}
	k[1].trap = true; /* B sees the shutdown as a message, then stops */
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = boss_start(&f, &boss, &fl, specs, 3, TR_OK);
	CHECK_STR(order_since(0, true), "sA sB sC");

	/* A request from an actor: the reply goes to it (and the boss
	 * forwards it here). */
	tr_sup_request q;
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.op = TR_SUP_OP_COUNT_CHILDREN;
	size_t mark = log_n;
	SEND(&f, boss, MSG_BOSS_REQ, &q, sizeof(q));
	WAIT_LOG(&f, find_type(MSG_BOSS_RESULT, mark) != NULL, WAIT_MS);
	const struct entry *e = find_type(MSG_BOSS_RESULT, mark);
	CHECK(e != NULL && e->result == TR_OK);
	uint64_t ref = e != NULL ? e->result_ref : 0;
	WAIT_LOG(&f, find_reply(ref) != NULL, WAIT_MS);
	e = find_reply(ref);
	CHECK(e != NULL && e->rp.op == TR_SUP_OP_COUNT_CHILDREN &&
	      e->rp.status == TR_OK && e->rp.active == 3);

	/* TR_SUP_OP_STOP from the boss, the supervisor's parent. */
	mark = log_n;
	SEND(&f, boss, MSG_BOSS_STOPSUP, NULL, 0);
	WAIT_LOG(&f, find_type(MSG_BOSS_EXIT, mark) != NULL, WAIT_MS);
	e = find_type(MSG_BOSS_EXIT, mark);
	CHECK(e != NULL && tr_pid_eq(e->sig.from, sup) &&
	      e->sig.reason == TR_EXIT_SHUTDOWN);
	e = find_type(MSG_BOSS_RESULT, mark);
	CHECK(e != NULL && e->result == TR_OK);
	/* The stop reply came back to the boss before the exit signal. */
	bool replied = false;
	for (size_t i = mark; i < log_n; i++) {
		if (log_v[i].type == TR_MSG_SUP_REPLY &&
		    log_v[i].rp.op == TR_SUP_OP_STOP) {
			replied = log_v[i].rp.status == TR_OK;
		}
	}
	CHECK(replied);
	CHECK_STR(order_since(mark, true), "dC dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, TR_EXIT_SHUTDOWN), 3);
	CHECK_EQ_INT(count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_SHUTDOWN, NULL), 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_EXITED, NULL), 3);
	WAIT_UNTIL(alive(&f) == 2, WAIT_MS);
	SEND(&f, boss, MSG_BOSS_DIE, &(int32_t){ TR_EXIT_NORMAL },
	     sizeof(int32_t));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	fx_finish(&f);
}

static void
test_shutdown_kill(void)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	/* A is killed at once; B ignores the shutdown and is killed after
	 * 300 ms; C stops on the shutdown. */
	const uint64_t shutdown_ms[3] = { 0, 300, NOKILL_MS };
	tr_sup_child_spec specs[3];

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 shutdown_ms[i]);
	}
	k[1].trap = true;
	k[1].ignore_shutdown = true;
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = start_sup(&f, &fl, specs, 3);
	WAIT_LOG(&f, count_rep(R_START, NULL, -1) == 3, WAIT_MS);

	size_t mark = log_n;
	uint64_t t0 = harness_now_ms();
	tr_sup_reply rp = req_op(&f, sup, TR_SUP_OP_STOP, NULL, TR_PID_NONE);
	uint64_t took = harness_now_ms() - t0;
	CHECK_OK(rp.status);
	printf("  stop with a 300 ms kill took %" PRIu64 " ms\n", took);
	/* Not before B's 300 ms were up (t0 was read before the stop). */
	CHECK(took >= 300);
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	CHECK_STR(order_since(mark, true), "dC dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, "C", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(count_rep(R_DOWN, "B", TR_EXIT_KILLED), 1);
	CHECK_EQ_INT(count_rep(R_DOWN, "A", TR_EXIT_KILLED), 1);
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "C")->reason, TR_EXIT_SHUTDOWN);
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "B")->reason, TR_EXIT_KILLED);
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "A")->reason, TR_EXIT_KILLED);
	fx_finish(&f);
}

static void
test_parent_exit(void)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	tr_sup_child_spec specs[3];
	tr_pid boss;

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 NOKILL_MS);
	}
	tr_sup_flags fl = kflags(TR_SUP_REST_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = boss_start(&f, &boss, &fl, specs, 3, TR_OK);
	size_t mark = log_n;
	/* The parent fails: the supervisor shuts down in order, with the
	 * parent's reason, and restarts nothing. */
	SEND(&f, boss, MSG_BOSS_DIE, &(int32_t){ TR_EXIT_ERROR },
	     sizeof(int32_t));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	WAIT_LOG(&f, count_rep(R_DOWN, NULL, -1) == 3, WAIT_MS);
	CHECK_STR(order_since(mark, true), "dC dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, TR_EXIT_SHUTDOWN), 3);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, NULL) == 3, WAIT_MS);
	const tr_sup_event *ev = last_ev(TR_SUP_EV_SHUTDOWN, NULL);
	CHECK(ev != NULL && ev->reason == TR_EXIT_ERROR &&
	      tr_pid_eq(ev->sup, sup));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 0);
	fx_finish(&f);
}

/* ---- dynamic children --------------------------------------------------- */

static void
test_dynamic_children(void)
{
	struct fx f;
	struct kid_arg k1, k2, kbad;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&k1, "d1", f.probe);
	kid_arg_init(&k2, "d2", f.probe);
	kid_arg_init(&kbad, "bad", f.probe);
	atomic_store(&kbad.fail_inits, 1000);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 5, PERIOD_MS, f.probe);
	/* No child at start is fine for the static strategies. */
	tr_pid sup = start_sup(&f, &fl, NULL, 0);
	CHECK_EQ_INT(which(&f, sup), 0);

	tr_sup_child_spec s1 =
		kspec("d1", &kid_def, &k1, TR_SUP_PERMANENT, NOKILL_MS);
	tr_sup_child_spec s2 =
		kspec("d2", &kid_def, &k2, TR_SUP_PERMANENT, NOKILL_MS);
	tr_sup_child_spec sbad =
		kspec("bad", &kid_def, &kbad, TR_SUP_PERMANENT, NOKILL_MS);
	tr_sup_request q;
	memset(&q, 0, sizeof(q));
	q.op = TR_SUP_OP_START_CHILD;
	q.spec = &s1;
	tr_sup_reply rp = request(&f, sup, q);
	CHECK_OK(rp.status);
	tr_pid d1 = rp.pid;
	CHECK(!tr_pid_is_none(d1));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_STARTED, "d1"), 1);
	CHECK(tr_pid_eq(last_ev(TR_SUP_EV_STARTED, "d1")->pid, d1));
	CHECK_EQ_INT(count_rep(R_START, "d1", -1), 1);

	/* The same id again: refused, with the running pid. */
	rp = request(&f, sup, q);
	CHECK_ERR(rp.status, TR_EEXIST);
	CHECK(tr_pid_eq(rp.pid, d1));

	q.spec = &s2;
	rp = request(&f, sup, q);
	CHECK_OK(rp.status);
	tr_pid d2 = rp.pid;

	/* A child whose init fails: refused, and its spec is not kept. */
	q.spec = &sbad;
	rp = request(&f, sup, q);
	CHECK_ERR(rp.status, TR_EREJECTED);
	CHECK_EQ_INT(rp.reason, TR_EXIT_INIT_FAILED);
	CHECK(tr_pid_is_none(rp.pid));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_START_FAILED, "bad"), 1);

	CHECK_EQ_INT(which(&f, sup), 2);
	CHECK_STR(last_kids[0].id, "d1");
	CHECK(tr_pid_eq(last_kids[0].pid, d1));
	CHECK_STR(last_kids[1].id, "d2");
	CHECK(tr_pid_eq(last_kids[1].pid, d2));
	rp = req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.specs, 2);
	CHECK_EQ_U64(rp.active, 2);
	CHECK_EQ_U64(rp.workers, 2);
	CHECK_EQ_U64(rp.supervisors, 0);

	/* terminate_child: stopped as by a shutdown, not restarted. */
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "d1", TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK(tr_pid_eq(rp.pid, d1));
	CHECK_EQ_INT(count_rep(R_DOWN, "d1", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(which(&f, sup), 2);
	CHECK(tr_pid_is_none(kid_pid("d1")));
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "d1", TR_PID_NONE);
	CHECK_OK(rp.status); /* already stopped: fine, as in OTP */
	CHECK(tr_pid_is_none(rp.pid));
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "nope", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ENOENT);

	/* restart_child and delete_child want a stopped child. */
	rp = req_op(&f, sup, TR_SUP_OP_RESTART_CHILD, "d2", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ESTATE);
	CHECK(tr_pid_eq(rp.pid, d2));
	rp = req_op(&f, sup, TR_SUP_OP_DELETE_CHILD, "d2", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ESTATE);
	rp = req_op(&f, sup, TR_SUP_OP_RESTART_CHILD, "nope", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ENOENT);
	rp = req_op(&f, sup, TR_SUP_OP_RESTART_CHILD, "d1", TR_PID_NONE);
	CHECK_OK(rp.status);
	tr_pid d1b = rp.pid;
	CHECK(!tr_pid_is_none(d1b) && !tr_pid_eq(d1b, d1));
	CHECK_EQ_INT(count_ev(TR_SUP_EV_STARTED, "d1"), 2);
	CHECK_EQ_INT(atomic_load(&k1.starts), 2);

	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "d1", TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK(tr_pid_eq(rp.pid, d1b));
	rp = req_op(&f, sup, TR_SUP_OP_DELETE_CHILD, "d1", TR_PID_NONE);
	CHECK_OK(rp.status);
	rp = req_op(&f, sup, TR_SUP_OP_DELETE_CHILD, "d1", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ENOENT);
	CHECK_EQ_INT(which(&f, sup), 1);
	CHECK_STR(last_kids[0].id, "d2");
	rp = req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.specs, 1);
	CHECK_EQ_U64(rp.active, 1);

	/* A nested supervisor as a dynamic child. Its spec and flags live on
	 * this stack frame only during the request: the copy is what counts. */
	struct kid_arg kg;
	kid_arg_init(&kg, "g", f.probe);
	{
		tr_sup_flags sub_fl =
			kflags(TR_SUP_ONE_FOR_ALL, 1, PERIOD_MS, f.probe);
		tr_sup_child_spec sub_kids[1] = {
			kspec("g", &kid_def, &kg, TR_SUP_PERMANENT, NOKILL_MS),
		};
		tr_sup_child_spec sub = kspec(
			"sub", NULL, NULL, TR_SUP_TRANSIENT, TR_SUP_INFINITY);
		sub.sup_flags = &sub_fl;
		sub.sup_specs = sub_kids;
		sub.sup_nspecs = 1;
		q.spec = &sub;
		rp = request(&f, sup, q);
	}
	CHECK_OK(rp.status);
	tr_pid subp = rp.pid;
	CHECK_EQ_INT(atomic_load(&kg.starts), 1);
	CHECK_EQ_INT(which(&f, subp), 1);
	CHECK_STR(last_kids[0].id, "g");
	rp = req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.specs, 2);
	CHECK_EQ_U64(rp.active, 2);
	CHECK_EQ_U64(rp.supervisors, 1);
	CHECK_EQ_U64(rp.workers, 1);
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "sub", TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK(tr_pid_eq(rp.pid, subp));
	/* Stopping the nested supervisor stopped its child first. */
	CHECK_EQ_INT(count_rep(R_DOWN, "g", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(last_ev(TR_SUP_EV_EXITED, "sub")->reason,
		     TR_EXIT_SHUTDOWN);
	rp = req_op(&f, sup, TR_SUP_OP_RESTART_CHILD, "sub", TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK(!tr_pid_is_none(rp.pid) && !tr_pid_eq(rp.pid, subp));
	CHECK_EQ_INT(atomic_load(&kg.starts), 2);
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "sub", TR_PID_NONE);
	CHECK_OK(rp.status);
	rp = req_op(&f, sup, TR_SUP_OP_DELETE_CHILD, "sub", TR_PID_NONE);
	CHECK_OK(rp.status);
	CHECK_EQ_INT(count_rep(R_DOWN, "g", TR_EXIT_SHUTDOWN), 2);

	/* An argument instead of a spec is for simple_one_for_one only. */
	q.spec = NULL;
	rp = request(&f, sup, q);
	CHECK_ERR(rp.status, TR_EINVAL);
	/* TERMINATE_CHILD by pid only is for simple_one_for_one. */
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, NULL, d2);
	CHECK_ERR(rp.status, TR_EINVAL);

	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 0);
	stop_sup(&f, sup, 1);
	CHECK_EQ_INT(count_rep(R_DOWN, "d2", TR_EXIT_SHUTDOWN), 1);
	fx_finish(&f);
}

#define N_SIMPLE 100
#define N_CRASH  10

static void
test_simple_one_for_one(void)
{
	struct fx f;
	struct kid_arg kt;
	struct kid_arg *ka = calloc(N_SIMPLE, sizeof(*ka));
	tr_pid pid[N_SIMPLE];
	tr_ref ref[N_SIMPLE];

	CHECK(ka != NULL);
	if (ka == NULL) {
		return;
	}
	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&kt, "tmpl", f.probe);
	tr_sup_flags fl =
		kflags(TR_SUP_SIMPLE_ONE_FOR_ONE, 20, PERIOD_MS, f.probe);
	tr_sup_child_spec tmpl =
		kspec("w", &kid_def, &kt, TR_SUP_PERMANENT, NOKILL_MS);
	tr_pid sup = start_sup(&f, &fl, &tmpl, 1);
	CHECK_EQ_INT(which(&f, sup), 0);

	/* 100 start requests in flight at once, answered in order. */
	for (int i = 0; i < N_SIMPLE; i++) {
		char name[8];
		snprintf(name, sizeof(name), "w%d", i);
		kid_arg_init(&ka[i], name, f.probe);
		tr_sup_request q;
		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.op = TR_SUP_OP_START_CHILD;
		q.arg = &ka[i];
		CHECK_OK(tr_sup_call(tr_inbox_ctx(f.ib), sup, &q, 0, &ref[i]));
	}
	WAIT_LOG(&f, find_reply(ref[N_SIMPLE - 1].v) != NULL, WAIT_MS);
	for (int i = 0; i < N_SIMPLE; i++) {
		const struct entry *e = find_reply(ref[i].v);
		pid[i] = TR_PID_NONE;
		CHECK(e != NULL);
		if (e != NULL) {
			CHECK_OK(e->rp.status);
			pid[i] = e->rp.pid;
		}
		CHECK(!tr_pid_is_none(pid[i]));
		CHECK_EQ_INT(atomic_load(&ka[i].starts), 1);
	}
	CHECK_EQ_INT(atomic_load(&kt.starts),
		     0); /* the template's arg: unused */
	CHECK_EQ_INT(count_ev(TR_SUP_EV_STARTED, "w"), N_SIMPLE);
	tr_sup_reply rp =
		req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.specs, 1);
	CHECK_EQ_U64(rp.active, N_SIMPLE);
	CHECK_EQ_U64(rp.workers, N_SIMPLE);

	for (int i = 0; i < N_CRASH; i++) {
		crash(&f, pid[i * 10]);
	}
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, NULL) == N_CRASH, WAIT_MS);
	rp = req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.active, N_SIMPLE);
	CHECK_EQ_INT(which(&f, sup), N_SIMPLE);
	for (int i = 0; i < N_SIMPLE; i++) {
		/* Each restart reused its own child's argument. */
		CHECK_EQ_INT(atomic_load(&ka[i].starts), i % 10 == 0 ? 2 : 1);
		CHECK_STR(last_kids[i].id, "w");
	}
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, TR_EXIT_ERROR), N_CRASH);

	/* terminate_child by pid removes the child. */
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, NULL, pid[55]);
	CHECK_OK(rp.status);
	CHECK(tr_pid_eq(rp.pid, pid[55]));
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, NULL, pid[55]);
	CHECK_ERR(rp.status, TR_ENOENT);
	rp = req_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL, TR_PID_NONE);
	CHECK_EQ_U64(rp.active, N_SIMPLE - 1);
	CHECK_EQ_U64(rp.workers, N_SIMPLE - 1);

	/* What does not apply to simple_one_for_one. */
	tr_sup_request q;
	memset(&q, 0, sizeof(q));
	q.op = TR_SUP_OP_START_CHILD;
	q.spec = &tmpl;
	rp = request(&f, sup, q);
	CHECK_ERR(rp.status, TR_EINVAL);
	rp = req_op(&f, sup, TR_SUP_OP_RESTART_CHILD, "w", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_EINVAL);
	rp = req_op(&f, sup, TR_SUP_OP_DELETE_CHILD, "w", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_EINVAL);
	rp = req_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "w", TR_PID_NONE);
	CHECK_ERR(rp.status, TR_ENOENT);

	stop_sup(&f, sup, 1);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), N_CRASH);
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, TR_EXIT_SHUTDOWN), N_SIMPLE);
	CHECK_EQ_INT(count_rep(R_DOWN, NULL, -1), N_SIMPLE + N_CRASH);
	fx_finish(&f);
	free(ka);
}

/* ---- start failures, bad input ------------------------------------------ */

static void
test_start_fails(void)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	tr_sup_child_spec specs[3];
	tr_pid boss;

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 NOKILL_MS);
	}
	atomic_store(&k[1].fail_inits, 1);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = TR_PID_NONE;
	CHECK_ERR(start_wait(&f, &fl, specs, 3, &sup), TR_EREJECTED);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, sup), WAIT_MS));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	WAIT_LOG(&f, count_rep(R_DOWN, NULL, -1) == 2, WAIT_MS);
	/* A started, B's init failed (its teardown still runs), A was
	 * stopped again, and C was never started. */
	CHECK_STR(order_since(0, true), "sA fB dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, "A", TR_EXIT_SHUTDOWN), 1);
	CHECK_EQ_INT(count_rep(R_DOWN, "B", TR_EXIT_INIT_FAILED), 1);
	CHECK_EQ_INT(atomic_load(&k[2].starts), 0);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "A") == 1, WAIT_MS);
	const tr_sup_event *ev = last_ev(TR_SUP_EV_START_FAILED, "B");
	CHECK(ev != NULL && ev->reason == TR_EXIT_INIT_FAILED);

	/* The same from an actor, linked: a failed start reply, then the
	 * exit signal with TR_SUP_EXIT_START_FAILED. */
	log_reset();
	atomic_store(&k[1].fail_inits, 1);
	sup = boss_start(&f, &boss, &fl, specs, 3, TR_EREJECTED);
	WAIT_LOG(&f, find_type(MSG_BOSS_EXIT, 0) != NULL, WAIT_MS);
	const struct entry *e = find_type(MSG_BOSS_EXIT, 0);
	CHECK(e != NULL && tr_pid_eq(e->sig.from, sup) &&
	      e->sig.reason == TR_SUP_EXIT_START_FAILED);
	CHECK_EQ_INT(find_type(TR_MSG_SUP_REPLY, 0)->rp.reason,
		     TR_EXIT_INIT_FAILED);
	WAIT_UNTIL(alive(&f) == 2, WAIT_MS);
	CHECK_STR(order_since(0, true), "sA fB dB dA");

	/* A nested supervisor whose child fails makes the top one fail. */
	log_reset();
	atomic_store(&k[1].fail_inits, 1);
	tr_sup_child_spec top[2];
	top[0] = kspec("A", &kid_def, &k[0], TR_SUP_PERMANENT, NOKILL_MS);
	top[1] = kspec("inner", NULL, NULL, TR_SUP_PERMANENT, TR_SUP_INFINITY);
	top[1].sup_flags = &fl;
	top[1].sup_specs = &specs[1];
	top[1].sup_nspecs = 2;
	CHECK_ERR(start_wait(&f, &fl, top, 2, &sup), TR_EREJECTED);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, sup), WAIT_MS));
	WAIT_UNTIL(alive(&f) == 2, WAIT_MS);
	WAIT_LOG(&f, count_rep(R_DOWN, NULL, -1) == 2, WAIT_MS);
	CHECK_STR(order_since(0, true), "sA fB dB dA");
	ev = last_ev(TR_SUP_EV_START_FAILED, "inner");
	CHECK(ev != NULL && ev->reason == TR_SUP_EXIT_START_FAILED);

	SEND(&f, boss, MSG_BOSS_DIE, &(int32_t){ TR_EXIT_NORMAL },
	     sizeof(int32_t));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	fx_finish(&f);
}

static void
test_bad_input(void)
{
	struct fx f;
	struct kid_arg ka;
	tr_pid sup = TR_PID_NONE;
	char long_id[TR_SUP_ID_MAX + 8];

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&ka, "A", f.probe);
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, TR_PID_NONE);
	tr_sup_child_spec good =
		kspec("A", &kid_def, &ka, TR_SUP_PERMANENT, NOKILL_MS);
	tr_sup_child_spec two[2] = { good, good };
	tr_ctx *cx = tr_inbox_ctx(f.ib);

	/* Flags. */
	CHECK_ERR(tr_sup_start(NULL, &fl, &good, 1, &sup, NULL), TR_EINVAL);
	CHECK_ERR(tr_sup_start(cx, NULL, &good, 1, &sup, NULL), TR_EINVAL);
	tr_sup_flags bad = fl;
	bad.size = 0;
	CHECK_ERR(tr_sup_start(cx, &bad, &good, 1, &sup, NULL), TR_EINVAL);
	bad = fl;
	bad.strategy = (tr_sup_strategy)7;
	CHECK_ERR(tr_sup_start(cx, &bad, &good, 1, &sup, NULL), TR_EINVAL);
	bad = fl;
	bad.period_ms = 0;
	CHECK_ERR(tr_sup_start(cx, &bad, &good, 1, &sup, NULL), TR_EINVAL);
	bad = fl;
	bad.intensity = TR_SUP_MAX_INTENSITY + 1;
	CHECK_ERR(tr_sup_start(cx, &bad, &good, 1, &sup, NULL), TR_EINVAL);

	/* Spec lists. */
	CHECK_ERR(tr_sup_start(cx, &fl, NULL, 2, &sup, NULL), TR_EINVAL);
	CHECK_ERR(tr_sup_start(cx, &fl, two, 2, &sup, NULL), TR_EEXIST);
	bad = fl;
	bad.strategy = TR_SUP_SIMPLE_ONE_FOR_ONE;
	CHECK_ERR(tr_sup_start(cx, &bad, NULL, 0, &sup, NULL), TR_EINVAL);
	two[1].id = "B";
	CHECK_ERR(tr_sup_start(cx, &bad, two, 2, &sup, NULL), TR_EINVAL);

	/* Specs. */
	tr_sup_child_spec s = good;
	s.size = 0;
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s = good;
	s.id = NULL;
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s.id = "";
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s.id = long_id;
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s = good;
	s.def = NULL;
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s = good;
	s.restart = (tr_sup_restart)9;
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	s = good;
	s.sup_flags = &fl; /* both a definition and a nested supervisor */
	CHECK_ERR(tr_sup_start(cx, &fl, &s, 1, &sup, NULL), TR_EINVAL);
	/* A spec that nests itself: too deep. */
	tr_sup_child_spec loop =
		kspec("L", NULL, NULL, TR_SUP_PERMANENT, TR_SUP_INFINITY);
	loop.sup_flags = &fl;
	loop.sup_specs = &loop;
	loop.sup_nspecs = 1;
	CHECK_ERR(tr_sup_start(cx, &fl, &loop, 1, &sup, NULL), TR_EINVAL);
	/* A bad spec inside a nested one. */
	s = good;
	s.def = NULL;
	tr_sup_child_spec nest = loop;
	nest.sup_specs = &s;
	CHECK_ERR(tr_sup_start(cx, &fl, &nest, 1, &sup, NULL), TR_EINVAL);
	CHECK(tr_pid_is_none(sup));
	/* A link needs an actor: a thread's context cannot be a parent. */
	bad = fl;
	bad.is_linked = true;
	CHECK_ERR(tr_sup_start(cx, &bad, &good, 1, &sup, NULL), TR_EINVAL);
	CHECK_ERR(
		tr_sup_start(tr_runtime_ctx(f.rt), &bad, &good, 1, &sup, NULL),
		TR_EINVAL);
	CHECK(tr_pid_is_none(sup));
	CHECK_EQ_U64(alive(&f), 1); /* the probe: nothing was left running */

	/* Requests. */
	tr_pid live = start_sup(&f, &fl, &good, 1);
	tr_sup_request q;
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.op = TR_SUP_OP_WHICH_CHILDREN;
	CHECK_ERR(call(&f, live, NULL), TR_EINVAL);
	CHECK_ERR(tr_sup_call(NULL, live, &q, 0, NULL), TR_EINVAL);
	CHECK_ERR(call(&f, TR_PID_NONE, &q), TR_EINVAL);
	tr_sup_request b = q;
	b.size = 0;
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b = q;
	b.op = (tr_sup_op)99;
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b.op = 0; /* the start's reply, not a request */
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b.op = TR_SUP_OP_RESTART_CHILD; /* without an id */
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b.op = TR_SUP_OP_TERMINATE_CHILD; /* without an id or a pid */
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b.id = long_id;
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	b = q;
	b.op = TR_SUP_OP_START_CHILD;
	s = good;
	s.def = NULL;
	b.spec = &s;
	CHECK_ERR(call(&f, live, &b), TR_EINVAL);
	/* Nothing above reached the supervisor (only the start report of
	 * its child comes), and it still answers. */
	WAIT_LOG(&f, count_rep(R_START, "A", -1) == 1, WAIT_MS);
	CHECK(fx_recv_none(&f, 50));
	CHECK_EQ_INT(which(&f, live), 1);

	/* Reading replies: a fixed reply of another size is not one, and
	 * the children came as their own type, sized by their count. */
	tr_sup_reply rp;
	memset(&rp, 0, sizeof(rp));
	tr_msg jm = { .type = TR_MSG_SUP_REPLY, .data = &rp, .size = 0 };
	CHECK(TR_MSG_AS(&jm, tr_sup_reply) == NULL);
	jm.size = sizeof(rp) - 1;
	CHECK(TR_MSG_AS(&jm, tr_sup_reply) == NULL);
	jm.size = sizeof(rp);
	CHECK(TR_MSG_AS(&jm, tr_sup_reply) == &rp);
	const struct entry *kids = find_type(TR_MSG_SUP_CHILDREN, 0);
	CHECK(kids != NULL && kids->rp.op == TR_SUP_OP_WHICH_CHILDREN &&
	      kids->rp.count == 1);
	CHECK_EQ_U64(last_nkids, 1);
	CHECK_STR(last_kids[0].id, "A");

	stop_sup(&f, live, 1);
	fx_finish(&f);

	/* Nothing waits, so a runtime that does not run yet takes a start:
	 * the reply comes once it runs. */
	tr_runtime *rt;
	tr_inbox *ib;
	tr_ref ref;
	tr_received r;
	CHECK_OK(tr_runtime_create(NULL, &rt));
	CHECK_OK(tr_inbox_create(rt, &ib));
	CHECK_OK(tr_sup_start(tr_inbox_ctx(ib), &fl, &good, 1, &sup, &ref));
	CHECK_OK(tr_runtime_start(rt));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(ib, &ref, WAIT_MS, &r));
	const tr_sup_reply *srp = TR_MSG_AS(&r, tr_sup_reply);
	CHECK(r.type == TR_MSG_SUP_REPLY && srp != NULL && srp->op == 0 &&
	      srp->status == TR_OK);
	tr_received_fini(&r);
	CHECK(tr_actor_alive(rt, sup));
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	CHECK_OK(tr_runtime_join(rt));
	check_final_metrics(rt);
	tr_runtime_destroy(rt);
}

/* ---- while a task waits ------------------------------------------------- */

/* Where in the log the reply of reference @ref is (log_n if nowhere). */
static size_t
reply_at(uint64_t ref)
{
	const struct entry *e = find_reply(ref);

	return e != NULL ? (size_t)(e - log_v) : log_n;
}

/* Where the first event of @kind for @id since @from is (log_n if none). */
static size_t
ev_at(uint32_t kind, const char *id, size_t from)
{
	for (size_t i = from; i < log_n; i++) {
		if (log_v[i].type == TR_MSG_SUP_EVENT &&
		    log_v[i].ev.kind == kind &&
		    strcmp(log_v[i].ev.id, id) == 0) {
			return i;
		}
	}
	return log_n;
}

static tr_ref
call_op(struct fx *f, tr_pid sup, tr_sup_op op, const char *id)
{
	tr_sup_request q;
	tr_ref ref = { 0 };

	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.op = op;
	q.id = id;
	CHECK_OK(tr_sup_call(tr_inbox_ctx(f->ib), sup, &q, 0, &ref));
	return ref;
}

static void
test_while_waiting(void)
{
	struct fx f;
	struct kid_arg k[3];
	const char *ids[3] = { "A", "B", "C" };
	tr_sup_child_spec specs[3];

	fx_start(&f, 2);
	log_reset();
	for (int i = 0; i < 3; i++) {
		kid_arg_init(&k[i], ids[i], f.probe);
		specs[i] = kspec(ids[i], &kid_def, &k[i], TR_SUP_PERMANENT,
				 NOKILL_MS);
	}
	/* B ignores the shutdown: a task that stops B waits until B quits. */
	k[1].trap = true;
	k[1].ignore_shutdown = true;
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_pid sup = start_sup(&f, &fl, specs, 2);
	CHECK_EQ_INT(which(&f, sup), 2);
	tr_pid a = kid_pid("A"), b = kid_pid("B");

	/* While terminate_child waits for B, A crashes and a request comes.
	 * A's exit is seen at once; the restart and the answer wait for the
	 * task, and then come in arrival order. */
	tr_ref term = call_op(&f, sup, TR_SUP_OP_TERMINATE_CHILD, "B");
	WAIT_LOG(&f, count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN) == 1,
		 WAIT_MS);
	crash(&f, a);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "A") == 1, WAIT_MS);
	tr_ref count = call_op(&f, sup, TR_SUP_OP_COUNT_CHILDREN, NULL);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, "A"), 0);
	CHECK(find_reply(term.v) == NULL);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), b, MSG_QUIT, NULL, 0));
	WAIT_LOG(&f, find_reply(count.v) != NULL, WAIT_MS);
	size_t t = reply_at(term.v), r = ev_at(TR_SUP_EV_RESTARTED, "A", 0);
	CHECK(t < r && r < reply_at(count.v));
	CHECK(t < log_n && find_reply(term.v)->rp.status == TR_OK &&
	      tr_pid_eq(find_reply(term.v)->rp.pid, b));
	CHECK(find_reply(count.v) != NULL &&
	      find_reply(count.v)->rp.active == 1); /* A again; B stopped */
	CHECK_EQ_INT(atomic_load(&k[0].starts), 2);
	stop_sup(&f, sup, 1);

	/* The parent's exit while a task waits: the shutdown, with the
	 * parent's reason, comes after the task. */
	log_reset();
	tr_pid boss;
	sup = boss_start(&f, &boss, &fl, specs, 2, TR_OK);
	CHECK_EQ_INT(which(&f, sup), 2);
	b = kid_pid("B");
	size_t mark = log_n;
	tr_sup_request tq;
	memset(&tq, 0, sizeof(tq));
	tq.size = sizeof(tq);
	tq.op = TR_SUP_OP_TERMINATE_CHILD;
	tq.id = "B";
	SEND(&f, boss, MSG_BOSS_REQ, &tq, sizeof(tq));
	WAIT_LOG(&f, count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN) == 1,
		 WAIT_MS);
	SEND(&f, boss, MSG_BOSS_DIE, &(int32_t){ TR_EXIT_ERROR },
	     sizeof(int32_t));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, boss), WAIT_MS));
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), b, MSG_QUIT, NULL, 0));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	/* A's exit is the last thing the supervisor tells. */
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "A") == 1, WAIT_MS);
	CHECK_STR(order_since(mark, false), "dB dA");
	CHECK_EQ_INT(count_rep(R_DOWN, "B", TR_EXIT_NORMAL), 1);
	const tr_sup_event *ev = last_ev(TR_SUP_EV_SHUTDOWN, NULL);
	CHECK(ev != NULL && ev->reason == TR_EXIT_ERROR);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 0);

	/* one_for_all: C crashes, and the restart stops B, which waits, then
	 * A. A crashes meanwhile: the restart consumes that exit (OTP
	 * flushes it), so once put back it restarts nothing more. */
	log_reset();
	for (int i = 0; i < 3; i++) {
		atomic_store(&k[i].starts, 0);
	}
	fl = kflags(TR_SUP_ONE_FOR_ALL, 3, PERIOD_MS, f.probe);
	sup = start_sup(&f, &fl, specs, 3);
	CHECK_EQ_INT(which(&f, sup), 3);
	a = kid_pid("A");
	b = kid_pid("B");
	crash(&f, kid_pid("C"));
	WAIT_LOG(&f, count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN) == 1,
		 WAIT_MS);
	crash(&f, a);
	WAIT_LOG(&f, count_ev(TR_SUP_EV_EXITED, "A") == 1, WAIT_MS);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), b, MSG_QUIT, NULL, 0));
	WAIT_LOG(&f, count_ev(TR_SUP_EV_RESTARTED, NULL) == 3, WAIT_MS);
	/* This answer comes after anything the put-back exit would start. */
	CHECK_EQ_INT(which(&f, sup), 3);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_RESTARTED, NULL), 3);
	CHECK_EQ_INT(count_ev(TR_SUP_EV_EXITED, "A"), 1);
	CHECK_STR(order_since(0, true), "sA sB sC dC dA dB sA sB sC");
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(atomic_load(&k[i].starts), 2);
	}
	/* The new B ignores the shutdown too: it quits once told. */
	tr_ref stop = call_op(&f, sup, TR_SUP_OP_STOP, NULL);
	WAIT_LOG(&f, count_rep(R_GOT_EXIT, "B", TR_EXIT_SHUTDOWN) == 2,
		 WAIT_MS);
	CHECK_OK(
		tr_send(tr_runtime_ctx(f.rt), kid_pid("B"), MSG_QUIT, NULL, 0));
	WAIT_LOG(&f, find_reply(stop.v) != NULL, WAIT_MS);
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	fx_finish(&f);
}

/* ---- stopped from outside ----------------------------------------------- */

static void
test_stopped_from_outside(void)
{
	struct fx f;
	struct kid_arg kw, kg1, kg2, kd[20];
	tr_sup_request q;

	fx_start(&f, 2);
	log_reset();
	kid_arg_init(&kw, "W", f.probe);
	kid_arg_init(&kg1, "G1", f.probe);
	kid_arg_init(&kg2, "G2", f.probe);
	tr_sup_flags fl = kflags(TR_SUP_ONE_FOR_ONE, 3, PERIOD_MS, f.probe);
	tr_sup_child_spec inner[] = {
		kspec("G1", &kid_def, &kg1, TR_SUP_PERMANENT, NOKILL_MS),
		kspec("G2", &kid_def, &kg2, TR_SUP_PERMANENT, NOKILL_MS),
	};
	tr_sup_child_spec top[2];
	top[0] = kspec("W", &kid_def, &kw, TR_SUP_PERMANENT, NOKILL_MS);
	top[1] = kspec("inner", NULL, NULL, TR_SUP_PERMANENT, TR_SUP_INFINITY);
	top[1].sup_flags = &fl;
	top[1].sup_specs = inner;
	top[1].sup_nspecs = 2;

	/* tr_stop() from outside is a stop, not an exit signal: the
	 * supervisor cannot trap it and its children go by their links. */
	tr_pid sup = start_sup(&f, &fl, top, 2);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), sup, TR_EXIT_SHUTDOWN));
	WAIT_UNTIL(alive(&f) == 1, WAIT_MS);
	WAIT_LOG(&f, count_rep(R_DOWN, NULL, TR_EXIT_SHUTDOWN) == 3, WAIT_MS);

	/* A live tree and a simple_one_for_one with 20 children when the
	 * runtime stops: everything ends, nothing leaks, nothing hangs. */
	sup = start_sup(&f, &fl, top, 2);
	tr_sup_flags sfl =
		kflags(TR_SUP_SIMPLE_ONE_FOR_ONE, 100, PERIOD_MS, f.probe);
	tr_sup_child_spec tmpl =
		kspec("d", &kid_def, NULL, TR_SUP_PERMANENT, NOKILL_MS);
	/* This one from the runtime's context: no reply, no reference;
	 * requests queued behind the start are acted on after it. */
	tr_pid simple = TR_PID_NONE;
	tr_ref ref = { 1 };
	CHECK_OK(tr_sup_start(tr_runtime_ctx(f.rt), &sfl, &tmpl, 1, &simple,
			      &ref));
	CHECK(!tr_pid_is_none(simple) && ref.v == 0);
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.op = TR_SUP_OP_START_CHILD;
	for (int i = 0; i < 20; i++) {
		kid_arg_init(&kd[i], "d", f.probe);
		q.arg = &kd[i];
		CHECK_OK(tr_sup_call(tr_inbox_ctx(f.ib), simple, &q, 0, &ref));
	}
	WAIT_LOG(&f, find_reply(ref.v) != NULL, WAIT_MS);
	CHECK_EQ_INT(which(&f, simple), 20);
	/* Some requests still in flight as the runtime stops. */
	q.op = TR_SUP_OP_WHICH_CHILDREN;
	CHECK_OK(tr_sup_call(tr_inbox_ctx(f.ib), sup, &q, 0, NULL));
	CHECK_OK(tr_sup_call(tr_inbox_ctx(f.ib), simple, &q, 0, NULL));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "supervisor: one_for_one restarts only the crashed child",
	  test_one_for_one },
	{ "supervisor: one_for_all restarts all, in order", test_one_for_all },
	{ "supervisor: rest_for_one restarts the crashed child and later ones",
	  test_rest_for_one },
	{ "supervisor: permanent, transient, temporary", test_restart_types },
	{ "supervisor: intensity exceeded stops the tree",
	  test_intensity_exceeded },
	{ "supervisor: restarts within the intensity",
	  test_intensity_not_exceeded },
	{ "supervisor: nested supervisor restarted with fresh children",
	  test_nested },
	{ "supervisor: TR_SUP_OP_STOP stops children in reverse order",
	  test_shutdown_order },
	{ "supervisor: a child that ignores the shutdown is killed",
	  test_shutdown_kill },
	{ "supervisor: the parent's exit shuts the supervisor down",
	  test_parent_exit },
	{ "supervisor: start, terminate, restart, delete, which, count",
	  test_dynamic_children },
	{ "supervisor: simple_one_for_one with 100 children",
	  test_simple_one_for_one },
	{ "supervisor: a child's failed init fails the start",
	  test_start_fails },
	{ "supervisor: stopped from outside, and by the runtime",
	  test_stopped_from_outside },
	{ "supervisor: exits and requests while a task waits",
	  test_while_waiting },
	{ "supervisor: bad input", test_bad_input },
	{ NULL, NULL },
};

TEST_MAIN(tests)
