/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stream"

#include "pm-sctp-private.h"

#include <usrsctp.h>

#include "pm-mesh-limits.h"

/* See pm-sctp-private.h. Everything here runs on one thread. */
static struct {
  gboolean      running;  /* usrsctp_init_nothreads() done, usrsctp_finish() not */
  GHashTable   *conns;    /* id → PmSctpConn */
  uintptr_t     next_id;  /* AF_CONN addresses are ids, never pointers */
  unsigned      n_active; /* conns with an association */
  GMainContext *context;  /* where the timer runs */
  GSource      *timer;    /* runs while n_active > 0 or finishing */
  unsigned      interval_ms;
  int64_t       last_tick_us;
  int64_t       carry_us; /* time not yet handed to usrsctp_handle_timers */
  int64_t       last_activity_us;
  int64_t       finish_deadline_us; /* != 0: retrying usrsctp_finish() */
} sctp;

static void schedule_timer (unsigned interval_ms);

/* Called by usrsctp from inside usrsctp_sendv(), usrsctp_conninput() and
 * usrsctp_handle_timers(): hand the packet to its conn, which copies it. */
static int
on_conn_output (void   *addr,
                void   *buffer,
                size_t  length,
                uint8_t tos,
                uint8_t set_df)
{
  PmSctpConn *conn;

  if (sctp.conns == NULL)
    return 0;
  conn = g_hash_table_lookup (sctp.conns, addr);
  if (conn != NULL)
    conn->packet (conn, buffer, length);
  return 0;
}

static void
sctp_start (void)
{
  g_debug ("usrsctp: starting");
  /* No debug output (a NULL printer), no threads: timers come from us. */
  usrsctp_init_nothreads (0, on_conn_output, NULL);

  /* The outer Noise layer authenticates every packet with ChaCha20-Poly1305,
   * so SCTP's CRC32c adds nothing: with "offload" on, usrsctp neither writes
   * nor checks it (the field is zero on the wire). */
  usrsctp_enable_crc32c_offload ();
  /* Features the stream layer does not use: less code reachable by a peer. */
  usrsctp_sysctl_set_sctp_ecn_enable (0);
  usrsctp_sysctl_set_sctp_asconf_enable (0);
  usrsctp_sysctl_set_sctp_auto_asconf (0);
  usrsctp_sysctl_set_sctp_auth_enable (0);
  usrsctp_sysctl_set_sctp_reconfig_enable (0);
  usrsctp_sysctl_set_sctp_pr_enable (0);
  /* The default (512 chunks per association) would cap the socket buffers. */
  usrsctp_sysctl_set_sctp_max_chunks_on_queue (PM_STREAM_MAX_CHUNKS_ON_QUEUE);
  sctp.running = TRUE;
}

/* Shuts usrsctp down if nothing uses it. usrsctp refuses while a closed
 * socket still lingers; the caller then retries from the timer. */
static gboolean
sctp_try_finish (void)
{
  if (!sctp.running || g_hash_table_size (sctp.conns) > 0)
    return TRUE;
  if (usrsctp_finish () != 0)
    return FALSE;
  g_debug ("usrsctp: finished");
  sctp.running = FALSE;
  return TRUE;
}

static void
stop_timer (void)
{
  if (sctp.timer != NULL)
    {
      g_source_destroy (sctp.timer);
      g_clear_pointer (&sctp.timer, g_source_unref);
    }
  sctp.interval_ms = 0;
}

static gboolean
any_busy (int64_t now)
{
  GHashTableIter iter;
  gpointer       value;

  if (sctp.finish_deadline_us != 0)
    return TRUE;
  if (now - sctp.last_activity_us < (int64_t) PM_STREAM_IDLE_AFTER_MS * 1000)
    return TRUE;
  g_hash_table_iter_init (&iter, sctp.conns);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      PmSctpConn *conn = value;

      if (conn->active && conn->is_busy != NULL && conn->is_busy (conn))
        return TRUE;
    }
  return FALSE;
}

