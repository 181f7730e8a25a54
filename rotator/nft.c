/* SPDX-License-Identifier: MIT */
/* The nftables netlink transaction layer (see rotator_internal.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "rotator_internal.h"

#define PAGE_LIMIT (256 * 1024)
#define PAGE_ALLOC (PAGE_LIMIT + NFT_TXN_MSG_MAX)
#define RECV_BUF (64 * 1024)
#define RECV_TIMEOUT_MS 5000
#define SPARE_PAGES 16

struct page {
	char *mem;
	struct mnl_nlmsg_batch *batch;
};

struct nft_sock {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	int sndbuf;
	/* pages of finished transactions, reused: no allocation (and no page
	 * faults on fresh mmap'd memory) on the hot path */
	char *spare[SPARE_PAGES];
	size_t n_spare;
	/* netlink messages are read in place: aligned like their headers */
	char buf[RECV_BUF] __attribute__((aligned(__alignof__(struct nlmsghdr))));
};

struct msg_info {
	struct nft_ref ref;
	const struct nlmsghdr *nlh; /* where it lives in the pages */
};

struct nft_txn {
	struct nft_sock *sock;
	struct page *pages;
	size_t n_pages;
	uint32_t first_seq; /* seq of the batch begin message */
	uint32_t next_seq;
	struct msg_info *msgs; /* by seq - first_seq */
	size_t n_msgs, cap_msgs;
	nft_describe_fn describe;
	void *describe_data;
	unsigned char *genid;  /* NFNL_BATCH_GENID payload inside the begin message */
	struct nlmsghdr *last; /* last command message (carries NLM_F_ACK) */
	uint32_t last_seq;
	bool ended;
	enum nft_outcome outcome;
};

int nft_sock_open(struct nft_sock **ret)
{
	struct nft_sock *s;
	int one = 1;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!s->nl) {
		int e = -errno;
		free(s);
		return e;
	}
	if (mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_setsockopt(s->nl, NETLINK_EXT_ACK, &one, sizeof(one)) < 0 ||
	    mnl_socket_setsockopt(s->nl, NETLINK_CAP_ACK, &one, sizeof(one)) < 0) {
		int e = -errno;
		nft_sock_close(s);
		return e;
	}
	s->portid = mnl_socket_get_portid(s->nl);
	s->seq = (uint32_t)time(NULL);
	*ret = s;
	return 0;
}

void nft_sock_close(struct nft_sock *s)
{
	if (!s)
		return;
	if (s->nl)
		mnl_socket_close(s->nl);
	for (size_t i = 0; i < s->n_spare; i++)
		free(s->spare[i]);
	free(s);
}

uint32_t nft_sock_portid(const struct nft_sock *s)
{
	return s->portid;
}

/* Receive one datagram; waits (bounded) when nothing is queued yet. */
static ssize_t sock_recv(struct nft_sock *s, bool wait)
{
	for (;;) {
		struct pollfd pfd = {.fd = mnl_socket_get_fd(s->nl), .events = POLLIN};
		ssize_t n = mnl_socket_recvfrom(s->nl, s->buf, sizeof(s->buf));
		int k;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || !wait)
			return -errno;
		k = poll(&pfd, 1, RECV_TIMEOUT_MS);
		if (k == 0)
			return -ETIMEDOUT;
		if (k < 0 && errno != EINTR)
			return -errno;
	}
}

