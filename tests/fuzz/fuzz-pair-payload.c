/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The pairing exchange's own messages (core/pm-pair-payload.c) on arbitrary
 * bytes. Input: one selector byte, then the message: an even selector feeds
 * pm_pair_hello_parse() (the HELLO inside Noise_XX messages 2 and 3), an odd
 * one pm_pair_confirm_parse() (ACCEPT / REJECT / STORED after the
 * handshake). Both codecs are canonical: an accepted message written back
 * gives exactly the input, and a buffer one byte short gets nothing. A
 * refused one leaves the output untouched and says why in the
 * PM_PAIR_PAYLOAD_ERROR domain.
 *
 * Seeds (corpus/pair-payload, written by hand; test-paired-store checks that
 * every ok-* parses and writes back identically and that every bad-* is
 * refused): hellos of every device type, the shortest and longest names,
 * multi-byte names, port 0 and 65535; confirmations of each kind, an empty
 * and a 256-byte reason; and near misses (truncated, trailing bytes, version
 * 2, unknown types and kinds, control characters, invalid UTF-8, outer
 * spaces, a 257-byte reason).
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-pair-payload.h"

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
fuzz_hello (const uint8_t *data,
            size_t         size)
{
  g_autoptr (GError) error = NULL;
  PmPairHello hello, untouched;
  uint8_t     out[PM_PAIR_HELLO_MAX_LEN + 1];

  memset (&hello, 0xa5, sizeof hello);
  memcpy (&untouched, &hello, sizeof hello);
  if (!pm_pair_hello_parse (data, size, &hello, &error))
    {
      g_assert (error != NULL && error->domain == PM_PAIR_PAYLOAD_ERROR);
      g_assert (memcmp (&hello, &untouched, sizeof hello) == 0);
      return;
    }
  g_assert (error == NULL);
  g_assert (size >= PM_PAIR_HELLO_MIN_LEN && size <= PM_PAIR_HELLO_MAX_LEN);
  g_assert (pm_pair_device_type_is_valid (hello.device_type));
  g_assert (strlen (hello.name) == size - PM_PAIR_HELLO_HEADER_LEN);
  g_assert (g_utf8_validate (hello.name, -1, NULL));
  g_assert (pm_pair_hello_write (&hello, out, sizeof out) == size);
  g_assert (memcmp (out, data, size) == 0);
  memset (out, 0x5a, sizeof out);
  g_assert (pm_pair_hello_write (&hello, out, size - 1) == 0);
  for (size_t i = 0; i < sizeof out; i++)
    g_assert (out[i] == 0x5a);
}

static void
fuzz_confirm (const uint8_t *data,
              size_t         size)
{
  g_autoptr (GError) error = NULL;
  PmPairConfirm confirm, untouched;
  uint8_t       out[PM_PAIR_CONFIRM_MAX_LEN + 1];

  memset (&confirm, 0xa5, sizeof confirm);
  memcpy (&untouched, &confirm, sizeof confirm);
  if (!pm_pair_confirm_parse (data, size, &confirm, &error))
    {
      g_assert (error != NULL && error->domain == PM_PAIR_PAYLOAD_ERROR);
      g_assert (memcmp (&confirm, &untouched, sizeof confirm) == 0);
      return;
    }
  g_assert (error == NULL);
  g_assert (size >= 1 && size <= PM_PAIR_CONFIRM_MAX_LEN);
  g_assert (pm_pair_confirm_write (confirm.kind,
                                   confirm.kind == PM_PAIR_CONFIRM_REJECT ? confirm.reason : NULL,
                                   out, sizeof out) == size);
  g_assert (memcmp (out, data, size) == 0);
  memset (out, 0x5a, sizeof out);
  g_assert (pm_pair_confirm_write (confirm.kind,
                                   confirm.kind == PM_PAIR_CONFIRM_REJECT ? confirm.reason : NULL,
                                   out, size - 1) == 0);
  for (size_t i = 0; i < sizeof out; i++)
    g_assert (out[i] == 0x5a);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  if (size < 1)
    return 0;
  if ((data[0] & 1) == 0)
    fuzz_hello (data + 1, size - 1);
  else
    fuzz_confirm (data + 1, size - 1);
  return 0;
}
