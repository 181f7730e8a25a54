/* SPDX-License-Identifier: MIT */
/* Pure value parsers for policy files: numbers, time spans, sizes, ports,
 * addresses, capabilities, syscalls, command lines, names and paths. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/socket.h>

#include "macro.h"
#include "policy_internal.h"
#include "policy.h"

static int fail(const char **ret_reason, const char *reason)
{
	if (ret_reason)
		*ret_reason = reason;
	return -EINVAL;
}

/* Parse a run of decimal digits at *p (advancing it). No sign, no spaces. */
static int parse_digits(const char **p, uint64_t *ret, const char **ret_reason)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return fail(ret_reason, "expected a number");
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return fail(ret_reason, "number too large");
		v = v * 10 + d;
	}
	*p = s;
	*ret = v;
	return 0;
}

int policy_parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
			const char **ret_reason)
{
	const char *p = s;
	uint64_t v;
	int r;

	if (!s || !*s)
		return fail(ret_reason, "empty value");
	if (!isdigit((unsigned char)*p))
		return fail(ret_reason, "not an unsigned decimal number");
	r = parse_digits(&p, &v, ret_reason);
	if (r < 0)
		return r;
	if (*p)
		return fail(ret_reason, "not an unsigned decimal number");
	if (v < min)
		return fail(ret_reason, "number too small");
	if (v > max)
		return fail(ret_reason, "number too large");
	*ret = v;
	return 0;
}

int policy_parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret,
			  const char **ret_reason)
{
	uint64_t v;
	int r = policy_parse_uint64(s, min, max, &v, ret_reason);
	if (r < 0)
		return r;
	*ret = (unsigned)v;
	return 0;
}

int policy_parse_bool(const char *s, bool *ret, const char **ret_reason)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return fail(ret_reason, "not a boolean (yes/no, true/false, on/off, 1/0)");
}

/* --- time spans ------------------------------------------------------------ */

struct unit {
	const char *suffix;
	uint64_t mult;
};

static const struct unit time_units[] = {
    {"us", 1},
    {"usec", 1},
    {"ms", USEC_PER_MSEC},
    {"msec", USEC_PER_MSEC},
    {"s", USEC_PER_SEC},
    {"sec", USEC_PER_SEC},
    {"second", USEC_PER_SEC},
    {"seconds", USEC_PER_SEC},
    {"m", USEC_PER_MINUTE},
    {"min", USEC_PER_MINUTE},
    {"minute", USEC_PER_MINUTE},
    {"minutes", USEC_PER_MINUTE},
    {"h", USEC_PER_HOUR},
    {"hr", USEC_PER_HOUR},
    {"hour", USEC_PER_HOUR},
    {"hours", USEC_PER_HOUR},
    {"d", USEC_PER_DAY},
    {"day", USEC_PER_DAY},
    {"days", USEC_PER_DAY},
    {"w", USEC_PER_WEEK},
    {"week", USEC_PER_WEEK},
    {"weeks", USEC_PER_WEEK},
};

int policy_parse_timespan(const char *s, uint64_t *ret_usec, const char **ret_reason)
{
	const char *p = s;
	uint64_t total = 0;
	bool any = false;

	if (!s || !*s)
		return fail(ret_reason, "empty value");

	for (;;) {
		uint64_t n, mult = 0;
		const char *u;
		size_t ulen;
		int r;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (!isdigit((unsigned char)*p))
			return fail(ret_reason, "not a time span (e.g. 90s, 15min, 2h 30min)");
		r = parse_digits(&p, &n, ret_reason);
		if (r < 0)
			return r;
		if (*p == '.')
			return fail(ret_reason, "fractions are not supported");
		while (*p == ' ' || *p == '\t')
			p++;
		u = p;
		while (isalpha((unsigned char)*p))
			p++;
		ulen = (size_t)(p - u);
		if (ulen == 0) {
			/* A bare number is seconds, but only on its own. */
			if (any || *p)
				return fail(ret_reason, "missing time unit");
			mult = USEC_PER_SEC;
		} else {
			for (size_t i = 0; i < ELEMENTSOF(time_units); i++)
				if (strlen(time_units[i].suffix) == ulen &&
				    strncmp(time_units[i].suffix, u, ulen) == 0) {
					mult = time_units[i].mult;
					break;
				}
			if (mult == 0)
				return fail(ret_reason, "unknown time unit");
		}
		if (n > UINT64_MAX / mult || total > UINT64_MAX - n * mult)
			return fail(ret_reason, "time span too large");
		total += n * mult;
		any = true;
	}
	if (!any)
		return fail(ret_reason, "empty value");
	*ret_usec = total;
	return 0;
}

