/* SPDX-License-Identifier: MIT */
/* IP forwarding for the instances' links, and nothing more.
 *
 * DNAT to an instance is forwarding, and the kernel decides it on the
 * interface a client's packet arrives on, which can be any: so the switch is
 * the namespace-wide one (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).
 * What that would change beyond the instances is undone around it:
 *  - routing between the host's other interfaces: when a family's forwarding
 *    was off, the rotator's forward guard (rotator_config.forward_guard4/6)
 *    drops every forwarded packet that neither arrives on nor leaves by an
 *    instance link and was not DNATed by the agent;
 *  - IPv6 router advertisements: an interface that forwards ignores them at
 *    accept_ra=1, so every interface (and "default", for interfaces created
 *    later) at 1 is set to 2, which accepts them while forwarding.
 * The settings found are saved (STATE_DIR/forwarding.saved) before anything
 * changes and put back on a clean stop; an agent that was killed finds them
 * there at its next start. */
#pragma once

#include <stdbool.h>

struct forwarding;

/* What the host had: the saved file of a previous run that did not stop
 * cleanly, else the settings now. Changes nothing. */
int forwarding_load(const char *state_dir, struct forwarding **ret_forwarding);

/* Whether the host forwarded this family (AF_INET, AF_INET6) before the agent. */
bool forwarding_was_on(const struct forwarding *forwarding, int family);

/* Save what the host had (fsync'd), then switch forwarding on as above. */
int forwarding_enable(struct forwarding *forwarding);

/* Put back what forwarding_enable changed and remove the saved file. An
 * interface gone meanwhile is skipped; the first other error is returned
 * after everything else was tried. */
int forwarding_restore(struct forwarding *forwarding);

void forwarding_free(struct forwarding *forwarding);
