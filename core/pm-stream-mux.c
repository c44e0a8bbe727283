/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stream"

#include "pm-stream-mux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <usrsctp.h>

#include "pm-sctp-private.h"
#include "pm-stream-control.h"
#include "pm-stream-private.h"

/*
 * How it works (docs/ARCHITECTURE.md, "Streams (usrsctp)"):
 *
 * - One non-blocking one-to-one usrsctp socket per multiplexer, bound and
 *   connected to its own AF_CONN address (an id from pm-sctp.c) on port
 *   PM_STREAM_SCTP_PORT; both ends connect at once.
 * - usrsctp calls back from inside its own calls: packets it sends
 *   (conn_packet) are copied into self->out, and the socket upcall only sets
 *   self->upcalled. Everything else happens in mux_process(), which runs after
 *   each call into usrsctp returns: it reads every message the socket holds
 *   into per-stream buffers, sends queued control messages, hands the packets
 *   to the output callback, then runs the application's callbacks (new
 *   streams, finished opens). It never runs twice at once: a nested call
 *   just asks the running one to go round again.
 * - Each stream id has a slot with the state of its close handshake
 *   (docs/PROTOCOL.md §8): the id is free again only once each end has sent
 *   and received a final message (REFUSE, RESET or CLOSE), so no message of
 *   an old stream can reach a new one.
 */

/* usrsctp 0.9.5 fills an AF_CONN path's MTU with chunks and puts the
 * 12-byte common header on top (measured: 1200 gave 1212-byte packets). */
#define SCTP_PATH_MTU ((uint32_t) (PM_STREAM_MTU - sizeof (struct sctp_common_header)))

enum {
  SLOT_USED = 1 << 0,
  SLOT_LOCAL = 1 << 1,    /* opened by this end */
  SLOT_ACCEPTED = 1 << 2, /* ACCEPT sent or received */
  SLOT_FIN_SENT = 1 << 3,
  SLOT_FIN_RECEIVED = 1 << 4,
  SLOT_FINAL_SENT = 1 << 5, /* REFUSE, RESET or CLOSE queued */
  SLOT_FINAL_RECEIVED = 1 << 6,
  SLOT_MUST_RESET = 1 << 7, /* orphan to reset: data came after its close, or it never closed */
};

typedef struct {
  PmStream *stream; /* not a reference; NULL once the application dropped it */
  unsigned  flags;
  unsigned  queued; /* control messages for this id still in self->control */
} Slot;

typedef struct {
  uint16_t sid;
  uint16_t len;
  uint8_t  data[PM_STREAM_CONTROL_MAX_LEN];
} QueuedControl;

typedef struct {
  GTask    *task;
  PmStream *stream; /* a reference, on success */
  GError   *error;
} Completion;

struct _PmStreamMux {
  GObject parent_instance;

  PmSctpConn            conn;
  gboolean              even;
  PmStreamMuxOutputFunc output;
  gpointer              user_data;
  GDestroyNotify        notify;
  PmStreamMuxLimits     limits;

  struct socket   *sock;
  PmStreamMuxState state;
  GError          *error;

  Slot    *slots; /* limits.max_streams of them */
  unsigned n_out; /* stream ids this end may send on, once negotiated */
  unsigned next_sid;
  unsigned streams_in_use;

  GQueue   control; /* QueuedControl, in sending order */
  gboolean sndbuf_blocked;
  gboolean upcalled;

  GByteArray *out; /* packets from usrsctp: (uint32 length, bytes)… */
  GByteArray *out_spare;
  GPtrArray  *early; /* GBytes that arrived before pm_stream_mux_start() */

  GPtrArray *announce;    /* new incoming PmStreams (references) */
  GQueue     completions; /* Completion */

  gboolean processing;
  gboolean process_again;

  uint8_t    *rx_buf;
  size_t      rx_buf_len;
  GByteArray *partial; /* a control message or notification read in parts */
  gboolean    partial_notification;
  unsigned    partial_sid;

  uint32_t         highest_tsn;
  gboolean         tsn_seen;
  PmStreamMuxStats stats;
};

G_DEFINE_FINAL_TYPE (PmStreamMux, pm_stream_mux, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_STREAM_REQUESTED,
  N_SIGNALS
};

static unsigned signals[N_SIGNALS];

static void mux_process (PmStreamMux *self);
static void slot_sync (PmStreamMux *self,
                       unsigned     sid);

GType
pm_stream_mux_state_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_STREAM_MUX_STATE_NEW, "PM_STREAM_MUX_STATE_NEW", "new" },
        { PM_STREAM_MUX_STATE_CONNECTING, "PM_STREAM_MUX_STATE_CONNECTING", "connecting" },
        { PM_STREAM_MUX_STATE_CONNECTED, "PM_STREAM_MUX_STATE_CONNECTED", "connected" },
        { PM_STREAM_MUX_STATE_CLOSED, "PM_STREAM_MUX_STATE_CLOSED", "closed" },
        { 0, NULL, NULL },
      };
      GType id = g_enum_register_static (g_intern_static_string ("PmStreamMuxState"), values);

      g_once_init_leave (&type, id);
    }
  return type;
}

/**
 * pm_stream_mux_limits_default:
 *
 * Fills @limits with the constants of pm-mesh-limits.h.
 */
void
pm_stream_mux_limits_default (PmStreamMuxLimits *limits)
{
  g_return_if_fail (limits != NULL);

  *limits = (PmStreamMuxLimits){
    .window = PM_STREAM_WINDOW,
    .window_max = PM_STREAM_WINDOW_MAX,
    .max_streams = PM_STREAM_MAX_STREAMS,
    .rto_initial_ms = PM_STREAM_RTO_INITIAL_MS,
    .rto_min_ms = PM_STREAM_RTO_MIN_MS,
    .rto_max_ms = PM_STREAM_RTO_MAX_MS,
    .max_retransmissions = PM_STREAM_MAX_RETRANSMISSIONS,
    .init_max_attempts = PM_STREAM_INIT_MAX_ATTEMPTS,
    .init_rto_max_ms = PM_STREAM_INIT_RTO_MAX_MS,
    .heartbeat_ms = PM_STREAM_HEARTBEAT_MS,
    .send_buffer = PM_STREAM_SEND_BUFFER,
    .receive_buffer = PM_STREAM_RECEIVE_BUFFER,
    .max_message = PM_STREAM_MAX_MESSAGE,
  };
}

