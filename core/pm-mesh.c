/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-mesh"

#include "pm-mesh.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "pm-address.h"
#include "pm-forward.h"
#include "pm-mesh-private.h"
#include "pm-session.h"

/*
 * This device in the mesh (docs/ARCHITECTURE.md, "Mesh sessions and paths").
 * The mesh owns the UDP sockets and hands every PiperMesh frame that arrives
 * on them to the peer it belongs to; it keeps the peer list in step with the
 * server's device list, holds the wake channel, gathers and publishes this
 * device's candidates (again after every network change) and serves the
 * streams peers open to its services.
 */

/* A wake long-poll that failed is asked again after this long. */
#define WAKE_RETRY_US (G_GINT64_CONSTANT (2) * G_USEC_PER_SEC)
/* Network changes come in bursts: act this long after the last one. */
#define NETWORK_SETTLE_MS 500

/* clang-format off */
G_DEFINE_QUARK (pm-mesh-error-quark, pm_mesh_error)
/* clang-format on */

typedef struct {
  char               *name;
  GInetSocketAddress *target;
  GStrv               allowed; /* ids or names; NULL: every device */
} Service;

struct _PmMesh {
  GObject parent_instance;

  PmIdentity    *identity;
  PmCoordClient *coord; /* NULL: LAN-only */
  char          *device_id;
  PmMeshLimits   limits;

  GInetSocketAddress *stun_primary;
  GInetSocketAddress *stun_secondary;

  gboolean      started;
  GCancellable *cancellable; /* everything the mesh runs; cancelled by stop() */
  PmUdpSocket  *udp4;
  PmUdpSocket  *udp6;

  GListStore *peers;
  GHashTable *services; /* name → Service */

  GPtrArray          *local_endpoints; /* PmDiscoEndpoint */
  GInetSocketAddress *mapped;
  gboolean            mapping_varies;
  gboolean            gathering;
  gboolean            gather_again;

  gboolean devices_in_flight;
  gboolean have_devices;
  GList   *ready_tasks;
  guint    devices_timer_id;
  guint    candidates_timer_id;
  guint    wake_retry_id;
  guint    network_settle_id;
  gulong   network_changed_id;
};

G_DEFINE_FINAL_TYPE (PmMesh, pm_mesh, G_TYPE_OBJECT)

static void refresh_devices (PmMesh *self);
static void gather_candidates (PmMesh *self);
static void wait_wake (PmMesh *self);

void
pm_mesh_limits_default (PmMeshLimits *limits)
{
  g_return_if_fail (limits != NULL);

  *limits = (PmMeshLimits){
    .heartbeat_us = PM_PATH_HEARTBEAT_US,
    .trust_us = PM_PATH_TRUST_US,
    .probe_count = PM_PATH_PROBE_COUNT,
    .probe_interval_us = PM_PATH_PROBE_INTERVAL_US,
    .reprobe_us = PM_PATH_REPROBE_US,
    .switch_ratio = PM_PATH_SWITCH_RATIO,
    .switch_min_gain_us = PM_PATH_SWITCH_MIN_GAIN_US,
    .relay_ping_us = PM_PATH_RELAY_PING_US,
    .devices_refresh_us = PM_MESH_DEVICES_REFRESH_US,
    .candidates_refresh_us = PM_MESH_CANDIDATES_REFRESH_US,
    .relay_retry_min_us = PM_MESH_RELAY_RETRY_MIN_US,
    .relay_retry_max_us = PM_MESH_RELAY_RETRY_MAX_US,
    .peer_idle_us = PM_MESH_PEER_IDLE_US,
    .loopback_candidates = FALSE,
  };
  pm_session_limits_default (&limits->session);
}

static void
service_free (Service *service)
{
  g_free (service->name);
  g_clear_object (&service->target);
  g_strfreev (service->allowed);
  g_free (service);
}

/* --- receiving ---------------------------------------------------------------- */

