/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The stream multiplexer's state machine (core/pm-stream-mux.c) against any
 * sequence of messages from its peer, interleaved with any sequence of calls
 * by its application: every stream id's close handshake, credit, half-closes,
 * resets, refusals, deferred decisions, cancelled opens and dropped streams.
 * Any protocol violation must end in a clean failure of the association; no
 * sequence may crash, leak, or trip an assertion or a g_return_if_fail().
 *
 * Multiplexer B is under test. A exists only to bring the association up;
 * after that nothing B sends reaches A (A would find B's answers to made-up
 * messages unexpected and abort). Messages "from A" are injected into B as if
 * SCTP had delivered them (pm_stream_mux_inject_message()).
 *
 * Input: records until the input ends; each is an op byte, then its
 * arguments (missing bytes read as zero). op % 8:
 *
 *   0 CONTROL  sid, len (1 byte), len bytes: a CONTROL message
 *   1 DATA     sid, len (2 bytes, little-endian, at most 8192), len bytes
 *              (then zeros): a DATA message
 *   2 DECIDE   how: the oldest undecided incoming stream is accepted
 *              (how % 3 == 0), refused (1) or left undecided (2)
 *   3 READ     stream, count (2 bytes): a non-blocking read
 *   4 WRITE    stream, count (2 bytes): a non-blocking write
 *   5 CLOSE    stream, how: how % 6 closes the output (0), the input (1),
 *              both (2), resets the stream (3), drops the test's reference
 *              (4), or cancels the stream's open if it is still pending (5)
 *   6 OPEN     service byte: B opens a stream ("s" + the byte in hex)
 *   7 SPIN     n: up to n % 8 + 1 non-blocking main-loop iterations
 *
 * sid is one byte taken modulo 20: B has 16 stream ids (odd ones its own),
 * so a few are out of range. "stream" indexes the streams the test holds,
 * modulo their number. Windows are small (4 KiB, growing to 16 KiB) so that
 * credit runs out.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-stream-control.h"
#include "pm-stream-private.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_STREAMS 16

static PmStreamMux *keeper;  /* keeps usrsctp up between inputs */
static gboolean     verbose; /* PM_FUZZ_VERBOSE=1: one line per op, to read a seed */

static void
drop_output (const uint8_t *packet,
             size_t         len,
             gpointer       user_data)
{
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  verbose = g_getenv ("PM_FUZZ_VERBOSE") != NULL;
  keeper = pm_stream_mux_new (TRUE, drop_output, NULL, NULL, NULL);
  return 0;
}

typedef struct {
  GQueue       queue[2]; /* GBytes; [0]: a → b */
  gboolean     b_muted;  /* B → A dropped */
  PmStreamMux *mux[2];
  GPtrArray   *streams;   /* PmStream the test holds */
  GPtrArray   *undecided; /* incoming PmStream, not decided yet */
  GPtrArray   *opens;     /* OpenCall */
} World;

typedef struct {
  World        *world;
  GCancellable *cancellable;
  gboolean      done;
} OpenCall;

static void
output_a (const uint8_t *packet,
          size_t         len,
          gpointer       user_data)
{
  World *w = user_data;

  g_queue_push_tail (&w->queue[0], g_bytes_new (packet, len));
}

static void
output_b (const uint8_t *packet,
          size_t         len,
          gpointer       user_data)
{
  World *w = user_data;

  if (!w->b_muted)
    g_queue_push_tail (&w->queue[1], g_bytes_new (packet, len));
}

static void
pump (World *w)
{
  for (unsigned n = 0; n < 64; n++)
    {
      gboolean any = FALSE;

      for (unsigned d = 0; d < 2; d++)
        {
          g_autoptr (GBytes) packet = g_queue_pop_head (&w->queue[d]);

          if (packet == NULL)
            continue;
          any = TRUE;
          pm_stream_mux_input (w->mux[1 - d], g_bytes_get_data (packet, NULL),
                               g_bytes_get_size (packet));
        }
      if (!any)
        break;
    }
}

static void
on_stream_requested (PmStreamMux *mux,
                     PmStream    *stream,
                     const char  *service,
                     gpointer     user_data)
{
  World *w = user_data;

  g_assert (mux == w->mux[1]);
  g_assert (pm_stream_is_incoming (stream));
  g_assert (pm_stream_service_is_valid (service, strlen (service)));
  if (w->undecided->len >= MAX_STREAMS)
    return; /* neither decided nor kept: refused */
  g_ptr_array_add (w->undecided, g_object_ref (stream));
}

