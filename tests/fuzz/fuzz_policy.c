/* SPDX-License-Identifier: MIT */
/* libFuzzer target: one policy file from memory, and the same bytes as the
 * global file (mtd.conf). Every input must be either accepted or rejected
 * with errors, without crashes or leaks. Relative
 * KeyFile= paths resolve against the current directory (the file name has no
 * directory part). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;
	struct policy_globals *g = NULL;
	struct policy_errors errors = {0};
	int r;

	if (size > 64 * 1024)
		return 0;
	r = policy_parse_buffer("fuzz.policy", (const char *)data, size, &p, &errors);
	if (r == 0) {
		json_t *j = policy_to_json(p);
		if (!p || errors.count != 0)
			abort(); /* success means a policy and no errors */
		json_decref(j);
	} else if (p)
		abort(); /* failure never hands out a policy */
	for (size_t i = 0; i < errors.count; i++)
		free(policy_error_format(&errors.items[i]));
	policy_free(p);
	policy_errors_free(&errors);

	r = policy_globals_parse_buffer("fuzz.conf", (const char *)data, size, &g, &errors);
	if ((r == 0) != (g && errors.count == 0))
		abort(); /* success, and only success, hands out the globals */
	for (size_t i = 0; i < errors.count; i++)
		free(policy_error_format(&errors.items[i]));
	policy_globals_free(g);
	policy_errors_free(&errors);
	return 0;
}
