/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmIdentity: both key stores.
 *
 * The file store cases always run. The Secret Service cases need a session bus
 * with an unlocked keyring and run only under tests/run-with-keyring.sh, which
 * starts a throwaway gnome-keyring (PM_TEST_KEYRING=1); otherwise they skip
 * with the reason the script gave (PM_TEST_KEYRING_SKIP), so that a developer's
 * real keyring is never touched. The "no Secret Service" case runs in a
 * subprocess whose session bus address points at nothing.
 */
#define G_LOG_DOMAIN "pipermesh-test-identity"

#include <errno.h>
#include <glib/gstdio.h>
#include <libsecret/secret.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#include "pm-identity.h"

/* The schema as PmIdentity stores it, written out independently so the test
 * checks the on-keyring format. */
static const SecretSchema test_schema = {
  "org.pipermesh.Identity",
  SECRET_SCHEMA_NONE,
  {
    { "public-key", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "state-dir", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { NULL, 0 },
  },
};

typedef struct {
  char *tmp;       /* removed at teardown */
  char *state_dir; /* tmp/state, not created by the fixture */
  char *ini_path;
  char *key_path;
} Fixture;

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
          remove_tree (child);
        else
          g_unlink (child);
      }
  g_rmdir (path);
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->tmp = g_dir_make_tmp ("pm-identity-XXXXXX", &error);
  g_assert_no_error (error);
  f->state_dir = g_build_filename (f->tmp, "state", NULL);
  f->ini_path = g_build_filename (f->state_dir, "identity.ini", NULL);
  f->key_path = g_build_filename (f->state_dir, "identity.key", NULL);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  remove_tree (f->tmp);
  g_free (f->tmp);
  g_free (f->state_dir);
  g_free (f->ini_path);
  g_free (f->key_path);
}

static GBytes *
read_bytes (const char *path)
{
  g_autoptr (GError) error = NULL;
  char  *contents = NULL;
  size_t len = 0;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (contents, len);
}

static void
write_file (const char *path,
            const char *contents,
            gssize      len)
{
  g_autoptr (GError) error = NULL;

  /* CONSISTENT: with NONE, GLib 2.74 writes over an existing file without
   * truncating it. */
  g_file_set_contents_full (path, contents, len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error);
  g_assert_no_error (error);
}

static unsigned
file_mode (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 07777;
}

static char *
ini_get (const char *ini_path,
         const char *key)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;

  g_key_file_load_from_file (kf, ini_path, G_KEY_FILE_NONE, &error);
  g_assert_no_error (error);
  return g_key_file_get_string (kf, "Identity", key, NULL);
}

static gboolean
memmem_found (GBytes     *haystack,
              const void *needle,
              size_t      len)
{
  size_t         hlen;
  const uint8_t *h = g_bytes_get_data (haystack, &hlen);

  for (size_t i = 0; len <= hlen && i <= hlen - len; i++)
    if (memcmp (h + i, needle, len) == 0)
      return TRUE;
  return FALSE;
}

/* Fails if any file under @dir holds the private key: raw, as hex (either
 * case), or as base64. */
static void
assert_no_private_key_in (const char   *dir,
                          const uint8_t priv[PM_KEY_LEN])
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *hex = pm_key_to_hex (priv);
  g_autofree char *hex_upper = g_ascii_strup (hex, -1);
  g_autofree char *b64 = g_base64_encode (priv, PM_KEY_LEN);
  const char      *name;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autoptr (GBytes) bytes = NULL;

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          assert_no_private_key_in (path, priv);
          continue;
        }
      bytes = read_bytes (path);
      g_assert_false (memmem_found (bytes, priv, PM_KEY_LEN));
      g_assert_false (memmem_found (bytes, hex, strlen (hex)));
      g_assert_false (memmem_found (bytes, hex_upper, strlen (hex_upper)));
      g_assert_false (memmem_found (bytes, b64, strlen (b64)));
    }
}

