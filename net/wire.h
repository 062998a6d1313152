/*
 * The wire format of troupe's distribution layer: frames, batches, wire
 * pids and their node tags, and the reassembly of chunked messages.
 * Internal to libtroupe-net (prefix trn_); no I/O and no runtime calls, so
 * every function here is a pure transformation of bytes that the unit
 * tests and the fuzz targets drive alone. docs/NET.md is the
 * specification a peer implements; this header is its C side.
 *
 * Every value on the wire is little-endian and is read and written byte by
 * byte, never by copying a struct, so the format does not depend on the
 * host's byte order, alignment or padding.
 *
 * Threads: none of these objects is shared. A link owns one output tag
 * table and one buffer (its sending side), one input tag table and one
 * reassembler (its receiving side), and uses each from one thread at a
 * time.
 */
#ifndef TR_NET_WIRE_H
#define TR_NET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version byte every frame starts with; any other value is refused. */
#define TRN_WIRE_VERSION 1u

/* Size of the fixed frame header; the body follows it. */
#define TRN_HEADER_SIZE 48u

/*
 * Largest body a frame may claim, by default. A SEND whose body is larger
 * than the chunk size travels as CHUNK frames, whose body is the chunk
 * information plus at most one chunk, so no frame legitimately needs more.
 */
#define TRN_CHUNK_SIZE_DEFAULT 65536u
#define TRN_CHUNK_INFO_SIZE    16u
#define TRN_BODY_MAX_DEFAULT   (TRN_CHUNK_SIZE_DEFAULT + TRN_CHUNK_INFO_SIZE)
/* Largest batch (one nng message) an encoder builds by default. */
#define TRN_BATCH_MAX_DEFAULT (256u * 1024u)
/* Reassembly, per link: largest message, messages and bytes in progress. */
#define TRN_MESSAGE_MAX_DEFAULT    (16u * 1024u * 1024u)
#define TRN_REASM_MESSAGES_DEFAULT 16u
#define TRN_REASM_BYTES_DEFAULT    (64u * 1024u * 1024u)

/* Node names: 1 to 63 bytes of [A-Za-z0-9_.-]. */
#define TRN_NAME_MAX 63u

/*
 * Node tags: the top 16 bits of a wire pid. 0 is "no pid" (with a local
 * part of 0), 1 the frame's sender node, 2 its receiver node; NODE frames
 * define 3 to TRN_TAG_LIMIT - 1, per link and direction.
 */
#define TRN_TAG_NONE     0u
#define TRN_TAG_SENDER   1u
#define TRN_TAG_RECEIVER 2u
#define TRN_TAG_FIRST    3u
#define TRN_TAG_LIMIT    256u

/* The body of a NODE frame: u16 tag, u32 creation, u16 name length, name. */
#define TRN_NODE_BODY_MIN 8u

/* Bits of a wire pid below the tag: the pid's generation and slot. */
#define TRN_LOCAL_BITS 48u
#define TRN_LOCAL_MASK ((UINT64_C(1) << TRN_LOCAL_BITS) - 1u)

/* Frame kinds. 0 is not a kind, so a zeroed header is refused. */
enum trn_kind {
	TRN_SEND = 1,
	TRN_LINK = 2,
	TRN_UNLINK = 3,
	TRN_EXIT = 4,
	TRN_MONITOR = 5,
	TRN_DEMONITOR = 6,
	TRN_DOWN = 7,
	TRN_HEARTBEAT = 8,
	TRN_NODE = 9,
	TRN_CHUNK = 10,
};
#define TRN_KIND_LAST TRN_CHUNK

/* Frame flags; every other bit must be 0. */
#define TRN_F_REQUEST    0x0001u /* SEND, CHUNK: a request (ref is set) */
#define TRN_F_REPLY      0x0002u /* SEND, CHUNK: a reply (ref is set) */
#define TRN_F_LINK_ENDED 0x0004u /* EXIT: sent because a link ended */
#define TRN_F_STOP       0x0008u /* EXIT: a stop (tr_stop), not a signal */

/*
 * Every refusal and failure has its own code, so a link can count them by
 * reason. Negative, as in the runtime; 0 is success. One list makes the
 * enum, trn_err_name() and trn_strerror().
 */
