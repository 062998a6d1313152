/*
 * Actors: the slot table, spawn, send, one turn of an actor, system
 * messages (init, stop, exit signals, links, monitors) and termination.
 *
 * Threads:
 * - spawn and send run on any thread (workers pass their tr__worker, other
 *   threads NULL);
 * - tr__actor_run runs on the worker that took the actor from a run queue;
 *   the mailbox protocol guarantees no other thread runs it at the same
 *   time;
 * - everything that takes a tr_ctx runs inside a handler, or on the
 *   thread that owns a thread's context (an inbox's, tr_inbox_ctx, or the
 *   runtime's, tr_runtime_ctx, which any thread may use). A thread's
 *   context has no actor and no worker, and nothing here writes to it.
 *
 * Invariants:
 * - a message is handled only if its `to` equals the slot's current pid,
 *   so a handler never sees a message meant for an earlier generation and
 *   never runs after its actor stopped;
 * - every message accepted by a send is counted once in `sent` and later
 *   once in `handled` or `dead`; a refused send (TR_EFULL, TR_EINVAL,
 *   TR_EMSGSIZE, TR_ENOMEM) is in neither.
 */
#include "runtime/actor.h"

#include <string.h>

#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/internal.h"
#include "runtime/inbox.h"
#include "runtime/io_loop.h"
#include "runtime/pid.h"
#include "runtime/remote.h"
#include "runtime/request.h"
#include "runtime/runtime.h"
#include "runtime/sched.h"

/* Links and monitors of one actor, allocated on first use. */
struct mon_ent {
	uint64_t ref;
	uint64_t pid;
};

struct mon_set {
	struct mon_ent *v;
	uint32_t n;
	uint32_t cap;
};

struct tr__actor_ext {
	/* Owns child processes or sockets: what releases them at its stop,
	 * allocated when it took the first (see tr__io_gone_prepare). */
	struct tr__io_gone *io_gone;
	struct mon_set links;    /* ref unused */
	struct mon_set monitors; /* monitors this actor holds on others */
	/* Monitors others hold on this actor, and the requests it holds
	 * (see request.h): ref -> the watcher's pid, in a table keyed by
	 * the reference, since a store or a router holds thousands and
	 * answers them in any order. */
	struct tr__reqtab watchers;
	struct tr__reqtab reqs; /* requests this actor has open */
	/* tr_stash()ed messages, oldest first, and those tr_unstash_all()
	 * put back: handled before the mailbox, first to last. Linked
	 * through node.next (relaxed: only the actor's turn touches them). */
	struct tr__msg *stash;
	struct tr__msg *stash_last;
	struct tr__msg *replay;
	/* A stop that came before init (see TR__SYS_STOP): done after it. */
	bool stop_pending;
	int32_t stop_reason;
};

/* Free slots kept per worker before half are handed to the shared list. */
#define WORKER_FREE_SLOTS_MAX 4096u

static struct tr__stats *
stats_of(tr_runtime *rt, struct tr__worker *w)
{
	return w != NULL ? &w->stats : &rt->foreign;
}

void
tr__stat_inc(tr_runtime *rt, struct tr__worker *w, size_t off, uint64_t n)
{
	_Atomic uint64_t *c =
		(_Atomic uint64_t *)(void *)((char *)stats_of(rt, w) + off);

	if (w != NULL) {
		tr__stat_add(c, n);
	} else {
		tr__stat_add_shared(c, n);
	}
}

#define STAT(rt, w, field, n)                                                  \
	tr__stat_inc((rt), (w), offsetof(struct tr__stats, field), (n))

static struct tr__msg_cache *
cache_of(struct tr__worker *w)
{
	return w != NULL ? w->cache : tr__msg_thread_cache();
}

/* ------------------------------------------------------------------ */
/* Slot table                                                          */

struct tr__actor *
tr__actor_lookup(tr_runtime *rt, uint64_t pid)
{
	if (tr__pid_node(pid) != 0) {
		return NULL;
	}
	uint32_t slot = tr__pid_slot(pid);
	uint32_t ci = slot >> TR__CHUNK_BITS;

	if (ci >= TR__MAX_CHUNKS) {
		return NULL;
	}
	/* acquire: pairs with the release CAS that published the chunk. */
	struct tr__actor *chunk =
		atomic_load_explicit(&rt->chunks[ci], memory_order_acquire);
	if (chunk == NULL) {
		return NULL;
	}
	return &chunk[slot & (TR__CHUNK_SLOTS - 1)];
}

static struct tr__actor *
chunk_get(tr_runtime *rt, uint32_t ci)
{
	struct tr__actor *chunk =
		atomic_load_explicit(&rt->chunks[ci], memory_order_acquire);
	if (chunk != NULL) {
		return chunk;
	}
	size_t bytes = sizeof(struct tr__actor) * TR__CHUNK_SLOTS;
	struct tr__actor *fresh = tr__calloc(bytes);
	if (fresh == NULL) {
		return NULL;
	}
	for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) {
		tr__mailbox_init(&fresh[i].mb);
		fresh[i].gen = 1;
		fresh[i].slot = (ci << TR__CHUNK_BITS) | i;
	}
	struct tr__actor *expect = NULL;
	/* release: publishes the initialised slots to tr__actor_lookup. */
	if (!atomic_compare_exchange_strong_explicit(
		    &rt->chunks[ci], &expect, fresh, memory_order_acq_rel,
		    memory_order_acquire)) {
		tr__free(fresh, bytes);
		return expect;
	}
	return fresh;
}

static struct tr__actor *
slot_alloc(tr_runtime *rt, struct tr__worker *w, uint32_t *slot_out)
{
	struct tr__actor *a = NULL;

	if (w != NULL && w->free_slots != NULL) {
		a = w->free_slots;
		w->free_slots = a->free_next;
		w->n_free_slots--;
	} else {
		pthread_mutex_lock(&rt->slot_mu);
		a = rt->free_slots;
		if (a != NULL) {
			rt->free_slots = a->free_next;
		}
		pthread_mutex_unlock(&rt->slot_mu);
	}
	if (a != NULL) {
		*slot_out = UINT32_MAX; /* caller derives it from the chunk */
		return a;
	}
	uint32_t idx = atomic_fetch_add_explicit(&rt->next_fresh, 1,
						 memory_order_relaxed);
	if (idx > TR__PID_SLOT_MASK) {
		atomic_fetch_sub_explicit(&rt->next_fresh, 1,
					  memory_order_relaxed);
		return NULL;
	}
	struct tr__actor *chunk = chunk_get(rt, idx >> TR__CHUNK_BITS);
	if (chunk == NULL) {
		/* The index is lost; the chunk is retried by the next spawn. */
		return NULL;
	}
	*slot_out = idx;
	return &chunk[idx & (TR__CHUNK_SLOTS - 1)];
}

