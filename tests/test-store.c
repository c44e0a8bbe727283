/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmStore through PmStoreSqlite, on a real SQLite file in a temporary folder
 * and on ":memory:". The file tests also read the database with a second,
 * raw sqlite3 connection, to check what really is on disk.
 */
#define G_LOG_DOMAIN "pipermesh-test-store"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "pm-store-sqlite.h"

#define NOW    G_GINT64_CONSTANT (1700000000)
#define HOUR   3600
#define PUBKEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct {
  char    *dir;
  char    *path; /* the database file, or ":memory:" */
  PmStore *store;
} Fixture;

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gboolean memory = g_str_equal ((const char *) data, "memory");

  f->dir = g_dir_make_tmp ("pm-test-store-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = memory ? g_strdup (":memory:") : g_build_filename (f->dir, "db", "server.db", NULL);
  f->store = PM_STORE (pm_store_sqlite_open (f->path, &error));
  g_assert_no_error (error);
  g_assert_nonnull (f->store);
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);
        remove_tree (child);
      }
  g_remove (path);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_clear_object (&f->store);
  remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static gboolean
has_file (Fixture *f)
{
  return !g_str_equal (f->path, ":memory:");
}

static gboolean
is_file_fixture (Fixture *f)
{
  if (g_str_equal (f->path, ":memory:"))
    {
      g_test_skip ("needs a database file");
      return FALSE;
    }
  return TRUE;
}

/* Opens a raw connection to the fixture's file. */
static sqlite3 *
raw_open (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  sqlite3_busy_timeout (db, 5000);
  return db;
}

/* The first column of the first row of @sql, as text. */
static char *
raw_query (sqlite3    *db,
           const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  char         *value = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  return value;
}

/* Every row of every table, as text: equal dumps mean nothing changed. */
static char *
raw_dump (const char *path)
{
  static const char *const tables[] = { "accounts", "enrollment_keys", "devices" };
  sqlite3                 *db = raw_open (path);
  GString                 *dump = g_string_new (NULL);

  for (size_t t = 0; t < G_N_ELEMENTS (tables); t++)
    {
      g_autofree char *sql = g_strdup_printf ("SELECT * FROM %s ORDER BY id", tables[t]);
      sqlite3_stmt    *stmt = NULL;

      g_string_append_printf (dump, "[%s]\n", tables[t]);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        {
          for (int c = 0; c < sqlite3_column_count (stmt); c++)
            {
              if (sqlite3_column_type (stmt, c) == SQLITE_BLOB)
                {
                  const uint8_t *blob = sqlite3_column_blob (stmt, c);
                  for (int i = 0; i < sqlite3_column_bytes (stmt, c); i++)
                    g_string_append_printf (dump, "%02x", blob[i]);
                }
              else
                g_string_append (dump, sqlite3_column_type (stmt, c) == SQLITE_NULL
                                         ? "NULL"
                                         : (const char *) sqlite3_column_text (stmt, c));
              g_string_append_c (dump, '|');
            }
          g_string_append_c (dump, '\n');
        }
      sqlite3_finalize (stmt);
    }
  sqlite3_close (db);
  return g_string_free (dump, FALSE);
}

static PmAccountRecord *
make_account (PmStore    *store,
              const char *name)
{
  g_autoptr (GError) error = NULL;
  PmAccountRecord *account = pm_store_create_account (store, name, NOW, &error);

  g_assert_no_error (error);
  g_assert_nonnull (account);
  return account;
}

