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
#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm-address.h"
#include "pm-control.h"
#include "pm-coord-client.h"
#include "pm-forward.h"
#include "pm-identity.h"
#include "pm-lan-peers.h"
#include "pm-mesh.h"
#include "pm-pair-cert.h"
#include "pm-pair-client.h"
#include "pm-pair-code.h"
#include "pm-pair-host.h"
#include "pm-paired-store.h"
#include "pm-qr.h"
#include "pm-state.h"
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
static int cmd_up (const GlobalOptions *global, int argc, char **argv);
static int cmd_connect (const GlobalOptions *global, int argc, char **argv);
static int cmd_status (const GlobalOptions *global, int argc, char **argv);
static int cmd_ping (const GlobalOptions *global, int argc, char **argv);
static int cmd_pair (const GlobalOptions *global, int argc, char **argv);
static int cmd_paired (const GlobalOptions *global, int argc, char **argv);
static int cmd_unpair (const GlobalOptions *global, int argc, char **argv);
static int cmd_help (const GlobalOptions *global, int argc, char **argv);

static const Command commands[] = {
  { "id", cmd_id, "Show this device's identity (made on first run)" },
  { "netcheck", cmd_netcheck, "Check UDP reachability and NAT mapping with STUN" },
  { "enroll", cmd_enroll, "Enroll this device with a coordination server" },
  { "devices", cmd_devices, "List the devices of this device's account" },
  { "up", cmd_up, "Run this device in the mesh and offer services (foreground)" },
  { "connect", cmd_connect, "Forward local TCP ports to a device's services (foreground)" },
  { "status", cmd_status, "Show the peers of the running pipermesh" },
  { "ping", cmd_ping, "Ping a device through the running pipermesh" },
  { "pair", cmd_pair, "Pair with a device on this network by QR code (no account)" },
  { "paired", cmd_paired, "List the devices paired by QR code" },
  { "unpair", cmd_unpair, "Forget a paired device" },
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

/* The file itself, and loading it: core/pm-state.[ch] (shared with the app). */
#define COORD_INI       PM_STATE_COORDINATION_FILE
#define COORD_GROUP     PM_STATE_COORDINATION_GROUP
#define COORD_TYPE_AUTO "linux"

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
coordination_save (const char                *dir,
                   const PmStateCoordination *coord,
                   GError                   **error)
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
  if (coord->name != NULL)
    g_key_file_set_string (kf, COORD_GROUP, "name", coord->name);
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
  g_auto (PmStateCoordination) existing = { NULL };
  g_auto (PmStateCoordination) coord = { NULL };
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
  if (!force && pm_state_load_coordination (dir, &existing, NULL))
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
  coord.name = g_strdup (device_name);
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
  g_auto (PmStateCoordination) coord = { NULL };
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
  if (!pm_state_load_coordination (dir, &coord, &error))
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
 * up, connect: a mesh in the foreground
 * ------------------------------------------------------------------------- */

/* The STUN port when the coordination server's host is the default STUN server. */
#define MESH_DEFAULT_STUN_PORT 3478
/* After SIGINT/SIGTERM, how long forwarded connections get to finish closing. */
#define MESH_DRAIN_TIMEOUT_MS 2000
/* An environment variable that sets PmMeshLimits.loopback_candidates, so two
 * devices on one machine find each other on 127.0.0.1 (tests). */
#define MESH_LOOPBACK_ENV "PIPERMESH_LOOPBACK_CANDIDATES"

typedef struct {
  int      port; /* UDP; 0: any */
  char    *stun; /* NULL: the coordination server's host; "none" or "off": no STUN */
  char    *stun_alt;
  gboolean lan_only;
  gboolean loopback_candidates;
} MeshOptions;

static void
mesh_options_clear (MeshOptions *options)
{
  g_clear_pointer (&options->stun, g_free);
  g_clear_pointer (&options->stun_alt, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MeshOptions, mesh_options_clear)

static void
mesh_options_add_entries (GOptionContext *context,
                          MeshOptions    *options)
{
  const GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &options->port,
      "The UDP port for peers, STUN and probes (default: any free port)", "UDPPORT" },
    { "stun", 0, 0, G_OPTION_ARG_STRING, &options->stun,
      "The STUN server (default: the coordination server's host, port 3478; “none” for none)",
      "ADDR:PORT" },
    { "stun-alt", 0, 0, G_OPTION_ARG_STRING, &options->stun_alt,
      "A second STUN address, to tell whether the NAT mapping depends on the destination",
      "ADDR:PORT" },
    { "loopback-candidates", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
      &options->loopback_candidates,
      "Also offer 127.0.0.1 as a candidate (two devices on one machine; also " MESH_LOOPBACK_ENV
      "=1)",
      NULL },
    { NULL },
  };

  g_option_context_add_main_entries (context, entries, NULL);
}

/* Prints a peer's state and path whenever either changes, and its online
 * state when that changes. */
typedef struct {
  PmPeer     *peer;
  PmPeerState state;
  PmPathType  path;
  gboolean    online;
  gboolean    seen;
} PeerWatch;

typedef struct {
  const char         *command;
  char               *dir;
  PmStateCoordination coord;
  PmIdentity         *identity;
  PmCoordClient      *client;
  PmMesh             *mesh;
  PmControl          *control;
  char               *self_name;
  GMainLoop          *loop;
  GCancellable       *cancellable; /* cancelled by SIGINT/SIGTERM */
  unsigned            signal_sources[2];
  gboolean            started;
  PmPeer             *watch_only; /* NULL: print every peer's changes */
  gulong              items_changed_handler;
  GHashTable         *watches;   /* PmPeer* -> PeerWatch* */
  PmLanPeers         *lan_peers; /* LAN only: the paired devices, mDNS */
} MeshRun;

static void
peer_watch_print (PeerWatch *watch)
{
  double           rtt_ms = pm_peer_get_rtt_ms (watch->peer);
  g_autofree char *rtt = rtt_ms >= 0 ? g_strdup_printf ("%.2f ms", rtt_ms) : g_strdup ("unknown");

  g_print ("%s: %s, path %s, rtt %s\n", pm_peer_get_name (watch->peer),
           pm_peer_state_to_string (watch->state), pm_path_type_to_string (watch->path), rtt);
}

static void
on_peer_changed (PmPeer     *peer,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  PeerWatch  *watch = user_data;
  PmPeerState state = pm_peer_get_state (peer);
  PmPathType  path = pm_peer_get_path_type (peer);
  gboolean    online = pm_peer_get_online (peer);

  if (state != watch->state || path != watch->path)
    {
      watch->state = state;
      watch->path = path;
      peer_watch_print (watch);
    }
  if (online != watch->online)
    {
      watch->online = online;
      g_print ("%s: %s\n", pm_peer_get_name (peer), online ? "online" : "offline");
    }
}

static void
peer_watch_free (PeerWatch *watch)
{
  g_signal_handlers_disconnect_by_data (watch->peer, watch);
  g_object_unref (watch->peer);
  g_free (watch);
}

static void
peer_watch_add (MeshRun *run,
                PmPeer  *peer)
{
  PeerWatch *watch = g_new0 (PeerWatch, 1);

  watch->peer = g_object_ref (peer);
  watch->state = pm_peer_get_state (peer);
  watch->path = pm_peer_get_path_type (peer);
  watch->online = pm_peer_get_online (peer);
  watch->seen = TRUE;
  g_hash_table_insert (run->watches, peer, watch);
  g_signal_connect (peer, "notify::state", G_CALLBACK (on_peer_changed), watch);
  g_signal_connect (peer, "notify::path-type", G_CALLBACK (on_peer_changed), watch);
  g_signal_connect (peer, "notify::online", G_CALLBACK (on_peer_changed), watch);
  if (watch->state != PM_PEER_STATE_IDLE)
    peer_watch_print (watch);
}

/* Watches the peers the model holds now, and forgets the ones it dropped. */
static void
on_peers_changed (GListModel *model,
                  unsigned    position,
                  unsigned    removed,
                  unsigned    added,
                  gpointer    user_data)
{
  MeshRun       *run = user_data;
  unsigned       n = g_list_model_get_n_items (model);
  GHashTableIter iter;
  PeerWatch     *watch;

  g_hash_table_iter_init (&iter, run->watches);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &watch))
    watch->seen = FALSE;
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (model, i);

      watch = g_hash_table_lookup (run->watches, peer);
      if (watch != NULL)
        watch->seen = TRUE;
      else if (run->watch_only == NULL || run->watch_only == peer)
        peer_watch_add (run, peer);
    }
  g_hash_table_iter_init (&iter, run->watches);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &watch))
    if (!watch->seen)
      g_hash_table_iter_remove (&iter);
}

