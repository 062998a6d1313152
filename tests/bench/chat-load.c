/*
 * chat-load: a fan-out load for the chat example (examples/04_chat.c).
 *
 *     chat-load --port P [--clients 200] [--rooms 20] [--lines 500]
 *               [--pid SERVER_PID] [--size 40]
 *
 * Connects the clients (client i is "c<i>" in room "#r<i % rooms>"),
 * waits until every client sees every member of its room in /who, then
 * has each client say its lines as fast as the server takes them: at most
 * WINDOW of its own lines not yet echoed back to it (a client that floods
 * without looking is told to slow down, and its extra lines are dropped). Every
 * line goes to every member of its room, the sender included (the chat
 * echoes it), so the run expects exactly clients * members * lines
 * deliveries; each client counts the lines it gets ("c<j>: m...") and the
 * run ends when every client has all of its own. Prints one JSON line:
 * deliveries, seconds, deliveries per second and, with --pid, the server's CPU
 * time per delivery (user + system, from /proc). check is "ok" only if every
 * client got exactly what it should. The server must be started with no
 * rate limit (example-chat --rate 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

enum { WINDOW = 32 };

struct client {
	int fd;
	unsigned id;
	unsigned room;
	unsigned echoed; /* own lines seen back */
	unsigned sent;   /* lines said */
	uint64_t got;    /* lines said in its room, its own included */
	uint64_t want;   /* lines it must get */
	bool synced;     /* /who listed the whole room */
	bool who_asked;
	char in[65536];
	size_t in_len;
	char *out; /* pending output */
	size_t out_len, out_off, out_cap;
};

static unsigned n_clients = 200, n_rooms = 20, n_lines = 500, line_size = 40;
static int port = 7001;
static int server_pid;
static unsigned
members_per_room(unsigned r)
{
	return n_clients / n_rooms + (r < n_clients % n_rooms ? 1 : 0);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
server_cpu_s(void)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;

	if (server_pid <= 0) {
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", server_pid);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		return 0;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	/* Fields after ")": state is 3; utime 14 and stime 15. */
	if (p == NULL || sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %lu %lu",
				&ut, &st) != 2) {
		return 0;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
queue_out(struct client *c, const char *s, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap == 0 ? 4096 : c->out_cap;
		while (cap < c->out_len + n) {
			cap *= 2;
		}
		c->out = realloc(c->out, cap);
		if (c->out == NULL) {
			perror("realloc");
			exit(2);
		}
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
}

static void
flush_out(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off,
				  c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN) {
				return;
			}
			perror("write");
			exit(2);
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

static unsigned synced_count;
static char *say_line;

/* Say more lines, keeping at most WINDOW of them not yet echoed. */
static void
say_more(struct client *c)
{
	while (c->sent < n_lines && c->sent - c->echoed < WINDOW) {
		queue_out(c, say_line, line_size);
		c->sent++;
	}
	flush_out(c);
}

static void
on_line(struct client *c, char *line, size_t len)
{
	if (len > 1 && line[0] == 'c') {
		char *colon = memchr(line, ':', len);
		if (colon != NULL && colon + 2 < line + len &&
		    colon[2] == 'm') {
			c->got++;
			if ((unsigned)strtoul(line + 1, NULL, 10) == c->id) {
				c->echoed++;
			}
			return;
		}
	}
	if (!c->synced && len >= 10 && memcmp(line, "* members:", 10) == 0) {
		unsigned words = 0;
		for (size_t i = 10; i < len; i++) {
			words += line[i] == ' ';
		}
		c->who_asked = false;
		if (words == members_per_room(c->room)) {
			c->synced = true;
			synced_count++;
		}
	}
}

static void
read_in(struct client *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len,
				 sizeof(c->in) - c->in_len);
		if (n == 0) {
			fprintf(stderr, "chat-load: server closed a client\n");
			exit(2);
		}
		if (n < 0) {
			if (errno == EAGAIN) {
				return;
			}
			perror("read");
			exit(2);
		}
		c->in_len += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < c->in_len; i++) {
			if (c->in[i] == '\n') {
				on_line(c, c->in + start, i - start);
				start = i + 1;
			}
		}
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
}

