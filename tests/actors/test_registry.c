/*
 * Registry (<troupe/actors/registry.h>): register, whereis and unregister;
 * a taken name; bad input; registering and sending from inside an actor;
 * names that vanish when their holder stops (also every name of a pid,
 * and a pid that had stopped before it was registered); replace after a
 * holder stopped; a race of four threads registering, unregistering,
 * replacing and looking up while holders stop, with exact counts; and
 * destroying a registry that still has names, before and after the
 * runtime joined (ASan checks that nothing leaks).
 *
 * Handlers never call CHECK: they report to the probe.
 */
#include <troupe/troupe.h>
#include <troupe/actors/registry.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/* Generous: the sanitizer builds are slow and the machine may be busy. */
#define GONE_MS 30000
#define IDLE_MS 60000

enum {
	MSG_PING = 1, /* reply MSG_PONG (struct pong) to the sender */
	MSG_PONG,
	MSG_REG_SELF,   /* payload: a name; register self, reply MSG_RESULT */
	MSG_SEND_NAMED, /* payload: a name; send a MSG_PING to its holder
			 * there, reply MSG_RESULT, forward the MSG_PONG to
			 * the probe */
	MSG_RESULT,     /* int32_t */
};

struct pong {
	tr_pid self;
	tr_pid from; /* who sent the MSG_PING */
};

/* The registry under test, for the handlers. */
static tr_registry *g_reg;

struct node {
	tr_pid probe;
};

/* Send to a name, as a user does: look it up, then send to the pid. */
static tr_err
send_named(tr_ctx *cx, const char *name, uint32_t type)
{
	tr_pid to;
	tr_err err = tr_registry_whereis(g_reg, name, &to);

	return err < 0 ? err : tr_send(cx, to, type, NULL, 0);
}

static void
reply_i32(tr_ctx *cx, tr_pid to, int32_t v)
{
	(void)tr_send(cx, to, MSG_RESULT, &v, sizeof(v));
}

/* Copies a name payload into @buf as a string; false if it does not fit. */
static bool
name_of(const tr_msg *m, char *buf, size_t cap)
{
	if (m->size == 0 || m->size >= cap || m->data == NULL) {
		return false;
	}
	memcpy(buf, m->data, m->size);
	buf[m->size] = '\0';
	return true;
}

static void
node_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct node *s = state;
	char name[TR_REGISTRY_NAME_MAX + 1];

	switch (m->type) {
	case MSG_PING: {
		struct pong p = { tr_self(cx), tr_sender(cx) };
		(void)tr_send(cx, tr_sender(cx), MSG_PONG, &p, sizeof(p));
		break;
	}
	case MSG_PONG:
		(void)tr_send(cx, s->probe, MSG_PONG, m->data, m->size);
		break;
	case MSG_REG_SELF:
		reply_i32(
			cx, tr_sender(cx),
			name_of(m, name, sizeof(name))
				? tr_registry_register(g_reg, name, tr_self(cx))
				: -100);
		break;
	case MSG_SEND_NAMED:
		s->probe = tr_sender(cx);
		reply_i32(cx, s->probe,
			  name_of(m, name, sizeof(name))
				  ? send_named(cx, name, MSG_PING)
				  : -100);
		break;
	default:
		break;
	}
}

static const tr_actor_def node_def = {
	.size = sizeof(tr_actor_def),
	.name = "node",
	.state_size = sizeof(struct node),
	.handle = node_handle,
};

/* ---- helpers ------------------------------------------------------------- */

static tr_registry_stats
stats(tr_registry *reg)
{
	tr_registry_stats st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	CHECK_OK(tr_registry_stats_get(reg, &st));
	return st;
}

/* The accounting identity that holds whenever the registry is read. */
static void
check_balance(const tr_registry_stats *st)
{
	CHECK_EQ_U64(st->registered,
		     st->unregistered + st->replaced + st->removed + st->names);
}

static bool
is_gone(tr_registry *reg, const char *name)
{
	tr_pid p;

	return tr_registry_whereis(reg, name, &p) == TR_ENOENT;
}

