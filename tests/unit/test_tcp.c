/*
 * TCP (<troupe/tcp.h>) against plain sockets from the test thread: an
 * echo server with one actor per connection handles many connections at
 * once, partial reads and pipelined lines; a peer that closes early is
 * noticed; a peer that floods without reading cannot make the runtime
 * hold more than a bounded amount of memory; a connect to a closed port
 * ends in one TR_MSG_TCP_CLOSED with ECONNREFUSED. Closing: a connection
 * actor that stops closes its socket, after everything it wrote; an
 * abort resets at once; a graceful close to a peer that never reads ends
 * after TR_TCP_LINGER_MS.
 *
 * The machine may be busy with other work, so no test asserts how long
 * something took: each waits for its event with a generous deadline
 * (WAIT_MS), and only missing that deadline fails.
 */
#include "runtime/alloc.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

#include <troupe/troupe.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Deadlines are failures only: generous, for busy and sanitizer runs. */
#define WAIT_MS     30000
#define FX_REPLY_MS WAIT_MS

#include "harness.h"
#include "fixture.h"

enum {
	MSG_GO = 1, /* server: listen; client: connect to uint16_t port */
	MSG_PORT,   /* to the probe: uint16_t, or 0 on error */
	MSG_RESULT, /* to the probe: struct tr_tcp_event */
};

static _Atomic int conns_closed;

/* One actor per accepted connection: echo every byte back. */
static void
echo_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == TR_MSG_TCP_DATA) {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d == NULL) {
			return;
		}
		(void)tr_tcp_write(cx, d->conn, d->bytes, d->len);
	} else if (m->type == TR_MSG_TCP_EOF) {
		tr_tcp_event e;
		memcpy(&e, m->data, sizeof(e));
		(void)tr_tcp_close(cx, e.conn); /* after the echoes went out */
	} else if (m->type == TR_MSG_TCP_CLOSED) {
		atomic_fetch_add(&conns_closed, 1);
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def echo_def = {
	.size = sizeof(tr_actor_def),
	.name = "echo-conn",
	.handle = echo_handle,
};

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		*probe = tr_sender(cx);
		if (tr_tcp_listen(cx, "127.0.0.1", 0, &echo_def, NULL, NULL) <
		    0) {
			uint16_t zero = 0;
			(void)tr_send(cx, *probe, MSG_PORT, &zero,
				      sizeof(zero));
		}
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;
		memcpy(&l, m->data, sizeof(l));
		uint16_t port = l.status == 0 ? l.port : 0;
		(void)tr_send(cx, *probe, MSG_PORT, &port, sizeof(port));
	}
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "server",
	.state_size = sizeof(tr_pid),
	.handle = server_handle,
};

static uint16_t
start_server(struct fx *f)
{
	uint16_t port = 0;
	tr_pid s = fx_spawn(f, &server_def, NULL);

	SEND(f, s, MSG_GO, NULL, 0);
	CHECK(fx_recv(f, MSG_PORT, &port, sizeof(port)));
	CHECK(port != 0);
	return port;
}

static int
dial(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read exactly n bytes within WAIT_MS. */
static bool
read_all(int fd, char *buf, size_t n)
{
	size_t got = 0;
	uint64_t deadline = harness_now_ms() + WAIT_MS;

	while (got < n && harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0) {
			continue;
		}
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0) {
			return false;
		}
		got += (size_t)r;
	}
	return got == n;
}

static void
test_echo_many_partial_pipelined(void)
{
	struct fx f;
	enum { N = 20 };
	int fds[N];

	fx_start(&f, 2);
	uint16_t port = start_server(&f);
	for (int i = 0; i < N; i++) {
		fds[i] = dial(port);
		CHECK(fds[i] >= 0);
	}
	/* Each client: one line in two pieces, then three lines at once. */
	int bad = 0;
	for (int i = 0; i < N; i++) {
		char line[64], piped[64], back[128];
		int n = snprintf(line, sizeof(line), "hello %d\n", i);
		int k = snprintf(piped, sizeof(piped), "a%d\nb%d\nc%d\n", i, i,
				 i);
		bad += write(fds[i], line, 3) != 3;
		bad += write(fds[i], line + 3, (size_t)n - 3) != n - 3;
		bad += write(fds[i], piped, (size_t)k) != k;
		if (!read_all(fds[i], back, (size_t)(n + k)) ||
		    memcmp(back, line, (size_t)n) != 0 ||
		    memcmp(back + n, piped, (size_t)k) != 0) {
			bad++;
		}
	}
	CHECK_EQ_INT(bad, 0);
	atomic_store(&conns_closed, 0);
	for (int i = 0; i < N; i++) {
		close(fds[i]);
	}
	/* Peers that close: every connection actor hears CLOSED. */
	WAIT_UNTIL(atomic_load(&conns_closed) == N, WAIT_MS);
	fx_finish(&f);
}

