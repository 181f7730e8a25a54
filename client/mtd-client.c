/* SPDX-License-Identifier: MIT */
/* mtd-client: the command table, dispatch, usage and main (docs/mtd-client.1). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "clock.h"
#include "macro.h"

#define CANDIDATES_MAX 64
#define FORWARD_DEFAULT_CONNECTIONS 64
#define FORWARD_MAX_CONNECTIONS 1024

struct command {
	const char *name;
	const char *args;
	const char *help;
	int (*run)(const struct profile *p, int argc, char **argv);
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	client_log("%s (mtd-client --help)", line);
	return 2;
}

/* "@SECONDS", "SECONDS" or "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
static int parse_time(const char *s, uint64_t *ret_usec)
{
	struct tm tm = {0};
	const char *p = s[0] == '@' ? s + 1 : s;
	char *end;
	unsigned long long v;
	time_t t;

	if (p[0] >= '0' && p[0] <= '9' && strspn(p, "0123456789") == strlen(p)) {
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno || *end || v > UINT64_MAX / USEC_PER_SEC)
			return -EINVAL;
		*ret_usec = v * USEC_PER_SEC;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || (end[0] && !(end[0] == 'Z' && !end[1])))
		return -EINVAL;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ret_usec = (uint64_t)t * USEC_PER_SEC;
	return 0;
}

static void format_utc(uint64_t usec, char *buffer, size_t size)
{
	time_t t = (time_t)(usec / USEC_PER_SEC);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buffer, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buffer, size, "?");
}

static int parse_count(const char *s, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	if (!s[0] || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < 1 || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int select_host(const struct profile *p, const char *command, const char *host,
		       const struct profile_host **ret)
{
	*ret = NULL;
	if (!host)
		return 0;
	*ret = profile_find_host(p, host);
	if (!*ret)
		return usage_error("%s: --host %s: no Host= of the profile has this address or "
				   "host id",
				   command, host);
	return 0;
}

static int print_all(const struct profile *p, const struct profile_host *h, uint64_t at,
		     unsigned n_candidates)
{
	struct schedule_client c = profile_schedule(p, h);
	uint16_t candidates[CANDIDATES_MAX], prev_knock = 0, next_knock = 0;
	struct client_epoch e;
	char from[32], until[32];
	int r;

	r = client_epoch_at(p, h, at, &e);
	if (r >= 0)
		r = schedule_client_candidates(&c, e.epoch, candidates, n_candidates);
	if (r >= 0 && e.epoch > 0)
		r = schedule_client_knock_port(&c, e.epoch - 1, &prev_knock);
	if (r >= 0)
		r = schedule_client_knock_port(&c, e.epoch + 1, &next_knock);
	if (r < 0)
		return r;
	format_utc(e.start_usec, from, sizeof(from));
	format_utc(e.end_usec, until, sizeof(until));
	printf("host %s\nhost_id %s\nepoch %llu\nfrom %s\nuntil %s\ndoor %u\nwindow", h->address,
	       h->host_id, (unsigned long long)e.epoch, from, until, e.window[0]);
	for (unsigned i = 0; i < n_candidates; i++)
		printf(" %u", candidates[i]);
	printf("\nknock %u\n", e.knock_port);
	if (e.epoch > 0)
		printf("previous_door %u\nprevious_knock %u\n", e.prev_door, prev_knock);
	printf("next_door %u\nnext_knock %u\n", e.next_door, next_knock);
	return 0;
}

static int cmd_port(const struct profile *p, int argc, char **argv)
{
	const char *host = NULL;
	const struct profile_host *h;
	uint64_t at = now(CLOCK_REALTIME);
	unsigned n_candidates = 0;
	size_t range = (size_t)p->last - p->first + 1;
	bool all = false;
	int r;

	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--at") && i + 1 < argc) {
			if (parse_time(argv[++i], &at) < 0)
				return usage_error("port: --at: '%s' is not a time (@SECONDS or "
						   "YYYY-MM-DDTHH:MM:SSZ)",
						   argv[i]);
		} else if (streq(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else if (streq(argv[i], "--all"))
			all = true;
		else if (streq(argv[i], "--candidates") && i + 1 < argc) {
			if (parse_count(argv[++i], CANDIDATES_MAX, &n_candidates) < 0)
				return usage_error("port: --candidates: '%s' is not a number in "
						   "1..%d",
						   argv[i], CANDIDATES_MAX);
		} else
			return usage_error("port: unexpected argument '%s'", argv[i]);
	}
	r = select_host(p, "port", host, &h);
	if (r != 0)
		return r;
	if (all) {
		unsigned n = n_candidates ? n_candidates : SCHEDULE_CLIENT_CANDIDATES;

		if (n > range)
			n = (unsigned)range;
		for (size_t i = 0; i < p->n_hosts; i++) {
			if (h && h != &p->hosts[i])
				continue;
			if (i > 0 && !h)
				printf("\n");
			r = print_all(p, &p->hosts[i], at, n);
			if (r < 0) {
				client_log("port: cannot compute the schedule: %s", strerror(-r));
				return 1;
			}
		}
		return 0;
	}
	if (!h)
		h = &p->hosts[0];
	if (n_candidates) {
		struct schedule_client c = profile_schedule(p, h);
		uint16_t candidates[CANDIDATES_MAX];
		uint64_t epoch;

		if (n_candidates > range)
			n_candidates = (unsigned)range;
		r = schedule_epoch(at / USEC_PER_SEC, p->interval_sec, &epoch);
		if (r >= 0)
			r = schedule_client_candidates(&c, epoch, candidates, n_candidates);
		if (r < 0) {
			client_log("port: cannot compute the schedule: %s", strerror(-r));
			return 1;
		}
		for (unsigned i = 0; i < n_candidates; i++)
			printf("%u\n", candidates[i]);
		return 0;
	} else {
		struct client_epoch e;
		char until[32];

		r = client_epoch_at(p, h, at, &e);
		if (r < 0) {
			client_log("port: cannot compute the schedule: %s", strerror(-r));
			return 1;
		}
		format_utc(e.end_usec, until, sizeof(until));
		printf("%u\n", e.window[0]);
		fprintf(stderr, "%s: client %s on %s: door %u, epoch %llu, until %s\n", p->service,
			p->client, h->address, e.window[0], (unsigned long long)e.epoch, until);
	}
	return 0;
}

static int cmd_knock(const struct profile *p, int argc, char **argv)
{
	const char *host = NULL;
	const struct profile_host *h;
	int r, failed = 0;

	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else
			return usage_error("knock: unexpected argument '%s'", argv[i]);
	}
	r = select_host(p, "knock", host, &h);
	if (r != 0)
		return r;
	if (p->auth != PROFILE_AUTH_KNOCK) {
		client_log("knock: the profile says Auth=%s: service %s takes no knock",
			   profile_auth_name(p->auth), p->service);
		return 1;
	}
	for (size_t i = 0; i < p->n_hosts; i++) {
		uint64_t at = now(CLOCK_REALTIME);
		struct client_epoch e;

		if (h && h != &p->hosts[i])
			continue;
		r = client_epoch_at(p, &p->hosts[i], at, &e);
		if (r >= 0)
			r = client_knock(p, &p->hosts[i], &e, at);
		if (r < 0) {
			client_log("knock: %s: %s", p->hosts[i].address, strerror(-r));
			failed = 1;
			continue;
		}
		fprintf(stderr, "%s: client %s knocked on %s udp port %u (epoch %llu), door %u\n",
			p->service, p->client, p->hosts[i].address, e.knock_port,
			(unsigned long long)e.epoch, e.window[0]);
	}
	return failed;
}

static int cmd_connect(const struct profile *p, int argc, char **argv)
{
	const char *host = NULL;
	const struct profile_host *h;
	int r;

	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else
			return usage_error("connect: unexpected argument '%s'", argv[i]);
	}
	r = select_host(p, "connect", host, &h);
	if (r != 0)
		return r;
	return client_connect_command(p, host);
}

static int cmd_forward(const struct profile *p, int argc, char **argv)
{
	struct client_forward_options o = {.max_connections = FORWARD_DEFAULT_CONNECTIONS};

	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--listen") && i + 1 < argc)
			o.listen = argv[++i];
		else if (streq(argv[i], "--host") && i + 1 < argc)
			o.host = argv[++i];
		else if (streq(argv[i], "--max-connections") && i + 1 < argc) {
			if (parse_count(argv[++i], FORWARD_MAX_CONNECTIONS, &o.max_connections) < 0)
				return usage_error("forward: --max-connections: '%s' is not a "
						   "number in 1..%d",
						   argv[i], FORWARD_MAX_CONNECTIONS);
		} else
			return usage_error("forward: unexpected argument '%s'", argv[i]);
	}
	if (!o.listen)
		return usage_error("forward: expected --listen ADDRESS:PORT");
	return client_forward_command(p, &o);
}

static const struct command commands[] = {
    {"port", "PROFILE [--at TIME] [--host H] [--all] [--candidates N]",
     "the door now (or at TIME); --all: every host's window and knock ports", cmd_port},
    {"knock", "PROFILE [--host H]", "send the knock of now (Auth=knock)", cmd_knock},
    {"connect", "PROFILE [--host H]",
     "knock if needed, connect to the door, relay stdin/stdout (ssh ProxyCommand)", cmd_connect},
    {"forward", "PROFILE --listen ADDRESS:PORT [--host H] [--max-connections N]",
     "a local TCP forwarder to the door of the moment", cmd_forward},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: mtd-client COMMAND PROFILE [OPTIONS]\n\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(out, "  mtd-client %s %s\n      %s\n", commands[i].name, commands[i].args,
			commands[i].help);
	fprintf(out, "\nThe profile comes from `mtdctl client add` (docs/clients.md); it must be "
		     "owner-only (chmod 0600).\n");
}

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	char error[PROFILE_MAX_ERROR];
	struct profile *p;
	int r;

	if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && streq(argv[1], "--version")) {
		printf("mtd-client %s\n", MTD_VERSION);
		return 0;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[1]);
	if (argc >= 3 && (streq(argv[2], "--help") || streq(argv[2], "-h"))) {
		printf("usage: mtd-client %s %s\n  %s\n", cmd->name, cmd->args, cmd->help);
		return 0;
	}
	if (argc < 3 || argv[2][0] == '-')
		return usage_error("%s: expected a PROFILE first", cmd->name);
	p = malloc(sizeof(*p));
	if (!p) {
		client_log("out of memory");
		return 1;
	}
	r = profile_load(argv[2], p, error, sizeof(error));
	if (r < 0) {
		fprintf(stderr, "mtd-client: %s\n", error);
		free(p);
		return 1;
	}
	r = cmd->run(p, argc - 3, argv + 3);
	profile_clear(p);
	free(p);
	return r;
}
