/*
 * Public-API tests of actors: zeroed state, init and teardown, tr_self and
 * tr_sender, tr_become, stopping (self and other), spawning from a
 * handler, pointer payload ownership, bounded mailboxes and argument
 * checking.
 *
 * Handlers run on worker threads, so they never call CHECK: they report
 * to the probe inbox or through atomic counters, and the test thread
 * checks. The counters are seq_cst atomics; ordering with the test thread
 * also comes from the runtime itself (wait_idle, inbox delivery).
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
	MSG_PING = 1, /* reply MSG_PONG struct who to the sender */
	MSG_PONG,
	MSG_NOTE,      /* remember the sender, no reply */
	MSG_QUERY,     /* reply MSG_PONG with the remembered sender */
	MSG_RELAY,     /* payload tr_pid: ping it and forward the pong */
	MSG_CHECK,     /* zero_def: reply MSG_RESULT 1 if the state was zero */
	MSG_RESULT,    /* payload int32_t */
	MSG_RESULTS,   /* payload struct results */
	MSG_SET,       /* td_def: set state->x */
	MSG_STOP_SELF, /* payload int32_t reason */
	MSG_SWAP,      /* become the other handler */
	MSG_SWAP_NULL, /* tr_become(NULL) */
	MSG_PTR,       /* pointer message, struct ptr_payload */
	MSG_PLAIN,     /* copied message to a pointer sink */
	MSG_D_STOP,    /* driver: pings, stop, pings (struct drive) */
	MSG_D_PTRS,    /* driver: pointer sends (struct drive) */
	MSG_D_FLOOD,   /* driver: n sends in one handler (struct drive) */
	MSG_D_SPAWN,   /* driver: spawn an echo child */
	MSG_D_BAD,     /* driver: misuse calls */
	MSG_WATCH,     /* mon: payload tr_pid; reply MSG_WATCHING */
	MSG_WATCHING,
	MSG_DOWN_FWD,    /* mon: forwarded tr_down */
	MSG_SPAWN_WATCH, /* mon: spawn (struct spawn_req) and monitor */
	MSG_SPAWNED,
};

struct who {
	tr_pid self;
	tr_pid sender;
	uint64_t n;
};

struct results {
	int32_t v[16];
};

struct watching {
	tr_pid who;
	tr_ref ref;
	int32_t err;
	int32_t spawn_err;
};

struct spawn_req {
	const tr_actor_def *def;
	void *arg;
};

struct drive {
	tr_pid target;
	int32_t reason;
	int32_t before;
	int32_t after;
	int32_t n;
	int32_t flag;
};

/* ---- fixture ---------------------------------------------------------- */

static void
reply_i32(tr_ctx *cx, tr_pid to, int32_t v)
{
	(void)tr_send(cx, to, MSG_RESULT, &v, sizeof(v));
}

/* ---- actors ------------------------------------------------------------ */

struct echo {
	tr_pid last_sender;
	uint64_t n;
};

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct echo *s = state;

	s->n++;
	switch (m->type) {
	case MSG_PING: {
		struct who w = { tr_self(cx), tr_sender(cx), s->n };
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, &w, sizeof(w));
		break;
	}
	case MSG_NOTE:
		s->last_sender = tr_sender(cx);
		break;
	case MSG_QUERY: {
		struct who w = { tr_self(cx), s->last_sender, s->n };
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, &w, sizeof(w));
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.state_size = sizeof(struct echo),
	.handle = echo_handle,
};

struct relay {
	tr_pid probe;
};

static void
relay_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct relay *s = state;
	tr_pid target;

	if (m->type == MSG_RELAY && payload(m, &target, sizeof(target))) {
		s->probe = tr_sender(cx);
		(void)tr_send(cx, target, MSG_PING, NULL, 0);
	} else if (m->type == MSG_PONG) {
		(void)tr_send(cx, s->probe, MSG_PONG, m->data, m->size);
	}
}

static const tr_actor_def relay_def = {
	.size = sizeof(tr_actor_def),
	.name = "relay",
	.state_size = sizeof(struct relay),
	.handle = relay_handle,
};

/* mon: monitors on behalf of the probe (an inbox cannot call tr_monitor). */
struct mon {
	tr_pid probe;
};

static void
mon_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct mon *s = state;
	struct watching w;

	memset(&w, 0, sizeof(w));
	switch (m->type) {
	case MSG_WATCH:
		s->probe = tr_sender(cx);
		if (!payload(m, &w.who, sizeof(w.who))) {
			w.err = -100;
		} else {
			w.err = tr_monitor(cx, w.who, &w.ref);
		}
		(void)tr_send(cx, s->probe, MSG_WATCHING, &w, sizeof(w));
		break;
	case MSG_SPAWN_WATCH: {
		struct spawn_req rq;
		s->probe = tr_sender(cx);
		if (!payload(m, &rq, sizeof(rq))) {
			w.spawn_err = -100;
		} else {
			/* Monitored before it can run, so even an init
			 * that fails at once is seen with its reason. */
			w.spawn_err = tr_spawn_monitor(cx, rq.def, rq.arg,
						       &w.who, &w.ref);
		}
		(void)tr_send(cx, s->probe, MSG_SPAWNED, &w, sizeof(w));
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

/* Monitors @who through @mon and waits for the monitor to be in place. */
static tr_ref
watch(struct fx *f, tr_pid mon, tr_pid who)
{
	struct watching w;

	memset(&w, 0, sizeof(w));
	SEND(f, mon, MSG_WATCH, &who, sizeof(who));
	CHECK(fx_recv(f, MSG_WATCHING, &w, sizeof(w)));
	CHECK_OK(w.err);
	return w.ref;
}

/* Waits for the next forwarded TR_MSG_DOWN and checks it. */
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

/* zero_def: checks its state is zeroed, then dirties it and stops. */
#define ZERO_STATE 512

static void
zero_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	unsigned char *b = state;
	int32_t zero = 1;

	if (m->type != MSG_CHECK) {
		return;
	}
	for (size_t i = 0; i < ZERO_STATE; i++) {
		if (b[i] != 0) {
			zero = 0;
		}
	}
	reply_i32(cx, tr_sender(cx), zero);
	memset(b, 0xA5, ZERO_STATE);
	tr_stop_self(cx, TR_EXIT_NORMAL);
}

static const tr_actor_def zero_def = {
	.size = sizeof(tr_actor_def),
	.name = "zero",
	.state_size = ZERO_STATE,
	.handle = zero_handle,
};

/* init_def: records what its init saw. */
struct init_state {
	int32_t init_ran;
	int32_t arg_val;
	tr_pid self_in_init;
	int32_t sender_none_in_init;
};

struct init_report {
	int32_t init_ran;
	int32_t arg_val;
	int32_t self_ok;
	int32_t sender_none;
};

static atomic_int init_calls;
static atomic_int failinit_calls;
static atomic_int failinit_handled;

static int
init_init(tr_ctx *cx, void *state, void *arg)
{
	struct init_state *s = state;

	atomic_fetch_add(&init_calls, 1);
	s->init_ran = 1;
	s->arg_val = *(const int32_t *)arg;
	s->self_in_init = tr_self(cx);
	s->sender_none_in_init = tr_pid_is_none(tr_sender(cx));
	return 0;
}

static void
init_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct init_state *s = state;

	if (m->type == MSG_QUERY) {
		struct init_report r = {
			s->init_ran,
			s->arg_val,
			tr_pid_eq(s->self_in_init, tr_self(cx)),
			s->sender_none_in_init,
		};
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &r, sizeof(r));
	}
}