char *policy_format_timespan(char *buf, size_t size, uint64_t usec)
{
	static const struct unit order[] = {
	    {"w", USEC_PER_WEEK},
	    {"d", USEC_PER_DAY},
	    {"h", USEC_PER_HOUR},
	    {"min", USEC_PER_MINUTE},
	    {"s", USEC_PER_SEC},
	    {"ms", USEC_PER_MSEC},
	    {"us", 1},
	};
	size_t off = 0;

	if (size == 0)
		return buf;
	buf[0] = 0;
	if (usec == 0) {
		snprintf(buf, size, "0");
		return buf;
	}
	for (size_t i = 0; i < ELEMENTSOF(order) && usec > 0; i++) {
		uint64_t n = usec / order[i].mult;
		int k;
		if (n == 0)
			continue;
		usec -= n * order[i].mult;
		k = snprintf(buf + off, size - off, "%s%" PRIu64 "%s", off ? " " : "", n,
			     order[i].suffix);
		if (k < 0 || (size_t)k >= size - off)
			break;
		off += (size_t)k;
	}
	return buf;
}

/* --- sizes ------------------------------------------------------------------ */

int policy_parse_size(const char *s, uint64_t *ret_bytes, const char **ret_reason)
{
	static const struct unit size_units[] = {
	    {"B", 1},
	    {"K", UINT64_C(1) << 10},
	    {"M", UINT64_C(1) << 20},
	    {"G", UINT64_C(1) << 30},
	    {"T", UINT64_C(1) << 40},
	};
	const char *p = s;
	uint64_t n, mult = 1;
	int r;

	if (!s || !*s)
		return fail(ret_reason, "empty value");
	if (!isdigit((unsigned char)*p))
		return fail(ret_reason, "not a size (e.g. 4096, 512K, 256M, 1G)");
	r = parse_digits(&p, &n, ret_reason);
	if (r < 0)
		return r;
	if (*p == '.')
		return fail(ret_reason, "fractions are not supported");
	if (*p) {
		mult = 0;
		for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
			if (streq(p, size_units[i].suffix))
				mult = size_units[i].mult;
		if (mult == 0)
			return fail(ret_reason, "unknown size suffix (use B, K, M, G or T)");
	}
	if (n > UINT64_MAX / mult)
		return fail(ret_reason, "size too large");
	*ret_bytes = n * mult;
	return 0;
}

char *policy_format_size(char *buf, size_t size, uint64_t bytes)
{
	static const char suffixes[] = "TGMK";

	for (size_t i = 0; i < 4; i++) {
		unsigned shift = (unsigned)(40 - 10 * i);
		uint64_t unit = UINT64_C(1) << shift;
		if (bytes >= unit && bytes % unit == 0) {
			snprintf(buf, size, "%" PRIu64 "%c", bytes >> shift, suffixes[i]);
			return buf;
		}
	}
	snprintf(buf, size, "%" PRIu64, bytes);
	return buf;
}

/* --- ports and protocols ---------------------------------------------------- */

int policy_parse_port(const char *s, uint16_t *ret, const char **ret_reason)
{
	uint64_t v;
	int r = policy_parse_uint64(s, 0, UINT64_MAX, &v, ret_reason);
	if (r < 0)
		return r == -EINVAL ? fail(ret_reason, "not a port number") : r;
	if (v < 1 || v > 65535)
		return fail(ret_reason, "port out of range 1-65535");
	*ret = (uint16_t)v;
	return 0;
}

int policy_parse_port_range(const char *s, struct port_range *ret, const char **ret_reason)
{
	const char *dash = strchr(s, '-');
	struct port_range pr;
	int r;

	if (!dash) {
		r = policy_parse_port(s, &pr.first, ret_reason);
		if (r < 0)
			return r;
		pr.last = pr.first;
	} else {
		char first[8];
		size_t n = (size_t)(dash - s);
		if (n == 0 || n >= sizeof(first))
			return fail(ret_reason, "not a port range (FIRST-LAST)");
		memcpy(first, s, n);
		first[n] = 0;
		r = policy_parse_port(first, &pr.first, ret_reason);
		if (r < 0)
			return r;
		r = policy_parse_port(dash + 1, &pr.last, ret_reason);
		if (r < 0)
			return r;
		if (pr.first > pr.last)
			return fail(ret_reason, "port range is reversed (first > last)");
	}
	*ret = pr;
	return 0;
}

