#ifndef TROUPE_VERSION_H
#define TROUPE_VERSION_H

/*
 * Version of the library and of its binary interface.
 *
 * TR_ABI_VERSION changes whenever a public struct (tr_msg, tr_actor_def,
 * tr_config, tr_metrics, and the standard actors' payloads) changes layout
 * in a way that is not an append, and whenever a public function goes. It
 * is the shared libraries' soname (libtroupe.so.2).
 * Structs that callers fill carry a .size field so that appending fields
 * stays compatible.
 */

#define TR_VERSION_MAJOR  0
#define TR_VERSION_MINOR  2
#define TR_VERSION_PATCH  0
#define TR_VERSION_STRING "0.2.0"
#define TR_ABI_VERSION    2

#if defined(__GNUC__)
#define TR_API __attribute__((visibility("default")))
#else
#define TR_API
#endif

/*
 * A few payload structs end in a flexible array member, which C has had
 * since C99 and C++ has not: GCC and Clang accept one in C++ as an
 * extension, and these two keep -pedantic quiet about it there, so the
 * headers compile cleanly from C++ as well. Nothing in C.
 */
#if defined(__cplusplus) && defined(__GNUC__)
#define TR_FAM_BEGIN                                                           \
	_Pragma("GCC diagnostic push")                                         \
		_Pragma("GCC diagnostic ignored \"-Wpedantic\"")
#define TR_FAM_END _Pragma("GCC diagnostic pop")
#else
#define TR_FAM_BEGIN
#define TR_FAM_END
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * tr_version() - Version of the library that is running.
 *
 * Thread:    any.
 * Return:    a static string such as "0.2.0".
 */
TR_API const char *tr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_VERSION_H */
