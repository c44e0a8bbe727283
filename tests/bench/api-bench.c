/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * api-bench [--json] [--quick] [--rounds N] [--seconds S] [--connections C] [--devices D]
 *
 * Requests per second of the coordination API (server/pm-coord-server.c)
 * beside its peers, all measured in the same run:
 *
 *  - devices_get_per_s: authenticated GET /v1/mesh/devices, what every
 *    client polls: the bearer token is hashed and looked up in the store, the
 *    caller's account's D devices are listed (each with candidates and a
 *    last-seen time) and written as JSON.
 *  - healthz_per_s: GET /healthz, no authentication; it only runs the store's
 *    small count query and answers {"status":"ok"}.
 *  - not_found_per_s: GET of an unknown path, answered 404 with a JSON error:
 *    no authentication and no database at all, i.e. the limit of libsoup's
 *    HTTP stack (and our dispatch) on this machine.
 *  - devices_vs_healthz, devices_vs_not_found: median of the per-round ratios.
 *    They are the figures to compare between machines and commits.
 *  - *_server_cpu_us: CPU time of the server's thread per request, in µs
 *    (median of rounds); unlike requests per second it does not depend on how
 *    much of the machine the load generator takes.
 *
 * The server is a PmCoordServer over a PmStoreSqlite in a temporary file (WAL
 * journal), on 127.0.0.1 with a free port, serving in this process's main
 * thread as pipermesh-server does. One account is enrolled with D devices
 * through the store API. The load generator is wrk (Debian package "wrk"),
 * a separate process, so that client and server never share a thread: one
 * wrk thread with C keep-alive connections, its Lua script setting the
 * Authorization header and printing its totals in a line we parse. Any
 * non-2xx answer (other than the expected 404s) or socket error fails the
 * bench. Without wrk the figures are skipped with a message (and with --json
 * the object holds "skipped").
 *
 * Rounds run every metric for S seconds (wrk counts whole seconds), in an
 * order rotated each round so that a slow spell of the machine hits all of
 * them alike; medians are reported. On a 2-core machine wrk and the server
 * each get about one core: compare the ratios, not the raw rates.
 */
#define G_LOG_DOMAIN "pipermesh-api-bench"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pm-coord-server.h"
#include "pm-store-sqlite.h"

#define DEFAULT_ROUNDS      5
#define DEFAULT_SECONDS     2
#define DEFAULT_CONNECTIONS 16
#define DEFAULT_DEVICES     10
#define QUICK_ROUNDS        1
#define QUICK_SECONDS       1
#define NOT_FOUND_PATH      "/v1/mesh/no-such-thing"

/* wrk's script: the header from the environment (none for the unauthenticated
 * routes), and one line of totals at the end. */
static const char wrk_script[] =
  "wrk.headers[\"Authorization\"] = os.getenv(\"PM_API_BENCH_AUTH\")\n"
  "function done(summary, latency, requests)\n"
  "  local e = summary.errors\n"
  "  io.write(string.format(\"PM-API-BENCH %d %d %d %d %d %d %d\\n\",\n"
  "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))\n"
  "end\n";

typedef struct {
  const char *key;   /* JSON prefix */
  const char *label; /* table row */
  const char *path;
  gboolean    auth;
  gboolean    expect_404;
  GArray     *per_s;  /* double, one per round */
  GArray     *cpu_us; /* double: server thread CPU µs per request */
  double      median_per_s, median_cpu_us;
} Metric;

enum {
  METRIC_DEVICES,
  METRIC_HEALTHZ,
  METRIC_NOT_FOUND,
  N_METRICS
};

typedef struct {
  char          *wrk;    /* path, NULL if missing */
  char          *script; /* the Lua file */
  char          *base;
  char          *auth;
  unsigned       seconds;
  unsigned       connections;
  PmCoordServer *server;
} Bench;

G_GNUC_NORETURN static void
die (const char *what,
     GError     *error)
{
  g_printerr ("api-bench: %s%s%s\n", what, error ? ": " : "", error ? error->message : "");
  exit (1);
}

