/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * stream-bench [--json] [--quick] [--rounds N] [--mib M]
 *
 * The stream layer (core/pm-stream-mux.c: usrsctp) beside a plain TCP
 * connection, in the same run and the same process:
 *
 *  - stream_mbps: M MiB over one PmStream from multiplexer A to B. Both live
 *    in this process on one main loop, joined by an in-memory link (each SCTP
 *    packet copied into a queue that the main loop drains: no loss, no delay,
 *    no crypto), as the mesh would join them through its Noise sessions.
 *  - streams4_mbps: the same M MiB split over 4 concurrent streams.
 *  - tcp_mbps: the same M MiB over one loopback TCP connection
 *    (GSocketConnection) on the same main loop, written and read with the
 *    very same GIO asynchronous calls in 64 KiB pieces: only the transport
 *    differs. The kernel's TCP is the floor a userspace SCTP stack in the same
 *    process is measured against ("stream_vs_tcp").
 *  - *_cpu_ns_per_byte: the process's CPU time per payload byte for each.
 *  - connect_ms: from both ends calling pm_stream_mux_start() to both
 *    associations up (INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK in memory);
 *    open_ms: one pm_stream_mux_open_async() to its stream (OPEN → ACCEPT).
 *
 * Rounds alternate TCP, one stream and four streams, so that a slow spell of
 * the machine hits all alike; medians are reported, the ratio as the median
 * of the per-round ratios. MB = 10^6 bytes. Never a pass/fail on speed: the
 * meson test only checks the JSON (check-stream-bench-json.py).
 */
#define G_LOG_DOMAIN "pipermesh-stream-bench"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pm-stream-mux.h"

#define CHUNK      (64 * 1024)
#define MIB        (1024 * 1024)
#define TIMEOUT_US (120 * G_USEC_PER_SEC)

static uint8_t pattern[CHUNK];

static double
cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Iterates the main context until *flag or the deadline; FALSE on timeout. */
static gboolean
spin (gboolean *flag)
{
  int64_t deadline = g_get_monotonic_time () + TIMEOUT_US;

  while (!*flag)
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_main_context_iteration (NULL, TRUE);
    }
  return TRUE;
}

/* --- Moving bytes, the same for every transport --------------------------------- */

typedef struct {
  GOutputStream *out;
  uint64_t       total;
  uint64_t       sent;
  gboolean       done;
  gboolean       failed;
} Writer;

typedef struct {
  GInputStream *in;
  uint64_t      received;
  uint8_t       buf[CHUNK];
  gboolean      done;
  gboolean      failed;
} Reader;

static void writer_next (Writer *w);

static void
on_written (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Writer *w = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_output_stream_write_finish (G_OUTPUT_STREAM (source), result, &error);

  if (n < 0)
    {
      g_printerr ("write: %s\n", error->message);
      w->failed = w->done = TRUE;
      return;
    }
  w->sent += (uint64_t) n;
  writer_next (w);
}

static void
writer_next (Writer *w)
{
  size_t off = (size_t) (w->sent % CHUNK);

  if (w->sent == w->total)
    {
      w->done = TRUE;
      return;
    }
  g_output_stream_write_async (w->out, pattern + off,
                               (size_t) MIN (CHUNK - off, w->total - w->sent),
                               G_PRIORITY_DEFAULT, NULL, on_written, w);
}

static void reader_next (Reader *r);

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Reader *r = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n < 0)
    {
      g_printerr ("read: %s\n", error->message);
      r->failed = r->done = TRUE;
      return;
    }
  if (n == 0)
    {
      r->done = TRUE;
      return;
    }
  r->received += (uint64_t) n;
  reader_next (r);
}

static void
reader_next (Reader *r)
{
  g_input_stream_read_async (r->in, r->buf, sizeof r->buf, G_PRIORITY_DEFAULT, NULL, on_read, r);
}

typedef struct {
  double seconds;
  double cpu;
} Timing;

/* Sends @total bytes over each of @n (out, in) pairs at once, closes the
 * outputs, and waits for every end of stream. */
