/* SPDX-License-Identifier: MIT */
/* NFLOG listener for decoy hits (see rotator.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include "macro.h"
#include "rotator.h"
#include "rotator_internal.h"

#define COPY_RANGE 128 /* enough for the IP and transport headers */
/* knocks: an IPv6 header, a UDP header and the payload kept */
#define COPY_RANGE_PAYLOAD (40 + 8 + ROTATOR_KNOCK_PAYLOAD_MAX)

struct rotator_nflog {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	uint16_t group;
	/* netlink messages are read in place: aligned like their headers */
	char buf[16384] __attribute__((aligned(__alignof__(struct nlmsghdr))));
};

static struct nlmsghdr *config_msg(char *buf, uint16_t group, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(group);
	return nlh;
}

static int request(struct rotator_nflog *l, struct nlmsghdr *nlh)
{
	uint32_t seq = nlh->nlmsg_seq;

	if (mnl_socket_sendto(l->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(l->nl, l->buf, sizeof(l->buf));
		int r;

		if (n < 0) {
			struct pollfd pfd = {.fd = mnl_socket_get_fd(l->nl), .events = POLLIN};

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = poll(&pfd, 1, 5000);
			if (r == 0)
				return -ETIMEDOUT;
			continue;
		}
		r = mnl_cb_run(l->buf, rotator_nlmsg_whole(l->buf, (size_t)n), seq, l->portid, NULL,
			       NULL);
		if (r < 0)
			return errno > 0 ? -errno : -EIO;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

/* qthreshold: packets the kernel gathers before it sends them (0: its
 * default, 100, or a second) */
static int nflog_open(uint16_t group, uint32_t copy_range, uint32_t qthreshold,
		      struct rotator_nflog **ret)
{
	struct rotator_nflog *l;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
	struct nfulnl_msg_config_mode mode = {.copy_range = htonl(copy_range),
					      .copy_mode = NFULNL_COPY_PACKET};
	struct nlmsghdr *nlh;
	int r;

	/* No uninitialised attribute padding may reach the kernel. */
	memset(buf, 0, sizeof(buf));
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->group = group;
	l->seq = (uint32_t)time(NULL);
	l->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!l->nl) {
		r = -errno;
		free(l);
		return r;
	}
	if (mnl_socket_bind(l->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		rotator_nflog_free(l);
		return r;
	}
	l->portid = mnl_socket_get_portid(l->nl);

	nlh = config_msg(buf, group, ++l->seq);
	mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof(cmd), &cmd);
	r = request(l, nlh);
	if (r >= 0) {
		nlh = config_msg(buf, group, ++l->seq);
		mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof(mode), &mode);
		r = request(l, nlh);
	}
	if (r >= 0 && qthreshold) {
		nlh = config_msg(buf, group, ++l->seq);
		mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(qthreshold));
		r = request(l, nlh);
	}
	if (r < 0) {
		rotator_nflog_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

int rotator_nflog_open(uint16_t group, struct rotator_nflog **ret)
{
	return nflog_open(group, COPY_RANGE, 0, ret);
}

int rotator_nflog_open_payload(uint16_t group, struct rotator_nflog **ret)
{
	/* a knock waits for nothing: sent on at once, not gathered for a second */
	return nflog_open(group, COPY_RANGE_PAYLOAD, 1, ret);
}

void rotator_nflog_free(struct rotator_nflog *l)
{
	if (!l)
		return;
	if (l->nl)
		mnl_socket_close(l->nl); /* closing unbinds the group */
	free(l);
}

int rotator_nflog_fd(const struct rotator_nflog *l)
{
	return mnl_socket_get_fd(l->nl);
}

int rotator_nflog_wait(struct rotator_nflog *l, int timeout_ms)
{
	struct pollfd pfd = {.fd = mnl_socket_get_fd(l->nl), .events = POLLIN};
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r > 0;
}

/* IPv4 or IPv6 header (no IPv6 extension headers) and the transport
 * header's ports when it has them. */
static int parse_packet(const uint8_t *p, size_t len, struct rotator_egress_drop *d, size_t *ret_l4)
{
	size_t l4;

	memset(d, 0, sizeof(*d));
	if (len < 1)
		return -EBADMSG;
	if (p[0] >> 4 == 4) {
		if (len < 20)
			return -EBADMSG;
		l4 = (size_t)(p[0] & 0xf) * 4;
		d->proto = p[9];
		d->source.family = d->destination.family = AF_INET;
		memcpy(&d->source.in, p + 12, 4);
		memcpy(&d->destination.in, p + 16, 4);
		if (l4 < 20)
			return -EBADMSG;
	} else if (p[0] >> 4 == 6) {
		if (len < 40)
			return -EBADMSG;
		l4 = 40;
		d->proto = p[6];
		d->source.family = d->destination.family = AF_INET6;
		memcpy(&d->source.in6, p + 8, 16);
		memcpy(&d->destination.in6, p + 24, 16);
	} else
		return -EBADMSG;
	if ((d->proto == IPPROTO_TCP || d->proto == IPPROTO_UDP || d->proto == IPPROTO_SCTP ||
	     d->proto == IPPROTO_UDPLITE) &&
	    len >= l4 + 4)
		d->port = (uint16_t)(p[l4 + 2] << 8 | p[l4 + 3]);
	*ret_l4 = l4;
	return 0;
}

/* A knock's UDP payload (as much as was copied), or a connection's source
 * and door. */
static void put_knock(struct rotator_nflog_batch *ctx, const char *prefix, const uint8_t *p,
		      size_t len, size_t l4, const struct rotator_egress_drop *d)
{
	struct rotator_knock *k = &ctx->knocks[ctx->n];
	size_t udp_len, copied;

	if (strcmp(prefix, RS_CONNECT_LOG_PREFIX) == 0) {
		if (d->proto != IPPROTO_TCP && d->proto != IPPROTO_UDP)
			return;
		*k = (struct rotator_knock){.kind = ROTATOR_KNOCK_CONNECTION,
					    .source = d->source,
					    .proto = d->proto,
					    .port = d->port};
		ctx->n++;
		return;
	}
	if (strcmp(prefix, RS_KNOCK_LOG_PREFIX) != 0 || d->proto != IPPROTO_UDP || len < l4 + 8)
		return;
	udp_len = (size_t)(p[l4 + 4] << 8 | p[l4 + 5]);
	if (udp_len < 8)
		return;
	copied = len - l4 - 8;
	if (copied > udp_len - 8)
		copied = udp_len - 8; /* link-layer padding is no payload */
	k->kind = ROTATOR_KNOCK_DATAGRAM;
	k->source = d->source;
	k->proto = IPPROTO_UDP;
	k->port = d->port;
	k->truncated = udp_len - 8 > copied || copied > ROTATOR_KNOCK_PAYLOAD_MAX;
	k->len =
	    (uint16_t)(copied > ROTATOR_KNOCK_PAYLOAD_MAX ? ROTATOR_KNOCK_PAYLOAD_MAX : copied);
	memcpy(k->payload, p + l4 + 8, k->len);
	ctx->n++;
}

static int packet_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rotator_nflog_batch *ctx = data;
	const struct nlattr *attr;
	const char *prefix = NULL;
	const void *payload = NULL;
	size_t payload_len = 0;
	uint32_t indev = 0;
	struct rotator_egress_drop d;
	size_t l4 = 0;

	if ((nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET || ctx->n >= ctx->max)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg))
	{
		switch (mnl_attr_get_type(attr)) {
		case NFULA_PREFIX:
			if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
				prefix = mnl_attr_get_str(attr);
			break;
		case NFULA_PAYLOAD:
			payload = mnl_attr_get_payload(attr);
			payload_len = mnl_attr_get_payload_len(attr);
			break;
		case NFULA_IFINDEX_INDEV:
			if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
				indev = ntohl(mnl_attr_get_u32(attr));
			break;
		}
	}
	/* libmnl bounds attributes by the message's aligned length: the last
	 * message's may end up to 3 bytes past the datagram (fuzz_nflog) */
	if (payload && (const char *)payload + payload_len > ctx->end)
		payload_len = (const char *)payload < ctx->end
				  ? (size_t)(ctx->end - (const char *)payload)
				  : 0;
	if (!prefix || !payload || parse_packet(payload, payload_len, &d, &l4) < 0)
		return MNL_CB_OK;
	if (ctx->knocks) {
		put_knock(ctx, prefix, payload, payload_len, l4, &d);
		return MNL_CB_OK;
	}
	if (ctx->hits) {
		struct rotator_hit *h = &ctx->hits[ctx->n];

		if (strcmp(prefix, RS_LOG_PREFIX) != 0 ||
		    (d.proto != IPPROTO_TCP && d.proto != IPPROTO_UDP))
			return MNL_CB_OK;
		*h = (struct rotator_hit){.source = d.source, .proto = d.proto, .port = d.port};
		ctx->n++;
		return MNL_CB_OK;
	}
	if (strcmp(prefix, RS_EGRESS_LOG_PREFIX) != 0 && strcmp(prefix, RS_SPOOF_LOG_PREFIX) != 0)
		return MNL_CB_OK;
	d.ifindex = indev;
	d.spoofed = strcmp(prefix, RS_SPOOF_LOG_PREFIX) == 0;
	ctx->drops[ctx->n++] = d;
	return MNL_CB_OK;
}

