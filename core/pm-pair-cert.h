/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The pairing host's self-signed TLS certificate (docs/PROTOCOL.md §11).
 * Made once with GnuTLS (ECDSA P-256, no well-defined expiry) and kept in the
 * state directory: cert.pem (0644) and key.pem (0600) in a 0700 directory.
 * A pairing code pins it by the SHA-256 of its SubjectPublicKeyInfo, so no CA
 * and no expiry date is ever consulted.
 */

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_PAIR_SPKI_SHA256_LEN 32

#define PM_PAIR_CERT_ERROR (pm_pair_cert_error_quark ())

typedef enum {
  PM_PAIR_CERT_ERROR_IO,       /* the state directory or a file could not be read or written */
  PM_PAIR_CERT_ERROR_CORRUPT,  /* cert.pem or key.pem does not parse, or they do not match */
  PM_PAIR_CERT_ERROR_INSECURE, /* key.pem (or the directory) is open to other users */
  PM_PAIR_CERT_ERROR_CRYPTO,   /* GnuTLS refused to make or read a key or certificate */
} PmPairCertError;

GQuark pm_pair_cert_error_quark (void);

GTlsCertificate *pm_pair_cert_load_or_create (const char *state_dir,
                                              gboolean   *created,
                                              GError    **error);
gboolean         pm_pair_cert_get_spki_sha256 (GTlsCertificate *certificate,
                                               uint8_t          out[PM_PAIR_SPKI_SHA256_LEN],
                                               GError         **error);

G_END_DECLS
