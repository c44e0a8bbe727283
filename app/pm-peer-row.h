/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPeerRow: one peer in the device list: its type icon with an online dot,
 * its name, one line for the path and round trip ("LAN · 3 ms", "Relay ·
 * 80 ms", "Connecting…", "Offline · last connected 5 min ago") and a
 * Connect/Disconnect button. Everything follows the PmPeer's notify signals.
 */

#include <adwaita.h>

#include "pm-peer.h"

G_BEGIN_DECLS

#define PM_TYPE_PEER_ROW (pm_peer_row_get_type ())
G_DECLARE_FINAL_TYPE (PmPeerRow, pm_peer_row, PM, PEER_ROW, AdwActionRow)

/* @presence_known: FALSE in LAN-only mode (nobody tells whether a peer is
 * online). */
GtkWidget *pm_peer_row_new (PmPeer  *peer,
                            gboolean presence_known);
PmPeer    *pm_peer_row_get_peer (PmPeerRow *self);

G_END_DECLS
