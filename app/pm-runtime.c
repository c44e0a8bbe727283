/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-runtime.h"

#include <glib/gi18n.h>

#include "pm-app-limits.h"
#include "pm-control.h"
#include "pm-demo.h"
#include "pm-lan-peers.h"
#include "pm-state.h"

/* As `pipermesh up --loopback-candidates`: two devices on one machine. */
#define LOOPBACK_ENV "PIPERMESH_LOOPBACK_CANDIDATES"

struct _PmRuntime {
  GObject parent_instance;

  gboolean      demo;
  gboolean      lan_only;
  char         *state_dir;
  GCancellable *cancellable;

  PmRuntimeStatus status;
  char           *message;
  gboolean        ready;
  char           *problem;

  PmIdentity         *identity;
  PmStateCoordination coord;
  gboolean            enrolled;
  char               *device_name;
  GInetSocketAddress *stun[2];

  PmDemo        *demo_env;
  PmCoordClient *client;
  PmMesh        *mesh;
  PmControl     *control;
  PmLanPeers    *lan_peers; /* LAN only: the paired devices, mDNS */
  gboolean       mesh_started;
  gulong         peers_handler;
  gboolean       demo_connected; /* the demo host was asked to connect */
  gboolean       started;
  gboolean       stopped;
};

enum {
  PROP_0,
  PROP_STATUS,
  PROP_MESSAGE,
  PROP_READY,
  PROP_PROBLEM,
  PROP_MESH,
  PROP_IDENTITY,
  PROP_DEMO,
  PROP_ENROLLED,
  PROP_LAN_ONLY,
  PROP_STATE_DIR,
  PROP_SERVER_URL,
  PROP_DEVICE_ID,
  PROP_DEVICE_NAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

GType
pm_runtime_status_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_RUNTIME_STARTING, "PM_RUNTIME_STARTING", "starting" },
        { PM_RUNTIME_RUNNING, "PM_RUNTIME_RUNNING", "running" },
        { PM_RUNTIME_FAILED, "PM_RUNTIME_FAILED", "failed" },
        { 0, NULL, NULL },
      };
      g_once_init_leave (&type, g_enum_register_static ("PmRuntimeStatus", values));
    }
  return type;
}

G_DEFINE_FINAL_TYPE (PmRuntime, pm_runtime, G_TYPE_OBJECT)

static void
notify (PmRuntime *self,
        int        prop)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
set_string (PmRuntime  *self,
            char      **field,
            const char *value,
            int         prop)
{
  if (g_strcmp0 (*field, value) == 0)
    return;
  g_free (*field);
  *field = g_strdup (value);
  notify (self, prop);
}

static void
set_status (PmRuntime      *self,
            PmRuntimeStatus status)
{
  if (self->status == status)
    return;
  self->status = status;
  notify (self, PROP_STATUS);
}

static void
teardown (PmRuntime *self)
{
  if (self->peers_handler != 0 && self->mesh != NULL)
    g_clear_signal_handler (&self->peers_handler, pm_mesh_get_peers (self->mesh));
  if (self->control != NULL)
    pm_control_stop (self->control);
  g_clear_object (&self->control);
  if (self->lan_peers != NULL)
    pm_lan_peers_stop (self->lan_peers);
  g_clear_object (&self->lan_peers);
  if (self->mesh_started)
    pm_mesh_stop (self->mesh);
  self->mesh_started = FALSE;
  if (self->mesh != NULL)
    {
      g_clear_object (&self->mesh);
      notify (self, PROP_MESH);
    }
  g_clear_object (&self->client);
  if (self->demo_env != NULL)
    pm_demo_stop (self->demo_env);
}

static void
fail (PmRuntime  *self,
      const char *message)
{
  g_object_freeze_notify (G_OBJECT (self));
  teardown (self);
  set_string (self, &self->message, message, PROP_MESSAGE);
  set_status (self, PM_RUNTIME_FAILED);
  g_object_thaw_notify (G_OBJECT (self));
}

/* --- ready, and the demo's first connection ----------------------------------- */

static void
demo_connect_host (PmRuntime *self)
{
  PmPeer *host;

  if (self->demo_env == NULL || self->mesh == NULL || self->demo_connected)
    return;
  host = pm_mesh_lookup_peer (self->mesh, pm_demo_get_host_name (self->demo_env));
  if (host == NULL)
    return;
  self->demo_connected = TRUE;
  if (pm_peer_get_state (host) == PM_PEER_STATE_IDLE)
    pm_peer_connect (host);
}

