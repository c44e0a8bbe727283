/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * relay-bench [--json] [--quick] [--rounds N] [--mib M] [--idle-pairs P]
 *
 * The relay (server/pm-relay.c) beside its limit, in the same run:
 *
 *  - Throughput of one relay pair: device A sends M MiB in 64 KiB binary
 *    messages (the relay's largest, as a bulk sender batches) through the
 *    relay to device B. The relay runs in a child process with its own
 *    SoupServer, as in production. A and B live in this process, on blocking
 *    sockets: A is a thread writing ready-made masked client frames, B the
 *    main thread reading and counting bytes, so that the clients cost the
 *    same as the pipe's below and only the forwarder differs.
 *  - The same M MiB through a plain TCP byte pipe on loopback: a child
 *    process that accepts two connections and copies bytes from the first to
 *    the second with read()/write() of 64 KiB. That is the floor any relay
 *    pays (two loopback hops and a forwarding process in between, laid out
 *    exactly as the relay run: same clients, same message size, same timing);
 *    the relay adds WebSocket parsing, unmasking and re-framing on top.
 *    Target: relay ≥ 0.7× this forwarded pipe ("relay_vs_tcp_pipe").
 *  - For context only, the same M MiB over one direct loopback connection
 *    from A to B with no forwarder ("tcp_direct_mbps"): no relay can reach
 *    it, since it crosses loopback once instead of twice.
 *  - The CPU time the forwarding process (relay or pipe child) spends per
 *    payload byte during its rounds. On a busy machine this is steadier than
 *    throughput, and it shows what the relay itself costs.
 *  - Memory per idle relay session: P pairs are paired and left idle; the
 *    relay child's heap (mallinfo2: in-use + mmapped) and RSS are read before
 *    and after. Target: ≤ 64 KiB per session (a session is two WebSockets).
 *
 * Rounds alternate relay, pipe and direct TCP so that a slow spell of the
 * machine hits all alike; medians are reported, ratios as the median of the
 * per-round ratios. MB = 10^6 bytes.
 */
#define G_LOG_DOMAIN "pipermesh-relay-bench"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pm-relay.h"

/* The relay's largest message, as a bulk sender batches. The frames written
 * and read below take it to need the 64-bit length form (more than 64 KiB - 1). */
#define MESSAGE_SIZE PM_RELAY_MAX_MESSAGE_SIZE
G_STATIC_ASSERT (MESSAGE_SIZE > G_MAXUINT16);

/* Target of relay_vs_tcp_pipe (relay beside the forwarded pipe). */
#define TARGET_VS_TCP_PIPE 0.7

/* Per-round figures, reported as medians under these JSON names. */
enum {
  RELAY_MBPS,
  PIPE_MBPS,
  DIRECT_MBPS,
  VS_PIPE,
  VS_DIRECT,
  RELAY_CPU,
  PIPE_CPU,
  CPU_RATIO,
  N_SERIES
};

static const char *const series_names[N_SERIES] = {
  [RELAY_MBPS] = "relay_mbps",
  [PIPE_MBPS] = "tcp_pipe_mbps",
  [DIRECT_MBPS] = "tcp_direct_mbps",
  [VS_PIPE] = "relay_vs_tcp_pipe",
  [VS_DIRECT] = "relay_vs_tcp_direct",
  [RELAY_CPU] = "relay_cpu_ns_per_byte",
  [PIPE_CPU] = "tcp_pipe_cpu_ns_per_byte",
  [CPU_RATIO] = "relay_vs_tcp_pipe_cpu",
};

typedef struct {
  double mbps;
  double cpu_ns_per_byte; /* of the forwarding child; 0 when there is none */
} Round;

/* CPU time (all threads, user + system) that process @pid has used. */
static int64_t
process_cpu_ns (pid_t pid)
{
  clockid_t       id;
  struct timespec ts;

  if (clock_getcpuclockid (pid, &id) != 0 || clock_gettime (id, &ts) != 0)
    g_error ("no CPU clock for process %d", (int) pid);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- Children ---------------------------------------------------------------- */

static GSocket *
listen_loopback (unsigned *port)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                G_SOCKET_PROTOCOL_TCP, &error);

  g_assert_no_error (error);
  if (!g_socket_bind (sock, address, TRUE, &error))
    g_error ("bind: %s", error->message);
  g_socket_set_listen_backlog (sock, 4096);
  if (!g_socket_listen (sock, &error))
    g_error ("listen: %s", error->message);
  bound = g_socket_get_local_address (sock, &error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return sock;
}

/* GSocket keeps its descriptors non-blocking; the pipe uses plain blocking I/O. */
static void
set_blocking (int fd)
{
  int flags = fcntl (fd, F_GETFL);

  if (flags >= 0)
    (void) fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
}

static void
write_full (int         fd,
            const void *p,
            size_t      n)
{
  while (n > 0)
    {
      ssize_t w = write (fd, p, n);

      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        _exit (3);
      p = (const char *) p + w;
      n -= (size_t) w;
    }
}

static gboolean
read_full (int    fd,
           void  *p,
           size_t n)
{
  while (n > 0)
    {
      ssize_t r = read (fd, p, n);

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return FALSE;
      p = (char *) p + r;
      n -= (size_t) r;
    }
  return TRUE;
}

/* Memory of this process: heap in use (including mmapped blocks) and RSS. */
static void
memory_now (uint64_t out[2])
{
  struct mallinfo2 mi = mallinfo2 ();
  g_autofree char *statm = NULL;
  unsigned long    pages = 0, resident = 0;

  out[0] = mi.uordblks + mi.hblkhd;
  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    (void) sscanf (statm, "%lu %lu", &pages, &resident);
  out[1] = (uint64_t) resident * (uint64_t) sysconf (_SC_PAGESIZE);
}

static void
relay_handler (SoupServer        *server,
               SoupServerMessage *msg,
               const char        *path,
               GHashTable        *query,
               gpointer           user_data)
{
  PmRelay    *relay = user_data;
  const char *auth = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                   "Authorization");
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);

  /* Bench credentials: "Bearer <device>", all in one account. */
  if (auth == NULL || g_strv_length (parts) != 6 || !g_str_has_prefix (auth, "Bearer "))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, NULL);
      return;
    }
  pm_relay_accept (relay, msg, "bench", auth + strlen ("Bearer "), parts[4]);
}

