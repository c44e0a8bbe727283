/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmPairedStore: paired devices in SQLite.
 *
 * - The file is made (0600, its folder 0700) by the first change only; a
 *   read of a store that does not exist finds nothing and writes nothing.
 * - WAL journal, foreign keys on, synchronous=NORMAL, a busy timeout so a
 *   second process waits for the write lock instead of failing.
 * - schema_version holds one row, the version; migrations[] holds one script
 *   per version, applied in order inside BEGIN IMMEDIATE with the bump. A file
 *   from a newer PiperMesh is refused, never changed.
 * - Values reach SQL only as bound parameters.
 * - Every change of more than one row runs in BEGIN IMMEDIATE … COMMIT and
 *   rolls back on any error, so a failed add leaves no trace.
 */
#define G_LOG_DOMAIN "pipermesh-paired"

#include "pm-paired-store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "pm-address.h"
#include "pm-pair-payload.h"

#define ID_PREFIX    "pd_"
#define ID_BYTES     16
#define SERVICE_MAX  64
#define SCHEMA_TABLE "schema_version"

/* Entry N-1 takes the schema from version N-1 to N. Never edit a released
 * entry; append a new one. */
static const char *const migrations[] = {
  /* 1: devices, their last known addresses, the services each may use. */
  "CREATE TABLE paired_devices ("
  "  id          TEXT PRIMARY KEY,"
  "  name        TEXT NOT NULL UNIQUE,"
  "  device_type TEXT NOT NULL CHECK (device_type IN"
  "                ('linux', 'mac', 'windows', 'android', 'iphone', 'ipad', 'watch')),"
  "  public_key  BLOB NOT NULL UNIQUE CHECK (length (public_key) = 32),"
  "  paired_at   INTEGER NOT NULL"
  ");"
  "CREATE TABLE paired_addresses ("
  "  device_id TEXT NOT NULL REFERENCES paired_devices (id) ON DELETE CASCADE,"
  "  position  INTEGER NOT NULL,"
  "  address   TEXT NOT NULL,"
  "  PRIMARY KEY (device_id, position)"
  ");"
  "CREATE TABLE paired_services ("
  "  device_id TEXT NOT NULL REFERENCES paired_devices (id) ON DELETE CASCADE,"
  "  service   TEXT NOT NULL,"
  "  PRIMARY KEY (device_id, service)"
  ");",
};

struct _PmPairedStore {
  GObject  parent_instance;
  char    *path;
  sqlite3 *db; /* NULL until first needed */
};

G_DEFINE_FINAL_TYPE (PmPairedStore, pm_paired_store, G_TYPE_OBJECT)

/* clang-format off */
G_DEFINE_QUARK (pm-paired-store-error-quark, pm_paired_store_error)
/* clang-format on */

/* --- records ------------------------------------------------------------------ */

PmPairedDevice *
pm_paired_device_new (void)
{
  PmPairedDevice *device = g_new0 (PmPairedDevice, 1);

  device->addresses = g_ptr_array_new_null_terminated (0, g_free, TRUE);
  device->allowed_services = g_ptr_array_new_null_terminated (0, g_free, TRUE);
  return device;
}

PmPairedDevice *
pm_paired_device_copy (const PmPairedDevice *device)
{
  PmPairedDevice *copy;

  g_return_val_if_fail (device != NULL, NULL);

  copy = pm_paired_device_new ();
  copy->id = g_strdup (device->id);
  copy->name = g_strdup (device->name);
  copy->device_type = g_strdup (device->device_type);
  memcpy (copy->public_key, device->public_key, PM_KEY_LEN);
  for (unsigned i = 0; i < device->addresses->len; i++)
    g_ptr_array_add (copy->addresses, g_strdup (device->addresses->pdata[i]));
  for (unsigned i = 0; i < device->allowed_services->len; i++)
    g_ptr_array_add (copy->allowed_services, g_strdup (device->allowed_services->pdata[i]));
  copy->paired_at = device->paired_at;
  return copy;
}

void
pm_paired_device_free (PmPairedDevice *device)
{
  if (device == NULL)
    return;
  g_free (device->id);
  g_free (device->name);
  g_free (device->device_type);
  g_ptr_array_unref (device->addresses);
  g_ptr_array_unref (device->allowed_services);
  g_free (device);
}

