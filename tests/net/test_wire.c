/*
 * The wire format (net/wire.h): round trips of every kind, the exact
 * header bytes, batching and its bound, one test per refusal (each built
 * by corrupting a valid frame), node tags and their limits, and chunk
 * reassembly with every way it refuses and its memory bounds.
 */
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CHECK_TRN(expr, want)                                                  \
	do {                                                                   \
		int ct_ = (int)(expr);                                         \
		if (ct_ != (int)(want)) {                                      \
			fprintf(stderr, "%s:%d: %s returned %s, want %s\n",    \
				__FILE__, __LINE__, #expr, trn_err_name(ct_),  \
				trn_err_name(want));                           \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

static const uint64_t LOCAL_A = (UINT64_C(5) << 28) | 17; /* gen 5, slot 17 */
static const uint64_t LOCAL_B = (UINT64_C(1) << 28) | 3;

static const uint8_t payload[] = "hello, other node";

/* A valid frame of each kind; NODE frames come from trn_tags_put(). */
static trn_frame
valid(uint8_t kind)
{
	trn_frame f = { .kind = kind };
	uint64_t a = trn_wpid(TRN_TAG_SENDER, LOCAL_A);
	uint64_t b = trn_wpid(TRN_TAG_RECEIVER, LOCAL_B);

	switch (kind) {
	case TRN_SEND:
		f.type = 1234;
		f.from = a;
		f.to = b;
		f.body = payload;
		f.body_len = sizeof(payload);
		break;
	case TRN_LINK:
	case TRN_UNLINK:
		f.from = a;
		f.to = b;
		break;
	case TRN_EXIT:
		f.flags = TRN_F_LINK_ENDED;
		f.reason = -7;
		f.from = a;
		f.to = b;
		break;
	case TRN_MONITOR:
	case TRN_DEMONITOR:
		f.from = a;
		f.to = b;
		f.ref = UINT64_C(0x8000000000000042);
		break;
	case TRN_DOWN:
		f.to = b;
		f.who = a;
		f.ref = UINT64_C(0x8000000000000042);
		f.reason = 3;
		break;
	case TRN_HEARTBEAT:
		f.ref = 99;
		break;
	}
	return f;
}

static bool
same(const trn_frame *a, const trn_frame *b)
{
	return a->kind == b->kind && a->flags == b->flags &&
	       a->type == b->type && a->reason == b->reason &&
	       a->from == b->from && a->to == b->to && a->ref == b->ref &&
	       a->who == b->who && a->body_len == b->body_len &&
	       (a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0);
}

/* Decode @b's only frame into @out with a fresh table; the reader's code. */
static int
decode_one(const trn_buf *b, trn_frame *out)
{
	static trn_tags tags;
	trn_reader r;

	trn_tags_init(&tags);
	trn_reader_init(&r, b->data, b->len, TRN_BODY_MAX_DEFAULT, &tags);
	return trn_reader_next(&r, out);
}

/* Encode a valid frame of @kind, let @corrupt change its bytes, decode. */
static int
corrupt_and_decode(uint8_t kind, void (*corrupt)(trn_buf *b))
{
	trn_buf b;
	trn_frame f = valid(kind), g;

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	corrupt(&b);
	int r = decode_one(&b, &g);
	trn_buf_fini(&b);
	return r;
}

static void
test_round_trip_every_kind(void)
{
	uint8_t kinds[] = { TRN_SEND, TRN_LINK,     TRN_UNLINK,
			    TRN_EXIT, TRN_MONITOR,  TRN_DEMONITOR,
			    TRN_DOWN, TRN_HEARTBEAT };

	for (size_t i = 0; i < sizeof(kinds); i++) {
		trn_buf b;
		trn_frame f = valid(kinds[i]), g;

		trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
		CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
		CHECK_EQ_U64(b.len, TRN_HEADER_SIZE + f.body_len);
		CHECK_TRN(decode_one(&b, &g), 1);
		CHECK(same(&f, &g));
		trn_buf_fini(&b);
	}

	/* A request and a reply carry their reference. */
	uint16_t flags[] = { TRN_F_REQUEST, TRN_F_REPLY };
	for (size_t i = 0; i < 2; i++) {
		trn_buf b;
		trn_frame f = valid(TRN_SEND), g;

		f.flags = flags[i];
		f.ref = UINT64_C(0x8000000000000001);
		f.from = 0; /* from a context that is not an actor */
		trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
		CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
		CHECK_TRN(decode_one(&b, &g), 1);
		CHECK(same(&f, &g));
		trn_buf_fini(&b);
	}

	/* The chunks: the first with the SEND's fields, the rest bare. */
	trn_buf b;
	trn_frame s = valid(TRN_SEND), g;
	trn_reader r;
	trn_tags tags;

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_chunk_append(&b, &s, 7, 0, 5), TRN_OK);
	CHECK_TRN(trn_chunk_append(&b, &s, 7, 5, sizeof(payload) - 5), TRN_OK);
	trn_tags_init(&tags);
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_EQ_INT(g.kind, TRN_CHUNK);
	CHECK_EQ_U64(g.type, s.type);
	CHECK_EQ_U64(g.from, s.from);
	CHECK_EQ_U64(g.to, s.to);
	CHECK_EQ_U64(g.body_len, TRN_CHUNK_INFO_SIZE + 5);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_EQ_INT(g.kind, TRN_CHUNK);
	CHECK_EQ_U64(g.type, 0);
	CHECK_EQ_U64(g.to, 0);
	CHECK_EQ_U64(g.body_len, TRN_CHUNK_INFO_SIZE + sizeof(payload) - 5);
	CHECK_TRN(trn_reader_next(&r, &g), 0);
	trn_buf_fini(&b);
}

/* The header's bytes, as docs/NET.md draws them. */
static void
test_header_bytes_are_little_endian(void)
{
	trn_frame f = {
		.kind = TRN_SEND,
		.flags = TRN_F_REQUEST,
		.type = 0x04030201u,
		.from = trn_wpid(TRN_TAG_SENDER, UINT64_C(0x0a0b0c0d0e0f)),
		.to = trn_wpid(TRN_TAG_RECEIVER, UINT64_C(0x010203040506)),
		.ref = UINT64_C(0x8877665544332211),
		.body = (const uint8_t *)"xy",
		.body_len = 2,
	};
	static const uint8_t want[TRN_HEADER_SIZE + 2] = {
		1,    TRN_SEND, 1,    0,    1,    2,    3,    4,    2,    0,
		0,    0,        0,    0,    0,    0,    0x0f, 0x0e, 0x0d, 0x0c,
		0x0b, 0x0a,     1,    0,    6,    5,    4,    3,    2,    1,
		2,    0,        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
		0,    0,        0,    0,    0,    0,    0,    0,    'x',  'y',
	};
	trn_buf b;

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	CHECK_EQ_U64(b.len, sizeof(want));
	CHECK(b.len == sizeof(want) && memcmp(b.data, want, b.len) == 0);

	f.reason = -2;
	f.kind = TRN_EXIT;
	f.flags = 0;
	f.type = 0;
	f.ref = 0;
	f.body_len = 0;
	b.len = 0;
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	CHECK(b.data[12] == 0xfe && b.data[13] == 0xff && b.data[14] == 0xff &&
	      b.data[15] == 0xff);
	trn_buf_fini(&b);
}

static void
test_batch_walks_frames_in_order(void)
{
	trn_buf b;
	trn_tags tags;
	trn_reader r;
	trn_frame g;

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	for (uint32_t i = 0; i < 100; i++) {
		trn_frame f = valid(TRN_SEND);
		f.type = i;
		f.body_len = i % 7;
		CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
		trn_frame h = valid(TRN_HEARTBEAT);
		h.ref = i;
		CHECK_TRN(trn_frame_append(&b, &h), TRN_OK);
	}
	trn_tags_init(&tags);
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &tags);
	for (uint32_t i = 0; i < 100; i++) {
		CHECK_TRN(trn_reader_next(&r, &g), 1);
		CHECK_EQ_INT(g.kind, TRN_SEND);
		CHECK_EQ_U64(g.type, i);
		CHECK_EQ_U64(g.body_len, i % 7);
		CHECK_TRN(trn_reader_next(&r, &g), 1);
		CHECK_EQ_INT(g.kind, TRN_HEARTBEAT);
		CHECK_EQ_U64(g.ref, i);
	}
	CHECK_TRN(trn_reader_next(&r, &g), 0);
	CHECK_TRN(trn_reader_next(&r, &g), 0);
	trn_buf_fini(&b);

	/* An empty batch has no frame. */
	trn_reader_init(&r, NULL, 0, TRN_BODY_MAX_DEFAULT, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), 0);
}