static tr_pid
whereis(tr_registry *reg, const char *name)
{
	tr_pid p = TR_PID_NONE;

	CHECK_OK(tr_registry_whereis(reg, name, &p));
	return p;
}

static void
setup(struct fx *f, unsigned workers)
{
	fx_start(f, workers);
	g_reg = NULL;
	CHECK_OK(tr_registry_create(f->rt, &g_reg));
}

static void
teardown(struct fx *f)
{
	tr_registry_destroy(g_reg);
	g_reg = NULL;
	fx_finish(f);
}

/* Pings @to as the probe; true if @to answers (it is alive). */
static bool
ping(struct fx *f, tr_pid to)
{
	struct pong p;

	memset(&p, 0, sizeof(p));
	SEND(f, to, MSG_PING, NULL, 0);
	return fx_recv(f, MSG_PONG, &p, sizeof(p)) && tr_pid_eq(p.self, to) &&
	       tr_pid_eq(p.from, f->probe);
}

/* ---- basics -------------------------------------------------------------- */

static void
test_basics(void)
{
	struct fx f;
	struct pong p;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	tr_pid b = fx_spawn(&f, &node_def, NULL);

	CHECK_ERR(tr_registry_whereis(g_reg, "alpha", &p.self), TR_ENOENT);
	CHECK(tr_pid_is_none(p.self));
	CHECK_OK(tr_registry_register(g_reg, "alpha", a));
	CHECK_OK(tr_registry_register(g_reg, "beta", b));
	CHECK_OK(tr_registry_register(g_reg, "alias-of-a", a));
	CHECK(tr_pid_eq(whereis(g_reg, "alpha"), a));
	CHECK(tr_pid_eq(whereis(g_reg, "beta"), b));
	CHECK(tr_pid_eq(whereis(g_reg, "alias-of-a"), a));

	/* Send by name from outside: the probe is the sender, a answers. */
	CHECK_OK(send_named(tr_inbox_ctx(f.ib), "alias-of-a", MSG_PING));
	memset(&p, 0, sizeof(p));
	CHECK(fx_recv(&f, MSG_PONG, &p, sizeof(p)));
	CHECK(tr_pid_eq(p.self, a));
	CHECK(tr_pid_eq(p.from, f.probe));

	CHECK_OK(tr_registry_unregister(g_reg, "alpha"));
	CHECK(is_gone(g_reg, "alpha"));
	CHECK(tr_pid_eq(whereis(g_reg, "alias-of-a"), a));
	CHECK_ERR(tr_registry_unregister(g_reg, "alpha"), TR_ENOENT);
	CHECK_ERR(send_named(tr_inbox_ctx(f.ib), "alpha", MSG_PING), TR_ENOENT);
	CHECK(fx_recv_none(&f, 50));

	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.names, 2);
	CHECK_EQ_U64(st.holders, 2);
	CHECK_EQ_U64(st.registered, 3);
	CHECK_EQ_U64(st.unregistered, 1);
	CHECK_EQ_U64(st.replaced, 0);
	CHECK_EQ_U64(st.removed, 0);
	check_balance(&st);

	/* A name can be taken again once free. */
	CHECK_OK(tr_registry_register(g_reg, "alpha", b));
	CHECK(tr_pid_eq(whereis(g_reg, "alpha"), b));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	st = stats(g_reg);
	CHECK_EQ_U64(st.names, 3);
	CHECK_EQ_U64(st.removed, 0);
	check_balance(&st);
	teardown(&f);
}

static void
test_taken_name(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	tr_pid b = fx_spawn(&f, &node_def, NULL);

	CHECK_OK(tr_registry_register(g_reg, "db", a));
	CHECK_ERR(tr_registry_register(g_reg, "db", b), TR_EEXIST);
	CHECK_ERR(tr_registry_register(g_reg, "db", a), TR_EEXIST);
	CHECK(tr_pid_eq(whereis(g_reg, "db"), a));
	/* replace only with the right expected holder */
	CHECK_ERR(tr_registry_replace(g_reg, "db", b, b), TR_EEXIST);
	CHECK_ERR(tr_registry_replace(g_reg, "db", TR_PID_NONE, b), TR_EEXIST);
	CHECK(tr_pid_eq(whereis(g_reg, "db"), a));
	CHECK_OK(tr_registry_replace(g_reg, "db", a, a)); /* already so */

	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 1);
	CHECK_EQ_U64(st.names, 1);
	CHECK_EQ_U64(st.replaced, 0);
	check_balance(&st);
	teardown(&f);
}

