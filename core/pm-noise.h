/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Sizes fixed by the Noise specification (revision 34) for 25519/ChaChaPoly/BLAKE2s. */
#define PM_NOISE_DHLEN       32
#define PM_NOISE_HASHLEN     32
#define PM_NOISE_KEYLEN      32
#define PM_NOISE_TAGLEN      16
#define PM_NOISE_MAX_MESSAGE 65535

#define PM_NOISE_ERROR (pm_noise_error_quark ())

typedef enum {
  PM_NOISE_ERROR_UNSUPPORTED,     /* protocol name, pattern or primitive we do not implement */
  PM_NOISE_ERROR_INVALID_STATE,   /* call out of order, missing key, handshake already failed */
  PM_NOISE_ERROR_TRUNCATED,       /* message shorter than its tokens need */
  PM_NOISE_ERROR_TOO_LARGE,       /* message or payload over the 65535-byte Noise limit */
  PM_NOISE_ERROR_DECRYPT,         /* authentication tag did not verify */
  PM_NOISE_ERROR_BAD_KEY,         /* small-order public key, or a static key we did not expect */
  PM_NOISE_ERROR_NONCE_EXHAUSTED, /* 2^64-1 messages on one key */
  PM_NOISE_ERROR_REPLAY,          /* IK timestamp not newer than the last accepted one */
} PmNoiseError;

GQuark pm_noise_error_quark (void);

/* Initialises libsodium once; every entry point that needs it calls this. */
void pm_noise_ensure_init (void);

G_END_DECLS
