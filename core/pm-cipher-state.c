/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-noise"

#include "pm-cipher-state.h"

#include <limits.h>
#include <openssl/evp.h>
#include <string.h>
#include <sodium.h>

/* ChaCha20-Poly1305 (RFC 8439) from two packaged implementations, whichever
 * is faster for the message size (pipermesh-bench measures both):
 *
 *  - OpenSSL 3's EVP code (AVX2/AVX-512) wins for large messages: about 1.1×
 *    libsodium 1.0.18 at 1400 bytes and 2.1× at 64 KiB. Its EVP layer costs
 *    about 0.5 µs per message, so one EVP_CIPHER_CTX per CipherState is keyed
 *    once and only its IV changes per message.
 *  - libsodium's one-shot calls win below about 1 KiB (1.8× at 64 bytes), which
 *    covers keepalives, small interactive messages and every handshake message.
 *
 * Both produce the same bytes (the unit tests check one against the other). */
#define EVP_MIN_LEN 1024

struct _PmCipherState {
  EVP_CIPHER_CTX *ctx; /* created on first use of a large message */
  uint8_t         key[PM_NOISE_KEYLEN];
  uint64_t        nonce;
  int             direction; /* what ctx was last set up for: 1 encrypt, 0 decrypt, -1 none */
  gboolean        has_key;
};

static const EVP_CIPHER *
chacha20_poly1305 (void)
{
  static EVP_CIPHER *cipher;

  if (g_once_init_enter (&cipher))
    {
      EVP_CIPHER *c = EVP_CIPHER_fetch (NULL, "ChaCha20-Poly1305", NULL);
      if (c == NULL)
        g_error ("libcrypto has no ChaCha20-Poly1305; PiperMesh needs OpenSSL 3");
      g_once_init_leave (&cipher, c);
    }
  return cipher;
}

PmCipherState *
pm_cipher_state_new (void)
{
  PmCipherState *cs = g_new0 (PmCipherState, 1);

  cs->direction = -1;
  return cs;
}

void
pm_cipher_state_free (PmCipherState *cs)
{
  if (cs == NULL)
    return;
  EVP_CIPHER_CTX_free (cs->ctx); /* OpenSSL cleanses the key schedule */
  sodium_memzero (cs->key, sizeof cs->key);
  g_free (cs);
}

/* InitializeKey(k): @key NULL means "empty", as in the spec. */
void
pm_cipher_state_initialize_key (PmCipherState *cs,
                                const uint8_t *key)
{
  g_return_if_fail (cs != NULL);

  cs->nonce = 0;
  cs->direction = -1;
  if (key == NULL)
    {
      sodium_memzero (cs->key, sizeof cs->key);
      cs->has_key = FALSE;
      return;
    }
  memmove (cs->key, key, PM_NOISE_KEYLEN);
  cs->has_key = TRUE;
}

gboolean
pm_cipher_state_has_key (const PmCipherState *cs)
{
  return cs->has_key;
}

void
pm_cipher_state_set_nonce (PmCipherState *cs,
                           uint64_t       nonce)
{
  cs->nonce = nonce;
}

uint64_t
pm_cipher_state_get_nonce (const PmCipherState *cs)
{
  return cs->nonce;
}

/* Noise's ChaChaPoly nonce: 32 zero bits, then the 64-bit counter little-endian. */
static inline void
encode_nonce (uint8_t  iv[12],
              uint64_t n)
{
  iv[0] = iv[1] = iv[2] = iv[3] = 0;
  for (int i = 0; i < 8; i++)
    iv[4 + i] = (uint8_t) (n >> (8 * i));
}

static gboolean
setup (PmCipherState *cs,
       uint64_t       n,
       int            direction)
{
  uint8_t iv[12];
  int     ok;

  encode_nonce (iv, n);
  if (G_UNLIKELY (cs->ctx == NULL))
    {
      cs->ctx = EVP_CIPHER_CTX_new ();
      if (cs->ctx == NULL)
        g_error ("out of memory for an EVP cipher context");
    }
  if (cs->direction == direction)
    ok = EVP_CipherInit_ex (cs->ctx, NULL, NULL, NULL, iv, direction);
  else
    {
      ok = EVP_CipherInit_ex (cs->ctx, chacha20_poly1305 (), NULL, cs->key, iv, direction);
      cs->direction = ok ? direction : -1;
    }
  return ok == 1;
}

