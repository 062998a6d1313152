/*
 * cluster: three nodes as processes, a supervisor on one of them keeping
 * workers alive on the others, and the work moving when a node dies.
 * run.sh, beside this file, starts the three nodes and tells the story;
 * docs/GUIDE.md section 24 walks through it.
 *
 *     example-cluster --node NAME --listen URL --secret S [--seed URL]...
 *                     [--work-on NODE,NODE,...] [--keepers N]
 *
 * Without --work-on a node is a host: it offers the definition "worker"
 * to the cluster (tr_net_config.defs) and does what it is sent. With
 * --work-on it is the boss (alpha in run.sh): it waits until those nodes
 * are up, then starts
 *
 * - a dispatcher actor, which sends numbered jobs to every worker it
 *   knows of (requests, at most WINDOW in flight per worker) and counts
 *   their outcomes: a reply is an answered job; a TR_MSG_REQUEST_FAILED
 *   with TR_EXIT_NOCONNECTION is a job lost with its node (the runtime
 *   gives every request exactly one of the two, so nothing is counted
 *   twice or missed);
 * - a supervisor (<troupe/actors/supervisor.h>, one_for_one) of N keeper
 *   actors (--keepers, default 4). A keeper's init asks a node's service
 *   to spawn a "worker" there, linked to the keeper (TR_NET_SPAWN_LINK:
 *   the worker links itself to its keeper before its own init runs, so
 *   there is no moment in which one could die unseen by the other). The
 *   keeper does not trap exits: when its worker dies, or the worker's
 *   node goes (the link's exit signal TR_EXIT_NOCONNECTION), the keeper
 *   dies of the same reason, and the supervisor restarts it. Its new
 *   init places the worker on a node that is up: the work moves.
 *
 * Each node prints what it sees, one line per event, and stops on SIGTERM
 * or SIGINT: a host prints how many jobs it did; the boss first stops
 * sending, waits for every job in flight to get its outcome, then prints
 * sent, answered (per node) and lost, and checks sent == answered + lost.
 * Every node then stops its runtime and checks that each message it sent
 * was handled or counted as a dead letter. The exit status is 0 when
 * every check held.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe/actors/supervisor.h>
#include <troupe/net/net.h>
#include <troupe/troupe.h>

enum {
	MAX_NODES = 8,    /* --work-on names */
	MAX_KEEPERS = 16, /* --keepers */
	MAX_SEEDS = 8,    /* --seed URLs */
	WINDOW = 2,       /* jobs in flight per worker */
	TICK_MS = 10,     /* the dispatcher tops the windows up this often */
	JOB_MS = 20,      /* how long a job takes */
	SPAWN_MS = 10000, /* a spawn request's timeout */
	DRAIN_MS = 30000, /* how long a stop waits for the jobs in flight */
	PEERS_MS = 60000, /* how long the boss waits for its hosts */
};

/* Message types, all below TR_MSG_SYSTEM_BASE. */
enum {
	MSG_JOB = 1, /* request dispatcher -> worker: uint64_t job number */
	MSG_RESULT,  /* its reply: uint64_t, the job's result */
	MSG_WORKER,  /* keeper -> dispatcher: struct worker_msg */
	MSG_TICK,    /* dispatcher -> itself, every TICK_MS */
	MSG_DRAIN,   /* request main -> dispatcher; reply struct summary */
	MSG_DONE,    /* worker -> itself, JOB_MS after a job: struct done */
};

/* The "work": cheap, and checkable by the one who sent it. */
static uint64_t
work(uint64_t job)
{
	return job * 2 + 1;
}

/* ---- the host: workers ---- */

static atomic_uint_fast64_t jobs_done;
static atomic_uint_fast64_t workers_started;

/*
 * A job takes JOB_MS, so that some are always in flight: a worker does
 * not block its thread for that, it answers later. The timer's message
 * carries what tr_reply() needs of the request (its sender, reference and
 * flags) and the job: a pid in a payload is fine within one node.
 */
struct done {
	tr_pid from;
	tr_ref ref;
	uint32_t flags;
	uint64_t job;
};

