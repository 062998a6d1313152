/*
 * The chat example (examples/04_chat.c) seen from outside: each test runs
 * the server as a child process and talks to it over plain sockets, as
 * `nc` would, then stops it with SIGTERM and checks that it exits with
 * status 0. The program does not link troupe.
 *
 *     test_chat <path-of-example-chat> [name filter]
 *
 * Every read waits on poll() with a deadline; the deadlines are generous
 * because the sanitizer builds run the server 5-20 times slower. Each test
 * starts its own server, so the guest numbers and the rooms it sees are
 * its own. The child is killed if this program dies (PR_SET_PDEATHSIG), so
 * a failing or killed test leaves no server behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

enum {
	LINE_WAIT_MS = 20000,  /* for one expected line */
	START_WAIT_MS = 30000, /* for "listening on <port>" */
	STOP_WAIT_MS = 30000,  /* from SIGTERM to the exit */
	BULK_WAIT_MS = 90000,  /* for the many-client tests */
	CLIENT_BUF = 16384,    /* a server line is at most about 4.1 KB */
	LINE_MAX_LEN = 4096,   /* the server's limit */
};

static const char *chat_path;

static void fmt(char *buf, size_t cap, const char *f, ...)
	__attribute__((format(printf, 3, 4)));

static void
fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, cap, f, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The server process                                                  */

struct server {
	pid_t pid;
	int out; /* its stdout */
	uint16_t port;
	char node_url[128]; /* with --node: where other nodes reach it */
};

static void
server_kill(struct server *sv)
{
	kill(sv->pid, SIGKILL);
	waitpid(sv->pid, NULL, 0);
	close(sv->out);
}

/*
 * Start `example-chat [@args...] 0` and read the port from its first
 * line. @args is NULL or a NULL-terminated list of options. A node of a
 * cluster (--node) says "listening on <port>, node <name> at <url>".
 */
static bool
server_start_args(struct server *sv, const char *const *args)
{
	const char *argv[16];
	size_t argc = 0;

	argv[argc++] = chat_path;
	for (size_t i = 0; args != NULL && args[i] != NULL && argc < 14; i++) {
		argv[argc++] = args[i];
	}
	argv[argc++] = "0";
	argv[argc] = NULL;

	int p[2];
	pid_t parent = getpid();

	if (pipe2(p, O_CLOEXEC) != 0) {
		CHECK(!"pipe2");
		return false;
	}
	sv->pid = fork();
	if (sv->pid < 0) {
		CHECK(!"fork");
		close(p[0]);
		close(p[1]);
		return false;
	}
	if (sv->pid == 0) {
		/* Die with the test, whatever way it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) {
			_exit(127);
		}
		dup2(p[1], STDOUT_FILENO);
		execv(chat_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	sv->out = p[0];

	char line[128];
	size_t len = 0;
	uint64_t deadline = harness_now_ms() + START_WAIT_MS;
	while (memchr(line, '\n', len) == NULL && len < sizeof(line) - 1) {
		int64_t left = (int64_t)(deadline - harness_now_ms());
		struct pollfd pf = { .fd = sv->out, .events = POLLIN };

		if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
			break;
		}
		ssize_t n = read(sv->out, line + len, sizeof(line) - 1 - len);
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	line[len] = '\0';
	unsigned port = 0;
	char want[160] = "";
	char node[64] = "";
	sv->node_url[0] = '\0';
	if (sscanf(line, "listening on %u, node %63s at %127s", &port, node,
		   sv->node_url) == 3) {
		fmt(want, sizeof(want), "%s", line);
	} else if (sscanf(line, "listening on %u", &port) == 1) {
		fmt(want, sizeof(want), "listening on %u\n", port);
	}
	if (port == 0 || port > 65535 || strcmp(line, want) != 0) {
		fprintf(stderr,
			"%s:%d: the server said \"%s\", not one "
			"\"listening on <port>\" line\n",
			__FILE__, __LINE__, line);
		harness_failed_checks++;
		server_kill(sv);
		return false;
	}
	sv->port = (uint16_t)port;
	return true;
}

static bool
server_start(struct server *sv)
{
	return server_start_args(sv, NULL);
}

/*
 * After SIGTERM (sent at @since_ms) it must stop cleanly: exit status 0
 * within STOP_WAIT_MS of the signal.
 */
static void
server_wait(struct server *sv, uint64_t since_ms)
{
	int status = 0;
	pid_t r = 0;

	uint64_t deadline = since_ms + STOP_WAIT_MS;
	while ((r = waitpid(sv->pid, &status, WNOHANG)) == 0 &&
	       harness_now_ms() < deadline) {
		harness_nap_us(2000);
	}
	if (r != sv->pid) {
		fprintf(stderr,
			"%s:%d: the server did not exit within %d ms of "
			"SIGTERM\n",
			__FILE__, __LINE__, STOP_WAIT_MS);
		harness_failed_checks++;
		server_kill(sv);
		return;
	}
	CHECK(WIFEXITED(status));
	if (WIFEXITED(status)) {
		CHECK_EQ_INT(WEXITSTATUS(status), 0);
	} else if (WIFSIGNALED(status)) {
		fprintf(stderr, "server killed by signal %d\n",
			WTERMSIG(status));
	}
	/* "listening on <port>" was its one line on stdout. */
	char rest[256];
	ssize_t n = read(sv->out, rest, sizeof(rest) - 1);
	if (n > 0) {
		rest[n] = '\0';
		fprintf(stderr, "%s:%d: more on stdout: \"%s\"\n", __FILE__,
			__LINE__, rest);
		harness_failed_checks++;
	}
	close(sv->out);
}

/* SIGTERM must stop it cleanly: exit status 0 within the deadline. */
static void
server_stop(struct server *sv)
{
	uint64_t t0 = harness_now_ms();

	kill(sv->pid, SIGTERM);
	server_wait(sv, t0);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */

struct client {
	int fd;
	bool is_eof; /* end of stream or reset */
	size_t len;  /* bytes in buf */
	char buf[CLIENT_BUF];
};

static bool
client_open_rcvbuf(struct client *c, uint16_t port, int rcvbuf)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->len = 0;
	c->is_eof = false;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		CHECK(!"socket");
		return false;
	}
	if (rcvbuf > 0) {
		/* Before connect, so the advertised window is small too. */
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "connect: %s\n", strerror(errno));
		CHECK(!"connect");
		close(c->fd);
		c->fd = -1;
		return false;
	}
	return true;
}

static bool
client_open(struct client *c, uint16_t port)
{
	return client_open_rcvbuf(c, port, 0);
}

static void
clients_init(struct client *cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cs[i].fd = -1;
		cs[i].is_eof = false;
		cs[i].len = 0;
	}
}

static void
client_close(struct client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Vanish: close with SO_LINGER 0, so the server sees a reset. */
static void
client_reset(struct client *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	client_close(c);
}

/* Wait up to @timeout_ms for bytes and read what is there. */
static void
client_fill(struct client *c, int timeout_ms)
{
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };

	if (c->is_eof || c->len == sizeof(c->buf) ||
	    poll(&pf, 1, timeout_ms) <= 0) {
		return;
	}
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
			 MSG_DONTWAIT);
	if (n > 0) {
		c->len += (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		c->is_eof = true; /* a reset (ECONNRESET) counts as the end */
	}
}

/* Take one buffered line (without "\n") if there is a whole one. */
static bool
client_take(struct client *c, char *out, size_t cap)
{
	char *nl = memchr(c->buf, '\n', c->len);

	if (nl == NULL) {
		return false;
	}
	size_t n = (size_t)(nl - c->buf);
	size_t keep = n < cap - 1 ? n : cap - 1;
	memcpy(out, c->buf, keep);
	out[keep] = '\0';
	c->len -= n + 1;
	memmove(c->buf, nl + 1, c->len);
	return true;
}

