/* SPDX-License-Identifier: MIT */
/* Instance numbers (SERVICE-N, link mtdiN) that are never used twice on a
 * host, across restarts of the agent: a restarted agent that started again
 * at web-1 could not quarantine its new web-1 while the old web-1's evidence
 * was kept ("File exists"), and that incident's evidence was lost.
 *
 * Numbers are handed out from a block reserved on disk before its first
 * number is used (STATE_DIR/instance-ids holds the block's end, written with
 * fsync and rename), so a launch writes nothing and a killed agent's
 * successor starts above every number it could have used. A state
 * directory without the file (first start) starts above every SERVICE-N kept
 * in STATE_DIR/quarantine. */
#pragma once

#include <stdint.h>

#define INSTANCE_IDS_BLOCK 1024

struct instance_ids;

int instance_ids_open(const char *state_dir, struct instance_ids **ret_ids);

/* The next number; reserves the following block first when this one is
 * spent (the only call that writes). */
int instance_ids_next(struct instance_ids *ids, uint64_t *ret_number);

void instance_ids_free(struct instance_ids *ids);
