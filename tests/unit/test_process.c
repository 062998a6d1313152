/*
 * Child processes (<troupe/process.h>): output arrives as lines in order
 * and before the exit message, stdin is written and closed, exit codes,
 * stderr, signals, environment and working directory are reported, a
 * program that cannot start ends in one exit message with libuv's error
 * name, a child whose owner stops is killed and reaped with its process
 * group, nothing a child leaves behind holds up a stop, a burst of
 * children started by a large parent does not hold up timers, closes of
 * a record's handles all finish before it is freed, and output pauses
 * above a watermark while the owner is behind.
 */
#include <troupe/troupe.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "harness.h"
#include "fixture.h"
#include "runtime/alloc.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

enum {
	MSG_GO = 1, /* uint32_t scenario */
	MSG_EVENT,  /* to the probe: struct event */
};

enum {
	S_CAT,
	S_SH,
	S_KILL,
	S_BADFILE,
	S_ORPHAN,
	S_ENV,
	S_GRANDCHILD,
	S_DAEMON,
	S_DAEMON_KILL
};

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
		static const char *const sleep_args[] = { "sleep", "100",
							  NULL };
		static const char *const env_args[] = { "sh", "-c",
							"echo $FOO; pwd",
							NULL };
		static const char *const env[] = { "FOO=bar",
						   "PATH=/usr/bin:/bin", NULL };
		/* A background job holds the pipes after sh has exited; a
		 * setsid one also leaves sh's process group. Each prints
		 * its pid. */
		static const char *const grandchild_args[] = {
			"sh", "-c", "sleep 1000 & echo $!", NULL
		};
		static const char *const daemon_args[] = {
			"sh", "-c", "setsid sleep 1000 & echo $!", NULL
		};
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
		case S_GRANDCHILD:
			o.file = "sh";
			o.args = grandchild_args;
			break;
		case S_DAEMON:
		case S_DAEMON_KILL:
			o.file = "sh";
			o.args = daemon_args;
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
		if (r->scenario == S_GRANDCHILD || r->scenario == S_DAEMON) {
			tr_stop_self(cx, TR_EXIT_NORMAL);
		} else if (r->scenario == S_DAEMON_KILL) {
			(void)tr_process_kill(cx, r->proc, SIGKILL);
		}
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
		    (scenario == S_ORPHAN && n == 1) ||
		    ((scenario == S_GRANDCHILD || scenario == S_DAEMON) &&
		     ev[n - 1].kind == TR_MSG_PROC_STDOUT)) {
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
		WAIT_UNTIL(kill(pid, 0) == -1 && errno == ESRCH, 30000);
	}
	fx_finish(&f);
}

/* Gone: no such process, or a zombie its new parent has not reaped. */
static bool
proc_gone(pid_t pid)
{
	char path[64], buf[256];

	if (kill(pid, 0) == -1 && errno == ESRCH) {
		return true;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		return true;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Runs on the process loop: holds it until the test lets go. */
static atomic_bool loop_held, loop_release;

static void
hold_loop(struct tr__io *io, void *arg)
{
	(void)io;
	(void)arg;
	atomic_store(&loop_held, true);
	uint64_t until = harness_now_ms() + 120000;
	while (!atomic_load(&loop_release) && harness_now_ms() < until) {
		harness_nap_us(200);
	}
}

/*
 * The same, made certain: the child is killed while its loop is held,
 * and the close of its stdin is queued meanwhile, so that when the loop
 * runs again the close comes first in the next pass and the exit and
 * both ends of file in the poll of that same pass. The record must not
 * be freed before libuv has finished closing stdin, which lives inside
 * it: in a debug build a freed record is poisoned, and libuv's own check
 * of a closing handle then aborts the test.
 */
enum { MSG_CL_GO = 50, MSG_CL_PID, MSG_CL_CLOSE, MSG_CL_CLOSED, MSG_CL_EXIT };

struct racer {
	tr_pid probe;
	tr_process proc;
};

static void
racer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct racer *r = state;
	static const char *const args[] = { "sleep", "1000", NULL };

	switch (m->type) {
	case MSG_CL_GO: {
		r->probe = tr_sender(cx);
		tr_process_opts o = { .size = sizeof(o),
				      .file = "sleep",
				      .args = args };
		(void)tr_process_spawn(cx, &o, &r->proc);
		return;
	}
	case TR_MSG_PROC_STARTED: {
		tr_process_started st;
		memcpy(&st, m->data, sizeof(st));
		int32_t pid = st.os_pid;
		(void)tr_send(cx, r->probe, MSG_CL_PID, &pid, sizeof(pid));
		return;
	}
	case MSG_CL_CLOSE: {
		tr_err err = tr_process_close_stdin(cx, r->proc);
		(void)tr_send(cx, r->probe, MSG_CL_CLOSED, &err, sizeof(err));
		return;
	}
	case TR_MSG_PROC_EXIT:
		(void)tr_send(cx, r->probe, MSG_CL_EXIT, NULL, 0);
		return;
	default:
		return;
	}
}

static const tr_actor_def racer_def = {
	.size = sizeof(tr_actor_def),
	.name = "racer",
	.state_size = sizeof(struct racer),
	.handle = racer_handle,
};

static void
test_close_stdin_with_exit_in_one_pass(void)
{
	struct fx f;
	int32_t pid = 0;
	tr_err err = TR_EINVAL;

	fx_start(&f, 2);
	tr_pid r = fx_spawn(&f, &racer_def, NULL);
	SEND(&f, r, MSG_CL_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_CL_PID, &pid, sizeof(pid)));
	CHECK(pid > 0);
	atomic_store(&loop_held, false);
	atomic_store(&loop_release, false);
	CHECK_OK(tr__io_call(tr__io_proc_loop(f.rt->io), hold_loop, NULL));
	WAIT_UNTIL(atomic_load(&loop_held), 30000);
	if (pid > 0) {
		kill(pid, SIGKILL);
		/* Dead, not yet reaped: the loop that would reap it is held. */
		WAIT_UNTIL(proc_gone(pid), 30000);
	}
	SEND(&f, r, MSG_CL_CLOSE, NULL, 0);
	CHECK(fx_recv(&f, MSG_CL_CLOSED, &err, sizeof(err)));
	CHECK_OK(err);
	atomic_store(&loop_release, true);
	CHECK(fx_recv(&f, MSG_CL_EXIT, NULL, 0));
	fx_finish(&f);
}

