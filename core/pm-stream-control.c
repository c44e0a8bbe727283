/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stream"

#include "pm-stream-control.h"

#include <string.h>

/* clang-format off */
G_DEFINE_QUARK (pm-stream-control-error-quark, pm_stream_control_error)
/* clang-format on */

/**
 * pm_stream_control_is_final:
 *
 * Returns: whether @type is the last message its sender sends on a stream id
 *   (REFUSE, RESET, CLOSE): a stream id is free again once each end has sent
 *   and received one.
 */
gboolean
pm_stream_control_is_final (PmStreamControlType type)
{
  return type == PM_STREAM_CONTROL_REFUSE || type == PM_STREAM_CONTROL_RESET ||
         type == PM_STREAM_CONTROL_CLOSE;
}

const char *
pm_stream_control_type_name (PmStreamControlType type)
{
  switch (type)
    {
    case PM_STREAM_CONTROL_OPEN:
      return "OPEN";
    case PM_STREAM_CONTROL_ACCEPT:
      return "ACCEPT";
    case PM_STREAM_CONTROL_REFUSE:
      return "REFUSE";
    case PM_STREAM_CONTROL_CREDIT:
      return "CREDIT";
    case PM_STREAM_CONTROL_FIN:
      return "FIN";
    case PM_STREAM_CONTROL_RESET:
      return "RESET";
    case PM_STREAM_CONTROL_CLOSE:
      return "CLOSE";
    default:
      return "unknown";
    }
}

/**
 * pm_stream_service_is_valid:
 *
 * Returns: whether @service (@len bytes) is a service name: 1 to
 *   PM_STREAM_MAX_SERVICE_LEN bytes of printable ASCII, no spaces.
 */
gboolean
pm_stream_service_is_valid (const char *service,
                            size_t      len)
{
  if (service == NULL || len == 0 || len > PM_STREAM_MAX_SERVICE_LEN)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char) service[i] < 0x21 || (unsigned char) service[i] > 0x7e)
      return FALSE;
  return TRUE;
}

/**
 * pm_stream_reason_is_valid:
 *
 * Returns: whether @reason (@len bytes) is a refusal or reset reason: at most
 *   PM_STREAM_MAX_REASON_LEN bytes of UTF-8 without control characters (no
 *   NUL, no newline, no escape sequence reaches a log or a screen).
 */
gboolean
pm_stream_reason_is_valid (const char *reason,
                           size_t      len)
{
  const char *p, *end;

  if (len == 0)
    return TRUE;
  if (reason == NULL || len > PM_STREAM_MAX_REASON_LEN)
    return FALSE;
  if (!g_utf8_validate_len (reason, len, NULL))
    return FALSE;
  end = reason + len;
  for (p = reason; p < end; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_iscntrl (c))
        return FALSE;
    }
  return TRUE;
}

/**
 * pm_stream_reason_clamp:
 *
 * Returns: how many bytes of @reason (a NUL-terminated UTF-8 string) fit in a
 *   message: all of it, or its longest prefix of whole characters within
 *   PM_STREAM_MAX_REASON_LEN bytes.
 */
size_t
pm_stream_reason_clamp (const char *reason)
{
  size_t len;

  if (reason == NULL)
    return 0;
  len = strlen (reason);
  if (len <= PM_STREAM_MAX_REASON_LEN)
    return len;
  len = PM_STREAM_MAX_REASON_LEN;
  while (len > 0 && ((unsigned char) reason[len] & 0xc0) == 0x80)
    len--;
  return len;
}

static gboolean
fail (GError    **error,
      int         code,
      const char *format,
      ...) G_GNUC_PRINTF (3, 4);

static gboolean
fail (GError    **error,
      int         code,
      const char *format,
      ...)
{
  va_list args;

  va_start (args, format);
  if (error != NULL)
    *error = g_error_new_valist (PM_STREAM_CONTROL_ERROR, code, format, args);
  va_end (args);
  return FALSE;
}

