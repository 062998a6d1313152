/*
 * Nodes over mutual TLS (tls+tcp), several in one process: two nodes
 * whose certificates the cluster's CA signed exchange messages and
 * requests; a certificate of another CA, an expired one, a plain tcp
 * peer on the TLS port, and a pinned peer whose certificate changed are
 * each refused and counted by the node that checked them, while that
 * node keeps serving its peer and nothing of the refused one reaches an
 * actor. The certificates are committed in tests/net/certs (see its
 * README); nothing is generated here. Each wait is for an event, with
 * FX_REPLY_MS as the failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>
#include <troupe/net/net.h>

#include "harness.h"
#include "fixture.h"

#ifndef CERTS_DIR
#error "CERTS_DIR: the directory of the test certificates"
#endif

static const char secret[] = "a cluster secret of some length";

/* The PEM files, read once. */
static char *
pem(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", CERTS_DIR, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	char *buf = calloc(1, 16384);
	size_t n = buf != NULL ? fread(buf, 1, 16383, f) : 0;
	fclose(f);
	if (n == 0) {
		fprintf(stderr, "empty %s\n", path);
		exit(1);
	}
	return buf;
}

struct id {
	const char *cert, *key, *ca;
};

struct node {
	struct fx f;
	tr_net *net;
	char addr[160];
	char *pems[3];
	/* Read by nodes_finish() before the node is stopped. */
	tr_net_stats last;
	uint64_t last_peers_refused;
};

/* A node with the identity @cert/@key that trusts @ca (file names in
 * CERTS_DIR, or NULL for plain tcp). A slow redial: a refused dial is
 * not tried again while a test runs, so each refusal is counted once. */
static tr_err
node_try(struct node *n, const char *name, const char *cert, const char *key,
	 const char *ca, const char *listen)
{
	memset(n, 0, sizeof(*n));
	if (cert != NULL) {
		n->pems[0] = pem(cert);
		n->pems[1] = pem(key);
		n->pems[2] = pem(ca);
	}
	tr_net_config cfg = { .size = sizeof(cfg),
			      .name = name,
			      .listen = listen,
			      .secret = secret,
			      .secret_len = strlen(secret),
			      .heartbeat_ms = 200,
			      .timeout_ms = 20000,
			      .reconnect_min_ms = 600000,
			      .reconnect_max_ms = 600000,
			      .tls_cert = n->pems[0],
			      .tls_key = n->pems[1],
			      .tls_ca = n->pems[2] };
	fx_start(&n->f, 2);
	tr_err err = tr_net_start(n->f.rt, &cfg, &n->net);
	if (err == TR_OK) {
		CHECK_OK(tr_net_address(n->net, n->addr, sizeof(n->addr)));
	}
	return err;
}

static void
node_start(struct node *n, const char *name, const char *cert, const char *key,
	   const char *ca)
{
	CHECK_OK(node_try(n, name, cert, key, ca,
			  cert != NULL ? "tls+tcp://127.0.0.1:0"
				       : "tcp://127.0.0.1:0"));
}

static void
node_free_pems(struct node *n)
{
	for (int i = 0; i < 3; i++) {
		free(n->pems[i]);
		n->pems[i] = NULL;
	}
}

static tr_net_node
peer_view(struct node *n, const char *peer)
{
	tr_net_node v[8], none;
	size_t k = tr_net_nodes(n->net, v, 8);

	memset(&none, 0, sizeof(none));
	for (size_t i = 0; i < k && i < 8; i++) {
		if (strcmp(v[i].name, peer) == 0) {
			return v[i];
		}
	}
	return none;
}

static bool
is_up(struct node *n, const char *peer)
{
	return peer_view(n, peer).state == TR_NET_UP;
}

static tr_net_stats
stats(struct node *n)
{
	tr_net_stats st;

	memset(&st, 0, sizeof(st));
	CHECK_OK(tr_net_stats_get(n->net, &st));
	return st;
}

static size_t
count_nodes(struct node *n)
{
	tr_net_node v[8];
	return tr_net_nodes(n->net, v, 8);
}

/* The refused count of the peers @n dialed (their names unknown). */
static uint64_t
peers_refused(struct node *n)
{
	tr_net_node v[8];
	size_t k = tr_net_nodes(n->net, v, 8);
	uint64_t sum = 0;

	for (size_t i = 0; i < k && i < 8; i++) {
		sum += v[i].refused;
	}
	return sum;
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
		v[i]->last = stats(v[i]);
		v[i]->last_peers_refused = peers_refused(v[i]);
	}
	for (size_t i = 0; i < n; i++) {
		tr_net_stop(v[i]->net);
	}
	for (size_t i = 0; i < n; i++) {
		check_final_metrics(v[i]->f.rt);
		tr_runtime_destroy(v[i]->f.rt);
		node_free_pems(v[i]);
	}
}

