/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmUdpSocket: binding; the STUN client against a real PmStunServer on
 * 127.0.0.1 and 127.0.0.2 (no NAT on loopback, so the mapped address is our
 * own and the mapping does not vary); against a fake server that answers with
 * a wrong transaction id, from a forged address, with a bad FINGERPRINT, with
 * an error, late, or not at all (ignored, retransmitted, timed out with a
 * clear error); netcheck; demultiplexing of frames, STUN and garbage on one
 * socket; send errors; local candidates; cancellation and close. Timers are
 * shortened through PmUdpSocketLimits. Every wait is bounded; traffic stays
 * on loopback.
 */
#define G_LOG_DOMAIN "pipermesh-test-udp"

#include <string.h>

#include "pm-frame.h"
#include "pm-stun-server.h"
#include "pm-stun.h"
#include "pm-udp-socket.h"

/* How long any wait may take before the test fails. */
#define WAIT_MS 5000
/* Shortened STUN timers: 20 + 40 + 80 + 160 ms = 300 ms to give up. */
#define TEST_RTO_MS            20
#define TEST_MAX_TRANSMISSIONS 4
#define TEST_GIVE_UP_MS        (TEST_RTO_MS * ((1 << TEST_MAX_TRANSMISSIONS) - 1))

/* --- Helpers ----------------------------------------------------------------- */

static GInetSocketAddress *
address (const char *ip,
         uint16_t    port)
{
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string (ip, port));
}

static char *
to_string (GInetSocketAddress *a)
{
  return g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (a));
}

static void
assert_same_address (GInetSocketAddress *a,
                     GInetSocketAddress *b)
{
  g_autofree char *sa = NULL;
  g_autofree char *sb = NULL;

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  sa = to_string (a);
  sb = to_string (b);
  g_assert_cmpstr (sa, ==, sb);
}

static gboolean
wake_up (gpointer user_data)
{
  return G_SOURCE_REMOVE;
}

/* Runs the thread-default context until @done is TRUE or @ms pass. */
static gboolean
run_until (const gboolean *done,
           unsigned        ms)
{
  GMainContext *context = g_main_context_get_thread_default ();
  int64_t       deadline = g_get_monotonic_time () + (int64_t) ms * 1000;

  while (!*done)
    {
      GSource *timer;

      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      timer = g_timeout_source_new (10);
      g_source_set_callback (timer, wake_up, NULL, NULL);
      g_source_attach (timer, context);
      g_main_context_iteration (context, TRUE);
      g_source_destroy (timer);
      g_source_unref (timer);
    }
  return TRUE;
}

/* Runs the context for @ms, whatever happens. */
static void
run_for (unsigned ms)
{
  gboolean never = FALSE;

  run_until (&never, ms);
}

static void
test_limits (PmUdpSocketLimits *limits)
{
  pm_udp_socket_limits_default (limits);
  limits->stun_rto_ms = TEST_RTO_MS;
  limits->stun_max_transmissions = TEST_MAX_TRANSMISSIONS;
}

static PmUdpSocket *
new_loopback_socket (void)
{
  PmUdpSocketLimits limits;
  g_autoptr (GInetSocketAddress) where = address ("127.0.0.1", 0);
  g_autoptr (GError) error = NULL;
  PmUdpSocket *socket;

  test_limits (&limits);
  socket = pm_udp_socket_new (where, &limits, &error);
  g_assert_no_error (error);
  g_assert_nonnull (socket);
  return socket;
}

/* The outcome of one async call. */
typedef struct {
  gboolean            done;
  GInetSocketAddress *mapped;
  double              rtt_ms;
  PmNetcheck         *netcheck;
  GError             *error;
  int64_t             finished_us;
} Outcome;

static void
outcome_clear (Outcome *o)
{
  g_clear_object (&o->mapped);
  g_clear_pointer (&o->netcheck, pm_netcheck_free);
  g_clear_error (&o->error);
}