static double
thread_cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int
compare_double (const void *a,
                const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
median (GArray *samples)
{
  g_autofree double *v = g_memdup2 (samples->data, samples->len * sizeof (double));
  unsigned           n = samples->len;

  g_assert (n > 0);
  qsort (v, n, sizeof *v, compare_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *
cpu_model (void)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/cpuinfo", &text, NULL, NULL))
    return g_strdup ("unknown");
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (g_str_has_prefix (*l, "model name"))
      {
        const char *colon = strchr (*l, ':');

        if (colon != NULL)
          return g_strstrip (g_strdup (colon + 1));
      }
  return g_strdup ("unknown");
}

/* "wrk debian/4.1.0-3+b2 [epoll] ..." → "debian/4.1.0-3+b2 [epoll]". */
static char *
wrk_version (const char *wrk)
{
  const char      *argv[] = { wrk, "--version", NULL };
  g_autofree char *out = NULL;
  char            *copyright;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                     NULL, NULL, NULL) ||
      out == NULL || !g_str_has_prefix (out, "wrk "))
    return g_strdup ("unknown");
  out[strcspn (out, "\n")] = '\0';
  copyright = strstr (out, " Copyright");
  if (copyright != NULL)
    *copyright = '\0';
  return g_strdup (out + 4);
}

/* --- The server ------------------------------------------------------------- */

typedef struct {
  char          *dir;
  char          *db_path;
  PmStoreSqlite *store;
} Store;

/* One account with @n_devices devices, each with candidates and a recent
 * last_seen as a live client would leave them. Returns the first one's token. */
static char *
populate (PmStore *store,
          unsigned n_devices)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autofree char *key = NULL;
  char            *first_token = NULL;
  int64_t          now = pm_store_now ();

  account = pm_store_create_account (store, "bench", now, &error);
  if (account == NULL)
    die ("create account", error);
  key = pm_store_create_enrollment_key (store, account->id, 3600, TRUE, now, NULL, &error);
  if (key == NULL)
    die ("create enrollment key", error);
  for (unsigned i = 0; i < n_devices; i++)
    {
      g_autoptr (PmDeviceRecord) device = NULL;
      g_autofree char *name = g_strdup_printf ("device-%u", i);
      g_autofree char *token = NULL;
      g_autofree char *candidates = NULL;
      GString         *public_key = g_string_new (NULL);

      for (int b = 0; b < 32; b++)
        g_string_append_printf (public_key, "%02x", g_random_int_range (0, 256));
      device = pm_store_enroll_device (store, key, name, i % 2 ? "android" : "linux",
                                       public_key->str, "secret-service", now, &token, &error);
      g_string_free (public_key, TRUE);
      if (device == NULL)
        die ("enroll device", error);
      /* The shape handle_candidates() stores. */
      candidates = g_strdup_printf ("{\"addresses\":[\"192.168.1.%u:41641\",\"[2001:db8::%x]:41641\"],"
                                    "\"mapped\":\"203.0.113.%u:41641\","
                                    "\"mappingVariesByDestination\":false}",
                                    10 + i, 16 + i, 10 + i);
      if (!pm_store_set_candidates (store, device->id, candidates, now, &error))
        die ("set candidates", error);
      if (first_token == NULL)
        first_token = g_steal_pointer (&token);
    }
  return first_token;
}

/* --- One wrk run -------------------------------------------------------------- */

typedef struct {
  char    *out;
  char    *err;
  GError  *error;
  gboolean done;
} Run;

static void
on_communicated (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Run *run = user_data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &run->out, &run->err,
                                        &run->error);
  run->done = TRUE;
}

/* Runs wrk on @metric for one round while this thread serves; appends the
 * round's rate and CPU per request. */