static void
test_batch_refuses_past_its_bound(void)
{
	trn_buf b;
	trn_frame f = valid(TRN_SEND);
	size_t one = TRN_HEADER_SIZE + f.body_len;

	trn_buf_init(&b, 3 * one + one / 2);
	for (int i = 0; i < 3; i++) {
		CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	}
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EFULL);
	CHECK_EQ_U64(b.len, 3 * one);
	CHECK(b.cap <= b.max);
	/* A smaller frame still fits. */
	trn_frame h = valid(TRN_HEARTBEAT);
	CHECK_TRN(trn_frame_append(&b, &h), TRN_EFULL);
	b.len = 0; /* sent: the buffer is reused */
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	trn_buf_fini(&b);
	trn_buf_fini(&b); /* fini twice is harmless */

	/* A frame bigger than a whole batch never fits. */
	trn_buf_init(&b, TRN_HEADER_SIZE);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EFULL);
	CHECK(b.data == NULL);
	trn_buf_fini(&b);
}

/* One test per refusal: each corrupts one valid frame. */

static void
cut_header(trn_buf *b)
{
	b->len = TRN_HEADER_SIZE - 1;
}

static void
test_refuses_short_header(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_LINK, cut_header), TRN_ESHORT);
}

static void
set_version_2(trn_buf *b)
{
	b->data[0] = 2;
}

static void
test_refuses_version(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_LINK, set_version_2), TRN_EVERSION);
}

static void
set_kind_0(trn_buf *b)
{
	b->data[1] = 0;
}

static void
set_kind_11(trn_buf *b)
{
	b->data[1] = TRN_KIND_LAST + 1;
}

static void
test_refuses_kind(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_LINK, set_kind_0), TRN_EKIND);
	CHECK_TRN(corrupt_and_decode(TRN_LINK, set_kind_11), TRN_EKIND);
}

static void
set_flag_bit_3(trn_buf *b)
{
	b->data[2] |= 0x08;
}

static void
set_flag_high(trn_buf *b)
{
	b->data[3] |= 0x80;
}

static void
set_flag_link_ended(trn_buf *b)
{
	b->data[2] |= TRN_F_LINK_ENDED;
}

