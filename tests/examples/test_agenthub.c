/*
 * The agent hub (examples/agenthub/) stopped by a signal, seen from
 * outside: each test runs `agenthub --no-load` as a child process, talks
 * to it over plain sockets as `nc` would, sends it SIGTERM and checks
 * that it exits with status 0 and that its self-check passed. The --db
 * tests also kill it with SIGKILL and read its activity log back, through
 * the restarted hub's report and with SQLite, read-only, as any reader of
 * the file may.
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
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

enum {
	START_WAIT_MS = 30000, /* for the "listening on" line */
	EXIT_WAIT_MS = 60000,  /* from SIGTERM to the exit */
	LOAD_WAIT_MS = 120000, /* for the load to get going */
	OUT_MAX = 64 * 1024,   /* the hub's stdout: its summary is ~3 KB */
	CLIENT_BUF = 1 << 20,  /* a result line is a few KB */
	ID_MAX = 24,
	PATH_LEN = 512,
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

/* ------------------------------------------------------------------ */
/* The activity log (--db)                                             */

/* A directory of our own for a database and data files. */
static bool
temp_dir(char *out, size_t size)
{
	const char *base = getenv("TMPDIR");

	snprintf(out, size, "%s/agenthub-db-XXXXXX",
		 base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(out) == NULL) {
		CHECK(!"mkdtemp");
		return false;
	}
	return true;
}

/* Remove the database (and its WAL files) and the directory. */
static void
temp_clean(const char *dir, const char *db)
{
	char p[PATH_LEN + 8];

	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
	unlink(db);
	rmdir(dir);
}

/* This run's id, from the line "db ... this run N". */
static uint64_t
hub_run_id(const struct hub *h)
{
	const char *at = strstr(h->text, ", this run ");
	unsigned long long run = 0;

	if (at == NULL || sscanf(at, ", this run %llu", &run) != 1) {
		fprintf(stderr, "no run id in \"%s\"\n", h->text);
	}
	return run;
}

/* What the report says of one previous run. */
struct prev_report {
	bool is_found;
	unsigned long long finished, ok, failed, interrupted;
	unsigned long long listed[8];
	unsigned n_listed;
	bool has_no_stop; /* "no stop record" */
};

static struct prev_report
hub_prev(const struct hub *h, uint64_t run)
{
	struct prev_report p = { 0 };
	char key[64];

	snprintf(key, sizeof(key), "run %llu: ", (unsigned long long)run);
	const char *at = strstr(h->text, key);
	if (at == NULL) {
		fprintf(stderr, "no \"%s\" in \"%s\"\n", key, h->text);
		return p;
	}
	at += strlen(key);
	const char *eol = strchr(at, '\n');
	const char *in = strstr(at, " interrupted");
	if (eol == NULL || in == NULL || in > eol ||
	    sscanf(at, "%llu finished (%llu ok, %llu failed", &p.finished,
		   &p.ok, &p.failed) != 3) {
		return p;
	}
	/* "..., N interrupted: a, b, c" */
	while (in > at && in[-1] != ' ') {
		in--;
	}
	if (sscanf(in, "%llu", &p.interrupted) != 1) {
		return p;
	}
	const char *list = strstr(in, "interrupted: ");
	if (list != NULL && list < eol) {
		list += strlen("interrupted: ");
		char *end;
		while (p.n_listed < 8) {
			unsigned long long v = strtoull(list, &end, 10);
			if (end == list) {
				break;
			}
			p.listed[p.n_listed++] = v;
			if (strncmp(end, ", ", 2) != 0) {
				break;
			}
			list = end + 2;
		}
	}
	const char *ns = strstr(at, "no stop record");
	p.has_no_stop = ns != NULL && ns < eol;
	p.is_found = true;
	return p;
}

/* A client that sends tasks and counts what comes back. */
struct line_client {
	int fd;
	char *buf;
	size_t len;
	unsigned accepted, results, ok;
};

static void
lc_send(struct line_client *c, const char *task, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		char line[160];
		int len = snprintf(line, sizeof(line),
				   "{\"task\": \"%s\", \"id\": \"k%u\"}\n",
				   task, i);

		CHECK(send_all(c->fd, line, (size_t)len));
	}
}

/* Read events until @accepted "accepted" and @results "result" events
 * have come; false at the deadline or the end of the stream. */
