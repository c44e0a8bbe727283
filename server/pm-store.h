/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

/*
 * PmStore: everything pipermesh-server persists, behind one small interface.
 *
 * The wrappers below (pm_store_*) do the work that must be the same for every
 * backend: validating input, making random ids and secrets, and hashing
 * secrets with BLAKE2b-256. Backends (PmStoreSqlite; a PostgreSQL one later)
 * only ever see hashes and plain records, and implement the vfuncs in
 * PmStoreInterface. Every vfunc that changes more than one row does it in a
 * single transaction: on error nothing was changed.
 *
 * Times are Unix seconds, passed in by the caller (`now`) so tests can move
 * the clock; 0 means "never" / "not set".
 *
 * Revoked devices are kept (for the admin's `device list` and the audit trail)
 * with their token hash, push endpoint and candidates erased, so a revoked
 * token can never match again. They are not returned to the HTTP API.
 */

#define PM_STORE_ERROR (pm_store_error_quark ())

/**
 * PmStoreError:
 * @PM_STORE_ERROR_NOT_FOUND: no such account, device or token (HTTP 404; for a
 *   token, 401)
 * @PM_STORE_ERROR_CONFLICT: the name or public key is already taken (HTTP 409)
 * @PM_STORE_ERROR_INVALID_KEY: the enrollment key is unknown, expired or
 *   already used; deliberately one code for all three (HTTP 403)
 * @PM_STORE_ERROR_INVALID_ARGUMENT: malformed input, e.g. an unknown device
 *   type or a public key that is not 64 hex digits (HTTP 400)
 * @PM_STORE_ERROR_IO: the database failed, is busy for too long, or has a
 *   newer schema than this server (HTTP 500/503)
 */
typedef enum {
  PM_STORE_ERROR_NOT_FOUND,
  PM_STORE_ERROR_CONFLICT,
  PM_STORE_ERROR_INVALID_KEY,
  PM_STORE_ERROR_INVALID_ARGUMENT,
  PM_STORE_ERROR_IO,
} PmStoreError;

GQuark pm_store_error_quark (void);

/* Longest account and device name, in bytes. */
#define PM_STORE_NAME_MAX 64

typedef struct {
  char   *id;   /* "acc_" + 32 hex digits */
  char   *name; /* unique */
  int64_t created_at;
} PmAccountRecord;

typedef struct {
  char    *id; /* "dev_" + 32 hex digits */
  char    *account_id;
  char    *name;
  char    *type;          /* mac, linux, windows, iphone, ipad, watch or android */
  char    *public_key;    /* X25519, 64 lowercase hex digits */
  char    *key_type;      /* e.g. "secret-service" or "file" */
  char    *candidates;    /* JSON text as set by the API, or NULL */
  char    *push_endpoint; /* URL, or NULL */
  int64_t  created_at;
  int64_t  last_seen;  /* 0: never */
  int64_t  revoked_at; /* 0: active */
  gboolean revoked;
} PmDeviceRecord;

typedef struct {
  int64_t accounts;
  int64_t devices;        /* including revoked ones */
  int64_t active_devices; /* not revoked */
  int64_t enrollment_keys;
} PmStoreCounts;

void             pm_account_record_free (PmAccountRecord *record);
PmAccountRecord *pm_account_record_copy (const PmAccountRecord *record);
void             pm_device_record_free (PmDeviceRecord *record);
PmDeviceRecord  *pm_device_record_copy (const PmDeviceRecord *record);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmAccountRecord, pm_account_record_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmDeviceRecord, pm_device_record_free)

#define PM_TYPE_STORE (pm_store_get_type ())
G_DECLARE_INTERFACE (PmStore, pm_store, PM, STORE, GObject)

/* Hashes are PM_STORE_HASH_LEN bytes of BLAKE2b-256. */
#define PM_STORE_HASH_LEN 32

struct _PmStoreInterface {
  GTypeInterface g_iface;

