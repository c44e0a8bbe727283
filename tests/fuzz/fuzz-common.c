/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

#include "fuzz-common.h"

#include <sodium.h>
#include <string.h>

#include "pm-frame.h"
#include "pm-noise.h"

/* --- Deterministic randomness ------------------------------------------------ */

static PmFuzzRng  default_rng;
static PmFuzzRng *current_rng = &default_rng;

/* SplitMix64: tiny, and every seed gives a full-period stream. */
static uint64_t
rng_next (void)
{
  uint64_t z = (current_rng->state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static const char *
rng_name (void)
{
  return "pipermesh-fuzz-splitmix64";
}

static uint32_t
rng_random (void)
{
  return (uint32_t) (rng_next () >> 32);
}

static void
rng_buf (void *const  buf,
         const size_t size)
{
  uint8_t *p = buf;

  for (size_t i = 0; i < size; i += 8)
    {
      uint64_t v = rng_next ();

      memcpy (p + i, &v, MIN (size - i, sizeof v));
    }
}

static randombytes_implementation rng_implementation = {
  .implementation_name = rng_name,
  .random = rng_random,
  .buf = rng_buf,
};

/* Keeps the fuzzer's output readable: only warnings and worse are printed
 * (and they abort, see below). */
static GLogWriterOutput
quiet_writer (GLogLevelFlags   log_level,
              const GLogField *fields,
              gsize            n_fields,
              gpointer         user_data)
{
  if (log_level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return g_log_writer_default (log_level, fields, n_fields, user_data);
  return G_LOG_WRITER_HANDLED;
}

/* Call first, before anything touches libsodium. */
void
pm_fuzz_init (void)
{
  static gboolean done;

  if (done)
    return;
  done = TRUE;
  if (randombytes_set_implementation (&rng_implementation) != 0)
    g_error ("Cannot install the deterministic random source");
  pm_noise_ensure_init ();
  /* A g_return_if_fail() in the library is a bug the fuzzer should report. */
  g_log_set_always_fatal (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  g_log_set_writer_func (quiet_writer, NULL, NULL);
}

void
pm_fuzz_rng_seed (PmFuzzRng *rng,
                  uint64_t   seed)
{
  rng->state = seed;
}

void
pm_fuzz_rng_use (PmFuzzRng *rng)
{
  current_rng = rng;
}

/* --- Deterministic wall clock -------------------------------------------------
 *
 * The session stamps its IK initiations with g_get_real_time(), and the
 * responder's answer is bound to that stamp. This definition takes the place
 * of GLib's for the code linked into the fuzz programs (the static library
 * resolves to it at link time), so an initiation and the response to it are
 * the same bytes on every run: the corpus can answer the session's own
 * handshakes and every crash reproduces. Stamps stay strictly increasing
 * because the session forces them to.
 */
gint64
g_get_real_time (void)
{
  return G_GINT64_CONSTANT (1700000000) * G_USEC_PER_SEC;
}

/* --- Fixed keys ---------------------------------------------------------------- */

void
pm_fuzz_keypair (PmFuzzKey  which,
                 PmKeypair *keypair)
{
  uint8_t priv[PM_KEY_LEN];

  /* Arbitrary constants: private key i is the bytes 0x10·(i+1), 0x10·(i+1)+1, ... */
  for (unsigned i = 0; i < PM_KEY_LEN; i++)
    priv[i] = (uint8_t) (0x10 * ((unsigned) which + 1) + i);
  pm_keypair_from_private (keypair, priv);
  sodium_memzero (priv, sizeof priv);
}

/* --- fuzz-session -------------------------------------------------------------- */

/* The static keys of the session under test (@local) and of its peer. */
void
pm_fuzz_session_keys (uint8_t    flags,
                      PmKeypair *local,
                      PmKeypair *peer)
{
  gboolean swap = (flags & PM_FUZZ_FLAG_SWAP_KEYS) != 0;

  pm_fuzz_keypair (swap ? PM_FUZZ_KEY_B : PM_FUZZ_KEY_A, local);
  pm_fuzz_keypair (swap ? PM_FUZZ_KEY_A : PM_FUZZ_KEY_B, peer);
}

void
pm_fuzz_session_limits (PmSessionLimits *limits)
{
  /* Small enough that a few dozen records reach epochs, rotations, expiry and
   * a full send queue. */
  pm_session_limits_default (limits);
  limits->messages_per_epoch = 3;
  limits->epochs_per_session = 4;
  limits->reject_after_epochs = 6;
  limits->lifetime_us = 4 * G_USEC_PER_SEC;
  limits->reject_after_us = 6 * G_USEC_PER_SEC;
  limits->previous_keys_grace_us = 2 * G_USEC_PER_SEC;
  limits->handshake_retry_us = 1 * G_USEC_PER_SEC;
  limits->handshake_give_up_us = 8 * G_USEC_PER_SEC;
  limits->send_queue_max = PM_FUZZ_SEND_QUEUE_MAX;
}

static void
on_output (const uint8_t *datagram,
           size_t         len,
           gpointer       user_data)
{
  PmFuzzSession *fs = user_data;
  PmFrame        frame;
  g_autoptr (GError) error = NULL;

  /* What we send must be what we would accept to parse. */
  if (!pm_frame_parse (datagram, len, &frame, &error))
    g_error ("The session emitted a frame it cannot parse: %s", error->message);
  g_ptr_array_add (fs->emitted, g_bytes_new (datagram, len));
}

static void
on_deliver (const uint8_t *data,
            size_t         len,
            gpointer       user_data)
{
  PmFuzzSession *fs = user_data;

  g_assert (data != NULL);
  g_assert (len > 0 && len <= PM_MAX_PLAINTEXT);
  fs->delivered++;
}

void
pm_fuzz_session_init (PmFuzzSession *fs,
                      uint8_t        flags)
{
  g_auto (PmKeypair) a = { 0 };
  g_auto (PmKeypair) b = { 0 };
  PmSessionLimits limits;

  memset (fs, 0, sizeof *fs);
  pm_fuzz_session_keys (flags, &a, &b);
  pm_fuzz_session_limits (&limits);
  pm_fuzz_rng_seed (&fs->rng, PM_FUZZ_SEED_A);
  pm_fuzz_rng_use (&fs->rng);

  fs->session = pm_session_new (&a, b.pub, &limits);
  fs->emitted = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  fs->now = PM_FUZZ_START_US;
  pm_session_set_callbacks (fs->session, on_output, on_deliver, fs);
  if (flags & PM_FUZZ_FLAG_CONNECT)
    {
      pm_session_connect (fs->session, fs->now);
      g_assert (pm_session_get_state (fs->session) == PM_SESSION_HANDSHAKING);
    }
}

static gboolean
stats_equal_but_rejected (const PmSessionStats *x,
                          const PmSessionStats *y)
{
  return x->tx_messages == y->tx_messages && x->rx_messages == y->rx_messages &&
         x->tx_bytes == y->tx_bytes && x->rx_bytes == y->rx_bytes &&
         x->handshakes == y->handshakes && x->rotations == y->rotations &&
         x->epochs == y->epochs && x->last_handshake_us == y->last_handshake_us;
}

static void
assert_error (const GError *error)
{
  g_assert (error != NULL);
  g_assert (error->domain == PM_FRAME_ERROR || error->domain == PM_NOISE_ERROR ||
            error->domain == PM_SESSION_ERROR);
  g_assert (error->message != NULL && error->message[0] != '\0');
}

void
pm_fuzz_session_apply (PmFuzzSession *fs,
                       uint8_t        op,
                       const uint8_t *data,
                       size_t         len)
{
  g_autoptr (GError) error = NULL;
  PmSessionStats before, after;
  PmSessionState state;
  unsigned       queued, emitted;

  fs->now += (int64_t) (op >> 2) * PM_FUZZ_TICK_US + 1;
  pm_fuzz_rng_use (&fs->rng);
  pm_session_get_stats (fs->session, &before);
  state = pm_session_get_state (fs->session);
  queued = pm_session_get_queue_length (fs->session);
  emitted = fs->emitted->len;

  switch (op & 3)
    {
    case PM_FUZZ_OP_RECEIVE:
    case PM_FUZZ_OP_RECEIVE + 1:
      if (pm_session_receive (fs->session, data, len, fs->now, &error))
        {
          g_assert (error == NULL);
          pm_session_get_stats (fs->session, &after);
          g_assert (after.rejected == before.rejected);
          fs->accepted++;
        }
      else
        {
          /* Refused: an error that says why, and nothing else changed. */
          assert_error (error);
          pm_session_get_stats (fs->session, &after);
          g_assert (after.rejected == before.rejected + 1);
          g_assert (stats_equal_but_rejected (&before, &after));
          g_assert (pm_session_get_state (fs->session) == state);
          g_assert (pm_session_get_queue_length (fs->session) == queued);
          g_assert (fs->emitted->len == emitted);
          fs->refused++;
        }
      break;

    case PM_FUZZ_OP_SEND:
      if (!pm_session_send (fs->session, data, len, fs->now, &error))
        {
          assert_error (error);
          g_assert (error->domain == PM_SESSION_ERROR);
          g_assert (error->code == PM_SESSION_ERROR_TOO_LARGE ||
                    error->code == PM_SESSION_ERROR_QUEUE_FULL);
          g_assert (pm_session_get_queue_length (fs->session) == queued);
        }
      else
        {
          g_assert (error == NULL);
        }
      break;

    case PM_FUZZ_OP_TICK:
    default:
      pm_session_tick (fs->session, fs->now);
      /* Every timer that was due has run. */
      g_assert (pm_session_get_next_deadline (fs->session) > fs->now);
      break;
    }

  g_assert (pm_session_get_queue_length (fs->session) <= PM_FUZZ_SEND_QUEUE_MAX);
}

void
pm_fuzz_session_run (PmFuzzSession *fs,
                     const uint8_t *input,
                     size_t         len)
{
  size_t pos;

  if (len == 0)
    return;
  pm_fuzz_session_init (fs, input[0]);
  pos = 1;
  while (pos < len)
    {
      uint8_t op = input[pos];
      size_t  n;

      if (len - pos < PM_FUZZ_RECORD_HEADER)
        {
          /* A stub record: the rest as one datagram. */
          pm_fuzz_session_apply (fs, op, input + pos + 1, len - pos - 1);
          break;
        }
      n = (size_t) input[pos + 1] | (size_t) input[pos + 2] << 8;
      pos += PM_FUZZ_RECORD_HEADER;
      n = MIN (n, len - pos);
      pm_fuzz_session_apply (fs, op, input + pos, n);
      pos += n;
    }
}

void
pm_fuzz_session_clear (PmFuzzSession *fs)
{
  g_clear_pointer (&fs->session, pm_session_free);
  g_clear_pointer (&fs->emitted, g_ptr_array_unref);
}