/*
 * More than a correct runtime lets a peer that never reads push in: that
 * is the kernel buffers on both sides and in both directions (tens of
 * MiB at most) plus the runtime's own bound (TR_TCP_READ_HIGH unread and
 * pending). Past this, the runtime is taking bytes it cannot be holding.
 */
#define FLOOD_BUDGET ((size_t)256 << 20)

static void
test_flooding_peer_is_bounded(void)
{
	struct fx f;
	static char chunk[65536];

	fx_start(&f, 2);
	uint16_t port = start_server(&f);
	int fd = dial(port);
	CHECK(fd >= 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	int64_t base = tr__alloc_outstanding();
	int64_t peak = 0;
	size_t sent = 0;
	bool refused = false;
	/*
	 * Send and never read the echo, until the runtime stops taking
	 * bytes (the socket stays unwritable for a while), the connection
	 * fails, or the budget is spent. How long "a while" is only decides
	 * how long we watch: every check below holds at any moment.
	 */
	uint64_t last = harness_now_ms();
	while (sent < FLOOD_BUDGET && !refused &&
	       harness_now_ms() - last < 2000) {
		ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			last = harness_now_ms();
		} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			refused = true; /* closed with ENOBUFS: also bounded */
		} else {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			poll(&p, 1, 10);
		}
		int64_t now = tr__alloc_outstanding() - base;
		peak = now > peak ? now : peak;
	}
	printf("  flood: %zu KiB accepted from a peer that never reads, "
	       "runtime memory peak %" PRId64 " KiB\n",
	       sent >> 10, peak >> 10);
	/* Read pauses at 256 KiB unread or pending; writes cap at 4 MiB. */
	CHECK(peak < (int64_t)16 << 20);
	CHECK(sent < FLOOD_BUDGET);
	close(fd);
	fx_finish(&f);
}

/* client: connects to a port and reports the first TCP event. */
static void
client_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		/* uint16_t port, then optionally a uint32_t timeout */
		uint16_t port;
		uint32_t timeout_ms = 0;
		*probe = tr_sender(cx);
		memcpy(&port, m->data, sizeof(port));
		if (m->size >= sizeof(port) + sizeof(timeout_ms)) {
			memcpy(&timeout_ms,
			       (const char *)m->data + sizeof(port),
			       sizeof(timeout_ms));
		}
		(void)tr_tcp_connect(cx, "127.0.0.1", port, timeout_ms, NULL);
	} else if (m->type == TR_MSG_TCP_OPEN || m->type == TR_MSG_TCP_CLOSED) {
		tr_tcp_event e;
		memcpy(&e, m->data, sizeof(e));
		if (m->type == TR_MSG_TCP_OPEN) {
			e.status = 1; /* mark "opened" for the probe */
		}
		(void)tr_send(cx, *probe, MSG_RESULT, &e, sizeof(e));
	}
}

static const tr_actor_def client_def = {
	.size = sizeof(tr_actor_def),
	.name = "client",
	.state_size = sizeof(tr_pid),
	.handle = client_handle,
};

static void
test_connect_closed_port(void)
{
	struct fx f;
	tr_tcp_event e;

	/* Find a free port, then close it so nothing listens there. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &len);
	uint16_t port = ntohs(a.sin_port);
	close(s);

	fx_start(&f, 2);
	tr_pid c = fx_spawn(&f, &client_def, NULL);
	SEND(&f, c, MSG_GO, &port, sizeof(port));
	CHECK(fx_recv(&f, MSG_RESULT, &e, sizeof(e)));
	CHECK(e.status < 0);
	CHECK(strcmp(e.error, "ECONNREFUSED") == 0);
	printf("  connect to a closed port: %s\n", e.error);

	/* And a working connect to our own echo server. */
	uint16_t live = start_server(&f);
	tr_pid c2 = fx_spawn(&f, &client_def, NULL);
	SEND(&f, c2, MSG_GO, &live, sizeof(live));
	CHECK(fx_recv(&f, MSG_RESULT, &e, sizeof(e)));
	CHECK_EQ_INT(e.status, 1);
	fx_finish(&f);
}

/*
 * A listener whose accept queue is full drops further SYNs, so a connect
 * to it hangs until its timeout.
 */
static void
test_connect_timeout(void)
{
	struct fx f;
	tr_tcp_event e;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fill[8];
	int nfill = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(s, 0) == 0);
	getsockname(s, (struct sockaddr *)&a, &len);
	uint16_t port = ntohs(a.sin_port);
	/* Fill the queue; never accept. */
	for (int i = 0; i < 8; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(c, (struct sockaddr *)&a, sizeof(a));
		fill[nfill++] = c;
	}

	fx_start(&f, 2);
	tr_pid c = fx_spawn(&f, &client_def, NULL);
	unsigned char go[sizeof(uint16_t) + sizeof(uint32_t)];
	uint32_t timeout_ms = 200;
	memcpy(go, &port, sizeof(port));
	memcpy(go + sizeof(port), &timeout_ms, sizeof(timeout_ms));
	SEND(&f, c, MSG_GO, go, sizeof(go));
	CHECK(fx_recv(&f, MSG_RESULT, &e, sizeof(e)));
	printf("  connect to a full backlog: %s\n", e.error);
	/* The timeout, not the system's own minutes-long limit, ended it:
	 * FX_REPLY_MS is far shorter than that. */
	CHECK(e.status < 0);
	CHECK(strcmp(e.error, "ETIMEDOUT") == 0);
	fx_finish(&f);
	for (int i = 0; i < nfill; i++) {
		close(fill[i]);
	}
	close(s);
}

