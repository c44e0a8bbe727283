/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmApplication: the app. Runs one PmRuntime (the real mesh, or the demo) on
 * the GTK main loop and shows it in one PmWindow.
 *
 * Options: --demo (the in-process demo), --state-dir DIR (another state
 * directory, as `pipermesh --state-dir`), --autostart (started with the
 * session: honours the start-hidden setting), and the hidden
 * --screenshot-dir DIR (pm-screenshot.h).
 */

#include <adwaita.h>

#include "pm-runtime.h"

G_BEGIN_DECLS

#define PM_TYPE_APPLICATION (pm_application_get_type ())
G_DECLARE_FINAL_TYPE (PmApplication, pm_application, PM, APPLICATION, AdwApplication)

PmApplication *pm_application_new (void);
PmRuntime     *pm_application_get_runtime (PmApplication *self);
/* What main() returns once the application has quit. */
int  pm_application_get_exit_status (PmApplication *self);
void pm_application_set_exit_status (PmApplication *self,
                                     int            status);

G_END_DECLS