static int
worker_init(tr_ctx *cx, void *state, void *arg)
{
	(void)cx;
	(void)state;
	(void)arg;
	atomic_fetch_add(&workers_started, 1);
	return TR_OK;
}

static void
worker_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	(void)state;
	const uint64_t *job = TR_MSG_AS(m, uint64_t);
	const struct done *d = TR_MSG_AS(m, struct done);

	if (m->type == MSG_JOB && job != NULL &&
	    (m->flags & TR_MSG_F_REQUEST)) {
		struct done later = { .from = m->from,
				      .ref = m->ref,
				      .flags = m->flags,
				      .job = *job };
		if (tr_send_after(cx, tr_self(cx), MSG_DONE, &later,
				  sizeof(later), JOB_MS, NULL) != TR_OK) {
			tr_unhandled(cx, m); /* the runtime is stopping */
		}
	} else if (m->type == MSG_DONE && d != NULL &&
		   tr_pid_eq(m->from, tr_self(cx))) {
		tr_msg req = { .type = MSG_JOB,
			       .flags = d->flags,
			       .from = d->from,
			       .ref = d->ref };
		uint64_t r = work(d->job);
		/* Counted when the answer leaves: what the boss counts as
		 * answered by this node is exactly this, once it has
		 * drained. */
		if (tr_reply(cx, &req, MSG_RESULT, &r, sizeof(r)) == TR_OK) {
			atomic_fetch_add(&jobs_done, 1);
		}
	} else {
		tr_unhandled(cx, m);
	}
}

static const tr_actor_def worker_def = {
	.size = sizeof(tr_actor_def),
	.name = "worker",
	.init = worker_init,
	.handle = worker_handle,
};

/* What this node lets other nodes spawn by name. */
static const tr_net_def offered[] = { { "worker", &worker_def } };

/* ---- the boss: keepers, the dispatcher ---- */

static const char *self_name;
static tr_net *net;
static tr_pid dispatcher;
static const char *work_on[MAX_NODES];
static size_t nwork_on;
static size_t nkeepers = 4;

