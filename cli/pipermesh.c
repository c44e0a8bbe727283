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

#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>

#include "pm-identity.h"

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
static int cmd_help (const GlobalOptions *global, int argc, char **argv);

static const Command commands[] = {
  { "id", cmd_id, "Show this device's identity (made on first run)" },
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
