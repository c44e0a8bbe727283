/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * pm_frame_parse() on arbitrary bytes. Accepted frames must be views inside
 * the buffer with the sizes of their type, and re-encode to the same header;
 * refused ones must say why in the PM_FRAME_ERROR domain.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-frame.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

static void
check_accepted (const uint8_t *data,
                size_t         size,
                const PmFrame *frame)
{
  uint8_t header[PM_RESPONSE_HEADER_LEN > PM_DATA_HEADER_LEN ? PM_RESPONSE_HEADER_LEN
                                                             : PM_DATA_HEADER_LEN];

  g_assert (pm_frame_is_pipermesh (data, size));
  g_assert ((uint8_t) frame->type == data[0]);
  g_assert (frame->header == data);
  g_assert (frame->body == data + frame->header_len);
  g_assert (frame->header_len + frame->body_len == size);
  g_assert (frame->body_len <= PM_MAX_NOISE_MESSAGE);

  switch (frame->type)
    {
    case PM_FRAME_HANDSHAKE_INIT:
      g_assert (size == PM_INIT_FRAME_LEN);
      g_assert (frame->header_len == PM_INIT_HEADER_LEN);
      g_assert (frame->body_len == PM_IK_MSG1_LEN);
      g_assert (frame->epoch == 0 && frame->receiver_index == 0 && frame->counter == 0);
      pm_frame_write_init_header (header, frame->sender_index);
      break;

    case PM_FRAME_HANDSHAKE_RESPONSE:
      g_assert (size == PM_RESPONSE_FRAME_LEN);
      g_assert (frame->header_len == PM_RESPONSE_HEADER_LEN);
      g_assert (frame->body_len == PM_IK_MSG2_LEN);
      g_assert (frame->epoch == 0 && frame->counter == 0);
      pm_frame_write_response_header (header, frame->sender_index, frame->receiver_index);
      break;

    case PM_FRAME_DATA:
      g_assert (size >= PM_DATA_FRAME_MIN_LEN && size <= PM_DATA_FRAME_MAX_LEN);
      g_assert (frame->header_len == PM_DATA_HEADER_LEN);
      g_assert (frame->body_len >= 16);
      g_assert (frame->sender_index == 0);
      pm_frame_write_data_header (header, frame->epoch, frame->receiver_index, frame->counter);
      break;

    default:
      g_error ("pm_frame_parse() accepted frame type 0x%02x", data[0]);
    }

  /* The fields are exactly what the header encodes. */
  g_assert (memcmp (header, data, frame->header_len) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr (GError) error = NULL;
  PmFrame frame;
  PmFrame untouched;

  memset (&frame, 0xa5, sizeof frame);
  untouched = frame;

  if (pm_frame_parse (data, size, &frame, &error))
    {
      g_assert (error == NULL);
      check_accepted (data, size, &frame);
    }
  else
    {
      g_assert (error != NULL);
      g_assert (error->domain == PM_FRAME_ERROR);
      g_assert (error->code >= PM_FRAME_ERROR_TRUNCATED && error->code <= PM_FRAME_ERROR_RESERVED);
      g_assert (error->message != NULL && error->message[0] != '\0');
      /* On failure the frame is left untouched. */
      g_assert (memcmp (&frame, &untouched, sizeof frame) == 0);
      if (error->code == PM_FRAME_ERROR_UNKNOWN_TYPE)
        g_assert (!pm_frame_is_pipermesh (data, size));
      else
        g_assert (size == 0 || pm_frame_is_pipermesh (data, size));
    }

  /* STUN (first two bits zero) is never ours. */
  if (size > 0 && data[0] < 0x40)
    g_assert (!pm_frame_is_pipermesh (data, size));

  return 0;
}
