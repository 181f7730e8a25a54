/* SPDX-License-Identifier: MIT */
/* mtdctl port / mtdctl connect: an authorised client computes a service's
 * current public port from the policy and its key, with no round trip to the
 * agent, and can proxy stdio to it (ssh ProxyCommand). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mtdctl.h"
#include "policy.h"
#include "rotator.h"
#include "clock.h"

#define CANDIDATES_MAX 64
#define CONNECT_TIMEOUT_MS 3000

struct client_schedule {
	struct policy_set *set;
	const struct policy *policy;
	uint8_t *key;
	size_t key_len;
};

static void client_schedule_done(struct client_schedule *s)
{
	if (s->key) {
		explicit_bzero(s->key, s->key_len);
		free(s->key);
	}
	policy_set_free(s->set);
}

/* Loads the service's policy (a file or a directory) and its key. Prints the
 * reason and returns an exit code on failure. */
static int client_schedule_load(const char *service, const char *policy_path,
				struct client_schedule *ret)
{
	struct policy_errors errors = {0};
	struct client_schedule s = {0};
	_cleanup_free_ char *error = NULL;
	int r;

	r = policy_set_load(&policy_path, 1, &s.set, &errors);
	if (r < 0) {
		for (size_t i = 0; i < errors.count; i++) {
			_cleanup_free_ char *line = policy_error_format(&errors.items[i]);
			if (line)
				fprintf(stderr, "%s\n", line);
		}
		policy_errors_free(&errors);
		return mtdctl_fail("%s: the policy is not valid", policy_path);
	}
	policy_errors_free(&errors);
	s.policy = policy_set_find(s.set, service);
	if (!s.policy) {
		policy_set_free(s.set);
		return mtdctl_fail("%s: no service named %s", policy_path, service);
	}
	if (!s.policy->has_public_ports || !s.policy->key_file) {
		policy_set_free(s.set);
		return mtdctl_fail("%s: service %s does not rotate (no [Rotation])", policy_path,
				   service);
	}
	r = policy_read_key_file(s.policy->key_file, &s.key, &s.key_len, &error);
	if (r < 0) {
		policy_set_free(s.set);
		return mtdctl_fail("cannot read the key: %s", error ? error : strerror(-r));
	}
	*ret = s;
	return 0;
}

static struct schedule_params schedule_params_of(const struct client_schedule *s)
{
	return (struct schedule_params){
	    .key = s->key,
	    .key_len = s->key_len,
	    .service = s->policy->name,
	    .first = s->policy->public_ports.first,
	    .last = s->policy->public_ports.last,
	    .interval_sec = s->policy->interval_usec / USEC_PER_SEC,
	    .grace_sec = s->policy->grace_usec / USEC_PER_SEC,
	};
}

