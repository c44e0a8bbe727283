/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmRelay over real WebSockets on loopback, the way libsoup's own WebSocket
 * tests do it: an in-process SoupServer on 127.0.0.1 (port 0) whose handler
 * maps a test token to an account and device and calls pm_relay_accept(), and
 * SoupSession clients. Every wait iterates the main context under a deadline,
 * so no test can hang.
 *
 * Test-only credentials: "Authorization: Bearer <account>:<device>".
 */
#define G_LOG_DOMAIN "pipermesh-test-relay"

#include <libsoup/soup.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "pm-test-util.h"
#include "pm-relay-stream.h"
#include "pm-relay.h"

/* --- Log capture ------------------------------------------------------------ */

static GString *captured_log;

static GLogWriterOutput
capture_writer (GLogLevelFlags   level,
                const GLogField *fields,
                gsize            n_fields,
                gpointer         user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    {
      g_string_append (captured_log, fields[i].key);
      g_string_append_c (captured_log, '=');
      if (fields[i].length < 0)
        g_string_append (captured_log, fields[i].value);
      else
        g_string_append_len (captured_log, fields[i].value, fields[i].length);
      g_string_append_c (captured_log, ' ');
    }
  g_string_append_c (captured_log, '\n');
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return g_log_writer_default (level, fields, n_fields, user_data);
  return G_LOG_WRITER_HANDLED;
}

/* --- Main-loop helpers ------------------------------------------------------ */

/* Iterates the default context until @cond holds or @ms pass. */
static gboolean
spin_until (PmTestCond cond,
            gpointer   data,
            unsigned   ms)
{
  return pm_test_spin_until (cond, data, ms);
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

static void
spin_for (unsigned ms)
{
  spin_until (never, NULL, ms);
}

/* --- Fixture ---------------------------------------------------------------- */

typedef struct {
  PmRelayLimits limits;
  SoupServer   *server;
  PmRelay      *relay;
  SoupSession  *session;
  unsigned      port;
} Fixture;

static void
server_handler (SoupServer        *server,
                SoupServerMessage *msg,
                const char        *path,
                GHashTable        *query,
                gpointer           user_data)
{
  Fixture    *f = user_data;
  const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                   "Authorization");
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);
  g_auto (GStrv) cred = NULL;

  /* "", "v1", "mesh", "relay", peer, "stream" */
  if (g_strv_length (parts) != 6 || strcmp (parts[5], "stream") != 0 || parts[4][0] == '\0')
    {
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      return;
    }
  if (auth == NULL || !g_str_has_prefix (auth, "Bearer "))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_UNAUTHORIZED, NULL);
      return;
    }
  cred = g_strsplit (auth + strlen ("Bearer "), ":", 2);
  if (g_strv_length (cred) != 2)
    {
      soup_server_message_set_status (msg, SOUP_STATUS_UNAUTHORIZED, NULL);
      return;
    }
  pm_relay_accept (f->relay, msg, cred[0], cred[1], parts[4]);
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  pm_relay_limits_default (&f->limits);
}

/* Starts the relay with f->limits and the server. */
static void
fixture_start (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GInetAddress) loopback = NULL;
  g_autoptr (GSocketAddress) address = NULL;
  GSList *uris;

  f->relay = pm_relay_new (&f->limits);
  f->server = soup_server_new ("server-header", "pipermesh-test", NULL);
  soup_server_add_handler (f->server, "/v1/mesh/relay", server_handler, f, NULL);
  /* Our own listening socket: GSocket's default backlog of 10 overflows when
   * a thousand clients connect at once, and Linux then silently drops the
   * excess handshakes (the client believes it is connected). */
  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  address = g_inet_socket_address_new (loopback, 0);
  g_assert_true (g_socket_bind (sock, address, TRUE, &error));
  g_socket_set_listen_backlog (sock, 4096);
  g_assert_true (g_socket_listen (sock, &error));
  g_assert_true (soup_server_listen_socket (f->server, sock, 0, &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (f->server);
  g_assert_nonnull (uris);
  f->port = (unsigned) g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  f->session = g_object_new (SOUP_TYPE_SESSION, "max-conns", 8192,
                             "max-conns-per-host", 8192, NULL);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_clear_object (&f->session);
  g_clear_object (&f->relay);
  if (f->server != NULL)
    soup_server_disconnect (f->server);
  g_clear_object (&f->server);
  spin_for (50);
}

/* --- Clients ---------------------------------------------------------------- */

typedef struct {
  SoupWebsocketConnection *ws;
  GError                  *error;
  gboolean                 done;
  GPtrArray               *received; /* GBytes */
  gboolean                 closed;
} Client;

static void
on_client_message (SoupWebsocketConnection *ws,
                   int                      type,
                   GBytes                  *message,
                   gpointer                 user_data)
{
  Client *c = user_data;

  g_ptr_array_add (c->received, g_bytes_ref (message));
}

static void
on_client_closed (SoupWebsocketConnection *ws,
                  gpointer                 user_data)
{
  ((Client *) user_data)->closed = TRUE;
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Client *c = user_data;

  c->ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &c->error);
  c->done = TRUE;
  if (c->ws != NULL)
    {
      g_signal_connect (c->ws, "message", G_CALLBACK (on_client_message), c);
      g_signal_connect (c->ws, "closed", G_CALLBACK (on_client_closed), c);
    }
}

