/* SPDX-License-Identifier: MIT */
/*
 * mtd-client forward: a local TCP forwarder. Each connection accepted on the
 * listening address is relayed to the service's door of the moment (knocking
 * first when the profile says so); a relayed connection carries on across
 * boundaries (the agent keeps established flows). One thread, one epoll loop:
 * the listener, a signalfd (SIGTERM, SIGINT: a clean stop), and two sockets
 * per connection, at most max_connections of them (the listener rests while
 * they are all taken). Knocks: one per epoch and host, sent with the first
 * connection of the epoch, and again just after each boundary while
 * connections are open or were made in the epoch before.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "client.h"
#include "clock.h"
#include "macro.h"

#define BUFFER_SIZE 65536
#define CONNECT_TIMEOUT_USEC (3 * USEC_PER_SEC)
/* The knock for a new epoch goes this long after its boundary, so that an
 * agent whose clock is a little behind has crossed it too. */
#define KNOCK_AFTER_BOUNDARY_USEC (100 * USEC_PER_MSEC)
#define LOOP_MAX_WAIT_MS 1000
#define EVENTS_MAX 64
#define TAG_LISTENER UINT64_C(0)
#define TAG_SIGNAL UINT64_MAX

enum conn_state {
	CONN_FREE,
	CONN_KNOCK_WAIT, /* a knock went out: connect at deadline */
	CONN_CONNECTING, /* connect() to order[next - 1] in progress until deadline */
	CONN_RELAY,
};

/* Bytes read from one side, not yet written to the other. */
struct half {
	uint8_t buffer[BUFFER_SIZE];
	size_t off, len;
	bool eof;  /* the reading side is done */
	bool shut; /* the writing side was shut (or is gone) */
	uint64_t bytes;
};

struct conn {
	enum conn_state state;
	unsigned id;
	int local, remote;
	uint32_t local_events, remote_events; /* registered (0: not in the epoll set) */
	size_t host;			      /* index of the host tried */
	size_t hosts_tried;
	int pass;
	uint64_t epoch;
	uint16_t order[CLIENT_MAX_ORDER];
	size_t n_order, next;
	uint16_t port;
	int last_error;
	uint64_t deadline; /* CLOCK_MONOTONIC usec, 0: none */
	struct half up;	   /* local -> remote */
	struct half down;  /* remote -> local */
};

struct knock_state {
	bool sent;
	uint64_t epoch;
	uint64_t at; /* CLOCK_MONOTONIC usec */
};

struct forwarder {
	const struct profile *p;
	size_t host_first, n_hosts; /* the hosts to try: [first, first + n) */
	size_t preferred;	    /* the host that answered last */
	int epfd, listen_fd, signal_fd;
	bool listening;
	struct conn *conns;
	size_t max_conns, n_open;
	unsigned next_id;
	struct knock_state knocks[PROFILE_MAX_HOSTS];
	uint64_t boundary_usec; /* CLOCK_REALTIME: the next boundary the loop watches */
	bool busy_epoch;	/* a connection was open or accepted in this epoch */
	bool stop;
};

static uint64_t conn_tag(const struct forwarder *f, const struct conn *c, bool remote)
{
	return ((uint64_t)(c - f->conns) + 1) << 1 | (remote ? 1 : 0);
}

/* Puts fd in the epoll set with events, takes it out for 0. */
static int watch(struct forwarder *f, int fd, uint32_t *registered, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	int op;

	if (events == *registered)
		return 0;
	if (events == 0)
		op = EPOLL_CTL_DEL;
	else
		op = *registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(f->epfd, op, fd, &ev) < 0)
		return -errno;
	*registered = events;
	return 0;
}

