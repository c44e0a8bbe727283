/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmMesh: this device in the mesh — its identity, the coordination client
 * (NULL in LAN-only mode), the wake channel, one UDP socket per address family
 * shared by STUN, probes and Noise traffic, candidate gathering and
 * publication, the services it offers, and its peers as a GListModel of
 * PmPeer. Runs on the thread-default main context it was created in.
 */

#include <gio/gio.h>

#include "pm-coord-client.h"
#include "pm-identity.h"
#include "pm-peer.h"
#include "pm-session.h"

G_BEGIN_DECLS

#define PM_MESH_ERROR (pm_mesh_error_quark ())

typedef enum {
  PM_MESH_ERROR_BIND,            /* the UDP port could not be bound */
  PM_MESH_ERROR_SERVICE,         /* a malformed or duplicate service */
  PM_MESH_ERROR_UNKNOWN_SERVICE, /* a peer asked for a service we do not offer */
  PM_MESH_ERROR_NOT_ALLOWED,     /* a peer asked for a service it may not use */
} PmMeshError;

GQuark pm_mesh_error_quark (void);

/**
 * PmMeshLimits:
 * The path and refresh timers (core/pm-mesh-limits.h), in microseconds.
 * Start from pm_mesh_limits_default() and shorten them in tests.
 */
typedef struct {
  int64_t         heartbeat_us;
  int64_t         trust_us;
  unsigned        probe_count;
  int64_t         probe_interval_us;
  int64_t         reprobe_us;
  double          switch_ratio;
  int64_t         switch_min_gain_us;
  int64_t         relay_ping_us;
  int64_t         devices_refresh_us;
  int64_t         candidates_refresh_us;
  int64_t         relay_retry_min_us;
  int64_t         relay_retry_max_us;
  int64_t         peer_idle_us;
  gboolean        loopback_candidates; /* also offer loopback addresses (tests on one machine) */
  PmSessionLimits session;             /* every peer's Noise session (rotation thresholds, ...) */
} PmMeshLimits;

void pm_mesh_limits_default (PmMeshLimits *limits);

#define PM_TYPE_MESH (pm_mesh_get_type ())
G_DECLARE_FINAL_TYPE (PmMesh, pm_mesh, PM, MESH, GObject)

/* @coord: NULL for LAN-only (no server, relay or STUN is ever contacted);
 * @device_id: this device's id at the server (NULL in LAN-only mode). */
PmMesh *pm_mesh_new (PmIdentity         *identity,
                     PmCoordClient      *coord,
                     const char         *device_id,
                     const PmMeshLimits *limits);

/* Before pm_mesh_start(): the STUN servers (NULL: none), and the UDP port
 * (0: any). */
void pm_mesh_set_stun_servers (PmMesh             *self,
                               GInetSocketAddress *primary,
                               GInetSocketAddress *secondary);

/* Binds the UDP sockets, gathers and publishes candidates, fetches the
 * device list and holds the wake channel. */
gboolean pm_mesh_start (PmMesh  *self,
                        uint16_t port,
                        GError **error);
void     pm_mesh_stop (PmMesh *self);

/* Offers a local TCP service to peers: NAME=HOST:PORT. @allowed: device ids
 * or names that may use it (NULL: every device of the account). */
gboolean pm_mesh_add_service (PmMesh            *self,
                              const char        *name,
                              const char        *host_and_port,
                              const char *const *allowed,
                              GError           **error);

/* The peers, a GListModel of PmPeer (also pm_mesh_get_peers()). */
GListModel *pm_mesh_get_peers (PmMesh *self);
PmPeer     *pm_mesh_lookup_peer (PmMesh     *self,
                                 const char *id_or_name);
/* Adds a peer known without the server (a paired device; issue 5). */
PmPeer *pm_mesh_add_peer (PmMesh        *self,
                          const char    *id,
                          const char    *name,
                          const char    *device_type,
                          const uint8_t *public_key,
                          GPtrArray     *addresses);

/* Resolves when the first device list has arrived (at once in LAN-only mode). */
void     pm_mesh_wait_ready_async (PmMesh             *self,
                                   GCancellable       *cancellable,
                                   GAsyncReadyCallback callback,
                                   gpointer            user_data);
gboolean pm_mesh_wait_ready_finish (PmMesh       *self,
                                    GAsyncResult *result,
                                    GError      **error);

PmIdentity *pm_mesh_get_identity (PmMesh *self);
const char *pm_mesh_get_device_id (PmMesh *self);
uint16_t    pm_mesh_get_port (PmMesh *self);

G_END_DECLS
