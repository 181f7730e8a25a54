/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <jansson.h>

/* Policy files: one service per *.policy file, parsed with libinih and
 * validated as a whole set. The schema is documented in docs/mtd.policy.5. */

#define POLICY_NAME_MAX 32 /* service names: [a-z0-9][a-z0-9_-]{0,31} */
/* StandbyInstances= at most: each standby is a whole running instance (memory,
 * tasks, an address), kept only to make a replacement one transaction. */
#define POLICY_STANDBY_MAX 4
#define POLICY_ERROR_MAX 512
/* Decoys= at most: what one epoch's schedule holds (SCHEDULE_MAX_DECOYS,
 * rotator.h; agent/rotation checks the two agree at compile time). */
#define POLICY_DECOYS_MAX 64
/* DrainTimeout= at most (1h): a drained instance keeps its address, memory
 * and tasks until its last connection ends. */
#define POLICY_DRAIN_TIMEOUT_MAX_USEC (3600ull * 1000000ull)

/* One error, rendered as "FILE:LINE: Section.Key: reason". line is 0 when the
 * error concerns the whole file (unreadable file, missing section). */
struct policy_error {
	char *file;
	unsigned line;
	char *section; /* may be NULL */
	char *key;     /* may be NULL */
	char *reason;
};

struct policy_errors {
	struct policy_error *items;
	size_t count;
};

enum policy_proto {
	POLICY_PROTO_TCP,
	POLICY_PROTO_UDP,
};

struct port_range {
	uint16_t first;
	uint16_t last; /* inclusive; first <= last */
};

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	unsigned prefix_len;
};

struct socket_address {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint16_t port;
};

/* Egress=PROTO/PORT[-PORT] [CIDR] — one allowed outbound flow. */
struct egress_rule {
	enum policy_proto proto;
	struct port_range ports;
	bool has_destination;
	struct cidr destination;
};

enum health_check_kind {
	HEALTH_CHECK_NONE,
	HEALTH_CHECK_TCP,
};

enum compromise_action {
	COMPROMISE_QUARANTINE, /* freeze and keep for forensics */
	COMPROMISE_KILL,       /* kill and clean up */
	/* audit and count, act on nothing (docs/mtd.policy.5): OnCompromise= only,
	 * never OnUnhealthy= (failing health is no detection) */
	COMPROMISE_ALERT,
};

enum syscall_violation_action {
	SYSCALL_VIOLATION_QUARANTINE,
	SYSCALL_VIOLATION_KILL,
	SYSCALL_VIOLATION_ERRNO, /* deny with an error, record, keep running */
};

enum syscall_default_action {
	SYSCALL_DEFAULT_ERRNO, /* EPERM */
	SYSCALL_DEFAULT_KILL,  /* kill the process (SIGSYS) */
};

enum policy_client_auth {
	POLICY_CLIENT_AUTH_NONE,  /* a client's door is open to anyone who knows it */
	POLICY_CLIENT_AUTH_KNOCK, /* open only to sources admitted by a knock */
};

struct string_list {
	char **items;
	size_t count;
};

/* OnEvent=TYPES PROGRAM [ARGS...] (the global file's [Hooks], a policy's
 * [Service]): PROGRAM runs with each audit record whose type matches one of
 * TYPES (a comma list of types or fnmatch globs, "*" for all) as one JSON
 * line on its stdin; a policy's only with the records of its service. */
struct policy_hook {
	char **types; /* NULL-terminated */
	size_t type_count;
	char **argv; /* NULL-terminated; argv[0] an absolute path */
	size_t argc;
	unsigned line; /* of the OnEvent= line, for messages */
};

struct policy {
	char *path; /* file it was read from */

	/* [Service] */
	char *name;
	char *snapshot;		      /* Snapshot= absolute dir; NULL for a host service */
	char *snapshot_key;	      /* SnapshotKey= Ed25519 public key (PEM) */
	struct string_list exec_argv; /* Exec= split with shell-like quoting */
	bool has_listen_port;
	uint16_t listen_port; /* ListenPort=PORT/PROTO */
	enum policy_proto listen_proto;
	bool has_backend; /* Backend=ADDR:PORT, a host service; excludes Snapshot= */
	struct socket_address backend;
	char *user;			   /* User= name or uid, NULL = root inside the envelope */
	char *group;			   /* Group= */
	uint64_t max_lifetime_usec;	   /* MaxLifetime=, 0 = unlimited */
	uint64_t max_lifetime_jitter_usec; /* MaxLifetimeJitter= */
	/* DrainTimeout=: how long a planned replacement lets the old
	 * instance's established connections run on (0 = cut at once) */
	uint64_t drain_timeout_usec;
	enum health_check_kind health_check;
	uint64_t health_interval_usec;	      /* HealthInterval= */
	uint64_t health_timeout_usec;	      /* HealthTimeout= */
	unsigned health_failures;	      /* HealthFailures= */
	enum compromise_action on_compromise; /* OnCompromise= */
	enum compromise_action on_unhealthy;  /* OnUnhealthy= (default kill) */
	uint64_t quarantine_max_bytes;	      /* QuarantineMax= */
	unsigned replace_burst;		      /* ReplaceBurst= */
	uint64_t replace_interval_usec;	      /* ReplaceInterval= */
	unsigned standby_instances;	      /* StandbyInstances=, 0..POLICY_STANDBY_MAX */
	bool allow_devices;		      /* SnapshotAllowDevices= */
	bool allow_setuid;		      /* SnapshotAllowSetuid= */
	struct policy_hook *hooks;	      /* OnEvent= (repeats): this service's records */
	size_t hook_count;

