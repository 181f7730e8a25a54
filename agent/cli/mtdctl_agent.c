/* SPDX-License-Identifier: MIT */
/* mtdctl's commands that ask the running agent over its control socket:
 * status, policy list/show, reload, unblock, instances, quarantine, release,
 * inspect, audit show. Human tables by default, the agent's JSON with
 * --json. Each mtdctl_X() gets argv from the command's last word. */
#include "mtdctl.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "policy.h"

/* A reply is one message of any size the agent's send buffer allows
 * (status of a thousand services is ~360 KiB); more is not an agent's. */
#define REPLY_SIZE_MAX (16 * 1024 * 1024)

static int connect_agent(const char *path, int *ret_fd)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int send_request(const struct mtdctl *ctl, const struct control_request *request,
			int *ret_fd)
{
	_cleanup_free_ char *message = control_request_encode(request);
	_cleanup_close_ int fd = -1;
	int r;

	if (!message)
		return mtdctl_fail("out of memory");
	r = connect_agent(ctl->socket_path, &fd);
	if (r < 0)
		return mtdctl_fail("cannot reach the agent at %s: %s", ctl->socket_path,
				   strerror(-r));
	if (send(fd, message, strlen(message), MSG_NOSIGNAL) < 0)
		return mtdctl_fail("cannot send to the agent at %s: %s", ctl->socket_path,
				   strerror(errno));
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* One reply message; NULL with an error printed when the agent closed or sent
 * something that is not a JSON object. */
static json_t *receive_reply(int fd, const char *socket_path)
{
	_cleanup_free_ char *buffer = NULL;
	json_error_t error;
	json_t *reply;
	ssize_t n;

	/* The message's length first (MSG_TRUNC reports it whole), then the
	 * message into a buffer of that size. */
	do
		n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n > REPLY_SIZE_MAX) {
		mtdctl_fail("reply from the agent too large (%zd bytes)", n);
		return NULL;
	}
	if (n > 0) {
		buffer = malloc((size_t)n);
		if (!buffer) {
			mtdctl_fail("out of memory");
			return NULL;
		}
		do
			n = recv(fd, buffer, (size_t)n, 0);
		while (n < 0 && errno == EINTR);
	}
	if (n < 0) {
		mtdctl_fail("reading from the agent at %s: %s", socket_path, strerror(errno));
		return NULL;
	}
	if (n == 0) {
		mtdctl_fail("the agent at %s closed the connection", socket_path);
		return NULL;
	}
	reply = json_loadb(buffer, (size_t)n, 0, &error);
	if (!json_is_object(reply)) {
		json_decref(reply);
		mtdctl_fail("malformed reply from the agent: %s", error.text);
		return NULL;
	}
	return reply;
}

static void print_json(json_t *value)
{
	_cleanup_free_ char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text)
		puts(text);
}

/* One request, one reply: returns the reply's result (new reference) or NULL
 * with the failure printed; *ret_exit is the exit code to use. */
static json_t *call(const struct mtdctl *ctl, const struct control_request *request, int *ret_exit)
{
	_cleanup_close_ int fd = -1;
	_cleanup_(json_decrefp) json_t *reply = NULL;
	json_t *errors;

	*ret_exit = send_request(ctl, request, &fd);
	if (*ret_exit != 0)
		return NULL;
	reply = receive_reply(fd, ctl->socket_path);
	if (!reply) {
		*ret_exit = EXIT_FAILURE;
		return NULL;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *reason = json_string_value(json_object_get(reply, "error"));

		if (ctl->json)
			print_json(reply);
		errors = json_object_get(reply, "errors");
		for (size_t i = 0; !ctl->json && i < json_array_size(errors); i++)
			fprintf(stderr, "%s\n", json_string_value(json_array_get(errors, i)));
		*ret_exit = mtdctl_fail("%s", reason ? reason : "the agent refused the request");
		return NULL;
	}
	*ret_exit = 0;
	return json_incref(json_object_get(reply, "result"));
}

static const char *string_or(json_t *o, const char *key, const char *fallback)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : fallback;
}

