/*
 * Names on other nodes and spawning there, several nodes in one process:
 * each node's service answers TR_MSG_NET_WHEREIS and TR_MSG_NET_SPAWN
 * and delivers TR_MSG_NET_SEND_NAME keeping the sender; a name that is
 * not there is a counted dead letter on its node; a spawned actor
 * answers, can be monitored and linked (atomically, with
 * TR_NET_SPAWN_LINK); a node without registry or definitions answers
 * "no such name"; a link lost while a lookup or a spawn waits gives each
 * exactly one TR_EXIT_NOCONNECTION. Every wait is for an event, with
 * FX_REPLY_MS as the failure; every message is counted at the end.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>
#include <troupe/actors/registry.h>
#include <troupe/net/net.h>

#include "harness.h"
#include "fixture.h"

static const char secret[] = "a cluster secret of some length";

struct node {
	struct fx f;
	tr_net *net;
	tr_registry *reg;
	char addr[160];
};

/* ---- actors ---- */

enum {
	ECHO = 1, /* int: answer n + the actor's addend */
	WATCH,    /* tr_pid: monitor it, report the DOWN to the sender */
	WATCHED,  /* tr_down, watcher -> probe */
	STALL,    /* hold the worker until `stall_release` */
	GO,       /* struct go: a parent's orders */
	SPAWNED,  /* tr_net_pid_reply, parent -> probe */
	EXITED,   /* tr_exit_signal, parent -> probe */
	QUIT,     /* an adder stops itself with reason 77 */
};

struct adder {
	int add;
};

static int
adder_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	((struct adder *)state)->add = arg != NULL ? *(const int *)arg : 1;
	return 0;
}

static void
adder_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const struct adder *a = state;
	const int *n = TR_MSG_AS(m, int);

	if (m->type == QUIT) {
		tr_stop_self(cx, 77);
		return;
	}
	if (m->type != ECHO || n == NULL) {
		CHECK(false);
		return;
	}
	int v = *n + a->add;
	if (m->flags & TR_MSG_F_REQUEST) {
		CHECK_OK(tr_reply(cx, m, ECHO, &v, sizeof(v)));
	} else {
		CHECK_OK(tr_send(cx, m->from, ECHO, &v, sizeof(v)));
	}
}

static const tr_actor_def adder_def = {
	.size = sizeof(tr_actor_def),
	.name = "adder",
	.state_size = sizeof(struct adder),
	.init = adder_init,
	.handle = adder_handle,
	.arg_size = sizeof(int),
};

static int
failing_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)state;
	(void)arg;
	return -1;
}

static const tr_actor_def failing_def = {
	.size = sizeof(tr_actor_def),
	.name = "failing",
	.init = failing_init,
	.handle = adder_handle,
};

static const tr_net_def spawnable[] = {
	{ "adder", &adder_def },
	{ "failing", &failing_def },
};

struct watcher {
	tr_pid probe;
};

static void
watcher_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct watcher *w = state;

	if (m->type == WATCH) {
		const tr_pid *p = TR_MSG_AS(m, tr_pid);
		tr_ref ref;
		w->probe = m->from;
		CHECK(p != NULL);
		if (p != NULL) {
			CHECK_OK(tr_monitor(cx, *p, &ref));
		}
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

static atomic_bool stall_release, stalling;

static void
staller_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_store(&stalling, true);
	uint64_t deadline = harness_now_ms() + FX_REPLY_MS;
	while (!atomic_load(&stall_release) && harness_now_ms() < deadline) {
		harness_nap_us(1000);
	}
	CHECK(atomic_load(&stall_release));
}

static const tr_actor_def staller_def = {
	.size = sizeof(tr_actor_def),
	.name = "staller",
	.handle = staller_handle,
};

/* A parent that traps exits, asks a node's service for a linked spawn
 * and tells the probe the reply and the exit signal. */
struct go {
	tr_pid service;
	char def[TR_NET_KEY_SIZE];
};

struct parent {
	tr_pid probe;
};

