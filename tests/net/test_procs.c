/*
 * Nodes as separate processes on loopback: the failures one process
 * cannot show. Each test forks and execs node_proc (its path is the
 * first argument), reads the line with its address and its echo actor's
 * pid, and connects a node of its own, in this process, to it. Then it
 * kills the child (SIGKILL), freezes it (SIGSTOP, then SIGCONT) or
 * restarts it under the same name, and checks what the node here sees.
 *
 * Heartbeats are short (100 ms, a peer silent for 600 ms is down) so
 * that the tests are quick, but nothing asserts a duration: each wait is
 * for an event, with FX_REPLY_MS as the failure. Children are always
 * reaped, and killed on a failure path (and by the kernel if this
 * process dies: PR_SET_PDEATHSIG).
 *
 *     test_procs NODE_PROC [NAME-FILTER]
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <troupe/troupe.h>
#include <troupe/net/net.h>

#include "harness.h"
#include "fixture.h"
#include "procs.h"

enum {
	WATCH = PROCS_FREE, /* request, tr_pid: monitor it; the reply is
			     * the tr_ref */
	WATCHED,            /* tr_down, watcher -> the one that asked */
	FLOOD,              /* struct flood: a flooder's orders */
	MORE,               /* flooder -> itself: the next turn */
	BULK,               /* bytes the child's echo actor ignores */
	FLOODED,            /* struct flooded, flooder -> the one that asked */
};

/* Monitors are an actor's: this one holds them for the probe (an inbox)
 * and hands each DOWN on to it. */
struct watcher {
	tr_pid probe;
};

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct watcher *w = state;

	if (m->type == WATCH) {
		const tr_pid *p = TR_MSG_AS(m, tr_pid);
		tr_ref ref = { 0 };
		w->probe = m->from;
		CHECK(p != NULL);
		if (p != NULL) {
			CHECK_OK(tr_monitor(cx, *p, &ref));
		}
		CHECK_OK(tr_reply(cx, m, WATCH, &ref, sizeof(ref)));
	} else if (m->type == TR_MSG_DOWN) {
		const tr_down *d = TR_MSG_AS(m, tr_down);
		CHECK(d != NULL);
		if (d != NULL) {
			CHECK_OK(tr_send(cx, w->probe, WATCHED, d, sizeof(*d)));
		}
	}
}

static const tr_actor_def watcher_def = {
	.size = sizeof(tr_actor_def),
	.name = "watcher",
	.state_size = sizeof(struct watcher),
	.handle = watcher_handle,
};

/* What is held on the child's echo actor when the link goes: a monitor
 * (a watcher's, for the probe) and a request it never answers. A request
 * answered afterwards proves that the child took both: the monitor left
 * before the watcher's reply, and one connection carries frames in
 * order. */
struct held {
	tr_ref mon;
	tr_ref req;
};

static void
hold(struct node *n, tr_pid e, struct held *h)
{
	tr_pid w = fx_spawn(&n->f, &watcher_def, NULL);
	tr_ref ref;

	memset(&h->mon, 0, sizeof(h->mon));
	CHECK_OK(tr_request(cx_of(n), w, WATCH, &e, sizeof(e), 0, &ref));
	CHECK(fx_recv_ref(&n->f, ref, WATCH, w, &h->mon, sizeof(h->mon)));
	CHECK_OK(tr_request(cx_of(n), e, HOLD, NULL, 0, 0, &h->req));
	echo_ok(n, e, 1);
}

/* The link to @name is lost: the request fails, the monitor gets its
 * DOWN and the node monitor its NODEDOWN, each with
 * TR_EXIT_NOCONNECTION, and each once. */