static void
assert_keypair_consistent (PmIdentity *id)
{
  g_auto (PmKeypair) kp = { 0 };
  g_auto (PmKeypair) derived = { 0 };
  g_autofree char *hex = NULL;
  g_autofree char *fp = NULL;

  pm_identity_get_keypair (id, &kp);
  pm_keypair_from_private (&derived, kp.priv);
  g_assert_cmpmem (derived.pub, PM_KEY_LEN, kp.pub, PM_KEY_LEN);
  g_assert_cmpmem (pm_identity_get_public_key (id), PM_KEY_LEN, kp.pub, PM_KEY_LEN);
  hex = pm_key_to_hex (kp.pub);
  g_assert_cmpstr (pm_identity_get_public_key_hex (id), ==, hex);
  fp = pm_key_fingerprint (kp.pub);
  g_assert_cmpstr (pm_identity_get_fingerprint (id), ==, fp);
}

static void
assert_same_identity (PmIdentity *a,
                      PmIdentity *b)
{
  g_auto (PmKeypair) ka = { 0 };
  g_auto (PmKeypair) kb = { 0 };

  pm_identity_get_keypair (a, &ka);
  pm_identity_get_keypair (b, &kb);
  g_assert_cmpmem (ka.pub, PM_KEY_LEN, kb.pub, PM_KEY_LEN);
  g_assert_true (sodium_memcmp (ka.priv, kb.priv, PM_KEY_LEN) == 0);
}

/* Creates an identity in the file store and returns it. */
static PmIdentity *
create_file_identity (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  PmIdentity *id;

  id = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_FILE, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

/* Loading must fail with @code and leave identity.ini and identity.key (if
 * any) exactly as they were. */
static void
assert_load_fails (Fixture *f,
                   int      code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) ini_before = NULL;
  g_autoptr (GBytes) key_before = NULL;
  g_autoptr (PmIdentity) id = NULL;
  gboolean had_ini = g_file_test (f->ini_path, G_FILE_TEST_EXISTS);
  gboolean had_key = g_file_test (f->key_path, G_FILE_TEST_EXISTS);

  if (had_ini)
    ini_before = read_bytes (f->ini_path);
  if (had_key)
    key_before = read_bytes (f->key_path);

  id = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_AUTO, NULL, &error);
  g_assert_error (error, PM_IDENTITY_ERROR, code);
  g_assert_null (id);
  g_test_message ("refused as expected: %s", error->message);

  g_assert_cmpint (g_file_test (f->ini_path, G_FILE_TEST_EXISTS), ==, had_ini);
  g_assert_cmpint (g_file_test (f->key_path, G_FILE_TEST_EXISTS), ==, had_key);
  if (had_ini)
    {
      g_autoptr (GBytes) ini_after = read_bytes (f->ini_path);
      g_assert_true (g_bytes_equal (ini_before, ini_after));
    }
  if (had_key)
    {
      g_autoptr (GBytes) key_after = read_bytes (f->key_path);
      g_assert_true (g_bytes_equal (key_before, key_after));
    }
}

/* ---------------------------------------------------------------------------
 * File store
 * ------------------------------------------------------------------------- */