static const tr_actor_def init_def = {
	.size = sizeof(tr_actor_def),
	.name = "init",
	.state_size = sizeof(struct init_state),
	.init = init_init,
	.handle = init_handle,
};

static int
failinit_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)state;
	(void)arg;
	atomic_fetch_add(&failinit_calls, 1);
	return -1;
}

static void
failinit_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_fetch_add(&failinit_handled, 1);
}

static const tr_actor_def failinit_def = {
	.size = sizeof(tr_actor_def),
	.name = "failinit",
	.init = failinit_init,
	.handle = failinit_handle,
};

/* td_def: teardown records what it saw; counts pings. */
struct td_state {
	int32_t x;
	tr_pid probe;
};

static atomic_int td_calls;
static atomic_int td_reason;
static atomic_int td_x;
static atomic_int td_sender_none;
static atomic_int td_pings;

static void
td_reset(void)
{
	atomic_store(&td_calls, 0);
	atomic_store(&td_reason, -1);
	atomic_store(&td_x, -1);
	atomic_store(&td_sender_none, -1);
	atomic_store(&td_pings, 0);
}

static void
td_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct td_state *s = state;
	int32_t reason;

	switch (m->type) {
	case MSG_SET:
		s->x = 42;
		s->probe = tr_sender(cx);
		break;
	case MSG_STOP_SELF:
		if (payload(m, &reason, sizeof(reason))) {
			tr_stop_self(cx, reason);
		}
		break;
	case MSG_PING:
		atomic_fetch_add(&td_pings, 1);
		break;
	default:
		break;
	}
}

static void
td_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct td_state *s = state;

	atomic_store(&td_reason, reason);
	atomic_store(&td_x, s->x);
	atomic_store(&td_sender_none, tr_pid_is_none(tr_sender(cx)));
	atomic_fetch_add(&td_calls, 1);
	/* Teardown may still send. */
	if (!tr_pid_is_none(s->probe)) {
		reply_i32(cx, s->probe, reason);
	}
}

static const tr_actor_def td_def = {
	.size = sizeof(tr_actor_def),
	.name = "td",
	.state_size = sizeof(struct td_state),
	.teardown = td_teardown,
	.handle = td_handle,
};

/* become: handler_a answers 'A', handler_b answers 'B'. */
static void become_b(tr_ctx *cx, void *state, const tr_msg *m);

static void
become_a(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING) {
		reply_i32(cx, tr_sender(cx), 'A');
	} else if (m->type == MSG_SWAP) {
		reply_i32(cx, tr_sender(cx), tr_become(cx, become_b));
	} else if (m->type == MSG_SWAP_NULL) {
		reply_i32(cx, tr_sender(cx), tr_become(cx, NULL));
	}
}

static void
become_b(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PING) {
		reply_i32(cx, tr_sender(cx), 'B');
	} else if (m->type == MSG_SWAP) {
		reply_i32(cx, tr_sender(cx), tr_become(cx, become_a));
	}
}

static const tr_actor_def become_def = {
	.size = sizeof(tr_actor_def),
	.name = "become",
	.handle = become_a,
};

/* Pointer payloads and the free function that counts its calls. */
#define PTR_MAGIC 0x7074726du

struct ptr_payload {
	uint32_t magic;
	int32_t take;
};

static atomic_int ptr_frees;        /* calls of counting_free */
static atomic_int ptr_seen;         /* pointer messages handled */
static atomic_int ptr_bad;          /* wrong flags, size, data or take result */
static atomic_int ptr_taken;        /* payloads the handler took */
static atomic_int frees_in_handler; /* ptr_frees seen inside the handler */
static atomic_int plain_seen;

static void
ptr_reset(void)
{
	atomic_store(&ptr_frees, 0);
	atomic_store(&ptr_seen, 0);
	atomic_store(&ptr_bad, 0);
	atomic_store(&ptr_taken, 0);
	atomic_store(&frees_in_handler, -1);
	atomic_store(&plain_seen, 0);
}

static void
counting_free(void *p)
{
	atomic_fetch_add(&ptr_frees, 1);
	free(p);
}

static struct ptr_payload *
new_payload(int take)
{
	struct ptr_payload *p = malloc(sizeof(*p));

	if (p == NULL) {
		abort();
	}
	p->magic = PTR_MAGIC;
	p->take = take;
	return p;
}

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_PTR) {
		const struct ptr_payload *p = m->data;
		atomic_fetch_add(&ptr_seen, 1);
		atomic_store(&frees_in_handler, atomic_load(&ptr_frees));
		if ((m->flags & TR_MSG_F_PTR) == 0 || p == NULL ||
		    m->size != sizeof(*p) || p->magic != PTR_MAGIC) {
			atomic_fetch_add(&ptr_bad, 1);
			return;
		}
		if (p->take) {
			void *q = tr_msg_take_ptr(cx, m);
			if (q != m->data) {
				atomic_fetch_add(&ptr_bad, 1);
			}
			atomic_fetch_add(&ptr_taken, 1);
			free(q); /* ours now: not counting_free */
		}
	} else if (m->type == MSG_PLAIN) {
		if ((m->flags & TR_MSG_F_PTR) != 0 ||
		    tr_msg_take_ptr(cx, m) != NULL) {
			atomic_fetch_add(&ptr_bad, 1);
		}
		atomic_fetch_add(&plain_seen, 1);
	} else if (m->type == MSG_STOP_SELF) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.handle = sink_handle,
};