static void
run_round (Bench  *bench,
           Metric *metric)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *url = g_strconcat (bench->base, metric->path, NULL);
  g_autofree char *duration = g_strdup_printf ("%us", bench->seconds);
  g_autofree char *connections = g_strdup_printf ("%u", bench->connections);
  const char      *line;
  Run              run = { 0 };
  uint64_t         requests, duration_us, e_connect, e_read, e_write, e_status, e_timeout;
  double           cpu_start, cpu, per_s, cpu_us;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  if (metric->auth)
    {
      g_autofree char *value = g_strconcat ("Bearer ", bench->auth, NULL);

      g_subprocess_launcher_setenv (launcher, "PM_API_BENCH_AUTH", value, TRUE);
    }
  else
    g_subprocess_launcher_unsetenv (launcher, "PM_API_BENCH_AUTH");
  cpu_start = thread_cpu_seconds ();
  process = g_subprocess_launcher_spawn (launcher, &error, bench->wrk, "-t1", "-c", connections,
                                         "-d", duration, "--timeout", "10s", "-s", bench->script,
                                         url, NULL);
  if (process == NULL)
    die ("start wrk", error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, on_communicated, &run);
  while (!run.done)
    g_main_context_iteration (NULL, TRUE);
  cpu = thread_cpu_seconds () - cpu_start;

  if (run.error != NULL)
    die ("wrk", run.error);
  if (!g_subprocess_get_successful (process))
    {
      g_printerr ("%s%s", run.out != NULL ? run.out : "", run.err != NULL ? run.err : "");
      die ("wrk failed", NULL);
    }
  line = run.out != NULL ? strstr (run.out, "PM-API-BENCH ") : NULL;
  if (line == NULL ||
      sscanf (line,
              "PM-API-BENCH %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
              " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
              " %" G_GUINT64_FORMAT,
              &requests, &duration_us, &e_connect, &e_read, &e_write, &e_status,
              &e_timeout) != 7)
    {
      g_printerr ("%s", run.out != NULL ? run.out : "");
      die ("wrk printed no totals", NULL);
    }
  if (requests == 0 || duration_us == 0 || e_connect + e_read + e_write + e_timeout != 0 ||
      e_status != (metric->expect_404 ? requests : 0))
    {
      g_printerr ("%s", run.out);
      g_printerr ("api-bench: %s: %" G_GUINT64_FORMAT " requests, errors: connect %" G_GUINT64_FORMAT
                  ", read %" G_GUINT64_FORMAT ", write %" G_GUINT64_FORMAT
                  ", timeout %" G_GUINT64_FORMAT ", unexpected status %" G_GUINT64_FORMAT "\n",
                  metric->key, requests, e_connect, e_read, e_write, e_timeout, e_status);
      exit (1);
    }
  per_s = (double) requests * 1e6 / (double) duration_us;
  cpu_us = cpu * 1e6 / (double) requests;
  g_array_append_val (metric->per_s, per_s);
  g_array_append_val (metric->cpu_us, cpu_us);
  g_free (run.out);
  g_free (run.err);
}

/* --- Sanity check before measuring ------------------------------------------ */

typedef struct {
  GBytes  *body;
  GError  *error;
  gboolean done;
} Fetch;

static void
on_fetched (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Fetch *fetch = user_data;

  fetch->body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &fetch->error);
  fetch->done = TRUE;
}

/* The listing must be what we measure: 200 with all @n_devices devices. */
static void
check_listing (Bench   *bench,
               unsigned n_devices)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strconcat (bench->base, "/v1/mesh/devices", NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *value = g_strconcat ("Bearer ", bench->auth, NULL);
  Fetch            fetch = { 0 };
  JsonNode        *root;
  JsonArray       *devices;

  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", value);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, on_fetched, &fetch);
  while (!fetch.done)
    g_main_context_iteration (NULL, TRUE);
  if (fetch.body == NULL)
    die ("GET /v1/mesh/devices", fetch.error);
  if (soup_message_get_status (msg) != SOUP_STATUS_OK ||
      !json_parser_load_from_data (parser, g_bytes_get_data (fetch.body, NULL),
                                   (gssize) g_bytes_get_size (fetch.body), NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root) ||
      (devices = json_object_get_array_member (json_node_get_object (root), "devices")) == NULL ||
      json_array_get_length (devices) != n_devices)
    die ("GET /v1/mesh/devices did not list the enrolled devices", NULL);
  g_bytes_unref (fetch.body);
}

/* --- Output --------------------------------------------------------------------- */

static void
add_double (JsonBuilder *b,
            const char  *key,
            double       value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_double_value (b, value);
}

static void
add_int (JsonBuilder *b,
         const char  *key,
         int64_t      value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, value);
}

static void
add_string (JsonBuilder *b,
            const char  *key,
            const char  *value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, value);
}

static void
add_environment (JsonBuilder *b,
                 const char  *wrk)
{
  g_autofree char *cpu = cpu_model ();
  g_autofree char *soup = g_strdup_printf ("%u.%u.%u", soup_get_major_version (),
                                           soup_get_minor_version (), soup_get_micro_version ());
  g_autofree char *glib = g_strdup_printf ("%u.%u.%u", glib_major_version, glib_minor_version,
                                           glib_micro_version);
  g_autofree char *wrk_v = wrk != NULL ? wrk_version (wrk) : g_strdup ("missing");

  json_builder_set_member_name (b, "environment");
  json_builder_begin_object (b);
  add_string (b, "cpu_model", cpu);
  add_int (b, "cpus", g_get_num_processors ());
  add_string (b, "glib_version", glib);
  add_string (b, "libsoup_version", soup);
  add_string (b, "sqlite_version", sqlite3_libversion ());
  add_string (b, "wrk_version", wrk_v);
  json_builder_end_object (b);
}

