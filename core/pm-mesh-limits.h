/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Timers and limits of the mesh layer (UDP socket, STUN client, paths), kept
 * apart from the transport's core/pm-limits.h. Objects that use them take a
 * limits struct whose defaults are these (PmUdpSocketLimits in
 * pm-udp-socket.h), so tests can shorten the timers.
 */

#include "pm-limits.h"

/* --- UDP socket ------------------------------------------------------------- */

/* Datagrams read per wake-up of the socket before yielding to the main loop. */
#define PM_UDP_READ_BURST 64
/* Receive buffer: larger than any UDP payload (65507 bytes over IPv4, 65527
 * over IPv6 without jumbograms), so a datagram is never truncated. */
#define PM_UDP_RECV_BUFFER_LEN 65536

/* --- STUN client (RFC 8489 §6.2.1) ------------------------------------------ */

/* First retransmission timeout; it doubles after every transmission. RFC 8489
 * recommends 500 ms for unknown paths; our STUN servers are one round trip
 * away and a netcheck must answer quickly, so 250 ms, as Tailscale does. */
#define PM_STUN_RTO_MS 250
/* Transmissions of one request (the first one included). After the last one
 * the client waits one more doubled RTO, then gives up: 250 + 500 + 1000 +
 * 2000 ms = 3.75 s in all (RFC 8489's Rc = 7, Rm = 16 would take 39.5 s). */
#define PM_STUN_MAX_TRANSMISSIONS 4

/* --- Coordination client ---------------------------------------------------- */

/* Largest response body read; a larger one is refused (INVALID_RESPONSE). */
#define PM_COORD_CLIENT_MAX_RESPONSE_SIZE (1024 * 1024)
/* Most devices accepted in one listing. */
#define PM_COORD_CLIENT_MAX_DEVICES 1024
/* Most candidate addresses per device (the server's PM_COORD_MAX_ADDRESSES). */
#define PM_COORD_CLIENT_MAX_ADDRESSES 16
/* Deepest JSON nesting accepted (a listing needs 5); checked before parsing. */
#define PM_COORD_CLIENT_MAX_JSON_DEPTH 16
/* Socket I/O timeout of the session. Above the server's wake long-poll timeout
 * (PM_COORD_WAKE_TIMEOUT_US, 25 s) so a held poll is never cut short. */
#define PM_COORD_CLIENT_TIMEOUT_S 40
/* Longest bearer token and Retry-After accepted. */
#define PM_COORD_CLIENT_MAX_TOKEN_LEN   128
#define PM_COORD_CLIENT_MAX_RETRY_AFTER 3600

/* --- Relay client ------------------------------------------------------------- */

/* Largest message the relay carries (server/pm-relay.h,
 * PM_RELAY_MAX_MESSAGE_SIZE): larger frames are refused locally, and larger
 * incoming messages close the connection (1009). This is 15 bytes below
 * PM_DATA_FRAME_MAX_LEN, so over the relay a data frame carries at most
 * PM_RELAY_CLIENT_MAX_FRAME_LEN - 32 = 65504 plaintext bytes. */
#define PM_RELAY_CLIENT_MAX_FRAME_LEN (64 * 1024)
/* WebSocket ping interval; a connection from which nothing at all arrives
 * (data, pings or pongs) for PM_RELAY_CLIENT_DEAD_AFTER_PINGS intervals is
 * closed as dead. The relay itself pings every 30 s. */
#define PM_RELAY_CLIENT_KEEPALIVE_INTERVAL_S 20
#define PM_RELAY_CLIENT_DEAD_AFTER_PINGS     3
