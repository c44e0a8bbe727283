/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmWindow: the main window: the device list (bound to the mesh's peer
 * model), the empty, starting and failure states, the "Connect to <host>"
 * button, and the device and This Device pages in a leaflet.
 */

#include <adwaita.h>

#include "pm-device-page.h"
#include "pm-peer-row.h"
#include "pm-runtime.h"
#include "pm-self-page.h"

G_BEGIN_DECLS

#define PM_TYPE_WINDOW (pm_window_get_type ())
G_DECLARE_FINAL_TYPE (PmWindow, pm_window, PM, WINDOW, AdwApplicationWindow)

PmWindow *pm_window_new (GtkApplication *application);

void       pm_window_set_runtime (PmWindow  *self,
                                  PmRuntime *runtime);
PmRuntime *pm_window_get_runtime (PmWindow *self);

void pm_window_show_devices (PmWindow *self);
void pm_window_show_peer (PmWindow *self,
                          PmPeer   *peer);
void pm_window_show_self (PmWindow *self);
void pm_window_add_toast (PmWindow   *self,
                          const char *message);

/* For the screenshot driver and tests. */
const char   *pm_window_get_visible_page (PmWindow *self); /* "starting", "failed", "empty", "list", "device", "self" */
PmPeerRow    *pm_window_find_row (PmWindow *self,
                                  PmPeer   *peer);
PmPeer       *pm_window_get_host (PmWindow *self);
PmDevicePage *pm_window_get_device_page (PmWindow *self);
PmSelfPage   *pm_window_get_self_page (PmWindow *self);

G_END_DECLS
