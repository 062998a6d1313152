/*
 * agenthub.h - what the actors of the agent hub share: the message types
 * and their payloads, the settings, the services every actor reaches
 * (registry, pubsub, rate limiter, circuit breaker), the planner and the
 * counters behind the progress line and the final self-check.
 *
 * The hub is one program in several files, one per kind of actor:
 *
 *   main.c      options, setup, the run, the summary and the self-check
 *   server.c    the TCP listener and the session actor (one per client)
 *   manager.c   the manager: plans tasks, runs each as a job, answers
 *   lead.c      the task lead (one per task, a job): dispatches the
 *               subtasks to the employees, retries, builds the result
 *   employee.c  the employees: run tools as child processes, call the model
 *   model.c     the simulated model service
 *   monitor.c   the progress printer (subscribes to "tasks" and "breaker")
 *   load.c      the simulated clients (real TCP clients over loopback)
 *   plan.c      the planner: which subtasks a task's text asks for
 *
 * Threads: `hub` is written by main() before tr_runtime_start() (the jobs
 * service's pid before the manager starts) and only read afterwards; `stats`
 * holds relaxed atomic counters that actors add to and that main() and the
 * monitor read.
 */
#ifndef AGENTHUB_H
#define AGENTHUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <troupe/troupe.h>
#include <troupe/actors/breaker.h>
#include <troupe/actors/jobs.h>
#include <troupe/actors/pubsub.h>
#include <troupe/actors/ratelimit.h>
#include <troupe/actors/registry.h>

/* ------------------------------------------------------------------ */
/* Limits                                                              */

enum {
	LINE_MAX_LEN = 4096,   /* longest request line; longer disconnects */
	TASK_TEXT_MAX = 512,   /* longest task text, in bytes */
	ID_TEXT_MAX = 160,     /* longest client id, as JSON text */
	SESSION_INFLIGHT = 32, /* tasks one session may have in flight */
	MAX_FILES = 8,         /* data files the planner knows */
	FILE_NAME_MAX = 32,    /* longest data file name, NUL included */
	WORD_MAX = 32,         /* longest search word, NUL included */
	LABEL_MAX = 64,        /* "grep error server.log", NUL included */
	MAX_STEPS = 40,        /* subtasks in one plan */
	PROMPT_MAX = 2048,     /* longest model prompt */
	OUTPUT_MAX = 1024,     /* longest subtask output (a JSON text) */
	LEADS_MAX = 64,        /* tasks running at once; more wait in line */
	DEFAULT_PORT = 7400,
};

/* Names in the registry and topics on the bus. */
#define NAME_MANAGER   "manager"
#define NAME_MODEL     "model"
#define NAME_EMPLOYEES "employees"
#define TOPIC_TASKS    "tasks"
#define TOPIC_BREAKER  "breaker"
#define JOB_KIND_TASK  "task" /* the kind of job a task runs as */

/* Kinds of the activity log's records (--db), in the order of a task's
 * life; each body is a JSON object with "run" (see struct hub). */
#define LOG_START     "start"     /* main: a run began */
#define LOG_TASK      "task"      /* manager: a task was taken */
#define LOG_RESULT    "result"    /* manager: its result went out */
#define LOG_ABORTED   "aborted"   /* manager: failed by the stop's deadline */
#define LOG_CANCELLED "cancelled" /* manager: its client went away */
#define LOG_STOP      "stop"      /* main: the run ended, its counts */

/* The exit reason of an injected crash (reasons from TR_EXIT_USER up are
 * the application's). */
#define REASON_CRASH (TR_EXIT_USER + 1)

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/*
 * Message types. Each comment says who sends it to whom and what the
 * payload is. Payloads are small structs copied by tr_send(), some with
 * text after them; the one large reply (a task's result) moves as a
 * pointer with tr_send_ptr().
 */
