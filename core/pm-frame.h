/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-limits.h"

G_BEGIN_DECLS

#define PM_FRAME_ERROR (pm_frame_error_quark ())

typedef enum {
  PM_FRAME_ERROR_TRUNCATED,    /* shorter than its type needs */
  PM_FRAME_ERROR_TOO_LARGE,    /* longer than its type allows */
  PM_FRAME_ERROR_UNKNOWN_TYPE, /* first byte is not a PiperMesh frame type */
  PM_FRAME_ERROR_RESERVED,     /* a reserved field is not zero */
} PmFrameError;

GQuark pm_frame_error_quark (void);

/* Frame types: the high bit is set so that one UDP socket can tell them from
 * STUN (whose first two bits are zero). See docs/PROTOCOL.md. */
typedef enum {
  PM_FRAME_HANDSHAKE_INIT = 0x81,
  PM_FRAME_HANDSHAKE_RESPONSE = 0x82,
  PM_FRAME_DATA = 0x83,
} PmFrameType;

/* Sizes of the IK handshake frames: header + Noise message. The initiation's
 * payload is a 12-byte TAI64N timestamp; the response's payload is empty. */
#define PM_IK_TIMESTAMP_LEN    12
#define PM_INIT_HEADER_LEN     8
#define PM_IK_MSG1_LEN         (32 + 32 + 16 + PM_IK_TIMESTAMP_LEN + 16)
#define PM_INIT_FRAME_LEN      (PM_INIT_HEADER_LEN + PM_IK_MSG1_LEN)
#define PM_RESPONSE_HEADER_LEN 12
#define PM_IK_MSG2_LEN         (32 + 16)
#define PM_RESPONSE_FRAME_LEN  (PM_RESPONSE_HEADER_LEN + PM_IK_MSG2_LEN)
#define PM_DATA_FRAME_MIN_LEN  (PM_DATA_HEADER_LEN + 16)
#define PM_DATA_FRAME_MAX_LEN  (PM_DATA_HEADER_LEN + PM_MAX_NOISE_MESSAGE)

/* A parsed frame: views into the caller's buffer, nothing copied. */
typedef struct {
  PmFrameType    type;
  uint8_t        epoch;          /* data */
  uint32_t       sender_index;   /* initiation, response */
  uint32_t       receiver_index; /* response, data */
  uint64_t       counter;        /* data */
  const uint8_t *header;         /* the whole header: associated data of a data frame */
  size_t         header_len;
  const uint8_t *body; /* the Noise message or ciphertext */
  size_t         body_len;
} PmFrame;

gboolean pm_frame_parse (const uint8_t *data,
                         size_t         len,
                         PmFrame       *frame,
                         GError       **error);
gboolean pm_frame_is_pipermesh (const uint8_t *data,
                                size_t         len);
void     pm_frame_write_init_header (uint8_t  out[PM_INIT_HEADER_LEN],
                                     uint32_t sender_index);
void     pm_frame_write_response_header (uint8_t  out[PM_RESPONSE_HEADER_LEN],
                                         uint32_t sender_index,
                                         uint32_t receiver_index);
void     pm_frame_write_data_header (uint8_t  out[PM_DATA_HEADER_LEN],
                                     uint8_t  epoch,
                                     uint32_t receiver_index,
                                     uint64_t counter);

G_END_DECLS