/*
 * A child's stdin closed as soon as it has started, by many owners at
 * once: the close, the exit and both ends of file then often come in one
 * pass of the loop. Each close of the record's handles must finish
 * before the record is freed; debug builds poison freed memory, so libuv
 * finishing a close inside a freed record trips its own assertion.
 */
enum { MSG_CLOSER_GO = 20, MSG_CLOSER_DONE, CLOSERS = 12, CLOSER_RUNS = 20 };

struct closer {
	tr_pid probe;
	unsigned started, exits;
};

static void
closer_spawn(tr_ctx *cx, struct closer *c)
{
	static const char *const args[] = { "true", NULL };
	tr_process_opts o = { .size = sizeof(o), .file = "true", .args = args };
	tr_process p;

	if (tr_process_spawn(cx, &o, &p) == TR_OK) {
		c->started++;
	}
}

static void
closer_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct closer *c = state;

	if (m->type == MSG_CLOSER_GO) {
		c->probe = tr_sender(cx);
		closer_spawn(cx, c);
	} else if (m->type == TR_MSG_PROC_STARTED) {
		tr_process_started st;
		memcpy(&st, m->data, sizeof(st));
		(void)tr_process_close_stdin(cx, st.proc);
	} else if (m->type == TR_MSG_PROC_EXIT) {
		if (++c->exits < CLOSER_RUNS) {
			closer_spawn(cx, c);
			return;
		}
		uint32_t r[2] = { c->started, c->exits };
		(void)tr_send(cx, c->probe, MSG_CLOSER_DONE, r, sizeof(r));
	}
}

static const tr_actor_def closer_def = {
	.size = sizeof(tr_actor_def),
	.name = "closer",
	.state_size = sizeof(struct closer),
	.handle = closer_handle,
};

static void
test_close_stdin_at_once(void)
{
	struct fx f;

	fx_start(&f, 2);
	for (unsigned i = 0; i < CLOSERS; i++) {
		tr_pid c = fx_spawn(&f, &closer_def, NULL);
		SEND(&f, c, MSG_CLOSER_GO, NULL, 0);
	}
	for (unsigned i = 0; i < CLOSERS; i++) {
		uint32_t r[2] = { 0, 0 };
		CHECK(fx_recv(&f, MSG_CLOSER_DONE, r, sizeof(r)));
		CHECK_EQ_U64(r[0], CLOSER_RUNS);
		CHECK_EQ_U64(r[1], CLOSER_RUNS);
	}
	fx_finish(&f);
}

/*
 * What a child leaves behind. A background job of sh holds the output
 * pipes after sh has exited; when the owner stops, it must die with the
 * child's process group. One that left the group (setsid) cannot be
 * killed that way, but it must not hold up the runtime's stop: the pipes
 * of a child that has exited are closed when its owner goes.
 */
