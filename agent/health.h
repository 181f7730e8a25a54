/* SPDX-License-Identifier: MIT */
/* HealthCheck=tcp: one non-blocking connect to an instance's address and
 * ListenPort, bounded by HealthTimeout=, on the agent's event loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "netdev.h"

struct health_probe;

/* Called once with the outcome; the probe is freed after the call. */
typedef void (*health_done_t)(bool healthy, const char *reason, void *userdata);

int health_probe_start(sd_event *event, const struct netdev_address *address, uint16_t port,
		       uint64_t timeout_usec, health_done_t done, void *userdata,
		       struct health_probe **ret_probe);

/* Cancel without calling done. */
void health_probe_cancel(struct health_probe *probe);