static void
test_bad_input(void)
{
	struct fx f;
	char longest[TR_REGISTRY_NAME_MAX + 1];
	char too_long[TR_REGISTRY_NAME_MAX + 2];
	tr_registry *none = NULL;
	tr_pid p;

	memset(longest, 'x', TR_REGISTRY_NAME_MAX);
	longest[TR_REGISTRY_NAME_MAX] = '\0';
	memset(too_long, 'y', TR_REGISTRY_NAME_MAX + 1);
	too_long[TR_REGISTRY_NAME_MAX + 1] = '\0';

	setup(&f, 1);
	tr_pid a = fx_spawn(&f, &node_def, NULL);

	CHECK_ERR(tr_registry_create(NULL, &none), TR_EINVAL);
	CHECK_ERR(tr_registry_create(f.rt, NULL), TR_EINVAL);
	CHECK(none == NULL);
	tr_registry_destroy(NULL);

	CHECK_ERR(tr_registry_register(NULL, "x", a), TR_EINVAL);
	CHECK_ERR(tr_registry_register(g_reg, NULL, a), TR_EINVAL);
	CHECK_ERR(tr_registry_register(g_reg, "", a), TR_EINVAL);
	CHECK_ERR(tr_registry_register(g_reg, too_long, a), TR_EINVAL);
	CHECK_ERR(tr_registry_register(g_reg, "x", TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_registry_replace(g_reg, "x", TR_PID_NONE, TR_PID_NONE),
		  TR_EINVAL);
	CHECK_ERR(
		tr_registry_register(g_reg, "x", tr_self(tr_runtime_ctx(f.rt))),
		TR_EINVAL);
	CHECK_ERR(tr_registry_unregister(NULL, "x"), TR_EINVAL);
	CHECK_ERR(tr_registry_unregister(g_reg, NULL), TR_EINVAL);
	CHECK_ERR(tr_registry_unregister(g_reg, too_long), TR_EINVAL);
	CHECK_ERR(tr_registry_unregister(g_reg, "never"), TR_ENOENT);
	CHECK_ERR(tr_registry_whereis(NULL, "x", &p), TR_EINVAL);
	CHECK_ERR(tr_registry_whereis(g_reg, "x", NULL), TR_EINVAL);
	CHECK_ERR(tr_registry_whereis(g_reg, "", &p), TR_EINVAL);
	tr_registry_stats st;
	memset(&st, 0, sizeof(st));
	CHECK_ERR(tr_registry_stats_get(g_reg, &st), TR_EINVAL); /* size 0 */
	CHECK_ERR(tr_registry_stats_get(g_reg, NULL), TR_EINVAL);

	/* The longest name works; a reserved type is refused by the send. */
	CHECK_OK(tr_registry_register(g_reg, longest, a));
	CHECK(tr_pid_eq(whereis(g_reg, longest), a));
	CHECK_ERR(send_named(tr_inbox_ctx(f.ib), longest, TR_MSG_DOWN),
		  TR_EINVAL);
	/* Names are bytes, compared exactly. */
	CHECK(is_gone(g_reg, "X"));
	st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 1);
	CHECK_EQ_U64(st.names, 1);
	teardown(&f);
}

/* ---- from inside actors -------------------------------------------------- */