static void
test_file_create_reload (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) first = NULL;
  g_autoptr (PmIdentity) second = NULL;
  g_autofree char *key_type = NULL;
  g_autofree char *pub = NULL;
  g_autoptr (GBytes) key_bytes = NULL;
  g_auto (PmKeypair) kp = { 0 };
  g_autofree char *priv_hex = NULL;

  first = create_file_identity (f);
  g_assert_true (pm_identity_get_was_created (first));
  g_assert_cmpint (pm_identity_get_key_store (first), ==, PM_KEY_STORE_FILE);
  g_assert_cmpstr (pm_identity_get_key_store_string (first), ==, "file");
  g_assert_cmpstr (pm_identity_get_state_dir (first), ==, f->state_dir);
  g_assert_nonnull (pm_identity_get_created (first));
  assert_keypair_consistent (first);

  /* Permissions: the key is the owner's alone, and so is the directory. */
  g_assert_cmphex (file_mode (f->key_path), ==, 0600);
  g_assert_cmphex (file_mode (f->state_dir), ==, 0700);
  g_assert_cmphex (file_mode (f->ini_path), ==, 0600);

  /* The record names the store and the public key, and nothing secret. */
  key_type = ini_get (f->ini_path, "keyType");
  g_assert_cmpstr (key_type, ==, "file");
  pub = ini_get (f->ini_path, "publicKey");
  g_assert_cmpstr (pub, ==, pm_identity_get_public_key_hex (first));
  pm_identity_get_keypair (first, &kp);
  {
    g_autoptr (GBytes) ini = read_bytes (f->ini_path);
    priv_hex = pm_key_to_hex (kp.priv);
    g_assert_false (memmem_found (ini, priv_hex, strlen (priv_hex)));
  }
  key_bytes = read_bytes (f->key_path);
  g_assert_cmpuint (g_bytes_get_size (key_bytes), ==, 65);
  g_assert_true (memmem_found (key_bytes, priv_hex, strlen (priv_hex)));

  /* No temporary files left behind. */
  {
    g_autoptr (GDir) d = g_dir_open (f->state_dir, 0, NULL);
    const char *name;
    unsigned    n = 0;

    while ((name = g_dir_read_name (d)) != NULL)
      {
        g_assert_true (g_str_equal (name, "identity.ini") || g_str_equal (name, "identity.key"));
        n++;
      }
    g_assert_cmpuint (n, ==, 2);
  }

  /* Reloading gives the same key, whatever store is preferred now. */
  second = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_AUTO, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (pm_identity_get_was_created (second));
  g_assert_cmpint (pm_identity_get_key_store (second), ==, PM_KEY_STORE_FILE);
  g_assert_cmpstr (pm_identity_get_device_name (second), ==, pm_identity_get_device_name (first));
  g_assert_true (g_date_time_equal (pm_identity_get_created (first),
                                    pm_identity_get_created (second)));
  assert_same_identity (first, second);
  g_assert_cmphex (file_mode (f->key_path), ==, 0600);
}

static void
test_file_umask (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (PmIdentity) id = NULL;
  mode_t old;

  /* A permissive umask must not widen anything; a strict one must not make
   * the key unreadable to its owner. */
  old = umask (0);
  id = create_file_identity (f);
  umask (old);
  g_assert_cmphex (file_mode (f->key_path), ==, 0600);
  g_assert_cmphex (file_mode (f->state_dir), ==, 0700);
  g_assert_cmphex (file_mode (f->ini_path), ==, 0600);
  g_clear_object (&id);

  remove_tree (f->state_dir);
  old = umask (0277);
  id = create_file_identity (f);
  umask (old);
  g_assert_cmphex (file_mode (f->key_path), ==, 0600);
}

static void
test_file_corrupt_key (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (PmIdentity) id = create_file_identity (f);
  g_autoptr (GBytes) good = read_bytes (f->key_path);
  g_autofree char *big = g_strnfill (4096, 'a');
  const char      *good_hex = g_bytes_get_data (good, NULL);
  g_autofree char *truncated = g_strndup (good_hex, 40);
  g_autofree char *bad_digit = g_strndup (good_hex, 64);
  g_autofree char *trailing = g_strdup_printf ("%.64s\nextra\n", good_hex);

  bad_digit[10] = 'g';

  write_file (f->key_path, truncated, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->key_path, "", 0);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->key_path, bad_digit, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->key_path, trailing, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->key_path, big, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  /* Binary: the raw 32 bytes are not our format either. */
  {
    g_auto (PmKeypair) kp = { 0 };
    pm_identity_get_keypair (id, &kp);
    write_file (f->key_path, (const char *) kp.priv, PM_KEY_LEN);
    assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);
  }

  /* Upper-case hex without the newline is accepted. */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (PmIdentity) again = NULL;
    g_autofree char *upper = g_ascii_strup (good_hex, 64);

    write_file (f->key_path, upper, -1);
    again = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_FILE, NULL, &error);
    g_assert_no_error (error);
    assert_same_identity (id, again);
  }
}

