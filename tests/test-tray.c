/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The tray (app/pm-tray.c, app/pm-tray-sni.c) and the notifications
 * (app/pm-notifier.c), with no display: they are GIO only.
 *
 * Pure functions first: peers' states to the tray's state, the tooltip and
 * menu wording, the notifications' debounce. Then, on a private session bus
 * (meson runs this binary under dbus-run-session and sets
 * PM_TEST_PRIVATE_BUS=1; without it those cases skip, so a run by hand never
 * touches a desktop's bus), against a StatusNotifierWatcher and a
 * notification server implemented here, each on a connection of its own as a
 * panel would be:
 *  - without a watcher the tray is not available and holds nothing;
 *  - with one it registers org.kde.StatusNotifierItem-PID-N; its properties
 *    read through org.freedesktop.DBus.Properties.Get; com.canonical.dbusmenu
 *    GetLayout lists the device and the fixed items; clicking Connect in the
 *    menu connects the real peer, and IconName, ToolTip and Status follow
 *    with NewIcon/NewToolTip/NewStatus; Activate and the menu items reach the
 *    application; releasing and re-owning the watcher's name makes it
 *    register again; a watcher that never comes back gives the window back;
 *  - two real meshes (LAN-only, loopback) joined through a UDP forwarder that
 *    the test can black-hole: the tray goes connected, connecting while the
 *    path is dead, connected again; "connection lost" arrives only after the
 *    delay and "connected again" replaces it;
 *  - a pairing request's Accept button reaches app.pair-accept with the code.
 * Every wait is bounded.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libdbusmenu-glib/dbusmenu-glib.h>
#include <stdlib.h>
#include <string.h>

#include "pm-identity.h"
#include "pm-mesh.h"
#include "pm-notifier.h"
#include "pm-test-util.h"
#include "pm-tray-sni.h"
#include "pm-tray.h"

#define APP_ID  "org.pipermesh.TestTray"
#define WAIT_MS 10000

static gboolean have_private_bus;

/* --- the application every bus test shares -------------------------------------- */

typedef struct {
  GApplication *app;
  unsigned      activations;
  unsigned      pairs;
  unsigned      quits;
  char         *accepted; /* the last app.pair-accept parameter */
  char         *rejected;
} App;

static App the_app;

static void
on_activate (GApplication *app,
             gpointer      user_data)
{
  the_app.activations++;
}

static void
action_pair (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  the_app.pairs++;
}

static void
action_quit (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  the_app.quits++;
}

static void
action_pair_accept (GSimpleAction *action,
                    GVariant      *parameter,
                    gpointer       user_data)
{
  g_free (the_app.accepted);
  the_app.accepted = g_variant_dup_string (parameter, NULL);
}

static void
action_pair_reject (GSimpleAction *action,
                    GVariant      *parameter,
                    gpointer       user_data)
{
  g_free (the_app.rejected);
  the_app.rejected = g_variant_dup_string (parameter, NULL);
}

static const GActionEntry app_actions[] = {
  { "pair", action_pair, NULL, NULL, NULL, { 0 } },
  { "quit", action_quit, NULL, NULL, NULL, { 0 } },
  { "pair-accept", action_pair_accept, "s", NULL, NULL, { 0 } },
  { "pair-reject", action_pair_reject, "s", NULL, NULL, { 0 } },
};

static void
app_setup (void)
{
  g_autoptr (GError) error = NULL;

  the_app.app = g_application_new (APP_ID, G_APPLICATION_DEFAULT_FLAGS);
  g_signal_connect (the_app.app, "activate", G_CALLBACK (on_activate), NULL);
  g_action_map_add_action_entries (G_ACTION_MAP (the_app.app), app_actions,
                                   G_N_ELEMENTS (app_actions), NULL);
  g_assert_true (g_application_register (the_app.app, NULL, &error));
  g_assert_no_error (error);
}

static gboolean
require_bus (void)
{
  const char *why = g_getenv ("PM_TEST_BUS_SKIP");

  if (why != NULL)
    g_test_skip (why);
  else if (!have_private_bus)
    g_test_skip ("needs a private session bus: run it through meson test "
                 "(dbus-run-session, PM_TEST_PRIVATE_BUS=1)");
  return have_private_bus;
}

/* A connection of its own, as another process (a panel) has. */
static GDBusConnection *
new_connection (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  GDBusConnection *connection;

  g_assert_no_error (error);
  connection = g_dbus_connection_new_for_address_sync (address,
                                                       G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                         G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                       NULL, NULL, &error);
  g_assert_no_error (error);
  return connection;
}

static void
spin_ms (unsigned ms)
{
  gboolean never = FALSE;

  pm_test_spin_until (pm_test_flag_is_set, &never, ms);
}

/* --- a StatusNotifierWatcher ------------------------------------------------------ */

static const char watcher_xml[] =
  "<node>"
  " <interface name='org.kde.StatusNotifierWatcher'>"
  "  <method name='RegisterStatusNotifierItem'><arg name='service' type='s' direction='in'/></method>"
  "  <method name='RegisterStatusNotifierHost'><arg name='service' type='s' direction='in'/></method>"
  "  <property name='RegisteredStatusNotifierItems' type='as' access='read'/>"
  "  <property name='IsStatusNotifierHostRegistered' type='b' access='read'/>"
  "  <property name='ProtocolVersion' type='i' access='read'/>"
  "  <signal name='StatusNotifierItemRegistered'><arg type='s'/></signal>"
  "  <signal name='StatusNotifierItemUnregistered'><arg type='s'/></signal>"
  "  <signal name='StatusNotifierHostRegistered'/>"
  "  <signal name='StatusNotifierHostUnregistered'/>"
  " </interface>"
  "</node>";

typedef struct {
  GDBusConnection *connection; /* the panel's: the watcher, and the host reading items */
  GDBusNodeInfo   *info;
  guint            object_id;
  guint            owner_id;
  gboolean         owned;
  GPtrArray       *items; /* services registered with this instance of the watcher */
  unsigned         registrations;
  char            *last_sender;
} Watcher;

static void
watcher_method (GDBusConnection       *connection,
                const char            *sender,
                const char            *object_path,
                const char            *interface_name,
                const char            *method_name,
                GVariant              *parameters,
                GDBusMethodInvocation *invocation,
                gpointer               user_data)
{
  Watcher    *w = user_data;
  const char *service;

  if (g_str_equal (method_name, "RegisterStatusNotifierItem"))
    {
      g_variant_get (parameters, "(&s)", &service);
      /* As KDE's watcher: a path means "this object of the sender". */
      if (service[0] == '/')
        g_ptr_array_add (w->items, g_strconcat (sender, service, NULL));
      else
        g_ptr_array_add (w->items, g_strdup (service));
      w->registrations++;
      g_free (w->last_sender);
      w->last_sender = g_strdup (sender);
      g_dbus_connection_emit_signal (connection, NULL, object_path, interface_name, "StatusNotifierItemRegistered",
                                     g_variant_new ("(s)", service), NULL);
    }
  g_dbus_method_invocation_return_value (invocation, NULL);
}

static GVariant *
watcher_get_property (GDBusConnection *connection,
                      const char      *sender,
                      const char      *object_path,
                      const char      *interface_name,
                      const char      *property_name,
                      GError         **error,
                      gpointer         user_data)
{
  Watcher *w = user_data;

  if (g_str_equal (property_name, "IsStatusNotifierHostRegistered"))
    return g_variant_new_boolean (TRUE);
  if (g_str_equal (property_name, "ProtocolVersion"))
    return g_variant_new_int32 (0);
  if (g_str_equal (property_name, "RegisteredStatusNotifierItems"))
    return g_variant_new_strv ((const char *const *) w->items->pdata, (gssize) w->items->len);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "%s", property_name);
  return NULL;
}

