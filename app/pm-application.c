/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-application.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <signal.h>

#include "pm-notifier.h"
#include "pm-pair-dialog.h"
#include "pm-screenshot.h"
#include "pm-tray.h"
#include "pm-window.h"

struct _PmApplication {
  AdwApplication parent_instance;

  GSettings  *settings;
  PmRuntime  *runtime;
  PmWindow   *window;
  PmTray     *tray;     /* the status icon (StatusNotifierItem on Linux) */
  PmNotifier *notifier; /* connection lost/restored, pairing requests */
  int         exit_status;

  /* Options */
  gboolean demo;
  gboolean autostart;
  char    *state_dir;
  char    *screenshot_dir;
  gboolean pair_show; /* with screenshot_dir: the pairing test (pm_pair_dialog_run_test) */
  char    *pair_scan; /* the same, pairing with the code in this picture */
  gboolean held;      /* started hidden: the mesh runs without a window */
  unsigned signal_sources[2];
};

G_DEFINE_FINAL_TYPE (PmApplication, pm_application, ADW_TYPE_APPLICATION)

static void update_actions (PmApplication *self);

/* Replaces the runtime (the real mesh or the demo) and shows it. */
static void
set_runtime (PmApplication *self,
             PmRuntime     *runtime)
{
  if (self->runtime != NULL)
    pm_runtime_stop (self->runtime);
  g_set_object (&self->runtime, runtime);
  if (runtime != NULL && self->tray != NULL)
    {
      g_object_bind_property (runtime, "mesh", self->tray, "mesh", G_BINDING_SYNC_CREATE);
      g_object_bind_property (runtime, "mesh", self->notifier, "mesh", G_BINDING_SYNC_CREATE);
    }
  if (self->window != NULL)
    pm_window_set_runtime (self->window, runtime);
  if (runtime != NULL)
    pm_runtime_start (runtime);
  update_actions (self);
}

static void
start_real (PmApplication *self)
{
  g_autoptr (PmRuntime) runtime =
    pm_runtime_new (self->state_dir, g_settings_get_boolean (self->settings, "lan-only"));

  set_runtime (self, runtime);
}

static void
start_demo (PmApplication *self)
{
  g_autoptr (PmRuntime) runtime = pm_runtime_new_demo ();

  set_runtime (self, runtime);
}

/* --- actions ------------------------------------------------------------------- */

static void
update_actions (PmApplication *self)
{
  gboolean demo = self->runtime != NULL && pm_runtime_get_demo (self->runtime);
  GAction *action;

  action = g_action_map_lookup_action (G_ACTION_MAP (self), "demo");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (action), !demo);
  action = g_action_map_lookup_action (G_ACTION_MAP (self), "leave-demo");
  g_simple_action_set_enabled (G_SIMPLE_ACTION (action), demo);
}

static void
action_demo (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  start_demo (user_data);
}

static void
action_leave_demo (GSimpleAction *action,
                   GVariant      *parameter,
                   gpointer       user_data)
{
  start_real (user_data);
}

static void
action_restart (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  PmApplication *self = user_data;

  if (self->runtime != NULL && pm_runtime_get_demo (self->runtime))
    start_demo (self);
  else
    start_real (self);
}

static void
action_about (GSimpleAction *action,
              GVariant      *parameter,
              gpointer       user_data)
{
  PmApplication *self = user_data;
  const char    *developers[] = { "The PiperMesh developers", NULL };

  adw_show_about_window (self->window != NULL ? GTK_WINDOW (self->window) : NULL,
                         "application-name", _ ("PiperMesh"),
                         "application-icon", PM_APP_ID,
                         "version", PM_VERSION,
                         "comments", _ ("Your devices in one private, end-to-end encrypted mesh"),
                         "developers", developers,
                         "license-type", GTK_LICENSE_GPL_3_0,
                         /* TRANSLATORS: your name(s), one per line */
                         "translator-credits", _ ("translator-credits"),
                         NULL);
}

