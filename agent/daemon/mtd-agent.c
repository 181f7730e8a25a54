/* SPDX-License-Identifier: MIT */
/* mtd-agent: the daemon's process — arguments, the sd-event loop, signals and
 * the service manager protocol. What the agent does is in agent.c. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent.h"
#include "agent_internal.h"
#include "audit.h"
#include "policy.h"
#include "sandbox.h"
#include "log.h"
#include "macro.h"
#include "clock.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: mtd-agent [OPTION]...\n"
	    "Moving-target-defense host agent.\n\n"
	    "  --policy-dir DIR      policies (*.policy) [/etc/mtd/policies]\n"
	    "  --config FILE         the global file: whom decoys never block, the UDP bound\n"
	    "                        (mtd.policy(5), GLOBAL FILE) [/etc/mtd/mtd.conf, if it "
	    "exists]\n"
	    "  --state-dir DIR       keys and state [/var/lib/mtd]\n"
	    "  --runtime-dir DIR     control socket [/run/mtd]\n"
	    "  --audit-log FILE      audit log [/var/log/mtd/audit.log]\n"
	    "  --audit-epoch SECS    seal the audit log and evolve its key this often [3600]\n"
	    "  --audit-max-size BYTES  rotate the audit log past this size [67108864]\n"
	    "  --audit-keep N        rotated audit logs kept [8]\n"
	    "  --audit-queue N       audit records held in memory while the log cannot be\n"
	    "                        written (disk full); beyond, they are counted as lost [1024]\n"
	    "  --audit-journal auto|yes|no|SOCKET  a copy of every audit record to the\n"
	    "                        journal (docs/audit-log.md, \"Off the host\"); auto: when\n"
	    "                        started by systemd [auto]\n"
	    "  --read-group NAME     group allowed read-only control commands [mtd]\n"
	    "  --block-group NAME    group allowed shared-blocks (docs/fleet.md) [mtd-block]\n"
	    "  --nflog-group N       NFLOG group the decoy rule logs hits to [7321]; N+1 gets\n"
	    "                        the drops of the instances' envelopes, N+2 the knocks\n"
	    "  --honeypot-port PORT  TCP decoys redirect here so they look open; 0 drops [7321]\n"
	    "  --remove-table-on-stop  delete the nftables table inet mtd on a clean stop\n"
	    "  --instances-cgroup NAME  parent cgroup of instances, under the agent's own\n"
	    "                        [mtd-instances]\n"
	    "  --max-clock-error DURATION  the clock is trusted while synchronised with an\n"
	    "                        estimated error up to this (adjtimex); beyond, or\n"
	    "                        unsynchronised, it is audited and shown in status [1s]\n"
	    "  --monitor             monitor mode: every service as if OnCompromise=alert;\n"
	    "                        detections are audited and counted, nothing is killed,\n"
	    "                        quarantined or blocked for them\n"
	    "  --metrics-listen ADDRESS  serve GET /metrics (docs/metrics.md) on unix:PATH\n"
	    "                        or a loopback 127.0.0.1:PORT, [::1]:PORT [off]\n"
	    "  --help, --version\n");
}

/* Strict unsigned parse for an option value: digits only, no overflow. */
static int parse_u64_option(const char *option, const char *value, uint64_t min, uint64_t max,
			    uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!value[0] || value[0] == '-' || value[0] == '+')
		goto bad;
	v = strtoull(value, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*ret = v;
	return 0;
bad:
	fprintf(stderr, "mtd-agent: --%s: '%s' is not a number in %llu..%llu\n", option, value,
		(unsigned long long)min, (unsigned long long)max);
	return -EINVAL;
}

