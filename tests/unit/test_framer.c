/*
 * Unit tests of the stream framer (<troupe/framer.h>): both modes with the
 * stream cut at every byte boundary, the size limits (and the memory bound
 * they imply), zero copy, misuse, sticky errors, allocation failure, and a
 * randomized round trip with a fixed seed.
 *
 * Every piece fed to a framer is copied into its own heap block, which is
 * poisoned and freed as soon as tr_framer_next() has returned 0, the way a
 * caller that reuses its read buffer behaves. A framer that kept pointing
 * into an old piece then returns garbage (and ASan reports the use after
 * free), so the "tail is copied on 0" contract is checked everywhere.
 */
#include <troupe/framer.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/error.h>

#include "runtime/alloc.h"

#include "harness.h"

struct frame {
	const unsigned char *p;
	size_t len;
};

/* Frames expected, in order, and how many came back matching. */
struct sink {
	const struct frame *want;
	size_t n_want;
	size_t n_got;
	bool mismatch;
	const char *what; /* printed with the first mismatch */
	size_t where;
};

static void
sink_init(struct sink *s, const struct frame *want, size_t n_want,
	  const char *what, size_t where)
{
	*s = (struct sink){
		.want = want, .n_want = n_want, .what = what, .where = where
	};
}

static void
sink_take(struct sink *s, const void *p, size_t len)
{
	size_t i = s->n_got++;
	const struct frame *w = i < s->n_want ? &s->want[i] : NULL;
	bool ok = w != NULL && w->len == len &&
		  (len == 0 || memcmp(w->p, p, len) == 0);

	if (!ok && !s->mismatch) {
		size_t wlen = w != NULL ? w->len : 0;

		/* Frames may be binary or long: show their start only. */
		fprintf(stderr,
			"%s (at %zu): frame %zu: got %zu bytes \"%.*s\", "
			"want %zu bytes \"%.*s\"\n",
			s->what, s->where, i, len, (int)(len > 40 ? 40 : len),
			(const char *)p, wlen, (int)(wlen > 40 ? 40 : wlen),
			w != NULL ? (const char *)w->p : "");
	}
	if (!ok) {
		s->mismatch = true;
	}
}

/* All frames arrived, and nothing else. */
static void
sink_check(const struct sink *s)
{
	CHECK(!s->mismatch);
	CHECK_EQ_U64(s->n_got, s->n_want);
}

/*
 * Feed one piece (copied to the heap) and take frames until next() stops.
 * Returns what next() returned last: 0, or an error.
 */
static int
feed_piece(tr_framer *f, const void *bytes, size_t len, struct sink *s)
{
	unsigned char *copy = malloc(len + 1); /* +1: malloc(0) may be NULL */
	const void *frame;
	size_t flen;
	int r;

	if (copy == NULL) {
		CHECK(copy != NULL);
		return TR_ENOMEM;
	}
	if (len > 0) {
		memcpy(copy, bytes, len);
	}
	copy[len] = 0xAA; /* never part of the piece */
	r = tr_framer_feed(f, copy, len);
	if (r == TR_OK) {
		while ((r = tr_framer_next(f, &frame, &flen)) > 0) {
			sink_take(s, frame, flen);
		}
	}
	memset(copy, 0xAA, len + 1);
	free(copy);
	return r;
}

/* Frame list from C strings (none of the fixed cases holds a NUL). */
static void
frames_of(struct frame *out, const char *const *strs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct frame){ (const unsigned char *)strs[i],
					 strlen(strs[i]) };
	}
}

/*
 * Stream offsets where frames end, for checking pending(): after a piece
 * ending at offset i is drained, the framer holds exactly the bytes from
 * the last frame end up to i.
 */
static size_t
held_after(const size_t *ends, size_t n_ends, size_t i)
{
	size_t last = 0;

	for (size_t k = 0; k < n_ends && ends[k] <= i; k++) {
		last = ends[k];
	}
	return i - last;
}

