/*
 * Take a whole ck_stack in push order. The stack is LIFO; pushers (foreign
 * threads, actors issuing I/O commands) rely on their items being handled
 * in the order they pushed them, so the taker reverses the batch it took
 * with one exchange. Threads: any taker; ck_stack_batch_pop_upmc is safe
 * with several.
 */
#ifndef TR_RUNTIME_STACK_H
#define TR_RUNTIME_STACK_H

#include <ck_stack.h>

static inline ck_stack_entry_t *
tr__stack_take_fifo(ck_stack_t *s)
{
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(s);
	ck_stack_entry_t *rev = NULL;

	while (e != NULL) {
		ck_stack_entry_t *next = e->next;
		e->next = rev;
		rev = e;
		e = next;
	}
	return rev;
}

#endif /* TR_RUNTIME_STACK_H */
