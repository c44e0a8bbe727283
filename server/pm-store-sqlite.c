/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmStoreSqlite: PmStore on one SQLite file.
 *
 * - WAL journal (readers never block the writer), foreign keys on, a busy
 *   timeout so a second process or object waits for the lock instead of
 *   failing at once, synchronous=NORMAL (durable at each WAL checkpoint; a
 *   power cut may lose the last transactions, never corrupt the file).
 * - The schema version is PRAGMA user_version; migrations[] holds one SQL
 *   script per version, applied in order, each in its own BEGIN IMMEDIATE
 *   transaction together with the version bump. A file from a newer server
 *   is refused, never downgraded.
 * - Values only ever reach SQL through bound parameters of prepared
 *   statements, which are prepared once and kept.
 * - Every change of more than one row runs in BEGIN IMMEDIATE … COMMIT and
 *   rolls back on any error. Single-row changes are atomic on their own.
 * - A mutex serialises calls, so one object may be shared between threads;
 *   several objects (or processes) on one file coordinate through SQLite's
 *   locks.
 *
 * A PostgreSQL backend (for several server instances on one database) would
 * be another GObject implementing PmStoreInterface on libpq: the same three
 * tables with BYTEA for hashes and BIGINT for times, migrations recorded in a
 * schema_version table and taken under pg_advisory_xact_lock() so that only
 * one instance migrates, a connection pool instead of the mutex, and
 * enroll_device as one transaction that takes the key row with
 * SELECT … FOR UPDATE (the equivalent of BEGIN IMMEDIATE here) before
 * updating it and inserting the device. The partial unique index on active
 * public keys and the error mapping (unique_violation → CONFLICT,
 * foreign_key_violation → NOT_FOUND) carry over unchanged.
 */
#define G_LOG_DOMAIN "pipermesh-store"

#include "pm-store-sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Schema migrations: entry N-1 takes the schema from version N-1 to N. Never
 * edit a released entry; append a new one. */
static const char *const migrations[] = {
  /* 1: accounts, enrollment keys (hashed), devices (token hashed). */
  "CREATE TABLE accounts ("
  "  id         TEXT PRIMARY KEY,"
  "  name       TEXT NOT NULL UNIQUE,"
  "  created_at INTEGER NOT NULL"
  ");"
  "CREATE TABLE enrollment_keys ("
  "  id         TEXT PRIMARY KEY,"
  "  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
  "  key_hash   BLOB NOT NULL UNIQUE CHECK (length (key_hash) = 32),"
  "  reusable   INTEGER NOT NULL CHECK (reusable IN (0, 1)),"
  "  created_at INTEGER NOT NULL,"
  "  expires_at INTEGER," /* NULL: never */
  "  used_at    INTEGER," /* first use */
  "  use_count  INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX enrollment_keys_account ON enrollment_keys (account_id);"
  "CREATE TABLE devices ("
  "  id                TEXT PRIMARY KEY,"
  "  account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
  "  enrollment_key_id TEXT REFERENCES enrollment_keys (id) ON DELETE SET NULL,"
  "  name              TEXT NOT NULL,"
  "  type              TEXT NOT NULL CHECK (type IN"
  "                      ('mac', 'linux', 'windows', 'iphone', 'ipad', 'watch', 'android')),"
  "  public_key        TEXT NOT NULL,"
  "  key_type          TEXT NOT NULL,"
  "  token_hash        BLOB UNIQUE CHECK (token_hash IS NULL OR length (token_hash) = 32),"
  "  candidates        TEXT,"
  "  push_endpoint     TEXT,"
  "  created_at        INTEGER NOT NULL,"
  "  last_seen         INTEGER,"
  "  revoked_at        INTEGER," /* NULL: active; token_hash is NULL once revoked */
  "  CHECK (revoked_at IS NULL OR token_hash IS NULL)"
  ");"
  "CREATE INDEX devices_account ON devices (account_id, created_at);"
  "CREATE UNIQUE INDEX devices_active_public_key ON devices (public_key)"
  "  WHERE revoked_at IS NULL;",
};

