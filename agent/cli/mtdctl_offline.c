/* SPDX-License-Identifier: MIT */
/* mtdctl commands that work on files, without the agent: policy check
 * (its --plan output is mtdctl_plan.c), audit init, audit verify. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "clock.h"
#include "mtdctl.h"
#include "policy.h"

/* policy check's arguments: [--config FILE] PATH... or [--config FILE]
 * --plan DIR [--at TIME]; the paths are moved to the front of argv. Returns 0
 * or a usage exit code. */
static int parse_check_args(int argc, char **argv, bool *ret_plan, uint64_t *ret_at_usec,
			    const char **ret_config, size_t *ret_n_paths)
{
	bool plan = false, at = false;
	size_t n = 0;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--plan"))
			plan = true;
		else if (streq(argv[i], "--config")) {
			if (i + 1 >= argc || !argv[i + 1][0])
				return mtdctl_usage_error("policy check: --config needs a FILE");
			*ret_config = argv[++i];
		} else if (streq(argv[i], "--at") && i + 1 < argc) {
			if (mtdctl_parse_time(argv[++i], ret_at_usec) < 0)
				return mtdctl_usage_error("policy check: --at: '%s' is not a time "
							  "(@SECONDS or YYYY-MM-DDTHH:MM:SSZ)",
							  argv[i]);
			at = true;
		} else if (argv[i][0] == '-' && argv[i][1])
			return mtdctl_usage_error("policy check: unknown option '%s'", argv[i]);
		else
			argv[1 + n++] = argv[i];
	}
	if (at && !plan)
		return mtdctl_usage_error("policy check: --at goes with --plan");
	if (plan && n != 1)
		return mtdctl_usage_error("policy check: --plan takes one directory (or file)");
	if (n == 0)
		return mtdctl_usage_error(
		    "policy check: expected one or more files or directories");
	*ret_plan = plan;
	*ret_n_paths = n;
	return 0;
}

/* Appends each error as a line to stderr (unless --json) and to list. */
static void report_errors(const struct mtdctl *ctl, const struct policy_errors *errors,
			  json_t *list)
{
	for (size_t i = 0; i < errors->count; i++) {
		_cleanup_free_ char *line = policy_error_format(&errors->items[i]);
		if (!line)
			continue;
		if (!ctl->json)
			fprintf(stderr, "%s\n", line);
		json_array_append_new(list, json_string(line));
	}
}

int mtdctl_policy_check(const struct mtdctl *ctl, int argc, char **argv)
{
	struct policy_set *set = NULL;
	struct policy_globals *globals = NULL;
	struct policy_errors errors = {0};
	_cleanup_(json_decrefp) json_t *report = NULL;
	_cleanup_(json_decrefp) json_t *error_list = NULL;
	_cleanup_(json_decrefp) json_t *services = NULL;
	uint64_t at_usec = now(CLOCK_REALTIME);
	const char *config = NULL;
	size_t n_paths = 0;
	bool plan = false;
	int r, rg;

	/* Before anything is allocated: a usage error leaks nothing. */
	r = parse_check_args(argc, argv, &plan, &at_usec, &config, &n_paths);
	if (r != 0)
		return r;
	report = json_object();
	error_list = json_array();
	services = json_array();

	r = policy_set_load((const char *const *)argv + 1, n_paths, &set, &errors);
	/* The global file with the set: the one given, else the default if it exists. */
	rg = policy_globals_load(config ? config : POLICY_GLOBALS_PATH, config != NULL, &globals,
				 &errors);
	if (r >= 0 && rg < 0)
		r = rg;
	report_errors(ctl, &errors, error_list);
	for (size_t i = 0; set && i < set->count; i++)
		json_array_append_new(services, json_string(set->policies[i]->name));

	if (r >= 0 && plan) {
		/* The set loaded: what it would do instead of the summary. */
		policy_errors_free(&errors);
		r = mtdctl_policy_plan(ctl, set, globals, at_usec);
		policy_set_free(set);
		policy_globals_free(globals);
		return r;
	}
	json_object_set_new(report, "ok", json_boolean(r >= 0));
	json_object_set(report, "services", services);
	/* The global file checked: null when none was given and the default is absent. */
	json_object_set_new(report, "config",
			    config		       ? json_string(config)
			    : globals && globals->path ? json_string(globals->path)
			    : rg < 0		       ? json_string(POLICY_GLOBALS_PATH)
						       : json_null());
	json_object_set(report, "errors", error_list);
	if (ctl->json) {
		_cleanup_free_ char *text =
		    json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			puts(text);
	}

	if (r < 0) {
		size_t n = errors.count;
		policy_errors_free(&errors);
		policy_set_free(set);
		policy_globals_free(globals);
		if (n == 0)
			return mtdctl_fail("policy check: %s", strerror(-r));
		return ctl->json ? EXIT_FAILURE
				 : mtdctl_fail("policy check: %zu error%s", n, n == 1 ? "" : "s");
	}
	if (!ctl->json) {
		printf("ok: %zu service%s", set->count, set->count == 1 ? "" : "s");
		for (size_t i = 0; i < set->count; i++)
			printf("%s%s", i ? ", " : ": ", set->policies[i]->name);
		putchar('\n');
		if (globals->path)
			printf("ok: global file %s\n", globals->path);
	}
	policy_errors_free(&errors);
	policy_set_free(set);
	policy_globals_free(globals);
	return 0;
}

