/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmLanPeers: the devices paired by QR code (`pipermesh pair`, core/pm-paired-
 * store.h) as the peers of a LAN-only mesh, for `pipermesh up/connect
 * --lan-only` and the app alike: each at its last known addresses, and at any
 * address where mDNS finds its key; this device is advertised over mDNS;
 * addresses found are remembered in the store for the next start. Without an
 * Avahi daemon discovery is off and the stored addresses are used.
 */

#include <gio/gio.h>

#include "pm-mesh.h"

G_BEGIN_DECLS

#define PM_TYPE_LAN_PEERS (pm_lan_peers_get_type ())
G_DECLARE_FINAL_TYPE (PmLanPeers, pm_lan_peers, PM, LAN_PEERS, GObject)

/* @mesh: started; @state_dir: where paired.db lives; @mdns: FALSE to use
 * only the stored addresses (tests: nothing leaves loopback). */
PmLanPeers *pm_lan_peers_new (PmMesh     *mesh,
                              const char *state_dir,
                              gboolean    mdns);
/* Adds every paired device to the mesh and starts mDNS, advertising this
 * device as @self_name (NULL: no advertisement). Fails only when the paired
 * store cannot be read. */
gboolean pm_lan_peers_start (PmLanPeers *self,
                             const char *self_name,
                             GError    **error);
void     pm_lan_peers_stop (PmLanPeers *self);
unsigned pm_lan_peers_get_n_paired (PmLanPeers *self);

G_END_DECLS
