/*
 * 04_chat: a line-based chat server with rooms. One actor per client, one
 * actor per room, and one directory actor that knows the names.
 *
 *     example-chat [options] [port]   (default 7001; 0 picks a free port)
 *       --rate N           lines a client may say per second (default 50;
 *                          0: no limit)
 *       --workers N        scheduler threads (default: one per core)
 *       --flush-ms MS      how long a room gathers lines before it writes
 *                          them to its members (default 10; 0: at once)
 *       --window N         lines a client may have at its room before the
 *                          room has written them out (default 8)
 *       --stop-timeout S   how long a stop waits for clients to go, in
 *                          seconds (default 5; decimals allowed)
 *       --node NAME        be node NAME of a cluster of chat servers (see
 *                          "Across nodes"); then also
 *       --listen URL       where other nodes reach this one
 *                          (default tcp://127.0.0.1:0: a free port)
 *       --join URL         a node of the cluster to join (repeatable)
 *       --secret S         the cluster's secret, at least 16 bytes
 *     nc 127.0.0.1 7001    (in two terminals, then type)
 *
 * The protocol is one line per command or message:
 *
 *     /nick NAME   take a name: 1-32 of A-Z a-z 0-9 _ -, unique on the server
 *     /join ROOM   leave your room and enter ROOM (same rules as names, and
 *                  an optional leading "#": see "Room names")
 *     /who         the members of your room, sorted
 *     /rooms       every room with its number of members
 *     /stats       your room's size and how many messages wait for it
 *     /nodes       the chat servers of the cluster that are up
 *     /quit        the server says "* bye" and closes
 *     text         said to your room: every member gets "NAME: text"
 *
 * Lines from the server start with "* " (news) or "! " (an error). A new
 * client is "guest<N>" in the room "lobby". A room of up to ANNOUNCE_MAX
 * (100) members announces who joins (to everyone, the newcomer included),
 * who leaves and who changes name. A bigger room tells a newcomer only
 * its own "* NAME joined ROOM", and everyone, at most once a second, a
 * summary such as "* lobby: 12 joined, 3 left, 0 renamed, 4817 here",
 * the way big channels hide joins and parts: announcing each of 5,000
 * arrivals to everyone would be 12.5 million lines.
 *
 * Room names: IRC users type "/join #rust", so a leading "#" is accepted
 * and is not part of the name: "/join #kitchen" and "/join kitchen" enter
 * the same room, listed as "kitchen". Room names ignore case; a room is
 * shown as its first member spelled it. Nicks stay case-sensitive.
 *
 * The design, for someone who would write this with asyncio:
 *
 * - A session actor per connection is the per-client coroutine of
 *   asyncio.start_server(). tr_tcp_listen() spawns it from session_def;
 *   its bytes arrive as TR_MSG_TCP_DATA messages, a framer cuts them into
 *   lines, and each line becomes a message to the session's room or to the
 *   directory.
 * - A room actor per room holds the member list that asyncio code would
 *   keep in a global dict of sets of writers. It writes to its members
 *   with tr_tcp_write(), which any actor may do on any connection. No
 *   lock: only the room touches its list. The room monitors its members,
 *   so a client whose connection drops (or whose actor fails) is removed
 *   and announced as gone, like a `finally:` that can never be skipped.
 * - The directory actor (one) owns the names and the room table: it hands
 *   out guest names, keeps nicks unique, spawns a room on its first join and
 *   stops it when it is empty again. It monitors the sessions so a name
 *   frees up when its owner vanishes.
 * - There is no `await`. A session that asks the directory or its room
 *   something (a name, a room, /who, /rooms) returns from its handler and
 *   gets the answer later as a message; until then it keeps the lines that
 *   come in, in order, in its backlog. So commands take effect, and their
 *   answers arrive, in the order they were typed. Answers meant for one
 *   client come back to its session, which writes them; only what the
 *   room says to everyone is written by the room.
 *
 * A busy room. Everything said in a room goes to every member, so a room
 * does more work the more it has members and talkers, and one room runs
 * on one core. Two rules keep that work and its memory in proportion:
 *
 * - A room writes in batches: what its members say is appended to one
 *   buffer, written to each member at most FLUSH_MS (10 ms) later, one
 *   write per member per batch instead of one per line (asyncio's
 *   transport buffers writes the same way until the loop's next turn).
 * - A room holds its senders back. A session may have at most SAY_WINDOW
 *   (8, --window) lines at its room that the room has not yet written out; the
 *   room acknowledges them with each batch (MSG_SAID). Until then the
 *   session keeps its client's next lines in its backlog, in order, as
 *   asyncio code would `await queue.put()` on a bounded queue. So a
 *   room's queue holds at most SAY_WINDOW + 1 messages per member however
 *   many lines arrive, and a session's backlog is bounded (below). The
 *   runtime's own backpressure (muting the senders of an overloaded
 *   actor) only holds back senders that have more messages waiting, and a
 *   session usually has one; a window per sender bounds them all.
 *   /stats shows a room's queue and the longest it has been.
 *
 * Flooding: a line over 4096 bytes gets "! line too long" and the client is
 * disconnected (the framer never holds more than that for it). More lines
 * said per second than --rate (50) gets one "! slow down" and the excess
 * is dropped; lines are counted as they arrive, not as the room takes
 * them. Lines that wait in a session (behind a command, or while its room
 * is behind) take at most BACKLOG_MAX bytes; past that the client gets
 * "! slow down" and the line is dropped. A client that does not read is
 * the runtime's job: once more than TR_TCP_WRITE_MAX bytes wait for it,
 * its connection is closed (ENOBUFS), its session stops and its room
 * carries on without it. Nothing on the server grows without bound,
 * because of one client or because of many.
 *
 * Stopping (SIGINT or SIGTERM): the server stops accepting, every client
 * gets "* server stopping" and its connection is closed once what was
 * already written to it has gone out; a room drops what it has not
 * written yet and everything said after that. As soon as every client is
 * gone, or after --stop-timeout seconds (a client that does not read can
 * hold its close up), whichever comes first, tr_runtime_stop() ends the
 * rest, and the process exits with status 0. Little can be queued by
 * then, and it is cheap: a closing session ignores input, a stopping room
 * drops lines, and the windows keep every room's queue short. A second
 * signal stops at once.
 *
 * Across nodes (--node). Several servers form a cluster (libtroupe-net,
 * <troupe/net/net.h>): each keeps its own clients, their sessions and
 * its directory, and a room is one actor in the cluster, on its home
 * node: the one its name (case folded) hashes to among the nodes up,
 * sorted by name. Every node computes the same home from the same list
 * with no message exchanged, which is why this rule was chosen over
 * "where it was first created", which would take a question to every
 * node on each first join. A session's /join goes to its own directory
 * as before; the directory hands a join for a room homed elsewhere to
 * the directory of the home node (registered there under the name
 * "chat-directory", so a name send reaches it), with the session's pid
 * written by tr_net_pid_encode(). That directory starts the room if
 * needed and passes the join on, and from then on the session and its
 * room talk directly, pid to pid, across the link: lines said, /who,
 * /stats, leave. The one difference for the room is how it writes to a
 * member: a local member's connection it writes itself; to a member of
 * another node it sends the bytes (MSG_OUT), and that member's session
 * writes them. Pointers do not cross nodes, so what goes to a remote pid
 * is copied. What this leaves alone: nicks are unique per node, /rooms
 * lists the rooms homed on this node, and the home is computed when a
 * join happens, so a node that comes up later can be the home for new
 * joins of a room whose earlier members stay where they are (a room
 * split until they rejoin). A session monitors a room of another node:
 * if that node goes, what the session said there and any answer it
 * waits for are lost, so it tells its client "! room NAME lost with its
 * node" and closes; the client may come back and join again.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <troupe/actors/registry.h>
#include <troupe/net/net.h>
#include <troupe/troupe.h>

enum {
	NAME_MAX_LEN = 32,       /* nicks and room names */
	LINE_MAX_LEN = 4096,     /* longest input line, without its "\n" */
	RATE_WINDOW_MS = 1000,   /* --rate counts lines per this window */
	BACKLOG_MAX = 64 * 1024, /* input a session keeps while it waits */
	SAY_WINDOW = 8,          /* lines a session may have at its room */
	FLUSH_MS = 10,       /* a room writes out what was said this often */
	OUT_MAX = 64 * 1024, /* ... or at once when this much is pending */
	ANNOUNCE_MAX = 100,  /* rooms up to this size announce each change */
	SUMMARY_MS = 1000,   /* bigger rooms sum changes up this often */
	DEFAULT_PORT = 7001,
	DEFAULT_RATE = 50,
	DEFAULT_STOP_MS = 5000,
};

#define LOBBY "lobby"

/*
 * Message types. Each comment says who sends it to whom and what the
 * payload is. Fixed-size payloads are small structs copied by tr_send();
 * a line of text, whose length varies, travels as a pointer (tr_send_ptr).
 */
