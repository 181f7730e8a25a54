/* SPDX-License-Identifier: MIT */
/* Shared between agent/policy.c and agent/policy_set.c only. */
#pragma once

#include "macro.h"
#include "policy.h"

#define POLICY_LINE_MAX 4096	       /* longest accepted line, in bytes */
#define POLICY_FILE_SIZE_MAX (1 << 20) /* largest accepted policy file */

/* Append one error; section, key may be NULL. Returns 0 or -ENOMEM. */
int policy_errors_add(struct policy_errors *errors, const char *file, unsigned line,
		      const char *section, const char *key, const char *fmt, ...) _printf_(6, 7);

/* Line where Section.Key was (first) set in the policy's file, or 0. */
unsigned policy_key_line(const struct policy *policy, const char *section, const char *key);
/* Line of the first [Section] header, or 0. */
unsigned policy_section_line(const struct policy *policy, const char *section);

/* Checks of one parsed policy that span keys (policy_validate.c). Appends
 * errors; returns 0 or -ENOMEM. */
int policy_validate(struct policy *policy, struct policy_errors *errors);
