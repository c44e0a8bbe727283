/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-relay"

#include "pm-relay-stream.h"

#include <string.h>

/* --- Frame header scanner (RFC 6455 §5.2) ---------------------------------
 * Follows a byte stream frame by frame: collects each header (2 to 14 bytes),
 * then skips the payload it announces. It never looks at payload bytes. */

typedef struct {
  uint8_t  header[14];
  unsigned header_len;
  unsigned header_need;  /* 0 until the first two bytes are in */
  uint64_t payload_left; /* of the current frame, once its header is complete */
  gboolean in_payload;
  gboolean data; /* the current frame is a data frame */
} FrameScan;

/* Feeds one byte of header. Returns TRUE when the header just completed. */
static gboolean
frame_scan_header_byte (FrameScan *scan,
                        uint8_t    byte)
{
  g_assert (scan->header_len < sizeof scan->header);
  scan->header[scan->header_len++] = byte;
  if (scan->header_len == 2)
    {
      unsigned len7 = scan->header[1] & 0x7f;

      scan->header_need = 2 + ((scan->header[1] & 0x80) ? 4 : 0);
      if (len7 == 126)
        scan->header_need += 2;
      else if (len7 == 127)
        scan->header_need += 8;
    }
  return scan->header_len >= 2 && scan->header_len == scan->header_need;
}

static uint64_t
frame_scan_payload_len (const FrameScan *scan)
{
  unsigned len7 = scan->header[1] & 0x7f;
  uint64_t len = 0;

  if (len7 < 126)
    return len7;
  for (unsigned i = 0; i < (len7 == 126 ? 2u : 8u); i++)
    len = len << 8 | scan->header[2 + i];
  return len;
}

/* --- PmRelayInputStream ---------------------------------------------------- */

struct _PmRelayInputStream {
  GInputStream parent_instance;

  GInputStream *base;
  uint64_t      max_message_size;
  FrameScan     scan;
  uint64_t      message_len; /* data bytes of the message being assembled */
  gboolean      too_big;
  gboolean      paused;
  GCancellable *resume; /* cancelled on resume: wakes sources made while paused */
  int64_t       last_read_us;
  /* Read-ahead: libsoup 3.2 reads 1 KiB at a time; one read() of up to
   * READ_AHEAD saves dozens of system calls per message. Allocated only while
   * it holds data, so an idle connection keeps nothing here. */
  uint8_t *ahead;
  size_t   ahead_len;
  size_t   ahead_pos;

  PmRelayTooBigFunc too_big_func;
  gpointer          too_big_data;
};

#define READ_AHEAD (64 * 1024)

static void pm_relay_input_stream_pollable_iface_init (GPollableInputStreamInterface *iface);

/* clang-format off */
G_DEFINE_FINAL_TYPE_WITH_CODE (PmRelayInputStream, pm_relay_input_stream, G_TYPE_INPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                                                      pm_relay_input_stream_pollable_iface_init))
/* clang-format on */

/* Scans @n bytes just read. Returns how many of them may be handed on: all of
 * them, or those before the header of a frame that makes a message too long. */
static size_t
input_scan (PmRelayInputStream *self,
            const uint8_t      *p,
            size_t              n)
{
  FrameScan *scan = &self->scan;
  size_t     at = 0;
  size_t     header_start = 0; /* offset in @p of the current header's first byte */

  while (at < n)
    {
      if (scan->in_payload)
        {
          uint64_t take = MIN ((uint64_t) (n - at), scan->payload_left);

          at += take;
          scan->payload_left -= take;
          if (scan->payload_left == 0)
            scan->in_payload = FALSE;
          continue;
        }
      if (scan->header_len == 0)
        header_start = at;
      if (frame_scan_header_byte (scan, p[at++]))
        {
          unsigned opcode = scan->header[0] & 0x0f;
          uint64_t len = frame_scan_payload_len (scan);

          if (opcode < 8)
            {
              /* A new message (opcode != 0) or a continuation (0). */
              uint64_t total = opcode != 0 ? len : self->message_len + len;

              if (len > self->max_message_size || total > self->max_message_size)
                {
                  self->too_big = TRUE;
                  /* Hand on nothing of this header; if it began in an earlier
                   * read, libsoup holds an incomplete header that never
                   * completes. */
                  return scan->header_len > at - header_start ? 0 : header_start;
                }
              self->message_len = total;
            }
          scan->payload_left = len;
          scan->in_payload = len > 0;
          scan->header_len = 0;
          scan->header_need = 0;
        }
    }
  return n;
}

