/* SPDX-License-Identifier: MIT */
#include "agent.h"
#include "agent_internal.h"

#include <errno.h>
#include <malloc.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "audit.h"
#include "control.h"
#include "log.h"
#include "macro.h"
#include "policy.h"
#include "fleet.h"
#include "rotation.h"
#include "clock.h"
#include "schedule.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy_set *, policy_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy_globals *, policy_globals_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct agent *, agent_free)

struct agent {
	struct agent_options options;
	char *socket_path;
	sd_event *event;
	struct policy_set *policies;
	struct policy_globals *globals; /* the global file's, swapped with the set */
	uint64_t policies_loaded_usec;	/* CLOCK_REALTIME */
	uint64_t started_usec;		/* CLOCK_MONOTONIC */
	uint64_t reloads;
	uint64_t reload_failures;
	/* the reload under way: revoked clients' flows stay (mtdctl reload
	 * --keep-connections), and the names of those it revoked */
	bool reload_keep_connections;
	json_t *reload_revoked;
	struct audit_log *audit;
	struct control_server *control;
	struct control_audit *control_audit; /* refusals: one record per uid per window */
	struct audit_show_stats audit_show;
	struct rotation *rotation;
	struct fleet *fleet;
	struct forwarding *forwarding; /* what the host had before the agent */
	struct audit_timer *audit_timer;
	struct clock_trust clock; /* the wall clock's state, checked at every boundary */
	struct metrics *metrics;  /* docs/metrics.md */
	struct metrics_listener *metrics_listener; /* --metrics-listen */
	struct hooks *hooks;			   /* OnEvent= of the global file */
	/* shared-blocks: the bridge's last report and what its decisions did */
	struct control_bridge_report bridge;
	uint64_t bridge_report_usec; /* CLOCK_REALTIME of its last request, 0: none */
	uint64_t bridge_requests, shared_failures;
	struct rotation_shared_result shared_total;
};

/* A written record to the terminal, the hooks and `audit show --follow`
 * clients (the journal has its copy from the log itself). */
static void audit_publish(struct agent *agent, const char *type, uint64_t seq, json_t *fields,
			  const char *line)
{
	log_audit_event(type, seq, fields);
	if (agent->hooks)
		hooks_dispatch(agent->hooks, type,
			       json_string_value(json_object_get(fields, "service")), seq, line);

	if (agent->control) {
		_cleanup_(json_decrefp) json_t *message = json_object();
		_cleanup_(json_decrefp) json_t *records = json_array();
		json_t *record = json_loads(line, 0, NULL);
		_cleanup_free_ char *text = NULL;

		if (message && records && record && json_array_append_new(records, record) == 0 &&
		    json_object_set_new(message, "ok", json_true()) == 0 &&
		    json_object_set(message, "records", records) == 0 &&
		    json_object_set_new(message, "more", json_true()) == 0) {
			text = json_dumps(message, JSON_COMPACT);
			if (text)
				control_server_broadcast(agent->control, text);
		} else
			json_decref(record);
	}
}

/* Records that reached the log from the queue (and the log's own records
 * about the queue): published when they have their seq. */
static void on_audit_written(uint64_t seq, const char *type, json_t *fields, const char *line,
			     void *userdata)
{
	audit_publish(userdata, type, seq, fields, line);
}

/* Events: when the log cannot take the record now it waits in the log's
 * queue (or, the queue full, is counted as lost); the journal gets it now. */
int agent_audit(struct agent *agent, const char *type, json_t *fields, bool sync)
{
	_cleanup_(json_decrefp) json_t *owned = fields ? fields : json_object();
	_cleanup_free_ char *line = NULL, *text = NULL;
	uint64_t seq;
	int r;

	metrics_observe(agent->metrics, type, owned);
	r = audit_log_submit(agent->audit, type, owned, sync, &seq, &line);
	if (r == 0) {
		struct audit_log_status st;

		audit_publish(agent, type, seq, owned, line);
		/* Written, but its fdatasync may have failed: the check of the
		 * file must not wait for the next event. */
		audit_log_get_status(agent->audit, &st);
		if (st.pending)
			audit_timer_kick(agent->audit_timer);
		return 0;
	}
	text = owned ? json_dumps(owned, JSON_COMPACT) : NULL;
	if (r == AUDIT_QUEUED)
		log_warning("audit: %s %s queued: %s cannot be written now", type, text ? text : "",
			    agent->options.audit_log);
	else if (r == -ENOBUFS)
		log_error("audit: %s %s lost: %s cannot be written and the queue is full", type,
			  text ? text : "", agent->options.audit_log);
	else
		log_error("audit: cannot append %s record to %s: %s", type,
			  agent->options.audit_log, strerror(-r));
	audit_timer_kick(agent->audit_timer);
	return r == AUDIT_QUEUED ? 0 : r;
}

/* Records an effect waits for: on disk (fdatasync) before the effect, or
 * the effect does not happen. Never queued. */
static int agent_audit_durable(struct agent *agent, const char *type, json_t *fields)
{
	_cleanup_(json_decrefp) json_t *owned = fields ? fields : json_object();
	_cleanup_free_ char *line = NULL;
	uint64_t seq;
	int r;

	metrics_observe(agent->metrics, type, owned);
	r = audit_log_append(agent->audit, type, owned, true, &seq, &line);
	if (r < 0) {
		log_error("audit: cannot append %s record to %s: %s", type,
			  agent->options.audit_log, strerror(-r));
		audit_timer_kick(agent->audit_timer);
		return r;
	}
	audit_publish(agent, type, seq, owned, line);
	return 0;
}

/* --monitor: what it changes, said once per load of the set. */
static void log_monitor_mode(const struct agent *agent)
{
	if (!agent->options.monitor)
		return;
	log_notice("monitor mode: every detection is audited and counted; nothing is killed, "
		   "quarantined or blocked for it");
	for (size_t i = 0; i < agent->policies->count; i++) {
		const struct policy *p = agent->policies->policies[i];

		if (p->snapshot && p->syscall_default == SYSCALL_DEFAULT_KILL)
			log_notice("monitor mode: service %s: SystemCallDefault=kill is applied as "
				   "errno (the call fails with EPERM, the process lives)",
				   p->name);
	}
}