static tr_pid
carry(struct node *a, struct node *b, tr_pid p)
{
	unsigned char buf[TR_NET_PID_SIZE];
	tr_pid out = TR_PID_NONE;

	CHECK_OK(tr_net_pid_encode(a->net, p, buf));
	CHECK_OK(tr_net_pid_decode(b->net, buf, &out));
	return out;
}

enum { ECHO = 1 };

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const int *n = TR_MSG_AS(m, int);

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

/* @b dials @a; both see the other up. */
static void
link_up(struct node *a, const char *aname, struct node *b, const char *bname)
{
	CHECK_OK(tr_net_monitor_nodes(b->net, b->f.probe, true));
	CHECK_OK(tr_net_connect(b->net, a->addr));
	tr_net_node_event ev;
	CHECK(fx_recv(&b->f, TR_MSG_NET_NODEUP, &ev, sizeof(ev)));
	CHECK(strcmp(ev.name, aname) == 0);
	CHECK(WAIT_UNTIL(is_up(a, bname), FX_REPLY_MS));
	CHECK_OK(tr_net_monitor_nodes(b->net, b->f.probe, false));
}

/* A message and a request from @b to an echo actor on @a. */
static void
exchange(struct node *a, struct node *b)
{
	tr_ref ref;
	tr_pid e = carry(a, b, fx_spawn(&a->f, &echo_def, NULL));
	tr_ctx *cx = tr_inbox_ctx(b->f.ib);
	int n = 41, got = 0;

	CHECK_OK(tr_send(cx, e, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b->f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);
	n = 99;
	CHECK_OK(tr_request(cx, e, ECHO, &n, sizeof(n), 0, &ref));
	CHECK(fx_recv_ref(&b->f, ref, ECHO, e, &got, sizeof(got)));
	CHECK_EQ_INT(got, 100);
}

static void
cluster_pair(struct node *a, struct node *b)
{
	node_start(a, "alpha", "alpha.pem", "alpha.key", "ca.pem");
	node_start(b, "beta", "beta.pem", "beta.key", "ca.pem");
	CHECK(strncmp(a->addr, "tls+tcp://127.0.0.1:", 20) == 0);
	link_up(a, "alpha", b, "beta");
}

/* Two nodes of the cluster's CA: up over TLS, messages and requests
 * cross, nothing is refused. */
static void
test_send_and_request(void)
{
	struct node a, b;

	cluster_pair(&a, &b);
	exchange(&a, &b);
	exchange(&b, &a);
	CHECK(peer_view(&a, "beta").received > 0);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
	CHECK_EQ_U64(a.last.refused, 0);
	CHECK_EQ_U64(b.last.refused, 0);
}

/*
 * @bad dials alpha, whose TLS refuses it: alpha counts one refused
 * connection, @bad is never up there, no message of it reached alpha's
 * runtime, and beta's link works all along.
 */
static void
refused_by_alpha(struct node *bad, const char *badname)
{
	struct node a, b;

	cluster_pair(&a, &b);
	tr_metrics before = fx_metrics(&a.f);
	CHECK_OK(tr_net_connect(bad->net, a.addr));
	CHECK(WAIT_UNTIL(stats(&a).refused >= 1, FX_REPLY_MS));
	CHECK(!is_up(&a, badname));
	CHECK_EQ_U64(count_nodes(&a), 1); /* beta only */
	tr_metrics after = fx_metrics(&a.f);
	CHECK_EQ_U64(after.msgs_remote_in, before.msgs_remote_in);
	exchange(&a, &b);
	CHECK(is_up(&a, "beta") && is_up(&b, "alpha"));
	CHECK_EQ_U64(peer_view(&a, "beta").refused, 0);
	struct node *all[] = { &a, &b, bad };
	nodes_finish(all, 3);
	CHECK_EQ_U64(a.last.refused, 1);
	CHECK_EQ_U64(b.last.refused, 0);
}

/* A certificate another CA signed (its node trusts the cluster's CA,
 * so the refusal is alpha's). */
static void
test_unknown_ca(void)
{
	struct node c;

	node_start(&c, "gamma", "rogue.pem", "rogue.key", "ca.pem");
	refused_by_alpha(&c, "gamma");
	/* The refused side learns it from alpha's alert, or only from its
	 * hang-up (a TLS error then, or a plain close): 0 or 1, never
	 * under a name (it never learnt alpha's). */
	CHECK(c.last.refused <= 1);
	CHECK_EQ_U64(c.last_peers_refused, 0);
}

/* A certificate of the cluster's CA that expired in 2001. */
static void
test_expired(void)
{
	struct node c;

	node_start(&c, "gamma", "expired.pem", "expired.key", "ca.pem");
	refused_by_alpha(&c, "gamma");
	/* The refused side learns it from alpha's alert, or only from its
	 * hang-up (a TLS error then, or a plain close): 0 or 1, never
	 * under a name (it never learnt alpha's). */
	CHECK(c.last.refused <= 1);
	CHECK_EQ_U64(c.last_peers_refused, 0);
}

/* A plain tcp node dialing the TLS port: its hello is not TLS. */
static void
test_plain_peer(void)
{
	struct node c;

	node_start(&c, "gamma", NULL, NULL, NULL);
	/* It cannot dial tls+tcp; it dials the same port as tcp. */
	struct node a, b;
	cluster_pair(&a, &b);
	CHECK_ERR(tr_net_connect(c.net, a.addr), TR_EINVAL);
	char plain[200];
	snprintf(plain, sizeof(plain), "tcp://%.150s",
		 a.addr + strlen("tls+tcp://"));
	tr_metrics before = fx_metrics(&a.f);
	CHECK_OK(tr_net_connect(c.net, plain));
	CHECK(WAIT_UNTIL(stats(&a).refused >= 1, FX_REPLY_MS));
	CHECK(!is_up(&a, "gamma"));
	CHECK_EQ_U64(count_nodes(&a), 1);
	CHECK_EQ_U64(fx_metrics(&a.f).msgs_remote_in, before.msgs_remote_in);
	exchange(&a, &b);
	struct node *all[] = { &a, &b, &c };
	nodes_finish(all, 3);
	CHECK_EQ_U64(a.last.refused, 1);
	CHECK_EQ_U64(c.last.refused, 0); /* plain tcp: not its check */
}

/*
 * Pinned peers: each node trusts exactly the other's self-signed
 * certificate (no CA). delta and epsilon link up; a delta with a new key
 * (the same name, a certificate of another fingerprint) is refused by
 * epsilon.
 */
static void
test_pinned(void)
{
	struct node d, e, d2;

	node_start(&d, "delta", "pinned.pem", "pinned.key", "epsilon.pem");
	node_start(&e, "epsilon", "epsilon.pem", "epsilon.key", "pinned.pem");
	link_up(&d, "delta", &e, "epsilon");
	exchange(&d, &e);
	exchange(&e, &d);
	struct node *first[] = { &d };
	nodes_finish(first, 1);
	CHECK_EQ_U64(d.last.refused, 0);
	CHECK(WAIT_UNTIL(!is_up(&e, "delta"), FX_REPLY_MS));

	node_start(&d2, "delta", "changed.pem", "changed.key", "epsilon.pem");
	tr_metrics before = fx_metrics(&e.f);
	CHECK_OK(tr_net_connect(d2.net, e.addr));
	CHECK(WAIT_UNTIL(stats(&e).refused >= 1, FX_REPLY_MS));
	CHECK(!is_up(&e, "delta"));
	CHECK_EQ_U64(fx_metrics(&e.f).msgs_remote_in, before.msgs_remote_in);
	struct node *all[] = { &e, &d2 };
	nodes_finish(all, 2);
	CHECK_EQ_U64(e.last.refused, 1);
	CHECK(d2.last.refused <= 1);
	CHECK_EQ_U64(d2.last_peers_refused, 0);
}

/* Configurations that cannot make a TLS node. */
static void
test_bad_config(void)
{
	struct node n;
	char *cert = pem("alpha.pem"), *key = pem("alpha.key");
	const char *junk = "-----BEGIN CERTIFICATE-----\nnot base64\n"
			   "-----END CERTIFICATE-----\n";
	struct {
		const char *cert, *key, *ca, *listen;
	} bad[] = {
		{ cert, key, NULL, "tls+tcp://127.0.0.1:0" },
		{ NULL, NULL, cert, "tls+tcp://127.0.0.1:0" },
		{ junk, key, cert, "tls+tcp://127.0.0.1:0" },
		{ cert, key, junk, "tls+tcp://127.0.0.1:0" },
		{ cert, key, cert, "tcp://127.0.0.1:0" },
		{ NULL, NULL, NULL, "tls+tcp://127.0.0.1:0" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tr_net_config cfg = { .size = sizeof(cfg),
				      .name = "alpha",
				      .listen = bad[i].listen,
				      .secret = secret,
				      .secret_len = strlen(secret),
				      .tls_cert = bad[i].cert,
				      .tls_key = bad[i].key,
				      .tls_ca = bad[i].ca };
		tr_net *net = NULL;
		fx_start(&n.f, 1);
		CHECK_ERR(tr_net_start(n.f.rt, &cfg, &net), TR_EINVAL);
		CHECK(net == NULL);
		fx_finish(&n.f);
	}
	/* A TLS node dials no tcp:// URL. */
	node_start(&n, "alpha", "alpha.pem", "alpha.key", "ca.pem");
	CHECK_ERR(tr_net_connect(n.net, "tcp://127.0.0.1:1"), TR_EINVAL);
	struct node *all[] = { &n };
	nodes_finish(all, 1);
	free(cert);
	free(key);
}

static const struct test_case tests[] = {
	{ "send_and_request", test_send_and_request },
	{ "unknown_ca", test_unknown_ca },
	{ "expired", test_expired },
	{ "plain_peer", test_plain_peer },
	{ "pinned", test_pinned },
	{ "bad_config", test_bad_config },
	{ NULL, NULL },
};

TEST_MAIN(tests)