static bool
client_line(struct client *c, char *out, size_t cap, int timeout_ms)
{
	uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		if (client_take(c, out, cap)) {
			return true;
		}
		int64_t left = (int64_t)(deadline - harness_now_ms());
		if (c->is_eof || c->len == sizeof(c->buf) || left <= 0) {
			return false;
		}
		client_fill(c, (int)left);
	}
}

static bool
client_send(struct client *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return false;
		}
		data += n;
		len -= (size_t)n;
	}
	return true;
}

/* Send one line; the "\n" is added. */
static void
say_at(struct client *c, const char *text, int line)
{
	size_t len = strlen(text);
	char *buf = malloc(len + 1);

	if (buf == NULL) {
		CHECK(!"malloc");
		return;
	}
	memcpy(buf, text, len);
	buf[len] = '\n';
	if (!client_send(c, buf, len + 1)) {
		fprintf(stderr, "%s:%d: send failed: %s\n", __FILE__, line,
			strerror(errno));
		harness_failed_checks++;
	}
	free(buf);
}

/* The next line must be @want exactly. */
static bool
expect_at(struct client *c, const char *want, int line)
{
	static char got[CLIENT_BUF];

	if (!client_line(c, got, sizeof(got), LINE_WAIT_MS)) {
		fprintf(stderr, "%s:%d: wanted \"%.200s\", got %s\n", __FILE__,
			line, want,
			c->is_eof ? "the end of the stream"
				  : "nothing in time");
		harness_failed_checks++;
		return false;
	}
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "%s:%d: wanted \"%.200s\", got \"%.200s\"\n",
			__FILE__, line, want, got);
		harness_failed_checks++;
		return false;
	}
	return true;
}

/* Skip lines until @want comes. */
static bool
skip_until_at(struct client *c, const char *want, int line, int timeout_ms)
{
	static char got[CLIENT_BUF];
	uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int64_t left = (int64_t)(deadline - harness_now_ms());
		if (left <= 0 || !client_line(c, got, sizeof(got), (int)left)) {
			fprintf(stderr, "%s:%d: never got \"%.200s\" (%s)\n",
				__FILE__, line, want,
				c->is_eof ? "end of stream" : "timed out");
			harness_failed_checks++;
			return false;
		}
		if (strcmp(got, want) == 0) {
			return true;
		}
	}
}

/* The server must close the connection after what was already read. */
static void
expect_eof_at(struct client *c, int line)
{
	uint64_t deadline = harness_now_ms() + LINE_WAIT_MS;

	while (!c->is_eof && harness_now_ms() < deadline) {
		client_fill(c, 100);
	}
	if (!c->is_eof) {
		fprintf(stderr,
			"%s:%d: the server did not close the "
			"connection\n",
			__FILE__, line);
		harness_failed_checks++;
	} else if (c->len > 0) {
		fprintf(stderr,
			"%s:%d: %zu unexpected bytes before the end: "
			"\"%.*s\"\n",
			__FILE__, line, c->len,
			(int)(c->len < 200 ? c->len : 200), c->buf);
		harness_failed_checks++;
	}
}

#define SAY(c, text)        say_at((c), (text), __LINE__)
#define EXPECT(c, want)     expect_at((c), (want), __LINE__)
#define SKIP_UNTIL(c, want) skip_until_at((c), (want), __LINE__, LINE_WAIT_MS)
#define EXPECT_EOF(c)       expect_eof_at((c), __LINE__)

/*
 * Connect @n clients one at a time (guest1..guestN on a fresh server),
 * each one's arrival seen by all, then rename them to @nicks. Afterwards
 * every client has read everything sent to it.
 */
static bool
lobby_clients(uint16_t port, struct client *cs, const char *const *nicks,
	      size_t n)
{
	char want[128];
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		if (!client_open(&cs[i], port)) {
			return false;
		}
		fmt(want, sizeof(want), "* welcome, you are guest%zu", i + 1);
		ok &= EXPECT(&cs[i], want);
		fmt(want, sizeof(want), "* guest%zu joined lobby", i + 1);
		for (size_t j = 0; j <= i; j++) {
			ok &= EXPECT(&cs[j], want);
		}
	}
	for (size_t i = 0; i < n; i++) {
		fmt(want, sizeof(want), "/nick %s", nicks[i]);
		SAY(&cs[i], want);
		fmt(want, sizeof(want), "* you are now %s", nicks[i]);
		ok &= EXPECT(&cs[i], want);
		fmt(want, sizeof(want), "* guest%zu is now %s", i + 1,
		    nicks[i]);
		for (size_t j = 0; j < n; j++) {
			ok &= EXPECT(&cs[j], want);
		}
	}
	return ok;
}

