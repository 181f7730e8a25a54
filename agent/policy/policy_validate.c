/* SPDX-License-Identifier: MIT */
/* Checks of one parsed policy that span several keys (kind of service,
 * required keys, ordering of time spans, room for decoys, the key file), the
 * derived defaults, and KeyFile= reading. Uses the keys (where a key was set),
 * the values and the error collection below it; the reader calls it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"
#include "secret_file.h"

#define KEY_FILE_SIZE_MAX (64 * 1024)

/* ret_reason is set for bad contents (-EINVAL) and for a file that may not
 * hold a secret (-EPERM, with its status in ret_st), NULL for system errors. */
static int read_key_file(const char *path, uint8_t **ret_key, size_t *ret_len,
			 const char **ret_reason, struct stat *ret_st)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int r;

	*ret_reason = NULL;
	/* Look before opening: opening some devices has side effects. */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		*ret_reason = "not a regular file";
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		*ret_reason = "not a regular file";
		return -EINVAL;
	}
	/* Decided on the descriptor read below, not on the path looked at above. */
	*ret_reason = secret_file_refusal(&st);
	if (*ret_reason) {
		*ret_st = st;
		return -EPERM;
	}
	if (st.st_size > KEY_FILE_SIZE_MAX) {
		*ret_reason = "key file larger than 64 KiB";
		return -EINVAL;
	}
	buf = malloc(KEY_FILE_SIZE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t k = read(fd, buf + got, KEY_FILE_SIZE_MAX + 1 - got);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			explicit_bzero(buf, got);
			return r;
		}
		if (k == 0)
			break;
		got += (size_t)k;
		if (got > KEY_FILE_SIZE_MAX) {
			explicit_bzero(buf, got);
			*ret_reason = "key file larger than 64 KiB";
			return -EINVAL;
		}
	}
	r = policy_parse_key_text(buf, got, ret_key, ret_len, ret_reason);
	explicit_bzero(buf, got);
	return r;
}

/* "PATH: reason" and, for a refused secret, "(owner uid U, mode M)". */
static char *key_file_error(const char *path, const char *reason, int r, const struct stat *st)
{
	char facts[64] = "";
	char *s;

	if (r == -EPERM && reason)
		secret_file_describe(st, facts, sizeof(facts));
	if (asprintf(&s, "%s: %s%s%s%s", path, reason ? reason : strerror(-r), facts[0] ? " (" : "",
		     facts, facts[0] ? ")" : "") < 0)
		return NULL;
	return s;
}

int policy_read_key_file(const char *path, uint8_t **ret_key, size_t *ret_len, char **ret_error)
{
	const char *reason;
	struct stat st;
	int r = read_key_file(path, ret_key, ret_len, &reason, &st);

	if (r < 0 && ret_error)
		*ret_error = key_file_error(path, reason, r, &st);
	return r;
}

struct vstate {
	struct policy *p;
	struct policy_errors *errors;
	int r;
};

static void err(struct vstate *v, unsigned line, const char *section, const char *key,
		const char *fmt, ...) _printf_(5, 6);
static void err(struct vstate *v, unsigned line, const char *section, const char *key,
		const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg = NULL;
		v->r = -ENOMEM;
		return;
	}
	if (policy_errors_add(v->errors, v->p->path, line, section, key, "%s", msg) < 0)
		v->r = -ENOMEM;
}

static unsigned kl(struct vstate *v, const char *section, const char *key)
{
	return policy_key_line(v->p, section, key);
}

/* Every standby holds an address of each pool while it waits: a pool must
 * have room for the serving instance, its replacement, the standbys and the
 * previous address (never reused at once). */