static gssize
pm_relay_input_stream_read_nonblocking (GPollableInputStream *pollable,
                                        void                 *buffer,
                                        gsize                 count,
                                        GError              **error)
{
  PmRelayInputStream *self = PM_RELAY_INPUT_STREAM (pollable);
  gssize              n;
  size_t              keep;

  if (self->paused || self->too_big)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                           "Reading is paused");
      return -1;
    }
  if (self->ahead_pos == self->ahead_len)
    {
      if (self->ahead == NULL)
        self->ahead = g_malloc (READ_AHEAD);
      n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (self->base),
                                                    self->ahead, READ_AHEAD, NULL, error);
      if (n <= 0)
        {
          g_clear_pointer (&self->ahead, g_free);
          self->ahead_len = self->ahead_pos = 0;
          return n;
        }
      self->ahead_len = (size_t) n;
      self->ahead_pos = 0;
      self->last_read_us = g_get_monotonic_time ();
    }
  n = (gssize) MIN (count, self->ahead_len - self->ahead_pos);
  keep = input_scan (self, self->ahead + self->ahead_pos, (size_t) n);
  memcpy (buffer, self->ahead + self->ahead_pos, keep);
  /* After "too big" the rest is never handed on. */
  self->ahead_pos = self->too_big ? self->ahead_len : self->ahead_pos + keep;
  if (self->ahead_pos == self->ahead_len)
    {
      g_clear_pointer (&self->ahead, g_free);
      self->ahead_len = self->ahead_pos = 0;
    }
  if (self->too_big)
    {
      if (self->too_big_func != NULL)
        self->too_big_func (self->too_big_data);
      if (keep == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                               "Message too big");
          return -1;
        }
    }
  return (gssize) keep;
}

static gboolean
pm_relay_input_stream_can_poll (GPollableInputStream *pollable)
{
  return TRUE;
}

static gboolean
pm_relay_input_stream_is_readable (GPollableInputStream *pollable)
{
  PmRelayInputStream *self = PM_RELAY_INPUT_STREAM (pollable);

  if (self->paused || self->too_big)
    return FALSE;
  if (self->ahead_pos < self->ahead_len)
    return TRUE;
  return g_pollable_input_stream_is_readable (G_POLLABLE_INPUT_STREAM (self->base));
}

static GSource *
pm_relay_input_stream_create_source (GPollableInputStream *pollable,
                                     GCancellable         *cancellable)
{
  PmRelayInputStream *self = PM_RELAY_INPUT_STREAM (pollable);
  g_autoptr (GSource) child = NULL;

  if (self->paused || self->too_big)
    {
      /* Fires when pm_relay_input_stream_set_paused (FALSE) cancels it;
       * after "too big" never. */
      if (self->resume == NULL)
        self->resume = g_cancellable_new ();
      child = g_cancellable_source_new (self->resume);
    }
  else if (self->ahead_pos < self->ahead_len)
    child = g_idle_source_new (); /* readable now */
  else
    child = g_pollable_input_stream_create_source (G_POLLABLE_INPUT_STREAM (self->base), NULL);
  return g_pollable_source_new_full (self, child, cancellable);
}

static void
pm_relay_input_stream_pollable_iface_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = pm_relay_input_stream_can_poll;
  iface->is_readable = pm_relay_input_stream_is_readable;
  iface->create_source = pm_relay_input_stream_create_source;
  iface->read_nonblocking = pm_relay_input_stream_read_nonblocking;
}

/* Blocking reads are never used by libsoup here; they pass through unscanned
 * only so that the stream is a complete GInputStream. */
static gssize
pm_relay_input_stream_read (GInputStream *stream,
                            void         *buffer,
                            gsize         count,
                            GCancellable *cancellable,
                            GError      **error)
{
  PmRelayInputStream *self = PM_RELAY_INPUT_STREAM (stream);
  gssize              n;

  if (self->ahead_pos < self->ahead_len)
    {
      n = (gssize) MIN (count, self->ahead_len - self->ahead_pos);
      memcpy (buffer, self->ahead + self->ahead_pos, (size_t) n);
      self->ahead_pos += (size_t) n;
    }
  else
    n = g_input_stream_read (self->base, buffer, count, cancellable, error);
  if (n > 0)
    (void) input_scan (self, buffer, (size_t) n);
  return n;
}

static gboolean
pm_relay_input_stream_close (GInputStream *stream,
                             GCancellable *cancellable,
                             GError      **error)
{
  /* The output stream closes the whole connection. */
  return TRUE;
}