/* TRUE when @device may use this device's service @service. */
gboolean
pm_paired_device_allows (const PmPairedDevice *device,
                         const char           *service)
{
  g_return_val_if_fail (device != NULL && service != NULL, FALSE);

  for (unsigned i = 0; i < device->allowed_services->len; i++)
    {
      const char *s = device->allowed_services->pdata[i];
      if (g_str_equal (s, PM_PAIRED_ALL_SERVICES) || g_str_equal (s, service))
        return TRUE;
    }
  return FALSE;
}

char *
pm_paired_device_get_public_key_hex (const PmPairedDevice *device)
{
  g_return_val_if_fail (device != NULL, NULL);
  return pm_key_to_hex (device->public_key);
}

/* --- SQLite helpers ------------------------------------------------------------ */

static gboolean
sql_failed (PmPairedStore *self,
            int            rc,
            const char    *doing,
            GError       **error)
{
  int primary = rc & 0xff;
  int code = PM_PAIRED_STORE_ERROR_IO;

  if (primary == SQLITE_CONSTRAINT)
    code = PM_PAIRED_STORE_ERROR_CONFLICT;
  else if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
    code = PM_PAIRED_STORE_ERROR_CORRUPT;
  g_set_error (error, PM_PAIRED_STORE_ERROR, code, "%s (%s): %s", self->path, doing,
               self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
  return FALSE;
}

static gboolean
exec_sql (PmPairedStore *self,
          const char    *sql,
          const char    *doing,
          GError       **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  return rc == SQLITE_OK || sql_failed (self, rc, doing, error);
}

static sqlite3_stmt *
prepare (PmPairedStore *self,
         const char    *sql,
         GError       **error)
{
  sqlite3_stmt *stmt = NULL;
  int           rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);

  if (rc != SQLITE_OK)
    {
      sql_failed (self, rc, "preparing a statement", error);
      return NULL;
    }
  return stmt;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* Runs a statement that returns no rows. */
static gboolean
step_done (PmPairedStore *self,
           sqlite3_stmt  *stmt,
           const char    *doing,
           GError       **error)
{
  int rc = sqlite3_step (stmt);

  return rc == SQLITE_DONE || sql_failed (self, rc, doing, error);
}

static void
rollback (PmPairedStore *self)
{
  if (!sqlite3_get_autocommit (self->db))
    (void) sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

/* --- opening ------------------------------------------------------------------- */

static gboolean
migrate (PmPairedStore *self,
         GError       **error)
{
  g_autoptr (sqlite3_stmt) stmt = NULL;
  int version = 0;
  int rc;

  if (!exec_sql (self, "BEGIN IMMEDIATE", "taking the write lock", error))
    return FALSE;
  if (!exec_sql (self, "CREATE TABLE IF NOT EXISTS " SCHEMA_TABLE " (version INTEGER NOT NULL)",
                 "creating the schema version table", error))
    goto fail;
  stmt = prepare (self, "SELECT version FROM " SCHEMA_TABLE, error);
  if (stmt == NULL)
    goto fail;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    version = sqlite3_column_int (stmt, 0);
  else if (rc != SQLITE_DONE)
    {
      sql_failed (self, rc, "reading the schema version", error);
      goto fail;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (version < 0 || version > (int) G_N_ELEMENTS (migrations))
    {
      g_set_error (
        error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CORRUPT,
        "%s has schema version %d; this PiperMesh knows up to %d (was it made by a newer one?)",
        self->path, version, (int) G_N_ELEMENTS (migrations));
      goto fail;
    }
  if (version == (int) G_N_ELEMENTS (migrations))
    return exec_sql (self, "COMMIT", "committing", error);

  for (int v = version; v < (int) G_N_ELEMENTS (migrations); v++)
    if (!exec_sql (self, migrations[v], "migrating the schema", error))
      goto fail;
  stmt = prepare (self,
                  version == 0 ? "INSERT INTO " SCHEMA_TABLE " (version) VALUES (?1)"
                               : "UPDATE " SCHEMA_TABLE " SET version = ?1",
                  error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_int (stmt, 1, (int) G_N_ELEMENTS (migrations));
  if (!step_done (self, stmt, "recording the schema version", error) ||
      !exec_sql (self, "COMMIT", "committing the schema", error))
    goto fail;
  return TRUE;

fail:
  rollback (self);
  return FALSE;
}

/* Opens the database. With @create FALSE and no file yet, succeeds with
 * self->db still NULL: the store is empty and nothing is written. */
static gboolean
ensure_open (PmPairedStore *self,
             gboolean       create,
             GError       **error)
{
  gboolean         memory = g_str_equal (self->path, ":memory:");
  g_autofree char *journal = NULL;
  int              rc;

  if (self->db != NULL)
    return TRUE;
  if (!memory && !create && !g_file_test (self->path, G_FILE_TEST_EXISTS))
    return TRUE;

  if (!memory)
    {
      g_autofree char *dir = g_path_get_dirname (self->path);
      GStatBuf         st;
      int              fd;

      if (g_mkdir_with_parents (dir, 0700) != 0)
        {
          int errsv = errno;
          g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_IO,
                       "Could not create %s: %s", dir, g_strerror (errsv));
          return FALSE;
        }
      /* Made 0600 before SQLite opens it (its -wal and -shm take the mode). */
      fd = g_open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0 || fstat (fd, &st) != 0 ||
          ((st.st_mode & 077) != 0 && fchmod (fd, st.st_mode & 0700) != 0))
        {
          int errsv = errno;
          g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_IO,
                       "Could not open %s: %s", self->path, g_strerror (errsv));
          if (fd >= 0)
            g_close (fd, NULL);
          return FALSE;
        }
      g_close (fd, NULL);
    }

  rc = sqlite3_open_v2 (
    self->path, &self->db,
    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
  if (rc != SQLITE_OK)
    goto fail;
  sqlite3_busy_timeout (self->db, PM_PAIRED_STORE_BUSY_TIMEOUT_MS);
  if (!exec_sql (self, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", "configuring",
                 error))
    goto fail_set;
  {
    g_autoptr (sqlite3_stmt) stmt = prepare (self, "PRAGMA journal_mode = WAL", error);

    if (stmt == NULL)
      goto fail_set;
    rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW)
      goto fail;
    journal = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  }
  if (!memory && g_ascii_strcasecmp (journal != NULL ? journal : "", "wal") != 0)
    {
      g_set_error (
        error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_IO,
        "Could not switch %s to WAL mode (it is in %s mode); is it on a network file system?",
        self->path, journal);
      goto fail_set;
    }
  if (!migrate (self, error))
    goto fail_set;
  return TRUE;

fail:
  sql_failed (self, rc, "opening", error);
fail_set:
  g_clear_pointer (&self->db, sqlite3_close);
  return FALSE;
}

/* --- reading ------------------------------------------------------------------- */

static gboolean
load_children (PmPairedStore  *self,
               PmPairedDevice *device,
               GError        **error)
{
  g_autoptr (sqlite3_stmt) addresses = NULL;
  g_autoptr (sqlite3_stmt) services = NULL;
  int rc;

  addresses = prepare (
    self, "SELECT address FROM paired_addresses WHERE device_id = ?1 ORDER BY position", error);
  if (addresses == NULL)
    return FALSE;
  sqlite3_bind_text (addresses, 1, device->id, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step (addresses)) == SQLITE_ROW)
    g_ptr_array_add (device->addresses,
                     g_strdup ((const char *) sqlite3_column_text (addresses, 0)));
  if (rc != SQLITE_DONE)
    return sql_failed (self, rc, "reading addresses", error);

  services = prepare (
    self, "SELECT service FROM paired_services WHERE device_id = ?1 ORDER BY service", error);
  if (services == NULL)
    return FALSE;
  sqlite3_bind_text (services, 1, device->id, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step (services)) == SQLITE_ROW)
    g_ptr_array_add (device->allowed_services,
                     g_strdup ((const char *) sqlite3_column_text (services, 0)));
  if (rc != SQLITE_DONE)
    return sql_failed (self, rc, "reading services", error);
  return TRUE;
}