enum {
	MSG_START = 1,       /* main -> server: uint16_t port */
	MSG_HELLO,           /* session -> directory: none; "name me" */
	MSG_NICK,            /* session -> directory: struct name_msg */
	MSG_JOIN,            /* session -> directory: struct join_msg */
	MSG_ROOMS,           /* session -> directory: none */
	MSG_BYE,             /* session -> directory: none; free my name */
	MSG_NAMED,           /* directory -> session: struct name_msg */
	MSG_NICK_OK,         /* directory -> session: struct name_msg */
	MSG_NICK_TAKEN,      /* directory -> session: none */
	MSG_ROOM_JOIN,       /* directory -> room: struct join_msg */
	MSG_ROOM_STATUS,     /* room -> directory: struct room_status */
	MSG_MEMBER_GONE,     /* room -> directory: tr_pid of a lost member */
	MSG_SAY,             /* session -> room: pointer, "NAME: text\n" */
	MSG_RENAME,          /* session -> room: struct name_msg */
	MSG_WHO,             /* session -> room: none */
	MSG_STATS,           /* session -> room: none */
	MSG_LEAVE,           /* session -> room: none */
	MSG_SAID,            /* room -> session: uint32_t, lines written out */
	MSG_LEFT,            /* room -> session: none; the leave is done */
	MSG_JOINED,          /* room -> session: struct name_msg, the room's */
	MSG_JOIN_FAILED,     /* room or directory -> session: none */
	MSG_TEXT,            /* room or directory -> session: a reply line */
	MSG_RATE_WINDOW_END, /* session -> itself, by timer: none */
	MSG_FLUSH,           /* room -> itself, by timer: none */
	MSG_SUMMARY,         /* room -> itself, by timer: none */
	MSG_SHUTDOWN,        /* main -> directory -> rooms, sessions: none */
	MSG_ALL_GONE,        /* directory -> main's inbox: none */
	MSG_OUT,             /* room -> session of another node: bytes */
	MSG_REMOTE_JOIN,     /* directory -> home directory: remote_join */
	MSG_NODES,           /* session -> directory: none */
};

#define DIRECTORY_NAME "chat-directory" /* in each node's registry */

struct name_msg {
	char name[NAME_MAX_LEN + 1];
};

/* A join request; the directory forwards it unchanged to the room. */
struct join_msg {
	tr_pid session;
	tr_tcp conn; /* where the room writes to this member */
	char nick[NAME_MAX_LEN + 1];
	char room[NAME_MAX_LEN + 1];
};

/* A join passed to the room's home node: the session's pid as
 * tr_net_pid_encode() writes it, since a raw pid means nothing there. */
struct remote_join {
	uint8_t session[TR_NET_PID_SIZE];
	char nick[NAME_MAX_LEN + 1];
	char room[NAME_MAX_LEN + 1];
};

/* What a room tells the directory after every change of its members. */
struct room_status {
	uint32_t members;
	uint64_t joins_seen; /* joins handled so far, for the empty check */
};

/*
 * The settings, from the command line. main() sets them before the
 * runtime starts any thread; actors only read them.
 */
static struct {
	unsigned rate;     /* lines per RATE_WINDOW_MS; 0: no limit */
	unsigned workers;  /* 0: one per core */
	unsigned flush_ms; /* how long a room gathers a batch; 0: none */
	unsigned window;   /* lines a session may have at its room */
	uint64_t stop_ms;
	uint16_t port;
	const char *node; /* --node: NULL outside a cluster */
	const char *listen;
	const char *secret;
	const char *joins[9]; /* --join URLs, NULL-ended */
	unsigned njoins;
} opt = {
	.listen = "tcp://127.0.0.1:0",
	.rate = DEFAULT_RATE,
	.flush_ms = FLUSH_MS,
	.window = SAY_WINDOW,
	.stop_ms = DEFAULT_STOP_MS,
	.port = DEFAULT_PORT,
};

/*
 * The directory's pid. tr_tcp_listen() spawns sessions without a spawn
 * argument, so they find the directory here. main() sets it before the
 * runtime starts any thread; actors only read it.
 */
static tr_pid directory_pid;

/* Set by the server actor, read by main() after tr_runtime_join(). */
static bool listen_failed;

/* With --node: this node, and the URL it listens on. main() sets them
 * before the server may print them; actors only read them. */
static tr_net *net;
static char node_addr[160];

/* ------------------------------------------------------------------ */
/* Small helpers shared by the actors                                  */

static bool
valid_name(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-';
		if (!ok) {
			return false;
		}
	}
	return true;
}

/*
 * Make room for one more item in a growing array. Returns the (possibly
 * moved) array, or NULL when out of memory (the old array is untouched).
 */
static void *
grow(void *items, size_t *cap, size_t n, size_t size)
{
	if (n < *cap) {
		return items;
	}
	size_t ncap = *cap > 0 ? *cap * 2 : 8;
	void *p = realloc(items, ncap * size);
	if (p != NULL) {
		*cap = ncap;
	}
	return p;
}

static int format_line(char *buf, size_t cap, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* vsnprintf() into @buf; the length, or -1 if it does not fit. */
static int
format_line(char *buf, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, cap, fmt, ap);

	return n > 0 && (size_t)n < cap ? n : -1;
}

