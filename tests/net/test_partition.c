/*
 * A network partition between two nodes, and its heal. Two network
 * namespaces made for this test, joined by a veth pair: this process (node
 * A) lives in one, node_proc (node B) in the other, and nothing else is
 * in them. The partition takes both ends of the pair down, so each node
 * sees silence, not a reset: only heartbeats notice it. After a while
 * the pair comes back up; node A redials on its own.
 *
 * What must hold, as Erlang's distribution promises it:
 *   - a burst sent just before the partition is delivered at most once
 *     per message (some of it may be lost with the link, none twice);
 *   - while the peer is down, a send to it is refused at once
 *     (TR_EUNREACH, a counted dead letter);
 *   - after the heal the peer is up again in the same life (the process
 *     did not restart, so its pids stay valid) and everything sent
 *     afterwards arrives, once;
 *   - every message is counted on both sides: this process checks its
 *     own metrics, and node_proc exits 0 only if its own add up.
 *
 * It needs root, network namespaces and veth (iproute2); without them it is
 * skipped (exit 77) and says why. Nothing asserts a duration: every wait
 * is for an event, with FX_REPLY_MS as the failure.
 *
 *     test_partition NODE_PROC [NAME-FILTER]
 */
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>

#include "harness.h"
#include "fixture.h"
#include "procs.h"

enum {
	BURST = 500,  /* sent just before the partition */
	DURING = 50,  /* sent while the peer is down: all refused */
	AFTER = 1000, /* sent after the heal: all answered */
	TOTAL = BURST + AFTER,
};

#define ADDR_A "10.77.0.1"
#define ADDR_B "10.77.0.2"

/* Runs "ip ARGS..." quietly; true on success. */
static bool
ip(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int n = snprintf(cmd, sizeof(cmd), "ip ");

	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(cmd) - 20) {
		return false;
	}
	strcat(cmd, " >/dev/null 2>&1");
	return system(cmd) == 0;
}

/*
 * The namespaces are anonymous (unshare), so that nothing is mounted and
 * nothing outlives the test: this process makes its own (A) before any
 * thread starts, node_proc's child makes B before it execs, and the veth
 * pair, made from A with its other end moved into the child's namespace
 * by pid, goes away with them. The child waits on @go until its end is
 * there, then configures it and execs node_proc.
 */
static int ready[2] = { -1, -1 }, go[2] = { -1, -1 };

static bool
child_netns(void)
{
	char b = 0;

	if (unshare(CLONE_NEWNET) != 0 || write(ready[1], &b, 1) != 1 ||
	    read(go[0], &b, 1) != 1 || b != 1) {
		return false;
	}
	return ip("addr add " ADDR_B "/30 dev vb") && ip("link set lo up") &&
	       ip("link set vb up");
}

static bool
parent_netns(pid_t child)
{
	char b = 0;

	if (read(ready[0], &b, 1) != 1) {
		return false; /* the child ended before its namespace */
	}
	b = ip("link add va type veth peer name vb netns %d", (int)child) &&
	    ip("addr add " ADDR_A "/30 dev va") && ip("link set va up");
	return write(go[1], &b, 1) == 1 && b == 1;
}

/*
 * The partition: this side of the pair down (@up false), or up again.
 * Node B's end stays up and sends into a pair whose other end is down,
 * so its packets vanish: silence, which only heartbeats notice. This
 * side loses its route to B, so its own packets go nowhere either.
 */
static bool
pair_set(bool up)
{
	return ip("link set va %s", up ? "up" : "down");
}

/* What came back: one count per number sent, and the node events. */
struct tally {
	uint8_t seen[TOTAL];
	int dups;
	int strays;
	int ups, downs;
	uint32_t up_creation;
};

/* Takes one message from the probe into @t; false on a timeout. */
static bool
take(struct node *n, struct tally *t, int64_t ms)
{
	tr_received r;

	memset(&r, 0, sizeof(r));
	if (tr_inbox_recv(n->f.ib, NULL, ms, &r) != TR_OK) {
		return false;
	}
	const int *v = TR_MSG_AS(&r, int);
	const tr_net_node_event *ev = TR_MSG_AS(&r, tr_net_node_event);
	if (r.type == ECHO && v != NULL && *v >= 1 && *v <= TOTAL) {
		if (t->seen[*v - 1]++ != 0) {
			t->dups++;
		}
	} else if (r.type == TR_MSG_NET_NODEDOWN && ev != NULL) {
		CHECK_STR(ev->name, "node-b");
		CHECK_EQ_INT(ev->reason, TR_EXIT_NOCONNECTION);
		t->downs++;
	} else if (r.type == TR_MSG_NET_NODEUP && ev != NULL) {
		CHECK_STR(ev->name, "node-b");
		t->up_creation = ev->creation;
		t->ups++;
	} else {
		fprintf(stderr, "  unexpected message type %u size %zu\n",
			r.type, r.size);
		t->strays++;
	}
	tr_received_fini(&r);
	return true;
}

