/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPairHost: the device that shows a pairing code (docs/PROTOCOL.md §11).
 * It listens with HTTPS (its self-signed certificate, pinned by the code) on
 * one path, PM_PAIR_PATH, which takes exactly one WebSocket: the first
 * request that carries the code's token spends it, whatever comes next. Over
 * that WebSocket it runs Noise_XX as the responder with the device's static
 * key, shows the verification code through the "verify" signal, and once its
 * user accepts (pm_pair_host_accept()) and the client confirms that it has
 * stored the host, stores the client in the paired store.
 */

#include <gio/gio.h>

#include "pm-identity.h"
#include "pm-pair-code.h"
#include "pm-pair-payload.h"
#include "pm-paired-store.h"

G_BEGIN_DECLS

#define PM_TYPE_PAIR_HOST (pm_pair_host_get_type ())
G_DECLARE_FINAL_TYPE (PmPairHost, pm_pair_host, PM, PAIR_HOST, GObject)

/* Signals:
 *   verify (const char *code, const char *peer_name, const char *peer_type):
 *     the handshake is done and both screens show @code; answer with
 *     pm_pair_host_accept() or pm_pair_host_reject() (now or later, within
 *     PmPairLimits.verify_timeout_ms). */

PmPairHost *pm_pair_host_new (PmIdentity         *identity,
                              GTlsCertificate    *certificate,
                              PmPairedStore      *store,
                              const char         *name,
                              const char         *device_type,
                              const PmPairLimits *limits);

/* Before pm_pair_host_start(): the UDP port this device's mesh uses (told to
 * the client; default PM_MESH_LAN_PORT, 0: chosen at run time) and the
 * services the new device may use (NULL or empty: every service). */
void pm_pair_host_set_mesh_port (PmPairHost *self,
                                 uint16_t    port);
void pm_pair_host_set_allowed_services (PmPairHost        *self,
                                        const char *const *services);

/* Listens on @addresses (GInetAddress; NULL: every address, with the LAN
 * addresses in the code) at @port (0: any) and makes a code that expires
 * @lifetime_s seconds from now. */
gboolean          pm_pair_host_start (PmPairHost *self,
                                      GPtrArray  *addresses,
                                      uint16_t    port,
                                      int64_t     lifetime_s,
                                      GError    **error);
const PmPairCode *pm_pair_host_get_code (PmPairHost *self);
uint16_t          pm_pair_host_get_port (PmPairHost *self);
void              pm_pair_host_stop (PmPairHost *self);

/* Resolves once, when the pairing succeeded (the stored device), failed or
 * the code expired unused. The listener stays up until stopped, answering
 * later requests "used" or "expired". */
void            pm_pair_host_wait_async (PmPairHost         *self,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data);
PmPairedDevice *pm_pair_host_wait_finish (PmPairHost   *self,
                                          GAsyncResult *result,
                                          GError      **error);

void pm_pair_host_accept (PmPairHost *self);
void pm_pair_host_reject (PmPairHost *self,
                          const char *reason);

G_END_DECLS