static void conn_printf(tr_ctx *cx, tr_tcp conn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Write one short server line to a connection. The runtime copies the
 * bytes into the connection's write queue, so the buffer can be local.
 * Every server line is short: names are at most 32 bytes.
 */
static void
conn_printf(tr_ctx *cx, tr_tcp conn, const char *fmt, ...)
{
	char buf[160];
	va_list ap;

	va_start(ap, fmt);
	int n = format_line(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0) {
		/* TR_ENOMEM is the only failure: the client misses a line. */
		(void)tr_tcp_write(cx, conn, buf, (size_t)n);
	}
}

/* A pid of another node (a session or a room there). */
static bool
is_remote(tr_pid pid)
{
	return tr_pid_node(pid) != 0;
}

/*
 * Hand a malloc()ed line to @to: moved as a pointer on this node, copied
 * to another node (a pointer means nothing there). Either way the line
 * is the callee's: freed here or by the runtime.
 */
static tr_err
send_line(tr_ctx *cx, tr_pid to, uint32_t type, char *line, size_t len)
{
	if (is_remote(to)) {
		tr_err err = tr_send(cx, to, type, line, len);
		free(line);
		return err;
	}
	return tr_send_ptr(cx, to, type, line, len, free);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Answer a session's request with a line of text that the session writes
 * to its client (the answer also tells it that the request is done). The
 * line was built with malloc() and moves with the message; a session that
 * has stopped meanwhile makes it a dead letter, and the runtime frees it.
 * A request always gets an answer, so a NULL line (out of memory) becomes
 * a short copied one.
 */
static void
reply_text(tr_ctx *cx, tr_pid to, char *line, size_t len)
{
	static const char busy[] = "! out of memory, try again\n";

	if (line == NULL) {
		(void)tr_send(cx, to, MSG_TEXT, busy, sizeof(busy) - 1);
		return;
	}
	send_line(cx, to, MSG_TEXT, line, len);
}

/* ------------------------------------------------------------------ */
/* The room: members, batched output, departures                       */

struct member {
	tr_pid session;
	tr_tcp conn;
	tr_ref ref;      /* our monitor on the session */
	size_t out_from; /* its part of the room's batch starts here */
	uint32_t said;   /* its lines in the batch, not yet acknowledged */
	char nick[NAME_MAX_LEN + 1];
};

struct room {
	char name[NAME_MAX_LEN + 1];
	struct member *members;
	size_t n, cap;
	uint64_t joins_seen;
	char *out; /* the batch: what everyone gets at the next flush */
	size_t out_len, out_cap;
	bool is_flush_armed;            /* a MSG_FLUSH is on its way */
	bool is_summary_armed;          /* a MSG_SUMMARY is on its way */
	bool is_stopping;               /* the server stops: say nothing more */
	unsigned joined, left, renamed; /* not yet in a summary */
	uint32_t queue_peak;            /* longest queue seen, for /stats */
};

static struct member *
room_member(struct room *r, tr_pid session)
{
	for (size_t i = 0; i < r->n; i++) {
		if (tr_pid_eq(r->members[i].session, session)) {
			return &r->members[i];
		}
	}
	return NULL;
}

/* Rooms up to ANNOUNCE_MAX members (counting the one who comes or goes)
 * tell everyone about each join, leave and rename. */
static bool
room_announces(const struct room *r, size_t members)
{
	return !r->is_stopping && members <= ANNOUNCE_MAX;
}

/* Write to a member: its connection, or its session on another node. */
static void
member_write(tr_ctx *cx, const struct member *mb, const void *buf, size_t len)
{
	if (is_remote(mb->session)) {
		(void)tr_send(cx, mb->session, MSG_OUT, buf, len);
	} else {
		(void)tr_tcp_write(cx, mb->conn, buf, len);
	}
}

/*
 * Tell @mb what it has not had of the batch, and acknowledge its lines.
 * Writes from one actor go out in order, so every member sees the room's
 * lines in the same order.
 */
static void
room_catch_up(tr_ctx *cx, struct room *r, struct member *mb)
{
	if (r->out_len > mb->out_from) {
		member_write(cx, mb, r->out + mb->out_from,
			     r->out_len - mb->out_from);
	}
	mb->out_from = r->out_len;
	if (mb->said > 0) {
		/* The session may send that many more lines. */
		(void)tr_send(cx, mb->session, MSG_SAID, &mb->said,
			      sizeof(mb->said));
		mb->said = 0;
	}
}

/* Write the batch out: one write per member, whatever its size. */
static void
room_flush(tr_ctx *cx, struct room *r)
{
	for (size_t i = 0; i < r->n; i++) {
		room_catch_up(cx, r, &r->members[i]);
		r->members[i].out_from = 0;
	}
	r->out_len = 0;
}

/*
 * A flush within FLUSH_MS. Lines said meanwhile join the same batch, so
 * a busy room writes less often per line, not more. If no timer can be
 * armed (the runtime is stopping), flush at once instead.
 */
static void
room_arm_flush(tr_ctx *cx, struct room *r)
{
	if (r->is_flush_armed) {
		return;
	}
	if (opt.flush_ms == 0) {
		/* No batch: each line to each member at once (the runtime
		 * still gathers the writes a connection gets in one pass of
		 * its I/O loop into one system call). */
		room_flush(cx, r);
		return;
	}
	r->is_flush_armed = tr_send_after(cx, tr_self(cx), MSG_FLUSH, NULL, 0,
					  opt.flush_ms, NULL) == TR_OK;
	if (!r->is_flush_armed) {
		room_flush(cx, r);
	}
}

/* Add @text to the batch for every member. */
static void
room_say(tr_ctx *cx, struct room *r, const void *text, size_t len)
{
	if (r->out_len + len > OUT_MAX) {
		room_flush(cx, r); /* big enough: no need to wait */
	}
	if (r->out_len + len > r->out_cap) {
		size_t cap = r->out_cap > 0 ? r->out_cap : 4096;
		while (cap < r->out_len + len) {
			cap *= 2;
		}
		char *p = realloc(r->out, cap);
		if (p == NULL) {
			return; /* out of memory: the line is lost */
		}
		r->out = p;
		r->out_cap = cap;
	}
	memcpy(r->out + r->out_len, text, len);
	r->out_len += len;
	room_arm_flush(cx, r);
}

static void room_sayf(tr_ctx *cx, struct room *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
room_sayf(tr_ctx *cx, struct room *r, const char *fmt, ...)
{
	char buf[160];
	va_list ap;

	va_start(ap, fmt);
	int n = format_line(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0) {
		room_say(cx, r, buf, (size_t)n);
	}
}

/*
 * A big room counts its changes and sums them up once per SUMMARY_MS, so
 * that its announcements cost one line per member per second at most,
 * however many people come and go.
 */
static void
room_note_change(tr_ctx *cx, struct room *r, unsigned *counter)
{
	if (r->is_stopping) {
		return;
	}
	(*counter)++;
	if (!r->is_summary_armed) {
		r->is_summary_armed =
			tr_send_after(cx, tr_self(cx), MSG_SUMMARY, NULL, 0,
				      SUMMARY_MS, NULL) == TR_OK;
	}
}

static void
room_summary(tr_ctx *cx, struct room *r)
{
	r->is_summary_armed = false;
	if (r->is_stopping || r->joined + r->left + r->renamed == 0) {
		return;
	}
	room_sayf(cx, r, "* %s: %u joined, %u left, %u renamed, %zu here\n",
		  r->name, r->joined, r->left, r->renamed, r->n);
	r->joined = r->left = r->renamed = 0;
}

/*
 * Tell the directory how many members we have. It is sent before the
 * change is announced, so a client that has seen the announcement and then
 * asks for /rooms gets a count that includes it.
 */
static void
room_report(tr_ctx *cx, struct room *r)
{
	struct room_status st = { .members = (uint32_t)r->n,
				  .joins_seen = r->joins_seen };

	(void)tr_send(cx, directory_pid, MSG_ROOM_STATUS, &st, sizeof(st));
}

/* Remove a member (order does not matter: /who sorts) and say so. */
static void
room_remove(tr_ctx *cx, struct room *r, struct member *mb, bool vanished)
{
	char nick[NAME_MAX_LEN + 1];

	memcpy(nick, mb->nick, sizeof(nick));
	if (vanished) {
		/*
		 * Free its name before anyone can read "left": a client that
		 * sees it and asks for the name at once must get it. The
		 * directory's own monitor would get there too, but later.
		 */
		(void)tr_send(cx, directory_pid, MSG_MEMBER_GONE, &mb->session,
			      sizeof(mb->session));
	}
	*mb = r->members[--r->n];
	room_report(cx, r);
	if (room_announces(r, r->n + 1)) {
		room_sayf(cx, r, "* %s left\n", nick);
	} else {
		room_note_change(cx, r, &r->left);
	}
}

static void
room_join(tr_ctx *cx, struct room *r, const struct join_msg *j)
{
	struct name_msg named;

	r->joins_seen++;
	if (r->name[0] == '\0') {
		memcpy(r->name, j->room, sizeof(r->name));
	}
	struct member *grown = r->is_stopping ? NULL
					      : grow(r->members, &r->cap, r->n,
						     sizeof(*grown));
	if (grown == NULL) {
		room_report(cx, r);
		(void)tr_send(cx, j->session, MSG_JOIN_FAILED, NULL, 0);
		return;
	}
	r->members = grown;
	struct member *mb = &r->members[r->n];
	memset(mb, 0, sizeof(*mb));
	/*
	 * If the session is already gone, the monitor still works: a
	 * TR_MSG_DOWN (TR_EXIT_NOPROC) comes at once and removes it again.
	 */
	if (tr_monitor(cx, j->session, &mb->ref) < 0) {
		room_report(cx, r);
		(void)tr_send(cx, j->session, MSG_JOIN_FAILED, NULL, 0);
		return;
	}
	mb->session = j->session;
	mb->conn = j->conn;
	memcpy(mb->nick, j->nick, sizeof(mb->nick));
	/*
	 * The others hear of it with the batch (or in a summary), which goes
	 * out after the report below. room_sayf() may flush the batch first,
	 * which leaves mb alone: it is not counted in r->n yet.
	 */
	if (room_announces(r, r->n + 1)) {
		room_sayf(cx, r, "* %s joined %s\n", mb->nick, r->name);
	} else {
		room_note_change(cx, r, &r->joined);
	}
	/* The newcomer gets only what is said from now on... */
	mb->out_from = r->out_len;
	r->n++;
	room_report(cx, r);
	/* ...and its own join at once, before its session goes on. */
	char line[NAME_MAX_LEN * 2 + 16];
	int n = snprintf(line, sizeof(line), "* %s joined %s\n", mb->nick,
			 r->name);
	member_write(cx, mb, line, (size_t)n);
	memset(&named, 0, sizeof(named));
	memcpy(named.name, r->name, sizeof(named.name));
	(void)tr_send(cx, j->session, MSG_JOINED, &named, sizeof(named));
}

/* "* members: a b c\n", sorted, sent to the one who asked. */
static void
room_who(tr_ctx *cx, struct room *r, tr_pid asker)
{
	const char **names = malloc((r->n + 1) * sizeof(*names));
	char *line = malloc(sizeof("* members:\n") + r->n * (NAME_MAX_LEN + 1));
	size_t len = 0;

	if (names != NULL && line != NULL) {
		for (size_t i = 0; i < r->n; i++) {
			names[i] = r->members[i].nick;
		}
		qsort(names, r->n, sizeof(*names), cmp_str);
		len = (size_t)sprintf(line, "* members:");
		for (size_t i = 0; i < r->n; i++) {
			len += (size_t)sprintf(line + len, " %s", names[i]);
		}
		line[len++] = '\n';
	} else {
		free(line);
		line = NULL;
	}
	free(names);
	reply_text(cx, asker, line, len);
}

/* "* lobby: 200 members, 3 queued, at most 57\n" */
static void
room_stats(tr_ctx *cx, struct room *r, tr_pid asker)
{
	uint32_t queued = 0;
	char *line = malloc(160);
	size_t len = 0;

	(void)tr_mailbox_len(tr_ctx_runtime(cx), tr_self(cx), &queued);
	if (line != NULL) {
		len = (size_t)snprintf(line, 160,
				       "* %s: %zu members, %u queued, at most "
				       "%u\n",
				       r->name, r->n, (unsigned)queued,
				       (unsigned)r->queue_peak);
	}
	reply_text(cx, asker, line, len);
}

/*
 * How long the queue is now (a relaxed load: the runtime counts the
 * mailboxes of actors with a bound, see room_def). Only /stats uses it.
 */
static void
room_sample_queue(tr_ctx *cx, struct room *r)
{
	uint32_t queued;

	if (tr_mailbox_len(tr_ctx_runtime(cx), tr_self(cx), &queued) == TR_OK &&
	    queued > r->queue_peak) {
		r->queue_peak = queued;
	}
}

/*
 * The server stops: what is in the batch is dropped, and the room says
 * nothing more. Its members' sessions are closing their connections.
 */
static void
room_stop(struct room *r)
{
	r->is_stopping = true;
	r->out_len = 0;
	for (size_t i = 0; i < r->n; i++) {
		r->members[i].out_from = 0;
		r->members[i].said = 0;
	}
}

static void
room_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct room *r = state;
	struct member *mb = room_member(r, tr_sender(cx));

	switch (m->type) {
	case MSG_ROOM_JOIN: {
		struct join_msg j;

		if (m->size == sizeof(j)) {
			memcpy(&j, m->data, sizeof(j));
			room_join(cx, r, &j);
		}
		break;
	}
	case MSG_SAY:
		/* The session wrote the whole line; we add it to the batch,
		 * which copies it. The runtime frees the pointer after this
		 * handler. */
		if (mb != NULL && !r->is_stopping) {
			room_sample_queue(cx, r);
			room_say(cx, r, m->data, m->size);
			mb->said++;
		}
		break;
	case MSG_RENAME: {
		struct name_msg n;

		if (mb == NULL || m->size != sizeof(n) || r->is_stopping) {
			break;
		}
		memcpy(&n, m->data, sizeof(n));
		n.name[NAME_MAX_LEN] = '\0';
		room_sample_queue(cx, r);
		if (room_announces(r, r->n)) {
			room_sayf(cx, r, "* %s is now %s\n", mb->nick, n.name);
		} else {
			room_note_change(cx, r, &r->renamed);
		}
		memcpy(mb->nick, n.name, sizeof(mb->nick));
		/* Counted in the session's window like a line. */
		mb->said++;
		room_arm_flush(cx, r);
		break;
	}
	case MSG_WHO:
	case MSG_STATS:
		/* The asker first gets what was said before it asked. */
		if (mb != NULL) {
			room_catch_up(cx, r, mb);
		}
		if (m->type == MSG_WHO) {
			room_who(cx, r, tr_sender(cx));
		} else {
			room_stats(cx, r, tr_sender(cx));
		}
		break;
	case MSG_LEAVE:
		if (mb != NULL) {
			/* What was said before it left (its last words
			 * included) still reaches it. */
			room_catch_up(cx, r, mb);
			(void)tr_demonitor(cx, mb->ref);
			room_remove(cx, r, mb, false);
		}
		/* Always answered: the session waits for it. */
		(void)tr_send(cx, tr_sender(cx), MSG_LEFT, NULL, 0);
		break;
	case MSG_FLUSH:
		r->is_flush_armed = false;
		room_flush(cx, r);
		break;
	case MSG_SUMMARY:
		room_summary(cx, r);
		break;
	case MSG_SHUTDOWN:
		room_stop(r);
		break;
	case TR_MSG_DOWN: {
		/* A member stopped without leaving: its connection was reset
		 * or closed by the server (a line too long, a client that
		 * does not read), or its actor failed. All the same to us. */
		tr_down d;

		if (m->size != sizeof(d)) {
			break;
		}
		memcpy(&d, m->data, sizeof(d));
		for (size_t i = 0; i < r->n; i++) {
			if (r->members[i].ref.v == d.ref.v) {
				room_remove(cx, r, &r->members[i], true);
				break;
			}
		}
		break;
	}
	default:
		break;
	}
}

static void
room_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct room *r = state;

	(void)cx;
	(void)reason;
	free(r->members);
	free(r->out);
}

static const tr_actor_def room_def = {
	.size = sizeof(tr_actor_def),
	.name = "chat-room",
	.state_size = sizeof(struct room),
	.teardown = room_teardown,
	.handle = room_handle,
	/*
	 * Not a limit (the sessions' windows bound the queue): a bound lets
	 * the runtime count the queue, which /stats reports. A real limit
	 * would make sends fail with TR_EFULL, and a join or a leave must
	 * not be refused.
	 */
	.mailbox_bound = UINT32_MAX,
};

/* ------------------------------------------------------------------ */
/* The directory: names and rooms                                      */

struct user {
	tr_pid session;
	tr_ref ref; /* our monitor on the session */
	char nick[NAME_MAX_LEN + 1];
};

struct room_entry {
	char name[NAME_MAX_LEN + 1];
	tr_pid pid;
	tr_ref ref;          /* our monitor on the room */
	uint32_t members;    /* as last reported by the room */
	uint64_t joins_sent; /* joins we forwarded to it */
	uint64_t joins_seen; /* joins it had handled at its last report */
};

struct directory {
	struct user *users;
	size_t n_users, cap_users;
	struct room_entry *rooms;
	size_t n_rooms, cap_rooms;
	unsigned next_guest;
	bool is_stopping;     /* MSG_SHUTDOWN came: no new names or rooms */
	bool has_told_gone;   /* MSG_ALL_GONE sent */
	tr_pid stop_reply_to; /* main's inbox */
};

/*
 * Linear searches keep the example short; a server for thousands of
 * clients would use a hash table here. The state is still the
 * directory's alone, so whatever structure it picks needs no lock.
 */
static struct user *
dir_user_by_nick(struct directory *d, const char *nick)
{
	for (size_t i = 0; i < d->n_users; i++) {
		if (strcmp(d->users[i].nick, nick) == 0) {
			return &d->users[i];
		}
	}
	return NULL;
}

static struct user *
dir_user_by_pid(struct directory *d, tr_pid session)
{
	for (size_t i = 0; i < d->n_users; i++) {
		if (tr_pid_eq(d->users[i].session, session)) {
			return &d->users[i];
		}
	}
	return NULL;
}

/* Room names ignore case: "#Kitchen" is the room "kitchen". */
static struct room_entry *
dir_room_by_name(struct directory *d, const char *name)
{
	for (size_t i = 0; i < d->n_rooms; i++) {
		if (strcasecmp(d->rooms[i].name, name) == 0) {
			return &d->rooms[i];
		}
	}
	return NULL;
}

static struct room_entry *
dir_room_by_pid(struct directory *d, tr_pid pid)
{
	for (size_t i = 0; i < d->n_rooms; i++) {
		if (tr_pid_eq(d->rooms[i].pid, pid)) {
			return &d->rooms[i];
		}
	}
	return NULL;
}

/* While stopping: once the last session is gone, main() may end. */
static void
dir_maybe_all_gone(tr_ctx *cx, struct directory *d)
{
	if (d->is_stopping && d->n_users == 0 && !d->has_told_gone) {
		d->has_told_gone = true;
		(void)tr_send(cx, d->stop_reply_to, MSG_ALL_GONE, NULL, 0);
	}
}

static void
dir_remove_user(tr_ctx *cx, struct directory *d, struct user *u)
{
	*u = d->users[--d->n_users];
	dir_maybe_all_gone(cx, d);
}

static void
dir_remove_room(struct directory *d, struct room_entry *e)
{
	*e = d->rooms[--d->n_rooms];
}

/* Free the name of a session that is leaving or gone (idempotent). */
static void
dir_forget(tr_ctx *cx, struct directory *d, tr_pid session)
{
	struct user *u = dir_user_by_pid(d, session);

	if (u != NULL) {
		(void)tr_demonitor(cx, u->ref);
		dir_remove_user(cx, d, u);
	}
}

/* A new session: give it the first free "guest<N>" and watch it. */
static void
dir_hello(tr_ctx *cx, struct directory *d, tr_pid session)
{
	struct name_msg n;

	if (d->is_stopping) {
		/* It connected just before the listener closed. */
		(void)tr_send(cx, session, MSG_SHUTDOWN, NULL, 0);
		return;
	}
	do {
		snprintf(n.name, sizeof(n.name), "guest%u", ++d->next_guest);
	} while (dir_user_by_nick(d, n.name) != NULL);

	struct user *grown =
		grow(d->users, &d->cap_users, d->n_users, sizeof(*grown));
	if (grown == NULL) {
		/* Out of memory: refuse the client (its connection closes). */
		(void)tr_stop(cx, session, TR_EXIT_ERROR);
		return;
	}
	d->users = grown;
	struct user *u = &d->users[d->n_users];
	if (tr_monitor(cx, session, &u->ref) < 0) {
		(void)tr_stop(cx, session, TR_EXIT_ERROR);
		return;
	}
	u->session = session;
	memcpy(u->nick, n.name, sizeof(u->nick));
	d->n_users++;
	(void)tr_send(cx, session, MSG_NAMED, &n, sizeof(n));
}

static void
dir_nick(tr_ctx *cx, struct directory *d, tr_pid session,
	 const struct name_msg *n)
{
	struct user *me = dir_user_by_pid(d, session);
	struct user *owner = dir_user_by_nick(d, n->name);

	if (me == NULL || (owner != NULL && owner != me)) {
		(void)tr_send(cx, session, MSG_NICK_TAKEN, NULL, 0);
		return;
	}
	memcpy(me->nick, n->name, sizeof(me->nick));
	(void)tr_send(cx, session, MSG_NICK_OK, n, sizeof(*n));
}

/*
 * Stop a room that is empty with no join on its way to it. Every join
 * passes through here, so once both counts agree none can arrive later.
 */
static void
dir_maybe_stop_room(tr_ctx *cx, struct directory *d, struct room_entry *e)
{
	if (e->members > 0 || e->joins_seen != e->joins_sent) {
		return;
	}
	(void)tr_demonitor(cx, e->ref);
	(void)tr_stop(cx, e->pid, TR_EXIT_NORMAL);
	dir_remove_room(d, e);
}

/* The nodes up, this one included, sorted by name: @names gets up to
 * @cap pointers into @v. Returns how many. */
static size_t
cluster_nodes(tr_net_node *v, size_t vcap, const char **names, size_t cap)
{
	size_t k = tr_net_nodes(net, v, vcap);
	size_t n = 0;

	names[n++] = opt.node;
	for (size_t i = 0; i < k && i < vcap && n < cap; i++) {
		if (v[i].state == TR_NET_UP) {
			names[n++] = v[i].name;
		}
	}
	qsort(names, n, sizeof(*names), cmp_str);
	return n;
}

enum { CLUSTER_MAX = 64 };

/*
 * The home of room @name: the node it hashes to (FNV-1a of the name in
 * lower case) among the nodes up, sorted by name, into @home.
 */
static void
room_home(const char *name, char *home, size_t cap)
{
	tr_net_node v[CLUSTER_MAX];
	const char *names[CLUSTER_MAX + 1];
	size_t n = cluster_nodes(v, CLUSTER_MAX, names, CLUSTER_MAX + 1);
	uint32_t h = 2166136261u;

	for (const char *p = name; *p != '\0'; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		h = (h ^ (uint8_t)c) * 16777619u;
	}
	snprintf(home, cap, "%s", names[h % n]);
}

/* "* nodes: alpha beta\n": what room_home() chooses among. */
static void
dir_nodes(tr_ctx *cx, tr_pid asker)
{
	static const char none[] = "! not in a cluster\n";
	tr_net_node v[CLUSTER_MAX];
	const char *names[CLUSTER_MAX + 1];

	if (net == NULL) {
		(void)tr_send(cx, asker, MSG_TEXT, none, sizeof(none) - 1);
		return;
	}
	size_t n = cluster_nodes(v, CLUSTER_MAX, names, CLUSTER_MAX + 1);
	char *line = malloc(sizeof("* nodes:\n") + n * (TR_NET_NAME_MAX + 1));
	size_t len = 0;
	if (line != NULL) {
		len = (size_t)sprintf(line, "* nodes:");
		for (size_t i = 0; i < n; i++) {
			len += (size_t)sprintf(line + len, " %s", names[i]);
		}
		line[len++] = '\n';
	}
	reply_text(cx, asker, line, len);
}

/*
 * A join for a room homed on another node: to that node's directory, by
 * name. If it cannot leave (the node just went down), the join fails and
 * the client may try again.
 */
static bool
dir_join_remote(tr_ctx *cx, const struct join_msg *j, const char *home)
{
	struct remote_join rj;

	memset(&rj, 0, sizeof(rj));
	memcpy(rj.nick, j->nick, sizeof(rj.nick));
	memcpy(rj.room, j->room, sizeof(rj.room));
	return tr_net_pid_encode(net, j->session, rj.session) == TR_OK &&
	       tr_net_send_name(cx, net, home, DIRECTORY_NAME, MSG_REMOTE_JOIN,
				&rj, sizeof(rj)) == TR_OK;
}

static void
dir_join(tr_ctx *cx, struct directory *d, struct join_msg *j)
{
	struct room_entry *e = dir_room_by_name(d, j->room);

	if (d->is_stopping) {
		goto err_reply;
	}
	if (net != NULL && !is_remote(j->session)) {
		char home[TR_NET_NAME_MAX + 1];

		room_home(j->room, home, sizeof(home));
		if (strcmp(home, opt.node) != 0) {
			if (!dir_join_remote(cx, j, home)) {
				goto err_reply;
			}
			return;
		}
	}
	if (e == NULL) {
		/* First join: the room is born. We monitor it so that our
		 * table cannot keep a room that stopped on its own. */
		struct room_entry *grown = grow(d->rooms, &d->cap_rooms,
						d->n_rooms, sizeof(*grown));
		if (grown == NULL) {
			goto err_reply;
		}
		d->rooms = grown;
		e = &d->rooms[d->n_rooms];
		memset(e, 0, sizeof(*e));
		if (tr_spawn_monitor(cx, &room_def, NULL, &e->pid, &e->ref) <
		    0) {
			goto err_reply;
		}
		memcpy(e->name, j->room, sizeof(e->name));
		d->n_rooms++;
	}
	if (tr_send(cx, e->pid, MSG_ROOM_JOIN, j, sizeof(*j)) < 0) {
		dir_maybe_stop_room(cx, d, e);
		goto err_reply;
	}
	e->joins_sent++;
	return;

err_reply:
	(void)tr_send(cx, j->session, MSG_JOIN_FAILED, NULL, 0);
}

static int
cmp_room_entry(const void *a, const void *b)
{
	return strcasecmp(((const struct room_entry *)a)->name,
			  ((const struct room_entry *)b)->name);
}

/*
 * "* rooms: kitchen(2) lobby(5)\n", sorted, to the one who asked. A room
 * whose first join is still on its way has no member yet and is left out.
 */
static void
dir_rooms(tr_ctx *cx, struct directory *d, tr_pid asker)
{
	/* Each entry is " name(count)": at most 32 + 13 bytes. */
	char *line = malloc(sizeof("* rooms:\n") + d->n_rooms * 48);
	size_t len = 0;

	if (line != NULL) {
		qsort(d->rooms, d->n_rooms, sizeof(*d->rooms), cmp_room_entry);
		len = (size_t)sprintf(line, "* rooms:");
		for (size_t i = 0; i < d->n_rooms; i++) {
			const struct room_entry *e = &d->rooms[i];

			if (e->members > 0) {
				len += (size_t)sprintf(line + len, " %s(%u)",
						       e->name,
						       (unsigned)e->members);
			}
		}
		line[len++] = '\n';
	}
	reply_text(cx, asker, line, len);
}

/*
 * The server stops. The rooms hear it first, so that none announces the
 * departures that follow; then every session, which tells its client and
 * closes. main() hears back once the last one is gone.
 */
static void
dir_shutdown(tr_ctx *cx, struct directory *d, tr_pid reply_to)
{
	if (d->is_stopping) {
		return;
	}
	d->is_stopping = true;
	d->stop_reply_to = reply_to;
	for (size_t i = 0; i < d->n_rooms; i++) {
		(void)tr_send(cx, d->rooms[i].pid, MSG_SHUTDOWN, NULL, 0);
	}
	for (size_t i = 0; i < d->n_users; i++) {
		(void)tr_send(cx, d->users[i].session, MSG_SHUTDOWN, NULL, 0);
	}
	dir_maybe_all_gone(cx, d);
}

static void
dir_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct directory *d = state;
	tr_pid from = tr_sender(cx);

	switch (m->type) {
	case MSG_HELLO:
		dir_hello(cx, d, from);
		break;
	case MSG_NICK: {
		struct name_msg n;

		if (m->size == sizeof(n)) {
			memcpy(&n, m->data, sizeof(n));
			n.name[NAME_MAX_LEN] = '\0';
			dir_nick(cx, d, from, &n);
		}
		break;
	}
	case MSG_JOIN: {
		struct join_msg j;

		if (m->size == sizeof(j)) {
			memcpy(&j, m->data, sizeof(j));
			j.session = from;
			j.nick[NAME_MAX_LEN] = '\0';
			j.room[NAME_MAX_LEN] = '\0';
			dir_join(cx, d, &j);
		}
		break;
	}
	case MSG_REMOTE_JOIN: {
		/* Another node's session joins a room homed here. */
		const struct remote_join *rj = TR_MSG_AS(m, struct remote_join);
		struct join_msg j;

		memset(&j, 0, sizeof(j));
		if (net == NULL || rj == NULL ||
		    tr_net_pid_decode(net, rj->session, &j.session) != TR_OK ||
		    !is_remote(j.session)) {
			(void)tr_unhandled(cx, m);
			break;
		}
		memcpy(j.nick, rj->nick, sizeof(j.nick));
		memcpy(j.room, rj->room, sizeof(j.room));
		j.nick[NAME_MAX_LEN] = '\0';
		j.room[NAME_MAX_LEN] = '\0';
		if (!valid_name(j.room, strlen(j.room))) {
			(void)tr_unhandled(cx, m);
			break;
		}
		dir_join(cx, d, &j);
		break;
	}
	case MSG_NODES:
		dir_nodes(cx, from);
		break;
	case MSG_ROOMS:
		dir_rooms(cx, d, from);
		break;
	case MSG_BYE:
		/* The session is on its way out: free its name now, before
		 * its room announces that it left. */
		dir_forget(cx, d, from);
		break;
	case MSG_ROOM_STATUS: {
		struct room_status st;
		struct room_entry *e = dir_room_by_pid(d, from);

		if (e == NULL || m->size != sizeof(st)) {
			break; /* a room we already let go */
		}
		memcpy(&st, m->data, sizeof(st));
		e->members = st.members;
		e->joins_seen = st.joins_seen;
		dir_maybe_stop_room(cx, d, e);
		break;
	}
	case MSG_MEMBER_GONE: {
		tr_pid who;

		if (m->size == sizeof(who)) {
			memcpy(&who, m->data, sizeof(who));
			dir_forget(cx, d, who);
		}
		break;
	}
	case MSG_SHUTDOWN:
		dir_shutdown(cx, d, from);
		break;
	case TR_MSG_DOWN: {
		/* A session stopped (its name is free), or a room did. */
		tr_down dn;

		if (m->size != sizeof(dn)) {
			break;
		}
		memcpy(&dn, m->data, sizeof(dn));
		for (size_t i = 0; i < d->n_users; i++) {
			if (d->users[i].ref.v == dn.ref.v) {
				dir_remove_user(cx, d, &d->users[i]);
				return;
			}
		}
		for (size_t i = 0; i < d->n_rooms; i++) {
			if (d->rooms[i].ref.v == dn.ref.v) {
				dir_remove_room(d, &d->rooms[i]);
				return;
			}
		}
		break;
	}
	default:
		break;
	}
}

