/* SPDX-License-Identifier: MIT */
/* mtdctl client add|list|revoke: the clients of a ClientKeys= service (their
 * NAME.key files) and the profile a client's mtd-client reads
 * (docs/clients.md). Offline: files only; the agent takes a change at its
 * next reload. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "mtdctl.h"
#include "policy.h"
#include "schedule.h"

#define DEFAULT_POLICY_DIR "/etc/mtd/policies"
#define CLIENT_KEY_BYTES 32
#define HOSTS_MAX 16 /* a profile's Host= lines (client/client.h PROFILE_MAX_HOSTS) */
#define NO_CLIENTS_SUFFIX ": no client keys (NAME.key files)"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct policy_set *, policy_set_free)

static void print_errors(struct policy_errors *errors)
{
	for (size_t i = 0; i < errors->count; i++) {
		_cleanup_free_ char *line = policy_error_format(&errors->items[i]);
		if (line)
			fprintf(stderr, "%s\n", line);
	}
}

/* The service's policy in the set at dir, which must use ClientKeys=. */
static int load_service(const char *dir, const char *service, struct policy_set **ret_set,
			const struct policy **ret)
{
	struct policy_errors errors = {0};
	struct policy_set *set = NULL;
	const struct policy *p;
	int r;

	r = policy_set_load(&dir, 1, &set, &errors);
	if (r < 0) {
		print_errors(&errors);
		policy_errors_free(&errors);
		return mtdctl_fail("%s: the policy is not valid", dir);
	}
	policy_errors_free(&errors);
	p = policy_set_find(set, service);
	if (!p) {
		policy_set_free(set);
		return mtdctl_fail("%s: no service named %s", dir, service);
	}
	if (!p->client_keys) {
		policy_set_free(set);
		return mtdctl_fail("%s: service %s has no ClientKeys= (its clients share KeyFile=)",
				   dir, service);
	}
	*ret_set = set;
	*ret = p;
	return 0;
}

/*
 * A service's first client: its policy does not load while ClientKeys= names
 * an empty directory. When that is the only error of the set, returns that
 * directory (malloc'd), else NULL.
 */
static char *empty_client_keys_dir(const char *dir)
{
	struct policy_errors errors = {0};
	struct policy_set *set = NULL;
	char *keys_dir = NULL;

	if (policy_set_load(&dir, 1, &set, &errors) == 0) {
		policy_set_free(set);
		return NULL;
	}
	if (errors.count == 1 && errors.items[0].key && streq(errors.items[0].key, "ClientKeys")) {
		const char *why = errors.items[0].reason;
		size_t n = strlen(why), k = strlen(NO_CLIENTS_SUFFIX);

		if (n > k && streq(why + n - k, NO_CLIENTS_SUFFIX))
			keys_dir = strndup(why, n - k);
	}
	policy_errors_free(&errors);
	return keys_dir;
}

struct host_arg {
	char address[256];
	char host_id[SCHEDULE_MAX_HOST_ID + 1];
};

/* --host ADDRESS[=HOSTID]: without HOSTID, local_host_id (this host's
 * HostId=, when one host is given) or else the address itself (the agent's
 * default when it is the host's public address); a host name needs =HOSTID
 * then. */
static int parse_host(const char *arg, const char *local_host_id, struct host_arg *ret)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	struct in6_addr a6;
	struct in_addr a4;
	bool literal;

	if (n == 0 || n >= sizeof(ret->address))
		return mtdctl_usage_error("client add: --host '%s': expected ADDRESS[=HOSTID]",
					  arg);
	memcpy(ret->address, arg, n);
	ret->address[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:",
			    ret->address[i]))
			return mtdctl_usage_error("client add: --host '%s': not an address or a "
						  "host name",
						  arg);
	literal = inet_pton(AF_INET, ret->address, &a4) == 1 ||
		  inet_pton(AF_INET6, ret->address, &a6) == 1;
	if (!literal && strchr(ret->address, ':'))
		return mtdctl_usage_error("client add: --host '%s': not an address or a host name",
					  arg);
	if (eq)
		snprintf(ret->host_id, sizeof(ret->host_id), "%s", eq + 1);
	else if (local_host_id)
		snprintf(ret->host_id, sizeof(ret->host_id), "%s", local_host_id);
	else if (literal && inet_pton(AF_INET, ret->address, &a4) == 1)
		inet_ntop(AF_INET, &a4, ret->host_id, sizeof(ret->host_id));
	else if (literal)
		inet_ntop(AF_INET6, &a6, ret->host_id, sizeof(ret->host_id));
	else
		return mtdctl_usage_error("client add: --host %s: a host name needs =HOSTID (the "
					  "agent's host id there, `mtdctl status` shows it)",
					  arg);
	if (!schedule_host_id_valid(ret->host_id))
		return mtdctl_usage_error(
		    "client add: --host '%s': host id '%s' is not valid (1 to "
		    "%d of A-Z a-z 0-9 _ . : -)",
		    arg, ret->host_id, SCHEDULE_MAX_HOST_ID);
	return 0;
}

