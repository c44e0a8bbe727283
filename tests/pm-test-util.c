/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "pm-test-util.h"

static gboolean
on_deadline (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the thread-default main context until @cond holds or @timeout_ms
 * pass, so no test can hang on the network. Returns whether @cond holds. */
gboolean
pm_test_spin_until (PmTestCond cond,
                    gpointer   data,
                    unsigned   timeout_ms)
{
  gboolean expired = FALSE;
  guint    id = g_timeout_add (timeout_ms, on_deadline, &expired);

  while (!cond (data) && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (!expired)
    g_source_remove (id);
  return cond (data);
}

/* A PmTestCond for a gboolean flag. */
gboolean
pm_test_flag_is_set (gpointer data)
{
  return *(gboolean *) data;
}
