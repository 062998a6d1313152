/*
 * PubSub (<troupe/actors/pubsub.h>): subscribe, publish and unsubscribe
 * with exact deliveries and senders; bad input; subscribing and publishing
 * from inside actors; per-publisher order with 4 publishers x 1000
 * messages to 8 subscribers; subscribers killed while publishing goes on
 * (removed, survivors get everything, and every message sent is handled
 * or a dead letter); a subscriber on several topics; unsubscribing a
 * non-subscriber; a pid that had stopped before it subscribed; and
 * destroying a service with live subscriptions (ASan checks leaks).
 *
 * Handlers never call CHECK: they report to the probe or count in
 * atomics that the test reads once the runtime is idle.
 */
#include <troupe/troupe.h>
#include <troupe/actors/pubsub.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "fixture.h"

/* Generous: the sanitizer builds are slow and the machine may be busy.
 * Reaching one of these deadlines is a failure. */
#define GONE_MS 30000
#define IDLE_MS 60000

enum {
	MSG_NOTE = 1, /* published in the basic tests; any payload */
	MSG_NOTE2,
	MSG_FWD,    /* to the probe: struct fwd */
	MSG_DO_SUB, /* payload: topic; subscribe self, reply MSG_RESULT */
	MSG_DO_PUB, /* payload: topic; publish MSG_NOTE "x", reply
		     * MSG_RESULT */
	MSG_RESULT, /* int32_t */
	MSG_EVENT,  /* struct ev, published in the order tests */
	MSG_QUERY,  /* reply MSG_REPORT */
	MSG_REPORT, /* struct report */
	MSG_GO,     /* publisher: struct go */
	MSG_CONT,   /* publisher to itself: next chunk */
	MSG_HALT,   /* publisher: stop after the current chunk */
	MSG_DONE,   /* publisher to the probe: struct done */
};

/* ---- a subscriber that forwards what it gets ----------------------------- */

struct fwd {
	tr_pid self;
	tr_pid from;
	uint32_t type;
	uint32_t size;
	char data[16];
};

static tr_pubsub *g_ps;
static tr_pid g_probe;

static void
reply_i32(tr_ctx *cx, tr_pid to, int32_t v)
{
	(void)tr_send(cx, to, MSG_RESULT, &v, sizeof(v));
}

static bool
topic_of(const tr_msg *m, char *buf, size_t cap)
{
	if (m->size == 0 || m->size >= cap || m->data == NULL) {
		return false;
	}
	memcpy(buf, m->data, m->size);
	buf[m->size] = '\0';
	return true;
}

static void
fwd_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	char topic[TR_PUBSUB_TOPIC_MAX + 1];

	(void)state;
	switch (m->type) {
	case MSG_DO_SUB:
		reply_i32(
			cx, tr_sender(cx),
			topic_of(m, topic, sizeof(topic))
				? tr_pubsub_subscribe(g_ps, topic, tr_self(cx))
				: -100);
		break;
	case MSG_DO_PUB:
		reply_i32(cx, tr_sender(cx),
			  topic_of(m, topic, sizeof(topic))
				  ? tr_pubsub_publish(cx, g_ps, topic, MSG_NOTE,
						      "x", 1)
				  : -100);
		break;
	case MSG_NOTE:
	case MSG_NOTE2: {
		struct fwd f;
		memset(&f, 0, sizeof(f));
		f.self = tr_self(cx);
		f.from = tr_sender(cx);
		f.type = m->type;
		f.size = (uint32_t)m->size;
		memcpy(f.data, m->data,
		       m->size < sizeof(f.data) ? m->size : sizeof(f.data));
		(void)tr_send(cx, g_probe, MSG_FWD, &f, sizeof(f));
		break;
	}
	default:
		break;
	}
}

static const tr_actor_def fwd_def = {
	.size = sizeof(tr_actor_def),
	.name = "fwd",
	.handle = fwd_handle,
};

/* ---- sequence-checking subscribers and publishers ------------------------ */

#define MAX_PUBS 4
#define MAX_SUBS 8

struct ev {
	uint32_t pub;
	uint32_t seq; /* 1, 2, 3, ... per publisher */
};

struct report {
	uint64_t count;
	uint64_t bad; /* out of order, bad payload, or a wrong sender */
	uint32_t last[MAX_PUBS];
};

struct seqsub {
	struct report r;
};

