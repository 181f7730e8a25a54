/* SPDX-License-Identifier: MIT */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"

struct command_info {
	const char *name;
	bool mutating;
	/* fields this command accepts besides "command" */
	const char *fields[3];
};

static const struct command_info commands[_CONTROL_COMMAND_MAX] = {
    [CONTROL_STATUS] = {"status", false, {NULL}},
    [CONTROL_POLICY_LIST] = {"policy-list", false, {NULL}},
    [CONTROL_POLICY_SHOW] = {"policy-show", false, {"name", NULL}},
    [CONTROL_RELOAD] = {"reload", true, {"keep_connections", NULL}},
    [CONTROL_AUDIT_SHOW] = {"audit-show", false, {"since", "follow", NULL}},
    [CONTROL_UNBLOCK] = {"unblock", true, {"address", NULL}},
    [CONTROL_INSTANCES] = {"instances", false, {NULL}},
    [CONTROL_QUARANTINE] = {"quarantine", true, {"target", "reason", NULL}},
    [CONTROL_RELEASE] = {"release", true, {"target", NULL}},
    [CONTROL_INSPECT] = {"inspect", false, {"target", "verify", NULL}},
    [CONTROL_METRICS] = {"metrics", false, {NULL}},
    [CONTROL_REPLACE] = {"replace", true, {"target", NULL}},
    [CONTROL_SHARED_BLOCKS] = {"shared-blocks", true, {"ban", "unban", "bridge"}},
};

const char *control_command_name(enum control_command command)
{
	if ((unsigned)command >= _CONTROL_COMMAND_MAX)
		return NULL;
	return commands[command].name;
}

int control_command_from_name(const char *name, enum control_command *ret_command)
{
	for (unsigned i = 0; i < _CONTROL_COMMAND_MAX; i++)
		if (streq(commands[i].name, name)) {
			*ret_command = i;
			return 0;
		}
	return -EINVAL;
}

bool control_command_is_mutating(enum control_command command)
{
	return (unsigned)command < _CONTROL_COMMAND_MAX && commands[command].mutating;
}

bool control_request_needs_root(const struct control_request *request)
{
	return control_command_is_mutating(request->command) ||
	       (request->command == CONTROL_INSPECT && request->verify);
}

_printf_(2, 3) static int refuse(char reason[CONTROL_REASON_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, CONTROL_REASON_MAX, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool command_accepts_field(const struct command_info *info, const char *field)
{
	if (streq(field, "command"))
		return true;
	for (unsigned i = 0; i < ELEMENTSOF(info->fields) && info->fields[i]; i++)
		if (streq(info->fields[i], field))
			return true;
	return false;
}

/* Service names and instance ids ("web-3") follow the policy's name rule:
 * [a-z0-9][a-z0-9_-]*, at most max_len; checked here too so a hostile name
 * never reaches a lookup or a log line. */
static bool is_valid_name(const char *s, size_t max_len)
{
	size_t n = strlen(s);

	if (n == 0 || n > max_len)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '-' || c == '_'));
		if (!ok)
			return false;
	}
	return true;
}

static bool is_valid_service_name(const char *s)
{
	return is_valid_name(s, 32);
}

static bool is_valid_instance_id(const char *s)
{
	return is_valid_name(s, 48);
}

