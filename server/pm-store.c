/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-store"

#include "pm-store.h"

#include <sodium.h>
#include <string.h>

/* Random bytes in ids and secrets. */
#define ID_BYTES     16
#define SECRET_BYTES 32

/* Prefixes make a pasted value recognisable and grep-able in logs (secrets
 * are never logged, but a user may paste one into an issue). */
#define ACCOUNT_ID_PREFIX    "acc_"
#define DEVICE_ID_PREFIX     "dev_"
#define ENROLL_KEY_ID_PREFIX "key_"
#define ENROLL_KEY_PREFIX    "pmek_"
#define DEVICE_TOKEN_PREFIX  "pmdt_"
#define KEY_TYPE_MAX         32
#define CANDIDATES_MAX       16384
#define PUSH_ENDPOINT_MAX    2048

/* clang-format off */
G_DEFINE_QUARK (pm-store-error-quark, pm_store_error)
/* clang-format on */

G_DEFINE_INTERFACE (PmStore, pm_store, G_TYPE_OBJECT)

static void
pm_store_default_init (PmStoreInterface *iface)
{
  if (sodium_init () < 0)
    g_error ("libsodium failed to initialise");
}

void
pm_account_record_free (PmAccountRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->id);
  g_free (record->name);
  g_free (record);
}

PmAccountRecord *
pm_account_record_copy (const PmAccountRecord *record)
{
  PmAccountRecord *copy = g_new0 (PmAccountRecord, 1);

  copy->id = g_strdup (record->id);
  copy->name = g_strdup (record->name);
  copy->created_at = record->created_at;
  return copy;
}

void
pm_device_record_free (PmDeviceRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->id);
  g_free (record->account_id);
  g_free (record->name);
  g_free (record->type);
  g_free (record->public_key);
  g_free (record->key_type);
  g_free (record->candidates);
  g_free (record->push_endpoint);
  g_free (record);
}

