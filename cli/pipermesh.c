/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pipermesh: the command-line tool.
 *
 *   pipermesh [--state-dir DIR] COMMAND [OPTION…]
 *
 * Global options come before the command; each command parses its own with a
 * GOptionContext. To add a command, write a handler and add a row to
 * commands[]. Exit status: 0 success, 1 failure, 2 usage error.
 */
#define G_LOG_DOMAIN "pipermesh-cli"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm-coord-client.h"
#include "pm-identity.h"
#include "pm-udp-socket.h"

#ifndef PM_VERSION
#error "PM_VERSION must be defined by the build"
#endif

enum {
  EXIT_OK = 0,
  EXIT_FAILED = 1,
  EXIT_USAGE = 2,
};

typedef struct {
  char *state_dir; /* NULL: pm_identity_default_state_dir() */
} GlobalOptions;

typedef int (*CommandHandler) (const GlobalOptions *global,
                               int                  argc,
                               char               **argv);

typedef struct {
  const char    *name;
  CommandHandler handler;
  const char    *summary;
} Command;

static int cmd_id (const GlobalOptions *global, int argc, char **argv);
static int cmd_netcheck (const GlobalOptions *global, int argc, char **argv);
static int cmd_enroll (const GlobalOptions *global, int argc, char **argv);
static int cmd_devices (const GlobalOptions *global, int argc, char **argv);
static int cmd_help (const GlobalOptions *global, int argc, char **argv);

static const Command commands[] = {
  { "id", cmd_id, "Show this device's identity (made on first run)" },
  { "netcheck", cmd_netcheck, "Check UDP reachability and NAT mapping with STUN" },
  { "enroll", cmd_enroll, "Enroll this device with a coordination server" },
  { "devices", cmd_devices, "List the devices of this device's account" },
  { "help", cmd_help, "Show help for pipermesh or for one command" },
};

static const Command *
find_command (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (commands[i].name, name))
      return &commands[i];
  return NULL;
}

/* Reports a usage error the way GOptionContext users expect, and returns the
 * usage exit status. */
static int
usage_error (const char *command,
             const char *message)
{
  g_printerr ("pipermesh: %s\n", message);
  if (command != NULL)
    g_printerr ("Run “pipermesh help %s” for its options.\n", command);
  else
    g_printerr ("Run “pipermesh help” for a list of commands.\n");
  return EXIT_USAGE;
}

/* Parses a command's options. argv[0] is the command name; GOptionContext
 * prints and exits on --help. Returns FALSE after reporting a usage error. */
static gboolean
parse_command_options (const char     *command,
                       GOptionContext *context,
                       int            *argc,
                       char         ***argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("pipermesh %s", command);
  gboolean         ok;

  g_set_prgname (prgname); /* for the "Usage:" line */
  ok = g_option_context_parse (context, argc, argv, &error);
  g_set_prgname ("pipermesh");
  if (!ok)
    usage_error (command, error->message);
  return ok;
}

/* ---------------------------------------------------------------------------
 * id
 * ------------------------------------------------------------------------- */