static bool
lc_wait(struct line_client *c, unsigned accepted, unsigned results)
{
	uint64_t deadline = harness_now_ms() + LOAD_WAIT_MS;

	while (c->accepted < accepted || c->results < results) {
		int64_t left = (int64_t)(deadline - harness_now_ms());
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };

		if (left <= 0) {
			return false;
		}
		if (poll(&pf, 1, (int)(left < 100 ? left : 100)) <= 0) {
			continue;
		}
		ssize_t n =
			recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);
		if (n <= 0) {
			return false;
		}
		c->len += (size_t)n;
		char *nl;
		while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
			*nl = '\0';
			if (strstr(c->buf, "\"event\":\"accepted\"") != NULL) {
				c->accepted++;
			} else if (strstr(c->buf, "\"event\":\"result\"") !=
				   NULL) {
				c->results++;
				c->ok += strstr(c->buf, "\"event\":\"result\","
							"\"ok\":true") != NULL;
			}
			c->len -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->len);
		}
		if (c->len == CLIENT_BUF) {
			return false;
		}
	}
	return true;
}

/*
 * A run with --db on a fresh file: six tasks, their results, SIGTERM.
 * The next run on the same file reports the first: six finished, as many
 * ok and failed as the client got, none interrupted, and its stop record.
 */
static void
test_db_report(void)
{
	enum { TASKS = 6 };
	char dir[PATH_LEN], db[PATH_LEN + 16];
	struct hub *h = calloc(1, sizeof(*h));
	struct line_client c = { .fd = -1, .buf = malloc(CLIENT_BUF) };

	if (h == NULL || c.buf == NULL || !temp_dir(dir, sizeof(dir))) {
		free(h);
		free(c.buf);
		return;
	}
	snprintf(db, sizeof(db), "%s/hub.db", dir);
	const char *const args[] = { "--db", db, NULL };

	if (hub_start(h, args)) {
		uint64_t run = hub_run_id(h);

		CHECK(strstr(h->text, "no previous run") != NULL);
		c.fd = connect_to(h->port);
		if (c.fd >= 0) {
			lc_send(&c, "count server.log", TASKS);
			CHECK(lc_wait(&c, TASKS, TASKS));
			close(c.fd);
		}
		uint64_t t0 = harness_now_ms();
		kill(h->pid, SIGTERM);
		hub_wait(h, t0);
		CHECK(strstr(h->text, "records written, 0 failed") != NULL);
		CHECK_EQ_U64(c.results, TASKS);

		if (hub_start(h, args)) {
			struct prev_report p = hub_prev(h, run);

			CHECK(p.is_found);
			CHECK(strstr(h->text, "previous run") != NULL);
			CHECK_EQ_U64(p.finished, c.results);
			CHECK_EQ_U64(p.ok, c.ok);
			CHECK_EQ_U64(p.failed, c.results - c.ok);
			CHECK_EQ_U64(p.interrupted, 0);
			CHECK(!p.has_no_stop);
			CHECK(hub_run_id(h) > run);
			t0 = harness_now_ms();
			kill(h->pid, SIGTERM);
			hub_wait(h, t0);
		}
	}
	temp_clean(dir, db);
	free(c.buf);
	free(h);
}

/* The task numbers of a run's "task" records, read as any reader of the
 * file may: read-only, beside the hub's store. */