static void
slot_release(tr_runtime *rt, struct tr__worker *w, struct tr__actor *a)
{
	if (w == NULL) {
		pthread_mutex_lock(&rt->slot_mu);
		a->free_next = rt->free_slots;
		rt->free_slots = a;
		pthread_mutex_unlock(&rt->slot_mu);
		return;
	}
	a->free_next = w->free_slots;
	w->free_slots = a;
	if (++w->n_free_slots < WORKER_FREE_SLOTS_MAX) {
		return;
	}
	/* Hand half to the shared list so foreign spawns can reuse them. */
	struct tr__actor *first = w->free_slots, *last = first;
	for (unsigned i = 1; i < WORKER_FREE_SLOTS_MAX / 2; i++) {
		last = last->free_next;
	}
	w->free_slots = last->free_next;
	w->n_free_slots -= WORKER_FREE_SLOTS_MAX / 2;
	pthread_mutex_lock(&rt->slot_mu);
	last->free_next = rt->free_slots;
	rt->free_slots = first;
	pthread_mutex_unlock(&rt->slot_mu);
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

static void
dead_letter(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg,
	    bool free_node, bool known, int32_t why);

void
tr__dead_letter(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg)
{
	STAT(rt, w, sent, 1);
	dead_letter(rt, w, msg, true, false, 0);
}

tr_err
tr__send_sys(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	     uint32_t type, const void *data, size_t len)
{
	struct tr__msg *msg = tr__msg_alloc(cache_of(w), len);

	if (msg == NULL) {
		return TR_ENOMEM;
	}
	msg->m.type = type;
	msg->m.flags = 0;
	msg->m.from.v = from;
	msg->m.size = len;
	msg->m.data = msg->data;
	msg->free_fn = NULL;
	if (len > 0) {
		memcpy(msg->data, data, len);
	}
	return tr__send_node(rt, w, to, msg, false);
}

struct tr__msg *
tr__msg_new(struct tr__worker *w, size_t len)
{
	struct tr__msg *msg = tr__msg_alloc(cache_of(w), len);

	if (msg != NULL) {
		msg->m.flags = 0;
		msg->m.size = len;
		msg->m.data = msg->data;
		msg->free_fn = NULL;
	}
	return msg;
}

tr_err
tr__send_built(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	       uint32_t type, struct tr__msg *msg, tr_free_fn release)
{
	msg->m.type = type;
	msg->m.from.v = from;
	if (release != NULL) {
		msg->free_fn = release;
		msg->iflags |= TR__MSG_I_HOOK;
	}
	return tr__send_node(rt, w, to, msg, false);
}

tr_err
tr__send_node(tr_runtime *rt, struct tr__worker *w, uint64_t to,
	      struct tr__msg *msg, bool bounded)
{
	msg->to = to;
	if (tr__unlikely(tr__pid_node(to) != 0)) {
		return tr__remote_out(rt, w, msg);
	}
	struct tr__actor *a = tr__actor_lookup(rt, to);
	if (tr__unlikely(a == NULL ||
			 atomic_load_explicit(&a->pid, memory_order_relaxed) !=
				 to)) {
		STAT(rt, w, sent, 1);
		dead_letter(rt, w, msg, true, false, 0);
		return TR_OK;
	}
	if (bounded) {
		uint32_t bound =
			atomic_load_explicit(&a->bound, memory_order_relaxed);
		if (bound != 0) {
			uint32_t n = atomic_fetch_add_explicit(
				&a->mb_len, 1, memory_order_relaxed);
			if (n >= bound) {
				atomic_fetch_sub_explicit(&a->mb_len, 1,
							  memory_order_relaxed);
				STAT(rt, w, full, 1);
				tr__msg_discard(cache_of(w), msg);
				return TR_EFULL;
			}
			msg->iflags |= TR__MSG_I_COUNTED;
		}
	}
	STAT(rt, w, sent, 1);
	if (tr__mailbox_push(&a->mb, &msg->node)) {
		tr__sched_schedule(rt, w, a);
	} else if (w != NULL && w->cx.a != NULL && w->cx.a != a &&
		   atomic_load_explicit(&a->overloaded, memory_order_relaxed)) {
		w->cx.mute_on = a;
	}
	return TR_OK;
}

static tr_err
check_user_send(tr_runtime *rt, uint64_t to, uint32_t type, size_t len)
{
	if (to == 0 || type >= TR_MSG_SYSTEM_BASE) {
		return TR_EINVAL;
	}
	if (len > rt->cfg.max_msg_size) {
		return TR_EMSGSIZE;
	}
	return TR_OK;
}

tr_err
tr__send_copy(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	      uint32_t type, const void *data, size_t len)
{
	tr_err err = check_user_send(rt, to, type, len);

	if (err < 0) {
		return err;
	}
	if (len > 0 && data == NULL) {
		return TR_EINVAL;
	}
	struct tr__msg *msg = tr__msg_alloc(cache_of(w), len);
	if (msg == NULL) {
		return TR_ENOMEM;
	}
	msg->m.type = type;
	msg->m.flags = 0;
	msg->m.from.v = from;
	msg->m.size = len;
	msg->m.data = msg->data;
	msg->free_fn = NULL;
	if (len > 0) {
		memcpy(msg->data, data, len);
	}
	return tr__send_node(rt, w, to, msg, true);
}

tr_err
tr__send_ptr(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	     uint32_t type, void *ptr, size_t len, tr_free_fn free_fn,
	     bool bounded)
{
	/* Runtime-internal sends (unbounded) may use the reserved types. */
	tr_err err = bounded ? check_user_send(rt, to, type, 0)
			     : (to == 0 ? TR_EINVAL : TR_OK);

	if (err < 0) {
		goto err_free;
	}
	struct tr__msg *msg = tr__msg_alloc(cache_of(w), 0);
	if (msg == NULL) {
		err = TR_ENOMEM;
		goto err_free;
	}
	msg->m.type = type;
	msg->m.flags = TR_MSG_F_PTR;
	msg->m.from.v = from;
	msg->m.size = len;
	msg->m.data = ptr;
	msg->free_fn = free_fn;
	return tr__send_node(rt, w, to, msg, bounded);

err_free:
	if (free_fn != NULL && ptr != NULL) {
		free_fn(ptr);
	}
	return err;
}

/*
 * A message that reaches no actor: count it, answer link and monitor
 * requests and requests with @why if @known (else TR_EXIT_NOPROC, or
 * TR_EXIT_NOCONNECTION for another node's pid) so the requester learns
 * the actor is gone, free its pointer payload, and free the node unless
 * the mailbox still holds it as its tail (@free_node false).
 */
static void
dead_letter(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg,
	    bool free_node, bool known, int32_t why)
{
	/* What cannot reach another node: its node is unknown or down. */
	if (!known) {
		why = tr__pid_node(msg->to) != 0 ? TR_EXIT_NOCONNECTION
						 : TR_EXIT_NOPROC;
	}

	STAT(rt, w, dead, 1);
	if ((msg->m.flags & TR_MSG_F_REQUEST) && msg->m.from.v != 0) {
		/* A request nobody took: its outcome is a failure. */
		struct tr__sys_down d = { .ref = msg->m.ref.v,
					  .who = msg->to,
					  .reason = why };
		(void)tr__send_sys(rt, w, msg->to, msg->m.from.v, TR__SYS_DOWN,
				   &d, sizeof(d));
	} else if (msg->m.type == TR__SYS_LINK) {
		struct tr__sys_exit e = { .from = msg->to,
					  .reason = why,
					  .link_ended = true };
		(void)tr__send_sys(rt, w, msg->to, msg->m.from.v, TR__SYS_EXIT,
				   &e, sizeof(e));
	} else if (msg->m.type == TR__SYS_MONITOR) {
		struct tr__sys_down d;
		memcpy(&d.ref, msg->m.data, sizeof(d.ref));
		d.who = msg->to;
		d.reason = why;
		(void)tr__send_sys(rt, w, msg->to, msg->m.from.v, TR__SYS_DOWN,
				   &d, sizeof(d));
	}
	if (free_node) {
		tr__msg_discard(cache_of(w), msg);
	} else {
		tr__msg_free_payload(msg);
	}
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */

static struct tr__actor_ext *ext_get(struct tr__actor *a);
static tr_err set_add(struct mon_set *s, uint64_t ref, uint64_t pid);
static void set_remove_at(struct mon_set *s, int i);
static void ext_free(struct tr__actor *a);

/*
 * Record a link or monitor between the spawning actor and a new one that
 * nobody else can see yet. On failure nothing is left recorded.
 */
static tr_err
spawn_relate(tr_runtime *rt, struct tr__actor *child, uint64_t child_pid,
	     const struct tr__spawn_opts *o)
{
	struct tr__actor *parent = o->parent->a;
	uint64_t ppid = o->parent->self;
	struct tr__actor_ext *cx = ext_get(child);
	struct tr__actor_ext *px = ext_get(parent);

	if (cx == NULL || px == NULL) {
		return TR_ENOMEM;
	}
	if (o->flags & TR__SPAWN_LINK) {
		if (set_add(&cx->links, 0, ppid) < 0) {
			return TR_ENOMEM;
		}
		if (set_add(&px->links, 0, child_pid) < 0) {
			return TR_ENOMEM;
		}
	}
	if (o->flags & TR__SPAWN_MONITOR) {
		uint64_t ref = atomic_fetch_add_explicit(&rt->next_ref, 1,
							 memory_order_relaxed);
		if (tr__reqtab_add(&cx->watchers, ref, ppid, 0) < 0) {
			goto err_link;
		}
		if (set_add(&px->monitors, ref, child_pid) < 0) {
			(void)tr__reqtab_take(&cx->watchers, ref, NULL);
			goto err_link;
		}
		if (o->ref_out != NULL) {
			*o->ref_out = ref;
		}
	}
	return TR_OK;

err_link:
	if (o->flags & TR__SPAWN_LINK) {
		set_remove_at(&px->links, (int)px->links.n - 1);
	}
	return TR_ENOMEM;
}

static tr_err note_io(tr_runtime *rt, struct tr__actor *a);
static tr_err
spawn_one(tr_runtime *rt, struct tr__worker *w, const tr_actor_def *def,
	  void *arg, const struct tr__spawn_opts *o, tr_pid *out);

tr_err
tr__spawn(tr_runtime *rt, struct tr__worker *w, const tr_actor_def *def,
	  void *arg, const struct tr__spawn_opts *opts, tr_pid *out)
{
	if (w != NULL) {
		/* The spawning actor is alive until its turn ends, which keeps
		 * join sweeping until this child has been counted. */
		return spawn_one(rt, w, def, arg, opts, out);
	}
	/* seq_cst: the Dekker pair of tr_runtime_stop/tr_runtime_join. */
	atomic_fetch_add_explicit(&rt->foreign_spawning, 1,
				  memory_order_seq_cst);
	tr_err err = spawn_one(rt, w, def, arg, opts, out);
	atomic_fetch_sub_explicit(&rt->foreign_spawning, 1,
				  memory_order_seq_cst);
	return err;
}

static tr_err
spawn_one(tr_runtime *rt, struct tr__worker *w, const tr_actor_def *def,
	  void *arg, const struct tr__spawn_opts *opts, tr_pid *out)
{
	static const struct tr__spawn_opts none;
	const struct tr__spawn_opts *o = opts != NULL ? opts : &none;
	tr_err err = TR_ENOMEM;

	if (def == NULL || def->size < sizeof(tr_actor_def) ||
	    def->handle == NULL || o->state_init_len > def->state_size ||
	    ((o->flags & (TR__SPAWN_LINK | TR__SPAWN_MONITOR)) != 0 &&
	     (o->parent == NULL || o->parent->a == NULL))) {
		return TR_EINVAL;
	}
	if (def->arg_size > rt->cfg.max_msg_size) {
		return TR_EMSGSIZE;
	}
	if (atomic_load_explicit(&rt->stopping, memory_order_seq_cst)) {
		return TR_ECLOSED;
	}
	void *state = NULL;
	if (def->state_size > 0) {
		state = tr__calloc(def->state_size);
		if (state == NULL) {
			return TR_ENOMEM;
		}
		if (o->state_init != NULL) {
			memcpy(state, o->state_init, o->state_init_len);
		}
	}
	struct tr__msg *init = NULL;
	/* With arg_size the argument travels in the INIT message, a copy. */
	size_t arg_len = def->init != NULL && arg != NULL ? def->arg_size : 0;
	if (def->init != NULL) {
		init = tr__msg_alloc(cache_of(w), arg_len);
		if (init == NULL) {
			goto err_state;
		}
		if (arg_len > 0) {
			memcpy(init->data, arg, arg_len);
			arg = init->data;
		}
	}
	uint32_t slot;
	struct tr__actor *a = slot_alloc(rt, w, &slot);
	if (a == NULL) {
		goto err_init;
	}
	if (slot == UINT32_MAX) {
		slot = a->slot;
	}
	a->def = def;
	a->handler = def->handle;
	a->state = state;
	a->ext = NULL;
	a->flags = (init != NULL ? TR__A_INIT_PENDING : 0) |
		   ((o->flags & TR__SPAWN_INBOX) ? TR__A_INBOX : 0);
	atomic_store_explicit(&a->bound, def->mailbox_bound,
			      memory_order_relaxed);
	uint64_t pid = tr__pid_make(0, a->gen, slot);
	if ((o->flags & TR__SPAWN_OWNS_IO) != 0) {
		err = note_io(rt, a);
		if (err < 0) {
			ext_free(a);
			slot_release(rt, w, a);
			goto err_init;
		}
	}
	if ((o->flags & (TR__SPAWN_LINK | TR__SPAWN_MONITOR)) != 0) {
		err = spawn_relate(rt, a, pid, o);
		if (err < 0) {
			ext_free(a);
			slot_release(rt, w, a);
			goto err_init;
		}
	}
	/*
	 * release: whoever learns the pid through us (return value, then
	 * messages) sees the fields above; the worker that runs the actor
	 * gets them through the mailbox push that follows.
	 */
	atomic_store_explicit(&a->pid, pid, memory_order_release);
	STAT(rt, w, spawned, 1);
	if (init != NULL) {
		init->m.type = TR__SYS_INIT;
		init->m.flags = 0;
		init->m.from.v =
			(w != NULL && w->cx.a != NULL) ? w->cx.self : 0;
		init->m.data = arg;
		init->m.size = arg_len;
		init->free_fn = NULL;
		(void)tr__send_node(rt, w, pid, init, false);
	}
	if (out != NULL) {
		out->v = pid;
	}
	return TR_OK;

err_init:
	if (init != NULL) {
		tr__msg_free(cache_of(w), init);
	}
err_state:
	tr__free(state, def->state_size);
	return err;
}

/* ------------------------------------------------------------------ */
/* Links and monitors bookkeeping (runner only)                        */

static struct tr__actor_ext *
ext_get(struct tr__actor *a)
{
	if (a->ext == NULL) {
		a->ext = tr__calloc(sizeof(*a->ext));
	}
	return a->ext;
}

static tr_err
set_add(struct mon_set *s, uint64_t ref, uint64_t pid)
{
	if (s->n == s->cap) {
		uint32_t cap = s->cap == 0 ? 4 : s->cap * 2;
		struct mon_ent *v = tr__alloc(cap * sizeof(*v));
		if (v == NULL) {
			return TR_ENOMEM;
		}
		if (s->n > 0) {
			memcpy(v, s->v, s->n * sizeof(*v));
		}
		tr__free(s->v, s->cap * sizeof(*v));
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n].ref = ref;
	s->v[s->n].pid = pid;
	s->n++;
	return TR_OK;
}

static int
set_find_pid(const struct mon_set *s, uint64_t pid)
{
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->v[i].pid == pid) {
			return (int)i;
		}
	}
	return -1;
}

