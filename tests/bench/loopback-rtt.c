/*
 * loopback-rtt: the floor under remote_pingpong. Two processes exchange a
 * 64-byte message over loopback TCP (TCP_NODELAY), one at a time, each
 * blocked in read(2) until it arrives: no runtime, no nng, one thread on
 * each side.
 *
 *     loopback-rtt [n]      n round trips (default 20,000)
 *
 * Prints one JSON line like troupe-bench, in round_trips/s; the check is
 * that every reply carried the number of its request.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SIZE = 64 };

static bool
read_all(int fd, unsigned char *buf)
{
	size_t got = 0;

	while (got < SIZE) {
		ssize_t r = read(fd, buf + got, SIZE - got);
		if (r <= 0) {
			return false;
		}
		got += (size_t)r;
	}
	return true;
}

static bool
write_all(int fd, const unsigned char *buf)
{
	size_t put = 0;

	while (put < SIZE) {
		ssize_t r = write(fd, buf + put, SIZE - put);
		if (r <= 0) {
			return false;
		}
		put += (size_t)r;
	}
	return true;
}

static void
no_delay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (n == 0 || ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(ls, 1) ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
		fprintf(stderr, "loopback-rtt: cannot listen\n");
		return 2;
	}
	pid_t child = fork();
	if (child == 0) {
		/* The echo side: answer each message with itself. */
		unsigned char buf[SIZE];
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a))) {
			_exit(2);
		}
		no_delay(s);
		while (read_all(s, buf) && write_all(s, buf)) {
		}
		_exit(0);
	}
	int s = accept(ls, NULL, NULL);
	if (child < 0 || s < 0) {
		fprintf(stderr, "loopback-rtt: no peer\n");
		return 2;
	}
	no_delay(s);
	unsigned char buf[SIZE];
	bool ok = true;
	struct timespec t0, t1;
	memset(buf, 0, sizeof(buf));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < n && ok; i++) {
		memcpy(buf, &i, sizeof(i));
		uint64_t back = ~i;
		ok = write_all(s, buf) && read_all(s, buf);
		memcpy(&back, buf, sizeof(back));
		ok = ok && back == i;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(s);
	(void)waitpid(child, NULL, 0);
	double wall = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"impl\":\"c\",\"bench\":\"loopback_rtt\",\"threads\":1,"
	       "\"n\":%" PRIu64 ",\"wall_s\":%.6f,\"rate\":%.1f,"
	       "\"unit\":\"round_trips/s\",\"check\":\"%s\"}\n",
	       n, wall, (double)n / wall,
	       ok ? "ok" : "fail: a reply was wrong");
	return ok ? 0 : 1;
}