  /* Inserts @account (id, name, created_at filled). CONFLICT if the name is taken. */
  gboolean (*create_account) (PmStore               *store,
                              const PmAccountRecord *account,
                              GError               **error);
  /* The account whose name, or else whose id, is @name_or_id. NOT_FOUND if none. */
  PmAccountRecord *(*find_account) (PmStore    *store,
                                    const char *name_or_id,
                                    GError    **error);
  /* Inserts an enrollment key. NOT_FOUND if the account does not exist.
   * @expires_at 0: never. */
  gboolean (*create_enrollment_key) (PmStore       *store,
                                     const char    *account_id,
                                     const char    *key_id,
                                     const uint8_t *key_hash,
                                     int64_t        expires_at,
                                     gboolean       reusable,
                                     int64_t        now,
                                     GError       **error);
  /* In one transaction: finds the key by @key_hash, refuses it (INVALID_KEY)
   * if unknown, expired at @now or used and not reusable, marks it used, sets
   * @device->account_id to the key's account and inserts @device with
   * @token_hash. CONFLICT if an active device already has the public key. */
  gboolean (*enroll_device) (PmStore        *store,
                             const uint8_t  *key_hash,
                             PmDeviceRecord *device,
                             const uint8_t  *token_hash,
                             int64_t         now,
                             GError        **error);
  /* The active (not revoked) device with this token hash; NOT_FOUND if none. */
  PmDeviceRecord *(*find_device_by_token_hash) (PmStore       *store,
                                                const uint8_t *token_hash,
                                                GError       **error);
  /* Any device by id, revoked ones included (check ->revoked). */
  PmDeviceRecord *(*get_device) (PmStore    *store,
                                 const char *device_id,
                                 GError    **error);
  /* The account's devices, oldest first, as a GPtrArray of PmDeviceRecord. */
  GPtrArray *(*list_devices) (PmStore    *store,
                              const char *account_id,
                              gboolean    include_revoked,
                              GError    **error);
  /* Sets candidates (NULL clears) and last_seen of an active device. */
  gboolean (*set_candidates) (PmStore    *store,
                              const char *device_id,
                              const char *candidates_json,
                              int64_t     now,
                              GError    **error);
  /* Sets (NULL clears) the push endpoint of an active device. */
  gboolean (*set_push_endpoint) (PmStore    *store,
                                 const char *device_id,
                                 const char *endpoint,
                                 GError    **error);
  /* Sets last_seen of an active device. */
  gboolean (*touch_device) (PmStore    *store,
                            const char *device_id,
                            int64_t     now,
                            GError    **error);
  /* Revokes an active device; when @account_id is not NULL, only if the
   * device belongs to it. NOT_FOUND otherwise (unknown, other account's, or
   * already revoked). */
  gboolean (*revoke_device) (PmStore    *store,
                             const char *device_id,
                             const char *account_id,
                             int64_t     now,
                             GError    **error);
  gboolean (*get_counts) (PmStore       *store,
                          PmStoreCounts *counts,
                          GError       **error);
};

/* Wrappers: validate, generate, hash, then call the backend. */

PmAccountRecord *pm_store_create_account (PmStore    *store,
                                          const char *name,
                                          int64_t     now,
                                          GError    **error);
PmAccountRecord *pm_store_find_account (PmStore    *store,
                                        const char *name_or_id,
                                        GError    **error);
char            *pm_store_create_enrollment_key (PmStore    *store,
                                                 const char *account_id,
                                                 int64_t     ttl_seconds,
                                                 gboolean    reusable,
                                                 int64_t     now,
                                                 char      **out_key_id,
                                                 GError    **error);
PmDeviceRecord  *pm_store_enroll_device (PmStore    *store,
                                         const char *enrollment_key,
                                         const char *name,
                                         const char *type,
                                         const char *public_key,
                                         const char *key_type,
                                         int64_t     now,
                                         char      **out_token,
                                         GError    **error);
PmDeviceRecord  *pm_store_find_device_by_token (PmStore    *store,
                                                const char *token,
                                                GError    **error);
PmDeviceRecord  *pm_store_get_device (PmStore    *store,
                                      const char *device_id,
                                      GError    **error);
GPtrArray       *pm_store_list_devices (PmStore    *store,
                                        const char *account_id,
                                        gboolean    include_revoked,
                                        GError    **error);
gboolean         pm_store_set_candidates (PmStore    *store,
                                          const char *device_id,
                                          const char *candidates_json,
                                          int64_t     now,
                                          GError    **error);
gboolean         pm_store_set_push_endpoint (PmStore    *store,
                                             const char *device_id,
                                             const char *endpoint,
                                             GError    **error);
gboolean         pm_store_touch_device (PmStore    *store,
                                        const char *device_id,
                                        int64_t     now,
                                        GError    **error);
gboolean         pm_store_revoke_device (PmStore    *store,
                                         const char *device_id,
                                         const char *account_id,
                                         int64_t     now,
                                         GError    **error);
gboolean         pm_store_get_counts (PmStore       *store,
                                      PmStoreCounts *counts,
                                      GError       **error);

/* Helpers shared by backends and tests. */
void     pm_store_hash_secret (const char *secret,
                               uint8_t     hash[PM_STORE_HASH_LEN]);
gboolean pm_store_device_type_is_valid (const char *type);
int64_t  pm_store_now (void);

G_END_DECLS
