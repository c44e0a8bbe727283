/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-noise"

#include "pm-verification.h"

#include <string.h>

#include "pm-symmetric-state-private.h"

/* Crockford's base32: no I, L, O or U, so a code read aloud is not misheard. */
static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * pm_verification_code:
 * @handshake_hash: the Noise handshake hash (channel binding) of a finished handshake
 *
 * Derives the short code both devices show during pairing:
 * BLAKE2s("pipermesh-verify-v1" || h), first 40 bits, as 8 Crockford base32
 * characters. A man in the middle would have two different handshakes, so the
 * two screens would differ.
 *
 * Returns: (transfer full): 8 characters, e.g. "7KQ2M9XD"
 */
char *
pm_verification_code (const uint8_t handshake_hash[PM_NOISE_HASHLEN])
{
  static const char label[] = "pipermesh-verify-v1";
  uint8_t           digest[PM_NOISE_HASHLEN];
  uint64_t          bits = 0;
  char             *code = g_malloc (PM_VERIFICATION_CODE_LEN + 1);

  pm_blake2s ((const uint8_t *) label, strlen (label), handshake_hash, PM_NOISE_HASHLEN, digest);
  for (int i = 0; i < 5; i++)
    bits = (bits << 8) | digest[i];
  for (int i = PM_VERIFICATION_CODE_LEN - 1; i >= 0; i--, bits >>= 5)
    code[i] = alphabet[bits & 31];
  code[PM_VERIFICATION_CODE_LEN] = '\0';
  return code;
}
