/* SPDX-License-Identifier: MIT */
/* Whom a decoy hit blocks, and for how long (rotation_internal.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "rotation_internal.h"
#include "rotator.h"
#include "macro.h"

/* Sources remembered for their strikes: a block is added only after a
 * handshake or within the UDP bound, so this fills at the pace of blocks,
 * not of packets; when full, the one forgotten soonest goes. */
#define OFFENDERS_MAX 4096

struct offender {
	struct rotator_addr source;
	uint64_t blocked_usec; /* when its last block began */
	uint64_t forget_usec;  /* blocked_usec + its service's window */
	unsigned strike;
};

struct decoy_blocks {
	struct decoy_limits limits;
	struct offender *offenders;
	size_t n_offenders;
	/* When each of the last udp_limit UDP blocks was made: a ring, so the
	 * bound holds over any interval, not only aligned ones. */
	uint64_t *udp_times;
	size_t udp_capacity, udp_next, udp_count;
};

int decoy_blocks_new(struct decoy_blocks **ret)
{
	struct decoy_blocks *blocks = calloc(1, sizeof(*blocks));

	if (!blocks)
		return -ENOMEM;
	*ret = blocks;
	return 0;
}

void decoy_blocks_free(struct decoy_blocks *blocks)
{
	if (!blocks)
		return;
	free(blocks->offenders);
	free(blocks->udp_times);
	free(blocks);
}

int decoy_blocks_set_limits(struct decoy_blocks *blocks, const struct decoy_limits *limits)
{
	if (limits->udp_limit != blocks->udp_capacity) {
		uint64_t *times = NULL;
		size_t keep = MIN(blocks->udp_count, (size_t)limits->udp_limit);

		if (limits->udp_limit) {
			times = calloc(limits->udp_limit, sizeof(*times));
			if (!times)
				return -ENOMEM;
		}
		/* the most recent blocks still count against the new bound */
		for (size_t i = 0; i < keep; i++) {
			size_t from = (blocks->udp_next + blocks->udp_capacity - keep + i) %
				      blocks->udp_capacity;
			times[i] = blocks->udp_times[from];
		}
		free(blocks->udp_times);
		blocks->udp_times = times;
		blocks->udp_capacity = limits->udp_limit;
		blocks->udp_count = keep;
		blocks->udp_next = limits->udp_limit ? keep % limits->udp_limit : 0;
	}
	blocks->limits = *limits;
	return 0;
}

static bool in_any(const struct cidr *list, size_t n, const struct rotator_addr *source)
{
	for (size_t i = 0; i < n; i++)
		if (policy_cidr_contains(&list[i], source->family, &source->in6))
			return true;
	return false;
}

const struct cidr *decoy_blocks_never_block_list(const struct decoy_blocks *blocks, size_t *ret_n)
{
	*ret_n = blocks->limits.n_never_block;
	return blocks->limits.never_block;
}

bool decoy_blocks_never_blocks(const struct decoy_blocks *blocks, const struct rotator_addr *source)
{
	return in_any(blocks->limits.never_block, blocks->limits.n_never_block, source);
}

static bool same_source(const struct rotator_addr *a, const struct rotator_addr *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->in.s_addr == b->in.s_addr
				    : memcmp(&a->in6, &b->in6, sizeof(a->in6)) == 0;
}

static struct offender *find_offender(const struct decoy_blocks *blocks,
				      const struct rotator_addr *source)
{
	for (size_t i = 0; i < blocks->n_offenders; i++)
		if (same_source(&blocks->offenders[i].source, source))
			return &blocks->offenders[i];
	return NULL;
}

static bool udp_bound_reached(const struct decoy_blocks *blocks, uint64_t now_usec)
{
	uint64_t oldest;

	if (blocks->udp_capacity == 0)
		return true;
	if (blocks->udp_count < blocks->udp_capacity)
		return false;
	/* full: udp_next is the oldest of the last udp_capacity blocks */
	oldest = blocks->udp_times[blocks->udp_next];
	return now_usec < oldest + blocks->limits.udp_interval_usec;
}

/* DecoyBlock= times the factor for every earlier strike, capped. */
static uint64_t block_for_strike(const struct decoy_rules *rules, unsigned strike)
{
	uint64_t cap = MAX(rules->max_usec, rules->block_usec), usec = rules->block_usec;
	unsigned factor = MAX(rules->factor, 1u);

	for (unsigned i = 1; i < strike && usec < cap; i++)
		usec = usec > cap / factor ? cap : usec * factor;
	return MIN(usec, cap);
}

struct decoy_decision decoy_blocks_decide(const struct decoy_blocks *blocks,
					  const struct decoy_rules *rules,
					  const struct rotator_addr *source,
					  enum decoy_evidence evidence, uint64_t now_usec)
{
	struct decoy_decision d = {.verdict = DECOY_BLOCK, .strike = 1};
	const struct offender *o;

