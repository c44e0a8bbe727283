/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pipermesh-server: the coordination server and its admin commands.
 *
 *   pipermesh-server [--db FILE] [serve] [--listen ADDR:PORT] [--stun ADDR:PORT]
 *                    [--tls-cert FILE --tls-key FILE]
 *   pipermesh-server [--db FILE] account create NAME
 *   pipermesh-server [--db FILE] enroll-key create ACCOUNT [--ttl DURATION] [--reusable]
 *   pipermesh-server [--db FILE] device list ACCOUNT [--json]
 *   pipermesh-server [--db FILE] device revoke ID
 *
 * --db is accepted before the command and among every command's options.
 * With no command, serve runs. To add a command, write a handler and add a row
 * to commands[]. Exit status: 0 success, 1 failure, 2 usage error.
 */
#define G_LOG_DOMAIN "pipermesh-server"

#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "pm-address.h"
#include "pm-coord-server.h"
#include "pm-relay.h"
#include "pm-store-sqlite.h"
#include "pm-stun-server.h"

enum {
  EXIT_OK = 0,
  EXIT_FAILED = 1,
  EXIT_USAGE = 2,
};

/* Default lifetime of an enrollment key, and the longest allowed. */
#define DEFAULT_KEY_TTL_SECONDS (24 * 3600)
#define MAX_KEY_TTL_SECONDS     (365 * 24 * 3600)

typedef struct {
  char *db_path; /* NULL: pm_store_sqlite_default_path() */
} GlobalOptions;

typedef int (*CommandHandler) (GlobalOptions *global,
                               int            argc,
                               char         **argv);

typedef struct {
  const char    *group; /* "device", or the whole command ("serve") */
  const char    *verb;  /* "list", or NULL for a one-word command */
  CommandHandler handler;
  const char    *usage; /* arguments after the command */
  const char    *summary;
} Command;

static int cmd_serve (GlobalOptions *global, int argc, char **argv);
static int cmd_account_create (GlobalOptions *global, int argc, char **argv);
static int cmd_enroll_key_create (GlobalOptions *global, int argc, char **argv);
static int cmd_device_list (GlobalOptions *global, int argc, char **argv);
static int cmd_device_revoke (GlobalOptions *global, int argc, char **argv);
static int cmd_help (GlobalOptions *global, int argc, char **argv);

static const Command commands[] = {
  { "serve", NULL, cmd_serve, "", "Run the server (the default command)" },
  { "account", "create", cmd_account_create, "NAME", "Create an account" },
  { "enroll-key", "create", cmd_enroll_key_create, "ACCOUNT",
    "Create an enrollment key for an account and print it" },
  { "device", "list", cmd_device_list, "ACCOUNT", "List an account's devices" },
  { "device", "revoke", cmd_device_revoke, "ID", "Revoke a device: its token stops working" },
  { "help", NULL, cmd_help, "[COMMAND]", "Show help for the server or one command" },
};

/* The command named by argv[0] (and argv[1] for two-word ones); *words says
 * how many argv entries the name took. */
static const Command *
find_command (int    argc,
              char **argv,
              int   *words)
{
  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      const Command *c = &commands[i];

      if (argc < 1 || !g_str_equal (c->group, argv[0]))
        continue;
      if (c->verb == NULL)
        {
          *words = 1;
          return c;
        }
      if (argc >= 2 && g_str_equal (c->verb, argv[1]))
        {
          *words = 2;
          return c;
        }
    }
  return NULL;
}

static gboolean
is_command_group (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (commands[i].group, name))
      return TRUE;
  return FALSE;
}

static char *
command_name (const Command *c)
{
  return c->verb != NULL ? g_strdup_printf ("%s %s", c->group, c->verb) : g_strdup (c->group);
}

static int
usage_error (const Command *command,
             const char    *message)
{
  g_printerr ("pipermesh-server: %s\n", message);
  if (command != NULL)
    {
      g_autofree char *name = command_name (command);
      g_printerr ("Run “pipermesh-server %s --help” for its options.\n", name);
    }
  else
    g_printerr ("Run “pipermesh-server help” for a list of commands.\n");
  return EXIT_USAGE;
}