static void
dir_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct directory *d = state;

	(void)cx;
	(void)reason;
	free(d->users);
	free(d->rooms);
}

static const tr_actor_def directory_def = {
	.size = sizeof(tr_actor_def),
	.name = "chat-directory",
	.state_size = sizeof(struct directory),
	.teardown = dir_teardown,
	.handle = dir_handle,
};

/* ------------------------------------------------------------------ */
/* The session: one per client                                         */

struct session {
	tr_tcp conn;
	tr_framer framer;
	char nick[NAME_MAX_LEN + 1];      /* "" until the directory names us */
	tr_pid room;                      /* TR_PID_NONE while in no room */
	tr_ref room_mon;                  /* our monitor on a remote room */
	char room_name[NAME_MAX_LEN + 1]; /* as the room spells it */
	char next_room[NAME_MAX_LEN + 1]; /* the room a join is for */
	bool is_waiting;   /* a request is out: new lines go to the backlog */
	bool is_quitting;  /* leaving the room on the way out */
	bool says_bye;     /* ... because of /quit: "* bye" when done */
	bool is_closing;   /* we asked to close: ignore further input */
	bool is_peer_done; /* the client shut its sending side */
	unsigned at_room;  /* lines at the room, not yet acknowledged */
	char *backlog;     /* whole lines, each ending in "\n" */
	size_t backlog_len, backlog_cap;
	unsigned window_lines; /* lines said in the current rate window */
	bool is_window_open;
	bool has_warned; /* "! slow down" already sent in this window */
};

