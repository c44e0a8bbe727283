/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-notifier"

#include "pm-notifier.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"

/* --- the debounce ---------------------------------------------------------------- */

PmNotifierEvent
pm_notifier_track_update (PmNotifierTrack *track,
                          PmPeerState      state,
                          PmPathType       path,
                          int64_t          now_us,
                          int64_t          delay_us,
                          int64_t         *deadline_us)
{
  gboolean up = state == PM_PEER_STATE_CONNECTED && path != PM_PATH_NONE;

  g_return_val_if_fail (track != NULL && deadline_us != NULL, PM_NOTIFIER_EVENT_NONE);

  *deadline_us = 0;
  if (up)
    {
      gboolean restored = track->lost_shown;

      track->was_up = TRUE;
      track->lost_shown = FALSE;
      track->down_since_us = 0;
      return restored ? PM_NOTIFIER_EVENT_RESTORED : PM_NOTIFIER_EVENT_NONE;
    }
  if (state == PM_PEER_STATE_IDLE)
    {
      gboolean withdraw = track->lost_shown;

      track->was_up = FALSE;
      track->lost_shown = FALSE;
      track->down_since_us = 0;
      return withdraw ? PM_NOTIFIER_EVENT_WITHDRAW : PM_NOTIFIER_EVENT_NONE;
    }
  /* Wanted, and down: only a peer that was up can be lost, once. */
  if (!track->was_up || track->lost_shown)
    return PM_NOTIFIER_EVENT_NONE;
  if (track->down_since_us == 0)
    track->down_since_us = now_us;
  if (now_us - track->down_since_us >= delay_us)
    {
      track->lost_shown = TRUE;
      track->down_since_us = 0;
      return PM_NOTIFIER_EVENT_LOST;
    }
  *deadline_us = track->down_since_us + delay_us;
  return PM_NOTIFIER_EVENT_NONE;
}

/* --- PmNotifier ------------------------------------------------------------------ */

typedef struct {
  PmNotifier     *self;
  PmPeer         *peer;
  PmNotifierTrack track;
  guint           timer_id;
} Watch;

struct _PmNotifier {
  GObject parent_instance;

  GApplication *application; /* weak */
  PmMesh       *mesh;
  GPtrArray    *watches; /* Watch, in the order of pm_mesh_get_peers() */
  gulong        items_changed_id;
  int64_t       lost_delay_us;
};

