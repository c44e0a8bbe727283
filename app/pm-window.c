/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-window.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"
#include "pm-pair-dialog.h"

struct _PmWindow {
  AdwApplicationWindow parent_instance;

  GSettings  *settings;
  PmRuntime  *runtime;
  GListModel *peers;   /* the bound model: the mesh's peers, or NULL */
  GPtrArray  *watched; /* PmPeer: notify handlers for the host choice */
  PmPeer     *host;    /* (weak: owned by the model) */
  char       *last_problem;

  AdwToastOverlay *toast_overlay;
  AdwLeaflet      *leaflet;
  AdwWindowTitle  *window_title;
  GtkRevealer     *demo_bar;
  GtkStack        *stack;
  GtkSpinner      *spinner;
  AdwStatusPage   *failed_page;
  GtkButton       *host_button;
  GtkListBox      *peer_list;
  GtkLabel        *footer_label;
  PmDevicePage    *device_page;
  PmSelfPage      *self_page;
};

G_DEFINE_FINAL_TYPE (PmWindow, pm_window, ADW_TYPE_APPLICATION_WINDOW)

static void add_problem_toast (PmWindow *self);

/* --- the host button ------------------------------------------------------------
 *
 * "Connect to <name>" offers the one connection most people open this app
 * for: the machine they reach from a laptop or a phone. PmPeer does not tell
 * which services a peer offers, so the choice is by what the server says: the
 * first peer in the list that is online and a computer (device type mac,
 * linux or windows); if no computer is online, the first online peer. The
 * button shows only while that peer is not connected: once it connects, its
 * row says the path and round trip, and its button disconnects.
 */

static PmPeer *
choose_host (GListModel *peers)
{
  unsigned n = peers != NULL ? g_list_model_get_n_items (peers) : 0;
  PmPeer  *first_online = NULL;

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (peers, i);

      if (!pm_app_peer_is_up (peer))
        continue;
      if (pm_app_device_is_computer (pm_peer_get_device_type (peer)))
        return peer; /* the model holds a reference */
      if (first_online == NULL)
        first_online = peer;
    }
  return first_online;
}

static void
update_host (PmWindow *self)
{
  PmPeer *host = choose_host (self->peers);

  self->host = host;
  if (host != NULL)
    {
      g_autofree char *label = g_strdup_printf (_ ("Connect to %s"), pm_peer_get_name (host));

      gtk_button_set_label (self->host_button, label);
    }
  gtk_widget_set_visible (GTK_WIDGET (self->host_button),
                          host != NULL && pm_peer_get_state (host) == PM_PEER_STATE_IDLE);
}

static void
on_host_clicked (PmWindow *self)
{
  if (self->host != NULL)
    pm_peer_connect (self->host);
}

static void
on_watched_peer_notify (PmPeer     *peer,
                        GParamSpec *pspec,
                        PmWindow   *self)
{
  update_host (self);
}

static void
unwatch_peers (PmWindow *self)
{
  for (unsigned i = 0; i < self->watched->len; i++)
    g_signal_handlers_disconnect_by_func (g_ptr_array_index (self->watched, i),
                                          on_watched_peer_notify, self);
  g_ptr_array_set_size (self->watched, 0);
}

static void
watch_peers (PmWindow *self)
{
  unsigned n = self->peers != NULL ? g_list_model_get_n_items (self->peers) : 0;

  unwatch_peers (self);
  for (unsigned i = 0; i < n; i++)
    {
      PmPeer *peer = g_list_model_get_item (self->peers, i);

      for (const char *const *p = (const char *const[]){ "notify::online", "notify::state",
                                                         "notify::name", "notify::device-type",
                                                         NULL };
           *p != NULL; p++)
        g_signal_connect_object (peer, *p, G_CALLBACK (on_watched_peer_notify), self, 0);
      g_ptr_array_add (self->watched, peer);
    }
}

/* --- pages --------------------------------------------------------------------- */

