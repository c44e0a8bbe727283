/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-tray"

#include "pm-tray-sni.h"

#include <libdbusmenu-glib/dbusmenu-glib.h>
#include <string.h>
#include <unistd.h>

/* https://www.freedesktop.org/wiki/Specifications/StatusNotifierItem/ as KDE
 * implements it (org.kde.*, IconThemePath). */
static const char item_xml[] =
  "<node>"
  " <interface name='org.kde.StatusNotifierItem'>"
  "  <property name='Category' type='s' access='read'/>"
  "  <property name='Id' type='s' access='read'/>"
  "  <property name='Title' type='s' access='read'/>"
  "  <property name='Status' type='s' access='read'/>"
  "  <property name='WindowId' type='i' access='read'/>"
  "  <property name='IconThemePath' type='s' access='read'/>"
  "  <property name='IconName' type='s' access='read'/>"
  "  <property name='IconPixmap' type='a(iiay)' access='read'/>"
  "  <property name='OverlayIconName' type='s' access='read'/>"
  "  <property name='OverlayIconPixmap' type='a(iiay)' access='read'/>"
  "  <property name='AttentionIconName' type='s' access='read'/>"
  "  <property name='AttentionIconPixmap' type='a(iiay)' access='read'/>"
  "  <property name='AttentionMovieName' type='s' access='read'/>"
  "  <property name='ToolTip' type='(sa(iiay)ss)' access='read'/>"
  "  <property name='ItemIsMenu' type='b' access='read'/>"
  "  <property name='Menu' type='o' access='read'/>"
  "  <method name='ContextMenu'>"
  "   <arg name='x' type='i' direction='in'/><arg name='y' type='i' direction='in'/>"
  "  </method>"
  "  <method name='Activate'>"
  "   <arg name='x' type='i' direction='in'/><arg name='y' type='i' direction='in'/>"
  "  </method>"
  "  <method name='SecondaryActivate'>"
  "   <arg name='x' type='i' direction='in'/><arg name='y' type='i' direction='in'/>"
  "  </method>"
  "  <method name='Scroll'>"
  "   <arg name='delta' type='i' direction='in'/><arg name='orientation' type='s' direction='in'/>"
  "  </method>"
  "  <signal name='NewTitle'/>"
  "  <signal name='NewIcon'/>"
  "  <signal name='NewAttentionIcon'/>"
  "  <signal name='NewOverlayIcon'/>"
  "  <signal name='NewToolTip'/>"
  "  <signal name='NewStatus'><arg name='status' type='s'/></signal>"
  " </interface>"
  "</node>";

struct _PmTraySni {
  PmTray parent_instance;

  GCancellable     *cancellable;
  GDBusConnection  *connection;
  GDBusNodeInfo    *node_info;
  guint             object_id;
  guint             owner_id;
  char             *bus_name; /* org.kde.StatusNotifierItem-PID-N */
  char             *service;  /* what the watcher was (or is) told */
  guint             watcher_id;
  char             *watcher_owner; /* the watcher's unique name while there is one */
  guint             host_signal_id;
  unsigned          generation; /* bumped as the watcher comes or goes: drops stale replies */
  unsigned          registrations;
  DbusmenuServer   *menu_server;
  DbusmenuMenuitem *menu_root;
};

G_DEFINE_FINAL_TYPE (PmTraySni, pm_tray_sni, PM_TYPE_TRAY)

static unsigned instance_counter;

/* --- the item's properties ------------------------------------------------------ */

static const char *
item_status (PmTraySni *self)
{
  return pm_tray_get_needs_attention (PM_TRAY (self)) ? "NeedsAttention" : "Active";
}

static GVariant *
empty_pixmaps (void)
{
  return g_variant_new_array (G_VARIANT_TYPE ("(iiay)"), NULL, 0);
}

static GVariant *
item_tooltip (PmTraySni *self)
{
  PmTray *tray = PM_TRAY (self);

  return g_variant_new ("(s@a(iiay)ss)", pm_tray_get_icon_name (tray), empty_pixmaps (),
                        pm_tray_get_title (tray), pm_tray_get_tooltip (tray));
}

