/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "pm-cipher-state.h"

G_BEGIN_DECLS

/* The Noise SymmetricState with BLAKE2s (HASHLEN 32, BLOCKLEN 64). Private to
 * the core: only PmHandshakeState drives it. */
typedef struct _PmSymmetricState PmSymmetricState;

PmSymmetricState *pm_symmetric_state_new (const char *protocol_name);
void              pm_symmetric_state_free (PmSymmetricState *ss);
PmSymmetricState *pm_symmetric_state_copy (PmSymmetricState *ss);
void              pm_symmetric_state_mix_key (PmSymmetricState *ss,
                                              const uint8_t    *ikm,
                                              size_t            len);
void              pm_symmetric_state_mix_hash (PmSymmetricState *ss,
                                               const uint8_t    *data,
                                               size_t            len);
void              pm_symmetric_state_mix_key_and_hash (PmSymmetricState *ss,
                                                       const uint8_t    *ikm,
                                                       size_t            len);
gboolean          pm_symmetric_state_has_key (PmSymmetricState *ss);
gboolean          pm_symmetric_state_encrypt_and_hash (PmSymmetricState *ss,
                                                       const uint8_t    *plaintext,
                                                       size_t            len,
                                                       uint8_t          *out,
                                                       GError          **error);
gboolean          pm_symmetric_state_decrypt_and_hash (PmSymmetricState *ss,
                                                       const uint8_t    *ciphertext,
                                                       size_t            len,
                                                       uint8_t          *out,
                                                       GError          **error);
const uint8_t    *pm_symmetric_state_get_handshake_hash (PmSymmetricState *ss);
void              pm_symmetric_state_split (PmSymmetricState *ss,
                                            PmCipherState   **c1,
                                            PmCipherState   **c2);

/* HASH() and HMAC-HASH()/HKDF() as the spec defines them, exposed for the
 * verification code and the tests. */
void pm_blake2s (const uint8_t *a,
                 size_t         a_len,
                 const uint8_t *b,
                 size_t         b_len,
                 uint8_t        out[PM_NOISE_HASHLEN]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmSymmetricState, pm_symmetric_state_free)

G_END_DECLS
