/*
 * 03_echo: a TCP echo server with one actor per connection.
 *
 *     example-echo [port]        (default 7000; Ctrl-C stops it cleanly)
 *     printf 'hello\n' | nc -q1 127.0.0.1 7000
 *
 * What it shows:
 * - tr_tcp_listen() spawns a fresh actor from `conn_def` for every client;
 *   that actor receives the client's bytes as TR_MSG_TCP_DATA messages and
 *   answers with tr_tcp_write(). No callbacks, no shared state: a slow or
 *   flooding client only ever touches its own actor, and the runtime pauses
 *   reading from it when its actor falls behind.
 * - tr_runtime_handle_signals() turns Ctrl-C / SIGTERM into a graceful
 *   stop; tr_runtime_join() returns once every actor has stopped and every
 *   socket is closed.
 *
 * In asyncio terms: the listener is asyncio.start_server(), each
 * connection actor is the per-client coroutine, but the actors run on
 * every core instead of one event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

enum { MSG_START = 1 };

/* The per-connection actor: echo every chunk, stop when the peer leaves. */
static void
conn_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	switch (m->type) {
	case TR_MSG_TCP_DATA: {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);

		/* Copied into the connection's write queue. */
		if (d != NULL) {
			(void)tr_tcp_write(cx, d->conn, d->bytes, d->len);
		}
		break;
	}
	case TR_MSG_TCP_EOF: {
		/* The peer sent everything: close once our echoes are out. */
		tr_tcp_event e;

		memcpy(&e, m->data, sizeof(e));
		(void)tr_tcp_close(cx, e.conn);
		break;
	}
	case TR_MSG_TCP_CLOSED:
		/* Closed (or an error): this actor's job is done. */
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	default:
		break; /* TR_MSG_TCP_OPEN: nothing to do yet */
	}
}

static const tr_actor_def conn_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo-connection",
	.handle = conn_handle,
};

/* The server actor: asks for a listener and reports how it went. */
static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_START) {
		uint16_t port;

		memcpy(&port, m->data, sizeof(port));
		if (tr_tcp_listen(cx, "0.0.0.0", port, &conn_def, NULL, NULL) <
		    0) {
			fprintf(stderr, "echo: cannot listen\n");
			tr_runtime_stop(tr_ctx_runtime(cx));
		}
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;

		memcpy(&l, m->data, sizeof(l));
		if (l.status < 0) {
			fprintf(stderr, "echo: listen failed: %s\n", l.error);
			tr_runtime_stop(tr_ctx_runtime(cx));
			return;
		}
		printf("echo: listening on port %u (Ctrl-C to stop)\n", l.port);
		fflush(stdout);
	}
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo-server",
	.handle = server_handle,
};

int
main(int argc, char **argv)
{
	uint16_t port = argc > 1 ? (uint16_t)atoi(argv[argc - 1]) : 7000;
	tr_runtime *rt;
	tr_pid server;

	if (tr_runtime_create(NULL, &rt) < 0 || tr_runtime_start(rt) < 0) {
		fprintf(stderr, "echo: cannot start the runtime\n");
		return 1;
	}
	/* SIGINT/SIGTERM: stop gracefully (TR_PID_NONE = the default). */
	tr_runtime_handle_signals(rt, TR_PID_NONE);
	tr_spawn(tr_runtime_ctx(rt), &server_def, NULL, &server);
	tr_send(tr_runtime_ctx(rt), server, MSG_START, &port, sizeof(port));
	tr_runtime_join(rt); /* returns after a signal (or a failed listen) */
	tr_runtime_destroy(rt);
	printf("echo: stopped\n");
	return 0;
}
