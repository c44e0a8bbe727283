/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-control"

#include "pm-control.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "pm-identity.h"

/* --- Errors ----------------------------------------------------------------- */

static const GDBusErrorEntry control_error_entries[] = {
  { PM_CONTROL_ERROR_NOT_RUNNING, "org.pipermesh.Control1.Error.NotRunning" },
  { PM_CONTROL_ERROR_ALREADY_RUNNING, "org.pipermesh.Control1.Error.AlreadyRunning" },
  { PM_CONTROL_ERROR_UNKNOWN_DEVICE, "org.pipermesh.Control1.Error.UnknownDevice" },
  { PM_CONTROL_ERROR_NOT_CONNECTED, "org.pipermesh.Control1.Error.NotConnected" },
  { PM_CONTROL_ERROR_FAILED, "org.pipermesh.Control1.Error.Failed" },
};

GQuark
pm_control_error_quark (void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain ("pm-control-error-quark", &quark, control_error_entries,
                                      G_N_ELEMENTS (control_error_entries));
  return (GQuark) quark;
}

/* --- Interface -------------------------------------------------------------- */

static const char control_introspection_xml[] =
  "<node>"
  "  <!-- org.pipermesh.Control1: a running pipermesh up/connect (cli/pm-control.h) -->"
  "  <interface name='org.pipermesh.Control1'>"
  "    <!-- self: id s (absent in LAN-only mode), name s, publicKey s, port q.\n"
  "         peers: id s, name s, type s, online b, state s, path s, rttMs d (absent\n"
  "         while unknown), endpoint s (absent without a direct path), txBytes t,\n"
  "         rxBytes t, rotations u, lastHandshake x (us since the epoch, absent if\n"
  "         none), directAttempts u, pathChanges u -->"
  "    <method name='GetStatus'>"
  "      <arg type='a{sv}' name='self' direction='out'/>"
  "      <arg type='aa{sv}' name='peers' direction='out'/>"
  "    </method>"
  "    <!-- device: an id or a name; path: none, relay, direct or lan -->"
  "    <method name='Ping'>"
  "      <arg type='s' name='device' direction='in'/>"
  "      <arg type='d' name='rtt_ms' direction='out'/>"
  "      <arg type='s' name='path' direction='out'/>"
  "    </method>"
  "  </interface>"
  "  <!-- Hello only, at /org/freedesktop/DBus: see control_bus_method_call() -->"
  "  <interface name='org.freedesktop.DBus'>"
  "    <method name='Hello'>"
  "      <arg type='s' name='unique_name' direction='out'/>"
  "    </method>"
  "  </interface>"
  "</node>";

static GDBusNodeInfo *
control_node_info (void)
{
  static GDBusNodeInfo *node = NULL;

  if (g_once_init_enter (&node))
    {
      GDBusNodeInfo *info = g_dbus_node_info_new_for_xml (control_introspection_xml, NULL);

      g_assert (info != NULL);
      g_once_init_leave (&node, info);
    }
  return node;
}

static GDBusInterfaceInfo *
control_interface_info (void)
{
  return control_node_info ()->interfaces[0];
}

static GDBusInterfaceInfo *
control_bus_interface_info (void)
{
  return control_node_info ()->interfaces[1];
}

static char *
control_socket_address (const char *path)
{
  g_autofree char *escaped = g_dbus_address_escape_value (path);

  return g_strconcat ("unix:path=", escaped, NULL);
}

/* The socket's path, or NULL (and an error) when it does not fit a sockaddr_un. */
static char *
control_socket_path (const char *state_dir,
                     GError    **error)
{
  g_autofree char *path = g_build_filename (state_dir, PM_CONTROL_SOCKET_NAME, NULL);

  if (strlen (path) >= sizeof ((struct sockaddr_un *) NULL)->sun_path)
    {
      g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                   "The control socket's path %s is longer than a Unix socket allows: "
                   "use a shorter --state-dir",
                   path);
      return NULL;
    }
  return g_steal_pointer (&path);
}