static void
on_query (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Outcome *o = user_data;

  g_assert_false (o->done);
  o->mapped = pm_udp_socket_stun_query_finish (PM_UDP_SOCKET (source), result, &o->rtt_ms,
                                               &o->error);
  g_assert_true ((o->mapped == NULL) != (o->error == NULL));
  o->finished_us = g_get_monotonic_time ();
  o->done = TRUE;
}

static void
on_netcheck (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Outcome *o = user_data;

  g_assert_false (o->done);
  o->netcheck = pm_udp_socket_netcheck_finish (PM_UDP_SOCKET (source), result, &o->error);
  g_assert_true ((o->netcheck == NULL) != (o->error == NULL));
  o->finished_us = g_get_monotonic_time ();
  o->done = TRUE;
}

/* --- A fake STUN server ------------------------------------------------------ */

typedef enum {
  FAKE_SILENT,          /* never answers */
  FAKE_CORRECT,         /* a correct answer */
  FAKE_WRONG_TXID,      /* a correct answer to another transaction */
  FAKE_FORGED_SOURCE,   /* a correct answer, sent from another port */
  FAKE_BAD_FINGERPRINT, /* a correct answer with one bit of FINGERPRINT flipped */
  FAKE_ERROR,           /* a 400 error answer */
  FAKE_OTHER_PORT,      /* a correct answer that maps us to our port + 1 */
} FakeMode;

typedef struct {
  GSocket            *socket;
  GSocket            *forger; /* another port, for FAKE_FORGED_SOURCE */
  GSource            *source;
  GInetSocketAddress *address;
  FakeMode            mode;
  unsigned            drop_first; /* requests dropped before the mode applies */
  unsigned            requests;   /* requests received */
} FakeServer;

static GSocket *
bind_loopback (GInetSocketAddress **bound)
{
  g_autoptr (GInetSocketAddress) where = address ("127.0.0.1", 0);
  g_autoptr (GError) error = NULL;
  GSocket *socket;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP,
                         &error);
  g_assert_no_error (error);
  g_socket_bind (socket, G_SOCKET_ADDRESS (where), FALSE, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  if (bound != NULL)
    {
      *bound = G_INET_SOCKET_ADDRESS (g_socket_get_local_address (socket, &error));
      g_assert_no_error (error);
    }
  return socket;
}

static gboolean
fake_on_readable (GSocket     *socket,
                  GIOCondition condition,
                  gpointer     user_data)
{
  FakeServer *fake = user_data;

  for (;;)
    {
      g_autoptr (GSocketAddress) from = NULL;
      g_autoptr (GInetSocketAddress) mapped = NULL;
      uint8_t      buf[2048], out[PM_STUN_MAX_MESSAGE_LEN];
      size_t       out_len = 0;
      PmStunHeader header;
      gssize       got;
      GSocket     *sender = fake->socket;

      got = g_socket_receive_from (socket, &from, (char *) buf, sizeof buf, NULL, NULL);
      if (got < 0)
        break;
      if (!pm_stun_parse_header (buf, (size_t) got, PM_STUN_PARSE_DEFAULT, &header, NULL) ||
          header.type != PM_STUN_BINDING_REQUEST)
        continue;
      fake->requests++;
      if (fake->requests <= fake->drop_first || fake->mode == FAKE_SILENT)
        continue;

      if (fake->mode == FAKE_OTHER_PORT)
        mapped = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (
          g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (from)),
          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (from)) + 1));
      else
        mapped = g_object_ref (G_INET_SOCKET_ADDRESS (from));
      if (fake->mode == FAKE_WRONG_TXID)
        header.transaction_id[0] ^= 1;
      if (fake->mode == FAKE_ERROR)
        g_assert_true (pm_stun_build_binding_error (&header, PM_STUN_CODE_BAD_REQUEST,
                                                    "Bad Request", NULL, 0, NULL, out, sizeof out,
                                                    &out_len, NULL));
      else
        g_assert_true (pm_stun_build_binding_success (&header, mapped, NULL, "fake", out,
                                                      sizeof out, &out_len, NULL));
      if (fake->mode == FAKE_BAD_FINGERPRINT)
        out[out_len - 1] ^= 1;
      if (fake->mode == FAKE_FORGED_SOURCE)
        sender = fake->forger;
      g_socket_send_to (sender, from, (const char *) out, out_len, NULL, NULL);
    }
  return G_SOURCE_CONTINUE;
}

