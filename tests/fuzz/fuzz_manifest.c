/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the snapshot manifest parser. Every input is either
 * accepted (and then formats back to exactly the same bytes: one spelling per
 * manifest) or rejected with a "manifest" error, without crashes or leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_manifest m = {0};
	struct snapshot_error e = {0};
	char *text = NULL;
	size_t text_size = 0;
	int r;

	if (size > 256 * 1024)
		return 0;
	r = snapshot_manifest_parse((const char *)data, size, &m, &e);
	if (r < 0) {
		if (m.entries || strcmp(e.path, "manifest") != 0 || !e.reason[0])
			abort();
		return 0;
	}
	/* Canonical: what parses formats back byte for byte. */
	if (snapshot_manifest_format(&m, &text, &text_size) < 0 || text_size != size ||
	    memcmp(text, data, size) != 0)
		abort();
	for (size_t i = 0; i < m.count; i++)
		if (snapshot_manifest_find(&m, m.entries[i].path) != &m.entries[i])
			abort();
	free(text);
	snapshot_manifest_clear(&m);
	return 0;
}
