/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-session"

#include "pm-session.h"

#include <sodium.h>
#include <string.h>

#include "pm-cipher-state.h"
#include "pm-frame.h"
#include "pm-handshake-state.h"
#include "pm-replay.h"

#define PROTOCOL_IK "Noise_IK_25519_ChaChaPoly_BLAKE2s"
/* Binds every session handshake to this protocol and version (docs/PROTOCOL.md). */
static const uint8_t prologue[] = "pipermesh/1 session";

G_DEFINE_QUARK (pm-session-error-quark, pm_session_error)

/* The keys of one completed handshake. Each direction moves through epochs
 * on its own; the receive side keeps the previous epoch's key too, so
 * reordered packets from just before a Rekey() still decrypt. */
typedef struct {
  uint32_t       local_index, remote_index;
  PmCipherState *send;
  PmCipherState *recv;      /* epoch recv_epoch */
  PmCipherState *recv_prev; /* epoch recv_epoch - 1, or NULL */
  unsigned       send_epoch, recv_epoch;
  uint64_t       send_counter, sent_in_epoch;
  PmReplayWindow replay;
  int64_t        created_us, retired_us;
  gboolean       we_initiated;
  uint8_t        hash[PM_NOISE_HASHLEN];
} Keypair;

struct _PmSession {
  PmKeypair       local;
  uint8_t         remote[PM_KEY_LEN];
  PmSessionLimits limits;

  PmSessionOutputFunc  output;
  PmSessionDeliverFunc deliver;
  gpointer             user_data;

  Keypair *current;  /* sends and receives */
  Keypair *previous; /* receives only, until its grace period ends */
  Keypair *next;     /* responder side, waiting for the initiator's first message */

  PmHandshakeState *hs; /* our own initiation, waiting for a response */
  uint32_t          hs_index;
  gboolean          want_handshake;
  int64_t           hs_sent_us, hs_first_us;

  uint8_t last_rx_timestamp[PM_IK_TIMESTAMP_LEN];
  uint8_t last_tx_timestamp[PM_IK_TIMESTAMP_LEN];

  GQueue         queue; /* GBytes waiting for a key pair that may send */
  PmSessionStats stats;

  uint8_t out[PM_DATA_FRAME_MAX_LEN];
  uint8_t plain[PM_MAX_NOISE_MESSAGE];
};

void
pm_session_limits_default (PmSessionLimits *limits)
{
  *limits = (PmSessionLimits){
    .messages_per_epoch = PM_MESSAGES_PER_EPOCH,
    .epochs_per_session = PM_EPOCHS_PER_SESSION,
    .reject_after_epochs = PM_REJECT_AFTER_EPOCHS,
    .lifetime_us = PM_SESSION_LIFETIME_US,
    .reject_after_us = PM_REJECT_AFTER_US,
    .previous_keys_grace_us = PM_PREVIOUS_KEYS_GRACE_US,
    .handshake_retry_us = PM_HANDSHAKE_RETRY_US,
    .handshake_give_up_us = PM_HANDSHAKE_GIVE_UP_US,
    .send_queue_max = PM_SEND_QUEUE_MAX,
  };
}

static void
keypair_free (Keypair *kp)
{
  if (kp == NULL)
    return;
  pm_cipher_state_free (kp->send);
  pm_cipher_state_free (kp->recv);
  pm_cipher_state_free (kp->recv_prev);
  sodium_memzero (kp, sizeof *kp);
  g_free (kp);
}

PmSession *
pm_session_new (const PmKeypair       *local_static,
                const uint8_t          remote_static[PM_KEY_LEN],
                const PmSessionLimits *limits)
{
  PmSession *session;

  g_return_val_if_fail (local_static != NULL, NULL);
  g_return_val_if_fail (remote_static != NULL, NULL);

  pm_noise_ensure_init ();
  session = g_new0 (PmSession, 1);
  session->local = *local_static;
  memcpy (session->remote, remote_static, PM_KEY_LEN);
  if (limits != NULL)
    session->limits = *limits;
  else
    pm_session_limits_default (&session->limits);

  /* Keep the thresholds inside what the wire format can express. */
  session->limits.messages_per_epoch = MAX (session->limits.messages_per_epoch, 1);
  session->limits.reject_after_epochs = CLAMP (session->limits.reject_after_epochs, 2, PM_MAX_EPOCHS);
  session->limits.epochs_per_session =
    CLAMP (session->limits.epochs_per_session, 1, session->limits.reject_after_epochs - 1);
  session->limits.reject_after_us = MAX (session->limits.reject_after_us, session->limits.lifetime_us);
  g_queue_init (&session->queue);
  return session;
}