static void print_services_table(json_t *services)
{
	size_t i;
	json_t *s;

	if (json_array_size(services) == 0) {
		printf("no services\n");
		return;
	}
	printf("%-20s %-8s %-13s %-9s %s\n", "SERVICE", "KIND", "PUBLIC-PORTS", "INTERVAL", "FILE");
	json_array_foreach(services, i, s)
	{
		char interval[64] = "-";
		json_t *iv = json_object_get(s, "interval_usec");

		if (json_is_integer(iv))
			mtdctl_format_usec((uint64_t)json_integer_value(iv), interval,
					   sizeof(interval));
		printf("%-20s %-8s %-13s %-9s %s\n", string_or(s, "name", "?"),
		       string_or(s, "kind", "?"), string_or(s, "public_ports", "-"), interval,
		       string_or(s, "file", "-"));
	}
}

static void format_utc_time(uint64_t usec, char *buffer, size_t size)
{
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buffer, size, "%H:%M:%S", &tm))
		snprintf(buffer, size, "?");
}

/* Whom decoys may block (docs/decoys.md). */
static void print_decoy_blocking(json_t *d)
{
	char interval[POLICY_TIMESPAN_MAX];

	if (!json_is_object(d))
		return;
	policy_format_timespan(
	    interval, sizeof(interval),
	    (uint64_t)json_integer_value(json_object_get(d, "udp_interval_usec")));
	printf("decoys: %s; UDP hits blocked %lld of at most %lld source(s) per %s; "
	       "%lld NeverBlock= range(s) of the host\n",
	       json_is_true(json_object_get(d, "monitor"))
		   ? "monitor mode, nobody is blocked"
		   : "TCP sources blocked once their handshake completes",
	       (long long)json_integer_value(json_object_get(d, "udp_blocked_in_interval")),
	       (long long)json_integer_value(json_object_get(d, "udp_limit")), interval,
	       (long long)json_integer_value(json_object_get(d, "never_block")));
}

/* Knock-gated services (docs/schedule.md, "Knock packets"): knocks admitted
 * and refused by reason, and the clients seen. */
static void print_knocks(json_t *knock)
{
	json_t *services = json_object_get(knock, "services");
	json_t *clients = json_object_get(knock, "clients");
	json_t *s, *n;
	const char *reason;
	size_t i;

	if (json_array_size(services) == 0 && json_array_size(clients) == 0)
		return;
	printf("\nknocks:\n");
	json_array_foreach(services, i, s)
	{
		printf("  %-20s %lld admitted; refused:", string_or(s, "service", "?"),
		       (long long)json_integer_value(json_object_get(s, "admitted")));
		bool any = false;

		json_object_foreach(json_object_get(s, "refused"), reason,
				    n) if (json_integer_value(n) > 0)
		{
			printf(" %s %lld", reason, (long long)json_integer_value(n));
			any = true;
		}
		printf("%s\n", any ? "" : " none");
	}
	if (json_array_size(clients) == 0)
		return;
	printf("\n%-20s %-20s %-8s %-21s %-40s %s\n", "SERVICE", "CLIENT", "ADMITTED",
	       "LAST-ADMITTED (UTC)", "FROM", "LAST-CONNECTION");
	json_array_foreach(clients, i, s)
	{
		char admitted[32], connected[96] = "-", at[32];
		uint64_t c =
		    (uint64_t)json_integer_value(json_object_get(s, "last_connected_usec"));

		format_utc_time(
		    (uint64_t)json_integer_value(json_object_get(s, "last_admitted_usec")),
		    admitted, sizeof(admitted));
		if (c) {
			format_utc_time(c, at, sizeof(at));
			snprintf(connected, sizeof(connected), "%s from %s to %lld", at,
				 string_or(s, "last_connected_source", "?"),
				 (long long)json_integer_value(json_object_get(s, "last_door")));
		}
		printf("%-20s %-20s %-8lld %-21s %-40s %s\n", string_or(s, "service", "?"),
		       string_or(s, "client", "?"),
		       (long long)json_integer_value(json_object_get(s, "admitted")), admitted,
		       string_or(s, "last_admitted_source", "?"), connected);
	}
}

