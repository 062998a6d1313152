/*
 * outside.c - A program written against an installed troupe, the way an
 * author outside the project writes one: only <troupe/troupe.h> and
 * <troupe/actors/registry.h>, built with pkg-config or meson's
 * dependency() (tests/install/check_install.sh does both).
 *
 * main's thread works through its inbox's context: it spawns an actor
 * that answers in capitals, gives it a name in a registry, asks it once
 * with a request and once with a plain send to the name, prints both
 * answers, and stops everything. It waits without a deadline (the test's
 * own timeout bounds it), so a slow machine cannot fail it.
 *
 * Output, exactly:
 *     request: HELLO, WORLD
 *     send: AGAIN
 *     ok
 */

#include <stdio.h>
#include <stdlib.h>

#include <troupe/troupe.h>
#include <troupe/actors/registry.h>

enum {
	MSG_UPPER = 1, /* payload: text; answered with MSG_UPPERED */
	MSG_UPPERED,   /* payload: the same text in capitals */
};

/* The longest text the actor answers; longer ones get no answer. */
#define TEXT_MAX 64

static void
upper_handle(tr_ctx *cx, void *state, const tr_msg *m)
{
	const char *in = m->data;
	char out[TEXT_MAX];

	(void)state;
	if (m->type != MSG_UPPER || m->size > sizeof(out)) {
		return;
	}
	for (size_t i = 0; i < m->size; i++) {
		char c = in[i];

		out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	/* A request gets its reply; a plain message gets a plain send back
	 * to its sender. */
	(void)tr_reply(cx, m, MSG_UPPERED, out, m->size);
}

static const tr_actor_def upper_def = {
	.size = sizeof(tr_actor_def),
	.name = "upper",
	.handle = upper_handle,
};

static void
check(tr_err err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "outside: %s: %s\n", what, tr_strerror(err));
		exit(1);
	}
}

/* Print an answer, after checking that it is one. */
static void
print_answer(const char *label, const tr_received *r)
{
	if (r->type != MSG_UPPERED) {
		fprintf(stderr,
			"outside: %s: got message type 0x%x, not the "
			"answer\n",
			label, (unsigned)r->type);
		exit(1);
	}
	printf("%s: %.*s\n", label, (int)r->size, (const char *)r->data);
}

int
main(void)
{
	tr_config cfg = tr_config_default();
	tr_runtime *rt;
	tr_inbox *ib;
	tr_registry *reg;
	tr_pid upper;
	tr_pid found;
	tr_ref ref;
	tr_received r;

	cfg.workers = 2;
	check(tr_runtime_create(&cfg, &rt), "tr_runtime_create");
	check(tr_runtime_start(rt), "tr_runtime_start");
	check(tr_inbox_create(rt, &ib), "tr_inbox_create");
	check(tr_registry_create(rt, &reg), "tr_registry_create");

	/* The inbox's context lets this thread spawn and ask like an actor. */
	tr_ctx *cx = tr_inbox_ctx(ib);

	check(tr_spawn(cx, &upper_def, NULL, &upper), "tr_spawn");
	check(tr_registry_register(reg, "upper", upper),
	      "tr_registry_register");
	check(tr_registry_whereis(reg, "upper", &found), "tr_registry_whereis");
	if (!tr_pid_eq(found, upper)) {
		fprintf(stderr, "outside: the registry names another pid\n");
		return 1;
	}

	/* A request without a time limit, and its one outcome. */
	check(tr_request(cx, found, MSG_UPPER, "hello, world", 12, 0, &ref),
	      "tr_request");
	check(tr_inbox_recv(ib, &ref, -1, &r), "tr_inbox_recv");
	print_answer("request", &r);
	tr_received_fini(&r);

	/* A plain message to the pid the name gave, with the inbox as its
	 * sender. */
	check(tr_send(cx, found, MSG_UPPER, "again", 5), "tr_send");
	check(tr_inbox_recv(ib, NULL, -1, &r), "tr_inbox_recv");
	print_answer("send", &r);
	tr_received_fini(&r);

	check(tr_stop(cx, upper, TR_EXIT_NORMAL), "tr_stop");
	tr_registry_destroy(reg);
	tr_inbox_destroy(ib);
	tr_runtime_stop(rt);
	check(tr_runtime_join(rt), "tr_runtime_join");
	tr_runtime_destroy(rt);
	printf("ok\n");
	return 0;
}