void
pm_session_free (PmSession *session)
{
  if (session == NULL)
    return;
  keypair_free (session->current);
  keypair_free (session->previous);
  keypair_free (session->next);
  pm_handshake_state_free (session->hs);
  g_queue_clear_full (&session->queue, (GDestroyNotify) g_bytes_unref);
  sodium_memzero (session, sizeof *session);
  g_free (session);
}

void
pm_session_set_callbacks (PmSession           *session,
                          PmSessionOutputFunc  output,
                          PmSessionDeliverFunc deliver,
                          gpointer             user_data)
{
  session->output = output;
  session->deliver = deliver;
  session->user_data = user_data;
}

static void
emit (PmSession     *session,
      const uint8_t *datagram,
      size_t         len)
{
  if (session->output != NULL)
    session->output (datagram, len, session->user_data);
}

/* A random receiver index not used by any of our live key pairs. */
static uint32_t
new_index (PmSession *session)
{
  for (;;)
    {
      uint32_t index = randombytes_random ();

      if ((session->current == NULL || session->current->local_index != index) &&
          (session->previous == NULL || session->previous->local_index != index) &&
          (session->next == NULL || session->next->local_index != index) &&
          (session->hs == NULL || session->hs_index != index))
        return index;
    }
}

/* TAI64N of the wall clock, forced to grow strictly even if the clock steps
 * back, so that every initiation we send is newer than the last. */
static void
next_timestamp (PmSession *session,
                uint8_t    out[PM_IK_TIMESTAMP_LEN])
{
  int64_t  now = g_get_real_time ();
  uint64_t secs = (G_GUINT64_CONSTANT (1) << 62) + (uint64_t) (now / G_USEC_PER_SEC);
  uint32_t nanos = (uint32_t) (now % G_USEC_PER_SEC) * 1000;

  for (int i = 0; i < 8; i++)
    out[i] = (uint8_t) (secs >> (56 - 8 * i));
  for (int i = 0; i < 4; i++)
    out[8 + i] = (uint8_t) (nanos >> (24 - 8 * i));

  if (memcmp (out, session->last_tx_timestamp, PM_IK_TIMESTAMP_LEN) <= 0)
    {
      /* last + 1 ns, as a big-endian 96-bit increment (nanos never reach 10^9 here
       * in practice; a carry into the seconds is still ordered correctly). */
      memcpy (out, session->last_tx_timestamp, PM_IK_TIMESTAMP_LEN);
      for (int i = PM_IK_TIMESTAMP_LEN - 1; i >= 0 && ++out[i] == 0; i--)
        ;
    }
  memcpy (session->last_tx_timestamp, out, PM_IK_TIMESTAMP_LEN);
}

static PmHandshakeState *
new_handshake (PmSession *session,
               PmRole     role)
{
  g_autoptr (PmHandshakeState) hs = pm_handshake_state_new (PROTOCOL_IK, role, NULL);

  g_assert (hs != NULL);
  pm_handshake_state_set_prologue (hs, prologue, sizeof prologue - 1);
  pm_handshake_state_set_local_static (hs, &session->local);
  if (role == PM_ROLE_INITIATOR)
    pm_handshake_state_set_remote_static (hs, session->remote);
  if (!pm_handshake_state_start (hs, NULL))
    g_assert_not_reached ();
  return g_steal_pointer (&hs);
}

/* Sends a fresh initiation: new ephemeral, new timestamp, new index. */
static void
initiate (PmSession *session,
          int64_t    now)
{
  uint8_t timestamp[PM_IK_TIMESTAMP_LEN];
  size_t  len = 0;
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&session->hs, pm_handshake_state_free);
  session->hs = new_handshake (session, PM_ROLE_INITIATOR);
  session->hs_index = new_index (session);
  if (!session->want_handshake)
    session->hs_first_us = now;
  session->want_handshake = TRUE;
  session->hs_sent_us = now;

  next_timestamp (session, timestamp);
  pm_frame_write_init_header (session->out, session->hs_index);
  if (!pm_handshake_state_write_message (session->hs, timestamp, sizeof timestamp,
                                         session->out + PM_INIT_HEADER_LEN, PM_IK_MSG1_LEN, &len,
                                         &error))
    g_error ("Cannot write a handshake initiation: %s", error->message);
  g_assert (len == PM_IK_MSG1_LEN);
  g_debug ("Sending handshake initiation, index %08x", session->hs_index);
  emit (session, session->out, PM_INIT_FRAME_LEN);
}

