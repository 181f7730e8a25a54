/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora of the netlink and seccomp fuzz targets
 * (fuzz_nflog, fuzz_conntrack, fuzz_seccomp_notify, fuzz_sock_reset) into
 * DIR/<target>/:
 * messages laid out as the kernel sends them (nfnetlink_log's
 * __build_packet_message() attribute order, ctnetlink's
 * ctnetlink_fill_info() for a dump), built with libmnl, each behind the mode
 * bytes its target reads first. `make fuzz-seeds` runs it; the files are
 * committed, so this only needs running when a layout changes.
 * usage: gen_seeds DIR */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/inet_diag.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/sock_diag.h>

#define CT_SEQ 0x5eed /* fuzz_conntrack.c's FUZZ_SEQ and FUZZ_PORTID */
#define CT_PORTID 4242

static const char *out_dir;

static void write_seed(const char *target, const char *name, const void *mode, size_t mode_len,
		       const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	f = fopen(path, "we");
	if (!f || fwrite(mode, 1, mode_len, f) != mode_len || fwrite(buf, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* --- NFLOG ------------------------------------------------------------------ */

/* IPv4 + TCP SYN (or UDP) from src to dst:dport. */
static size_t ipv4_packet(uint8_t *p, uint8_t proto, const char *src, const char *dst,
			  uint16_t dport)
{
	size_t l4 = proto == IPPROTO_TCP ? 20 : proto == IPPROTO_UDP ? 8 : 8;
	size_t len = 20 + l4;

	memset(p, 0, len);
	p[0] = 0x45;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[6] = 0x40; /* DF */
	p[8] = 64;
	p[9] = proto;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	if (proto == IPPROTO_ICMP) {
		p[20] = 8; /* echo request */
		return len;
	}
	p[20] = 0xc3;
	p[21] = 0x50; /* source port 50000 */
	p[22] = (uint8_t)(dport >> 8);
	p[23] = (uint8_t)dport;
	if (proto == IPPROTO_TCP) {
		p[32] = 0x50;
		p[33] = 0x02; /* SYN */
		p[34] = 0xfa;
		p[35] = 0xf0;
	} else {
		p[24] = 0;
		p[25] = 8;
	}
	return len;
}

static size_t ipv6_packet(uint8_t *p, uint8_t proto, const char *src, const char *dst,
			  uint16_t dport)
{
	size_t l4 = proto == IPPROTO_TCP ? 20 : 8;
	size_t len = 40 + l4;

	memset(p, 0, len);
	p[0] = 0x60;
	p[4] = (uint8_t)(l4 >> 8);
	p[5] = (uint8_t)l4;
	p[6] = proto;
	p[7] = 64;
	inet_pton(AF_INET6, src, p + 8);
	inet_pton(AF_INET6, dst, p + 24);
	p[40] = 0xc3;
	p[41] = 0x50;
	p[42] = (uint8_t)(dport >> 8);
	p[43] = (uint8_t)dport;
	if (proto == IPPROTO_TCP) {
		p[52] = 0x50;
		p[53] = 0x02;
	} else
		p[45] = 8;
	return len;
}

/* One NFULNL_MSG_PACKET as nfnetlink_log builds it, appended at buf + off. */
static size_t nflog_packet(char *buf, size_t off, uint8_t family, uint16_t group,
			   const char *prefix, uint32_t indev, const uint8_t *pkt, size_t pkt_len)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nfulnl_msg_packet_hdr ph = {
	    .hw_protocol = htons(family == AF_INET ? 0x0800 : 0x86dd), .hook = 1};
	struct nfulnl_msg_packet_hw hw = {.hw_addrlen = htons(6), .hw_addr = {2, 0, 0, 0, 0, 1}};
	struct nfulnl_msg_packet_timestamp ts = {.sec = __builtin_bswap64(1764979200),
						 .usec = __builtin_bswap64(250000)};
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(group);
	mnl_attr_put(nlh, NFULA_PACKET_HDR, sizeof(ph), &ph);
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	if (indev)
		mnl_attr_put_u32(nlh, NFULA_IFINDEX_INDEV, htonl(indev));
	mnl_attr_put_u32(nlh, NFULA_MARK, htonl(0));
	mnl_attr_put_u16(nlh, NFULA_HWTYPE, htons(1));
	mnl_attr_put_u16(nlh, NFULA_HWLEN, htons(6));
	mnl_attr_put(nlh, NFULA_HWADDR, sizeof(hw), &hw);
	mnl_attr_put(nlh, NFULA_TIMESTAMP, sizeof(ts), &ts);
	mnl_attr_put(nlh, NFULA_PAYLOAD, pkt_len, pkt);
	return off + nlh->nlmsg_len;
}

static void nflog_seeds(void)
{
	static char buf[8192] __attribute__((aligned(4)));
	uint8_t pkt[128];
	uint8_t hits = 7 << 1, egress = 1 | 7 << 1, one = 0;
	size_t n, off;

	memset(buf, 0, sizeof(buf));
	n = ipv4_packet(pkt, IPPROTO_TCP, "198.51.100.7", "192.0.2.10", 31337);
	off = nflog_packet(buf, 0, AF_INET, 1, "mtd-decoy ", 2, pkt, n);
	write_seed("fuzz_nflog", "decoy-tcp4", &hits, 1, buf, off);

	memset(buf, 0, sizeof(buf));
	n = ipv6_packet(pkt, IPPROTO_UDP, "2001:db8::7", "2001:db8::10", 40001);
	off = nflog_packet(buf, 0, AF_INET6, 1, "mtd-decoy ", 2, pkt, n);
	write_seed("fuzz_nflog", "decoy-udp6", &hits, 1, buf, off);

	/* three hits in one datagram, one of them not a decoy's; capacity 1 */
	memset(buf, 0, sizeof(buf));
	n = ipv4_packet(pkt, IPPROTO_TCP, "198.51.100.7", "192.0.2.10", 31337);
	off = nflog_packet(buf, 0, AF_INET, 1, "mtd-decoy ", 2, pkt, n);
	n = ipv4_packet(pkt, IPPROTO_ICMP, "198.51.100.8", "192.0.2.10", 0);
	off = nflog_packet(buf, off, AF_INET, 1, "mtd-decoy ", 2, pkt, n);
	n = ipv6_packet(pkt, IPPROTO_TCP, "2001:db8::9", "2001:db8::10", 22);
	off = nflog_packet(buf, off, AF_INET6, 1, "other ", 2, pkt, n);
	write_seed("fuzz_nflog", "decoy-batch", &hits, 1, buf, off);
	write_seed("fuzz_nflog", "decoy-batch-full", &one, 1, buf, off);

	memset(buf, 0, sizeof(buf));
	n = ipv4_packet(pkt, IPPROTO_TCP, "10.77.0.2", "203.0.113.5", 443);
	off = nflog_packet(buf, 0, AF_INET, 2, "mtd-egress ", 14, pkt, n);
	n = ipv4_packet(pkt, IPPROTO_ICMP, "10.77.0.2", "203.0.113.5", 0);
	off = nflog_packet(buf, off, AF_INET, 2, "mtd-egress ", 14, pkt, n);
	write_seed("fuzz_nflog", "egress-tcp4-icmp", &egress, 1, buf, off);

	memset(buf, 0, sizeof(buf));
	n = ipv6_packet(pkt, IPPROTO_UDP, "2001:db8:77::9", "2001:db8::53", 53);
	off = nflog_packet(buf, 0, AF_INET6, 2, "mtd-spoof ", 15, pkt, n);
	write_seed("fuzz_nflog", "spoof-udp6", &egress, 1, buf, off);

	/* IPv4 with options (IHL 6): the ports sit 4 bytes further */
	memset(buf, 0, sizeof(buf));
	n = ipv4_packet(pkt, IPPROTO_UDP, "10.77.0.3", "198.51.100.1", 123);
	memmove(pkt + 24, pkt + 20, n - 20);
	memset(pkt + 20, 1, 4); /* NOPs */
	pkt[0] = 0x46;
	off = nflog_packet(buf, 0, AF_INET, 2, "mtd-egress ", 16, pkt, n + 4);
	write_seed("fuzz_nflog", "egress-ipopts", &egress, 1, buf, off);

	/* the overrun the kernel reports: NLMSG_ERROR -ENOBUFS */
	{
		struct nlmsghdr *nlh;
		struct nlmsgerr *err;

		memset(buf, 0, sizeof(buf));
		nlh = mnl_nlmsg_put_header(buf);
		nlh->nlmsg_type = NLMSG_ERROR;
		err = mnl_nlmsg_put_extra_header(nlh, sizeof(*err));
		err->error = -ENOBUFS;
		write_seed("fuzz_nflog", "enobufs", &hits, 1, buf, nlh->nlmsg_len);
	}
}

/* --- ctnetlink dump ----------------------------------------------------------- */

static void put_tuple(struct nlmsghdr *nlh, uint16_t type, int family, const char *src,
		      const char *dst, uint8_t proto, uint16_t sport, uint16_t dport)
{
	struct nlattr *tuple = mnl_attr_nest_start(nlh, type), *nest;
	uint8_t a[16];

	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	inet_pton(family, src, a);
	mnl_attr_put(nlh, family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC,
		     family == AF_INET ? 4 : 16, a);
	inet_pton(family, dst, a);
	mnl_attr_put(nlh, family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST,
		     family == AF_INET ? 4 : 16, a);
	mnl_attr_nest_end(nlh, nest);
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, proto);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
	mnl_attr_nest_end(nlh, nest);
	mnl_attr_put_u8(nlh, CTA_TUPLE_ZONE, 0);
	mnl_attr_nest_end(nlh, tuple);
}

/* One flow of a dump: src:sport -> public dst:dport, DNATed to backend. */
static size_t ct_flow(char *buf, size_t off, int family, const char *src, const char *dst,
		      const char *backend, uint16_t sport, uint16_t dport, uint16_t bport)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nfgenmsg *nfg;
	struct nlattr *nest;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = CT_SEQ;
	nlh->nlmsg_pid = CT_PORTID;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)family;
	nfg->version = NFNETLINK_V0;
	put_tuple(nlh, CTA_TUPLE_ORIG, family, src, dst, IPPROTO_TCP, sport, dport);
	put_tuple(nlh, CTA_TUPLE_REPLY, family, backend, src, IPPROTO_TCP, bport, sport);
	mnl_attr_put_u32(nlh, CTA_STATUS, htonl(0x1be)); /* confirmed, dst-nat, ... */
	mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(431999));
	nest = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
	{
		struct nlattr *tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);

		mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3); /* established */
		mnl_attr_nest_end(nlh, tcp);
	}
	mnl_attr_nest_end(nlh, nest);
	mnl_attr_put_u32(nlh, CTA_MARK, 0);
	mnl_attr_put_u32(nlh, CTA_USE, htonl(1));
	mnl_attr_put_u32(nlh, CTA_ID, htonl(0x8badf00d));
	return off + nlh->nlmsg_len;
}

