/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-device-page.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"

struct _PmDevicePage {
  AdwBin parent_instance;

  PmPeer  *peer;
  gboolean presence_known;

  AdwWindowTitle *window_title;
  GtkImage       *icon;
  GtkLabel       *name_label;
  GtkLabel       *summary_label;
  GtkButton      *connect_button;
  GtkLabel       *status_label;
  GtkLabel       *path_label;
  GtkLabel       *rtt_label;
  GtkLabel       *endpoint_label;
  GtkLabel       *online_label;
  GtkLabel       *sent_label;
  GtkLabel       *received_label;
  GtkLabel       *rotations_label;
  GtkLabel       *handshake_label;
  GtkLabel       *attempts_label;
  GtkLabel       *changes_label;
  GtkLabel       *type_label;
  GtkLabel       *id_label;
  GtkLabel       *fingerprint_label;
  GtkLabel       *key_label;
};

enum {
  PROP_0,
  PROP_PEER,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (PmDevicePage, pm_device_page, ADW_TYPE_BIN)

static void
set_label (GtkLabel   *label,
           const char *text)
{
  /* An em dash for "nothing", so a row never looks broken. */
  gtk_label_set_text (label, text != NULL && *text != '\0' ? text : "—");
}

static void
set_label_take (GtkLabel *label,
                char     *text)
{
  set_label (label, text);
  g_free (text);
}

static void
update (PmDevicePage *self)
{
  PmPeer     *peer = self->peer;
  PmPeerState state;
  PmPathType  path;

  if (peer == NULL)
    return;
  state = pm_peer_get_state (peer);
  path = pm_peer_get_path_type (peer);

  adw_window_title_set_title (self->window_title, pm_peer_get_name (peer));
  gtk_image_set_from_icon_name (self->icon,
                                pm_app_device_icon_name (pm_peer_get_device_type (peer)));
  set_label (self->name_label, pm_peer_get_name (peer));
  set_label_take (self->summary_label,
                  pm_app_peer_summary_full (peer, self->presence_known, g_get_real_time (), NULL));
  gtk_button_set_label (self->connect_button,
                        state == PM_PEER_STATE_IDLE ? _ ("Connect") : _ ("Disconnect"));
  if (state == PM_PEER_STATE_IDLE)
    gtk_widget_add_css_class (GTK_WIDGET (self->connect_button), "suggested-action");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (self->connect_button), "suggested-action");

  set_label (self->status_label, pm_app_state_label (state));
  set_label (self->path_label, pm_app_path_label (path));
  set_label_take (self->rtt_label,
                  path != PM_PATH_NONE ? pm_app_format_rtt (pm_peer_get_rtt_ms (peer)) : NULL);
  set_label (self->endpoint_label, pm_peer_get_endpoint (peer));
  if (self->presence_known)
    set_label (self->online_label, pm_peer_get_online (peer) ? _ ("Online") : _ ("Offline"));
  else
    set_label (self->online_label, _ ("No server (LAN only)"));
  set_label_take (self->sent_label, g_format_size (pm_peer_get_tx_bytes (peer)));
  set_label_take (self->received_label, g_format_size (pm_peer_get_rx_bytes (peer)));
  set_label_take (self->rotations_label, g_strdup_printf ("%u", pm_peer_get_rotations (peer)));
  set_label_take (self->handshake_label, pm_app_format_time (pm_peer_get_last_handshake (peer)));
  set_label_take (self->attempts_label, g_strdup_printf ("%u", pm_peer_get_direct_attempts (peer)));
  set_label_take (self->changes_label, g_strdup_printf ("%u", pm_peer_get_path_changes (peer)));
  set_label (self->type_label, pm_app_device_kind (pm_peer_get_device_type (peer)));
  set_label (self->id_label, pm_peer_get_id (peer));
  set_label_take (self->fingerprint_label,
                  pm_app_format_fingerprint (pm_peer_get_public_key_hex (peer)));
  set_label_take (self->key_label, pm_app_format_key (pm_peer_get_public_key_hex (peer)));
}

