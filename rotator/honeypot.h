/* SPDX-License-Identifier: MIT */
/*
 * The honeypot listener that makes TCP decoys look open. With
 * rotator_config.honeypot_port set, the table blocks and logs a source that
 * touches a TCP decoy and then redirects that SYN to this listener on the
 * same host, so the scanner gets a SYN-ACK (the port looks open) instead of
 * silence. The listener holds no data and serves nothing: the caller drains
 * it with rotator_honeypot_accept_all(), which closes every connection at
 * once. The table drops any traffic to the port that did not come through the
 * redirect, so the listener is not a service of its own.
 */
#pragma once

#include <stdint.h>

struct rotator_honeypot;

/* A dual-stack TCP listener on [::]:port (IPV6_V6ONLY off; IPv4 clients
 * arrive as v4-mapped). Non-blocking, close-on-exec. port != 0. */
int rotator_honeypot_open(uint16_t port, struct rotator_honeypot **ret);
void rotator_honeypot_free(struct rotator_honeypot *h);

/* For the caller's event loop: readable when connections are pending. */
int rotator_honeypot_fd(const struct rotator_honeypot *h);

/* Accept every pending connection and close it at once (with a reset, so
 * nothing lingers). Returns how many were closed (0 if none), or a negative
 * errno for an error other than "nothing pending". */
int rotator_honeypot_accept_all(struct rotator_honeypot *h);
