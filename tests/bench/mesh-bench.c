/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * mesh-bench [--json] [--quick] [--rounds N]
 *
 * "Relay first": how soon the first application bytes arrive over the relay
 * on loopback, beside a plain TCP connect in the same run.
 *
 *  - relay_first_byte_ms: devices A and B both start connecting their
 *    PmRelayClient at t0 (a real PmCoordServer + PmRelay + PmStoreSqlite on
 *    127.0.0.1, in this process and on this main loop); A hands its first
 *    message to its PmSession as soon as its WebSocket is open (the session
 *    queues it behind the Noise_IK handshake); the figure is t0 to B's
 *    deliver callback. It covers two HTTP upgrades with token checks, the
 *    relay's pairing, the IK handshake's round trip through the relay and one
 *    data frame.
 *  - relay_handshake_ms: from A's initiation leaving to A's session having its
 *    keys (one round trip through the relay plus the handshake's X25519).
 *  - tcp_connect_ms: a plain TCP connect plus a 1-byte echo on loopback,
 *    blocking, same process: the floor any path pays.
 *
 * Medians over the rounds. Never a pass/fail on speed: the meson test only
 * checks that the JSON is complete (check-mesh-bench-json.py).
 */
#define G_LOG_DOMAIN "pipermesh-mesh-bench"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pm-coord-server.h"
#include "pm-relay-client.h"
#include "pm-session.h"
#include "pm-store-sqlite.h"

#define WAIT_US (10 * G_USEC_PER_SEC)

typedef struct {
  PmSession     *session;
  PmRelayClient *client;
  gboolean       open;
  int64_t        init_sent_us;   /* A: first output */
  int64_t        established_us; /* A: keys in hand */
  int64_t        delivered_us;   /* B: first deliver */
  gboolean       failed;
} End;

static void
end_output (const uint8_t *datagram,
            size_t         len,
            gpointer       user_data)
{
  End *e = user_data;

  if (e->init_sent_us == 0)
    e->init_sent_us = g_get_monotonic_time ();
  if (!pm_relay_client_send (e->client, datagram, len, NULL))
    e->failed = TRUE;
}

static void
end_deliver (const uint8_t *data,
             size_t         len,
             gpointer       user_data)
{
  End *e = user_data;

  if (e->delivered_us == 0)
    e->delivered_us = g_get_monotonic_time ();
}

static void
end_frame (PmRelayClient *client,
           GBytes        *frame,
           gpointer       user_data)
{
  End           *e = user_data;
  size_t         len;
  const uint8_t *data = g_bytes_get_data (frame, &len);

  if (!pm_session_receive (e->session, data, len, g_get_monotonic_time (), NULL))
    e->failed = TRUE;
  if (e->established_us == 0 && pm_session_get_state (e->session) == PM_SESSION_ESTABLISHED)
    e->established_us = g_get_monotonic_time ();
}

static const char hello[] = "hello over the relay";

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  End *e = user_data;
  g_autoptr (GError) error = NULL;

  if (!pm_relay_client_connect_finish (PM_RELAY_CLIENT (source), result, &error))
    {
      g_printerr ("mesh-bench: %s\n", error->message);
      e->failed = TRUE;
      return;
    }
  e->open = TRUE;
}

static void
on_a_connected (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  End *e = user_data;

  on_connected (source, result, user_data);
  if (e->open &&
      !pm_session_send (e->session, (const uint8_t *) hello, sizeof hello, g_get_monotonic_time (),
                        NULL))
    e->failed = TRUE;
}

