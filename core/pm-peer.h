/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPeer: one remote device as seen from this one — its Noise session, its
 * paths (the relay and any direct UDP endpoint) and its streams. Created and
 * owned by PmMesh (pm_mesh_get_peers()). Everything the app and the CLI show is
 * a property with notify; nothing needs polling. See docs/ARCHITECTURE.md,
 * "Mesh sessions and paths".
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-stream.h"

G_BEGIN_DECLS

#define PM_PEER_ERROR (pm_peer_error_quark ())

typedef enum {
  PM_PEER_ERROR_NO_ROUTE,      /* LAN-only and no address known, or no server */
  PM_PEER_ERROR_NOT_CONNECTED, /* the operation needs a connected session */
  PM_PEER_ERROR_TIMED_OUT,     /* no answer in time */
  PM_PEER_ERROR_CLOSED,        /* the peer was disconnected or removed meanwhile */
} PmPeerError;

GQuark pm_peer_error_quark (void);

typedef enum {
  PM_PEER_STATE_IDLE,       /* no session wanted */
  PM_PEER_STATE_CONNECTING, /* a session is wanted, no keys yet */
  PM_PEER_STATE_CONNECTED,  /* keys established: data flows on some path */
} PmPeerState;

typedef enum {
  PM_PATH_NONE,   /* nothing carries data */
  PM_PATH_RELAY,  /* the server's ciphertext relay */
  PM_PATH_DIRECT, /* UDP to an address that is not one of the peer's own interfaces (NAT traversed) */
  PM_PATH_LAN,    /* UDP to one of the peer's own interface addresses */
} PmPathType;

GType pm_peer_state_get_type (void) G_GNUC_CONST;
GType pm_path_type_get_type (void) G_GNUC_CONST;
#define PM_TYPE_PEER_STATE (pm_peer_state_get_type ())
#define PM_TYPE_PATH_TYPE  (pm_path_type_get_type ())

const char *pm_peer_state_to_string (PmPeerState state); /* "idle", "connecting", "connected" */
const char *pm_path_type_to_string (PmPathType path);    /* "none", "relay", "direct", "lan" */

#define PM_TYPE_PEER (pm_peer_get_type ())
G_DECLARE_FINAL_TYPE (PmPeer, pm_peer, PM, PEER, GObject)

/* Properties (all read-only, notify on change):
 *   id (string), name (string), device-type (string), public-key (string, hex),
 *   online (boolean, the server's view), state (PmPeerState), path-type (PmPathType),
 *   rtt-ms (double, the current path's last round trip; -1 when unknown),
 *   endpoint (string "IP:PORT" of the direct path, or NULL), tx-bytes, rx-bytes
 *   (uint64, plaintext through the session), rotations (uint), last-handshake
 *   (int64, wall-clock µs since the epoch, 0 if none), direct-attempts (uint,
 *   discovery rounds this side started), path-changes (uint). */

const char *pm_peer_get_id (PmPeer *self);
const char *pm_peer_get_name (PmPeer *self);
const char *pm_peer_get_device_type (PmPeer *self);
const char *pm_peer_get_public_key_hex (PmPeer *self);
gboolean    pm_peer_get_online (PmPeer *self);
PmPeerState pm_peer_get_state (PmPeer *self);
PmPathType  pm_peer_get_path_type (PmPeer *self);
double      pm_peer_get_rtt_ms (PmPeer *self);
const char *pm_peer_get_endpoint (PmPeer *self);
uint64_t    pm_peer_get_tx_bytes (PmPeer *self);
uint64_t    pm_peer_get_rx_bytes (PmPeer *self);
unsigned    pm_peer_get_rotations (PmPeer *self);
int64_t     pm_peer_get_last_handshake (PmPeer *self);
unsigned    pm_peer_get_direct_attempts (PmPeer *self);
unsigned    pm_peer_get_path_changes (PmPeer *self);

/* Wants a session: opens the relay (waking the peer through the server) and
 * starts the IK handshake at once; direct paths are probed in the background. */
void pm_peer_connect (PmPeer *self);
/* No longer wants one: streams are aborted, the relay closed, keys wiped. */
void pm_peer_disconnect (PmPeer *self);

/* Opens a stream to one of the peer's services (connecting if needed). */
void      pm_peer_open_stream_async (PmPeer             *self,
                                     const char         *service,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data);
PmStream *pm_peer_open_stream_finish (PmPeer       *self,
                                      GAsyncResult *result,
                                      GError      **error);

/* One authenticated ping over the current path; the answer's round trip in
 * milliseconds and the path it took. */
void     pm_peer_ping_async (PmPeer             *self,
                             GCancellable       *cancellable,
                             GAsyncReadyCallback callback,
                             gpointer            user_data);
gboolean pm_peer_ping_finish (PmPeer       *self,
                              GAsyncResult *result,
                              double       *rtt_ms,
                              PmPathType   *path,
                              GError      **error);

G_END_DECLS
