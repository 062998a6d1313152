/*
 * agenthub: an agent hub on troupe. Clients connect over TCP and send
 * tasks as JSON lines; a manager splits each task into subtasks, a pool of
 * supervised employees runs them (real tools as child processes, and a
 * simulated model service behind a rate limiter and a circuit breaker),
 * and the results stream back as JSON lines. Employees crash on purpose,
 * the model fails and has outages, and every task still gets exactly one
 * result.
 *
 *     agenthub                     the hub and 20 simulated clients for
 *                                  10 s, a progress line a second, then a
 *                                  summary and a self-check (exit 0 only
 *                                  if it passes)
 *     agenthub --no-load           only the hub, until Ctrl-C; then
 *     nc 127.0.0.1 7400            and type "summarise the docs"
 *     agenthub --db hub.db         the same, keeping an activity log in
 *                                  hub.db (SQLite): every task taken and
 *                                  how it ended; at startup, what the
 *                                  previous runs finished and which of
 *                                  their tasks were interrupted
 *
 * The protocol, one JSON object per line each way:
 *
 *   client: {"task": "find error in server.log", "id": "a1"}
 *           "id" is optional (a string or a number). A line that does not
 *           start with "{" is a task in plain words; tasks without an id
 *           get "auto-1", "auto-2", ... in the order of the connection.
 *   hub:    {"id": "a1", "event": "accepted", "subtasks": 1}
 *           {"id": "a1", "event": "progress", "done": 1, "total": 1,
 *            "subtask": "grep error server.log"}
 *           {"id": "a1", "event": "result", "ok": true,
 *            "result": {"subtasks": 1, "retries": 0, "files":
 *                       {"server.log": {"grep": {"word": "error",
 *                                                "matches": 14}}}},
 *            "ms": 4}
 *   errors: {"event": "error", "error": "..."} for malformed JSON, a field
 *           other than "task" and "id", or a task that cannot be taken
 *           (with its "id" when it had one); the connection stays open. A
 *           line over 4096 bytes gets "line too long" and is disconnected.
 *
 * "ok" is false when a subtask gave up (see lead.c): the result then
 * holds what succeeded and a "failed" list. A task that runs longer than
 * --task-timeout ends with "ok": false and {"error": "timed out ..."}.
 *
 * The actors (one file each, see agenthub.h):
 *
 *   listener -> session (one per client) -> "manager" -> jobs service
 *     -> lead (one per task, a job) -> pool "employees"
 *     -> employee (N, supervised) -> child processes, and
 *        rate limiter -> circuit breaker -> tr_request -> "model"
 *   manager, leads -> "tasks" and "breaker" topics -> monitor
 *   client (N, simulated, over loopback) -> the listener
 *
 * main() is not an actor. It sets everything up, waits on an inbox (for
 * the listener's port, the clients' reports and Ctrl-C), drains the load,
 * stops the runtime and checks that every count agrees with every other.
 *
 * Ctrl-C or SIGTERM stops the hub within a bound: the listener closes,
 * the simulated clients stop sending, new tasks get {"event": "error",
 * "error": "the hub is stopping"}, and the open tasks have --stop-timeout
 * seconds (5) to finish. Those still open then get their result at once,
 * "ok": false with {"error": "the hub is stopping"}, so that every task
 * the hub accepted still gets exactly one result. Then the runtime stops,
 * the summary and the checks are printed, and the exit status is 0 if
 * they pass. A second signal stops at once.
 *
 * --db FILE keeps an activity log in FILE through a store actor
 * (<troupe/actors/store.h>), opened before anything else starts; a file
 * the store refuses (not a database, a newer or foreign schema, locked)
 * ends the program with status 2 and the store's reason on stderr. Each
 * run has an id, the wall clock in ms at its start, in every record:
 *
 *   kind       by       body
 *   start      main     {"run", "pid", "employees"}
 *   task       manager  {"run", "task", "seq", "id", "text", "subtasks"}
 *   result     manager  {"run", "task", "ok", "ms", "result"} ("summary"
 *                        in place of "result" when it is over 4 KB)
 *   aborted    manager  the same, for a task failed by the stop's deadline
 *   cancelled  manager  {"run", "task", "ms"}: its client went away
 *   stop       main     {"run", "tasks", "results", "cancelled"}
 *
 * "task" is the task's number (its job's id), "seq" and "id" the
 * session's and the client's names for it. Before serving, the hub reads
 * the log back and prints a line per previous run: how many tasks
 * finished (ok, failed), and the numbers of those interrupted (taken,
 * with no result and not cancelled: the hub was killed while they ran):
 *
 *   db         previous run 1733598000123: 412 finished (398 ok,
 *              14 failed), 3 interrupted: 17, 18, 22
 */
#include "agenthub.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <troupe/actors/pool.h>
#include <troupe/actors/store.h>
#include <troupe/actors/supervisor.h>

#ifndef AGENTHUB_DATA_DIR
#define AGENTHUB_DATA_DIR "data"
#endif

struct hub hub;
struct hub_stats stats;

enum {
	DRAIN_WAIT_MS = 120000, /* generous: sanitizer builds are slow */
	SETTLE_WAIT_MS = 20000,
	/* After a stop's deadline: answering the open tasks takes a few
	 * messages each; this only bounds a hub that is broken. */
	ABORT_WAIT_MS = 5000,
	DEFAULT_STOP_TIMEOUT_S = 5,
	DB_WAIT_MS = 60000,        /* for one answer of the store */
	DB_PAGE = 1000,            /* records read at once */
	DB_RUNS_SHOWN = 10,        /* previous runs reported one by one */
	DB_INTERRUPTED_SHOWN = 20, /* task numbers listed per run */
};

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
now_ms(void)
{
	return now_ns() / 1000000u;
}

uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double
hub_seconds(void)
{
	return (double)(now_ns() - hub.t0_ns) / 1e9;
}

/*
 * Take @name for the calling actor. A restarted actor takes over the name
 * of the one it replaces at once (tr_registry_replace), instead of waiting
 * for the registry to notice that the old holder stopped; a live holder
 * keeps its name.
 */
tr_err
register_name(tr_ctx *cx, const char *name)
{
	tr_pid old;

	if (tr_registry_whereis(hub.reg, name, &old) == TR_OK &&
	    !tr_pid_eq(old, tr_self(cx))) {
		if (tr_actor_alive(tr_ctx_runtime(cx), old)) {
			return TR_EEXIST;
		}
		return tr_registry_replace(hub.reg, name, old, tr_self(cx));
	}
	return tr_registry_register(hub.reg, name, tr_self(cx));
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: agenthub [options]\n"
		"  --port P              listen on 127.0.0.1:P (default %d; 0: "
		"any)\n"
		"  --seconds S           load for S seconds (default 10; 0: "
		"until "
		"Ctrl-C)\n"
		"  --no-load             only the hub, until Ctrl-C (for nc)\n"
		"  --clients N           simulated clients (default 20)\n"
		"  --tasks-per-client N  each client sends N tasks, then the "
		"run "
		"ends\n"
		"  --inflight N          tasks each client keeps open (default "
		"1)\n"
		"  --employees N         employees in the pool (default 8)\n"
		"  --crash-rate R        fraction of subtask attempts that "
		"crash "
		"their\n"
		"                        employee (default 0.02)\n"
		"  --model-fail F        fraction of model calls that fail "
		"(default 0.05)\n"
		"  --task-timeout MS     a task still running after MS ms "
		"fails "
		"(default 30000)\n"
		"  --model-rate N        model calls per second the limiter "
		"allows\n"
		"                        (default 200)\n"
		"  --outage-every S      the model is down once every S "
		"seconds "
		"(default 4;\n"
		"                        0: never) ...\n"
		"  --outage-ms MS        ... for MS milliseconds (default "
		"1000)\n"
		"  --workers N           scheduler threads (default: one per "
		"core)\n"
		"  --stop-timeout S      on Ctrl-C, open tasks get S seconds "
		"to "
		"finish,\n"
		"                        then fail (default %d)\n"
		"  --seed N              seed of every random choice (default "
		"1)\n"
		"  --data DIR            the data files (default: the shipped "
		"ones)\n"
		"  --db FILE             keep an activity log in FILE "
		"(SQLite): every task\n"
		"                        and its result; at startup, report "
		"what the\n"
		"                        previous runs finished and which "
		"tasks were\n"
		"                        interrupted\n"
		"  --quiet               no progress lines\n",
		DEFAULT_PORT, DEFAULT_STOP_TIMEOUT_S);
}