static void
set_request_and_reply(trn_buf *b)
{
	b->data[2] |= TRN_F_REQUEST | TRN_F_REPLY;
	b->data[32] = 1; /* a reference, so only the flags are wrong */
}

static void
test_refuses_flags(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_flag_bit_3), TRN_EFLAGS);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_flag_high), TRN_EFLAGS);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_flag_link_ended),
		  TRN_EFLAGS);
	CHECK_TRN(corrupt_and_decode(TRN_LINK, set_flag_link_ended),
		  TRN_EFLAGS);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_request_and_reply),
		  TRN_EFLAGS);
}

static void
cut_body(trn_buf *b)
{
	b->len -= 1;
}

static void
test_refuses_truncated_body(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_SEND, cut_body), TRN_ETRUNCATED);
}

static void
set_length_4gib(trn_buf *b)
{
	b->data[8] = b->data[9] = b->data[10] = b->data[11] = 0xff;
}

static void
test_refuses_4gib_length(void)
{
	trn_buf b;
	trn_frame f = valid(TRN_SEND), g;
	trn_tags tags;
	trn_reader r;

	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_length_4gib), TRN_ETOO_BIG);

	/* Even with no maximum, the claim is checked against the buffer. */
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	set_length_4gib(&b);
	trn_tags_init(&tags);
	trn_reader_init(&r, b.data, b.len, UINT32_MAX, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ETRUNCATED);
	/* The framing is lost: the reader stays refused. */
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ETRUNCATED);
	trn_buf_fini(&b);

	/* A body one byte over the configured maximum. */
	f.body_len = 65;
	f.body = calloc(1, 65);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	trn_reader_init(&r, b.data, b.len, 64, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ETOO_BIG);
	trn_reader_init(&r, b.data, b.len, 65, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	free((void *)f.body);
	trn_buf_fini(&b);
}

static void
set_type_on_link(trn_buf *b)
{
	b->data[4] = 1;
}

static void
set_reason_on_send(trn_buf *b)
{
	b->data[15] = 0x80;
}

static void
set_ref_on_plain_send(trn_buf *b)
{
	b->data[39] = 1;
}

static void
set_who_on_monitor(trn_buf *b)
{
	b->data[40] = 1;
	b->data[46] = TRN_TAG_SENDER;
}

static void
set_from_on_down(trn_buf *b)
{
	b->data[16] = 1;
	b->data[22] = TRN_TAG_SENDER;
}

static void
test_refuses_nonzero_fields(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_LINK, set_type_on_link), TRN_ENONZERO);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_reason_on_send),
		  TRN_ENONZERO);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_ref_on_plain_send),
		  TRN_ENONZERO);
	CHECK_TRN(corrupt_and_decode(TRN_MONITOR, set_who_on_monitor),
		  TRN_ENONZERO);
	CHECK_TRN(corrupt_and_decode(TRN_DOWN, set_from_on_down), TRN_ENONZERO);
	CHECK_TRN(corrupt_and_decode(TRN_HEARTBEAT, set_type_on_link),
		  TRN_ENONZERO);
}

/* A LINK that claims a body: header length 4 and four more bytes. */
static void
add_body_to_link(trn_buf *b)
{
	b->data[8] = 4;
	memset(b->data + b->len, 0, 4);
	b->len += 4;
}

static void
test_refuses_body_size(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_LINK, add_body_to_link),
		  TRN_EBODY_SIZE);

	/* A NODE body whose name length disagrees with the frame's. */
	trn_tags out, in;
	trn_buf b;
	trn_frame g;
	trn_reader r;
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 1, &tag), TRN_OK);
	b.data[TRN_HEADER_SIZE + 6] = 4;
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_EBODY_SIZE);
	/* A NODE body shorter than its fixed part. */
	b.data[8] = 7;
	trn_reader_init(&r, b.data, TRN_HEADER_SIZE + 7, TRN_BODY_MAX_DEFAULT,
			&in);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_EBODY_SIZE);
	trn_buf_fini(&b);

	/* A CHUNK body shorter than the chunk information. */
	trn_frame c = { .kind = TRN_CHUNK,
			.body = payload,
			.body_len = TRN_CHUNK_INFO_SIZE - 1 };
	CHECK_TRN(trn_frame_check(&c, NULL, UINT32_MAX), TRN_EBODY_SIZE);
}

static void
clear_to(trn_buf *b)
{
	memset(b->data + 24, 0, 8);
}

static void
clear_who(trn_buf *b)
{
	memset(b->data + 40, 0, 8);
}

static void
clear_from(trn_buf *b)
{
	memset(b->data + 16, 0, 8);
}

static void
test_refuses_missing_pid(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_SEND, clear_to), TRN_ENO_PID);
	CHECK_TRN(corrupt_and_decode(TRN_LINK, clear_from), TRN_ENO_PID);
	CHECK_TRN(corrupt_and_decode(TRN_DOWN, clear_who), TRN_ENO_PID);
	CHECK_TRN(corrupt_and_decode(TRN_EXIT, clear_to), TRN_ENO_PID);
}

static void
clear_from_tag(trn_buf *b)
{
	b->data[22] = b->data[23] = 0;
}

static void
clear_from_local(trn_buf *b)
{
	memset(b->data + 16, 0, 6);
}

static void
test_refuses_bad_pid(void)
{
	/* Tag 0 with a local part; a tag with local part 0. */
	CHECK_TRN(corrupt_and_decode(TRN_SEND, clear_from_tag), TRN_EBAD_PID);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, clear_from_local), TRN_EBAD_PID);
}