static size_t ct_done(char *buf, size_t off)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	int *zero;

	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = CT_SEQ;
	nlh->nlmsg_pid = CT_PORTID;
	zero = mnl_nlmsg_put_extra_header(nlh, sizeof(*zero));
	*zero = 0;
	return off + nlh->nlmsg_len;
}

static void conntrack_seeds(void)
{
	static char buf[8192] __attribute__((aligned(4)));
	uint8_t mode4[5] = {7 << 1}, mode6[17] = {1 | 7 << 1}, full4[5] = {0};
	size_t off;

	inet_pton(AF_INET, "198.51.100.7", mode4 + 1);
	inet_pton(AF_INET, "198.51.100.7", full4 + 1);
	inet_pton(AF_INET6, "2001:db8::7", mode6 + 1);

	/* the source reached two instances (one twice), another source one */
	memset(buf, 0, sizeof(buf));
	off =
	    ct_flow(buf, 0, AF_INET, "198.51.100.7", "192.0.2.10", "10.77.0.2", 50000, 31337, 8080);
	off = ct_flow(buf, off, AF_INET, "198.51.100.7", "192.0.2.10", "10.77.0.2", 50001, 31337,
		      8080);
	off = ct_flow(buf, off, AF_INET, "198.51.100.7", "192.0.2.10", "10.77.0.6", 50002, 31338,
		      8080);
	off = ct_flow(buf, off, AF_INET, "203.0.113.9", "192.0.2.10", "10.77.0.2", 40000, 31337,
		      8080);
	write_seed("fuzz_conntrack", "dump4-partial", mode4, sizeof(mode4), buf, off);
	off = ct_done(buf, off);
	write_seed("fuzz_conntrack", "dump4-done", mode4, sizeof(mode4), buf, off);
	write_seed("fuzz_conntrack", "dump4-full", full4, sizeof(full4), buf, off);

	memset(buf, 0, sizeof(buf));
	off = ct_flow(buf, 0, AF_INET6, "2001:db8::7", "2001:db8::10", "fd00:77::2", 50000, 443,
		      8443);
	off = ct_done(buf, off);
	write_seed("fuzz_conntrack", "dump6-done", mode6, sizeof(mode6), buf, off);

	/* the kernel refusing the dump */
	{
		struct nlmsghdr *nlh;
		struct nlmsgerr *err;

		memset(buf, 0, sizeof(buf));
		nlh = mnl_nlmsg_put_header(buf);
		nlh->nlmsg_type = NLMSG_ERROR;
		nlh->nlmsg_seq = CT_SEQ;
		nlh->nlmsg_pid = CT_PORTID;
		err = mnl_nlmsg_put_extra_header(nlh, sizeof(*err));
		err->error = -EPERM;
		write_seed("fuzz_conntrack", "eperm", mode4, sizeof(mode4), buf, nlh->nlmsg_len);
	}
}