static const tr_actor_def sink_bounded_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink1",
	.handle = sink_handle,
	.mailbox_bound = 1,
};

/* bounded_def: counts what it handles; at most BOUND queued messages. */
#define BOUND 4

static atomic_int bounded_handled;

static void
bounded_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_fetch_add(&bounded_handled, 1);
}

static const tr_actor_def bounded_def = {
	.size = sizeof(tr_actor_def),
	.name = "bounded",
	.handle = bounded_handle,
	.mailbox_bound = BOUND,
};

/*
 * driver: does several sends inside one handler call. On a one-worker
 * runtime the receiver cannot run meanwhile, so everything the driver
 * sends is queued when its handler returns.
 */
static void
driver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct drive d;
	struct results r;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&d, 0, sizeof(d));
	if (m->size == sizeof(d)) {
		memcpy(&d, m->data, sizeof(d));
	}
	switch (m->type) {
	case MSG_D_STOP: {
		/* d.flag: 0 = ask it to stop itself, 1 = tr_stop() */
		for (int i = 0; i < d.before; i++) {
			(void)tr_send(cx, d.target, MSG_PING, NULL, 0);
		}
		if (d.flag == 0) {
			r.v[0] = tr_send(cx, d.target, MSG_STOP_SELF, &d.reason,
					 sizeof(d.reason));
		} else {
			r.v[0] = tr_stop(cx, d.target, d.reason);
		}
		for (int i = 0; i < d.after; i++) {
			(void)tr_send(cx, d.target, MSG_PING, NULL, 0);
		}
		r.v[1] = tr_stop(cx, TR_PID_NONE, d.reason);
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &r, sizeof(r));
		break;
	}
	case MSG_D_PTRS: {
		/* d.flag: 1 = ask the target to stop itself first */
		if (d.flag == 1) {
			int32_t reason = TR_EXIT_NORMAL;
			(void)tr_send(cx, d.target, MSG_STOP_SELF, &reason,
				      sizeof(reason));
		}
		for (int i = 0; i < d.n && i < 16; i++) {
			r.v[i] = tr_send_ptr(
				cx, d.target, MSG_PTR, new_payload(0),
				sizeof(struct ptr_payload), counting_free);
		}
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &r, sizeof(r));
		break;
	}
	case MSG_D_FLOOD: {
		/* v[0] = TR_OK count, v[1] = TR_EFULL count, v[2] = others */
		for (int i = 0; i < d.n; i++) {
			int err =
				tr_send(cx, d.target, MSG_PING, &i, sizeof(i));
			r.v[err == TR_OK ? 0 : err == TR_EFULL ? 1 : 2]++;
		}
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &r, sizeof(r));
		break;
	}
	case MSG_D_SPAWN: {
		struct watching w;
		memset(&w, 0, sizeof(w));
		w.spawn_err = tr_spawn(cx, &echo_def, NULL, &w.who);
		w.err = tr_spawn(cx, NULL, NULL, NULL);
		(void)tr_send(cx, tr_sender(cx), MSG_SPAWNED, &w, sizeof(w));
		break;
	}
	case MSG_D_BAD: {
		tr_actor_def bad = echo_def;
		tr_down down;
		unsigned char big[65];
		tr_pid p = TR_PID_NONE;
		bad.size = 0;
		memset(&down, 0, sizeof(down));
		memset(big, 0, sizeof(big));
		r.v[0] = tr_send(cx, TR_PID_NONE, MSG_PING, NULL, 0);
		r.v[1] = tr_send(cx, tr_self(cx), TR_MSG_SYSTEM_BASE, NULL, 0);
		r.v[2] = tr_send(cx, tr_self(cx), TR_MSG_DOWN, &down,
				 sizeof(down));
		r.v[3] = tr_spawn(cx, NULL, NULL, &p);
		r.v[4] = tr_spawn(cx, &bad, NULL, &p);
		r.v[5] = tr_become(cx, NULL);
		r.v[6] = tr_stop(cx, TR_PID_NONE, TR_EXIT_ERROR);
		r.v[7] = tr_exit(cx, TR_PID_NONE, TR_EXIT_ERROR);
		r.v[8] = tr_send_ptr(cx, TR_PID_NONE, MSG_PTR, new_payload(0),
				     sizeof(struct ptr_payload), counting_free);
		r.v[9] = tr_send(cx, d.target, MSG_PING, big, sizeof(big));
		r.v[10] = tr_send(cx, d.target, MSG_PING, big, 64);
		r.v[11] = tr_blocking(cx, NULL, NULL, MSG_RESULT, NULL);
		(void)tr_send(cx, tr_sender(cx), MSG_RESULTS, &r, sizeof(r));
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def driver_def = {
	.size = sizeof(tr_actor_def),
	.name = "driver",
	.handle = driver_handle,
};

/* hold: keeps the only worker busy until hold_go is set. */
static atomic_int holding, hold_go;

static void
hold_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_store(&holding, 1);
	uint64_t deadline = harness_now_ms() + REPLY_MS;
	while (!atomic_load(&hold_go) && harness_now_ms() < deadline) {
		harness_nap_us(100);
	}
}

static const tr_actor_def hold_def = {
	.size = sizeof(tr_actor_def),
	.name = "hold",
	.handle = hold_handle,
};

/* copycheck: verifies a byte pattern, replies MSG_RESULT 1 if intact. */
#define BIG_LEN (1u << 20)