static void
on_frame_received (PmUdpSocket        *socket,
                   GBytes             *frame,
                   GInetSocketAddress *from,
                   gpointer            user_data)
{
  PmMesh        *self = user_data;
  gsize          len;
  const uint8_t *data = g_bytes_get_data (frame, &len);
  unsigned       n = g_list_model_get_n_items (G_LIST_MODEL (self->peers));

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      g_autoptr (GError) error = NULL;

      if (pm_peer_receive_udp (peer, data, len, from, &error))
        return;
      if (!g_error_matches (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_PEER) &&
          !g_error_matches (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_INDEX))
        {
          /* Its peer refused it (replay, bad tag, ...): the copies sent on
           * two paths end here too. */
          g_debug ("Frame from a peer refused: %s", error->message);
          return;
        }
    }
  g_debug ("A frame of no peer's; dropped");
}

/* --- the device list ------------------------------------------------------------ */

static PmPeer *
find_peer_by_id (PmMesh     *self,
                 const char *id,
                 unsigned   *position)
{
  unsigned n = g_list_model_get_n_items (G_LIST_MODEL (self->peers));

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      if (g_strcmp0 (pm_peer_get_id (peer), id) == 0)
        {
          if (position != NULL)
            *position = i;
          return peer; /* the store keeps its reference */
        }
    }
  return NULL;
}

static void
complete_ready (PmMesh *self,
                GError *error)
{
  GList *tasks = g_steal_pointer (&self->ready_tasks);

  for (GList *l = tasks; l != NULL; l = l->next)
    {
      if (error != NULL)
        g_task_return_error (l->data, g_error_copy (error));
      else
        g_task_return_boolean (l->data, TRUE);
      g_object_unref (l->data);
    }
  g_list_free (tasks);
}

static void
on_devices_listed (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr (PmMesh) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = pm_coord_client_list_devices_finish (PM_COORD_CLIENT (source), result, &error);

  self->devices_in_flight = FALSE;
  if (devices == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_message ("Could not list the devices: %s", error->message);
          if (!self->have_devices)
            complete_ready (self, error);
        }
      return;
    }
  if (!self->started)
    return;

  /* Peers that are no longer listed (revoked) go. */
  for (unsigned i = g_list_model_get_n_items (G_LIST_MODEL (self->peers)); i-- > 0;)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      gboolean listed = FALSE;

      for (unsigned j = 0; j < devices->len && !listed; j++)
        listed = g_strcmp0 (((PmDeviceInfo *) g_ptr_array_index (devices, j))->id, pm_peer_get_id (peer)) == 0;
      if (!listed)
        {
          g_message ("%s is no longer a device of the account", pm_peer_get_name (peer));
          pm_peer_shutdown (peer);
          g_list_store_remove (self->peers, i);
        }
    }
  for (unsigned j = 0; j < devices->len; j++)
    {
      PmDeviceInfo *info = g_ptr_array_index (devices, j);
      PmPeer       *peer;

      if (g_strcmp0 (info->id, self->device_id) == 0)
        continue;
      peer = find_peer_by_id (self, info->id, NULL);
      if (peer == NULL)
        {
          g_autoptr (PmPeer) fresh = pm_peer_new (self, info->id, info->name, info->type, info->public_key);
          g_list_store_append (self->peers, fresh);
          peer = fresh;
        }
      else if (memcmp (pm_peer_get_public_key (peer), info->public_key, 32) != 0)
        {
          g_warning ("%s: the server lists another key for a known device; ignored", info->name);
          continue;
        }
      pm_peer_set_info (peer, info->name, info->online, info->addresses, info->mapped);
    }
  self->have_devices = TRUE;
  complete_ready (self, NULL);
}

static void
refresh_devices (PmMesh *self)
{
  if (self->coord == NULL || self->devices_in_flight || !self->started)
    return;
  self->devices_in_flight = TRUE;
  pm_coord_client_list_devices_async (self->coord, self->cancellable, on_devices_listed, g_object_ref (self));
}

static gboolean
on_devices_timer (gpointer user_data)
{
  refresh_devices (user_data);
  return G_SOURCE_CONTINUE;
}

