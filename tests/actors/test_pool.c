/*
 * Pool (<troupe/actors/pool.h>): every routing strategy with exact
 * counts, scatter-gather (complete and partial), a crashed worker
 * replaced while routing goes on, resizing both ways, a start from an
 * actor with its link, and bad input.
 *
 * Workers ("wk") answer MSG_WORK with MSG_DONE {their pid, the value} to
 * tr_sender(), so the replies reaching the probe also prove that the pool
 * kept the client as the sender. Each worker takes a start number in its
 * init; a test can make the first few silent to scatter-gather requests,
 * hold one in a handler until released (a deterministic backlog), or make
 * inits fail. Handlers never call CHECK.
 */
#include <troupe/troupe.h>
#include <troupe/actors/pool.h>

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
	MSG_WORK = 1,  /* uint64_t value; reply MSG_DONE */
	MSG_DONE,      /* struct done */
	MSG_CRASH,     /* stop with TR_EXIT_ERROR */
	MSG_GATE,      /* block in the handler until the gate opens */
	MSG_ASK,       /* uint64_t; reply MSG_ANSWER 2 * value, unless silent */
	MSG_ANSWER,    /* uint64_t */
	MSG_BOSS_GO,   /* boss: start a pool of 3 */
	MSG_BOSS_SEND, /* boss: three plain tr_send() MSG_WORK to the pool */
	MSG_BOSS_GATHER, /* boss: tr_pool_gather() */
	MSG_BOSS_DIE,    /* boss: stop with TR_EXIT_ERROR */
	MSG_BOSS_FWD,    /* boss -> probe: struct fwd */
};

struct done {
	tr_pid worker;
	uint64_t value;
};

/* What the test controls in every worker, through the pool's arg. */
struct world {
	atomic_uint started;    /* inits run, the start number */
	atomic_uint silent;     /* workers started below this are silent */
	atomic_uint fail_inits; /* inits fail while nonzero */
	atomic_uint handled;    /* MSG_WORK handled */
	atomic_int gate_open;
	atomic_int gate_in;        /* a worker waits in the gate */
	atomic_uint answers;       /* MSG_ANSWER sent */
	atomic_ullong answered_ms; /* clock after the latest answer was sent */
};

static struct world g;

static void
world_reset(void)
{
	atomic_store(&g.started, 0);
	atomic_store(&g.silent, 0);
	atomic_store(&g.fail_inits, 0);
	atomic_store(&g.handled, 0);
	atomic_store(&g.gate_open, 0);
	atomic_store(&g.gate_in, 0);
	atomic_store(&g.answers, 0);
	atomic_store(&g.answered_ms, 0);
}

struct wk {
	struct world *w;
	unsigned num;
};

static int
wk_init(tr_ctx *cx, void *state, void *arg)
{
	struct wk *k = state;

	(void)cx;
	k->w = arg;
	if (atomic_load(&k->w->fail_inits) != 0) {
		return TR_EINVAL;
	}
	k->num = atomic_fetch_add(&k->w->started, 1);
	return TR_OK;
}

static void
wk_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct wk *k = state;
	uint64_t v;

	switch (m->type) {
	case MSG_WORK:
		if (!payload(m, &v, sizeof(v))) {
			break;
		}
		atomic_fetch_add(&k->w->handled, 1);
		struct done d = { .worker = tr_self(cx), .value = v };
		(void)tr_send(cx, tr_sender(cx), MSG_DONE, &d, sizeof(d));
		break;
	case MSG_CRASH:
		tr_stop_self(cx, TR_EXIT_ERROR);
		break;
	case MSG_GATE:
		/* A test-only stall: it builds a backlog nobody else can
		 * drain, and the runtime has spare workers meanwhile. */
		atomic_store(&k->w->gate_in, 1);
		while (atomic_load(&k->w->gate_open) == 0) {
			harness_nap_us(200);
		}
		break;
	case MSG_ASK:
		if (!payload(m, &v, sizeof(v)) ||
		    k->num < atomic_load(&k->w->silent)) {
			break;
		}
		v *= 2;
		/* A request's reply, or a plain answer to a plain send. */
		(void)tr_reply(cx, m, MSG_ANSWER, &v, sizeof(v));
		/* Read after the send: the answer was queued by then. */
		uint64_t now = harness_now_ms();
		unsigned long long was = atomic_load(&k->w->answered_ms);
		while (was < now && !atomic_compare_exchange_weak(
					    &k->w->answered_ms, &was, now)) {
		}
		atomic_fetch_add(&k->w->answers, 1);
		break;
	default:
		break;
	}
}

static const tr_actor_def wk_def = {
	.size = sizeof(tr_actor_def),
	.name = "wk",
	.state_size = sizeof(struct wk),
	.init = wk_init,
	.handle = wk_handle,
};

/* ---- starting, asking and counting --------------------------------------- */

static tr_pool_config
pool_cfg(uint32_t n, tr_pool_strategy how)
{
	tr_pool_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.def = &wk_def;
	c.arg = &g;
	c.workers = n;
	c.strategy = how;
	return c;
}

/*
 * Starts a pool on the probe's context and waits for the outcome of the
 * start with tr_inbox_recv() with the reference. Returns the start reply's
 * status, or the call's error.
 */
static int32_t
start_wait(struct fx *f, const tr_pool_config *c, tr_pid *pool)
{
	tr_ref ref;
	tr_pool_reply rp;

	tr_err err = tr_pool_start(tr_inbox_ctx(f->ib), c, pool, &ref);
	if (err < 0) {
		CHECK(tr_pid_is_none(*pool) && ref.v == 0);
		return err;
	}
	CHECK(!tr_pid_is_none(*pool) && ref.v != 0);
	bool got =
		fx_recv_ref(f, ref, TR_MSG_POOL_REPLY, *pool, &rp, sizeof(rp));
	CHECK(got);
	if (!got) {
		return -1000;
	}
	CHECK_EQ_INT(rp.op, 0); /* the start's reply */
	if (rp.status == TR_OK) {
		CHECK_EQ_U64(rp.live, c->workers);
	}
	return rp.status;
}

static tr_pid
start_pool(struct fx *f, uint32_t n, tr_pool_strategy how)
{
	tr_pool_config c = pool_cfg(n, how);
	tr_pid pool = TR_PID_NONE;

	CHECK_OK(start_wait(f, &c, &pool));
	CHECK(!tr_pid_is_none(pool));
	return pool;
}

/* A control request from the probe and its reply; @pids gets the worker
 * list of TR_POOL_OP_WORKERS (room for @cap). */