/*
 * Cut @in in two at every offset, then feed it one byte at a time, and
 * check that the same frames come back each time and that pending()
 * matches after each piece.
 */
static void
check_every_split(tr_frame_mode mode, size_t max, const unsigned char *in,
		  size_t len, const struct frame *want, size_t n_want,
		  const size_t *ends, size_t n_ends)
{
	int64_t base = tr__alloc_outstanding();
	bool pending_ok = true;

	for (size_t i = 0; i <= len; i++) {
		tr_framer f;
		struct sink s;

		sink_init(&s, want, n_want, "split", i);
		CHECK_OK(tr_framer_init(&f, mode, max));
		CHECK_OK(feed_piece(&f, in, i, &s));
		if (tr_framer_pending(&f) != held_after(ends, n_ends, i)) {
			pending_ok = false;
		}
		CHECK_OK(feed_piece(&f, in + i, len - i, &s));
		sink_check(&s);
		CHECK_EQ_U64(tr_framer_pending(&f), 0);
		tr_framer_fini(&f);
	}
	CHECK(pending_ok);

	tr_framer f;
	struct sink s;

	sink_init(&s, want, n_want, "bytewise", 0);
	CHECK_OK(tr_framer_init(&f, mode, max));
	pending_ok = true;
	for (size_t i = 0; i < len; i++) {
		s.where = i;
		CHECK_OK(feed_piece(&f, in + i, 1, &s));
		if (tr_framer_pending(&f) != held_after(ends, n_ends, i + 1)) {
			pending_ok = false;
		}
	}
	CHECK(pending_ok);
	sink_check(&s);
	tr_framer_fini(&f);
	CHECK_EQ_INT(tr__alloc_outstanding(), base);
}

/* Offsets just after each "\n" of a line stream. */
static size_t
line_ends(const char *in, size_t *ends)
{
	size_t n = 0;

	for (size_t i = 0; in[i] != '\0'; i++) {
		if (in[i] == '\n') {
			ends[n++] = i + 1;
		}
	}
	return n;
}

static void
check_lines(const char *in, const char *const *strs, size_t n, size_t max)
{
	struct frame want[16];
	size_t ends[16];

	CHECK(n <= 16);
	frames_of(want, strs, n);
	size_t n_ends = line_ends(in, ends);
	CHECK_EQ_U64(n_ends, n);
	check_every_split(TR_FRAME_LINE, max, (const unsigned char *)in,
			  strlen(in), want, n, ends, n_ends);
}

static void
test_line_every_split(void)
{
	static const char in[] = "alpha\nbeta\r\n\n\r\ngamma delta\na\rb\n"
				 "\r\r\nlast\n";
	static const char *const want[] = {
		"alpha", "beta", "", "", "gamma delta", "a\rb", "\r", "last",
	};

	check_lines(in, want, 8, 64);
	/* Again with the longest line exactly at the maximum. */
	check_lines(in, want, 8, 11);
}

static void
test_line_crlf(void)
{
	static const char *const one[] = { "a" };
	static const char *const cr_kept[] = { "a\r" };
	static const char *const inner[] = { "a\rb" };
	static const char *const lone[] = { "\r", "" };
	static const char *const two[] = { "x", "y" };

	check_lines("a\r\n", one, 1, 8);
	check_lines("a\n", one, 1, 8);
	/* Only the one "\r" just before the "\n" goes. */
	check_lines("a\r\r\n", cr_kept, 1, 8);
	check_lines("a\rb\n", inner, 1, 8);
	check_lines("\r\r\n\r\n", lone, 2, 8);
	check_lines("x\r\ny\n", two, 2, 8);
}

static void
test_line_empty(void)
{
	static const char *const three[] = { "", "", "" };
	static const char *const mixed[] = { "", "a", "", "" };

	check_lines("\n\n\n", three, 3, 1);
	check_lines("\r\n\r\n\n", three, 3, 1);
	check_lines("\na\n\r\n\n", mixed, 4, 1);
}

