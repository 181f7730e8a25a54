/* SPDX-License-Identifier: MIT */
/*
 * Test driver for the rotator library (built by rotator_nft.sh, not by make).
 *
 *   rotator-driver [-g GROUP] [-H HONEYPOT_PORT] [-E EGRESS_GROUP]
 *                  apply [SERVICE...] [-n SERVICE...] [-u ADDR...] [-i INSTANCE...]
 *       SERVICE = name,proto,port,grace,backend_addr,backend_port,local,decoy:decoy:...
 *                 [,door:door:...[,gated[,knock:knock:...]]]
 *                 (client doors, "1" for a knock-gated service, its knock ports;
 *                 "-" for an empty list)
 *       INSTANCE = name,addr[+addr],proto,port[,EGRESS...] (-E enables the envelope)
 *       EGRESS = proto/port[-port][@cidr]
 *       -n SERVICE: a service of the plan's next (the idle bank)
 *       Several plans in one process (one rotator): separate them with "--";
 *       prints what each transaction sent ("step N: -DEL +ADD msgs M",
 *       " switched" when it only switched banks); a step of the single
 *       word "switch" calls rotator_switch() instead of rotator_apply().
 *   rotator-driver remove
 *   rotator-driver blocked          print the blocked sources: "blocked ADDR MS" each
 *   rotator-driver block ADDR MS [ADDR MS...]
 *                                   rotator_block(): one transaction, each source for
 *                                   MS milliseconds (0: until unblocked)
 *   rotator-driver ranges OP... [-- OP...]...
 *                                   rotator_block_ranges(), one call (transaction)
 *                                   per step (steps separated by --), in one
 *                                   process; OP: +ADDR/LEN:MS a ban, -ADDR/LEN an
 *                                   unban, !ADDR/LEN never blocked (this step),
 *                                   =COMMAND run by the shell now; a step ended by
 *                                   --! must be refused (prints "refused: ERROR");
 *                                   prints "ranges N segments M" at the end
 *   rotator-driver admit ADDR PROTO PORT MS [ADDR PROTO PORT MS...]
 *                                   rotator_admit(): one transaction
 *   rotator-driver unadmit ADDR PROTO PORT [ADDR PROTO PORT...]
 *                                   rotator_unadmit(): one transaction
 *   -K GROUP                        rotator_config.knock_nflog_group
 *   rotator-driver [-g GROUP] hits N TIMEOUT_MS     print N decoy hits from NFLOG
 *   rotator-driver -E GROUP egress N TIMEOUT_MS   print N egress drops from NFLOG
 *   rotator-driver echo PORT [GREETING]  TCP echo on [::]:PORT (greets first), held connections
 *   rotator-driver serve PORT       TCP backend on [::]:PORT (dual stack), answers "mtd-ok"
 *   rotator-driver honeypot PORT N [SECONDS]
 *                                   the decoy honeypot on PORT: exits after closing N
 *                                   connections (or after SECONDS, default 10),
 *                                   printing "accepted ADDR" for each peer it reports
 *   rotator-driver udp-listen PORT  UDP on [::]:PORT: prints "udp from ADDR LEN" for
 *                                   each datagram, until killed
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <net/if.h>
#include <unistd.h>

#include <poll.h>
#include <signal.h>

#include "rotator.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

static int parse_addr(const char *s, struct rotator_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->in) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a->in6) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* "a:b:c" (or "-") into a malloc'ed list (a test driver: never freed) */
static const uint16_t *parse_ports(char *spec, size_t *ret_n)
{
	uint16_t *ports = calloc(65536, sizeof(*ports));
	char *save = NULL;
	size_t n = 0;

	if (!ports)
		abort();
	if (strcmp(spec, "-") != 0)
		for (char *p = strtok_r(spec, ":", &save); p && n < 65535;
		     p = strtok_r(NULL, ":", &save))
			ports[n++] = (uint16_t)strtoul(p, NULL, 10);
	*ret_n = n;
	return ports;
}

