/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-noise"

#include "pm-symmetric-state-private.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <string.h>

/* BLAKE2s and HMAC-BLAKE2s both come from libcrypto. The EVP_MD and EVP_MAC
 * are fetched once per process and every SymmetricState keeps one digest and
 * one MAC context, so a handshake allocates nothing per hash. */

struct _PmSymmetricState {
  PmCipherState *cs;
  uint8_t        ck[PM_NOISE_HASHLEN];
  uint8_t        h[PM_NOISE_HASHLEN];
  EVP_MD_CTX    *md;
  EVP_MAC_CTX   *mac;
};

static EVP_MD *blake2s_md;
/* An HMAC context with its digest already set: duplicating it is much cheaper
 * than setting the digest by name on a new context for every handshake. */
static EVP_MAC_CTX *hmac_template;

static void
ensure_algorithms (void)
{
  static gsize done;

  if (g_once_init_enter (&done))
    {
      EVP_MAC   *hmac = EVP_MAC_fetch (NULL, "HMAC", NULL);
      OSSL_PARAM params[2];

      blake2s_md = EVP_MD_fetch (NULL, "BLAKE2S-256", NULL);
      hmac_template = hmac != NULL ? EVP_MAC_CTX_new (hmac) : NULL;
      params[0] = OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST, (char *) "BLAKE2S-256", 0);
      params[1] = OSSL_PARAM_construct_end ();
      if (blake2s_md == NULL || hmac_template == NULL ||
          EVP_MAC_CTX_set_params (hmac_template, params) != 1)
        g_error ("libcrypto lacks BLAKE2S-256 or HMAC; PiperMesh needs OpenSSL 3");
      EVP_MAC_free (hmac); /* the template holds its own reference */
      g_once_init_leave (&done, 1);
    }
}

static void
hash2 (EVP_MD_CTX    *md,
       const uint8_t *a,
       size_t         a_len,
       const uint8_t *b,
       size_t         b_len,
       uint8_t        out[PM_NOISE_HASHLEN])
{
  unsigned int outl = 0;

  if (EVP_DigestInit_ex2 (md, blake2s_md, NULL) != 1 ||
      EVP_DigestUpdate (md, a, a_len) != 1 ||
      (b_len > 0 && EVP_DigestUpdate (md, b, b_len) != 1) ||
      EVP_DigestFinal_ex (md, out, &outl) != 1 || outl != PM_NOISE_HASHLEN)
    g_error ("libcrypto BLAKE2s failed");
}

void
pm_blake2s (const uint8_t *a,
            size_t         a_len,
            const uint8_t *b,
            size_t         b_len,
            uint8_t        out[PM_NOISE_HASHLEN])
{
  EVP_MD_CTX *md;

  ensure_algorithms ();
  md = EVP_MD_CTX_new ();
  hash2 (md, a, a_len, b, b_len, out);
  EVP_MD_CTX_free (md);
}

/* HMAC-HASH(key, data) with an optional one-byte suffix, which is all HKDF needs. */
static void
hmac2 (EVP_MAC_CTX   *mac,
       const uint8_t  key[PM_NOISE_HASHLEN],
       const uint8_t *data,
       size_t         data_len,
       const uint8_t *suffix,
       uint8_t        out[PM_NOISE_HASHLEN])
{
  size_t outl = 0;

  if (EVP_MAC_init (mac, key, PM_NOISE_HASHLEN, NULL) != 1 ||
      (data_len > 0 && EVP_MAC_update (mac, data, data_len) != 1) ||
      (suffix != NULL && EVP_MAC_update (mac, suffix, 1) != 1) ||
      EVP_MAC_final (mac, out, &outl, PM_NOISE_HASHLEN) != 1 || outl != PM_NOISE_HASHLEN)
    g_error ("libcrypto HMAC-BLAKE2s failed");
}

/* HKDF(chaining_key, input_key_material, num_outputs) of the spec, §4.3. */
static void
hkdf (PmSymmetricState *ss,
      const uint8_t    *ikm,
      size_t            ikm_len,
      uint8_t           out1[PM_NOISE_HASHLEN],
      uint8_t           out2[PM_NOISE_HASHLEN],
      uint8_t          *out3)
{
  static const uint8_t one = 0x01, two = 0x02, three = 0x03;
  uint8_t              temp_key[PM_NOISE_HASHLEN];

  hmac2 (ss->mac, ss->ck, ikm, ikm_len, NULL, temp_key);
  hmac2 (ss->mac, temp_key, NULL, 0, &one, out1);
  hmac2 (ss->mac, temp_key, out1, PM_NOISE_HASHLEN, &two, out2);
  if (out3 != NULL)
    hmac2 (ss->mac, temp_key, out2, PM_NOISE_HASHLEN, &three, out3);
  sodium_memzero (temp_key, sizeof temp_key);
}

PmSymmetricState *
pm_symmetric_state_new (const char *protocol_name)
{
  PmSymmetricState *ss = g_new0 (PmSymmetricState, 1);
  size_t            len = strlen (protocol_name);

  ensure_algorithms ();
  ss->cs = pm_cipher_state_new ();
  ss->md = EVP_MD_CTX_new ();
  ss->mac = EVP_MAC_CTX_dup (hmac_template);
  if (ss->md == NULL || ss->mac == NULL)
    g_error ("libcrypto could not set up HMAC-BLAKE2s");

  /* InitializeSymmetric(protocol_name) */
  if (len <= PM_NOISE_HASHLEN)
    memcpy (ss->h, protocol_name, len); /* the rest stays zero: padding */
  else
    hash2 (ss->md, (const uint8_t *) protocol_name, len, NULL, 0, ss->h);
  memcpy (ss->ck, ss->h, PM_NOISE_HASHLEN);
  pm_cipher_state_initialize_key (ss->cs, NULL);
  return ss;
}