	/* [Rotation] */
	bool has_public_ports;
	struct port_range public_ports; /* PublicPorts= */
	uint64_t interval_usec;		/* Interval= */
	uint64_t grace_usec;		/* Grace= */
	char *key_file;			/* KeyFile= */
	/* Per-client mode (docs/mtd.policy.5): ClientKeys=DIR of NAME.key files,
	 * exclusive with KeyFile=; the keys are read by policy_client_keys_load(). */
	char *client_keys;		     /* ClientKeys= */
	enum policy_client_auth client_auth; /* ClientAuth= */
	uint64_t knock_window_usec;	     /* KnockWindow= */
	unsigned knock_rate_limit;	     /* KnockRate=N/SPAN: per source, N knocks */
	uint64_t knock_rate_interval_usec;   /* per SPAN */
	unsigned decoys;		     /* Decoys= */
	uint64_t decoy_block_usec;	     /* DecoyBlock= */
	struct cidr *address_pools;	     /* AddressPool= (repeat appends) */
	size_t address_pool_count;
	bool local_access; /* LocalAccess= DNAT for connections from the host itself */
	/* Who decoys may block, and for how long (docs/mtd.policy.5). */
	struct cidr *never_block; /* NeverBlock= (repeat appends); a bare address is /32, /128 */
	size_t never_block_count;
	unsigned decoy_block_factor;	   /* DecoyBlockFactor= 1..100 */
	uint64_t decoy_block_max_usec;	   /* DecoyBlockMax= (>= DecoyBlock=, <= 30d) */
	uint64_t decoy_repeat_window_usec; /* DecoyRepeatWindow= (<= 30d) */

	/* [Envelope] */
	struct string_list system_calls;		    /* SystemCalls= names and @groups */
	struct string_list violation_system_calls;	    /* ViolationSystemCalls= */
	enum syscall_default_action syscall_default;	    /* SystemCallDefault= */
	enum syscall_violation_action on_syscall_violation; /* OnSyscallViolation= */
	struct string_list writable;			    /* Writable= absolute paths */
	struct egress_rule *egress;			    /* Egress= */
	size_t egress_count;
	unsigned egress_alert_threshold; /* EgressAlertThreshold= packets */
	uint64_t capabilities;		 /* Capabilities= bit mask of CAP_* numbers */
	uint64_t memory_max_bytes;	 /* MemoryMax=, 0 = unlimited */
	uint64_t tasks_max;		 /* TasksMax=, 0 = unlimited */
	unsigned cpu_quota_percent;	 /* CPUQuota=, 0 = unlimited */
	uint64_t writable_size_bytes;	 /* WritableSize= size of the tmpfs upper layer */
	uint64_t limit_nofile;		 /* LimitNOFILE= */
	bool private_users;		 /* PrivateUsers= */

	struct policy_source *source; /* private to agent/policy/: line of each key */
};

struct policy_set {
	struct policy **policies; /* sorted by name */
	size_t count;
};

/* Parse and validate every *.policy file under each path (a file or a
 * directory, not recursive) as one set. Returns 0 and the set when there are no
 * errors; otherwise -EINVAL (or -errno) and every error found in ret_errors
 * (which the caller frees with policy_errors_free). Never half-fills. */
int policy_set_load(const char *const *paths, size_t n_paths, struct policy_set **ret_set,
		    struct policy_errors *ret_errors);

/* Parse one policy from memory (used by the fuzzer and by unit tests). The
 * file name only labels errors. Set-wide checks (duplicates, overlaps) are not
 * done here. */
int policy_parse_buffer(const char *file_name, const char *text, size_t len,
			struct policy **ret_policy, struct policy_errors *errors);

const struct policy *policy_set_find(const struct policy_set *set, const char *name);

