/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The app's own timers, in one place. The mesh's timers are in
 * core/pm-mesh-limits.h; the demo shortens a few of them (below) so that its
 * device shows a path and a round trip within seconds.
 */

/* An offline row says "last connected 5 min ago": that text is refreshed this
 * often while it is shown (the peer itself is never polled). */
#define PM_APP_RELATIVE_TIME_REFRESH_S 30

/* The UDP socket's STUN port when the coordination server's URL names only a
 * host (RFC 8489 §9), as `pipermesh up` assumes. */
#define PM_APP_DEFAULT_STUN_PORT 3478

/* The demo's meshes (both in this process, on loopback): a relay ping and a
 * path heartbeat this often, so that the round trip shown is fresh. */
#define PM_APP_DEMO_RELAY_PING_US (500 * 1000)
#define PM_APP_DEMO_HEARTBEAT_US  (1000 * 1000)
#define PM_APP_DEMO_TRUST_US      (3000 * 1000)
/* The demo server's enrollment key lives this long (it is used at once). */
#define PM_APP_DEMO_KEY_TTL_S 3600

/* --screenshot-dir: the app gives up (exit 1) when the state to capture has
 * not been reached after this long, and waits this many frames after a page
 * change before it renders. */
#define PM_APP_SCREENSHOT_TIMEOUT_S     60
#define PM_APP_SCREENSHOT_SETTLE_FRAMES 3

/* The pairing wizard (pm-pair-dialog.c): the QR code is drawn at least this
 * many pixels wide (whole pixels per module, so it stays sharp), the time
 * left on a shown code is refreshed this often, and --pair-show gives up
 * (exit 1) when no device paired within this long. */
#define PM_APP_PAIR_QR_MIN_PX      240
#define PM_APP_PAIR_COUNTDOWN_S    1
#define PM_APP_PAIR_TEST_TIMEOUT_S 90
