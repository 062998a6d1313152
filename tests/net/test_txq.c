/*
 * A link's sending queue (net/txq.h): what leaves in which batch. Each
 * test queues frames, drains the queue batch by batch as a link would,
 * and decodes the batches as the peer would (trn_reader, with the link's
 * node tags, and trn_reasm for chunks), recording at which batch each
 * message arrived whole. Checked: a large message does not hold back a
 * heartbeat or another pair's small message by more than a batch; a
 * pair's order holds across the lanes; a NODE frame precedes every use of
 * its tag; what is queued is counted until it is sent; nothing is lost or
 * repeated.
 */
#include "net/txq.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BATCH TRN_BATCH_MAX_DEFAULT
#define CHUNK TRN_CHUNK_SIZE_DEFAULT

/* Pairs, as the sender sees them (pid values). */
#define PA_FROM 11u
#define PA_TO   12u
#define PB_FROM 21u
#define PB_TO   22u

/* What the peer saw: per message type, the batch it arrived whole in. */
#define MAXREC 4096
struct seen {
	unsigned n;
	uint32_t type[MAXREC];
	unsigned batch[MAXREC];
	uint32_t size[MAXREC];
	unsigned heartbeats[MAXREC]; /* batch of each heartbeat */
	unsigned nheart;
	unsigned batches;
	int refusals;
	uint64_t sum_big; /* byte sum of every reassembled large body */
};

static trn_frame
send_frame(uint32_t type, const uint8_t *body, uint32_t len, uint16_t tag)
{
	trn_frame f = { .kind = TRN_SEND };

	f.type = type;
	f.from = trn_wpid(TRN_TAG_SENDER, 5);
	f.to = trn_wpid(tag, 6);
	f.body = body;
	f.body_len = len;
	return f;
}

static void
record(struct seen *s, uint32_t type, uint32_t size)
{
	if (s->n < MAXREC) {
		s->type[s->n] = type;
		s->size[s->n] = size;
		s->batch[s->n] = s->batches;
		s->n++;
	}
}

/* Decode batch @b as the peer, with its node tags and reassembler. */
static void
peer_read(struct seen *s, trn_tags *tags, trn_reasm *ra, const trn_batch *b)
{
	trn_reader r;
	trn_frame f;
	int rv;

	CHECK(b->len <= BATCH);
	trn_reader_init(&r, b->data, b->len, TRN_BODY_MAX_DEFAULT, tags);
	while ((rv = trn_reader_next(&r, &f)) == 1) {
		if (f.kind == TRN_HEARTBEAT) {
			if (s->nheart < MAXREC) {
				s->heartbeats[s->nheart++] = s->batches;
			}
		} else if (f.kind == TRN_SEND) {
			record(s, f.type, f.body_len);
		} else if (f.kind == TRN_CHUNK) {
			trn_frame whole;
			uint8_t *body = NULL;
			int got = trn_reasm_add(ra, &f, &whole, &body);
			if (got == 1) {
				for (uint32_t i = 0; i < whole.body_len; i++) {
					s->sum_big += body[i];
				}
				record(s, whole.type, whole.body_len);
				free(body);
			} else if (got < 0) {
				s->refusals++;
			}
		}
	}
	if (rv < 0) {
		s->refusals++;
	}
	s->batches++;
}

/* Take every batch the queue gives, as the link would, and read it. */
static void
drain(trn_txq *q, struct seen *s, trn_tags *tags, trn_reasm *ra)
{
	trn_batch *b;

	while ((b = trn_txq_next(q)) != NULL) {
		peer_read(s, tags, ra, b);
		trn_txq_done(q, b);
	}
}

/* The batch message @type arrived in; -1 if it never did. */
static int
batch_of(const struct seen *s, uint32_t type)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->type[i] == type) {
			return (int)s->batch[i];
		}
	}
	return -1;
}

/* Index of arrival of @type; -1 if it never did. */
static int
order_of(const struct seen *s, uint32_t type)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->type[i] == type) {
			return (int)i;
		}
	}
	return -1;
}

struct peer {
	trn_tags tags;
	trn_reasm ra;
	struct seen seen;
};