static void
test_owner_stop_kills_the_group(void)
{
	struct fx f;
	struct event ev[4];

	fx_start(&f, 2);
	unsigned n = run(&f, S_GRANDCHILD, ev, 4);
	CHECK_EQ_U64(n, 2);
	pid_t gpid = n == 2 ? (pid_t)atoi(ev[1].text) : 0;
	CHECK(gpid > 0);
	if (gpid > 0) {
		WAIT_UNTIL(proc_gone(gpid), 30000);
		if (!proc_gone(gpid)) {
			kill(gpid, SIGKILL);
		}
	}
	fx_finish(&f);
}

struct joiner {
	tr_runtime *rt;
	atomic_bool done;
};

static void *
join_thread(void *arg)
{
	struct joiner *j = arg;

	tr_runtime_stop(j->rt);
	CHECK_OK(tr_runtime_join(j->rt));
	atomic_store(&j->done, true);
	return NULL;
}

static void
test_stop_with_output_held_open(void)
{
	struct fx f;
	struct event ev[4];

	fx_start(&f, 2);
	unsigned n = run(&f, S_DAEMON, ev, 4);
	CHECK_EQ_U64(n, 2);
	pid_t dpid = n == 2 ? (pid_t)atoi(ev[1].text) : 0;
	CHECK(dpid > 0);

	/* The owner has stopped; stop and join must not wait for the
	 * process that still holds its child's pipes. */
	struct joiner j = { .rt = f.rt };
	pthread_t th;
	tr_inbox_destroy(f.ib);
	CHECK(pthread_create(&th, NULL, join_thread, &j) == 0);
	bool joined = WAIT_UNTIL(atomic_load(&j.done), 30000);
	if (dpid > 0) {
		kill(dpid, SIGKILL); /* it left the group: ours to end */
	}
	if (!joined) {
		fprintf(stderr, "  join waited for the daemon\n");
	}
	pthread_join(th, NULL);
	check_final_metrics(f.rt);
	tr_runtime_destroy(f.rt);
}

static void
test_sigkill_ends_wait_for_output(void)
{
	struct fx f;
	struct event ev[8];

	fx_start(&f, 2);
	/* The owner lives: SIGKILL means "over", so the exit message comes
	 * although something the child left behind holds its pipes. */
	unsigned n = run(&f, S_DAEMON_KILL, ev, 8);
	CHECK(n >= 3);
	CHECK(n > 0 && ev[n - 1].kind == TR_MSG_PROC_EXIT);
	pid_t dpid = n >= 2 ? (pid_t)atoi(ev[1].text) : 0;
	CHECK(dpid > 0);
	if (dpid > 0) {
		kill(dpid, SIGKILL);
	}
	fx_finish(&f);
}

/*
 * Flow control: `yes` writes lines far faster than an owner that is stuck
 * in its first handler reads them. Reading must pause with a bounded
 * number of lines queued (one read of 64 KiB of "y" lines is 32,768 of
 * them, past the high watermark), and start again once the owner runs.
 */
enum { MSG_YES_GO = 30, MSG_YES_PID, MSG_YES_DONE, YES_LINES = 200000 };

static atomic_bool yes_release;
static atomic_uint_fast64_t yes_lines;
static atomic_int yes_pid;

/* The child sleeps in write(2) on its full stdout (libuv makes it a
 * socket pair, so the kernel waits in the socket's send path). */
static bool
blocked_in_write(int pid)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	FILE *fp = fopen(path, "r");
	if (fp == NULL) {
		return false;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, "pipe_write") != NULL ||
	       strstr(buf, "sock_alloc_send") != NULL ||
	       strstr(buf, "unix_stream_sendmsg") != NULL;
}

struct yes_owner {
	tr_pid probe;
	tr_process proc;
	bool killed;
};

static void
yes_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct yes_owner *y = state;
	static const char *const args[] = { "yes", NULL };

	switch (m->type) {
	case MSG_YES_GO: {
		y->probe = tr_sender(cx);
		tr_process_opts o = { .size = sizeof(o),
				      .file = "yes",
				      .args = args };
		(void)tr_process_spawn(cx, &o, &y->proc);
		return;
	}
	case TR_MSG_PROC_STARTED: {
		tr_process_started st;
		memcpy(&st, m->data, sizeof(st));
		atomic_store(&yes_pid, st.os_pid);
		return;
	}
	case TR_MSG_PROC_STDOUT:
		if (atomic_fetch_add(&yes_lines, 1) == 0) {
			/* Stuck, as a handler that computes for long. */
			uint64_t until = harness_now_ms() + 120000;
			while (!atomic_load(&yes_release) &&
			       harness_now_ms() < until) {
				harness_nap_us(200);
			}
		}
		if (atomic_load(&yes_lines) >= YES_LINES && !y->killed) {
			y->killed = true;
			(void)tr_process_kill(cx, y->proc, SIGKILL);
		}
		return;
	case TR_MSG_PROC_EXIT:
		(void)tr_send(cx, y->probe, MSG_YES_DONE, NULL, 0);
		return;
	default:
		return;
	}
}