enum {
	MSG_LISTEN = 1, /* main -> server: uint16_t port */
	MSG_LISTENING,  /* server -> main's inbox: struct listening */
	MSG_TASK,       /* session -> manager: struct task_msg + text */
	MSG_ACCEPTED,   /* manager -> session: struct accepted_msg */
	MSG_PROGRESS,   /* manager -> session: struct progress_msg */
	MSG_RESULT,     /* manager -> session: pointer, struct result_msg */
	MSG_REJECTED,   /* manager -> session: struct rejected_msg */
	MSG_SUBTASK, /* lead -> pool -> employee: struct subtask_msg + prompt */
	MSG_CLAIMED, /* employee -> lead: struct subtask_ref */
	MSG_SUBTASK_DONE, /* employee -> lead: struct done_msg + text */
	MSG_RETRY,        /* lead -> itself, by timer: struct subtask_ref */
	MSG_DEADLINE,     /* lead -> itself, by timer: struct subtask_ref */
	MSG_MODEL_CALL,   /* employee -> model, a tr_request: prompt JSON */
	MSG_MODEL_REPLY,  /* model -> employee, its tr_reply: JSON text */
	MSG_MODEL_ERROR,  /* model -> employee, its tr_reply: error text */
	MSG_MODEL_DUE,    /* model -> itself, by timer: struct model_due */
	MSG_TASK_EVENT, /* manager, lead -> "tasks" topic: struct task_event */
	MSG_BREAKER_EVENT, /* manager -> "breaker" topic: tr_breaker_change */
	MSG_TICK,          /* monitor -> itself, every second: none */
	MSG_REPORT,        /* main -> monitor: none; reply struct report */
	MSG_REPORT_REPLY,  /* monitor -> main's inbox: struct report */
	MSG_QUIET,         /* main -> monitor: none; stop the progress lines */
	MSG_STATUS,        /* main -> manager: none; reply struct mgr_status */
	MSG_STATUS_REPLY,  /* manager -> main's inbox: struct mgr_status */
	MSG_DRAIN,         /* main -> clients: none; finish and close */
	MSG_CLIENT_DONE,   /* client -> main's inbox: struct client_report */
	MSG_SHUTDOWN,      /* main -> manager: none; refuse new tasks */
	MSG_ABORT,         /* main -> manager: none; fail the open tasks now */
};

/* MSG_LISTENING: the port the hub listens on, or why it could not. */
struct listening {
	int32_t status; /* 0, or a negative libuv code */
	uint16_t port;
	char error[32];
};

/* MSG_TASK: a task from a session. @seq is the session's own number for
 * it, echoed in every answer. The text (@len bytes) follows the struct,
 * then the client's id for the task as JSON text (@id_len bytes, "\"a1\""
 * or "17"), which the manager writes to the activity log. */
struct task_msg {
	uint32_t seq;
	uint32_t len;
	uint32_t id_len;
	char text[];
};

/* MSG_ACCEPTED */
struct accepted_msg {
	uint32_t seq;
	uint32_t total; /* subtasks in the plan */
	uint64_t task;  /* the task's number: its job's id */
};

/* MSG_REJECTED: a task the manager did not take, and why. */
enum reject_why {
	REJECT_BUSY = 1, /* out of memory: "hub busy, try again" */
	REJECT_STOPPING, /* the hub is stopping (MSG_SHUTDOWN came) */
};

struct rejected_msg {
	uint32_t seq;
	uint32_t why; /* enum reject_why */
};

/* MSG_PROGRESS: one more subtask finished (or gave up). */
struct progress_msg {
	uint32_t seq;
	uint32_t done;
	uint32_t total;
	char subtask[LABEL_MAX];
};

/* MSG_RESULT (a pointer message): the task's outcome. @json is the
 * "result" object as JSON text, NUL-terminated. */
struct result_msg {
	uint32_t seq;
	bool ok;
	uint64_t ms; /* from the manager taking the task to its result */
	char json[];
};

