/* Reading a store's journal (see journal.h). */
#include "journal.h"

#include <stdio.h>
#include <string.h>

tr_err
tr__journal_read(tr_ctx *cx, tr_pid store, const char *id, uint64_t after_seq,
		 tr_ref *ref)
{
	tr_store_read_req q;

	memset(&q, 0, sizeof(q));
	(void)snprintf(q.id, sizeof(q.id), "%s", id);
	q.after_seq = after_seq;
	return tr_request(cx, store, TR_MSG_STORE_READ, &q, sizeof(q), 0, ref);
}

const tr_store_events *
tr__journal_page(const tr_msg *m, uint64_t after_seq)
{
	const tr_store_events *pg = m->data;

	if (m->type != TR_MSG_STORE_EVENTS || pg == NULL ||
	    m->size < sizeof(*pg) ||
	    (m->size - sizeof(*pg)) / sizeof(pg->events[0]) < pg->count) {
		return NULL;
	}
	uint64_t seq = after_seq;
	for (uint32_t i = 0; i < pg->count; i++) {
		const tr_store_event *ev = &pg->events[i];
		if (ev->seq <= seq || ev->offset > m->size ||
		    ev->size > m->size - ev->offset) {
			return NULL;
		}
		seq = ev->seq;
	}
	return pg;
}
