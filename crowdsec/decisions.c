/* SPDX-License-Identifier: MIT */
/* What the bridge reads and writes, without the network: the credential
 * files, Go durations, the decision stream, the alert of a record. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crowdsec.h"
#include "macro.h"
#include "secret_file.h"

_printf_(2, 3) static int fail(char reason[CROWDSEC_REASON_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, CROWDSEC_REASON_MAX, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The whole of a small secret file, NUL-terminated, checked on the
 * descriptor read. */
static int read_secret(const char *path, char *buf, size_t size, char reason[CROWDSEC_REASON_MAX])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	const char *refusal;
	char facts[96];
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		int r = -errno;

		snprintf(reason, CROWDSEC_REASON_MAX, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0)
		return fail(reason, "%s: %s", path, strerror(errno));
	refusal = secret_file_refusal(&st);
	if (refusal) {
		secret_file_describe(&st, facts, sizeof(facts));
		snprintf(reason, CROWDSEC_REASON_MAX, "%s: %s (%s)", path, refusal, facts);
		return -EPERM;
	}
	while ((n = read(fd, buf + len, size - 1 - len)) > 0) {
		len += (size_t)n;
		if (len == size - 1)
			return fail(reason, "%s: longer than %zu bytes", path, size - 1);
	}
	if (n < 0)
		return fail(reason, "%s: %s", path, strerror(errno));
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return fail(reason, "%s: contains a NUL byte", path);
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	/* YAML may quote a scalar */
	if (end - s >= 2 &&
	    ((s[0] == '"' && end[-1] == '"') || (s[0] == '\'' && end[-1] == '\''))) {
		end[-1] = '\0';
		s++;
	}
	return s;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int crowdsec_read_machine_file(const char *path, struct crowdsec_machine *ret,
			       char reason[CROWDSEC_REASON_MAX])
{
	struct crowdsec_machine m = {0};
	char buf[2048], *line, *save = NULL;
	unsigned lineno = 0;
	int r;

	r = read_secret(path, buf, sizeof(buf), reason);
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *key, *value, *out = NULL;
		size_t out_size = 0;

		lineno++;
		if (!colon || line[0] == '#')
			continue;
		*colon = '\0';
		key = trim(line);
		value = trim(colon + 1);
		if (streq(key, "url"))
			out = m.url, out_size = sizeof(m.url);
		else if (streq(key, "login"))
			out = m.login, out_size = sizeof(m.login);
		else if (streq(key, "password"))
			out = m.password, out_size = sizeof(m.password);
		if (!out)
			continue;
		if (!value[0] || strlen(value) >= out_size || !printable(value))
			return fail(reason, "%s:%u: %s must be printable, 1 to %zu characters",
				    path, lineno, key, out_size - 1);
		memcpy(out, value, strlen(value) + 1);
	}
	if (!m.login[0] || !m.password[0])
		return fail(reason,
			    "%s: needs \"login:\" and \"password:\" (cscli machines add -f)", path);
	*ret = m;
	return 0;
}

int crowdsec_read_key_file(const char *path, char *ret_key, size_t size,
			   char reason[CROWDSEC_REASON_MAX])
{
	char buf[512], *key;
	int r;

	r = read_secret(path, buf, sizeof(buf), reason);
	if (r < 0)
		return r;
	key = trim(buf);
	if (!key[0] || strlen(key) >= size || !printable(key))
		return fail(reason, "%s: the key must be one printable word of 1 to %zu characters",
			    path, size - 1);
	memcpy(ret_key, key, strlen(key) + 1);
	return 0;
}

int crowdsec_parse_duration(const char *text, int64_t *ret_usec)
{
	static const struct {
		const char *unit;
		double usec;
	} units[] = {
	    {"h", 3600e6}, {"ms", 1e3}, {"m", 60e6}, {"s", 1e6}, {"us", 1}, {"µs", 1}, {"ns", 1e-3},
	};
	const char *p = text;
	bool negative = false;
	double total = 0;

	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	if (streq(p, "0")) {
		*ret_usec = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		char *end;
		double value;
		size_t i;

		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return -EINVAL;
		value = strtod(p, &end);
		if (end == p)
			return -EINVAL;
		p = end;
		for (i = 0; i < ELEMENTSOF(units); i++)
			if (strncmp(p, units[i].unit, strlen(units[i].unit)) == 0)
				break;
		if (i == ELEMENTSOF(units))
			return -EINVAL;
		p += strlen(units[i].unit);
		total += value * units[i].usec;
		if (total > 1e18)
			return -ERANGE;
	}
	*ret_usec = (int64_t)(negative ? -total : total);
	return 0;
}

/* A decision's value as the agent takes it: one address ("Ip" scope, or a
 * "Range" of /32 or /128), or a range ADDRESS/LENGTH with the host bits
 * cleared ("Range" scope). */
