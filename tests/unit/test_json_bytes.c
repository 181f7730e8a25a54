/* SPDX-License-Identifier: MIT */
/* json_bytes: evidence an instance controls becomes a JSON string whatever
 * its bytes, dumps, and gives the original bytes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_bytes.h"

/* The inverse of json_bytes' escaping, as a reader of the evidence would do. */
static size_t unescape(const char *s, char *out)
{
	size_t n = 0;

	while (*s) {
		if (s[0] == '\\' && s[1] == '\\') {
			out[n++] = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x') {
			char hex[3] = {s[2], s[3], 0};
			out[n++] = (char)strtol(hex, NULL, 16);
			s += 4;
		} else {
			out[n++] = *s++;
		}
	}
	return n;
}

static void check(const char *in, size_t len, const char *expected)
{
	json_t *s = json_bytes(in, len);
	char *dumped, back[256];

	assert_non_null(s);
	assert_string_equal(json_string_value(s), expected);
	dumped = json_dumps(s, JSON_ENCODE_ANY);
	assert_non_null(dumped); /* the failure that lost quarantines */
	assert_int_equal(unescape(json_string_value(s), back), len);
	assert_memory_equal(back, in, len);
	free(dumped);
	json_decref(s);
}

static void test_utf8_is_kept_as_it_is(void **state)
{
	check("plain /var/cache/x", 18, "plain /var/cache/x");
	check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 14,
	      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
}

static void test_other_bytes_are_escaped_and_recoverable(void **state)
{
	check("arg\xff", 4, "arg\\xff");
	check("\xff", 1, "\\xff");
	check("a\\b", 3, "a\\\\b");
	check("\\xff", 4, "\\\\xff"); /* text that looks like an escape stays apart */
	check("nul\0in", 6, "nul\\x00in");
	check("\xc0\x80", 2, "\\xc0\\x80");		      /* overlong NUL */
	check("\xed\xa0\x80", 3, "\\xed\\xa0\\x80");	      /* a surrogate */
	check("\xe2\x82", 2, "\\xe2\\x82");		      /* cut short */
	check("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
	check("\x80x", 2, "\\x80x");
}

static void test_null_stays_null(void **state)
{
	assert_null(json_bytes_str(NULL));
	json_t *s = json_bytes_str("");
	assert_string_equal(json_string_value(s), "");
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_is_kept_as_it_is),
	    cmocka_unit_test(test_other_bytes_are_escaped_and_recoverable),
	    cmocka_unit_test(test_null_stays_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
