/*
 * Nodes over loopback TCP, several in one process (each its own runtime
 * and libtroupe-net node): links come up after the handshake, remote
 * sends keep their sender and their per-pair order, requests, monitors
 * and links work across, losing a link gives each of them
 * TR_EXIT_NOCONNECTION once, a wrong secret or garbage on the port is
 * refused and counted while the node keeps serving its peers, and every
 * message is counted on both sides. Nothing here depends on timing: each
 * wait is for an event, with FX_REPLY_MS as the failure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <troupe/troupe.h>
#include <troupe/net/net.h>
#include <troupe/remote.h>

#include "harness.h"
#include "fixture.h"
#include "net/handshake.h"
#include "net/wire.h"

static const char secret[] = "a cluster secret of some length";

struct node {
	struct fx f;
	tr_net *net;
	char addr[160];
};

static void
node_start(struct node *n, const char *name, const char *key)
{
	tr_net_config cfg = { .size = sizeof(cfg),
			      .name = name,
			      .listen = "tcp://127.0.0.1:0",
			      .secret = key,
			      .secret_len = strlen(key),
			      .heartbeat_ms = 200,
			      .timeout_ms = 20000 };

	memset(n, 0, sizeof(*n));
	fx_start(&n->f, 2);
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

/* Stop every runtime first (the last DOWNs and exit signals still
 * cross), then the nodes, then check the counts and destroy. */
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

/* ---- actors ---- */

enum {
	ECHO = 1, /* int: answer n + 1 (a reply to a request) */
	HOLD,     /* a request kept unanswered */
	WATCH,    /* tr_pid: monitor it and report the DOWN to the sender */
	WATCHED,  /* tr_down, watcher -> probe */
	SEQ,      /* struct seq */
	COUNT,    /* request: answer with struct tally */
	GO,       /* struct go: a sender's orders */
	BIG,      /* any bytes: answer struct sum */
	FLOOD,    /* FLOOD_SIZE bytes, a sequence number first */
};

struct sum {
	uint64_t size;
	uint64_t sum;
};

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const int *n = TR_MSG_AS(m, int);

	if (m->type == HOLD) {
		return;
	}
	if (m->type == BIG) {
		struct sum r = { m->size, 0 };
		for (size_t i = 0; i < m->size; i++) {
			r.sum += ((const unsigned char *)m->data)[i];
		}
		CHECK_OK(tr_send(cx, m->from, BIG, &r, sizeof(r)));
		return;
	}
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

#define SENDERS    4
#define PER_SENDER 5000

struct seq {
	uint32_t id;
	uint32_t n;
};

struct tally {
	uint64_t total;
	uint64_t out_of_order;
};

struct collector {
	uint32_t next[SENDERS];
	struct tally t;
};

static void
collector_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct collector *c = state;

	if (m->type == COUNT) {
		CHECK_OK(tr_reply(cx, m, COUNT, &c->t, sizeof(c->t)));
		return;
	}
	const struct seq *s = TR_MSG_AS(m, struct seq);
	if (m->type != SEQ || s == NULL || s->id >= SENDERS) {
		CHECK(false);
		return;
	}
	if (s->n != c->next[s->id]) {
		c->t.out_of_order++;
	}
	c->next[s->id] = s->n + 1;
	c->t.total++;
}

static const tr_actor_def collector_def = {
	.size = sizeof(tr_actor_def),
	.name = "collector",
	.state_size = sizeof(struct collector),
	.handle = collector_handle,
};

struct go {
	tr_pid to;
	uint32_t id;
	uint32_t next;
	uint32_t refused;
};