#define DEVICE_COLUMNS                                                            \
  "id, account_id, name, type, public_key, key_type, candidates, push_endpoint, " \
  "created_at, last_seen, revoked_at"

typedef enum {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_INSERT_ACCOUNT,
  STMT_FIND_ACCOUNT,
  STMT_INSERT_KEY,
  STMT_FIND_KEY,
  STMT_USE_KEY,
  STMT_INSERT_DEVICE,
  STMT_DEVICE_BY_TOKEN,
  STMT_DEVICE_BY_ID,
  STMT_LIST_DEVICES,
  STMT_SET_CANDIDATES,
  STMT_SET_PUSH_ENDPOINT,
  STMT_TOUCH,
  STMT_REVOKE,
  STMT_COUNTS,
  N_STMTS
} Stmt;

static const char *const statement_sql[N_STMTS] = {
  [STMT_BEGIN] = "BEGIN IMMEDIATE",
  [STMT_COMMIT] = "COMMIT",
  [STMT_ROLLBACK] = "ROLLBACK",
  [STMT_INSERT_ACCOUNT] = "INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)",
  [STMT_FIND_ACCOUNT] = "SELECT id, name, created_at FROM accounts WHERE name = ?1 OR id = ?1 "
                        "ORDER BY name = ?1 DESC LIMIT 1",
  [STMT_INSERT_KEY] = "INSERT INTO enrollment_keys "
                      "(id, account_id, key_hash, reusable, created_at, expires_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  [STMT_FIND_KEY] = "SELECT id, account_id FROM enrollment_keys WHERE key_hash = ?1 "
                    "AND (expires_at IS NULL OR expires_at > ?2) "
                    "AND (reusable = 1 OR use_count = 0)",
  [STMT_USE_KEY] = "UPDATE enrollment_keys SET use_count = use_count + 1, "
                   "used_at = coalesce (used_at, ?2) WHERE id = ?1",
  [STMT_INSERT_DEVICE] = "INSERT INTO devices (id, account_id, enrollment_key_id, name, type, "
                         "public_key, key_type, token_hash, created_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
  [STMT_DEVICE_BY_TOKEN] = "SELECT " DEVICE_COLUMNS " FROM devices "
                           "WHERE token_hash = ?1 AND revoked_at IS NULL",
  [STMT_DEVICE_BY_ID] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE id = ?1",
  [STMT_LIST_DEVICES] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE account_id = ?1 "
                        "AND (?2 OR revoked_at IS NULL) ORDER BY created_at, id",
  [STMT_SET_CANDIDATES] = "UPDATE devices SET candidates = ?2, last_seen = ?3 "
                          "WHERE id = ?1 AND revoked_at IS NULL",
  [STMT_SET_PUSH_ENDPOINT] = "UPDATE devices SET push_endpoint = ?2 "
                             "WHERE id = ?1 AND revoked_at IS NULL",
  [STMT_TOUCH] = "UPDATE devices SET last_seen = ?2 WHERE id = ?1 AND revoked_at IS NULL",
  [STMT_REVOKE] = "UPDATE devices SET revoked_at = ?2, token_hash = NULL, candidates = NULL, "
                  "push_endpoint = NULL WHERE id = ?1 AND revoked_at IS NULL "
                  "AND (?3 IS NULL OR account_id = ?3)",
  [STMT_COUNTS] = "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM devices), "
                  "(SELECT count(*) FROM devices WHERE revoked_at IS NULL), "
                  "(SELECT count(*) FROM enrollment_keys)",
};

struct _PmStoreSqlite {
  GObject       parent_instance;
  char         *path;
  sqlite3      *db;
  sqlite3_stmt *stmts[N_STMTS];
  GMutex        lock;
};

static void pm_store_sqlite_iface_init (PmStoreInterface *iface);

/* clang-format off */
G_DEFINE_FINAL_TYPE_WITH_CODE (PmStoreSqlite, pm_store_sqlite, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (PM_TYPE_STORE, pm_store_sqlite_iface_init))
/* clang-format on */

/* ---------------------------------------------------------------------------
 * Plumbing
 * ------------------------------------------------------------------------- */

