/*
 * Requests: tr_request / tr_reply / tr_forward, and the inbox context.
 * Every request must have exactly one outcome at its requester: the reply,
 * or TR_MSG_REQUEST_FAILED with TR_EXIT_NOPROC, the target's exit reason,
 * or TR_EXIT_TIMEOUT. A late reply is a counted dead letter. No test here
 * depends on timing: timeouts are short where a timeout is the point, and
 * everything else waits for an event with FX_REPLY_MS as the failure.
 *
 * Some scenarios come from the tests of the former ask module (a proxy
 * actor per request), which core requests replaced: a reply sent just
 * before the target stops, replies racing the timeout, a requester that
 * stops with requests open, a bounded requester, a bounded target that
 * refuses, pointer payloads freed exactly once, blocking requests from
 * threads, and bad input.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

#include "harness.h"
#include "fixture.h"
#include "runtime/clock.h"
#include "runtime/request.h"

enum {
	ECHO = 1,   /* int: reply with n + 1 */
	HOLD,       /* keep the request, answer on RELEASE */
	RELEASE,    /* answer the held request with 99 */
	DIE,        /* int32 reason: stop holding the request */
	START,      /* struct start, to a client */
	REPORT,     /* struct report, client -> probe */
	PLAIN_ECHO, /* int: tr_reply to a plain send */
	ANSWER,
	REPLY_DIE,  /* int: reply with n + 1, then stop in the same turn */
	DELAYED,    /* int: reply after a delay computed from n, by timer */
	LATER,      /* struct later: the server's own timer for DELAYED */
	PTR_ECHO,   /* int: reply n + 1 as a counted pointer (tr_reply_ptr) */
	GATE_WAIT,  /* stay in the turn until gate_open */
	NOSENDER,   /* tr_pid: tr_reply to it, report the error there */
	ERR_REPORT, /* int32_t: the error NOSENDER got */
};

/* Requests a server may hold at once (HOLD). */
#define MAX_HELD 128

/* What the servers did, read by the tests while they run. */
static _Atomic unsigned held_total;     /* HOLD requests taken */
static _Atomic unsigned answered_total; /* ECHO requests answered */
static _Atomic unsigned late_sent;      /* DELAYED requests answered */
static _Atomic bool gate_open, gate_entered;

/* ---- counted pointer payloads: each must be freed exactly once ---- */

static _Atomic unsigned ptr_allocs, ptr_frees;

static int *
counted_int(int v)
{
	int *p = malloc(sizeof(*p));

	CHECK(p != NULL);
	if (p != NULL) {
		*p = v;
		atomic_fetch_add_explicit(&ptr_allocs, 1, memory_order_relaxed);
	}
	return p;
}

static void
counted_free(void *p)
{
	atomic_fetch_add_explicit(&ptr_frees, 1, memory_order_relaxed);
	free(p);
}

static void
counters_reset(void)
{
	atomic_store(&held_total, 0);
	atomic_store(&answered_total, 0);
	atomic_store(&late_sent, 0);
	atomic_store(&gate_open, false);
	atomic_store(&gate_entered, false);
	atomic_store(&ptr_allocs, 0);
	atomic_store(&ptr_frees, 0);
}

/* DELAYED: 10 to 30 ms, scrambled over n, around a 20 ms timeout. */
static uint64_t
delay_of(int n)
{
	return 10u + ((unsigned)n * 7919u) % 21u;
}

/* ---- server ---- */

struct server {
	tr_msg held[MAX_HELD]; /* headers of held requests (from, ref, flags) */
	unsigned nheld;
	unsigned n; /* requests seen, for the stress's holds */
	unsigned hold_every;
};

/* LATER: a DELAYED request's header, kept in the timer's message. */
struct later {
	tr_msg req;
	int n;
};

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct server *s = state;
	const int *n = TR_MSG_AS(m, int);

	switch (m->type) {
	case ECHO:
	case PLAIN_ECHO:
		if (n != NULL) {
			int v = *n + 1;
			s->n++;
			if (s->hold_every != 0 && s->n % s->hold_every == 0) {
				break; /* never answered: its timeout answers */
			}
			CHECK_OK(tr_reply(cx, m, ANSWER, &v, sizeof(v)));
			if (m->type == ECHO) {
				atomic_fetch_add_explicit(&answered_total, 1,
							  memory_order_relaxed);
			}
		}
		break;
	case HOLD:
		CHECK(s->nheld < MAX_HELD);
		if (s->nheld < MAX_HELD) {
			tr_msg *h = &s->held[s->nheld++];
			*h = *m;
			h->data = NULL; /* the payload is the runtime's */
			h->size = 0;
		}
		atomic_fetch_add_explicit(&held_total, 1, memory_order_relaxed);
		break;
	case RELEASE: {
		/* Answer every held request with 99; payload int 1: as a
		 * counted pointer. */
		const int *as_ptr = TR_MSG_AS(m, int);
		for (unsigned i = 0; i < s->nheld; i++) {
			int v = 99;
			if (as_ptr != NULL && *as_ptr == 1) {
				CHECK_OK(tr_reply_ptr(cx, &s->held[i], ANSWER,
						      counted_int(v), sizeof(v),
						      counted_free));
			} else {
				CHECK_OK(tr_reply(cx, &s->held[i], ANSWER, &v,
						  sizeof(v)));
			}
		}
		s->nheld = 0;
		break;
	}
	case REPLY_DIE:
		if (n != NULL) {
			int v = *n + 1;
			CHECK_OK(tr_reply(cx, m, ANSWER, &v, sizeof(v)));
			tr_stop_self(cx, TR_EXIT_USER + 3);
		}
		break;
	case DELAYED:
		if (n != NULL) {
			struct later l = { .req = *m, .n = *n };
			l.req.data = NULL;
			l.req.size = 0;
			CHECK_OK(tr_send_after(cx, tr_self(cx), LATER, &l,
					       sizeof(l), delay_of(*n), NULL));
		}
		break;
	case LATER: {
		const struct later *l = TR_MSG_AS(m, struct later);
		if (l != NULL) {
			/* A dead letter if the request timed out: still OK. */
			CHECK_OK(tr_reply(cx, &l->req, ANSWER, &l->n,
					  sizeof(l->n)));
			atomic_fetch_add_explicit(&late_sent, 1,
						  memory_order_relaxed);
		}
		break;
	}
	case PTR_ECHO:
		if (n != NULL) {
			CHECK_OK(tr_reply_ptr(cx, m, ANSWER,
					      counted_int(*n + 1), sizeof(int),
					      counted_free));
		}
		break;
	case GATE_WAIT:
		/* Keeps the turn, so that the mailbox fills up behind it. */
		atomic_store(&gate_entered, true);
		CHECK(WAIT_UNTIL(atomic_load(&gate_open), FX_REPLY_MS));
		break;
	case NOSENDER: {
		const tr_pid *probe = TR_MSG_AS(m, tr_pid);
		if (probe != NULL) {
			int32_t err = tr_reply(cx, m, ANSWER, NULL, 0);
			CHECK_OK(tr_send(cx, *probe, ERR_REPORT, &err,
					 sizeof(err)));
		}
		break;
	}
	case DIE: {
		const int32_t *why = TR_MSG_AS(m, int32_t);
		tr_stop_self(cx, why != NULL ? *why : TR_EXIT_ERROR);
		break;
	}
	default:
		break;
	}
}

