/* SPDX-License-Identifier: MIT */
/* audit-forge: what an attacker does with a stolen audit.key. Rewrites the
 * record with seq SEQ of a log (adds "forged": true to its fields), then
 * recomputes every MAC from there to the end and re-chains the records after
 * it, so the file looks untouched to anyone without the verification key.
 *
 * The attacker has the key of one epoch, k (the stolen audit.key), and so the
 * keys of every later epoch (the evolution is public); for records of epochs
 * before k there is no key to be had, and the tool uses the stolen one (any
 * guess is as good). The test shows what `mtdctl audit verify` makes of it:
 * a record of an epoch before k is rejected, one of epoch k or later is not
 * (the limit of forward security).
 *
 * usage: audit-forge STOLEN_STATE_DIR LOG SEQ OUT
 *   STOLEN_STATE_DIR holds the copied audit.key; OUT is the forged log. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "audit_internal.h"
#include "macro.h"

static int key_for_epoch(const struct audit_key_state *stolen, uint64_t epoch,
			 uint8_t ret_key[AUDIT_KEY_SIZE])
{
	uint8_t k[AUDIT_KEY_SIZE];

	memcpy(k, stolen->key, sizeof(k));
	for (uint64_t e = stolen->epoch; e < epoch; e++)
		if (audit_key_next(k, k) < 0)
			return -EIO;
	/* epoch < stolen->epoch: nothing better than the stolen key */
	memcpy(ret_key, k, sizeof(k));
	return 0;
}

int main(int argc, char **argv)
{
	struct audit_key_state stolen = {};
	char prev[AUDIT_MAC_HEX_LEN + 1] = "";
	_cleanup_fclose_ FILE *in = NULL, *out = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	uint64_t target;
	bool forging = false, found = false;
	char *end;
	int dir_fd, r;

	if (argc != 5) {
		fprintf(stderr, "usage: audit-forge STOLEN_STATE_DIR LOG SEQ OUT\n");
		return 2;
	}
	errno = 0;
	target = strtoull(argv[3], &end, 10);
	if (errno || *end || target == 0) {
		fprintf(stderr, "audit-forge: bad seq %s\n", argv[3]);
		return 2;
	}
	dir_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 || (r = audit_key_state_load(dir_fd, &stolen)) < 0) {
		fprintf(stderr, "audit-forge: cannot read %s/audit.key\n", argv[1]);
		return 1;
	}
	close(dir_fd);
	in = fopen(argv[2], "re");
	out = fopen(argv[4], "wex");
	if (!in || !out) {
		fprintf(stderr, "audit-forge: %s\n", strerror(errno));
		return 1;
	}
	while ((len = getline(&line, &cap, in)) > 0) {
		_cleanup_(audit_record_done) struct audit_record rec = {};
		_cleanup_free_ char *forged = NULL;
		uint8_t key[AUDIT_KEY_SIZE];
		char mac[AUDIT_MAC_HEX_LEN + 1];
		struct audit_record_head head;
		size_t n;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (audit_record_parse(line, (size_t)len, &rec) < 0) {
			fprintf(stderr, "audit-forge: unparsable line\n");
			return 1;
		}
		if (rec.seq == target) {
			forging = found = true;
			json_object_set_new(rec.fields, "forged", json_true());
		}
		if (!forging) {
			fprintf(out, "%s\n", line);
			continue;
		}
		head = (struct audit_record_head){
		    .seq = rec.seq,
		    .realtime_usec = rec.realtime_usec,
		    .monotonic_usec = rec.monotonic_usec,
		    .epoch = rec.epoch,
		    .boot_id = rec.boot_id,
		    .type = rec.type,
		    .fields = rec.fields,
		    .prev = rec.seq == target ? rec.prev : prev,
		};
		if (key_for_epoch(&stolen, rec.epoch, key) < 0 ||
		    audit_record_line(key, &head, &forged, &n, mac) < 0) {
			fprintf(stderr, "audit-forge: cannot build seq %" PRIu64 "\n", rec.seq);
			return 1;
		}
		fprintf(out, "%s\n", forged);
		memcpy(prev, mac, sizeof(prev));
	}
	if (!found) {
		fprintf(stderr, "audit-forge: no seq %" PRIu64 " in %s\n", target, argv[2]);
		return 1;
	}
	printf("forged seq %" PRIu64 " with the key of epoch %" PRIu64 "\n", target, stolen.epoch);
	audit_key_state_cleanse(&stolen);
	return 0;
}