typedef struct {
  GDBusConnection *connection;
  GError          *error;
  gboolean         done;
} ConnectRun;

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ConnectRun *run = user_data;

  run->connection = g_dbus_connection_new_for_address_finish (result, &run->error);
  run->done = TRUE;
}

static void
on_connect_cancelled (GCancellable *cancellable,
                      gpointer      user_data)
{
  g_cancellable_cancel (user_data);
}

static gboolean
on_connect_timeout (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* Connects to @path within PM_CONTROL_CONNECT_TIMEOUT_MS, running the
 * thread-default main context meanwhile. A time-out fails with
 * G_IO_ERROR_TIMED_OUT: something took the connection and never answered. */
static GDBusConnection *
control_connect_bounded (const char   *path,
                         GCancellable *cancellable,
                         GError      **error)
{
  g_autofree char *address = control_socket_address (path);
  g_autoptr (GCancellable) bounded = g_cancellable_new ();
  g_autoptr (GSource) timeout = g_timeout_source_new (PM_CONTROL_CONNECT_TIMEOUT_MS);
  GMainContext *context = g_main_context_ref_thread_default ();
  ConnectRun    run = { NULL, NULL, FALSE };
  gulong        handler = 0;

  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (on_connect_cancelled),
                                     g_object_ref (bounded), g_object_unref);
  g_source_set_callback (timeout, on_connect_timeout, bounded, NULL);
  g_source_attach (timeout, context);
  g_dbus_connection_new_for_address (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                                     NULL, bounded, on_connected, &run);
  while (!run.done)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  g_cancellable_disconnect (cancellable, handler);
  g_main_context_unref (context);

  if (run.connection == NULL && g_cancellable_is_cancelled (bounded) &&
      !g_cancellable_is_cancelled (cancellable))
    {
      g_clear_error (&run.error);
      g_set_error (&run.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "%s took the connection but did not answer within %d s", path,
                   PM_CONTROL_CONNECT_TIMEOUT_MS / 1000);
    }
  if (run.connection == NULL)
    g_propagate_error (error, run.error);
  return run.connection;
}

/* --- Server ----------------------------------------------------------------- */

typedef struct {
  GDBusConnection *connection;
  unsigned         registration;
  unsigned         bus_registration;
  gulong           closed_handler;
} ControlClient;

struct _PmControl {
  GObject parent_instance;

  PmMesh       *mesh;
  char         *self_name;
  GDBusServer  *server;
  char         *socket_path; /* set while we own the socket */
  GPtrArray    *clients;     /* ControlClient* */
  GPtrArray    *pings;       /* PingRun* waiting for a session */
  GCancellable *cancellable; /* pings in flight */
};

G_DEFINE_FINAL_TYPE (PmControl, pm_control, G_TYPE_OBJECT)

typedef struct {
  PmControl             *control; /* owned */
  GDBusMethodInvocation *invocation;
  PmPeer                *peer;
  gulong                 state_handler;
  unsigned               timeout_id;
} PingRun;

static void
ping_run_free (PingRun *run)
{
  g_clear_signal_handler (&run->state_handler, run->peer);
  g_clear_handle_id (&run->timeout_id, g_source_remove);
  g_clear_object (&run->invocation);
  g_clear_object (&run->peer);
  g_clear_object (&run->control);
  g_free (run);
}

static void
control_client_free (ControlClient *client)
{
  g_clear_signal_handler (&client->closed_handler, client->connection);
  if (client->registration != 0)
    g_dbus_connection_unregister_object (client->connection, client->registration);
  if (client->bus_registration != 0)
    g_dbus_connection_unregister_object (client->connection, client->bus_registration);
  if (!g_dbus_connection_is_closed (client->connection))
    g_dbus_connection_close (client->connection, NULL, NULL, NULL);
  g_object_unref (client->connection);
  g_free (client);
}