/* A fresh client that goes from the lobby to @room, alone in the lobby. */
static bool
crowd_client(struct client *c, uint16_t port, int rcvbuf, unsigned guest,
	     const char *room)
{
	char want[128];
	bool ok;

	if (!client_open_rcvbuf(c, port, rcvbuf)) {
		return false;
	}
	fmt(want, sizeof(want), "* welcome, you are guest%u", guest);
	ok = EXPECT(c, want);
	fmt(want, sizeof(want), "* guest%u joined lobby", guest);
	ok &= EXPECT(c, want);
	fmt(want, sizeof(want), "/join %s", room);
	SAY(c, want);
	fmt(want, sizeof(want), "* guest%u joined %s", guest, room);
	ok &= EXPECT(c, want);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void
test_nicks_and_lobby(void)
{
	struct server sv;
	struct client a, b, c;

	if (!server_start(&sv)) {
		return;
	}
	if (!client_open(&a, sv.port)) {
		goto out_server;
	}
	EXPECT(&a, "* welcome, you are guest1");
	EXPECT(&a, "* guest1 joined lobby");
	if (!client_open(&b, sv.port)) {
		goto out_a;
	}
	EXPECT(&b, "* welcome, you are guest2");
	EXPECT(&b, "* guest2 joined lobby");
	EXPECT(&a, "* guest2 joined lobby");

	/* /nick: the reply, then the room hears it (the renamer too). */
	SAY(&a, "/nick alice");
	EXPECT(&a, "* you are now alice");
	EXPECT(&a, "* guest1 is now alice");
	EXPECT(&b, "* guest1 is now alice");

	SAY(&b, "/nick alice");
	EXPECT(&b, "! nick taken");
	SAY(&b, "/nick bad nick!");
	EXPECT(&b, "! bad nick");
	SAY(&b, "/nick");
	EXPECT(&b, "! bad nick");
	SAY(&b, "/nick abcdefghijklmnopqrstuvwxyz0123456"); /* 33 bytes */
	EXPECT(&b, "! bad nick");
	SAY(&b, "/nick Bob_the-builder_0123456789ab"); /* 32 bytes */
	EXPECT(&b, "* you are now Bob_the-builder_0123456789ab");
	EXPECT(&b, "* guest2 is now Bob_the-builder_0123456789ab");
	EXPECT(&a, "* guest2 is now Bob_the-builder_0123456789ab");
	SAY(&b, "/nick bob");
	EXPECT(&b, "* you are now bob");
	EXPECT(&b, "* Bob_the-builder_0123456789ab is now bob");
	EXPECT(&a, "* Bob_the-builder_0123456789ab is now bob");

	/* Broadcast in the lobby reaches both, the sender too, in order. */
	SAY(&a, "hello");
	EXPECT(&a, "alice: hello");
	EXPECT(&b, "alice: hello");
	SAY(&b, "hi there\r"); /* a "\r\n" line ending is accepted */
	EXPECT(&a, "bob: hi there");
	EXPECT(&b, "bob: hi there");
	SAY(&a, "");
	SAY(&a, "/frob");
	EXPECT(&a, "! unknown command");
	SAY(&a, "/who");
	EXPECT(&a, "* members: alice bob");
	SAY(&a, "/rooms");
	EXPECT(&a, "* rooms: lobby(2)");

	/* Guest names are names like any other: guest3 is taken now, so
	 * the next client becomes guest4. */
	SAY(&a, "/nick guest3");
	EXPECT(&a, "* you are now guest3");
	EXPECT(&a, "* alice is now guest3");
	EXPECT(&b, "* alice is now guest3");
	if (client_open(&c, sv.port)) {
		EXPECT(&c, "* welcome, you are guest4");
		EXPECT(&c, "* guest4 joined lobby");
		EXPECT(&a, "* guest4 joined lobby");
		EXPECT(&b, "* guest4 joined lobby");
		/* /quit right behind a line: the line is still said (and
		 * echoed), then "* bye", then the server closes. */
		static const char last[] = "last words\n/quit\nignored\n";
		CHECK(client_send(&c, last, sizeof(last) - 1));
		EXPECT(&c, "guest4: last words");
		EXPECT(&c, "* bye");
		EXPECT_EOF(&c);
		client_close(&c);
		EXPECT(&a, "guest4: last words");
		EXPECT(&a, "* guest4 left");
		EXPECT(&b, "guest4: last words");
		EXPECT(&b, "* guest4 left");
		/* Whoever saw "left" can have the name at once. */
		SAY(&b, "/nick guest4");
		EXPECT(&b, "* you are now guest4");
		EXPECT(&b, "* bob is now guest4");
		EXPECT(&a, "* bob is now guest4");
	}

	/* Lines sent behind a command wait for it: the rename is done
	 * before the next line is said, and answers come in order. */
	static const char pipelined[] =
		"/nick carl\nafter the rename\n/who\n/rooms\n/nick guest3\n";
	CHECK(client_send(&b, pipelined, sizeof(pipelined) - 1));
	EXPECT(&b, "* you are now carl");
	EXPECT(&b, "* guest4 is now carl");
	EXPECT(&b, "carl: after the rename");
	EXPECT(&b, "* members: carl guest3");
	EXPECT(&b, "* rooms: lobby(2)");
	EXPECT(&b, "! nick taken");
	EXPECT(&a, "* guest4 is now carl");
	EXPECT(&a, "carl: after the rename");

	/* The server stops with clients still connected: they are told. */
	server_stop(&sv);
	EXPECT(&a, "* server stopping");
	EXPECT_EOF(&a);
	client_close(&b);
out_a:
	client_close(&a);
	return;
out_server:
	server_stop(&sv);
}

static void
test_rooms(void)
{
	static const char *const nicks[] = { "alice", "bob", "carol" };
	struct client cs[3];
	struct client *a = &cs[0], *b = &cs[1], *c = &cs[2];
	struct server sv;

	clients_init(cs, 3);
	if (!server_start(&sv)) {
		return;
	}
	if (!lobby_clients(sv.port, cs, nicks, 3)) {
		goto out;
	}
	/* Leaving: the old room hears "left"; joining: the new room, the
	 * joiner included, hears "joined". */
	SAY(b, "/join kitchen");
	EXPECT(b, "* bob joined kitchen");
	EXPECT(a, "* bob left");
	EXPECT(c, "* bob left");
	SAY(c, "/join kitchen");
	EXPECT(c, "* carol joined kitchen");
	EXPECT(b, "* carol joined kitchen");
	EXPECT(a, "* carol left");

	SAY(a, "/rooms");
	EXPECT(a, "* rooms: kitchen(2) lobby(1)");
	SAY(c, "/who");
	EXPECT(c, "* members: bob carol");
	SAY(a, "/who");
	EXPECT(a, "* members: alice");

	/* Messages stay in their room: each side's next line after the
	 * other side spoke is its own. */
	SAY(b, "in the kitchen");
	EXPECT(b, "bob: in the kitchen");
	EXPECT(c, "bob: in the kitchen");
	SAY(a, "in the lobby");
	EXPECT(a, "alice: in the lobby");
	SAY(c, "/who");
	EXPECT(c, "* members: bob carol");

	SAY(a, "/join kitchen!");
	EXPECT(a, "! bad room");
	SAY(a, "/join");
	EXPECT(a, "! bad room");
	SAY(a, "/join lobby");
	EXPECT(a, "! already in lobby");

	/* The kitchen empties and goes away; the lobby has everyone. */
	SAY(b, "/join lobby");
	EXPECT(b, "* bob joined lobby");
	EXPECT(a, "* bob joined lobby");
	EXPECT(c, "* bob left");
	SAY(c, "/join lobby");
	EXPECT(c, "* carol joined lobby");
	EXPECT(a, "* carol joined lobby");
	EXPECT(b, "* carol joined lobby");
	SAY(b, "/rooms");
	EXPECT(b, "* rooms: lobby(3)");

	/* A room can be born again under the same name. */
	SAY(a, "/join kitchen");
	EXPECT(a, "* alice joined kitchen");
	EXPECT(b, "* alice left");
	EXPECT(c, "* alice left");
	SAY(a, "/who");
	EXPECT(a, "* members: alice");
	SAY(c, "/rooms");
	EXPECT(c, "* rooms: kitchen(1) lobby(2)");
out:
	server_stop(&sv);
	for (size_t i = 0; i < 3; i++) {
		client_close(&cs[i]);
	}
}

static void
test_vanished_client(void)
{
	static const char *const nicks[] = { "alice", "bob", "carol", "dave",
					     "erin" };
	struct client cs[5];
	struct client *a = &cs[0], *b = &cs[1], *c = &cs[2], *d = &cs[3],
		      *e = &cs[4];
	struct server sv;

	clients_init(cs, 5);
	if (!server_start(&sv)) {
		return;
	}
	if (!lobby_clients(sv.port, cs, nicks, 5)) {
		goto out;
	}
	SAY(d, "/join den");
	EXPECT(d, "* dave joined den");
	for (size_t i = 0; i < 5; i++) {
		if (i != 3) {
			EXPECT(&cs[i], "* dave left");
		}
	}
	SAY(e, "/join den");
	EXPECT(e, "* erin joined den");
	EXPECT(d, "* erin joined den");
	EXPECT(a, "* erin left");
	EXPECT(b, "* erin left");
	EXPECT(c, "* erin left");

	/* carol's connection is reset: the lobby hears it and her name is
	 * free at once for the next client who asks. */
	client_reset(c);
	EXPECT(a, "* carol left");
	EXPECT(b, "* carol left");
	SAY(b, "/nick carol");
	EXPECT(b, "* you are now carol");
	EXPECT(b, "* bob is now carol");
	EXPECT(a, "* bob is now carol");

	/* The same in another room. */
	client_reset(d);
	EXPECT(e, "* dave left");
	SAY(e, "/nick dave");
	EXPECT(e, "* you are now dave");
	EXPECT(e, "* erin is now dave");
	SAY(e, "/who");
	EXPECT(e, "* members: dave");
	SAY(a, "/rooms");
	EXPECT(a, "* rooms: den(1) lobby(2)");
	SAY(a, "/who");
	EXPECT(a, "* members: alice carol");
out:
	server_stop(&sv);
	for (size_t i = 0; i < 5; i++) {
		client_close(&cs[i]);
	}
}

static void
test_line_too_long(void)
{
	static const char *const nicks[] = { "alice", "bob" };
	struct client cs[3];
	struct client *a = &cs[0], *b = &cs[1], *f = &cs[2];
	struct server sv;
	char *big = malloc(10 * 1024 + 16);
	char *want = malloc(LINE_MAX_LEN + 16);

	clients_init(cs, 3);
	if (big == NULL || want == NULL || !server_start(&sv)) {
		goto out_free;
	}
	if (!lobby_clients(sv.port, cs, nicks, 2) || !client_open(f, sv.port)) {
		goto out;
	}
	EXPECT(f, "* welcome, you are guest3");
	EXPECT(f, "* guest3 joined lobby");
	EXPECT(a, "* guest3 joined lobby");
	EXPECT(b, "* guest3 joined lobby");

	/* A line of exactly the maximum is fine. */
	memset(big, 'x', LINE_MAX_LEN);
	big[LINE_MAX_LEN] = '\0';
	SAY(a, big);
	fmt(want, LINE_MAX_LEN + 16, "alice: %s", big);
	EXPECT(a, want);
	EXPECT(b, want);
	EXPECT(f, want);

	/* 10 KB and no newline: told, then disconnected. */
	memset(big, 'y', 10 * 1024);
	(void)client_send(f, big, 10 * 1024); /* may fail once it closed */
	EXPECT(f, "! line too long");
	EXPECT_EOF(f);
	EXPECT(a, "* guest3 left");
	EXPECT(b, "* guest3 left");

	/* Everyone else carries on. */
	SAY(a, "still here");
	EXPECT(a, "alice: still here");
	EXPECT(b, "alice: still here");
	SAY(b, "/who");
	EXPECT(b, "* members: alice bob");
out:
	server_stop(&sv);
	for (size_t i = 0; i < 3; i++) {
		client_close(&cs[i]);
	}
out_free:
	free(want);
	free(big);
}

/*
 * `printf '...' | nc -N`: everything is sent at once, then the sending side
 * is shut. The lines still run in order (the later ones wait in the
 * session while the first ones are answered), and then the server closes.
 */
static void
test_half_close(void)
{
	static const char script[] =
		"/nick bob\nhello\n/join den\n/who\nlast words\n";
	struct server sv;
	struct client c;

	clients_init(&c, 1);
	if (!server_start(&sv)) {
		return;
	}
	if (client_open(&c, sv.port)) {
		CHECK(client_send(&c, script, sizeof(script) - 1));
		CHECK(shutdown(c.fd, SHUT_WR) == 0);
		EXPECT(&c, "* welcome, you are guest1");
		EXPECT(&c, "* guest1 joined lobby");
		EXPECT(&c, "* you are now bob");
		EXPECT(&c, "* guest1 is now bob");
		EXPECT(&c, "bob: hello");
		EXPECT(&c, "* bob joined den");
		EXPECT(&c, "* members: bob");
		EXPECT(&c, "bob: last words");
		EXPECT_EOF(&c);
	}
	server_stop(&sv);
	client_close(&c);
}

/*
 * Read @c until "* members: ..." (the answer to a /who sent after the
 * lines), counting alice's lines "r <k>", which must come in order.
 */
static void
count_rate_lines(struct client *c, unsigned *lines, unsigned *slow)
{
	static char got[CLIENT_BUF];
	int last = -1;

	*lines = 0;
	*slow = 0;
	while (client_line(c, got, sizeof(got), LINE_WAIT_MS)) {
		int k;

		if (strncmp(got, "* members:", 10) == 0) {
			return;
		}
		if (strcmp(got, "! slow down") == 0) {
			(*slow)++;
		} else if (sscanf(got, "alice: r %d", &k) == 1) {
			CHECK(k > last);
			last = k;
			(*lines)++;
		} else {
			fprintf(stderr, "unexpected line \"%.200s\"\n", got);
			CHECK(!"unexpected line");
		}
	}
	CHECK(!"no /who answer in time");
}

static void
test_rate_limit(void)
{
	static const char *const nicks[] = { "alice", "bob" };
	enum { BURST = 120 };
	struct client cs[2];
	struct client *a = &cs[0], *b = &cs[1];
	struct server sv;
	char *burst = malloc(BURST * 16 + 16);
	size_t len = 0;

	clients_init(cs, 2);
	if (burst == NULL || !server_start(&sv)) {
		goto out_free;
	}
	if (!lobby_clients(sv.port, cs, nicks, 2)) {
		goto out;
	}
	/* 120 lines at once, then /who to mark the end. At most 50 per
	 * second are said; one "! slow down" tells alice. */
	for (int i = 0; i < BURST; i++) {
		len += (size_t)sprintf(burst + len, "r %d\n", i);
	}
	len += (size_t)sprintf(burst + len, "/who\n");
	CHECK(client_send(a, burst, len));

	unsigned a_lines, a_slow, b_lines, b_slow;
	count_rate_lines(a, &a_lines, &a_slow);
	SAY(b, "/who"); /* after alice's answer, so after all her lines */
	count_rate_lines(b, &b_lines, &b_slow);
	CHECK(a_lines >= 50);
	CHECK(a_lines < BURST);
	CHECK(a_slow >= 1);
	CHECK_EQ_U64(b_lines, a_lines);
	CHECK_EQ_U64(b_slow, 0);
	if (a_slow == 1) {
		/* The usual case: the burst fit in one window. */
		CHECK_EQ_U64(a_lines, 50);
	}

	/* The window passes and alice may speak again. */
	uint64_t deadline = harness_now_ms() + LINE_WAIT_MS;
	bool spoke = false;
	while (!spoke && harness_now_ms() < deadline) {
		static char got[CLIENT_BUF];

		SAY(a, "again");
		SAY(a, "/who");
		while (client_line(a, got, sizeof(got), LINE_WAIT_MS) &&
		       strncmp(got, "* members:", 10) != 0) {
			spoke |= strcmp(got, "alice: again") == 0;
		}
		if (!spoke) {
			harness_nap_us(100 * 1000); /* retry pacing */
		}
	}
	CHECK(spoke);
	SKIP_UNTIL(b, "alice: again");
out:
	server_stop(&sv);
	for (size_t i = 0; i < 2; i++) {
		client_close(&cs[i]);
	}
out_free:
	free(burst);
}

static void
test_crowd(void)
{
	enum { N = 50, LINES = 20 };
	struct client *cs = calloc(N, sizeof(*cs));
	unsigned got[N] = { 0 };
	int next[N][N]; /* next[receiver][sender]: the line number expected */
	struct server sv;
	bool ok = true;

	if (cs == NULL) {
		CHECK(!"calloc");
		return;
	}
	memset(next, 0, sizeof(next));
	clients_init(cs, N);
	if (!server_start(&sv)) {
		free(cs);
		return;
	}
	for (unsigned i = 0; i < N && ok; i++) {
		ok = crowd_client(&cs[i], sv.port, 0, i + 1, "crowd");
	}
	if (!ok) {
		goto out;
	}
	/* Everyone speaks at once, 20 lines each. */
	for (unsigned i = 0; i < N; i++) {
		char buf[LINES * 16];
		size_t len = 0;

		for (int k = 0; k < LINES; k++) {
			len += (size_t)sprintf(buf + len, "m %d\n", k);
		}
		CHECK(client_send(&cs[i], buf, len));
	}
	/* Everyone hears all 1000 lines, each sender's in its order. */
	struct pollfd pfs[N];
	unsigned done = 0;
	uint64_t deadline = harness_now_ms() + BULK_WAIT_MS;
	while (done < N && harness_now_ms() < deadline) {
		for (size_t i = 0; i < N; i++) {
			/* A negative fd is skipped by poll(). */
			pfs[i] = (struct pollfd){
				.fd = cs[i].is_eof ? -1 : cs[i].fd,
				.events = POLLIN,
			};
		}
		if (poll(pfs, N, 1000) <= 0) {
			continue;
		}
		for (size_t i = 0; i < N; i++) {
			char line[256];
			unsigned from;
			int k;

			if (pfs[i].revents == 0) {
				continue;
			}
			client_fill(&cs[i], 0);
			while (client_take(&cs[i], line, sizeof(line))) {
				if (line[0] == '*') {
					continue; /* later arrivals' joins */
				}
				if (sscanf(line, "guest%u: m %d", &from, &k) !=
					    2 ||
				    from < 1 || from > N) {
					fprintf(stderr,
						"client %zu: unexpected "
						"\"%s\"\n",
						i, line);
					CHECK(!"unexpected line");
					continue;
				}
				if (k != next[i][from - 1]) {
					fprintf(stderr,
						"client %zu: guest%u's "
						"line %d came when %d was "
						"due\n",
						i, from, k, next[i][from - 1]);
					CHECK(!"per-sender order");
				}
				next[i][from - 1] = k + 1;
				if (++got[i] == N * LINES) {
					done++;
				}
			}
			CHECK(!cs[i].is_eof);
		}
	}
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ_U64(got[i], N * LINES);
	}
out:
	server_stop(&sv);
	for (size_t i = 0; i < N; i++) {
		client_close(&cs[i]);
	}
	free(cs);
}

