/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-screenshot.h"

#include <json-glib/json-glib.h>

#include "pm-app-format.h"
#include "pm-app-limits.h"

/* How often the driver looks at the window while it waits for a state. */
#define CHECK_INTERVAL_MS 100

typedef enum {
  STEP_WAIT_PATH,
  STEP_WAIT_DEVICE,
  STEP_WAIT_SELF,
  STEP_DONE,
} Step;

typedef struct {
  PmApplication *app;
  PmWindow      *window;
  char          *dir;
  Step           step;
  int64_t        started_us;
  unsigned       check_source;
  unsigned       tick_id;
  unsigned       frames;
  PmPeer        *peer;
  JsonBuilder   *report;
  gboolean       check_started;
} Run;

static void run_check (Run *run);

static void
run_free (Run *run)
{
  g_clear_handle_id (&run->check_source, g_source_remove);
  if (run->tick_id != 0)
    gtk_widget_remove_tick_callback (GTK_WIDGET (run->window), run->tick_id);
  g_clear_object (&run->peer);
  g_clear_object (&run->report);
  g_object_unref (run->window);
  g_object_unref (run->app);
  g_free (run->dir);
  g_free (run);
}

gboolean
pm_screenshot_save_widget (GtkWidget  *widget,
                           const char *path,
                           GError    **error)
{
  g_autoptr (GdkPaintable) paintable = NULL;
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  GtkSnapshot *snapshot;
  GskRenderer *renderer;
  int          width = gtk_widget_get_width (widget);
  int          height = gtk_widget_get_height (widget);

  g_return_val_if_fail (GTK_IS_WIDGET (widget), FALSE);

  renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  if (width <= 0 || height <= 0 || renderer == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED, "The window is not shown");
      return FALSE;
    }
  paintable = gtk_widget_paintable_new (widget);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snapshot, width, height);
  node = gtk_snapshot_free_to_node (snapshot);
  if (node == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED, "The window drew nothing");
      return FALSE;
    }
  texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, width, height));
  if (!gdk_texture_save_to_png (texture, path))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Could not write %s", path);
      return FALSE;
    }
  return TRUE;
}

static void
finish (Run        *run,
        const char *error)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autofree char *path = g_build_filename (run->dir, "report.json", NULL);

  json_builder_set_member_name (run->report, "elapsed_s");
  json_builder_add_double_value (run->report,
                                 (double) (g_get_monotonic_time () - run->started_us) /
                                   G_USEC_PER_SEC);
  json_builder_set_member_name (run->report, "error");
  if (error != NULL)
    json_builder_add_string_value (run->report, error);
  else
    json_builder_add_null_value (run->report);
  json_builder_end_object (run->report);
  root = json_builder_get_root (run->report);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  if (!json_generator_to_file (generator, path, &local_error))
    g_printerr ("pipermesh-app: %s\n", local_error->message);
  if (error != NULL)
    {
      g_printerr ("pipermesh-app: screenshots: %s\n", error);
      pm_application_set_exit_status (run->app, 1);
    }
  else
    g_print ("pipermesh-app: screenshots and report.json in %s\n", run->dir);
  run->step = STEP_DONE;
  g_application_quit (G_APPLICATION (run->app));
}

static void
add_string (Run        *run,
            const char *name,
            const char *value)
{
  json_builder_set_member_name (run->report, name);
  if (value != NULL)
    json_builder_add_string_value (run->report, value);
  else
    json_builder_add_null_value (run->report);
}

/* Renders the window. FALSE if it has not drawn yet (try again in a few
 * frames); on any other failure the run ends. */