/* Ends a pending ping's call with an error (or a result), and forgets it. */
static void
ping_run_return (PingRun  *run,
                 GVariant *result,
                 GError   *error)
{
  if (error != NULL)
    g_dbus_method_invocation_return_gerror (run->invocation, error);
  else
    g_dbus_method_invocation_return_value (run->invocation, result);
  g_clear_object (&run->invocation); /* return_* took its reference */
}

static void
on_ping_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  PingRun *run = user_data;
  g_autoptr (GError) error = NULL;
  double     rtt_ms = -1;
  PmPathType path = PM_PATH_NONE;

  if (pm_peer_ping_finish (PM_PEER (source), result, &rtt_ms, &path, &error))
    ping_run_return (run, g_variant_new ("(ds)", rtt_ms, pm_path_type_to_string (path)), NULL);
  else
    {
      g_autoptr (GError) mapped = NULL;

      if (g_error_matches (error, PM_PEER_ERROR, PM_PEER_ERROR_NOT_CONNECTED))
        mapped = g_error_new (PM_CONTROL_ERROR, PM_CONTROL_ERROR_NOT_CONNECTED,
                              "No session with %s: %s", pm_peer_get_name (run->peer),
                              error->message);
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        mapped = g_error_new_literal (PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                                      "pipermesh is stopping");
      else
        mapped = g_error_new (PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED, "No pong from %s: %s",
                              pm_peer_get_name (run->peer), error->message);
      ping_run_return (run, NULL, mapped);
    }
  ping_run_free (run);
}

static void
ping_run_send (PingRun *run)
{
  g_clear_signal_handler (&run->state_handler, run->peer);
  g_clear_handle_id (&run->timeout_id, g_source_remove);
  g_ptr_array_remove (run->control->pings, run); /* no free func: still ours */
  pm_peer_ping_async (run->peer, run->control->cancellable, on_ping_done, run);
}

static void
on_ping_peer_state (PmPeer     *peer,
                    GParamSpec *pspec,
                    gpointer    user_data)
{
  if (pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED)
    ping_run_send (user_data);
}

static gboolean
on_ping_connect_timeout (gpointer user_data)
{
  PingRun *run = user_data;
  g_autoptr (GError) error = NULL;

  run->timeout_id = 0;
  error = g_error_new (PM_CONTROL_ERROR, PM_CONTROL_ERROR_NOT_CONNECTED,
                       "No session with %s after %d s (is it online? see “pipermesh status”)",
                       pm_peer_get_name (run->peer), PM_CONTROL_PING_CONNECT_TIMEOUT_S);
  ping_run_return (run, NULL, error);
  g_ptr_array_remove (run->control->pings, run);
  ping_run_free (run);
  return G_SOURCE_REMOVE;
}

static void
control_handle_ping (PmControl             *self,
                     GDBusMethodInvocation *invocation,
                     const char            *device)
{
  PmPeer  *peer = pm_mesh_lookup_peer (self->mesh, device);
  PingRun *run;

  if (peer == NULL)
    {
      g_dbus_method_invocation_return_error (invocation, PM_CONTROL_ERROR,
                                             PM_CONTROL_ERROR_UNKNOWN_DEVICE,
                                             "No device “%s” in this account "
                                             "(see “pipermesh devices”)",
                                             device);
      return;
    }

  run = g_new0 (PingRun, 1);
  run->control = g_object_ref (self);
  run->invocation = g_object_ref (invocation);
  run->peer = g_object_ref (peer);
  if (pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED)
    {
      pm_peer_ping_async (peer, self->cancellable, on_ping_done, run);
      return;
    }
  /* Like `tailscale ping`: bring a session up first. */
  g_ptr_array_add (self->pings, run);
  run->state_handler = g_signal_connect (peer, "notify::state", G_CALLBACK (on_ping_peer_state),
                                         run);
  run->timeout_id = g_timeout_add_seconds (PM_CONTROL_PING_CONNECT_TIMEOUT_S,
                                           on_ping_connect_timeout, run);
  if (pm_peer_get_state (peer) == PM_PEER_STATE_IDLE)
    pm_peer_connect (peer);
}