static json_t *policy_names(const struct policy_set *set)
{
	json_t *names = json_array();

	for (size_t i = 0; set && names && i < set->count; i++)
		json_array_append_new(names, json_string(set->policies[i]->name));
	return names;
}

/* Services in b that are not in a (by name). */
static json_t *policy_names_missing(const struct policy_set *a, const struct policy_set *b)
{
	json_t *names = json_array();

	for (size_t i = 0; b && names && i < b->count; i++)
		if (!a || !policy_set_find(a, b->policies[i]->name))
			json_array_append_new(names, json_string(b->policies[i]->name));
	return names;
}

static json_t *error_lines(const struct policy_errors *errors)
{
	json_t *lines = json_array();

	for (size_t i = 0; lines && i < errors->count; i++) {
		_cleanup_free_ char *line = policy_error_format(&errors->items[i]);
		if (line)
			json_array_append_new(lines, json_string(line));
	}
	return lines;
}

/* The policy set and the global file, validated as one: either both are
 * returned or neither, with every error of both. */
static int load_policies(const struct agent_options *options, struct policy_set **ret_set,
			 struct policy_globals **ret_globals, json_t **ret_errors)
{
	const char *paths[] = {options->policy_dir};
	struct policy_errors set_errors = {0}, globals_errors = {0};
	struct policy_set *set = NULL;
	struct policy_globals *globals = NULL;
	int r, r_globals;

	r = policy_set_load(paths, 1, &set, &set_errors);
	r_globals = policy_globals_load(options->config_file, options->config_file_required,
					&globals, &globals_errors);
	if (r < 0 || r_globals < 0) {
		*ret_errors = error_lines(&set_errors);
		if (r < 0 && set_errors.count == 0)
			json_array_append_new(
			    *ret_errors, json_sprintf("%s: %s", options->policy_dir, strerror(-r)));
		{
			json_t *more = error_lines(&globals_errors);

			json_array_extend(*ret_errors, more);
			json_decref(more);
		}
		if (r_globals < 0 && globals_errors.count == 0)
			json_array_append_new(
			    *ret_errors,
			    json_sprintf("%s: %s", options->config_file, strerror(-r_globals)));
		policy_errors_free(&set_errors);
		policy_errors_free(&globals_errors);
		policy_set_free(set);
		policy_globals_free(globals);
		return r < 0 ? r : r_globals;
	}
	policy_errors_free(&set_errors);
	policy_errors_free(&globals_errors);
	*ret_set = set;
	*ret_globals = globals;
	return 0;
}

static int reload_refused(struct agent *agent, const char *source, json_t *errors, char **ret_error,
			  json_t **ret_error_details)
{
	size_t n = json_array_size(errors);

	agent->reload_failures++;
	for (size_t i = 0; i < n; i++)
		log_error("reload: %s", json_string_value(json_array_get(errors, i)));
	(void)agent_audit(agent, "policy-reload-failed",
			  json_pack("{s:s, s:O, s:s}", "source", source, "errors", errors,
				    "outcome", "previous policy set kept"),
			  true);
	if (asprintf(ret_error, "reload refused: %zu error%s; the previous set stays in force", n,
		     n == 1 ? "" : "s") < 0)
		*ret_error = NULL;
	*ret_error_details = json_incref(errors);
	return -EINVAL;
}

int agent_reload(struct agent *agent, const char *source, json_t **ret_result, char **ret_error,
		 json_t **ret_error_details)
{
	_cleanup_(policy_set_freep) struct policy_set *next = NULL;
	_cleanup_(policy_globals_freep) struct policy_globals *next_globals = NULL;
	_cleanup_(json_decrefp) json_t *errors = NULL;
	struct step_error rotation_error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	json_t *fields;
	int r;

	r = load_policies(&agent->options, &next, &next_globals, &errors);
	if (r < 0)
		return reload_refused(agent, source, errors, ret_error, ret_error_details);

	/* One nftables transaction for the new set; on failure the kernel and the
	 * agent keep the old one. */
	json_decref(agent->reload_revoked);
	agent->reload_revoked = json_array();
	r = rotation_reload_policies(agent->rotation, next, next_globals,
				     agent->reload_keep_connections, &rotation_error);
	if (r < 0) {
		errors =
		    json_pack("[s]", step_error_reason(&rotation_error, r, reason, sizeof(reason)));
		return reload_refused(agent, source, errors, ret_error, ret_error_details);
	}

	fields =
	    json_pack("{s:s, s:o, s:o, s:o, s:o}", "source", source, "services", policy_names(next),
		      "added", policy_names_missing(agent->policies, next), "removed",
		      policy_names_missing(next, agent->policies), "revoked",
		      agent->reload_revoked ? json_incref(agent->reload_revoked) : json_array());
	r = agent_audit_durable(agent, "policy-reload", json_incref(fields));
	if (r < 0) {
		/* A change that cannot be audited is undone. */
		struct step_error undo_error = {0};
		int undo;

		undo = rotation_apply_policies(agent->rotation, agent->policies, agent->globals,
					       &undo_error);
		if (undo < 0)
			log_error("reload: cannot restore the previous rotation: %s",
				  step_error_reason(&undo_error, undo, reason, sizeof(reason)));
		json_decref(fields);
		*ret_error = strdup("reload refused: the audit log cannot be written");
		*ret_error_details = json_array();
		return r;
	}
	{
		/* The fleet lets go of the old set's policies before it is freed. */
		struct policy_set *old = agent->policies;

		agent->policies = TAKE_PTR(next);
		if (agent->fleet)
			fleet_apply_policies(agent->fleet, agent->policies);
		policy_set_free(old);
		policy_globals_free(agent->globals);
		agent->globals = TAKE_PTR(next_globals);
		if (hooks_configure(agent->hooks, agent->globals, agent->policies) < 0)
			log_error("reload: hooks: out of memory; the previous hooks stay");
	}
	agent->policies_loaded_usec = now(CLOCK_REALTIME);
	agent->reloads++;
	log_monitor_mode(agent);
	log_info("reload: %zu service(s) in force", agent->policies->count);
	*ret_result = fields;
	return 0;
}