static GVariant *
item_get_property (GDBusConnection *connection,
                   const char      *sender,
                   const char      *object_path,
                   const char      *interface_name,
                   const char      *property_name,
                   GError         **error,
                   gpointer         user_data)
{
  PmTraySni    *self = user_data;
  PmTray       *tray = PM_TRAY (self);
  GApplication *app = pm_tray_get_application (tray);
  const char   *id = app != NULL ? g_application_get_application_id (app) : NULL;

  if (g_str_equal (property_name, "Category"))
    return g_variant_new_string ("ApplicationStatus");
  if (g_str_equal (property_name, "Id"))
    return g_variant_new_string (id != NULL ? id : "pipermesh");
  if (g_str_equal (property_name, "Title"))
    return g_variant_new_string (pm_tray_get_title (tray));
  if (g_str_equal (property_name, "Status"))
    return g_variant_new_string (item_status (self));
  if (g_str_equal (property_name, "WindowId"))
    return g_variant_new_int32 (0);
  if (g_str_equal (property_name, "IconName"))
    return g_variant_new_string (pm_tray_get_icon_name (tray));
  if (g_str_equal (property_name, "IconThemePath") ||
      g_str_equal (property_name, "OverlayIconName") ||
      g_str_equal (property_name, "AttentionIconName") ||
      g_str_equal (property_name, "AttentionMovieName"))
    return g_variant_new_string ("");
  if (g_str_has_suffix (property_name, "Pixmap"))
    return empty_pixmaps ();
  if (g_str_equal (property_name, "ToolTip"))
    return item_tooltip (self);
  if (g_str_equal (property_name, "ItemIsMenu"))
    return g_variant_new_boolean (FALSE);
  if (g_str_equal (property_name, "Menu"))
    return g_variant_new_object_path (PM_TRAY_SNI_MENU_PATH);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "No property %s", property_name);
  return NULL;
}

static void
item_method_call (GDBusConnection       *connection,
                  const char            *sender,
                  const char            *object_path,
                  const char            *interface_name,
                  const char            *method_name,
                  GVariant              *parameters,
                  GDBusMethodInvocation *invocation,
                  gpointer               user_data)
{
  PmTraySni *self = user_data;

  /* A left click opens the window. The menu is served at Menu, so
   * ContextMenu (for hosts that cannot read it) and the middle click and
   * scroll have nothing more to do. */
  if (g_str_equal (method_name, "Activate"))
    pm_tray_activate (PM_TRAY (self));
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static const GDBusInterfaceVTable item_vtable = {
  item_method_call,
  item_get_property,
  NULL,
  { 0 },
};

static void
emit (PmTraySni  *self,
      const char *signal,
      GVariant   *parameters)
{
  g_autoptr (GError) error = NULL;

  if (self->connection == NULL || self->object_id == 0)
    {
      if (parameters != NULL)
        g_variant_unref (g_variant_ref_sink (parameters));
      return;
    }
  if (!g_dbus_connection_emit_signal (self->connection, NULL, PM_TRAY_SNI_OBJECT_PATH,
                                      PM_TRAY_SNI_INTERFACE,
                                      signal, parameters, &error))
    g_debug ("Could not emit %s: %s", signal, error->message);
}

/* Also org.freedesktop.DBus.Properties.PropertiesChanged, for generic
 * clients; the hosts listen to the New* signals. */
static void
emit_changed (PmTraySni  *self,
              const char *property,
              GVariant   *value)
{
  GVariantBuilder changed;

  if (self->connection == NULL || self->object_id == 0)
    {
      g_variant_unref (g_variant_ref_sink (value));
      return;
    }
  g_variant_builder_init (&changed, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&changed, "{sv}", property, value);
  g_dbus_connection_emit_signal (self->connection, NULL, PM_TRAY_SNI_OBJECT_PATH,
                                 "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                 g_variant_new ("(sa{sv}as)", PM_TRAY_SNI_INTERFACE, &changed,
                                                NULL),
                                 NULL);
}

static void
on_state_changed (PmTraySni *self)
{
  emit_changed (self, "IconName", g_variant_new_string (pm_tray_get_icon_name (PM_TRAY (self))));
  emit (self, "NewIcon", NULL);
}

static void
on_tooltip_changed (PmTraySni *self)
{
  emit_changed (self, "ToolTip", item_tooltip (self));
  emit (self, "NewToolTip", NULL);
}

static void
on_attention_changed (PmTraySni *self)
{
  emit_changed (self, "Status", g_variant_new_string (item_status (self)));
  emit (self, "NewStatus", g_variant_new ("(s)", item_status (self)));
}

/* --- the menu: PmTray's GMenuModel as DbusmenuMenuitems --------------------------- */