/* With several I/O loops: connections spread over them, each spawned
 * with the listener's argument. */
static const char prefix_arg[] = "P:";

static int
prefix_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	*(const char **)state = arg;
	return TR_OK;
}

static void
prefix_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const char *prefix = *(const char **)state;

	if (m->type == TR_MSG_TCP_DATA) {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d == NULL) {
			return;
		}
		(void)tr_tcp_write(cx, d->conn, prefix, strlen(prefix));
		(void)tr_tcp_write(cx, d->conn, d->bytes, d->len);
	} else if (m->type == TR_MSG_TCP_CLOSED) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def prefix_def = {
	.size = sizeof(tr_actor_def),
	.name = "prefix-conn",
	.state_size = sizeof(const char *),
	.init = prefix_init,
	.handle = prefix_handle,
};

static void
pserver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		*probe = tr_sender(cx);
		(void)tr_tcp_listen(cx, "127.0.0.1", 0, &prefix_def,
				    (void *)prefix_arg, NULL);
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;
		memcpy(&l, m->data, sizeof(l));
		uint16_t port = l.status == 0 ? l.port : 0;
		(void)tr_send(cx, *probe, MSG_PORT, &port, sizeof(port));
	}
}

static const tr_actor_def pserver_def = {
	.size = sizeof(tr_actor_def),
	.name = "prefix-server",
	.state_size = sizeof(tr_pid),
	.handle = pserver_handle,
};

static void
test_io_threads(void)
{
	struct fx f;
	enum { N = 12 };
	int fds[N];
	tr_config cfg = tr_config_default();

	cfg.workers = 2;
	cfg.io_threads = 3;
	fx_start_cfg(&f, &cfg);
	tr_pid srv = fx_spawn(&f, &pserver_def, NULL);
	uint16_t port = 0;
	SEND(&f, srv, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_PORT, &port, sizeof(port)));
	CHECK(port != 0);
	for (int i = 0; i < N; i++) {
		fds[i] = dial(port);
		CHECK(fds[i] >= 0);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			char line[16], want[24], back[24];
			int n = snprintf(line, sizeof(line), "c%d-%d\n", i,
					 round);
			snprintf(want, sizeof(want), "P:%s", line);
			CHECK(write(fds[i], line, (size_t)n) == n);
			CHECK(read_all(fds[i], back, strlen(want)));
			CHECK(memcmp(back, want, strlen(want)) == 0);
		}
	}
	for (int i = 0; i < N; i++) {
		close(fds[i]);
	}
	fx_finish(&f);
}

/*
 * A reply bigger than the socket takes at once: the direct write sends a
 * part, the rest goes to the loop first, and a second write queued behind
 * it comes out after it, byte for byte.
 */
#define BIG_REPLY (3u << 20)

static unsigned char
big_byte(size_t i)
{
	return (unsigned char)('a' + (i * 7u + i / 4093u) % 26u);
}

static _Atomic bool big_written;

static void
big_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == TR_MSG_TCP_DATA) {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d == NULL) {
			return;
		}
		unsigned char *buf = malloc(BIG_REPLY);
		if (buf == NULL) {
			return;
		}
		for (size_t i = 0; i < BIG_REPLY; i++) {
			buf[i] = big_byte(i);
		}
		/* Two of them: the socket's send buffer grows to about
		 * 4 MiB, so the second send() is cut short or refused. */
		(void)tr_tcp_write(cx, d->conn, buf, BIG_REPLY);
		(void)tr_tcp_write(cx, d->conn, buf, BIG_REPLY);
		(void)tr_tcp_write(cx, d->conn, "END\n", 4);
		free(buf);
		atomic_store(&big_written, true);
	} else if (m->type == TR_MSG_TCP_CLOSED) {
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def big_def = {
	.size = sizeof(tr_actor_def),
	.name = "big-reply",
	.handle = big_handle,
};

static void
bserver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		*probe = tr_sender(cx);
		(void)tr_tcp_listen(cx, "127.0.0.1", 0, &big_def, NULL, NULL);
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;
		memcpy(&l, m->data, sizeof(l));
		uint16_t port = l.status == 0 ? l.port : 0;
		(void)tr_send(cx, *probe, MSG_PORT, &port, sizeof(port));
	}
}

static const tr_actor_def bserver_def = {
	.size = sizeof(tr_actor_def),
	.name = "big-server",
	.state_size = sizeof(tr_pid),
	.handle = bserver_handle,
};

