/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-keypair.h"
#include "pm-limits.h"

G_BEGIN_DECLS

#define PM_SESSION_ERROR (pm_session_error_quark ())

typedef enum {
  PM_SESSION_ERROR_UNKNOWN_INDEX,    /* no live key pair has this receiver index */
  PM_SESSION_ERROR_REPLAY,           /* counter already seen, or older than the window */
  PM_SESSION_ERROR_STALE_EPOCH,      /* key epoch no longer (or not yet) held */
  PM_SESSION_ERROR_UNKNOWN_PEER,     /* handshake from a static key that is not this peer's */
  PM_SESSION_ERROR_HANDSHAKE_REPLAY, /* IK timestamp not newer than the last accepted one */
  PM_SESSION_ERROR_UNEXPECTED,       /* a response to no handshake of ours, or a bad payload */
  PM_SESSION_ERROR_QUEUE_FULL,       /* too many messages waiting for a key */
  PM_SESSION_ERROR_TOO_LARGE,        /* message over PM_MAX_PLAINTEXT */
} PmSessionError;

GQuark pm_session_error_quark (void);

/**
 * PmSessionLimits:
 * The rotation thresholds and timers of one session. Start from
 * pm_session_limits_default() (the constants of pm-limits.h) and shrink them
 * in tests to force rotations quickly. Times are in microseconds.
 */
typedef struct {
  uint64_t messages_per_epoch;
  unsigned epochs_per_session;
  unsigned reject_after_epochs;
  int64_t  lifetime_us;
  int64_t  reject_after_us;
  int64_t  previous_keys_grace_us;
  int64_t  handshake_retry_us;
  int64_t  handshake_give_up_us;
  unsigned send_queue_max;
} PmSessionLimits;

void pm_session_limits_default (PmSessionLimits *limits);

typedef struct {
  uint64_t tx_messages, rx_messages;
  uint64_t tx_bytes, rx_bytes; /* plaintext bytes */
  unsigned handshakes;         /* completed, either role */
  unsigned rotations;          /* handshakes that replaced a live key pair */
  unsigned epochs;             /* Rekey() steps taken, both directions */
  uint64_t rejected;           /* datagrams refused: replay, bad tag, stale, ... */
  int64_t  last_handshake_us;  /* the `now` of the last completed handshake, 0 if none */
} PmSessionStats;

typedef enum {
  PM_SESSION_IDLE,        /* no keys, no handshake under way */
  PM_SESSION_HANDSHAKING, /* no usable keys yet, handshake under way */
  PM_SESSION_ESTABLISHED, /* messages can be sent */
} PmSessionState;

/**
 * PmSession:
 * The Noise_IK session between this device and one peer, over an unreliable,
 * reordering datagram path (UDP or the relay). Sans-IO: it never touches a
 * socket or a clock. The owner feeds it datagrams and the current monotonic
 * time, and it calls back to emit datagrams and deliver plaintext. It runs the
 * handshakes, key epochs and rotations of docs/PROTOCOL.md, and holds messages
 * in a bounded queue while no key may send, so a rotation loses nothing.
 *
 * Callbacks run synchronously from inside pm_session_*() calls; they must not
 * free the session.
 */
typedef struct _PmSession PmSession;

typedef void (*PmSessionOutputFunc) (const uint8_t *datagram,
                                     size_t         len,
                                     gpointer       user_data);
typedef void (*PmSessionDeliverFunc) (const uint8_t *data,
                                      size_t         len,
                                      gpointer       user_data);

PmSession *pm_session_new (const PmKeypair       *local_static,
                           const uint8_t          remote_static[PM_KEY_LEN],
                           const PmSessionLimits *limits);
void       pm_session_free (PmSession *session);
void       pm_session_set_callbacks (PmSession           *session,
                                     PmSessionOutputFunc  output,
                                     PmSessionDeliverFunc deliver,
                                     gpointer             user_data);

void     pm_session_connect (PmSession *session,
                             int64_t    now_us);
gboolean pm_session_send (PmSession     *session,
                          const uint8_t *data,
                          size_t         len,
                          int64_t        now_us,
                          GError       **error);
gboolean pm_session_receive (PmSession     *session,
                             const uint8_t *datagram,
                             size_t         len,
                             int64_t        now_us,
                             GError       **error);
void     pm_session_tick (PmSession *session,
                          int64_t    now_us);
int64_t  pm_session_get_next_deadline (PmSession *session);

PmSessionState pm_session_get_state (PmSession *session);
const uint8_t *pm_session_get_remote_static (PmSession *session);
gboolean       pm_session_get_handshake_hash (PmSession *session,
                                              uint8_t    hash[32]);
void           pm_session_get_stats (PmSession      *session,
                                     PmSessionStats *stats);
unsigned       pm_session_get_queue_length (PmSession *session);
void           pm_session_get_last_timestamp (PmSession *session,
                                              uint8_t    timestamp[12]);
void           pm_session_set_last_timestamp (PmSession    *session,
                                              const uint8_t timestamp[12]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmSession, pm_session_free)

G_END_DECLS
