/* SPDX-License-Identifier: MIT */
/* The policy schema: every section and key, its value handler, bounds and
 * flags. Defaults are set in policy_reader.c (policy_new), cross-key rules in
 * policy_validate.c; both sit above this file, which uses only the values and
 * the error collection. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "policy_internal.h"
#include "schedule.h"

const char *const policy_section_names[_SEC_MAX] = {"Service", "Rotation", "Envelope",
						    "Decoys",  "Hooks",	   "Agent"};

static void bad_word(struct parse_state *st, const struct schema_entry *e, const char *word,
		     const char *reason)
{
	char q[256];
	policy_parse_error(st, policy_section_names[e->section], e->key, "%s: %s",
			   policy_quote(q, sizeof(q), word), reason);
}

static int strv_append(struct string_list *l, const char *s)
{
	char **n = realloc(l->items, (l->count + 2) * sizeof(char *));
	if (!n)
		return -ENOMEM;
	l->items = n;
	n[l->count] = strdup(s);
	if (!n[l->count])
		return -ENOMEM;
	n[++l->count] = NULL;
	return 0;
}

/* Calls fn on each white-space separated word of value; reports bad ones
 * (those fn has not reported itself: it leaves the reason NULL). */
static int for_each_word(struct parse_state *st, const struct schema_entry *e, const char *value,
			 int (*fn)(struct parse_state *st, const struct schema_entry *e,
				   const char *word, const char **reason),
			 const char **reason)
{
	_cleanup_free_ char *copy = strdup(value);
	char *save = NULL;
	bool bad = false;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		const char *why = NULL;
		int r = fn(st, e, w, &why);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			if (why) /* else fn reported it */
				bad_word(st, e, w, why);
			bad = true;
		}
	}
	*reason = NULL; /* already reported */
	return bad ? -EINVAL : 0;
}

/* --- value handlers ------------------------------------------------------------ */

static int set_string(char **field, const char *value)
{
	char *s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static int parse_name(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	int r = policy_check_service_name(value, reason);
	return r < 0 ? r : set_string(FIELD(st, e, char *), value);
}

static int parse_abs_path(struct parse_state *st, const struct schema_entry *e, const char *value,
			  const char **reason)
{
	int r = policy_check_absolute_path(value, reason);
	return r < 0 ? r : set_string(FIELD(st, e, char *), value);
}

/* Absolute, or relative to the directory of the policy file. */
static int parse_file_path(struct parse_state *st, const struct schema_entry *e, const char *value,
			   const char **reason)
{
	_cleanup_free_ char *joined = NULL;
	const char *slash;
	int r;

	if (value[0] == '/')
		return parse_abs_path(st, e, value, reason);
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			*reason = "control character in path";
			return -EINVAL;
		}
	slash = strrchr(st->file, '/');
	if (slash)
		r = asprintf(&joined, "%.*s/%s", (int)(slash - st->file), st->file, value);
	else
		r = asprintf(&joined, "%s", value);
	if (r < 0)
		return -ENOMEM;
	if (strlen(joined) > POLICY_PATH_MAX) {
		*reason = "path too long";
		return -EINVAL;
	}
	free(*FIELD(st, e, char *));
	*FIELD(st, e, char *) = TAKE_PTR(joined);
	return 0;
}

static int parse_user(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	int r = policy_check_user_name(value, reason);
	return r < 0 ? r : set_string(FIELD(st, e, char *), value);
}

static int parse_exec(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	struct string_list *l = FIELD(st, e, struct string_list);
	char **argv;
	size_t n;
	int r = policy_split_words(value, &argv, &n, reason);
	if (r < 0)
		return r;
	if (argv[0][0] != '/') {
		policy_strv_free(argv);
		*reason = "the program must be an absolute path (there is no $PATH search)";
		return -EINVAL;
	}
	policy_strv_free(l->items);
	l->items = argv;
	l->count = n;
	return 0;
}

static int parse_listen(struct parse_state *st, const struct schema_entry *e, const char *value,
			const char **reason)
{
	int r = policy_parse_port_proto(value, &st->p->listen_port, &st->p->listen_proto, reason);
	if (r == 0)
		st->p->has_listen_port = true;
	return r;
}

static int parse_backend(struct parse_state *st, const struct schema_entry *e, const char *value,
			 const char **reason)
{
	int r = policy_parse_socket_address(value, &st->p->backend, reason);
	if (r == 0)
		st->p->has_backend = true;
	return r;
}

