/* SPDX-License-Identifier: MIT */
/* mtdctl: the operator's CLI. One table of commands drives the dispatch,
 * `mtdctl --help` and `mtdctl COMMAND --help`. The commands live below it:
 * those that ask the agent in mtdctl_agent.c, the offline ones in
 * mtdctl_offline.c (policy check, audit init/verify; --plan in mtdctl_plan.c),
 * mtdctl_schedule.c (port, connect), mtdctl_client.c (client add/list/revoke)
 * and mtdctl_snapshot.c (keygen, snapshot);
 * none calls back here.
 * Human tables by default, the agent's JSON with --json. */
#include "mtdctl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* One row per command: it drives the dispatch, `mtdctl --help` and
 * `mtdctl COMMAND --help`. run() gets argv from the command's last word
 * ("show" of "policy show"). A synopsis may hold several lines, one per form. */
struct mtdctl_command {
	const char *name;
	const char *synopsis;
	const char *summary;
	bool offline;
	int (*run)(const struct mtdctl *ctl, int argc, char **argv);
};

static const struct mtdctl_command commands[] = {
    {"status", "", "agent and services", false, mtdctl_status},
    {"metrics", "", "the agent's figures in the Prometheus text format", false, mtdctl_metrics},
    {"policy list", "", "services in force", false, mtdctl_policy_list},
    {"policy show", "NAME", "one service's policy as the agent holds it", false,
     mtdctl_policy_show},
    {"reload", "[--keep-connections]",
     "validate the policy directory and apply it (root); clients whose keys are gone lose their "
     "doors and (unless --keep-connections) their connections",
     false, mtdctl_reload},
    {"unblock", "ADDRESS", "let a source blocked by a decoy hit in again (root)", false,
     mtdctl_unblock},
    {"instances", "", "running instances: id, service, pid, address, state", false,
     mtdctl_instances},
    {"quarantine", "INSTANCE|SERVICE [--reason TEXT]",
     "replace it, then freeze it for forensics (root)", false, mtdctl_quarantine},
    {"replace", "INSTANCE|SERVICE",
     "planned replacement: new connections go to a fresh instance, established ones drain "
     "(DrainTimeout=) (root)",
     false, mtdctl_replace},
    {"release", "ID", "kill a quarantined instance, remove what was kept (root)", false,
     mtdctl_release},
    {"inspect", "[--verify] ID",
     "what was kept of a quarantined instance, and why; --verify (root) re-checks every file",
     false, mtdctl_inspect},
    {"audit show", "[--since SEQ] [--follow]", "audit records after SEQ; --follow keeps going",
     false, mtdctl_audit_show},
    {"policy check", "[--config FILE] PATH...\n[--config FILE] --plan DIR [--at TIME]",
     "validate policies and the global file; --plan: what DIR would do (ports, decoys, "
     "envelopes, limits)",
     true, mtdctl_policy_check},
    {"audit init", "--key-out FILE [--state-dir DIR]",
     "create the audit key; FILE is the verification key", true, mtdctl_audit_init},
    {"audit verify", "--key FILE LOG...\n--key FILE --journal PATH [--machine ID] [LOG...]",
     "verify audit logs (oldest first); --journal: the copy shipped through the journal, "
     "with its gaps, compared with the LOGs",
     true, mtdctl_audit_verify},
    {"port",
     "SERVICE --policy FILE [--at TIME] [--candidates N | --skew DURATION | --client NAME "
     "--client-key FILE --host-id ID]",
     "the service's public port now (or at TIME); --skew: and the neighbouring epoch's", true,
     mtdctl_port},
    {"connect", "SERVICE --policy FILE [--skew DURATION] HOST",
     "stdio proxy to the current port (ssh ProxyCommand)", true, mtdctl_connect},
    {"client add",
     "SERVICE NAME --host ADDRESS[=HOSTID]... [--policy DIR] [--config FILE] [--out FILE]",
     "a client of a ClientKeys= service: its key (0600) and its mtd-client profile", true,
     mtdctl_client_add},
    {"client list", "SERVICE [--policy DIR]",
     "a ClientKeys= service's clients: name, key fingerprint, key changed", true,
     mtdctl_client_list},
    {"client revoke", "SERVICE NAME [--policy DIR]",
     "remove a client's key (then mtdctl reload closes its doors)", true, mtdctl_client_revoke},
    {"keygen", "--out PREFIX", "Ed25519 pair PREFIX.key (0600) and PREFIX.pub", true,
     mtdctl_keygen},
    {"snapshot create",
     "--key KEY [--allow-devices] [--allow-setuid] SRC DEST\n--key KEY --from-binary BINARY... "
     "DEST",
     "signed snapshot of a tree or of a binary's closure", true, mtdctl_snapshot_create},
    {"snapshot verify", "--pubkey PUB [--allow-devices] [--allow-setuid] DIR",
     "exit 0 only if DIR matches its signed manifest", true, mtdctl_snapshot_verify},
};