static json_t *service_summary(const struct policy *p)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "name", p->name, "kind",
			      p->has_backend ? "host" : "managed", "file", p->path);

	if (o && p->has_public_ports) {
		json_object_set_new(
		    o, "public_ports",
		    json_sprintf("%u-%u", p->public_ports.first, p->public_ports.last));
		json_object_set_new(o, "interval_usec", json_integer((json_int_t)p->interval_usec));
	}
	return o;
}

static json_t *control_status(struct agent *agent)
{
	json_t *o = agent->control ? control_server_stats(agent->control) : json_object();

	if (o)
		json_object_set_new(
		    o, "audit_show",
		    json_pack("{s:I, s:I, s:I}", "requests", (json_int_t)agent->audit_show.requests,
			      "lines_read", (json_int_t)agent->audit_show.lines_read,
			      "records_sent", (json_int_t)agent->audit_show.records_sent));
	return o;
}

static json_t *audit_status_json(struct agent *agent)
{
	struct audit_log_status st;
	struct audit_timer_stats ts;
	json_t *o;

	audit_log_get_status(agent->audit, &st);
	audit_timer_get_stats(agent->audit_timer, &ts);
	o = json_pack("{s:s, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "path",
		      agent->options.audit_log, "last_seq",
		      (json_int_t)audit_log_last_seq(agent->audit), "epoch",
		      (json_int_t)audit_log_epoch(agent->audit), "writable", !st.pending, "queued",
		      (json_int_t)st.queued, "queued_total", (json_int_t)st.queued_total,
		      "lost_total", (json_int_t)st.lost_total, "seals", (json_int_t)ts.seals,
		      "seal_failures", (json_int_t)ts.seal_failures);
	if (o && st.error)
		json_object_set_new(o, "error", json_string(strerror(-st.error)));
	if (o && st.journal) {
		json_t *j = json_pack("{s:I, s:I}", "sent", (json_int_t)st.journal_sent, "dropped",
				      (json_int_t)st.journal_dropped);

		if (j && st.journal_error)
			json_object_set_new(j, "error", json_string(strerror(-st.journal_error)));
		json_object_set_new(o, "journal", j ? j : json_null());
	}
	return o;
}

static json_t *shared_status_json(const struct agent *agent);

static json_t *status_json(struct agent *agent)
{
	json_t *services = json_array();

	for (size_t i = 0; services && i < agent->policies->count; i++)
		json_array_append_new(services, service_summary(agent->policies->policies[i]));

	return json_pack(
	    "{s:s, s:i, s:s, s:I, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "mode", agent->options.monitor ? "monitor" : "enforce", "pid", (int)getpid(), "version",
	    MTD_VERSION, "uptime_usec", (json_int_t)(now(CLOCK_MONOTONIC) - agent->started_usec),
	    "policy_dir", agent->options.policy_dir, "policies_loaded_usec",
	    (json_int_t)agent->policies_loaded_usec, "reloads", (json_int_t)agent->reloads,
	    "reload_failures", (json_int_t)agent->reload_failures, "services", services, "audit",
	    audit_status_json(agent), "clock", clock_trust_status(&agent->clock), "rotation",
	    rotation_status(agent->rotation), "control", control_status(agent), "instances",
	    agent->fleet ? fleet_services_json(agent->fleet) : json_array(), "hooks",
	    agent->hooks ? hooks_status_json(agent->hooks) : json_object(), "shared",
	    shared_status_json(agent));
}

static char *render_metrics(void *userdata, size_t *ret_len)
{
	struct agent *agent = userdata;
	struct metrics_sources sources = {
	    .audit = agent->audit,
	    .audit_timer = agent->audit_timer,
	    .clock = &agent->clock,
	    .rotation = agent->rotation,
	    .fleet = agent->fleet,
	};

	return metrics_render(agent->metrics, &sources, ret_len);
}

static void reply_result(struct control_client *client, json_t *result)
{
	_cleanup_free_ char *text = control_reply_ok(result);

	if (!text)
		text = control_reply_error("out of memory");
	(void)control_client_send(client, text);
	json_decref(result);
}

static void reply_error(struct control_client *client, const char *reason)
{
	_cleanup_free_ char *text = control_reply_error(reason);

	(void)control_client_send(client, text);
}

static void handle_policy_list(struct agent *agent, struct control_client *client)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < agent->policies->count; i++)
		json_array_append_new(list, service_summary(agent->policies->policies[i]));
	reply_result(client, list);
}

static void handle_policy_show(struct agent *agent, struct control_client *client, const char *name)
{
	const struct policy *p = policy_set_find(agent->policies, name);
	char reason[128];

	if (!p) {
		snprintf(reason, sizeof(reason), "no service named %s", name);
		reply_error(client, reason);
		return;
	}
	reply_result(client, policy_to_json(p));
}

static void handle_reload(struct agent *agent, struct control_client *client, bool keep_connections)
{
	json_t *result = NULL, *details = NULL;
	int r;
	_cleanup_free_ char *error = NULL;

	(void)sd_notify(0, "RELOADING=1");
	agent->reload_keep_connections = keep_connections;
	r = agent_reload(agent, "control", &result, &error, &details);
	agent->reload_keep_connections = false;
	if (r < 0) {
		_cleanup_free_ char *text = control_reply_error_details(
		    error ? error : "reload refused", "errors", details);
		(void)control_client_send(client, text);
		json_decref(details);
	} else {
		reply_result(client, result);
	}
	(void)sd_notify(0, "READY=1");
}