static bool
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max) {
		return false;
	}
	*out = v;
	return true;
}

static bool
parse_rate(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
		return false;
	}
	*out = v;
	return true;
}

static void
parse_options(int argc, char **argv, struct hub_options *o,
	      const char **data_dir)
{
	bool has_seconds = false;

	*o = (struct hub_options){
		.port = DEFAULT_PORT,
		.seconds = 10,
		.clients = 20,
		.inflight = 1,
		.employees = 8,
		.crash_rate = 0.02,
		.model_fail = 0.05,
		.task_timeout_ms = 30000,
		.model_rate = 200,
		.outage_every_ms = 4000,
		.outage_ms = 1000,
		.seed = 1,
		.stop_timeout_ms = DEFAULT_STOP_TIMEOUT_S * 1000,
	};
	*data_dir = AGENTHUB_DATA_DIR;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long n = 0;
		bool ok = true;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--no-load") == 0) {
			o->is_no_load = true;
			continue;
		} else if (strcmp(a, "--quiet") == 0) {
			o->is_quiet = true;
			continue;
		} else if (v == NULL) {
			ok = false;
		} else if (strcmp(a, "--port") == 0) {
			ok = parse_uint(v, 65535, &n);
			o->port = (uint16_t)n;
		} else if (strcmp(a, "--seconds") == 0) {
			ok = parse_uint(v, 86400, &n);
			o->seconds = (unsigned)n;
			has_seconds = true;
		} else if (strcmp(a, "--clients") == 0) {
			ok = parse_uint(v, 1000, &n);
			o->clients = (unsigned)n;
		} else if (strcmp(a, "--tasks-per-client") == 0) {
			ok = parse_uint(v, 1000000, &n) && n > 0;
			o->tasks_per_client = (unsigned)n;
		} else if (strcmp(a, "--inflight") == 0) {
			ok = parse_uint(v, 16, &n) && n > 0;
			o->inflight = (unsigned)n;
		} else if (strcmp(a, "--employees") == 0) {
			ok = parse_uint(v, TR_POOL_MAX_WORKERS, &n) && n > 0;
			o->employees = (unsigned)n;
		} else if (strcmp(a, "--workers") == 0) {
			ok = parse_uint(v, 64, &n);
			o->workers = (unsigned)n;
		} else if (strcmp(a, "--crash-rate") == 0) {
			ok = parse_rate(v, &o->crash_rate) &&
			     o->crash_rate <= 0.5;
		} else if (strcmp(a, "--model-fail") == 0) {
			ok = parse_rate(v, &o->model_fail);
		} else if (strcmp(a, "--task-timeout") == 0) {
			ok = parse_uint(v, 86400000, &n) && n > 0;
			o->task_timeout_ms = (unsigned)n;
		} else if (strcmp(a, "--model-rate") == 0) {
			ok = parse_uint(v, 1000000, &n) && n > 0;
			o->model_rate = (unsigned)n;
		} else if (strcmp(a, "--outage-every") == 0) {
			ok = parse_uint(v, 3600, &n);
			o->outage_every_ms = (unsigned)n * 1000;
		} else if (strcmp(a, "--outage-ms") == 0) {
			ok = parse_uint(v, 3600000, &n);
			o->outage_ms = (unsigned)n;
		} else if (strcmp(a, "--stop-timeout") == 0) {
			ok = parse_uint(v, 3600, &n);
			o->stop_timeout_ms = (unsigned)n * 1000;
		} else if (strcmp(a, "--seed") == 0) {
			ok = parse_uint(v, ~0ul, &n);
			o->seed = n;
		} else if (strcmp(a, "--data") == 0) {
			*data_dir = v;
		} else if (strcmp(a, "--db") == 0) {
			ok = v[0] != '\0';
			o->db = v;
		} else {
			ok = false;
		}
		if (!ok) {
			fprintf(stderr, "agenthub: bad option %s%s%s\n", a,
				v != NULL ? " " : "", v != NULL ? v : "");
			usage(stderr);
			exit(2);
		}
		i++;
	}
	/* Only the hub: nc users want it to stay up. */
	if (o->is_no_load && !has_seconds) {
		o->seconds = 0;
	}
	if (o->outage_ms >= o->outage_every_ms) {
		o->outage_every_ms = 0; /* an outage that never ends: none */
	}
}

/* ------------------------------------------------------------------ */
/* The data files                                                      */

static bool
is_data_name(const char *n)
{
	size_t len = strlen(n);
	const char *dot = strrchr(n, '.');

	if (len == 0 || len >= FILE_NAME_MAX || n[0] == '.' || dot == NULL ||
	    dot == n || dot[1] == '\0') {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-')) {
			return false;
		}
	}
	return true;
}

static int
cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct data_file *)a)->name,
		      ((const struct data_file *)b)->name);
}