#define SUMMARY_COLUMN 30

/* "  NAME SYNOPSIS" per form, then the summary: beside the last form when it
 * fits, else on a line of its own. */
static void print_command(FILE *out, const struct mtdctl_command *c)
{
	const char *form = c->synopsis;
	int width = 0;

	for (;;) {
		size_t len = strcspn(form, "\n");

		if (width > 0)
			fputc('\n', out);
		width = fprintf(out, "  %s%s%.*s", c->name, len ? " " : "", (int)len, form);
		if (!form[len])
			break;
		form += len + 1;
	}
	if (width < SUMMARY_COLUMN - 1)
		fprintf(out, "%*s%s\n", SUMMARY_COLUMN - width, "", c->summary);
	else
		fprintf(out, "\n%*s%s\n", SUMMARY_COLUMN, "", c->summary);
}

static void usage(FILE *out)
{
	fputs("usage: mtdctl [--socket PATH] [--json] COMMAND [ARG]...\n"
	      "Control the mtd-agent moving-target-defense agent.\n\n"
	      "Commands that ask the running agent:\n",
	      out);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (!commands[i].offline)
			print_command(out, &commands[i]);
	fputs("\nCommands that work offline:\n", out);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (commands[i].offline)
			print_command(out, &commands[i]);
	fputs("\nOptions:\n"
	      "  --socket PATH   control socket [/run/mtd/control.sock]\n"
	      "  --json          print the raw JSON\n"
	      "  --help, --version\n\n"
	      "COMMAND --help prints that command's usage.\n"
	      "Exit status: 0 ok, 1 failure, 2 usage.\n",
	      out);
}

/* How many of argv's first words name command c: 0 (not it), 1 or 2 (it),
 * or -1 when only its first word matches (the group, e.g. "policy"). */
static int command_matches(const struct mtdctl_command *c, int argc, char **argv)
{
	size_t first = strcspn(c->name, " ");

	if (strlen(argv[0]) != first || strncmp(argv[0], c->name, first) != 0)
		return 0;
	if (!c->name[first])
		return 1;
	return argc >= 2 && streq(argv[1], c->name + first + 1) ? 2 : -1;
}

static bool asks_for_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (streq(argv[i], "--help") || streq(argv[i], "-h"))
			return true;
	return false;
}

/* `mtdctl COMMAND --help`: one usage line per form, then the summary. */
static int print_command_usage(const struct mtdctl_command *c)
{
	static const char prefix[] = "mtdctl [--socket PATH] [--json]";

	printf("usage: %s %s%s", prefix, c->name, c->synopsis[0] ? " " : "");
	for (const char *s = c->synopsis; *s; s++)
		if (*s == '\n')
			printf("\n       %s %s ", prefix, c->name);
		else
			putchar(*s);
	printf("\n%s\n", c->summary);
	return 0;
}

/* argv[0] names a group ("policy", "audit", "snapshot") but argv[1] none of
 * its commands: list them on --help, else a one-line usage error. */
static int group_usage(const struct mtdctl_command *const *group, size_t n_group, int argc,
		       char **argv)
{
	bool help = argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"));

	if (help) {
		for (size_t i = 0; i < n_group; i++)
			print_command(stdout, group[i]);
		return 0;
	}
	if (argc >= 2)
		fprintf(stderr, "mtdctl: %s: unknown subcommand '%s'; expected", argv[0], argv[1]);
	else
		fprintf(stderr, "mtdctl: %s: expected", argv[0]);
	for (size_t i = 0; i < n_group; i++)
		fprintf(stderr, "%s %s", i ? "," : "", group[i]->name + strlen(argv[0]) + 1);
	fputs(" (see mtdctl --help)\n", stderr);
	return EXIT_USAGE;
}

static int dispatch(const struct mtdctl *ctl, int argc, char **argv)
{
	const struct mtdctl_command *group[ELEMENTSOF(commands)];
	size_t n_group = 0;

	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		const struct mtdctl_command *c = &commands[i];
		int words = command_matches(c, argc, argv);

		if (words > 0 && asks_for_help(argc, argv))
			return print_command_usage(c);
		if (words > 0)
			return c->run(ctl, argc - (words - 1), argv + (words - 1));
		if (words < 0)
			group[n_group++] = c;
	}
	if (n_group == 0)
		return mtdctl_usage_error("unknown command '%s'", argv[0]);
	return group_usage(group, n_group, argc, argv);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {},
	};
	struct mtdctl ctl = {.socket_path = "/run/mtd/control.sock"};
	int c;

	/* "+": stop at the command, whose own options are parsed by it. */
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			ctl.socket_path = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mtdctl %s\n", MTD_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* --json may also follow the command. */
	for (int i = optind; i < argc; i++)
		if (streq(argv[i], "--json")) {
			ctl.json = true;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(char *));
			argc--;
			i--;
		}
	return dispatch(&ctl, argc - optind, argv + optind);
}
