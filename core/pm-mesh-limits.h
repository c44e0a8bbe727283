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

/* --- Paths (Tailscale's magicsock/disco numbers) ------------------------------ */
/* A trusted direct path is pinged this often; each pong keeps it trusted for
 * PM_PATH_TRUST_US. When the trust runs out the peer falls back to the relay
 * at once (while it keeps pinging the direct path and sending on both, the
 * direct path is "unproven"); after another PM_PATH_TRUST_US without a pong
 * it is dropped. */
#define PM_PATH_HEARTBEAT_US (G_GINT64_CONSTANT (3000) * 1000)
#define PM_PATH_TRUST_US     (G_GINT64_CONSTANT (6500) * 1000)
/* A discovery round pings every candidate PM_PATH_PROBE_COUNT times,
 * PM_PATH_PROBE_INTERVAL_US apart, and sends one call-me-maybe through the
 * relay after the first probes are out. A new round is started at most once per
 * PM_PATH_REPROBE_US while no direct path is trusted (a hopeless upgrade is
 * retried at most once a minute); a network change or a new candidate set
 * starts one at once. */
#define PM_PATH_PROBE_COUNT       5
#define PM_PATH_PROBE_INTERVAL_US (G_GINT64_CONSTANT (200) * 1000)
#define PM_PATH_REPROBE_US        (G_GINT64_CONSTANT (60) * G_USEC_PER_SEC)
/* Hysteresis: a direct path replaces another of the same class only when its
 * round trip is below this fraction of the current one (and at least
 * PM_PATH_SWITCH_MIN_GAIN_US shorter); LAN beats direct beats relay always. */
#define PM_PATH_SWITCH_RATIO       0.7
#define PM_PATH_SWITCH_MIN_GAIN_US 1000
/* Most candidate endpoints kept per peer (from the server, call-me-maybe and
 * addresses authenticated frames came from); the oldest unproven go first. */
#define PM_PATH_MAX_ENDPOINTS 32
/* The relay is pinged this often while it is the path, for its round trip. */
#define PM_PATH_RELAY_PING_US (G_GINT64_CONSTANT (3000) * 1000)

/* --- Mesh --------------------------------------------------------------------- */
/* The device list is fetched again this often (and after every wake). */
#define PM_MESH_DEVICES_REFRESH_US (G_GINT64_CONSTANT (30) * G_USEC_PER_SEC)
/* Candidates are gathered and published again this often, and after every
 * network change. */
#define PM_MESH_CANDIDATES_REFRESH_US (G_GINT64_CONSTANT (5) * 60 * G_USEC_PER_SEC)
/* Relay reconnects back off from the first delay, doubling, to the last. */
#define PM_MESH_RELAY_RETRY_MIN_US (G_GINT64_CONSTANT (500) * 1000)
#define PM_MESH_RELAY_RETRY_MAX_US (G_GINT64_CONSTANT (30) * G_USEC_PER_SEC)
/* A peer that woke us and then sent nothing for this long is let go (its relay
 * closed, its session dropped). */
#define PM_MESH_PEER_IDLE_US (G_GINT64_CONSTANT (5) * 60 * G_USEC_PER_SEC)

/* --- Path discovery messages (core/pm-disco.h) -------------------------------- */
/* Most endpoints one CALL_ME_MAYBE carries (the count is one byte on the wire;
 * a parser refuses more). A device has a handful: its interface addresses and
 * one or two STUN-mapped ones. At 20 bytes per IPv6 endpoint the message stays
 * at 322 bytes, far below any path's MTU. */
#define PM_DISCO_MAX_ENDPOINTS 16

/* --- Streams (usrsctp) ---------------------------------------------------------
 *
 * The reliable stream layer (core/pm-stream-mux.c, docs/PROTOCOL.md §8): one
 * SCTP association (usrsctp over AF_CONN) per peer session, carried one
 * packet per Noise message of type 0x01. PmStreamMuxLimits (pm-stream-mux.h)
 * starts from these, so tests can shrink them.
 */

/* Largest SCTP packet, on every path. Fixed: path MTU discovery is off
 * (SPP_PMTUD_DISABLE), because lowering the MTU of a live usrsctp association
 * stalls it for good. Over UDP a packet costs 1 + 32 more bytes (type byte,
 * data frame header and AEAD tag): 1232 bytes of UDP payload, so the datagram
 * fits an IPv6 minimum-MTU link (1280 - 40 - 8) and anything larger, without
 * fragmentation. */
#define PM_STREAM_MTU 1199
/* The SCTP port of both ends. AF_CONN ports never leave the Noise session. */
#define PM_STREAM_SCTP_PORT 5000
/* usrsctp's timers run from one GLib timeout, only while an association
 * exists: every PM_STREAM_TICK_MS while packets flow or data is unacknowledged,
 * every PM_STREAM_IDLE_TICK_MS once every association has been quiet for
 * PM_STREAM_IDLE_AFTER_MS (only heartbeats are then due, to the second). */
#define PM_STREAM_TICK_MS       10
#define PM_STREAM_IDLE_TICK_MS  250
#define PM_STREAM_IDLE_AFTER_MS 2000
/* After the last association is gone, usrsctp is shut down (usrsctp_finish);
 * if a closed socket still lingers, the timers keep running this long at
 * most while it is retried. */
#define PM_STREAM_FINISH_GRACE_MS 5000
/* Retransmission timeout (SCTP_RTOINFO). A minimum of 200 ms caused spurious
 * timeouts on these machines (the timers tick from a busy main loop), so the
 * minimum stays at RFC 4960's 1 s. The maximum is low so that a path that
 * comes back after an outage is used again within 4 s. */
