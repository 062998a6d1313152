/*
 * Child processes on the process loop's thread (<troupe/process.h>).
 *
 * Threads: the public calls run in handlers; they copy their arguments
 * into a request and hand it to the process loop with tr__io_call().
 * Every uv_ handle here (the process and its three pipes) belongs to that
 * loop's thread. Output is split into lines; each line is a message whose
 * bytes lie in its node, with a release hook (line_release) that runs
 * wherever the owner consumed it, lowers the record's count of unread
 * memory and, when reading was paused and the count falls to the low
 * watermark, posts a resume to the loop. The exit message is sent only
 * once the child has exited and both output pipes are done, so it always
 * comes after the last line.
 *
 * Each child leads its own process group. When the owner stops (actor.c
 * posts tr__io_owner_gone) or the runtime stops, the group of a child that
 * has not exited is killed; the output pipes of one that has exited are
 * closed at once, since only something it left behind can hold them.
 *
 * Invariants: every uv_close here passes handle_closed, which counts the
 * four handles down and then drops the loop's reference; a record is
 * freed when its last reference goes (the loop's, one per line message in
 * flight, one while a resume is posted), so neither libuv nor a line's
 * release hook ever touches freed memory.
 */
#include <troupe/process.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/internal.h"
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
	uv_shutdown_t shut;
	struct linebuf lout, lerr;
	/*
	 * Memory of the line messages not yet handled by the owner (see
	 * line_release). Reading stops above TR_PROCESS_READ_HIGH and starts
	 * again at TR_PROCESS_READ_LOW, so a child that writes faster than
	 * its owner reads is held back by its pipe, as a TCP peer is.
	 */
	_Atomic int64_t unread;
	/* One reference for the loop (until the last close callback), one
	 * per line message in flight, one while `resume` is posted. */
	_Atomic uint32_t refs;
	_Atomic bool resume_posted;
	struct tr__io_op resume; /* posted by line_release */
	int open_reads;          /* output pipes not yet done (end of file) */
	bool out_open, err_open; /* which of them */
	int open_handles;        /* handles whose close callback has not run */
	bool reading;            /* both output pipes started (not paused) */
	bool exited;
	bool spawned;
	bool finished;   /* EXIT sent, handles closing */
	bool owner_gone; /* nobody reads the output any more */
	bool cut;        /* at exit, stop waiting for end of file */
	/* stdin writes gathered in this pass of the loop (flush_stdin). */
	struct write_req *gq_head, *gq_tail;
	int64_t status;
	int32_t term_signal;
};

/* A line message: the node holds the proc and the public line. */
struct line_hdr {
	struct proc *p;
	tr_process_line pub; /* must be last: text follows */
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
	size_t off;              /* bytes the pipe took at once */
	struct write_req *gnext; /* in the record's gathered writes */
	char data[];
};

struct ctl_req {
	uint64_t id;
	int op; /* 0: close stdin, 1: kill */
	int signum;
};

static _Atomic uint64_t next_proc_id = 1;
static _Atomic uint64_t read_pauses; /* for tests: tr__io_process_pauses */

uint64_t
tr__io_process_pauses(void)
{
	return atomic_load_explicit(&read_pauses, memory_order_relaxed);
}

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

/* Any thread: drop a reference; the last one frees the record. */
static void
unref(struct proc *p)
{
	/* acq_rel: the last holder sees every other holder's use done. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
		tr__free(p, sizeof(*p));
	}
}

/*
 * Every uv_close of the four handles passes this callback: the record,
 * which holds the handles, is released only after the last one ran
 * (libuv finishes closes in its own order, newest first).
 */
static void
handle_closed(uv_handle_t *h)
{
	struct proc *p = h->data;

	if (--p->open_handles > 0) {
		return;
	}
	free(p->lout.buf);
	free(p->lerr.buf);
	p->lout.buf = p->lerr.buf = NULL;
	unref(p);
}

static void
close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h)) {
		uv_close(h, handle_closed);
	}
}

static int64_t
line_charge(size_t len)
{
	/* The node's header and the public struct come with every line, so
	 * a flood of empty lines is held back too. */
	return (int64_t)(sizeof(struct line_hdr) + len + 64);
}

static void read_both(struct proc *p, bool want);
static void drop_stdin(struct proc *p);
static bool *is_open(struct proc *p, uv_stream_t *s);