static void
set_state (PmStreamMux     *self,
           PmStreamMuxState state)
{
  if (self->state == state)
    return;
  g_debug ("stream mux %p: state %d -> %d", self, self->state, state);
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static struct sockaddr_conn
make_sconn (PmStreamMux *self)
{
  struct sockaddr_conn sconn;

  memset (&sconn, 0, sizeof sconn);
  sconn.sconn_family = AF_CONN;
  sconn.sconn_port = htons (PM_STREAM_SCTP_PORT);
  sconn.sconn_addr = pm_sctp_conn_get_address (&self->conn);
  return sconn;
}

static unsigned
local_parity (PmStreamMux *self)
{
  return self->even ? 0 : 1;
}

/* --- Tasks and failures ------------------------------------------------------- */

static void
completion_free (Completion *c)
{
  g_clear_object (&c->task);
  g_clear_object (&c->stream);
  g_clear_error (&c->error);
  g_free (c);
}

/* Ends @stream's open: with the stream on success (@error NULL), or with
 * @error. Tasks return from mux_process(), once every state is consistent. */
static void
complete_open (PmStreamMux *self,
               PmStream    *stream,
               GError      *error)
{
  Completion *c;

  if (stream->open_task == NULL)
    {
      g_clear_error (&error);
      return;
    }
  if (stream->cancel_source != NULL)
    {
      g_source_destroy (stream->cancel_source);
      g_clear_pointer (&stream->cancel_source, g_source_unref);
    }
  c = g_new0 (Completion, 1);
  c->task = g_steal_pointer (&stream->open_task);
  c->error = error;
  if (error == NULL)
    c->stream = g_object_ref (stream);
  g_queue_push_tail (&self->completions, c);
}

static void
close_socket (PmStreamMux *self)
{
  if (self->sock == NULL)
    return;
  /* SO_LINGER 0 (set at creation): an ABORT, and the association is gone
   * at once. The ABORT lands in self->out, for mux_process() to deliver. */
  usrsctp_set_upcall (self->sock, NULL, NULL);
  usrsctp_close (self->sock);
  self->sock = NULL;
  pm_sctp_conn_unregister (&self->conn);
}

/* The end of the association: every stream fails with @error (taken). */
static void
mux_fail (PmStreamMux *self,
          GError      *error)
{
  if (self->state == PM_STREAM_MUX_STATE_CLOSED)
    {
      g_error_free (error);
      return;
    }
  g_debug ("stream mux %p: closed: %s", self, error->message);
  self->error = error;
  close_socket (self);

  for (unsigned sid = 0; sid < self->limits.max_streams; sid++)
    {
      Slot *slot = &self->slots[sid];

      if (slot->stream != NULL)
        {
          PmStream *stream = slot->stream;

          pm_stream_fail (stream, g_error_copy (error));
          complete_open (self, stream, g_error_copy (error));
          pm_stream_detach (stream);
        }
      *slot = (Slot){ 0 };
    }
  self->streams_in_use = 0;
  g_queue_clear_full (&self->control, g_free);
  g_ptr_array_set_size (self->early, 0);
  self->sndbuf_blocked = FALSE;
  set_state (self, PM_STREAM_MUX_STATE_CLOSED);
}

static void
mux_fail_literal (PmStreamMux *self,
                  int          code,
                  const char  *message)
{
  mux_fail (self, g_error_new_literal (PM_STREAM_ERROR, code, message));
}

static void protocol_error (PmStreamMux *self,
                            const char  *format,
                            ...) G_GNUC_PRINTF (2, 3);

/* The peer broke the stream protocol: the whole association goes (as a QUIC
 * connection does on a stream state error); no end can trust the other's
 * view of any stream after that. */
static void
protocol_error (PmStreamMux *self,
                const char  *format,
                ...)
{
  g_autofree char *what = NULL;
  va_list          args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_message ("stream mux %p: the peer broke the stream protocol: %s", self, what);
  mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_PROTOCOL,
                               "The peer broke the stream protocol: %s", what));
}

/* --- Sending -------------------------------------------------------------------- */

/* Returns 0 or an errno. */
static int
sctp_send (PmStreamMux *self,
           unsigned     sid,
           uint32_t     ppid,
           const void  *data,
           size_t       len)
{
  struct sctp_sndinfo info;
  ssize_t             n;

  memset (&info, 0, sizeof info);
  info.snd_sid = (uint16_t) sid;
  info.snd_ppid = htonl (ppid);
  n = usrsctp_sendv (self->sock, data, len, NULL, 0, &info, sizeof info, SCTP_SENDV_SNDINFO, 0);
  if (n < 0)
    return errno != 0 ? errno : EIO;
  g_assert ((size_t) n == len);
  return 0;
}

static void
send_failed (PmStreamMux *self,
             int          err)
{
  mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                               "Could not send on the association: %s", g_strerror (err)));
}

static void
maybe_release (PmStreamMux *self,
               unsigned     sid)
{
  Slot *slot = &self->slots[sid];

  if ((slot->flags & (SLOT_FINAL_SENT | SLOT_FINAL_RECEIVED)) !=
        (SLOT_FINAL_SENT | SLOT_FINAL_RECEIVED) ||
      slot->queued > 0)
    return;
  g_debug ("stream mux %p: stream id %u is free again", self, sid);
  if (slot->stream != NULL)
    pm_stream_detach (slot->stream);
  *slot = (Slot){ 0 };
  g_assert (self->streams_in_use > 0);
  self->streams_in_use--;
}

/* Sends what it can of the control queue, in order. */
static void
flush_control (PmStreamMux *self)
{
  while (!g_queue_is_empty (&self->control) && self->state == PM_STREAM_MUX_STATE_CONNECTED &&
         !self->sndbuf_blocked)
    {
      QueuedControl *qc = g_queue_peek_head (&self->control);
      unsigned       sid = qc->sid;
      int            err = sctp_send (self, sid, PM_STREAM_PPID_CONTROL, qc->data, qc->len);

      if (err == EWOULDBLOCK || err == EAGAIN)
        {
          self->sndbuf_blocked = TRUE;
          return;
        }
      if (err != 0)
        {
          send_failed (self, err);
          return;
        }
      g_free (g_queue_pop_head (&self->control));
      g_assert (self->slots[sid].queued > 0);
      self->slots[sid].queued--;
      maybe_release (self, sid);
    }
}

static void
queue_control (PmStreamMux           *self,
               unsigned               sid,
               const PmStreamControl *msg)
{
  QueuedControl *qc;

  if (self->state == PM_STREAM_MUX_STATE_CLOSED)
    return; /* failed while sending something before */
  qc = g_new (QueuedControl, 1);
  qc->sid = (uint16_t) sid;
  qc->len = (uint16_t) pm_stream_control_write (msg, qc->data, sizeof qc->data);
  g_assert (qc->len > 0);
  g_debug ("stream mux %p: %s on stream id %u", self, pm_stream_control_type_name (msg->type),
           sid);
  g_queue_push_tail (&self->control, qc);
  self->slots[sid].queued++;
  flush_control (self);
}

static void
queue_simple (PmStreamMux        *self,
              unsigned            sid,
              PmStreamControlType type)
{
  PmStreamControl msg = { .type = type };

  queue_control (self, sid, &msg);
}

static void
queue_reason (PmStreamMux        *self,
              unsigned            sid,
              PmStreamControlType type,
              const char         *reason)
{
  PmStreamControl msg = { .type = type };

  msg.text = reason;
  msg.text_len = pm_stream_reason_clamp (reason);
  if (!pm_stream_reason_is_valid (msg.text, msg.text_len))
    msg.text_len = 0;
  queue_control (self, sid, &msg);
}

/* Receive window auto-tuning: an application that reads a whole window in
 * less than two round trips is held back by the window, not by itself, so
 * the window doubles (up to limits.window_max). A slow reader never grows
 * it. The peer learns it from the next CREDIT's limit. */
static void
grow_window (PmStreamMux *self,
             PmStream    *s)
{
  struct sctp_status status;
  socklen_t          len = sizeof status;
  int64_t            now, rtt_us;

  if (s->rx_window >= self->limits.window_max)
    return;
  if (s->rx_consumed - s->rx_epoch_consumed < s->rx_window)
    return;
  now = g_get_monotonic_time ();
  memset (&status, 0, sizeof status);
  rtt_us = 1000;
  if (self->sock != NULL &&
      usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_STATUS, &status, &len) == 0)
    rtt_us = MAX (rtt_us, (int64_t) status.sstat_primary.spinfo_srtt * 1000);
  if (now - s->rx_epoch_us < 2 * rtt_us)
    {
      s->rx_window = (uint32_t) MIN ((uint64_t) s->rx_window * 2, self->limits.window_max);
      g_debug ("stream mux %p: stream id %u window grows to %u bytes", self, s->sid,
               s->rx_window);
    }
  s->rx_epoch_us = now;
  s->rx_epoch_consumed = s->rx_consumed;
}

/* Sends whatever the state of stream id @sid now calls for: the decision on
 * an incoming stream, FIN, credit, the final message, a reset. Then frees
 * the id if both final messages are through. A slot whose PmStream was
 * disposed (an orphan) goes on with its close handshake: its output was
 * closed, so only the peer's FIN and the CLOSEs are missing. */