/* A reason goes into the audit log and the journal: printable ASCII only. */
static bool is_printable_text(const char *s, size_t size)
{
	size_t n = strlen(s);

	if (n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* Characters of an IPv4/IPv6 address; the agent parses it with inet_pton. */
static bool is_address_text(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(((struct control_request *)0)->address))
		return false;
	return strspn(s, "0123456789abcdefABCDEF.:") == n;
}

/* shared-blocks: an address, or a range ADDRESS/LENGTH (a length of 1 to 3
 * digits, at most 32 for IPv4, 128 for IPv6); the agent parses both. */
static bool is_address_or_range_text(const char *s)
{
	const char *slash = strchr(s, '/');
	char address[CONTROL_SHARED_ADDRESS_MAX];
	size_t n = strlen(s), digits;

	if (n == 0 || n >= CONTROL_SHARED_ADDRESS_MAX)
		return false;
	if (!slash)
		return is_address_text(s);
	digits = strlen(slash + 1);
	if (digits == 0 || digits > 3 || strspn(slash + 1, "0123456789") != digits ||
	    (size_t)(slash - s) >= sizeof(((struct control_request *)0)->address))
		return false;
	memcpy(address, s, (size_t)(slash - s));
	address[slash - s] = '\0';
	return is_address_text(address) &&
	       strtoul(slash + 1, NULL, 10) <= (strchr(address, ':') ? 128u : 32u);
}

/* Only short printable words are echoed back in a reason. */
static bool is_printable_word(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

static int decode_bans(json_t *array, struct control_request *request,
		       char reason[CONTROL_REASON_MAX])
{
	size_t i;
	json_t *item;

	if (!json_is_array(array) || json_array_size(array) > CONTROL_SHARED_MAX)
		return refuse(reason, "shared-blocks: \"ban\" must be an array of at most %d",
			      CONTROL_SHARED_MAX);
	json_array_foreach(array, i, item)
	{
		json_t *address = json_object_get(item, "address");
		json_t *seconds = json_object_get(item, "seconds");
		struct control_shared_ban *ban = &request->bans[i];

		if (!json_is_object(item) || json_object_size(item) != 2 || !address || !seconds)
			return refuse(
			    reason, "shared-blocks: ban %zu must be {\"address\", \"seconds\"}", i);
		if (!json_is_string(address) ||
		    !is_address_or_range_text(json_string_value(address)))
			return refuse(reason,
				      "shared-blocks: ban %zu: \"address\" must be an IPv4 or "
				      "IPv6 address or range (ADDRESS/LENGTH)",
				      i);
		if (!json_is_integer(seconds) || json_integer_value(seconds) < 1 ||
		    json_integer_value(seconds) > CONTROL_SHARED_SECONDS_MAX)
			return refuse(reason,
				      "shared-blocks: ban %zu: \"seconds\" must be an integer "
				      "from 1 to %u",
				      i, CONTROL_SHARED_SECONDS_MAX);
		snprintf(ban->address, sizeof(ban->address), "%s", json_string_value(address));
		ban->seconds = (uint32_t)json_integer_value(seconds);
	}
	request->n_bans = json_array_size(array);
	return 0;
}

static int decode_unbans(json_t *array, struct control_request *request,
			 char reason[CONTROL_REASON_MAX])
{
	size_t i;
	json_t *item;

	if (!json_is_array(array) || json_array_size(array) > CONTROL_SHARED_MAX)
		return refuse(reason, "shared-blocks: \"unban\" must be an array of at most %d",
			      CONTROL_SHARED_MAX);
	json_array_foreach(array, i, item)
	{
		if (!json_is_string(item) || !is_address_or_range_text(json_string_value(item)))
			return refuse(reason,
				      "shared-blocks: unban %zu must be an IPv4 or IPv6 address or "
				      "range (ADDRESS/LENGTH)",
				      i);
		snprintf(request->unbans[i], sizeof(request->unbans[i]), "%s",
			 json_string_value(item));
	}
	request->n_unbans = json_array_size(array);
	return 0;
}

static int decode_bridge_text(json_t *value, const char *key, char *out, size_t size,
			      char reason[CONTROL_REASON_MAX])
{
	if (!json_is_string(value) || !is_printable_text(json_string_value(value), size))
		return refuse(reason,
			      "shared-blocks: bridge \"%s\" must be printable text of at most "
			      "%zu characters",
			      key, size - 1);
	snprintf(out, size, "%s", json_string_value(value));
	return 0;
}

/* The bridge's own state: a closed list of keys, each typed. */
static int decode_bridge(json_t *object, struct control_bridge_report *ret,
			 char reason[CONTROL_REASON_MAX])
{
	struct control_bridge_report report = {.present = true};
	struct {
		const char *key;
		uint64_t *value;
	} counts[] = {
	    {"since_usec", &report.since_usec},
	    {"alerts_sent", &report.alerts_sent},
	    {"alerts_failed", &report.alerts_failed},
	    {"alerts_queued", &report.alerts_queued},
	    {"decisions_new", &report.decisions_new},
	    {"decisions_deleted", &report.decisions_deleted},
	    {"decisions_skipped", &report.decisions_skipped},
	};
	const char *key;
	json_t *value;
	int r;

	if (!json_is_object(object))
		return refuse(reason, "shared-blocks: \"bridge\" must be an object");
	json_object_foreach(object, key, value)
	{
		bool known = false;

		if (streq(key, "engine") || streq(key, "lapi") || streq(key, "error")) {
			r = streq(key, "engine") ? decode_bridge_text(value, key, report.engine,
								      sizeof(report.engine), reason)
			    : streq(key, "lapi") ? decode_bridge_text(value, key, report.lapi,
								      sizeof(report.lapi), reason)
						 : decode_bridge_text(value, key, report.error,
								      sizeof(report.error), reason);
			if (r < 0)
				return r;
			continue;
		}
		for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
			if (!streq(key, counts[i].key))
				continue;
			if (!json_is_integer(value) || json_integer_value(value) < 0)
				return refuse(reason,
					      "shared-blocks: bridge \"%s\" must be a "
					      "non-negative integer",
					      key);
			*counts[i].value = (uint64_t)json_integer_value(value);
			known = true;
		}
		if (!known)
			return is_printable_word(key)
				   ? refuse(reason, "shared-blocks: bridge: unknown field \"%s\"",
					    key)
				   : refuse(reason, "shared-blocks: bridge: unknown field");
	}
	*ret = report;
	return 0;
}

static int decode_shared_blocks(json_t *root, struct control_request *request,
				char reason[CONTROL_REASON_MAX])
{
	json_t *value;
	int r;

	if (!json_object_get(root, "ban") && !json_object_get(root, "unban") &&
	    !json_object_get(root, "bridge"))
		return refuse(reason, "shared-blocks: needs \"ban\", \"unban\" or \"bridge\"");
	value = json_object_get(root, "ban");
	if (value && (r = decode_bans(value, request, reason)) < 0)
		return r;
	value = json_object_get(root, "unban");
	if (value && (r = decode_unbans(value, request, reason)) < 0)
		return r;
	value = json_object_get(root, "bridge");
	if (value && (r = decode_bridge(value, &request->bridge, reason)) < 0)
		return r;
	return 0;
}

int control_request_decode(const char *message, size_t len, struct control_request *ret_request,
			   char ret_reason[CONTROL_REASON_MAX])
{
	struct control_request request = {0};
	_cleanup_(json_decrefp) json_t *root = NULL;
	json_error_t error;
	const char *key;
	json_t *value;
	const struct command_info *info;

	if (len > CONTROL_REQUEST_MAX) {
		refuse(ret_reason, "request too large (%zu bytes, at most %d)", len,
		       CONTROL_REQUEST_MAX);
		return -EMSGSIZE;
	}
	if (len == 0)
		return refuse(ret_reason, "empty request");
	if (memchr(message, '\0', len))
		return refuse(ret_reason, "request contains a NUL byte");

	root = json_loadb(message, len, JSON_REJECT_DUPLICATES, &error);
	if (!root)
		return refuse(ret_reason, "malformed JSON at column %d: %s", error.column,
			      error.text);
	if (!json_is_object(root))
		return refuse(ret_reason, "request must be a JSON object");

	value = json_object_get(root, "command");
	if (!value)
		return refuse(ret_reason, "missing field \"command\"");
	if (!json_is_string(value))
		return refuse(ret_reason, "field \"command\" must be a string");
	if (control_command_from_name(json_string_value(value), &request.command) < 0)
		return refuse(
		    ret_reason,
		    "unknown command (known: status, policy-list, "
		    "policy-show, reload, audit-show, unblock, instances, quarantine, release, "
		    "inspect, metrics, replace, shared-blocks)");
	info = &commands[request.command];

	json_object_foreach(root, key, value)
	{
		if (!command_accepts_field(info, key))
			return is_printable_word(key)
				   ? refuse(ret_reason, "%s: unknown field \"%s\"", info->name, key)
				   : refuse(ret_reason, "%s: unknown field", info->name);
	}

	if (request.command == CONTROL_POLICY_SHOW) {
		value = json_object_get(root, "name");
		if (!value)
			return refuse(ret_reason, "policy-show: missing field \"name\"");
		if (!json_is_string(value))
			return refuse(ret_reason, "policy-show: field \"name\" must be a string");
		if (!is_valid_service_name(json_string_value(value)))
			return refuse(ret_reason, "policy-show: \"name\" is not a valid service "
						  "name");
		snprintf(request.name, sizeof(request.name), "%s", json_string_value(value));
	}

	if (request.command == CONTROL_AUDIT_SHOW) {
		value = json_object_get(root, "since");
		if (value) {
			if (!json_is_integer(value) || json_integer_value(value) < 0)
				return refuse(ret_reason, "audit-show: field \"since\" must be a "
							  "non-negative integer");
			request.since = (uint64_t)json_integer_value(value);
		}
		value = json_object_get(root, "follow");
		if (value) {
			if (!json_is_boolean(value))
				return refuse(ret_reason,
					      "audit-show: field \"follow\" must be true or false");
			request.follow = json_is_true(value);
		}
	}

	if (request.command == CONTROL_QUARANTINE || request.command == CONTROL_RELEASE ||
	    request.command == CONTROL_INSPECT || request.command == CONTROL_REPLACE) {
		value = json_object_get(root, "target");
		if (!value)
			return refuse(ret_reason, "%s: missing field \"target\"", info->name);
		/* Instance ids are service names with a "-N" suffix. */
		if (!json_is_string(value) || !is_valid_instance_id(json_string_value(value)))
			return refuse(ret_reason,
				      "%s: \"target\" is not an instance id or service name",
				      info->name);
		snprintf(request.target, sizeof(request.target), "%s", json_string_value(value));
		value = json_object_get(root, "reason");
		if (value) {
			if (!json_is_string(value) ||
			    !is_printable_text(json_string_value(value), sizeof(request.reason)))
				return refuse(ret_reason,
					      "%s: \"reason\" must be printable text of at "
					      "most %zu characters",
					      info->name, sizeof(request.reason) - 1);
			snprintf(request.reason, sizeof(request.reason), "%s",
				 json_string_value(value));
		}
	}

	if (request.command == CONTROL_RELOAD) {
		value = json_object_get(root, "keep_connections");
		if (value) {
			if (!json_is_boolean(value))
				return refuse(
				    ret_reason,
				    "reload: field \"keep_connections\" must be true or false");
			request.keep_connections = json_is_true(value);
		}
	}

	if (request.command == CONTROL_INSPECT) {
		value = json_object_get(root, "verify");
		if (value) {
			if (!json_is_boolean(value))
				return refuse(ret_reason,
					      "inspect: field \"verify\" must be true or false");
			request.verify = json_is_true(value);
		}
	}

	if (request.command == CONTROL_UNBLOCK) {
		value = json_object_get(root, "address");
		if (!value)
			return refuse(ret_reason, "unblock: missing field \"address\"");
		if (!json_is_string(value) || !is_address_text(json_string_value(value)))
			return refuse(ret_reason,
				      "unblock: field \"address\" must be an IPv4 or IPv6 address");
		snprintf(request.address, sizeof(request.address), "%s", json_string_value(value));
	}

	if (request.command == CONTROL_SHARED_BLOCKS) {
		int r = decode_shared_blocks(root, &request, ret_reason);

		if (r < 0)
			return r;
	}

	*ret_request = request;
	return 0;
}

static json_t *shared_blocks_json(const struct control_request *request)
{
	const struct control_bridge_report *b = &request->bridge;
	_cleanup_(json_decrefp) json_t *root = json_object();
	json_t *bans = json_array(), *unbans = json_array();

	if (!root || !bans || !unbans ||
	    json_object_set_new(root, "command", json_string("shared-blocks")) < 0 ||
	    json_object_set_new(root, "ban", bans) < 0 ||
	    json_object_set_new(root, "unban", unbans) < 0)
		return NULL;
	for (size_t i = 0; i < request->n_bans; i++)
		if (json_array_append_new(
			bans, json_pack("{s:s, s:I}", "address", request->bans[i].address,
					"seconds", (json_int_t)request->bans[i].seconds)) < 0)
			return NULL;
	for (size_t i = 0; i < request->n_unbans; i++)
		if (json_array_append_new(unbans, json_string(request->unbans[i])) < 0)
			return NULL;
	if (b->present &&
	    json_object_set_new(root, "bridge",
				json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
					  "engine", b->engine, "lapi", b->lapi, "error", b->error,
					  "since_usec", (json_int_t)b->since_usec, "alerts_sent",
					  (json_int_t)b->alerts_sent, "alerts_failed",
					  (json_int_t)b->alerts_failed, "alerts_queued",
					  (json_int_t)b->alerts_queued, "decisions_new",
					  (json_int_t)b->decisions_new, "decisions_deleted",
					  (json_int_t)b->decisions_deleted, "decisions_skipped",
					  (json_int_t)b->decisions_skipped)) < 0)
		return NULL;
	return TAKE_PTR(root);
}