static void handle_unblock(struct agent *agent, struct control_client *client, const char *address)
{
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];

	if (rotation_unblock(agent->rotation, address, &error) < 0) {
		reply_error(client, step_error_failed(&error)
					? step_error_format(&error, reason, sizeof(reason))
					: "unblock failed");
		return;
	}
	(void)agent_audit(agent, "source-unblocked", json_pack("{s:s}", "source", address), true);
	reply_result(client, json_pack("{s:s}", "unblocked", address));
}

static void add_shared(struct rotation_shared_result *total, const struct rotation_shared_result *r)
{
	total->blocked += r->blocked;
	total->unblocked += r->unblocked;
	total->never_block += r->never_block;
	total->kept_own += r->kept_own;
	total->simulated += r->simulated;
	total->invalid += r->invalid;
	total->ranges_blocked += r->ranges_blocked;
	total->ranges_unblocked += r->ranges_unblocked;
}

static json_t *shared_result_json(const struct rotation_shared_result *r)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "blocked",
			 (json_int_t)r->blocked, "unblocked", (json_int_t)r->unblocked,
			 "never_block", (json_int_t)r->never_block, "kept_own",
			 (json_int_t)r->kept_own, "simulated", (json_int_t)r->simulated, "invalid",
			 (json_int_t)r->invalid, "ranges_blocked", (json_int_t)r->ranges_blocked,
			 "ranges_unblocked", (json_int_t)r->ranges_unblocked);
}

/* `mtdctl status`'s "shared": the bridge's state as it last reported it
 * (connection to the engine, alerts sent, decisions received) and what the
 * agent did with the decisions. */
static json_t *shared_status_json(const struct agent *agent)
{
	const struct control_bridge_report *b = &agent->bridge;
	size_t ranges = 0, intervals = 0;
	json_t *o;

	if (agent->rotation)
		rotation_shared_ranges(agent->rotation, &ranges, &intervals);
	o = json_pack(
	    "{s:I, s:I, s:I, s:o, s:{s:I, s:I}}", "requests", (json_int_t)agent->bridge_requests,
	    "report_usec", (json_int_t)agent->bridge_report_usec, "failures",
	    (json_int_t)agent->shared_failures, "applied", shared_result_json(&agent->shared_total),
	    "ranges", "in_force", (json_int_t)ranges, "intervals", (json_int_t)intervals);

	if (o && b->present)
		json_object_set_new(
		    o, "bridge",
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "engine",
			      b->engine, "lapi", b->lapi, "error", b->error, "since_usec",
			      (json_int_t)b->since_usec, "alerts_sent", (json_int_t)b->alerts_sent,
			      "alerts_failed", (json_int_t)b->alerts_failed, "alerts_queued",
			      (json_int_t)b->alerts_queued, "decisions_new",
			      (json_int_t)b->decisions_new, "decisions_deleted",
			      (json_int_t)b->decisions_deleted, "decisions_skipped",
			      (json_int_t)b->decisions_skipped));
	return o;
}

/* Decisions of the fleet's engine through its bridge (docs/fleet.md): the
 * bans in one transaction, the unbans in another; NeverBlock= wins. The
 * record names counts, not every address: a bridge resyncing thousands of
 * decisions should not flood the log. */
static void handle_shared_blocks(struct agent *agent, struct control_client *client,
				 const struct control_request *request)
{
	struct rotation_shared_ban bans[CONTROL_SHARED_MAX];
	const char *unbans[CONTROL_SHARED_MAX];
	struct rotation_shared_result result = {0};
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	int r = 0;

	agent->bridge_requests++;
	agent->bridge_report_usec = now(CLOCK_REALTIME);
	if (request->bridge.present)
		agent->bridge = request->bridge;
	if (request->n_bans == 0 && request->n_unbans == 0) {
		reply_result(client, shared_result_json(&result));
		return;
	}
	for (size_t i = 0; i < request->n_bans; i++)
		bans[i] = (struct rotation_shared_ban){.address = request->bans[i].address,
						       .block_usec =
							   request->bans[i].seconds * USEC_PER_SEC};
	for (size_t i = 0; i < request->n_unbans; i++)
		unbans[i] = request->unbans[i];
	r = rotation_shared_blocks(agent->rotation, bans, request->n_bans, unbans,
				   request->n_unbans, &result, &error);
	add_shared(&agent->shared_total, &result);
	if (r < 0) {
		agent->shared_failures++;
		step_error_reason(&error, r, reason, sizeof(reason));
		log_error("shared blocks: %s", reason);
		reply_error(client, reason);
		return;
	}
	(void)agent_audit(agent, "shared-blocks",
			  json_pack("{s:s, s:I, s:I, s:o}", "engine",
				    agent->bridge.present ? agent->bridge.engine : "", "bans",
				    (json_int_t)request->n_bans, "unbans",
				    (json_int_t)request->n_unbans, "applied",
				    shared_result_json(&result)),
			  false);
	reply_result(client, shared_result_json(&result));
}