static FakeServer *
fake_server_new (FakeMode mode)
{
  FakeServer *fake = g_new0 (FakeServer, 1);

  fake->mode = mode;
  fake->socket = bind_loopback (&fake->address);
  fake->forger = bind_loopback (NULL);
  fake->source = g_socket_create_source (fake->socket, G_IO_IN, NULL);
  g_source_set_callback (fake->source, G_SOURCE_FUNC (fake_on_readable), fake, NULL);
  g_source_attach (fake->source, g_main_context_get_thread_default ());
  return fake;
}

static void
fake_server_free (FakeServer *fake)
{
  g_source_destroy (fake->source);
  g_source_unref (fake->source);
  g_object_unref (fake->socket);
  g_object_unref (fake->forger);
  g_object_unref (fake->address);
  g_free (fake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeServer, fake_server_free)

/* --- Fixture: a private main context per test -------------------------------- */

typedef struct {
  GMainContext *context;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->context = g_main_context_new ();
  g_main_context_push_thread_default (f->context);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  while (g_main_context_iteration (f->context, FALSE))
    ;
  g_main_context_pop_thread_default (f->context);
  g_main_context_unref (f->context);
}

/* --- Tests ------------------------------------------------------------------- */

static void
test_bind (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  g_autoptr (PmUdpSocket) taken = NULL;
  g_autoptr (PmUdpSocket) any = NULL;
  g_autoptr (GInetSocketAddress) from_property = NULL;
  g_autoptr (GError) error = NULL;
  GInetSocketAddress *local = pm_udp_socket_get_local_address (socket);
  g_autofree char    *ip = g_inet_address_to_string (g_inet_socket_address_get_address (local));

  g_assert_cmpstr (ip, ==, "127.0.0.1");
  g_assert_cmpuint (pm_udp_socket_get_port (socket), !=, 0);
  g_assert_cmpuint (pm_udp_socket_get_port (socket), ==, g_inet_socket_address_get_port (local));
  g_assert_cmpint (pm_udp_socket_get_family (socket), ==, G_SOCKET_FAMILY_IPV4);
  g_object_get (socket, "local-address", &from_property, NULL);
  g_assert_true (from_property == local);

  /* The same port again: a clear bind error. */
  taken = pm_udp_socket_new (local, NULL, &error);
  g_assert_null (taken);
  g_assert_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_BIND);
  g_assert_nonnull (strstr (error->message, "Could not open UDP port 127.0.0.1:"));
  g_clear_error (&error);

  any = pm_udp_socket_new_any (G_SOCKET_FAMILY_IPV4, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_inet_address_get_is_any (
    g_inet_socket_address_get_address (pm_udp_socket_get_local_address (any))));
  g_assert_cmpuint (pm_udp_socket_get_port (any), !=, 0);
}