static int
set_find_ref(const struct mon_set *s, uint64_t ref)
{
	/* From the end: a request is usually answered soon after it came. */
	for (uint32_t i = s->n; i-- > 0;) {
		if (s->v[i].ref == ref) {
			return (int)i;
		}
	}
	return -1;
}

static void
set_remove_at(struct mon_set *s, int i)
{
	s->v[i] = s->v[s->n - 1];
	s->n--;
}

static void
set_fini(struct mon_set *s)
{
	tr__free(s->v, s->cap * sizeof(*s->v));
	s->v = NULL;
	s->n = s->cap = 0;
}

static void
ext_free(struct tr__actor *a)
{
	if (a->ext == NULL) {
		return;
	}
	set_fini(&a->ext->links);
	set_fini(&a->ext->monitors);
	tr__reqtab_fini(&a->ext->watchers);
	tr__reqtab_fini(&a->ext->reqs);
	tr__io_gone_discard(a->ext->io_gone);
	tr__free(a->ext, sizeof(*a->ext));
	a->ext = NULL;
}

/* ------------------------------------------------------------------ */
/* Running                                                             */

static void
unmute_all(tr_runtime *rt, struct tr__worker *w, struct tr__actor *r);
static void stash_drop(tr_runtime *rt, struct tr__worker *w,
		       struct tr__msg *msg, bool put_back);

static void
ctx_enter(struct tr__worker *w, struct tr__actor *a, const tr_msg *m)
{
	tr_ctx *cx = &w->cx;

	cx->a = a;
	cx->self = atomic_load_explicit(&a->pid, memory_order_relaxed);
	cx->msg = m;
	cx->ptr_taken = false;
	cx->unhandled = false;
	cx->stashed = false;
	cx->stop_requested = false;
	cx->sent0 = atomic_load_explicit(&w->stats.sent, memory_order_relaxed);
}

/*
 * Stop @a: teardown, tell links and monitors, free what it owns, bump the
 * slot's generation and give the slot back. Messages still queued are
 * dropped as dead letters by the rest of this turn and later turns.
 */
static void
terminate(struct tr__worker *w, struct tr__actor *a, int32_t reason)
{
	tr_runtime *rt = w->rt;
	tr_ctx *cx = &w->cx;
	uint64_t self = atomic_load_explicit(&a->pid, memory_order_relaxed);

	if (a->def->teardown != NULL) {
		cx->a = a;
		cx->self = self;
		cx->msg = NULL;
		cx->stop_requested = false;
		a->def->teardown(cx, a->state, reason);
	}
	tr__free(a->state, a->def->state_size);
	a->state = NULL;
	/* From here senders see a stale pid and count dead letters. */
	atomic_store_explicit(&a->pid, 0, memory_order_relaxed);
	atomic_store_explicit(&a->stop_for, 0, memory_order_relaxed);
	atomic_store_explicit(&a->bound, 0, memory_order_relaxed);

	int32_t seen = reason == TR_EXIT_KILL ? TR_EXIT_KILLED : reason;
	if (a->ext != NULL) {
		struct tr__actor_ext *x = a->ext;
		struct tr__sys_exit e = { .from = self,
					  .reason = seen,
					  .link_ended = true };

		for (uint32_t i = 0; i < x->links.n; i++) {
			(void)tr__send_sys(rt, w, self, x->links.v[i].pid,
					   TR__SYS_EXIT, &e, sizeof(e));
		}
		for (uint32_t i = 0; x->watchers.n > 0 && i < x->watchers.cap;
		     i++) {
			const struct tr__req *r = &x->watchers.v[i];
			struct tr__sys_down d = { .ref = r->ref,
						  .who = self,
						  .reason = seen };
			if (r->ref != 0) {
				(void)tr__send_sys(rt, w, self, r->to,
						   TR__SYS_DOWN, &d, sizeof(d));
			}
		}
		if (x->io_gone != NULL) {
			/* Its child processes and sockets end with it. */
			tr__io_owner_gone(rt->io, self, x->io_gone);
			x->io_gone = NULL;
		}
		/* Monitors this actor held: tell the targets to forget them. */
		for (uint32_t i = 0; i < x->monitors.n; i++) {
			uint64_t ref = x->monitors.v[i].ref;
			(void)tr__send_sys(rt, w, self, x->monitors.v[i].pid,
					   TR__SYS_DEMONITOR, &ref,
					   sizeof(ref));
		}
		/* Likewise its open requests: a target that holds one need
		 * not keep a watch for a requester that is gone. */
		struct tr__req r;
		while (tr__reqtab_any(&x->reqs, &r)) {
			tr__req_unwatch_target(rt, w, self, r.to, r.ref);
		}
		/* A stashed request's requester had its DOWN above. */
		stash_drop(rt, w, x->replay, true);
		stash_drop(rt, w, x->stash, false);
		ext_free(a);
	}
	/* Nobody may stay muted on an actor that will not run again. */
	unmute_all(rt, w, a);
	a->flags = 0;
	STAT(rt, w, stopped, 1);
	if (a->gen == TR__PID_GEN_MASK) {
		/*
		 * The slot's last generation: retired for the life of the
		 * runtime, so no pid is ever handed out twice (see pid.h).
		 * Messages still sent to its pids are dead letters, as for
		 * any stale pid; the slot costs its table entry only.
		 */
		tr__stat_add_shared(&rt->slots_retired, 1);
		return;
	}
	a->gen++;
	slot_release(rt, w, a);
}

