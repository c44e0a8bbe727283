/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * What PmStream and PmStreamMux share. The stream holds the application's
 * side (buffers, counters, what the application asked for); the multiplexer
 * holds the wire (the stream id's slot, control messages, SCTP) and reads and
 * writes these fields directly.
 */

#include "pm-stream-mux.h"
#include "pm-stream.h"

G_BEGIN_DECLS

typedef enum {
  PM_STREAM_PHASE_OPENING, /* opened here; waiting for ACCEPT or REFUSE */
  PM_STREAM_PHASE_PENDING, /* opened by the peer; waiting for accept or refuse here */
  PM_STREAM_PHASE_OPEN,    /* accepted */
  PM_STREAM_PHASE_ENDED,   /* refused, reset, failed, or its id was released */
} PmStreamPhase;

typedef enum {
  PM_STREAM_DECISION_NONE,
  PM_STREAM_DECISION_ACCEPT,
  PM_STREAM_DECISION_REFUSE,
} PmStreamDecision;

/* One received DATA message (or part of one), read from off onwards. */
typedef struct {
  size_t  len;
  size_t  off;
  uint8_t data[];
} PmStreamChunk;

struct _PmStream {
  GIOStream parent_instance;

  PmStreamMux   *mux; /* not a reference; NULL once the stream id is released */
  GInputStream  *input;
  GOutputStream *output;
  unsigned       sid;
  char          *service;
  gboolean       incoming;
  PmStreamPhase  phase;
  GError        *error; /* why it failed: reads fail after the buffered data, writes at once */

  /* Asked for by the application, sent by the multiplexer. */
  PmStreamDecision decision;
  char            *local_reason; /* of the refusal or reset */
  gboolean         reset_requested;
  gboolean         input_closed;
  gboolean         output_closed;
  gboolean         dropped_unread; /* the input was closed over unread data */

  /* Receiving. */
  GQueue   rx; /* PmStreamChunk */
  size_t   rx_buffered;
  uint64_t rx_total;     /* bytes the peer sent */
  uint64_t rx_consumed;  /* … that the application read, or that were discarded */
  uint64_t rx_announced; /* the limit the peer was given (its credit) */
  uint32_t rx_window;
  int64_t  rx_epoch_us;       /* auto-tuning: when the current window began to be read */
  uint64_t rx_epoch_consumed; /* … and rx_consumed then */
  gboolean rx_eof;            /* FIN received */

  /* Sending. */
  uint64_t tx_total; /* bytes handed to SCTP */
  uint64_t tx_limit; /* the credit the peer gave */

  /* pm_stream_mux_open_async() until ACCEPT or REFUSE. */
  GTask   *open_task;
  GSource *cancel_source;
};

/* pm-stream.c, for the multiplexer. */
PmStream *pm_stream_new_internal (PmStreamMux *mux,
                                  unsigned     sid,
                                  const char  *service,
                                  size_t       service_len,
                                  gboolean     incoming,
                                  uint32_t     rx_window);
void      pm_stream_push_data (PmStream      *self,
                               const uint8_t *data,
                               size_t         len);
void      pm_stream_fail (PmStream *self,
                          GError   *error);
void      pm_stream_detach (PmStream *self);
void      pm_stream_drop_buffered (PmStream *self);

/* pm-stream-mux.c, for the stream. */
gssize   pm_stream_mux_write_stream (PmStreamMux *self,
                                     PmStream    *stream,
                                     const void  *buffer,
                                     size_t       count,
                                     GError     **error);
gboolean pm_stream_mux_stream_can_write (PmStreamMux *self,
                                         PmStream    *stream);
void     pm_stream_mux_sync_stream (PmStreamMux *self,
                                    PmStream    *stream);
void     pm_stream_mux_forget_stream (PmStreamMux *self,
                                      PmStream    *stream);

/* For the fuzz target only. */
void pm_stream_mux_inject_message (PmStreamMux   *self,
                                   unsigned       sid,
                                   uint32_t       ppid,
                                   const uint8_t *data,
                                   size_t         len);

G_END_DECLS