static void
test_from_actor(void)
{
	struct fx f;
	int32_t r = -1;
	struct pong p;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	tr_pid b = fx_spawn(&f, &node_def, NULL);

	SEND(&f, a, MSG_REG_SELF, "server", 6);
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_OK(r);
	CHECK(tr_pid_eq(whereis(g_reg, "server"), a));
	/* Inside and outside see one registry: taken either way. */
	CHECK_ERR(tr_registry_register(g_reg, "server", b), TR_EEXIST);
	SEND(&f, b, MSG_REG_SELF, "server", 6);
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_EQ_INT(r, TR_EEXIST);

	/* b sends to "server" by name: a sees b as the sender. */
	SEND(&f, b, MSG_SEND_NAMED, "server", 6);
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_OK(r);
	memset(&p, 0, sizeof(p));
	CHECK(fx_recv(&f, MSG_PONG, &p, sizeof(p)));
	CHECK(tr_pid_eq(p.self, a));
	CHECK(tr_pid_eq(p.from, b));

	SEND(&f, b, MSG_SEND_NAMED, "nobody", 6);
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_EQ_INT(r, TR_ENOENT);
	CHECK(fx_recv_none(&f, 50));

	/* Names are per registry: one of another runtime does not know
	 * this one's names. */
	struct fx other;
	tr_registry *oreg = NULL;
	fx_start(&other, 1);
	CHECK_OK(tr_registry_create(other.rt, &oreg));
	tr_registry *mine = g_reg;
	g_reg = oreg;
	SEND(&f, b, MSG_SEND_NAMED, "server", 6);
	CHECK(fx_recv(&f, MSG_RESULT, &r, sizeof(r)));
	CHECK_EQ_INT(r, TR_ENOENT);
	g_reg = mine;
	tr_registry_destroy(oreg);
	fx_finish(&other);
	CHECK(is_gone(g_reg, "elsewhere"));
	teardown(&f);
}

/* ---- removal when the holder stops --------------------------------------- */

static void
test_name_vanishes_on_stop(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);

	CHECK_OK(tr_registry_register(g_reg, "worker", a));
	CHECK(ping(&f, a));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), a, TR_EXIT_ERROR));
	CHECK(WAIT_UNTIL(is_gone(g_reg, "worker"), GONE_MS));

	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.removed, 1);
	CHECK_EQ_U64(st.names, 0);
	CHECK_EQ_U64(st.holders, 0);
	check_balance(&st);

	/* Once the DOWN was handled the name is free for a successor. */
	tr_pid b = fx_spawn(&f, &node_def, NULL);
	CHECK_OK(tr_registry_register(g_reg, "worker", b));
	CHECK(tr_pid_eq(whereis(g_reg, "worker"), b));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK(tr_pid_eq(whereis(g_reg, "worker"), b));
	st = stats(g_reg);
	CHECK_EQ_U64(st.removed, 1);
	CHECK_EQ_U64(st.names, 1);
	teardown(&f);
}

static void
test_all_names_of_a_pid_vanish(void)
{
	struct fx f;
	char name[32];

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	tr_pid b = fx_spawn(&f, &node_def, NULL);

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "a.%d", i);
		CHECK_OK(tr_registry_register(g_reg, name, a));
	}
	CHECK_OK(tr_registry_register(g_reg, "b", b));
	/* One name of a goes before the stop and is not removed twice. */
	CHECK_OK(tr_registry_unregister(g_reg, "a.3"));
	CHECK_EQ_U64(stats(g_reg).holders, 2);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), a, TR_EXIT_NORMAL));
	CHECK(WAIT_UNTIL(stats(g_reg).names == 1, GONE_MS));
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "a.%d", i);
		CHECK(is_gone(g_reg, name));
	}
	CHECK(tr_pid_eq(whereis(g_reg, "b"), b));
	CHECK(ping(&f, b));

	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 11);
	CHECK_EQ_U64(st.unregistered, 1);
	CHECK_EQ_U64(st.removed, 9);
	CHECK_EQ_U64(st.holders, 1);
	check_balance(&st);
	teardown(&f);
}

static void
test_stopped_pid_loses_name(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), a, TR_EXIT_NORMAL));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS)); /* a has stopped */

	/* Liveness is unknown at register time: accepted, removed soon. */
	CHECK_OK(tr_registry_register(g_reg, "ghost", a));
	CHECK_OK(tr_registry_register(g_reg, "ghost.2", a));
	CHECK(WAIT_UNTIL(is_gone(g_reg, "ghost") && is_gone(g_reg, "ghost.2"),
			 GONE_MS));
	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.removed, 2);
	CHECK_EQ_U64(st.holders, 0);
	check_balance(&st);
	teardown(&f);
}

