/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stream"

#include "pm-stream-private.h"

#include <string.h>

#include "pm-stream-control.h"

/* clang-format off */
G_DEFINE_QUARK (pm-stream-error-quark, pm_stream_error)
/* clang-format on */

/*
 * PmStream and its two private substreams. The substreams point at their
 * PmStream without a reference (a GIOStream owns its substreams, not the
 * other way round); once the PmStream is disposed they report
 * G_IO_ERROR_CLOSED.
 */

#define PM_TYPE_STREAM_INPUT (pm_stream_input_get_type ())
G_DECLARE_FINAL_TYPE (PmStreamInput, pm_stream_input, PM, STREAM_INPUT, GInputStream)

#define PM_TYPE_STREAM_OUTPUT (pm_stream_output_get_type ())
G_DECLARE_FINAL_TYPE (PmStreamOutput, pm_stream_output, PM, STREAM_OUTPUT, GOutputStream)

struct _PmStreamInput {
  GInputStream parent_instance;
  PmStream    *stream;
};

struct _PmStreamOutput {
  GOutputStream parent_instance;
  PmStream     *stream;
};

static void pm_stream_input_pollable_init (GPollableInputStreamInterface *iface);
static void pm_stream_output_pollable_init (GPollableOutputStreamInterface *iface);

/* clang-format off */
G_DEFINE_FINAL_TYPE_WITH_CODE (PmStreamInput, pm_stream_input, G_TYPE_INPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                                                      pm_stream_input_pollable_init))
G_DEFINE_FINAL_TYPE_WITH_CODE (PmStreamOutput, pm_stream_output, G_TYPE_OUTPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_OUTPUT_STREAM,
                                                      pm_stream_output_pollable_init))
/* clang-format on */

G_DEFINE_FINAL_TYPE (PmStream, pm_stream, G_TYPE_IO_STREAM)

enum {
  PROP_0,
  PROP_ID,
  PROP_SERVICE,
  PROP_INCOMING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* --- Conditions ------------------------------------------------------------- */

static gboolean
stream_is_readable (PmStream *s)
{
  return s == NULL || s->rx_buffered > 0 || s->rx_eof || s->error != NULL || s->mux == NULL ||
         s->input_closed;
}

static gboolean
stream_is_writable (PmStream *s)
{
  if (s == NULL || s->error != NULL || s->mux == NULL || s->output_closed)
    return TRUE;
  if (s->phase != PM_STREAM_PHASE_OPEN)
    return FALSE;
  return pm_stream_mux_stream_can_write (s->mux, s);
}

/* A child source for g_pollable_source_new_full(): ready when its condition
 * holds. The condition only changes while the main context dispatches
 * something (a packet, a timer, the application), so checking it in prepare
 * and check is enough. */
typedef struct {
  GSource  source;
  GObject *substream; /* a reference */
  gboolean output;
} WaitSource;

static gboolean
wait_ready (WaitSource *ws)
{
  if (ws->output)
    return stream_is_writable (PM_STREAM_OUTPUT (ws->substream)->stream);
  return stream_is_readable (PM_STREAM_INPUT (ws->substream)->stream);
}

static gboolean
wait_prepare (GSource *source,
              int     *timeout)
{
  *timeout = -1;
  return wait_ready ((WaitSource *) source);
}

static gboolean
wait_check (GSource *source)
{
  return wait_ready ((WaitSource *) source);
}

static gboolean
wait_dispatch (GSource    *source,
               GSourceFunc callback,
               gpointer    user_data)
{
  return G_SOURCE_CONTINUE; /* the parent GPollableSource calls back */
}

static void
wait_finalize (GSource *source)
{
  g_clear_object (&((WaitSource *) source)->substream);
}

/* g_pollable_source_new_full() gives the child a dummy callback, which GLib
 * allows only for sources with a closure callback; ours is never called. */
static gboolean
wait_closure_callback (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs wait_funcs = {
  .prepare = wait_prepare,
  .check = wait_check,
  .dispatch = wait_dispatch,
  .finalize = wait_finalize,
  .closure_callback = wait_closure_callback,
};

static GSource *
pollable_source_new (GObject      *substream,
                     gboolean      output,
                     GCancellable *cancellable)
{
  GSource    *child = g_source_new (&wait_funcs, sizeof (WaitSource));
  WaitSource *ws = (WaitSource *) child;
  GSource    *source;

  g_source_set_name (child, output ? "PmStream writable" : "PmStream readable");
  ws->substream = g_object_ref (substream);
  ws->output = output;
  source = g_pollable_source_new_full (substream, child, cancellable);
  g_source_unref (child);
  return source;
}

static gboolean
set_closed_error (GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "Stream is closed");
  return FALSE;
}

/* --- Input ------------------------------------------------------------------ */

static gssize
input_read (PmStreamInput *self,
            void          *buffer,
            gsize          count,
            const char    *would_block,
            GError       **error)
{
  PmStream *s = self->stream;
  size_t    n = 0;

  if (s == NULL)
    return set_closed_error (error) ? 0 : -1;
  if (count == 0)
    return 0;
  if (s->rx_buffered > 0)
    {
      while (n < count && !g_queue_is_empty (&s->rx))
        {
          PmStreamChunk *chunk = g_queue_peek_head (&s->rx);
          size_t         take = MIN (count - n, chunk->len - chunk->off);

          memcpy ((uint8_t *) buffer + n, chunk->data + chunk->off, take);
          chunk->off += take;
          n += take;
          if (chunk->off == chunk->len)
            g_free (g_queue_pop_head (&s->rx));
        }
      s->rx_buffered -= n;
      s->rx_consumed += n;
      if (s->mux != NULL)
        pm_stream_mux_sync_stream (s->mux, s); /* credit */
      return (gssize) n;
    }
  if (s->rx_eof)
    return 0;
  if (s->error != NULL)
    {
      g_propagate_error (error, g_error_copy (s->error));
      return -1;
    }
  if (s->mux == NULL)
    return 0;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, would_block);
  return -1;
}