/* --- sock_diag (fuzz_sock_reset) ------------------------------------------------- */

#define SD_SEQ 0x5eed /* fuzz_sock_reset.c's FUZZ_SEQ */

/* one inet_diag_msg of a dump, as inet_sk_diag_fill() lays it out (no
 * extensions asked for) */
static size_t sd_socket(char *buf, size_t off, uint8_t family, const char *src, uint16_t sport,
			const char *dst, uint16_t dport, uint32_t cookie)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct inet_diag_msg *m;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = SD_SEQ;
	m = mnl_nlmsg_put_extra_header(nlh, sizeof(*m));
	m->idiag_family = family;
	m->idiag_state = 1; /* TCP_ESTABLISHED */
	m->id.idiag_sport = htons(sport);
	m->id.idiag_dport = htons(dport);
	inet_pton(family, src, m->id.idiag_src);
	inet_pton(family, dst, m->id.idiag_dst);
	m->id.idiag_cookie[0] = cookie;
	m->idiag_uid = 1000;
	m->idiag_inode = 4242 + cookie;
	return off + nlh->nlmsg_len;
}

static size_t sd_error(char *buf, size_t off, int error)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf + off);
	struct nlmsgerr *err;

	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_seq = SD_SEQ;
	err = mnl_nlmsg_put_extra_header(nlh, sizeof(*err));
	err->error = error;
	return off + nlh->nlmsg_len;
}