/* Feed @in whole and return what next() ends with, counting frames. */
static int
run_whole(tr_frame_mode mode, size_t max, const void *in, size_t len,
	  size_t *frames)
{
	tr_framer f;
	const void *p;
	size_t n;
	int r;

	*frames = 0;
	CHECK_OK(tr_framer_init(&f, mode, max));
	CHECK_OK(tr_framer_feed(&f, in, len));
	while ((r = tr_framer_next(&f, &p, &n)) > 0) {
		(*frames)++;
	}
	tr_framer_fini(&f);
	return r;
}

static void
test_line_max(void)
{
	static const char *const exact[] = { "12345678" };
	size_t frames;

	/* Exactly max bytes, with either ending, at every split. */
	check_lines("12345678\n", exact, 1, 8);
	check_lines("12345678\r\n", exact, 1, 8);

	/* One byte over is refused, however it is cut. */
	static const char over[] = "123456789\n";
	static const char over_crlf[] = "123456789\r\n";
	CHECK_ERR(run_whole(TR_FRAME_LINE, 8, over, 10, &frames), TR_EMSGSIZE);
	CHECK_EQ_U64(frames, 0);
	CHECK_ERR(run_whole(TR_FRAME_LINE, 8, over_crlf, 11, &frames),
		  TR_EMSGSIZE);
	for (size_t i = 0; i <= sizeof(over_crlf) - 1; i++) {
		tr_framer f;
		struct sink s;

		sink_init(&s, NULL, 0, "over", i);
		CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, 8));
		int r = feed_piece(&f, over_crlf, i, &s);
		if (r == 0) {
			r = feed_piece(&f, over_crlf + i, 11 - i, &s);
		}
		CHECK_ERR(r, TR_EMSGSIZE);
		sink_check(&s);
		tr_framer_fini(&f);
	}

	/*
	 * Without its "\n", max bytes plus a "\r" may still be a valid line,
	 * but max + 1 bytes that do not end in "\r" cannot be.
	 */
	tr_framer f;
	struct sink s;
	static const struct frame want = { (const unsigned char *)"12345678",
					   8 };

	sink_init(&s, &want, 1, "held", 0);
	CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, 8));
	CHECK_OK(feed_piece(&f, "12345678\r", 9, &s));
	CHECK_EQ_U64(tr_framer_pending(&f), 9);
	CHECK_OK(feed_piece(&f, "\n", 1, &s));
	sink_check(&s);
	CHECK_ERR(feed_piece(&f, "123456789", 9, &s), TR_EMSGSIZE);
	tr_framer_fini(&f);
}

/*
 * A peer that never sends "\n" must not make the framer hold more than
 * max + 1 bytes, whatever the sizes of the pieces; and the error must
 * come as soon as the line is known to be too long.
 */
static void
test_line_flood(void)
{
	enum { MAX = 100 };
	static const size_t pieces[] = { 1, 7, 33, 64, 250 };
	unsigned char junk[250];
	int64_t base = tr__alloc_outstanding();

	for (size_t k = 0; k < 2; k++) {
		/* Plain bytes, then "\r" bytes (each could precede a "\n"). */
		memset(junk, k == 0 ? 'x' : '\r', sizeof(junk));
		for (size_t pi = 0; pi < sizeof(pieces) / sizeof(pieces[0]);
		     pi++) {
			tr_framer f;
			struct sink s;
			size_t fed = 0, most = 0;
			int r = 0;

			sink_init(&s, NULL, 0, "flood", pieces[pi]);
			CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, MAX));
			while (r == 0 && fed < 10000) {
				r = feed_piece(&f, junk, pieces[pi], &s);
				fed += pieces[pi];
				size_t held = tr_framer_pending(&f);
				most = held > most ? held : most;
				/* A private field, read only here. */
				CHECK(f.buf_cap <= MAX + 5);
			}
			CHECK_ERR(r, TR_EMSGSIZE);
			CHECK(most <= MAX + 1);
			/*
			 * x: MAX + 1 bytes are already too many.
			 * \r: MAX + 2 bytes are; the piece that crosses
			 * the bound is the one that fails.
			 */
			size_t bound = k == 0 ? MAX + 1 : MAX + 2;
			CHECK(fed >= bound && fed - pieces[pi] < bound);
			CHECK_EQ_U64(s.n_got, 0);
			/* The failed framer holds nothing any more. */
			CHECK_EQ_U64(tr_framer_pending(&f), 0);
			tr_framer_fini(&f);
		}
	}
	CHECK_EQ_INT(tr__alloc_outstanding(), base);
}