static int
node_index(const char *name)
{
	for (size_t i = 0; i < nwork_on; i++) {
		if (strcmp(work_on[i], name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* The --work-on nodes that are up now, in the order given. */
static size_t
nodes_up(const char **out)
{
	tr_net_node v[MAX_NODES * 2];
	size_t k = tr_net_nodes(net, v, MAX_NODES * 2);
	size_t n = 0;

	for (size_t i = 0; i < nwork_on; i++) {
		for (size_t j = 0; j < k && j < MAX_NODES * 2; j++) {
			if (v[j].state == TR_NET_UP &&
			    strcmp(v[j].name, work_on[i]) == 0) {
				out[n++] = work_on[i];
				break;
			}
		}
	}
	return n;
}

/* A keeper tells the dispatcher of its worker. Node names are at most
 * TR_NET_NAME_MAX bytes. */
struct worker_msg {
	tr_pid worker;
	unsigned slot;
	char node[TR_NET_NAME_MAX + 1];
};

/* The spawn argument of keeper i (the supervisor passes the same pointer
 * on every restart, so it lives as long as the program). */
struct keeper_arg {
	char id[24];
	unsigned slot;
};
static struct keeper_arg keeper_args[MAX_KEEPERS];

struct keeper {
	const struct keeper_arg *a;
	char node[TR_NET_NAME_MAX + 1];
	tr_ref spawn;
};

/*
 * Keeper k-i places its worker on the up node number i among the up
 * --work-on nodes (round robin, so the workers spread), and asks that
 * node's service for a linked spawn. The answer comes as a message. If no
 * host is up, or the service cannot be reached, the init fails and the
 * supervisor counts a restart: with every host gone for long, the
 * supervisor gives up (its restart intensity), which is what it is for.
 */
static int
keeper_init(tr_ctx *cx, void *state, void *arg)
{
	struct keeper *k = state;
	const char *up[MAX_NODES];
	size_t n = nodes_up(up);
	tr_pid svc;
	tr_net_spawn rq;

	k->a = arg;
	if (n == 0) {
		printf("%s: %s finds no node up to place its worker on\n",
		       self_name, k->a->id);
		return TR_EUNREACH;
	}
	snprintf(k->node, sizeof(k->node), "%s", up[k->a->slot % n]);
	tr_err err = tr_net_service(net, k->node, &svc);
	if (err != TR_OK) {
		return err;
	}
	memset(&rq, 0, sizeof(rq));
	snprintf(rq.def, sizeof(rq.def), "worker");
	rq.flags = TR_NET_SPAWN_LINK;
	return tr_request(cx, svc, TR_MSG_NET_SPAWN, &rq, sizeof(rq), SPAWN_MS,
			  &k->spawn);
}

static void
keeper_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct keeper *k = state;

	if (!(m->flags & TR_MSG_F_REPLY) || m->ref.v != k->spawn.v) {
		tr_unhandled(cx, m);
		return;
	}
	if (m->type == TR_MSG_REQUEST_FAILED) {
		/* The node went before it answered: die of it, and be
		 * restarted elsewhere. */
		const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);
		tr_stop_self(cx, f != NULL ? f->reason : TR_EXIT_ERROR);
		return;
	}
	const tr_net_pid_reply *r = TR_MSG_AS(m, tr_net_pid_reply);
	struct worker_msg w = { .slot = k->a->slot };
	if (m->type != TR_MSG_NET_PID || r == NULL || r->status != TR_OK ||
	    tr_net_pid_decode(net, r->pid, &w.worker) != TR_OK) {
		printf("%s: %s could not spawn on %s: %s\n", self_name,
		       k->a->id, k->node,
		       r != NULL ? tr_err_name(r->status) : "bad reply");
		tr_stop_self(cx, TR_EXIT_ERROR);
		return;
	}
	/* The worker is linked to this keeper since before its init ran:
	 * from now on its death, or its node's, stops this keeper. */
	memcpy(w.node, k->node, sizeof(w.node));
	(void)tr_send(cx, dispatcher, MSG_WORKER, &w, sizeof(w));
}

static const tr_actor_def keeper_def = {
	.size = sizeof(tr_actor_def),
	.name = "keeper",
	.state_size = sizeof(struct keeper),
	.init = keeper_init,
	.handle = keeper_handle,
};

/* The dispatcher's answer to MSG_DRAIN: its counts, once nothing is in
 * flight. */
struct summary {
	uint64_t sent;
	uint64_t answered;
	uint64_t lost;
	uint64_t failed;  /* other outcomes: there should be none */
	uint64_t refused; /* requests tr_request() refused: not sent */
	uint64_t wrong;   /* answers with a wrong result */
	uint64_t after;   /* answered after the first NODEDOWN */
	uint64_t nodedowns;
	uint64_t restarts; /* keepers the supervisor restarted */
	uint64_t answered_by[MAX_NODES];
	uint64_t lost_by[MAX_NODES];
	uint32_t workers_on[MAX_NODES]; /* at the end */
};

struct job {
	tr_ref ref;
	uint64_t n;
	int node;
	unsigned slot;
};

struct dispatch {
	struct summary s;
	bool have[MAX_KEEPERS];
	struct worker_msg w[MAX_KEEPERS];
	unsigned inflight[MAX_KEEPERS];
	struct job jobs[MAX_KEEPERS * WINDOW];
	size_t njobs;
	uint64_t next;
	bool all_placed;
	bool draining;
	tr_msg drain; /* the MSG_DRAIN request, answered once drained */
};

static size_t
dispatch_placed(const struct dispatch *d, uint32_t *per_node)
{
	size_t n = 0;

	memset(per_node, 0, sizeof(uint32_t) * MAX_NODES);
	for (size_t i = 0; i < nkeepers; i++) {
		if (d->have[i]) {
			n++;
			per_node[node_index(d->w[i].node)]++;
		}
	}
	return n;
}

/* Print "all N workers placed (beta 2, gamma 2)" each time the table is
 * full again: run.sh waits for this line. */
static void
dispatch_maybe_all_placed(struct dispatch *d)
{
	uint32_t per[MAX_NODES];
	char buf[256];
	size_t len = 0;

	if (dispatch_placed(d, per) < nkeepers) {
		d->all_placed = false;
		return;
	}
	if (d->all_placed) {
		return;
	}
	d->all_placed = true;
	for (size_t i = 0; i < nwork_on; i++) {
		if (per[i] > 0) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%s%s %u", len > 0 ? ", " : "",
						work_on[i], per[i]);
		}
	}
	printf("%s: all %zu workers placed (%s)\n", self_name, nkeepers, buf);
}