static void
print_identity_json (PmIdentity *identity)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;
  GDateTime       *created = pm_identity_get_created (identity);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "publicKey");
  json_builder_add_string_value (builder, pm_identity_get_public_key_hex (identity));
  json_builder_set_member_name (builder, "fingerprint");
  json_builder_add_string_value (builder, pm_identity_get_fingerprint (identity));
  json_builder_set_member_name (builder, "keyType");
  json_builder_add_string_value (builder, pm_identity_get_key_store_string (identity));
  json_builder_set_member_name (builder, "stateDir");
  json_builder_add_string_value (builder, pm_identity_get_state_dir (identity));
  json_builder_set_member_name (builder, "deviceName");
  if (pm_identity_get_device_name (identity) != NULL)
    json_builder_add_string_value (builder, pm_identity_get_device_name (identity));
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "created");
  if (created != NULL)
    {
      g_autofree char *iso = g_date_time_format_iso8601 (created);
      json_builder_add_string_value (builder, iso);
    }
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "newlyCreated");
  json_builder_add_boolean_value (builder, pm_identity_get_was_created (identity));
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_identity_text (PmIdentity *identity)
{
  GDateTime *created = pm_identity_get_created (identity);

  if (pm_identity_get_was_created (identity))
    g_print ("Made a new identity for this device.\n");
  g_print ("Public key:  %s\n", pm_identity_get_public_key_hex (identity));
  g_print ("Fingerprint: %s\n", pm_identity_get_fingerprint (identity));
  g_print ("Key store:   %s\n", pm_identity_get_key_store_string (identity));
  g_print ("State dir:   %s\n", pm_identity_get_state_dir (identity));
  if (pm_identity_get_device_name (identity) != NULL)
    g_print ("Device name: %s\n", pm_identity_get_device_name (identity));
  if (created != NULL)
    {
      g_autoptr (GDateTime) local = g_date_time_to_local (created);
      g_autofree char *when = g_date_time_format (local, "%Y-%m-%d %H:%M:%S %Z");
      g_print ("Created:     %s\n", when);
    }
}

static int
cmd_id (const GlobalOptions *global,
        int                  argc,
        char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (PmIdentity) identity = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char   *keystore = NULL;
  gboolean           json = FALSE;
  PmKeyStore         preferred = PM_KEY_STORE_AUTO;
  const GOptionEntry entries[] = {
    { "keystore", 'k', 0, G_OPTION_ARG_STRING, &keystore,
      "Where a new private key goes: auto (the default: the Secret Service if "
      "available, else a file), secret-service or file",
      "STORE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Prints this device's identity: its public key, fingerprint and\n"
                                "where the private key is kept. Makes the identity on first run.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("id", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message = g_strdup_printf ("id takes no arguments (got “%s”)", argv[1]);
      return usage_error ("id", message);
    }
  if (keystore != NULL && !pm_key_store_from_string (keystore, &preferred))
    {
      g_autofree char *message =
        g_strdup_printf ("unknown key store “%s”: use auto, secret-service or file", keystore);
      return usage_error ("id", message);
    }

  identity = pm_identity_load_or_create (global->state_dir, preferred, NULL, &error);
  if (identity == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }

  if (preferred != PM_KEY_STORE_AUTO &&
      !pm_identity_get_was_created (identity) &&
      pm_identity_get_key_store (identity) != preferred)
    g_printerr ("pipermesh: note: this identity already exists and keeps its private key in "
                "the %s store; --keystore only applies when an identity is made\n",
                pm_identity_get_key_store_string (identity));

  if (json)
    print_identity_json (identity);
  else
    print_identity_text (identity);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * netcheck
 * ------------------------------------------------------------------------- */

/* The STUN port when ADDR has none (RFC 8489 §9). */
#define NETCHECK_DEFAULT_STUN_PORT 3478

/* Resolves "IP:PORT", "[IPv6]:PORT" or "host:port" to one address, of
 * @family unless it is G_SOCKET_FAMILY_INVALID (then IPv4 if the name has
 * an IPv4 address, as most STUN servers answer there). */
static GInetSocketAddress *
netcheck_resolve (const char   *text,
                  GSocketFamily family,
                  GError      **error)
{
  g_autoptr (GSocketConnectable) connectable = NULL;
  g_autoptr (GSocketAddressEnumerator) enumerator = NULL;
  g_autoptr (GInetSocketAddress) first = NULL; /* of another family */

  connectable = g_network_address_parse (text, NETCHECK_DEFAULT_STUN_PORT, error);
  if (connectable == NULL)
    return NULL;
  enumerator = g_socket_connectable_enumerate (connectable);
  for (;;)
    {
      g_autoptr (GSocketAddress) address = NULL;
      g_autoptr (GError) local_error = NULL;

      address = g_socket_address_enumerator_next (enumerator, NULL, &local_error);
      if (address == NULL)
        {
          if (first != NULL && family == G_SOCKET_FAMILY_INVALID)
            return g_steal_pointer (&first);
          if (local_error != NULL)
            g_propagate_error (error, g_steal_pointer (&local_error));
          else
            g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s has no %s address", text,
                         family == G_SOCKET_FAMILY_IPV6 ? "IPv6" : "IPv4");
          return NULL;
        }
      if (!G_IS_INET_SOCKET_ADDRESS (address))
        continue;
      if (g_socket_address_get_family (address) == (family == G_SOCKET_FAMILY_INVALID
                                                      ? G_SOCKET_FAMILY_IPV4
                                                      : family))
        return G_INET_SOCKET_ADDRESS (g_steal_pointer (&address));
      if (first == NULL)
        first = G_INET_SOCKET_ADDRESS (g_steal_pointer (&address));
    }
}

typedef struct {
  gboolean    done;
  PmNetcheck *netcheck;
  GError     *error;
} NetcheckRun;

static void
on_netcheck_done (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  NetcheckRun *run = user_data;

  run->netcheck = pm_udp_socket_netcheck_finish (PM_UDP_SOCKET (source), result, &run->error);
  run->done = TRUE;
}

static void
json_add_address (JsonBuilder        *builder,
                  const char         *name,
                  GInetSocketAddress *address)
{
  json_builder_set_member_name (builder, name);
  if (address != NULL)
    {
      g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));
      json_builder_add_string_value (builder, text);
    }
  else
    json_builder_add_null_value (builder);
}