#define TRN_ERR_MAP(X)                                                         \
	X(SHORT, -1, "buffer ends inside a frame header")                      \
	X(VERSION, -2, "unsupported wire version")                             \
	X(KIND, -3, "unknown frame kind")                                      \
	X(FLAGS, -4, "flags not allowed for this kind")                        \
	X(TRUNCATED, -5, "body length past the end of the buffer")             \
	X(TOO_BIG, -6, "body length over the maximum")                         \
	X(NONZERO, -7, "a field that must be zero for this kind is not")       \
	X(BODY_SIZE, -8, "body size wrong for this kind")                      \
	X(NO_PID, -9, "a pid this kind needs is missing")                      \
	X(BAD_PID, -10, "malformed wire pid")                                  \
	X(UNKNOWN_TAG, -11, "pid with an undefined node tag")                  \
	X(WRONG_NODE, -12, "addressee is not on the receiving node")           \
	X(NO_REF, -13, "a reference this kind needs is missing")               \
	X(NAME, -14, "malformed node name")                                    \
	X(TAG_RANGE, -15, "node tag outside the definable range")              \
	X(TAG_REDEFINED, -16, "node tag or node defined twice")                \
	X(TAGS_FULL, -17, "no node tag left on this link")                     \
	X(FULL, -18, "frame does not fit in the batch")                        \
	X(CHUNK_PIECE, -19, "chunk piece empty or past the message's end")     \
	X(CHUNK_OFFSET, -20, "chunk does not continue its message")            \
	X(CHUNK_TOTAL, -21, "chunk total differs from its message's")          \
	X(CHUNK_MESSAGE_MAX, -22, "chunked message over the maximum size")     \
	X(CHUNK_MESSAGES, -23, "too many messages in reassembly")              \
	X(CHUNK_BYTES, -24, "too many bytes in reassembly")                    \
	X(NOMEM, -25, "out of memory")                                         \
	X(INVAL, -26, "invalid argument")                                      \
	X(NOT_SENDER, -27, "pid not on the sending node where it must be")

enum trn_err {
	TRN_OK = 0,
#define TRN__ERR_ENUM(name, val, str) TRN_E##name = (val),
	TRN_ERR_MAP(TRN__ERR_ENUM)
#undef TRN__ERR_ENUM
};

/* "TRN_ETOO_BIG" and "body length over the maximum"; "?" if unknown. */
const char *trn_err_name(int err);
const char *trn_strerror(int err);

/*
 * A frame as decoded or to encode. Pids are wire pids (tag << 48 | local).
 * @body points into the buffer it was decoded from (borrowed) or at the
 * caller's bytes when encoding.
 */
typedef struct trn_frame {
	uint8_t kind;
	uint16_t flags;
	uint32_t type;
	int32_t reason;
	uint64_t from;
	uint64_t to;
	uint64_t ref;
	uint64_t who;
	const uint8_t *body;
	uint32_t body_len;
} trn_frame;

static inline uint64_t
trn_wpid(uint16_t tag, uint64_t local)
{
	return ((uint64_t)tag << TRN_LOCAL_BITS) | (local & TRN_LOCAL_MASK);
}

static inline uint16_t
trn_wpid_tag(uint64_t w)
{
	return (uint16_t)(w >> TRN_LOCAL_BITS);
}

static inline uint64_t
trn_wpid_local(uint64_t w)
{
	return w & TRN_LOCAL_MASK;
}

/* A node's identity: its name and the creation of its current life. */
typedef struct trn_node {
	uint32_t creation;
	uint8_t name_len;
	char name[TRN_NAME_MAX + 1]; /* NUL-terminated */
} trn_node;

/* Little-endian loads and stores, byte by byte (the wire's, and a link's
 * length prefix). */
static inline uint16_t
trn_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t
trn_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t
trn_get64(const uint8_t *p)
{
	return (uint64_t)trn_get32(p) | (uint64_t)trn_get32(p + 4) << 32;
}

static inline void
trn_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
trn_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static inline void
trn_put64(uint8_t *p, uint64_t v)
{
	trn_put32(p, (uint32_t)v);
	trn_put32(p + 4, (uint32_t)(v >> 32));
}

/* Whether name[0..len) is a valid node name (1..63 of [A-Za-z0-9_.-]). */
bool trn_name_valid(const char *name, size_t len);

/*
 * The node tags of one link in one direction (tags 3 and up; 1 and 2 are
 * implicit). The sending side allocates tags with trn_tags_put(), the
 * receiving side learns them from NODE frames in trn_reader_next(). Both
 * sides start empty when a link (re)connects. Caller-allocated, about
 * 18 KiB; trn_tags_init() cannot fail.
 */
typedef struct trn_tags {
	uint16_t next; /* next tag to allocate (sending side) */
	uint16_t count;
	bool is_defined[TRN_TAG_LIMIT];
	trn_node nodes[TRN_TAG_LIMIT];
	/* Open addressing on (name, creation) -> tag; 0 is an empty slot. */
	uint16_t index[2 * TRN_TAG_LIMIT];
} trn_tags;

void trn_tags_init(trn_tags *t);

/* The node of a defined tag 3.., or NULL. */
const trn_node *trn_tags_get(const trn_tags *t, uint16_t tag);

/* A growable byte buffer that refuses to pass @max bytes: one batch. */
typedef struct trn_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
} trn_buf;