static void
slot_sync (PmStreamMux *self,
           unsigned     sid)
{
  Slot     *slot = &self->slots[sid];
  PmStream *s = slot->stream;

  if (!(slot->flags & SLOT_USED) || self->state == PM_STREAM_MUX_STATE_CLOSED)
    return;

  if (!(slot->flags & SLOT_FINAL_SENT))
    {
      if (s != NULL && s->reset_requested)
        {
          queue_reason (self, sid, PM_STREAM_CONTROL_RESET, s->local_reason);
          slot->flags |= SLOT_FINAL_SENT;
        }
      else if (slot->flags & SLOT_MUST_RESET)
        {
          queue_reason (self, sid, PM_STREAM_CONTROL_RESET, "The stream was closed");
          slot->flags |= SLOT_FINAL_SENT;
        }
      else if (slot->flags & SLOT_FINAL_RECEIVED)
        {
          /* The peer refused or reset it: our last word. */
          queue_simple (self, sid, PM_STREAM_CONTROL_CLOSE);
          slot->flags |= SLOT_FINAL_SENT;
        }
      else if (!(slot->flags & (SLOT_LOCAL | SLOT_ACCEPTED)) && s != NULL)
        {
          if (s->decision == PM_STREAM_DECISION_NONE && s->input_closed && s->output_closed)
            {
              s->decision = PM_STREAM_DECISION_REFUSE;
              g_free (s->local_reason);
              s->local_reason = g_strdup ("The service closed the stream without accepting it");
            }
          if (s->decision == PM_STREAM_DECISION_ACCEPT)
            {
              PmStreamControl msg = { .type = PM_STREAM_CONTROL_ACCEPT, .window = s->rx_window };

              s->rx_announced = s->rx_window;
              queue_control (self, sid, &msg);
              slot->flags |= SLOT_ACCEPTED;
              self->stats.streams_accepted++;
            }
          else if (s->decision == PM_STREAM_DECISION_REFUSE)
            {
              queue_reason (self, sid, PM_STREAM_CONTROL_REFUSE, s->local_reason);
              slot->flags |= SLOT_FINAL_SENT;
              self->stats.streams_refused++;
            }
        }

      if ((slot->flags & SLOT_ACCEPTED) && !(slot->flags & SLOT_FINAL_SENT) &&
          self->state != PM_STREAM_MUX_STATE_CLOSED)
        {
          gboolean output_closed = s == NULL || s->output_closed;

          if (s != NULL && s->input_closed && s->output_closed && s->dropped_unread)
            {
              /* Closed over unread data: as TCP, a reset. */
              queue_reason (self, sid, PM_STREAM_CONTROL_RESET,
                            "The peer closed the stream without reading everything");
              slot->flags |= SLOT_FINAL_SENT;
            }
          else
            {
              if (output_closed && !(slot->flags & SLOT_FIN_SENT))
                {
                  queue_simple (self, sid, PM_STREAM_CONTROL_FIN);
                  slot->flags |= SLOT_FIN_SENT;
                }
              if (s != NULL && !(slot->flags & SLOT_FIN_RECEIVED))
                {
                  uint64_t limit;

                  grow_window (self, s);
                  limit = s->rx_consumed + s->rx_window;

                  if (limit - s->rx_announced >= s->rx_window / PM_STREAM_CREDIT_DIVISOR)
                    {
                      PmStreamControl msg = { .type = PM_STREAM_CONTROL_CREDIT, .limit = limit };

                      s->rx_announced = limit;
                      queue_control (self, sid, &msg);
                    }
                }
              if ((slot->flags & (SLOT_FIN_SENT | SLOT_FIN_RECEIVED)) ==
                  (SLOT_FIN_SENT | SLOT_FIN_RECEIVED))
                {
                  queue_simple (self, sid, PM_STREAM_CONTROL_CLOSE);
                  slot->flags |= SLOT_FINAL_SENT;
                }
            }
        }
    }
  if (self->state != PM_STREAM_MUX_STATE_CLOSED)
    maybe_release (self, sid);
}

/* --- Receiving ---------------------------------------------------------------- */

static void
announce_stream (PmStreamMux           *self,
                 unsigned               sid,
                 const PmStreamControl *msg)
{
  Slot     *slot = &self->slots[sid];
  PmStream *stream;

  stream = pm_stream_new_internal (self, sid, msg->text, msg->text_len, TRUE, self->limits.window);
  stream->tx_limit = msg->window;
  slot->stream = stream;
  slot->flags = SLOT_USED;
  slot->queued = 0;
  self->streams_in_use++;
  g_debug ("stream mux %p: the peer opens stream id %u for '%s'", self, sid, stream->service);
  g_ptr_array_add (self->announce, stream); /* the reference */
}

static void
handle_final (PmStreamMux           *self,
              unsigned               sid,
              const PmStreamControl *msg)
{
  Slot            *slot = &self->slots[sid];
  PmStream        *s = slot->stream;
  g_autofree char *reason = msg->text != NULL ? g_strndup (msg->text, msg->text_len) : NULL;

  switch (msg->type)
    {
    case PM_STREAM_CONTROL_REFUSE:
      if (!(slot->flags & SLOT_LOCAL) || (slot->flags & SLOT_ACCEPTED))
        {
          protocol_error (self, "REFUSE for stream id %u, which it did not have to decide on", sid);
          return;
        }
      if (s != NULL && !(slot->flags & SLOT_FINAL_SENT))
        {
          GError *error =
            g_error_new_literal (PM_STREAM_ERROR, PM_STREAM_ERROR_REFUSED,
                                 reason != NULL ? reason : "The peer refused the stream");

          pm_stream_fail (s, g_error_copy (error));
          complete_open (self, s, error);
        }
      break;

    case PM_STREAM_CONTROL_RESET:
      if (s != NULL)
        {
          GError *error =
            g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_RESET, "The peer reset the stream%s%s",
                         reason != NULL ? ": " : "", reason != NULL ? reason : "");

          pm_stream_fail (s, g_error_copy (error));
          complete_open (self, s, error);
        }
      break;

    case PM_STREAM_CONTROL_CLOSE:
      if (!(slot->flags & SLOT_FINAL_SENT) &&
          (slot->flags & (SLOT_FIN_SENT | SLOT_FIN_RECEIVED)) !=
            (SLOT_FIN_SENT | SLOT_FIN_RECEIVED))
        {
          protocol_error (self, "CLOSE for stream id %u before both FINs", sid);
          return;
        }
      break;

    default:
      g_assert_not_reached ();
    }
  slot->flags |= SLOT_FINAL_RECEIVED;
  slot_sync (self, sid);
}