/* --- the wake channel ------------------------------------------------------------ */

static gboolean
on_wake_retry (gpointer user_data)
{
  PmMesh *self = user_data;

  self->wake_retry_id = 0;
  wait_wake (self);
  return G_SOURCE_REMOVE;
}

static void
on_woken (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (PmMesh) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *from = pm_coord_client_wait_wake_finish (PM_COORD_CLIENT (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || !self->started)
    return;
  if (error != NULL)
    {
      g_debug ("Wake channel: %s", error->message);
      self->wake_retry_id = g_timeout_add (WAKE_RETRY_US / 1000, on_wake_retry, self);
      return;
    }
  if (from != NULL)
    {
      PmPeer *peer = find_peer_by_id (self, from, NULL);
      if (peer != NULL)
        pm_peer_woken (peer);
      else
        g_debug ("A wake from an unknown device %s; listing the devices", from);
      refresh_devices (self);
    }
  wait_wake (self);
}

static void
wait_wake (PmMesh *self)
{
  if (self->coord == NULL || !self->started)
    return;
  pm_coord_client_wait_wake_async (self->coord, self->cancellable, on_woken, g_object_ref (self));
}

/* --- candidates ------------------------------------------------------------------ */

static void
on_candidates_published (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!pm_coord_client_put_candidates_finish (PM_COORD_CLIENT (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_message ("Could not publish the candidates: %s", error->message);
}

static void
finish_gathering (PmMesh *self)
{
  PmUdpCandidateFlags flags = self->limits.loopback_candidates ? PM_UDP_CANDIDATES_LOOPBACK : PM_UDP_CANDIDATES_DEFAULT;
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  GPtrArray   *endpoints = g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);
  PmUdpSocket *sockets[] = { self->udp4, self->udp6 };

  for (unsigned s = 0; s < G_N_ELEMENTS (sockets); s++)
    {
      g_autoptr (GPtrArray) local = NULL;

      if (sockets[s] == NULL)
        continue;
      local = pm_udp_socket_get_local_candidates (sockets[s], flags);
      for (unsigned i = 0; i < local->len && addresses->len < PM_COORD_CLIENT_MAX_ADDRESSES; i++)
        {
          GInetSocketAddress *a = g_ptr_array_index (local, i);
          g_ptr_array_add (addresses, g_object_ref (a));
          if (endpoints->len < PM_DISCO_MAX_ENDPOINTS)
            g_ptr_array_add (endpoints, pm_disco_endpoint_new (PM_DISCO_ENDPOINT_LOCAL, a));
        }
    }
  if (self->mapped != NULL && endpoints->len < PM_DISCO_MAX_ENDPOINTS)
    g_ptr_array_add (endpoints, pm_disco_endpoint_new (PM_DISCO_ENDPOINT_MAPPED, self->mapped));
  g_clear_pointer (&self->local_endpoints, g_ptr_array_unref);
  self->local_endpoints = endpoints;
  g_debug ("%u candidates gathered%s", endpoints->len, self->mapping_varies ? " (the NAT mapping varies by destination)" : "");

  if (self->coord != NULL && self->device_id != NULL)
    pm_coord_client_put_candidates_async (self->coord, self->device_id, addresses, self->mapped, self->mapping_varies,
                                          self->cancellable, on_candidates_published, NULL);
}

static void
on_netcheck_done (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (PmMesh) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmNetcheck) netcheck = pm_udp_socket_netcheck_finish (PM_UDP_SOCKET (source), result, &error);

  self->gathering = FALSE;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || !self->started)
    return;
  g_clear_object (&self->mapped);
  self->mapping_varies = FALSE;
  if (netcheck != NULL)
    {
      if (netcheck->mapped_primary != NULL)
        self->mapped = g_object_ref (netcheck->mapped_primary);
      self->mapping_varies = netcheck->mapping_varies_by_destination;
      if (!netcheck->udp_ok)
        g_message ("STUN: no answer (%s); direct paths will rely on LAN addresses", netcheck->error != NULL ? netcheck->error : "?");
    }
  else
    g_message ("STUN: %s", error->message);
  finish_gathering (self);
  if (self->gather_again)
    {
      self->gather_again = FALSE;
      gather_candidates (self);
    }
}

