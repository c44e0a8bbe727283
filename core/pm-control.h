/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmControl: the control channel of a running `pipermesh up` or `pipermesh
 * connect`, for the short-lived `pipermesh status` and `pipermesh ping`.
 *
 * A peer-to-peer D-Bus server (GDBusServer, no bus daemon) on
 * unix:path=STATE_DIR/control.socket that only lets in the same user, and
 * exports one object, PM_CONTROL_OBJECT_PATH, with the interface
 * org.pipermesh.Control1 (the introspection XML is in pm-control.c):
 *
 *   GetStatus () -> (a{sv} self, aa{sv} peers)
 *     self:  id s (absent in LAN-only mode), name s, publicKey s, port q
 *     peers: id s, name s, type s, online b, state s ("idle", "connecting",
 *            "connected"), path s ("none", "relay", "direct", "lan"),
 *            rttMs d (absent while unknown), endpoint s ("IP:PORT", absent
 *            without a direct path), txBytes t, rxBytes t, rotations u,
 *            lastHandshake x (µs since the epoch, absent if none),
 *            directAttempts u, pathChanges u
 *   Ping (s device) -> (d rtt_ms, s path)
 *     device: an id or a name. Connects first if there is no session (waits
 *     at most PM_CONTROL_PING_CONNECT_TIMEOUT_S for one).
 *
 * Errors travel as org.pipermesh.Control1.Error.* names, mapped back to
 * PM_CONTROL_ERROR on the client side. Any D-Bus client works, e.g.
 *   gdbus call --address unix:path=STATE_DIR/control.socket \
 *     --dest org.pipermesh.Control --object-path /org/pipermesh/Control \
 *     --method org.pipermesh.Control1.GetStatus
 * (GLib 2.74's gdbus wants a --dest, any bus name: there is no bus, the
 * destination is ignored; and it says Hello first, which the server answers.)
 *
 * The server half (the PmControl object) lives in the process that runs the
 * mesh; the client half (pm_control_connect() and the calls below) in the
 * commands that ask it.
 */

#include <gio/gio.h>

#include "pm-mesh.h"

G_BEGIN_DECLS

/* The socket's name inside the state directory. */
#define PM_CONTROL_SOCKET_NAME "control.socket"
#define PM_CONTROL_OBJECT_PATH "/org/pipermesh/Control"
#define PM_CONTROL_INTERFACE   "org.pipermesh.Control1"

/* How long connecting to the socket (and D-Bus authentication) may take;
 * a process that accepts but never answers counts as running. */
#define PM_CONTROL_CONNECT_TIMEOUT_MS (5 * 1000)
/* How long a client waits for GetStatus, and for Ping (above
 * PM_CONTROL_PING_CONNECT_TIMEOUT_S plus a ping's own time-out). */
#define PM_CONTROL_STATUS_TIMEOUT_MS (10 * 1000)
#define PM_CONTROL_PING_TIMEOUT_MS   (60 * 1000)
/* How long Ping waits for a session to a peer it had to connect first. */
#define PM_CONTROL_PING_CONNECT_TIMEOUT_S 20
/* Most clients connected at once; more are turned away. */
#define PM_CONTROL_MAX_CLIENTS 64

#define PM_CONTROL_ERROR (pm_control_error_quark ())

typedef enum {
  PM_CONTROL_ERROR_NOT_RUNNING,     /* nothing answers on the state dir's socket */
  PM_CONTROL_ERROR_ALREADY_RUNNING, /* another process serves this state dir */
  PM_CONTROL_ERROR_UNKNOWN_DEVICE,  /* no peer of that id or name */
  PM_CONTROL_ERROR_NOT_CONNECTED,   /* no session to the peer came up in time */
  PM_CONTROL_ERROR_FAILED,          /* anything else; the message says what */
} PmControlError;

GQuark pm_control_error_quark (void);

/* --- Server ---------------------------------------------------------------- */

#define PM_TYPE_CONTROL (pm_control_get_type ())
G_DECLARE_FINAL_TYPE (PmControl, pm_control, PM, CONTROL, GObject)

/* @self_name: this device's name, for GetStatus. */
PmControl *pm_control_new (PmMesh     *mesh,
                           const char *self_name);

/* Listens on STATE_DIR/control.socket. Fails with ALREADY_RUNNING when a
 * process answers there; removes a socket nothing answers on (left by a
 * process that died). */
gboolean pm_control_start (PmControl  *self,
                           const char *state_dir,
                           GError    **error);
/* Stops listening, closes the clients, ends pending pings and removes the
 * socket. Also done when the object is finalized. */
void pm_control_stop (PmControl *self);

const char *pm_control_get_socket_path (PmControl *self);

/* --- Client ---------------------------------------------------------------- */

/* Connects to the process running for @state_dir; NOT_RUNNING if none. */
GDBusConnection *pm_control_connect (const char   *state_dir,
                                     GCancellable *cancellable,
                                     GError      **error);

/* Returns the (a{sv}aa{sv}) of GetStatus. */
void      pm_control_get_status_async (GDBusConnection    *connection,
                                       GCancellable       *cancellable,
                                       GAsyncReadyCallback callback,
                                       gpointer            user_data);
GVariant *pm_control_get_status_finish (GDBusConnection *connection,
                                        GAsyncResult    *result,
                                        GError         **error);

void     pm_control_ping_async (GDBusConnection    *connection,
                                const char         *device,
                                GCancellable       *cancellable,
                                GAsyncReadyCallback callback,
                                gpointer            user_data);
gboolean pm_control_ping_finish (GDBusConnection *connection,
                                 GAsyncResult    *result,
                                 double          *rtt_ms,
                                 char           **path,
                                 GError         **error);

G_END_DECLS