static void
dict_insert_string (GVariantDict *dict,
                    const char   *key,
                    const char   *value)
{
  g_variant_dict_insert (dict, key, "s", value != NULL ? value : "");
}

static GVariant *
control_peer_status (PmPeer *peer)
{
  GVariantDict dict;
  double       rtt_ms = pm_peer_get_rtt_ms (peer);
  int64_t      last_handshake = pm_peer_get_last_handshake (peer);

  g_variant_dict_init (&dict, NULL);
  dict_insert_string (&dict, "id", pm_peer_get_id (peer));
  dict_insert_string (&dict, "name", pm_peer_get_name (peer));
  dict_insert_string (&dict, "type", pm_peer_get_device_type (peer));
  g_variant_dict_insert (&dict, "online", "b", pm_peer_get_online (peer));
  dict_insert_string (&dict, "state", pm_peer_state_to_string (pm_peer_get_state (peer)));
  dict_insert_string (&dict, "path", pm_path_type_to_string (pm_peer_get_path_type (peer)));
  if (rtt_ms >= 0)
    g_variant_dict_insert (&dict, "rttMs", "d", rtt_ms);
  if (pm_peer_get_endpoint (peer) != NULL)
    dict_insert_string (&dict, "endpoint", pm_peer_get_endpoint (peer));
  g_variant_dict_insert (&dict, "txBytes", "t", (guint64) pm_peer_get_tx_bytes (peer));
  g_variant_dict_insert (&dict, "rxBytes", "t", (guint64) pm_peer_get_rx_bytes (peer));
  g_variant_dict_insert (&dict, "rotations", "u", (guint32) pm_peer_get_rotations (peer));
  if (last_handshake > 0)
    g_variant_dict_insert (&dict, "lastHandshake", "x", (gint64) last_handshake);
  g_variant_dict_insert (&dict, "directAttempts", "u", (guint32) pm_peer_get_direct_attempts (peer));
  g_variant_dict_insert (&dict, "pathChanges", "u", (guint32) pm_peer_get_path_changes (peer));
  return g_variant_dict_end (&dict);
}

static GVariant *
control_status (PmControl *self)
{
  GVariantDict    self_dict;
  GVariantBuilder peers;
  GListModel     *model = pm_mesh_get_peers (self->mesh);
  PmIdentity     *identity = pm_mesh_get_identity (self->mesh);
  unsigned        n = g_list_model_get_n_items (model);

  g_variant_dict_init (&self_dict, NULL);
  if (pm_mesh_get_device_id (self->mesh) != NULL)
    dict_insert_string (&self_dict, "id", pm_mesh_get_device_id (self->mesh));
  dict_insert_string (&self_dict, "name", self->self_name);
  dict_insert_string (&self_dict, "publicKey", pm_identity_get_public_key_hex (identity));
  g_variant_dict_insert (&self_dict, "port", "q", (guint16) pm_mesh_get_port (self->mesh));

  g_variant_builder_init (&peers, G_VARIANT_TYPE ("aa{sv}"));
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (model, i);

      g_variant_builder_add_value (&peers, control_peer_status (peer));
    }
  return g_variant_new ("(@a{sv}aa{sv})", g_variant_dict_end (&self_dict), &peers);
}

static void
control_method_call (GDBusConnection       *connection,
                     const char            *sender,
                     const char            *object_path,
                     const char            *interface_name,
                     const char            *method_name,
                     GVariant              *parameters,
                     GDBusMethodInvocation *invocation,
                     gpointer               user_data)
{
  PmControl *self = user_data;

  /* GDBus has checked the arguments against the introspection data. */
  if (g_str_equal (method_name, "GetStatus"))
    g_dbus_method_invocation_return_value (invocation, control_status (self));
  else if (g_str_equal (method_name, "Ping"))
    {
      const char *device = NULL;

      g_variant_get (parameters, "(&s)", &device);
      control_handle_ping (self, invocation, device);
    }
  else
    g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR,
                                           G_DBUS_ERROR_UNKNOWN_METHOD, "No method %s",
                                           method_name);
}