static int
server_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	((struct server *)state)->hold_every =
		arg != NULL ? *(unsigned *)arg : 0;
	return 0;
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "server",
	.state_size = sizeof(struct server),
	.init = server_init,
	.handle = server_handle,
};

/* A server whose mailbox holds two messages: more are refused. */
static const tr_actor_def gate_def = {
	.size = sizeof(tr_actor_def),
	.name = "gate",
	.state_size = sizeof(struct server),
	.init = server_init,
	.handle = server_handle,
	.mailbox_bound = 2,
};

/* ---- router: forwards every request, optionally stops after ---- */

struct router_arg {
	tr_pid to;
	bool stop_after;
};

static int
router_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	memcpy(state, arg, sizeof(struct router_arg));
	return 0;
}

static void
router_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct router_arg *r = state;

	CHECK_OK(tr_forward(cx, r->to, m));
	if (r->stop_after) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def router_def = {
	.size = sizeof(tr_actor_def),
	.name = "router",
	.state_size = sizeof(struct router_arg),
	.init = router_init,
	.handle = router_handle,
};

/* ---- client: makes requests, reports every outcome ---- */

struct start {
	tr_pid to;
	tr_pid report_to;
	uint32_t type;
	int value;
	uint64_t timeout_ms;
	unsigned count;     /* requests to make at once (stress) */
	bool stop_after;    /* stop right after making the requests */
	bool wait_answered; /* stay in the turn until ECHO answered them all */
};

struct report {
	uint32_t type;    /* ANSWER or TR_MSG_REQUEST_FAILED */
	bool ref_matches; /* m->ref is one of ours, seen the first time */
	bool flagged;     /* TR_MSG_F_REPLY set */
	int value;        /* ANSWER's value */
	int32_t reason;   /* the failure's reason */
	tr_pid from;
	unsigned outcomes; /* stress: outcomes so far */
	unsigned dups;     /* stress: outcomes for a closed or foreign ref */
	unsigned answers;  /* of the outcomes: ANSWER */
	unsigned timeouts; /* of the outcomes: TR_EXIT_TIMEOUT */
	unsigned others;   /* of the outcomes: anything else */
};

struct client {
	struct start st;
	uint64_t *refs; /* open references */
	unsigned nrefs;
	unsigned outcomes, dups;
	unsigned answers, timeouts, others;
};

static void
client_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct client *c = state;
	(void)cx;
	(void)reason;
	free(c->refs);
}

static void
client_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct client *c = state;

	if (m->type == START) {
		const struct start *st = TR_MSG_AS(m, struct start);
		CHECK(st != NULL);
		c->st = *st;
		unsigned k = st->count == 0 ? 1 : st->count;
		c->refs = calloc(k, sizeof(*c->refs));
		CHECK(c->refs != NULL);
		for (unsigned i = 0; i < k; i++) {
			tr_ref ref = { 0 };
			int v = st->value + (int)i;
			CHECK_OK(tr_request(cx, st->to, st->type, &v, sizeof(v),
					    st->timeout_ms, &ref));
			CHECK(ref.v != 0);
			c->refs[c->nrefs++] = ref.v;
		}
		if (st->wait_answered) {
			/* Every reply is queued behind this turn before it
			 * ends, whatever the mailbox bound. */
			CHECK(WAIT_UNTIL(atomic_load(&answered_total) >= k,
					 FX_REPLY_MS));
		}
		if (st->stop_after) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
		}
		return;
	}
	struct report r = { .type = m->type, .from = m->from };
	r.flagged = (m->flags & TR_MSG_F_REPLY) != 0;
	for (unsigned i = 0; i < c->nrefs; i++) {
		if (c->refs[i] == m->ref.v && m->ref.v != 0) {
			r.ref_matches = true;
			c->refs[i] = 0; /* closed: a second outcome is a dup */
			break;
		}
	}
	if (!r.ref_matches) {
		c->dups++;
	}
	c->outcomes++;
	if (m->type == ANSWER) {
		const int *v = TR_MSG_AS(m, int);
		r.value = v != NULL ? *v : -1;
		c->answers++;
	} else if (m->type == TR_MSG_REQUEST_FAILED) {
		const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);
		CHECK(f != NULL);
		if (f != NULL) {
			r.reason = f->reason;
			CHECK_EQ_U64(f->ref.v, m->ref.v);
		}
		if (r.reason == TR_EXIT_TIMEOUT) {
			c->timeouts++;
		} else {
			c->others++;
		}
	} else {
		c->others++;
	}
	r.outcomes = c->outcomes;
	r.dups = c->dups;
	r.answers = c->answers;
	r.timeouts = c->timeouts;
	r.others = c->others;
	if (c->st.count <= 1 || c->outcomes == c->st.count) {
		CHECK_OK(tr_send(cx, c->st.report_to, REPORT, &r, sizeof(r)));
	}
}

