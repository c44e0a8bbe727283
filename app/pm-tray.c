/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-tray"

#include "pm-tray.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"
#ifdef __linux__
#include "pm-tray-sni.h"
#endif

/* The peer properties a tray shows; each change updates the state, the
 * tooltip and (at the next idle) the menu. */
static const char *const watched_properties[] = {
  "notify::state",
  "notify::path-type",
  "notify::rtt-ms",
  "notify::name",
  "notify::online",
};

typedef struct {
  GApplication       *application; /* weak: the application owns the tray */
  PmMesh             *mesh;
  GPtrArray          *peers; /* PmPeer, as pm_mesh_get_peers() lists them, each watched */
  gulong              items_changed_id;
  gboolean            available;
  gboolean            run_in_background;
  gboolean            needs_attention;
  gboolean            holding; /* g_application_hold() is in force: "keep-running" */
  unsigned            lost_grace_ms;
  guint               lost_grace_id; /* the desktop's tray went away: waiting for it */
  PmTrayState         state;
  char               *tooltip;
  GMenu              *menu;
  guint               menu_idle_id;
  GSimpleActionGroup *actions;
  GSettings          *settings; /* the application's, when its schema has run-in-background */
} PmTrayPrivate;

G_DEFINE_TYPE_WITH_PRIVATE (PmTray, pm_tray, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_APPLICATION,
  PROP_MESH,
  PROP_AVAILABLE,
  PROP_KEEP_RUNNING,
  PROP_RUN_IN_BACKGROUND,
  PROP_NEEDS_ATTENTION,
  PROP_STATE,
  PROP_ICON_NAME,
  PROP_TITLE,
  PROP_TOOLTIP,
  PROP_MENU,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* --- pure functions ----------------------------------------------------------- */

GType
pm_tray_state_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_TRAY_STATE_OFFLINE, "PM_TRAY_STATE_OFFLINE", "offline" },
        { PM_TRAY_STATE_CONNECTING, "PM_TRAY_STATE_CONNECTING", "connecting" },
        { PM_TRAY_STATE_CONNECTED, "PM_TRAY_STATE_CONNECTED", "connected" },
        { 0, NULL, NULL },
      };
      g_once_init_leave (&type, g_enum_register_static ("PmTrayState", values));
    }
  return type;
}

PmTrayState
pm_tray_state_for_peer (PmPeerState state,
                        PmPathType  path)
{
  switch (state)
    {
    case PM_PEER_STATE_CONNECTED:
      return path != PM_PATH_NONE ? PM_TRAY_STATE_CONNECTED : PM_TRAY_STATE_CONNECTING;
    case PM_PEER_STATE_CONNECTING:
      return PM_TRAY_STATE_CONNECTING;
    case PM_PEER_STATE_IDLE:
    default:
      return PM_TRAY_STATE_OFFLINE;
    }
}

static PmTrayState
peer_tray_state (PmPeer *peer)
{
  return pm_tray_state_for_peer (pm_peer_get_state (peer), pm_peer_get_path_type (peer));
}

PmTrayState
pm_tray_state_for_peers (GListModel *peers)
{
  PmTrayState state = PM_TRAY_STATE_OFFLINE;
  unsigned    n;

  if (peers == NULL)
    return PM_TRAY_STATE_OFFLINE;
  n = g_list_model_get_n_items (peers);
  for (unsigned i = 0; i < n && state != PM_TRAY_STATE_CONNECTED; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (peers, i);
      state = MAX (state, peer_tray_state (peer));
    }
  return state;
}

const char *
pm_tray_state_get_icon_name (PmTrayState state)
{
  switch (state)
    {
    case PM_TRAY_STATE_CONNECTED:
      return "network-vpn-symbolic";
    case PM_TRAY_STATE_CONNECTING:
      return "network-vpn-acquiring-symbolic";
    case PM_TRAY_STATE_OFFLINE:
    default:
      return "network-vpn-disabled-symbolic";
    }
}

const char *
pm_tray_state_to_string (PmTrayState state)
{
  switch (state)
    {
    case PM_TRAY_STATE_CONNECTED:
      return "connected";
    case PM_TRAY_STATE_CONNECTING:
      return "connecting";
    case PM_TRAY_STATE_OFFLINE:
    default:
      return "offline";
    }
}

static const char *
peer_display_name (PmPeer *peer)
{
  const char *name = pm_peer_get_name (peer);

  return name != NULL && *name != '\0' ? name : pm_peer_get_id (peer);
}