static char *
relay_url (Fixture    *f,
           const char *peer)
{
  return g_strdup_printf ("http://127.0.0.1:%u/v1/mesh/relay/%s/stream", f->port, peer);
}

static void
client_start_on (Fixture     *f,
                 SoupSession *session,
                 Client      *c,
                 const char  *account,
                 const char  *device,
                 const char  *peer)
{
  g_autofree char *url = relay_url (f, peer);
  g_autofree char *auth = g_strdup_printf ("Bearer %s:%s", account, device);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);

  memset (c, 0, sizeof *c);
  c->received = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  soup_session_websocket_connect_async (session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        on_connected, c);
}

static void
client_start (Fixture    *f,
              Client     *c,
              const char *account,
              const char *device,
              const char *peer)
{
  client_start_on (f, f->session, c, account, device, peer);
}

static gboolean
client_done (gpointer data)
{
  return ((Client *) data)->done;
}

static Client *
client_connect (Fixture    *f,
                const char *account,
                const char *device,
                const char *peer)
{
  Client *c = g_new0 (Client, 1);

  client_start (f, c, account, device, peer);
  g_assert_true (spin_until (client_done, c, 5000));
  g_assert_no_error (c->error);
  g_assert_nonnull (c->ws);
  return c;
}

static void
client_clear (Client *c)
{
  if (c->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (c->ws, c);
      if (soup_websocket_connection_get_state (c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (c->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
    }
  g_clear_object (&c->ws);
  g_clear_error (&c->error);
  g_clear_pointer (&c->received, g_ptr_array_unref);
}

static void
client_free (Client *c)
{
  client_clear (c);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

/* The close code the server sent, once it has arrived. */
static gboolean
client_got_close (gpointer data)
{
  Client *c = data;

  return c->closed || soup_websocket_connection_get_close_code (c->ws) != 0;
}

static unsigned short
wait_close_code (Client  *c,
                 unsigned ms)
{
  g_assert_true (spin_until (client_got_close, c, ms));
  return soup_websocket_connection_get_close_code (c->ws);
}

typedef struct {
  Client  *c;
  unsigned n;
} Count;

static gboolean
client_has_n (gpointer data)
{
  Count *count = data;

  return count->c->received->len >= count->n;
}

static void
wait_messages (Client  *c,
               unsigned n,
               unsigned ms)
{
  Count count = { c, n };

  g_assert_true (spin_until (client_has_n, &count, ms));
}

static GBytes *
random_bytes (size_t size)
{
  uint8_t *p = g_malloc (size ? size : 1);

  for (size_t i = 0; i < size; i++)
    p[i] = (uint8_t) g_random_int ();
  return g_bytes_new_take (p, size);
}

static PmRelayStats
stats (Fixture *f)
{
  PmRelayStats s;

  pm_relay_get_stats (f->relay, &s);
  return s;
}

static gboolean
relay_active_is_1 (gpointer data)
{
  return stats (data).sessions_active == 1;
}

/* Connects devA and devB of acct1 to each other and waits until paired. */
static void
connect_pair (Fixture *f,
              Client **a,
              Client **b)
{
  *a = client_connect (f, "acct1", "devA", "devB");
  *b = client_connect (f, "acct1", "devB", "devA");
  g_assert_true (spin_until (relay_active_is_1, f, 5000));
}

/* --- Tests ------------------------------------------------------------------ */

static void
test_pair_forward (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (GBytes) m1 = random_bytes (1000);
  g_autoptr (GBytes) m2 = random_bytes (PM_RELAY_MAX_MESSAGE_SIZE);
  g_autoptr (GBytes) m3 = random_bytes (1);

  fixture_start (f);
  a = client_connect (f, "acct1", "devA", "devB");
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 1);
  /* Sent before the peer is there: held back, not dropped. */
  soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m1);
  spin_for (50);
  b = client_connect (f, "acct1", "devB", "devA");
  wait_messages (b, 1, 5000);
  g_assert_true (g_bytes_equal (b->received->pdata[0], m1));

  soup_websocket_connection_send_message (b->ws, SOUP_WEBSOCKET_DATA_BINARY, m2);
  soup_websocket_connection_send_message (b->ws, SOUP_WEBSOCKET_DATA_BINARY, m3);
  wait_messages (a, 2, 5000);
  g_assert_true (g_bytes_equal (a->received->pdata[0], m2));
  g_assert_true (g_bytes_equal (a->received->pdata[1], m3));

  g_assert_cmpuint (stats (f).sessions_active, ==, 1);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 0);
  g_assert_cmpuint (stats (f).bytes_relayed, ==, 1000 + PM_RELAY_MAX_MESSAGE_SIZE + 1);
  g_assert_cmpuint (stats (f).messages_relayed, ==, 3);
  g_assert_cmpuint (stats (f).bytes_dropped, ==, 0);

  /* When one side leaves, the other waits for it again. */
  soup_websocket_connection_close (a->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_assert_true (spin_until (client_got_close, a, 5000));
  spin_for (100);
  g_assert_cmpuint (stats (f).sessions_active, ==, 0);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 1);
  g_assert_cmpint (soup_websocket_connection_get_state (b->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
}

static void
test_cross_account (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;

  fixture_start (f);
  a = client_connect (f, "acct1", "devA", "devB");
  b = client_connect (f, "acct2", "devB", "devA");
  g_assert_cmpuint (wait_close_code (b, 5000), ==, PM_RELAY_CLOSE_CROSS_ACCOUNT);
  g_assert_cmpint (soup_websocket_connection_get_state (a->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_CROSS_ACCOUNT], ==, 1);
  g_assert_cmpuint (stats (f).sessions_active, ==, 0);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 1);
}

static void
test_too_big (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (GBytes) big = random_bytes (PM_RELAY_MAX_MESSAGE_SIZE + 1);

  fixture_start (f);
  connect_pair (f, &a, &b);
  soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, big);
  g_assert_cmpuint (wait_close_code (a, 5000), ==, PM_RELAY_CLOSE_TOO_BIG);
  g_assert_cmpuint (b->received->len, ==, 0);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_TOO_BIG], ==, 1);
  g_assert_cmpuint (stats (f).bytes_relayed, ==, 0);
}