static const tr_actor_def client_def = {
	.size = sizeof(tr_actor_def),
	.name = "client",
	.state_size = sizeof(struct client),
	.teardown = client_teardown,
	.handle = client_handle,
};

/* A client whose mailbox holds two messages: replies must still come. */
static const tr_actor_def tight_client_def = {
	.size = sizeof(tr_actor_def),
	.name = "tight-client",
	.state_size = sizeof(struct client),
	.teardown = client_teardown,
	.handle = client_handle,
	.mailbox_bound = 2,
};

static tr_pid
start_client(struct fx *f, tr_pid to, uint32_t type, int value,
	     uint64_t timeout_ms)
{
	tr_pid c = fx_spawn(f, &client_def, NULL);
	struct start st = { .to = to,
			    .report_to = f->probe,
			    .type = type,
			    .value = value,
			    .timeout_ms = timeout_ms };
	SEND(f, c, START, &st, sizeof(st));
	return c;
}

static struct report
recv_report(struct fx *f)
{
	struct report r;

	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(f, REPORT, &r, sizeof(r)));
	return r;
}

/* ---- tests ---- */

static void
test_reply(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, ECHO, 41, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 42);
	CHECK(r.ref_matches);
	CHECK(r.flagged);
	CHECK_EQ_U64(r.from.v, s.v);
	fx_finish(&f);
}

static void
test_noproc(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	int32_t why = TR_EXIT_NORMAL;
	SEND(&f, s, DIE, &why, sizeof(why));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	start_client(&f, s, ECHO, 1, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_NOPROC);
	CHECK(r.ref_matches);
	CHECK(r.flagged);
	fx_finish(&f);
}

static void
test_target_stops_holding(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, HOLD, 0, 0);
	/* The request is held once the server has handled it. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	int32_t why = TR_EXIT_USER + 44;
	SEND(&f, s, DIE, &why, sizeof(why));
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_USER + 44);
	CHECK(r.ref_matches);
	fx_finish(&f);
}

static void
test_timeout_then_late_reply(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, HOLD, 0, 20);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_TIMEOUT);
	CHECK(r.ref_matches);

	/* The server answers after all: a counted dead letter, nothing
	 * reaches the client (which would report it). */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	uint64_t dead = fx_metrics(&f).dead_letters;
	SEND(&f, s, RELEASE, NULL, 0);
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters > dead, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));

	/* The timeout cancelled the server's watch: its stop now fails
	 * nothing (a second outcome would be reported). */
	start_client(&f, s, HOLD, 0, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	int32_t why = TR_EXIT_USER;
	SEND(&f, s, DIE, &why, sizeof(why));
	r = recv_report(&f); /* the second client's request only */
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_USER);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

static void
test_forward(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	struct router_arg ra = { .to = s, .stop_after = false };
	tr_pid rt = fx_spawn(&f, &router_def, &ra);
	start_client(&f, rt, ECHO, 9, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 10);
	CHECK(r.ref_matches);
	CHECK_EQ_U64(r.from.v, s.v); /* answered by the server itself */

	/* A router that stops after forwarding does not fail the request:
	 * the watch moved to the server with it. */
	struct router_arg rb = { .to = s, .stop_after = true };
	tr_pid r2 = fx_spawn(&f, &router_def, &rb);
	start_client(&f, r2, HOLD, 0, 0);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, r2), FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	SEND(&f, s, RELEASE, NULL, 0);
	r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 99);
	CHECK(r.ref_matches);

	/* Forwarded to nobody: the request fails with noproc. */
	int32_t why = TR_EXIT_NORMAL;
	SEND(&f, s, DIE, &why, sizeof(why));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	start_client(&f, rt, ECHO, 1, 0);
	r = recv_report(&f);
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	CHECK_EQ_INT(r.reason, TR_EXIT_NOPROC);
	fx_finish(&f);
}