static void
print_json (JsonBuilder *b)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_results (gboolean json,
               Bench   *bench,
               Metric  *metrics,
               double   vs_healthz,
               double   vs_not_found,
               int      rounds,
               unsigned n_devices)
{
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();

      json_builder_begin_object (b);
      for (unsigned i = 0; i < N_METRICS; i++)
        {
          g_autofree char *per_s = g_strconcat (metrics[i].key, "_per_s", NULL);
          g_autofree char *cpu = g_strconcat (metrics[i].key, "_server_cpu_us", NULL);

          add_double (b, per_s, metrics[i].median_per_s);
          add_double (b, cpu, metrics[i].median_cpu_us);
        }
      add_double (b, "devices_vs_healthz", vs_healthz);
      add_double (b, "devices_vs_not_found", vs_not_found);
      add_int (b, "devices_per_account", n_devices);
      add_int (b, "connections", bench->connections);
      add_int (b, "seconds_per_round", bench->seconds);
      add_int (b, "rounds", rounds);
      json_builder_set_member_name (b, "units");
      json_builder_begin_object (b);
      add_string (b, "per_s", "requests per second (wall clock, counted by wrk); median of rounds");
      add_string (b, "server_cpu_us",
                  "CPU time of the server's thread per request, microseconds; median of rounds");
      add_string (b, "ratios", "median of the per-round ratios");
      json_builder_end_object (b);
      add_environment (b, bench->wrk);
      json_builder_end_object (b);
      print_json (b);
    }
  else
    {
      g_autofree char *cpu = cpu_model ();

      g_print ("CPU: %s (%d), libsoup %u.%u.%u, SQLite %s\n\n", cpu, g_get_num_processors (),
               soup_get_major_version (), soup_get_minor_version (), soup_get_micro_version (),
               sqlite3_libversion ());
      for (unsigned i = 0; i < N_METRICS; i++)
        g_print ("%-28s %9.0f req/s   %7.1f us CPU/request\n", metrics[i].label,
                 metrics[i].median_per_s, metrics[i].median_cpu_us);
      g_print ("%-28s %9.2f\n", "devices / healthz", vs_healthz);
      g_print ("%-28s %9.2f\n", "devices / 404", vs_not_found);
      g_print ("(%d rounds of %u s, %u connections, %u devices, medians)\n", rounds,
               bench->seconds, bench->connections, n_devices);
    }
}

