/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmStreamMux: the reliable stream layer of one peer session
 * (docs/ARCHITECTURE.md "Streams (usrsctp)", docs/PROTOCOL.md §8).
 *
 * One SCTP association (usrsctp over AF_CONN) carries many PmStreams, each on
 * its own SCTP stream id: ordered, reliable, with per-stream flow control
 * (credit windows), opened and closed with the control messages of
 * pm-stream-control.h. The multiplexer knows nothing of paths or crypto: its
 * owner (the mesh) hands it every SCTP packet that arrives
 * (pm_stream_mux_input()) and sends every packet it emits through the output
 * callback, on whatever path, encrypted. Packets may be lost, duplicated or
 * reordered, and the path may change at any moment; SCTP recovers. Packets
 * are at most PM_STREAM_MTU bytes.
 *
 * Both ends call pm_stream_mux_start(); their simultaneous INITs meet as RFC
 * 4960 §5.2 allows (as WebRTC data channels do). One end must be created with
 * even_stream_ids TRUE and the other with FALSE (for instance by comparing
 * their static keys): each opens streams on ids of its own parity.
 *
 * Every stream layer object of a process runs on one thread and the main
 * context it was created on (usrsctp is one global stack without threads).
 * The output callback is never called from inside usrsctp: packets are
 * copied aside and handed over right after the call that made SCTP send
 * returns (pm_stream_mux_input(), a stream read or write, a timer tick). The
 * callback may feed packets back into pm_stream_mux_input() (of this or
 * another multiplexer) but should simply send.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"
#include "pm-stream.h"

G_BEGIN_DECLS

/* Limits and timers: core/pm-mesh-limits.h, "Streams (usrsctp)". */

/**
 * PmStreamMuxLimits:
 * Start from pm_stream_mux_limits_default() and change what a test needs.
 */
typedef struct {
  uint32_t window;              /* per-stream receive window, bytes, at first */
  uint32_t window_max;          /* … grown up to this for a fast reader */
  unsigned max_streams;         /* SCTP streams each way (ids 0 … max_streams - 1) */
  unsigned rto_initial_ms;      /* SCTP_RTOINFO */
  unsigned rto_min_ms;          /* … */
  unsigned rto_max_ms;          /* … */
  unsigned max_retransmissions; /* consecutive, before the association fails */
  unsigned init_max_attempts;   /* INIT transmissions before giving up */
  unsigned init_rto_max_ms;     /* largest INIT timeout */
  unsigned heartbeat_ms;        /* heartbeat interval; 0 disables heartbeats */
  unsigned send_buffer;         /* SO_SNDBUF */
  unsigned receive_buffer;      /* SO_RCVBUF */
  unsigned max_message;         /* largest DATA message per send */
} PmStreamMuxLimits;

void pm_stream_mux_limits_default (PmStreamMuxLimits *limits);

/**
 * PmStreamMuxState:
 * @PM_STREAM_MUX_STATE_NEW: created, pm_stream_mux_start() not called yet
 * @PM_STREAM_MUX_STATE_CONNECTING: SCTP INIT under way
 * @PM_STREAM_MUX_STATE_CONNECTED: the association is up
 * @PM_STREAM_MUX_STATE_CLOSED: closed by pm_stream_mux_close(), or failed (see
 *   pm_stream_mux_get_error()); it never comes back: make a new multiplexer
 */
typedef enum {
  PM_STREAM_MUX_STATE_NEW,
  PM_STREAM_MUX_STATE_CONNECTING,
  PM_STREAM_MUX_STATE_CONNECTED,
  PM_STREAM_MUX_STATE_CLOSED,
} PmStreamMuxState;

GType pm_stream_mux_state_get_type (void) G_GNUC_CONST;
#define PM_TYPE_STREAM_MUX_STATE (pm_stream_mux_state_get_type ())

/* Counters, for metrics and tests. */
typedef struct {
  uint64_t bytes_sent;        /* stream payload handed to SCTP */
  uint64_t bytes_received;    /* stream payload received */
  uint64_t packets_sent;      /* SCTP packets given to the output callback */
  uint64_t packets_received;  /* SCTP packets given to pm_stream_mux_input() */
  uint64_t packet_bytes_sent; /* … their bytes */
  uint64_t packet_bytes_received;
  uint64_t packets_dropped;      /* input refused: too short or too long, or too early */
  uint64_t retransmitted_chunks; /* DATA chunks sent again (T3 or fast retransmit) */
  uint64_t streams_opened;       /* opened by this end and accepted */
  uint64_t streams_accepted;     /* opened by the peer and accepted */
  uint64_t streams_refused;      /* opened by the peer and refused */
  unsigned streams_open;         /* stream ids in use now, both ends */
  unsigned srtt_ms;              /* SCTP's smoothed round-trip time */
  unsigned rto_ms;               /* its retransmission timeout */
  unsigned cwnd;                 /* its congestion window, bytes */
  unsigned peer_rwnd;            /* the peer's advertised receive window, bytes */
  unsigned unacked_chunks;       /* DATA chunks in flight */
  unsigned pending_chunks;       /* DATA chunks not sent yet */
} PmStreamMuxStats;

typedef void (*PmStreamMuxOutputFunc) (const uint8_t *packet,
                                       size_t         len,
                                       gpointer       user_data);

#define PM_TYPE_STREAM_MUX (pm_stream_mux_get_type ())
G_DECLARE_FINAL_TYPE (PmStreamMux, pm_stream_mux, PM, STREAM_MUX, GObject)

PmStreamMux *pm_stream_mux_new (gboolean                 even_stream_ids,
                                PmStreamMuxOutputFunc    output,
                                gpointer                 user_data,
                                GDestroyNotify           notify,
                                const PmStreamMuxLimits *limits);

void pm_stream_mux_start (PmStreamMux *self);
void pm_stream_mux_input (PmStreamMux   *self,
                          const uint8_t *packet,
                          size_t         len);
void pm_stream_mux_close (PmStreamMux *self);

void      pm_stream_mux_open_async (PmStreamMux        *self,
                                    const char         *service,
                                    GCancellable       *cancellable,
                                    GAsyncReadyCallback callback,
                                    gpointer            user_data);
PmStream *pm_stream_mux_open_finish (PmStreamMux  *self,
                                     GAsyncResult *result,
                                     GError      **error);

PmStreamMuxState pm_stream_mux_get_state (PmStreamMux *self);
const GError    *pm_stream_mux_get_error (PmStreamMux *self);
gboolean         pm_stream_mux_get_even_stream_ids (PmStreamMux *self);
void             pm_stream_mux_get_stats (PmStreamMux      *self,
                                          PmStreamMuxStats *stats);

G_END_DECLS