static void
on_peer_notify (PmPeer       *peer,
                GParamSpec   *pspec,
                PmDevicePage *self)
{
  update (self);
}

static void
on_connect_clicked (PmDevicePage *self)
{
  if (self->peer == NULL)
    return;
  if (pm_peer_get_state (self->peer) == PM_PEER_STATE_IDLE)
    pm_peer_connect (self->peer);
  else
    pm_peer_disconnect (self->peer);
}

PmPeer *
pm_device_page_get_peer (PmDevicePage *self)
{
  g_return_val_if_fail (PM_IS_DEVICE_PAGE (self), NULL);
  return self->peer;
}

void
pm_device_page_set_peer (PmDevicePage *self,
                         PmPeer       *peer,
                         gboolean      presence_known)
{
  g_return_if_fail (PM_IS_DEVICE_PAGE (self));
  g_return_if_fail (peer == NULL || PM_IS_PEER (peer));

  self->presence_known = presence_known;
  if (self->peer == peer)
    {
      update (self);
      return;
    }
  if (self->peer != NULL)
    g_signal_handlers_disconnect_by_func (self->peer, on_peer_notify, self);
  g_set_object (&self->peer, peer);
  if (self->peer != NULL)
    {
      g_signal_connect_object (self->peer, "notify", G_CALLBACK (on_peer_notify), self, 0);
      update (self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PEER]);
}

const char *
pm_device_page_get_value (PmDevicePage *self,
                          const char   *row)
{
  g_return_val_if_fail (PM_IS_DEVICE_PAGE (self), NULL);

  if (g_str_equal (row, "status"))
    return gtk_label_get_text (self->status_label);
  if (g_str_equal (row, "path"))
    return gtk_label_get_text (self->path_label);
  if (g_str_equal (row, "rtt"))
    return gtk_label_get_text (self->rtt_label);
  if (g_str_equal (row, "endpoint"))
    return gtk_label_get_text (self->endpoint_label);
  if (g_str_equal (row, "fingerprint"))
    return gtk_label_get_text (self->fingerprint_label);
  return NULL;
}

static void
pm_device_page_dispose (GObject *object)
{
  PmDevicePage *self = PM_DEVICE_PAGE (object);

  if (self->peer != NULL)
    g_signal_handlers_disconnect_by_func (self->peer, on_peer_notify, self);
  g_clear_object (&self->peer);
  G_OBJECT_CLASS (pm_device_page_parent_class)->dispose (object);
}

static void
pm_device_page_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  PmDevicePage *self = PM_DEVICE_PAGE (object);

  switch (prop_id)
    {
    case PROP_PEER:
      g_value_set_object (value, self->peer);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_device_page_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  PmDevicePage *self = PM_DEVICE_PAGE (object);

  switch (prop_id)
    {
    case PROP_PEER:
      pm_device_page_set_peer (self, g_value_get_object (value), TRUE);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_device_page_class_init (PmDevicePageClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = pm_device_page_dispose;
  object_class->get_property = pm_device_page_get_property;
  object_class->set_property = pm_device_page_set_property;

  properties[PROP_PEER] =
    g_param_spec_object ("peer", NULL, NULL, PM_TYPE_PEER,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/pipermesh/PiperMesh/pm-device-page.ui");
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, window_title);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, icon);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, name_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, summary_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, connect_button);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, status_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, path_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, rtt_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, endpoint_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, online_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, sent_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, received_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, rotations_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, handshake_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, attempts_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, changes_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, type_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, id_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, fingerprint_label);
  gtk_widget_class_bind_template_child (widget_class, PmDevicePage, key_label);
  gtk_widget_class_bind_template_callback (widget_class, on_connect_clicked);
}

static void
pm_device_page_init (PmDevicePage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