static void
gather_candidates (PmMesh *self)
{
  if (!self->started)
    return;
  if (self->gathering)
    {
      self->gather_again = TRUE;
      return;
    }
  if (self->coord != NULL && self->stun_primary != NULL && self->udp4 != NULL)
    {
      self->gathering = TRUE;
      pm_udp_socket_netcheck_async (self->udp4, self->stun_primary, self->stun_secondary, self->cancellable,
                                    on_netcheck_done, g_object_ref (self));
      finish_gathering (self); /* local addresses at once; the mapped one follows */
      return;
    }
  finish_gathering (self);
}

static gboolean
on_candidates_timer (gpointer user_data)
{
  gather_candidates (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_network_settled (gpointer user_data)
{
  PmMesh  *self = user_data;
  unsigned n = g_list_model_get_n_items (G_LIST_MODEL (self->peers));

  self->network_settle_id = 0;
  g_message ("The network changed: gathering candidates and probing again");
  gather_candidates (self);
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      pm_peer_network_changed (peer);
    }
  return G_SOURCE_REMOVE;
}

static void
on_network_changed (GNetworkMonitor *monitor,
                    gboolean         available,
                    gpointer         user_data)
{
  PmMesh *self = user_data;

  g_clear_handle_id (&self->network_settle_id, g_source_remove);
  self->network_settle_id = g_timeout_add (NETWORK_SETTLE_MS, on_network_settled, self);
}

/* --- services ------------------------------------------------------------------ */

gboolean
pm_mesh_add_service (PmMesh            *self,
                     const char        *name,
                     const char        *host_and_port,
                     const char *const *allowed,
                     GError           **error)
{
  g_autoptr (GInetSocketAddress) target = NULL;
  Service *service;

  g_return_val_if_fail (PM_IS_MESH (self), FALSE);
  g_return_val_if_fail (name != NULL && host_and_port != NULL, FALSE);

  if (*name == '\0' || strlen (name) > 64 || !g_utf8_validate (name, -1, NULL) || strpbrk (name, "=:,/ \t\n") != NULL)
    {
      g_set_error (error, PM_MESH_ERROR, PM_MESH_ERROR_SERVICE,
                   "“%s” is not a service name (1 to 64 characters, none of = : , / or spaces)", name);
      return FALSE;
    }
  if (g_hash_table_contains (self->services, name))
    {
      g_set_error (error, PM_MESH_ERROR, PM_MESH_ERROR_SERVICE, "The service “%s” is offered twice", name);
      return FALSE;
    }
  target = pm_address_parse (host_and_port, FALSE);
  if (target == NULL)
    {
      g_set_error (error, PM_MESH_ERROR, PM_MESH_ERROR_SERVICE,
                   "The service “%s” needs an IP:PORT address, not “%s”", name, host_and_port);
      return FALSE;
    }
  service = g_new0 (Service, 1);
  service->name = g_strdup (name);
  service->target = g_steal_pointer (&target);
  service->allowed = allowed != NULL ? g_strdupv ((char **) allowed) : NULL;
  g_hash_table_insert (self->services, service->name, service);
  return TRUE;
}

static gboolean
service_allows (Service *service,
                PmPeer  *peer)
{
  if (service->allowed == NULL)
    return TRUE;
  for (char **a = service->allowed; *a != NULL; a++)
    if (g_strcmp0 (*a, pm_peer_get_id (peer)) == 0 || g_strcmp0 (*a, pm_peer_get_name (peer)) == 0)
      return TRUE;
  return FALSE;
}

typedef struct {
  PmStream *stream;
  char     *peer_name;
  char     *service;
} Forward;

static void
forward_free (Forward *forward)
{
  g_clear_object (&forward->stream);
  g_free (forward->peer_name);
  g_free (forward->service);
  g_free (forward);
}

static void
on_forward_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Forward *forward = user_data;
  g_autoptr (GError) error = NULL;
  uint64_t up = 0, down = 0;

  if (!pm_forward_finish (result, &up, &down, &error))
    g_debug ("%s → %s ended: %s", forward->peer_name, forward->service, error->message);
  else
    g_debug ("%s → %s ended: %" G_GUINT64_FORMAT " bytes in, %" G_GUINT64_FORMAT " out", forward->peer_name,
             forward->service, down, up);
  forward_free (forward);
}

