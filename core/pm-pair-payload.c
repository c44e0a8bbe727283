/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-pair"

#include "pm-pair-payload.h"

#include <string.h>

#include "pm-mesh-limits.h"

/* clang-format off */
G_DEFINE_QUARK (pm-pair-payload-error-quark, pm_pair_payload_error)
G_DEFINE_QUARK (pm-pair-error-quark, pm_pair_error)
/* clang-format on */

void
pm_pair_limits_default (PmPairLimits *limits)
{
  g_return_if_fail (limits != NULL);

  limits->connect_timeout_ms = PM_PAIR_CONNECT_TIMEOUT_S * 1000;
  limits->message_timeout_ms = PM_PAIR_MESSAGE_TIMEOUT_S * 1000;
  limits->verify_timeout_ms = PM_PAIR_VERIFY_TIMEOUT_S * 1000;
  limits->max_bad_tokens = PM_PAIR_MAX_BAD_TOKENS;
}

/* Device types, by their one-byte code (the server's types, same names). */
static const char *const device_types[] = {
  [1] = "linux",
  [2] = "mac",
  [3] = "windows",
  [4] = "android",
  [5] = "iphone",
  [6] = "ipad",
  [7] = "watch",
};

static int
device_type_code (const char *device_type)
{
  if (device_type == NULL)
    return 0;
  for (size_t i = 1; i < G_N_ELEMENTS (device_types); i++)
    if (strcmp (device_types[i], device_type) == 0)
      return (int) i;
  return 0;
}

gboolean
pm_pair_device_type_is_valid (const char *device_type)
{
  return device_type_code (device_type) != 0;
}

/* The type a device that does not say otherwise reports. */
const char *
pm_pair_device_type_default (void)
{
#if defined(__APPLE__)
  return "mac";
#elif defined(_WIN32)
  return "windows";
#else
  return "linux";
#endif
}

/* True for text a screen can show on one line: valid UTF-8 with no control
 * character (C0, DEL, C1), so no NUL, newline or escape sequence. */
static gboolean
is_printable_utf8 (const char *text,
                   size_t      len)
{
  const char *end = text + len;

  if (!g_utf8_validate_len (text, len, NULL))
    return FALSE;
  for (const char *p = text; p < end; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}

/**
 * pm_pair_name_check:
 * @name: a device name, not necessarily NUL-terminated
 * @len: its length in bytes
 *
 * A device name: 1 to 64 bytes of UTF-8, no control character, no space at
 * either end (the server's rule for device names, docs/API.md).
 */
gboolean
pm_pair_name_check (const char *name,
                    size_t      len,
                    GError    **error)
{
  if (len == 0 || len > PM_PAIR_NAME_MAX)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_NAME,
                   "A device name must be 1 to %d bytes long, not %zu", PM_PAIR_NAME_MAX, len);
      return FALSE;
    }
  if (!is_printable_utf8 (name, len))
    {
      g_set_error_literal (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_NAME,
                           "A device name must be UTF-8 without control characters");
      return FALSE;
    }
  if (g_ascii_isspace (name[0]) || g_ascii_isspace (name[len - 1]))
    {
      g_set_error_literal (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_NAME,
                           "A device name must not start or end with a space");
      return FALSE;
    }
  return TRUE;
}

/**
 * pm_pair_hello_init:
 * Fills @hello after checking @name and @device_type as the parser would.
 */
gboolean
pm_pair_hello_init (PmPairHello *hello,
                    const char  *name,
                    const char  *device_type,
                    uint16_t     mesh_port,
                    GError     **error)
{
  int code = device_type_code (device_type);

  g_return_val_if_fail (hello != NULL && name != NULL, FALSE);

  if (!pm_pair_name_check (name, strlen (name), error))
    return FALSE;
  if (code == 0)
    {
      g_set_error (
        error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_TYPE,
        "“%s” is not a device type (linux, mac, windows, android, iphone, ipad or watch)",
        device_type != NULL ? device_type : "");
      return FALSE;
    }
  memset (hello, 0, sizeof *hello);
  memcpy (hello->name, name, strlen (name));
  hello->device_type = device_types[code];
  hello->mesh_port = mesh_port;
  return TRUE;
}

/**
 * pm_pair_hello_parse:
 * @out: (out caller-allocates): untouched unless the payload is accepted
 *
 * Layout (big-endian): version (u8) = 1 | device type (u8, 1 … 7) | mesh UDP
 * port (u16) | name length n (u8, 1 … 64) | n bytes of name. Exactly
 * 6 … 69 bytes; nothing may follow the name.
 */
