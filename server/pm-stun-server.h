/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <stdint.h>

#include "pm-stun.h"

G_BEGIN_DECLS

#define PM_STUN_SERVER_ERROR (pm_stun_server_error_quark ())

typedef enum {
  PM_STUN_SERVER_ERROR_BIND,    /* a UDP socket could not be created or bound */
  PM_STUN_SERVER_ERROR_RUNNING, /* started twice */
} PmStunServerError;

GQuark pm_stun_server_error_quark (void);

/* What the responder did with one datagram; counted per outcome. */
typedef enum {
  PM_STUN_SERVER_ANSWERED,               /* Binding success response */
  PM_STUN_SERVER_ANSWERED_420,           /* unknown comprehension-required attribute */
  PM_STUN_SERVER_ANSWERED_400,           /* a request we could parse the header of, but bad */
  PM_STUN_SERVER_DROPPED_NOT_STUN,       /* not STUN at all, or an unusable header */
  PM_STUN_SERVER_DROPPED_NOT_REQUEST,    /* indication or response: never answered */
  PM_STUN_SERVER_DROPPED_FINGERPRINT,    /* FINGERPRINT mismatch: maybe not STUN, RFC 8489 §7.3 */
  PM_STUN_SERVER_DROPPED_CHANGE_REQUEST, /* RFC 3489 CHANGE-REQUEST we cannot honour */
  PM_STUN_SERVER_N_OUTCOMES,
} PmStunServerOutcome;

/* SOFTWARE attribute of our answers (no version: nothing to fingerprint). */
#define PM_STUN_SERVER_SOFTWARE "PiperMesh"

/* Datagrams read per wake-up before yielding to the main loop. */
#define PM_STUN_SERVER_BURST 64

PmStunServerOutcome pm_stun_server_handle (const uint8_t      *request,
                                           size_t              len,
                                           GInetSocketAddress *source,
                                           GInetSocketAddress *other_address,
                                           uint8_t            *out,
                                           size_t              cap,
                                           size_t             *out_len);
const char         *pm_stun_server_outcome_name (PmStunServerOutcome outcome);

#define PM_TYPE_STUN_SERVER (pm_stun_server_get_type ())
G_DECLARE_FINAL_TYPE (PmStunServer, pm_stun_server, PM, STUN_SERVER, GObject)

PmStunServer       *pm_stun_server_new (void);
gboolean            pm_stun_server_start (PmStunServer       *self,
                                          GInetSocketAddress *primary,
                                          GInetSocketAddress *secondary,
                                          GError            **error);
void                pm_stun_server_stop (PmStunServer *self);
gboolean            pm_stun_server_is_running (PmStunServer *self);
GInetSocketAddress *pm_stun_server_get_address (PmStunServer *self,
                                                unsigned      index);
uint16_t            pm_stun_server_get_port (PmStunServer *self);
uint64_t            pm_stun_server_get_received (PmStunServer *self);
uint64_t            pm_stun_server_get_count (PmStunServer       *self,
                                              PmStunServerOutcome outcome);
uint64_t            pm_stun_server_get_send_failures (PmStunServer *self);

G_END_DECLS