static void
update_page (PmWindow *self)
{
  const char *page = "starting";
  unsigned    n = self->peers != NULL ? g_list_model_get_n_items (self->peers) : 0;

  if (self->runtime != NULL)
    switch (pm_runtime_get_status (self->runtime))
      {
      case PM_RUNTIME_FAILED:
        page = "failed";
        break;
      case PM_RUNTIME_RUNNING:
        if (n > 0)
          page = "list";
        else if (pm_runtime_get_ready (self->runtime))
          page = "empty";
        break;
      case PM_RUNTIME_STARTING:
      default:
        break;
      }
  gtk_stack_set_visible_child_name (self->stack, page);
  if (g_str_equal (page, "starting"))
    gtk_spinner_start (self->spinner);
  else
    gtk_spinner_stop (self->spinner);
}

static void
update_footer (PmWindow *self)
{
  const char *text = NULL;

  if (self->runtime != NULL && pm_runtime_get_problem (self->runtime) != NULL)
    text = pm_runtime_get_problem (self->runtime);
  else if (self->runtime != NULL && pm_runtime_get_status (self->runtime) == PM_RUNTIME_RUNNING &&
           pm_runtime_get_lan_only (self->runtime))
    text = _ ("LAN only: without a coordination server, only paired devices appear here.");
  gtk_label_set_text (self->footer_label, text != NULL ? text : "");
  gtk_widget_set_visible (GTK_WIDGET (self->footer_label), text != NULL);
}

/* Whether anybody tells if a peer is online: the coordination server does,
 * nobody does in LAN-only mode. */
static gboolean
presence_known (PmWindow *self)
{
  return self->runtime != NULL && !pm_runtime_get_lan_only (self->runtime);
}

static GtkWidget *
create_row (gpointer item,
            gpointer user_data)
{
  return pm_peer_row_new (PM_PEER (item), presence_known (user_data));
}

static void
on_peers_changed (GListModel *model,
                  unsigned    position,
                  unsigned    removed,
                  unsigned    added,
                  PmWindow   *self)
{
  PmPeer *shown = pm_device_page_get_peer (self->device_page);

  watch_peers (self);
  update_host (self);
  update_page (self);
  /* The device page's peer was revoked: back to the list. */
  if (shown != NULL && removed > 0)
    {
      gboolean still = FALSE;

      for (unsigned i = 0; i < self->watched->len && !still; i++)
        still = g_ptr_array_index (self->watched, i) == shown;
      if (!still)
        {
          pm_window_show_devices (self);
          pm_device_page_set_peer (self->device_page, NULL, TRUE);
        }
    }
}

static void
bind_peers (PmWindow   *self,
            GListModel *peers)
{
  if (self->peers == peers)
    return;
  if (self->peers != NULL)
    g_signal_handlers_disconnect_by_func (self->peers, on_peers_changed, self);
  unwatch_peers (self);
  g_set_object (&self->peers, peers);
  gtk_list_box_bind_model (self->peer_list, peers, create_row, self, NULL);
  if (peers != NULL)
    g_signal_connect_object (peers, "items-changed", G_CALLBACK (on_peers_changed), self, 0);
  watch_peers (self);
  update_host (self);
}

static void
on_runtime_notify (PmRuntime  *runtime,
                   GParamSpec *pspec,
                   PmWindow   *self)
{
  PmMesh     *mesh = pm_runtime_get_mesh (runtime);
  const char *problem = pm_runtime_get_problem (runtime);

  bind_peers (self, mesh != NULL ? pm_mesh_get_peers (mesh) : NULL);
  gtk_revealer_set_reveal_child (self->demo_bar, pm_runtime_get_demo (runtime));
  adw_window_title_set_subtitle (self->window_title,
                                 pm_runtime_get_demo (runtime) ? _ ("Demo") : NULL);
  {
    const char      *message = pm_runtime_get_message (runtime);
    g_autofree char *markup = message != NULL ? g_markup_escape_text (message, -1) : NULL;

    /* The status page's description is Pango markup. */
    adw_status_page_set_description (self->failed_page, markup);
  }
  if (problem != NULL && g_strcmp0 (problem, self->last_problem) != 0)
    add_problem_toast (self);
  g_free (self->last_problem);
  self->last_problem = g_strdup (problem);
  update_footer (self);
  update_page (self);
}

