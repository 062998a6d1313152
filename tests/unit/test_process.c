/*
 * Child processes (<troupe/process.h>): output arrives as lines in order
 * and before the exit message, stdin is written and closed, exit codes,
 * stderr, signals, environment and working directory are reported, a
 * program that cannot start ends in one exit message with libuv's error
 * name, a child whose owner stops is killed and reaped, and a burst of
 * children started by a large parent does not hold up timers.
 */
#include <troupe/troupe.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "harness.h"
#include "fixture.h"

enum {
	MSG_GO = 1, /* uint32_t scenario */
	MSG_EVENT,  /* to the probe: struct event */
};

enum { S_CAT, S_SH, S_KILL, S_BADFILE, S_ORPHAN, S_ENV };

struct event {
	uint32_t kind; /* TR_MSG_PROC_* */
	int32_t os_pid;
	int64_t status;
	int32_t term_signal;
	char text[64];
	char error[32];
};

struct runner {
	tr_pid probe;
	uint32_t scenario;
	tr_process proc;
};

static void
forward(tr_ctx *cx, struct runner *r, const struct event *e)
{
	(void)tr_send(cx, r->probe, MSG_EVENT, e, sizeof(*e));
}

static void
runner_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct runner *r = state;
	struct event e;

	memset(&e, 0, sizeof(e));
	e.kind = m->type;
	switch (m->type) {
	case MSG_GO: {
		r->probe = tr_sender(cx);
		memcpy(&r->scenario, m->data, sizeof(r->scenario));
		static const char *const sh_args[] = {
			"sh", "-c", "echo oops >&2; echo out; exit 3", NULL
		};
		static const char *const sleep_args[] = { "sleep", "100", NULL };
		static const char *const env_args[] = {
			"sh", "-c", "echo $FOO; pwd", NULL
		};
		static const char *const env[] = { "FOO=bar", "PATH=/usr/bin:/bin",
						   NULL };
		tr_process_opts o = { .size = sizeof(o) };
		switch (r->scenario) {
		case S_CAT:
			o.file = "cat";
			break;
		case S_SH:
			o.file = "sh";
			o.args = sh_args;
			break;
		case S_KILL:
		case S_ORPHAN:
			o.file = "sleep";
			o.args = sleep_args;
			break;
		case S_BADFILE:
			o.file = "/nonexistent/troupe-no-such-program";
			break;
		case S_ENV:
			o.file = "sh";
			o.args = env_args;
			o.env = env;
			o.cwd = "/";
			break;
		}
		tr_err err = tr_process_spawn(cx, &o, &r->proc);
		if (err < 0) {
			e.kind = 0;
			e.status = err;
			forward(cx, r, &e);
			return;
		}
		if (r->scenario == S_CAT) {
			(void)tr_process_write(cx, r->proc, "hello\nwor", 9);
			(void)tr_process_write(cx, r->proc, "ld\npartial", 10);
			(void)tr_process_close_stdin(cx, r->proc);
		}
		return;
	}
	case TR_MSG_PROC_STARTED: {
		tr_process_started st;
		memcpy(&st, m->data, sizeof(st));
		e.os_pid = st.os_pid;
		if (r->scenario == S_KILL) {
			(void)tr_process_kill(cx, r->proc, SIGTERM);
		}
		forward(cx, r, &e);
		if (r->scenario == S_ORPHAN) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
		}
		return;
	}
	case TR_MSG_PROC_STDOUT:
	case TR_MSG_PROC_STDERR: {
		const tr_process_line *l = m->data;
		snprintf(e.text, sizeof(e.text), "%s", l->text);
		forward(cx, r, &e);
		return;
	}
	case TR_MSG_PROC_EXIT: {
		tr_process_exit x;
		memcpy(&x, m->data, sizeof(x));
		e.status = x.status;
		e.term_signal = x.term_signal;
		memcpy(e.error, x.error, sizeof(e.error));
		forward(cx, r, &e);
		return;
	}
	default:
		return;
	}
}

static const tr_actor_def runner_def = {
	.size = sizeof(tr_actor_def),
	.name = "runner",
	.state_size = sizeof(struct runner),
	.handle = runner_handle,
};

/* Runs a scenario; collects events until the exit (or @max events). */
static unsigned
run(struct fx *f, uint32_t scenario, struct event *ev, unsigned max)
{
	tr_pid a = fx_spawn(f, &runner_def, NULL);
	unsigned n = 0;

	SEND(f, a, MSG_GO, &scenario, sizeof(scenario));
	while (n < max) {
		if (!fx_recv(f, MSG_EVENT, &ev[n], sizeof(ev[n]))) {
			break;
		}
		if (ev[n++].kind == TR_MSG_PROC_EXIT || ev[n - 1].kind == 0 ||
		    (scenario == S_ORPHAN && n == 1)) {
			break;
		}
	}
	return n;
}