static bool
control(struct fx *f, tr_pid pool, tr_pool_op op, uint32_t workers,
	tr_pool_reply *out, tr_pid *pids, uint32_t cap)
{
	tr_pool_request q = { .op = op, .workers = workers };
	tr_received r;
	tr_ref ref;

	CHECK_OK(tr_request(tr_inbox_ctx(f->ib), pool, TR_MSG_POOL_CONTROL, &q,
			    sizeof(q), 0, &ref));
	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r) != TR_OK) {
		fprintf(stderr, "  no reply to op %d\n", (int)op);
		harness_failed_checks++;
		return false;
	}
	bool ok;
	if (op == TR_POOL_OP_WORKERS) {
		/* Variable length: the counters, then reply.count pids. */
		const tr_pool_workers *w =
			TR_MSG_AS_FAM(&r, tr_pool_workers, reply.count, pids);
		ok = r.type == TR_MSG_POOL_WORKERS && w != NULL;
		if (ok) {
			*out = w->reply;
			for (uint32_t i = 0;
			     pids != NULL && i < out->count && i < cap; i++) {
				pids[i] = w->pids[i];
			}
		}
	} else {
		const tr_pool_reply *rp = TR_MSG_AS(&r, tr_pool_reply);
		ok = r.type == TR_MSG_POOL_REPLY && rp != NULL;
		if (ok) {
			*out = *rp;
		}
	}
	ok = ok && (r.flags & TR_MSG_F_REPLY) && out->op == (uint32_t)op;
	if (!ok) {
		fprintf(stderr, "  bad reply to op %d (type %u)\n", (int)op,
			r.type);
		harness_failed_checks++;
	}
	tr_received_fini(&r);
	return ok;
}

/* The status a TR_MSG_POOL_CONTROL request of @len bytes at @q gets, or
 * -1000 without an answer. */
static int32_t
control_status(struct fx *f, tr_pid pool, const void *q, size_t len)
{
	tr_received r;
	tr_ref ref;
	int32_t status = -1000;

	CHECK_OK(tr_request(tr_inbox_ctx(f->ib), pool, TR_MSG_POOL_CONTROL, q,
			    len, 0, &ref));
	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r) == TR_OK) {
		const tr_pool_reply *rp = TR_MSG_AS(&r, tr_pool_reply);
		if (r.type == TR_MSG_POOL_REPLY && rp != NULL) {
			status = rp->status;
		}
		tr_received_fini(&r);
	}
	return status;
}

static tr_pool_reply
stats(struct fx *f, tr_pid pool)
{
	tr_pool_reply rp;

	memset(&rp, 0, sizeof(rp));
	(void)control(f, pool, TR_POOL_OP_STATS, 0, &rp, NULL, 0);
	return rp;
}

static void
stop_pool(struct fx *f, tr_pid pool)
{
	tr_pool_reply rp;

	if (control(f, pool, TR_POOL_OP_STOP, 0, &rp, NULL, 0)) {
		CHECK_OK(rp.status);
	}
	CHECK(WAIT_UNTIL(!tr_actor_alive(f->rt, pool), WAIT_MS));
}

static void
route(struct fx *f, tr_pid pool, tr_pool_strategy how, uint64_t key,
      uint64_t value)
{
	CHECK_OK(tr_pool_route(tr_inbox_ctx(f->ib), pool, how, key, MSG_WORK,
			       &value, sizeof(value)));
}

/* Index of @p in @pids, or -1. */
static int
find_pid(const tr_pid *pids, uint32_t n, tr_pid p)
{
	for (uint32_t i = 0; i < n; i++) {
		if (tr_pid_eq(pids[i], p)) {
			return (int)i;
		}
	}
	return -1;
}

/* Takes @n MSG_DONE and counts them per worker in @pids order; a reply
 * from anyone else counts in *@stray. */
static void
tally(struct fx *f, uint32_t n, const tr_pid *pids, uint32_t npids,
      unsigned *counts, unsigned *stray)
{
	for (uint32_t i = 0; i < n; i++) {
		struct done d;
		if (!fx_recv(f, MSG_DONE, &d, sizeof(d))) {
			harness_failed_checks++;
			return;
		}
		int at = find_pid(pids, npids, d.worker);
		if (at < 0) {
			(*stray)++;
		} else {
			counts[at]++;
		}
	}
}

/* ---- tests -------------------------------------------------------------- */

static void
test_round_robin(void)
{
	struct fx f;
	tr_pid pids[4];
	unsigned counts[4] = { 0 }, stray = 0;
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 4, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 4));
	CHECK_EQ_U64(rp.count, 4);
	CHECK_EQ_U64(rp.live, 4);
	for (uint64_t i = 0; i < 100; i++) {
		route(&f, pool,
		      i % 2 == 0 ? TR_POOL_ROUND_ROBIN : TR_POOL_DEFAULT, 0, i);
	}
	tally(&f, 100, pids, 4, counts, &stray);
	CHECK_EQ_U64(stray, 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_U64(counts[i], 25);
	}
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.round_robin, 100);
	CHECK_EQ_U64(rp.delivered, 100);
	CHECK_EQ_U64(rp.dropped, 0);
	CHECK_EQ_U64(rp.least_loaded + rp.broadcast + rp.consistent_hash, 0);
	CHECK_EQ_U64(atomic_load(&g.handled), 100);
	stop_pool(&f, pool);
	fx_finish(&f);
}

/*
 * A plain tr_send and a tr_request to the pool's own pid are routed with
 * its strategy, as an Akka router takes a plain tell; the request's reply
 * comes from the worker, under the request's reference.
 */
static void
test_plain_send_and_request(void)
{
	struct fx f;
	tr_pid pids[4];
	unsigned counts[4] = { 0 }, stray = 0;
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_pid pool = start_pool(&f, 4, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 4));
	for (uint64_t i = 0; i < 8; i++) {
		CHECK_OK(tr_send(cx, pool, MSG_WORK, &i, sizeof(i)));
	}
	tally(&f, 8, pids, 4, counts, &stray);
	CHECK_EQ_U64(stray, 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_U64(counts[i], 2);
	}
	uint64_t v = 21;
	tr_ref ref = { 0 };
	CHECK_OK(tr_request(cx, pool, MSG_ASK, &v, sizeof(v), 0, &ref));
	tr_received r;
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const uint64_t *got = TR_MSG_AS(&r, uint64_t);
	CHECK(r.type == MSG_ANSWER && got != NULL && *got == 42);
	CHECK(find_pid(pids, 4, r.from) >= 0); /* answered by a worker */
	tr_received_fini(&r);
	/* A type of the standard actors' range is not the pool's to route. */
	CHECK_OK(tr_send(cx, pool, TR_MSG_ACTORS_BASE + 0x7F0u, NULL, 0));
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.round_robin, 9);
	CHECK_EQ_U64(rp.delivered, 9);
	CHECK_EQ_U64(rp.dropped, 1);
	stop_pool(&f, pool);
	fx_finish(&f);
}

