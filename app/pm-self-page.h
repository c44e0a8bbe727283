/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmSelfPage: this device: its name, key fingerprint and public key, where the
 * private key is kept, its enrollment and UDP port, and a network check (as
 * `pipermesh netcheck`: pm_udp_socket_netcheck_async() from a fresh socket,
 * against the STUN servers the mesh uses).
 */

#include <adwaita.h>

#include "pm-runtime.h"

G_BEGIN_DECLS

#define PM_TYPE_SELF_PAGE (pm_self_page_get_type ())
G_DECLARE_FINAL_TYPE (PmSelfPage, pm_self_page, PM, SELF_PAGE, AdwBin)

void pm_self_page_set_runtime (PmSelfPage *self,
                               PmRuntime  *runtime);
/* Starts a network check (nothing if one runs or there is no STUN server);
 * "checking" is TRUE until it is done. */
void     pm_self_page_run_check (PmSelfPage *self);
gboolean pm_self_page_get_checking (PmSelfPage *self);
/* Scrolls down to the network check. */
void pm_self_page_scroll_to_end (PmSelfPage *self);
/* The text shown for a row ("udp", "mapped", "mapping", "stun-rtt",
 * "fingerprint"), for the screenshot report. */
const char *pm_self_page_get_value (PmSelfPage *self,
                                    const char *row);

G_END_DECLS
