/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmRuntime: the mesh this app runs, in-process on the GTK main loop, as
 * `pipermesh up` runs it: this device's identity and enrollment from the state
 * directory (core/pm-state.h), STUN at the coordination server's host, the
 * control socket that `pipermesh status` and `pipermesh ping` ask (and that
 * refuses a second process for the same state directory), then PmMesh. A
 * device that is not enrolled runs LAN-only, as does one whose settings ask
 * for it. The demo runtime does the same against a PmDemo.
 *
 * Everything the window shows is a property with notify.
 */

#include <gio/gio.h>

#include "pm-identity.h"
#include "pm-mesh.h"

G_BEGIN_DECLS

typedef enum {
  PM_RUNTIME_STARTING, /* loading the identity, resolving STUN, binding */
  PM_RUNTIME_RUNNING,  /* the mesh runs (see "ready" for the first device list) */
  PM_RUNTIME_FAILED,   /* it could not start: "message" says why */
} PmRuntimeStatus;

GType pm_runtime_status_get_type (void) G_GNUC_CONST;
#define PM_TYPE_RUNTIME_STATUS (pm_runtime_status_get_type ())

#define PM_TYPE_RUNTIME (pm_runtime_get_type ())
G_DECLARE_FINAL_TYPE (PmRuntime, pm_runtime, PM, RUNTIME, GObject)

/* @state_dir: NULL for pm_identity_default_state_dir(). */
PmRuntime *pm_runtime_new (const char *state_dir,
                           gboolean    lan_only);
/* Runs against an in-process demo server and demo devices (pm-demo.h), and
 * connects to the demo host as soon as it is listed. */
PmRuntime *pm_runtime_new_demo (void);

void pm_runtime_start (PmRuntime *self);
void pm_runtime_stop (PmRuntime *self);

PmRuntimeStatus pm_runtime_get_status (PmRuntime *self);
const char     *pm_runtime_get_message (PmRuntime *self);
gboolean        pm_runtime_get_ready (PmRuntime *self);
const char     *pm_runtime_get_problem (PmRuntime *self);
PmMesh         *pm_runtime_get_mesh (PmRuntime *self);
PmIdentity     *pm_runtime_get_identity (PmRuntime *self);
gboolean        pm_runtime_get_demo (PmRuntime *self);
gboolean        pm_runtime_get_enrolled (PmRuntime *self);
gboolean        pm_runtime_get_lan_only (PmRuntime *self);
const char     *pm_runtime_get_state_dir (PmRuntime *self);
const char     *pm_runtime_get_server_url (PmRuntime *self);
const char     *pm_runtime_get_device_id (PmRuntime *self);
const char     *pm_runtime_get_device_name (PmRuntime *self);
/* The STUN servers the mesh uses (@index 0 or 1), for the network check;
 * NULL when there is none. */
GInetSocketAddress *pm_runtime_get_stun_server (PmRuntime *self,
                                                unsigned   index);

G_END_DECLS