/* Encode frames in length mode into @out; records the frame ends. */
static size_t
encode_len32(const struct frame *frames, size_t n, unsigned char *out,
	     size_t *ends)
{
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		tr_frame_len32_put((uint32_t)frames[i].len, out + off);
		off += 4;
		if (frames[i].len > 0) {
			memcpy(out + off, frames[i].p, frames[i].len);
		}
		off += frames[i].len;
		if (ends != NULL) {
			ends[i] = off;
		}
	}
	return off;
}

static void
test_len32_put(void)
{
	unsigned char b[4];

	tr_frame_len32_put(0x01020304u, b);
	CHECK(b[0] == 1 && b[1] == 2 && b[2] == 3 && b[3] == 4);
	tr_frame_len32_put(0xFFFFFFFEu, b);
	CHECK(b[0] == 0xFF && b[1] == 0xFF && b[2] == 0xFF && b[3] == 0xFE);
}

static void
test_len32_every_split(void)
{
	static unsigned char big[300]; /* past the first buffer size */
	static const unsigned char bin[] = { 0, '\n', 0xFF, '\r', 0 };
	unsigned char in[512];
	size_t ends[8];

	for (size_t i = 0; i < sizeof(big); i++) {
		big[i] = (unsigned char)(i * 7 + 1);
	}
	const struct frame want[] = {
		{ (const unsigned char *)"hello", 5 },
		{ big, 0 },
		{ bin, sizeof(bin) },
		{ big, sizeof(big) },
		{ (const unsigned char *)"x", 1 },
		{ big, 0 },
	};
	size_t n = sizeof(want) / sizeof(want[0]);
	size_t len = encode_len32(want, n, in, ends);

	check_every_split(TR_FRAME_LEN32, 1024, in, len, want, n, ends, n);
	/* With the largest frame exactly at the maximum. */
	check_every_split(TR_FRAME_LEN32, sizeof(big), in, len, want, n, ends,
			  n);
}

static void
test_len32_empty(void)
{
	static const unsigned char none[1];
	const struct frame want[] = { { none, 0 }, { none, 0 }, { none, 0 } };
	unsigned char in[12];
	size_t ends[3];
	size_t len = encode_len32(want, 3, in, ends);

	CHECK_EQ_U64(len, 12);
	check_every_split(TR_FRAME_LEN32, 1, in, len, want, 3, ends, 3);
}

static void
test_len32_over_max(void)
{
	unsigned char pre[4];
	size_t frames;

	/* The prefix alone is enough to refuse, however it is cut. */
	static const uint32_t lens[] = { 17, 1000, 0xFFFFFFFFu };
	for (size_t k = 0; k < 3; k++) {
		tr_frame_len32_put(lens[k], pre);
		for (size_t i = 0; i <= 4; i++) {
			tr_framer f;
			struct sink s;

			sink_init(&s, NULL, 0, "over", i);
			CHECK_OK(tr_framer_init(&f, TR_FRAME_LEN32, 16));
			int r = feed_piece(&f, pre, i, &s);
			if (r == 0) {
				r = feed_piece(&f, pre + i, 4 - i, &s);
			}
			CHECK_ERR(r, TR_EMSGSIZE);
			CHECK_EQ_U64(tr_framer_pending(&f), 0);
			tr_framer_fini(&f);
		}
	}

	/* Exactly the maximum is accepted; the frame after it still counts. */
	unsigned char in[64];
	static const unsigned char body[17] = "0123456789abcdef";
	struct frame ok[] = { { body, 16 }, { body, 17 } };
	size_t len = encode_len32(ok, 2, in, NULL);
	CHECK_ERR(run_whole(TR_FRAME_LEN32, 16, in, len, &frames), TR_EMSGSIZE);
	CHECK_EQ_U64(frames, 1);
	CHECK_OK(run_whole(TR_FRAME_LEN32, 17, in, len, &frames));
	CHECK_EQ_U64(frames, 2);
}