static void
on_service_connected (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  Forward *forward = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);

  if (connection == NULL)
    {
      g_autofree char *reason = g_strdup_printf ("service “%s” is not reachable on the host: %s", forward->service,
                                                 error->message);
      g_message ("%s asked for %s", forward->peer_name, reason);
      pm_stream_refuse (forward->stream, reason);
      forward_free (forward);
      return;
    }
  /* The client's connect timeout stays on the socket as an I/O timeout:
   * a forwarded connection may be idle for hours. */
  g_socket_set_timeout (g_socket_connection_get_socket (connection), 0);
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  pm_stream_accept (forward->stream);
  pm_forward_async (forward->stream, connection, NULL, on_forward_done, forward);
}

void
pm_mesh_handle_stream_request (PmMesh     *self,
                               PmPeer     *peer,
                               PmStream   *stream,
                               const char *name)
{
  Service *service = g_hash_table_lookup (self->services, name);
  g_autoptr (GSocketClient) client = NULL;
  Forward *forward;

  if (service == NULL || !service_allows (service, peer))
    {
      /* Unknown and forbidden read the same to the peer: no probing for
       * names. The log tells the owner which it was. */
      g_message ("%s asked for the service “%s”: %s", pm_peer_get_name (peer), name,
                 service == NULL ? "no such service" : "not allowed for this device");
      g_autofree char *reason = g_strdup_printf ("service “%s” is not offered to this device", name);
      pm_stream_refuse (stream, reason);
      return;
    }
  forward = g_new0 (Forward, 1);
  forward->stream = g_object_ref (stream);
  forward->peer_name = g_strdup (pm_peer_get_name (peer));
  forward->service = g_strdup (name);
  client = g_socket_client_new ();
  g_socket_client_set_timeout (client, 10);
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (service->target), self->cancellable,
                                 on_service_connected, forward);
}

/* --- life cycle -------------------------------------------------------------------- */