/*
 * A member that never reads. Talkers fill the room with 4 KB lines at 40
 * per second each (under the rate limit); the server must not queue
 * without bound for the sleeper: the runtime closes its connection once
 * TR_TCP_WRITE_MAX bytes are pending, and the room goes on.
 */
static void
test_client_that_does_not_read(void)
{
	enum { TALKERS = 12, LEN = 4000, TICK_MS = 25 };
	struct client *cs = calloc(TALKERS + 1, sizeof(*cs));
	struct client *sleeper = &cs[TALKERS];
	size_t out_off[TALKERS] = { 0 }; /* progress of the line being sent */
	bool has_out[TALKERS] = { false };
	bool saw_left[TALKERS] = { false };
	char *line = malloc(LEN + 1);
	char *got = malloc(CLIENT_BUF);
	struct server sv;
	bool ok = true;

	if (cs == NULL || line == NULL || got == NULL) {
		CHECK(!"malloc");
		goto out_free;
	}
	memset(line, 'z', LEN);
	line[LEN] = '\n';
	clients_init(cs, TALKERS + 1);
	if (!server_start(&sv)) {
		goto out_free;
	}
	for (unsigned i = 0; i < TALKERS && ok; i++) {
		ok = crowd_client(&cs[i], sv.port, 0, i + 1, "busy");
	}
	/* A small receive buffer, so the kernel holds little for it. */
	ok = ok && crowd_client(sleeper, sv.port, 4096, TALKERS + 1, "busy");
	if (!ok) {
		goto out;
	}

	char left[64];
	fmt(left, sizeof(left), "* guest%u left", (unsigned)TALKERS + 1);
	unsigned n_left = 0;
	uint64_t now = harness_now_ms();
	uint64_t deadline = now + BULK_WAIT_MS;
	uint64_t next_tick = now;
	while (n_left < TALKERS && now < deadline) {
		if (now >= next_tick) {
			for (size_t i = 0; i < TALKERS; i++) {
				if (!has_out[i]) {
					has_out[i] = true;
					out_off[i] = 0;
				}
			}
			/* Never catch up in a burst: that would only hit the
			 * rate limit. */
			next_tick = now + TICK_MS;
		}
		struct pollfd pfs[TALKERS];
		for (size_t i = 0; i < TALKERS; i++) {
			pfs[i] = (struct pollfd){
				.fd = cs[i].is_eof ? -1 : cs[i].fd,
				.events = POLLIN | (has_out[i] ? POLLOUT : 0),
			};
		}
		int wait = (int)(next_tick > now ? next_tick - now : 0);
		if (poll(pfs, TALKERS, wait) > 0) {
			for (size_t i = 0; i < TALKERS; i++) {
				if (pfs[i].revents & POLLOUT) {
					ssize_t n = send(
						cs[i].fd, line + out_off[i],
						LEN + 1 - out_off[i],
						MSG_NOSIGNAL | MSG_DONTWAIT);
					if (n > 0) {
						out_off[i] += (size_t)n;
						has_out[i] =
							out_off[i] < LEN + 1;
					}
				}
				if (pfs[i].revents &
				    (POLLIN | POLLHUP | POLLERR)) {
					client_fill(&cs[i], 0);
					while (client_take(&cs[i], got,
							   CLIENT_BUF)) {
						if (!saw_left[i] &&
						    strcmp(got, left) == 0) {
							saw_left[i] = true;
							n_left++;
						}
					}
					CHECK(!cs[i].is_eof);
				}
			}
		}
		now = harness_now_ms();
	}
	CHECK_EQ_U64(n_left, TALKERS);

	/* The room still works for everyone who reads. Finish the lines
	 * being sent first, so the next one starts on a line boundary. */
	for (size_t i = 0; i < TALKERS; i++) {
		if (has_out[i]) {
			CHECK(client_send(&cs[i], line + out_off[i],
					  LEN + 1 - out_off[i]));
		}
	}
	SAY(&cs[0], "/who");
	{
		char members[1024];
		size_t len = (size_t)sprintf(members, "* members:");
		char *names[TALKERS];
		char storage[TALKERS][16];

		for (size_t i = 0; i < TALKERS; i++) {
			fmt(storage[i], sizeof(storage[i]), "guest%zu", i + 1);
			names[i] = storage[i];
		}
		/* Sorted as strings: guest1 guest10 guest11 guest12 guest2 ...
		 */
		for (size_t i = 0; i < TALKERS; i++) {
			for (size_t j = i + 1; j < TALKERS; j++) {
				if (strcmp(names[j], names[i]) < 0) {
					char *t = names[i];
					names[i] = names[j];
					names[j] = t;
				}
			}
		}
		for (size_t i = 0; i < TALKERS; i++) {
			len += (size_t)sprintf(members + len, " %s", names[i]);
		}
		skip_until_at(&cs[0], members, __LINE__, BULK_WAIT_MS);
	}
	SAY(&cs[1], "still talking");
	for (size_t i = 0; i < TALKERS; i++) {
		skip_until_at(&cs[i], "guest2: still talking", __LINE__,
			      BULK_WAIT_MS);
	}
out:
	server_stop(&sv);
	for (size_t i = 0; i <= TALKERS; i++) {
		client_close(&cs[i]);
	}
out_free:
	free(got);
	free(line);
	free(cs);
}

