/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-peer-row.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"
#include "pm-app-limits.h"

struct _PmPeerRow {
  AdwActionRow parent_instance;

  PmPeer  *peer;
  gboolean presence_known;
  unsigned refresh_source; /* only while the summary holds a relative time */

  GtkImage  *icon;
  GtkWidget *dot;
  GtkButton *connect_button;
};

enum {
  PROP_0,
  PROP_PEER,
  PROP_PRESENCE_KNOWN,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (PmPeerRow, pm_peer_row, ADW_TYPE_ACTION_ROW)

static void update_summary (PmPeerRow *self);

static gboolean
on_refresh (gpointer user_data)
{
  PmPeerRow *self = user_data;

  self->refresh_source = 0;
  update_summary (self);
  return G_SOURCE_REMOVE;
}

static void
update_summary (PmPeerRow *self)
{
  gboolean         relative = FALSE;
  g_autofree char *summary =
    pm_app_peer_summary_full (self->peer, self->presence_known, g_get_real_time (), &relative);

  adw_action_row_set_subtitle (ADW_ACTION_ROW (self), summary);
  g_clear_handle_id (&self->refresh_source, g_source_remove);
  if (relative)
    self->refresh_source = g_timeout_add_seconds (PM_APP_RELATIVE_TIME_REFRESH_S, on_refresh, self);
}

static void
update_dot (PmPeerRow *self)
{
  gboolean up = pm_app_peer_is_up (self->peer);

  if (up)
    {
      gtk_widget_add_css_class (self->dot, "online");
      gtk_widget_set_tooltip_text (self->dot, _ ("Online"));
    }
  else
    {
      gtk_widget_remove_css_class (self->dot, "online");
      gtk_widget_set_tooltip_text (self->dot, _ ("Offline"));
    }
}

static void
update_button (PmPeerRow *self)
{
  gboolean idle = pm_peer_get_state (self->peer) == PM_PEER_STATE_IDLE;

  gtk_button_set_label (self->connect_button, idle ? _ ("Connect") : _ ("Disconnect"));
  if (idle)
    gtk_widget_add_css_class (GTK_WIDGET (self->connect_button), "suggested-action");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (self->connect_button), "suggested-action");
}

static void
update_icon (PmPeerRow *self)
{
  gtk_image_set_from_icon_name (self->icon,
                                pm_app_device_icon_name (pm_peer_get_device_type (self->peer)));
}

static void
on_peer_notify (PmPeer     *peer,
                GParamSpec *pspec,
                PmPeerRow  *self)
{
  const char *name = g_param_spec_get_name (pspec);

  if (g_str_equal (name, "state"))
    update_button (self);
  if (g_str_equal (name, "device-type"))
    update_icon (self);
  if (g_str_equal (name, "online") || g_str_equal (name, "state"))
    update_dot (self);
  if (g_str_equal (name, "online") || g_str_equal (name, "state") ||
      g_str_equal (name, "path-type") || g_str_equal (name, "rtt-ms") ||
      g_str_equal (name, "last-handshake"))
    update_summary (self);
}

static void
on_connect_clicked (PmPeerRow *self)
{
  if (pm_peer_get_state (self->peer) == PM_PEER_STATE_IDLE)
    pm_peer_connect (self->peer);
  else
    pm_peer_disconnect (self->peer);
}

static void
pm_peer_row_constructed (GObject *object)
{
  PmPeerRow *self = PM_PEER_ROW (object);

  G_OBJECT_CLASS (pm_peer_row_parent_class)->constructed (object);

  g_object_bind_property (self->peer, "name", self, "title", G_BINDING_SYNC_CREATE);
  g_signal_connect_object (self->peer, "notify", G_CALLBACK (on_peer_notify), self, 0);
  update_icon (self);
  update_dot (self);
  update_button (self);
  update_summary (self);
}

static void
pm_peer_row_dispose (GObject *object)
{
  PmPeerRow *self = PM_PEER_ROW (object);

  g_clear_handle_id (&self->refresh_source, g_source_remove);
  G_OBJECT_CLASS (pm_peer_row_parent_class)->dispose (object);
}

static void
pm_peer_row_finalize (GObject *object)
{
  PmPeerRow *self = PM_PEER_ROW (object);

  g_clear_object (&self->peer);
  G_OBJECT_CLASS (pm_peer_row_parent_class)->finalize (object);
}

static void
pm_peer_row_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  PmPeerRow *self = PM_PEER_ROW (object);

  switch (prop_id)
    {
    case PROP_PEER:
      g_value_set_object (value, self->peer);
      break;
    case PROP_PRESENCE_KNOWN:
      g_value_set_boolean (value, self->presence_known);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_peer_row_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  PmPeerRow *self = PM_PEER_ROW (object);

  switch (prop_id)
    {
    case PROP_PEER:
      self->peer = g_value_dup_object (value);
      break;
    case PROP_PRESENCE_KNOWN:
      self->presence_known = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_peer_row_class_init (PmPeerRowClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = pm_peer_row_constructed;
  object_class->dispose = pm_peer_row_dispose;
  object_class->finalize = pm_peer_row_finalize;
  object_class->get_property = pm_peer_row_get_property;
  object_class->set_property = pm_peer_row_set_property;

  properties[PROP_PEER] =
    g_param_spec_object ("peer", NULL, NULL, PM_TYPE_PEER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_PRESENCE_KNOWN] =
    g_param_spec_boolean ("presence-known", NULL, NULL, TRUE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/pipermesh/PiperMesh/pm-peer-row.ui");
  gtk_widget_class_bind_template_child (widget_class, PmPeerRow, icon);
  gtk_widget_class_bind_template_child (widget_class, PmPeerRow, dot);
  gtk_widget_class_bind_template_child (widget_class, PmPeerRow, connect_button);
  gtk_widget_class_bind_template_callback (widget_class, on_connect_clicked);
}

static void
pm_peer_row_init (PmPeerRow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
pm_peer_row_new (PmPeer  *peer,
                 gboolean presence_known)
{
  g_return_val_if_fail (PM_IS_PEER (peer), NULL);

  return g_object_new (PM_TYPE_PEER_ROW, "peer", peer, "presence-known", presence_known, NULL);
}

PmPeer *
pm_peer_row_get_peer (PmPeerRow *self)
{
  g_return_val_if_fail (PM_IS_PEER_ROW (self), NULL);

  return self->peer;
}