static bool decision_target(const char *scope, const char *value,
			    char out[CONTROL_SHARED_ADDRESS_MAX])
{
	char copy[64];
	const char *slash;
	unsigned char bin[16];
	unsigned len = 0, bits;
	int family;

	if (!value || strlen(value) >= sizeof(copy))
		return false;
	memcpy(copy, value, strlen(value) + 1);
	slash = strchr(value, '/');
	if (strcasecmp(scope, "ip") == 0 && slash)
		return false;
	if (slash) {
		if (strcasecmp(scope, "range") != 0)
			return false;
		copy[slash - value] = '\0';
	} else if (strcasecmp(scope, "ip") != 0)
		return false;
	family = strchr(copy, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(family, copy, bin) != 1)
		return false;
	bits = family == AF_INET ? 32 : 128;
	if (slash) {
		size_t digits = strlen(slash + 1);

		if (digits == 0 || digits > 3 || strspn(slash + 1, "0123456789") != digits)
			return false;
		for (const char *p = slash + 1; *p; p++)
			len = len * 10 + (unsigned)(*p - '0');
		if (len > bits)
			return false;
	} else
		len = bits;
	/* the range's first address: host bits cleared */
	for (unsigned b = len; b < bits; b++)
		bin[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
	inet_ntop(family, bin, out, INET6_ADDRSTRLEN);
	if (len < bits)
		snprintf(out + strlen(out), CONTROL_SHARED_ADDRESS_MAX - strlen(out), "/%u", len);
	return true;
}

/* A single address (a record's source). */
static bool single_address(const char *scope, const char *value,
			   char out[CONTROL_SHARED_ADDRESS_MAX])
{
	return decision_target(scope, value, out) && !strchr(out, '/');
}

static int parse_list(json_t *list, const char *name, bool bans, struct crowdsec_decision **ret,
		      size_t *ret_n, size_t *skipped, char reason[CROWDSEC_REASON_MAX])
{
	struct crowdsec_decision *out;
	size_t i, n = 0;
	json_t *d;

	*ret = NULL;
	*ret_n = 0;
	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return fail(reason, "decision stream: \"%s\" is not an array", name);
	out = calloc(json_array_size(list) + 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	json_array_foreach(list, i, d)
	{
		const char *type = json_string_value(json_object_get(d, "type"));
		const char *scope = json_string_value(json_object_get(d, "scope"));
		const char *value = json_string_value(json_object_get(d, "value"));
		const char *duration = json_string_value(json_object_get(d, "duration"));
		int64_t usec = 0;

		if (!type || !scope || !value || strcasecmp(type, "ban") != 0 ||
		    !decision_target(scope, value, out[n].address)) {
			(*skipped)++;
			continue;
		}
		if (bans && (!duration || crowdsec_parse_duration(duration, &usec) < 0 ||
			     usec < (int64_t)1000000)) {
			(*skipped)++; /* expired, or no duration to keep it for */
			continue;
		}
		out[n++].remaining_usec = usec;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

int crowdsec_parse_stream(json_t *body, struct crowdsec_stream *ret,
			  char reason[CROWDSEC_REASON_MAX])
{
	struct crowdsec_stream s = {0};
	int r;

	if (!json_is_object(body))
		return fail(reason, "decision stream: the answer is not a JSON object");
	r = parse_list(json_object_get(body, "new"), "new", true, &s.bans, &s.n_bans, &s.skipped,
		       reason);
	if (r >= 0)
		r = parse_list(json_object_get(body, "deleted"), "deleted", false, &s.unbans,
			       &s.n_unbans, &s.skipped, reason);
	if (r < 0) {
		crowdsec_stream_done(&s);
		return r;
	}
	*ret = s;
	return 0;
}

void crowdsec_stream_done(struct crowdsec_stream *stream)
{
	free(stream->bans);
	free(stream->unbans);
	*stream = (struct crowdsec_stream){0};
}

json_t *crowdsec_alert_from_record(json_t *record, const char *now_text)
{
	json_t *fields = json_object_get(record, "fields");
	const char *type = json_string_value(json_object_get(record, "type"));
	const char *source = json_string_value(json_object_get(fields, "source"));
	const char *service = json_string_value(json_object_get(fields, "service"));
	const char *proto = json_string_value(json_object_get(fields, "proto"));
	const char *evidence = json_string_value(json_object_get(fields, "evidence"));
	json_t *block_sec = json_object_get(fields, "block_sec");
	char address[CONTROL_SHARED_ADDRESS_MAX], message[256], duration[32];

	if (!type || !streq(type, "source-blocked") || !source || !json_is_integer(block_sec) ||
	    json_integer_value(block_sec) < 1 || json_is_true(json_object_get(fields, "simulated")))
		return NULL;
	if (!single_address("Ip", source, address))
		return NULL;
	if (!service)
		service = "";
	snprintf(message, sizeof(message), "mtd-agent: %s touched a decoy of %s (%s/%lld, %s)",
		 address, service[0] ? service : "a former service", proto ? proto : "?",
		 (long long)json_integer_value(json_object_get(fields, "port")),
		 evidence ? evidence : "?");
	snprintf(duration, sizeof(duration), "%llds", (long long)json_integer_value(block_sec));
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:b, s:b,"
	    " s:[{s:s, s:[{s:s, s:s}, {s:s, s:s}]}],"
	    " s:{s:s, s:s, s:s},"
	    " s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:b}],"
	    " s:[{s:s, s:s}]}",
	    "scenario", CROWDSEC_SCENARIO, "scenario_hash", "", "scenario_version", "1", "message",
	    message, "events_count", 1, "start_at", now_text, "stop_at", now_text, "capacity", 0,
	    "leakspeed", "0", "simulated", 0, "remediation", 1, "events", "timestamp", now_text,
	    "meta", "key", "service", "value", service, "key", "source", "value", address, "source",
	    "scope", "Ip", "value", address, "ip", address, "decisions", "type", "ban", "duration",
	    duration, "scope", "Ip", "value", address, "origin", "crowdsec", "scenario",
	    CROWDSEC_SCENARIO, "simulated", 0, "meta", "key", "service", "value", service);
}
