/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmPairedStore: the devices paired with this one by QR code (no account),
 * in one SQLite file, by default paired.db in the state directory. WAL, a
 * schema_version table, every change of more than one row in one
 * transaction. The file is only created by the first change: reading a
 * store that does not exist gives an empty list and writes nothing.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-keypair.h"

G_BEGIN_DECLS

#define PM_PAIRED_STORE_FILE "paired.db"
/* How long a call waits for another process's write lock. */
#define PM_PAIRED_STORE_BUSY_TIMEOUT_MS 5000
/* Last known addresses kept per device. */
#define PM_PAIRED_STORE_MAX_ADDRESSES 16
/* The allow-list entry that stands for every service. */
#define PM_PAIRED_ALL_SERVICES "*"

#define PM_PAIRED_STORE_ERROR (pm_paired_store_error_quark ())

typedef enum {
  PM_PAIRED_STORE_ERROR_IO,        /* the file could not be opened, read or written */
  PM_PAIRED_STORE_ERROR_CORRUPT,   /* not our database, or made by a newer PiperMesh */
  PM_PAIRED_STORE_ERROR_NOT_FOUND, /* no paired device has that name or id */
  PM_PAIRED_STORE_ERROR_CONFLICT,  /* another device has that name; a service listed twice */
  PM_PAIRED_STORE_ERROR_INVALID,   /* a malformed record (name, type, address, service) */
} PmPairedStoreError;

GQuark pm_paired_store_error_quark (void);

/**
 * PmPairedDevice:
 * @id: "pd_" and 32 hex digits, random (made by pm_paired_store_add())
 * @addresses: (element-type utf8): last known "IP:PORT" of its mesh, newest first
 * @allowed_services: (element-type utf8): services of this device it may use
 *   (the host's allow-list); "*" for every one
 * @paired_at: Unix seconds
 */
typedef struct {
  char      *id;
  char      *name;
  char      *device_type;
  uint8_t    public_key[PM_KEY_LEN];
  GPtrArray *addresses;
  GPtrArray *allowed_services;
  int64_t    paired_at;
} PmPairedDevice;

PmPairedDevice *pm_paired_device_new (void);
PmPairedDevice *pm_paired_device_copy (const PmPairedDevice *device);
void            pm_paired_device_free (PmPairedDevice *device);
gboolean        pm_paired_device_allows (const PmPairedDevice *device,
                                         const char           *service);
char           *pm_paired_device_get_public_key_hex (const PmPairedDevice *device);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmPairedDevice, pm_paired_device_free)

#define PM_TYPE_PAIRED_STORE (pm_paired_store_get_type ())
G_DECLARE_FINAL_TYPE (PmPairedStore, pm_paired_store, PM, PAIRED_STORE, GObject)

PmPairedStore *pm_paired_store_new (const char *path);
PmPairedStore *pm_paired_store_new_for_state_dir (const char *state_dir);
const char    *pm_paired_store_get_path (PmPairedStore *self);

gboolean        pm_paired_store_add (PmPairedStore  *self,
                                     PmPairedDevice *device,
                                     GError        **error);
gboolean        pm_paired_store_check_new (PmPairedStore *self,
                                           const char    *name,
                                           const uint8_t  public_key[PM_KEY_LEN],
                                           GError       **error);
GPtrArray      *pm_paired_store_list (PmPairedStore *self,
                                      GError       **error);
PmPairedDevice *pm_paired_store_lookup (PmPairedStore *self,
                                        const char    *id_or_name,
                                        GError       **error);
PmPairedDevice *pm_paired_store_lookup_key (PmPairedStore *self,
                                            const uint8_t  public_key[PM_KEY_LEN],
                                            GError       **error);
gboolean        pm_paired_store_remove (PmPairedStore *self,
                                        const char    *id_or_name,
                                        GError       **error);
gboolean        pm_paired_store_set_addresses (PmPairedStore     *self,
                                               const char        *id,
                                               const char *const *addresses,
                                               GError           **error);

G_END_DECLS