static int
failed (const char *message)
{
  g_printerr ("pipermesh-server: %s\n", message);
  return EXIT_FAILED;
}

/* The option every command shares. */
static void
add_db_option (GOptionContext *context,
               GlobalOptions  *global)
{
  const GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_FILENAME, &global->db_path,
      "The SQLite database (default: $XDG_DATA_HOME/pipermesh-server/server.db)", "FILE" },
    { NULL },
  };
  GOptionGroup *group = g_option_group_new ("database", "Database options:",
                                            "Show the database options", NULL, NULL);

  g_option_group_add_entries (group, entries);
  g_option_context_add_group (context, group);
}

/* Parses a command's options into @entries (plus --db), and checks that
 * exactly @n_args positional arguments remain, which it returns in @args. */
static gboolean
parse_command (const Command      *command,
               GlobalOptions      *global,
               const GOptionEntry *entries,
               const char         *summary,
               int                 n_args,
               int                *argc,
               char             ***argv,
               int                *status)
{
  g_autoptr (GOptionContext) context = g_option_context_new (command->usage);
  g_autoptr (GError) error = NULL;
  g_autofree char *name = command_name (command);
  g_autofree char *prgname = g_strdup_printf ("pipermesh-server %s", name);
  g_autofree char *global_db = g_steal_pointer (&global->db_path);
  gboolean         ok;

  g_option_context_set_summary (context, summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, NULL);
  add_db_option (context, global);

  g_set_prgname (prgname); /* for the "Usage:" line */
  ok = g_option_context_parse (context, argc, argv, &error);
  g_set_prgname ("pipermesh-server");
  /* A --db among the command's options wins over one before the command. */
  if (global->db_path == NULL)
    global->db_path = g_steal_pointer (&global_db);
  if (!ok)
    {
      *status = usage_error (command, error->message);
      return FALSE;
    }
  if (*argc - 1 != n_args)
    {
      g_autofree char *message = NULL;

      if (*argc - 1 < n_args)
        message = g_strdup_printf ("%s needs %s", name, command->usage);
      else
        message = g_strdup_printf ("%s takes %s, not “%s”", name,
                                   n_args > 0 ? command->usage : "no arguments",
                                   (*argv)[1 + n_args]);
      *status = usage_error (command, message);
      return FALSE;
    }
  return TRUE;
}

static PmStore *
open_store (GlobalOptions *global,
            GError       **error)
{
  if (global->db_path == NULL)
    global->db_path = pm_store_sqlite_default_path ();
  return PM_STORE (pm_store_sqlite_open (global->db_path, error));
}

static char *
format_time (int64_t unix_time)
{
  g_autoptr (GDateTime) utc = NULL;
  g_autoptr (GDateTime) local = NULL;

  if (unix_time == 0)
    return g_strdup ("never");
  utc = g_date_time_new_from_unix_utc (unix_time);
  if (utc == NULL)
    return g_strdup ("?");
  local = g_date_time_to_local (utc);
  return g_date_time_format (local, "%Y-%m-%d %H:%M:%S %Z");
}

/* ---------------------------------------------------------------------------
 * serve
 * ------------------------------------------------------------------------- */

/* TRUE if @address is HOST:PORT. */
static gboolean
check_address (const char *option,
               const char *address,
               char      **message)
{
  g_autoptr (GSocketConnectable) parsed = NULL;
  g_autoptr (GError) error = NULL;

  parsed = g_network_address_parse (address, 0, &error);
  /* Port 0 (any free port) only when written out, as in "127.0.0.1:0". */
  if (parsed == NULL ||
      (g_network_address_get_port (G_NETWORK_ADDRESS (parsed)) == 0 &&
       !g_str_has_suffix (address, ":0")))
    {
      *message = g_strdup_printf ("%s “%s” is not ADDRESS:PORT "
                                  "(for example 0.0.0.0:8443 or [::]:8443)",
                                  option, address);
      return FALSE;
    }
  return TRUE;
}

/* Reads the optional [relay] group of the configuration key file into
 * @limits; absent keys keep their defaults. */