static int parse_arguments(int argc, char **argv, struct agent_options *options)
{
	enum {
		OPT_POLICY_DIR = 256,
		OPT_CONFIG,
		OPT_STATE_DIR,
		OPT_RUNTIME_DIR,
		OPT_AUDIT_LOG,
		OPT_AUDIT_EPOCH,
		OPT_AUDIT_MAX_SIZE,
		OPT_AUDIT_KEEP,
		OPT_AUDIT_QUEUE,
		OPT_READ_GROUP,
		OPT_BLOCK_GROUP,
		OPT_NFLOG_GROUP,
		OPT_REMOVE_TABLE,
		OPT_HONEYPOT_PORT,
		OPT_INSTANCES_CGROUP,
		OPT_MAX_CLOCK_ERROR,
		OPT_CLOCK_STATE_FILE,
		OPT_MONITOR,
		OPT_METRICS_LISTEN,
		OPT_AUDIT_JOURNAL,
		OPT_HELP,
		OPT_VERSION,
	};
	static const struct option long_options[] = {
	    {"policy-dir", required_argument, NULL, OPT_POLICY_DIR},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},
	    {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
	    {"audit-epoch", required_argument, NULL, OPT_AUDIT_EPOCH},
	    {"audit-max-size", required_argument, NULL, OPT_AUDIT_MAX_SIZE},
	    {"audit-keep", required_argument, NULL, OPT_AUDIT_KEEP},
	    {"audit-queue", required_argument, NULL, OPT_AUDIT_QUEUE},
	    {"audit-journal", required_argument, NULL, OPT_AUDIT_JOURNAL},
	    {"read-group", required_argument, NULL, OPT_READ_GROUP},
	    {"block-group", required_argument, NULL, OPT_BLOCK_GROUP},
	    {"nflog-group", required_argument, NULL, OPT_NFLOG_GROUP},
	    {"remove-table-on-stop", no_argument, NULL, OPT_REMOVE_TABLE},
	    {"honeypot-port", required_argument, NULL, OPT_HONEYPOT_PORT},
	    {"instances-cgroup", required_argument, NULL, OPT_INSTANCES_CGROUP},
	    {"max-clock-error", required_argument, NULL, OPT_MAX_CLOCK_ERROR},
	    /* Not in --help, for tests: the clock's state ("STATUS ESTERROR
	     * MAXERROR", as adjtimex gives them) from this file, read again at
	     * every boundary, so a test flips it without touching the host's
	     * clock. */
	    {"clock-state-file", required_argument, NULL, OPT_CLOCK_STATE_FILE},
	    {"monitor", no_argument, NULL, OPT_MONITOR},
	    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
	    {"help", no_argument, NULL, OPT_HELP},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {},
	};
	uint64_t value;
	int c;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) >= 0) {
		switch (c) {
		case OPT_POLICY_DIR:
			options->policy_dir = optarg;
			break;
		case OPT_CONFIG:
			options->config_file = optarg;
			options->config_file_required = true;
			break;
		case OPT_STATE_DIR:
			options->state_dir = optarg;
			break;
		case OPT_RUNTIME_DIR:
			options->runtime_dir = optarg;
			break;
		case OPT_AUDIT_LOG:
			options->audit_log = optarg;
			break;
		case OPT_AUDIT_EPOCH:
			if (parse_u64_option("audit-epoch", optarg, 1, 366ull * 86400, &value) < 0)
				return 2;
			options->audit_epoch_usec = value * USEC_PER_SEC;
			break;
		case OPT_AUDIT_MAX_SIZE:
			if (parse_u64_option("audit-max-size", optarg, 4096, UINT64_MAX / 2,
					     &value) < 0)
				return 2;
			options->audit_max_bytes = value;
			break;
		case OPT_AUDIT_KEEP:
			if (parse_u64_option("audit-keep", optarg, 1, 1000, &value) < 0)
				return 2;
			options->audit_keep = (unsigned)value;
			break;
		case OPT_AUDIT_QUEUE:
			if (parse_u64_option("audit-queue", optarg, 2, 1000000, &value) < 0)
				return 2;
			options->audit_queue_records = (size_t)value;
			break;
		case OPT_AUDIT_JOURNAL:
			if (!streq(optarg, "auto") && !streq(optarg, "yes") &&
			    !streq(optarg, "no") && optarg[0] != '/') {
				fprintf(stderr,
					"mtd-agent: --audit-journal: '%s' is not auto, yes, no or "
					"the absolute path of a socket\n",
					optarg);
				return 2;
			}
			options->audit_journal = optarg;
			break;
		case OPT_READ_GROUP:
			options->read_group = optarg;
			break;
		case OPT_BLOCK_GROUP:
			options->block_group = optarg;
			break;
		case OPT_NFLOG_GROUP:
			if (parse_u64_option("nflog-group", optarg, 1, 65533, &value) < 0)
				return 2;
			options->nflog_group = (uint16_t)value;
			break;
		case OPT_HONEYPOT_PORT:
			if (parse_u64_option("honeypot-port", optarg, 0, 65535, &value) < 0)
				return 2;
			options->honeypot_port = (uint16_t)value;
			break;
		case OPT_INSTANCES_CGROUP:
			if (!optarg[0] || strchr(optarg, '/') || streq(optarg, ".") ||
			    streq(optarg, "..")) {
				fprintf(stderr,
					"mtd-agent: --instances-cgroup: '%s' is not a "
					"cgroup name\n",
					optarg);
				return 2;
			}
			options->instances_cgroup = optarg;
			break;
		case OPT_MAX_CLOCK_ERROR: {
			const char *reason = NULL;

			if (policy_parse_timespan(optarg, &value, &reason) < 0 || value == 0 ||
			    value > USEC_PER_HOUR) {
				fprintf(stderr,
					"mtd-agent: --max-clock-error: '%s' is not a duration in "
					"1us..1h (%s)\n",
					optarg, reason ? reason : "out of range");
				return 2;
			}
			options->max_clock_error_usec = value;
			break;
		}
		case OPT_CLOCK_STATE_FILE:
			options->clock_state_file = optarg;
			break;
		case OPT_METRICS_LISTEN: {
			struct metrics_address address;
			char reason[256];

			if (metrics_address_parse(optarg, &address, reason, sizeof(reason)) < 0) {
				fprintf(stderr, "mtd-agent: --metrics-listen: '%s': %s\n", optarg,
					reason);
				return 2;
			}
			options->metrics_listen = optarg;
			break;
		}
		case OPT_REMOVE_TABLE:
			options->remove_table_on_stop = true;
			break;
		case OPT_MONITOR:
			options->monitor = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("mtd-agent %s\n", MTD_VERSION);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mtd-agent: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int on_terminate(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata)
{
	struct agent *agent = userdata;

	(void)sd_notify(0, "STOPPING=1");
	log_info("stopping on %s", strsignal((int)si->ssi_signo));
	agent_stop(agent, si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	return sd_event_exit(sd_event_source_get_event(source), 0);
}

static int on_reload_signal(sd_event_source *source, const struct signalfd_siginfo *si,
			    void *userdata)
{
	struct agent *agent = userdata;
	json_t *result = NULL, *details = NULL;
	char *error = NULL;

	(void)sd_notify(0, "RELOADING=1");
	if (agent_reload(agent, "signal", &result, &error, &details) < 0)
		log_error("%s", error ? error : "reload refused");
	(void)sd_notify(0, "READY=1");
	json_decref(result);
	json_decref(details);
	free(error);
	return 0;
}

int main(int argc, char **argv)
{
	struct agent_options options = {
	    .policy_dir = "/etc/mtd/policies",
	    .config_file = "/etc/mtd/mtd.conf",
	    .state_dir = "/var/lib/mtd",
	    .runtime_dir = "/run/mtd",
	    .audit_log = "/var/log/mtd/audit.log",
	    .read_group = "mtd",
	    .block_group = "mtd-block",
	    .audit_epoch_usec = 3600 * USEC_PER_SEC,
	    .audit_max_bytes = 64ull * 1024 * 1024,
	    .audit_keep = 8,
	    .audit_queue_records = AUDIT_QUEUE_RECORDS_DEFAULT,
	    .audit_journal = "auto",
	    .nflog_group = 7321,
	    .honeypot_port = 7321,
	    .instances_cgroup = "mtd-instances",
	    .max_clock_error_usec = USEC_PER_SEC,
	};

	/* Large blocks (element states, batches, key lists: MBs with tens of
	 * thousands of clients) always in their own mappings, returned to the
	 * kernel when freed: a fixed threshold stops glibc from raising it
	 * after the first free and carving them from the heap, where a freed
	 * state stays resident behind what was allocated after it. */
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	sd_event *event = NULL;
	struct agent *agent = NULL;
	sigset_t mask;
	int r;

	r = parse_arguments(argc, argv, &options);
	if (r != 0)
		return r;
	/* First, while nothing is open that the helper should not keep. Without
	 * it the agent closes such descriptors itself. */
	r = fd_graveyard_start();
	if (r < 0)
		log_warning("cannot fork the closer helper (%s): instance layers are "
			    "unmounted on the loop",
			    strerror(-r));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* sd-event supervises instances by pidfd and wants SIGCHLD blocked. */
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* A vanished control client must not kill the agent. */
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_default(&event);
	if (r < 0) {
		log_error("cannot create the event loop: %s", strerror(-r));
		return 1;
	}

	r = agent_new(event, &options, &agent);
	if (r < 0) {
		(void)sd_notifyf(0, "STATUS=start failed: %s\nERRNO=%d", strerror(-r), -r);
		sd_event_unref(event);
		return 1;
	}

	if (sd_event_add_signal(event, NULL, SIGTERM, on_terminate, agent) < 0 ||
	    sd_event_add_signal(event, NULL, SIGINT, on_terminate, agent) < 0 ||
	    sd_event_add_signal(event, NULL, SIGHUP, on_reload_signal, agent) < 0) {
		log_error("cannot watch signals");
		agent_free(agent);
		sd_event_unref(event);
		return 1;
	}
	/* Pings WATCHDOG=1 at half of WatchdogSec= while the loop runs. */
	(void)sd_event_set_watchdog(event, true);

	(void)sd_notify(0, "READY=1\nSTATUS=running");
	log_info("running: policies from %s, control socket in %s", options.policy_dir,
		 options.runtime_dir);

	r = sd_event_loop(event);
	fd_graveyard_stop();
	agent_free(agent);
	sd_event_unref(event);
	return r < 0 ? 1 : 0;
}
