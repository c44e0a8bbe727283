/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * pm_pair_code_parse() on arbitrary text (what a QR code, a paste or a link
 * gives; the input up to its first NUL byte). A refused text gets a
 * PM_PAIR_CODE_ERROR with a message and nothing else. An accepted one holds
 * fields within their limits, and written back with pm_pair_code_to_uri() it
 * reads back with equal fields, and that second text is canonical (written
 * again, the same bytes). Leaks are caught by LeakSanitizer.
 *
 * Seeds (corpus/pair-code, written by hand; test-pair-code checks that every
 * ok-* reads back and that every bad-<reason>-* is refused with that reason):
 * the documented example, one IPv4 address, fields out of order with
 * lower-case escapes, a Unicode name, the largest code (798 bytes), and near
 * misses of every kind.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-pair-code.h"

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
check_accepted (const char       *text,
                const PmPairCode *code)
{
  g_autofree char *uri = NULL;
  g_autofree char *again = NULL;
  g_autoptr (PmPairCode) back = NULL;
  g_autoptr (GError) error = NULL;

  g_assert (strlen (text) <= PM_PAIR_CODE_MAX_LEN);
  g_assert (g_str_has_prefix (text, PM_PAIR_CODE_PREFIX));
  g_assert (code->addresses->len >= 1 && code->addresses->len <= PM_PAIR_CODE_MAX_ADDRESSES);
  for (unsigned i = 0; i < code->addresses->len; i++)
    g_assert (G_IS_INET_SOCKET_ADDRESS (g_ptr_array_index (code->addresses, i)));
  g_assert (code->expires >= 1 && code->expires <= PM_PAIR_CODE_MAX_EXPIRY);
  g_assert (code->name != NULL && code->name[0] != '\0');
  g_assert (strlen (code->name) <= PM_PAIR_CODE_MAX_NAME_LEN);
  g_assert (g_utf8_validate (code->name, -1, NULL));

  uri = pm_pair_code_to_uri (code);
  g_assert (uri != NULL && strlen (uri) <= PM_PAIR_CODE_MAX_LEN);
  back = pm_pair_code_parse (uri, &error);
  if (back == NULL)
    g_error ("%s read back from %s: %s", uri, text, error->message);
  g_assert (pm_pair_code_equal (code, back));
  again = pm_pair_code_to_uri (back);
  g_assert (strcmp (again, uri) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) code = pm_pair_code_parse (text, &error);

  if (code != NULL)
    {
      g_assert (error == NULL);
      check_accepted (text, code);
    }
  else
    {
      g_assert (error != NULL);
      g_assert (error->domain == PM_PAIR_CODE_ERROR);
      g_assert (error->code >= PM_PAIR_CODE_ERROR_TOO_LONG &&
                error->code <= PM_PAIR_CODE_ERROR_INVALID_FIELD);
      g_assert (error->message != NULL && error->message[0] != '\0');
    }

  return 0;
}