static void
test_inbox_context(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	CHECK(cx != NULL);
	CHECK_EQ_U64(tr_self(cx).v, f.probe.v);
	tr_pid s = fx_spawn(&f, &server_def, NULL);

	/* A plain send, answered by tr_reply with a plain message, queued
	 * ahead of the request's reply. */
	int v = 1;
	CHECK_OK(tr_send(cx, s, PLAIN_ECHO, &v, sizeof(v)));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_ref ref = { 0 };
	v = 10;
	CHECK_OK(tr_request(cx, s, ECHO, &v, sizeof(v), 0, &ref));
	tr_received r;
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_U64(r.ref.v, ref.v);
	CHECK(r.flags & TR_MSG_F_REPLY);
	const int *got = TR_MSG_AS(&r, int);
	CHECK(got != NULL && *got == 11);
	CHECK(TR_MSG_AS(&r, int64_t) == NULL); /* size-checked */
	tr_received_fini(&r);
	/* The plain answer is still there, in order. */
	CHECK_OK(tr_inbox_recv(f.ib, NULL, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_U64(r.ref.v, 0);
	got = TR_MSG_AS(&r, int);
	CHECK(got != NULL && *got == 2);
	tr_received_fini(&r);

	/* A request's own timeout, seen by the receive. */
	CHECK_OK(tr_request(cx, s, HOLD, NULL, 0, 20, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(fl != NULL && fl->reason == TR_EXIT_TIMEOUT &&
	      fl->ref.v == ref.v && fl->to.v == s.v);
	tr_received_fini(&r);

	/* The late answer is a dead letter, not a message. */
	uint64_t dead = fx_metrics(&f).dead_letters;
	CHECK_OK(tr_send(cx, s, RELEASE, NULL, 0));
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters > dead, FX_REPLY_MS));
	CHECK_ERR(tr_inbox_recv(f.ib, NULL, 0, &r), TR_ETIMEDOUT);

	/* Unknown target: noproc. Actor-only calls are refused. */
	int32_t why = TR_EXIT_NORMAL;
	CHECK_OK(tr_send(cx, s, DIE, &why, sizeof(why)));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	CHECK_OK(tr_request(cx, s, ECHO, &v, sizeof(v), 0, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOPROC);
	tr_received_fini(&r);
	tr_ref mref;
	CHECK_ERR(tr_monitor(cx, s, &mref), TR_EINVAL);
	CHECK_ERR(tr_link(cx, s), TR_EINVAL);
	fx_finish(&f);
}

/*
 * Many requesters, many requests open at once, servers that leave some
 * requests unanswered (their timeouts answer) and stop while requests are
 * queued or held: each request has exactly one outcome, and every message
 * is handled or a dead letter.
 */
static void
test_stress_one_outcome(void)
{
	enum { SERVERS = 4, CLIENTS = 40, EACH = 300 };
	struct fx f;
	fx_start(&f, 2);
	tr_pid servers[SERVERS];
	/* A spawn argument is read by init, later: it must outlive it. */
	static unsigned hold_every[SERVERS];
	for (unsigned i = 0; i < SERVERS; i++) {
		hold_every[i] = 7 + i;
		servers[i] = fx_spawn(&f, &server_def, &hold_every[i]);
	}
	for (unsigned i = 0; i < CLIENTS; i++) {
		tr_pid c = fx_spawn(&f, &client_def, NULL);
		struct start st = { .to = servers[i % SERVERS],
				    .report_to = f.probe,
				    .type = ECHO,
				    .timeout_ms = 50,
				    .count = EACH };
		SEND(&f, c, START, &st, sizeof(st));
	}
	/* Stop two servers while their queues are full of requests. */
	int32_t why = TR_EXIT_USER + 1;
	SEND(&f, servers[0], DIE, &why, sizeof(why));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), servers[1], TR_EXIT_USER + 2));
	unsigned done = 0;
	for (unsigned i = 0; i < CLIENTS; i++) {
		struct report r = recv_report(&f);
		CHECK_EQ_U64(r.outcomes, EACH);
		CHECK_EQ_U64(r.dups, 0);
		done++;
	}
	CHECK_EQ_U64(done, CLIENTS);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * A reply sent just before the target stops wins over its stop: the
 * requester gets the reply, and nothing after it.
 */
static void
test_reply_then_stop(void)
{
	struct fx f;
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	start_client(&f, s, REPLY_DIE, 4, 0);
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.type, ANSWER);
	CHECK_EQ_INT(r.value, 5);
	CHECK(r.ref_matches);
	CHECK_EQ_U64(r.from.v, s.v);
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, s), FX_REPLY_MS));
	/* A second outcome (the stop as a failure) would be reported. */
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * Replies delayed by 10 to 30 ms against a 20 ms timeout: each request
 * has exactly one outcome, the reply or the timeout, whichever the
 * requester saw first; how many of each depends on the machine's load,
 * so the split is printed, not checked. Every reply that lost is a
 * counted dead letter, and nothing else is.
 */
