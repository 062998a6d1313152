/*
 * The agent hub (examples/agenthub/) stopped by a signal, seen from
 * outside: each test runs `agenthub --no-load` as a child process, talks
 * to it over plain sockets as `nc` would, sends it SIGTERM and checks
 * that it exits with status 0 and that its self-check passed.
 *
 *     test_agenthub <path-of-agenthub> [name filter]
 *
 * Every wait has a deadline, generous because the sanitizer builds run
 * the hub 5-20 times slower; no test asserts how long anything took. The
 * child is killed if this program dies (PR_SET_PDEATHSIG).
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
	START_WAIT_MS = 30000, /* for the "listening on" line */
	EXIT_WAIT_MS = 60000,  /* from SIGTERM to the exit */
	LOAD_WAIT_MS = 120000, /* for the load to get going */
	OUT_MAX = 64 * 1024,   /* the hub's stdout: its summary is ~3 KB */
	CLIENT_BUF = 1 << 20,  /* a result line is a few KB */
	ID_MAX = 24,
};

static const char *hub_path;

/* ------------------------------------------------------------------ */
/* The hub process                                                     */

struct hub {
	pid_t pid;
	int out; /* its stdout */
	uint16_t port;
	char text[OUT_MAX + 1]; /* what it printed */
	size_t len;
};

/* Read what the hub printed, if anything comes within @timeout_ms;
 * false at the end of its output. */
static bool
hub_read(struct hub *h, int timeout_ms)
{
	struct pollfd pf = { .fd = h->out, .events = POLLIN };

	if (h->len < OUT_MAX && poll(&pf, 1, timeout_ms) > 0) {
		ssize_t n = read(h->out, h->text + h->len, OUT_MAX - h->len);
		if (n <= 0) {
			return false;
		}
		h->len += (size_t)n;
		h->text[h->len] = '\0';
	}
	return true;
}

/* `agenthub --no-load --port 0 --quiet @args...`, and its port. */
static bool
hub_start(struct hub *h, const char *const *args)
{
	const char *argv[16] = { hub_path, "--no-load", "--port", "0",
				 "--quiet" };
	size_t argc = 5;
	pid_t parent = getpid();
	int p[2];

	for (size_t i = 0; args != NULL && args[i] != NULL && argc < 15; i++) {
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	memset(h, 0, sizeof(*h));
	if (pipe2(p, O_CLOEXEC) != 0) {
		CHECK(!"pipe2");
		return false;
	}
	h->pid = fork();
	if (h->pid < 0) {
		CHECK(!"fork");
		close(p[0]);
		close(p[1]);
		return false;
	}
	if (h->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) {
			_exit(127);
		}
		dup2(p[1], STDOUT_FILENO);
		execv(hub_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	h->out = p[0];

	uint64_t deadline = harness_now_ms() + START_WAIT_MS;
	const char *at;
	while ((at = strstr(h->text, "listening on 127.0.0.1:")) == NULL ||
	       strchr(at, '\n') == NULL) {
		int64_t left = (int64_t)(deadline - harness_now_ms());
		if (left <= 0 || !hub_read(h, (int)left)) {
			break;
		}
	}
	unsigned port = 0;
	if (at == NULL || sscanf(at, "listening on 127.0.0.1:%u", &port) != 1 ||
	    port == 0 || port > 65535) {
		fprintf(stderr, "%s:%d: the hub said \"%s\"\n", __FILE__,
			__LINE__, h->text);
		harness_failed_checks++;
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		close(h->out);
		return false;
	}
	h->port = (uint16_t)port;
	return true;
}

/*
 * After SIGTERM (sent at @since_ms): exit status 0 within EXIT_WAIT_MS,
 * and a self-check that passed.
 */
static void
hub_wait(struct hub *h, uint64_t since_ms)
{
	int status = 0;
	pid_t r = 0;
	uint64_t deadline = since_ms + EXIT_WAIT_MS;

	while ((r = waitpid(h->pid, &status, WNOHANG)) == 0 &&
	       harness_now_ms() < deadline) {
		/* A full pipe would hold up its summary. */
		if (!hub_read(h, 10)) {
			harness_nap_us(
				10000); /* closed: only the exit is left */
		}
	}
	if (r != h->pid) {
		fprintf(stderr,
			"%s:%d: the hub did not exit within %d ms of "
			"SIGTERM\n",
			__FILE__, __LINE__, EXIT_WAIT_MS);
		harness_failed_checks++;
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	} else {
		/* Whatever is left in the pipe, up to its end. */
		for (;;) {
			size_t before = h->len;

			if (!hub_read(h, 0) || h->len == before) {
				break;
			}
		}
		CHECK(WIFEXITED(status));
		if (WIFEXITED(status)) {
			CHECK_EQ_INT(WEXITSTATUS(status), 0);
		}
		CHECK(strstr(h->text, "all checks passed") != NULL);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "the hub printed:\n%s\n", h->text);
		}
	}
	close(h->out);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */

static int
connect_to(uint16_t port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		CHECK(!"socket");
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "connect: %s\n", strerror(errno));
		CHECK(!"connect");
		close(fd);
		return -1;
	}
	return fd;
}