/* @node: the message's node, NULL for one the runtime made on the stack. */
static void
call_handler(struct tr__worker *w, struct tr__actor *a, const tr_msg *m,
	     struct tr__msg *node)
{
	ctx_enter(w, a, m);
	w->cx.node = node;
	a->handler(&w->cx, a->state, m);
	if (w->cx.stop_requested) {
		terminate(w, a, w->cx.stop_reason);
	}
}

/*
 * The request @ref of @a failed (@who stopped with @reason, or never took
 * it, or the deadline passed). Its outcome, unless it already had one.
 */
/* Close the open request @ref of @a; false if it was not open. */
static bool
req_take(struct tr__actor *a, uint64_t ref)
{
	if (a->flags & TR__A_INBOX) {
		return tr__inbox_req_take(a->state, ref);
	}
	return a->ext != NULL && tr__reqtab_take(&a->ext->reqs, ref, NULL);
}

static void
request_failed(struct tr__worker *w, struct tr__actor *a, uint64_t ref,
	       uint64_t who, int32_t reason)
{
	if (!req_take(a, ref)) {
		return; /* answered or timed out already */
	}
	tr_request_failed f;
	tr_msg m;
	tr__req_failed_msg(&m, &f, ref, who, reason);
	call_handler(w, a, &m, NULL);
}

/*
 * A tick armed for deadline @for_deadline: fail every open request of @a
 * whose deadline passed. Only the tick that is still the armed one arms
 * the next: a tick superseded by an earlier deadline (whose own tick
 * armed a successor) ends there, so ticks never multiply.
 */
static void
requests_due(struct tr__worker *w, struct tr__actor *a, uint64_t for_deadline)
{
	uint64_t self = atomic_load_explicit(&a->pid, memory_order_relaxed);
	struct tr__reqtab *t = a->ext != NULL ? &a->ext->reqs : NULL;
	uint64_t now = tr__clock_ns();
	struct tr__req r;

	if (t == NULL) {
		return;
	}
	/* While this runs, armed stays at a past deadline, so requests the
	 * handler makes arm nothing: the next tick is armed once, below. */
	while (tr__reqtab_due(t, now, &r)) {
		/* The target forgets its watch, if it took the request. */
		tr__req_unwatch_target(w->rt, w, self, r.to, r.ref);
		tr_request_failed f;
		tr_msg m;
		tr__req_failed_msg(&m, &f, r.ref, r.to, TR_EXIT_TIMEOUT);
		call_handler(w, a, &m, NULL);
		if (atomic_load_explicit(&a->pid, memory_order_relaxed) !=
		    self) {
			return; /* it stopped: its table went with it */
		}
	}
	if (for_deadline == t->armed) {
		t->armed = 0; /* this tick is spent */
		tr__req_arm(w->rt, t, self, tr__reqtab_next(t));
	}
}

struct tr__reqtab *
tr__actor_reqs(struct tr__actor *a)
{
	struct tr__actor_ext *x = ext_get(a);

	return x != NULL ? &x->reqs : NULL;
}

void
tr__actor_unwatch(tr_ctx *cx, uint64_t ref)
{
	if (cx->a == NULL && cx->inbox == NULL) {
		return; /* a stale context: the callers refuse it */
	}
	if (cx->inbox != NULL) {
		/* Not this thread's to touch: the inbox's actor does it. */
		(void)tr__send_sys(cx->rt, NULL, cx->self, cx->self,
				   TR__SYS_DEMONITOR, &ref, sizeof(ref));
		return;
	}
	struct tr__actor_ext *x = cx->a->ext;
	if (x != NULL) {
		(void)tr__reqtab_take(&x->watchers, ref, NULL);
	}
}

void
tr__msg_discard_any(struct tr__worker *w, struct tr__msg *msg)
{
	tr__msg_discard(cache_of(w), msg);
}

/* System message for the current generation. Returns nothing: any
 * failure to allocate bookkeeping drops the request (counted as handled). */
static void
handle_system(struct tr__worker *w, struct tr__actor *a, struct tr__msg *msg)
{
	uint64_t from = msg->m.from.v;

	switch (msg->m.type) {
	case TR__SYS_INIT: {
		a->flags &= ~TR__A_INIT_PENDING;
		ctx_enter(w, a, NULL);
		int r = a->def->init(&w->cx, a->state,
				     (void *)(uintptr_t)msg->m.data);
		if (r < 0) {
			terminate(w, a, TR_EXIT_INIT_FAILED);
		} else if (w->cx.stop_requested) {
			terminate(w, a, w->cx.stop_reason);
		} else if (a->ext != NULL && a->ext->stop_pending) {
			terminate(w, a, a->ext->stop_reason);
		}
		break;
	}
	case TR__SYS_STOP: {
		int32_t reason;
		memcpy(&reason, msg->m.data, sizeof(reason));
		if (tr__unlikely(a->flags & TR__A_INIT_PENDING)) {
			/*
			 * A runtime stop saw the pid between its publication
			 * and the queueing of init (tr__spawn). Init owns the
			 * spawn argument, so it runs first and the stop is
			 * done right after it. Without memory to note that,
			 * the stop goes behind it in the mailbox (the
			 * spawner is a few instructions away from queueing
			 * init).
			 */
			struct tr__actor_ext *x = ext_get(a);
			if (x == NULL) {
				(void)tr__send_sys(w->rt, w, from, msg->to,
						   TR__SYS_STOP, &reason,
						   sizeof(reason));
			} else if (!x->stop_pending) {
				x->stop_pending = true;
				x->stop_reason = reason;
			}
			break;
		}
		terminate(w, a, reason);
		break;
	}
	case TR__SYS_EXIT: {
		struct tr__sys_exit e;
		memcpy(&e, msg->m.data, sizeof(e));
		if (e.link_ended && a->ext != NULL) {
			int i = set_find_pid(&a->ext->links, e.from);
			if (i >= 0) {
				set_remove_at(&a->ext->links, i);
			}
		}
		if (e.reason == TR_EXIT_KILL) {
			terminate(w, a, TR_EXIT_KILLED);
		} else if (a->flags & TR__A_TRAP_EXIT) {
			tr_exit_signal sig = { .from = { e.from },
					       .reason = e.reason };
			tr_msg m = { .type = TR_MSG_EXIT,
				     .from = { e.from },
				     .data = &sig,
				     .size = sizeof(sig) };
			call_handler(w, a, &m, NULL);
		} else if (e.reason != TR_EXIT_NORMAL) {
			terminate(w, a, e.reason);
		}
		break;
	}
	case TR__SYS_LINK: {
		struct tr__actor_ext *x = ext_get(a);
		if (x != NULL && set_find_pid(&x->links, from) < 0) {
			(void)set_add(&x->links, 0, from);
		}
		break;
	}
	case TR__SYS_UNLINK:
		if (a->ext != NULL) {
			int i = set_find_pid(&a->ext->links, from);
			if (i >= 0) {
				set_remove_at(&a->ext->links, i);
			}
		}
		break;
	case TR__SYS_MONITOR: {
		uint64_t ref;
		memcpy(&ref, msg->m.data, sizeof(ref));
		struct tr__actor_ext *x = ext_get(a);
		if (x != NULL) {
			(void)tr__watch_add(&x->watchers, ref, from, 0);
		}
		break;
	}
	case TR__SYS_DEMONITOR: {
		uint64_t ref;
		memcpy(&ref, msg->m.data, sizeof(ref));
		if (a->ext != NULL) {
			(void)tr__reqtab_take(&a->ext->watchers, ref, NULL);
		}
		break;
	}
	case TR__SYS_DOWN: {
		struct tr__sys_down d;
		memcpy(&d, msg->m.data, sizeof(d));
		if (d.ref & TR__REF_REQ) {
			request_failed(w, a, d.ref, d.who, d.reason);
			break;
		}
		int i = a->ext != NULL ? set_find_ref(&a->ext->monitors, d.ref)
				       : -1;
		if (i < 0) {
			break; /* demonitored: never delivered */
		}
		set_remove_at(&a->ext->monitors, i);
		tr_down down = { .ref = { d.ref },
				 .who = { d.who },
				 .reason = d.reason };
		tr_msg m = { .type = TR_MSG_DOWN,
			     .from = { d.who },
			     .data = &down,
			     .size = sizeof(down) };
		call_handler(w, a, &m, NULL);
		break;
	}
	case TR__SYS_REQ_TICK: {
		uint64_t for_deadline = 0;
		if (msg->m.size == sizeof(for_deadline)) {
			memcpy(&for_deadline, msg->m.data,
			       sizeof(for_deadline));
		}
		requests_due(w, a, for_deadline);
		break;
	}
	default:
		break;
	}
}

