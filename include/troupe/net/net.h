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
 * (HMAC-SHA256 over both sides' fresh nonces, docs/NET.md), and, on
 * tls+tcp, run over mutual TLS first (each side's certificate required
 * and checked against the cluster's CA or pinned certificates); a peer
 * that fails either is refused and counted, and nothing it sent reaches
 * an actor.
 * Heartbeats declare a silent peer (frozen, or behind a dead connection)
 * down within the configured timeout.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_net tr_net;
struct tr_registry; /* <troupe/actors/registry.h> */

/** Largest node name, in bytes (names are [A-Za-z0-9_.-]). */
#define TR_NET_NAME_MAX 63

/** Bytes of a registered name or a definition name in a request to a
 * node's service, its terminating NUL included (so at most 63 bytes). */
#define TR_NET_KEY_SIZE 64

/**
 * struct tr_net_def - A definition other nodes may spawn by name
 * (TR_MSG_NET_SPAWN).
 * @name: 1 to TR_NET_KEY_SIZE - 1 bytes
 * @def:  the definition; it must outlive the runtime. Spawn arguments
 *        cross as bytes: with @def->arg_size 0 a spawn takes none (init
 *        gets NULL); otherwise a spawn gives none (NULL) or exactly
 *        @def->arg_size bytes, and init gets a copy.
 */
typedef struct tr_net_def {
	const char *name;
	const tr_actor_def *def;
} tr_net_def;

/**
 * struct tr_net_config - How a node joins a cluster.
 * @size:              sizeof(tr_net_config)
 * @name:              this node's name, 1 to TR_NET_NAME_MAX bytes of
 *                     [A-Za-z0-9_.-]
 * @listen:            nng URL to listen on ("tcp://host:port", or
 *                     "tls+tcp://host:port" with the tls_ fields; port 0
 *                     picks a free one, see tr_net_address()), or NULL
 *                     for a node that only dials. Peers tell each other
 *                     this URL (with the port got), so it must be one
 *                     the cluster's nodes can reach.
 * @seeds:             URLs of nodes to connect to at start, NULL-ended
 *                     array, or NULL; the node then connects to every
 *                     node they know, and they tell it of later ones
 *                     (the transitive full mesh)
 * @secret:            the cluster secret (bytes), @secret_len of them,
 *                     at least 16
 * @heartbeat_ms:      a link with nothing else to send sends a heartbeat
 *                     this often (0: 1000)
 * @timeout_ms:        a peer silent this long is declared down (0: 3000)
 * @reconnect_min_ms:  first wait before a dial is tried again (0: 100);
 *                     each failure doubles it, with jitter, up to
 * @reconnect_max_ms:  (0: 5000)
 * @link_bytes:        bytes a link may hold queued for its peer (0: 8 MiB).
 *                     Past half of it, an actor that sends to the link is
 *                     held back (muted at the end of its turn, as a
 *                     sender to an overloaded actor) until it drained to
 *                     a quarter; a send past the bound itself is refused
 *                     (TR_EUNREACH, a dead letter)
 * @registry:          the names other nodes may send to and look up
 *                     (TR_MSG_NET_SEND_NAME, TR_MSG_NET_WHEREIS), or NULL:
 *                     every name is then "no such name". It must outlive
 *                     the runtime's join.
 * @defs:              the definitions other nodes may spawn by name
 *                     (TR_MSG_NET_SPAWN), @ndefs of them, or NULL;
 *                     copied (names of at most TR_NET_KEY_SIZE - 1
 *                     bytes, each once)
 * @tls_cert:          mutual TLS (docs/NET.md), or NULL for plain tcp:
 *                     this node's certificate, PEM text (its chain up to
 *                     the CA may follow it)
 * @tls_key:           its private key, PEM text, not encrypted
 * @tls_ca:            PEM text of the certificates a peer's must chain
 *                     to: the cluster's CA, or, to pin peers, their own
 *                     self-signed certificates (then only those exact
 *                     certificates are taken). The three are all NULL
 *                     or all set, and copied. With them, @listen, the
 *                     seeds and every dial are tls+tcp:// URLs (a tcp://
 *                     one is TR_EINVAL); both sides require the other's
 *                     certificate, and the secret is proven on top.
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
	struct tr_registry *registry;
	const tr_net_def *defs;
	size_t ndefs;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
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
 *            secret; for a peer this node dials, a TLS handshake that
 *            failed its certificate)
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

/*
 * A node's service. Every node runs one small actor, started by
 * tr_net_start() and stopped with the runtime; tr_net_service() gives
 * its pid on any node. Other nodes talk to it with the core's messages
 * and requests, as to any actor (Erlang's {Name, Node} ! Msg,
 * rpc:call(Node, erlang, whereis, [Name]) and spawn(Node, ...)):
 *
 *   TR_MSG_NET_SEND_NAME   plain message, payload tr_net_send: deliver
 *                          @data as a message of @type to the actor
 *                          registered as @name, with the original sender
 *                          as m->from. Not a request: no answer. A name
 *                          that is not registered (or a node without a
 *                          registry, or a malformed payload) makes the
 *                          message a counted dead letter on the service's
 *                          node (tr_unhandled), never a crash.
 *   TR_MSG_NET_WHEREIS     request, payload tr_net_name; reply
 *                          TR_MSG_NET_PID (tr_net_pid_reply): the holder,
 *                          or TR_ENOENT.
 *   TR_MSG_NET_SPAWN       request, payload tr_net_spawn; reply
 *                          TR_MSG_NET_PID (tr_net_pid_reply): the new
 *                          actor, or TR_ENOENT (no definition of that
 *                          name), TR_EINVAL (a malformed request, flags
 *                          or an argument of the wrong size), TR_ENOMEM,
 *                          TR_ECLOSED (the runtime is stopping).
 *
 * A request of another type is failed with TR_EXIT_UNHANDLED; a request
 * that cannot be read gets the reply with TR_EINVAL. The pid in a reply
 * is written with tr_net_pid_encode() by the service: read it with
 * tr_net_pid_decode(). Name sends keep their order among themselves
 * (sender -> service -> holder), not with direct sends to the holder's
 * pid. From a context of the service's own node a name send is a dead
 * letter: look the name up in the registry there.
 */
#define TR_MSG_NET_SEND_NAME (TR_MSG_NET_BASE + 2u) /* tr_net_send */
#define TR_MSG_NET_WHEREIS   (TR_MSG_NET_BASE + 3u) /* tr_net_name */
#define TR_MSG_NET_SPAWN     (TR_MSG_NET_BASE + 4u) /* tr_net_spawn */
#define TR_MSG_NET_PID       (TR_MSG_NET_BASE + 5u) /* tr_net_pid_reply */

/** struct tr_net_name - Payload of TR_MSG_NET_WHEREIS: a NUL-terminated
 * name. */
typedef struct tr_net_name {
	char name[TR_NET_KEY_SIZE];
} tr_net_name;

/**
 * struct tr_net_send - Payload of TR_MSG_NET_SEND_NAME, @len bytes of
 * @data after it; read with TR_MSG_AS_FAM(m, tr_net_send, len, data).
 * tr_net_send_name() builds and sends it.
 * @name: the registered name, NUL-terminated
 * @type: the message's type, below TR_MSG_SYSTEM_BASE
 * @len:  bytes of @data
 */
TR_FAM_BEGIN
typedef struct tr_net_send {
	char name[TR_NET_KEY_SIZE];
	uint32_t type;
	uint32_t len;
	uint8_t data[];
} tr_net_send;
TR_FAM_END

/** Spawn flag: the new actor links itself to the requester before its
 * init runs (Erlang's spawn_link on a node): even an init that fails
 * sends the requester its exit signal. */
#define TR_NET_SPAWN_LINK 0x1u

/**
 * struct tr_net_spawn - Payload of TR_MSG_NET_SPAWN, @arg_len bytes of
 * @arg after it; read with TR_MSG_AS_FAM(m, tr_net_spawn, arg_len, arg).
 * @def:     the definition's name (struct tr_net_def), NUL-terminated
 * @flags:   0 or TR_NET_SPAWN_LINK
 * @arg_len: 0 (init gets NULL), or the definition's arg_size
 * @arg:     the spawn argument's bytes; init gets a copy
 */
TR_FAM_BEGIN
typedef struct tr_net_spawn {
	char def[TR_NET_KEY_SIZE];
	uint32_t flags;
	uint32_t arg_len;
	uint8_t arg[];
} tr_net_spawn;
TR_FAM_END

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
 * Return:    TR_OK; TR_EINVAL (a bad name, URL or short secret; TLS
 *            PEM text that does not parse, or only part of it set);
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
 * handshake; once up, each side tells the other of its peers, and each
 * dials those it does not know. Returns at once.
 * Thread:    any.
 * Return:    TR_OK; TR_EINVAL (a URL nng does not take, or of the other
 *            kind: tcp:// on a TLS node, tls+tcp:// on a plain one);
 *            TR_EEXIST (already dialed); TR_ENOMEM.
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
 * struct tr_net_pid_reply - Payload of TR_MSG_NET_PID, the reply to
 * TR_MSG_NET_WHEREIS and TR_MSG_NET_SPAWN.
 * @status: TR_OK, or the error (see TR_MSG_NET_WHEREIS, _SPAWN)
 * @pid:    with TR_OK, the pid as tr_net_pid_encode() writes it
 */
typedef struct tr_net_pid_reply {
	int32_t status;
	uint8_t pid[TR_NET_PID_SIZE];
} tr_net_pid_reply;

/**
 * tr_net_service() - The pid of the service of node @node (this node's
 * own name gives its own): where TR_MSG_NET_SEND_NAME, _WHEREIS and
 * _SPAWN go. The pid belongs to the peer's current life, so it goes
 * stale, as any of its pids, when that life ends.
 * @node: the node's name
 * @out:  its service's pid
 *
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such peer, or one that runs no
 *            service); TR_EUNREACH (the peer is not up).
 */
TR_API tr_err tr_net_service(tr_net *net, const char *node, tr_pid *out);

/**
 * tr_net_send_name() - Send @len bytes at @data as a message of @type to
 * the actor registered as @name on node @node (Erlang's
 * {Name, Node} ! Msg): a TR_MSG_NET_SEND_NAME to that node's service.
 * The receiver's m->from is @cx's pid.
 * @cx: an actor's or an inbox's context (tr_runtime_ctx() sends as
 *      nobody)
 *
 * Thread:    as tr_send().
 * Return:    TR_EINVAL (a bad name or type); TR_ENOMEM; as
 *            tr_net_service() and tr_send() otherwise. TR_OK says the
 *            message left, not that the name exists: a name that is not
 *            registered there makes it a dead letter there.
 */
static inline tr_err
tr_net_send_name(tr_ctx *cx, tr_net *net, const char *node, const char *name,
		 uint32_t type, const void *data, size_t len)
{
	tr_pid svc;
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n >= TR_NET_KEY_SIZE || type >= TR_MSG_SYSTEM_BASE ||
	    len > UINT32_MAX || (len > 0 && data == NULL)) {
		return TR_EINVAL;
	}
	tr_err err = tr_net_service(net, node, &svc);
	if (err != TR_OK) {
		return err;
	}
	tr_net_send *s = (tr_net_send *)calloc(1, sizeof(*s) + len);
	if (s == NULL) {
		return TR_ENOMEM;
	}
	memcpy(s->name, name, n);
	s->type = type;
	s->len = (uint32_t)len;
	if (len > 0) {
		memcpy(s->data, data, len);
	}
	err = tr_send(cx, svc, TR_MSG_NET_SEND_NAME, s, sizeof(*s) + len);
	free(s);
	return err;
}

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
 *                  silent connection; with TLS, a peer certificate of no
 *                  trusted CA or pin, an expired one, or bytes that are
 *                  not TLS), before any frame was taken
 * @frames_refused: frames refused on authenticated links (malformed, a
 *                  pid of no node, a target that is not local)
 * @names_sent:     name sends this node's service delivered
 * @names_missed:   name sends it made dead letters (no such name, no
 *                  registry, a malformed one, a sender of this node)
 * @lookups:        TR_MSG_NET_WHEREIS answered (hits and misses)
 * @spawned:        actors spawned for other nodes
 * @spawns_refused: TR_MSG_NET_SPAWN answered with an error
 * @holds:          times a link passed half its bound and began holding
 *                  its senders back (@link_bytes)
 * @sends_refused:  sends refused because a link was at its bound
 */
typedef struct tr_net_stats {
	uint64_t links_up;
	uint64_t refused;
	uint64_t frames_refused;
	uint64_t names_sent;
	uint64_t names_missed;
	uint64_t lookups;
	uint64_t spawned;
	uint64_t spawns_refused;
	uint64_t holds;
	uint64_t sends_refused;
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