char *
pm_tray_describe (GListModel *peers)
{
  unsigned    n, n_connected = 0, n_connecting = 0;
  const char *connected = NULL, *connecting = NULL;

  if (peers == NULL)
    /* TRANSLATORS: the tray's tooltip while the mesh is not running */
    return g_strdup (_ ("Not running"));
  n = g_list_model_get_n_items (peers);
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (peers, i);

      switch (peer_tray_state (peer))
        {
        case PM_TRAY_STATE_CONNECTED:
          if (n_connected++ == 0)
            connected = peer_display_name (peer);
          break;
        case PM_TRAY_STATE_CONNECTING:
          if (n_connecting++ == 0)
            connecting = peer_display_name (peer);
          break;
        case PM_TRAY_STATE_OFFLINE:
        default:
          break;
        }
    }
  /* The names stay valid: the model holds the peers. */
  if (n_connected == 1)
    /* TRANSLATORS: the tray's tooltip; %s is a device name */
    return g_strdup_printf (_ ("Connected to %s"), connected);
  if (n_connected > 1)
    /* TRANSLATORS: the tray's tooltip */
    return g_strdup_printf (ngettext ("Connected to %u device", "Connected to %u devices",
                                      n_connected),
                            n_connected);
  if (n_connecting == 1)
    /* TRANSLATORS: the tray's tooltip; %s is a device name */
    return g_strdup_printf (_ ("Connecting to %s…"), connecting);
  if (n_connecting > 1)
    /* TRANSLATORS: the tray's tooltip */
    return g_strdup_printf (ngettext ("Connecting to %u device…", "Connecting to %u devices…",
                                      n_connecting),
                            n_connecting);
  if (n == 0)
    /* TRANSLATORS: the tray's tooltip when no device is paired or enrolled */
    return g_strdup (_ ("No devices yet"));
  /* TRANSLATORS: the tray's tooltip when no device is connected */
  return g_strdup (_ ("Not connected"));
}

/* Menus read "_" as a mnemonic: a device called "my_mac" must not become
 * "mymac" with an underlined m. */
static char *
escape_mnemonics (const char *text)
{
  g_autoptr (GString) out = g_string_sized_new (strlen (text) + 4);

  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p == '_')
        g_string_append_c (out, '_');
      g_string_append_c (out, *p);
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
pm_tray_peer_label (PmPeer  *peer,
                    gboolean presence_known)
{
  g_autofree char *summary = NULL;
  g_autofree char *name = NULL;
  gboolean         relative = FALSE;

  g_return_val_if_fail (PM_IS_PEER (peer), NULL);

  summary = pm_app_peer_summary_full (peer, presence_known, g_get_real_time (), &relative);
  /* "Offline · last connected 5 min ago" goes stale while the menu is
   * shown, and the tray does not poll. */
  if (relative)
    {
      g_free (summary);
      summary = g_strdup (presence_known ? _ ("Offline") : _ ("Not connected"));
    }
  name = escape_mnemonics (peer_display_name (peer));
  /* TRANSLATORS: a device in the tray's menu and its state, e.g.
   * "mac — Direct · 23 ms" */
  return g_strdup_printf (C_ ("tray menu", "%s — %s"), name, summary);
}

/* --- state ---------------------------------------------------------------------- */

static gboolean
set_string (char      **field,
            const char *value)
{
  if (g_strcmp0 (*field, value) == 0)
    return FALSE;
  g_free (*field);
  *field = g_strdup (value);
  return TRUE;
}

static void
notify (PmTray *self,
        int     prop)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static gboolean rebuild_menu_cb (gpointer data);

static void
schedule_menu (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  if (priv->menu_idle_id == 0)
    priv->menu_idle_id = g_idle_add (rebuild_menu_cb, self);
}

static void
update_state (PmTray *self)
{
  PmTrayPrivate   *priv = pm_tray_get_instance_private (self);
  GListModel      *peers = priv->mesh != NULL ? pm_mesh_get_peers (priv->mesh) : NULL;
  PmTrayState      state = pm_tray_state_for_peers (peers);
  g_autofree char *tooltip = pm_tray_describe (peers);

  g_object_freeze_notify (G_OBJECT (self));
  if (state != priv->state)
    {
      g_debug ("tray state %s -> %s", pm_tray_state_to_string (priv->state),
               pm_tray_state_to_string (state));
      priv->state = state;
      notify (self, PROP_STATE);
      notify (self, PROP_ICON_NAME);
    }
  if (set_string (&priv->tooltip, tooltip))
    notify (self, PROP_TOOLTIP);
  g_object_thaw_notify (G_OBJECT (self));
  schedule_menu (self);
}

