/* SPDX-License-Identifier: MIT */
/* Per-uid admission on the control socket (control_internal.h). A read-group
 * member is a local user we do not trust: it may hold a few connections and
 * send a steady trickle of requests, never enough to lock root out or to keep
 * the event loop busy. */
#include "control_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Tokens are kept in millionths so refill needs no floating point. */
#define TOKEN 1000000u

struct uid_state {
	uid_t uid;
	unsigned connections;
	uint64_t tokens; /* in 1/TOKEN requests */
	uint64_t updated_usec;
	bool used;
};

struct control_limits {
	struct uid_state uids[CONTROL_LIMITS_UIDS_MAX];
	unsigned clients;      /* all connections */
	unsigned clients_user; /* connections of uids other than root */
};

int control_limits_new(struct control_limits **ret_limits)
{
	struct control_limits *limits = calloc(1, sizeof(*limits));

	if (!limits)
		return -ENOMEM;
	*ret_limits = limits;
	return 0;
}

void control_limits_free(struct control_limits *limits)
{
	free(limits);
}

unsigned control_limits_clients(const struct control_limits *limits)
{
	return limits->clients;
}

static void refill(struct uid_state *s, uint64_t now_usec)
{
	const uint64_t full = (uint64_t)CONTROL_UID_BURST * TOKEN;

	if (now_usec > s->updated_usec) {
		uint64_t gained = (now_usec - s->updated_usec) * CONTROL_UID_RATE;

		s->tokens = gained >= full - s->tokens ? full : s->tokens + gained;
	}
	s->updated_usec = now_usec;
}

static struct uid_state *find(struct control_limits *limits, uid_t uid)
{
	for (size_t i = 0; i < CONTROL_LIMITS_UIDS_MAX; i++)
		if (limits->uids[i].used && limits->uids[i].uid == uid)
			return &limits->uids[i];
	return NULL;
}

/* A uid's state outlives its connections while its bucket is not full, so
 * reconnecting does not buy a fresh burst. When the table is full, a uid
 * without connections that has waited longest makes room (its bucket is the
 * fullest); at most CONTROL_CLIENTS_MAX entries hold connections. */
static struct uid_state *find_or_add(struct control_limits *limits, uid_t uid)
{
	struct uid_state *s = find(limits, uid), *victim = NULL;

	if (s)
		return s;
	for (size_t i = 0; i < CONTROL_LIMITS_UIDS_MAX; i++) {
		struct uid_state *c = &limits->uids[i];

		if (!c->used) {
			victim = c;
			break;
		}
		if (c->connections == 0 && (!victim || c->updated_usec < victim->updated_usec))
			victim = c;
	}
	if (!victim)
		return NULL;
	*victim = (struct uid_state){
	    .uid = uid,
	    .tokens = (uint64_t)CONTROL_UID_BURST * TOKEN,
	    .used = true,
	};
	return victim;
}

int control_limits_connect(struct control_limits *limits, uid_t uid,
			   char ret_reason[CONTROL_LIMITS_REASON_MAX])
{
	struct uid_state *s;

	if (limits->clients >= CONTROL_CLIENTS_MAX) {
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX,
			 "too many connections (%u); try again later", CONTROL_CLIENTS_MAX);
		return -EUSERS;
	}
	if (uid == 0) {
		limits->clients++;
		return 0;
	}
	if (limits->clients_user >= CONTROL_CLIENTS_MAX - CONTROL_ROOT_RESERVED) {
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX,
			 "too many connections from non-root users (%u); try again later",
			 CONTROL_CLIENTS_MAX - CONTROL_ROOT_RESERVED);
		return -EUSERS;
	}
	s = find_or_add(limits, uid);
	if (!s) {
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX,
			 "too many users connected; try again later");
		return -EUSERS;
	}
	if (s->connections >= CONTROL_UID_CLIENTS_MAX) {
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX,
			 "too many connections from uid %u (at most %u)", (unsigned)uid,
			 CONTROL_UID_CLIENTS_MAX);
		return -EMFILE;
	}
	s->connections++;
	limits->clients++;
	limits->clients_user++;
	return 0;
}

void control_limits_disconnect(struct control_limits *limits, uid_t uid)
{
	struct uid_state *s;

	if (limits->clients > 0)
		limits->clients--;
	if (uid == 0)
		return;
	if (limits->clients_user > 0)
		limits->clients_user--;
	s = find(limits, uid);
	if (s && s->connections > 0)
		s->connections--;
}

int control_limits_request(struct control_limits *limits, uid_t uid, uint64_t now_usec,
			   char ret_reason[CONTROL_LIMITS_REASON_MAX])
{
	struct uid_state *s;

	if (uid == 0)
		return 0;
	s = find_or_add(limits, uid);
	if (!s) {
		/* Cannot happen while the uid holds a connection (it has an
		 * entry); fail closed. */
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX, "too many users; try again later");
		return -EBUSY;
	}
	refill(s, now_usec);
	if (s->tokens < TOKEN) {
		snprintf(ret_reason, CONTROL_LIMITS_REASON_MAX,
			 "rate limit: uid %u sends more than %u requests per second", (unsigned)uid,
			 CONTROL_UID_RATE);
		return -EBUSY;
	}
	s->tokens -= TOKEN;
	return 0;
}