static void
copycheck_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const unsigned char *b = m->data;
	int32_t ok = m->size == BIG_LEN && b != NULL &&
		     (m->flags & TR_MSG_F_PTR) == 0;

	(void)state;
	for (size_t i = 0; ok && i < BIG_LEN; i++) {
		ok = b[i] == (unsigned char)(i * 7u + 1u);
	}
	reply_i32(cx, tr_sender(cx), ok);
}

static const tr_actor_def copycheck_def = {
	.size = sizeof(tr_actor_def),
	.name = "copycheck",
	.handle = copycheck_handle,
};

/* ---- tests ------------------------------------------------------------- */

static void
test_state_zeroed(void)
{
	struct fx f;

	fx_start(&f, 2);
	/* Each actor dirties its state and stops, so later ones are likely
	 * to get recycled memory: it must still read as zero. */
	for (int i = 0; i < 40; i++) {
		tr_metrics m0 = fx_metrics(&f);
		tr_pid p = fx_spawn(&f, &zero_def, NULL);
		int32_t zero = -1;
		SEND(&f, p, MSG_CHECK, NULL, 0);
		CHECK(fx_recv(&f, MSG_RESULT, &zero, sizeof(zero)));
		CHECK_EQ_INT(zero, 1);
		WAIT_UNTIL(fx_metrics(&f).actors_stopped > m0.actors_stopped,
			   REPLY_MS);
	}
	fx_finish(&f);
}

static void
test_init_arg_before_first_message(void)
{
	struct fx f;
	static const int32_t arg = 12345;
	tr_pid pids[20];

	atomic_store(&init_calls, 0);
	fx_start(&f, 2);
	/* The query is sent right after the spawn returns: init must still
	 * run first. */
	for (int i = 0; i < 20; i++) {
		pids[i] = fx_spawn(&f, &init_def, (void *)&arg);
		SEND(&f, pids[i], MSG_QUERY, NULL, 0);
	}
	for (int i = 0; i < 20; i++) {
		struct init_report r;
		memset(&r, 0, sizeof(r));
		CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
		CHECK_EQ_INT(r.init_ran, 1);
		CHECK_EQ_INT(r.arg_val, 12345);
		CHECK_EQ_INT(r.self_ok, 1);
		CHECK_EQ_INT(r.sender_none, 1);
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&init_calls), 20);
	fx_finish(&f);
}

static void
test_init_failure_stops(void)
{
	struct fx f;
	struct watching w;
	struct spawn_req rq = { &failinit_def, NULL };

	atomic_store(&failinit_calls, 0);
	atomic_store(&failinit_handled, 0);
	fx_start(&f, 2);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	memset(&w, 0, sizeof(w));
	SEND(&f, mon, MSG_SPAWN_WATCH, &rq, sizeof(rq));
	CHECK(fx_recv(&f, MSG_SPAWNED, &w, sizeof(w)));
	CHECK_OK(w.spawn_err);
	CHECK_OK(w.err);
	expect_down(&f, w.who, w.ref, TR_EXIT_INIT_FAILED);
	CHECK_EQ_INT(atomic_load(&failinit_calls), 1);

	/* Its handler never runs: a message to it is a dead letter. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), w.who, MSG_PING, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_U64(fx_metrics(&f).dead_letters, m0.dead_letters + 1);
	CHECK_EQ_INT(atomic_load(&failinit_handled), 0);
	fx_finish(&f);
}

static void
test_teardown_stop_self_reason(void)
{
	struct fx f;
	int32_t reason = TR_EXIT_USER + 3;

	td_reset();
	fx_start(&f, 2);
	tr_pid p = fx_spawn(&f, &td_def, NULL);
	SEND(&f, p, MSG_SET, NULL, 0);
	SEND(&f, p, MSG_STOP_SELF, &reason, sizeof(reason));
	WAIT_UNTIL(atomic_load(&td_calls) == 1, REPLY_MS);
	CHECK_EQ_INT(atomic_load(&td_reason), TR_EXIT_USER + 3);
	CHECK_EQ_INT(atomic_load(&td_x), 42); /* state still valid */
	CHECK_EQ_INT(atomic_load(&td_sender_none), 1);
	int32_t sent_reason = -1;
	CHECK(fx_recv(&f, MSG_RESULT, &sent_reason, sizeof(sent_reason)));
	CHECK_EQ_INT(sent_reason, TR_EXIT_USER + 3);

	/* A handler never runs after the actor stopped. */
	SEND(&f, p, MSG_PING, NULL, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&td_pings), 0);
	CHECK_EQ_INT(atomic_load(&td_calls), 1);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&td_calls), 1); /* not again at shutdown */
}

static void
test_teardown_stopped_from_outside(void)
{
	struct fx f;

	td_reset();
	fx_start(&f, 2);
	tr_pid p = fx_spawn(&f, &td_def, NULL);
	SEND(&f, p, MSG_SET, NULL, 0);
	/* Handled before the stop, which would overtake it. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), p, TR_EXIT_USER + 4));
	WAIT_UNTIL(atomic_load(&td_calls) == 1, REPLY_MS);
	CHECK_EQ_INT(atomic_load(&td_reason), TR_EXIT_USER + 4);
	CHECK_EQ_INT(atomic_load(&td_x), 42);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&td_calls), 1);
}

static void
test_teardown_at_runtime_stop(void)
{
	struct fx f;

	td_reset();
	fx_start(&f, 2);
	(void)fx_spawn(&f, &td_def, NULL);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&td_calls), 1);
	CHECK_EQ_INT(atomic_load(&td_reason), TR_EXIT_SHUTDOWN);
}

static void
test_self_and_sender(void)
{
	struct fx f;
	struct who w;

	fx_start(&f, 2);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	tr_pid r = fx_spawn(&f, &relay_def, NULL);

	/* From the probe: sender is the probe, self is the echo. */
	memset(&w, 0, sizeof(w));
	SEND(&f, e, MSG_PING, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &w, sizeof(w)));
	CHECK(tr_pid_eq(w.self, e));
	CHECK(tr_pid_eq(w.sender, f.probe));

	/* From outside any actor: sender is TR_PID_NONE. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), e, MSG_NOTE, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	memset(&w, 0xFF, sizeof(w));
	SEND(&f, e, MSG_QUERY, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &w, sizeof(w)));
	CHECK(tr_pid_is_none(w.sender));

	/* From another actor: sender is that actor. */
	memset(&w, 0, sizeof(w));
	SEND(&f, r, MSG_RELAY, &e, sizeof(e));
	CHECK(fx_recv(&f, MSG_PONG, &w, sizeof(w)));
	CHECK(tr_pid_eq(w.self, e));
	CHECK(tr_pid_eq(w.sender, r));

	/* The message the probe received says who sent it. */
	tr_received rec;
	memset(&rec, 0, sizeof(rec));
	SEND(&f, e, MSG_PING, NULL, 0);
	CHECK_OK(tr_inbox_recv(f.ib, NULL, REPLY_MS, &rec));
	CHECK(tr_pid_eq(rec.from, e));
	CHECK_EQ_U64(rec.type, MSG_PONG);
	tr_received_fini(&rec);
	fx_finish(&f);
}