static void
print_netcheck_json (PmNetcheck         *netcheck,
                     GInetSocketAddress *stun,
                     GInetSocketAddress *stun_alt,
                     GInetSocketAddress *local)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "udp");
  json_builder_add_boolean_value (builder, netcheck->udp_ok);
  json_add_address (builder, "mappedAddress", netcheck->mapped_primary);
  json_add_address (builder, "mappedAddressAlt", netcheck->mapped_secondary);
  json_builder_set_member_name (builder, "mappingVariesByDestination");
  if (netcheck->mapped_primary != NULL && netcheck->mapped_secondary != NULL)
    json_builder_add_boolean_value (builder, netcheck->mapping_varies_by_destination);
  else
    json_builder_add_null_value (builder); /* not known */
  /* Whole microseconds: a double in milliseconds prints as 0.081000000000000003. */
  json_builder_set_member_name (builder, "rttUs");
  if (netcheck->rtt_ms >= 0)
    json_builder_add_int_value (builder, (int64_t) (netcheck->rtt_ms * 1000 + 0.5));
  else
    json_builder_add_null_value (builder);
  json_add_address (builder, "stun", stun);
  json_add_address (builder, "stunAlt", stun_alt);
  json_add_address (builder, "localAddress", local);
  json_builder_set_member_name (builder, "error");
  if (netcheck->error != NULL)
    json_builder_add_string_value (builder, netcheck->error);
  else
    json_builder_add_null_value (builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_netcheck_text (PmNetcheck         *netcheck,
                     GInetSocketAddress *stun_alt)
{
  g_autofree char    *mapped = NULL;
  GInetSocketAddress *seen = netcheck->mapped_primary != NULL ? netcheck->mapped_primary
                                                              : netcheck->mapped_secondary;

  if (!netcheck->udp_ok)
    {
      g_print ("UDP:            blocked (%s)\n", netcheck->error);
      return;
    }
  mapped = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (seen));
  g_print ("UDP:            ok\n");
  g_print ("Mapped address: %s\n", mapped);
  if (netcheck->mapped_primary != NULL && netcheck->mapped_secondary != NULL)
    g_print ("Mapping varies by destination: %s\n",
             netcheck->mapping_varies_by_destination
               ? "yes (a hard NAT: direct connections are unlikely, traffic will be relayed)"
               : "no");
  else if (stun_alt == NULL)
    g_print ("Mapping varies by destination: unknown (give --stun-alt to check)\n");
  else
    g_print ("Mapping varies by destination: unknown (%s)\n", netcheck->error);
  g_print ("STUN RTT:       %.1f ms\n", netcheck->rtt_ms);
}

