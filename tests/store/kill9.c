/*
 * kill -9 of a writing process, in a loop: no acknowledged write is
 * missing after a restart, and replay is exact.
 *
 *     kill9 WRITER [LIVES]      TROUPE_KILL9_SEED=N replays a run
 *
 * Each life runs WRITER (kill9-writer.c) on the same database file. The
 * writer first checks what the lives before it left (see there), then
 * writes from journal writers and persistent actors and prints a line
 * per acknowledged write. This program reads the lines and kills the
 * writer with SIGKILL at a random moment: after a random number of
 * acknowledgements, a random delay after it started writing, or a random
 * delay after it started (which can land in the store's open, a
 * recovery or the check). Lines already written when the kill comes are
 * still read: each is a write the store acknowledged. What the lives
 * were told goes to the next one, with the most that can be there (what
 * was acknowledged, or where writing resumed, plus the writes that can
 * be in flight), and the next life's check fails on anything missing.
 *
 * This side checks the acknowledgements themselves: sequence numbers
 * rise, and the state a persistent actor reports with each one is the
 * state its events give. After the last life, a check-only life (no
 * kill, a clean stop) must pass, and then the check must be able to
 * fail: with acknowledged events deleted from the file behind the
 * store's back, the check must name each of them.
 *
 * The seed is printed first; a failure prints the life, what the check
 * said, and keeps the database.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kill9.h"

/* With no line for this long, a life is stuck: a failure. It is long,
 * since a sanitizer build on a loaded machine is slow. */
#define STUCK_MS 120000

static const char *writer;
static char dir[64], db[96];
static uint64_t rng;
static int failures;