static const GDBusInterfaceVTable watcher_vtable = { watcher_method, watcher_get_property, NULL, { 0 } };

static void
on_watcher_acquired (GDBusConnection *connection,
                     const char      *name,
                     gpointer         user_data)
{
  ((Watcher *) user_data)->owned = TRUE;
}

static void
on_watcher_lost (GDBusConnection *connection,
                 const char      *name,
                 gpointer         user_data)
{
  ((Watcher *) user_data)->owned = FALSE;
}

/* (Re)starts the watcher: owns the name, with no item registered. */
static void
watcher_own (Watcher *w)
{
  g_ptr_array_set_size (w->items, 0);
  w->owner_id = g_bus_own_name_on_connection (w->connection, PM_TRAY_SNI_WATCHER, G_BUS_NAME_OWNER_FLAGS_NONE,
                                              on_watcher_acquired, on_watcher_lost, w, NULL);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &w->owned, WAIT_MS));
}

static void
watcher_release (Watcher *w)
{
  g_clear_handle_id (&w->owner_id, g_bus_unown_name);
  w->owned = FALSE;
}

static Watcher *
watcher_new (GDBusConnection *connection,
             gboolean         own)
{
  g_autoptr (GError) error = NULL;
  Watcher *w = g_new0 (Watcher, 1);

  w->connection = g_object_ref (connection);
  w->items = g_ptr_array_new_with_free_func (g_free);
  w->info = g_dbus_node_info_new_for_xml (watcher_xml, &error);
  g_assert_no_error (error);
  w->object_id = g_dbus_connection_register_object (connection, PM_TRAY_SNI_WATCHER_PATH, w->info->interfaces[0],
                                                    &watcher_vtable, w, NULL, &error);
  g_assert_no_error (error);
  if (own)
    watcher_own (w);
  return w;
}

static void
watcher_free (Watcher *w)
{
  watcher_release (w);
  g_dbus_connection_unregister_object (w->connection, w->object_id);
  g_dbus_node_info_unref (w->info);
  g_ptr_array_unref (w->items);
  g_free (w->last_sender);
  g_object_unref (w->connection);
  g_free (w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Watcher, watcher_free)

/* --- an org.freedesktop.Notifications server ---------------------------------- */

static const char notifications_xml[] =
  "<node>"
  " <interface name='org.freedesktop.Notifications'>"
  "  <method name='Notify'>"
  "   <arg type='s' direction='in'/><arg type='u' direction='in'/><arg type='s' direction='in'/>"
  "   <arg type='s' direction='in'/><arg type='s' direction='in'/><arg type='as' direction='in'/>"
  "   <arg type='a{sv}' direction='in'/><arg type='i' direction='in'/><arg type='u' direction='out'/>"
  "  </method>"
  "  <method name='CloseNotification'><arg type='u' direction='in'/></method>"
  "  <method name='GetCapabilities'><arg type='as' direction='out'/></method>"
  "  <method name='GetServerInformation'>"
  "   <arg type='s' direction='out'/><arg type='s' direction='out'/><arg type='s' direction='out'/>"
  "   <arg type='s' direction='out'/>"
  "  </method>"
  "  <signal name='NotificationClosed'><arg type='u'/><arg type='u'/></signal>"
  "  <signal name='ActionInvoked'><arg type='u'/><arg type='s'/></signal>"
  " </interface>"
  "</node>";

typedef struct {
  guint32 id;
  guint32 replaces_id;
  char   *summary;
  char   *body;
  char  **actions;
  guint8  urgency;
  int64_t received_us;
} Notification;

static void
notification_free (gpointer data)
{
  Notification *n = data;

  g_free (n->summary);
  g_free (n->body);
  g_strfreev (n->actions);
  g_free (n);
}

typedef struct {
  GDBusConnection *connection;
  GDBusNodeInfo   *info;
  guint            object_id;
  guint            owner_id;
  gboolean         owned;
  guint32          next_id;
  GPtrArray       *received; /* Notification */
} Notifications;

static void
notifications_method (GDBusConnection       *connection,
                      const char            *sender,
                      const char            *object_path,
                      const char            *interface_name,
                      const char            *method_name,
                      GVariant              *parameters,
                      GDBusMethodInvocation *invocation,
                      gpointer               user_data)
{
  Notifications *s = user_data;

  if (g_str_equal (method_name, "Notify"))
    {
      Notification *n = g_new0 (Notification, 1);
      g_autoptr (GVariant) hints = NULL;

      g_variant_get (parameters, "(&suss&s^as@a{sv}i)", NULL, &n->replaces_id, NULL, &n->summary, &n->body,
                     &n->actions, &hints, NULL);
      n->body = g_strdup (n->body);
      g_variant_lookup (hints, "urgency", "y", &n->urgency);
      n->id = n->replaces_id != 0 ? n->replaces_id : ++s->next_id;
      n->received_us = g_get_monotonic_time ();
      g_ptr_array_add (s->received, n);
      g_dbus_method_invocation_return_value (invocation, g_variant_new ("(u)", n->id));
    }
  else if (g_str_equal (method_name, "GetCapabilities"))
    {
      const char *caps[] = { "actions", "body", NULL };
      g_dbus_method_invocation_return_value (invocation, g_variant_new ("(^as)", caps));
    }
  else if (g_str_equal (method_name, "GetServerInformation"))
    g_dbus_method_invocation_return_value (invocation, g_variant_new ("(ssss)", "test", "pipermesh", "1", "1.2"));
  else
    g_dbus_method_invocation_return_value (invocation, NULL);
}

static const GDBusInterfaceVTable notifications_vtable = { notifications_method, NULL, NULL, { 0 } };

static void
on_notifications_acquired (GDBusConnection *connection,
                           const char      *name,
                           gpointer         user_data)
{
  ((Notifications *) user_data)->owned = TRUE;
}

static Notifications *
notifications_new (void)
{
  g_autoptr (GError) error = NULL;
  Notifications *s = g_new0 (Notifications, 1);

  s->connection = new_connection ();
  s->received = g_ptr_array_new_with_free_func (notification_free);
  s->info = g_dbus_node_info_new_for_xml (notifications_xml, &error);
  g_assert_no_error (error);
  s->object_id = g_dbus_connection_register_object (s->connection, "/org/freedesktop/Notifications",
                                                    s->info->interfaces[0], &notifications_vtable, s, NULL, &error);
  g_assert_no_error (error);
  s->owner_id = g_bus_own_name_on_connection (s->connection, "org.freedesktop.Notifications",
                                              G_BUS_NAME_OWNER_FLAGS_NONE, on_notifications_acquired, NULL, s, NULL);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &s->owned, WAIT_MS));
  return s;
}