static gboolean
aead_seal (PmCipherState *cs,
           uint64_t       n,
           const uint8_t *ad,
           size_t         ad_len,
           const uint8_t *in,
           size_t         len,
           uint8_t       *out,
           GError       **error)
{
  int outl = 0;

  if (len > PM_NOISE_MAX_MESSAGE - PM_NOISE_TAGLEN || ad_len > INT_MAX)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE,
                   "Plaintext of %zu bytes does not fit one Noise message", len);
      return FALSE;
    }
  if (len < EVP_MIN_LEN)
    {
      uint8_t iv[12];

      encode_nonce (iv, n);
      crypto_aead_chacha20poly1305_ietf_encrypt_detached (out, out + len, NULL, in, len, ad, ad_len,
                                                          NULL, iv, cs->key);
      return TRUE;
    }
  if (!setup (cs, n, 1) ||
      (ad_len > 0 && EVP_CipherUpdate (cs->ctx, NULL, &outl, ad, (int) ad_len) != 1) ||
      (len > 0 && EVP_CipherUpdate (cs->ctx, out, &outl, in, (int) len) != 1) ||
      EVP_CipherFinal_ex (cs->ctx, out + len, &outl) != 1 ||
      EVP_CIPHER_CTX_ctrl (cs->ctx, EVP_CTRL_AEAD_GET_TAG, PM_NOISE_TAGLEN, out + len) != 1)
    {
      cs->direction = -1;
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           "libcrypto failed to encrypt with ChaCha20-Poly1305");
      return FALSE;
    }
  return TRUE;
}

static gboolean
aead_open (PmCipherState *cs,
           uint64_t       n,
           const uint8_t *ad,
           size_t         ad_len,
           const uint8_t *in,
           size_t         len,
           uint8_t       *out,
           GError       **error)
{
  int    outl = 0;
  size_t plen;

  if (len < PM_NOISE_TAGLEN)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TRUNCATED,
                   "Ciphertext of %zu bytes is shorter than the 16-byte tag", len);
      return FALSE;
    }
  if (len > PM_NOISE_MAX_MESSAGE || ad_len > INT_MAX)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE,
                   "Ciphertext of %zu bytes is over the Noise limit of 65535", len);
      return FALSE;
    }
  plen = len - PM_NOISE_TAGLEN;
  if (plen < EVP_MIN_LEN)
    {
      uint8_t iv[12];

      encode_nonce (iv, n);
      if (crypto_aead_chacha20poly1305_ietf_decrypt_detached (out, NULL, in, plen, in + plen, ad,
                                                              ad_len, iv, cs->key) == 0)
        return TRUE;
      goto failed;
    }
  if (!setup (cs, n, 0) ||
      (ad_len > 0 && EVP_CipherUpdate (cs->ctx, NULL, &outl, ad, (int) ad_len) != 1) ||
      (plen > 0 && EVP_CipherUpdate (cs->ctx, out, &outl, in, (int) plen) != 1) ||
      EVP_CIPHER_CTX_ctrl (cs->ctx, EVP_CTRL_AEAD_SET_TAG, PM_NOISE_TAGLEN,
                           (void *) (in + plen)) != 1 ||
      EVP_CipherFinal_ex (cs->ctx, out + plen, &outl) != 1)
    goto failed;
  return TRUE;

failed:
  /* Never hand back plaintext that did not authenticate. */
  if (plen > 0)
    sodium_memzero (out, plen);
  g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT,
                       "Authentication failed: the message was corrupted or not encrypted for this key");
  return FALSE;
}

static gboolean
check_nonce (PmCipherState *cs,
             uint64_t       n,
             GError       **error)
{
  /* 2^64-1 is reserved for Rekey(). */
  if (n == G_MAXUINT64)
    {
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_NONCE_EXHAUSTED,
                           "This key has sent 2^64-1 messages and must be replaced");
      return FALSE;
    }
  return TRUE;
}