static void
mesh_run_watch_peers (MeshRun *run,
                      PmPeer  *only)
{
  GListModel *model = pm_mesh_get_peers (run->mesh);

  run->watch_only = only;
  run->items_changed_handler = g_signal_connect (model, "items-changed",
                                                 G_CALLBACK (on_peers_changed), run);
  on_peers_changed (model, 0, 0, g_list_model_get_n_items (model), run);
}

static gboolean
on_stop_signal (gpointer user_data)
{
  MeshRun *run = user_data;

  g_printerr ("pipermesh: stopping\n");
  g_cancellable_cancel (run->cancellable);
  g_main_loop_quit (run->loop);
  return G_SOURCE_CONTINUE;
}

static void
mesh_run_clear (MeshRun *run)
{
  for (size_t i = 0; i < G_N_ELEMENTS (run->signal_sources); i++)
    g_clear_handle_id (&run->signal_sources[i], g_source_remove);
  if (run->items_changed_handler != 0)
    g_clear_signal_handler (&run->items_changed_handler, pm_mesh_get_peers (run->mesh));
  g_clear_pointer (&run->watches, g_hash_table_unref);
  if (run->lan_peers != NULL)
    pm_lan_peers_stop (run->lan_peers);
  g_clear_object (&run->lan_peers);
  if (run->control != NULL)
    pm_control_stop (run->control);
  g_clear_object (&run->control);
  if (run->started)
    pm_mesh_stop (run->mesh);
  g_clear_object (&run->mesh);
  g_clear_object (&run->client);
  g_clear_object (&run->identity);
  g_clear_object (&run->cancellable);
  g_clear_pointer (&run->loop, g_main_loop_unref);
  g_clear_pointer (&run->self_name, g_free);
  g_clear_pointer (&run->dir, g_free);
  pm_state_coordination_clear (&run->coord);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MeshRun, mesh_run_clear)

/* Resolves a --stun/--stun-alt value; "none" and "off" give NULL without an error. */
static gboolean
mesh_resolve_stun (const char          *option,
                   const char          *text,
                   GSocketFamily        family,
                   GInetSocketAddress **out,
                   GError             **error)
{
  g_autoptr (GError) local_error = NULL;

  *out = NULL;
  if (text == NULL || g_str_equal (text, "none") || g_str_equal (text, "off"))
    return TRUE;
  *out = netcheck_resolve (text, family, &local_error);
  if (*out == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s %s: %s", option, text,
                   local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* The default STUN server: the coordination server's host, port 3478. NULL
 * (with a note) when it does not resolve: the mesh then runs without STUN. */
static GInetSocketAddress *
mesh_default_stun (const char *server)
{
  g_autoptr (GUri) uri = g_uri_parse (server, G_URI_FLAGS_NONE, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char    *text = NULL;
  GInetSocketAddress *address;
  const char         *host = uri != NULL ? g_uri_get_host (uri) : NULL;

  if (host == NULL || *host == '\0')
    return NULL;
  if (strchr (host, ':') != NULL)
    text = g_strdup_printf ("[%s]:%d", host, MESH_DEFAULT_STUN_PORT);
  else
    text = g_strdup_printf ("%s:%d", host, MESH_DEFAULT_STUN_PORT);
  address = netcheck_resolve (text, G_SOCKET_FAMILY_INVALID, &error);
  if (address == NULL)
    g_printerr ("pipermesh: note: no STUN (%s: %s); give --stun ADDR:PORT\n", text,
                error->message);
  return address;
}

/* Everything before the mesh starts: enrollment, identity, the control socket
 * (refused when another process serves this state dir), STUN. Returns an exit
 * status; EXIT_OK to go on. */
static int
mesh_run_prepare (MeshRun             *run,
                  const GlobalOptions *global,
                  const char          *command,
                  const MeshOptions   *options)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) stun = NULL;
  g_autoptr (GInetSocketAddress) stun_alt = NULL;
  PmMeshLimits limits;
  const char  *env = g_getenv (MESH_LOOPBACK_ENV);
  const char  *name;

  run->command = command;
  run->cancellable = g_cancellable_new ();
  run->loop = g_main_loop_new (NULL, FALSE);
  run->watches = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) peer_watch_free);
  run->dir = state_dir_of (global);

  if (options->port < 0 || options->port > 65535)
    return usage_error (command, "--port wants a UDP port from 0 to 65535");
  if (options->lan_only && (options->stun != NULL || options->stun_alt != NULL))
    return usage_error (command, "--lan-only contacts no STUN server: leave out --stun");

  if (!options->lan_only && !pm_state_load_coordination (run->dir, &run->coord, &error))
    {
      g_printerr ("pipermesh: %s (or use --lan-only)\n", error->message);
      return EXIT_FAILED;
    }
  if (!options->lan_only)
    {
      if (!mesh_resolve_stun ("--stun", options->stun, G_SOCKET_FAMILY_INVALID, &stun, &error))
        return usage_error (command, error->message);
      if (options->stun == NULL)
        stun = mesh_default_stun (run->coord.server);
      if (!mesh_resolve_stun ("--stun-alt", options->stun_alt,
                              stun != NULL ? g_socket_address_get_family (G_SOCKET_ADDRESS (stun))
                                           : G_SOCKET_FAMILY_INVALID,
                              &stun_alt, &error))
        return usage_error (command, error->message);
      if (stun == NULL && stun_alt != NULL)
        stun = g_steal_pointer (&stun_alt);
    }

  run->identity = pm_identity_load_or_create (run->dir, PM_KEY_STORE_AUTO, NULL, &error);
  if (run->identity == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  name = run->coord.name;
  if (name == NULL)
    name = pm_identity_get_device_name (run->identity);
  if (name == NULL)
    name = g_get_host_name ();
  run->self_name = g_strdup (name);

  if (!options->lan_only)
    {
      run->client = pm_coord_client_new (run->coord.server, run->coord.token, &error);
      if (run->client == NULL)
        {
          g_printerr ("pipermesh: %s\n", error->message);
          return EXIT_FAILED;
        }
    }

  pm_mesh_limits_default (&limits);
  limits.loopback_candidates = options->loopback_candidates ||
                               (env != NULL && g_str_equal (env, "1"));
  run->mesh = pm_mesh_new (run->identity, run->client, run->coord.device_id, &limits);
  pm_mesh_set_stun_servers (run->mesh, stun, stun_alt);

  run->control = pm_control_new (run->mesh, run->self_name);
  if (!pm_control_start (run->control, run->dir, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      g_clear_object (&run->control); /* it never took the socket */
      return EXIT_FAILED;
    }
  return EXIT_OK;
}

static int
mesh_run_start (MeshRun           *run,
                const MeshOptions *options)
{
  g_autoptr (GError) error = NULL;

  if (!pm_mesh_start (run->mesh, (uint16_t) options->port, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  run->started = TRUE;
  run->signal_sources[0] = g_unix_signal_add (SIGINT, on_stop_signal, run);
  run->signal_sources[1] = g_unix_signal_add (SIGTERM, on_stop_signal, run);
  return EXIT_OK;
}

static void
on_ready_announce (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (pm_mesh_wait_ready_finish (PM_MESH (source), result, &error))
    {
      unsigned n = g_list_model_get_n_items (pm_mesh_get_peers (PM_MESH (source)));

      g_print ("ready: %u other device%s in the mesh\n", n, n == 1 ? "" : "s");
    }
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_printerr ("pipermesh: %s\n", error->message);
}

/* LAN only: the devices paired by QR code (pipermesh pair) are the peers. */
static GPtrArray *
paired_devices_load (const char *dir,
                     GError    **error)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new_for_state_dir (dir);

  return pm_paired_store_list (store, error);
}

/* LAN only, after pm_mesh_start(): the paired devices become the peers and
 * mDNS finds them where they moved; this device is advertised when
 * @advertise. */
static gboolean
mesh_run_start_lan_peers (MeshRun *run,
                          gboolean advertise,
                          GError **error)
{
  run->lan_peers = pm_lan_peers_new (run->mesh, run->dir, TRUE);
  return pm_lan_peers_start (run->lan_peers, advertise ? run->self_name : NULL, error);
}

/* The devices that may use @service in LAN-only mode: those of --allow
 * (@given, may be NULL) and the paired devices whose allow-list has it. */
static GPtrArray *
paired_allowed (GPtrArray  *paired,
                const char *service,
                GPtrArray  *given)
{
  GPtrArray *list = g_ptr_array_new_null_terminated (0, g_free, TRUE);

  for (unsigned i = 0; given != NULL && i < given->len; i++)
    g_ptr_array_add (list, g_strdup (given->pdata[i]));
  for (unsigned i = 0; i < paired->len; i++)
    {
      PmPairedDevice *d = paired->pdata[i];
      gboolean        listed = FALSE;

      for (unsigned j = 0; j < list->len && !listed; j++)
        listed = g_str_equal (list->pdata[j], d->name);
      if (!listed && pm_paired_device_allows (d, service))
        g_ptr_array_add (list, g_strdup (d->name));
    }
  return list;
}

/* --allow NAME=DEVICE[,DEVICE]: adds the devices to @allow (NAME -> GPtrArray). */
static gboolean
parse_allow (GHashTable *allow,
             const char *text,
             GError    **error)
{
  const char *eq = strchr (text, '=');
  g_auto (GStrv) devices = NULL;
  g_autofree char *name = NULL;
  GPtrArray       *list;

  if (eq == NULL || eq == text || eq[1] == '\0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--allow %s: write SERVICE=DEVICE[,DEVICE…]", text);
      return FALSE;
    }
  name = g_strndup (text, (size_t) (eq - text));
  list = g_hash_table_lookup (allow, name);
  if (list == NULL)
    {
      list = g_ptr_array_new_null_terminated (0, g_free, TRUE);
      g_hash_table_insert (allow, g_strdup (name), list);
    }
  devices = g_strsplit (eq + 1, ",", -1);
  for (char **d = devices; *d != NULL; d++)
    {
      g_strstrip (*d);
      if (**d == '\0')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "--allow %s: an empty device name", text);
          return FALSE;
        }
      g_ptr_array_add (list, g_strdup (*d));
    }
  return TRUE;
}