typedef struct {
  char       *label; /* NULL for a separator */
  char       *action;
  GVariant   *target;
  GMenuModel *submenu;
} Entry;

static void
entry_clear (gpointer data)
{
  Entry *e = data;

  g_free (e->label);
  g_free (e->action);
  g_clear_pointer (&e->target, g_variant_unref);
  g_clear_object (&e->submenu);
}

/* Sections become runs of items with a separator between non-empty runs. */
static void
flatten (GMenuModel *model,
         GArray     *entries)
{
  unsigned n = (unsigned) g_menu_model_get_n_items (model);

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (GMenuModel) section =
        g_menu_model_get_item_link (model, (int) i, G_MENU_LINK_SECTION);
      Entry e = { 0 };

      if (section != NULL)
        {
          if (entries->len > 0 && g_array_index (entries, Entry, entries->len - 1).label != NULL)
            g_array_append_val (entries, e); /* a separator */
          flatten (section, entries);
          continue;
        }
      g_menu_model_get_item_attribute (model, (int) i, G_MENU_ATTRIBUTE_LABEL, "s", &e.label);
      if (e.label == NULL)
        e.label = g_strdup ("");
      g_menu_model_get_item_attribute (model, (int) i, G_MENU_ATTRIBUTE_ACTION, "s", &e.action);
      e.target =
        g_menu_model_get_item_attribute_value (model, (int) i, G_MENU_ATTRIBUTE_TARGET, NULL);
      e.submenu = g_menu_model_get_item_link (model, (int) i, G_MENU_LINK_SUBMENU);
      g_array_append_val (entries, e);
    }
}

static void
set_string_property (DbusmenuMenuitem *item,
                     const char       *name,
                     const char       *value)
{
  if (value == NULL)
    {
      if (dbusmenu_menuitem_property_exist (item, name))
        dbusmenu_menuitem_property_remove (item, name);
    }
  else if (g_strcmp0 (dbusmenu_menuitem_property_get (item, name), value) != 0)
    dbusmenu_menuitem_property_set (item, name, value);
}

static void
set_enabled (DbusmenuMenuitem *item,
             gboolean          enabled)
{
  /* Enabled is the default; only a disabled item carries the property. */
  if (enabled)
    {
      if (dbusmenu_menuitem_property_exist (item, DBUSMENU_MENUITEM_PROP_ENABLED))
        dbusmenu_menuitem_property_remove (item, DBUSMENU_MENUITEM_PROP_ENABLED);
    }
  else if (!dbusmenu_menuitem_property_exist (item, DBUSMENU_MENUITEM_PROP_ENABLED))
    dbusmenu_menuitem_property_set_bool (item, DBUSMENU_MENUITEM_PROP_ENABLED, FALSE);
}

static void
on_item_activated (DbusmenuMenuitem *item,
                   guint             timestamp,
                   gpointer          user_data)
{
  PmTraySni  *self = user_data;
  const char *action = g_object_get_data (G_OBJECT (item), "pm-action");
  GVariant   *target = g_object_get_data (G_OBJECT (item), "pm-target");

  /* Submenus are "activated" too when they open: they have no action. */
  if (action == NULL || !g_str_has_prefix (action, "tray."))
    return;
  g_debug ("menu: %s", action);
  g_action_group_activate_action (pm_tray_get_action_group (PM_TRAY (self)),
                                  action + strlen ("tray."), target);
}