static void
parent_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct parent *p = state;

	if (m->type == GO) {
		const struct go *g = TR_MSG_AS(m, struct go);
		tr_net_spawn rq;
		CHECK(g != NULL);
		if (g == NULL) {
			return;
		}
		p->probe = m->from;
		tr_trap_exit(cx, true);
		memset(&rq, 0, sizeof(rq));
		memcpy(rq.def, g->def, sizeof(rq.def));
		rq.flags = TR_NET_SPAWN_LINK;
		CHECK_OK(tr_request(cx, g->service, TR_MSG_NET_SPAWN, &rq,
				    sizeof(rq), 0, NULL));
	} else if (m->type == TR_MSG_NET_PID) {
		CHECK(m->flags & TR_MSG_F_REPLY);
		CHECK_OK(tr_send(cx, p->probe, SPAWNED, m->data, m->size));
	} else if (m->type == TR_MSG_EXIT) {
		CHECK_OK(tr_send(cx, p->probe, EXITED, m->data, m->size));
	} else {
		CHECK(false);
	}
}

static const tr_actor_def parent_def = {
	.size = sizeof(tr_actor_def),
	.name = "parent",
	.state_size = sizeof(struct parent),
	.handle = parent_handle,
};

/* ---- nodes ---- */

/* A node of @workers workers; with @full a registry and the spawnable
 * definitions. */
static void
node_start(struct node *n, const char *name, unsigned workers, bool full)
{
	tr_net_config cfg = { .size = sizeof(cfg),
			      .name = name,
			      .listen = "tcp://127.0.0.1:0",
			      .secret = secret,
			      .secret_len = strlen(secret),
			      .heartbeat_ms = 200,
			      .timeout_ms = 20000 };

	memset(n, 0, sizeof(*n));
	fx_start(&n->f, workers);
	if (full) {
		CHECK_OK(tr_registry_create(n->f.rt, &n->reg));
		cfg.registry = n->reg;
		cfg.defs = spawnable;
		cfg.ndefs = sizeof(spawnable) / sizeof(spawnable[0]);
	}
	CHECK_OK(tr_net_start(n->f.rt, &cfg, &n->net));
	CHECK_OK(tr_net_address(n->net, n->addr, sizeof(n->addr)));
}

static bool
is_up(struct node *n, const char *peer)
{
	tr_net_node v[8];
	size_t k = tr_net_nodes(n->net, v, 8);

	for (size_t i = 0; i < k && i < 8; i++) {
		if (strcmp(v[i].name, peer) == 0 && v[i].state == TR_NET_UP) {
			return true;
		}
	}
	return false;
}

/* @b dials @a; both see the link up. */
static void
join(struct node *a, const char *aname, struct node *b, const char *bname)
{
	CHECK_OK(tr_net_connect(b->net, a->addr));
	CHECK(WAIT_UNTIL(is_up(a, bname) && is_up(b, aname), FX_REPLY_MS));
}

static void
nodes_finish(struct node **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tr_inbox_destroy(v[i]->f.ib);
		tr_runtime_stop(v[i]->f.rt);
	}
	for (size_t i = 0; i < n; i++) {
		CHECK_OK(tr_runtime_join(v[i]->f.rt));
	}
	for (size_t i = 0; i < n; i++) {
		tr_net_stop(v[i]->net);
		tr_registry_destroy(v[i]->reg);
	}
	for (size_t i = 0; i < n; i++) {
		check_final_metrics(v[i]->f.rt);
		tr_runtime_destroy(v[i]->f.rt);
	}
}

/* A's pid @p in B's view, through the pid helpers. */
static tr_pid
carry(struct node *a, struct node *b, tr_pid p)
{
	unsigned char buf[TR_NET_PID_SIZE];
	tr_pid out = TR_PID_NONE;

	CHECK_OK(tr_net_pid_encode(a->net, p, buf));
	CHECK_OK(tr_net_pid_decode(b->net, buf, &out));
	return out;
}

static tr_pid
service_of(struct node *b, const char *node)
{
	tr_pid svc = TR_PID_NONE;

	CHECK_OK(tr_net_service(b->net, node, &svc));
	CHECK(!tr_pid_is_none(svc));
	return svc;
}

/* A request from @b's probe to @node's service; its reply's status, and
 * the pid in @b's view. */