/* The files the planner may choose from: plain names in @dir, sorted. */
static bool
load_data_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL) {
		fprintf(stderr,
			"agenthub: cannot open the data directory %s: "
			"%s\n",
			dir, strerror(errno));
		return false;
	}
	snprintf(hub.data_dir, sizeof(hub.data_dir), "%s", dir);
	while ((e = readdir(d)) != NULL && hub.n_files < MAX_FILES) {
		if (!is_data_name(e->d_name)) {
			continue;
		}
		struct data_file *f = &hub.files[hub.n_files++];
		snprintf(f->name, sizeof(f->name), "%s", e->d_name);
		snprintf(f->stem, sizeof(f->stem), "%s", e->d_name);
		*strrchr(f->stem, '.') = '\0';
		for (char *p = f->stem; *p; p++) { /* the planner lower-cases */
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		}
	}
	closedir(d);
	qsort(hub.files, hub.n_files, sizeof(hub.files[0]), cmp_file);
	if (hub.n_files == 0) {
		fprintf(stderr, "agenthub: no data files in %s\n", dir);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* The run, seen from main                                             */

/* What one previous run did, as its records in the log tell (--db). */
struct prev_run {
	uint64_t run;
	uint64_t finished, ok, failed; /* failed includes aborted */
	uint64_t aborted;              /* failed by the stop's deadline */
	uint64_t cancelled;            /* their client went away */
	uint64_t interrupted;          /* taken, no result, not cancelled */
	uint64_t listed[DB_INTERRUPTED_SHOWN]; /* the first interrupted */
	bool has_stop;                         /* it wrote its stop record */
};

struct run {
	tr_runtime *rt;
	tr_inbox *inbox;
	tr_ctx *cx; /* the inbox's context: what is sent on it is answered
		     * to the inbox */
	tr_pid me;  /* the inbox's pid */
	tr_pid top; /* supervisor of the model and the manager */
	tr_pid pool;
	tr_pid server;
	tr_pid monitor;
	tr_pid *clients;
	struct client_args *client_args;
	unsigned n_clients; /* the simulated ones plus the rogue */
	uint16_t port;
	/* what came back */
	struct client_report *reports;
	unsigned n_reports;
	bool has_listening;
	struct listening listening;
	bool has_status;
	struct mgr_status status;
	bool has_report;
	struct report report;
	bool has_pool;
	tr_pool_reply pool_stats;
	uint64_t crashes_asked; /* crashes injected when pool_stats was asked */
	unsigned signals;
	double load_s;
	tr_metrics fin;
	tr_jobs_stats jobs;
	/* --db */
	struct prev_run *prev; /* what the previous runs did, oldest first */
	size_t n_prev;
	char db_read_error[TR_STORE_ERROR_SIZE]; /* the log unreadable */
	uint64_t db_written, db_failed;          /* main's own records */
	bool has_store_stats;
	tr_store_stats store_stats;
};

static void
die(const char *what, int err)
{
	fprintf(stderr, "agenthub: %s: %s\n", what, tr_strerror(err));
	exit(1);
}

/* Take one message from the inbox, if one comes within @ms, and note
 * what it says. */
static void
pump(struct run *r, int64_t ms)
{
	tr_received m;

	if (tr_inbox_recv(r->inbox, NULL, ms, &m) != TR_OK) {
		return;
	}
	switch (m.type) {
	case TR_MSG_SIGNAL:
		r->signals++;
		printf("\n%s: finishing (again to stop at once)\n",
		       r->signals == 1 ? "signal" : "second signal");
		fflush(stdout);
		if (r->signals > 1) {
			tr_runtime_stop(r->rt);
		}
		break;
	case MSG_LISTENING:
		if (m.size == sizeof(r->listening)) {
			memcpy(&r->listening, m.data, m.size);
			r->has_listening = true;
		}
		break;
	case MSG_CLIENT_DONE:
		if (m.size == sizeof(struct client_report) &&
		    r->n_reports < r->n_clients) {
			memcpy(&r->reports[r->n_reports++], m.data, m.size);
		}
		break;
	case MSG_STATUS_REPLY:
		if (m.size == sizeof(r->status)) {
			memcpy(&r->status, m.data, m.size);
			r->has_status = true;
		}
		break;
	case MSG_REPORT_REPLY:
		if (m.size == sizeof(r->report)) {
			memcpy(&r->report, m.data, m.size);
			r->has_report = true;
		}
		break;
	case TR_MSG_POOL_REPLY: {
		const tr_pool_reply *rp = TR_MSG_AS(&m, tr_pool_reply);
		if (rp != NULL) {
			r->pool_stats = *rp;
			r->has_pool = true;
		}
		break;
	}
	default:
		break;
	}
	tr_received_fini(&m);
}

/* Pump until @done(r) or @ms pass (or a second Ctrl-C). */
static bool
wait_for(struct run *r, bool (*done)(const struct run *), int64_t ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (!done(r) && r->signals < 2) {
		uint64_t now = now_ms();
		if (now >= end) {
			return false;
		}
		pump(r, (int64_t)(end - now < 200 ? end - now : 200));
	}
	return done(r);
}

static bool
is_listening(const struct run *r)
{
	return r->has_listening;
}

static bool
all_reported(const struct run *r)
{
	return r->n_reports == r->n_clients;
}

static bool
has_status(const struct run *r)
{
	return r->has_status;
}

static bool
has_report(const struct run *r)
{
	return r->has_report;
}

static bool
has_pool(const struct run *r)
{
	return r->has_pool;
}

/*
 * The outcome of a start made on the inbox's context: the pool's, the
 * supervisor's or the jobs service's start reply, or TR_MSG_REQUEST_FAILED if
 * it stopped before it answered. Anything else that arrives meanwhile stays
 * queued.
 */
static tr_err
await_start(struct run *r, tr_ref ref)
{
	tr_received m;
	tr_err err = tr_inbox_recv(r->inbox, &ref, -1, &m);

	if (err < 0) {
		return err;
	}
	const tr_pool_reply *pool = TR_MSG_AS(&m, tr_pool_reply);
	const tr_sup_reply *sup = TR_MSG_AS(&m, tr_sup_reply);
	const tr_jobs_reply *jobs = TR_MSG_AS(&m, tr_jobs_reply);
	if (m.type == TR_MSG_POOL_REPLY && pool != NULL) {
		err = pool->status;
	} else if (m.type == TR_MSG_SUP_REPLY && sup != NULL) {
		err = sup->status;
	} else if (m.type == TR_MSG_JOBS_REPLY && jobs != NULL) {
		err = jobs->status;
	} else {
		err = TR_ECLOSED;
	}
	tr_received_fini(&m);
	return err;
}

/* ------------------------------------------------------------------ */
/* The activity log (--db)                                             */

/* One record of the log, as much of it as the report needs. */
enum rec_what {
	REC_TASK = 1,
	REC_OK,
	REC_FAILED,
	REC_ABORTED,
	REC_CANCELLED,
	REC_STOP,
};

struct rec {
	uint64_t run;
	uint64_t task;
	uint64_t id;   /* the record's: the order they were written in */
	uint32_t what; /* enum rec_what */
};

struct recs {
	struct rec *items;
	size_t n, cap;
	uint64_t last_run; /* the highest run id seen, start records too */
};

/* Stop what setup() started so far and leave with @status. */
static void
give_up(struct run *r, int status)
{
	tr_runtime_stop(r->rt);
	(void)tr_runtime_join(r->rt);
	tr_inbox_destroy(r->inbox);
	tr_runtime_destroy(r->rt);
	exit(status);
}

/* A request to the store, waited for; its outcome in *@m (then
 * tr_received_fini). */
static tr_err
store_call(struct run *r, uint32_t type, const void *req, size_t size,
	   tr_received *m)
{
	tr_ref ref;
	tr_err err =
		tr_request(r->cx, hub.store, type, req, size, DB_WAIT_MS, &ref);

	return err < 0 ? err : tr_inbox_recv(r->inbox, &ref, -1, m);
}

/* One of main's own records (start, stop), waited for; @body is freed. */
static void
db_append(struct run *r, const char *kind, cJSON *body)
{
	char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
	size_t len = text != NULL ? strlen(text) : 0;
	tr_store_log_req *q = text != NULL ? calloc(1, sizeof(*q) + len) : NULL;
	tr_received m;

	cJSON_Delete(body);
	if (q == NULL) {
		cJSON_free(text);
		r->db_failed++;
		return;
	}
	q->time_ms = (int64_t)wall_ms();
	snprintf(q->kind, sizeof(q->kind), "%s", kind);
	snprintf(q->actor, sizeof(q->actor), "agenthub");
	q->size = len;
	memcpy(q->body, text, len);
	cJSON_free(text);
	if (store_call(r, TR_MSG_STORE_LOG_APPEND, q, sizeof(*q) + len, &m) <
	    0) {
		r->db_failed++;
	} else {
		if (m.type == TR_MSG_STORE_REPLY) {
			r->db_written++;
		} else {
			r->db_failed++;
		}
		tr_received_fini(&m);
	}
	free(q);
}

/* Keep what the report needs of one record; false when out of memory. */
static bool
db_note(struct recs *rs, const tr_store_log_record *rec, const char *body)
{
	cJSON *o = cJSON_ParseWithLength(body, rec->body_size);
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run");
	const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
	struct rec x = { .id = rec->id };

	/* Records of other writers, or without a run, are not ours. */
	if (!cJSON_IsNumber(run) || run->valuedouble < 1) {
		cJSON_Delete(o);
		return true;
	}
	x.run = (uint64_t)run->valuedouble;
	if (x.run > rs->last_run) {
		rs->last_run = x.run;
	}
	x.task = cJSON_IsNumber(task) && task->valuedouble >= 0
			 ? (uint64_t)task->valuedouble
			 : 0;
	if (strcmp(rec->kind, LOG_TASK) == 0) {
		x.what = REC_TASK;
	} else if (strcmp(rec->kind, LOG_RESULT) == 0) {
		x.what = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))
				 ? REC_OK
				 : REC_FAILED;
	} else if (strcmp(rec->kind, LOG_ABORTED) == 0) {
		x.what = REC_ABORTED;
	} else if (strcmp(rec->kind, LOG_CANCELLED) == 0) {
		x.what = REC_CANCELLED;
	} else if (strcmp(rec->kind, LOG_STOP) == 0) {
		x.what = REC_STOP;
	}
	cJSON_Delete(o);
	if (x.what == 0 || (x.what != REC_STOP && x.task == 0)) {
		return true; /* a start record, or one we do not know */
	}
	if (rs->n == rs->cap) {
		size_t ncap = rs->cap > 0 ? rs->cap * 2 : 1024;
		struct rec *p = realloc(rs->items, ncap * sizeof(*p));

		if (p == NULL) {
			return false;
		}
		rs->items = p;
		rs->cap = ncap;
	}
	rs->items[rs->n++] = x;
	return true;
}

