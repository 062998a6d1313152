/*
 * plan.c - the planner: turns a task's text into subtasks.
 *
 * A real agent would ask a model for a plan. This one is a few rules that
 * a person can check by eye, and it is deterministic: the same text always
 * gives the same plan.
 *
 * 1. Files. A word of the task that names a data file, whole ("server.log")
 *    or without its extension ("server"), selects that file. No such word
 *    selects every file in the data directory.
 * 2. Tools, run on every selected file:
 *      count, size, stats, wc, measure      wc -l -w -c FILE
 *      find W, grep W, search [for] W       grep -c -i -w W FILE
 *      top, frequent, common                the five most frequent words
 *                                           (of four letters or more)
 *      unique, distinct, uniq, dedupe       the number of distinct lines
 * 3. The model. summarise, summarize, summary, explain, describe, review
 *    or report add a model subtask per file, which runs after that file's
 *    tools and gets their outputs as facts. A task that names no tool gets
 *    wc and the model: "look at it and tell me about it".
 *
 * So "summarise the docs" is wc + model for each of the four shipped
 * files (eight subtasks), and "find error in server.log" is one grep.
 *
 * Threads: plan_task() reads `hub` (read-only after setup) and its
 * arguments only; any actor may call it.
 */
#include "agenthub.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum {
	WANT_WC = 1 << 0,
	WANT_GREP = 1 << 1,
	WANT_TOP = 1 << 2,
	WANT_UNIQ = 1 << 3,
	WANT_MODEL = 1 << 4,
	WANT_TOOLS = WANT_WC | WANT_GREP | WANT_TOP | WANT_UNIQ,
};

struct keyword {
	const char *word;
	unsigned want;
};

static const struct keyword keywords[] = {
	{ "count", WANT_WC },        { "size", WANT_WC },
	{ "stats", WANT_WC },        { "wc", WANT_WC },
	{ "measure", WANT_WC },      { "find", WANT_GREP },
	{ "grep", WANT_GREP },       { "search", WANT_GREP },
	{ "top", WANT_TOP },         { "frequent", WANT_TOP },
	{ "common", WANT_TOP },      { "unique", WANT_UNIQ },
	{ "distinct", WANT_UNIQ },   { "uniq", WANT_UNIQ },
	{ "dedupe", WANT_UNIQ },     { "summarise", WANT_MODEL },
	{ "summarize", WANT_MODEL }, { "summary", WANT_MODEL },
	{ "explain", WANT_MODEL },   { "describe", WANT_MODEL },
	{ "review", WANT_MODEL },    { "report", WANT_MODEL },
};

const char *
tool_name(uint32_t tool)
{
	switch (tool) {
	case TOOL_WC:
		return "wc";
	case TOOL_GREP:
		return "grep";
	case TOOL_TOP:
		return "top";
	case TOOL_UNIQ:
		return "uniq";
	case TOOL_MODEL:
		return "model";
	default:
		return "?";
	}
}

/* A word is lower-case letters, digits and . _ - (so "server.log" is one
 * word); a trailing dot ends a sentence, not a file name. */
static bool
is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

static int
file_named(const char *w)
{
	for (unsigned i = 0; i < hub.n_files; i++) {
		if (strcmp(w, hub.files[i].name) == 0 ||
		    strcmp(w, hub.files[i].stem) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static unsigned
keyword_of(const char *w)
{
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strcmp(w, keywords[i].word) == 0) {
			return keywords[i].want;
		}
	}
	return 0;
}

/* A search word must be safe to hand to grep as one argument (it is, as
 * an argv entry, never through a shell) and short. */
static bool
is_search_word(const char *w)
{
	size_t n = strlen(w);

	if (n == 0 || n >= WORD_MAX || file_named(w) >= 0) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)w[i]) && w[i] != '_' &&
		    w[i] != '-') {
			return false;
		}
	}
	return true;
}

static void
add_step(struct plan *p, uint32_t tool, uint32_t file, const char *word)
{
	if (p->n == MAX_STEPS) {
		return;
	}
	struct plan_step *s = &p->step[p->n++];

	memset(s, 0, sizeof(*s));
	s->tool = tool;
	s->file = file;
	if (word != NULL) {
		snprintf(s->word, sizeof(s->word), "%s", word);
		snprintf(s->label, sizeof(s->label), "%s %s %s",
			 tool_name(tool), word, hub.files[file].name);
	} else {
		snprintf(s->label, sizeof(s->label), "%s %s", tool_name(tool),
			 hub.files[file].name);
	}
}

void
plan_task(const char *text, size_t len, struct plan *out)
{
	char words[64][WORD_MAX + 8];
	size_t n_words = 0;
	bool is_selected[MAX_FILES] = { false };
	bool any_file = false;
	unsigned want = 0;
	char search[WORD_MAX] = "";

	/* Split into lower-case words; longer words are cut (they match
	 * nothing anyway). */
	for (size_t i = 0; i < len && n_words < 64;) {
		while (i < len && !is_word_char(text[i])) {
			i++;
		}
		size_t k = 0;
		while (i < len && is_word_char(text[i])) {
			if (k < sizeof(words[0]) - 1) {
				words[n_words][k++] =
					(char)tolower((unsigned char)text[i]);
			}
			i++;
		}
		while (k > 0 && words[n_words][k - 1] == '.') {
			k--;
		}
		if (k > 0) {
			words[n_words++][k] = '\0';
		}
	}

	for (size_t i = 0; i < n_words; i++) {
		int f = file_named(words[i]);
		if (f >= 0) {
			is_selected[f] = true;
			any_file = true;
			continue;
		}
		unsigned k = keyword_of(words[i]);
		want |= k;
		if (k == WANT_GREP && search[0] == '\0') {
			/* "search for W": the word after the verb, past "for".
			 */
			size_t j = i + 1;
			if (j < n_words && strcmp(words[j], "for") == 0) {
				j++;
			}
			if (j < n_words && is_search_word(words[j])) {
				snprintf(search, sizeof(search), "%s",
					 words[j]);
			}
		}
	}
	if (search[0] == '\0') {
		want &= ~(unsigned)WANT_GREP; /* a search without a word */
	}
	if ((want & WANT_TOOLS) == 0) {
		want |= WANT_WC; /* the model needs facts; no tool named: wc */
		if ((want & WANT_MODEL) == 0) {
			want |= WANT_MODEL;
		}
	}

	out->n = 0;
	for (unsigned f = 0; f < hub.n_files; f++) {
		if (any_file && !is_selected[f]) {
			continue;
		}
		if (want & WANT_WC) {
			add_step(out, TOOL_WC, f, NULL);
		}
		if (want & WANT_GREP) {
			add_step(out, TOOL_GREP, f, search);
		}
		if (want & WANT_TOP) {
			add_step(out, TOOL_TOP, f, NULL);
		}
		if (want & WANT_UNIQ) {
			add_step(out, TOOL_UNIQ, f, NULL);
		}
		if (want & WANT_MODEL) {
			add_step(out, TOOL_MODEL, f, NULL);
		}
	}
}
