/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The control messages of the stream layer (docs/PROTOCOL.md §8): a strict,
 * allocation-free parser and a writer. A control message travels as one SCTP
 * message with PPID PM_STREAM_PPID_CONTROL on the SCTP stream it controls, so
 * it is ordered with that stream's data (PPID PM_STREAM_PPID_DATA).
 */

#include <glib.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

/* SCTP payload protocol identifiers ("PMSC", "PMSD"), big-endian on the wire
 * as every SCTP field. */
#define PM_STREAM_PPID_CONTROL 0x504d5343u
#define PM_STREAM_PPID_DATA    0x504d5344u

/* Message layouts (little-endian integers, like the frames of §2). */
#define PM_STREAM_CONTROL_HEADER_LEN 2 /* type, reserved (zero) */
#define PM_STREAM_CONTROL_OPEN_MIN   (PM_STREAM_CONTROL_HEADER_LEN + 4 + 1)
#define PM_STREAM_CONTROL_ACCEPT_LEN (PM_STREAM_CONTROL_HEADER_LEN + 4)
#define PM_STREAM_CONTROL_CREDIT_LEN (PM_STREAM_CONTROL_HEADER_LEN + 8)
/* The longest message: a REFUSE or RESET with the longest reason. */
#define PM_STREAM_CONTROL_MAX_LEN (PM_STREAM_CONTROL_HEADER_LEN + PM_STREAM_MAX_REASON_LEN)
G_STATIC_ASSERT (PM_STREAM_CONTROL_MAX_LEN >=
                 PM_STREAM_CONTROL_HEADER_LEN + 4 + PM_STREAM_MAX_SERVICE_LEN);

#define PM_STREAM_CONTROL_ERROR (pm_stream_control_error_quark ())

typedef enum {
  PM_STREAM_CONTROL_ERROR_TRUNCATED,    /* shorter than its type needs */
  PM_STREAM_CONTROL_ERROR_TOO_LONG,     /* longer than its type allows */
  PM_STREAM_CONTROL_ERROR_UNKNOWN_TYPE, /* a type byte this version does not know */
  PM_STREAM_CONTROL_ERROR_RESERVED,     /* the reserved byte is not zero */
  PM_STREAM_CONTROL_ERROR_BAD_WINDOW,   /* a window outside [MIN_WINDOW, MAX_WINDOW] */
  PM_STREAM_CONTROL_ERROR_BAD_SERVICE,  /* a service name that is not 1-64 printable ASCII */
  PM_STREAM_CONTROL_ERROR_BAD_REASON,   /* a reason that is not UTF-8 without control characters */
} PmStreamControlError;

GQuark pm_stream_control_error_quark (void);

typedef enum {
  PM_STREAM_CONTROL_OPEN = 0x01,   /* window, service: open a stream */
  PM_STREAM_CONTROL_ACCEPT = 0x02, /* window: the stream is accepted */
  PM_STREAM_CONTROL_REFUSE = 0x03, /* reason: the stream is refused (final) */
  PM_STREAM_CONTROL_CREDIT = 0x04, /* limit: the sender may send up to this total */
  PM_STREAM_CONTROL_FIN = 0x05,    /* no more data in this direction */
  PM_STREAM_CONTROL_RESET = 0x06,  /* reason: the stream is aborted (final) */
  PM_STREAM_CONTROL_CLOSE = 0x07,  /* both FINs are through (final) */
} PmStreamControlType;

/* One parsed message. text is a view into the parsed bytes (not
 * NUL-terminated): the service of an OPEN, the reason of a REFUSE or RESET. */
typedef struct {
  PmStreamControlType type;
  uint32_t            window; /* OPEN, ACCEPT */
  uint64_t            limit;  /* CREDIT */
  const char         *text;   /* OPEN, REFUSE, RESET */
  size_t              text_len;
} PmStreamControl;

gboolean pm_stream_control_parse (const uint8_t   *data,
                                  size_t           len,
                                  PmStreamControl *msg,
                                  GError         **error);
size_t   pm_stream_control_write (const PmStreamControl *msg,
                                  uint8_t               *out,
                                  size_t                 out_len);

gboolean    pm_stream_control_is_final (PmStreamControlType type);
const char *pm_stream_control_type_name (PmStreamControlType type);
gboolean    pm_stream_service_is_valid (const char *service,
                                        size_t      len);
gboolean    pm_stream_reason_is_valid (const char *reason,
                                       size_t      len);
size_t      pm_stream_reason_clamp (const char *reason);

G_END_DECLS