static Keypair *
keypair_from_handshake (PmSession        *session,
                        PmHandshakeState *hs,
                        uint32_t          local_index,
                        uint32_t          remote_index,
                        int64_t           now)
{
  Keypair *kp = g_new0 (Keypair, 1);

  if (!pm_handshake_state_split (hs, &kp->send, &kp->recv, NULL))
    g_assert_not_reached ();
  memcpy (kp->hash, pm_handshake_state_get_handshake_hash (hs), PM_NOISE_HASHLEN);
  kp->local_index = local_index;
  kp->remote_index = remote_index;
  kp->created_us = now;
  kp->we_initiated = pm_handshake_state_get_role (hs) == PM_ROLE_INITIATOR;
  pm_replay_window_init (&kp->replay);
  return kp;
}

/* Makes @kp the sending key pair; the old one keeps receiving for a grace period. */
static void
install_current (PmSession *session,
                 Keypair   *kp,
                 int64_t    now)
{
  if (session->current != NULL)
    {
      keypair_free (session->previous);
      session->previous = session->current;
      session->previous->retired_us = now;
      session->stats.rotations++;
    }
  session->current = kp;
  session->stats.handshakes++;
  session->stats.last_handshake_us = now;
  g_debug ("Key pair %08x is now current (%u handshakes, %u rotations)", kp->local_index,
           session->stats.handshakes, session->stats.rotations);
}

static gboolean
may_send (PmSession *session,
          Keypair   *kp,
          int64_t    now)
{
  return kp != NULL && kp->send_epoch < session->limits.reject_after_epochs &&
         now - kp->created_us < session->limits.reject_after_us;
}

static void
seal_and_emit (PmSession     *session,
               Keypair       *kp,
               const uint8_t *data,
               size_t         len)
{
  g_autoptr (GError) error = NULL;

  pm_frame_write_data_header (session->out, (uint8_t) kp->send_epoch, kp->remote_index,
                              kp->send_counter);
  if (!pm_cipher_state_seal (kp->send, kp->send_counter, session->out, PM_DATA_HEADER_LEN, data,
                             len, session->out + PM_DATA_HEADER_LEN, &error))
    g_error ("Encryption failed: %s", error->message);
  emit (session, session->out, PM_DATA_HEADER_LEN + len + PM_NOISE_TAGLEN);

  kp->send_counter++;
  session->stats.tx_messages++;
  session->stats.tx_bytes += len;
  if (++kp->sent_in_epoch >= session->limits.messages_per_epoch)
    {
      pm_cipher_state_rekey (kp->send);
      kp->send_epoch++;
      kp->sent_in_epoch = 0;
      session->stats.epochs++;
    }
}

/* Starts a rotation when the current key pair has had its epochs or its time. */
static void
maybe_rotate (PmSession *session,
              int64_t    now)
{
  Keypair *kp = session->current;

  if (kp == NULL || session->want_handshake)
    return;
  /* We answered the peer's initiation and wait for its first message on the
   * new keys: the rotation is already under way, unless that takes too long. */
  if (session->next != NULL && now - session->next->created_us < session->limits.handshake_retry_us)
    return;
  if (kp->send_epoch >= session->limits.epochs_per_session ||
      now - kp->created_us >= session->limits.lifetime_us)
    {
      g_debug ("Rotating key pair %08x (epoch %u, age %" G_GINT64_FORMAT " ms)", kp->local_index,
               kp->send_epoch, (now - kp->created_us) / 1000);
      initiate (session, now);
    }
}

static void
flush_queue (PmSession *session,
             int64_t    now)
{
  while (!g_queue_is_empty (&session->queue) && may_send (session, session->current, now))
    {
      g_autoptr (GBytes) bytes = g_queue_pop_head (&session->queue);
      gsize          len = 0;
      const uint8_t *data = g_bytes_get_data (bytes, &len);

      seal_and_emit (session, session->current, data, len);
      maybe_rotate (session, now);
    }
}

/* Starts the first handshake if there is no key pair and none is under way. */
void
pm_session_connect (PmSession *session,
                    int64_t    now_us)
{
  g_return_if_fail (session != NULL);

  if (!may_send (session, session->current, now_us) && !session->want_handshake)
    initiate (session, now_us);
}