static void
handle_control (PmStreamMux   *self,
                unsigned       sid,
                const uint8_t *data,
                size_t         len)
{
  g_autoptr (GError) error = NULL;
  PmStreamControl msg;
  Slot           *slot = &self->slots[sid];
  PmStream       *s = slot->stream;

  if (!pm_stream_control_parse (data, len, &msg, &error))
    {
      protocol_error (self, "stream id %u: %s", sid, error->message);
      return;
    }

  if (!(slot->flags & SLOT_USED))
    {
      if (msg.type != PM_STREAM_CONTROL_OPEN)
        protocol_error (self, "%s on stream id %u, which is not in use",
                        pm_stream_control_type_name (msg.type), sid);
      else if (sid % 2 == local_parity (self))
        protocol_error (self, "OPEN on stream id %u, which belongs to this end", sid);
      else
        announce_stream (self, sid, &msg);
      return;
    }
  if (slot->flags & SLOT_FINAL_RECEIVED)
    {
      protocol_error (self, "%s on stream id %u after its final message",
                      pm_stream_control_type_name (msg.type), sid);
      return;
    }
  if (pm_stream_control_is_final (msg.type))
    {
      handle_final (self, sid, &msg);
      return;
    }
  if (slot->flags & SLOT_FINAL_SENT)
    return; /* we refused or reset it; the peer will catch up */

  switch (msg.type)
    {
    case PM_STREAM_CONTROL_OPEN:
      protocol_error (self, "OPEN on stream id %u, which is in use", sid);
      return;

    case PM_STREAM_CONTROL_ACCEPT:
      if (!(slot->flags & SLOT_LOCAL) || (slot->flags & SLOT_ACCEPTED))
        {
          protocol_error (self, "ACCEPT for stream id %u, which it did not have to decide on",
                          sid);
          return;
        }
      slot->flags |= SLOT_ACCEPTED;
      self->stats.streams_opened++;
      if (s != NULL)
        {
          s->tx_limit = msg.window;
          s->phase = PM_STREAM_PHASE_OPEN;
          complete_open (self, s, NULL);
        }
      break;

    case PM_STREAM_CONTROL_CREDIT:
      if (!(slot->flags & SLOT_ACCEPTED))
        {
          protocol_error (self, "CREDIT for stream id %u before ACCEPT", sid);
          return;
        }
      if (s != NULL)
        {
          if (msg.limit < s->tx_limit)
            {
              protocol_error (self, "CREDIT lowers the limit of stream id %u", sid);
              return;
            }
          s->tx_limit = msg.limit;
        }
      break;

    case PM_STREAM_CONTROL_FIN:
      if (!(slot->flags & SLOT_ACCEPTED) || (slot->flags & SLOT_FIN_RECEIVED))
        {
          protocol_error (self, "FIN for stream id %u %s", sid,
                          (slot->flags & SLOT_ACCEPTED) ? "twice" : "before ACCEPT");
          return;
        }
      slot->flags |= SLOT_FIN_RECEIVED;
      if (s != NULL)
        s->rx_eof = TRUE;
      break;

    default:
      g_assert_not_reached ();
    }
  slot_sync (self, sid);
}

static void
handle_data (PmStreamMux   *self,
             unsigned       sid,
             const uint8_t *data,
             size_t         len)
{
  Slot     *slot = &self->slots[sid];
  PmStream *s = slot->stream;

  self->stats.bytes_received += len;
  if (!(slot->flags & SLOT_USED))
    {
      protocol_error (self, "data on stream id %u, which is not in use", sid);
      return;
    }
  if (slot->flags & SLOT_FINAL_RECEIVED)
    {
      protocol_error (self, "data on stream id %u after its final message", sid);
      return;
    }
  if (slot->flags & SLOT_FINAL_SENT)
    return; /* reset or refused here: dropped */
  if (!(slot->flags & SLOT_ACCEPTED) || (slot->flags & SLOT_FIN_RECEIVED))
    {
      protocol_error (self, "data on stream id %u %s", sid,
                      (slot->flags & SLOT_ACCEPTED) ? "after FIN" : "before ACCEPT");
      return;
    }
  if (s == NULL)
    {
      /* Its PmStream was closed and dropped, and the peer still sends. */
      slot->flags |= SLOT_MUST_RESET;
      slot_sync (self, sid);
      return;
    }
  if (s->rx_total + len > s->rx_announced)
    {
      protocol_error (self, "stream id %u: %zu bytes past the credit of %" G_GUINT64_FORMAT, sid,
                      (size_t) (s->rx_total + len - s->rx_announced), s->rx_announced);
      return;
    }
  s->rx_total += len;
  if (s->input_closed && s->output_closed)
    {
      /* Fully closed here, and the peer still sends: as TCP, a reset. */
      s->rx_consumed += len;
      s->dropped_unread = TRUE;
      slot_sync (self, sid);
    }
  else if (s->input_closed)
    {
      s->rx_consumed += len; /* nobody will read it: dropped, but credited */
      slot_sync (self, sid);
    }
  else
    pm_stream_push_data (s, data, len);
}

static void
apply_path_params (PmStreamMux *self,
                   sctp_assoc_t assoc)
{
  struct sctp_paddrparams pp;
  struct sockaddr_conn    sconn = make_sconn (self);

  memset (&pp, 0, sizeof pp);
  memcpy (&pp.spp_address, &sconn, sizeof sconn);
  pp.spp_assoc_id = assoc;
  pp.spp_flags = SPP_PMTUD_DISABLE;
  pp.spp_pathmtu = SCTP_PATH_MTU;
  if (usrsctp_setsockopt (self->sock, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, sizeof pp) < 0)
    g_warning ("stream mux %p: cannot fix the path MTU: %s", self, g_strerror (errno));
}

static void
handle_assoc_change (PmStreamMux                    *self,
                     const struct sctp_assoc_change *sac)
{
  switch (sac->sac_state)
    {
    case SCTP_COMM_UP:
      if (self->state != PM_STREAM_MUX_STATE_CONNECTING)
        return;
      apply_path_params (self, sac->sac_assoc_id);
      self->n_out = MIN (self->limits.max_streams, sac->sac_outbound_streams);
      g_debug ("stream mux %p: association up, %u streams out, %u in", self,
               sac->sac_outbound_streams, sac->sac_inbound_streams);
      /* Opens queued on ids the peer does not take fail. */
      for (unsigned sid = self->n_out; sid < self->limits.max_streams; sid++)
        {
          Slot *slot = &self->slots[sid];

          if (slot->stream != NULL && slot->stream->open_task != NULL)
            {
              GError *error = g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_TOO_MANY_STREAMS,
                                           "The peer takes only %u streams",
                                           (unsigned) sac->sac_outbound_streams);

              pm_stream_fail (slot->stream, g_error_copy (error));
              complete_open (self, slot->stream, error);
              pm_stream_detach (slot->stream);
            }
          if (slot->flags & SLOT_USED)
            {
              /* Never sent: drop its queued OPEN. */
              for (GList *l = self->control.head; l != NULL;)
                {
                  GList         *next = l->next;
                  QueuedControl *qc = l->data;

                  if (qc->sid == sid)
                    {
                      g_free (qc);
                      g_queue_delete_link (&self->control, l);
                    }
                  l = next;
                }
              *slot = (Slot){ 0 };
              self->streams_in_use--;
            }
        }
      set_state (self, PM_STREAM_MUX_STATE_CONNECTED);
      break;

    case SCTP_COMM_LOST:
      mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST,
                        "The association was lost: the peer aborted it or stopped answering");
      break;

    case SCTP_RESTART:
      mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST,
                        "The peer restarted its stream layer");
      break;

    case SCTP_SHUTDOWN_COMP:
      mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST, "The association was shut down");
      break;

    case SCTP_CANT_STR_ASSOC:
      mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST,
                        "The peer's stream layer never answered");
      break;

    default:
      break;
    }
}

static void
handle_notification (PmStreamMux   *self,
                     const uint8_t *data,
                     size_t         len)
{
  union sctp_notification n;

  memset (&n, 0, sizeof n);
  memcpy (&n, data, MIN (len, sizeof n));
  if (len < sizeof n.sn_header)
    return;
  switch (n.sn_header.sn_type)
    {
    case SCTP_ASSOC_CHANGE:
      if (len >= sizeof n.sn_assoc_change)
        handle_assoc_change (self, &n.sn_assoc_change);
      break;
    case SCTP_SHUTDOWN_EVENT:
      mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST,
                        "The peer shut the association down");
      break;
    default:
      break;
    }
}

/* One message, or one part of one (@eor: its last), on stream id @sid. */
static void
handle_message (PmStreamMux   *self,
                unsigned       sid,
                uint32_t       ppid,
                const uint8_t *data,
                size_t         len,
                gboolean       eor)
{
  if (sid >= self->limits.max_streams)
    {
      protocol_error (self, "stream id %u is out of range", sid);
      return;
    }
  if (ppid == PM_STREAM_PPID_DATA)
    {
      if (len > 0)
        handle_data (self, sid, data, len);
      return;
    }
  if (ppid != PM_STREAM_PPID_CONTROL)
    {
      protocol_error (self, "unknown payload protocol 0x%08x on stream id %u", ppid, sid);
      return;
    }
  if (self->partial->len > 0 && (self->partial_notification || self->partial_sid != sid))
    g_byte_array_set_size (self->partial, 0);
  if (eor && self->partial->len == 0)
    {
      handle_control (self, sid, data, len);
      return;
    }
  if (self->partial->len + len > PM_STREAM_CONTROL_MAX_LEN)
    {
      protocol_error (self, "control message on stream id %u is too long", sid);
      return;
    }
  self->partial_notification = FALSE;
  self->partial_sid = sid;
  g_byte_array_append (self->partial, data, (unsigned) len);
  if (eor)
    {
      g_autoptr (GByteArray) whole = self->partial;

      self->partial = g_byte_array_new ();
      handle_control (self, sid, whole->data, whole->len);
    }
}