/* Who each publisher index is, to check the sender of every event. */
static tr_pid g_pubs[MAX_PUBS];
/* Events each subscriber handled, readable while it runs or after. */
static atomic_uint_fast64_t g_recv[MAX_SUBS];

static void
seqsub_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct seqsub *s = state;
	struct ev e = { MAX_PUBS, 0 }; /* stays invalid if the payload is bad */

	switch (m->type) {
	case MSG_EVENT:
		if (!payload(m, &e, sizeof(e)) || e.pub >= MAX_PUBS ||
		    !tr_pid_eq(tr_sender(cx), g_pubs[e.pub]) ||
		    e.seq != s->r.last[e.pub] + 1) {
			s->r.bad++;
		}
		if (e.pub < MAX_PUBS) {
			s->r.last[e.pub] = e.seq;
		}
		s->r.count++;
		break;
	case MSG_QUERY:
		(void)tr_send(cx, tr_sender(cx), MSG_REPORT, &s->r,
			      sizeof(s->r));
		break;
	default:
		break;
	}
}

/* The subscriber's index in g_recv is its init argument. */
struct seqsub_cnt {
	struct seqsub s;
	unsigned idx;
};

static void
seqsub_cnt_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct seqsub_cnt *s = state;

	if (m->type == MSG_EVENT) {
		atomic_fetch_add_explicit(&g_recv[s->idx], 1,
					  memory_order_relaxed);
	}
	seqsub_handle(cx, &s->s, m);
}

static int
seqsub_cnt_init(tr_ctx *cx, void *state, void *arg)
{
	struct seqsub_cnt *s = state;

	(void)cx;
	s->idx = (unsigned)(uintptr_t)arg;
	return s->idx < MAX_SUBS ? TR_OK : TR_EINVAL;
}

static const tr_actor_def seqsub_def = {
	.size = sizeof(tr_actor_def),
	.name = "seqsub",
	.state_size = sizeof(struct seqsub_cnt),
	.init = seqsub_cnt_init,
	.handle = seqsub_cnt_handle,
};

struct go {
	uint32_t idx;
	uint32_t count; /* 0: until MSG_HALT */
	uint32_t chunk; /* publishes per turn */
	char topic[32];
};

struct done {
	uint32_t idx;
	uint32_t published; /* last sequence number */
	uint64_t sent;      /* sum of what tr_pubsub_publish returned */
	uint64_t errors;    /* publishes that returned an error */
};

struct publisher {
	struct go go;
	struct done d;
	bool halted;
	bool finished;
};

static void
publisher_finish(tr_ctx *cx, struct publisher *p)
{
	p->finished = true;
	(void)tr_send(cx, g_probe, MSG_DONE, &p->d, sizeof(p->d));
}

static void
publisher_chunk(tr_ctx *cx, struct publisher *p)
{
	for (uint32_t i = 0; i < p->go.chunk; i++) {
		if (p->go.count != 0 && p->d.published == p->go.count) {
			break;
		}
		struct ev e = { p->go.idx, p->d.published + 1 };
		int n = tr_pubsub_publish(cx, g_ps, p->go.topic, MSG_EVENT, &e,
					  sizeof(e));
		if (n < 0) {
			p->d.errors++;
		} else {
			p->d.sent += (uint64_t)n;
		}
		p->d.published++;
	}
	if ((p->go.count != 0 && p->d.published == p->go.count) || p->halted) {
		publisher_finish(cx, p);
		return;
	}
	/* One chunk per turn, so that publishers and subscribers interleave. */
	if (tr_send(cx, tr_self(cx), MSG_CONT, NULL, 0) < 0) {
		publisher_finish(cx, p);
	}
}

static void
publisher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct publisher *p = state;

	switch (m->type) {
	case MSG_GO:
		if (!payload(m, &p->go, sizeof(p->go)) || p->go.chunk == 0) {
			p->d.errors++;
			publisher_finish(cx, p);
			break;
		}
		p->go.topic[sizeof(p->go.topic) - 1] = '\0';
		p->d.idx = p->go.idx;
		publisher_chunk(cx, p);
		break;
	case MSG_CONT:
		if (!p->finished) {
			publisher_chunk(cx, p);
		}
		break;
	case MSG_HALT:
		p->halted = true;
		break;
	default:
		break;
	}
}

static const tr_actor_def publisher_def = {
	.size = sizeof(tr_actor_def),
	.name = "publisher",
	.state_size = sizeof(struct publisher),
	.handle = publisher_handle,
};