static gboolean
on_tick (gpointer user_data)
{
  int64_t now = g_get_monotonic_time ();
  int64_t elapsed;
  g_autoptr (GList) ids = NULL;
  unsigned want;

  elapsed = now - sctp.last_tick_us + sctp.carry_us;
  sctp.last_tick_us = now;
  if (elapsed < 0)
    elapsed = 0;
  sctp.carry_us = elapsed % 1000;
  if (elapsed >= 1000)
    usrsctp_handle_timers ((uint32_t) MIN (elapsed / 1000, G_MAXUINT32));

  /* Let every conn deliver what the timers queued. A callback may
   * unregister conns (its own or others), so look each one up again. */
  ids = g_hash_table_get_keys (sctp.conns);
  for (GList *l = ids; l != NULL && sctp.conns != NULL; l = l->next)
    {
      PmSctpConn *conn = g_hash_table_lookup (sctp.conns, l->data);

      if (conn != NULL && conn->tick != NULL)
        conn->tick (conn);
    }

  if (sctp.conns == NULL)
    {
      /* The last conn went during a callback, and usrsctp is shut down
       * (which destroyed this source). */
      return G_SOURCE_REMOVE;
    }
  if (sctp.finish_deadline_us != 0)
    {
      if (g_hash_table_size (sctp.conns) > 0)
        sctp.finish_deadline_us = 0;
      else if (sctp_try_finish ())
        {
          sctp.finish_deadline_us = 0;
          stop_timer ();
          g_clear_pointer (&sctp.conns, g_hash_table_unref);
          g_clear_pointer (&sctp.context, g_main_context_unref);
          return G_SOURCE_REMOVE;
        }
      else if (now >= sctp.finish_deadline_us)
        {
          g_debug ("usrsctp: still busy after %d ms; it stays initialised",
                   PM_STREAM_FINISH_GRACE_MS);
          sctp.finish_deadline_us = 0;
        }
    }

  if (sctp.n_active == 0 && sctp.finish_deadline_us == 0)
    {
      stop_timer (); /* this source, or one a callback put in its place */
      return G_SOURCE_REMOVE;
    }
  want = any_busy (now) ? PM_STREAM_TICK_MS : PM_STREAM_IDLE_TICK_MS;
  if (want != sctp.interval_ms)
    {
      schedule_timer (want);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static void
schedule_timer (unsigned interval_ms)
{
  GSource *source;

  if (sctp.timer != NULL && sctp.interval_ms == interval_ms)
    return;
  if (sctp.timer != NULL)
    {
      g_source_destroy (sctp.timer);
      g_clear_pointer (&sctp.timer, g_source_unref);
    }
  else
    {
      sctp.last_tick_us = g_get_monotonic_time ();
      sctp.carry_us = 0;
    }
  source = g_timeout_source_new (interval_ms);
  g_source_set_name (source, "pipermesh usrsctp timers");
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, on_tick, NULL, NULL);
  g_source_attach (source, sctp.context);
  sctp.timer = source;
  sctp.interval_ms = interval_ms;
}

/**
 * pm_sctp_conn_register:
 *
 * Gives @conn its AF_CONN address (registered with usrsctp) and starts
 * usrsctp if it is the first. Call from the thread that owns the main context
 * every stream layer object of this process runs on.
 */
void
pm_sctp_conn_register (PmSctpConn *conn)
{
  g_return_if_fail (conn != NULL && conn->packet != NULL);
  g_return_if_fail (conn->id == 0);

  if (sctp.conns == NULL)
    sctp.conns = g_hash_table_new (g_direct_hash, g_direct_equal);
  if (sctp.context == NULL)
    sctp.context = g_main_context_ref_thread_default ();
  if (!sctp.running)
    sctp_start ();
  sctp.finish_deadline_us = 0;

  conn->id = ++sctp.next_id;
  conn->active = FALSE;
  g_hash_table_insert (sctp.conns, pm_sctp_conn_get_address (conn), conn);
  usrsctp_register_address (pm_sctp_conn_get_address (conn));
}

/**
 * pm_sctp_conn_unregister:
 *
 * Forgets @conn (whose socket must be closed already). After the last conn,
 * usrsctp is shut down, at once or from the timer within
 * PM_STREAM_FINISH_GRACE_MS.
 */
void
pm_sctp_conn_unregister (PmSctpConn *conn)
{
  g_return_if_fail (conn != NULL);

  if (conn->id == 0)
    return;
  pm_sctp_conn_set_active (conn, FALSE);
  usrsctp_deregister_address (pm_sctp_conn_get_address (conn));
  g_hash_table_remove (sctp.conns, pm_sctp_conn_get_address (conn));
  conn->id = 0;

  if (g_hash_table_size (sctp.conns) > 0)
    return;
  if (sctp_try_finish ())
    {
      stop_timer ();
      g_clear_pointer (&sctp.conns, g_hash_table_unref);
      g_clear_pointer (&sctp.context, g_main_context_unref);
      return;
    }
  sctp.finish_deadline_us = g_get_monotonic_time () + (int64_t) PM_STREAM_FINISH_GRACE_MS * 1000;
  schedule_timer (PM_STREAM_TICK_MS);
}

void *
pm_sctp_conn_get_address (PmSctpConn *conn)
{
  return (void *) conn->id;
}

/**
 * pm_sctp_conn_set_active:
 *
 * Says whether @conn has an association, which needs usrsctp's timers.
 */
void
pm_sctp_conn_set_active (PmSctpConn *conn,
                         gboolean    active)
{
  g_return_if_fail (conn != NULL && conn->id != 0);

  active = !!active;
  if (conn->active == active)
    return;
  conn->active = active;
  if (active)
    {
      sctp.n_active++;
      pm_sctp_conn_kick (conn);
    }
  else
    {
      g_assert (sctp.n_active > 0);
      sctp.n_active--;
      /* The timer stops itself at its next tick. */
    }
}

/**
 * pm_sctp_conn_kick:
 *
 * Packets moved on @conn: usrsctp's timers need their fine interval again.
 */
void
pm_sctp_conn_kick (PmSctpConn *conn)
{
  sctp.last_activity_us = g_get_monotonic_time ();
  if (conn->active && sctp.interval_ms != PM_STREAM_TICK_MS)
    schedule_timer (PM_STREAM_TICK_MS);
}

/* For tests: whether usrsctp is set up (it is shut down after the last conn). */
gboolean
pm_sctp_is_running (void)
{
  return sctp.running;
}

/* For tests: whether the timer runs (never while no association exists). */
gboolean
pm_sctp_is_ticking (void)
{
  return sctp.timer != NULL;
}

/* For tests: the timer's interval now (0 when it does not run). */
unsigned
pm_sctp_get_tick_interval (void)
{
  return sctp.timer != NULL ? sctp.interval_ms : 0;
}

void
pm_sctp_get_stats (PmSctpStats *stats)
{
  struct sctpstat s;

  g_return_if_fail (stats != NULL);

  *stats = (PmSctpStats){ 0 };
  if (!sctp.running)
    return;
  usrsctp_get_stat (&s);
  stats->packets_sent = s.sctps_outpackets;
  stats->packets_received = s.sctps_inpackets;
  stats->data_chunks_sent = s.sctps_senddata;
  stats->retransmitted_chunks = s.sctps_sendretransdata;
  stats->fast_retransmits = s.sctps_sendfastretrans;
  stats->t3_timeouts = s.sctps_timodata;
  stats->duplicate_chunks_received = s.sctps_recvdupdata;
  stats->associations_aborted = s.sctps_aborted;
}