static void
test_text_refused (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;

  fixture_start (f);
  connect_pair (f, &a, &b);
  soup_websocket_connection_send_text (a->ws, "hello");
  g_assert_cmpuint (wait_close_code (a, 5000), ==, PM_RELAY_CLOSE_UNSUPPORTED_DATA);
  g_assert_cmpuint (b->received->len, ==, 0);
}

static void
test_wait_timeout (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  int64_t start;

  f->limits.wait_timeout_us = 200 * 1000;
  fixture_start (f);
  start = g_get_monotonic_time ();
  a = client_connect (f, "acct1", "devA", "devB");
  g_assert_cmpuint (wait_close_code (a, 5000), ==, PM_RELAY_CLOSE_WAIT_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 190 * 1000);
  g_assert_cmpstr (soup_websocket_connection_get_close_data (a->ws), ==, "peer did not connect");
  spin_for (50);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 0);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_WAIT_TIMEOUT], ==, 1);
}

static void
test_idle_timeout (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (GBytes) m = random_bytes (10);
  int64_t start;

  f->limits.idle_timeout_us = 400 * 1000;
  fixture_start (f);
  connect_pair (f, &a, &b);
  /* Data keeps the session alive past the idle timeout... */
  for (int i = 0; i < 6; i++)
    {
      soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
      spin_for (100);
    }
  g_assert_cmpint (soup_websocket_connection_get_state (a->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  g_assert_cmpuint (b->received->len, ==, 6);
  /* ...and silence ends it. */
  start = g_get_monotonic_time ();
  g_assert_cmpuint (wait_close_code (a, 5000), ==, PM_RELAY_CLOSE_IDLE);
  g_assert_cmpuint (wait_close_code (b, 5000), ==, PM_RELAY_CLOSE_IDLE);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 250 * 1000);
  spin_for (50);
  g_assert_cmpuint (stats (f).sessions_active + stats (f).sessions_waiting, ==, 0);
}

static void
test_last_connection_wins (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr (Client) a1 = NULL;
  g_autoptr (Client) a2 = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (GBytes) m = random_bytes (100);

  fixture_start (f);
  connect_pair (f, &a1, &b);
  a2 = client_connect (f, "acct1", "devA", "devB");
  g_assert_cmpuint (wait_close_code (a1, 5000), ==, PM_RELAY_CLOSE_REPLACED);
  g_assert_true (spin_until (relay_active_is_1, f, 5000));
  soup_websocket_connection_send_message (b->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
  wait_messages (a2, 1, 5000);
  g_assert_true (g_bytes_equal (a2->received->pdata[0], m));
  g_assert_cmpuint (a1->received->len, ==, 0);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_REPLACED], ==, 1);
}

