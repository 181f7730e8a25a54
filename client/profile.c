/* SPDX-License-Identifier: MIT */
/* The client profile (docs/clients.md): an INI file with one [Profile]
 * section, read only if owner-only like ssh's keys. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "macro.h"
#include "secret_file.h"

#define SERVICE_NAME_MAX 32 /* the policy's: [a-z0-9][a-z0-9_-]{0,31} */
#define INTERVAL_MAX_SEC (7 * 24 * 3600)
#define LINE_MAX_CHARS 4096

enum key {
	KEY_VERSION,
	KEY_SERVICE,
	KEY_CLIENT,
	KEY_HOST,
	KEY_PROTOCOL,
	KEY_PUBLIC_PORTS,
	KEY_INTERVAL,
	KEY_GRACE,
	KEY_AUTH,
	KEY_KEY,
	KEY_COUNT,
};

static const char *const key_names[KEY_COUNT] = {
    [KEY_VERSION] = "Version",	 [KEY_SERVICE] = "Service",   [KEY_CLIENT] = "Client",
    [KEY_HOST] = "Host",	 [KEY_PROTOCOL] = "Protocol", [KEY_PUBLIC_PORTS] = "PublicPorts",
    [KEY_INTERVAL] = "Interval", [KEY_GRACE] = "Grace",	      [KEY_AUTH] = "Auth",
    [KEY_KEY] = "Key",
};

struct parser {
	const char *name;
	unsigned line;
	char *error;
	size_t error_size;
};

__attribute__((format(printf, 2, 3))) static int fail(const struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->line)
		n = snprintf(ps->error, ps->error_size, "%s:%u: ", ps->name, ps->line);
	else
		n = snprintf(ps->error, ps->error_size, "%s: ", ps->name);
	if (n < 0 || (size_t)n >= ps->error_size)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(ps->error + n, ps->error_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = 0;
	return s;
}

/* A decimal number without sign or leading junk, at most max. */
static int parse_uint(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* "30s", "2min", "1h 30min", "500ms", "90" (seconds): the units of the
 * policy's time spans that a profile needs. */
static int parse_timespan(const char *s, uint64_t *ret_usec)
{
	static const struct {
		const char *unit;
		uint64_t usec;
	} units[] = {{"ms", 1000},	    {"s", 1000000},	   {"sec", 1000000},
		     {"min", 60000000},	    {"m", 60000000},	   {"h", 3600000000ULL},
		     {"d", 86400000000ULL}, {"w", 604800000000ULL}};
	uint64_t total = 0;
	bool any = false;

	while (*s) {
		size_t digits = 0, letters = 0;
		uint64_t v, scale = 0;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		while (isdigit((unsigned char)s[digits]))
			digits++;
		while (isalpha((unsigned char)s[digits + letters]))
			letters++;
		if (parse_uint(s, digits, UINT32_MAX, &v) < 0)
			return -EINVAL;
		if (letters == 0)
			scale = 1000000;
		for (size_t i = 0; letters && i < ELEMENTSOF(units); i++)
			if (strlen(units[i].unit) == letters &&
			    !strncmp(s + digits, units[i].unit, letters))
				scale = units[i].usec;
		if (!scale)
			return -EINVAL;
		total += v * scale;
		any = true;
		s += digits + letters;
		if (*s && *s != ' ')
			return -EINVAL;
	}
	if (!any)
		return -EINVAL;
	*ret_usec = total;
	return 0;
}

static bool service_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SERVICE_NAME_MAX)
		return false;
	if (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return false;
	return true;
}

/* An IPv4 or IPv6 literal, or a DNS name ([A-Za-z0-9.-], no leading '-'). */
static bool address_valid(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = strlen(s);

	if (inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1)
		return true;
	if (n == 0 || n > PROFILE_MAX_ADDRESS || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* The host id a host has when the profile gives none: its address, an IP
 * literal in the textual form the agent derives its default from. */
static void default_host_id(const char *address, char *ret, size_t size)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, address, &a4) == 1 && inet_ntop(AF_INET, &a4, ret, (socklen_t)size))
		return;
	if (inet_pton(AF_INET6, address, &a6) == 1 &&
	    inet_ntop(AF_INET6, &a6, ret, (socklen_t)size))
		return;
	snprintf(ret, size, "%s", address);
}