/* ---- helpers ------------------------------------------------------------- */

static tr_pubsub_stats
stats(tr_pubsub *ps)
{
	tr_pubsub_stats st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	CHECK_OK(tr_pubsub_stats_get(ps, &st));
	return st;
}

static void
check_balance(const tr_pubsub_stats *st)
{
	CHECK_EQ_U64(st->subscribed,
		     st->unsubscribed + st->removed + st->subscriptions);
}

/* Nothing more reaches the probe: once the runtime is idle, anything sent
 * to it is already in its queue, however slow the machine. */
static void
expect_quiet(struct fx *f)
{
	CHECK_OK(tr_runtime_wait_idle(f->rt, IDLE_MS));
	CHECK(fx_recv_none(f, 50));
}

static void
setup(struct fx *f, unsigned workers)
{
	fx_start(f, workers);
	g_probe = f->probe;
	g_ps = NULL;
	CHECK_OK(tr_pubsub_create(f->rt, &g_ps));
}

static void
teardown(struct fx *f)
{
	tr_pubsub_destroy(g_ps);
	g_ps = NULL;
	fx_finish(f);
}

/* Receives @n forwards into @out (in arrival order). */
static bool
recv_fwds(struct fx *f, struct fwd *out, int n)
{
	for (int i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		if (!fx_recv(f, MSG_FWD, &out[i], sizeof(out[i]))) {
			return false;
		}
	}
	return true;
}

static int32_t
cmd(struct fx *f, tr_pid to, uint32_t type, const char *arg)
{
	int32_t r = -1000;

	SEND(f, to, type, arg, strlen(arg));
	CHECK(fx_recv(f, MSG_RESULT, &r, sizeof(r)));
	return r;
}

/*
 * Has @who publish MSG_NOTE on @topic; collects its result and the @nfwd
 * forwards that follow, which come from other actors in any order.
 */
static int32_t
pub_cmd(struct fx *f, tr_pid who, const char *topic, struct fwd *fw, int nfwd)
{
	int32_t r = -1000;
	int nres = 0, nf = 0;

	SEND(f, who, MSG_DO_PUB, topic, strlen(topic));
	for (int i = 0; i < 1 + nfwd; i++) {
		tr_received m;
		memset(&m, 0, sizeof(m));
		if (tr_inbox_recv(f->ib, NULL, FX_REPLY_MS, &m) != TR_OK) {
			CHECK(!"a reply or forward is missing");
			break;
		}
		if (m.type == MSG_RESULT && m.size == sizeof(r) && nres == 0) {
			memcpy(&r, m.data, sizeof(r));
			nres++;
		} else if (m.type == MSG_FWD && m.size == sizeof(*fw) &&
			   nf < nfwd) {
			memcpy(&fw[nf++], m.data, sizeof(*fw));
		} else {
			CHECK(!"unexpected message");
		}
		tr_received_fini(&m);
	}
	return r;
}

static struct report
query(struct fx *f, tr_pid sub)
{
	struct report r;

	memset(&r, 0, sizeof(r));
	SEND(f, sub, MSG_QUERY, NULL, 0);
	CHECK(fx_recv(f, MSG_REPORT, &r, sizeof(r)));
	return r;
}

/* ---- basics -------------------------------------------------------------- */

