/*
 * What a link sends next: the sending side's queue of frames and its
 * policy, with no I/O (net/node.c does the sending), so that the unit
 * tests drive it alone.
 *
 * Two lanes. The small lane holds frames in the order they came, gathered
 * into batches. A SEND longer than one chunk goes to the bulk lane as a
 * whole (a copy), and is cut into CHUNK frames only when a batch of it is
 * about to leave. When both lanes have something, they take turns batch
 * by batch, so a large message delays a heartbeat or a small message by
 * one batch at most, never by the whole message; and small messages never
 * keep a large one waiting for ever.
 *
 * Order. A sender->receiver pair's frames must arrive in the order they
 * were sent. A frame of a pair that has a large message in the bulk lane
 * is held behind that message (in the message's own small queue) and
 * leaves after its last chunk. A large message, and a frame held behind
 * one, never goes before the small lane's frames queued before it (a
 * barrier: the small lane is sent up to there first), which also keeps a
 * NODE frame ahead of every frame that uses its tag, whatever the lane.
 *
 * Memory: trn_txq_queued() counts what is waiting (encoded frames, and
 * large messages by their body), so the link can bound it. Nothing is
 * queued in part: a large message that cannot be copied is refused whole.
 *
 * Threads: none; the link's owner serialises every call (node.c: under
 * the node's mutex).
 */
#ifndef TR_NET_TXQ_H
#define TR_NET_TXQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"

/* One batch ready to leave: the 4-byte length prefix, then @len bytes. */
typedef struct trn_batch {
	struct trn_batch *next;
	uint8_t hdr[4];
	uint8_t *data;
	size_t len;
	size_t charge; /* what it took off trn_txq_queued() */
} trn_batch;

/* Frames in order: the open batch, then sealed ones. */
typedef struct trn_lane {
	trn_buf open;
	trn_batch *sealed, *last;
	uint64_t sealed_n; /* batches sealed since the start */
} trn_lane;

struct trn_bulk;

typedef struct trn_txq {
	trn_lane small;
	struct trn_bulk *bulk, *bulk_last; /* large messages, in order */
	uint64_t small_sent; /* small-lane batches taken by trn_txq_next */
	uint64_t barrier;    /* small-lane batches that must go first */
	uint64_t msg_ids;    /* large messages queued */
	size_t queued;
	size_t batch_max;
	bool last_bulk; /* the last batch taken was the bulk lane's */
} trn_txq;

void trn_txq_init(trn_txq *q, size_t batch_max);
void trn_txq_fini(trn_txq *q);

/* Bytes waiting or being sent: frames encoded, large messages by their
 * body. */
static inline size_t
trn_txq_queued(const trn_txq *q)
{
	return q->queued;
}

/*
 * The buffer a NODE frame goes into (trn_tags_put): the small lane's open
 * batch, sealed first if a NODE frame might not fit. After one was added,
 * trn_txq_node_added() counts its @bytes and seals it into a batch that
 * leaves before any frame queued after it, whatever the lane.
 * Return: NULL without memory.
 */
trn_buf *trn_txq_node_buf(trn_txq *q);
void trn_txq_node_added(trn_txq *q, size_t bytes);

/*
 * trn_txq_frame() - Queue frame @f of the pair (@from, @to) (pid values
 * as the sender sees them; a pair of 0s is the link's own). A SEND longer
 * than @chunk bytes goes to the bulk lane (its body copied); any other
 * frame to the small lane, or behind the pair's large message if it has
 * one queued.
 *
 * Return: TRN_OK, TRN_ENOMEM (nothing queued), or trn_frame_append()'s
 * refusals.
 */
int trn_txq_frame(trn_txq *q, const trn_frame *f, uint64_t from, uint64_t to,
		  uint32_t chunk);

/*
 * trn_txq_raw() - Queue @len bytes at @data (malloc'd; the queue owns it
 * from here, also on failure) as a batch of their own, after what the
 * small lane holds: a handshake message.
 */
int trn_txq_raw(trn_txq *q, void *data, size_t len);

/*
 * trn_txq_next() - The next batch to send, taken off the queue, or NULL
 * when nothing is waiting or no memory was found for it (then call again
 * later: nothing was lost). The caller sends it, then gives it back to
 * trn_txq_done(), which frees it and takes it off trn_txq_queued(); or,
 * when the link is gone, frees it with trn_batch_free().
 */
trn_batch *trn_txq_next(trn_txq *q);
void trn_txq_done(trn_txq *q, trn_batch *b);

void trn_batch_free(trn_batch *b);

#endif /* TR_NET_TXQ_H */