/* Translates a failed SQLite call into PM_STORE_ERROR, once, here. */
static void
set_db_error (PmStoreSqlite *self,
              int            rc,
              const char    *doing,
              GError       **error)
{
  int code = PM_STORE_ERROR_IO;

  switch (rc)
    {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      code = PM_STORE_ERROR_CONFLICT;
      break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      code = PM_STORE_ERROR_NOT_FOUND;
      break;
    case SQLITE_CONSTRAINT_CHECK:
      code = PM_STORE_ERROR_INVALID_ARGUMENT;
      break;
    default:
      break;
    }
  g_set_error (error, PM_STORE_ERROR, code, "Database error while %s: %s", doing,
               self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
}

/* The prepared statement @which, reset and ready to bind. */
static sqlite3_stmt *
get_stmt (PmStoreSqlite *self,
          Stmt           which,
          GError       **error)
{
  int rc;

  if (self->stmts[which] != NULL)
    return self->stmts[which];
  rc = sqlite3_prepare_v3 (self->db, statement_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                           &self->stmts[which], NULL);
  if (rc != SQLITE_OK)
    {
      set_db_error (self, rc, "preparing a statement", error);
      return NULL;
    }
  return self->stmts[which];
}

static void
done_stmt (sqlite3_stmt *stmt)
{
  if (stmt != NULL)
    {
      sqlite3_reset (stmt);
      sqlite3_clear_bindings (stmt);
    }
}

/* Runs a statement that returns no rows; done_stmt() afterwards. */
static gboolean
step_done (PmStoreSqlite *self,
           sqlite3_stmt  *stmt,
           const char    *doing,
           GError       **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    {
      /* sqlite3_step() returns the extended code with SQLITE_OPEN_EXRESCODE. */
      set_db_error (self, rc, doing, error);
      done_stmt (stmt);
      return FALSE;
    }
  done_stmt (stmt);
  return TRUE;
}

static gboolean
run_simple (PmStoreSqlite *self,
            Stmt           which,
            const char    *doing,
            GError       **error)
{
  sqlite3_stmt *stmt = get_stmt (self, which, error);

  return stmt != NULL && step_done (self, stmt, doing, error);
}

static gboolean
begin (PmStoreSqlite *self,
       GError       **error)
{
  return run_simple (self, STMT_BEGIN, "starting a transaction", error);
}

static gboolean
commit (PmStoreSqlite *self,
        GError       **error)
{
  return run_simple (self, STMT_COMMIT, "committing", error);
}

static void
rollback (PmStoreSqlite *self)
{
  g_autoptr (GError) error = NULL;

  if (sqlite3_get_autocommit (self->db))
    return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
  if (!run_simple (self, STMT_ROLLBACK, "rolling back", &error))
    g_warning ("%s", error->message);
}

static void
bind_text_or_null (sqlite3_stmt *stmt,
                   int           index,
                   const char   *text)
{
  if (text != NULL)
    sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (stmt, index);
}

static void
bind_time_or_null (sqlite3_stmt *stmt,
                   int           index,
                   int64_t       time)
{
  if (time != 0)
    sqlite3_bind_int64 (stmt, index, time);
  else
    sqlite3_bind_null (stmt, index);
}

static char *
column_dup (sqlite3_stmt *stmt,
            int           column)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, column));
}

/* A device from a row of DEVICE_COLUMNS. */
static PmDeviceRecord *
device_from_row (sqlite3_stmt *stmt)
{
  PmDeviceRecord *device = g_new0 (PmDeviceRecord, 1);

  device->id = column_dup (stmt, 0);
  device->account_id = column_dup (stmt, 1);
  device->name = column_dup (stmt, 2);
  device->type = column_dup (stmt, 3);
  device->public_key = column_dup (stmt, 4);
  device->key_type = column_dup (stmt, 5);
  device->candidates = column_dup (stmt, 6);
  device->push_endpoint = column_dup (stmt, 7);
  device->created_at = sqlite3_column_int64 (stmt, 8);
  device->last_seen = sqlite3_column_int64 (stmt, 9);
  device->revoked_at = sqlite3_column_int64 (stmt, 10);
  device->revoked = sqlite3_column_type (stmt, 10) != SQLITE_NULL;
  return device;
}

