/*
 * 01_hello.c - the smallest complete troupe program.
 *
 * It shows the life of a runtime from start to end:
 *
 *   1. create a runtime (worker threads are not running yet),
 *   2. define and spawn one actor, a "greeter" that prints a line for each
 *      message it gets and counts them in its own state,
 *   3. start the worker threads,
 *   4. send it a few messages from main, which is not an actor, through
 *      the runtime's context (tr_runtime_ctx),
 *   5. wait until every message has been handled (tr_runtime_wait_idle),
 *   6. stop, join and destroy the runtime.
 *
 * If you know asyncio: the greeter is like a task that loops on
 * `await queue.get()`, except that you never write the loop. The runtime
 * calls the handler once per message, on whichever core is free, and never
 * runs two messages of one actor at the same time, so the state needs no
 * lock.
 *
 * Run it: ./example-hello
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troupe/troupe.h>

/*
 * Message types are 32-bit tags chosen by the application. Anything below
 * TR_MSG_SYSTEM_BASE is ours; the runtime uses the range above it for its
 * own messages (TR_MSG_DOWN, TR_MSG_EXIT).
 */
enum {
	MSG_GREET = 1,
};

/*
 * The actor's state. The runtime allocates state_size zeroed bytes per
 * actor and passes them to every handler call. Only this actor ever sees
 * them.
 */
struct greeter {
	unsigned count;
};

/*
 * The handler: called once per message, one message at a time. @m and @cx
 * are valid only during the call. For a message sent with tr_send(),
 * m->data points to a private copy of the bytes that the sender passed.
 */
static void
greeter_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	struct greeter *g = state;

	(void)cx; /* this handler does not send anything */
	if (m->type != MSG_GREET) {
		return; /* ignore what we do not understand */
	}
	g->count++;
	/* The payload is the name without its terminating NUL: print it with
	 * an explicit length instead of trusting the sender to end it. */
	printf("greeting #%u: hello, %.*s!\n", g->count, (int)m->size,
	       (const char *)m->data);
}

/*
 * The definition says what the actor is. It must outlive every actor
 * spawned from it, so it is a static const. The .size field is an ABI
 * guard: it lets a newer runtime recognise an older definition.
 */
static const tr_actor_def greeter_def = {
	.size = sizeof(tr_actor_def),
	.name = "greeter",
	.state_size = sizeof(struct greeter),
	.handle = greeter_handle,
};

/* Every troupe call that can fail returns a tr_err: TR_OK (0) or negative. */
static void
check(tr_err err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "%s: %s (%s)\n", what, tr_strerror(err),
			tr_err_name(err));
		exit(1);
	}
}

int
main(void)
{
	static const char *const names[] = { "world", "actors", "every core" };
	tr_runtime *rt;
	tr_pid greeter;

	/* 1. A runtime with the default settings: one worker thread per
	 *    online core. Passing NULL is the same as tr_config_default(). */
	check(tr_runtime_create(NULL, &rt), "tr_runtime_create");

	/* main is not an actor, so it has no context of its own: the
	 * runtime's context lets it make the calls an actor makes (spawn,
	 * send, stop). Its messages have no sender. */
	tr_ctx *cx = tr_runtime_ctx(rt);

	/* 2. Spawn the greeter. Its pid is the only way to reach it. Spawning
	 *    before start is allowed; it runs once the workers are up. */
	check(tr_spawn(cx, &greeter_def, NULL, &greeter), "tr_spawn");

	/* 3. Start the worker threads. */
	check(tr_runtime_start(rt), "tr_runtime_start");
	printf("runtime %s started with %u workers\n", tr_version(),
	       tr_runtime_workers(rt));

	/* 4. Send three messages from main. The bytes are copied, so the
	 *    strings could change right after the call. Messages from one
	 *    sender to one actor arrive in the order they were sent. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		check(tr_send(cx, greeter, MSG_GREET, names[i],
			      strlen(names[i])),
		      "tr_send");
	}

	/* 5. Sends are asynchronous: they return before the greeter runs.
	 *    Wait (at most 5 s) until no message is queued or being handled. */
	check(tr_runtime_wait_idle(rt, 5000), "tr_runtime_wait_idle");

	/* 6. Graceful stop: every actor gets a stop request behind the
	 *    messages already queued for it. tr_runtime_join() waits for the
	 *    actors and the threads, and tr_runtime_destroy() frees it all. */
	tr_runtime_stop(rt);
	check(tr_runtime_join(rt), "tr_runtime_join");
	tr_runtime_destroy(rt);
	printf("done\n");
	return 0;
}