static void
sender_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct go *s = state;
	const struct go *g = TR_MSG_AS(m, struct go);

	if (g != NULL && tr_pid_is_none(s->to)) {
		*s = *g;
	}
	while (s->next < PER_SENDER) {
		struct seq v = { s->id, s->next };
		tr_err err = tr_send(cx, s->to, SEQ, &v, sizeof(v));
		if (err == TR_EUNREACH) {
			/* The link's queue is full: try again next turn. */
			s->refused++;
			CHECK_OK(tr_send(cx, tr_self(cx), GO, NULL, 0));
			return;
		}
		CHECK_OK(err);
		s->next++;
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

/* ---- tests ---- */

static void
connect_pair(struct node *a, struct node *b)
{
	node_start(a, "alpha", secret);
	node_start(b, "beta", secret);
	CHECK_OK(tr_net_monitor_nodes(b->net, b->f.probe, true));
	CHECK_OK(tr_net_connect(b->net, a->addr));
	tr_net_node_event ev;
	CHECK(fx_recv(&b->f, TR_MSG_NET_NODEUP, &ev, sizeof(ev)));
	CHECK(strcmp(ev.name, "alpha") == 0 && ev.creation != 0);
	CHECK(WAIT_UNTIL(is_up(a, "beta"), FX_REPLY_MS));
	CHECK(is_up(b, "alpha"));
}

/* Up after the handshake; a send carries its sender; a request gets
 * its reply; each side counts what crossed. */
static void
test_send_and_request(void)
{
	struct node a, b;
	tr_ref ref;

	connect_pair(&a, &b);
	tr_pid e = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	tr_ctx *cx = tr_inbox_ctx(b.f.ib);
	int n = 41, got = 0;
	CHECK_OK(tr_send(cx, e, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);
	CHECK_OK(tr_request(cx, e, ECHO, &n, sizeof(n), 0, &ref));
	CHECK(fx_recv_ref(&b.f, ref, ECHO, e, &got, sizeof(got)));
	CHECK_EQ_INT(got, 42);
	/* A large message goes in chunks and arrives whole. */
	size_t big = 300 * 1000 + 7;
	unsigned char *v = malloc(big);
	struct sum want = { big, 0 }, sum = { 0, 0 };
	CHECK(v != NULL);
	tr_metrics before = fx_metrics(&a.f);
	if (v != NULL) {
		for (size_t i = 0; i < big; i++) {
			v[i] = (unsigned char)(i * 7 + 3);
			want.sum += v[i];
		}
		CHECK_OK(tr_send(cx, e, BIG, v, big));
		CHECK(fx_recv(&b.f, BIG, &sum, sizeof(sum)));
		CHECK_EQ_U64(sum.size, want.size);
		CHECK_EQ_U64(sum.sum, want.sum);
		free(v);
	}
	CHECK(before.msgs_remote_in > 0);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* Order per sender->receiver pair under load from several senders. */
static void
test_order_under_load(void)
{
	struct node a, b;
	tr_ref ref;

	connect_pair(&a, &b);
	tr_pid col_a = fx_spawn(&a.f, &collector_def, NULL);
	tr_pid col = carry(&a, &b, col_a);
	for (uint32_t i = 0; i < SENDERS; i++) {
		struct go g = { col, i, 0, 0 };
		tr_pid s = fx_spawn(&b.f, &sender_def, NULL);
		SEND(&b.f, s, GO, &g, sizeof(g));
	}
	struct tally t = { 0, 0 };
	uint64_t want = (uint64_t)SENDERS * PER_SENDER;
	uint64_t deadline = harness_now_ms() + FX_REPLY_MS;
	while (t.total < want && harness_now_ms() < deadline) {
		CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
		CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
		CHECK_OK(tr_request(tr_inbox_ctx(a.f.ib), col_a, COUNT, NULL, 0,
				    0, &ref));
		CHECK(fx_recv_ref(&a.f, ref, COUNT, col_a, &t, sizeof(t)));
	}
	CHECK_EQ_U64(t.total, want);
	CHECK_EQ_U64(t.out_of_order, 0);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* Monitors across nodes; and losing the link gives each monitor and
 * request its one outcome, TR_EXIT_NOCONNECTION, and a NODEDOWN. */
static void
test_monitor_and_link_loss(void)
{
	struct node a, b;
	tr_ref ref;
	tr_down d;

	connect_pair(&a, &b);
	tr_pid e1 = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	tr_pid e2 = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	tr_pid w = fx_spawn(&b.f, &watcher_def, NULL);
	SEND(&b.f, w, WATCH, &e1, sizeof(e1));
	SEND(&b.f, w, WATCH, &e2, sizeof(e2));
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	/* A stop across the link: the DOWN carries the reason. */
	CHECK_OK(tr_stop(tr_inbox_ctx(b.f.ib), e1, 71));
	memset(&d, 0, sizeof(d));
	CHECK(fx_recv(&b.f, WATCHED, &d, sizeof(d)));
	CHECK(d.reason == 71 && tr_pid_eq(d.who, e1));

	CHECK_OK(tr_request(tr_inbox_ctx(b.f.ib), e2, HOLD, NULL, 0, 0, &ref));
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_net_disconnect(b.net, "alpha"));
	tr_received r;
	memset(&r, 0, sizeof(r));
	CHECK_OK(tr_inbox_recv(b.f.ib, &ref, FX_REPLY_MS, &r));
	const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
	CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
	      fl->reason == TR_EXIT_NOCONNECTION);
	tr_received_fini(&r);
	/* The DOWN and the NODEDOWN, in either order. */
	bool down = false, nodedown = false;
	for (int i = 0; i < 2; i++) {
		memset(&r, 0, sizeof(r));
		CHECK_OK(tr_inbox_recv(b.f.ib, NULL, FX_REPLY_MS, &r));
		if (r.type == WATCHED) {
			const tr_down *x = TR_MSG_AS(&r, tr_down);
			down = x != NULL && x->reason == TR_EXIT_NOCONNECTION &&
			       tr_pid_eq(x->who, e2);
		} else if (r.type == TR_MSG_NET_NODEDOWN) {
			const tr_net_node_event *ev =
				TR_MSG_AS(&r, tr_net_node_event);
			nodedown = ev != NULL &&
				   strcmp(ev->name, "alpha") == 0 &&
				   ev->reason == TR_EXIT_NOCONNECTION;
		}
		tr_received_fini(&r);
	}
	CHECK(down && nodedown);
	/* Once only, and a send to the node now is a dead letter. */
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&b.f, 50));
	int n = 0;
	CHECK_ERR(tr_send(tr_inbox_ctx(b.f.ib), e2, ECHO, &n, sizeof(n)),
		  TR_EUNREACH);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* A wrong secret is refused and counted; garbage, a length claiming
 * 4 GiB and a silent connection on the port too; the node keeps its
 * authenticated peer all along. */
static void
test_refusals(void)
{
	struct node a, b, c;
	tr_net_stats st;

	connect_pair(&a, &b);
	node_start(&c, "gamma", "another secret, not the cluster's");
	CHECK_OK(tr_net_connect(c.net, a.addr));
	CHECK(WAIT_UNTIL(tr_net_stats_get(a.net, &st) == TR_OK &&
				 st.refused >= 1,
			 FX_REPLY_MS));
	CHECK(!is_up(&a, "gamma"));

	/* Raw sockets: garbage, then a 4 GiB length prefix. */
	int port = atoi(strrchr(a.addr, ':') + 1);
	const unsigned char junk[2][8] = {
		{ 'G', 'E', 'T', ' ', '/', 0, 0, 0 },
		{ 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4 },
	};
	for (int i = 0; i < 2; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)port) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CHECK(write(s, junk[i], sizeof(junk[i])) ==
		      (ssize_t)sizeof(junk[i]));
		/* The node closes it: read() ends (after its hello). */
		char buf[512];
		ssize_t got;
		while ((got = read(s, buf, sizeof(buf))) > 0) {
		}
		CHECK(got == 0);
		close(s);
	}
	CHECK(WAIT_UNTIL(tr_net_stats_get(a.net, &st) == TR_OK &&
				 st.refused >= 3,
			 FX_REPLY_MS));
	/* The authenticated peer still works. */
	tr_pid e = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	int n = 1, got = 0;
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), e, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 2);
	CHECK(is_up(&a, "beta"));
	struct node *all[] = { &a, &b, &c };
	nodes_finish(all, 3);
}