static void
test_close_device (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (Client) c = NULL;

  fixture_start (f);
  connect_pair (f, &a, &b);
  c = client_connect (f, "acct1", "devC", "devB"); /* waiting, not involving devA */
  pm_relay_close_device (f->relay, "devA");
  g_assert_cmpuint (wait_close_code (a, 5000), ==, PM_RELAY_CLOSE_REVOKED);
  g_assert_cmpuint (wait_close_code (b, 5000), ==, PM_RELAY_CLOSE_REVOKED);
  g_assert_cmpint (soup_websocket_connection_get_state (c->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  spin_for (50);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 1);
  g_assert_cmpuint (stats (f).sessions_active, ==, 0);
}

static void
test_session_limit (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (Client) ab = NULL;
  g_autoptr (Client) ac = NULL;
  g_autoptr (Client) ad = NULL;
  g_autoptr (Client) other = NULL;

  f->limits.max_sessions_per_account = 2;
  fixture_start (f);
  ab = client_connect (f, "acct1", "devA", "devB");
  ac = client_connect (f, "acct1", "devA", "devC");
  ad = client_connect (f, "acct1", "devA", "devD");
  g_assert_cmpuint (wait_close_code (ad, 5000), ==, PM_RELAY_CLOSE_SESSION_LIMIT);
  /* Another account has its own allowance. */
  other = client_connect (f, "acct2", "devX", "devY");
  spin_for (100);
  g_assert_cmpint (soup_websocket_connection_get_state (other->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 3);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_SESSION_LIMIT], ==, 1);
}

static void
test_rate_limit (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  g_autoptr (GBytes) m = random_bytes (64 * 1024);
  const unsigned n = 32; /* 2 MiB at 1 MiB/s with a 256 KiB burst: ≥ 1.75 s */
  int64_t        start;
  double         seconds;

  f->limits.account_bytes_per_s = 1024 * 1024;
  f->limits.account_burst_bytes = 256 * 1024;
  fixture_start (f);
  connect_pair (f, &a, &b);
  start = g_get_monotonic_time ();
  for (unsigned i = 0; i < n; i++)
    soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
  wait_messages (b, n, 10000);
  seconds = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  g_test_message ("2 MiB at 1 MiB/s took %.2f s", seconds);
  g_assert_cmpfloat (seconds, >=, 1.5);
  g_assert_cmpfloat (seconds, <, 6.0);
  g_assert_cmpuint (stats (f).rate_pauses, >, 0);
  /* Delayed, never dropped or closed. */
  g_assert_cmpint (soup_websocket_connection_get_state (a->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  for (unsigned i = 0; i < n; i++)
    g_assert_true (g_bytes_equal (b->received->pdata[i], m));
}

/* A client whose reading the test controls: a hand-made WebSocket handshake,
 * then a SoupWebsocketConnection over a pausable input stream. */
typedef struct {
  SoupWebsocketConnection *ws;
  PmRelayInputStream      *input;
  uint64_t                 bytes;
  unsigned                 messages;
} SlowClient;

static void
on_slow_message (SoupWebsocketConnection *ws,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 user_data)
{
  SlowClient *s = user_data;

  s->bytes += g_bytes_get_size (message);
  s->messages++;
}

/* A TCP connection to the relay on which the WebSocket handshake is done. */
static GSocketConnection *
raw_connect (Fixture    *f,
             const char *account,
             const char *device,
             const char *peer)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketClient) sc = g_socket_client_new ();
  g_autoptr (GSocketConnection) conn = NULL;
  g_autofree char *request = NULL;
  g_autoptr (GString) response = g_string_new (NULL);
  GInputStream *in;

  conn = g_socket_client_connect_to_host (sc, "127.0.0.1", (guint16) f->port, NULL, &error);
  g_assert_no_error (error);
  request = g_strdup_printf ("GET /v1/mesh/relay/%s/stream HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "Authorization: Bearer %s:%s\r\n\r\n",
                             peer, f->port, account, device);
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
                                            request, strlen (request), NULL, NULL, &error));
  g_assert_no_error (error);
  /* The server runs in this thread: read the 101 response byte by byte as it
   * arrives, iterating the main context in between. */
  in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  while (!g_str_has_suffix (response->str, "\r\n\r\n"))
    {
      char   ch;
      gssize n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (in), &ch, 1,
                                                           NULL, NULL);

      if (n == 1)
        g_string_append_c (response, ch);
      else
        g_main_context_iteration (NULL, FALSE);
      g_assert_cmpuint (response->len, <, 4096);
    }
  g_assert_true (g_str_has_prefix (response->str, "HTTP/1.1 101"));
  return g_steal_pointer (&conn);
}