/* Read the whole log, a page at a time; false (and why in the run) if
 * it could not be read to its end. */
static bool
db_read(struct run *r, struct recs *rs)
{
	uint64_t after = 0;

	for (;;) {
		tr_store_log_query q = { .after_id = after, .limit = DB_PAGE };
		tr_received m;
		tr_err err = store_call(r, TR_MSG_STORE_LOG_QUERY, &q,
					sizeof(q), &m);

		if (err < 0) {
			snprintf(r->db_read_error, sizeof(r->db_read_error),
				 "%s", tr_strerror(err));
			return false;
		}
		const tr_store_log_page *p = m.data;
		const tr_store_error *e = TR_MSG_AS(&m, tr_store_error);
		if (m.type != TR_MSG_STORE_LOG || m.size < sizeof(*p) ||
		    (m.size - sizeof(*p)) / sizeof(p->records[0]) < p->count) {
			snprintf(r->db_read_error, sizeof(r->db_read_error),
				 "%s",
				 e != NULL ? e->text
					   : "an answer not understood");
			tr_received_fini(&m);
			return false;
		}
		bool is_ok = true;
		for (uint32_t i = 0; i < p->count && is_ok; i++) {
			const tr_store_log_record *rec = &p->records[i];

			if (rec->body_offset > m.size ||
			    rec->body_size >= m.size - rec->body_offset) {
				continue; /* cannot be: skip it */
			}
			after = rec->id;
			is_ok = db_note(rs, rec,
					(const char *)m.data +
						rec->body_offset);
		}
		bool is_more = p->more != 0 && p->count > 0;
		tr_received_fini(&m);
		if (!is_ok) {
			snprintf(r->db_read_error, sizeof(r->db_read_error),
				 "out of memory");
			return false;
		}
		if (!is_more) {
			return true;
		}
	}
}

static int
cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->run != y->run) {
		return x->run < y->run ? -1 : 1;
	}
	if (x->task != y->task) {
		return x->task < y->task ? -1 : 1;
	}
	return x->id < y->id ? -1 : x->id > y->id;
}

/* From the records, what each previous run did: per run, per task, how
 * the task ended, if it did. */
static void
db_tally(struct run *r, struct recs *rs)
{
	if (rs->n == 0) {
		return; /* an empty log: nothing to sort (items is NULL) */
	}
	qsort(rs->items, rs->n, sizeof(*rs->items), cmp_rec);
	for (size_t i = 0; i < rs->n;) {
		struct prev_run *pr;

		if (r->n_prev == 0 ||
		    r->prev[r->n_prev - 1].run != rs->items[i].run) {
			pr = realloc(r->prev, (r->n_prev + 1) * sizeof(*pr));
			if (pr == NULL) {
				return; /* out of memory: report what we have */
			}
			r->prev = pr;
			r->prev[r->n_prev] =
				(struct prev_run){ .run = rs->items[i].run };
			r->n_prev++;
		}
		pr = &r->prev[r->n_prev - 1];

		/* One task: every record with its run and number. */
		size_t j = i;
		bool is_taken = false, is_cancelled = false;
		uint32_t end = 0;
		for (; j < rs->n && rs->items[j].run == pr->run &&
		       rs->items[j].task == rs->items[i].task;
		     j++) {
			uint32_t w = rs->items[j].what;

			if (w == REC_STOP) {
				pr->has_stop = true;
			} else if (w == REC_TASK) {
				is_taken = true;
			} else if (w == REC_CANCELLED) {
				is_cancelled = true;
			} else if (end == 0) {
				end = w;
			}
		}
		if (end != 0) {
			pr->finished++;
			pr->ok += end == REC_OK;
			pr->failed += end != REC_OK;
			pr->aborted += end == REC_ABORTED;
		} else if (is_cancelled) {
			pr->cancelled++;
		} else if (is_taken) {
			if (pr->interrupted < DB_INTERRUPTED_SHOWN) {
				pr->listed[pr->interrupted] = rs->items[i].task;
			}
			pr->interrupted++;
		}
		i = j;
	}
}

/*
 * --db: start the store and wait for its answer; a file it refuses ends
 * the program (status 2) before anything else starts. Then read what the
 * previous runs left in the log, choose this run's id (after theirs,
 * even if the clock went back) and write its start record.
 */
static void
db_open(struct run *r)
{
	tr_store_config sc = {
		.size = sizeof(sc),
		.path = hub.opt.db,
		.durability = TR_STORE_NORMAL,
	};
	struct recs rs = { 0 };
	tr_received m;
	tr_ref ref;
	tr_err err = tr_store_start(r->cx, &sc, &hub.store, &ref);

	if (err == TR_OK) {
		err = tr_inbox_recv(r->inbox, &ref, -1, &m);
	}
	if (err < 0) {
		fprintf(stderr, "agenthub: --db %s: %s\n", hub.opt.db,
			tr_strerror(err));
		give_up(r, 2);
	}
	if (m.type != TR_MSG_STORE_REPLY) {
		const tr_store_error *e = TR_MSG_AS(&m, tr_store_error);

		/* The store's text names the file and the reason. */
		fprintf(stderr, "agenthub: --db: %s\n",
			e != NULL ? e->text : "the store stopped");
		tr_received_fini(&m);
		give_up(r, 2);
	}
	tr_received_fini(&m);

	(void)db_read(r, &rs);
	db_tally(r, &rs);
	hub.run = wall_ms();
	if (hub.run <= rs.last_run) {
		hub.run = rs.last_run + 1;
	}
	free(rs.items);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "run", (double)hub.run);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "employees", hub.opt.employees);
	db_append(r, LOG_START, o);
}