static void
on_peer_notify (GObject    *peer,
                GParamSpec *pspec,
                gpointer    user_data)
{
  update_state (user_data);
}

static void
watch_peer (PmTray *self,
            PmPeer *peer)
{
  for (unsigned i = 0; i < G_N_ELEMENTS (watched_properties); i++)
    g_signal_connect (peer, watched_properties[i], G_CALLBACK (on_peer_notify), self);
}

static void
unwatch_peer (gpointer data,
              gpointer user_data)
{
  g_signal_handlers_disconnect_by_data (data, user_data);
}

static void
on_peers_changed (GListModel *model,
                  unsigned    position,
                  unsigned    removed,
                  unsigned    added,
                  gpointer    user_data)
{
  PmTray        *self = user_data;
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  for (unsigned i = 0; i < removed; i++)
    unwatch_peer (g_ptr_array_index (priv->peers, position + i), self);
  g_ptr_array_remove_range (priv->peers, position, removed);
  for (unsigned i = 0; i < added; i++)
    {
      PmPeer *peer = g_list_model_get_item (model, position + i);

      watch_peer (self, peer);
      g_ptr_array_insert (priv->peers, (int) (position + i), peer);
    }
  update_state (self);
}

/* --- holding the application ------------------------------------------------- */

static void
update_hold (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);
  gboolean       want = priv->application != NULL &&
                  (priv->available || priv->run_in_background || priv->lost_grace_id != 0);

  if (want == priv->holding)
    return;
  priv->holding = want;
  if (want)
    g_application_hold (priv->application);
  else if (priv->application != NULL)
    g_application_release (priv->application);
  notify (self, PROP_KEEP_RUNNING);
}

static gboolean
on_lost_grace (gpointer data)
{
  PmTray        *self = data;
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  priv->lost_grace_id = 0;
  /* The tray did not come back: the app runs with no icon and, perhaps, no
   * window. Show the window rather than run on unseen. */
  if (!priv->available && !priv->run_in_background && priv->application != NULL)
    {
      g_message ("The desktop's tray went away; opening the window");
      g_application_activate (priv->application);
    }
  update_hold (self);
  return G_SOURCE_REMOVE;
}

/* --- actions -------------------------------------------------------------------- */

static void
forward_or (PmTray     *self,
            const char *name,
            gboolean    quit)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  if (priv->application == NULL)
    return;
  if (g_action_group_has_action (G_ACTION_GROUP (priv->application), name) &&
      g_action_group_get_action_enabled (G_ACTION_GROUP (priv->application), name))
    g_action_group_activate_action (G_ACTION_GROUP (priv->application), name, NULL);
  else if (quit)
    g_application_quit (priv->application);
  else
    g_application_activate (priv->application);
}

static void
action_open (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  pm_tray_activate (user_data);
}

static void
action_pair (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  forward_or (user_data, "pair", FALSE);
}

static void
action_quit (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  forward_or (user_data, "quit", TRUE);
}

static PmPeer *
lookup_peer (PmTray   *self,
             GVariant *parameter)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  if (priv->mesh == NULL)
    return NULL;
  return pm_mesh_lookup_peer (priv->mesh, g_variant_get_string (parameter, NULL));
}

static void
action_connect (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  PmPeer *peer = lookup_peer (user_data, parameter);

  if (peer != NULL)
    pm_peer_connect (peer);
}

static void
action_disconnect (GSimpleAction *action,
                   GVariant      *parameter,
                   gpointer       user_data)
{
  PmPeer *peer = lookup_peer (user_data, parameter);

  if (peer != NULL)
    pm_peer_disconnect (peer);
}

static const GActionEntry tray_actions[] = {
  { "open", action_open, NULL, NULL, NULL, { 0 } },
  { "pair", action_pair, NULL, NULL, NULL, { 0 } },
  { "quit", action_quit, NULL, NULL, NULL, { 0 } },
  { "connect", action_connect, "s", NULL, NULL, { 0 } },
  { "disconnect", action_disconnect, "s", NULL, NULL, { 0 } },
};

/* --- the menu ------------------------------------------------------------------ */