/* Send one request and run cb on the replies until the kernel's ack/done. */
static int sock_request(struct nft_sock *s, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint32_t seq = nlh->nlmsg_seq;

	if (mnl_socket_sendto(s->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = sock_recv(s, true);
		int r;

		if (n < 0)
			return (int)n;
		r = mnl_cb_run(s->buf, (size_t)n, seq, s->portid, cb, data);
		if (r < 0)
			return errno > 0 ? -errno : -EIO;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_gen *gen = nftnl_gen_alloc();

	if (!gen)
		return MNL_CB_ERROR;
	if (nftnl_gen_nlmsg_parse(nlh, gen) < 0) {
		nftnl_gen_free(gen);
		return MNL_CB_ERROR;
	}
	*(uint32_t *)data = nftnl_gen_get_u32(gen, NFTNL_GEN_ID);
	nftnl_gen_free(gen);
	return MNL_CB_OK;
}

int nft_get_genid(struct nft_sock *s, uint32_t *ret_genid)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	uint32_t genid = 0;
	int r;

	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, ++s->seq);
	r = sock_request(s, nlh, gen_cb, &genid);
	if (r < 0)
		return r;
	*ret_genid = genid;
	return 0;
}

struct table_info {
	bool exists;
	uint32_t flags, owner;
};

static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct table_info *info = data;
	struct nftnl_table *t = nftnl_table_alloc();

	if (!t)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) < 0) {
		nftnl_table_free(t);
		return MNL_CB_ERROR;
	}
	info->exists = true;
	info->flags = nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS);
	if (nftnl_table_is_set(t, NFTNL_TABLE_OWNER))
		info->owner = nftnl_table_get_u32(t, NFTNL_TABLE_OWNER);
	nftnl_table_free(t);
	return MNL_CB_OK;
}

int nft_get_table(struct nft_sock *s, uint16_t family, const char *name, bool *ret_exists,
		  uint32_t *ret_flags, uint32_t *ret_owner)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct table_info info = {};
	struct nftnl_table *t;
	struct nlmsghdr *nlh;
	int r;

	t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, family, NLM_F_ACK, ++s->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	r = sock_request(s, nlh, table_cb, &info);
	if (r == -ENOENT)
		info.exists = false;
	else if (r < 0)
		return r;
	*ret_exists = info.exists;
	if (ret_flags)
		*ret_flags = info.flags;
	if (ret_owner)
		*ret_owner = info.owner;
	return 0;
}

struct elem_dump {
	nft_elem_fn fn;
	void *userdata;
	int error; /* fn's or parsing's: the rest of the dump is only drained */
};

static int elem_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct elem_dump *dump = data;
	struct nftnl_set_elems_iter *it = NULL;
	struct nftnl_set_elem *e;
	struct nftnl_set *set;

	/* On any failure keep reading to the end of the dump: the socket must
	 * not be left with replies queued for the next request. */
	if (dump->error < 0)
		return MNL_CB_OK;
	set = nftnl_set_alloc();
	if (!set) {
		dump->error = -ENOMEM;
		return MNL_CB_OK;
	}
	if (nftnl_set_elems_nlmsg_parse(nlh, set) < 0 || !(it = nftnl_set_elems_iter_create(set))) {
		nftnl_set_free(set);
		dump->error = -EPROTO;
		return MNL_CB_OK;
	}
	/* iter_next returns the current element, then moves on */
	while (dump->error >= 0 && (e = nftnl_set_elems_iter_next(it))) {
		struct nft_elem_info info = {0};

		info.key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &info.key_len);
		if (!info.key)
			continue;
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT))
			info.timeout_ms = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT);
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPIRATION))
			info.expires_in_ms = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_EXPIRATION);
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
			info.flags = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS);
		dump->error = dump->fn(&info, dump->userdata);
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(set);
	return MNL_CB_OK;
}

int nft_dump_set_elems(struct nft_sock *s, uint16_t family, const char *table, const char *set,
		       nft_elem_fn fn, void *userdata)
{
	char buf[1024] = {0}; /* one small request; its attributes' padding is sent too */
	struct elem_dump dump = {.fn = fn, .userdata = userdata};
	struct nftnl_set *query;
	struct nlmsghdr *nlh;
	int r;

	query = nftnl_set_alloc();
	if (!query)
		return -ENOMEM;
	nftnl_set_set_str(query, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(query, NFTNL_SET_NAME, set);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, family, NLM_F_DUMP, ++s->seq);
	nftnl_set_elems_nlmsg_build_payload(nlh, query);
	nftnl_set_free(query);
	r = sock_request(s, nlh, elem_dump_cb, &dump);
	if (r < 0)
		return r;
	return dump.error < 0 ? dump.error : 0;
}