/* Reads every message the socket holds: the association's receive window
 * is shared by all streams, so it is always drained into the streams' own
 * buffers (bounded by their credit). */
static void
read_socket (PmStreamMux *self)
{
  while (self->sock != NULL)
    {
      struct sctp_rcvinfo  rcv;
      struct sockaddr_conn from;
      socklen_t            from_len = sizeof from;
      socklen_t            info_len = sizeof rcv;
      unsigned             info_type = SCTP_RECVV_NOINFO;
      int                  flags = 0;
      ssize_t              n;
      gboolean             eor;

      n = usrsctp_recvv (self->sock, self->rx_buf, self->rx_buf_len, (struct sockaddr *) &from,
                         &from_len, &rcv, &info_len, &info_type, &flags);
      if (n < 0)
        {
          int err = errno;

          if (err == EWOULDBLOCK || err == EAGAIN)
            return;
          if (err == ENOTCONN && self->state == PM_STREAM_MUX_STATE_CONNECTING)
            return;
          mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                                       "Could not receive from the association: %s",
                                       g_strerror (err)));
          return;
        }
      eor = (flags & MSG_EOR) != 0;

      if (flags & MSG_NOTIFICATION)
        {
          if (self->partial->len > 0 && !self->partial_notification)
            g_byte_array_set_size (self->partial, 0);
          if (!eor || self->partial->len > 0)
            {
              self->partial_notification = TRUE;
              g_byte_array_append (self->partial, self->rx_buf, (unsigned) n);
              if (!eor)
                continue;
              handle_notification (self, self->partial->data, self->partial->len);
              g_byte_array_set_size (self->partial, 0);
            }
          else
            handle_notification (self, self->rx_buf, (size_t) n);
          continue;
        }
      if (n == 0)
        {
          mux_fail_literal (self, PM_STREAM_ERROR_CONNECTION_LOST,
                            "The peer closed the association");
          return;
        }
      if (info_type != SCTP_RECVV_RCVINFO)
        {
          g_warning ("stream mux %p: a message without its stream id; dropped", self);
          continue;
        }
      handle_message (self, rcv.rcv_sid, ntohl (rcv.rcv_ppid), self->rx_buf, (size_t) n, eor);
    }
}

/* --- Output packets ----------------------------------------------------------- */

/* Counts DATA chunks whose TSN is not new: retransmissions (usrsctp keeps
 * no per-association count). Chunk walk of RFC 4960 §3.2. */
static void
count_packet (PmStreamMux   *self,
              const uint8_t *pkt,
              size_t         len)
{
  size_t off = 12;

  self->stats.packets_sent++;
  self->stats.packet_bytes_sent += len;
  while (off + 4 <= len)
    {
      uint8_t  type = pkt[off];
      unsigned clen = ((unsigned) pkt[off + 2] << 8) | pkt[off + 3];

      if (clen < 4)
        break;
      if (type == SCTP_DATA && clen >= 16 && off + 8 <= len)
        {
          uint32_t tsn = ((uint32_t) pkt[off + 4] << 24) | ((uint32_t) pkt[off + 5] << 16) |
                         ((uint32_t) pkt[off + 6] << 8) | pkt[off + 7];

          if (!self->tsn_seen || (int32_t) (tsn - self->highest_tsn) > 0)
            {
              self->highest_tsn = tsn;
              self->tsn_seen = TRUE;
            }
          else
            self->stats.retransmitted_chunks++;
        }
      off += (clen + 3u) & ~3u;
    }
}

static void
flush_output (PmStreamMux *self)
{
  gboolean sent = FALSE;

  while (self->out->len > 0)
    {
      GByteArray *batch = self->out;

      /* The callback may feed input back in, which may make usrsctp send:
       * that goes into a fresh array, never into the one being read. */
      self->out = self->out_spare != NULL ? self->out_spare : g_byte_array_new ();
      self->out_spare = NULL;
      for (size_t off = 0; off < batch->len;)
        {
          uint32_t       len;
          const uint8_t *pkt;

          memcpy (&len, batch->data + off, sizeof len);
          pkt = batch->data + off + sizeof len;
          off += sizeof len + len;
          count_packet (self, pkt, len);
          if (self->output != NULL)
            self->output (pkt, len, self->user_data);
          sent = TRUE;
        }
      g_byte_array_set_size (batch, 0);
      if (self->out_spare == NULL)
        self->out_spare = batch;
      else
        g_byte_array_unref (batch);
    }
  if (sent && self->conn.id != 0)
    pm_sctp_conn_kick (&self->conn);
}

/* From inside usrsctp: copy only. */
static void
conn_packet (PmSctpConn *conn,
             const void *data,
             size_t      len)
{
  PmStreamMux *self = (PmStreamMux *) ((char *) conn - G_STRUCT_OFFSET (PmStreamMux, conn));
  uint32_t     len32 = (uint32_t) len;

  g_byte_array_append (self->out, (const uint8_t *) &len32, sizeof len32);
  g_byte_array_append (self->out, data, (unsigned) len);
}

static void
conn_tick (PmSctpConn *conn)
{
  mux_process ((PmStreamMux *) ((char *) conn - G_STRUCT_OFFSET (PmStreamMux, conn)));
}

static gboolean
conn_is_busy (PmSctpConn *conn)
{
  PmStreamMux       *self = (PmStreamMux *) ((char *) conn - G_STRUCT_OFFSET (PmStreamMux, conn));
  struct sctp_status status;
  socklen_t          len = sizeof status;

  if (self->sock == NULL)
    return FALSE;
  if (!g_queue_is_empty (&self->control) || self->sndbuf_blocked)
    return TRUE;
  memset (&status, 0, sizeof status);
  if (usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_STATUS, &status, &len) < 0)
    return FALSE;
  return status.sstat_unackdata > 0 || status.sstat_penddata > 0 ||
         status.sstat_state != SCTP_ESTABLISHED;
}

/* From inside usrsctp: only note it. */
static void
on_upcall (struct socket *sock,
           void          *arg,
           int            flags)
{
  ((PmStreamMux *) arg)->upcalled = TRUE;
}

/* --- The processing loop ------------------------------------------------------ */

static void
announce_streams (PmStreamMux *self)
{
  while (self->announce->len > 0)
    {
      g_autoptr (PmStream) stream = g_ptr_array_steal_index (self->announce, 0);

      if (stream->mux == self && stream->phase == PM_STREAM_PHASE_PENDING &&
          stream->error == NULL)
        g_signal_emit (self, signals[SIGNAL_STREAM_REQUESTED], 0, stream, stream->service);
      /* Undecided, and nobody kept a reference (ours is the only one): no
       * service took it. A handler that keeps one decides later. */
      if (stream->mux == self && stream->phase == PM_STREAM_PHASE_PENDING &&
          stream->decision == PM_STREAM_DECISION_NONE &&
          g_atomic_int_get (&G_OBJECT (stream)->ref_count) == 1)
        {
          g_autofree char *reason =
            g_strdup_printf ("No service '%s' on this device", stream->service);

          pm_stream_refuse (stream, reason);
        }
    }
}

static void
complete_tasks (PmStreamMux *self)
{
  Completion *c;

  while ((c = g_queue_pop_head (&self->completions)) != NULL)
    {
      if (c->error != NULL)
        g_task_return_error (c->task, g_steal_pointer (&c->error));
      else
        g_task_return_pointer (c->task, g_steal_pointer (&c->stream), g_object_unref);
      completion_free (c);
    }
}