static void
test_become(void)
{
	struct fx f;
	static const struct {
		uint32_t type;
		int32_t want;
	} steps[] = {
		{ MSG_PING, 'A' },   { MSG_SWAP_NULL, TR_EINVAL },
		{ MSG_PING, 'A' },   { MSG_SWAP, TR_OK },
		{ MSG_PING, 'B' },   { MSG_PING, 'B' },
		{ MSG_SWAP, TR_OK }, { MSG_PING, 'A' },
	};

	fx_start(&f, 2);
	tr_pid p = fx_spawn(&f, &become_def, NULL);
	/* All sent at once: FIFO from one sender, and each swap must take
	 * effect exactly from the next message on. */
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		SEND(&f, p, steps[i].type, NULL, 0);
	}
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		int32_t got = -1000;
		CHECK(fx_recv(&f, MSG_RESULT, &got, sizeof(got)));
		CHECK_EQ_INT(got, steps[i].want);
	}
	fx_finish(&f);
}

/* Driver sends 2 pings, a stop, 3 pings in one handler call; one worker. */
static void
stop_with_queued(int mode)
{
	struct fx f;
	struct results r;
	struct drive d;
	int32_t reason = TR_EXIT_USER + 11 + mode;

	td_reset();
	fx_start(&f, 1);
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_pid v = fx_spawn(&f, &td_def, NULL);
	tr_ref ref = watch(&f, mon, v);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);

	memset(&d, 0, sizeof(d));
	d.target = v;
	d.reason = reason;
	d.before = 2;
	d.after = 3;
	d.flag = mode;
	SEND(&f, drv, MSG_D_STOP, &d, sizeof(d));
	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
	CHECK_OK(r.v[0]);
	CHECK_ERR(r.v[1], TR_EINVAL); /* tr_stop(TR_PID_NONE) */
	expect_down(&f, v, ref, reason);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	/*
	 * Asked to stop itself, it handles the 2 pings queued before the
	 * request, and the 3 behind it are dead letters. tr_stop() overtakes
	 * the queue: on the one worker, busy with the driver's handler, v ran
	 * not before the stop was made, so all 5 are dead letters.
	 */
	CHECK_EQ_INT(atomic_load(&td_pings), mode == 0 ? 2 : 0);
	CHECK_EQ_INT(atomic_load(&td_calls), 1);
	CHECK_EQ_INT(atomic_load(&td_reason), reason);
	CHECK_EQ_U64(fx_metrics(&f).dead_letters,
		     m0.dead_letters + (mode == 0 ? 3 : 5));
	fx_finish(&f);
}

static void
test_stop_self_queued_are_dead_letters(void)
{
	stop_with_queued(0);
}

static void
test_stop_other_queued_are_dead_letters(void)
{
	stop_with_queued(1);
}

static void
test_spawn_from_handler(void)
{
	struct fx f;
	struct watching w;
	struct who pong;

	fx_start(&f, 2);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_metrics m0 = fx_metrics(&f);
	memset(&w, 0, sizeof(w));
	SEND(&f, drv, MSG_D_SPAWN, NULL, 0);
	CHECK(fx_recv(&f, MSG_SPAWNED, &w, sizeof(w)));
	CHECK_OK(w.spawn_err);
	CHECK_ERR(w.err, TR_EINVAL); /* tr_spawn(NULL def) */
	CHECK(!tr_pid_is_none(w.who));
	CHECK(!tr_pid_eq(w.who, drv));
	memset(&pong, 0, sizeof(pong));
	SEND(&f, w.who, MSG_PING, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &pong, sizeof(pong)));
	CHECK(tr_pid_eq(pong.self, w.who));
	tr_metrics m1 = fx_metrics(&f);
	CHECK_EQ_U64(m1.actors_spawned, m0.actors_spawned + 1);
	CHECK_EQ_U64(m1.actors_alive, m0.actors_alive + 1);
	fx_finish(&f);
}

static void
test_ptr_delivered_not_taken(void)
{
	struct fx f;

	ptr_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &sink_def, NULL);
	CHECK_OK(tr_send_ptr(tr_runtime_ctx(f.rt), s, MSG_PTR, new_payload(0),
			     sizeof(struct ptr_payload), counting_free));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&ptr_seen), 1);
	CHECK_EQ_INT(atomic_load(&ptr_bad), 0);
	/* Not freed before the handler ran, freed once after it returned. */
	CHECK_EQ_INT(atomic_load(&frees_in_handler), 0);
	WAIT_UNTIL(atomic_load(&ptr_frees) >= 1, REPLY_MS);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 1);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 1);
}

static void
test_ptr_taken(void)
{
	struct fx f;

	ptr_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &sink_def, NULL);
	CHECK_OK(tr_send_ptr(tr_runtime_ctx(f.rt), s, MSG_PTR, new_payload(1),
			     sizeof(struct ptr_payload), counting_free));
	/* A copied message has no pointer to take. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), s, MSG_PLAIN, "x", 1));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&ptr_seen), 1);
	CHECK_EQ_INT(atomic_load(&ptr_taken), 1);
	CHECK_EQ_INT(atomic_load(&plain_seen), 1);
	CHECK_EQ_INT(atomic_load(&ptr_bad), 0);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 0); /* the handler freed it */
}