int mtdctl_audit_init(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *key_out = NULL, *state_dir = "/var/lib/mtd";
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--key-out") && i + 1 < argc)
			key_out = argv[++i];
		else if (streq(argv[i], "--state-dir") && i + 1 < argc)
			state_dir = argv[++i];
		else
			return mtdctl_usage_error("audit init: unexpected argument '%s'", argv[i]);
	}
	if (!key_out)
		return mtdctl_usage_error("audit init: --key-out FILE is required");

	r = audit_key_init(state_dir, key_out);
	if (r == -EEXIST)
		return mtdctl_fail("audit init: %s or %s/audit.key already exists; the audit key "
				   "is created once",
				   key_out, state_dir);
	if (r < 0)
		return mtdctl_fail("audit init: %s", strerror(-r));
	printf("audit key created in %s/audit.key; verification key written to %s — keep it "
	       "off this host\n",
	       state_dir, key_out);
	return 0;
}

int mtdctl_audit_verify(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *key_path = NULL, *journal = NULL, *machine = NULL;
	const char **logs;
	size_t n_logs = 0;
	uint8_t key[AUDIT_KEY_SIZE];
	struct audit_verify_result result = {0};
	int r, exit_code;

	logs = calloc((size_t)argc, sizeof(char *));
	if (!logs)
		return mtdctl_fail("out of memory");
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--key") && i + 1 < argc)
			key_path = argv[++i];
		else if (streq(argv[i], "--journal") && i + 1 < argc)
			journal = argv[++i];
		else if (streq(argv[i], "--machine") && i + 1 < argc)
			machine = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1]) {
			free(logs);
			return mtdctl_usage_error("audit verify: unknown option '%s'", argv[i]);
		} else
			logs[n_logs++] = argv[i];
	}
	if (!key_path || (n_logs == 0 && !journal)) {
		free(logs);
		return mtdctl_usage_error(
		    "audit verify: expected --key FILE and one or more logs, or --journal PATH");
	}
	if (machine && !journal) {
		free(logs);
		return mtdctl_usage_error("audit verify: --machine goes with --journal");
	}

	r = audit_key_read(key_path, key);
	if (r < 0) {
		free(logs);
		return mtdctl_fail("audit verify: cannot read key %s: %s", key_path,
				   r == -EINVAL ? "not 64 hex digits"
				   : r == -EPERM
				       ? "a key must be a regular file owned by root or "
					 "you, not accessible to group or others (chmod 0600)"
				       : strerror(-r));
	}
	if (journal) {
		exit_code = mtdctl_audit_verify_journal(ctl, key, journal, machine, logs, n_logs);
		free(logs);
		return exit_code;
	}
	r = audit_verify_files(key, logs, n_logs, &result);
	free(logs);
	if (r < 0)
		return mtdctl_fail("audit verify: %s", strerror(-r));

	if (ctl->json) {
		_cleanup_(json_decrefp) json_t *o =
		    json_pack("{s:b, s:I, s:I, s:I, s:b, s:b}", "ok", result.ok, "records",
			      (json_int_t)result.records, "first_seq", (json_int_t)result.first_seq,
			      "last_seq", (json_int_t)result.last_seq, "torn_tail",
			      result.torn_tail, "unsealed_tail", result.unsealed_tail);
		if (o && !result.ok) {
			json_object_set_new(o, "bad_seq", json_integer((json_int_t)result.bad_seq));
			json_object_set_new(o, "file",
					    json_string(result.bad_file ? result.bad_file : ""));
			json_object_set_new(o, "line", json_integer(result.bad_line));
			json_object_set_new(o, "reason",
					    json_string(result.reason ? result.reason : ""));
		}
		_cleanup_free_ char *text =
		    o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (text)
			puts(text);
		exit_code = result.ok ? 0 : EXIT_FAILURE;
	} else if (result.ok) {
		printf("ok: %llu records (seq %llu..%llu)\n", (unsigned long long)result.records,
		       (unsigned long long)result.first_seq, (unsigned long long)result.last_seq);
		if (result.unsealed_tail)
			printf("note: the last records are after the last seal (a running agent, "
			       "or records cut from the end)\n");
		exit_code = 0;
	} else {
		exit_code = mtdctl_fail("audit verify: %s:%u: seq %llu: %s",
					result.bad_file ? result.bad_file : "?", result.bad_line,
					(unsigned long long)result.bad_seq,
					result.reason ? result.reason : "verification failed");
	}
	audit_verify_result_done(&result);
	return exit_code;
}
