/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * How the app words a peer's state: the row's one-line summary ("LAN · 3 ms",
 * "Relay · 80 ms", "Connecting…", "Offline · last connected 5 min ago"), the
 * device-type icon, round trips, sizes and keys. Pure functions of their
 * arguments (the clock is passed in), shared by the rows and the pages.
 */

#include <gio/gio.h>

#include "pm-peer.h"

G_BEGIN_DECLS

/* The symbolic icon for a device type (mac, linux, windows, iphone, ipad,
 * watch, android, …; anything else is a computer). */
const char *pm_app_device_icon_name (const char *device_type);
/* "Computer", "Phone", … for a device type. */
const char *pm_app_device_kind (const char *device_type);
/* TRUE for the types a host usually is: mac, linux, windows. */
gboolean pm_app_device_is_computer (const char *device_type);

/* "LAN", "Direct", "Relay", or "None". */
const char *pm_app_path_label (PmPathType path);
/* "Connected", "Connecting…", "Not connected". */
const char *pm_app_state_label (PmPeerState state);
/* "3 ms", "0.4 ms"; NULL when @rtt_ms < 0 (unknown). */
char *pm_app_format_rtt (double rtt_ms);
/* "just now", "5 min ago", "3 h ago", "2 days ago" for @then_us before
 * @now_us (both wall-clock µs since the epoch). */
char *pm_app_format_relative_time (int64_t then_us,
                                   int64_t now_us);
/* A wall-clock time in µs since the epoch as local date and time; NULL for 0. */
char *pm_app_format_time (int64_t time_us);
/* The short fingerprint of a public key given as 64 hex digits (as
 * pm_identity_get_fingerprint() shows this device's); NULL if malformed. */
char *pm_app_format_fingerprint (const char *public_key_hex);
/* 64 hex digits in groups of eight, two lines of four groups. */
char *pm_app_format_key (const char *public_key_hex);

/* The peer is reachable now: the server sees it, or a session is up. */
gboolean pm_app_peer_is_up (PmPeer *peer);
/* The row's summary line; @relative (nullable) is set to TRUE when the text
 * holds a relative time that goes stale as the clock moves. */
char *pm_app_peer_summary (PmPeer   *peer,
                           int64_t   now_us,
                           gboolean *relative);
/* The same; without @presence_known (no coordination server: LAN only) a
 * peer without a session is "Not connected" rather than online or offline. */
char *pm_app_peer_summary_full (PmPeer   *peer,
                                gboolean  presence_known,
                                int64_t   now_us,
                                gboolean *relative);

G_END_DECLS