static void
pm_relay_input_stream_finalize (GObject *object)
{
  PmRelayInputStream *self = PM_RELAY_INPUT_STREAM (object);

  g_clear_object (&self->base);
  g_clear_object (&self->resume);
  g_free (self->ahead);
  G_OBJECT_CLASS (pm_relay_input_stream_parent_class)->finalize (object);
}

static void
pm_relay_input_stream_class_init (PmRelayInputStreamClass *klass)
{
  GObjectClass      *object_class = G_OBJECT_CLASS (klass);
  GInputStreamClass *stream_class = G_INPUT_STREAM_CLASS (klass);

  object_class->finalize = pm_relay_input_stream_finalize;
  stream_class->read_fn = pm_relay_input_stream_read;
  stream_class->close_fn = pm_relay_input_stream_close;
}

static void
pm_relay_input_stream_init (PmRelayInputStream *self)
{
}

PmRelayInputStream *
pm_relay_input_stream_new (GInputStream *base,
                           uint64_t      max_message_size)
{
  PmRelayInputStream *self;

  g_return_val_if_fail (G_IS_POLLABLE_INPUT_STREAM (base), NULL);

  self = g_object_new (PM_TYPE_RELAY_INPUT_STREAM, NULL);
  self->base = g_object_ref (base);
  self->max_message_size = max_message_size;
  return self;
}

void
pm_relay_input_stream_set_too_big_func (PmRelayInputStream *self,
                                        PmRelayTooBigFunc   func,
                                        gpointer            user_data)
{
  g_return_if_fail (PM_IS_RELAY_INPUT_STREAM (self));

  self->too_big_func = func;
  self->too_big_data = user_data;
}

void
pm_relay_input_stream_set_paused (PmRelayInputStream *self,
                                  gboolean            paused)
{
  g_return_if_fail (PM_IS_RELAY_INPUT_STREAM (self));

  paused = !!paused;
  if (self->paused == paused)
    return;
  self->paused = paused;
  if (!paused && self->resume != NULL && !self->too_big)
    {
      g_cancellable_cancel (self->resume);
      g_clear_object (&self->resume);
    }
}

gboolean
pm_relay_input_stream_get_paused (PmRelayInputStream *self)
{
  g_return_val_if_fail (PM_IS_RELAY_INPUT_STREAM (self), FALSE);

  return self->paused || self->too_big;
}

int64_t
pm_relay_input_stream_get_last_read (PmRelayInputStream *self)
{
  g_return_val_if_fail (PM_IS_RELAY_INPUT_STREAM (self), 0);

  return self->last_read_us;
}

/* --- PmRelayOutputStream --------------------------------------------------- */

struct _PmRelayOutputStream {
  GOutputStream parent_instance;

  GIOStream     *base_io;
  GOutputStream *base;
  FrameScan      scan;
  uint64_t       data_written;

  PmRelayWrittenFunc written_func;
  gpointer           written_data;
};

static void pm_relay_output_stream_pollable_iface_init (GPollableOutputStreamInterface *iface);

/* clang-format off */
G_DEFINE_FINAL_TYPE_WITH_CODE (PmRelayOutputStream, pm_relay_output_stream, G_TYPE_OUTPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_OUTPUT_STREAM,
                                                      pm_relay_output_stream_pollable_iface_init))
/* clang-format on */

/* Returns the data-frame payload bytes among the @n bytes just written. */
static uint64_t
output_scan (PmRelayOutputStream *self,
             const uint8_t       *p,
             size_t               n)
{
  FrameScan *scan = &self->scan;
  uint64_t   data = 0;
  size_t     at = 0;

  while (at < n)
    {
      if (scan->in_payload)
        {
          uint64_t take = MIN ((uint64_t) (n - at), scan->payload_left);

          at += take;
          scan->payload_left -= take;
          if (scan->data)
            data += take;
          if (scan->payload_left == 0)
            scan->in_payload = FALSE;
          continue;
        }
      if (frame_scan_header_byte (scan, p[at++]))
        {
          scan->data = (scan->header[0] & 0x0f) < 8;
          scan->payload_left = frame_scan_payload_len (scan);
          scan->in_payload = scan->payload_left > 0;
          scan->header_len = 0;
          scan->header_need = 0;
        }
    }
  return data;
}

static void
output_account (PmRelayOutputStream *self,
                const void          *buffer,
                gssize               n)
{
  uint64_t data;

  if (n <= 0)
    return;
  data = output_scan (self, buffer, (size_t) n);
  if (data > 0)
    {
      self->data_written += data;
      if (self->written_func != NULL)
        self->written_func (self->written_data);
    }
}