int
main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i];
		unsigned v = (unsigned)strtoul(argv[i + 1], NULL, 10);
		if (strcmp(k, "--port") == 0) {
			port = (int)v;
		} else if (strcmp(k, "--clients") == 0) {
			n_clients = v;
		} else if (strcmp(k, "--rooms") == 0) {
			n_rooms = v;
		} else if (strcmp(k, "--lines") == 0) {
			n_lines = v;
		} else if (strcmp(k, "--pid") == 0) {
			server_pid = (int)v;
		} else if (strcmp(k, "--size") == 0) {
			line_size = v;
		} else {
			fprintf(stderr, "chat-load: unknown option %s\n", k);
			return 2;
		}
	}
	if (n_rooms == 0 || n_clients < 2 * n_rooms || line_size < 8 ||
	    line_size > 1000) {
		fprintf(stderr, "chat-load: bad arguments\n");
		return 2;
	}
	struct client *cl = calloc(n_clients, sizeof(*cl));
	int ep = epoll_create1(0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	for (unsigned i = 0; i < n_clients; i++) {
		struct client *c = &cl[i];
		char cmd[128];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 ||
		    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			perror("connect");
			return 2;
		}
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		c->id = i;
		c->room = i % n_rooms;
		c->want = (uint64_t)members_per_room(c->room) * n_lines;
		int n = snprintf(cmd, sizeof(cmd), "/nick c%u\n/join r%u\n", i,
				 c->room);
		queue_out(c, cmd, (size_t)n);
		flush_out(c);
		struct epoll_event ev = { .events =
						  EPOLLIN | EPOLLOUT | EPOLLET,
					  .data.u32 = i };
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	/* Sync: ask /who until each client sees its whole room. */
	double deadline = now_s() + 120;
	struct epoll_event evs[256];
	while (synced_count < n_clients) {
		for (unsigned i = 0; i < n_clients; i++) {
			if (!cl[i].synced && !cl[i].who_asked) {
				cl[i].who_asked = true;
				queue_out(&cl[i], "/who\n", 5);
				flush_out(&cl[i]);
			}
		}
		int n = epoll_wait(ep, evs, 256, 100);
		for (int k = 0; k < n; k++) {
			struct client *c = &cl[evs[k].data.u32];
			if (evs[k].events & EPOLLIN) {
				read_in(c);
			}
			flush_out(c);
		}
		if (now_s() > deadline) {
			fprintf(stderr, "chat-load: %u of %u clients synced\n",
				synced_count, n_clients);
			return 1;
		}
	}
	say_line = malloc(line_size + 1);
	memset(say_line, 'x', line_size);
	say_line[line_size - 1] = '\n';
	say_line[0] = 'm';
	double cpu0 = server_cpu_s(), t0 = now_s();
	for (unsigned i = 0; i < n_clients; i++) {
		say_more(&cl[i]);
	}
	uint64_t want = 0, got = 0;
	for (unsigned i = 0; i < n_clients; i++) {
		want += cl[i].want;
	}
	deadline = now_s() + 300;
	while (got < want) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int k = 0; k < n; k++) {
			struct client *c = &cl[evs[k].data.u32];
			if (evs[k].events & EPOLLIN) {
				uint64_t before = c->got;
				read_in(c);
				got += c->got - before;
			}
			say_more(c);
		}
		if (now_s() > deadline) {
			break;
		}
	}
	double wall = now_s() - t0, cpu = server_cpu_s() - cpu0;
	bool ok = got == want;
	for (unsigned i = 0; i < n_clients; i++) {
		ok = ok && cl[i].got == cl[i].want;
	}
	printf("{\"bench\":\"chat\",\"clients\":%u,\"rooms\":%u,\"lines\":%u,"
	       "\"deliveries\":%llu,\"wall_s\":%.3f,\"rate\":%.0f,"
	       "\"server_cpu_us_per_delivery\":%.3f,\"check\":\"%s\"}\n",
	       n_clients, n_rooms, n_lines, (unsigned long long)got, wall,
	       (double)got / wall,
	       server_pid > 0 && got > 0 ? cpu * 1e6 / (double)got : 0.0,
	       ok ? "ok" : "short");
	return ok ? 0 : 1;
}