#define DEVICE_COLUMNS "id, name, device_type, public_key, paired_at"

static PmPairedDevice *
device_from_row (sqlite3_stmt *stmt)
{
  PmPairedDevice *device = pm_paired_device_new ();
  const void     *key = sqlite3_column_blob (stmt, 3);

  device->id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  device->name = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
  device->device_type = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
  if (key != NULL && sqlite3_column_bytes (stmt, 3) == PM_KEY_LEN)
    memcpy (device->public_key, key, PM_KEY_LEN);
  device->paired_at = sqlite3_column_int64 (stmt, 4);
  return device;
}

/* Runs a query of DEVICE_COLUMNS and collects every row, with its children.
 * @bind: NULL, or the text bound to ?1; @key: NULL, or the blob bound to ?1. */
static GPtrArray *
query_devices (PmPairedStore *self,
               const char    *sql,
               const char    *bind,
               const uint8_t *key,
               GError       **error)
{
  g_autoptr (GPtrArray) devices =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_paired_device_free);
  g_autoptr (sqlite3_stmt) stmt = NULL;
  int rc;

  if (!ensure_open (self, FALSE, error))
    return NULL;
  if (self->db == NULL)
    return g_steal_pointer (&devices);
  stmt = prepare (self, sql, error);
  if (stmt == NULL)
    return NULL;
  if (bind != NULL)
    sqlite3_bind_text (stmt, 1, bind, -1, SQLITE_TRANSIENT);
  if (key != NULL)
    sqlite3_bind_blob (stmt, 1, key, PM_KEY_LEN, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (devices, device_from_row (stmt));
  if (rc != SQLITE_DONE)
    {
      sql_failed (self, rc, "reading paired devices", error);
      return NULL;
    }
  for (unsigned i = 0; i < devices->len; i++)
    if (!load_children (self, devices->pdata[i], error))
      return NULL;
  return g_steal_pointer (&devices);
}