static void print_rotation(json_t *rotation)
{
	json_t *services = json_object_get(rotation, "services");
	json_t *blocked = json_object_get(rotation, "blocked");
	json_t *table = json_object_get(rotation, "table");
	json_t *s;
	size_t i;

	if (!json_is_object(rotation))
		return;
	printf("\nrotation: table inet mtd%s, %lld transaction(s) (%lld switches of banks), "
	       "%lld failed\n",
	       json_is_true(json_object_get(table, "persist")) ? " (persist)" : " (owner only)",
	       (long long)json_integer_value(json_object_get(table, "transactions")),
	       (long long)json_integer_value(json_object_get(table, "bank_switches")),
	       (long long)json_integer_value(json_object_get(table, "failures")));
	if (json_array_size(services) > 0)
		printf("%-20s %-6s %-6s %-14s %-7s %s\n", "SERVICE", "PORT", "GRACE",
		       "NEXT-BOUNDARY", "DECOYS", "DECOY-HITS");
	json_array_foreach(services, i, s)
	{
		char next[32], grace[16] = "-";
		long long grace_port = json_integer_value(json_object_get(s, "grace_port"));

		format_utc_time(
		    (uint64_t)json_integer_value(json_object_get(s, "next_boundary_usec")), next,
		    sizeof(next));
		if (grace_port)
			snprintf(grace, sizeof(grace), "%lld", grace_port);
		printf("%-20s %-6lld %-6s %-14s %-7zu %lld\n", string_or(s, "name", "?"),
		       (long long)json_integer_value(json_object_get(s, "port")), grace, next,
		       json_array_size(json_object_get(s, "decoys")),
		       (long long)json_integer_value(json_object_get(s, "decoy_hits")));
	}
	print_decoy_blocking(json_object_get(rotation, "decoy_blocking"));
	print_knocks(json_object_get(rotation, "knock"));
	if (json_array_size(blocked) > 0) {
		printf("\nblocked sources:\n");
		json_array_foreach(blocked, i, s)
		{
			char until[32], strike[48] = "";
			long long n = json_integer_value(json_object_get(s, "strike"));

			format_utc_time(
			    (uint64_t)json_integer_value(json_object_get(s, "until_usec")), until,
			    sizeof(until));
			const char *service = string_or(s, "service", "");

			if (n > 1)
				snprintf(strike, sizeof(strike), ", block %lld in a row", n);
			printf("  %-40s until %s UTC (%s%s%s)\n", string_or(s, "address", "?"),
			       until,
			       service[0] ? "decoy of "
					  : "a decoy of an earlier epoch, or before a restart",
			       service, strike);
		}
	}
}

/* Managed services: who serves, the standbys that wait (StandbyInstances=),
 * the replaced instances that drain (DrainTimeout=). */
