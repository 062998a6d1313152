/*
 * Nodes as processes, for the tests that need them (test_procs.c,
 * test_partition.c): node_proc as a child, started, read, frozen, killed
 * or stopped gracefully, and a node in the test's own process to talk to
 * it. The including file defines node_proc (node_proc's path) and the
 * enum of message types whose ECHO node_proc's echo actor answers.
 */
#ifndef TR_TESTS_NET_PROCS_H
#define TR_TESTS_NET_PROCS_H

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

static const char secret[] = "a cluster secret of some length";
static const char *node_proc; /* set by main() */

/* What node_proc's echo actor understands. */
enum {
	ECHO = 1,   /* int n: answered with n + 1 */
	HOLD,       /* a request it never answers */
	PROCS_FREE, /* the first type free for the including test */
};

#define HEARTBEAT_MS "100"
#define TIMEOUT_MS   "600"

/* The child's silence timeout: a test that freezes the child without
 * losing the link makes it long. */
static const char *child_timeout_ms = TIMEOUT_MS;

/* ---- the child ---- */

struct child {
	pid_t pid; /* 0: none */
	char addr[160];
	unsigned char echo[TR_NET_PID_SIZE]; /* tr_net_pid_encode() bytes */
};

static inline int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9') {
		return ch - '0';
	}
	if (ch >= 'a' && ch <= 'f') {
		return ch - 'a' + 10;
	}
	return -1;
}

/* Reads the child's line "ADDRESS PID-HEX\n" from @fd. */
static inline bool
child_line(struct child *c, int fd)
{
	char line[512];
	size_t len = 0;
	uint64_t deadline = harness_now_ms() + FX_REPLY_MS;

	while (len == 0 || line[len - 1] != '\n') {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = harness_now_ms();
		if (len == sizeof(line) - 1 || now >= deadline) {
			return false;
		}
		int r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return false;
		}
		ssize_t got = read(fd, line + len, sizeof(line) - 1 - len);
		if (got <= 0) {
			return false; /* the child ended before its line */
		}
		len += (size_t)got;
	}
	line[len - 1] = '\0';
	char *hex = strchr(line, ' ');
	if (hex == NULL || strlen(hex + 1) != 2 * TR_NET_PID_SIZE ||
	    (size_t)(hex - line) >= sizeof(c->addr)) {
		return false;
	}
	memcpy(c->addr, line, (size_t)(hex - line));
	c->addr[hex - line] = '\0';
	hex++;
	for (size_t i = 0; i < TR_NET_PID_SIZE; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			return false;
		}
		c->echo[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static inline void child_kill(struct child *c);

/*
 * What a test may do around the fork (NULL for nothing): @in_child runs
 * in the child before it execs node_proc (a false return ends it), and
 * @in_parent in this process right after the fork, with the child's pid
 * (a false return fails the start).
 */
struct child_hooks {
	bool (*in_child)(void);
	bool (*in_parent)(pid_t child);
};

/* Starts node_proc as node @name listening on @listen. */
static inline bool
child_start_with(struct child *c, const char *name, const char *listen,
		 const struct child_hooks *h)
{
	int fds[2];

	memset(c, 0, sizeof(*c));
	if (pipe(fds) != 0) {
		CHECK(false);
		return false;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls until exec (and a hook,
		 * which runs before this process has a second thread). */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (h != NULL && h->in_child != NULL && !h->in_child()) {
			_exit(126);
		}
		(void)dup2(fds[1], STDOUT_FILENO);
		(void)close(fds[0]);
		(void)close(fds[1]);
		execl(node_proc, node_proc, name, listen, secret, HEARTBEAT_MS,
		      child_timeout_ms, (char *)NULL);
		_exit(127);
	}
	(void)close(fds[1]);
	if (pid < 0) {
		(void)close(fds[0]);
		CHECK(false);
		return false;
	}
	c->pid = pid;
	bool ok = (h == NULL || h->in_parent == NULL || h->in_parent(pid)) &&
		  child_line(c, fds[0]);
	(void)close(fds[0]);
	if (!ok) {
		fprintf(stderr, "  no line from node_proc %s\n", name);
		CHECK(false);
		child_kill(c);
	}
	return ok;
}

static inline bool
child_start(struct child *c, const char *name, const char *listen)
{
	return child_start_with(c, name, listen, NULL);
}

/* The child's end, whatever state it is in (a failure path). */
static inline void
child_kill(struct child *c)
{
	if (c->pid > 0) {
		(void)kill(c->pid, SIGKILL);
		(void)kill(c->pid, SIGCONT);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
		}
		c->pid = 0;
	}
}