char *control_request_encode(const struct control_request *request)
{
	_cleanup_(json_decrefp) json_t *root =
	    request->command == CONTROL_SHARED_BLOCKS ? shared_blocks_json(request) : json_object();
	const char *name = control_command_name(request->command);

	if (request->command == CONTROL_SHARED_BLOCKS)
		return root ? json_dumps(root, JSON_COMPACT) : NULL;
	if (!root || !name)
		return NULL;
	if (json_object_set_new(root, "command", json_string(name)) < 0)
		return NULL;
	if (request->command == CONTROL_POLICY_SHOW &&
	    json_object_set_new(root, "name", json_string(request->name)) < 0)
		return NULL;
	if ((request->command == CONTROL_QUARANTINE || request->command == CONTROL_RELEASE ||
	     request->command == CONTROL_INSPECT || request->command == CONTROL_REPLACE) &&
	    json_object_set_new(root, "target", json_string(request->target)) < 0)
		return NULL;
	if (request->command == CONTROL_RELOAD && request->keep_connections &&
	    json_object_set_new(root, "keep_connections", json_true()) < 0)
		return NULL;
	if (request->command == CONTROL_INSPECT && request->verify &&
	    json_object_set_new(root, "verify", json_true()) < 0)
		return NULL;
	if (request->command == CONTROL_QUARANTINE && request->reason[0] &&
	    json_object_set_new(root, "reason", json_string(request->reason)) < 0)
		return NULL;
	if (request->command == CONTROL_UNBLOCK &&
	    json_object_set_new(root, "address", json_string(request->address)) < 0)
		return NULL;
	if (request->command == CONTROL_AUDIT_SHOW) {
		if (json_object_set_new(root, "since", json_integer((json_int_t)request->since)) <
			0 ||
		    json_object_set_new(root, "follow", json_boolean(request->follow)) < 0)
			return NULL;
	}
	return json_dumps(root, JSON_COMPACT);
}

char *control_reply_ok(json_t *result)
{
	_cleanup_(json_decrefp) json_t *root = json_object();

	if (!root)
		return NULL;
	if (json_object_set_new(root, "ok", json_true()) < 0)
		return NULL;
	if (result && json_object_set(root, "result", result) < 0)
		return NULL;
	return json_dumps(root, JSON_COMPACT);
}

char *control_reply_error(const char *reason)
{
	_cleanup_(json_decrefp) json_t *root = json_object();

	if (!root)
		return NULL;
	if (json_object_set_new(root, "ok", json_false()) < 0 ||
	    json_object_set_new(root, "error", json_string(reason)) < 0)
		return NULL;
	return json_dumps(root, JSON_COMPACT);
}

char *control_reply_error_details(const char *reason, const char *details_key, json_t *details)
{
	_cleanup_(json_decrefp) json_t *root = json_object();

	if (!root)
		return NULL;
	if (json_object_set_new(root, "ok", json_false()) < 0 ||
	    json_object_set_new(root, "error", json_string(reason)) < 0 ||
	    json_object_set(root, details_key, details) < 0)
		return NULL;
	return json_dumps(root, JSON_COMPACT);
}