static void
test_replies_around_the_timeout(void)
{
	enum { N = 200 };
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	tr_pid c = fx_spawn(&f, &client_def, NULL);
	uint64_t dead0 = fx_metrics(&f).dead_letters;
	struct start st = { .to = s,
			    .report_to = f.probe,
			    .type = DELAYED,
			    .timeout_ms = 20,
			    .count = N };
	SEND(&f, c, START, &st, sizeof(st));
	struct report r = recv_report(&f);
	printf("  %u requests: %u replies in time, %u timeouts\n", N, r.answers,
	       r.timeouts);
	CHECK_EQ_U64(r.outcomes, N);
	CHECK_EQ_U64(r.dups, 0);
	CHECK_EQ_U64(r.answers + r.timeouts, N);
	CHECK_EQ_U64(r.others, 0);
	/* Every reply has been sent; then nothing more reaches the client
	 * (which would report it as a dup). */
	CHECK(WAIT_UNTIL(atomic_load(&late_sent) == N, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	CHECK_EQ_U64(fx_metrics(&f).dead_letters - dead0, r.timeouts);
	fx_finish(&f);
}

/*
 * A requester that stops with requests open, with and without a
 * timeout: no outcome goes anywhere, and the target's answers to it are
 * counted dead letters.
 */
static void
test_requester_stops(void)
{
	enum { EACH = 40 };
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	uint64_t timeouts[2] = { 0, 600000 };
	for (unsigned i = 0; i < 2; i++) {
		tr_pid c = fx_spawn(&f, &client_def, NULL);
		struct start st = { .to = s,
				    .report_to = f.probe,
				    .type = HOLD,
				    .timeout_ms = timeouts[i],
				    .count = EACH,
				    .stop_after = true };
		SEND(&f, c, START, &st, sizeof(st));
	}
	CHECK(WAIT_UNTIL(atomic_load(&held_total) == 2 * EACH, FX_REPLY_MS));
	/* The clients are gone; the probe and the server stay. */
	CHECK(WAIT_UNTIL(fx_metrics(&f).actors_alive == 2, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	uint64_t dead0 = fx_metrics(&f).dead_letters;
	SEND(&f, s, RELEASE, NULL, 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK_EQ_U64(fx_metrics(&f).dead_letters - dead0, 2 * EACH);
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * A requester with a bounded mailbox (2) gets all of its 20 replies,
 * although they are all queued at once: a reply is not held to the
 * requester's bound, so none is refused.
 */
static void
test_bounded_requester(void)
{
	enum { N = 20 };
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	tr_pid c = fx_spawn(&f, &tight_client_def, NULL);
	uint64_t full0 = fx_metrics(&f).mailbox_full;
	struct start st = { .to = s,
			    .report_to = f.probe,
			    .type = ECHO,
			    .count = N,
			    .wait_answered = true };
	SEND(&f, c, START, &st, sizeof(st));
	struct report r = recv_report(&f);
	CHECK_EQ_U64(r.outcomes, N);
	CHECK_EQ_U64(r.answers, N);
	CHECK_EQ_U64(r.dups, 0);
	CHECK_EQ_U64(fx_metrics(&f).mailbox_full, full0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * A target whose bounded mailbox is full refuses a request with
 * TR_EFULL: the reference is not written, a pointer payload is freed at
 * once, and no outcome follows, not even when its timeout would have
 * passed.
 */
static void
test_bounded_target_refuses(void)
{
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_pid g = fx_spawn(&f, &gate_def, NULL);
	CHECK_OK(tr_send(cx, g, GATE_WAIT, NULL, 0));
	CHECK(WAIT_UNTIL(atomic_load(&gate_entered), FX_REPLY_MS));

	/* Fill the mailbox behind the turn that waits. */
	uint64_t full0 = fx_metrics(&f).mailbox_full;
	unsigned queued = 0;
	int v = 5;
	tr_err err;
	while ((err = tr_send(cx, g, PLAIN_ECHO, &v, sizeof(v))) == TR_OK &&
	       queued < 100) {
		queued++;
	}
	CHECK_ERR(err, TR_EFULL);
	CHECK(queued >= 1);

	tr_ref ref = { 77 };
	CHECK_ERR(tr_request(cx, g, ECHO, &v, sizeof(v), 0, &ref), TR_EFULL);
	CHECK_ERR(tr_request(cx, g, ECHO, &v, sizeof(v), 20, &ref), TR_EFULL);
	CHECK_ERR(tr_request_ptr(cx, g, ECHO, counted_int(6), sizeof(int),
				 counted_free, 20, &ref),
		  TR_EFULL);
	CHECK_EQ_U64(ref.v, 77);
	CHECK_EQ_U64(atomic_load(&ptr_frees), 1);
	CHECK(fx_metrics(&f).mailbox_full >= full0 + 4);

	/* The queued plain sends are answered, with plain messages. */
	atomic_store(&gate_open, true);
	for (unsigned i = 0; i < queued; i++) {
		tr_received r;
		CHECK_OK(tr_inbox_recv(f.ib, NULL, FX_REPLY_MS, &r));
		const int *got = TR_MSG_AS(&r, int);
		CHECK(r.type == ANSWER && r.ref.v == 0 &&
		      !(r.flags & TR_MSG_F_REPLY) && got != NULL && *got == 6);
		tr_received_fini(&r);
	}

	/* A later request with the same timeout times out: the refused
	 * ones' deadlines have passed too, and they produced nothing. */
	CHECK_OK(tr_request(cx, g, HOLD, NULL, 0, 20, &ref));
	tr_received r;
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_TIMEOUT);
	tr_received_fini(&r);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));

	/* The held request's late answer is a dead letter. */
	uint64_t dead = fx_metrics(&f).dead_letters;
	CHECK_OK(tr_send(cx, g, RELEASE, NULL, 0));
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters > dead, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * Pointer payloads of requests and replies are freed exactly once
 * whatever becomes of them: taken by a thread (tr_received_fini), handled
 * by an actor (the runtime), a late reply (a dead letter), a request to
 * a stopped actor, or a call refused for bad arguments.
 */
static void
test_pointer_payloads(void)
{
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	tr_received r;
	tr_ref ref;

	/* A pointer reply taken by a thread: its to free, once. */
	int v = 1;
	CHECK_OK(tr_request(cx, s, PTR_ECHO, &v, sizeof(v), 0, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const int *got = TR_MSG_AS(&r, int);
	CHECK(r.type == ANSWER && r.ref.v == ref.v && got != NULL && *got == 2);
	CHECK_EQ_U64(atomic_load(&ptr_frees), 0);
	tr_received_fini(&r);
	CHECK_EQ_U64(atomic_load(&ptr_frees), 1);
	tr_received_fini(&r); /* zeroed by the first: a no-op */
	CHECK_EQ_U64(atomic_load(&ptr_frees), 1);

	/* A pointer reply handled by an actor: the runtime frees it. */
	start_client(&f, s, PTR_ECHO, 10, 0);
	struct report rep = recv_report(&f);
	CHECK_EQ_U64(rep.type, ANSWER);
	CHECK_EQ_INT(rep.value, 11);
	CHECK(WAIT_UNTIL(atomic_load(&ptr_frees) == 2, FX_REPLY_MS));

	/* A late pointer reply: a dead letter, freed. */
	CHECK_OK(tr_request(cx, s, HOLD, NULL, 0, 20, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	CHECK_EQ_U64(r.type, TR_MSG_REQUEST_FAILED);
	tr_received_fini(&r);
	int as_ptr = 1;
	CHECK_OK(tr_send(cx, s, RELEASE, &as_ptr, sizeof(as_ptr)));
	CHECK(WAIT_UNTIL(atomic_load(&ptr_frees) == 3, FX_REPLY_MS));

	/* A pointer request: freed after the target's handler. */
	CHECK_OK(tr_request_ptr(cx, s, ECHO, counted_int(20), sizeof(int),
				counted_free, 0, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	got = TR_MSG_AS(&r, int);
	CHECK(r.type == ANSWER && got != NULL && *got == 21);
	tr_received_fini(&r);
	CHECK(WAIT_UNTIL(atomic_load(&ptr_frees) == 4, FX_REPLY_MS));

	/* A pointer request to a stopped actor: noproc, and freed. */
	tr_pid gone = fx_spawn(&f, &server_def, NULL);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), gone, TR_EXIT_NORMAL));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, gone), FX_REPLY_MS));
	CHECK_OK(tr_request_ptr(cx, gone, ECHO, counted_int(30), sizeof(int),
				counted_free, 0, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOPROC);
	tr_received_fini(&r);
	CHECK(WAIT_UNTIL(atomic_load(&ptr_frees) == 5, FX_REPLY_MS));

	/* Refused for bad arguments: freed at once. */
	tr_msg nobody = { .type = ECHO };
	tr_msg someone = { .type = ECHO, .from = s };
	CHECK_ERR(tr_request_ptr(cx, s, TR_MSG_SYSTEM_BASE, counted_int(0),
				 sizeof(int), counted_free, 0, &ref),
		  TR_EINVAL);
	CHECK_ERR(tr_reply_ptr(cx, &nobody, ANSWER, counted_int(0), sizeof(int),
			       counted_free),
		  TR_EINVAL);
	CHECK_ERR(tr_reply_ptr(cx, &someone, TR_MSG_SYSTEM_BASE, counted_int(0),
			       sizeof(int), counted_free),
		  TR_EINVAL);
	CHECK_ERR(tr_reply_ptr(cx, NULL, ANSWER, counted_int(0), sizeof(int),
			       counted_free),
		  TR_EINVAL);
	CHECK_EQ_U64(atomic_load(&ptr_frees), 9);

	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
	CHECK_EQ_U64(atomic_load(&ptr_allocs), 9);
	CHECK_EQ_U64(atomic_load(&ptr_frees), atomic_load(&ptr_allocs));
}

/*
 * A blocking request from a thread (tr_request on the inbox's context,
 * then tr_inbox_recv with its reference) whose target dies: held without a
 * timeout, it fails with the target's reason; held with a long timeout, the
 * same, at once; still queued behind the message that stops the target, noproc.
 */
static void
test_thread_target_dies(void)
{
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_received r;
	tr_ref ref;
	const tr_request_failed *fl;

	tr_pid s1 = fx_spawn(&f, &server_def, NULL);
	CHECK_OK(tr_request(cx, s1, HOLD, NULL, 0, 0, &ref));
	CHECK(WAIT_UNTIL(atomic_load(&held_total) == 1, FX_REPLY_MS));
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), s1, TR_EXIT_USER + 5));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && (r.flags & TR_MSG_F_REPLY) &&
	      r.ref.v == ref.v);
	CHECK(fl != NULL && fl->reason == TR_EXIT_USER + 5 &&
	      fl->to.v == s1.v && fl->ref.v == ref.v);
	tr_received_fini(&r);

	tr_pid s2 = fx_spawn(&f, &server_def, NULL);
	CHECK_OK(tr_request(cx, s2, HOLD, NULL, 0, 600000, &ref));
	CHECK(WAIT_UNTIL(atomic_load(&held_total) == 2, FX_REPLY_MS));
	int32_t why = TR_EXIT_USER + 6;
	CHECK_OK(tr_send(cx, s2, DIE, &why, sizeof(why)));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_USER + 6 && fl->to.v == s2.v);
	tr_received_fini(&r);

	/* Queued behind DIE (one sender's messages stay in order), so never
	 * taken: noproc. */
	tr_pid s3 = fx_spawn(&f, &server_def, NULL);
	why = TR_EXIT_USER + 7;
	int v = 1;
	CHECK_OK(tr_send(cx, s3, DIE, &why, sizeof(why)));
	CHECK_OK(tr_request(cx, s3, ECHO, &v, sizeof(v), 0, &ref));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOPROC && fl->to.v == s3.v);
	tr_received_fini(&r);

	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * Threads, each with its own inbox, make requests at once: three open
 * at a time (two answered, one to a stopped actor), taken in the reverse
 * order. Each thread gets exactly its own outcomes, each once.
 */
enum { THREADS = 8, ROUNDS = 100 };

struct asker_thread {
	tr_runtime *rt;
	tr_pid servers[2];
	tr_pid gone;
	unsigned id;
	unsigned outcomes; /* right outcomes taken */
	unsigned errors;   /* anything else; the thread cannot CHECK */
};

static bool
outcome_is(tr_inbox *ib, tr_ref ref, uint32_t type, int value, int32_t reason)
{
	tr_received r;

	if (tr_inbox_recv(ib, &ref, FX_REPLY_MS, &r) != TR_OK) {
		return false;
	}
	bool ok = r.type == type && r.ref.v == ref.v &&
		  (r.flags & TR_MSG_F_REPLY);
	if (ok && type == ANSWER) {
		const int *got = TR_MSG_AS(&r, int);
		ok = got != NULL && *got == value;
	} else if (ok) {
		const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
		ok = fl != NULL && fl->reason == reason && fl->ref.v == ref.v;
	}
	tr_received_fini(&r);
	return ok;
}

static void *
asker_thread_main(void *arg)
{
	struct asker_thread *t = arg;
	tr_inbox *ib;

	if (tr_inbox_create(t->rt, &ib) != TR_OK) {
		t->errors++;
		return NULL;
	}
	tr_ctx *cx = tr_inbox_ctx(ib);
	for (unsigned i = 0; i < ROUNDS; i++) {
		int v0 = (int)(t->id * 100000 + i), v1 = v0 + 50000;
		tr_ref r0, r1, r2;
		if (tr_request(cx, t->servers[0], ECHO, &v0, sizeof(v0), 0,
			       &r0) != TR_OK ||
		    tr_request(cx, t->servers[1], ECHO, &v1, sizeof(v1), 0,
			       &r1) != TR_OK ||
		    tr_request(cx, t->gone, ECHO, &v0, sizeof(v0), 0, &r2) !=
			    TR_OK) {
			t->errors++;
			break;
		}
		t->outcomes += outcome_is(ib, r2, TR_MSG_REQUEST_FAILED, 0,
					  TR_EXIT_NOPROC);
		t->outcomes += outcome_is(ib, r1, ANSWER, v1 + 1, 0);
		t->outcomes += outcome_is(ib, r0, ANSWER, v0 + 1, 0);
	}
	/* Nothing stray is left. */
	tr_received r;
	if (tr_inbox_recv(ib, NULL, 0, &r) != TR_ETIMEDOUT) {
		t->errors++;
		tr_received_fini(&r);
	}
	tr_inbox_destroy(ib);
	return NULL;
}

static void
test_threads_with_own_inboxes(void)
{
	struct fx f;
	counters_reset();
	fx_start(&f, 2);
	struct asker_thread ts[THREADS];
	pthread_t th[THREADS];
	tr_pid servers[2] = { fx_spawn(&f, &server_def, NULL),
			      fx_spawn(&f, &server_def, NULL) };
	tr_pid gone = fx_spawn(&f, &server_def, NULL);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), gone, TR_EXIT_NORMAL));
	CHECK(WAIT_UNTIL(!tr_actor_alive(f.rt, gone), FX_REPLY_MS));
	for (unsigned i = 0; i < THREADS; i++) {
		ts[i] = (struct asker_thread){ .rt = f.rt,
					       .servers = { servers[0],
							    servers[1] },
					       .gone = gone,
					       .id = i };
		CHECK(pthread_create(&th[i], NULL, asker_thread_main, &ts[i]) ==
		      0);
	}
	unsigned outcomes = 0;
	for (unsigned i = 0; i < THREADS; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		CHECK_EQ_U64(ts[i].errors, 0);
		outcomes += ts[i].outcomes;
	}
	CHECK_EQ_U64(outcomes, THREADS * ROUNDS * 3);
	CHECK_EQ_U64(atomic_load(&answered_total), THREADS * ROUNDS * 2);
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * Bad input is refused with TR_EINVAL (TR_EMSGSIZE for a payload over
 * the configured maximum), the reference is not written, and no outcome
 * follows. A handler cannot reply to a message that has no sender.
 */