static gssize
input_read_fn (GInputStream *stream,
               void         *buffer,
               gsize         count,
               GCancellable *cancellable,
               GError      **error)
{
  return input_read (PM_STREAM_INPUT (stream), buffer, count,
                     "No data yet; a PmStream never blocks: read it asynchronously", error);
}

static gssize
input_read_nonblocking (GPollableInputStream *pollable,
                        void                 *buffer,
                        gsize                 count,
                        GError              **error)
{
  return input_read (PM_STREAM_INPUT (pollable), buffer, count, "No data yet", error);
}

static gboolean
input_close_fn (GInputStream *stream,
                GCancellable *cancellable,
                GError      **error)
{
  PmStream *s = PM_STREAM_INPUT (stream)->stream;

  if (s == NULL || s->input_closed)
    return TRUE;
  s->input_closed = TRUE;
  if (s->rx_buffered > 0)
    s->dropped_unread = TRUE;
  pm_stream_drop_buffered (s);
  if (s->mux != NULL)
    pm_stream_mux_sync_stream (s->mux, s);
  return TRUE;
}

/* Closing never waits, so the asynchronous close is the synchronous one,
 * never in a thread. */
static void
input_close_async (GInputStream       *stream,
                   int                 io_priority,
                   GCancellable       *cancellable,
                   GAsyncReadyCallback callback,
                   gpointer            user_data)
{
  g_autoptr (GTask) task = g_task_new (stream, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, input_close_async);
  if (input_close_fn (stream, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static gboolean
input_close_finish (GInputStream *stream,
                    GAsyncResult *result,
                    GError      **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gboolean
input_can_poll (GPollableInputStream *pollable)
{
  return TRUE;
}

static gboolean
input_is_readable (GPollableInputStream *pollable)
{
  return stream_is_readable (PM_STREAM_INPUT (pollable)->stream);
}

static GSource *
input_create_source (GPollableInputStream *pollable,
                     GCancellable         *cancellable)
{
  return pollable_source_new (G_OBJECT (pollable), FALSE, cancellable);
}

static void
pm_stream_input_pollable_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = input_can_poll;
  iface->is_readable = input_is_readable;
  iface->create_source = input_create_source;
  iface->read_nonblocking = input_read_nonblocking;
}

static void
pm_stream_input_class_init (PmStreamInputClass *klass)
{
  GInputStreamClass *input_class = G_INPUT_STREAM_CLASS (klass);

  input_class->read_fn = input_read_fn;
  input_class->close_fn = input_close_fn;
  input_class->close_async = input_close_async;
  input_class->close_finish = input_close_finish;
}

static void
pm_stream_input_init (PmStreamInput *self)
{
}

/* --- Output ----------------------------------------------------------------- */

static gssize
output_write (PmStreamOutput *self,
              const void     *buffer,
              gsize           count,
              const char     *would_block,
              GError        **error)
{
  PmStream *s = self->stream;

  if (s == NULL)
    return set_closed_error (error) ? 0 : -1;
  if (s->error != NULL)
    {
      g_propagate_error (error, g_error_copy (s->error));
      return -1;
    }
  if (s->mux == NULL)
    {
      g_set_error_literal (error, PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED, "The stream has ended");
      return -1;
    }
  if (count == 0)
    return 0;
  if (s->phase == PM_STREAM_PHASE_OPEN)
    {
      g_autoptr (GError) local = NULL;
      gssize n = pm_stream_mux_write_stream (s->mux, s, buffer, count, &local);

      if (n >= 0)
        return n;
      if (!g_error_matches (local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return -1;
        }
    }
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, would_block);
  return -1;
}

static gssize
output_write_fn (GOutputStream *stream,
                 const void    *buffer,
                 gsize          count,
                 GCancellable  *cancellable,
                 GError       **error)
{
  return output_write (PM_STREAM_OUTPUT (stream), buffer, count,
                       "No credit or buffer space yet; a PmStream never blocks: write it "
                       "asynchronously",
                       error);
}

static gssize
output_write_nonblocking (GPollableOutputStream *pollable,
                          const void            *buffer,
                          gsize                  count,
                          GError               **error)
{
  return output_write (PM_STREAM_OUTPUT (pollable), buffer, count,
                       "No credit or buffer space yet", error);
}

static gboolean
output_close_fn (GOutputStream *stream,
                 GCancellable  *cancellable,
                 GError       **error)
{
  PmStream *s = PM_STREAM_OUTPUT (stream)->stream;

  if (s == NULL || s->output_closed)
    return TRUE;
  s->output_closed = TRUE;
  if (s->mux != NULL)
    pm_stream_mux_sync_stream (s->mux, s); /* FIN */
  return TRUE;
}

static void
output_close_async (GOutputStream      *stream,
                    int                 io_priority,
                    GCancellable       *cancellable,
                    GAsyncReadyCallback callback,
                    gpointer            user_data)
{
  g_autoptr (GTask) task = g_task_new (stream, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, output_close_async);
  if (output_close_fn (stream, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static gboolean
output_close_finish (GOutputStream *stream,
                     GAsyncResult  *result,
                     GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gboolean
output_can_poll (GPollableOutputStream *pollable)
{
  return TRUE;
}

static gboolean
output_is_writable (GPollableOutputStream *pollable)
{
  return stream_is_writable (PM_STREAM_OUTPUT (pollable)->stream);
}

static GSource *
output_create_source (GPollableOutputStream *pollable,
                      GCancellable          *cancellable)
{
  return pollable_source_new (G_OBJECT (pollable), TRUE, cancellable);
}

static void
pm_stream_output_pollable_init (GPollableOutputStreamInterface *iface)
{
  iface->can_poll = output_can_poll;
  iface->is_writable = output_is_writable;
  iface->create_source = output_create_source;
  iface->write_nonblocking = output_write_nonblocking;
}

static void
pm_stream_output_class_init (PmStreamOutputClass *klass)
{
  GOutputStreamClass *output_class = G_OUTPUT_STREAM_CLASS (klass);

  output_class->write_fn = output_write_fn;
  output_class->close_fn = output_close_fn;
  output_class->close_async = output_close_async;
  output_class->close_finish = output_close_finish;
}

static void
pm_stream_output_init (PmStreamOutput *self)
{
}

/* --- PmStream --------------------------------------------------------------- */

static GInputStream *
pm_stream_get_input_stream (GIOStream *stream)
{
  return PM_STREAM (stream)->input;
}

static GOutputStream *
pm_stream_get_output_stream (GIOStream *stream)
{
  return PM_STREAM (stream)->output;
}

static void
pm_stream_dispose (GObject *object)
{
  PmStream *self = PM_STREAM (object);

  /* An incoming stream nobody decided on is refused, and dropping the last
   * reference closes the stream (as a GIOStream does). */
  if (self->mux != NULL && self->phase == PM_STREAM_PHASE_PENDING &&
      self->decision == PM_STREAM_DECISION_NONE)
    {
      self->decision = PM_STREAM_DECISION_REFUSE;
      g_free (self->local_reason);
      self->local_reason = g_strdup ("The service dropped the stream");
    }
  if (!g_io_stream_is_closed (G_IO_STREAM (self)))
    g_io_stream_close (G_IO_STREAM (self), NULL, NULL);
  if (self->mux != NULL)
    {
      pm_stream_mux_forget_stream (self->mux, self);
      self->mux = NULL;
    }
  if (self->input != NULL)
    PM_STREAM_INPUT (self->input)->stream = NULL;
  if (self->output != NULL)
    PM_STREAM_OUTPUT (self->output)->stream = NULL;

  G_OBJECT_CLASS (pm_stream_parent_class)->dispose (object);
}

static void
pm_stream_finalize (GObject *object)
{
  PmStream *self = PM_STREAM (object);

  g_assert (self->open_task == NULL);
  g_assert (self->cancel_source == NULL);
  g_queue_clear_full (&self->rx, g_free);
  g_clear_object (&self->input);
  g_clear_object (&self->output);
  g_clear_error (&self->error);
  g_free (self->service);
  g_free (self->local_reason);

  G_OBJECT_CLASS (pm_stream_parent_class)->finalize (object);
}

static void
pm_stream_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  PmStream *self = PM_STREAM (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_uint (value, self->sid);
      break;
    case PROP_SERVICE:
      g_value_set_string (value, self->service);
      break;
    case PROP_INCOMING:
      g_value_set_boolean (value, self->incoming);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_stream_class_init (PmStreamClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GIOStreamClass *io_class = G_IO_STREAM_CLASS (klass);

  object_class->dispose = pm_stream_dispose;
  object_class->finalize = pm_stream_finalize;
  object_class->get_property = pm_stream_get_property;
  io_class->get_input_stream = pm_stream_get_input_stream;
  io_class->get_output_stream = pm_stream_get_output_stream;

  properties[PROP_ID] =
    g_param_spec_uint ("id", NULL, NULL, 0, G_MAXUINT16, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_SERVICE] =
    g_param_spec_string ("service", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_INCOMING] =
    g_param_spec_boolean ("incoming", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_stream_init (PmStream *self)
{
  g_queue_init (&self->rx);
}

/* --- For the multiplexer ------------------------------------------------------ */

PmStream *
pm_stream_new_internal (PmStreamMux *mux,
                        unsigned     sid,
                        const char  *service,
                        size_t       service_len,
                        gboolean     incoming,
                        uint32_t     rx_window)
{
  PmStream *self = g_object_new (PM_TYPE_STREAM, NULL);

  self->mux = mux;
  self->sid = sid;
  self->service = g_strndup (service, service_len);
  self->incoming = incoming;
  self->phase = incoming ? PM_STREAM_PHASE_PENDING : PM_STREAM_PHASE_OPENING;
  self->rx_window = rx_window;
  self->rx_epoch_us = g_get_monotonic_time ();
  self->input = g_object_new (PM_TYPE_STREAM_INPUT, NULL);
  PM_STREAM_INPUT (self->input)->stream = self;
  self->output = g_object_new (PM_TYPE_STREAM_OUTPUT, NULL);
  PM_STREAM_OUTPUT (self->output)->stream = self;
  return self;
}

/* Appends received stream bytes for the application. */
void
pm_stream_push_data (PmStream      *self,
                     const uint8_t *data,
                     size_t         len)
{
  PmStreamChunk *chunk;

  if (len == 0)
    return;
  chunk = g_malloc (sizeof *chunk + len);
  chunk->len = len;
  chunk->off = 0;
  memcpy (chunk->data, data, len);
  g_queue_push_tail (&self->rx, chunk);
  self->rx_buffered += len;
}

/* Drops what the application will never read (its input is closed, or the
 * stream was reset here); it counts as read, for the credit. */
void
pm_stream_drop_buffered (PmStream *self)
{
  g_queue_clear_full (&self->rx, g_free);
  self->rx_consumed += self->rx_buffered;
  self->rx_buffered = 0;
}

/* Takes @error as the stream's failure, unless it has one already. */
void
pm_stream_fail (PmStream *self,
                GError   *error)
{
  if (self->error == NULL)
    self->error = error;
  else
    g_error_free (error);
}

/* The stream id is released (or the multiplexer is gone): the stream keeps
 * what was received and its error, and talks to no multiplexer again. */
void
pm_stream_detach (PmStream *self)
{
  self->mux = NULL;
  if (self->phase != PM_STREAM_PHASE_OPEN || self->error != NULL)
    self->phase = PM_STREAM_PHASE_ENDED;
}

/* --- Public API ----------------------------------------------------------------- */

/**
 * pm_stream_get_id:
 *
 * Returns: the SCTP stream id this stream travels on (even for streams opened
 *   by the end created with even_stream_ids, odd for the other end's).
 */
unsigned
pm_stream_get_id (PmStream *self)
{
  g_return_val_if_fail (PM_IS_STREAM (self), 0);
  return self->sid;
}

/**
 * pm_stream_get_service:
 *
 * Returns: the service name the opener asked for.
 */
const char *
pm_stream_get_service (PmStream *self)
{
  g_return_val_if_fail (PM_IS_STREAM (self), NULL);
  return self->service;
}

/**
 * pm_stream_is_incoming:
 *
 * Returns: whether the peer opened this stream.
 */
gboolean
pm_stream_is_incoming (PmStream *self)
{
  g_return_val_if_fail (PM_IS_STREAM (self), FALSE);
  return self->incoming;
}

/* A reason fit for the wire: valid UTF-8, control characters replaced, at
 * most PM_STREAM_MAX_REASON_LEN bytes. */
static char *
sanitize_reason (const char *reason)
{
  g_autofree char *valid = g_utf8_make_valid (reason != NULL ? reason : "", -1);
  GString         *out = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      g_string_append_unichar (out, g_unichar_iscntrl (c) ? '?' : c);
    }
  g_string_truncate (out, pm_stream_reason_clamp (out->str));
  return g_string_free (out, FALSE);
}

/**
 * pm_stream_accept:
 *
 * Accepts an incoming stream, from a #PmStreamMux::stream-requested handler
 * or later (if the handler kept a reference). Data may be written at once;
 * it leaves after the acceptance.
 */
void
pm_stream_accept (PmStream *self)
{
  g_return_if_fail (PM_IS_STREAM (self));
  g_return_if_fail (self->incoming);

  if (self->phase != PM_STREAM_PHASE_PENDING || self->decision != PM_STREAM_DECISION_NONE)
    return; /* decided already, or cancelled by the opener meanwhile */
  self->decision = PM_STREAM_DECISION_ACCEPT;
  if (self->error == NULL)
    self->phase = PM_STREAM_PHASE_OPEN;
  if (self->mux != NULL)
    pm_stream_mux_sync_stream (self->mux, self);
}

/**
 * pm_stream_refuse:
 * @reason: (nullable): shown to the opener as its error's message, for
 *   instance "service 'ssh' is not allowed for this device"
 *
 * Refuses an incoming stream. The opener's pm_stream_mux_open_finish() fails
 * with PM_STREAM_ERROR_REFUSED and @reason (at most PM_STREAM_MAX_REASON_LEN
 * bytes of it; control characters become '?').
 */
void
pm_stream_refuse (PmStream   *self,
                  const char *reason)
{
  g_return_if_fail (PM_IS_STREAM (self));
  g_return_if_fail (self->incoming);

  if (self->phase != PM_STREAM_PHASE_PENDING || self->decision != PM_STREAM_DECISION_NONE)
    return;
  self->decision = PM_STREAM_DECISION_REFUSE;
  g_free (self->local_reason);
  self->local_reason = sanitize_reason (reason);
  self->phase = PM_STREAM_PHASE_ENDED;
  pm_stream_fail (self, g_error_new_literal (PM_STREAM_ERROR, PM_STREAM_ERROR_ABORTED,
                                             "The stream was refused"));
  if (self->mux != NULL)
    pm_stream_mux_sync_stream (self->mux, self);
}

/**
 * pm_stream_reset:
 * @reason: (nullable): for the peer, whose operations on the stream then fail
 *   with PM_STREAM_ERROR_RESET
 *
 * Aborts the stream both ways: what was not sent yet is dropped, and so is
 * what was received and not read. Later operations here fail with
 * PM_STREAM_ERROR_ABORTED.
 */
void
pm_stream_reset (PmStream   *self,
                 const char *reason)
{
  g_autofree char *clean = NULL;

  g_return_if_fail (PM_IS_STREAM (self));

  if (self->reset_requested || self->mux == NULL)
    return;
  clean = sanitize_reason (reason);
  self->reset_requested = TRUE;
  g_free (self->local_reason);
  self->local_reason = g_steal_pointer (&clean);
  pm_stream_drop_buffered (self);
  pm_stream_fail (self, g_error_new (PM_STREAM_ERROR, PM_STREAM_ERROR_ABORTED,
                                     "The stream was reset%s%s",
                                     self->local_reason[0] != '\0' ? ": " : "",
                                     self->local_reason));
  pm_stream_mux_sync_stream (self->mux, self);
}

uint64_t
pm_stream_get_bytes_sent (PmStream *self)
{
  g_return_val_if_fail (PM_IS_STREAM (self), 0);
  return self->tx_total;
}

uint64_t
pm_stream_get_bytes_received (PmStream *self)
{
  g_return_val_if_fail (PM_IS_STREAM (self), 0);
  return self->rx_total;
}
