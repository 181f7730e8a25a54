/* SPDX-License-Identifier: MIT */
/* libFuzzer target: audit_record_parse() on each line, and the verifier on
 * the whole input as one log file.
 *
 * Input: one mode byte, then the file. Mode bit 0 set: the verifier skips the
 * MAC comparison, so the fuzzer can reach the chain, epoch and seal rules
 * behind it (it cannot forge MACs). Mode bit 1 set: audit_record_parse() on
 * each line instead of the verifier (which parses every line up to the first
 * failure itself: doing both parsed each line twice, for half the executions
 * and no coverage the split loses). Seeds are made with FUZZ_KEY below. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"
#include "audit_internal.h"

/* 00 01 02 ... 1f */
static const uint8_t FUZZ_KEY[AUDIT_KEY_SIZE] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static void parse_lines(const char *text, const char *end)
{
	const char *p, *nl;

	for (p = text; p < end; p = nl + 1) {
		struct audit_record rec = {};

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (audit_record_parse(p, (size_t)(nl - p), &rec) == 0) {
			/* Touch what a reader would use. */
			if (!rec.type || !json_is_object(rec.fields) || strlen(rec.mac) != 64 ||
			    strlen(rec.prev) != 64 || rec.seq == 0)
				__builtin_trap();
			audit_record_done(&rec);
		}
	}
}

static void verify(const char *text, size_t len, unsigned flags)
{
	struct audit_verify_result res = {};

	if (audit_verify_buffer(FUZZ_KEY, "fuzz", text, len, flags, &res) == 0) {
		if (!res.ok && (!res.reason || !res.bad_file))
			__builtin_trap();
		if (res.ok && (res.reason || res.torn_tail))
			__builtin_trap();
		/* gaps only when asked for, each a real, ordered jump */
		if (res.n_gaps && !(flags & AUDIT_VERIFY_GAPS))
			__builtin_trap();
		for (size_t i = 0; i < res.n_gaps; i++)
			if (res.gaps[i].first > res.gaps[i].last ||
			    (i > 0 && res.gaps[i].first <= res.gaps[i - 1].last))
				__builtin_trap();
		audit_verify_result_done(&res);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	if (data[0] & 2)
		parse_lines(text, text + size - 1);
	else
		verify(text, size - 1,
		       ((data[0] & 1) ? AUDIT_VERIFY_NO_MAC : 0) |
			   ((data[0] & 4) ? AUDIT_VERIFY_GAPS : 0));
	return 0;
}