static void
test_least_loaded(void)
{
	struct fx f;
	tr_pid pids[2];
	unsigned counts[2] = { 0 }, stray = 0;
	tr_pool_reply rp;
	uint32_t q = 0;

	world_reset();
	fx_start(&f, 3);
	tr_pid pool = start_pool(&f, 2, TR_POOL_LEAST_LOADED);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 2));
	/* Worker 0 stalls in its handler with 50 messages behind it. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), pids[0], MSG_GATE, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&g.gate_in) == 1, WAIT_MS));
	for (uint64_t i = 0; i < 50; i++) {
		SEND(&f, pids[0], MSG_WORK, &i, sizeof(i));
	}
	CHECK_OK(tr_mailbox_len(f.rt, pids[0], &q));
	CHECK_EQ_U64(q, 50);
	/* Every routed message goes to the idle worker. */
	for (uint64_t i = 0; i < 20; i++) {
		route(&f, pool, TR_POOL_DEFAULT, 0, 1000 + i);
	}
	tally(&f, 20, pids, 2, counts, &stray);
	CHECK_EQ_U64(counts[0], 0);
	CHECK_EQ_U64(counts[1], 20);
	CHECK_EQ_U64(stray, 0);
	atomic_store(&g.gate_open, 1);
	memset(counts, 0, sizeof(counts));
	tally(&f, 50, pids, 2, counts, &stray);
	CHECK_EQ_U64(counts[0], 50);
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.least_loaded, 20);
	CHECK_EQ_U64(rp.delivered, 20);
	stop_pool(&f, pool);
	fx_finish(&f);
}

static void
test_broadcast(void)
{
	struct fx f;
	tr_pid pids[5];
	unsigned counts[5] = { 0 }, stray = 0;
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 5, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 5));
	route(&f, pool, TR_POOL_BROADCAST, 0, 7);
	tally(&f, 5, pids, 5, counts, &stray);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_U64(counts[i], 1);
	}
	CHECK_EQ_U64(stray, 0);
	CHECK(fx_recv_none(&f, 200));
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.broadcast, 1);
	CHECK_EQ_U64(rp.delivered, 5);
	CHECK_EQ_U64(atomic_load(&g.handled), 5);
	stop_pool(&f, pool);
	fx_finish(&f);
}

#define NKEYS 1000

/* Routes every key once and records which worker took it. */
static void
route_keys(struct fx *f, tr_pid pool, tr_pid *owner)
{
	for (uint64_t k = 0; k < NKEYS; k++) {
		route(f, pool, TR_POOL_CONSISTENT_HASH, k * 7919u, k);
	}
	for (int i = 0; i < NKEYS; i++) {
		struct done d;
		if (!fx_recv(f, MSG_DONE, &d, sizeof(d)) || d.value >= NKEYS) {
			harness_failed_checks++;
			return;
		}
		owner[d.value] = d.worker;
	}
}

static void
test_consistent_hash(void)
{
	static tr_pid first[NKEYS], again[NKEYS], grown[NKEYS];
	struct fx f;
	tr_pid pids[5];
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 4, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 4));
	route_keys(&f, pool, first);
	route_keys(&f, pool, again);
	unsigned per[5] = { 0 }, same = 0;
	for (int k = 0; k < NKEYS; k++) {
		same += tr_pid_eq(first[k], again[k]);
		int at = find_pid(pids, 4, first[k]);
		CHECK(at >= 0);
		if (at >= 0) {
			per[at]++;
		}
	}
	CHECK_EQ_U64(same, NKEYS);
	for (int i = 0; i < 4; i++) {
		/* About 250 each; far from it means a broken ring. */
		CHECK(per[i] > 150 && per[i] < 350);
	}
	CHECK(control(&f, pool, TR_POOL_OP_RESIZE, 5, &rp, NULL, 0));
	CHECK_OK(rp.status);
	CHECK_EQ_U64(rp.workers, 5);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 5));
	CHECK_EQ_U64(rp.live, 5);
	route_keys(&f, pool, grown);
	unsigned moved = 0, to_new = 0;
	for (int k = 0; k < NKEYS; k++) {
		if (!tr_pid_eq(first[k], grown[k])) {
			moved++;
			to_new += tr_pid_eq(grown[k], pids[4]);
		}
	}
	/* Ideal: 1/5 of the keys, all to the new worker. */
	CHECK(moved > 100);
	CHECK(moved <= 350);
	CHECK_EQ_U64(to_new, moved);
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.consistent_hash, 3 * NKEYS);
	CHECK_EQ_U64(rp.delivered, 3 * NKEYS);
	stop_pool(&f, pool);
	fx_finish(&f);
}

/* Takes the scatter-gather result that answers @ref; its replies go to
 * @vals/@from. */
static bool
recv_result(struct fx *f, tr_ref ref, tr_pool_gather_result *res,
	    uint64_t *vals, tr_pid *from, uint32_t cap)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(f->ib, &ref, FX_REPLY_MS, &r) != TR_OK) {
		fprintf(stderr, "  no gather result\n");
		return false;
	}
	/* A pointer message: the result, its entries, their bytes. */
	const tr_pool_gather_result *gr = r.data;
	const unsigned char *lo = r.data, *hi = lo + r.size;
	bool ok =
		r.type == TR_MSG_POOL_GATHERED && (r.flags & TR_MSG_F_PTR) &&
		(r.flags & TR_MSG_F_REPLY) && r.size >= sizeof(*gr) &&
		gr->replied <= gr->asked &&
		gr->missing == gr->asked - gr->replied &&
		(r.size - sizeof(*gr)) / sizeof(gr->replies[0]) >= gr->replied;
	if (ok) {
		*res = *gr;
	}
	for (uint32_t i = 0; ok && i < res->replied; i++) {
		const tr_pool_gather_entry *e = &gr->replies[i];
		const unsigned char *d = e->data;
		/* Inside the message, aligned to 16. */
		ok = e->type == MSG_ANSWER && e->size == sizeof(uint64_t) &&
		     d != NULL && d >= lo && d + e->size <= hi &&
		     (uintptr_t)d % 16 == 0;
		if (ok && i < cap) {
			memcpy(&vals[i], e->data, sizeof(uint64_t));
			from[i] = e->worker;
		}
	}
	if (!ok) {
		fprintf(stderr, "  bad gather result (type %u size %zu)\n",
			r.type, r.size);
	}
	tr_received_fini(&r);
	return ok;
}