void
pm_window_set_runtime (PmWindow  *self,
                       PmRuntime *runtime)
{
  g_return_if_fail (PM_IS_WINDOW (self));
  g_return_if_fail (runtime == NULL || PM_IS_RUNTIME (runtime));

  if (self->runtime == runtime)
    return;
  if (self->runtime != NULL)
    g_signal_handlers_disconnect_by_func (self->runtime, on_runtime_notify, self);
  pm_window_show_devices (self);
  pm_device_page_set_peer (self->device_page, NULL, TRUE);
  bind_peers (self, NULL);
  g_clear_pointer (&self->last_problem, g_free);
  g_set_object (&self->runtime, runtime);
  pm_self_page_set_runtime (self->self_page, runtime);
  if (runtime != NULL)
    {
      g_signal_connect_object (runtime, "notify", G_CALLBACK (on_runtime_notify), self, 0);
      on_runtime_notify (runtime, NULL, self);
    }
  else
    update_page (self);
}

PmRuntime *
pm_window_get_runtime (PmWindow *self)
{
  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);
  return self->runtime;
}

/* --- navigation ------------------------------------------------------------------ */

static void
set_device_navigatable (PmWindow *self,
                        gboolean  navigatable)
{
  AdwLeafletPage *page = adw_leaflet_get_page (self->leaflet, GTK_WIDGET (self->device_page));

  adw_leaflet_page_set_navigatable (page, navigatable);
}

void
pm_window_show_devices (PmWindow *self)
{
  g_return_if_fail (PM_IS_WINDOW (self));
  adw_leaflet_set_visible_child_name (self->leaflet, "devices");
}

void
pm_window_show_peer (PmWindow *self,
                     PmPeer   *peer)
{
  g_return_if_fail (PM_IS_WINDOW (self));
  g_return_if_fail (PM_IS_PEER (peer));

  pm_device_page_set_peer (self->device_page, peer, presence_known (self));
  set_device_navigatable (self, TRUE);
  adw_leaflet_set_visible_child_name (self->leaflet, "device");
}

void
pm_window_show_self (PmWindow *self)
{
  g_return_if_fail (PM_IS_WINDOW (self));

  /* Going back (a swipe, Alt+Left) from here leads to the list. */
  set_device_navigatable (self, FALSE);
  adw_leaflet_set_visible_child_name (self->leaflet, "self");
}