static void
test_big_reply_in_order(void)
{
	struct fx f;
	size_t total = 2 * (size_t)BIG_REPLY + 4;
	char *back = malloc(total);

	CHECK(back != NULL);
	atomic_store(&big_written, false);
	fx_start(&f, 2);
	tr_pid srv = fx_spawn(&f, &bserver_def, NULL);
	uint16_t port = 0;
	SEND(&f, srv, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_PORT, &port, sizeof(port)));
	/* A small receive buffer (set before connecting: shrinking it on a
	 * live connection can stall it), so the server's socket fills. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(write(fd, "go\n", 3) == 3);
	/* Let the server queue all of it before we read, so that its
	 * socket is full while it writes. */
	WAIT_UNTIL(atomic_load(&big_written), WAIT_MS);
	size_t got = 0;
	uint64_t deadline = harness_now_ms() + WAIT_MS;
	while (got < total && harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0) {
			continue;
		}
		ssize_t r = read(fd, back + got, total - got);
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	CHECK_EQ_U64(got, total);
	size_t bad = 0;
	for (size_t i = 0; i < 2 * (size_t)BIG_REPLY && i < got; i++) {
		bad += (unsigned char)back[i] != big_byte(i % BIG_REPLY);
	}
	CHECK_EQ_U64(bad, 0);
	CHECK(got == total &&
	      memcmp(back + 2 * (size_t)BIG_REPLY, "END\n", 4) == 0);
	close(fd);
	free(back);
	fx_finish(&f);
}

