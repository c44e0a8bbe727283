/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-noise.h"

G_BEGIN_DECLS

/**
 * PmCipherState:
 * The Noise CipherState for ChaChaPoly: a key, a 64-bit nonce and a libcrypto
 * EVP context that is created once and reused for every message (only the IV
 * changes per message, which is what makes it fast).
 */
typedef struct _PmCipherState PmCipherState;

PmCipherState *pm_cipher_state_new (void);
void           pm_cipher_state_free (PmCipherState *cs);
void           pm_cipher_state_initialize_key (PmCipherState *cs,
                                               const uint8_t *key);
gboolean       pm_cipher_state_has_key (const PmCipherState *cs);
void           pm_cipher_state_set_nonce (PmCipherState *cs,
                                          uint64_t       nonce);
uint64_t       pm_cipher_state_get_nonce (const PmCipherState *cs);
gboolean       pm_cipher_state_encrypt_with_ad (PmCipherState *cs,
                                                const uint8_t *ad,
                                                size_t         ad_len,
                                                const uint8_t *plaintext,
                                                size_t         len,
                                                uint8_t       *out,
                                                GError       **error);
gboolean       pm_cipher_state_decrypt_with_ad (PmCipherState *cs,
                                                const uint8_t *ad,
                                                size_t         ad_len,
                                                const uint8_t *ciphertext,
                                                size_t         len,
                                                uint8_t       *out,
                                                GError       **error);
gboolean       pm_cipher_state_seal (PmCipherState *cs,
                                     uint64_t       nonce,
                                     const uint8_t *ad,
                                     size_t         ad_len,
                                     const uint8_t *plaintext,
                                     size_t         len,
                                     uint8_t       *out,
                                     GError       **error);
gboolean       pm_cipher_state_open (PmCipherState *cs,
                                     uint64_t       nonce,
                                     const uint8_t *ad,
                                     size_t         ad_len,
                                     const uint8_t *ciphertext,
                                     size_t         len,
                                     uint8_t       *out,
                                     GError       **error);
void           pm_cipher_state_rekey (PmCipherState *cs);
PmCipherState *pm_cipher_state_copy (const PmCipherState *cs);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmCipherState, pm_cipher_state_free)

G_END_DECLS
