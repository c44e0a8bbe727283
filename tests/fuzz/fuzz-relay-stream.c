/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The relay's WebSocket frame-header scanners (server/pm-relay-stream.c) on
 * arbitrary client bytes, over in-memory streams (no sockets):
 *
 *  - PmRelayInputStream over a GMemoryInputStream, read non-blocking in
 *    chunks whose sizes come from the input, sometimes paused. What it hands
 *    on must be a prefix of the input: all of it, or everything before the
 *    header of the first frame that makes a data message longer than the
 *    limit plus at most the part of that header that went by in earlier reads
 *    (never the whole header). It then refuses with G_IO_ERROR_WOULD_BLOCK,
 *    stays paused for good, and calls its too-big function exactly once.
 *  - PmRelayOutputStream over a GMemoryOutputStream, written in chunks: it
 *    passes every byte through and counts exactly the data-frame payload
 *    bytes of what it wrote.
 *
 * Both are checked against a plain model of RFC 6455 §5.2 framing below.
 *
 * Input: a 6-byte preamble, then the stream.
 *
 *   limit (1) | flags (1) | chunk sizes (4)
 *
 * limit & 0x80 selects the relay's real limit (PM_RELAY_MAX_MESSAGE_SIZE),
 * otherwise the limit is limit & 0x7f bytes (0 to 127). flags & 1 pauses the
 * input stream before every third read (and resumes it after checking that
 * the read blocked). Read or write i asks for chunk[i % 4] + 1 bytes, or
 * 70000 (more than the read-ahead) for 0xff.
 */

#include <gio/gio.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-relay-stream.h"
#include "pm-relay.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define PREAMBLE_LEN 6
#define FLAG_PAUSE   0x01
#define CHUNK_BIG    70000
#define SCRATCH_LEN  (CHUNK_BIG + 16)
#define GUARD_BYTE   0xa5

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

/* --- The model ---------------------------------------------------------------
 * Walks whole frames. *cut is the offset of the header of the first data
 * frame that makes a message longer than @max (or @size if none), *cut_header_len
 * that header's length (0 if none); *data_bytes
 * counts the data-frame payload bytes before it, including those of a
 * truncated last frame. */
static void
model_scan (const uint8_t *p,
            size_t         size,
            uint64_t       max,
            size_t        *cut,
            size_t        *cut_header_len,
            uint64_t      *data_bytes)
{
  size_t   pos = 0;
  uint64_t message = 0;

  *cut = size;
  *cut_header_len = 0;
  *data_bytes = 0;
  while (size - pos >= 2)
    {
      unsigned opcode = p[pos] & 0x0f;
      unsigned len7 = p[pos + 1] & 0x7f;
      size_t   need = 2 + ((p[pos + 1] & 0x80) ? 4 : 0);
      size_t   ext = len7 == 126 ? 2 : len7 == 127 ? 8
                                                   : 0;
      uint64_t len = len7;
      uint64_t avail;

      need += ext;
      if (size - pos < need)
        return;
      if (ext > 0)
        {
          len = 0;
          for (size_t i = 0; i < ext; i++)
            len = len << 8 | p[pos + 2 + i];
        }
      if (opcode < 8)
        {
          uint64_t total = opcode != 0 ? len : message + len;

          if (len > max || total > max)
            {
              *cut = pos;
              *cut_header_len = need;
              return;
            }
          message = total;
        }
      avail = size - pos - need;
      if (opcode < 8)
        *data_bytes += MIN (len, avail);
      if (len >= avail)
        return;
      pos += need + (size_t) len;
    }
}

static size_t
chunk_size (const uint8_t *preamble,
            unsigned       i)
{
  uint8_t c = preamble[2 + i % 4];

  return c == 0xff ? CHUNK_BIG : (size_t) c + 1;
}

/* --- The input stream -------------------------------------------------------- */

static void
count_call (gpointer user_data)
{
  unsigned *calls = user_data;

  (*calls)++;
}