static void
notifications_free (Notifications *s)
{
  g_bus_unown_name (s->owner_id);
  g_dbus_connection_unregister_object (s->connection, s->object_id);
  g_dbus_node_info_unref (s->info);
  g_ptr_array_unref (s->received);
  g_object_unref (s->connection);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Notifications, notifications_free)

typedef struct {
  Notifications *server;
  unsigned       count;
} Count;

static gboolean
has_count (gpointer data)
{
  Count *c = data;

  return c->server->received->len >= c->count;
}

static Notification *
wait_notification (Notifications *s,
                   unsigned       index)
{
  Count c = { s, index + 1 };

  g_assert_true (pm_test_spin_until (has_count, &c, WAIT_MS));
  return g_ptr_array_index (s->received, index);
}

/* --- reading the item as a panel does ------------------------------------------ */

/* The tray answers from this thread's main context, so every call to it
 * spins that context while it waits (a _sync call would block it). */
typedef struct {
  GVariant *reply;
  GError   *error;
  gboolean  done;
} CallResult;

static void
on_call_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  CallResult *r = user_data;

  r->reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &r->error);
  r->done = TRUE;
}

static GVariant *
call_wait (GDBusConnection    *connection,
           const char         *destination,
           const char         *path,
           const char         *interface,
           const char         *method,
           GVariant           *parameters,
           const GVariantType *reply_type)
{
  CallResult r = { 0 };

  g_dbus_connection_call (connection, destination, path, interface, method, parameters, reply_type,
                          G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, on_call_done, &r);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &r.done, WAIT_MS + 1000));
  g_assert_no_error (r.error);
  return r.reply;
}

static GVariant *
get_item_property (GDBusConnection *connection,
                   const char      *service,
                   const char      *name)
{
  g_autoptr (GVariant) reply = NULL;
  GVariant *value;

  reply = call_wait (connection, service, PM_TRAY_SNI_OBJECT_PATH, "org.freedesktop.DBus.Properties", "Get",
                     g_variant_new ("(ss)", PM_TRAY_SNI_INTERFACE, name), G_VARIANT_TYPE ("(v)"));
  g_variant_get (reply, "(v)", &value);
  return value;
}

static char *
get_item_string (GDBusConnection *connection,
                 const char      *service,
                 const char      *name)
{
  g_autoptr (GVariant) value = get_item_property (connection, service, name);

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING) ||
                 g_variant_is_of_type (value, G_VARIANT_TYPE_OBJECT_PATH));
  return g_variant_dup_string (value, NULL);
}

static void
call_item (GDBusConnection *connection,
           const char      *service,
           const char      *method,
           GVariant        *parameters)
{
  g_autoptr (GVariant) reply = NULL;

  reply = call_wait (connection, service, PM_TRAY_SNI_OBJECT_PATH, PM_TRAY_SNI_INTERFACE, method, parameters, NULL);
}

/* One menu item as GetLayout describes it. */
typedef struct MenuNode {
  int        id;
  char      *label; /* with the mnemonic underscores taken out; NULL for a separator */
  gboolean   enabled;
  GPtrArray *children;
} MenuNode;

static void
menu_node_free (gpointer data)
{
  MenuNode *node = data;

  g_free (node->label);
  g_ptr_array_unref (node->children);
  g_free (node);
}

static char *
strip_mnemonics (const char *label)
{
  GString *out = g_string_new (NULL);

  for (const char *p = label; *p != '\0'; p++)
    {
      if (*p == '_')
        {
          if (p[1] != '_')
            continue;
          p++;
        }
      g_string_append_c (out, *p);
    }
  return g_string_free (out, FALSE);
}

static MenuNode *
menu_node_parse (GVariant *layout)
{
  MenuNode *node = g_new0 (MenuNode, 1);
  g_autoptr (GVariant) props = NULL;
  g_autoptr (GVariant) children = NULL;
  const char *label = NULL, *type = NULL;
  gboolean    enabled = TRUE;

  g_variant_get (layout, "(i@a{sv}@av)", &node->id, &props, &children);
  g_variant_lookup (props, "label", "&s", &label);
  g_variant_lookup (props, "type", "&s", &type);
  g_variant_lookup (props, "enabled", "b", &enabled);
  node->enabled = enabled;
  if (g_strcmp0 (type, "separator") != 0)
    node->label = strip_mnemonics (label != NULL ? label : "");
  node->children = g_ptr_array_new_with_free_func (menu_node_free);
  for (gsize i = 0; i < g_variant_n_children (children); i++)
    {
      g_autoptr (GVariant) boxed = g_variant_get_child_value (children, i);
      g_autoptr (GVariant) child = g_variant_get_variant (boxed);
      g_ptr_array_add (node->children, menu_node_parse (child));
    }
  return node;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MenuNode, menu_node_free)

static MenuNode *
get_layout (GDBusConnection *connection,
            const char      *service)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) layout = NULL;
  const char *props[] = { NULL };

  reply = call_wait (connection, service, PM_TRAY_SNI_MENU_PATH, "com.canonical.dbusmenu", "GetLayout",
                     g_variant_new ("(ii^as)", 0, -1, props), G_VARIANT_TYPE ("(u(ia{sv}av))"));
  layout = g_variant_get_child_value (reply, 1);
  return menu_node_parse (layout);
}

static MenuNode *
find_item (MenuNode   *node,
           const char *prefix)
{
  if (node->label != NULL && g_str_has_prefix (node->label, prefix))
    return node;
  for (unsigned i = 0; i < node->children->len; i++)
    {
      MenuNode *found = find_item (g_ptr_array_index (node->children, i), prefix);
      if (found != NULL)
        return found;
    }
  return NULL;
}

static void
click (GDBusConnection *connection,
       const char      *service,
       int              id)
{
  g_autoptr (GVariant) reply = NULL;

  reply = call_wait (connection, service, PM_TRAY_SNI_MENU_PATH, "com.canonical.dbusmenu", "Event",
                     g_variant_new ("(isvu)", id, "clicked", g_variant_new_int32 (0), 0), NULL);
}

typedef struct {
  GDBusConnection *connection;
  const char      *service;
  const char      *prefix;
} LayoutWait;

static gboolean
layout_has (gpointer data)
{
  LayoutWait *w = data;
  g_autoptr (MenuNode) root = get_layout (w->connection, w->service);

  return find_item (root, w->prefix) != NULL;
}

static void
wait_layout (GDBusConnection *connection,
             const char      *service,
             const char      *prefix)
{
  LayoutWait w = { connection, service, prefix };

  if (!pm_test_spin_until (layout_has, &w, WAIT_MS))
    g_error ("the menu never showed an item starting with “%s”", prefix);
}