static gboolean
check_len (PmStreamControlType type,
           size_t              len,
           size_t              min,
           size_t              max,
           GError            **error)
{
  if (len < min)
    return fail (error, PM_STREAM_CONTROL_ERROR_TRUNCATED,
                 "%s message of %zu bytes is truncated (at least %zu)",
                 pm_stream_control_type_name (type), len, min);
  if (len > max)
    return fail (error, PM_STREAM_CONTROL_ERROR_TOO_LONG,
                 "%s message of %zu bytes is too long (at most %zu)",
                 pm_stream_control_type_name (type), len, max);
  return TRUE;
}

static uint32_t
get_le32 (const uint8_t *p)
{
  uint32_t v;

  memcpy (&v, p, sizeof v);
  return GUINT32_FROM_LE (v);
}

static gboolean
check_window (PmStreamControlType type,
              uint32_t            window,
              GError            **error)
{
  if (window < PM_STREAM_MIN_WINDOW || window > PM_STREAM_MAX_WINDOW)
    return fail (error, PM_STREAM_CONTROL_ERROR_BAD_WINDOW,
                 "%s message announces a window of %" G_GUINT32_FORMAT
                 " bytes (allowed: %u to %u)",
                 pm_stream_control_type_name (type), window, (unsigned) PM_STREAM_MIN_WINDOW,
                 (unsigned) PM_STREAM_MAX_WINDOW);
  return TRUE;
}

/**
 * pm_stream_control_parse:
 * @data: one whole control message
 * @msg: (out): the message; its text points into @data
 *
 * Parses one control message strictly: the exact length of its type, the
 * reserved byte zero, windows within bounds, a valid service name or reason.
 * On failure @msg is left untouched.
 *
 * Returns: whether @data is a valid message; otherwise @error says which rule
 *   it broke (PM_STREAM_CONTROL_ERROR).
 */
gboolean
pm_stream_control_parse (const uint8_t   *data,
                         size_t           len,
                         PmStreamControl *msg,
                         GError         **error)
{
  PmStreamControl out = { 0 };

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (msg != NULL, FALSE);

  if (len < PM_STREAM_CONTROL_HEADER_LEN)
    return fail (error, PM_STREAM_CONTROL_ERROR_TRUNCATED,
                 "Control message of %zu bytes is shorter than its header", len);
  out.type = data[0];
  switch (out.type)
    {
    case PM_STREAM_CONTROL_OPEN:
    case PM_STREAM_CONTROL_ACCEPT:
    case PM_STREAM_CONTROL_REFUSE:
    case PM_STREAM_CONTROL_CREDIT:
    case PM_STREAM_CONTROL_FIN:
    case PM_STREAM_CONTROL_RESET:
    case PM_STREAM_CONTROL_CLOSE:
      break;
    default:
      return fail (error, PM_STREAM_CONTROL_ERROR_UNKNOWN_TYPE,
                   "Unknown control message type 0x%02x", data[0]);
    }
  if (data[1] != 0)
    return fail (error, PM_STREAM_CONTROL_ERROR_RESERVED,
                 "%s message has a non-zero reserved byte (0x%02x)",
                 pm_stream_control_type_name (out.type), data[1]);

  switch (out.type)
    {
    case PM_STREAM_CONTROL_OPEN:
      if (!check_len (out.type, len, PM_STREAM_CONTROL_OPEN_MIN,
                      PM_STREAM_CONTROL_HEADER_LEN + 4 + PM_STREAM_MAX_SERVICE_LEN, error))
        return FALSE;
      out.window = get_le32 (data + 2);
      if (!check_window (out.type, out.window, error))
        return FALSE;
      out.text = (const char *) data + 6;
      out.text_len = len - 6;
      if (!pm_stream_service_is_valid (out.text, out.text_len))
        return fail (error, PM_STREAM_CONTROL_ERROR_BAD_SERVICE,
                     "OPEN message names an invalid service (%zu bytes; printable ASCII only)",
                     out.text_len);
      break;

    case PM_STREAM_CONTROL_ACCEPT:
      if (!check_len (out.type, len, PM_STREAM_CONTROL_ACCEPT_LEN, PM_STREAM_CONTROL_ACCEPT_LEN,
                      error))
        return FALSE;
      out.window = get_le32 (data + 2);
      if (!check_window (out.type, out.window, error))
        return FALSE;
      break;

    case PM_STREAM_CONTROL_CREDIT:
      if (!check_len (out.type, len, PM_STREAM_CONTROL_CREDIT_LEN, PM_STREAM_CONTROL_CREDIT_LEN,
                      error))
        return FALSE;
      {
        uint64_t limit;

        memcpy (&limit, data + 2, sizeof limit);
        out.limit = GUINT64_FROM_LE (limit);
      }
      break;

    case PM_STREAM_CONTROL_REFUSE:
    case PM_STREAM_CONTROL_RESET:
      if (!check_len (out.type, len, PM_STREAM_CONTROL_HEADER_LEN, PM_STREAM_CONTROL_MAX_LEN,
                      error))
        return FALSE;
      out.text = (const char *) data + PM_STREAM_CONTROL_HEADER_LEN;
      out.text_len = len - PM_STREAM_CONTROL_HEADER_LEN;
      if (!pm_stream_reason_is_valid (out.text, out.text_len))
        return fail (error, PM_STREAM_CONTROL_ERROR_BAD_REASON,
                     "%s message carries a reason that is not UTF-8 without control characters",
                     pm_stream_control_type_name (out.type));
      if (out.text_len == 0)
        out.text = NULL;
      break;

    case PM_STREAM_CONTROL_FIN:
    case PM_STREAM_CONTROL_CLOSE:
      if (!check_len (out.type, len, PM_STREAM_CONTROL_HEADER_LEN, PM_STREAM_CONTROL_HEADER_LEN,
                      error))
        return FALSE;
      break;

    default:
      g_assert_not_reached ();
    }

  *msg = out;
  return TRUE;
}

