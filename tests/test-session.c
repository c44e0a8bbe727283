/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmSession between two in-process peers over a simulated datagram path that
 * can drop, reorder and duplicate. Time is virtual: each test owns `now`.
 */
#include <string.h>

#include "pm-frame.h"
#include "pm-noise.h"
#include "pm-session.h"
#include "pm-verification.h"

typedef struct {
  PmSession *session;
  GQueue     outbox;   /* GBytes: datagrams this peer emitted, not yet delivered */
  GArray    *received; /* uint32 message ids delivered to this peer, in order */
} Peer;

typedef struct {
  PmKeypair       ka, kb;
  Peer            a, b;
  PmSessionLimits limits;
  int64_t         now;
  GRand          *rand;
  double          drop, reorder;
  unsigned        dropped_data;
} Fixture;

static void
on_output (const uint8_t *datagram,
           size_t         len,
           gpointer       user_data)
{
  Peer *peer = user_data;

  g_queue_push_tail (&peer->outbox, g_bytes_new (datagram, len));
}

static void
on_deliver (const uint8_t *data,
            size_t         len,
            gpointer       user_data)
{
  Peer    *peer = user_data;
  uint32_t id;

  g_assert_cmpuint (len, >=, sizeof id);
  memcpy (&id, data, sizeof id);
  /* The rest of the message is a pattern derived from the id: check it. */
  for (size_t i = sizeof id; i < len; i++)
    g_assert_cmpuint (data[i], ==, (uint8_t) (id + i));
  g_array_append_val (peer->received, id);
}

static void
peer_init (Peer                  *peer,
           const PmKeypair       *local,
           const PmKeypair       *remote,
           const PmSessionLimits *limits)
{
  peer->session = pm_session_new (local, remote->pub, limits);
  g_queue_init (&peer->outbox);
  peer->received = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  pm_session_set_callbacks (peer->session, on_output, on_deliver, peer);
}

static void
peer_clear (Peer *peer)
{
  pm_session_free (peer->session);
  g_queue_clear_full (&peer->outbox, (GDestroyNotify) g_bytes_unref);
  g_array_unref (peer->received);
}

static void
fixture_start (Fixture *f)
{
  peer_init (&f->a, &f->ka, &f->kb, &f->limits);
  peer_init (&f->b, &f->kb, &f->ka, &f->limits);
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  pm_keypair_generate (&f->ka);
  pm_keypair_generate (&f->kb);
  pm_session_limits_default (&f->limits);
  f->now = 1000 * G_USEC_PER_SEC;
  f->rand = g_rand_new_with_seed (0x5eed);
  fixture_start (f);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_clear (&f->a);
  peer_clear (&f->b);
  pm_keypair_clear (&f->ka);
  pm_keypair_clear (&f->kb);
  g_rand_free (f->rand);
}

/* Rebuilds both sessions with the fixture's (changed) limits. */
static void
fixture_restart (Fixture *f)
{
  peer_clear (&f->a);
  peer_clear (&f->b);
  fixture_start (f);
}

static gboolean
is_app_data (GBytes *datagram)
{
  gsize          len;
  const uint8_t *d = g_bytes_get_data (datagram, &len);

  return d[0] == PM_FRAME_DATA && len > PM_DATA_FRAME_MIN_LEN;
}

/* Moves every datagram from @from's outbox to @to, dropping and reordering as
 * the fixture says. Returns how many were handed over. */