static void
on_opened (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  OpenCall *call = user_data;
  g_autoptr (GError) error = NULL;
  PmStream *stream = pm_stream_mux_open_finish (PM_STREAM_MUX (source), result, &error);

  g_assert ((stream == NULL) == (error != NULL));
  if (stream != NULL)
    {
      g_assert (!pm_stream_is_incoming (stream));
      g_assert (pm_stream_get_id (stream) % 2 == 1);
      if (call->world != NULL && call->world->streams->len < MAX_STREAMS)
        g_ptr_array_add (call->world->streams, stream);
      else
        g_object_unref (stream);
    }
  call->done = TRUE;
}

static void
open_call_free (OpenCall *call)
{
  g_clear_object (&call->cancellable);
  g_free (call);
}

/* Reads the record's next bytes (zeros past the end). */
typedef struct {
  const uint8_t *p;
  size_t         left;
} Reader;

static unsigned
take8 (Reader *r)
{
  if (r->left == 0)
    return 0;
  r->left--;
  return *r->p++;
}

static unsigned
take16 (Reader *r)
{
  unsigned lo = take8 (r);

  return lo | (take8 (r) << 8);
}

/* (MIN() would evaluate take16() twice.) */
static unsigned
take_count (Reader *r,
            size_t  max)
{
  unsigned n = take16 (r);

  return (unsigned) MIN (n, max);
}

static const uint8_t *
take_bytes (Reader  *r,
            size_t   len,
            uint8_t *scratch)
{
  size_t have = MIN (len, r->left);

  memset (scratch, 0, len);
  memcpy (scratch, r->p, have);
  r->p += have;
  r->left -= have;
  return scratch;
}

static PmStream *
pick (World   *w,
      unsigned index)
{
  if (w->streams->len == 0)
    return NULL;
  return g_ptr_array_index (w->streams, index % w->streams->len);
}

static void
run_op (World  *w,
        Reader *r)
{
  static uint8_t scratch[8192];
  unsigned       op = take8 (r) % 8;
  PmStream      *s;
  g_autoptr (GError) error = NULL;

  switch (op)
    {
      case 0: {
        unsigned sid = take8 (r) % 20;
        unsigned len = take8 (r);

        pm_stream_mux_inject_message (w->mux[1], sid, PM_STREAM_PPID_CONTROL,
                                      take_bytes (r, len, scratch), len);
      }
      break;

      case 1: {
        unsigned sid = take8 (r) % 20;
        unsigned len = take_count (r, sizeof scratch);

        if (len > 0)
          pm_stream_mux_inject_message (w->mux[1], sid, PM_STREAM_PPID_DATA,
                                        take_bytes (r, len, scratch), len);
      }
      break;

      case 2: {
        unsigned  how = take8 (r) % 3;
        PmStream *in;

        if (w->undecided->len == 0 || how == 2)
          break;
        in = g_ptr_array_steal_index (w->undecided, 0);
        if (how == 0)
          pm_stream_accept (in);
        else
          pm_stream_refuse (in, "not today");
        if (w->streams->len < MAX_STREAMS)
          g_ptr_array_add (w->streams, in);
        else
          g_object_unref (in);
      }
      break;

    case 3:
      s = pick (w, take8 (r));
      {
        unsigned count = take_count (r, sizeof scratch);
        gssize   n;

        if (s == NULL)
          break;
        n = g_pollable_input_stream_read_nonblocking (
          G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (G_IO_STREAM (s))), scratch,
          count, NULL, &error);
        g_assert (n <= (gssize) count);
        g_assert ((n < 0) == (error != NULL));
      }
      break;

    case 4:
      s = pick (w, take8 (r));
      {
        unsigned count = take_count (r, sizeof scratch);
        gssize   n;

        if (s == NULL)
          break;
        memset (scratch, 'w', count);
        n = g_pollable_output_stream_write_nonblocking (
          G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (G_IO_STREAM (s))), scratch,
          count, NULL, &error);
        g_assert (n <= (gssize) count);
        g_assert ((n < 0) == (error != NULL));
        g_assert (count == 0 || n != 0);
      }
      break;

      case 5: {
        unsigned index = take8 (r);
        unsigned how = take8 (r) % 6;

        if (how == 5)
          {
            if (w->opens->len > 0)
              {
                OpenCall *call = g_ptr_array_index (w->opens, index % w->opens->len);

                g_cancellable_cancel (call->cancellable);
              }
            break;
          }
        s = pick (w, index);
        if (s == NULL)
          break;
        switch (how)
          {
          case 0:
            g_output_stream_close (g_io_stream_get_output_stream (G_IO_STREAM (s)), NULL, NULL);
            break;
          case 1:
            g_input_stream_close (g_io_stream_get_input_stream (G_IO_STREAM (s)), NULL, NULL);
            break;
          case 2:
            g_io_stream_close (G_IO_STREAM (s), NULL, NULL);
            break;
          case 3:
            pm_stream_reset (s, "fuzz");
            break;
          case 4:
            g_ptr_array_remove_index (w->streams, index % w->streams->len);
            break;
          }
      }
      break;

      case 6: {
        OpenCall        *call = g_new0 (OpenCall, 1);
        g_autofree char *service = g_strdup_printf ("s%02x", take8 (r));

        call->world = w;
        call->cancellable = g_cancellable_new ();
        g_ptr_array_add (w->opens, call);
        pm_stream_mux_open_async (w->mux[1], service, call->cancellable, on_opened, call);
      }
      break;

      case 7: {
        unsigned n = take8 (r) % 8 + 1;

        for (unsigned i = 0; i < n; i++)
          g_main_context_iteration (NULL, FALSE);
      }
      break;

    default:
      g_assert_not_reached ();
    }
}