static int parse_service(char *spec, struct rotator_service *s, uint16_t *decoys)
{
	char *f[11] = {};
	char *save = NULL;
	int n = 0;

	for (char *p = strtok_r(spec, ",", &save); p && n < 11; p = strtok_r(NULL, ",", &save))
		f[n++] = p;
	if (n < 7)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->name = f[0];
	s->proto = strcmp(f[1], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	s->port = (uint16_t)strtoul(f[2], NULL, 10);
	s->grace_port = (uint16_t)strtoul(f[3], NULL, 10);
	if (parse_addr(f[4], &s->backend) < 0)
		return -EINVAL;
	s->backend_port = (uint16_t)strtoul(f[5], NULL, 10);
	s->local_access = strcmp(f[6], "1") == 0;
	if (n >= 8 && strcmp(f[7], "-") != 0)
		for (char *p = strtok_r(f[7], ":", &save); p && s->n_decoys < ROTATOR_MAX_DECOYS;
		     p = strtok_r(NULL, ":", &save))
			decoys[s->n_decoys++] = (uint16_t)strtoul(p, NULL, 10);
	s->decoys = decoys;
	if (n >= 9)
		s->client_ports = parse_ports(f[8], &s->n_client_ports);
	if (n >= 10)
		s->gated = strcmp(f[9], "1") == 0;
	if (n >= 11)
		s->knock_ports = parse_ports(f[10], &s->n_knock_ports);
	return 0;
}

static int parse_egress(char *spec, struct rotator_egress *e)
{
	char *at = strchr(spec, '@'), *slash = strchr(spec, '/'), *dash;

	memset(e, 0, sizeof(*e));
	if (!slash)
		return -EINVAL;
	*slash = 0;
	e->proto = strcmp(spec, "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	if (at) {
		char *plen = strchr(at + 1, '/');

		*at = 0;
		if (plen)
			*plen++ = 0;
		if (parse_addr(at + 1, &e->destination) < 0)
			return -EINVAL;
		e->has_destination = true;
		e->prefix_len = plen				   ? (unsigned)atoi(plen)
				: e->destination.family == AF_INET ? 32
								   : 128;
	}
	dash = strchr(slash + 1, '-');
	e->port_first = (uint16_t)atoi(slash + 1);
	e->port_last = dash ? (uint16_t)atoi(dash + 1) : e->port_first;
	return 0;
}

/* [cut:]name,addr[+addr],proto,port[,egress...]: arrays from the caller;
 * "cut:" marks it cut off (rotator_instance.cut) */
static int parse_instance(char *spec, struct rotator_instance *in, struct rotator_addr *addrs,
			  struct rotator_egress *egress)
{
	char *f[3 + ROTATOR_MAX_EGRESS + 1] = {}, *plus;
	int n = 0;

	for (char *p = strtok(spec, ","); p && n < (int)ELEMS(f); p = strtok(NULL, ","))
		f[n++] = p;
	if (n < 4)
		return -EINVAL;
	memset(in, 0, sizeof(*in));
	in->name = f[0];
	if (strncmp(f[0], "cut:", 4) == 0) {
		in->cut = true;
		in->name = f[0] + 4;
	}
	plus = strchr(f[1], '+');
	if (plus)
		*plus++ = 0;
	if (parse_addr(f[1], &addrs[0]) < 0 || (plus && parse_addr(plus, &addrs[1]) < 0))
		return -EINVAL;
	in->addresses = addrs;
	in->n_addresses = plus ? 2 : 1;
	in->proto = strcmp(f[2], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	in->port = (uint16_t)atoi(f[3]);
	for (int i = 4; i < n; i++)
		if (parse_egress(f[i], &egress[in->n_egress++]) < 0)
			return -EINVAL;
	in->egress = egress;
	return 0;
}

static int print_err(const char *what, int r, const struct step_error *err)
{
	fprintf(stderr, "%s: %s (object: %s; kernel: %s)\n", what, strerror(-r), err->step,
		err->detail);
	return 1;
}

static int serve(uint16_t port)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), zero = 0, one = 1;

	if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		perror("serve");
		return 1;
	}
	printf("serving\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			continue;
		if (write(c, "mtd-ok\n", 7) != 7)
			perror("write");
		close(c);
	}
}

/* UDP on [::]:PORT (dual stack): one line per datagram */
static int udp_listen(uint16_t port)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), zero = 0;

	if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("udp-listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		struct sockaddr_in6 from;
		socklen_t len = sizeof(from);
		char buf[2048], text[INET6_ADDRSTRLEN] = "?";
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);

		if (n < 0)
			continue;
		if (IN6_IS_ADDR_V4MAPPED(&from.sin6_addr))
			inet_ntop(AF_INET, &from.sin6_addr.s6_addr[12], text, sizeof(text));
		else
			inet_ntop(AF_INET6, &from.sin6_addr, text, sizeof(text));
		printf("udp from %s %zd\n", text, n);
		fflush(stdout);
	}
}