void
pm_window_add_toast (PmWindow   *self,
                     const char *message)
{
  AdwToast *toast;

  g_return_if_fail (PM_IS_WINDOW (self));

  toast = adw_toast_new (message);
  adw_toast_set_timeout (toast, 0);
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

/* A toast holds one line: the whole message is a click away. */
static void
add_problem_toast (PmWindow *self)
{
  AdwToast *toast = adw_toast_new (_ ("Could not get the device list"));

  adw_toast_set_timeout (toast, 0);
  adw_toast_set_button_label (toast, _ ("Details"));
  adw_toast_set_action_name (toast, "win.show-problem");
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

static void
action_show_problem (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  PmWindow   *self = PM_WINDOW (widget);
  const char *problem = self->last_problem;
  GtkWidget  *dialog;

  if (problem == NULL)
    return;
  dialog = adw_message_dialog_new (GTK_WINDOW (self), _ ("Could Not Get the Device List"), NULL);
  adw_message_dialog_format_body (ADW_MESSAGE_DIALOG (dialog), "%s", problem);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _ ("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
on_row_activated (PmWindow      *self,
                  GtkListBoxRow *row)
{
  if (PM_IS_PEER_ROW (row))
    pm_window_show_peer (self, pm_peer_row_get_peer (PM_PEER_ROW (row)));
}

static void
action_show_self (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  pm_window_show_self (PM_WINDOW (widget));
}

static void
action_back (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  pm_window_show_devices (PM_WINDOW (widget));
}

/* The pairing wizard, modal to this window, for the state directory the
 * mesh uses (the demo's own one in the demo). */
static void
action_pair (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  PmWindow        *self = PM_WINDOW (widget);
  g_autofree char *state_dir = NULL;
  PmPairDialog    *dialog;

  if (self->runtime != NULL && pm_runtime_get_state_dir (self->runtime) != NULL)
    state_dir = g_strdup (pm_runtime_get_state_dir (self->runtime));
  else
    state_dir = pm_identity_default_state_dir ();
  dialog = pm_pair_dialog_new (GTK_WINDOW (self), state_dir,
                               self->runtime != NULL ? pm_runtime_get_device_name (self->runtime)
                                                     : NULL);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* --- accessors for the screenshot driver ---------------------------------------- */

const char *
pm_window_get_visible_page (PmWindow *self)
{
  const char *page;

  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);

  page = adw_leaflet_get_visible_child_name (self->leaflet);
  if (g_strcmp0 (page, "devices") == 0)
    return gtk_stack_get_visible_child_name (self->stack);
  return page;
}

PmPeerRow *
pm_window_find_row (PmWindow *self,
                    PmPeer   *peer)
{
  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);

  for (GtkWidget *child = gtk_widget_get_first_child (GTK_WIDGET (self->peer_list)); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    if (PM_IS_PEER_ROW (child) && pm_peer_row_get_peer (PM_PEER_ROW (child)) == peer)
      return PM_PEER_ROW (child);
  return NULL;
}

PmPeer *
pm_window_get_host (PmWindow *self)
{
  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);
  return self->host;
}

PmDevicePage *
pm_window_get_device_page (PmWindow *self)
{
  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);
  return self->device_page;
}

PmSelfPage *
pm_window_get_self_page (PmWindow *self)
{
  g_return_val_if_fail (PM_IS_WINDOW (self), NULL);
  return self->self_page;
}

/* --- GObject ------------------------------------------------------------------- */

PmWindow *
pm_window_new (GtkApplication *application)
{
  return g_object_new (PM_TYPE_WINDOW, "application", application, NULL);
}

static void
pm_window_constructed (GObject *object)
{
  PmWindow *self = PM_WINDOW (object);

  G_OBJECT_CLASS (pm_window_parent_class)->constructed (object);

  self->settings = g_settings_new (PM_APP_ID);
  g_settings_bind (self->settings, "window-width", self, "default-width", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-height", self, "default-height", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "window-maximized", self, "maximized", G_SETTINGS_BIND_DEFAULT);
  update_page (self);
}

static void
pm_window_dispose (GObject *object)
{
  PmWindow *self = PM_WINDOW (object);

  if (self->runtime != NULL)
    g_signal_handlers_disconnect_by_func (self->runtime, on_runtime_notify, self);
  if (self->peers != NULL)
    g_signal_handlers_disconnect_by_func (self->peers, on_peers_changed, self);
  if (self->watched != NULL)
    unwatch_peers (self);
  g_clear_object (&self->runtime);
  g_clear_object (&self->peers);
  g_clear_object (&self->settings);
  gtk_widget_dispose_template (GTK_WIDGET (self), PM_TYPE_WINDOW);
  G_OBJECT_CLASS (pm_window_parent_class)->dispose (object);
}

static void
pm_window_finalize (GObject *object)
{
  PmWindow *self = PM_WINDOW (object);

  g_clear_pointer (&self->watched, g_ptr_array_unref);
  g_free (self->last_problem);
  G_OBJECT_CLASS (pm_window_parent_class)->finalize (object);
}

static void
pm_window_class_init (PmWindowClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = pm_window_constructed;
  object_class->dispose = pm_window_dispose;
  object_class->finalize = pm_window_finalize;

  g_type_ensure (PM_TYPE_DEVICE_PAGE);
  g_type_ensure (PM_TYPE_SELF_PAGE);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/pipermesh/PiperMesh/pm-window.ui");
  gtk_widget_class_bind_template_child (widget_class, PmWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, leaflet);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, window_title);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, demo_bar);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, spinner);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, failed_page);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, host_button);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, peer_list);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, footer_label);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, device_page);
  gtk_widget_class_bind_template_child (widget_class, PmWindow, self_page);
  gtk_widget_class_bind_template_callback (widget_class, on_host_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_row_activated);

  gtk_widget_class_install_action (widget_class, "win.show-self", NULL, action_show_self);
  gtk_widget_class_install_action (widget_class, "win.back", NULL, action_back);
  gtk_widget_class_install_action (widget_class, "win.pair", NULL, action_pair);
  gtk_widget_class_install_action (widget_class, "win.show-problem", NULL, action_show_problem);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Left, GDK_ALT_MASK, "win.back", NULL);
}

static void
pm_window_init (PmWindow *self)
{
  self->watched = g_ptr_array_new_with_free_func (g_object_unref);
  gtk_widget_init_template (GTK_WIDGET (self));
}
