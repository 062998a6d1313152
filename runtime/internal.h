/*
 * Cross-cutting basics for runtime/ only: assertions, branch hints and
 * container_of. Nothing else belongs here; each module has its own header.
 */
#ifndef TR_RUNTIME_INTERNAL_H
#define TR_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define tr__likely(x)   __builtin_expect(!!(x), 1)
#define tr__unlikely(x) __builtin_expect(!!(x), 0)

#define tr__container_of(ptr, type, member)                                    \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Broken internal invariant: always fatal, in every build. */
#define tr__panic(...)                                                         \
	do {                                                                   \
		fprintf(stderr, "troupe: panic at %s:%d: ", __FILE__,          \
			__LINE__);                                             \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)

#ifdef NDEBUG
#define tr__assert(x)                                                          \
	do {                                                                   \
		(void)sizeof(x);                                               \
	} while (0)
#else
#define tr__assert(x)                                                          \
	do {                                                                   \
		if (tr__unlikely(!(x))) {                                      \
			tr__panic("assertion failed: %s", #x);                 \
		}                                                              \
	} while (0)
#endif

/*
 * API misuse (wrong thread, a context used outside its turn, a call that
 * would deadlock): debug builds abort with a message that says what was
 * wrong; release builds go on and the caller returns an error, as the
 * function documents.
 */
#ifdef NDEBUG
#define tr__misuse(...)                                                        \
	do {                                                                   \
	} while (0)
#else
#define tr__misuse(...)                                                        \
	do {                                                                   \
		fprintf(stderr, "troupe: misuse: ");                           \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)
#endif

/* Spin-wait hint for the CPU. */
static inline void
tr__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * Name the calling thread "<prefix><index>", or "<prefix>" for a negative
 * index (at most 15 characters), so that top -H, gdb and perf show which
 * of the runtime's threads is which.
 */
void tr__thread_name(const char *prefix, int index);

/*
 * Block SIGPIPE on the calling thread, one that runs libuv writes: libuv
 * writes with write()/writev(), so a peer that reset its connection
 * raises SIGPIPE, whose default action ends the process. Blocked, the
 * write fails with EPIPE alone, and the process-wide disposition the
 * application may rely on is left alone.
 */
void tr__thread_block_sigpipe(void);
/* Run the calling thread only on the @index-th CPU it may use now (round
 * robin); false if that cannot be done (nothing changes then). */
bool tr__thread_pin(unsigned index);

#endif /* TR_RUNTIME_INTERNAL_H */