/*
 * A request or a reply reaches @a. A reply is let through only if its
 * request is still open (else it is late: a counted dead letter). A
 * request makes its sender a watcher of @a under the request's reference,
 * so that @a's stop fails it; tr_reply and tr_forward remove the watch.
 * Returns false when the message was consumed here.
 */
static bool
take_request_msg(struct tr__worker *w, struct tr__actor *a, struct tr__msg *msg)
{
	if (msg->m.flags & TR_MSG_F_REPLY) {
		if (req_take(a, msg->m.ref.v)) {
			return true;
		}
		dead_letter(w->rt, w, msg, false, false, 0);
		return false;
	}
	struct tr__actor_ext *x = ext_get(a);
	/* Without memory the request is still handled; only the target's
	 * death would then go unnoticed, and the timeout covers it. */
	if (x != NULL) {
		(void)tr__watch_add(&x->watchers, msg->m.ref.v, msg->m.from.v,
				    msg->deadline);
	}
	return true;
}

/*
 * Handle @msg (a mailbox node or a put-back stash node), counted before
 * the handler runs: whatever the handler makes happen, such as a report
 * someone reads the metrics after, comes after the count. Its payload is
 * freed after unless the handler or the stash took it.
 */
static void
handle_node(struct tr__worker *w, struct tr__actor *a, struct tr__msg *msg)
{
	tr__stat_add(&w->stats.handled, 1);
	call_handler(w, a, &msg->m, msg);
	if (w->cx.ptr_taken) {
		msg->m.flags &= ~TR_MSG_F_PTR; /* the handler owns it now */
	}
	tr__msg_free_payload(msg);
}

/*
 * Drop a stash list at the actor's stop: each message is a dead letter.
 * One that tr_unstash_all() put back was counted sent then; one still
 * stashed is counted sent now, as if put back to find its actor gone.
 */
static void
stash_drop(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg,
	   bool put_back)
{
	while (msg != NULL) {
		struct tr__msg *next = tr__msg_of(atomic_load_explicit(
			&msg->node.next, memory_order_relaxed));
		if (!put_back) {
			STAT(rt, w, sent, 1);
		}
		STAT(rt, w, dead, 1);
		tr__msg_discard(cache_of(w), msg);
		msg = next;
	}
}

/* Has @a, still running as pid @self, messages tr_unstash_all() put
 * back? The pid is checked first: a stopped actor's slot is not ours. */
static bool
replay_due(struct tr__actor *a, uint64_t self)
{
	/* acquire: pairs with the spawner's release of the pid, so a slot
	 * reused by a spawn on another thread shows its new ext, not one
	 * being written. */
	return self != 0 &&
	       atomic_load_explicit(&a->pid, memory_order_acquire) == self &&
	       a->ext != NULL && a->ext->replay != NULL;
}

/* Handle the first message tr_unstash_all() put back. */
static void
replay_one(struct tr__worker *w, struct tr__actor *a)
{
	struct tr__actor_ext *x = a->ext;
	struct tr__msg *msg = x->replay;

	x->replay = tr__msg_of(
		atomic_load_explicit(&msg->node.next, memory_order_relaxed));
	handle_node(w, a, msg);
	tr__msg_free(cache_of(w), msg);
}

static void
deliver(struct tr__worker *w, struct tr__actor *a, struct tr__msg *msg)
{
	tr_runtime *rt = w->rt;

	if (msg->to != atomic_load_explicit(&a->pid, memory_order_relaxed)) {
		bool ahead = msg->to == a->overtaken && a->overtaken_ahead;
		if (ahead) {
			if (msg->m.type == TR__SYS_STOP) {
				/* The queued copy of a stop that was taken
				 * ahead of it (take_stop): done, not a dead
				 * letter. What follows it came after it. */
				a->overtaken_ahead = false;
				tr__stat_add(&w->stats.handled, 1);
				return;
			}
			/* Queued ahead of the stop: a monitor or link made
			 * before it sees the real reason, as it would have
			 * had the stop waited its turn. */
		}
		dead_letter(rt, w, msg, false, ahead, a->overtaken_why);
		return;
	}
	if (msg->m.type >= TR__SYS_BASE) {
		tr__stat_add(&w->stats.handled, 1);
		handle_system(w, a, msg);
		return;
	}
	if (msg->m.flags & (TR_MSG_F_REQUEST | TR_MSG_F_REPLY)) {
		if (!take_request_msg(w, a, msg)) {
			return;
		}
	}
	handle_node(w, a, msg);
}

/*
 * A stop overtakes what is queued (tr__actor_stop): taken before the next
 * message, unless init has not run yet (init owns the spawn argument, and
 * is always the first message). What is queued then finds the pid stale
 * and becomes dead letters, so a stop is never stuck behind a backlog.
 */
static void
take_stop(struct tr__worker *w, struct tr__actor *a)
{
	/* acquire: pairs with the release in tr__actor_stop. */
	uint64_t to = atomic_load_explicit(&a->stop_for, memory_order_acquire);
	uint64_t pid = atomic_load_explicit(&a->pid, memory_order_relaxed);

	if (to != pid || pid == 0 || (a->flags & TR__A_INIT_PENDING)) {
		return;
	}
	int32_t why = atomic_load_explicit(&a->stop_why, memory_order_relaxed);
	a->overtaken = pid;
	a->overtaken_why = why == TR_EXIT_KILL ? TR_EXIT_KILLED : why;
	a->overtaken_ahead = true;
	terminate(w, a, why);
}

static void
record_delay(struct tr__worker *w, uint64_t ticks)
{
	uint64_t ns = tr__ticks_to_ns(ticks);
	unsigned b = ns == 0 ? 0 : 63u - (unsigned)__builtin_clzll(ns);

	if (b >= TR__HIST_BUCKETS) {
		b = TR__HIST_BUCKETS - 1;
	}
	tr__stat_add(&w->stats.hist[b], 1);
}

/* Take @r's whole muted stack and requeue each actor on it (@w NULL: a
 * thread that is not a worker, through the inject queue). */
static void
requeue_muted(tr_runtime *rt, struct tr__worker *w, struct tr__actor *r)
{
	/* seq_cst: see unmute_all() and mute(). */
	struct tr__actor *m =
		atomic_exchange_explicit(&r->muted, NULL, memory_order_seq_cst);
	while (m != NULL) {
		struct tr__actor *next =
			(struct tr__actor *)(void *)m->qlink.next;
		atomic_store_explicit(&m->muted_on, 0, memory_order_relaxed);
		if (w != NULL) {
			tr__sched_reschedule(w, m);
		} else {
			tr__sched_schedule(rt, NULL, m);
		}
		m = next;
	}
}

/*
 * Requeue every actor muted on @r. Called by r's runner when r caught up,
 * by terminate(), and by a muting actor that finds r no longer overloaded
 * after it pushed itself (so that nobody is left on the stack).
 */
static void
unmute_all(tr_runtime *rt, struct tr__worker *w, struct tr__actor *r)
{
	/*
	 * seq_cst store and exchange: the Dekker pair of the push and load in
	 * mute(). Either the muting actor sees the flag clear, or this
	 * exchange sees its push.
	 */
	atomic_store_explicit(&r->overloaded, 0, memory_order_seq_cst);
	requeue_muted(rt, w, r);
}

/*
 * @a is being stopped: if it is muted, requeue what is muted with it, so
 * that it runs and takes its stop. Muting holds back a sender's next
 * turn; a stop must not wait for the receiver to catch up, which a
 * receiver stuck in a long turn, or a link to a peer that stopped
 * reading, may never do. The others requeued with it lose nothing: they
 * run a turn and are muted again if they send to it again. A stale
 * muted_on (a already requeued) only requeues early.
 */
static void
release_muted(tr_runtime *rt, struct tr__worker *w, struct tr__actor *a)
{
	uint32_t on = atomic_load_explicit(&a->muted_on, memory_order_seq_cst);

	if (on == 0) {
		return;
	}
	struct tr__actor *r = tr__actor_lookup(rt, tr__pid_make(0, 0, on - 1));
	if (r != NULL) {
		requeue_muted(rt, w, r);
	}
}

/*
 * Park @a (which has messages left) on @r's muted stack instead of
 * requeueing it. Returns false when @a must be requeued after all: @r is
 * @a's own slot or no longer overloaded.
 */