static void handle_quarantine_command(struct agent *agent, struct control_client *client,
				      const struct control_peer *peer,
				      const struct control_request *request)
{
	_cleanup_free_ char *message = NULL;
	json_t *result = NULL;
	char reason[128];
	int r;

	if (!agent->fleet) {
		reply_error(client, "no managed services run on this agent");
		return;
	}
	switch (request->command) {
	case CONTROL_QUARANTINE:
		r = fleet_quarantine(
		    agent->fleet, request->target,
		    request->reason[0] ? request->reason : "operator request",
		    json_pack("{s:i, s:i}", "uid", (int)peer->uid, "pid", (int)peer->pid),
		    &message);
		if (r == 0)
			result = json_pack("{s:s}", "message", message ? message : "quarantining");
		break;
	case CONTROL_REPLACE:
		r = fleet_replace(
		    agent->fleet, request->target,
		    json_pack("{s:i, s:i}", "uid", (int)peer->uid, "pid", (int)peer->pid),
		    &message);
		if (r == 0)
			result = json_pack("{s:s}", "message", message ? message : "replacing");
		break;
	case CONTROL_RELEASE:
		r = fleet_release(agent->fleet, request->target);
		if (r == 0)
			result = json_pack("{s:s}", "released", request->target);
		break;
	default:
		r = fleet_inspect(agent->fleet, request->target, request->verify, &result);
		break;
	}
	if (r < 0) {
		snprintf(reason, sizeof(reason), "%s: %s", request->target,
			 r == -ENOENT  ? (request->command == CONTROL_QUARANTINE ||
						  request->command == CONTROL_REPLACE
					      ? "no such instance or service with an instance"
					      : "no such quarantined instance")
			 : r == -EBUSY ? "not serving, or a replacement is under way already"
				       : strerror(-r));
		reply_error(client, reason);
		return;
	}
	reply_result(client, result);
}

static void handle_audit_show(struct agent *agent, struct control_client *client,
			      const struct control_request *request)
{
	char reason[CONTROL_REASON_MAX];
	int r;

	r = audit_show_start(client, agent->audit, agent->options.audit_log,
			     agent->options.audit_keep, request->since, request->follow,
			     &agent->audit_show);
	if (r < 0 && r != -ECONNRESET) {
		snprintf(reason, sizeof(reason), "audit-show: cannot read %s: %s",
			 agent->options.audit_log, strerror(-r));
		reply_error(client, reason);
	}
}

static void on_control_request(struct control_client *client, const struct control_peer *peer,
			       const struct control_request *request, void *userdata)
{
	struct agent *agent = userdata;
	const char *command = control_command_name(request->command);

	/* The server has checked the peer's credentials (control_peer_may).
	 * A bridge's report alone changes nothing: not worth a synced record. */
	if (control_command_is_mutating(request->command) &&
	    !(request->command == CONTROL_SHARED_BLOCKS && request->n_bans == 0 &&
	      request->n_unbans == 0)) {
		int r = agent_audit_durable(agent, "control-request",
					    json_pack("{s:s, s:i, s:i}", "command", command, "uid",
						      (int)peer->uid, "pid", (int)peer->pid));

		if (r < 0) {
			/* The refusal itself is an event: it waits for the log. */
			(void)agent_audit(agent, "control-refused",
					  json_pack("{s:s, s:i, s:i, s:s}", "command", command,
						    "uid", (int)peer->uid, "pid", (int)peer->pid,
						    "reason", strerror(-r)),
					  true);
			reply_error(client, "refused: the audit log cannot be written");
			return;
		}
	}

	switch (request->command) {
	case CONTROL_STATUS:
		reply_result(client, status_json(agent));
		/* With tens of thousands of clients the status is tens of MB of
		 * small JSON objects, all freed now: give their pages back */
		(void)malloc_trim(0);
		break;
	case CONTROL_POLICY_LIST:
		handle_policy_list(agent, client);
		break;
	case CONTROL_POLICY_SHOW:
		handle_policy_show(agent, client, request->name);
		break;
	case CONTROL_RELOAD:
		handle_reload(agent, client, request->keep_connections);
		break;
	case CONTROL_AUDIT_SHOW:
		handle_audit_show(agent, client, request);
		break;
	case CONTROL_UNBLOCK:
		handle_unblock(agent, client, request->address);
		break;
	case CONTROL_METRICS: {
		_cleanup_free_ char *text = render_metrics(agent, NULL);

		if (text)
			reply_result(client, json_string(text));
		else
			reply_error(client, "out of memory");
		break;
	}
	case CONTROL_INSTANCES:
		reply_result(client,
			     agent->fleet ? fleet_instances_json(agent->fleet) : json_array());
		break;
	case CONTROL_QUARANTINE:
	case CONTROL_REPLACE:
	case CONTROL_RELEASE:
	case CONTROL_INSPECT:
		handle_quarantine_command(agent, client, peer, request);
		break;
	case CONTROL_SHARED_BLOCKS:
		handle_shared_blocks(agent, client, request);
		break;
	case _CONTROL_COMMAND_MAX:
		reply_error(client, "unknown command");
		break;
	}
}

/* Refusals are not fdatasync'd: a refusal has no effect to make durable
 * first, and syncs in the refusal path would be the attacker's to multiply. */
static void audit_control_denied(json_t *fields, void *userdata)
{
	(void)agent_audit(userdata, "control-denied", fields, false);
}

static void on_control_refusal(const struct control_peer *peer, enum control_refusal kind,
			       const char *command, const char *reason, void *userdata)
{
	struct agent *agent = userdata;

	control_audit_refusal(agent->control_audit, peer, kind, command, reason);
}

/* Every packet a decoy reports is a record; what it did to its source is in
 * "action" (docs/nftables.md, "Who a decoy blocks"). */
static void on_decoy_hit(const struct rotation_decoy_event *hit, const char *const *reached,
			 size_t n_reached, void *userdata)
{
	struct agent *agent = userdata;
	json_t *instances = json_array();

	for (size_t i = 0; instances && i < n_reached; i++)
		json_array_append_new(instances, json_string(reached[i]));

	log_warning("decoy hit: %s touched %s/%u%s%s (%s)", hit->source, hit->proto,
		    (unsigned)hit->port, hit->service ? " of service " : "",
		    hit->service ? hit->service : "", hit->action);
	(void)agent_audit(agent, "decoy-hit",
			  json_pack("{s:s?, s:s, s:s, s:i, s:s, s:s, s:o}", "service", hit->service,
				    "source", hit->source, "proto", hit->proto, "port",
				    (int)hit->port, "evidence", hit->evidence, "action",
				    hit->action, "reached_instances", instances),
			  true);
}

