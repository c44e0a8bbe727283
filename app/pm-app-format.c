/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-app-format.h"

#include <glib/gi18n.h>
#include <sodium.h>
#include <string.h>

#include "pm-keypair.h"

typedef struct {
  const char *type;
  const char *icon;
  const char *kind; /* N_() */
} DeviceType;

static const DeviceType device_types[] = {
  { "mac", "computer-symbolic", N_ ("Computer") },
  { "linux", "computer-symbolic", N_ ("Computer") },
  { "windows", "computer-symbolic", N_ ("Computer") },
  { "iphone", "phone-symbolic", N_ ("Phone") },
  { "android", "phone-symbolic", N_ ("Phone") },
  { "ipad", "tablet-symbolic", N_ ("Tablet") },
  { "watch", "multimedia-player-symbolic", N_ ("Watch") },
};

static const DeviceType *
device_type_lookup (const char *device_type)
{
  for (size_t i = 0; device_type != NULL && i < G_N_ELEMENTS (device_types); i++)
    if (g_str_equal (device_types[i].type, device_type))
      return &device_types[i];
  return NULL;
}

const char *
pm_app_device_icon_name (const char *device_type)
{
  const DeviceType *t = device_type_lookup (device_type);

  return t != NULL ? t->icon : "computer-symbolic";
}

const char *
pm_app_device_kind (const char *device_type)
{
  const DeviceType *t = device_type_lookup (device_type);

  return t != NULL ? _ (t->kind) : _ ("Device");
}

gboolean
pm_app_device_is_computer (const char *device_type)
{
  return g_strcmp0 (device_type, "mac") == 0 || g_strcmp0 (device_type, "linux") == 0 ||
         g_strcmp0 (device_type, "windows") == 0;
}

const char *
pm_app_path_label (PmPathType path)
{
  switch (path)
    {
    case PM_PATH_LAN:
      /* TRANSLATORS: the path to a peer: a UDP path on the local network */
      return _ ("LAN");
    case PM_PATH_DIRECT:
      /* TRANSLATORS: the path to a peer: UDP straight through NAT */
      return _ ("Direct");
    case PM_PATH_RELAY:
      /* TRANSLATORS: the path to a peer: through the server's encrypted relay */
      return _ ("Relay");
    case PM_PATH_NONE:
    default:
      return C_ ("path", "None");
    }
}

const char *
pm_app_state_label (PmPeerState state)
{
  switch (state)
    {
    case PM_PEER_STATE_CONNECTED:
      return _ ("Connected");
    case PM_PEER_STATE_CONNECTING:
      return _ ("Connecting…");
    case PM_PEER_STATE_IDLE:
    default:
      return _ ("Not connected");
    }
}

char *
pm_app_format_rtt (double rtt_ms)
{
  if (rtt_ms < 0)
    return NULL;
  if (rtt_ms < 9.95)
    /* TRANSLATORS: a round trip in milliseconds, below 10 */
    return g_strdup_printf (_ ("%.1f ms"), rtt_ms);
  /* TRANSLATORS: a round trip in milliseconds */
  return g_strdup_printf (_ ("%.0f ms"), rtt_ms);
}

char *
pm_app_format_relative_time (int64_t then_us,
                             int64_t now_us)
{
  int64_t minutes = (now_us - then_us) / (60 * G_USEC_PER_SEC);
  int64_t hours = minutes / 60;
  int64_t days = hours / 24;

  if (minutes < 1)
    return g_strdup (_ ("just now"));
  if (hours < 1)
    return g_strdup_printf (ngettext ("%d min ago", "%d min ago", (unsigned long) minutes),
                            (int) minutes);
  if (days < 1)
    return g_strdup_printf (ngettext ("%d hour ago", "%d hours ago", (unsigned long) hours),
                            (int) hours);
  return g_strdup_printf (ngettext ("%d day ago", "%d days ago", (unsigned long) MIN (days, G_MAXINT)),
                          (int) MIN (days, G_MAXINT));
}