static gboolean
load_relay_limits (GKeyFile      *config,
                   PmRelayLimits *limits,
                   GError       **error)
{
  static const struct {
    const char *key;
    size_t      offset;
    int         kind; /* 0 size_t, 1 uint64, 2 unsigned, 3 seconds → int64 µs */
  } keys[] = {
    { "max-message-size", G_STRUCT_OFFSET (PmRelayLimits, max_message_size), 0 },
    { "queue-high-water", G_STRUCT_OFFSET (PmRelayLimits, queue_high_water), 0 },
    { "account-bytes-per-second", G_STRUCT_OFFSET (PmRelayLimits, account_bytes_per_s), 1 },
    { "account-burst-bytes", G_STRUCT_OFFSET (PmRelayLimits, account_burst_bytes), 1 },
    { "max-sessions-per-account", G_STRUCT_OFFSET (PmRelayLimits, max_sessions_per_account), 2 },
    { "keepalive-interval-seconds", G_STRUCT_OFFSET (PmRelayLimits, keepalive_interval_s), 2 },
    { "wait-timeout-seconds", G_STRUCT_OFFSET (PmRelayLimits, wait_timeout_us), 3 },
    { "idle-timeout-seconds", G_STRUCT_OFFSET (PmRelayLimits, idle_timeout_us), 3 },
  };

  pm_relay_limits_default (limits);
  if (config == NULL || !g_key_file_has_group (config, "relay"))
    return TRUE;
  for (size_t i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_autoptr (GError) local_error = NULL;
      guint64  value;
      uint8_t *field = (uint8_t *) limits + keys[i].offset;

      if (!g_key_file_has_key (config, "relay", keys[i].key, NULL))
        continue;
      value = g_key_file_get_uint64 (config, "relay", keys[i].key, &local_error);
      if (local_error != NULL || value == 0 || value > G_MAXUINT32)
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                       "[relay] %s must be a whole number from 1 to %u", keys[i].key, G_MAXUINT32);
          return FALSE;
        }
      switch (keys[i].kind)
        {
        case 0:
          *(size_t *) field = (size_t) value;
          break;
        case 1:
          *(uint64_t *) field = value;
          break;
        case 2:
          *(unsigned *) field = (unsigned) value;
          break;
        default:
          *(int64_t *) field = (int64_t) value * G_USEC_PER_SEC;
          break;
        }
    }
  return TRUE;
}

/* A command-line value wins over the key file's [server] KEY. */
static char *
config_string (GKeyFile   *config,
               const char *key,
               const char *from_command_line,
               const char *fallback)
{
  g_autofree char *value = NULL;

  if (from_command_line != NULL)
    return g_strdup (from_command_line);
  if (config != NULL)
    value = g_key_file_get_string (config, "server", key, NULL);
  return value != NULL ? g_steal_pointer (&value) : g_strdup (fallback);
}