/* Takes messages until @done holds of @t, or FX_REPLY_MS passes. */
static bool
take_until(struct node *n, struct tally *t, bool (*done)(const struct tally *))
{
	uint64_t deadline = harness_now_ms() + FX_REPLY_MS;

	while (!done(t)) {
		uint64_t now = harness_now_ms();
		if (now >= deadline || !take(n, t, (int64_t)(deadline - now))) {
			return false;
		}
	}
	return true;
}

static bool
is_down(const struct tally *t)
{
	return t->downs == 1;
}

static bool
is_up_again(const struct tally *t)
{
	return t->ups == 1;
}

static bool
all_after(const struct tally *t)
{
	for (int i = BURST; i < TOTAL; i++) {
		if (t->seen[i] == 0) {
			return false;
		}
	}
	return true;
}

/* ECHO n for each n in [from, to): each is answered with n + 1. */
static void
send_range(struct node *n, tr_pid e, int from, int to, tr_err want)
{
	for (int v = from; v < to; v++) {
		tr_err err =
			tr_send(tr_inbox_ctx(n->f.ib), e, ECHO, &v, sizeof(v));
		if (err != want) {
			fprintf(stderr, "  send %d: %s, want %s\n", v,
				tr_err_name(err), tr_err_name(want));
			CHECK(false);
			return;
		}
	}
}

static void
test_partition_and_heal(void)
{
	static struct tally t;
	struct child c;
	struct node n;
	uint32_t life = 0;

	static const struct child_hooks hooks = { child_netns, parent_netns };

	memset(&t, 0, sizeof(t));
	if (pipe(ready) != 0 || pipe(go) != 0) {
		CHECK(false);
		return;
	}
	if (!child_start_with(&c, "node-b", "tcp://" ADDR_B ":7411", &hooks)) {
		return;
	}
	/* A node that only dials: after the heal, it is the one that
	 * reconnects. */
	node_start_at(&n, "node-a", NULL);
	tr_pid e = connect_child(&n, &c, "node-b", &life);
	echo_ok(&n, e, 0);

	/* The burst, then the partition before its answers are in. */
	send_range(&n, e, 0, BURST, TR_OK);
	CHECK(pair_set(false));
	CHECK(take_until(&n, &t, is_down));

	/* Down: refused at once, counted. */
	send_range(&n, e, TOTAL, TOTAL + DURING, TR_EUNREACH);

	/* Give node B time to notice the silence too (its own heartbeat
	 * timeout), then heal. The wait only makes the case the test is
	 * about likely; nothing depends on its length. */
	harness_nap_us(3 * 1000 * atoi(TIMEOUT_MS));
	CHECK(pair_set(true));
	CHECK(take_until(&n, &t, is_up_again));
	CHECK_EQ_U64(t.up_creation, life);

	/* Same life: the old pid works, and everything sent now arrives. */
	send_range(&n, e, BURST, TOTAL, TR_OK);
	CHECK(take_until(&n, &t, all_after));
	echo_ok(&n, e, 1);
	CHECK_OK(tr_runtime_wait_idle(n.f.rt, FX_REPLY_MS));
	while (take(&n, &t, 200)) {
	}
	CHECK_EQ_INT(t.dups, 0);
	CHECK_EQ_INT(t.strays, 0);
	CHECK_EQ_INT(t.downs, 1);
	CHECK_EQ_INT(t.ups, 1);
	int burst = 0;
	for (int i = 0; i < BURST; i++) {
		burst += t.seen[i];
	}
	fprintf(stderr,
		"  %d of the burst of %d answered before the "
		"partition\n",
		burst, BURST);

	node_finish(&n);
	child_term(&c);
	child_kill(&c);
	for (int i = 0; i < 2; i++) {
		(void)close(ready[i]);
		(void)close(go[i]);
	}
}

static const struct test_case tests[] = {
	{ "partition: partition_and_heal", test_partition_and_heal },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
			"usage: test_partition NODE_PROC [NAME-FILTER]\n");
		return 2;
	}
	node_proc = argv[1];
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0) {
		printf("skipped: network namespaces need root\n");
		return 77;
	}
	/* Namespace A, before any thread starts: each inherits it. */
	if (unshare(CLONE_NEWNET) != 0 || !ip("link set lo up") ||
	    !ip("link add vt0 type veth peer name vt1") ||
	    !ip("link del vt0")) {
		printf("skipped: this machine cannot make a network namespace "
		       "with a veth pair (unshare, ip link ... type veth)\n");
		return 77;
	}
	return harness_run(tests, argc - 1, argv + 1);
}