static void
reconcile (PmTraySni        *self,
           DbusmenuMenuitem *parent,
           GMenuModel       *model)
{
  g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  GActionGroup *actions = pm_tray_get_action_group (PM_TRAY (self));
  GList        *children;
  unsigned      n_children;

  g_array_set_clear_func (entries, entry_clear);
  if (model != NULL)
    flatten (model, entries);
  while (entries->len > 0 && g_array_index (entries, Entry, entries->len - 1).label == NULL)
    g_array_remove_index (entries, entries->len - 1);

  /* Items are reused by position and only their properties change, so a new
   * round trip is a property update, not a new layout. */
  children = dbusmenu_menuitem_get_children (parent);
  n_children = g_list_length (children);
  while (n_children > entries->len)
    {
      GList *last = g_list_last (dbusmenu_menuitem_get_children (parent));

      dbusmenu_menuitem_child_delete (parent, last->data);
      n_children--;
    }
  for (unsigned i = 0; i < entries->len; i++)
    {
      Entry            *e = &g_array_index (entries, Entry, i);
      DbusmenuMenuitem *item;
      const char       *action = NULL;
      gboolean          enabled;

      if (i < n_children)
        item = g_list_nth_data (dbusmenu_menuitem_get_children (parent), i);
      else
        {
          DbusmenuMenuitem *fresh = dbusmenu_menuitem_new ();

          g_signal_connect_object (fresh, DBUSMENU_MENUITEM_SIGNAL_ITEM_ACTIVATED,
                                   G_CALLBACK (on_item_activated),
                                   self, 0);
          dbusmenu_menuitem_child_append (parent, fresh); /* the parent holds it */
          g_object_unref (fresh);
          item = fresh;
        }

      if (e->label == NULL)
        {
          set_string_property (item, DBUSMENU_MENUITEM_PROP_TYPE, DBUSMENU_CLIENT_TYPES_SEPARATOR);
          set_string_property (item, DBUSMENU_MENUITEM_PROP_LABEL, NULL);
          g_object_set_data (G_OBJECT (item), "pm-action", NULL);
          g_object_set_data (G_OBJECT (item), "pm-target", NULL);
          set_enabled (item, TRUE);
          reconcile (self, item, NULL);
          continue;
        }
      set_string_property (item, DBUSMENU_MENUITEM_PROP_TYPE, NULL);
      set_string_property (item, DBUSMENU_MENUITEM_PROP_LABEL, e->label);
      if (e->action != NULL && g_str_has_prefix (e->action, "tray."))
        action = e->action;
      g_object_set_data_full (G_OBJECT (item), "pm-action", g_strdup (action), g_free);
      g_object_set_data_full (G_OBJECT (item), "pm-target",
                              e->target != NULL ? g_variant_ref (e->target) : NULL,
                              (GDestroyNotify) g_variant_unref);
      if (e->submenu != NULL)
        enabled = TRUE;
      else
        enabled = action != NULL &&
                  g_action_group_get_action_enabled (actions, action + strlen ("tray."));
      set_enabled (item, enabled);
      reconcile (self, item, e->submenu);
    }
}

static void
on_menu_changed (PmTraySni *self)
{
  if (self->menu_root != NULL)
    reconcile (self, self->menu_root, pm_tray_get_menu (PM_TRAY (self)));
}

static void
on_tray_notify (GObject    *object,
                GParamSpec *pspec,
                gpointer    user_data)
{
  PmTraySni  *self = PM_TRAY_SNI (object);
  const char *name = g_param_spec_get_name (pspec);

  if (g_str_equal (name, "state"))
    on_state_changed (self);
  else if (g_str_equal (name, "tooltip"))
    on_tooltip_changed (self);
  else if (g_str_equal (name, "needs-attention"))
    on_attention_changed (self);
  else if (g_str_equal (name, "menu"))
    on_menu_changed (self);
}

/* --- the watcher ------------------------------------------------------------------ */

typedef struct {
  PmTraySni *self; /* not a reference: the call is cancelled in dispose */
  unsigned   generation;
} Call;

static Call *
call_new (PmTraySni *self)
{
  Call *call = g_new (Call, 1);

  call->self = self;
  call->generation = self->generation;
  return call;
}

/* NULL when the reply is stale or the tray is gone; frees @call. */
static PmTraySni *
call_finish (Call         *call,
             GObject      *source,
             GAsyncResult *result,
             GVariant    **reply,
             GError      **error)
{
  PmTraySni *self = call->self;
  unsigned   generation = call->generation;

  g_free (call);
  *reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, error);
  if (g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return NULL;
  if (generation != self->generation)
    return NULL;
  return self;
}

static void
on_host_property (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) value = NULL;
  PmTraySni *self = call_finish (user_data, source, result, &reply, &error);

  if (self == NULL)
    return;
  /* A watcher without the property still accepted the item: shown. */
  if (reply == NULL)
    {
      g_debug ("IsStatusNotifierHostRegistered: %s", error->message);
      pm_tray_set_available (PM_TRAY (self), TRUE);
      return;
    }
  g_variant_get (reply, "(v)", &value);
  pm_tray_set_available (PM_TRAY (self), !g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN) ||
                                           g_variant_get_boolean (value));
}