/* The item's signals as the panel's connection receives them. */
typedef struct {
  unsigned         new_icon;
  unsigned         new_tooltip;
  unsigned         new_status;
  char            *last_status;
  guint            id;
  GDBusConnection *connection;
} Signals;

static void
on_item_signal (GDBusConnection *connection,
                const char      *sender_name,
                const char      *object_path,
                const char      *interface_name,
                const char      *signal_name,
                GVariant        *parameters,
                gpointer         user_data)
{
  Signals *s = user_data;

  if (g_str_equal (signal_name, "NewIcon"))
    s->new_icon++;
  else if (g_str_equal (signal_name, "NewToolTip"))
    s->new_tooltip++;
  else if (g_str_equal (signal_name, "NewStatus"))
    {
      s->new_status++;
      g_free (s->last_status);
      g_variant_get (parameters, "(s)", &s->last_status);
    }
}

static void
signals_watch (Signals         *s,
               GDBusConnection *connection,
               const char      *service)
{
  s->connection = connection;
  s->id = g_dbus_connection_signal_subscribe (connection, service, PM_TRAY_SNI_INTERFACE, NULL,
                                              PM_TRAY_SNI_OBJECT_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                              on_item_signal, s, NULL);
}

static void
signals_clear (Signals *s)
{
  if (s->id != 0)
    g_dbus_connection_signal_unsubscribe (s->connection, s->id);
  g_free (s->last_status);
}

/* --- meshes ------------------------------------------------------------------------ */

typedef struct {
  char       *dir;
  PmIdentity *identity;
  PmMesh     *mesh;
} Device;

static void
device_start (Device     *d,
              const char *root,
              const char *name,
              uint16_t    port)
{
  g_autoptr (GError) error = NULL;
  PmMeshLimits limits;

  if (d->identity == NULL)
    {
      d->dir = g_build_filename (root, name, NULL);
      d->identity = pm_identity_load_or_create (d->dir, PM_KEY_STORE_FILE, NULL, &error);
      g_assert_no_error (error);
    }
  pm_mesh_limits_default (&limits);
  /* Short path timers, so a dead path shows within a second. */
  limits.heartbeat_us = 100 * 1000;
  limits.trust_us = 400 * 1000;
  limits.probe_interval_us = 50 * 1000;
  limits.reprobe_us = 300 * 1000;
  d->mesh = pm_mesh_new (d->identity, NULL, NULL, &limits);
  g_assert_true (pm_mesh_start (d->mesh, port, &error));
  g_assert_no_error (error);
}

static void
device_clear (Device *d)
{
  if (d->mesh != NULL)
    pm_mesh_stop (d->mesh);
  g_clear_object (&d->mesh);
  g_clear_object (&d->identity);
  g_free (d->dir);
}

/* @address: "IP:PORT" where the peer is reached, or NULL. */
static PmPeer *
add_peer (PmMesh     *mesh,
          const char *id,
          const char *name,
          PmIdentity *identity,
          const char *address)
{
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);

  if (address != NULL)
    {
      g_autofree char *host = g_strdup (address);
      char            *colon = strrchr (host, ':');

      *colon = '\0';
      g_ptr_array_add (addresses, g_inet_socket_address_new_from_string (host, (guint) atoi (colon + 1)));
    }
  return pm_mesh_add_peer (mesh, id, name, "linux", pm_identity_get_public_key (identity), addresses);
}

static char *
make_root (void)
{
  g_autoptr (GError) error = NULL;
  char *root = g_dir_make_tmp ("pipermesh-tray-XXXXXX", &error);

  g_assert_no_error (error);
  return root;
}