/**
 * pm_session_send:
 * Encrypts @data (at most PM_MAX_PLAINTEXT bytes; zero bytes is a keepalive)
 * and emits it as one data frame, or queues it while no key pair may send,
 * starting a handshake if none is under way.
 */
gboolean
pm_session_send (PmSession     *session,
                 const uint8_t *data,
                 size_t         len,
                 int64_t        now_us,
                 GError       **error)
{
  g_return_val_if_fail (session != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (len > PM_MAX_PLAINTEXT)
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_TOO_LARGE,
                   "A message of %zu bytes is over the %d-byte limit", len, PM_MAX_PLAINTEXT);
      return FALSE;
    }

  if (g_queue_is_empty (&session->queue) && may_send (session, session->current, now_us))
    {
      seal_and_emit (session, session->current, data, len);
      maybe_rotate (session, now_us);
      return TRUE;
    }

  if (g_queue_get_length (&session->queue) >= session->limits.send_queue_max)
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_QUEUE_FULL,
                   "%u messages are already waiting for the handshake with this peer",
                   session->limits.send_queue_max);
      return FALSE;
    }
  g_queue_push_tail (&session->queue, g_bytes_new (data, len));
  if (!session->want_handshake)
    initiate (session, now_us);
  flush_queue (session, now_us);
  return TRUE;
}

static gboolean
handle_initiation (PmSession     *session,
                   const PmFrame *frame,
                   int64_t        now,
                   GError       **error)
{
  g_autoptr (PmHandshakeState) hs = new_handshake (session, PM_ROLE_RESPONDER);
  uint8_t  timestamp[PM_IK_TIMESTAMP_LEN + 1];
  uint8_t  remote[PM_KEY_LEN];
  size_t   plen = 0, len = 0;
  uint32_t index;

  if (!pm_handshake_state_read_message (hs, frame->body, frame->body_len, timestamp,
                                        sizeof timestamp, &plen, error))
    return FALSE;
  if (plen != PM_IK_TIMESTAMP_LEN)
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNEXPECTED,
                   "Handshake initiation carries %zu payload bytes instead of a timestamp", plen);
      return FALSE;
    }
  if (!pm_handshake_state_get_remote_static (hs, remote) ||
      sodium_memcmp (remote, session->remote, PM_KEY_LEN) != 0)
    {
      g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_PEER,
                           "Handshake initiation from a static key that is not this peer's");
      return FALSE;
    }
  if (memcmp (timestamp, session->last_rx_timestamp, PM_IK_TIMESTAMP_LEN) <= 0)
    {
      g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_HANDSHAKE_REPLAY,
                           "Handshake initiation replayed: its timestamp is not newer than the last one accepted");
      return FALSE;
    }

  /* Both sides initiated at once: the side with the lower public key keeps its own. */
  if (session->hs != NULL && memcmp (session->local.pub, session->remote, PM_KEY_LEN) < 0)
    {
      g_debug ("Simultaneous initiation; ours takes precedence");
      return TRUE;
    }

  index = new_index (session);
  pm_frame_write_response_header (session->out, index, frame->sender_index);
  if (!pm_handshake_state_write_message (hs, NULL, 0, session->out + PM_RESPONSE_HEADER_LEN,
                                         PM_IK_MSG2_LEN, &len, error))
    return FALSE;

  /* Everything checked: commit. */
  memcpy (session->last_rx_timestamp, timestamp, PM_IK_TIMESTAMP_LEN);
  if (session->hs != NULL)
    {
      g_clear_pointer (&session->hs, pm_handshake_state_free);
      session->want_handshake = FALSE;
    }
  keypair_free (session->next);
  session->next = keypair_from_handshake (session, hs, index, frame->sender_index, now);
  g_debug ("Answering handshake initiation %08x with index %08x", frame->sender_index, index);
  emit (session, session->out, PM_RESPONSE_FRAME_LEN);
  return TRUE;
}

