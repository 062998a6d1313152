/*
 * Child processes on the process loop's thread (<troupe/process.h>).
 *
 * Threads: the public calls run in handlers; they copy their arguments
 * into a request and hand it to the I/O thread with tr__io_call(). Every
 * uv_ handle here (the process and its three pipes) belongs to the I/O
 * thread. Output is split into lines and sent to the owner as pointer
 * messages; the exit message is sent only once the child has exited and
 * both output pipes reached end of file, so it always comes after the
 * last line.
 *
 * Invariants: a struct proc is freed only after the close callbacks of
 * all four of its handles ran (`closing` counts them down); when the
 * owner stops, actor.c calls tr__io_owner_gone() and the I/O
 * thread kills that owner's children; libuv reaps them (SIGCHLD) and the
 * exit callback closes the handles.
 */
#include <troupe/process.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/io_loop.h"
#include "runtime/runtime.h"

struct linebuf {
	char *buf;
	size_t len;
	size_t cap;
};

struct proc {
	struct proc *next;
	struct tr__io *io;
	uint64_t id;
	uint64_t owner;
	uv_process_t h;
	uv_pipe_t in, out, err;
	struct linebuf lout, lerr;
	int open_reads; /* output pipes not yet at end of file */
	bool exited;
	bool spawned;
	int64_t status;
	int32_t term_signal;
	int closing; /* close callbacks still to come */
};

/* Spawn request: everything copied into one allocation by the caller. */
struct spawn_req {
	uint64_t id;
	uint64_t owner;
	size_t bytes;
	char *file;
	char **args;
	char **env;
	char *cwd;
};

struct write_req {
	uv_write_t req;
	uint64_t id;
	size_t len;
	char data[];
};

struct ctl_req {
	uint64_t id;
	int op; /* 0: close stdin, 1: kill */
	int signum;
};

static _Atomic uint64_t next_proc_id = 1;

static struct proc *
find(struct tr__io *io, uint64_t id)
{
	for (struct proc *p = *tr__io_procs(io); p != NULL; p = p->next) {
		if (p->id == id) {
			return p;
		}
	}
	return NULL;
}

static void
unlink_proc(struct proc *p)
{
	struct proc **pp = (struct proc **)tr__io_procs(p->io);

	while (*pp != NULL && *pp != p) {
		pp = &(*pp)->next;
	}
	if (*pp == p) {
		*pp = p->next;
	}
}

static void
handle_closed(uv_handle_t *h)
{
	struct proc *p = h->data;

	if (--p->closing > 0) {
		return;
	}
	free(p->lout.buf);
	free(p->lerr.buf);
	tr__free(p, sizeof(*p));
}

static void
close_if_open(struct proc *p, uv_handle_t *h)
{
	if (!uv_is_closing(h)) {
		uv_close(h, handle_closed);
	} else {
		p->closing--;
	}
}

/* Send one line (or piece) to the owner as a pointer message. */
static void
send_line(struct proc *p, uint32_t type, const char *text, size_t len)
{
	tr_process_line *l = malloc(sizeof(*l) + len + 1);

	if (l == NULL) {
		return; /* out of memory: the line is lost */
	}
	l->proc.v = p->id;
	l->len = len;
	memcpy(l->text, text, len);
	l->text[len] = '\0';
	(void)tr__send_ptr(tr__io_runtime(p->io), NULL, p->owner, p->owner,
			   type, l, sizeof(*l) + len + 1, free, false);
}

/* The end: exit seen and both outputs drained. Send EXIT, close all. */
static void
maybe_finish(struct proc *p)
{
	if (!p->exited || p->open_reads > 0 || p->closing > 0) {
		return;
	}
	tr_process_exit e;
	memset(&e, 0, sizeof(e));
	e.proc.v = p->id;
	e.status = p->term_signal != 0 ? -1 : p->status;
	e.term_signal = p->term_signal;
	(void)tr__send_sys(tr__io_runtime(p->io), NULL, p->owner, p->owner,
			   TR_MSG_PROC_EXIT, &e, sizeof(e));
	unlink_proc(p);
	p->closing = 4;
	close_if_open(p, (uv_handle_t *)&p->h);
	close_if_open(p, (uv_handle_t *)&p->in);
	close_if_open(p, (uv_handle_t *)&p->out);
	close_if_open(p, (uv_handle_t *)&p->err);
}

static void
proc_exited(uv_process_t *h, int64_t status, int term_signal)
{
	struct proc *p = h->data;

	p->exited = true;
	p->status = status;
	p->term_signal = term_signal;
	maybe_finish(p);
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	/* Freed in read_cb; 64 KiB bounds what one read can pull in. */
	buf->base = malloc(65536);
	buf->len = buf->base != NULL ? 65536 : 0;
}