static void
test_file_corrupt_ini (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (PmIdentity) id = create_file_identity (f);
  g_autoptr (GBytes) good = read_bytes (f->ini_path);
  g_autofree char *good_text = g_strndup (g_bytes_get_data (good, NULL), g_bytes_get_size (good));
  g_autofree char *big = g_strnfill (64 * 1024, '#');
  g_autofree char *pub = g_strdup (pm_identity_get_public_key_hex (id));
  g_autofree char *bad_type = NULL;
  g_autofree char *short_pub = NULL;
  g_autofree char *no_type = NULL;
  g_autofree char *newer = NULL;

  write_file (f->ini_path, "this is not a key file\n\x01\x02", -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->ini_path, "", 0);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  write_file (f->ini_path, big, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  bad_type = g_strdup_printf ("[Identity]\nversion=1\npublicKey=%s\nkeyType=floppy\n", pub);
  write_file (f->ini_path, bad_type, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  no_type = g_strdup_printf ("[Identity]\nversion=1\npublicKey=%s\n", pub);
  write_file (f->ini_path, no_type, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  short_pub = g_strdup_printf ("[Identity]\nversion=1\npublicKey=%.62s\nkeyType=file\n", pub);
  write_file (f->ini_path, short_pub, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  newer = g_strdup_printf ("[Identity]\nversion=99\npublicKey=%s\nkeyType=file\n", pub);
  write_file (f->ini_path, newer, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);

  /* Restored, it loads again. */
  write_file (f->ini_path, good_text, -1);
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (PmIdentity) again = NULL;

    again = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_FILE, NULL, &error);
    g_assert_no_error (error);
    assert_same_identity (id, again);
  }
}

static void
test_file_mismatch (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (PmIdentity) created = create_file_identity (f);
  g_auto (PmKeypair) other = { 0 };
  g_autofree char *hex = NULL;
  g_autofree char *line = NULL;

  g_assert_true (PM_IS_IDENTITY (created));
  /* A valid key, but not the one whose public half is recorded. */
  pm_keypair_generate (&other);
  hex = pm_key_to_hex (other.priv);
  line = g_strconcat (hex, "\n", NULL);
  write_file (f->key_path, line, -1);
  assert_load_fails (f, PM_IDENTITY_ERROR_MISMATCH);
}

static void
test_file_insecure (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (PmIdentity) created = create_file_identity (f);

  g_assert_true (PM_IS_IDENTITY (created));
  g_assert_cmpint (g_chmod (f->key_path, 0644), ==, 0);
  assert_load_fails (f, PM_IDENTITY_ERROR_INSECURE);
  g_assert_cmphex (file_mode (f->key_path), ==, 0644); /* reported, not "fixed" */
}

static void
test_file_key_missing (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (PmIdentity) created = create_file_identity (f);

  g_assert_true (PM_IS_IDENTITY (created));
  g_assert_cmpint (g_unlink (f->key_path), ==, 0);
  assert_load_fails (f, PM_IDENTITY_ERROR_KEY_MISSING);
}

static void
test_file_orphan_key (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (PmIdentity) created = create_file_identity (f);

  g_assert_true (PM_IS_IDENTITY (created));
  /* A key without its record is not replaced by a new identity. */
  g_assert_cmpint (g_unlink (f->ini_path), ==, 0);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);
}

static void
test_file_cancelled (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) id = NULL;

  g_cancellable_cancel (cancellable);
  id = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_FILE, cancellable, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (id);
  g_assert_false (g_file_test (f->ini_path, G_FILE_TEST_EXISTS));
}