static void
check_lost(struct node *n, tr_pid e, const struct held *h, const char *name)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(n->f.ib, &h->req, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOCONNECTION);
	tr_received_fini(&r);
	/* The DOWN and the NODEDOWN, in either order. */
	int downs = 0, nodedowns = 0;
	for (int i = 0; i < 2; i++) {
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(n->f.ib, NULL, FX_REPLY_MS, &r));
		if (r.type == WATCHED) {
			const tr_down *d = TR_MSG_AS(&r, tr_down);
			CHECK(d != NULL && d->ref.v == h->mon.v &&
			      tr_pid_eq(d->who, e) &&
			      d->reason == TR_EXIT_NOCONNECTION);
			downs++;
		} else if (r.type == TR_MSG_NET_NODEDOWN) {
			const tr_net_node_event *ev =
				TR_MSG_AS(&r, tr_net_node_event);
			CHECK(ev != NULL && strcmp(ev->name, name) == 0 &&
			      ev->reason == TR_EXIT_NOCONNECTION);
			nodedowns++;
		} else {
			fprintf(stderr, "  unexpected message type %u\n",
				r.type);
		}
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(downs, 1);
	CHECK_EQ_INT(nodedowns, 1);
	/* Once only: nothing more comes once this node is idle. */
	CHECK_OK(tr_runtime_wait_idle(n->f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&n->f, 100));
	/* While the node is down, a send to it is refused at once. */
	int v = 0;
	CHECK_ERR(tr_send(cx_of(n), e, ECHO, &v, sizeof(v)), TR_EUNREACH);
}

/* A flooder sends @total BULK messages of @size bytes to @to, @per_turn
 * a turn, then a request ECHO; with its answer (all BULK were taken
 * before it, per-pair order) it reports how many sends were refused. */
struct flood {
	tr_pid to;
	uint32_t total, per_turn, size;
};

struct flooded {
	uint32_t sent, refused, turns;
	int32_t echo;
};

struct flooder {
	struct flood f;
	struct flooded r;
	tr_pid probe;
	tr_ref echo;
	unsigned char *bytes;
};

static void
flooder_turn(tr_ctx *cx, struct flooder *s)
{
	s->r.turns++;
	for (uint32_t i = 0; i < s->f.per_turn && s->r.sent < s->f.total; i++) {
		s->r.sent++;
		if (tr_send(cx, s->f.to, BULK, s->bytes, s->f.size) != TR_OK) {
			s->r.refused++;
		}
	}
	if (s->r.sent < s->f.total) {
		CHECK_OK(tr_send(cx, tr_self(cx), MORE, NULL, 0));
	} else {
		int v = 41;
		CHECK_OK(tr_request(cx, s->f.to, ECHO, &v, sizeof(v), 0,
				    &s->echo));
	}
}

static void
flooder_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct flooder *s = state;

	if (m->type == FLOOD) {
		const struct flood *f = TR_MSG_AS(m, struct flood);
		CHECK(f != NULL && s->bytes == NULL);
		if (f == NULL || s->bytes != NULL) {
			return;
		}
		s->f = *f;
		s->probe = m->from;
		s->bytes = calloc(1, f->size);
		CHECK(s->bytes != NULL);
		flooder_turn(cx, s);
	} else if (m->type == MORE && s->bytes != NULL) {
		flooder_turn(cx, s);
	} else if (m->type == ECHO && m->ref.v == s->echo.v) {
		const int *v = TR_MSG_AS(m, int);
		s->r.echo = v != NULL ? *v : -1;
		CHECK_OK(tr_send(cx, s->probe, FLOODED, &s->r, sizeof(s->r)));
	} else {
		CHECK(false);
	}
}

static void
flooder_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct flooder *s = state;

	(void)cx;
	(void)reason;
	free(s->bytes);
}

static const tr_actor_def flooder_def = {
	.size = sizeof(tr_actor_def),
	.name = "flooder",
	.state_size = sizeof(struct flooder),
	.handle = flooder_handle,
	.teardown = flooder_teardown,
};

/* ---- tests ---- */

/* A send and a request to an actor in another process; a send to its
 * name and a spawn there. */