static void sock_reset_seeds(void)
{
	static char buf[8192] __attribute__((aligned(4)));
	uint8_t mode4 = 7 << 1, mode6 = 1 | 7 << 1, full4 = 0, ack = 0x10;
	struct nlmsghdr *nlh;
	size_t off;

	memset(buf, 0, sizeof(buf));
	off = sd_socket(buf, 0, AF_INET, "10.214.0.5", 8080, "10.213.0.2", 50000, 1);
	off = sd_socket(buf, off, AF_INET, "10.214.0.5", 8080, "10.213.0.2", 50001, 2);
	write_seed("fuzz_sock_reset", "dump4-partial", &mode4, 1, buf, off);
	nlh = mnl_nlmsg_put_header(buf + off);
	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = SD_SEQ;
	*(int *)mnl_nlmsg_put_extra_header(nlh, sizeof(int)) = 0;
	off += nlh->nlmsg_len;
	write_seed("fuzz_sock_reset", "dump4-done", &mode4, 1, buf, off);
	write_seed("fuzz_sock_reset", "dump4-full", &full4, 1, buf, off);

	memset(buf, 0, sizeof(buf));
	off = sd_socket(buf, 0, AF_INET6, "::ffff:10.214.0.5", 8080, "::ffff:10.213.0.2", 50002, 3);
	off = sd_socket(buf, off, AF_INET6, "fd00:214::5", 8080, "2001:db8::7", 443, 4);
	write_seed("fuzz_sock_reset", "dump6-partial", &mode6, 1, buf, off);

	memset(buf, 0, sizeof(buf));
	off = sd_error(buf, 0, -EOPNOTSUPP);
	write_seed("fuzz_sock_reset", "dump-eopnotsupp", &mode4, 1, buf, off);
	memset(buf, 0, sizeof(buf));
	off = sd_error(buf, 0, 0);
	write_seed("fuzz_sock_reset", "ack-ok", &ack, 1, buf, off);
	memset(buf, 0, sizeof(buf));
	off = sd_error(buf, 0, -ENOENT);
	write_seed("fuzz_sock_reset", "ack-enoent", &ack, 1, buf, off);
}