static struct peer *
peer_new(void)
{
	struct peer *p = calloc(1, sizeof(*p));
	trn_reasm_limits lim = { TRN_REASM_MESSAGES_DEFAULT,
				 TRN_REASM_BYTES_DEFAULT,
				 TRN_MESSAGE_MAX_DEFAULT };

	CHECK(p != NULL);
	if (p != NULL) {
		trn_tags_init(&p->tags);
		CHECK_EQ_INT(trn_reasm_init(&p->ra, &lim), TRN_OK);
	}
	return p;
}

static void
peer_free(struct peer *p)
{
	trn_reasm_fini(&p->ra);
	free(p);
}

static uint8_t *
big_body(size_t n, uint64_t *sum)
{
	uint8_t *v = malloc(n);

	CHECK(v != NULL);
	for (size_t i = 0; v != NULL && i < n; i++) {
		v[i] = (uint8_t)(i * 13 + 1);
		*sum += v[i];
	}
	return v;
}

/*
 * A 4 MiB message of pair A, then a heartbeat, a small message of pair B
 * and one of pair A: B's and the heartbeat leave within a batch of being
 * queued, long before the large message ends; A's waits for it.
 */
static void
test_large_does_not_hold_back_others(void)
{
	trn_txq q;
	struct peer *p = peer_new();
	uint64_t sum = 0;
	size_t n = 4u << 20;
	uint8_t *v = big_body(n, &sum);
	uint8_t small[32] = { 1, 2, 3 };
	trn_frame hb = { .kind = TRN_HEARTBEAT };

	if (p == NULL || v == NULL) {
		free(v);
		return;
	}
	trn_txq_init(&q, BATCH);
	trn_frame big = send_frame(100, v, (uint32_t)n, TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &big, PA_FROM, PA_TO, CHUNK), TRN_OK);
	free(v); /* queued as a copy */
	CHECK(trn_txq_queued(&q) >= n);
	/* The link is sending the first batch of it when the rest comes. */
	trn_batch *first = trn_txq_next(&q);
	CHECK(first != NULL);
	CHECK_EQ_INT(trn_txq_frame(&q, &hb, 0, 0, CHUNK), TRN_OK);
	trn_frame sb = send_frame(200, small, sizeof(small), TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &sb, PB_FROM, PB_TO, CHUNK), TRN_OK);
	trn_frame sa = send_frame(300, small, sizeof(small), TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &sa, PA_FROM, PA_TO, CHUNK), TRN_OK);
	/* The peer reads the first batch, then the rest. */
	if (first != NULL) {
		peer_read(&p->seen, &p->tags, &p->ra, first);
		CHECK_EQ_INT(p->seen.n, 0);
		trn_txq_done(&q, first);
	}
	drain(&q, &p->seen, &p->tags, &p->ra);
	CHECK_EQ_INT(p->seen.refusals, 0);
	CHECK_EQ_INT(p->seen.n, 3);
	CHECK_EQ_INT(p->seen.nheart, 1);
	/* Queued while batch 0 left: in batch 1. */
	CHECK_EQ_INT(batch_of(&p->seen, 200), 1);
	CHECK_EQ_INT(p->seen.heartbeats[0], 1);
	/* The large message took many batches more; A's small one after. */
	int big_at = batch_of(&p->seen, 100);
	CHECK(big_at > 10);
	CHECK(order_of(&p->seen, 100) < order_of(&p->seen, 300));
	CHECK(order_of(&p->seen, 200) < order_of(&p->seen, 100));
	CHECK_EQ_U64(p->seen.sum_big, sum);
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	trn_txq_fini(&q);
	peer_free(p);
}

/*
 * A pair's frames queued before its large message leave before it, though
 * the bulk lane's turn comes first on a fresh link and the message fits
 * in one batch; frames held behind a large message keep their order after
 * it.
 */
