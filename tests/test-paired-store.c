/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The pieces of QR pairing that need no network:
 *  - PmPairedStore on a real SQLite file: nothing is created by reads, a
 *    record round-trips, the same key replaces, a taken name and a service
 *    listed twice are refused with every table unchanged (the second inside
 *    the transaction, after the device row was inserted: a real rollback),
 *    removal cascades, a newer schema is refused untouched, two objects on
 *    one file see each other's changes;
 *  - the HELLO and CONFIRM codecs: exact bytes, every refusal with its code,
 *    outputs untouched on refusal, writers refusing what the parsers would;
 *    the fuzz seeds are what their names say;
 *  - the pairing certificate: made once with the right modes, loaded again
 *    with the same key, its SPKI hash equal to OpenSSL's, refusals for a key
 *    open to others, a missing key and a key of another certificate.
 */
#define G_LOG_DOMAIN "pipermesh-test-paired-store"

#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "pm-pair-cert.h"
#include "pm-pair-payload.h"
#include "pm-paired-store.h"

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("pm-paired-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, PM_PAIRED_STORE_FILE, NULL);
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
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static PmPairedDevice *
make_device (const char *name,
             uint8_t     key_byte)
{
  PmPairedDevice *d = pm_paired_device_new ();

  d->name = g_strdup (name);
  d->device_type = g_strdup ("linux");
  memset (d->public_key, key_byte, PM_KEY_LEN);
  g_ptr_array_add (d->addresses, g_strdup ("192.0.2.7:41641"));
  g_ptr_array_add (d->addresses, g_strdup ("[2001:db8::7]:41641"));
  g_ptr_array_add (d->allowed_services, g_strdup ("ssh"));
  g_ptr_array_add (d->allowed_services, g_strdup ("data"));
  d->paired_at = 1700000000;
  return d;
}

/* Rows in each table, read with SQLite directly (not through the store). */
static char *
table_counts (const char *path)
{
  sqlite3    *db = NULL;
  GString    *out = g_string_new (NULL);
  const char *tables[] = { "paired_devices", "paired_addresses", "paired_services" };

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  for (size_t i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM %s", tables[i]);
      sqlite3_stmt    *stmt = NULL;

      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
      g_string_append_printf (out, "%s%d", i > 0 ? "/" : "", sqlite3_column_int (stmt, 0));
      sqlite3_finalize (stmt);
    }
  sqlite3_close (db);
  return g_string_free (out, FALSE);
}

static void
test_store_empty (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new_for_state_dir (f->dir);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (PmPairedDevice) found = NULL;
  uint8_t key[PM_KEY_LEN] = { 1 };

  g_assert_cmpstr (pm_paired_store_get_path (store), ==, f->path);
  list = pm_paired_store_list (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 0);
  found = pm_paired_store_lookup (store, "laptop", &error);
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND);
  g_assert_null (found);
  g_clear_error (&error);
  g_assert_true (pm_paired_store_check_new (store, "laptop", key, &error));
  g_assert_no_error (error);
  g_assert_false (pm_paired_store_remove (store, "laptop", &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND);
  /* Reading a store that does not exist writes nothing, not even the file. */
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

static void
test_store_round_trip (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new_for_state_dir (f->dir);
  g_autoptr (PmPairedStore) other = pm_paired_store_new (f->path);
  g_autoptr (PmPairedDevice) device = make_device ("laptop", 0x11);
  g_autoptr (PmPairedDevice) by_name = NULL, by_id = NULL, by_key = NULL;
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *counts = NULL;
  GStatBuf         st;

  g_assert_true (pm_paired_store_add (store, device, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (device->id, "pd_"));
  g_assert_cmpuint (strlen (device->id), ==, 3 + 32);
  g_assert_cmpint (g_stat (f->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  /* A second object on the same file sees it (another process would too). */
  by_name = pm_paired_store_lookup (other, "laptop", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_name->id, ==, device->id);
  g_assert_cmpstr (by_name->device_type, ==, "linux");
  g_assert_cmpmem (by_name->public_key, PM_KEY_LEN, device->public_key, PM_KEY_LEN);
  g_assert_cmpuint (by_name->addresses->len, ==, 2);
  g_assert_cmpstr (by_name->addresses->pdata[0], ==, "192.0.2.7:41641");
  g_assert_cmpstr (by_name->addresses->pdata[1], ==, "[2001:db8::7]:41641");
  g_assert_cmpuint (by_name->allowed_services->len, ==, 2);
  g_assert_true (pm_paired_device_allows (by_name, "ssh"));
  g_assert_true (pm_paired_device_allows (by_name, "data"));
  g_assert_false (pm_paired_device_allows (by_name, "web"));
  g_assert_cmpint (by_name->paired_at, ==, 1700000000);
  by_id = pm_paired_store_lookup (other, device->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_id->name, ==, "laptop");
  by_key = pm_paired_store_lookup_key (other, device->public_key, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (by_key->id, ==, device->id);
  list = pm_paired_store_list (other, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  counts = table_counts (f->path);
  g_assert_cmpstr (counts, ==, "1/2/2");
}

static void
test_store_replace_and_conflict (Fixture      *f,
                                 gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new (f->path);
  g_autoptr (PmPairedDevice) a = make_device ("laptop", 0x11);
  g_autoptr (PmPairedDevice) b = make_device ("laptop", 0x22);
  g_autoptr (PmPairedDevice) again = make_device ("laptop-2", 0x11);
  g_autoptr (PmPairedDevice) twice = make_device ("phone", 0x33);
  g_autoptr (PmPairedDevice) found = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *before = NULL, *after = NULL;
  g_autofree char *first_id = NULL;

  g_assert_true (pm_paired_store_add (store, a, &error));
  first_id = g_strdup (a->id);
  before = table_counts (f->path);

  /* Another key under a taken name: refused, nothing changes. */
  g_assert_false (pm_paired_store_check_new (store, "laptop", b->public_key, &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, "pipermesh unpair laptop"));
  g_clear_error (&error);
  g_assert_false (pm_paired_store_add (store, b, &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT);
  g_clear_error (&error);
  g_assert_null (b->id);
  after = table_counts (f->path);
  g_assert_cmpstr (after, ==, before);

  /* A service listed twice fails on the second service row, after the device
   * and its addresses went in: the transaction rolls all of it back. */
  g_ptr_array_add (twice->allowed_services, g_strdup ("ssh"));
  g_assert_false (pm_paired_store_add (store, twice, &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, "listed twice"));
  g_clear_error (&error);
  g_clear_pointer (&after, g_free);
  after = table_counts (f->path);
  g_assert_cmpstr (after, ==, before);
  found = pm_paired_store_lookup (store, "phone", &error);
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* The same key paired again: it replaces the record and keeps its id. */
  g_assert_true (pm_paired_store_check_new (store, "laptop", a->public_key, &error));
  g_ptr_array_set_size (again->addresses, 1);
  g_assert_true (pm_paired_store_add (store, again, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (again->id, ==, first_id);
  found = pm_paired_store_lookup (store, first_id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (found->name, ==, "laptop-2");
  g_clear_pointer (&after, g_free);
  after = table_counts (f->path);
  g_assert_cmpstr (after, ==, "1/1/2");
}

static void
test_store_remove_and_addresses (Fixture      *f,
                                 gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new (f->path);
  g_autoptr (PmPairedDevice) a = make_device ("laptop", 0x11);
  g_autoptr (PmPairedDevice) b = make_device ("phone", 0x22);
  g_autoptr (PmPairedDevice) found = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *counts = NULL;
  const char      *fresh[] = { "198.51.100.9:5000", NULL };
  const char      *bad[] = { "not an address", NULL };

  g_assert_true (pm_paired_store_add (store, a, &error));
  g_assert_true (pm_paired_store_add (store, b, &error));
  g_assert_true (pm_paired_store_set_addresses (store, a->id, fresh, &error));
  g_assert_no_error (error);
  found = pm_paired_store_lookup (store, "laptop", &error);
  g_assert_cmpuint (found->addresses->len, ==, 1);
  g_assert_cmpstr (found->addresses->pdata[0], ==, "198.51.100.9:5000");
  g_assert_false (pm_paired_store_set_addresses (store, a->id, bad, &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (pm_paired_store_set_addresses (store, "pd_nothere", fresh, &error));
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  counts = table_counts (f->path);
  g_assert_cmpstr (counts, ==, "2/3/4");
  g_assert_true (pm_paired_store_remove (store, "laptop", &error));
  g_assert_no_error (error);
  g_clear_pointer (&counts, g_free);
  counts = table_counts (f->path);
  g_assert_cmpstr (counts, ==, "1/2/2"); /* its addresses and services went with it */
  g_assert_true (pm_paired_store_remove (store, b->id, &error));
  g_clear_pointer (&counts, g_free);
  counts = table_counts (f->path);
  g_assert_cmpstr (counts, ==, "0/0/0");
}

static void
test_store_invalid (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new (f->path);
  g_autoptr (GError) error = NULL;
  struct {
    const char *name;
    const char *type;
    const char *address;
    const char *service;
  } cases[] = {
    { "", "linux", "192.0.2.1:1", "ssh" },
    { "tab\there", "linux", "192.0.2.1:1", "ssh" },
    { " space", "linux", "192.0.2.1:1", "ssh" },
    { "ok", "toaster", "192.0.2.1:1", "ssh" },
    { "ok", "linux", "192.0.2.1", "ssh" },
    { "ok", "linux", "192.0.2.1:0", "ssh" },
    { "ok", "linux", "192.0.2.1:1", "a=b" },
    { "ok", "linux", "192.0.2.1:1", "" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (PmPairedDevice) d = pm_paired_device_new ();

      d->name = g_strdup (cases[i].name);
      d->device_type = g_strdup (cases[i].type);
      g_ptr_array_add (d->addresses, g_strdup (cases[i].address));
      g_ptr_array_add (d->allowed_services, g_strdup (cases[i].service));
      g_assert_false (pm_paired_store_add (store, d, &error));
      g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_INVALID);
      g_clear_error (&error);
    }
  /* Refused before the database: the file was never made. */
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

static void
test_store_newer_schema (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new (f->path);
  g_autoptr (PmPairedStore) again = NULL;
  g_autoptr (PmPairedDevice) a = make_device ("laptop", 0x11);
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GError) error = NULL;
  sqlite3 *db = NULL;

  g_assert_true (pm_paired_store_add (store, a, &error));
  g_clear_object (&store);
  g_assert_cmpint (sqlite3_open (f->path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                   ==, SQLITE_OK);
  sqlite3_close (db);

  again = pm_paired_store_new (f->path);
  list = pm_paired_store_list (again, &error);
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "newer"));
  g_assert_null (list);
  g_clear_error (&error);

  g_assert_cmpint (sqlite3_open (f->path, &db), ==, SQLITE_OK);
  {
    sqlite3_stmt *stmt = NULL;
    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT version FROM schema_version", -1, &stmt, NULL),
                     ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 99);
    sqlite3_finalize (stmt);
  }
  sqlite3_close (db);
}

static void
test_store_not_a_database (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new (f->path);
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_true (
    g_file_set_contents (f->path, "this is not SQLite, just text that is long enough", -1, NULL));
  list = pm_paired_store_list (store, &error);
  g_assert_null (list);
  g_assert_error (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CORRUPT);
}

/* --- HELLO and CONFIRM ----------------------------------------------------------- */

static void
test_hello_layout (void)
{
  static const uint8_t expected[] = { 0x01, 0x02, 0xa2, 0xa9, 0x06, 'l', 'a', 'p', 't', 'o', 'p' };
  g_autoptr (GError) error = NULL;
  PmPairHello hello, back;
  uint8_t     out[PM_PAIR_HELLO_MAX_LEN];
  uint8_t     small[sizeof expected - 1];
  size_t      n;

  g_assert_true (pm_pair_hello_init (&hello, "laptop", "mac", 41641, &error));
  n = pm_pair_hello_write (&hello, out, sizeof out);
  g_assert_cmpmem (out, n, expected, sizeof expected);
  memset (small, 0x5a, sizeof small);
  g_assert_cmpuint (pm_pair_hello_write (&hello, small, sizeof small), ==, 0);
  for (size_t i = 0; i < sizeof small; i++)
    g_assert_cmpuint (small[i], ==, 0x5a);

  g_assert_true (pm_pair_hello_parse (expected, sizeof expected, &back, &error));
  g_assert_cmpstr (back.name, ==, "laptop");
  g_assert_cmpstr (back.device_type, ==, "mac");
  g_assert_cmpuint (back.mesh_port, ==, 41641);

  /* Every type; the longest name; a multi-byte name. */
  {
    const char      *types[] = { "linux", "mac", "windows", "android", "iphone", "ipad", "watch" };
    g_autofree char *longest = g_strnfill (PM_PAIR_NAME_MAX, 'n');

    for (size_t i = 0; i < G_N_ELEMENTS (types); i++)
      {
        g_assert_true (pm_pair_hello_init (&hello, longest, types[i], 0, &error));
        n = pm_pair_hello_write (&hello, out, sizeof out);
        g_assert_cmpuint (n, ==, PM_PAIR_HELLO_MAX_LEN);
        g_assert_cmpuint (out[1], ==, i + 1);
        g_assert_true (pm_pair_hello_parse (out, n, &back, &error));
        g_assert_cmpstr (back.device_type, ==, types[i]);
        g_assert_cmpstr (back.name, ==, longest);
      }
    g_assert_true (pm_pair_hello_init (&hello, "Küche ☕", "linux", 65535, &error));
    n = pm_pair_hello_write (&hello, out, sizeof out);
    g_assert_true (pm_pair_hello_parse (out, n, &back, &error));
    g_assert_cmpstr (back.name, ==, "Küche ☕");
    g_assert_cmpuint (back.mesh_port, ==, 65535);
  }

  /* The writer's input checks. */
  g_assert_false (pm_pair_hello_init (&hello, "", "linux", 1, &error));
  g_assert_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_NAME);
  g_clear_error (&error);
  g_assert_false (pm_pair_hello_init (&hello, "ok", "toaster", 1, &error));
  g_assert_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_TYPE);
  g_clear_error (&error);
}

static void
assert_hello_refused (const uint8_t *data,
                      size_t         len,
                      int            code)
{
  g_autoptr (GError) error = NULL;
  PmPairHello out, untouched;

  memset (&out, 0xa5, sizeof out);
  memcpy (&untouched, &out, sizeof out);
  g_assert_false (pm_pair_hello_parse (data, len, &out, &error));
  g_assert_error (error, PM_PAIR_PAYLOAD_ERROR, code);
  g_assert_true (memcmp (&out, &untouched, sizeof out) == 0);
}

static void
test_hello_refusals (void)
{
  uint8_t m[PM_PAIR_HELLO_MAX_LEN + 2] = { 0x01, 0x01, 0xa2, 0xa9, 0x06, 'l',
                                           'a', 'p', 't', 'o', 'p' };

  for (size_t len = 0; len < PM_PAIR_HELLO_MIN_LEN; len++)
    assert_hello_refused (m, len, PM_PAIR_PAYLOAD_ERROR_TRUNCATED);
  assert_hello_refused (m, 10, PM_PAIR_PAYLOAD_ERROR_TRUNCATED);
  assert_hello_refused (m, 12, PM_PAIR_PAYLOAD_ERROR_TRAILING);
  m[0] = 2;
  assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_VERSION);
  m[0] = 1, m[1] = 0;
  assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_BAD_TYPE);
  m[1] = 8;
  assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_BAD_TYPE);
  m[1] = 1, m[4] = 0;
  assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_BAD_NAME);
  m[4] = 65;
  assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_BAD_NAME);
  m[4] = 6;
  {
    const char *bad[] = { "lap\ntp", "lap\x7ftp", "lap\xc2\x85p", "lap\xc3tp",
                          " aptop", "lapto ", "la\0top" };

    for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        memcpy (m + 5, bad[i], 6);
        assert_hello_refused (m, 11, PM_PAIR_PAYLOAD_ERROR_BAD_NAME);
      }
  }
}

static void
test_confirm (void)
{
  g_autoptr (GError) error = NULL;
  PmPairConfirm    c, untouched;
  uint8_t          out[PM_PAIR_CONFIRM_MAX_LEN + 4];
  g_autofree char *reason256 = g_strnfill (PM_PAIR_REASON_MAX, 'r');
  g_autofree char *reason257 = g_strnfill (PM_PAIR_REASON_MAX + 1, 'r');
  size_t           n;

  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_ACCEPT, NULL, out, sizeof out), ==, 1);
  g_assert_cmpuint (out[0], ==, 0x01);
  g_assert_true (pm_pair_confirm_parse (out, 1, &c, &error));
  g_assert_cmpint (c.kind, ==, PM_PAIR_CONFIRM_ACCEPT);
  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_STORED, NULL, out, sizeof out), ==, 1);
  g_assert_cmpuint (out[0], ==, 0x03);
  n = pm_pair_confirm_write (PM_PAIR_CONFIRM_REJECT, "no", out, sizeof out);
  g_assert_cmpmem (out, n, "\x02no", 3);
  g_assert_true (pm_pair_confirm_parse (out, n, &c, &error));
  g_assert_cmpint (c.kind, ==, PM_PAIR_CONFIRM_REJECT);
  g_assert_cmpstr (c.reason, ==, "no");
  n = pm_pair_confirm_write (PM_PAIR_CONFIRM_REJECT, reason256, out, sizeof out);
  g_assert_cmpuint (n, ==, PM_PAIR_CONFIRM_MAX_LEN);
  g_assert_true (pm_pair_confirm_parse (out, n, &c, &error));
  g_assert_cmpstr (c.reason, ==, reason256);

  /* The writers refuse what the parser would. */
  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_REJECT, reason257, out, sizeof out), ==,
                    0);
  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_REJECT, "a\nb", out, sizeof out), ==, 0);
  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_ACCEPT, "why", out, sizeof out), ==, 0);
  g_assert_cmpuint (pm_pair_confirm_write (PM_PAIR_CONFIRM_REJECT, "no", out, 2), ==, 0);
  g_assert_cmpuint (pm_pair_confirm_write ((PmPairConfirmKind) 9, NULL, out, sizeof out), ==, 0);

  /* Refusals, output untouched. */
  {
    struct {
      const char *bytes;
      size_t      len;
      int         code;
    } bad[] = {
      { "", 0, PM_PAIR_PAYLOAD_ERROR_TRUNCATED },
      { "\x00", 1, PM_PAIR_PAYLOAD_ERROR_UNKNOWN_KIND },
      { "\x04", 1, PM_PAIR_PAYLOAD_ERROR_UNKNOWN_KIND },
      { "\x01x", 2, PM_PAIR_PAYLOAD_ERROR_TRAILING },
      { "\x03\x00", 2, PM_PAIR_PAYLOAD_ERROR_TRAILING },
      { "\x02no\nway", 7, PM_PAIR_PAYLOAD_ERROR_BAD_REASON },
      { "\x02\xff", 2, PM_PAIR_PAYLOAD_ERROR_BAD_REASON },
    };

    for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        memset (&c, 0xa5, sizeof c);
        memcpy (&untouched, &c, sizeof c);
        g_assert_false (
          pm_pair_confirm_parse ((const uint8_t *) bad[i].bytes, bad[i].len, &c, &error));
        g_assert_error (error, PM_PAIR_PAYLOAD_ERROR, bad[i].code);
        g_clear_error (&error);
        g_assert_true (memcmp (&c, &untouched, sizeof c) == 0);
      }
    out[0] = 0x02;
    memset (out + 1, 'r', PM_PAIR_REASON_MAX + 1);
    g_assert_false (pm_pair_confirm_parse (out, PM_PAIR_REASON_MAX + 2, &c, &error));
    g_assert_error (error, PM_PAIR_PAYLOAD_ERROR, PM_PAIR_PAYLOAD_ERROR_BAD_REASON);
  }
}

