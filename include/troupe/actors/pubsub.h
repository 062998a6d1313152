#ifndef TROUPE_ACTORS_PUBSUB_H
#define TROUPE_ACTORS_PUBSUB_H

/*
 * PubSub: topics that actors subscribe to and anyone publishes on
 * (Erlang's pg, Phoenix.PubSub, Akka's EventStream).
 *
 * A pubsub service belongs to one runtime. A topic is a string, matched
 * exactly (no patterns); it exists while it has subscribers. Publishing
 * sends an ordinary copied message to every current subscriber: the type
 * and payload are the publisher's, and the sender is the pid of the
 * publisher's context: an actor's, or a thread's (tr_inbox_ctx(), or
 * tr_runtime_ctx() for no sender).
 *
 * Subscribing takes the subscriber's pid, whoever calls: an actor
 * subscribes itself with tr_self(cx), and a parent or a thread may
 * subscribe another actor. Calls that only change the service's tables
 * take a pid; the call that sends takes a context.
 *
 * No central actor sits on the publish path. Each topic holds an
 * immutable snapshot of its subscriber list; a publish takes a reference
 * to it under a read lock of one of 16 shards (a hash, a chain walk, one
 * atomic increment), drops the lock and sends directly from the calling
 * thread, so publishers on different workers run in parallel. Subscribing
 * and unsubscribing copy the topic's list (O(subscribers of that topic))
 * under a mutex shared by all writers.
 *
 * Order: messages one publisher publishes one after another (the same
 * actor, or the same thread) reach each subscriber in publish order, on
 * one topic and across topics, because each is an ordinary send from
 * that publisher and the runtime keeps sends from one sender to one
 * receiver in order. Publishes from different publishers have no order
 * between them. A publish that runs while a subscription changes uses the
 * list from before or after the change, never a mix.
 *
 * A subscriber that stops is removed: the service runs a small actor that
 * monitors every subscriber and removes it from all its topics on
 * TR_MSG_DOWN. Until then publishes still send to it, and those messages
 * are counted as dead letters. Likewise a message published just before
 * an unsubscribe may arrive just after it.
 */

#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First message type of the pubsub module. */
#define TR_MSG_PUBSUB_BASE (TR_MSG_ACTORS_BASE + 0x300u)

/* TR_MSG_PUBSUB_BASE + 0x80 ... + 0xFF are the service's own messages. */

/** Longest topic in bytes, not counting the terminating NUL. */
#define TR_PUBSUB_TOPIC_MAX 255

typedef struct tr_pubsub tr_pubsub;

/**
 * struct tr_pubsub_stats - Counters of one pubsub service.
 * @size:          sizeof(tr_pubsub_stats), set by the caller
 * @topics:        topics with at least one subscriber now
 * @subscriptions: (topic, subscriber) pairs now
 * @subscribed:    successful subscribes since creation
 * @unsubscribed:  successful unsubscribes
 * @removed:       subscriptions removed because the subscriber stopped
 * @published:     publishes that returned a count (not an error)
 * @unheard:       of those, publishes to a topic without subscribers
 * @delivered:     messages the runtime accepted for subscribers (each
 *                 is handled or counted as a dead letter)
 * @failed:        sends to a subscriber the runtime refused (TR_EFULL
 *                 from a bounded mailbox, TR_ENOMEM); nothing was queued
 *
 * subscribed == unsubscribed + removed + subscriptions, read under one
 * lock. The publish counters are kept with relaxed atomics and are exact
 * once publishing stopped.
 */
typedef struct tr_pubsub_stats {
	size_t size;
	uint64_t topics;
	uint64_t subscriptions;
	uint64_t subscribed;
	uint64_t unsubscribed;
	uint64_t removed;
	uint64_t published;
	uint64_t unheard;
	uint64_t delivered;
	uint64_t failed;
} tr_pubsub_stats;

/**
 * tr_pubsub_create() - Make a pubsub service for @rt and spawn its actor.
 * @rt:  the runtime whose actors subscribe
 * @out: the new service
 *
 * The runtime need not be started yet, but it must run for stopped
 * subscribers to be removed.
 * Ownership: the caller owns *@out; release with tr_pubsub_destroy().
 * Thread:    any.
 * Return:    TR_OK, TR_EINVAL, TR_ENOMEM, TR_ECLOSED (the runtime is
 *            stopping).
 */
TR_API tr_err tr_pubsub_create(tr_runtime *rt, tr_pubsub **out);