/* What an employee is asked to run. */
enum tool {
	TOOL_WC = 1, /* wc -l -w -c FILE */
	TOOL_GREP,   /* grep -c -i -w WORD FILE */
	TOOL_TOP,    /* the five most frequent words (tr | sort | uniq -c) */
	TOOL_UNIQ,   /* distinct lines (sort | uniq | wc -l) */
	TOOL_MODEL,  /* the model, with the file's tool outputs as facts */
};

/* MSG_SUBTASK: lead -> employee, through the pool. For TOOL_MODEL the
 * prompt (a JSON text) follows the struct. */
struct subtask_msg {
	uint64_t task;
	uint32_t index;   /* which subtask of the task */
	uint32_t attempt; /* 1, 2, ...: answers to older attempts are stale */
	uint32_t tool;    /* enum tool */
	uint32_t prompt_len;
	char file[FILE_NAME_MAX];
	char word[WORD_MAX];
	char prompt[];
};

/* How a subtask ended, as the employee saw it. */
enum outcome {
	OUT_OK = 0,
	OUT_TOOL_FAILED,   /* the tool could not run or failed: not retried */
	OUT_MODEL_ERROR,   /* the model answered with an error */
	OUT_MODEL_TIMEOUT, /* the model did not answer in time (tr_request) */
	OUT_BREAKER_OPEN,  /* the circuit breaker rejected the call at once */
	/* The rate limiter would have made it wait too long. */
	OUT_RATE_LIMITED,
};

/* MSG_SUBTASK_DONE: employee -> lead. The text (the output as a JSON
 * text, or an error message) follows the struct, NUL not included. */
struct done_msg {
	uint64_t task;
	uint32_t index;
	uint32_t attempt;
	uint32_t outcome; /* enum outcome */
	uint32_t len;
	char text[];
};

/* MSG_CLAIMED, MSG_RETRY and MSG_DEADLINE: which attempt of which
 * subtask. */
struct subtask_ref {
	uint64_t task;
	uint32_t index;
	uint32_t attempt;
};

/* MSG_MODEL_DUE: a call whose simulated latency has passed. */
struct model_due {
	uint64_t call; /* the call's number: finds the held request */
	bool ok;
};

/* Task lifecycle events on the "tasks" topic. */
enum task_event_kind {
	TASK_EV_ACCEPTED = 1,
	TASK_EV_RETRY,     /* a subtask goes out again; @retry says why */
	TASK_EV_DONE,      /* the result went to the session */
	TASK_EV_CANCELLED, /* the session went away first */
};

enum retry_why {
	RETRY_CRASH = 1, /* its employee stopped */
	RETRY_TIMEOUT,   /* no answer before the attempt's deadline */
	RETRY_FAILURE,   /* a model failure, after a backoff */
};

struct task_event {
	uint32_t kind;  /* enum task_event_kind */
	uint32_t retry; /* enum retry_why, for TASK_EV_RETRY */
	uint64_t task;
	uint32_t subtasks;
	bool ok;     /* TASK_EV_DONE: every subtask succeeded */
	uint64_t ms; /* TASK_EV_DONE: latency */
};

/* MSG_REPORT_REPLY: what the monitor saw over the whole run. */
struct report {
	uint64_t accepted, done, ok, cancelled;
	uint64_t retries_crash, retries_timeout, retries_failure;
	uint64_t restarts;
	uint64_t breaker_changes;
	uint32_t breaker_state;
	uint64_t p50_ms, p90_ms, p99_ms, max_ms;
	char breaker_log[256]; /* "4.1s open, 4.6s half-open, ..." */
};

/* MSG_STATUS_REPLY */
struct mgr_status {
	uint64_t tasks;     /* taken */
	uint64_t results;   /* answered */
	uint64_t cancelled; /* dropped because the session went away */
	uint64_t aborted;   /* of the results: failed by MSG_ABORT */
	uint64_t in_flight;
	/* With --db: activity-log records asked for, and their outcomes so
	 * far (sent == written + failed once none is in flight). */
	uint64_t log_sent, log_written, log_failed;
	char log_error[128]; /* the first failure's text; "" if none */
};