static void conn_close(struct forwarder *f, struct conn *c, const char *why)
{
	if (why)
		client_log("forward: connection %u: %s", c->id, why);
	else
		client_log("forward: connection %u closed (%llu bytes out, %llu in)", c->id,
			   (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes);
	if (c->local >= 0)
		close(c->local);
	if (c->remote >= 0)
		close(c->remote);
	memset(c, 0, offsetof(struct conn, up));
	c->state = CONN_FREE;
	c->local = c->remote = -1;
	f->n_open--;
}

/* When a knock for host in this epoch lets a connection of pass pass start
 * (monotonic usec), knocking now if none went out in this epoch, or for
 * every pass after the first. */
static int knock_ready_at(struct forwarder *f, size_t host, int pass, uint64_t *ret)
{
	static const unsigned settle_ms[CLIENT_PASSES] = CLIENT_SETTLE_MSEC;
	const struct profile_host *h = &f->p->hosts[host];
	struct knock_state *k = &f->knocks[host];
	uint64_t at = now(CLOCK_REALTIME), mono = now(CLOCK_MONOTONIC);
	struct client_epoch e;
	int r;

	r = client_epoch_at(f->p, h, at, &e);
	if (r < 0)
		return r;
	if (pass == 0 && k->sent && k->epoch == e.epoch) {
		*ret = k->at + settle_ms[0] * USEC_PER_MSEC;
		return 0;
	}
	r = client_knock(f->p, h, &e, at);
	if (r < 0) {
		client_log("forward: %s: cannot send the knock: %s", h->address, strerror(-r));
		return r;
	}
	*k = (struct knock_state){.sent = true, .epoch = e.epoch, .at = mono};
	client_log("forward: knocked on %s udp port %u (epoch %llu)", h->address, e.knock_port,
		   (unsigned long long)e.epoch);
	*ret = mono + settle_ms[pass] * USEC_PER_MSEC;
	return 0;
}

static void conn_try_next(struct forwarder *f, struct conn *c);

/* A pass over the order of the moment on c's host: knock first if needed. */
static void conn_begin_pass(struct forwarder *f, struct conn *c)
{
	uint64_t ready = 0, mono;
	int r;

	if (f->p->auth == PROFILE_AUTH_KNOCK) {
		r = knock_ready_at(f, c->host, c->pass, &ready);
		if (r < 0) {
			conn_close(f, c, "no knock, no door");
			return;
		}
	}
	mono = now(CLOCK_MONOTONIC);
	if (ready > mono) {
		c->state = CONN_KNOCK_WAIT;
		c->deadline = ready;
		return;
	}
	c->n_order = 0;
	c->next = 0;
	conn_try_next(f, c);
}

/* The order of c's pass is done without a door: the next pass, then the
 * next host, then give up. */
static void conn_pass_failed(struct forwarder *f, struct conn *c)
{
	char why[400];

	if (c->pass + 1 < CLIENT_PASSES) {
		c->pass++;
		conn_begin_pass(f, c);
		return;
	}
	if (++c->hosts_tried < f->n_hosts) {
		c->host = f->host_first + (c->host - f->host_first + 1) % f->n_hosts;
		c->pass = 0;
		conn_begin_pass(f, c);
		return;
	}
	snprintf(why, sizeof(why), "no door of %s answered (%s)", f->p->service,
		 strerror(c->last_error ? c->last_error : ECONNREFUSED));
	conn_close(f, c, why);
}

static socklen_t address_of(const struct sockaddr_storage *host, uint16_t port,
			    struct sockaddr_storage *ret)
{
	*ret = *host;
	if (ret->ss_family == AF_INET) {
		((struct sockaddr_in *)ret)->sin_port = htons(port);
		return sizeof(struct sockaddr_in);
	}
	((struct sockaddr_in6 *)ret)->sin6_port = htons(port);
	return sizeof(struct sockaddr_in6);
}

static void conn_connected(struct forwarder *f, struct conn *c)
{
	c->state = CONN_RELAY;
	c->deadline = 0;
	f->preferred = c->host;
	client_log("forward: connection %u: %s door %u (epoch %llu)", c->id,
		   f->p->hosts[c->host].address, c->port, (unsigned long long)c->epoch);
}

/* Starts connect() to the next port of the order (computing the order at the
 * start of a pass). */
static void conn_try_next(struct forwarder *f, struct conn *c)
{
	const struct profile_host *h = &f->p->hosts[c->host];
	struct sockaddr_storage host, to;
	const char *reason = NULL;
	int r;

	if (c->n_order == 0) {
		struct client_epoch e;

		r = client_epoch_at(f->p, h, now(CLOCK_REALTIME), &e);
		if (r < 0) {
			conn_close(f, c, "cannot compute the schedule");
			return;
		}
		c->epoch = e.epoch;
		c->n_order = client_door_order(&e, c->order);
		c->next = 0;
	}
	r = client_resolve(h, &host, &reason);
	if (r < 0) {
		client_log("forward: %s: %s", h->address, reason);
		c->last_error = EHOSTUNREACH;
		c->next = c->n_order;
	}
	while (c->next < c->n_order) {
		socklen_t len;

		c->port = c->order[c->next++];
		len = address_of(&host, c->port, &to);
		c->remote = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (c->remote < 0) {
			c->last_error = errno;
			break;
		}
		if (connect(c->remote, (struct sockaddr *)&to, len) == 0) {
			conn_connected(f, c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->state = CONN_CONNECTING;
			c->deadline = now(CLOCK_MONOTONIC) + CONNECT_TIMEOUT_USEC;
			return;
		}
		c->last_error = errno;
		close(c->remote);
		c->remote = -1;
	}
	c->state = CONN_KNOCK_WAIT; /* neither connecting nor relaying */
	conn_pass_failed(f, c);
}

static void conn_connect_done(struct forwarder *f, struct conn *c, int err)
{
	if (err == 0) {
		conn_connected(f, c);
		return;
	}
	c->last_error = err;
	/* the fd leaves the epoll set with its close */
	close(c->remote);
	c->remote = -1;
	c->remote_events = 0;
	conn_try_next(f, c);
}

/* Reads from fd into h if it is empty. false: the connection is broken. */
static bool half_read(struct half *h, int fd)
{
	ssize_t n;

	if (h->len > 0 || h->eof)
		return true;
	n = recv(fd, h->buffer, sizeof(h->buffer), 0);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		h->eof = true;
	h->off = 0;
	h->len = (size_t)n;
	return true;
}

static bool half_write(struct half *h, int fd)
{
	ssize_t n;

	if (h->len == 0 || h->shut)
		return true;
	n = send(fd, h->buffer + h->off, h->len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	h->off += (size_t)n;
	h->len -= (size_t)n;
	h->bytes += (uint64_t)n;
	return true;
}

/* After any event of c: half closes, the end, and what to wait for. */
static void conn_update(struct forwarder *f, struct conn *c)
{
	uint32_t local_ev = 0, remote_ev = 0;

	if (c->state == CONN_RELAY) {
		if (c->up.eof && c->up.len == 0 && !c->up.shut) {
			shutdown(c->remote, SHUT_WR);
			c->up.shut = true;
		}
		if (c->down.eof && c->down.len == 0 && !c->down.shut) {
			shutdown(c->local, SHUT_WR);
			c->down.shut = true;
		}
		if (c->up.shut && c->down.shut) {
			conn_close(f, c, NULL);
			return;
		}
		if (c->down.len == 0 && !c->down.eof)
			remote_ev |= EPOLLIN;
		if (c->up.len > 0)
			remote_ev |= EPOLLOUT;
		if (c->down.len > 0)
			local_ev |= EPOLLOUT;
	} else if (c->state == CONN_CONNECTING)
		remote_ev = EPOLLOUT;
	if (c->up.len == 0 && !c->up.eof)
		local_ev |= EPOLLIN;
	if (watch(f, c->local, &c->local_events, local_ev, conn_tag(f, c, false)) < 0 ||
	    (c->remote >= 0 &&
	     watch(f, c->remote, &c->remote_events, remote_ev, conn_tag(f, c, true)) < 0))
		conn_close(f, c, "cannot watch its sockets");
}

static void conn_event(struct forwarder *f, struct conn *c, bool remote, uint32_t events)
{
	bool ok = true;

	if (remote && c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->remote, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		conn_connect_done(f, c, err);
	} else if (remote && c->state == CONN_RELAY) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			ok = half_read(&c->down, c->remote);
		if (ok && events & (EPOLLOUT | EPOLLERR))
			ok = half_write(&c->up, c->remote);
	} else if (!remote) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			ok = half_read(&c->up, c->local);
		if (ok && c->state == CONN_RELAY && events & (EPOLLOUT | EPOLLERR))
			ok = half_write(&c->down, c->local);
	}
	if (c->state == CONN_FREE)
		return;
	if (!ok) {
		conn_close(f, c,
			   remote ? "the service's side broke off" : "the local side broke off");
		return;
	}
	conn_update(f, c);
}

static void accept_connections(struct forwarder *f)
{
	while (f->n_open < f->max_conns) {
		struct conn *c = NULL;
		int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				client_log("forward: accept: %s", strerror(errno));
			break;
		}
		for (size_t i = 0; i < f->max_conns && !c; i++)
			if (f->conns[i].state == CONN_FREE)
				c = &f->conns[i];
		memset(c, 0, offsetof(struct conn, up));
		c->up.off = c->up.len = c->down.off = c->down.len = 0;
		c->up.eof = c->up.shut = c->down.eof = c->down.shut = false;
		c->up.bytes = c->down.bytes = 0;
		c->id = ++f->next_id;
		c->local = fd;
		c->remote = -1;
		c->host = f->preferred;
		c->state = CONN_KNOCK_WAIT;
		f->n_open++;
		f->busy_epoch = true;
		conn_begin_pass(f, c);
		if (c->state != CONN_FREE)
			conn_update(f, c);
	}
	if (watch(f, f->listen_fd, &(uint32_t){f->listening ? EPOLLIN : 0},
		  f->n_open < f->max_conns ? EPOLLIN : 0, TAG_LISTENER) == 0)
		f->listening = f->n_open < f->max_conns;
}