/* Loop: the owner caught up; read again (unless already done). */
static void
run_resume(struct tr__io *io, struct tr__io_op *op)
{
	struct proc *p = tr__container_of(op, struct proc, resume);

	(void)io;
	atomic_store_explicit(&p->resume_posted, false, memory_order_relaxed);
	if (!p->finished &&
	    atomic_load_explicit(&p->unread, memory_order_relaxed) <=
		    TR_PROCESS_READ_LOW) {
		read_both(p, true);
	}
	unref(p);
}

/* Release hook of a line message, on whatever thread consumed it. */
static void
line_release(void *data)
{
	struct line_hdr *l = tr__container_of(data, struct line_hdr, pub);
	struct proc *p = l->p;
	int64_t c = line_charge(l->pub.len);
	int64_t left =
		atomic_fetch_sub_explicit(&p->unread, c, memory_order_relaxed) -
		c;

	if (left <= TR_PROCESS_READ_LOW && left + c > TR_PROCESS_READ_LOW &&
	    !atomic_exchange_explicit(&p->resume_posted, true,
				      memory_order_relaxed)) {
		/* Crossed the low watermark: the loop may read again. The
		 * op lives in the record, which this reference keeps. */
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
		if (tr__io_post(p->io, &p->resume) < 0) {
			atomic_store_explicit(&p->resume_posted, false,
					      memory_order_relaxed);
			unref(p);
		}
	}
	unref(p);
}

/* Send one line (or piece) to the owner; its memory counts as unread. */
static void
send_line(struct proc *p, uint32_t type, const char *text, size_t len)
{
	if (p->owner_gone) {
		return;
	}
	struct tr__msg *msg =
		tr__msg_new(NULL, sizeof(struct line_hdr) + len + 1);
	if (msg == NULL) {
		return; /* out of memory: the line is lost */
	}
	struct line_hdr *l = (struct line_hdr *)(void *)msg->data;
	l->p = p;
	l->pub.proc.v = p->id;
	l->pub.len = len;
	memcpy(l->pub.text, text, len);
	l->pub.text[len] = '\0';
	msg->m.data = &l->pub;
	msg->m.size = sizeof(tr_process_line) + len + 1;
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->unread, line_charge(len),
				  memory_order_relaxed);
	(void)tr__send_built(tr__io_runtime(p->io), NULL, p->owner, p->owner,
			     type, msg, line_release);
}

/* The end: exit seen and both outputs drained. Send EXIT, close all. */
static void
maybe_finish(struct proc *p)
{
	if (p->finished || !p->exited || p->open_reads > 0) {
		return;
	}
	p->finished = true;
	tr_process_exit e;
	memset(&e, 0, sizeof(e));
	e.proc.v = p->id;
	e.status = p->term_signal != 0 ? -1 : p->status;
	e.term_signal = p->term_signal;
	if (!p->owner_gone) {
		(void)tr__send_sys(tr__io_runtime(p->io), NULL, p->owner,
				   p->owner, TR_MSG_PROC_EXIT, &e, sizeof(e));
	}
	unlink_proc(p);
	drop_stdin(p);
	close_handle((uv_handle_t *)&p->h);
	close_handle((uv_handle_t *)&p->in);
	close_handle((uv_handle_t *)&p->out);
	close_handle((uv_handle_t *)&p->err);
}

static bool *
is_open(struct proc *p, uv_stream_t *s)
{
	return s == (uv_stream_t *)&p->out ? &p->out_open : &p->err_open;
}

/*
 * Stop reading an output pipe for good: flush its last unterminated line
 * and count it done. Used at end of file, and when the child has exited
 * but something it left behind still holds the pipe while nobody will
 * read the output (owner gone, runtime stopping, or the owner killed it).
 */
static void
end_output(struct proc *p, uv_stream_t *s)
{
	bool is_out = s == (uv_stream_t *)&p->out;
	struct linebuf *lb = is_out ? &p->lout : &p->lerr;

	if (!*is_open(p, s)) {
		return;
	}
	if (lb->len > 0) {
		send_line(p, is_out ? TR_MSG_PROC_STDOUT : TR_MSG_PROC_STDERR,
			  lb->buf, lb->len);
		lb->len = 0;
	}
	uv_read_stop(s);
	*is_open(p, s) = false;
	p->open_reads--;
}

static void
end_outputs(struct proc *p)
{
	end_output(p, (uv_stream_t *)&p->out);
	end_output(p, (uv_stream_t *)&p->err);
	maybe_finish(p);
}

