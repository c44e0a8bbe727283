/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The coordination client's parsers (core/pm-coord-client.c) on arbitrary
 * bytes: every answer the server could send — a device listing, an
 * enrollment, stored candidates, a wake, a wake receipt, an error body — plus
 * the candidate address syntax on the input as text.
 *
 * Each parser either returns a complete result whose every field has the
 * documented form, or NULL/FALSE with a PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 * and nothing written to its outputs. An error body always translates to
 * exactly one PM_COORD_CLIENT_ERROR with a bounded, valid UTF-8 message.
 *
 * Seeds (tests/fuzz/corpus/coord-json/) are plain JSON: listings captured from
 * a real pipermesh-server, and truncated or mistyped variants of them.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-coord-client.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

static void
check_refused (GError *error)
{
  g_assert (error != NULL);
  g_assert (error->domain == PM_COORD_CLIENT_ERROR);
  g_assert (error->code == PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
  g_assert (error->message != NULL && g_utf8_validate (error->message, -1, NULL));
  g_error_free (error);
}

static void
check_address (GInetSocketAddress *address)
{
  GInetAddress *ip = g_inet_socket_address_get_address (address);

  g_assert (g_inet_socket_address_get_port (address) != 0);
  g_assert (!g_inet_address_get_is_any (ip) && !g_inet_address_get_is_multicast (ip));
}

static void
check_device (const PmDeviceInfo *info)
{
  g_autoptr (PmDeviceInfo) copy = NULL;

  g_assert (pm_coord_client_device_id_is_valid (info->id));
  g_assert (info->name != NULL && info->name[0] != '\0' && strlen (info->name) <= 64);
  g_assert (g_utf8_validate (info->name, -1, NULL));
  g_assert (info->type != NULL && info->key_type != NULL);
  g_assert (info->addresses != NULL);
  g_assert (info->addresses->len <= PM_COORD_CLIENT_MAX_ADDRESSES);
  if (!info->has_candidates)
    g_assert (info->addresses->len == 0 && info->mapped == NULL && !info->mapping_varies);
  for (unsigned i = 0; i < info->addresses->len; i++)
    check_address (info->addresses->pdata[i]);
  if (info->mapped != NULL)
    check_address (info->mapped);

  copy = pm_device_info_copy (info);
  g_assert (strcmp (copy->id, info->id) == 0);
  g_assert (memcmp (copy->public_key, info->public_key, sizeof copy->public_key) == 0);
  g_assert (copy->addresses->len == info->addresses->len);
}

static void
fuzz_devices (const char *json,
              size_t      len)
{
  GError *error = NULL;
  g_autoptr (GPtrArray) devices = pm_coord_client_parse_devices (json, len, &error);

  if (devices == NULL)
    {
      check_refused (error);
      return;
    }
  g_assert (error == NULL);
  g_assert (devices->len <= PM_COORD_CLIENT_MAX_DEVICES);
  for (unsigned i = 0; i < devices->len; i++)
    {
      check_device (devices->pdata[i]);
      for (unsigned j = 0; j < i; j++)
        g_assert (strcmp (((PmDeviceInfo *) devices->pdata[i])->id,
                          ((PmDeviceInfo *) devices->pdata[j])->id) != 0);
    }
}

static void
fuzz_enrollment (const char *json,
                 size_t      len)
{
  GError *error = NULL;
  g_autoptr (PmEnrollment) enrollment = pm_coord_client_parse_enrollment (json, len, &error);

  if (enrollment == NULL)
    {
      check_refused (error);
      return;
    }
  g_assert (pm_coord_client_device_id_is_valid (enrollment->device_id));
  g_assert (g_str_has_prefix (enrollment->token, "pmdt_"));
  g_assert (strlen (enrollment->token) <= PM_COORD_CLIENT_MAX_TOKEN_LEN);
  g_assert (strpbrk (enrollment->token, "\r\n ") == NULL);
  g_assert (g_str_has_prefix (enrollment->account_id, "acc_"));
}

static void
fuzz_candidates (const char *json,
                 size_t      len)
{
  GError             *error = NULL;
  GPtrArray          *addresses = (GPtrArray *) 0x1;
  GInetSocketAddress *mapped = (GInetSocketAddress *) 0x1;
  gboolean            varies = 2;

  if (!pm_coord_client_parse_candidates (json, len, &addresses, &mapped, &varies, &error))
    {
      /* Nothing was written. */
      g_assert (addresses == (GPtrArray *) 0x1 && mapped == (GInetSocketAddress *) 0x1);
      g_assert (varies == 2);
      check_refused (error);
      return;
    }
  g_assert (varies == TRUE || varies == FALSE);
  g_assert (addresses->len <= PM_COORD_CLIENT_MAX_ADDRESSES);
  for (unsigned i = 0; i < addresses->len; i++)
    check_address (addresses->pdata[i]);
  if (mapped != NULL)
    check_address (mapped);
  g_ptr_array_unref (addresses);
  g_clear_object (&mapped);
}

static void
fuzz_wake (const char *json,
           size_t      len)
{
  GError          *error = NULL;
  g_autofree char *from = pm_coord_client_parse_wake (json, len, &error);
  unsigned         polls = 12345;
  gboolean         push = 2;

  if (from == NULL)
    check_refused (error);
  else
    g_assert (pm_coord_client_device_id_is_valid (from));

  error = NULL;
  if (pm_coord_client_parse_wake_sent (json, len, &polls, &push, &error))
    g_assert (polls <= 1024 && (push == TRUE || push == FALSE));
  else
    {
      g_assert (polls == 12345 && push == 2);
      check_refused (error);
    }
}

static void
fuzz_error_body (const char *json,
                 size_t      len)
{
  static const unsigned statuses[] = { 400, 401, 403, 404, 409, 429, 503, 418 };
  /* Retry-After from the input's head, as a header value. */
  g_autofree char *retry_after = g_strndup (json, MIN (len, 12));

  for (size_t i = 0; i < G_N_ELEMENTS (statuses); i++)
    {
      g_autoptr (GError) error = pm_coord_client_error_from_response (statuses[i], retry_after,
                                                                      json, len);
      unsigned retry = pm_coord_client_error_get_retry_after (error);

      g_assert (error->domain == PM_COORD_CLIENT_ERROR);
      g_assert (error->code >= PM_COORD_CLIENT_ERROR_INVALID_URI &&
                error->code <= PM_COORD_CLIENT_ERROR_NETWORK);
      g_assert (g_utf8_validate (error->message, -1, NULL));
      g_assert (strlen (error->message) < 1024);
      if (statuses[i] == 429)
        g_assert (retry >= 1 && retry <= PM_COORD_CLIENT_MAX_RETRY_AFTER);
      else
        g_assert (retry == 0);
    }
}

static void
fuzz_address (const char *data,
              size_t      size)
{
  g_autofree char *text = g_strndup (data, MIN (size, 128));
  g_autoptr (GInetSocketAddress) address = NULL;

  if (text == NULL)
    return;
  address = pm_coord_client_parse_address (text);
  if (address != NULL)
    check_address (address);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *json = (const char *) data;

  fuzz_devices (json, size);
  fuzz_enrollment (json, size);
  fuzz_candidates (json, size);
  fuzz_wake (json, size);
  fuzz_error_body (json, size);
  fuzz_address (json, size);
  return 0;
}