/*
 * Whether the next line must wait in the backlog: a request is out, or
 * the room has not yet written out SAY_WINDOW of our lines.
 */
static bool
session_is_held(const struct session *s)
{
	return s->is_waiting || s->at_room >= opt.window;
}

static void
session_close(tr_ctx *cx, struct session *s)
{
	/* Pending writes go out first; TR_MSG_TCP_CLOSED follows. */
	s->is_closing = true;
	(void)tr_tcp_close(cx, s->conn);
}

/*
 * Leave for good (/quit, or the client has sent all it will). First the
 * directory frees the name, then the room is left, then the connection
 * closes. Leaving before closing matters: lines we said are still on their
 * way through the room, and the room handles them before our MSG_LEAVE
 * (one sender, one order), and writes them to us before it answers, so
 * the client still gets the echo of its last words. asyncio code would
 * await the room's queue.join() for the same.
 */
static void
session_finish(tr_ctx *cx, struct session *s, bool bye)
{
	(void)tr_send(cx, directory_pid, MSG_BYE, NULL, 0);
	if (!tr_pid_is_none(s->room) &&
	    tr_send(cx, s->room, MSG_LEAVE, NULL, 0) == TR_OK) {
		s->is_quitting = true;
		s->says_bye = bye;
		s->is_waiting = true; /* MSG_LEFT finishes the job */
		return;
	}
	if (bye) {
		conn_printf(cx, s->conn, "* bye\n");
	}
	session_close(cx, s);
}