/* ------------------------------------------------------------------ */
/* Options, room names, busy rooms, stopping                           */

enum {
	SAY_WINDOW = 8,     /* the server's: lines a session has at its room */
	ANNOUNCE_MAX = 100, /* the server's: rooms up to this size announce */
};

/* `example-chat @args...` must refuse them: usage on stderr, exit status
 * 2, no "listening" line. */
static void
expect_usage(const char *const *args)
{
	struct server sv;
	int status = 0;
	pid_t r = 0;
	int p[2];
	const char *argv[8];
	size_t argc = 0;

	argv[argc++] = chat_path;
	for (size_t i = 0; args[i] != NULL && argc < 7; i++) {
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	if (pipe2(p, O_CLOEXEC) != 0) {
		CHECK(!"pipe2");
		return;
	}
	sv.pid = fork();
	if (sv.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], STDOUT_FILENO);
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, STDERR_FILENO);
		execv(chat_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	sv.out = p[0];
	if (sv.pid < 0) {
		CHECK(!"fork");
		close(sv.out);
		return;
	}
	uint64_t deadline = harness_now_ms() + START_WAIT_MS;
	while ((r = waitpid(sv.pid, &status, WNOHANG)) == 0 &&
	       harness_now_ms() < deadline) {
		harness_nap_us(2000);
	}
	if (r != sv.pid) {
		fprintf(stderr, "%s:%d: \"%s\" did not exit\n", __FILE__,
			__LINE__, args[0]);
		harness_failed_checks++;
		server_kill(&sv);
		return;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	char rest[64];
	CHECK(read(sv.out, rest, sizeof(rest)) == 0);
	close(sv.out);
}

/* --rate, --workers, --flush-ms and --window; bad options are refused. */
static void
test_options(void)
{
	static const char *const nicks[] = { "alice", "bob" };
	static const char *const rate5[] = { "--rate", "5", NULL };
	static const char *const unlimited[] = {
		"--rate", "0", "--workers", "1", "--flush-ms", "0", NULL
	};
	static const char *const wide[] = { "--rate",     "0", "--window", "64",
					    "--flush-ms", "2", NULL };
	enum { BURST = 20, FLOOD = 300 };
	struct client cs[2];
	struct client *a = &cs[0], *b = &cs[1];
	struct server sv;
	char *burst = malloc(FLOOD * 16 + 16);
	size_t len = 0;
	unsigned a_lines, a_slow, b_lines, b_slow;

	clients_init(cs, 2);
	if (burst == NULL || !server_start_args(&sv, rate5)) {
		goto out_free;
	}
	/* --rate 5: as test_rate_limit, with 5 lines a second. */
	if (lobby_clients(sv.port, cs, nicks, 2)) {
		for (int i = 0; i < BURST; i++) {
			len += (size_t)sprintf(burst + len, "r %d\n", i);
		}
		len += (size_t)sprintf(burst + len, "/who\n");
		CHECK(client_send(a, burst, len));
		count_rate_lines(a, &a_lines, &a_slow);
		CHECK(a_lines >= 5);
		CHECK(a_lines < BURST);
		CHECK(a_slow >= 1);
		if (a_slow == 1) {
			CHECK_EQ_U64(a_lines, 5);
		}
	}
	server_stop(&sv);
	client_close(a);
	client_close(b);

	/* --rate 0: no limit; 300 lines at once are all said, in order,
	 * and one worker thread is enough to serve them; with --flush-ms 0
	 * the room writes each line at once instead of in batches. Then
	 * --window 64 --flush-ms 2: a wider window, the same lines. */
	len = 0;
	for (int i = 0; i < FLOOD; i++) {
		len += (size_t)sprintf(burst + len, "r %d\n", i);
	}
	len += (size_t)sprintf(burst + len, "/who\n");
	const char *const *const unbounded[] = { unlimited, wide };
	for (size_t k = 0; k < 2; k++) {
		clients_init(cs, 2);
		if (!server_start_args(&sv, unbounded[k])) {
			goto out_free;
		}
		if (lobby_clients(sv.port, cs, nicks, 2)) {
			CHECK(client_send(a, burst, len));
			count_rate_lines(a, &a_lines, &a_slow);
			CHECK_EQ_U64(a_lines, FLOOD);
			CHECK_EQ_U64(a_slow, 0);
			SAY(b, "/who");
			count_rate_lines(b, &b_lines, &b_slow);
			CHECK_EQ_U64(b_lines, FLOOD);
		}
		server_stop(&sv);
		client_close(a);
		client_close(b);
	}

	static const char *const bad_rate[] = { "--rate", "x", "0", NULL };
	static const char *const bad_workers[] = { "--workers", "-1", "0",
						   NULL };
	static const char *const bad_stop[] = { "--stop-timeout", "soon", "0",
						NULL };
	static const char *const unknown[] = { "--colour", "red", "0", NULL };
	static const char *const bad_flush[] = { "--flush-ms", "5000", "0",
						 NULL };
	static const char *const missing[] = { "0", "--rate", NULL };
	static const char *const no_window[] = { "--window", "0", "0", NULL };
	static const char *const big_window[] = { "--window", "5000", "0",
						  NULL };
	expect_usage(bad_rate);
	expect_usage(bad_workers);
	expect_usage(bad_stop);
	expect_usage(unknown);
	expect_usage(bad_flush);
	expect_usage(missing);
	expect_usage(no_window);
	expect_usage(big_window);
out_free:
	free(burst);
}

/* "#kitchen" is the room "kitchen", whatever its case. */
static void
test_room_names(void)
{
	static const char *const nicks[] = { "alice", "bob", "carol" };
	struct client cs[3];
	struct client *a = &cs[0], *b = &cs[1], *c = &cs[2];
	struct server sv;

	clients_init(cs, 3);
	if (!server_start(&sv)) {
		return;
	}
	if (!lobby_clients(sv.port, cs, nicks, 3)) {
		goto out;
	}
	SAY(a, "/join #kitchen");
	EXPECT(a, "* alice joined kitchen");
	EXPECT(b, "* alice left");
	EXPECT(c, "* alice left");
	SAY(b, "/join kitchen");
	EXPECT(b, "* bob joined kitchen");
	EXPECT(a, "* bob joined kitchen");
	EXPECT(c, "* bob left");
	/* The room keeps the spelling of its first member. */
	SAY(c, "/join #KITCHEN");
	EXPECT(c, "* carol joined kitchen");
	EXPECT(a, "* carol joined kitchen");
	EXPECT(b, "* carol joined kitchen");
	SAY(a, "/join #Kitchen");
	EXPECT(a, "! already in kitchen");
	SAY(a, "/join #");
	EXPECT(a, "! bad room");
	SAY(a, "/join ##kitchen");
	EXPECT(a, "! bad room");
	SAY(a, "/join #kitchen!");
	EXPECT(a, "! bad room");
	SAY(a, "/rooms");
	EXPECT(a, "* rooms: kitchen(3)");
	SAY(b, "/join #Lobby");
	EXPECT(b, "* bob joined Lobby");
	EXPECT(a, "* bob left");
	EXPECT(c, "* bob left");
	SAY(c, "/join LOBBY");
	EXPECT(c, "* carol joined Lobby");
	EXPECT(b, "* carol joined Lobby");
	EXPECT(a, "* carol left");
	SAY(a, "/rooms");
	EXPECT(a, "* rooms: kitchen(1) Lobby(2)");
	SAY(c, "/who");
	EXPECT(c, "* members: bob carol");
out:
	server_stop(&sv);
	for (size_t i = 0; i < 3; i++) {
		client_close(&cs[i]);
	}
}

/*
 * A room with more than ANNOUNCE_MAX members no longer announces each
 * join and leave to everyone (that is quadratic: n arrivals, n lines each)
 * but sums them up. Everyone still sees its own join.
 */
static void
test_big_room_sums_up(void)
{
	enum { N = ANNOUNCE_MAX + 20, GONE = 10 };
	struct client *cs = calloc(N, sizeof(*cs));
	struct client *first;
	struct server sv;
	char want[64];
	char got[256];
	bool ok = true;

	if (cs == NULL) {
		CHECK(!"calloc");
		return;
	}
	first = &cs[0];
	clients_init(cs, N);
	if (!server_start(&sv)) {
		free(cs);
		return;
	}
	for (unsigned i = 0; i < N && ok; i++) {
		ok = client_open(&cs[i], sv.port);
		fmt(want, sizeof(want), "* welcome, you are guest%u", i + 1);
		ok = ok && EXPECT(&cs[i], want);
		fmt(want, sizeof(want), "* guest%u joined lobby", i + 1);
		ok = ok && EXPECT(&cs[i], want);
	}
	if (!ok) {
		goto out;
	}
	/* guest1 hears of guest2..guest100 one by one, then of the other
	 * twenty in summaries. */
	unsigned joins_seen = 0, joined = 0, left = 0, here = 0;
	uint64_t deadline = harness_now_ms() + BULK_WAIT_MS;
	while (joined < N - ANNOUNCE_MAX && harness_now_ms() < deadline &&
	       client_line(first, got, sizeof(got), LINE_WAIT_MS)) {
		unsigned k, j, l, rn, h;

		if (sscanf(got, "* guest%u joined lobby", &k) == 1) {
			CHECK(k == joins_seen + 2);
			CHECK(k <= ANNOUNCE_MAX);
			joins_seen++;
		} else if (sscanf(got,
				  "* lobby: %u joined, %u left, %u "
				  "renamed, %u here",
				  &j, &l, &rn, &h) == 4) {
			joined += j;
			left += l;
			here = h;
		} else {
			fprintf(stderr, "unexpected \"%.200s\"\n", got);
			CHECK(!"unexpected line");
		}
	}
	CHECK_EQ_U64(joins_seen, ANNOUNCE_MAX - 1);
	CHECK_EQ_U64(joined, N - ANNOUNCE_MAX);
	CHECK_EQ_U64(left, 0);
	CHECK_EQ_U64(here, N);

	/* Ten leave: one summary (or a few) says so, no "left" line. */
	for (size_t i = N - GONE; i < N; i++) {
		client_close(&cs[i]);
	}
	while (left < GONE && harness_now_ms() < deadline &&
	       client_line(first, got, sizeof(got), LINE_WAIT_MS)) {
		unsigned j, l, rn, h;

		if (sscanf(got,
			   "* lobby: %u joined, %u left, %u renamed, %u "
			   "here",
			   &j, &l, &rn, &h) == 4) {
			joined += j;
			left += l;
			here = h;
		} else {
			fprintf(stderr, "unexpected \"%.200s\"\n", got);
			CHECK(!"unexpected line");
		}
	}
	CHECK_EQ_U64(left, GONE);
	CHECK_EQ_U64(here, N - GONE);
	SAY(first, "/rooms");
	fmt(want, sizeof(want), "* rooms: lobby(%u)", (unsigned)(N - GONE));
	EXPECT(first, want);
out:
	server_stop(&sv);
	for (size_t i = 0; i < N; i++) {
		client_close(&cs[i]);
	}
	free(cs);
}

/*
 * Everyone in a room says 200 lines at once, with no rate limit: far more
 * than the room writes out at a time. Each sender has at most SAY_WINDOW
 * lines at the room; the rest wait in its session. So the room's queue,
 * as /stats reports it, stays within a bound set by the number of
 * members, not by the number of lines, and every line still arrives.
 */
static void
test_busy_room_holds_senders_back(void)
{
	enum { N = 40, LINES = 200 };
	static const char *const unlimited[] = { "--rate", "0", NULL };
	struct client *cs = calloc(N, sizeof(*cs));
	unsigned got[N] = { 0 };
	struct server sv;
	bool ok = true;

	if (cs == NULL) {
		CHECK(!"calloc");
		return;
	}
	clients_init(cs, N);
	if (!server_start_args(&sv, unlimited)) {
		free(cs);
		return;
	}
	for (unsigned i = 0; i < N && ok; i++) {
		ok = crowd_client(&cs[i], sv.port, 0, i + 1, "busy");
	}
	if (!ok) {
		goto out;
	}
	for (unsigned i = 0; i < N; i++) {
		char buf[LINES * 8];
		size_t len = 0;

		for (int k = 0; k < LINES; k++) {
			len += (size_t)sprintf(buf + len, "m %d\n", k);
		}
		CHECK(client_send(&cs[i], buf, len));
	}
	unsigned done = 0;
	uint64_t deadline = harness_now_ms() + BULK_WAIT_MS;
	while (done < N && harness_now_ms() < deadline) {
		struct pollfd pfs[N];

		for (size_t i = 0; i < N; i++) {
			pfs[i] = (struct pollfd){
				.fd = cs[i].is_eof ? -1 : cs[i].fd,
				.events = POLLIN,
			};
		}
		if (poll(pfs, N, 1000) <= 0) {
			continue;
		}
		for (size_t i = 0; i < N; i++) {
			char line[256];

			if (pfs[i].revents == 0) {
				continue;
			}
			client_fill(&cs[i], 0);
			while (client_take(&cs[i], line, sizeof(line))) {
				if (line[0] == '*') {
					continue; /* later arrivals' joins */
				}
				if (line[0] == '!') {
					fprintf(stderr, "client %zu: \"%s\"\n",
						i, line);
					CHECK(!"a line was refused");
				}
				if (++got[i] == N * LINES) {
					done++;
				}
			}
			CHECK(!cs[i].is_eof);
		}
	}
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ_U64(got[i], N * LINES);
	}
	/* Per member: its window, one request, and a join or a departure
	 * on its way; plus the room's two timers. */
	SAY(&cs[0], "/stats");
	char line[256];
	unsigned members = 0, queued = 0, peak = ~0u;
	if (client_line(&cs[0], line, sizeof(line), LINE_WAIT_MS)) {
		if (sscanf(line, "* busy: %u members, %u queued, at most %u",
			   &members, &queued, &peak) != 3) {
			fprintf(stderr, "got \"%s\"\n", line);
			CHECK(!"a /stats line");
		}
	}
	CHECK_EQ_U64(members, N);
	fprintf(stderr, "room queue: at most %u messages for %u lines\n", peak,
		N * LINES);
	CHECK(peak <= N * (SAY_WINDOW + 2) + 2);
out:
	server_stop(&sv);
	for (size_t i = 0; i < N; i++) {
		client_close(&cs[i]);
	}
	free(cs);
}