static bool
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
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

/* Vanish: close with SO_LINGER 0, so the hub sees a reset. */
static void
reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

/*
 * Fifty clients each send five tasks and reset their connection at once;
 * then the hub is stopped. Their tasks end in the sessions before or
 * after the manager's "accepted" reaches them, in any mix: each must
 * still be counted once, so the self-check holds and the exit status is
 * 0. Three rounds, because the mix depends on timing.
 */
static void
test_clients_that_reset(void)
{
	enum { CLIENTS = 50, TASKS = 5, ROUNDS = 3 };

	for (int round = 0; round < ROUNDS; round++) {
		struct hub *h = calloc(1, sizeof(*h));
		int fds[CLIENTS];

		if (h == NULL || !hub_start(h, NULL)) {
			free(h);
			return;
		}
		for (int i = 0; i < CLIENTS; i++) {
			char buf[TASKS * 64];
			size_t len = 0;

			fds[i] = connect_to(h->port);
			for (int k = 0; k < TASKS && fds[i] >= 0; k++) {
				len += (size_t)sprintf(
					buf + len,
					"{\"task\": \"summarise the docs\", "
					"\"id\": %d}\n",
					k);
			}
			if (fds[i] >= 0) {
				CHECK(send_all(fds[i], buf, len));
			}
		}
		for (int i = 0; i < CLIENTS; i++) {
			if (fds[i] >= 0) {
				reset(fds[i]);
			}
		}
		uint64_t t0 = harness_now_ms();
		kill(h->pid, SIGTERM);
		hub_wait(h, t0);
		free(h);
	}
}

/* One client that keeps two tasks in flight and checks every answer. */
struct task_client {
	int fd;
	bool is_eof;
	bool is_stopping; /* a "the hub is stopping" came */
	char *buf;
	size_t len;
	unsigned next_id;
	unsigned open; /* sent, not ended */
	unsigned results;
	unsigned refused;          /* "the hub is stopping" */
	unsigned accepted_ids[64]; /* accepted, no result yet */
	unsigned n_accepted;
	unsigned problems;
};

static void
tc_send(struct task_client *c)
{
	static const char *const texts[] = {
		"top words in the handbook",
		"summarise the docs",
		"find error in server.log and summarise it",
	};
	char line[160];

	if (c->is_stopping || c->is_eof) {
		return; /* told: nothing more to send */
	}
	int n = snprintf(line, sizeof(line),
			 "{\"task\": \"%s\", \"id\": \"t%u\"}\n",
			 texts[c->next_id % 3], c->next_id);
	c->next_id++;
	if (send_all(c->fd, line, (size_t)n)) {
		c->open++;
	}
}

static void
tc_problem(struct task_client *c, const char *what, const char *line)
{
	if (c->problems++ == 0) {
		fprintf(stderr, "%s: \"%.200s\"\n", what, line);
	}
}

/* One event; the protocol in examples/agenthub/server.c. */
static void
tc_event(struct task_client *c, const char *line)
{
	unsigned id;
	const char *at = strstr(line, "\"id\":\"t");

	if (at == NULL || sscanf(at, "\"id\":\"t%u\"", &id) != 1) {
		tc_problem(c, "an event without an id of ours", line);
		return;
	}
	if (strstr(line, "\"event\":\"accepted\"") != NULL) {
		if (c->n_accepted == 64) {
			tc_problem(c, "too many accepted", line);
			return;
		}
		c->accepted_ids[c->n_accepted++] = id;
		return;
	}
	if (strstr(line, "\"event\":\"progress\"") != NULL) {
		return;
	}
	bool is_result = strstr(line, "\"event\":\"result\"") != NULL;
	bool is_refusal = strstr(line, "\"the hub is stopping\"") != NULL &&
			  strstr(line, "\"event\":\"error\"") != NULL;
	if (!is_result && !is_refusal) {
		tc_problem(c, "an unexpected event", line);
		return;
	}
	/* A result ends an accepted task; a refusal one never accepted. */
	size_t i = 0;
	while (i < c->n_accepted && c->accepted_ids[i] != id) {
		i++;
	}
	if (is_result != (i < c->n_accepted)) {
		tc_problem(c,
			   is_result ? "a result for a task not accepted"
				     : "a refusal of an accepted task",
			   line);
		return;
	}
	if (is_result) {
		c->accepted_ids[i] = c->accepted_ids[--c->n_accepted];
		c->results++;
	} else {
		c->refused++;
		c->is_stopping = true;
	}
	c->open--;
	tc_send(c); /* keep two in flight until told */
}

