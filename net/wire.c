/*
 * The wire format (wire.h, docs/NET.md): frame encoding and checking,
 * batches, node tags and chunk reassembly.
 *
 * Invariants: nothing here reads a byte before checking that it lies
 * inside the buffer it was given, and nothing allocates an amount a peer
 * chose without first checking it against a limit the link chose. A
 * header is decoded into a trn_frame field by field; trn_frame_check()
 * holds the rules of every kind in one place, so the encoder and the
 * decoder cannot disagree about what a valid frame is.
 *
 * Threads: none; each object belongs to one link side (wire.h).
 */
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

#include "net/alloc.h"

const char *
trn_err_name(int err)
{
	switch (err) {
	case TRN_OK:
		return "TRN_OK";
#define TRN__ERR_NAME(name, val, str)                                          \
	case TRN_E##name:                                                      \
		return "TRN_E" #name;
		TRN_ERR_MAP(TRN__ERR_NAME)
#undef TRN__ERR_NAME
	}
	return "TRN_E?";
}

const char *
trn_strerror(int err)
{
	switch (err) {
	case TRN_OK:
		return "ok";
#define TRN__ERR_STR(name, val, str)                                           \
	case TRN_E##name:                                                      \
		return str;
		TRN_ERR_MAP(TRN__ERR_STR)
#undef TRN__ERR_STR
	}
	return "unknown error";
}

bool
trn_name_valid(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > TRN_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' ||
			  c == '-';
		if (!ok) {
			return false;
		}
	}
	return true;
}

/* Tags. */

void
trn_tags_init(trn_tags *t)
{
	memset(t, 0, sizeof(*t));
	t->next = TRN_TAG_FIRST;
}

const trn_node *
trn_tags_get(const trn_tags *t, uint16_t tag)
{
	if (tag < TRN_TAG_FIRST || tag >= TRN_TAG_LIMIT ||
	    !t->is_defined[tag]) {
		return NULL;
	}
	return &t->nodes[tag];
}

/* FNV-1a over the name and the creation: the index slot to start from. */
static size_t
tags_hash(const char *name, size_t len, uint32_t creation)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	}
	for (int i = 0; i < 4; i++) {
		h = (h ^ (uint8_t)(creation >> (8 * i))) * 16777619u;
	}
	return h % (2 * TRN_TAG_LIMIT);
}

/*
 * The index slot of (name, creation): the slot holding its tag, or the
 * empty slot where it would go. The index has twice as many slots as
 * there are tags, so an empty slot always exists.
 */
static size_t
tags_find(const trn_tags *t, const char *name, size_t len, uint32_t creation)
{
	size_t i = tags_hash(name, len, creation);

	for (;;) {
		uint16_t tag = t->index[i];
		if (tag == 0) {
			return i;
		}
		const trn_node *n = &t->nodes[tag];
		if (n->creation == creation && n->name_len == len &&
		    memcmp(n->name, name, len) == 0) {
			return i;
		}
		i = (i + 1) % (2 * TRN_TAG_LIMIT);
	}
}

static void
tags_define(trn_tags *t, size_t slot, uint16_t tag, const char *name,
	    size_t len, uint32_t creation)
{
	trn_node *n = &t->nodes[tag];

	n->creation = creation;
	n->name_len = (uint8_t)len;
	memcpy(n->name, name, len);
	n->name[len] = '\0';
	t->is_defined[tag] = true;
	t->index[slot] = tag;
	t->count++;
}

/* Buffers. */

