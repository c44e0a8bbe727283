/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmNotifier: the app's desktop notifications (GNotification), GIO only.
 *
 * Per peer of the mesh: "Connection to mac lost" once a peer that was
 * connected has had no working path for PM_NOTIFIER_LOST_DELAY_US while a
 * session is still wanted (a short drop, a path switch or a reconnect within
 * that time says nothing), then "Connected to mac again" when it is back —
 * replacing the first, as both use the id "peer-ID". A peer the user
 * disconnects (or that went idle) is not "lost": a "lost" notification
 * still shown is withdrawn. Bound to the peers' notify signals; a timer runs
 * only while a connected peer is down.
 *
 * pm_notifier_pairing_request(): "laptop wants to pair" with Accept and
 * Reject buttons, which activate the application's "pair-accept" and
 * "pair-reject" actions (parameter type "s": the pairing code). The
 * application (the pairing wizard) defines those actions.
 *
 * g_application_send_notification() needs a registered application; GLib
 * sends through the notification portal in a sandbox, org.gtk.Notifications
 * where GNOME Shell runs, and org.freedesktop.Notifications elsewhere.
 */

#include <gio/gio.h>

#include "pm-mesh.h"

G_BEGIN_DECLS

/* A connected peer must stay down this long before "lost" is shown. */
#define PM_NOTIFIER_LOST_DELAY_US (G_GINT64_CONSTANT (5) * G_USEC_PER_SEC)

typedef enum {
  PM_NOTIFIER_EVENT_NONE,
  PM_NOTIFIER_EVENT_LOST,     /* show "lost" */
  PM_NOTIFIER_EVENT_RESTORED, /* show "connected again" (it replaces "lost") */
  PM_NOTIFIER_EVENT_WITHDRAW, /* "lost" was shown, and the session is no longer wanted */
} PmNotifierEvent;

/* One peer's debounce state; start from all zeros. */
typedef struct {
  gboolean was_up;        /* it had a session and a path since it was last wanted */
  gboolean lost_shown;    /* "lost" is out, "restored" is due when it comes back */
  int64_t  down_since_us; /* when it went down while wanted; 0 if it is not */
} PmNotifierTrack;

/* The debounce as a pure function: feed every change of the peer's state and
 * path, and a call at *@deadline_us (set when a later call is due; 0 if not)
 * with the same values. Up is CONNECTED with a path; IDLE resets. */
PmNotifierEvent pm_notifier_track_update (PmNotifierTrack *track,
                                          PmPeerState      state,
                                          PmPathType       path,
                                          int64_t          now_us,
                                          int64_t          delay_us,
                                          int64_t         *deadline_us);

#define PM_TYPE_NOTIFIER (pm_notifier_get_type ())
G_DECLARE_FINAL_TYPE (PmNotifier, pm_notifier, PM, NOTIFIER, GObject)

/* @mesh: nullable (pm_notifier_set_mesh() later, or bind the "mesh"
 * property). The application is not referenced: it owns the notifier. */
PmNotifier *pm_notifier_new (GApplication *application,
                             PmMesh       *mesh);
void        pm_notifier_set_mesh (PmNotifier *self,
                                  PmMesh     *mesh);
PmMesh     *pm_notifier_get_mesh (PmNotifier *self);
/* For tests: a shorter PM_NOTIFIER_LOST_DELAY_US. */
void pm_notifier_set_lost_delay (PmNotifier *self,
                                 int64_t     delay_us);

/* "laptop wants to pair with this device" (id "pair-CODE"), with Accept
 * (app.pair-accept) and Reject (app.pair-reject), both with @code as their
 * parameter. @name: the other device's name. */
void pm_notifier_pairing_request (GApplication *application,
                                  const char   *code,
                                  const char   *name);
/* Takes the request's notification back (answered in the window, expired). */
void pm_notifier_pairing_withdraw (GApplication *application,
                                   const char   *code);

G_END_DECLS
