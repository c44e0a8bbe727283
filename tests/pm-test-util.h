/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Helpers shared by the tests that drive a GLib main loop. */

typedef gboolean (*PmTestCond) (gpointer data);

gboolean pm_test_spin_until (PmTestCond cond,
                             gpointer   data,
                             unsigned   timeout_ms);
gboolean pm_test_flag_is_set (gpointer data);

G_END_DECLS
