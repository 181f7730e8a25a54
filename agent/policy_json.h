/* SPDX-License-Identifier: MIT */
/* JSON rendering of a parsed policy (for `mtdctl policy show`). */
#pragma once

#include <jansson.h>

#include "policy.h"

/* A new reference to an object with "path", "service", "rotation" and
 * "envelope" members; every key of the file appears, defaults included. Time
 * spans appear twice: "interval": "1min" and "interval_usec": 60000000; sizes
 * as "memory_max": "256M" and "memory_max_bytes". NULL on allocation failure. */
json_t *policy_to_json(const struct policy *policy);