static void
set_from_tag_9(trn_buf *b)
{
	b->data[22] = 9;
}

static void
set_to_tag_300(trn_buf *b)
{
	b->data[30] = 300 & 0xff;
	b->data[31] = 300 >> 8;
}

static void
test_refuses_unknown_tag(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_from_tag_9),
		  TRN_EUNKNOWN_TAG);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_to_tag_300),
		  TRN_EUNKNOWN_TAG);
}

static void
set_to_tag_sender(trn_buf *b)
{
	b->data[30] = TRN_TAG_SENDER;
}

static void
test_refuses_wrong_node(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_to_tag_sender),
		  TRN_EWRONG_NODE);
	CHECK_TRN(corrupt_and_decode(TRN_MONITOR, set_to_tag_sender),
		  TRN_EWRONG_NODE);

	/* A third node's pid as the addressee: this link does not route. */
	trn_tags out, in;
	trn_buf b;
	trn_frame f = valid(TRN_SEND), g;
	trn_reader r;
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 1, &tag), TRN_OK);
	f.to = trn_wpid(tag, LOCAL_B);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EWRONG_NODE);
	size_t at = b.len;
	f.to = trn_wpid(TRN_TAG_RECEIVER, LOCAL_B);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	b.data[at + 30] = (uint8_t)tag;
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_EWRONG_NODE);
	trn_buf_fini(&b);
}

static void
set_from_tag_receiver(trn_buf *b)
{
	b->data[22] = TRN_TAG_RECEIVER;
}

static void
set_who_tag_receiver(trn_buf *b)
{
	b->data[46] = TRN_TAG_RECEIVER;
}

static void
test_refuses_pid_not_on_sender(void)
{
	/* Links, monitors, exits and deaths only for the sender's actors. */
	uint8_t kinds[] = { TRN_LINK, TRN_UNLINK, TRN_EXIT, TRN_MONITOR,
			    TRN_DEMONITOR };
	for (size_t i = 0; i < sizeof(kinds); i++) {
		CHECK_TRN(corrupt_and_decode(kinds[i], set_from_tag_receiver),
			  TRN_ENOT_SENDER);
	}
	CHECK_TRN(corrupt_and_decode(TRN_DOWN, set_who_tag_receiver),
		  TRN_ENOT_SENDER);

	/* Nor for a third node's, even one the link has defined. */
	trn_tags out;
	trn_buf b;
	trn_frame f = valid(TRN_EXIT);
	uint16_t tag;

	trn_tags_init(&out);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 1, &tag), TRN_OK);
	f.from = trn_wpid(tag, LOCAL_A);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_ENOT_SENDER);
	/* A SEND may carry one: a request forwarded for that actor. */
	f = valid(TRN_SEND);
	f.from = trn_wpid(tag, LOCAL_A);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	f.from = trn_wpid(TRN_TAG_RECEIVER, LOCAL_A);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	trn_buf_fini(&b);
}

static void
clear_ref(trn_buf *b)
{
	memset(b->data + 32, 0, 8);
}

static void
set_request_no_ref(trn_buf *b)
{
	b->data[2] = TRN_F_REQUEST;
}

static void
test_refuses_missing_ref(void)
{
	CHECK_TRN(corrupt_and_decode(TRN_MONITOR, clear_ref), TRN_ENO_REF);
	CHECK_TRN(corrupt_and_decode(TRN_DEMONITOR, clear_ref), TRN_ENO_REF);
	CHECK_TRN(corrupt_and_decode(TRN_DOWN, clear_ref), TRN_ENO_REF);
	CHECK_TRN(corrupt_and_decode(TRN_SEND, set_request_no_ref),
		  TRN_ENO_REF);
}

/* A NODE frame for tag 3 named "gamma", corrupted by @corrupt. */
static int
node_corrupt_and_decode(void (*corrupt)(uint8_t *body))
{
	trn_tags out, in;
	trn_buf b;
	trn_frame g;
	trn_reader r;
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 1, &tag), TRN_OK);
	CHECK_EQ_U64(tag, TRN_TAG_FIRST);
	corrupt(b.data + TRN_HEADER_SIZE);
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	int ret = trn_reader_next(&r, &g);
	trn_buf_fini(&b);
	return ret;
}

static void
name_slash(uint8_t *body)
{
	body[TRN_NODE_BODY_MIN + 2] = '/';
}

static void
name_nul(uint8_t *body)
{
	body[TRN_NODE_BODY_MIN] = 0;
}

static void
name_space(uint8_t *body)
{
	body[TRN_NODE_BODY_MIN + 4] = ' ';
}

static void
test_refuses_bad_name(void)
{
	CHECK_TRN(node_corrupt_and_decode(name_slash), TRN_ENAME);
	CHECK_TRN(node_corrupt_and_decode(name_nul), TRN_ENAME);
	CHECK_TRN(node_corrupt_and_decode(name_space), TRN_ENAME);

	trn_tags t;
	trn_buf b;
	uint16_t tag;
	char long_name[TRN_NAME_MAX + 2];

	memset(long_name, 'a', sizeof(long_name));
	trn_tags_init(&t);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&t, &b, "", 0, 1, &tag), TRN_ENAME);
	CHECK_TRN(trn_tags_put(&t, &b, long_name, TRN_NAME_MAX + 1, 1, &tag),
		  TRN_ENAME);
	CHECK_TRN(trn_tags_put(&t, &b, long_name, TRN_NAME_MAX, 1, &tag),
		  TRN_OK);
	CHECK_TRN(trn_tags_put(&t, &b, "a b", 3, 1, &tag), TRN_ENAME);
	trn_buf_fini(&b);
	CHECK(trn_name_valid("Node_1.example-2", 16));
	CHECK(!trn_name_valid("caf\xc3\xa9", 5));
}