static void
mux_process (PmStreamMux *self)
{
  if (self->processing)
    {
      self->process_again = TRUE;
      return;
    }
  g_object_ref (self);
  self->processing = TRUE;
  do
    {
      self->process_again = FALSE;
      if (self->sock != NULL && self->upcalled)
        {
          self->upcalled = FALSE;
          read_socket (self);
        }
      if (self->sock != NULL && self->sndbuf_blocked &&
          (usrsctp_get_events (self->sock) & SCTP_EVENT_WRITE))
        self->sndbuf_blocked = FALSE; /* writers retry (their sources poll) */
      if (self->sock != NULL)
        flush_control (self);
      flush_output (self);
      announce_streams (self);
      complete_tasks (self);
    }
  while (self->process_again || (self->upcalled && self->sock != NULL) || self->out->len > 0);
  self->processing = FALSE;
  g_object_unref (self);
}

/* --- For PmStream -------------------------------------------------------------- */

gssize
pm_stream_mux_write_stream (PmStreamMux *self,
                            PmStream    *stream,
                            const void  *buffer,
                            size_t       count,
                            GError     **error)
{
  Slot    *slot = &self->slots[stream->sid];
  uint64_t credit;
  size_t   n;
  int      err;

  g_assert (slot->stream == stream);
  if (slot->flags & (SLOT_FIN_SENT | SLOT_FINAL_SENT))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "Stream is closed");
      return -1;
    }
  credit = stream->tx_limit - stream->tx_total;
  if (self->state != PM_STREAM_MUX_STATE_CONNECTED || self->sndbuf_blocked || slot->queued > 0 ||
      credit == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "Would block");
      return -1;
    }
  n = MIN (count, MIN (credit, self->limits.max_message));
  err = sctp_send (self, stream->sid, PM_STREAM_PPID_DATA, buffer, n);
  if (err == EWOULDBLOCK || err == EAGAIN)
    {
      self->sndbuf_blocked = TRUE;
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "Would block");
      mux_process (self);
      return -1;
    }
  if (err != 0)
    {
      send_failed (self, err);
      g_propagate_error (error, g_error_copy (self->error));
      mux_process (self);
      return -1;
    }
  stream->tx_total += n;
  self->stats.bytes_sent += n;
  mux_process (self);
  return (gssize) n;
}

gboolean
pm_stream_mux_stream_can_write (PmStreamMux *self,
                                PmStream    *stream)
{
  Slot *slot = &self->slots[stream->sid];

  return self->state == PM_STREAM_MUX_STATE_CONNECTED && !self->sndbuf_blocked &&
         slot->queued == 0 && stream->tx_total < stream->tx_limit;
}

/* The application changed something on @stream (read, closed, decided,
 * reset): send what that calls for. */
void
pm_stream_mux_sync_stream (PmStreamMux *self,
                           PmStream    *stream)
{
  g_assert (self->slots[stream->sid].stream == stream);
  slot_sync (self, stream->sid);
  mux_process (self);
}

/* @stream is being disposed (closed first, as a GIOStream is): its id
 * lives on, an orphan, until its close handshake ends. */
void
pm_stream_mux_forget_stream (PmStreamMux *self,
                             PmStream    *stream)
{
  unsigned sid = stream->sid;
  Slot    *slot = &self->slots[sid];

  g_assert (slot->stream == stream);
  slot_sync (self, sid);
  if (!(slot->flags & SLOT_USED) || slot->stream != stream)
    {
      mux_process (self);
      return;
    }
  slot->stream = NULL;
  if (!(slot->flags & SLOT_FINAL_SENT) &&
      (!(slot->flags & SLOT_ACCEPTED) || !stream->output_closed || !stream->input_closed))
    slot->flags |= SLOT_MUST_RESET; /* a close that failed (an operation was pending) */
  slot_sync (self, sid);
  mux_process (self);
}

/* For the fuzz target (tests/fuzz/fuzz-stream-mux.c): takes @data as if
 * SCTP had delivered it, whole, on stream id @sid with @ppid. */
void
pm_stream_mux_inject_message (PmStreamMux   *self,
                              unsigned       sid,
                              uint32_t       ppid,
                              const uint8_t *data,
                              size_t         len)
{
  g_return_if_fail (PM_IS_STREAM_MUX (self));

  if (self->state != PM_STREAM_MUX_STATE_CONNECTED)
    return;
  handle_message (self, sid, ppid, data, len, TRUE);
  mux_process (self);
}

/* --- GObject -------------------------------------------------------------------- */

static void
pm_stream_mux_dispose (GObject *object)
{
  PmStreamMux *self = PM_STREAM_MUX (object);

  /* Without pm_stream_mux_close(), the owner may be going away too: abort
   * without calling its output callback again. */
  if (self->state != PM_STREAM_MUX_STATE_CLOSED)
    {
      self->output = NULL;
      pm_stream_mux_close (self);
    }
  G_OBJECT_CLASS (pm_stream_mux_parent_class)->dispose (object);
}

static void
pm_stream_mux_finalize (GObject *object)
{
  PmStreamMux *self = PM_STREAM_MUX (object);

  g_assert (self->sock == NULL);
  g_assert (g_queue_is_empty (&self->completions));
  if (self->notify != NULL)
    self->notify (self->user_data);
  g_clear_error (&self->error);
  g_free (self->slots);
  g_queue_clear_full (&self->control, g_free);
  g_byte_array_unref (self->out);
  g_clear_pointer (&self->out_spare, g_byte_array_unref);
  g_ptr_array_unref (self->early);
  g_ptr_array_unref (self->announce);
  g_free (self->rx_buf);
  g_byte_array_unref (self->partial);

  G_OBJECT_CLASS (pm_stream_mux_parent_class)->finalize (object);
}