static void
query_host (PmTraySni *self)
{
  g_dbus_connection_call (self->connection, PM_TRAY_SNI_WATCHER, PM_TRAY_SNI_WATCHER_PATH,
                          "org.freedesktop.DBus.Properties", "Get",
                          g_variant_new ("(ss)", PM_TRAY_SNI_WATCHER,
                                         "IsStatusNotifierHostRegistered"),
                          G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NO_AUTO_START,
                          PM_TRAY_SNI_CALL_TIMEOUT_MS, self->cancellable, on_host_property,
                          call_new (self));
}

static void
on_registered (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  PmTraySni *self = call_finish (user_data, source, result, &reply, &error);

  if (self == NULL)
    return;
  if (reply == NULL)
    {
      g_message ("The tray's watcher refused the icon: %s", error->message);
      pm_tray_set_available (PM_TRAY (self), FALSE);
      return;
    }
  self->registrations++;
  g_debug ("registered %s with the watcher (%u)", self->service, self->registrations);
  query_host (self);
}

static void
register_item (PmTraySni *self)
{
  if (self->watcher_owner == NULL || self->service == NULL)
    return;
  g_dbus_connection_call (self->connection, PM_TRAY_SNI_WATCHER, PM_TRAY_SNI_WATCHER_PATH,
                          PM_TRAY_SNI_WATCHER, "RegisterStatusNotifierItem",
                          g_variant_new ("(s)", self->service), NULL,
                          G_DBUS_CALL_FLAGS_NO_AUTO_START, PM_TRAY_SNI_CALL_TIMEOUT_MS,
                          self->cancellable, on_registered, call_new (self));
}

static void
on_host_signal (GDBusConnection *connection,
                const char      *sender_name,
                const char      *object_path,
                const char      *interface_name,
                const char      *signal_name,
                GVariant        *parameters,
                gpointer         user_data)
{
  PmTraySni *self = user_data;

  /* A panel came or went: ask again whether any shows items. */
  if (self->registrations > 0)
    query_host (self);
}

static void
on_watcher_appeared (GDBusConnection *connection,
                     const char      *name,
                     const char      *name_owner,
                     gpointer         user_data)
{
  PmTraySni *self = user_data;

  g_debug ("watcher %s appeared (%s)", name, name_owner);
  g_free (self->watcher_owner);
  self->watcher_owner = g_strdup (name_owner);
  self->generation++;
  register_item (self);
}

static void
on_watcher_vanished (GDBusConnection *connection,
                     const char      *name,
                     gpointer         user_data)
{
  PmTraySni *self = user_data;

  if (self->watcher_owner != NULL)
    g_debug ("watcher %s vanished", name);
  g_clear_pointer (&self->watcher_owner, g_free);
  self->generation++;
  pm_tray_set_available (PM_TRAY (self), FALSE);
}

static void
start_watching (PmTraySni *self)
{
  if (self->watcher_id != 0)
    {
      /* The service changed (the name was lost): tell the watcher. */
      self->generation++;
      register_item (self);
      return;
    }
  self->host_signal_id =
    g_dbus_connection_signal_subscribe (self->connection, PM_TRAY_SNI_WATCHER, PM_TRAY_SNI_WATCHER,
                                        NULL, PM_TRAY_SNI_WATCHER_PATH, NULL,
                                        G_DBUS_SIGNAL_FLAGS_NONE, on_host_signal, self, NULL);
  self->watcher_id =
    g_bus_watch_name_on_connection (self->connection, PM_TRAY_SNI_WATCHER,
                                    G_BUS_NAME_WATCHER_FLAGS_NONE, on_watcher_appeared,
                                    on_watcher_vanished, self, NULL);
}

static void
on_name_acquired (GDBusConnection *connection,
                  const char      *name,
                  gpointer         user_data)
{
  PmTraySni *self = user_data;

  g_free (self->service);
  self->service = g_strdup (name);
  start_watching (self);
}

static void
on_name_lost (GDBusConnection *connection,
              const char      *name,
              gpointer         user_data)
{
  PmTraySni  *self = user_data;
  const char *unique = connection != NULL ? g_dbus_connection_get_unique_name (connection) : NULL;

  if (connection == NULL || g_dbus_connection_is_closed (connection) || unique == NULL)
    {
      pm_tray_set_available (PM_TRAY (self), FALSE);
      return;
    }
  if (g_strcmp0 (self->service, unique) == 0)
    return;
  /* A sandbox that lets us talk to the watcher but not own the name, or
   * the same PID in another namespace: the unique name does as well. */
  g_debug ("cannot own %s; registering %s", name, unique);
  g_free (self->service);
  self->service = g_strdup (unique);
  start_watching (self);
}