static void
test_bad_input(void)
{
	struct fx f;
	tr_config cfg = tr_config_default();
	cfg.workers = 1;
	cfg.max_msg_size = 64;
	fx_start_cfg(&f, &cfg);
	tr_ctx *cx = tr_inbox_ctx(f.ib);
	tr_pid s = fx_spawn(&f, &server_def, NULL);
	tr_ref ref = { 77 };
	char big[65] = { 0 };

	CHECK_ERR(tr_request(cx, TR_PID_NONE, ECHO, NULL, 0, 0, &ref),
		  TR_EINVAL);
	CHECK_ERR(tr_request(cx, s, TR_MSG_SYSTEM_BASE, NULL, 0, 0, &ref),
		  TR_EINVAL);
	CHECK_ERR(tr_request(cx, s, TR_MSG_REQUEST_FAILED, NULL, 0, 0, &ref),
		  TR_EINVAL);
	CHECK_ERR(tr_request(cx, s, ECHO, NULL, 4, 0, &ref), TR_EINVAL);
	CHECK_ERR(tr_request(NULL, s, ECHO, NULL, 0, 0, &ref), TR_EINVAL);
	CHECK_ERR(tr_request(cx, s, ECHO, big, sizeof(big), 0, &ref),
		  TR_EMSGSIZE);
	CHECK_EQ_U64(ref.v, 77);

	tr_msg nobody = { .type = ECHO };
	tr_msg someone = { .type = ECHO, .from = s };
	CHECK_ERR(tr_reply(cx, &nobody, ANSWER, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_reply(cx, NULL, ANSWER, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_reply(NULL, &someone, ANSWER, NULL, 0), TR_EINVAL);
	CHECK_ERR(tr_reply(cx, &someone, TR_MSG_SYSTEM_BASE, NULL, 0),
		  TR_EINVAL);
	CHECK_ERR(tr_reply(cx, &someone, ANSWER, NULL, 4), TR_EINVAL);
	CHECK_ERR(tr_reply(cx, &someone, ANSWER, big, sizeof(big)),
		  TR_EMSGSIZE);
	CHECK_ERR(tr_forward(cx, s, &someone), TR_EINVAL);
	tr_received r;
	CHECK_ERR(tr_inbox_recv(f.ib, &(tr_ref){ 0 }, 0, &r), TR_EINVAL);

	/* From a handler: a message from outside any actor has no sender
	 * to reply to. */
	CHECK_OK(tr_send(tr_runtime_ctx(f.rt), s, NOSENDER, &f.probe,
			 sizeof(f.probe)));
	int32_t err = 0;
	CHECK(fx_recv(&f, ERR_REPORT, &err, sizeof(err)));
	CHECK_ERR(err, TR_EINVAL);

	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&f, 0));
	fx_finish(&f);
}