/* A device list arrived: whatever kept the first one away is over. */
static void
on_peers_changed (GListModel *model,
                  unsigned    position,
                  unsigned    removed,
                  unsigned    added,
                  gpointer    user_data)
{
  PmRuntime *self = user_data;

  set_string (self, &self->problem, NULL, PROP_PROBLEM);
  demo_connect_host (self);
}

static void
on_ready (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (PmRuntime) self = user_data;
  g_autoptr (GError) error = NULL;

  if (!pm_mesh_wait_ready_finish (PM_MESH (source), result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->stopped)
        return;
      /* The mesh keeps asking; say why the list is empty meanwhile. */
      {
        g_autofree char *problem =
          g_strdup_printf (_ ("Could not get the device list from the server: %s"), error->message);

        set_string (self, &self->problem, problem, PROP_PROBLEM);
      }
    }
  if (self->stopped)
    return;
  self->ready = TRUE;
  notify (self, PROP_READY);
  demo_connect_host (self);
}

/* --- starting ------------------------------------------------------------------ */

static void
launch (PmRuntime *self)
{
  g_autoptr (GError) error = NULL;
  PmMeshLimits limits;
  const char  *env = g_getenv (LOOPBACK_ENV);

  if (self->demo_env != NULL)
    pm_demo_get_limits (&limits);
  else
    {
      pm_mesh_limits_default (&limits);
      limits.loopback_candidates = env != NULL && g_str_equal (env, "1");
    }

  if (self->enrolled)
    {
      self->client = pm_coord_client_new (self->coord.server, self->coord.token, &error);
      if (self->client == NULL)
        {
          g_autofree char *message =
            g_strdup_printf (_ ("The enrollment in %s names an unusable server: %s"),
                             self->state_dir, error->message);
          fail (self, message);
          return;
        }
    }
  self->mesh = pm_mesh_new (self->identity, self->client,
                            self->enrolled ? self->coord.device_id : NULL, &limits);
  pm_mesh_set_stun_servers (self->mesh, self->stun[0], self->stun[1]);

  /* The control socket: `pipermesh status` works against the app, and a
   * `pipermesh up` already running for this device is refused here rather
   * than fought over. The demo's state directory is its own. */
  self->control = pm_control_new (self->mesh, self->device_name);
  if (!pm_control_start (self->control, self->state_dir, &error))
    {
      g_autofree char *message = NULL;

      g_clear_object (&self->control); /* it never took the socket */
      if (g_error_matches (error, PM_CONTROL_ERROR, PM_CONTROL_ERROR_ALREADY_RUNNING))
        message = g_strdup_printf (_ ("PiperMesh already runs for this device in another process "
                                      "(“pipermesh up” or another copy of the app). Stop it, then "
                                      "start the app again.\n\n%s"),
                                   error->message);
      else
        message = g_strdup (error->message);
      fail (self, message);
      return;
    }

  /* LAN only: the UDP port paired devices look for first (mDNS tells them
   * another one when it is taken). */
  if (self->lan_only && !pm_mesh_start (self->mesh, PM_MESH_LAN_PORT, &error))
    {
      g_message ("%s; using another port", error->message);
      g_clear_error (&error);
    }
  if (pm_mesh_get_port (self->mesh) == 0 && !pm_mesh_start (self->mesh, 0, &error))
    {
      g_autofree char *message =
        g_strdup_printf (_ ("Could not start the mesh: %s"), error->message);

      fail (self, message);
      return;
    }
  self->mesh_started = TRUE;
  if (self->lan_only)
    {
      self->lan_peers = pm_lan_peers_new (self->mesh, self->state_dir, TRUE);
      if (!pm_lan_peers_start (self->lan_peers, self->device_name, &error))
        {
          g_autofree char *problem =
            g_strdup_printf (_ ("Could not read the paired devices: %s"), error->message);

          set_string (self, &self->problem, problem, PROP_PROBLEM);
          g_clear_error (&error);
        }
    }
  self->peers_handler = g_signal_connect (pm_mesh_get_peers (self->mesh), "items-changed",
                                          G_CALLBACK (on_peers_changed), self);
  g_object_freeze_notify (G_OBJECT (self));
  notify (self, PROP_MESH);
  set_status (self, PM_RUNTIME_RUNNING);
  g_object_thaw_notify (G_OBJECT (self));
  pm_mesh_wait_ready_async (self->mesh, self->cancellable, on_ready, g_object_ref (self));
}

