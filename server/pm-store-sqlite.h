/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include "pm-store.h"

G_BEGIN_DECLS

/* How long a statement waits for another connection's write lock before
 * failing with PM_STORE_ERROR_IO. */
#define PM_STORE_SQLITE_BUSY_TIMEOUT_MS 5000

#define PM_TYPE_STORE_SQLITE (pm_store_sqlite_get_type ())
G_DECLARE_FINAL_TYPE (PmStoreSqlite, pm_store_sqlite, PM, STORE_SQLITE, GObject)

PmStoreSqlite *pm_store_sqlite_open (const char *path,
                                     GError    **error);
const char    *pm_store_sqlite_get_path (PmStoreSqlite *self);
int            pm_store_sqlite_get_schema_version (PmStoreSqlite *self);
int            pm_store_sqlite_latest_schema_version (void);
char          *pm_store_sqlite_default_path (void);

G_END_DECLS
