/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-forward"

#include "pm-forward.h"

#include "pm-mesh-limits.h"

/* Bytes read per step in each direction. */
#define FORWARD_BUFFER_LEN (64 * 1024)

typedef struct {
  struct _Forward *forward;
  GInputStream    *in;
  GOutputStream   *out;
  gboolean         to_tcp; /* out is the TCP side: EOF is a shutdown(SHUT_WR) */
  uint8_t         *buffer;
  uint64_t         bytes;
  gboolean         done;
} Direction;

typedef struct _Forward {
  GTask             *task;
  PmStream          *stream;
  GSocketConnection *connection;
  Direction          up;   /* TCP → stream */
  Direction          down; /* stream → TCP */
  GError            *error;
  GCancellable      *cancellable; /* ours: a failure in one direction stops the other */
  GCancellable      *caller_cancellable;
  gulong             caller_handler;
} Forward;

static void direction_read (Direction *d);

static void
forward_free (Forward *f)
{
  g_clear_object (&f->stream);
  g_clear_object (&f->connection);
  g_free (f->up.buffer);
  g_free (f->down.buffer);
  g_clear_error (&f->error);
  if (f->caller_cancellable != NULL)
    g_cancellable_disconnect (f->caller_cancellable, f->caller_handler);
  g_clear_object (&f->caller_cancellable);
  g_clear_object (&f->cancellable);
  g_free (f);
}

static void
forward_check_done (Forward *f)
{
  GTask *task;

  if (!(f->up.done && f->down.done))
    return;
  task = f->task;
  f->task = NULL;
  if (f->error != NULL)
    {
      pm_stream_reset (f->stream, f->error->message);
      g_io_stream_close (G_IO_STREAM (f->connection), NULL, NULL);
      g_task_return_error (task, g_steal_pointer (&f->error));
    }
  else
    {
      g_io_stream_close (G_IO_STREAM (f->stream), NULL, NULL);
      g_io_stream_close (G_IO_STREAM (f->connection), NULL, NULL);
      g_task_return_boolean (task, TRUE);
    }
  g_object_unref (task);
}

/* A failure ends both directions: cancelling the task's cancellable stops the
 * other one's pending read or write. */
static void
direction_fail (Direction *d,
                GError    *error)
{
  Forward *f = d->forward;

  /* The first error is the one reported (the other direction then fails
   * with CANCELLED). */
  if (f->error == NULL)
    f->error = error;
  else
    g_error_free (error);
  d->done = TRUE;
  g_cancellable_cancel (f->cancellable);
  forward_check_done (f);
}

static void
direction_eof (Direction *d)
{
  Forward *f = d->forward;
  g_autoptr (GError) error = NULL;

  if (d->to_tcp)
    {
      if (!g_socket_shutdown (g_socket_connection_get_socket (f->connection), FALSE, TRUE, &error))
        g_debug ("shutdown: %s", error->message);
    }
  else if (!g_output_stream_close (d->out, NULL, &error))
    g_debug ("closing the stream's output: %s", error->message);
  d->done = TRUE;
  forward_check_done (f);
}

static void
on_written (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Direction *d = user_data;
  GError    *error = NULL;
  gsize      written = 0;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, &written, &error))
    {
      direction_fail (d, error);
      return;
    }
  d->bytes += written;
  direction_read (d);
}

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Direction *d = user_data;
  GError    *error = NULL;
  gssize     n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n < 0)
    direction_fail (d, error);
  else if (n == 0)
    direction_eof (d);
  else
    g_output_stream_write_all_async (d->out, d->buffer, n, G_PRIORITY_DEFAULT, d->forward->cancellable,
                                     on_written, d);
}

static void
direction_read (Direction *d)
{
  g_input_stream_read_async (d->in, d->buffer, FORWARD_BUFFER_LEN, G_PRIORITY_DEFAULT,
                             d->forward->cancellable, on_read, d);
}

static void
on_caller_cancelled (GCancellable *cancellable,
                     gpointer      user_data)
{
  Forward *f = user_data;

  g_cancellable_cancel (f->cancellable);
}

void
pm_forward_async (PmStream           *stream,
                  GSocketConnection  *connection,
                  GCancellable       *cancellable,
                  GAsyncReadyCallback callback,
                  gpointer            user_data)
{
  Forward *f;

  g_return_if_fail (PM_IS_STREAM (stream));
  g_return_if_fail (G_IS_SOCKET_CONNECTION (connection));

  f = g_new0 (Forward, 1);
  f->cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    {
      f->caller_cancellable = g_object_ref (cancellable);
      f->caller_handler = g_cancellable_connect (cancellable, G_CALLBACK (on_caller_cancelled), f, NULL);
    }
  f->task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (f->task, pm_forward_async);
  g_task_set_task_data (f->task, f, (GDestroyNotify) forward_free);
  f->stream = g_object_ref (stream);
  f->connection = g_object_ref (connection);
  f->up = (Direction){ f, g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                       g_io_stream_get_output_stream (G_IO_STREAM (stream)), FALSE,
                       g_malloc (FORWARD_BUFFER_LEN), 0, FALSE };
  f->down = (Direction){ f, g_io_stream_get_input_stream (G_IO_STREAM (stream)),
                         g_io_stream_get_output_stream (G_IO_STREAM (connection)), TRUE,
                         g_malloc (FORWARD_BUFFER_LEN), 0, FALSE };
  /* The task holds the state until both directions are done. */
  direction_read (&f->up);
  direction_read (&f->down);
}

gboolean
pm_forward_finish (GAsyncResult *result,
                   uint64_t     *to_stream,
                   uint64_t     *from_stream,
                   GError      **error)
{
  Forward *f;

  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  f = g_task_get_task_data (G_TASK (result));
  if (to_stream != NULL)
    *to_stream = f->up.bytes;
  if (from_stream != NULL)
    *from_stream = f->down.bytes;
  return g_task_propagate_boolean (G_TASK (result), error);
}