static int parse_count(const char *s, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < 1 || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* --skew: a client's clock may be this far off the agent's. */
#define SKEW_MAX_USEC USEC_PER_HOUR
#define SKEW_NEIGHBOURS_MAX 8 /* boundaries now±skew may cross, both sides together */

static int parse_skew(const char *command, const char *value, uint64_t *ret_usec)
{
	const char *reason = NULL;
	uint64_t v;

	if (policy_parse_timespan(value, &v, &reason) < 0 || v == 0 || v > SKEW_MAX_USEC)
		return mtdctl_usage_error("%s: --skew: '%s' is not a duration in 1us..1h (%s)",
					  command, value, reason ? reason : "out of range");
	*ret_usec = v;
	return 0;
}

/* An epoch other than now's that a clock off by up to the skew lands in. */
struct neighbour {
	uint64_t epoch;
	uint16_t port;
	uint64_t boundary_usec; /* where its epoch starts (next) or ends (previous) */
	bool next;		/* after now's epoch (a clock ahead), else before (behind) */
};

/* The epochs now-skew and now+skew reach besides now's, nearest boundary
 * first (the next side first on a tie), and their ports. */
static int skew_neighbours(const struct schedule_params *p,
			   const struct schedule_result *now_result, uint64_t at_usec,
			   uint64_t skew_usec, struct neighbour *ret, size_t *ret_n)
{
	uint64_t interval_usec = p->interval_sec * USEC_PER_SEC, lo, hi;
	uint64_t first_epoch, last_epoch;
	size_t n = 0;
	int r;

	r = schedule_epoch((at_usec > skew_usec ? at_usec - skew_usec : 0) / USEC_PER_SEC,
			   p->interval_sec, &first_epoch);
	if (r < 0)
		return r;
	r = schedule_epoch((at_usec + skew_usec) / USEC_PER_SEC, p->interval_sec, &last_epoch);
	if (r < 0)
		return r;
	lo = now_result->epoch - first_epoch;
	hi = last_epoch - now_result->epoch;
	if (lo + hi > SKEW_NEIGHBOURS_MAX)
		return -E2BIG;
	/* Merged by how far each boundary is from now: the d-th boundary ahead
	 * is next_boundary + (d - 1) intervals, the d-th behind is boundary -
	 * (d - 1) intervals; a tie goes to the one ahead. */
	for (uint64_t a = 1, b = 1; a <= hi || b <= lo;) {
		uint64_t ahead = now_result->next_boundary_usec + (a - 1) * interval_usec;
		uint64_t behind = now_result->boundary_usec - (b - 1) * interval_usec;
		bool take_next = b > lo || (a <= hi && ahead - at_usec <= at_usec - behind);

		ret[n] = (struct neighbour){
		    .epoch = take_next ? now_result->epoch + a : now_result->epoch - b,
		    .boundary_usec = take_next ? ahead : behind,
		    .next = take_next,
		};
		r = schedule_port(p, ret[n].epoch, &ret[n].port);
		if (r < 0)
			return r;
		n++;
		if (take_next)
			a++;
		else
			b++;
	}
	*ret_n = n;
	return 0;
}

static int print_port_with_skew(const struct mtdctl *ctl, const char *service,
				const struct schedule_result *result, uint64_t skew_usec,
				const struct neighbour *neighbours, size_t n)
{
	char when[64], skew[POLICY_TIMESPAN_MAX];

	policy_format_timespan(skew, sizeof(skew), skew_usec);
	if (ctl->json) {
		json_t *list = json_array();
		json_t *o;
		char *text;

		for (size_t i = 0; list && i < n; i++)
			json_array_append_new(list,
					      json_pack("{s:s, s:I, s:i, s:I}", "side",
							neighbours[i].next ? "next" : "previous",
							"epoch", (json_int_t)neighbours[i].epoch,
							"port", neighbours[i].port, "boundary_usec",
							(json_int_t)neighbours[i].boundary_usec));
		o = json_pack("{s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:o}", "service", service,
			      "epoch", (json_int_t)result->epoch, "port", result->port,
			      "grace_port", result->grace_port, "boundary_usec",
			      (json_int_t)result->boundary_usec, "next_boundary_usec",
			      (json_int_t)result->next_boundary_usec, "skew_usec",
			      (json_int_t)skew_usec, "neighbours", list);
		text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (text)
			puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	/* stdout: the ports in the order to try them; stderr: which is which. */
	printf("%u\n", result->port);
	for (size_t i = 0; i < n; i++)
		printf("%u\n", neighbours[i].port);
	mtdctl_format_utc(result->next_boundary_usec, when, sizeof(when));
	fprintf(stderr, "%s: %u: now, epoch %llu, until %s%s\n", service, result->port,
		(unsigned long long)result->epoch, when,
		result->grace_port ? " (previous port still in grace)" : "");
	for (size_t i = 0; i < n; i++) {
		mtdctl_format_utc(neighbours[i].boundary_usec, when, sizeof(when));
		fprintf(stderr, "%s: %u: %s epoch %llu, %s %s (a clock %s by up to %s)\n", service,
			neighbours[i].port, neighbours[i].next ? "next" : "previous",
			(unsigned long long)neighbours[i].epoch,
			neighbours[i].next ? "from" : "until", when,
			neighbours[i].next ? "ahead" : "behind", skew);
	}
	if (n == 0)
		fprintf(stderr, "%s: now±%s crosses no boundary\n", service, skew);
	return 0;
}

/* mtdctl port SERVICE --policy FILE --client NAME --client-key FILE
 * --host-id ID [--at TIME]: a per-client service's door (and knock port) of
 * one client, computed as the client does (no port excluded). */
static int port_client(const struct mtdctl *ctl, const char *service, const char *policy_path,
		       const char *client, const char *key_path, const char *host_id,
		       uint64_t at_usec)
{
	struct policy_errors errors = {0};
	struct policy_set *set = NULL;
	const struct policy *p;
	_cleanup_free_ char *error = NULL;
	uint8_t *key = NULL;
	size_t key_len = 0;
	struct schedule_client c;
	uint64_t epoch, interval_sec, next_usec;
	uint16_t door = 0, knock = 0;
	int r;

	if (!schedule_client_name_valid(client))
		return mtdctl_usage_error("port: --client: '%s' is not a client name", client);
	if (!schedule_host_id_valid(host_id))
		return mtdctl_usage_error("port: --host-id: '%s' is not a host id (1 to 255 of "
					  "A-Z a-z 0-9 _ . : -)",
					  host_id);
	r = policy_set_load(&policy_path, 1, &set, &errors);
	if (r < 0) {
		for (size_t i = 0; i < errors.count; i++) {
			_cleanup_free_ char *line = policy_error_format(&errors.items[i]);
			if (line)
				fprintf(stderr, "%s\n", line);
		}
		policy_errors_free(&errors);
		return mtdctl_fail("%s: the policy is not valid", policy_path);
	}
	policy_errors_free(&errors);
	p = policy_set_find(set, service);
	if (!p || !p->client_keys || !p->has_public_ports) {
		policy_set_free(set);
		return mtdctl_fail("%s: no per-client service (ClientKeys=) named %s", policy_path,
				   service);
	}
	r = policy_read_client_key_file(key_path, &key, &key_len, &error);
	if (r < 0) {
		policy_set_free(set);
		return mtdctl_fail("cannot read the client key: %s", error ? error : strerror(-r));
	}
	c = (struct schedule_client){.key = key,
				     .key_len = key_len,
				     .service = p->name,
				     .client = client,
				     .host_id = host_id,
				     .first = p->public_ports.first,
				     .last = p->public_ports.last};
	interval_sec = p->interval_usec / USEC_PER_SEC;
	epoch = at_usec / USEC_PER_SEC / interval_sec;
	next_usec = (epoch + 1) * interval_sec * USEC_PER_SEC;
	r = schedule_client_port(&c, epoch, NULL, NULL, &door);
	if (r >= 0)
		r = schedule_client_knock_port(&c, epoch, &knock);
	explicit_bzero(key, key_len);
	free(key);
	policy_set_free(set);
	if (r < 0)
		return mtdctl_fail("port: cannot compute the client's schedule: %s", strerror(-r));
	if (ctl->json) {
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:I}", "service", service, "client",
			      client, "host_id", host_id, "epoch", (json_int_t)epoch, "door", door,
			      "knock_port", knock, "next_boundary_usec", (json_int_t)next_usec);
		char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (text)
			puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	printf("%u\n", door);
	fprintf(stderr, "%s: client %s on %s, epoch %llu, knock port %u\n", service, client,
		host_id, (unsigned long long)epoch, knock);
	return 0;
}

int mtdctl_port(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *client = NULL, *client_key = NULL, *host_id = NULL;
	const char *service = NULL, *policy_path = NULL;
	uint64_t at_usec = now(CLOCK_REALTIME), skew_usec = 0;
	unsigned n_candidates = 1;
	struct neighbour neighbours[SKEW_NEIGHBOURS_MAX];
	size_t n_neighbours = 0;
	struct client_schedule s;
	struct schedule_params params;
	struct schedule_result result;
	uint16_t candidates[CANDIDATES_MAX];
	size_t range;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--policy") && i + 1 < argc)
			policy_path = argv[++i];
		else if (streq(argv[i], "--at") && i + 1 < argc) {
			if (mtdctl_parse_time(argv[++i], &at_usec) < 0)
				return mtdctl_usage_error(
				    "port: --at: '%s' is not a time (@SECONDS "
				    "or YYYY-MM-DDTHH:MM:SSZ)",
				    argv[i]);
		} else if (streq(argv[i], "--skew") && i + 1 < argc) {
			r = parse_skew("port", argv[++i], &skew_usec);
			if (r != 0)
				return r;
		} else if (streq(argv[i], "--candidates") && i + 1 < argc) {
			if (parse_count(argv[++i], CANDIDATES_MAX, &n_candidates) < 0)
				return mtdctl_usage_error(
				    "port: --candidates: '%s' is not a number "
				    "in 1..%d",
				    argv[i], CANDIDATES_MAX);
		} else if (streq(argv[i], "--client") && i + 1 < argc)
			client = argv[++i];
		else if (streq(argv[i], "--client-key") && i + 1 < argc)
			client_key = argv[++i];
		else if (streq(argv[i], "--host-id") && i + 1 < argc)
			host_id = argv[++i];
		else if (argv[i][0] != '-' && !service)
			service = argv[i];
		else
			return mtdctl_usage_error("port: unexpected argument '%s'", argv[i]);
	}
	if (!service || !policy_path)
		return mtdctl_usage_error("port: expected SERVICE --policy FILE");
	if (client || client_key || host_id) {
		if (!client || !client_key || !host_id)
			return mtdctl_usage_error(
			    "port: --client, --client-key and --host-id go together");
		if (skew_usec || n_candidates > 1)
			return mtdctl_usage_error(
			    "port: --client does not combine with --skew or --candidates");
		return port_client(ctl, service, policy_path, client, client_key, host_id, at_usec);
	}
	if (skew_usec && n_candidates > 1)
		return mtdctl_usage_error("port: --skew and --candidates do not combine");

	r = client_schedule_load(service, policy_path, &s);
	if (r != 0)
		return r;
	params = schedule_params_of(&s);
	range = (size_t)params.last - params.first + 1;
	if (n_candidates > range)
		n_candidates = (unsigned)range;
	r = schedule_compute(&params, at_usec, &result);
	if (r >= 0)
		r = schedule_candidates(s.key, s.key_len, s.policy->name, result.epoch,
					params.first, params.last, candidates, n_candidates);
	if (r >= 0 && skew_usec)
		r = skew_neighbours(&params, &result, at_usec, skew_usec, neighbours,
				    &n_neighbours);
	client_schedule_done(&s);
	if (r == -E2BIG)
		return mtdctl_usage_error("port: --skew: now±skew crosses more than %d boundaries "
					  "of this service",
					  SKEW_NEIGHBOURS_MAX);
	if (r < 0)
		return mtdctl_fail("port: cannot compute the schedule: %s", strerror(-r));
	if (skew_usec)
		return print_port_with_skew(ctl, service, &result, skew_usec, neighbours,
					    n_neighbours);

	if (ctl->json) {
		json_t *list = json_array();
		json_t *o;
		char *text;

		for (unsigned i = 0; i < n_candidates; i++)
			json_array_append_new(list, json_integer(candidates[i]));
		o = json_pack("{s:s, s:I, s:i, s:i, s:o, s:I, s:I}", "service", service, "epoch",
			      (json_int_t)result.epoch, "port", result.port, "grace_port",
			      result.grace_port, "candidates", list, "boundary_usec",
			      (json_int_t)result.boundary_usec, "next_boundary_usec",
			      (json_int_t)result.next_boundary_usec);
		text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (text)
			puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	if (n_candidates == 1) {
		char until[64];

		mtdctl_format_utc(result.next_boundary_usec, until, sizeof(until));
		printf("%u\n", result.port);
		fprintf(stderr, "%s: epoch %llu, until %s%s\n", service,
			(unsigned long long)result.epoch, until,
			result.grace_port ? " (previous port still in grace)" : "");
		return 0;
	}
	for (unsigned i = 0; i < n_candidates; i++)
		printf("%u\n", candidates[i]);
	return 0;
}

/* Non-blocking connect bounded by a timeout; returns a connected fd. */
static int connect_with_timeout(const struct addrinfo *ai, uint16_t port, int *ret_fd)
{
	struct sockaddr_storage addr;
	_cleanup_close_ int fd = -1;
	struct pollfd pfd;
	int err = 0;
	socklen_t len = sizeof(err);

	memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
	if (addr.ss_family == AF_INET)
		((struct sockaddr_in *)&addr)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		return -errno;
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) <= 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	if (fcntl(fd, F_SETFL, 0) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* stdio <-> socket until both directions are done. */
static int proxy(int sock)
{
	struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				{.fd = sock, .events = POLLIN}};
	char buffer[65536];
	bool stdin_open = true;

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (stdin_open && fds[0].revents) {
			ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
			if (n <= 0) {
				stdin_open = false;
				fds[0].fd = -1;
				shutdown(sock, SHUT_WR);
			} else if (write_all(sock, buffer, (size_t)n) < 0)
				return -EPIPE;
		}
		if (fds[1].revents) {
			ssize_t n = read(sock, buffer, sizeof(buffer));
			if (n < 0)
				return errno == ECONNRESET ? 0 : -errno;
			if (n == 0)
				return 0;
			if (write_all(STDOUT_FILENO, buffer, (size_t)n) < 0)
				return -EPIPE;
		}
	}
}