static void validate_standby(struct vstate *v)
{
	const struct policy *p = v->p;
	uint64_t need = (uint64_t)p->standby_instances + 3;
	char text[64];

	if (!p->standby_instances)
		return;
	for (size_t i = 0; i < p->address_pool_count; i++) {
		const struct cidr *pool = &p->address_pools[i];
		unsigned host_bits = (pool->family == AF_INET ? 32 : 128) - pool->prefix_len;
		/* IPv4 skips network and broadcast; IPv6 the subnet-router anycast. */
		uint64_t usable = host_bits >= 63
				      ? UINT64_MAX
				      : (1ull << host_bits) - (pool->family == AF_INET ? 2 : 1);

		if (usable >= need)
			continue;
		err(v, kl(v, "Service", "StandbyInstances"), "Service", "StandbyInstances",
		    "%u standbys need %llu addresses of AddressPool=%s, which has %llu",
		    p->standby_instances, (unsigned long long)need,
		    policy_format_cidr(text, sizeof(text), pool), (unsigned long long)usable);
	}
}

static void validate_service(struct vstate *v, bool *ret_managed)
{
	struct policy *p = v->p;
	unsigned svc = policy_section_line(p, "Service");
	unsigned backend = kl(v, "Service", "Backend"), snap = kl(v, "Service", "Snapshot");
	char a[POLICY_TIMESPAN_MAX], b[POLICY_TIMESPAN_MAX];

	*ret_managed = snap && !backend;
	if (!svc) {
		err(v, 0, "Service", NULL, "missing section");
		return;
	}
	if (!kl(v, "Service", "Name"))
		err(v, svc, "Service", "Name", "required key missing");

	if (backend && snap)
		err(v, backend, "Service", "Backend",
		    "excludes Snapshot= (line %u): a service is either a host service "
		    "(Backend=) or a managed one (Snapshot=, Exec=, ListenPort=)",
		    snap);
	else if (!backend && !snap)
		err(v, svc, "Service", NULL,
		    "neither Snapshot= (managed service) nor Backend= (host service) given");
	else if (snap) {
		if (!kl(v, "Service", "Exec"))
			err(v, svc, "Service", "Exec",
			    "required key missing (a managed service needs Exec=)");
		if (!kl(v, "Service", "ListenPort"))
			err(v, svc, "Service", "ListenPort",
			    "required key missing (a managed service needs ListenPort=)");
		if (!kl(v, "Service", "SnapshotKey"))
			err(v, svc, "Service", "SnapshotKey",
			    "required key missing (an unsigned snapshot is never launched)");
	}

	if (!kl(v, "Service", "HealthCheck"))
		p->health_check = *ret_managed ? HEALTH_CHECK_TCP : HEALTH_CHECK_NONE;
	if (p->health_timeout_usec > p->health_interval_usec) {
		unsigned line = kl(v, "Service", "HealthTimeout");
		err(v, line ? line : kl(v, "Service", "HealthInterval"), "Service",
		    line ? "HealthTimeout" : "HealthInterval",
		    "HealthTimeout= (%s) must not exceed HealthInterval= (%s)",
		    policy_format_timespan(a, sizeof(a), p->health_timeout_usec),
		    policy_format_timespan(b, sizeof(b), p->health_interval_usec));
	}
	if (p->max_lifetime_usec && p->max_lifetime_usec < 10 * USEC_PER_SEC)
		err(v, kl(v, "Service", "MaxLifetime"), "Service", "MaxLifetime",
		    "must be 0 (unlimited) or at least 10s");
	if (p->max_lifetime_jitter_usec) {
		unsigned line = kl(v, "Service", "MaxLifetimeJitter");
		if (!p->max_lifetime_usec)
			err(v, line, "Service", "MaxLifetimeJitter",
			    "needs MaxLifetime= (jitter of an unlimited lifetime)");
		else if (p->max_lifetime_jitter_usec >= p->max_lifetime_usec)
			err(v, line, "Service", "MaxLifetimeJitter",
			    "must be shorter than MaxLifetime= (%s)",
			    policy_format_timespan(a, sizeof(a), p->max_lifetime_usec));
	}
	validate_standby(v);
}

/* OnCompromise=alert promises that nothing is killed or quarantined for a
 * detection. OnSyscallViolation= and SystemCallDefault= could break that
 * promise: a contradiction is an error, not a silent override (the operator
 * wrote both). Unset, OnSyscallViolation= follows: errno (the call fails with
 * EPERM, as every listed violation does, and the instance runs on). */