/* STUN at the coordination server's host, port 3478, as `pipermesh up` does;
 * an IPv4 address when the name has one. Without an answer the mesh runs
 * without STUN (a relay path and LAN paths still work). */
typedef struct {
  PmRuntime                *self;
  GSocketAddressEnumerator *enumerator;
  GInetSocketAddress       *other; /* the first address that is not IPv4 */
} StunLookup;

static void
stun_lookup_free (StunLookup *lookup)
{
  g_object_unref (lookup->self);
  g_object_unref (lookup->enumerator);
  g_clear_object (&lookup->other);
  g_free (lookup);
}

static void
on_stun_address (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  StunLookup *lookup = user_data;
  PmRuntime  *self = lookup->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) address =
    g_socket_address_enumerator_next_finish (G_SOCKET_ADDRESS_ENUMERATOR (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->stopped)
    {
      stun_lookup_free (lookup);
      return;
    }
  if (address != NULL)
    {
      if (G_IS_INET_SOCKET_ADDRESS (address) &&
          g_socket_address_get_family (address) == G_SOCKET_FAMILY_IPV4)
        {
          self->stun[0] = G_INET_SOCKET_ADDRESS (g_steal_pointer (&address));
          stun_lookup_free (lookup);
          launch (self);
          return;
        }
      if (G_IS_INET_SOCKET_ADDRESS (address) && lookup->other == NULL)
        lookup->other = G_INET_SOCKET_ADDRESS (g_steal_pointer (&address));
      g_socket_address_enumerator_next_async (lookup->enumerator, self->cancellable,
                                              on_stun_address, lookup);
      return;
    }
  /* The end of the list, or an error: no IPv4 address. */
  if (lookup->other == NULL)
    g_message ("No STUN at the server's host (%s): %s", self->coord.server,
               error != NULL ? error->message : "no address");
  self->stun[0] = g_steal_pointer (&lookup->other);
  stun_lookup_free (lookup);
  launch (self);
}

static void
resolve_stun (PmRuntime *self)
{
  g_autoptr (GUri) uri = g_uri_parse (self->coord.server, G_URI_FLAGS_NONE, NULL);
  g_autoptr (GSocketConnectable) connectable = NULL;
  const char *host = uri != NULL ? g_uri_get_host (uri) : NULL;
  StunLookup *lookup;

  if (host == NULL || *host == '\0')
    {
      launch (self);
      return;
    }
  connectable = g_network_address_new (host, PM_APP_DEFAULT_STUN_PORT);
  lookup = g_new0 (StunLookup, 1);
  lookup->self = g_object_ref (self);
  lookup->enumerator = g_socket_connectable_enumerate (connectable);
  g_socket_address_enumerator_next_async (lookup->enumerator, self->cancellable, on_stun_address,
                                          lookup);
}

static void
on_identity (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr (PmRuntime) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) identity = pm_identity_load_or_create_finish (result, &error);
  const char *name;

  if (self->stopped)
    return;
  if (identity == NULL)
    {
      g_autofree char *message =
        g_strdup_printf (_ ("Could not load this device’s identity: %s"), error->message);

      fail (self, message);
      return;
    }
  self->identity = g_steal_pointer (&identity);
  notify (self, PROP_IDENTITY);

  if (!self->lan_only)
    {
      if (pm_state_load_coordination (self->state_dir, &self->coord, &error))
        {
          self->enrolled = TRUE;
          notify (self, PROP_ENROLLED);
          notify (self, PROP_SERVER_URL);
          notify (self, PROP_DEVICE_ID);
        }
      else if (g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          /* Not enrolled: the mesh runs LAN-only (paired devices only). */
          self->lan_only = TRUE;
          notify (self, PROP_LAN_ONLY);
        }
      else
        {
          fail (self, error->message);
          return;
        }
    }

  name = self->coord.name;
  if (name == NULL)
    name = pm_identity_get_device_name (self->identity);
  if (name == NULL)
    name = g_get_host_name ();
  set_string (self, &self->device_name, name, PROP_DEVICE_NAME);

  if (self->enrolled)
    resolve_stun (self);
  else
    launch (self);
}

