/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

/* The agent: its state (policy set, audit log, control server) and what it
 * does on start, reload, control requests and stop. mtd-agent.c owns the
 * process (arguments, signals, sd_notify); this file owns the behaviour. */

struct agent_options {
	const char *policy_dir;
	const char *config_file;   /* the global file ([Decoys]) */
	bool config_file_required; /* given on the command line: it must exist */
	const char *state_dir;
	const char *runtime_dir;
	const char *audit_log;
	const char *read_group;	    /* group allowed read-only control commands */
	const char *block_group;    /* group allowed shared-blocks (a bridge), NULL: root only */
	uint64_t audit_epoch_usec;  /* how often the audit key evolves (seal) */
	uint64_t audit_max_bytes;   /* audit log rotation size */
	unsigned audit_keep;	    /* rotated audit files kept */
	size_t audit_queue_records; /* records held while the log cannot be written (0: default) */
	const char *audit_journal;  /* "auto", "yes", "no" or a socket path (NULL: "no") */
	uint16_t nflog_group;	    /* NFLOG group of decoy hits */
	uint16_t honeypot_port;	    /* listener that makes TCP decoys look open; 0 = drop */
	bool remove_table_on_stop;  /* delete `inet mtd` on a clean stop */
	const char *instances_cgroup;  /* parent cgroup of instances, under the agent's own */
	uint64_t max_clock_error_usec; /* the clock is trusted up to this estimated error */
	const char *clock_state_file;  /* tests: the clock's state from this file, not adjtimex */
	/* --monitor: every detection audited and counted, nothing killed,
	 * quarantined or blocked for one (docs/mtd-agent.8). The fleet takes it
	 * at start (fleet_new); rotation blocks no decoy toucher (its decisions
	 * are recorded as simulated). */
	bool monitor;
	const char *metrics_listen; /* NULL: no listener; else unix:PATH or a loopback ADDR:PORT */
};

struct agent;

/* Opens the audit log (auditing an unclean restart), loads and validates the
 * policy set, binds the control socket. Nothing is half-started on failure. */
int agent_new(sd_event *event, const struct agent_options *options, struct agent **ret_agent);

/* Validate the policy directory whole and apply it atomically; on any error
 * the old set stays in force. source says who asked ("signal", "control").
 * Audited either way. */
int agent_reload(struct agent *agent, const char *source, json_t **ret_result, char **ret_error,
		 json_t **ret_error_details);

/* Clean stop: audits agent-stop, seals the audit epoch, removes the socket. */
void agent_stop(struct agent *agent, const char *reason);
void agent_free(struct agent *agent);

/* Append an audit record of an event (fields stolen), send it to the journal
 * and to `audit show --follow` clients. sync: on disk before returning. When
 * the log cannot be written the record waits in the log's bounded queue and
 * is published when written (returns 0); -ENOBUFS when the queue was full
 * (counted as lost). */
int agent_audit(struct agent *agent, const char *type, json_t *fields, bool sync);
