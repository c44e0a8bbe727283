/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The stream layer's control messages (core/pm-stream-control.c,
 * docs/PROTOCOL.md §8) on arbitrary bytes.
 *
 * An accepted message must be canonical: written again, it gives the input
 * byte for byte, and its fields obey the rules of its type (a window within
 * bounds, a printable service name, a reason of UTF-8 without control
 * characters, a view inside the input). A refused one leaves the output
 * untouched and says why in the PM_STREAM_CONTROL_ERROR domain.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-stream-control.h"

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
check_accepted (const uint8_t         *data,
                size_t                 size,
                const PmStreamControl *msg)
{
  uint8_t out[PM_STREAM_CONTROL_MAX_LEN];
  size_t  len;

  g_assert (size >= PM_STREAM_CONTROL_HEADER_LEN && size <= PM_STREAM_CONTROL_MAX_LEN);
  g_assert (data[0] == msg->type && data[1] == 0);
  switch (msg->type)
    {
    case PM_STREAM_CONTROL_OPEN:
      g_assert (msg->window >= PM_STREAM_MIN_WINDOW && msg->window <= PM_STREAM_MAX_WINDOW);
      g_assert (msg->text == (const char *) data + 6 && msg->text_len == size - 6);
      g_assert (pm_stream_service_is_valid (msg->text, msg->text_len));
      g_assert (memchr (msg->text, ' ', msg->text_len) == NULL);
      break;
    case PM_STREAM_CONTROL_ACCEPT:
      g_assert (size == PM_STREAM_CONTROL_ACCEPT_LEN);
      g_assert (msg->window >= PM_STREAM_MIN_WINDOW && msg->window <= PM_STREAM_MAX_WINDOW);
      break;
    case PM_STREAM_CONTROL_CREDIT:
      g_assert (size == PM_STREAM_CONTROL_CREDIT_LEN);
      break;
    case PM_STREAM_CONTROL_REFUSE:
    case PM_STREAM_CONTROL_RESET:
      g_assert (msg->text_len == size - PM_STREAM_CONTROL_HEADER_LEN);
      g_assert (msg->text_len <= PM_STREAM_MAX_REASON_LEN);
      if (msg->text_len > 0)
        {
          g_assert (msg->text == (const char *) data + PM_STREAM_CONTROL_HEADER_LEN);
          g_assert (g_utf8_validate_len (msg->text, msg->text_len, NULL));
          g_assert (memchr (msg->text, '\0', msg->text_len) == NULL);
          g_assert (memchr (msg->text, '\n', msg->text_len) == NULL);
        }
      else
        g_assert (msg->text == NULL);
      break;
    case PM_STREAM_CONTROL_FIN:
    case PM_STREAM_CONTROL_CLOSE:
      g_assert (size == PM_STREAM_CONTROL_HEADER_LEN);
      break;
    default:
      g_assert_not_reached ();
    }

  /* Canonical: the writer gives back the very same bytes... */
  len = pm_stream_control_write (msg, out, sizeof out);
  g_assert (len == size);
  g_assert (memcmp (out, data, size) == 0);
  /* ... and refuses a buffer one byte short. */
  g_assert (pm_stream_control_write (msg, out, size - 1) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr (GError) error = NULL;
  PmStreamControl msg, untouched;

  memset (&msg, 0xa5, sizeof msg);
  untouched = msg;
  if (pm_stream_control_parse (data, size, &msg, &error))
    {
      g_assert (error == NULL);
      check_accepted (data, size, &msg);
    }
  else
    {
      g_assert (error != NULL);
      g_assert (error->domain == PM_STREAM_CONTROL_ERROR);
      g_assert (error->code >= PM_STREAM_CONTROL_ERROR_TRUNCATED &&
                error->code <= PM_STREAM_CONTROL_ERROR_BAD_REASON);
      g_assert (error->message != NULL && error->message[0] != '\0');
      g_assert (memcmp (&msg, &untouched, sizeof msg) == 0);
    }

  /* The reason helpers agree with each other on any text. */
  if (size <= PM_STREAM_MAX_REASON_LEN && pm_stream_reason_is_valid ((const char *) data, size))
    g_assert (size == 0 || memchr (data, '\0', size) == NULL);
  return 0;
}