static const tr_actor_def yes_def = {
	.size = sizeof(tr_actor_def),
	.name = "yes-owner",
	.state_size = sizeof(struct yes_owner),
	.handle = yes_handle,
};

static void
test_output_flow_control(void)
{
	struct fx f;
	uint64_t pauses0 = tr__io_process_pauses();

	atomic_store(&yes_release, false);
	atomic_store(&yes_lines, 0);
	atomic_store(&yes_pid, 0);
	fx_start(&f, 2);
	tr_pid y = fx_spawn(&f, &yes_def, NULL);
	SEND(&f, y, MSG_YES_GO, NULL, 0);
	WAIT_UNTIL(tr__io_process_pauses() > pauses0, 30000);
	/* Held back by its stdout, which nobody reads while paused. */
	WAIT_UNTIL(atomic_load(&yes_pid) > 0 &&
			   blocked_in_write(atomic_load(&yes_pid)),
		   30000);
	tr_metrics m = fx_metrics(&f);
	uint64_t queued = m.msgs_sent - m.msgs_handled - m.dead_letters;
	printf("  reading paused with %llu messages queued\n",
	       (unsigned long long)queued);
	CHECK(queued <= 40000);
	atomic_store(&yes_release, true);
	/* Reading resumes: the owner gets far more than one read's worth,
	 * then kills the child and hears of its end. */
	CHECK(fx_recv(&f, MSG_YES_DONE, NULL, 0));
	CHECK(atomic_load(&yes_lines) >= YES_LINES);
	fx_finish(&f);
}

/*
 * A stop overtakes queued output: the owner, stuck in its first line with
 * thousands more queued behind it, is stopped; it must not handle another
 * line, and its child dies with it.
 */
static void
test_stop_overtakes_output(void)
{
	struct fx f;
	uint64_t pauses0 = tr__io_process_pauses();

	atomic_store(&yes_release, false);
	atomic_store(&yes_lines, 0);
	atomic_store(&yes_pid, 0);
	fx_start(&f, 2);
	tr_pid y = fx_spawn(&f, &yes_def, NULL);
	SEND(&f, y, MSG_YES_GO, NULL, 0);
	WAIT_UNTIL(tr__io_process_pauses() > pauses0, 30000);
	/* The owner is inside its first line, stuck there. */
	WAIT_UNTIL(atomic_load(&yes_lines) == 1, 30000);
	CHECK_OK(tr_stop(tr_runtime_ctx(f.rt), y, TR_EXIT_SHUTDOWN));
	atomic_store(&yes_release, true);
	WAIT_UNTIL(!tr_actor_alive(f.rt, y), 30000);
	CHECK_EQ_U64(atomic_load(&yes_lines), 1);
	int pid = atomic_load(&yes_pid);
	CHECK(pid > 0);
	if (pid > 0) {
		WAIT_UNTIL(proc_gone(pid), 30000);
	}
	fx_finish(&f);
}

/*
 * The release of an owner's children cannot fail for want of memory: the
 * owner makes the next allocation fail, from its own handler, and stops.
 * Nothing else runs meanwhile, so the stop path would meet that failure
 * first if it allocated, and the child would outlive its owner.
 */
enum { MSG_NM_GO = 60, MSG_NM_PID, MSG_NM_DIE };

struct nomem_owner {
	tr_pid probe;
};

static void
nomem_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct nomem_owner *o = state;
	static const char *const args[] = { "sleep", "1000", NULL };

	if (m->type == MSG_NM_GO) {
		o->probe = tr_sender(cx);
		tr_process_opts opts = { .size = sizeof(opts),
					 .file = "sleep",
					 .args = args };
		tr_process p;
		(void)tr_process_spawn(cx, &opts, &p);
	} else if (m->type == TR_MSG_PROC_STARTED) {
		tr_process_started st;
		memcpy(&st, m->data, sizeof(st));
		int32_t pid = st.os_pid;
		(void)tr_send(cx, o->probe, MSG_NM_PID, &pid, sizeof(pid));
	} else if (m->type == MSG_NM_DIE) {
		tr__alloc_fail_after(1);
		tr_stop_self(cx, TR_EXIT_NORMAL);
	}
}