/* An independent copy: reading a message into it leaves @ss untouched. */
PmSymmetricState *
pm_symmetric_state_copy (PmSymmetricState *ss)
{
  PmSymmetricState *copy = g_new0 (PmSymmetricState, 1);

  copy->cs = pm_cipher_state_copy (ss->cs);
  memcpy (copy->ck, ss->ck, sizeof ss->ck);
  memcpy (copy->h, ss->h, sizeof ss->h);
  copy->md = EVP_MD_CTX_new ();
  copy->mac = EVP_MAC_CTX_dup (hmac_template);
  if (copy->md == NULL || copy->mac == NULL)
    g_error ("libcrypto could not set up HMAC-BLAKE2s");
  return copy;
}

void
pm_symmetric_state_free (PmSymmetricState *ss)
{
  if (ss == NULL)
    return;
  pm_cipher_state_free (ss->cs);
  EVP_MD_CTX_free (ss->md);
  EVP_MAC_CTX_free (ss->mac);
  sodium_memzero (ss->ck, sizeof ss->ck);
  sodium_memzero (ss->h, sizeof ss->h);
  g_free (ss);
}

void
pm_symmetric_state_mix_key (PmSymmetricState *ss,
                            const uint8_t    *ikm,
                            size_t            len)
{
  uint8_t temp_k[PM_NOISE_HASHLEN];

  hkdf (ss, ikm, len, ss->ck, temp_k, NULL);
  pm_cipher_state_initialize_key (ss->cs, temp_k);
  sodium_memzero (temp_k, sizeof temp_k);
}

void
pm_symmetric_state_mix_hash (PmSymmetricState *ss,
                             const uint8_t    *data,
                             size_t            len)
{
  hash2 (ss->md, ss->h, PM_NOISE_HASHLEN, data, len, ss->h);
}

void
pm_symmetric_state_mix_key_and_hash (PmSymmetricState *ss,
                                     const uint8_t    *ikm,
                                     size_t            len)
{
  uint8_t temp_h[PM_NOISE_HASHLEN];
  uint8_t temp_k[PM_NOISE_HASHLEN];

  hkdf (ss, ikm, len, ss->ck, temp_h, temp_k);
  pm_symmetric_state_mix_hash (ss, temp_h, sizeof temp_h);
  pm_cipher_state_initialize_key (ss->cs, temp_k);
  sodium_memzero (temp_h, sizeof temp_h);
  sodium_memzero (temp_k, sizeof temp_k);
}

gboolean
pm_symmetric_state_has_key (PmSymmetricState *ss)
{
  return pm_cipher_state_has_key (ss->cs);
}

/* EncryptAndHash: @out receives len (+16 with a key) bytes; MixHash(ciphertext). */
gboolean
pm_symmetric_state_encrypt_and_hash (PmSymmetricState *ss,
                                     const uint8_t    *plaintext,
                                     size_t            len,
                                     uint8_t          *out,
                                     GError          **error)
{
  size_t out_len = len + (pm_cipher_state_has_key (ss->cs) ? PM_NOISE_TAGLEN : 0);

  if (!pm_cipher_state_encrypt_with_ad (ss->cs, ss->h, PM_NOISE_HASHLEN, plaintext, len, out, error))
    return FALSE;
  pm_symmetric_state_mix_hash (ss, out, out_len);
  return TRUE;
}

/* DecryptAndHash: h is updated with the ciphertext only if it authenticates. */
gboolean
pm_symmetric_state_decrypt_and_hash (PmSymmetricState *ss,
                                     const uint8_t    *ciphertext,
                                     size_t            len,
                                     uint8_t          *out,
                                     GError          **error)
{
  uint8_t new_h[PM_NOISE_HASHLEN];

  /* Hash first into a temporary, since @out may overlap @ciphertext. */
  hash2 (ss->md, ss->h, PM_NOISE_HASHLEN, ciphertext, len, new_h);
  if (!pm_cipher_state_decrypt_with_ad (ss->cs, ss->h, PM_NOISE_HASHLEN, ciphertext, len, out, error))
    return FALSE;
  memcpy (ss->h, new_h, PM_NOISE_HASHLEN);
  return TRUE;
}

const uint8_t *
pm_symmetric_state_get_handshake_hash (PmSymmetricState *ss)
{
  return ss->h;
}

void
pm_symmetric_state_split (PmSymmetricState *ss,
                          PmCipherState   **c1,
                          PmCipherState   **c2)
{
  uint8_t k1[PM_NOISE_HASHLEN], k2[PM_NOISE_HASHLEN];

  hkdf (ss, NULL, 0, k1, k2, NULL);
  *c1 = pm_cipher_state_new ();
  *c2 = pm_cipher_state_new ();
  pm_cipher_state_initialize_key (*c1, k1);
  pm_cipher_state_initialize_key (*c2, k2);
  sodium_memzero (k1, sizeof k1);
  sodium_memzero (k2, sizeof k2);
}