static void on_decoy_block(const struct rotation_decoy_event *block, void *userdata)
{
	struct agent *agent = userdata;
	uint64_t seconds = (block->block_usec + USEC_PER_SEC - 1) / USEC_PER_SEC;
	json_t *fields = json_pack("{s:s?, s:s, s:s, s:i, s:s, s:I, s:i}", "service",
				   block->service, "source", block->source, "proto", block->proto,
				   "port", (int)block->port, "evidence", block->evidence,
				   "block_sec", (json_int_t)seconds, "strike", (int)block->strike);

	if (block->error) {
		log_error("decoy: cannot block %s: %s", block->source, block->error);
		json_object_set_new(fields, "reason", json_string(block->error));
		(void)agent_audit(agent, "source-block-failed", fields, true);
		return;
	}
	if (block->simulated) {
		log_notice("decoy (monitor): %s would be blocked for %llus (strike %u)",
			   block->source, (unsigned long long)seconds, block->strike);
		json_object_set_new(fields, "simulated", json_true());
	} else
		log_warning("decoy: %s blocked for %llus (strike %u, %s)", block->source,
			    (unsigned long long)seconds, block->strike, block->evidence);
	(void)agent_audit(agent, "source-blocked", fields, true);
}

static void on_egress_drop(const char *link, const char *source, const char *destination,
			   uint8_t proto, uint16_t port, bool spoofed, void *userdata)
{
	struct agent *agent = userdata;

	if (!agent->fleet)
		return;
	fleet_egress_drop(agent->fleet, link,
			  json_pack("{s:s?, s:s, s:s, s:i, s:i, s:b}", "link", link, "source",
				    source, "destination", destination, "proto", (int)proto, "port",
				    (int)port, "spoofed", spoofed));
}

static void on_client_revoked(const char *service, const char *client, size_t cut_flows,
			      bool kept_connections, void *userdata)
{
	struct agent *agent = userdata;
	char name[POLICY_NAME_MAX + SCHEDULE_MAX_CLIENT_NAME + 2];

	log_notice("reload: client %s of %s revoked (%zu connection%s cut%s)", client, service,
		   cut_flows, cut_flows == 1 ? "" : "s",
		   kept_connections ? ", --keep-connections" : "");
	snprintf(name, sizeof(name), "%s/%s", service, client);
	if (agent->reload_revoked)
		json_array_append_new(agent->reload_revoked, json_string(name));
	(void)agent_audit(agent, "client-revoked",
			  json_pack("{s:s, s:s, s:I, s:b}", "service", service, "client", client,
				    "cut_flows", (json_int_t)cut_flows, "kept_connections",
				    kept_connections),
			  true);
}

static void on_rotation_failed(const char *reason, void *userdata)
{
	struct agent *agent = userdata;

	(void)agent_audit(
	    agent, "rotation-failed",
	    json_pack("{s:s, s:s}", "reason", reason, "outcome", "previous ports stay in force"),
	    true);
}

/* Knocks (docs/schedule.md, "Knock packets"). An admission and a first
 * connection are records of their own; refusals come as summaries, at most one
 * a second per service and reason. None is fdatasync'd on its own (the next
 * synced record or seal does it): the admission is in force before its record
 * either way, and a sync per knock would let knocks stall the loop that
 * serves the next ones (and the boundaries) for milliseconds each. */
static void on_client_admitted(const struct rotation_client_event *e, void *userdata)
{
	struct agent *agent = userdata;

	if (e->error) {
		log_error("knock: cannot admit %s of %s from %s: %s", e->client, e->service,
			  e->source, e->error);
		(void)agent_audit(agent, "client-admit-failed",
				  json_pack("{s:s, s:s, s:s, s:i, s:I, s:s}", "service", e->service,
					    "client", e->client, "source", e->source, "door",
					    (int)e->door, "epoch", (json_int_t)e->epoch, "reason",
					    e->error),
				  false);
		return;
	}
	(void)agent_audit(agent, "client-admitted",
			  json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "service", e->service,
				    "client", e->client, "source", e->source, "door", (int)e->door,
				    "epoch", (json_int_t)e->epoch, "until_usec",
				    (json_int_t)e->until_usec),
			  false);
}

static void on_knocks_refused(const char *service, const char *reason, uint64_t count,
			      void *userdata)
{
	(void)agent_audit(userdata, "knock-refused",
			  json_pack("{s:s, s:s, s:I}", "service", service, "reason", reason,
				    "count", (json_int_t)count),
			  false);
}

static void on_client_connected(const struct rotation_client_event *e, void *userdata)
{
	(void)agent_audit(userdata, "client-connected",
			  json_pack("{s:s?, s:s?, s:s, s:i, s:I}", "service", e->service, "client",
				    e->client, "source", e->source, "door", (int)e->door, "epoch",
				    (json_int_t)e->epoch),
			  false);
}

/* The wall clock's state, read at start and after every boundary: a change
 * (trusted, unsynchronised, error above the bound, unreadable) is one record;
 * an unchanged state none. The ports keep following the clock either way:
 * the agent cannot correct it, it says so (docs/schedule.md). */
static void check_clock(struct agent *agent)
{
	bool trusted;

	if (!clock_trust_check(&agent->clock))
		return;
	trusted = agent->clock.state == CLOCK_TRUSTED;
	if (trusted)
		log_notice("the clock is trusted again: %s", agent->clock.reason);
	else
		log_warning("the clock is not trusted (ports follow it all the same): %s",
			    agent->clock.reason);
	(void)agent_audit(agent, trusted ? "clock-trusted" : "clock-untrusted",
			  clock_trust_fields(&agent->clock), true);
}

static void on_boundary(void *userdata)
{
	check_clock(userdata);
}

static void on_clock_set(void *userdata)
{
	struct agent *agent = userdata;

	log_notice("the realtime clock was set: ports and boundaries recomputed");
	(void)agent_audit(agent, "clock-set",
			  json_pack("{s:s}", "outcome", "ports and boundaries recomputed"), true);
	check_clock(agent);
}

