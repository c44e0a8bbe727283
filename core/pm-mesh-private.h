/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* What PmMesh and PmPeer share; not installed, not for the app. */

#include "pm-disco.h"
#include "pm-keypair.h"
#include "pm-mesh.h"
#include "pm-stream-mux.h"
#include "pm-udp-socket.h"

G_BEGIN_DECLS

/* --- PmMesh, for its peers ------------------------------------------------ */
const PmMeshLimits *pm_mesh_get_limits (PmMesh *self);
PmUdpSocket        *pm_mesh_get_udp_socket (PmMesh       *self,
                                            GSocketFamily family);
PmCoordClient      *pm_mesh_get_coord (PmMesh *self);
/* This device's endpoints for a call-me-maybe: PmDiscoEndpoint*, LOCAL and MAPPED. */
GPtrArray *pm_mesh_get_local_endpoints (PmMesh *self);
void       pm_mesh_get_keypair (PmMesh    *self,
                                PmKeypair *out);
/* A stream the peer asked for: checked against the services and their
 * allow-lists, then accepted and spliced to the local service, or refused. */
void pm_mesh_handle_stream_request (PmMesh     *self,
                                    PmPeer     *peer,
                                    PmStream   *stream,
                                    const char *service);

/* --- PmPeer, for the mesh ------------------------------------------------ */
PmPeer        *pm_peer_new (PmMesh        *mesh,
                            const char    *id,
                            const char    *name,
                            const char    *device_type,
                            const uint8_t *public_key);
void           pm_peer_set_info (PmPeer             *self,
                                 const char         *name,
                                 gboolean            online,
                                 GPtrArray          *local_addresses,
                                 GInetSocketAddress *mapped);
const uint8_t *pm_peer_get_public_key (PmPeer *self);
/* A frame that came over UDP from @from. FALSE with PM_SESSION_ERROR_UNKNOWN_PEER
 * or _UNKNOWN_INDEX when it is not this peer's (the mesh tries the next). */
gboolean pm_peer_receive_udp (PmPeer             *self,
                              const uint8_t      *frame,
                              size_t              len,
                              GInetSocketAddress *from,
                              GError            **error);
/* The peer sent us a wake through the server: it wants a session. */
void pm_peer_woken (PmPeer *self);
/* The network changed: forget unproven endpoints' schedules, probe again now. */
void pm_peer_network_changed (PmPeer *self);
/* The mesh stops or the device was revoked: everything ends. */
void pm_peer_shutdown (PmPeer *self);

G_END_DECLS