static void
test_send_and_request(void)
{
	struct child c;
	struct node n;

	if (!child_start(&c, "node-b", "tcp://127.0.0.1:0")) {
		return;
	}
	node_start(&n, "node-a");
	tr_pid e = connect_child(&n, &c, "node-b", NULL);
	int v = 41, got = 0;
	CHECK_OK(tr_send(cx_of(&n), e, ECHO, &v, sizeof(v)));
	CHECK(fx_recv(&n.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);
	echo_ok(&n, e, 7);

	/* A send to its name there, and a spawn there by definition name. */
	CHECK_OK(tr_net_send_name(cx_of(&n), n.net, "node-b", "echo", ECHO, &v,
				  sizeof(v)));
	CHECK(fx_recv(&n.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);
	tr_pid svc = TR_PID_NONE, e2 = TR_PID_NONE;
	tr_net_spawn sp;
	tr_net_pid_reply rep;
	tr_ref ref;
	memset(&sp, 0, sizeof(sp));
	memset(&rep, 0, sizeof(rep));
	snprintf(sp.def, sizeof(sp.def), "echo");
	CHECK_OK(tr_net_service(n.net, "node-b", &svc));
	CHECK_OK(tr_request(cx_of(&n), svc, TR_MSG_NET_SPAWN, &sp, sizeof(sp),
			    0, &ref));
	CHECK(fx_recv_ref(&n.f, ref, TR_MSG_NET_PID, svc, &rep, sizeof(rep)));
	CHECK_EQ_INT(rep.status, TR_OK);
	CHECK_OK(tr_net_pid_decode(n.net, rep.pid, &e2));
	CHECK(!tr_pid_eq(e2, e));
	echo_ok(&n, e2, 9);
	node_finish(&n);
	child_term(&c);
	child_kill(&c);
}

/* kill -9: the monitor and the pending request get TR_EXIT_NOCONNECTION
 * once, and a NODEDOWN comes (the connection is reset, or heartbeats
 * time out). */
static void
test_kill(void)
{
	struct child c;
	struct node n;
	struct held h;

	if (!child_start(&c, "node-b", "tcp://127.0.0.1:0")) {
		return;
	}
	node_start(&n, "node-a");
	tr_pid e = connect_child(&n, &c, "node-b", NULL);
	hold(&n, e, &h);
	CHECK_OK(kill(c.pid, SIGKILL));
	int st = child_wait(&c, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	check_lost(&n, e, &h, "node-b");
	node_finish(&n);
	child_kill(&c);
}

/*
 * SIGSTOP: a frozen peer behind a TCP connection that stays open (the
 * kernel still acknowledges what this node sends). Only the heartbeats
 * notice it: after the timeout the peer is declared down, the monitor
 * and the request get TR_EXIT_NOCONNECTION and a NODEDOWN comes, while
 * the process is alive and merely stopped. This node keeps dialing it
 * (tr_net_connect() redials with back-off); its dials reach the kernel's
 * listen queue but no handshake answers, and each is given up after the
 * timeout.
 *
 * After SIGCONT the child answers again and the link comes back: a
 * NODEUP with the same creation, since the process did not restart. Its
 * pids are therefore valid again (a pid names a life, and this is the
 * same life): a request to the echo actor is answered. What the link
 * lost stays lost: the monitor and the request have had their outcome
 * and get no second one, and nothing is resent.
 */
static void
test_stop_and_continue(void)
{
	struct child c;
	struct node n;
	struct held h;
	uint32_t life = 0, again = 0;

	if (!child_start(&c, "node-b", "tcp://127.0.0.1:0")) {
		return;
	}
	node_start(&n, "node-a");
	tr_pid e = connect_child(&n, &c, "node-b", &life);
	hold(&n, e, &h);
	CHECK_OK(kill(c.pid, SIGSTOP));
	int st = child_wait(&c, WUNTRACED);
	CHECK(WIFSTOPPED(st));
	check_lost(&n, e, &h, "node-b");
	/* Declared down while the process is still there, stopped. */
	st = 0;
	CHECK(waitpid(c.pid, &st, WNOHANG) == 0);

	CHECK_OK(kill(c.pid, SIGCONT));
	CHECK(node_event(&n, TR_MSG_NET_NODEUP, "node-b", &again));
	CHECK_EQ_U64(again, life);
	echo_ok(&n, e, 99);
	/* The monitor and the request had their outcome once; the link's
	 * return brings nothing else. */
	CHECK_OK(tr_runtime_wait_idle(n.f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&n.f, 100));
	node_finish(&n);
	child_term(&c);
	child_kill(&c);
}

/* A child restarted under the same name, at the same address, is a new
 * life: this node redials it on its own, its old pids are dead letters
 * (TR_EUNREACH), its new ones work. */
static void
test_restart(void)
{
	struct child c, c2;
	struct node n;
	uint32_t life = 0, life2 = 0;

	if (!child_start(&c, "node-b", "tcp://127.0.0.1:0")) {
		return;
	}
	node_start(&n, "node-a");
	tr_pid old = connect_child(&n, &c, "node-b", &life);
	echo_ok(&n, old, 1);
	child_term(&c);
	CHECK(node_event(&n, TR_MSG_NET_NODEDOWN, "node-b", NULL));

	if (child_start(&c2, "node-b", c.addr)) {
		CHECK(node_event(&n, TR_MSG_NET_NODEUP, "node-b", &life2));
		CHECK(life2 != life);
		int v = 0;
		CHECK_ERR(tr_send(cx_of(&n), old, ECHO, &v, sizeof(v)),
			  TR_EUNREACH);
		tr_pid e = TR_PID_NONE;
		CHECK_OK(tr_net_pid_decode(n.net, c2.echo, &e));
		CHECK(!tr_pid_eq(e, old));
		echo_ok(&n, e, 5);
	}
	node_finish(&n);
	child_term(&c2);
	child_kill(&c2);
	child_kill(&c);
}

/*
 * A peer that stops reading (a frozen process): the link fills and holds
 * back the actor that floods it, with nothing refused and the link's
 * queue within its bound; once the peer reads again, everything arrives.
 * The flood (24 MiB) is larger than loopback's socket buffers can hide,
 * so the hold must come; both sides' silence timeouts are long, so the
 * link outlives the freeze.
 */
static void
test_peer_stops_reading(void)
{
	struct child c;
	struct node n;
	tr_net_stats st;

	child_timeout_ms = "60000";
	bool started = child_start(&c, "node-b", "tcp://127.0.0.1:0");
	child_timeout_ms = TIMEOUT_MS;
	if (!started) {
		return;
	}
	tr_net_config cfg = node_config("node-a", "tcp://127.0.0.1:0");
	cfg.timeout_ms = 60000;
	cfg.link_bytes = 1u << 20;
	node_start_cfg(&n, &cfg);
	tr_pid e = connect_child(&n, &c, "node-b", NULL);
	echo_ok(&n, e, 1);
	CHECK_OK(kill(c.pid, SIGSTOP));
	int st_child = child_wait(&c, WUNTRACED);
	CHECK(WIFSTOPPED(st_child));

	/* Two 60 KiB messages a turn: a turn adds less than the bound's
	 * half, so a held sender never reaches the bound. */
	struct flood f = { e, 400, 2, 60 * 1024 };
	tr_pid fl = fx_spawn(&n.f, &flooder_def, NULL);
	SEND(&n.f, fl, FLOOD, &f, sizeof(f));
	CHECK(WAIT_UNTIL(tr_net_stats_get(n.net, &st) == TR_OK && st.holds >= 1,
			 FX_REPLY_MS));
	CHECK_OK(kill(c.pid, SIGCONT));

	struct flooded r;
	memset(&r, 0, sizeof(r));
	CHECK(fx_recv(&n.f, FLOODED, &r, sizeof(r)));
	CHECK_EQ_INT(r.sent, f.total);
	CHECK_EQ_INT(r.refused, 0);
	CHECK_EQ_INT(r.echo, 42);
	CHECK_OK(tr_net_stats_get(n.net, &st));
	CHECK_EQ_U64(st.sends_refused, 0);
	CHECK(fx_metrics(&n.f).mutes >= 1);
	node_finish(&n);
	child_term(&c);
	child_kill(&c);
}

static const struct test_case tests[] = {
	{ "procs: send_and_request", test_send_and_request },
	{ "procs: kill", test_kill },
	{ "procs: stop_and_continue", test_stop_and_continue },
	{ "procs: restart", test_restart },
	{ "procs: peer_stops_reading", test_peer_stops_reading },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_procs NODE_PROC [NAME-FILTER]\n");
		return 2;
	}
	node_proc = argv[1];
	/* A write to a child that died must not end this process. */
	signal(SIGPIPE, SIG_IGN);
	return harness_run(tests, argc - 1, argv + 1);
}