static GMenu *
build_menu (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);
  GMenu         *menu = g_menu_new ();
  /* Only a coordination server knows who is online. */
  gboolean presence_known = priv->mesh != NULL && pm_mesh_get_device_id (priv->mesh) != NULL;
  g_autoptr (GMenu) devices = g_menu_new ();
  g_autoptr (GMenu) app = g_menu_new ();
  g_autoptr (GMenu) quit = g_menu_new ();

  for (unsigned i = 0; i < priv->peers->len; i++)
    {
      PmPeer          *peer = g_ptr_array_index (priv->peers, i);
      g_autofree char *label = pm_tray_peer_label (peer, presence_known);
      g_autoptr (GMenu) submenu = g_menu_new ();
      g_autoptr (GMenuItem) toggle = NULL;
      gboolean idle = pm_peer_get_state (peer) == PM_PEER_STATE_IDLE;

      toggle = g_menu_item_new (idle ? _ ("_Connect") : _ ("_Disconnect"), NULL);
      g_menu_item_set_action_and_target_value (toggle, idle ? "tray.connect" : "tray.disconnect",
                                               g_variant_new_string (pm_peer_get_id (peer)));
      g_menu_append_item (submenu, toggle);
      g_menu_freeze (submenu);
      g_menu_append_submenu (devices, label, G_MENU_MODEL (submenu));
    }
  if (priv->peers->len == 0)
    /* TRANSLATORS: the tray's menu when there is no device (not clickable) */
    g_menu_append (devices, priv->mesh != NULL ? _ ("No Devices Yet") : _ ("Not Running"), NULL);
  g_menu_append (app, _ ("_Open PiperMesh"), "tray.open");
  g_menu_append (app, _ ("_Pair a Device…"), "tray.pair");
  g_menu_append (quit, _ ("_Quit"), "tray.quit");
  g_menu_freeze (devices);
  g_menu_freeze (app);
  g_menu_freeze (quit);
  g_menu_append_section (menu, NULL, G_MENU_MODEL (devices));
  g_menu_append_section (menu, NULL, G_MENU_MODEL (app));
  g_menu_append_section (menu, NULL, G_MENU_MODEL (quit));
  g_menu_freeze (menu);
  return menu;
}

static gboolean
rebuild_menu_cb (gpointer data)
{
  PmTray        *self = data;
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  priv->menu_idle_id = 0;
  g_clear_object (&priv->menu);
  priv->menu = build_menu (self);
  notify (self, PROP_MENU);
  return G_SOURCE_REMOVE;
}

/* --- GObject ---------------------------------------------------------------------- */

static void
bind_settings (PmTray *self)
{
  PmTrayPrivate         *priv = pm_tray_get_instance_private (self);
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  const char            *id = g_application_get_application_id (priv->application);
  g_autoptr (GSettingsSchema) schema = NULL;

  if (source == NULL || id == NULL)
    return;
  schema = g_settings_schema_source_lookup (source, id, TRUE);
  if (schema == NULL || !g_settings_schema_has_key (schema, "run-in-background"))
    return;
  priv->settings = g_settings_new_full (schema, NULL, NULL);
  g_settings_bind (priv->settings, "run-in-background", self, "run-in-background",
                   G_SETTINGS_BIND_GET);
}

static void
pm_tray_constructed (GObject *object)
{
  PmTray        *self = PM_TRAY (object);
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  G_OBJECT_CLASS (pm_tray_parent_class)->constructed (object);

  if (priv->application != NULL)
    bind_settings (self);
  if (priv->tooltip == NULL)
    priv->tooltip = pm_tray_describe (priv->mesh != NULL ? pm_mesh_get_peers (priv->mesh) : NULL);
  g_clear_object (&priv->menu);
  priv->menu = build_menu (self);
}

static void
pm_tray_dispose (GObject *object)
{
  PmTray        *self = PM_TRAY (object);
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  pm_tray_set_mesh (self, NULL);
  g_clear_handle_id (&priv->menu_idle_id, g_source_remove);
  g_clear_handle_id (&priv->lost_grace_id, g_source_remove);
  priv->available = FALSE;
  priv->run_in_background = FALSE;
  if (priv->holding && priv->application != NULL)
    g_application_release (priv->application);
  priv->holding = FALSE;
  g_clear_object (&priv->settings);
  if (priv->application != NULL)
    g_object_remove_weak_pointer (G_OBJECT (priv->application), (gpointer *) &priv->application);
  priv->application = NULL;
  G_OBJECT_CLASS (pm_tray_parent_class)->dispose (object);
}