int
main (int    argc,
      char **argv)
{
  gboolean     json = FALSE, quick = FALSE;
  int          rounds = DEFAULT_ROUNDS, seconds = DEFAULT_SECONDS;
  int          connections = DEFAULT_CONNECTIONS, n_devices = DEFAULT_DEVICES;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "One short round (for tests)", NULL },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Rounds (median reported)", "N" },
    { "seconds", 0, 0, G_OPTION_ARG_INT, &seconds, "Seconds per metric and round", "S" },
    { "connections", 0, 0, G_OPTION_ARG_INT, &connections, "wrk's keep-alive connections", "C" },
    { "devices", 0, 0, G_OPTION_ARG_INT, &n_devices, "Devices in the account", "D" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- PiperMesh coordination API benchmark");
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) ratio_healthz = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GArray) ratio_not_found = g_array_new (FALSE, FALSE, sizeof (double));
  Metric metrics[N_METRICS] = {
    [METRIC_DEVICES] = { "devices_get", "GET /v1/mesh/devices", "/v1/mesh/devices", TRUE, FALSE },
    [METRIC_HEALTHZ] = { "healthz", "GET /healthz", "/healthz", FALSE, FALSE },
    [METRIC_NOT_FOUND] = { "not_found", "GET unknown path (404)", NOT_FOUND_PATH, FALSE, TRUE },
  };
  Bench bench = { 0 };
  Store store = { 0 };
  int   fd;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (quick)
    rounds = QUICK_ROUNDS, seconds = QUICK_SECONDS;
  if (rounds < 1 || seconds < 1 || connections < 1 || n_devices < 1 || n_devices > 1000)
    {
      g_printerr ("--rounds, --seconds, --connections must be positive, --devices 1 to 1000\n");
      return 2;
    }
  bench.seconds = (unsigned) seconds;
  bench.connections = (unsigned) connections;

  bench.wrk = g_find_program_in_path ("wrk");
  if (bench.wrk == NULL)
    {
      g_printerr ("api-bench: wrk is not installed (Debian: apt install wrk); "
                  "skipping the wrk-based figures\n");
      if (json)
        {
          g_autoptr (JsonBuilder) b = json_builder_new ();

          json_builder_begin_object (b);
          add_string (b, "skipped", "wrk is not installed");
          add_environment (b, NULL);
          json_builder_end_object (b);
          print_json (b);
        }
      return 0;
    }

  /* The store on a real file in WAL mode, as pipermesh-server runs it. */
  store.dir = g_dir_make_tmp ("pipermesh-api-bench-XXXXXX", &error);
  if (store.dir == NULL)
    die ("temporary directory", error);
  store.db_path = g_build_filename (store.dir, "server.db", NULL);
  store.store = pm_store_sqlite_open (store.db_path, &error);
  if (store.store == NULL)
    die ("open the store", error);
  bench.auth = populate (PM_STORE (store.store), (unsigned) n_devices);

  fd = g_file_open_tmp ("pipermesh-api-bench-XXXXXX.lua", &bench.script, &error);
  if (fd < 0)
    die ("create the wrk script", error);
  close (fd);
  if (!g_file_set_contents (bench.script, wrk_script, -1, &error))
    die ("write the wrk script", error);

  bench.server = pm_coord_server_new (PM_STORE (store.store), NULL, NULL);
  if (!pm_coord_server_listen (bench.server, "127.0.0.1:0", NULL, &error))
    die ("listen", error);
  bench.base = pm_coord_server_get_base_uri (bench.server);
  check_listing (&bench, (unsigned) n_devices);

  for (unsigned i = 0; i < N_METRICS; i++)
    {
      metrics[i].per_s = g_array_new (FALSE, FALSE, sizeof (double));
      metrics[i].cpu_us = g_array_new (FALSE, FALSE, sizeof (double));
    }
  /* Warm-up (not counted): caches, the page cache of the file, the CPU clock. */
  if (!quick)
    {
      Metric   warm = metrics[METRIC_DEVICES];
      unsigned saved = bench.seconds;

      warm.per_s = g_array_new (FALSE, FALSE, sizeof (double));
      warm.cpu_us = g_array_new (FALSE, FALSE, sizeof (double));
      bench.seconds = 1;
      run_round (&bench, &warm);
      bench.seconds = saved;
      g_array_unref (warm.per_s);
      g_array_unref (warm.cpu_us);
    }
  for (int r = 0; r < rounds; r++)
    {
      double devices, healthz, not_found, ratio;

      for (unsigned k = 0; k < N_METRICS; k++)
        run_round (&bench, &metrics[(k + (unsigned) r) % N_METRICS]);
      devices = g_array_index (metrics[METRIC_DEVICES].per_s, double, r);
      healthz = g_array_index (metrics[METRIC_HEALTHZ].per_s, double, r);
      not_found = g_array_index (metrics[METRIC_NOT_FOUND].per_s, double, r);
      ratio = devices / healthz;
      g_array_append_val (ratio_healthz, ratio);
      ratio = devices / not_found;
      g_array_append_val (ratio_not_found, ratio);
      if (!json)
        g_printerr ("round %d: devices %.0f/s, healthz %.0f/s, 404 %.0f/s\n", r + 1, devices,
                    healthz, not_found);
    }
  for (unsigned i = 0; i < N_METRICS; i++)
    {
      metrics[i].median_per_s = median (metrics[i].per_s);
      metrics[i].median_cpu_us = median (metrics[i].cpu_us);
    }
  print_results (json, &bench, metrics, median (ratio_healthz), median (ratio_not_found), rounds,
                 (unsigned) n_devices);

  for (unsigned i = 0; i < N_METRICS; i++)
    {
      g_array_unref (metrics[i].per_s);
      g_array_unref (metrics[i].cpu_us);
    }
  g_clear_object (&bench.server);
  g_clear_object (&store.store);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_unlink (bench.script);
  g_unlink (store.db_path);
  {
    g_autofree char *wal = g_strconcat (store.db_path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (store.db_path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (store.dir);
  g_free (store.dir);
  g_free (store.db_path);
  g_free (bench.wrk);
  g_free (bench.script);
  g_free (bench.base);
  g_free (bench.auth);
  return 0;
}
