/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmCoordServer: the coordination HTTP API under /v1/mesh (docs/API.md,
 * "Coordination HTTP API"): enrollment, the device list, candidates, push
 * endpoints, wake (long-poll and push), revocation, the relay route, /healthz
 * and /metrics. It owns one SoupServer; the store and the relay are given.
 *
 * Every refusal is a JSON {"error": {"code", "message"}} with its HTTP status,
 * and is counted by code for /metrics. Nothing is written to the store unless
 * the request was authenticated, well-formed and allowed.
 */

#include <libsoup/soup.h>
#include <stdint.h>

#include "pm-relay.h"
#include "pm-store.h"
#include "pm-stun-server.h"

G_BEGIN_DECLS

/* --- Defaults: every limit and timer of the API in one place -------------- */

/* Largest request body; a larger Content-Length is refused (413) before the
 * body is read into memory or parsed. */
#define PM_COORD_MAX_BODY_SIZE (16 * 1024)
/* A wake long-poll (GET /v1/mesh/wake) is answered 204 after this long. */
#define PM_COORD_WAKE_TIMEOUT_US (G_GINT64_CONSTANT (25) * G_USEC_PER_SEC)
/* At most one wake per target device per this interval (else 429). */
#define PM_COORD_WAKE_INTERVAL_US (G_GINT64_CONSTANT (5) * G_USEC_PER_SEC)
/* Long-polls one device may hold; a new one beyond this ends the oldest. */
#define PM_COORD_MAX_WAKE_POLLS 4
/* A device counts as online if seen this recently (or holding a long-poll). */
#define PM_COORD_ONLINE_WINDOW_S 120
/* last_seen is written at most this often per device (on success only). */
#define PM_COORD_TOUCH_INTERVAL_S 30
/* Timeout of one push delivery to a device's push endpoint. */
#define PM_COORD_PUSH_TIMEOUT_S 5
/* Candidate addresses per device, and the longest push endpoint URL. */
#define PM_COORD_MAX_ADDRESSES    16
#define PM_COORD_MAX_ENDPOINT_LEN 2048
/* Deepest JSON nesting accepted in a request body (an enrollment needs 1). */
#define PM_COORD_MAX_JSON_DEPTH 16
/* Pending TCP connections the kernel queues for the API and relay: a burst of
 * relay clients must not stall in SYN queues (GSocket's default is 10). */
#define PM_COORD_LISTEN_BACKLOG 4096

/**
 * PmCoordLimits:
 * Start from pm_coord_limits_default() (the constants above) and shrink them
 * in tests.
 */
typedef struct {
  size_t   max_body_size;
  int64_t  wake_timeout_us;
  int64_t  wake_interval_us;
  unsigned max_wake_polls;
  int64_t  online_window_s;
  int64_t  touch_interval_s;
  unsigned push_timeout_s;
} PmCoordLimits;

void pm_coord_limits_default (PmCoordLimits *limits);

#define PM_COORD_SERVER_ERROR (pm_coord_server_error_quark ())

typedef enum {
  PM_COORD_SERVER_ERROR_INVALID_ADDRESS, /* not "IP:PORT" / "[IPv6]:PORT" */
  PM_COORD_SERVER_ERROR_INSECURE,        /* plain HTTP on a non-loopback address */
  PM_COORD_SERVER_ERROR_LISTEN,          /* the address could not be bound */
} PmCoordServerError;

GQuark pm_coord_server_error_quark (void);

#define PM_TYPE_COORD_SERVER (pm_coord_server_get_type ())
G_DECLARE_FINAL_TYPE (PmCoordServer, pm_coord_server, PM, COORD_SERVER, GObject)

PmCoordServer *pm_coord_server_new (PmStore             *store,
                                    PmRelay             *relay,
                                    const PmCoordLimits *limits);
gboolean       pm_coord_server_listen (PmCoordServer   *self,
                                       const char      *address,
                                       GTlsCertificate *tls,
                                       GError         **error);
void           pm_coord_server_set_stun_server (PmCoordServer *self,
                                                PmStunServer  *stun);
uint16_t       pm_coord_server_get_port (PmCoordServer *self);
char          *pm_coord_server_get_base_uri (PmCoordServer *self);
unsigned       pm_coord_server_get_wake_polls (PmCoordServer *self,
                                               const char    *device_id);

/* Strict "IPv4:PORT" / "[IPv6]:PORT" with a literal address (no names, no
 * scope ids). Port 0 is accepted only if @allow_port_zero. */

G_END_DECLS