static int
cmd_up (const GlobalOptions *global,
        int                  argc,
        char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) allow = NULL;
  g_autoptr (GHashTable) offered = NULL;
  g_auto (MeshOptions) options = { 0 };
  g_auto (MeshRun) run = { NULL };
  g_auto (GStrv) services = NULL;
  g_auto (GStrv) allows = NULL;
  g_autoptr (GPtrArray) paired = NULL; /* LAN only: PmPairedDevice */
  GHashTableIter     iter;
  const char        *name;
  int                status;
  const GOptionEntry entries[] = {
    { "service", 's', 0, G_OPTION_ARG_STRING_ARRAY, &services,
      "Offer the local TCP service at HOST:PORT to peers as NAME (repeatable)",
      "NAME=HOST:PORT" },
    { "allow", 'a', 0, G_OPTION_ARG_STRING_ARRAY, &allows,
      "Only these devices (names or ids) may use service NAME (repeatable; "
      "default: every device of the account)",
      "NAME=DEVICE[,DEVICE]" },
    { "lan-only", 0, 0, G_OPTION_ARG_NONE, &options.lan_only,
      "Contact no coordination server, relay or STUN server", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Runs this device in the mesh, in the foreground, until SIGINT or\n"
                                "SIGTERM: keeps its candidates published, answers peers and offers\n"
                                "the services given. Prints a line whenever a peer's state or path\n"
                                "changes. “pipermesh status” and “pipermesh ping” ask it.");
  g_option_context_add_main_entries (context, entries, NULL);
  mesh_options_add_entries (context, &options);
  if (!parse_command_options ("up", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message = g_strdup_printf ("up takes no arguments (got “%s”)", argv[1]);
      return usage_error ("up", message);
    }

  allow = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                 (GDestroyNotify) g_ptr_array_unref);
  offered = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (char **a = allows; a != NULL && *a != NULL; a++)
    if (!parse_allow (allow, *a, &error))
      return usage_error ("up", error->message);

  status = mesh_run_prepare (&run, global, "up", &options);
  if (status != EXIT_OK)
    return status;
  if (options.lan_only)
    {
      paired = paired_devices_load (run.dir, &error);
      if (paired == NULL)
        {
          g_printerr ("pipermesh: %s\n", error->message);
          return EXIT_FAILED;
        }
    }

  for (char **s = services; s != NULL && *s != NULL; s++)
    {
      const char      *eq = strchr (*s, '=');
      g_autofree char *service = NULL;
      g_autoptr (GPtrArray) lan_allowed = NULL;
      GPtrArray *list;

      if (eq == NULL || eq == *s || eq[1] == '\0')
        {
          g_autofree char *message = g_strdup_printf ("--service %s: write NAME=HOST:PORT", *s);
          return usage_error ("up", message);
        }
      service = g_strndup (*s, (size_t) (eq - *s));
      list = g_hash_table_lookup (allow, service);
      if (paired != NULL)
        list = lan_allowed = paired_allowed (paired, service, list);
      /* list->pdata is NULL-terminated: the GStrv the mesh wants. */
      if (!pm_mesh_add_service (run.mesh, service, eq + 1,
                                list != NULL ? (const char *const *) list->pdata : NULL,
                                &error))
        {
          g_autofree char *message = g_strdup_printf ("--service %s: %s", *s, error->message);
          return usage_error ("up", message);
        }
      if (list != NULL && list->len == 0)
        g_print ("offering %s (%s) to no device: no paired device may use it "
                 "(pair with --allow-service %s, or give --allow %s=DEVICE)\n",
                 service, eq + 1, service, service);
      else if (list != NULL)
        {
          g_autofree char *devices = g_strjoinv (", ", (char **) list->pdata);

          g_print ("offering %s (%s) to %s\n", service, eq + 1, devices);
        }
      else
        g_print ("offering %s (%s) to every device of the account\n", service, eq + 1);
      g_hash_table_add (offered, g_steal_pointer (&service));
    }
  g_hash_table_iter_init (&iter, allow);
  while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
    if (!g_hash_table_contains (offered, name))
      {
        g_autofree char *message =
          g_strdup_printf ("--allow %s=…: no --service %s=HOST:PORT is offered", name, name);
        return usage_error ("up", message);
      }

  if (options.lan_only && options.port == 0)
    options.port = PM_MESH_LAN_PORT; /* where paired devices look for it */
  status = mesh_run_start (&run, &options);
  if (status != EXIT_OK)
    return status;
  if (options.lan_only && !mesh_run_start_lan_peers (&run, TRUE, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  if (options.lan_only)
    g_print ("up as %s, LAN only, UDP port %u\n", run.self_name, pm_mesh_get_port (run.mesh));
  else
    g_print ("up as %s (%s) with %s, UDP port %u\n", run.self_name, run.coord.device_id,
             run.coord.server, pm_mesh_get_port (run.mesh));
  mesh_run_watch_peers (&run, NULL);
  pm_mesh_wait_ready_async (run.mesh, run.cancellable, on_ready_announce, NULL);
  g_main_loop_run (run.loop);
  return EXIT_OK;
}

/* One --forward: a TCP listener whose connections become streams to one
 * service of one peer. */
typedef struct {
  PmPeer             *peer;
  char               *service;
  GInetSocketAddress *address; /* to listen on */
  GSocketService     *listener;
  GCancellable       *cancellable;
  unsigned           *active; /* connections not finished, of every forward */
} Forward;

static void
forward_free (Forward *forward)
{
  if (forward->listener != NULL)
    {
      g_signal_handlers_disconnect_by_data (forward->listener, forward);
      g_socket_service_stop (forward->listener);
      g_socket_listener_close (G_SOCKET_LISTENER (forward->listener));
      g_object_unref (forward->listener);
    }
  g_clear_object (&forward->cancellable);
  g_clear_object (&forward->address);
  g_clear_object (&forward->peer);
  g_free (forward->service);
  g_free (forward);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Forward, forward_free)

/* One forwarded TCP connection, and its stream once open. pm_forward_async()
 * joins them, passing half-closes on (the client's EOF becomes the stream's
 * FIN, the stream's end a shutdown(SHUT_WR)), so a client that reads to EOF
 * gets it once the service is done. */
typedef struct {
  Forward           *forward;
  GSocketConnection *tcp;
  char              *from;
  PmStream          *stream;
} ForwardConnection;

static void
forward_connection_free (ForwardConnection *fc)
{
  (*fc->forward->active)--;
  g_clear_object (&fc->stream);
  g_clear_object (&fc->tcp);
  g_free (fc->from);
  g_free (fc);
}

static void
on_forward_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  ForwardConnection *fc = user_data;
  g_autoptr (GError) error = NULL;

  if (!pm_forward_finish (result, NULL, NULL, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_printerr ("pipermesh: %s/%s: the connection from %s failed: %s\n",
                pm_peer_get_name (fc->forward->peer), fc->forward->service, fc->from,
                error->message);
  forward_connection_free (fc);
}

static void
on_stream_opened (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  ForwardConnection *fc = user_data;
  g_autoptr (GError) error = NULL;

  fc->stream = pm_peer_open_stream_finish (PM_PEER (source), result, &error);
  if (fc->stream == NULL)
    {
      /* A refusal carries the peer's reason (PM_STREAM_ERROR_REFUSED). */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_printerr ("pipermesh: %s/%s: %s (closed the connection from %s)\n",
                    pm_peer_get_name (fc->forward->peer), fc->forward->service, error->message,
                    fc->from);
      (void) g_io_stream_close (G_IO_STREAM (fc->tcp), NULL, NULL);
      forward_connection_free (fc);
      return;
    }
  pm_forward_async (fc->stream, fc->tcp, fc->forward->cancellable, on_forward_done, fc);
}

static gboolean
on_forward_incoming (GSocketService    *service,
                     GSocketConnection *connection,
                     GObject           *source_object,
                     gpointer           user_data)
{
  Forward           *forward = user_data;
  ForwardConnection *fc = g_new0 (ForwardConnection, 1);
  g_autoptr (GSocketAddress) remote = g_socket_connection_get_remote_address (connection, NULL);

  fc->forward = forward;
  fc->tcp = g_object_ref (connection);
  fc->from = remote != NULL && G_IS_INET_SOCKET_ADDRESS (remote)
               ? pm_address_to_string (G_INET_SOCKET_ADDRESS (remote))
               : g_strdup ("a local client");
  (*forward->active)++;
  g_debug ("Connection from %s: opening %s/%s", fc->from, pm_peer_get_name (forward->peer),
           forward->service);
  pm_peer_open_stream_async (forward->peer, forward->service, forward->cancellable,
                             on_stream_opened, fc);
  return TRUE;
}

/* --forward [ADDR:]PORT=SERVICE (ADDR defaults to 127.0.0.1; port 0: any). */
static gboolean
parse_forward (const char          *text,
               GInetSocketAddress **address,
               char               **service,
               GError             **error)
{
  const char      *eq = strrchr (text, '=');
  g_autofree char *left = NULL;
  gboolean         digits = TRUE;

  if (eq == NULL || eq == text || eq[1] == '\0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--forward %s: write [ADDR:]PORT=SERVICE", text);
      return FALSE;
    }
  left = g_strndup (text, (size_t) (eq - text));
  for (const char *c = left; *c != '\0'; c++)
    digits = digits && g_ascii_isdigit (*c);
  if (digits)
    {
      guint64 port = 0;

      if (strlen (left) > 5 || !g_ascii_string_to_unsigned (left, 10, 0, 65535, &port, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "--forward %s: %s is not a TCP port", text, left);
          return FALSE;
        }
      *address = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("127.0.0.1",
                                                                               (unsigned) port));
    }
  else
    {
      *address = pm_address_parse (left, TRUE);
      if (*address == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "--forward %s: “%s” is not PORT, IP:PORT or [IPv6]:PORT", text, left);
          return FALSE;
        }
    }
  *service = g_strdup (eq + 1);
  return TRUE;
}

static gboolean
on_drain_timeout (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Listens for one --forward; prints "forwarding ADDR:PORT -> DEVICE/SERVICE". */
static gboolean
forward_start (Forward *forward,
               GError **error)
{
  g_autoptr (GSocketAddress) effective = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autofree char *listening = pm_address_to_string (forward->address);
  g_autofree char *effective_text = NULL;

  forward->listener = g_socket_service_new ();
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (forward->listener),
                                      G_SOCKET_ADDRESS (forward->address), G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &effective, &local_error))
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                     "%s is taken: another program listens there; "
                     "choose another port for --forward",
                     listening);
      else
        g_set_error (error, local_error->domain, local_error->code,
                     "could not listen on %s: %s", listening, local_error->message);
      return FALSE;
    }
  effective_text = pm_address_to_string (G_INET_SOCKET_ADDRESS (effective));
  g_signal_connect (forward->listener, "incoming", G_CALLBACK (on_forward_incoming), forward);
  g_socket_service_start (forward->listener);
  g_print ("forwarding %s -> %s/%s\n", effective_text, pm_peer_get_name (forward->peer),
           forward->service);
  return TRUE;
}

