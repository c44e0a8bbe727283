/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * One UDP socket shared by STUN, path probes and Noise traffic, as Tailscale's
 * magicsock does: every datagram is told apart by its first bytes (STUN's first
 * two bits are zero, PiperMesh frames have the high bit set). One object per
 * address family. See docs/PROTOCOL.md §2 and §6.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

#define PM_UDP_SOCKET_ERROR (pm_udp_socket_error_quark ())

typedef enum {
  PM_UDP_SOCKET_ERROR_BIND,        /* the socket could not be created or bound */
  PM_UDP_SOCKET_ERROR_CLOSED,      /* pm_udp_socket_close() was called */
  PM_UDP_SOCKET_ERROR_FAMILY,      /* an address of the other family than the socket's */
  PM_UDP_SOCKET_ERROR_WOULD_BLOCK, /* send buffer full (EAGAIN, ENOBUFS): datagram dropped */
  PM_UDP_SOCKET_ERROR_SEND,        /* any other send failure (too large, unreachable …) */
  PM_UDP_SOCKET_ERROR_TIMED_OUT,   /* no STUN answer after every retransmission */
  PM_UDP_SOCKET_ERROR_STUN,        /* the STUN server answered with an error or no address */
} PmUdpSocketError;

GQuark pm_udp_socket_error_quark (void);

/**
 * PmUdpSocketLimits:
 * Timers of one socket. Start from pm_udp_socket_limits_default() (the
 * constants of pm-mesh-limits.h) and shorten them in tests.
 */
typedef struct {
  unsigned read_burst;             /* datagrams read per wake-up */
  unsigned stun_rto_ms;            /* first STUN retransmission timeout, doubled each time */
  unsigned stun_max_transmissions; /* STUN requests sent per query, the first included */
} PmUdpSocketLimits;

void pm_udp_socket_limits_default (PmUdpSocketLimits *limits);

/* Counters, for metrics and tests. */
typedef struct {
  uint64_t rx_datagrams;       /* read, whatever became of them */
  uint64_t rx_frames;          /* PiperMesh frames handed to "frame-received" */
  uint64_t rx_stun;            /* STUN messages */
  uint64_t rx_stun_ignored;    /* … of which unrelated, forged, malformed or bad FINGERPRINT */
  uint64_t rx_dropped;         /* neither STUN nor PiperMesh */
  uint64_t rx_errors;          /* failed reads (other than EAGAIN) */
  uint64_t tx_datagrams;       /* sent */
  uint64_t tx_would_block;     /* dropped: send buffer full (EAGAIN, ENOBUFS) */
  uint64_t tx_errors;          /* other send failures */
  uint64_t stun_transmissions; /* STUN requests sent, retransmissions included */
} PmUdpSocketStats;

/**
 * PmNetcheck:
 * What a network check found (pm_udp_socket_netcheck_async()).
 */
typedef struct {
  GInetSocketAddress *mapped_primary;   /* as the primary STUN server saw us; NULL: no answer */
  GInetSocketAddress *mapped_secondary; /* as the secondary saw us; NULL: none or no answer */
  gboolean            udp_ok;           /* at least one server answered */
  /* Both answered with different addresses or ports: the NAT picks a mapping
   * per destination ("hard" NAT), so direct paths are unlikely. */
  gboolean mapping_varies_by_destination;
  double   rtt_ms; /* the smaller STUN round trip, or -1 without an answer */
  char    *error;  /* why a server did not answer (the primary's reason first), or NULL */
} PmNetcheck;

void pm_netcheck_free (PmNetcheck *netcheck);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmNetcheck, pm_netcheck_free)

typedef enum {
  PM_UDP_CANDIDATES_DEFAULT = 0,
  PM_UDP_CANDIDATES_LOOPBACK = 1 << 0, /* include loopback addresses (tests) */
} PmUdpCandidateFlags;

#define PM_TYPE_UDP_SOCKET (pm_udp_socket_get_type ())
G_DECLARE_FINAL_TYPE (PmUdpSocket, pm_udp_socket, PM, UDP_SOCKET, GObject)

PmUdpSocket        *pm_udp_socket_new (GInetSocketAddress      *address,
                                       const PmUdpSocketLimits *limits,
                                       GError                 **error);
PmUdpSocket        *pm_udp_socket_new_any (GSocketFamily            family,
                                           uint16_t                 port,
                                           const PmUdpSocketLimits *limits,
                                           GError                 **error);
GInetSocketAddress *pm_udp_socket_get_local_address (PmUdpSocket *self);
GSocketFamily       pm_udp_socket_get_family (PmUdpSocket *self);
uint16_t            pm_udp_socket_get_port (PmUdpSocket *self);
void                pm_udp_socket_get_stats (PmUdpSocket      *self,
                                             PmUdpSocketStats *stats);
void                pm_udp_socket_close (PmUdpSocket *self);

gboolean pm_udp_socket_send_to (PmUdpSocket        *self,
                                GInetSocketAddress *to,
                                const uint8_t      *data,
                                size_t              len,
                                GError            **error);

void                pm_udp_socket_stun_query_async (PmUdpSocket        *self,
                                                    GInetSocketAddress *server,
                                                    GCancellable       *cancellable,
                                                    GAsyncReadyCallback callback,
                                                    gpointer            user_data);
GInetSocketAddress *pm_udp_socket_stun_query_finish (PmUdpSocket  *self,
                                                     GAsyncResult *result,
                                                     double       *rtt_ms,
                                                     GError      **error);

void        pm_udp_socket_netcheck_async (PmUdpSocket        *self,
                                          GInetSocketAddress *primary,
                                          GInetSocketAddress *secondary,
                                          GCancellable       *cancellable,
                                          GAsyncReadyCallback callback,
                                          gpointer            user_data);
PmNetcheck *pm_udp_socket_netcheck_finish (PmUdpSocket  *self,
                                           GAsyncResult *result,
                                           GError      **error);

GPtrArray *pm_udp_socket_get_local_candidates (PmUdpSocket        *self,
                                               PmUdpCandidateFlags flags);

G_END_DECLS