static int
cmd_netcheck (const GlobalOptions *global,
              int                  argc,
              char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) stun = NULL;
  g_autoptr (GInetSocketAddress) stun_alt = NULL;
  g_autoptr (PmUdpSocket) socket = NULL;
  NetcheckRun run = { FALSE, NULL, NULL };
  g_autoptr (PmNetcheck) netcheck = NULL;
  g_autofree char   *stun_arg = NULL;
  g_autofree char   *stun_alt_arg = NULL;
  gboolean           json = FALSE;
  const GOptionEntry entries[] = {
    { "stun", 0, 0, G_OPTION_ARG_STRING, &stun_arg,
      "The STUN server to ask (pipermesh-server's --stun address; port 3478 if none is given)",
      "ADDR:PORT" },
    { "stun-alt", 0, 0, G_OPTION_ARG_STRING, &stun_alt_arg,
      "A second STUN address (the server's --stun-alt), to tell whether the NAT mapping "
      "depends on the destination",
      "ADDR:PORT" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (
    context, "Checks the network from one UDP socket: whether UDP gets through,\n"
             "the public address a STUN server sees, whether that mapping\n"
             "changes with the destination, and the STUN round trip.\n"
             "Exits with 1 when no STUN server answered.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("netcheck", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message =
        g_strdup_printf ("netcheck takes no arguments (got “%s”)", argv[1]);
      return usage_error ("netcheck", message);
    }
  if (stun_arg == NULL)
    return usage_error ("netcheck", "netcheck needs a STUN server: --stun ADDR:PORT");

  stun = netcheck_resolve (stun_arg, G_SOCKET_FAMILY_INVALID, &error);
  if (stun == NULL)
    {
      g_autofree char *message = g_strdup_printf ("--stun %s: %s", stun_arg, error->message);
      return usage_error ("netcheck", message);
    }
  if (stun_alt_arg != NULL)
    {
      stun_alt = netcheck_resolve (stun_alt_arg,
                                   g_socket_address_get_family (G_SOCKET_ADDRESS (stun)), &error);
      if (stun_alt == NULL)
        {
          g_autofree char *message =
            g_strdup_printf ("--stun-alt %s: %s", stun_alt_arg, error->message);
          return usage_error ("netcheck", message);
        }
    }

  socket = pm_udp_socket_new_any (g_socket_address_get_family (G_SOCKET_ADDRESS (stun)), 0, NULL,
                                  &error);
  if (socket == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  pm_udp_socket_netcheck_async (socket, stun, stun_alt, NULL, on_netcheck_done, &run);
  /* Bounded: the STUN client gives up after PM_STUN_MAX_TRANSMISSIONS. */
  while (!run.done)
    g_main_context_iteration (NULL, TRUE);
  netcheck = run.netcheck;
  if (netcheck == NULL)
    {
      g_printerr ("pipermesh: %s\n", run.error->message);
      g_error_free (run.error);
      return EXIT_FAILED;
    }

  if (json)
    print_netcheck_json (netcheck, stun, stun_alt, pm_udp_socket_get_local_address (socket));
  else
    print_netcheck_text (netcheck, stun_alt);
  return netcheck->udp_ok ? EXIT_OK : EXIT_FAILED;
}

/* ---------------------------------------------------------------------------
 * coordination.ini: the server, this device's id and its token
 * ------------------------------------------------------------------------- */

#define COORD_INI       "coordination.ini"
#define COORD_GROUP     "Coordination"
#define COORD_INI_MAX   (16 * 1024)
#define COORD_TYPE_AUTO "linux"

typedef struct {
  char *server;
  char *device_id;
  char *account_id;
  char *token; /* secret: never printed or logged */
} Coordination;

static void
coordination_clear (Coordination *coord)
{
  g_clear_pointer (&coord->server, g_free);
  g_clear_pointer (&coord->device_id, g_free);
  g_clear_pointer (&coord->account_id, g_free);
  if (coord->token != NULL)
    memset (coord->token, 0, strlen (coord->token));
  g_clear_pointer (&coord->token, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Coordination, coordination_clear)

static char *
state_dir_of (const GlobalOptions *global)
{
  if (global->state_dir != NULL)
    return g_canonicalize_filename (global->state_dir, NULL);
  return pm_identity_default_state_dir ();
}

static gboolean
write_all (int         fd,
           const char *data,
           size_t      len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= (size_t) n;
    }
  return TRUE;
}

/* Writes @coord to @dir/coordination.ini atomically: a temporary file made
 * with O_CREAT|O_EXCL and mode 0600 (the token is never readable by anyone
 * else, not even for a moment), fsync'd, then renamed over the old file. */
static gboolean
coordination_save (const char         *dir,
                   const Coordination *coord,
                   GError            **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = g_build_filename (dir, COORD_INI, NULL);
  g_autofree char *tmp = g_build_filename (dir, "." COORD_INI ".XXXXXX", NULL);
  g_autofree char *data = NULL;
  gsize            len = 0;
  gboolean         written;
  int              fd, errsv;

  g_key_file_set_comment (kf, NULL, NULL,
                          " PiperMesh: this device's enrollment with a coordination server.\n"
                          " The token is a secret: keep this file private (mode 0600).",
                          NULL);
  g_key_file_set_string (kf, COORD_GROUP, "server", coord->server);
  g_key_file_set_string (kf, COORD_GROUP, "deviceId", coord->device_id);
  g_key_file_set_string (kf, COORD_GROUP, "accountId", coord->account_id);
  g_key_file_set_string (kf, COORD_GROUP, "token", coord->token);
  data = g_key_file_to_data (kf, &len, NULL);

  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      errsv = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                   "Could not create a file in %s: %s", dir, g_strerror (errsv));
      memset (data, 0, len);
      return FALSE;
    }
  (void) fchmod (fd, 0600);
  written = write_all (fd, data, len) && fsync (fd) == 0;
  errsv = errno;
  memset (data, 0, len);
  if (close (fd) != 0 && written)
    {
      written = FALSE;
      errsv = errno;
    }
  if (written && g_rename (tmp, path) != 0)
    {
      written = FALSE;
      errsv = errno;
    }
  if (!written)
    {
      g_unlink (tmp);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                   "Could not write %s: %s", path, g_strerror (errsv));
      return FALSE;
    }
  {
    int dfd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

    if (dfd >= 0)
      {
        (void) fsync (dfd);
        close (dfd);
      }
  }
  return TRUE;
}