static void
test_ptr_dead_letter(void)
{
	struct fx f;

	ptr_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &sink_def, NULL);
	tr_metrics m0 = fx_metrics(&f);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s, TR_EXIT_NORMAL));
	WAIT_UNTIL(fx_metrics(&f).actors_stopped > m0.actors_stopped, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	m0 = fx_metrics(&f);
	CHECK_OK(tr_send_ptr(tr_runtime_ctx(f.rt), s, MSG_PTR, new_payload(0),
			     sizeof(struct ptr_payload), counting_free));
	WAIT_UNTIL(atomic_load(&ptr_frees) >= 1, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&ptr_frees), 1);
	CHECK_EQ_INT(atomic_load(&ptr_seen), 0);
	CHECK_EQ_U64(fx_metrics(&f).dead_letters, m0.dead_letters + 1);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 1);
}

static void
test_ptr_receiver_stopped_with_queued(void)
{
	struct fx f;
	struct drive d;
	struct results r;

	ptr_reset();
	fx_start(&f, 1);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_pid s = fx_spawn(&f, &sink_def, NULL);
	memset(&d, 0, sizeof(d));
	d.target = s;
	d.n = 3;
	d.flag = 1; /* the sink stops itself before the 3 pointers */
	SEND(&f, drv, MSG_D_PTRS, &d, sizeof(d));
	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
	for (int i = 0; i < 3; i++) {
		CHECK_OK(r.v[i]);
	}
	WAIT_UNTIL(atomic_load(&ptr_frees) >= 3, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&ptr_frees), 3);
	CHECK_EQ_INT(atomic_load(&ptr_seen), 0);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 3);
}

static void
test_ptr_efull_and_einval(void)
{
	struct fx f;
	struct drive d;
	struct results r;

	ptr_reset();
	fx_start(&f, 1);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_pid s = fx_spawn(&f, &sink_bounded_def, NULL);
	memset(&d, 0, sizeof(d));
	d.target = s;
	d.n = 3;
	SEND(&f, drv, MSG_D_PTRS, &d, sizeof(d));
	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
	CHECK_OK(r.v[0]);
	CHECK_ERR(r.v[1], TR_EFULL);
	CHECK_ERR(r.v[2], TR_EFULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	/* Two refused and one delivered (not taken): three frees. */
	WAIT_UNTIL(atomic_load(&ptr_frees) >= 3, REPLY_MS);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 3);
	CHECK_EQ_INT(atomic_load(&ptr_seen), 1);

	/* Refused for bad input: freed as well. */
	CHECK_ERR(tr_send_ptr(tr_runtime_ctx(f.rt), TR_PID_NONE, MSG_PTR,
			      new_payload(0), 1, counting_free),
		  TR_EINVAL);
	CHECK_ERR(tr_send_ptr(tr_runtime_ctx(f.rt), s, TR_MSG_DOWN,
			      new_payload(0), 1, counting_free),
		  TR_EINVAL);
	WAIT_UNTIL(atomic_load(&ptr_frees) >= 5, REPLY_MS);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 5);
	fx_finish(&f);
	CHECK_EQ_INT(atomic_load(&ptr_frees), 5);
}

static void
test_bounded_mailbox(void)
{
	struct fx f;
	struct drive d;
	struct results r;

	atomic_store(&bounded_handled, 0);
	fx_start(&f, 1);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_pid b = fx_spawn(&f, &bounded_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);
	memset(&d, 0, sizeof(d));
	d.target = b;
	d.n = BOUND + 3;
	for (int round = 0; round < 2; round++) {
		/* The receiver cannot run while the driver's handler sends,
		 * so exactly BOUND fit; after it drained, BOUND fit again. */
		memset(&r, 0, sizeof(r));
		SEND(&f, drv, MSG_D_FLOOD, &d, sizeof(d));
		CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
		CHECK_EQ_INT(r.v[0], BOUND);
		CHECK_EQ_INT(r.v[1], 3);
		CHECK_EQ_INT(r.v[2], 0);
		CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
		CHECK_EQ_INT(atomic_load(&bounded_handled),
			     BOUND * (round + 1));
		CHECK_EQ_U64(fx_metrics(&f).mailbox_full,
			     m0.mailbox_full + 3u * (unsigned)(round + 1));
	}
	fx_finish(&f);
}

static void
test_bounded_mailbox_from_outside(void)
{
	struct fx f;

	atomic_store(&bounded_handled, 0);
	atomic_store(&holding, 0);
	atomic_store(&hold_go, 0);
	fx_start(&f, 1);
	tr_pid h = fx_spawn(&f, &hold_def, NULL);
	tr_pid b = fx_spawn(&f, &bounded_def, NULL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);
	/* The only worker is held, so b cannot drain while we send. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), h, MSG_PING, NULL, 0));
	WAIT_UNTIL(atomic_load(&holding) == 1, REPLY_MS);
	int ok = 0, full = 0, other = 0;
	for (int i = 0; i < BOUND + 5; i++) {
		int err = tr_send(tr_runtime_ctx(f.rt), b, MSG_PING, &i,
				  sizeof(i));
		ok += err == TR_OK;
		full += err == TR_EFULL;
		other += err != TR_OK && err != TR_EFULL;
	}
	/* While held, the bounded mailbox is measurable and full. */
	uint32_t len = 0;
	CHECK_OK(tr_mailbox_len(f.rt, b, &len));
	CHECK_EQ_U64(len, BOUND);
	CHECK_ERR(tr_mailbox_len(f.rt, h, &len), TR_ESTATE);
	CHECK_ERR(tr_mailbox_len(f.rt, TR_PID_NONE, &len), TR_EINVAL);
	CHECK_ERR(tr_mailbox_len(f.rt, b, NULL), TR_EINVAL);
	CHECK(tr_actor_alive(f.rt, b));
	CHECK(tr_actor_alive(f.rt, h));
	CHECK(!tr_actor_alive(f.rt, TR_PID_NONE));
	atomic_store(&hold_go, 1);
	CHECK_EQ_INT(ok, BOUND);
	CHECK_EQ_INT(full, 5);
	CHECK_EQ_INT(other, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&bounded_handled), BOUND);
	CHECK_OK(tr_mailbox_len(f.rt, b, &len));
	CHECK_EQ_U64(len, 0);
	/* A stopped actor is neither alive nor measurable. */
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), h, TR_EXIT_NORMAL));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK(!tr_actor_alive(f.rt, h));
	CHECK_ERR(tr_mailbox_len(f.rt, h, &len), TR_ENOENT);
	CHECK_EQ_U64(fx_metrics(&f).mailbox_full, m0.mailbox_full + 5);
	/* Drained: room again. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), b, MSG_PING, NULL, 0));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_EQ_INT(atomic_load(&bounded_handled), BOUND + 1);
	fx_finish(&f);
}

static void
test_send_copies_payload(void)
{
	struct fx f;
	unsigned char *buf = malloc(BIG_LEN);
	int32_t ok = -1;

	CHECK(buf != NULL);
	fx_start(&f, 2);
	tr_pid c = fx_spawn(&f, &copycheck_def, NULL);
	for (size_t i = 0; i < BIG_LEN; i++) {
		buf[i] = (unsigned char)(i * 7u + 1u);
	}
	SEND(&f, c, MSG_CHECK, buf, BIG_LEN);
	/* The runtime copied it: scribbling now changes nothing. */
	memset(buf, 0, BIG_LEN);
	CHECK(fx_recv(&f, MSG_RESULT, &ok, sizeof(ok)));
	CHECK_EQ_INT(ok, 1);
	free(buf);
	fx_finish(&f);
}