static int parse_timespan(struct parse_state *st, const struct schema_entry *e, const char *value,
			  const char **reason)
{
	uint64_t v;
	int r = policy_parse_timespan(value, &v, reason);
	if (r < 0)
		return r;
	if (v < e->min) {
		*reason = "time span too short";
		return -EINVAL;
	}
	if (e->max && v > e->max) {
		*reason = "time span too long";
		return -EINVAL;
	}
	*FIELD(st, e, uint64_t) = v;
	return 0;
}

/* Sizes; with max == 0 also "infinity" (stored as 0 = unlimited). */
static int parse_size(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	uint64_t v;
	int r;

	if (e->max == 0 && streq(value, "infinity")) {
		*FIELD(st, e, uint64_t) = 0;
		return 0;
	}
	r = policy_parse_size(value, &v, reason);
	if (r < 0)
		return r;
	if (v < e->min) {
		*reason = "size too small";
		return -EINVAL;
	}
	if (e->max && v > e->max) {
		*reason = "size too large";
		return -EINVAL;
	}
	*FIELD(st, e, uint64_t) = v;
	return 0;
}

static int parse_u64(struct parse_state *st, const struct schema_entry *e, const char *value,
		     const char **reason)
{
	uint64_t v;
	int r;

	if (e->names && streq(value, "infinity")) { /* names marks "infinity allowed" */
		*FIELD(st, e, uint64_t) = 0;
		return 0;
	}
	r = policy_parse_uint64(value, e->min, e->max, &v, reason);
	if (r == 0)
		*FIELD(st, e, uint64_t) = v;
	return r;
}

/* A number of the key's range; out of it, the error says the range. */
static int parse_uint(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	unsigned *field = FIELD(st, e, unsigned);
	char q[256];

	if (policy_parse_unsigned(value, 0, UINT_MAX, field, reason) < 0)
		return -EINVAL;
	if (*field >= (unsigned)e->min && *field <= (unsigned)e->max)
		return 0;
	policy_parse_error(st, policy_section_names[e->section], e->key, "%s: must be %u to %u",
			   policy_quote(q, sizeof(q), value), (unsigned)e->min, (unsigned)e->max);
	*reason = NULL;
	return -EINVAL;
}

/* StandbyInstances=: the range says why, in the error. */
static int parse_standby(struct parse_state *st, const struct schema_entry *e, const char *value,
			 const char **reason)
{
	char q[256];

	if (policy_parse_unsigned(value, 0, UINT_MAX, FIELD(st, e, unsigned), reason) < 0)
		return -EINVAL;
	if (*FIELD(st, e, unsigned) <= (unsigned)e->max)
		return 0;
	policy_parse_error(st, policy_section_names[e->section], e->key,
			   "%s: at most %u (each standby is a whole running instance)",
			   policy_quote(q, sizeof(q), value), (unsigned)e->max);
	*reason = NULL;
	return -EINVAL;
}

static int parse_bool(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	return policy_parse_bool(value, FIELD(st, e, bool), reason);
}

static int parse_enum(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	char q[256], choices[128] = "";

	for (int i = 0; e->names[i]; i++)
		if (streq(value, e->names[i])) {
			*FIELD(st, e, int) = i;
			return 0;
		}
	for (int i = 0; e->names[i]; i++) {
		strcat(choices, i ? ", " : "");
		strcat(choices, e->names[i]);
	}
	policy_parse_error(st, policy_section_names[e->section], e->key, "%s: expected one of: %s",
			   policy_quote(q, sizeof(q), value), choices);
	*reason = NULL;
	return -EINVAL;
}

static int parse_public_ports(struct parse_state *st, const struct schema_entry *e,
			      const char *value, const char **reason)
{
	int r = policy_parse_port_range(value, &st->p->public_ports, reason);
	if (r == 0)
		st->p->has_public_ports = true;
	return r;
}

