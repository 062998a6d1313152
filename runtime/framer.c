/*
 * Stream framer (<troupe/framer.h>): cuts a byte stream into lines or
 * length-prefixed frames. Threads: a framer belongs to one owner and is
 * never shared, so nothing here is atomic.
 *
 * A fed slice is only recorded. tr_framer_next() returns a frame that lies
 * wholly inside the slice as a pointer into it (no copy). A frame that
 * began in an earlier slice is collected in f->buf and returned from
 * there; when next() returns 0 the unconsumed tail of the slice has been
 * copied into f->buf, so the caller may reuse its bytes.
 *
 * Invariants:
 * - f->in != NULL exactly while a fed slice has not been drained (next()
 *   has not yet returned 0 or an error for it); a feed in that state is
 *   refused, because it would drop the frames still in the slice.
 * - f->buf_len > 0 only for an unfinished frame. A frame returned from the
 *   buffer is consumed at once (buf_len = 0); its bytes stay in place,
 *   which is what lets the frame live until the next call on the framer.
 * - Line mode: the buffer never holds a "\n" (one would have ended the
 *   frame), so the scan for "\n" only ever looks at new bytes and no
 *   separate scan offset is needed: the buffered part is always scanned.
 *   It holds at most max + 1 bytes, the last being a "\r" in that case.
 * - Length mode: the buffer holds the 4-byte prefix followed by the body
 *   read so far, so once 4 bytes are held the frame's size is known.
 *   It holds at most max + 4 bytes.
 * - After an error, f->err is set, the buffer is freed and the slice
 *   forgotten: a failed stream is closed by its owner, so holding its
 *   bytes would only waste memory.
 */
#include <troupe/framer.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "runtime/alloc.h"
#include "runtime/internal.h"

/*
 * First buffer size. Most partial frames are short (a line of chat, a
 * small message), so 64 bytes covers them in one allocation; larger
 * frames double from here, which keeps the copying per byte constant.
 */
#define FRAMER_MIN_CAP 64

#define LEN32_PREFIX 4

/*
 * The bound on the buffer is max + 4 (length mode) or max + 1 (line
 * mode), and the line search looks max + 2 bytes ahead. Clamping the
 * maximum keeps those sums from wrapping; no buffer that large could be
 * allocated anyway, so nothing a caller can observe changes.
 */
#define FRAMER_MAX_LIMIT (SIZE_MAX - 5)

/*
 * Stands in for a zero-length slice fed as NULL, so that f->in != NULL
 * still means "fed and not drained".
 */
static const unsigned char empty_slice[1];

/* A zeroed framer (never initialised, or finished) has no mode. */
static bool
is_initialised(const tr_framer *f)
{
	return f->mode == TR_FRAME_LINE || f->mode == TR_FRAME_LEN32;
}

static int
fail(tr_framer *f, int err)
{
	f->err = err;
	tr__free(f->buf, f->buf_cap);
	f->buf = NULL;
	f->buf_len = 0;
	f->buf_cap = 0;
	f->in = NULL;
	f->in_len = 0;
	return err;
}

/* The slice is used up: the caller may reuse its bytes. */
static int
drained(tr_framer *f)
{
	tr__assert(f->in_len == 0);
	f->in = NULL;
	return 0;
}

static void
consume(tr_framer *f, size_t n)
{
	tr__assert(n <= f->in_len);
	f->in += n;
	f->in_len -= n;
}

/*
 * Make room for @need bytes in the buffer, growing it geometrically but
 * never past @limit (the largest the current frame can become), so a
 * peer cannot make the framer hold more than one maximal frame.
 */
static int
reserve(tr_framer *f, size_t need, size_t limit)
{
	tr__assert(need <= limit);
	if (need <= f->buf_cap) {
		return TR_OK;
	}
	size_t cap = f->buf_cap < FRAMER_MIN_CAP ? FRAMER_MIN_CAP : f->buf_cap;
	while (cap < need) {
		cap = cap > limit / 2 ? limit : cap * 2;
	}
	if (cap > limit) {
		cap = limit;
	}
	unsigned char *p = tr__alloc(cap);
	if (p == NULL) {
		return TR_ENOMEM;
	}
	if (f->buf_len > 0) {
		memcpy(p, f->buf, f->buf_len);
	}
	tr__free(f->buf, f->buf_cap);
	f->buf = p;
	f->buf_cap = cap;
	return TR_OK;
}

/* Move @n bytes from the front of the slice to the end of the buffer. */
static int
append(tr_framer *f, size_t n, size_t limit)
{
	if (n == 0) {
		return TR_OK;
	}
	if (reserve(f, f->buf_len + n, limit) < 0) {
		return fail(f, TR_ENOMEM);
	}
	memcpy(f->buf + f->buf_len, f->in, n);
	f->buf_len += n;
	consume(f, n);
	return TR_OK;
}

/*
 * No "\n" in the rest of the slice: keep it, unless the line is already
 * known to be too long. Held bytes all belong to the line, except that a
 * final "\r" may yet turn out to precede the "\n"; so n held bytes are
 * too many when n > max + 1, or n > max and the last is not a "\r".
 */
static int
keep_line_tail(tr_framer *f)
{
	if (f->in_len == 0) {
		return drained(f);
	}
	size_t allowed = f->max + (f->in[f->in_len - 1] == '\r');
	if (f->buf_len > allowed || f->in_len > allowed - f->buf_len) {
		return fail(f, TR_EMSGSIZE);
	}
	int err = append(f, f->in_len, f->max + 1);
	if (err < 0) {
		return err;
	}
	return drained(f);
}

