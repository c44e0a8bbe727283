/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Joins a mesh stream and a local TCP connection: bytes both ways, with
 * half-close carried across (a TCP EOF becomes the stream's FIN and the
 * stream's EOF a TCP shutdown(SHUT_WR)), which g_io_stream_splice_async()
 * cannot do: it closes nothing until both directions ended, so a service that
 * answers and closes would hang a client that waits for EOF.
 */

#include <gio/gio.h>

#include "pm-stream.h"

G_BEGIN_DECLS

/* Completes when both directions ended (TRUE) or either failed (FALSE, and
 * the stream is reset and the connection closed). Both are closed at the end. */
void     pm_forward_async (PmStream           *stream,
                           GSocketConnection  *connection,
                           GCancellable       *cancellable,
                           GAsyncReadyCallback callback,
                           gpointer            user_data);
gboolean pm_forward_finish (GAsyncResult *result,
                            uint64_t     *to_stream,
                            uint64_t     *from_stream,
                            GError      **error);

G_END_DECLS