static gboolean
on_control (int          fd,
            GIOCondition condition,
            gpointer     user_data)
{
  char     command;
  uint64_t memory[2];

  if (!read_full (fd, &command, 1) || command == 'q')
    _exit (0);
  memory_now (memory);
  write_full (*(int *) user_data, memory, sizeof memory);
  return G_SOURCE_CONTINUE;
}

/* The relay child: answers 'm' on @control_in with its memory on @reply_out. */
static G_GNUC_NORETURN void
relay_child (int control_in,
             int reply_out)
{
  g_autoptr (GError) error = NULL;
  PmRelayLimits limits;
  PmRelay      *relay;
  SoupServer   *server;
  GSocket      *sock;
  unsigned      port;
  uint16_t      port16;

  pm_relay_limits_default (&limits);
  limits.account_bytes_per_s = 0;
  limits.max_sessions_per_account = 0;
  pm_relay_tune_allocator (); /* as pipermesh-server serve does */
  relay = pm_relay_new (&limits);
  server = soup_server_new (NULL, NULL);
  soup_server_add_handler (server, "/v1/mesh/relay", relay_handler, relay, NULL);
  sock = listen_loopback (&port);
  if (!soup_server_listen_socket (server, sock, 0, &error))
    g_error ("listen: %s", error->message);
  port16 = (uint16_t) port;
  write_full (reply_out, &port16, sizeof port16);
  g_unix_fd_add (control_in, G_IO_IN | G_IO_HUP, on_control, &reply_out);
  for (;;)
    g_main_context_iteration (NULL, TRUE);
}