static gboolean
transfer (GIOStream **senders,
          GIOStream **receivers,
          unsigned    n,
          uint64_t    total,
          Timing     *timing)
{
  Writer  *w = g_new0 (Writer, n);
  Reader  *r = g_new0 (Reader, n);
  double   t0 = (double) g_get_monotonic_time () / G_USEC_PER_SEC;
  double   c0 = cpu_seconds ();
  gboolean ok = TRUE;

  for (unsigned i = 0; i < n; i++)
    {
      w[i].out = g_io_stream_get_output_stream (senders[i]);
      w[i].total = total;
      r[i].in = g_io_stream_get_input_stream (receivers[i]);
      writer_next (&w[i]);
      reader_next (&r[i]);
    }
  for (unsigned i = 0; i < n && ok; i++)
    {
      ok = spin (&w[i].done) && !w[i].failed;
      /* Half-close: FIN for a PmStream; a GSocketConnection's output stream
       * does not shut the socket down by itself. */
      if (ok && G_IS_SOCKET_CONNECTION (senders[i]))
        ok = g_socket_shutdown (g_socket_connection_get_socket (G_SOCKET_CONNECTION (senders[i])),
                                FALSE, TRUE, NULL);
      else if (ok)
        ok = g_output_stream_close (w[i].out, NULL, NULL);
    }
  for (unsigned i = 0; i < n && ok; i++)
    ok = spin (&r[i].done) && !r[i].failed && r[i].received == total;
  timing->seconds = (double) g_get_monotonic_time () / G_USEC_PER_SEC - t0;
  timing->cpu = cpu_seconds () - c0;
  g_free (w);
  g_free (r);
  return ok;
}

/* --- TCP on loopback ------------------------------------------------------------ */

typedef struct {
  GSocketConnection *conn;
  gboolean           done;
} Connect;

static void
on_accepted (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Connect *c = user_data;

  c->conn = g_socket_listener_accept_finish (G_SOCKET_LISTENER (source), result, NULL, NULL);
  c->done = TRUE;
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Connect *c = user_data;

  c->conn = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, NULL);
  c->done = TRUE;
}

static gboolean
tcp_round (uint64_t total,
           Timing  *timing)
{
  g_autoptr (GSocketListener) listener = g_socket_listener_new ();
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) want = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  Connect  accepted = { 0 }, connected = { 0 };
  gboolean ok;

  if (!g_socket_listener_add_address (listener, want, G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &bound, NULL))
    return FALSE;
  g_socket_listener_accept_async (listener, NULL, on_accepted, &accepted);
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (bound), NULL, on_connected,
                                 &connected);
  if (!spin (&accepted.done) || !spin (&connected.done) || accepted.conn == NULL ||
      connected.conn == NULL)
    return FALSE;
  ok = transfer ((GIOStream **) &connected.conn, (GIOStream **) &accepted.conn, 1, total, timing);
  g_io_stream_close (G_IO_STREAM (connected.conn), NULL, NULL);
  g_io_stream_close (G_IO_STREAM (accepted.conn), NULL, NULL);
  g_object_unref (connected.conn);
  g_object_unref (accepted.conn);
  g_socket_listener_close (listener);
  return ok;
}

/* --- Two multiplexers over an in-memory link ---------------------------------------- */

typedef struct {
  GQueue       queue[2]; /* GBytes; [0]: a → b */
  GSource     *source;
  PmStreamMux *mux[2];
} Link;

typedef struct {
  Link    *link;
  unsigned dir;
} LinkEnd;

static void
link_output (const uint8_t *packet,
             size_t         len,
             gpointer       user_data)
{
  LinkEnd *end = user_data;

  g_queue_push_tail (&end->link->queue[end->dir], g_bytes_new (packet, len));
  g_source_set_ready_time (end->link->source, 0);
}