static int32_t
ask(struct node *b, const char *node, uint32_t type, const void *rq, size_t len,
    tr_pid *pid)
{
	tr_pid svc = service_of(b, node);
	tr_net_pid_reply rep;
	tr_ref ref;

	memset(&rep, 0, sizeof(rep));
	rep.status = 1;
	*pid = TR_PID_NONE;
	CHECK_OK(
		tr_request(tr_inbox_ctx(b->f.ib), svc, type, rq, len, 0, &ref));
	CHECK(fx_recv_ref(&b->f, ref, TR_MSG_NET_PID, svc, &rep, sizeof(rep)));
	if (rep.status == TR_OK) {
		CHECK_OK(tr_net_pid_decode(b->net, rep.pid, pid));
	}
	return rep.status;
}

static int32_t
whereis(struct node *b, const char *node, const char *name, tr_pid *pid)
{
	tr_net_name rq;

	memset(&rq, 0, sizeof(rq));
	snprintf(rq.name, sizeof(rq.name), "%s", name);
	return ask(b, node, TR_MSG_NET_WHEREIS, &rq, sizeof(rq), pid);
}

static int32_t
spawn_on(struct node *b, const char *node, const char *def, const int *arg,
	 tr_pid *pid)
{
	size_t len = sizeof(tr_net_spawn) + (arg != NULL ? sizeof(int) : 0);
	tr_net_spawn *rq = calloc(1, len);

	CHECK(rq != NULL);
	if (rq == NULL) {
		return TR_ENOMEM;
	}
	snprintf(rq->def, sizeof(rq->def), "%s", def);
	if (arg != NULL) {
		rq->arg_len = sizeof(int);
		memcpy(rq->arg, arg, sizeof(int));
	}
	int32_t status = ask(b, node, TR_MSG_NET_SPAWN, rq, len, pid);
	free(rq);
	return status;
}

static tr_net_stats
stats(struct node *n)
{
	tr_net_stats st;

	CHECK_OK(tr_net_stats_get(n->net, &st));
	return st;
}

/* ---- tests ---- */

/* A name send reaches the holder with the sender as m->from, which
 * answers it; a lookup finds the holder, and misses a name not there. */