/* Loads @dir/coordination.ini. Returns FALSE with @error set if it is missing
 * (G_FILE_ERROR_NOENT), unreadable, too large, readable by others or
 * incomplete. */
static gboolean
coordination_load (const char   *dir,
                   Coordination *coord,
                   GError      **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = g_build_filename (dir, COORD_INI, NULL);
  g_autofree char *data = NULL;
  gsize            len = 0;
  GStatBuf         st;

  if (g_stat (path, &st) != 0)
    {
      int errsv = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                   "This device is not enrolled (no %s): run “pipermesh enroll” first", path);
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > COORD_INI_MAX)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is not a small regular file; remove it and enroll again", path);
      return FALSE;
    }
  if ((st.st_mode & 077) != 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                   "%s is readable by other users and holds a secret token: "
                   "run “chmod 600 %s”, and consider enrolling again",
                   path, path);
      return FALSE;
    }
  if (!g_file_get_contents (path, &data, &len, error))
    return FALSE;
  if (len > COORD_INI_MAX || !g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, NULL))
    {
      memset (data, 0, len);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is damaged; remove it and enroll again", path);
      return FALSE;
    }
  memset (data, 0, len);
  coord->server = g_key_file_get_string (kf, COORD_GROUP, "server", NULL);
  coord->device_id = g_key_file_get_string (kf, COORD_GROUP, "deviceId", NULL);
  coord->account_id = g_key_file_get_string (kf, COORD_GROUP, "accountId", NULL);
  coord->token = g_key_file_get_string (kf, COORD_GROUP, "token", NULL);
  if (coord->server == NULL || coord->device_id == NULL || coord->token == NULL)
    {
      coordination_clear (coord);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is incomplete; remove it and enroll again", path);
      return FALSE;
    }
  return TRUE;
}