static void
test_real_server (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (PmStunServer) server = pm_stun_server_new ();
  g_autoptr (GInetSocketAddress) primary = address ("127.0.0.1", 0);
  g_autoptr (GInetSocketAddress) secondary = address ("127.0.0.2", 0);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  g_autoptr (GError) error = NULL;
  Outcome          query = { 0 }, check = { 0 };
  PmUdpSocketStats stats;

  g_assert_true (pm_stun_server_start (server, primary, secondary, &error));
  g_assert_no_error (error);

  pm_udp_socket_stun_query_async (socket, pm_stun_server_get_address (server, 0), NULL, on_query,
                                  &query);
  g_assert_true (run_until (&query.done, WAIT_MS));
  g_assert_no_error (query.error);
  /* No NAT on loopback: the server saw our own address. */
  assert_same_address (query.mapped, pm_udp_socket_get_local_address (socket));
  g_assert_cmpfloat (query.rtt_ms, >=, 0);
  g_assert_cmpfloat (query.rtt_ms, <, WAIT_MS);

  pm_udp_socket_netcheck_async (socket, pm_stun_server_get_address (server, 0),
                                pm_stun_server_get_address (server, 1), NULL, on_netcheck, &check);
  g_assert_true (run_until (&check.done, WAIT_MS));
  g_assert_no_error (check.error);
  g_assert_true (check.netcheck->udp_ok);
  g_assert_false (check.netcheck->mapping_varies_by_destination);
  assert_same_address (check.netcheck->mapped_primary, pm_udp_socket_get_local_address (socket));
  assert_same_address (check.netcheck->mapped_secondary, pm_udp_socket_get_local_address (socket));
  g_assert_cmpfloat (check.netcheck->rtt_ms, >=, 0);
  g_assert_null (check.netcheck->error);

  g_assert_cmpuint (pm_stun_server_get_count (server, PM_STUN_SERVER_ANSWERED), ==, 3);
  pm_udp_socket_get_stats (socket, &stats);
  g_assert_cmpuint (stats.stun_transmissions, ==, 3);
  g_assert_cmpuint (stats.rx_stun, ==, 3);
  g_assert_cmpuint (stats.rx_stun_ignored, ==, 0);

  outcome_clear (&query);
  outcome_clear (&check);
  pm_stun_server_stop (server);
}

/* A fake server in @mode: the query must time out after every
 * retransmission, each answer ignored. */
static void
test_ignored (Fixture      *f,
              gconstpointer data)
{
  FakeMode mode = GPOINTER_TO_INT (data);
  g_autoptr (FakeServer) fake = fake_server_new (mode);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  Outcome          o = { 0 };
  PmUdpSocketStats stats;
  int64_t          started = g_get_monotonic_time ();
  int64_t          took_ms;

  pm_udp_socket_stun_query_async (socket, fake->address, NULL, on_query, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_TIMED_OUT);
  g_test_message ("%s", o.error->message);
  g_assert_nonnull (strstr (o.error->message, "No STUN answer from 127.0.0.1:"));
  g_assert_nonnull (strstr (o.error->message, "after 4 requests"));

  /* Every transmission happened, and no sooner than the doubling RTOs allow. */
  took_ms = (o.finished_us - started) / 1000;
  g_assert_cmpint (took_ms, >=, TEST_GIVE_UP_MS);
  g_assert_cmpint (took_ms, <, WAIT_MS);
  g_assert_cmpuint (fake->requests, ==, TEST_MAX_TRANSMISSIONS);
  pm_udp_socket_get_stats (socket, &stats);
  g_assert_cmpuint (stats.stun_transmissions, ==, TEST_MAX_TRANSMISSIONS);
  if (mode == FAKE_SILENT)
    g_assert_cmpuint (stats.rx_stun, ==, 0);
  else
    {
      /* The last answer may still be in flight when the query gives up. */
      run_for (50);
      pm_udp_socket_get_stats (socket, &stats);
      g_assert_cmpuint (stats.rx_stun, ==, TEST_MAX_TRANSMISSIONS);
      g_assert_cmpuint (stats.rx_stun_ignored, ==, TEST_MAX_TRANSMISSIONS);
    }
  outcome_clear (&o);
}