static long long int_of(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* A fleet engine's bridge (docs/fleet.md), once one has reported. */
static void print_shared(json_t *shared)
{
	json_t *bridge = json_object_get(shared, "bridge");
	json_t *applied = json_object_get(shared, "applied");
	char since[64] = "?", last[64] = "?";

	if (!bridge)
		return;
	format_utc_time((uint64_t)int_of(bridge, "since_usec"), since, sizeof(since));
	format_utc_time((uint64_t)int_of(shared, "report_usec"), last, sizeof(last));
	printf("shared:   %s LAPI %s since %s%s%s (last report %s)\n",
	       string_or(bridge, "engine", "?"), string_or(bridge, "lapi", "?"), since,
	       string_or(bridge, "error", "")[0] ? ": " : "", string_or(bridge, "error", ""), last);
	printf("          sent %lld alert(s) (%lld queued, %lld failed); received %lld ban(s), "
	       "%lld unban(s), %lld skipped\n",
	       int_of(bridge, "alerts_sent"), int_of(bridge, "alerts_queued"),
	       int_of(bridge, "alerts_failed"), int_of(bridge, "decisions_new"),
	       int_of(bridge, "decisions_deleted"), int_of(bridge, "decisions_skipped"));
	printf(
	    "          applied: %lld blocked, %lld unblocked, %lld left to NeverBlock=, %lld kept "
	    "(own longer block), %lld simulated, %lld failed request(s)\n",
	    int_of(applied, "blocked"), int_of(applied, "unblocked"),
	    int_of(applied, "never_block"), int_of(applied, "kept_own"),
	    int_of(applied, "simulated"), int_of(shared, "failures"));
	printf("          ranges: %lld blocked, %lld unblocked; %lld in force (%lld interval(s))\n",
	       int_of(applied, "ranges_blocked"), int_of(applied, "ranges_unblocked"),
	       int_of(json_object_get(shared, "ranges"), "in_force"),
	       int_of(json_object_get(shared, "ranges"), "intervals"));
}

static void print_instances(json_t *services)
{
	json_t *s;
	size_t i;

	if (json_array_size(services) == 0)
		return;
	printf("\n%-20s %-20s %-9s %s\n", "SERVICE", "SERVING", "STANDBYS", "STANDBY INSTANCES");
	json_array_foreach(services, i, s)
	{
		json_t *sb = json_object_get(s, "standbys"), *x;
		char counts[32], ids[256] = "";
		size_t k, used = 0;

		snprintf(counts, sizeof(counts), "%zu/%lld",
			 json_array_size(json_object_get(sb, "ready")),
			 (long long)json_integer_value(json_object_get(sb, "target")));
		for (const char *const *kind =
			 (const char *const[]){"ready", "starting", "retiring", NULL};
		     *kind; kind++)
			json_array_foreach(json_object_get(sb, *kind), k, x)
			{
				int n = snprintf(ids + used, sizeof(ids) - used, "%s%s%s%s",
						 used ? " " : "", json_string_value(x),
						 streq(*kind, "ready") ? "" : " (",
						 streq(*kind, "ready") ? "" : *kind);
				if (n > 0 && (size_t)n < sizeof(ids) - used)
					used += (size_t)n;
				if (!streq(*kind, "ready") && used + 1 < sizeof(ids)) {
					ids[used++] = ')';
					ids[used] = '\0';
				}
			}
		printf("%-20s %-20s %-9s %s\n", string_or(s, "service", "?"),
		       json_is_true(json_object_get(s, "routed")) ? string_or(s, "serving", "-")
								  : "-",
		       counts, used ? ids : "-");
		/* Replaced instances whose connections still run (DrainTimeout=). */
		json_array_foreach(json_object_get(s, "draining"), k, x)
		    printf("%-20s draining %s\n", "", json_string_value(x));
	}
}

static int command_unblock(const struct mtdctl *ctl, const char *address)
{
	struct control_request request = {.command = CONTROL_UNBLOCK};
	_cleanup_(json_decrefp) json_t *result = NULL;
	int exit_code;

	if (strlen(address) >= sizeof(request.address))
		return mtdctl_usage_error("unblock: '%s' is not an address", address);
	snprintf(request.address, sizeof(request.address), "%s", address);
	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json)
		print_json(result);
	else
		printf("unblocked %s\n", address);
	return 0;
}

/* The agent's figures in the Prometheus text format, as the agent wrote
 * them (docs/metrics.md); --json wraps them in a JSON string. */
static int command_metrics(const struct mtdctl *ctl)
{
	struct control_request request = {.command = CONTROL_METRICS};
	_cleanup_(json_decrefp) json_t *result = NULL;
	int exit_code;

	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json) {
		print_json(result);
		return 0;
	}
	if (!json_is_string(result))
		return mtdctl_fail("the agent's metrics reply is not text");
	fwrite(json_string_value(result), 1, json_string_length(result), stdout);
	return fflush(stdout) == 0 ? 0
				   : mtdctl_fail("cannot write the metrics: %s", strerror(errno));
}

static int command_instances(const struct mtdctl *ctl)
{
	struct control_request request = {.command = CONTROL_INSTANCES};
	_cleanup_(json_decrefp) json_t *result = NULL;
	json_t *i;
	size_t k;
	int exit_code;

	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json) {
		print_json(result);
		return 0;
	}
	if (json_array_size(result) == 0) {
		printf("no instances\n");
		return 0;
	}
	printf("%-20s %-14s %-7s %-28s %-10s %-11s %-16s %s\n", "ID", "SERVICE", "PID", "ADDRESS",
	       "AGE", "STATE", "ROLE", "HEALTH");
	json_array_foreach(result, k, i)
	{
		char age[64] = "-", address[64] = "-";
		json_t *addresses = json_object_get(i, "addresses");
		json_t *pid = json_object_get(i, "pid");

		if (json_is_integer(json_object_get(i, "age_usec")))
			mtdctl_format_usec(
			    (uint64_t)json_integer_value(json_object_get(i, "age_usec")), age,
			    sizeof(age));
		if (json_array_size(addresses) > 0)
			snprintf(address, sizeof(address), "%s%s",
				 json_string_value(json_array_get(addresses, 0)),
				 json_array_size(addresses) > 1 ? " +v6" : "");
		printf("%-20s %-14s %-7lld %-28s %-10s %-11s %-16s %s\n", string_or(i, "id", "-"),
		       string_or(i, "service", "?"), pid ? (long long)json_integer_value(pid) : 0LL,
		       address, age, string_or(i, "state", "?"), string_or(i, "role", "-"),
		       string_or(i, "health", ""));
	}
	return 0;
}

