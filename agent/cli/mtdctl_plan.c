/* SPDX-License-Identifier: MIT */
/* mtdctl policy check --plan: what a policy set that loaded would do, with
 * nothing applied and no agent: each service's public port now and from its
 * next boundary, its grace port and decoys (the keyed schedule, computed as
 * the agent does but without the host's bound ports, which are not known
 * offline), its envelope or backend, and its limits. The human text is read
 * out of policy_to_json(), so both outputs name the same values. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mtdctl.h"
#include "policy.h"
#include "rotator.h"

#define PLAN_NOTE                                                                                  \
	"the agent also skips a port bound on its host, which is not known offline: there a "      \
	"port or decoy may be the next candidate instead"

struct service_plan {
	bool rotates;
	struct schedule_result now;
	struct schedule_result next; /* at now.next_boundary_usec */
	char *error;		     /* malloc'd: why there is no schedule (a rotating service) */
};

/* The agent's grace (rotation.c): to the microsecond, the previous epoch's
 * port while inside Grace= after the boundary and != the port. */
static uint16_t grace_port_at(const struct policy *p, const struct schedule_result *r,
			      uint64_t at_usec)
{
	if (r->prev_port && r->prev_port != r->port && at_usec - r->boundary_usec < p->grace_usec)
		return r->prev_port;
	return 0;
}

/* Fills ret for one service; a key that cannot be read or a schedule that
 * cannot be computed is ret->error, not a failure of the whole plan. Returns
 * -ENOMEM only. */
static int plan_service(const struct policy *p, uint64_t at_usec, struct service_plan *ret)
{
	struct service_plan plan = {.rotates = p->has_public_ports && p->key_file};
	struct schedule_params params;
	uint8_t *key = NULL;
	size_t key_len = 0;
	char *error = NULL;
	int r;

	if (!plan.rotates) {
		*ret = plan;
		return 0;
	}
	r = policy_read_key_file(p->key_file, &key, &key_len, &error);
	if (r < 0) {
		if (!error && asprintf(&error, "%s: %s", p->key_file, strerror(-r)) < 0)
			return -ENOMEM;
		plan.error = error;
		*ret = plan;
		return 0;
	}
	params = (struct schedule_params){
	    .key = key,
	    .key_len = key_len,
	    .service = p->name,
	    .first = p->public_ports.first,
	    .last = p->public_ports.last,
	    .interval_sec = p->interval_usec / USEC_PER_SEC,
	    .grace_sec = 0, /* decided below, to the microsecond, as the agent does */
	    .n_decoys = p->decoys,
	};
	r = schedule_compute(&params, at_usec, &plan.now);
	if (r >= 0)
		r = schedule_compute(&params, plan.now.next_boundary_usec, &plan.next);
	explicit_bzero(key, key_len);
	free(key);
	if (r < 0) {
		if (asprintf(&plan.error, "cannot compute the schedule: %s", strerror(-r)) < 0)
			return -ENOMEM;
		*ret = plan;
		return 0;
	}
	plan.now.grace_port = grace_port_at(p, &plan.now, at_usec);
	plan.next.grace_port = grace_port_at(p, &plan.next, plan.now.next_boundary_usec);
	*ret = plan;
	return 0;
}