static void
action_quit (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

/* The tray's "Pair a Device…": the window, then its pairing wizard. */
static void
action_pair (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  PmApplication *self = user_data;

  g_application_activate (G_APPLICATION (self));
  if (self->window != NULL)
    gtk_widget_activate_action (GTK_WIDGET (self->window), "win.pair", NULL);
}

static const GActionEntry app_actions[] = {
  { "demo", action_demo, NULL, NULL, NULL, { 0 } },
  { "leave-demo", action_leave_demo, NULL, NULL, NULL, { 0 } },
  { "restart", action_restart, NULL, NULL, NULL, { 0 } },
  { "pair", action_pair, NULL, NULL, NULL, { 0 } },
  { "about", action_about, NULL, NULL, NULL, { 0 } },
  { "quit", action_quit, NULL, NULL, NULL, { 0 } },
};

/* --- GApplication ---------------------------------------------------------------- */

static int
pm_application_handle_local_options (GApplication *application,
                                     GVariantDict *options)
{
  PmApplication *self = PM_APPLICATION (application);

  g_variant_dict_lookup (options, "demo", "b", &self->demo);
  g_variant_dict_lookup (options, "autostart", "b", &self->autostart);
  g_variant_dict_lookup (options, "state-dir", "^ay", &self->state_dir);
  g_variant_dict_lookup (options, "screenshot-dir", "^ay", &self->screenshot_dir);
  g_variant_dict_lookup (options, "pair-show", "b", &self->pair_show);
  g_variant_dict_lookup (options, "pair-scan", "^ay", &self->pair_scan);
  /* A demo, another state directory or a screenshot run is a process of its
   * own, never handed to an app already running for the user. */
  if (self->demo || self->state_dir != NULL || self->screenshot_dir != NULL)
    g_application_set_flags (application,
                             g_application_get_flags (application) | G_APPLICATION_NON_UNIQUE);
  return -1;
}

/* SIGINT and SIGTERM (a logout, systemd, Ctrl-C) quit cleanly: the mesh
 * stops and the control socket is removed. */
static gboolean
on_stop_signal (gpointer user_data)
{
  g_application_quit (G_APPLICATION (user_data));
  return G_SOURCE_CONTINUE;
}

static void
pm_application_startup (GApplication *application)
{
  PmApplication    *self = PM_APPLICATION (application);
  const char *const quit_accels[] = { "<Control>q", NULL };

  G_APPLICATION_CLASS (pm_application_parent_class)->startup (application);

  g_set_application_name (_ ("PiperMesh"));
  gtk_window_set_default_icon_name (PM_APP_ID);
  self->settings = g_settings_new (PM_APP_ID);
  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions, G_N_ELEMENTS (app_actions),
                                   self);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.quit", quit_accels);
  update_actions (self);
  self->tray = pm_tray_new (application, NULL);
  self->notifier = pm_notifier_new (application, NULL);
  self->signal_sources[0] = g_unix_signal_add (SIGINT, on_stop_signal, self);
  self->signal_sources[1] = g_unix_signal_add (SIGTERM, on_stop_signal, self);
}

static void
pm_application_activate (GApplication *application)
{
  PmApplication *self = PM_APPLICATION (application);
  gboolean       first = self->runtime == NULL;

  if (first)
    {
      if (self->demo || self->screenshot_dir != NULL)
        start_demo (self);
      else
        start_real (self);
    }

  /* Started with the session and asked to stay hidden: the mesh runs, and
   * the window opens when the app is started again. */
  if (first && self->autostart && self->screenshot_dir == NULL &&
      g_settings_get_boolean (self->settings, "start-hidden"))
    {
      g_application_hold (application);
      self->held = TRUE;
      return;
    }
  if (self->held)
    {
      g_application_release (application);
      self->held = FALSE;
    }

  if (self->window == NULL)
    {
      self->window = pm_window_new (GTK_APPLICATION (self));
      g_object_add_weak_pointer (G_OBJECT (self->window), (gpointer *) &self->window);
      pm_window_set_runtime (self->window, self->runtime);
      if (self->screenshot_dir != NULL && (self->pair_show || self->pair_scan != NULL))
        {
          g_autofree char *dir = self->state_dir != NULL ? g_strdup (self->state_dir)
                                                         : pm_identity_default_state_dir ();

          gtk_window_present (GTK_WINDOW (self->window));
          pm_pair_dialog_run_test (pm_pair_dialog_new (GTK_WINDOW (self->window), dir, NULL),
                                   self->screenshot_dir, self->pair_scan);
        }
      else if (self->screenshot_dir != NULL)
        pm_screenshot_start (self, self->window, self->screenshot_dir);
    }
  gtk_window_present (GTK_WINDOW (self->window));
}

/* How many idle main-loop turns the mesh gets to finish its cancelled work
 * after it stopped, before a screenshot run checks that it was freed. */
#define SHUTDOWN_DRAIN_ITERATIONS 200