static void
tag_1(uint8_t *body)
{
	body[0] = TRN_TAG_SENDER;
}

static void
tag_256(uint8_t *body)
{
	body[0] = 0;
	body[1] = 1;
}

static void
test_refuses_tag_range(void)
{
	CHECK_TRN(node_corrupt_and_decode(tag_1), TRN_ETAG_RANGE);
	CHECK_TRN(node_corrupt_and_decode(tag_256), TRN_ETAG_RANGE);
}

static void
test_refuses_tag_redefined(void)
{
	trn_tags out, in;
	trn_buf b;
	trn_frame g;
	trn_reader r;
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 1, &tag), TRN_OK);
	/* The same NODE frame twice: the tag is defined twice. */
	uint8_t body[TRN_NODE_BODY_MIN + 5];
	memcpy(body, b.data + TRN_HEADER_SIZE, sizeof(body));
	trn_frame n = { .kind = TRN_NODE,
			.body = body,
			.body_len = sizeof(body) };
	CHECK_TRN(trn_frame_append(&b, &n), TRN_OK);
	/* The same node under another tag. */
	body[0] = TRN_TAG_FIRST + 1;
	CHECK_TRN(trn_frame_append(&b, &n), TRN_OK);
	/* Another node under tag 4 is fine. */
	body[TRN_NODE_BODY_MIN] = 'G';
	CHECK_TRN(trn_frame_append(&b, &n), TRN_OK);
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ETAG_REDEFINED);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ETAG_REDEFINED);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_EQ_U64(in.count, 2);
	trn_buf_fini(&b);
}

static void
test_tags_fill_up_and_refuse(void)
{
	static trn_tags out, in;
	trn_buf b;
	trn_frame g;
	trn_reader r;
	char name[16];
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, SIZE_MAX);
	uint32_t n = TRN_TAG_LIMIT - TRN_TAG_FIRST;
	for (uint32_t i = 0; i < n; i++) {
		int len = snprintf(name, sizeof(name), "node%u", i);
		CHECK_TRN(trn_tags_put(&out, &b, name, (size_t)len, i, &tag),
			  TRN_OK);
		CHECK_EQ_U64(tag, TRN_TAG_FIRST + i);
	}
	size_t len = b.len;
	CHECK_TRN(trn_tags_put(&out, &b, "one-more", 8, 0, &tag),
		  TRN_ETAGS_FULL);
	CHECK_EQ_U64(b.len, len);
	/* A known node still has its tag; the same name, new creation not. */
	CHECK_TRN(trn_tags_put(&out, &b, "node7", 5, 7, &tag), TRN_OK);
	CHECK_EQ_U64(tag, TRN_TAG_FIRST + 7);
	CHECK_TRN(trn_tags_put(&out, &b, "node7", 5, 8, &tag), TRN_ETAGS_FULL);

	/* The receiving side learns every tag from the NODE frames. */
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	for (uint32_t i = 0; i < n; i++) {
		CHECK_TRN(trn_reader_next(&r, &g), 1);
		CHECK_EQ_INT(g.kind, TRN_NODE);
	}
	CHECK_TRN(trn_reader_next(&r, &g), 0);
	CHECK_EQ_U64(in.count, n);
	const trn_node *nd = trn_tags_get(&in, TRN_TAG_FIRST + 42);
	CHECK(nd != NULL && strcmp(nd->name, "node42") == 0 &&
	      nd->creation == 42);
	CHECK(trn_tags_get(&in, 2) == NULL);
	CHECK(trn_tags_get(&in, TRN_TAG_LIMIT) == NULL);
	trn_buf_fini(&b);
}

static void
test_third_node_pid_round_trip(void)
{
	static trn_tags out, in;
	trn_buf b;
	trn_frame g;
	trn_reader r;
	uint16_t tag;

	trn_tags_init(&out);
	trn_tags_init(&in);
	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	/* A request forwarded on behalf of an actor of node gamma. */
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 77, &tag), TRN_OK);
	trn_frame f = valid(TRN_SEND);
	f.from = trn_wpid(tag, LOCAL_A);
	f.flags = TRN_F_REQUEST;
	f.ref = 5;
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	/* The second use of gamma writes no NODE frame. */
	size_t len = b.len;
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 77, &tag), TRN_OK);
	CHECK_EQ_U64(b.len, len);

	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &in);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_EQ_INT(g.kind, TRN_NODE);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK(same(&f, &g));
	const trn_node *n = trn_tags_get(&in, trn_wpid_tag(g.from));
	CHECK(n != NULL && strcmp(n->name, "gamma") == 0 && n->creation == 77);
	CHECK_EQ_U64(trn_wpid_local(g.from), LOCAL_A);
	trn_buf_fini(&b);

	/* No room for the NODE frame: no tag is spent. */
	trn_tags_init(&out);
	trn_buf_init(&b, TRN_HEADER_SIZE);
	CHECK_TRN(trn_tags_put(&out, &b, "gamma", 5, 77, &tag), TRN_EFULL);
	CHECK_EQ_U64(out.count, 0);
	CHECK_EQ_U64(out.next, TRN_TAG_FIRST);
	trn_buf_fini(&b);
}