static void
dispatch_answer_drain(tr_ctx *cx, struct dispatch *d)
{
	if (!d->draining || d->njobs > 0 || d->drain.ref.v == 0) {
		return;
	}
	dispatch_placed(d, d->s.workers_on);
	(void)tr_reply(cx, &d->drain, MSG_DRAIN, &d->s, sizeof(d->s));
	d->drain.ref.v = 0;
}

static void
dispatch_tick(tr_ctx *cx, struct dispatch *d)
{
	for (size_t i = 0; i < nkeepers && !d->draining; i++) {
		while (d->have[i] && d->inflight[i] < WINDOW) {
			struct job *j = &d->jobs[d->njobs];
			j->n = ++d->next;
			j->slot = (unsigned)i;
			j->node = node_index(d->w[i].node);
			if (tr_request(cx, d->w[i].worker, MSG_JOB, &j->n,
				       sizeof(j->n), 0, &j->ref) != TR_OK) {
				d->s.refused++;
				break;
			}
			d->njobs++;
			d->inflight[i]++;
			d->s.sent++;
		}
	}
}

/* A job's outcome: its reply or its failure, exactly one per job. */
static void
dispatch_outcome(tr_ctx *cx, struct dispatch *d, const tr_msg *m)
{
	size_t i = 0;

	while (i < d->njobs && d->jobs[i].ref.v != m->ref.v) {
		i++;
	}
	if (i == d->njobs) {
		tr_unhandled(cx, m);
		return;
	}
	struct job j = d->jobs[i];
	d->jobs[i] = d->jobs[--d->njobs];
	if (d->inflight[j.slot] > 0) {
		d->inflight[j.slot]--;
	}
	const uint64_t *r = TR_MSG_AS(m, uint64_t);
	const tr_request_failed *f = TR_MSG_AS(m, tr_request_failed);
	if (m->type == MSG_RESULT && r != NULL) {
		d->s.answered++;
		d->s.answered_by[j.node]++;
		d->s.wrong += *r != work(j.n);
		d->s.after += d->s.nodedowns > 0;
	} else if (m->type == TR_MSG_REQUEST_FAILED && f != NULL &&
		   f->reason == TR_EXIT_NOCONNECTION) {
		d->s.lost++;
		d->s.lost_by[j.node]++;
		printf("%s: job %llu lost with %s\n", self_name,
		       (unsigned long long)j.n, work_on[j.node]);
	} else {
		d->s.failed++;
		printf("%s: job %llu failed: reason %d\n", self_name,
		       (unsigned long long)j.n, f != NULL ? f->reason : -1);
	}
	dispatch_answer_drain(cx, d);
}

static void
dispatch_node_event(struct dispatch *d, const tr_msg *m)
{
	const tr_net_node_event *e = TR_MSG_AS(m, tr_net_node_event);

	if (e == NULL) {
		return;
	}
	if (m->type == TR_MSG_NET_NODEUP) {
		printf("%s: NODEUP %s\n", self_name, e->name);
		return;
	}
	d->s.nodedowns++;
	printf("%s: NODEDOWN %s (%s)\n", self_name, e->name,
	       e->reason == TR_EXIT_NOCONNECTION ? "connection lost"
						 : "shut down");
	/* Send it nothing more: its workers are gone, and their keepers
	 * will tell of the new ones. Jobs in flight there get their
	 * TR_EXIT_NOCONNECTION outcome from the runtime. */
	for (size_t i = 0; i < nkeepers; i++) {
		if (d->have[i] && strcmp(d->w[i].node, e->name) == 0) {
			d->have[i] = false;
		}
	}
	/* Keepers restarted on other nodes may have told of their new
	 * workers before this event came: then the table is full again
	 * already, and this says so. */
	d->all_placed = false;
	dispatch_maybe_all_placed(d);
}

