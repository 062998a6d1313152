#ifndef TROUPE_NET_NET_H
#define TROUPE_NET_NET_H

/*
 * Distribution over nng (libtroupe-net, pkg-config troupe-net): nodes that
 * address each other's actors with ordinary pids.
 *
 * A node has a name ("alpha") and listens on an nng URL
 * ("tcp://127.0.0.1:7001"). Once two nodes are connected, a pid of one is
 * a pid on the other: tr_send(), tr_request(), tr_reply(), tr_forward(),
 * tr_link(), tr_monitor(), tr_stop() and tr_exit() work on it as on a
 * local pid, and the sender's pid travels with each message so that
 * m->from can be answered. Pointer payloads do not cross nodes
 * (TR_EREMOTE).
 *
 * Guarantees, as Erlang's distribution gives them: order per
 * sender->receiver pair; each message delivered at most once, never
 * twice, also across a reconnect; when a link is lost, every monitor,
 * link and request that crossed it gets its one outcome with
 * TR_EXIT_NOCONNECTION. A node restarted under the same name is a new
 * life of it (a new creation): pids of its earlier life stay stale, and a
 * send to one is a counted dead letter. While a node is down, sends to it
 * are refused at once (TR_EUNREACH, a counted dead letter), never queued.
 *
 * Links prove a shared cluster secret in their handshake
 * (HMAC-SHA256 over both sides' fresh nonces, docs/NET.md); a peer that
 * fails it is refused and counted, and nothing it sent reaches an actor.
 * Heartbeats declare a silent peer (frozen, or behind a dead connection)
 * down within the configured timeout.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_net tr_net;

/** Largest node name, in bytes (names are [A-Za-z0-9_.-]). */
#define TR_NET_NAME_MAX 63

/**
 * struct tr_net_config - How a node joins a cluster.
 * @size:              sizeof(tr_net_config)
 * @name:              this node's name, 1 to TR_NET_NAME_MAX bytes of
 *                     [A-Za-z0-9_.-]
 * @listen:            nng URL to listen on ("tcp://host:port"; port 0
 *                     picks a free one, see tr_net_address()), or NULL
 *                     for a node that only dials
 * @seeds:             URLs of nodes to connect to at start, NULL-ended
 *                     array, or NULL
 * @secret:            the cluster secret (bytes), @secret_len of them,
 *                     at least 16
 * @heartbeat_ms:      a link with nothing else to send sends a heartbeat
 *                     this often (0: 1000)
 * @timeout_ms:        a peer silent this long is declared down (0: 3000)
 * @reconnect_min_ms:  first wait before a dial is tried again (0: 100);
 *                     each failure doubles it, with jitter, up to
 * @reconnect_max_ms:  (0: 5000)
 * @link_bytes:        bytes a link may hold queued for its peer; a send
 *                     past it is refused (TR_EUNREACH, a dead letter)
 *                     (0: 8 MiB)
 */
typedef struct tr_net_config {
	size_t size;
	const char *name;
	const char *listen;
	const char *const *seeds;
	const void *secret;
	size_t secret_len;
	uint32_t heartbeat_ms;
	uint32_t timeout_ms;
	uint32_t reconnect_min_ms;
	uint32_t reconnect_max_ms;
	size_t link_bytes;
} tr_net_config;

/** enum tr_net_state - A peer's state, as tr_net_nodes() reports it. */
typedef enum tr_net_state {
	TR_NET_DOWN = 0,   /* no link; a dial may be pending */
	TR_NET_CONNECTING, /* dialed or accepted, handshake under way */
	TR_NET_UP,         /* handshake done: messages flow */
} tr_net_state;

/**
 * struct tr_net_node - One peer, as tr_net_nodes() reports it.
 * @name:     its name
 * @url:      the URL this node dials it at ("" if it only dialed us)
 * @state:    a tr_net_state
 * @creation: the creation of its current or last life (0: never up)
 * @sent:     frames sent to it over every life
 * @received: frames received from it
 * @refused:  frames or handshakes from it refused (bad frames, a wrong
 *            secret)
 */
typedef struct tr_net_node {
	char name[TR_NET_NAME_MAX + 1];
	char url[128];
	uint32_t state;
	uint32_t creation;
	uint64_t sent;
	uint64_t received;
	uint64_t refused;
} tr_net_node;

/** Message types of the distribution layer: a module slot of the
 * standard actors' range (msg.h). */
#define TR_MSG_NET_BASE (TR_MSG_ACTORS_BASE + 0xF000u)
/** Messages a tr_net_monitor_nodes() subscriber gets. */
#define TR_MSG_NET_NODEUP   (TR_MSG_NET_BASE + 0u) /* tr_net_node_event */
#define TR_MSG_NET_NODEDOWN (TR_MSG_NET_BASE + 1u) /* tr_net_node_event */