/* The report of the previous runs, one line each, the latest last. */
static void
db_print_report(const struct run *r)
{
	size_t first =
		r->n_prev > DB_RUNS_SHOWN ? r->n_prev - DB_RUNS_SHOWN : 0;

	printf("  db         %s, this run %" PRIu64 "%s\n", hub.opt.db, hub.run,
	       r->n_prev == 0 ? "; no previous run" : "");
	if (r->db_read_error[0] != '\0') {
		printf("  db         cannot read the activity log: %s\n",
		       r->db_read_error);
	}
	if (first > 0) {
		uint64_t finished = 0, interrupted = 0;

		for (size_t i = 0; i < first; i++) {
			finished += r->prev[i].finished;
			interrupted += r->prev[i].interrupted;
		}
		printf("  db         %zu earlier runs: %" PRIu64
		       " finished, %" PRIu64 " interrupted\n",
		       first, finished, interrupted);
	}
	for (size_t i = first; i < r->n_prev; i++) {
		const struct prev_run *p = &r->prev[i];

		printf("  db         %s %" PRIu64 ": %" PRIu64
		       " finished (%" PRIu64 " ok, %" PRIu64 " failed",
		       i + 1 == r->n_prev ? "previous run" : "run", p->run,
		       p->finished, p->ok, p->failed);
		if (p->aborted > 0) {
			printf(", %" PRIu64 " of them at the stop's deadline",
			       p->aborted);
		}
		printf("), %" PRIu64 " interrupted", p->interrupted);
		for (uint64_t k = 0;
		     k < p->interrupted && k < DB_INTERRUPTED_SHOWN; k++) {
			printf("%s%" PRIu64, k == 0 ? ": " : ", ",
			       p->listed[k]);
		}
		if (p->interrupted > DB_INTERRUPTED_SHOWN) {
			printf(", ... (%" PRIu64 " more)",
			       p->interrupted - DB_INTERRUPTED_SHOWN);
		}
		if (p->cancelled > 0) {
			printf("; %" PRIu64 " cancelled (client gone)",
			       p->cancelled);
		}
		if (!p->has_stop) {
			printf("; no stop record (killed?)");
		}
		printf("\n");
	}
}

/* --db, at the end: the stop record, then the store's counters, to check
 * them against the manager's (every record written or refused once). */
static void
db_finish(struct run *r)
{
	tr_received m;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "run", (double)hub.run);
	cJSON_AddNumberToObject(o, "tasks", (double)r->status.tasks);
	cJSON_AddNumberToObject(o, "results", (double)r->status.results);
	cJSON_AddNumberToObject(o, "cancelled", (double)r->status.cancelled);
	db_append(r, LOG_STOP, o);
	if (store_call(r, TR_MSG_STORE_STATS, NULL, 0, &m) < 0) {
		return;
	}
	const tr_store_stats *st = TR_MSG_AS(&m, tr_store_stats);
	if (m.type == TR_MSG_STORE_STATS_REPLY && st != NULL) {
		r->store_stats = *st;
		r->has_store_stats = true;
	}
	tr_received_fini(&m);
}

/* Create the services and the actors; listen. */
static void
setup(struct run *r)
{
	tr_err err;
	tr_ref ref;

	tr_config cfg = tr_config_default();
	cfg.workers = hub.opt.workers;
	if ((err = tr_runtime_create(&cfg, &r->rt)) < 0) {
		die("tr_runtime_create", err);
	}
	hub.t0_ns = now_ns();
	if ((err = tr_runtime_start(r->rt)) < 0 ||
	    (err = tr_inbox_create(r->rt, &r->inbox)) < 0) {
		die("starting the runtime", err);
	}
	r->cx = tr_inbox_ctx(r->inbox);
	r->me = tr_self(tr_inbox_ctx(r->inbox));

	/* The activity log first: a file the store refuses ends the program
	 * before anything else runs. */
	if (hub.opt.db != NULL) {
		db_open(r);
	}

	/* The shared services. `hub` is complete before any actor that reads
	 * it is spawned (a spawn orders what came before it). */
	tr_ratelimit_config rl = {
		.size = sizeof(rl),
		.rate = hub.opt.model_rate, /* calls per second */
		.burst = 20,
		.max_wait_ms = 250,
	};
	tr_breaker_config bc = {
		.size = sizeof(bc),
		.failure_threshold = 5, /* five failures in a row, or */
		.window = 20,           /* half of the last twenty calls */
		.min_calls = 10,
		.failure_rate_pct = 50,
		.recovery_ms = 500,    /* then half a second open */
		.half_open_trials = 3, /* then three trial calls */
		.id = 1,
	};
	if ((err = tr_registry_create(r->rt, &hub.reg)) < 0 ||
	    (err = tr_pubsub_create(r->rt, &hub.bus)) < 0 ||
	    (err = tr_ratelimit_start(tr_runtime_ctx(r->rt), &rl, &hub.limiter,
				      NULL)) < 0 ||
	    (err = tr_breaker_create(r->rt, &bc, &hub.breaker)) < 0) {
		die("creating the services", err);
	}
	/* Ctrl-C and SIGTERM come to the inbox as messages. */
	if ((err = tr_runtime_handle_signals(r->rt, r->me)) < 0) {
		die("tr_runtime_handle_signals", err);
	}

	/*
	 * Each task runs as a job: a lead actor of its own, at most
	 * LEADS_MAX at once; more wait in the jobs service's queue. The
	 * service is an actor, started before the manager that uses it.
	 */
	tr_jobs_kind kinds[] = { {
		.name = JOB_KIND_TASK,
		.def = &lead_def,
		.max_concurrency = LEADS_MAX,
	} };
	tr_jobs_config jc = { .size = sizeof(jc), .kinds = kinds, .nkinds = 1 };
	if ((err = tr_jobs_start(r->cx, &jc, &hub.jobs, &ref)) < 0 ||
	    (err = await_start(r, ref)) < 0) {
		die("starting the jobs service", err);
	}

	/* The progress printer first, so it hears every event. */
	if ((err = tr_spawn(r->cx, &monitor_def, NULL, &r->monitor)) < 0) {
		die("spawning the monitor", err);
	}

	/*
	 * The employees: a pool, which starts them under its own supervisor
	 * (one_for_one, permanent children). Injected crashes come fast, so
	 * the restart intensity is set far above them; a real hub would keep
	 * a tight limit (OTP's default is 1 in 5 s), so that an employee that
	 * keeps crashing moves the failure up the tree.
	 */
	tr_pool_config pc = {
		.size = sizeof(pc),
		.def = &employee_def,
		.workers = hub.opt.employees,
		.strategy = TR_POOL_ROUND_ROBIN,
		.intensity = 100000,
		.period_ms = 1000,
		.shutdown_ms = 1000,
	};
	if ((err = tr_pool_start(r->cx, &pc, &r->pool, &ref)) < 0 ||
	    (err = await_start(r, ref)) < 0 ||
	    (err = tr_registry_register(hub.reg, NAME_EMPLOYEES, r->pool)) <
		    0) {
		die("starting the employees", err);
	}

	/* The model and the manager under a supervisor of their own; each
	 * registers its name in init (again after a restart). */
	tr_sup_flags flags = {
		.size = sizeof(flags),
		.strategy = TR_SUP_ONE_FOR_ONE,
		.intensity = 5,
		.period_ms = 10000,
	};
	tr_sup_child_spec specs[] = {
		{ .size = sizeof(tr_sup_child_spec),
		  .id = "model",
		  .def = &model_def,
		  .shutdown_ms = 1000 },
		{ .size = sizeof(tr_sup_child_spec),
		  .id = "manager",
		  .def = &manager_def,
		  .shutdown_ms = 1000 },
	};
	if ((err = tr_sup_start(r->cx, &flags, specs, 2, &r->top, &ref)) < 0 ||
	    (err = await_start(r, ref)) < 0) {
		die("starting the model and the manager", err);
	}

	/* The listener answers MSG_LISTEN's sender, our inbox. */
	if ((err = tr_spawn(r->cx, &server_def, NULL, &r->server)) < 0 ||
	    (err = tr_send(r->cx, r->server, MSG_LISTEN, &hub.opt.port,
			   sizeof(hub.opt.port))) < 0) {
		die("starting the listener", err);
	}
	if (!wait_for(r, is_listening, 10000) || r->listening.status < 0) {
		fprintf(stderr, "agenthub: cannot listen on port %u: %s\n",
			hub.opt.port,
			r->has_listening ? r->listening.error : "no answer");
		exit(1);
	}
	r->port = r->listening.port;
}

