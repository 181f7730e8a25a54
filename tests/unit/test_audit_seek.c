/* SPDX-License-Identifier: MIT */
/* audit_seek: the first record after a seq, found in rotated log files
 * without reading them through. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit.h"
#include "macro.h"

#define KEEP 3

static char dir[64], log_path[128];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* A log of n records (fields of varied size) rotated at 4 KiB, KEEP kept. */
static uint64_t write_log(unsigned n)
{
	struct audit_options options = {.max_bytes = 4096, .keep = KEEP};
	struct audit_log *log;
	char state[160];

	strcpy(dir, "/tmp/test-audit-seek-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(log_path, sizeof(log_path), "%s/audit.log", dir);
	assert_int_equal(mkdir(state, 0700), 0);
	assert_int_equal(audit_log_open(log_path, state, &options, &log, NULL), 0);
	for (unsigned i = 0; i < n; i++) {
		char pad[300];
		json_t *fields;

		memset(pad, 'x', i % 290);
		pad[i % 290] = '\0';
		fields = json_pack("{s:s, s:i}", "pad", pad, "i", (int)i);
		assert_int_equal(audit_log_append(log, "test", fields, false, NULL, NULL), 0);
		json_decref(fields);
	}
	n = (unsigned)audit_log_last_seq(log);
	audit_log_close(log);
	return n;
}

static int teardown(void **state)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* The seq of the line at (file, offset), 0 at the end of the file. */
static uint64_t seq_at(unsigned file, uint64_t offset)
{
	_cleanup_free_ char *name = audit_file_name(log_path, file);
	_cleanup_fclose_ FILE *f = fopen(name, "re");
	unsigned long long seq = 0;

	assert_non_null(f);
	assert_int_equal(fseeko(f, (off_t)offset, SEEK_SET), 0);
	if (fscanf(f, "{\"seq\":%llu,", &seq) != 1)
		return 0;
	return seq;
}

static uint64_t first_seq(unsigned file)
{
	return seq_at(file, 0);
}

static void test_seek_finds_every_seq(void **state)
{
	uint64_t last = write_log(200), oldest_first;
	unsigned oldest = KEEP, file;
	uint64_t offset;

	for (;;) {
		_cleanup_free_ char *name = audit_file_name(log_path, oldest);

		if (access(name, F_OK) == 0)
			break;
		oldest--;
	}
	assert_int_equal(oldest, KEEP); /* the log rotated past what is kept */
	oldest_first = first_seq(oldest);
	assert_true(oldest_first > 1);

	for (uint64_t since = oldest_first - 1; since < last; since++) {
		assert_int_equal(audit_seek(log_path, KEEP, since, &file, &offset), 0);
		if (seq_at(file, offset) != since + 1)
			fail_msg("since %llu: file %u offset %llu holds seq %llu",
				 (unsigned long long)since, file, (unsigned long long)offset,
				 (unsigned long long)seq_at(file, offset));
	}
}

static void test_seek_before_and_after_the_kept_records(void **state)
{
	uint64_t last = write_log(200), offset;
	unsigned file;
	struct stat st;

	/* older than what is kept: the start of the oldest file */
	assert_int_equal(audit_seek(log_path, KEEP, 0, &file, &offset), 0);
	assert_int_equal(file, KEEP);
	assert_int_equal(offset, 0);
	/* nothing newer: the end of the log */
	assert_int_equal(audit_seek(log_path, KEEP, last, &file, &offset), 0);
	assert_int_equal(stat(log_path, &st), 0);
	if (file == 0)
		assert_int_equal(offset, (uint64_t)st.st_size);
	assert_int_equal(audit_seek(log_path, KEEP, UINT64_C(1) << 52, &file, &offset), 0);
	assert_int_equal(file, 0);
	assert_int_equal(offset, (uint64_t)st.st_size);
}

static void test_seek_without_a_log(void **state)
{
	unsigned file;
	uint64_t offset;

	strcpy(dir, "/tmp/test-audit-seek-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(log_path, sizeof(log_path), "%s/audit.log", dir);
	assert_int_equal(audit_seek(log_path, KEEP, 0, &file, &offset), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_seek_finds_every_seq, teardown),
	    cmocka_unit_test_teardown(test_seek_before_and_after_the_kept_records, teardown),
	    cmocka_unit_test_teardown(test_seek_without_a_log, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