static void
pm_tray_finalize (GObject *object)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (PM_TRAY (object));

  g_clear_pointer (&priv->peers, g_ptr_array_unref);
  g_clear_object (&priv->menu);
  g_clear_object (&priv->actions);
  g_free (priv->tooltip);
  G_OBJECT_CLASS (pm_tray_parent_class)->finalize (object);
}

static void
pm_tray_get_property (GObject    *object,
                      guint       prop_id,
                      GValue     *value,
                      GParamSpec *pspec)
{
  PmTray *self = PM_TRAY (object);

  switch (prop_id)
    {
    case PROP_APPLICATION:
      g_value_set_object (value, pm_tray_get_application (self));
      break;
    case PROP_MESH:
      g_value_set_object (value, pm_tray_get_mesh (self));
      break;
    case PROP_AVAILABLE:
      g_value_set_boolean (value, pm_tray_get_available (self));
      break;
    case PROP_KEEP_RUNNING:
      g_value_set_boolean (value, pm_tray_get_keep_running (self));
      break;
    case PROP_RUN_IN_BACKGROUND:
      g_value_set_boolean (value, pm_tray_get_run_in_background (self));
      break;
    case PROP_NEEDS_ATTENTION:
      g_value_set_boolean (value, pm_tray_get_needs_attention (self));
      break;
    case PROP_STATE:
      g_value_set_enum (value, pm_tray_get_state (self));
      break;
    case PROP_ICON_NAME:
      g_value_set_string (value, pm_tray_get_icon_name (self));
      break;
    case PROP_TITLE:
      g_value_set_string (value, pm_tray_get_title (self));
      break;
    case PROP_TOOLTIP:
      g_value_set_string (value, pm_tray_get_tooltip (self));
      break;
    case PROP_MENU:
      g_value_set_object (value, pm_tray_get_menu (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_tray_set_property (GObject      *object,
                      guint         prop_id,
                      const GValue *value,
                      GParamSpec   *pspec)
{
  PmTray        *self = PM_TRAY (object);
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_APPLICATION:
      priv->application = g_value_get_object (value);
      if (priv->application != NULL)
        g_object_add_weak_pointer (G_OBJECT (priv->application), (gpointer *) &priv->application);
      break;
    case PROP_MESH:
      pm_tray_set_mesh (self, g_value_get_object (value));
      break;
    case PROP_RUN_IN_BACKGROUND:
      pm_tray_set_run_in_background (self, g_value_get_boolean (value));
      break;
    case PROP_NEEDS_ATTENTION:
      pm_tray_set_needs_attention (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_tray_class_init (PmTrayClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags   ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->constructed = pm_tray_constructed;
  object_class->dispose = pm_tray_dispose;
  object_class->finalize = pm_tray_finalize;
  object_class->get_property = pm_tray_get_property;
  object_class->set_property = pm_tray_set_property;

  properties[PROP_APPLICATION] =
    g_param_spec_object ("application", NULL, NULL, G_TYPE_APPLICATION,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_MESH] =
    g_param_spec_object ("mesh", NULL, NULL, PM_TYPE_MESH,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_AVAILABLE] = g_param_spec_boolean ("available", NULL, NULL, FALSE, ro);
  properties[PROP_KEEP_RUNNING] = g_param_spec_boolean ("keep-running", NULL, NULL, FALSE, ro);
  properties[PROP_RUN_IN_BACKGROUND] =
    g_param_spec_boolean ("run-in-background", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_NEEDS_ATTENTION] =
    g_param_spec_boolean ("needs-attention", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, PM_TYPE_TRAY_STATE, PM_TRAY_STATE_OFFLINE, ro);
  properties[PROP_ICON_NAME] = g_param_spec_string ("icon-name", NULL, NULL, NULL, ro);
  properties[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, NULL, ro);
  properties[PROP_TOOLTIP] = g_param_spec_string ("tooltip", NULL, NULL, NULL, ro);
  properties[PROP_MENU] = g_param_spec_object ("menu", NULL, NULL, G_TYPE_MENU_MODEL, ro);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_tray_init (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  priv->peers = g_ptr_array_new_with_free_func (g_object_unref);
  priv->lost_grace_ms = PM_TRAY_LOST_GRACE_S * 1000;
  priv->actions = g_simple_action_group_new ();
  g_action_map_add_action_entries (G_ACTION_MAP (priv->actions), tray_actions,
                                   G_N_ELEMENTS (tray_actions), self);
}

/* --- public API ------------------------------------------------------------------ */

PmTray *
pm_tray_new (GApplication *application,
             PmMesh       *mesh)
{
  GType type = PM_TYPE_TRAY;

  g_return_val_if_fail (G_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (mesh == NULL || PM_IS_MESH (mesh), NULL);

#ifdef __linux__
  type = PM_TYPE_TRAY_SNI;
#endif
  return g_object_new (type, "application", application, "mesh", mesh, NULL);
}

GApplication *
pm_tray_get_application (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return priv->application;
}

PmMesh *
pm_tray_get_mesh (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return priv->mesh;
}

void
pm_tray_set_mesh (PmTray *self,
                  PmMesh *mesh)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);
  GListModel    *peers;

  g_return_if_fail (PM_IS_TRAY (self));
  g_return_if_fail (mesh == NULL || PM_IS_MESH (mesh));

  if (priv->mesh == mesh)
    return;
  if (priv->mesh != NULL)
    {
      g_clear_signal_handler (&priv->items_changed_id, pm_mesh_get_peers (priv->mesh));
      g_ptr_array_foreach (priv->peers, unwatch_peer, self);
      g_ptr_array_set_size (priv->peers, 0);
      g_clear_object (&priv->mesh);
    }
  if (mesh != NULL)
    {
      priv->mesh = g_object_ref (mesh);
      peers = pm_mesh_get_peers (mesh);
      priv->items_changed_id =
        g_signal_connect (peers, "items-changed", G_CALLBACK (on_peers_changed), self);
      on_peers_changed (peers, 0, 0, g_list_model_get_n_items (peers), self);
    }
  else
    update_state (self);
  notify (self, PROP_MESH);
}

gboolean
pm_tray_get_available (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), FALSE);
  return priv->available;
}

void
pm_tray_set_available (PmTray  *self,
                       gboolean available)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_if_fail (PM_IS_TRAY (self));

  available = !!available;
  if (priv->available == available)
    return;
  g_debug ("tray %s", available ? "available" : "not available");
  priv->available = available;
  if (available)
    g_clear_handle_id (&priv->lost_grace_id, g_source_remove);
  else if (priv->holding && !priv->run_in_background)
    priv->lost_grace_id = g_timeout_add (priv->lost_grace_ms, on_lost_grace, self);
  update_hold (self);
  notify (self, PROP_AVAILABLE);
}

void
pm_tray_set_lost_grace (PmTray  *self,
                        unsigned grace_ms)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_if_fail (PM_IS_TRAY (self));
  priv->lost_grace_ms = grace_ms;
}

gboolean
pm_tray_get_keep_running (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), FALSE);
  return priv->holding;
}