void policy_free(struct policy *policy);
void policy_set_free(struct policy_set *set);
void policy_errors_free(struct policy_errors *errors);

/* The global file (default POLICY_GLOBALS_PATH): same syntax as policy files,
 * sections [Decoys] and [Hooks]. Settings of the whole agent, not of one
 * service. */
#define POLICY_GLOBALS_PATH "/etc/mtd/mtd.conf"
#define POLICY_UDP_BLOCK_LIMIT_MAX 100000
#define POLICY_HOOKS_MAX 32			  /* OnEvent= lines */
#define POLICY_HOOK_TYPES_MAX 32		  /* record types (or globs) of one OnEvent= */
#define POLICY_HOOK_TYPE_LEN_MAX 64		  /* bytes of one type or glob */
#define POLICY_HOOK_RATE_MAX 100000		  /* HookRate=N/SPAN: N */
#define POLICY_KNOCK_RATE_MAX 100000		  /* KnockRate=N/SPAN: N */
#define POLICY_KNOCK_WINDOW_MIN_USEC 1000000ull	  /* 1s */
#define POLICY_KNOCK_WINDOW_MAX_USEC 300000000ull /* 300s */
/* A client key file (ClientKeys=DIR/NAME.key): raw bytes. */
#define POLICY_CLIENT_KEY_MIN 16
#define POLICY_CLIENT_KEY_MAX 1024
#define POLICY_CLIENTS_MAX 100000 /* key files in one ClientKeys= directory */

/* Whether a record of this type runs the hook. Records of the hooks' own
 * (types starting "hook-") never do: a failing hook cannot feed itself. */
bool policy_hook_matches(const struct policy_hook *hook, const char *type);

/* A fixed-window rate limit: at most limit admissions per span, the window
 * starting with the first admission after the previous one ended. Pure
 * (the caller gives the time), for HookRate= and its tests. */
struct policy_rate {
	uint64_t window_start_usec;
	unsigned used;	  /* admitted in this window */
	uint64_t dropped; /* refused in this window */
	uint64_t dropped_total;
};
/* true: admitted. false: refused and counted; *ret_first_drop (if not NULL)
 * says whether it was the window's first refusal. */
bool policy_rate_admit(struct policy_rate *rate, unsigned limit, uint64_t span_usec,
		       uint64_t now_usec, bool *ret_first_drop);

struct policy_globals {
	char *path;		  /* file it was read from; NULL when defaults (no file) */
	struct cidr *never_block; /* [Decoys] NeverBlock=: no decoy of any service blocks these */
	size_t never_block_count;
	unsigned udp_block_limit;	  /* UDPBlockLimit=N/SPAN: at most N sources blocked */
	uint64_t udp_block_interval_usec; /* by UDP decoy hits per SPAN; N = 0: UDP never blocks */
	struct policy_hook *hooks;	  /* [Hooks] OnEvent= (repeats) */
	size_t hook_count;
	uint64_t hook_timeout_usec;	  /* HookTimeout=: killed after this */
	unsigned hook_rate_limit;	  /* HookRate=N/SPAN: per hook, at most N runs */
	uint64_t hook_rate_interval_usec; /* per SPAN */
	char *hook_user;		  /* HookUser=: hooks run as this user */
	char *host_id; /* [Agent] HostId=, NULL = the host's public address (rtnetlink) */
};

/* Read the global file. With !must_exist a missing file (ENOENT) gives the
 * defaults (path NULL). Returns 0 and *ret; otherwise -EINVAL (or -errno) and
 * every error found appended to ret_errors, in the policy files' shape
 * ("FILE:LINE: Decoys.Key: reason"). Never half-fills *ret. */
int policy_globals_load(const char *path, bool must_exist, struct policy_globals **ret,
			struct policy_errors *ret_errors);
/* Parse from memory (the fuzzer, unit tests); file_name labels errors. */
int policy_globals_parse_buffer(const char *file_name, const char *text, size_t len,
				struct policy_globals **ret, struct policy_errors *errors);
void policy_globals_free(struct policy_globals *g);

/* Whether the address addr (a struct in_addr for AF_INET, a struct in6_addr
 * for AF_INET6) lies in c. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts
 * as the IPv4 address, on either side: a source seen on a dual-stack socket
 * matches NeverBlock=a.b.c.0/24. */
bool policy_cidr_contains(const struct cidr *c, int family, const void *addr);

/* The clients of a ClientKeys= directory (docs/mtd.policy.5): every entry is
 * a NAME.key file (NAME: schedule_client_name_valid), a secret file
 * (secret_file.h) of POLICY_CLIENT_KEY_MIN..POLICY_CLIENT_KEY_MAX raw bytes;
 * the directory is owned by root and not writable by group or others; at
 * least one client. Sorted by name. */