/*
 * Whole frames come back as pointers into the fed bytes; a frame that
 * began in an earlier piece comes from the framer's buffer, and whole
 * frames after it in the same piece are again zero copy.
 */
static void
test_zero_copy(void)
{
	tr_framer f;
	const void *p;
	size_t n;
	static const char lines[] = "ab\r\ncd\nef";
	static const char rest[] = "gh\nij\n";

	CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, 64));
	CHECK_OK(tr_framer_feed(&f, lines, sizeof(lines) - 1));
	/* pending() counts fed bytes not yet taken as well as held ones. */
	CHECK_EQ_U64(tr_framer_pending(&f), 9);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p == lines);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_U64(tr_framer_pending(&f), 5);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p == lines + 4);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	CHECK_EQ_U64(tr_framer_pending(&f), 2);
	CHECK_OK(tr_framer_feed(&f, rest, sizeof(rest) - 1));
	CHECK_EQ_U64(tr_framer_pending(&f), 8);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p != NULL && (const char *)p != rest);
	CHECK(n == 4 && memcmp(p, "efgh", 4) == 0);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p == rest + 3);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	tr_framer_fini(&f);

	unsigned char in[64];
	static const struct frame frames[] = {
		{ (const unsigned char *)"one", 3 },
		{ (const unsigned char *)"", 0 },
		{ (const unsigned char *)"three", 5 },
	};
	size_t ends[3];
	size_t len = encode_len32(frames, 3, in, ends);

	CHECK_OK(tr_framer_init(&f, TR_FRAME_LEN32, 64));
	CHECK_OK(tr_framer_feed(&f, in, len - 1)); /* the last is cut short */
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p == in + 4);
	CHECK_EQ_U64(n, 3);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p == in + 11);
	CHECK_EQ_U64(n, 0);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	CHECK_EQ_U64(tr_framer_pending(&f), 8);
	CHECK_OK(tr_framer_feed(&f, in + len - 1, 1));
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(p != in + 15);
	CHECK(n == 5 && memcmp(p, "three", 5) == 0);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	tr_framer_fini(&f);
}

static void
test_feed_before_drain(void)
{
	tr_framer f;
	const void *p;
	size_t n;

	CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, 64));
	CHECK_OK(tr_framer_feed(&f, "a\nb\n", 4));
	CHECK_ERR(tr_framer_feed(&f, "c\n", 2), TR_EINVAL);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK_ERR(tr_framer_feed(&f, "c\n", 2), TR_EINVAL);
	/* The refused feeds changed nothing. */
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(n == 1 && memcmp(p, "b", 1) == 0);
	/* All bytes are consumed, but next() has not said 0 yet. */
	CHECK_EQ_U64(tr_framer_pending(&f), 0);
	CHECK_ERR(tr_framer_feed(&f, "c\n", 2), TR_EINVAL);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	CHECK_OK(tr_framer_feed(&f, "c\n", 2));
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK(n == 1 && memcmp(p, "c", 1) == 0);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	/* Empty feeds follow the same rule. */
	CHECK_OK(tr_framer_feed(&f, NULL, 0));
	CHECK_ERR(tr_framer_feed(&f, NULL, 0), TR_EINVAL);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	CHECK_OK(tr_framer_feed(&f, "", 0));
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	/* next() with nothing fed is simply 0. */
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	tr_framer_fini(&f);
}