static void
test_refusal_skips_one_frame(void)
{
	trn_buf b;
	trn_frame g, f = valid(TRN_SEND), l = valid(TRN_LINK);
	trn_tags tags;
	trn_reader r;

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	size_t second = b.len;
	CHECK_TRN(trn_frame_append(&b, &l), TRN_OK);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_OK);
	b.data[second + 4] = 1; /* a type on the LINK */
	trn_tags_init(&tags);
	trn_reader_init(&r, b.data, b.len, TRN_BODY_MAX_DEFAULT, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ENONZERO);
	CHECK_TRN(trn_reader_next(&r, &g), 1);
	CHECK(same(&f, &g));
	CHECK_TRN(trn_reader_next(&r, &g), 0);
	trn_buf_fini(&b);
}

static void
test_encoder_refuses_invalid_frames(void)
{
	trn_buf b;
	trn_frame f = valid(TRN_SEND);

	trn_buf_init(&b, TRN_BATCH_MAX_DEFAULT);
	f.to = trn_wpid(TRN_TAG_SENDER, 1);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EWRONG_NODE);
	f = valid(TRN_LINK);
	f.ref = 3;
	CHECK_TRN(trn_frame_append(&b, &f), TRN_ENONZERO);
	f = valid(TRN_NODE);
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EBODY_SIZE);
	f = valid(TRN_SEND);
	f.body = NULL;
	CHECK_TRN(trn_frame_append(&b, &f), TRN_EINVAL);
	CHECK_EQ_U64(b.len, 0);

	/* Chunks only of a SEND, and only within its body. */
	f = valid(TRN_SEND);
	CHECK_TRN(trn_chunk_append(&b, &f, 1, 0, 0), TRN_EINVAL);
	CHECK_TRN(trn_chunk_append(&b, &f, 1, 0, f.body_len + 1), TRN_EINVAL);
	CHECK_TRN(trn_chunk_append(&b, &f, 1, f.body_len, 1), TRN_EINVAL);
	trn_frame l = valid(TRN_LINK);
	CHECK_TRN(trn_chunk_append(&b, &l, 1, 0, 1), TRN_EINVAL);
	f.reason = 1;
	CHECK_TRN(trn_chunk_append(&b, &f, 1, 0, 1), TRN_ENONZERO);
	CHECK_EQ_U64(b.len, 0);
	trn_buf_fini(&b);
}

static void
test_error_names_are_distinct(void)
{
	for (int a = -27; a <= 0; a++) {
		CHECK(strcmp(trn_err_name(a), "TRN_E?") != 0);
		CHECK(strcmp(trn_strerror(a), "unknown error") != 0);
		for (int c = a + 1; c <= 0; c++) {
			CHECK(strcmp(trn_err_name(a), trn_err_name(c)) != 0);
		}
	}
	CHECK_STR(trn_err_name(-28), "TRN_E?");
	CHECK_STR(trn_err_name(TRN_ETOO_BIG), "TRN_ETOO_BIG");
}

/* Chunks. */

/* A message of @n bytes, byte i = i * 7. */
static uint8_t *
message(uint32_t n)
{
	uint8_t *p = malloc(n);

	for (uint32_t i = 0; i < n; i++) {
		p[i] = (uint8_t)(i * 7);
	}
	return p;
}

/* Cut @msg into chunks of @size into @b as message @id. */
static void
chunk_all(trn_buf *b, const trn_frame *send, uint64_t id, uint32_t size)
{
	for (uint32_t off = 0; off < send->body_len; off += size) {
		uint32_t n = send->body_len - off < size ? send->body_len - off
							 : size;
		CHECK_TRN(trn_chunk_append(b, send, id, off, n), TRN_OK);
	}
}

static const trn_reasm_limits small_limits = {
	.max_messages = 4,
	.max_bytes = 64 * 1024,
	.max_message = 32 * 1024,
};

static void
test_reassembly_in_order_and_interleaved(void)
{
	trn_buf b1, b2;
	trn_reasm ra;
	trn_tags tags;
	trn_reader r1, r2;
	trn_frame s1 = valid(TRN_SEND), s2 = valid(TRN_SEND), g, out;
	uint8_t *m1 = message(10000), *m2 = message(3001), *body = NULL;

	s1.body = m1;
	s1.body_len = 10000;
	s1.flags = TRN_F_REQUEST;
	s1.ref = 77;
	s2.body = m2;
	s2.body_len = 3001;
	s2.type = 9;
	trn_buf_init(&b1, SIZE_MAX);
	trn_buf_init(&b2, SIZE_MAX);
	chunk_all(&b1, &s1, 1, 1000);
	chunk_all(&b2, &s2, 2, 1000);
	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	trn_tags_init(&tags);
	trn_reader_init(&r1, b1.data, b1.len, TRN_BODY_MAX_DEFAULT, &tags);
	trn_reader_init(&r2, b2.data, b2.len, TRN_BODY_MAX_DEFAULT, &tags);

	/* Interleave: one chunk of each in turn, message 2 ends first. */
	int done1 = 0, done2 = 0, n1 = 0, n2 = 0;
	for (;;) {
		int a = trn_reader_next(&r1, &g);
		if (a == 1) {
			n1++;
			int x = trn_reasm_add(&ra, &g, &out, &body);
			CHECK(x >= 0);
			if (x == 1) {
				done1++;
				CHECK(same(&s1, &out));
				CHECK(out.body == body);
				free(body);
			}
		}
		int c = trn_reader_next(&r2, &g);
		if (c == 1) {
			n2++;
			int x = trn_reasm_add(&ra, &g, &out, &body);
			CHECK(x >= 0);
			if (x == 1) {
				done2++;
				CHECK_EQ_INT(n2, 4);
				CHECK(same(&s2, &out));
				free(body);
			}
		}
		if (a == 0 && c == 0) {
			break;
		}
	}
	CHECK_EQ_INT(n1, 10);
	CHECK_EQ_INT(done1, 1);
	CHECK_EQ_INT(done2, 1);
	CHECK_EQ_U64(ra.count, 0);
	CHECK_EQ_U64(ra.bytes, 0);

	/* A message in one chunk is whole at once. */
	b1.len = 0;
	chunk_all(&b1, &s2, 3, 5000);
	trn_reader_init(&r1, b1.data, b1.len, TRN_BODY_MAX_DEFAULT, &tags);
	CHECK_TRN(trn_reader_next(&r1, &g), 1);
	CHECK_TRN(trn_reasm_add(&ra, &g, &out, &body), 1);
	CHECK(same(&s2, &out));
	free(body);

	trn_reasm_fini(&ra);
	trn_reasm_fini(&ra); /* harmless twice */
	trn_buf_fini(&b1);
	trn_buf_fini(&b2);
	free(m1);
	free(m2);
}