static void
test_gather_all(void)
{
	struct fx f;
	tr_pid pids[5], from[5];
	uint64_t vals[5];
	tr_ref id = { 0 };
	tr_pool_gather_result res;
	tr_pool_reply rp;
	uint64_t q = 21;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 5, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 5));
	tr_pool_gather_req req = {
		.size = sizeof(req),
		.type = MSG_ASK,
		.data = &q,
		.len = sizeof(q),
		.timeout_ms = WAIT_MS,
	};
	CHECK_OK(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, &id));
	CHECK(id.v != 0);
	CHECK(recv_result(&f, id, &res, vals, from, 5));
	CHECK_ERR(res.status, TR_OK);
	CHECK_EQ_U64(res.asked, 5);
	CHECK_EQ_U64(res.replied, 5);
	CHECK_EQ_U64(res.missing, 0);
	unsigned seen[5] = { 0 };
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_U64(vals[i], 42);
		int at = find_pid(pids, 5, from[i]);
		CHECK(at >= 0);
		if (at >= 0) {
			seen[at]++;
		}
	}
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_U64(seen[i], 1);
	}
	/* Two of them only. */
	req.count = 2;
	CHECK_OK(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, &id));
	CHECK(recv_result(&f, id, &res, vals, from, 5));
	CHECK_ERR(res.status, TR_OK);
	CHECK_EQ_U64(res.asked, 2);
	CHECK_EQ_U64(res.replied, 2);
	CHECK(!tr_pid_eq(from[0], from[1]));
	CHECK(fx_recv_none(&f, 100));
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.gathers, 2);
	stop_pool(&f, pool);
	fx_finish(&f);
}

static void
test_gather_partial(void)
{
	struct fx f;
	tr_pid pids[5], from[5];
	uint64_t vals[5];
	tr_ref id = { 0 };
	tr_pool_gather_result res;
	tr_pool_reply rp;
	uint64_t q = 5;

	world_reset();
	atomic_store(&g.silent, 2); /* the first two workers never answer */
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 5, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 5));
	tr_pool_gather_req req = {
		.size = sizeof(req),
		.type = MSG_ASK,
		.data = &q,
		.len = sizeof(q),
		.timeout_ms = 300,
	};
	uint64_t t0 = harness_now_ms();
	CHECK_OK(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, &id));
	CHECK(recv_result(&f, id, &res, vals, from, 5));
	/* Not early: t0 was read before the collector armed its timer. */
	CHECK(harness_now_ms() - t0 >= 300);
	CHECK_ERR(res.status, TR_ETIMEDOUT);
	CHECK_EQ_U64(res.asked, 5);
	/*
	 * The three that answer must all be in the result when their
	 * answers were queued at the collector before its timeout could
	 * fire (300 ms after t0 at the earliest). On a busy machine they
	 * may come later; then those that made it are in the result and
	 * the rest count as missing.
	 */
	CHECK(WAIT_UNTIL(atomic_load(&g.answers) == 3, WAIT_MS));
	bool in_time = atomic_load(&g.answered_ms) < t0 + 300;
	if (in_time) {
		CHECK_EQ_U64(res.replied, 3);
	} else {
		printf("  the answers came after the timeout could fire: "
		       "%u in the result\n",
		       res.replied);
		CHECK(res.replied <= 3);
	}
	CHECK_EQ_U64(res.replied + res.missing, 5);
	for (uint32_t i = 0; i < res.replied && i < 3; i++) {
		CHECK_EQ_U64(vals[i], 10);
		/* Workers start in slot order: the silent ones are 0 and 1. */
		int at = find_pid(pids, 5, from[i]);
		CHECK(at >= 2);
	}
	CHECK(fx_recv_none(&f, 100));
	stop_pool(&f, pool);
	fx_finish(&f);
}

static void
test_crash_replaced(void)
{
	struct fx f;
	tr_pid pids[3], after[3];
	unsigned counts[3] = { 0 }, stray = 0;
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 3, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 3));
	CHECK(tr_runtime_wait_idle(f.rt, WAIT_MS) == TR_OK);
	tr_metrics m0 = fx_metrics(&f);
	/* Crash worker 1 while 60 messages are routed. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), pids[1], MSG_CRASH, NULL, 0));
	for (uint64_t i = 0; i < 60; i++) {
		route(&f, pool, TR_POOL_ROUND_ROBIN, 0, i);
	}
	/* Every message is either answered or a dead letter at the worker
	 * that crashed. Wait for the replacement and for quiet. */
	CHECK(WAIT_UNTIL(atomic_load(&g.started) == 4, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	tr_metrics m1 = fx_metrics(&f);
	uint64_t lost = m1.dead_letters - m0.dead_letters;
	unsigned got = 0;
	for (;;) {
		struct done d;
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(f.ib, NULL, 0, &r) != TR_OK) {
			break;
		}
		if (r.type == MSG_DONE && r.size == sizeof(d)) {
			memcpy(&d, r.data, sizeof(d));
			got++;
			CHECK(!tr_pid_eq(d.worker, pids[1]));
		}
		tr_received_fini(&r);
	}
	CHECK_EQ_U64(got + lost, 60);
	CHECK_EQ_U64(atomic_load(&g.handled), got);
	/* The replacement takes its share again. */
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, after, 3));
	CHECK_EQ_U64(rp.live, 3);
	CHECK_EQ_U64(rp.restarts, 1);
	CHECK(tr_pid_eq(after[0], pids[0]));
	CHECK(!tr_pid_eq(after[1], pids[1]) && !tr_pid_is_none(after[1]));
	CHECK(tr_pid_eq(after[2], pids[2]));
	for (uint64_t i = 0; i < 30; i++) {
		route(&f, pool, TR_POOL_ROUND_ROBIN, 0, i);
	}
	tally(&f, 30, after, 3, counts, &stray);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(counts[i], 10);
	}
	CHECK_EQ_U64(stray, 0);
	CHECK_EQ_U64(atomic_load(&g.started), 4);
	stop_pool(&f, pool);
	fx_finish(&f);
}

/* A hashed key whose worker is down waits in the pool for the new one. */
static void
test_held_for_restart(void)
{
	struct fx f;
	tr_pid pids[1];
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 1, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 1));
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), pids[0], MSG_CRASH, NULL, 0));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pids[0]), WAIT_MS));
	for (uint64_t i = 0; i < 10; i++) {
		route(&f, pool, TR_POOL_CONSISTENT_HASH, 42, i);
	}
	/* In order, all from the replacement. */
	for (uint64_t i = 0; i < 10; i++) {
		struct done d;
		CHECK(fx_recv(&f, MSG_DONE, &d, sizeof(d)));
		CHECK_EQ_U64(d.value, i);
		CHECK(!tr_pid_eq(d.worker, pids[0]));
	}
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.restarts, 1);
	CHECK_EQ_U64(rp.delivered, 10);
	CHECK_EQ_U64(rp.dropped, 0);
	CHECK_EQ_U64(rp.pending, 0);
	stop_pool(&f, pool);
	fx_finish(&f);
}