static void
test_sticky_error(void)
{
	tr_frame_mode modes[] = { TR_FRAME_LINE, TR_FRAME_LEN32 };
	static const unsigned char bad_line[] = "toolong\n";
	static const unsigned char bad_len[] = { 0, 0, 1, 0 };
	static const unsigned char good_len[] = { 0, 0, 0, 1, 'a' };

	for (size_t k = 0; k < 2; k++) {
		tr_framer f;
		const void *p = &p;
		size_t n = 99;

		CHECK_OK(tr_framer_init(&f, modes[k], 4));
		if (k == 0) {
			CHECK_OK(tr_framer_feed(&f, bad_line, 8));
		} else {
			CHECK_OK(tr_framer_feed(&f, bad_len, 4));
		}
		CHECK_ERR(tr_framer_next(&f, &p, &n), TR_EMSGSIZE);
		CHECK(p == NULL);
		CHECK_EQ_U64(n, 0);
		for (int i = 0; i < 3; i++) {
			CHECK_ERR(tr_framer_next(&f, &p, &n), TR_EMSGSIZE);
			/* Even valid input does not revive it. */
			if (k == 0) {
				CHECK_ERR(tr_framer_feed(&f, "ok\n", 3),
					  TR_EMSGSIZE);
			} else {
				CHECK_ERR(tr_framer_feed(&f, good_len, 5),
					  TR_EMSGSIZE);
			}
			CHECK_ERR(tr_framer_feed(&f, NULL, 0), TR_EMSGSIZE);
		}
		tr_framer_fini(&f);
		/* fini leaves it reusable. */
		CHECK_OK(tr_framer_init(&f, modes[k], 4));
		CHECK_OK(tr_framer_feed(&f,
					k == 0 ? (const void *)"ok\n"
					       : (const void *)good_len,
					k == 0 ? 3 : 5));
		CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
		CHECK(n == (k == 0 ? 2u : 1u));
		CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
		tr_framer_fini(&f);
	}
}

static void
test_bad_arguments(void)
{
	tr_framer f;
	tr_framer zero;
	const void *p;
	size_t n;

	CHECK_ERR(tr_framer_init(NULL, TR_FRAME_LINE, 8), TR_EINVAL);
	CHECK_ERR(tr_framer_init(&f, (tr_frame_mode)0, 8), TR_EINVAL);
	CHECK_ERR(tr_framer_init(&f, (tr_frame_mode)3, 8), TR_EINVAL);
	CHECK_ERR(tr_framer_init(&f, TR_FRAME_LINE, 0), TR_EINVAL);
	CHECK_ERR(tr_framer_init(&f, TR_FRAME_LEN32, 0), TR_EINVAL);
	tr_framer_fini(&f); /* after a failed init: harmless */

	/* A zeroed framer was never initialised: refused, fini harmless. */
	memset(&zero, 0, sizeof(zero));
	CHECK_ERR(tr_framer_feed(&zero, "a\n", 2), TR_EINVAL);
	CHECK_ERR(tr_framer_next(&zero, &p, &n), TR_EINVAL);
	CHECK_EQ_U64(tr_framer_pending(&zero), 0);
	tr_framer_fini(&zero);
	tr_framer_fini(&zero);
	tr_framer_fini(NULL);

	CHECK_OK(tr_framer_init(&f, TR_FRAME_LINE, 8));
	CHECK_ERR(tr_framer_feed(NULL, "a\n", 2), TR_EINVAL);
	CHECK_ERR(tr_framer_feed(&f, NULL, 2), TR_EINVAL);
	CHECK_OK(tr_framer_feed(&f, "a\n", 2));
	CHECK_ERR(tr_framer_next(NULL, &p, &n), TR_EINVAL);
	CHECK_ERR(tr_framer_next(&f, NULL, &n), TR_EINVAL);
	CHECK_ERR(tr_framer_next(&f, &p, NULL), TR_EINVAL);
	/* Misuse did not fail the framer. */
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 1);
	CHECK_EQ_U64(n, 1);
	CHECK_EQ_INT(tr_framer_next(&f, &p, &n), 0);
	CHECK_EQ_U64(tr_framer_pending(NULL), 0);
	tr_framer_fini(&f);

	/* The largest maximum is usable (no overflow in the bounds). */
	static const char *const one[] = { "abc" };
	check_lines("abc\r\n", one, 1, SIZE_MAX);
}