static void
proc_exited(uv_process_t *h, int64_t status, int term_signal)
{
	struct proc *p = h->data;

	p->exited = true;
	p->status = status;
	p->term_signal = term_signal;
	if (p->cut) {
		end_outputs(p);
		return;
	}
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
			send_line(p, type, lb->buf != NULL ? lb->buf : "",
				  lb->len);
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
		/* End of file or error. */
		end_output(p, s);
		maybe_finish(p);
		return;
	}
	if (p->reading &&
	    atomic_load_explicit(&p->unread, memory_order_relaxed) >
		    TR_PROCESS_READ_HIGH) {
		read_both(p, false);
	}
}

/* Start or stop reading the output pipes still open. */
static void
read_both(struct proc *p, bool want)
{
	if (want == p->reading) {
		return;
	}
	p->reading = want;
	if (!want) {
		atomic_fetch_add_explicit(&read_pauses, 1,
					  memory_order_relaxed);
	}
	uv_stream_t *pipes[2] = { (uv_stream_t *)&p->out,
				  (uv_stream_t *)&p->err };
	for (int i = 0; i < 2; i++) {
		if (!*is_open(p, pipes[i])) {
			continue;
		}
		if (want) {
			uv_read_start(pipes[i], alloc_cb, read_cb);
		} else {
			uv_read_stop(pipes[i]);
		}
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
	atomic_init(&p->refs, 1);
	p->resume.run = run_resume;
	p->open_handles = 4;
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
	/*
	 * setsid(): the child leads a process group of its own, so a stop
	 * can kill what it started too (a shell's background jobs), not
	 * only the child itself. It also has no controlling terminal, so a
	 * Ctrl-C meant for this program is not delivered to it twice.
	 */
	o.flags = UV_PROCESS_DETACHED;
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
		p->finished = true;
		/* uv_spawn initialised the process handle even on failure. */
		close_handle((uv_handle_t *)&p->h);
		close_handle((uv_handle_t *)&p->in);
		close_handle((uv_handle_t *)&p->out);
		close_handle((uv_handle_t *)&p->err);
		tr__free(r, r->bytes);
		return;
	}
	p->spawned = true;
	p->open_reads = 2;
	p->out_open = p->err_open = true;
	read_both(p, true);
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
drop_stdin(struct proc *p)
{
	while (p->gq_head != NULL) {
		struct write_req *w = p->gq_head;
		p->gq_head = w->gnext;
		tr__free(w, sizeof(*w) + w->len);
	}
	p->gq_tail = NULL;
}

/* Queue one write behind whatever libuv holds for stdin. */
static void
queue_stdin(struct proc *p, struct write_req *w)
{
	uv_buf_t b = uv_buf_init(w->data + w->off, (unsigned)(w->len - w->off));

	if (uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, write_done) != 0) {
		tr__free(w, sizeof(*w) + w->len);
	}
}

/*
 * Put the stdin writes gathered in this pass on the pipe, as TCP does
 * (io_tcp.c, flush_locked): while libuv holds nothing for it, up to
 * GATHER_MAX leave in one writev, and what the pipe does not take is
 * queued in order behind.
 */
#define GATHER_MAX 64u

static void
flush_stdin(struct proc *p)
{
	uv_stream_t *in = (uv_stream_t *)&p->in;

	if (uv_is_closing((uv_handle_t *)in) || !uv_is_writable(in)) {
		drop_stdin(p); /* the child's stdin is gone */
		return;
	}
	while (p->gq_head != NULL) {
		if (uv_stream_get_write_queue_size(in) > 0) {
			struct write_req *w = p->gq_head;
			p->gq_head = w->gnext;
			queue_stdin(p, w);
			continue;
		}
		uv_buf_t bufs[GATHER_MAX];
		unsigned n = 0;
		size_t total = 0;
		for (struct write_req *w = p->gq_head;
		     w != NULL && n < GATHER_MAX; w = w->gnext) {
			bufs[n++] = uv_buf_init(w->data + w->off,
						(unsigned)(w->len - w->off));
			total += w->len - w->off;
		}
		int r = uv_try_write(in, bufs, n);
		if (r < 0 && r != UV_EAGAIN) {
			drop_stdin(p); /* the child closed its stdin */
			break;
		}
		size_t done = r > 0 ? (size_t)r : 0;
		while (p->gq_head != NULL &&
		       done >= p->gq_head->len - p->gq_head->off) {
			struct write_req *w = p->gq_head;
			done -= w->len - w->off;
			p->gq_head = w->gnext;
			tr__free(w, sizeof(*w) + w->len);
		}
		if (done > 0) {
			p->gq_head->off += done;
		}
		if ((size_t)(r > 0 ? r : 0) < total) {
			/* The pipe is full: the next one waits in libuv. */
			struct write_req *w = p->gq_head;
			p->gq_head = w->gnext;
			queue_stdin(p, w);
		}
	}
	p->gq_tail = NULL;
}