static void
test_stop_with_open_connections(void)
{
	struct fx f;
	enum { N = 5 };
	int fds[N];
	char back[8];

	fx_start(&f, 2);
	uint16_t port = start_server(&f);
	for (int i = 0; i < N; i++) {
		fds[i] = dial(port);
		CHECK(fds[i] >= 0);
		/* One echo proves the connection actor is up. */
		CHECK(write(fds[i], "x\n", 2) == 2);
		CHECK(read_all(fds[i], back, 2));
	}
	/* Stop with every connection open: join closes them all. */
	fx_finish(&f);
	for (int i = 0; i < N; i++) {
		/* The server side is gone: end of file (or a reset). */
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		CHECK(poll(&p, 1, WAIT_MS) == 1);
		CHECK(read(fds[i], back, sizeof(back)) <= 0);
		close(fds[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Who runs the loop: workers, the I/O thread, or only the I/O thread   */

/* Echo @rounds lines on each of @n connections; false on any mismatch. */
static bool
echo_rounds(uint16_t port, int n, int rounds)
{
	bool ok = true;

	for (int i = 0; i < n && ok; i++) {
		int fd = dial(port);
		ok = fd >= 0;
		for (int r = 0; ok && r < rounds; r++) {
			char line[32], back[32];
			int len =
				snprintf(line, sizeof(line), "c%d r%d\n", i, r);
			ok = write(fd, line, (size_t)len) == len &&
			     read_all(fd, back, (size_t)len) &&
			     memcmp(line, back, (size_t)len) == 0;
		}
		if (fd >= 0) {
			close(fd);
		}
	}
	return ok;
}

/*
 * Request/reply traffic until a worker has polled the loop since @since
 * (or WAIT_MS pass). How many polls a round trip costs depends on who
 * else wants the CPUs, so only "at least one" is a property.
 */
static bool
echo_until_polled(struct fx *f, uint16_t port, uint64_t since)
{
	uint64_t deadline = harness_now_ms() + WAIT_MS;
	bool ok = true;

	while (ok && rt_metrics(f->rt).io_polls == since &&
	       harness_now_ms() < deadline) {
		ok = echo_rounds(port, 1, 5);
	}
	CHECK(ok);
	return rt_metrics(f->rt).io_polls > since;
}

static void
test_workers_poll_the_loop(void)
{
	struct fx f;

	fx_start(&f, 2);
	uint16_t port = start_server(&f);
	tr_metrics m0 = rt_metrics(f.rt);
	CHECK(echo_rounds(port, 8, 20));
	/* Idle workers poll the loop (io_dedicated, below, never does). */
	CHECK(echo_until_polled(&f, port, m0.io_polls));
	fx_finish(&f);
}

static void
test_dedicated_io_threads(void)
{
	struct fx f;
	tr_config cfg = tr_config_default();

	cfg.workers = 2;
	cfg.io_dedicated = 1;
	fx_start_cfg(&f, &cfg);
	uint16_t port = start_server(&f);
	CHECK(echo_rounds(port, 8, 20));
	tr_metrics m = rt_metrics(f.rt);
	CHECK_EQ_U64(m.io_polls, 0);
	fx_finish(&f);
}

enum { MSG_BUSY = 300, MSG_TICK, MSG_BUSY_DONE };

struct busy_report {
	bool delivered; /* the timer's message arrived during the turn */
};

/*
 * One turn that does not end until a timer it started has delivered its
 * message (seen in msgs_sent) or WAIT_MS pass: on one worker nobody but
 * the I/O thread can run the loop meanwhile.
 */
static void
busy_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != MSG_BUSY) {
		return;
	}
	tr_runtime *rt = tr_ctx_runtime(cx);
	tr_metrics m0 = rt_metrics(rt);
	struct busy_report r = { 0 };
	uint64_t t0 = harness_now_ms();

	if (tr_send_after(cx, tr_self(cx), MSG_TICK, NULL, 0, 1, NULL) ==
	    TR_OK) {
		while (harness_now_ms() - t0 < WAIT_MS) {
			if (rt_metrics(rt).msgs_sent > m0.msgs_sent) {
				r.delivered = true;
				break;
			}
			harness_nap_us(200);
		}
	}
	(void)tr_send(cx, tr_sender(cx), MSG_BUSY_DONE, &r, sizeof(r));
}

static const tr_actor_def busy_def = {
	.size = sizeof(tr_actor_def),
	.name = "busy",
	.handle = busy_handle,
};

static void
test_io_thread_takes_over_from_busy_workers(void)
{
	struct fx f;
	struct busy_report r = { 0 };

	fx_start(&f, 1);
	uint16_t port = start_server(&f);
	tr_pid b = fx_spawn(&f, &busy_def, NULL);
	tr_metrics m0 = rt_metrics(f.rt);
	SEND(&f, b, MSG_BUSY, NULL, 0);
	CHECK(fx_recv(&f, MSG_BUSY_DONE, &r, sizeof(r)));
	tr_metrics m1 = rt_metrics(f.rt);
	printf("  timer delivered during a busy turn: %s, %" PRIu64
	       " takeovers\n",
	       r.delivered ? "yes" : "no", m1.io_takeovers - m0.io_takeovers);
	CHECK(r.delivered);
	/* It may have held the loop since before the turn began. */
	CHECK(m1.io_takeovers >= 1);
	/*
	 * Idle again: the worker asks for the loop back and polls it, so
	 * request/reply traffic makes it poll (it may already be in its
	 * first poll, which does not return while nothing happens). When
	 * the machine is busy the I/O thread may keep the loop for a while,
	 * so wait for the first poll rather than count them.
	 */
	CHECK(echo_until_polled(&f, port, m1.io_polls));
	fx_finish(&f);
}

/* ------------------------------------------------------------------ */
/* Closing: by the owner's stop, gracefully, abortively                 */

enum close_how {
	HOW_STOP,  /* tr_stop_self right after the writes */
	HOW_CLOSE, /* tr_tcp_close, then report CLOSED to the probe */
	HOW_ABORT, /* tr_tcp_abort, then report CLOSED to the probe */
};

/* The listener's argument, shared by its connection actors. */
struct closer_cfg {
	size_t write_bytes; /* written in CLOSER_PIECE pieces on first data */
	enum close_how how;
	tr_pid probe;
};

#define CLOSER_PIECE 1024u

/* Calls that failed in a closer actor (checked by the test thread). */
static _Atomic int closer_errors;

/*
 * A connection actor that, on its first data, writes cfg->write_bytes in
 * many small writes (big_byte's pattern) and closes in the same turn.
 */
static int
closer_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	*(const struct closer_cfg **)state = arg;
	return TR_OK;
}

static void
closer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const struct closer_cfg *cfg = *(const struct closer_cfg **)state;

	if (m->type == TR_MSG_TCP_DATA) {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d == NULL) {
			return;
		}
		unsigned char piece[CLOSER_PIECE];
		for (size_t off = 0; off < cfg->write_bytes;
		     off += CLOSER_PIECE) {
			size_t n = cfg->write_bytes - off < CLOSER_PIECE
					   ? cfg->write_bytes - off
					   : CLOSER_PIECE;
			for (size_t i = 0; i < n; i++) {
				piece[i] = big_byte(off + i);
			}
			if (tr_tcp_write(cx, d->conn, piece, n) != TR_OK) {
				atomic_fetch_add(&closer_errors, 1);
			}
		}
		tr_err err = TR_OK;
		if (cfg->how == HOW_STOP) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
		} else if (cfg->how == HOW_CLOSE) {
			err = tr_tcp_close(cx, d->conn);
		} else {
			err = tr_tcp_abort(cx, d->conn);
		}
		if (err != TR_OK) {
			atomic_fetch_add(&closer_errors, 1);
		}
	} else if (m->type == TR_MSG_TCP_CLOSED) {
		(void)tr_send(cx, cfg->probe, MSG_RESULT, m->data, m->size);
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def closer_def = {
	.size = sizeof(tr_actor_def),
	.name = "closer-conn",
	.state_size = sizeof(const struct closer_cfg *),
	.init = closer_init,
	.handle = closer_handle,
};

static void
cserver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		void *cfg;
		*probe = tr_sender(cx);
		memcpy(&cfg, m->data, sizeof(cfg));
		(void)tr_tcp_listen(cx, "127.0.0.1", 0, &closer_def, cfg, NULL);
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;
		memcpy(&l, m->data, sizeof(l));
		uint16_t port = l.status == 0 ? l.port : 0;
		(void)tr_send(cx, *probe, MSG_PORT, &port, sizeof(port));
	}
}