/* Waits for a change of the child's state; returns the status. */
static inline int
child_wait(struct child *c, int flags)
{
	int st = 0;
	pid_t r;

	while ((r = waitpid(c->pid, &st, flags)) < 0 && errno == EINTR) {
	}
	CHECK(r == c->pid);
	if (r == c->pid && (WIFEXITED(st) || WIFSIGNALED(st))) {
		c->pid = 0; /* reaped */
	}
	return st;
}

/* A graceful stop: SIGTERM, and node_proc exits 0 when every message it
 * saw was counted. */
static inline void
child_term(struct child *c)
{
	if (c->pid <= 0) {
		return;
	}
	CHECK_OK(kill(c->pid, SIGTERM));
	int st = child_wait(c, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	child_kill(c); /* only if the wait failed */
}

/* ---- the node here ---- */

struct node {
	struct fx f;
	tr_net *net;
};

/* The node's configuration as the tests use it. */
static inline tr_net_config
node_config(const char *name, const char *listen)
{
	tr_net_config cfg = { .size = sizeof(cfg),
			      .name = name,
			      .listen = listen,
			      .secret = secret,
			      .secret_len = strlen(secret),
			      .heartbeat_ms = atoi(HEARTBEAT_MS),
			      .timeout_ms = atoi(TIMEOUT_MS),
			      .reconnect_min_ms = 50,
			      .reconnect_max_ms = 400 };
	return cfg;
}

static inline void
node_start_cfg(struct node *n, const tr_net_config *cfg)
{
	memset(n, 0, sizeof(*n));
	fx_start(&n->f, 2);
	CHECK_OK(tr_net_start(n->f.rt, cfg, &n->net));
	CHECK_OK(tr_net_monitor_nodes(n->net, n->f.probe, true));
}

static inline void
node_start_at(struct node *n, const char *name, const char *listen)
{
	tr_net_config cfg = node_config(name, listen);

	node_start_cfg(n, &cfg);
}

static inline void
node_start(struct node *n, const char *name)
{
	node_start_at(n, name, "tcp://127.0.0.1:0");
}

/* The documented order: runtime stop and join, node stop, destroy. */
static inline void
node_finish(struct node *n)
{
	tr_inbox_destroy(n->f.ib);
	tr_runtime_stop(n->f.rt);
	CHECK_OK(tr_runtime_join(n->f.rt));
	tr_net_stop(n->net);
	check_final_metrics(n->f.rt);
	tr_runtime_destroy(n->f.rt);
}

static inline tr_ctx *
cx_of(struct node *n)
{
	return tr_inbox_ctx(n->f.ib);
}

/* Waits for the node event @type about @name; gives its creation. */
static inline bool
node_event(struct node *n, uint32_t type, const char *name, uint32_t *creation)
{
	tr_net_node_event ev;

	memset(&ev, 0, sizeof(ev));
	if (!fx_recv(&n->f, type, &ev, sizeof(ev))) {
		return false;
	}
	CHECK_STR(ev.name, name);
	CHECK(ev.creation != 0);
	if (type == TR_MSG_NET_NODEDOWN) {
		CHECK_EQ_INT(ev.reason, TR_EXIT_NOCONNECTION);
	}
	if (creation != NULL) {
		*creation = ev.creation;
	}
	return strcmp(ev.name, name) == 0;
}

/* A request ECHO n to @e answered with n + 1. */
static inline void
echo_ok(struct node *n, tr_pid e, int v)
{
	tr_ref ref;
	int got = 0;

	CHECK_OK(tr_request(cx_of(n), e, ECHO, &v, sizeof(v), 0, &ref));
	CHECK(fx_recv_ref(&n->f, ref, ECHO, e, &got, sizeof(got)));
	CHECK_EQ_INT(got, v + 1);
}

/* Connects @n to the child and gives the child's echo actor. */
static inline tr_pid
connect_child(struct node *n, struct child *c, const char *name,
	      uint32_t *creation)
{
	tr_pid e = TR_PID_NONE;

	CHECK_OK(tr_net_connect(n->net, c->addr));
	CHECK(node_event(n, TR_MSG_NET_NODEUP, name, creation));
	CHECK_OK(tr_net_pid_decode(n->net, c->echo, &e));
	CHECK(!tr_pid_is_none(e));
	return e;
}

#endif /* TR_TESTS_NET_PROCS_H */
