#ifndef TROUPE_FRAMER_H
#define TROUPE_FRAMER_H

/*
 * Framing: cut a byte stream (TR_MSG_TCP_DATA, process output, ...) into
 * frames, either lines ending in "\n" or frames prefixed by a 4-byte
 * big-endian length. A framer belongs to one actor (it is not
 * thread-safe) and lives in that actor's state.
 *
 * Use:
 *
 *     tr_framer_feed(&st->fr, d->bytes, d->len);
 *     const void *frame; size_t len; int r;
 *     while ((r = tr_framer_next(&st->fr, &frame, &len)) > 0)
 *             handle(frame, len);
 *     if (r < 0)
 *             ... TR_EMSGSIZE: the peer sent a frame over the maximum ...
 *
 * tr_framer_feed() does not copy: frames that lie wholly inside the fed
 * bytes are returned as pointers into them, so the fed bytes must stay
 * valid until tr_framer_next() has returned 0 or an error. Only the tail of
 * an unfinished frame is copied into the framer's own buffer (at most the
 * maximum frame size plus the prefix), so memory per framer stays bounded
 * whatever the peer sends.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/error.h>
#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** enum tr_frame_mode - How a framer cuts its stream. */
typedef enum tr_frame_mode {
	TR_FRAME_LINE = 1,  /* "\n"-terminated; a "\r" before it is dropped */
	TR_FRAME_LEN32 = 2, /* 4-byte big-endian length, then that many bytes */
} tr_frame_mode;

/**
 * struct tr_framer - A framer. Its fields are private; place it in actor
 * state and call tr_framer_init() before use and tr_framer_fini() after.
 */
typedef struct tr_framer {
	int mode;
	int err;
	size_t max;
	unsigned char *buf; /* the unfinished frame, copied */
	size_t buf_len;
	size_t buf_cap;
	const unsigned char *in; /* fed bytes not yet consumed */
	size_t in_len;
} tr_framer;

/**
 * tr_framer_init() - Prepare @f. Does not allocate.
 * @mode:      TR_FRAME_LINE or TR_FRAME_LEN32
 * @max_frame: largest frame accepted, in bytes (without the "\r\n", "\n"
 *             or the prefix); at least 1. The framer never holds more
 *             than @max_frame + 1 bytes (lines) or @max_frame + 4 (length
 *             prefixed) of an unfinished frame.
 *
 * Thread:    any (the framer then belongs to the caller).
 * Return:    TR_OK, TR_EINVAL (NULL @f, unknown @mode, @max_frame 0); on
 *            TR_EINVAL a non-NULL @f is zeroed, so tr_framer_fini() on it
 *            is harmless.
 */
TR_API tr_err tr_framer_init(tr_framer *f, tr_frame_mode mode,
			     size_t max_frame);

/**
 * tr_framer_fini() - Free what @f holds and zero it; tr_framer_init() may
 * then prepare it again. A no-op on a zeroed framer or NULL.
 * Thread: its owner.
 */
TR_API void tr_framer_fini(tr_framer *f);

/**
 * tr_framer_feed() - Give @f the next @len bytes of the stream (not
 * copied; see the file comment). Feed again only after tr_framer_next()
 * returned 0, even when the frames taken used up every fed byte.
 * Thread:    its owner.
 * Return:    TR_OK; TR_EINVAL (NULL @f, @f not initialised, NULL data
 *            with a length, or tr_framer_next() has not returned 0 since
 *            the previous feed; nothing changes); the sticky error of an
 *            earlier tr_framer_next().
 */
TR_API tr_err tr_framer_feed(tr_framer *f, const void *data, size_t len);

/**
 * tr_framer_next() - Take the next complete frame.
 * @frame: set to the frame's first byte (valid until the next call on @f);
 *         NULL when no frame is returned
 * @len:   set to its length (0 when no frame is returned)
 *
 * A frame that lies wholly inside the fed bytes points into them; one that
 * began in an earlier feed points into the framer's buffer.
 * After an error the framer stays failed (every later call returns the
 * same error, and it holds no bytes any more); the stream cannot be
 * resynchronised, so close it.
 * Thread:    its owner.
 * Return:    1 (a frame); 0 (need more bytes: the rest was copied, so the
 *            fed bytes may be reused; also when nothing was fed);
 *            TR_EMSGSIZE (a frame over the maximum); TR_ENOMEM;
 *            TR_EINVAL (a NULL argument, or @f not initialised; not
 *            sticky).
 */
TR_API int tr_framer_next(tr_framer *f, const void **frame, size_t *len);

/**
 * tr_framer_pending() - Bytes of the stream @f holds that no returned
 * frame covered: those copied into its buffer plus fed bytes that
 * tr_framer_next() has not taken yet. 0 for NULL or a failed framer.
 * Thread: its owner.
 */
TR_API size_t tr_framer_pending(const tr_framer *f);

/**
 * tr_frame_len32_put() - Write the 4-byte big-endian prefix for a frame of
 * @len bytes into @out.
 * Thread: any.
 */
TR_API void tr_frame_len32_put(uint32_t len, unsigned char out[4]);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_FRAMER_H */