/* Deadlines due: a knock has settled, a connect timed out. */
static void run_deadlines(struct forwarder *f)
{
	uint64_t mono = now(CLOCK_MONOTONIC);

	for (size_t i = 0; i < f->max_conns; i++) {
		struct conn *c = &f->conns[i];

		if (c->state == CONN_FREE || !c->deadline || c->deadline > mono)
			continue;
		c->deadline = 0;
		if (c->state == CONN_KNOCK_WAIT) {
			c->n_order = 0;
			c->next = 0;
			conn_try_next(f, c);
		} else if (c->state == CONN_CONNECTING)
			conn_connect_done(f, c, ETIMEDOUT);
		if (c->state != CONN_FREE)
			conn_update(f, c);
	}
}

/* Just after a boundary, a knock for the new epoch if the forwarder is in
 * use, so the next connection need not wait for it. */
static void run_boundary(struct forwarder *f)
{
	uint64_t at = now(CLOCK_REALTIME), ready;
	struct client_epoch e;

	if (f->boundary_usec && at < f->boundary_usec + KNOCK_AFTER_BOUNDARY_USEC)
		return;
	if (f->boundary_usec && f->p->auth == PROFILE_AUTH_KNOCK && (f->busy_epoch || f->n_open))
		knock_ready_at(f, f->preferred, 0, &ready);
	f->busy_epoch = f->n_open > 0;
	if (client_epoch_at(f->p, &f->p->hosts[f->preferred], at, &e) == 0)
		f->boundary_usec = e.end_usec;
}

