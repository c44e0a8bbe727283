/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmStream: one reliable, ordered, flow-controlled byte stream inside a
 * PmStreamMux (docs/PROTOCOL.md §8), as a GIOStream.
 *
 * Its input and output streams are non-blocking and pollable
 * (GPollableInputStream, GPollableOutputStream), so every asynchronous GIO
 * call works on the main context without threads, g_io_stream_splice_async()
 * included. The synchronous read and write calls never block: when no data or
 * no credit is there they fail with G_IO_ERROR_WOULD_BLOCK (use the async or
 * pollable API). Like every stream layer object, a PmStream belongs to the
 * thread and main context its multiplexer runs on.
 *
 * Closing the output stream sends FIN: the peer reads the end of the stream
 * once it has read everything before it (a half-close; the other direction
 * goes on). Closing the whole stream (or dropping the last reference) closes
 * both; if data the application never read is then still buffered, or more
 * arrives, the stream is reset (RESET), as a TCP socket would. Failures are
 * PM_STREAM_ERROR errors: PM_STREAM_ERROR_RESET (the peer reset it, with its
 * reason), PM_STREAM_ERROR_CLOSED (the multiplexer was closed),
 * PM_STREAM_ERROR_CONNECTION_LOST, PM_STREAM_ERROR_PROTOCOL. Data received
 * before a failure can still be read; then reads fail.
 */

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_STREAM_ERROR (pm_stream_error_quark ())

/* Cancelled operations report G_IO_ERROR_CANCELLED, as GIO does. */
typedef enum {
  PM_STREAM_ERROR_REFUSED,          /* the peer refused the stream; the message is its reason */
  PM_STREAM_ERROR_RESET,            /* the peer reset the stream */
  PM_STREAM_ERROR_ABORTED,          /* this end reset the stream (pm_stream_reset()) */
  PM_STREAM_ERROR_CLOSED,           /* the multiplexer was closed on this end */
  PM_STREAM_ERROR_CONNECTION_LOST,  /* the association failed, or the peer aborted it */
  PM_STREAM_ERROR_PROTOCOL,         /* the peer broke the stream protocol */
  PM_STREAM_ERROR_TOO_MANY_STREAMS, /* every stream id of this end is in use */
  PM_STREAM_ERROR_INVALID_SERVICE,  /* not a valid service name (printable ASCII, 1-64 bytes) */
} PmStreamError;

GQuark pm_stream_error_quark (void);

#define PM_TYPE_STREAM (pm_stream_get_type ())
G_DECLARE_FINAL_TYPE (PmStream, pm_stream, PM, STREAM, GIOStream)

unsigned    pm_stream_get_id (PmStream *self);
const char *pm_stream_get_service (PmStream *self);
gboolean    pm_stream_is_incoming (PmStream *self);

void pm_stream_accept (PmStream *self);
void pm_stream_refuse (PmStream   *self,
                       const char *reason);
void pm_stream_reset (PmStream   *self,
                      const char *reason);

/* Payload bytes of this stream so far. */
uint64_t pm_stream_get_bytes_sent (PmStream *self);
uint64_t pm_stream_get_bytes_received (PmStream *self);

G_END_DECLS
