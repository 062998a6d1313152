/*
 * Reading a store's journal, shared by persistent actors and durable jobs
 * (internal; not installed): the page request, and the check a page
 * passes before any of its events is used.
 */
#ifndef TR_ACTORS_JOURNAL_H
#define TR_ACTORS_JOURNAL_H

#include <troupe/troupe.h>
#include <troupe/actors/store.h>

/* Ask @store for the events of journal @id after @after_seq, one page
 * (the store's default size); the outcome comes under *@ref. */
tr_err tr__journal_read(tr_ctx *cx, tr_pid store, const char *id,
			uint64_t after_seq, tr_ref *ref);

/*
 * The page @m carries, if it is a TR_MSG_STORE_EVENTS whose entries fit
 * its payload, each event's bytes inside it, and whose sequence numbers
 * rise past @after_seq; NULL otherwise.
 */
const tr_store_events *tr__journal_page(const tr_msg *m, uint64_t after_seq);

#endif /* TR_ACTORS_JOURNAL_H */
