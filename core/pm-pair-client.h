/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPairClient: the device that scans a pairing code (docs/PROTOCOL.md §11).
 * It connects with TLS to the code's addresses in turn and accepts only the
 * certificate whose SubjectPublicKeyInfo hashes to the code's pin (never a
 * CA's word), presents the code's token, runs Noise_XX as the initiator and
 * refuses a host whose static key is not the code's. It shows the
 * verification code through the "verify" signal, waits for the host's user
 * to accept, stores the host and tells it so.
 */

#include <gio/gio.h>

#include "pm-identity.h"
#include "pm-pair-code.h"
#include "pm-pair-payload.h"
#include "pm-paired-store.h"

G_BEGIN_DECLS

#define PM_TYPE_PAIR_CLIENT (pm_pair_client_get_type ())
G_DECLARE_FINAL_TYPE (PmPairClient, pm_pair_client, PM, PAIR_CLIENT, GObject)

/* Signals:
 *   verify (const char *code, const char *host_name, const char *host_type):
 *     the handshake is done; show @code, the host's user compares it and
 *     accepts or rejects there. */

PmPairClient *pm_pair_client_new (PmIdentity         *identity,
                                  PmPairedStore      *store,
                                  const char         *name,
                                  const char         *device_type,
                                  const PmPairLimits *limits);

/* The UDP port this device's mesh uses (told to the host; default
 * PM_MESH_LAN_PORT, 0: chosen at run time), and the services of this device
 * the host may use (NULL or empty: every service). */
void pm_pair_client_set_mesh_port (PmPairClient *self,
                                   uint16_t      port);
void pm_pair_client_set_allowed_services (PmPairClient      *self,
                                          const char *const *services);

/* One pairing at a time. On success the host is stored (and the host has
 * stored this device); on any error nothing is stored. */
void            pm_pair_client_pair_async (PmPairClient       *self,
                                           const PmPairCode   *code,
                                           GCancellable       *cancellable,
                                           GAsyncReadyCallback callback,
                                           gpointer            user_data);
PmPairedDevice *pm_pair_client_pair_finish (PmPairClient *self,
                                            GAsyncResult *result,
                                            GError      **error);

G_END_DECLS