/*
 * Fail the n-th allocation, for n = 1, 2, ... until a run no longer
 * reaches it: every failure must surface as TR_ENOMEM (sticky), the
 * frames before it must be right, and fini must release everything.
 */
static void
check_alloc_failures(tr_frame_mode mode, const unsigned char *in, size_t len,
		     const struct frame *want, size_t n_want, size_t piece)
{
	int64_t base = tr__alloc_outstanding();
	unsigned failures = 0;

	for (uint64_t nth = 1; nth < 100; nth++) {
		tr_framer f;
		struct sink s;
		const void *p;
		size_t n;
		int r = 0;

		sink_init(&s, want, n_want, "alloc", (size_t)nth);
		CHECK_OK(tr_framer_init(&f, mode, 1024));
		tr__alloc_fail_after(nth);
		for (size_t off = 0; off < len && r == 0; off += piece) {
			size_t k = len - off < piece ? len - off : piece;
			r = feed_piece(&f, in + off, k, &s);
		}
		tr__alloc_fail_after(0);
		if (r == 0) {
			/* This run needed fewer than nth allocations. */
			sink_check(&s);
			tr_framer_fini(&f);
			CHECK_EQ_INT(tr__alloc_outstanding(), base);
			break;
		}
		failures++;
		CHECK_ERR(r, TR_ENOMEM);
		CHECK(!s.mismatch && s.n_got < n_want);
		CHECK_ERR(tr_framer_next(&f, &p, &n), TR_ENOMEM);
		CHECK_ERR(tr_framer_feed(&f, "x", 1), TR_ENOMEM);
		tr_framer_fini(&f);
		CHECK_EQ_INT(tr__alloc_outstanding(), base);
	}
	/* The buffer grew more than once, so several points were tried. */
	CHECK(failures >= 3);
}

static void
test_alloc_failure(void)
{
	static unsigned char big[600];
	unsigned char in[1024];

	memset(big, 'q', sizeof(big));
	const struct frame want[] = {
		{ (const unsigned char *)"short", 5 },
		{ big, 100 },
		{ big, sizeof(big) },
		{ (const unsigned char *)"end", 3 },
	};
	size_t len = encode_len32(want, 4, in, NULL);

	check_alloc_failures(TR_FRAME_LEN32, in, len, want, 4, 7);

	/* Same frames as lines; "q" and letters hold no "\n". */
	size_t off = 0;
	for (size_t i = 0; i < 4; i++) {
		memcpy(in + off, want[i].p, want[i].len);
		off += want[i].len;
		in[off++] = '\n';
	}
	check_alloc_failures(TR_FRAME_LINE, in, off, want, 4, 7);
}

/* xorshift64*: fixed seed, so a failure replays exactly. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Du;
}

static size_t
rng_below(size_t n)
{
	return (size_t)(rng() % n);
}

/* Mostly short frames, some long, some empty, some at the maximum. */
static size_t
random_frame_len(size_t max)
{
	switch (rng_below(8)) {
	case 0:
		return 0;
	case 1:
		return max;
	case 2:
	case 3:
		return rng_below(max + 1);
	default:
		return rng_below(40 < max ? 40 : max + 1);
	}
}

static unsigned char
random_byte(bool is_line)
{
	/* Lines get many "\r": they test the one-"\r" rule hard. */
	static const unsigned char some[] = { '\r', 'a', 0, 0xFF };
	unsigned char c =
		rng_below(3) == 0 ? some[rng_below(4)] : (unsigned char)rng();

	if (is_line && c == '\n') {
		c = 'n';
	}
	return c;
}

