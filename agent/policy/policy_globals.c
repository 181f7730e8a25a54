/* SPDX-License-Identifier: MIT */
/* The global file (/etc/mtd/mtd.conf): settings of the whole agent rather
 * than of one service, in the policy files' syntax and read by their reader
 * (policy_reader.c) through the [Decoys] and [Hooks] rows of the schema
 * (policy_keys.c): who no decoy may block, how many sources UDP decoy hits may
 * block, which programs audit records run (policy_hooks.c), and the host's
 * identity in per-client schedules ([Agent] HostId=). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

void policy_globals_free(struct policy_globals *g)
{
	if (!g)
		return;
	free(g->path);
	free(g->never_block);
	policy_hooks_free(g->hooks, g->hook_count);
	free(g->hook_user);
	free(g->host_id);
	free(g);
}

static void policy_globals_freep(struct policy_globals **g)
{
	policy_globals_free(*g);
}

/* The defaults, documented in docs/mtd.policy.5 (GLOBAL FILE). */
static struct policy_globals *globals_new(void)
{
	struct policy_globals *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->udp_block_limit = 32;
	g->udp_block_interval_usec = USEC_PER_MINUTE;
	g->hook_timeout_usec = 10 * USEC_PER_SEC;
	g->hook_rate_limit = 30;
	g->hook_rate_interval_usec = USEC_PER_MINUTE;
	g->hook_user = strdup("nobody");
	if (!g->hook_user) {
		free(g);
		return NULL;
	}
	return g;
}

int policy_globals_parse_buffer(const char *file_name, const char *text, size_t len,
				struct policy_globals **ret, struct policy_errors *errors)
{
	_cleanup_(policy_globals_freep) struct policy_globals *g = NULL;
	_cleanup_free_ struct policy_source *source = NULL;
	struct parse_state st = {
	    .file = file_name,
	    .errors = errors,
	    .text = text,
	    .len = len,
	    .sections = SECTIONS_GLOBALS,
	    .sections_hint = "[Agent], [Decoys] or [Hooks]",
	};
	size_t before = errors->count;
	int r;

	g = globals_new();
	source = calloc(1, sizeof(*source));
	if (!g || !source)
		return -ENOMEM;
	g->path = strdup(file_name);
	if (!g->path)
		return -ENOMEM;
	st.target = g;
	st.source = source;

	r = policy_read_ini(&st);
	if (r < 0)
		return r;
	if (errors->count > before) {
		policy_sort_errors(errors, before);
		return -EINVAL;
	}
	*ret = TAKE_PTR(g);
	return 0;
}

int policy_globals_load(const char *path, bool must_exist, struct policy_globals **ret,
			struct policy_errors *ret_errors)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0, before = ret_errors->count;
	struct policy_globals *g;
	int r;

	r = policy_read_file(path, !must_exist, &text, &len, ret_errors);
	if (r == -ENOENT) {
		g = globals_new();
		if (!g)
			return -ENOMEM;
		*ret = g;
		return 0;
	}
	if (r < 0)
		return r;
	if (!text)
		return ret_errors->count > before ? -EINVAL : -EIO;
	return policy_globals_parse_buffer(path, text, len, ret, ret_errors);
}