static void
load_ready (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static PmIdentity *
load_async (const char *state_dir,
            PmKeyStore  preferred,
            GError    **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  pm_identity_load_or_create_async (state_dir, preferred, NULL, load_ready, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  return pm_identity_load_or_create_finish (result, error);
}

static void
test_file_async (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) first = NULL;
  g_autoptr (PmIdentity) second = NULL;

  first = load_async (f->state_dir, PM_KEY_STORE_FILE, &error);
  g_assert_no_error (error);
  g_assert_true (pm_identity_get_was_created (first));
  second = load_async (f->state_dir, PM_KEY_STORE_FILE, &error);
  g_assert_no_error (error);
  g_assert_false (pm_identity_get_was_created (second));
  assert_same_identity (first, second);

  /* Errors come back through _finish too. */
  g_assert_cmpint (g_unlink (f->key_path), ==, 0);
  g_clear_object (&second);
  second = load_async (f->state_dir, PM_KEY_STORE_FILE, &error);
  g_assert_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_KEY_MISSING);
  g_assert_null (second);
}

static void
test_key_store_strings (void)
{
  PmKeyStore store = PM_KEY_STORE_FILE;

  g_assert_true (pm_key_store_from_string ("secret-service", &store));
  g_assert_cmpint (store, ==, PM_KEY_STORE_SECRET_SERVICE);
  g_assert_true (pm_key_store_from_string ("file", &store));
  g_assert_cmpint (store, ==, PM_KEY_STORE_FILE);
  g_assert_true (pm_key_store_from_string ("auto", &store));
  g_assert_cmpint (store, ==, PM_KEY_STORE_AUTO);
  g_assert_false (pm_key_store_from_string ("keychain", &store));
  g_assert_false (pm_key_store_from_string (NULL, &store));
  g_assert_cmpstr (pm_key_store_to_string (PM_KEY_STORE_SECRET_SERVICE), ==, "secret-service");
}

/* ---------------------------------------------------------------------------
 * No Secret Service reachable (subprocess)
 * ------------------------------------------------------------------------- */

static void
capture_message (const char    *log_domain,
                 GLogLevelFlags log_level,
                 const char    *message,
                 gpointer       user_data)
{
  g_ptr_array_add (user_data, g_strdup (message));
}

static void
test_auto_without_secret_service (Fixture      *f,
                                  gconstpointer data)
{
  if (g_test_subprocess ())
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmIdentity) id = NULL;
      g_autoptr (PmIdentity) again = NULL;
      g_autoptr (GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *bus = g_strdup_printf ("unix:path=%s/no-such-bus", f->tmp);
      g_autofree char *key_type = NULL;
      g_autofree char *priv_hex = NULL;
      g_auto (PmKeypair) kp = { 0 };

      /* Before libsecret first connects, so it never sees a real bus. */
      g_setenv ("DBUS_SESSION_BUS_ADDRESS", bus, TRUE);

      /* Asked for explicitly, the Secret Service failing is an error, and
       * nothing is written. */
      id = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_SECRET_SERVICE, NULL, &error);
      g_assert_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_SECRET_SERVICE);
      g_assert_null (id);
      g_assert_false (g_file_test (f->ini_path, G_FILE_TEST_EXISTS));
      g_assert_false (g_file_test (f->key_path, G_FILE_TEST_EXISTS));
      g_clear_error (&error);

      /* AUTO falls back to the file store, saying so once. */
      g_log_set_handler ("pipermesh-identity", G_LOG_LEVEL_MESSAGE, capture_message, messages);
      id = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_AUTO, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (pm_identity_get_key_store (id), ==, PM_KEY_STORE_FILE);
      g_assert_cmphex (file_mode (f->key_path), ==, 0600);
      key_type = ini_get (f->ini_path, "keyType");
      g_assert_cmpstr (key_type, ==, "file");

      g_assert_cmpuint (messages->len, ==, 1);
      g_assert_nonnull (strstr (messages->pdata[0], "No usable Secret Service"));
      pm_identity_get_keypair (id, &kp);
      priv_hex = pm_key_to_hex (kp.priv);
      g_assert_null (strstr (messages->pdata[0], priv_hex));

      /* Reloading reads the file and does not try the Secret Service. */
      again = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_AUTO, NULL, &error);
      g_assert_no_error (error);
      assert_same_identity (id, again);
      g_assert_cmpuint (messages->len, ==, 1);
      return;
    }

  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

/* ---------------------------------------------------------------------------
 * Secret Service (gnome-keyring under run-with-keyring.sh)
 * ------------------------------------------------------------------------- */