/* The client is done sending and we are done with its lines: go. */
static void
session_maybe_finish(tr_ctx *cx, struct session *s)
{
	if (s->is_peer_done && !s->is_waiting && s->backlog_len == 0 &&
	    !s->is_closing && !s->is_quitting) {
		session_finish(cx, s, false);
	}
}

/*
 * Rate limiting with a fixed window: the first line said after a quiet
 * spell opens a window and arms a one-shot timer that closes it. Idle
 * clients cost no timer at all. (asyncio code would compare
 * loop.time() stamps; a timer message fits an actor as well.)
 */
static void
session_open_window(tr_ctx *cx, struct session *s)
{
	if (s->is_window_open) {
		return;
	}
	s->window_lines = 0;
	s->has_warned = false;
	/* If the timer cannot be armed (the runtime is stopping) the window
	 * stays closed and the line is let through. */
	s->is_window_open =
		tr_send_after(cx, tr_self(cx), MSG_RATE_WINDOW_END, NULL, 0,
			      RATE_WINDOW_MS, NULL) == TR_OK;
}

static void
session_slow_down(tr_ctx *cx, struct session *s)
{
	session_open_window(cx, s);
	if (!s->has_warned) {
		s->has_warned = true;
		conn_printf(cx, s->conn, "! slow down\n");
	}
}

/*
 * Count a line to be said against --rate, as it arrives: what the client
 * does is measured, not how soon its room takes the line. False: drop it.
 */
static bool
session_rate_ok(tr_ctx *cx, struct session *s)
{
	if (opt.rate == 0) {
		return true;
	}
	session_open_window(cx, s);
	if (s->is_window_open && s->window_lines >= opt.rate) {
		session_slow_down(cx, s);
		return false;
	}
	s->window_lines++;
	return true;
}

static void
session_say(tr_ctx *cx, struct session *s, const char *text, size_t len)
{
	if (tr_pid_is_none(s->room)) {
		conn_printf(cx, s->conn, "! not in a room\n");
		return;
	}
	/* "NAME: text\n" on the heap, handed to the room without a copy. */
	size_t nick_len = strlen(s->nick);
	size_t total = nick_len + 2 + len + 1;
	char *line = malloc(total);
	if (line == NULL) {
		return;
	}
	memcpy(line, s->nick, nick_len);
	memcpy(line + nick_len, ": ", 2);
	memcpy(line + nick_len + 2, text, len);
	line[total - 1] = '\n';
	/* Ownership moves on every path: on failure it is freed. */
	if (send_line(cx, s->room, MSG_SAY, line, total) == TR_OK) {
		s->at_room++; /* until the room's MSG_SAID */
	}
}

static void
session_send_join(tr_ctx *cx, struct session *s)
{
	struct join_msg j;

	memset(&j, 0, sizeof(j));
	j.session = tr_self(cx);
	j.conn = s->conn;
	memcpy(j.nick, s->nick, sizeof(j.nick));
	memcpy(j.room, s->next_room, sizeof(j.room));
	s->is_waiting = true;
	if (tr_send(cx, directory_pid, MSG_JOIN, &j, sizeof(j)) < 0) {
		session_close(cx, s);
	}
}

static void
session_nick(tr_ctx *cx, struct session *s, const char *arg, size_t len)
{
	struct name_msg n;

	if (!valid_name(arg, len)) {
		conn_printf(cx, s->conn, "! bad nick\n");
		return;
	}
	memset(&n, 0, sizeof(n));
	memcpy(n.name, arg, len);
	if (strcmp(n.name, s->nick) == 0) {
		conn_printf(cx, s->conn, "* you are now %s\n", s->nick);
		return;
	}
	/* Only the directory can tell whether the name is free. */
	s->is_waiting = true;
	if (tr_send(cx, directory_pid, MSG_NICK, &n, sizeof(n)) < 0) {
		session_close(cx, s);
	}
}

static void
session_join(tr_ctx *cx, struct session *s, const char *arg, size_t len)
{
	/* "#kitchen" is the room "kitchen" (see "Room names" above). */
	if (len > 0 && arg[0] == '#') {
		arg++;
		len--;
	}
	if (!valid_name(arg, len)) {
		conn_printf(cx, s->conn, "! bad room\n");
		return;
	}
	if (!tr_pid_is_none(s->room) && strlen(s->room_name) == len &&
	    strncasecmp(s->room_name, arg, len) == 0) {
		conn_printf(cx, s->conn, "! already in %s\n", s->room_name);
		return;
	}
	memset(s->next_room, 0, sizeof(s->next_room));
	memcpy(s->next_room, arg, len);
	if (tr_pid_is_none(s->room)) {
		session_send_join(cx, s);
		return;
	}
	/* Leave first and join once the old room confirms (MSG_LEFT): the
	 * client is never in two rooms, and counts are never stale. */
	s->is_waiting = true;
	if (tr_send(cx, s->room, MSG_LEAVE, NULL, 0) < 0) {
		session_close(cx, s);
	}
}

/*
 * A question whose answer (MSG_TEXT) we write to the client. We wait for
 * it like for any request, so that answers come back in the order the
 * questions were asked, and so that we never close the connection while
 * an answer is still on its way.
 */
static void
session_ask(tr_ctx *cx, struct session *s, tr_pid to, uint32_t type)
{
	s->is_waiting = true;
	if (tr_send(cx, to, type, NULL, 0) < 0) {
		session_close(cx, s);
	}
}

static void
session_ask_room(tr_ctx *cx, struct session *s, uint32_t type)
{
	if (tr_pid_is_none(s->room)) {
		conn_printf(cx, s->conn, "! not in a room\n");
	} else {
		session_ask(cx, s, s->room, type);
	}
}

static bool
is_cmd(const char *line, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(line, name, len) == 0;
}

/* One complete line, when nothing holds the session back. */
static void
session_run(tr_ctx *cx, struct session *s, const char *line, size_t len)
{
	if (len == 0) {
		return;
	}
	if (line[0] != '/') {
		session_say(cx, s, line, len);
		return;
	}
	/* "/cmd arg": split at the first space, trim the argument. */
	size_t cmd_len = 0;
	while (cmd_len < len && line[cmd_len] != ' ') {
		cmd_len++;
	}
	const char *arg = line + cmd_len;
	size_t arg_len = len - cmd_len;
	while (arg_len > 0 && arg[0] == ' ') {
		arg++;
		arg_len--;
	}
	while (arg_len > 0 && arg[arg_len - 1] == ' ') {
		arg_len--;
	}

	if (is_cmd(line, cmd_len, "/nick")) {
		session_nick(cx, s, arg, arg_len);
	} else if (is_cmd(line, cmd_len, "/join")) {
		session_join(cx, s, arg, arg_len);
	} else if (is_cmd(line, cmd_len, "/who")) {
		session_ask_room(cx, s, MSG_WHO);
	} else if (is_cmd(line, cmd_len, "/stats")) {
		session_ask_room(cx, s, MSG_STATS);
	} else if (is_cmd(line, cmd_len, "/rooms")) {
		session_ask(cx, s, directory_pid, MSG_ROOMS);
	} else if (is_cmd(line, cmd_len, "/nodes")) {
		session_ask(cx, s, directory_pid, MSG_NODES);
	} else if (is_cmd(line, cmd_len, "/quit")) {
		session_finish(cx, s, true);
	} else {
		conn_printf(cx, s->conn, "! unknown command\n");
	}
}

