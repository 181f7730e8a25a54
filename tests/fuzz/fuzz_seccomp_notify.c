/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the seccomp violation evidence, from the notification the
 * kernel hands the agent to the audit record it writes. Every field of a
 * struct seccomp_notif is chosen by the confined (hostile) program: system
 * call number, arch, the six arguments, the instruction pointer; the pid
 * and cookie come from the kernel but are taken as bytes too.
 *
 * Input: a struct seccomp_notif (shorter inputs are zero-padded, as the
 * kernel's zeroed buffer would be), then optionally one byte: the size of the
 * buffer seccomp_violation_format() gets (0..255).
 *
 * Checked: the name is a non-empty printable string; the log line is
 * NUL-terminated within any buffer size; the evidence (what instance.c
 * raises) wraps into the record fleet.c audits, which builds, is one line of
 * printable ASCII holding the evidence as encoded, and verifies under the key.
 * Parsing records back is fuzz_audit_record's job: doing it here too would
 * halve the executions for no new coverage of this encoder. */
#include <errno.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_internal.h"
#include "sandbox.h"

static const uint8_t FUZZ_KEY[AUDIT_KEY_SIZE] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static void check_format(const struct seccomp_violation *v, size_t size)
{
	char *buf = malloc(size ? size : 1); /* exact size: ASan sees any overrun */
	const char *s;

	if (!buf)
		abort();
	s = seccomp_violation_format(v, buf, size);
	if (s != buf || (size > 0 && strnlen(buf, size) >= size))
		abort();
	free(buf);
}

static void check_record(const struct seccomp_violation *v, json_t *evidence)
{
	struct audit_record_head head = {
	    .seq = 7,
	    .realtime_usec = UINT64_C(1764979200000000),
	    .monotonic_usec = 123456789,
	    .epoch = 0,
	    .boot_id = "0123456789abcdef0123456789abcdef",
	    .type = "seccomp-violation",
	    .prev = AUDIT_ZERO_MAC,
	};
	char mac[AUDIT_MAC_HEX_LEN + 1], split_mac[AUDIT_MAC_HEX_LEN + 1];
	char again[AUDIT_MAC_HEX_LEN + 1];
	json_t *fields, *args;
	char *line = NULL, *text;
	size_t len = 0, body_len = 0;

	/* as fleet.c's on_instance_signal() wraps it */
	fields = json_pack("{s:s, s:s, s:O}", "service", "web", "instance", "web-1", "evidence",
			   evidence);
	if (!fields)
		abort();
	head.fields = fields;
	if (audit_record_line(FUZZ_KEY, &head, &line, &len, mac) < 0)
		abort();
	/* One record per line of printable ASCII (what the reader accepts),
	 * whatever the program did; the evidence inside as it was encoded. */
	if (strlen(line) != len)
		abort();
	for (size_t i = 0; i < len; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			abort();
	text = json_dumps(evidence, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	if (!text || !strstr(line, text))
		abort();
	free(text);
	if (audit_line_split(line, len, &body_len, split_mac) < 0 || strcmp(split_mac, mac) != 0 ||
	    audit_mac_hex(FUZZ_KEY, line, body_len, again) < 0 || !audit_mac_hex_equal(again, mac))
		abort();
	/* the arguments read back as the numbers the program passed */
	args = json_object_get(evidence, "args");
	for (size_t i = 0; i < 6; i++) {
		const char *a = json_string_value(json_array_get(args, i));
		char *end = NULL;

		errno = 0;
		if (!a || strtoull(a, &end, 16) != v->args[i] || errno || *end)
			abort();
	}
	free(line);
	json_decref(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seccomp_notif req = {0};
	struct seccomp_violation v;
	size_t name_len;
	json_t *evidence;

	memcpy(&req, data, size < sizeof(req) ? size : sizeof(req));
	seccomp_violation_from_notif(&req, &v);

	name_len = strnlen(v.name, sizeof(v.name));
	if (name_len == 0 || name_len >= sizeof(v.name) || v.nr != req.data.nr ||
	    v.arch != req.data.arch || v.id != req.id ||
	    memcmp(v.args, req.data.args, sizeof(v.args)) != 0 ||
	    v.instruction_pointer != req.data.instruction_pointer || v.answered)
		abort();
	for (size_t i = 0; i < name_len; i++)
		if (v.name[i] < 0x21 || v.name[i] > 0x7e)
			abort();

	check_format(&v, size > sizeof(req) ? data[sizeof(req)] : 160);
	v.answered = size > sizeof(req) + 1 && (data[sizeof(req) + 1] & 1);

	evidence = seccomp_violation_evidence(&v);
	if (!evidence)
		abort();
	check_record(&v, evidence);
	json_decref(evidence);
	return 0;
}