static void
test_bad_input_from_outside(void)
{
	struct fx f;
	tr_actor_def bad = echo_def;
	tr_pid p = TR_PID_NONE;
	tr_config cfg = tr_config_default();
	unsigned char big[65];

	cfg.workers = 2;
	cfg.max_msg_size = 64;
	fx_start_cfg(&f, &cfg);
	tr_metrics m0 = fx_metrics(&f);
	CHECK_ERR(tr_spawn(tr_runtime_ctx(f.rt), NULL, NULL, &p), TR_EINVAL);
	bad.size = 0;
	CHECK_ERR(tr_spawn(tr_runtime_ctx(f.rt), &bad, NULL, &p), TR_EINVAL);
	bad.size = 1;
	CHECK_ERR(tr_spawn(tr_runtime_ctx(f.rt), &bad, NULL, &p), TR_EINVAL);
	bad = echo_def;
	bad.handle = NULL;
	CHECK_ERR(tr_spawn(tr_runtime_ctx(f.rt), &bad, NULL, &p), TR_EINVAL);
	CHECK_EQ_U64(fx_metrics(&f).actors_spawned, m0.actors_spawned);

	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	memset(big, 0, sizeof(big));
	CHECK_ERR(tr_send(tr_runtime_ctx(f.rt), TR_PID_NONE, MSG_PING, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_send(tr_runtime_ctx(f.rt), e, TR_MSG_SYSTEM_BASE, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_send(tr_runtime_ctx(f.rt), e, 0xFFFFFFFFu, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_send(tr_inbox_ctx(f.ib), e, TR_MSG_EXIT, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_send(tr_runtime_ctx(f.rt), e, MSG_NOTE, big, sizeof(big)),
		  TR_EMSGSIZE);
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), e, MSG_NOTE, big, 64));
	CHECK_ERR(tr_stop(tr_runtime_ctx(f.rt), TR_PID_NONE, TR_EXIT_ERROR),
		  TR_EINVAL);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));

	/* Only the 64-byte note arrived. */
	struct who w;
	memset(&w, 0, sizeof(w));
	SEND(&f, e, MSG_QUERY, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &w, sizeof(w)));
	CHECK_EQ_U64(w.n, 2);
	fx_finish(&f);
}

static void
test_bad_input_from_actor(void)
{
	struct fx f;
	struct drive d;
	struct results r;
	tr_config cfg = tr_config_default();

	ptr_reset();
	cfg.workers = 2;
	cfg.max_msg_size = 64;
	fx_start_cfg(&f, &cfg);
	tr_pid drv = fx_spawn(&f, &driver_def, NULL);
	tr_pid e = fx_spawn(&f, &echo_def, NULL);
	memset(&d, 0, sizeof(d));
	d.target = e;
	memset(&r, 0, sizeof(r));
	SEND(&f, drv, MSG_D_BAD, &d, sizeof(d));
	CHECK(fx_recv(&f, MSG_RESULTS, &r, sizeof(r)));
	CHECK_ERR(r.v[0], TR_EINVAL);   /* send to TR_PID_NONE */
	CHECK_ERR(r.v[1], TR_EINVAL);   /* reserved type */
	CHECK_ERR(r.v[2], TR_EINVAL);   /* forged TR_MSG_DOWN */
	CHECK_ERR(r.v[3], TR_EINVAL);   /* spawn NULL def */
	CHECK_ERR(r.v[4], TR_EINVAL);   /* spawn def.size 0 */
	CHECK_ERR(r.v[5], TR_EINVAL);   /* become NULL */
	CHECK_ERR(r.v[6], TR_EINVAL);   /* stop TR_PID_NONE */
	CHECK_ERR(r.v[7], TR_EINVAL);   /* exit TR_PID_NONE */
	CHECK_ERR(r.v[8], TR_EINVAL);   /* send_ptr to TR_PID_NONE */
	CHECK_ERR(r.v[9], TR_EMSGSIZE); /* 65 bytes, limit 64 */
	CHECK_OK(r.v[10]);              /* 64 bytes */
	CHECK_ERR(r.v[11], TR_EINVAL);  /* tr_blocking(NULL fn) */
	WAIT_UNTIL(atomic_load(&ptr_frees) == 1, REPLY_MS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	struct who w;
	memset(&w, 0, sizeof(w));
	SEND(&f, e, MSG_QUERY, NULL, 0);
	CHECK(fx_recv(&f, MSG_PONG, &w, sizeof(w)));
	CHECK_EQ_U64(w.n, 2); /* the 64-byte ping, then this query */
	/* The driver's own state is intact after tr_become(NULL) failed. */
	memset(&r, 0, sizeof(r));
	SEND(&f, drv, MSG_D_SPAWN, NULL, 0);
	struct watching sw;
	memset(&sw, 0, sizeof(sw));
	CHECK(fx_recv(&f, MSG_SPAWNED, &sw, sizeof(sw)));
	CHECK_OK(sw.spawn_err);
	fx_finish(&f);
}

/* ---- a copied spawn argument ---- */

static atomic_int copy_gate_in, copy_gate_open;
static tr_pid copy_probe;

static void
copy_gate_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_store(&copy_gate_in, 1);
	uint64_t until = harness_now_ms() + FX_REPLY_MS;
	while (atomic_load(&copy_gate_open) == 0 && harness_now_ms() < until) {
		harness_nap_us(200);
	}
}