static bool
mute(struct tr__worker *w, struct tr__actor *a, struct tr__actor *r)
{
	if (r == a ||
	    !atomic_load_explicit(&r->overloaded, memory_order_relaxed)) {
		return false;
	}
	/* seq_cst: the Dekker pair of tr__actor_stop()'s store of stop_for
	 * and load of muted_on, with our load of stop_for below. */
	atomic_store_explicit(&a->muted_on, r->slot + 1, memory_order_seq_cst);
	/* release: pairs with the acquire in tr__actor_run when requeued. */
	atomic_store_explicit(&a->handoff, 1, memory_order_release);
	struct tr__actor *head =
		atomic_load_explicit(&r->muted, memory_order_relaxed);
	do {
		a->qlink.next = (ck_stack_entry_t *)(void *)head;
	} while (!atomic_compare_exchange_weak_explicit(&r->muted, &head, a,
							memory_order_seq_cst,
							memory_order_relaxed));
	if (!atomic_load_explicit(&r->overloaded, memory_order_seq_cst) ||
	    atomic_load_explicit(&a->stop_for, memory_order_seq_cst) ==
		    atomic_load_explicit(&a->pid, memory_order_relaxed)) {
		/* r caught up meanwhile, or we are being stopped: the
		 * unmute or the stop may have missed us. */
		requeue_muted(w->rt, w, r);
	}
	tr__stat_add(&w->stats.mutes, 1);
	return true;
}

/*
 * The distribution layer's hold (tr_remote_hook.hold): while @gate is
 * held, it looks overloaded, so an actor whose send the layer tagged with
 * it is muted on it at the end of its turn (tr__remote_out); letting go
 * requeues them all. @gate is an actor of the layer's that receives no
 * messages, so no turn of its own clears the flag. Any thread.
 */
tr_err
tr__actor_hold(tr_runtime *rt, uint64_t gate, bool on)
{
	struct tr__actor *a = tr__actor_lookup(rt, gate);

	if (a == NULL || tr__pid_node(gate) != 0 ||
	    atomic_load_explicit(&a->pid, memory_order_acquire) != gate) {
		return TR_EINVAL;
	}
	if (on) {
		/* seq_cst: the Dekker pair with mute(), as unmute_all(). */
		atomic_store_explicit(&a->overloaded, 1, memory_order_seq_cst);
	} else {
		unmute_all(rt, tr__sched_current(rt), a);
	}
	return TR_OK;
}

/* Mute the running turn's actor on @gate when its turn ends. */
void
tr__actor_hold_sender(tr_runtime *rt, struct tr__worker *w, uint64_t gate)
{
	struct tr__actor *g = tr__actor_lookup(rt, gate);

	if (w != NULL && w->cx.a != NULL && g != NULL && w->cx.a != g &&
	    atomic_load_explicit(&g->pid, memory_order_relaxed) == gate) {
		w->cx.mute_on = g;
	}
}

/* A handler call that began at @began has ended: count it if it was slow.
 * Return: now (ticks), when the next one begins. */
static uint64_t
handler_ended(struct tr__worker *w, uint64_t began)
{
	uint64_t now = tr__ticks();

	tr__sched_call_ended(w, began, now, w->rt->slow_ticks);
	return now;
}

void
tr__actor_run(struct tr__worker *w, struct tr__actor *a)
{
	tr_runtime *rt = w->rt;

	/* acquire: pairs with the release store in schedule/reschedule. */
	(void)atomic_load_explicit(&a->handoff, memory_order_acquire);
	/*
	 * The turn ends after the last message that was queued when it began
	 * (or after `batch`): a message the actor sends itself, or one that
	 * arrives meanwhile, waits for the next turn, so a self-sending loop
	 * lets its correspondents run in between. acquire: pairs with the
	 * exchange in tr__mailbox_push.
	 */
	struct tr__mnode *last = (struct tr__mnode *)atomic_load_explicit(
		&a->mb.head, memory_order_acquire);
	uint64_t t = tr__ticks();
	uint64_t start = t;
	/* The pid this turn runs: once the actor stops, its slot may be
	 * reused at once, and its ext is no longer this turn's to read. */
	uint64_t self = atomic_load_explicit(&a->pid, memory_order_acquire);
	/* This reading of the clock ends the turn before (the only one a
	 * turn of one message needs). */
	tr__sched_settle(w, start);
	tr__sched_turn_began(w, start);
	if (a->sched_ts != 0) {
		record_delay(w, t > a->sched_ts ? t - a->sched_ts : 0);
		a->sched_ts = 0;
	}
	/* Whether put-back messages may be waiting: set here and by
	 * tr_unstash_all(), so the common turn reads nothing more. */
	w->cx.unstashed = replay_due(a, self);
	/* A handler call ran in this turn: the next one reads the clock,
	 * which ends it (t: when it began). */
	bool called = false;
	unsigned n = 0;
	for (; n < rt->batch; n++) {
		if (tr__unlikely(w->cx.unstashed)) {
			w->cx.unstashed = replay_due(a, self);
		}
		if (tr__unlikely(w->cx.unstashed)) {
			/* What tr_unstash_all() put back comes first. */
			if (atomic_load_explicit(&a->stop_for,
						 memory_order_relaxed) != 0) {
				take_stop(w, a);
			}
			if (replay_due(a, self)) {
				if (called) {
					t = handler_ended(w, t);
				}
				replay_one(w, a);
				called = true;
			}
			continue;
		}
		struct tr__mnode *retired;
		struct tr__mnode *node = tr__mailbox_pop(&a->mb, &retired);

		if (retired != NULL) {
			tr__msg_free(w->cache, tr__msg_of(retired));
		}
		if (node == NULL) {
			break;
		}
		struct tr__msg *msg = tr__msg_of(node);
		/*
		 * Fetch the following message while this one is handled: when
		 * it was sent from another core its lines are not here yet.
		 */
		struct tr__mnode *after =
			atomic_load_explicit(&node->next, memory_order_relaxed);
		if (after != NULL) {
			__builtin_prefetch(after);
			__builtin_prefetch((char *)after + 64);
		}
		if (msg->iflags & TR__MSG_I_COUNTED) {
			atomic_fetch_sub_explicit(&a->mb_len, 1,
						  memory_order_relaxed);
		}
		if (tr__unlikely(atomic_load_explicit(&a->stop_for,
						      memory_order_relaxed) !=
				 0)) {
			take_stop(w, a);
		}
		if (called) {
			t = handler_ended(w, t);
		}
		deliver(w, a, msg);
		called = true;
		if (node == last) {
			n++;
			break;
		}
	}
	w->cx.a = NULL;
	struct tr__actor *mute_on = w->cx.mute_on;
	w->cx.mute_on = NULL;
	bool exhausted = n == rt->batch;
	if (exhausted) {
		if (!atomic_load_explicit(&a->overloaded,
					  memory_order_relaxed)) {
			atomic_store_explicit(&a->overloaded, 1,
					      memory_order_relaxed);
		}
	} else if (atomic_load_explicit(&a->overloaded, memory_order_relaxed)) {
		unmute_all(rt, w, a);
	}
	bool replay = w->cx.unstashed && replay_due(a, self);
	if (exhausted || replay || !tr__mailbox_mark_empty(&a->mb)) {
		if (mute_on == NULL || exhausted || !mute(w, a, mute_on)) {
			tr__sched_reschedule(w, a);
		}
	}
	w->prev_start = start;
	w->prev_last = called ? t : 0;
}

/* ------------------------------------------------------------------ */
/* Runtime-wide operations                                             */

uint64_t
tr__actor_stop_all(tr_runtime *rt, bool overtake)
{
	uint32_t n =
		atomic_load_explicit(&rt->next_fresh, memory_order_relaxed);
	uint64_t sent = 0;
	int32_t reason = TR_EXIT_SHUTDOWN;

	if (n > TR__PID_SLOT_MASK + 1) {
		n = (uint32_t)TR__PID_SLOT_MASK + 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct tr__actor *chunk = atomic_load_explicit(
			&rt->chunks[i >> TR__CHUNK_BITS], memory_order_acquire);
		if (chunk == NULL) {
			i |= TR__CHUNK_SLOTS - 1;
			continue;
		}
		struct tr__actor *a = &chunk[i & (TR__CHUNK_SLOTS - 1)];
		/*
		 * acquire: pairs with the spawner's release of the pid, so
		 * the worker that handles this STOP (through the mailbox)
		 * sees the new actor's fields, its init-pending flag
		 * included.
		 */
		uint64_t pid =
			atomic_load_explicit(&a->pid, memory_order_acquire);
		struct tr__worker *w = tr__sched_current(rt);
		tr_err err = TR_EINVAL;
		if (pid == 0 ||
		    (a->swept == pid && (a->swept_overtook || !overtake))) {
			continue; /* free, or already sent this stop */
		}
		err = overtake ? tr__actor_stop(rt, w, 0, pid, reason)
			       : tr__send_sys(rt, w, 0, pid, TR__SYS_STOP,
					      &reason, sizeof(reason));
		if (err == TR_OK) {
			a->swept = pid;
			a->swept_overtook = overtake;
			sent++;
		}
	}
	return sent;
}

