/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmTray: the app's icon in the desktop's tray, without the platform. It
 * follows the mesh (pm_mesh_get_peers(), bound to every PmPeer's notify
 * signals; nothing polls) and turns it into what a tray shows: a state
 * (connected / connecting / offline) with its icon name, a title and a
 * tooltip, and a menu (a GMenuModel whose actions live in
 * pm_tray_get_action_group()): the devices with their path ("mac — Direct ·
 * 23 ms") and Connect or Disconnect for each, then "Open PiperMesh", "Pair a
 * device…" and "Quit".
 *
 * A backend shows it. pm_tray_new() picks the one for the platform: on Linux
 * PmTraySni (pm-tray-sni.h: StatusNotifierItem + com.canonical.dbusmenu);
 * elsewhere a plain PmTray that is never available, until a backend for that
 * platform (Windows' notification area) is written: it subclasses PmTray,
 * shows the properties below as they change, calls pm_tray_activate() on a
 * click and the action group for the menu, and says whether it is shown with
 * pm_tray_set_available().
 *
 * "available" is TRUE while the desktop shows the icon. While it is, or while
 * "run-in-background" is TRUE, the tray holds the GApplication, so closing
 * the window leaves the mesh running ("keep-running"). If the desktop's tray
 * goes away for longer than PM_TRAY_LOST_GRACE_S while the app runs only
 * through the tray, the app is activated (its window opens) rather than left
 * running with no way back to it. "run-in-background" follows the
 * GSettings key of that name when the application's schema has one.
 *
 * Actions (in pm_tray_get_action_group()): "open" (g_application_activate()),
 * "pair" (the application's "pair" action when it has one, else "open"),
 * "quit" (the application's "quit" action when it has one, else
 * g_application_quit()), "connect" and "disconnect" (a peer id, "s").
 */

#include <gio/gio.h>

#include "pm-mesh.h"

G_BEGIN_DECLS

/* The tray waits this long for the desktop's tray to come back (a panel
 * restarting) before it gives the app its window back. */
#define PM_TRAY_LOST_GRACE_S 10

typedef enum {
  PM_TRAY_STATE_OFFLINE,    /* no session wanted, or no peer at all */
  PM_TRAY_STATE_CONNECTING, /* a session is wanted but carries nothing yet */
  PM_TRAY_STATE_CONNECTED,  /* at least one peer has a session and a path */
} PmTrayState;

GType pm_tray_state_get_type (void) G_GNUC_CONST;
#define PM_TYPE_TRAY_STATE (pm_tray_state_get_type ())

/* Pure functions of their arguments. */
/* One peer: CONNECTED with a path is connected; CONNECTED without one (the
 * path died and is being found again) or CONNECTING is connecting; IDLE is
 * offline. */
PmTrayState pm_tray_state_for_peer (PmPeerState state,
                                    PmPathType  path);
/* Several: any connected makes connected, else any connecting makes
 * connecting, else offline (also for no peers). */
PmTrayState pm_tray_state_for_peers (GListModel *peers);
/* "network-vpn-symbolic", "network-vpn-acquiring-symbolic",
 * "network-vpn-disabled-symbolic". */
const char *pm_tray_state_get_icon_name (PmTrayState state);
/* "connected", "connecting", "offline". */
const char *pm_tray_state_to_string (PmTrayState state);
/* The tooltip's line for @peers: "Connected to mac", "Connected to 2
 * devices", "Connecting to mac…", "Not connected", "No devices yet". */
char *pm_tray_describe (GListModel *peers);
/* A device's menu label: "mac — Direct · 23 ms", "mac — Connecting…",
 * "mac — Online", "mac — Offline" (or, without @presence_known — LAN only, no
 * server to say who is online — "mac — Not connected"); never a relative
 * time, which would go stale in an open menu. Underscores in the name are
 * doubled (menus read "_" as a mnemonic). */
char *pm_tray_peer_label (PmPeer  *peer,
                          gboolean presence_known);

#define PM_TYPE_TRAY (pm_tray_get_type ())
G_DECLARE_DERIVABLE_TYPE (PmTray, pm_tray, PM, TRAY, GObject)

struct _PmTrayClass {
  GObjectClass parent_class;

  gpointer padding[8];
};

/* Properties: application (GApplication, construct-only), mesh (PmMesh,
 * nullable), available (boolean, read-only), keep-running (boolean,
 * read-only), run-in-background (boolean), needs-attention (boolean: something
 * waits for the user, such as a pairing request), state (PmTrayState, read-only),
 * icon-name, title, tooltip (strings, read-only), menu (GMenuModel,
 * read-only: a new frozen model on every change). */

/* @mesh: nullable (set it later with pm_tray_set_mesh()). */
PmTray *pm_tray_new (GApplication *application,
                     PmMesh       *mesh);

GApplication *pm_tray_get_application (PmTray *self);
PmMesh       *pm_tray_get_mesh (PmTray *self);
void          pm_tray_set_mesh (PmTray *self,
                                PmMesh *mesh);
gboolean      pm_tray_get_available (PmTray *self);
gboolean      pm_tray_get_keep_running (PmTray *self);
gboolean      pm_tray_get_run_in_background (PmTray *self);
void          pm_tray_set_run_in_background (PmTray  *self,
                                             gboolean run_in_background);
gboolean      pm_tray_get_needs_attention (PmTray *self);
void          pm_tray_set_needs_attention (PmTray  *self,
                                           gboolean needs_attention);
PmTrayState   pm_tray_get_state (PmTray *self);
const char   *pm_tray_get_icon_name (PmTray *self);
const char   *pm_tray_get_title (PmTray *self);
const char   *pm_tray_get_tooltip (PmTray *self);
GMenuModel   *pm_tray_get_menu (PmTray *self);
GActionGroup *pm_tray_get_action_group (PmTray *self);

/* For backends: the icon was clicked (opens the window); the desktop shows
 * the icon, or no longer does. */
void pm_tray_activate (PmTray *self);
void pm_tray_set_available (PmTray  *self,
                            gboolean available);
/* For tests: the grace period after the desktop's tray went away. */
void pm_tray_set_lost_grace (PmTray  *self,
                             unsigned grace_ms);

G_END_DECLS