static void
remove_tree (const char *path)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileEnumerator) e =
    g_file_enumerate_children (file, G_FILE_ATTRIBUTE_STANDARD_NAME "," G_FILE_ATTRIBUTE_STANDARD_TYPE,
                               G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);

  while (e != NULL)
    {
      g_autoptr (GFileInfo) info = g_file_enumerator_next_file (e, NULL, NULL);
      g_autofree char *child = NULL;

      if (info == NULL)
        break;
      child = g_build_filename (path, g_file_info_get_name (info), NULL);
      if (g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

/* --- a UDP forwarder the test can black-hole ------------------------------------- */

/* A talks to 127.0.0.1:port (front); the forwarder relays to B from its back
 * socket and B's answers to A. While black_hole is set both ways are dropped:
 * a path that dies without any socket closing. */
typedef struct {
  GSocket        *front;
  GSocket        *back;
  GSocketAddress *target; /* B */
  GSocketAddress *client; /* A, as last heard */
  GSource        *front_source;
  GSource        *back_source;
  gboolean        black_hole;
  uint16_t        port;
  char           *buffer;
} Forwarder;

#define FORWARDER_BUFFER 65536

static GSocket *
udp_loopback_socket (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  return socket;
}

static gboolean
on_forwarder_readable (GSocket     *socket,
                       GIOCondition condition,
                       gpointer     user_data)
{
  Forwarder *f = user_data;

  for (;;)
    {
      g_autoptr (GSocketAddress) from = NULL;
      gssize n = g_socket_receive_from (socket, &from, f->buffer, FORWARDER_BUFFER, NULL, NULL);

      if (n < 0)
        break;
      if (socket == f->front)
        {
          g_set_object (&f->client, from);
          if (!f->black_hole)
            g_socket_send_to (f->back, f->target, f->buffer, (gsize) n, NULL, NULL);
        }
      else if (!f->black_hole && f->client != NULL)
        g_socket_send_to (f->front, f->client, f->buffer, (gsize) n, NULL, NULL);
    }
  return G_SOURCE_CONTINUE;
}

static Forwarder *
forwarder_new (uint16_t target_port)
{
  Forwarder *f = g_new0 (Forwarder, 1);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) local = NULL;

  f->buffer = g_malloc (FORWARDER_BUFFER);
  f->front = udp_loopback_socket ();
  f->back = udp_loopback_socket ();
  f->target = g_inet_socket_address_new (loopback, target_port);
  local = g_socket_get_local_address (f->front, NULL);
  f->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  f->front_source = g_socket_create_source (f->front, G_IO_IN, NULL);
  g_source_set_callback (f->front_source, G_SOURCE_FUNC (on_forwarder_readable), f, NULL);
  g_source_attach (f->front_source, NULL);
  f->back_source = g_socket_create_source (f->back, G_IO_IN, NULL);
  g_source_set_callback (f->back_source, G_SOURCE_FUNC (on_forwarder_readable), f, NULL);
  g_source_attach (f->back_source, NULL);
  return f;
}

static void
forwarder_free (Forwarder *f)
{
  g_source_destroy (f->front_source);
  g_source_unref (f->front_source);
  g_source_destroy (f->back_source);
  g_source_unref (f->back_source);
  g_object_unref (f->front);
  g_object_unref (f->back);
  g_object_unref (f->target);
  g_clear_object (&f->client);
  g_free (f->buffer);
  g_free (f);
}

/* --- pure functions ---------------------------------------------------------------- */

static void
test_state_for_peer (void)
{
  static const struct {
    PmPeerState peer;
    PmPathType  path;
    PmTrayState tray;
  } cases[] = {
    { PM_PEER_STATE_IDLE, PM_PATH_NONE, PM_TRAY_STATE_OFFLINE },
    { PM_PEER_STATE_IDLE, PM_PATH_LAN, PM_TRAY_STATE_OFFLINE },
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, PM_TRAY_STATE_CONNECTING },
    { PM_PEER_STATE_CONNECTING, PM_PATH_RELAY, PM_TRAY_STATE_CONNECTING },
    { PM_PEER_STATE_CONNECTED, PM_PATH_NONE, PM_TRAY_STATE_CONNECTING }, /* the path died */
    { PM_PEER_STATE_CONNECTED, PM_PATH_RELAY, PM_TRAY_STATE_CONNECTED },
    { PM_PEER_STATE_CONNECTED, PM_PATH_DIRECT, PM_TRAY_STATE_CONNECTED },
    { PM_PEER_STATE_CONNECTED, PM_PATH_LAN, PM_TRAY_STATE_CONNECTED },
  };

  for (unsigned i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpint (pm_tray_state_for_peer (cases[i].peer, cases[i].path), ==, cases[i].tray);
  g_assert_cmpstr (pm_tray_state_get_icon_name (PM_TRAY_STATE_CONNECTED), ==, "network-vpn-symbolic");
  g_assert_cmpstr (pm_tray_state_get_icon_name (PM_TRAY_STATE_CONNECTING), ==, "network-vpn-acquiring-symbolic");
  g_assert_cmpstr (pm_tray_state_get_icon_name (PM_TRAY_STATE_OFFLINE), ==, "network-vpn-disabled-symbolic");
  g_assert_cmpstr (pm_tray_state_to_string (PM_TRAY_STATE_CONNECTING), ==, "connecting");
  g_assert_cmpint (pm_tray_state_for_peers (NULL), ==, PM_TRAY_STATE_OFFLINE);
}

/* Real peers of a real (LAN-only) mesh: the aggregate, the tooltip and the
 * menu labels as their states change. */
static void
test_describe_peers (void)
{
  g_autofree char *root = make_root ();
  Device           a = { 0 }, b = { 0 }, c = { 0 };
  GListModel      *peers;
  PmPeer          *laptop, *mac;
  g_autofree char *text = NULL;
  g_autofree char *label = NULL;

  device_start (&a, root, "a", 0);
  device_start (&b, root, "b", 0);
  device_start (&c, root, "c", 0);
  pm_mesh_stop (b.mesh);
  pm_mesh_stop (c.mesh);
  peers = pm_mesh_get_peers (a.mesh);

  text = pm_tray_describe (NULL);
  g_assert_cmpstr (text, ==, "Not running");
  g_clear_pointer (&text, g_free);
  text = pm_tray_describe (peers);
  g_assert_cmpstr (text, ==, "No devices yet");
  g_clear_pointer (&text, g_free);

  /* Nothing answers at port 9 (discard): a session is wanted, never made. */
  laptop = add_peer (a.mesh, "laptop-id", "laptop", b.identity, "127.0.0.1:9");
  mac = add_peer (a.mesh, "mac-id", "my_mac", c.identity, "127.0.0.1:9");
  g_assert_cmpint (pm_tray_state_for_peers (peers), ==, PM_TRAY_STATE_OFFLINE);
  text = pm_tray_describe (peers);
  g_assert_cmpstr (text, ==, "Not connected");
  g_clear_pointer (&text, g_free);
  label = pm_tray_peer_label (mac, TRUE);
  g_assert_cmpstr (label, ==, "my__mac — Offline");
  g_clear_pointer (&label, g_free);
  label = pm_tray_peer_label (mac, FALSE);
  g_assert_cmpstr (label, ==, "my__mac — Not connected");
  g_clear_pointer (&label, g_free);

  pm_peer_connect (laptop);
  g_assert_cmpint (pm_peer_get_state (laptop), ==, PM_PEER_STATE_CONNECTING);
  g_assert_cmpint (pm_tray_state_for_peers (peers), ==, PM_TRAY_STATE_CONNECTING);
  text = pm_tray_describe (peers);
  g_assert_cmpstr (text, ==, "Connecting to laptop…");
  g_clear_pointer (&text, g_free);
  label = pm_tray_peer_label (laptop, FALSE);
  g_assert_cmpstr (label, ==, "laptop — Connecting…");
  g_clear_pointer (&label, g_free);

  pm_peer_connect (mac);
  text = pm_tray_describe (peers);
  g_assert_cmpstr (text, ==, "Connecting to 2 devices…");
  g_clear_pointer (&text, g_free);

  pm_peer_disconnect (laptop);
  pm_peer_disconnect (mac);
  g_assert_cmpint (pm_tray_state_for_peers (peers), ==, PM_TRAY_STATE_OFFLINE);

  device_clear (&a);
  device_clear (&b);
  device_clear (&c);
  remove_tree (root);
}

/* The debounce, step by step: the peer's state and path at a time (s), and
 * what the notifier must say then and when it must be asked again (s, 0 for
 * never). */
static void
test_debounce (void)
{
  static const struct {
    PmPeerState     state;
    PmPathType      path;
    int             at_s;
    PmNotifierEvent event;
    int             deadline_s;
  } steps[] = {
    /* Connecting for the first time, and failing: nothing was lost. */
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 1, PM_NOTIFIER_EVENT_NONE, 0 },
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 60, PM_NOTIFIER_EVENT_NONE, 0 },
    /* Up: still nothing to say. */
    { PM_PEER_STATE_CONNECTED, PM_PATH_LAN, 61, PM_NOTIFIER_EVENT_NONE, 0 },
    /* A drop shorter than the delay (a path switch, a reconnect): nothing. */
    { PM_PEER_STATE_CONNECTED, PM_PATH_NONE, 70, PM_NOTIFIER_EVENT_NONE, 75 },
    { PM_PEER_STATE_CONNECTED, PM_PATH_RELAY, 74, PM_NOTIFIER_EVENT_NONE, 0 },
    /* Down again: the delay counts from there. */
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 80, PM_NOTIFIER_EVENT_NONE, 85 },
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 84, PM_NOTIFIER_EVENT_NONE, 85 },
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 85, PM_NOTIFIER_EVENT_LOST, 0 },
    /* Said once. */
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 99, PM_NOTIFIER_EVENT_NONE, 0 },
    /* Back: restored, once. */
    { PM_PEER_STATE_CONNECTED, PM_PATH_DIRECT, 100, PM_NOTIFIER_EVENT_RESTORED, 0 },
    { PM_PEER_STATE_CONNECTED, PM_PATH_LAN, 101, PM_NOTIFIER_EVENT_NONE, 0 },
    /* Lost again, then the user disconnects: "lost" is taken back. */
    { PM_PEER_STATE_CONNECTED, PM_PATH_NONE, 110, PM_NOTIFIER_EVENT_NONE, 115 },
    { PM_PEER_STATE_CONNECTED, PM_PATH_NONE, 116, PM_NOTIFIER_EVENT_LOST, 0 },
    { PM_PEER_STATE_IDLE, PM_PATH_NONE, 117, PM_NOTIFIER_EVENT_WITHDRAW, 0 },
    /* Connecting again after that is a first connect: nothing was lost. */
    { PM_PEER_STATE_CONNECTING, PM_PATH_NONE, 130, PM_NOTIFIER_EVENT_NONE, 0 },
    { PM_PEER_STATE_CONNECTED, PM_PATH_LAN, 131, PM_NOTIFIER_EVENT_NONE, 0 },
    /* A disconnect is never "lost" by itself. */
    { PM_PEER_STATE_IDLE, PM_PATH_NONE, 132, PM_NOTIFIER_EVENT_NONE, 0 },
    { PM_PEER_STATE_IDLE, PM_PATH_NONE, 200, PM_NOTIFIER_EVENT_NONE, 0 },
  };
  const int64_t   delay = 5 * G_USEC_PER_SEC;
  PmNotifierTrack track = { 0 };

  for (unsigned i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      int64_t         deadline = -1;
      PmNotifierEvent event;

      event = pm_notifier_track_update (&track, steps[i].state, steps[i].path,
                                        steps[i].at_s * G_USEC_PER_SEC, delay, &deadline);
      g_test_message ("step %u at %d s", i, steps[i].at_s);
      g_assert_cmpint (event, ==, steps[i].event);
      g_assert_cmpint (deadline, ==, (int64_t) steps[i].deadline_s * G_USEC_PER_SEC);
    }
}