	if (in_any(blocks->limits.never_block, blocks->limits.n_never_block, source) ||
	    in_any(rules->never_block, rules->n_never_block, source))
		return (struct decoy_decision){.verdict = DECOY_NEVER_BLOCK};
	if (rules->block_usec == 0)
		return (struct decoy_decision){.verdict = DECOY_RECORD_ONLY};
	if (evidence == DECOY_EVIDENCE_TCP_SYN)
		return (struct decoy_decision){.verdict = blocks->limits.handshake_possible
							      ? DECOY_AWAIT_HANDSHAKE
							      : DECOY_NO_HANDSHAKE};
	if (evidence == DECOY_EVIDENCE_UDP && udp_bound_reached(blocks, now_usec))
		return (struct decoy_decision){.verdict = DECOY_UDP_LIMIT};

	o = find_offender(blocks, source);
	if (o && now_usec < o->blocked_usec + rules->window_usec)
		d.strike = o->strike + 1;
	d.block_usec = block_for_strike(rules, d.strike);
	if (blocks->limits.monitor)
		d.verdict = DECOY_MONITOR;
	return d;
}

static struct offender *offender_slot(struct decoy_blocks *blocks,
				      const struct rotator_addr *source)
{
	struct offender *o = find_offender(blocks, source), *grown;

	if (o)
		return o;
	if (blocks->n_offenders < OFFENDERS_MAX) {
		grown = realloc(blocks->offenders, (blocks->n_offenders + 1) * sizeof(*grown));
		if (grown) {
			blocks->offenders = grown;
			return &blocks->offenders[blocks->n_offenders++];
		}
	}
	if (blocks->n_offenders == 0)
		return NULL;
	o = &blocks->offenders[0];
	for (size_t i = 1; i < blocks->n_offenders; i++)
		if (blocks->offenders[i].forget_usec < o->forget_usec)
			o = &blocks->offenders[i];
	return o;
}

void decoy_blocks_record(struct decoy_blocks *blocks, const struct rotator_addr *source,
			 const struct decoy_rules *rules, const struct decoy_decision *decision,
			 enum decoy_evidence evidence, uint64_t now_usec)
{
	struct offender *o;

	if (decision->verdict != DECOY_BLOCK && decision->verdict != DECOY_MONITOR)
		return;
	o = offender_slot(blocks, source);
	if (o) {
		o->source = *source;
		o->strike = decision->strike;
		o->blocked_usec = now_usec;
		o->forget_usec = now_usec + rules->window_usec;
	}
	if (evidence == DECOY_EVIDENCE_UDP && blocks->udp_capacity) {
		blocks->udp_times[blocks->udp_next] = now_usec;
		blocks->udp_next = (blocks->udp_next + 1) % blocks->udp_capacity;
		if (blocks->udp_count < blocks->udp_capacity)
			blocks->udp_count++;
	}
}

void decoy_blocks_forget(struct decoy_blocks *blocks, const struct rotator_addr *source)
{
	struct offender *o = find_offender(blocks, source);

	if (o)
		*o = blocks->offenders[--blocks->n_offenders];
}

const char *decoy_blocks_verdict_name(enum decoy_verdict verdict)
{
	static const char *const names[] = {
	    [DECOY_BLOCK] = "blocked",
	    [DECOY_AWAIT_HANDSHAKE] = "blocked-once-handshake-completes",
	    [DECOY_NO_HANDSHAKE] = "not-blocked-no-honeypot",
	    [DECOY_NEVER_BLOCK] = "not-blocked-never-block",
	    [DECOY_RECORD_ONLY] = "not-blocked-decoy-block-0",
	    [DECOY_UDP_LIMIT] = "not-blocked-udp-limit",
	    [DECOY_MONITOR] = "not-blocked-monitor",
	};

	return (size_t)verdict < ELEMENTSOF(names) ? names[verdict] : "?";
}

const char *decoy_blocks_evidence_name(enum decoy_evidence evidence)
{
	static const char *const names[] = {
	    [DECOY_EVIDENCE_UDP] = "udp",
	    [DECOY_EVIDENCE_TCP_SYN] = "tcp-syn",
	    [DECOY_EVIDENCE_TCP_HANDSHAKE] = "tcp-handshake",
	};

	return (size_t)evidence < ELEMENTSOF(names) ? names[evidence] : "?";
}

json_t *decoy_blocks_status(const struct decoy_blocks *blocks, uint64_t now_usec)
{
	size_t in_interval = 0;

	for (size_t i = 0; i < blocks->udp_count; i++)
		if (now_usec < blocks->udp_times[i] + blocks->limits.udp_interval_usec)
			in_interval++;
	return json_pack("{s:i, s:I, s:I, s:I, s:I, s:b}", "udp_limit",
			 (int)blocks->limits.udp_limit, "udp_interval_usec",
			 (json_int_t)blocks->limits.udp_interval_usec, "udp_blocked_in_interval",
			 (json_int_t)in_interval, "never_block",
			 (json_int_t)blocks->limits.n_never_block, "offenders",
			 (json_int_t)blocks->n_offenders, "monitor", blocks->limits.monitor);
}
