/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmRelayClient against the real server: an in-process PmCoordServer with a
 * PmRelay over a PmStoreSqlite in a temporary file, on 127.0.0.1 port 0. Two
 * devices of one account (and one of another) are enrolled through the store
 * API. Frames both ways, a Noise_IK session with key rotations carried over
 * the relay, time to the first application byte, and the refusals and close
 * codes. Every wait is bounded.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <string.h>

#include "pm-test-util.h"
#include "pm-coord-server.h"
#include "pm-frame.h"
#include "pm-keypair.h"
#include "pm-relay-client.h"
#include "pm-session.h"
#include "pm-store-sqlite.h"

#define WAIT_MS 10000

typedef struct {
  char          *dir;
  char          *db_path;
  PmStoreSqlite *store;
  PmRelay       *relay;
  PmCoordServer *server;
  char          *base;
  PmKeypair      ka, kb;
  /* a and b in account alice, c in account bob */
  char *a, *a_token, *b, *b_token, *c, *c_token;
} Fixture;

/* --- Bounded waiting ------------------------------------------------------------ */

static void
spin_until (PmTestCond cond,
            gpointer   data,
            unsigned   timeout_ms)
{
  g_assert_true (pm_test_spin_until (cond, data, timeout_ms));
}


static gboolean
is_closed (gpointer data)
{
  return pm_relay_client_get_state (data) == PM_RELAY_CLIENT_STATE_CLOSED;
}

/* --- Log capture ------------------------------------------------------------------ */

/* While not NULL, every log record (debug included) is appended here. */
static GString *captured_log;

static GLogWriterOutput
capture_writer (GLogLevelFlags   level,
                const GLogField *fields,
                gsize            n_fields,
                gpointer         user_data)
{
  if (captured_log != NULL)
    {
      for (gsize i = 0; i < n_fields; i++)
        {
          g_string_append (captured_log, fields[i].key);
          g_string_append_c (captured_log, '=');
          if (fields[i].length < 0)
            g_string_append (captured_log, fields[i].value);
          else
            g_string_append_len (captured_log, fields[i].value, fields[i].length);
          g_string_append_c (captured_log, '\n');
        }
      if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        return G_LOG_WRITER_HANDLED;
    }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

static gboolean
contains (const char    *haystack,
          size_t         len,
          const uint8_t *needle,
          size_t         n)
{
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp (haystack + i, needle, n) == 0)
      return TRUE;
  return FALSE;
}

/* --- Fixture ---------------------------------------------------------------------- */