static void
test_replace(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	tr_pid b = fx_spawn(&f, &node_def, NULL);
	tr_pid c = fx_spawn(&f, &node_def, NULL);
	tr_pid d = fx_spawn(&f, &node_def, NULL);

	CHECK_OK(tr_registry_register(g_reg, "svc", a));
	CHECK_OK(tr_registry_register(g_reg, "svc.admin", a));
	/* A compare-and-swap on the name: from a (the holder) to b. */
	CHECK_OK(tr_registry_replace(g_reg, "svc", a, b));
	CHECK(tr_pid_eq(whereis(g_reg, "svc"), b));
	/* A second successor that also saw a loses. */
	CHECK_ERR(tr_registry_replace(g_reg, "svc", a, c), TR_EEXIST);
	CHECK(tr_pid_eq(whereis(g_reg, "svc"), b));
	/* replace of a free name is a register */
	CHECK_OK(tr_registry_replace(g_reg, "svc.other", a, c));
	CHECK(tr_pid_eq(whereis(g_reg, "svc.other"), c));

	/* a's stop removes only what a still held. */
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), a, TR_EXIT_ERROR));
	CHECK(WAIT_UNTIL(is_gone(g_reg, "svc.admin"), GONE_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK(tr_pid_eq(whereis(g_reg, "svc"), b));
	CHECK(ping(&f, b));
	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 4);
	CHECK_EQ_U64(st.replaced, 1);
	CHECK_EQ_U64(st.removed, 1);
	CHECK_EQ_U64(st.names, 2);
	check_balance(&st);

	/*
	 * A supervisor that saw d stop hands d's name to its successor at
	 * once: whether or not the registry has handled d's DOWN yet, the
	 * name ends up with c, and d's DOWN never takes it away.
	 */
	CHECK_OK(tr_registry_register(g_reg, "job", d));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), d, TR_EXIT_ERROR));
	CHECK_OK(tr_registry_replace(g_reg, "job", d, c));
	CHECK(tr_pid_eq(whereis(g_reg, "job"), c));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK(tr_pid_eq(whereis(g_reg, "job"), c));
	st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 6);
	CHECK_EQ_U64(st.names, 3);
	CHECK_EQ_U64(st.holders, 2);
	check_balance(&st);
	teardown(&f);
}

/* ---- race ---------------------------------------------------------------- */

#define RACE_THREADS 4
#define RACE_ITERS   50000
#define RACE_NAMES   8
#define RACE_POOL    128
#define RACE_STOPS   64

struct race {
	struct fx *f;
	tr_pid pool[RACE_POOL];
	atomic_bool stopped[RACE_POOL];
	atomic_uint_fast64_t ops;
	atomic_uint_fast64_t gate; /* racers wait while ops is past it */
	atomic_bool go;
};

struct racer {
	struct race *r;
	unsigned idx;
	uint64_t regs, unregs, repls, lookups, foreign; /* successes */
};

static const char *const race_names[RACE_NAMES] = {
	"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7",
};

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static int
pool_index(const struct race *r, tr_pid p)
{
	for (int i = 0; i < RACE_POOL; i++) {
		if (tr_pid_eq(r->pool[i], p)) {
			return i;
		}
	}
	return -1;
}