static void
feed(struct proc *p, struct linebuf *lb, uint32_t type, const char *data,
     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (data[i] == '\n') {
			send_line(p, type, lb->buf != NULL ? lb->buf : "", lb->len);
			lb->len = 0;
			continue;
		}
		if (lb->len == lb->cap) {
			if (lb->cap == TR_PROCESS_MAX_LINE) {
				send_line(p, type, lb->buf, lb->len);
				lb->len = 0;
			} else {
				size_t cap = lb->cap == 0 ? 256 : lb->cap * 2;
				if (cap > TR_PROCESS_MAX_LINE) {
					cap = TR_PROCESS_MAX_LINE;
				}
				char *nb = realloc(lb->buf, cap);
				if (nb == NULL) {
					continue; /* byte lost */
				}
				lb->buf = nb;
				lb->cap = cap;
			}
		}
		lb->buf[lb->len++] = data[i];
	}
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct proc *p = s->data;
	bool is_out = s == (uv_stream_t *)&p->out;
	struct linebuf *lb = is_out ? &p->lout : &p->lerr;
	uint32_t type = is_out ? TR_MSG_PROC_STDOUT : TR_MSG_PROC_STDERR;

	if (nread > 0) {
		feed(p, lb, type, buf->base, (size_t)nread);
	}
	free(buf->base);
	if (nread < 0) {
		/* End of file or error: flush a last unterminated line. */
		if (lb->len > 0) {
			send_line(p, type, lb->buf, lb->len);
			lb->len = 0;
		}
		uv_read_stop(s);
		p->open_reads--;
		maybe_finish(p);
	}
}

static void
run_spawn(struct tr__io *io, void *arg)
{
	struct spawn_req *r = arg;
	uv_loop_t *loop = tr__io_uv_loop(io);
	struct proc *p = tr__calloc(sizeof(*p));

	if (p == NULL) {
		tr_process_exit e = { .proc = { r->id }, .status = -1 };
		strcpy(e.error, "ENOMEM");
		(void)tr__send_sys(tr__io_runtime(io), NULL, r->owner, r->owner,
				   TR_MSG_PROC_EXIT, &e, sizeof(e));
		tr__free(r, r->bytes);
		return;
	}
	p->io = io;
	p->id = r->id;
	p->owner = r->owner;
	uv_pipe_init(loop, &p->in, 0);
	uv_pipe_init(loop, &p->out, 0);
	uv_pipe_init(loop, &p->err, 0);
	p->h.data = p->in.data = p->out.data = p->err.data = p;

	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&p->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&p->err;
	uv_process_options_t o;
	memset(&o, 0, sizeof(o));
	o.exit_cb = proc_exited;
	o.file = r->file;
	o.args = r->args;
	o.env = r->env;
	o.cwd = r->cwd;
	o.stdio_count = 3;
	o.stdio = stdio;
	p->next = *tr__io_procs(io);
	*tr__io_procs(io) = p;
	int err = uv_spawn(loop, &p->h, &o);
	if (err != 0) {
		/* Never started: one EXIT with libuv's error name. */
		tr_process_exit e = { .proc = { p->id }, .status = -1 };
		snprintf(e.error, sizeof(e.error), "%s", uv_err_name(err));
		(void)tr__send_sys(tr__io_runtime(io), NULL, p->owner, p->owner,
				   TR_MSG_PROC_EXIT, &e, sizeof(e));
		unlink_proc(p);
		/* uv_spawn initialised the process handle even on failure. */
		p->closing = 4;
		uv_close((uv_handle_t *)&p->h, handle_closed);
		uv_close((uv_handle_t *)&p->in, handle_closed);
		uv_close((uv_handle_t *)&p->out, handle_closed);
		uv_close((uv_handle_t *)&p->err, handle_closed);
		tr__free(r, r->bytes);
		return;
	}
	p->spawned = true;
	p->open_reads = 2;
	uv_read_start((uv_stream_t *)&p->out, alloc_cb, read_cb);
	uv_read_start((uv_stream_t *)&p->err, alloc_cb, read_cb);
	tr_process_started st = { .proc = { p->id }, .os_pid = p->h.pid };
	(void)tr__send_sys(tr__io_runtime(io), NULL, p->owner, p->owner,
			   TR_MSG_PROC_STARTED, &st, sizeof(st));
	tr__free(r, r->bytes);
}

static void
write_done(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;

	(void)status; /* a failed write means the child closed stdin */
	tr__free(w, sizeof(*w) + w->len);
}

static void
run_write(struct tr__io *io, void *arg)
{
	struct write_req *w = arg;
	struct proc *p = find(io, w->id);

	if (p == NULL || uv_is_closing((uv_handle_t *)&p->in) ||
	    !uv_is_writable((uv_stream_t *)&p->in)) {
		tr__free(w, sizeof(*w) + w->len);
		return;
	}
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, write_done) != 0) {
		tr__free(w, sizeof(*w) + w->len);
	}
}

void
tr__io_process_kill_owned(struct tr__io *io, uint64_t owner)
{
	for (struct proc *p = *tr__io_procs(io); p != NULL; p = p->next) {
		if ((owner == 0 || p->owner == owner) && p->spawned &&
		    !p->exited) {
			uv_process_kill(&p->h, SIGKILL);
		}
	}
}