void
tr__io_process_flush(struct tr__io *io)
{
	for (struct proc *p = *tr__io_procs(io); p != NULL; p = p->next) {
		if (p->gq_head != NULL) {
			flush_stdin(p);
		}
	}
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
	/* Gathered: it leaves with the others of this pass, in one writev
	 * (tr__io_process_flush), with no timer and no added wait. */
	w->gnext = NULL;
	if (p->gq_tail != NULL) {
		p->gq_tail->gnext = w;
	} else {
		p->gq_head = w;
	}
	p->gq_tail = w;
}

/*
 * Kill what the child started along with it: its process group, which
 * it leads (setsid), so its pid names the group. While the child has not
 * been reaped, that pid is ours alone. After, the number stays reserved
 * by the kernel for as long as any member of the group lives, so killing
 * the group is still safe when a member evidently lives: it holds the
 * child's output open. (The one case left: every holder left the group
 * with a setsid of its own, the group emptied, and the pid numbers
 * wrapped around to make that number a new group's leader, all before
 * the owner stopped.) A member that left the group is cut off by closing
 * the pipes instead (end_outputs).
 */
static void
kill_group(struct proc *p, int signum)
{
	if (!p->spawned || (p->exited && p->open_reads == 0)) {
		return;
	}
	if (uv_kill(-p->h.pid, signum) != 0 && !p->exited) {
		uv_process_kill(&p->h, signum);
	}
}

void
tr__io_process_owner_gone(struct tr__io *io, uint64_t owner)
{
	struct proc *p = *tr__io_procs(io);

	while (p != NULL) {
		struct proc *next = p->next; /* end_outputs may unlink p */
		if ((owner == 0 || p->owner == owner) && !p->finished) {
			p->owner_gone = true;
			p->cut = true;
			kill_group(p, SIGKILL);
			if (p->exited) {
				end_outputs(p);
			}
		}
		p = next;
	}
}

static void
stdin_shut(uv_shutdown_t *req, int status)
{
	(void)status; /* cancelled if the record is closing already */
	close_handle((uv_handle_t *)req->handle);
}

static void
run_ctl(struct tr__io *io, void *arg)
{
	struct ctl_req *c = arg;
	struct proc *p = find(io, c->id);

	if (p != NULL && c->op == 0) {
		/* After the writes queued before it: shut down, then close. */
		uv_stream_t *in = (uv_stream_t *)&p->in;
		flush_stdin(p);
		if (!uv_is_closing((uv_handle_t *)in) && uv_is_writable(in) &&
		    uv_shutdown(&p->shut, in, stdin_shut) != 0) {
			close_handle((uv_handle_t *)in);
		}
	} else if (p != NULL && c->op == 1 && p->spawned) {
		/* SIGKILL: the owner wants it over, output held open by what
		 * it left behind included. */
		p->cut = p->cut || c->signum == SIGKILL;
		if (!p->exited) {
			uv_process_kill(&p->h, c->signum);
		} else if (p->cut) {
			end_outputs(p);
		}
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
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || opts == NULL ||
	    opts->size < sizeof(tr_process_opts) || opts->file == NULL) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	const char *const default_args[2] = { opts->file, NULL };
	const char *const *args =
		opts->args != NULL ? opts->args : default_args;
	size_t text = strlen(opts->file) + 1 +
		      (opts->cwd != NULL ? strlen(opts->cwd) + 1 : 0);
	size_t nargs = strv_len(args, &text);
	size_t nenv = strv_len(opts->env, &text);
	size_t nslots = nargs + 1 + (opts->env != NULL ? nenv + 1 : 0);
	size_t bytes =
		sizeof(struct spawn_req) + nslots * sizeof(char *) + text;
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
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || p.v == 0 ||
	    (len > 0 && data == NULL) || len > UINT32_MAX) {
		return TR_EINVAL;
	}
	struct write_req *w = tr__alloc(sizeof(*w) + len);
	if (w == NULL) {
		return TR_ENOMEM;
	}
	w->id = p.v;
	w->len = len;
	w->off = 0;
	w->gnext = NULL;
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
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || p.v == 0) {
		return TR_EINVAL;
	}
	return ctl(cx->rt, p.v, 0, 0);
}

tr_err
tr_process_kill(tr_ctx *cx, tr_process p, int signum)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || p.v == 0 ||
	    signum <= 0) {
		return TR_EINVAL;
	}
	return ctl(cx->rt, p.v, 1, signum);
}