/* One device from a prepared and bound DEVICE_COLUMNS query, or NOT_FOUND. */
static PmDeviceRecord *
query_one_device (PmStoreSqlite *self,
                  sqlite3_stmt  *stmt,
                  const char    *not_found,
                  GError       **error)
{
  PmDeviceRecord *device = NULL;
  int             rc = sqlite3_step (stmt);

  if (rc == SQLITE_ROW)
    device = device_from_row (stmt);
  else if (rc == SQLITE_DONE)
    g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND, not_found);
  else
    set_db_error (self, rc, "reading a device", error);
  done_stmt (stmt);
  return device;
}

/* An UPDATE of one active device by id: NOT_FOUND if it matched no row. */
static gboolean
update_one_device (PmStoreSqlite *self,
                   sqlite3_stmt  *stmt,
                   const char    *doing,
                   GError       **error)
{
  if (!step_done (self, stmt, doing, error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND,
                           "No such active device");
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------------
 * PmStore
 * ------------------------------------------------------------------------- */

static gboolean
pm_store_sqlite_create_account (PmStore               *store,
                                const PmAccountRecord *account,
                                GError               **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) local_error = NULL;
  sqlite3_stmt *stmt = get_stmt (self, STMT_INSERT_ACCOUNT, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, account->id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, account->name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 3, account->created_at);
  if (!step_done (self, stmt, "creating an account", &local_error))
    {
      if (g_error_matches (local_error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT))
        g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT,
                     "An account named “%s” already exists", account->name);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}

static PmAccountRecord *
pm_store_sqlite_find_account (PmStore    *store,
                              const char *name_or_id,
                              GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_FIND_ACCOUNT, error);
  PmAccountRecord                *account = NULL;
  int                             rc;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, name_or_id, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      account = g_new0 (PmAccountRecord, 1);
      account->id = column_dup (stmt, 0);
      account->name = column_dup (stmt, 1);
      account->created_at = sqlite3_column_int64 (stmt, 2);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND,
                 "No account named “%s”", name_or_id);
  else
    set_db_error (self, rc, "reading an account", error);
  done_stmt (stmt);
  return account;
}

static gboolean
pm_store_sqlite_create_enrollment_key (PmStore       *store,
                                       const char    *account_id,
                                       const char    *key_id,
                                       const uint8_t *key_hash,
                                       int64_t        expires_at,
                                       gboolean       reusable,
                                       int64_t        now,
                                       GError       **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) local_error = NULL;
  sqlite3_stmt *stmt = get_stmt (self, STMT_INSERT_KEY, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, key_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, account_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob (stmt, 3, key_hash, PM_STORE_HASH_LEN, SQLITE_TRANSIENT);
  sqlite3_bind_int (stmt, 4, reusable ? 1 : 0);
  sqlite3_bind_int64 (stmt, 5, now);
  bind_time_or_null (stmt, 6, expires_at);
  if (!step_done (self, stmt, "creating an enrollment key", &local_error))
    {
      if (g_error_matches (local_error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND))
        g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND,
                     "No account with id “%s”", account_id);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}

static gboolean
pm_store_sqlite_enroll_device (PmStore        *store,
                               const uint8_t  *key_hash,
                               PmDeviceRecord *device,
                               const uint8_t  *token_hash,
                               int64_t         now,
                               GError        **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) local_error = NULL;
  g_autofree char *key_id = NULL;
  g_autofree char *account_id = NULL;
  sqlite3_stmt    *stmt;
  int              rc;

  if (!begin (self, error))
    return FALSE;

  /* The key: unknown, expired and used-up keys all look the same. */
  stmt = get_stmt (self, STMT_FIND_KEY, error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_blob (stmt, 1, key_hash, PM_STORE_HASH_LEN, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 2, now);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      key_id = column_dup (stmt, 0);
      account_id = column_dup (stmt, 1);
    }
  else if (rc == SQLITE_DONE)
    g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_KEY,
                         "The enrollment key is unknown, expired or already used");
  else
    set_db_error (self, rc, "reading an enrollment key", error);
  done_stmt (stmt);
  if (key_id == NULL)
    goto fail;

  stmt = get_stmt (self, STMT_USE_KEY, error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, key_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 2, now);
  if (!step_done (self, stmt, "using an enrollment key", error))
    goto fail;

  stmt = get_stmt (self, STMT_INSERT_DEVICE, error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, device->id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, account_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 3, key_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 4, device->name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 5, device->type, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 6, device->public_key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 7, device->key_type, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob (stmt, 8, token_hash, PM_STORE_HASH_LEN, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 9, device->created_at);
  if (!step_done (self, stmt, "adding a device", &local_error))
    {
      if (g_error_matches (local_error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT))
        g_set_error_literal (error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT,
                             "Another active device already has this public key");
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      goto fail;
    }

  if (!commit (self, error))
    goto fail;
  device->account_id = g_steal_pointer (&account_id);
  return TRUE;

fail:
  rollback (self);
  return FALSE;
}