static const tr_actor_def cserver_def = {
	.size = sizeof(tr_actor_def),
	.name = "closer-server",
	.state_size = sizeof(tr_pid),
	.handle = cserver_handle,
};

static uint16_t
start_closer_server(struct fx *f, struct closer_cfg *cfg)
{
	uint16_t port = 0;
	tr_pid s = fx_spawn(f, &cserver_def, NULL);

	cfg->probe = f->probe;
	atomic_store(&closer_errors, 0);
	SEND(f, s, MSG_GO, &cfg, sizeof(cfg));
	CHECK(fx_recv(f, MSG_PORT, &port, sizeof(port)));
	CHECK(port != 0);
	return port;
}

/* Descriptors open in this process (the runtime's sockets among them). */
static int
fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL) {
		return -1;
	}
	while (readdir(d) != NULL) {
		n++;
	}
	closedir(d);
	return n;
}

/*
 * The runtime's end of the connection whose client end is @client, or
 * -1 if not accepted yet. The server runs in this process, so its socket
 * is one of our descriptors. It is found by name (its inode in
 * /proc/net/tcp, then the descriptor whose link names that inode), not by
 * calls on every descriptor, which would touch sockets that the runtime's
 * threads are opening and closing.
 */
static int
server_end(int client)
{
	struct sockaddr_in me, srv;
	socklen_t me_len = sizeof(me), srv_len = sizeof(srv);
	char want[64] = "";
	char line[512];

	if (getsockname(client, (struct sockaddr *)&me, &me_len) != 0 ||
	    getpeername(client, (struct sockaddr *)&srv, &srv_len) != 0) {
		return -1;
	}
	FILE *tcp = fopen("/proc/self/net/tcp", "r");
	if (tcp == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), tcp) != NULL) {
		/* sl: local:port remote:port st queues timers retr uid
		 * timeout inode */
		unsigned lport, rport;
		unsigned long inode;
		if (sscanf(line,
			   " %*d: %*x:%x %*x:%x %*x %*x:%*x %*x:%*x %*x %*u "
			   "%*u %lu",
			   &lport, &rport, &inode) == 3 &&
		    lport == ntohs(srv.sin_port) &&
		    rport == ntohs(me.sin_port) && inode != 0) {
			snprintf(want, sizeof(want), "socket:[%lu]", inode);
			break;
		}
	}
	fclose(tcp);
	if (want[0] == '\0') {
		return -1;
	}
	DIR *d = opendir("/proc/self/fd");
	int found = -1;
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
		char link[64];
		ssize_t n =
			readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				found = atoi(e->d_name);
				break;
			}
		}
	}
	if (d != NULL) {
		closedir(d);
	}
	return found;
}

/*
 * Connect with a small receive buffer and cap the server end's send
 * buffer, so that most of a few MiB written at once stays queued in the
 * runtime whatever the kernel's own limits are: that queue is what a
 * close must not lose (or, aborting, must drop).
 */
static int
dial_small(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	int srv = -1;
	WAIT_UNTIL((srv = server_end(fd)) >= 0, WAIT_MS);
	if (srv >= 0) {
		int cap = 16384;
		setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &cap, sizeof(cap));
	}
	return fd;
}

/*
 * Read until end of file, an error or WAIT_MS, in small reads (a slow
 * reader). Counts the bytes, and those that differ from big_byte's
 * pattern. Return: 0 at end of file, else the read's errno (ETIMEDOUT
 * for the deadline).
 */
static int
read_to_end(int fd, size_t *got, size_t *bad)
{
	char buf[4096];
	uint64_t deadline = harness_now_ms() + WAIT_MS;

	*got = 0;
	*bad = 0;
	while (harness_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0) {
			continue;
		}
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0) {
			return 0;
		}
		if (r < 0) {
			return errno;
		}
		for (ssize_t i = 0; i < r; i++) {
			*bad += (unsigned char)buf[i] !=
				big_byte(*got + (size_t)i);
		}
		*got += (size_t)r;
	}
	return ETIMEDOUT;
}

/* The connection actor stops on its first data: the peer sees EOF. */
static void
test_actor_stop_closes_connection(void)
{
	struct fx f;
	struct closer_cfg cfg = { .write_bytes = 0, .how = HOW_STOP };
	size_t got, bad;

	fx_start(&f, 2);
	uint16_t port = start_closer_server(&f, &cfg);
	int before = fd_count();
	int fd = dial(port);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	/* Nothing was written, so the end of file comes with nothing. */
	CHECK_EQ_INT(read_to_end(fd, &got, &bad), 0);
	CHECK_EQ_U64(got, 0);
	close(fd);
	/* And the runtime's descriptor is released too. */
	WAIT_UNTIL(fd_count() == before, WAIT_MS);
	CHECK_EQ_INT(atomic_load(&closer_errors), 0);
	fx_finish(&f);
}

/*
 * The connection actor writes TR_TCP_WRITE_MAX bytes in 1 KiB writes and
 * stops in the same turn; the peer reads only after that stop, slowly,
 * and must get every byte, then end of file.
 */