/* Writes all of data to a new file (O_EXCL, 0600) and syncs it. */
static int write_new_file(const char *path, const void *data, size_t len)
{
	_cleanup_close_ int fd = -1;
	const char *p = data;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;
			unlink(path);
			return r;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		int r = -errno;
		unlink(path);
		return r;
	}
	return 0;
}

static char *profile_text(const struct policy *p, const char *name, const struct host_arg *hosts,
			  size_t n_hosts, const uint8_t *key, size_t key_len)
{
	char interval[POLICY_TIMESPAN_MAX], grace[POLICY_TIMESPAN_MAX];
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	policy_format_timespan(interval, sizeof(interval), p->interval_usec);
	policy_format_timespan(grace, sizeof(grace), p->grace_usec);
	fprintf(f, "# mtd-client profile (docs/clients.md): client %s of service %s.\n", name,
		p->name);
	fprintf(f, "# It holds the client's key: keep it owner-only (chmod 0600).\n");
	fprintf(f, "[Profile]\nVersion=1\nService=%s\nClient=%s\n", p->name, name);
	for (size_t i = 0; i < n_hosts; i++)
		fprintf(f, "Host=%s %s\n", hosts[i].address, hosts[i].host_id);
	fprintf(f, "Protocol=%s\nPublicPorts=%u-%u\nInterval=%s\nGrace=%s\nAuth=%s\nKey=",
		p->listen_proto == POLICY_PROTO_UDP ? "udp" : "tcp", p->public_ports.first,
		p->public_ports.last, interval, grace,
		p->client_auth == POLICY_CLIENT_AUTH_KNOCK ? "knock" : "none");
	for (size_t i = 0; i < key_len; i++)
		fprintf(f, "%02x", key[i]);
	fprintf(f, "\n");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void free_secret(char **text)
{
	if (*text) {
		explicit_bzero(*text, strlen(*text));
		free(*text);
	}
}

int mtdctl_client_add(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *service = NULL, *name = NULL, *dir = DEFAULT_POLICY_DIR, *out = NULL;
	const char *config = NULL, *host_args[HOSTS_MAX];
	struct host_arg hosts[HOSTS_MAX];
	size_t n_hosts = 0;
	struct policy_globals *globals = NULL;
	struct policy_errors errors = {0};
	_cleanup_(policy_set_freep) struct policy_set *set = NULL;
	const struct policy *p;
	_cleanup_free_ char *keys_dir = NULL, *key_path = NULL;
	_cleanup_(free_secret) char *text = NULL;
	uint8_t key[CLIENT_KEY_BYTES];
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--host") && i + 1 < argc) {
			if (n_hosts == HOSTS_MAX)
				return mtdctl_usage_error("client add: more than %d --host",
							  HOSTS_MAX);
			host_args[n_hosts++] = argv[++i];
		} else if (streq(argv[i], "--policy") && i + 1 < argc)
			dir = argv[++i];
		else if (streq(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (streq(argv[i], "--config") && i + 1 < argc)
			config = argv[++i];
		else if (argv[i][0] != '-' && !service)
			service = argv[i];
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else
			return mtdctl_usage_error("client add: unexpected argument '%s'", argv[i]);
	}
	if (!service || !name || n_hosts == 0)
		return mtdctl_usage_error(
		    "client add: expected SERVICE NAME --host ADDRESS[=HOSTID]");
	if (!schedule_client_name_valid(name))
		return mtdctl_usage_error(
		    "client add: '%s' is not a client name (1 to %d of A-Z a-z "
		    "0-9 _ . -, not starting with . or -)",
		    name, SCHEDULE_MAX_CLIENT_NAME);
	r = policy_globals_load(config ? config : POLICY_GLOBALS_PATH, config != NULL, &globals,
				&errors);
	if (r < 0) {
		print_errors(&errors);
		policy_errors_free(&errors);
		return mtdctl_fail("%s: the global file is not valid",
				   config ? config : POLICY_GLOBALS_PATH);
	}
	policy_errors_free(&errors);
	/* This host's HostId= names this host: it applies when one host is
	 * given, and several hosts are a fleet, each with its own. */
	for (size_t i = 0; i < n_hosts && r == 0; i++)
		r = parse_host(host_args[i], n_hosts == 1 ? globals->host_id : NULL, &hosts[i]);
	policy_globals_free(globals);
	if (r != 0)
		return r;
	for (size_t i = 0; i < n_hosts; i++)
		for (size_t j = 0; j < i; j++)
			if (streq(hosts[i].address, hosts[j].address))
				return mtdctl_usage_error("client add: --host %s given twice",
							  hosts[i].address);

	/* The first client of a service: its directory is empty, so the policy
	 * loads only once the key is there. */
	keys_dir = empty_client_keys_dir(dir);
	if (!keys_dir) {
		r = load_service(dir, service, &set, &p);
		if (r != 0)
			return r;
		keys_dir = strdup(p->client_keys);
		if (!keys_dir)
			return mtdctl_fail("out of memory");
		policy_set_free(TAKE_PTR(set));
	}
	if (asprintf(&key_path, "%s/%s.key", keys_dir, name) < 0)
		return mtdctl_fail("out of memory");
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return mtdctl_fail("client add: getrandom: %s", strerror(errno));
	r = write_new_file(key_path, key, sizeof(key));
	if (r == -EEXIST) {
		explicit_bzero(key, sizeof(key));
		return mtdctl_fail("client add: %s exists: %s is a client of %s already (mtdctl "
				   "client revoke first)",
				   key_path, name, service);
	}
	if (r < 0) {
		explicit_bzero(key, sizeof(key));
		return mtdctl_fail("client add: %s: %s", key_path, strerror(-r));
	}
	/* The set with the new key: the service must be in it, with this
	 * directory (else the key goes again). */
	r = load_service(dir, service, &set, &p);
	if (r == 0 && !streq(p->client_keys, keys_dir))
		r = mtdctl_fail("%s: service %s does not use ClientKeys=%s", dir, service,
				keys_dir);
	if (r == 0) {
		text = profile_text(p, name, hosts, n_hosts, key, sizeof(key));
		if (!text)
			r = mtdctl_fail("out of memory");
	}
	explicit_bzero(key, sizeof(key));
	if (r == 0 && out) {
		int w = write_new_file(out, text, strlen(text));
		if (w < 0)
			r = mtdctl_fail("client add: --out %s: %s", out, strerror(-w));
	}
	if (r != 0) {
		unlink(key_path);
		return r;
	}
	if (!out)
		fputs(text, stdout);
	fprintf(stderr,
		"mtdctl: client %s of %s: key %s; %s%s%sthe agent gives it doors at its next "
		"reload (mtdctl reload)\n",
		name, service, key_path, out ? "profile " : "", out ? out : "", out ? "; " : "");
	(void)ctl;
	return 0;
}

/* The first 8 bytes of the key's SHA-256, hex. */
static void fingerprint(const uint8_t *key, size_t len, char ret[17])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (EVP_Digest(key, len, digest, &n, EVP_sha256(), NULL) != 1 || n < 8) {
		snprintf(ret, 17, "?");
		return;
	}
	for (int i = 0; i < 8; i++)
		snprintf(ret + 2 * i, 3, "%02x", digest[i]);
}

