/* SPDX-License-Identifier: MIT */
/* mtdctl keygen, snapshot create, snapshot verify: offline commands on
 * snapshot directories and Ed25519 key files (docs/snapshot.md). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtdctl.h"
#include "snapshot.h"
#include "clock.h"

static int snapshot_fail(const struct mtdctl *ctl, const char *what, const struct snapshot_error *e,
			 int r)
{
	if (ctl->json) {
		json_t *o =
		    json_pack("{s:b, s:s, s:s}", "ok", 0, "path", e->path, "reason", e->reason);
		char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (text)
			puts(text);
		free(text);
		json_decref(o);
	}
	if (e->path[0])
		return mtdctl_fail("%s: %s: %s", what, e->path, e->reason);
	return mtdctl_fail("%s: %s", what, strerror(-r));
}

int mtdctl_keygen(const struct mtdctl *ctl, int argc, char **argv)
{
	struct snapshot_error e = {0};
	const char *prefix = NULL;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--out") && i + 1 < argc)
			prefix = argv[++i];
		else
			return mtdctl_usage_error("keygen: unexpected argument '%s'", argv[i]);
	}
	if (!prefix)
		return mtdctl_usage_error("keygen: --out PREFIX is required");
	r = snapshot_keygen(prefix, &e);
	if (r < 0)
		return snapshot_fail(ctl, "keygen", &e, r);
	if (ctl->json)
		printf("{\"ok\": true, \"private\": \"%s.key\", \"public\": \"%s.pub\"}\n", prefix,
		       prefix);
	else
		printf("wrote %s.key (private, 0600) and %s.pub (public)\n", prefix, prefix);
	return 0;
}

int mtdctl_snapshot_create(const struct mtdctl *ctl, int argc, char **argv)
{
	struct snapshot_options opts = {0};
	struct snapshot_error e = {0};
	const char *key = NULL, *positional[2];
	_cleanup_free_ const char **binaries = calloc((size_t)argc, sizeof(char *));
	size_t n_binaries = 0, n_positional = 0;
	int r;

	if (!binaries)
		return mtdctl_fail("out of memory");
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else if (streq(argv[i], "--from-binary") && i + 1 < argc)
			binaries[n_binaries++] = argv[++i];
		else if (streq(argv[i], "--allow-devices"))
			opts.allow_devices = true;
		else if (streq(argv[i], "--allow-setuid"))
			opts.allow_setuid = true;
		else if (argv[i][0] == '-' && argv[i][1])
			return mtdctl_usage_error("snapshot create: unknown option '%s'", argv[i]);
		else if (n_positional < 2)
			positional[n_positional++] = argv[i];
		else
			return mtdctl_usage_error("snapshot create: unexpected argument '%s'",
						  argv[i]);
	}
	if (!key)
		return mtdctl_usage_error("snapshot create: --key PRIVATE-KEY is required");
	if (n_binaries > 0) {
		if (n_positional != 1)
			return mtdctl_usage_error("snapshot create --from-binary BINARY: expected "
						  "one DEST");
		if (opts.allow_devices || opts.allow_setuid)
			return mtdctl_usage_error("snapshot create --from-binary: --allow-* do not "
						  "apply");
		r = snapshot_create_from_binaries(binaries, n_binaries, positional[0], key, &e);
	} else {
		if (n_positional != 2)
			return mtdctl_usage_error("snapshot create: expected SRC DEST");
		r = snapshot_create(positional[0], positional[1], key, &opts, &e);
	}
	if (r < 0)
		return snapshot_fail(ctl, "snapshot create", &e, r);
	if (ctl->json)
		printf("{\"ok\": true}\n");
	else
		printf("created %s\n", positional[n_positional - 1]);
	return 0;
}

int mtdctl_snapshot_verify(const struct mtdctl *ctl, int argc, char **argv)
{
	struct snapshot_options opts = {0};
	struct snapshot_error e = {0};
	_cleanup_(snapshot_freep) struct snapshot *s = NULL;
	const char *pubkey = NULL, *dir = NULL;
	struct snapshot_stats stats;
	uint64_t start;
	double seconds;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--pubkey") && i + 1 < argc)
			pubkey = argv[++i];
		else if (streq(argv[i], "--allow-devices"))
			opts.allow_devices = true;
		else if (streq(argv[i], "--allow-setuid"))
			opts.allow_setuid = true;
		else if (argv[i][0] == '-' && argv[i][1])
			return mtdctl_usage_error("snapshot verify: unknown option '%s'", argv[i]);
		else if (!dir)
			dir = argv[i];
		else
			return mtdctl_usage_error("snapshot verify: unexpected argument '%s'",
						  argv[i]);
	}
	if (!pubkey || !dir)
		return mtdctl_usage_error("snapshot verify: expected --pubkey PUBLIC-KEY DIR");
	start = now(CLOCK_MONOTONIC);
	r = snapshot_verify(dir, pubkey, &opts, &s, &e);
	if (r < 0)
		return snapshot_fail(ctl, dir, &e, r);
	seconds = (double)(now(CLOCK_MONOTONIC) - start) / 1e6;
	snapshot_get_stats(s, &stats);
	if (ctl->json)
		printf("{\"ok\": true, \"entries\": %llu, \"files\": %llu, \"bytes\": %llu, "
		       "\"seconds\": %.6f}\n",
		       (unsigned long long)stats.entries, (unsigned long long)stats.files,
		       (unsigned long long)stats.bytes, seconds);
	else
		printf("ok: %s: %llu entries, %llu files, %llu bytes verified in %.3f s\n", dir,
		       (unsigned long long)stats.entries, (unsigned long long)stats.files,
		       (unsigned long long)stats.bytes, seconds);
	return 0;
}
