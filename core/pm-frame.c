/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-frame"

#include "pm-frame.h"

#include <string.h>

G_DEFINE_QUARK (pm-frame-error-quark, pm_frame_error)

static inline uint32_t
read_le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static inline uint64_t
read_le64 (const uint8_t *p)
{
  return (uint64_t) read_le32 (p) | (uint64_t) read_le32 (p + 4) << 32;
}

static inline void
write_le32 (uint8_t *p,
            uint32_t v)
{
  p[0] = (uint8_t) v;
  p[1] = (uint8_t) (v >> 8);
  p[2] = (uint8_t) (v >> 16);
  p[3] = (uint8_t) (v >> 24);
}

static inline void
write_le64 (uint8_t *p,
            uint64_t v)
{
  write_le32 (p, (uint32_t) v);
  write_le32 (p + 4, (uint32_t) (v >> 32));
}

static const char *
type_name (PmFrameType type)
{
  switch (type)
    {
    case PM_FRAME_HANDSHAKE_INIT:
      return "handshake initiation";
    case PM_FRAME_HANDSHAKE_RESPONSE:
      return "handshake response";
    case PM_FRAME_DATA:
    default:
      return "data";
    }
}

/* Checks a fixed-size or bounded frame's length. */
static gboolean
check_length (PmFrameType type,
              size_t      len,
              size_t      min,
              size_t      max,
              GError    **error)
{
  if (len < min)
    {
      g_set_error (error, PM_FRAME_ERROR, PM_FRAME_ERROR_TRUNCATED,
                   "Truncated %s frame: %zu bytes, at least %zu needed", type_name (type), len, min);
      return FALSE;
    }
  if (len > max)
    {
      g_set_error (error, PM_FRAME_ERROR, PM_FRAME_ERROR_TOO_LARGE,
                   "Oversized %s frame: %zu bytes, at most %zu allowed", type_name (type), len, max);
      return FALSE;
    }
  return TRUE;
}

/**
 * pm_frame_parse:
 * Parses one datagram. On failure @frame is left untouched and @error says
 * what was wrong; nothing is decrypted here.
 */
gboolean
pm_frame_parse (const uint8_t *data,
                size_t         len,
                PmFrame       *frame,
                GError       **error)
{
  PmFrame f = { 0 };

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (frame != NULL, FALSE);

  if (len == 0)
    {
      g_set_error_literal (error, PM_FRAME_ERROR, PM_FRAME_ERROR_TRUNCATED, "Empty frame");
      return FALSE;
    }

  f.type = (PmFrameType) data[0];
  f.header = data;
  switch (data[0])
    {
    case PM_FRAME_HANDSHAKE_INIT:
      if (!check_length (f.type, len, PM_INIT_FRAME_LEN, PM_INIT_FRAME_LEN, error))
        return FALSE;
      if (data[1] != 0 || data[2] != 0 || data[3] != 0)
        goto reserved;
      f.sender_index = read_le32 (data + 4);
      f.header_len = PM_INIT_HEADER_LEN;
      break;

    case PM_FRAME_HANDSHAKE_RESPONSE:
      if (!check_length (f.type, len, PM_RESPONSE_FRAME_LEN, PM_RESPONSE_FRAME_LEN, error))
        return FALSE;
      if (data[1] != 0 || data[2] != 0 || data[3] != 0)
        goto reserved;
      f.sender_index = read_le32 (data + 4);
      f.receiver_index = read_le32 (data + 8);
      f.header_len = PM_RESPONSE_HEADER_LEN;
      break;

    case PM_FRAME_DATA:
      if (!check_length (f.type, len, PM_DATA_FRAME_MIN_LEN, PM_DATA_FRAME_MAX_LEN, error))
        return FALSE;
      if (data[2] != 0 || data[3] != 0)
        goto reserved;
      f.epoch = data[1];
      f.receiver_index = read_le32 (data + 4);
      f.counter = read_le64 (data + 8);
      f.header_len = PM_DATA_HEADER_LEN;
      break;

    default:
      g_set_error (error, PM_FRAME_ERROR, PM_FRAME_ERROR_UNKNOWN_TYPE,
                   "Unknown frame type 0x%02x", data[0]);
      return FALSE;
    }

  f.body = data + f.header_len;
  f.body_len = len - f.header_len;
  *frame = f;
  return TRUE;

reserved:
  g_set_error (error, PM_FRAME_ERROR, PM_FRAME_ERROR_RESERVED,
               "Reserved bytes of a %s frame are not zero", type_name (f.type));
  return FALSE;
}

/* Is this datagram ours (as opposed to STUN on the same socket)? */
gboolean
pm_frame_is_pipermesh (const uint8_t *data,
                       size_t         len)
{
  return len > 0 && data[0] >= PM_FRAME_HANDSHAKE_INIT && data[0] <= PM_FRAME_DATA;
}

void
pm_frame_write_init_header (uint8_t  out[PM_INIT_HEADER_LEN],
                            uint32_t sender_index)
{
  out[0] = PM_FRAME_HANDSHAKE_INIT;
  out[1] = out[2] = out[3] = 0;
  write_le32 (out + 4, sender_index);
}

void
pm_frame_write_response_header (uint8_t  out[PM_RESPONSE_HEADER_LEN],
                                uint32_t sender_index,
                                uint32_t receiver_index)
{
  out[0] = PM_FRAME_HANDSHAKE_RESPONSE;
  out[1] = out[2] = out[3] = 0;
  write_le32 (out + 4, sender_index);
  write_le32 (out + 8, receiver_index);
}

void
pm_frame_write_data_header (uint8_t  out[PM_DATA_HEADER_LEN],
                            uint8_t  epoch,
                            uint32_t receiver_index,
                            uint64_t counter)
{
  out[0] = PM_FRAME_DATA;
  out[1] = epoch;
  out[2] = out[3] = 0;
  write_le32 (out + 4, receiver_index);
  write_le64 (out + 8, counter);
}