/* A node that comes back under its name is a new life: its old pids are
 * stale, so a send to one is a dead letter; new pids work. */
static void
test_new_life(void)
{
	struct node a, b, a2;

	connect_pair(&a, &b);
	tr_pid old = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	struct node *first[] = { &a };
	nodes_finish(first, 1);
	tr_net_node_event ev;
	CHECK(fx_recv(&b.f, TR_MSG_NET_NODEDOWN, &ev, sizeof(ev)));

	node_start(&a2, "alpha", secret);
	CHECK_OK(tr_net_connect(b.net, a2.addr));
	CHECK(fx_recv(&b.f, TR_MSG_NET_NODEUP, &ev, sizeof(ev)));
	int n = 1, got = 0;
	CHECK_ERR(tr_send(tr_inbox_ctx(b.f.ib), old, ECHO, &n, sizeof(n)),
		  TR_EUNREACH);
	tr_pid e = carry(&a2, &b, fx_spawn(&a2.f, &echo_def, NULL));
	CHECK(!tr_pid_eq(e, old));
	CHECK_OK(tr_send(tr_inbox_ctx(b.f.ib), e, ECHO, &n, sizeof(n)));
	CHECK(fx_recv(&b.f, ECHO, &got, sizeof(got)));
	CHECK_EQ_INT(got, 2);
	struct node *all[] = { &a2, &b };
	nodes_finish(all, 2);
}

