/* SPDX-License-Identifier: MIT */
/* JSON rendering of a parsed policy, and of the global file, with jansson. */
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/socket.h>

#include "macro.h"
#include "policy.h"
#include "policy_internal.h"

/* All setters below ignore allocation failures individually and are checked
 * once at the end through the "ok" flag. */
struct out {
	json_t *obj;
	bool ok;
};

static void set(struct out *o, const char *key, json_t *v)
{
	if (!v || json_object_set_new(o->obj, key, v) < 0)
		o->ok = false;
}

static void set_timespan(struct out *o, const char *key, uint64_t usec)
{
	char buf[POLICY_TIMESPAN_MAX], k[64];
	set(o, key, json_string(policy_format_timespan(buf, sizeof(buf), usec)));
	snprintf(k, sizeof(k), "%s_usec", key);
	set(o, k, json_integer((json_int_t)usec));
}

static void set_size(struct out *o, const char *key, uint64_t bytes)
{
	char buf[POLICY_SIZE_MAX], k[64];
	set(o, key,
	    bytes ? json_string(policy_format_size(buf, sizeof(buf), bytes))
		  : json_string("infinity"));
	snprintf(k, sizeof(k), "%s_bytes", key);
	set(o, k, json_integer((json_int_t)bytes));
}

static void set_str(struct out *o, const char *key, const char *s)
{
	set(o, key, s ? json_string(s) : json_null());
}

