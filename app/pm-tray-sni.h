/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmTraySni: PmTray on Linux desktops, as a StatusNotifierItem over GDBus
 * (KDE Plasma, GNOME with the AppIndicator extension, Xfce, waybar, ...), its
 * menu served by libdbusmenu-glib as com.canonical.dbusmenu. GIO only: no
 * toolkit, so it runs (and is tested) without a display.
 *
 * On the session bus it exports PM_TRAY_SNI_OBJECT_PATH (org.kde.
 * StatusNotifierItem: Category, Id, Title, Status, IconName, ToolTip, Menu,
 * ...; signals NewIcon, NewToolTip, NewStatus, NewTitle) and the menu at
 * PM_TRAY_SNI_MENU_PATH, owns org.kde.StatusNotifierItem-PID-N and registers
 * that name with org.kde.StatusNotifierWatcher. Where the name cannot be owned
 * (a Flatpak sandbox without --own-name, or another process in the same PID
 * namespace holding it) it registers the connection's unique name instead,
 * which the watchers accept. It watches the watcher's name: when the watcher
 * goes (the panel restarts) the tray is unavailable, and when a watcher
 * appears again it registers again. "available" is TRUE once the watcher
 * accepted the item and says a host (a panel showing items) is registered.
 *
 * Status is "Active", or "NeedsAttention" while PmTray:needs-attention is set
 * (never "Passive": hosts hide passive items, and the icon is the way back to
 * a closed window).
 */

#include "pm-tray.h"

G_BEGIN_DECLS

#define PM_TRAY_SNI_OBJECT_PATH  "/StatusNotifierItem"
#define PM_TRAY_SNI_MENU_PATH    "/MenuBar"
#define PM_TRAY_SNI_INTERFACE    "org.kde.StatusNotifierItem"
#define PM_TRAY_SNI_WATCHER      "org.kde.StatusNotifierWatcher"
#define PM_TRAY_SNI_WATCHER_PATH "/StatusNotifierWatcher"
/* A call to the watcher gives up after this long. */
#define PM_TRAY_SNI_CALL_TIMEOUT_MS 10000

#define PM_TYPE_TRAY_SNI (pm_tray_sni_get_type ())
G_DECLARE_FINAL_TYPE (PmTraySni, pm_tray_sni, PM, TRAY_SNI, PmTray)

/* The bus name registered with the watcher (NULL before the first
 * registration): org.kde.StatusNotifierItem-PID-N, or the unique name. */
const char *pm_tray_sni_get_service (PmTraySni *self);
/* The well-known name this item tries to own. */
const char *pm_tray_sni_get_bus_name (PmTraySni *self);
/* How many times the item registered with a watcher (for tests). */
unsigned pm_tray_sni_get_registrations (PmTraySni *self);

G_END_DECLS