char *
pm_app_format_time (int64_t time_us)
{
  g_autoptr (GDateTime) utc = NULL;
  g_autoptr (GDateTime) local = NULL;

  if (time_us <= 0)
    return NULL;
  utc = g_date_time_new_from_unix_utc (time_us / G_USEC_PER_SEC);
  if (utc == NULL)
    return NULL;
  local = g_date_time_to_local (utc);
  /* TRANSLATORS: a date and time, see g_date_time_format() */
  return g_date_time_format (local, _ ("%Y-%m-%d %H:%M:%S"));
}

static gboolean
key_from_hex (const char *hex,
              uint8_t     key[PM_KEY_LEN])
{
  size_t len = 0;

  return hex != NULL && strlen (hex) == PM_KEY_LEN * 2 &&
         sodium_hex2bin (key, PM_KEY_LEN, hex, PM_KEY_LEN * 2, NULL, &len, NULL) == 0 &&
         len == PM_KEY_LEN;
}

char *
pm_app_format_fingerprint (const char *public_key_hex)
{
  uint8_t key[PM_KEY_LEN];

  if (!key_from_hex (public_key_hex, key))
    return NULL;
  return pm_key_fingerprint (key);
}

char *
pm_app_format_key (const char *public_key_hex)
{
  GString *s;

  if (public_key_hex == NULL)
    return NULL;
  s = g_string_new (NULL);
  for (size_t i = 0; public_key_hex[i] != '\0'; i++)
    {
      if (i > 0 && i % 32 == 0)
        g_string_append_c (s, '\n');
      else if (i > 0 && i % 8 == 0)
        g_string_append_c (s, ' ');
      g_string_append_c (s, public_key_hex[i]);
    }
  return g_string_free (s, FALSE);
}

gboolean
pm_app_peer_is_up (PmPeer *peer)
{
  g_return_val_if_fail (PM_IS_PEER (peer), FALSE);

  return pm_peer_get_online (peer) || pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED;
}

char *
pm_app_peer_summary (PmPeer   *peer,
                     int64_t   now_us,
                     gboolean *relative)
{
  return pm_app_peer_summary_full (peer, TRUE, now_us, relative);
}

char *
pm_app_peer_summary_full (PmPeer   *peer,
                          gboolean  presence_known,
                          int64_t   now_us,
                          gboolean *relative)
{
  PmPeerState state;
  PmPathType  path;
  int64_t     last;

  g_return_val_if_fail (PM_IS_PEER (peer), NULL);

  if (relative != NULL)
    *relative = FALSE;
  state = pm_peer_get_state (peer);
  path = pm_peer_get_path_type (peer);
  if (state == PM_PEER_STATE_CONNECTED && path != PM_PATH_NONE)
    {
      g_autofree char *rtt = pm_app_format_rtt (pm_peer_get_rtt_ms (peer));

      if (rtt == NULL)
        return g_strdup (pm_app_path_label (path));
      /* TRANSLATORS: a path and its round trip, e.g. "LAN · 3 ms" */
      return g_strdup_printf (C_ ("path and round trip", "%s · %s"), pm_app_path_label (path), rtt);
    }
  if (state != PM_PEER_STATE_IDLE)
    return g_strdup (_ ("Connecting…"));
  if (presence_known && pm_peer_get_online (peer))
    return g_strdup (_ ("Online"));
  last = pm_peer_get_last_handshake (peer);
  if (last > 0)
    {
      g_autofree char *when = pm_app_format_relative_time (last, now_us);

      if (relative != NULL)
        *relative = TRUE;
      if (!presence_known)
        /* TRANSLATORS: "Last connected 5 min ago" */
        return g_strdup_printf (_ ("Last connected %s"), when);
      /* TRANSLATORS: "Offline · last connected 5 min ago" */
      return g_strdup_printf (_ ("Offline · last connected %s"), when);
    }
  return g_strdup (presence_known ? _ ("Offline") : _ ("Not connected"));
}