static gboolean
shoot (Run        *run,
       const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *file = g_strconcat (name, ".png", NULL);
  g_autofree char *path = g_build_filename (run->dir, file, NULL);

  if (!pm_screenshot_save_widget (GTK_WIDGET (run->window), path, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED))
        finish (run, error->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
timed_out (Run *run)
{
  return g_get_monotonic_time () - run->started_us > PM_APP_SCREENSHOT_TIMEOUT_S * G_USEC_PER_SEC;
}

/* Shoots the current step's page and asks for the next one. FALSE if the
 * window has not drawn yet. */
static gboolean
shoot_step (Run *run)
{
  switch (run->step)
    {
      case STEP_WAIT_PATH: {
        PmPeerRow *row = pm_window_find_row (run->window, run->peer);

        if (!shoot (run, "main-window"))
          return FALSE;
        add_string (run, "main-window", "main-window.png");
        add_string (run, "row_title", adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)));
        add_string (run, "row_subtitle", adw_action_row_get_subtitle (ADW_ACTION_ROW (row)));
        add_string (run, "path", pm_path_type_to_string (pm_peer_get_path_type (run->peer)));
        json_builder_set_member_name (run->report, "rtt_ms");
        json_builder_add_double_value (run->report, pm_peer_get_rtt_ms (run->peer));
        run->step = STEP_WAIT_DEVICE;
        pm_window_show_peer (run->window, run->peer);
        return TRUE;
      }
      case STEP_WAIT_DEVICE: {
        PmDevicePage *page = pm_window_get_device_page (run->window);

        if (!shoot (run, "device"))
          return FALSE;
        add_string (run, "device", "device.png");
        add_string (run, "device_status", pm_device_page_get_value (page, "status"));
        add_string (run, "device_path", pm_device_page_get_value (page, "path"));
        add_string (run, "device_rtt", pm_device_page_get_value (page, "rtt"));
        add_string (run, "device_fingerprint", pm_device_page_get_value (page, "fingerprint"));
        run->step = STEP_WAIT_SELF;
        pm_window_show_self (run->window);
        return TRUE;
      }
      case STEP_WAIT_SELF: {
        PmSelfPage *page = pm_window_get_self_page (run->window);

        if (!shoot (run, "this-device"))
          return FALSE;
        add_string (run, "this-device", "this-device.png");
        add_string (run, "self_fingerprint", pm_self_page_get_value (page, "fingerprint"));
        add_string (run, "netcheck_udp", pm_self_page_get_value (page, "udp"));
        add_string (run, "netcheck_mapped", pm_self_page_get_value (page, "mapped"));
        add_string (run, "netcheck_mapping", pm_self_page_get_value (page, "mapping"));
        add_string (run, "netcheck_rtt", pm_self_page_get_value (page, "stun-rtt"));
        finish (run, NULL);
        return TRUE;
      }
    case STEP_DONE:
    default:
      return TRUE;
    }
}

static gboolean
on_tick (GtkWidget     *widget,
         GdkFrameClock *clock,
         gpointer       user_data)
{
  Run *run = user_data;

  /* This Device is shot scrolled down to the network check's results. */
  if (run->step == STEP_WAIT_SELF)
    pm_self_page_scroll_to_end (pm_window_get_self_page (run->window));
  if (++run->frames < PM_APP_SCREENSHOT_SETTLE_FRAMES)
    return G_SOURCE_CONTINUE;
  if (timed_out (run))
    {
      run->tick_id = 0;
      finish (run, "the window never drew");
      return G_SOURCE_REMOVE;
    }
  if (!shoot_step (run) && run->step != STEP_DONE)
    {
      run->frames = 0; /* not drawn yet: a few more frames */
      return G_SOURCE_CONTINUE;
    }
  run->tick_id = 0;
  if (run->step != STEP_DONE)
    run_check (run);
  return G_SOURCE_REMOVE;
}