static void
slow_client_connect (Fixture    *f,
                     SlowClient *s,
                     const char *account,
                     const char *device,
                     const char *peer)
{
  g_autoptr (GSocketConnection) conn = raw_connect (f, account, device, peer);
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  g_autoptr (GIOStream) stream = NULL;
  g_autoptr (PmRelayOutputStream) output = NULL;
  g_autoptr (GUri) uri = NULL;

  s->input = pm_relay_input_stream_new (in, G_MAXUINT32);
  output = pm_relay_output_stream_new (G_IO_STREAM (conn));
  stream = g_simple_io_stream_new (G_INPUT_STREAM (s->input), G_OUTPUT_STREAM (output));
  uri = g_uri_parse ("ws://127.0.0.1/", G_URI_FLAGS_NONE, NULL);
  s->ws = soup_websocket_connection_new (stream, uri, SOUP_WEBSOCKET_CONNECTION_CLIENT,
                                         NULL, NULL, NULL);
  soup_websocket_connection_set_max_incoming_payload_size (s->ws, 0);
  g_signal_connect (s->ws, "message", G_CALLBACK (on_slow_message), s);
}

typedef struct {
  SlowClient *s;
  uint64_t    bytes;
} SlowCount;

static gboolean
slow_has_bytes (gpointer data)
{
  SlowCount *c = data;

  return c->s->bytes >= c->bytes;
}

static void
test_backpressure (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (GBytes) m = random_bytes (64 * 1024);
  SlowClient     b = { 0 };
  const unsigned n = 512; /* 32 MiB */
  SlowCount      want = { &b, (uint64_t) n * 64 * 1024 };
  uint64_t       relayed;

  f->limits.account_bytes_per_s = 0;
  fixture_start (f);
  a = client_connect (f, "acct1", "devA", "devB");
  slow_client_connect (f, &b, "acct1", "devB", "devA");
  g_assert_true (spin_until (relay_active_is_1, f, 5000));

  /* B stops reading; A sends 32 MiB. */
  pm_relay_input_stream_set_paused (b.input, TRUE);
  for (unsigned i = 0; i < n; i++)
    soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
  spin_for (1500);
  relayed = stats (f).bytes_relayed;
  g_test_message ("with the reader stopped, the relay forwarded %" G_GUINT64_FORMAT
                  " of %" G_GUINT64_FORMAT " bytes (%" G_GUINT64_FORMAT " pauses)",
                  relayed, want.bytes, stats (f).backpressure_pauses);
  /* What it took in is bounded by the high-water mark plus the kernel's
   * socket buffers on both sides (a few MiB on loopback), not by what A sent. */
  g_assert_cmpuint (stats (f).backpressure_pauses, >, 0);
  g_assert_cmpuint (relayed, <, want.bytes / 2);

  /* B reads again: everything arrives. */
  pm_relay_input_stream_set_paused (b.input, FALSE);
  g_assert_true (spin_until (slow_has_bytes, &want, 20000));
  g_assert_cmpuint (b.messages, ==, n);

  g_signal_handlers_disconnect_by_data (b.ws, &b);
  soup_websocket_connection_close (b.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_clear_object (&b.ws);
  g_clear_object (&b.input);
}

/* Writes one masked client frame (mask key 0) of @len zero bytes. */
static void
write_frame (GSocketConnection *conn,
             uint8_t            first,
             size_t             len)
{
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *frame = g_malloc0 (8 + len);
  GOutputStream      *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));

  g_assert_cmpuint (len, <, 65536);
  g_assert_cmpuint (len, >, 125);
  frame[0] = first;
  frame[1] = 0x80 | 126;
  frame[2] = (uint8_t) (len >> 8);
  frame[3] = (uint8_t) len;
  /* frame[4..7]: mask key 0, so the payload goes as is */
  g_assert_true (g_output_stream_write_all (out, frame, 8 + len, NULL, NULL, &error));
  g_assert_no_error (error);
}