static void
dispatch_sup_event(struct dispatch *d, const tr_msg *m)
{
	const tr_sup_event *e = TR_MSG_AS(m, tr_sup_event);

	if (e == NULL) {
		return;
	}
	if (e->kind == TR_SUP_EV_EXITED && e->reason != TR_EXIT_SHUTDOWN) {
		printf("%s: %s exited (%s)\n", self_name, e->id,
		       e->reason == TR_EXIT_NOCONNECTION ? "no connection"
							 : "an error");
	} else if (e->kind == TR_SUP_EV_RESTARTED) {
		d->s.restarts++;
		printf("%s: supervisor restarted %s\n", self_name, e->id);
	} else if (e->kind == TR_SUP_EV_INTENSITY) {
		printf("%s: supervisor gave up (restart intensity)\n",
		       self_name);
	}
}

static void
dispatch_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct dispatch *d = state;

	if (m->flags & TR_MSG_F_REPLY) {
		dispatch_outcome(cx, d, m);
	} else if (m->type == MSG_TICK) {
		dispatch_tick(cx, d);
	} else if (m->type == MSG_WORKER) {
		const struct worker_msg *w = TR_MSG_AS(m, struct worker_msg);
		if (w == NULL || w->slot >= nkeepers ||
		    node_index(w->node) < 0) {
			tr_unhandled(cx, m);
			return;
		}
		d->w[w->slot] = *w;
		d->have[w->slot] = true;
		printf("%s: %s has its worker on %s\n", self_name,
		       keeper_args[w->slot].id, w->node);
		dispatch_maybe_all_placed(d);
	} else if (m->type == TR_MSG_NET_NODEUP ||
		   m->type == TR_MSG_NET_NODEDOWN) {
		dispatch_node_event(d, m);
	} else if (m->type == TR_MSG_SUP_EVENT) {
		dispatch_sup_event(d, m);
	} else if (m->type == MSG_DRAIN && (m->flags & TR_MSG_F_REQUEST)) {
		d->draining = true;
		d->drain = (tr_msg){ .type = m->type,
				     .flags = m->flags,
				     .from = m->from,
				     .ref = m->ref };
		dispatch_answer_drain(cx, d);
	} else {
		tr_unhandled(cx, m);
	}
}

static int
dispatch_init(tr_ctx *cx, void *state, void *arg)
{
	(void)state;
	(void)arg;
	return tr_send_every(cx, tr_self(cx), MSG_TICK, NULL, 0, TICK_MS, NULL);
}

static const tr_actor_def dispatch_def = {
	.size = sizeof(tr_actor_def),
	.name = "dispatcher",
	.state_size = sizeof(struct dispatch),
	.init = dispatch_init,
	.handle = dispatch_handle,
};

/* ---- main ---- */

static int
fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", self_name ? self_name : "cluster", what,
		tr_err_name(err));
	return 2;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: example-cluster --node NAME --listen URL --secret S "
		"[--seed URL]... [--work-on NODE,NODE,...] [--keepers N]\n");
	exit(2);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Split --work-on's list in place. */
static void
parse_work_on(char *list)
{
	for (char *p = strtok(list, ","); p != NULL; p = strtok(NULL, ",")) {
		if (nwork_on == MAX_NODES) {
			usage();
		}
		work_on[nwork_on++] = p;
	}
}