static gboolean
handle_response (PmSession     *session,
                 const PmFrame *frame,
                 int64_t        now,
                 GError       **error)
{
  uint8_t payload[1];
  size_t  plen = 0;
  g_autoptr (PmHandshakeState) hs = NULL;
  Keypair *kp;

  if (session->hs == NULL || frame->receiver_index != session->hs_index)
    {
      g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNEXPECTED,
                           "Handshake response to no initiation of ours");
      return FALSE;
    }
  /* Read into a copy: anyone who saw our initiation's index can send junk to
   * it, and that must not spend the handshake the genuine response completes. */
  hs = pm_handshake_state_copy (session->hs);
  if (!pm_handshake_state_read_message (hs, frame->body, frame->body_len, payload, sizeof payload,
                                        &plen, error))
    return FALSE;
  if (plen != 0)
    {
      g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNEXPECTED,
                           "Handshake response carries an unexpected payload");
      return FALSE;
    }

  kp = keypair_from_handshake (session, hs, session->hs_index, frame->sender_index, now);
  g_clear_pointer (&session->hs, pm_handshake_state_free);
  session->want_handshake = FALSE;
  install_current (session, kp, now);

  /* The responder may send on these keys only once it hears from us on them. */
  if (g_queue_is_empty (&session->queue))
    seal_and_emit (session, kp, NULL, 0);
  else
    flush_queue (session, now);
  return TRUE;
}

static Keypair *
find_keypair (PmSession *session,
              uint32_t   index)
{
  Keypair *candidates[] = { session->current, session->next, session->previous };

  for (size_t i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != NULL && candidates[i]->local_index == index)
      return candidates[i];
  return NULL;
}

static gboolean
handle_data (PmSession     *session,
             const PmFrame *frame,
             int64_t        now,
             GError       **error)
{
  Keypair *kp = find_keypair (session, frame->receiver_index);
  g_autoptr (PmCipherState) derived = NULL;
  g_autoptr (PmCipherState) derived_prev = NULL;
  PmCipherState *cs;
  size_t         plen = frame->body_len - PM_NOISE_TAGLEN;

  if (kp == NULL)
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_INDEX,
                   "No live key pair has index %08x", frame->receiver_index);
      return FALSE;
    }
  if (!pm_replay_window_check (&kp->replay, frame->counter))
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_REPLAY,
                   "Counter %" G_GUINT64_FORMAT " was already received or is too old",
                   frame->counter);
      return FALSE;
    }

  if (frame->epoch == kp->recv_epoch)
    cs = kp->recv;
  else if ((unsigned) frame->epoch + 1 == kp->recv_epoch && kp->recv_prev != NULL)
    cs = kp->recv_prev;
  else if (frame->epoch > kp->recv_epoch && frame->epoch - kp->recv_epoch <= PM_MAX_EPOCH_SKIP &&
           frame->epoch < session->limits.reject_after_epochs)
    {
      /* Derive forward on copies; commit only if the tag verifies. */
      derived = pm_cipher_state_copy (kp->recv);
      for (unsigned e = kp->recv_epoch; e < frame->epoch; e++)
        {
          if (e + 1 == frame->epoch)
            derived_prev = pm_cipher_state_copy (derived);
          pm_cipher_state_rekey (derived);
        }
      cs = derived;
    }
  else
    {
      g_set_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_STALE_EPOCH,
                   "Key epoch %u is not held (receiving in epoch %u)", frame->epoch, kp->recv_epoch);
      return FALSE;
    }

  if (!pm_cipher_state_open (cs, frame->counter, frame->header, frame->header_len, frame->body,
                             frame->body_len, session->plain, error))
    return FALSE;

  /* Authentic: commit. */
  pm_replay_window_mark (&kp->replay, frame->counter);
  if (derived != NULL)
    {
      session->stats.epochs += frame->epoch - kp->recv_epoch;
      pm_cipher_state_free (kp->recv_prev);
      pm_cipher_state_free (kp->recv);
      kp->recv_prev = g_steal_pointer (&derived_prev);
      kp->recv = g_steal_pointer (&derived);
      kp->recv_epoch = frame->epoch;
    }
  if (kp == session->next)
    {
      session->next = NULL;
      install_current (session, kp, now);
      flush_queue (session, now);
    }
  session->stats.rx_messages++;
  session->stats.rx_bytes += plen;
  if (plen > 0 && session->deliver != NULL)
    session->deliver (session->plain, plen, session->user_data);
  return TRUE;
}

/**
 * pm_session_receive:
 * Handles one datagram from the peer. Returns FALSE with an error when it is
 * refused (malformed, not authentic, replayed, stale); the session is then
 * exactly as it was before the call.
 */