/**
 * struct tr_net_node_event - Payload of TR_MSG_NET_NODEUP/NODEDOWN.
 * @name:     the node
 * @creation: its life
 * @reason:   NODEDOWN: TR_EXIT_NOCONNECTION (link lost or timed out), or
 *            TR_EXIT_SHUTDOWN (this node's tr_net_stop()); NODEUP: 0
 */
typedef struct tr_net_node_event {
	char name[TR_NET_NAME_MAX + 1];
	uint32_t creation;
	int32_t reason;
} tr_net_node_event;

/**
 * tr_net_start() - Make @rt a node: listen, dial the seeds, and carry
 * every operation on a remote pid (include/troupe/remote.h).
 * @rt:  a started runtime, with no other distribution layer attached
 * @cfg: the configuration; copied
 * @out: the node
 *
 * Thread:    setup.
 * Return:    TR_OK; TR_EINVAL (a bad name, URL or short secret);
 *            TR_ESTATE (a layer is attached already); TR_ESYS (the
 *            listener could not start: the address is taken, say);
 *            TR_ENOMEM.
 */
TR_API tr_err tr_net_start(tr_runtime *rt, const tr_net_config *cfg,
			   tr_net **out);

/**
 * tr_net_stop() - Close every link and the listener and free the node.
 * Monitors, links and requests across the links get their
 * TR_EXIT_NOCONNECTION outcome first, and node monitors a NODEDOWN.
 * Call it after tr_runtime_join() (the actors' last exit signals and
 * DOWNs still cross) and before tr_runtime_destroy(); nothing may send to
 * a remote pid after it returns.
 * Thread:    setup.
 */
TR_API void tr_net_stop(tr_net *net);

/**
 * tr_net_connect() - Dial the node at @url (and keep dialing it, with
 * back-off, whenever the link is down). Its name is learnt in the
 * handshake. Returns at once.
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (a URL nng does not take); TR_EEXIST
 *            (already dialed); TR_ENOMEM.
 */
TR_API tr_err tr_net_connect(tr_net *net, const char *url);

/**
 * tr_net_disconnect() - Close the link to node @name and stop dialing
 * it; its monitors, links and requests get TR_EXIT_NOCONNECTION.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such peer).
 */
TR_API tr_err tr_net_disconnect(tr_net *net, const char *name);

/**
 * tr_net_nodes() - The peers this node knows.
 * @out: array to fill
 * @cap: its length
 *
 * Thread:    any.
 * Return:    the number of peers (may be more than @cap: only @cap are
 *            written).
 */
TR_API size_t tr_net_nodes(tr_net *net, tr_net_node *out, size_t cap);

/**
 * tr_net_node_pid() - Turn a pid the peer @name wrote in a payload into
 * this node's view of it, and back: the wire carries nodes by name, so a
 * pid inside a payload must be translated by the application (the
 * message's own sender and target are translated by the layer).
 * tr_net_pid_encode() gives the bytes to put in a payload (node name,
 * creation, local part); tr_net_pid_decode() reads them on the other side.
 * @buf: TR_NET_PID_SIZE bytes
 *
 * Thread:    any.
 * Return:    encode: TR_OK, TR_ENOENT (a pid of no node this one knows);
 *            decode: TR_OK, TR_EINVAL (malformed bytes).
 */
#define TR_NET_PID_SIZE 80
TR_API tr_err tr_net_pid_encode(tr_net *net, tr_pid pid, void *buf);
TR_API tr_err tr_net_pid_decode(tr_net *net, const void *buf, tr_pid *out);

/**
 * tr_net_monitor_nodes() - Have @who (an actor or an inbox) told of every
 * peer that comes up (TR_MSG_NET_NODEUP) or goes down
 * (TR_MSG_NET_NODEDOWN), Erlang's net_kernel:monitor_nodes. @on false
 * stops it.
 * Thread:    any.
 * Return:    TR_OK; TR_ENOMEM.
 */
TR_API tr_err tr_net_monitor_nodes(tr_net *net, tr_pid who, bool on);

/**
 * struct tr_net_stats - Totals of a node's distribution layer.
 * @links_up:       peers up now
 * @refused:        connections refused: a bad or failed handshake (a
 *                  wrong secret, garbage, a length over the maximum, a
 *                  silent connection), before any frame was taken
 * @frames_refused: frames refused on authenticated links (malformed, a
 *                  pid of no node, a target that is not local)
 */
typedef struct tr_net_stats {
	uint64_t links_up;
	uint64_t refused;
	uint64_t frames_refused;
} tr_net_stats;

/** tr_net_stats() - Fill @out. Thread: any. Return: TR_OK; TR_EINVAL. */
TR_API tr_err tr_net_stats_get(tr_net *net, tr_net_stats *out);

/**
 * tr_net_address() - The URL this node listens on, with the port the
 * system picked for port 0, into @buf (@len bytes).
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no listener); TR_EINVAL (@len too small).
 */
TR_API tr_err tr_net_address(tr_net *net, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_NET_NET_H */
