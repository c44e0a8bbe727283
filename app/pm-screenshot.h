/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The hidden --screenshot-dir DIR option, for the app test and the README's
 * pictures: once the window shows a peer with a path and a round trip, it
 * renders the window to DIR/main-window.png, opens that peer's page
 * (DIR/device.png), then This Device after a network check
 * (DIR/this-device.png), writes what the rows said to DIR/report.json and
 * quits. Exit status 1 (and an "error" in the report) when a state is not
 * reached within PM_APP_SCREENSHOT_TIMEOUT_S.
 */

#include "pm-application.h"
#include "pm-window.h"

G_BEGIN_DECLS

void pm_screenshot_start (PmApplication *app,
                          PmWindow      *window,
                          const char    *dir);

/* Renders @widget as it is now to a PNG file. */
gboolean pm_screenshot_save_widget (GtkWidget  *widget,
                                    const char *path,
                                    GError    **error);

G_END_DECLS