static void
check_input (const uint8_t *preamble,
             const uint8_t *p,
             size_t         size,
             uint8_t       *scratch)
{
  uint64_t max = (preamble[0] & 0x80) ? PM_RELAY_MAX_MESSAGE_SIZE : (uint64_t) (preamble[0] & 0x7f);
  gboolean pause = (preamble[1] & FLAG_PAUSE) != 0;
  g_autoptr (GInputStream) base = NULL;
  g_autoptr (PmRelayInputStream) relay = NULL;
  GPollableInputStream *pollable;
  size_t                cut, cut_header_len, got = 0;
  uint64_t              data_bytes;
  unsigned              too_big_calls = 0;
  gboolean              refused = FALSE;
  /* Every read hands on at least one byte, or blocks once while paused, or
   * ends the loop: this bounds it. */
  unsigned limit = 2 * (unsigned) size + 8;
  unsigned i;

  model_scan (p, size, max, &cut, &cut_header_len, &data_bytes);

  base = g_memory_input_stream_new_from_data (p, (gssize) size, NULL);
  relay = pm_relay_input_stream_new (base, max);
  g_assert (relay != NULL);
  pollable = G_POLLABLE_INPUT_STREAM (relay);
  pm_relay_input_stream_set_too_big_func (relay, count_call, &too_big_calls);
  g_assert (g_pollable_input_stream_can_poll (pollable));
  g_assert (pm_relay_input_stream_get_last_read (relay) == 0);

  for (i = 0;; i++)
    {
      g_autoptr (GError) error = NULL;
      size_t count = chunk_size (preamble, i);
      gssize n;

      g_assert (i < limit);
      g_assert (count <= SCRATCH_LEN);

      if (pause && i % 3 == 0)
        {
          pm_relay_input_stream_set_paused (relay, TRUE);
          g_assert (pm_relay_input_stream_get_paused (relay));
          g_assert (!g_pollable_input_stream_is_readable (pollable));
          n = g_pollable_input_stream_read_nonblocking (pollable, scratch, count, NULL, &error);
          g_assert (n == -1);
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
          g_clear_error (&error);
          pm_relay_input_stream_set_paused (relay, FALSE);
        }

      memset (scratch, GUARD_BYTE, count + 1);
      n = g_pollable_input_stream_read_nonblocking (pollable, scratch, count, NULL, &error);
      if (n < 0)
        {
          /* Only ever the refusal of a message that is too long. */
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
          g_assert (pm_relay_input_stream_get_paused (relay));
          refused = TRUE;
          break;
        }
      g_assert (error == NULL);
      /* Never more than asked for, nor written past it. */
      g_assert ((size_t) n <= count);
      g_assert (scratch[count] == GUARD_BYTE);
      if (n == 0)
        break;
      /* Exactly the next bytes of the input. */
      g_assert (got + (size_t) n <= size);
      g_assert (memcmp (scratch, p + got, (size_t) n) == 0);
      got += (size_t) n;
      g_assert (pm_relay_input_stream_get_last_read (relay) > 0);
    }

  /* Everything before the offending header is handed on, never all of it
   * and nothing after it. */
  g_assert (got >= cut);
  g_assert (got == cut || got < cut + cut_header_len);
  if (cut < size)
    {
      g_assert (refused);
      g_assert (too_big_calls == 1);
      g_assert (pm_relay_input_stream_get_paused (relay));
      g_assert (!g_pollable_input_stream_is_readable (pollable));

      /* Paused for good: resuming does not let anything through. */
      pm_relay_input_stream_set_paused (relay, TRUE);
      pm_relay_input_stream_set_paused (relay, FALSE);
      g_assert (pm_relay_input_stream_get_paused (relay));
      {
        g_autoptr (GError) error = NULL;
        gssize n = g_pollable_input_stream_read_nonblocking (pollable, scratch, 1, NULL, &error);

        g_assert (n == -1);
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      }
      g_assert (too_big_calls == 1);
    }
  else
    {
      g_assert (!refused);
      g_assert (too_big_calls == 0);
      g_assert (!pm_relay_input_stream_get_paused (relay));
    }
}

/* --- The output stream ------------------------------------------------------- */

static void
check_output (const uint8_t *preamble,
              const uint8_t *p,
              size_t         size)
{
  g_autoptr (GInputStream) in = g_memory_input_stream_new ();
  g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();
  g_autoptr (GIOStream) io = g_simple_io_stream_new (in, out);
  g_autoptr (PmRelayOutputStream) relay = NULL;
  g_autoptr (GError) error = NULL;
  GMemoryOutputStream *mem = G_MEMORY_OUTPUT_STREAM (out);
  size_t               cut, cut_header_len, put = 0;
  uint64_t             data_bytes;
  unsigned             written_calls = 0;
  unsigned             i;

  model_scan (p, size, G_MAXUINT64, &cut, &cut_header_len, &data_bytes);
  g_assert (cut == size && cut_header_len == 0);

  relay = pm_relay_output_stream_new (io);
  g_assert (relay != NULL);
  pm_relay_output_stream_set_written_func (relay, count_call, &written_calls);

  for (i = 0; put < size; i++)
    {
      size_t   count = MIN (chunk_size (preamble, i), size - put);
      uint64_t before = pm_relay_output_stream_get_data_written (relay), after;
      unsigned calls = written_calls;
      gssize   n;

      g_assert (i <= size);
      /* Alternate the pollable and the blocking path: both count. */
      if (i % 2 == 0)
        n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (relay),
                                                        p + put, count, NULL, &error);
      else
        n = g_output_stream_write (G_OUTPUT_STREAM (relay), p + put, count, NULL, &error);
      g_assert_no_error (error);
      g_assert (n > 0 && (size_t) n <= count);
      put += (size_t) n;
      /* Called after a write iff it carried data payload. */
      after = pm_relay_output_stream_get_data_written (relay);
      g_assert (after >= before);
      g_assert ((after > before) == (written_calls == calls + 1));
      g_assert (written_calls <= calls + 1);
    }

  g_assert (pm_relay_output_stream_get_data_written (relay) == data_bytes);
  g_assert (g_memory_output_stream_get_data_size (mem) == size);
  if (size > 0)
    g_assert (memcmp (g_memory_output_stream_get_data (mem), p, size) == 0);
  g_assert (g_output_stream_close (G_OUTPUT_STREAM (relay), NULL, &error));
  g_assert_no_error (error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static uint8_t scratch[SCRATCH_LEN + 1];

  if (size < PREAMBLE_LEN)
    return 0;
  check_input (data, data + PREAMBLE_LEN, size - PREAMBLE_LEN, scratch);
  check_output (data, data + PREAMBLE_LEN, size - PREAMBLE_LEN);
  return 0;
}