static int
next_line(tr_framer *f, const void **frame, size_t *len)
{
	/*
	 * A line of max bytes plus a "\r" puts its "\n" at most max + 1 bytes
	 * after the line's start; looking further could only find the end of
	 * a line that is too long, so the search stops there and a flood
	 * without "\n" costs max + 2 bytes of scanning, not the whole slice.
	 * buf_len <= max + 1, so the window is at least one byte.
	 */
	size_t window = f->max + 2 - f->buf_len;
	if (window > f->in_len) {
		window = f->in_len;
	}
	const unsigned char *nl = memchr(f->in, '\n', window);
	if (nl == NULL) {
		return keep_line_tail(f);
	}

	size_t n = (size_t)(nl - f->in); /* line bytes in this slice */
	size_t content = f->buf_len + n;
	if (content > 0) {
		unsigned char last = n > 0 ? nl[-1] : f->buf[f->buf_len - 1];
		if (last == '\r') {
			content--;
		}
	}
	if (content > f->max) {
		return fail(f, TR_EMSGSIZE);
	}
	if (f->buf_len == 0) {
		*frame = f->in;
		*len = content;
		consume(f, n + 1);
		return 1;
	}
	/*
	 * The line began in an earlier slice. Only its content is appended
	 * (not the "\r"); when the "\r" is already buffered (n == 0),
	 * content < buf_len and the frame simply ends before it.
	 */
	if (content > f->buf_len) {
		int err = append(f, content - f->buf_len, f->max + 1);
		if (err < 0) {
			return err;
		}
	}
	consume(f, (size_t)(nl + 1 - f->in)); /* the "\r" if any, the "\n" */
	*frame = f->buf;
	*len = content;
	f->buf_len = 0;
	return 1;
}

static uint32_t
len32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int
next_len32(tr_framer *f, const void **frame, size_t *len)
{
	if (f->buf_len == 0 && f->in_len >= LEN32_PREFIX) {
		uint32_t n = len32_get(f->in);
		if (n > f->max) {
			return fail(f, TR_EMSGSIZE);
		}
		if (f->in_len - LEN32_PREFIX >= n) {
			*frame = f->in + LEN32_PREFIX;
			*len = n;
			consume(f, LEN32_PREFIX + n);
			return 1;
		}
	}

	/*
	 * The frame began in an earlier slice or ends in a later one: collect
	 * it in the buffer, first its prefix, then as much of its body as
	 * this slice holds. Until the prefix is complete the frame may be as
	 * large as the maximum; after it, exactly as large as it says.
	 */
	int err;
	if (f->buf_len < LEN32_PREFIX) {
		size_t max = f->max > UINT32_MAX ? (size_t)UINT32_MAX : f->max;
		size_t take = LEN32_PREFIX - f->buf_len;
		if (take > f->in_len) {
			take = f->in_len;
		}
		err = append(f, take, LEN32_PREFIX + max);
		if (err < 0) {
			return err;
		}
		if (f->buf_len < LEN32_PREFIX) {
			return drained(f);
		}
		if (len32_get(f->buf) > f->max) {
			return fail(f, TR_EMSGSIZE);
		}
	}
	size_t want = LEN32_PREFIX + (size_t)len32_get(f->buf);
	size_t take = want - f->buf_len;
	if (take > f->in_len) {
		take = f->in_len;
	}
	err = append(f, take, want);
	if (err < 0) {
		return err;
	}
	if (f->buf_len < want) {
		return drained(f);
	}
	*frame = f->buf + LEN32_PREFIX;
	*len = f->buf_len - LEN32_PREFIX;
	f->buf_len = 0;
	return 1;
}

tr_err
tr_framer_init(tr_framer *f, tr_frame_mode mode, size_t max_frame)
{
	if (f == NULL) {
		return TR_EINVAL;
	}
	/* Zeroed even on failure, so that fini after a failed init is safe. */
	memset(f, 0, sizeof(*f));
	if ((mode != TR_FRAME_LINE && mode != TR_FRAME_LEN32) ||
	    max_frame == 0) {
		return TR_EINVAL;
	}
	f->mode = mode;
	f->max = max_frame > FRAMER_MAX_LIMIT ? FRAMER_MAX_LIMIT : max_frame;
	return TR_OK;
}

void
tr_framer_fini(tr_framer *f)
{
	if (f == NULL) {
		return;
	}
	tr__free(f->buf, f->buf_cap);
	memset(f, 0, sizeof(*f));
}

tr_err
tr_framer_feed(tr_framer *f, const void *data, size_t len)
{
	if (f == NULL) {
		return TR_EINVAL;
	}
	if (f->err != 0) {
		return (tr_err)f->err;
	}
	if (!is_initialised(f) || (data == NULL && len > 0) || f->in != NULL) {
		return TR_EINVAL;
	}
	f->in = data != NULL ? data : empty_slice;
	f->in_len = len;
	return TR_OK;
}

int
tr_framer_next(tr_framer *f, const void **frame, size_t *len)
{
	if (f == NULL || frame == NULL || len == NULL) {
		return TR_EINVAL;
	}
	*frame = NULL;
	*len = 0;
	if (f->err != 0) {
		return f->err;
	}
	if (!is_initialised(f)) {
		return TR_EINVAL;
	}
	if (f->in == NULL) {
		return 0; /* nothing fed since the last 0 */
	}
	if (f->mode == TR_FRAME_LINE) {
		return next_line(f, frame, len);
	}
	return next_len32(f, frame, len);
}

size_t
tr_framer_pending(const tr_framer *f)
{
	if (f == NULL) {
		return 0;
	}
	return f->buf_len + f->in_len;
}

void
tr_frame_len32_put(uint32_t len, unsigned char out[4])
{
	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
}