/* MSG_CLIENT_DONE: what one simulated client saw. */
struct client_report {
	uint32_t index;
	bool is_clean; /* connected, and closed only after its last result */
	uint64_t sent, accepted, results, ok, progress;
	uint64_t refused; /* "the hub is stopping", while draining */
	uint64_t errors_expected, errors_seen;
	uint64_t unexpected; /* an event that broke the protocol */
	char problem[96];    /* the first such event, for the report */
};

/* ------------------------------------------------------------------ */
/* Settings and shared services                                        */

struct hub_options {
	uint16_t port;             /* --port; 0 = any free port */
	bool is_no_load;           /* --no-load: only the hub */
	unsigned seconds;          /* --seconds; 0 = until Ctrl-C */
	unsigned clients;          /* --clients */
	unsigned tasks_per_client; /* --tasks-per-client; 0 = until time */
	unsigned inflight;        /* --inflight: tasks each client keeps open */
	unsigned employees;       /* --employees */
	unsigned workers;         /* --workers; 0 = one per core */
	double crash_rate;        /* --crash-rate */
	double model_fail;        /* --model-fail */
	unsigned task_timeout_ms; /* --task-timeout */
	unsigned model_rate;      /* --model-rate: limiter tokens per second */
	unsigned outage_every_ms; /* --outage-every (s); 0 = no outages */
	unsigned outage_ms;       /* --outage-ms */
	uint64_t seed;            /* --seed */
	bool is_quiet;            /* --quiet: no live progress lines */
	unsigned stop_timeout_ms; /* --stop-timeout (s): Ctrl-C's bound */
	const char *db;           /* --db FILE: the activity log; NULL: none */
};

struct data_file {
	char name[FILE_NAME_MAX]; /* "server.log" */
	char stem[FILE_NAME_MAX]; /* "server" */
};

/*
 * Everything the actors share, set by main() before tr_runtime_start()
 * and read-only from then on: the settings, the data files, and the
 * standard services (each is safe to call from any thread). @jobs, the
 * jobs service's pid, and @store and @run are set once the runtime runs,
 * before main() starts the manager, the one actor that talks to them
 * (the spawn orders the writes before the manager's reads).
 */
struct hub {
	struct hub_options opt;
	char data_dir[1024];
	struct data_file files[MAX_FILES];
	unsigned n_files;
	uint64_t t0_ns; /* when the run began, for timestamps */
	tr_registry *reg;
	tr_pubsub *bus;
	tr_pid limiter; /* requests: <troupe/actors/ratelimit.h> */
	tr_breaker *breaker;
	tr_pid jobs; /* an actor: every call is a request (jobs.h) */
	/* With --db: the store that keeps the activity log (store.h), and
	 * this run's id, in every record; TR_PID_NONE and 0 without. */
	tr_pid store;
	uint64_t run;
};

extern struct hub hub;

/*
 * Counters for the progress line and the self-check, added to with
 * relaxed atomics: nothing is decided on their order while the run goes
 * on, and main() reads the final values after tr_runtime_join(), which
 * orders every write before the read.
 */
struct hub_stats {
	/*
	 * sessions. Each task sent to the manager ends once, in one of
	 * sess_results, sess_rejected or sess_abandoned; and it is counted
	 * once in one of sess_accepted, sess_rejected or sess_unaccepted.
	 */
	_Atomic uint64_t sessions;
	_Atomic uint64_t sess_tasks;      /* lines sent to the manager */
	_Atomic uint64_t sess_rejected;   /* of those, refused: never taken */
	_Atomic uint64_t sess_accepted;   /* "accepted" events written */
	_Atomic uint64_t sess_unaccepted; /* ended before any "accepted" */
	_Atomic uint64_t sess_results;    /* "result" events written */
	_Atomic uint64_t sess_errors;     /* "error" events written */
	_Atomic uint64_t sess_abandoned;  /* tasks open when a session ended */
	_Atomic uint64_t sess_too_long;   /* clients cut off for a long line */
	/* employees */
	_Atomic uint64_t crashes; /* injected */
	_Atomic uint64_t tool_runs;
	_Atomic uint64_t tool_failures;
	_Atomic uint64_t model_calls;    /* calls the breaker let through */
	_Atomic uint64_t model_failures; /* of those: error or timeout */
	_Atomic uint64_t breaker_rejects;
	_Atomic uint64_t limiter_waits; /* grants that had to wait */
	_Atomic uint64_t limiter_wait_ms;
	_Atomic uint64_t limiter_rejects;
	/* model service */
	_Atomic uint64_t model_served;
	_Atomic uint64_t model_errors;
};