static int parse_host(const struct parser *ps, struct profile *p, char *value)
{
	struct profile_host *h;
	char *address = value, *host_id = NULL;
	size_t cut = strcspn(value, " \t");

	if (value[cut]) {
		value[cut] = 0;
		host_id = trim(value + cut + 1);
		if (strcspn(host_id, " \t") != strlen(host_id))
			return fail(ps, "Host=: expected ADDRESS [HOSTID], got more words");
	}
	if (!address_valid(address))
		return fail(ps, "Host=: '%s' is not an IP address or a host name", address);
	if (host_id && !schedule_host_id_valid(host_id))
		return fail(ps, "Host=: host id '%s' is not valid (1 to %d of A-Z a-z 0-9 _ . : -)",
			    host_id, SCHEDULE_MAX_HOST_ID);
	for (size_t i = 0; i < p->n_hosts; i++)
		if (streq(p->hosts[i].address, address))
			return fail(ps, "Host=: %s is listed twice", address);
	if (p->n_hosts == PROFILE_MAX_HOSTS)
		return fail(ps, "Host=: more than %d hosts", PROFILE_MAX_HOSTS);
	h = &p->hosts[p->n_hosts];
	snprintf(h->address, sizeof(h->address), "%s", address);
	if (host_id)
		snprintf(h->host_id, sizeof(h->host_id), "%s", host_id);
	else
		default_host_id(address, h->host_id, sizeof(h->host_id));
	if (!schedule_host_id_valid(h->host_id))
		return fail(ps, "Host=: %s needs a host id (Host=%s HOSTID)", address, address);
	p->n_hosts++;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_key(const struct parser *ps, struct profile *p, const char *value)
{
	size_t n = strlen(value);

	if (n % 2)
		return fail(ps, "Key=: an odd number of hex digits");
	if (n / 2 < PROFILE_MIN_KEY || n / 2 > PROFILE_MAX_KEY)
		return fail(ps, "Key=: %zu bytes; a key has %d to %d bytes (hex)", n / 2,
			    PROFILE_MIN_KEY, PROFILE_MAX_KEY);
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit(value[i]), lo = hex_digit(value[i + 1]);

		if (hi < 0 || lo < 0)
			return fail(ps, "Key=: not hex at character %zu", i + (hi < 0 ? 1 : 2));
		p->key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	p->key_len = n / 2;
	return 0;
}

static int parse_ports(const struct parser *ps, struct profile *p, const char *value)
{
	const char *dash = strchr(value, '-');
	uint64_t first, last;

	if (parse_uint(value, dash ? (size_t)(dash - value) : strlen(value), 65535, &first) < 0 ||
	    (dash && parse_uint(dash + 1, strlen(dash + 1), 65535, &last) < 0))
		return fail(ps, "PublicPorts=: '%s' is not PORT or PORT-PORT (1-65535)", value);
	if (!dash)
		last = first;
	if (first == 0 || first > last)
		return fail(ps, "PublicPorts=: '%s' is not a range of ports 1-65535, low to high",
			    value);
	p->first = (uint16_t)first;
	p->last = (uint16_t)last;
	return 0;
}

static int parse_value(const struct parser *ps, struct profile *p, enum key k, char *value)
{
	uint64_t v;

	switch (k) {
	case KEY_VERSION:
		if (parse_uint(value, strlen(value), UINT32_MAX, &v) < 0)
			return fail(ps, "Version=: '%s' is not a number", value);
		if (v != PROFILE_VERSION)
			return fail(ps,
				    "Version=%s: this mtd-client reads version %d profiles only",
				    value, PROFILE_VERSION);
		return 0;
	case KEY_SERVICE:
		if (!service_name_valid(value))
			return fail(ps,
				    "Service=: '%s' is not a service name ([a-z0-9][a-z0-9_-], "
				    "at most 32)",
				    value);
		snprintf(p->service, sizeof(p->service), "%s", value);
		return 0;
	case KEY_CLIENT:
		if (!schedule_client_name_valid(value))
			return fail(ps,
				    "Client=: '%s' is not a client name (1 to %d of A-Z a-z 0-9 "
				    "_ . -, not first . or -)",
				    value, SCHEDULE_MAX_CLIENT_NAME);
		snprintf(p->client, sizeof(p->client), "%s", value);
		return 0;
	case KEY_HOST:
		return parse_host(ps, p, value);
	case KEY_PROTOCOL:
		if (streq(value, "tcp"))
			p->protocol = PROFILE_PROTOCOL_TCP;
		else if (streq(value, "udp"))
			p->protocol = PROFILE_PROTOCOL_UDP;
		else
			return fail(ps, "Protocol=: '%s' is not tcp or udp", value);
		return 0;
	case KEY_PUBLIC_PORTS:
		return parse_ports(ps, p, value);
	case KEY_INTERVAL:
		if (parse_timespan(value, &v) < 0)
			return fail(ps, "Interval=: '%s' is not a time span (30s, 2min, 1h)",
				    value);
		if (v % 1000000 || v < 1000000 || v > INTERVAL_MAX_SEC * 1000000ULL)
			return fail(ps, "Interval=: '%s' is not whole seconds from 1s to 1w",
				    value);
		p->interval_sec = v / 1000000;
		return 0;
	case KEY_GRACE:
		if (parse_timespan(value, &v) < 0)
			return fail(ps, "Grace=: '%s' is not a time span (5s, 500ms)", value);
		p->grace_usec = v;
		return 0;
	case KEY_AUTH:
		if (streq(value, "none"))
			p->auth = PROFILE_AUTH_NONE;
		else if (streq(value, "knock"))
			p->auth = PROFILE_AUTH_KNOCK;
		else
			return fail(ps, "Auth=: '%s' is not none or knock", value);
		return 0;
	case KEY_KEY:
		return parse_key(ps, p, value);
	case KEY_COUNT:
		break;
	}
	return -EINVAL;
}

/* One line (NUL-terminated, no newline) of the profile. */
static int parse_line(struct parser *ps, struct profile *p, char *line, bool *in_section,
		      unsigned seen[KEY_COUNT])
{
	char *s = trim(line), *eq, *key, *value;
	enum key k;

	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		if (streq(s, "[Profile]")) {
			if (*in_section)
				return fail(ps, "[Profile] given twice");
			*in_section = true;
			return 0;
		}
		return fail(ps, "unknown section %s (a profile has [Profile] only)", s);
	}
	if (!*in_section)
		return fail(ps, "a key before [Profile]");
	eq = strchr(s, '=');
	if (!eq)
		return fail(ps, "expected KEY=VALUE");
	*eq = 0;
	key = trim(s);
	value = trim(eq + 1);
	for (k = 0; k < KEY_COUNT; k++)
		if (streq(key, key_names[k]))
			break;
	if (k == KEY_COUNT)
		return fail(ps, "unknown key %s=", key);
	if (!*value)
		return fail(ps, "%s=: empty value", key);
	if (seen[k] && k != KEY_HOST)
		return fail(ps, "%s= given twice (first on line %u)", key, seen[k]);
	if (!seen[k])
		seen[k] = ps->line;
	return parse_value(ps, p, k, value);
}