gboolean
pm_session_receive (PmSession     *session,
                    const uint8_t *datagram,
                    size_t         len,
                    int64_t        now_us,
                    GError       **error)
{
  PmFrame  frame;
  gboolean ok = FALSE;

  g_return_val_if_fail (session != NULL, FALSE);

  if (pm_frame_parse (datagram, len, &frame, error))
    {
      switch (frame.type)
        {
        case PM_FRAME_HANDSHAKE_INIT:
          ok = handle_initiation (session, &frame, now_us, error);
          break;
        case PM_FRAME_HANDSHAKE_RESPONSE:
          ok = handle_response (session, &frame, now_us, error);
          break;
        case PM_FRAME_DATA:
        default:
          ok = handle_data (session, &frame, now_us, error);
          break;
        }
    }
  if (!ok)
    session->stats.rejected++;
  else
    maybe_rotate (session, now_us);
  return ok;
}

/**
 * pm_session_tick:
 * Runs the timers: handshake retries and give-up, expiry of old key pairs
 * (their keys are wiped). Call it at pm_session_get_next_deadline().
 */
void
pm_session_tick (PmSession *session,
                 int64_t    now_us)
{
  const PmSessionLimits *l = &session->limits;

  if (session->previous != NULL && now_us - session->previous->retired_us >= l->previous_keys_grace_us)
    g_clear_pointer (&session->previous, keypair_free);
  if (session->current != NULL && now_us - session->current->created_us >= l->reject_after_us)
    g_clear_pointer (&session->current, keypair_free);
  if (session->next != NULL && now_us - session->next->created_us >= l->reject_after_us)
    g_clear_pointer (&session->next, keypair_free);

  if (session->want_handshake)
    {
      if (now_us - session->hs_first_us >= l->handshake_give_up_us)
        {
          g_message ("No handshake response for %" G_GINT64_FORMAT " s; giving up, %u queued messages dropped",
                     l->handshake_give_up_us / G_USEC_PER_SEC, g_queue_get_length (&session->queue));
          g_clear_pointer (&session->hs, pm_handshake_state_free);
          session->want_handshake = FALSE;
          g_queue_clear_full (&session->queue, (GDestroyNotify) g_bytes_unref);
        }
      else if (now_us - session->hs_sent_us >= l->handshake_retry_us)
        initiate (session, now_us);
    }
}

int64_t
pm_session_get_next_deadline (PmSession *session)
{
  const PmSessionLimits *l = &session->limits;
  int64_t                deadline = G_MAXINT64;

  if (session->previous != NULL)
    deadline = MIN (deadline, session->previous->retired_us + l->previous_keys_grace_us);
  if (session->current != NULL)
    deadline = MIN (deadline, session->current->created_us + l->reject_after_us);
  if (session->next != NULL)
    deadline = MIN (deadline, session->next->created_us + l->reject_after_us);
  if (session->want_handshake)
    deadline = MIN (deadline, MIN (session->hs_sent_us + l->handshake_retry_us,
                                   session->hs_first_us + l->handshake_give_up_us));
  return deadline;
}

PmSessionState
pm_session_get_state (PmSession *session)
{
  if (session->current != NULL)
    return PM_SESSION_ESTABLISHED;
  if (session->want_handshake || session->next != NULL)
    return PM_SESSION_HANDSHAKING;
  return PM_SESSION_IDLE;
}

const uint8_t *
pm_session_get_remote_static (PmSession *session)
{
  return session->remote;
}

/* The handshake hash (channel binding) of the current key pair. */
gboolean
pm_session_get_handshake_hash (PmSession *session,
                               uint8_t    hash[32])
{
  if (session->current == NULL)
    return FALSE;
  memcpy (hash, session->current->hash, PM_NOISE_HASHLEN);
  return TRUE;
}

void
pm_session_get_stats (PmSession      *session,
                      PmSessionStats *stats)
{
  *stats = session->stats;
}

unsigned
pm_session_get_queue_length (PmSession *session)
{
  return g_queue_get_length (&session->queue);
}

/* The newest IK timestamp accepted from the peer; persist it with the peer so
 * that an initiation captured before a restart cannot be replayed after it. */
void
pm_session_get_last_timestamp (PmSession *session,
                               uint8_t    timestamp[PM_IK_TIMESTAMP_LEN])
{
  memcpy (timestamp, session->last_rx_timestamp, PM_IK_TIMESTAMP_LEN);
}

void
pm_session_set_last_timestamp (PmSession    *session,
                               const uint8_t timestamp[PM_IK_TIMESTAMP_LEN])
{
  memcpy (session->last_rx_timestamp, timestamp, PM_IK_TIMESTAMP_LEN);
}
