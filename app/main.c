/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pipermesh-app: the desktop app (GTK 4, libadwaita).
 */
#define G_LOG_DOMAIN "pipermesh-app"

#include <glib/gi18n.h>
#include <locale.h>

#include "pm-application.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr (PmApplication) app = NULL;
  GSettingsSchemaSource *source;
  g_autoptr (GSettingsSchema) schema = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, PM_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  /* Without its schema GSettings would abort with a cryptic message. */
  source = g_settings_schema_source_get_default ();
  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, PM_APP_ID, TRUE);
  if (schema == NULL)
    {
      g_printerr ("pipermesh-app: the GSettings schema %s is not installed. Install the app "
                  "(meson install), or run it from the build tree with “meson devenv -C BUILDDIR "
                  "pipermesh-app”.\n",
                  PM_APP_ID);
      return 1;
    }

  app = pm_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);
  return status != 0 ? status : pm_application_get_exit_status (app);
}