static const GDBusInterfaceVTable control_vtable = {
  control_method_call,
  NULL,
  NULL,
  { NULL },
};

/* Clients that take every address for a message bus (gdbus call --address in
 * GLib before 2.80) say Hello first: answer it with a unique name, so they
 * work over this peer-to-peer connection too. */
static void
control_bus_method_call (GDBusConnection       *connection,
                         const char            *sender,
                         const char            *object_path,
                         const char            *interface_name,
                         const char            *method_name,
                         GVariant              *parameters,
                         GDBusMethodInvocation *invocation,
                         gpointer               user_data)
{
  static unsigned  serial = 0;
  g_autofree char *name = g_strdup_printf (":1.%u", ++serial);

  g_dbus_method_invocation_return_value (invocation, g_variant_new ("(s)", name));
}

static const GDBusInterfaceVTable control_bus_vtable = {
  control_bus_method_call,
  NULL,
  NULL,
  { NULL },
};

static void
on_client_closed (GDBusConnection *connection,
                  gboolean         remote_peer_vanished,
                  GError          *error,
                  gpointer         user_data)
{
  PmControl *self = user_data;

  for (unsigned i = 0; i < self->clients->len; i++)
    {
      ControlClient *client = self->clients->pdata[i];

      if (client->connection == connection)
        {
          g_ptr_array_remove_index_fast (self->clients, i);
          return;
        }
    }
}

static gboolean
on_new_connection (GDBusServer     *server,
                   GDBusConnection *connection,
                   gpointer         user_data)
{
  PmControl *self = user_data;
  g_autoptr (GError) error = NULL;
  ControlClient *client;
  unsigned       registration;

  if (self->clients->len >= PM_CONTROL_MAX_CLIENTS)
    {
      g_warning ("Turned a control client away: %u are connected already",
                 self->clients->len);
      return FALSE;
    }
  registration = g_dbus_connection_register_object (connection, PM_CONTROL_OBJECT_PATH,
                                                    control_interface_info (), &control_vtable,
                                                    self, NULL, &error);
  if (registration == 0)
    {
      g_warning ("Could not export the control object: %s", error->message);
      return FALSE;
    }
  client = g_new0 (ControlClient, 1);
  client->connection = g_object_ref (connection);
  client->registration = registration;
  client->bus_registration = g_dbus_connection_register_object (connection,
                                                                "/org/freedesktop/DBus",
                                                                control_bus_interface_info (),
                                                                &control_bus_vtable, self, NULL,
                                                                NULL);
  client->closed_handler = g_signal_connect (connection, "closed", G_CALLBACK (on_client_closed),
                                             self);
  g_ptr_array_add (self->clients, client);
  return TRUE;
}

/* Does a pipermesh answer on @path? TRUE: yes (or something else that must be
 * left alone: @error says what). FALSE: nothing answers. */
static gboolean
control_socket_answers (const char *path,
                        GError    **error)
{
  g_autoptr (GDBusConnection) connection = NULL;
  g_autoptr (GError) local_error = NULL;

  connection = control_connect_bounded (path, NULL, &local_error);
  if (connection != NULL)
    {
      g_dbus_connection_close_sync (connection, NULL, NULL);
      g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_ALREADY_RUNNING,
                   "another pipermesh is running for this state dir (it answers on %s)", path);
      return TRUE;
    }
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
      g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    return FALSE;
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_ALREADY_RUNNING,
                 "another pipermesh seems to be running for this state dir, but it is stuck: "
                 "%s",
                 local_error->message);
  else
    g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_ALREADY_RUNNING,
                 "something answers on %s but it is not a pipermesh of this user (%s); "
                 "another pipermesh may be running for this state dir",
                 path, local_error->message);
  return TRUE;
}