extern struct hub_stats stats;

static inline void
stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t
stat_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/*
 * The ends of a session's tasks are counted with release, and main()
 * reads them with acquire while the run goes on (sessions_settled() in
 * main.c): whoever sees a task's end also sees it counted in sess_tasks,
 * which the same session added to before.
 */
static inline void
stat_add_release(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_release);
}

static inline uint64_t
stat_get_acquire(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_acquire);
}

/* ------------------------------------------------------------------ */
/* Actor definitions (each in its own file)                            */

extern const tr_actor_def server_def;   /* server.c */
extern const tr_actor_def session_def;  /* server.c */
extern const tr_actor_def manager_def;  /* manager.c */
extern const tr_actor_def lead_def;     /* lead.c; a job of kind "task" */
extern const tr_actor_def employee_def; /* employee.c */
extern const tr_actor_def model_def;    /* model.c */
extern const tr_actor_def monitor_def;  /* monitor.c */
extern const tr_actor_def client_def;   /* load.c; arg: struct client_args */

/* The spawn argument of a simulated client (kept alive by main). */
struct client_args {
	uint32_t index;
	uint16_t port;
	tr_pid report_to; /* main's inbox */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* plan.c: the subtasks a task's text asks for. */
struct plan_step {
	uint32_t tool;       /* enum tool */
	uint32_t file;       /* index into hub.files */
	char word[WORD_MAX]; /* TOOL_GREP */
	char label[LABEL_MAX];
};

struct plan {
	uint32_t n;
	struct plan_step step[MAX_STEPS];
};

void plan_task(const char *text, size_t len, struct plan *out);
const char *tool_name(uint32_t tool);

/* The payload of a "task" job: the manager's plan and the task's text. */
struct lead_args {
	struct plan plan;
	uint32_t len;
	char text[];
};

/* The result of a "task" job that completed: @json is the "result"
 * object, NUL-terminated; @ok is false when a subtask gave up. */
struct lead_result {
	bool ok;
	char json[];
};

/* main.c */
uint64_t now_ns(void);
uint64_t now_ms(void);
uint64_t wall_ms(void);   /* the wall clock, ms since the epoch (the log's) */
double hub_seconds(void); /* seconds since the run began */
tr_err register_name(tr_ctx *cx, const char *name);

/* xorshift64*: small, fast, good enough for a simulation. */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Du;
}

/* A value in [0, 1) that depends only on its inputs: the same subtask
 * attempt always meets the same fate, whatever the scheduling. */
static inline double
fate(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = seed ^ (a * 0x9E3779B97F4A7C15u) ^
		     (b * 0xC2B2AE3D27D4EB4Fu) ^ (c * 0x165667B19E3779F9u);

	s |= 1; /* xorshift must not start at 0 */
	(void)rng_next(&s);
	return (double)(rng_next(&s) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* Copy a fixed-size payload out of a message: payload bytes carry no
 * alignment promise, and the size check keeps a wrong message out. */
static inline bool
payload(const tr_msg *m, void *out, size_t size)
{
	if (m->size != size || m->data == NULL) {
		return false;
	}
	memcpy(out, m->data, size);
	return true;
}

#endif /* AGENTHUB_H */
