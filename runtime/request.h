/*
 * Requests (tr_request, tr_reply, tr_forward): the requester's table of
 * open requests and the pieces actor.c and inbox.c call.
 *
 * A request is a message with TR_MSG_F_REQUEST and a reference. Exactly one
 * outcome reaches the requester: the reply, or TR_MSG_REQUEST_FAILED for
 * the target's death (the runtime's monitor), a target that did not exist
 * (the request became a dead letter) or the timeout. What decides "exactly
 * one" is the requester's table: an outcome whose reference is no longer
 * in it is late. A late reply is a counted dead letter; a late failure or
 * timer tick is dropped.
 *
 * The target side needs no table: when a request is taken, the runtime
 * records the requester as a watcher of the target under the request's
 * reference (a monitor the target holds for it), and tr_reply() or
 * tr_forward() removes it. If the target stops while it holds requests,
 * each requester gets a DOWN under the request's reference, which the
 * requester's table turns into TR_MSG_REQUEST_FAILED with the reason.
 *
 * Timeouts: one timer per requester, not one per request. The table keeps
 * each request's deadline; a one-shot timer (TR__SYS_REQ_TICK) is armed for
 * the earliest deadline when no earlier one is armed, and its tick expires
 * what is due and arms the next. A reply never cancels anything.
 *
 * Threads: a table belongs to its requester, an actor (touched only on its
 * turns) or an inbox (touched under the inbox's mutex).
 */
#ifndef TR_RUNTIME_REQUEST_H
#define TR_RUNTIME_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <troupe/msg.h>

struct tr_runtime;
struct tr__worker;

/* Request references have the top bit set, monitor references do not: a
 * DOWN names which kind it is for. */
#define TR__REF_REQ (UINT64_C(1) << 63)

struct tr__req {
	uint64_t ref;      /* 0: empty slot */
	uint64_t to;       /* target pid value */
	uint64_t deadline; /* ticks; 0: none */
};

struct tr__reqtab {
	struct tr__req *v; /* open addressing, linear probing */
	uint32_t cap;      /* power of two, or 0 */
	uint32_t n;
	uint64_t armed; /* deadline of the earliest armed tick; 0: none */
};

/* A new request reference (any thread). */
uint64_t tr__req_ref(struct tr_runtime *rt);

/* Add; TR_ENOMEM leaves the table as it was. */
int tr__reqtab_add(struct tr__reqtab *t, uint64_t ref, uint64_t to,
		   uint64_t deadline);

/* Remove @ref; true (and *out) if it was open. */
bool tr__reqtab_take(struct tr__reqtab *t, uint64_t ref, struct tr__req *out);

/*
 * Remove one request whose deadline is at or before @now into *out; false
 * when none is due.
 */
bool tr__reqtab_due(struct tr__reqtab *t, uint64_t now, struct tr__req *out);

/*
 * Add a target's watch for the requester @to (see above): until
 * @deadline, the request's (0: until answered or cancelled). A table
 * about to grow first drops the watches whose deadline passed: their
 * requesters have timed out, and they cancel the watch only at the
 * target they asked, which a forwarded request has left. So a holder
 * keeps no more than its live requests' watches, give or take a growth.
 */
int tr__watch_add(struct tr__reqtab *t, uint64_t ref, uint64_t to,
		  uint64_t deadline);

/* Remove any one open request into *out; false when none is open. */
bool tr__reqtab_any(struct tr__reqtab *t, struct tr__req *out);

/* Earliest deadline left, 0 if none. */
uint64_t tr__reqtab_next(const struct tr__reqtab *t);

void tr__reqtab_fini(struct tr__reqtab *t);

/*
 * After adding a request with @deadline to @t, arm the requester's tick if
 * no tick at or before it is armed. @owner is the requester's pid (the
 * tick goes to it). Called again by the tick for the next deadline.
 */
void tr__req_arm(struct tr_runtime *rt, struct tr__reqtab *t, uint64_t owner,
		 uint64_t deadline);

/* The TR_MSG_REQUEST_FAILED view of a failure, for a handler. */
void tr__req_failed_msg(tr_msg *m, tr_request_failed *f, uint64_t ref,
			uint64_t to, int32_t reason);

/*
 * Tell @to that the request @ref timed out, so it forgets its watch for it
 * (a TR__SYS_DEMONITOR from @from, which is how a monitor is cancelled).
 */
void tr__req_unwatch_target(struct tr_runtime *rt, struct tr__worker *w,
			    uint64_t from, uint64_t to, uint64_t ref);

#endif /* TR_RUNTIME_REQUEST_H */
