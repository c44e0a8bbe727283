/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-demo.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "pm-app-limits.h"
#include "pm-coord-server.h"
#include "pm-store-sqlite.h"
#include "pm-stun-server.h"

struct _PmDemo {
  GObject parent_instance;

  char           *dir;
  PmStoreSqlite  *store;
  PmRelay        *relay;
  PmStunServer   *stun;
  PmCoordServer  *server;
  char           *base_uri;
  GSocketService *echo;

  PmIdentity *identity; /* this device */
  char       *device_id;
  char       *device_name;
  char       *token;

  PmIdentity *host_identity;
  PmMesh     *host_mesh;
  char       *host_name;

  gboolean stopped;
};

G_DEFINE_FINAL_TYPE (PmDemo, pm_demo, G_TYPE_OBJECT)

void
pm_demo_get_limits (PmMeshLimits *limits)
{
  g_return_if_fail (limits != NULL);

  pm_mesh_limits_default (limits);
  limits->loopback_candidates = TRUE;
  limits->relay_ping_us = PM_APP_DEMO_RELAY_PING_US;
  limits->heartbeat_us = PM_APP_DEMO_HEARTBEAT_US;
  limits->trust_us = PM_APP_DEMO_TRUST_US;
}

/* --- the echo service ------------------------------------------------------- */

static void
on_echo_spliced (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result, NULL);
  g_object_unref (user_data); /* the connection */
}

static gboolean
on_echo_incoming (GSocketService    *service,
                  GSocketConnection *connection,
                  GObject           *source,
                  gpointer           user_data)
{
  GIOStream               *stream = G_IO_STREAM (connection);
  GOutputStreamSpliceFlags flags =
    G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET;

  g_output_stream_splice_async (g_io_stream_get_output_stream (stream),
                                g_io_stream_get_input_stream (stream),
                                flags, G_PRIORITY_DEFAULT, NULL, on_echo_spliced,
                                g_object_ref (connection));
  return TRUE;
}

/* --- helpers ---------------------------------------------------------------- */

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static PmIdentity *
demo_identity (PmDemo     *self,
               const char *name,
               GError    **error)
{
  g_autofree char *dir = g_build_filename (self->dir, name, NULL);

  return pm_identity_load_or_create (dir, PM_KEY_STORE_FILE, NULL, error);
}

static gboolean
demo_enroll (PmDemo     *self,
             const char *key,
             const char *name,
             const char *type,
             PmIdentity *identity,
             char      **out_id,
             char      **out_token,
             GError    **error)
{
  g_autoptr (PmDeviceRecord) device = NULL;
  char public_key[32 * 2 + 1];

  sodium_bin2hex (public_key, sizeof public_key, pm_identity_get_public_key (identity), 32);
  device = pm_store_enroll_device (PM_STORE (self->store), key, name, type, public_key,
                                   pm_identity_get_key_store_string (identity), pm_store_now (),
                                   out_token, error);
  if (device == NULL)
    return FALSE;
  if (out_id != NULL)
    *out_id = g_strdup (device->id);
  return TRUE;
}