/*
 * Thousands of requests in flight on one link, half answered in any
 * order and half held: losing the link fails exactly the held ones, each
 * once. (The link's index of what crossed it drops each answered one.)
 */
static void
test_many_in_flight(void)
{
	struct node a, b;
	enum { N = 3000 };
	static tr_ref held[N];
	tr_ref ref;

	connect_pair(&a, &b);
	tr_pid e = carry(&a, &b, fx_spawn(&a.f, &echo_def, NULL));
	tr_ctx *cx = tr_inbox_ctx(b.f.ib);
	for (int i = 0; i < N; i++) {
		CHECK_OK(tr_request(cx, e, ECHO, &i, sizeof(i), 0, &ref));
		CHECK_OK(tr_request(cx, e, HOLD, NULL, 0, 0, &held[i]));
	}
	int answers = 0;
	long sum = 0;
	while (answers < N) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(b.f.ib, NULL, FX_REPLY_MS, &r) != TR_OK) {
			break;
		}
		const int *v = TR_MSG_AS(&r, int);
		CHECK(r.type == ECHO && v != NULL);
		sum += v != NULL ? *v : 0;
		answers++;
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(answers, N);
	CHECK_EQ_U64(sum, (uint64_t)N * (N + 1) / 2);
	CHECK_OK(tr_runtime_wait_idle(a.f.rt, FX_REPLY_MS));
	CHECK_OK(tr_net_disconnect(b.net, "alpha"));
	int failed = 0, nodedown = 0;
	while (failed < N || nodedown < 1) {
		tr_received r;
		memset(&r, 0, sizeof(r));
		if (tr_inbox_recv(b.f.ib, NULL, FX_REPLY_MS, &r) != TR_OK) {
			break;
		}
		const tr_request_failed *fl = TR_MSG_AS(&r, tr_request_failed);
		if (r.type == TR_MSG_NET_NODEDOWN) {
			nodedown++;
		} else {
			CHECK(r.type == TR_MSG_REQUEST_FAILED && fl != NULL &&
			      fl->reason == TR_EXIT_NOCONNECTION);
			/* One of the held, and each once. */
			int k = 0;
			while (k < N && held[k].v != r.ref.v) {
				k++;
			}
			CHECK(k < N);
			if (k < N) {
				held[k].v = 0;
			}
			failed++;
		}
		tr_received_fini(&r);
	}
	CHECK_EQ_INT(failed, N);
	CHECK_EQ_INT(nodedown, 1);
	CHECK_OK(tr_runtime_wait_idle(b.f.rt, FX_REPLY_MS));
	CHECK(fx_recv_none(&b.f, 50));
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

/* ---- a peer written by hand, on a raw socket ---- */

static bool
write_all(int s, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(s, c, n);
		if (k <= 0) {
			return false;
		}
		c += k;
		n -= (size_t)k;
	}
	return true;
}

static bool
read_all(int s, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t k = read(s, c, n);
		if (k <= 0) {
			return false;
		}
		c += k;
		n -= (size_t)k;
	}
	return true;
}

/* One length-prefixed message of at most @cap bytes; its length or 0. */
static size_t
read_msg(int s, uint8_t *buf, size_t cap)
{
	uint8_t h[4];

	if (!read_all(s, h, 4)) {
		return 0;
	}
	size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
		     (size_t)h[3] << 24;
	return len <= cap && read_all(s, buf, len) ? len : 0;
}

static void
prefix(uint8_t *p, size_t len)
{
	p[0] = (uint8_t)len;
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 24);
}

/* A batch of one SEND of ECHO n to @to (its local part), prefixed. */
static size_t
echo_batch(uint8_t *out, uint64_t to, int n)
{
	trn_buf b;
	trn_frame f = { .kind = TRN_SEND, .type = ECHO };
	size_t len = 0;

	f.from = trn_wpid(TRN_TAG_SENDER, 77);
	f.to = trn_wpid(TRN_TAG_RECEIVER, to);
	f.body = (const uint8_t *)&n;
	f.body_len = sizeof(n);
	trn_buf_init(&b, 1024);
	CHECK_EQ_INT(trn_frame_append(&b, &f), TRN_OK);
	if (b.len > 0 && b.len <= 256) {
		prefix(out, b.len);
		memcpy(out + 4, b.data, b.len);
		len = 4 + b.len;
	}
	trn_buf_fini(&b);
	return len;
}