static void
test_pair_order_across_lanes(void)
{
	trn_txq q;
	struct peer *p = peer_new();
	uint64_t sum = 0;
	size_t n = 100 * 1000; /* one batch */
	uint8_t *v = big_body(n, &sum);
	uint8_t small[8] = { 0 };

	if (p == NULL || v == NULL) {
		free(v);
		return;
	}
	trn_txq_init(&q, BATCH);
	/* A: small 1..3, large 4, small 5..7, large 8, small 9. */
	for (uint32_t t = 1; t <= 9; t++) {
		trn_frame f = t == 4 || t == 8
				      ? send_frame(t, v, (uint32_t)n,
						   TRN_TAG_RECEIVER)
				      : send_frame(t, small, sizeof(small),
						   TRN_TAG_RECEIVER);
		CHECK_EQ_INT(trn_txq_frame(&q, &f, PA_FROM, PA_TO, CHUNK),
			     TRN_OK);
	}
	free(v);
	drain(&q, &p->seen, &p->tags, &p->ra);
	CHECK_EQ_INT(p->seen.refusals, 0);
	CHECK_EQ_INT(p->seen.n, 9);
	for (uint32_t t = 1; t < 9; t++) {
		CHECK(order_of(&p->seen, t) >= 0);
		CHECK(order_of(&p->seen, t) < order_of(&p->seen, t + 1));
	}
	CHECK_EQ_U64(p->seen.sum_big, 2 * sum);
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	trn_txq_fini(&q);
	peer_free(p);
}

/*
 * A NODE frame (a third node's tag) added while a large message waits
 * leaves before the frame that uses it, which is held behind that
 * message: the peer knows every tag it reads.
 */
static void
test_node_frame_first(void)
{
	trn_txq q;
	trn_tags out;
	struct peer *p = peer_new();
	uint64_t sum = 0;
	size_t n = 100 * 1000; /* one batch */
	uint8_t *v = big_body(n, &sum);
	uint8_t small[8] = { 0 };
	uint16_t tag = 0;

	if (p == NULL || v == NULL) {
		free(v);
		return;
	}
	trn_txq_init(&q, BATCH);
	trn_tags_init(&out);
	/* A's large message leaves whole in the first batch; B's small one
	 * in the second, so the bulk lane's turn is next. */
	trn_frame big = send_frame(1, v, (uint32_t)n, TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &big, PA_FROM, PA_TO, CHUNK), TRN_OK);
	free(v);
	trn_batch *b = trn_txq_next(&q);
	CHECK(b != NULL);
	if (b != NULL) {
		peer_read(&p->seen, &p->tags, &p->ra, b);
		trn_txq_done(&q, b);
	}
	trn_frame sb = send_frame(3, small, sizeof(small), TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &sb, PB_FROM, PB_TO, CHUNK), TRN_OK);
	b = trn_txq_next(&q);
	CHECK(b != NULL);
	if (b != NULL) {
		peer_read(&p->seen, &p->tags, &p->ra, b);
		trn_txq_done(&q, b);
	}
	CHECK_EQ_INT(order_of(&p->seen, 1), 0);
	CHECK_EQ_INT(order_of(&p->seen, 3), 1);
	/* A NODE frame, then a frame of A that uses its tag, held. */
	trn_buf *nb = trn_txq_node_buf(&q);
	CHECK(nb != NULL);
	if (nb != NULL) {
		size_t before = nb->len;
		CHECK_EQ_INT(trn_tags_put(&out, nb, "gamma", 5, 3, &tag),
			     TRN_OK);
		trn_txq_node_added(&q, nb->len - before);
	}
	trn_frame f = send_frame(2, small, sizeof(small), TRN_TAG_RECEIVER);
	f.from = trn_wpid(tag, 9);
	CHECK_EQ_INT(trn_txq_frame(&q, &f, PA_FROM, PA_TO, CHUNK), TRN_OK);
	drain(&q, &p->seen, &p->tags, &p->ra);
	CHECK_EQ_INT(p->seen.refusals, 0);
	CHECK_EQ_INT(order_of(&p->seen, 2), 2);
	CHECK(trn_tags_get(&p->tags, tag) != NULL);
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	trn_txq_fini(&q);
	peer_free(p);
}

/*
 * Small messages queued without pause do not starve a large one: the
 * lanes take turns, so it ends after about twice its own batches.
 */