/**
 * tr_pubsub_destroy() - Drop every subscription and stop the service's
 * actor.
 * @ps: the service; NULL is a no-op
 *
 * Subscribers are not affected. The memory is released once the
 * service's actor has stopped too: at once when the runtime was already
 * joined, otherwise on one of its workers shortly after. Call it before
 * tr_runtime_destroy(), and not while another thread still uses @ps.
 * Ownership: @ps is the caller's no more; do not use it after the call.
 * Thread:    any.
 */
TR_API void tr_pubsub_destroy(tr_pubsub *ps);

/**
 * tr_pubsub_subscribe() - Subscribe @pid to @topic.
 * @ps:    the service
 * @topic: NUL-terminated, 1 to TR_PUBSUB_TOPIC_MAX bytes; copied
 * @pid:   a pid of this node (tr_pid_node() == 0)
 *
 * Every publish that starts after TR_OK reaches @pid until it
 * unsubscribes or stops. A pid that has already stopped is accepted and
 * removed once the monitor's DOWN (TR_EXIT_NOPROC) is handled.
 * Ownership: @topic is borrowed; the service keeps a copy.
 * Thread:    any.
 * Return:    TR_OK; TR_EEXIST (already subscribed; nothing changed);
 *            TR_EINVAL (NULL, bad topic, TR_PID_NONE or a remote pid);
 *            TR_ENOMEM; TR_ECLOSED (the service's actor has stopped,
 *            because the runtime is stopping).
 */
TR_API tr_err tr_pubsub_subscribe(tr_pubsub *ps, const char *topic, tr_pid pid);

/**
 * tr_pubsub_unsubscribe() - Unsubscribe @pid from @topic.
 * @ps:    the service
 * @topic: the topic
 * @pid:   the subscriber
 *
 * Messages published before may still be on their way to @pid.
 * Ownership: none (@topic is borrowed).
 * Thread:    any.
 * Return:    TR_OK; TR_ENOENT (@pid was not subscribed to @topic; nothing
 *            changed); TR_EINVAL (NULL, a bad topic, TR_PID_NONE or a
 *            remote pid); TR_ENOMEM (the topic's list could not be
 *            copied; nothing changed).
 */
TR_API tr_err tr_pubsub_unsubscribe(tr_pubsub *ps, const char *topic,
				    tr_pid pid);

/**
 * tr_pubsub_publish() - Send a copy of a message to every subscriber of
 * @topic, with the publisher as the sender.
 * @cx:    context of the publishing actor or thread; its pid is the
 *         sender subscribers see (none for tr_runtime_ctx())
 * @ps:    a service of the caller's runtime
 * @topic: the topic; one without subscribers is not an error
 * @type:  message type, below TR_MSG_SYSTEM_BASE
 * @data:  payload, copied for each subscriber; may be NULL when @len is 0
 * @len:   payload size
 *
 * A subscriber whose mailbox refuses the message (TR_EFULL, TR_ENOMEM)
 * is skipped and counted in the stats' @failed; the others still get it.
 * Ownership: none (each subscriber gets its own copy of @data).
 * Thread:    actor, or a thread's context.
 * Return:    the number of subscribers the message was sent to (0 for a
 *            topic nobody subscribes to), or a negative error and nothing
 *            was sent: TR_EINVAL (NULL, bad topic, reserved type, or @ps of
 *            another runtime), TR_EMSGSIZE (over the runtime's maximum).
 */
TR_API int tr_pubsub_publish(tr_ctx *cx, tr_pubsub *ps, const char *topic,
			     uint32_t type, const void *data, size_t len);

/**
 * tr_pubsub_subscribers() - Number of subscribers of @topic now.
 * @ps:    the service
 * @topic: the topic
 *
 * Ownership: none (@topic is borrowed).
 * Thread:    any.
 * Return:    the count (0 for an unknown topic), or TR_EINVAL for NULL or
 *            a bad topic.
 */
TR_API int tr_pubsub_subscribers(tr_pubsub *ps, const char *topic);

/**
 * tr_pubsub_stats_get() - Fill @out with the service's counters.
 * @ps:  the service
 * @out: destination; @out->size must be set
 *
 * Ownership: none.
 * Thread:    any.
 * Return:    TR_OK, or TR_EINVAL for NULL or a too small @out->size.
 */
TR_API tr_err tr_pubsub_stats_get(tr_pubsub *ps, tr_pubsub_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_ACTORS_PUBSUB_H */