static int parse_address_pool(struct parse_state *st, const struct schema_entry *e,
			      const char *value, const char **reason)
{
	struct policy *p = st->p;
	struct cidr c, *n;
	int r = policy_parse_cidr(value, false, &c, reason);
	if (r < 0)
		return r;
	if (c.family == AF_INET && (c.prefix_len < 8 || c.prefix_len > 30)) {
		*reason = "IPv4 pool prefix must be /8 to /30";
		return -EINVAL;
	}
	if (c.family == AF_INET6 && (c.prefix_len < 48 || c.prefix_len > 126)) {
		*reason = "IPv6 pool prefix must be /48 to /126";
		return -EINVAL;
	}
	for (size_t i = 0; i < p->address_pool_count; i++)
		if (policy_cidr_overlap(&p->address_pools[i], &c)) {
			*reason = "overlaps an earlier AddressPool=";
			return -EINVAL;
		}
	n = realloc(p->address_pools, (p->address_pool_count + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	p->address_pools = n;
	n[p->address_pool_count++] = c;
	return 0;
}

/* NeverBlock=: CIDRs, a bare address for one host, several to a line. An
 * error names the value; for host bits set it says which prefix was meant. */
static int one_never_block(struct parse_state *st, const struct schema_entry *e, const char *word,
			   struct cidr **list, size_t *count, const char **reason)
{
	char q[256], net[POLICY_CIDR_MAX];
	struct cidr c, n, *grown;

	if (policy_parse_cidr(word, true, &c, reason) < 0) {
		if (!policy_cidr_host_bits(word, true, &n))
			return -EINVAL;
		policy_parse_error(st, policy_section_names[e->section], e->key,
				   "%s: host bits set after the /%u prefix (the network is %s)",
				   policy_quote(q, sizeof(q), word), n.prefix_len,
				   policy_format_cidr(net, sizeof(net), &n));
		*reason = NULL;
		return -EINVAL;
	}
	grown = realloc(*list, (*count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	*list = grown;
	grown[(*count)++] = c;
	return 0;
}

static int one_policy_never_block(struct parse_state *st, const struct schema_entry *e,
				  const char *word, const char **reason)
{
	return one_never_block(st, e, word, &st->p->never_block, &st->p->never_block_count, reason);
}

static int parse_never_block(struct parse_state *st, const struct schema_entry *e,
			     const char *value, const char **reason)
{
	return for_each_word(st, e, value, one_policy_never_block, reason);
}

static int one_globals_never_block(struct parse_state *st, const struct schema_entry *e,
				   const char *word, const char **reason)
{
	struct policy_globals *g = st->target;
	return one_never_block(st, e, word, &g->never_block, &g->never_block_count, reason);
}

static int parse_globals_never_block(struct parse_state *st, const struct schema_entry *e,
				     const char *value, const char **reason)
{
	return for_each_word(st, e, value, one_globals_never_block, reason);
}

/* UDPBlockLimit=N/SPAN: N 0..POLICY_UDP_BLOCK_LIMIT_MAX, SPAN 1s..1d. */
static int parse_udp_block_limit(struct parse_state *st, const struct schema_entry *e,
				 const char *value, const char **reason)
{
	struct policy_globals *g = st->target;

	(void)e;
	return policy_parse_rate(value, 0, POLICY_UDP_BLOCK_LIMIT_MAX,
				 "expected SOURCES/SPAN (e.g. 32/1min)", "SOURCES not in 0-100000",
				 &g->udp_block_limit, &g->udp_block_interval_usec, reason);
}

/* KnockRate=N/SPAN: per source address, N 1..POLICY_KNOCK_RATE_MAX, SPAN 1s..1d. */
static int parse_knock_rate(struct parse_state *st, const struct schema_entry *e, const char *value,
			    const char **reason)
{
	(void)e;
	return policy_parse_rate(value, 1, POLICY_KNOCK_RATE_MAX,
				 "expected KNOCKS/SPAN (e.g. 20/1s)", "KNOCKS not in 1-100000",
				 &st->p->knock_rate_limit, &st->p->knock_rate_interval_usec,
				 reason);
}

/* HostId=: what the per-client schedules of this host take as its identity. */
static int parse_host_id(struct parse_state *st, const struct schema_entry *e, const char *value,
			 const char **reason)
{
	if (!schedule_host_id_valid(value)) {
		*reason = "not a host id (1 to 255 of A-Z a-z 0-9 _ . : -)";
		return -EINVAL;
	}
	return set_string(FIELD(st, e, char *), value);
}

static int one_syscall(struct parse_state *st, const struct schema_entry *e, const char *word,
		       const char **reason)
{
	int r = policy_check_syscall(word, reason);
	return r < 0 ? r : strv_append(FIELD(st, e, struct string_list), word);
}

static int parse_syscalls(struct parse_state *st, const struct schema_entry *e, const char *value,
			  const char **reason)
{
	return for_each_word(st, e, value, one_syscall, reason);
}

static int one_path(struct parse_state *st, const struct schema_entry *e, const char *word,
		    const char **reason)
{
	int r = policy_check_absolute_path(word, reason);
	return r < 0 ? r : strv_append(FIELD(st, e, struct string_list), word);
}

static int parse_paths(struct parse_state *st, const struct schema_entry *e, const char *value,
		       const char **reason)
{
	return for_each_word(st, e, value, one_path, reason);
}

static int one_cap(struct parse_state *st, const struct schema_entry *e, const char *word,
		   const char **reason)
{
	unsigned cap;
	int r = policy_parse_capability(word, &cap, reason);
	if (r == 0)
		st->p->capabilities |= UINT64_C(1) << cap;
	return r;
}

static int parse_caps(struct parse_state *st, const struct schema_entry *e, const char *value,
		      const char **reason)
{
	return for_each_word(st, e, value, one_cap, reason);
}

static int parse_egress(struct parse_state *st, const struct schema_entry *e, const char *value,
			const char **reason)
{
	struct policy *p = st->p;
	struct egress_rule rule, *n;
	int r = policy_parse_egress(value, &rule, reason);
	if (r < 0)
		return r;
	n = realloc(p->egress, (p->egress_count + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	p->egress = n;
	n[p->egress_count++] = rule;
	return 0;
}

static int parse_cpu_quota(struct parse_state *st, const struct schema_entry *e, const char *value,
			   const char **reason)
{
	char num[16];
	size_t n = strlen(value);

	if (streq(value, "infinity")) {
		st->p->cpu_quota_percent = 0;
		return 0;
	}
	if (n < 2 || value[n - 1] != '%' || n - 1 >= sizeof(num)) {
		*reason = "not a percentage (e.g. 50%, 200%)";
		return -EINVAL;
	}
	memcpy(num, value, n - 1);
	num[n - 1] = 0;
	if (policy_parse_unsigned(num, 1, 10000, &st->p->cpu_quota_percent, reason) < 0) {
		*reason = "percentage not in 1%-10000%";
		return -EINVAL;
	}
	return 0;
}

static const char *const health_names[] = {"none", "tcp", NULL};
static const char *const compromise_names[] = {"quarantine", "kill", "alert", NULL};
/* Failing health is no detection: an unhealthy instance is always replaced. */
static const char *const unhealthy_names[] = {"quarantine", "kill", NULL};
static const char *const violation_names[] = {"quarantine", "kill", "errno", NULL};
static const char *const syscall_default_names[] = {"errno", "kill", NULL};
static const char *const infinity_ok[] = {"infinity", NULL};
static const char *const client_auth_names[] = {"none", "knock", NULL};

#define OFF(f) offsetof(struct policy, f)
#define S SEC_SERVICE
#define R SEC_ROTATION
#define E SEC_ENVELOPE
#define M F_MANAGED

static const struct schema_entry schema[] = {
    {S, "Name", parse_name, OFF(name), 0, 0, NULL, 0},
    {S, "Snapshot", parse_abs_path, OFF(snapshot), 0, 0, NULL, M},
    {S, "SnapshotKey", parse_file_path, OFF(snapshot_key), 0, 0, NULL, M},
    {S, "Exec", parse_exec, OFF(exec_argv), 0, 0, NULL, M | F_SHELL},
    {S, "ListenPort", parse_listen, 0, 0, 0, NULL, M},
    {S, "Backend", parse_backend, 0, 0, 0, NULL, 0},
    {S, "User", parse_user, OFF(user), 0, 0, NULL, M},
    {S, "Group", parse_user, OFF(group), 0, 0, NULL, M},
    {S, "MaxLifetime", parse_timespan, OFF(max_lifetime_usec), 0, 0, NULL, M},
    {S, "MaxLifetimeJitter", parse_timespan, OFF(max_lifetime_jitter_usec), 0, 0, NULL, M},
    {S, "DrainTimeout", parse_timespan, OFF(drain_timeout_usec), 0, POLICY_DRAIN_TIMEOUT_MAX_USEC,
     NULL, M},
    {S, "HealthCheck", parse_enum, OFF(health_check), 0, 1, health_names, 0},
    {S, "HealthInterval", parse_timespan, OFF(health_interval_usec), 100 * USEC_PER_MSEC,
     USEC_PER_HOUR, NULL, 0},
    {S, "HealthTimeout", parse_timespan, OFF(health_timeout_usec), 10 * USEC_PER_MSEC,
     USEC_PER_MINUTE, NULL, 0},
    {S, "HealthFailures", parse_uint, OFF(health_failures), 1, 100, NULL, 0},
    {S, "OnCompromise", parse_enum, OFF(on_compromise), 0, 2, compromise_names, M},
    {S, "OnUnhealthy", parse_enum, OFF(on_unhealthy), 0, 1, unhealthy_names, M},
    {S, "QuarantineMax", parse_size, OFF(quarantine_max_bytes), 0, UINT64_MAX, NULL, M},
    {S, "ReplaceBurst", parse_uint, OFF(replace_burst), 1, 1000, NULL, M},
    {S, "ReplaceInterval", parse_timespan, OFF(replace_interval_usec), USEC_PER_SEC, USEC_PER_DAY,
     NULL, M},
    {S, "StandbyInstances", parse_standby, OFF(standby_instances), 0, POLICY_STANDBY_MAX, NULL, M},
    {S, "SnapshotAllowDevices", parse_bool, OFF(allow_devices), 0, 0, NULL, M},
    {S, "SnapshotAllowSetuid", parse_bool, OFF(allow_setuid), 0, 0, NULL, M},
    {S, "OnEvent", policy_parse_on_event, 0, 0, 0, NULL, F_REPEAT | F_SHELL},

    {R, "PublicPorts", parse_public_ports, 0, 0, 0, NULL, 0},
    {R, "Interval", parse_timespan, OFF(interval_usec), USEC_PER_SEC, USEC_PER_WEEK, NULL, 0},
    {R, "Grace", parse_timespan, OFF(grace_usec), 0, 0, NULL, 0},
    {R, "KeyFile", parse_file_path, OFF(key_file), 0, 0, NULL, 0},
    {R, "ClientKeys", parse_file_path, OFF(client_keys), 0, 0, NULL, 0},
    {R, "ClientAuth", parse_enum, OFF(client_auth), 0, 1, client_auth_names, 0},
    {R, "KnockWindow", parse_timespan, OFF(knock_window_usec), POLICY_KNOCK_WINDOW_MIN_USEC,
     POLICY_KNOCK_WINDOW_MAX_USEC, NULL, 0},
    {R, "KnockRate", parse_knock_rate, 0, 0, 0, NULL, 0},
    {R, "Decoys", parse_uint, OFF(decoys), 0, POLICY_DECOYS_MAX, NULL, 0},
    {R, "DecoyBlock", parse_timespan, OFF(decoy_block_usec), 0, USEC_PER_WEEK, NULL, 0},
    {R, "AddressPool", parse_address_pool, 0, 0, 0, NULL, F_REPEAT | M},
    {R, "LocalAccess", parse_bool, OFF(local_access), 0, 0, NULL, 0},
    {R, "NeverBlock", parse_never_block, 0, 0, 0, NULL, F_REPEAT},
    {R, "DecoyBlockFactor", parse_uint, OFF(decoy_block_factor), 1, 100, NULL, 0},
    /* at least DecoyBlock=: policy_validate() */
    {R, "DecoyBlockMax", parse_timespan, OFF(decoy_block_max_usec), 0, 30 * USEC_PER_DAY, NULL, 0},
    {R, "DecoyRepeatWindow", parse_timespan, OFF(decoy_repeat_window_usec), 0, 30 * USEC_PER_DAY,
     NULL, 0},

    {E, "SystemCalls", parse_syscalls, OFF(system_calls), 0, 0, NULL, F_REPEAT | M},
    {E, "ViolationSystemCalls", parse_syscalls, OFF(violation_system_calls), 0, 0, NULL,
     F_REPEAT | M},
    {E, "SystemCallDefault", parse_enum, OFF(syscall_default), 0, 1, syscall_default_names, M},
    {E, "OnSyscallViolation", parse_enum, OFF(on_syscall_violation), 0, 2, violation_names, M},
    {E, "Writable", parse_paths, OFF(writable), 0, 0, NULL, F_REPEAT | M},
    {E, "Egress", parse_egress, 0, 0, 0, NULL, F_REPEAT | M},
    {E, "EgressAlertThreshold", parse_uint, OFF(egress_alert_threshold), 1, 1000000, NULL, M},
    {E, "Capabilities", parse_caps, 0, 0, 0, NULL, F_REPEAT | M},
    {E, "MemoryMax", parse_size, OFF(memory_max_bytes), 1 << 20, 0, NULL, M},
    {E, "TasksMax", parse_u64, OFF(tasks_max), 1, 4194304, infinity_ok, M},
    {E, "CPUQuota", parse_cpu_quota, 0, 0, 0, NULL, M},
    {E, "WritableSize", parse_size, OFF(writable_size_bytes), 1 << 20, UINT64_C(1) << 40, NULL, M},
    {E, "LimitNOFILE", parse_u64, OFF(limit_nofile), 1, 1073741816, NULL, M},
    {E, "PrivateUsers", parse_bool, OFF(private_users), 0, 0, NULL, M},

    /* The global file (policy_globals.c); offsets are into struct policy_globals. */
    {SEC_DECOYS, "NeverBlock", parse_globals_never_block, 0, 0, 0, NULL, F_REPEAT},
    {SEC_DECOYS, "UDPBlockLimit", parse_udp_block_limit, 0, 0, 0, NULL, 0},
    {SEC_HOOKS, "OnEvent", policy_parse_on_event, 0, 0, 0, NULL, F_REPEAT | F_SHELL},
    {SEC_HOOKS, "HookTimeout", parse_timespan, offsetof(struct policy_globals, hook_timeout_usec),
     100 * USEC_PER_MSEC, USEC_PER_HOUR, NULL, 0},
    {SEC_HOOKS, "HookRate", policy_parse_hook_rate, 0, 0, 0, NULL, 0},
    {SEC_HOOKS, "HookUser", parse_user, offsetof(struct policy_globals, hook_user), 0, 0, NULL, 0},
    {SEC_AGENT, "HostId", parse_host_id, offsetof(struct policy_globals, host_id), 0, 0, NULL, 0},
};

_Static_assert(ELEMENTSOF(schema) <= SCHEMA_MAX, "schema too large");

#undef S
#undef R
#undef E
#undef M

int policy_schema_find(enum section_id section, const char *key)
{
	for (size_t i = 0; i < ELEMENTSOF(schema); i++)
		if (schema[i].section == section && streq(schema[i].key, key))
			return (int)i;
	return -1;
}

enum section_id policy_section_find(const char *name)
{
	for (int i = 0; i < _SEC_MAX; i++)
		if (streq(policy_section_names[i], name))
			return (enum section_id)i;
	return SEC_INVALID;
}

unsigned policy_key_line(const struct policy *policy, const char *section, const char *key)
{
	int i = policy_schema_find(policy_section_find(section), key);
	return policy->source && i >= 0 ? policy->source->key_line[i] : 0;
}

unsigned policy_section_line(const struct policy *policy, const char *section)
{
	enum section_id s = policy_section_find(section);
	return policy->source && s != SEC_INVALID ? policy->source->section_line[s] : 0;
}

/* Keys of a managed service given in a host service (Backend=). */
void policy_check_host_keys(struct parse_state *st)
{
	for (size_t i = 0; i < ELEMENTSOF(schema); i++) {
		unsigned line = st->p->source->key_line[i];
		if (!(schema[i].flags & F_MANAGED) || line == 0)
			continue;
		if (i == (size_t)policy_schema_find(SEC_SERVICE, "Snapshot"))
			continue; /* reported as Backend=/Snapshot= conflict */
		st->line = line;
		policy_parse_error(
		    st, policy_section_names[schema[i].section], schema[i].key,
		    "only valid for a managed service (Snapshot=), not with Backend=");
	}
}

const struct schema_entry *policy_schema_entry(int index)
{
	return index >= 0 && (size_t)index < ELEMENTSOF(schema) ? &schema[index] : NULL;
}

const char *policy_schema_hint(enum section_id section, const char *name)
{
	for (size_t j = 0; j < ELEMENTSOF(schema); j++)
		if (schema[j].section == section && strcasecmp(schema[j].key, name) == 0)
			return schema[j].key;
	return NULL;
}