/* quarantine TARGET [--reason TEXT] | replace TARGET | release ID | inspect [--verify] ID */
static int command_quarantine(const struct mtdctl *ctl, enum control_command command, int argc,
			      char **argv)
{
	struct control_request request = {.command = command};
	_cleanup_(json_decrefp) json_t *result = NULL;
	const char *name = control_command_name(command);
	const char *target = NULL;
	int exit_code;

	for (int i = 1; i < argc; i++) {
		if (command == CONTROL_QUARANTINE && streq(argv[i], "--reason") && i + 1 < argc) {
			if (strlen(argv[++i]) >= sizeof(request.reason))
				return mtdctl_usage_error(
				    "%s: --reason is longer than %zu characters", name,
				    sizeof(request.reason) - 1);
			snprintf(request.reason, sizeof(request.reason), "%s", argv[i]);
		} else if (command == CONTROL_INSPECT && streq(argv[i], "--verify")) {
			request.verify = true;
		} else if (argv[i][0] != '-' && !target) {
			target = argv[i];
		} else {
			return mtdctl_usage_error("%s: unexpected argument '%s'", name, argv[i]);
		}
	}
	if (!target || strlen(target) >= sizeof(request.target))
		return mtdctl_usage_error("%s: expected %s", name,
					  command == CONTROL_QUARANTINE ||
						  command == CONTROL_REPLACE
					      ? "INSTANCE or SERVICE"
					      : "an instance id");
	snprintf(request.target, sizeof(request.target), "%s", target);
	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json || command == CONTROL_INSPECT)
		print_json(result);
	else if (command == CONTROL_QUARANTINE)
		printf("%s\n", string_or(result, "message", "quarantining"));
	else if (command == CONTROL_REPLACE)
		printf("%s\n", string_or(result, "message", "replacing"));
	else
		printf("released %s\n", target);
	return 0;
}

/* The agent's mode: monitor (--monitor), or enforce and the managed services
 * in alert (OnCompromise=alert). */
static void print_mode(json_t *result)
{
	json_t *services = json_object_get(result, "instances"), *s;
	char alert[256] = "";
	size_t i, used = 0;

	if (streq(string_or(result, "mode", "enforce"), "monitor")) {
		printf("mode:     monitor (detections are audited and counted; nothing is killed, "
		       "quarantined or blocked for them)\n");
		return;
	}
	json_array_foreach(services, i, s)
	{
		int n;

		if (!streq(string_or(s, "on_compromise", ""), "alert"))
			continue;
		n = snprintf(alert + used, sizeof(alert) - used, "%s%s", used ? ", " : "",
			     string_or(s, "service", "?"));
		if (n > 0 && (size_t)n < sizeof(alert) - used)
			used += (size_t)n;
	}
	if (used)
		printf("mode:     enforce; in alert (OnCompromise=alert, nothing is killed or "
		       "quarantined for a detection): %s\n",
		       alert);
	else
		printf("mode:     enforce\n");
}

/* Per managed service, what a detection gets and the detections audited and
 * counted but not acted on (alert; OnSyscallViolation=errno). Shown when a
 * service is in alert or has such detections. */