static char *
hex_of (const uint8_t *data,
        size_t         len)
{
  GString *hex = g_string_new (NULL);

  for (size_t i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", data[i]);
  return g_string_free (hex, FALSE);
}

static void
enroll (Fixture         *f,
        const char      *key,
        const char      *name,
        const PmKeypair *kp,
        char           **out_id,
        char           **out_token)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autofree char *public_key = hex_of (kp->pub, sizeof kp->pub);

  device = pm_store_enroll_device (PM_STORE (f->store), key, name, "linux", public_key, "file",
                                   pm_store_now (), out_token, &error);
  g_assert_no_error (error);
  *out_id = g_strdup (device->id);
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = NULL;
  g_autoptr (PmAccountRecord) bob = NULL;
  g_autofree char *key_alice = NULL;
  g_autofree char *key_bob = NULL;
  PmRelayLimits    limits;
  PmKeypair        kc;
  int64_t          now = pm_store_now ();

  f->dir = g_dir_make_tmp ("pipermesh-relay-client-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "server.db", NULL);
  f->store = pm_store_sqlite_open (f->db_path, &error);
  g_assert_no_error (error);
  alice = pm_store_create_account (PM_STORE (f->store), "alice", now, &error);
  g_assert_no_error (error);
  bob = pm_store_create_account (PM_STORE (f->store), "bob", now, &error);
  g_assert_no_error (error);
  key_alice = pm_store_create_enrollment_key (PM_STORE (f->store), alice->id, 3600, TRUE, now,
                                              NULL, &error);
  g_assert_no_error (error);
  key_bob = pm_store_create_enrollment_key (PM_STORE (f->store), bob->id, 3600, TRUE, now, NULL,
                                            &error);
  g_assert_no_error (error);
  pm_keypair_generate (&f->ka);
  pm_keypair_generate (&f->kb);
  pm_keypair_generate (&kc);
  enroll (f, key_alice, "laptop", &f->ka, &f->a, &f->a_token);
  enroll (f, key_alice, "phone", &f->kb, &f->b, &f->b_token);
  enroll (f, key_bob, "bobs-box", &kc, &f->c, &f->c_token);
  pm_keypair_clear (&kc);

  /* data: the relay's wait limit in ms, or NULL for the default. */
  pm_relay_limits_default (&limits);
  if (data != NULL)
    limits.wait_timeout_us = GPOINTER_TO_INT (data) * (int64_t) 1000;
  f->relay = pm_relay_new (&limits);
  f->server = pm_coord_server_new (PM_STORE (f->store), f->relay, NULL);
  g_assert_true (pm_coord_server_listen (f->server, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  f->base = pm_coord_server_get_base_uri (f->server);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_clear_object (&f->server);
  g_clear_object (&f->relay);
  g_clear_object (&f->store);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_unlink (f->db_path);
  g_autofree char *wal = g_strconcat (f->db_path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (f->db_path, "-shm", NULL);
  g_unlink (wal);
  g_unlink (shm);
  g_rmdir (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
  g_free (f->base);
  g_free (f->a);
  g_free (f->a_token);
  g_free (f->b);
  g_free (f->b_token);
  g_free (f->c);
  g_free (f->c_token);
  pm_keypair_clear (&f->ka);
  pm_keypair_clear (&f->kb);
}

/* --- Clients ---------------------------------------------------------------------- */

typedef struct {
  PmRelayClient *client;
  GError        *error;
  gboolean       done;
  GPtrArray     *frames; /* GBytes received */
  int64_t        connected_us;
} Peer;

static void
on_frame (PmRelayClient *client,
          GBytes        *frame,
          gpointer       user_data)
{
  Peer *p = user_data;

  g_ptr_array_add (p->frames, g_bytes_ref (frame));
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Peer *p = user_data;

  pm_relay_client_connect_finish (PM_RELAY_CLIENT (source), result, &p->error);
  p->connected_us = g_get_monotonic_time ();
  p->done = TRUE;
}

static Peer *
peer_start_at (const char *base,
               const char *token,
               const char *peer_id)
{
  Peer *p = g_new0 (Peer, 1);

  p->client = pm_relay_client_new (base, token, peer_id);
  p->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_signal_connect (p->client, "frame-received", G_CALLBACK (on_frame), p);
  pm_relay_client_connect_async (p->client, NULL, on_connected, p);
  return p;
}

static Peer *
peer_start (Fixture    *f,
            const char *token,
            const char *peer_id)
{
  return peer_start_at (f->base, token, peer_id);
}

static Peer *
peer_connect (Fixture    *f,
              const char *token,
              const char *peer_id)
{
  Peer *p = peer_start (f, token, peer_id);

  spin_until (pm_test_flag_is_set, &p->done, WAIT_MS);
  return p;
}

static void
peer_free (Peer *p)
{
  g_signal_handlers_disconnect_by_data (p->client, p);
  g_clear_object (&p->client);
  g_clear_error (&p->error);
  g_ptr_array_unref (p->frames);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Peer, peer_free)

typedef struct {
  Peer    *peer;
  unsigned n;
} Count;

static gboolean
has_frames (gpointer data)
{
  Count *c = data;

  return c->peer->frames->len >= c->n;
}

static void
wait_frames (Peer    *p,
             unsigned n)
{
  Count c = { p, n };

  spin_until (has_frames, &c, WAIT_MS);
}

static GBytes *
random_bytes (size_t len)
{
  uint8_t *data = g_malloc (len);

  for (size_t i = 0; i < len; i++)
    data[i] = (uint8_t) g_random_int_range (0, 256);
  return g_bytes_new_take (data, len);
}

/* --- Tests -------------------------------------------------------------------------- */

static void
test_frames (Fixture      *f,
             gconstpointer data)
{
  static const size_t sizes[] = { 1, PM_RESPONSE_FRAME_LEN, PM_INIT_FRAME_LEN, 1400, 65535,
                                  PM_RELAY_CLIENT_MAX_FRAME_LEN };
  g_autofree char    *base_slash = g_strconcat (f->base, "/", NULL);
  g_autoptr (Peer) a = peer_connect (f, f->a_token, f->b);
  g_autoptr (Peer) b = NULL;
  g_autoptr (GPtrArray) sent_a = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GPtrArray) sent_b = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;

  g_assert_no_error (a->error);
  g_assert_cmpint (pm_relay_client_get_state (a->client), ==,
                   PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER);
  /* Every log record from here on is searched for the payload. */
  captured_log = g_string_new (NULL);
  g_log_set_debug_enabled (TRUE);
  g_assert_cmpstr (pm_relay_client_get_peer_id (a->client), ==, f->b);

  /* Sent before the peer is there: held back by the relay, not lost. */
  for (size_t i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      GBytes *frame = random_bytes (sizes[i]);

      g_assert_true (pm_relay_client_send (a->client, g_bytes_get_data (frame, NULL),
                                           g_bytes_get_size (frame), &error));
      g_assert_no_error (error);
      g_ptr_array_add (sent_a, frame);
    }
  /* B's base URI ends with a slash: the same stream URL. */
  b = peer_start_at (base_slash, f->b_token, f->a);
  spin_until (pm_test_flag_is_set, &b->done, WAIT_MS);
  g_assert_no_error (b->error);
  wait_frames (b, sent_a->len);
  g_assert_cmpint (pm_relay_client_get_state (b->client), ==, PM_RELAY_CLIENT_STATE_CONNECTED);

  for (size_t i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      GBytes *frame = random_bytes (sizes[G_N_ELEMENTS (sizes) - 1 - i]);

      g_assert_true (pm_relay_client_send (b->client, g_bytes_get_data (frame, NULL),
                                           g_bytes_get_size (frame), &error));
      g_ptr_array_add (sent_b, frame);
    }
  wait_frames (a, sent_b->len);
  g_assert_cmpint (pm_relay_client_get_state (a->client), ==, PM_RELAY_CLIENT_STATE_CONNECTED);

  /* Byte-exact, in order, one message per frame. */
  g_assert_cmpuint (b->frames->len, ==, sent_a->len);
  g_assert_cmpuint (a->frames->len, ==, sent_b->len);
  for (unsigned i = 0; i < sent_a->len; i++)
    g_assert_true (g_bytes_equal (b->frames->pdata[i], sent_a->pdata[i]));
  for (unsigned i = 0; i < sent_b->len; i++)
    g_assert_true (g_bytes_equal (a->frames->pdata[i], sent_b->pdata[i]));

  /* No payload byte reached the log, raw or as hex (16-byte windows of
   * every frame), though the client and the relay logged at work. */
  g_log_set_debug_enabled (FALSE);
  {
    g_autoptr (GString) log = g_steal_pointer (&captured_log);

    g_assert_nonnull (strstr (log->str, "pipermesh-relay-client"));
    for (unsigned i = 0; i < sent_a->len + sent_b->len; i++)
      {
        unsigned         j = i - sent_a->len;
        GBytes          *frame = i < sent_a->len ? sent_a->pdata[i] : sent_b->pdata[j];
        size_t           len;
        const uint8_t   *bytes = g_bytes_get_data (frame, &len);
        size_t           n = MIN (len, 16);
        g_autofree char *hex = hex_of (bytes, n);

        if (n < 8)
          continue; /* too short to tell from chance */
        g_assert_false (contains (log->str, log->len, bytes, n));
        g_assert_null (strstr (log->str, hex));
      }
  }

  /* A normal close is no error. */
  pm_relay_client_close (a->client);
  spin_until (is_closed, a->client, WAIT_MS);
  g_assert_null (pm_relay_client_get_error (a->client));
  g_assert_cmpuint (pm_relay_client_get_close_code (a->client), ==, 1000);
  g_assert_false (pm_relay_client_send (a->client, (const uint8_t *) "x", 1, &error));
  g_assert_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_CONNECTED);
}

/* --- A Noise_IK session over the relay ------------------------------------------------ */

typedef struct {
  PmSession     *session;
  PmRelayClient *client;
  GPtrArray     *delivered; /* GBytes */
  int64_t        first_deliver_us;
  unsigned       receive_errors;
} End;

static void
end_output (const uint8_t *datagram,
            size_t         len,
            gpointer       user_data)
{
  End *e = user_data;
  g_autoptr (GError) error = NULL;

  /* The relay is open on both sides whenever the session has something to
   * say in these tests. */
  g_assert_true (pm_relay_client_send (e->client, datagram, len, &error));
  g_assert_no_error (error);
}

static void
end_deliver (const uint8_t *data,
             size_t         len,
             gpointer       user_data)
{
  End *e = user_data;

  if (e->first_deliver_us == 0)
    e->first_deliver_us = g_get_monotonic_time ();
  g_ptr_array_add (e->delivered, g_bytes_new (data, len));
}

static void
end_frame (PmRelayClient *client,
           GBytes        *frame,
           gpointer       user_data)
{
  End *e = user_data;
  g_autoptr (GError) error = NULL;
  size_t         len;
  const uint8_t *data = g_bytes_get_data (frame, &len);

  if (!pm_session_receive (e->session, data, len, g_get_monotonic_time (), &error))
    e->receive_errors++;
}

static void
end_init (End                   *e,
          const PmKeypair       *local,
          const PmKeypair       *remote,
          const PmSessionLimits *limits,
          PmRelayClient         *client)
{
  e->session = pm_session_new (local, remote->pub, limits);
  e->client = client;
  e->delivered = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  pm_session_set_callbacks (e->session, end_output, end_deliver, e);
  g_signal_connect (client, "frame-received", G_CALLBACK (end_frame), e);
}

static void
end_clear (End *e)
{
  g_signal_handlers_disconnect_by_data (e->client, e);
  g_clear_pointer (&e->session, pm_session_free);
  g_clear_pointer (&e->delivered, g_ptr_array_unref);
}

typedef struct {
  End     *end;
  unsigned n;
} Delivered;

static gboolean
has_delivered (gpointer data)
{
  Delivered *d = data;

  return d->end->delivered->len >= d->n;
}

static void
test_session (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (Peer) a = peer_start (f, f->a_token, f->b);
  g_autoptr (Peer) b = peer_start (f, f->b_token, f->a);
  g_autoptr (GPtrArray) sent_a = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GPtrArray) sent_b = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  PmSessionLimits limits;
  PmSessionStats  stats_a, stats_b;
  End             ea = { 0 }, eb = { 0 };
  const unsigned  n = 200;

  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  spin_until (pm_test_flag_is_set, &b->done, WAIT_MS);
  g_assert_no_error (a->error);
  g_assert_no_error (b->error);

  /* Shrunk rotation thresholds: a fresh IK handshake every 3 epochs of 4
   * messages, all carried by the relay. */
  pm_session_limits_default (&limits);
  limits.messages_per_epoch = 4;
  limits.epochs_per_session = 3;
  limits.reject_after_epochs = 1000;
  end_init (&ea, &f->ka, &f->kb, &limits, a->client);
  end_init (&eb, &f->kb, &f->ka, &limits, b->client);

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (GError) error = NULL;
      GBytes *ma = random_bytes (1 + g_random_int_range (0, 2000));
      GBytes *mb = random_bytes (1 + g_random_int_range (0, 2000));

      g_assert_true (pm_session_send (ea.session, g_bytes_get_data (ma, NULL),
                                      g_bytes_get_size (ma), g_get_monotonic_time (), &error));
      g_assert_no_error (error);
      g_assert_true (pm_session_send (eb.session, g_bytes_get_data (mb, NULL),
                                      g_bytes_get_size (mb), g_get_monotonic_time (), &error));
      g_assert_no_error (error);
      g_ptr_array_add (sent_a, ma);
      g_ptr_array_add (sent_b, mb);
      /* Let the relay carry some of it between sends, so rotations happen
       * with traffic in flight. */
      if (i % 10 == 9)
        {
          Delivered d = { &eb, i / 2 };

          spin_until (has_delivered, &d, WAIT_MS);
        }
    }
  {
    Delivered da = { &ea, n }, db = { &eb, n };

    spin_until (has_delivered, &db, WAIT_MS);
    spin_until (has_delivered, &da, WAIT_MS);
  }

  /* Everything arrived exactly, in order (the relay is one ordered pipe). */
  g_assert_cmpuint (eb.delivered->len, ==, n);
  g_assert_cmpuint (ea.delivered->len, ==, n);
  for (unsigned i = 0; i < n; i++)
    {
      g_assert_true (g_bytes_equal (eb.delivered->pdata[i], sent_a->pdata[i]));
      g_assert_true (g_bytes_equal (ea.delivered->pdata[i], sent_b->pdata[i]));
    }
  pm_session_get_stats (ea.session, &stats_a);
  pm_session_get_stats (eb.session, &stats_b);
  g_test_message ("over the relay: %u/%u handshakes, %u/%u rotations, %u/%u epochs",
                  stats_a.handshakes, stats_b.handshakes, stats_a.rotations, stats_b.rotations,
                  stats_a.epochs, stats_b.epochs);
  g_assert_cmpuint (stats_a.rotations + stats_b.rotations, >=, 2);
  g_assert_cmpuint (stats_a.epochs, >, 0);
  g_assert_cmpuint (ea.receive_errors + eb.receive_errors, ==, 0);
  g_assert_cmpint (pm_session_get_state (ea.session), ==, PM_SESSION_ESTABLISHED);
  g_assert_cmpint (pm_relay_client_get_state (a->client), ==, PM_RELAY_CLIENT_STATE_CONNECTED);
  g_assert_cmpint (pm_relay_client_get_state (b->client), ==, PM_RELAY_CLIENT_STATE_CONNECTED);

  end_clear (&ea);
  end_clear (&eb);
}

/* Time to the first application byte: both devices start connecting at t0;
 * A sends its first message as soon as its WebSocket is open (the session
 * queues it behind the handshake); t1 is B's deliver callback. */
static void
test_first_byte (Fixture      *f,
                 gconstpointer data)
{
  static const char hello[] = "first application bytes";
  int64_t           t0 = g_get_monotonic_time ();
  g_autoptr (Peer) a = peer_start (f, f->a_token, f->b);
  g_autoptr (Peer) b = peer_start (f, f->b_token, f->a);
  g_autoptr (GError) error = NULL;
  End       ea = { 0 }, eb = { 0 };
  Delivered d = { &eb, 1 };
  double    ms;

  end_init (&ea, &f->ka, &f->kb, NULL, a->client);
  end_init (&eb, &f->kb, &f->ka, NULL, b->client);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_no_error (a->error);
  g_assert_true (pm_session_send (ea.session, (const uint8_t *) hello, sizeof hello,
                                  g_get_monotonic_time (), &error));
  g_assert_no_error (error);
  spin_until (has_delivered, &d, WAIT_MS);
  g_assert_cmpmem (g_bytes_get_data (eb.delivered->pdata[0], NULL),
                   g_bytes_get_size (eb.delivered->pdata[0]), hello, sizeof hello);
  ms = (eb.first_deliver_us - t0) / 1000.0;
  g_test_message ("relay: first application byte %.2f ms after both devices started connecting "
                  "(A open after %.2f ms)",
                  ms, (a->connected_us - t0) / 1000.0);
  /* Sanity only: timings on a shared machine are not a test. */
  g_assert_cmpfloat (ms, <, 2000.0);
  end_clear (&ea);
  end_clear (&eb);
}

/* --- Refusals and close codes ------------------------------------------------------------ */

static void
test_refused_before_upgrade (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr (Peer) bad_token = peer_connect (f, "pmdt_wrong", f->b);
  g_autoptr (Peer) foreign = peer_connect (f, f->a_token, f->c);
  g_autoptr (Peer) unknown = peer_connect (f, f->a_token, "dev_00000000000000000000000000000000");
  g_autoptr (Peer) self = peer_connect (f, f->a_token, f->a);

  g_assert_error (bad_token->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_UNAUTHORIZED);
  g_assert_cmpint (pm_relay_client_get_state (bad_token->client), ==, PM_RELAY_CLIENT_STATE_CLOSED);
  g_assert_error (pm_relay_client_get_error (bad_token->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_UNAUTHORIZED);
  g_assert_cmpuint (pm_relay_client_get_close_code (bad_token->client), ==, 0);
  g_assert_error (foreign->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_FOUND);
  g_assert_error (unknown->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_FOUND);
  g_assert_error (self->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_BAD_REQUEST);
}

static void
test_local_refusals (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (PmRelayClient) idle = pm_relay_client_new (f->base, f->a_token, f->b);
  g_autoptr (Peer) a = NULL;
  g_autoptr (Peer) b = NULL;
  g_autoptr (Peer) insecure = NULL;
  g_autoptr (Peer) not_a_url = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *big = g_malloc0 (PM_DATA_FRAME_MAX_LEN);

  /* Not connected: an error, nothing queued. */
  big[0] = PM_FRAME_DATA;
  g_assert_false (pm_relay_client_send (idle, big, 32, &error));
  g_assert_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_CONNECTED);
  g_clear_error (&error);
  g_assert_cmpint (pm_relay_client_get_state (idle), ==, PM_RELAY_CLIENT_STATE_DISCONNECTED);

  /* http:// only on loopback; checked before any network. */
  insecure = peer_start_at ("http://192.0.2.1:8443", f->a_token, f->b);
  spin_until (pm_test_flag_is_set, &insecure->done, WAIT_MS);
  g_assert_error (insecure->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_INSECURE);
  g_assert_cmpint (pm_relay_client_get_state (insecure->client), ==,
                   PM_RELAY_CLIENT_STATE_DISCONNECTED);
  not_a_url = peer_start_at ("ftp://127.0.0.1", f->a_token, f->b);
  spin_until (pm_test_flag_is_set, &not_a_url->done, WAIT_MS);
  g_assert_error (not_a_url->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_INVALID_URI);

  /* Oversized frames are refused locally and the connection stays up. */
  a = peer_connect (f, f->a_token, f->b);
  b = peer_connect (f, f->b_token, f->a);
  g_assert_no_error (a->error);
  g_assert_no_error (b->error);
  g_assert_false (pm_relay_client_send (a->client, big, PM_RELAY_CLIENT_MAX_FRAME_LEN + 1, &error));
  g_assert_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_TOO_BIG);
  g_clear_error (&error);
  g_assert_false (pm_relay_client_send (a->client, big, PM_DATA_FRAME_MAX_LEN, &error));
  g_assert_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_TOO_BIG);
  g_clear_error (&error);
  g_assert_false (pm_relay_client_send (a->client, big, 0, &error));
  g_assert_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_TOO_BIG);
  g_clear_error (&error);
  g_assert_true (pm_relay_client_send (a->client, big, 32, &error));
  wait_frames (b, 1);
  g_assert_cmpuint (g_bytes_get_size (b->frames->pdata[0]), ==, 32);

  /* A second connect while open is refused. */
  a->done = FALSE;
  pm_relay_client_connect_async (a->client, NULL, on_connected, a);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_error (a->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_BUSY);
  g_assert_true (pm_relay_client_is_open (a->client));
}

