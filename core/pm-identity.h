/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <stdint.h>

#include "pm-keypair.h"

G_BEGIN_DECLS

/**
 * PmKeyStore:
 * @PM_KEY_STORE_AUTO: the Secret Service when one is reachable and unlocked,
 *   else the file store (only meaningful when creating)
 * @PM_KEY_STORE_SECRET_SERVICE: the private key lives in the user's keyring,
 *   through libsecret; the state directory holds only the public record
 * @PM_KEY_STORE_FILE: the private key lives in `identity.key` (mode 0600)
 *   inside the state directory
 *
 * Where this device's private key is kept.
 */
typedef enum {
  PM_KEY_STORE_AUTO,
  PM_KEY_STORE_SECRET_SERVICE,
  PM_KEY_STORE_FILE,
} PmKeyStore;

#define PM_IDENTITY_ERROR (pm_identity_error_quark ())

/**
 * PmIdentityError:
 * @PM_IDENTITY_ERROR_IO: the state directory or one of its files could not be
 *   read or written
 * @PM_IDENTITY_ERROR_CORRUPT: `identity.ini` or `identity.key` is malformed,
 *   truncated or oversized (nothing was changed)
 * @PM_IDENTITY_ERROR_MISMATCH: the stored private key does not belong to the
 *   recorded public key
 * @PM_IDENTITY_ERROR_INSECURE: `identity.key` is accessible to other users
 * @PM_IDENTITY_ERROR_KEY_MISSING: the record exists but its private key is gone:
 *   the keyring has no such secret, or `identity.key` was deleted. A new
 *   identity is never made silently in that case.
 * @PM_IDENTITY_ERROR_SECRET_SERVICE: the Secret Service was asked for
 *   explicitly (or holds the key) and could not be used: not running, locked,
 *   or it refused the request
 *
 * Errors of #PM_IDENTITY_ERROR.
 */
typedef enum {
  PM_IDENTITY_ERROR_IO,
  PM_IDENTITY_ERROR_CORRUPT,
  PM_IDENTITY_ERROR_MISMATCH,
  PM_IDENTITY_ERROR_INSECURE,
  PM_IDENTITY_ERROR_KEY_MISSING,
  PM_IDENTITY_ERROR_SECRET_SERVICE,
} PmIdentityError;

GQuark pm_identity_error_quark (void);

#define PM_TYPE_IDENTITY (pm_identity_get_type ())
G_DECLARE_FINAL_TYPE (PmIdentity, pm_identity, PM, IDENTITY, GObject)

PmIdentity *pm_identity_load_or_create (const char   *state_dir,
                                        PmKeyStore    preferred,
                                        GCancellable *cancellable,
                                        GError      **error);
void        pm_identity_load_or_create_async (const char         *state_dir,
                                              PmKeyStore          preferred,
                                              GCancellable       *cancellable,
                                              GAsyncReadyCallback callback,
                                              gpointer            user_data);
PmIdentity *pm_identity_load_or_create_finish (GAsyncResult *result,
                                               GError      **error);

char *pm_identity_default_state_dir (void);

const uint8_t *pm_identity_get_public_key (PmIdentity *self);
const char    *pm_identity_get_public_key_hex (PmIdentity *self);
void           pm_identity_get_keypair (PmIdentity *self,
                                        PmKeypair  *out);
PmKeyStore     pm_identity_get_key_store (PmIdentity *self);
const char    *pm_identity_get_key_store_string (PmIdentity *self);
const char    *pm_identity_get_fingerprint (PmIdentity *self);
const char    *pm_identity_get_state_dir (PmIdentity *self);
const char    *pm_identity_get_device_name (PmIdentity *self);
GDateTime     *pm_identity_get_created (PmIdentity *self);
gboolean       pm_identity_get_was_created (PmIdentity *self);

const char *pm_key_store_to_string (PmKeyStore store);
gboolean    pm_key_store_from_string (const char *str,
                                      PmKeyStore *out);

G_END_DECLS