void
trn_buf_init(trn_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
trn_buf_fini(trn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* Room for @n more bytes, within the batch's maximum. */
static int
buf_reserve(trn_buf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n) {
		return TRN_EFULL;
	}
	size_t need = b->len + n;
	if (need <= b->cap) {
		return TRN_OK;
	}
	size_t cap = b->cap != 0 ? b->cap : 256;
	while (cap < need) {
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	}
	if (cap > b->max) {
		cap = b->max;
	}
	uint8_t *p = trn_realloc(b->data, cap);
	if (p == NULL) {
		return TRN_ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return TRN_OK;
}

static void
put_header(uint8_t *p, const trn_frame *f)
{
	p[0] = TRN_WIRE_VERSION;
	p[1] = f->kind;
	trn_put16(p + 2, f->flags);
	trn_put32(p + 4, f->type);
	trn_put32(p + 8, f->body_len);
	trn_put32(p + 12, (uint32_t)f->reason);
	trn_put64(p + 16, f->from);
	trn_put64(p + 24, f->to);
	trn_put64(p + 32, f->ref);
	trn_put64(p + 40, f->who);
}

/* Checking. */

/* A pid field's shape: none is (0, 0); a pid has a tag and a local part. */
static int
check_pid(uint64_t w, const trn_tags *tags)
{
	uint16_t tag = trn_wpid_tag(w);
	uint64_t local = trn_wpid_local(w);

	if ((tag == TRN_TAG_NONE) != (local == 0)) {
		return TRN_EBAD_PID;
	}
	if (tag >= TRN_TAG_FIRST && tags != NULL &&
	    trn_tags_get(tags, tag) == NULL) {
		return TRN_EUNKNOWN_TAG;
	}
	return TRN_OK;
}

/*
 * What each field of a kind must be. OWN is a pid on the sending node
 * (tag 1): a node speaks for its own actors only when it links, monitors,
 * sends an exit signal or reports a death, so a peer cannot forge these on
 * behalf of a third node's actor. A SEND may carry a third node's pid as
 * its sender (a request forwarded on that actor's behalf).
 */
enum need { ZERO, ANY, SET, OWN };

struct rule {
	uint16_t flags;   /* allowed flags */
	uint8_t type;     /* ZERO or ANY */
	uint8_t reason;   /* ZERO or ANY */
	uint8_t from;     /* ZERO, ANY (a pid or none), SET */
	uint8_t to;       /* ZERO or SET (then on the receiver) */
	uint8_t ref;      /* ZERO, ANY, SET */
	uint8_t who;      /* ZERO or SET */
	uint8_t has_body; /* 0: empty; 1: any length; 2: kind-specific */
};

static const struct rule rules[TRN_KIND_LAST + 1] = {
	[TRN_SEND] = { TRN_F_REQUEST | TRN_F_REPLY, ANY, ZERO, ANY, SET, ANY,
		       ZERO, 1 },
	[TRN_LINK] = { 0, ZERO, ZERO, OWN, SET, ZERO, ZERO, 0 },
	[TRN_UNLINK] = { 0, ZERO, ZERO, OWN, SET, ZERO, ZERO, 0 },
	[TRN_EXIT] = { TRN_F_LINK_ENDED | TRN_F_STOP, ZERO, ANY, OWN, SET, ZERO,
		       ZERO, 0 },
	[TRN_MONITOR] = { 0, ZERO, ZERO, OWN, SET, SET, ZERO, 0 },
	[TRN_DEMONITOR] = { 0, ZERO, ZERO, OWN, SET, SET, ZERO, 0 },
	[TRN_DOWN] = { 0, ZERO, ANY, ZERO, SET, SET, OWN, 0 },
	[TRN_HEARTBEAT] = { 0, ZERO, ZERO, ZERO, ZERO, ANY, ZERO, 0 },
	[TRN_NODE] = { 0, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, 2 },
	[TRN_CHUNK] = { TRN_F_REQUEST | TRN_F_REPLY, ANY, ZERO, ANY, SET, ANY,
			ZERO, 2 },
};

/* The rules a CHUNK after the first follows: a piece and nothing else. */
static const struct rule chunk_rest = {
	0, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, 2
};

static int
check_fields(const trn_frame *f, const struct rule *ru, const trn_tags *tags)
{
	int err;

	if ((f->flags & ~ru->flags) != 0 ||
	    (f->flags & (TRN_F_REQUEST | TRN_F_REPLY)) ==
		    (TRN_F_REQUEST | TRN_F_REPLY)) {
		return TRN_EFLAGS;
	}
	if ((ru->type == ZERO && f->type != 0) ||
	    (ru->reason == ZERO && f->reason != 0) ||
	    (ru->from == ZERO && f->from != 0) ||
	    (ru->to == ZERO && f->to != 0) ||
	    (ru->ref == ZERO && f->ref != 0) ||
	    (ru->who == ZERO && f->who != 0) ||
	    (ru->has_body == 0 && f->body_len != 0)) {
		return f->body_len != 0 && ru->has_body == 0 ? TRN_EBODY_SIZE
							     : TRN_ENONZERO;
	}
	if ((ru->from == OWN && f->from == 0) ||
	    (ru->to == SET && f->to == 0) || (ru->who == OWN && f->who == 0)) {
		return TRN_ENO_PID;
	}
	if ((err = check_pid(f->from, tags)) < 0 ||
	    (err = check_pid(f->to, tags)) < 0 ||
	    (err = check_pid(f->who, tags)) < 0) {
		return err;
	}
	if (ru->to == SET && trn_wpid_tag(f->to) != TRN_TAG_RECEIVER) {
		return TRN_EWRONG_NODE;
	}
	if ((ru->from == OWN && trn_wpid_tag(f->from) != TRN_TAG_SENDER) ||
	    (ru->who == OWN && trn_wpid_tag(f->who) != TRN_TAG_SENDER)) {
		return TRN_ENOT_SENDER;
	}
	/* A request or a reply is matched by its reference, nothing else. */
	bool wants_ref = ru->ref == SET ||
			 (ru->ref == ANY && ru->to == SET &&
			  (f->flags & (TRN_F_REQUEST | TRN_F_REPLY)) != 0);
	if (wants_ref && f->ref == 0) {
		return TRN_ENO_REF;
	}
	if (ru->ref == ANY && ru->to == SET && !wants_ref && f->ref != 0) {
		return TRN_ENONZERO;
	}
	return TRN_OK;
}

/* A NODE body: u16 tag, u32 creation, u16 name length, the name. */
static int
check_node_body(const trn_frame *f)
{
	if (f->body_len < TRN_NODE_BODY_MIN + 1 ||
	    f->body_len > TRN_NODE_BODY_MIN + TRN_NAME_MAX) {
		return TRN_EBODY_SIZE;
	}
	uint16_t tag = trn_get16(f->body);
	uint16_t len = trn_get16(f->body + 6);
	if (len != f->body_len - TRN_NODE_BODY_MIN) {
		return TRN_EBODY_SIZE;
	}
	if (!trn_name_valid((const char *)f->body + TRN_NODE_BODY_MIN, len)) {
		return TRN_ENAME;
	}
	if (tag < TRN_TAG_FIRST || tag >= TRN_TAG_LIMIT) {
		return TRN_ETAG_RANGE;
	}
	return TRN_OK;
}

int
trn_frame_check(const trn_frame *f, const trn_tags *tags, uint32_t body_max)
{
	if (f->kind == 0 || f->kind > TRN_KIND_LAST) {
		return TRN_EKIND;
	}
	if (f->body_len > body_max) {
		return TRN_ETOO_BIG;
	}
	if (f->body_len != 0 && f->body == NULL) {
		return TRN_EINVAL;
	}
	const struct rule *ru = &rules[f->kind];
	if (f->kind == TRN_CHUNK) {
		if (f->body_len < TRN_CHUNK_INFO_SIZE) {
			return TRN_EBODY_SIZE;
		}
		uint32_t offset = trn_get32(f->body + 8);
		uint32_t total = trn_get32(f->body + 12);
		uint32_t piece = f->body_len - TRN_CHUNK_INFO_SIZE;
		if (piece == 0 || offset >= total || piece > total - offset) {
			return TRN_ECHUNK_PIECE;
		}
		if (offset != 0) {
			ru = &chunk_rest;
		}
	}
	int err = check_fields(f, ru, tags);
	if (err < 0) {
		return err;
	}
	if (f->kind == TRN_NODE) {
		return check_node_body(f);
	}
	return TRN_OK;
}

/* Encoding. */

int
trn_frame_append(trn_buf *b, const trn_frame *f)
{
	int err = trn_frame_check(f, NULL, UINT32_MAX);
	if (err < 0) {
		return err;
	}
	err = buf_reserve(b, TRN_HEADER_SIZE + (size_t)f->body_len);
	if (err < 0) {
		return err;
	}
	put_header(b->data + b->len, f);
	if (f->body_len != 0) {
		memcpy(b->data + b->len + TRN_HEADER_SIZE, f->body,
		       f->body_len);
	}
	b->len += TRN_HEADER_SIZE + (size_t)f->body_len;
	return TRN_OK;
}

int
trn_chunk_append(trn_buf *b, const trn_frame *send, uint64_t msg_id,
		 uint32_t offset, uint32_t piece_len)
{
	if (send->kind != TRN_SEND || piece_len == 0 ||
	    offset >= send->body_len || piece_len > send->body_len - offset ||
	    piece_len > UINT32_MAX - TRN_CHUNK_INFO_SIZE) {
		return TRN_EINVAL;
	}
	trn_frame c = { .kind = TRN_CHUNK };
	if (offset == 0) {
		/* The SEND's fields, checked as the SEND's (its body aside). */
		trn_frame head = *send;
		head.body = NULL;
		head.body_len = 0;
		int err = trn_frame_check(&head, NULL, 0);
		if (err < 0) {
			return err;
		}
		c = head;
		c.kind = TRN_CHUNK;
	}
	c.body_len = TRN_CHUNK_INFO_SIZE + piece_len;
	int err = buf_reserve(b, TRN_HEADER_SIZE + (size_t)c.body_len);
	if (err < 0) {
		return err;
	}
	uint8_t *p = b->data + b->len;
	put_header(p, &c);
	trn_put64(p + TRN_HEADER_SIZE, msg_id);
	trn_put32(p + TRN_HEADER_SIZE + 8, offset);
	trn_put32(p + TRN_HEADER_SIZE + 12, send->body_len);
	memcpy(p + TRN_HEADER_SIZE + TRN_CHUNK_INFO_SIZE, send->body + offset,
	       piece_len);
	b->len += TRN_HEADER_SIZE + (size_t)c.body_len;
	return TRN_OK;
}

int
trn_tags_put(trn_tags *t, trn_buf *b, const char *name, size_t name_len,
	     uint32_t creation, uint16_t *tag)
{
	if (!trn_name_valid(name, name_len)) {
		return TRN_ENAME;
	}
	size_t slot = tags_find(t, name, name_len, creation);
	if (t->index[slot] != 0) {
		*tag = t->index[slot];
		return TRN_OK;
	}
	if (t->next >= TRN_TAG_LIMIT) {
		return TRN_ETAGS_FULL;
	}
	uint8_t body[TRN_NODE_BODY_MIN + TRN_NAME_MAX];
	trn_put16(body, t->next);
	trn_put32(body + 2, creation);
	trn_put16(body + 6, (uint16_t)name_len);
	memcpy(body + TRN_NODE_BODY_MIN, name, name_len);
	trn_frame f = { .kind = TRN_NODE,
			.body = body,
			.body_len = (uint32_t)(TRN_NODE_BODY_MIN + name_len) };
	int err = trn_frame_append(b, &f);
	if (err < 0) {
		return err;
	}
	tags_define(t, slot, t->next, name, name_len, creation);
	*tag = t->next++;
	return TRN_OK;
}

/* Decoding. */

void
trn_reader_init(trn_reader *r, const void *data, size_t len, uint32_t body_max,
		trn_tags *tags)
{
	r->data = data;
	r->len = data != NULL ? len : 0;
	r->off = 0;
	r->body_max = body_max;
	r->tags = tags;
	r->broken = 0;
}

/* Define the tag a checked NODE frame names, in the receiving table. */
static int
learn_node(trn_tags *t, const trn_frame *f)
{
	uint16_t tag = trn_get16(f->body);
	uint32_t creation = trn_get32(f->body + 2);
	const char *name = (const char *)f->body + TRN_NODE_BODY_MIN;
	size_t len = f->body_len - TRN_NODE_BODY_MIN;

	size_t slot = tags_find(t, name, len, creation);
	if (t->is_defined[tag] || t->index[slot] != 0) {
		return TRN_ETAG_REDEFINED;
	}
	tags_define(t, slot, tag, name, len, creation);
	return TRN_OK;
}

int
trn_reader_next(trn_reader *r, trn_frame *f)
{
	if (r->broken < 0) {
		return r->broken;
	}
	size_t left = r->len - r->off;
	if (left == 0) {
		return 0;
	}
	if (left < TRN_HEADER_SIZE) {
		return r->broken = TRN_ESHORT;
	}
	const uint8_t *p = r->data + r->off;
	if (p[0] != TRN_WIRE_VERSION) {
		return r->broken = TRN_EVERSION;
	}
	uint32_t body_len = trn_get32(p + 8);
	/* The length is checked before anything is read or allocated. */
	if (body_len > r->body_max) {
		return r->broken = TRN_ETOO_BIG;
	}
	if (body_len > left - TRN_HEADER_SIZE) {
		return r->broken = TRN_ETRUNCATED;
	}
	f->kind = p[1];
	f->flags = trn_get16(p + 2);
	f->type = trn_get32(p + 4);
	f->body_len = body_len;
	f->reason = (int32_t)trn_get32(p + 12);
	f->from = trn_get64(p + 16);
	f->to = trn_get64(p + 24);
	f->ref = trn_get64(p + 32);
	f->who = trn_get64(p + 40);
	f->body = p + TRN_HEADER_SIZE;
	r->off += TRN_HEADER_SIZE + (size_t)body_len;

	int err = trn_frame_check(f, r->tags, r->body_max);
	if (err == TRN_OK && f->kind == TRN_NODE && r->tags != NULL) {
		err = learn_node(r->tags, f);
	}
	return err < 0 ? err : 1;
}

/* Reassembly. */

struct trn_reasm_msg {
	bool is_used;
	uint64_t id;
	uint32_t total;
	uint32_t got;
	trn_frame head; /* the first chunk's header fields, as a SEND */
	uint8_t *data;
};

int
trn_reasm_init(trn_reasm *r, const trn_reasm_limits *lim)
{
	memset(r, 0, sizeof(*r));
	if (lim->max_messages == 0 || lim->max_bytes == 0 ||
	    lim->max_message == 0) {
		return TRN_EINVAL;
	}
	r->msgs = trn_calloc(lim->max_messages, sizeof(*r->msgs));
	if (r->msgs == NULL) {
		return TRN_ENOMEM;
	}
	r->lim = *lim;
	return TRN_OK;
}

static void
reasm_drop(trn_reasm *r, struct trn_reasm_msg *m)
{
	free(m->data);
	r->bytes -= m->total;
	r->count--;
	memset(m, 0, sizeof(*m));
}

void
trn_reasm_fini(trn_reasm *r)
{
	if (r->msgs == NULL) {
		return;
	}
	for (uint32_t i = 0; i < r->lim.max_messages; i++) {
		if (r->msgs[i].is_used) {
			reasm_drop(r, &r->msgs[i]);
		}
	}
	free(r->msgs);
	memset(r, 0, sizeof(*r));
}

int
trn_reasm_add(trn_reasm *r, const trn_frame *f, trn_frame *out, uint8_t **body)
{
	if (f->kind != TRN_CHUNK || f->body_len <= TRN_CHUNK_INFO_SIZE ||
	    f->body == NULL) {
		return TRN_EINVAL;
	}
	uint64_t id = trn_get64(f->body);
	uint32_t offset = trn_get32(f->body + 8);
	uint32_t total = trn_get32(f->body + 12);
	uint32_t piece = f->body_len - TRN_CHUNK_INFO_SIZE;
	struct trn_reasm_msg *m = NULL, *free_slot = NULL;

	for (uint32_t i = 0; i < r->lim.max_messages; i++) {
		if (r->msgs[i].is_used && r->msgs[i].id == id) {
			m = &r->msgs[i];
			break;
		}
		if (!r->msgs[i].is_used && free_slot == NULL) {
			free_slot = &r->msgs[i];
		}
	}
	if (m != NULL) {
		int err = TRN_OK;
		if (total != m->total) {
			err = TRN_ECHUNK_TOTAL;
		} else if (offset != m->got) {
			err = TRN_ECHUNK_OFFSET;
		} else if (piece > m->total - m->got) {
			err = TRN_ECHUNK_PIECE;
		}
		if (err < 0) {
			reasm_drop(r, m);
			return err;
		}
	} else {
		if (offset != 0) {
			return TRN_ECHUNK_OFFSET;
		}
		if (total > r->lim.max_message) {
			return TRN_ECHUNK_MESSAGE_MAX;
		}
		if (piece > total) {
			return TRN_ECHUNK_PIECE;
		}
		if (free_slot == NULL) {
			return TRN_ECHUNK_MESSAGES;
		}
		if (total > r->lim.max_bytes - r->bytes) {
			return TRN_ECHUNK_BYTES;
		}
		uint8_t *data = trn_malloc(total);
		if (data == NULL) {
			return TRN_ENOMEM;
		}
		m = free_slot;
		m->is_used = true;
		m->id = id;
		m->total = total;
		m->got = 0;
		m->data = data;
		m->head = *f;
		m->head.kind = TRN_SEND;
		m->head.body = NULL;
		m->head.body_len = total;
		r->count++;
		r->bytes += total;
	}
	memcpy(m->data + m->got, f->body + TRN_CHUNK_INFO_SIZE, piece);
	m->got += piece;
	if (m->got < m->total) {
		return 0;
	}
	*out = m->head;
	out->body = m->data;
	*body = m->data;
	m->data = NULL;
	reasm_drop(r, m);
	return 1;
}