static void *
racer_main(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	uint64_t seed = 0x9e3779b97f4a7c15u * (me->idx + 1);

	while (!atomic_load(&r->go)) {
		harness_nap_us(100);
	}
	for (int i = 0; i < RACE_ITERS; i++) {
		/* The stopper's next stop comes before the race goes on: on
		 * a busy machine it could otherwise run only once every
		 * racer is done, and no stop would meet a name. */
		while (atomic_load(&r->ops) >= atomic_load(&r->gate)) {
			harness_nap_us(50);
		}
		uint64_t x = xorshift(&seed);
		const char *name = race_names[x % RACE_NAMES];
		tr_pid pid = r->pool[(x >> 8) % RACE_POOL];
		tr_pid seen;

		switch ((x >> 20) % 4) {
		case 0:
			if (tr_registry_register(g_reg, name, pid) == TR_OK) {
				me->regs++;
			}
			break;
		case 1:
			if (tr_registry_unregister(g_reg, name) == TR_OK) {
				me->unregs++;
			}
			break;
		case 2:
			if (tr_registry_whereis(g_reg, name, &seen) == TR_OK) {
				me->lookups++;
				if (pool_index(r, seen) < 0) {
					/* never a pid we did not use */
					me->foreign++;
				}
			}
			break;
		default:
			/* Take the name over from whoever we saw holding it. */
			if (tr_registry_whereis(g_reg, name, &seen) != TR_OK) {
				seen = TR_PID_NONE;
			}
			if (tr_pid_eq(seen, pid)) {
				break;
			}
			if (tr_registry_replace(g_reg, name, seen, pid) ==
			    TR_OK) {
				me->repls++;
			}
			break;
		}
		atomic_fetch_add(&r->ops, 1);
	}
	return NULL;
}

static uint64_t
stop_at(int k)
{
	uint64_t total = (uint64_t)RACE_THREADS * RACE_ITERS;

	return total * (uint64_t)(k + 1) / (RACE_STOPS + 2);
}

/* Stops RACE_STOPS pool actors, spread over the racers' run: the racers
 * wait at each stop's gate until it is made. */
static void *
stopper_main(void *arg)
{
	struct race *r = arg;

	for (int k = 0; k < RACE_STOPS; k++) {
		uint64_t deadline = harness_now_ms() + IDLE_MS;
		while (atomic_load(&r->ops) < stop_at(k) &&
		       harness_now_ms() < deadline) {
			harness_nap_us(50);
		}
		int i = (k * 37) % RACE_POOL; /* 37 is coprime with 128 */
		atomic_store(&r->stopped[i], true);
		(void)tr_stop(tr_runtime_ctx(r->f->rt), r->pool[i],
			      TR_EXIT_ERROR);
		atomic_store(&r->gate,
			     k + 1 < RACE_STOPS ? stop_at(k + 1) : UINT64_MAX);
	}
	return NULL;
}