/*
 * What a link reads is a byte stream: a hello that comes a byte at a
 * time, two batches in one write, a batch cut inside its length prefix
 * and inside its body are each read whole, in order, and nothing is
 * refused. The peer is written by hand on a raw socket with the wire and
 * handshake code.
 */
static void
test_stream_cut_anywhere(void)
{
	struct node a;
	uint8_t buf[4096];
	trn_hello mine, theirs;
	uint8_t mac[TRN_MAC_SIZE];
	char *text = NULL;
	size_t len = 0;
	tr_net_stats st;

	node_start(&a, "alpha", secret);
	tr_pid e = fx_spawn(&a.f, &echo_def, NULL);
	int port = atoi(strrchr(a.addr, ':') + 1);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { FX_REPLY_MS / 1000, 0 };
	CHECK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);

	/* The handshake: our hello a byte at a time. */
	CHECK_EQ_INT(trn_hello_init(&mine, "delta", 1), TRN_HS_OK);
	CHECK_EQ_INT(trn_hello_encode(&mine, &text, &len), TRN_HS_OK);
	prefix(buf, len);
	memcpy(buf + 4, text, len);
	free(text);
	for (size_t i = 0; i < len + 4; i++) {
		CHECK(write_all(s, buf + i, 1));
	}
	size_t n = read_msg(s, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_EQ_INT(trn_hello_parse((const char *)buf, n, &theirs), TRN_HS_OK);
	CHECK_EQ_INT(trn_hs_mac(secret, strlen(secret), TRN_ROLE_DIALER, &mine,
				&theirs, mac),
		     TRN_HS_OK);
	CHECK_EQ_INT(trn_response_encode(mac, &text, &len), TRN_HS_OK);
	prefix(buf, len);
	memcpy(buf + 4, text, len);
	free(text);
	CHECK(write_all(s, buf, len + 4));
	n = read_msg(s, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_EQ_INT(trn_response_parse((const char *)buf, n, mac), TRN_HS_OK);
	CHECK_EQ_INT(trn_hs_verify(secret, strlen(secret), TRN_ROLE_LISTENER,
				   &mine, &theirs, mac),
		     TRN_HS_OK);
	CHECK(WAIT_UNTIL(is_up(&a, "delta"), FX_REPLY_MS));

	/* Two batches in one write, then one cut twice. */
	uint64_t to = tr_remote_pid_local(e);
	size_t l1 = echo_batch(buf, to, 1);
	size_t l2 = echo_batch(buf + l1, to, 2);
	CHECK(l1 > 0 && l2 > 0);
	CHECK(write_all(s, buf, l1 + l2));
	size_t l3 = echo_batch(buf, to, 3);
	CHECK(l3 > 10);
	CHECK(write_all(s, buf, 2));
	harness_nap_us(2000);
	CHECK(write_all(s, buf + 2, 8));
	harness_nap_us(2000);
	CHECK(write_all(s, buf + 10, l3 - 10));

	/* The answers, in order (heartbeats aside). */
	int want = 2;
	while (want <= 4 && (n = read_msg(s, buf, sizeof(buf))) > 0) {
		trn_reader r;
		trn_frame f;
		trn_reader_init(&r, buf, n, TRN_BODY_MAX_DEFAULT, NULL);
		while (trn_reader_next(&r, &f) == 1) {
			if (f.kind != TRN_SEND) {
				continue;
			}
			int v = 0;
			CHECK_EQ_INT(f.type, ECHO);
			CHECK_EQ_U64(f.body_len, sizeof(v));
			if (f.body_len == sizeof(v)) {
				memcpy(&v, f.body, sizeof(v));
			}
			CHECK_EQ_INT(v, want);
			CHECK_EQ_U64(f.to, trn_wpid(TRN_TAG_RECEIVER, 77));
			want++;
		}
	}
	CHECK_EQ_INT(want, 5);
	CHECK_OK(tr_net_stats_get(a.net, &st));
	CHECK_EQ_U64(st.frames_refused, 0);
	close(s);
	struct node *all[] = { &a };
	nodes_finish(all, 1);
}

/*
 * A peer floods a node whose workers are all busy. The node's link hands
 * its actor RX_PENDING_MAX reads and then stops reading (it would read
 * the whole flood into memory otherwise), so the flood waits in the
 * peer's link, which holds the flooder back. Once the workers are free,
 * every message arrives once, in order.
 */
enum { FLOOD_N = 3000, FLOOD_SIZE = 16 * 1024, FLOOD_READS_MAX = 16 };

static _Atomic uint32_t flood_got, flood_disorder, stalled;
static atomic_bool stall_release;

static void
staller_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	(void)m;
	atomic_fetch_add(&stalled, 1);
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

static void
sink_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	uint32_t n;

	CHECK(m->type == FLOOD && m->size == FLOOD_SIZE);
	if (m->type != FLOOD || m->size != FLOOD_SIZE) {
		return;
	}
	memcpy(&n, m->data, sizeof(n));
	if (n != atomic_load(&flood_got)) {
		atomic_fetch_add(&flood_disorder, 1);
	}
	atomic_fetch_add(&flood_got, 1);
}