static void
put_le32 (uint8_t *p,
          uint32_t v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, sizeof v);
}

static void
put_le64 (uint8_t *p,
          uint64_t v)
{
  v = GUINT64_TO_LE (v);
  memcpy (p, &v, sizeof v);
}

/**
 * pm_stream_control_write:
 * @msg: the message; text and text_len as the type needs
 * @out: where to write it
 *
 * Writes @msg in its wire format. A message the parser would refuse is never
 * written.
 *
 * Returns: its length, or 0 if @msg is invalid or @out_len too small.
 */
size_t
pm_stream_control_write (const PmStreamControl *msg,
                         uint8_t               *out,
                         size_t                 out_len)
{
  size_t len = PM_STREAM_CONTROL_HEADER_LEN;

  g_return_val_if_fail (msg != NULL, 0);
  g_return_val_if_fail (out != NULL || out_len == 0, 0);

  switch (msg->type)
    {
    case PM_STREAM_CONTROL_OPEN:
      if (msg->window < PM_STREAM_MIN_WINDOW || msg->window > PM_STREAM_MAX_WINDOW ||
          !pm_stream_service_is_valid (msg->text, msg->text_len))
        return 0;
      len += 4 + msg->text_len;
      if (out_len < len)
        return 0;
      put_le32 (out + 2, msg->window);
      memcpy (out + 6, msg->text, msg->text_len);
      break;

    case PM_STREAM_CONTROL_ACCEPT:
      if (msg->window < PM_STREAM_MIN_WINDOW || msg->window > PM_STREAM_MAX_WINDOW)
        return 0;
      len += 4;
      if (out_len < len)
        return 0;
      put_le32 (out + 2, msg->window);
      break;

    case PM_STREAM_CONTROL_CREDIT:
      len += 8;
      if (out_len < len)
        return 0;
      put_le64 (out + 2, msg->limit);
      break;

    case PM_STREAM_CONTROL_REFUSE:
    case PM_STREAM_CONTROL_RESET:
      if (!pm_stream_reason_is_valid (msg->text, msg->text_len))
        return 0;
      len += msg->text_len;
      if (out_len < len)
        return 0;
      if (msg->text_len > 0)
        memcpy (out + 2, msg->text, msg->text_len);
      break;

    case PM_STREAM_CONTROL_FIN:
    case PM_STREAM_CONTROL_CLOSE:
      if (out_len < len)
        return 0;
      break;

    default:
      return 0;
    }
  out[0] = (uint8_t) msg->type;
  out[1] = 0;
  return len;
}