static void
pm_stream_mux_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  PmStreamMux *self = PM_STREAM_MUX (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_stream_mux_class_init (PmStreamMuxClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_stream_mux_dispose;
  object_class->finalize = pm_stream_mux_finalize;
  object_class->get_property = pm_stream_mux_get_property;

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, PM_TYPE_STREAM_MUX_STATE, PM_STREAM_MUX_STATE_NEW,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * PmStreamMux::stream-requested:
   * @stream: the new stream
   * @service: the service it asks for
   *
   * The peer opens a stream. A handler calls pm_stream_accept() or
   * pm_stream_refuse(), and keeps a reference to an accepted stream. To
   * decide later (after connecting to a local service, say), it keeps a
   * reference and calls one of them when it knows. If no handler decided
   * and none kept a reference, the stream is refused ("No service 'x' on
   * this device"); a kept stream dropped undecided is refused too.
   */
  signals[SIGNAL_STREAM_REQUESTED] =
    g_signal_new ("stream-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                  NULL, NULL, G_TYPE_NONE, 2, PM_TYPE_STREAM, G_TYPE_STRING);
}

static void
pm_stream_mux_init (PmStreamMux *self)
{
  g_queue_init (&self->control);
  g_queue_init (&self->completions);
  self->out = g_byte_array_new ();
  self->early = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  self->announce = g_ptr_array_new ();
  self->partial = g_byte_array_new ();
}

static gboolean
set_option (PmStreamMux *self,
            int          level,
            int          name,
            const void  *value,
            socklen_t    len,
            const char  *what)
{
  if (usrsctp_setsockopt (self->sock, level, name, value, len) == 0)
    return TRUE;
  mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                               "Could not set up the SCTP socket (%s): %s", what,
                               g_strerror (errno)));
  return FALSE;
}

static void
setup_socket (PmStreamMux *self)
{
  const PmStreamMuxLimits *l = &self->limits;
  const int                on = 1;
  const int                sndbuf = (int) l->send_buffer;
  const int                rcvbuf = (int) l->receive_buffer;
  const struct linger      linger = { .l_onoff = 1, .l_linger = 0 };
  struct sctp_initmsg      init;
  struct sctp_rtoinfo      rto;
  struct sctp_assocparams  assoc;
  struct sctp_paddrparams  path;
  struct sockaddr_conn     sconn = make_sconn (self);
  static const uint16_t    events[] = { SCTP_ASSOC_CHANGE, SCTP_SHUTDOWN_EVENT };

  self->sock = usrsctp_socket (AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
  if (self->sock == NULL)
    {
      mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                                   "Could not create an SCTP socket: %s", g_strerror (errno)));
      return;
    }
  usrsctp_set_non_blocking (self->sock, 1);
  usrsctp_set_upcall (self->sock, on_upcall, self);

  memset (&init, 0, sizeof init);
  init.sinit_num_ostreams = (uint16_t) l->max_streams;
  init.sinit_max_instreams = (uint16_t) l->max_streams;
  init.sinit_max_attempts = (uint16_t) l->init_max_attempts;
  init.sinit_max_init_timeo = (uint16_t) MIN (l->init_rto_max_ms, G_MAXUINT16);

  memset (&rto, 0, sizeof rto);
  rto.srto_assoc_id = SCTP_FUTURE_ASSOC;
  rto.srto_initial = l->rto_initial_ms;
  rto.srto_min = l->rto_min_ms;
  rto.srto_max = l->rto_max_ms;

  memset (&assoc, 0, sizeof assoc);
  assoc.sasoc_assoc_id = SCTP_FUTURE_ASSOC;
  assoc.sasoc_asocmaxrxt = (uint16_t) l->max_retransmissions;

  /* One fixed MTU for every path: never discovered, never lowered. */
  memset (&path, 0, sizeof path);
  path.spp_assoc_id = SCTP_FUTURE_ASSOC;
  path.spp_flags = SPP_PMTUD_DISABLE | (l->heartbeat_ms > 0 ? SPP_HB_ENABLE : SPP_HB_DISABLE);
  path.spp_pathmtu = SCTP_PATH_MTU;
  path.spp_hbinterval = l->heartbeat_ms;

  if (!set_option (self, SOL_SOCKET, SO_LINGER, &linger, sizeof linger, "SO_LINGER") ||
      !set_option (self, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf, "SO_SNDBUF") ||
      !set_option (self, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf, "SO_RCVBUF") ||
      !set_option (self, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on, "SCTP_NODELAY") ||
      !set_option (self, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on, "SCTP_RECVRCVINFO") ||
      !set_option (self, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init, "SCTP_INITMSG") ||
      !set_option (self, IPPROTO_SCTP, SCTP_RTOINFO, &rto, sizeof rto, "SCTP_RTOINFO") ||
      !set_option (self, IPPROTO_SCTP, SCTP_ASSOCINFO, &assoc, sizeof assoc, "SCTP_ASSOCINFO") ||
      !set_option (self, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &path, sizeof path,
                   "SCTP_PEER_ADDR_PARAMS"))
    return;
  for (unsigned i = 0; i < G_N_ELEMENTS (events); i++)
    {
      struct sctp_event ev;

      memset (&ev, 0, sizeof ev);
      ev.se_assoc_id = SCTP_FUTURE_ASSOC;
      ev.se_type = events[i];
      ev.se_on = 1;
      if (!set_option (self, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof ev, "SCTP_EVENT"))
        return;
    }
  if (usrsctp_bind (self->sock, (struct sockaddr *) &sconn, sizeof sconn) < 0)
    mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                                 "Could not bind the SCTP socket: %s", g_strerror (errno)));
}

/**
 * pm_stream_mux_new:
 * @even_stream_ids: whether this end opens streams on even ids (the peer
 *   must be created with the opposite)
 * @output: called with every SCTP packet to send to the peer (at most
 *   PM_STREAM_MTU bytes), outside usrsctp
 * @notify: (nullable): frees @user_data when the multiplexer is finalized
 * @limits: (nullable): NULL for pm_stream_mux_limits_default()
 *
 * Creates the stream layer of one peer session. Nothing is sent before
 * pm_stream_mux_start(); packets that arrive before it are held (up to
 * PM_STREAM_EARLY_PACKETS).
 *
 * Returns: (transfer full): the multiplexer
 */
PmStreamMux *
pm_stream_mux_new (gboolean                 even_stream_ids,
                   PmStreamMuxOutputFunc    output,
                   gpointer                 user_data,
                   GDestroyNotify           notify,
                   const PmStreamMuxLimits *limits)
{
  PmStreamMux *self;

  g_return_val_if_fail (output != NULL, NULL);

  self = g_object_new (PM_TYPE_STREAM_MUX, NULL);
  self->even = !!even_stream_ids;
  self->output = output;
  self->user_data = user_data;
  self->notify = notify;
  if (limits != NULL)
    self->limits = *limits;
  else
    pm_stream_mux_limits_default (&self->limits);
  self->limits.max_streams = CLAMP (self->limits.max_streams, 2, 65535);
  self->limits.window = CLAMP (self->limits.window, PM_STREAM_MIN_WINDOW, PM_STREAM_MAX_WINDOW);
  self->limits.window_max = CLAMP (self->limits.window_max, self->limits.window,
                                   PM_STREAM_MAX_WINDOW);
  self->limits.send_buffer = MAX (self->limits.send_buffer, 64 * 1024);
  self->limits.receive_buffer = MAX (self->limits.receive_buffer, 64 * 1024);
  self->limits.max_message = CLAMP (self->limits.max_message, 1, self->limits.send_buffer / 2);
  self->limits.rto_min_ms = MAX (self->limits.rto_min_ms, 1);
  self->limits.rto_max_ms = MAX (self->limits.rto_max_ms, self->limits.rto_min_ms);
  self->limits.rto_initial_ms =
    CLAMP (self->limits.rto_initial_ms, self->limits.rto_min_ms, self->limits.rto_max_ms);

  self->slots = g_new0 (Slot, self->limits.max_streams);
  self->n_out = self->limits.max_streams;
  self->next_sid = local_parity (self);
  self->rx_buf_len = MAX (self->limits.max_message, 64 * 1024);
  self->rx_buf = g_malloc (self->rx_buf_len);

  self->conn.packet = conn_packet;
  self->conn.tick = conn_tick;
  self->conn.is_busy = conn_is_busy;
  pm_sctp_conn_register (&self->conn);
  setup_socket (self);
  return self;
}

/**
 * pm_stream_mux_start:
 *
 * Starts the association (SCTP INIT). Both ends call it, in any order.
 */
void
pm_stream_mux_start (PmStreamMux *self)
{
  struct sockaddr_conn sconn;

  g_return_if_fail (PM_IS_STREAM_MUX (self));

  if (self->state != PM_STREAM_MUX_STATE_NEW)
    return;
  set_state (self, PM_STREAM_MUX_STATE_CONNECTING);
  pm_sctp_conn_set_active (&self->conn, TRUE);
  sconn = make_sconn (self);
  if (usrsctp_connect (self->sock, (struct sockaddr *) &sconn, sizeof sconn) < 0 &&
      errno != EINPROGRESS)
    mux_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST,
                                 "Could not start the association: %s", g_strerror (errno)));
  for (unsigned i = 0; i < self->early->len && self->sock != NULL; i++)
    {
      GBytes        *packet = g_ptr_array_index (self->early, i);
      size_t         len;
      const uint8_t *data = g_bytes_get_data (packet, &len);

      usrsctp_conninput (pm_sctp_conn_get_address (&self->conn), data, len, 0);
    }
  g_ptr_array_set_size (self->early, 0);
  mux_process (self);
}

/**
 * pm_stream_mux_input:
 * @packet: one SCTP packet from the peer, as its output callback gave it
 *
 * Hands a received packet to SCTP. Malformed, forged-looking, duplicate or
 * stale packets are SCTP's to drop; nothing here trusts them.
 */