static const tr_actor_def sink_def = {
	.size = sizeof(tr_actor_def),
	.name = "sink",
	.handle = sink_handle,
};

struct flooder {
	tr_pid to;
	uint32_t next;
	unsigned char buf[FLOOD_SIZE];
};

static void
flooder_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct flooder *s = state;
	const tr_pid *to = TR_MSG_AS(m, tr_pid);

	if (to != NULL) {
		s->to = *to;
	}
	while (s->next < FLOOD_N) {
		memcpy(s->buf, &s->next, sizeof(s->next));
		tr_err err = tr_send(cx, s->to, FLOOD, s->buf, sizeof(s->buf));
		if (err == TR_EUNREACH) {
			/* The link's queue is full: try again next turn. */
			CHECK_OK(tr_send(cx, tr_self(cx), GO, NULL, 0));
			return;
		}
		CHECK_OK(err);
		s->next++;
		if (s->next < FLOOD_N && tr_should_yield(cx)) {
			CHECK_OK(tr_send(cx, tr_self(cx), GO, NULL, 0));
			return;
		}
	}
}

static const tr_actor_def flooder_def = {
	.size = sizeof(tr_actor_def),
	.name = "flooder",
	.state_size = sizeof(struct flooder),
	.handle = flooder_handle,
};

static uint64_t
holds_of(struct node *n)
{
	tr_net_stats st;

	CHECK_OK(tr_net_stats_get(n->net, &st));
	return st.holds;
}

static void
test_flood_of_a_busy_node(void)
{
	struct node a, b;

	atomic_store(&flood_got, 0);
	atomic_store(&flood_disorder, 0);
	atomic_store(&stalled, 0);
	atomic_store(&stall_release, false);
	connect_pair(&a, &b);
	tr_pid to = carry(&a, &b, fx_spawn(&a.f, &sink_def, NULL));
	/* Both of A's workers busy (the second staller is taken from the
	 * first one's stuck worker by the other). */
	for (int i = 0; i < 2; i++) {
		SEND(&a.f, fx_spawn(&a.f, &staller_def, NULL), GO, NULL, 0);
	}
	CHECK(WAIT_UNTIL(atomic_load(&stalled) == 2, FX_REPLY_MS));
	uint64_t handed0 = fx_metrics(&a.f).msgs_sent;
	tr_pid fl = fx_spawn(&b.f, &flooder_def, NULL);
	SEND(&b.f, fl, GO, &to, sizeof(to));
	/* 48 MiB do not fit in A's reads, the sockets and B's link. */
	CHECK(WAIT_UNTIL(holds_of(&b) > 0, FX_REPLY_MS));
	uint64_t handed = fx_metrics(&a.f).msgs_sent - handed0;
	CHECK(handed <= FLOOD_READS_MAX);
	atomic_store(&stall_release, true);
	CHECK(WAIT_UNTIL(atomic_load(&flood_got) == FLOOD_N, FX_REPLY_MS));
	CHECK_EQ_U64(atomic_load(&flood_got), FLOOD_N);
	CHECK_EQ_U64(atomic_load(&flood_disorder), 0);
	struct node *all[] = { &a, &b };
	nodes_finish(all, 2);
}

static const struct test_case tests[] = {
	{ "send_and_request", test_send_and_request },
	{ "order_under_load", test_order_under_load },
	{ "monitor_and_link_loss", test_monitor_and_link_loss },
	{ "refusals", test_refusals },
	{ "new_life", test_new_life },
	{ "stream_cut_anywhere", test_stream_cut_anywhere },
	{ "many_in_flight", test_many_in_flight },
	{ "flood_of_a_busy_node", test_flood_of_a_busy_node },
	{ NULL, NULL },
};

TEST_MAIN(tests)
