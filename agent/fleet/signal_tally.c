/* SPDX-License-Identifier: MIT */
#include "fleet_internal.h"

#include <stdlib.h>
#include <string.h>

#include "macro.h"

struct kind_tally {
	char kind[32];	/* "" while unused */
	bool raised;	/* its first signal went out */
	uint64_t count; /* counted in the current interval */
	uint64_t due;	/* when the interval's summary is due */
	json_t *first;	/* the interval's first evidence */
};

struct signal_tally {
	uint64_t interval_usec;
	struct kind_tally kinds[SIGNAL_TALLY_KINDS];
};

struct signal_tally *signal_tally_new(uint64_t interval_usec)
{
	struct signal_tally *t = calloc(1, sizeof(*t));

	if (t)
		t->interval_usec = interval_usec;
	return t;
}

void signal_tally_free(struct signal_tally *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < SIGNAL_TALLY_KINDS; i++)
		json_decref(t->kinds[i].first);
	free(t);
}

static struct kind_tally *kind_of(struct signal_tally *t, const char *kind)
{
	for (size_t i = 0; i < SIGNAL_TALLY_KINDS; i++) {
		struct kind_tally *k = &t->kinds[i];

		if (streq(k->kind, kind))
			return k;
		if (!k->kind[0] && strlen(kind) < sizeof(k->kind)) {
			memcpy(k->kind, kind, strlen(kind) + 1);
			return k;
		}
	}
	return NULL;
}

bool signal_tally_add(struct signal_tally *t, const char *kind, json_t *evidence, uint64_t now)
{
	struct kind_tally *k = kind_of(t, kind);

	/* An unknown kind beyond the table's room is never silenced. */
	if (!k)
		return true;
	if (!k->raised) {
		k->raised = true;
		return true;
	}
	if (k->count++ == 0) {
		k->due = now + t->interval_usec;
		k->first = evidence;
	} else {
		json_decref(evidence);
	}
	return false;
}

uint64_t signal_tally_due(const struct signal_tally *t)
{
	uint64_t due = 0;

	for (size_t i = 0; i < SIGNAL_TALLY_KINDS; i++)
		if (t->kinds[i].count > 0 && (due == 0 || t->kinds[i].due < due))
			due = t->kinds[i].due;
	return due;
}

void signal_tally_flush(struct signal_tally *t, uint64_t now, signal_tally_summary_cb cb,
			void *userdata)
{
	for (size_t i = 0; i < SIGNAL_TALLY_KINDS; i++) {
		struct kind_tally *k = &t->kinds[i];

		if (k->count == 0 || k->due > now)
			continue;
		cb(k->kind, k->count, k->first, t->interval_usec, userdata);
		json_decref(k->first);
		k->first = NULL;
		k->count = 0;
	}
}