/* Decoded CHUNK frames of a message of @n bytes cut in pieces of @size. */
struct chunks {
	trn_buf b;
	trn_frame f[64];
	int n;
	uint8_t *msg;
};

static void
chunks_make(struct chunks *c, uint64_t id, uint32_t n, uint32_t size)
{
	trn_frame s = valid(TRN_SEND);
	trn_tags tags;
	trn_reader r;

	c->msg = message(n);
	s.body = c->msg;
	s.body_len = n;
	trn_buf_init(&c->b, SIZE_MAX);
	chunk_all(&c->b, &s, id, size);
	trn_tags_init(&tags);
	trn_reader_init(&r, c->b.data, c->b.len, UINT32_MAX, &tags);
	c->n = 0;
	while (c->n < 64 && trn_reader_next(&r, &c->f[c->n]) == 1) {
		c->n++;
	}
}

static void
chunks_free(struct chunks *c)
{
	trn_buf_fini(&c->b);
	free(c->msg);
}

static void
test_reassembly_refuses_wrong_offset(void)
{
	struct chunks c;
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;

	chunks_make(&c, 1, 4000, 1000);
	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	/* A later chunk with no start. */
	CHECK_TRN(trn_reasm_add(&ra, &c.f[1], &out, &body), TRN_ECHUNK_OFFSET);
	CHECK_EQ_U64(ra.count, 0);
	/* A gap. */
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[2], &out, &body), TRN_ECHUNK_OFFSET);
	CHECK_EQ_U64(ra.count, 0);
	CHECK_EQ_U64(ra.bytes, 0);
	/* A repeat. */
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[1], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[1], &out, &body), TRN_ECHUNK_OFFSET);
	CHECK_EQ_U64(ra.count, 0);
	/* A restart of a message in progress. */
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body), TRN_ECHUNK_OFFSET);
	CHECK_EQ_U64(ra.count, 0);
	trn_reasm_fini(&ra);
	chunks_free(&c);
}

static void
test_reassembly_refuses_changed_total(void)
{
	struct chunks c, d;
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;

	chunks_make(&c, 1, 4000, 1000);
	chunks_make(&d, 1, 5000, 1000); /* same id, another total */
	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &d.f[1], &out, &body), TRN_ECHUNK_TOTAL);
	CHECK_EQ_U64(ra.count, 0);
	CHECK_EQ_U64(ra.bytes, 0);
	trn_reasm_fini(&ra);
	chunks_free(&c);
	chunks_free(&d);
}

static void
test_reassembly_refuses_message_over_max(void)
{
	struct chunks c;
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;

	chunks_make(&c, 1, small_limits.max_message + 1, 1000);
	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	CHECK_TRN(trn_reasm_add(&ra, &c.f[0], &out, &body),
		  TRN_ECHUNK_MESSAGE_MAX);
	CHECK_EQ_U64(ra.count, 0);
	CHECK_EQ_U64(ra.bytes, 0);
	trn_reasm_fini(&ra);
	chunks_free(&c);
}

static void
test_reassembly_refuses_too_many_messages(void)
{
	struct chunks c[5];
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;

	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	for (int i = 0; i < 5; i++) {
		chunks_make(&c[i], (uint64_t)i + 100, 2000, 1000);
	}
	for (int i = 0; i < 4; i++) {
		CHECK_TRN(trn_reasm_add(&ra, &c[i].f[0], &out, &body), 0);
	}
	CHECK_TRN(trn_reasm_add(&ra, &c[4].f[0], &out, &body),
		  TRN_ECHUNK_MESSAGES);
	CHECK_EQ_U64(ra.count, 4);
	/* One finishes: there is room again. */
	CHECK_TRN(trn_reasm_add(&ra, &c[2].f[1], &out, &body), 1);
	CHECK(memcmp(body, c[2].msg, 2000) == 0);
	free(body);
	CHECK_TRN(trn_reasm_add(&ra, &c[4].f[0], &out, &body), 0);
	CHECK_EQ_U64(ra.count, 4);
	CHECK_EQ_U64(ra.bytes, 8000);
	/* fini frees the four in progress (the leak check would say). */
	trn_reasm_fini(&ra);
	for (int i = 0; i < 5; i++) {
		chunks_free(&c[i]);
	}
}

