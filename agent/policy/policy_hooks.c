/* SPDX-License-Identifier: MIT */
/* OnEvent= lines (which audit records run which program: the global file's
 * [Hooks], a policy's [Service]) and HookRate=, read through the schema
 * (policy_keys.c); and
 * the two pure rules the daemon's runner applies (agent/daemon/hooks.c):
 * which record types a hook takes, and its rate limit. */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

void policy_hooks_free(struct policy_hook *hooks, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		policy_strv_free(hooks[i].types);
		policy_strv_free(hooks[i].argv);
	}
	free(hooks);
}

/* A type or a glob of types: audit record types are [a-z0-9-]; a glob adds
 * '*' and '?'. */
static int check_type(const char *t, const char **reason)
{
	size_t n = strlen(t);

	if (n == 0) {
		*reason = "an empty record type in TYPES";
		return -EINVAL;
	}
	if (n > POLICY_HOOK_TYPE_LEN_MAX) {
		*reason = "a record type in TYPES longer than 64 bytes";
		return -EINVAL;
	}
	for (const char *c = t; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '*' || *c == '?')) {
			*reason = "TYPES takes record types (a-z, 0-9, '-') or globs of them ('*', "
				  "'?'), separated by commas";
			return -EINVAL;
		}
	return 0;
}

/* "decoy-hit,instance-*" into a NULL-terminated vector. */
static int split_types(const char *s, char ***ret, size_t *ret_count, const char **reason)
{
	_cleanup_free_ char *copy = strdup(s);
	char **v = NULL, *save = NULL;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	if (*s == ',' || (*s && s[strlen(s) - 1] == ',') || strstr(s, ",,")) {
		*reason = "an empty record type in TYPES";
		return -EINVAL;
	}
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **grown;
		int r = check_type(t, reason);

		if (r == 0 && n >= POLICY_HOOK_TYPES_MAX) {
			*reason = "more than 32 record types in TYPES";
			r = -EINVAL;
		}
		if (r < 0) {
			policy_strv_free(v);
			return r;
		}
		grown = realloc(v, (n + 2) * sizeof(*v));
		if (!grown) {
			policy_strv_free(v);
			return -ENOMEM;
		}
		v = grown;
		v[n] = strdup(t);
		v[n + 1] = NULL;
		if (!v[n]) {
			policy_strv_free(v);
			return -ENOMEM;
		}
		n++;
	}
	*ret = v;
	*ret_count = n;
	return 0;
}

/* OnEvent=TYPES PROGRAM [ARGS...]: split like Exec= (quotes, comments). */
int policy_parse_on_event(struct parse_state *st, const struct schema_entry *e, const char *value,
			  const char **reason)
{
	struct policy_globals *g = st->p ? NULL : st->target;
	struct policy_hook **hooks = st->p ? &st->p->hooks : &g->hooks, hook = {.line = st->line},
			   *grown;
	size_t *count = st->p ? &st->p->hook_count : &g->hook_count;
	char **words = NULL;
	size_t n = 0;
	int r;

	(void)e;
	if (*count >= POLICY_HOOKS_MAX) {
		*reason = "more than 32 OnEvent= hooks";
		return -EINVAL;
	}
	r = policy_split_words(value, &words, &n, reason);
	if (r < 0)
		return r;
	if (n < 2) {
		policy_strv_free(words);
		*reason = "expected TYPES PROGRAM [ARGS...] (e.g. decoy-hit,source-blocked "
			  "/usr/share/mtd/hooks/webhook)";
		return -EINVAL;
	}
	r = policy_check_absolute_path(words[1], reason);
	if (r < 0) {
		policy_strv_free(words);
		*reason = "PROGRAM must be an absolute path (there is no $PATH search)";
		return r;
	}
	r = split_types(words[0], &hook.types, &hook.type_count, reason);
	if (r < 0) {
		policy_strv_free(words);
		return r;
	}
	/* argv: the words after TYPES, in place. */
	free(words[0]);
	memmove(words, words + 1, n * sizeof(*words)); /* n words + the NULL, less one */
	hook.argv = words;
	hook.argc = n - 1;
	grown = realloc(*hooks, (*count + 1) * sizeof(*grown));
	if (!grown) {
		policy_strv_free(hook.types);
		policy_strv_free(hook.argv);
		return -ENOMEM;
	}
	*hooks = grown;
	grown[(*count)++] = hook;
	return 0;
}

/* HookRate=N/SPAN: N 1..POLICY_HOOK_RATE_MAX, SPAN 1s..1d. */
int policy_parse_hook_rate(struct parse_state *st, const struct schema_entry *e, const char *value,
			   const char **reason)
{
	struct policy_globals *g = st->target;

	(void)e;
	return policy_parse_rate(value, 1, POLICY_HOOK_RATE_MAX,
				 "expected RUNS/SPAN (e.g. 30/1min)", "RUNS not in 1-100000",
				 &g->hook_rate_limit, &g->hook_rate_interval_usec, reason);
}

bool policy_hook_matches(const struct policy_hook *hook, const char *type)
{
	if (strncmp(type, "hook-", 5) == 0)
		return false;
	for (size_t i = 0; i < hook->type_count; i++)
		if (fnmatch(hook->types[i], type, 0) == 0)
			return true;
	return false;
}

bool policy_rate_admit(struct policy_rate *rate, unsigned limit, uint64_t span_usec,
		       uint64_t now_usec, bool *ret_first_drop)
{
	if (rate->used == 0 && rate->dropped == 0)
		rate->window_start_usec = now_usec;
	else if (now_usec < rate->window_start_usec ||
		 now_usec - rate->window_start_usec >= span_usec) {
		/* A new window (also if the clock went back). */
		rate->window_start_usec = now_usec;
		rate->used = 0;
		rate->dropped = 0;
	}
	if (rate->used < limit) {
		rate->used++;
		return true;
	}
	rate->dropped++;
	rate->dropped_total++;
	if (ret_first_drop)
		*ret_first_drop = rate->dropped == 1;
	return false;
}
