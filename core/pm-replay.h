/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-limits.h"

G_BEGIN_DECLS

/**
 * PmReplayWindow:
 * RFC 6479 sliding window over 64-bit counters, as a ring of 64-bit blocks so
 * that sliding forward clears whole blocks instead of shifting bits. Accepts
 * any counter newer than the highest seen, and any older one within
 * PM_REPLAY_WINDOW of it that was not seen yet.
 *
 * Check before decrypting, mark only after the tag verified: a forged packet
 * must not be able to move the window.
 */
typedef struct {
  uint64_t top; /* highest counter marked */
  gboolean any; /* has anything been marked yet */
  uint64_t blocks[PM_REPLAY_RING_BLOCKS];
} PmReplayWindow;

void     pm_replay_window_init (PmReplayWindow *window);
gboolean pm_replay_window_check (const PmReplayWindow *window,
                                 uint64_t              counter);
void     pm_replay_window_mark (PmReplayWindow *window,
                                uint64_t        counter);

G_END_DECLS