static gboolean
link_dispatch (GSource    *source,
               GSourceFunc callback,
               gpointer    user_data)
{
  Link *link = user_data;

  /* Both directions in turn, a bounded batch per dispatch. */
  for (unsigned n = 0; n < 256; n++)
    {
      gboolean any = FALSE;

      for (unsigned d = 0; d < 2; d++)
        {
          g_autoptr (GBytes) packet = g_queue_pop_head (&link->queue[d]);

          if (packet == NULL)
            continue;
          any = TRUE;
          if (link->mux[1 - d] != NULL)
            pm_stream_mux_input (link->mux[1 - d], g_bytes_get_data (packet, NULL),
                                 g_bytes_get_size (packet));
        }
      if (!any)
        break;
    }
  g_source_set_ready_time (source, g_queue_is_empty (&link->queue[0]) &&
                                       g_queue_is_empty (&link->queue[1])
                                     ? -1
                                     : 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs link_funcs = {
  .dispatch = link_dispatch,
};

typedef struct {
  Link       link;
  GPtrArray *accepted;
  int64_t    start_us;
  double     connect_ms;
  gboolean   up;
} Pair;

static void
on_stream_requested (PmStreamMux *mux,
                     PmStream    *stream,
                     const char  *service,
                     gpointer     user_data)
{
  Pair *pair = user_data;

  pm_stream_accept (stream);
  g_ptr_array_add (pair->accepted, g_object_ref (stream));
}

static void
on_state (GObject    *object,
          GParamSpec *pspec,
          gpointer    user_data)
{
  Pair *pair = user_data;

  if (pm_stream_mux_get_state (pair->link.mux[0]) == PM_STREAM_MUX_STATE_CONNECTED &&
      pm_stream_mux_get_state (pair->link.mux[1]) == PM_STREAM_MUX_STATE_CONNECTED && !pair->up)
    {
      pair->up = TRUE;
      pair->connect_ms = (double) (g_get_monotonic_time () - pair->start_us) / 1000;
    }
}

static Pair *
pair_new (void)
{
  Pair *pair = g_new0 (Pair, 1);

  pair->accepted = g_ptr_array_new_with_free_func (g_object_unref);
  g_queue_init (&pair->link.queue[0]);
  g_queue_init (&pair->link.queue[1]);
  pair->link.source = g_source_new (&link_funcs, sizeof (GSource));
  g_source_set_callback (pair->link.source, NULL, &pair->link, NULL);
  g_source_attach (pair->link.source, NULL);
  for (unsigned d = 0; d < 2; d++)
    {
      LinkEnd *end = g_new (LinkEnd, 1);

      end->link = &pair->link;
      end->dir = d;
      pair->link.mux[d] = pm_stream_mux_new (d == 0, link_output, end, g_free, NULL);
      g_signal_connect (pair->link.mux[d], "stream-requested", G_CALLBACK (on_stream_requested),
                        pair);
      g_signal_connect (pair->link.mux[d], "notify::state", G_CALLBACK (on_state), pair);
    }
  pair->start_us = g_get_monotonic_time ();
  pm_stream_mux_start (pair->link.mux[0]);
  pm_stream_mux_start (pair->link.mux[1]);
  return pair;
}

static void
pair_free (Pair *pair)
{
  g_ptr_array_unref (pair->accepted);
  for (unsigned d = 0; d < 2; d++)
    g_signal_handlers_disconnect_by_data (pair->link.mux[d], pair);
  for (unsigned d = 0; d < 2; d++)
    {
      pm_stream_mux_close (pair->link.mux[d]);
      g_clear_object (&pair->link.mux[d]);
      g_queue_clear_full (&pair->link.queue[d], (GDestroyNotify) g_bytes_unref);
    }
  g_source_destroy (pair->link.source);
  g_source_unref (pair->link.source);
  g_free (pair);
}

typedef struct {
  PmStream *stream;
  gboolean  done;
} Open;

static void
on_opened (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Open *o = user_data;
  g_autoptr (GError) error = NULL;

  o->stream = pm_stream_mux_open_finish (PM_STREAM_MUX (source), result, &error);
  if (o->stream == NULL)
    g_printerr ("open: %s\n", error->message);
  o->done = TRUE;
}

/* One round: a fresh pair, @n streams, @total bytes split over them. */
static gboolean
stream_round (unsigned n,
              uint64_t total,
              Timing  *timing,
              double  *connect_ms,
              double  *open_ms)
{
  Pair      *pair = pair_new ();
  GIOStream *senders[8], *receivers[8];
  gboolean   ok;

  g_assert (n <= G_N_ELEMENTS (senders));
  ok = spin (&pair->up);
  *connect_ms = pair->connect_ms;
  for (unsigned i = 0; i < n && ok; i++)
    {
      Open    o = { 0 };
      int64_t t0 = g_get_monotonic_time ();

      pm_stream_mux_open_async (pair->link.mux[0], "bench", NULL, on_opened, &o);
      ok = spin (&o.done) && o.stream != NULL;
      if (i == 0)
        *open_ms = (double) (g_get_monotonic_time () - t0) / 1000;
      senders[i] = G_IO_STREAM (o.stream);
    }
  if (ok)
    {
      g_assert (pair->accepted->len == n);
      for (unsigned i = 0; i < n; i++)
        receivers[i] = g_ptr_array_index (pair->accepted, i);
      ok = transfer (senders, receivers, n, total / n, timing);
      for (unsigned i = 0; i < n; i++)
        g_object_unref (senders[i]);
    }
  pair_free (pair);
  return ok;
}

/* --- Main ------------------------------------------------------------------------ */

static double
median (double  *v,
        unsigned n)
{
  g_autofree double *s = g_memdup2 (v, n * sizeof *v);

  for (unsigned i = 1; i < n; i++)
    for (unsigned j = i; j > 0 && s[j - 1] > s[j]; j--)
      {
        double t = s[j];

        s[j] = s[j - 1];
        s[j - 1] = t;
      }
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

enum {
  TCP_MBPS,
  STREAM_MBPS,
  STREAMS4_MBPS,
  STREAM_VS_TCP,
  TCP_CPU,
  STREAM_CPU,
  STREAMS4_CPU,
  CONNECT_MS,
  OPEN_MS,
  N_SERIES
};

static const char *series_names[N_SERIES] = {
  "tcp_mbps",
  "stream_mbps",
  "streams4_mbps",
  "stream_vs_tcp",
  "tcp_cpu_ns_per_byte",
  "stream_cpu_ns_per_byte",
  "streams4_cpu_ns_per_byte",
  "connect_ms",
  "open_ms",
};

int
main (int   argc,
      char *argv[])
{
  gboolean     json = FALSE, quick = FALSE;
  int          rounds = 5, mib = 128;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "One short round (for the test suite)", NULL },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Rounds (median reported)", "N" },
    { "mib", 0, 0, G_OPTION_ARG_INT, &mib, "MiB per transfer", "M" },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- stream layer throughput");
  g_autoptr (GError) error = NULL;
  double  *series[N_SERIES];
  double   med[N_SERIES];
  uint64_t total;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (quick)
    {
      rounds = 1;
      mib = 16;
    }
  if (rounds < 1 || mib < 4)
    {
      g_printerr ("--rounds must be at least 1 and --mib at least 4\n");
      return 2;
    }
  total = (uint64_t) mib * MIB;
  for (size_t i = 0; i < sizeof pattern; i++)
    pattern[i] = (uint8_t) (i * 131 + (i >> 8));
  for (unsigned i = 0; i < N_SERIES; i++)
    series[i] = g_new0 (double, rounds);

  for (int r = 0; r < rounds; r++)
    {
      Timing tcp, one, four;
      double connect_ms, open_ms, unused;

      if (!tcp_round (total, &tcp) || !stream_round (1, total, &one, &connect_ms, &open_ms) ||
          !stream_round (4, total, &four, &unused, &unused))
        {
          g_printerr ("round %d failed\n", r + 1);
          return 1;
        }
      series[TCP_MBPS][r] = (double) total / tcp.seconds / 1e6;
      series[STREAM_MBPS][r] = (double) total / one.seconds / 1e6;
      series[STREAMS4_MBPS][r] = (double) total / four.seconds / 1e6;
      series[STREAM_VS_TCP][r] = series[STREAM_MBPS][r] / series[TCP_MBPS][r];
      series[TCP_CPU][r] = tcp.cpu / (double) total * 1e9;
      series[STREAM_CPU][r] = one.cpu / (double) total * 1e9;
      series[STREAMS4_CPU][r] = four.cpu / (double) total * 1e9;
      series[CONNECT_MS][r] = connect_ms;
      series[OPEN_MS][r] = open_ms;
      if (!json)
        g_print ("round %d: tcp %.0f MB/s, 1 stream %.0f MB/s, 4 streams %.0f MB/s\n", r + 1,
                 series[TCP_MBPS][r], series[STREAM_MBPS][r], series[STREAMS4_MBPS][r]);
    }
  for (unsigned i = 0; i < N_SERIES; i++)
    med[i] = median (series[i], (unsigned) rounds);

  if (json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonGenerator) generator = json_generator_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *text = NULL;

      json_builder_begin_object (builder);
      for (unsigned i = 0; i < N_SERIES; i++)
        {
          json_builder_set_member_name (builder, series_names[i]);
          json_builder_add_double_value (builder, med[i]);
        }
      json_builder_set_member_name (builder, "mtu");
      json_builder_add_int_value (builder, PM_STREAM_MTU);
      json_builder_set_member_name (builder, "window");
      json_builder_add_int_value (builder, PM_STREAM_WINDOW);
      json_builder_set_member_name (builder, "mib_per_round");
      json_builder_add_int_value (builder, mib);
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
      g_print ("medians of %d rounds of %d MiB:\n", rounds, mib);
      for (unsigned i = 0; i < N_SERIES; i++)
        g_print ("  %-26s %10.3f\n", series_names[i], med[i]);
    }
  for (unsigned i = 0; i < N_SERIES; i++)
    g_free (series[i]);
  return 0;
}