static const tr_actor_def nomem_def = {
	.size = sizeof(tr_actor_def),
	.name = "nomem-owner",
	.state_size = sizeof(struct nomem_owner),
	.handle = nomem_handle,
};

static void
test_owner_stop_needs_no_memory(void)
{
	struct fx f;
	int32_t pid = 0;

	fx_start(&f, 2);
	tr_pid o = fx_spawn(&f, &nomem_def, NULL);
	SEND(&f, o, MSG_NM_GO, NULL, 0);
	CHECK(fx_recv(&f, MSG_NM_PID, &pid, sizeof(pid)));
	CHECK(pid > 0);
	CHECK_OK(tr_runtime_wait_idle(f.rt, 30000));
	SEND(&f, o, MSG_NM_DIE, NULL, 0);
	WAIT_UNTIL(!tr_actor_alive(f.rt, o), 30000);
	if (pid > 0) {
		WAIT_UNTIL(proc_gone(pid), 30000);
		if (!proc_gone(pid)) {
			kill(pid, SIGKILL);
		}
	}
	tr__alloc_fail_after(0);
	fx_finish(&f);
}

/*
 * Timers and child processes. Starting a child forks the whole process and
 * waits for the exec, which takes longer the more memory the parent maps:
 * if that happened on a loop that also runs timers, a burst of tool runs
 * would hold every timer of that loop. So children have a loop of their
 * own; a ticker with a 5 ms period must keep ticking while that loop is
 * held.
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
			tr_process_opts o = { .size = sizeof(o),
					      .file = "true",
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

	/*
	 * Timers never wait for the process loop: hold it (as a slow fork
	 * would) and the ticker must still tick, many times. Were timers on
	 * that loop, no tick would come until it is let go, and this wait
	 * would time out.
	 */
	atomic_store(&loop_held, false);
	atomic_store(&loop_release, false);
	SEND(&f, t, MSG_GO, &go, sizeof(go));
	CHECK_OK(tr__io_call(tr__io_proc_loop(f.rt->io), hold_loop, NULL));
	WAIT_UNTIL(atomic_load(&loop_held), 30000);
	SEND(&f, t, MSG_REPORT, NULL, 0);
	CHECK(fx_recv(&f, MSG_GAP, gap, sizeof(gap)));
	uint64_t ticks0 = gap[1];
	bool ticked =
		WAIT_UNTIL(({
				   SEND(&f, t, MSG_REPORT, NULL, 0);
				   fx_recv(&f, MSG_GAP, gap, sizeof(gap)) &&
					   gap[1] >= ticks0 + 20;
			   }),
			   30000);
	CHECK(ticked);
	CHECK(atomic_load(&loop_held));
	atomic_store(&loop_release, true);

	/* And a real burst from a large parent completes; how long the
	 * ticks waited meanwhile is printed, not judged (a figure for a
	 * benchmark, which depends on the machine's load). */
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
	fx_finish(&f);
	munmap(mem, big);
}

static const struct test_case tests[] = {
	{ "process: stdin in, stdout lines in order, exit after output",
	  test_cat_lines_in_order },
	{ "process: stderr lines and the exit code",
	  test_stderr_and_exit_code },
	{ "process: kill, environment and working directory",
	  test_kill_and_env },
	{ "process: a missing program ends in one exit with ENOENT",
	  test_cannot_start },
	{ "process: the owner stopping kills and reaps the child",
	  test_owner_stop_kills_and_reaps },
	{ "process: a burst of children from a large parent holds no timer",
	  test_spawn_burst_keeps_timers },
	{ "process: stdin closed at once by many owners, records freed last",
	  test_close_stdin_at_once },
	{ "process: stdin closed in the pass of the exit, record freed last",
	  test_close_stdin_with_exit_in_one_pass },
	{ "process: the owner stopping kills the child's process group",
	  test_owner_stop_kills_the_group },
	{ "process: stop and join do not wait for pipes held by a daemon",
	  test_stop_with_output_held_open },
	{ "process: SIGKILL ends the wait for output held open",
	  test_sigkill_ends_wait_for_output },
	{ "process: output pauses above the watermark and resumes",
	  test_output_flow_control },
	{ "process: a stop overtakes queued output",
	  test_stop_overtakes_output },
	{ "process: an owner's stop releases its children without memory",
	  test_owner_stop_needs_no_memory },
	{ NULL, NULL },
};

TEST_MAIN(tests)