static void
start_load(struct run *r)
{
	/* The simulated clients, and one rogue that sends a line too long. */
	r->n_clients = hub.opt.clients + (hub.opt.clients > 0 ? 1 : 0);
	r->clients = calloc(r->n_clients + 1, sizeof(*r->clients));
	r->client_args = calloc(r->n_clients + 1, sizeof(*r->client_args));
	r->reports = calloc(r->n_clients + 1, sizeof(*r->reports));
	if (r->clients == NULL || r->client_args == NULL ||
	    r->reports == NULL) {
		die("starting the clients", TR_ENOMEM);
	}
	for (unsigned i = 0; i < r->n_clients; i++) {
		/* Read by the client's init, later: it must outlive this. */
		r->client_args[i] = (struct client_args){ .index = i,
							  .port = r->port,
							  .report_to = r->me };
		tr_err err = tr_spawn(r->cx, &client_def, &r->client_args[i],
				      &r->clients[i]);
		if (err < 0) {
			die("spawning a client", err);
		}
	}
}

static void
drain_clients(struct run *r)
{
	for (unsigned i = 0; i < r->n_clients; i++) {
		/* A client that already left makes this a dead letter. */
		(void)tr_send(tr_runtime_ctx(r->rt), r->clients[i], MSG_DRAIN,
			      NULL, 0);
	}
}

static bool
is_drained_or_signalled(const struct run *r)
{
	return all_reported(r) || r->signals > 0;
}

/*
 * Let the load run until it is done, its time is up or a signal comes.
 * Without a signal, drain it: no new tasks, wait for the results. A
 * signal, before or during the drain, is shut_down()'s job.
 */
static void
run_load(struct run *r)
{
	uint64_t t0 = now_ns();
	bool is_timed = hub.opt.tasks_per_client == 0 && hub.opt.seconds > 0;
	uint64_t end = t0 + (uint64_t)hub.opt.seconds * 1000000000u;

	for (;;) {
		if (r->signals > 0 || (r->n_clients > 0 && all_reported(r))) {
			break;
		}
		if (is_timed && now_ns() >= end) {
			break;
		}
		pump(r, 100);
	}
	r->load_s = (double)(now_ns() - t0) / 1e9;
	if (r->signals > 0) {
		return;
	}
	drain_clients(r);
	if (r->n_clients > 0 &&
	    !wait_for(r, is_drained_or_signalled, DRAIN_WAIT_MS)) {
		printf("only %u of %u clients reported\n", r->n_reports,
		       r->n_clients);
	}
}

/*
 * Whether every task a session sent has ended: its result written, it
 * was refused, or its client went away. Asked while the sessions run,
 * so the ends are read first (with acquire, see stat_add_release) and
 * the tasks last: each end seen was counted as a task before it, so the
 * sums can only be equal when nothing seen is open.
 */
static bool
sessions_settled(void)
{
	uint64_t ended = stat_get_acquire(&stats.sess_results) +
			 stat_get_acquire(&stats.sess_rejected) +
			 stat_get_acquire(&stats.sess_abandoned);

	return ended == stat_get(&stats.sess_tasks);
}

/* A message to the manager, found by its name, answered to the inbox. */
static tr_err
tell_manager(struct run *r, uint32_t type)
{
	tr_pid manager;
	tr_err err = tr_registry_whereis(hub.reg, NAME_MANAGER, &manager);

	return err < 0 ? err : tr_send(r->cx, manager, type, NULL, 0);
}

/*
 * Wait, until @deadline_ms or until @signals signals have come, for
 * nothing to be in flight: the manager has no task open, every simulated client
 * has reported, every session has written what it owes, and every injected
 * crash has been seen as a restart (the last may still be on its way
 * to the pool). Only then may the runtime stop without cutting off an
 * answer, whether its stop waits for the messages already queued or
 * overtakes them. True if all of that holds.
 */
static bool
wait_settled(struct run *r, uint64_t deadline_ms, unsigned signals)
{
	while (r->signals < signals) {
		uint64_t now = now_ms();
		if (now >= deadline_ms) {
			return false;
		}
		uint64_t left = deadline_ms - now;
		int64_t ask_ms = (int64_t)(left < 5000 ? left : 5000);

		r->has_status = false;
		(void)tell_manager(r, MSG_STATUS);
		if (!wait_for(r, has_status, ask_ms)) {
			continue;
		}
		/* With --db, every record answered too. */
		bool is_idle =
			r->status.in_flight == 0 && sessions_settled() &&
			(r->n_clients == 0 || all_reported(r)) &&
			r->status.log_sent ==
				r->status.log_written + r->status.log_failed;
		if (is_idle) {
			tr_pool_request q = { .op = TR_POOL_OP_STATS };
			r->has_pool = false;
			r->crashes_asked = stat_get(&stats.crashes);
			(void)tr_request(r->cx, r->pool, TR_MSG_POOL_CONTROL,
					 &q, sizeof(q), (uint64_t)ask_ms, NULL);
			if (wait_for(r, has_pool, ask_ms) &&
			    r->pool_stats.restarts >= r->crashes_asked) {
				return true;
			}
		}
		pump(r, 50);
	}
	return false;
}

/* The last word of the monitor, for the summary. */
static void
collect_report(struct run *r)
{
	(void)tr_send(tr_runtime_ctx(r->rt), r->monitor, MSG_QUIET, NULL, 0);
	(void)tr_send(r->cx, r->monitor, MSG_REPORT, NULL, 0);
	(void)wait_for(r, has_report, 5000);
}

/*
 * Ctrl-C or SIGTERM: stop within --stop-timeout (see the top of this
 * file). In asyncio terms: server.close(), stop the producers, then
 * asyncio.wait_for(the open tasks, timeout), and on the timeout answer
 * each of them with a failure instead of dropping it.
 */
static void
shut_down(struct run *r)
{
	uint64_t deadline = now_ms() + hub.opt.stop_timeout_ms;

	/* No new clients: the listener closes with its owner. */
	(void)tr_stop(tr_runtime_ctx(r->rt), r->server, TR_EXIT_NORMAL);
	/* The simulated clients first, so that few of their tasks are
	 * refused; then the manager refuses every new task. */
	drain_clients(r);
	(void)tell_manager(r, MSG_SHUTDOWN);
	if (wait_settled(r, deadline, 2) || r->signals > 1) {
		return;
	}
	/* Time is up: each open task gets its failed result now. */
	(void)tell_manager(r, MSG_ABORT);
	if (!wait_settled(r, now_ms() + ABORT_WAIT_MS, 2)) {
		printf("the stop did not settle: some answers may be lost\n");
	}
}

/* The jobs service's counters, asked while it runs: by now every job
 * has ended, unless the stop cuts them short (the check then says so). */