struct policy_client_key {
	char *name;
	uint8_t *key;
	size_t key_len;
};
struct policy_client_keys {
	struct policy_client_key *items;
	size_t count;
};
/* Returns 0 and the keys, or -EINVAL/-EPERM/-errno with *ret_error (if not
 * NULL) a malloc'd one-line "PATH: reason" (NULL when out of memory). */
int policy_client_keys_load(const char *dir, struct policy_client_keys *ret, char **ret_error);
/* One client key file anywhere (mtdctl port --client-key): the rules of a
 * NAME.key file but the name. */
int policy_read_client_key_file(const char *path, uint8_t **ret_key, size_t *ret_len,
				char **ret_error);
/* Wipes the keys and frees them; leaves *keys empty. */
void policy_client_keys_free(struct policy_client_keys *keys);

/* Time spans as policies write them (also the daemon's and the CLI's duration
 * options): "90s", "15min", "2h 30min", "500ms", "1d"; a bare number is
 * seconds. Units: us usec, ms msec, s sec second(s), m min minute(s), h hr
 * hour(s), d day(s), w week(s). No fractions, no negatives; overflow is an
 * error. */
int policy_parse_timespan(const char *s, uint64_t *ret_usec, const char **ret_reason);
/* Writes the largest-units rendering ("2h 30min", "500ms", "0") into buf. */
char *policy_format_timespan(char *buf, size_t size, uint64_t usec);
#define POLICY_TIMESPAN_MAX 64

/* Read a KeyFile=: hex text (64 to 256 hex digits = 32 to 128 bytes; white
 * space, blank lines and '#' comment lines ignored), a regular file of at most
 * 64 KiB, owned by root or the reader and closed to group and others
 * (secret_file.h). Returns 0 and a malloc'd key (the caller explicit_bzero()s
 * and frees it), -EINVAL for bad contents, -EPERM for a file that may not
 * hold a secret, or -errno; on failure *ret_error (if not NULL) is a malloc'd
 * "PATH: reason" (NULL when out of memory). */
int policy_read_key_file(const char *path, uint8_t **ret_key, size_t *ret_len, char **ret_error);

/* "FILE:LINE: Section.Key: reason"; ":LINE" is omitted when 0, "[Section]: "
 * replaces "Section.Key: " when there is no key, and neither appears when
 * there is no section. Returns a malloc'd string (NULL on OOM). */
char *policy_error_format(const struct policy_error *error);

/* A JSON-friendly rendering is in policy.h (needs jansson). */

/* JSON rendering of a parsed policy (for `mtdctl policy show`). */

/* A new reference to an object with "path", "service", "rotation" and
 * "envelope" members; every key of the file appears, defaults included. Time
 * spans appear twice: "interval": "1min" and "interval_usec": 60000000; sizes
 * as "memory_max": "256M" and "memory_max_bytes". NULL on allocation failure. */
json_t *policy_to_json(const struct policy *policy);

/* The global file: {"path", "never_block": [CIDR...], "udp_block_limit",
 * "udp_block_interval", "udp_block_interval_usec", "hooks": [{"types": [...],
 * "exec": [...]}], "hook_timeout", "hook_timeout_usec", "hook_rate_limit",
 * "hook_rate_interval", "hook_rate_interval_usec", "hook_user", "host_id"}; "path" is
 * null for the defaults (no file). NULL on allocation failure. */
json_t *policy_globals_to_json(const struct policy_globals *g);

/* Built-in system call groups for SystemCalls= ("@system-service", ...),
 * modelled on systemd's but with our own, narrower lists. A group lists
 * system call names and other "@groups". Names are those of libseccomp's
 * table: every name is known to libseccomp on x86_64, but may not exist on
 * the running architecture (e.g. mmap2, socketcall); such names are skipped
 * silently when a list is expanded. See policies/syscall-groups.md. */

struct syscall_group {
	const char *name;	    /* "@basic-io" */
	const char *help;	    /* one line */
	const char *const *members; /* NULL-terminated; names and "@groups" */
};

/* The group named name ("@..."), or NULL. */
const struct syscall_group *syscall_group_lookup(const char *name);

/* All groups, in documentation order. */
const struct syscall_group *syscall_groups_all(size_t *ret_count);

/* Expand names and @groups (recursively) into a sorted, duplicate-free,
 * NULL-terminated vector of system call names that exist on the native
 * architecture. Unknown groups or names given directly are -EINVAL; names
 * that come from a group and do not exist natively are skipped. Free the
 * result with syscall_group_names_free(). */
int syscall_group_expand(char *const *items, size_t n_items, char ***ret_names, size_t *ret_count);
void syscall_group_names_free(char **names);