/* EncryptWithAd: writes len + 16 bytes to @out (len bytes when there is no key,
 * in which case it is a copy, as the spec says). @out may equal @plaintext. */
gboolean
pm_cipher_state_encrypt_with_ad (PmCipherState *cs,
                                 const uint8_t *ad,
                                 size_t         ad_len,
                                 const uint8_t *plaintext,
                                 size_t         len,
                                 uint8_t       *out,
                                 GError       **error)
{
  if (!cs->has_key)
    {
      if (len > 0)
        memmove (out, plaintext, len);
      return TRUE;
    }
  if (!check_nonce (cs, cs->nonce, error) ||
      !aead_seal (cs, cs->nonce, ad, ad_len, plaintext, len, out, error))
    return FALSE;
  cs->nonce++;
  return TRUE;
}

/* DecryptWithAd: writes len - 16 bytes to @out. The nonce advances only when
 * the tag verifies. */
gboolean
pm_cipher_state_decrypt_with_ad (PmCipherState *cs,
                                 const uint8_t *ad,
                                 size_t         ad_len,
                                 const uint8_t *ciphertext,
                                 size_t         len,
                                 uint8_t       *out,
                                 GError       **error)
{
  if (!cs->has_key)
    {
      if (len > 0)
        memmove (out, ciphertext, len);
      return TRUE;
    }
  if (!check_nonce (cs, cs->nonce, error) ||
      !aead_open (cs, cs->nonce, ad, ad_len, ciphertext, len, out, error))
    return FALSE;
  cs->nonce++;
  return TRUE;
}

/* pm_cipher_state_seal / _open: the same AEAD with an explicit nonce and no
 * change to the CipherState's own counter. This is the spec's SetNonce()
 * followed by Encrypt/DecryptWithAd, used by the datagram transport where the
 * counter travels in the frame (Noise §11.4, out-of-order transport messages). */
gboolean
pm_cipher_state_seal (PmCipherState *cs,
                      uint64_t       nonce,
                      const uint8_t *ad,
                      size_t         ad_len,
                      const uint8_t *plaintext,
                      size_t         len,
                      uint8_t       *out,
                      GError       **error)
{
  g_return_val_if_fail (cs->has_key, FALSE);
  return check_nonce (cs, nonce, error) &&
         aead_seal (cs, nonce, ad, ad_len, plaintext, len, out, error);
}

gboolean
pm_cipher_state_open (PmCipherState *cs,
                      uint64_t       nonce,
                      const uint8_t *ad,
                      size_t         ad_len,
                      const uint8_t *ciphertext,
                      size_t         len,
                      uint8_t       *out,
                      GError       **error)
{
  g_return_val_if_fail (cs->has_key, FALSE);
  return check_nonce (cs, nonce, error) &&
         aead_open (cs, nonce, ad, ad_len, ciphertext, len, out, error);
}

/* Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros[32]). The
 * nonce is left as it is, as the spec requires. */
void
pm_cipher_state_rekey (PmCipherState *cs)
{
  uint8_t zeros[PM_NOISE_KEYLEN + PM_NOISE_TAGLEN] = { 0 };
  uint8_t out[PM_NOISE_KEYLEN + PM_NOISE_TAGLEN];

  g_return_if_fail (cs->has_key);

  if (!aead_seal (cs, G_MAXUINT64, NULL, 0, zeros, PM_NOISE_KEYLEN, out, NULL))
    g_error ("libcrypto failed during Rekey()");
  memmove (cs->key, out, PM_NOISE_KEYLEN);
  cs->direction = -1; /* reload the key into the EVP context on next use */
  sodium_memzero (out, sizeof out);
}

/* A second, independent CipherState with the same key and nonce. */
PmCipherState *
pm_cipher_state_copy (const PmCipherState *cs)
{
  PmCipherState *copy = pm_cipher_state_new ();

  if (cs->has_key)
    pm_cipher_state_initialize_key (copy, cs->key);
  copy->nonce = cs->nonce;
  return copy;
}