int policy_parse_proto(const char *s, enum policy_proto *ret, const char **ret_reason)
{
	if (streq(s, "tcp"))
		*ret = POLICY_PROTO_TCP;
	else if (streq(s, "udp"))
		*ret = POLICY_PROTO_UDP;
	else
		return fail(ret_reason, "unknown protocol (tcp or udp)");
	return 0;
}

const char *policy_proto_to_string(enum policy_proto proto)
{
	return proto == POLICY_PROTO_UDP ? "udp" : "tcp";
}

int policy_parse_port_proto(const char *s, uint16_t *ret_port, enum policy_proto *ret_proto,
			    const char **ret_reason)
{
	const char *slash = strchr(s, '/');
	enum policy_proto proto = POLICY_PROTO_TCP;
	char port[8];
	uint16_t v;
	int r;

	if (slash) {
		size_t n = (size_t)(slash - s);
		if (n == 0 || n >= sizeof(port))
			return fail(ret_reason, "not PORT/PROTO");
		memcpy(port, s, n);
		port[n] = 0;
		r = policy_parse_proto(slash + 1, &proto, ret_reason);
		if (r < 0)
			return r;
		r = policy_parse_port(port, &v, ret_reason);
	} else
		r = policy_parse_port(s, &v, ret_reason);
	if (r < 0)
		return r;
	*ret_port = v;
	*ret_proto = proto;
	return 0;
}

/* --- addresses -------------------------------------------------------------- */

static unsigned family_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

static const uint8_t *cidr_bytes(const struct cidr *c)
{
	return c->family == AF_INET ? (const uint8_t *)&c->addr.v4 : c->addr.v6.s6_addr;
}

static bool bit_set(const uint8_t *bytes, unsigned i)
{
	return bytes[i / 8] & (0x80u >> (i % 8));
}

/* The address and prefix of s, host bits and all. */
static int parse_cidr_bits(const char *s, bool allow_bare, struct cidr *ret,
			   const char **ret_reason)
{
	const char *slash = strchr(s, '/');
	char addr[INET6_ADDRSTRLEN];
	struct cidr c = {0};
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	int r;

	if (n == 0 || n >= sizeof(addr))
		return fail(ret_reason, "not an IP address");
	memcpy(addr, s, n);
	addr[n] = 0;
	if (inet_pton(AF_INET, addr, &c.addr.v4) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &c.addr.v6) == 1)
		c.family = AF_INET6;
	else
		return fail(ret_reason, "not an IPv4 or IPv6 address");

	if (slash) {
		r = policy_parse_unsigned(slash + 1, 0, family_bits(c.family), &c.prefix_len,
					  ret_reason);
		if (r < 0)
			return fail(ret_reason, c.family == AF_INET ? "prefix length not in 0-32"
								    : "prefix length not in 0-128");
	} else if (allow_bare)
		c.prefix_len = family_bits(c.family);
	else
		return fail(ret_reason, "missing /PREFIX");
	*ret = c;
	return 0;
}

static bool has_host_bits(const struct cidr *c)
{
	for (unsigned i = c->prefix_len; i < family_bits(c->family); i++)
		if (bit_set(cidr_bytes(c), i))
			return true;
	return false;
}

int policy_parse_cidr(const char *s, bool allow_bare, struct cidr *ret, const char **ret_reason)
{
	struct cidr c;
	int r = parse_cidr_bits(s, allow_bare, &c, ret_reason);

	if (r < 0)
		return r;
	if (has_host_bits(&c))
		return fail(ret_reason, "host bits set after the prefix");
	*ret = c;
	return 0;
}

bool policy_cidr_host_bits(const char *s, bool allow_bare, struct cidr *ret_network)
{
	struct cidr c;

	if (parse_cidr_bits(s, allow_bare, &c, NULL) < 0 || !has_host_bits(&c))
		return false;
	for (unsigned i = c.prefix_len; i < family_bits(c.family); i++) {
		uint8_t *b = c.family == AF_INET ? (uint8_t *)&c.addr.v4 : c.addr.v6.s6_addr;
		b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
	}
	*ret_network = c;
	return true;
}