/* The TCP pipe child: copies connection 1 to connection 2, for each pair. */
static G_GNUC_NORETURN void
pipe_child (int reply_out)
{
  g_autoptr (GError) error = NULL;
  unsigned         port;
  GSocket         *sock = listen_loopback (&port);
  uint16_t         port16 = (uint16_t) port;
  g_autofree char *buffer = g_malloc (MESSAGE_SIZE);

  g_socket_set_blocking (sock, TRUE);
  write_full (reply_out, &port16, sizeof port16);
  for (;;)
    {
      g_autoptr (GSocket) from = g_socket_accept (sock, NULL, &error);
      g_autoptr (GSocket) to = g_socket_accept (sock, NULL, &error);
      int in, out;

      if (from == NULL || to == NULL)
        _exit (2);
      in = g_socket_get_fd (from);
      out = g_socket_get_fd (to);
      set_blocking (in);
      set_blocking (out);
      for (;;)
        {
          ssize_t r = read (in, buffer, MESSAGE_SIZE);

          if (r < 0 && errno == EINTR)
            continue;
          if (r <= 0)
            break;
          write_full (out, buffer, (size_t) r);
        }
    }
}

/* --- Parent: clients ---------------------------------------------------------- */

typedef struct {
  SoupWebsocketConnection *ws;
  GError                  *error;
  gboolean                 done;
  uint64_t                 received;
  unsigned                 messages;
} Client;

static void
on_message (SoupWebsocketConnection *ws,
            int                      type,
            GBytes                  *message,
            gpointer                 user_data)
{
  Client *c = user_data;

  c->received += g_bytes_get_size (message);
  c->messages++;
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
    g_signal_connect (c->ws, "message", G_CALLBACK (on_message), c);
}

static void
client_start (SoupSession *session,
              unsigned     port,
              Client      *c,
              const char  *device,
              const char  *peer)
{
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/v1/mesh/relay/%s/stream", port, peer);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", device);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);

  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  soup_session_websocket_connect_async (session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        on_connected, c);
}

static void
client_clear (Client *c)
{
  if (c->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (c->ws, c);
      soup_websocket_connection_close (c->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
    }
  g_clear_object (&c->ws);
  g_clear_error (&c->error);
}

static void
wait_connected (Client  *c,
                unsigned n)
{
  int64_t deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  for (unsigned i = 0; i < n; i++)
    {
      while (!c[i].done)
        {
          if (g_get_monotonic_time () > deadline)
            g_error ("WebSocket handshakes timed out");
          g_main_context_iteration (NULL, TRUE);
        }
      if (c[i].error != NULL)
        g_error ("connect: %s", c[i].error->message);
    }
}

static void
spin_ms (unsigned ms)
{
  int64_t end = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE), g_usleep (1000);
}

typedef struct {
  int      fd;
  uint64_t total;
  gboolean frame;  /* prefix each 64 KiB with a masked client frame header */
  uint8_t *buffer; /* what is written each time, made before the clock starts */
} Sender;

static void
sender_prepare (Sender *s)
{
  const size_t header = s->frame ? 14 : 0;
  uint8_t     *buffer = g_malloc (header + MESSAGE_SIZE);

  if (s->frame)
    {
      /* FIN + binary; masked, 64-bit length; mask key 0 (payload unchanged). */
      memset (buffer, 0, header);
      buffer[0] = 0x82;
      buffer[1] = 0x80 | 127;
      buffer[2 + 5] = (MESSAGE_SIZE >> 16) & 0xff;
      buffer[2 + 6] = (MESSAGE_SIZE >> 8) & 0xff;
      buffer[2 + 7] = MESSAGE_SIZE & 0xff;
    }
  for (size_t i = header; i < header + MESSAGE_SIZE; i++)
    buffer[i] = (uint8_t) g_random_int ();
  s->buffer = buffer;
}

static gpointer
tcp_sender (gpointer data)
{
  Sender      *s = data;
  const size_t size = (s->frame ? 14 : 0) + MESSAGE_SIZE;

  for (uint64_t sent = 0; sent < s->total; sent += MESSAGE_SIZE)
    write_full (s->fd, s->buffer, size);
  return NULL;
}

static int
connect_loopback (unsigned port)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  GSocketConnection *conn = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port,
                                                             NULL, &error);
  int                fd;

  if (conn == NULL)
    g_error ("connect: %s", error->message);
  fd = dup (g_socket_get_fd (g_socket_connection_get_socket (conn)));
  g_object_unref (conn);
  set_blocking (fd);
  return fd;
}