/* --- seccomp notifications ------------------------------------------------------ */

static void notif_seed(const char *name, uint32_t arch, int nr, const uint64_t args[6],
		       uint8_t fmt_size)
{
	struct seccomp_notif n = {0};
	uint8_t tail[2] = {fmt_size, 1};

	n.id = UINT64_C(0x1d7c0ffee);
	n.pid = 4321;
	n.data.nr = nr;
	n.data.arch = arch;
	n.data.instruction_pointer = UINT64_C(0x7f3a12345678);
	memcpy(n.data.args, args, sizeof(n.data.args));
	write_seed("fuzz_seccomp_notify", name, &n, sizeof(n), tail, sizeof(tail));
}

static void seccomp_seeds(void)
{
	static const uint64_t ptrace[6] = {16 /* PTRACE_ATTACH */, 1, 0, 0, 0, 0};
	static const uint64_t mount[6] = {UINT64_C(0x55d0c0de0000),
					  UINT64_C(0x55d0c0de0010),
					  UINT64_C(0x55d0c0de0020),
					  0x1000,
					  0,
					  0};
	static const uint64_t maxed[6] = {UINT64_MAX, UINT64_MAX, UINT64_MAX,
					  UINT64_MAX, UINT64_MAX, UINT64_MAX};

	notif_seed("ptrace-x86_64", AUDIT_ARCH_X86_64, 101, ptrace, 160);
	notif_seed("mount-x86_64", AUDIT_ARCH_X86_64, 165, mount, 160);
	notif_seed("ptrace-i386", AUDIT_ARCH_I386, 26, ptrace, 160);
	notif_seed("bpf-aarch64", AUDIT_ARCH_AARCH64, 280, mount, 40);
	notif_seed("x32-bit", AUDIT_ARCH_X86_64, 0x40000000 | 101, ptrace, 160);
	notif_seed("unknown-nr", AUDIT_ARCH_X86_64, 99999, maxed, 160);
	notif_seed("negative-nr", AUDIT_ARCH_X86_64, -2147483647 - 1, maxed, 7);
	notif_seed("bogus-arch", 0xdeadbeef, 101, maxed, 0);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	nflog_seeds();
	conntrack_seeds();
	seccomp_seeds();
	sock_reset_seeds();
	return 0;
}