typedef struct {
  GInputStream *in;
  uint8_t       buf[64];
  size_t        len;
} RawRead;

static gboolean
raw_has_close (gpointer data)
{
  RawRead *r = data;
  gssize   n;

  if (r->len < sizeof r->buf)
    {
      n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (r->in),
                                                    r->buf + r->len, sizeof r->buf - r->len,
                                                    NULL, NULL);
      if (n > 0)
        r->len += (size_t) n;
    }
  return r->len >= 4;
}

static void
test_too_big_fragmented (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (Client) b = NULL;
  g_autoptr (GSocketConnection) a = NULL;
  RawRead r = { 0 };

  fixture_start (f);
  b = client_connect (f, "acct1", "devB", "devA");
  a = raw_connect (f, "acct1", "devA", "devB");
  g_assert_true (spin_until (relay_active_is_1, f, 5000));
  /* 40,000 + 40,000 bytes: each fragment is fine, the message is not. */
  write_frame (a, 0x02, 40000); /* binary, not FIN */
  write_frame (a, 0x00, 40000); /* continuation, not FIN */
  r.in = g_io_stream_get_input_stream (G_IO_STREAM (a));
  g_assert_true (spin_until (raw_has_close, &r, 5000));
  g_assert_cmphex (r.buf[0], ==, 0x88); /* FIN + close */
  g_assert_cmpuint ((unsigned) r.buf[2] << 8 | r.buf[3], ==, PM_RELAY_CLOSE_TOO_BIG);
  g_assert_cmpuint (b->received->len, ==, 0);
  g_assert_cmpuint (stats (f).closed[PM_RELAY_REASON_TOO_BIG], ==, 1);
}

static gboolean
relay_saw_dead (gpointer data)
{
  return stats (data).closed[PM_RELAY_REASON_DEAD] == 1;
}

