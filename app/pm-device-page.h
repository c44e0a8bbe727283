/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmDevicePage: everything about one peer: its state, path and round trip,
 * the direct endpoint, traffic and key rotations, the last handshake, and
 * its identity (device id, key fingerprint, public key). Follows the peer's
 * notify signals.
 */

#include <adwaita.h>

#include "pm-peer.h"

G_BEGIN_DECLS

#define PM_TYPE_DEVICE_PAGE (pm_device_page_get_type ())
G_DECLARE_FINAL_TYPE (PmDevicePage, pm_device_page, PM, DEVICE_PAGE, AdwBin)

PmPeer *pm_device_page_get_peer (PmDevicePage *self);
/* @presence_known: FALSE in LAN-only mode (no server tells whether a peer
 * is online). */
void pm_device_page_set_peer (PmDevicePage *self,
                              PmPeer       *peer,
                              gboolean      presence_known);
/* The text shown for a row ("path", "rtt", "endpoint", "status"), for the
 * screenshot report. */
const char *pm_device_page_get_value (PmDevicePage *self,
                                      const char   *row);

G_END_DECLS
