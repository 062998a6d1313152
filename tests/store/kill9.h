/*
 * What the kill -9 test (kill9.c) and its writer (kill9-writer.c) agree
 * on: the ids, how many writes each writer keeps in flight, and the
 * contents of every event, which depend only on the id and the sequence
 * number. Either side can then tell what an event must hold and what a
 * persistent actor's state must be after its first n events, with no
 * record of what was sent.
 */
#ifndef TR_TESTS_STORE_KILL9_H
#define TR_TESTS_STORE_KILL9_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Plain journals "j/<k>" written with TR_MSG_STORE_APPEND, and
 * persistent actors "p/<k>". */
#define K9_JOURNALS   4
#define K9_PERSISTENT 4

/* A journal writer keeps k9_window(k) appends in flight. */
static inline unsigned
k9_window(unsigned k)
{
	return 1u + k % 4u;
}

/* A persistent actor persists at most this many events in one turn and
 * waits for them before the next: at most this many are in flight. */
#define K9_BATCH_MAX 3u

/* Persistent actor k: a snapshot every k9_snap_every(k) events (0: none),
 * the journal trimmed after each one or not. */
static inline uint32_t
k9_snap_every(unsigned k)
{
	static const uint32_t every[K9_PERSISTENT] = { 0, 5, 7, 3 };
	return every[k % K9_PERSISTENT];
}

static inline bool
k9_trim(unsigned k)
{
	return k % K9_PERSISTENT >= 2;
}

/* splitmix64's finaliser. */
static inline uint64_t
k9_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* ---- plain journals ---------------------------------------------------- */

#define K9_EVENT_MAX 48

/* The bytes of event @seq of journal @k into @out; their number. */
static inline size_t
k9_journal_event(unsigned k, uint64_t seq, unsigned char *out)
{
	uint64_t h = k9_mix(((uint64_t)k << 40) ^ seq);
	size_t n = 1 + (size_t)(h % K9_EVENT_MAX);

	for (size_t i = 0; i < n; i++) {
		out[i] = (unsigned char)(k9_mix(h + i) >> 24);
	}
	return n;
}

/* ---- persistent actors ------------------------------------------------- */

/* An event: the sequence number it was meant for, and a value. */
struct k9_event {
	uint64_t seq;
	int64_t value;
};

/* What apply builds. A persistent actor's state starts with it, and its
 * snapshots hold it first. */
struct k9_sum {
	uint64_t count; /* the last event's sequence number */
	int64_t total;  /* the sum of the values */
	uint64_t chain; /* a hash of the values in their order */
	uint64_t bad;   /* events applied under another number than theirs */
};

static inline int64_t
k9_value(unsigned k, uint64_t seq)
{
	return (int64_t)(k9_mix(((uint64_t)(k + 1) << 48) ^ seq) % 2001u) -
	       1000;
}

static inline void
k9_apply(struct k9_sum *s, uint64_t seq, const struct k9_event *ev)
{
	if (ev->seq != seq || seq != s->count + 1) {
		s->bad++;
	}
	s->count = seq;
	s->total += ev->value;
	s->chain =
		s->chain * 6364136223846793005ull + (uint64_t)ev->value + seq;
}

/* The state after events 1 to @n of actor @k: a full replay by
 * computation. */
static inline struct k9_sum
k9_fold(unsigned k, uint64_t n)
{
	struct k9_sum s;

	memset(&s, 0, sizeof(s));
	for (uint64_t seq = 1; seq <= n; seq++) {
		struct k9_event ev = { .seq = seq, .value = k9_value(k, seq) };
		k9_apply(&s, seq, &ev);
	}
	return s;
}

#endif /* TR_TESTS_STORE_KILL9_H */
