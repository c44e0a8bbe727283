/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmRelay: the ciphertext relay behind GET /v1/mesh/relay/{peerId}/stream
 * (docs/PROTOCOL.md, "Relay"). Two devices of one account each open a
 * WebSocket for the other; the relay pairs them and pipes binary messages
 * between them unchanged. It never looks at, logs or stores payload bytes.
 *
 * The relay knows nothing of HTTP routing, tokens or the store: the API layer
 * authenticates the device, checks that the peer is a live device of the same
 * account, then hands the request to pm_relay_accept().
 */

#include <libsoup/soup.h>
#include <stdint.h>

G_BEGIN_DECLS

/* --- Defaults: every relay limit and timer in one place ------------------- */

/* Largest relayed message (whole, or assembled from fragments). */
#define PM_RELAY_MAX_MESSAGE_SIZE (64 * 1024)
/* Payload bytes that may wait in the server's send queue towards one
 * connection before the relay stops reading from the connection feeding it;
 * it reads again once the queue is down to half of this. */
#define PM_RELAY_QUEUE_HIGH_WATER (256 * 1024)
/* Per-account token bucket: sustained bytes per second and burst size. */
#define PM_RELAY_ACCOUNT_BYTES_PER_S (G_GUINT64_CONSTANT (8) * 1024 * 1024)
#define PM_RELAY_ACCOUNT_BURST_BYTES (G_GUINT64_CONSTANT (16) * 1024 * 1024)
/* Relay sessions (waiting or paired device pairs) per account. */
#define PM_RELAY_MAX_SESSIONS_PER_ACCOUNT 32
/* How long the first side waits for the second. */
#define PM_RELAY_WAIT_TIMEOUT_US (G_GINT64_CONSTANT (30) * G_USEC_PER_SEC)
/* A paired session with no data either way for this long is torn down. */
#define PM_RELAY_IDLE_TIMEOUT_US (G_GINT64_CONSTANT (4) * 3600 * G_USEC_PER_SEC)
/* WebSocket ping interval; a connection that sends nothing at all (not even
 * the pongs) for PM_RELAY_DEAD_AFTER_PINGS intervals is closed as dead. */
#define PM_RELAY_KEEPALIVE_INTERVAL_S 30
#define PM_RELAY_DEAD_AFTER_PINGS     3
/* glibc allocator settings for the process the relay runs in (set by
 * pm_relay_tune_allocator(), which pipermesh-server serve calls from main()). For each 64 KiB message libsoup allocates and
 * frees two 128 KiB buffers (GByteArray rounds 64 KiB + a header up to a power
 * of two). With glibc's defaults each of them goes back to the kernel when
 * freed (munmap, or a heap trim) and returns as fresh pages that fault in
 * zeroed: in relay-bench runs where that happened the relay spent ~40% more
 * CPU per byte. Blocks under the mmap threshold come from the heap, and up to
 * the trim threshold of free heap top is kept for reuse, not handed back. */
#define PM_RELAY_MALLOC_MMAP_THRESHOLD (1024 * 1024)
#define PM_RELAY_MALLOC_TRIM_THRESHOLD (4 * 1024 * 1024)

/* --- Close codes (RFC 6455 §7.4; 4000-4999 are ours) ---------------------- */

#define PM_RELAY_CLOSE_UNSUPPORTED_DATA 1003 /* a text message */
#define PM_RELAY_CLOSE_TOO_BIG          1009 /* message over the size limit */
#define PM_RELAY_CLOSE_IDLE             4000 /* no data for the idle timeout */
#define PM_RELAY_CLOSE_DEAD             4001 /* no pong or data for several pings */
#define PM_RELAY_CLOSE_BAD_REQUEST      4400 /* device and peer are the same */
#define PM_RELAY_CLOSE_CROSS_ACCOUNT    4403 /* the peer's side is another account */
#define PM_RELAY_CLOSE_WAIT_TIMEOUT     4408 /* peer did not connect in time */
#define PM_RELAY_CLOSE_REPLACED         4409 /* replaced by a newer connection */
#define PM_RELAY_CLOSE_REVOKED          4410 /* a device of the pair was revoked */
#define PM_RELAY_CLOSE_SESSION_LIMIT    4429 /* too many relay sessions for the account */
#define PM_RELAY_CLOSE_SHUTDOWN         1001 /* the relay is going away */

/**
 * PmRelayLimits:
 * Start from pm_relay_limits_default() (the constants above) and override.
 * Zero for account_bytes_per_s, max_sessions_per_account, idle_timeout_us or
 * keepalive_interval_s switches that limit off.
 */
typedef struct {
  size_t   max_message_size;
  size_t   queue_high_water;
  uint64_t account_bytes_per_s;
  uint64_t account_burst_bytes;
  unsigned max_sessions_per_account;
  int64_t  wait_timeout_us;
  int64_t  idle_timeout_us;
  unsigned keepalive_interval_s;
  unsigned dead_after_pings;
} PmRelayLimits;

void pm_relay_limits_default (PmRelayLimits *limits);

/* Why the relay closed a connection (refused it or tore it down). */
typedef enum {
  PM_RELAY_REASON_CROSS_ACCOUNT,
  PM_RELAY_REASON_SESSION_LIMIT,
  PM_RELAY_REASON_WAIT_TIMEOUT,
  PM_RELAY_REASON_REPLACED,
  PM_RELAY_REASON_TOO_BIG,
  PM_RELAY_REASON_TEXT,
  PM_RELAY_REASON_IDLE,
  PM_RELAY_REASON_DEAD,
  PM_RELAY_REASON_REVOKED,
  PM_RELAY_REASON_BAD_REQUEST,
  PM_RELAY_N_REASONS
} PmRelayReason;

const char *pm_relay_reason_to_string (PmRelayReason reason);

typedef struct {
  unsigned sessions_waiting; /* one side connected */
  unsigned sessions_active;  /* both sides connected */
  unsigned connections;      /* open WebSockets, including ones closing */
  uint64_t bytes_relayed;    /* payload bytes forwarded */
  uint64_t messages_relayed;
  uint64_t bytes_dropped;       /* payload that arrived while the peer was away */
  uint64_t backpressure_pauses; /* times a sender was paused for a full queue */
  uint64_t rate_pauses;         /* times a sender was paused by its account's bucket */
  uint64_t closed[PM_RELAY_N_REASONS];
} PmRelayStats;

#define PM_TYPE_RELAY (pm_relay_get_type ())
G_DECLARE_FINAL_TYPE (PmRelay, pm_relay, PM, RELAY, GObject)

PmRelay *pm_relay_new (const PmRelayLimits *limits);
void     pm_relay_tune_allocator (void);

gboolean pm_relay_accept (PmRelay           *relay,
                          SoupServerMessage *msg,
                          const char        *account_id,
                          const char        *device_id,
                          const char        *peer_id);

void pm_relay_close_device (PmRelay    *relay,
                            const char *device_id);

void pm_relay_get_stats (PmRelay      *relay,
                         PmRelayStats *stats);

G_END_DECLS