/*
 * A picky server: it handles PICK_ONE (replying with the result of its
 * own misuse checks) and calls everything else unhandled.
 */
enum { PICK_ONE = 900, PICK_OTHER };

struct pick_errs {
	int32_t other; /* tr_unhandled() with another message */
	int32_t none;  /* and with none */
};

static void
picky_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == PICK_ONE) {
		/* Misuse: another message, no message. */
		tr_msg other = *m;
		struct pick_errs errs = { tr_unhandled(cx, &other),
					  tr_unhandled(cx, NULL) };
		(void)tr_reply(cx, m, PICK_ONE, &errs, sizeof(errs));
		return;
	}
	tr_err first = tr_unhandled(cx, m);
	tr_err second = tr_unhandled(cx, m); /* once per message */
	if (first != TR_OK || second != TR_EINVAL) {
		(void)tr_send(cx, m->from, PICK_OTHER, NULL, 0); /* a failure */
	}
}

static const tr_actor_def picky_def = {
	.size = sizeof(tr_actor_def),
	.name = "picky",
	.handle = picky_handle,
};

static void
test_unhandled(void)
{
	struct fx f;
	tr_received r;
	tr_ref ref;

	fx_start(&f, 2);
	tr_pid p = fx_spawn(&f, &picky_def, NULL);
	tr_ctx *cx = tr_inbox_ctx(f.ib);

	/* A request it does not handle fails at once, though it has no
	 * timeout: nothing else could ever answer it. */
	CHECK_OK(tr_request(cx, p, PICK_OTHER, NULL, 0, 0, &ref));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL);
	CHECK(fl != NULL && fl->reason == TR_EXIT_UNHANDLED &&
	      tr_pid_eq(fl->to, p) && fl->ref.v == ref.v);
	tr_received_fini(&r);

	/* Plain messages it does not handle are dead letters, not handled
	 * ones: every one is counted, and the totals still add up. */
	tr_metrics before = fx_metrics(&f);
	for (int i = 0; i < 10; i++) {
		SEND(&f, p, PICK_OTHER, &i, sizeof(i));
	}
	CHECK(WAIT_UNTIL(fx_metrics(&f).dead_letters >=
				 before.dead_letters + 10,
			 FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(f.rt, FX_REPLY_MS));
	tr_metrics after = fx_metrics(&f);
	CHECK_EQ_U64(after.dead_letters, before.dead_letters + 10);
	CHECK_EQ_U64(after.msgs_sent, after.msgs_handled + after.dead_letters);

	/* Its misuse checks: not this turn's message, none at all. */
	CHECK_OK(tr_request(cx, p, PICK_ONE, NULL, 0, 0, &ref));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(f.ib, &ref, FX_REPLY_MS, &r));
	const struct pick_errs *errs = TR_MSG_AS(&r, struct pick_errs);
	CHECK(r.type == PICK_ONE && errs != NULL);
	CHECK(errs != NULL && errs->other == TR_EINVAL &&
	      errs->none == TR_EINVAL);
	tr_received_fini(&r);
	/* Not on a thread's context, which handles no message. */
	tr_msg none = { .type = PICK_OTHER };
	CHECK_ERR(tr_unhandled(cx, &none), TR_EINVAL);
	CHECK(fx_recv_none(&f, 50)); /* no PICK_OTHER failure report */
	fx_finish(&f);
}