static json_t *ports_array(const uint16_t *ports, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(ports[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *epoch_json(const struct schedule_result *r)
{
	return json_pack("{s:I, s:i, s:i, s:o, s:I, s:I}", "epoch", (json_int_t)r->epoch, "port",
			 r->port, "grace_port", r->grace_port, "decoys",
			 ports_array(r->decoys, r->n_decoys), "boundary_usec",
			 (json_int_t)r->boundary_usec, "next_boundary_usec",
			 (json_int_t)r->next_boundary_usec);
}

static json_t *service_plan_json(const struct policy *p, const struct service_plan *plan)
{
	json_t *schedule = json_null();

	if (plan->rotates && !plan->error)
		schedule = json_pack("{s:o, s:o}", "now", epoch_json(&plan->now), "next",
				     epoch_json(&plan->next));
	return json_pack("{s:s, s:s, s:b, s:o, s:s?, s:o}", "service", p->name, "kind",
			 p->has_backend ? "host" : "managed", "rotates", plan->rotates, "schedule",
			 schedule, "error", plan->error, "policy", policy_to_json(p));
}

/* --- the human text, read out of policy_to_json() ------------------------- */

/* o[a][b] if a string, else fallback (a null: not set). */
static const char *str_at(json_t *o, const char *a, const char *b, const char *fallback)
{
	json_t *v = json_object_get(json_object_get(o, a), b);

	return json_is_string(v) ? json_string_value(v) : fallback;
}

/* "a b c" of a JSON array of strings; "(none)" when empty. */
static void print_words(json_t *a, const char *empty)
{
	size_t i;
	json_t *v;

	if (json_array_size(a) == 0) {
		fputs(empty, stdout);
		return;
	}
	json_array_foreach(a, i, v)
	{
		const char *s = json_string_value(v);
		bool quote = s && strpbrk(s, " \t\"");

		printf("%s%s%s%s", i ? " " : "", quote ? "'" : "", s ? s : "?", quote ? "'" : "");
	}
}

static void print_ports(const uint16_t *ports, size_t n)
{
	if (n == 0)
		fputs("none", stdout);
	for (size_t i = 0; i < n; i++)
		printf("%s%u", i ? " " : "", ports[i]);
}

static void print_schedule(const struct policy *p, const struct service_plan *plan, json_t *policy)
{
	char when[64], grace[POLICY_TIMESPAN_MAX];

	if (!plan->rotates) {
		printf("  port:        none (no [Rotation])\n");
		return;
	}
	printf("  ports:       %s, a new one every %s\n",
	       json_string_value(json_object_get(
		   json_object_get(json_object_get(policy, "rotation"), "public_ports"), "text")),
	       str_at(policy, "rotation", "interval", "?"));
	if (plan->error) {
		printf("  port:        unknown: %s\n", plan->error);
		return;
	}
	mtdctl_format_utc(plan->now.boundary_usec, when, sizeof(when));
	printf("  port now:    %u (epoch %llu, since %s)\n", plan->now.port,
	       (unsigned long long)plan->now.epoch, when);
	if (plan->now.grace_port)
		printf("  grace port:  %u (the previous epoch's, open for %s after the boundary)\n",
		       plan->now.grace_port,
		       policy_format_timespan(grace, sizeof(grace), p->grace_usec));
	else
		printf("  grace port:  none\n");
	printf("  decoys now:  ");
	print_ports(plan->now.decoys, plan->now.n_decoys);
	putchar('\n');
	mtdctl_format_utc(plan->now.next_boundary_usec, when, sizeof(when));
	printf("  next port:   %u from %s (epoch %llu)", plan->next.port, when,
	       (unsigned long long)plan->next.epoch);
	if (plan->next.grace_port)
		printf(", %u kept for %s of grace", plan->next.grace_port,
		       policy_format_timespan(grace, sizeof(grace), p->grace_usec));
	printf("\n  next decoys: ");
	print_ports(plan->next.decoys, plan->next.n_decoys);
	putchar('\n');
}

static void print_envelope(json_t *policy)
{
	json_t *service = json_object_get(policy, "service");
	json_t *envelope = json_object_get(policy, "envelope");
	json_t *egress = json_object_get(envelope, "egress");
	json_t *tasks = json_object_get(envelope, "tasks_max");
	json_t *rule;
	size_t i;

	printf("  snapshot:    %s\n  exec:        ", str_at(policy, "service", "snapshot", "?"));
	print_words(json_object_get(service, "exec"), "(none)");
	printf("\n  user:        %s, group %s\n",
	       str_at(policy, "service", "user", "root (no User=)"),
	       str_at(policy, "service", "group", "(the user's)"));
	printf("  writable:    ");
	print_words(json_object_get(envelope, "writable"), "nothing");
	printf("\n  egress:      ");
	if (json_array_size(egress) == 0)
		fputs("none", stdout);
	json_array_foreach(egress, i, rule)
	{
		const char *destination = json_string_value(json_object_get(rule, "destination"));

		printf("%s%s/%s %s", i ? ", " : "",
		       json_string_value(json_object_get(rule, "proto")),
		       json_string_value(json_object_get(json_object_get(rule, "ports"), "text")),
		       destination ? destination : "anywhere");
	}
	printf("\n  syscalls:    ");
	print_words(json_object_get(envelope, "system_calls"), "(none listed)");
	printf(" (others: %s; on a violation: %s",
	       str_at(policy, "envelope", "system_call_default", "?"),
	       str_at(policy, "envelope", "on_syscall_violation", "?"));
	if (json_array_size(json_object_get(envelope, "violation_system_calls"))) {
		printf("; violations: ");
		print_words(json_object_get(envelope, "violation_system_calls"), "");
	}
	printf(")\n  cgroup:      MemoryMax=%s TasksMax=",
	       str_at(policy, "envelope", "memory_max", "?"));
	if (json_is_integer(tasks))
		printf("%lld", (long long)json_integer_value(tasks));
	else
		printf("%s", json_string_value(tasks));
	printf(" CPUQuota=%s\n", str_at(policy, "envelope", "cpu_quota", "?"));
	printf("  lifetime:    MaxLifetime=%s MaxLifetimeJitter=%s StandbyInstances=%lld\n",
	       str_at(policy, "service", "max_lifetime", "?"),
	       str_at(policy, "service", "max_lifetime_jitter", "?"),
	       (long long)json_integer_value(json_object_get(service, "standby_instances")));
	printf("  response:    OnCompromise=%s OnUnhealthy=%s%s\n",
	       str_at(policy, "service", "on_compromise", "?"),
	       str_at(policy, "service", "on_unhealthy", "?"),
	       streq(str_at(policy, "service", "on_compromise", ""), "alert")
		   ? " (detections audited and counted, not acted on)"
		   : "");
}

/* Who the service's decoys never block: its own NeverBlock= and the global
 * file's, and how long their blocks last. */
static void print_decoy_blocks(json_t *policy, json_t *globals)
{
	json_t *mine = json_object_get(json_object_get(policy, "rotation"), "never_block");
	json_t *all = json_object_get(globals, "never_block");

	printf("  never block: ");
	print_words(mine, "none");
	printf(" (NeverBlock=), ");
	print_words(all, "none");
	printf(" (global file)\n");
	printf("  decoy block: DecoyBlock=%s, x%lld per repeat within DecoyRepeatWindow=%s, "
	       "up to DecoyBlockMax=%s\n",
	       str_at(policy, "rotation", "decoy_block", "?"),
	       (long long)json_integer_value(
		   json_object_get(json_object_get(policy, "rotation"), "decoy_block_factor")),
	       str_at(policy, "rotation", "decoy_repeat_window", "?"),
	       str_at(policy, "rotation", "decoy_block_max", "?"));
}

static void print_service(const struct policy *p, const struct service_plan *plan, json_t *policy,
			  json_t *globals)
{
	printf("\n%s (%s service, %s)\n", p->name, p->has_backend ? "host" : "managed", p->path);
	print_schedule(p, plan, policy);
	if (p->decoys)
		print_decoy_blocks(policy, globals);
	if (p->has_backend)
		printf("  backend:     %s\n", str_at(policy, "service", "backend", "?"));
	else
		print_envelope(policy);
	printf("  limits:      ReplaceBurst=%lld ReplaceInterval=%s DecoyBlock=%s\n",
	       (long long)json_integer_value(
		   json_object_get(json_object_get(policy, "service"), "replace_burst")),
	       str_at(policy, "service", "replace_interval", "?"),
	       str_at(policy, "rotation", "decoy_block", "?"));
}

int mtdctl_policy_plan(const struct mtdctl *ctl, const struct policy_set *set,
		       const struct policy_globals *globals, uint64_t at_usec)
{
	_cleanup_(json_decrefp) json_t *services = json_array();
	_cleanup_(json_decrefp) json_t *globals_json = policy_globals_to_json(globals);
	struct service_plan *plans;
	size_t n_errors = 0;
	char when[64];
	int r = 0;

	plans = calloc(set->count ? set->count : 1, sizeof(*plans));
	if (!plans || !services || !globals_json) {
		free(plans);
		return mtdctl_fail("policy check --plan: out of memory");
	}
	for (size_t i = 0; r >= 0 && i < set->count; i++) {
		r = plan_service(set->policies[i], at_usec, &plans[i]);
		n_errors += plans[i].error != NULL;
	}
	for (size_t i = 0; r >= 0 && i < set->count; i++) {
		json_t *o = service_plan_json(set->policies[i], &plans[i]);

		if (!o || json_array_append_new(services, o) < 0)
			r = -ENOMEM;
	}
	if (r >= 0 && ctl->json) {
		_cleanup_(json_decrefp) json_t *report =
		    json_pack("{s:b, s:I, s:s, s:O, s:O}", "ok", n_errors == 0, "at_usec",
			      (json_int_t)at_usec, "note", PLAN_NOTE, "globals", globals_json,
			      "services", services);
		_cleanup_free_ char *text =
		    report ? json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (text)
			puts(text);
		else
			r = -ENOMEM;
	} else if (r >= 0) {
		mtdctl_format_utc(at_usec, when, sizeof(when));
		printf("plan at %s: %zu service%s, nothing applied\nnote: %s\n", when, set->count,
		       set->count == 1 ? "" : "s", PLAN_NOTE);
		printf("global file: %s\n  never block: ",
		       globals->path ? globals->path : "none (defaults)");
		print_words(json_object_get(globals_json, "never_block"), "none");
		printf(" (no decoy of any service blocks these)\n  UDP blocks:  at most %u "
		       "sources per %s (UDPBlockLimit=)\n",
		       globals->udp_block_limit,
		       json_string_value(json_object_get(globals_json, "udp_block_interval")));
		printf(
		    "  hooks:       %zu OnEvent= hook%s, as %s, killed after %s, at most %u runs "
		    "each per %s\n",
		    globals->hook_count, globals->hook_count == 1 ? "" : "s", globals->hook_user,
		    json_string_value(json_object_get(globals_json, "hook_timeout")),
		    globals->hook_rate_limit,
		    json_string_value(json_object_get(globals_json, "hook_rate_interval")));
		for (size_t i = 0; i < globals->hook_count; i++) {
			const struct policy_hook *h = &globals->hooks[i];

			printf("    ");
			for (size_t t = 0; t < h->type_count; t++)
				printf("%s%s", t ? "," : "", h->types[t]);
			for (size_t a = 0; a < h->argc; a++)
				printf(" %s", h->argv[a]);
			printf("\n");
		}
		for (size_t i = 0; i < set->count; i++)
			print_service(set->policies[i], &plans[i],
				      json_object_get(json_array_get(services, i), "policy"),
				      globals_json);
	}
	for (size_t i = 0; i < set->count; i++)
		free(plans[i].error);
	free(plans);
	if (r < 0)
		return mtdctl_fail("policy check --plan: %s", strerror(-r));
	if (n_errors)
		return mtdctl_fail("policy check --plan: %zu service%s without a schedule",
				   n_errors, n_errors == 1 ? "" : "s");
	return 0;
}