/* tests/fuzz/corpus/pair-payload: the first byte picks the codec (even:
 * HELLO, odd: CONFIRM); ok-* parse and write back, bad-* are refused. */
static void
test_fuzz_seeds (void)
{
  g_autofree char *path =
    g_test_build_filename (G_TEST_DIST, "fuzz", "corpus", "pair-payload", NULL);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  unsigned    ok = 0, bad = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (path, name, NULL);
      g_autofree char *data = NULL;
      g_autoptr (GError) error = NULL;
      gsize    len = 0;
      gboolean parsed;
      uint8_t  out[PM_PAIR_CONFIRM_MAX_LEN + 1];
      size_t   n = 0;

      g_assert_true (g_file_get_contents (file, &data, &len, NULL));
      g_assert_cmpuint (len, >=, 1);
      if ((data[0] & 1) == 0)
        {
          PmPairHello h;
          parsed = pm_pair_hello_parse ((const uint8_t *) data + 1, len - 1, &h, &error);
          if (parsed)
            n = pm_pair_hello_write (&h, out, sizeof out);
        }
      else
        {
          PmPairConfirm c;
          parsed = pm_pair_confirm_parse ((const uint8_t *) data + 1, len - 1, &c, &error);
          if (parsed)
            n = pm_pair_confirm_write (c.kind, c.kind == PM_PAIR_CONFIRM_REJECT ? c.reason : NULL,
                                       out, sizeof out);
        }
      if (g_str_has_prefix (name, "ok-"))
        {
          g_assert_no_error (error);
          g_assert_true (parsed);
          g_assert_cmpmem (out, n, data + 1, len - 1);
          ok++;
        }
      else
        {
          g_assert_true (g_str_has_prefix (name, "bad-"));
          g_assert_false (parsed);
          g_assert_nonnull (error);
          bad++;
        }
    }
  g_assert_cmpuint (ok, >=, 10);
  g_assert_cmpuint (bad, >=, 20);
}