static void
random_round_trip(tr_frame_mode mode, size_t max, size_t n_frames)
{
	bool is_line = mode == TR_FRAME_LINE;
	struct frame *want = calloc(n_frames, sizeof(*want));
	unsigned char *data = malloc(n_frames * (max + 2));
	unsigned char *in = malloc(n_frames * (max + 4));
	size_t doff = 0, len = 0;
	int64_t base = tr__alloc_outstanding();

	CHECK(want != NULL && data != NULL && in != NULL);
	for (size_t i = 0; i < n_frames; i++) {
		size_t flen = random_frame_len(max);

		for (size_t k = 0; k < flen; k++) {
			data[doff + k] = random_byte(is_line);
		}
		want[i] = (struct frame){ data + doff, flen };
		doff += flen;
		if (is_line) {
			memcpy(in + len, want[i].p, flen);
			len += flen;
			/*
			 * A line that ends in "\r" must be sent with "\r\n"
			 * to keep it; others get either ending.
			 */
			if ((flen > 0 && want[i].p[flen - 1] == '\r') ||
			    rng_below(2) == 0) {
				in[len++] = '\r';
			}
			in[len++] = '\n';
		} else {
			len += encode_len32(&want[i], 1, in + len, NULL);
		}
	}

	tr_framer f;
	struct sink s;
	size_t off = 0, most = 0, cap_most = 0;
	int r = 0;

	sink_init(&s, want, n_frames, is_line ? "random line" : "random len32",
		  0);
	CHECK_OK(tr_framer_init(&f, mode, max));
	while (off < len && r == 0) {
		size_t piece;

		switch (rng_below(4)) {
		case 0:
			piece = rng_below(5); /* tiny, or empty */
			break;
		case 1:
			piece = rng_below(3 * max);
			break;
		default:
			piece = rng_below(64);
			break;
		}
		piece = piece > len - off ? len - off : piece;
		s.where = off;
		r = feed_piece(&f, in + off, piece, &s);
		off += piece;
		size_t held = tr_framer_pending(&f);
		most = held > most ? held : most;
		/* The buffer's own bound (a private field, read only here). */
		cap_most = f.buf_cap > cap_most ? f.buf_cap : cap_most;
	}
	CHECK_OK(r);
	CHECK(cap_most <= max + 5);
	sink_check(&s);
	CHECK_EQ_U64(tr_framer_pending(&f), 0);
	/* Never more than one frame and its framing held. */
	CHECK(most <= (is_line ? max + 1 : max + 4));
	tr_framer_fini(&f);
	CHECK_EQ_INT(tr__alloc_outstanding(), base);
	free(in);
	free(data);
	free(want);
}

static void
test_random_round_trip(void)
{
	random_round_trip(TR_FRAME_LINE, 300, 3000);
	random_round_trip(TR_FRAME_LEN32, 300, 3000);
	/* A tiny maximum puts nearly every frame at the limit. */
	random_round_trip(TR_FRAME_LINE, 2, 3000);
	random_round_trip(TR_FRAME_LEN32, 1, 3000);
}

static const struct test_case tests[] = {
	{ "framer: lines cut at every byte", test_line_every_split },
	{ "framer: \\r\\n endings", test_line_crlf },
	{ "framer: empty lines", test_line_empty },
	{ "framer: line of max accepted, max + 1 refused", test_line_max },
	{ "framer: flood without \\n is bounded and refused", test_line_flood },
	{ "framer: len32 prefix is big-endian", test_len32_put },
	{ "framer: len32 frames cut at every byte", test_len32_every_split },
	{ "framer: len32 zero-length frames", test_len32_empty },
	{ "framer: len32 over max refused at the prefix", test_len32_over_max },
	{ "framer: whole frames are not copied", test_zero_copy },
	{ "framer: feed before drain is refused", test_feed_before_drain },
	{ "framer: errors are sticky", test_sticky_error },
	{ "framer: bad arguments", test_bad_arguments },
	{ "framer: allocation failure", test_alloc_failure },
	{ "framer: random frames in random pieces", test_random_round_trip },
	{ NULL, NULL },
};

TEST_MAIN(tests)