static unsigned
transfer (Fixture *f,
          Peer    *from,
          Peer    *to)
{
  GPtrArray *batch = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  unsigned   n = 0;

  while (!g_queue_is_empty (&from->outbox))
    g_ptr_array_add (batch, g_queue_pop_head (&from->outbox));

  /* Reorder: shuffle some groups of three, so a datagram moves by at most two
   * places (less than the tests' smallest epoch: reordering across a whole
   * epoch cannot happen with the real 2^16 messages per epoch). */
  for (guint i = 0; i + 2 < batch->len; i += 3)
    if (g_rand_double (f->rand) < f->reorder)
      for (guint k = 2; k > 0; k--)
        {
          guint    j = i + g_rand_int_range (f->rand, 0, (gint32) k + 1);
          gpointer tmp = batch->pdata[i + k];
          batch->pdata[i + k] = batch->pdata[j];
          batch->pdata[j] = tmp;
        }

  for (guint i = 0; i < batch->len; i++)
    {
      GBytes        *d = batch->pdata[i];
      gsize          len;
      const uint8_t *data = g_bytes_get_data (d, &len);
      g_autoptr (GError) error = NULL;

      if (g_rand_double (f->rand) < f->drop)
        {
          if (is_app_data (d))
            f->dropped_data++;
          continue;
        }
      /* Refusals here are legitimate (e.g. a retransmitted initiation racing a
       * response); the tests assert on what was delivered. */
      if (!pm_session_receive (to->session, data, len, f->now, &error) && g_getenv ("PM_TEST_TRACE"))
        g_printerr ("refused %s: %s\n", is_app_data (d) ? "data" : "other", error->message);
      n++;
    }
  g_ptr_array_unref (batch);
  return n;
}

/* Runs the path until both outboxes are empty, advancing time by @step_us per round. */
static void
pump (Fixture *f,
      int64_t  step_us)
{
  for (int round = 0; round < 1000; round++)
    {
      unsigned moved = transfer (f, &f->a, &f->b) + transfer (f, &f->b, &f->a);

      f->now += step_us;
      pm_session_tick (f->a.session, f->now);
      pm_session_tick (f->b.session, f->now);
      if (moved == 0 && g_queue_is_empty (&f->a.outbox) && g_queue_is_empty (&f->b.outbox))
        return;
    }
  g_assert_not_reached ();
}

static void
send_message (Fixture *f,
              Peer    *peer,
              uint32_t id,
              size_t   len)
{
  uint8_t buf[2048];
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (len, <=, sizeof buf);
  g_assert_cmpuint (len, >=, sizeof id);
  memcpy (buf, &id, sizeof id);
  for (size_t i = sizeof id; i < len; i++)
    buf[i] = (uint8_t) (id + i);
  g_assert_true (pm_session_send (peer->session, buf, len, f->now, &error));
  g_assert_no_error (error);
}

static void
assert_received_all (Peer    *peer,
                     uint32_t first,
                     uint32_t count)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);

  g_assert_cmpuint (peer->received->len, ==, count);
  for (guint i = 0; i < peer->received->len; i++)
    {
      uint32_t id = g_array_index (peer->received, uint32_t, i);
      g_assert_cmpuint (id, >=, first);
      g_assert_cmpuint (id, <, first + count);
      g_assert_false (g_hash_table_contains (seen, GUINT_TO_POINTER (id + 1)));
      g_hash_table_add (seen, GUINT_TO_POINTER (id + 1));
    }
}

