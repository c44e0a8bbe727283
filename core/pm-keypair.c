/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-keypair"

#include "pm-keypair.h"

#include <sodium.h>

#include "pm-noise.h"

/* pm_keypair_generate:
 * Fills @keypair with a fresh X25519 key pair from libsodium's CSPRNG. */
void
pm_keypair_generate (PmKeypair *keypair)
{
  g_return_if_fail (keypair != NULL);

  pm_noise_ensure_init ();
  crypto_box_keypair (keypair->pub, keypair->priv);
}

/* pm_keypair_from_private:
 * Derives the public half of @priv (clamping happens inside X25519). */
void
pm_keypair_from_private (PmKeypair    *keypair,
                         const uint8_t priv[PM_KEY_LEN])
{
  g_return_if_fail (keypair != NULL);
  g_return_if_fail (priv != NULL);

  pm_noise_ensure_init ();
  memmove (keypair->priv, priv, PM_KEY_LEN);
  crypto_scalarmult_base (keypair->pub, keypair->priv);
}

void
pm_keypair_clear (PmKeypair *keypair)
{
  if (keypair != NULL)
    sodium_memzero (keypair, sizeof *keypair);
}

/* pm_keypair_dh:
 * X25519(@priv, @pub). Refuses a public key of small order, which would give the
 * all-zero shared secret (libsodium checks the output for us). */
gboolean
pm_keypair_dh (const uint8_t priv[PM_KEY_LEN],
               const uint8_t pub[PM_KEY_LEN],
               uint8_t       out[PM_KEY_LEN],
               GError      **error)
{
  if (crypto_scalarmult (out, priv, pub) != 0)
    {
      sodium_memzero (out, PM_KEY_LEN);
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY,
                           "The peer's public key is of small order (X25519 gave an all-zero secret)");
      return FALSE;
    }
  return TRUE;
}

char *
pm_key_to_hex (const uint8_t key[PM_KEY_LEN])
{
  char hex[PM_KEY_LEN * 2 + 1];

  sodium_bin2hex (hex, sizeof hex, key, PM_KEY_LEN);
  return g_strdup (hex);
}

/* pm_key_fingerprint:
 * A short, human-comparable fingerprint of a public key: the first 10 bytes of
 * BLAKE2b(pub) as five groups of four hex digits, e.g. "3f2a-91c0-...". */
char *
pm_key_fingerprint (const uint8_t pub[PM_KEY_LEN])
{
  uint8_t  digest[10];
  GString *s = g_string_new (NULL);

  crypto_generichash (digest, sizeof digest, pub, PM_KEY_LEN, NULL, 0);
  for (size_t i = 0; i < sizeof digest; i += 2)
    g_string_append_printf (s, "%s%02x%02x", i ? "-" : "", digest[i], digest[i + 1]);
  return g_string_free (s, FALSE);
}