/**
 * pm_paired_store_list:
 * Returns: (transfer container) (element-type PmPairedDevice): every paired
 *   device, oldest pairing first; empty when the file does not exist
 */
GPtrArray *
pm_paired_store_list (PmPairedStore *self,
                      GError       **error)
{
  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), NULL);
  return query_devices (self,
                        "SELECT " DEVICE_COLUMNS " FROM paired_devices ORDER BY paired_at, name",
                        NULL, NULL, error);
}

static PmPairedDevice *
take_one (GPtrArray  *devices,
          const char *what,
          GError    **error)
{
  if (devices == NULL)
    return NULL;
  if (devices->len == 0)
    {
      g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND,
                   "No paired device is %s (“pipermesh paired” lists them)", what);
      g_ptr_array_unref (devices);
      return NULL;
    }
  {
    PmPairedDevice *device = g_ptr_array_steal_index (devices, 0);
    g_ptr_array_unref (devices);
    return device;
  }
}

/**
 * pm_paired_store_lookup:
 * @id_or_name: an id ("pd_…") or a name; an id wins
 */
PmPairedDevice *
pm_paired_store_lookup (PmPairedStore *self,
                        const char    *id_or_name,
                        GError       **error)
{
  g_autofree char *what = NULL;

  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), NULL);
  g_return_val_if_fail (id_or_name != NULL, NULL);

  what = g_strdup_printf ("named “%s”", id_or_name);
  return take_one (query_devices (self,
                                  "SELECT " DEVICE_COLUMNS
                                  " FROM paired_devices WHERE id = ?1 OR name = ?1 "
                                  "ORDER BY id = ?1 DESC LIMIT 1",
                                  id_or_name, NULL, error),
                   what, error);
}

PmPairedDevice *
pm_paired_store_lookup_key (PmPairedStore *self,
                            const uint8_t  public_key[PM_KEY_LEN],
                            GError       **error)
{
  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), NULL);
  g_return_val_if_fail (public_key != NULL, NULL);

  return take_one (
    query_devices (self, "SELECT " DEVICE_COLUMNS " FROM paired_devices WHERE public_key = ?1",
                   NULL, public_key, error),
    "known by that public key", error);
}

/**
 * pm_paired_store_check_new:
 * Whether a device with this name and key could be added: %FALSE with
 * %PM_PAIRED_STORE_ERROR_CONFLICT when another device (another key) already
 * has the name. Pairing again with the same key is allowed (it replaces the
 * record). Writes nothing.
 */