static gboolean
on_quit_signal (gpointer user_data)
{
  g_message ("Stopping");
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

static int
cmd_serve (GlobalOptions *global,
           int            argc,
           char         **argv)
{
  g_autoptr (PmStore) store = NULL;
  g_autoptr (PmRelay) relay = NULL;
  g_autoptr (PmCoordServer) api = NULL;
  g_autoptr (PmStunServer) stun_server = NULL;
  g_autoptr (GTlsCertificate) tls = NULL;
  g_autoptr (GKeyFile) config = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (GInetSocketAddress) stun_address = NULL;
  g_autoptr (GInetSocketAddress) stun_alt_address = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char   *config_path = NULL;
  g_autofree char   *listen_arg = NULL, *stun_arg = NULL, *stun_alt_arg = NULL;
  g_autofree char   *tls_cert_arg = NULL, *tls_key_arg = NULL;
  g_autofree char   *listen = NULL, *stun = NULL, *stun_alt = NULL;
  g_autofree char   *tls_cert = NULL, *tls_key = NULL;
  g_autofree char   *base_uri = NULL;
  g_autofree char   *message = NULL;
  const Command     *command = &commands[0];
  PmRelayLimits      relay_limits;
  PmStoreCounts      counts;
  int                status;
  const GOptionEntry entries[] = {
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen_arg,
      "Serve the HTTP API and relay on ADDR:PORT (default 127.0.0.1:8443; any other address needs TLS)",
      "ADDR:PORT" },
    { "stun", 0, 0, G_OPTION_ARG_STRING, &stun_arg,
      "Answer STUN on UDP ADDR:PORT (default 0.0.0.0:3478; \"off\" to disable)", "ADDR:PORT" },
    { "stun-alt", 0, 0, G_OPTION_ARG_STRING, &stun_alt_arg,
      "A second STUN address, so clients can tell whether their NAT mapping depends on the destination",
      "ADDR:PORT" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert_arg, "TLS certificate chain (PEM)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key_arg, "TLS private key (PEM)", "FILE" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &config_path,
      "Key file with [server] and [relay] settings (docs/API.md); options given here win", "FILE" },
    { NULL },
  };

  if (!parse_command (command, global, entries,
                      "Runs the coordination API, the ciphertext relay and the STUN server.",
                      0, &argc, &argv, &status))
    return status;

  if (config_path != NULL)
    {
      config = g_key_file_new ();
      if (!g_key_file_load_from_file (config, config_path, G_KEY_FILE_NONE, &error))
        {
          message = g_strdup_printf ("cannot read %s: %s", config_path, error->message);
          return failed (message);
        }
    }
  listen = config_string (config, "listen", listen_arg, "127.0.0.1:8443");
  stun = config_string (config, "stun", stun_arg, "0.0.0.0:3478");
  stun_alt = config_string (config, "stun-alt", stun_alt_arg, NULL);
  tls_cert = config_string (config, "tls-cert", tls_cert_arg, NULL);
  tls_key = config_string (config, "tls-key", tls_key_arg, NULL);

  if (!check_address ("--listen", listen, &message))
    return usage_error (command, message);
  if (g_strcmp0 (stun, "off") != 0)
    {
      stun_address = pm_address_parse (stun, TRUE);
      if (stun_address == NULL)
        return usage_error (command, "--stun must be IP:PORT (e.g. 0.0.0.0:3478) or off");
    }
  if (stun_alt != NULL)
    {
      stun_alt_address = pm_address_parse (stun_alt, TRUE);
      if (stun_alt_address == NULL || stun_address == NULL)
        return usage_error (command, "--stun-alt must be IP:PORT, and needs --stun");
    }
  if ((tls_cert == NULL) != (tls_key == NULL))
    return usage_error (command, "--tls-cert and --tls-key go together");
  if (!load_relay_limits (config, &relay_limits, &error))
    return failed (error->message);

  if (tls_cert != NULL)
    {
      tls = g_tls_certificate_new_from_files (tls_cert, tls_key, &error);
      if (tls == NULL)
        {
          message = g_strdup_printf ("cannot load the TLS certificate: %s", error->message);
          return failed (message);
        }
    }

  store = open_store (global, &error);
  if (store == NULL || !pm_store_get_counts (store, &counts, &error))
    return failed (error->message);

  pm_relay_tune_allocator ();
  relay = pm_relay_new (&relay_limits);
  api = pm_coord_server_new (store, relay, NULL);
  if (!pm_coord_server_listen (api, listen, tls, &error))
    return failed (error->message);
  if (stun_address != NULL)
    {
      stun_server = pm_stun_server_new ();
      if (!pm_stun_server_start (stun_server, stun_address, stun_alt_address, &error))
        {
          message = g_strdup_printf ("cannot answer STUN on %s: %s", stun, error->message);
          return failed (message);
        }
      pm_coord_server_set_stun_server (api, stun_server);
    }

  base_uri = pm_coord_server_get_base_uri (api);
  g_print ("pipermesh-server: API and relay on %s\n", base_uri);
  for (unsigned i = 0; stun_server != NULL && i < 2; i++)
    {
      GInetSocketAddress *bound = pm_stun_server_get_address (stun_server, i);
      g_autofree char    *text = NULL;

      if (bound == NULL)
        break;
      text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (bound));
      g_print ("pipermesh-server: STUN on udp://%s\n", text);
    }
  g_print ("pipermesh-server: database %s (%" G_GINT64_FORMAT " accounts, %" G_GINT64_FORMAT
           " active devices)\n",
           global->db_path, counts.accounts, counts.active_devices);
  fflush (stdout); /* scripts and supervisors read these lines through a pipe */

  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_unix_signal_add (SIGTERM, on_quit_signal, loop);
  g_main_loop_run (loop);

  if (stun_server != NULL)
    pm_stun_server_stop (stun_server);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * account create
 * ------------------------------------------------------------------------- */