/*
 * A line while the session is held back: keep a copy (the framer's
 * pointer is only valid until its next call). The backlog is bounded: a
 * client that gets more than BACKLOG_MAX bytes ahead of the server is
 * flooding, whatever its rate.
 */
static void
session_keep(tr_ctx *cx, struct session *s, const char *line, size_t len)
{
	size_t need = s->backlog_len + len + 1;

	if (need > BACKLOG_MAX) {
		session_slow_down(cx, s);
		return;
	}
	if (need > s->backlog_cap) {
		size_t cap = s->backlog_cap > 0 ? s->backlog_cap : 1024;
		while (cap < need) {
			cap *= 2;
		}
		char *p = realloc(s->backlog, cap);
		if (p == NULL) {
			return;
		}
		s->backlog = p;
		s->backlog_cap = cap;
	}
	memcpy(s->backlog + s->backlog_len, line, len);
	s->backlog[s->backlog_len + len] = '\n';
	s->backlog_len = need;
}

static void
session_line(tr_ctx *cx, struct session *s, const char *line, size_t len)
{
	if (s->is_closing || s->is_quitting) {
		return;
	}
	if (len > 0 && line[0] != '/' && !session_rate_ok(cx, s)) {
		return; /* over the rate: dropped */
	}
	if (session_is_held(s)) {
		session_keep(cx, s, line, len);
	} else {
		session_run(cx, s, line, len);
	}
}

/* An answer or an acknowledgement came: run the kept lines until one
 * holds the session back again. */
static void
session_pump(tr_ctx *cx, struct session *s)
{
	size_t off = 0;

	while (off < s->backlog_len && !session_is_held(s) && !s->is_closing &&
	       !s->is_quitting) {
		const char *line = s->backlog + off;
		const char *nl = memchr(line, '\n', s->backlog_len - off);
		size_t len = (size_t)(nl - line);

		session_run(cx, s, line, len);
		off += len + 1;
	}
	if (s->is_closing || s->is_quitting) {
		off = s->backlog_len; /* nothing more will run */
	}
	if (off > 0) {
		s->backlog_len -= off;
		memmove(s->backlog, s->backlog + off, s->backlog_len);
	}
	session_maybe_finish(cx, s);
}

/* The answer to our request came. */
static void
session_resume(tr_ctx *cx, struct session *s)
{
	s->is_waiting = false;
	session_pump(cx, s);
}

static void
session_data(tr_ctx *cx, struct session *s, const tr_tcp_data *d)
{
	const void *line;
	size_t len;
	int r;

	if (s->is_closing) {
		return;
	}
	/* The framer borrows d->bytes until next() returns 0 or an error,
	 * which happens before this handler returns and the runtime frees
	 * the data. Only an unfinished last line is copied. */
	r = tr_framer_feed(&s->framer, d->bytes, d->len);
	if (r == TR_OK) {
		while ((r = tr_framer_next(&s->framer, &line, &len)) > 0) {
			session_line(cx, s, line, len);
		}
	}
	if (r < 0 && !s->is_closing) {
		if (r == TR_EMSGSIZE) {
			conn_printf(cx, s->conn, "! line too long\n");
		}
		session_close(cx, s);
	}
}

static int
session_init(tr_ctx *cx, void *state, void *arg)
{
	struct session *s = state;

	(void)cx;
	(void)arg; /* tr_tcp_listen() gives none */
	return tr_framer_init(&s->framer, TR_FRAME_LINE, LINE_MAX_LEN);
}

static void
session_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct session *s = state;

	switch (m->type) {
	case TR_MSG_TCP_OPEN: {
		tr_tcp_event e;

		memcpy(&e, m->data, sizeof(e));
		s->conn = e.conn;
		/* Ask for a name; lines that come meanwhile wait in order. */
		s->is_waiting = true;
		if (tr_send(cx, directory_pid, MSG_HELLO, NULL, 0) < 0) {
			session_close(cx, s);
		}
		break;
	}
	case TR_MSG_TCP_DATA: {
		const tr_tcp_data *d =
			TR_MSG_AS_FAM(m, tr_tcp_data, len, bytes);
		if (d != NULL) {
			session_data(cx, s, d);
		}
		break;
	}
	case TR_MSG_TCP_EOF:
		s->is_peer_done = true;
		session_maybe_finish(cx, s);
		break;
	case TR_MSG_TCP_CLOSED:
		/* Closed by us, by the peer, or by the runtime (ENOBUFS for a
		 * client that does not read). Stopping is all it takes: the
		 * room and the directory monitor us and clean up. */
		tr_stop_self(cx, TR_EXIT_NORMAL);
		break;
	case MSG_NAMED: {
		struct name_msg n;

		if (m->size != sizeof(n)) {
			break;
		}
		memcpy(&n, m->data, sizeof(n));
		memcpy(s->nick, n.name, sizeof(s->nick));
		conn_printf(cx, s->conn, "* welcome, you are %s\n", s->nick);
		memcpy(s->next_room, LOBBY, sizeof(LOBBY));
		session_send_join(cx, s); /* still waiting, now for the room */
		break;
	}
	case MSG_NICK_OK: {
		struct name_msg n;

		if (m->size != sizeof(n)) {
			break;
		}
		memcpy(&n, m->data, sizeof(n));
		memcpy(s->nick, n.name, sizeof(s->nick));
		conn_printf(cx, s->conn, "* you are now %s\n", s->nick);
		if (!tr_pid_is_none(s->room) &&
		    tr_send(cx, s->room, MSG_RENAME, &n, sizeof(n)) == TR_OK) {
			s->at_room++; /* acknowledged like a line */
		}
		session_resume(cx, s);
		break;
	}
	case MSG_NICK_TAKEN:
		conn_printf(cx, s->conn, "! nick taken\n");
		session_resume(cx, s);
		break;
	case MSG_SAID: {
		uint32_t n;

		if (m->size != sizeof(n)) {
			break;
		}
		memcpy(&n, m->data, sizeof(n));
		s->at_room = s->at_room > n ? s->at_room - n : 0;
		if (!s->is_waiting) {
			session_pump(cx, s);
		}
		break;
	}
	case MSG_LEFT:
		/* The room wrote out all we said before it answered. */
		if (s->room_mon.v != 0) {
			(void)tr_demonitor(cx, s->room_mon);
			s->room_mon.v = 0;
		}
		s->at_room = 0;
		s->room = TR_PID_NONE;
		s->room_name[0] = '\0';
		if (s->is_quitting) {
			if (s->says_bye) {
				conn_printf(cx, s->conn, "* bye\n");
			}
			session_close(cx, s);
		} else {
			session_send_join(cx, s); /* on to the next room */
		}
		break;
	case MSG_JOINED: {
		struct name_msg n;

		if (m->size != sizeof(n)) {
			break;
		}
		memcpy(&n, m->data, sizeof(n));
		s->room = tr_sender(cx);
		/* A room on another node can go with its node, and then no
		 * answer we wait for would come: watch it. */
		if (is_remote(s->room) &&
		    tr_monitor(cx, s->room, &s->room_mon) != TR_OK) {
			s->room_mon.v = 0;
		}
		memcpy(s->room_name, n.name, sizeof(s->room_name));
		s->room_name[NAME_MAX_LEN] = '\0';
		session_resume(cx, s);
		break;
	}
	case MSG_JOIN_FAILED:
		conn_printf(cx, s->conn, "! cannot join %s\n", s->next_room);
		session_resume(cx, s);
		break;
	case MSG_TEXT:
		/* The answer to /who, /stats, /rooms or /nodes, copied or
		 * handed over. */
		(void)tr_tcp_write(cx, s->conn, m->data, m->size);
		session_resume(cx, s);
		break;
	case MSG_OUT:
		/* What our room, on another node, writes to us. */
		if (is_remote(m->from)) {
			(void)tr_tcp_write(cx, s->conn, m->data, m->size);
		}
		break;
	case TR_MSG_DOWN: {
		/* Our room on another node is gone, with its node (or its
		 * node stopped). What we said there and any answer we wait
		 * for are lost with it: tell the client and close, it may
		 * come back and join again. */
		const tr_down *dn = TR_MSG_AS(m, tr_down);

		if (dn != NULL && dn->ref.v == s->room_mon.v &&
		    !s->is_closing) {
			s->room_mon.v = 0;
			conn_printf(cx, s->conn,
				    "! room %s lost with its node\n",
				    s->room_name);
			session_close(cx, s);
		}
		break;
	}
	case MSG_RATE_WINDOW_END:
		s->is_window_open = false;
		break;
	case MSG_SHUTDOWN:
		/* The server stops: say so, and close once everything
		 * written so far has gone out. Input is ignored from now. */
		if (!s->is_closing) {
			conn_printf(cx, s->conn, "* server stopping\n");
			session_close(cx, s);
		}
		break;
	default:
		break;
	}
}

static void
session_teardown(tr_ctx *cx, void *state, int32_t reason)
{
	struct session *s = state;

	(void)cx;
	(void)reason;
	tr_framer_fini(&s->framer);
	free(s->backlog);
}