static int parse_service_args(const char *command, int argc, char **argv, const char **ret_service,
			      const char **ret_name, const char **ret_dir)
{
	*ret_dir = DEFAULT_POLICY_DIR;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--policy") && i + 1 < argc)
			*ret_dir = argv[++i];
		else if (argv[i][0] != '-' && !*ret_service)
			*ret_service = argv[i];
		else if (argv[i][0] != '-' && ret_name && !*ret_name)
			*ret_name = argv[i];
		else
			return mtdctl_usage_error("client %s: unexpected argument '%s'", command,
						  argv[i]);
	}
	if (!*ret_service || (ret_name && !*ret_name))
		return mtdctl_usage_error("client %s: expected SERVICE%s [--policy DIR]", command,
					  ret_name ? " NAME" : "");
	return 0;
}

int mtdctl_client_list(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *service = NULL, *dir;
	_cleanup_(policy_set_freep) struct policy_set *set = NULL;
	struct policy_client_keys keys = {0};
	_cleanup_free_ char *error = NULL;
	const struct policy *p;
	json_t *list = NULL;
	int r;

	r = parse_service_args("list", argc, argv, &service, NULL, &dir);
	if (r != 0)
		return r;
	r = load_service(dir, service, &set, &p);
	if (r != 0)
		return r;
	r = policy_client_keys_load(p->client_keys, &keys, &error);
	if (r < 0)
		return mtdctl_fail("client list: %s", error ? error : strerror(-r));
	if (ctl->json)
		list = json_array();
	else
		printf("%-24s %-16s %s\n", "CLIENT", "FINGERPRINT", "KEY CHANGED");
	for (size_t i = 0; i < keys.count; i++) {
		_cleanup_free_ char *path = NULL;
		char fp[17], when[64] = "?";
		struct stat st;
		uint64_t mtime = 0;

		fingerprint(keys.items[i].key, keys.items[i].key_len, fp);
		if (asprintf(&path, "%s/%s.key", p->client_keys, keys.items[i].name) >= 0 &&
		    stat(path, &st) == 0) {
			mtime = (uint64_t)st.st_mtim.tv_sec * USEC_PER_SEC +
				(uint64_t)st.st_mtim.tv_nsec / NSEC_PER_USEC;
			mtdctl_format_utc(mtime, when, sizeof(when));
		}
		if (list)
			json_array_append_new(list, json_pack("{s:s, s:s, s:I}", "client",
							      keys.items[i].name, "fingerprint", fp,
							      "key_mtime_usec", (json_int_t)mtime));
		else
			printf("%-24s %-16s %s\n", keys.items[i].name, fp, when);
	}
	policy_client_keys_free(&keys);
	if (list) {
		char *text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			puts(text);
		free(text);
		json_decref(list);
	}
	return 0;
}