/*
 * Messages routed before any worker runs wait in the pool, each for the
 * slot whose turn it was, and reach the workers once they started. The
 * runtime does not run yet when the pool is started and the messages are
 * routed, so the pool takes them all after its start and before any
 * worker can have started.
 */
static void
test_routed_before_start(void)
{
	struct fx f;
	tr_pid pids[3];
	unsigned counts[3] = { 0 }, stray = 0;
	tr_pool_reply rp;
	tr_ref ref = { 0 };
	tr_pool_config c = pool_cfg(3, TR_POOL_ROUND_ROBIN);
	tr_pid pool = TR_PID_NONE;

	world_reset();
	memset(&f, 0, sizeof(f));
	CHECK_OK(tr_runtime_create(NULL, &f.rt));
	CHECK_OK(tr_inbox_create(f.rt, &f.ib));
	CHECK_OK(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, &ref));
	for (uint64_t i = 0; i < 9; i++) {
		route(&f, pool, TR_POOL_DEFAULT, 0, i);
	}
	CHECK_OK(tr_runtime_start(f.rt));
	CHECK(fx_recv_ref(&f, ref, TR_MSG_POOL_REPLY, pool, &rp, sizeof(rp)));
	CHECK_OK(rp.status);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 3));
	tally(&f, 9, pids, 3, counts, &stray);
	CHECK_EQ_U64(stray, 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(counts[i], 3); /* held in turn, slot by slot */
	}
	rp = stats(&f, pool);
	CHECK_EQ_U64(rp.round_robin, 9);
	CHECK_EQ_U64(rp.delivered, 9);
	CHECK_EQ_U64(rp.dropped, 0);
	CHECK_EQ_U64(rp.pending, 0);
	stop_pool(&f, pool);
	fx_finish(&f);
}

static void
test_resize(void)
{
	struct fx f;
	tr_pid pids[6], after[6];
	unsigned counts[6] = { 0 }, stray = 0;
	tr_pool_reply rp;
	const tr_pool_reply *pr;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 2, TR_POOL_ROUND_ROBIN);
	CHECK(control(&f, pool, TR_POOL_OP_RESIZE, 6, &rp, NULL, 0));
	CHECK_OK(rp.status);
	CHECK_EQ_U64(rp.workers, 6);
	CHECK_EQ_U64(rp.live, 6);
	CHECK_EQ_U64(atomic_load(&g.started), 6);
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 6));
	CHECK_EQ_U64(rp.count, 6);
	for (int i = 0; i < 6; i++) {
		CHECK(!tr_pid_is_none(pids[i]));
		CHECK_EQ_INT(find_pid(pids, 6, pids[i]), i);
	}
	/* Messages already routed to the workers a shrink removes are
	 * handled before they stop. */
	for (uint64_t i = 0; i < 60; i++) {
		route(&f, pool, TR_POOL_ROUND_ROBIN, 0, i);
	}
	tr_pool_request q = { .op = TR_POOL_OP_RESIZE, .workers = 3 };
	tr_ref ref;
	CHECK_OK(tr_request(tr_inbox_ctx(f.ib), pool, TR_MSG_POOL_CONTROL, &q,
			    sizeof(q), 0, &ref));
	unsigned done = 0;
	bool replied = false;
	while (done < 60 || !replied) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(f.ib, NULL, FX_REPLY_MS, &r) != TR_OK) {
			CHECK(false);
			break;
		}
		if (r.type == MSG_DONE) {
			struct done d;
			memcpy(&d, r.data, sizeof(d));
			int at = find_pid(pids, 6, d.worker);
			CHECK(at >= 0);
			if (at >= 0) {
				counts[at]++;
			}
			done++;
		} else if (r.type == TR_MSG_POOL_REPLY &&
			   (pr = TR_MSG_AS(&r, tr_pool_reply)) != NULL) {
			CHECK_EQ_U64(r.ref.v, ref.v);
			CHECK_OK(pr->status);
			CHECK_EQ_U64(pr->workers, 3);
			replied = true;
		}
		tr_received_fini(&r);
	}
	for (int i = 0; i < 6; i++) {
		CHECK_EQ_U64(counts[i], 10);
	}
	for (int i = 3; i < 6; i++) {
		CHECK(!tr_actor_alive(f.rt, pids[i]));
	}
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, after, 6));
	CHECK_EQ_U64(rp.count, 3);
	CHECK_EQ_U64(rp.live, 3);
	for (int i = 0; i < 3; i++) {
		CHECK(tr_pid_eq(after[i], pids[i]));
	}
	memset(counts, 0, sizeof(counts));
	for (uint64_t i = 0; i < 30; i++) {
		route(&f, pool, TR_POOL_ROUND_ROBIN, 0, i);
	}
	tally(&f, 30, after, 3, counts, &stray);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(counts[i], 10);
	}
	CHECK_EQ_U64(stray, 0);
	/* A grow whose inits fail keeps the size it had. */
	atomic_store(&g.fail_inits, 1);
	CHECK(control(&f, pool, TR_POOL_OP_RESIZE, 5, &rp, NULL, 0));
	CHECK_ERR(rp.status, TR_EREJECTED);
	CHECK_EQ_U64(rp.workers, 3);
	CHECK_EQ_U64(rp.live, 3);
	atomic_store(&g.fail_inits, 0);
	/* The same size again is a no-op. */
	CHECK(control(&f, pool, TR_POOL_OP_RESIZE, 3, &rp, NULL, 0));
	CHECK_OK(rp.status);
	CHECK_EQ_U64(rp.workers, 3);
	stop_pool(&f, pool);
	for (int i = 0; i < 3; i++) {
		CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, after[i]), WAIT_MS));
	}
	fx_finish(&f);
}

/*
 * Resizes and stops sent one after another wait their turn: each is
 * answered in arrival order once the one before is done, a stats request
 * is answered whenever it comes, a second stop is answered when the pool
 * has stopped, and a resize after a stop is refused.
 */