gboolean
pm_control_start (PmControl  *self,
                  const char *state_dir,
                  GError    **error)
{
  g_autofree char *path = NULL;
  g_autofree char *address = NULL;
  g_autofree char *guid = NULL;
  g_autoptr (GError) local_error = NULL;
  GStatBuf st;

  g_return_val_if_fail (PM_IS_CONTROL (self), FALSE);
  g_return_val_if_fail (state_dir != NULL, FALSE);
  g_return_val_if_fail (self->server == NULL, FALSE);

  path = control_socket_path (state_dir, error);
  if (path == NULL)
    return FALSE;
  if (control_socket_answers (path, error))
    return FALSE;
  if (g_lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        {
          g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                       "%s is in the way and is not a socket: remove it", path);
          return FALSE;
        }
      /* Left by a pipermesh that died: nothing answers on it. */
      g_debug ("Removing the stale control socket %s", path);
      if (g_unlink (path) != 0 && errno != ENOENT)
        {
          int errsv = errno;

          g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                       "Could not remove the stale control socket %s: %s", path,
                       g_strerror (errsv));
          return FALSE;
        }
    }

  address = control_socket_address (path);
  guid = g_dbus_generate_guid ();
  self->server = g_dbus_server_new_sync (address,
                                         G_DBUS_SERVER_FLAGS_AUTHENTICATION_REQUIRE_SAME_USER,
                                         guid, NULL, NULL, &local_error);
  if (self->server == NULL)
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_ALREADY_RUNNING,
                     "another pipermesh is running for this state dir (it took %s first)",
                     path);
      else
        g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                     "Could not listen on %s: %s", path, local_error->message);
      return FALSE;
    }
  /* Only this user may connect (the server checks it too). */
  (void) g_chmod (path, 0600);
  self->socket_path = g_steal_pointer (&path);
  g_signal_connect (self->server, "new-connection", G_CALLBACK (on_new_connection), self);
  g_dbus_server_start (self->server);
  return TRUE;
}

void
pm_control_stop (PmControl *self)
{
  g_return_if_fail (PM_IS_CONTROL (self));

  g_cancellable_cancel (self->cancellable);
  while (self->pings->len > 0)
    {
      PingRun *run = g_ptr_array_steal_index_fast (self->pings, self->pings->len - 1);
      g_autoptr (GError) error = g_error_new_literal (PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                                                      "pipermesh is stopping");

      ping_run_return (run, NULL, error);
      ping_run_free (run);
    }
  if (self->server != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->server, self);
      g_dbus_server_stop (self->server);
      g_clear_object (&self->server);
    }
  g_ptr_array_set_size (self->clients, 0);
  if (self->socket_path != NULL)
    {
      g_unlink (self->socket_path); /* may be gone already: GDBusServer removes some */
      g_clear_pointer (&self->socket_path, g_free);
    }
}

const char *
pm_control_get_socket_path (PmControl *self)
{
  g_return_val_if_fail (PM_IS_CONTROL (self), NULL);
  return self->socket_path;
}

static void
pm_control_dispose (GObject *object)
{
  PmControl *self = PM_CONTROL (object);

  pm_control_stop (self);
  g_clear_object (&self->mesh);
  G_OBJECT_CLASS (pm_control_parent_class)->dispose (object);
}

static void
pm_control_finalize (GObject *object)
{
  PmControl *self = PM_CONTROL (object);

  g_ptr_array_unref (self->clients);
  g_ptr_array_unref (self->pings);
  g_object_unref (self->cancellable);
  g_free (self->self_name);
  G_OBJECT_CLASS (pm_control_parent_class)->finalize (object);
}

static void
pm_control_class_init (PmControlClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_control_dispose;
  object_class->finalize = pm_control_finalize;
}

static void
pm_control_init (PmControl *self)
{
  self->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) control_client_free);
  self->pings = g_ptr_array_new ();
  self->cancellable = g_cancellable_new ();
}

PmControl *
pm_control_new (PmMesh     *mesh,
                const char *self_name)
{
  PmControl *self;

  g_return_val_if_fail (PM_IS_MESH (mesh), NULL);

  self = g_object_new (PM_TYPE_CONTROL, NULL);
  self->mesh = g_object_ref (mesh);
  self->self_name = g_strdup (self_name);
  return self;
}

