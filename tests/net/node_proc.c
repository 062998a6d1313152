/*
 * A node as a process of its own, for tests/net/test_procs.c:
 *
 *     node_proc NAME LISTEN-URL SECRET [HEARTBEAT-MS TIMEOUT-MS]
 *
 * It starts a runtime and a node, spawns an echo actor (a message of
 * type 1 carrying an int n is answered with n + 1, as a reply to a
 * request or a message to its sender; anything else, a request of
 * another type say, is left unanswered), registers it as "echo" in the
 * registry the node serves, lets other nodes spawn more of it by the
 * definition name "echo", prints one line
 *
 *     ADDRESS PID-HEX
 *
 * (the URL it listens on, and the echo actor's pid as tr_net_pid_encode()
 * writes it, in hex), and serves until SIGTERM. Then it stops in the
 * documented order and exits 0 if every message it saw was counted
 * (sent == handled + dead letters), 1 otherwise.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>
#include <troupe/actors/registry.h>
#include <troupe/net/net.h>

enum { ECHO = 1 };

static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const int *n = TR_MSG_AS(m, int);

	if (m->type != ECHO || n == NULL) {
		return;
	}
	int v = *n + 1;
	if (m->flags & TR_MSG_F_REQUEST) {
		(void)tr_reply(cx, m, ECHO, &v, sizeof(v));
	} else {
		(void)tr_send(cx, m->from, ECHO, &v, sizeof(v));
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo",
	.handle = echo_handle,
};

static int
fail(const char *what, int err)
{
	fprintf(stderr, "node_proc: %s: %s\n", what, tr_err_name(err));
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: node_proc NAME LISTEN-URL SECRET "
				"[HEARTBEAT-MS TIMEOUT-MS]\n");
		return 2;
	}
	/* SIGTERM is taken by sigwait() below: block it before any thread
	 * starts, so that every thread inherits the mask. */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);

	tr_net_config nc = { .size = sizeof(nc),
			     .name = argv[1],
			     .listen = argv[2],
			     .secret = argv[3],
			     .secret_len = strlen(argv[3]) };
	if (argc == 6) {
		nc.heartbeat_ms = (uint32_t)strtoul(argv[4], NULL, 10);
		nc.timeout_ms = (uint32_t)strtoul(argv[5], NULL, 10);
	}
	static const tr_net_def defs[] = { { "echo", &echo_def } };
	nc.defs = defs;
	nc.ndefs = 1;
	tr_config cfg = tr_config_default();
	cfg.workers = 2;
	tr_registry *reg;
	tr_runtime *rt;
	tr_net *net;
	tr_pid echo;
	unsigned char pid[TR_NET_PID_SIZE];
	char addr[160];
	int err;
	if ((err = tr_runtime_create(&cfg, &rt)) != TR_OK ||
	    (err = tr_runtime_start(rt)) != TR_OK ||
	    (err = tr_registry_create(rt, &reg)) != TR_OK) {
		return fail("runtime", err);
	}
	nc.registry = reg;
	if ((err = tr_net_start(rt, &nc, &net)) != TR_OK ||
	    (err = tr_net_address(net, addr, sizeof(addr))) != TR_OK) {
		return fail("node", err);
	}
	if ((err = tr_spawn(tr_runtime_ctx(rt), &echo_def, NULL, &echo)) !=
		    TR_OK ||
	    (err = tr_registry_register(reg, "echo", echo)) != TR_OK ||
	    (err = tr_net_pid_encode(net, echo, pid)) != TR_OK) {
		return fail("echo", err);
	}
	printf("%s ", addr);
	for (size_t i = 0; i < sizeof(pid); i++) {
		printf("%02x", pid[i]);
	}
	printf("\n");
	fflush(stdout);

	int sig = 0;
	while (sigwait(&term, &sig) != 0) {
	}
	tr_runtime_stop(rt);
	if ((err = tr_runtime_join(rt)) != TR_OK) {
		return fail("join", err);
	}
	tr_net_stop(net);
	tr_registry_destroy(reg);
	tr_metrics m = { .size = sizeof(m) };
	int rc = 0;
	if (tr_runtime_metrics(rt, &m) != TR_OK ||
	    m.msgs_sent != m.msgs_handled + m.dead_letters ||
	    m.actors_alive != 0) {
		fprintf(stderr,
			"node_proc: messages not all counted: sent %llu, "
			"handled %llu, dead letters %llu\n",
			(unsigned long long)m.msgs_sent,
			(unsigned long long)m.msgs_handled,
			(unsigned long long)m.dead_letters);
		rc = 1;
	}
	tr_runtime_destroy(rt);
	return rc;
}