/* TCP echo on [::]:PORT, one child per connection (held connections) */
static int echo_serve(uint16_t port, const char *greeting)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), zero = 0, one = 1;

	if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		perror("echo");
		return 1;
	}
	signal(SIGCHLD, SIG_IGN);
	printf("serving\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		char buf[512];
		ssize_t n;

		if (c < 0)
			continue;
		if (fork() == 0) {
			if (greeting &&
			    (write(c, greeting, strlen(greeting)) < 0 || write(c, "\n", 1) < 0))
				_exit(1);
			while ((n = read(c, buf, sizeof(buf))) > 0)
				if (write(c, buf, (size_t)n) != n)
					break;
			_exit(0);
		}
		close(c);
	}
}

int main(int argc, char **argv)
{
	struct rotator_config cfg = {.nflog_group = 7};
	struct step_error err = {};
	struct rotator *rot = NULL;
	int opt, r;

	while ((opt = getopt(argc, argv, "+g:H:E:K:")) != -1) {
		if (opt == 'K')
			cfg.knock_nflog_group = (uint16_t)atoi(optarg);
		else if (opt == 'E') {
			cfg.instance_envelope = true;
			cfg.egress_nflog_group = (uint16_t)atoi(optarg);
		} else if (opt == 'g')
			cfg.nflog_group = (uint16_t)atoi(optarg);
		else if (opt == 'H')
			cfg.honeypot_port = (uint16_t)atoi(optarg);
		else
			return 2;
	}
	if (optind >= argc)
		return 2;

	if (strcmp(argv[optind], "echo") == 0 && optind + 1 < argc)
		return echo_serve((uint16_t)atoi(argv[optind + 1]),
				  optind + 2 < argc ? argv[optind + 2] : NULL);
	if (strcmp(argv[optind], "udp-listen") == 0 && optind + 1 < argc)
		return udp_listen((uint16_t)atoi(argv[optind + 1]));
	if (strcmp(argv[optind], "serve") == 0 && optind + 1 < argc)
		return serve((uint16_t)atoi(argv[optind + 1]));
	if (strcmp(argv[optind], "honeypot") == 0 && optind + 2 < argc) {
		struct rotator_honeypot *h = NULL;
		int want = atoi(argv[optind + 2]), got = 0;
		int rounds = 10 * (optind + 3 < argc ? atoi(argv[optind + 3]) : 10);

		r = rotator_honeypot_open((uint16_t)atoi(argv[optind + 1]), &h);
		if (r < 0) {
			fprintf(stderr, "honeypot: %s\n", strerror(-r));
			return 1;
		}
		printf("listening\n");
		fflush(stdout);
		for (int waited = 0; got < want && waited < rounds; waited++) {
			struct pollfd pfd = {.fd = rotator_honeypot_fd(h), .events = POLLIN};

			if (poll(&pfd, 1, 100) > 0) {
				struct rotator_honeypot_peer peers[16];
				size_t n_peers = 0;

				r = rotator_honeypot_accept_all(h, peers, ELEMS(peers), &n_peers);
				if (r < 0) {
					fprintf(stderr, "honeypot: %s\n", strerror(-r));
					break;
				}
				for (size_t i = 0; i < n_peers; i++) {
					char text[INET6_ADDRSTRLEN];

					inet_ntop(peers[i].source.family, &peers[i].source.in6,
						  text, sizeof(text));
					printf("accepted %s decoy %u\n", text,
					       (unsigned)peers[i].decoy_port);
				}
				fflush(stdout);
				got += r;
			}
		}
		printf("closed %d\n", got);
		rotator_honeypot_free(h);
		return got >= want ? 0 : 1;
	}
	if (strcmp(argv[optind], "egress") == 0) {
		struct rotator_nflog *log = NULL;
		int want = optind + 1 < argc ? atoi(argv[optind + 1]) : 1;
		int timeout = optind + 2 < argc ? atoi(argv[optind + 2]) : 5000;

		r = rotator_nflog_open(cfg.egress_nflog_group, &log);
		if (r < 0) {
			fprintf(stderr, "nflog: %s\n", strerror(-r));
			return 1;
		}
		printf("listening\n");
		fflush(stdout);
		for (int got = 0; got < want;) {
			struct rotator_egress_drop drops[16];
			size_t n = 0;

			r = rotator_nflog_wait(log, timeout);
			if (r > 0)
				r = rotator_nflog_read_egress(log, drops, 16, &n) < 0 ? -EIO : 1;
			if (r <= 0) {
				fprintf(stderr, "nflog: %s\n", r == 0 ? "timeout" : strerror(-r));
				rotator_nflog_free(log);
				return 1;
			}
			for (size_t i = 0; i < n; i++, got++) {
				char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
				char ifname[IF_NAMESIZE] = "?";

				inet_ntop(drops[i].source.family,
					  drops[i].source.family == AF_INET
					      ? (void *)&drops[i].source.in
					      : &drops[i].source.in6,
					  src, sizeof(src));
				inet_ntop(drops[i].destination.family,
					  drops[i].destination.family == AF_INET
					      ? (void *)&drops[i].destination.in
					      : &drops[i].destination.in6,
					  dst, sizeof(dst));
				if (drops[i].ifindex)
					if_indextoname(drops[i].ifindex, ifname);
				printf("drop %s %s %u %u on %s%s\n", src, dst, drops[i].proto,
				       drops[i].port, ifname, drops[i].spoofed ? " spoofed" : "");
			}
			fflush(stdout);
		}
		rotator_nflog_free(log);
		return 0;
	}
	if (strcmp(argv[optind], "hits") == 0) {
		struct rotator_nflog *log = NULL;
		int want = optind + 1 < argc ? atoi(argv[optind + 1]) : 1;
		int timeout = optind + 2 < argc ? atoi(argv[optind + 2]) : 5000;

		r = rotator_nflog_open(cfg.nflog_group, &log);
		if (r < 0) {
			fprintf(stderr, "nflog: %s\n", strerror(-r));
			return 1;
		}
		printf("listening\n");
		fflush(stdout);
		for (int got = 0; got < want;) {
			struct rotator_hit hits[16];
			size_t n = 0;
			char text[INET6_ADDRSTRLEN];

			r = rotator_nflog_wait(log, timeout);
			if (r <= 0) {
				fprintf(stderr, "nflog: %s\n", r == 0 ? "timeout" : strerror(-r));
				rotator_nflog_free(log);
				return 1;
			}
			r = rotator_nflog_read(log, hits, 16, &n);
			if (r < 0) {
				fprintf(stderr, "nflog read: %s\n", strerror(-r));
				rotator_nflog_free(log);
				return 1;
			}
			for (size_t i = 0; i < n; i++, got++) {
				inet_ntop(hits[i].source.family, &hits[i].source.in6, text,
					  sizeof(text));
				if (hits[i].source.family == AF_INET)
					inet_ntop(AF_INET, &hits[i].source.in, text, sizeof(text));
				printf("hit %s %s %u\n", text,
				       hits[i].proto == IPPROTO_UDP ? "udp" : "tcp", hits[i].port);
			}
			fflush(stdout);
		}
		rotator_nflog_free(log);
		return 0;
	}

	r = rotator_new(&cfg, &rot);
	if (r < 0) {
		fprintf(stderr, "rotator_new: %s\n", strerror(-r));
		return 1;
	}
	if (strcmp(argv[optind], "remove") == 0) {
		r = rotator_remove(rot, &err);
		rotator_free(rot);
		return r < 0 ? print_err("remove", r, &err) : 0;
	}
	if (strcmp(argv[optind], "blocked") == 0) {
		struct rotator_blocked *list = NULL;
		size_t n = 0;

		r = rotator_blocked_list(rot, &list, &n, &err);
		rotator_free(rot);
		if (r < 0)
			return print_err("blocked", r, &err);
		for (size_t i = 0; i < n; i++) {
			char text[INET6_ADDRSTRLEN];

			inet_ntop(list[i].source.family, &list[i].source.in6, text, sizeof(text));
			printf("blocked %s %llu\n", text,
			       (unsigned long long)list[i].expires_in_ms);
		}
		free(list);
		return 0;
	}
	if (strcmp(argv[optind], "block") == 0) {
		int n = (argc - optind - 1) / 2;
		struct rotator_blocked *list = calloc((size_t)n + 1, sizeof(*list));

		if (!list || n == 0 || (argc - optind - 1) % 2) {
			fprintf(stderr, "block: give ADDR MS pairs\n");
			return 2;
		}
		for (int i = 0; i < n; i++) {
			char *end = NULL;

			if (parse_addr(argv[optind + 1 + 2 * i], &list[i].source) < 0) {
				fprintf(stderr, "block: bad address %s\n",
					argv[optind + 1 + 2 * i]);
				return 2;
			}
			list[i].expires_in_ms = strtoull(argv[optind + 2 + 2 * i], &end, 10);
			if (!end || *end) {
				fprintf(stderr, "block: bad milliseconds %s\n",
					argv[optind + 2 + 2 * i]);
				return 2;
			}
		}
		r = rotator_block(rot, list, (size_t)n, &err);
		rotator_free(rot);
		free(list);
		if (r < 0)
			return print_err("block", r, &err);
		printf("block sent %d\n", n);
		return 0;
	}
	if (strcmp(argv[optind], "ranges") == 0) {
		int n_args = argc - optind - 1;
		struct rotator_range *ban = calloc((size_t)n_args + 1, sizeof(*ban));
		struct rotator_range *unban = calloc((size_t)n_args + 1, sizeof(*unban));
		struct rotator_range *never = calloc((size_t)n_args + 1, sizeof(*never));
		size_t nb = 0, nu = 0, nn = 0, n_ranges = 0, n_segments = 0;

		if (!ban || !unban || !never)
			return 2;
		for (int i = optind + 1; i <= argc; i++) {
			char buf[128], *slash, *colon;
			struct rotator_range x = {0};

			if (i == argc || strcmp(argv[i], "--") == 0 ||
			    strcmp(argv[i], "--!") == 0) {
				bool refuse = i < argc && strcmp(argv[i], "--!") == 0;

				r = rotator_block_ranges(rot, ban, nb, unban, nu, never, nn, &err);
				if (refuse && r >= 0) {
					fprintf(stderr, "ranges: a step was not refused\n");
					return 1;
				}
				if (refuse)
					printf("refused: %s: %s\n", err.step, err.detail);
				else if (r < 0)
					return print_err("ranges", r, &err);
				nb = nu = nn = 0;
				continue;
			}
			if (argv[i][0] == '=') {
				if (system(argv[i] + 1) != 0) {
					fprintf(stderr, "ranges: %s failed\n", argv[i] + 1);
					return 2;
				}
				continue;
			}
			snprintf(buf, sizeof(buf), "%s", argv[i] + 1);
			colon = strchr(buf, ':');
			if (argv[i][0] == '+' && (colon = strrchr(buf, ':')))
				*colon = '\0';
			slash = strchr(buf, '/');
			if (!slash || (argv[i][0] == '+' && !colon)) {
				fprintf(stderr, "ranges: bad operation %s\n", argv[i]);
				return 2;
			}
			*slash = '\0';
			if (parse_addr(buf, &x.addr) < 0) {
				fprintf(stderr, "ranges: bad address in %s\n", argv[i]);
				return 2;
			}
			x.prefix_len = (unsigned)atoi(slash + 1);
			if (argv[i][0] == '+') {
				x.expires_in_ms = strtoull(colon + 1, NULL, 10);
				ban[nb++] = x;
			} else if (argv[i][0] == '-')
				unban[nu++] = x;
			else if (argv[i][0] == '!')
				never[nn++] = x;
			else {
				fprintf(stderr, "ranges: bad operation %s\n", argv[i]);
				return 2;
			}
		}
		rotator_ranges_count(rot, &n_ranges, &n_segments);
		rotator_free(rot);
		printf("ranges %zu segments %zu\n", n_ranges, n_segments);
		return 0;
	}
	if (strcmp(argv[optind], "admit") == 0 || strcmp(argv[optind], "unadmit") == 0) {
		bool admit = strcmp(argv[optind], "admit") == 0;
		int per = admit ? 4 : 3, n = (argc - optind - 1) / per;
		struct rotator_admission *list = calloc((size_t)n + 1, sizeof(*list));

		if (!list || n == 0 || (argc - optind - 1) % per) {
			fprintf(stderr, "%s: give ADDR PROTO PORT%s groups\n", argv[optind],
				admit ? " MS" : "");
			return 2;
		}
		for (int i = 0; i < n; i++) {
			char **a = &argv[optind + 1 + per * i];

			if (parse_addr(a[0], &list[i].source) < 0) {
				fprintf(stderr, "bad address %s\n", a[0]);
				return 2;
			}
			list[i].proto = strcmp(a[1], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
			list[i].port = (uint16_t)strtoul(a[2], NULL, 10);
			if (admit)
				list[i].expires_in_ms = strtoull(a[3], NULL, 10);
		}
		r = admit ? rotator_admit(rot, list, (size_t)n, &err)
			  : rotator_unadmit(rot, list, (size_t)n, &err);
		rotator_free(rot);
		free(list);
		if (r < 0)
			return print_err(admit ? "admit" : "unadmit", r, &err);
		printf("%s sent %d\n", admit ? "admit" : "unadmit", n);
		return 0;
	}
	if (strcmp(argv[optind], "apply") == 0) {
		int n = argc - optind - 1;
		struct rotator_service *svcs = calloc((size_t)n + 1, sizeof(*svcs));
		uint16_t(*decoys)[ROTATOR_MAX_DECOYS] = calloc((size_t)n + 1, sizeof(*decoys));
		struct rotator_addr *unblock = calloc((size_t)n + 1, sizeof(*unblock));
		struct rotator_instance *insts = calloc((size_t)n + 1, sizeof(*insts));
		struct rotator_addr(*iaddrs)[2] = calloc((size_t)n + 1, sizeof(*iaddrs));
		struct rotator_egress(*iegress)[ROTATOR_MAX_EGRESS] =
		    calloc((size_t)n + 1, sizeof(*iegress));
		struct rotator_service *next = calloc((size_t)n + 1, sizeof(*next));
		uint16_t(*next_decoys)[ROTATOR_MAX_DECOYS] =
		    calloc((size_t)n + 1, sizeof(*next_decoys));
		struct rotator_plan plan = {
		    .services = svcs, .unblock = unblock, .instances = insts, .next = next};

		int step = 0;
		bool switch_only = false;

		for (int i = optind + 1; i <= argc; i++) {
			if (i == argc || strcmp(argv[i], "--") == 0) {
				struct rotator_stats st;

				struct timespec t0, t1;

				clock_gettime(CLOCK_MONOTONIC, &t0);
				r = switch_only ? rotator_switch(rot, &err)
						: rotator_apply(rot, &plan, &err);
				clock_gettime(CLOCK_MONOTONIC, &t1);
				switch_only = false;
				if (r < 0) {
					rotator_free(rot);
					return print_err("apply", r, &err);
				}
				rotator_last_stats(rot, &st);
				printf("step %d: -%zu +%zu msgs %zu%s%s", ++step,
				       st.elements_deleted, st.elements_added, st.messages,
				       st.full ? " full" : "", st.switched ? " switched" : "");
				if (getenv("MTD_DRIVER_TIME"))
					printf(" %.3f ms",
					       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
						   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
				printf("\n");
				plan.n_services = plan.n_unblock = plan.n_instances = plan.n_next =
				    0;
				continue;
			}
			if (strcmp(argv[i], "switch") == 0) {
				switch_only = true; /* this step: rotator_switch() */
				continue;
			}
			if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
				if (parse_service(argv[++i], &next[plan.n_next],
						  next_decoys[plan.n_next]) < 0) {
					fprintf(stderr, "bad service spec %s\n", argv[i]);
					return 2;
				}
				plan.n_next++;
				continue;
			}
			if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
				size_t k = plan.n_instances++;

				if (parse_instance(argv[++i], &insts[k], iaddrs[k], iegress[k]) <
				    0) {
					fprintf(stderr, "bad instance spec\n");
					return 2;
				}
				continue;
			}
			if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
				if (parse_addr(argv[++i], &unblock[plan.n_unblock++]) < 0)
					return 2;
				continue;
			}
			if (parse_service(argv[i], &svcs[plan.n_services],
					  decoys[plan.n_services]) < 0) {
				fprintf(stderr, "bad service spec %s\n", argv[i]);
				return 2;
			}
			plan.n_services++;
		}
		printf("applied persist=%d adopted=%d\n",
		       !!(rotator_flags(rot) & ROTATOR_F_PERSIST),
		       !!(rotator_flags(rot) & ROTATOR_F_ADOPTED));
		rotator_free(rot);
		free(svcs);
		free(decoys);
		free(next);
		free(next_decoys);
		free(unblock);
		free(insts);
		free(iaddrs);
		free(iegress);
		return 0;
	}
	rotator_free(rot);
	return 2;
}