void
tr__actor_table_fini(tr_runtime *rt)
{
	uint32_t n =
		atomic_load_explicit(&rt->next_fresh, memory_order_relaxed);
	uint32_t nchunks = (n + TR__CHUNK_SLOTS - 1) >> TR__CHUNK_BITS;

	if (nchunks > TR__MAX_CHUNKS) {
		nchunks = TR__MAX_CHUNKS;
	}
	/* First every live actor's teardown (only if it never ran). */
	for (uint32_t ci = 0; ci < nchunks; ci++) {
		struct tr__actor *chunk = atomic_load_explicit(
			&rt->chunks[ci], memory_order_acquire);
		if (chunk == NULL) {
			continue;
		}
		for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) {
			struct tr__actor *a = &chunk[i];
			uint64_t pid = atomic_load_explicit(
				&a->pid, memory_order_relaxed);
			if (pid == 0) {
				continue;
			}
			if (a->def->teardown != NULL) {
				tr_ctx cx = { .rt = rt, .a = a, .self = pid };
				a->def->teardown(&cx, a->state,
						 TR_EXIT_SHUTDOWN);
			}
			tr__free(a->state, a->def->state_size);
			a->state = NULL;
			ext_free(a);
			atomic_store_explicit(&a->pid, 0, memory_order_relaxed);
			tr__stat_add_shared(&rt->foreign.stopped, 1);
		}
	}
	for (uint32_t ci = 0; ci < nchunks; ci++) {
		struct tr__actor *chunk = atomic_load_explicit(
			&rt->chunks[ci], memory_order_acquire);
		if (chunk == NULL) {
			continue;
		}
		for (uint32_t i = 0; i < TR__CHUNK_SLOTS; i++) {
			struct tr__mailbox *mb = &chunk[i].mb;
			struct tr__mnode *node, *retired;

			while ((node = tr__mailbox_pop(mb, &retired)) != NULL) {
				if (retired != NULL) {
					tr__msg_free(NULL, tr__msg_of(retired));
				}
				struct tr__msg *msg = tr__msg_of(node);
				tr__stat_add_shared(&rt->foreign.dead, 1);
				tr__msg_free_payload(msg);
			}
			if (retired != NULL) {
				tr__msg_free(NULL, tr__msg_of(retired));
			}
			if (mb->tail != &mb->stub) {
				tr__msg_free(NULL, tr__msg_of(mb->tail));
				mb->tail = &mb->stub;
			}
		}
		tr__free(chunk, sizeof(struct tr__actor) * TR__CHUNK_SLOTS);
		atomic_store_explicit(&rt->chunks[ci], NULL,
				      memory_order_relaxed);
	}
}

/* ------------------------------------------------------------------ */
/* Public API for handlers                                             */

/*
 * The worker a call on @cx runs on: its turn's, none for a teardown run
 * at destroy, and for a thread's context (no actor, no worker of its
 * own) the calling thread's if it is a worker, so that a send from a
 * handler through tr_runtime_ctx() uses that worker's caches and queues.
 */
static inline struct tr__worker *
ctx_worker(tr_ctx *cx)
{
	if (tr__likely(cx->w != NULL || cx->a != NULL)) {
		return cx->w;
	}
	return tr__sched_current(cx->rt);
}

tr_err
tr_spawn(tr_ctx *cx, const tr_actor_def *def, void *arg, tr_pid *out)
{
	if (!tr__ctx_ok(cx, __func__)) {
		return TR_EINVAL;
	}
	return tr__spawn(cx->rt, ctx_worker(cx), def, arg, NULL, out);
}

tr_err
tr_spawn_link(tr_ctx *cx, const tr_actor_def *def, void *arg, tr_pid *out)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL) {
		return TR_EINVAL;
	}
	struct tr__spawn_opts o = { .parent = cx, .flags = TR__SPAWN_LINK };
	return tr__spawn(cx->rt, cx->w, def, arg, &o, out);
}

tr_err
tr_spawn_monitor(tr_ctx *cx, const tr_actor_def *def, void *arg, tr_pid *out,
		 tr_ref *ref)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL) {
		return TR_EINVAL;
	}
	struct tr__spawn_opts o = { .parent = cx,
				    .flags = TR__SPAWN_MONITOR,
				    .ref_out = ref != NULL ? &ref->v : NULL };
	return tr__spawn(cx->rt, cx->w, def, arg, &o, out);
}

tr_err
tr_send(tr_ctx *cx, tr_pid to, uint32_t type, const void *data, size_t len)
{
	if (!tr__ctx_ok(cx, __func__)) {
		return TR_EINVAL;
	}
	return tr__send_copy(cx->rt, ctx_worker(cx), cx->self, to.v, type, data,
			     len);
}

tr_err
tr_send_ptr(tr_ctx *cx, tr_pid to, uint32_t type, void *ptr, size_t len,
	    tr_free_fn free_fn)
{
	if (!tr__ctx_ok(cx, __func__)) {
		if (free_fn != NULL && ptr != NULL) {
			free_fn(ptr);
		}
		return TR_EINVAL;
	}
	return tr__send_ptr(cx->rt, ctx_worker(cx), cx->self, to.v, type, ptr,
			    len, free_fn, true);
}

void *
tr_msg_take_ptr(tr_ctx *cx, const tr_msg *m)
{
	if (!tr__ctx_ok(cx, __func__) || m == NULL || m != cx->msg ||
	    !(m->flags & TR_MSG_F_PTR) || cx->ptr_taken) {
		return NULL;
	}
	cx->ptr_taken = true;
	return (void *)(uintptr_t)m->data;
}

tr_err
tr_unhandled(tr_ctx *cx, const tr_msg *m)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || m == NULL ||
	    m != cx->msg || cx->unhandled) {
		return TR_EINVAL;
	}
	if (m->type >= TR_MSG_SYSTEM_BASE) {
		return TR_OK; /* the runtime's own: an actor may ignore them */
	}
	cx->unhandled = true;
	STAT(cx->rt, cx->w, unhandled, 1);
	STAT(cx->rt, cx->w, dead, 1);
	if ((m->flags & TR_MSG_F_REQUEST) && m->from.v != 0) {
		/* Its one outcome, now rather than at its timeout. */
		struct tr__sys_down d = { .ref = m->ref.v,
					  .who = cx->self,
					  .reason = TR_EXIT_UNHANDLED };
		tr__actor_unwatch(cx, m->ref.v);
		(void)tr__send_sys(cx->rt, cx->w, cx->self, m->from.v,
				   TR__SYS_DOWN, &d, sizeof(d));
	}
	return TR_OK;
}

tr_err
tr_stash(tr_ctx *cx, const tr_msg *m)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || m == NULL ||
	    m != cx->msg || cx->unhandled || cx->stashed ||
	    ((m->flags & TR_MSG_F_PTR) && cx->ptr_taken)) {
		return TR_EINVAL;
	}
	struct tr__msg *src = cx->node;
	bool ptr = (m->flags & TR_MSG_F_PTR) != 0;
	if (ptr && src == NULL) {
		return TR_EINVAL; /* cannot be: only nodes carry pointers */
	}
	struct tr__actor_ext *x = ext_get(cx->a);
	struct tr__msg *msg =
		x != NULL ? tr__msg_new(cx->w, ptr ? 0 : m->size) : NULL;
	if (msg == NULL) {
		return TR_ENOMEM;
	}
	msg->to = cx->self;
	msg->m.type = m->type;
	msg->m.from = m->from;
	msg->m.ref = m->ref;
	msg->m.flags = m->flags;
	msg->deadline = src != NULL ? src->deadline : 0;
	if (ptr) {
		/* The pointer moves to the copy (only real nodes carry one). */
		msg->m.data = m->data;
		msg->m.size = m->size;
		msg->free_fn = src->free_fn;
		cx->ptr_taken = true;
	} else if (m->size > 0) {
		memcpy(msg->data, m->data, m->size);
	}
	atomic_store_explicit(&msg->node.next, NULL, memory_order_relaxed);
	if (x->stash == NULL) {
		x->stash = msg;
	} else {
		atomic_store_explicit(&x->stash_last->node.next, &msg->node,
				      memory_order_relaxed);
	}
	x->stash_last = msg;
	cx->stashed = true;
	return TR_OK;
}

tr_err
tr_unstash_all(tr_ctx *cx)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL) {
		return TR_EINVAL;
	}
	struct tr__actor_ext *x = cx->a->ext;
	if (x == NULL || x->stash == NULL) {
		return TR_OK;
	}
	/* Each counts as sent again, a message to itself, so the counts
	 * balance while it is stashed: it was handled when stashed. */
	uint64_t n = 0;
	for (struct tr__msg *m = x->stash; m != NULL;
	     m = tr__msg_of(atomic_load_explicit(&m->node.next,
						 memory_order_relaxed))) {
		n++;
	}
	STAT(cx->rt, cx->w, sent, n);
	/* Ahead of what an earlier unstash put back and is not handled yet,
	 * as Akka's unstashAll prepends to the mailbox. */
	atomic_store_explicit(&x->stash_last->node.next,
			      x->replay != NULL ? &x->replay->node : NULL,
			      memory_order_relaxed);
	cx->unstashed = true; /* the running turn takes them first */
	x->replay = x->stash;
	x->stash = NULL;
	x->stash_last = NULL;
	return TR_OK;
}