static void
test_actor_stop_flushes_writes(void)
{
	struct fx f;
	struct closer_cfg cfg = { .write_bytes = TR_TCP_WRITE_MAX,
				  .how = HOW_STOP };
	size_t got, bad;

	fx_start(&f, 2);
	uint16_t port = start_closer_server(&f, &cfg);
	int fd = dial_small(port);
	CHECK(fd >= 0);
	uint64_t stopped = rt_metrics(f.rt).actors_stopped;
	CHECK(write(fd, "x", 1) == 1);
	WAIT_UNTIL(rt_metrics(f.rt).actors_stopped > stopped, WAIT_MS);
	CHECK_EQ_INT(read_to_end(fd, &got, &bad), 0);
	CHECK_EQ_U64(got, TR_TCP_WRITE_MAX);
	CHECK_EQ_U64(bad, 0);
	close(fd);
	CHECK_EQ_INT(atomic_load(&closer_errors), 0);
	fx_finish(&f);
}

/* tr_tcp_abort drops what is queued and resets the connection. */
static void
test_abort_resets(void)
{
	struct fx f;
	struct closer_cfg cfg = { .write_bytes = TR_TCP_WRITE_MAX,
				  .how = HOW_ABORT };
	tr_tcp_event e;
	size_t got, bad;

	memset(&e, 0, sizeof(e));
	fx_start(&f, 2);
	uint16_t port = start_closer_server(&f, &cfg);
	int fd = dial_small(port);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	/* The owner hears CLOSED with status 0: it asked for it. */
	CHECK(fx_recv(&f, MSG_RESULT, &e, sizeof(e)));
	CHECK_EQ_INT(e.status, 0);
	CHECK_EQ_INT(read_to_end(fd, &got, &bad), ECONNRESET);
	CHECK(got < TR_TCP_WRITE_MAX);
	CHECK_EQ_U64(bad, 0);
	close(fd);
	CHECK_EQ_INT(atomic_load(&closer_errors), 0);
	fx_finish(&f);
}

/*
 * A graceful close to a peer that never reads cannot hold the socket:
 * after TR_TCP_LINGER_MS without progress it is reset, and its owner
 * hears ETIMEDOUT. (This test takes about TR_TCP_LINGER_MS.)
 */
static void
test_close_to_stalled_peer_is_bounded(void)
{
	struct fx f;
	struct closer_cfg cfg = { .write_bytes = TR_TCP_WRITE_MAX,
				  .how = HOW_CLOSE };
	tr_tcp_event e;

	memset(&e, 0, sizeof(e));
	fx_start(&f, 2);
	uint16_t port = start_closer_server(&f, &cfg);
	int before = fd_count();
	int fd = dial_small(port);
	CHECK(fd >= 0);
	CHECK(write(fd, "x", 1) == 1);
	/* Never read. */
	CHECK(fx_recv(&f, MSG_RESULT, &e, sizeof(e)));
	CHECK(e.status < 0);
	CHECK(strcmp(e.error, "ETIMEDOUT") == 0);
	printf("  graceful close to a peer that never reads: %s\n", e.error);
	/* Only our end is left open. */
	WAIT_UNTIL(fd_count() == before + 1, WAIT_MS);
	close(fd);
	CHECK_EQ_INT(atomic_load(&closer_errors), 0);
	fx_finish(&f);
}

static void
test_close_misuse(void)
{
	CHECK_ERR(tr_tcp_abort(NULL, (tr_tcp){ 1 }), TR_EINVAL);
	CHECK_ERR(tr_tcp_close(NULL, (tr_tcp){ 1 }), TR_EINVAL);
}

/*
 * Writes gathered per connection: an actor that is not the connection's
 * owner writes GATHER_N pieces to it while its loop is held, so all of
 * them reach the loop in one pass. They must leave in one system call
 * (one writev), whole and in order. Without gathering each piece was a
 * send() of its own.
 */
enum { MSG_FAN = 40, MSG_FANNED, GATHER_N = 50 };

static _Atomic uint64_t g_conn;
static atomic_bool g_loop_held, g_loop_release;

static void
gconn_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)cx;
	(void)state;
	if (m->type == TR_MSG_TCP_OPEN) {
		tr_tcp_event e;
		memcpy(&e, m->data, sizeof(e));
		atomic_store(&g_conn, e.conn.v);
	}
}

static const tr_actor_def gconn_def = {
	.size = sizeof(tr_actor_def),
	.name = "gather-conn",
	.handle = gconn_handle,
};

