#ifndef TROUPE_PROCESS_H
#define TROUPE_PROCESS_H

/*
 * Child processes as message sources: spawn a program, write to its
 * stdin, get its stdout and stderr as one message per line, and its end as
 * one message. This is how an agent runs a tool, or an MCP server over
 * stdio. The child belongs to the actor that spawned it: when that actor
 * stops (or the runtime does), the child and every process it started in
 * its process group are killed (SIGKILL) and reaped.
 *
 * Each child runs in a new session, as the leader of its own process
 * group (setsid), without a controlling terminal.
 *
 * Output has flow control, as a TCP connection's input: once more than
 * TR_PROCESS_READ_HIGH bytes of lines wait in the owner's mailbox, the
 * runtime stops reading the child's pipes (the child blocks in write()
 * when they fill) and reads again when the owner has caught up to
 * TR_PROCESS_READ_LOW. So a child that writes faster than its owner
 * handles lines costs a bounded amount of memory: the high watermark plus
 * the lines of one read of at most 64 KiB.
 *
 * The exit message comes after every line, so it waits for end of file on
 * stdout and stderr. A child that exits and leaves a process behind that
 * holds them open (`sh -c "server &"`) therefore has its TR_MSG_PROC_EXIT
 * withheld until that process closes them, or until the owner calls
 * tr_process_kill() with SIGKILL, which stops reading them; when the owner
 * stops, they are closed at once.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/actor.h>
#include <troupe/error.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_process {
	uint64_t v;
} tr_process;

/** Messages to the owner. Each payload starts with the process id. */
#define TR_MSG_PROC_STARTED 0xFFFF0020u /* struct tr_process_started */
#define TR_MSG_PROC_STDOUT  0xFFFF0021u /* struct tr_process_line */
#define TR_MSG_PROC_STDERR  0xFFFF0022u /* struct tr_process_line */
#define TR_MSG_PROC_EXIT    0xFFFF0023u /* struct tr_process_exit */

/** Longest line delivered whole; longer lines arrive in pieces this long. */
#define TR_PROCESS_MAX_LINE 65536

/** Reading a child's output pauses above this much unhandled line memory
 * (each line counts its length plus about 100 bytes)... */
#define TR_PROCESS_READ_HIGH (256 * 1024)
/** ...and resumes at or below this much. */
#define TR_PROCESS_READ_LOW (64 * 1024)

typedef struct tr_process_started {
	tr_process proc;
	int32_t os_pid;
} tr_process_started;

/**
 * A line without its '\n'. Like every payload it is valid until the
 * handler returns: copy what you keep (it is not a pointer message, so
 * tr_msg_take_ptr() returns NULL for it).
 */
TR_FAM_BEGIN
typedef struct tr_process_line {
	tr_process proc;
	size_t len;
	char text[]; /* len bytes, then a NUL */
} tr_process_line;
TR_FAM_END

/**
 * struct tr_process_exit - The last message about a process, sent after
 * all of its output.
 * @status:      exit status, or -1 if it was killed or never started
 * @term_signal: the signal that ended it, or 0
 * @error:       "" or libuv's error name when it could not be started
 *               ("ENOENT", "EACCES", ...)
 */
typedef struct tr_process_exit {
	tr_process proc;
	int64_t status;
	int32_t term_signal;
	char error[32];
} tr_process_exit;

/**
 * struct tr_process_opts - What to run.
 * @size: sizeof(tr_process_opts)
 * @file: program (searched in PATH when it has no '/')
 * @args: NULL-terminated argv, args[0] included; NULL means { file }
 * @env:  NULL-terminated "NAME=value" list, or NULL to inherit
 * @cwd:  working directory, or NULL to inherit
 */
typedef struct tr_process_opts {
	size_t size;
	const char *file;
	const char *const *args;
	const char *const *env;
	const char *cwd;
} tr_process_opts;

/**
 * tr_process_spawn() - Start a child process owned by the calling actor.
 * @out: the process id for the calls below; may be NULL
 *
 * Everything in @opts is copied. The owner then gets TR_MSG_PROC_STARTED
 * (if it started), its output lines, and exactly one TR_MSG_PROC_EXIT
 * (also when it could not be started).
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ECLOSED.
 */
TR_API tr_err tr_process_spawn(tr_ctx *cx, const tr_process_opts *opts,
			       tr_process *out);

/**
 * tr_process_write() - Write @len bytes (copied) to the child's stdin.
 * Thread:    actor.
 * Return:    TR_OK (a write to a process that has ended is dropped),
 *            TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_process_write(tr_ctx *cx, tr_process p, const void *data,
			       size_t len);

/**
 * tr_process_close_stdin() - Close the child's stdin after pending writes
 * (the child sees end of file once it has read them).
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_process_close_stdin(tr_ctx *cx, tr_process p);

/**
 * tr_process_kill() - Send @signum to the child (the child alone, not its
 * process group). Once the child has exited, SIGKILL instead stops
 * reading output that something it left behind still holds open, so its
 * TR_MSG_PROC_EXIT follows; other signals are then ignored.
 * Thread:    actor.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM.
 */
TR_API tr_err tr_process_kill(tr_ctx *cx, tr_process p, int signum);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_PROCESS_H */