static void
collect_jobs(struct run *r)
{
	tr_received m;
	tr_ref ref;

	if (tr_request(r->cx, hub.jobs, TR_MSG_JOBS_STATS, NULL, 0, 5000,
		       &ref) < 0 ||
	    tr_inbox_recv(r->inbox, &ref, -1, &m) < 0) {
		return;
	}
	const tr_jobs_stats *s = TR_MSG_AS(&m, tr_jobs_stats);
	if (m.type == TR_MSG_JOBS_STATS_REPLY && s != NULL) {
		r->jobs = *s;
	}
	tr_received_fini(&m);
}

static void
stop(struct run *r)
{
	tr_err err;

	/* Everything stops at once: sessions, clients, employees and their
	 * child processes, services. Nothing is in flight any more. */
	tr_runtime_stop(r->rt);
	if ((err = tr_runtime_join(r->rt)) < 0) {
		die("tr_runtime_join", err);
	}
	r->fin.size = sizeof(r->fin);
	(void)tr_runtime_metrics(r->rt, &r->fin);
}

/* ------------------------------------------------------------------ */
/* Summary and self-check                                              */

struct client_totals {
	uint64_t sent, accepted, results, ok, progress, refused;
	uint64_t errors_expected, errors_seen, unexpected;
	unsigned clean;
	const char *problem;
};

static struct client_totals
sum_clients(const struct run *r)
{
	struct client_totals t = { 0 };

	for (unsigned i = 0; i < r->n_reports; i++) {
		const struct client_report *c = &r->reports[i];

		t.sent += c->sent;
		t.accepted += c->accepted;
		t.results += c->results;
		t.ok += c->ok;
		t.progress += c->progress;
		t.refused += c->refused;
		t.errors_expected += c->errors_expected;
		t.errors_seen += c->errors_seen;
		t.unexpected += c->unexpected;
		t.clean += c->is_clean ? 1 : 0;
		if (c->unexpected > 0 && t.problem == NULL) {
			t.problem = c->problem;
		}
	}
	return t;
}

static void
print_summary(const struct run *r)
{
	const struct report *rep = &r->report;
	uint64_t calls = stat_get(&stats.model_calls);
	uint64_t waits = stat_get(&stats.limiter_waits);

	unsigned clients = hub.opt.is_no_load ? 0 : hub.opt.clients;

	printf("\nsummary: %.1f s, %u client%s, %u employees, %u workers\n",
	       r->load_s, clients, clients == 1 ? "" : "s", hub.opt.employees,
	       r->fin.workers);
	printf("  tasks      %" PRIu64 " accepted, %" PRIu64
	       " results: %" PRIu64 " ok, %" PRIu64
	       " partial or failed; %" PRIu64
	       " cancelled (client gone); %.1f tasks/s\n",
	       rep->accepted, rep->done, rep->ok, rep->done - rep->ok,
	       rep->cancelled,
	       r->load_s > 0 ? (double)rep->done / r->load_s : 0.0);
	printf("  latency    p50 %" PRIu64 " ms, p90 %" PRIu64
	       " ms, p99 %" PRIu64 " ms, max %" PRIu64 " ms\n",
	       rep->p50_ms, rep->p90_ms, rep->p99_ms, rep->max_ms);
	printf("  subtasks   %" PRIu64 " tool runs (%" PRIu64
	       " failed), %" PRIu64 " model calls (%" PRIu64
	       " failed), %" PRIu64 " refused by the open breaker\n",
	       stat_get(&stats.tool_runs), stat_get(&stats.tool_failures),
	       calls, stat_get(&stats.model_failures),
	       stat_get(&stats.breaker_rejects));
	printf("  jobs       %" PRIu64 " submitted: %" PRIu64
	       " succeeded, %" PRIu64 " failed, %" PRIu64 " timed out, %" PRIu64
	       " cancelled\n",
	       r->jobs.submitted, r->jobs.succeeded, r->jobs.failed,
	       r->jobs.timed_out, r->jobs.cancelled);
	printf("  retries    %" PRIu64 " after a crash, %" PRIu64
	       " after a timeout, %" PRIu64 " after a model failure\n",
	       rep->retries_crash, rep->retries_timeout, rep->retries_failure);
	printf("  employees  %" PRIu64 " crashes injected, %" PRIu64
	       " restarts by the supervisor\n",
	       stat_get(&stats.crashes), r->pool_stats.restarts);
	printf("  breaker    %" PRIu64 " changes%s%s\n", rep->breaker_changes,
	       rep->breaker_changes ? ": " : "", rep->breaker_log);
	printf("  limiter    %" PRIu64 " waits, %.1f ms on average; %" PRIu64
	       " rejected\n",
	       waits,
	       waits ? (double)stat_get(&stats.limiter_wait_ms) / (double)waits
		     : 0.0,
	       stat_get(&stats.limiter_rejects));
	printf("  sessions   %" PRIu64 " connections, %" PRIu64
	       " tasks, %" PRIu64 " errors answered, %" PRIu64
	       " cut off for a long line\n",
	       stat_get(&stats.sessions), stat_get(&stats.sess_tasks),
	       stat_get(&stats.sess_errors), stat_get(&stats.sess_too_long));
	if (r->signals > 0) {
		printf("  stop       on a signal: %" PRIu64 " refused while "
		       "stopping, %" PRIu64 " open tasks failed at the %.1f s "
		       "deadline\n",
		       stat_get(&stats.sess_rejected), r->status.aborted,
		       hub.opt.stop_timeout_ms / 1000.0);
	}
	if (hub.opt.db != NULL) {
		const struct mgr_status *st = &r->status;

		printf("  db         %" PRIu64 " records written, %" PRIu64
		       " failed (run %" PRIu64 ")%s%s\n",
		       r->db_written + st->log_written,
		       r->db_failed + st->log_failed, hub.run,
		       st->log_error[0] != '\0' ? "; the first: " : "",
		       st->log_error);
	}
	printf("  runtime    %" PRIu64 " messages handled, %" PRIu64
	       " dead letters, %" PRIu64 " actors spawned\n",
	       r->fin.msgs_handled, r->fin.dead_letters, r->fin.actors_spawned);
}

static int failures;