static void
test_dead_connection (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  SlowClient b = { 0 };

  f->limits.keepalive_interval_s = 1;
  f->limits.dead_after_pings = 2;
  fixture_start (f);
  a = client_connect (f, "acct1", "devA", "devB");
  slow_client_connect (f, &b, "acct1", "devB", "devA");
  g_assert_true (spin_until (relay_active_is_1, f, 5000));
  /* B stops reading, so it answers no pings; A answers them (libsoup does). */
  pm_relay_input_stream_set_paused (b.input, TRUE);
  g_assert_true (spin_until (relay_saw_dead, f, 6000));
  spin_for (100);
  g_assert_cmpint (soup_websocket_connection_get_state (a->ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  g_assert_cmpuint (stats (f).sessions_waiting, ==, 1);

  g_signal_handlers_disconnect_by_data (b.ws, &b);
  g_clear_object (&b.ws);
  g_clear_object (&b.input);
}

static void
test_log_has_no_payload (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  char marker[33];
  g_autoptr (GBytes) m = NULL;

  for (int i = 0; i < 32; i++)
    marker[i] = "0123456789abcdef"[g_random_int_range (0, 16)];
  marker[32] = '\0';
  m = g_bytes_new (marker, 32);

  g_string_truncate (captured_log, 0);
  fixture_start (f);
  connect_pair (f, &a, &b);
  soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
  soup_websocket_connection_send_message (b->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
  wait_messages (b, 1, 5000);
  wait_messages (a, 1, 5000);
  g_assert_true (g_bytes_equal (b->received->pdata[0], m));
  /* Also through the refusal and close paths. */
  soup_websocket_connection_send_text (a->ws, marker);
  wait_close_code (a, 5000);
  pm_relay_close_device (f->relay, "devB");
  wait_close_code (b, 5000);
  spin_for (100);

  g_assert_cmpuint (captured_log->len, >, 0);
  g_assert_nonnull (strstr (captured_log->str, "pipermesh-relay"));
  g_assert_null (strstr (captured_log->str, marker));
  g_assert_null (strstr (captured_log->str, marker + 16)); /* no partial copy either */
}

/* --- Integrity: 256 MiB through one pipe ------------------------------------ */

typedef struct {
  GChecksum *sum;
  uint64_t   bytes;
  unsigned   messages;
} Sink;

static void
on_sink_message (SoupWebsocketConnection *ws,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 user_data)
{
  Sink         *sink = user_data;
  gsize         len;
  const guint8 *p = g_bytes_get_data (message, &len);

  g_checksum_update (sink->sum, p, (gssize) len);
  sink->bytes += len;
  sink->messages++;
}

static gboolean
sink_behind (gpointer data)
{
  gpointer *pair = data;
  Sink     *sink = pair[0];
  unsigned *sent = pair[1];

  return *sent - sink->messages < 32;
}

static gboolean
sink_caught_up (gpointer data)
{
  gpointer *pair = data;
  Sink     *sink = pair[0];
  unsigned *sent = pair[1];

  return sink->messages >= *sent;
}

static void
test_integrity (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (Client) a = NULL;
  g_autoptr (Client) b = NULL;
  const size_t   size = 64 * 1024;
  const unsigned n = 4096; /* 256 MiB */
  g_autoptr (GChecksum) sent_sum = g_checksum_new (G_CHECKSUM_SHA256);
  Sink                sink = { g_checksum_new (G_CHECKSUM_SHA256), 0, 0 };
  g_autofree uint8_t *pool = NULL;
  const size_t        pool_size = 1024 * 1024;
  unsigned            sent = 0;
  gpointer            pair[2] = { &sink, &sent };
  int64_t             start;
  double              seconds;

  f->limits.account_bytes_per_s = 0;
  fixture_start (f);
  connect_pair (f, &a, &b);
  g_signal_connect (b->ws, "message", G_CALLBACK (on_sink_message), &sink);
  g_signal_handlers_disconnect_by_func (b->ws, on_client_message, b);

  pool = g_malloc (pool_size + size);
  for (size_t i = 0; i < pool_size + size; i += 4)
    {
      uint32_t r = g_random_int ();
      memcpy (pool + i, &r, 4);
    }
  start = g_get_monotonic_time ();
  while (sent < n)
    {
      /* Windowed: at most 32 messages (2 MiB) in flight, so memory stays flat. */
      g_assert_true (spin_until (sink_behind, pair, 30000));
      {
        size_t offset = ((size_t) sent * 4099) % pool_size;
        g_autoptr (GBytes) m = NULL;

        memcpy (pool + offset, &sent, sizeof sent); /* every message differs */
        m = g_bytes_new (pool + offset, size);
        g_checksum_update (sent_sum, pool + offset, (gssize) size);
        soup_websocket_connection_send_message (a->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
        sent++;
      }
    }
  g_assert_true (spin_until (sink_caught_up, pair, 120000));
  seconds = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  g_test_message ("256 MiB relayed in %.2f s (%.0f MB/s)", seconds, 268435456.0 / seconds / 1e6);
  g_assert_cmpuint (sink.bytes, ==, (uint64_t) n * size);
  g_assert_cmpstr (g_checksum_get_string (sink.sum), ==, g_checksum_get_string (sent_sum));
  g_signal_handlers_disconnect_by_data (b->ws, &sink);
  g_checksum_free (sink.sum);
}

/* --- Many pairs at once ------------------------------------------------------ */

static gboolean
all_done (gpointer data)
{
  GArray *clients = data;

  for (unsigned i = 0; i < clients->len; i++)
    if (!g_array_index (clients, Client, i).done)
      return FALSE;
  return TRUE;
}

static gboolean
all_received (gpointer data)
{
  GArray *clients = data;

  for (unsigned i = 0; i < clients->len; i++)
    if (g_array_index (clients, Client, i).received->len < 1)
      return FALSE;
  return TRUE;
}

static void
test_many_pairs (Fixture      *f,
                 gconstpointer data)
{
  const char *env_pairs = g_getenv ("PM_TEST_RELAY_PAIRS"); /* for experiments */
  unsigned    pairs = env_pairs != NULL ? (unsigned) atoi (env_pairs) : 1000;
  g_autoptr (GArray) clients = NULL;
  g_autoptr (GPtrArray) sessions = NULL;
  struct rlimit rl;
  int64_t       start = g_get_monotonic_time ();

  /* Each pair is four sockets in this process (two client ends, two server
   * ends): 4,000 descriptors. Raise the soft limit to the hard one. */
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &rl), ==, 0);
  if (rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
      g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &rl), ==, 0);
    }
  if (rl.rlim_cur < 4 * pairs + 256)
    {
      pairs = (unsigned) ((rl.rlim_cur - 256) / 4);
      g_test_message ("RLIMIT_NOFILE is %lu: only %u pairs", (unsigned long) rl.rlim_cur, pairs);
    }

  f->limits.account_bytes_per_s = 0;
  f->limits.max_sessions_per_account = 0;
  fixture_start (f);
  clients = g_array_sized_new (FALSE, TRUE, sizeof (Client), 2 * pairs);
  g_array_set_size (clients, 2 * pairs);
  /* One SoupSession per 32 pairs: a SoupSession's connection lookups are
   * linear in its connections, which would make the clients, not the relay,
   * the bottleneck of this test. */
  sessions = g_ptr_array_new_with_free_func (g_object_unref);
  for (unsigned i = 0; i < pairs; i++)
    {
      g_autofree char *da = g_strdup_printf ("a%u", i);
      g_autofree char *db = g_strdup_printf ("b%u", i);
      SoupSession     *session;

      if (i % 32 == 0)
        g_ptr_array_add (sessions, g_object_new (SOUP_TYPE_SESSION, "max-conns", 256,
                                                 "max-conns-per-host", 256, NULL));
      session = sessions->pdata[sessions->len - 1];
      client_start_on (f, session, &g_array_index (clients, Client, 2 * i), "acct", da, db);
      client_start_on (f, session, &g_array_index (clients, Client, 2 * i + 1), "acct", db, da);
    }
  if (!spin_until (all_done, clients, 60000))
    {
      unsigned done = 0;

      for (unsigned i = 0; i < clients->len; i++)
        done += g_array_index (clients, Client, i).done;
      for (unsigned i = 0; i < clients->len && i < 40; i++)
        if (!g_array_index (clients, Client, i).done)
          g_printerr ("not done: %u\n", i);
      g_error ("only %u of %u WebSocket handshakes completed (relay has %u connections)",
               done, clients->len, stats (f).connections);
    }
  for (unsigned i = 0; i < clients->len; i++)
    {
      Client          *c = &g_array_index (clients, Client, i);
      g_autofree char *text = g_strdup_printf ("message from %u", i);
      g_autoptr (GBytes) m = g_bytes_new (text, strlen (text));

      g_assert_no_error (c->error);
      soup_websocket_connection_send_message (c->ws, SOUP_WEBSOCKET_DATA_BINARY, m);
    }
  g_assert_true (spin_until (all_received, clients, 60000));
  g_assert_cmpuint (stats (f).sessions_active, ==, pairs);
  for (unsigned i = 0; i < clients->len; i++)
    {
      Client          *c = &g_array_index (clients, Client, i);
      g_autofree char *text = g_strdup_printf ("message from %u", i ^ 1);
      GBytes          *got = c->received->pdata[0];

      g_assert_cmpuint (c->received->len, ==, 1);
      g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), text, strlen (text));
    }
  g_test_message ("%u pairs connected and exchanged in %.2f s", pairs,
                  (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  for (unsigned i = 0; i < clients->len; i++)
    client_clear (&g_array_index (clients, Client, i));
  spin_for (200);
}

int
main (int    argc,
      char **argv)
{
  gboolean slow = argc > 1 && strcmp (argv[1], "--slow") == 0;

  if (slow)
    {
      argv[1] = argv[0];
      argv++;
      argc--;
    }
  /* Debug output too, so that the log test sees everything libsoup and the
   * relay would ever say; the slow tests keep quiet. */
  if (!slow)
    g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
  captured_log = g_string_new (NULL);
  g_log_set_writer_func (capture_writer, NULL, NULL);
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func) g_test_add (name, Fixture, NULL, fixture_setup, func, fixture_teardown)
  if (!slow)
    {
      ADD ("/relay/pair-forward", test_pair_forward);
      ADD ("/relay/cross-account", test_cross_account);
      ADD ("/relay/too-big", test_too_big);
      ADD ("/relay/too-big-fragmented", test_too_big_fragmented);
      ADD ("/relay/text-refused", test_text_refused);
      ADD ("/relay/wait-timeout", test_wait_timeout);
      ADD ("/relay/idle-timeout", test_idle_timeout);
      ADD ("/relay/last-connection-wins", test_last_connection_wins);
      ADD ("/relay/close-device", test_close_device);
      ADD ("/relay/session-limit", test_session_limit);
      ADD ("/relay/rate-limit", test_rate_limit);
      ADD ("/relay/backpressure", test_backpressure);
      ADD ("/relay/dead-connection", test_dead_connection);
      ADD ("/relay/log-has-no-payload", test_log_has_no_payload);
    }
  else
    {
      ADD ("/relay/integrity-256mib", test_integrity);
      ADD ("/relay/many-pairs", test_many_pairs);
    }
#undef ADD
  return g_test_run ();
}