static gboolean
skip_without_keyring (void)
{
  g_autofree char *message = NULL;
  const char      *reason;

  if (g_strcmp0 (g_getenv ("PM_TEST_KEYRING"), "1") == 0)
    return FALSE;
  reason = g_getenv ("PM_TEST_KEYRING_SKIP");
  if (reason == NULL || *reason == '\0')
    reason = "not run under tests/run-with-keyring.sh, which provides a throwaway gnome-keyring";
  message = g_strdup_printf ("no Secret Service for the test: %s", reason);
  g_test_skip (message);
  return TRUE;
}

static char *
lookup_secret (const char *pub_hex,
               const char *state_dir)
{
  g_autoptr (GError) error = NULL;
  char *secret;

  secret = secret_password_lookup_sync (&test_schema, NULL, &error,
                                        "public-key", pub_hex,
                                        "state-dir", state_dir,
                                        NULL);
  g_assert_no_error (error);
  return secret;
}

static PmIdentity *
create_secret_identity (Fixture   *f,
                        PmKeyStore preferred)
{
  g_autoptr (GError) error = NULL;
  PmIdentity *id;

  id = pm_identity_load_or_create (f->state_dir, preferred, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  g_assert_cmpint (pm_identity_get_key_store (id), ==, PM_KEY_STORE_SECRET_SERVICE);
  return id;
}

static void
test_secret_create_reload (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) first = NULL;
  g_autoptr (PmIdentity) second = NULL;
  g_autofree char *key_type = NULL;
  g_autofree char *priv_hex = NULL;
  g_auto (PmKeypair) kp = { 0 };
  char *secret;

  if (skip_without_keyring ())
    return;

  first = create_secret_identity (f, PM_KEY_STORE_SECRET_SERVICE);
  g_assert_true (pm_identity_get_was_created (first));
  g_assert_cmpstr (pm_identity_get_key_store_string (first), ==, "secret-service");
  assert_keypair_consistent (first);

  /* The secret really is in the keyring, under our schema and attributes. */
  pm_identity_get_keypair (first, &kp);
  priv_hex = pm_key_to_hex (kp.priv);
  secret = lookup_secret (pm_identity_get_public_key_hex (first), f->state_dir);
  g_assert_nonnull (secret);
  g_assert_cmpstr (secret, ==, priv_hex);
  secret_password_free (secret);

  /* The state directory holds the record, and no trace of the private key. */
  key_type = ini_get (f->ini_path, "keyType");
  g_assert_cmpstr (key_type, ==, "secret-service");
  g_assert_false (g_file_test (f->key_path, G_FILE_TEST_EXISTS));
  assert_no_private_key_in (f->state_dir, kp.priv);
  g_assert_cmphex (file_mode (f->state_dir), ==, 0700);

  second = pm_identity_load_or_create (f->state_dir, PM_KEY_STORE_FILE, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (pm_identity_get_was_created (second));
  g_assert_cmpint (pm_identity_get_key_store (second), ==, PM_KEY_STORE_SECRET_SERVICE);
  assert_same_identity (first, second);
  g_assert_false (g_file_test (f->key_path, G_FILE_TEST_EXISTS));

  g_clear_object (&second);
  second = load_async (f->state_dir, PM_KEY_STORE_AUTO, &error);
  g_assert_no_error (error);
  assert_same_identity (first, second);
}

static void
test_secret_auto (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (PmIdentity) id = NULL;
  g_autofree char *key_type = NULL;

  if (skip_without_keyring ())
    return;

  id = create_secret_identity (f, PM_KEY_STORE_AUTO);
  key_type = ini_get (f->ini_path, "keyType");
  g_assert_cmpstr (key_type, ==, "secret-service");
  g_assert_false (g_file_test (f->key_path, G_FILE_TEST_EXISTS));
}

static void
test_secret_missing (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) id = NULL;

  if (skip_without_keyring ())
    return;

  id = create_secret_identity (f, PM_KEY_STORE_SECRET_SERVICE);
  g_assert_true (secret_password_clear_sync (&test_schema, NULL, &error,
                                             "public-key", pm_identity_get_public_key_hex (id),
                                             NULL));
  g_assert_no_error (error);

  /* Never a silent new identity: an error saying what to do. */
  assert_load_fails (f, PM_IDENTITY_ERROR_KEY_MISSING);
  g_assert_false (g_file_test (f->key_path, G_FILE_TEST_EXISTS));
}