static char *
make_key (PmStore    *store,
          const char *account_id,
          int64_t     ttl,
          gboolean    reusable)
{
  g_autoptr (GError) error = NULL;
  char *key = pm_store_create_enrollment_key (store, account_id, ttl, reusable, NOW, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (key);
  return key;
}

/* Enrolls with @key and @public_key and expects success. */
static PmDeviceRecord *
enroll (PmStore    *store,
        const char *key,
        const char *name,
        const char *public_key,
        char      **out_token)
{
  g_autoptr (GError) error = NULL;
  PmDeviceRecord *device =
    pm_store_enroll_device (store, key, name, "linux", public_key, "file", NOW, out_token, &error);

  g_assert_no_error (error);
  g_assert_nonnull (device);
  return device;
}

/* A distinct valid public key for each @n. */
static char *
pubkey (unsigned n)
{
  return g_strdup_printf ("%064x", n + 1);
}

/* ---------------------------------------------------------------------------
 * Opening, schema, file
 * ------------------------------------------------------------------------- */

static void
test_migrations (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStoreSqlite) again = NULL;
  g_autoptr (PmStoreSqlite) refused = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (PmAccountRecord) found = NULL;
  sqlite3 *db;

  g_assert_cmpint (pm_store_sqlite_get_schema_version (PM_STORE_SQLITE (f->store)), ==,
                   pm_store_sqlite_latest_schema_version ());
  if (!has_file (f))
    return;

  /* Re-opening migrates nothing and keeps the data. */
  account = make_account (f->store, "alice");
  g_clear_object (&f->store);
  again = pm_store_sqlite_open (f->path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (pm_store_sqlite_get_schema_version (again), ==,
                   pm_store_sqlite_latest_schema_version ());
  found = pm_store_find_account (PM_STORE (again), "alice", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (found->id, ==, account->id);
  g_clear_object (&again);

  /* A database from a newer server is refused, and left alone. */
  db = raw_open (f->path);
  g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 999", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  refused = pm_store_sqlite_open (f->path, &error);
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_IO);
  g_assert_null (refused);
  g_assert_nonnull (strstr (error->message, "newer"));
}

static void
test_file (Fixture      *f,
           gconstpointer data)
{
  g_autofree char *journal = NULL;
  g_autofree char *folder = NULL;
  GStatBuf         st;
  sqlite3         *db;

  if (!is_file_fixture (f))
    return;

  /* WAL is a property of the file: a fresh connection sees it. */
  db = raw_open (f->path);
  journal = raw_query (db, "PRAGMA journal_mode");
  g_assert_cmpstr (journal, ==, "wal");
  sqlite3_close (db);

  g_assert_cmpint (g_stat (f->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  folder = g_path_get_dirname (f->path);
  g_assert_cmpint (g_stat (folder, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
}

static void
test_file_permissions_tightened (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStoreSqlite) store = NULL;
  g_autofree char *dir = g_dir_make_tmp ("pm-test-store-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "server.db", NULL);
  GStatBuf         st;

  g_assert_no_error (error);
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  g_assert_cmpint (g_chmod (path, 0644), ==, 0);
  store = pm_store_sqlite_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_clear_object (&store);
  remove_tree (dir);
}

/* ---------------------------------------------------------------------------
 * Accounts
 * ------------------------------------------------------------------------- */

static void
test_accounts (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autoptr (PmAccountRecord) dup = NULL;
  g_autoptr (PmAccountRecord) by_name = NULL;
  g_autoptr (PmAccountRecord) by_id = NULL;
  g_autoptr (PmAccountRecord) missing = NULL;
  g_autoptr (PmAccountRecord) bad = NULL;

  g_assert_true (g_str_has_prefix (alice->id, "acc_"));
  g_assert_cmpuint (strlen (alice->id), ==, 4 + 32);
  g_assert_cmpstr (alice->name, ==, "alice");

  dup = pm_store_create_account (f->store, "alice", NOW, &error);
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT);
  g_assert_null (dup);
  g_clear_error (&error);

  by_name = pm_store_find_account (f->store, "alice", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_name->id, ==, alice->id);
  g_assert_cmpint (by_name->created_at, ==, NOW);
  by_id = pm_store_find_account (f->store, alice->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->name, ==, "alice");

  missing = pm_store_find_account (f->store, "bob", &error);
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_assert_null (missing);
  g_clear_error (&error);

  const char *const invalid_names[] = { "", " alice", "acc_123", "a\nb", "\xff" };
  for (size_t i = 0; i < G_N_ELEMENTS (invalid_names); i++)
    {
      bad = pm_store_create_account (f->store, invalid_names[i], NOW, &error);
      g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT);
      g_assert_null (bad);
      g_clear_error (&error);
    }

  /* An enrollment key for a missing account. */
  g_assert_null (pm_store_create_enrollment_key (f->store, "acc_missing", HOUR, FALSE, NOW,
                                                 NULL, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
}

/* ---------------------------------------------------------------------------
 * Enrollment
 * ------------------------------------------------------------------------- */

static void
test_enroll (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autofree char *key_id = NULL;
  g_autofree char *key = pm_store_create_enrollment_key (f->store, alice->id, HOUR, FALSE, NOW,
                                                         &key_id, &error);
  g_autofree char *token = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (PmDeviceRecord) by_token = NULL;
  g_autoptr (PmDeviceRecord) by_id = NULL;
  g_autofree char *upper = g_ascii_strup (PUBKEY, -1);

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (key, "pmek_"));
  g_assert_cmpuint (strlen (key), ==, 5 + 43);
  g_assert_true (g_str_has_prefix (key_id, "key_"));

  device = pm_store_enroll_device (f->store, key, "laptop", "linux", upper, "secret-service",
                                   NOW + 10, &token, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (device->id, "dev_"));
  g_assert_cmpstr (device->account_id, ==, alice->id);
  g_assert_cmpstr (device->public_key, ==, PUBKEY); /* normalised to lowercase */
  g_assert_true (g_str_has_prefix (token, "pmdt_"));
  g_assert_cmpuint (strlen (token), ==, 5 + 43);

  by_token = pm_store_find_device_by_token (f->store, token, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_token->id, ==, device->id);
  g_assert_cmpstr (by_token->name, ==, "laptop");
  g_assert_cmpstr (by_token->type, ==, "linux");
  g_assert_cmpstr (by_token->key_type, ==, "secret-service");
  g_assert_cmpint (by_token->created_at, ==, NOW + 10);
  g_assert_cmpint (by_token->last_seen, ==, 0);
  g_assert_false (by_token->revoked);
  g_assert_null (by_token->candidates);

  by_id = pm_store_get_device (f->store, device->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->public_key, ==, PUBKEY);

  g_assert_null (pm_store_find_device_by_token (f->store, "pmdt_nonsense", &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (pm_store_get_device (f->store, "dev_nonsense", &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
}

static void
expect_invalid_key (PmStore    *store,
                    const char *key,
                    int64_t     now)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *token = NULL;
  g_autofree char *public_key = pubkey (g_random_int ());
  g_autoptr (PmDeviceRecord) device =
    pm_store_enroll_device (store, key, "phone", "android", public_key, "file", now, &token,
                            &error);

  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_KEY);
  g_assert_null (device);
  g_assert_null (token);
}

static void
test_enroll_keys (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autofree char *single = make_key (f->store, alice->id, HOUR, FALSE);
  g_autofree char *reusable = make_key (f->store, alice->id, HOUR, TRUE);
  g_autofree char *expiring = make_key (f->store, alice->id, HOUR, FALSE);
  g_autofree char *forever = make_key (f->store, alice->id, 0, FALSE);
  g_autofree char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;
  g_autofree char *k1 = pubkey (1), *k2 = pubkey (2), *k3 = pubkey (3), *k4 = pubkey (4);
  g_autoptr (PmDeviceRecord) d1 = NULL;
  g_autoptr (PmDeviceRecord) d2 = NULL;
  g_autoptr (PmDeviceRecord) d3 = NULL;
  g_autoptr (PmDeviceRecord) d4 = NULL;
  PmStoreCounts counts;

  /* Unknown keys, and keys that are almost right. */
  expect_invalid_key (f->store, "pmek_unknown", NOW);
  expect_invalid_key (f->store, "", NOW);
  {
    g_autofree char *almost = g_strdup (single);
    almost[strlen (almost) - 1] ^= 1;
    expect_invalid_key (f->store, almost, NOW);
  }

  /* Expired: valid for [NOW, NOW + HOUR). */
  expect_invalid_key (f->store, expiring, NOW + HOUR);
  expect_invalid_key (f->store, expiring, NOW + 100 * HOUR);

  /* Single use. */
  d1 = enroll (f->store, single, "one", k1, &t1);
  expect_invalid_key (f->store, single, NOW);

  /* Reusable: twice, and more. */
  d2 = enroll (f->store, reusable, "two", k2, &t2);
  d3 = enroll (f->store, reusable, "three", k3, &t3);
  g_assert_cmpstr (t2, !=, t3);
  g_assert_cmpstr (d2->account_id, ==, d3->account_id);
  /* ... until it expires. */
  expect_invalid_key (f->store, reusable, NOW + HOUR);

  /* No expiry. */
  {
    g_autoptr (GError) error = NULL;
    d4 = pm_store_enroll_device (f->store, forever, "four", "watch", k4, "file",
                                 NOW + 1000 * HOUR, &t4, &error);
    g_assert_no_error (error);
  }

  g_assert_true (pm_store_get_counts (f->store, &counts, NULL));
  g_assert_cmpint (counts.accounts, ==, 1);
  g_assert_cmpint (counts.devices, ==, 4);
  g_assert_cmpint (counts.active_devices, ==, 4);
  g_assert_cmpint (counts.enrollment_keys, ==, 4);
}

static void
test_enroll_invalid (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autofree char *key = make_key (f->store, alice->id, HOUR, FALSE);
  struct {
    const char *name, *type, *public_key, *key_type;
  } cases[] = {
    { "", "linux", PUBKEY, "file" },
    { "x", "toaster", PUBKEY, "file" },
    { "x", "linux", "abcd", "file" },
    { "x", "linux", PUBKEY "00", "file" },
    { "x", "linux", "zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "file" },
    { "x", "linux", PUBKEY, "" },
    { "x", "linux", PUBKEY, "File Store" },
  };
  g_autofree char *token = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;

  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *t = NULL;
      g_autoptr (PmDeviceRecord) d =
        pm_store_enroll_device (f->store, key, cases[i].name, cases[i].type, cases[i].public_key,
                                cases[i].key_type, NOW, &t, &error);
      g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT);
      g_assert_null (d);
    }
  /* None of them used up the single-use key. */
  device = enroll (f->store, key, "laptop", PUBKEY, &token);
}

/* A failing enrollment changes nothing: the key that was already marked used
 * inside the transaction is unmarked by the rollback. */
static void
test_enroll_atomic (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autoptr (PmAccountRecord) bob = make_account (f->store, "bob");
  g_autofree char *key1 = make_key (f->store, alice->id, HOUR, FALSE);
  g_autofree char *key2 = make_key (f->store, bob->id, HOUR, FALSE);
  g_autofree char *t1 = NULL, *t2 = NULL, *t3 = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *other = pubkey (7);
  g_autoptr (PmDeviceRecord) d1 = enroll (f->store, key1, "laptop", PUBKEY, &t1);
  g_autoptr (PmDeviceRecord) d2 = NULL;
  g_autoptr (PmDeviceRecord) d3 = NULL;
  PmStoreCounts c_before, c_after;

  g_assert_cmpstr (d1->account_id, ==, alice->id);
  if (has_file (f))
    before = raw_dump (f->path);
  g_assert_true (pm_store_get_counts (f->store, &c_before, NULL));

  /* Same public key as an active device: CONFLICT, after the key was marked used. */
  d2 = pm_store_enroll_device (f->store, key2, "clone", "mac", PUBKEY, "file", NOW, &t2, &error);
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_CONFLICT);
  g_assert_null (d2);
  g_assert_null (t2);
  g_clear_error (&error);

  g_assert_true (pm_store_get_counts (f->store, &c_after, NULL));
  g_assert_cmpmem (&c_before, sizeof c_before, &c_after, sizeof c_after);
  if (before != NULL)
    {
      after = raw_dump (f->path);
      g_assert_cmpstr (before, ==, after);
    }

  /* The single-use key is still unused. */
  d3 = enroll (f->store, key2, "desktop", other, &t3);
  g_assert_cmpstr (d3->account_id, ==, bob->id);
}

/* ---------------------------------------------------------------------------
 * Devices
 * ------------------------------------------------------------------------- */

static void
test_revoke (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autoptr (PmAccountRecord) bob = make_account (f->store, "bob");
  g_autofree char *key = make_key (f->store, alice->id, HOUR, TRUE);
  g_autofree char *token = NULL;
  g_autofree char *token2 = NULL;
  g_autoptr (PmDeviceRecord) device = enroll (f->store, key, "laptop", PUBKEY, &token);
  g_autoptr (PmDeviceRecord) found = NULL;
  g_autoptr (PmDeviceRecord) revoked = NULL;
  g_autoptr (PmDeviceRecord) again = NULL;
  g_autoptr (GPtrArray) active = NULL;
  g_autoptr (GPtrArray) all = NULL;
  PmStoreCounts counts;

  found = pm_store_find_device_by_token (f->store, token, &error);
  g_assert_no_error (error);
  g_assert_true (pm_store_set_push_endpoint (f->store, device->id, "https://push.example/x", NULL));

  /* Another account cannot revoke it. */
  g_assert_false (pm_store_revoke_device (f->store, device->id, bob->id, NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (pm_store_revoke_device (f->store, device->id, alice->id, NOW + 5, &error));
  g_assert_no_error (error);

  /* The token stops working at once. */
  g_assert_null (pm_store_find_device_by_token (f->store, token, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The row stays, marked, with its secrets and endpoints erased. */
  revoked = pm_store_get_device (f->store, device->id, &error);
  g_assert_no_error (error);
  g_assert_true (revoked->revoked);
  g_assert_cmpint (revoked->revoked_at, ==, NOW + 5);
  g_assert_null (revoked->push_endpoint);

  active = pm_store_list_devices (f->store, alice->id, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (active->len, ==, 0);
  all = pm_store_list_devices (f->store, alice->id, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 1);

  /* Revoking twice, or changing a revoked device, is NOT_FOUND. */
  g_assert_false (pm_store_revoke_device (f->store, device->id, NULL, NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (pm_store_set_candidates (f->store, device->id, "[]", NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (pm_store_touch_device (f->store, device->id, NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (pm_store_revoke_device (f->store, "dev_unknown", NULL, NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The same key pair may enroll again, as a new device. */
  again = enroll (f->store, key, "laptop", PUBKEY, &token2);
  g_assert_cmpstr (again->id, !=, device->id);
  g_assert_true (pm_store_get_counts (f->store, &counts, NULL));
  g_assert_cmpint (counts.devices, ==, 2);
  g_assert_cmpint (counts.active_devices, ==, 1);
}

static void
test_list_isolation (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autoptr (PmAccountRecord) bob = make_account (f->store, "bob");
  g_autofree char *alice_key = make_key (f->store, alice->id, HOUR, TRUE);
  g_autofree char *bob_key = make_key (f->store, bob->id, HOUR, TRUE);
  g_autoptr (GPtrArray) alices = NULL;
  g_autoptr (GPtrArray) bobs = NULL;
  g_autoptr (GPtrArray) nobodys = NULL;

  for (unsigned i = 0; i < 3; i++)
    {
      g_autofree char *k = pubkey (i);
      g_autofree char *name = g_strdup_printf ("alice-%u", i);
      g_autofree char *t = NULL;
      g_autoptr (PmDeviceRecord) d = enroll (f->store, alice_key, name, k, &t);
      g_assert_cmpstr (d->account_id, ==, alice->id);
    }
  for (unsigned i = 10; i < 12; i++)
    {
      g_autofree char *k = pubkey (i);
      g_autofree char *name = g_strdup_printf ("bob-%u", i);
      g_autofree char *t = NULL;
      g_autoptr (PmDeviceRecord) d = enroll (f->store, bob_key, name, k, &t);
      g_assert_cmpstr (d->account_id, ==, bob->id);
    }

  alices = pm_store_list_devices (f->store, alice->id, FALSE, &error);
  g_assert_no_error (error);
  bobs = pm_store_list_devices (f->store, bob->id, FALSE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (alices->len, ==, 3);
  g_assert_cmpuint (bobs->len, ==, 2);
  for (unsigned i = 0; i < alices->len; i++)
    {
      PmDeviceRecord *d = g_ptr_array_index (alices, i);
      g_assert_cmpstr (d->account_id, ==, alice->id);
      g_assert_true (g_str_has_prefix (d->name, "alice-"));
    }
  for (unsigned i = 0; i < bobs->len; i++)
    {
      PmDeviceRecord *d = g_ptr_array_index (bobs, i);
      g_assert_cmpstr (d->account_id, ==, bob->id);
    }
  nobodys = pm_store_list_devices (f->store, "acc_nobody", TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (nobodys->len, ==, 0);
}

static void
test_candidates (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) alice = make_account (f->store, "alice");
  g_autofree char *key = make_key (f->store, alice->id, HOUR, FALSE);
  g_autofree char *token = NULL;
  g_autoptr (PmDeviceRecord) device = enroll (f->store, key, "laptop", PUBKEY, &token);
  const char      *candidates = "{\"lan\":[\"192.168.1.5:41641\"],\"stun\":\"203.0.113.9:41641\","
                                "\"varies\":false}";
  g_autofree char *huge = g_strnfill (20000, ' ');

  g_assert_true (pm_store_set_candidates (f->store, device->id, candidates, NOW + 60, &error));
  g_assert_no_error (error);
  {
    g_autoptr (PmDeviceRecord) d = pm_store_find_device_by_token (f->store, token, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (d->candidates, ==, candidates);
    g_assert_cmpint (d->last_seen, ==, NOW + 60);
  }

  g_assert_true (pm_store_touch_device (f->store, device->id, NOW + 120, &error));
  g_assert_true (pm_store_set_push_endpoint (f->store, device->id, "https://ntfy.example/up1",
                                             &error));
  g_assert_no_error (error);
  {
    g_autoptr (PmDeviceRecord) d = pm_store_get_device (f->store, device->id, &error);
    g_assert_cmpint (d->last_seen, ==, NOW + 120);
    g_assert_cmpstr (d->candidates, ==, candidates);
    g_assert_cmpstr (d->push_endpoint, ==, "https://ntfy.example/up1");
  }

  /* Clearing, and refusals. */
  g_assert_true (pm_store_set_candidates (f->store, device->id, NULL, NOW + 180, &error));
  g_assert_true (pm_store_set_push_endpoint (f->store, device->id, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr (PmDeviceRecord) d = pm_store_get_device (f->store, device->id, &error);
    g_assert_null (d->candidates);
    g_assert_null (d->push_endpoint);
  }
  g_assert_false (pm_store_set_candidates (f->store, device->id, huge, NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (pm_store_set_push_endpoint (f->store, device->id, "file:///etc/passwd", &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (pm_store_set_candidates (f->store, "dev_unknown", "[]", NOW, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
}

/* ---------------------------------------------------------------------------
 * Two objects on one file
 * ------------------------------------------------------------------------- */

#define WORKERS          2
#define ACCOUNTS_PER_RUN 25

typedef struct {
  const char *path;
  unsigned    worker;
} WorkerData;

static gpointer
worker_thread (gpointer user_data)
{
  WorkerData *w = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStoreSqlite) sqlite = pm_store_sqlite_open (w->path, &error);
  PmStore *store = PM_STORE (sqlite);

  g_assert_no_error (error);
  for (unsigned i = 0; i < ACCOUNTS_PER_RUN; i++)
    {
      g_autofree char *name = g_strdup_printf ("w%u-%u", w->worker, i);
      g_autoptr (PmAccountRecord) account = make_account (store, name);
      g_autofree char *key = make_key (store, account->id, HOUR, FALSE);
      g_autofree char *k = pubkey (w->worker * 1000 + i);
      g_autofree char *token = NULL;
      g_autoptr (PmDeviceRecord) device = enroll (store, key, name, k, &token);
      g_assert_cmpstr (device->account_id, ==, account->id);
    }
  return NULL;
}

static void
test_two_connections (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStoreSqlite) second = NULL;
  g_autoptr (PmAccountRecord) alice = NULL;
  g_autoptr (PmAccountRecord) seen = NULL;
  g_autofree char *key = NULL;
  g_autofree char *token = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (PmDeviceRecord) by_token = NULL;
  WorkerData    workers[WORKERS];
  GThread      *threads[WORKERS];
  PmStoreCounts counts;

  if (!is_file_fixture (f))
    return;

  second = pm_store_sqlite_open (f->path, &error);
  g_assert_no_error (error);

  /* Written through one object, read and used through the other. */
  alice = make_account (f->store, "alice");
  seen = pm_store_find_account (PM_STORE (second), "alice", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (seen->id, ==, alice->id);
  key = make_key (PM_STORE (second), alice->id, HOUR, FALSE);
  device = enroll (f->store, key, "laptop", PUBKEY, &token);
  by_token = pm_store_find_device_by_token (PM_STORE (second), token, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_token->id, ==, device->id);
  g_assert_true (pm_store_revoke_device (PM_STORE (second), device->id, NULL, NOW, &error));
  g_assert_null (pm_store_find_device_by_token (f->store, token, &error));
  g_assert_error (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Concurrent writers, each with its own connection. */
  for (unsigned i = 0; i < WORKERS; i++)
    {
      workers[i] = (WorkerData){ f->path, i };
      threads[i] = g_thread_new ("store-worker", worker_thread, &workers[i]);
    }
  for (unsigned i = 0; i < WORKERS; i++)
    g_thread_join (threads[i]);

  g_assert_true (pm_store_get_counts (f->store, &counts, &error));
  g_assert_no_error (error);
  g_assert_cmpint (counts.accounts, ==, 1 + WORKERS * ACCOUNTS_PER_RUN);
  g_assert_cmpint (counts.devices, ==, 1 + WORKERS * ACCOUNTS_PER_RUN);
  g_assert_cmpint (counts.active_devices, ==, WORKERS * ACCOUNTS_PER_RUN);
}

int
main (int   argc,
      char *argv[])
{
  static const char *const backends[] = { "file", "memory" };

  g_test_init (&argc, &argv, NULL);

  for (size_t i = 0; i < G_N_ELEMENTS (backends); i++)
    {
      const char *b = backends[i];
#define ADD(name, func)                                                     \
  do                                                                        \
    {                                                                       \
      g_autofree char *path = g_strdup_printf ("/store/%s/%s", b, name);    \
      g_test_add (path, Fixture, b, fixture_setup, func, fixture_teardown); \
    }                                                                       \
  while (0)
      ADD ("migrations", test_migrations);
      ADD ("file", test_file);
      ADD ("accounts", test_accounts);
      ADD ("enroll", test_enroll);
      ADD ("enroll-keys", test_enroll_keys);
      ADD ("enroll-invalid", test_enroll_invalid);
      ADD ("enroll-atomic", test_enroll_atomic);
      ADD ("revoke", test_revoke);
      ADD ("list-isolation", test_list_isolation);
      ADD ("candidates", test_candidates);
      ADD ("two-connections", test_two_connections);
#undef ADD
    }
  g_test_add_func ("/store/file/permissions-tightened", test_file_permissions_tightened);

  return g_test_run ();
}