static void
test_basics(void)
{
	struct fx f;
	struct fwd got[4];

	setup(&f, 2);
	tr_pid s1 = fx_spawn(&f, &fwd_def, NULL);
	tr_pid s2 = fx_spawn(&f, &fwd_def, NULL);

	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "news"), 0);
	CHECK_OK(tr_pubsub_subscribe(g_ps, "news", s1));
	CHECK_OK(tr_pubsub_subscribe(g_ps, "news", s2));
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "news"), 2);

	/* One copy to each, with the given sender, type and bytes. */
	CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "news",
				       MSG_NOTE, "hello", 5),
		     2);
	CHECK(recv_fwds(&f, got, 2));
	CHECK(!tr_pid_eq(got[0].self, got[1].self));
	for (int i = 0; i < 2; i++) {
		CHECK(tr_pid_eq(got[i].self, s1) || tr_pid_eq(got[i].self, s2));
		CHECK(tr_pid_eq(got[i].from, f.probe));
		CHECK_EQ_INT(got[i].type, MSG_NOTE);
		CHECK_EQ_INT(got[i].size, 5);
		CHECK(memcmp(got[i].data, "hello", 5) == 0);
	}
	expect_quiet(&f);

	/* Unsubscribed: s1 gets nothing more. */
	CHECK_OK(tr_pubsub_unsubscribe(g_ps, "news", s1));
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "news"), 1);
	CHECK_EQ_INT(tr_pubsub_publish(tr_runtime_ctx(f.rt), g_ps, "news",
				       MSG_NOTE2, NULL, 0),
		     1);
	CHECK(recv_fwds(&f, got, 1));
	CHECK(tr_pid_eq(got[0].self, s2));
	CHECK(tr_pid_is_none(got[0].from));
	CHECK_EQ_INT(got[0].type, MSG_NOTE2);
	CHECK_EQ_INT(got[0].size, 0);
	expect_quiet(&f);

	/* Subscribing twice changes nothing: still one copy. */
	CHECK_ERR(tr_pubsub_subscribe(g_ps, "news", s2), TR_EEXIST);
	CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "news",
				       MSG_NOTE, "a", 1),
		     1);
	CHECK(recv_fwds(&f, got, 1));
	expect_quiet(&f);

	/* Nobody listens: fine, counted. */
	CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "void",
				       MSG_NOTE, "a", 1),
		     0);
	expect_quiet(&f);

	/* The last one out removes the topic. */
	CHECK_OK(tr_pubsub_unsubscribe(g_ps, "news", s2));
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "news"), 0);
	CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "news",
				       MSG_NOTE, "a", 1),
		     0);
	expect_quiet(&f);

	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.topics, 0);
	CHECK_EQ_U64(st.subscriptions, 0);
	CHECK_EQ_U64(st.subscribed, 2);
	CHECK_EQ_U64(st.unsubscribed, 2);
	CHECK_EQ_U64(st.removed, 0);
	CHECK_EQ_U64(st.published, 5);
	CHECK_EQ_U64(st.unheard, 2);
	CHECK_EQ_U64(st.delivered, 4);
	CHECK_EQ_U64(st.failed, 0);
	check_balance(&st);
	teardown(&f);
}

static void
test_unsubscribe_non_subscriber(void)
{
	struct fx f;
	struct fwd got[2];

	setup(&f, 2);
	tr_pid s1 = fx_spawn(&f, &fwd_def, NULL);
	tr_pid s2 = fx_spawn(&f, &fwd_def, NULL);

	CHECK_OK(tr_pubsub_subscribe(g_ps, "t", s1));
	CHECK_ERR(tr_pubsub_unsubscribe(g_ps, "t", s2), TR_ENOENT);
	CHECK_ERR(tr_pubsub_unsubscribe(g_ps, "unknown", s1), TR_ENOENT);
	CHECK_ERR(tr_pubsub_unsubscribe(g_ps, "unknown", s2), TR_ENOENT);
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "t"), 1);
	CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "t", MSG_NOTE,
				       "z", 1),
		     1);
	CHECK(recv_fwds(&f, got, 1));
	CHECK(tr_pid_eq(got[0].self, s1));
	expect_quiet(&f);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.subscribed, 1);
	CHECK_EQ_U64(st.unsubscribed, 0);
	CHECK_EQ_U64(st.subscriptions, 1);
	check_balance(&st);
	teardown(&f);
}