int mtdctl_client_revoke(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *service = NULL, *name = NULL, *dir;
	_cleanup_(policy_set_freep) struct policy_set *set = NULL;
	_cleanup_free_ char *path = NULL;
	const struct policy *p;
	struct policy_client_keys keys = {0};
	size_t left;
	int r;

	r = parse_service_args("revoke", argc, argv, &service, &name, &dir);
	if (r != 0)
		return r;
	if (!schedule_client_name_valid(name))
		return mtdctl_usage_error("client revoke: '%s' is not a client name", name);
	r = load_service(dir, service, &set, &p);
	if (r != 0)
		return r;
	if (asprintf(&path, "%s/%s.key", p->client_keys, name) < 0)
		return mtdctl_fail("out of memory");
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return mtdctl_fail("client revoke: %s is no client of %s (no %s)", name,
					   service, path);
		return mtdctl_fail("client revoke: %s: %s", path, strerror(errno));
	}
	left = policy_client_keys_load(p->client_keys, &keys, NULL) == 0 ? keys.count : 0;
	policy_client_keys_free(&keys);
	fprintf(stderr,
		"mtdctl: client %s of %s revoked (%s removed); run `mtdctl reload` to close its "
		"doors and admissions and cut its connections\n",
		name, service, path);
	if (left == 0)
		fprintf(stderr,
			"mtdctl: that was the last client of %s: its policy does not load "
			"until a client is added (mtdctl client add)\n",
			service);
	(void)ctl;
	return 0;
}