/* --- Client ----------------------------------------------------------------- */

GDBusConnection *
pm_control_connect (const char   *state_dir,
                    GCancellable *cancellable,
                    GError      **error)
{
  g_autofree char *path = NULL;
  g_autoptr (GError) local_error = NULL;
  GDBusConnection *connection;

  g_return_val_if_fail (state_dir != NULL, NULL);

  (void) PM_CONTROL_ERROR; /* registered before any answer is mapped */
  path = control_socket_path (state_dir, error);
  if (path == NULL)
    return NULL;
  connection = control_connect_bounded (path, cancellable, &local_error);
  if (connection != NULL)
    return connection;
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
      g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_NOT_RUNNING,
                 "No pipermesh is running for the state dir %s: start one with "
                 "“pipermesh up” (or “pipermesh connect”)",
                 state_dir);
  else
    g_set_error (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_FAILED,
                 "Could not reach the pipermesh running for %s: %s", state_dir,
                 local_error->message);
  return NULL;
}

static void
control_call (GDBusConnection    *connection,
              const char         *method,
              GVariant           *parameters,
              const char         *reply_type,
              int                 timeout_ms,
              GCancellable       *cancellable,
              GAsyncReadyCallback callback,
              gpointer            user_data)
{
  g_dbus_connection_call (connection, NULL, PM_CONTROL_OBJECT_PATH, PM_CONTROL_INTERFACE,
                          method, parameters, G_VARIANT_TYPE (reply_type),
                          G_DBUS_CALL_FLAGS_NONE, timeout_ms, cancellable,
                          callback, user_data);
}

static GVariant *
control_call_finish (GDBusConnection *connection,
                     GAsyncResult    *result,
                     GError         **error)
{
  g_autoptr (GError) local_error = NULL;
  GVariant *reply = g_dbus_connection_call_finish (connection, result, &local_error);

  if (reply == NULL)
    {
      if (g_dbus_error_is_remote_error (local_error))
        g_dbus_error_strip_remote_error (local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
    }
  return reply;
}

void
pm_control_get_status_async (GDBusConnection    *connection,
                             GCancellable       *cancellable,
                             GAsyncReadyCallback callback,
                             gpointer            user_data)
{
  g_return_if_fail (G_IS_DBUS_CONNECTION (connection));
  control_call (connection, "GetStatus", NULL, "(a{sv}aa{sv})", PM_CONTROL_STATUS_TIMEOUT_MS,
                cancellable, callback, user_data);
}

GVariant *
pm_control_get_status_finish (GDBusConnection *connection,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (G_IS_DBUS_CONNECTION (connection), NULL);
  return control_call_finish (connection, result, error);
}

void
pm_control_ping_async (GDBusConnection    *connection,
                       const char         *device,
                       GCancellable       *cancellable,
                       GAsyncReadyCallback callback,
                       gpointer            user_data)
{
  g_return_if_fail (G_IS_DBUS_CONNECTION (connection));
  g_return_if_fail (device != NULL);
  control_call (connection, "Ping", g_variant_new ("(s)", device), "(ds)",
                PM_CONTROL_PING_TIMEOUT_MS, cancellable, callback, user_data);
}

gboolean
pm_control_ping_finish (GDBusConnection *connection,
                        GAsyncResult    *result,
                        double          *rtt_ms,
                        char           **path,
                        GError         **error)
{
  g_autoptr (GVariant) reply = NULL;
  double      rtt = 0;
  const char *path_text = NULL;

  g_return_val_if_fail (G_IS_DBUS_CONNECTION (connection), FALSE);

  reply = control_call_finish (connection, result, error);
  if (reply == NULL)
    return FALSE;
  g_variant_get (reply, "(d&s)", &rtt, &path_text);
  if (rtt_ms != NULL)
    *rtt_ms = rtt;
  if (path != NULL)
    *path = g_strdup (path_text);
  return TRUE;
}