static void
test_bad_input(void)
{
	struct fx f;
	char longest[TR_PUBSUB_TOPIC_MAX + 1];
	char too_long[TR_PUBSUB_TOPIC_MAX + 2];
	tr_pubsub *none = NULL;

	memset(longest, 'x', TR_PUBSUB_TOPIC_MAX);
	longest[TR_PUBSUB_TOPIC_MAX] = '\0';
	memset(too_long, 'y', TR_PUBSUB_TOPIC_MAX + 1);
	too_long[TR_PUBSUB_TOPIC_MAX + 1] = '\0';

	setup(&f, 1);
	tr_pid s = fx_spawn(&f, &fwd_def, NULL);

	CHECK_ERR(tr_pubsub_create(NULL, &none), TR_EINVAL);
	CHECK_ERR(tr_pubsub_create(f.rt, NULL), TR_EINVAL);
	CHECK(none == NULL);
	tr_pubsub_destroy(NULL);

	CHECK_ERR(tr_pubsub_subscribe(NULL, "t", s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, NULL, s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, "", s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, too_long, s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, "t", TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, "t", tr_self(tr_runtime_ctx(f.rt))),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_unsubscribe(NULL, "t", s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_unsubscribe(g_ps, NULL, s), TR_EINVAL);
	CHECK_ERR(tr_pubsub_unsubscribe(g_ps, "t", TR_PID_NONE), TR_EINVAL);
	CHECK_ERR(
		tr_pubsub_unsubscribe(g_ps, "t", tr_self(tr_runtime_ctx(f.rt))),
		TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(NULL, g_ps, "t", MSG_NOTE, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), NULL, "t", MSG_NOTE,
				    NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, NULL, MSG_NOTE,
				    NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, too_long,
				    MSG_NOTE, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribers(NULL, "t"), TR_EINVAL);
	CHECK_ERR(tr_pubsub_subscribers(g_ps, ""), TR_EINVAL);
	tr_pubsub_stats st;
	memset(&st, 0, sizeof(st));
	CHECK_ERR(tr_pubsub_stats_get(g_ps, &st), TR_EINVAL); /* size 0 */
	CHECK_ERR(tr_pubsub_stats_get(NULL, &st), TR_EINVAL);

	/* The longest topic works; bad messages are refused, with or
	 * without subscribers, and nothing is sent. */
	CHECK_OK(tr_pubsub_subscribe(g_ps, longest, s));
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, longest), 1);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, longest,
				    TR_MSG_DOWN, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, "empty",
				    TR_MSG_DOWN, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps, longest, MSG_NOTE,
				    NULL, 4),
		  TR_EINVAL);
	expect_quiet(&f);
	st = stats(g_ps);
	CHECK_EQ_U64(st.published, 0);
	CHECK_EQ_U64(st.delivered, 0);
	CHECK_EQ_U64(st.subscribed, 1);
	teardown(&f);
}

static void
test_from_actor(void)
{
	struct fx f;
	struct fwd got[2];

	setup(&f, 2);
	tr_pid a = fx_spawn(&f, &fwd_def, NULL);
	tr_pid b = fx_spawn(&f, &fwd_def, NULL);

	CHECK_OK(cmd(&f, a, MSG_DO_SUB, "room"));
	CHECK_EQ_INT(cmd(&f, a, MSG_DO_SUB, "room"), TR_EEXIST);
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "room"), 1);
	/* b publishes: a sees b as the sender. */
	memset(got, 0, sizeof(got));
	CHECK_EQ_INT(pub_cmd(&f, b, "room", got, 1), 1);
	CHECK(tr_pid_eq(got[0].self, a));
	CHECK(tr_pid_eq(got[0].from, b));
	CHECK_EQ_INT(got[0].type, MSG_NOTE);
	/* a publishing to a topic it is on gets its own message. */
	memset(got, 0, sizeof(got));
	CHECK_EQ_INT(pub_cmd(&f, a, "room", got, 1), 1);
	CHECK(tr_pid_eq(got[0].self, a));
	CHECK(tr_pid_eq(got[0].from, a));
	CHECK_EQ_INT(pub_cmd(&f, b, "empty", got, 0), 0);
	expect_quiet(&f);

	/* A service of another runtime is refused by the call that takes
	 * the handler's context. (Subscribing takes a bare pid, which does
	 * not say which runtime it belongs to.) */
	struct fx other;
	tr_pubsub *ops = NULL;
	fx_start(&other, 1);
	CHECK_OK(tr_pubsub_create(other.rt, &ops));
	tr_pubsub *mine = g_ps;
	g_ps = ops;
	CHECK_EQ_INT(pub_cmd(&f, a, "room", got, 0), TR_EINVAL);
	CHECK_EQ_INT(pub_cmd(&f, b, "room", got, 0), TR_EINVAL);
	g_ps = mine;
	tr_pubsub_destroy(ops);
	fx_finish(&other);
	teardown(&f);
}

/* ---- order --------------------------------------------------------------- */

static void
start_publishers(struct fx *f, tr_pid *pubs, int npubs, uint32_t count,
		 uint32_t chunk, const char *topic)
{
	for (int i = 0; i < npubs; i++) {
		struct go g;
		memset(&g, 0, sizeof(g));
		g.idx = (uint32_t)i;
		g.count = count;
		g.chunk = chunk;
		snprintf(g.topic, sizeof(g.topic), "%s", topic);
		SEND(f, pubs[i], MSG_GO, &g, sizeof(g));
	}
}