gboolean
pm_paired_store_check_new (PmPairedStore *self,
                           const char    *name,
                           const uint8_t  public_key[PM_KEY_LEN],
                           GError       **error)
{
  g_autoptr (GPtrArray) devices = NULL;

  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), FALSE);
  g_return_val_if_fail (name != NULL && public_key != NULL, FALSE);

  devices = query_devices (self, "SELECT " DEVICE_COLUMNS " FROM paired_devices WHERE name = ?1",
                           name, NULL, error);
  if (devices == NULL)
    return FALSE;
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmPairedDevice *device = devices->pdata[i];
      if (sodium_memcmp (device->public_key, public_key, PM_KEY_LEN) != 0)
        {
          g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT,
                       "Another device named “%s” is already paired; unpair it first "
                       "(pipermesh unpair %s) or pair under another name",
                       name, name);
          return FALSE;
        }
    }
  return TRUE;
}

/* --- writing ------------------------------------------------------------------- */

static gboolean invalid (GError    **error,
                         const char *format,
                         ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError    **error,
         const char *format,
         ...)
{
  va_list args;

  if (error == NULL)
    return FALSE;
  g_assert (*error == NULL);
  va_start (args, format);
  *error = g_error_new_valist (PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_INVALID, format, args);
  va_end (args);
  return FALSE;
}

static gboolean
check_address (const char *address,
               GError    **error)
{
  g_autoptr (GInetSocketAddress) parsed = pm_address_parse (address, FALSE);

  if (parsed == NULL)
    return invalid (error, "“%s” is not an IP:PORT address", address);
  return TRUE;
}

static gboolean
check_device (const PmPairedDevice *device,
              GError              **error)
{
  if (device->name == NULL || !pm_pair_name_check (device->name, strlen (device->name), NULL))
    return invalid (error,
                    "“%s” is not a device name (1 to 64 bytes of UTF-8, no control characters)",
                    device->name != NULL ? device->name : "");
  if (!pm_pair_device_type_is_valid (device->device_type))
    return invalid (error, "“%s” is not a device type",
                    device->device_type != NULL ? device->device_type : "");
  if (device->addresses->len > PM_PAIRED_STORE_MAX_ADDRESSES)
    return invalid (error, "More than %d addresses", PM_PAIRED_STORE_MAX_ADDRESSES);
  for (unsigned i = 0; i < device->addresses->len; i++)
    if (!check_address (device->addresses->pdata[i], error))
      return FALSE;
  for (unsigned i = 0; i < device->allowed_services->len; i++)
    {
      const char *s = device->allowed_services->pdata[i];
      if (*s == '\0' || strlen (s) > SERVICE_MAX || !g_utf8_validate (s, -1, NULL) ||
          strpbrk (s, "=:,/ \t\n") != NULL)
        return invalid (error, "“%s” is not a service name", s);
    }
  return TRUE;
}

static char *
random_id (void)
{
  uint8_t  bytes[ID_BYTES];
  GString *id = g_string_new (ID_PREFIX);

  randombytes_buf (bytes, sizeof bytes);
  for (size_t i = 0; i < sizeof bytes; i++)
    g_string_append_printf (id, "%02x", bytes[i]);
  return g_string_free (id, FALSE);
}