/* A WebSocket client on a plain blocking socket: the handshake by hand. */
static int
ws_connect_raw (unsigned    port,
                const char *device,
                const char *peer)
{
  int              fd = connect_loopback (port);
  g_autofree char *request = g_strdup_printf ("GET /v1/mesh/relay/%s/stream HTTP/1.1\r\n"
                                              "Host: 127.0.0.1:%u\r\n"
                                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                              "Sec-WebSocket-Version: 13\r\n"
                                              "Authorization: Bearer %s\r\n\r\n",
                                              peer, port, device);
  g_autoptr (GString) response = g_string_new (NULL);

  write_full (fd, request, strlen (request));
  while (!g_str_has_suffix (response->str, "\r\n\r\n"))
    {
      char ch;

      if (!read_full (fd, &ch, 1) || response->len > 4096)
        g_error ("WebSocket handshake failed");
      g_string_append_c (response, ch);
    }
  if (!g_str_has_prefix (response->str, "HTTP/1.1 101"))
    g_error ("WebSocket handshake refused: %s", response->str);
  return fd;
}

/* Reads from @fd until @expect bytes have come. */
static void
read_count (int         fd,
            uint64_t    expect,
            const char *what)
{
  g_autofree uint8_t *buffer = g_malloc (MESSAGE_SIZE);
  uint64_t            received = 0;

  while (received < expect)
    {
      ssize_t r = read (fd, buffer, MESSAGE_SIZE);

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        g_error ("%s closed early", what);
      received += (uint64_t) r;
    }
}

/* Sends @total payload bytes from @s->fd's sender thread to @in, which
 * receives @expect bytes, and times it. @forwarder is the child in between,
 * or 0. */
static Round
timed_transfer (Sender     *s,
                int         in,
                uint64_t    expect,
                pid_t       forwarder,
                const char *what)
{
  int64_t  cpu, start;
  GThread *thread;
  double   seconds;
  Round    round = { 0 };

  sender_prepare (s);
  cpu = forwarder != 0 ? process_cpu_ns (forwarder) : 0;
  start = g_get_monotonic_time ();
  thread = g_thread_new ("sender", tcp_sender, s);

  read_count (in, expect, what);
  seconds = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  if (forwarder != 0)
    round.cpu_ns_per_byte = (double) (process_cpu_ns (forwarder) - cpu) / (double) s->total;
  g_thread_join (thread);
  g_free (s->buffer);
  close (s->fd);
  close (in);
  round.mbps = (double) s->total / seconds / 1e6;
  return round;
}

/* @total payload bytes from A to B through the relay. A and B are the same
 * blocking sender and reader as in the TCP rounds: A writes ready-made client
 * frames (64 KiB binary, masked with a zero key: the relay unmasks all the
 * same), B reads and counts the server's frames (10-byte header + 64 KiB). */
static Round
relay_round (unsigned port,
             pid_t    forwarder,
             uint64_t total,
             unsigned round)
{
  g_autofree char *a = g_strdup_printf ("tput-a%u", round);
  g_autofree char *b = g_strdup_printf ("tput-b%u", round);
  uint64_t         n = total / MESSAGE_SIZE;
  Sender           s = { 0 };
  int              in;

  in = ws_connect_raw (port, b, a);
  s.fd = ws_connect_raw (port, a, b);
  s.total = n * MESSAGE_SIZE;
  s.frame = TRUE;
  return timed_transfer (&s, in, n * (10 + MESSAGE_SIZE), forwarder, "relay");
}

/* @total bytes through the plain TCP pipe child. */
static Round
tcp_pipe_round (unsigned port,
                pid_t    forwarder,
                uint64_t total)
{
  Sender s = { connect_loopback (port), total, FALSE };
  int    in;

  usleep (10000); /* the pipe accepts the sender first */
  in = connect_loopback (port);
  return timed_transfer (&s, in, total, forwarder, "tcp pipe");
}