static void
collect_done(struct fx *f, struct done *d, int npubs)
{
	struct done all[MAX_PUBS];

	memset(all, 0, sizeof(all));
	for (int i = 0; i < npubs; i++) {
		struct done x;
		memset(&x, 0, sizeof(x));
		CHECK(fx_recv(f, MSG_DONE, &x, sizeof(x)));
		CHECK(x.idx < MAX_PUBS);
		if (x.idx < MAX_PUBS) {
			all[x.idx] = x;
		}
	}
	memcpy(d, all, sizeof(all));
}

static void
spawn_group(struct fx *f, tr_pid *pubs, int npubs, tr_pid *subs, int nsubs)
{
	for (int i = 0; i < MAX_SUBS; i++) {
		atomic_store(&g_recv[i], 0);
	}
	for (int i = 0; i < npubs; i++) {
		pubs[i] = fx_spawn(f, &publisher_def, NULL);
		g_pubs[i] = pubs[i];
	}
	for (int i = 0; i < nsubs; i++) {
		subs[i] = fx_spawn(f, &seqsub_def, (void *)(uintptr_t)i);
	}
}

static void
test_order(void)
{
	struct fx f;
	tr_pid pubs[MAX_PUBS], subs[MAX_SUBS];
	struct done d[MAX_PUBS];

	setup(&f, 2);
	spawn_group(&f, pubs, MAX_PUBS, subs, MAX_SUBS);
	for (int i = 0; i < MAX_SUBS; i++) {
		CHECK_OK(tr_pubsub_subscribe(g_ps, "stream", subs[i]));
	}
	start_publishers(&f, pubs, MAX_PUBS, 1000, 25, "stream");
	collect_done(&f, d, MAX_PUBS);
	for (int i = 0; i < MAX_PUBS; i++) {
		CHECK_EQ_U64(d[i].published, 1000);
		CHECK_EQ_U64(d[i].sent, 1000 * MAX_SUBS);
		CHECK_EQ_U64(d[i].errors, 0);
	}
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	for (int i = 0; i < MAX_SUBS; i++) {
		struct report r = query(&f, subs[i]);
		CHECK_EQ_U64(r.count, 4000);
		CHECK_EQ_U64(r.bad, 0);
		for (int p = 0; p < MAX_PUBS; p++) {
			CHECK_EQ_U64(r.last[p], 1000);
		}
	}
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.published, 4000);
	CHECK_EQ_U64(st.delivered, 32000);
	CHECK_EQ_U64(st.failed, 0);
	CHECK_EQ_U64(st.unheard, 0);
	teardown(&f);
}

static uint64_t
recv_of(int i)
{
	return atomic_load_explicit(&g_recv[i], memory_order_relaxed);
}