static void
test_race(void)
{
	struct fx f;
	static struct race r; /* large; not on the stack */
	struct racer racers[RACE_THREADS];
	pthread_t th[RACE_THREADS + 1];

	setup(&f, 2);
	memset(&r, 0, sizeof(r));
	r.f = &f;
	atomic_init(&r.gate, stop_at(0));
	for (int i = 0; i < RACE_POOL; i++) {
		r.pool[i] = fx_spawn(&f, &node_def, NULL);
		atomic_init(&r.stopped[i], false);
	}
	for (int i = 0; i < RACE_THREADS; i++) {
		memset(&racers[i], 0, sizeof(racers[i]));
		racers[i].r = &r;
		racers[i].idx = (unsigned)i;
		CHECK_EQ_INT(
			pthread_create(&th[i], NULL, racer_main, &racers[i]),
			0);
	}
	CHECK_EQ_INT(pthread_create(&th[RACE_THREADS], NULL, stopper_main, &r),
		     0);
	atomic_store(&r.go, true);
	for (int i = 0; i <= RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
	}

	/* Every stop's DOWN is handled once the runtime is idle. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	uint64_t regs = 0, unregs = 0, repls = 0, lookups = 0, foreign = 0;
	for (int i = 0; i < RACE_THREADS; i++) {
		regs += racers[i].regs;
		unregs += racers[i].unregs;
		repls += racers[i].repls;
		lookups += racers[i].lookups;
		foreign += racers[i].foreign;
	}
	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(foreign, 0);
	CHECK(lookups > 0);
	CHECK_EQ_U64(st.registered, regs + repls);
	CHECK_EQ_U64(st.unregistered, unregs);
	CHECK(st.replaced <= repls);
	CHECK(st.removed > 0);
	check_balance(&st);
	fprintf(stderr,
		"  race: %" PRIu64 " registers, %" PRIu64
		" unregisters, %" PRIu64 " replaces (%" PRIu64
		" of a holder), %" PRIu64 " removed on stop, %" PRIu64
		" left\n",
		regs, unregs, repls, st.replaced, st.removed, st.names);

	/* Every name left maps to a live actor, and it answers. */
	uint64_t left = 0;
	for (int i = 0; i < RACE_NAMES; i++) {
		tr_pid p;
		if (tr_registry_whereis(g_reg, race_names[i], &p) != TR_OK) {
			continue;
		}
		left++;
		int k = pool_index(&r, p);
		CHECK(k >= 0);
		if (k < 0) {
			continue;
		}
		CHECK(!atomic_load(&r.stopped[k]));
		CHECK_OK(send_named(tr_inbox_ctx(f.ib), race_names[i],
				    MSG_PING));
		struct pong pg;
		memset(&pg, 0, sizeof(pg));
		CHECK(fx_recv(&f, MSG_PONG, &pg, sizeof(pg)));
		CHECK(tr_pid_eq(pg.self, p));
	}
	CHECK_EQ_U64(left, st.names);

	/* Emptying the registry leaves no holder behind. */
	for (int i = 0; i < RACE_NAMES; i++) {
		(void)tr_registry_unregister(g_reg, race_names[i]);
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	st = stats(g_reg);
	CHECK_EQ_U64(st.names, 0);
	CHECK_EQ_U64(st.holders, 0);
	CHECK_EQ_U64(st.unregistered, unregs + left);
	check_balance(&st);
	teardown(&f);
}

/* ---- destroy ------------------------------------------------------------- */

static void
fill(struct fx *f, tr_registry *reg, int nactors, int per_actor)
{
	char name[32];

	for (int i = 0; i < nactors; i++) {
		tr_pid p = fx_spawn(f, &node_def, NULL);
		for (int j = 0; j < per_actor; j++) {
			snprintf(name, sizeof(name), "actor%d.name%d", i, j);
			CHECK_OK(tr_registry_register(reg, name, p));
		}
		if (i % 3 == 0) {
			/* Some holders stop, some DOWNs may still be queued. */
			CHECK_OK(tr_stop(tr_runtime_ctx(f->rt), p,
					 TR_EXIT_NORMAL));
		}
	}
}

static void
test_destroy_with_names(void)
{
	struct fx f;

	setup(&f, 2);
	fill(&f, g_reg, 20, 50);
	tr_registry_stats st = stats(g_reg);
	CHECK_EQ_U64(st.registered, 1000);
	check_balance(&st);
	/* The holders keep running; the memory goes with the registry actor. */
	tr_registry_destroy(g_reg);
	g_reg = NULL;
	tr_pid a = fx_spawn(&f, &node_def, NULL);
	CHECK(ping(&f, a));
	fx_finish(&f);
}

static void
test_destroy_after_join(void)
{
	struct fx f;

	setup(&f, 2);
	fill(&f, g_reg, 5, 20);
	tr_inbox_destroy(f.ib);
	tr_runtime_stop(f.rt);
	CHECK_OK(tr_runtime_join(f.rt));
	check_final_metrics(f.rt);
	/* The registry's actor has stopped: registering is refused. */
	CHECK_ERR(tr_registry_register(g_reg, "late", f.probe), TR_ECLOSED);
	tr_registry_destroy(g_reg);
	g_reg = NULL;
	tr_runtime_destroy(f.rt);
}

static const struct test_case tests[] = {
	{ "registry: register, whereis, unregister", test_basics },
	{ "registry: a taken name is TR_EEXIST", test_taken_name },
	{ "registry: bad input is refused", test_bad_input },
	{ "registry: register and send from inside actors", test_from_actor },
	{ "registry: a name vanishes when its actor stops",
	  test_name_vanishes_on_stop },
	{ "registry: every name of a stopped pid vanishes",
	  test_all_names_of_a_pid_vanish },
	{ "registry: a pid that had stopped loses its name",
	  test_stopped_pid_loses_name },
	{ "registry: replace hands a name on, also from a stopped holder",
	  test_replace },
	{ "registry: 4 threads race while holders stop", test_race },
	{ "registry: destroy with live names", test_destroy_with_names },
	{ "registry: destroy after the runtime joined",
	  test_destroy_after_join },
	{ NULL, NULL },
};

TEST_MAIN(tests)