static void
pm_application_shutdown (GApplication *application)
{
  PmApplication *self = PM_APPLICATION (application);
  PmRuntime     *runtime = self->runtime;
  PmMesh        *mesh = runtime != NULL ? pm_runtime_get_mesh (runtime) : NULL;

  for (size_t i = 0; i < G_N_ELEMENTS (self->signal_sources); i++)
    g_clear_handle_id (&self->signal_sources[i], g_source_remove);
  /* A screenshot run (the app test) also checks that the runtime and the
   * mesh were freed: the app holds no reference it forgot. LeakSanitizer
   * cannot say so under GTK (tests/meson.build, "app"). */
  if (self->screenshot_dir != NULL)
    {
      if (runtime != NULL)
        g_object_add_weak_pointer (G_OBJECT (runtime), (gpointer *) &runtime);
      if (mesh != NULL)
        g_object_add_weak_pointer (G_OBJECT (mesh), (gpointer *) &mesh);
    }
  g_clear_object (&self->tray);
  g_clear_object (&self->notifier);
  if (self->window != NULL)
    pm_window_set_runtime (self->window, NULL);
  if (self->runtime != NULL)
    pm_runtime_stop (self->runtime);
  g_clear_object (&self->runtime);
  if (self->screenshot_dir != NULL)
    {
      for (int i = 0; i < SHUTDOWN_DRAIN_ITERATIONS && (runtime != NULL || mesh != NULL); i++)
        g_main_context_iteration (NULL, FALSE);
      if (runtime != NULL || mesh != NULL)
        {
          g_printerr ("pipermesh-app: still alive after shutdown:%s%s\n",
                      runtime != NULL ? " the runtime" : "", mesh != NULL ? " the mesh" : "");
          self->exit_status = 1;
        }
      else
        g_print ("pipermesh-app: the runtime and the mesh were freed\n");
      if (runtime != NULL)
        g_object_remove_weak_pointer (G_OBJECT (runtime), (gpointer *) &runtime);
      if (mesh != NULL)
        g_object_remove_weak_pointer (G_OBJECT (mesh), (gpointer *) &mesh);
    }
  G_APPLICATION_CLASS (pm_application_parent_class)->shutdown (application);
}

static void
pm_application_finalize (GObject *object)
{
  PmApplication *self = PM_APPLICATION (object);

  g_clear_object (&self->runtime);
  g_clear_object (&self->settings);
  g_free (self->state_dir);
  g_free (self->screenshot_dir);
  g_free (self->pair_scan);
  G_OBJECT_CLASS (pm_application_parent_class)->finalize (object);
}

static void
pm_application_class_init (PmApplicationClass *klass)
{
  GObjectClass      *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = pm_application_finalize;
  app_class->handle_local_options = pm_application_handle_local_options;
  app_class->startup = pm_application_startup;
  app_class->activate = pm_application_activate;
  app_class->shutdown = pm_application_shutdown;
}

static void
pm_application_init (PmApplication *self)
{
  const GOptionEntry entries[] = {
    { "demo", 0, 0, G_OPTION_ARG_NONE, NULL,
      N_ ("Start a demo server and two demo devices inside the app (loopback only)"), NULL },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, NULL,
      N_ ("Use this state directory instead of the default one"), N_ ("DIR") },
    { "autostart", 0, 0, G_OPTION_ARG_NONE, NULL,
      N_ ("Started with the session: stay hidden if the start-hidden setting says so"), NULL },
    { "screenshot-dir", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, NULL,
      "Run the demo, save screenshots and report.json into DIR, then quit", "DIR" },
    { "pair-show", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, NULL,
      "With --screenshot-dir: show a pairing code on 127.0.0.1 for the --state-dir, save "
      "DIR/pair.png, accept the device that scans it, write DIR/pair-report.json, then quit",
      NULL },
    { "pair-scan", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, NULL,
      "With --screenshot-dir: try the camera, then pair with the code in the picture FILE for "
      "the --state-dir, write DIR/pair-report.json, then quit",
      "FILE" },
    { NULL },
  };

  g_application_add_main_option_entries (G_APPLICATION (self), entries);
  g_application_set_option_context_summary (G_APPLICATION (self),
                                            _ ("Your devices in one private, end-to-end encrypted mesh."));
}

PmApplication *
pm_application_new (void)
{
  return g_object_new (PM_TYPE_APPLICATION,
                       "application-id", PM_APP_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       "resource-base-path", "/org/pipermesh/PiperMesh",
                       NULL);
}

PmRuntime *
pm_application_get_runtime (PmApplication *self)
{
  g_return_val_if_fail (PM_IS_APPLICATION (self), NULL);
  return self->runtime;
}

int
pm_application_get_exit_status (PmApplication *self)
{
  g_return_val_if_fail (PM_IS_APPLICATION (self), 1);
  return self->exit_status;
}

void
pm_application_set_exit_status (PmApplication *self,
                                int            status)
{
  g_return_if_fail (PM_IS_APPLICATION (self));
  self->exit_status = status;
}