/* The size checks of TR_MSG_AS and TR_MSG_AS_FAM, on hand-made headers. */
TR_FAM_BEGIN
struct fam {
	uint32_t n;
	uint32_t pad;
	uint64_t v[];
};
TR_FAM_END

static void
test_payload_views(void)
{
	_Alignas(16) unsigned char
		buf[sizeof(struct fam) + 3 * sizeof(uint64_t)];
	struct fam *f = (struct fam *)(void *)buf;
	tr_msg m = { .data = buf, .size = sizeof(buf) };

	memset(buf, 0, sizeof(buf));
	f->n = 3;
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == f);
	f->n = 2; /* says two, carries three */
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	f->n = 4; /* says four, carries three */
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	f->n = UINT32_MAX; /* no overflow makes it fit */
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	m.size = sizeof(struct fam) + 5; /* not a whole element */
	f->n = 0;
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	m.size = sizeof(struct fam); /* the head alone, count 0 */
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == f);
	m.size = sizeof(struct fam) - 1; /* not even the head */
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	m.data = NULL;
	m.size = sizeof(struct fam);
	CHECK(TR_MSG_AS_FAM(&m, struct fam, n, v) == NULL);
	/* TR_MSG_AS takes the exact size only. */
	m.data = buf;
	CHECK(TR_MSG_AS(&m, struct fam) == f);
	m.size = sizeof(buf);
	CHECK(TR_MSG_AS(&m, struct fam) == NULL);
}

/*
 * A target's watches: one whose requester's deadline passed is dropped
 * when the table would grow (a forwarded request's requester cancels its
 * watch only at the target it asked), and none other is: no deadline,
 * a deadline to come, or a monitor's.
 */
static void
test_watches_expire(void)
{
	struct tr__reqtab t;
	struct tr__req r;
	uint64_t now = tr__clock_ns();
	uint64_t past = now > 1000 ? now - 1000 : 1;
	uint64_t future = now + UINT64_C(3600) * 1000000000u;

	memset(&t, 0, sizeof(t));
	/* 20 expired watches among 40 that must stay. */
	for (uint64_t i = 1; i <= 60; i++) {
		uint64_t d = i % 3 == 0 ? 0 : i % 3 == 1 ? past : future;
		CHECK_OK(tr__reqtab_add(&t, i | TR__REF_REQ, 7, d));
	}
	uint32_t cap = t.cap;
	/* Fill to the point of growth with watches that never expire. */
	uint64_t ref = 1000;
	while ((t.n + 1) * 4 <= t.cap * 3) {
		CHECK_OK(tr__watch_add(&t, ref++ | TR__REF_REQ, 7, 0));
	}
	uint32_t before = t.n;
	CHECK_OK(tr__watch_add(&t, ref++ | TR__REF_REQ, 7, 0));
	CHECK_EQ_U64(t.cap, cap); /* made room instead of growing */
	CHECK(t.n < before);
	for (uint64_t i = 1; i <= 60; i++) {
		bool stays = i % 3 != 1;
		CHECK(tr__reqtab_take(&t, i | TR__REF_REQ, &r) == stays);
	}
	for (uint64_t i = 1000; i < ref; i++) {
		CHECK(tr__reqtab_take(&t, i | TR__REF_REQ, &r));
	}
	CHECK_EQ_U64(t.n, 0);
	tr__reqtab_fini(&t);
}

static const struct test_case tests[] = {
	{ "payload_views", test_payload_views },
	{ "unhandled", test_unhandled },
	{ "reply", test_reply },
	{ "noproc", test_noproc },
	{ "target_stops_holding", test_target_stops_holding },
	{ "timeout_then_late_reply", test_timeout_then_late_reply },
	{ "forward", test_forward },
	{ "watches_expire", test_watches_expire },
	{ "inbox_context", test_inbox_context },
	{ "stress_one_outcome", test_stress_one_outcome },
	{ "reply_then_stop", test_reply_then_stop },
	{ "replies_around_the_timeout", test_replies_around_the_timeout },
	{ "requester_stops", test_requester_stops },
	{ "bounded_requester", test_bounded_requester },
	{ "bounded_target_refuses", test_bounded_target_refuses },
	{ "pointer_payloads", test_pointer_payloads },
	{ "thread_target_dies", test_thread_target_dies },
	{ "threads_with_own_inboxes", test_threads_with_own_inboxes },
	{ "bad_input", test_bad_input },
	{ NULL, NULL },
};

TEST_MAIN(tests)