static gssize
pm_relay_output_stream_write_nonblocking (GPollableOutputStream *pollable,
                                          const void            *buffer,
                                          gsize                  count,
                                          GError               **error)
{
  PmRelayOutputStream   *self = PM_RELAY_OUTPUT_STREAM (pollable);
  GPollableOutputStream *base = G_POLLABLE_OUTPUT_STREAM (self->base);
  gssize                 n;

  n = g_pollable_output_stream_write_nonblocking (base, buffer, count, NULL, error);

  output_account (self, buffer, n);
  return n;
}

static gboolean
pm_relay_output_stream_can_poll (GPollableOutputStream *pollable)
{
  return TRUE;
}

static gboolean
pm_relay_output_stream_is_writable (GPollableOutputStream *pollable)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (pollable);

  return g_pollable_output_stream_is_writable (G_POLLABLE_OUTPUT_STREAM (self->base));
}

static GSource *
pm_relay_output_stream_create_source (GPollableOutputStream *pollable,
                                      GCancellable          *cancellable)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (pollable);
  g_autoptr (GSource) child =
    g_pollable_output_stream_create_source (G_POLLABLE_OUTPUT_STREAM (self->base), NULL);

  return g_pollable_source_new_full (self, child, cancellable);
}

static void
pm_relay_output_stream_pollable_iface_init (GPollableOutputStreamInterface *iface)
{
  iface->can_poll = pm_relay_output_stream_can_poll;
  iface->is_writable = pm_relay_output_stream_is_writable;
  iface->create_source = pm_relay_output_stream_create_source;
  iface->write_nonblocking = pm_relay_output_stream_write_nonblocking;
}

static gssize
pm_relay_output_stream_write (GOutputStream *stream,
                              const void    *buffer,
                              gsize          count,
                              GCancellable  *cancellable,
                              GError       **error)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (stream);
  gssize               n = g_output_stream_write (self->base, buffer, count, cancellable, error);

  output_account (self, buffer, n);
  return n;
}

static gboolean
pm_relay_output_stream_flush (GOutputStream *stream,
                              GCancellable  *cancellable,
                              GError       **error)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (stream);

  return g_output_stream_flush (self->base, cancellable, error);
}

static gboolean
pm_relay_output_stream_close (GOutputStream *stream,
                              GCancellable  *cancellable,
                              GError       **error)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (stream);

  return g_io_stream_close (self->base_io, cancellable, error);
}

static void
pm_relay_output_stream_finalize (GObject *object)
{
  PmRelayOutputStream *self = PM_RELAY_OUTPUT_STREAM (object);

  g_clear_object (&self->base);
  g_clear_object (&self->base_io);
  G_OBJECT_CLASS (pm_relay_output_stream_parent_class)->finalize (object);
}

static void
pm_relay_output_stream_class_init (PmRelayOutputStreamClass *klass)
{
  GObjectClass       *object_class = G_OBJECT_CLASS (klass);
  GOutputStreamClass *stream_class = G_OUTPUT_STREAM_CLASS (klass);

  object_class->finalize = pm_relay_output_stream_finalize;
  stream_class->write_fn = pm_relay_output_stream_write;
  stream_class->flush = pm_relay_output_stream_flush;
  stream_class->close_fn = pm_relay_output_stream_close;
}

static void
pm_relay_output_stream_init (PmRelayOutputStream *self)
{
}

PmRelayOutputStream *
pm_relay_output_stream_new (GIOStream *base_io)
{
  PmRelayOutputStream *self;
  GOutputStream       *base;

  g_return_val_if_fail (G_IS_IO_STREAM (base_io), NULL);
  base = g_io_stream_get_output_stream (base_io);
  g_return_val_if_fail (G_IS_POLLABLE_OUTPUT_STREAM (base), NULL);

  self = g_object_new (PM_TYPE_RELAY_OUTPUT_STREAM, NULL);
  self->base_io = g_object_ref (base_io);
  self->base = g_object_ref (base);
  return self;
}

void
pm_relay_output_stream_set_written_func (PmRelayOutputStream *self,
                                         PmRelayWrittenFunc   func,
                                         gpointer             user_data)
{
  g_return_if_fail (PM_IS_RELAY_OUTPUT_STREAM (self));

  self->written_func = func;
  self->written_data = user_data;
}

uint64_t
pm_relay_output_stream_get_data_written (PmRelayOutputStream *self)
{
  g_return_val_if_fail (PM_IS_RELAY_OUTPUT_STREAM (self), 0);

  return self->data_written;
}