static int
cmd_connect (const GlobalOptions *global,
             int                  argc,
             char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GPtrArray) forwards = g_ptr_array_new_with_free_func ((GDestroyNotify) forward_free);
  g_auto (GStrv) forward_args = NULL;
  g_auto (MeshOptions) options = { 0 };
  g_auto (MeshRun) run = { NULL };
  PmPeer            *peer;
  GAsyncResult      *slot = NULL;
  const char        *device;
  gboolean           drained = FALSE;
  unsigned           active = 0;
  unsigned           drain_timeout;
  int                status = EXIT_OK;
  const GOptionEntry entries[] = {
    { "forward", 'L', 0, G_OPTION_ARG_STRING_ARRAY, &forward_args,
      "Listen on ADDR:PORT (ADDR: 127.0.0.1 unless given; port 0: any) and forward every TCP "
      "connection to the device's service SERVICE (repeatable)",
      "[ADDR:]PORT=SERVICE" },
    { "lan-only", 0, 0, G_OPTION_ARG_NONE, &options.lan_only,
      "Reach a device paired by QR code (pipermesh pair) on this network; contact no "
      "coordination server, relay or STUN server",
      NULL },
    { NULL },
  };

  context = g_option_context_new ("DEVICE");
  g_option_context_set_summary (context,
                                "Connects to DEVICE (a name or an id of this account) and forwards\n"
                                "local TCP ports to its services, in the foreground, until SIGINT\n"
                                "or SIGTERM. Prints “forwarding ADDR:PORT -> DEVICE/SERVICE” once\n"
                                "a port listens. “pipermesh status” and “pipermesh ping” ask it.");
  g_option_context_add_main_entries (context, entries, NULL);
  mesh_options_add_entries (context, &options);
  if (!parse_command_options ("connect", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2)
    return usage_error ("connect", "connect takes one device name or id");
  device = argv[1];
  if (forward_args == NULL)
    return usage_error ("connect", "--forward [ADDR:]PORT=SERVICE is required");
  for (char **f = forward_args; *f != NULL; f++)
    {
      g_autoptr (Forward) forward = g_new0 (Forward, 1);

      if (!parse_forward (*f, &forward->address, &forward->service, &error))
        return usage_error ("connect", error->message);
      forward->active = &active;
      g_ptr_array_add (forwards, g_steal_pointer (&forward));
    }

  status = mesh_run_prepare (&run, global, "connect", &options);
  if (status == EXIT_OK)
    status = mesh_run_start (&run, &options);
  if (status != EXIT_OK)
    return status;
  if (options.lan_only && !mesh_run_start_lan_peers (&run, FALSE, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }

  pm_mesh_wait_ready_async (run.mesh, run.cancellable, on_async_done, &slot);
  result = wait_for (&slot); /* SIGINT/SIGTERM cancel it */
  if (!pm_mesh_wait_ready_finish (run.mesh, result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  peer = pm_mesh_lookup_peer (run.mesh, device);
  if (peer == NULL)
    {
      if (g_strcmp0 (device, run.coord.device_id) == 0 || g_strcmp0 (device, run.self_name) == 0)
        g_printerr ("pipermesh: “%s” is this device\n", device);
      else if (options.lan_only)
        g_printerr ("pipermesh: no paired device is named “%s” (“pipermesh paired” lists them)\n",
                    device);
      else
        g_printerr ("pipermesh: unknown device “%s”: no other device of this account has that "
                    "name or id (“pipermesh devices” lists them)\n",
                    device);
      return EXIT_FAILED;
    }

  for (unsigned i = 0; i < forwards->len && status == EXIT_OK; i++)
    {
      Forward *forward = forwards->pdata[i];

      forward->peer = g_object_ref (peer);
      forward->cancellable = g_object_ref (run.cancellable);
      if (!forward_start (forward, &error))
        {
          g_printerr ("pipermesh: %s\n", error->message);
          status = EXIT_FAILED;
        }
    }
  if (status == EXIT_OK)
    {
      mesh_run_watch_peers (&run, peer);
      pm_peer_connect (peer);
      g_main_loop_run (run.loop);
    }

  /* Stopping: no new connections; the open ones are cancelled and closed. */
  g_cancellable_cancel (run.cancellable);
  drain_timeout = g_timeout_add (MESH_DRAIN_TIMEOUT_MS, on_drain_timeout, &drained);
  while (active > 0 && !drained)
    g_main_context_iteration (NULL, TRUE);
  if (!drained)
    g_source_remove (drain_timeout);
  return status;
}

/* ---------------------------------------------------------------------------
 * pair show, pair scan, paired, unpair: pairing by QR code, no account
 * ------------------------------------------------------------------------- */

/* This device's name for a pairing: --name, else the enrolled name, else the
 * identity's, else the host name. */
static char *
pair_self_name (const char *dir,
                PmIdentity *identity,
                const char *given)
{
  PmStateCoordination coord = { NULL };
  char               *name = NULL;

  if (given != NULL)
    return g_strdup (given);
  if (pm_state_load_coordination (dir, &coord, NULL) && coord.name != NULL)
    name = g_strdup (coord.name);
  pm_state_coordination_clear (&coord);
  if (name == NULL && pm_identity_get_device_name (identity) != NULL)
    name = g_strdup (pm_identity_get_device_name (identity));
  if (name == NULL)
    name = g_strdup (g_get_host_name ());
  return name;
}

/* The options pair show and pair scan share. */
typedef struct {
  char    *name;
  char    *type;
  int      mesh_port;
  char   **allow_services;
  int      timeout_s; /* hidden: shortens PmPairLimits for tests */
  gboolean mesh_port_set;
} PairOptions;

static void
pair_options_clear (PairOptions *options)
{
  g_clear_pointer (&options->name, g_free);
  g_clear_pointer (&options->type, g_free);
  g_clear_pointer (&options->allow_services, g_strfreev);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PairOptions, pair_options_clear)

static void
pair_options_add_entries (GOptionContext *context,
                          PairOptions    *options)
{
  const GOptionEntry entries[] = {
    { "name", 'n', 0, G_OPTION_ARG_STRING, &options->name,
      "This device's name as the other device will show it (default: its enrolled name, "
      "else the host name)",
      "NAME" },
    { "type", 0, 0, G_OPTION_ARG_STRING, &options->type,
      "This device's type: linux, mac, windows, android, iphone, ipad or watch (default: linux)",
      "TYPE" },
    { "mesh-port", 0, 0, G_OPTION_ARG_INT, &options->mesh_port,
      "The UDP port this device's “up --lan-only” uses, told to the other device "
      "(default: 41641; 0: none fixed)",
      "UDPPORT" },
    { "allow-service", 0, 0, G_OPTION_ARG_STRING_ARRAY, &options->allow_services,
      "A service of this device the other one may use (repeatable; default: every service)",
      "SERVICE" },
    { "timeout", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &options->timeout_s,
      "Seconds to wait for each message and for the answer (tests)", "SECONDS" },
    { NULL },
  };

  options->mesh_port = -1;
  g_option_context_add_main_entries (context, entries, NULL);
}

/* Checks the shared options; fills @limits. Returns EXIT_OK or a usage error. */
static int
pair_options_check (const char   *command,
                    PairOptions  *options,
                    PmPairLimits *limits)
{
  g_autoptr (GError) error = NULL;

  pm_pair_limits_default (limits);
  if (options->type == NULL)
    options->type = g_strdup (pm_pair_device_type_default ());
  if (!pm_pair_device_type_is_valid (options->type))
    return usage_error (command, "--type: linux, mac, windows, android, iphone, ipad or watch");
  if (options->name != NULL && !pm_pair_name_check (options->name, strlen (options->name), &error))
    {
      g_autofree char *message = g_strdup_printf ("--name: %s", error->message);
      return usage_error (command, message);
    }
  if (options->mesh_port == -1)
    options->mesh_port = PM_MESH_LAN_PORT;
  if (options->mesh_port < 0 || options->mesh_port > 65535)
    return usage_error (command, "--mesh-port wants a UDP port from 0 to 65535");
  for (char **s = options->allow_services; s != NULL && *s != NULL; s++)
    if (**s == '\0' || strlen (*s) > 64 || strpbrk (*s, "=:,/ \t\n") != NULL)
      {
        g_autofree char *message =
          g_strdup_printf ("--allow-service: “%s” is not a service name", *s);
        return usage_error (command, message);
      }
  if (options->timeout_s < 0)
    return usage_error (command, "--timeout wants a number of seconds");
  if (options->timeout_s > 0)
    {
      limits->connect_timeout_ms = (unsigned) options->timeout_s * 1000;
      limits->message_timeout_ms = (unsigned) options->timeout_s * 1000;
      limits->verify_timeout_ms = (unsigned) options->timeout_s * 1000;
    }
  return EXIT_OK;
}

/* Reads one answer line from standard input without blocking the main loop. */
typedef struct {
  PmPairHost       *host;
  GDataInputStream *input;
  GCancellable     *cancellable;
} PairPrompt;

static void
on_prompt_line (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  PairPrompt *prompt = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *line =
    g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line != NULL)
    g_strstrip (line);
  if (line != NULL &&
      (g_ascii_strcasecmp (line, "y") == 0 || g_ascii_strcasecmp (line, "yes") == 0))
    pm_pair_host_accept (prompt->host);
  else
    pm_pair_host_reject (prompt->host, "The host's user rejected the pairing");
}

typedef struct {
  gboolean    auto_accept;
  PairPrompt *prompt;
} PairShowRun;

static void
on_host_verify (PmPairHost *host,
                const char *code,
                const char *peer_name,
                const char *peer_type,
                gpointer    user_data)
{
  PairShowRun *run = user_data;

  g_print ("“%s” (%s) wants to pair.\n", peer_name, peer_type);
  g_print ("Verification code: %s\n", code);
  if (run->auto_accept)
    {
      g_print ("Accepted (--auto-accept).\n");
      pm_pair_host_accept (host);
      return;
    }
  g_print ("Does “%s” show the same code? Accept the pairing? [y/N] ", peer_name);
  fflush (stdout);
  g_data_input_stream_read_line_async (run->prompt->input, G_PRIORITY_DEFAULT,
                                       run->prompt->cancellable, on_prompt_line, run->prompt);
}

static int
pair_show (const GlobalOptions *global,
           int                  argc,
           char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) identity = NULL;
  g_autoptr (GTlsCertificate) certificate = NULL;
  g_autoptr (PmPairedStore) store = NULL;
  g_autoptr (PmPairHost) host = NULL;
  g_autoptr (GPtrArray) addresses = NULL;
  g_autoptr (PmQr) qr = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (PmPairedDevice) device = NULL;
  g_autoptr (GInputStream) stdin_stream = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_auto (PairOptions) options = { NULL };
  g_auto (GStrv) address_args = NULL;
  g_autofree char   *png = NULL, *svg = NULL, *dir = NULL, *name = NULL;
  g_autofree char   *uri = NULL, *blocks = NULL;
  GAsyncResult      *slot = NULL;
  PairPrompt         prompt = { NULL };
  PairShowRun        show = { FALSE, &prompt };
  PmPairLimits       limits;
  int                port = 0, ttl = PM_PAIR_CODE_LIFETIME_S, status;
  const PmPairCode  *code;
  const GOptionEntry entries[] = {
    { "png", 0, 0, G_OPTION_ARG_FILENAME, &png, "Also write the QR code as a PNG picture", "FILE" },
    { "svg", 0, 0, G_OPTION_ARG_FILENAME, &svg, "Also write the QR code as an SVG picture",
      "FILE" },
    { "auto-accept", 0, 0, G_OPTION_ARG_NONE, &show.auto_accept,
      "Accept the device that uses the code without asking (headless hosts)", NULL },
    { "port", 'p', 0, G_OPTION_ARG_INT, &port,
      "The TCP port to listen on for the pairing (default: any)", "PORT" },
    { "address", 0, 0, G_OPTION_ARG_STRING_ARRAY, &address_args,
      "Listen on this IP address only and put it in the code (repeatable; default: every "
      "LAN address)",
      "IP" },
    { "ttl", 0, 0, G_OPTION_ARG_INT, &ttl, "Seconds until the code expires (default: 600)",
      "SECONDS" },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Shows a pairing code (QR code and text) and waits for ONE\n"
                                "device to pair with it (“pipermesh pair scan” there). Both\n"
                                "devices print a verification code; accept here when they\n"
                                "match. The code works once, on this network, with no account.");
  g_option_context_add_main_entries (context, entries, NULL);
  pair_options_add_entries (context, &options);
  if (!parse_command_options ("pair show", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return usage_error ("pair", "pair show takes no arguments");
  status = pair_options_check ("pair", &options, &limits);
  if (status != EXIT_OK)
    return status;
  if (port < 0 || port > 65535)
    return usage_error ("pair", "--port wants a TCP port from 0 to 65535");
  if (ttl <= 0 || ttl > 24 * 3600)
    return usage_error ("pair", "--ttl wants 1 to 86400 seconds");
  if (address_args != NULL)
    {
      addresses = g_ptr_array_new_with_free_func (g_object_unref);
      for (char **a = address_args; *a != NULL; a++)
        {
          GInetAddress *ip = g_inet_address_new_from_string (*a);

          if (ip == NULL)
            {
              g_autofree char *message = g_strdup_printf ("--address %s: not an IP address", *a);
              return usage_error ("pair", message);
            }
          g_ptr_array_add (addresses, ip);
        }
    }

  dir = state_dir_of (global);
  identity = pm_identity_load_or_create (dir, PM_KEY_STORE_AUTO, NULL, &error);
  if (identity == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  certificate = pm_pair_cert_load_or_create (dir, NULL, &error);
  if (certificate == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  name = pair_self_name (dir, identity, options.name);
  store = pm_paired_store_new_for_state_dir (dir);
  host = pm_pair_host_new (identity, certificate, store, name, options.type, &limits);
  pm_pair_host_set_mesh_port (host, (uint16_t) options.mesh_port);
  pm_pair_host_set_allowed_services (host, (const char *const *) options.allow_services);
  if (!pm_pair_host_start (host, addresses, (uint16_t) port, ttl, &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  code = pm_pair_host_get_code (host);
  uri = pm_pair_code_to_uri (code);
  qr = pm_qr_new (uri, &error);
  if (qr == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  if ((png != NULL && !pm_qr_save_png (qr, png, 8, &error)) ||
      (svg != NULL && !pm_qr_save_svg (qr, svg, 8, &error)))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }

  blocks = pm_qr_to_text (qr, isatty (STDOUT_FILENO) ? PM_QR_TEXT_ANSI : PM_QR_TEXT_DARK_ON_LIGHT);
  g_print (
    "Scan this code on the other device (“pipermesh pair scan”) to pair it with “%s”:\n\n%s\n",
    name, blocks);
  g_print ("Or give it this text (“pipermesh pair scan --uri …”):\n%s\n\n", uri);
  if (png != NULL)
    g_print ("QR code written to %s\n", png);
  if (svg != NULL)
    g_print ("QR code written to %s\n", svg);
  {
    g_autoptr (GDateTime) expires = g_date_time_new_from_unix_local (code->expires);
    g_autofree char *when = g_date_time_format (expires, "%H:%M:%S");

    g_print ("Listening on port %u. The code works once and expires at %s.\n",
             pm_pair_host_get_port (host), when);
  }
  g_print ("Waiting for a device…\n");

  stdin_stream = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  prompt.host = host;
  prompt.input = g_data_input_stream_new (stdin_stream);
  prompt.cancellable = cancellable;
  g_signal_connect (host, "verify", G_CALLBACK (on_host_verify), &show);
  pm_pair_host_wait_async (host, NULL, on_async_done, &slot);
  result = wait_for (&slot);
  g_cancellable_cancel (cancellable);
  device = pm_pair_host_wait_finish (host, result, &error);
  g_signal_handlers_disconnect_by_data (host, &show);
  pm_pair_host_stop (host);
  g_clear_object (&prompt.input);
  if (device == NULL)
    {
      if (!show.auto_accept && g_error_matches (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED))
        g_print ("\n");
      g_printerr ("pipermesh: %s; nothing was stored\n", error->message);
      return EXIT_FAILED;
    }
  g_print (
    "Paired with “%s” (%s). With both running “pipermesh up --lan-only”, it reaches this device's\n"
    "services with “pipermesh connect %s --lan-only --forward PORT=SERVICE”.\n",
    device->name, device->device_type, name);
  return EXIT_OK;
}

static void
on_client_verify (PmPairClient *client,
                  const char   *code,
                  const char   *host_name,
                  const char   *host_type,
                  gpointer      user_data)
{
  g_print ("Verification code: %s\n", code);
  g_print ("Check that “%s” shows the same code, and accept there.\n", host_name);
}

static int
pair_scan (const GlobalOptions *global,
           int                  argc,
           char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) identity = NULL;
  g_autoptr (PmPairedStore) store = NULL;
  g_autoptr (PmPairClient) client = NULL;
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (PmPairedDevice) device = NULL;
  g_auto (PairOptions) options = { NULL };
  g_autofree char   *uri = NULL, *dir = NULL, *name = NULL;
  GAsyncResult      *slot = NULL;
  PmPairLimits       limits;
  int                status;
  const GOptionEntry entries[] = {
    { "uri", 'u', 0, G_OPTION_ARG_STRING, &uri, "The code as text instead of a picture",
      "pipermesh:pair?…" },
    { NULL },
  };

  context = g_option_context_new ("[FILE]");
  g_option_context_set_summary (context,
                                "Pairs with the device that shows a pairing code: reads the QR\n"
                                "code from the picture FILE (or the text given with --uri),\n"
                                "connects to that device on this network, prints the\n"
                                "verification code and waits until the other device accepts.");
  g_option_context_add_main_entries (context, entries, NULL);
  pair_options_add_entries (context, &options);
  if (!parse_command_options ("pair scan", context, &argc, &argv))
    return EXIT_USAGE;
  if ((argc == 2) == (uri != NULL) || argc > 2)
    return usage_error ("pair", "pair scan takes a picture FILE or --uri CODE (one of them)");
  status = pair_options_check ("pair", &options, &limits);
  if (status != EXIT_OK)
    return status;

  if (uri != NULL)
    code = pm_pair_code_parse (uri, &error);
  else
    {
      g_auto (GStrv) texts = pm_qr_decode_file (argv[1], &error);

      if (texts != NULL)
        code = pm_pair_code_parse_first ((const char *const *) texts, &error);
    }
  if (code == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }

  dir = state_dir_of (global);
  identity = pm_identity_load_or_create (dir, PM_KEY_STORE_AUTO, NULL, &error);
  if (identity == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  name = pair_self_name (dir, identity, options.name);
  store = pm_paired_store_new_for_state_dir (dir);
  client = pm_pair_client_new (identity, store, name, options.type, &limits);
  pm_pair_client_set_mesh_port (client, (uint16_t) options.mesh_port);
  pm_pair_client_set_allowed_services (client, (const char *const *) options.allow_services);
  g_signal_connect (client, "verify", G_CALLBACK (on_client_verify), NULL);

  g_print ("Pairing with “%s”…\n", code->name);
  pm_pair_client_pair_async (client, code, NULL, on_async_done, &slot);
  result = wait_for (&slot);
  device = pm_pair_client_pair_finish (client, result, &error);
  if (device == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  g_print (
    "Paired with “%s” (%s). Reach its services with\n"
    "“pipermesh connect %s --lan-only --forward PORT=SERVICE” while it runs\n"
    "“pipermesh up --lan-only”.\n",
    device->name, device->device_type, device->name);
  return EXIT_OK;
}

static int
cmd_pair (const GlobalOptions *global,
          int                  argc,
          char               **argv)
{
  if (argc >= 2 && g_str_equal (argv[1], "show"))
    return pair_show (global, argc - 1, argv + 1);
  if (argc >= 2 && g_str_equal (argv[1], "scan"))
    return pair_scan (global, argc - 1, argv + 1);
  if (argc >= 2 && (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h")))
    {
      g_print (
        "Usage:\n"
        "  pipermesh pair show [--png FILE] [--svg FILE] [--auto-accept] [--port PORT]\n"
        "                      [--address IP]…\n"
        "  pipermesh pair scan FILE | --uri CODE [--name NAME]\n\n"
        "Pairs two devices on one network by QR code, without any account:\n"
        "“pair show” on one, “pair scan” on the other. “pipermesh pair show --help” and\n"
        "“pipermesh pair scan --help” list every option.\n");
      return EXIT_OK;
    }
  return usage_error ("pair", "write “pipermesh pair show” or “pipermesh pair scan FILE”");
}

static void
print_paired_json (GPtrArray *devices)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_array (builder);
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmPairedDevice  *d = devices->pdata[i];
      g_autofree char *key = pm_paired_device_get_public_key_hex (d);
      g_autofree char *fingerprint = pm_key_fingerprint (d->public_key);
      g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (d->paired_at);
      g_autofree char *iso = when != NULL ? g_date_time_format_iso8601 (when) : NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_string_value (builder, d->id);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, d->name);
      json_builder_set_member_name (builder, "type");
      json_builder_add_string_value (builder, d->device_type);
      json_builder_set_member_name (builder, "publicKey");
      json_builder_add_string_value (builder, key);
      json_builder_set_member_name (builder, "fingerprint");
      json_builder_add_string_value (builder, fingerprint);
      json_builder_set_member_name (builder, "addresses");
      json_builder_begin_array (builder);
      for (unsigned j = 0; j < d->addresses->len; j++)
        json_builder_add_string_value (builder, d->addresses->pdata[j]);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "allowedServices");
      json_builder_begin_array (builder);
      for (unsigned j = 0; j < d->allowed_services->len; j++)
        json_builder_add_string_value (builder, d->allowed_services->pdata[j]);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "pairedAt");
      json_builder_add_string_value (builder, iso);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static int
cmd_paired (const GlobalOptions *global,
            int                  argc,
            char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedStore) store = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autofree char   *dir = NULL;
  gboolean           json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, "Lists the devices paired with this one by QR code.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("paired", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    return usage_error ("paired", "paired takes no arguments");

  dir = state_dir_of (global);
  store = pm_paired_store_new_for_state_dir (dir);
  devices = pm_paired_store_list (store, &error);
  if (devices == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  if (json)
    {
      print_paired_json (devices);
      return EXIT_OK;
    }
  if (devices->len == 0)
    {
      g_print ("No paired devices. Pair one with “pipermesh pair show” here and "
               "“pipermesh pair scan” there.\n");
      return EXIT_OK;
    }
  g_print ("%-20s %-8s %-20s %-24s %s\n", "NAME", "TYPE", "PAIRED", "ADDRESS", "SERVICES");
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmPairedDevice *d = devices->pdata[i];
      g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (d->paired_at);
      g_autoptr (GDateTime) local = utc != NULL ? g_date_time_to_local (utc) : NULL;
      g_autofree char *when =
        local != NULL ? g_date_time_format (local, "%Y-%m-%d %H:%M") : g_strdup ("?");
      g_autofree char *services = g_strjoinv (",", (char **) d->allowed_services->pdata);

      g_print ("%-20s %-8s %-20s %-24s %s\n", d->name, d->device_type, when,
               d->addresses->len > 0 ? (const char *) d->addresses->pdata[0] : "-",
               g_str_equal (services, PM_PAIRED_ALL_SERVICES) ? "all" : services);
    }
  return EXIT_OK;
}

static int
cmd_unpair (const GlobalOptions *global,
            int                  argc,
            char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedStore) store = NULL;
  g_autofree char *dir = NULL;

  context = g_option_context_new ("NAME");
  g_option_context_set_summary (context,
                                "Forgets a paired device (by name or id): it can no longer\n"
                                "connect to this one. Pair again to undo.");
  if (!parse_command_options ("unpair", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2)
    return usage_error ("unpair", "unpair takes one paired device's name or id");

  dir = state_dir_of (global);
  store = pm_paired_store_new_for_state_dir (dir);
  if (!pm_paired_store_remove (store, argv[1], &error))
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  g_print ("Unpaired “%s”.\n", argv[1]);
  return EXIT_OK;
}

/* ---------------------------------------------------------------------------
 * status, ping: ask the running process
 * ------------------------------------------------------------------------- */

/* Connects to this state dir's running process, or says that none runs. */
static GDBusConnection *
control_connect (const GlobalOptions *global)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = state_dir_of (global);
  GDBusConnection *connection = pm_control_connect (dir, NULL, &error);

  if (connection == NULL)
    g_printerr ("pipermesh: %s\n", error->message);
  return connection;
}

static const char *
dict_string (GVariantDict *dict,
             const char   *key)
{
  const char *value = NULL;

  if (!g_variant_dict_lookup (dict, key, "&s", &value))
    return NULL;
  return value;
}

static guint64
dict_uint (GVariantDict *dict,
           const char   *key)
{
  g_autoptr (GVariant) value = g_variant_dict_lookup_value (dict, key, NULL);

  if (value == NULL)
    return 0;
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    return g_variant_get_uint64 (value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    return g_variant_get_uint32 (value);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT16))
    return g_variant_get_uint16 (value);
  return 0;
}

static char *
format_handshake_time (gint64 usec)
{
  g_autoptr (GDateTime) seconds = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
  g_autoptr (GDateTime) when = NULL;

  if (seconds == NULL)
    return NULL;
  when = g_date_time_add (seconds, usec % G_USEC_PER_SEC);
  return g_date_time_format_iso8601 (when);
}

static void
json_add_dict_string (JsonBuilder  *builder,
                      GVariantDict *dict,
                      const char   *key)
{
  const char *value = dict_string (dict, key);

  json_builder_set_member_name (builder, key);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

static void
json_add_dict_uint (JsonBuilder  *builder,
                    GVariantDict *dict,
                    const char   *key)
{
  json_builder_set_member_name (builder, key);
  json_builder_add_int_value (builder, (gint64) MIN (dict_uint (dict, key), (guint64) G_MAXINT64));
}

static void
print_json (JsonBuilder *builder)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_status_json (GVariant *self,
                   GVariant *peers)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_auto (GVariantDict) self_dict;
  GVariantIter iter;
  GVariant    *peer;

  g_variant_dict_init (&self_dict, self);
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "self");
  json_builder_begin_object (builder);
  json_add_dict_string (builder, &self_dict, "id");
  json_add_dict_string (builder, &self_dict, "name");
  json_add_dict_string (builder, &self_dict, "publicKey");
  json_add_dict_uint (builder, &self_dict, "port");
  json_builder_end_object (builder);

  json_builder_set_member_name (builder, "peers");
  json_builder_begin_array (builder);
  g_variant_iter_init (&iter, peers);
  while ((peer = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto (GVariantDict) dict;
      gboolean online = FALSE;
      double   rtt_ms = 0;
      gint64   handshake = 0;

      g_variant_dict_init (&dict, peer);
      g_variant_unref (peer);
      json_builder_begin_object (builder);
      json_add_dict_string (builder, &dict, "id");
      json_add_dict_string (builder, &dict, "name");
      json_add_dict_string (builder, &dict, "type");
      json_builder_set_member_name (builder, "online");
      (void) g_variant_dict_lookup (&dict, "online", "b", &online);
      json_builder_add_boolean_value (builder, online);
      json_add_dict_string (builder, &dict, "state");
      json_add_dict_string (builder, &dict, "path");
      json_builder_set_member_name (builder, "rttMs");
      if (g_variant_dict_lookup (&dict, "rttMs", "d", &rtt_ms))
        /* To the microsecond: the double's own digits are noise. */
        json_builder_add_double_value (builder, (double) (gint64) (rtt_ms * 1000 + 0.5) / 1000);
      else
        json_builder_add_null_value (builder);
      json_add_dict_string (builder, &dict, "endpoint");
      json_add_dict_uint (builder, &dict, "txBytes");
      json_add_dict_uint (builder, &dict, "rxBytes");
      json_add_dict_uint (builder, &dict, "rotations");
      json_builder_set_member_name (builder, "lastHandshake");
      if (g_variant_dict_lookup (&dict, "lastHandshake", "x", &handshake) && handshake > 0)
        {
          g_autofree char *when = format_handshake_time (handshake);

          if (when != NULL)
            json_builder_add_string_value (builder, when);
          else
            json_builder_add_null_value (builder);
        }
      else
        json_builder_add_null_value (builder);
      json_add_dict_uint (builder, &dict, "directAttempts");
      json_add_dict_uint (builder, &dict, "pathChanges");
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  print_json (builder);
}

/* A row like `tailscale status`: dot, name, type, id, then what is going on. */
static void
print_status_text (GVariant *self,
                   GVariant *peers)
{
  g_auto (GVariantDict) self_dict;
  GVariantIter iter;
  GVariant    *peer;
  const char  *self_id;

  g_variant_dict_init (&self_dict, self);
  self_id = dict_string (&self_dict, "id");
  g_print ("%s (%s), UDP port %u\n", dict_string (&self_dict, "name"),
           self_id != NULL ? self_id : "LAN only", (unsigned) dict_uint (&self_dict, "port"));
  if (g_variant_n_children (peers) == 0)
    {
      g_print ("No other devices.\n");
      return;
    }
  g_variant_iter_init (&iter, peers);
  while ((peer = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto (GVariantDict) dict;
      g_autoptr (GString) what = g_string_new (NULL);
      gboolean    online = FALSE;
      double      rtt_ms = -1;
      const char *state, *endpoint;

      g_variant_dict_init (&dict, peer);
      g_variant_unref (peer);
      (void) g_variant_dict_lookup (&dict, "online", "b", &online);
      state = dict_string (&dict, "state");
      endpoint = dict_string (&dict, "endpoint");
      if (g_strcmp0 (state, "connected") == 0)
        {
          g_autofree char *tx = g_format_size (dict_uint (&dict, "txBytes"));
          g_autofree char *rx = g_format_size (dict_uint (&dict, "rxBytes"));

          g_string_append_printf (what, "active; %s", dict_string (&dict, "path"));
          if (endpoint != NULL)
            g_string_append_printf (what, " %s", endpoint);
          if (g_variant_dict_lookup (&dict, "rttMs", "d", &rtt_ms))
            g_string_append_printf (what, ", %.2f ms", rtt_ms);
          g_string_append_printf (what, ", tx %s rx %s", tx, rx);
        }
      else if (g_strcmp0 (state, "connecting") == 0)
        g_string_append (what, "connecting");
      else
        g_string_append (what, online ? "idle" : "offline");
      g_print ("%s %-20s %-8s %s  %s\n", online ? "●" : "○", dict_string (&dict, "name"),
               dict_string (&dict, "type"), dict_string (&dict, "id"), what->str);
    }
}

static int
cmd_status (const GlobalOptions *global,
            int                  argc,
            char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GDBusConnection) connection = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) self = NULL;
  g_autoptr (GVariant) peers = NULL;
  g_autoptr (GError) error = NULL;
  gboolean           json = FALSE;
  GAsyncResult      *slot = NULL;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
                                "Shows the peers of the pipermesh running for this state dir\n"
                                "(“pipermesh up” or “pipermesh connect”): state, path, round trip,\n"
                                "endpoint and traffic. Exits with 1 when none is running.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("status", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      g_autofree char *message = g_strdup_printf ("status takes no arguments (got “%s”)", argv[1]);
      return usage_error ("status", message);
    }

  connection = control_connect (global);
  if (connection == NULL)
    return EXIT_FAILED;
  pm_control_get_status_async (connection, NULL, on_async_done, &slot);
  result = wait_for (&slot);
  reply = pm_control_get_status_finish (connection, result, &error);
  if (reply == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  g_variant_get (reply, "(@a{sv}@aa{sv})", &self, &peers);
  if (json)
    print_status_json (self, peers);
  else
    print_status_text (self, peers);
  return EXIT_OK;
}

/* The time between two pings. */
#define PING_INTERVAL_MS 1000
/* Most pings one command sends. */
#define PING_MAX_COUNT 10000

/* Finds a peer's name and id in a GetStatus answer, by id or name. */
static gboolean
status_find_peer (GVariant   *reply,
                  const char *device,
                  char      **id,
                  char      **name)
{
  g_autoptr (GVariant) peers = g_variant_get_child_value (reply, 1);
  GVariantIter iter;
  GVariant    *peer;

  g_variant_iter_init (&iter, peers);
  while ((peer = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto (GVariantDict) dict;

      g_variant_dict_init (&dict, peer);
      g_variant_unref (peer);
      if (g_strcmp0 (dict_string (&dict, "id"), device) == 0 ||
          g_strcmp0 (dict_string (&dict, "name"), device) == 0)
        {
          *id = g_strdup (dict_string (&dict, "id"));
          *name = g_strdup (dict_string (&dict, "name"));
          return TRUE;
        }
    }
  return FALSE;
}

static int
cmd_ping (const GlobalOptions *global,
          int                  argc,
          char               **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GDBusConnection) connection = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autofree char   *id = NULL;
  g_autofree char   *name = NULL;
  gboolean           json = FALSE;
  int                count = 4;
  int                pongs = 0;
  double             min = 0, max = 0, sum = 0;
  GAsyncResult      *slot = NULL;
  const char        *device;
  const GOptionEntry entries[] = {
    { "count", 'c', 0, G_OPTION_ARG_INT, &count, "Send N pings, one a second (default: 4)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL },
  };

  context = g_option_context_new ("DEVICE");
  g_option_context_set_summary (context,
                                "Pings DEVICE (a name or an id) through the pipermesh running for\n"
                                "this state dir, over the session's current path, and prints each\n"
                                "round trip and the path it took. Brings a session up first if\n"
                                "there is none. Exits with 1 when no pong came back.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!parse_command_options ("ping", context, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2)
    return usage_error ("ping", "ping takes one device name or id");
  if (count < 1 || count > PING_MAX_COUNT)
    return usage_error ("ping", "--count wants a number from 1 to 10000");
  device = argv[1];

  connection = control_connect (global);
  if (connection == NULL)
    return EXIT_FAILED;
  pm_control_get_status_async (connection, NULL, on_async_done, &slot);
  result = wait_for (&slot);
  reply = pm_control_get_status_finish (connection, result, &error);
  if (reply == NULL)
    {
      g_printerr ("pipermesh: %s\n", error->message);
      return EXIT_FAILED;
    }
  if (!status_find_peer (reply, device, &id, &name))
    {
      g_printerr ("pipermesh: unknown device “%s”: no other device of this account has that "
                  "name or id (“pipermesh status” lists them)\n",
                  device);
      return EXIT_FAILED;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "device");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, id);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, name);
  json_builder_end_object (builder);
  json_builder_set_member_name (builder, "pings");
  json_builder_begin_array (builder);
  for (int seq = 1; seq <= count; seq++)
    {
      g_autoptr (GAsyncResult) ping_result = NULL;
      g_autoptr (GError) ping_error = NULL;
      g_autofree char *path = NULL;
      double           rtt_ms = 0;

      if (seq > 1)
        {
          gboolean waited = FALSE;

          g_timeout_add (PING_INTERVAL_MS, on_drain_timeout, &waited);
          while (!waited)
            g_main_context_iteration (NULL, TRUE);
        }
      pm_control_ping_async (connection, id, NULL, on_async_done, &slot);
      ping_result = wait_for (&slot);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "seq");
      json_builder_add_int_value (builder, seq);
      if (!pm_control_ping_finish (connection, ping_result, &rtt_ms, &path, &ping_error))
        {
          if (!json)
            g_print ("no pong from %s: %s\n", name, ping_error->message);
          json_builder_set_member_name (builder, "error");
          json_builder_add_string_value (builder, ping_error->message);
          json_builder_end_object (builder);
          if (g_error_matches (ping_error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_UNKNOWN_DEVICE) ||
              g_dbus_connection_is_closed (connection))
            {
              if (json)
                g_printerr ("pipermesh: %s\n", ping_error->message);
              return EXIT_FAILED;
            }
          continue;
        }
      if (!json)
        g_print ("pong from %s via %s in %.2f ms\n", name, path, rtt_ms);
      json_builder_set_member_name (builder, "rttMs");
      json_builder_add_double_value (builder, (double) (gint64) (rtt_ms * 1000 + 0.5) / 1000);
      json_builder_set_member_name (builder, "path");
      json_builder_add_string_value (builder, path);
      json_builder_end_object (builder);
      min = pongs == 0 ? rtt_ms : MIN (min, rtt_ms);
      max = pongs == 0 ? rtt_ms : MAX (max, rtt_ms);
      sum += rtt_ms;
      pongs++;
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "sent");
  json_builder_add_int_value (builder, count);
  json_builder_set_member_name (builder, "received");
  json_builder_add_int_value (builder, pongs);
  json_builder_set_member_name (builder, "rttMs");
  if (pongs > 0)
    {
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "min");
      json_builder_add_double_value (builder, min);
      json_builder_set_member_name (builder, "avg");
      json_builder_add_double_value (builder, sum / pongs);
      json_builder_set_member_name (builder, "max");
      json_builder_add_double_value (builder, max);
      json_builder_end_object (builder);
    }
  else
    json_builder_add_null_value (builder);
  json_builder_end_object (builder);

  if (json)
    print_json (builder);
  else
    {
      g_print ("%d pings to %s, %d pongs, %d%% lost", count, name, pongs,
               (count - pongs) * 100 / count);
      if (pongs > 0)
        g_print ("; round trip min/avg/max %.2f/%.2f/%.2f ms", min, sum / pongs, max);
      g_print ("\n");
    }
  return pongs > 0 ? EXIT_OK : EXIT_FAILED;
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