static void
test_control_in_turn(void)
{
	enum { R4, R1, STATS, STOP1, STOP2, R3, NREQ };
	static const tr_pool_request qs[NREQ] = {
		[R4] = { .op = TR_POOL_OP_RESIZE, .workers = 4 },
		[R1] = { .op = TR_POOL_OP_RESIZE, .workers = 1 },
		[STATS] = { .op = TR_POOL_OP_STATS },
		[STOP1] = { .op = TR_POOL_OP_STOP },
		[STOP2] = { .op = TR_POOL_OP_STOP },
		[R3] = { .op = TR_POOL_OP_RESIZE, .workers = 3 },
	};
	struct fx f;
	tr_ref refs[NREQ];
	tr_pool_reply got[NREQ];
	int order[NREQ], at = 0;

	world_reset();
	fx_start(&f, 2);
	tr_pid pool = start_pool(&f, 2, TR_POOL_ROUND_ROBIN);
	for (int i = 0; i < NREQ; i++) {
		CHECK_OK(tr_request(tr_inbox_ctx(f.ib), pool,
				    TR_MSG_POOL_CONTROL, &qs[i], sizeof(qs[i]),
				    0, &refs[i]));
		order[i] = -1;
	}
	while (at < NREQ) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(f.ib, NULL, FX_REPLY_MS, &r) != TR_OK) {
			CHECK(false);
			break;
		}
		const tr_pool_reply *rp = TR_MSG_AS(&r, tr_pool_reply);
		for (int i = 0; rp != NULL && i < NREQ; i++) {
			if ((r.flags & TR_MSG_F_REPLY) &&
			    r.ref.v == refs[i].v &&
			    r.type == TR_MSG_POOL_REPLY && order[i] < 0) {
				order[i] = at++;
				got[i] = *rp;
			}
		}
		tr_received_fini(&r);
	}
	for (int i = 0; i < NREQ && at == NREQ; i++) {
		CHECK_EQ_U64(got[i].op, qs[i].op);
	}
	if (at == NREQ) {
		CHECK_OK(got[R4].status);
		CHECK_EQ_U64(got[R4].workers, 4);
		CHECK_OK(got[R1].status);
		CHECK_EQ_U64(got[R1].workers, 1);
		CHECK_OK(got[STATS].status);
		CHECK_OK(got[STOP1].status);
		CHECK_OK(got[STOP2].status);
		CHECK_ERR(got[R3].status, TR_ECLOSED);
		CHECK(order[R4] < order[R1]);
		CHECK(order[R1] < order[STOP1]);
		CHECK(order[STOP1] < order[STOP2]);
	}
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pool), WAIT_MS));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 1, WAIT_MS));
	fx_finish(&f);
}

/* ---- a pool started by an actor ----------------------------------------- */

struct fwd {
	uint32_t what; /* MSG_DONE, TR_MSG_POOL_REPLY or TR_MSG_POOL_GATHERED */
	int32_t status;
	tr_pid pool;
	tr_pid worker;
	uint32_t replied;
};

struct boss {
	tr_pid probe;
	tr_pid pool;
	tr_ref start_ref;
};

static void
boss_fwd(tr_ctx *cx, struct boss *b, const struct fwd *w)
{
	(void)tr_send(cx, b->probe, MSG_BOSS_FWD, w, sizeof(*w));
}

static void
boss_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct boss *b = state;
	struct fwd w;
	uint64_t v = 3;

	memset(&w, 0, sizeof(w));
	w.what = m->type;
	switch (m->type) {
	case MSG_BOSS_GO: {
		tr_pool_config c = pool_cfg(3, TR_POOL_ROUND_ROBIN);
		c.is_linked = true; /* the boss is the parent */
		b->probe = m->from;
		w.status = tr_pool_start(cx, &c, &b->pool, &b->start_ref);
		w.pool = b->pool;
		if (w.status < 0) {
			boss_fwd(cx, b, &w);
		}
		break;
	}
	case MSG_BOSS_SEND:
		for (uint64_t i = 0; i < 3; i++) {
			/* A plain send: routed with the pool's strategy. */
			(void)tr_send(cx, b->pool, MSG_WORK, &i, sizeof(i));
		}
		break;
	case MSG_BOSS_GATHER: {
		tr_pool_gather_req req = {
			.size = sizeof(req),
			.type = MSG_ASK,
			.data = &v,
			.len = sizeof(v),
			.timeout_ms = WAIT_MS,
		};
		(void)tr_pool_gather(cx, b->pool, &req, NULL);
		break;
	}
	case MSG_BOSS_DIE:
		tr_stop_self(cx, TR_EXIT_ERROR);
		break;
	case MSG_DONE: {
		struct done d;
		if (payload(m, &d, sizeof(d))) {
			w.worker = d.worker;
			boss_fwd(cx, b, &w);
		}
		break;
	}
	case TR_MSG_POOL_REPLY: {
		const tr_pool_reply *rp = TR_MSG_AS(m, tr_pool_reply);
		if (rp != NULL && rp->op == 0 && (m->flags & TR_MSG_F_REPLY) &&
		    m->ref.v == b->start_ref.v) {
			w.status = rp->status;
			w.pool = m->from;
			w.replied = rp->live;
			boss_fwd(cx, b, &w);
		}
		break;
	}
	case TR_MSG_POOL_GATHERED: {
		const tr_pool_gather_result *res = m->data;
		if ((m->flags & TR_MSG_F_PTR) && (m->flags & TR_MSG_F_REPLY) &&
		    m->size >= sizeof(*res)) {
			w.status = res->status;
			w.replied = res->replied;
			boss_fwd(cx, b, &w);
		}
		break;
	}
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

static void
test_start_link(void)
{
	struct fx f;
	struct fwd w;
	tr_pid pids[3];
	tr_pool_reply rp;

	world_reset();
	fx_start(&f, 2);
	tr_pid boss = fx_spawn(&f, &boss_def, NULL);
	SEND(&f, boss, MSG_BOSS_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_BOSS_FWD, &w, sizeof(w)));
	CHECK_EQ_U64(w.what, TR_MSG_POOL_REPLY);
	CHECK_OK(w.status);
	CHECK_EQ_U64(w.replied, 3);
	tr_pid pool = w.pool;
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 3));
	/* Workers answer the boss, which routed the work. */
	SEND(&f, boss, MSG_BOSS_SEND, NULL, 0);
	unsigned per[3] = { 0 };
	for (int i = 0; i < 3; i++) {
		CHECK(fx_recv(&f, MSG_BOSS_FWD, &w, sizeof(w)));
		CHECK_EQ_U64(w.what, MSG_DONE);
		int at = find_pid(pids, 3, w.worker);
		CHECK(at >= 0);
		if (at >= 0) {
			per[at]++;
		}
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(per[i], 1);
	}
	SEND(&f, boss, MSG_BOSS_GATHER, NULL, 0);
	CHECK(fx_recv(&f, MSG_BOSS_FWD, &w, sizeof(w)));
	CHECK_EQ_U64(w.what, TR_MSG_POOL_GATHERED);
	CHECK_OK(w.status);
	CHECK_EQ_U64(w.replied, 3);
	/* The boss fails: the link takes the pool and its workers down. */
	SEND(&f, boss, MSG_BOSS_DIE, NULL, 0);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pool), WAIT_MS));
	for (int i = 0; i < 3; i++) {
		CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pids[i]), WAIT_MS));
	}
	fx_finish(&f);
}

