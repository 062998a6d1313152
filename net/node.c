/*
 * A node: the listener, one connection per peer, the handshake, the
 * translation of pids between a node's view and the wire, what crosses
 * each link (so that losing it fails exactly that), heartbeats and
 * reconnects. The wire format and the handshake messages are net/wire.c
 * and net/handshake.c; this file does the I/O, on nng's byte streams.
 *
 * Why streams and not one pair1 socket per peer: a pair1 socket that is
 * not polyamorous takes one pipe, so a node listening on one address
 * could not accept a second peer without a socket and a port per peer
 * (polyamorous mode drops messages and is deprecated). nng's stream
 * dialers and listeners are the transport its protocols are built on
 * (the same TCP and TLS code and options, the same aio model); a link
 * adds a 4-byte length to each batch of frames.
 *
 * Threads:
 * - `out` (the runtime's hook) runs on any thread that sends to a remote
 *   pid: it translates, appends to the link's open batch and starts a
 *   send if none is under way;
 * - nng's callbacks (accept, dial, send, receive) run on nng's threads;
 *   they never block and never run user code: what arrives goes to the
 *   runtime's `in`, which only queues;
 * - one thread of ours ticks: heartbeats, silence timeouts, reconnects,
 *   and freeing closed connections (nng_aio_stop must not run in a
 *   callback).
 * One mutex (net->mu) guards everything but the runtime's `in`, which is
 * always called without it: `in` may make the runtime call `out` at once
 * (a dead letter answering a remote requester).
 *
 * Invariants:
 * - a peer is UP with exactly one connection, `conn`, and one life, `node`
 *   (its number in pids); a life ends once, and then every request,
 *   monitor and link in its `tracks` gets TR_EXIT_NOCONNECTION;
 * - a connection's frames are decoded by one receive at a time, in order,
 *   so the order of a sender->receiver pair holds; nothing is resent, so
 *   nothing is delivered twice.
 */
#include <troupe/actors/registry.h>
#include <troupe/net/net.h>
#include <troupe/remote.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "net/alloc.h"
#include "net/handshake.h"
#include "net/txq.h"
#include "net/wire.h"

/* Largest batch a peer may send (its length prefix is checked first). */
#define BATCH_MAX_IN (TRN_BATCH_MAX_DEFAULT + TRN_BODY_MAX_DEFAULT)
/* A link's read buffer: one read takes what arrived, up to this much (a
 * longer batch gets a buffer of its size). */
#define RX_BUF (64u * 1024u)
/* Reads a link hands its actor ahead of it before it stops reading (so
 * at most about this many buffers wait per link; see rx_done()). */
#define RX_PENDING_MAX 16u
/* Refused frames after which a connection is closed. */
#define REFUSALS_MAX 64
/* Numbers of node lives: 1..LIVES_MAX (the pid's 16-bit node part). */
#define LIVES_MAX 65535u

/* What crossed a link and must fail when it is lost. */
enum { TRACK_REQ = 1, TRACK_MON, TRACK_LINK };

struct track {
	uint8_t kind;
	tr_pid local;  /* the requester, monitor holder, linked actor */
	tr_pid remote; /* the target, monitored or linked actor */
	uint64_t ref;  /* REQ, MON */
};

/* After an accept that failed, the next one waits this long. */
#define ACCEPT_RETRY_MS 100u

enum { C_HELLO, C_RESPONSE, C_UP, C_CLOSED };

struct conn {
	struct tr_net *net;
	struct conn *next; /* net->conns */
	struct peer *peer; /* NULL until an accepted one names itself */
	nng_stream *s;
	int state;
	bool dialed; /* this side dialed: the dialer's handshake role */
	trn_hello own;
	trn_hello theirs;
	/* Sending: what waits (net/txq.h), the batch under way. */
	nng_aio *tx_aio;
	trn_txq txq;
	trn_batch *tx; /* being sent */
	size_t tx_off; /* bytes of it sent, prefix included */
	tr_pid held;   /* its peer's gate while it holds senders back */
	/* Receiving. */
	nng_aio *rx_aio;
	uint8_t *rx_buf; /* what arrived and is not handled yet */
	size_t rx_len;
	size_t rx_cap;
	tr_pid rx;           /* the actor that handles its batches (rx_def) */
	unsigned rx_pending; /* batches handed to it and not handled yet */
	bool rx_paused;      /* not reading until its actor catches up */
	trn_tags tags_out, tags_in;
	uint16_t tag_node[TRN_TAG_LIMIT]; /* node numbers of tags_in's tags */
	trn_reasm reasm;
	uint64_t last_rx, last_tx; /* ms */
	unsigned refusals;
};

struct peer {
	struct peer *next;
	struct tr_net *net;
	char name[TRN_NAME_MAX + 1]; /* "" until known */
	char url[128];               /* "" for one that only dialed us */
	uint32_t creation;
	uint16_t node;    /* its current or last life; 0: never up */
	bool up;          /* a NODEUP was told, and no NODEDOWN since */
	uint64_t service; /* its service's local part (hello); 0: none */
	tr_pid gate;      /* what senders to it are held back on */
	tr_pid rx;        /* handles what its connections read (rx_def) */
	char listen[TRN_URL_MAX + 1]; /* where it listens (hello); "" */
	struct conn *conn;
	/* Dialing. */
	nng_stream_dialer *dialer;
	nng_aio *dial_aio;
	bool dialing;
	bool redial; /* keep dialing while down */
	uint64_t retry_at;
	uint32_t backoff;
	/* The life's tracks. */
	struct track *tracks;
	size_t ntracks, captracks;
	uint32_t *tidx; /* their index (track_find) */
	uint32_t tidx_cap;
	uint64_t sent, received, refused;
};

struct life {
	char name[TRN_NAME_MAX + 1];
	uint32_t creation;
	struct peer *peer; /* NULL for a third node seen in pids only */
};

struct sub {
	tr_pid who;
};

/* A definition other nodes may spawn: the user's, and the copy the
 * service spawns, whose init links to the requester first. */
struct netdef {
	char name[TR_NET_KEY_SIZE];
	const tr_actor_def *user;
	tr_actor_def wrapped;
};

struct tr_net {
	tr_runtime *rt;
	tr_remote_hook hook;
	pthread_mutex_t mu;
	tr_net_config cfg;
	char name[TRN_NAME_MAX + 1];
	uint32_t creation;
	uint8_t *secret;
	size_t secret_len;
	/* Mutual TLS (tls+tcp): NULL for a cluster on plain tcp. */
	nng_tls_config *tls_server, *tls_client;
	nng_stream_listener *listener;
	nng_aio *accept_aio;
	/* An accept that failed is tried again by the ticker at this time
	 * (ms), not at once: a lasting error (no file descriptors) would
	 * otherwise spin on an nng thread. */
	bool accept_idle;
	uint64_t accept_retry_at;
	char address[160];
	struct peer *peers;
	struct conn *conns;  /* every connection not yet freed */
	struct life **lives; /* [1..LIVES_MAX] */
	uint32_t next_life;
	struct sub *subs;
	size_t nsubs, capsubs;
	bool stopping;
	bool stopped;     /* tr_net_stop() returned: `out` refuses everything */
	uint64_t refused; /* connections refused before they were up */
	uint64_t frames_refused; /* frames refused on links that were up */
	uint64_t held;           /* links that began holding senders back */
	uint64_t sends_refused;  /* sends refused by a full link */
	pthread_t ticker;
	pthread_cond_t tick_cv;
	bool ticker_started;
	/* The service (its actor reads these; they live until release). */
	tr_pid service;
	struct tr_registry *registry;
	struct netdef *defs;
	size_t ndefs;
	_Atomic uint64_t names_sent, names_missed, lookups, spawned,
		spawns_refused;
};

/* Work gathered under the mutex and done after it: `in` calls and node
 * events must not run with it held. */
struct later {
	tr_remote_op *ops;
	size_t nops, capops;
	tr_net_node_event *evs;
	bool *up;
	size_t nevs, capevs;
	struct told *told; /* peer lists for peers' services */
};

/*
 * The full mesh: when a link comes up, each side tells the other's
 * service the peers it has up and where they listen
 * (TRN_MSG_PEERS, a payload of struct peers), and a service dials those
 * its node does not know. Internal to the layer; docs/NET.md describes it.
 */
#define TRN_MSG_PEERS (TR_MSG_NET_BASE + 0x80u)
/* What a link read, for its peer's rx actor (struct rx_batch, a pointer
 * message from the runtime's context). */
#define TRN_MSG_RX (TR_MSG_NET_BASE + 0x81u)
/* Peers one list names at most. */
#define PEERS_MAX 256

struct peer_entry {
	char name[TR_NET_KEY_SIZE];
	char url[TRN_URL_MAX + 1];
};

struct peers {
	uint32_t count;
	uint32_t pad;
	struct peer_entry v[];
};