static void
test_secret_mismatch (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) id = NULL;
  g_auto (PmKeypair) other = { 0 };
  g_autofree char *hex = NULL;

  if (skip_without_keyring ())
    return;

  id = create_secret_identity (f, PM_KEY_STORE_SECRET_SERVICE);
  pm_keypair_generate (&other);
  hex = pm_key_to_hex (other.priv);
  g_assert_true (secret_password_store_sync (&test_schema, SECRET_COLLECTION_DEFAULT, "replaced", hex,
                                             NULL, &error,
                                             "public-key", pm_identity_get_public_key_hex (id),
                                             "state-dir", f->state_dir,
                                             NULL));
  g_assert_no_error (error);
  assert_load_fails (f, PM_IDENTITY_ERROR_MISMATCH);

  g_assert_true (secret_password_store_sync (&test_schema, SECRET_COLLECTION_DEFAULT, "garbage", "not hex",
                                             NULL, &error,
                                             "public-key", pm_identity_get_public_key_hex (id),
                                             "state-dir", f->state_dir,
                                             NULL));
  g_assert_no_error (error);
  assert_load_fails (f, PM_IDENTITY_ERROR_CORRUPT);
}

static void
test_secret_two_devices (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir_a = g_build_filename (f->tmp, "a", NULL);
  g_autofree char *dir_b = g_build_filename (f->tmp, "b", NULL);
  g_autoptr (PmIdentity) a = NULL;
  g_autoptr (PmIdentity) b = NULL;
  g_autoptr (PmIdentity) a2 = NULL;
  g_autoptr (PmIdentity) b2 = NULL;

  if (skip_without_keyring ())
    return;

  a = pm_identity_load_or_create (dir_a, PM_KEY_STORE_SECRET_SERVICE, NULL, &error);
  g_assert_no_error (error);
  b = pm_identity_load_or_create (dir_b, PM_KEY_STORE_SECRET_SERVICE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (pm_identity_get_public_key_hex (a), !=, pm_identity_get_public_key_hex (b));

  a2 = pm_identity_load_or_create (dir_a, PM_KEY_STORE_AUTO, NULL, &error);
  g_assert_no_error (error);
  b2 = pm_identity_load_or_create (dir_b, PM_KEY_STORE_AUTO, NULL, &error);
  g_assert_no_error (error);
  assert_same_identity (a, a2);
  assert_same_identity (b, b2);
}

static void
test_secret_moved_state_dir (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) id = NULL;
  g_autoptr (PmIdentity) again = NULL;
  g_autofree char *moved = g_build_filename (f->tmp, "moved", NULL);
  g_autoptr (GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
  unsigned handler;

  if (skip_without_keyring ())
    return;

  id = create_secret_identity (f, PM_KEY_STORE_SECRET_SERVICE);
  g_assert_cmpint (g_rename (f->state_dir, moved), ==, 0);

  handler = g_log_set_handler ("pipermesh-identity", G_LOG_LEVEL_MESSAGE, capture_message, messages);
  again = pm_identity_load_or_create (moved, PM_KEY_STORE_AUTO, NULL, &error);
  g_log_remove_handler ("pipermesh-identity", handler);
  g_assert_no_error (error);
  g_assert_cmpuint (messages->len, ==, 1);
  g_assert_nonnull (strstr (messages->pdata[0], "under another state directory"));
  assert_same_identity (id, again);
}

/* Locks the default collection. gnome-keyring cannot unlock it again without a
 * prompter, so this test is registered last. */
static void
lock_default_collection (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SecretService) service = NULL;
  g_autoptr (SecretCollection) collection = NULL;
  g_autoptr (GList) objects = NULL;

  service = secret_service_get_sync (SECRET_SERVICE_NONE, NULL, &error);
  g_assert_no_error (error);
  collection = secret_collection_for_alias_sync (service, SECRET_COLLECTION_DEFAULT,
                                                 SECRET_COLLECTION_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (collection);
  objects = g_list_append (NULL, collection);
  secret_service_lock_sync (service, objects, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (secret_collection_get_locked (collection));
}

static void
test_secret_locked (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) id = NULL;
  g_autoptr (PmIdentity) fallback = NULL;
  g_autofree char *dir_b = g_build_filename (f->tmp, "b", NULL);
  g_autofree char *dir_c = g_build_filename (f->tmp, "c", NULL);
  g_autofree char *ini_c = g_build_filename (dir_c, "identity.ini", NULL);
  g_autoptr (GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
  unsigned handler;

  if (skip_without_keyring ())
    return;

  id = create_secret_identity (f, PM_KEY_STORE_SECRET_SERVICE);
  lock_default_collection ();

  /* The key is there but locked away: say so, rather than "missing". */
  assert_load_fails (f, PM_IDENTITY_ERROR_SECRET_SERVICE);

  /* A new identity: AUTO falls back to the file store, saying so. (Not
   * g_test_expect_message(): libsecret logs an info message first.) */
  handler = g_log_set_handler ("pipermesh-identity", G_LOG_LEVEL_MESSAGE, capture_message, messages);
  fallback = pm_identity_load_or_create (dir_b, PM_KEY_STORE_AUTO, NULL, &error);
  g_log_remove_handler ("pipermesh-identity", handler);
  g_assert_no_error (error);
  g_assert_cmpint (pm_identity_get_key_store (fallback), ==, PM_KEY_STORE_FILE);
  g_assert_cmpuint (messages->len, ==, 1);
  g_assert_nonnull (strstr (messages->pdata[0], "No usable Secret Service"));
  g_clear_object (&fallback);

  /* ...and an explicit request fails, writing nothing. */
  fallback = pm_identity_load_or_create (dir_c, PM_KEY_STORE_SECRET_SERVICE, NULL, &error);
  g_assert_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_SECRET_SERVICE);
  g_assert_null (fallback);
  g_assert_false (g_file_test (ini_c, G_FILE_TEST_EXISTS));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/identity/key-store-strings", test_key_store_strings);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("/identity/file/create-reload", test_file_create_reload);
  ADD ("/identity/file/umask", test_file_umask);
  ADD ("/identity/file/corrupt-key", test_file_corrupt_key);
  ADD ("/identity/file/corrupt-ini", test_file_corrupt_ini);
  ADD ("/identity/file/mismatch", test_file_mismatch);
  ADD ("/identity/file/insecure", test_file_insecure);
  ADD ("/identity/file/key-missing", test_file_key_missing);
  ADD ("/identity/file/orphan-key", test_file_orphan_key);
  ADD ("/identity/file/cancelled", test_file_cancelled);
  ADD ("/identity/file/async", test_file_async);
  ADD ("/identity/auto/without-secret-service", test_auto_without_secret_service);
  ADD ("/identity/secret-service/create-reload", test_secret_create_reload);
  ADD ("/identity/secret-service/auto", test_secret_auto);
  ADD ("/identity/secret-service/missing", test_secret_missing);
  ADD ("/identity/secret-service/mismatch", test_secret_mismatch);
  ADD ("/identity/secret-service/two-devices", test_secret_two_devices);
  ADD ("/identity/secret-service/moved-state-dir", test_secret_moved_state_dir);
  /* Last: it leaves the keyring locked. */
  ADD ("/identity/secret-service/locked", test_secret_locked);

#undef ADD

  /* No secret_service_disconnect() at exit: libsecret made its SecretService
   * proxy inside the private main context of its first *_sync call, and GDBus
   * frees a proxy's signal-subscription data from an idle on that context,
   * which nothing iterates again. Disconnecting would leak that data; left
   * alone, the service stays reachable from libsecret's cache. */
  return g_test_run ();
}