static int check_complete(struct parser *ps, struct profile *p, bool in_section,
			  const unsigned seen[KEY_COUNT])
{
	static const enum key required[] = {KEY_VERSION,      KEY_SERVICE,  KEY_CLIENT, KEY_HOST,
					    KEY_PUBLIC_PORTS, KEY_INTERVAL, KEY_KEY};

	ps->line = 0;
	if (!in_section)
		return fail(ps, "no [Profile] section");
	for (size_t i = 0; i < ELEMENTSOF(required); i++)
		if (!seen[required[i]])
			return fail(ps, "[Profile] has no %s=", key_names[required[i]]);
	if (p->grace_usec >= p->interval_sec * 1000000ULL) {
		ps->line = seen[KEY_GRACE];
		return fail(ps, "Grace=: must be shorter than Interval= (%llus)",
			    (unsigned long long)p->interval_sec);
	}
	return 0;
}

int profile_parse(const char *text, size_t len, const char *name, struct profile *ret, char *error,
		  size_t error_size)
{
	struct parser ps = {.name = name, .error = error, .error_size = error_size};
	unsigned seen[KEY_COUNT] = {0};
	bool in_section = false;
	char line[LINE_MAX_CHARS + 1];
	size_t at = 0;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (memchr(text, 0, len)) {
		r = fail(&ps, "a NUL byte: not a text file");
		goto done;
	}
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (text + at)) : len - at;

		ps.line++;
		if (n > LINE_MAX_CHARS) {
			r = fail(&ps, "line longer than %d characters", LINE_MAX_CHARS);
			goto done;
		}
		memcpy(line, text + at, n);
		line[n] = 0;
		at += n + 1;
		r = parse_line(&ps, ret, line, &in_section, seen);
		if (r < 0)
			goto done;
	}
	r = check_complete(&ps, ret, in_section, seen);