static PmDeviceRecord *
pm_store_sqlite_find_device_by_token_hash (PmStore       *store,
                                           const uint8_t *token_hash,
                                           GError       **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_DEVICE_BY_TOKEN, error);

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_blob (stmt, 1, token_hash, PM_STORE_HASH_LEN, SQLITE_TRANSIENT);
  return query_one_device (self, stmt, "Unknown or revoked device token", error);
}

static PmDeviceRecord *
pm_store_sqlite_get_device (PmStore    *store,
                            const char *device_id,
                            GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_DEVICE_BY_ID, error);

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device_id, -1, SQLITE_TRANSIENT);
  return query_one_device (self, stmt, "No such device", error);
}

static GPtrArray *
pm_store_sqlite_list_devices (PmStore    *store,
                              const char *account_id,
                              gboolean    include_revoked,
                              GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  g_autoptr (GPtrArray) devices =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_device_record_free);
  sqlite3_stmt *stmt = get_stmt (self, STMT_LIST_DEVICES, error);
  int           rc;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, account_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int (stmt, 2, include_revoked ? 1 : 0);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (devices, device_from_row (stmt));
  if (rc != SQLITE_DONE)
    {
      set_db_error (self, rc, "listing devices", error);
      done_stmt (stmt);
      return NULL;
    }
  done_stmt (stmt);
  return g_steal_pointer (&devices);
}

static gboolean
pm_store_sqlite_set_candidates (PmStore    *store,
                                const char *device_id,
                                const char *candidates_json,
                                int64_t     now,
                                GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_SET_CANDIDATES, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, device_id, -1, SQLITE_TRANSIENT);
  bind_text_or_null (stmt, 2, candidates_json);
  sqlite3_bind_int64 (stmt, 3, now);
  return update_one_device (self, stmt, "setting candidates", error);
}

static gboolean
pm_store_sqlite_set_push_endpoint (PmStore    *store,
                                   const char *device_id,
                                   const char *endpoint,
                                   GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_SET_PUSH_ENDPOINT, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, device_id, -1, SQLITE_TRANSIENT);
  bind_text_or_null (stmt, 2, endpoint);
  return update_one_device (self, stmt, "setting the push endpoint", error);
}

static gboolean
pm_store_sqlite_touch_device (PmStore    *store,
                              const char *device_id,
                              int64_t     now,
                              GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_TOUCH, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, device_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 2, now);
  return update_one_device (self, stmt, "updating last seen", error);
}

static gboolean
pm_store_sqlite_revoke_device (PmStore    *store,
                               const char *device_id,
                               const char *account_id,
                               int64_t     now,
                               GError    **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) local_error = NULL;
  sqlite3_stmt *stmt = get_stmt (self, STMT_REVOKE, error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, device_id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 2, now);
  bind_text_or_null (stmt, 3, account_id);
  if (!update_one_device (self, stmt, "revoking a device", &local_error))
    {
      if (g_error_matches (local_error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND))
        g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND,
                     "No active device with id “%s”", device_id);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}