static const tr_actor_def session_def = {
	.size = sizeof(tr_actor_def),
	.name = "chat-session",
	.state_size = sizeof(struct session),
	.init = session_init,
	.teardown = session_teardown,
	.handle = session_handle,
};

/* ------------------------------------------------------------------ */
/* The server: opens the listener, as in 03_echo.c                     */

static void
server_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	if (m->type == MSG_START) {
		uint16_t port;

		memcpy(&port, m->data, sizeof(port));
		/* The listener is ours: it closes when this actor stops. */
		if (tr_tcp_listen(cx, "0.0.0.0", port, &session_def, NULL,
				  NULL) < 0) {
			fprintf(stderr, "chat: cannot listen\n");
			listen_failed = true;
			tr_runtime_stop(tr_ctx_runtime(cx));
		}
	} else if (m->type == TR_MSG_TCP_LISTENING) {
		tr_tcp_listening l;

		memcpy(&l, m->data, sizeof(l));
		if (l.status < 0) {
			fprintf(stderr, "chat: listen failed: %s\n", l.error);
			listen_failed = true;
			tr_runtime_stop(tr_ctx_runtime(cx));
			return;
		}
		/* The one line on stdout; scripts wait for it. */
		if (net != NULL) {
			printf("listening on %u, node %s at %s\n", l.port,
			       opt.node, node_addr);
		} else {
			printf("listening on %u\n", l.port);
		}
		fflush(stdout);
	}
}

static const tr_actor_def server_def = {
	.size = sizeof(tr_actor_def),
	.name = "chat-server",
	.handle = server_handle,
};

/* ------------------------------------------------------------------ */
/* main: options, start, and the stop                                  */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
usage(void)
{
	fprintf(stderr, "usage: example-chat [--rate LINES_PER_SEC] "
			"[--workers N] [--flush-ms MS] [--window LINES] "
			"[--stop-timeout SECONDS] [--node NAME [--listen URL] "
			"[--join URL]... --secret SECRET] [port]\n");
	exit(2);
}

static unsigned long
parse_ulong(const char *s, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end != '\0' || s[0] == '-' || v > max) {
		usage();
	}
	return v;
}

static void
parse_options(int argc, char **argv)
{
	bool has_port = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || a[1] == '\0') {
			if (has_port) {
				usage();
			}
			opt.port = (uint16_t)parse_ulong(a, 65535);
			has_port = true;
			continue;
		}
		if (i + 1 >= argc) {
			usage();
		}
		const char *v = argv[++i];
		if (strcmp(a, "--rate") == 0) {
			opt.rate = (unsigned)parse_ulong(v, 1000000);
		} else if (strcmp(a, "--workers") == 0) {
			opt.workers = (unsigned)parse_ulong(v, 256);
		} else if (strcmp(a, "--flush-ms") == 0) {
			opt.flush_ms = (unsigned)parse_ulong(v, 1000);
		} else if (strcmp(a, "--window") == 0) {
			opt.window = (unsigned)parse_ulong(v, 1024);
			if (opt.window == 0) {
				usage(); /* nothing could ever be said */
			}
		} else if (strcmp(a, "--stop-timeout") == 0) {
			char *end;
			double sec = strtod(v, &end);

			if (end == v || *end != '\0' || !(sec >= 0.0) ||
			    sec > 86400.0) {
				usage();
			}
			opt.stop_ms = (uint64_t)(sec * 1000.0);
		} else if (strcmp(a, "--node") == 0) {
			opt.node = v;
		} else if (strcmp(a, "--listen") == 0) {
			opt.listen = v;
		} else if (strcmp(a, "--join") == 0 && opt.njoins < 8) {
			opt.joins[opt.njoins++] = v;
		} else if (strcmp(a, "--secret") == 0) {
			opt.secret = v;
		} else {
			usage();
		}
	}
	/* The cluster's options go with --node, and it needs a secret. */
	if ((opt.node == NULL) != (opt.secret == NULL) ||
	    (opt.node == NULL && opt.njoins > 0)) {
		usage();
	}
}

/*
 * With --node: make the runtime a node of the chat cluster. The registry
 * holds the one name other nodes reach here, the directory's.
 */
static bool
cluster_start(tr_runtime *rt, tr_registry **reg)
{
	tr_net_config nc = { .size = sizeof(nc),
			     .name = opt.node,
			     .listen = opt.listen,
			     .seeds = opt.joins,
			     .secret = opt.secret,
			     .secret_len = strlen(opt.secret) };
	tr_err err;

	if ((err = tr_registry_create(rt, reg)) != TR_OK ||
	    (err = tr_registry_register(*reg, DIRECTORY_NAME, directory_pid)) !=
		    TR_OK) {
		fprintf(stderr, "chat: registry: %s\n", tr_err_name(err));
		return false;
	}
	nc.registry = *reg;
	if ((err = tr_net_start(rt, &nc, &net)) != TR_OK ||
	    (err = tr_net_address(net, node_addr, sizeof(node_addr))) !=
		    TR_OK) {
		fprintf(stderr, "chat: node: %s\n", tr_err_name(err));
		return false;
	}
	return true;
}

/*
 * The graceful stop, in asyncio terms: server.close(), tell every client,
 * then asyncio.wait_for(all_clients_gone, timeout), then cancel the rest.
 * Returns when every client is gone, the timeout passed, or a second
 * signal came; the caller then stops the runtime.
 */
static void
shut_down(tr_runtime *rt, tr_inbox *ib, tr_pid server)
{
	uint64_t deadline = now_ms() + opt.stop_ms;

	/* No new clients: the listener closes with its owner. */
	(void)tr_stop(tr_runtime_ctx(rt), server, TR_EXIT_NORMAL);
	/* Sent on the inbox's context, so that MSG_ALL_GONE comes back
	 * here. */
	if (tr_send(tr_inbox_ctx(ib), directory_pid, MSG_SHUTDOWN, NULL, 0) <
	    0) {
		return;
	}
	for (;;) {
		uint64_t now = now_ms();
		tr_received m;

		if (now >= deadline ||
		    tr_inbox_recv(ib, NULL, (int64_t)(deadline - now), &m) !=
			    TR_OK) {
			return; /* the timeout, or the runtime is stopping */
		}
		uint32_t type = m.type;
		tr_received_fini(&m);
		if (type == MSG_ALL_GONE || type == TR_MSG_SIGNAL) {
			return;
		}
	}
}

int
main(int argc, char **argv)
{
	bool failed = false;
	tr_runtime *rt;
	tr_inbox *ib = NULL;
	tr_registry *reg = NULL;
	tr_pid server;

	parse_options(argc, argv);
	/*
	 * A write to a connection that the client has reset can raise
	 * SIGPIPE (libuv writes with write(), not send(MSG_NOSIGNAL)), and
	 * its default action ends the process. Ignore it, as Python does at
	 * startup: the write then fails with EPIPE and only that connection
	 * closes.
	 */
	signal(SIGPIPE, SIG_IGN);

	tr_config cfg = tr_config_default();
	cfg.workers = opt.workers;
	if (tr_runtime_create(&cfg, &rt) < 0) {
		fprintf(stderr, "chat: cannot create the runtime\n");
		return 1;
	}
	/* Spawned before the start, so directory_pid is set before any
	 * session can read it. */
	if (tr_spawn(tr_runtime_ctx(rt), &directory_def, NULL, &directory_pid) <
		    0 ||
	    tr_spawn(tr_runtime_ctx(rt), &server_def, NULL, &server) < 0 ||
	    tr_runtime_start(rt) < 0) {
		fprintf(stderr, "chat: cannot start the runtime\n");
		tr_runtime_destroy(rt);
		return 1;
	}
	/*
	 * SIGINT/SIGTERM come to main's inbox as messages, so that main can
	 * run the stop (shut_down). Installed before we listen, so a signal
	 * sent once "listening" is printed is always handled.
	 */
	if ((opt.node != NULL && !cluster_start(rt, &reg)) ||
	    tr_inbox_create(rt, &ib) < 0 ||
	    tr_runtime_handle_signals(rt, tr_self(tr_inbox_ctx(ib))) < 0 ||
	    tr_send(tr_runtime_ctx(rt), server, MSG_START, &opt.port,
		    sizeof(opt.port)) < 0) {
		fprintf(stderr, "chat: cannot start the server\n");
		failed = true;
	}
	while (!failed) {
		tr_received m;

		/* TR_ECLOSED: the runtime stopped (the listen failed). */
		if (tr_inbox_recv(ib, NULL, -1, &m) != TR_OK) {
			break;
		}
		uint32_t type = m.type;
		tr_received_fini(&m);
		if (type == TR_MSG_SIGNAL) {
			shut_down(rt, ib, server);
			break;
		}
	}
	/*
	 * Every actor stops. What is still queued for one is cheap by now:
	 * a closing session ignores input, a stopping room drops lines, and
	 * the windows kept every room's queue short.
	 */
	tr_runtime_stop(rt);
	tr_runtime_join(rt);
	/* The node after the join (the last monitors and exits of actors
	 * still cross), before the runtime's memory. */
	if (net != NULL) {
		tr_net_stop(net);
	}
	tr_registry_destroy(reg);
	tr_inbox_destroy(ib);
	tr_runtime_destroy(rt);
	return failed || listen_failed ? 1 : 0;
}