G_DEFINE_FINAL_TYPE (PmNotifier, pm_notifier, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_MESH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static char *
peer_notification_id (PmPeer *peer)
{
  return g_strdup_printf ("peer-%s", pm_peer_get_id (peer));
}

static const char *
peer_name (PmPeer *peer)
{
  const char *name = pm_peer_get_name (peer);

  return name != NULL && *name != '\0' ? name : pm_peer_get_id (peer);
}

static void
show (PmNotifier     *self,
      PmPeer         *peer,
      PmNotifierEvent event)
{
  g_autofree char *id = peer_notification_id (peer);
  g_autoptr (GNotification) notification = NULL;
  g_autofree char *title = NULL;
  g_autofree char *body = NULL;
  g_autoptr (GIcon) icon = NULL;

  if (self->application == NULL || !g_application_get_is_registered (self->application))
    return;
  switch (event)
    {
    case PM_NOTIFIER_EVENT_LOST:
      /* TRANSLATORS: a notification; %s is a device name */
      title = g_strdup_printf (_ ("Connection to %s lost"), peer_name (peer));
      body = g_strdup (_ ("PiperMesh keeps trying and reconnects by itself."));
      icon = g_themed_icon_new ("network-vpn-disconnected-symbolic");
      break;
    case PM_NOTIFIER_EVENT_RESTORED:
      /* TRANSLATORS: a notification; %s is a device name */
      title = g_strdup_printf (_ ("Connected to %s again"), peer_name (peer));
      body = pm_app_peer_summary (peer, g_get_real_time (), NULL);
      icon = g_themed_icon_new ("network-vpn-symbolic");
      break;
    case PM_NOTIFIER_EVENT_WITHDRAW:
      g_application_withdraw_notification (self->application, id);
      return;
    case PM_NOTIFIER_EVENT_NONE:
    default:
      return;
    }
  g_debug ("%s: %s", id, title);
  notification = g_notification_new (title);
  g_notification_set_body (notification, body);
  g_notification_set_icon (notification, icon);
  g_application_send_notification (self->application, id, notification);
}

static void update_watch (Watch *watch);

static gboolean
on_watch_timer (gpointer data)
{
  Watch *watch = data;

  watch->timer_id = 0;
  update_watch (watch);
  return G_SOURCE_REMOVE;
}

static void
update_watch (Watch *watch)
{
  int64_t         now = g_get_monotonic_time ();
  int64_t         deadline = 0;
  PmNotifierEvent event;

  event = pm_notifier_track_update (&watch->track, pm_peer_get_state (watch->peer),
                                    pm_peer_get_path_type (watch->peer), now,
                                    watch->self->lost_delay_us, &deadline);
  g_clear_handle_id (&watch->timer_id, g_source_remove);
  if (deadline != 0)
    watch->timer_id =
      g_timeout_add ((guint) ((MAX (deadline - now, 0) + 999) / 1000), on_watch_timer, watch);
  show (watch->self, watch->peer, event);
}

static void
on_peer_notify (GObject    *peer,
                GParamSpec *pspec,
                gpointer    user_data)
{
  update_watch (user_data);
}

static Watch *
watch_new (PmNotifier *self,
           PmPeer     *peer)
{
  Watch *watch = g_new0 (Watch, 1);

  watch->self = self;
  watch->peer = g_object_ref (peer);
  g_signal_connect (peer, "notify::state", G_CALLBACK (on_peer_notify), watch);
  g_signal_connect (peer, "notify::path-type", G_CALLBACK (on_peer_notify), watch);
  update_watch (watch);
  return watch;
}

static void
watch_free (gpointer data)
{
  Watch *watch = data;

  /* A "lost" still shown for a peer that is gone is taken back. */
  if (watch->track.lost_shown)
    show (watch->self, watch->peer, PM_NOTIFIER_EVENT_WITHDRAW);
  g_signal_handlers_disconnect_by_data (watch->peer, watch);
  g_clear_handle_id (&watch->timer_id, g_source_remove);
  g_object_unref (watch->peer);
  g_free (watch);
}

static void
on_peers_changed (GListModel *model,
                  unsigned    position,
                  unsigned    removed,
                  unsigned    added,
                  gpointer    user_data)
{
  PmNotifier *self = user_data;

  g_ptr_array_remove_range (self->watches, position, removed);
  for (unsigned i = 0; i < added; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (model, position + i);
      g_ptr_array_insert (self->watches, (int) (position + i), watch_new (self, peer));
    }
}

static void
pm_notifier_dispose (GObject *object)
{
  PmNotifier *self = PM_NOTIFIER (object);

  pm_notifier_set_mesh (self, NULL);
  if (self->application != NULL)
    g_object_remove_weak_pointer (G_OBJECT (self->application), (gpointer *) &self->application);
  self->application = NULL;
  G_OBJECT_CLASS (pm_notifier_parent_class)->dispose (object);
}

static void
pm_notifier_finalize (GObject *object)
{
  PmNotifier *self = PM_NOTIFIER (object);

  g_clear_pointer (&self->watches, g_ptr_array_unref);
  G_OBJECT_CLASS (pm_notifier_parent_class)->finalize (object);
}

static void
pm_notifier_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  switch (prop_id)
    {
    case PROP_MESH:
      g_value_set_object (value, pm_notifier_get_mesh (PM_NOTIFIER (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_notifier_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  switch (prop_id)
    {
    case PROP_MESH:
      pm_notifier_set_mesh (PM_NOTIFIER (object), g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_notifier_class_init (PmNotifierClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_notifier_dispose;
  object_class->finalize = pm_notifier_finalize;
  object_class->get_property = pm_notifier_get_property;
  object_class->set_property = pm_notifier_set_property;

  properties[PROP_MESH] =
    g_param_spec_object ("mesh", NULL, NULL, PM_TYPE_MESH,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_notifier_init (PmNotifier *self)
{
  self->watches = g_ptr_array_new_with_free_func (watch_free);
  self->lost_delay_us = PM_NOTIFIER_LOST_DELAY_US;
}

PmNotifier *
pm_notifier_new (GApplication *application,
                 PmMesh       *mesh)
{
  PmNotifier *self;

  g_return_val_if_fail (G_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (mesh == NULL || PM_IS_MESH (mesh), NULL);

  self = g_object_new (PM_TYPE_NOTIFIER, NULL);
  self->application = application;
  g_object_add_weak_pointer (G_OBJECT (application), (gpointer *) &self->application);
  pm_notifier_set_mesh (self, mesh);
  return self;
}

void
pm_notifier_set_mesh (PmNotifier *self,
                      PmMesh     *mesh)
{
  GListModel *peers;

  g_return_if_fail (PM_IS_NOTIFIER (self));
  g_return_if_fail (mesh == NULL || PM_IS_MESH (mesh));

  if (self->mesh == mesh)
    return;
  if (self->mesh != NULL)
    {
      g_clear_signal_handler (&self->items_changed_id, pm_mesh_get_peers (self->mesh));
      g_ptr_array_set_size (self->watches, 0);
      g_clear_object (&self->mesh);
    }
  if (mesh != NULL)
    {
      self->mesh = g_object_ref (mesh);
      peers = pm_mesh_get_peers (mesh);
      self->items_changed_id =
        g_signal_connect (peers, "items-changed", G_CALLBACK (on_peers_changed), self);
      on_peers_changed (peers, 0, 0, g_list_model_get_n_items (peers), self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MESH]);
}

PmMesh *
pm_notifier_get_mesh (PmNotifier *self)
{
  g_return_val_if_fail (PM_IS_NOTIFIER (self), NULL);
  return self->mesh;
}

void
pm_notifier_set_lost_delay (PmNotifier *self,
                            int64_t     delay_us)
{
  g_return_if_fail (PM_IS_NOTIFIER (self));
  g_return_if_fail (delay_us >= 0);
  self->lost_delay_us = delay_us;
}

/* --- pairing ---------------------------------------------------------------------- */

void
pm_notifier_pairing_request (GApplication *application,
                             const char   *code,
                             const char   *name)
{
  g_autofree char *id = NULL;
  g_autofree char *body = NULL;
  g_autoptr (GNotification) notification = NULL;

  g_return_if_fail (G_IS_APPLICATION (application));
  g_return_if_fail (code != NULL && name != NULL);

  id = g_strdup_printf ("pair-%s", code);
  /* TRANSLATORS: a notification; %s is the other device's name, then the
   * verification code both devices show */
  body = g_strdup_printf (
    _ ("“%s” wants to pair with this device. Accept only if it shows the code %s."), name, code);
  notification = g_notification_new (_ ("Pairing Request"));
  g_notification_set_body (notification, body);
  g_notification_set_priority (notification, G_NOTIFICATION_PRIORITY_HIGH);
  g_notification_add_button_with_target_value (notification, _ ("Accept"), "app.pair-accept",
                                               g_variant_new_string (code));
  g_notification_add_button_with_target_value (notification, _ ("Reject"), "app.pair-reject",
                                               g_variant_new_string (code));
  g_application_send_notification (application, id, notification);
}

void
pm_notifier_pairing_withdraw (GApplication *application,
                              const char   *code)
{
  g_autofree char *id = NULL;

  g_return_if_fail (G_IS_APPLICATION (application));
  g_return_if_fail (code != NULL);

  id = g_strdup_printf ("pair-%s", code);
  g_application_withdraw_notification (application, id);
}