gboolean
pm_pair_hello_parse (const uint8_t *data,
                     size_t         len,
                     PmPairHello   *out,
                     GError       **error)
{
  size_t name_len;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  if (len < PM_PAIR_HELLO_MIN_LEN)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_TRUNCATED,
                   "A pairing hello is at least %d bytes, not %zu", PM_PAIR_HELLO_MIN_LEN, len);
      return FALSE;
    }
  if (data[0] != PM_PAIR_PAYLOAD_VERSION)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_VERSION,
                   "Pairing hello version %u is not supported (only %d)", data[0],
                   PM_PAIR_PAYLOAD_VERSION);
      return FALSE;
    }
  if (data[1] == 0 || data[1] >= G_N_ELEMENTS (device_types))
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_TYPE,
                   "Unknown device type code %u", data[1]);
      return FALSE;
    }
  name_len = data[4];
  if (name_len == 0 || name_len > PM_PAIR_NAME_MAX)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_NAME,
                   "A device name must be 1 to %d bytes long, not %zu", PM_PAIR_NAME_MAX, name_len);
      return FALSE;
    }
  if (len < PM_PAIR_HELLO_HEADER_LEN + name_len)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_TRUNCATED,
                   "The name needs %zu bytes, only %zu follow", name_len,
                   len - PM_PAIR_HELLO_HEADER_LEN);
      return FALSE;
    }
  if (len > PM_PAIR_HELLO_HEADER_LEN + name_len)
    {
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_TRAILING,
                   "%zu bytes follow the name", len - PM_PAIR_HELLO_HEADER_LEN - name_len);
      return FALSE;
    }
  if (!pm_pair_name_check ((const char *) data + PM_PAIR_HELLO_HEADER_LEN, name_len, error))
    return FALSE;

  memset (out, 0, sizeof *out);
  memcpy (out->name, data + PM_PAIR_HELLO_HEADER_LEN, name_len);
  out->device_type = device_types[data[1]];
  out->mesh_port = (uint16_t) ((data[2] << 8) | data[3]);
  return TRUE;
}

/**
 * pm_pair_hello_write:
 * Returns: the bytes written, or 0 (nothing written) when @hello would not
 *   parse or @capacity is too small.
 */
size_t
pm_pair_hello_write (const PmPairHello *hello,
                     uint8_t           *out,
                     size_t             capacity)
{
  size_t name_len;
  int    code;

  g_return_val_if_fail (hello != NULL && out != NULL, 0);

  name_len = strnlen (hello->name, sizeof hello->name);
  code = device_type_code (hello->device_type);
  if (code == 0 || !pm_pair_name_check (hello->name, name_len, NULL) ||
      capacity < PM_PAIR_HELLO_HEADER_LEN + name_len)
    return 0;
  out[0] = PM_PAIR_PAYLOAD_VERSION;
  out[1] = (uint8_t) code;
  out[2] = (uint8_t) (hello->mesh_port >> 8);
  out[3] = (uint8_t) (hello->mesh_port & 0xff);
  out[4] = (uint8_t) name_len;
  memcpy (out + PM_PAIR_HELLO_HEADER_LEN, hello->name, name_len);
  return PM_PAIR_HELLO_HEADER_LEN + name_len;
}

/**
 * pm_pair_confirm_parse:
 * @out: (out caller-allocates): untouched unless the message is accepted
 *
 * Layout: kind (u8), then for REJECT 0 … 256 bytes of reason (UTF-8 without
 * control characters); ACCEPT and STORED are exactly one byte.
 */
gboolean
pm_pair_confirm_parse (const uint8_t *data,
                       size_t         len,
                       PmPairConfirm *out,
                       GError       **error)
{
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  if (len == 0)
    {
      g_set_error_literal (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_TRUNCATED,
                           "An empty pairing confirmation");
      return FALSE;
    }
  switch (data[0])
    {
    case PM_PAIR_CONFIRM_ACCEPT:
    case PM_PAIR_CONFIRM_STORED:
      if (len != 1)
        {
          g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_TRAILING,
                       "%zu bytes follow a pairing confirmation of kind %u", len - 1, data[0]);
          return FALSE;
        }
      memset (out, 0, sizeof *out);
      out->kind = (PmPairConfirmKind) data[0];
      return TRUE;

    case PM_PAIR_CONFIRM_REJECT:
      if (len - 1 > PM_PAIR_REASON_MAX || !is_printable_utf8 ((const char *) data + 1, len - 1))
        {
          g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_REASON,
                       "A rejection reason is at most %d bytes of UTF-8 without control characters",
                       PM_PAIR_REASON_MAX);
          return FALSE;
        }
      memset (out, 0, sizeof *out);
      out->kind = PM_PAIR_CONFIRM_REJECT;
      memcpy (out->reason, data + 1, len - 1);
      return TRUE;

    default:
      g_set_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_UNKNOWN_KIND,
                   "Unknown pairing confirmation kind 0x%02x", data[0]);
      return FALSE;
    }
}

/**
 * pm_pair_confirm_write:
 * @reason: (nullable): REJECT only
 *
 * Returns: the bytes written, or 0 (nothing written) for a message the
 *   parser would refuse or a buffer that is too small.
 */
size_t
pm_pair_confirm_write (PmPairConfirmKind kind,
                       const char       *reason,
                       uint8_t          *out,
                       size_t            capacity)
{
  size_t reason_len = reason != NULL ? strlen (reason) : 0;

  g_return_val_if_fail (out != NULL, 0);

  switch (kind)
    {
    case PM_PAIR_CONFIRM_ACCEPT:
    case PM_PAIR_CONFIRM_STORED:
      if (reason_len != 0 || capacity < 1)
        return 0;
      out[0] = (uint8_t) kind;
      return 1;

    case PM_PAIR_CONFIRM_REJECT:
      if (reason_len > PM_PAIR_REASON_MAX || capacity < 1 + reason_len ||
          (reason_len > 0 && !is_printable_utf8 (reason, reason_len)))
        return 0;
      out[0] = (uint8_t) kind;
      if (reason_len > 0)
        memcpy (out + 1, reason, reason_len);
      return 1 + reason_len;

    default:
      return 0;
    }
}