void
pm_stream_mux_input (PmStreamMux   *self,
                     const uint8_t *packet,
                     size_t         len)
{
  g_return_if_fail (PM_IS_STREAM_MUX (self));
  g_return_if_fail (packet != NULL || len == 0);

  self->stats.packets_received++;
  self->stats.packet_bytes_received += len;
  if (len < sizeof (struct sctp_common_header) || len > PM_MAX_PLAINTEXT ||
      self->state == PM_STREAM_MUX_STATE_CLOSED)
    {
      self->stats.packets_dropped++;
      return;
    }
  if (self->state == PM_STREAM_MUX_STATE_NEW)
    {
      if (self->early->len < PM_STREAM_EARLY_PACKETS)
        g_ptr_array_add (self->early, g_bytes_new (packet, len));
      else
        self->stats.packets_dropped++;
      return;
    }
  usrsctp_conninput (pm_sctp_conn_get_address (&self->conn), packet, len, 0);
  pm_sctp_conn_kick (&self->conn);
  mux_process (self);
}

/**
 * pm_stream_mux_close:
 *
 * Aborts every stream (their operations fail with PM_STREAM_ERROR_CLOSED,
 * pending opens too), then the association (an SCTP ABORT goes out through
 * the output callback). Call it before dropping the multiplexer: disposing
 * it without closing aborts silently.
 */
void
pm_stream_mux_close (PmStreamMux *self)
{
  g_return_if_fail (PM_IS_STREAM_MUX (self));

  if (self->state == PM_STREAM_MUX_STATE_CLOSED)
    return;
  mux_fail_literal (self, PM_STREAM_ERROR_CLOSED, "The stream multiplexer was closed");
  mux_process (self);
}

static gboolean
on_open_cancelled (GCancellable *cancellable,
                   gpointer      user_data)
{
  PmStream    *stream = user_data;
  PmStreamMux *self = stream->mux;

  g_clear_pointer (&stream->cancel_source, g_source_unref); /* destroyed by our return */
  if (stream->open_task == NULL || self == NULL)
    return G_SOURCE_REMOVE;
  stream->reset_requested = TRUE;
  g_free (stream->local_reason);
  stream->local_reason = g_strdup ("The opener cancelled");
  pm_stream_fail (stream, g_error_new_literal (PM_STREAM_ERROR, PM_STREAM_ERROR_ABORTED,
                                               "The open was cancelled"));
  complete_open (self, stream,
                 g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "Operation was cancelled"));
  slot_sync (self, stream->sid);
  mux_process (self);
  return G_SOURCE_REMOVE;
}

static int
alloc_sid (PmStreamMux *self)
{
  unsigned parity = local_parity (self);
  unsigned count = self->n_out > parity ? (self->n_out - parity + 1) / 2 : 0;

  for (unsigned i = 0; i < count; i++)
    {
      unsigned sid = self->next_sid;

      self->next_sid += 2;
      if (self->next_sid >= self->n_out)
        self->next_sid = parity;
      if (!(self->slots[sid].flags & SLOT_USED))
        return (int) sid;
    }
  return -1;
}

/**
 * pm_stream_mux_open_async:
 * @service: the service to reach on the peer (1-64 bytes of printable ASCII)
 *
 * Opens a stream: waits for the association if it is not up yet, then for
 * the peer's answer. pm_stream_mux_open_finish() fails with
 * PM_STREAM_ERROR_REFUSED and the peer's reason if the peer refuses, with
 * PM_STREAM_ERROR_TOO_MANY_STREAMS if every id of this end is in use, and
 * with the multiplexer's error if it closes meanwhile.
 */
void
pm_stream_mux_open_async (PmStreamMux        *self,
                          const char         *service,
                          GCancellable       *cancellable,
                          GAsyncReadyCallback callback,
                          gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  PmStream       *stream;
  PmStreamControl msg = { .type = PM_STREAM_CONTROL_OPEN };
  int             sid;

  g_return_if_fail (PM_IS_STREAM_MUX (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_stream_mux_open_async);

  if (service == NULL || !pm_stream_service_is_valid (service, strlen (service)))
    {
      g_task_return_new_error (task, PM_STREAM_ERROR, PM_STREAM_ERROR_INVALID_SERVICE,
                               "Invalid service name (1 to %d printable ASCII characters)",
                               PM_STREAM_MAX_SERVICE_LEN);
      return;
    }
  if (self->state == PM_STREAM_MUX_STATE_CLOSED)
    {
      g_task_return_error (task, g_error_copy (self->error));
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    return;
  sid = alloc_sid (self);
  if (sid < 0)
    {
      g_task_return_new_error (task, PM_STREAM_ERROR, PM_STREAM_ERROR_TOO_MANY_STREAMS,
                               "All %u stream ids of this end are in use",
                               (self->n_out - local_parity (self) + 1) / 2);
      return;
    }

  stream = pm_stream_new_internal (self, (unsigned) sid, service, strlen (service), FALSE,
                                   self->limits.window);
  stream->rx_announced = stream->rx_window;
  g_task_set_task_data (task, stream, g_object_unref); /* the task owns it until the answer */
  stream->open_task = g_object_ref (task);
  if (cancellable != NULL)
    {
      stream->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (stream->cancel_source, G_SOURCE_FUNC (on_open_cancelled), stream,
                             NULL);
      g_source_attach (stream->cancel_source, g_main_context_get_thread_default ());
    }
  self->slots[sid].stream = stream;
  self->slots[sid].flags = SLOT_USED | SLOT_LOCAL;
  self->slots[sid].queued = 0;
  self->streams_in_use++;

  msg.window = stream->rx_window;
  msg.text = service;
  msg.text_len = strlen (service);
  queue_control (self, (unsigned) sid, &msg); /* sent once the association is up */
  mux_process (self);
}

/**
 * pm_stream_mux_open_finish:
 *
 * Returns: (transfer full): the open stream, or %NULL with @error set
 */
PmStream *
pm_stream_mux_open_finish (PmStreamMux  *self,
                           GAsyncResult *result,
                           GError      **error)
{
  g_return_val_if_fail (PM_IS_STREAM_MUX (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_stream_mux_open_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

PmStreamMuxState
pm_stream_mux_get_state (PmStreamMux *self)
{
  g_return_val_if_fail (PM_IS_STREAM_MUX (self), PM_STREAM_MUX_STATE_CLOSED);
  return self->state;
}

/**
 * pm_stream_mux_get_error:
 *
 * Returns: (nullable): why the multiplexer closed, once it has
 */
const GError *
pm_stream_mux_get_error (PmStreamMux *self)
{
  g_return_val_if_fail (PM_IS_STREAM_MUX (self), NULL);
  return self->error;
}

gboolean
pm_stream_mux_get_even_stream_ids (PmStreamMux *self)
{
  g_return_val_if_fail (PM_IS_STREAM_MUX (self), FALSE);
  return self->even;
}

/**
 * pm_stream_mux_get_stats:
 *
 * Fills @stats: this multiplexer's counters, and SCTP's view of its path
 * (round trip, timeout, congestion window) while the association is up.
 */
void
pm_stream_mux_get_stats (PmStreamMux      *self,
                         PmStreamMuxStats *stats)
{
  struct sctp_status status;
  socklen_t          len = sizeof status;

  g_return_if_fail (PM_IS_STREAM_MUX (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
  stats->streams_open = self->streams_in_use;
  if (self->sock == NULL || self->state != PM_STREAM_MUX_STATE_CONNECTED)
    return;
  memset (&status, 0, sizeof status);
  if (usrsctp_getsockopt (self->sock, IPPROTO_SCTP, SCTP_STATUS, &status, &len) < 0)
    return;
  stats->srtt_ms = status.sstat_primary.spinfo_srtt;
  stats->rto_ms = status.sstat_primary.spinfo_rto;
  stats->cwnd = status.sstat_primary.spinfo_cwnd;
  stats->peer_rwnd = status.sstat_rwnd;
  stats->unacked_chunks = status.sstat_unackdata;
  stats->pending_chunks = status.sstat_penddata;
}
