/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_KEY_LEN 32

/**
 * PmKeypair:
 * An X25519 key pair. Plain data, so it can live on the stack or inside another
 * struct; always release it with pm_keypair_clear(), which wipes the private half.
 */
typedef struct {
  uint8_t pub[PM_KEY_LEN];
  uint8_t priv[PM_KEY_LEN];
} PmKeypair;

void     pm_keypair_generate (PmKeypair *keypair);
void     pm_keypair_from_private (PmKeypair    *keypair,
                                  const uint8_t priv[PM_KEY_LEN]);
void     pm_keypair_clear (PmKeypair *keypair);
gboolean pm_keypair_dh (const uint8_t priv[PM_KEY_LEN],
                        const uint8_t pub[PM_KEY_LEN],
                        uint8_t       out[PM_KEY_LEN],
                        GError      **error);
char    *pm_key_to_hex (const uint8_t key[PM_KEY_LEN]);
char    *pm_key_fingerprint (const uint8_t pub[PM_KEY_LEN]);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PmKeypair, pm_keypair_clear)

G_END_DECLS