static void
tc_read(struct task_client *c)
{
	ssize_t n =
		recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->is_eof = true;
		return;
	}
	if (n < 0) {
		return;
	}
	c->len += (size_t)n;
	char *nl;
	while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
		*nl = '\0';
		tc_event(c, c->buf);
		size_t used = (size_t)(nl + 1 - c->buf);
		c->len -= used;
		memmove(c->buf, nl + 1, c->len);
	}
	if (c->len == CLIENT_BUF) {
		tc_problem(c, "a line too long", "");
		c->is_eof = true;
	}
}

/*
 * Clients keep the employees busy with heavy tasks (child processes and
 * model calls) and go on sending while the hub is stopped with a short
 * --stop-timeout, so that tasks are still open at its deadline. Each
 * client must get exactly one result for every task the hub accepted
 * (those open at the deadline fail, but are answered), refusals only for
 * tasks it never accepted, and then the end of the stream; the hub must
 * exit with status 0.
 */
static void
test_stop_under_load(void)
{
	enum { CLIENTS = 24, INFLIGHT = 2 };
	static const char *const args[] = { "--stop-timeout", "1", NULL };
	struct task_client *cs = calloc(CLIENTS, sizeof(*cs));
	struct hub *h = calloc(1, sizeof(*h));
	struct pollfd pfs[CLIENTS];

	if (cs == NULL || h == NULL || !hub_start(h, args)) {
		free(cs);
		free(h);
		return;
	}
	for (int i = 0; i < CLIENTS; i++) {
		cs[i].buf = malloc(CLIENT_BUF);
		cs[i].fd = connect_to(h->port);
		cs[i].is_eof = cs[i].fd < 0 || cs[i].buf == NULL;
		for (int k = 0; k < INFLIGHT && !cs[i].is_eof; k++) {
			tc_send(&cs[i]);
		}
	}
	/* Busy: every client has had a result. */
	uint64_t deadline = harness_now_ms() + LOAD_WAIT_MS;
	unsigned busy = 0;
	while (busy < CLIENTS && harness_now_ms() < deadline) {
		for (int i = 0; i < CLIENTS; i++) {
			pfs[i] = (struct pollfd){
				.fd = cs[i].is_eof ? -1 : cs[i].fd,
				.events = POLLIN,
			};
		}
		if (poll(pfs, CLIENTS, 100) > 0) {
			for (int i = 0; i < CLIENTS; i++) {
				if (pfs[i].revents != 0) {
					tc_read(&cs[i]);
				}
			}
		}
		busy = 0;
		for (int i = 0; i < CLIENTS; i++) {
			busy += cs[i].results > 0;
		}
	}
	CHECK_EQ_U64(busy, CLIENTS);

	/* Stop it; read every stream to its end, still sending. */
	uint64_t t0 = harness_now_ms();
	kill(h->pid, SIGTERM);
	unsigned ended = 0;
	while (ended < CLIENTS && harness_now_ms() < t0 + EXIT_WAIT_MS) {
		for (int i = 0; i < CLIENTS; i++) {
			pfs[i] = (struct pollfd){
				.fd = cs[i].is_eof ? -1 : cs[i].fd,
				.events = POLLIN,
			};
		}
		if (poll(pfs, CLIENTS, 100) > 0) {
			for (int i = 0; i < CLIENTS; i++) {
				if (pfs[i].revents != 0) {
					tc_read(&cs[i]);
				}
			}
		}
		(void)hub_read(h, 0);
		ended = 0;
		for (int i = 0; i < CLIENTS; i++) {
			ended += cs[i].is_eof;
		}
	}
	CHECK_EQ_U64(ended, CLIENTS);
	hub_wait(h, t0);

	unsigned results = 0, refused = 0, owed = 0, problems = 0;
	for (int i = 0; i < CLIENTS; i++) {
		results += cs[i].results;
		refused += cs[i].refused;
		owed += cs[i].n_accepted;
		problems += cs[i].problems;
		if (cs[i].fd >= 0) {
			close(cs[i].fd);
		}
		free(cs[i].buf);
	}
	fprintf(stderr, "%u results, %u refused while stopping\n", results,
		refused);
	CHECK_EQ_U64(owed, 0);     /* every accepted task got its result */
	CHECK_EQ_U64(problems, 0); /* and the protocol held */
	free(cs);
	free(h);
}

static const struct test_case tests[] = {
	{ "agenthub: clients that reset, then SIGTERM: exit 0",
	  test_clients_that_reset },
	{ "agenthub: SIGTERM under load: every accepted task answered, exit 0",
	  test_stop_under_load },
	{ NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s path-of-agenthub [filter]\n",
			argv[0]);
		return 2;
	}
	hub_path = argv[1];
	/* A write to a connection the hub closed must fail, not kill. */
	signal(SIGPIPE, SIG_IGN);
	/* The harness reads an optional filter from its argv[1]. */
	return harness_run(tests, argc - 1, argv + 1);
}
