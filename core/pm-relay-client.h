/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmRelayClient: one device's WebSocket pipe to one peer through the server's
 * ciphertext relay (GET /v1/mesh/relay/{peerId}/stream, docs/API.md;
 * docs/PROTOCOL.md §7). One frame of docs/PROTOCOL.md §2 is one binary
 * message. The client neither queues nor retries: the session above queues
 * while no path is open, and reconnecting is the owner's decision, guided by
 * the close code (pm_relay_client_get_close_code()) and the error it maps to.
 * Payload bytes are never logged.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

/* Limits and timers: core/pm-mesh-limits.h. */

#define PM_RELAY_CLIENT_ERROR (pm_relay_client_error_quark ())

/* Cancelled operations report G_IO_ERROR_CANCELLED, as GIO does. */
typedef enum {
  PM_RELAY_CLIENT_ERROR_INVALID_URI,   /* base URI not http(s)://host[:port] */
  PM_RELAY_CLIENT_ERROR_INSECURE,      /* http:// to anything but a loopback IP literal */
  PM_RELAY_CLIENT_ERROR_BUSY,          /* connect while connecting or open */
  PM_RELAY_CLIENT_ERROR_NOT_CONNECTED, /* send while not open */
  PM_RELAY_CLIENT_ERROR_TOO_BIG,       /* frame over the limit (locally), or close 1009 */
  PM_RELAY_CLIENT_ERROR_CONNECTION,    /* network or TLS failure, or not a WebSocket answer */
  PM_RELAY_CLIENT_ERROR_UNAUTHORIZED,  /* HTTP 401 before the upgrade: bad or revoked token */
  PM_RELAY_CLIENT_ERROR_NOT_FOUND,     /* HTTP 404: peer unknown, revoked or another account's */
  PM_RELAY_CLIENT_ERROR_BAD_REQUEST,   /* HTTP 400 (e.g. the peer is this device), close 4400 */
  PM_RELAY_CLIENT_ERROR_UNAVAILABLE,   /* another HTTP status (503...), or close 1001 */
  PM_RELAY_CLIENT_ERROR_CROSS_ACCOUNT, /* close 4403 */
  PM_RELAY_CLIENT_ERROR_PEER_TIMEOUT,  /* close 4408: the peer never came */
  PM_RELAY_CLIENT_ERROR_REPLACED,      /* close 4409: a newer connection of this device */
  PM_RELAY_CLIENT_ERROR_REVOKED,       /* close 4410: a device of the pair was revoked */
  PM_RELAY_CLIENT_ERROR_SESSION_LIMIT, /* close 4429: too many relay sessions */
  PM_RELAY_CLIENT_ERROR_IDLE,          /* close 4000: no data for the relay's idle limit */
  PM_RELAY_CLIENT_ERROR_DEAD,          /* close 4001, or nothing heard for our dead limit */
  PM_RELAY_CLIENT_ERROR_CLOSED,        /* any other close by the server, or the link lost */
} PmRelayClientError;

GQuark pm_relay_client_error_quark (void);

/**
 * PmRelayClientState:
 * @PM_RELAY_CLIENT_STATE_DISCONNECTED: never connected, or the connect was cancelled
 * @PM_RELAY_CLIENT_STATE_CONNECTING: HTTP request and WebSocket handshake under way
 * @PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER: the WebSocket is open; sending works (the relay
 *   holds early frames back until the peer comes) but nothing came from the peer yet. The
 *   relay does not say when the peer arrives, so this lasts until its first frame.
 * @PM_RELAY_CLIENT_STATE_CONNECTED: open, and a frame from the peer has arrived
 * @PM_RELAY_CLIENT_STATE_CLOSED: the connection or the attempt ended; see the close code and
 *   pm_relay_client_get_error()
 */
typedef enum {
  PM_RELAY_CLIENT_STATE_DISCONNECTED,
  PM_RELAY_CLIENT_STATE_CONNECTING,
  PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER,
  PM_RELAY_CLIENT_STATE_CONNECTED,
  PM_RELAY_CLIENT_STATE_CLOSED,
} PmRelayClientState;

GType pm_relay_client_state_get_type (void) G_GNUC_CONST;
#define PM_TYPE_RELAY_CLIENT_STATE (pm_relay_client_state_get_type ())

#define PM_TYPE_RELAY_CLIENT (pm_relay_client_get_type ())
G_DECLARE_FINAL_TYPE (PmRelayClient, pm_relay_client, PM, RELAY_CLIENT, GObject)

PmRelayClient *pm_relay_client_new (const char *base_uri,
                                    const char *token,
                                    const char *peer_id);

void     pm_relay_client_connect_async (PmRelayClient      *self,
                                        GCancellable       *cancellable,
                                        GAsyncReadyCallback callback,
                                        gpointer            user_data);
gboolean pm_relay_client_connect_finish (PmRelayClient *self,
                                         GAsyncResult  *result,
                                         GError       **error);
gboolean pm_relay_client_send (PmRelayClient *self,
                               const uint8_t *frame,
                               size_t         len,
                               GError       **error);
void     pm_relay_client_close (PmRelayClient *self);

PmRelayClientState pm_relay_client_get_state (PmRelayClient *self);
gboolean           pm_relay_client_is_open (PmRelayClient *self);
const char        *pm_relay_client_get_peer_id (PmRelayClient *self);
unsigned           pm_relay_client_get_close_code (PmRelayClient *self);
const char        *pm_relay_client_get_close_reason (PmRelayClient *self);
const GError      *pm_relay_client_get_error (PmRelayClient *self);
void               pm_relay_client_set_keepalive (PmRelayClient *self,
                                                  unsigned       interval_s,
                                                  unsigned       dead_after_pings);

PmRelayClientError pm_relay_client_error_from_close_code (unsigned code);

G_END_DECLS
