#ifndef TROUPE_ACTORS_REGISTRY_H
#define TROUPE_ACTORS_REGISTRY_H

/*
 * Registry: names for actors (Erlang's register/whereis, Elixir's Registry
 * with unique keys).
 *
 * A registry belongs to one runtime. It maps strings to pids: a name has
 * at most one holder, a pid may hold several names. Every function is
 * safe from any thread, handlers included. The functions that change or
 * read the names take the pid they are about (an actor registers itself
 * with tr_self(cx), a supervisor or a thread may register another).
 * Sending to a name is a lookup, then a tr_send() to the pid found: there
 * is one way to send.
 *
 * A name disappears when its holder stops: the registry runs a small
 * actor of its own that monitors every pid holding a name and, on
 * TR_MSG_DOWN, removes the names that still map to that pid. Between the
 * holder stopping and that DOWN being handled, tr_registry_whereis() may
 * still return the stopped pid (a send to it is a counted dead letter, as
 * with any stale pid) and registering the name fails with TR_EEXIST. The
 * registry cannot tell a dead pid from a live one sooner, because
 * liveness is only ever learned through a monitor. An actor that knows
 * the old holder stopped (a supervisor restarting it, say) uses
 * tr_registry_replace() instead of waiting for the DOWN.
 *
 * Registering a pid that has already stopped, or never existed, succeeds;
 * its names vanish once the monitor's DOWN (TR_EXIT_NOPROC) is handled.
 *
 * Cost: a lookup (tr_registry_whereis()) hashes the
 * name and takes a read lock of one of 16 shards, chosen by the hash,
 * then walks one hash chain (load factor at most 1). Lookups of different
 * names rarely share a lock, and a lookup waits only for a writer of the
 * same shard, which holds it for one list insertion or removal. Writers
 * (register, unregister, replace, removal on stop) are serialised by one
 * mutex; each also sends at most one message to the registry's actor.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the registry module. */
#define TR_MSG_REGISTRY_BASE (TR_MSG_ACTORS_BASE + 0x200u)

/* TR_MSG_REGISTRY_BASE + 0x80 ... + 0xFF are the registry's own messages. */

/** Longest name in bytes, not counting the terminating NUL. */
#define TR_REGISTRY_NAME_MAX 255

typedef struct tr_registry tr_registry;

/**
 * struct tr_registry_stats - Counters of one registry.
 * @size:        sizeof(tr_registry_stats), set by the caller
 * @names:       names registered now
 * @holders:     pids holding at least one name now
 * @registered:  successful registrations since creation, replacements
 *               included
 * @unregistered: names removed by tr_registry_unregister()
 * @replaced:    names moved to a new pid by tr_registry_replace()
 * @removed:     names removed because their holder stopped
 *
 * Always registered == unregistered + replaced + removed + names.
 */
typedef struct tr_registry_stats {
	size_t size;
	uint64_t names;
	uint64_t holders;
	uint64_t registered;
	uint64_t unregistered;
	uint64_t replaced;
	uint64_t removed;
} tr_registry_stats;

/**
 * tr_registry_create() - Make a registry for @rt and spawn its actor.
 * @rt:  the runtime whose actors the names refer to
 * @out: the new registry
 *
 * The runtime need not be started yet, but it must run for names to be
 * removed when their holders stop.
 * Ownership: the caller owns *@out; release with tr_registry_destroy().
 * Thread:    any.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ECLOSED (the runtime is
 *            stopping).
 */
TR_API tr_err tr_registry_create(tr_runtime *rt, tr_registry **out);

/**
 * tr_registry_destroy() - Drop every name and stop the registry's actor.
 * @reg: the registry; NULL is a no-op
 *
 * Live holders are not affected. The memory is released once the
 * registry's actor has stopped too: at once when the runtime was already
 * joined, otherwise on one of its workers shortly after. Call it before
 * tr_runtime_destroy(), and not while another thread still uses @reg.
 * Ownership: @reg is the caller's no more; do not use it after the call.
 * Thread:    any.
 */
TR_API void tr_registry_destroy(tr_registry *reg);

/**
 * tr_registry_register() - Give @pid the name @name.
 * @reg:  the registry
 * @name: NUL-terminated, 1 to TR_REGISTRY_NAME_MAX bytes; copied
 * @pid:  a pid of this node (tr_pid_node() == 0)
 *
 * After TR_OK, every lookup that starts later sees the name until it is
 * unregistered or @pid stops.
 * Ownership: @name is borrowed; the registry keeps a copy.
 * Thread:    any.
 * Return:    TR_OK; TR_EEXIST (the name is taken, also by @pid itself);
 *            TR_EINVAL (NULL, bad name, TR_PID_NONE or a remote pid);
 *            TR_ENOMEM; TR_ECLOSED (the registry's actor has stopped,
 *            because the runtime is stopping). Nothing changed on error.
 */
TR_API tr_err tr_registry_register(tr_registry *reg, const char *name,
				   tr_pid pid);

/**
 * tr_registry_replace() - Give @name to @pid if it is free or held by
 * @expected (a compare-and-swap on the name).
 * @reg:      the registry
 * @name:     as for tr_registry_register()
 * @expected: the holder the caller knows about, typically one it saw stop;
 *            TR_PID_NONE matches only a free name
 * @pid:      the new holder
 *
 * This is how a restarted actor takes over the name of the one it
 * replaces without waiting for the registry to learn that the old one
 * stopped. A replaced holder's later stop does not touch the name.
 * Ownership: @name is borrowed; the registry keeps a copy.
 * Thread:    any.
 * Return:    TR_OK (also when @name already maps to @pid and @expected is
 *            @pid); TR_EEXIST (held by a pid other than @expected);
 *            otherwise as tr_registry_register().
 */
TR_API tr_err tr_registry_replace(tr_registry *reg, const char *name,
				  tr_pid expected, tr_pid pid);

/**
 * tr_registry_unregister() - Remove @name, whoever holds it.
 * @reg:  the registry
 * @name: the name
 *
 * Ownership: none (@name is borrowed).
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such name); TR_EINVAL (NULL or a bad
 *            name).
 */
TR_API tr_err tr_registry_unregister(tr_registry *reg, const char *name);

/**
 * tr_registry_whereis() - Look a name up.
 * @reg:  the registry
 * @name: the name
 * @out:  on TR_OK the holder; TR_PID_NONE otherwise
 *
 * See the top of this header for what a lookup costs and for the window
 * in which it may return a holder that has just stopped.
 * Ownership: none (@name is borrowed).
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (no such name); TR_EINVAL (NULL or a bad
 *            name).
 */
TR_API tr_err tr_registry_whereis(tr_registry *reg, const char *name,
				  tr_pid *out);

/**
 * tr_registry_stats_get() - Fill @out with the registry's counters, taken
 * together (consistent across fields).
 * @reg: the registry
 * @out: destination; @out->size must be set
 *
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL for NULL or a too small @out->size.
 */
TR_API tr_err tr_registry_stats_get(tr_registry *reg, tr_registry_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_REGISTRY_H */