#define PM_STREAM_RTO_INITIAL_MS 1000
#define PM_STREAM_RTO_MIN_MS     1000
#define PM_STREAM_RTO_MAX_MS     4000
/* Consecutive retransmissions without an acknowledgement before the
 * association fails (1 + 2 + 4 + 27 × 4 s: about two minutes of silence). */
#define PM_STREAM_MAX_RETRANSMISSIONS 30
/* INIT attempts and their largest timeout (both ends start at once; the
 * first attempts may go out before any path is up). */
#define PM_STREAM_INIT_MAX_ATTEMPTS 30
#define PM_STREAM_INIT_RTO_MAX_MS   4000
/* SCTP heartbeat interval on an idle association. */
#define PM_STREAM_HEARTBEAT_MS 30000
/* SCTP streams each way; a stream id is < this. Even ids belong to one end,
 * odd ids to the other, so each end opens at most half of them at once. */
#define PM_STREAM_MAX_STREAMS 1024
/* Per-stream receive window (credit): bytes a sender may have sent beyond
 * what the receiving application has read. The association's receive window
 * is shared by all streams, so each end drains it at once into per-stream
 * buffers of at most this size; a slow reader stalls only its own stream. */
#define PM_STREAM_WINDOW (256 * 1024)
/* A receiver whose application reads a whole window in less than two round
 * trips doubles the window (auto-tuning, as QUIC stacks do), up to this; a
 * slow reader keeps PM_STREAM_WINDOW. 256 KiB alone would cap a stream at
 * 2.6 MB/s over a 100 ms round trip. */
#define PM_STREAM_WINDOW_MAX (4 * 1024 * 1024)
/* Windows a peer may announce (docs/PROTOCOL.md §9); others are refused. */
#define PM_STREAM_MIN_WINDOW 1024
#define PM_STREAM_MAX_WINDOW (1024 * 1024 * 1024)
/* A receiver announces new credit once the application has read this
 * fraction (1/N) of the window since the last announcement. */
#define PM_STREAM_CREDIT_DIVISOR 4
/* Socket buffers of the association (SO_SNDBUF, SO_RCVBUF): enough for
 * ~200 MB/s on loopback and ~40 MB/s at 100 ms of round trip. */
#define PM_STREAM_SEND_BUFFER    (4 * 1024 * 1024)
#define PM_STREAM_RECEIVE_BUFFER (4 * 1024 * 1024)
/* usrsctp's global cap on chunks queued per association (default 512, i.e.
 * ~590 KB of 1200-byte packets, which would cap the buffers above). */
#define PM_STREAM_MAX_CHUNKS_ON_QUEUE 16384
/* Largest DATA message handed to SCTP in one send (SCTP fragments it). */
#define PM_STREAM_MAX_MESSAGE (64 * 1024)
/* Service names (printable ASCII) and refusal/reset reasons (UTF-8), bytes. */
#define PM_STREAM_MAX_SERVICE_LEN 64
#define PM_STREAM_MAX_REASON_LEN  256
/* Packets that arrive before pm_stream_mux_start() are held, up to this many. */
#define PM_STREAM_EARLY_PACKETS 64

/* --- Pairing: the pairing code and its QR code (core/pm-pair-code.h, pm-qr.h) --- */
/* A pairing code (docs/PROTOCOL.md §10) is valid this long after it is made;
 * its token is single-use besides. */
#define PM_PAIR_CODE_LIFETIME_S (10 * 60)
/* Longest pairing code text accepted (bytes); the longest the writer can make
 * (8 full-length IPv6 addresses, a 64-byte name of 3-byte characters) is 798. */
#define PM_PAIR_CODE_MAX_LEN 1024
/* Most "a=" addresses in one code. */
#define PM_PAIR_CODE_MAX_ADDRESSES 8
/* Longest host name in a code, in bytes of UTF-8 (after percent-decoding). */
#define PM_PAIR_CODE_MAX_NAME_LEN 64
/* Largest picture decoded for a QR code (width × height): a 50-megapixel photo;
 * a larger file is refused before its pixels are read. */
#define PM_QR_MAX_IMAGE_PIXELS (50 * 1000 * 1000)
/* A camera that delivers no picture for this long fails the scan. */
#define PM_QR_CAMERA_FRAME_TIMEOUT_MS 5000

/* --- Pairing: the exchange (core/pm-pair-host.h, pm-pair-client.h; PmPairLimits) --- */
/* The client's wait, per address of a code, for TCP, TLS and the WebSocket upgrade. */
#define PM_PAIR_CONNECT_TIMEOUT_S 5
/* Either side's wait for the other's next handshake or confirmation message. */
#define PM_PAIR_MESSAGE_TIMEOUT_S 30
/* How long the host's user has to accept or reject the verification code; the
 * client waits this long plus PM_PAIR_MESSAGE_TIMEOUT_S for the answer. */
#define PM_PAIR_VERIFY_TIMEOUT_S 120
/* Largest WebSocket message of the exchange (the largest real one, message 2, is 165 bytes). */
#define PM_PAIR_MAX_MESSAGE 1024
/* After a pairing ends, how long a side waits for the WebSocket close
 * handshake (which delivers what it queued last) before dropping it. */
#define PM_PAIR_CLOSE_TIMEOUT_MS 2000
/* Requests with a wrong token before the host retires its code. */
#define PM_PAIR_MAX_BAD_TOKENS 10
/* The UDP port `pipermesh up --lan-only` binds unless given --port, and the
 * one a pairing announces by default: a paired device finds the mesh there. */
#define PM_MESH_LAN_PORT 41641