/* Clients that say a line every tick and read whatever comes. */
enum { TALK_MAX = 64 };

struct talk {
	struct client *cs;
	size_t n;
	size_t *off;   /* how much of the current line went out */
	bool *has_out; /* a line is being sent */
	unsigned *heard;
	bool *told; /* "* server stopping" came */
	uint64_t next_tick;
};

static void
talk_step(struct talk *t, const char *line, size_t len, unsigned tick_ms)
{
	struct pollfd pfs[TALK_MAX];
	uint64_t now = harness_now_ms();

	if (t->n > TALK_MAX) {
		CHECK(!"too many talkers");
		return;
	}
	if (now >= t->next_tick) {
		for (size_t i = 0; i < t->n; i++) {
			if (!t->has_out[i] && !t->cs[i].is_eof) {
				t->has_out[i] = true;
				t->off[i] = 0;
			}
		}
		/* Never catch up in a burst: that would hit the rate. */
		t->next_tick = now + tick_ms;
	}
	for (size_t i = 0; i < t->n; i++) {
		pfs[i] = (struct pollfd){
			.fd = t->cs[i].is_eof ? -1 : t->cs[i].fd,
			.events = POLLIN | (t->has_out[i] ? POLLOUT : 0),
		};
	}
	int wait = (int)(t->next_tick > now ? t->next_tick - now : 0);
	if (poll(pfs, t->n, wait) <= 0) {
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct client *c = &t->cs[i];

		if (pfs[i].revents & POLLOUT) {
			ssize_t n =
				send(c->fd, line + t->off[i], len - t->off[i],
				     MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				t->off[i] += (size_t)n;
				t->has_out[i] = t->off[i] < len;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				t->has_out[i] = false; /* closed: stop */
			}
		}
		if (pfs[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			char got[256];

			client_fill(c, 0);
			while (client_take(c, got, sizeof(got))) {
				if (strcmp(got, "* server stopping") == 0) {
					t->told[i] = true;
				} else if (got[0] != '*' && got[0] != '!') {
					t->heard[i]++;
				}
			}
		}
	}
}

/*
 * Clients that keep talking at 20 lines a second each (within the limit)
 * while the server is stopped: every one of them is told and then
 * disconnected, and the server exits with status 0, all before the
 * generous deadline (the stop itself is bounded by --stop-timeout).
 */
static void
test_stop_under_load(void)
{
	enum { N = 60, TICK_MS = 50, LEN = 120 };
	struct client *cs = calloc(N, sizeof(*cs));
	size_t off[N] = { 0 };
	bool has_out[N] = { false };
	unsigned heard[N] = { 0 };
	bool told[N] = { false };
	char line[LEN + 1];
	struct server sv;
	bool ok = true;

	if (cs == NULL) {
		CHECK(!"calloc");
		return;
	}
	memset(line, 't', LEN);
	line[LEN] = '\n';
	clients_init(cs, N);
	if (!server_start(&sv)) {
		free(cs);
		return;
	}
	for (unsigned i = 0; i < N && ok; i++) {
		ok = crowd_client(&cs[i], sv.port, 0, i + 1, "busy");
	}
	if (!ok) {
		goto out_stop;
	}
	struct talk t = { .cs = cs,
			  .n = N,
			  .off = off,
			  .has_out = has_out,
			  .heard = heard,
			  .told = told,
			  .next_tick = harness_now_ms() };
	/* Talk until everyone has heard about five lines from each. */
	uint64_t deadline = harness_now_ms() + BULK_WAIT_MS;
	unsigned busy = 0;
	while (busy < N && harness_now_ms() < deadline) {
		talk_step(&t, line, sizeof(line), TICK_MS);
		busy = 0;
		for (size_t i = 0; i < N; i++) {
			busy += heard[i] >= 5 * N;
		}
	}
	CHECK_EQ_U64(busy, N);

	/* Stop it, and go on talking until each connection ends. */
	uint64_t t0 = harness_now_ms();
	kill(sv.pid, SIGTERM);
	unsigned ended = 0;
	while (ended < N && harness_now_ms() < t0 + STOP_WAIT_MS) {
		talk_step(&t, line, sizeof(line), TICK_MS);
		ended = 0;
		for (size_t i = 0; i < N; i++) {
			ended += cs[i].is_eof;
		}
	}
	CHECK_EQ_U64(ended, N);
	unsigned n_told = 0;
	for (size_t i = 0; i < N; i++) {
		n_told += told[i];
	}
	CHECK_EQ_U64(n_told, N);
	server_wait(&sv, t0);
	goto out;
out_stop:
	server_stop(&sv);
out:
	for (size_t i = 0; i < N; i++) {
		client_close(&cs[i]);
	}
	free(cs);
}

/*
 * --node: two chat servers, a and b, in one cluster; a client on each
 * joins the same room, and what one says reaches the other, whichever of
 * the two nodes the room lives on (one of the clients is remote to it).
 */
static bool
wait_nodes(struct client *c, const char *want)
{
	static char got[CLIENT_BUF];
	uint64_t deadline = harness_now_ms() + LINE_WAIT_MS;

	while (harness_now_ms() < deadline) {
		SAY(c, "/nodes");
		if (!client_line(c, got, sizeof(got), LINE_WAIT_MS)) {
			break;
		}
		if (strcmp(got, want) == 0) {
			return true;
		}
		harness_nap_us(20000);
	}
	fprintf(stderr, "%s:%d: never got \"%s\"\n", __FILE__, __LINE__, want);
	harness_failed_checks++;
	return false;
}

static void
test_cluster(void)
{
	static const char secret[] = "chat-cluster-test-secret";
	struct client cs[2];
	struct client *x = &cs[0], *y = &cs[1];
	struct server a, b;

	clients_init(cs, 2);
	const char *const args_a[] = { "--node", "a", "--secret", secret,
				       NULL };
	if (!server_start_args(&a, args_a)) {
		return;
	}
	CHECK(a.node_url[0] != '\0');
	const char *const args_b[] = { "--node",   "b",    "--join", a.node_url,
				       "--secret", secret, NULL };
	if (!server_start_args(&b, args_b)) {
		server_stop(&a);
		return;
	}
	/* Each sees the other up before the rooms are placed: both then
	 * compute the same home. */
	if (!client_open(x, a.port) || !client_open(y, b.port) ||
	    !EXPECT(x, "* welcome, you are guest1") ||
	    !EXPECT(y, "* welcome, you are guest1") ||
	    !wait_nodes(x, "* nodes: a b") || !wait_nodes(y, "* nodes: a b")) {
		goto out;
	}
	SAY(x, "/nick alice");
	SKIP_UNTIL(x, "* you are now alice");
	SAY(y, "/nick bob");
	SKIP_UNTIL(y, "* you are now bob");
	SAY(x, "/join kitchen");
	SKIP_UNTIL(x, "* alice joined kitchen");
	SAY(y, "/join kitchen");
	SKIP_UNTIL(y, "* bob joined kitchen");
	SKIP_UNTIL(x, "* bob joined kitchen");

	/* A line from b's client reaches a's, and back. */
	SAY(y, "hello from b");
	EXPECT(y, "bob: hello from b");
	EXPECT(x, "bob: hello from b");
	SAY(x, "hello from a");
	EXPECT(x, "alice: hello from a");
	EXPECT(y, "alice: hello from a");
	SAY(y, "/who");
	EXPECT(y, "* members: alice bob");
	SAY(x, "/who");
	EXPECT(x, "* members: alice bob");
	SAY(y, "/join lobby");
	EXPECT(x, "* bob left");
out:
	server_stop(&b);
	server_stop(&a);
	for (size_t i = 0; i < 2; i++) {
		client_close(&cs[i]);
	}
}

static const struct test_case tests[] = {
	{ "chat: welcome, nicks, lobby broadcast, quit", test_nicks_and_lobby },
	{ "chat: rooms: join, leave, who, rooms", test_rooms },
	{ "chat: a vanished client leaves and frees its nick",
	  test_vanished_client },
	{ "chat: a line over 4096 bytes disconnects only its sender",
	  test_line_too_long },
	{ "chat: a half-closed client is answered, then closed",
	  test_half_close },
	{ "chat: rate limit of 50 lines per second", test_rate_limit },
	{ "chat: 50 clients, 20 lines each, all heard in order", test_crowd },
	{ "chat: a client that does not read is dropped, the room goes on",
	  test_client_that_does_not_read },
	{ "chat: --rate, --workers, --flush-ms, --window, and bad options",
	  test_options },
	{ "chat: #room names, any case", test_room_names },
	{ "chat: a room over 100 members sums up joins and leaves",
	  test_big_room_sums_up },
	{ "chat: a busy room holds its senders back",
	  test_busy_room_holds_senders_back },
	{ "chat: SIGTERM under load: everyone told, exit 0",
	  test_stop_under_load },
	{ "chat: --node: two servers, one room, lines cross", test_cluster },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s path-of-example-chat [filter]\n",
			argv[0]);
		return 2;
	}
	chat_path = argv[1];
	/* A write to a connection the server closed must fail, not kill. */
	signal(SIGPIPE, SIG_IGN);
	/* The harness reads an optional filter from its argv[1]. */
	return harness_run(tests, argc - 1, argv + 1);
}
