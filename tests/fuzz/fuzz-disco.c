/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * pm_disco_parse() on arbitrary bytes (one decrypted transport plaintext).
 * The encoding is canonical: an accepted message written back with
 * pm_disco_write() gives exactly the input, and a buffer one byte short gets
 * nothing. A refused one leaves the output untouched and says why in the
 * PM_DISCO_ERROR domain. Leaks (GInetSocketAddress, endpoint arrays) are
 * caught by LeakSanitizer.
 *
 * Seeds (corpus/disco, written by hand; test-disco checks that every ok-*
 * parses and writes back identically and that every bad-* is refused): one
 * valid message of each type and family (a STREAM carrying an SCTP INIT
 * header, a PING, PONGs for IPv4, IPv6 and the relay, CALL_ME_MAYBEs empty,
 * mixed and at the 16-endpoint maximum) and near misses (wrong lengths, bad
 * families, ports, flags and addresses, one endpoint too many).
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-disco.h"

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
check_accepted (const uint8_t        *data,
                size_t                size,
                const PmDiscoMessage *m)
{
  g_autofree uint8_t *out = g_malloc (size + 1);

  g_assert (size > 0);
  g_assert ((uint8_t) m->type == data[0]);

  switch (m->type)
    {
    case PM_DISCO_STREAM:
      g_assert (m->stream == data + 1 && m->stream_len == size - 1 && m->stream_len > 0);
      g_assert (m->seen == NULL && m->endpoints == NULL);
      break;

    case PM_DISCO_PING:
      g_assert (size == PM_DISCO_PING_LEN);
      g_assert (memcmp (m->tx_id, data + 1, PM_DISCO_TX_ID_LEN) == 0);
      g_assert (m->seen == NULL && m->endpoints == NULL && m->stream == NULL);
      break;

    case PM_DISCO_PONG:
      g_assert (size >= PM_DISCO_PONG_MIN_LEN && size <= PM_DISCO_PONG_MAX_LEN);
      g_assert (memcmp (m->tx_id, data + 1, PM_DISCO_TX_ID_LEN) == 0);
      g_assert ((m->seen == NULL) == (size == PM_DISCO_PONG_MIN_LEN));
      g_assert (m->seen == NULL || pm_disco_address_is_valid (m->seen));
      g_assert (m->endpoints == NULL && m->stream == NULL);
      break;

    case PM_DISCO_CALL_ME_MAYBE:
      g_assert (size <= PM_DISCO_MAX_LEN);
      g_assert (m->endpoints != NULL && m->endpoints->len == data[1]);
      g_assert (m->endpoints->len <= PM_DISCO_MAX_ENDPOINTS);
      for (unsigned i = 0; i < m->endpoints->len; i++)
        {
          const PmDiscoEndpoint *e = g_ptr_array_index (m->endpoints, i);

          g_assert ((e->flags & ~PM_DISCO_ENDPOINT_FLAGS_ALL) == 0);
          g_assert (pm_disco_address_is_valid (e->address));
        }
      g_assert (m->seen == NULL && m->stream == NULL);
      break;

    default:
      g_error ("pm_disco_parse() accepted type 0x%02x", data[0]);
    }

  /* Canonical: written back, the same bytes; one byte short, nothing. */
  memset (out, 0x5a, size + 1);
  g_assert (pm_disco_write (out, size + 1, m) == size);
  g_assert (memcmp (out, data, size) == 0);
  g_assert (out[size] == 0x5a);
  memset (out, 0x5a, size + 1);
  g_assert (pm_disco_write (out, size - 1, m) == 0);
  for (size_t i = 0; i <= size; i++)
    g_assert (out[i] == 0x5a);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr (GError) error = NULL;
  PmDiscoMessage m;
  PmDiscoMessage untouched;

  memset (&m, 0xa5, sizeof m);
  untouched = m;

  if (pm_disco_parse (data, size, &m, &error))
    {
      g_assert (error == NULL);
      check_accepted (data, size, &m);
      pm_disco_message_clear (&m);
    }
  else
    {
      g_assert (error != NULL);
      g_assert (error->domain == PM_DISCO_ERROR);
      g_assert (error->code >= PM_DISCO_ERROR_TRUNCATED &&
                error->code <= PM_DISCO_ERROR_TOO_MANY_ENDPOINTS);
      g_assert (error->message != NULL && error->message[0] != '\0');
      /* On failure the output is left untouched. */
      g_assert (memcmp (&m, &untouched, sizeof m) == 0);
    }

  return 0;
}