/* --- the certificate ------------------------------------------------------------- */

/* SHA-256 of the certificate's SubjectPublicKeyInfo, computed with OpenSSL
 * (not GnuTLS, which the code under test uses). */
static void
openssl_spki_sha256 (GTlsCertificate *certificate,
                     uint8_t          out[32])
{
  g_autoptr (GByteArray) der = NULL;
  const unsigned char *p;
  unsigned char       *spki = NULL;
  X509                *x509;
  int                  len;

  g_object_get (certificate, "certificate", &der, NULL);
  p = der->data;
  x509 = d2i_X509 (NULL, &p, der->len);
  g_assert_nonnull (x509);
  len = i2d_X509_PUBKEY (X509_get_X509_PUBKEY (x509), &spki);
  g_assert_cmpint (len, >, 0);
  g_assert_nonnull (SHA256 (spki, (size_t) len, out));
  OPENSSL_free (spki);
  X509_free (x509);
}

static void
test_cert (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (GTlsCertificate) first = NULL, second = NULL, refused = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *state = g_build_filename (f->dir, "state", NULL);
  g_autofree char *cert = g_build_filename (state, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (state, "key.pem", NULL);
  g_autofree char *text = NULL;
  uint8_t          a[32], b[32], ossl[32];
  gboolean         created = FALSE;
  GStatBuf         st;

  first = pm_pair_cert_load_or_create (state, &created, &error);
  g_assert_no_error (error);
  g_assert_true (created);
  g_assert_cmpint (g_stat (state, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_assert_cmpint (g_stat (cert, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0644);
  g_assert_cmpint (g_stat (key, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (g_file_get_contents (key, &text, NULL, NULL));
  g_assert_true (g_str_has_prefix (text, "-----BEGIN PRIVATE KEY-----"));

  g_assert_true (pm_pair_cert_get_spki_sha256 (first, a, &error));
  openssl_spki_sha256 (first, ossl);
  g_assert_cmpmem (a, 32, ossl, 32);
  {
    g_autoptr (GDateTime) not_after = NULL;
    g_object_get (first, "not-valid-after", &not_after, NULL);
    g_assert_nonnull (not_after);
    g_assert_cmpint (g_date_time_get_year (not_after), ==, 9999);
  }

  /* Made once: the second call loads the same key. */
  second = pm_pair_cert_load_or_create (state, &created, &error);
  g_assert_no_error (error);
  g_assert_false (created);
  g_assert_true (pm_pair_cert_get_spki_sha256 (second, b, &error));
  g_assert_cmpmem (a, 32, b, 32);

  /* A key others may read: refused, not replaced. */
  g_assert_cmpint (g_chmod (key, 0644), ==, 0);
  refused = pm_pair_cert_load_or_create (state, NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_INSECURE);
  g_clear_error (&error);
  g_assert_cmpint (g_chmod (key, 0600), ==, 0);

  /* Another certificate's key: refused. */
  {
    g_autofree char *other_state = g_build_filename (f->dir, "other", NULL);
    g_autofree char *other_key = g_build_filename (other_state, "key.pem", NULL);
    g_autoptr (GTlsCertificate) other = pm_pair_cert_load_or_create (other_state, NULL, &error);
    g_autofree char *other_text = NULL;
    g_autofree char *mine = NULL;

    g_assert_no_error (error);
    g_assert_nonnull (other);
    g_assert_true (g_file_get_contents (key, &mine, NULL, NULL));
    g_assert_true (g_file_get_contents (other_key, &other_text, NULL, NULL));
    g_assert_true (
      g_file_set_contents_full (key, other_text, -1, G_FILE_SET_CONTENTS_NONE, 0600, NULL));
    refused = pm_pair_cert_load_or_create (state, NULL, &error);
    g_assert_null (refused);
    g_assert_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT);
    g_clear_error (&error);
    g_assert_true (g_file_set_contents_full (key, mine, -1, G_FILE_SET_CONTENTS_NONE, 0600, NULL));
  }

  /* A certificate without its key: refused (never silently replaced). */
  g_assert_cmpint (g_unlink (key), ==, 0);
  refused = pm_pair_cert_load_or_create (state, NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/paired-store/empty", Fixture, NULL, fixture_set_up, test_store_empty,
              fixture_tear_down);
  g_test_add ("/paired-store/round-trip", Fixture, NULL, fixture_set_up, test_store_round_trip,
              fixture_tear_down);
  g_test_add ("/paired-store/replace-and-conflict", Fixture, NULL, fixture_set_up,
              test_store_replace_and_conflict, fixture_tear_down);
  g_test_add ("/paired-store/remove-and-addresses", Fixture, NULL, fixture_set_up,
              test_store_remove_and_addresses, fixture_tear_down);
  g_test_add ("/paired-store/invalid", Fixture, NULL, fixture_set_up, test_store_invalid,
              fixture_tear_down);
  g_test_add ("/paired-store/newer-schema", Fixture, NULL, fixture_set_up, test_store_newer_schema,
              fixture_tear_down);
  g_test_add ("/paired-store/not-a-database", Fixture, NULL, fixture_set_up,
              test_store_not_a_database, fixture_tear_down);
  g_test_add_func ("/pair-payload/hello-layout", test_hello_layout);
  g_test_add_func ("/pair-payload/hello-refusals", test_hello_refusals);
  g_test_add_func ("/pair-payload/confirm", test_confirm);
  g_test_add_func ("/pair-payload/fuzz-seeds", test_fuzz_seeds);
  g_test_add ("/pair-cert/create-load-refuse", Fixture, NULL, fixture_set_up, test_cert,
              fixture_tear_down);
  return g_test_run ();
}