static void
start_demo (PmRuntime *self)
{
  g_autoptr (GError) error = NULL;

  self->demo_env = pm_demo_new (&error);
  if (self->demo_env == NULL)
    {
      g_autofree char *message =
        g_strdup_printf (_ ("Could not start the demo: %s"), error->message);

      fail (self, message);
      return;
    }
  g_object_freeze_notify (G_OBJECT (self));
  self->identity = g_object_ref (pm_demo_get_identity (self->demo_env));
  notify (self, PROP_IDENTITY);
  set_string (self, &self->state_dir, pm_demo_get_state_dir (self->demo_env), PROP_STATE_DIR);
  self->coord.server = g_strdup (pm_demo_get_base_uri (self->demo_env));
  self->coord.device_id = g_strdup (pm_demo_get_device_id (self->demo_env));
  self->coord.token = g_strdup (pm_demo_get_token (self->demo_env));
  self->enrolled = TRUE;
  notify (self, PROP_ENROLLED);
  notify (self, PROP_SERVER_URL);
  notify (self, PROP_DEVICE_ID);
  set_string (self, &self->device_name, pm_demo_get_device_name (self->demo_env),
              PROP_DEVICE_NAME);
  for (unsigned i = 0; i < G_N_ELEMENTS (self->stun); i++)
    {
      GInetSocketAddress *stun = pm_demo_get_stun_server (self->demo_env, i);

      self->stun[i] = stun != NULL ? g_object_ref (stun) : NULL;
    }
  g_object_thaw_notify (G_OBJECT (self));
  launch (self);
}

void
pm_runtime_start (PmRuntime *self)
{
  g_return_if_fail (PM_IS_RUNTIME (self));
  g_return_if_fail (!self->started);

  self->started = TRUE;
  if (self->demo)
    {
      start_demo (self);
      return;
    }
  pm_identity_load_or_create_async (self->state_dir, PM_KEY_STORE_AUTO, self->cancellable,
                                    on_identity, g_object_ref (self));
}

void
pm_runtime_stop (PmRuntime *self)
{
  g_return_if_fail (PM_IS_RUNTIME (self));

  if (self->stopped)
    return;
  self->stopped = TRUE;
  g_cancellable_cancel (self->cancellable);
  teardown (self);
}

/* --- GObject ------------------------------------------------------------------- */

PmRuntime *
pm_runtime_new (const char *state_dir,
                gboolean    lan_only)
{
  PmRuntime *self = g_object_new (PM_TYPE_RUNTIME, NULL);

  self->state_dir = state_dir != NULL ? g_canonicalize_filename (state_dir, NULL)
                                      : pm_identity_default_state_dir ();
  self->lan_only = lan_only;
  return self;
}

PmRuntime *
pm_runtime_new_demo (void)
{
  PmRuntime *self = g_object_new (PM_TYPE_RUNTIME, NULL);

  self->demo = TRUE;
  return self;
}

static void
pm_runtime_dispose (GObject *object)
{
  PmRuntime *self = PM_RUNTIME (object);

  pm_runtime_stop (self);
  G_OBJECT_CLASS (pm_runtime_parent_class)->dispose (object);
}

static void
pm_runtime_finalize (GObject *object)
{
  PmRuntime *self = PM_RUNTIME (object);

  g_clear_object (&self->demo_env);
  g_clear_object (&self->identity);
  g_clear_object (&self->cancellable);
  for (unsigned i = 0; i < G_N_ELEMENTS (self->stun); i++)
    g_clear_object (&self->stun[i]);
  pm_state_coordination_clear (&self->coord);
  g_free (self->state_dir);
  g_free (self->message);
  g_free (self->problem);
  g_free (self->device_name);
  G_OBJECT_CLASS (pm_runtime_parent_class)->finalize (object);
}

