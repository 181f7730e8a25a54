/* SPDX-License-Identifier: MIT */
/* Per-uid aggregation of refused control requests (control_internal.h): an
 * unprivileged peer that floods the socket with refused requests would
 * otherwise write one fdatasync'd audit record per request and rotate the
 * kept history away. */
#include "control_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

struct window {
	bool open;
	bool shared; /* the one window of every uid beyond CONTROL_DENIALS_UIDS_MAX */
	uid_t uid;
	pid_t last_pid;
	uint64_t start_usec, end_usec;
	uint64_t count;
	json_t *commands; /* {"reload": n, …} */
	json_t *kinds;	  /* {"permission": n, "rate": n, …} */
};

struct control_denials {
	uint64_t window_usec;
	struct window windows[CONTROL_DENIALS_UIDS_MAX + 1]; /* the last one is shared */
};

int control_denials_new(uint64_t window_usec, struct control_denials **ret_denials)
{
	struct control_denials *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->window_usec = window_usec;
	d->windows[CONTROL_DENIALS_UIDS_MAX].shared = true;
	*ret_denials = d;
	return 0;
}

static void window_reset(struct window *w)
{
	json_decref(w->commands);
	json_decref(w->kinds);
	w->commands = w->kinds = NULL;
	w->count = 0;
}

void control_denials_free(struct control_denials *denials)
{
	if (!denials)
		return;
	for (size_t i = 0; i < ELEMENTSOF(denials->windows); i++)
		window_reset(&denials->windows[i]);
	free(denials);
}

static int bump(json_t *counts, const char *key)
{
	json_t *v = json_object_get(counts, key);

	if (v)
		return json_integer_set(v, json_integer_value(v) + 1);
	return json_object_set_new(counts, key, json_integer(1));
}

static json_t *record_fields(const struct window *w, const char *reason)
{
	/* copies: the window's own objects go on counting */
	json_t *o = json_pack(
	    "{s:I, s:o, s:o, s:I, s:I}", "count", (json_int_t)w->count, "commands",
	    json_deep_copy(w->commands), "refusals", json_deep_copy(w->kinds), "window_start_usec",
	    (json_int_t)w->start_usec, "window_usec", (json_int_t)(w->end_usec - w->start_usec));

	if (!o)
		return NULL;
	if (w->shared) {
		if (json_object_set_new(o, "uid", json_null()) < 0 ||
		    json_object_set_new(o, "other_uids", json_true()) < 0)
			goto fail;
	} else if (json_object_set_new(o, "uid", json_integer((json_int_t)w->uid)) < 0 ||
		   json_object_set_new(o, "pid", json_integer((json_int_t)w->last_pid)) < 0) {
		goto fail;
	}
	if (reason && json_object_set_new(o, "reason", json_string(reason)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static struct window *find_window(struct control_denials *d, uid_t uid)
{
	struct window *free_slot = NULL;

	for (size_t i = 0; i < CONTROL_DENIALS_UIDS_MAX; i++) {
		struct window *w = &d->windows[i];

		if (w->open && w->uid == uid)
			return w;
		if (!w->open && !free_slot)
			free_slot = w;
	}
	return free_slot ? free_slot : &d->windows[CONTROL_DENIALS_UIDS_MAX];
}

static int window_open(struct window *w, uid_t uid, uint64_t start_usec, uint64_t length_usec)
{
	window_reset(w);
	w->commands = json_object();
	w->kinds = json_object();
	if (!w->commands || !w->kinds) {
		window_reset(w);
		return -ENOMEM;
	}
	w->open = true;
	w->uid = uid;
	w->start_usec = start_usec;
	w->end_usec = start_usec + length_usec;
	return 0;
}

int control_denials_add(struct control_denials *denials, uid_t uid, pid_t pid, const char *kind,
			const char *command, const char *reason, uint64_t now_usec,
			json_t **ret_fields)
{
	struct window *w = find_window(denials, uid);
	bool opening = !w->open;
	int r;

	if (opening) {
		r = window_open(w, uid, now_usec, denials->window_usec);
		if (r < 0)
			return r;
	}
	w->count++;
	w->last_pid = pid;
	if (bump(w->kinds, kind) < 0 || (command && bump(w->commands, command) < 0))
		return -ENOMEM;
	if (!opening)
		return 0;
	/* The opening refusal is recorded now, on its own; the window then
	 * counts only what comes after it. */
	*ret_fields = record_fields(w, reason);
	json_object_clear(w->commands);
	json_object_clear(w->kinds);
	w->count = 0;
	return *ret_fields ? 1 : -ENOMEM;
}

uint64_t control_denials_next_usec(const struct control_denials *denials)
{
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < ELEMENTSOF(denials->windows); i++)
		if (denials->windows[i].open && denials->windows[i].end_usec < next)
			next = denials->windows[i].end_usec;
	return next;
}

int control_denials_pop_due(struct control_denials *denials, uint64_t now_usec, json_t **ret_fields)
{
	for (size_t i = 0; i < ELEMENTSOF(denials->windows); i++) {
		struct window *w = &denials->windows[i];
		json_t *fields;

		if (!w->open || w->end_usec > now_usec)
			continue;
		if (w->count == 0) {
			window_reset(w);
			w->open = false;
			continue;
		}
		fields = record_fields(w, NULL);
		if (!fields)
			return -ENOMEM;
		/* The next window starts where this one ended, so a steady
		 * flood gives exactly one record per window. */
		if (window_open(w, w->uid, w->end_usec, denials->window_usec) < 0)
			w->open = false;
		*ret_fields = fields;
		return 1;
	}
	return 0;
}