static void
test_reassembly_refuses_too_many_bytes(void)
{
	struct chunks big[3];
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;

	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	for (int i = 0; i < 3; i++) {
		chunks_make(&big[i], (uint64_t)i, 30000, 10000);
	}
	CHECK_TRN(trn_reasm_add(&ra, &big[0].f[0], &out, &body), 0);
	CHECK_TRN(trn_reasm_add(&ra, &big[1].f[0], &out, &body), 0);
	CHECK_EQ_U64(ra.bytes, 60000);
	CHECK_TRN(trn_reasm_add(&ra, &big[2].f[0], &out, &body),
		  TRN_ECHUNK_BYTES);
	CHECK(ra.bytes <= small_limits.max_bytes);
	CHECK_EQ_U64(ra.count, 2);
	trn_reasm_fini(&ra);
	for (int i = 0; i < 3; i++) {
		chunks_free(&big[i]);
	}
}

static void
test_reassembly_refuses_bad_piece(void)
{
	struct chunks c;
	trn_reasm ra;
	trn_frame out;
	uint8_t *body;
	trn_tags tags;
	trn_reader r;
	trn_frame g;

	chunks_make(&c, 1, 2000, 1000);
	/* On the wire: a piece past the total, an empty piece. */
	uint8_t *info = c.b.data + TRN_HEADER_SIZE;
	info[12] = 999 & 0xff; /* total 999 < the first piece's 1000 */
	info[13] = 999 >> 8;
	trn_tags_init(&tags);
	trn_reader_init(&r, c.b.data, c.b.len, UINT32_MAX, &tags);
	CHECK_TRN(trn_reader_next(&r, &g), TRN_ECHUNK_PIECE);
	trn_frame e = c.f[1];
	e.body_len = TRN_CHUNK_INFO_SIZE;
	CHECK_TRN(trn_frame_check(&e, NULL, UINT32_MAX), TRN_ECHUNK_PIECE);

	/* Unchecked frames handed to the reassembler are checked too. */
	CHECK_TRN(trn_reasm_init(&ra, &small_limits), TRN_OK);
	CHECK_TRN(trn_reasm_add(&ra, &e, &out, &body), TRN_EINVAL);
	trn_frame l = valid(TRN_LINK);
	CHECK_TRN(trn_reasm_add(&ra, &l, &out, &body), TRN_EINVAL);
	trn_reasm_fini(&ra);
	chunks_free(&c);

	trn_reasm_limits zero = { 0 };
	CHECK_TRN(trn_reasm_init(&ra, &zero), TRN_EINVAL);
	trn_reasm_fini(&ra);
}

static const struct test_case tests[] = {
	{ "wire: every kind round-trips", test_round_trip_every_kind },
	{ "wire: header bytes are little-endian",
	  test_header_bytes_are_little_endian },
	{ "wire: a batch is walked in order",
	  test_batch_walks_frames_in_order },
	{ "wire: a batch refuses past its bound",
	  test_batch_refuses_past_its_bound },
	{ "wire: refuses a short header", test_refuses_short_header },
	{ "wire: refuses another version", test_refuses_version },
	{ "wire: refuses an unknown kind", test_refuses_kind },
	{ "wire: refuses flags", test_refuses_flags },
	{ "wire: refuses a truncated body", test_refuses_truncated_body },
	{ "wire: refuses a 4 GiB length", test_refuses_4gib_length },
	{ "wire: refuses nonzero fields", test_refuses_nonzero_fields },
	{ "wire: refuses body sizes", test_refuses_body_size },
	{ "wire: refuses a missing pid", test_refuses_missing_pid },
	{ "wire: refuses a malformed pid", test_refuses_bad_pid },
	{ "wire: refuses an unknown tag", test_refuses_unknown_tag },
	{ "wire: refuses an addressee elsewhere", test_refuses_wrong_node },
	{ "wire: refuses a pid not on the sender",
	  test_refuses_pid_not_on_sender },
	{ "wire: refuses a missing ref", test_refuses_missing_ref },
	{ "wire: refuses a bad node name", test_refuses_bad_name },
	{ "wire: refuses a tag out of range", test_refuses_tag_range },
	{ "wire: refuses a tag defined twice", test_refuses_tag_redefined },
	{ "wire: tags fill up and refuse", test_tags_fill_up_and_refuse },
	{ "wire: a third node's pid round-trips",
	  test_third_node_pid_round_trip },
	{ "wire: a refusal skips one frame", test_refusal_skips_one_frame },
	{ "wire: the encoder refuses invalid frames",
	  test_encoder_refuses_invalid_frames },
	{ "wire: error names are distinct", test_error_names_are_distinct },
	{ "wire: reassembly in order and interleaved",
	  test_reassembly_in_order_and_interleaved },
	{ "wire: reassembly refuses a wrong offset",
	  test_reassembly_refuses_wrong_offset },
	{ "wire: reassembly refuses a changed total",
	  test_reassembly_refuses_changed_total },
	{ "wire: reassembly refuses a message over the maximum",
	  test_reassembly_refuses_message_over_max },
	{ "wire: reassembly refuses too many messages",
	  test_reassembly_refuses_too_many_messages },
	{ "wire: reassembly refuses too many bytes",
	  test_reassembly_refuses_too_many_bytes },
	{ "wire: reassembly refuses a bad piece",
	  test_reassembly_refuses_bad_piece },
	{ NULL, NULL },
};

TEST_MAIN(tests)
