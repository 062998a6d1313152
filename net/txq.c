/*
 * The sending side's queue of a link: two lanes and the policy between
 * them. See txq.h.
 */
#include "net/txq.h"

#include <stdlib.h>
#include <string.h>

#include "net/alloc.h"

/* A large message in the bulk lane, and its pair's frames held behind. */
struct trn_bulk {
	struct trn_bulk *next;
	trn_frame f; /* the SEND; f.body is body */
	uint8_t *body;
	uint64_t id;
	uint32_t off;   /* bytes already cut into chunks */
	uint32_t chunk; /* largest piece */
	uint64_t from, to;
	trn_lane behind;
};

/* Smallest piece cut to fill the end of a batch (unless it is the last). */
#define PIECE_MIN 4096u

/* A batch of @len bytes at @data (taken), or NULL without memory. */
static trn_batch *
batch_new(uint8_t *data, size_t len, size_t charge)
{
	trn_batch *b = trn_malloc(sizeof(*b));

	if (b == NULL) {
		return NULL;
	}
	b->next = NULL;
	b->data = data;
	b->len = len;
	b->charge = charge;
	trn_put32(b->hdr, (uint32_t)len);
	return b;
}

void
trn_batch_free(trn_batch *b)
{
	if (b != NULL) {
		free(b->data);
		free(b);
	}
}

static void
lane_init(trn_lane *l, size_t batch_max)
{
	memset(l, 0, sizeof(*l));
	trn_buf_init(&l->open, batch_max);
}

static void
lane_fini(trn_lane *l)
{
	while (l->sealed != NULL) {
		trn_batch *b = l->sealed;
		l->sealed = b->next;
		trn_batch_free(b);
	}
	trn_buf_fini(&l->open);
}

static void
lane_push(trn_lane *l, trn_batch *b)
{
	if (l->last != NULL) {
		l->last->next = b;
	} else {
		l->sealed = b;
	}
	l->last = b;
	l->sealed_n++;
}

/* Seal the open batch, if it holds anything; -1 without memory. */
static int
lane_seal(trn_lane *l)
{
	if (l->open.len == 0) {
		return 0;
	}
	trn_batch *b = batch_new(l->open.data, l->open.len, l->open.len);
	if (b == NULL) {
		return -1;
	}
	trn_buf_init(&l->open, l->open.max);
	lane_push(l, b);
	return 0;
}

static trn_batch *
lane_pop(trn_lane *l)
{
	trn_batch *b = l->sealed;

	if (b == NULL && (lane_seal(l) < 0 || (b = l->sealed) == NULL)) {
		return NULL;
	}
	l->sealed = b->next;
	if (l->sealed == NULL) {
		l->last = NULL;
	}
	b->next = NULL;
	return b;
}

static int
lane_frame(trn_txq *q, trn_lane *l, const trn_frame *f)
{
	size_t before = l->open.len;
	int rv = trn_frame_append(&l->open, f);

	if (rv == TRN_EFULL && l->open.len > 0) {
		if (lane_seal(l) < 0) {
			return TRN_ENOMEM;
		}
		before = 0;
		rv = trn_frame_append(&l->open, f);
	}
	if (rv == TRN_OK) {
		q->queued += l->open.len - before;
	}
	return rv;
}

static void
bulk_free(struct trn_bulk *m)
{
	free(m->body);
	lane_fini(&m->behind);
	free(m);
}

void
trn_txq_init(trn_txq *q, size_t batch_max)
{
	memset(q, 0, sizeof(*q));
	q->batch_max = batch_max;
	lane_init(&q->small, batch_max);
}

void
trn_txq_fini(trn_txq *q)
{
	lane_fini(&q->small);
	while (q->bulk != NULL) {
		struct trn_bulk *m = q->bulk;
		q->bulk = m->next;
		bulk_free(m);
	}
	q->bulk_last = NULL;
	q->queued = 0;
}

/*
 * What is queued from now on goes after what the small lane holds now:
 * seal its open batch and raise the barrier to it.
 */
static int
raise_barrier(trn_txq *q)
{
	if (lane_seal(&q->small) < 0) {
		return -1;
	}
	q->barrier = q->small.sealed_n;
	return 0;
}

trn_buf *
trn_txq_node_buf(trn_txq *q)
{
	trn_buf *b = &q->small.open;

	if (b->max - b->len < TRN_HEADER_SIZE + 8 + TRN_NAME_MAX &&
	    lane_seal(&q->small) < 0) {
		return NULL;
	}
	return b;
}

void
trn_txq_node_added(trn_txq *q, size_t bytes)
{
	q->queued += bytes;
	/* Without memory to seal now, the barrier is raised by the next
	 * large message or NODE frame; until then the frame stays in the
	 * open batch, which goes before anything queued after it unless a
	 * bulk batch comes first: so the barrier counts it as sealed. */
	if (raise_barrier(q) < 0) {
		q->barrier = q->small.sealed_n + 1;
	}
}