gboolean
pm_tray_get_run_in_background (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), FALSE);
  return priv->run_in_background;
}

void
pm_tray_set_run_in_background (PmTray  *self,
                               gboolean run_in_background)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_if_fail (PM_IS_TRAY (self));

  run_in_background = !!run_in_background;
  if (priv->run_in_background == run_in_background)
    return;
  priv->run_in_background = run_in_background;
  update_hold (self);
  notify (self, PROP_RUN_IN_BACKGROUND);
}

gboolean
pm_tray_get_needs_attention (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), FALSE);
  return priv->needs_attention;
}

void
pm_tray_set_needs_attention (PmTray  *self,
                             gboolean needs_attention)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_if_fail (PM_IS_TRAY (self));

  needs_attention = !!needs_attention;
  if (priv->needs_attention == needs_attention)
    return;
  priv->needs_attention = needs_attention;
  notify (self, PROP_NEEDS_ATTENTION);
}

PmTrayState
pm_tray_get_state (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), PM_TRAY_STATE_OFFLINE);
  return priv->state;
}

const char *
pm_tray_get_icon_name (PmTray *self)
{
  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return pm_tray_state_get_icon_name (pm_tray_get_state (self));
}

const char *
pm_tray_get_title (PmTray *self)
{
  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return _ ("PiperMesh");
}

const char *
pm_tray_get_tooltip (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return priv->tooltip;
}

GMenuModel *
pm_tray_get_menu (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return G_MENU_MODEL (priv->menu);
}

GActionGroup *
pm_tray_get_action_group (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_val_if_fail (PM_IS_TRAY (self), NULL);
  return G_ACTION_GROUP (priv->actions);
}

void
pm_tray_activate (PmTray *self)
{
  PmTrayPrivate *priv = pm_tray_get_instance_private (self);

  g_return_if_fail (PM_IS_TRAY (self));
  if (priv->application != NULL)
    g_application_activate (priv->application);
}
