#ifndef TROUPE_PID_H
#define TROUPE_PID_H

/*
 * Actor addresses.
 *
 * A pid is a 64-bit value: 16 bits of node (0 = this node; other values are
 * reserved for distribution), 20 bits of generation and 28 bits of slot
 * index.
 *
 * Guarantee: a pid is unique for the life of the runtime. It is never
 * handed out twice, so a stale pid held anywhere (a timer, a registry, a
 * monitor, a message in flight) names no live actor: a send to it is a
 * counted dead letter and never reaches an actor spawned later. A slot is
 * reused after its actor stops, with the next generation, and retired
 * once it has used its last one (2^20 - 1 actors per slot); a retired
 * slot keeps only its table entry (one slot per million spawns that
 * reuse it). Spawning also fails with TR_ENOMEM once all 2^28 slots are
 * live or retired, after about 2.8e14 spawns.
 */

#include <stdbool.h>
#include <stdint.h>

#include <troupe/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_pid {
	uint64_t v; /* never read or build .v outside the runtime */
} tr_pid;

#ifdef __cplusplus
#define TR_PID_NONE (tr_pid{ 0 })
#else
#define TR_PID_NONE ((tr_pid){ 0 })
#endif

/** tr_pid_eq() - True when both pids name the same actor. Thread: any. */
static inline bool
tr_pid_eq(tr_pid a, tr_pid b)
{
	return a.v == b.v;
}

/** tr_pid_is_none() - True for TR_PID_NONE. Thread: any. */
static inline bool
tr_pid_is_none(tr_pid p)
{
	return p.v == 0;
}

/**
 * tr_pid_hash() - A well-mixed 64-bit hash of @p, for hash tables keyed by
 * pid (equal pids, equal hashes). Thread: any.
 */
static inline uint64_t
tr_pid_hash(tr_pid p)
{
	uint64_t x = p.v; /* splitmix64's finaliser */

	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/**
 * tr_pid_node() - Node part of a pid (0 for the local node).
 * Thread: any.
 */
TR_API uint32_t tr_pid_node(tr_pid p);

/** tr_pid_slot() - Slot index part of a pid. Thread: any. */
TR_API uint32_t tr_pid_slot(tr_pid p);

/** tr_pid_generation() - Generation part of a pid. Thread: any. */
TR_API uint32_t tr_pid_generation(tr_pid p);

/**
 * tr_pid_format() - Write a pid as "<node.slot.gen>" into @buf.
 * @p:   the pid
 * @buf: destination, at least 32 bytes for any pid
 * @len: size of @buf
 *
 * Thread:    any.
 * Return:    @buf (truncated text when @len is too small).
 */
TR_API char *tr_pid_format(tr_pid p, char *buf, unsigned len);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_PID_H */