struct told {
	struct told *next;
	tr_pid to;
	size_t len;
	struct peers *list;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ */
/* Deferred work                                                       */

static void
later_op(struct later *l, const tr_remote_op *op)
{
	if (l->nops == l->capops) {
		size_t cap = l->capops ? 2 * l->capops : 16;
		tr_remote_op *v = trn_realloc(l->ops, cap * sizeof(*v));
		if (v == NULL) {
			return; /* the outcome is lost; a timeout covers it */
		}
		l->ops = v;
		l->capops = cap;
	}
	l->ops[l->nops++] = *op;
}

static void
later_event(struct later *l, const struct peer *p, bool up, int32_t reason)
{
	if (l->nevs == l->capevs) {
		size_t cap = l->capevs ? 2 * l->capevs : 4;
		tr_net_node_event *v = trn_realloc(l->evs, cap * sizeof(*v));
		bool *u = trn_realloc(l->up, cap * sizeof(*u));
		if (v != NULL) {
			l->evs = v;
		}
		if (u != NULL) {
			l->up = u;
		}
		if (v == NULL || u == NULL) {
			return;
		}
		l->capevs = cap;
	}
	tr_net_node_event *e = &l->evs[l->nevs];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", p->name);
	e->creation = p->creation;
	e->reason = reason;
	l->up[l->nevs++] = up;
}

/* Run what was gathered; called without the mutex. */
static void
later_run(tr_net *net, struct later *l)
{
	for (size_t i = 0; i < l->nops; i++) {
		(void)net->hook.in(net->rt, &l->ops[i]);
	}
	if (l->nevs > 0) {
		tr_pid *who = NULL;
		size_t n = 0;
		pthread_mutex_lock(&net->mu);
		if (net->nsubs > 0) {
			who = trn_malloc(net->nsubs * sizeof(*who));
			for (size_t i = 0; who != NULL && i < net->nsubs; i++) {
				who[n++] = net->subs[i].who;
			}
		}
		pthread_mutex_unlock(&net->mu);
		tr_ctx *cx = tr_runtime_ctx(net->rt);
		for (size_t i = 0; i < l->nevs; i++) {
			for (size_t j = 0; j < n; j++) {
				(void)tr_send(cx, who[j],
					      l->up[i] ? TR_MSG_NET_NODEUP
						       : TR_MSG_NET_NODEDOWN,
					      &l->evs[i], sizeof(l->evs[i]));
			}
		}
		free(who);
	}
	while (l->told != NULL) {
		struct told *t = l->told;
		l->told = t->next;
		(void)tr_send(tr_runtime_ctx(net->rt), t->to, TRN_MSG_PEERS,
			      t->list, t->len);
		free(t->list);
		free(t);
	}
	free(l->ops);
	free(l->evs);
	free(l->up);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ */
/* Lives: node numbers                                                  */

static uint16_t
life_find(tr_net *net, const char *name, uint32_t creation)
{
	for (uint32_t i = 1; i < net->next_life; i++) {
		struct life *l = net->lives[i];
		if (l != NULL && l->creation == creation &&
		    strcmp(l->name, name) == 0) {
			return (uint16_t)i;
		}
	}
	return 0;
}

/* The number of (name, creation), made if new; 0 when none is left. */
static uint16_t
life_get(tr_net *net, const char *name, uint32_t creation)
{
	uint16_t n = life_find(net, name, creation);

	if (n != 0 || net->next_life > LIVES_MAX) {
		return n;
	}
	struct life *l = trn_calloc(1, sizeof(*l));
	if (l == NULL) {
		return 0;
	}
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->creation = creation;
	n = (uint16_t)net->next_life++;
	net->lives[n] = l;
	return n;
}

/* ------------------------------------------------------------------ */
/* Tracks                                                              */

/*
 * A peer's tracks: an array (failed in one pass when the link is lost)
 * with an open-addressing index over it, so that adding and dropping one
 * costs the same with ten or a million in flight. REQ and MON are keyed
 * by their reference and local pid (references are unique), LINK by its
 * two pids. The index holds positions + 1; 0 is an empty slot.
 */
static uint64_t
track_hash(uint8_t kind, tr_pid local, tr_pid remote, uint64_t ref)
{
	uint64_t h =
		kind == TRACK_LINK
			? local.v ^ (remote.v * UINT64_C(0x9E3779B97F4A7C15))
			: ref ^ (local.v * UINT64_C(0xC2B2AE3D27D4EB4F));
	h ^= h >> 31;
	h *= UINT64_C(0xBF58476D1CE4E5B9);
	return h ^ (h >> 29);
}

static uint64_t
track_hash_of(const struct track *t)
{
	return track_hash(t->kind == TRACK_LINK ? TRACK_LINK : 0, t->local,
			  t->remote, t->ref);
}

/* Does @t answer a lookup of @kind (0: REQ or MON)? */
static bool
track_is(const struct track *t, uint8_t kind, tr_pid local, tr_pid remote,
	 uint64_t ref)
{
	if (kind == TRACK_LINK) {
		return t->kind == TRACK_LINK && tr_pid_eq(t->local, local) &&
		       tr_pid_eq(t->remote, remote);
	}
	return t->kind != TRACK_LINK && (kind == 0 || t->kind == kind) &&
	       t->ref == ref && tr_pid_eq(t->local, local);
}

/* The index slot holding position @pos of the array. */
static uint32_t
track_slot_of(const struct peer *p, uint32_t pos)
{
	uint32_t mask = p->tidx_cap - 1;
	uint32_t i = (uint32_t)track_hash_of(&p->tracks[pos]) & mask;

	while (p->tidx[i] != pos + 1) {
		i = (i + 1) & mask;
	}
	return i;
}

static void
track_index_put(struct peer *p, uint32_t pos)
{
	uint32_t mask = p->tidx_cap - 1;
	uint32_t i = (uint32_t)track_hash_of(&p->tracks[pos]) & mask;

	while (p->tidx[i] != 0) {
		i = (i + 1) & mask;
	}
	p->tidx[i] = pos + 1;
}

/* Empty index slot @i, moving later entries of the run back into it. */
static void
track_index_del(struct peer *p, uint32_t i)
{
	uint32_t mask = p->tidx_cap - 1;

	p->tidx[i] = 0;
	for (uint32_t j = (i + 1) & mask; p->tidx[j] != 0; j = (j + 1) & mask) {
		uint32_t home =
			(uint32_t)track_hash_of(&p->tracks[p->tidx[j] - 1]) &
			mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			p->tidx[i] = p->tidx[j];
			p->tidx[j] = 0;
			i = j;
		}
	}
}

/* Position of the track a lookup finds, or -1. */
static int64_t
track_find(const struct peer *p, uint8_t kind, tr_pid local, tr_pid remote,
	   uint64_t ref)
{
	if (p->ntracks == 0) {
		return -1;
	}
	uint32_t mask = p->tidx_cap - 1;
	uint64_t h = track_hash(kind == TRACK_LINK ? TRACK_LINK : 0, local,
				remote, ref);
	for (uint32_t i = (uint32_t)h & mask; p->tidx[i] != 0;
	     i = (i + 1) & mask) {
		uint32_t pos = p->tidx[i] - 1;
		if (track_is(&p->tracks[pos], kind, local, remote, ref)) {
			return pos;
		}
	}
	return -1;
}

/* Room for one more track and its index entry; false without memory. */
static bool
track_room(struct peer *p)
{
	if (p->ntracks == p->captracks) {
		size_t cap = p->captracks ? 2 * p->captracks : 16;
		if (cap > UINT32_MAX / 4) {
			return false;
		}
		struct track *v = trn_realloc(p->tracks, cap * sizeof(*v));
		if (v == NULL) {
			return false;
		}
		p->tracks = v;
		p->captracks = cap;
	}
	if ((p->ntracks + 1) * 2 > p->tidx_cap) {
		uint32_t cap = p->tidx_cap ? 2 * p->tidx_cap : 32;
		uint32_t *idx = trn_calloc(cap, sizeof(*idx));
		if (idx == NULL) {
			return false;
		}
		free(p->tidx);
		p->tidx = idx;
		p->tidx_cap = cap;
		for (uint32_t i = 0; i < p->ntracks; i++) {
			track_index_put(p, i);
		}
	}
	return true;
}

static void
track_add(struct peer *p, uint8_t kind, tr_pid local, tr_pid remote,
	  uint64_t ref)
{
	if (kind == TRACK_LINK && track_find(p, kind, local, remote, 0) >= 0) {
		return;
	}
	if (!track_room(p)) {
		return; /* untracked: a timeout or stop covers it */
	}
	p->tracks[p->ntracks] = (struct track){ kind, local, remote, ref };
	track_index_put(p, (uint32_t)p->ntracks);
	p->ntracks++;
}

/* Remove the tracks of @kind (0: REQ or MON) matching @ref, or for links
 * the one between @local and @remote. */
static void
track_del(struct peer *p, uint8_t kind, tr_pid local, tr_pid remote,
	  uint64_t ref)
{
	int64_t at = track_find(p, kind, local, remote, ref);

	if (at < 0) {
		return;
	}
	uint32_t pos = (uint32_t)at;
	uint32_t last = (uint32_t)p->ntracks - 1;
	track_index_del(p, track_slot_of(p, pos));
	if (pos != last) {
		/* The last one moves into the hole: its entry follows. */
		p->tidx[track_slot_of(p, last)] = pos + 1;
		p->tracks[pos] = p->tracks[last];
	}
	p->ntracks--;
}

static void
tracks_fail(struct peer *p, struct later *l)
{
	for (size_t i = 0; i < p->ntracks; i++) {
		struct track *t = &p->tracks[i];
		tr_remote_op op = { .from = t->remote,
				    .to = t->local,
				    .who = t->remote,
				    .reason = TR_EXIT_NOCONNECTION };
		if (t->kind == TRACK_LINK) {
			op.kind = TR_REMOTE_EXIT;
			op.link_ended = true;
		} else {
			op.kind = TR_REMOTE_DOWN;
			op.ref.v = t->ref;
		}
		later_op(l, &op);
	}
	p->ntracks = 0;
	if (p->tidx != NULL) {
		memset(p->tidx, 0, p->tidx_cap * sizeof(*p->tidx));
	}
}

/* ------------------------------------------------------------------ */
/* Connections: sending                                                */

static void conn_close(struct conn *c, struct later *l, int32_t why);

/*
 * A TLS handshake that failed: a certificate of no trusted CA or pin, an
 * expired one, a peer that sent no certificate, bytes that are not TLS
 * (a plain tcp peer). nng 1.5 reports it as NNG_ECRYPTO on the first
 * send or receive of the stream (NNG_EPEERAUTH, NNG_EPROTO and a failed
 * dial are taken too, for other versions and engines); the caller counts
 * it once, as a refused connection. The side whose check failed always
 * sees it. The side it refused sees NNG_ECRYPTO when the alert reaches
 * it before the hang-up, and a plain close (not counted) otherwise: nng
 * does not say which side's check failed.
 */
static bool
tls_refusal(const tr_net *net, int rv)
{
	return net->tls_server != NULL &&
	       (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO || rv == NNG_EPROTO);
}

/* A send or receive of @c ended with @rv before it was closed. */
static void
conn_failed(struct conn *c, int rv)
{
	if (c->state != C_UP && c->state != C_CLOSED &&
	    tls_refusal(c->net, rv)) {
		c->net->refused++;
		if (c->peer != NULL) {
			c->peer->refused++;
		}
	}
}

/* A peer's gate (hold_back): sent nothing, it never runs a turn. */
static void
gate_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	tr_unhandled(cx, m);
}

static const tr_actor_def gate_def = {
	.size = sizeof(tr_actor_def),
	.name = "net-gate",
	.handle = gate_handle,
};

/*
 * Backpressure. Past half its bound a link holds back the actors that
 * send to it: the runtime mutes each on the peer's gate (an actor that
 * is sent nothing) at the end of its turn, as it mutes a sender to an
 * overloaded actor; once the link has drained to a quarter, or closed,
 * they all go on. Past the bound itself a send is refused: holding back
 * acts between turns, and a turn may send a lot.
 */
static void
hold_back(struct conn *c, struct peer *p, tr_remote_op *op)
{
	tr_net *net = c->net;

	/* Held again on every send past the mark: the gate's first turn
	 * (its start) clears the flag if it comes after the first hold. */
	if (!tr_pid_is_none(p->gate) &&
	    trn_txq_queued(&c->txq) > net->cfg.link_bytes / 2 &&
	    net->hook.hold(net->rt, p->gate, true) == TR_OK &&
	    tr_pid_is_none(c->held)) {
		c->held = p->gate;
		net->held++;
	}
	op->hold = c->held;
}

static void
let_go(struct conn *c)
{
	tr_net *net = c->net;

	(void)net->hook.hold(net->rt, c->held, false);
	c->held = TR_PID_NONE;
}

static void
tx_submit(struct conn *c)
{
	trn_batch *b = c->tx;
	nng_iov iov[2];
	unsigned n = 0;

	if (c->tx_off < 4) {
		iov[n].iov_buf = b->hdr + c->tx_off;
		iov[n].iov_len = 4 - c->tx_off;
		n++;
		iov[n].iov_buf = b->data;
		iov[n].iov_len = b->len;
		n++;
	} else {
		iov[n].iov_buf = b->data + (c->tx_off - 4);
		iov[n].iov_len = b->len - (c->tx_off - 4);
		n++;
	}
	(void)nng_aio_set_iov(c->tx_aio, n, iov);
	nng_stream_send(c->s, c->tx_aio);
}