static void
test_lanes_take_turns(void)
{
	trn_txq q;
	struct peer *p = peer_new();
	uint64_t sum = 0;
	size_t n = 2u << 20;
	uint8_t *v = big_body(n, &sum);
	static uint8_t small[2000];
	unsigned sent_small = 0;

	if (p == NULL || v == NULL) {
		free(v);
		return;
	}
	trn_txq_init(&q, BATCH);
	trn_frame big = send_frame(7, v, (uint32_t)n, TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &big, PA_FROM, PA_TO, CHUNK), TRN_OK);
	free(v);
	/* Before every batch, a batch's worth of small messages of B. */
	for (unsigned round = 0; round < 200 && batch_of(&p->seen, 7) < 0;
	     round++) {
		for (unsigned i = 0; i < BATCH / (TRN_HEADER_SIZE + 2000);
		     i++) {
			trn_frame f = send_frame(1000, small, sizeof(small),
						 TRN_TAG_RECEIVER);
			CHECK_EQ_INT(
				trn_txq_frame(&q, &f, PB_FROM, PB_TO, CHUNK),
				TRN_OK);
			sent_small++;
		}
		trn_batch *b = trn_txq_next(&q);
		CHECK(b != NULL);
		if (b == NULL) {
			break;
		}
		peer_read(&p->seen, &p->tags, &p->ra, b);
		trn_txq_done(&q, b);
	}
	int at = batch_of(&p->seen, 7);
	unsigned batches_of_big = (unsigned)(n / (BATCH - 5 * 64)) + 1;
	CHECK(at >= 0);
	CHECK(at <= (int)(2 * batches_of_big + 2));
	CHECK_EQ_U64(p->seen.sum_big, sum);
	drain(&q, &p->seen, &p->tags, &p->ra);
	unsigned got_small = 0;
	for (unsigned i = 0; i < p->seen.n; i++) {
		got_small += p->seen.type[i] == 1000;
	}
	CHECK(p->seen.n < MAXREC);
	CHECK_EQ_INT(got_small, sent_small);
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	trn_txq_fini(&q);
	peer_free(p);
}

/* A handshake message is a batch of its own, after what was queued. */
static void
test_raw_and_counting(void)
{
	trn_txq q;
	uint8_t small[16] = { 0 };

	trn_txq_init(&q, BATCH);
	CHECK(trn_txq_next(&q) == NULL);
	trn_frame f = send_frame(1, small, sizeof(small), TRN_TAG_RECEIVER);
	CHECK_EQ_INT(trn_txq_frame(&q, &f, PA_FROM, PA_TO, CHUNK), TRN_OK);
	size_t framed = trn_txq_queued(&q);
	CHECK_EQ_U64(framed, TRN_HEADER_SIZE + sizeof(small));
	char *raw = malloc(5);
	CHECK(raw != NULL);
	if (raw != NULL) {
		memcpy(raw, "hello", 5);
		CHECK_EQ_INT(trn_txq_raw(&q, raw, 5), TRN_OK);
	}
	CHECK_EQ_U64(trn_txq_queued(&q), framed + 5);
	trn_batch *b1 = trn_txq_next(&q);
	trn_batch *b2 = trn_txq_next(&q);
	CHECK(b1 != NULL && b2 != NULL);
	if (b1 != NULL && b2 != NULL) {
		CHECK_EQ_U64(b1->len, framed);
		CHECK_EQ_U64(b2->len, 5);
		CHECK(memcmp(b2->data, "hello", 5) == 0);
		/* Counted until sent. */
		CHECK_EQ_U64(trn_txq_queued(&q), framed + 5);
		trn_txq_done(&q, b1);
		trn_txq_done(&q, b2);
	}
	CHECK(trn_txq_next(&q) == NULL);
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	/* A frame the wire refuses is refused here, large or not. */
	trn_frame bad = send_frame(1, small, sizeof(small), TRN_TAG_RECEIVER);
	bad.from = 0;
	bad.flags = TRN_F_REQUEST;
	CHECK(trn_txq_frame(&q, &bad, PA_FROM, PA_TO, CHUNK) < 0);
	uint8_t *v = calloc(1, CHUNK * 2);
	if (v != NULL) {
		bad.body = v;
		bad.body_len = CHUNK * 2;
		CHECK(trn_txq_frame(&q, &bad, PA_FROM, PA_TO, CHUNK) < 0);
		free(v);
	}
	CHECK_EQ_U64(trn_txq_queued(&q), 0);
	CHECK(trn_txq_next(&q) == NULL);
	trn_txq_fini(&q);
}

static const struct test_case tests[] = {
	{ "a large message holds back no other pair",
	  test_large_does_not_hold_back_others },
	{ "a pair's order holds across the lanes",
	  test_pair_order_across_lanes },
	{ "a NODE frame leaves before its first use", test_node_frame_first },
	{ "the lanes take turns", test_lanes_take_turns },
	{ "raw batches and what is counted", test_raw_and_counting },
	{ NULL, NULL },
};

TEST_MAIN(tests)