int rotator_nflog_parse(const void *buf, size_t len, struct rotator_nflog_batch *batch)
{
	batch->end = (const char *)buf + len;
	/* portid 0 and seq 0: unsolicited messages from the kernel */
	if (mnl_cb_run(buf, rotator_nlmsg_whole(buf, len), 0, 0, packet_cb, batch) < 0)
		return errno > 0 ? -errno : -EBADMSG;
	return 0;
}

static int read_queued(struct rotator_nflog *l, struct rotator_nflog_batch *ctx)
{
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(l->nl, l->buf, sizeof(l->buf));
		int r;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		r = rotator_nflog_parse(l->buf, (size_t)len, ctx);
		if (r < 0)
			return r;
		if (ctx->n >= ctx->max)
			break;
	}
	return 0;
}

int rotator_nflog_read_egress(struct rotator_nflog *l, struct rotator_egress_drop *drops, size_t n,
			      size_t *ret_n)
{
	struct rotator_nflog_batch ctx = {.drops = drops, .max = n};
	int r = read_queued(l, &ctx);

	if (r < 0)
		return r;
	*ret_n = ctx.n;
	return 0;
}

int rotator_nflog_read(struct rotator_nflog *l, struct rotator_hit *hits, size_t n, size_t *ret_n)
{
	struct rotator_nflog_batch ctx = {.hits = hits, .max = n};
	int r = read_queued(l, &ctx);

	if (r < 0)
		return r;
	*ret_n = ctx.n;
	return 0;
}

int rotator_nflog_read_knocks(struct rotator_nflog *l, struct rotator_knock *knocks, size_t n,
			      size_t *ret_n)
{
	struct rotator_nflog_batch ctx = {.knocks = knocks, .max = n};
	int r = read_queued(l, &ctx);

	if (r < 0)
		return r;
	*ret_n = ctx.n;
	return 0;
}