/* Start sending the next batch, unless one is under way. */
static void
tx_kick(struct conn *c)
{
	if (c->tx != NULL || c->state == C_CLOSED) {
		return;
	}
	c->tx = trn_txq_next(&c->txq);
	if (c->tx == NULL) {
		return; /* nothing, or no memory: the ticker tries again */
	}
	c->tx_off = 0;
	c->last_tx = now_ms();
	tx_submit(c);
}

static void
tx_done(void *arg)
{
	struct conn *c = arg;
	tr_net *net = c->net;
	struct later l = { 0 };
	int rv = nng_aio_result(c->tx_aio);

	pthread_mutex_lock(&net->mu);
	if (rv != 0 || c->state == C_CLOSED) {
		conn_failed(c, rv);
		conn_close(c, &l, TR_EXIT_NOCONNECTION);
	} else {
		c->tx_off += nng_aio_count(c->tx_aio);
		if (c->tx_off < c->tx->len + 4) {
			tx_submit(c); /* a partial write */
		} else {
			trn_txq_done(&c->txq, c->tx);
			c->tx = NULL;
			tx_kick(c);
			if (!tr_pid_is_none(c->held) &&
			    trn_txq_queued(&c->txq) <=
				    net->cfg.link_bytes / 4) {
				let_go(c);
			}
		}
	}
	pthread_mutex_unlock(&net->mu);
	later_run(net, &l);
}

/* Queue one whole message (a handshake message) as its own batch. */
static int
queue_raw(struct conn *c, char *data, size_t len)
{
	if (trn_txq_raw(&c->txq, data, len) != TRN_OK) {
		return -1;
	}
	tx_kick(c);
	return 0;
}