static void print_detections(json_t *services)
{
	bool any = false;
	json_t *s, *count;
	const char *kind;
	size_t i;

	json_array_foreach(services, i, s)
	{
		json_object_foreach(json_object_get(s, "not_acted_on"), kind, count)
		{
			any |= json_integer_value(count) > 0;
		}
		any |= streq(string_or(s, "on_compromise", ""), "alert");
	}
	if (!any)
		return;
	printf("\n%-20s %-13s %s\n", "SERVICE", "ON-COMPROMISE", "DETECTIONS NOT ACTED ON");
	json_array_foreach(services, i, s)
	{
		char counts[256] = "";
		size_t used = 0;

		json_object_foreach(json_object_get(s, "not_acted_on"), kind, count)
		{
			int n;

			if (json_integer_value(count) <= 0)
				continue;
			n = snprintf(counts + used, sizeof(counts) - used, "%s%s %lld",
				     used ? ", " : "", kind, (long long)json_integer_value(count));
			if (n > 0 && (size_t)n < sizeof(counts) - used)
				used += (size_t)n;
		}
		printf("%-20s %-13s %s\n", string_or(s, "service", "?"),
		       string_or(s, "on_compromise", "?"), used ? counts : "none");
	}
}

/* The wall clock's trust: one line, and the reason when it is not trusted. */
/* The journal copies (present when the agent sends them). */
static void print_audit_journal(json_t *journal)
{
	if (!json_is_object(journal))
		return;
	printf("          journal copies: %lld sent, %lld dropped%s%s%s\n",
	       (long long)json_integer_value(json_object_get(journal, "sent")),
	       (long long)json_integer_value(json_object_get(journal, "dropped")),
	       json_object_get(journal, "error") ? " (last: " : "", string_or(journal, "error", ""),
	       json_object_get(journal, "error") ? ")" : "");
}

static void print_clock(json_t *clock)
{
	char since[64] = "start";
	time_t t;
	struct tm tm;

	if (!json_is_object(clock))
		return;
	t = (time_t)(json_integer_value(json_object_get(clock, "since_usec")) / 1000000);
	if (t > 0 && gmtime_r(&t, &tm))
		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (json_is_true(json_object_get(clock, "trusted")))
		printf("clock:    trusted (%s)\n", string_or(clock, "reason", "?"));
	else
		printf("clock:    NOT TRUSTED since %s: %s; ports follow it all the same\n", since,
		       string_or(clock, "reason", "?"));
}

static int command_status(const struct mtdctl *ctl)
{
	struct control_request request = {.command = CONTROL_STATUS};
	_cleanup_(json_decrefp) json_t *result = NULL;
	char uptime[64], loaded[64] = "?";
	json_t *audit;
	int exit_code;
	time_t t;
	struct tm tm;

	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json) {
		print_json(result);
		return 0;
	}
	mtdctl_format_usec((uint64_t)json_integer_value(json_object_get(result, "uptime_usec")),
			   uptime, sizeof(uptime));
	t = (time_t)(json_integer_value(json_object_get(result, "policies_loaded_usec")) / 1000000);
	if (gmtime_r(&t, &tm))
		strftime(loaded, sizeof(loaded), "%Y-%m-%d %H:%M:%S UTC", &tm);
	audit = json_object_get(result, "audit");

	printf("agent:    mtd-agent %s, pid %lld, up %s\n", string_or(result, "version", "?"),
	       (long long)json_integer_value(json_object_get(result, "pid")), uptime);
	printf("policies: %zu service(s) from %s, loaded %s, %lld reload(s), %lld refused\n",
	       json_array_size(json_object_get(result, "services")),
	       string_or(result, "policy_dir", "?"), loaded,
	       (long long)json_integer_value(json_object_get(result, "reloads")),
	       (long long)json_integer_value(json_object_get(result, "reload_failures")));
	printf("audit:    %s, last seq %lld, key epoch %lld\n", string_or(audit, "path", "?"),
	       (long long)json_integer_value(json_object_get(audit, "last_seq")),
	       (long long)json_integer_value(json_object_get(audit, "epoch")));
	if (json_is_false(json_object_get(audit, "writable")))
		printf("          NOT WRITABLE: %s; %lld record(s) queued in memory, %lld lost\n",
		       string_or(audit, "error", "?"),
		       (long long)json_integer_value(json_object_get(audit, "queued")),
		       (long long)json_integer_value(json_object_get(audit, "lost_total")));
	else if (json_integer_value(json_object_get(audit, "lost_total")) > 0)
		printf("          %lld record(s) lost while the log could not be written "
		       "(audit-records-lost)\n",
		       (long long)json_integer_value(json_object_get(audit, "lost_total")));
	print_audit_journal(json_object_get(audit, "journal"));
	print_clock(json_object_get(result, "clock"));
	print_mode(result);
	putchar('\n');
	print_services_table(json_object_get(result, "services"));
	print_instances(json_object_get(result, "instances"));
	print_detections(json_object_get(result, "instances"));
	print_rotation(json_object_get(result, "rotation"));
	print_shared(json_object_get(result, "shared"));
	return 0;
}

