/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The pairing code (docs/PROTOCOL.md §10): what a host shows, as a QR code or
 * as text, so that another device can pair with it without any account. A
 * URI:
 *
 *   pipermesh:pair?v=1&a=192.0.2.7:41700&a=%5B2001:db8::7%5D:41700&t=TOKEN
 *     &e=1700000600&c=SPKI_SHA256&k=STATIC_KEY&n=Anna%27s%20laptop
 *
 * It carries where the host listens for the pairing exchange (a, one or
 * more), a single-use bearer token (t) and its expiry (e), what pins the
 * host's TLS certificate (c: SHA-256 of its SubjectPublicKeyInfo) and its
 * Noise static key (k), and the name to show (n). pm_pair_code_parse() is
 * strict: anything but the exact grammar is refused with a PM_PAIR_CODE_ERROR
 * that names the field, and nothing is kept.
 *
 * The token is a secret: it is wiped when the code is freed, and it is never
 * put in an error message. The text pm_pair_code_to_uri() returns holds it.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

#define PM_PAIR_CODE_ERROR (pm_pair_code_error_quark ())

typedef enum {
  PM_PAIR_CODE_ERROR_TOO_LONG,        /* over PM_PAIR_CODE_MAX_LEN bytes */
  PM_PAIR_CODE_ERROR_NOT_PAIR_CODE,   /* does not start with "pipermesh:pair?" */
  PM_PAIR_CODE_ERROR_SYNTAX,          /* not KEY=VALUE&...: an empty field, no "=",
                                       * a character a URI may not hold, a bad "%XX" */
  PM_PAIR_CODE_ERROR_VERSION,         /* v is not 1: made by a newer PiperMesh */
  PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,   /* a key other than v, a, t, e, c, k, n */
  PM_PAIR_CODE_ERROR_DUPLICATE_FIELD, /* a key other than a given twice */
  PM_PAIR_CODE_ERROR_MISSING_FIELD,   /* a required key is absent */
  PM_PAIR_CODE_ERROR_INVALID_FIELD,   /* a value that is not what its field holds */
} PmPairCodeError;

GQuark pm_pair_code_error_quark (void);

#define PM_PAIR_CODE_PREFIX    "pipermesh:pair?"
#define PM_PAIR_CODE_VERSION   1
#define PM_PAIR_CODE_TOKEN_LEN 32 /* random bytes */
#define PM_PAIR_CODE_HASH_LEN  32 /* SHA-256 */
#define PM_PAIR_CODE_KEY_LEN   32 /* X25519 public key (PM_NOISE_DHLEN) */
/* Unix time of 9999-12-31T23:59:59Z: the largest expiry accepted, so that
 * every expiry is a GDateTime. */
#define PM_PAIR_CODE_MAX_EXPIRY G_GINT64_CONSTANT (253402300799)

typedef struct {
  /* GInetSocketAddress, 1 … PM_PAIR_CODE_MAX_ADDRESSES, in the code's order:
   * literal IPv4 or IPv6 (no scope id), port not 0; not unspecified,
   * multicast, broadcast, IPv6 link-local or IPv4-mapped; no duplicates. */
  GPtrArray *addresses;
  uint8_t    token[PM_PAIR_CODE_TOKEN_LEN]; /* single-use bearer secret */
  int64_t    expires;                       /* unix time, seconds: 1 … PM_PAIR_CODE_MAX_EXPIRY */
  uint8_t    cert_spki_sha256[PM_PAIR_CODE_HASH_LEN];
  uint8_t    static_public[PM_PAIR_CODE_KEY_LEN];
  /* UTF-8, 1 … PM_PAIR_CODE_MAX_NAME_LEN bytes; no control characters (Cc)
   * and no bidirectional embeddings, overrides or isolates. */
  char *name;
} PmPairCode;

#define PM_TYPE_PAIR_CODE (pm_pair_code_get_type ())
GType pm_pair_code_get_type (void) G_GNUC_CONST;

PmPairCode *pm_pair_code_new (GPtrArray    *addresses,
                              const uint8_t token[PM_PAIR_CODE_TOKEN_LEN],
                              int64_t       expires,
                              const uint8_t cert_spki_sha256[PM_PAIR_CODE_HASH_LEN],
                              const uint8_t static_public[PM_PAIR_CODE_KEY_LEN],
                              const char   *name,
                              GError      **error);
PmPairCode *pm_pair_code_new_random (GPtrArray    *addresses,
                                     uint16_t      port,
                                     const uint8_t cert_spki_sha256[PM_PAIR_CODE_HASH_LEN],
                                     const uint8_t static_public[PM_PAIR_CODE_KEY_LEN],
                                     const char   *name,
                                     int64_t       lifetime_s,
                                     GError      **error);
PmPairCode *pm_pair_code_copy (const PmPairCode *code);
void        pm_pair_code_free (PmPairCode *code);

char       *pm_pair_code_to_uri (const PmPairCode *code);
PmPairCode *pm_pair_code_parse (const char *text,
                                GError    **error);
PmPairCode *pm_pair_code_parse_first (const char *const *texts,
                                      GError           **error);

gboolean pm_pair_code_is_expired (const PmPairCode *code,
                                  int64_t           now);
gboolean pm_pair_code_token_equal (const PmPairCode *code,
                                   const uint8_t     token[PM_PAIR_CODE_TOKEN_LEN]);
gboolean pm_pair_code_equal (const PmPairCode *a,
                             const PmPairCode *b);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmPairCode, pm_pair_code_free)

G_END_DECLS