static void
test_send_and_lookup(void)
{
	struct node a, b;
	int n = 41, got = 0;

	node_start(&a, "alpha", 2, true);
	node_start(&b, "beta", 2, false);
	join(&a, "alpha", &b, "beta");
	tr_pid e = fx_spawn(&a.f, &adder_def, NULL);
	CHECK_OK(tr_registry_register(a.reg, "adder", e));

	CHECK_OK(tr_net_send_name(tr_inbox_ctx(b.f.ib), b.net, "alpha", "adder",
				  ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);

	tr_pid pid;
	CHECK_EQ_INT(whereis(&b, "alpha", "adder", &pid), TR_OK);
	CHECK(tr_pid_eq(pid, carry(&a, &b, e)));
	CHECK_EQ_INT(whereis(&b, "alpha", "nobody", &pid), TR_ENOENT);
	CHECK(tr_pid_is_none(pid));
	/* The pid found is the holder: a request to it is answered. */
	tr_ref ref;
	pid = carry(&a, &b, e);
	CHECK_OK(tr_request(tr_inbox_ctx(b.f.ib), pid, ECHO, &n, sizeof(n), 0,
			    &ref));
	CHECK(fx_recv_ref(&b.f, ref, ECHO, pid, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);

	/* A node's own service is found by its own name. */
	tr_pid own = TR_PID_NONE;
	CHECK_OK(tr_net_service(a.net, "alpha", &own));
	CHECK(tr_actor_alive(a.f.rt, own));
	CHECK(tr_pid_eq(carry(&a, &b, own), service_of(&b, "alpha")));
	CHECK_ERR(tr_net_service(b.net, "gamma", &own), TR_ENOENT);
	CHECK_ERR(tr_net_send_name(tr_inbox_ctx(b.f.ib), b.net, "alpha", "",
				   ECHO, &n, sizeof(n)),
		  TR_EINVAL);

	tr_net_stats st = stats(&a);
	CHECK_EQ_U64(st.names_sent, 1);
	CHECK_EQ_U64(st.names_missed, 0);
	CHECK_EQ_U64(st.lookups, 2);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* A name send to a name that is not registered is one counted dead
 * letter on the node that owns the registry; bad requests get an error
 * or their unhandled outcome, and the service goes on. */
static void
test_missing_name_and_bad_requests(void)
{
	struct node a, b;
	int n = 1;

	node_start(&a, "alpha", 2, true);
	node_start(&b, "beta", 2, false);
	join(&a, "alpha", &b, "beta");
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	tr_metrics before = fx_metrics(&a.f);
	CHECK_OK(tr_net_send_name(tr_inbox_ctx(b.f.ib), b.net, "alpha",
				  "nobody", ECHO, &n, sizeof(n)));
	CHECK(WAIT_UNTIL(stats(&a).names_missed == 1, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	tr_metrics after = fx_metrics(&a.f);
	CHECK_EQ_U64(after.dead_letters - before.dead_letters, 1);
	CHECK_EQ_U64(stats(&a).names_sent, 0);

	/* A lookup of the wrong size: TR_EINVAL; a request of no type the
	 * service knows: TR_EXIT_UNHANDLED. */
	tr_pid svc = service_of(&b, "alpha"), pid;
	CHECK_EQ_INT(ask(&b, "alpha", TR_MSG_NET_WHEREIS, "x", 1, &pid),
		     TR_EINVAL);
	tr_net_name unterminated;
	memset(&unterminated, 'x', sizeof(unterminated));
	CHECK_EQ_INT(ask(&b, "alpha", TR_MSG_NET_WHEREIS, &unterminated,
			 sizeof(unterminated), &pid),
		     TR_EINVAL);
	tr_ref ref;
	tr_received r;
	CHECK_OK(tr_request(tr_inbox_ctx(b.f.ib), svc, 77, NULL, 0, 0, &ref));
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(b.f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_UNHANDLED);
	tr_received_fini(&r);
	/* A name send from the service's own node is a dead letter too. */
	CHECK_OK(tr_net_send_name(tr_inbox_ctx(a.f.ib), a.net, "alpha",
				  "nobody", ECHO, &n, sizeof(n)));
	CHECK(WAIT_UNTIL(stats(&a).names_missed == 2, FX_REPLY_MS));
	CHECK(tr_actor_alive(a.f.rt, service_of(&a, "alpha")));
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* Spawn by definition name: the new pid answers, with its argument
 * copied across, can be monitored and gives DOWN with the reason; an
 * unknown name and an argument of the wrong size are errors. */
static void
test_spawn(void)
{
	struct node a, b;
	tr_pid child, none;
	int arg = 100, n = 1, got = 0;

	node_start(&a, "alpha", 2, true);
	node_start(&b, "beta", 2, false);
	join(&a, "alpha", &b, "beta");
	CHECK_EQ_INT(spawn_on(&b, "alpha", "adder", &arg, &child), TR_OK);
	CHECK(tr_pid_node(child) != 0);
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), child, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 101);

	tr_pid w = fx_spawn(&b.f, &watcher_def, NULL);
	SEND(&b.f, w, WATCH, &child, sizeof(child));
	/* The watcher's monitor is on the link before the QUIT, and the
	 * child takes both in that order. (A tr_stop() here could overtake
	 * the monitor in the child's queue, as a stop overtakes a queue,
	 * and the DOWN would then say TR_EXIT_NOPROC.) */
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), child, QUIT, NULL, 0));
	tr_down d;
	memset(&d, 0, sizeof(d));
	CHECK(fx_recv(&b.f, WATCHED, &d, sizeof(d)));
	CHECK(d.reason == 77 && tr_pid_eq(d.who, child));

	/* Without an argument init gets NULL. */
	CHECK_EQ_INT(spawn_on(&b, "alpha", "adder", NULL, &child), TR_OK);
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), child, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 2);

	CHECK_EQ_INT(spawn_on(&b, "alpha", "no-such-def", NULL, &none),
		     TR_ENOENT);
	/* "failing" takes no argument. */
	CHECK_EQ_INT(spawn_on(&b, "alpha", "failing", &arg, &none), TR_EINVAL);
	tr_net_spawn bad;
	memset(&bad, 0, sizeof(bad));
	snprintf(bad.def, sizeof(bad.def), "adder");
	bad.flags = 0x80;
	CHECK_EQ_INT(
		ask(&b, "alpha", TR_MSG_NET_SPAWN, &bad, sizeof(bad), &none),
		TR_EINVAL);
	bad.flags = 0;
	bad.arg_len = 4; /* more than the payload holds */
	CHECK_EQ_INT(
		ask(&b, "alpha", TR_MSG_NET_SPAWN, &bad, sizeof(bad), &none),
		TR_EINVAL);
	tr_net_stats st = stats(&a);
	CHECK_EQ_U64(st.spawned, 2);
	CHECK_EQ_U64(st.spawns_refused, 4);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* TR_NET_SPAWN_LINK: the child links to its requester before its init,
 * so an init that fails at once still reaches the parent; a linked
 * child's stop reaches it with the reason. */