static void
test_subscribers_die_mid_stream(void)
{
	struct fx f;
	tr_pid pubs[MAX_PUBS], subs[MAX_SUBS];
	struct done d[MAX_PUBS];
	const int half = MAX_SUBS / 2;

	setup(&f, 2);
	spawn_group(&f, pubs, MAX_PUBS, subs, MAX_SUBS);
	for (int i = 0; i < MAX_SUBS; i++) {
		CHECK_OK(tr_pubsub_subscribe(g_ps, "feed", subs[i]));
	}
	/* The monitors are in place before anything happens. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	tr_metrics m0 = fx_metrics(&f);

	/* Publish until halted, in small chunks. */
	start_publishers(&f, pubs, MAX_PUBS, 0, 10, "feed");
	CHECK(WAIT_UNTIL(recv_of(MAX_SUBS - 1) >= 500, IDLE_MS));
	for (int i = half; i < MAX_SUBS; i++) {
		CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), subs[i], TR_EXIT_KILL));
	}
	CHECK(WAIT_UNTIL(tr_pubsub_subscribers(g_ps, "feed") == half, GONE_MS));
	/* Publishing goes on after the removal; survivors keep up. */
	uint64_t mark = recv_of(0);
	CHECK(WAIT_UNTIL(recv_of(0) >= mark + 2000, IDLE_MS));
	for (int i = 0; i < MAX_PUBS; i++) {
		SEND(&f, pubs[i], MSG_HALT, NULL, 0);
	}
	collect_done(&f, d, MAX_PUBS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));

	uint64_t published = 0, sent = 0;
	for (int i = 0; i < MAX_PUBS; i++) {
		CHECK_EQ_U64(d[i].errors, 0);
		CHECK(d[i].published > 0);
		published += d[i].published;
		sent += d[i].sent;
	}
	/* Survivors got every event, each publisher's in order. */
	for (int i = 0; i < half; i++) {
		struct report r = query(&f, subs[i]);
		CHECK_EQ_U64(r.count, published);
		CHECK_EQ_U64(r.bad, 0);
		CHECK_EQ_U64(recv_of(i), published);
		for (int p = 0; p < MAX_PUBS; p++) {
			CHECK_EQ_U64(r.last[p], d[p].published);
		}
	}
	/* The killed ones got a prefix, then nothing. */
	uint64_t received = 0;
	for (int i = 0; i < MAX_SUBS; i++) {
		if (i >= half) {
			CHECK(recv_of(i) < published);
		}
		received += recv_of(i);
	}
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.removed, (uint64_t)(MAX_SUBS - half));
	CHECK_EQ_U64(st.subscriptions, (uint64_t)half);
	CHECK_EQ_U64(st.published, published);
	CHECK_EQ_U64(st.delivered, sent);
	CHECK_EQ_U64(st.failed, 0);
	check_balance(&st);
	/*
	 * Every message sent to a subscriber was handled by it or is a
	 * dead letter; in this window nothing else became a dead letter.
	 * (There may be none: a killed subscriber that drained its mailbox
	 * before its stop and was removed before the next publish.)
	 */
	tr_metrics m1 = fx_metrics(&f);
	CHECK_EQ_U64(sent, received + (m1.dead_letters - m0.dead_letters));
	CHECK_EQ_U64(m1.msgs_sent, m1.msgs_handled + m1.dead_letters);
	fprintf(stderr,
		"  die: %" PRIu64 " published, %" PRIu64 " sent, %" PRIu64
		" received, %" PRIu64 " dead letters\n",
		published, sent, received, m1.dead_letters - m0.dead_letters);
	teardown(&f);
}

/* ---- several topics, stopped subscribers --------------------------------- */

static void
test_several_topics(void)
{
	struct fx f;
	struct fwd got[3];
	static const char *const topics[3] = { "a", "b", "c" };

	setup(&f, 2);
	tr_pid s = fx_spawn(&f, &fwd_def, NULL);
	tr_pid other = fx_spawn(&f, &fwd_def, NULL);

	for (int i = 0; i < 3; i++) {
		CHECK_OK(tr_pubsub_subscribe(g_ps, topics[i], s));
	}
	CHECK_OK(tr_pubsub_subscribe(g_ps, "b", other));
	for (int i = 0; i < 3; i++) {
		char c = (char)('a' + i);
		CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps,
					       topics[i], MSG_NOTE, &c, 1),
			     i == 1 ? 2 : 1);
	}
	/* s's forwards arrive in publish order; other's may come anywhere. */
	struct fwd all[4];
	CHECK(recv_fwds(&f, all, 4));
	int k = 0;
	for (int i = 0; i < 4; i++) {
		if (tr_pid_eq(all[i].self, s) && k < 3) {
			got[k++] = all[i];
		}
	}
	CHECK_EQ_INT(k, 3);
	for (int i = 0; i < k; i++) {
		CHECK_EQ_INT(got[i].data[0], 'a' + i);
	}

	CHECK_OK(tr_pubsub_unsubscribe(g_ps, "b", s));
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(tr_pubsub_publish(tr_inbox_ctx(f.ib), g_ps,
					       topics[i], MSG_NOTE2, "q", 1),
			     1);
	}
	CHECK(recv_fwds(&f, all, 3));
	int from_s = 0, from_other = 0;
	for (int i = 0; i < 3; i++) {
		from_s += tr_pid_eq(all[i].self, s);
		from_other += tr_pid_eq(all[i].self, other);
	}
	CHECK_EQ_INT(from_s, 2);
	CHECK_EQ_INT(from_other, 1);
	expect_quiet(&f);

	/* s stops: it leaves a and c; b keeps other. */
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s, TR_EXIT_ERROR));
	CHECK(WAIT_UNTIL(tr_pubsub_subscribers(g_ps, "a") == 0 &&
				 tr_pubsub_subscribers(g_ps, "c") == 0,
			 GONE_MS));
	CHECK_EQ_INT(tr_pubsub_subscribers(g_ps, "b"), 1);
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.removed, 2);
	CHECK_EQ_U64(st.topics, 1);
	CHECK_EQ_U64(st.subscriptions, 1);
	check_balance(&st);
	teardown(&f);
}

