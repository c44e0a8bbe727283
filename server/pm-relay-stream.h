/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Private to pm-relay.c: the two pollable stream wrappers a relayed WebSocket
 * runs over. libsoup 3.2's SoupWebsocketConnection has no API to pause
 * reading or to tell how much it still has to send, so the relay puts these
 * between libsoup and the socket:
 *
 *  - PmRelayInputStream can be paused: while paused it reports "would block"
 *    and its GSource does not fire, so libsoup stops reading and TCP flow
 *    control pushes back on the sender. It also follows the WebSocket frame
 *    headers going by (never the payload) and stops a data message longer
 *    than the limit — whole or assembled from fragments — before the complete
 *    header of the offending frame reaches libsoup (bytes of that header that
 *    came in earlier reads may already have been passed on; libsoup is left
 *    holding a header that never completes).
 *  - PmRelayOutputStream counts the payload bytes of data frames that really
 *    reached the socket, again by following the frame headers only.
 *
 * Both types live in this one file on purpose: they are two halves of one
 * private mechanism and neither is useful alone.
 */

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_TYPE_RELAY_INPUT_STREAM (pm_relay_input_stream_get_type ())
/* clang-format off */
G_DECLARE_FINAL_TYPE (PmRelayInputStream, pm_relay_input_stream,
                      PM, RELAY_INPUT_STREAM, GInputStream)
/* clang-format on */

#define PM_TYPE_RELAY_OUTPUT_STREAM (pm_relay_output_stream_get_type ())
/* clang-format off */
G_DECLARE_FINAL_TYPE (PmRelayOutputStream, pm_relay_output_stream,
                      PM, RELAY_OUTPUT_STREAM, GOutputStream)
/* clang-format on */

/* Called (at most once) from inside a read when a data message would be
 * longer than the limit. The stream is paused for good from then on. */
typedef void (*PmRelayTooBigFunc) (gpointer user_data);
/* Called from inside a write after data-frame payload bytes reached the socket. */
typedef void (*PmRelayWrittenFunc) (gpointer user_data);

PmRelayInputStream *pm_relay_input_stream_new (GInputStream *base,
                                               uint64_t      max_message_size);
void                pm_relay_input_stream_set_too_big_func (PmRelayInputStream *self,
                                                            PmRelayTooBigFunc   func,
                                                            gpointer            user_data);
void                pm_relay_input_stream_set_paused (PmRelayInputStream *self,
                                                      gboolean            paused);
gboolean            pm_relay_input_stream_get_paused (PmRelayInputStream *self);
/* Monotonic time of the last byte read, 0 if none. */
int64_t pm_relay_input_stream_get_last_read (PmRelayInputStream *self);

/* Closing the output stream closes @base_io (the whole connection). */
PmRelayOutputStream *pm_relay_output_stream_new (GIOStream *base_io);
void                 pm_relay_output_stream_set_written_func (PmRelayOutputStream *self,
                                                              PmRelayWrittenFunc   func,
                                                              gpointer             user_data);
/* Payload bytes of data frames (text, binary, continuation) written so far. */
uint64_t pm_relay_output_stream_get_data_written (PmRelayOutputStream *self);

G_END_DECLS