static void
test_spawn_link(void)
{
	struct node a, b;

	node_start(&a, "alpha", 2, true);
	node_start(&b, "beta", 2, false);
	join(&a, "alpha", &b, "beta");
	static const char *const defs[] = { "failing", "adder" };
	for (int i = 0; i < 2; i++) {
		tr_pid parent = fx_spawn(&b.f, &parent_def, NULL);
		struct go g;
		memset(&g, 0, sizeof(g));
		g.service = service_of(&b, "alpha");
		snprintf(g.def, sizeof(g.def), "%s", defs[i]);
		SEND(&b.f, parent, GO, &g, sizeof(g));
		tr_net_pid_reply rep;
		tr_exit_signal ex;
		tr_pid child = TR_PID_NONE;
		bool replied = false, exited = false;
		memset(&ex, 0, sizeof(ex));
		/* The reply, then (for the adder, after a stop) the exit
		 * signal; for the failing one in either order. */
		for (int k = 0; k < 2; k++) {
			tr_received r;
			memset(&r, 0, sizeof(r));
			CHECK_OK(tr_inbox_recv(b.f.ib, NULL, FX_REPLY_MS, &r));
			if (r.type == SPAWNED && r.size == sizeof(rep)) {
				memcpy(&rep, r.data, sizeof(rep));
				CHECK_EQ_INT(rep.status, TR_OK);
				CHECK_OK(tr_net_pid_decode(b.net, rep.pid,
							   &child));
				replied = true;
				if (i == 1) {
					CHECK_OK(tr_stop(tr_inbox_ctx(b.f.ib),
							 child, 93));
				}
			} else if (r.type == EXITED && r.size == sizeof(ex)) {
				memcpy(&ex, r.data, sizeof(ex));
				exited = true;
			}
			tr_received_fini(&r);
		}
		CHECK(replied && exited);
		CHECK(tr_pid_eq(ex.from, child));
		CHECK_EQ_INT(ex.reason, i == 0 ? TR_EXIT_INIT_FAILED : 93);
		CHECK_OK(tr_stop(tr_inbox_ctx(b.f.ib), parent, TR_EXIT_NORMAL));
	}
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* A node given no registry and no definitions answers every name with
 * "no such name" and every spawn with "no such definition". */
static void
test_bare_node(void)
{
	struct node a, b;
	tr_pid pid;
	int n = 1;

	node_start(&a, "alpha", 2, false);
	node_start(&b, "beta", 2, true);
	join(&a, "alpha", &b, "beta");
	CHECK_EQ_INT(whereis(&b, "alpha", "adder", &pid), TR_ENOENT);
	CHECK_EQ_INT(spawn_on(&b, "alpha", "adder", NULL, &pid), TR_ENOENT);
	CHECK_OK(tr_net_send_name(tr_inbox_ctx(b.f.ib), b.net, "alpha", "adder",
				  ECHO, &n, sizeof(n)));
	CHECK(WAIT_UNTIL(stats(&a).names_missed == 1, FX_REPLY_MS));
	/* And the other way, the full node serves the bare one. */
	CHECK_EQ_INT(spawn_on(&a, "beta", "adder", NULL, &pid), TR_OK);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* The link is lost while a lookup and a spawn wait (the service's node's
 * one worker is held, so its link's frames wait to be handed in): each
 * gets exactly one outcome, TR_EXIT_NOCONNECTION; what the lost link had
 * read is dropped with it, so the service never sees them. */
static void
test_link_lost_while_waiting(void)
{
	struct node a, b;
	tr_ref refs[2];
	tr_net_name nm;
	tr_net_spawn sp;

	node_start(&a, "alpha", 1, true);
	node_start(&b, "beta", 2, false);
	join(&a, "alpha", &b, "beta");
	tr_pid svc = service_of(&b, "alpha");
	atomic_store(&stall_release, false);
	atomic_store(&stalling, false);
	tr_pid st = fx_spawn(&a.f, &staller_def, NULL);
	SEND(&a.f, st, STALL, NULL, 0);
	CHECK(WAIT_UNTIL(atomic_load(&stalling), FX_REPLY_MS));
	uint64_t in0 = fx_metrics(&a.f).msgs_remote_in;

	memset(&nm, 0, sizeof(nm));
	snprintf(nm.name, sizeof(nm.name), "adder");
	memset(&sp, 0, sizeof(sp));
	snprintf(sp.def, sizeof(sp.def), "adder");
	tr_ctx *cx = tr_inbox_ctx(b.f.ib);
	CHECK_OK(tr_request(cx, svc, TR_MSG_NET_WHEREIS, &nm, sizeof(nm), 0,
			    &refs[0]));
	CHECK_OK(tr_request(cx, svc, TR_MSG_NET_SPAWN, &sp, sizeof(sp), 0,
			    &refs[1]));
	CHECK_OK(tr_net_disconnect(b.net, "alpha"));
	for (int i = 0; i < 2; i++) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(b.f.ib, &refs[i], FX_REPLY_MS, &r));
		const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
		CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
		      fl->reason == TR_EXIT_NOCONNECTION);
		tr_received_fini(&r);
	}
	CHECK(WAIT_UNTIL(!is_up(&a, "beta"), FX_REPLY_MS));
	atomic_store(&stall_release, true);
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	CHECK_EQ_U64(stats(&a).lookups, 0);
	CHECK_EQ_U64(fx_metrics(&a.f).msgs_remote_in, in0);
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&b.f, 50));
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* The transitive full mesh: a node that joins through one seed is told
 * the seed's peers and connects to each; a node that joins later reaches
 * every node, and a name on a node it never dialed is reached. */