static void validate_alert(struct vstate *v)
{
	struct policy *p = v->p;
	unsigned alert = kl(v, "Service", "OnCompromise");
	unsigned line;

	if (p->on_compromise != COMPROMISE_ALERT)
		return;
	line = kl(v, "Envelope", "OnSyscallViolation");
	if (!line)
		p->on_syscall_violation = SYSCALL_VIOLATION_ERRNO;
	else if (p->on_syscall_violation != SYSCALL_VIOLATION_ERRNO)
		err(v, line, "Envelope", "OnSyscallViolation",
		    "%s contradicts OnCompromise=alert (line %u), under which no detection kills "
		    "or quarantines; use errno or leave it unset",
		    p->on_syscall_violation == SYSCALL_VIOLATION_KILL ? "kill" : "quarantine",
		    alert);
	line = kl(v, "Envelope", "SystemCallDefault");
	if (line && p->syscall_default == SYSCALL_DEFAULT_KILL)
		err(v, line, "Envelope", "SystemCallDefault",
		    "kill contradicts OnCompromise=alert (line %u): the kernel would kill the "
		    "process; use errno (list calls in ViolationSystemCalls= to have them "
		    "detected)",
		    alert);
}

/* ClientKeys= (a key per client) or KeyFile= (one key shared), and what
 * only the per-client mode has. */
static void validate_clients(struct vstate *v)
{
	struct policy *p = v->p;
	unsigned ck = kl(v, "Rotation", "ClientKeys"), kf = kl(v, "Rotation", "KeyFile");
	unsigned auth = kl(v, "Rotation", "ClientAuth");

	if (ck && kf)
		err(v, ck, "Rotation", "ClientKeys",
		    "excludes KeyFile= (line %u): a service has one shared key (KeyFile=) or a "
		    "key per client (ClientKeys=), not both",
		    kf);
	if (!kl(v, "Rotation", "KnockWindow"))
		p->knock_window_usec = 30 * USEC_PER_SEC;
	if (!kl(v, "Rotation", "KnockRate")) {
		p->knock_rate_limit = 20;
		p->knock_rate_interval_usec = USEC_PER_SEC;
	}
	if (!ck && auth && p->client_auth == POLICY_CLIENT_AUTH_KNOCK)
		err(v, auth, "Rotation", "ClientAuth",
		    "knock needs ClientKeys= (a knock is made with a client's own key)");
	if (p->client_auth != POLICY_CLIENT_AUTH_KNOCK) {
		if (kl(v, "Rotation", "KnockWindow"))
			err(v, kl(v, "Rotation", "KnockWindow"), "Rotation", "KnockWindow",
			    "only valid with ClientAuth=knock");
		if (kl(v, "Rotation", "KnockRate"))
			err(v, kl(v, "Rotation", "KnockRate"), "Rotation", "KnockRate",
			    "only valid with ClientAuth=knock");
	}
	if (p->client_keys && !kf) {
		struct policy_client_keys keys = {0};
		_cleanup_free_ char *error = NULL;
		int r = policy_client_keys_load(p->client_keys, &keys, &error);
		if (r == -ENOMEM || (r < 0 && !error))
			v->r = -ENOMEM;
		else if (r < 0)
			err(v, ck, "Rotation", "ClientKeys", "%s", error);
		policy_client_keys_free(&keys);
	}
}