/* An IPv4-mapped IPv6 prefix (::ffff:0:0/96 and longer) as the IPv4 prefix. */
static struct cidr unmap_cidr(const struct cidr *c)
{
	struct cidr v4 = {.family = AF_INET};

	if (c->family != AF_INET6 || c->prefix_len < 96 || !IN6_IS_ADDR_V4MAPPED(&c->addr.v6))
		return *c;
	memcpy(&v4.addr.v4, c->addr.v6.s6_addr + 12, 4);
	v4.prefix_len = c->prefix_len - 96;
	return v4;
}

bool policy_cidr_contains(const struct cidr *c, int family, const void *addr)
{
	struct cidr a = {.family = family}, net = unmap_cidr(c);

	if (family == AF_INET)
		memcpy(&a.addr.v4, addr, sizeof(a.addr.v4));
	else if (family == AF_INET6)
		memcpy(&a.addr.v6, addr, sizeof(a.addr.v6));
	else
		return false;
	a.prefix_len = family_bits(family);
	a = unmap_cidr(&a);
	/* a is one address: it overlaps net exactly when net holds it. */
	return policy_cidr_overlap(&net, &a);
}

char *policy_format_cidr(char *buf, size_t size, const struct cidr *cidr)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(cidr->family, cidr_bytes(cidr), a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, cidr->prefix_len);
	return buf;
}

bool policy_cidr_overlap(const struct cidr *a, const struct cidr *b)
{
	unsigned n = a->prefix_len < b->prefix_len ? a->prefix_len : b->prefix_len;

	if (a->family != b->family)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (bit_set(cidr_bytes(a), i) != bit_set(cidr_bytes(b), i))
			return false;
	return true;
}

int policy_parse_socket_address(const char *s, struct socket_address *ret, const char **ret_reason)
{
	struct socket_address sa = {0};
	char addr[INET6_ADDRSTRLEN];
	const char *port;
	size_t n;
	int r;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return fail(ret_reason, "not [IPV6]:PORT");
		n = (size_t)(end - s - 1);
		if (n == 0 || n >= sizeof(addr))
			return fail(ret_reason, "not an IPv6 address");
		memcpy(addr, s + 1, n);
		addr[n] = 0;
		if (inet_pton(AF_INET6, addr, &sa.addr.v6) != 1)
			return fail(ret_reason, "not an IPv6 address");
		sa.family = AF_INET6;
		port = end + 2;
	} else {
		const char *colon = strchr(s, ':');
		if (!colon)
			return fail(ret_reason, "missing :PORT");
		if (strchr(colon + 1, ':'))
			return fail(ret_reason, "IPv6 addresses must be written [ADDR]:PORT");
		n = (size_t)(colon - s);
		if (n == 0 || n >= sizeof(addr))
			return fail(ret_reason, "not an IPv4 address");
		memcpy(addr, s, n);
		addr[n] = 0;
		if (inet_pton(AF_INET, addr, &sa.addr.v4) != 1)
			return fail(ret_reason, "not an IPv4 address");
		sa.family = AF_INET;
		port = colon + 1;
	}
	r = policy_parse_port(port, &sa.port, ret_reason);
	if (r < 0)
		return r;
	*ret = sa;
	return 0;
}