static int command_policy_list(const struct mtdctl *ctl)
{
	struct control_request request = {.command = CONTROL_POLICY_LIST};
	_cleanup_(json_decrefp) json_t *result = NULL;
	int exit_code;

	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json)
		print_json(result);
	else
		print_services_table(result);
	return 0;
}

static void print_value(json_t *value)
{
	size_t i;
	json_t *item;

	switch (json_typeof(value)) {
	case JSON_STRING:
		fputs(json_string_value(value), stdout);
		break;
	case JSON_ARRAY:
		json_array_foreach(value, i, item)
		{
			if (i)
				fputs(json_is_object(item) ? "; " : " ", stdout);
			print_value(item);
		}
		break;
	default: {
		_cleanup_free_ char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text)
			fputs(text, stdout);
	}
	}
}

static int command_policy_show(const struct mtdctl *ctl, const char *name)
{
	struct control_request request = {.command = CONTROL_POLICY_SHOW};
	_cleanup_(json_decrefp) json_t *result = NULL;
	const char *key;
	json_t *value;
	int exit_code;

	if (strlen(name) >= sizeof(request.name))
		return mtdctl_usage_error("service name too long: %s", name);
	snprintf(request.name, sizeof(request.name), "%s", name);
	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json || !json_is_object(result)) {
		print_json(result);
		return 0;
	}
	/* Sections as objects, keys as "  Key = value" lines. */
	json_object_foreach(result, key, value)
	{
		if (json_is_object(value)) {
			const char *k;
			json_t *v;

			printf("[%s]\n", key);
			json_object_foreach(value, k, v)
			{
				printf("  %-22s ", k);
				print_value(v);
				putchar('\n');
			}
		} else {
			printf("%-24s ", key);
			print_value(value);
			putchar('\n');
		}
	}
	return 0;
}

static int command_reload(const struct mtdctl *ctl, bool keep_connections)
{
	struct control_request request = {.command = CONTROL_RELOAD,
					  .keep_connections = keep_connections};
	_cleanup_(json_decrefp) json_t *result = NULL;
	int exit_code;

	result = call(ctl, &request, &exit_code);
	if (!result)
		return exit_code;
	if (ctl->json) {
		print_json(result);
		return 0;
	}
	printf("reloaded: %zu service(s) in force",
	       json_array_size(json_object_get(result, "services")));
	if (json_array_size(json_object_get(result, "added"))) {
		fputs("; added: ", stdout);
		print_value(json_object_get(result, "added"));
	}
	if (json_array_size(json_object_get(result, "removed"))) {
		fputs("; removed: ", stdout);
		print_value(json_object_get(result, "removed"));
	}
	if (json_array_size(json_object_get(result, "revoked"))) {
		fputs("; clients revoked: ", stdout);
		print_value(json_object_get(result, "revoked"));
	}
	putchar('\n');
	return 0;
}