static gboolean
insert_addresses (PmPairedStore     *self,
                  const char        *id,
                  const char *const *addresses,
                  unsigned           n,
                  GError           **error)
{
  g_autoptr (sqlite3_stmt) clear =
    prepare (self, "DELETE FROM paired_addresses WHERE device_id = ?1", error);
  g_autoptr (sqlite3_stmt) insert = NULL;

  if (clear == NULL)
    return FALSE;
  sqlite3_bind_text (clear, 1, id, -1, SQLITE_TRANSIENT);
  if (!step_done (self, clear, "clearing addresses", error))
    return FALSE;
  insert = prepare (
    self, "INSERT INTO paired_addresses (device_id, position, address) VALUES (?1, ?2, ?3)", error);
  if (insert == NULL)
    return FALSE;
  for (unsigned i = 0; i < n; i++)
    {
      sqlite3_reset (insert);
      sqlite3_bind_text (insert, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int (insert, 2, (int) i);
      sqlite3_bind_text (insert, 3, addresses[i], -1, SQLITE_TRANSIENT);
      if (!step_done (self, insert, "storing an address", error))
        return FALSE;
    }
  return TRUE;
}

/**
 * pm_paired_store_add:
 * @device: (inout): the device; on success its id is the one it is stored
 *   under (a new random one, or the one its key already had)
 *
 * Stores a newly paired device, in one transaction with its addresses and
 * services. A device with the same public key is replaced (it keeps its id);
 * another device with the same name is a CONFLICT. On any error nothing
 * changes (not even the file's existence, when the record is refused before
 * the database is touched).
 */
gboolean
pm_paired_store_add (PmPairedStore  *self,
                     PmPairedDevice *device,
                     GError        **error)
{
  g_autoptr (sqlite3_stmt) stmt = NULL;
  g_autofree char *id = NULL;
  int              rc;

  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), FALSE);
  g_return_val_if_fail (device != NULL, FALSE);

  if (!check_device (device, error) || !ensure_open (self, TRUE, error))
    return FALSE;
  if (!exec_sql (self, "BEGIN IMMEDIATE", "taking the write lock", error))
    return FALSE;

  /* Same key: the same device paired again; it keeps its id. */
  stmt = prepare (self, "SELECT id FROM paired_devices WHERE public_key = ?1", error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_blob (stmt, 1, device->public_key, PM_KEY_LEN, SQLITE_TRANSIENT);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  else if (rc != SQLITE_DONE)
    {
      sql_failed (self, rc, "looking up the key", error);
      goto fail;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (id == NULL)
    id = random_id ();

  stmt = prepare (
    self,
    "INSERT INTO paired_devices (id, name, device_type, public_key, paired_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, device_type = excluded.device_type, "
    "paired_at = excluded.paired_at",
    error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 2, device->name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (stmt, 3, device->device_type, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob (stmt, 4, device->public_key, PM_KEY_LEN, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (stmt, 5, device->paired_at);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      if ((rc & 0xff) == SQLITE_CONSTRAINT)
        g_set_error (
          error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT,
          "Another device named “%s” is already paired; unpair it first (pipermesh unpair %s) "
          "or pair under another name",
          device->name, device->name);
      else
        sql_failed (self, rc, "storing the device", error);
      goto fail;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (!insert_addresses (self, id, (const char *const *) device->addresses->pdata,
                         device->addresses->len, error))
    goto fail;

  stmt = prepare (self, "DELETE FROM paired_services WHERE device_id = ?1", error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
  if (!step_done (self, stmt, "clearing services", error))
    goto fail;
  g_clear_pointer (&stmt, sqlite3_finalize);
  stmt = prepare (self, "INSERT INTO paired_services (device_id, service) VALUES (?1, ?2)", error);
  if (stmt == NULL)
    goto fail;
  for (unsigned i = 0; i < device->allowed_services->len; i++)
    {
      const char *service = device->allowed_services->pdata[i];

      sqlite3_reset (stmt);
      sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text (stmt, 2, service, -1, SQLITE_TRANSIENT);
      rc = sqlite3_step (stmt);
      if (rc != SQLITE_DONE)
        {
          if ((rc & 0xff) == SQLITE_CONSTRAINT)
            g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT,
                         "The service “%s” is listed twice", service);
          else
            sql_failed (self, rc, "storing a service", error);
          goto fail;
        }
    }
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (!exec_sql (self, "COMMIT", "committing", error))
    goto fail;
  g_free (device->id);
  device->id = g_steal_pointer (&id);
  return TRUE;

fail:
  g_clear_pointer (&stmt, sqlite3_finalize);
  rollback (self);
  return FALSE;
}

/**
 * pm_paired_store_remove:
 * Removes one device and everything stored about it (one transaction).
 */
gboolean
pm_paired_store_remove (PmPairedStore *self,
                        const char    *id_or_name,
                        GError       **error)
{
  g_autoptr (PmPairedDevice) device = NULL;
  g_autoptr (sqlite3_stmt) stmt = NULL;

  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), FALSE);
  g_return_val_if_fail (id_or_name != NULL, FALSE);

  device = pm_paired_store_lookup (self, id_or_name, error);
  if (device == NULL)
    return FALSE;
  if (!exec_sql (self, "BEGIN IMMEDIATE", "taking the write lock", error))
    return FALSE;
  /* ON DELETE CASCADE takes its addresses and services in the same transaction. */
  stmt = prepare (self, "DELETE FROM paired_devices WHERE id = ?1", error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, device->id, -1, SQLITE_TRANSIENT);
  if (!step_done (self, stmt, "removing the device", error))
    goto fail;
  if (sqlite3_changes (self->db) != 1)
    {
      g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND,
                   "No paired device is named “%s” (“pipermesh paired” lists them)", id_or_name);
      goto fail;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (!exec_sql (self, "COMMIT", "committing", error))
    goto fail;
  return TRUE;

fail:
  g_clear_pointer (&stmt, sqlite3_finalize);
  rollback (self);
  return FALSE;
}

/**
 * pm_paired_store_set_addresses:
 * @addresses: (array zero-terminated=1): "IP:PORT", newest first
 *
 * Replaces a device's last known addresses (one transaction).
 */
gboolean
pm_paired_store_set_addresses (PmPairedStore     *self,
                               const char        *id,
                               const char *const *addresses,
                               GError           **error)
{
  g_autoptr (sqlite3_stmt) stmt = NULL;
  unsigned n = addresses != NULL ? g_strv_length ((char **) addresses) : 0;

  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), FALSE);
  g_return_val_if_fail (id != NULL, FALSE);

  if (n > PM_PAIRED_STORE_MAX_ADDRESSES)
    return invalid (error, "More than %d addresses", PM_PAIRED_STORE_MAX_ADDRESSES);
  for (unsigned i = 0; i < n; i++)
    if (!check_address (addresses[i], error))
      return FALSE;
  if (!ensure_open (self, FALSE, error))
    return FALSE;
  if (self->db == NULL)
    return invalid (error, "No paired device has the id “%s”", id);
  if (!exec_sql (self, "BEGIN IMMEDIATE", "taking the write lock", error))
    return FALSE;
  stmt = prepare (self, "SELECT 1 FROM paired_devices WHERE id = ?1", error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      g_set_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND,
                   "No paired device has the id “%s”", id);
      goto fail;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (!insert_addresses (self, id, addresses, n, error) ||
      !exec_sql (self, "COMMIT", "committing", error))
    goto fail;
  return TRUE;

fail:
  g_clear_pointer (&stmt, sqlite3_finalize);
  rollback (self);
  return FALSE;
}