static void
test_cancel (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (Peer) a = g_new0 (Peer, 1);

  a->frames = g_ptr_array_new ();
  a->client = pm_relay_client_new (f->base, f->a_token, f->b);
  pm_relay_client_connect_async (a->client, cancellable, on_connected, a);
  g_assert_cmpint (pm_relay_client_get_state (a->client), ==, PM_RELAY_CLIENT_STATE_CONNECTING);
  g_cancellable_cancel (cancellable);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_error (a->error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (pm_relay_client_get_state (a->client), ==, PM_RELAY_CLIENT_STATE_DISCONNECTED);

  /* The owner may connect again. */
  g_clear_error (&a->error);
  a->done = FALSE;
  pm_relay_client_connect_async (a->client, NULL, on_connected, a);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_no_error (a->error);
  g_assert_true (pm_relay_client_is_open (a->client));
}

static void
test_revoked (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (Peer) a = peer_connect (f, f->a_token, f->b);
  g_autoptr (Peer) b = peer_connect (f, f->b_token, f->a);
  g_autoptr (GError) error = NULL;

  g_assert_no_error (a->error);
  g_assert_no_error (b->error);
  /* What DELETE /v1/mesh/devices/{id} does: the store, then the relay. */
  g_assert_true (pm_store_revoke_device (PM_STORE (f->store), f->b, NULL, pm_store_now (), &error));
  g_assert_no_error (error);
  pm_relay_close_device (f->relay, f->b);
  spin_until (is_closed, a->client, WAIT_MS);
  spin_until (is_closed, b->client, WAIT_MS);
  g_assert_cmpuint (pm_relay_client_get_close_code (a->client), ==, 4410);
  g_assert_error (pm_relay_client_get_error (a->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_REVOKED);
  g_assert_nonnull (pm_relay_client_get_close_reason (a->client));
  g_assert_error (pm_relay_client_get_error (b->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_REVOKED);

  /* B's token is dead now: reconnecting is refused before the upgrade. */
  b->done = FALSE;
  pm_relay_client_connect_async (b->client, NULL, on_connected, b);
  spin_until (pm_test_flag_is_set, &b->done, WAIT_MS);
  g_assert_error (b->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_UNAUTHORIZED);
  g_assert_cmpuint (pm_relay_client_get_close_code (b->client), ==, 0);
  /* A's peer is gone from the account. */
  g_clear_error (&a->error);
  a->done = FALSE;
  pm_relay_client_connect_async (a->client, NULL, on_connected, a);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_error (a->error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_FOUND);
}

static void
test_replaced (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (Peer) a1 = peer_connect (f, f->a_token, f->b);
  g_autoptr (Peer) b = peer_connect (f, f->b_token, f->a);
  g_autoptr (Peer) a2 = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_no_error (a1->error);
  a2 = peer_connect (f, f->a_token, f->b);
  g_assert_no_error (a2->error);
  spin_until (is_closed, a1->client, WAIT_MS);
  g_assert_cmpuint (pm_relay_client_get_close_code (a1->client), ==, 4409);
  g_assert_error (pm_relay_client_get_error (a1->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_REPLACED);
  /* The newer connection works; the peer's stayed. */
  g_assert_true (pm_relay_client_send (a2->client, (const uint8_t *) "\x83new", 4, &error));
  wait_frames (b, 1);
  g_assert_cmpmem (g_bytes_get_data (b->frames->pdata[0], NULL), 4, "\x83new", 4);
  g_assert_true (pm_relay_client_is_open (b->client));
}

static void
test_peer_never_came (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (Peer) a = peer_connect (f, f->a_token, f->b);

  g_assert_no_error (a->error);
  spin_until (is_closed, a->client, WAIT_MS);
  g_assert_cmpuint (pm_relay_client_get_close_code (a->client), ==, 4408);
  g_assert_error (pm_relay_client_get_error (a->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_PEER_TIMEOUT);
}

/* A server that answers the WebSocket handshake and then goes silent: no
 * pongs, no close frame. */
static gboolean
on_silent_run (GThreadedSocketService *service,
               GSocketConnection      *connection,
               GObject                *source,
               gpointer                user_data)
{
  GPtrArray     *held = user_data;
  GInputStream  *in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  g_autoptr (GString) request = g_string_new (NULL);
  g_autofree char *accept = NULL;
  g_autofree char *answer = NULL;
  const char      *key;
  char             c;

  while (!g_str_has_suffix (request->str, "\r\n\r\n") &&
         g_input_stream_read (in, &c, 1, NULL, NULL) == 1)
    g_string_append_c (request, c);
  key = strstr (request->str, "Sec-WebSocket-Key: ");
  g_assert_nonnull (key);
  {
    g_autoptr (GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
    uint8_t digest[20];
    gsize   digest_len = sizeof digest;

    key += strlen ("Sec-WebSocket-Key: ");
    g_checksum_update (sha1, (const guchar *) key, strcspn (key, "\r"));
    g_checksum_update (sha1, (const guchar *) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    g_checksum_get_digest (sha1, digest, &digest_len);
    accept = g_base64_encode (digest, digest_len);
  }
  answer = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                            accept);
  g_output_stream_write_all (out, answer, strlen (answer), NULL, NULL, NULL);
  /* Keep the connection open, and never read or answer again. */
  g_ptr_array_add (held, g_object_ref (connection));
  return TRUE;
}

static void
test_dead (void)
{
  g_autoptr (GPtrArray) held = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GSocketService) service = g_threaded_socket_service_new (1);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *base = NULL;
  g_autoptr (Peer) a = NULL;
  int64_t t0;

  g_socket_listener_add_address (G_SOCKET_LISTENER (service), any, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
  g_assert_no_error (error);
  g_signal_connect (service, "run", G_CALLBACK (on_silent_run), held);
  g_socket_service_start (service);
  base = g_strdup_printf ("http://127.0.0.1:%u",
                          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  a = g_new0 (Peer, 1);
  a->frames = g_ptr_array_new ();
  a->client = pm_relay_client_new (base, "pmdt_silent", "dev_silent");
  pm_relay_client_set_keepalive (a->client, 1, 2);
  pm_relay_client_connect_async (a->client, NULL, on_connected, a);
  spin_until (pm_test_flag_is_set, &a->done, WAIT_MS);
  g_assert_no_error (a->error);
  t0 = g_get_monotonic_time ();
  spin_until (is_closed, a->client, WAIT_MS);
  /* Closed as dead after about two silent intervals, without waiting the
   * 5 s libsoup gives a close frame to be answered. */
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 5 * G_USEC_PER_SEC);
  g_assert_error (pm_relay_client_get_error (a->client), PM_RELAY_CLIENT_ERROR,
                  PM_RELAY_CLIENT_ERROR_DEAD);
  g_assert_cmpuint (pm_relay_client_get_close_code (a->client), ==, 0);
  g_socket_service_stop (service);
  g_socket_listener_close (G_SOCKET_LISTENER (service));
}

static void
test_close_codes (void)
{
  static const struct {
    unsigned           code;
    PmRelayClientError error;
  } map[] = {
    { 1000, PM_RELAY_CLIENT_ERROR_CLOSED },
    { 1001, PM_RELAY_CLIENT_ERROR_UNAVAILABLE },
    { 1006, PM_RELAY_CLIENT_ERROR_CLOSED },
    { 1009, PM_RELAY_CLIENT_ERROR_TOO_BIG },
    { 4000, PM_RELAY_CLIENT_ERROR_IDLE },
    { 4001, PM_RELAY_CLIENT_ERROR_DEAD },
    { 4400, PM_RELAY_CLIENT_ERROR_BAD_REQUEST },
    { 4403, PM_RELAY_CLIENT_ERROR_CROSS_ACCOUNT },
    { 4408, PM_RELAY_CLIENT_ERROR_PEER_TIMEOUT },
    { 4409, PM_RELAY_CLIENT_ERROR_REPLACED },
    { 4410, PM_RELAY_CLIENT_ERROR_REVOKED },
    { 4429, PM_RELAY_CLIENT_ERROR_SESSION_LIMIT },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (map); i++)
    g_assert_cmpint (pm_relay_client_error_from_close_code (map[i].code), ==, map[i].error);
  {
    GEnumClass *klass = g_type_class_ref (PM_TYPE_RELAY_CLIENT_STATE);

    g_assert_cmpstr (g_enum_get_value (klass, PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER)->value_nick,
                     ==, "waiting-for-peer");
    g_type_class_unref (klass);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (capture_writer, NULL, NULL);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
  ADD ("/relay-client/frames", test_frames, NULL);
  ADD ("/relay-client/session", test_session, NULL);
  ADD ("/relay-client/first-byte", test_first_byte, NULL);
  ADD ("/relay-client/refused-before-upgrade", test_refused_before_upgrade, NULL);
  ADD ("/relay-client/local-refusals", test_local_refusals, NULL);
  ADD ("/relay-client/cancel", test_cancel, NULL);
  ADD ("/relay-client/revoked", test_revoked, NULL);
  ADD ("/relay-client/replaced", test_replaced, NULL);
  ADD ("/relay-client/peer-never-came", test_peer_never_came, GINT_TO_POINTER (300));
#undef ADD
  g_test_add_func ("/relay-client/close-codes", test_close_codes);
  g_test_add_func ("/relay-client/dead", test_dead);

  return g_test_run ();
}