static void
gserver_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_pid *probe = state;

	if (m->type == MSG_GO) {
		*probe = tr_sender(cx);
		(void)tr_tcp_listen(cx, "127.0.0.1", 0, &gconn_def, NULL, NULL);
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;
		memcpy(&l, m->data, sizeof(l));
		uint16_t port = l.status == 0 ? l.port : 0;
		(void)tr_send(cx, *probe, MSG_PORT, &port, sizeof(port));
	} else if (m->type == MSG_FAN) {
		tr_tcp c = { atomic_load(&g_conn) };
		uint32_t ok = 0;
		for (unsigned i = 0; i < GATHER_N; i++) {
			char piece[8];
			snprintf(piece, sizeof(piece), "%03u;", i);
			ok += tr_tcp_write(cx, c, piece, 4) == TR_OK;
		}
		(void)tr_send(cx, tr_sender(cx), MSG_FANNED, &ok, sizeof(ok));
	}
}

static const tr_actor_def gserver_def = {
	.size = sizeof(tr_actor_def),
	.name = "gather-server",
	.state_size = sizeof(tr_pid),
	.handle = gserver_handle,
};

static void
hold_loop(struct tr__io *io, void *arg)
{
	(void)io;
	(void)arg;
	atomic_store(&g_loop_held, true);
	uint64_t until = harness_now_ms() + 120000;
	while (!atomic_load(&g_loop_release) && harness_now_ms() < until) {
		harness_nap_us(200);
	}
}

static void
test_writes_gathered(void)
{
	struct fx f;
	uint16_t port = 0;
	uint32_t ok = 0;
	uint64_t w0, c0, w1, c1;

	atomic_store(&g_conn, 0);
	atomic_store(&g_loop_held, false);
	atomic_store(&g_loop_release, false);
	/* The loop on its own thread, so that holding it holds no worker. */
	tr_config cfg = tr_config_default();
	cfg.workers = 2;
	cfg.io_dedicated = 1;
	fx_start_cfg(&f, &cfg);
	tr_pid s = fx_spawn(&f, &gserver_def, NULL);
	SEND(&f, s, MSG_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_PORT, &port, sizeof(port)));
	int fd = port != 0 ? dial(port) : -1;
	CHECK(fd >= 0);
	WAIT_UNTIL(atomic_load(&g_conn) != 0, WAIT_MS);

	tr__io_tcp_gather_stats(&w0, &c0);
	CHECK_OK(tr__io_call(f.rt->io, hold_loop, NULL));
	WAIT_UNTIL(atomic_load(&g_loop_held), WAIT_MS);
	SEND(&f, s, MSG_FAN, NULL, 0);
	CHECK(fx_recv(&f, MSG_FANNED, &ok, sizeof(ok)));
	CHECK_EQ_U64(ok, GATHER_N);
	atomic_store(&g_loop_release, true);

	char buf[GATHER_N * 4 + 1], want[GATHER_N * 4 + 1];
	for (unsigned i = 0; i < GATHER_N; i++) {
		snprintf(want + 4 * i, 5, "%03u;", i);
	}
	CHECK(fd >= 0 && read_all(fd, buf, GATHER_N * 4));
	CHECK(memcmp(buf, want, GATHER_N * 4) == 0);
	/* The loop counts after its call returns, which may be after the
	 * bytes were read here. */
	WAIT_UNTIL((tr__io_tcp_gather_stats(&w1, &c1), w1 - w0 >= GATHER_N),
		   WAIT_MS);
	CHECK_EQ_U64(w1 - w0, GATHER_N);
	CHECK_EQ_U64(c1 - c0, 1);
	if (fd >= 0) {
		close(fd);
	}
	fx_finish(&f);
}

static const struct test_case tests[] = {
	{ "tcp: writes that reach a connection in one pass leave in one call",
	  test_writes_gathered },
	{ "tcp: runtime stop closes open connections",
	  test_stop_with_open_connections },
	{ "tcp: echo, many connections, partial and pipelined lines",
	  test_echo_many_partial_pipelined },
	{ "tcp: a peer that floods and never reads stays bounded",
	  test_flooding_peer_is_bounded },
	{ "tcp: connect to a closed port, then to a live one",
	  test_connect_closed_port },
	{ "tcp: a connect past its timeout ends in ETIMEDOUT",
	  test_connect_timeout },
	{ "tcp: three I/O loops, listener argument reaches every connection",
	  test_io_threads },
	{ "tcp: a reply larger than the socket buffer stays whole and in order",
	  test_big_reply_in_order },
	{ "tcp: idle workers poll the loop themselves",
	  test_workers_poll_the_loop },
	{ "tcp: io_dedicated keeps the loops on the I/O threads",
	  test_dedicated_io_threads },
	{ "tcp: the I/O thread runs the loop while every worker is busy",
	  test_io_thread_takes_over_from_busy_workers },
	{ "tcp: a connection actor that stops closes its connection",
	  test_actor_stop_closes_connection },
	{ "tcp: an actor that writes and stops: the peer gets all, then EOF",
	  test_actor_stop_flushes_writes },
	{ "tcp: tr_tcp_abort resets and drops what is queued",
	  test_abort_resets },
	{ "tcp: a graceful close to a peer that never reads is bounded",
	  test_close_to_stalled_peer_is_bounded },
	{ "tcp: close and abort refuse a missing context", test_close_misuse },
	{ NULL, NULL },
};

TEST_MAIN(tests)