/* ---- failures and bad input --------------------------------------------- */

/* Monitors the pid it is sent and tells the probe the DOWN's reason. */
static void
mon_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;
	tr_pid who;
	tr_down d;

	if (m->type == MSG_WORK && payload(m, &who, sizeof(who))) {
		*probe = m->from;
		(void)tr_monitor(cx, who, NULL);
	} else if (m->type == TR_MSG_DOWN && payload(m, &d, sizeof(d))) {
		(void)tr_send(cx, *probe, MSG_DONE, &d.reason,
			      sizeof(d.reason));
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def mon_def = {
	.size = sizeof(tr_actor_def),
	.name = "mon",
	.state_size = sizeof(tr_pid),
	.handle = mon_handle,
};

static void
test_intensity(void)
{
	struct fx f;
	tr_pid pids[2];
	tr_pool_reply rp;
	tr_pool_config c = pool_cfg(2, TR_POOL_ROUND_ROBIN);
	tr_pid pool = TR_PID_NONE;
	int32_t reason = 0;

	world_reset();
	fx_start(&f, 2);
	c.intensity = 1;
	c.period_ms = 600000;
	CHECK_OK(start_wait(&f, &c, &pool));
	tr_pid mon = fx_spawn(&f, &mon_def, NULL);
	SEND(&f, mon, MSG_WORK, &pool, sizeof(pool));
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 2));
	/* One restart is allowed... */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), pids[0], MSG_CRASH, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&g.started) == 3, WAIT_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, WAIT_MS));
	CHECK(control(&f, pool, TR_POOL_OP_WORKERS, 0, &rp, pids, 2));
	CHECK_EQ_U64(rp.restarts, 1);
	CHECK_EQ_U64(rp.live, 2);
	/* ...the second within the period is one too many: the supervisor
	 * gives up, and the pool stops with its reason. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), pids[1], MSG_CRASH, NULL, 0));
	CHECK(fx_recv(&f, MSG_DONE, &reason, sizeof(reason)));
	CHECK_EQ_INT(reason, TR_SUP_EXIT_INTENSITY);
	CHECK(!tr_actor_alive(f.rt, pool));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pids[0]), WAIT_MS));
	fx_finish(&f);
}

static void
test_start_fails(void)
{
	struct fx f;
	tr_pid pool = TR_PID_NONE;

	world_reset();
	fx_start(&f, 2);
	atomic_store(&g.fail_inits, 1);
	tr_pool_config c = pool_cfg(3, TR_POOL_ROUND_ROBIN);
	CHECK_ERR(start_wait(&f, &c, &pool), TR_EREJECTED);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, pool), WAIT_MS));
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 1,
			 WAIT_MS)); /* probe */
	fx_finish(&f);
}