/* Appends port unless already listed; returns the new count. */
static size_t add_port(uint16_t *ports, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port)
			return n;
	ports[n] = port;
	return n + 1;
}

int mtdctl_connect(const struct mtdctl *ctl, int argc, char **argv)
{
	const char *service = NULL, *policy_path = NULL, *host = NULL;
	struct client_schedule s;
	struct schedule_params params;
	struct schedule_result result;
	uint16_t order[SCHEDULE_CLIENT_CANDIDATES + 2 + SKEW_NEIGHBOURS_MAX];
	uint16_t window[SCHEDULE_CLIENT_CANDIDATES];
	struct neighbour neighbours[SKEW_NEIGHBOURS_MAX];
	size_t n_order = 0, n_candidates, n_neighbours = 0;
	uint64_t skew_usec = 0, at_usec = now(CLOCK_REALTIME);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	_cleanup_close_ int sock = -1;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--policy") && i + 1 < argc)
			policy_path = argv[++i];
		else if (streq(argv[i], "--skew") && i + 1 < argc) {
			r = parse_skew("connect", argv[++i], &skew_usec);
			if (r != 0)
				return r;
		} else if (argv[i][0] != '-' && !service)
			service = argv[i];
		else if (argv[i][0] != '-' && !host)
			host = argv[i];
		else
			return mtdctl_usage_error("connect: unexpected argument '%s'", argv[i]);
	}
	if (!service || !policy_path || !host)
		return mtdctl_usage_error("connect: expected SERVICE --policy FILE HOST");

	r = client_schedule_load(service, policy_path, &s);
	if (r != 0)
		return r;
	params = schedule_params_of(&s);
	/* The client window: candidates the agent never uses as decoys, tried in
	 * order, so a port skipped because it was bound on the host is followed. */
	n_candidates = SCHEDULE_CLIENT_CANDIDATES;
	if (n_candidates > (size_t)params.last - params.first + 1)
		n_candidates = (size_t)params.last - params.first + 1;
	r = schedule_compute(&params, at_usec, &result);
	if (r >= 0)
		r = schedule_candidates(s.key, s.key_len, s.policy->name, result.epoch,
					params.first, params.last, window, n_candidates);
	if (r >= 0 && skew_usec)
		r = skew_neighbours(&params, &result, at_usec, skew_usec, neighbours,
				    &n_neighbours);
	client_schedule_done(&s);
	if (r == -E2BIG)
		return mtdctl_usage_error("connect: --skew: now±skew crosses more than %d "
					  "boundaries of this service",
					  SKEW_NEIGHBOURS_MAX);
	if (r < 0)
		return mtdctl_fail("connect: cannot compute the schedule: %s", strerror(-r));
	/* Now's port first; with --skew, the ports of the epochs a clock off by
	 * up to the skew lands in come next (nearest boundary first), before the
	 * rest of the window, whose unused ports stay silent until the timeout. */
	order[n_order++] = window[0];
	for (size_t i = 0; i < n_neighbours; i++)
		n_order = add_port(order, n_order, neighbours[i].port);
	for (size_t i = 1; i < n_candidates; i++)
		n_order = add_port(order, n_order, window[i]);
	/* A clock a little off the agent's lands on the neighbouring epoch. */
	if (result.prev_port)
		n_order = add_port(order, n_order, result.prev_port);
	n_order = add_port(order, n_order, result.next_port);

	r = getaddrinfo(host, NULL, &hints, &ai);
	if (r != 0)
		return mtdctl_fail("connect: %s: %s", host, gai_strerror(r));
	/* Try each port once on every address; refused or silent moves on. A
	 * silent one may have been caught mid-switch (its conntrack entry pinned
	 * to an instance that was just cut off): one more pass, with new source
	 * ports, gets fresh translations. */
	r = -ECONNREFUSED;
	for (int pass = 0; pass < 2 && sock < 0; pass++) {
		bool silent = false;

		for (size_t i = 0; i < n_order && sock < 0; i++)
			for (struct addrinfo *a = ai; a && sock < 0; a = a->ai_next) {
				r = connect_with_timeout(a, order[i], &sock);
				silent |= r == -ETIMEDOUT;
			}
		if (!silent)
			break;
	}
	freeaddrinfo(ai);
	if (sock < 0)
		return mtdctl_fail("connect: %s service %s: no candidate port answered (%s)", host,
				   service, strerror(-r));
	r = proxy(sock);
	if (r < 0)
		return mtdctl_fail("connect: %s", strerror(-r));
	return 0;
}