static gboolean
demo_start (PmDemo  *self,
            GError **error)
{
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (PmIdentity) phone = NULL;
  g_autoptr (PmCoordClient) host_coord = NULL;
  g_autoptr (GInetSocketAddress) stun_primary = NULL;
  g_autoptr (GInetSocketAddress) stun_secondary = NULL;
  g_autofree char *db = NULL;
  g_autofree char *key = NULL;
  g_autofree char *host_id = NULL;
  g_autofree char *host_token = NULL;
  g_autofree char *phone_token = NULL;
  g_autofree char *echo_target = NULL;
  PmMeshLimits     limits;
  uint16_t         echo_port;
  int64_t          now = pm_store_now ();

  self->dir = g_dir_make_tmp ("pipermesh-demo-XXXXXX", error);
  if (self->dir == NULL)
    return FALSE;
  db = g_build_filename (self->dir, "server.db", NULL);
  self->store = pm_store_sqlite_open (db, error);
  if (self->store == NULL)
    return FALSE;
  account = pm_store_create_account (PM_STORE (self->store), "demo", now, error);
  if (account == NULL)
    return FALSE;
  key = pm_store_create_enrollment_key (PM_STORE (self->store), account->id, PM_APP_DEMO_KEY_TTL_S,
                                        TRUE, now, NULL, error);
  if (key == NULL)
    return FALSE;

  /* The server: API, relay and STUN, on loopback. 127.0.0.2 is loopback on
   * Linux too; without it the network check simply cannot tell whether the
   * mapping varies. */
  self->relay = pm_relay_new (NULL);
  self->server = pm_coord_server_new (PM_STORE (self->store), self->relay, NULL);
  if (!pm_coord_server_listen (self->server, "127.0.0.1:0", NULL, error))
    return FALSE;
  self->base_uri = pm_coord_server_get_base_uri (self->server);
  stun_primary = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("127.0.0.1", 0));
  stun_secondary = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("127.0.0.2", 0));
  self->stun = pm_stun_server_new ();
  if (!pm_stun_server_start (self->stun, stun_primary, stun_secondary, NULL) &&
      !pm_stun_server_start (self->stun, stun_primary, NULL, error))
    return FALSE;
  pm_coord_server_set_stun_server (self->server, self->stun);

  /* This device. */
  self->identity = demo_identity (self, "this-device", error);
  if (self->identity == NULL)
    return FALSE;
  self->device_name = g_strdup (_ ("My computer"));
  if (!demo_enroll (self, key, self->device_name, "linux", self->identity, &self->device_id,
                    &self->token, error))
    return FALSE;

  /* A phone that is enrolled but never runs: it stays offline. */
  phone = demo_identity (self, "phone", error);
  if (phone == NULL ||
      !demo_enroll (self, key, _ ("Demo phone"), "android", phone, NULL, &phone_token, error))
    return FALSE;
  sodium_memzero (phone_token, strlen (phone_token));

  /* The host: a real mesh with a real TCP echo service. */
  self->echo = g_socket_service_new ();
  echo_port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (self->echo), NULL, error);
  if (echo_port == 0)
    return FALSE;
  g_signal_connect (self->echo, "incoming", G_CALLBACK (on_echo_incoming), NULL);
  self->host_identity = demo_identity (self, "host", error);
  if (self->host_identity == NULL)
    return FALSE;
  self->host_name = g_strdup (_ ("Demo host"));
  if (!demo_enroll (self, key, self->host_name, "linux", self->host_identity, &host_id,
                    &host_token, error))
    return FALSE;
  host_coord = pm_coord_client_new (self->base_uri, host_token, error);
  sodium_memzero (host_token, strlen (host_token));
  if (host_coord == NULL)
    return FALSE;
  pm_demo_get_limits (&limits);
  self->host_mesh = pm_mesh_new (self->host_identity, host_coord, host_id, &limits);
  pm_mesh_set_stun_servers (self->host_mesh, pm_stun_server_get_address (self->stun, 0), NULL);
  echo_target = g_strdup_printf ("127.0.0.1:%u", echo_port);
  if (!pm_mesh_add_service (self->host_mesh, "echo", echo_target, NULL, error))
    return FALSE;
  return pm_mesh_start (self->host_mesh, 0, error);
}

PmDemo *
pm_demo_new (GError **error)
{
  g_autoptr (PmDemo) self = g_object_new (PM_TYPE_DEMO, NULL);

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!demo_start (self, error))
    {
      pm_demo_stop (self);
      return NULL;
    }
  g_debug ("Demo server on %s in %s", self->base_uri, self->dir);
  return g_steal_pointer (&self);
}

void
pm_demo_stop (PmDemo *self)
{
  g_return_if_fail (PM_IS_DEMO (self));

  if (self->stopped)
    return;
  self->stopped = TRUE;
  if (self->host_mesh != NULL)
    pm_mesh_stop (self->host_mesh);
  g_clear_object (&self->host_mesh);
  if (self->echo != NULL)
    {
      g_socket_service_stop (self->echo);
      g_socket_listener_close (G_SOCKET_LISTENER (self->echo));
    }
  g_clear_object (&self->echo);
  g_clear_object (&self->server);
  if (self->stun != NULL)
    pm_stun_server_stop (self->stun);
  g_clear_object (&self->stun);
  g_clear_object (&self->relay);
  g_clear_object (&self->store);
  if (self->dir != NULL)
    remove_tree (self->dir);
}

static void
pm_demo_finalize (GObject *object)
{
  PmDemo *self = PM_DEMO (object);

  pm_demo_stop (self);
  g_clear_object (&self->identity);
  g_clear_object (&self->host_identity);
  g_free (self->dir);
  g_free (self->base_uri);
  g_free (self->device_id);
  g_free (self->device_name);
  g_free (self->host_name);
  if (self->token != NULL)
    sodium_memzero (self->token, strlen (self->token));
  g_free (self->token);
  G_OBJECT_CLASS (pm_demo_parent_class)->finalize (object);
}

static void
pm_demo_class_init (PmDemoClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = pm_demo_finalize;
}

static void
pm_demo_init (PmDemo *self)
{
}

PmIdentity *
pm_demo_get_identity (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->identity;
}

const char *
pm_demo_get_state_dir (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return pm_identity_get_state_dir (self->identity);
}

const char *
pm_demo_get_base_uri (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->base_uri;
}

const char *
pm_demo_get_device_id (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->device_id;
}

const char *
pm_demo_get_device_name (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->device_name;
}

const char *
pm_demo_get_token (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->token;
}

const char *
pm_demo_get_host_name (PmDemo *self)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  return self->host_name;
}

GInetSocketAddress *
pm_demo_get_stun_server (PmDemo  *self,
                         unsigned index)
{
  g_return_val_if_fail (PM_IS_DEMO (self), NULL);
  g_return_val_if_fail (index < 2, NULL);
  if (self->stun == NULL || !pm_stun_server_is_running (self->stun))
    return NULL;
  return pm_stun_server_get_address (self->stun, index);
}