static uint64_t
rnd(void)
{
	rng += 0x9e3779b97f4a7c15ull;
	return k9_mix(rng);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* What the lives so far were told, per id. */
struct id {
	uint64_t acked; /* the highest acknowledged sequence number */
	uint64_t head;  /* where the last life that wrote resumed from */
};

static struct id js[K9_JOURNALS], ps[K9_PERSISTENT];

/* The full replay of persistent actor k up to its last acknowledgement,
 * kept to check the next one. */
static struct k9_sum folds[K9_PERSISTENT];

static uint64_t
most(const struct id *x, uint64_t in_flight)
{
	return (x->acked > x->head ? x->acked : x->head) + in_flight;
}

/* How a life ends. */
enum plan {
	AFTER_ACKS,  /* after n acknowledgements */
	AFTER_READY, /* n microseconds after it started writing */
	AFTER_SPAWN, /* n microseconds after it started */
	NO_KILL,     /* a check-only life that stops by itself */
};

struct life {
	enum plan plan;
	uint64_t n;
	/* What happened. */
	bool ready, checked, check_failed, killed;
	uint64_t acks;
	uint64_t head_j[K9_JOURNALS], head_p[K9_PERSISTENT];
	int status;
	char fails[2048]; /* the FAIL lines */
};

static void
note_fail(struct life *l, const char *line)
{
	size_t n = strlen(l->fails);

	snprintf(l->fails + n, sizeof(l->fails) - n, "    %s\n", line);
}

/* One line of the writer. */
static void
on_line(struct life *l, int no, char *line)
{
	unsigned k;
	uint64_t seq, head;
	int64_t total;
	uint64_t chain;

	if (sscanf(line, "J %u %" SCNu64, &k, &seq) == 2 && k < K9_JOURNALS) {
		if (seq <= js[k].acked) {
			fprintf(stderr,
				"kill9: life %d: j/%u acknowledged %" PRIu64
				" after %" PRIu64 "\n",
				no, k, seq, js[k].acked);
			failures++;
		}
		js[k].acked = seq;
		l->acks++;
	} else if (sscanf(line, "P %u %" SCNu64 " %" SCNd64 " %" SCNu64, &k,
			  &seq, &total, &chain) == 4 &&
		   k < K9_PERSISTENT) {
		if (seq <= ps[k].acked) {
			fprintf(stderr,
				"kill9: life %d: p/%u persisted %" PRIu64
				" after %" PRIu64 "\n",
				no, k, seq, ps[k].acked);
			failures++;
		}
		struct k9_sum *f = &folds[k];
		if (f->count > seq) {
			*f = k9_fold(k, 0);
		}
		while (f->count < seq) {
			struct k9_event ev = { .seq = f->count + 1,
					       .value = k9_value(
						       k, f->count + 1) };
			k9_apply(f, f->count + 1, &ev);
		}
		if (f->total != total || f->chain != chain) {
			fprintf(stderr,
				"kill9: life %d: p/%u at %" PRIu64
				" reported total %" PRId64
				", its events give %" PRId64 "\n",
				no, k, seq, total, f->total);
			failures++;
		}
		ps[k].acked = seq;
		l->acks++;
	} else if (sscanf(line, "HEAD J %u %" SCNu64, &k, &head) == 2 &&
		   k < K9_JOURNALS) {
		l->head_j[k] = head;
	} else if (sscanf(line, "HEAD P %u %" SCNu64, &k, &head) == 2 &&
		   k < K9_PERSISTENT) {
		l->head_p[k] = head;
	} else if (strcmp(line, "READY") == 0) {
		/* The writers start from these heads now. */
		l->ready = true;
		for (k = 0; k < K9_JOURNALS; k++) {
			js[k].head = l->head_j[k];
		}
		for (k = 0; k < K9_PERSISTENT; k++) {
			ps[k].head = l->head_p[k];
		}
	} else if (strcmp(line, "CHECKED") == 0) {
		l->checked = true;
	} else if (strcmp(line, "CHECK FAILED") == 0) {
		l->check_failed = true;
	} else if (strncmp(line, "FAIL ", 5) == 0) {
		note_fail(l, line + 5);
	} else {
		/* "E ...": a write failed; or a line nobody wrote. */
		fprintf(stderr, "kill9: life %d: %s\n", no, line);
		failures++;
	}
}

/* Whether the life's plan says: kill now; else *@wait_us until it may. */
static bool
kill_due(const struct life *l, uint64_t t0, uint64_t t_ready, int64_t *wait_us)
{
	uint64_t t = now_us(), at;

	*wait_us = (int64_t)STUCK_MS * 1000;
	switch (l->plan) {
	case AFTER_ACKS:
		return l->ready && l->acks >= l->n;
	case AFTER_READY:
		if (!l->ready) {
			return false;
		}
		at = t_ready + l->n;
		break;
	case AFTER_SPAWN:
		at = t0 + l->n;
		break;
	default:
		return false;
	}
	if (t >= at) {
		return true;
	}
	*wait_us = (int64_t)(at - t);
	return false;
}

/* Runs one life to its end: the writer's exit or its kill. */
static bool
run_life(int no, struct life *l)
{
	int in[2], out[2];

	if (pipe(in) != 0 || pipe(out) != 0) {
		perror("kill9: pipe");
		return false;
	}
	uint64_t t0 = now_us(), t_ready = 0;
	pid_t pid = fork();
	if (pid < 0) {
		perror("kill9: fork");
		return false;
	}
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl(writer, writer, db, l->plan == NO_KILL ? "check" : "run",
		      (char *)NULL);
		perror("kill9: exec");
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	FILE *f = fdopen(in[1], "w");
	for (unsigned k = 0; f != NULL && k < K9_JOURNALS; k++) {
		fprintf(f, "J %u %" PRIu64 " %" PRIu64 "\n", k, js[k].acked,
			most(&js[k], k9_window(k)));
	}
	for (unsigned k = 0; f != NULL && k < K9_PERSISTENT; k++) {
		fprintf(f, "P %u %" PRIu64 " %" PRIu64 "\n", k, ps[k].acked,
			most(&ps[k], K9_BATCH_MAX));
	}
	if (f != NULL) {
		fclose(f); /* a writer killed early: EPIPE, ignored */
	} else {
		close(in[1]);
	}

	char buf[8192];
	size_t have = 0;
	uint64_t last_line = now_us();
	bool stuck = false;
	for (;;) {
		int64_t wait_us;
		if (!l->killed && kill_due(l, t0, t_ready, &wait_us)) {
			kill(pid, SIGKILL);
			l->killed = true;
		}
		if (l->killed) {
			wait_us = (int64_t)STUCK_MS * 1000;
		}
		struct pollfd pf = { .fd = out[0], .events = POLLIN };
		struct timespec ts = { (time_t)(wait_us / 1000000),
				       (long)(wait_us % 1000000) * 1000 };
		int pr = ppoll(&pf, 1, &ts, NULL);
		if (pr < 0 && errno == EINTR) {
			continue;
		}
		if (pr == 0) {
			if (now_us() - last_line > (uint64_t)STUCK_MS * 1000) {
				stuck = true;
				kill(pid, SIGKILL);
				l->killed = true;
			}
			continue;
		}
		ssize_t n = read(out[0], buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break; /* the writer is gone, its lines all read */
		}
		last_line = now_us();
		have += (size_t)n;
		buf[have] = '\0';
		char *p = buf, *nl;
		while ((nl = strchr(p, '\n')) != NULL) {
			*nl = '\0';
			bool was_ready = l->ready;
			on_line(l, no, p);
			if (l->ready && !was_ready) {
				t_ready = now_us();
			}
			p = nl + 1;
		}
		have = (size_t)(buf + have - p);
		memmove(buf, p, have);
		if (have == sizeof(buf) - 1) {
			fprintf(stderr, "kill9: life %d: a line too long\n",
				no);
			failures++;
			have = 0;
		}
	}
	close(out[0]);
	while (waitpid(pid, &l->status, 0) < 0 && errno == EINTR) {
	}
	if (stuck) {
		fprintf(stderr, "kill9: life %d: no line for %d s\n", no,
			STUCK_MS / 1000);
		failures++;
	}
	return true;
}

static void
report_life(int no, const struct life *l)
{
	fprintf(stderr, "kill9: life %d failed its check:\n%s", no, l->fails);
}

/* Deletes acknowledged events behind the store's back: j/0 loses one in
 * the middle (a gap), j/1 and p/0 their last (a shorter journal). */
static bool
tamper(void)
{
	sqlite3 *h = NULL;
	char sql[512];

	if (js[0].acked < 2 || js[1].acked < 1 || ps[0].acked < 1) {
		fprintf(stderr, "kill9: too few acknowledged writes to try "
				"the check\n");
		return false;
	}
	snprintf(
		sql, sizeof(sql),
		"BEGIN;"
		"DELETE FROM troupe_journal WHERE id = 'j/0' AND seq = %" PRIu64
		";"
		"DELETE FROM troupe_journal WHERE id = 'j/1' AND seq >= "
		"%" PRIu64 ";"
		"UPDATE troupe_journal_head SET last_seq = %" PRIu64
		" WHERE id = 'j/1';"
		"DELETE FROM troupe_journal WHERE id = 'p/0' AND seq >= "
		"%" PRIu64 ";"
		"UPDATE troupe_journal_head SET last_seq = %" PRIu64
		" WHERE id = 'p/0';"
		"COMMIT;",
		js[0].acked / 2, js[1].acked, js[1].acked - 1, ps[0].acked,
		ps[0].acked - 1);
	bool ok = sqlite3_open(db, &h) == SQLITE_OK &&
		  sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
	if (!ok) {
		fprintf(stderr, "kill9: cannot change %s: %s\n", db,
			h != NULL ? sqlite3_errmsg(h) : "no memory");
	}
	sqlite3_close(h);
	return ok;
}

static void
remove_db(void)
{
	static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
	char p[128];

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", db, tails[i]);
		(void)unlink(p);
	}
	(void)rmdir(dir);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kill9 WRITER [LIVES]\n");
		return 2;
	}
	writer = argv[1];
	int lives = argc > 2 ? atoi(argv[2]) : 120;
	const char *s = getenv("TROUPE_KILL9_SEED");
	uint64_t seed =
		s != NULL ? strtoull(s, NULL, 10)
			  : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	rng = seed;
	printf("kill9: seed %" PRIu64 " (TROUPE_KILL9_SEED=%" PRIu64
	       " replays the plan), %d lives\n",
	       seed, seed, lives);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/troupe-kill9-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("kill9: mkdtemp");
		return 1;
	}
	snprintf(db, sizeof(db), "%s/db", dir);

	int early = 0, writing = 0;
	uint64_t acks = 0;
	for (int no = 1; no <= lives && failures == 0; no++) {
		struct life l;
		memset(&l, 0, sizeof(l));
		switch (rnd() % 4) {
		case 0:
		case 1:
			l.plan = AFTER_ACKS;
			l.n = rnd() % 120;
			break;
		case 2:
			l.plan = AFTER_READY;
			l.n = rnd() % 20000;
			break;
		default:
			l.plan = AFTER_SPAWN;
			l.n = rnd() % 40000;
			break;
		}
		if (!run_life(no, &l)) {
			failures++;
			break;
		}
		acks += l.acks;
		if (l.check_failed || l.fails[0] != '\0') {
			report_life(no, &l);
			failures++;
		} else if (!WIFSIGNALED(l.status) ||
			   WTERMSIG(l.status) != SIGKILL) {
			fprintf(stderr,
				"kill9: life %d ended by itself (status "
				"0x%x)\n",
				no, l.status);
			failures++;
		} else if (l.ready) {
			writing++;
		} else {
			early++;
		}
	}
	printf("kill9: %d lives killed while writing, %d before, %" PRIu64
	       " writes acknowledged\n",
	       writing, early, acks);
	for (unsigned k = 0; k < K9_JOURNALS; k++) {
		printf("kill9: j/%u acknowledged up to %" PRIu64 "\n", k,
		       js[k].acked);
	}
	for (unsigned k = 0; k < K9_PERSISTENT; k++) {
		printf("kill9: p/%u acknowledged up to %" PRIu64 "\n", k,
		       ps[k].acked);
	}

	/* The last kill checked too, and a clean stop. */
	if (failures == 0) {
		struct life l;
		memset(&l, 0, sizeof(l));
		l.plan = NO_KILL;
		if (!run_life(lives + 1, &l) || !l.checked ||
		    !WIFEXITED(l.status) || WEXITSTATUS(l.status) != 0) {
			report_life(lives + 1, &l);
			fprintf(stderr, "kill9: the last check: status 0x%x\n",
				l.status);
			failures++;
		}
	}
	/* The check can fail: it names every deleted event. */
	if (failures == 0) {
		struct life l;
		memset(&l, 0, sizeof(l));
		l.plan = NO_KILL;
		if (!tamper() || !run_life(lives + 2, &l)) {
			failures++;
		} else if (!l.check_failed || !WIFEXITED(l.status) ||
			   WEXITSTATUS(l.status) != 1 ||
			   strstr(l.fails, "j/0: a gap") == NULL ||
			   strstr(l.fails, "j/1: acknowledged up to") == NULL ||
			   strstr(l.fails, "p/0: acknowledged up to") == NULL) {
			fprintf(stderr,
				"kill9: deleted events were not all found "
				"(status 0x%x):\n%s",
				l.status, l.fails);
			failures++;
		} else {
			printf("kill9: deleted events found:\n%s", l.fails);
		}
	}
	if (failures != 0) {
		fprintf(stderr,
			"kill9: FAILED with seed %" PRIu64 "; database "
			"kept in %s\n",
			seed, db);
		return 1;
	}
	remove_db();
	printf("kill9: ok\n");
	return 0;
}