/* --- GObject ---------------------------------------------------------------------- */

static void
on_bus (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  g_autoptr (GError) error = NULL;
  GDBusConnection *connection = g_bus_get_finish (result, &error);
  PmTraySni       *self;

  if (connection == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_message ("No session bus, no tray icon: %s", error->message);
      return;
    }
  self = user_data;
  if (g_cancellable_is_cancelled (self->cancellable))
    {
      g_object_unref (connection);
      return;
    }
  self->connection = connection;
  self->object_id =
    g_dbus_connection_register_object (self->connection, PM_TRAY_SNI_OBJECT_PATH,
                                       self->node_info->interfaces[0], &item_vtable, self, NULL,
                                       &error);
  if (self->object_id == 0)
    {
      g_message ("No tray icon: %s", error->message);
      return;
    }

  self->menu_server = dbusmenu_server_new (PM_TRAY_SNI_MENU_PATH);
  self->menu_root = dbusmenu_menuitem_new ();
  dbusmenu_server_set_root (self->menu_server, self->menu_root);
  on_menu_changed (self);
  g_signal_connect (self, "notify", G_CALLBACK (on_tray_notify), NULL);

  self->bus_name = g_strdup_printf ("org.kde.StatusNotifierItem-%d-%u", (int) getpid (),
                                    ++instance_counter);
  self->owner_id =
    g_bus_own_name_on_connection (self->connection, self->bus_name,
                                  G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, on_name_acquired,
                                  on_name_lost, self, NULL);
}

static void
pm_tray_sni_constructed (GObject *object)
{
  PmTraySni *self = PM_TRAY_SNI (object);

  G_OBJECT_CLASS (pm_tray_sni_parent_class)->constructed (object);

  /* Not a reference: on_bus runs after dispose only as cancelled. */
  g_bus_get (G_BUS_TYPE_SESSION, self->cancellable, on_bus, self);
}

static void
pm_tray_sni_dispose (GObject *object)
{
  PmTraySni *self = PM_TRAY_SNI (object);

  g_cancellable_cancel (self->cancellable);
  g_signal_handlers_disconnect_by_func (self, on_tray_notify, NULL);
  g_clear_handle_id (&self->watcher_id, g_bus_unwatch_name);
  g_clear_handle_id (&self->owner_id, g_bus_unown_name);
  if (self->host_signal_id != 0)
    g_dbus_connection_signal_unsubscribe (self->connection, self->host_signal_id);
  self->host_signal_id = 0;
  if (self->object_id != 0)
    g_dbus_connection_unregister_object (self->connection, self->object_id);
  self->object_id = 0;
  g_clear_object (&self->menu_server);
  g_clear_object (&self->menu_root);
  g_clear_object (&self->connection);
  G_OBJECT_CLASS (pm_tray_sni_parent_class)->dispose (object);
}

static void
pm_tray_sni_finalize (GObject *object)
{
  PmTraySni *self = PM_TRAY_SNI (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->node_info, g_dbus_node_info_unref);
  g_free (self->bus_name);
  g_free (self->service);
  g_free (self->watcher_owner);
  G_OBJECT_CLASS (pm_tray_sni_parent_class)->finalize (object);
}

static void
pm_tray_sni_class_init (PmTraySniClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = pm_tray_sni_constructed;
  object_class->dispose = pm_tray_sni_dispose;
  object_class->finalize = pm_tray_sni_finalize;
}

static void
pm_tray_sni_init (PmTraySni *self)
{
  self->cancellable = g_cancellable_new ();
  self->node_info = g_dbus_node_info_new_for_xml (item_xml, NULL);
  g_assert (self->node_info != NULL);
}

const char *
pm_tray_sni_get_service (PmTraySni *self)
{
  g_return_val_if_fail (PM_IS_TRAY_SNI (self), NULL);
  return self->registrations > 0 ? self->service : NULL;
}

const char *
pm_tray_sni_get_bus_name (PmTraySni *self)
{
  g_return_val_if_fail (PM_IS_TRAY_SNI (self), NULL);
  return self->bus_name;
}

unsigned
pm_tray_sni_get_registrations (PmTraySni *self)
{
  g_return_val_if_fail (PM_IS_TRAY_SNI (self), 0);
  return self->registrations;
}