static int next_wait_ms(const struct forwarder *f)
{
	uint64_t mono = now(CLOCK_MONOTONIC), at = now(CLOCK_REALTIME);
	uint64_t wait = (uint64_t)LOOP_MAX_WAIT_MS * USEC_PER_MSEC;
	uint64_t knock_at = f->boundary_usec + KNOCK_AFTER_BOUNDARY_USEC;

	if (knock_at > at && knock_at - at < wait)
		wait = knock_at - at;
	for (size_t i = 0; i < f->max_conns; i++) {
		const struct conn *c = &f->conns[i];

		if (c->state == CONN_FREE || !c->deadline)
			continue;
		if (c->deadline <= mono)
			return 0;
		if (c->deadline - mono < wait)
			wait = c->deadline - mono;
	}
	return (int)((wait + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* "127.0.0.1:PORT", "[::1]:PORT" or "PORT" (127.0.0.1). */
static int open_listener(const char *listen_on, int *ret_fd)
{
	char host[128] = "127.0.0.1", port[16];
	const char *colon = strrchr(listen_on, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE},
			*ai = NULL;
	_cleanup_close_ int fd = -1;
	int one = 1, r;

	if (colon) {
		size_t n = (size_t)(colon - listen_on);

		if (listen_on[0] == '[' && n >= 2 && listen_on[n - 1] == ']')
			snprintf(host, sizeof(host), "%.*s", (int)(n - 2), listen_on + 1);
		else
			snprintf(host, sizeof(host), "%.*s", (int)n, listen_on);
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else
		snprintf(port, sizeof(port), "%s", listen_on);
	if (!port[0] || strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int forwarder_setup(struct forwarder *f, const struct client_forward_options *o)
{
	sigset_t mask;
	int r;

	r = open_listener(o->listen, &f->listen_fd);
	if (r == -EINVAL) {
		client_log("forward: --listen %s: not ADDRESS:PORT (127.0.0.1:8080, [::1]:8080)",
			   o->listen);
		return 2;
	}
	if (r < 0) {
		client_log("forward: --listen %s: %s", o->listen, strerror(-r));
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	f->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (f->signal_fd < 0 || f->epfd < 0) {
		client_log("forward: %s", strerror(errno));
		return 1;
	}
	if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->signal_fd,
		      &(struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_SIGNAL}) < 0 ||
	    epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->listen_fd,
		      &(struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_LISTENER}) < 0) {
		client_log("forward: epoll: %s", strerror(errno));
		return 1;
	}
	f->listening = true;
	f->conns = calloc(f->max_conns, sizeof(*f->conns));
	if (!f->conns) {
		client_log("forward: out of memory");
		return 1;
	}
	for (size_t i = 0; i < f->max_conns; i++)
		f->conns[i].local = f->conns[i].remote = -1;
	return 0;
}

static void forwarder_done(struct forwarder *f)
{
	for (size_t i = 0; f->conns && i < f->max_conns; i++)
		if (f->conns[i].state != CONN_FREE)
			conn_close(f, &f->conns[i], "closed: the forwarder stops");
	free(f->conns);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->signal_fd >= 0)
		close(f->signal_fd);
	if (f->epfd >= 0)
		close(f->epfd);
}

static int forwarder_loop(struct forwarder *f)
{
	struct epoll_event events[EVENTS_MAX];

	while (!f->stop) {
		int n = epoll_wait(f->epfd, events, EVENTS_MAX, next_wait_ms(f));

		if (n < 0 && errno != EINTR) {
			client_log("forward: epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = events[i].data.u64;
			struct conn *c;

			if (tag == TAG_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(f->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					client_log("forward: %s: stopping",
						   strsignal((int)si.ssi_signo));
					f->stop = true;
				}
				continue;
			}
			if (tag == TAG_LISTENER) {
				accept_connections(f);
				continue;
			}
			c = &f->conns[(tag >> 1) - 1];
			if (c->state != CONN_FREE)
				conn_event(f, c, tag & 1, events[i].events);
		}
		run_deadlines(f);
		run_boundary(f);
		if (!f->listening && f->n_open < f->max_conns)
			accept_connections(f);
	}
	return 0;
}

int client_forward_command(const struct profile *p, const struct client_forward_options *o)
{
	struct forwarder f = {.p = p,
			      .n_hosts = p->n_hosts,
			      .epfd = -1,
			      .listen_fd = -1,
			      .signal_fd = -1,
			      .max_conns = o->max_connections};
	int r;

	if (p->protocol != PROFILE_PROTOCOL_TCP) {
		client_log("forward: service %s is %s; forward relays TCP only", p->service,
			   profile_protocol_name(p->protocol));
		return 1;
	}
	if (o->host) {
		const struct profile_host *h = profile_find_host(p, o->host);

		if (!h) {
			client_log("forward: no Host= %s in the profile", o->host);
			return 2;
		}
		f.host_first = (size_t)(h - p->hosts);
		f.n_hosts = 1;
	}
	f.preferred = f.host_first;
	r = forwarder_setup(&f, o);
	if (r == 0) {
		client_log("forward: listening on %s for %s (client %s, %zu host%s, auth %s)",
			   o->listen, p->service, p->client, f.n_hosts, f.n_hosts == 1 ? "" : "s",
			   profile_auth_name(p->auth));
		run_boundary(&f);
		r = forwarder_loop(&f);
	}
	forwarder_done(&f);
	return r;
}