static unsigned
db_tasks(const char *db, uint64_t run, unsigned long long *out, unsigned max)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	unsigned n = 0;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(h,
			       "SELECT json_extract(body, '$.task') FROM "
			       "troupe_log WHERE kind = 'task' AND "
			       "json_extract(body, '$.run') = ?1 "
			       "ORDER BY 1",
			       -1, &st, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return 0; /* not created yet, or busy: asked again */
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)run);
	while (sqlite3_step(st) == SQLITE_ROW && n < max) {
		out[n++] = (unsigned long long)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

/*
 * Tasks that cannot finish: their tool reads a FIFO nobody writes to.
 * Once their records are on disk the hub is killed with SIGKILL; the
 * next run on the same file reports those tasks interrupted, by number,
 * and that the run left no stop record. Then the tools are let go (the
 * FIFO gets a writer and loses it) and reaped: this process is their
 * subreaper once the hub is gone.
 */
static void
test_db_killed(void)
{
	enum { TASKS = 3 };
	char dir[PATH_LEN], db[PATH_LEN + 16], data[PATH_LEN + 16],
		fifo[PATH_LEN + 32];
	struct hub *h = calloc(1, sizeof(*h));
	struct line_client c = { .fd = -1, .buf = malloc(CLIENT_BUF) };
	unsigned long long tasks[TASKS + 1];
	unsigned n_tasks = 0;

	if (h == NULL || c.buf == NULL || !temp_dir(dir, sizeof(dir))) {
		free(h);
		free(c.buf);
		return;
	}
	snprintf(db, sizeof(db), "%s/hub.db", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(fifo, sizeof(fifo), "%s/slow.txt", data);
	CHECK(mkdir(data, 0700) == 0);
	CHECK(mkfifo(fifo, 0600) == 0);
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	const char *const args[] = { "--db",           db,       "--data", data,
				     "--task-timeout", "600000", NULL };

	if (hub_start(h, args)) {
		uint64_t run = hub_run_id(h);

		c.fd = connect_to(h->port);
		if (c.fd >= 0) {
			lc_send(&c, "count slow", TASKS);
			CHECK(lc_wait(&c, TASKS, 0));
		}
		/* Accepted; now wait for their records to be on disk. */
		uint64_t deadline = harness_now_ms() + LOAD_WAIT_MS;
		while ((n_tasks = db_tasks(db, run, tasks, TASKS + 1)) <
			       TASKS &&
		       harness_now_ms() < deadline) {
			harness_nap_us(20000);
		}
		CHECK_EQ_U64(n_tasks, TASKS);
		CHECK_EQ_U64(c.results, 0); /* none could finish */
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		close(h->out);
		if (c.fd >= 0) {
			close(c.fd);
		}

		const char *const args2[] = { "--db", db, NULL };
		if (hub_start(h, args2)) {
			struct prev_report p = hub_prev(h, run);

			CHECK(p.is_found);
			CHECK_EQ_U64(p.finished, 0);
			CHECK_EQ_U64(p.interrupted, TASKS);
			CHECK_EQ_U64(p.n_listed, n_tasks);
			for (unsigned i = 0; i < p.n_listed && i < n_tasks;
			     i++) {
				CHECK_EQ_U64(p.listed[i], tasks[i]);
			}
			CHECK(p.has_no_stop);
			uint64_t t0 = harness_now_ms();
			kill(h->pid, SIGTERM);
			hub_wait(h, t0);
		}
	}
	/* Let the blocked tools go: a writer comes and goes, they read the
	 * end of the file; then reap them. Again and again, for a tool the
	 * hub forked just before it died, which may open the FIFO late. */
	uint64_t deadline = harness_now_ms() + EXIT_WAIT_MS;
	do {
		int fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
		}
		harness_nap_us(10000);
	} while (waitpid(-1, NULL, WNOHANG) >= 0 &&
		 harness_now_ms() < deadline);
	(void)prctl(PR_SET_CHILD_SUBREAPER, 0);
	unlink(fifo);
	rmdir(data);
	temp_clean(dir, db);
	free(c.buf);
	free(h);
}

/* Run `agenthub @args...` until it exits, at most @timeout_ms; its exit
 * status (-1 if it did not exit by itself), its stdout and stderr in
 * @out. */
static int
hub_run_to_exit(const char *const *args, int64_t timeout_ms, char *out,
		size_t size)
{
	const char *argv[32] = { hub_path };
	size_t argc = 1, len = 0;
	int p[2], status = -1;

	for (size_t i = 0; args[i] != NULL && argc < 31; i++) {
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) != 0) {
		CHECK(!"pipe2");
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execv(hub_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int64_t left = (int64_t)(deadline - harness_now_ms());
		ssize_t n;

		if (pid < 0 || left <= 0 || poll(&pf, 1, (int)left) <= 0 ||
		    (n = read(p[0], out + len, size - 1 - len)) <= 0) {
			break;
		}
		len += (size_t)n;
		out[len] = '\0';
	}
	close(p[0]);
	if (pid > 0) {
		if (harness_now_ms() >= deadline) {
			kill(pid, SIGKILL); /* it went on: the check fails */
		}
		waitpid(pid, &status, 0);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * With --db under the built-in load (crashes, model failures and
 * outages, as in `meson test agenthub`), twice on one file: each run's
 * self-check, which holds the log's counts to the manager's and the
 * store's, passes; the second reports every task of the first finished.
 */
static void
test_db_under_load(void)
{
	enum { CLIENTS = 4, TASKS = 5 };
	char dir[PATH_LEN], db[PATH_LEN + 16];
	char *out = malloc(OUT_MAX);

	if (out == NULL || !temp_dir(dir, sizeof(dir))) {
		free(out);
		return;
	}
	snprintf(db, sizeof(db), "%s/hub.db", dir);
	const char *const args[] = {
		"--clients",
		"4",
		"--tasks-per-client",
		"5",
		"--crash-rate",
		"0.1",
		"--model-fail",
		"0.1",
		"--outage-every",
		"1",
		"--outage-ms",
		"300",
		"--port",
		"0",
		"--quiet",
		"--db",
		db,
		NULL,
	};
	uint64_t run = 0;

	for (int i = 0; i < 2; i++) {
		int status = hub_run_to_exit(args, LOAD_WAIT_MS, out, OUT_MAX);

		CHECK_EQ_INT(status, 0);
		CHECK(strstr(out, "all checks passed") != NULL);
		CHECK(strstr(out, "ok    the activity log: ") != NULL);
		if (status != 0) {
			fprintf(stderr, "the hub printed:\n%s\n", out);
		}
		if (i == 0) {
			const char *at = strstr(out, ", this run ");
			unsigned long long v = 0;

			CHECK(at != NULL &&
			      sscanf(at, ", this run %llu", &v) == 1);
			run = v;
			continue;
		}
		struct hub *h = calloc(1, sizeof(*h));
		if (h != NULL) {
			snprintf(h->text, sizeof(h->text), "%s", out);
			struct prev_report p = hub_prev(h, run);

			CHECK(p.is_found);
			CHECK_EQ_U64(p.finished, CLIENTS * TASKS);
			CHECK_EQ_U64(p.ok + p.failed, CLIENTS * TASKS);
			CHECK_EQ_U64(p.interrupted, 0);
			CHECK(!p.has_no_stop);
			free(h);
		}
	}
	temp_clean(dir, db);
	free(out);
}

/*
 * A file that is not a database: the hub says so on stderr, naming the
 * file, and exits with status 2 without serving; the file is left as it
 * was.
 */
static void
test_db_refused(void)
{
	static const char junk[] = "this is not a database, only text\n";
	char dir[PATH_LEN], db[PATH_LEN + 16], back[sizeof(junk)];
	char *out = malloc(OUT_MAX);

	if (out == NULL || !temp_dir(dir, sizeof(dir))) {
		free(out);
		return;
	}
	snprintf(db, sizeof(db), "%s/hub.db", dir);
	int fd = open(db, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 &&
	      write(fd, junk, sizeof(junk) - 1) == (ssize_t)(sizeof(junk) - 1));
	if (fd >= 0) {
		close(fd);
	}
	const char *const args[] = { "--no-load", "--port", "0", "--quiet",
				     "--db",      db,       NULL };

	CHECK_EQ_INT(hub_run_to_exit(args, START_WAIT_MS, out, OUT_MAX), 2);
	CHECK(strstr(out, db) != NULL);
	CHECK(strstr(out, "listening on") == NULL);
	if (strstr(out, db) == NULL) {
		fprintf(stderr, "the hub said \"%s\"\n", out);
	}
	fd = open(db, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 &&
	      read(fd, back, sizeof(back)) == (ssize_t)(sizeof(junk) - 1));
	CHECK(memcmp(back, junk, sizeof(junk) - 1) == 0);
	if (fd >= 0) {
		close(fd);
	}
	temp_clean(dir, db);
	free(out);
}

static const struct test_case tests[] = {
	{ "agenthub: clients that reset, then SIGTERM: exit 0",
	  test_clients_that_reset },
	{ "agenthub: SIGTERM under load: every accepted task answered, exit 0",
	  test_stop_under_load },
	{ "agenthub: --db: the next run reports what the last one finished",
	  test_db_report },
	{ "agenthub: --db: SIGKILL with tasks in flight: reported interrupted",
	  test_db_killed },
	{ "agenthub: --db: a file that is not a database: exit 2",
	  test_db_refused },
	{ "agenthub: --db under load: the log's counts exact, twice",
	  test_db_under_load },
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