static void
test_handshake (Fixture      *f,
                gconstpointer data)
{
  uint8_t          ha[32], hb[32];
  g_autofree char *code_a = NULL, *code_b = NULL;
  PmSessionStats   sa, sb;

  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_IDLE);
  g_assert_false (pm_session_get_handshake_hash (f->a.session, ha));

  /* Data sent before any handshake is queued and goes out on the new keys. */
  send_message (f, &f->a, 1, 100);
  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_HANDSHAKING);
  g_assert_cmpuint (pm_session_get_queue_length (f->a.session), ==, 1);
  pump (f, 1000);

  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_ESTABLISHED);
  g_assert_cmpint (pm_session_get_state (f->b.session), ==, PM_SESSION_ESTABLISHED);
  g_assert_cmpuint (pm_session_get_queue_length (f->a.session), ==, 0);
  assert_received_all (&f->b, 1, 1);

  g_assert_true (pm_session_get_handshake_hash (f->a.session, ha));
  g_assert_true (pm_session_get_handshake_hash (f->b.session, hb));
  g_assert_cmpmem (ha, 32, hb, 32);
  code_a = pm_verification_code (ha);
  code_b = pm_verification_code (hb);
  g_assert_cmpstr (code_a, ==, code_b);

  send_message (f, &f->b, 2, 50);
  pump (f, 1000);
  assert_received_all (&f->a, 2, 1);

  pm_session_get_stats (f->a.session, &sa);
  pm_session_get_stats (f->b.session, &sb);
  g_assert_cmpuint (sa.handshakes, ==, 1);
  g_assert_cmpuint (sb.handshakes, ==, 1);
  g_assert_cmpuint (sa.rotations, ==, 0);
  g_assert_cmpuint (sa.rejected, ==, 0);
  g_assert_cmpuint (sb.rejected, ==, 0);
  g_assert_cmpuint (sb.rx_bytes, ==, 100);
}

/* Many epochs and session rotations while both sides send, over a path that
 * reorders: every message arrives exactly once. */
static void
test_rotation_reordering (Fixture      *f,
                          gconstpointer data)
{
  const uint32_t n = 3000;
  PmSessionStats sa, sb;

  f->limits.messages_per_epoch = 4;
  f->limits.epochs_per_session = 5;
  f->limits.reject_after_epochs = 12;
  fixture_restart (f);
  f->reorder = 0.3;

  for (uint32_t i = 0; i < n; i++)
    {
      send_message (f, &f->a, i, 40 + i % 200);
      send_message (f, &f->b, 100000 + i, 40 + i % 100);
      if (i % 7 == 6)
        pump (f, 1000);
    }
  pump (f, 1000);

  assert_received_all (&f->b, 0, n);
  assert_received_all (&f->a, 100000, n);
  pm_session_get_stats (f->a.session, &sa);
  pm_session_get_stats (f->b.session, &sb);
  g_test_message ("rotations a=%u b=%u, epochs a=%u b=%u, rejected a=%" G_GUINT64_FORMAT
                  " b=%" G_GUINT64_FORMAT,
                  sa.rotations, sb.rotations, sa.epochs, sb.epochs,
                  sa.rejected, sb.rejected);
  /* 3000 messages at 4 per epoch and 5 epochs per session: well over 100 rotations. */
  g_assert_cmpuint (sa.rotations + sb.rotations, >=, 100);
  g_assert_cmpuint (sa.epochs, >=, 500);
}

/* Packets of the previous epoch that arrive after the next epoch's still decrypt. */
static void
test_epoch_reorder (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (GPtrArray) held = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;

  f->limits.messages_per_epoch = 3;
  fixture_restart (f);
  pm_session_connect (f->a.session, f->now);
  pump (f, 1000);
  g_array_set_size (f->b.received, 0);

  /* Epoch 0 has messages 0-1 left (the keepalive took counter 0), epoch 1 has 2-4, epoch 2 … */
  for (uint32_t i = 0; i < 8; i++)
    send_message (f, &f->a, i, 64);
  while (!g_queue_is_empty (&f->a.outbox))
    g_ptr_array_add (held, g_queue_pop_head (&f->a.outbox));
  g_assert_cmpuint (held->len, ==, 8);

  /* Deliver newest first: epochs 2, 1, 0 in reverse. Epoch 0 is two epochs
   * behind by then and must be refused as stale; epoch 1 decrypts. */
  for (gint i = (gint) held->len - 1; i >= 0; i--)
    {
      gsize          len;
      const uint8_t *d = g_bytes_get_data (held->pdata[i], &len);

      g_clear_error (&error);
      if (pm_session_receive (f->b.session, d, len, f->now, &error))
        continue;
      g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_STALE_EPOCH);
      g_assert_cmpuint (d[1], ==, 0);
    }
  /* Messages 0,1 were in epoch 0 (refused); 2..7 arrived. */
  g_assert_cmpuint (f->b.received->len, ==, 6);
}