static void
pm_runtime_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  PmRuntime *self = PM_RUNTIME (object);

  switch (prop_id)
    {
    case PROP_STATUS:
      g_value_set_enum (value, self->status);
      break;
    case PROP_MESSAGE:
      g_value_set_string (value, self->message);
      break;
    case PROP_READY:
      g_value_set_boolean (value, self->ready);
      break;
    case PROP_PROBLEM:
      g_value_set_string (value, self->problem);
      break;
    case PROP_MESH:
      g_value_set_object (value, self->mesh);
      break;
    case PROP_IDENTITY:
      g_value_set_object (value, self->identity);
      break;
    case PROP_DEMO:
      g_value_set_boolean (value, self->demo);
      break;
    case PROP_ENROLLED:
      g_value_set_boolean (value, self->enrolled);
      break;
    case PROP_LAN_ONLY:
      g_value_set_boolean (value, self->lan_only);
      break;
    case PROP_STATE_DIR:
      g_value_set_string (value, self->state_dir);
      break;
    case PROP_SERVER_URL:
      g_value_set_string (value, pm_runtime_get_server_url (self));
      break;
    case PROP_DEVICE_ID:
      g_value_set_string (value, pm_runtime_get_device_id (self));
      break;
    case PROP_DEVICE_NAME:
      g_value_set_string (value, self->device_name);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_runtime_class_init (PmRuntimeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags   flags = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = pm_runtime_dispose;
  object_class->finalize = pm_runtime_finalize;
  object_class->get_property = pm_runtime_get_property;

  properties[PROP_STATUS] = g_param_spec_enum ("status", NULL, NULL, PM_TYPE_RUNTIME_STATUS,
                                               PM_RUNTIME_STARTING, flags);
  properties[PROP_MESSAGE] = g_param_spec_string ("message", NULL, NULL, NULL, flags);
  properties[PROP_READY] = g_param_spec_boolean ("ready", NULL, NULL, FALSE, flags);
  properties[PROP_PROBLEM] = g_param_spec_string ("problem", NULL, NULL, NULL, flags);
  properties[PROP_MESH] = g_param_spec_object ("mesh", NULL, NULL, PM_TYPE_MESH, flags);
  properties[PROP_IDENTITY] = g_param_spec_object ("identity", NULL, NULL, PM_TYPE_IDENTITY, flags);
  properties[PROP_DEMO] = g_param_spec_boolean ("demo", NULL, NULL, FALSE, flags);
  properties[PROP_ENROLLED] = g_param_spec_boolean ("enrolled", NULL, NULL, FALSE, flags);
  properties[PROP_LAN_ONLY] = g_param_spec_boolean ("lan-only", NULL, NULL, FALSE, flags);
  properties[PROP_STATE_DIR] = g_param_spec_string ("state-dir", NULL, NULL, NULL, flags);
  properties[PROP_SERVER_URL] = g_param_spec_string ("server-url", NULL, NULL, NULL, flags);
  properties[PROP_DEVICE_ID] = g_param_spec_string ("device-id", NULL, NULL, NULL, flags);
  properties[PROP_DEVICE_NAME] = g_param_spec_string ("device-name", NULL, NULL, NULL, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_runtime_init (PmRuntime *self)
{
  self->cancellable = g_cancellable_new ();
}

/* --- getters ------------------------------------------------------------------- */

PmRuntimeStatus
pm_runtime_get_status (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), PM_RUNTIME_FAILED);
  return self->status;
}

const char *
pm_runtime_get_message (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->message;
}

gboolean
pm_runtime_get_ready (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), FALSE);
  return self->ready;
}

const char *
pm_runtime_get_problem (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->problem;
}

PmMesh *
pm_runtime_get_mesh (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->mesh;
}

PmIdentity *
pm_runtime_get_identity (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->identity;
}

gboolean
pm_runtime_get_demo (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), FALSE);
  return self->demo;
}

gboolean
pm_runtime_get_enrolled (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), FALSE);
  return self->enrolled;
}

gboolean
pm_runtime_get_lan_only (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), FALSE);
  return self->lan_only;
}

const char *
pm_runtime_get_state_dir (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->state_dir;
}

const char *
pm_runtime_get_server_url (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->enrolled ? self->coord.server : NULL;
}

const char *
pm_runtime_get_device_id (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->enrolled ? self->coord.device_id : NULL;
}

const char *
pm_runtime_get_device_name (PmRuntime *self)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  return self->device_name;
}

GInetSocketAddress *
pm_runtime_get_stun_server (PmRuntime *self,
                            unsigned   index)
{
  g_return_val_if_fail (PM_IS_RUNTIME (self), NULL);
  g_return_val_if_fail (index < G_N_ELEMENTS (self->stun), NULL);
  return self->stun[index];
}
