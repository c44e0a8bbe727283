/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmDemo: everything the demo mode needs, in this process and on loopback
 * only: a coordination server with its relay and STUN responder (the real
 * server code, server/, over SQLite in a temporary directory), and other
 * devices of the same account. One of them, "Demo host", runs a real PmMesh
 * with its own identity and offers a real TCP echo service; another is
 * enrolled but never runs, so it stays offline. This device gets an identity
 * and an enrollment of its own there; the app runs its mesh like any other
 * (pm_runtime_new_demo()). Nothing is faked: the rows show real sessions,
 * paths and round trips. Everything is removed by pm_demo_stop().
 */

#include <gio/gio.h>

#include "pm-identity.h"
#include "pm-mesh.h"

G_BEGIN_DECLS

#define PM_TYPE_DEMO (pm_demo_get_type ())
G_DECLARE_FINAL_TYPE (PmDemo, pm_demo, PM, DEMO, GObject)

/* Starts the server and the demo devices; fails only if a loopback socket or
 * the temporary directory cannot be made. */
PmDemo *pm_demo_new (GError **error);
void    pm_demo_stop (PmDemo *self);

/* This device at the demo server. */
PmIdentity *pm_demo_get_identity (PmDemo *self);
const char *pm_demo_get_state_dir (PmDemo *self);
const char *pm_demo_get_base_uri (PmDemo *self);
const char *pm_demo_get_device_id (PmDemo *self);
const char *pm_demo_get_device_name (PmDemo *self);
const char *pm_demo_get_token (PmDemo *self);
/* The device the app connects to at once. */
const char *pm_demo_get_host_name (PmDemo *self);
/* The STUN responder's two loopback addresses (@index 0 or 1; NULL if the
 * second could not be bound). */
GInetSocketAddress *pm_demo_get_stun_server (PmDemo  *self,
                                             unsigned index);
/* The mesh timers every demo mesh uses (shorter heartbeats). */
void pm_demo_get_limits (PmMeshLimits *limits);

G_END_DECLS
