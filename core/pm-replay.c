/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-replay"

#include "pm-replay.h"

#include <string.h>

#define BLOCK_BITS 64

void
pm_replay_window_init (PmReplayWindow *window)
{
  memset (window, 0, sizeof *window);
}

static inline uint64_t *
block_of (PmReplayWindow *window,
          uint64_t        counter)
{
  return &window->blocks[(counter / BLOCK_BITS) % PM_REPLAY_RING_BLOCKS];
}

/* TRUE if @counter may be accepted: newer than anything seen, or inside the
 * window and not seen. Does not change the window. */
gboolean
pm_replay_window_check (const PmReplayWindow *window,
                        uint64_t              counter)
{
  uint64_t block;

  if (!window->any || counter > window->top)
    return TRUE;
  if (window->top - counter > PM_REPLAY_WINDOW)
    return FALSE;
  block = window->blocks[(counter / BLOCK_BITS) % PM_REPLAY_RING_BLOCKS];
  return (block >> (counter % BLOCK_BITS) & 1) == 0;
}

/* Records @counter as seen, sliding the window forward when it is the newest.
 * Call only for a counter that passed pm_replay_window_check() and whose
 * message authenticated. */
void
pm_replay_window_mark (PmReplayWindow *window,
                       uint64_t        counter)
{
  /* Too old to be in the window: its bit would land in a recycled block and
   * mark a newer counter as seen. */
  if (window->any && counter < window->top && window->top - counter > PM_REPLAY_WINDOW)
    return;
  if (!window->any)
    {
      memset (window->blocks, 0, sizeof window->blocks);
      window->top = counter;
      window->any = TRUE;
    }
  else if (counter > window->top)
    {
      uint64_t current = window->top / BLOCK_BITS;
      uint64_t next = counter / BLOCK_BITS;
      uint64_t advance = next - current;

      if (advance >= PM_REPLAY_RING_BLOCKS)
        memset (window->blocks, 0, sizeof window->blocks);
      else
        for (uint64_t i = 1; i <= advance; i++)
          window->blocks[(current + i) % PM_REPLAY_RING_BLOCKS] = 0;
      window->top = counter;
    }
  *block_of (window, counter) |= G_GUINT64_CONSTANT (1) << (counter % BLOCK_BITS);
}