/* The boss: wait for the hosts, start the dispatcher and the supervisor. */
static int
boss_start(tr_runtime *rt, tr_inbox *ib, tr_pid *sup)
{
	const char *up[MAX_NODES];
	int waited = 0;
	tr_err err;

	while (nodes_up(up) < nwork_on) {
		if (waited >= PEERS_MS) {
			fprintf(stderr, "%s: the hosts did not come up\n",
				self_name);
			return 1;
		}
		sleep_ms(50);
		waited += 50;
	}
	if ((err = tr_spawn(tr_runtime_ctx(rt), &dispatch_def, NULL,
			    &dispatcher)) != TR_OK ||
	    (err = tr_net_monitor_nodes(net, dispatcher, true)) != TR_OK) {
		return fail("dispatcher", err);
	}
	tr_sup_child_spec specs[MAX_KEEPERS];
	for (size_t i = 0; i < nkeepers; i++) {
		snprintf(keeper_args[i].id, sizeof(keeper_args[i].id), "k%zu",
			 i + 1);
		keeper_args[i].slot = (unsigned)i;
		specs[i] = (tr_sup_child_spec){ .size = sizeof(specs[i]),
						.id = keeper_args[i].id,
						.def = &keeper_def,
						.arg = &keeper_args[i],
						.restart = TR_SUP_PERMANENT,
						.shutdown_ms = 5000 };
	}
	/* A node that dies takes about half of the keepers with it, and a
	 * keeper may need a second try while the node is being declared
	 * down: allow that, not a loop. */
	tr_sup_flags fl = { .size = sizeof(fl),
			    .strategy = TR_SUP_ONE_FOR_ONE,
			    .intensity = (uint32_t)(4 * nkeepers),
			    .period_ms = 10000,
			    .observer = dispatcher };
	tr_ref ref;
	tr_received r;
	if ((err = tr_sup_start(tr_inbox_ctx(ib), &fl, specs, nkeepers, sup,
				&ref)) != TR_OK ||
	    (err = tr_inbox_recv(ib, &ref, -1, &r)) != TR_OK) {
		return fail("supervisor", err);
	}
	const tr_sup_reply *rp = TR_MSG_AS(&r, tr_sup_reply);
	err = r.type == TR_MSG_SUP_REPLY && rp != NULL ? rp->status : TR_EINVAL;
	tr_received_fini(&r);
	if (err != TR_OK) {
		return fail("supervisor start", err);
	}
	printf("%s: supervisor up with %zu keepers\n", self_name, nkeepers);
	return 0;
}