/* Queue a frame of the link's own (no pair). */
static int
queue_frame(struct conn *c, const trn_frame *f)
{
	return trn_txq_frame(&c->txq, f, 0, 0, TRN_CHUNK_SIZE_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* Pids: a node's view <-> the wire                                    */

/* The wire pid of @p on connection @c; false for a node @c cannot name. */
static bool
wire_of(tr_net *net, struct conn *c, tr_pid p, uint64_t *w)
{
	uint32_t node = tr_pid_node(p);

	if (tr_pid_is_none(p)) {
		*w = 0;
		return true;
	}
	if (node == 0) {
		*w = trn_wpid(TRN_TAG_SENDER, tr_remote_pid_local(p));
		return true;
	}
	if (node == c->peer->node) {
		*w = trn_wpid(TRN_TAG_RECEIVER, tr_remote_pid_local(p));
		return true;
	}
	struct life *l = net->lives[node];
	trn_buf *b = trn_txq_node_buf(&c->txq);
	uint16_t tag;
	size_t before = b != NULL ? b->len : 0;
	if (l == NULL || b == NULL ||
	    trn_tags_put(&c->tags_out, b, l->name, strlen(l->name), l->creation,
			 &tag) != TRN_OK) {
		return false;
	}
	if (b->len != before) {
		trn_txq_node_added(&c->txq, b->len - before);
	}
	*w = trn_wpid(tag, tr_remote_pid_local(p));
	return true;
}

/* This node's view of wire pid @w from connection @c. */
static bool
pid_of(tr_net *net, struct conn *c, uint64_t w, tr_pid *p)
{
	uint16_t tag = trn_wpid_tag(w);
	uint64_t local = trn_wpid_local(w);

	switch (tag) {
	case TRN_TAG_NONE:
		*p = TR_PID_NONE;
		return local == 0;
	case TRN_TAG_SENDER:
		*p = tr_remote_pid(c->peer->node, local);
		return true;
	case TRN_TAG_RECEIVER:
		*p = tr_remote_pid(0, local);
		return true;
	default:
		break;
	}
	uint16_t node = c->tag_node[tag];
	if (node == 0) {
		const trn_node *n = trn_tags_get(&c->tags_in, tag);
		if (n == NULL) {
			return false;
		}
		if (n->creation == net->creation &&
		    strcmp(n->name, net->name) == 0) {
			*p = tr_remote_pid(0, local); /* ours, come back */
			return true;
		}
		node = life_get(net, n->name, n->creation);
		if (node == 0) {
			return false;
		}
		c->tag_node[tag] = node;
	}
	*p = tr_remote_pid(node, local);
	return true;
}

/* ------------------------------------------------------------------ */
/* The hook's out                                                      */

static const uint8_t kind_of_op[] = {
	[TR_REMOTE_SEND] = TRN_SEND,
	[TR_REMOTE_LINK] = TRN_LINK,
	[TR_REMOTE_UNLINK] = TRN_UNLINK,
	[TR_REMOTE_EXIT] = TRN_EXIT,
	[TR_REMOTE_STOP] = TRN_EXIT,
	[TR_REMOTE_MONITOR] = TRN_MONITOR,
	[TR_REMOTE_DEMONITOR] = TRN_DEMONITOR,
	[TR_REMOTE_DOWN] = TRN_DOWN,
};

/* What @op tells the tracks of @p (out: it leaves; in: it arrived). */
static void
track_op(struct peer *p, const tr_remote_op *op, bool out)
{
	tr_pid local = out ? op->from : op->to;
	tr_pid remote = out ? op->to : op->from;

	switch (op->kind) {
	case TR_REMOTE_SEND:
		if (out && (op->flags & TR_MSG_F_REQUEST) &&
		    !tr_pid_is_none(local)) {
			track_add(p, TRACK_REQ, local, remote, op->ref.v);
		} else if (!out && (op->flags & TR_MSG_F_REPLY)) {
			track_del(p, TRACK_REQ, local, remote, op->ref.v);
		}
		break;
	case TR_REMOTE_MONITOR:
		if (out) {
			track_add(p, TRACK_MON, local, remote, op->ref.v);
		}
		break;
	case TR_REMOTE_DEMONITOR:
		if (out) {
			track_del(p, TRACK_MON, local, remote, op->ref.v);
		}
		break;
	case TR_REMOTE_DOWN:
		if (!out) {
			track_del(p, 0, local, remote, op->ref.v);
		}
		break;
	case TR_REMOTE_LINK:
		track_add(p, TRACK_LINK, local, remote, 0);
		break;
	case TR_REMOTE_UNLINK:
		track_del(p, TRACK_LINK, local, remote, 0);
		break;
	case TR_REMOTE_EXIT:
		if (op->link_ended) {
			track_del(p, TRACK_LINK, local, remote, 0);
		}
		break;
	default:
		break;
	}
}

static tr_err
net_out(void *arg, tr_remote_op *op)
{
	tr_net *net = arg;
	uint32_t node = tr_pid_node(op->to);
	tr_err err = TR_EUNREACH;

	if (op->kind == 0 || op->kind > TR_REMOTE_DOWN || node == 0) {
		return TR_EUNREACH;
	}
	pthread_mutex_lock(&net->mu);
	struct life *l = !net->stopped ? net->lives[node] : NULL;
	struct peer *p = l != NULL ? l->peer : NULL;
	struct conn *c = p != NULL && p->node == node ? p->conn : NULL;
	trn_frame f;
	memset(&f, 0, sizeof(f));
	if (c == NULL || c->state != C_UP) {
		goto out;
	}
	if (trn_txq_queued(&c->txq) + op->size > net->cfg.link_bytes) {
		net->sends_refused++;
		goto out;
	}
	f.kind = kind_of_op[op->kind];
	f.reason = op->reason;
	f.ref = op->ref.v;
	if (!wire_of(net, c, op->from, &f.from) ||
	    !wire_of(net, c, op->to, &f.to) ||
	    !wire_of(net, c, op->who, &f.who)) {
		goto out;
	}
	switch (op->kind) {
	case TR_REMOTE_SEND:
		f.type = op->type;
		f.flags = (op->flags & TR_MSG_F_REQUEST ? TRN_F_REQUEST : 0) |
			  (op->flags & TR_MSG_F_REPLY ? TRN_F_REPLY : 0);
		if (f.flags == 0) {
			f.ref = 0;
		}
		f.body = op->data;
		f.body_len = (uint32_t)op->size;
		break;
	case TR_REMOTE_EXIT:
		/* An exit signal is always from its sender: who is implied. */
		f.flags = op->link_ended ? TRN_F_LINK_ENDED : 0;
		f.who = 0;
		break;
	case TR_REMOTE_STOP:
		f.flags = TRN_F_STOP;
		break;
	case TR_REMOTE_DOWN:
		/* A DOWN is about who, the only sender it has. */
		f.from = 0;
		break;
	default:
		break;
	}
	/* A large SEND leaves in chunks between other traffic; the pair's
	 * order holds (net/txq.h). */
	int rv = trn_txq_frame(&c->txq, &f, op->from.v, op->to.v,
			       TRN_CHUNK_SIZE_DEFAULT);
	if (rv != TRN_OK) {
		goto out;
	}
	p->sent++;
	track_op(p, op, true);
	tx_kick(c);
	hold_back(c, p, op);
	err = TR_OK;
out:
	pthread_mutex_unlock(&net->mu);
	return err;
}

static void
net_release(void *arg)
{
	tr_net *net = arg;

	pthread_mutex_destroy(&net->mu);
	pthread_cond_destroy(&net->tick_cv);
	free(net->defs);
	free(net);
}

/* ------------------------------------------------------------------ */
/* Connections: receiving                                              */

static void rx_start(struct conn *c);

/* One frame of an UP connection, to an operation for `in`. */
static bool
op_from_frame(tr_net *net, struct conn *c, const trn_frame *f, tr_remote_op *op)
{
	memset(op, 0, sizeof(*op));
	if (!pid_of(net, c, f->from, &op->from) ||
	    !pid_of(net, c, f->to, &op->to) ||
	    !pid_of(net, c, f->who, &op->who)) {
		return false;
	}
	op->ref.v = f->ref;
	op->reason = f->reason;
	switch (f->kind) {
	case TRN_SEND:
		op->kind = TR_REMOTE_SEND;
		op->type = f->type;
		op->flags = (f->flags & TRN_F_REQUEST ? TR_MSG_F_REQUEST : 0) |
			    (f->flags & TRN_F_REPLY ? TR_MSG_F_REPLY : 0);
		op->data = f->body;
		op->size = f->body_len;
		return true;
	case TRN_LINK:
		op->kind = TR_REMOTE_LINK;
		return true;
	case TRN_UNLINK:
		op->kind = TR_REMOTE_UNLINK;
		return true;
	case TRN_EXIT:
		if (f->flags & TRN_F_STOP) {
			op->kind = TR_REMOTE_STOP;
			return (f->flags & TRN_F_LINK_ENDED) == 0;
		}
		op->kind = TR_REMOTE_EXIT;
		op->who = op->from;
		op->link_ended = (f->flags & TRN_F_LINK_ENDED) != 0;
		return true;
	case TRN_MONITOR:
		op->kind = TR_REMOTE_MONITOR;
		return true;
	case TRN_DEMONITOR:
		op->kind = TR_REMOTE_DEMONITOR;
		return true;
	case TRN_DOWN:
		op->kind = TR_REMOTE_DOWN;
		op->from = op->who;
		return true;
	default:
		return false;
	}
}

/* A refused frame: counted; a peer that keeps sending them is closed. */
static void
refuse(struct conn *c, struct later *l)
{
	if (c->state != C_UP) {
		c->net->refused++;
		return; /* the caller closes it */
	}
	c->net->frames_refused++;
	if (c->peer != NULL) {
		c->peer->refused++;
	}
	if (++c->refusals > REFUSALS_MAX) {
		conn_close(c, l, TR_EXIT_NOCONNECTION);
	}
}

/* The frames of one batch; called with the mutex held, drops it to hand
 * each operation in. Returns false when the connection closed. */
static bool
rx_frames(tr_net *net, struct conn *c, const uint8_t *batch, size_t len,
	  struct later *l)
{
	trn_reader r;
	trn_frame f;
	int rv;

	trn_reader_init(&r, batch, len, TRN_BODY_MAX_DEFAULT, &c->tags_in);
	while ((rv = trn_reader_next(&r, &f)) != 0) {
		if (rv < 0) {
			refuse(c, l);
			if (r.broken || c->state == C_CLOSED) {
				conn_close(c, l, TR_EXIT_NOCONNECTION);
				return false;
			}
			continue;
		}
		if (f.kind == TRN_HEARTBEAT || f.kind == TRN_NODE) {
			continue;
		}
		uint8_t *whole = NULL;
		if (f.kind == TRN_CHUNK) {
			trn_frame done;
			int got = trn_reasm_add(&c->reasm, &f, &done, &whole);
			if (got < 0) {
				refuse(c, l);
				continue;
			}
			if (got == 0) {
				continue;
			}
			f = done;
		}
		tr_remote_op op;
		if (!op_from_frame(net, c, &f, &op) ||
		    tr_pid_node(op.to) != 0) {
			free(whole);
			refuse(c, l);
			continue;
		}
		c->peer->received++;
		track_op(c->peer, &op, false);
		pthread_mutex_unlock(&net->mu);
		tr_err err = net->hook.in(net->rt, &op);
		pthread_mutex_lock(&net->mu);
		free(whole);
		if (err == TR_EINVAL) {
			refuse(c, l);
		}
		if (c->state == C_CLOSED) {
			return false;
		}
	}
	return true;
}

static void conn_up(struct conn *c, struct later *l);
static void tell_peers(tr_net *net, struct peer *to, struct later *l);
static tr_err peer_dial(tr_net *net, const char *url);

/* A whole message arrived: a handshake step, or a batch of frames. */
static void
rx_message(struct conn *c, const uint8_t *msg, size_t len, struct later *l)
{
	tr_net *net = c->net;
	uint8_t mac[TRN_MAC_SIZE];

	switch (c->state) {
	case C_HELLO: {
		char *resp = NULL;
		size_t rlen = 0;
		if (trn_hello_parse((const char *)msg, len, &c->theirs) !=
			    TRN_HS_OK ||
		    trn_hs_mac(net->secret, net->secret_len,
			       c->dialed ? TRN_ROLE_DIALER : TRN_ROLE_LISTENER,
			       &c->own, &c->theirs, mac) != TRN_HS_OK ||
		    trn_response_encode(mac, &resp, &rlen) != TRN_HS_OK) {
			refuse(c, l);
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
		c->state = C_RESPONSE;
		(void)queue_raw(c, resp, rlen);
		return;
	}
	case C_RESPONSE:
		if (trn_response_parse((const char *)msg, len, mac) !=
			    TRN_HS_OK ||
		    trn_hs_verify(net->secret, net->secret_len,
				  c->dialed ? TRN_ROLE_LISTENER
					    : TRN_ROLE_DIALER,
				  &c->own, &c->theirs, mac) != TRN_HS_OK) {
			refuse(c, l);
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
		conn_up(c, l);
		return;
	case C_UP:
		(void)rx_frames(net, c, msg, len, l);
		return;
	default:
		return;
	}
}

/* Read what the stream has, as much as the buffer takes. */
static void
rx_submit(struct conn *c)
{
	nng_iov iov;

	iov.iov_buf = c->rx_buf + c->rx_len;
	iov.iov_len = c->rx_cap - c->rx_len;
	(void)nng_aio_set_iov(c->rx_aio, 1, &iov);
	nng_stream_recv(c->s, c->rx_aio);
}

static void
rx_start(struct conn *c)
{
	c->rx_buf = trn_malloc(RX_BUF);
	if (c->rx_buf == NULL) {
		return; /* the handshake's timeout closes it */
	}
	c->rx_cap = RX_BUF;
	c->rx_len = 0;
	rx_submit(c);
}

/*
 * Decoding a link's frames and handing them in runs on a worker, not on
 * nng's thread that read them: there the messages are built from the
 * worker's cache and queued where their receivers run, and the reading
 * thread only reads. A link's reader hands each read's whole messages,
 * with the buffer they are in, to its peer's rx actor, in order: it reads
 * again only after the hand-off. `c` stays allocated while a batch is
 * pending (closed_take() skips it), and a batch the runtime drops unread
 * frees its buffer only.
 */
struct rx_batch {
	struct conn *c;
	uint8_t *buf;
	size_t off, end; /* [off, end): whole length-prefixed messages */
};

static void
rx_batch_free(void *p)
{
	struct rx_batch *b = p;

	free(b->buf);
	free(b);
}

static void
rx_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type != TRN_MSG_RX || !tr_pid_is_none(m->from) ||
	    (m->flags & TR_MSG_F_PTR) == 0 ||
	    m->size != sizeof(struct rx_batch)) {
		tr_unhandled(cx, m);
		return;
	}
	const struct rx_batch *b = m->data;
	struct conn *c = b->c;
	tr_net *net = c->net;
	struct later l = { 0 };

	pthread_mutex_lock(&net->mu);
	for (size_t off = b->off; off < b->end && c->state == C_UP;) {
		size_t len = trn_get32(b->buf + off);
		if (!rx_frames(net, c, b->buf + off + 4, len, &l)) {
			break;
		}
		off += 4 + len;
	}
	c->rx_pending--;
	if (c->rx_paused && c->state != C_CLOSED &&
	    c->rx_pending <= RX_PENDING_MAX / 2) {
		c->rx_paused = false;
		c->last_rx = now_ms(); /* it was not silent, we were slow */
		rx_submit(c);
	}
	pthread_mutex_unlock(&net->mu);
	later_run(net, &l);
}

static const tr_actor_def rx_def = {
	.size = sizeof(tr_actor_def),
	.name = "net-rx",
	.handle = rx_handle,
};

/*
 * Handle every whole message the buffer holds (a read may bring several,
 * or part of one), keep the rest at its start, and make room for a
 * message longer than the buffer. Once the link is up, its whole
 * messages are not handled here but put in *@out, for its actor (rx_def),
 * with the buffer they are in. False when the connection closed.
 */
static bool
rx_messages(struct conn *c, struct later *l, struct rx_batch **out)
{
	size_t off = 0;
	size_t hand = SIZE_MAX; /* where the messages for the actor begin */
	size_t need = 0;        /* a longer buffer the next message needs */

	while (c->rx_len - off >= 4 && c->state != C_CLOSED) {
		size_t len = trn_get32(c->rx_buf + off);
		size_t max = c->state == C_UP ? BATCH_MAX_IN : TRN_HS_MAX;
		if (len == 0 || len > max) {
			/* Checked before anything is allocated for it. */
			refuse(c, l);
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return false;
		}
		if (c->rx_len - off - 4 < len) {
			need = len + 4 > c->rx_cap ? len + 4 : 0;
			break;
		}
		if (c->state == C_UP && !tr_pid_is_none(c->rx)) {
			hand = hand == SIZE_MAX ? off : hand;
		} else {
			/* rx_frames drops the mutex, but only this callback
			 * touches the buffer, and it is not read into until
			 * we return. */
			rx_message(c, c->rx_buf + off + 4, len, l);
		}
		off += 4 + len;
	}
	if (c->state == C_CLOSED) {
		return false;
	}
	if (hand == SIZE_MAX && need == 0) {
		if (off > 0) {
			memmove(c->rx_buf, c->rx_buf + off, c->rx_len - off);
			c->rx_len -= off;
		}
		return true;
	}
	/* A new buffer for what follows: the batch keeps the old one, or
	 * the next message is longer than it. */
	size_t cap = need > c->rx_cap ? need : c->rx_cap;
	uint8_t *buf = trn_malloc(cap);
	struct rx_batch *b = hand != SIZE_MAX ? trn_malloc(sizeof(*b)) : NULL;
	if (buf == NULL || (hand != SIZE_MAX && b == NULL)) {
		free(buf);
		free(b);
		conn_close(c, l, TR_EXIT_NOCONNECTION);
		return false;
	}
	memcpy(buf, c->rx_buf + off, c->rx_len - off);
	if (b != NULL) {
		b->c = c;
		b->buf = c->rx_buf;
		b->off = hand;
		b->end = off;
		*out = b;
	} else {
		free(c->rx_buf);
	}
	c->rx_buf = buf;
	c->rx_cap = cap;
	c->rx_len -= off;
	return true;
}

static void
rx_done(void *arg)
{
	struct conn *c = arg;
	tr_net *net = c->net;
	struct later l = { 0 };
	int rv = nng_aio_result(c->rx_aio);
	struct rx_batch *b = NULL;
	tr_pid to = TR_PID_NONE;

	pthread_mutex_lock(&net->mu);
	if (rv != 0 || c->state == C_CLOSED) {
		conn_failed(c, rv);
		conn_close(c, &l, TR_EXIT_NOCONNECTION);
	} else {
		c->rx_len += nng_aio_count(c->rx_aio);
		c->last_rx = now_ms();
		if (rx_messages(c, &l, &b)) {
			if (b == NULL) {
				rx_submit(c);
			} else {
				c->rx_pending++;
				to = c->rx;
			}
		}
	}
	pthread_mutex_unlock(&net->mu);
	if (b != NULL) {
		/* Outside the mutex: a failed send frees the batch at once.
		 * Read again only after the hand-off, so the actor gets this
		 * link's batches in order (the aio lives until we return). */
		tr_err err =
			tr_send_ptr(tr_runtime_ctx(net->rt), to, TRN_MSG_RX, b,
				    sizeof(*b), rx_batch_free);
		pthread_mutex_lock(&net->mu);
		if (err != TR_OK) {
			c->rx_pending--;
			conn_close(c, &l, TR_EXIT_NOCONNECTION);
		} else if (c->rx_pending >= RX_PENDING_MAX) {
			/* Its receivers do not keep up (the actor is muted on
			 * one, or the workers are busy): stop reading, so the
			 * peer's link fills and holds its senders back, rather
			 * than read into memory here without bound. The actor
			 * reads again once it has caught up by half. */
			c->rx_paused = true;
		} else if (c->state != C_CLOSED) {
			rx_submit(c);
		}
		pthread_mutex_unlock(&net->mu);
	}
	later_run(net, &l);
}

/* ------------------------------------------------------------------ */
/* Connections: life                                                   */

/* A connected stream: say hello and read the peer's. */
static void
conn_new(tr_net *net, nng_stream *s, struct peer *dialed_peer)
{
	struct conn *c = trn_calloc(1, sizeof(*c));
	char *hello = NULL;
	size_t len = 0;
	trn_reasm_limits lim = { TRN_REASM_MESSAGES_DEFAULT,
				 TRN_REASM_BYTES_DEFAULT,
				 TRN_MESSAGE_MAX_DEFAULT };

	bool ok =
		c != NULL && nng_aio_alloc(&c->tx_aio, tx_done, c) == 0 &&
		nng_aio_alloc(&c->rx_aio, rx_done, c) == 0 &&
		trn_reasm_init(&c->reasm, &lim) == TRN_OK &&
		trn_hello_init(&c->own, net->name, net->creation) == TRN_HS_OK;
	if (ok) {
		c->own.service = tr_remote_pid_local(net->service);
		if (strlen(net->address) <= TRN_URL_MAX) {
			memcpy(c->own.listen, net->address,
			       strlen(net->address) + 1);
		}
		ok = trn_hello_encode(&c->own, &hello, &len) == TRN_HS_OK;
	}
	if (!ok) {
		if (c != NULL) {
			nng_aio_free(c->tx_aio);
			nng_aio_free(c->rx_aio);
			trn_reasm_fini(&c->reasm);
			free(c);
		}
		nng_stream_free(s);
		return;
	}
	(void)nng_stream_set_bool(s, NNG_OPT_TCP_NODELAY, true);
	c->net = net;
	c->s = s;
	c->peer = dialed_peer;
	c->dialed = dialed_peer != NULL;
	c->state = C_HELLO;
	c->last_rx = c->last_tx = now_ms();
	trn_txq_init(&c->txq, TRN_BATCH_MAX_DEFAULT);
	trn_tags_init(&c->tags_out);
	trn_tags_init(&c->tags_in);
	c->next = net->conns;
	net->conns = c;
	if (dialed_peer != NULL) {
		dialed_peer->conn = c; /* so the ticker does not dial again */
	}
	(void)queue_raw(c, hello, len);
	rx_start(c);
}

static struct peer *
peer_new(tr_net *net)
{
	struct peer *p = trn_calloc(1, sizeof(*p));

	if (p != NULL) {
		p->net = net;
		p->backoff = net->cfg.reconnect_min_ms;
		p->next = net->peers;
		net->peers = p;
	}
	return p;
}

static struct peer *
peer_named(tr_net *net, const char *name)
{
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (strcmp(p->name, name) == 0) {
			return p;
		}
	}
	return NULL;
}

/*
 * @d (dialing, nameless) takes over every state of @p. @p stays as an
 * idle record without a name (its dial may be under way; it is freed at
 * the stop).
 */
static void
peer_adopt(tr_net *net, struct peer *d, struct peer *p)
{
	snprintf(d->name, sizeof(d->name), "%s", p->name);
	d->creation = p->creation;
	d->node = p->node;
	d->up = p->up;
	d->service = p->service;
	memcpy(d->listen, p->listen, sizeof(d->listen));
	d->conn = p->conn;
	free(d->tracks);
	free(d->tidx);
	d->tracks = p->tracks;
	d->ntracks = p->ntracks;
	d->captracks = p->captracks;
	d->tidx = p->tidx;
	d->tidx_cap = p->tidx_cap;
	if (tr_pid_is_none(d->gate)) {
		d->gate = p->gate;
		p->gate = TR_PID_NONE;
	}
	if (tr_pid_is_none(d->rx)) {
		d->rx = p->rx;
		p->rx = TR_PID_NONE;
	}
	d->sent += p->sent;
	d->received += p->received;
	d->refused += p->refused;
	for (struct conn *c = net->conns; c != NULL; c = c->next) {
		if (c->peer == p) {
			c->peer = d;
		}
	}
	if (d->node != 0 && net->lives[d->node] != NULL) {
		net->lives[d->node]->peer = d;
	}
	p->name[0] = '\0';
	p->url[0] = '\0';
	p->redial = false;
	p->conn = NULL;
	p->tracks = NULL;
	p->ntracks = p->captracks = 0;
	p->tidx = NULL;
	p->tidx_cap = 0;
	p->node = 0;
	p->up = false;
}

/* The end of @p's current life (its connection is closing). */
static void
life_end(tr_net *net, struct peer *p, struct later *l, int32_t why)
{
	(void)net;
	tracks_fail(p, l);
	later_event(l, p, false, why);
	p->up = false;
	p->conn = NULL;
	if (p->redial && !net->stopping) {
		p->retry_at = now_ms() + p->backoff;
	}
}

static void
conn_close(struct conn *c, struct later *l, int32_t why)
{
	if (c->state == C_CLOSED) {
		return;
	}
	bool was_up = c->state == C_UP;
	c->state = C_CLOSED;
	nng_stream_close(c->s);
	if (!tr_pid_is_none(c->held)) {
		let_go(c); /* their sends are dead letters now */
	}
	if (c->peer != NULL && c->peer->conn == c) {
		if (was_up) {
			life_end(c->net, c->peer, l, why);
		} else {
			/* A handshake that failed: dial again later. */
			struct peer *p = c->peer;
			p->conn = NULL;
			p->retry_at = now_ms() + p->backoff;
			p->backoff =
				p->backoff * 2 > c->net->cfg.reconnect_max_ms
					? c->net->cfg.reconnect_max_ms
					: p->backoff * 2;
		}
	}
}

/* The handshake succeeded: @c is the peer's connection from now on. */
static void
conn_up(struct conn *c, struct later *l)
{
	tr_net *net = c->net;
	const trn_hello *h = &c->theirs;
	struct peer *p = peer_named(net, h->name);

	if (strcmp(h->name, net->name) == 0) {
		conn_close(c, l, TR_EXIT_NOCONNECTION); /* ourselves */
		return;
	}
	if (c->peer != NULL && c->peer != p) {
		if (p == NULL) {
			/* A dialed peer learns its name. */
			p = c->peer;
			snprintf(p->name, sizeof(p->name), "%s", h->name);
		} else if (p->dialer == NULL || p->conn == NULL) {
			/* Known by an accepted connection, or dialed at an
			 * address it no longer answers at: this dialing
			 * record takes its place. */
			peer_adopt(net, c->peer, p);
			p = c->peer;
		} else {
			/* Dialed at two addresses: one record dials. */
			c->peer->redial = false;
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
	}
	if (p == NULL) {
		p = peer_new(net);
		if (p == NULL) {
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
		snprintf(p->name, sizeof(p->name), "%s", h->name);
	}
	c->peer = p;
	if (p->conn != NULL && p->conn != c) {
		struct conn *old = p->conn;
		bool same_life =
			p->creation == h->creation && old->state == C_UP;
		/* Both sides dialed at once: keep the connection dialed by
		 * the smaller name, which both sides compute alike. Two
		 * connections dialed by the same side are no such race: the
		 * peer dialed again because it gave the old one up (it
		 * declared this node down while this node was frozen, say),
		 * so the new one wins. */
		bool keep_old =
			same_life && old->dialed != c->dialed &&
			(old->dialed == (strcmp(net->name, h->name) < 0));
		if (keep_old) {
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
		if (same_life) {
			/* The same life goes on over the new connection. */
			old->peer = NULL;
			conn_close(old, l, TR_EXIT_NOCONNECTION);
		} else {
			conn_close(old, l, TR_EXIT_NOCONNECTION);
		}
	}
	if (p->creation != h->creation || p->node == 0) {
		uint16_t node = life_get(net, h->name, h->creation);
		if (node == 0) {
			conn_close(c, l, TR_EXIT_NOCONNECTION);
			return;
		}
		if (p->node != 0 && net->lives[p->node] != NULL) {
			net->lives[p->node]->peer = NULL; /* stale from now */
		}
		p->node = node;
		p->creation = h->creation;
		net->lives[node]->peer = p;
	}
	/* Up again after a NODEDOWN, in a new life or in the same one (a
	 * peer declared down by the silence timeout that answers again,
	 * once its process is resumed after SIGSTOP, say). */
	if (!p->up) {
		p->up = true;
		later_event(l, p, true, 0);
	}
	p->conn = c;
	p->service = h->service;
	memcpy(p->listen, h->listen, sizeof(p->listen));
	p->backoff = net->cfg.reconnect_min_ms;
	if (tr_pid_is_none(p->gate) &&
	    tr_spawn(tr_runtime_ctx(net->rt), &gate_def, NULL, &p->gate) !=
		    TR_OK) {
		p->gate = TR_PID_NONE; /* then a full link only refuses */
	}
	if (!tr_actor_alive(net->rt, p->rx) &&
	    tr_spawn(tr_runtime_ctx(net->rt), &rx_def, NULL, &p->rx) != TR_OK) {
		p->rx = TR_PID_NONE; /* then its reader hands frames in */
	}
	c->rx = p->rx;
	c->state = C_UP;
	tell_peers(net, p, l);
}

/* ------------------------------------------------------------------ */
/* Dialing and accepting                                               */

static void
dial_done(void *arg)
{
	struct peer *p = arg;
	tr_net *net = NULL;
	int rv = nng_aio_result(p->dial_aio);
	nng_stream *s = rv == 0 ? nng_aio_get_output(p->dial_aio, 0) : NULL;

	net = p->net;
	pthread_mutex_lock(&net->mu);
	p->dialing = false;
	if (net->stopping) {
		if (s != NULL) {
			nng_stream_free(s);
		}
	} else if (s != NULL && p->conn != NULL) {
		/*
		 * The peer dialed us while this dial was under way and its
		 * connection is up: keep it. Going on would put this stream
		 * in p->conn over the live one, which would then be nobody's
		 * and, once the peer closes ours, the link would be declared
		 * down while it is up (both sides redialing at once after a
		 * loss, as full-mesh peers do).
		 */
		nng_stream_free(s);
	} else if (s != NULL) {
		conn_new(net, s, p);
	} else {
		if (tls_refusal(net, rv)) {
			net->refused++;
			p->refused++;
		}
		/* Back off: double, with up to a quarter of jitter. */
		uint32_t jitter = 0;
		(void)getrandom(&jitter, sizeof(jitter), 0);
		uint32_t b = p->backoff;
		p->retry_at = now_ms() + b + (b / 4 ? jitter % (b / 4) : 0);
		p->backoff = b * 2 > net->cfg.reconnect_max_ms
				     ? net->cfg.reconnect_max_ms
				     : b * 2;
	}
	pthread_mutex_unlock(&net->mu);
}

static void
accept_done(void *arg)
{
	tr_net *net = arg;
	int rv = nng_aio_result(net->accept_aio);

	pthread_mutex_lock(&net->mu);
	if (rv == 0) {
		nng_stream *s = nng_aio_get_output(net->accept_aio, 0);
		if (net->stopping) {
			nng_stream_free(s);
		} else {
			conn_new(net, s, NULL);
		}
	}
	if (!net->stopping && rv == 0) {
		nng_stream_listener_accept(net->listener, net->accept_aio);
	} else if (!net->stopping && rv != NNG_ECLOSED) {
		net->accept_idle = true;
		net->accept_retry_at = now_ms() + ACCEPT_RETRY_MS;
	}
	pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------------ */
/* The ticker: heartbeats, silence, reconnects, freeing                */

static void
conn_free(struct conn *c)
{
	nng_aio_stop(c->tx_aio);
	nng_aio_stop(c->rx_aio);
	nng_aio_free(c->tx_aio);
	nng_aio_free(c->rx_aio);
	nng_stream_free(c->s);
	trn_batch_free(c->tx);
	trn_txq_fini(&c->txq);
	trn_reasm_fini(&c->reasm);
	free(c->rx_buf);
	free(c);
}

/* Take the closed connections off the list (with the mutex held). */
static struct conn *
closed_take(tr_net *net)
{
	struct conn *dead = NULL;

	for (struct conn **cp = &net->conns; *cp != NULL;) {
		struct conn *c = *cp;
		/* Not while its actor has batches to handle (a stopped
		 * actor handles none: the runtime freed them). */
		if (c->state == C_CLOSED &&
		    (c->rx_pending == 0 || !tr_actor_alive(net->rt, c->rx))) {
			*cp = c->next;
			c->next = dead;
			dead = c;
		} else {
			cp = &c->next;
		}
	}
	return dead;
}

static void
tick(tr_net *net, struct later *l)
{
	uint64_t now = now_ms();

	if (net->accept_idle && now >= net->accept_retry_at && !net->stopping) {
		net->accept_idle = false;
		nng_stream_listener_accept(net->listener, net->accept_aio);
	}
	for (struct conn *c = net->conns; c != NULL; c = c->next) {
		if (c->state == C_CLOSED) {
			continue;
		}
		tx_kick(c); /* after a batch that found no memory */
		/* A link that is not reading has not heard its peer because
		 * this node is behind, not because the peer is silent. */
		if (!c->rx_paused && now - c->last_rx > net->cfg.timeout_ms) {
			if (c->state != C_UP) {
				net->refused++; /* a handshake that stalled */
			}
			conn_close(c, l, TR_EXIT_NOCONNECTION);
		} else if (c->state == C_UP &&
			   now - c->last_tx >= net->cfg.heartbeat_ms) {
			trn_frame f = { .kind = TRN_HEARTBEAT };
			if (queue_frame(c, &f) == TRN_OK) {
				tx_kick(c);
			}
			c->last_tx = now; /* even when full: it is sending */
		}
	}
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (p->redial && p->conn == NULL && !p->dialing &&
		    p->dialer != NULL && now >= p->retry_at) {
			p->dialing = true;
			nng_stream_dialer_dial(p->dialer, p->dial_aio);
		}
	}
}

static void *
ticker_main(void *arg)
{
	tr_net *net = arg;
	uint32_t period = net->cfg.heartbeat_ms / 4;

	if (period > 50 || period == 0) {
		period = 50;
	}
	pthread_mutex_lock(&net->mu);
	while (!net->stopping) {
		struct later l = { 0 };
		tick(net, &l);
		struct conn *dead = closed_take(net);
		pthread_mutex_unlock(&net->mu);
		later_run(net, &l);
		while (dead != NULL) {
			struct conn *c = dead;
			dead = c->next;
			conn_free(c);
		}
		pthread_mutex_lock(&net->mu);
		if (net->stopping) {
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)period * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		(void)pthread_cond_timedwait(&net->tick_cv, &net->mu, &ts);
	}
	pthread_mutex_unlock(&net->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The service: names and spawns for other nodes                       */

/* A NUL-terminated key of 1..TR_NET_KEY_SIZE - 1 bytes. */
static bool
key_valid(const char *k)
{
	return k[0] != '\0' && memchr(k, '\0', TR_NET_KEY_SIZE) != NULL;
}

static const struct netdef *
def_find(tr_net *net, const char *name)
{
	for (size_t i = 0; i < net->ndefs; i++) {
		if (strcmp(net->defs[i].name, name) == 0) {
			return &net->defs[i];
		}
	}
	return NULL;
}

/*
 * What a spawned actor's init gets: its definition, the requester and
 * the flags, then the definition's arg_size bytes. 32 bytes, so the
 * user's argument after it keeps the copy's 16-byte alignment.
 */
struct spawn_arg {
	const struct netdef *nd;
	tr_pid parent;
	uint32_t flags;
	uint32_t has_arg;
	uint64_t pad;
};
_Static_assert(sizeof(struct spawn_arg) % 16 == 0, "alignment of the arg");

/* The init of every actor spawned for another node: the link to the
 * requester comes first, so that even an init that fails reaches it. */
static int
spawned_init(tr_ctx *cx, void *state, void *arg)
{
	struct spawn_arg *a = arg;
	const tr_actor_def *user = a->nd->user;

	if ((a->flags & TR_NET_SPAWN_LINK) && tr_link(cx, a->parent) != TR_OK) {
		return -1;
	}
	if (user->init == NULL) {
		return 0;
	}
	return user->init(cx, state, a->has_arg ? (void *)(a + 1) : NULL);
}

static void
svc_send_name(tr_ctx *cx, tr_net *net, const tr_msg *m)
{
	const tr_net_send *rq = TR_MSG_AS_FAM(m, tr_net_send, len, data);
	tr_pid to = TR_PID_NONE;
	/* The sender must be remote, or nobody: `in` gives the holder the
	 * message as from it, which a local sender cannot be. */
	bool ok = rq != NULL && key_valid(rq->name) &&
		  rq->type < TR_MSG_SYSTEM_BASE && net->registry != NULL &&
		  (tr_pid_is_none(m->from) || tr_pid_node(m->from) != 0) &&
		  tr_registry_whereis(net->registry, rq->name, &to) == TR_OK;

	if (ok) {
		tr_remote_op op = { .kind = TR_REMOTE_SEND,
				    .type = rq->type,
				    .from = m->from,
				    .to = to,
				    .data = rq->len > 0 ? rq->data : NULL,
				    .size = rq->len };
		ok = net->hook.in(net->rt, &op) == TR_OK;
	}
	if (ok) {
		atomic_fetch_add_explicit(&net->names_sent, 1,
					  memory_order_relaxed);
	} else {
		/* No such name: a counted dead letter here, as Erlang drops
		 * it (silently there). */
		atomic_fetch_add_explicit(&net->names_missed, 1,
					  memory_order_relaxed);
		(void)tr_unhandled(cx, m);
	}
}

static void
svc_whereis(tr_ctx *cx, tr_net *net, const tr_msg *m)
{
	const tr_net_name *rq = TR_MSG_AS(m, tr_net_name);
	tr_net_pid_reply rep;
	tr_pid pid = TR_PID_NONE;

	memset(&rep, 0, sizeof(rep));
	if (rq == NULL || !key_valid(rq->name)) {
		rep.status = TR_EINVAL;
	} else if (net->registry == NULL) {
		rep.status = TR_ENOENT;
	} else {
		rep.status = tr_registry_whereis(net->registry, rq->name, &pid);
	}
	if (rep.status == TR_OK) {
		rep.status = tr_net_pid_encode(net, pid, rep.pid);
	}
	atomic_fetch_add_explicit(&net->lookups, 1, memory_order_relaxed);
	(void)tr_reply(cx, m, TR_MSG_NET_PID, &rep, sizeof(rep));
}

static void
svc_spawn(tr_ctx *cx, tr_net *net, const tr_msg *m)
{
	const tr_net_spawn *rq = TR_MSG_AS_FAM(m, tr_net_spawn, arg_len, arg);
	const struct netdef *nd = NULL;
	tr_net_pid_reply rep;
	tr_pid child = TR_PID_NONE;

	memset(&rep, 0, sizeof(rep));
	if (rq == NULL || !key_valid(rq->def) ||
	    (rq->flags & ~TR_NET_SPAWN_LINK) != 0 ||
	    ((rq->flags & TR_NET_SPAWN_LINK) && tr_pid_is_none(m->from))) {
		rep.status = TR_EINVAL;
	} else if ((nd = def_find(net, rq->def)) == NULL) {
		rep.status = TR_ENOENT;
	} else if (rq->arg_len != 0 && rq->arg_len != nd->user->arg_size) {
		rep.status = TR_EINVAL;
	} else {
		size_t total = sizeof(struct spawn_arg) + nd->user->arg_size;
		struct spawn_arg *a = trn_calloc(1, total);
		if (a == NULL) {
			rep.status = TR_ENOMEM;
		} else {
			a->nd = nd;
			a->parent = m->from;
			a->flags = rq->flags;
			a->has_arg = rq->arg_len != 0;
			if (rq->arg_len != 0) {
				memcpy(a + 1, rq->arg, rq->arg_len);
			}
			/* The spawn copies the argument (arg_size is set). */
			rep.status = tr_spawn(cx, &nd->wrapped, a, &child);
			free(a);
		}
	}
	if (rep.status == TR_OK) {
		rep.status = tr_net_pid_encode(net, child, rep.pid);
	}
	atomic_fetch_add_explicit(rep.status == TR_OK ? &net->spawned
						      : &net->spawns_refused,
				  1, memory_order_relaxed);
	(void)tr_reply(cx, m, TR_MSG_NET_PID, &rep, sizeof(rep));
}

/* The peers up besides @to that can be dialed, for @to's service: sent
 * once the mutex is dropped. */
static void
tell_peers(tr_net *net, struct peer *to, struct later *l)
{
	size_t n = 0;

	if (to->service == 0) {
		return;
	}
	struct told *t = trn_calloc(1, sizeof(*t));
	struct peers *list =
		trn_calloc(1, sizeof(*list) + PEERS_MAX * sizeof(list->v[0]));
	if (t == NULL || list == NULL) {
		free(t);
		free(list);
		return; /* the mesh waits for the next link to come up */
	}
	for (struct peer *p = net->peers; p != NULL && n < PEERS_MAX;
	     p = p->next) {
		const char *url = p->url[0] != '\0' ? p->url : p->listen;
		if (p == to || p->conn == NULL || p->conn->state != C_UP ||
		    url[0] == '\0' || strlen(url) > TRN_URL_MAX) {
			continue;
		}
		snprintf(list->v[n].name, sizeof(list->v[n].name), "%s",
			 p->name);
		memcpy(list->v[n].url, url, strlen(url) + 1);
		n++;
	}
	if (n == 0) {
		free(t);
		free(list);
		return; /* nothing it could learn */
	}
	list->count = (uint32_t)n;
	t->to = tr_remote_pid(to->node, to->service);
	t->len = sizeof(*list) + n * sizeof(list->v[0]);
	t->list = list;
	t->next = l->told;
	l->told = t;
}

/* A peer's list: dial the nodes this one does not know. */
static void
svc_peers(tr_ctx *cx, tr_net *net, const tr_msg *m)
{
	const struct peers *list = TR_MSG_AS_FAM(m, struct peers, count, v);

	if (list == NULL || list->count > PEERS_MAX) {
		(void)tr_unhandled(cx, m);
		return;
	}
	pthread_mutex_lock(&net->mu);
	for (uint32_t i = 0; i < list->count && !net->stopping; i++) {
		const struct peer_entry *e = &list->v[i];
		size_t n = strnlen(e->name, sizeof(e->name));
		size_t u = strnlen(e->url, sizeof(e->url));
		if (n == sizeof(e->name) || !trn_name_valid(e->name, n) ||
		    u == 0 || u == sizeof(e->url) ||
		    strcmp(e->name, net->name) == 0 ||
		    peer_named(net, e->name) != NULL) {
			continue;
		}
		(void)peer_dial(net, e->url); /* TR_EEXIST: dialing it */
	}
	pthread_mutex_unlock(&net->mu);
}

struct svc {
	tr_net *net;
};

static int
svc_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	((struct svc *)state)->net = arg;
	return 0;
}

static void
svc_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	tr_net *net = ((struct svc *)state)->net;

	switch (m->type) {
	case TR_MSG_NET_SEND_NAME:
		svc_send_name(cx, net, m);
		break;
	case TR_MSG_NET_WHEREIS:
		svc_whereis(cx, net, m);
		break;
	case TR_MSG_NET_SPAWN:
		svc_spawn(cx, net, m);
		break;
	case TRN_MSG_PEERS:
		svc_peers(cx, net, m);
		break;
	default:
		/* A request gets its outcome (TR_EXIT_UNHANDLED); a plain
		 * message is a counted dead letter. */
		(void)tr_unhandled(cx, m);
		break;
	}
}

static const tr_actor_def svc_def = {
	.size = sizeof(tr_actor_def),
	.name = "net-service",
	.state_size = sizeof(struct svc),
	.init = svc_init,
	.handle = svc_handle,
};

/* Check and copy the spawnable definitions of @cfg. */
static tr_err
defs_copy(tr_net *net, const tr_net_config *cfg)
{
	if (cfg->ndefs == 0) {
		return TR_OK;
	}
	if (cfg->defs == NULL) {
		return TR_EINVAL;
	}
	net->defs = trn_calloc(cfg->ndefs, sizeof(*net->defs));
	if (net->defs == NULL) {
		return TR_ENOMEM;
	}
	for (size_t i = 0; i < cfg->ndefs; i++) {
		const tr_net_def *d = &cfg->defs[i];
		struct netdef *nd = &net->defs[i];
		size_t n = d->name != NULL ? strlen(d->name) : 0;
		if (n == 0 || n >= TR_NET_KEY_SIZE || d->def == NULL ||
		    d->def->size < sizeof(tr_actor_def) ||
		    d->def->handle == NULL || def_find(net, d->name) != NULL) {
			return TR_EINVAL;
		}
		memcpy(nd->name, d->name, n);
		nd->user = d->def;
		nd->wrapped = *d->def;
		nd->wrapped.size = sizeof(tr_actor_def);
		nd->wrapped.init = spawned_init;
		nd->wrapped.arg_size =
			sizeof(struct spawn_arg) + d->def->arg_size;
		net->ndefs = i + 1;
	}
	return TR_OK;
}

tr_err
tr_net_service(tr_net *net, const char *node, tr_pid *out)
{
	tr_err err = TR_ENOENT;

	if (net == NULL || node == NULL || out == NULL) {
		return TR_EINVAL;
	}
	*out = TR_PID_NONE;
	pthread_mutex_lock(&net->mu);
	if (strcmp(node, net->name) == 0) {
		*out = net->service;
		err = TR_OK;
	} else if (node[0] != '\0' && !net->stopped) {
		struct peer *p = peer_named(net, node);
		if (p == NULL || p->node == 0 || p->service == 0) {
			err = TR_ENOENT;
		} else if (p->conn == NULL || p->conn->state != C_UP) {
			err = TR_EUNREACH;
		} else {
			*out = tr_remote_pid(p->node, p->service);
			err = TR_OK;
		}
	}
	pthread_mutex_unlock(&net->mu);
	return err;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */

/* A TLS node dials and listens on tls+tcp only, a plain one never on
 * it: a TLS cluster never falls back to plain tcp, and a told URL of
 * the other kind is not dialed. */
static bool
url_fits(const tr_net *net, const char *url)
{
	bool tls = strncmp(url, "tls+", 4) == 0;

	return net->tls_server != NULL
		       ? strncmp(url, "tls+tcp://", 10) == 0 ||
				 strncmp(url, "tls+tcp4://", 11) == 0 ||
				 strncmp(url, "tls+tcp6://", 11) == 0
		       : !tls;
}

static tr_err
peer_dial(tr_net *net, const char *url)
{
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (strcmp(p->url, url) == 0) {
			return TR_EEXIST;
		}
	}
	if (strlen(url) >= sizeof(((struct peer *)0)->url) ||
	    !url_fits(net, url)) {
		return TR_EINVAL;
	}
	struct peer *p = peer_new(net);
	if (p == NULL) {
		return TR_ENOMEM;
	}
	snprintf(p->url, sizeof(p->url), "%s", url);
	if (nng_stream_dialer_alloc(&p->dialer, url) != 0) {
		p->dialer = NULL;
		return TR_EINVAL; /* the record stays, idle, until the stop */
	}
	if (net->tls_client != NULL &&
	    nng_stream_dialer_set_ptr(p->dialer, NNG_OPT_TLS_CONFIG,
				      net->tls_client) != 0) {
		return TR_EINVAL;
	}
	if (nng_aio_alloc(&p->dial_aio, dial_done, p) != 0) {
		return TR_ENOMEM;
	}
	p->redial = true;
	p->dialing = true;
	nng_stream_dialer_dial(p->dialer, p->dial_aio);
	return TR_OK;
}

tr_err
tr_net_connect(tr_net *net, const char *url)
{
	if (net == NULL || url == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&net->mu);
	tr_err err = net->stopping ? TR_ESTATE : peer_dial(net, url);
	pthread_mutex_unlock(&net->mu);
	return err;
}

tr_err
tr_net_disconnect(tr_net *net, const char *name)
{
	struct later l = { 0 };
	tr_err err = TR_ENOENT;

	if (net == NULL || name == NULL) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&net->mu);
	struct peer *p = peer_named(net, name);
	if (p != NULL) {
		p->redial = false;
		if (p->conn != NULL) {
			conn_close(p->conn, &l, TR_EXIT_NOCONNECTION);
		}
		err = TR_OK;
	}
	pthread_mutex_unlock(&net->mu);
	later_run(net, &l);
	return err;
}

size_t
tr_net_nodes(tr_net *net, tr_net_node *out, size_t cap)
{
	size_t n = 0;

	if (net == NULL) {
		return 0;
	}
	pthread_mutex_lock(&net->mu);
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (p->name[0] == '\0') {
			continue; /* dialed, never answered */
		}
		if (n < cap && out != NULL) {
			tr_net_node *o = &out[n];
			memset(o, 0, sizeof(*o));
			snprintf(o->name, sizeof(o->name), "%s", p->name);
			snprintf(o->url, sizeof(o->url), "%s", p->url);
			o->state = p->conn == NULL          ? TR_NET_DOWN
				   : p->conn->state == C_UP ? TR_NET_UP
							    : TR_NET_CONNECTING;
			o->creation = p->creation;
			o->sent = p->sent;
			o->received = p->received;
			o->refused = p->refused;
		}
		n++;
	}
	pthread_mutex_unlock(&net->mu);
	return n;
}

tr_err
tr_net_monitor_nodes(tr_net *net, tr_pid who, bool on)
{
	tr_err err = TR_OK;

	if (net == NULL || tr_pid_is_none(who)) {
		return TR_EINVAL;
	}
	pthread_mutex_lock(&net->mu);
	size_t i = 0;
	while (i < net->nsubs && !tr_pid_eq(net->subs[i].who, who)) {
		i++;
	}
	if (!on && i < net->nsubs) {
		net->subs[i] = net->subs[--net->nsubs];
	} else if (on && i == net->nsubs) {
		if (net->nsubs == net->capsubs) {
			size_t cap = net->capsubs ? 2 * net->capsubs : 4;
			struct sub *v =
				trn_realloc(net->subs, cap * sizeof(*v));
			if (v == NULL) {
				err = TR_ENOMEM;
				goto out;
			}
			net->subs = v;
			net->capsubs = cap;
		}
		net->subs[net->nsubs++].who = who;
	}
out:
	pthread_mutex_unlock(&net->mu);
	return err;
}

tr_err
tr_net_address(tr_net *net, char *buf, size_t len)
{
	if (net == NULL || buf == NULL) {
		return TR_EINVAL;
	}
	if (net->address[0] == '\0') {
		return TR_ENOENT;
	}
	if (strlen(net->address) >= len) {
		return TR_EINVAL;
	}
	memcpy(buf, net->address, strlen(net->address) + 1);
	return TR_OK;
}

/* The pid bytes: version, name length, name (64), creation, local. */
#define PID_VERSION 1u

tr_err
tr_net_pid_encode(tr_net *net, tr_pid pid, void *buf)
{
	uint8_t *b = buf;
	const char *name = NULL;
	uint32_t creation = 0;

	if (net == NULL || buf == NULL) {
		return TR_EINVAL;
	}
	memset(b, 0, TR_NET_PID_SIZE);
	pthread_mutex_lock(&net->mu);
	uint32_t node = tr_pid_node(pid);
	if (node == 0) {
		name = net->name;
		creation = net->creation;
	} else if (!net->stopped && net->lives[node] != NULL) {
		name = net->lives[node]->name;
		creation = net->lives[node]->creation;
	}
	if (name != NULL) {
		size_t n = strlen(name);
		b[0] = PID_VERSION;
		b[1] = (uint8_t)n;
		memcpy(b + 2, name, n);
		trn_put32(b + 66, creation);
		uint64_t local = tr_remote_pid_local(pid);
		trn_put32(b + 70, (uint32_t)local);
		trn_put32(b + 74, (uint32_t)(local >> 32));
	}
	pthread_mutex_unlock(&net->mu);
	return name != NULL ? TR_OK : TR_ENOENT;
}

tr_err
tr_net_pid_decode(tr_net *net, const void *buf, tr_pid *out)
{
	const uint8_t *b = buf;
	char name[TRN_NAME_MAX + 1];

	if (net == NULL || buf == NULL || out == NULL) {
		return TR_EINVAL;
	}
	size_t n = b[1];
	uint64_t local = trn_get32(b + 70) | (uint64_t)trn_get32(b + 74) << 32;
	if (b[0] != PID_VERSION || !trn_name_valid((const char *)b + 2, n) ||
	    local == 0 || (local & ~(uint64_t)TR_REMOTE_LOCAL_MASK) != 0) {
		return TR_EINVAL;
	}
	memcpy(name, b + 2, n);
	name[n] = '\0';
	uint32_t creation = trn_get32(b + 66);
	tr_err err = TR_OK;
	pthread_mutex_lock(&net->mu);
	if (creation == net->creation && strcmp(name, net->name) == 0) {
		*out = tr_remote_pid(0, local);
	} else {
		uint16_t node =
			net->stopped ? 0 : life_get(net, name, creation);
		*out = tr_remote_pid(node, local);
		err = node != 0 ? TR_OK : TR_ENOMEM;
	}
	pthread_mutex_unlock(&net->mu);
	return err;
}

static tr_err
net_listen(tr_net *net, const char *url)
{
	int port = 0;

	if (!url_fits(net, url) ||
	    nng_stream_listener_alloc(&net->listener, url) != 0) {
		net->listener = NULL;
		return TR_EINVAL;
	}
	if (net->tls_server != NULL &&
	    nng_stream_listener_set_ptr(net->listener, NNG_OPT_TLS_CONFIG,
					net->tls_server) != 0) {
		return TR_EINVAL;
	}
	if (nng_stream_listener_listen(net->listener) != 0) {
		return TR_ESYS;
	}
	if (nng_aio_alloc(&net->accept_aio, accept_done, net) != 0) {
		return TR_ENOMEM;
	}
	/* The URL with the port the system picked for port 0. */
	const char *colon = strrchr(url, ':');
	if (nng_stream_listener_get_int(net->listener, NNG_OPT_TCP_BOUND_PORT,
					&port) == 0 &&
	    colon != NULL) {
		snprintf(net->address, sizeof(net->address), "%.*s:%d",
			 (int)(colon - url), url, port);
	} else {
		snprintf(net->address, sizeof(net->address), "%s", url);
	}
	/* Accepting starts in tr_net_start(), once the hook is attached:
	 * a peer's frames need its `in`. */
	return TR_OK;
}

static void
net_free_io(tr_net *net)
{
	if (net->listener != NULL) {
		nng_stream_listener_close(net->listener);
	}
	if (net->accept_aio != NULL) {
		nng_aio_stop(net->accept_aio);
		nng_aio_free(net->accept_aio);
		net->accept_aio = NULL;
	}
	if (net->listener != NULL) {
		nng_stream_listener_free(net->listener);
		net->listener = NULL;
	}
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (p->dial_aio != NULL) {
			nng_aio_stop(p->dial_aio);
		}
	}
	struct conn *c = net->conns;
	net->conns = NULL;
	while (c != NULL) {
		struct conn *next = c->next;
		conn_free(c);
		c = next;
	}
	while (net->peers != NULL) {
		struct peer *p = net->peers;
		net->peers = p->next;
		if (p->dial_aio != NULL) {
			nng_aio_free(p->dial_aio);
		}
		if (p->dialer != NULL) {
			nng_stream_dialer_free(p->dialer); /* closes it */
		}
		free(p->tracks);
		free(p->tidx);
		free(p);
	}
	for (uint32_t i = 1; i < net->next_life; i++) {
		free(net->lives[i]);
	}
	free(net->lives);
	net->lives = NULL;
	free(net->subs);
	net->subs = NULL;
	free(net->secret);
	net->secret = NULL;
	/* Each listener and dialer held the configuration; they are gone. */
	if (net->tls_server != NULL) {
		nng_tls_config_free(net->tls_server);
		net->tls_server = NULL;
	}
	if (net->tls_client != NULL) {
		nng_tls_config_free(net->tls_client);
		net->tls_client = NULL;
	}
}

/*
 * Mutual TLS: one configuration to accept with and one to dial with,
 * both with this node's certificate and key, the certificates its peers'
 * must chain to (a CA, or the peers' own self-signed ones: a pin), and
 * the peer's certificate REQUIRED. No server name is set: a node is
 * dialed at an address, not at a name its certificate would carry, so
 * the certificate proves membership of the cluster, the secret too, and
 * the name is the hello's.
 */
static tr_err
net_tls(tr_net *net, const tr_net_config *cfg)
{
	if (cfg->tls_cert == NULL && cfg->tls_key == NULL &&
	    cfg->tls_ca == NULL) {
		return TR_OK;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL ||
	    cfg->tls_ca == NULL) {
		return TR_EINVAL;
	}
	nng_tls_config **v[2] = { &net->tls_server, &net->tls_client };
	nng_tls_mode mode[2] = { NNG_TLS_MODE_SERVER, NNG_TLS_MODE_CLIENT };
	for (int i = 0; i < 2; i++) {
		int rv = nng_tls_config_alloc(v[i], mode[i]);
		if (rv != 0) {
			*v[i] = NULL;
			return rv == NNG_ENOMEM ? TR_ENOMEM : TR_ESYS;
		}
		if (nng_tls_config_auth_mode(*v[i],
					     NNG_TLS_AUTH_MODE_REQUIRED) != 0 ||
		    nng_tls_config_ca_chain(*v[i], cfg->tls_ca, NULL) != 0 ||
		    nng_tls_config_own_cert(*v[i], cfg->tls_cert, cfg->tls_key,
					    NULL) != 0) {
			return TR_EINVAL;
		}
	}
	return TR_OK;
}

tr_err
tr_net_start(tr_runtime *rt, const tr_net_config *cfg, tr_net **out)
{
	if (rt == NULL || cfg == NULL || out == NULL ||
	    cfg->size < sizeof(*cfg) || cfg->name == NULL ||
	    !trn_name_valid(cfg->name, strlen(cfg->name)) ||
	    cfg->secret == NULL || cfg->secret_len < 16) {
		return TR_EINVAL;
	}
	tr_net *net = trn_calloc(1, sizeof(*net));
	if (net == NULL) {
		return TR_ENOMEM;
	}
	net->rt = rt;
	net->cfg = *cfg;
	net->cfg.name = NULL;
	net->cfg.listen = NULL;
	net->cfg.seeds = NULL;
	net->cfg.secret = NULL;
	if (net->cfg.heartbeat_ms == 0) {
		net->cfg.heartbeat_ms = 1000;
	}
	if (net->cfg.timeout_ms == 0) {
		net->cfg.timeout_ms = 3000;
	}
	if (net->cfg.reconnect_min_ms == 0) {
		net->cfg.reconnect_min_ms = 100;
	}
	if (net->cfg.reconnect_max_ms < net->cfg.reconnect_min_ms) {
		net->cfg.reconnect_max_ms = net->cfg.reconnect_min_ms > 5000
						    ? net->cfg.reconnect_min_ms
						    : 5000;
	}
	if (net->cfg.link_bytes == 0) {
		net->cfg.link_bytes = 8u << 20;
	}
	net->cfg.registry = NULL;
	net->cfg.defs = NULL;
	net->cfg.tls_cert = NULL;
	net->cfg.tls_key = NULL;
	net->cfg.tls_ca = NULL;
	net->registry = cfg->registry;
	snprintf(net->name, sizeof(net->name), "%s", cfg->name);
	pthread_mutex_init(&net->mu, NULL);
	pthread_cond_init(&net->tick_cv, NULL);
	net->next_life = 1;
	net->lives = trn_calloc(LIVES_MAX + 1, sizeof(*net->lives));
	net->secret = trn_malloc(cfg->secret_len);
	while (net->creation == 0) {
		if (getrandom(&net->creation, sizeof(net->creation), 0) !=
		    sizeof(net->creation)) {
			net->creation = (uint32_t)now_ms() | 1u;
		}
	}
	tr_err err =
		net->lives != NULL && net->secret != NULL ? TR_OK : TR_ENOMEM;
	if (err == TR_OK) {
		err = defs_copy(net, cfg);
	}
	if (err == TR_OK) {
		err = net_tls(net, cfg);
	}
	/* The service first: every hello names it. */
	if (err == TR_OK) {
		err = tr_spawn(tr_runtime_ctx(rt), &svc_def, net,
			       &net->service);
	}
	if (err == TR_OK) {
		memcpy(net->secret, cfg->secret, cfg->secret_len);
		net->secret_len = cfg->secret_len;
		if (cfg->listen != NULL) {
			err = net_listen(net, cfg->listen);
		}
	}
	if (err == TR_OK) {
		net->hook.size = sizeof(net->hook);
		net->hook.out = net_out;
		net->hook.arg = net;
		net->hook.release = net_release;
		err = tr_remote_attach(rt, &net->hook);
	}
	if (err == TR_OK && net->listener != NULL) {
		nng_stream_listener_accept(net->listener, net->accept_aio);
	}
	if (err != TR_OK) {
		if (!tr_pid_is_none(net->service)) {
			/* No one knows its pid: it gets no message. */
			(void)tr_stop(tr_runtime_ctx(rt), net->service,
				      TR_EXIT_SHUTDOWN);
		}
		pthread_mutex_lock(&net->mu);
		net->stopping = true;
		pthread_mutex_unlock(&net->mu);
		net_free_io(net);
		net_release(net);
		return err;
	}
	pthread_mutex_lock(&net->mu);
	for (size_t i = 0; cfg->seeds != NULL && cfg->seeds[i] != NULL; i++) {
		(void)peer_dial(net, cfg->seeds[i]);
	}
	pthread_mutex_unlock(&net->mu);
	if (pthread_create(&net->ticker, NULL, ticker_main, net) == 0) {
		net->ticker_started = true;
	}
	*out = net;
	return TR_OK;
}

void
tr_net_stop(tr_net *net)
{
	struct later l = { 0 };

	if (net == NULL) {
		return;
	}
	/* Gone with the runtime, normally (stopped and joined first). */
	if (tr_actor_alive(net->rt, net->service)) {
		(void)tr_stop(tr_runtime_ctx(net->rt), net->service,
			      TR_EXIT_SHUTDOWN);
	}
	pthread_mutex_lock(&net->mu);
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		if (tr_actor_alive(net->rt, p->gate)) {
			(void)tr_stop(tr_runtime_ctx(net->rt), p->gate,
				      TR_EXIT_SHUTDOWN);
		}
		if (tr_actor_alive(net->rt, p->rx)) {
			(void)tr_stop(tr_runtime_ctx(net->rt), p->rx,
				      TR_EXIT_SHUTDOWN);
		}
	}
	net->stopping = true;
	for (struct conn *c = net->conns; c != NULL; c = c->next) {
		conn_close(c, &l, TR_EXIT_SHUTDOWN);
	}
	pthread_cond_signal(&net->tick_cv);
	pthread_mutex_unlock(&net->mu);
	later_run(net, &l);
	if (net->ticker_started) {
		pthread_join(net->ticker, NULL);
	}
	/* From here `out` refuses and reads nothing net_free_io() frees. */
	pthread_mutex_lock(&net->mu);
	net->stopped = true;
	pthread_mutex_unlock(&net->mu);
	net_free_io(net);
	/* The struct itself stays until the runtime's destroy releases
	 * it: the runtime may still call `out`, which now refuses. */
}

tr_err
tr_net_stats_get(tr_net *net, tr_net_stats *out)
{
	if (net == NULL || out == NULL) {
		return TR_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&net->mu);
	for (struct peer *p = net->peers; p != NULL; p = p->next) {
		out->links_up += p->conn != NULL && p->conn->state == C_UP;
	}
	out->refused = net->refused;
	out->frames_refused = net->frames_refused;
	out->holds = net->held;
	out->sends_refused = net->sends_refused;
	pthread_mutex_unlock(&net->mu);
	out->names_sent = atomic_load(&net->names_sent);
	out->names_missed = atomic_load(&net->names_missed);
	out->lookups = atomic_load(&net->lookups);
	out->spawned = atomic_load(&net->spawned);
	out->spawns_refused = atomic_load(&net->spawns_refused);
	return TR_OK;
}
