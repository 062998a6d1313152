/*
 * libFuzzer target for the wire format (net/wire.h): the input is one
 * received batch. Every frame is decoded with a tag table that NODE
 * frames fill; CHUNK frames go to a reassembler with small limits; every
 * frame that decodes is encoded again and must decode to the same
 * fields, so the encoder and the decoder cannot drift apart. Nothing may
 * read out of bounds, leak, or grow past the limits.
 */
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static trn_tags tags;

static void
check_round_trip(const trn_frame *f)
{
	trn_buf b;
	trn_reader r;
	trn_frame g;

	trn_buf_init(&b, TRN_HEADER_SIZE + (size_t)f->body_len);
	if (trn_frame_append(&b, f) != TRN_OK) {
		abort(); /* a frame the decoder took must encode */
	}
	trn_reader_init(&r, b.data, b.len, f->body_len, NULL);
	if (trn_reader_next(&r, &g) != 1 || g.kind != f->kind ||
	    g.flags != f->flags || g.type != f->type || g.reason != f->reason ||
	    g.from != f->from || g.to != f->to || g.ref != f->ref ||
	    g.who != f->who || g.body_len != f->body_len ||
	    memcmp(g.body, f->body, f->body_len) != 0 ||
	    trn_reader_next(&r, &g) != 0) {
		abort();
	}
	trn_buf_fini(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const trn_reasm_limits lim = {
		.max_messages = 4,
		.max_bytes = 16 * 1024,
		.max_message = 8 * 1024,
	};
	trn_reasm ra;
	trn_reader r;
	trn_frame f, out;
	uint8_t *body;

	trn_tags_init(&tags);
	if (trn_reasm_init(&ra, &lim) != TRN_OK) {
		return 0;
	}
	trn_reader_init(&r, data, size, 4096, &tags);
	for (;;) {
		int n = trn_reader_next(&r, &f);
		if (n == 0 || n == r.broken) {
			break;
		}
		if (n < 0) {
			continue; /* counted and skipped by a link */
		}
		check_round_trip(&f);
		if (f.kind == TRN_CHUNK &&
		    trn_reasm_add(&ra, &f, &out, &body) == 1) {
			if (out.body_len > lim.max_message) {
				abort();
			}
			free(body);
		}
		if (ra.bytes > lim.max_bytes || ra.count > lim.max_messages) {
			abort();
		}
	}
	trn_reasm_fini(&ra);
	return 0;
}