bool
tr_should_yield(tr_ctx *cx)
{
	if (!tr__ctx_ok(cx, __func__) || cx->w == NULL || cx->a == NULL) {
		return false;
	}
	/*
	 * A batch of sends, counted on the worker's own counter, so sending
	 * pays nothing for this question. An overloaded receiver is not a
	 * reason by itself: the sender is muted when its turn ends anyway,
	 * and yielding at its first send would double its messages.
	 */
	return atomic_load_explicit(&cx->w->stats.sent, memory_order_relaxed) -
		       cx->sent0 >=
	       cx->rt->batch;
}

tr_pid
tr_self(tr_ctx *cx)
{
	tr_pid p = { tr__ctx_ok(cx, __func__) ? cx->self : 0 };
	return p;
}

tr_pid
tr_sender(tr_ctx *cx)
{
	if (!tr__ctx_ok(cx, __func__) || cx->msg == NULL) {
		return TR_PID_NONE;
	}
	return cx->msg->from;
}

tr_runtime *
tr_ctx_runtime(tr_ctx *cx)
{
	return cx != NULL ? cx->rt : NULL;
}

tr_err
tr_become(tr_ctx *cx, tr_handler_fn handler)
{
	if (!tr__ctx_ok(cx, __func__) || handler == NULL || cx->a == NULL) {
		return TR_EINVAL;
	}
	cx->a->handler = handler;
	return TR_OK;
}

void
tr_stop_self(tr_ctx *cx, int32_t reason)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL) {
		return; /* a thread's context: its inbox stops by destroy */
	}
	cx->stop_requested = true;
	cx->stop_reason = reason;
}

tr_err
tr_stop(tr_ctx *cx, tr_pid who, int32_t reason)
{
	if (!tr__ctx_ok(cx, __func__) || who.v == 0) {
		return TR_EINVAL;
	}
	if (who.v == cx->self && cx->inbox == NULL) {
		tr_stop_self(cx, reason);
		return TR_OK;
	}
	return tr__actor_stop(cx->rt, ctx_worker(cx), cx->self, who.v, reason);
}

tr_err
tr__actor_stop(tr_runtime *rt, struct tr__worker *w, uint64_t from, uint64_t to,
	       int32_t reason)
{
	/*
	 * The stop is queued first: that schedules the actor, and it is the
	 * stop itself if the runner reaches it before it sees the mark. The
	 * mark comes second, so the queued STOP is always there to be
	 * counted once: handled, or swallowed after the mark was taken (see
	 * deliver()); a stale pid makes it one dead letter, as before.
	 */
	tr_err err = tr__send_sys(rt, w, from, to, TR__SYS_STOP, &reason,
				  sizeof(reason));
	struct tr__actor *a = tr__actor_lookup(rt, to);

	if (err == TR_OK && a != NULL &&
	    atomic_load_explicit(&a->pid, memory_order_relaxed) == to) {
		atomic_store_explicit(&a->stop_why, reason,
				      memory_order_relaxed);
		/* release: pairs with the acquire in take_stop(), which then
		 * reads this stop's reason. A mark for an older pid of the
		 * slot is never taken (the pids differ). seq_cst: the Dekker
		 * pair of mute()'s store of muted_on and load of stop_for. */
		atomic_store_explicit(&a->stop_for, to, memory_order_seq_cst);
		release_muted(rt, w, a);
	}
	return err;
}

tr_err
tr_exit(tr_ctx *cx, tr_pid who, int32_t reason)
{
	if (!tr__ctx_ok(cx, __func__) || who.v == 0) {
		return TR_EINVAL;
	}
	struct tr__sys_exit e = { .from = cx->self, .reason = reason };
	return tr__send_sys(cx->rt, ctx_worker(cx), cx->self, who.v,
			    TR__SYS_EXIT, &e, sizeof(e));
}

tr_err
tr_link(tr_ctx *cx, tr_pid other)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || other.v == 0 ||
	    other.v == cx->self) {
		return TR_EINVAL;
	}
	struct tr__actor_ext *x = ext_get(cx->a);
	if (x == NULL) {
		return TR_ENOMEM;
	}
	if (set_find_pid(&x->links, other.v) < 0) {
		tr_err err = set_add(&x->links, 0, other.v);
		if (err < 0) {
			return err;
		}
	}
	tr_err err = tr__send_sys(cx->rt, cx->w, cx->self, other.v,
				  TR__SYS_LINK, NULL, 0);
	/* An unreachable node: its exit signal (noconnection) is on its way. */
	return err == TR_EUNREACH ? TR_OK : err;
}

tr_err
tr_unlink(tr_ctx *cx, tr_pid other)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || other.v == 0) {
		return TR_EINVAL;
	}
	if (cx->a->ext != NULL) {
		int i = set_find_pid(&cx->a->ext->links, other.v);
		if (i < 0) {
			return TR_OK;
		}
		set_remove_at(&cx->a->ext->links, i);
	} else {
		return TR_OK;
	}
	return tr__send_sys(cx->rt, cx->w, cx->self, other.v, TR__SYS_UNLINK,
			    NULL, 0);
}

void
tr_trap_exit(tr_ctx *cx, bool on)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL) {
		return;
	}
	if (on) {
		cx->a->flags |= TR__A_TRAP_EXIT;
	} else {
		cx->a->flags &= ~TR__A_TRAP_EXIT;
	}
}

tr_err
tr_monitor(tr_ctx *cx, tr_pid who, tr_ref *out)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || who.v == 0) {
		return TR_EINVAL;
	}
	struct tr__actor_ext *x = ext_get(cx->a);
	if (x == NULL) {
		return TR_ENOMEM;
	}
	uint64_t ref = atomic_fetch_add_explicit(&cx->rt->next_ref, 1,
						 memory_order_relaxed);
	tr_err err = set_add(&x->monitors, ref, who.v);
	if (err < 0) {
		return err;
	}
	err = tr__send_sys(cx->rt, cx->w, cx->self, who.v, TR__SYS_MONITOR,
			   &ref, sizeof(ref));
	/* An unreachable node: its DOWN (noconnection) is on its way. */
	if (err < 0 && err != TR_EUNREACH) {
		set_remove_at(&x->monitors, (int)x->monitors.n - 1);
		return err;
	}
	if (out != NULL) {
		out->v = ref;
	}
	return TR_OK;
}

tr_err
tr_demonitor(tr_ctx *cx, tr_ref mref)
{
	uint64_t ref = mref.v;

	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || ref == 0 ||
	    (ref & TR__REF_REQ)) {
		return TR_EINVAL;
	}
	int i = cx->a->ext != NULL ? set_find_ref(&cx->a->ext->monitors, ref)
				   : -1;
	if (i < 0) {
		return TR_ENOENT;
	}
	uint64_t target = cx->a->ext->monitors.v[i].pid;
	set_remove_at(&cx->a->ext->monitors, i);
	(void)tr__send_sys(cx->rt, cx->w, cx->self, target, TR__SYS_DEMONITOR,
			   &ref, sizeof(ref));
	return TR_OK;
}

static tr_err
note_io(tr_runtime *rt, struct tr__actor *a)
{
	struct tr__actor_ext *x = ext_get(a);

	if (x == NULL) {
		return TR_ENOMEM;
	}
	if (x->io_gone == NULL) {
		x->io_gone = tr__io_gone_prepare(rt->io);
		if (x->io_gone == NULL) {
			return TR_ENOMEM;
		}
	}
	return TR_OK;
}

void
tr__ctx_check(const tr_ctx *cx, const char *fn)
{
	(void)fn; /* release builds: tr__misuse is empty */
	if (cx->w == NULL) {
		/* A teardown run at destroy, outside any worker. */
		return;
	}
	if (tr__sched_current(cx->rt) != cx->w) {
		tr__misuse("%s() with a tr_ctx from another thread (a context "
			   "is valid only inside its handler, on its worker)",
			   fn);
	} else if (cx->a == NULL) {
		tr__misuse("%s() with a tr_ctx whose turn is over (kept after "
			   "its handler returned)",
			   fn);
	}
}

tr_err
tr__actor_note_io(tr_ctx *cx)
{
	return note_io(cx->rt, cx->a);
}

tr_err
tr_blocking(tr_ctx *cx, tr_blocking_fn fn, void *arg, uint32_t reply_type,
	    tr_free_fn free_fn)
{
	if (!tr__ctx_ok(cx, __func__) || cx->a == NULL || fn == NULL ||
	    reply_type >= TR_MSG_SYSTEM_BASE) {
		return TR_EINVAL;
	}
	if (atomic_load_explicit(&cx->rt->stopping, memory_order_acquire)) {
		return TR_ECLOSED;
	}
	return tr__blocking_submit(&cx->rt->blocking, fn, arg, cx->self,
				   reply_type, free_fn);
}