/* --- transactions ----------------------------------------------------------- */

static int txn_add_page(struct nft_txn *t)
{
	struct page *pages, *p;

	pages = realloc(t->pages, (t->n_pages + 1) * sizeof(*pages));
	if (!pages)
		return -ENOMEM;
	t->pages = pages;
	p = &t->pages[t->n_pages];
	/* Zeroed once: attribute padding is sent as is (libmnl zeroes the
	 * padding it writes, so a reused page holds no uninitialised bytes).
	 * Large, so calloc gets fresh zero pages from mmap at no memset cost. */
	p->mem = t->sock->n_spare ? t->sock->spare[--t->sock->n_spare] : calloc(1, PAGE_ALLOC);
	if (!p->mem)
		return -ENOMEM;
	p->batch = mnl_nlmsg_batch_start(p->mem, PAGE_LIMIT);
	if (!p->batch) {
		free(p->mem);
		return -ENOMEM;
	}
	t->n_pages++;
	return 0;
}

static struct page *txn_page(struct nft_txn *t)
{
	return &t->pages[t->n_pages - 1];
}

static int txn_note(struct nft_txn *t, uint32_t seq, const struct nft_ref *ref)
{
	size_t i = seq - t->first_seq;

	if (i >= t->cap_msgs) {
		size_t cap = t->cap_msgs ? t->cap_msgs * 2 : 64;
		struct msg_info *m = realloc(t->msgs, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		t->msgs = m;
		t->cap_msgs = cap;
	}
	t->msgs[i] = (struct msg_info){.ref = *ref};
	t->n_msgs = i + 1;
	return 0;
}

void nft_txn_set_describe(struct nft_txn *t, nft_describe_fn fn, void *userdata)
{
	t->describe = fn;
	t->describe_data = userdata;
}

enum nft_outcome nft_txn_outcome(const struct nft_txn *t)
{
	return t->outcome;
}

/* The object of message i, formatted now that it failed. */
static void txn_describe(const struct nft_txn *t, size_t i, uint32_t bad_offset, char *buf,
			 size_t len)
{
	const struct msg_info *m = &t->msgs[i];

	if (m->ref.kind && t->describe) {
		t->describe(t->describe_data, &m->ref, m->nlh, bad_offset, buf, len);
		return;
	}
	snprintf(buf, len, "%s%s%s", m->ref.what ? m->ref.what : "message", m->ref.name ? " " : "",
		 m->ref.name ? m->ref.name : "");
}

/* Account for the message just written at the page's cursor; moves it to a
 * fresh page when it does not fit the current one. Returns where it lives. */
static struct nlmsghdr *txn_advance(struct nft_txn *t, struct nlmsghdr *nlh)
{
	struct page *p = txn_page(t);

	if (mnl_nlmsg_batch_next(p->batch))
		return nlh;
	if (txn_add_page(t) < 0)
		return NULL;
	p = txn_page(t);
	memcpy(mnl_nlmsg_batch_current(p->batch), nlh, nlh->nlmsg_len);
	nlh = mnl_nlmsg_batch_current(p->batch);
	if (!mnl_nlmsg_batch_next(p->batch))
		return NULL;
	return nlh;
}

int nft_txn_new(struct nft_sock *s, struct nft_txn **ret)
{
	struct nft_txn *t;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	struct nlattr *attr;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->sock = s;
	if (txn_add_page(t) < 0) {
		nft_txn_free(t);
		return -ENOMEM;
	}
	t->first_seq = t->next_seq = ++s->seq;

	/* batch begin for the nftables subsystem with a generation id slot */
	nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(txn_page(t)->batch));
	nlh->nlmsg_type = NFNL_MSG_BATCH_BEGIN;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = t->next_seq++;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
	attr = (struct nlattr *)mnl_nlmsg_get_payload_tail(nlh);
	mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, 0);
	t->genid = mnl_attr_get_payload(attr);
	if (txn_note(t, nlh->nlmsg_seq, &(struct nft_ref){.what = "transaction"}) < 0 ||
	    !(nlh = txn_advance(t, nlh))) {
		nft_txn_free(t);
		return -ENOMEM;
	}
	t->msgs[0].nlh = nlh;
	*ret = t;
	return 0;
}