static void
run_ctl(struct tr__io *io, void *arg)
{
	struct ctl_req *c = arg;
	struct proc *p = find(io, c->id);

	if (p != NULL && c->op == 0) {
		if (!uv_is_closing((uv_handle_t *)&p->in)) {
			/* No callback: maybe_finish() counts this handle as
			 * already closed when the process ends. */
			uv_close((uv_handle_t *)&p->in, NULL);
		}
	} else if (p != NULL && c->op == 1 && p->spawned && !p->exited) {
		uv_process_kill(&p->h, c->signum);
	}
	tr__free(c, sizeof(*c));
}

static tr_err
ctl(tr_runtime *rt, uint64_t id, int op, int signum)
{
	struct ctl_req *c = tr__alloc(sizeof(*c));

	if (c == NULL) {
		return TR_ENOMEM;
	}
	c->id = id;
	c->op = op;
	c->signum = signum;
	tr_err err = tr__io_call(tr__io_proc_loop(rt->io), run_ctl, c);
	if (err < 0) {
		tr__free(c, sizeof(*c));
	}
	return err;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

static size_t
strv_len(const char *const *v, size_t *bytes)
{
	size_t n = 0;

	for (; v != NULL && v[n] != NULL; n++) {
		*bytes += strlen(v[n]) + 1;
	}
	return n;
}

static char **
strv_copy(const char *const *v, size_t n, char ***slots, char **text)
{
	char **out = *slots;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]) + 1;
		memcpy(*text, v[i], l);
		out[i] = *text;
		*text += l;
	}
	out[n] = NULL;
	*slots += n + 1;
	return out;
}

tr_err
tr_process_spawn(tr_ctx *cx, const tr_process_opts *opts, tr_process *out)
{
	if (cx == NULL || cx->a == NULL || opts == NULL ||
	    opts->size < sizeof(tr_process_opts) || opts->file == NULL) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	const char *const default_args[2] = { opts->file, NULL };
	const char *const *args = opts->args != NULL ? opts->args : default_args;
	size_t text = strlen(opts->file) + 1 +
		      (opts->cwd != NULL ? strlen(opts->cwd) + 1 : 0);
	size_t nargs = strv_len(args, &text);
	size_t nenv = strv_len(opts->env, &text);
	size_t nslots = nargs + 1 + (opts->env != NULL ? nenv + 1 : 0);
	size_t bytes = sizeof(struct spawn_req) + nslots * sizeof(char *) + text;
	struct spawn_req *r = tr__alloc(bytes);
	if (r == NULL) {
		return TR_ENOMEM;
	}
	char **slots = (char **)(void *)(r + 1);
	char *t = (char *)(slots + nslots);
	r->bytes = bytes;
	r->id = atomic_fetch_add_explicit(&next_proc_id, 1,
					  memory_order_relaxed);
	r->owner = cx->self;
	r->args = strv_copy(args, nargs, &slots, &t);
	r->env = opts->env != NULL ? strv_copy(opts->env, nenv, &slots, &t)
				   : NULL;
	r->file = t;
	memcpy(t, opts->file, strlen(opts->file) + 1);
	t += strlen(opts->file) + 1;
	r->cwd = NULL;
	if (opts->cwd != NULL) {
		r->cwd = t;
		memcpy(t, opts->cwd, strlen(opts->cwd) + 1);
	}
	uint64_t id = r->id;
	tr_err err = tr__actor_note_io(cx);
	if (err == TR_OK) {
		err = tr__io_call(tr__io_proc_loop(cx->rt->io), run_spawn, r);
	}
	if (err < 0) {
		tr__free(r, bytes);
		return err;
	}
	if (out != NULL) {
		out->v = id;
	}
	return TR_OK;
}

tr_err
tr_process_write(tr_ctx *cx, tr_process p, const void *data, size_t len)
{
	if (cx == NULL || p.v == 0 || (len > 0 && data == NULL) ||
	    len > UINT32_MAX) {
		return TR_EINVAL;
	}
	struct write_req *w = tr__alloc(sizeof(*w) + len);
	if (w == NULL) {
		return TR_ENOMEM;
	}
	w->id = p.v;
	w->len = len;
	memcpy(w->data, data, len);
	tr_err err = tr__io_call(tr__io_proc_loop(cx->rt->io), run_write, w);
	if (err < 0) {
		tr__free(w, sizeof(*w) + len);
	}
	return err;
}

tr_err
tr_process_close_stdin(tr_ctx *cx, tr_process p)
{
	if (cx == NULL || p.v == 0) {
		return TR_EINVAL;
	}
	return ctl(cx->rt, p.v, 0, 0);
}

tr_err
tr_process_kill(tr_ctx *cx, tr_process p, int signum)
{
	if (cx == NULL || p.v == 0 || signum <= 0) {
		return TR_EINVAL;
	}
	return ctl(cx->rt, p.v, 1, signum);
}