/* Runs the main loop until an _async call has delivered its result. */
static void
on_async_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GAsyncResult *
wait_for (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);
  return g_steal_pointer (slot);
}

/* ---------------------------------------------------------------------------
 * enroll
 * ------------------------------------------------------------------------- */

static int
cmd_enroll (const GlobalOptions *global,
            int                  argc,
            char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (PmIdentity) identity = NULL;
  g_autoptr (PmCoordClient) client = NULL;
  g_autoptr (PmEnrollment) enrollment = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Coordination) existing = { NULL };
  g_auto (Coordination) coord = { NULL };
  g_autofree char   *server = NULL, *key = NULL, *name = NULL, *type = NULL;
  g_autofree char   *dir = NULL;
  gboolean           force = FALSE;
  GAsyncResult      *slot = NULL;
  const char        *device_name;
  const GOptionEntry entries[] = {
    { "server", 's', 0, G_OPTION_ARG_STRING, &server,
      "The coordination server, e.g. https://mesh.example.net", "URL" },
    { "key", 'k', 0, G_OPTION_ARG_STRING, &key,
      "The enrollment key (from “pipermesh-server enroll-key create”)", "KEY" },
    { "name", 'n', 0, G_OPTION_ARG_STRING, &name,
      "This device's name (default: the identity's device name, or the host name)", "NAME" },
    { "type", 't', 0, G_OPTION_ARG_STRING, &type,
      "mac, linux, windows, iphone, ipad, watch or android (default: linux)", "TYPE" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Enroll again even if this device is already enrolled", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Enrolls this device with a coordination server, using an\n"
                                "enrollment key of your account. The device's identity is made\n"
                                "first if it has none. The server URL, device id and token are\n"
                                "kept in coordination.ini (mode 0600) in the state directory.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("enroll", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message = g_strdup_printf ("enroll takes no arguments (got “%s”)", argv[1]);
      return usage_error ("enroll", message);
    }
  if (server == NULL || key == NULL)
    return usage_error ("enroll", "--server and --key are required");

  dir = state_dir_of (global);
  if (!force && coordination_load (dir, &existing, NULL))
    {
      g_printerr ("pipermesh: this device is already enrolled with %s as %s; "
                  "use --force to enroll it again\n",
                  existing.server, existing.device_id);
      return EXIT_FAILED;
    }

  client = pm_coord_client_new (server, NULL, &error);
  if (client == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_USAGE;
    }
  identity = pm_identity_load_or_create (dir, PM_KEY_STORE_AUTO, NULL, &error);
  if (identity == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  device_name = name != NULL ? name : pm_identity_get_device_name (identity);
  if (device_name == NULL)
    device_name = g_get_host_name ();

  pm_coord_client_enroll_async (client, key, pm_identity_get_public_key_hex (identity),
                                device_name, type != NULL ? type : COORD_TYPE_AUTO,
                                pm_identity_get_key_store_string (identity), NULL,
                                on_async_done, &slot);
  result = wait_for (&slot);
  enrollment = pm_coord_client_enroll_finish (client, result, &error);
  if (enrollment == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }

  coord.server = g_strdup (pm_coord_client_get_base_uri (client));
  coord.device_id = g_strdup (enrollment->device_id);
  coord.account_id = g_strdup (enrollment->account_id);
  coord.token = g_strdup (enrollment->token);
  if (!coordination_save (dir, &coord, &error))
    {
      g_printerr ("pipermesh: enrolled as %s, but %s\n", enrollment->device_id, error->message);
      return EXIT_FAILED;
    }
  g_print ("Enrolled this device as “%s” (%s) in account %s at %s.\n", device_name,
           enrollment->device_id, enrollment->account_id, coord.server);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * devices
 * ------------------------------------------------------------------------- */

static char *
device_key_hex (const PmDeviceInfo *info)
{
  GString *hex = g_string_sized_new (64);

  for (size_t i = 0; i < sizeof info->public_key; i++)
    g_string_append_printf (hex, "%02x", info->public_key[i]);
  return g_string_free (hex, FALSE);
}

static void
print_devices_json (GPtrArray  *devices,
                    const char *self_id)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "devices");
  json_builder_begin_array (builder);
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmDeviceInfo    *info = devices->pdata[i];
      g_autofree char *hex = device_key_hex (info);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_string_value (builder, info->id);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, info->name);
      json_builder_set_member_name (builder, "type");
      json_builder_add_string_value (builder, info->type);
      json_builder_set_member_name (builder, "publicKey");
      json_builder_add_string_value (builder, hex);
      json_builder_set_member_name (builder, "keyType");
      json_builder_add_string_value (builder, info->key_type);
      json_builder_set_member_name (builder, "lastSeen");
      if (info->last_seen != NULL)
        {
          g_autofree char *when = g_date_time_format (info->last_seen, "%Y-%m-%dT%H:%M:%SZ");
          json_builder_add_string_value (builder, when);
        }
      else
        json_builder_add_null_value (builder);
      json_builder_set_member_name (builder, "online");
      json_builder_add_boolean_value (builder, info->online);
      json_builder_set_member_name (builder, "self");
      json_builder_add_boolean_value (builder, g_strcmp0 (info->id, self_id) == 0);
      json_builder_set_member_name (builder, "candidates");
      if (info->has_candidates)
        {
          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "addresses");
          json_builder_begin_array (builder);
          for (unsigned j = 0; j < info->addresses->len; j++)
            {
              g_autofree char *a = g_socket_connectable_to_string (info->addresses->pdata[j]);
              json_builder_add_string_value (builder, a);
            }
          json_builder_end_array (builder);
          json_builder_set_member_name (builder, "mapped");
          if (info->mapped != NULL)
            {
              g_autofree char *m =
                g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (info->mapped));
              json_builder_add_string_value (builder, m);
            }
          else
            json_builder_add_null_value (builder);
          json_builder_set_member_name (builder, "mappingVariesByDestination");
          json_builder_add_boolean_value (builder, info->mapping_varies);
          json_builder_end_object (builder);
        }
      else
        json_builder_add_null_value (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_devices_text (GPtrArray  *devices,
                    const char *self_id)
{
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmDeviceInfo    *info = devices->pdata[i];
      g_autofree char *seen = NULL;

      if (info->last_seen != NULL)
        {
          g_autoptr (GDateTime) local = g_date_time_to_local (info->last_seen);
          seen = g_date_time_format (local, "%Y-%m-%d %H:%M");
        }
      g_print ("%s %-20s %-8s %s  last seen %s%s\n", info->online ? "●" : "○", info->name,
               info->type, info->id, seen != NULL ? seen : "never",
               g_strcmp0 (info->id, self_id) == 0 ? "  (this device)" : "");
      for (unsigned j = 0; j < info->addresses->len; j++)
        {
          g_autofree char *a = g_socket_connectable_to_string (info->addresses->pdata[j]);
          g_print ("    candidate %s\n", a);
        }
      if (info->mapped != NULL)
        {
          g_autofree char *m = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (info->mapped));
          g_print ("    mapped    %s%s\n", m,
                   info->mapping_varies ? " (varies by destination)" : "");
        }
    }
}