static void
test_full_mesh(void)
{
	struct node a, b, c, d;
	int n = 9, got = 0;

	node_start(&a, "alpha", 2, true);
	node_start(&b, "beta", 2, false);
	node_start(&c, "gamma", 2, false);
	node_start(&d, "delta", 2, false);
	join(&a, "alpha", &b, "beta");
	join(&b, "beta", &c, "gamma");
	CHECK(WAIT_UNTIL(is_up(&c, "alpha") && is_up(&a, "gamma"),
			 FX_REPLY_MS));
	join(&c, "gamma", &d, "delta");
	CHECK(WAIT_UNTIL(is_up(&d, "alpha") && is_up(&d, "beta") &&
				 is_up(&a, "delta") && is_up(&b, "delta"),
			 FX_REPLY_MS));
	/* Each pair once: every node has the three others, no more. */
	struct node *all[] = { &a, &b, &c, &d };
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_U64(tr_net_nodes(all[i]->net, NULL, 0), 3);
	}
	tr_pid e = fx_spawn(&a.f, &adder_def, NULL);
	CHECK_OK(tr_registry_register(a.reg, "adder", e));
	CHECK_OK(tr_net_send_name(tr_inbox_ctx(d.f.ib), d.net, "alpha", "adder",
				  ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&d.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 10);
	nodes_finish(all, 4);
}

static const struct test_case tests[] = {
	{ "send_and_lookup", test_send_and_lookup },
	{ "missing_name_and_bad_requests", test_missing_name_and_bad_requests },
	{ "spawn", test_spawn },
	{ "spawn_link", test_spawn_link },
	{ "bare_node", test_bare_node },
	{ "link_lost_while_waiting", test_link_lost_while_waiting },
	{ "full_mesh", test_full_mesh },
	{ NULL, NULL },
};

TEST_MAIN(tests)