PmMesh *
pm_mesh_new (PmIdentity         *identity,
             PmCoordClient      *coord,
             const char         *device_id,
             const PmMeshLimits *limits)
{
  PmMesh *self;

  g_return_val_if_fail (PM_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (coord == NULL || PM_IS_COORD_CLIENT (coord), NULL);
  g_return_val_if_fail (coord == NULL || device_id != NULL, NULL);

  self = g_object_new (PM_TYPE_MESH, NULL);
  self->identity = g_object_ref (identity);
  self->coord = coord != NULL ? g_object_ref (coord) : NULL;
  self->device_id = g_strdup (device_id);
  if (limits != NULL)
    self->limits = *limits;
  else
    pm_mesh_limits_default (&self->limits);
  return self;
}

void
pm_mesh_set_stun_servers (PmMesh             *self,
                          GInetSocketAddress *primary,
                          GInetSocketAddress *secondary)
{
  g_return_if_fail (PM_IS_MESH (self));

  g_set_object (&self->stun_primary, primary);
  g_set_object (&self->stun_secondary, secondary);
}

gboolean
pm_mesh_start (PmMesh  *self,
               uint16_t port,
               GError **error)
{
  g_autoptr (GError) v6_error = NULL;

  g_return_val_if_fail (PM_IS_MESH (self), FALSE);
  g_return_val_if_fail (!self->started, FALSE);

  self->udp4 = pm_udp_socket_new_any (G_SOCKET_FAMILY_IPV4, port, NULL, error);
  if (self->udp4 == NULL)
    {
      g_prefix_error (error, "UDP port %u: ", port);
      if (error != NULL && *error != NULL)
        (*error)->domain = PM_MESH_ERROR, (*error)->code = PM_MESH_ERROR_BIND;
      return FALSE;
    }
  /* IPv6 on the same port when there is IPv6 at all. */
  self->udp6 = pm_udp_socket_new_any (G_SOCKET_FAMILY_IPV6, pm_udp_socket_get_port (self->udp4), NULL, &v6_error);
  if (self->udp6 == NULL)
    g_debug ("No IPv6 socket: %s", v6_error->message);

  self->started = TRUE;
  self->cancellable = g_cancellable_new ();
  g_signal_connect (self->udp4, "frame-received", G_CALLBACK (on_frame_received), self);
  if (self->udp6 != NULL)
    g_signal_connect (self->udp6, "frame-received", G_CALLBACK (on_frame_received), self);

  self->network_changed_id = g_signal_connect (g_network_monitor_get_default (), "network-changed",
                                               G_CALLBACK (on_network_changed), self);
  gather_candidates (self);
  self->candidates_timer_id = g_timeout_add (self->limits.candidates_refresh_us / 1000, on_candidates_timer, self);
  if (self->coord != NULL)
    {
      refresh_devices (self);
      wait_wake (self);
      self->devices_timer_id = g_timeout_add (self->limits.devices_refresh_us / 1000, on_devices_timer, self);
    }
  else
    self->have_devices = TRUE;
  return TRUE;
}

void
pm_mesh_stop (PmMesh *self)
{
  unsigned n;

  g_return_if_fail (PM_IS_MESH (self));

  if (!self->started)
    return;
  self->started = FALSE;
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  n = g_list_model_get_n_items (G_LIST_MODEL (self->peers));
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      pm_peer_shutdown (peer);
    }
  g_clear_signal_handler (&self->network_changed_id, g_network_monitor_get_default ());
  g_clear_handle_id (&self->devices_timer_id, g_source_remove);
  g_clear_handle_id (&self->candidates_timer_id, g_source_remove);
  g_clear_handle_id (&self->wake_retry_id, g_source_remove);
  g_clear_handle_id (&self->network_settle_id, g_source_remove);
  if (self->udp4 != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->udp4, self);
      pm_udp_socket_close (self->udp4);
      g_clear_object (&self->udp4);
    }
  if (self->udp6 != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->udp6, self);
      pm_udp_socket_close (self->udp6);
      g_clear_object (&self->udp6);
    }
  {
    g_autoptr (GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "The mesh stopped");
    complete_ready (self, error);
  }
}