static void
test_lossy_path (Fixture      *f,
                 gconstpointer data)
{
  const uint32_t n = 4000;
  PmSessionStats sa;

  f->limits.messages_per_epoch = 8;
  f->limits.epochs_per_session = 4;
  f->limits.reject_after_epochs = 200;
  f->limits.handshake_retry_us = 5000;
  fixture_restart (f);
  f->drop = 0.05;
  f->reorder = 0.2;

  for (uint32_t i = 0; i < n; i++)
    {
      send_message (f, &f->a, i, 32 + i % 500);
      if (i % 5 == 4)
        pump (f, 1000);
    }
  pump (f, 1000);
  /* Drain anything still queued behind a lost handshake. */
  for (int i = 0; i < 50 && pm_session_get_queue_length (f->a.session) > 0; i++)
    pump (f, 10000);
  g_assert_cmpuint (pm_session_get_queue_length (f->a.session), ==, 0);

  pm_session_get_stats (f->a.session, &sa);
  g_test_message ("dropped %u data frames, rotations %u", f->dropped_data, sa.rotations);
  g_assert_cmpuint (sa.rotations, >=, 50);
  /* Exactly what the path did not drop was delivered, each once. */
  g_assert_cmpuint (f->b.received->len + f->dropped_data, ==, n);
  {
    g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
    for (guint i = 0; i < f->b.received->len; i++)
      {
        uint32_t id = g_array_index (f->b.received, uint32_t, i);
        g_assert_true (g_hash_table_add (seen, GUINT_TO_POINTER (id + 1)));
      }
  }
}

static GBytes *
capture_one (Peer *peer)
{
  g_assert_cmpuint (g_queue_get_length (&peer->outbox), ==, 1);
  return g_queue_pop_head (&peer->outbox);
}