static gboolean
on_deadline (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main loop while busy(), at most WAIT_US; FALSE if that ran out. */
static gboolean
spin_while (gboolean (*busy) (gpointer),
            gpointer data)
{
  gboolean expired = FALSE;
  unsigned id = g_timeout_add (WAIT_US / 1000, on_deadline, &expired);

  while (busy (data) && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (!expired)
    g_source_remove (id);
  return !expired;
}

typedef struct {
  End *a, *b;
} Pair;

static gboolean
waiting_for_delivery (gpointer data)
{
  Pair *p = data;

  return p->b->delivered_us == 0 && !p->a->failed && !p->b->failed;
}

static gboolean
waiting_for_close (gpointer data)
{
  Pair *p = data;

  return pm_relay_client_get_state (p->a->client) != PM_RELAY_CLIENT_STATE_CLOSED ||
         pm_relay_client_get_state (p->b->client) != PM_RELAY_CLIENT_STATE_CLOSED;
}

/* One relay round; FALSE on failure. */
static gboolean
relay_round (const char      *base,
             const char      *a_token,
             const char      *a_id,
             const PmKeypair *ka,
             const char      *b_token,
             const char      *b_id,
             const PmKeypair *kb,
             double          *first_byte_ms,
             double          *handshake_ms)
{
  End      a = { 0 }, b = { 0 };
  Pair     pair = { &a, &b };
  int64_t  t0;
  gboolean ok;

  a.session = pm_session_new (ka, kb->pub, NULL);
  b.session = pm_session_new (kb, ka->pub, NULL);
  pm_session_set_callbacks (a.session, end_output, end_deliver, &a);
  pm_session_set_callbacks (b.session, end_output, end_deliver, &b);
  a.client = pm_relay_client_new (base, a_token, b_id);
  b.client = pm_relay_client_new (base, b_token, a_id);
  g_signal_connect (a.client, "frame-received", G_CALLBACK (end_frame), &a);
  g_signal_connect (b.client, "frame-received", G_CALLBACK (end_frame), &b);

  t0 = g_get_monotonic_time ();
  pm_relay_client_connect_async (a.client, NULL, on_a_connected, &a);
  pm_relay_client_connect_async (b.client, NULL, on_connected, &b);
  ok = spin_while (waiting_for_delivery, &pair) && !a.failed && !b.failed;
  if (ok)
    {
      *first_byte_ms = (b.delivered_us - t0) / 1000.0;
      *handshake_ms = (a.established_us - a.init_sent_us) / 1000.0;
    }
  pm_relay_client_close (a.client);
  pm_relay_client_close (b.client);
  ok = spin_while (waiting_for_close, &pair) && ok;
  g_signal_handlers_disconnect_by_data (a.client, &a);
  g_signal_handlers_disconnect_by_data (b.client, &b);
  g_object_unref (a.client);
  g_object_unref (b.client);
  pm_session_free (a.session);
  pm_session_free (b.session);
  return ok;
}

/* A TCP connect and a 1-byte echo on loopback, in ms; negative on failure. */
static double
tcp_round (int listener,
           int port)
{
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons (port) };
  int64_t            t0;
  int                client, server, one = 1;
  char               byte = 'x';
  double             ms = -1;

  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  t0 = g_get_monotonic_time ();
  client = socket (AF_INET, SOCK_STREAM, 0);
  setsockopt (client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect (client, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      close (client);
      return -1;
    }
  server = accept (listener, NULL, NULL);
  if (server >= 0 && write (client, &byte, 1) == 1 && read (server, &byte, 1) == 1 &&
      write (server, &byte, 1) == 1 && read (client, &byte, 1) == 1)
    ms = (g_get_monotonic_time () - t0) / 1000.0;
  if (server >= 0)
    close (server);
  close (client);
  return ms;
}

static int
compare_double (const void *a,
                const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
median (double  *values,
        unsigned n)
{
  qsort (values, n, sizeof *values, compare_double);
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static char *
hex_of (const uint8_t *data,
        size_t         len)
{
  GString *hex = g_string_new (NULL);

  for (size_t i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", data[i]);
  return g_string_free (hex, FALSE);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) context = NULL;
  gboolean     json = FALSE, quick = FALSE;
  int          rounds = 20;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "Few rounds (for the test suite)", NULL },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Rounds (median reported)", "N" },
    { NULL },
  };
  g_autofree char   *dir = NULL;
  g_autofree char   *db_path = NULL;
  g_autofree char   *base = NULL;
  g_autofree char   *key = NULL;
  g_autofree char   *a_token = NULL;
  g_autofree char   *b_token = NULL;
  g_autofree char   *a_pub = NULL;
  g_autofree char   *b_pub = NULL;
  g_autofree double *first_byte = NULL;
  g_autofree double *handshake = NULL;
  g_autofree double *tcp = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (PmDeviceRecord) a = NULL;
  g_autoptr (PmDeviceRecord) b = NULL;
  PmStoreSqlite     *store;
  PmRelay           *relay;
  PmCoordServer     *server;
  PmKeypair          ka, kb;
  struct sockaddr_in addr = { .sin_family = AF_INET };
  socklen_t          addr_len = sizeof addr;
  int                listener;
  int                status = EXIT_SUCCESS;

  context = g_option_context_new ("- time to the first byte over the relay");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (quick)
    rounds = 3;
  if (rounds < 1)
    {
      g_printerr ("--rounds must be positive\n");
      return 2;
    }

  dir = g_dir_make_tmp ("pipermesh-mesh-bench-XXXXXX", &error);
  g_assert_no_error (error);
  db_path = g_build_filename (dir, "server.db", NULL);
  store = pm_store_sqlite_open (db_path, &error);
  g_assert_no_error (error);
  account = pm_store_create_account (PM_STORE (store), "bench", pm_store_now (), &error);
  g_assert_no_error (error);
  key = pm_store_create_enrollment_key (PM_STORE (store), account->id, 3600, TRUE, pm_store_now (),
                                        NULL, &error);
  g_assert_no_error (error);
  pm_keypair_generate (&ka);
  pm_keypair_generate (&kb);
  a_pub = hex_of (ka.pub, sizeof ka.pub);
  b_pub = hex_of (kb.pub, sizeof kb.pub);
  a = pm_store_enroll_device (PM_STORE (store), key, "a", "linux", a_pub, "file", pm_store_now (),
                              &a_token, &error);
  g_assert_no_error (error);
  b = pm_store_enroll_device (PM_STORE (store), key, "b", "linux", b_pub, "file", pm_store_now (),
                              &b_token, &error);
  g_assert_no_error (error);
  relay = pm_relay_new (NULL);
  server = pm_coord_server_new (PM_STORE (store), relay, NULL);
  if (!pm_coord_server_listen (server, "127.0.0.1:0", NULL, &error))
    g_error ("%s", error->message);
  base = pm_coord_server_get_base_uri (server);

  listener = socket (AF_INET, SOCK_STREAM, 0);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (listener < 0 || bind (listener, (struct sockaddr *) &addr, sizeof addr) != 0 ||
      listen (listener, 16) != 0 ||
      getsockname (listener, (struct sockaddr *) &addr, &addr_len) != 0)
    g_error ("cannot listen on loopback");

  first_byte = g_new (double, rounds);
  handshake = g_new (double, rounds);
  tcp = g_new (double, rounds);
  /* Alternate relay and TCP rounds so a slow spell hits both alike. */
  for (int r = 0; r < rounds; r++)
    {
      if (!relay_round (base, a_token, a->id, &ka, b_token, b->id, &kb, &first_byte[r],
                        &handshake[r]))
        {
          g_printerr ("mesh-bench: relay round %d failed\n", r);
          status = EXIT_FAILURE;
          break;
        }
      tcp[r] = tcp_round (listener, ntohs (addr.sin_port));
      if (tcp[r] < 0)
        {
          g_printerr ("mesh-bench: TCP round %d failed\n", r);
          status = EXIT_FAILURE;
          break;
        }
    }

  if (status == EXIT_SUCCESS)
    {
      double fb = median (first_byte, rounds), hs = median (handshake, rounds);
      double tc = median (tcp, rounds);

      if (json)
        {
          g_autoptr (JsonBuilder) builder = json_builder_new ();
          g_autoptr (JsonGenerator) generator = json_generator_new ();
          g_autoptr (JsonNode) root = NULL;
          g_autofree char *text = NULL;

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "relay_first_byte_ms_median");
          json_builder_add_double_value (builder, fb);
          json_builder_set_member_name (builder, "relay_handshake_ms_median");
          json_builder_add_double_value (builder, hs);
          json_builder_set_member_name (builder, "tcp_connect_ms_median");
          json_builder_add_double_value (builder, tc);
          json_builder_set_member_name (builder, "rounds");
          json_builder_add_int_value (builder, rounds);
          json_builder_end_object (builder);
          root = json_builder_get_root (builder);
          json_generator_set_root (generator, root);
          json_generator_set_pretty (generator, TRUE);
          text = json_generator_to_data (generator, NULL);
          g_print ("%s\n", text);
        }
      else
        {
          g_print ("relay first byte  %8.3f ms (median)\n", fb);
          g_print ("relay handshake   %8.3f ms (median)\n", hs);
          g_print ("TCP connect+echo  %8.3f ms (median)\n", tc);
          g_print ("(%d rounds)\n", rounds);
        }
    }

  close (listener);
  g_object_unref (server);
  g_object_unref (relay);
  g_object_unref (store);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  {
    g_autofree char *wal = g_strconcat (db_path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (db_path, "-shm", NULL);

    g_unlink (db_path);
    g_unlink (wal);
    g_unlink (shm);
    g_rmdir (dir);
  }
  pm_keypair_clear (&ka);
  pm_keypair_clear (&kb);
  return status;
}