/* The boss's stop: drain the jobs, print and check the counts. */
static int
boss_stop(tr_inbox *ib)
{
	struct summary s;
	tr_ref ref;
	tr_received r;
	tr_err err;

	if ((err = tr_request(tr_inbox_ctx(ib), dispatcher, MSG_DRAIN, NULL, 0,
			      DRAIN_MS, &ref)) != TR_OK ||
	    (err = tr_inbox_recv(ib, &ref, -1, &r)) != TR_OK) {
		return fail("drain", err);
	}
	const struct summary *sp = TR_MSG_AS(&r, struct summary);
	bool got = r.type == MSG_DRAIN && sp != NULL;
	if (got) {
		s = *sp;
	}
	tr_received_fini(&r);
	if (!got) {
		fprintf(stderr, "%s: the jobs in flight did not drain\n",
			self_name);
		return 1;
	}
	printf("%s: sent %llu jobs, answered %llu, lost %llu with a dead "
	       "node\n",
	       self_name, (unsigned long long)s.sent,
	       (unsigned long long)s.answered, (unsigned long long)s.lost);
	for (size_t i = 0; i < nwork_on; i++) {
		printf("%s:   %s answered %llu, lost %llu, has %u workers "
		       "now\n",
		       self_name, work_on[i],
		       (unsigned long long)s.answered_by[i],
		       (unsigned long long)s.lost_by[i], s.workers_on[i]);
	}
	printf("%s: %llu nodes went down, %llu keepers restarted, %llu jobs "
	       "answered after the first went\n",
	       self_name, (unsigned long long)s.nodedowns,
	       (unsigned long long)s.restarts, (unsigned long long)s.after);
	bool ok = s.sent == s.answered + s.lost && s.failed == 0 &&
		  s.wrong == 0 && s.refused == 0;
	printf("%s: sent %llu == answered %llu + lost %llu: %s\n", self_name,
	       (unsigned long long)s.sent, (unsigned long long)s.answered,
	       (unsigned long long)s.lost, ok ? "ok" : "NO");
	if (s.failed + s.wrong + s.refused > 0) {
		printf("%s: %llu other failures, %llu wrong answers, %llu "
		       "refused\n",
		       self_name, (unsigned long long)s.failed,
		       (unsigned long long)s.wrong,
		       (unsigned long long)s.refused);
	}
	if (s.nodedowns > 0 && s.after == 0) {
		printf("%s: no job was answered after the node went\n",
		       self_name);
		ok = false;
	}
	return ok ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *listen = NULL, *secret = NULL;
	const char *seeds[MAX_SEEDS + 1] = { NULL };
	size_t nseeds = 0;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc) {
			usage();
		}
		if (strcmp(o, "--node") == 0) {
			self_name = argv[++i];
		} else if (strcmp(o, "--listen") == 0) {
			listen = argv[++i];
		} else if (strcmp(o, "--secret") == 0) {
			secret = argv[++i];
		} else if (strcmp(o, "--seed") == 0 && nseeds < MAX_SEEDS) {
			seeds[nseeds++] = argv[++i];
		} else if (strcmp(o, "--work-on") == 0) {
			parse_work_on(argv[++i]);
		} else if (strcmp(o, "--keepers") == 0) {
			nkeepers = strtoul(argv[++i], NULL, 10);
		} else {
			usage();
		}
	}
	if (self_name == NULL || listen == NULL || secret == NULL ||
	    nkeepers == 0 || nkeepers > MAX_KEEPERS) {
		usage();
	}
	bool boss = nwork_on > 0;
	/* Each line as it happens, also into a pipe or a file. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* SIGTERM and SIGINT are taken by sigwait() below: block them before
	 * any thread starts, so that every thread inherits the mask. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	tr_net_config nc = { .size = sizeof(nc),
			     .name = self_name,
			     .listen = listen,
			     .seeds = seeds,
			     .secret = secret,
			     .secret_len = strlen(secret) };
	if (!boss) {
		nc.defs = offered;
		nc.ndefs = 1;
	}
	tr_config cfg = tr_config_default();
	cfg.workers = 2;
	tr_runtime *rt;
	tr_inbox *ib = NULL;
	tr_pid sup = TR_PID_NONE;
	char addr[160];
	tr_err err;
	if ((err = tr_runtime_create(&cfg, &rt)) != TR_OK ||
	    (err = tr_runtime_start(rt)) != TR_OK) {
		return fail("runtime", err);
	}
	if ((err = tr_net_start(rt, &nc, &net)) != TR_OK ||
	    (err = tr_net_address(net, addr, sizeof(addr))) != TR_OK) {
		return fail("node", err);
	}
	printf("%s: listening at %s%s\n", self_name, addr,
	       boss ? "" : ", offering \"worker\"");

	int rc = 0;
	if (boss) {
		if ((err = tr_inbox_create(rt, &ib)) != TR_OK) {
			return fail("inbox", err);
		}
		rc = boss_start(rt, ib, &sup);
	}
	if (rc == 0) {
		int sig = 0;
		while (sigwait(&stop, &sig) != 0) {
		}
		printf("%s: stopping\n", self_name);
		if (boss) {
			rc = boss_stop(ib);
		}
	}
	/* The documented order: the runtime (its actors' last exit signals
	 * still cross: the workers of this boss's keepers stop with them),
	 * then the node, then the runtime's memory. */
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	if ((err = tr_runtime_join(rt)) != TR_OK) {
		return fail("join", err);
	}
	tr_net_stop(net);
	if (!boss) {
		printf("%s: %llu jobs done by %llu workers\n", self_name,
		       (unsigned long long)atomic_load(&jobs_done),
		       (unsigned long long)atomic_load(&workers_started));
	}
	tr_metrics m = { .size = sizeof(m) };
	bool counted = tr_runtime_metrics(rt, &m) == TR_OK &&
		       m.msgs_sent == m.msgs_handled + m.dead_letters &&
		       m.actors_alive == 0;
	printf("%s: messages sent %llu == handled %llu + dead letters %llu: "
	       "%s\n",
	       self_name, (unsigned long long)m.msgs_sent,
	       (unsigned long long)m.msgs_handled,
	       (unsigned long long)m.dead_letters, counted ? "ok" : "NO");
	tr_runtime_destroy(rt);
	(void)sup;
	return rc != 0 ? rc : counted ? 0 : 1;
}