static void
test_bad_input(void)
{
	struct fx f;
	tr_pid pool = TR_PID_NONE;
	uint64_t v = 1;
	tr_pool_gather_result res;

	world_reset();
	fx_start(&f, 2);
	tr_pool_config c = pool_cfg(2, TR_POOL_ROUND_ROBIN);
	CHECK_ERR(tr_pool_start(NULL, &c, &pool, NULL), TR_EINVAL);
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), NULL, &pool, NULL),
		  TR_EINVAL);
	c.size = 8;
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	c = pool_cfg(0, TR_POOL_ROUND_ROBIN);
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	c = pool_cfg(TR_POOL_MAX_WORKERS + 1, TR_POOL_ROUND_ROBIN);
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	c = pool_cfg(2, TR_POOL_CONSISTENT_HASH);
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	c = pool_cfg(2, (tr_pool_strategy)99);
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	c = pool_cfg(2, TR_POOL_ROUND_ROBIN);
	c.def = NULL;
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	CHECK(tr_pid_is_none(pool));
	/* A link needs an actor: a thread's context cannot be a parent. */
	c = pool_cfg(2, TR_POOL_ROUND_ROBIN);
	c.is_linked = true;
	CHECK_ERR(tr_pool_start(tr_inbox_ctx(f.ib), &c, &pool, NULL),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_start(tr_runtime_ctx(f.rt), &c, &pool, NULL),
		  TR_EINVAL);
	CHECK(tr_pid_is_none(pool));
	CHECK_EQ_U64(fx_metrics(&f).actors_alive, 1); /* the probe */

	/* Nothing waits, so a runtime that does not run yet takes a start
	 * (on its own context: no reply); the pool runs once it does. */
	tr_runtime *idle;
	tr_ref ref = { 1 };
	CHECK_OK(tr_runtime_create(NULL, &idle));
	c = pool_cfg(2, TR_POOL_ROUND_ROBIN);
	CHECK_OK(tr_pool_start(tr_runtime_ctx(idle), &c, &pool, &ref));
	CHECK(!tr_pid_is_none(pool) && ref.v == 0);
	CHECK_OK(tr_runtime_start(idle));
	CHECK(WAIT_UNTIL(atomic_load(&g.started) == 2, WAIT_MS));
	CHECK(tr_actor_alive(idle, pool));
	tr_runtime_stop(idle);
	CHECK_OK(tr_runtime_join(idle));
	check_final_metrics(idle);
	tr_runtime_destroy(idle);
	world_reset();

	pool = start_pool(&f, 2, TR_POOL_ROUND_ROBIN);
	CHECK_ERR(tr_pool_route(NULL, pool, TR_POOL_ROUND_ROBIN, 0, MSG_WORK,
				&v, sizeof(v)),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_route(tr_inbox_ctx(f.ib), TR_PID_NONE,
				TR_POOL_ROUND_ROBIN, 0, MSG_WORK, &v,
				sizeof(v)),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_route(tr_inbox_ctx(f.ib), pool, (tr_pool_strategy)9,
				0, MSG_WORK, &v, sizeof(v)),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_route(tr_inbox_ctx(f.ib), pool, TR_POOL_ROUND_ROBIN,
				0, TR_MSG_DOWN, &v, sizeof(v)),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_route(tr_inbox_ctx(f.ib), pool, TR_POOL_ROUND_ROBIN,
				0, MSG_WORK, NULL, 4),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_route(NULL, pool, TR_POOL_ROUND_ROBIN, 0, MSG_WORK,
				&v, sizeof(v)),
		  TR_EINVAL);
	CHECK_ERR(tr_send(NULL, pool, MSG_WORK, &v, sizeof(v)), TR_EINVAL);

	tr_pool_gather_req req = { .size = sizeof(req),
				   .type = MSG_ASK,
				   .data = &v,
				   .len = sizeof(v),
				   .timeout_ms = 100 };
	CHECK_ERR(tr_pool_gather(tr_inbox_ctx(f.ib), pool, NULL, NULL),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_gather(NULL, pool, &req, NULL), TR_EINVAL);
	CHECK_ERR(tr_pool_gather(tr_runtime_ctx(f.rt), pool, &req, NULL),
		  TR_EINVAL);
	CHECK_ERR(tr_pool_gather(tr_inbox_ctx(f.ib), TR_PID_NONE, &req, NULL),
		  TR_EINVAL);
	req.timeout_ms = 0;
	CHECK_ERR(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, NULL),
		  TR_EINVAL);
	req.timeout_ms = 100;
	req.type = TR_MSG_EXIT;
	CHECK_ERR(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, NULL),
		  TR_EINVAL);
	req.type = MSG_ASK;
	req.size = 4;
	CHECK_ERR(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, NULL),
		  TR_EINVAL);
	req.size = sizeof(req);
	CHECK_ERR(tr_pool_gather(NULL, pool, &req, NULL), TR_EINVAL);

	/* A bad control request is answered with TR_EINVAL, and the pool
	 * carries on. */
	tr_pool_request q = { .op = TR_POOL_OP_RESIZE, .workers = 0 };
	CHECK_ERR(control_status(&f, pool, &q, sizeof(q)), TR_EINVAL);
	q.workers = TR_POOL_MAX_WORKERS + 1;
	CHECK_ERR(control_status(&f, pool, &q, sizeof(q)), TR_EINVAL);
	q.op = 0;
	CHECK_ERR(control_status(&f, pool, &q, sizeof(q)), TR_EINVAL);
	q.op = 77;
	CHECK_ERR(control_status(&f, pool, &q, sizeof(q)), TR_EINVAL);
	q.op = TR_POOL_OP_STATS;
	CHECK_ERR(control_status(&f, pool, &q, 1), TR_EINVAL);
	CHECK_ERR(control_status(&f, pool, NULL, 0), TR_EINVAL);
	CHECK_ERR(control_status(&f, pool, &q, sizeof(q)), TR_OK);

	/* What the pool cannot take is not lost silently: a supervisor
	 * event from a stranger, sent as a request, fails at once, and a
	 * pointer message, which it cannot route, is a dead letter and
	 * counted as dropped. */
	tr_pool_reply st0 = stats(&f, pool);
	tr_metrics m0 = fx_metrics(&f);
	tr_ref uref;
	CHECK_OK(tr_request(tr_inbox_ctx(f.ib), pool, TR_MSG_SUP_EVENT, &v,
			    sizeof(v), 0, &uref)); /* not from its supervisor */
	tr_received ur;
	memset(&ur, 0, sizeof(ur));
	CHECK_OK(tr_inbox_recv(f.ib, &uref, FX_REPLY_MS, &ur));
	const tr_request_failed *uf = TR_MSG_AS(&ur, tr_request_failed);
	CHECK(ur.type == TR_MSG_REQUEST_FAILED && uf != NULL &&
	      uf->reason == TR_EXIT_UNHANDLED);
	tr_received_fini(&ur);
	uint64_t *boxed = malloc(sizeof(*boxed));
	CHECK(boxed != NULL);
	if (boxed != NULL) {
		*boxed = v;
		CHECK_OK(tr_send_ptr(tr_inbox_ctx(f.ib), pool, MSG_WORK, boxed,
				     sizeof(*boxed), free));
	}
	tr_pool_reply st1 = stats(&f, pool); /* after both, in order */
	CHECK_EQ_U64(st1.dropped, st0.dropped + 1);
	CHECK_EQ_U64(fx_metrics(&f).dead_letters, m0.dead_letters + 2);

	/* A reply payload of another size is not read as one. */
	unsigned char junk[sizeof(tr_pool_reply) + 16];
	memset(junk, 0xAB, sizeof(junk));
	tr_msg jm = { .type = TR_MSG_POOL_REPLY, .data = junk, .size = 3 };
	CHECK(TR_MSG_AS(&jm, tr_pool_reply) == NULL);
	jm.size = sizeof(junk);
	CHECK(TR_MSG_AS(&jm, tr_pool_reply) == NULL);
	jm.size = sizeof(tr_pool_reply);
	CHECK(TR_MSG_AS(&jm, tr_pool_reply) == (const void *)junk);

	/* A gather to a pool that stopped ends with TR_ENOENT (at once: the
	 * timeout would be TR_ETIMEDOUT, ten minutes on). */
	stop_pool(&f, pool);
	req.timeout_ms = 600000;
	tr_ref gref;
	CHECK_OK(tr_pool_gather(tr_inbox_ctx(f.ib), pool, &req, &gref));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, &gref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_POOL_GATHERED);
	CHECK(r.size >= sizeof(res) && (r.flags & TR_MSG_F_PTR));
	memcpy(&res, r.data, sizeof(res));
	CHECK_ERR(res.status, TR_ENOENT);
	CHECK_EQ_U64(res.asked, 0);
	tr_received_fini(&r);
	/* Routing to it is a dead letter, as any send to a stopped actor. */
	CHECK_OK(tr_pool_route(tr_inbox_ctx(f.ib), pool, TR_POOL_ROUND_ROBIN, 0,
			       MSG_WORK, &v, sizeof(v)));
	CHECK(fx_recv_none(&f, 100));
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "pool: round robin spreads N*k messages exactly", test_round_robin },
	{ "pool: a plain send and a request to the pool are routed",
	  test_plain_send_and_request },
	{ "pool: least loaded avoids a worker with a backlog",
	  test_least_loaded },
	{ "pool: broadcast reaches every worker once", test_broadcast },
	{ "pool: consistent hash is stable and moves few keys on grow",
	  test_consistent_hash },
	{ "pool: scatter-gather with every reply, and with K workers",
	  test_gather_all },
	{ "pool: scatter-gather with silent workers is partial",
	  test_gather_partial },
	{ "pool: a crashed worker is replaced, nothing else lost",
	  test_crash_replaced },
	{ "pool: messages wait for a restarting worker",
	  test_held_for_restart },
	{ "pool: messages routed before the workers run wait for them",
	  test_routed_before_start },
	{ "pool: resize up and down", test_resize },
	{ "pool: control requests wait their turn", test_control_in_turn },
	{ "pool: started by an actor, stopped through the link",
	  test_start_link },
	{ "pool: the supervisor's restart limit stops the pool",
	  test_intensity },
	{ "pool: a failing worker init fails the start", test_start_fails },
	{ "pool: bad input", test_bad_input },
	{ NULL, NULL },
};

TEST_MAIN(tests)