static gboolean
opens_done (World *w)
{
  for (unsigned i = 0; i < w->opens->len; i++)
    if (!((OpenCall *) g_ptr_array_index (w->opens, i))->done)
      return FALSE;
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  PmStreamMuxLimits limits;
  PmStreamMuxStats  stats;
  World             w = { 0 };
  Reader            r = { data, size };

  pm_stream_mux_limits_default (&limits);
  limits.max_streams = 16;
  limits.window = 4096;
  limits.window_max = 16384;
  limits.max_message = 4096;
  g_queue_init (&w.queue[0]);
  g_queue_init (&w.queue[1]);
  w.streams = g_ptr_array_new_with_free_func (g_object_unref);
  w.undecided = g_ptr_array_new_with_free_func (g_object_unref);
  w.opens = g_ptr_array_new_with_free_func ((GDestroyNotify) open_call_free);
  w.mux[0] = pm_stream_mux_new (TRUE, output_a, &w, NULL, &limits);
  w.mux[1] = pm_stream_mux_new (FALSE, output_b, &w, NULL, &limits);
  g_signal_connect (w.mux[1], "stream-requested", G_CALLBACK (on_stream_requested), &w);
  pm_stream_mux_start (w.mux[0]);
  pm_stream_mux_start (w.mux[1]);
  pump (&w);
  g_assert (pm_stream_mux_get_state (w.mux[1]) == PM_STREAM_MUX_STATE_CONNECTED);
  w.b_muted = TRUE;

  while (r.left > 0)
    {
      unsigned op = r.p[0] % 8;

      run_op (&w, &r);
      pm_stream_mux_get_stats (w.mux[1], &stats);
      if (verbose)
        g_printerr ("op %u: state %d, %u ids in use, %u streams held, %u undecided%s%s\n", op,
                    pm_stream_mux_get_state (w.mux[1]), stats.streams_open, w.streams->len,
                    w.undecided->len, pm_stream_mux_get_error (w.mux[1]) ? ": " : "",
                    pm_stream_mux_get_error (w.mux[1]) ? pm_stream_mux_get_error (w.mux[1])->message
                                                       : "");
      g_assert (stats.streams_open <= 16);
      if (pm_stream_mux_get_state (w.mux[1]) == PM_STREAM_MUX_STATE_CLOSED)
        g_assert (stats.streams_open == 0 && pm_stream_mux_get_error (w.mux[1]) != NULL);
    }

  /* The end: every pending open must complete once B is closed. */
  pm_stream_mux_close (w.mux[1]);
  pm_stream_mux_close (w.mux[0]);
  for (unsigned i = 0; i < 16 && !opens_done (&w); i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert (opens_done (&w));
  for (unsigned i = 0; i < w.opens->len; i++)
    ((OpenCall *) g_ptr_array_index (w.opens, i))->world = NULL;
  g_ptr_array_unref (w.streams);
  g_ptr_array_unref (w.undecided);
  g_ptr_array_unref (w.opens);
  g_object_unref (w.mux[0]);
  g_object_unref (w.mux[1]);
  for (unsigned d = 0; d < 2; d++)
    g_queue_clear_full (&w.queue[d], (GDestroyNotify) g_bytes_unref);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  return 0;
}