void
pm_mesh_wait_ready_async (PmMesh             *self,
                          GCancellable       *cancellable,
                          GAsyncReadyCallback callback,
                          gpointer            user_data)
{
  GTask *task;

  g_return_if_fail (PM_IS_MESH (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_mesh_wait_ready_async);
  if (self->have_devices)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  self->ready_tasks = g_list_append (self->ready_tasks, task);
}

gboolean
pm_mesh_wait_ready_finish (PmMesh       *self,
                           GAsyncResult *result,
                           GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

PmPeer *
pm_mesh_add_peer (PmMesh        *self,
                  const char    *id,
                  const char    *name,
                  const char    *device_type,
                  const uint8_t *public_key,
                  GPtrArray     *addresses)
{
  PmPeer *peer;

  g_return_val_if_fail (PM_IS_MESH (self), NULL);
  g_return_val_if_fail (id != NULL && public_key != NULL, NULL);

  peer = find_peer_by_id (self, id, NULL);
  if (peer == NULL)
    {
      g_autoptr (PmPeer) fresh = pm_peer_new (self, id, name, device_type, public_key);
      g_list_store_append (self->peers, fresh);
      peer = fresh;
    }
  pm_peer_set_info (peer, name, FALSE, addresses, NULL);
  return peer;
}

GListModel *
pm_mesh_get_peers (PmMesh *self)
{
  g_return_val_if_fail (PM_IS_MESH (self), NULL);
  return G_LIST_MODEL (self->peers);
}

PmPeer *
pm_mesh_lookup_peer (PmMesh     *self,
                     const char *id_or_name)
{
  unsigned n;
  PmPeer  *by_name = NULL;

  g_return_val_if_fail (PM_IS_MESH (self), NULL);
  g_return_val_if_fail (id_or_name != NULL, NULL);

  n = g_list_model_get_n_items (G_LIST_MODEL (self->peers));
  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (PmPeer) peer = g_list_model_get_item (G_LIST_MODEL (self->peers), i);
      if (g_strcmp0 (pm_peer_get_id (peer), id_or_name) == 0)
        return peer;
      if (by_name == NULL && g_strcmp0 (pm_peer_get_name (peer), id_or_name) == 0)
        by_name = peer;
    }
  return by_name;
}

PmIdentity *
pm_mesh_get_identity (PmMesh *self)
{
  g_return_val_if_fail (PM_IS_MESH (self), NULL);
  return self->identity;
}

const char *
pm_mesh_get_device_id (PmMesh *self)
{
  g_return_val_if_fail (PM_IS_MESH (self), NULL);
  return self->device_id;
}

uint16_t
pm_mesh_get_port (PmMesh *self)
{
  g_return_val_if_fail (PM_IS_MESH (self), 0);
  return self->udp4 != NULL ? pm_udp_socket_get_port (self->udp4) : 0;
}

/* --- private, for the peers -------------------------------------------------------- */

const PmMeshLimits *
pm_mesh_get_limits (PmMesh *self)
{
  return &self->limits;
}

PmUdpSocket *
pm_mesh_get_udp_socket (PmMesh       *self,
                        GSocketFamily family)
{
  return family == G_SOCKET_FAMILY_IPV6 ? self->udp6 : family == G_SOCKET_FAMILY_IPV4 ? self->udp4
                                                                                      : NULL;
}

PmCoordClient *
pm_mesh_get_coord (PmMesh *self)
{
  return self->coord;
}

GPtrArray *
pm_mesh_get_local_endpoints (PmMesh *self)
{
  GPtrArray *copy = g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);

  for (unsigned i = 0; self->local_endpoints != NULL && i < self->local_endpoints->len; i++)
    {
      PmDiscoEndpoint *e = g_ptr_array_index (self->local_endpoints, i);
      g_ptr_array_add (copy, pm_disco_endpoint_new (e->flags, e->address));
    }
  return copy;
}

void
pm_mesh_get_keypair (PmMesh    *self,
                     PmKeypair *out)
{
  pm_identity_get_keypair (self->identity, out);
}

static void
pm_mesh_dispose (GObject *object)
{
  PmMesh *self = PM_MESH (object);

  pm_mesh_stop (self);
  if (self->peers != NULL)
    g_list_store_remove_all (self->peers);
  G_OBJECT_CLASS (pm_mesh_parent_class)->dispose (object);
}

static void
pm_mesh_finalize (GObject *object)
{
  PmMesh *self = PM_MESH (object);

  g_clear_object (&self->peers);
  g_hash_table_unref (self->services);
  g_clear_pointer (&self->local_endpoints, g_ptr_array_unref);
  g_clear_object (&self->mapped);
  g_clear_object (&self->stun_primary);
  g_clear_object (&self->stun_secondary);
  g_clear_object (&self->coord);
  g_clear_object (&self->identity);
  g_free (self->device_id);
  G_OBJECT_CLASS (pm_mesh_parent_class)->finalize (object);
}

static void
pm_mesh_class_init (PmMeshClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_mesh_dispose;
  object_class->finalize = pm_mesh_finalize;
}

static void
pm_mesh_init (PmMesh *self)
{
  self->peers = g_list_store_new (PM_TYPE_PEER);
  self->services = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) service_free);
  pm_mesh_limits_default (&self->limits);
}