/* The last large message of the pair (@from, @to) still queued. */
static struct trn_bulk *
held_by(trn_txq *q, uint64_t from, uint64_t to)
{
	struct trn_bulk *found = NULL;

	if (from == 0 && to == 0) {
		return NULL;
	}
	for (struct trn_bulk *m = q->bulk; m != NULL; m = m->next) {
		if (m->from == from && m->to == to) {
			found = m;
		}
	}
	return found;
}

static int
bulk_add(trn_txq *q, const trn_frame *f, uint64_t from, uint64_t to,
	 uint32_t chunk)
{
	/* Refused now, as a SEND would be, not when its first chunk is cut. */
	trn_frame head = *f;
	head.body = NULL;
	head.body_len = 0;
	int rv = trn_frame_check(&head, NULL, 0);
	if (rv < 0) {
		return rv;
	}
	struct trn_bulk *m = trn_calloc(1, sizeof(*m));
	if (m == NULL) {
		return TRN_ENOMEM;
	}
	m->body = trn_malloc(f->body_len);
	if (m->body == NULL || raise_barrier(q) < 0) {
		free(m->body);
		free(m);
		return TRN_ENOMEM;
	}
	memcpy(m->body, f->body, f->body_len);
	m->f = *f;
	m->f.body = m->body;
	m->id = ++q->msg_ids;
	m->chunk = chunk;
	m->from = from;
	m->to = to;
	lane_init(&m->behind, q->batch_max);
	if (q->bulk_last != NULL) {
		q->bulk_last->next = m;
	} else {
		q->bulk = m;
	}
	q->bulk_last = m;
	q->queued += f->body_len;
	return TRN_OK;
}

int
trn_txq_frame(trn_txq *q, const trn_frame *f, uint64_t from, uint64_t to,
	      uint32_t chunk)
{
	if (f->kind == TRN_SEND && f->body_len > chunk && chunk > 0) {
		return bulk_add(q, f, from, to, chunk);
	}
	struct trn_bulk *m = held_by(q, from, to);
	return lane_frame(q, m != NULL ? &m->behind : &q->small, f);
}

int
trn_txq_raw(trn_txq *q, void *data, size_t len)
{
	if (lane_seal(&q->small) < 0) {
		free(data);
		return TRN_ENOMEM;
	}
	trn_batch *b = batch_new(data, len, len);
	if (b == NULL) {
		free(data);
		return TRN_ENOMEM;
	}
	lane_push(&q->small, b);
	q->queued += len;
	return TRN_OK;
}

/* The next batch of chunks of @m, as large as a batch may be. */
static trn_batch *
cut(trn_txq *q, struct trn_bulk *m)
{
	trn_buf buf;
	size_t charge = 0;
	uint32_t off = m->off;
	size_t over = TRN_HEADER_SIZE + TRN_CHUNK_INFO_SIZE;

	trn_buf_init(&buf, q->batch_max);
	while (off < m->f.body_len && buf.max - buf.len > over) {
		uint32_t left = m->f.body_len - off;
		size_t fits = buf.max - buf.len - over;
		uint32_t piece = left < m->chunk ? left : m->chunk;
		if (piece > fits) {
			piece = (uint32_t)fits;
		}
		/* No sliver cut only to fill a batch. */
		if (piece < left && piece < PIECE_MIN && buf.len > 0) {
			break;
		}
		if (trn_chunk_append(&buf, &m->f, m->id, off, piece) !=
		    TRN_OK) {
			break;
		}
		off += piece;
		charge += piece;
	}
	trn_batch *b =
		buf.len > 0 ? batch_new(buf.data, buf.len, charge) : NULL;
	if (b == NULL) {
		trn_buf_fini(&buf);
		return NULL; /* nothing taken: tried again later */
	}
	m->off = off;
	return b;
}

/* The bulk lane's next batch: chunks, or then the frames held behind. */
static trn_batch *
take_bulk(trn_txq *q)
{
	struct trn_bulk *m;

	while ((m = q->bulk) != NULL) {
		if (m->off < m->f.body_len) {
			return cut(q, m);
		}
		if (m->behind.open.len > 0 || m->behind.sealed != NULL) {
			return lane_pop(&m->behind);
		}
		q->bulk = m->next;
		if (q->bulk == NULL) {
			q->bulk_last = NULL;
		}
		bulk_free(m);
	}
	return NULL;
}

static trn_batch *
take_small(trn_txq *q)
{
	trn_batch *b = lane_pop(&q->small);

	if (b != NULL) {
		q->small_sent++;
		q->last_bulk = false;
	}
	return b;
}

trn_batch *
trn_txq_next(trn_txq *q)
{
	bool small = q->small.sealed != NULL || q->small.open.len > 0;

	if (q->small_sent < q->barrier) {
		return take_small(q);
	}
	if (q->bulk != NULL && (!small || !q->last_bulk)) {
		trn_batch *b = take_bulk(q);
		if (b != NULL) {
			q->last_bulk = true;
			return b;
		}
	}
	return small ? take_small(q) : NULL;
}

void
trn_txq_done(trn_txq *q, trn_batch *b)
{
	q->queued -= b->charge;
	trn_batch_free(b);
}