static gboolean
pm_store_sqlite_get_counts (PmStore       *store,
                            PmStoreCounts *counts,
                            GError       **error)
{
  PmStoreSqlite                  *self = PM_STORE_SQLITE (store);
  g_autoptr (GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);
  sqlite3_stmt                   *stmt = get_stmt (self, STMT_COUNTS, error);
  int                             rc;

  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      set_db_error (self, rc, "counting", error);
      done_stmt (stmt);
      return FALSE;
    }
  counts->accounts = sqlite3_column_int64 (stmt, 0);
  counts->devices = sqlite3_column_int64 (stmt, 1);
  counts->active_devices = sqlite3_column_int64 (stmt, 2);
  counts->enrollment_keys = sqlite3_column_int64 (stmt, 3);
  done_stmt (stmt);
  return TRUE;
}

static void
pm_store_sqlite_iface_init (PmStoreInterface *iface)
{
  iface->create_account = pm_store_sqlite_create_account;
  iface->find_account = pm_store_sqlite_find_account;
  iface->create_enrollment_key = pm_store_sqlite_create_enrollment_key;
  iface->enroll_device = pm_store_sqlite_enroll_device;
  iface->find_device_by_token_hash = pm_store_sqlite_find_device_by_token_hash;
  iface->get_device = pm_store_sqlite_get_device;
  iface->list_devices = pm_store_sqlite_list_devices;
  iface->set_candidates = pm_store_sqlite_set_candidates;
  iface->set_push_endpoint = pm_store_sqlite_set_push_endpoint;
  iface->touch_device = pm_store_sqlite_touch_device;
  iface->revoke_device = pm_store_sqlite_revoke_device;
  iface->get_counts = pm_store_sqlite_get_counts;
}

/* ---------------------------------------------------------------------------
 * Opening and migrating
 * ------------------------------------------------------------------------- */

static void
pm_store_sqlite_finalize (GObject *object)
{
  PmStoreSqlite *self = PM_STORE_SQLITE (object);

  for (size_t i = 0; i < N_STMTS; i++)
    sqlite3_finalize (self->stmts[i]);
  if (self->db != NULL)
    sqlite3_close (self->db);
  g_mutex_clear (&self->lock);
  g_free (self->path);

  G_OBJECT_CLASS (pm_store_sqlite_parent_class)->finalize (object);
}

static void
pm_store_sqlite_class_init (PmStoreSqliteClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = pm_store_sqlite_finalize;
}

static void
pm_store_sqlite_init (PmStoreSqlite *self)
{
  g_mutex_init (&self->lock);
}

/* Runs SQL that binds no values: pragmas and migration scripts from this file. */
static gboolean
exec_sql (PmStoreSqlite *self,
          const char    *sql,
          const char    *doing,
          GError       **error)
{
  char *message = NULL;
  int   rc = sqlite3_exec (self->db, sql, NULL, NULL, &message);

  if (rc != SQLITE_OK)
    {
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO, "Database error while %s: %s",
                   doing, message != NULL ? message : sqlite3_errstr (rc));
      sqlite3_free (message);
      return FALSE;
    }
  return TRUE;
}

/* The single text or integer result of @sql, as text. */
static char *
query_pragma (PmStoreSqlite *self,
              const char    *sql,
              GError       **error)
{
  sqlite3_stmt *stmt = NULL;
  char         *value = NULL;
  int           rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);

  if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
    value = column_dup (stmt, 0);
  else
    set_db_error (self, rc, sql, error);
  sqlite3_finalize (stmt);
  return value;
}

int
pm_store_sqlite_latest_schema_version (void)
{
  return (int) G_N_ELEMENTS (migrations);
}

int
pm_store_sqlite_get_schema_version (PmStoreSqlite *self)
{
  g_autofree char *version = NULL;

  g_return_val_if_fail (PM_IS_STORE_SQLITE (self), -1);

  g_mutex_lock (&self->lock);
  version = query_pragma (self, "PRAGMA user_version", NULL);
  g_mutex_unlock (&self->lock);
  return version != NULL ? atoi (version) : -1;
}

/* Applies the missing migrations, each in its own transaction that first
 * re-reads the version under the write lock: two servers starting at once
 * never apply a step twice. */