/* Has the window reached what this step waits for? */
static gboolean
reached (Run *run)
{
  PmRuntime *runtime = pm_window_get_runtime (run->window);
  PmMesh    *mesh = runtime != NULL ? pm_runtime_get_mesh (runtime) : NULL;

  switch (run->step)
    {
      case STEP_WAIT_PATH: {
        GListModel      *peers = mesh != NULL ? pm_mesh_get_peers (mesh) : NULL;
        PmPeerRow       *row;
        g_autofree char *summary = NULL;

        unsigned n = peers != NULL ? g_list_model_get_n_items (peers) : 0;

        for (unsigned i = 0; run->peer == NULL && i < n; i++)
          {
            g_autoptr (PmPeer) peer = g_list_model_get_item (peers, i);

            if (pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED)
              run->peer = g_steal_pointer (&peer);
          }
        if (run->peer == NULL || pm_peer_get_path_type (run->peer) == PM_PATH_NONE ||
            pm_peer_get_rtt_ms (run->peer) < 0 ||
            g_strcmp0 (pm_window_get_visible_page (run->window), "list") != 0)
          return FALSE;
        row = pm_window_find_row (run->window, run->peer);
        summary = pm_app_peer_summary (run->peer, g_get_real_time (), NULL);
        return row != NULL &&
               g_strcmp0 (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), summary) == 0;
      }
    case STEP_WAIT_DEVICE:
      return g_strcmp0 (pm_window_get_visible_page (run->window), "device") == 0;
      case STEP_WAIT_SELF: {
        PmSelfPage *page = pm_window_get_self_page (run->window);

        if (g_strcmp0 (pm_window_get_visible_page (run->window), "self") != 0)
          return FALSE;
        if (runtime == NULL || pm_runtime_get_stun_server (runtime, 0) == NULL)
          return TRUE;
        if (!run->check_started)
          {
            run->check_started = TRUE;
            pm_self_page_run_check (page);
          }
        return !pm_self_page_get_checking (page);
      }
    case STEP_DONE:
    default:
      return FALSE;
    }
}

static gboolean
on_check (gpointer user_data)
{
  Run *run = user_data;

  if (run->step == STEP_DONE)
    {
      run->check_source = 0;
      return G_SOURCE_REMOVE;
    }
  if (timed_out (run))
    {
      static const char *const waits[] = {
        "no peer showed a path and a round trip",
        "the device page did not open",
        "the This Device page or its network check did not finish",
      };

      run->check_source = 0;
      finish (run, waits[MIN (run->step, G_N_ELEMENTS (waits) - 1)]);
      return G_SOURCE_REMOVE;
    }
  if (!reached (run))
    return G_SOURCE_CONTINUE;
  /* Let the page draw (and any transition end) before rendering it. */
  run->check_source = 0;
  run->frames = 0;
  run->tick_id = gtk_widget_add_tick_callback (GTK_WIDGET (run->window), on_tick, run, NULL);
  return G_SOURCE_REMOVE;
}

static void
run_check (Run *run)
{
  g_assert (run->check_source == 0);
  run->check_source = g_timeout_add (CHECK_INTERVAL_MS, on_check, run);
}

static void
on_shutdown (GApplication *app,
             Run          *run)
{
  g_signal_handlers_disconnect_by_data (app, run);
  run_free (run);
}

void
pm_screenshot_start (PmApplication *app,
                     PmWindow      *window,
                     const char    *dir)
{
  Run *run;

  g_return_if_fail (PM_IS_APPLICATION (app));
  g_return_if_fail (PM_IS_WINDOW (window));
  g_return_if_fail (dir != NULL);

  /* Pages switch at once: what is rendered is the page, not a transition. */
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);
  g_mkdir_with_parents (dir, 0755);
  run = g_new0 (Run, 1);
  run->app = g_object_ref (app);
  run->window = g_object_ref (window);
  run->dir = g_strdup (dir);
  run->started_us = g_get_monotonic_time ();
  run->report = json_builder_new ();
  json_builder_begin_object (run->report);
  g_signal_connect (app, "shutdown", G_CALLBACK (on_shutdown), run);
  run_check (run);
}