/* Fail closed: an agent that cannot program its table does not start. */
static int start_rotation(struct agent *agent)
{
	struct rotation_options options = {
	    .nflog_group = agent->options.nflog_group,
	    .egress_nflog_group = (uint16_t)(agent->options.nflog_group + 1),
	    .knock_nflog_group = (uint16_t)(agent->options.nflog_group + 2),
	    .honeypot_port = agent->options.honeypot_port,
	    .remove_on_stop = agent->options.remove_table_on_stop,
	    .monitor = agent->options.monitor,
	    .forward_guard4 = !forwarding_was_on(agent->forwarding, AF_INET),
	    .forward_guard6 = !forwarding_was_on(agent->forwarding, AF_INET6),
	};
	struct rotation_hooks hooks = {
	    .on_decoy_hit = on_decoy_hit,
	    .on_decoy_block = on_decoy_block,
	    .on_apply_failed = on_rotation_failed,
	    .on_client_revoked = on_client_revoked,
	    .on_egress_drop = on_egress_drop,
	    .on_clock_set = on_clock_set,
	    .on_boundary = on_boundary,
	    .on_client_admitted = on_client_admitted,
	    .on_knocks_refused = on_knocks_refused,
	    .on_client_connected = on_client_connected,
	    .userdata = agent,
	};
	struct step_error error = {0};
	char reason[STEP_ERROR_FORMAT_MAX];
	int r;

	r = rotation_new(agent->event, &options, &hooks, &agent->rotation);
	if (r < 0) {
		log_error("rotation: cannot listen for decoy hits (NFLOG group %u, honeypot port "
			  "%u): %s",
			  (unsigned)options.nflog_group, (unsigned)options.honeypot_port,
			  strerror(-r));
		(void)agent_audit(agent, "rotation-failed",
				  json_pack("{s:s, s:s}", "reason",
					    "NFLOG group or honeypot port unavailable", "outcome",
					    "agent not started"),
				  true);
		return r;
	}
	r = rotation_apply_policies(agent->rotation, agent->policies, agent->globals, &error);
	if (r < 0) {
		step_error_reason(&error, r, reason, sizeof(reason));
		log_error("rotation: %s", reason);
		(void)agent_audit(
		    agent, "rotation-failed",
		    json_pack("{s:s, s:s}", "reason", reason, "outcome", "agent not started"),
		    true);
		return r;
	}
	return 0;
}

static int hooks_audit(const char *type, json_t *fields, void *userdata)
{
	return agent_audit(userdata, type, fields, false);
}

static int fleet_audit(const char *type, json_t *fields, bool sync, void *userdata)
{
	return agent_audit(userdata, type, fields, sync);
}

/* Managed services need cgroups; an agent that only rotates host services
 * runs without them. Fail closed: with managed services and no cgroups, the
 * agent does not start. */
static int start_fleet(struct agent *agent)
{
	struct fleet_hooks hooks = {.audit = fleet_audit, .userdata = agent};
	_cleanup_free_ char *error = NULL;
	bool managed = false;
	int r;

	for (size_t i = 0; i < agent->policies->count; i++)
		managed |= agent->policies->policies[i]->snapshot != NULL;
	r = fleet_new(agent->event, agent->rotation, agent->forwarding,
		      agent->options.instances_cgroup, agent->options.state_dir,
		      agent->options.monitor, &hooks, &agent->fleet, &error);
	if (r < 0) {
		log_error("instances: %s", error ? error : strerror(-r));
		if (managed) {
			(void)agent_audit(agent, "fleet-failed",
					  json_pack("{s:s, s:s}", "reason",
						    error ? error : strerror(-r), "outcome",
						    "agent not started"),
					  true);
			return r;
		}
		log_warning("instances: managed services will be refused until a restart");
		return 0;
	}
	fleet_apply_policies(agent->fleet, agent->policies);
	return 0;
}

static gid_t lookup_read_group(const char *name)
{
	struct group *g = name ? getgrnam(name) : NULL;

	return g ? g->gr_gid : (gid_t)-1;
}

/* Where the journal copies of the audit records go: "auto" is journald
 * when systemd started the agent (it sets INVOCATION_ID for every unit). */
static const char *audit_journal_socket(const char *mode)
{
	if (!mode || streq(mode, "no"))
		return NULL;
	if (streq(mode, "yes"))
		return AUDIT_JOURNAL_SOCKET;
	if (streq(mode, "auto"))
		return getenv("INVOCATION_ID") && access(AUDIT_JOURNAL_SOCKET, F_OK) == 0
			   ? AUDIT_JOURNAL_SOCKET
			   : NULL;
	return mode;
}

static int open_audit(struct agent *agent)
{
	struct audit_options options = {
	    .max_bytes = agent->options.audit_max_bytes,
	    .keep = agent->options.audit_keep,
	    .queue_records = agent->options.audit_queue_records,
	    .journal_socket = audit_journal_socket(agent->options.audit_journal),
	};
	struct audit_open_report report = {0};
	int r;

	r = audit_log_open(agent->options.audit_log, agent->options.state_dir, &options,
			   &agent->audit, &report);
	if (r < 0) {
		log_error("audit: cannot open %s (key in %s): %s", agent->options.audit_log,
			  agent->options.state_dir,
			  r == -EPERM ? "audit.key must be a regular file owned by root, not "
					"accessible to group or others"
				      : strerror(-r));
		return r;
	}
	audit_log_set_written_callback(agent->audit, on_audit_written, agent);
	if (report.created_key && report.verify_key_path)
		log_notice("audit: created a new audit key; the verification key is %s — copy "
			   "it off this host and delete it here",
			   report.verify_key_path);
	if (report.unclean_restart)
		log_warning("audit: the previous run did not stop cleanly%s",
			    report.torn_bytes ? " (a torn last record was kept in the "
						"unclean-restart record)"
					      : "");
	audit_open_report_done(&report);
	return 0;
}