static const tr_actor_def copy_gate_def = {
	.size = sizeof(tr_actor_def),
	.name = "copy-gate",
	.handle = copy_gate_handle,
};

static int
copier_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	int v = arg != NULL ? *(const int *)arg : -1;
	return tr_send(cx, copy_probe, 1, &v, sizeof(v));
}

static void
copier_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
}

/*
 * With def.arg_size the spawner may reuse its argument at once. On one
 * worker held in a handler, init cannot run before the argument changes;
 * it must still see the value at spawn time.
 */
static void
test_spawn_arg_copied(void)
{
	static const tr_actor_def copier_def = {
		.size = sizeof(tr_actor_def),
		.name = "copier",
		.init = copier_init,
		.handle = copier_handle,
		.arg_size = sizeof(int),
	};
	struct fx f;
	int v = 7;
	int got = 0;

	atomic_store(&copy_gate_in, 0);
	atomic_store(&copy_gate_open, 0);
	fx_start(&f, 1);
	copy_probe = f.probe;
	tr_pid gate = fx_spawn(&f, &copy_gate_def, NULL);
	SEND(&f, gate, 1, NULL, 0);
	CHECK(WAIT_UNTIL(atomic_load(&copy_gate_in) == 1, FX_REPLY_MS));
	fx_spawn(&f, &copier_def, &v);
	v = 99; /* the spawner's argument changes before init runs */
	atomic_store(&copy_gate_open, 1);
	CHECK(fx_recv(&f, 1, &got, sizeof(got)));
	CHECK_EQ_INT(got, 7);

	tr_actor_def too_big = copier_def;
	too_big.arg_size = (size_t)1 << 62; /* over any max_msg_size */
	tr_pid p;
	CHECK_ERR(tr_spawn(tr_inbox_ctx(f.ib), &too_big, &v, &p), TR_EMSGSIZE);
	fx_finish(&f);
}

/* ---- tr_should_yield: a batch of sends per handler call ---- */

static void
yielder_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != 1) {
		return; /* the messages it sends itself */
	}
	int before = 0;
	int sends = 0;
	while (sends < 1000 && !tr_should_yield(cx)) {
		before += tr_should_yield(cx) ? 1 : 0;
		(void)tr_send(cx, tr_self(cx), 2, NULL, 0);
		sends++;
	}
	int r[2] = { sends, before };
	(void)tr_send(cx, m->from, 3, r, sizeof(r));
}

static const tr_actor_def yielder_def = {
	.size = sizeof(tr_actor_def),
	.name = "yielder",
	.handle = yielder_handle,
};

static void
test_should_yield(void)
{
	struct fx f;
	tr_config cfg = tr_config_default();
	int r[2] = { 0, 0 };

	cfg.workers = 2;
	cfg.batch = 10;
	fx_start_cfg(&f, &cfg);
	tr_pid y = fx_spawn(&f, &yielder_def, NULL);
	SEND(&f, y, 1, NULL, 0);
	CHECK(fx_recv(&f, 3, r, sizeof(r)));
	CHECK_EQ_INT(r[0], 10); /* true once a batch was sent, not before */
	CHECK_EQ_INT(r[1], 0);
	/* A new call starts a new count. */
	SEND(&f, y, 1, NULL, 0);
	CHECK(fx_recv(&f, 3, r, sizeof(r)));
	CHECK_EQ_INT(r[0], 10);
	CHECK(!tr_should_yield(tr_inbox_ctx(f.ib)));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "actor: state is zeroed", test_state_zeroed },
	{ "actor: init gets arg and runs before the first message",
	  test_init_arg_before_first_message },
	{ "actor: tr_should_yield after a batch of sends", test_should_yield },
	{ "actor: def.arg_size copies the spawn argument at spawn",
	  test_spawn_arg_copied },
	{ "actor: init failure stops with TR_EXIT_INIT_FAILED",
	  test_init_failure_stops },
	{ "actor: teardown runs once with the stop_self reason",
	  test_teardown_stop_self_reason },
	{ "actor: teardown runs with the reason of a stop from outside",
	  test_teardown_stopped_from_outside },
	{ "actor: teardown runs at runtime stop with TR_EXIT_SHUTDOWN",
	  test_teardown_at_runtime_stop },
	{ "actor: tr_self and tr_sender", test_self_and_sender },
	{ "actor: tr_become swaps the handler from the next message",
	  test_become },
	{ "actor: stop_self, messages queued after it are dead letters",
	  test_stop_self_queued_are_dead_letters },
	{ "actor: tr_stop of another overtakes its queue: all dead letters",
	  test_stop_other_queued_are_dead_letters },
	{ "actor: spawn from inside a handler", test_spawn_from_handler },
	{ "ptr: delivered and not taken is freed once after the handler",
	  test_ptr_delivered_not_taken },
	{ "ptr: tr_msg_take_ptr moves ownership", test_ptr_taken },
	{ "ptr: dead letter is freed once", test_ptr_dead_letter },
	{ "ptr: queued behind a stop is freed once",
	  test_ptr_receiver_stopped_with_queued },
	{ "ptr: TR_EFULL and TR_EINVAL free the payload",
	  test_ptr_efull_and_einval },
	{ "actor: bounded mailbox takes exactly N, then TR_EFULL",
	  test_bounded_mailbox },
	{ "actor: bounded mailbox, sends from another thread",
	  test_bounded_mailbox_from_outside },
	{ "actor: tr_send copies the payload", test_send_copies_payload },
	{ "actor: bad input from outside", test_bad_input_from_outside },
	{ "actor: bad input from a handler", test_bad_input_from_actor },
	{ NULL, NULL },
};

TEST_MAIN(tests)