void nft_txn_free(struct nft_txn *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_pages; i++) {
		mnl_nlmsg_batch_stop(t->pages[i].batch);
		if (t->sock->n_spare < SPARE_PAGES)
			t->sock->spare[t->sock->n_spare++] = t->pages[i].mem;
		else
			free(t->pages[i].mem);
	}
	free(t->pages);
	free(t->msgs);
	free(t);
}

struct nlmsghdr *nft_txn_msg(struct nft_txn *t, uint16_t cmd, uint16_t family, uint16_t flags,
			     const struct nft_ref *ref)
{
	uint32_t seq = t->next_seq;

	if (t->ended || txn_note(t, seq, ref) < 0)
		return NULL;
	t->next_seq++;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(txn_page(t)->batch), cmd, family,
				     flags, seq);
}

int nft_txn_msg_end(struct nft_txn *t, struct nlmsghdr *nlh)
{
	if (nlh->nlmsg_len > NFT_TXN_MSG_MAX)
		return -E2BIG; /* would have overrun the page slack: a programming error */
	nlh = txn_advance(t, nlh);
	if (!nlh)
		return -ENOMEM;
	t->msgs[nlh->nlmsg_seq - t->first_seq].nlh = nlh;
	t->last = nlh;
	t->last_seq = nlh->nlmsg_seq;
	return 0;
}

size_t nft_txn_n_msgs(const struct nft_txn *t)
{
	return t->next_seq - t->first_seq;
}

size_t nft_txn_size(const struct nft_txn *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n_pages; i++)
		n += mnl_nlmsg_batch_size(t->pages[i].batch);
	return n;
}

static int txn_end(struct nft_txn *t)
{
	struct nlmsghdr *nlh;

	if (t->ended)
		return 0;
	if (!t->last)
		return -ENODATA;
	t->last->nlmsg_flags |= NLM_F_ACK; /* the kernel's ack for it ends our wait */
	nlh = nftnl_batch_end(mnl_nlmsg_batch_current(txn_page(t)->batch), t->next_seq);
	if (txn_note(t, t->next_seq, &(struct nft_ref){.what = "transaction end"}) < 0 ||
	    !(nlh = txn_advance(t, nlh)))
		return -ENOMEM;
	t->msgs[t->n_msgs - 1].nlh = nlh;
	t->next_seq++;
	if ((int32_t)(t->next_seq - t->sock->seq) > 0)
		t->sock->seq = t->next_seq;
	t->ended = true;
	return 0;
}

static int txn_send(struct nft_sock *s, struct nft_txn *t)
{
	struct sockaddr_nl snl = {.nl_family = AF_NETLINK};
	_cleanup_free_ struct iovec *iov = NULL;
	struct msghdr msg = {};
	size_t total = nft_txn_size(t);
	ssize_t n;

	if (total + 64 > (size_t)INT32_MAX / 2)
		return -E2BIG;
	if ((size_t)s->sndbuf < total + 64) {
		/* one skb carries the whole transaction: the send buffer must hold it */
		int want = (int)(total + 64);

		if (setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_SNDBUFFORCE, &want,
			       sizeof(want)) < 0 &&
		    setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_SNDBUF, &want,
			       sizeof(want)) < 0)
			return -errno;
		s->sndbuf = want;
	}
	iov = calloc(t->n_pages, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_pages; i++) {
		iov[i].iov_base = mnl_nlmsg_batch_head(t->pages[i].batch);
		iov[i].iov_len = mnl_nlmsg_batch_size(t->pages[i].batch);
	}
	msg.msg_name = &snl;
	msg.msg_namelen = sizeof(snl);
	msg.msg_iov = iov;
	msg.msg_iovlen = t->n_pages;
	do
		n = sendmsg(mnl_socket_get_fd(s->nl), &msg, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != total)
		return -EIO;
	return 0;
}