static json_t *strv_json(const struct string_list *l)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->count; i++)
		if (json_array_append_new(a, json_string(l->items[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *ports_json(const struct port_range *pr)
{
	char buf[16];
	if (pr->first == pr->last)
		snprintf(buf, sizeof(buf), "%u", pr->first);
	else
		snprintf(buf, sizeof(buf), "%u-%u", pr->first, pr->last);
	return json_pack("{s:s, s:i, s:i}", "text", buf, "first", pr->first, "last", pr->last);
}

static json_t *hooks_json(const struct policy_hook *hooks, size_t count);

static json_t *service_json(const struct policy *p)
{
	static const char *const compromise[] = {"quarantine", "kill", "alert"};
	struct out o = {json_object(), true};
	char buf[POLICY_SOCKADDR_MAX];

	set_str(&o, "name", p->name);
	set_str(&o, "kind", p->has_backend ? "host" : "managed");
	set_str(&o, "snapshot", p->snapshot);
	set_str(&o, "snapshot_key", p->snapshot_key);
	set(&o, "exec", strv_json(&p->exec_argv));
	if (p->has_listen_port) {
		snprintf(buf, sizeof(buf), "%u/%s", p->listen_port,
			 policy_proto_to_string(p->listen_proto));
		set_str(&o, "listen_port", buf);
	} else
		set(&o, "listen_port", json_null());
	set_str(&o, "backend",
		p->has_backend ? policy_format_socket_address(buf, sizeof(buf), &p->backend)
			       : NULL);
	set_str(&o, "user", p->user);
	set_str(&o, "group", p->group);
	set_timespan(&o, "max_lifetime", p->max_lifetime_usec);
	set_timespan(&o, "max_lifetime_jitter", p->max_lifetime_jitter_usec);
	set_timespan(&o, "drain_timeout", p->drain_timeout_usec);
	set_str(&o, "health_check", p->health_check == HEALTH_CHECK_TCP ? "tcp" : "none");
	set_timespan(&o, "health_interval", p->health_interval_usec);
	set_timespan(&o, "health_timeout", p->health_timeout_usec);
	set(&o, "health_failures", json_integer(p->health_failures));
	set_str(&o, "on_compromise",
		compromise[(unsigned)p->on_compromise <= COMPROMISE_ALERT ? p->on_compromise : 0]);
	set_str(&o, "on_unhealthy", compromise[p->on_unhealthy == COMPROMISE_KILL]);
	set_size(&o, "quarantine_max", p->quarantine_max_bytes);
	set(&o, "replace_burst", json_integer(p->replace_burst));
	set_timespan(&o, "replace_interval", p->replace_interval_usec);
	set(&o, "standby_instances", json_integer(p->standby_instances));
	set(&o, "snapshot_allow_devices", json_boolean(p->allow_devices));
	set(&o, "snapshot_allow_setuid", json_boolean(p->allow_setuid));
	set(&o, "hooks", hooks_json(p->hooks, p->hook_count));
	if (!o.ok) {
		json_decref(o.obj);
		return NULL;
	}
	return o.obj;
}

static json_t *cidrs_json(const struct cidr *cidrs, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		char buf[POLICY_CIDR_MAX];
		if (json_array_append_new(
			a, json_string(policy_format_cidr(buf, sizeof(buf), &cidrs[i]))) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *rotation_json(const struct policy *p)
{
	struct out o = {json_object(), true};
	json_t *pools = json_array();

	set(&o, "public_ports", p->has_public_ports ? ports_json(&p->public_ports) : json_null());
	set_timespan(&o, "interval", p->interval_usec);
	set_timespan(&o, "grace", p->grace_usec);
	set_str(&o, "key_file", p->key_file);
	set_str(&o, "client_keys", p->client_keys);
	set(&o, "client_auth",
	    json_string(p->client_auth == POLICY_CLIENT_AUTH_KNOCK ? "knock" : "none"));
	set_timespan(&o, "knock_window", p->knock_window_usec);
	set(&o, "knock_rate_limit", json_integer(p->knock_rate_limit));
	set_timespan(&o, "knock_rate_interval", p->knock_rate_interval_usec);
	set(&o, "decoys", json_integer(p->decoys));
	set_timespan(&o, "decoy_block", p->decoy_block_usec);
	for (size_t i = 0; pools && i < p->address_pool_count; i++) {
		char buf[POLICY_CIDR_MAX];
		if (json_array_append_new(pools, json_string(policy_format_cidr(
						     buf, sizeof(buf), &p->address_pools[i]))) < 0)
			o.ok = false;
	}
	set(&o, "address_pools", pools);
	set(&o, "local_access", json_boolean(p->local_access));
	set(&o, "never_block", cidrs_json(p->never_block, p->never_block_count));
	set(&o, "decoy_block_factor", json_integer(p->decoy_block_factor));
	set_timespan(&o, "decoy_block_max", p->decoy_block_max_usec);
	set_timespan(&o, "decoy_repeat_window", p->decoy_repeat_window_usec);
	if (!o.ok) {
		json_decref(o.obj);
		return NULL;
	}
	return o.obj;
}

static json_t *egress_json(const struct policy *p)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < p->egress_count; i++) {
		const struct egress_rule *e = &p->egress[i];
		char buf[POLICY_CIDR_MAX];
		json_t *r = json_pack("{s:s, s:o, s:s?}", "proto", policy_proto_to_string(e->proto),
				      "ports", ports_json(&e->ports), "destination",
				      e->has_destination
					  ? policy_format_cidr(buf, sizeof(buf), &e->destination)
					  : NULL);
		if (!r || json_array_append_new(a, r) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *caps_json(uint64_t mask)
{
	json_t *a = json_array();

	for (unsigned c = 0; a && c < 64; c++) {
		char *name, upper[64];
		size_t i;
		if (!(mask & (UINT64_C(1) << c)))
			continue;
		name = cap_to_name((cap_value_t)c);
		if (!name) {
			json_decref(a);
			return NULL;
		}
		for (i = 0; name[i] && i + 1 < sizeof(upper); i++)
			upper[i] =
			    (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
		upper[i] = 0;
		cap_free(name);
		if (json_array_append_new(a, json_string(upper)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *envelope_json(const struct policy *p)
{
	static const char *const violation[] = {"quarantine", "kill", "errno"};
	struct out o = {json_object(), true};
	char buf[16];

	set(&o, "system_calls", strv_json(&p->system_calls));
	set(&o, "violation_system_calls", strv_json(&p->violation_system_calls));
	set_str(&o, "system_call_default",
		p->syscall_default == SYSCALL_DEFAULT_KILL ? "kill" : "errno");
	set_str(&o, "on_syscall_violation",
		violation[(unsigned)p->on_syscall_violation < 3 ? p->on_syscall_violation : 0]);
	set(&o, "writable", strv_json(&p->writable));
	set(&o, "egress", egress_json(p));
	set(&o, "egress_alert_threshold", json_integer(p->egress_alert_threshold));
	set(&o, "capabilities", caps_json(p->capabilities));
	set_size(&o, "memory_max", p->memory_max_bytes);
	if (p->tasks_max)
		set(&o, "tasks_max", json_integer((json_int_t)p->tasks_max));
	else
		set_str(&o, "tasks_max", "infinity");
	if (p->cpu_quota_percent) {
		snprintf(buf, sizeof(buf), "%u%%", p->cpu_quota_percent);
		set_str(&o, "cpu_quota", buf);
	} else
		set_str(&o, "cpu_quota", "infinity");
	set(&o, "cpu_quota_percent", json_integer(p->cpu_quota_percent));
	set_size(&o, "writable_size", p->writable_size_bytes);
	set(&o, "limit_nofile", json_integer((json_int_t)p->limit_nofile));
	set(&o, "private_users", json_boolean(p->private_users));
	if (!o.ok) {
		json_decref(o.obj);
		return NULL;
	}
	return o.obj;
}

json_t *policy_to_json(const struct policy *p)
{
	_cleanup_(json_decrefp) json_t *root = json_object();
	struct out o = {root, root != NULL};

	if (!root)
		return NULL;
	set_str(&o, "path", p->path);
	set(&o, "service", service_json(p));
	set(&o, "rotation", rotation_json(p));
	set(&o, "envelope", envelope_json(p));
	if (!o.ok)
		return NULL;
	return TAKE_PTR(root);
}

static json_t *hooks_json(const struct policy_hook *hooks, size_t count)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < count; i++) {
		struct string_list types = {hooks[i].types, hooks[i].type_count};
		struct string_list argv = {hooks[i].argv, hooks[i].argc};
		struct out o = {json_object(), true};

		set(&o, "types", strv_json(&types));
		set(&o, "exec", strv_json(&argv));
		if (!o.ok)
			json_decref(o.obj);
		/* json_array_append_new() takes the object, also on failure. */
		if (!o.ok || json_array_append_new(a, o.obj) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *policy_globals_to_json(const struct policy_globals *g)
{
	struct out o = {json_object(), true};

	set_str(&o, "path", g->path);
	set(&o, "never_block", cidrs_json(g->never_block, g->never_block_count));
	set(&o, "udp_block_limit", json_integer(g->udp_block_limit));
	set_timespan(&o, "udp_block_interval", g->udp_block_interval_usec);
	set(&o, "hooks", hooks_json(g->hooks, g->hook_count));
	set_timespan(&o, "hook_timeout", g->hook_timeout_usec);
	set(&o, "hook_rate_limit", json_integer(g->hook_rate_limit));
	set_timespan(&o, "hook_rate_interval", g->hook_rate_interval_usec);
	set_str(&o, "hook_user", g->hook_user);
	set_str(&o, "host_id", g->host_id);
	if (!o.ok) {
		json_decref(o.obj);
		return NULL;
	}
	return o.obj;
}