/* --- on the bus ---------------------------------------------------------------------- */

static GDBusConnection *panel; /* the desktop's connection: watcher, host, notifications' client */

static gboolean
tray_available (gpointer data)
{
  return pm_tray_get_available (data);
}

static gboolean
tray_unavailable (gpointer data)
{
  return !pm_tray_get_available (data);
}

static gboolean
tray_not_keeping (gpointer data)
{
  return !pm_tray_get_keep_running (data);
}

static gboolean
tray_has_bus_name (gpointer data)
{
  return pm_tray_sni_get_bus_name (data) != NULL;
}

static gboolean
name_has_owner (const char *name)
{
  g_autoptr (GVariant) reply = call_wait (panel, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                          "org.freedesktop.DBus", "NameHasOwner", g_variant_new ("(s)", name),
                                          G_VARIANT_TYPE ("(b)"));
  gboolean has;

  g_variant_get (reply, "(b)", &has);
  return has;
}

static gboolean
bus_name_owned (gpointer data)
{
  const char *name = pm_tray_sni_get_bus_name (data);

  return name != NULL && name_has_owner (name);
}

static void
dispose_tray (PmTray *tray)
{
  g_object_unref (tray);
  /* Let the unregistrations and cancelled calls run. */
  spin_ms (50);
}

static void
test_tray_without_watcher (void)
{
  PmTray *tray;

  if (!require_bus ())
    return;
  g_assert_false (name_has_owner (PM_TRAY_SNI_WATCHER));
  tray = pm_tray_new (the_app.app, NULL);
  g_assert_true (PM_IS_TRAY_SNI (tray));
  g_assert_true (pm_test_spin_until (tray_has_bus_name, tray, WAIT_MS));
  g_assert_true (g_str_has_prefix (pm_tray_sni_get_bus_name (PM_TRAY_SNI (tray)), "org.kde.StatusNotifierItem-"));
  g_assert_true (pm_test_spin_until (bus_name_owned, tray, WAIT_MS));
  spin_ms (200);
  /* A normal window app: nothing shown, nothing held. */
  g_assert_false (pm_tray_get_available (tray));
  g_assert_false (pm_tray_get_keep_running (tray));
  g_assert_cmpuint (pm_tray_sni_get_registrations (PM_TRAY_SNI (tray)), ==, 0);
  g_assert_cmpstr (pm_tray_get_tooltip (tray), ==, "Not running");
  /* Background running was asked for: the app is held all the same. */
  pm_tray_set_run_in_background (tray, TRUE);
  g_assert_true (pm_tray_get_keep_running (tray));
  pm_tray_set_run_in_background (tray, FALSE);
  g_assert_false (pm_tray_get_keep_running (tray));
  dispose_tray (tray);
}

typedef struct {
  PmPeer     *peer;
  PmPeerState state;
} PeerWait;

static gboolean
peer_in_state (gpointer data)
{
  PeerWait *w = data;

  return pm_peer_get_state (w->peer) == w->state;
}

static void
wait_peer_state (PmPeer     *peer,
                 PmPeerState state)
{
  PeerWait w = { peer, state };

  g_assert_true (pm_test_spin_until (peer_in_state, &w, WAIT_MS));
}

typedef struct {
  unsigned *counter;
  unsigned  target;
} CounterWait;

static gboolean
counter_reached (gpointer data)
{
  CounterWait *w = data;

  return *w->counter >= w->target;
}

static void
wait_counter (unsigned *counter,
              unsigned  target)
{
  CounterWait w = { counter, target };

  g_assert_true (pm_test_spin_until (counter_reached, &w, WAIT_MS));
}

static void
click_item (const char *service,
            const char *prefix)
{
  g_autoptr (MenuNode) root = get_layout (panel, service);
  MenuNode *item = find_item (root, prefix);

  if (item == NULL)
    g_error ("no menu item starting with “%s”", prefix);
  g_assert_true (item->enabled);
  click (panel, service, item->id);
}

static void
assert_item_string (const char *service,
                    const char *property,
                    const char *expected)
{
  g_autofree char *value = get_item_string (panel, service, property);

  g_assert_cmpstr (value, ==, expected);
}

static char *
item_tooltip_text (const char *service)
{
  g_autoptr (GVariant) tooltip = get_item_property (panel, service, "ToolTip");
  const char *title, *text;

  g_assert_true (g_variant_is_of_type (tooltip, G_VARIANT_TYPE ("(sa(iiay)ss)")));
  g_variant_get (tooltip, "(&s@a(iiay)&s&s)", NULL, NULL, &title, &text);
  g_assert_cmpstr (title, ==, "PiperMesh");
  return g_strdup (text);
}

static gboolean
watcher_lists (Watcher    *w,
               const char *service)
{
  for (unsigned i = 0; i < w->items->len; i++)
    if (g_str_equal (w->items->pdata[i], service))
      return TRUE;
  return FALSE;
}

typedef struct {
  PmTray  *tray;
  unsigned registrations;
} RegistrationWait;

static gboolean
registered_again (gpointer data)
{
  RegistrationWait *w = data;

  return pm_tray_sni_get_registrations (PM_TRAY_SNI (w->tray)) >= w->registrations &&
         pm_tray_get_available (w->tray);
}