static void
test_replays (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GBytes) init = NULL, frame = NULL;
  g_autoptr (GError) error = NULL;
  uint8_t        tampered[256];
  gsize          len;
  const uint8_t *d;
  PmSessionStats before, after;

  pm_session_connect (f->a.session, f->now);
  init = capture_one (&f->a);
  d = g_bytes_get_data (init, &len);
  g_assert_cmpuint (len, ==, PM_INIT_FRAME_LEN);
  g_assert_true (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_no_error (error);
  pump (f, 1000);
  g_assert_cmpint (pm_session_get_state (f->b.session), ==, PM_SESSION_ESTABLISHED);

  /* The same initiation again: refused by its timestamp, and nothing changes. */
  pm_session_get_stats (f->b.session, &before);
  g_assert_false (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_HANDSHAKE_REPLAY);
  g_clear_error (&error);
  g_assert_cmpuint (g_queue_get_length (&f->b.outbox), ==, 0);
  pm_session_get_stats (f->b.session, &after);
  g_assert_cmpuint (after.handshakes, ==, before.handshakes);
  g_assert_cmpuint (after.rejected, ==, before.rejected + 1);

  /* A data frame twice: the second is a replay. */
  send_message (f, &f->a, 7, 64);
  frame = capture_one (&f->a);
  d = g_bytes_get_data (frame, &len);
  g_assert_true (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_false (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_REPLAY);
  g_clear_error (&error);
  assert_received_all (&f->b, 7, 1);

  /* A tampered frame is refused and does not burn its counter. */
  send_message (f, &f->a, 8, 64);
  g_clear_pointer (&frame, g_bytes_unref);
  frame = capture_one (&f->a);
  d = g_bytes_get_data (frame, &len);
  g_assert_cmpuint (len, <=, sizeof tampered);
  for (gsize i = 0; i < len; i++)
    {
      memcpy (tampered, d, len);
      tampered[i] ^= 0x20;
      g_assert_false (pm_session_receive (f->b.session, tampered, len, f->now, &error));
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
  g_assert_true (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (f->b.received->len, ==, 2);

  /* Truncated frames. */
  for (gsize cut = 0; cut < len; cut++)
    {
      g_assert_false (pm_session_receive (f->b.session, d, cut, f->now, &error));
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
}

/* Junk sent to our initiation's index (which travels in clear) is refused and
 * does not spend the handshake: the genuine response still completes it. */
static void
test_forged_response (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (GBytes) init = NULL, response = NULL;
  g_autoptr (GError) error = NULL;
  uint8_t        forged[PM_RESPONSE_FRAME_LEN];
  gsize          len;
  const uint8_t *d;

  pm_session_connect (f->a.session, f->now);
  init = capture_one (&f->a);
  d = g_bytes_get_data (init, &len);
  g_assert_true (pm_session_receive (f->b.session, d, len, f->now, &error));
  response = capture_one (&f->b);
  d = g_bytes_get_data (response, &len);
  g_assert_cmpuint (len, ==, sizeof forged);

  for (gsize i = PM_RESPONSE_HEADER_LEN; i < len; i++)
    {
      memcpy (forged, d, len);
      forged[i] ^= 0x01;
      g_assert_false (pm_session_receive (f->a.session, forged, len, f->now, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
      g_clear_error (&error);
      g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_HANDSHAKING);
    }
  g_assert_true (pm_session_receive (f->a.session, d, len, f->now, &error));
  g_assert_no_error (error);
  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_ESTABLISHED);
}

/* A third key pair that B does not know tries to handshake as if it were A. */
static void
test_unknown_peer (Fixture      *f,
                   gconstpointer data)
{
  g_auto (PmKeypair) kc;
  Peer c = { 0 };
  g_autoptr (GBytes) init = NULL;
  g_autoptr (GError) error = NULL;
  gsize          len;
  const uint8_t *d;

  pm_keypair_generate (&kc);
  peer_init (&c, &kc, &f->kb, NULL);
  pm_session_connect (c.session, f->now);
  init = capture_one (&c);
  d = g_bytes_get_data (init, &len);
  g_assert_false (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_PEER);
  g_assert_cmpint (pm_session_get_state (f->b.session), ==, PM_SESSION_IDLE);
  g_assert_cmpuint (g_queue_get_length (&f->b.outbox), ==, 0);
  peer_clear (&c);
}

static void
test_simultaneous (Fixture      *f,
                   gconstpointer data)
{
  uint8_t ha[32], hb[32];

  pm_session_connect (f->a.session, f->now);
  pm_session_connect (f->b.session, f->now);
  send_message (f, &f->a, 1, 64);
  send_message (f, &f->b, 2, 64);
  pump (f, 1000);
  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_ESTABLISHED);
  g_assert_cmpint (pm_session_get_state (f->b.session), ==, PM_SESSION_ESTABLISHED);
  g_assert_true (pm_session_get_handshake_hash (f->a.session, ha));
  g_assert_true (pm_session_get_handshake_hash (f->b.session, hb));
  g_assert_cmpmem (ha, 32, hb, 32);
  assert_received_all (&f->b, 1, 1);
  assert_received_all (&f->a, 2, 1);
}

/* Ten minutes: a fresh handshake; the old keys decrypt for the grace period only. */
static void
test_time_rotation (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (GBytes) late = NULL;
  g_autoptr (GError) error = NULL;
  PmSessionStats sa;
  gsize          len;
  const uint8_t *d;

  send_message (f, &f->a, 1, 64);
  pump (f, 1000);

  /* Just past the lifetime, the next send starts a rotation. Hold one frame
   * sent on the old keys. */
  f->now += PM_SESSION_LIFETIME_US;
  send_message (f, &f->a, 2, 64);
  g_assert_cmpuint (g_queue_get_length (&f->a.outbox), ==, 2); /* data + initiation */
  late = g_queue_pop_head (&f->a.outbox);
  g_assert_cmpuint (((const uint8_t *) g_bytes_get_data (late, NULL))[0], ==, PM_FRAME_DATA);
  pump (f, 1000);
  pm_session_get_stats (f->a.session, &sa);
  g_assert_cmpuint (sa.rotations, ==, 1);
  send_message (f, &f->a, 3, 64);
  pump (f, 1000);

  /* Within the grace period the held frame still decrypts … */
  d = g_bytes_get_data (late, &len);
  g_assert_true (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_no_error (error);
  assert_received_all (&f->b, 1, 3);

  /* … after it, the old key pair is gone (and its keys wiped). */
  f->now += PM_PREVIOUS_KEYS_GRACE_US;
  pm_session_tick (f->b.session, f->now);
  g_assert_false (pm_session_receive (f->b.session, d, len, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_INDEX);
}

/* No response at all: retries with fresh initiations, then gives up. */
static void
test_give_up (Fixture      *f,
              gconstpointer data)
{
  unsigned initiations = 0;

  send_message (f, &f->a, 1, 64);
  while (pm_session_get_state (f->a.session) == PM_SESSION_HANDSHAKING)
    {
      while (!g_queue_is_empty (&f->a.outbox))
        {
          g_autoptr (GBytes) d = g_queue_pop_head (&f->a.outbox);
          g_assert_cmpuint (((const uint8_t *) g_bytes_get_data (d, NULL))[0], ==, PM_FRAME_HANDSHAKE_INIT);
          initiations++;
        }
      g_assert_cmpint (pm_session_get_next_deadline (f->a.session), >, f->now);
      f->now = pm_session_get_next_deadline (f->a.session);
      pm_session_tick (f->a.session, f->now);
    }
  g_assert_cmpint (pm_session_get_state (f->a.session), ==, PM_SESSION_IDLE);
  g_assert_cmpuint (pm_session_get_queue_length (f->a.session), ==, 0);
  g_assert_cmpuint (initiations, ==, PM_HANDSHAKE_GIVE_UP_US / PM_HANDSHAKE_RETRY_US);
}

static void
test_limits (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *big = g_malloc0 (PM_MAX_PLAINTEXT + 1);

  for (size_t i = 0; i <= PM_MAX_PLAINTEXT; i++)
    big[i] = (uint8_t) i; /* the pattern on_deliver() checks */

  g_assert_false (pm_session_send (f->a.session, big, PM_MAX_PLAINTEXT + 1, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_TOO_LARGE);
  g_clear_error (&error);

  f->limits.send_queue_max = 3;
  fixture_restart (f);
  for (int i = 0; i < 3; i++)
    g_assert_true (pm_session_send (f->a.session, big, 10, f->now, NULL));
  g_assert_false (pm_session_send (f->a.session, big, 10, f->now, &error));
  g_assert_error (error, PM_SESSION_ERROR, PM_SESSION_ERROR_QUEUE_FULL);
  g_clear_error (&error);

  /* The largest message goes through. */
  pump (f, 1000);
  g_assert_true (pm_session_send (f->a.session, big, PM_MAX_PLAINTEXT, f->now, &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/session/handshake", test_handshake);
  ADD ("/session/rotation-reordering", test_rotation_reordering);
  ADD ("/session/epoch-reorder", test_epoch_reorder);
  ADD ("/session/lossy-path", test_lossy_path);
  ADD ("/session/replays", test_replays);
  ADD ("/session/forged-response", test_forged_response);
  ADD ("/session/unknown-peer", test_unknown_peer);
  ADD ("/session/simultaneous", test_simultaneous);
  ADD ("/session/time-rotation", test_time_rotation);
  ADD ("/session/give-up", test_give_up);
  ADD ("/session/limits", test_limits);
#undef ADD

  return g_test_run ();
}