static void
test_stopped_pid_is_removed(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid s = fx_spawn(&f, &fwd_def, NULL);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s, TR_EXIT_NORMAL));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS)); /* s has stopped */

	CHECK_OK(tr_pubsub_subscribe(g_ps, "x", s));
	CHECK_OK(tr_pubsub_subscribe(g_ps, "y", s));
	CHECK(WAIT_UNTIL(tr_pubsub_subscribers(g_ps, "x") == 0 &&
				 tr_pubsub_subscribers(g_ps, "y") == 0,
			 GONE_MS));
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.removed, 2);
	CHECK_EQ_U64(st.topics, 0);
	check_balance(&st);

	/* Unsubscribe then stop: nothing is removed twice. */
	tr_pid t = fx_spawn(&f, &fwd_def, NULL);
	CHECK_OK(tr_pubsub_subscribe(g_ps, "z", t));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	CHECK_OK(tr_pubsub_unsubscribe(g_ps, "z", t));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), t, TR_EXIT_ERROR));
	CHECK_OK(tr_runtime_wait_idle(f.rt, IDLE_MS));
	st = stats(g_ps);
	CHECK_EQ_U64(st.removed, 2);
	CHECK_EQ_U64(st.unsubscribed, 1);
	CHECK_EQ_U64(st.subscriptions, 0);
	check_balance(&st);
	teardown(&f);
}

/* ---- destroy ------------------------------------------------------------- */

static void
test_destroy_with_subscriptions(void)
{
	struct fx f;
	char topic[32];

	setup(&f, 2);
	for (int i = 0; i < 20; i++) {
		tr_pid s = fx_spawn(&f, &fwd_def, NULL);
		for (int j = 0; j < 30; j++) {
			snprintf(topic, sizeof(topic), "topic.%d", j);
			CHECK_OK(tr_pubsub_subscribe(g_ps, topic, s));
		}
		if (i % 4 == 0) {
			CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s,
					 TR_EXIT_NORMAL));
		}
	}
	tr_pubsub_stats st = stats(g_ps);
	CHECK_EQ_U64(st.subscribed, 600);
	check_balance(&st);
	CHECK(tr_pubsub_publish(tr_runtime_ctx(f.rt), g_ps, "topic.7",
				MSG_NOTE2, NULL, 0) >= 15);
	tr_pubsub_destroy(g_ps);
	g_ps = NULL;
	/* The subscribers' forwards of that publish still reach the probe. */
	fx_finish(&f);
}

static void
test_destroy_after_join(void)
{
	struct fx f;

	setup(&f, 2);
	tr_pid s = fx_spawn(&f, &fwd_def, NULL);
	CHECK_OK(tr_pubsub_subscribe(g_ps, "t", s));
	tr_inbox_destroy(f.ib);
	tr_runtime_stop(f.rt);
	CHECK_OK(tr_runtime_join(f.rt));
	check_final_metrics(f.rt);
	CHECK_ERR(tr_pubsub_subscribe(g_ps, "u", s), TR_ECLOSED);
	tr_pubsub_destroy(g_ps);
	g_ps = NULL;
	tr_runtime_destroy(f.rt);
}

static const struct test_case tests[] = {
	{ "pubsub: subscribe, publish, unsubscribe", test_basics },
	{ "pubsub: unsubscribing a non-subscriber is harmless",
	  test_unsubscribe_non_subscriber },
	{ "pubsub: bad input is refused", test_bad_input },
	{ "pubsub: subscribe and publish from inside actors", test_from_actor },
	{ "pubsub: 4 publishers x 1000 to 8 subscribers, in order",
	  test_order },
	{ "pubsub: half the subscribers die mid-stream",
	  test_subscribers_die_mid_stream },
	{ "pubsub: a subscriber on several topics", test_several_topics },
	{ "pubsub: a stopped pid is removed", test_stopped_pid_is_removed },
	{ "pubsub: destroy with live subscriptions",
	  test_destroy_with_subscriptions },
	{ "pubsub: destroy after the runtime joined", test_destroy_after_join },
	{ NULL, NULL },
};

TEST_MAIN(tests)