static void
test_tray_with_watcher (void)
{
  g_autofree char *root = NULL;
  g_autoptr (Watcher) watcher = NULL;
  Device           a = { 0 }, b = { 0 };
  PmTray          *tray;
  PmPeer          *laptop;
  const char      *service;
  Signals          sig = { 0 };
  g_autofree char *tooltip = NULL;
  g_autoptr (MenuNode) layout = NULL;
  MenuNode        *device;
  unsigned         activations, registrations;
  RegistrationWait again;

  if (!require_bus ())
    return;
  root = make_root ();
  watcher = watcher_new (panel, TRUE);
  device_start (&a, root, "a", 0);
  device_start (&b, root, "b", 0);
  pm_mesh_stop (b.mesh); /* only its identity: nobody answers at port 9 */
  laptop = add_peer (a.mesh, "laptop-id", "laptop", b.identity, "127.0.0.1:9");

  tray = pm_tray_new (the_app.app, a.mesh);
  g_assert_true (pm_test_spin_until (tray_available, tray, WAIT_MS));

  /* It owns org.kde.StatusNotifierItem-PID-N and registered that name. */
  service = pm_tray_sni_get_service (PM_TRAY_SNI (tray));
  g_assert_cmpstr (service, ==, pm_tray_sni_get_bus_name (PM_TRAY_SNI (tray)));
  g_assert_true (g_str_has_prefix (service, "org.kde.StatusNotifierItem-"));
  g_assert_true (watcher_lists (watcher, service));
  g_assert_cmpuint (watcher->registrations, ==, 1);
  g_assert_true (name_has_owner (service));
  g_assert_true (pm_tray_get_keep_running (tray));

  /* The properties, as a host reads them. */
  assert_item_string (service, "Category", "ApplicationStatus");
  assert_item_string (service, "Id", APP_ID);
  assert_item_string (service, "Title", "PiperMesh");
  assert_item_string (service, "Status", "Active");
  assert_item_string (service, "IconName", "network-vpn-disabled-symbolic");
  assert_item_string (service, "Menu", PM_TRAY_SNI_MENU_PATH);
  tooltip = item_tooltip_text (service);
  g_assert_cmpstr (tooltip, ==, "Not connected");
  g_clear_pointer (&tooltip, g_free);

  /* The menu: the device and its path, Connect, the fixed items. */
  wait_layout (panel, service, "laptop — Not connected");
  layout = get_layout (panel, service);
  device = find_item (layout, "laptop — Not connected");
  g_assert_cmpuint (device->children->len, ==, 1);
  g_assert_cmpstr (((MenuNode *) device->children->pdata[0])->label, ==, "Connect");
  g_assert_nonnull (find_item (layout, "Open PiperMesh"));
  g_assert_nonnull (find_item (layout, "Pair a Device…"));
  g_assert_nonnull (find_item (layout, "Quit"));
  /* Three sections: device, app, quit; separators between them. */
  g_assert_cmpuint (layout->children->len, ==, 6);
  g_assert_null (((MenuNode *) layout->children->pdata[1])->label);
  g_assert_null (((MenuNode *) layout->children->pdata[4])->label);

  /* Connect from the menu: the real peer connects, and the item follows. */
  signals_watch (&sig, panel, service);
  click (panel, service, ((MenuNode *) device->children->pdata[0])->id);
  wait_peer_state (laptop, PM_PEER_STATE_CONNECTING);
  wait_counter (&sig.new_icon, 1);
  wait_counter (&sig.new_tooltip, 1);
  assert_item_string (service, "IconName", "network-vpn-acquiring-symbolic");
  tooltip = item_tooltip_text (service);
  g_assert_cmpstr (tooltip, ==, "Connecting to laptop…");
  g_clear_pointer (&tooltip, g_free);
  wait_layout (panel, service, "laptop — Connecting…");
  click_item (service, "Disconnect");
  wait_peer_state (laptop, PM_PEER_STATE_IDLE);
  wait_counter (&sig.new_icon, 2);
  assert_item_string (service, "IconName", "network-vpn-disabled-symbolic");
  wait_layout (panel, service, "laptop — Not connected");

  /* A left click and the fixed items reach the application. */
  activations = the_app.activations;
  call_item (panel, service, "Activate", g_variant_new ("(ii)", 0, 0));
  wait_counter (&the_app.activations, activations + 1);
  click_item (service, "Open PiperMesh");
  wait_counter (&the_app.activations, activations + 2);
  click_item (service, "Pair a Device…");
  wait_counter (&the_app.pairs, 1);
  click_item (service, "Quit");
  wait_counter (&the_app.quits, 1);

  /* Status. */
  pm_tray_set_needs_attention (tray, TRUE);
  wait_counter (&sig.new_status, 1);
  g_assert_cmpstr (sig.last_status, ==, "NeedsAttention");
  assert_item_string (service, "Status", "NeedsAttention");
  pm_tray_set_needs_attention (tray, FALSE);
  wait_counter (&sig.new_status, 2);
  assert_item_string (service, "Status", "Active");

  /* The watcher restarts (the panel crashed and came back): unavailable
   * meanwhile, the app still held, then registered again. */
  registrations = pm_tray_sni_get_registrations (PM_TRAY_SNI (tray));
  watcher_release (watcher);
  g_assert_true (pm_test_spin_until (tray_unavailable, tray, WAIT_MS));
  g_assert_true (pm_tray_get_keep_running (tray));
  watcher_own (watcher);
  again = (RegistrationWait){ tray, registrations + 1 };
  g_assert_true (pm_test_spin_until (registered_again, &again, WAIT_MS));
  g_assert_true (watcher_lists (watcher, service));
  g_assert_cmpuint (watcher->registrations, ==, 2);
  g_assert_true (pm_tray_get_keep_running (tray));

  /* It goes and does not come back: the window is given back, and the app
   * is no longer held by the tray. */
  pm_tray_set_lost_grace (tray, 200);
  activations = the_app.activations;
  watcher_release (watcher);
  g_assert_true (pm_test_spin_until (tray_unavailable, tray, WAIT_MS));
  g_assert_true (pm_test_spin_until (tray_not_keeping, tray, WAIT_MS));
  g_assert_cmpuint (the_app.activations, ==, activations + 1);

  signals_clear (&sig);
  dispose_tray (tray);
  device_clear (&a);
  device_clear (&b);
  remove_tree (root);
}

typedef struct {
  PmTray     *tray;
  PmTrayState state;
} TrayWait;

static gboolean
tray_in_state (gpointer data)
{
  TrayWait *w = data;

  return pm_tray_get_state (w->tray) == w->state;
}

static void
wait_tray_state (PmTray     *tray,
                 PmTrayState state)
{
  TrayWait w = { tray, state };

  if (!pm_test_spin_until (tray_in_state, &w, WAIT_MS))
    g_error ("the tray stayed %s, never %s", pm_tray_state_to_string (pm_tray_get_state (tray)),
             pm_tray_state_to_string (state));
}

/* When the peer's path last went to none while its session stayed up. */
static void
on_path_changed (PmPeer     *peer,
                 GParamSpec *pspec,
                 int64_t    *down_us)
{
  if (pm_peer_get_path_type (peer) == PM_PATH_NONE && pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED)
    *down_us = g_get_monotonic_time ();
}