static void
expect(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
expect(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("  %s  ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		failures++;
	}
}

static void
check(const struct run *r)
{
	const struct mgr_status *st = &r->status;
	uint64_t s_tasks = stat_get(&stats.sess_tasks);
	uint64_t s_acc = stat_get(&stats.sess_accepted);
	uint64_t s_res = stat_get(&stats.sess_results);
	uint64_t s_rej = stat_get(&stats.sess_rejected);
	uint64_t s_lost = stat_get(&stats.sess_abandoned);
	uint64_t s_unacc = stat_get(&stats.sess_unaccepted);
	bool is_loaded = r->n_clients > 0;
	bool is_stopped = r->signals > 0; /* by Ctrl-C, within its bound */

	printf("\nchecks\n");
	expect(r->has_status && st->in_flight == 0 &&
		       st->tasks == st->results + st->cancelled &&
		       r->has_report && r->report.done == st->results &&
		       r->report.accepted == st->tasks,
	       "every accepted task got exactly one result: %" PRIu64
	       " taken == %" PRIu64 " answered + %" PRIu64
	       " cancelled, none in flight",
	       st->tasks, st->results, st->cancelled);
	const tr_jobs_stats *j = &r->jobs;
	expect(j->submitted == st->tasks && j->queued == 0 && j->running == 0 &&
		       j->succeeded + j->failed + j->timed_out + j->cancelled ==
			       j->submitted,
	       "every job ended once: %" PRIu64 " submitted == %" PRIu64
	       " succeeded + %" PRIu64 " failed + %" PRIu64
	       " timed out + %" PRIu64 " cancelled",
	       j->submitted, j->succeeded, j->failed, j->timed_out,
	       j->cancelled);
	/* Each task counted once by how it ended, and once by whether it
	 * was accepted (see struct hub_stats). */
	expect(s_tasks == s_res + s_rej + s_lost &&
		       s_tasks == s_acc + s_rej + s_unacc,
	       "sessions: %" PRIu64 " tasks == %" PRIu64
	       " results written + %" PRIu64 " refused + %" PRIu64
	       " left open by clients that went "
	       "away == %" PRIu64 " accepted + %" PRIu64 " refused + %" PRIu64
	       " gone before accepted",
	       s_tasks, s_res, s_rej, s_lost, s_acc, s_rej, s_unacc);
	if (is_loaded) {
		struct client_totals c = sum_clients(r);
		uint64_t expected =
			(uint64_t)hub.opt.tasks_per_client * hub.opt.clients;

		expect(all_reported(r) && c.clean == r->n_clients,
		       "%u of %u clients closed cleanly after their last "
		       "result (%u simulated + 1 rogue)",
		       c.clean, r->n_clients, hub.opt.clients);
		/* A stop cuts the load short: then fewer tasks than asked
		 * for, and some refused because the hub was stopping. */
		expect(c.sent == c.accepted + c.refused &&
			       c.accepted == c.results && c.results == s_res &&
			       s_lost == 0 &&
			       (is_stopped ||
				(c.refused == 0 &&
				 (expected == 0 || c.sent == expected))),
		       "no session lost a result: clients sent %" PRIu64
		       ", got %" PRIu64 " accepted and %" PRIu64
		       " results (%" PRIu64 " ok), %" PRIu64 " refused%s",
		       c.sent, c.accepted, c.results, c.ok, c.refused,
		       expected && !is_stopped ? ", as many as asked for" : "");
		expect(c.unexpected == 0,
		       "the protocol held: %" PRIu64
		       " progress events, %" PRIu64 " unexpected%s%s",
		       c.progress, c.unexpected, c.problem ? ": " : "",
		       c.problem ? c.problem : "");
		expect(c.errors_seen == c.errors_expected &&
			       stat_get(&stats.sess_too_long) == 1,
		       "bad input: %" PRIu64 " errors provoked, %" PRIu64
		       " answered, the long line cut off",
		       c.errors_expected, c.errors_seen);
	}
	if (hub.opt.db != NULL) {
		/* One record per task taken and one per ending; each written
		 * or refused once, as the store counted them too. */
		const tr_store_stats *ss = &r->store_stats;
		uint64_t sent = st->log_sent;

		expect(r->has_store_stats &&
			       sent == st->tasks + st->results +
					       st->cancelled &&
			       sent == st->log_written + st->log_failed &&
			       ss->writes == r->db_written + st->log_written &&
			       ss->write_errors ==
				       r->db_failed + st->log_failed,
		       "the activity log: %" PRIu64 " records == %" PRIu64
		       " tasks + %" PRIu64 " results + %" PRIu64
		       " cancelled == %" PRIu64 " written + %" PRIu64
		       " failed; the store wrote %" PRIu64
		       " with main's %" PRIu64 ", refused %" PRIu64,
		       sent, st->tasks, st->results, st->cancelled,
		       st->log_written, st->log_failed, ss->writes,
		       r->db_written, ss->write_errors);
	}
	/*
	 * Every crash before the hub settled was restarted. An employee may
	 * still finish the attempt of a task its client cancelled and crash
	 * after that: the stop ends it, and no restart is owed.
	 */
	expect(r->has_pool && r->pool_stats.restarts >= r->crashes_asked &&
		       r->pool_stats.restarts <= stat_get(&stats.crashes),
	       "every crashed employee was restarted: %" PRIu64
	       " crashes, %" PRIu64 " restarts, %" PRIu64
	       " crashes after the hub settled",
	       stat_get(&stats.crashes), r->pool_stats.restarts,
	       stat_get(&stats.crashes) - r->crashes_asked);
	expect(r->fin.actors_alive == 0 &&
		       r->fin.actors_spawned == r->fin.actors_stopped &&
		       r->fin.msgs_sent ==
			       r->fin.msgs_handled + r->fin.dead_letters,
	       "after join: %" PRIu64 " actors alive, msgs_sent %" PRIu64
	       " == handled %" PRIu64 " + dead letters %" PRIu64,
	       r->fin.actors_alive, r->fin.msgs_sent, r->fin.msgs_handled,
	       r->fin.dead_letters);
}

int
main(int argc, char **argv)
{
	struct run r = { 0 };
	const char *data_dir;

	parse_options(argc, argv, &hub.opt, &data_dir);
	if (!load_data_dir(data_dir)) {
		return 1;
	}
	/* A client that resets its connection must not end the process
	 * through SIGPIPE; the write fails instead. */
	signal(SIGPIPE, SIG_IGN);

	setup(&r);
	printf("agenthub: troupe %s, %u workers, listening on 127.0.0.1:%u\n",
	       tr_version(), tr_runtime_workers(r.rt), r.port);
	printf("  data       %u files:", hub.n_files);
	for (unsigned i = 0; i < hub.n_files; i++) {
		printf(" %s", hub.files[i].name);
	}
	printf("\n  employees  %u in a pool under a supervisor; crash rate "
	       "%.3g\n",
	       hub.opt.employees, hub.opt.crash_rate);
	printf("  model      5-30 ms, %.3g of calls fail", hub.opt.model_fail);
	if (hub.opt.outage_every_ms > 0) {
		printf(", down %u ms every %u s", hub.opt.outage_ms,
		       hub.opt.outage_every_ms / 1000);
	}
	printf("; %u calls/s through the rate limiter\n", hub.opt.model_rate);
	if (hub.opt.db != NULL) {
		db_print_report(&r);
	}
	if (hub.opt.is_no_load) {
		printf("  no load: connect with nc 127.0.0.1 %u, type a task "
		       "(Ctrl-C to stop)\n",
		       r.port);
	} else if (hub.opt.tasks_per_client > 0) {
		printf("  load       %u clients, %u tasks each, %u in flight\n",
		       hub.opt.clients, hub.opt.tasks_per_client,
		       hub.opt.inflight);
	} else {
		printf("  load       %u clients, %u in flight each, for %u "
		       "s%s\n",
		       hub.opt.clients, hub.opt.inflight, hub.opt.seconds,
		       hub.opt.seconds == 0 ? " (until Ctrl-C)" : "");
	}
	fflush(stdout);

	if (!hub.opt.is_no_load && hub.opt.clients > 0) {
		start_load(&r);
	}
	run_load(&r);
	/* People with nc may have left tasks open: let them finish, unless
	 * a signal asks for the bounded stop instead. */
	if (r.signals == 0 && !wait_settled(&r, now_ms() + SETTLE_WAIT_MS, 1) &&
	    r.signals == 0) {
		printf("still busy after %d s\n", SETTLE_WAIT_MS / 1000);
	}
	if (r.signals > 0) {
		shut_down(&r);
	}
	collect_report(&r);
	collect_jobs(&r);
	if (hub.opt.db != NULL) {
		db_finish(&r);
	}
	stop(&r);
	print_summary(&r);
	check(&r);

	tr_inbox_destroy(r.inbox);
	tr_registry_destroy(hub.reg);
	tr_pubsub_destroy(hub.bus);
	tr_breaker_destroy(hub.breaker);
	tr_runtime_destroy(r.rt);
	free(r.clients);
	free(r.client_args);
	free(r.reports);
	free(r.prev);
	printf("%s\n", failures == 0 ? "all checks passed" : "CHECKS FAILED");
	return failures == 0 ? 0 : 1;
}