/* Empty, no allocation; @max bounds len. trn_buf_fini() frees. */
void trn_buf_init(trn_buf *b, size_t max);
void trn_buf_fini(trn_buf *b);

/*
 * trn_tags_put() - The tag of a third node's pids on this link (sending
 * side), allocating one and appending its NODE frame to @b when the node
 * is new. Nothing changes on failure. @b may already hold frames: the
 * NODE frame must reach the peer before the first frame that uses the
 * tag, and in the same or an earlier batch.
 *
 * Return: TRN_OK, TRN_ENAME, TRN_ETAGS_FULL, TRN_EFULL, TRN_ENOMEM.
 */
int trn_tags_put(trn_tags *t, trn_buf *b, const char *name, size_t name_len,
		 uint32_t creation, uint16_t *tag);

/*
 * trn_frame_check() - Check a frame's fields against the rules of its kind
 * (docs/NET.md): known kind, allowed flags, zero fields, pids present or
 * absent, body size. Tags are checked for shape only; @tags (may be NULL)
 * also makes an undefined tag 3.. a refusal.
 *
 * Return: TRN_OK or the refusal's code.
 */
int
trn_frame_check(const trn_frame *f, const trn_tags *tags, uint32_t body_max);

/*
 * trn_frame_append() - Append one frame to a batch after checking it as
 * trn_frame_check(f, NULL, UINT32_MAX) does. Nothing is appended on
 * failure.
 *
 * Return: TRN_OK, a refusal code, TRN_EFULL (the batch would pass its
 * maximum), TRN_ENOMEM.
 */
int trn_frame_append(trn_buf *b, const trn_frame *f);

/*
 * trn_chunk_append() - Append the CHUNK frame that carries bytes
 * [offset, offset + piece_len) of the SEND @send (its body is the whole
 * message) as message @msg_id. The chunk at offset 0 carries the SEND's
 * header fields, the others none. Which chunk goes when, interleaved with
 * what, is the sender's policy.
 *
 * Return: as trn_frame_append(); TRN_EINVAL if @send is not a SEND or
 * the piece is empty or past its body.
 */
int trn_chunk_append(trn_buf *b, const trn_frame *send, uint64_t msg_id,
		     uint32_t offset, uint32_t piece_len);

/*
 * A reader walks one received batch frame by frame. A NODE frame defines
 * its tag in @tags (the link's receiving side) before it is returned.
 */
typedef struct trn_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
	uint32_t body_max;
	trn_tags *tags;
	int broken; /* a refusal that lost the framing: sticky */
} trn_reader;

void trn_reader_init(trn_reader *r, const void *data, size_t len,
		     uint32_t body_max, trn_tags *tags);

/*
 * trn_reader_next() - Decode the next frame of the batch into @f.
 *
 * A refusal whose frame length was sound (a bad kind, flags, field, pid,
 * tag) skips that frame: the caller may count it and go on. A refusal of
 * the header itself (TRN_ESHORT, TRN_EVERSION, TRN_ETRUNCATED,
 * TRN_ETOO_BIG) loses the framing, and every later call returns it again.
 *
 * Return: 1 and a frame, 0 at the end of the batch, or a refusal code.
 */
int trn_reader_next(trn_reader *r, trn_frame *f);

/*
 * Reassembly of chunked messages on one link. It assumes what the sending
 * side promises: the chunks of one message arrive in order, each
 * continuing exactly where the previous one ended; chunks of different
 * messages may interleave with each other and with other frames. Any
 * chunk that breaks this is refused and its message dropped.
 */
typedef struct trn_reasm_limits {
	uint32_t max_messages; /* messages in reassembly at once */
	size_t max_bytes;      /* sum of their totals */
	uint32_t max_message;  /* one message's total */
} trn_reasm_limits;

struct trn_reasm_msg;

typedef struct trn_reasm {
	trn_reasm_limits lim;
	struct trn_reasm_msg *msgs; /* lim.max_messages entries */
	uint32_t count;
	size_t bytes;
} trn_reasm;

/* Return: TRN_OK, TRN_EINVAL (a zero limit), TRN_ENOMEM. */
int trn_reasm_init(trn_reasm *r, const trn_reasm_limits *lim);
/* Drops every message in progress; no-op on a zeroed reasm. */
void trn_reasm_fini(trn_reasm *r);

/*
 * trn_reasm_add() - Take one decoded CHUNK frame.
 *
 * Ownership: on 1, *body (free() it) holds the whole message, which @out
 * describes as a SEND whose body is *body.
 * Return: 1 when the chunk completes its message, 0 when more are needed,
 * or a refusal (TRN_ECHUNK_*, TRN_ENOMEM; TRN_EINVAL if @f is not a
 * CHUNK) after which the message of that id is dropped.
 */
int
trn_reasm_add(trn_reasm *r, const trn_frame *f, trn_frame *out, uint8_t **body);

#endif /* TR_NET_WIRE_H */