static int
cmd_account_create (GlobalOptions *global,
                    int            argc,
                    char         **argv)
{
  g_autoptr (PmStore) store = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  if (!parse_command (&commands[1], global, NULL,
                      "Creates an account. Its devices enroll with its enrollment keys\n"
                      "and see each other, never another account's devices.",
                      1, &argc, &argv, &status))
    return status;

  store = open_store (global, &error);
  if (store == NULL)
    return failed (error->message);
  account = pm_store_create_account (store, argv[1], pm_store_now (), &error);
  if (account == NULL)
    return failed (error->message);
  g_print ("Created account “%s” (%s).\n", account->name, account->id);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * enroll-key create
 * ------------------------------------------------------------------------- */

/* Parses "90s", "30m", "24h", "7d", "2w" or a sum like "1h30m" into seconds. */
static gboolean
parse_duration (const char *text,
                int64_t    *seconds)
{
  int64_t     total = 0;
  const char *p = text;

  if (text == NULL || *text == '\0')
    return FALSE;
  while (*p != '\0')
    {
      uint64_t value = 0;
      int64_t  unit;
      char    *end = NULL;

      if (!g_ascii_isdigit (*p))
        return FALSE;
      value = g_ascii_strtoull (p, &end, 10);
      if (end == p || value > G_MAXINT32)
        return FALSE;
      switch (*end)
        {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 24 * 3600;
          break;
        case 'w':
          unit = 7 * 24 * 3600;
          break;
        default:
          return FALSE;
        }
      total += (int64_t) value * unit;
      if (total > MAX_KEY_TTL_SECONDS)
        return FALSE;
      p = end + 1;
    }
  *seconds = total;
  return total > 0;
}

static int
cmd_enroll_key_create (GlobalOptions *global,
                       int            argc,
                       char         **argv)
{
  g_autoptr (PmStore) store = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char   *ttl_text = NULL;
  g_autofree char   *key = NULL;
  g_autofree char   *key_id = NULL;
  g_autofree char   *expiry = NULL;
  gboolean           reusable = FALSE;
  int64_t            ttl = DEFAULT_KEY_TTL_SECONDS;
  int64_t            now = pm_store_now ();
  int                status;
  const GOptionEntry entries[] = {
    { "ttl", 0, 0, G_OPTION_ARG_STRING, &ttl_text,
      "How long the key stays valid: 30m, 24h, 7d, 1h30m… (default 24h, at most 365d)",
      "DURATION" },
    { "reusable", 0, 0, G_OPTION_ARG_NONE, &reusable,
      "Let several devices enroll with the key until it expires (default: one device)", NULL },
    { NULL },
  };

  if (!parse_command (&commands[2], global, entries,
                      "Creates an enrollment key for ACCOUNT (a name or id) and prints it.\n"
                      "The key is shown only this once; the server keeps only its hash.",
                      1, &argc, &argv, &status))
    return status;
  if (ttl_text != NULL && !parse_duration (ttl_text, &ttl))
    {
      g_autofree char *message =
        g_strdup_printf ("--ttl “%s” is not a duration like 30m, 24h or 7d (at most 365d)",
                         ttl_text);
      return usage_error (&commands[2], message);
    }

  store = open_store (global, &error);
  if (store == NULL)
    return failed (error->message);
  account = pm_store_find_account (store, argv[1], &error);
  if (account == NULL)
    return failed (error->message);
  key = pm_store_create_enrollment_key (store, account->id, ttl, reusable, now, &key_id, &error);
  if (key == NULL)
    return failed (error->message);

  /* The key alone on stdout, so that KEY=$(pipermesh-server enroll-key create …) works. */
  expiry = format_time (now + ttl);
  g_printerr ("Enrollment key %s for account “%s”, %s, valid until %s.\n"
              "It is shown only now; the server keeps only its hash.\n",
              key_id, account->name, reusable ? "reusable" : "for one device", expiry);
  g_print ("%s\n", key);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * device list, device revoke
 * ------------------------------------------------------------------------- */

static void
add_time_member (JsonBuilder *builder,
                 const char  *name,
                 int64_t      unix_time)
{
  json_builder_set_member_name (builder, name);
  if (unix_time != 0)
    {
      g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (unix_time);
      g_autofree char *iso = utc != NULL ? g_date_time_format_iso8601 (utc) : NULL;

      if (iso != NULL)
        {
          json_builder_add_string_value (builder, iso);
          return;
        }
    }
  json_builder_add_null_value (builder);
}

static void
print_devices_json (GPtrArray *devices)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_array (builder);
  for (unsigned i = 0; i < devices->len; i++)
    {
      const PmDeviceRecord *d = g_ptr_array_index (devices, i);
      g_autoptr (JsonNode) candidates = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_string_value (builder, d->id);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, d->name);
      json_builder_set_member_name (builder, "type");
      json_builder_add_string_value (builder, d->type);
      json_builder_set_member_name (builder, "publicKey");
      json_builder_add_string_value (builder, d->public_key);
      json_builder_set_member_name (builder, "keyType");
      json_builder_add_string_value (builder, d->key_type);
      add_time_member (builder, "created", d->created_at);
      add_time_member (builder, "lastSeen", d->last_seen);
      json_builder_set_member_name (builder, "revoked");
      json_builder_add_boolean_value (builder, d->revoked);
      add_time_member (builder, "revokedAt", d->revoked_at);
      json_builder_set_member_name (builder, "pushRegistered");
      json_builder_add_boolean_value (builder, d->push_endpoint != NULL);
      json_builder_set_member_name (builder, "candidates");
      if (d->candidates != NULL)
        candidates = json_from_string (d->candidates, NULL);
      if (candidates != NULL)
        json_builder_add_value (builder, g_steal_pointer (&candidates));
      else
        json_builder_add_null_value (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_devices_text (const PmAccountRecord *account,
                    GPtrArray             *devices)
{
  if (devices->len == 0)
    {
      g_print ("Account “%s” has no devices.\n", account->name);
      return;
    }
  g_print ("%-36s  %-20s  %-7s  %-7s  %s\n", "ID", "NAME", "TYPE", "STATE", "LAST SEEN");
  for (unsigned i = 0; i < devices->len; i++)
    {
      const PmDeviceRecord *d = g_ptr_array_index (devices, i);
      g_autofree char      *seen = format_time (d->last_seen);

      g_print ("%-36s  %-20s  %-7s  %-7s  %s\n", d->id, d->name, d->type,
               d->revoked ? "revoked" : "active", seen);
    }
}

static int
cmd_device_list (GlobalOptions *global,
                 int            argc,
                 char         **argv)
{
  g_autoptr (PmStore) store = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GError) error = NULL;
  gboolean           json = FALSE;
  int                status;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  if (!parse_command (&commands[3], global, entries,
                      "Lists the devices of ACCOUNT (a name or id), revoked ones included.",
                      1, &argc, &argv, &status))
    return status;

  store = open_store (global, &error);
  if (store == NULL)
    return failed (error->message);
  account = pm_store_find_account (store, argv[1], &error);
  if (account == NULL)
    return failed (error->message);
  devices = pm_store_list_devices (store, account->id, TRUE, &error);
  if (devices == NULL)
    return failed (error->message);

  if (json)
    print_devices_json (devices);
  else
    print_devices_text (account, devices);
  return EXIT_OK;
}

static int
cmd_device_revoke (GlobalOptions *global,
                   int            argc,
                   char         **argv)
{
  g_autoptr (PmStore) store = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  if (!parse_command (&commands[4], global, NULL,
                      "Revokes a device: its token stops working at once. The device stays\n"
                      "in “device list”, marked revoked.",
                      1, &argc, &argv, &status))
    return status;

  store = open_store (global, &error);
  if (store == NULL)
    return failed (error->message);
  if (!pm_store_revoke_device (store, argv[1], NULL, pm_store_now (), &error))
    return failed (error->message);
  device = pm_store_get_device (store, argv[1], NULL);
  g_print ("Revoked device %s (“%s”).\n", argv[1], device != NULL ? device->name : "?");
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * help, and the global options
 * ------------------------------------------------------------------------- */

static GOptionContext *
global_context (GlobalOptions *global)
{
  GOptionContext *context = g_option_context_new ("[COMMAND] [OPTION…]");
  g_autoptr (GString) description = g_string_new ("Commands:\n");
  const GOptionEntry entries[] = {
    { "db", 0, 0, G_OPTION_ARG_FILENAME, &global->db_path,
      "The SQLite database (default: $XDG_DATA_HOME/pipermesh-server/server.db)", "FILE" },
    { NULL },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *name = command_name (&commands[i]);
      g_autofree char *synopsis = g_strdup_printf ("%s %s", name, commands[i].usage);

      g_string_append_printf (description, "  %-26s %s\n", synopsis, commands[i].summary);
    }
  g_string_append (description,
                   "\nWith no command, serve runs. Run “pipermesh-server COMMAND --help”\n"
                   "for the options of a command.");

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_summary (context,
                                "PiperMesh coordination server: device API, ciphertext relay, "
                                "STUN.");
  g_option_context_set_description (context, description->str);
  /* Stop at the command name: what follows belongs to the command. Unknown
   * options are serve's (the default command) and are left for it. */
  g_option_context_set_strict_posix (context, TRUE);
  g_option_context_set_ignore_unknown_options (context, TRUE);
  return context;
}

static void
print_global_help (FILE *stream)
{
  GlobalOptions unused = { NULL };
  g_autoptr (GOptionContext) context = global_context (&unused);
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);

  fputs (help, stream);
}

static int
cmd_help (GlobalOptions *global,
          int            argc,
          char         **argv)
{
  const Command *command;
  char          *help_argv[] = { NULL, (char *) "--help", NULL };
  int            words = 0;

  if (argc < 2)
    {
      print_global_help (stdout);
      return EXIT_OK;
    }
  command = find_command (argc - 1, argv + 1, &words);
  if (command == NULL || command->handler == cmd_help || argc > 1 + words)
    {
      if (command != NULL && command->handler == cmd_help)
        {
          print_global_help (stdout);
          return EXIT_OK;
        }
      return usage_error (NULL, "help takes one command, for example “help device list”");
    }
  /* The command's own GOptionContext prints its help and exits. */
  help_argv[0] = argv[1];
  return command->handler (global, 2, help_argv);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  GlobalOptions  global = { NULL };
  const Command *command;
  int            words = 0;
  int            status;

  setlocale (LC_ALL, "");
  g_set_prgname ("pipermesh-server");

  context = global_context (&global);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (NULL, error->message);

  if (argc < 2 || argv[1][0] == '-')
    {
      /* No command: serve, with whatever options are left. */
      argv[0] = (char *) "serve";
      status = cmd_serve (&global, argc, argv);
    }
  else
    {
      command = find_command (argc - 1, argv + 1, &words);
      if (command == NULL)
        {
          g_autofree char *message = NULL;

          if (is_command_group (argv[1]))
            message = g_strdup_printf ("“%s” needs a subcommand such as %s", argv[1],
                                       g_str_equal (argv[1], "device") ? "list or revoke"
                                                                       : "create");
          else
            message = g_strdup_printf ("unknown command “%s”", argv[1]);
          g_free (global.db_path);
          return usage_error (NULL, message);
        }
      /* The handler sees its name as argv[0], then its own options and arguments. */
      status = command->handler (&global, argc - words, argv + words);
    }
  g_free (global.db_path);
  return status;
}