PmDeviceRecord *
pm_device_record_copy (const PmDeviceRecord *record)
{
  PmDeviceRecord *copy = g_new0 (PmDeviceRecord, 1);

  *copy = *record;
  copy->id = g_strdup (record->id);
  copy->account_id = g_strdup (record->account_id);
  copy->name = g_strdup (record->name);
  copy->type = g_strdup (record->type);
  copy->public_key = g_strdup (record->public_key);
  copy->key_type = g_strdup (record->key_type);
  copy->candidates = g_strdup (record->candidates);
  copy->push_endpoint = g_strdup (record->push_endpoint);
  return copy;
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

void
pm_store_hash_secret (const char *secret,
                      uint8_t     hash[PM_STORE_HASH_LEN])
{
  crypto_generichash (hash, PM_STORE_HASH_LEN, (const unsigned char *) secret, strlen (secret),
                      NULL, 0);
}

int64_t
pm_store_now (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

gboolean
pm_store_device_type_is_valid (const char *type)
{
  static const char *const types[] = {
    "mac",
    "linux",
    "windows",
    "iphone",
    "ipad",
    "watch",
    "android",
  };

  if (type == NULL)
    return FALSE;
  for (size_t i = 0; i < G_N_ELEMENTS (types); i++)
    if (g_str_equal (type, types[i]))
      return TRUE;
  return FALSE;
}

static char *
random_id (const char *prefix)
{
  uint8_t  bytes[ID_BYTES];
  GString *id = g_string_new (prefix);

  randombytes_buf (bytes, sizeof bytes);
  for (size_t i = 0; i < sizeof bytes; i++)
    g_string_append_printf (id, "%02x", bytes[i]);
  return g_string_free (id, FALSE);
}

/* PREFIX + 32 random bytes as unpadded base64url (43 characters). */
static char *
random_secret (const char *prefix)
{
  uint8_t bytes[SECRET_BYTES];
  char    encoded[sodium_base64_ENCODED_LEN (SECRET_BYTES,
                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  randombytes_buf (bytes, sizeof bytes);
  sodium_bin2base64 (encoded, sizeof encoded, bytes, sizeof bytes,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero (bytes, sizeof bytes);
  return g_strconcat (prefix, encoded, NULL);
}

static gboolean
invalid (GError    **error,
         const char *message)
{
  g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT, message);
  return FALSE;
}

/* A name: 1..PM_STORE_NAME_MAX bytes of UTF-8 with no control characters. */
static gboolean
check_name (const char *name,
            const char *what,
            GError    **error)
{
  size_t len = name != NULL ? strlen (name) : 0;

  if (len == 0 || len > PM_STORE_NAME_MAX || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT,
                   "%s must be 1 to %d bytes of UTF-8", what, PM_STORE_NAME_MAX);
      return FALSE;
    }
  for (const char *p = name; *p != '\0'; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      {
        g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT,
                     "%s must not contain control characters", what);
        return FALSE;
      }
  if (g_ascii_isspace (name[0]) || g_ascii_isspace (name[len - 1]))
    {
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT,
                   "%s must not start or end with a space", what);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------------
 * Wrappers
 * ------------------------------------------------------------------------- */

PmAccountRecord *
pm_store_create_account (PmStore    *store,
                         const char *name,
                         int64_t     now,
                         GError    **error)
{
  g_autoptr (PmAccountRecord) account = NULL;

  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_name (name, "An account name", error))
    return NULL;
  /* Ids and names share find_account()'s lookup: keep them apart. */
  if (g_str_has_prefix (name, ACCOUNT_ID_PREFIX))
    {
      invalid (error, "An account name must not start with “" ACCOUNT_ID_PREFIX "”");
      return NULL;
    }

  account = g_new0 (PmAccountRecord, 1);
  account->id = random_id (ACCOUNT_ID_PREFIX);
  account->name = g_strdup (name);
  account->created_at = now;
  if (!PM_STORE_GET_IFACE (store)->create_account (store, account, error))
    return NULL;
  return g_steal_pointer (&account);
}

PmAccountRecord *
pm_store_find_account (PmStore    *store,
                       const char *name_or_id,
                       GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (name_or_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return PM_STORE_GET_IFACE (store)->find_account (store, name_or_id, error);
}

/* Makes an enrollment key for @account_id valid for @ttl_seconds (0: no
 * expiry) from @now. Returns the key: it is shown once and only its hash is
 * stored. */
char *
pm_store_create_enrollment_key (PmStore    *store,
                                const char *account_id,
                                int64_t     ttl_seconds,
                                gboolean    reusable,
                                int64_t     now,
                                char      **out_key_id,
                                GError    **error)
{
  g_autofree char *key = NULL;
  g_autofree char *key_id = NULL;
  uint8_t          hash[PM_STORE_HASH_LEN];

  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (account_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (ttl_seconds < 0 || ttl_seconds > G_MAXINT64 - now)
    {
      invalid (error, "The key's lifetime is out of range");
      return NULL;
    }

  key = random_secret (ENROLL_KEY_PREFIX);
  key_id = random_id (ENROLL_KEY_ID_PREFIX);
  pm_store_hash_secret (key, hash);
  if (!PM_STORE_GET_IFACE (store)->create_enrollment_key (store, account_id, key_id, hash,
                                                          ttl_seconds > 0 ? now + ttl_seconds : 0,
                                                          reusable, now, error))
    {
      sodium_memzero (key, strlen (key));
      return NULL;
    }
  if (out_key_id != NULL)
    *out_key_id = g_steal_pointer (&key_id);
  return g_steal_pointer (&key);
}

/* Enrolls a device with @enrollment_key (all or nothing). Returns the new
 * device and, in @out_token, its bearer token: shown once, stored hashed. */
PmDeviceRecord *
pm_store_enroll_device (PmStore    *store,
                        const char *enrollment_key,
                        const char *name,
                        const char *type,
                        const char *public_key,
                        const char *key_type,
                        int64_t     now,
                        char      **out_token,
                        GError    **error)
{
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autofree char *token = NULL;
  uint8_t          key_hash[PM_STORE_HASH_LEN];
  uint8_t          token_hash[PM_STORE_HASH_LEN];

  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (out_token != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (enrollment_key == NULL || *enrollment_key == '\0')
    {
      g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_KEY,
                           "The enrollment key is unknown, expired or already used");
      return NULL;
    }
  if (!check_name (name, "A device name", error))
    return NULL;
  if (!pm_store_device_type_is_valid (type))
    {
      invalid (error, "The device type must be one of mac, linux, windows, iphone, ipad, "
                      "watch or android");
      return NULL;
    }
  if (public_key == NULL || strlen (public_key) != 64 ||
      strspn (public_key, "0123456789abcdefABCDEF") != 64)
    {
      invalid (error, "The public key must be 32 bytes as 64 hex digits");
      return NULL;
    }
  if (key_type == NULL || *key_type == '\0' || strlen (key_type) > KEY_TYPE_MAX ||
      strspn (key_type, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen (key_type))
    {
      invalid (error, "The key type must be a short lowercase word such as “file”");
      return NULL;
    }

  device = g_new0 (PmDeviceRecord, 1);
  device->id = random_id (DEVICE_ID_PREFIX);
  device->name = g_strdup (name);
  device->type = g_strdup (type);
  device->public_key = g_ascii_strdown (public_key, -1);
  device->key_type = g_strdup (key_type);
  device->created_at = now;

  token = random_secret (DEVICE_TOKEN_PREFIX);
  pm_store_hash_secret (enrollment_key, key_hash);
  pm_store_hash_secret (token, token_hash);
  if (!PM_STORE_GET_IFACE (store)->enroll_device (store, key_hash, device, token_hash, now, error))
    {
      sodium_memzero (token, strlen (token));
      return NULL;
    }
  g_assert (device->account_id != NULL);
  *out_token = g_steal_pointer (&token);
  return g_steal_pointer (&device);
}

/* The active device whose bearer token is @token; NOT_FOUND otherwise. */
PmDeviceRecord *
pm_store_find_device_by_token (PmStore    *store,
                               const char *token,
                               GError    **error)
{
  uint8_t hash[PM_STORE_HASH_LEN];

  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (token != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  pm_store_hash_secret (token, hash);
  return PM_STORE_GET_IFACE (store)->find_device_by_token_hash (store, hash, error);
}

PmDeviceRecord *
pm_store_get_device (PmStore    *store,
                     const char *device_id,
                     GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (device_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return PM_STORE_GET_IFACE (store)->get_device (store, device_id, error);
}

GPtrArray *
pm_store_list_devices (PmStore    *store,
                       const char *account_id,
                       gboolean    include_revoked,
                       GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (account_id != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return PM_STORE_GET_IFACE (store)->list_devices (store, account_id, include_revoked, error);
}

/* @candidates_json must already be validated JSON (the API does that); this
 * only bounds its size. */
gboolean
pm_store_set_candidates (PmStore    *store,
                         const char *device_id,
                         const char *candidates_json,
                         int64_t     now,
                         GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (candidates_json != NULL && strlen (candidates_json) > CANDIDATES_MAX)
    return invalid (error, "The candidate list is too long");
  return PM_STORE_GET_IFACE (store)->set_candidates (store, device_id, candidates_json, now, error);
}

gboolean
pm_store_set_push_endpoint (PmStore    *store,
                            const char *device_id,
                            const char *endpoint,
                            GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (endpoint != NULL &&
      (strlen (endpoint) > PUSH_ENDPOINT_MAX ||
       !(g_str_has_prefix (endpoint, "https://") || g_str_has_prefix (endpoint, "http://"))))
    return invalid (error, "The push endpoint must be an http(s) URL of at most 2048 bytes");
  return PM_STORE_GET_IFACE (store)->set_push_endpoint (store, device_id, endpoint, error);
}

gboolean
pm_store_touch_device (PmStore    *store,
                       const char *device_id,
                       int64_t     now,
                       GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return PM_STORE_GET_IFACE (store)->touch_device (store, device_id, now, error);
}

/* Revokes @device_id (only within @account_id unless that is NULL, as for the
 * admin). Its token stops matching at once; the row stays, marked revoked. */
gboolean
pm_store_revoke_device (PmStore    *store,
                        const char *device_id,
                        const char *account_id,
                        int64_t     now,
                        GError    **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return PM_STORE_GET_IFACE (store)->revoke_device (store, device_id, account_id, now, error);
}

gboolean
pm_store_get_counts (PmStore       *store,
                     PmStoreCounts *counts,
                     GError       **error)
{
  g_return_val_if_fail (PM_IS_STORE (store), FALSE);
  g_return_val_if_fail (counts != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  memset (counts, 0, sizeof *counts);
  return PM_STORE_GET_IFACE (store)->get_counts (store, counts, error);
}