/* @total bytes over one loopback connection from A to B, nothing between. */
static Round
tcp_direct_round (uint64_t total)
{
  g_autoptr (GError) error = NULL;
  unsigned port;
  g_autoptr (GSocket) listener = listen_loopback (&port);
  g_autoptr (GSocket) accepted = NULL;
  Sender s = { 0 };
  int    in;

  g_socket_set_blocking (listener, TRUE);
  s.fd = connect_loopback (port);
  s.total = total;
  accepted = g_socket_accept (listener, NULL, &error);
  if (accepted == NULL)
    g_error ("accept: %s", error->message);
  in = dup (g_socket_get_fd (accepted));
  set_blocking (in);
  return timed_transfer (&s, in, total, 0, "direct TCP");
}

static int
compare_double (const void *a,
                const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (double  *v,
        unsigned n)
{
  qsort (v, n, sizeof *v, compare_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
child_memory (int      control,
              int      reply,
              uint64_t out[2])
{
  write_full (control, "m", 1);
  if (!read_full (reply, out, 2 * sizeof (uint64_t)))
    g_error ("relay child died");
}

int
main (int    argc,
      char **argv)
{
  gboolean     json = FALSE, quick = FALSE;
  int          rounds = 3, mib = 256, idle_pairs = 500;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "One short round (for tests)", NULL },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Rounds (median reported)", "N" },
    { "mib", 0, 0, G_OPTION_ARG_INT, &mib, "MiB per throughput round", "M" },
    { "idle-pairs", 0, 0, G_OPTION_ARG_INT, &idle_pairs, "Idle pairs for the memory figure", "P" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- PiperMesh relay benchmark");
  g_autoptr (GError) error = NULL;
  int           control[2], reply[2], pipe_reply[2];
  pid_t         relay_pid, pipe_pid;
  uint16_t      relay_port, pipe_port;
  double       *series[N_SERIES];
  double        med[N_SERIES];
  uint64_t      total, before[2], after[2];
  SoupSession  *session;
  Client       *idle;
  GPtrArray    *idle_sessions;
  struct rlimit rl;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (quick)
    rounds = 1, mib = 32, idle_pairs = 100;
  if (rounds < 1 || mib < 1 || idle_pairs < 1)
    {
      g_printerr ("--rounds, --mib and --idle-pairs must be positive\n");
      return 2;
    }
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && (rlim_t) idle_pairs * 2 + 64 > rl.rlim_cur)
    idle_pairs = (int) ((rl.rlim_cur - 64) / 2);

  /* Fork the children before this process starts any GLib machinery. */
  if (pipe (control) != 0 || pipe (reply) != 0 || pipe (pipe_reply) != 0)
    g_error ("pipe: %s", g_strerror (errno));
  relay_pid = fork ();
  if (relay_pid == 0)
    relay_child (control[0], reply[1]);
  pipe_pid = fork ();
  if (pipe_pid == 0)
    pipe_child (pipe_reply[1]);
  if (!read_full (reply[0], &relay_port, sizeof relay_port) ||
      !read_full (pipe_reply[0], &pipe_port, sizeof pipe_port))
    g_error ("a child failed to start");

  session = g_object_new (SOUP_TYPE_SESSION, "max-conns", 4096, "max-conns-per-host", 4096, NULL);
  total = (uint64_t) mib * 1024 * 1024;
  for (int i = 0; i < N_SERIES; i++)
    series[i] = g_new (double, rounds);
  for (int r = 0; r < rounds; r++)
    {
      Round relay = relay_round (relay_port, relay_pid, total, (unsigned) r);
      Round piped = tcp_pipe_round (pipe_port, pipe_pid, total);
      Round direct = tcp_direct_round (total);

      series[RELAY_MBPS][r] = relay.mbps;
      series[PIPE_MBPS][r] = piped.mbps;
      series[DIRECT_MBPS][r] = direct.mbps;
      series[VS_PIPE][r] = relay.mbps / piped.mbps;
      series[VS_DIRECT][r] = relay.mbps / direct.mbps;
      series[RELAY_CPU][r] = relay.cpu_ns_per_byte;
      series[PIPE_CPU][r] = piped.cpu_ns_per_byte;
      series[CPU_RATIO][r] = relay.cpu_ns_per_byte / piped.cpu_ns_per_byte;
    }
  for (int i = 0; i < N_SERIES; i++)
    {
      med[i] = median (series[i], (unsigned) rounds);
      g_free (series[i]);
    }

  /* Idle sessions: pair them, let everything settle, compare. */
  spin_ms (200);
  child_memory (control[1], reply[0], before);
  idle = g_new0 (Client, 2 * idle_pairs);
  /* A SoupSession's lookups are linear in its connections: one per 32 pairs. */
  idle_sessions = g_ptr_array_new_with_free_func (g_object_unref);
  for (int i = 0; i < idle_pairs; i++)
    {
      g_autofree char *a = g_strdup_printf ("idle-a%d", i);
      g_autofree char *b = g_strdup_printf ("idle-b%d", i);

      if (i % 32 == 0)
        g_ptr_array_add (idle_sessions, g_object_new (SOUP_TYPE_SESSION, "max-conns", 256,
                                                      "max-conns-per-host", 256, NULL));
      client_start (idle_sessions->pdata[idle_sessions->len - 1], relay_port, &idle[2 * i], a, b);
      client_start (idle_sessions->pdata[idle_sessions->len - 1], relay_port, &idle[2 * i + 1],
                    b, a);
    }
  wait_connected (idle, 2 * (unsigned) idle_pairs);
  spin_ms (300);
  child_memory (control[1], reply[0], after);

  {
    double heap = (double) (after[0] > before[0] ? after[0] - before[0] : 0) / idle_pairs;
    double rss = (double) (after[1] > before[1] ? after[1] - before[1] : 0) / idle_pairs;

    if (json)
      {
        g_autoptr (JsonBuilder) builder = json_builder_new ();
        g_autoptr (JsonGenerator) generator = json_generator_new ();
        g_autoptr (JsonNode) root = NULL;
        g_autofree char *text = NULL;

        json_builder_begin_object (builder);
        for (int i = 0; i < N_SERIES; i++)
          {
            json_builder_set_member_name (builder, series_names[i]);
            json_builder_add_double_value (builder, med[i]);
          }
        json_builder_set_member_name (builder, "relay_vs_tcp_pipe_target");
        json_builder_add_double_value (builder, TARGET_VS_TCP_PIPE);
        json_builder_set_member_name (builder, "idle_session_heap_bytes");
        json_builder_add_double_value (builder, heap);
        json_builder_set_member_name (builder, "idle_session_rss_bytes");
        json_builder_add_double_value (builder, rss);
        json_builder_set_member_name (builder, "idle_pairs");
        json_builder_add_int_value (builder, idle_pairs);
        json_builder_set_member_name (builder, "message_size");
        json_builder_add_int_value (builder, MESSAGE_SIZE);
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
        g_print ("relay, one pair:        %8.1f MB/s\n", med[RELAY_MBPS]);
        g_print ("TCP pipe (forwarded):   %8.1f MB/s\n", med[PIPE_MBPS]);
        g_print ("TCP direct (no hop):    %8.1f MB/s\n", med[DIRECT_MBPS]);
        g_print ("relay / TCP pipe:       %8.2f (target >= %.1f)\n", med[VS_PIPE],
                 TARGET_VS_TCP_PIPE);
        g_print ("relay / TCP direct:     %8.2f (context only)\n", med[VS_DIRECT]);
        g_print ("forwarder CPU, relay:   %8.3f ns per byte\n", med[RELAY_CPU]);
        g_print ("forwarder CPU, pipe:    %8.3f ns per byte\n", med[PIPE_CPU]);
        g_print ("relay / pipe CPU:       %8.2f\n", med[CPU_RATIO]);
        g_print ("idle session, heap:     %8.0f bytes (target <= 65536)\n", heap);
        g_print ("idle session, RSS:      %8.0f bytes\n", rss);
        g_print ("(%d rounds of %d MiB, %d idle pairs)\n", rounds, mib, idle_pairs);
      }
  }

  for (int i = 0; i < 2 * idle_pairs; i++)
    client_clear (&idle[i]);
  g_free (idle);
  g_ptr_array_unref (idle_sessions);
  g_object_unref (session);
  write_full (control[1], "q", 1);
  kill (pipe_pid, SIGTERM);
  waitpid (relay_pid, NULL, 0);
  waitpid (pipe_pid, NULL, 0);
  return 0;
}