static void
test_connected_and_notifications (void)
{
  const int64_t    delay_us = 700 * 1000;
  g_autofree char *root = NULL;
  g_autoptr (Notifications) server = NULL;
  Device           a = { 0 }, b = { 0 };
  Forwarder       *forwarder;
  g_autofree char *address = NULL;
  g_autofree char *label = NULL;
  PmPeer          *host;
  PmTray          *tray;
  PmNotifier      *notifier;
  Notification    *lost, *restored;
  int64_t          down_us = 0;

  if (!require_bus ())
    return;
  root = make_root ();
  server = notifications_new ();
  device_start (&b, root, "host", 0);
  forwarder = forwarder_new (pm_mesh_get_port (b.mesh));
  device_start (&a, root, "laptop", 0);
  address = g_strdup_printf ("127.0.0.1:%u", forwarder->port);
  host = add_peer (a.mesh, "host-id", "host", b.identity, address);
  add_peer (b.mesh, "laptop-id", "laptop", a.identity, NULL);
  g_signal_connect (host, "notify::path-type", G_CALLBACK (on_path_changed), &down_us);

  tray = pm_tray_new (the_app.app, a.mesh);
  notifier = pm_notifier_new (the_app.app, a.mesh);
  pm_notifier_set_lost_delay (notifier, delay_us);

  pm_peer_connect (host);
  wait_tray_state (tray, PM_TRAY_STATE_CONNECTED);
  g_assert_cmpstr (pm_tray_get_icon_name (tray), ==, "network-vpn-symbolic");
  g_assert_cmpstr (pm_tray_get_tooltip (tray), ==, "Connected to host");
  label = pm_tray_peer_label (host, FALSE);
  g_test_message ("connected: %s", label);
  g_assert_true (g_str_has_prefix (label, "host — LAN · "));
  g_assert_true (g_str_has_suffix (label, " ms"));
  /* Connecting says nothing. */
  spin_ms (100);
  g_assert_cmpuint (server->received->len, ==, 0);

  /* The path dies: connecting, and "lost" only after the delay. */
  forwarder->black_hole = TRUE;
  wait_tray_state (tray, PM_TRAY_STATE_CONNECTING);
  g_assert_cmpint (down_us, >, 0);
  g_assert_cmpuint (server->received->len, ==, 0);
  lost = wait_notification (server, 0);
  g_test_message ("lost after %" G_GINT64_FORMAT " ms", (lost->received_us - down_us) / 1000);
  g_assert_cmpint (lost->received_us - down_us, >=, delay_us);
  g_assert_cmpstr (lost->summary, ==, "Connection to host lost");
  g_assert_cmpuint (lost->replaces_id, ==, 0);

  /* Back: connected, and "connected again" replaces "lost". */
  forwarder->black_hole = FALSE;
  wait_tray_state (tray, PM_TRAY_STATE_CONNECTED);
  restored = wait_notification (server, 1);
  g_assert_cmpstr (restored->summary, ==, "Connected to host again");
  g_assert_true (g_str_has_prefix (restored->body, "LAN · "));
  g_assert_cmpuint (restored->replaces_id, ==, lost->id);
  spin_ms (200);
  g_assert_cmpuint (server->received->len, ==, 2);

  g_signal_handlers_disconnect_by_func (host, on_path_changed, &down_us);
  g_object_unref (notifier);
  dispose_tray (tray);
  device_clear (&a);
  device_clear (&b);
  forwarder_free (forwarder);
  remove_tree (root);
}

static gboolean
string_is_set (gpointer data)
{
  return *(char **) data != NULL;
}

static void
test_pairing_notification (void)
{
  g_autoptr (Notifications) server = NULL;
  Notification *n;

  if (!require_bus ())
    return;
  server = notifications_new ();
  g_clear_pointer (&the_app.accepted, g_free);
  g_clear_pointer (&the_app.rejected, g_free);

  pm_notifier_pairing_request (the_app.app, "K7Q2-9XWD", "laptop");
  n = wait_notification (server, 0);
  g_assert_cmpstr (n->summary, ==, "Pairing Request");
  g_assert_nonnull (strstr (n->body, "“laptop”"));
  g_assert_nonnull (strstr (n->body, "K7Q2-9XWD"));
  /* G_NOTIFICATION_PRIORITY_HIGH: GLib 2.74 sends it as "normal" (1). */
  g_assert_cmpuint (n->urgency, >=, 1);
  g_assert_cmpuint (g_strv_length (n->actions), ==, 4);
  g_assert_cmpstr (n->actions[0], ==, "app.pair-accept::K7Q2-9XWD");
  g_assert_cmpstr (n->actions[1], ==, "Accept");
  g_assert_cmpstr (n->actions[2], ==, "app.pair-reject::K7Q2-9XWD");
  g_assert_cmpstr (n->actions[3], ==, "Reject");

  /* The user presses Accept on the notification. */
  g_dbus_connection_emit_signal (server->connection, NULL, "/org/freedesktop/Notifications",
                                 "org.freedesktop.Notifications", "ActionInvoked",
                                 g_variant_new ("(us)", n->id, n->actions[0]), NULL);
  g_assert_true (pm_test_spin_until (string_is_set, &the_app.accepted, WAIT_MS));
  g_assert_cmpstr (the_app.accepted, ==, "K7Q2-9XWD");
  g_assert_null (the_app.rejected);

  /* Another request, rejected. */
  pm_notifier_pairing_request (the_app.app, "M3PX-4TVA", "phone");
  n = wait_notification (server, 1);
  g_dbus_connection_emit_signal (server->connection, NULL, "/org/freedesktop/Notifications",
                                 "org.freedesktop.Notifications", "ActionInvoked",
                                 g_variant_new ("(us)", n->id, n->actions[2]), NULL);
  g_assert_true (pm_test_spin_until (string_is_set, &the_app.rejected, WAIT_MS));
  g_assert_cmpstr (the_app.rejected, ==, "M3PX-4TVA");
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  have_private_bus = g_getenv ("PM_TEST_BUS_SKIP") == NULL &&
                     g_strcmp0 (g_getenv ("PM_TEST_PRIVATE_BUS"), "1") == 0 &&
                     g_getenv ("DBUS_SESSION_BUS_ADDRESS") != NULL;
  if (have_private_bus)
    {
      app_setup ();
      panel = new_connection ();
    }

  g_test_add_func ("/tray/state-for-peer", test_state_for_peer);
  g_test_add_func ("/tray/describe-peers", test_describe_peers);
  g_test_add_func ("/notifier/debounce", test_debounce);
  g_test_add_func ("/tray/sni/without-watcher", test_tray_without_watcher);
  g_test_add_func ("/tray/sni/with-watcher", test_tray_with_watcher);
  g_test_add_func ("/tray/connected-and-notifications", test_connected_and_notifications);
  g_test_add_func ("/notifier/pairing-request", test_pairing_notification);
  status = g_test_run ();

  g_clear_object (&panel);
  g_clear_object (&the_app.app);
  g_free (the_app.accepted);
  g_free (the_app.rejected);
  return status;
}