static void validate_rotation(struct vstate *v)
{
	struct policy *p = v->p;
	unsigned rot = policy_section_line(p, "Rotation");
	char a[POLICY_TIMESPAN_MAX], b[POLICY_TIMESPAN_MAX];

	if (!rot) {
		err(v, 0, "Rotation", NULL, "missing section (every service rotates)");
		return;
	}
	if (!kl(v, "Rotation", "PublicPorts"))
		err(v, rot, "Rotation", "PublicPorts", "required key missing");
	if (!kl(v, "Rotation", "KeyFile") && !kl(v, "Rotation", "ClientKeys"))
		err(v, rot, "Rotation", "KeyFile", "required key missing");
	validate_clients(v);
	if (p->snapshot && !kl(v, "Rotation", "AddressPool"))
		err(v, rot, "Rotation", "AddressPool",
		    "required key missing (a managed service's instances take their addresses "
		    "from it)");

	/* The schedule counts epochs in whole seconds: floor(unix_time / Interval). */
	if (kl(v, "Rotation", "Interval") && p->interval_usec % USEC_PER_SEC != 0)
		err(v, kl(v, "Rotation", "Interval"), "Rotation", "Interval",
		    "%s is not a whole number of seconds",
		    policy_format_timespan(a, sizeof(a), p->interval_usec));

	if (!kl(v, "Rotation", "Grace")) {
		p->grace_usec = 15 * USEC_PER_SEC;
		if (p->grace_usec > p->interval_usec / 2)
			p->grace_usec = p->interval_usec / 2;
	} else if (p->grace_usec >= p->interval_usec)
		err(v, kl(v, "Rotation", "Grace"), "Rotation", "Grace",
		    "%s must be shorter than Interval= (%s)",
		    policy_format_timespan(a, sizeof(a), p->grace_usec),
		    policy_format_timespan(b, sizeof(b), p->interval_usec));

	if (p->has_public_ports) {
		unsigned size = (unsigned)p->public_ports.last - p->public_ports.first + 1;
		if (size < 2)
			err(v, kl(v, "Rotation", "PublicPorts"), "Rotation", "PublicPorts",
			    "a single port cannot rotate (give a range FIRST-LAST)");
		else if (p->decoys + 2 > size)
			err(v, kl(v, "Rotation", "Decoys"), "Rotation", "Decoys",
			    "%u decoys leave no room in PublicPorts=%u-%u (%u ports; Decoys + 2 "
			    "must not exceed it)",
			    p->decoys, p->public_ports.first, p->public_ports.last, size);
	}

	/* Repeat offenders' blocks grow up to DecoyBlockMax=, which by default
	 * is 1d or DecoyBlock= if that is longer (no block shorter than one). */
	if (!kl(v, "Rotation", "DecoyBlockMax")) {
		if (p->decoy_block_max_usec < p->decoy_block_usec)
			p->decoy_block_max_usec = p->decoy_block_usec;
	} else if (p->decoy_block_max_usec < p->decoy_block_usec)
		err(v, kl(v, "Rotation", "DecoyBlockMax"), "Rotation", "DecoyBlockMax",
		    "%s is shorter than DecoyBlock= (%s)",
		    policy_format_timespan(a, sizeof(a), p->decoy_block_max_usec),
		    policy_format_timespan(b, sizeof(b), p->decoy_block_usec));

	if (p->key_file) {
		uint8_t *key = NULL;
		size_t len = 0;
		_cleanup_free_ char *error = NULL;
		int r = policy_read_key_file(p->key_file, &key, &len, &error);
		if (r == -ENOMEM || (r < 0 && !error))
			v->r = -ENOMEM;
		else if (r < 0)
			err(v, kl(v, "Rotation", "KeyFile"), "Rotation", "KeyFile", "%s", error);
		if (key) {
			explicit_bzero(key, len);
			free(key);
		}
	}
}

int policy_validate(struct policy *p, struct policy_errors *errors)
{
	struct vstate v = {.p = p, .errors = errors};
	bool managed;

	validate_service(&v, &managed);
	validate_alert(&v);
	validate_rotation(&v);

	/* A managed service without SystemCalls= gets @system-service. */
	if (managed && p->system_calls.count == 0 && !kl(&v, "Envelope", "SystemCalls")) {
		p->system_calls.items = calloc(2, sizeof(char *));
		if (!p->system_calls.items)
			return -ENOMEM;
		p->system_calls.items[0] = strdup("@system-service");
		if (!p->system_calls.items[0])
			return -ENOMEM;
		p->system_calls.count = 1;
	}
	return v.r;
}