done:
	explicit_bzero(line, sizeof(line));
	if (r < 0)
		profile_clear(ret);
	return r;
}

int profile_load(const char *path, struct profile *ret, char *error, size_t error_size)
{
	struct parser ps = {.name = path, .error = error, .error_size = error_size};
	const char *refusal;
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		fail(&ps, "%s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		fail(&ps, "%s", strerror(-r));
		goto done;
	}
	refusal = secret_file_refusal(&st);
	if (refusal) {
		char facts[64];

		secret_file_describe(&st, facts, sizeof(facts));
		r = fail(&ps, "%s: %s; it holds a key, so mtd-client does not read it", facts,
			 refusal);
		goto done;
	}
	if (st.st_size > PROFILE_MAX_SIZE) {
		r = fail(&ps, "%lld bytes; a profile has at most %d", (long long)st.st_size,
			 PROFILE_MAX_SIZE);
		goto done;
	}
	text = malloc(PROFILE_MAX_SIZE + 1);
	if (!text) {
		r = fail(&ps, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, PROFILE_MAX_SIZE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			fail(&ps, "%s", strerror(-r));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > PROFILE_MAX_SIZE) {
			r = fail(&ps, "more than %d bytes", PROFILE_MAX_SIZE);
			goto done;
		}
	}
	r = profile_parse(text, len, path, ret, error, error_size);
done:
	if (text) {
		explicit_bzero(text, PROFILE_MAX_SIZE + 1);
		free(text);
	}
	close(fd);
	return r;
}

void profile_clear(struct profile *p)
{
	explicit_bzero(p, sizeof(*p));
}

const struct profile_host *profile_find_host(const struct profile *p, const char *h)
{
	for (size_t i = 0; i < p->n_hosts; i++)
		if (streq(p->hosts[i].address, h) || streq(p->hosts[i].host_id, h))
			return &p->hosts[i];
	return NULL;
}

struct schedule_client profile_schedule(const struct profile *p, const struct profile_host *host)
{
	return (struct schedule_client){.key = p->key,
					.key_len = p->key_len,
					.service = p->service,
					.client = p->client,
					.host_id = host->host_id,
					.first = p->first,
					.last = p->last};
}

const char *profile_protocol_name(enum profile_protocol protocol)
{
	return protocol == PROFILE_PROTOCOL_UDP ? "udp" : "tcp";
}

const char *profile_auth_name(enum profile_auth auth)
{
	return auth == PROFILE_AUTH_KNOCK ? "knock" : "none";
}
