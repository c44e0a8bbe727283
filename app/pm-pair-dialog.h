/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPairDialog: the pairing wizard, a window modal to the main window. "Show
 * a Code" makes this device the host (PmPairHost): a QR code and its text,
 * the time left, then the verification code with Accept and Reject. "Scan a
 * Code" makes it the client (PmPairClient): the code from a picture, pasted
 * text or a camera, then the verification code while the host decides. Both
 * end on a page that says what happened, in the words of the GError.
 */

#include <adwaita.h>

G_BEGIN_DECLS

#define PM_TYPE_PAIR_DIALOG (pm_pair_dialog_get_type ())
G_DECLARE_FINAL_TYPE (PmPairDialog, pm_pair_dialog, PM, PAIR_DIALOG, AdwWindow)

/* @state_dir: where the identity, the pairing certificate and the paired
 * store live. @device_name: this device's name as the other device shows it
 * (NULL: the enrolled name, else the identity's, else the host name). */
PmPairDialog *pm_pair_dialog_new (GtkWindow  *parent,
                                  const char *state_dir,
                                  const char *device_name);

void pm_pair_dialog_show_code (PmPairDialog *self);
void pm_pair_dialog_scan_code (PmPairDialog *self);

/* The hidden --screenshot-dir DIR --pair-show and --pair-scan FILE modes
 * (tests/test-app-pair.py). With @scan_file NULL: shows a code on 127.0.0.1
 * only, saves the window to DIR/pair.png once the QR code is drawn and accepts
 * the first device that scans it. Else: the scan page, "Use Camera" when
 * there is no camera (its message goes to the report), then pairs with the
 * code in the picture @scan_file. Both write DIR/pair-report.json and quit
 * the application (exit status 1 when it failed or did not end within
 * PM_APP_PAIR_TEST_TIMEOUT_S). */
void pm_pair_dialog_run_test (PmPairDialog *self,
                              const char   *dir,
                              const char   *scan_file);

G_END_DECLS