static gboolean
migrate (PmStoreSqlite *self,
         GError       **error)
{
  const int latest = pm_store_sqlite_latest_schema_version ();

  for (;;)
    {
      g_autofree char *text = NULL;
      g_autofree char *doing = NULL;
      g_autofree char *set_version = NULL;
      int              version;

      if (!begin (self, error))
        return FALSE;
      text = query_pragma (self, "PRAGMA user_version", error);
      if (text == NULL)
        goto fail;
      version = atoi (text);
      if (version > latest)
        {
          g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO,
                       "The database %s has schema version %d, newer than this server's %d: "
                       "run a newer pipermesh-server, or restore a backup",
                       self->path, version, latest);
          goto fail;
        }
      if (version == latest)
        {
          if (!commit (self, error))
            goto fail;
          return TRUE;
        }

      doing = g_strdup_printf ("migrating the schema to version %d", version + 1);
      if (!exec_sql (self, migrations[version], doing, error))
        goto fail;
      /* A pragma cannot take a bound parameter; the value is our own integer. */
      set_version = g_strdup_printf ("PRAGMA user_version = %d", version + 1);
      if (!exec_sql (self, set_version, doing, error))
        goto fail;
      if (!commit (self, error))
        goto fail;
      g_debug ("Migrated %s to schema version %d", self->path, version + 1);
      continue;

fail:
      rollback (self);
      return FALSE;
    }
}

/* Makes the database file's directory (0700) and the file itself (0600)
 * before SQLite does, so neither is ever readable by others; an existing file
 * that is loses its group and other permissions. SQLite gives its -wal and
 * -shm files the database file's permissions. */
static gboolean
prepare_file (const char *path,
              GError    **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  GStatBuf         st;
  int              fd;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO,
                   "Could not create the database folder %s: %s", dir, g_strerror (saved_errno));
      return FALSE;
    }
  fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || fstat (fd, &st) != 0 ||
      ((st.st_mode & 077) != 0 && fchmod (fd, st.st_mode & 0700) != 0))
    {
      int saved_errno = errno;
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO,
                   "Could not open the database %s: %s", path, g_strerror (saved_errno));
      if (fd >= 0)
        g_close (fd, NULL);
      return FALSE;
    }
  g_close (fd, NULL);
  return TRUE;
}

/**
 * pm_store_sqlite_open:
 * @path: the database file, created if missing, or ":memory:" for a private
 *   in-memory database (tests)
 *
 * Opens the database, switches it to WAL and brings its schema up to date.
 */
PmStoreSqlite *
pm_store_sqlite_open (const char *path,
                      GError    **error)
{
  g_autoptr (PmStoreSqlite) self = NULL;
  g_autofree char *journal = NULL;
  gboolean         memory;
  int              rc;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  memory = g_str_equal (path, ":memory:");
  if (!memory && !prepare_file (path, error))
    return NULL;

  self = g_object_new (PM_TYPE_STORE_SQLITE, NULL);
  self->path = g_strdup (path);
  /* NOMUTEX: our own lock serialises each object's calls. */
  rc = sqlite3_open_v2 (path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                          SQLITE_OPEN_EXRESCODE,
                        NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO, "Could not open the database %s: %s",
                   path, self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
      return NULL;
    }
  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, PM_STORE_SQLITE_BUSY_TIMEOUT_MS);

  if (!exec_sql (self, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                 "configuring the database", error))
    return NULL;
  journal = query_pragma (self, "PRAGMA journal_mode = WAL", error);
  if (journal == NULL)
    return NULL;
  if (!memory && g_ascii_strcasecmp (journal, "wal") != 0)
    {
      g_set_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO,
                   "Could not switch the database %s to WAL mode (it is in %s mode); "
                   "is it on a network file system?",
                   path, journal);
      return NULL;
    }
  if (!migrate (self, error))
    return NULL;
  return g_steal_pointer (&self);
}

const char *
pm_store_sqlite_get_path (PmStoreSqlite *self)
{
  g_return_val_if_fail (PM_IS_STORE_SQLITE (self), NULL);
  return self->path;
}

/* $XDG_DATA_HOME/pipermesh-server/server.db */
char *
pm_store_sqlite_default_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "pipermesh-server", "server.db", NULL);
}