static void print_record(json_t *record, bool json)
{
	char when[64] = "?";
	const char *realtime = json_string_value(json_object_get(record, "realtime"));
	_cleanup_free_ char *fields = NULL;

	if (json) {
		_cleanup_free_ char *text = json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (text)
			puts(text);
		return;
	}
	if (realtime)
		snprintf(when, sizeof(when), "%.19s", realtime);
	fields = json_dumps(json_object_get(record, "fields"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%6lld  %s  %-22s %s\n",
	       (long long)json_integer_value(json_object_get(record, "seq")), when,
	       string_or(record, "type", "?"), fields ? fields : "{}");
}

static int command_audit_show(const struct mtdctl *ctl, uint64_t since, bool follow)
{
	for (;;) {
		struct control_request request = {
		    .command = CONTROL_AUDIT_SHOW, .since = since, .follow = follow};
		_cleanup_close_ int fd = -1;
		bool truncated = false;
		int r;

		r = send_request(ctl, &request, &fd);
		if (r != 0)
			return r;
		for (;;) {
			_cleanup_(json_decrefp) json_t *reply = receive_reply(fd, ctl->socket_path);
			json_t *records, *record;
			size_t i;

			if (!reply)
				return EXIT_FAILURE;
			if (!json_is_true(json_object_get(reply, "ok")))
				return mtdctl_fail("%s", string_or(reply, "error", "refused"));
			records = json_object_get(reply, "records");
			json_array_foreach(records, i, record)
			{
				print_record(record, ctl->json);
				since =
				    (uint64_t)json_integer_value(json_object_get(record, "seq"));
			}
			fflush(stdout);
			if (!json_is_true(json_object_get(reply, "more"))) {
				truncated = json_is_true(json_object_get(reply, "truncated"));
				break;
			}
		}
		/* The agent sends at most a page per request: ask for the rest. */
		if (!truncated)
			return 0;
	}
}

static int parse_since(const char *value, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!value[0] || value[0] == '-' || value[0] == '+')
		return -EINVAL;
	v = strtoull(value, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int mtdctl_audit_show(const struct mtdctl *ctl, int argc, char **argv)
{
	uint64_t since = 0;
	bool follow = false;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--follow") || streq(argv[i], "-f")) {
			follow = true;
		} else if (streq(argv[i], "--since") && i + 1 < argc) {
			if (parse_since(argv[++i], &since) < 0)
				return mtdctl_usage_error("audit show: --since wants a "
							  "sequence number, not '%s'",
							  argv[i]);
		} else {
			return mtdctl_usage_error("audit show: unexpected argument '%s'", argv[i]);
		}
	}
	return command_audit_show(ctl, since, follow);
}

/* Commands without arguments: status, reload, instances, policy list. */
static int run_no_arguments(const struct mtdctl *ctl, int argc, const char *name,
			    int (*command)(const struct mtdctl *))
{
	if (argc != 1)
		return mtdctl_usage_error("%s takes no arguments", name);
	return command(ctl);
}

int mtdctl_status(const struct mtdctl *ctl, int argc, char **argv)
{
	return run_no_arguments(ctl, argc, "status", command_status);
}

int mtdctl_metrics(const struct mtdctl *ctl, int argc, char **argv)
{
	return run_no_arguments(ctl, argc, "metrics", command_metrics);
}

int mtdctl_reload(const struct mtdctl *ctl, int argc, char **argv)
{
	if (argc == 2 && streq(argv[1], "--keep-connections"))
		return command_reload(ctl, true);
	if (argc != 1)
		return mtdctl_usage_error("reload: the only option is --keep-connections");
	return command_reload(ctl, false);
}

int mtdctl_instances(const struct mtdctl *ctl, int argc, char **argv)
{
	return run_no_arguments(ctl, argc, "instances", command_instances);
}

int mtdctl_policy_list(const struct mtdctl *ctl, int argc, char **argv)
{
	return run_no_arguments(ctl, argc, "policy list", command_policy_list);
}

int mtdctl_policy_show(const struct mtdctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return mtdctl_usage_error("policy show: expected one service name");
	return command_policy_show(ctl, argv[1]);
}

int mtdctl_unblock(const struct mtdctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return mtdctl_usage_error("unblock: expected one address");
	return command_unblock(ctl, argv[1]);
}

int mtdctl_quarantine(const struct mtdctl *ctl, int argc, char **argv)
{
	return command_quarantine(ctl, CONTROL_QUARANTINE, argc, argv);
}

int mtdctl_replace(const struct mtdctl *ctl, int argc, char **argv)
{
	return command_quarantine(ctl, CONTROL_REPLACE, argc, argv);
}

int mtdctl_release(const struct mtdctl *ctl, int argc, char **argv)
{
	return command_quarantine(ctl, CONTROL_RELEASE, argc, argv);
}

int mtdctl_inspect(const struct mtdctl *ctl, int argc, char **argv)
{
	return command_quarantine(ctl, CONTROL_INSPECT, argc, argv);
}