char *policy_format_socket_address(char *buf, size_t size, const struct socket_address *sa)
{
	char a[INET6_ADDRSTRLEN] = "?";
	inet_ntop(sa->family, sa->family == AF_INET ? (const void *)&sa->addr.v4 : &sa->addr.v6, a,
		  sizeof(a));
	if (sa->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", a, sa->port);
	else
		snprintf(buf, size, "%s:%u", a, sa->port);
	return buf;
}

int policy_parse_egress(const char *s, struct egress_rule *ret, const char **ret_reason)
{
	struct egress_rule e = {0};
	char proto[8], ports[16];
	const char *p = s, *w;
	size_t n;
	int r;

	/* PROTO/ */
	w = strchr(p, '/');
	if (!w || (size_t)(w - p) >= sizeof(proto) || w == p)
		return fail(ret_reason, "not PROTO/PORT[-PORT] [CIDR]");
	n = (size_t)(w - p);
	memcpy(proto, p, n);
	proto[n] = 0;
	r = policy_parse_proto(proto, &e.proto, ret_reason);
	if (r < 0)
		return r;
	/* PORT[-PORT] */
	p = w + 1;
	n = strcspn(p, " \t");
	if (n == 0 || n >= sizeof(ports))
		return fail(ret_reason, "not PROTO/PORT[-PORT] [CIDR]");
	memcpy(ports, p, n);
	ports[n] = 0;
	r = policy_parse_port_range(ports, &e.ports, ret_reason);
	if (r < 0)
		return r;
	p += n;
	while (*p == ' ' || *p == '\t')
		p++;
	/* [CIDR] */
	if (*p) {
		char dest[POLICY_CIDR_MAX];
		n = strcspn(p, " \t");
		if (n >= sizeof(dest))
			return fail(ret_reason, "not an IP address");
		memcpy(dest, p, n);
		dest[n] = 0;
		r = policy_parse_cidr(dest, true, &e.destination, ret_reason);
		if (r < 0)
			return r;
		e.has_destination = true;
		p += n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p)
			return fail(ret_reason, "trailing garbage (one rule per Egress= line)");
	}
	*ret = e;
	return 0;
}

/* --- capabilities and syscalls ---------------------------------------------- */

int policy_parse_capability(const char *s, unsigned *ret_cap, const char **ret_reason)
{
	char lower[64];
	cap_value_t cap;
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(lower))
		return fail(ret_reason, "unknown capability");
	for (size_t i = 0; i <= n; i++)
		lower[i] = (char)tolower((unsigned char)s[i]);
	/* cap_from_name() also accepts numbers and "all"; we want names only. */
	if (strncmp(lower, "cap_", 4) != 0)
		return fail(ret_reason, "unknown capability (expected CAP_...)");
	if (cap_from_name(lower, &cap) < 0 || cap < 0 || cap > 63)
		return fail(ret_reason, "unknown capability");
	*ret_cap = (unsigned)cap;
	return 0;
}

int policy_check_syscall(const char *s, const char **ret_reason)
{
	if (s[0] == '@') {
		if (!syscall_group_lookup(s))
			return fail(ret_reason, "unknown system call group");
		return 0;
	}
	for (const char *p = s; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
			return fail(ret_reason, "unknown system call");
	if (!*s || seccomp_syscall_resolve_name(s) == __NR_SCMP_ERROR)
		return fail(ret_reason, "unknown system call");
	return 0;
}

/* --- command lines ---------------------------------------------------------- */

void policy_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void strvp_free(char ***v)
{
	policy_strv_free(*v);
}

int policy_split_words(const char *s, char ***ret, size_t *ret_count, const char **ret_reason)
{
	_cleanup_(strvp_free) char **v = NULL;
	_cleanup_free_ char *word = NULL;
	size_t count = 0, len = strlen(s);
	const char *p = s;

	v = calloc(POLICY_EXEC_ARGS_MAX + 1, sizeof(char *));
	word = malloc(len + 1);
	if (!v || !word)
		return -ENOMEM;

	for (;;) {
		size_t w = 0;
		bool in_word = false;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			break;
		while (*p && *p != ' ' && *p != '\t') {
			in_word = true;
			if (*p == '\\') {
				if (!p[1])
					return fail(ret_reason, "trailing backslash");
				word[w++] = p[1];
				p += 2;
			} else if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				if (!end)
					return fail(ret_reason, "unbalanced single quote");
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				p++;
				for (;;) {
					if (!*p)
						return fail(ret_reason, "unbalanced double quote");
					if (*p == '"')
						break;
					if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
						p++;
					word[w++] = *p++;
				}
				p++;
			} else
				word[w++] = *p++;
		}
		if (!in_word)
			break;
		if (count >= POLICY_EXEC_ARGS_MAX)
			return fail(ret_reason, "too many arguments");
		v[count] = strndup(word, w);
		if (!v[count])
			return -ENOMEM;
		count++;
	}
	if (count == 0)
		return fail(ret_reason, "empty command line");
	*ret = TAKE_PTR(v);
	*ret_count = count;
	return 0;
}

/* --- names and paths -------------------------------------------------------- */