static void
test_cat_lines_in_order(void)
{
	struct fx f;
	struct event ev[8];

	fx_start(&f, 2);
	unsigned n = run(&f, S_CAT, ev, 8);
	CHECK_EQ_U64(n, 5);
	if (n == 5) {
		CHECK_EQ_U64(ev[0].kind, TR_MSG_PROC_STARTED);
		CHECK(ev[0].os_pid > 0);
		CHECK(ev[1].kind == TR_MSG_PROC_STDOUT &&
		      strcmp(ev[1].text, "hello") == 0);
		CHECK(ev[2].kind == TR_MSG_PROC_STDOUT &&
		      strcmp(ev[2].text, "world") == 0);
		/* An unterminated last line arrives at end of file. */
		CHECK(ev[3].kind == TR_MSG_PROC_STDOUT &&
		      strcmp(ev[3].text, "partial") == 0);
		CHECK_EQ_U64(ev[4].kind, TR_MSG_PROC_EXIT);
		CHECK_EQ_INT(ev[4].status, 0);
		CHECK_EQ_INT(ev[4].term_signal, 0);
	}
	fx_finish(&f);
}

static void
test_stderr_and_exit_code(void)
{
	struct fx f;
	struct event ev[8];
	bool saw_out = false, saw_err = false;

	fx_start(&f, 2);
	unsigned n = run(&f, S_SH, ev, 8);
	CHECK_EQ_U64(n, 4);
	for (unsigned i = 0; i < n; i++) {
		saw_out |= ev[i].kind == TR_MSG_PROC_STDOUT &&
			   strcmp(ev[i].text, "out") == 0;
		saw_err |= ev[i].kind == TR_MSG_PROC_STDERR &&
			   strcmp(ev[i].text, "oops") == 0;
	}
	CHECK(saw_out);
	CHECK(saw_err);
	CHECK(n > 0 && ev[n - 1].kind == TR_MSG_PROC_EXIT);
	CHECK_EQ_INT(ev[n - 1].status, 3);
	fx_finish(&f);
}

static void
test_kill_and_env(void)
{
	struct fx f;
	struct event ev[8];

	fx_start(&f, 2);
	unsigned n = run(&f, S_KILL, ev, 8);
	CHECK_EQ_U64(n, 2);
	CHECK(n > 0 && ev[n - 1].kind == TR_MSG_PROC_EXIT);
	CHECK_EQ_INT(ev[n - 1].term_signal, SIGTERM);
	CHECK_EQ_INT(ev[n - 1].status, -1);

	n = run(&f, S_ENV, ev, 8);
	CHECK_EQ_U64(n, 4);
	if (n == 4) {
		CHECK(strcmp(ev[1].text, "bar") == 0);
		CHECK(strcmp(ev[2].text, "/") == 0);
		CHECK_EQ_INT(ev[3].status, 0);
	}
	fx_finish(&f);
}

static void
test_cannot_start(void)
{
	struct fx f;
	struct event ev[4];

	fx_start(&f, 2);
	unsigned n = run(&f, S_BADFILE, ev, 4);
	CHECK_EQ_U64(n, 1);
	CHECK_EQ_U64(ev[0].kind, TR_MSG_PROC_EXIT);
	CHECK_EQ_INT(ev[0].status, -1);
	CHECK(strcmp(ev[0].error, "ENOENT") == 0);
	printf("  missing program: %s\n", ev[0].error);
	fx_finish(&f);
}

static void
test_owner_stop_kills_and_reaps(void)
{
	struct fx f;
	struct event ev[2];

	fx_start(&f, 2);
	unsigned n = run(&f, S_ORPHAN, ev, 1);
	CHECK_EQ_U64(n, 1);
	CHECK_EQ_U64(ev[0].kind, TR_MSG_PROC_STARTED);
	pid_t pid = ev[0].os_pid;
	CHECK(pid > 0);
	/* Gone means killed and reaped: no zombie answers kill(pid, 0). */
	if (pid > 0) {
		WAIT_UNTIL(kill(pid, 0) == -1 && errno == ESRCH, 5000);
	}
	fx_finish(&f);
}

/*
 * Timers and child processes. Starting a child forks the whole process and
 * waits for the exec, which takes longer the more memory the parent maps:
 * if that happened on a loop that also runs timers, a burst of tool runs
 * would hold every timer of that loop. A ticker with a 5 ms period
 * measures the longest gap between its ticks while a spawner starts
 * BURST children from a parent made large on purpose.
 */