static int
cmd_devices (const GlobalOptions *global,
             int                  argc,
             char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (PmCoordClient) client = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Coordination) coord = { NULL };
  g_autofree char   *dir = NULL;
  gboolean           json = FALSE;
  GAsyncResult      *slot = NULL;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Lists the devices of this device's account, as the coordination\n"
                                "server knows them: name, type, online state, last seen and the\n"
                                "addresses they published.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("devices", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message = g_strdup_printf ("devices takes no arguments (got “%s”)", argv[1]);
      return usage_error ("devices", message);
    }

  dir = state_dir_of (global);
  if (!coordination_load (dir, &coord, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  client = pm_coord_client_new (coord.server, coord.token, &error);
  if (client == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  pm_coord_client_list_devices_async (client, NULL, on_async_done, &slot);
  result = wait_for (&slot);
  devices = pm_coord_client_list_devices_finish (client, result, &error);
  if (devices == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  if (json)
    print_devices_json (devices, coord.device_id);
  else
    print_devices_text (devices, coord.device_id);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * help, and the global options
 * ------------------------------------------------------------------------- */

static GOptionContext *
global_context (GlobalOptions *global,
                gboolean      *version)
{
  GOptionContext *context = g_option_context_new ("COMMAND [OPTION…]");
  g_autoptr (GString) description = g_string_new ("Commands:\n");
  const GOptionEntry entries[] = {
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &global->state_dir,
      "Keep this device's state in DIR (default: $XDG_DATA_HOME/pipermesh); "
      "lets several devices run on one machine",
      "DIR" },
    { "version", 0, 0, G_OPTION_ARG_NONE, version, "Print the version and exit", NULL },
    { NULL },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (description, "  %-8s %s\n", commands[i].name, commands[i].summary);
  g_string_append (description, "\nRun “pipermesh help COMMAND” for the options of a command.");

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_summary (context, "PiperMesh: an encrypted mesh of your devices.");
  g_option_context_set_description (context, description->str);
  /* Stop at the command name: what follows belongs to the command. */
  g_option_context_set_strict_posix (context, TRUE);
  return context;
}

static void
print_global_help (FILE *stream)
{
  GlobalOptions unused = { NULL };
  gboolean      unused_version = FALSE;
  g_autoptr (GOptionContext) context = global_context (&unused, &unused_version);
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);

  fputs (help, stream);
}

static int
cmd_help (const GlobalOptions *global,
          int                  argc,
          char               **argv)
{
  const Command *command;
  char          *help_argv[] = { NULL, (char *) "--help", NULL };

  if (argc < 2)
    {
      print_global_help (stdout);
      return EXIT_OK;
    }
  if (argc > 2)
    return usage_error (NULL, "help takes at most one command name");

  command = find_command (argv[1]);
  if (command == NULL)
    {
      g_autofree char *message = g_strdup_printf ("unknown command “%s”", argv[1]);
      return usage_error (NULL, message);
    }
  if (command->handler == cmd_help)
    {
      print_global_help (stdout);
      return EXIT_OK;
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
  gboolean       version = FALSE;
  const Command *command;
  int            status;

  setlocale (LC_ALL, "");
  g_set_prgname ("pipermesh");

  context = global_context (&global, &version);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (NULL, error->message);

  if (version)
    {
      g_print ("pipermesh %s\n", PM_VERSION);
      g_free (global.state_dir);
      return EXIT_OK;
    }
  if (argc < 2)
    {
      print_global_help (stderr);
      g_free (global.state_dir);
      return EXIT_USAGE;
    }

  command = find_command (argv[1]);
  if (command == NULL)
    {
      g_autofree char *message = g_strdup_printf ("unknown command “%s”", argv[1]);
      g_free (global.state_dir);
      return usage_error (NULL, message);
    }

  status = command->handler (&global, argc - 1, argv + 1);
  g_free (global.state_dir);
  return status;
}