int policy_check_service_name(const char *s, const char **ret_reason)
{
	size_t n = strlen(s);

	if (n == 0)
		return fail(ret_reason, "empty value");
	if (n > POLICY_NAME_MAX)
		return fail(ret_reason, "service name longer than 32 characters");
	if (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0]))
		return fail(ret_reason, "service name must start with [a-z0-9]");
	for (size_t i = 1; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return fail(ret_reason, "service name may only contain [a-z0-9_-]");
	return 0;
}

int policy_check_user_name(const char *s, const char **ret_reason)
{
	size_t n = strlen(s);

	if (n == 0)
		return fail(ret_reason, "empty value");
	if (isdigit((unsigned char)s[0])) {
		uint64_t id;
		/* an instance's user namespace maps ids 0..65535 only (docs/userns.md):
		 * a larger id could not run */
		if (policy_parse_uint64(s, 0, 65535, &id, NULL) < 0)
			return fail(ret_reason, "a numeric id must be 0 to 65535");
		return 0;
	}
	if (n > 32)
		return fail(ret_reason, "name longer than 32 characters");
	if (!islower((unsigned char)s[0]) && s[0] != '_')
		return fail(ret_reason, "name must start with [a-z_]");
	for (size_t i = 1; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return fail(ret_reason, "name may only contain [a-z0-9_-]");
	return 0;
}

int policy_check_absolute_path(const char *s, const char **ret_reason)
{
	size_t n = strlen(s);

	if (n == 0)
		return fail(ret_reason, "empty value");
	if (s[0] != '/')
		return fail(ret_reason, "not an absolute path");
	if (n > POLICY_PATH_MAX)
		return fail(ret_reason, "path too long");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(ret_reason, "control character in path");
	for (const char *c = s; *c;) {
		size_t len;
		while (*c == '/')
			c++;
		len = strcspn(c, "/");
		if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return fail(ret_reason, "\".\" or \"..\" component in path");
		c += len;
	}
	return 0;
}

/* --- key material ----------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int policy_parse_key_text(const char *text, size_t len, uint8_t **ret_key, size_t *ret_len,
			  const char **ret_reason)
{
	uint8_t buf[POLICY_KEY_MAX];
	size_t n = 0, i = 0;
	int hi = -1;
	uint8_t *key;

	while (i < len) {
		char c = text[i];
		if (c == '#') {
			while (i < len && text[i] != '\n')
				i++;
			continue;
		}
		i++;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		int v = hexval(c);
		if (v < 0) {
			explicit_bzero(buf, sizeof(buf));
			return fail(ret_reason, "key file is not hex text");
		}
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n >= sizeof(buf)) {
			explicit_bzero(buf, sizeof(buf));
			return fail(ret_reason, "key longer than 128 bytes");
		}
		buf[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	if (hi >= 0) {
		explicit_bzero(buf, sizeof(buf));
		return fail(ret_reason, "odd number of hex digits in key file");
	}
	if (n < POLICY_KEY_MIN) {
		explicit_bzero(buf, sizeof(buf));
		return fail(ret_reason, "key shorter than 32 bytes (64 hex digits)");
	}
	key = malloc(n);
	if (!key) {
		explicit_bzero(buf, sizeof(buf));
		return -ENOMEM;
	}
	memcpy(key, buf, n);
	explicit_bzero(buf, sizeof(buf));
	*ret_key = key;
	*ret_len = n;
	return 0;
}

int policy_parse_rate(const char *s, unsigned min, unsigned max, const char *format_reason,
		      const char *range_reason, unsigned *ret_n, uint64_t *ret_span_usec,
		      const char **ret_reason)
{
	const char *slash = strchr(s, '/');
	const char *reason;
	char num[24];
	unsigned n;
	uint64_t span;

	if (!slash || slash == s || !slash[1] || (size_t)(slash - s) >= sizeof(num))
		return fail(ret_reason, format_reason);
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = 0;
	if (policy_parse_unsigned(num, min, max, &n, &reason) < 0)
		return fail(ret_reason, range_reason);
	if (policy_parse_timespan(slash + 1, &span, &reason) < 0)
		return fail(ret_reason, reason);
	if (span < USEC_PER_SEC)
		return fail(ret_reason, "SPAN shorter than 1s");
	if (span > USEC_PER_DAY)
		return fail(ret_reason, "SPAN longer than 1d");
	*ret_n = n;
	*ret_span_usec = span;
	return 0;
}
