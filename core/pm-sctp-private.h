/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The process-wide usrsctp stack behind every PmStreamMux.
 *
 * usrsctp is one global stack. It runs without threads
 * (usrsctp_init_nothreads): its timers are driven from one GLib timeout on
 * the main context of the first user, which runs only while an association
 * exists, and every usrsctp call happens on that context's thread. usrsctp is
 * set up when the first PmSctpConn registers and shut down (usrsctp_finish)
 * after the last one goes.
 *
 * Each PmSctpConn is one AF_CONN address: usrsctp calls conn->packet (from
 * inside usrsctp_sendv, usrsctp_conninput or usrsctp_handle_timers) for every
 * packet it sends to that address. That callback must only copy the packet
 * aside: it must not call usrsctp or anything that might. After each timer
 * tick, conn->tick runs outside usrsctp for every conn, so the owner can
 * deliver what was queued.
 */

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct _PmSctpConn PmSctpConn;

struct _PmSctpConn {
  /* Set by the owner before registering. */
  void (*packet) (PmSctpConn *conn,
                  const void *data,
                  size_t      len);            /* inside usrsctp: copy only */
  void (*tick) (PmSctpConn *conn);        /* after usrsctp's timers ran */
  gboolean (*is_busy) (PmSctpConn *conn); /* needs fine-grained timers now */

  /* Private. */
  uintptr_t id;
  gboolean  active;
};

void     pm_sctp_conn_register (PmSctpConn *conn);
void     pm_sctp_conn_unregister (PmSctpConn *conn);
void    *pm_sctp_conn_get_address (PmSctpConn *conn);
void     pm_sctp_conn_set_active (PmSctpConn *conn,
                                  gboolean    active);
void     pm_sctp_conn_kick (PmSctpConn *conn);
gboolean pm_sctp_is_running (void);
gboolean pm_sctp_is_ticking (void);
unsigned pm_sctp_get_tick_interval (void);

/* usrsctp's process-wide counters (RFC 3873 MIB and more). */
typedef struct {
  uint64_t packets_sent;
  uint64_t packets_received;
  uint64_t data_chunks_sent;
  uint64_t retransmitted_chunks; /* T3 and fast retransmissions */
  uint64_t fast_retransmits;
  uint64_t t3_timeouts;
  uint64_t duplicate_chunks_received;
  uint64_t associations_aborted;
} PmSctpStats;

void pm_sctp_get_stats (PmSctpStats *stats);

G_END_DECLS