int agent_new(sd_event *event, const struct agent_options *options, struct agent **ret_agent)
{
	_cleanup_(json_decrefp) json_t *errors = NULL;
	_cleanup_(agent_freep) struct agent *agent = NULL;
	gid_t read_group;
	int r;

	agent = calloc(1, sizeof(*agent));
	if (!agent)
		return -ENOMEM;
	agent->options = *options;
	agent->event = sd_event_ref(event);
	agent->started_usec = now(CLOCK_MONOTONIC);
	r = metrics_new(&agent->metrics);
	if (r < 0)
		return r;
	clock_trust_init(&agent->clock, options->max_clock_error_usec, options->clock_state_file);

	r = open_audit(agent);
	if (r < 0)
		return r;

	r = load_policies(options, &agent->policies, &agent->globals, &errors);
	if (r < 0) {
		for (size_t i = 0; i < json_array_size(errors); i++)
			log_error("%s", json_string_value(json_array_get(errors, i)));
		log_error("refusing to start: the policy set in %s or %s is invalid",
			  options->policy_dir, options->config_file);
		(void)agent_audit(
		    agent, "policy-load-failed",
		    json_pack("{s:s, s:O}", "policy_dir", options->policy_dir, "errors", errors),
		    true);
		return r;
	}
	agent->policies_loaded_usec = now(CLOCK_REALTIME);

	r = forwarding_load(options->state_dir, &agent->forwarding);
	if (r < 0) {
		log_error(
		    "forwarding: cannot read the host's settings (or %s/forwarding.saved): %s",
		    options->state_dir, strerror(-r));
		return r;
	}
	r = start_rotation(agent);
	if (r < 0)
		return r;

	if (asprintf(&agent->socket_path, "%s/control.sock", options->runtime_dir) < 0) {
		agent->socket_path = NULL;
		return -ENOMEM;
	}
	(void)mkdir(options->runtime_dir, 0755);
	read_group = lookup_read_group(options->read_group);
	r = control_audit_new(event, audit_control_denied, agent, &agent->control_audit);
	if (r < 0)
		return r;
	r = control_server_new(event, agent->socket_path, read_group, on_control_request,
			       on_control_refusal, agent, &agent->control);
	if (r < 0) {
		log_error("control: cannot listen on %s: %s", agent->socket_path, strerror(-r));
		return r;
	}
	control_server_set_block_group(agent->control, lookup_read_group(options->block_group));

	r = audit_timer_new(event, agent->audit, options->audit_epoch_usec, &agent->audit_timer);
	if (r < 0)
		return r;

	if (options->metrics_listen) {
		struct metrics_address address;
		char reason[256];

		r = metrics_address_parse(options->metrics_listen, &address, reason,
					  sizeof(reason));
		if (r < 0) {
			log_error("--metrics-listen %s: %s", options->metrics_listen, reason);
			return r;
		}
		r = metrics_listener_new(event, &address, read_group, render_metrics, agent,
					 &agent->metrics_listener);
		if (r < 0) {
			log_error("--metrics-listen %s: cannot listen: %s", options->metrics_listen,
				  strerror(-r));
			return r;
		}
	}

	r = hooks_new(event, hooks_audit, agent, &agent->hooks);
	if (r >= 0)
		r = hooks_configure(agent->hooks, agent->globals, agent->policies);
	if (r < 0) {
		log_error("hooks: cannot start: %s", strerror(-r));
		return r;
	}

	r = start_fleet(agent);
	if (r < 0)
		return r;

	r = agent_audit_durable(agent, "agent-start",
				json_pack("{s:i, s:s, s:s, s:o, s:s}", "pid", (int)getpid(),
					  "version", MTD_VERSION, "policy_dir", options->policy_dir,
					  "services", policy_names(agent->policies), "mode",
					  options->monitor ? "monitor" : "enforce"));
	if (r < 0)
		return r;
	log_monitor_mode(agent);
	check_clock(agent);

	*ret_agent = TAKE_PTR(agent);
	return 0;
}

void agent_stop(struct agent *agent, const char *reason)
{
	struct audit_log_status st;
	int r;

	control_server_free(TAKE_PTR(agent->control));
	metrics_listener_free(TAKE_PTR(agent->metrics_listener));
	/* The loop ends: hooks still running are killed, and the records from
	 * here on start none (docs/hooks.md). */
	hooks_free(TAKE_PTR(agent->hooks));
	/* What the last windows counted is not lost. */
	control_audit_flush(agent->control_audit);
	fleet_free(TAKE_PTR(agent->fleet));
	rotation_free(TAKE_PTR(agent->rotation));
	/* The instances are gone: the host forwards as it did before. */
	if (forwarding_restore(agent->forwarding) < 0)
		log_error("forwarding: cannot restore the host's settings; they are kept in "
			  "%s/forwarding.saved for the next start",
			  agent->options.state_dir);
	audit_timer_free(TAKE_PTR(agent->audit_timer));
	(void)agent_audit(agent, "agent-stop", json_pack("{s:s}", "reason", reason), true);
	r = audit_log_seal(agent->audit); /* writes what is queued first */
	if (r < 0) {
		audit_log_get_status(agent->audit, &st);
		log_error("audit: cannot seal the last epoch: %s; %zu queued record(s) are lost "
			  "with the process (they are in the journal)",
			  strerror(-r), st.queued);
	}
}

void agent_free(struct agent *agent)
{
	if (!agent)
		return;
	control_server_free(agent->control);
	metrics_listener_free(agent->metrics_listener);
	fleet_free(agent->fleet);
	rotation_free(agent->rotation);
	json_decref(agent->reload_revoked);
	control_audit_free(agent->control_audit);
	forwarding_free(agent->forwarding);
	audit_timer_free(agent->audit_timer);
	hooks_free(agent->hooks);
	audit_log_close(agent->audit);
	policy_set_free(agent->policies);
	policy_globals_free(agent->globals);
	metrics_free(agent->metrics);
	free(agent->socket_path);
	sd_event_unref(agent->event);
	free(agent);
}