/* --- object -------------------------------------------------------------------- */

static void
pm_paired_store_finalize (GObject *object)
{
  PmPairedStore *self = PM_PAIRED_STORE (object);

  g_clear_pointer (&self->db, sqlite3_close);
  g_free (self->path);
  G_OBJECT_CLASS (pm_paired_store_parent_class)->finalize (object);
}

static void
pm_paired_store_class_init (PmPairedStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = pm_paired_store_finalize;
}

static void
pm_paired_store_init (PmPairedStore *self)
{
}

/**
 * pm_paired_store_new:
 * @path: the database file, or ":memory:" (tests)
 *
 * Opens nothing yet: the file is read on the first query and created on the
 * first change.
 */
PmPairedStore *
pm_paired_store_new (const char *path)
{
  PmPairedStore *self;

  g_return_val_if_fail (path != NULL, NULL);

  self = g_object_new (PM_TYPE_PAIRED_STORE, NULL);
  self->path = g_strdup (path);
  return self;
}

PmPairedStore *
pm_paired_store_new_for_state_dir (const char *state_dir)
{
  g_autofree char *path = NULL;

  g_return_val_if_fail (state_dir != NULL, NULL);
  path = g_build_filename (state_dir, PM_PAIRED_STORE_FILE, NULL);
  return pm_paired_store_new (path);
}

const char *
pm_paired_store_get_path (PmPairedStore *self)
{
  g_return_val_if_fail (PM_IS_PAIRED_STORE (self), NULL);
  return self->path;
}
