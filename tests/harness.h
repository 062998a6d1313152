/*
 * Tiny test harness. Each test program defines a table:
 *
 *     static const struct test_case tests[] = {
 *             { "pid: stale pid is a dead letter", test_stale_pid },
 *             { NULL, NULL },
 *     };
 *     TEST_MAIN(tests)
 *
 * Checks print both values with file:line and mark the running test failed;
 * the program ends with the line "N passed, N failed" and exits non-zero on
 * any failure. With an argument, only tests whose name contains it run.
 * Waiting is done on conditions with deadlines (WAIT_UNTIL), never by sleeps.
 *
 * The suite must pass on a machine busy with other work, where everything
 * can be late: a check never bounds how long something took, and a
 * deadline that is a failure is many seconds (sanitizer builds are slow
 * too). A lower bound that follows from correctness (a timer did not fire
 * before its delay) is fine. Speed is measured by the benchmark program.
 */
#ifndef TR_TESTS_HARNESS_H
#define TR_TESTS_HARNESS_H

#ifdef NDEBUG
#error "tests need assertions: do not build them with NDEBUG"
#endif

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

static int harness_failed_checks;

static inline uint64_t
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void
harness_nap_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #cond);                              \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                     \
	do {                                                                   \
		uint64_t ca_ = (uint64_t)(a), cb_ = (uint64_t)(b);             \
		if (ca_ != cb_) {                                              \
			fprintf(stderr,                                        \
				"%s:%d: %s == %s failed: %" PRIu64             \
				" != %" PRIu64 "\n",                           \
				__FILE__, __LINE__, #a, #b, ca_, cb_);         \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

/* Two strings are equal. */
#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *sa_ = (a), *sb_ = (b);                             \
		if (strcmp(sa_, sb_) != 0) {                                   \
			fprintf(stderr,                                        \
				"%s:%d: %s == \"%s\" failed: \"%s\"\n",        \
				__FILE__, __LINE__, #a, sb_, sa_);             \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long ca_ = (long long)(a), cb_ = (long long)(b);          \
		if (ca_ != cb_) {                                              \
			fprintf(stderr,                                        \
				"%s:%d: %s == %s failed: %lld != %lld\n",      \
				__FILE__, __LINE__, #a, #b, ca_, cb_);         \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

#define CHECK_OK(expr)                                                         \
	do {                                                                   \
		int ce_ = (int)(expr);                                         \
		if (ce_ != 0) {                                                \
			fprintf(stderr, "%s:%d: %s returned %d (%s)\n",        \
				__FILE__, __LINE__, #expr, ce_,                \
				tr_strerror(ce_));                             \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

#define CHECK_ERR(expr, want)                                                  \
	do {                                                                   \
		int ce_ = (int)(expr);                                         \
		if (ce_ != (int)(want)) {                                      \
			fprintf(stderr,                                        \
				"%s:%d: %s returned %d (%s), want %s\n",       \
				__FILE__, __LINE__, #expr, ce_,                \
				tr_err_name(ce_), #want);                      \
			harness_failed_checks++;                               \
		}                                                              \
	} while (0)

/* Wait up to ms for cond; a timeout is a failed check. Yields true if met. */
#define WAIT_UNTIL(cond, ms)                                                   \
	({                                                                     \
		uint64_t wd_ = harness_now_ms() + (ms);                        \
		bool wok_ = false;                                             \
		for (;;) {                                                     \
			if (cond) {                                            \
				wok_ = true;                                   \
				break;                                         \
			}                                                      \
			if (harness_now_ms() > wd_) {                          \
				break;                                         \
			}                                                      \
			harness_nap_us(200);                                   \
		}                                                              \
		if (!wok_) {                                                   \
			fprintf(stderr,                                        \
				"%s:%d: timed out after %d ms waiting "        \
				"for %s\n",                                    \
				__FILE__, __LINE__, (int)(ms), #cond);         \
			harness_failed_checks++;                               \
		}                                                              \
		wok_;                                                          \
	})

static inline int
harness_run(const struct test_case *tests, int argc, char **argv)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (const struct test_case *t = tests; t->name != NULL; t++) {
		if (argc > 1 && strstr(t->name, argv[1]) == NULL) {
			continue;
		}
		int before = harness_failed_checks;
		uint64_t t0 = harness_now_ms();
		t->fn();
		bool ok = harness_failed_checks == before;
		printf("%s %s (%" PRIu64 " ms)\n", ok ? "ok  " : "FAIL",
		       t->name, harness_now_ms() - t0);
		if (ok) {
			passed++;
		} else {
			failed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

#define TEST_MAIN(table)                                                       \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		return harness_run(table, argc, argv);                         \
	}

#endif /* TR_TESTS_HARNESS_H */
