/*
 * The distribution hook's runtime side (include/troupe/remote.h): what a
 * send to a pid of another node becomes, and what arrives from one.
 */
#ifndef TR_RUNTIME_REMOTE_H
#define TR_RUNTIME_REMOTE_H

#include <troupe/remote.h>

#include "runtime/msg.h"

struct tr__worker;

/* The attached layer, published once (tr_runtime.remote). */
struct tr__remote {
	tr_err (*out)(void *arg, tr_remote_op *op);
	void *arg;
	void (*release)(void *arg);
};

/*
 * Hand @msg (built for a pid of another node, msg->to set) to the layer.
 * Consumes @msg. TR_OK: the layer took it; TR_EUNREACH: it is a counted
 * dead letter, which gives a request, monitor or link its outcome
 * (TR_EXIT_NOCONNECTION); TR_EREMOTE: a pointer payload, freed, not sent.
 */
tr_err
tr__remote_out(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg);

/* A counted dead letter of a node that was never queued (actor.c). */
void tr__dead_letter(tr_runtime *rt, struct tr__worker *w, struct tr__msg *msg);

#endif /* TR_RUNTIME_REMOTE_H */