static void
test_retransmit (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (FakeServer) fake = fake_server_new (FAKE_CORRECT);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  Outcome          o = { 0 };
  PmUdpSocketStats stats;
  int64_t          started = g_get_monotonic_time ();
  double           took_ms;

  fake->drop_first = 2;
  pm_udp_socket_stun_query_async (socket, fake->address, NULL, on_query, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_no_error (o.error);
  assert_same_address (o.mapped, pm_udp_socket_get_local_address (socket));
  g_assert_cmpuint (fake->requests, ==, 3);
  /* Answered after the 20 and 40 ms timeouts; the RTT is measured from the
   * third request, not the first. */
  took_ms = (double) (o.finished_us - started) / 1000;
  g_assert_cmpfloat (took_ms, >=, TEST_RTO_MS * 3);
  g_assert_cmpfloat (o.rtt_ms, <=, took_ms - TEST_RTO_MS * 3);
  pm_udp_socket_get_stats (socket, &stats);
  g_assert_cmpuint (stats.stun_transmissions, ==, 3);

  /* No fourth request after the answer. */
  run_for (TEST_RTO_MS * 8);
  g_assert_cmpuint (fake->requests, ==, 3);
  outcome_clear (&o);
}

static void
test_error_response (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (FakeServer) fake = fake_server_new (FAKE_ERROR);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  Outcome o = { 0 };

  pm_udp_socket_stun_query_async (socket, fake->address, NULL, on_query, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_STUN);
  g_test_message ("%s", o.error->message);
  g_assert_nonnull (strstr (o.error->message, "400"));
  g_assert_cmpuint (fake->requests, ==, 1);
  outcome_clear (&o);
}

static void
test_netcheck_varies (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (FakeServer) one = fake_server_new (FAKE_CORRECT);
  g_autoptr (FakeServer) other = fake_server_new (FAKE_OTHER_PORT);
  g_autoptr (FakeServer) silent = fake_server_new (FAKE_SILENT);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  Outcome o = { 0 };

  pm_udp_socket_netcheck_async (socket, one->address, other->address, NULL, on_netcheck, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_no_error (o.error);
  g_assert_true (o.netcheck->udp_ok);
  g_assert_true (o.netcheck->mapping_varies_by_destination);
  g_assert_cmpuint (g_inet_socket_address_get_port (o.netcheck->mapped_secondary), ==,
                    pm_udp_socket_get_port (socket) + 1);
  outcome_clear (&o);

  /* One silent server: UDP still works, the mapping cannot be compared. */
  o = (Outcome){ 0 };
  pm_udp_socket_netcheck_async (socket, one->address, silent->address, NULL, on_netcheck, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_no_error (o.error);
  g_assert_true (o.netcheck->udp_ok);
  g_assert_false (o.netcheck->mapping_varies_by_destination);
  g_assert_nonnull (o.netcheck->mapped_primary);
  g_assert_null (o.netcheck->mapped_secondary);
  g_assert_nonnull (o.netcheck->error);
  g_assert_cmpfloat (o.netcheck->rtt_ms, >=, 0);
  outcome_clear (&o);

  /* Nothing answers: not an error, but UDP is not ok, and it says why. */
  o = (Outcome){ 0 };
  pm_udp_socket_netcheck_async (socket, silent->address, NULL, NULL, on_netcheck, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_no_error (o.error);
  g_assert_false (o.netcheck->udp_ok);
  g_assert_null (o.netcheck->mapped_primary);
  g_assert_cmpfloat (o.netcheck->rtt_ms, <, 0);
  g_assert_nonnull (strstr (o.netcheck->error, "No STUN answer"));
  outcome_clear (&o);
}

static void
cancel_now (GCancellable *cancellable)
{
  g_cancellable_cancel (cancellable);
}

static void
test_cancel (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (FakeServer) fake = fake_server_new (FAKE_SILENT);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GCancellable) cancelled = g_cancellable_new ();
  Outcome  o = { 0 };
  unsigned requests;
  int64_t  deadline, cancelled_at;

  /* Cancelled while waiting: finishes at once, sends nothing more. */
  pm_udp_socket_stun_query_async (socket, fake->address, cancellable, on_query, &o);
  deadline = g_get_monotonic_time () + (int64_t) WAIT_MS * 1000;
  while (fake->requests == 0 && g_get_monotonic_time () < deadline)
    run_for (2);
  g_assert_cmpuint (fake->requests, >=, 1);
  g_assert_false (o.done);
  cancelled_at = g_get_monotonic_time ();
  cancel_now (cancellable);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  /* At once, not after the retransmissions (generous bound for loaded machines). */
  g_assert_cmpint ((o.finished_us - cancelled_at) / 1000, <, 1000);
  requests = fake->requests;
  run_for (TEST_GIVE_UP_MS + 50);
  g_assert_cmpuint (fake->requests, ==, requests);
  outcome_clear (&o);

  /* Already cancelled: nothing is sent. */
  o = (Outcome){ 0 };
  g_cancellable_cancel (cancelled);
  pm_udp_socket_stun_query_async (socket, fake->address, cancelled, on_query, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  run_for (20);
  g_assert_cmpuint (fake->requests, ==, requests);
  outcome_clear (&o);

  /* A netcheck cancelled midway fails as cancelled. */
  o = (Outcome){ 0 };
  g_cancellable_reset (cancellable);
  pm_udp_socket_netcheck_async (socket, fake->address, fake->address, cancellable, on_netcheck,
                                &o);
  run_for (5);
  g_cancellable_cancel (cancellable);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  outcome_clear (&o);
}

static void
test_close_pending (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (FakeServer) fake = fake_server_new (FAKE_SILENT);
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  Outcome o = { 0 };

  pm_udp_socket_stun_query_async (socket, fake->address, NULL, on_query, &o);
  pm_udp_socket_close (socket);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED);
  outcome_clear (&o);

  o = (Outcome){ 0 };
  pm_udp_socket_stun_query_async (socket, fake->address, NULL, on_query, &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_error (o.error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED);
  outcome_clear (&o);
  pm_udp_socket_close (socket); /* twice is fine */
}

typedef struct {
  unsigned            count;
  GBytes             *frame;
  GInetSocketAddress *source;
  gboolean            got;
} Received;

static void
on_frame_received (PmUdpSocket        *socket,
                   GBytes             *frame,
                   GInetSocketAddress *source,
                   gpointer            user_data)
{
  Received *r = user_data;

  r->count++;
  g_clear_pointer (&r->frame, g_bytes_unref);
  g_clear_object (&r->source);
  r->frame = g_bytes_ref (frame);
  r->source = g_object_ref (source);
  r->got = TRUE;
}

static void
test_demux (Fixture      *f,
            gconstpointer data)
{
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  g_autoptr (GInetSocketAddress) sender_address = NULL;
  g_autoptr (GSocket) sender = bind_loopback (&sender_address);
  g_autoptr (GError) error = NULL;
  GSocketAddress  *to = G_SOCKET_ADDRESS (pm_udp_socket_get_local_address (socket));
  uint8_t          frame[PM_DATA_FRAME_MIN_LEN];
  uint8_t          stray[PM_STUN_MAX_MESSAGE_LEN], txid[PM_STUN_TRANSACTION_ID_LEN];
  size_t           stray_len;
  Received         r = { 0 };
  PmUdpSocketStats stats = { 0 };
  gboolean         all_read = FALSE;
  int64_t          deadline;

  g_signal_connect (socket, "frame-received", G_CALLBACK (on_frame_received), &r);

  for (size_t i = 0; i < sizeof frame; i++)
    frame[i] = (uint8_t) i;
  pm_frame_write_data_header (frame, 3, 0x01020304, 42);
  g_assert_true (pm_frame_is_pipermesh (frame, sizeof frame));
  g_socket_send_to (sender, to, (const char *) frame, sizeof frame, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (run_until (&r.got, WAIT_MS));
  g_assert_cmpuint (r.count, ==, 1);
  g_assert_cmpmem (g_bytes_get_data (r.frame, NULL), g_bytes_get_size (r.frame), frame,
                   sizeof frame);
  assert_same_address (r.source, sender_address);

  /* Garbage, an empty datagram and a STUN message of no transaction of ours:
   * no signal, each counted. */
  g_socket_send_to (sender, to, "hello", 5, NULL, &error);
  g_assert_no_error (error);
  g_socket_send_to (sender, to, "", 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (pm_stun_build_binding_request (stray, sizeof stray, TRUE, txid, &stray_len, NULL));
  g_socket_send_to (sender, to, (const char *) stray, stray_len, NULL, &error);
  g_assert_no_error (error);
  /* And one more frame, to know everything before it was read. */
  pm_frame_write_data_header (frame, 3, 0x01020304, 43);
  g_socket_send_to (sender, to, (const char *) frame, sizeof frame, NULL, &error);
  g_assert_no_error (error);

  deadline = g_get_monotonic_time () + WAIT_MS * 1000;
  while (!all_read && g_get_monotonic_time () < deadline)
    {
      run_for (5);
      pm_udp_socket_get_stats (socket, &stats);
      all_read = stats.rx_datagrams == 5;
    }
  g_assert_true (all_read);
  g_assert_cmpuint (r.count, ==, 2);
  g_assert_cmpuint (stats.rx_frames, ==, 2);
  g_assert_cmpuint (stats.rx_dropped, ==, 2);
  g_assert_cmpuint (stats.rx_stun, ==, 1);
  g_assert_cmpuint (stats.rx_stun_ignored, ==, 1);
  g_assert_cmpuint (stats.rx_errors, ==, 0);

  /* send_to reaches the other socket. */
  {
    uint8_t buf[64];
    gssize  got = -1;

    g_assert_true (pm_udp_socket_send_to (socket, sender_address, frame, sizeof frame, &error));
    g_assert_no_error (error);
    deadline = g_get_monotonic_time () + WAIT_MS * 1000;
    while (got < 0 && g_get_monotonic_time () < deadline)
      {
        got = g_socket_receive (sender, (char *) buf, sizeof buf, NULL, NULL);
        if (got < 0)
          g_usleep (1000);
      }
    g_assert_cmpmem (buf, got, frame, sizeof frame);
  }

  g_clear_pointer (&r.frame, g_bytes_unref);
  g_clear_object (&r.source);
}

static void
test_send_errors (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (PmUdpSocket) socket = new_loopback_socket ();
  g_autoptr (GInetSocketAddress) v6 = address ("::1", 9);
  g_autoptr (GInetSocketAddress) peer = address ("127.0.0.1", 9);
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *big = g_malloc0 (70000);
  PmUdpSocketStats    stats;

  g_assert_false (pm_udp_socket_send_to (socket, v6, big, 10, &error));
  g_assert_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_FAMILY);
  g_test_message ("%s", error->message);
  g_clear_error (&error);

  /* Larger than any UDP datagram: EMSGSIZE, reported, never blocking. */
  big[0] = PM_FRAME_DATA;
  g_assert_false (pm_udp_socket_send_to (socket, peer, big, 70000, &error));
  g_assert_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_SEND);
  g_test_message ("%s", error->message);
  g_clear_error (&error);

  pm_udp_socket_get_stats (socket, &stats);
  g_assert_cmpuint (stats.tx_errors, ==, 2);
  g_assert_cmpuint (stats.tx_datagrams, ==, 0);

  pm_udp_socket_close (socket);
  g_assert_false (pm_udp_socket_send_to (socket, peer, big, 10, &error));
  g_assert_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED);
}

static void
assert_all_port (GPtrArray *candidates,
                 uint16_t   port)
{
  for (unsigned i = 0; i < candidates->len; i++)
    {
      GInetSocketAddress *c = candidates->pdata[i];
      GInetAddress       *inet = g_inet_socket_address_get_address (c);
      g_autofree char    *text = to_string (c);

      g_test_message ("candidate %s", text);
      g_assert_cmpuint (g_inet_socket_address_get_port (c), ==, port);
      g_assert_false (g_inet_address_get_is_link_local (inet));
      g_assert_false (g_inet_address_get_is_any (inet));
      g_assert_cmpint (g_inet_address_get_family (inet), ==, G_SOCKET_FAMILY_IPV4);
    }
}

static void
test_candidates (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (PmUdpSocket) any = pm_udp_socket_new_any (G_SOCKET_FAMILY_IPV4, 0, NULL, NULL);
  g_autoptr (PmUdpSocket) loopback = new_loopback_socket ();
  g_autoptr (GPtrArray) plain = NULL;
  g_autoptr (GPtrArray) with_loopback = NULL;
  g_autoptr (GPtrArray) bound = NULL;
  g_autoptr (GPtrArray) bound_loopback = NULL;
  gboolean has_127 = FALSE;

  g_assert_nonnull (any);
  plain = pm_udp_socket_get_local_candidates (any, PM_UDP_CANDIDATES_DEFAULT);
  with_loopback = pm_udp_socket_get_local_candidates (any, PM_UDP_CANDIDATES_LOOPBACK);
  assert_all_port (plain, pm_udp_socket_get_port (any));
  assert_all_port (with_loopback, pm_udp_socket_get_port (any));
  for (unsigned i = 0; i < plain->len; i++)
    g_assert_false (g_inet_address_get_is_loopback (
      g_inet_socket_address_get_address (plain->pdata[i])));
  for (unsigned i = 0; i < with_loopback->len; i++)
    has_127 |= g_inet_address_get_is_loopback (
      g_inet_socket_address_get_address (with_loopback->pdata[i]));
  g_assert_true (has_127);
  g_assert_cmpuint (with_loopback->len, >, plain->len);

  /* A socket bound to one address has that one candidate. */
  bound = pm_udp_socket_get_local_candidates (loopback, PM_UDP_CANDIDATES_DEFAULT);
  g_assert_cmpuint (bound->len, ==, 0);
  bound_loopback = pm_udp_socket_get_local_candidates (loopback, PM_UDP_CANDIDATES_LOOPBACK);
  g_assert_cmpuint (bound_loopback->len, ==, 1);
  assert_same_address (bound_loopback->pdata[0], pm_udp_socket_get_local_address (loopback));

  if (plain->len == 0)
    {
      g_test_skip ("this machine has only loopback IPv4 addresses: no LAN candidate to check");
      return;
    }
  g_assert_cmpuint (plain->len, >, 0);
}

static void
test_ipv6 (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (PmStunServer) server = pm_stun_server_new ();
  g_autoptr (GInetSocketAddress) where = address ("::1", 0);
  g_autoptr (PmUdpSocket) socket = NULL;
  g_autoptr (GError) error = NULL;
  Outcome o = { 0 };

  socket = pm_udp_socket_new (where, NULL, &error);
  if (socket == NULL)
    {
      g_autofree char *why = g_strdup_printf ("no IPv6 loopback: %s", error->message);
      g_test_skip (why);
      return;
    }
  g_assert_cmpint (pm_udp_socket_get_family (socket), ==, G_SOCKET_FAMILY_IPV6);
  g_assert_true (pm_stun_server_start (server, where, NULL, &error));
  g_assert_no_error (error);
  pm_udp_socket_stun_query_async (socket, pm_stun_server_get_address (server, 0), NULL, on_query,
                                  &o);
  g_assert_true (run_until (&o.done, WAIT_MS));
  g_assert_no_error (o.error);
  assert_same_address (o.mapped, pm_udp_socket_get_local_address (socket));
  outcome_clear (&o);
  pm_stun_server_stop (server);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down)
  ADD ("/udp/bind", test_bind, NULL);
  ADD ("/udp/stun/real-server", test_real_server, NULL);
  ADD ("/udp/stun/ipv6", test_ipv6, NULL);
  ADD ("/udp/stun/silent", test_ignored, GINT_TO_POINTER (FAKE_SILENT));
  ADD ("/udp/stun/wrong-transaction-id", test_ignored, GINT_TO_POINTER (FAKE_WRONG_TXID));
  ADD ("/udp/stun/forged-source", test_ignored, GINT_TO_POINTER (FAKE_FORGED_SOURCE));
  ADD ("/udp/stun/bad-fingerprint", test_ignored, GINT_TO_POINTER (FAKE_BAD_FINGERPRINT));
  ADD ("/udp/stun/retransmit", test_retransmit, NULL);
  ADD ("/udp/stun/error-response", test_error_response, NULL);
  ADD ("/udp/stun/cancel", test_cancel, NULL);
  ADD ("/udp/stun/close-pending", test_close_pending, NULL);
  ADD ("/udp/netcheck/varies", test_netcheck_varies, NULL);
  ADD ("/udp/demux", test_demux, NULL);
  ADD ("/udp/send-errors", test_send_errors, NULL);
  ADD ("/udp/candidates", test_candidates, NULL);
#undef ADD

  return g_test_run ();
}