/* The extended ack's text (into out) and the offset of the blamed attribute. */
static uint32_t extack_parse(const struct nlmsghdr *nlh, char *out, size_t len)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off = sizeof(*e);
	uint32_t bad = 0;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return 0;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (off > mnl_nlmsg_get_payload_len(nlh))
		return 0;
	mnl_attr_for_each(attr, nlh, off)
	{
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && out &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
			snprintf(out, len, "%s", mnl_attr_get_str(attr));
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_OFFS &&
		    mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
			bad = mnl_attr_get_u32(attr);
	}
	return bad;
}

static int txn_collect(struct nft_sock *s, struct nft_txn *t, struct step_error *err)
{
	bool done = false, failed = false;
	int first = 0;

	for (;;) {
		ssize_t n = sock_recv(s, !done && !failed);
		const struct nlmsghdr *nlh;
		int len;

		if (n == -EAGAIN)
			break;
		if (n == -ENOBUFS && failed)
			break; /* too many error reports to queue: the first one is kept */
		if (n < 0)
			return step_error_set(err, "transaction", (int)n, "receiving the verdict");
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)s->buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e;
			uint32_t i = nlh->nlmsg_seq - t->first_seq;

			if (nlh->nlmsg_type != NLMSG_ERROR || i >= t->n_msgs ||
			    nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*e))
				continue; /* not about this transaction */
			e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_seq == t->last_seq || i == 0)
				done = true;
			if (e->error == 0 || failed)
				continue;
			failed = true;
			first = e->error;
			if (err) {
				uint32_t bad;

				/* the kernel's ack and the object it names, bounded by
				 * the struct: no printf to set them through */
				err->err = -first;
				err->detail[0] = 0;
				bad = extack_parse(nlh, err->detail, sizeof(err->detail));
				txn_describe(t, i, bad, err->step, sizeof(err->step));
			}
		}
	}
	if (failed) {
		t->outcome = NFT_TXN_REFUSED; /* a refused batch changes nothing */
		return first;
	}
	return done ? 0 : step_error_set(err, "transaction", -EIO, "no verdict from kernel");
}

int nft_txn_commit(struct nft_sock *s, struct nft_txn *t, unsigned max_restarts,
		   struct step_error *err)
{
	int r = txn_end(t);

	t->outcome = NFT_TXN_REFUSED; /* nothing sent yet */
	if (r < 0)
		return step_error_set(err, "transaction", r, "building the batch");
	for (unsigned attempt = 0;; attempt++) {
		uint32_t genid;

		/* drop stale replies of an earlier, abandoned exchange */
		while (sock_recv(s, false) > 0)
			;
		r = nft_get_genid(s, &genid);
		if (r < 0)
			return step_error_set(err, "ruleset generation", r,
					      "NFT_MSG_GETGEN failed");
		genid = htonl(genid);
		memcpy(t->genid, &genid, sizeof(genid));
		t->outcome = NFT_TXN_UNKNOWN;
		r = txn_send(s, t);
		if (r < 0)
			return step_error_set(err, "transaction", r, "sending %zu bytes",
					      nft_txn_size(t));
		r = txn_collect(s, t, err);
		if (r == 0)
			t->outcome = NFT_TXN_COMMITTED;
		if (r != -ERESTART || attempt >= max_restarts)
			return r;
	}
}