enum { MSG_TICK = 10, MSG_REPORT, MSG_GAP, MSG_SPAWNED };
enum { BURST = 16, BIG_MB = 512 };

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct ticker {
	uint64_t last, max_gap, ticks;
};

static void
ticker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct ticker *t = state;

	if (m->type == MSG_GO) {
		t->last = now_ms();
		CHECK_OK(tr_send_every(cx, tr_self(cx), MSG_TICK, NULL, 0, 5,
				       NULL));
	} else if (m->type == MSG_TICK) {
		uint64_t now = now_ms();
		if (now - t->last > t->max_gap) {
			t->max_gap = now - t->last;
		}
		t->last = now;
		t->ticks++;
	} else if (m->type == MSG_REPORT) {
		uint64_t r[2] = { t->max_gap, t->ticks };
		(void)tr_send(cx, tr_sender(cx), MSG_GAP, r, sizeof(r));
	}
}

static const tr_actor_def ticker_def = {
	.size = sizeof(tr_actor_def),
	.name = "ticker",
	.state_size = sizeof(struct ticker),
	.handle = ticker_handle,
};

struct spawner {
	tr_pid probe;
	unsigned started, exited;
};

static void
spawner_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct spawner *s = state;
	static const char *const args[] = { "true", NULL };

	if (m->type == MSG_GO) {
		s->probe = tr_sender(cx);
		for (unsigned i = 0; i < BURST; i++) {
			tr_process_opts o = { .size = sizeof(o), .file = "true",
					      .args = args };
			tr_process p;
			CHECK_OK(tr_process_spawn(cx, &o, &p));
		}
	} else if (m->type == TR_MSG_PROC_STARTED) {
		s->started++;
	} else if (m->type == TR_MSG_PROC_EXIT) {
		if (++s->exited == BURST) {
			uint32_t n = s->started;
			(void)tr_send(cx, s->probe, MSG_SPAWNED, &n, sizeof(n));
		}
	}
}

static const tr_actor_def spawner_def = {
	.size = sizeof(tr_actor_def),
	.name = "spawner",
	.state_size = sizeof(struct spawner),
	.handle = spawner_handle,
};

static void
test_spawn_burst_keeps_timers(void)
{
	struct fx f;
	size_t big = (size_t)BIG_MB << 20;
	/* Touched, in small pages: fork copies a page table entry for each. */
	char *mem = mmap(NULL, big, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	if (mem == MAP_FAILED) {
		return;
	}
	(void)madvise(mem, big, MADV_NOHUGEPAGE);
	for (size_t off = 0; off < big; off += 4096) {
		mem[off] = 1;
	}
	fx_start(&f, 2);
	tr_pid t = fx_spawn(&f, &ticker_def, NULL);
	tr_pid s = fx_spawn(&f, &spawner_def, NULL);
	uint32_t go = 0, started = 0;
	uint64_t gap[2] = { 0, 0 };

	SEND(&f, t, MSG_GO, &go, sizeof(go));
	uint64_t t0 = now_ms();
	SEND(&f, s, MSG_GO, &go, sizeof(go));
	CHECK(fx_recv(&f, MSG_SPAWNED, &started, sizeof(started)));
	uint64_t burst_ms = now_ms() - t0;
	CHECK_EQ_U64(started, BURST);
	SEND(&f, t, MSG_REPORT, NULL, 0);
	CHECK(fx_recv(&f, MSG_GAP, gap, sizeof(gap)));
	printf("  %u children from a %u MiB parent in %llu ms; longest gap "
	       "between 5 ms ticks %llu ms (%llu ticks)\n",
	       BURST, BIG_MB, (unsigned long long)burst_ms,
	       (unsigned long long)gap[0], (unsigned long long)gap[1]);
	/* Generous for loaded and sanitizer builds; a loop blocked by the
	 * burst shows a gap as long as the whole burst. */
	CHECK(gap[1] > 0);
	CHECK(gap[0] < 200);
	fx_finish(&f);
	munmap(mem, big);
}

static const struct test_case tests[] = {
	{ "process: stdin in, stdout lines in order, exit after output",
	  test_cat_lines_in_order },
	{ "process: stderr lines and the exit code", test_stderr_and_exit_code },
	{ "process: kill, environment and working directory",
	  test_kill_and_env },
	{ "process: a missing program ends in one exit with ENOENT",
	  test_cannot_start },
	{ "process: the owner stopping kills and reaps the child",
	  test_owner_stop_kills_and_reaps },
	{ "process: a burst of children from a large parent holds no timer",
	  test_spawn_burst_keeps_timers },
	{ NULL, NULL },
};

TEST_MAIN(tests)
