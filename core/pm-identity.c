/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-identity"

#include "pm-identity.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <libsecret/secret.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pm-noise.h"

/* The state directory holds:
 *   identity.ini  the public record (GKeyFile): public key, keyType, created,
 *                 device name. Never the private key.
 *   identity.key  file store only: the private key as 64 hex digits and a
 *                 newline, mode 0600.
 * With the Secret Service store the private key (hex) is a secret of schema
 * "org.pipermesh.Identity" with attributes public-key and state-dir. */

#define IDENTITY_INI     "identity.ini"
#define IDENTITY_KEY     "identity.key"
#define IDENTITY_GROUP   "Identity"
#define IDENTITY_VERSION 1
#define SECRET_SCHEMA_ID "org.pipermesh.Identity"

/* identity.ini is a few hundred bytes and identity.key is 65; anything much
 * larger is not ours, and is refused rather than read into memory. */
#define MAX_INI_SIZE      (16 * 1024)
#define KEY_HEX_LEN       (PM_KEY_LEN * 2)
#define MAX_KEY_FILE_SIZE (KEY_HEX_LEN + 1)

G_DEFINE_QUARK (pm-identity-error-quark, pm_identity_error)

struct _PmIdentity {
  GObject parent_instance;

  PmKeypair *keypair; /* sodium_malloc'd: guard pages, mlocked, wiped by sodium_free */
  char      *public_key_hex;
  char      *fingerprint;
  char      *state_dir;
  char      *device_name;
  GDateTime *created;
  PmKeyStore key_store;
  gboolean   was_created;
};

G_DEFINE_FINAL_TYPE (PmIdentity, pm_identity, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_PUBLIC_KEY,
  PROP_FINGERPRINT,
  PROP_KEY_STORE,
  PROP_STATE_DIR,
  PROP_DEVICE_NAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
pm_identity_finalize (GObject *object)
{
  PmIdentity *self = PM_IDENTITY (object);

  sodium_free (self->keypair); /* zeroes before unmapping */
  g_free (self->public_key_hex);
  g_free (self->fingerprint);
  g_free (self->state_dir);
  g_free (self->device_name);
  g_clear_pointer (&self->created, g_date_time_unref);

  G_OBJECT_CLASS (pm_identity_parent_class)->finalize (object);
}

static void
pm_identity_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  PmIdentity *self = PM_IDENTITY (object);

  switch (prop_id)
    {
    case PROP_PUBLIC_KEY:
      g_value_set_string (value, self->public_key_hex);
      break;
    case PROP_FINGERPRINT:
      g_value_set_string (value, self->fingerprint);
      break;
    case PROP_KEY_STORE:
      g_value_set_string (value, pm_key_store_to_string (self->key_store));
      break;
    case PROP_STATE_DIR:
      g_value_set_string (value, self->state_dir);
      break;
    case PROP_DEVICE_NAME:
      g_value_set_string (value, self->device_name);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_identity_class_init (PmIdentityClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = pm_identity_finalize;
  object_class->get_property = pm_identity_get_property;

  /**
   * PmIdentity:public-key:
   * The X25519 public key, as 64 lowercase hex digits.
   */
  properties[PROP_PUBLIC_KEY] =
    g_param_spec_string ("public-key", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * PmIdentity:fingerprint:
   * The short fingerprint of the public key (see pm_key_fingerprint()).
   */
  properties[PROP_FINGERPRINT] =
    g_param_spec_string ("fingerprint", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * PmIdentity:key-store:
   * Where the private key is kept: "secret-service" or "file".
   */
  properties[PROP_KEY_STORE] =
    g_param_spec_string ("key-store", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * PmIdentity:state-dir:
   * The absolute path of the state directory holding `identity.ini`.
   */
  properties[PROP_STATE_DIR] =
    g_param_spec_string ("state-dir", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * PmIdentity:device-name:
   * The device name recorded when the identity was made (the host name), or
   * %NULL.
   */
  properties[PROP_DEVICE_NAME] =
    g_param_spec_string ("device-name", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_identity_init (PmIdentity *self)
{
  pm_noise_ensure_init ();
  self->keypair = sodium_malloc (sizeof *self->keypair);
  if (self->keypair == NULL)
    g_error ("out of memory for a guarded key buffer");
  sodium_memzero (self->keypair, sizeof *self->keypair);
}

/* ---------------------------------------------------------------------------
 * Key store names
 * ------------------------------------------------------------------------- */

/**
 * pm_key_store_to_string:
 * @store: a #PmKeyStore
 *
 * Returns: (transfer none): "secret-service", "file" or "auto"; the first two
 *   are the `keyType` values of `identity.ini`
 */
const char *
pm_key_store_to_string (PmKeyStore store)
{
  switch (store)
    {
    case PM_KEY_STORE_SECRET_SERVICE:
      return "secret-service";
    case PM_KEY_STORE_FILE:
      return "file";
    case PM_KEY_STORE_AUTO:
      return "auto";
    default:
      g_return_val_if_reached (NULL);
    }
}

/**
 * pm_key_store_from_string:
 * @str: "auto", "secret-service" or "file"
 * @out: (out): the store
 *
 * Returns: %TRUE if @str names a store
 */
gboolean
pm_key_store_from_string (const char *str,
                          PmKeyStore *out)
{
  static const PmKeyStore all[] = {
    PM_KEY_STORE_AUTO,
    PM_KEY_STORE_SECRET_SERVICE,
    PM_KEY_STORE_FILE,
  };

  g_return_val_if_fail (out != NULL, FALSE);

  if (str == NULL)
    return FALSE;
  for (size_t i = 0; i < G_N_ELEMENTS (all); i++)
    if (g_str_equal (str, pm_key_store_to_string (all[i])))
      {
        *out = all[i];
        return TRUE;
      }
  return FALSE;
}

/* ---------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------- */

/* Reads @path, which must be a regular file of at most @max bytes, into @buf
 * (room for @max + 1 bytes). Returns the length, or -1 with @error set:
 * G_FILE_ERROR for a file that cannot be opened or read (so callers can tell a
 * missing file apart), PM_IDENTITY_ERROR_CORRUPT for one that is not a regular
 * file or is too large. @st receives the file's status. */
static gssize
read_bounded (const char  *path,
              char        *buf,
              size_t       max,
              struct stat *st,
              GError     **error)
{
  size_t len = 0;
  int    fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    {
      int errsv = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                   "Could not open %s: %s", path, g_strerror (errsv));
      return -1;
    }
  if (fstat (fd, st) != 0 || !S_ISREG (st->st_mode))
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is not a regular file", path);
      close (fd);
      return -1;
    }
  /* Read to end of file, but never more than @max + 1 bytes: a file that
   * grew after fstat() is still caught. One already too large is not read. */
  if (st->st_size < 0 || (guint64) st->st_size > max)
    len = max + 1;
  while (len <= max)
    {
      ssize_t n = read (fd, buf + len, max + 1 - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int errsv = errno;
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                       "Could not read %s: %s", path, g_strerror (errsv));
          close (fd);
          return -1;
        }
      if (n == 0)
        break;
      len += (size_t) n;
    }
  close (fd);
  if (len > max)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is larger than an identity file can be (over %zu bytes); it was left unchanged",
                   path, max);
      return -1;
    }
  return (gssize) len;
}

static gboolean
write_all (int         fd,
           const char *data,
           size_t      len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= (size_t) n;
    }
  return TRUE;
}

static void
fsync_dir (const char *dir)
{
  int fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

  if (fd >= 0)
    {
      (void) fsync (fd);
      close (fd);
    }
}

/* Writes the private key to @dir/identity.key atomically: a temporary file
 * made with O_CREAT|O_EXCL and mode 0600 (never readable by anyone else, not
 * even for a moment), fsync'd, then hard-linked to its name. link() refuses to
 * replace an existing identity.key, so an existing key is never overwritten. */
static gboolean
write_key_file (const char   *dir,
                const char   *path,
                const uint8_t priv[PM_KEY_LEN],
                GError      **error)
{
  g_autofree char *tmp = g_build_filename (dir, "." IDENTITY_KEY ".XXXXXX", NULL);
  char             hex[KEY_HEX_LEN + 2];
  gboolean         written;
  int              fd, errsv;

  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      errsv = errno;
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not create a key file in %s: %s", dir, g_strerror (errsv));
      return FALSE;
    }
  /* The umask may only have removed bits; make the mode exactly 0600. */
  (void) fchmod (fd, 0600);

  sodium_bin2hex (hex, KEY_HEX_LEN + 1, priv, PM_KEY_LEN);
  hex[KEY_HEX_LEN] = '\n';
  hex[KEY_HEX_LEN + 1] = '\0';
  written = write_all (fd, hex, KEY_HEX_LEN + 1) && fsync (fd) == 0;
  errsv = errno;
  sodium_memzero (hex, sizeof hex);
  if (close (fd) != 0 && written)
    {
      written = FALSE;
      errsv = errno;
    }
  if (!written)
    {
      g_unlink (tmp);
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not write %s: %s", path, g_strerror (errsv));
      return FALSE;
    }

  if (link (tmp, path) != 0)
    {
      errsv = errno;
      /* Some file systems have no hard links. We hold the state directory's
       * lock and saw no identity.key, so a rename is safe enough there. */
      if ((errsv == EPERM || errsv == EOPNOTSUPP || errsv == ENOSYS) &&
          !g_file_test (path, G_FILE_TEST_EXISTS) &&
          g_rename (tmp, path) == 0)
        {
          fsync_dir (dir);
          return TRUE;
        }
      g_unlink (tmp);
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not create %s: %s", path, g_strerror (errsv));
      return FALSE;
    }
  g_unlink (tmp);
  fsync_dir (dir);
  return TRUE;
}

/* Parses 64 hex digits (upper or lower case) into @out. */
static gboolean
parse_key_hex (const char *hex,
               size_t      hex_len,
               uint8_t     out[PM_KEY_LEN])
{
  size_t      bin_len = 0;
  const char *end = NULL;

  if (hex_len != KEY_HEX_LEN)
    return FALSE;
  if (sodium_hex2bin (out, PM_KEY_LEN, hex, hex_len, NULL, &bin_len, &end) != 0 ||
      bin_len != PM_KEY_LEN ||
      end != hex + hex_len)
    {
      sodium_memzero (out, PM_KEY_LEN);
      return FALSE;
    }
  return TRUE;
}

/* Takes an exclusive lock on the state directory so that two processes
 * starting at once cannot both create an identity. Returns the fd to close. */
static int
lock_state_dir (const char *dir,
                GError    **error)
{
  int fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

  if (fd < 0)
    {
      int errsv = errno;
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not open the state directory %s: %s", dir, g_strerror (errsv));
      return -1;
    }
  while (flock (fd, LOCK_EX) != 0)
    {
      int errsv = errno;
      if (errsv == EINTR)
        continue;
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not lock the state directory %s: %s", dir, g_strerror (errsv));
      close (fd);
      return -1;
    }
  return fd;
}

/* ---------------------------------------------------------------------------
 * Secret Service
 * ------------------------------------------------------------------------- */

static const SecretSchema *
identity_schema (void)
{
  static const SecretSchema schema = {
    SECRET_SCHEMA_ID,
    SECRET_SCHEMA_NONE,
    {
      { "public-key", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { "state-dir", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    },
  };

  return &schema;
}

/* Turns a libsecret / D-Bus error into ours, keeping cancellation as is. */
static void
propagate_secret_error (GError    **error,
                        GError     *local,
                        const char *what)
{
  if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_propagate_error (error, local);
      return;
    }
  g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_SECRET_SERVICE,
               "%s: %s. Start and unlock your keyring (for example gnome-keyring), "
               "or keep the key in a file instead (--keystore file)",
               what, local->message);
  g_error_free (local);
}

static gboolean
secret_store_key (PmIdentity   *self,
                  GCancellable *cancellable,
                  GError      **error)
{
  g_autofree char *label = NULL;
  char             hex[KEY_HEX_LEN + 1];
  gboolean         ok;

  label = g_strdup_printf ("PiperMesh device key %s (%s)", self->fingerprint, self->state_dir);
  sodium_bin2hex (hex, sizeof hex, self->keypair->priv, PM_KEY_LEN);
  ok = secret_password_store_sync (identity_schema (), SECRET_COLLECTION_DEFAULT, label, hex,
                                   cancellable, error,
                                   "public-key", self->public_key_hex,
                                   "state-dir", self->state_dir,
                                   NULL);
  sodium_memzero (hex, sizeof hex);
  return ok;
}

/* After a lookup found nothing: is the key there, but in a locked keyring whose
 * unlock prompt was dismissed or could not be shown? Searching does not unlock
 * and does not read secrets. */
static gboolean
secret_key_is_locked (PmIdentity   *self,
                      GCancellable *cancellable)
{
  g_autoptr (SecretService) service = NULL;
  g_autoptr (GHashTable) attributes = NULL;
  gboolean locked = FALSE;
  GList   *items;

  service = secret_service_get_sync (SECRET_SERVICE_NONE, cancellable, NULL);
  if (service == NULL)
    return FALSE;
  attributes = secret_attributes_build (identity_schema (),
                                        "public-key", self->public_key_hex,
                                        NULL);
  items = secret_service_search_sync (service, identity_schema (), attributes,
                                      SECRET_SEARCH_ALL, cancellable, NULL);
  for (GList *l = items; l != NULL; l = l->next)
    locked |= secret_item_get_locked (l->data);
  g_list_free_full (items, g_object_unref);
  return locked;
}

/* Looks the private key up by public key and state directory; if the state
 * directory was moved or reached through another path, by public key alone
 * (it names the identity unambiguously, and the key is checked against it). */
static gboolean
secret_load_key (PmIdentity   *self,
                 GCancellable *cancellable,
                 GError      **error)
{
  uint8_t  priv[PM_KEY_LEN];
  GError  *local = NULL;
  char    *secret;
  gboolean ok;

  secret = secret_password_lookup_nonpageable_sync (identity_schema (), cancellable, &local,
                                                    "public-key", self->public_key_hex,
                                                    "state-dir", self->state_dir,
                                                    NULL);
  if (secret == NULL && local == NULL)
    {
      /* Nothing, or nothing we could unlock: in the second case, say so
       * (rather than "missing") and do not prompt a second time. */
      if (secret_key_is_locked (self, cancellable))
        {
          g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_SECRET_SERVICE,
                       "This device's private key is in a locked keyring. Unlock it (log in to "
                       "the desktop, or use a keyring manager such as Seahorse) and try again");
          return FALSE;
        }
      secret = secret_password_lookup_nonpageable_sync (identity_schema (), cancellable, &local,
                                                        "public-key", self->public_key_hex,
                                                        NULL);
      if (secret != NULL)
        g_message ("Found the private key for %s in the keyring under another state directory",
                   self->fingerprint);
    }
  if (local != NULL)
    {
      propagate_secret_error (error, local, "Could not read the private key from the Secret Service");
      return FALSE;
    }
  if (secret == NULL)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_KEY_MISSING,
                   "%s/" IDENTITY_INI " says this device's private key is in the Secret Service "
                   "(keyring), but the keyring has no PiperMesh key with public key %s. "
                   "If this account uses another keyring, or the keyring was reset, restore it. "
                   "To start over with a new identity (every peer must pair again), "
                   "move %s away",
                   self->state_dir, self->public_key_hex, self->state_dir);
      return FALSE;
    }

  ok = parse_key_hex (secret, strlen (secret), priv);
  secret_password_free (secret);
  if (!ok)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "The keyring entry for PiperMesh key %s is not a 32-byte hex key",
                   self->fingerprint);
      return FALSE;
    }
  pm_keypair_from_private (self->keypair, priv);
  sodium_memzero (priv, sizeof priv);
  return TRUE;
}

/* ---------------------------------------------------------------------------
 * File store
 * ------------------------------------------------------------------------- */

static gboolean
file_load_key (PmIdentity *self,
               const char *key_path,
               GError    **error)
{
  char    buf[MAX_KEY_FILE_SIZE + 1];
  uint8_t priv[PM_KEY_LEN];
  g_autoptr (GError) local = NULL;
  struct stat st;
  gssize      len;
  gboolean    ok;

  len = read_bounded (key_path, buf, MAX_KEY_FILE_SIZE, &st, &local);
  if (len < 0)
    {
      sodium_memzero (buf, sizeof buf);
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_KEY_MISSING,
                     "%s/" IDENTITY_INI " says this device's private key is in %s, but that "
                     "file is missing. Restore it from a backup, or move %s away to start "
                     "over with a new identity (every peer must pair again)",
                     self->state_dir, key_path, self->state_dir);
      else if (local->domain == PM_IDENTITY_ERROR)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error_literal (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO, local->message);
      return FALSE;
    }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      sodium_memzero (buf, sizeof buf);
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_INSECURE,
                   "%s can be used by other users (mode %04o); run “chmod 600 %s” and try again",
                   key_path, (unsigned) (st.st_mode & 07777), key_path);
      return FALSE;
    }

  if (len == KEY_HEX_LEN + 1 && buf[KEY_HEX_LEN] == '\n')
    len--;
  ok = parse_key_hex (buf, (size_t) len, priv);
  sodium_memzero (buf, sizeof buf);
  if (!ok)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is damaged: it should hold 64 hex digits. It was left unchanged; "
                   "restore it from a backup",
                   key_path);
      return FALSE;
    }
  pm_keypair_from_private (self->keypair, priv);
  sodium_memzero (priv, sizeof priv);
  return TRUE;
}

/* ---------------------------------------------------------------------------
 * Load and create
 * ------------------------------------------------------------------------- */

static void
set_public_key (PmIdentity   *self,
                const uint8_t pub[PM_KEY_LEN])
{
  g_free (self->public_key_hex);
  g_free (self->fingerprint);
  self->public_key_hex = pm_key_to_hex (pub);
  self->fingerprint = pm_key_fingerprint (pub);
}

static PmIdentity *
identity_load (const char   *state_dir,
               const char   *ini_path,
               GCancellable *cancellable,
               GError      **error)
{
  g_autoptr (PmIdentity) self = g_object_new (PM_TYPE_IDENTITY, NULL);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autofree char *data = g_malloc (MAX_INI_SIZE + 1);
  g_autofree char *pub_hex = NULL;
  g_autofree char *key_type = NULL;
  g_autofree char *created = NULL;
  uint8_t          pub[PM_KEY_LEN];
  struct stat      st;
  gssize           len;
  int              version;

  len = read_bounded (ini_path, data, MAX_INI_SIZE, &st, &local);
  if (len < 0)
    {
      if (local->domain == PM_IDENTITY_ERROR)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error_literal (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO, local->message);
      return NULL;
    }
  if (!g_key_file_load_from_data (kf, data, (size_t) len, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is damaged (%s). It was left unchanged; restore it from a backup",
                   ini_path, local->message);
      return NULL;
    }

  version = g_key_file_get_integer (kf, IDENTITY_GROUP, "version", NULL);
  pub_hex = g_key_file_get_string (kf, IDENTITY_GROUP, "publicKey", NULL);
  key_type = g_key_file_get_string (kf, IDENTITY_GROUP, "keyType", NULL);
  if (version > IDENTITY_VERSION)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s was written by a newer PiperMesh (record version %d); update PiperMesh",
                   ini_path, version);
      return NULL;
    }
  if (pub_hex == NULL || !parse_key_hex (pub_hex, strlen (pub_hex), pub))
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is damaged: it has no valid publicKey (64 hex digits) in [" IDENTITY_GROUP "]. "
                   "It was left unchanged; restore it from a backup",
                   ini_path);
      return NULL;
    }
  if (key_type == NULL ||
      !pm_key_store_from_string (key_type, &self->key_store) ||
      self->key_store == PM_KEY_STORE_AUTO)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s is damaged: keyType must be “secret-service” or “file”, not “%s”. "
                   "It was left unchanged",
                   ini_path, key_type ? key_type : "");
      return NULL;
    }

  self->state_dir = g_strdup (state_dir);
  self->device_name = g_key_file_get_string (kf, IDENTITY_GROUP, "deviceName", NULL);
  created = g_key_file_get_string (kf, IDENTITY_GROUP, "created", NULL);
  if (created != NULL)
    self->created = g_date_time_new_from_iso8601 (created, NULL);
  set_public_key (self, pub);

  if (self->key_store == PM_KEY_STORE_SECRET_SERVICE)
    {
      if (!secret_load_key (self, cancellable, error))
        return NULL;
    }
  else
    {
      g_autofree char *key_path = g_build_filename (state_dir, IDENTITY_KEY, NULL);

      if (!file_load_key (self, key_path, error))
        return NULL;
    }

  if (memcmp (self->keypair->pub, pub, PM_KEY_LEN) != 0)
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_MISMATCH,
                   "The private key in %s does not belong to the public key %s recorded in %s; "
                   "one of them was replaced or damaged. Nothing was changed; restore both "
                   "from the same backup",
                   self->key_store == PM_KEY_STORE_FILE ? IDENTITY_KEY : "the keyring",
                   self->public_key_hex, ini_path);
      return NULL;
    }

  return g_steal_pointer (&self);
}

static gboolean
write_record (PmIdentity *self,
              const char *ini_path,
              GError    **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  g_autofree char *created = g_date_time_format_iso8601 (self->created);
  g_autofree char *data = NULL;
  size_t           len;

  g_key_file_set_integer (kf, IDENTITY_GROUP, "version", IDENTITY_VERSION);
  g_key_file_set_string (kf, IDENTITY_GROUP, "publicKey", self->public_key_hex);
  g_key_file_set_string (kf, IDENTITY_GROUP, "keyType", pm_key_store_to_string (self->key_store));
  g_key_file_set_string (kf, IDENTITY_GROUP, "created", created);
  if (self->device_name != NULL)
    g_key_file_set_string (kf, IDENTITY_GROUP, "deviceName", self->device_name);
  g_key_file_set_comment (kf, IDENTITY_GROUP, NULL,
                          " PiperMesh device identity. The private key is not in this file:\n"
                          " keyType says where it is (the keyring, or identity.key beside it).",
                          NULL);

  data = g_key_file_to_data (kf, &len, NULL);
  if (!g_file_set_contents_full (ini_path, data, (gssize) len,
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                 0600, &local))
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not write %s: %s", ini_path, local->message);
      return FALSE;
    }
  return TRUE;
}

static PmIdentity *
identity_create (const char   *state_dir,
                 const char   *ini_path,
                 PmKeyStore    preferred,
                 GCancellable *cancellable,
                 GError      **error)
{
  g_autoptr (PmIdentity) self = g_object_new (PM_TYPE_IDENTITY, NULL);
  g_autofree char *key_path = g_build_filename (state_dir, IDENTITY_KEY, NULL);

  /* A key file without its record is most likely a record deleted by hand or
   * lost in a crash; do not bury the old key under a new one. */
  if (g_file_test (key_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_CORRUPT,
                   "%s exists but %s does not. Restore %s from a backup, or move %s away "
                   "to create a new identity",
                   key_path, ini_path, IDENTITY_INI, key_path);
      return NULL;
    }

  self->state_dir = g_strdup (state_dir);
  self->device_name = g_strdup (g_get_host_name ());
  self->created = g_date_time_new_now_utc ();
  self->was_created = TRUE;
  pm_keypair_generate (self->keypair);
  set_public_key (self, self->keypair->pub);

  self->key_store = PM_KEY_STORE_FILE;
  if (preferred != PM_KEY_STORE_FILE)
    {
      GError *local = NULL;

      if (secret_store_key (self, cancellable, &local))
        self->key_store = PM_KEY_STORE_SECRET_SERVICE;
      else if (preferred == PM_KEY_STORE_SECRET_SERVICE ||
               g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          propagate_secret_error (error, local, "Could not store the private key in the Secret Service");
          return NULL;
        }
      else
        {
          g_message ("No usable Secret Service (%s); keeping the private key in %s instead",
                     local->message, key_path);
          g_error_free (local);
        }
    }

  if (self->key_store == PM_KEY_STORE_FILE &&
      !write_key_file (state_dir, key_path, self->keypair->priv, error))
    return NULL;

  if (!write_record (self, ini_path, error))
    {
      /* Undo, so that the next attempt starts clean rather than finding a
       * key without a record. */
      if (self->key_store == PM_KEY_STORE_FILE)
        g_unlink (key_path);
      else
        secret_password_clear_sync (identity_schema (), NULL, NULL,
                                    "public-key", self->public_key_hex,
                                    "state-dir", self->state_dir,
                                    NULL);
      return NULL;
    }

  g_debug ("Created identity %s (%s) in %s", self->fingerprint,
           pm_key_store_to_string (self->key_store), state_dir);
  return g_steal_pointer (&self);
}

/**
 * pm_identity_default_state_dir:
 *
 * Returns: (transfer full): `$XDG_DATA_HOME/pipermesh`, where this device's
 *   state lives unless told otherwise
 */
char *
pm_identity_default_state_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "pipermesh", NULL);
}

/**
 * pm_identity_load_or_create:
 * @state_dir: (nullable): the state directory, or %NULL for
 *   pm_identity_default_state_dir(); created (mode 0700) if missing
 * @preferred: where to keep the private key of a *new* identity. An existing
 *   identity is always loaded from the store its record names.
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #PM_IDENTITY_ERROR
 *
 * Loads this device's identity from @state_dir, or makes one if the directory
 * has none. With %PM_KEY_STORE_AUTO a new private key goes to the Secret
 * Service when one is reachable and unlocked, else to a 0600 file.
 *
 * Never replaces an existing identity: a damaged record or key file, a key that
 * does not match its public key, or a key missing from the keyring is an error
 * that leaves every file as it was.
 *
 * This blocks on disk and D-Bus; from a main loop use
 * pm_identity_load_or_create_async().
 *
 * Returns: (transfer full): the identity, or %NULL with @error set
 */
PmIdentity *
pm_identity_load_or_create (const char   *state_dir,
                            PmKeyStore    preferred,
                            GCancellable *cancellable,
                            GError      **error)
{
  g_autofree char *dir = NULL;
  g_autofree char *ini_path = NULL;
  PmIdentity      *self;
  int              lock_fd;

  g_return_val_if_fail (preferred == PM_KEY_STORE_AUTO ||
                          preferred == PM_KEY_STORE_SECRET_SERVICE ||
                          preferred == PM_KEY_STORE_FILE,
                        NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  if (state_dir != NULL)
    dir = g_canonicalize_filename (state_dir, NULL);
  else
    dir = pm_identity_default_state_dir ();

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int errsv = errno;
      g_set_error (error, PM_IDENTITY_ERROR, PM_IDENTITY_ERROR_IO,
                   "Could not create the state directory %s: %s", dir, g_strerror (errsv));
      return NULL;
    }

  lock_fd = lock_state_dir (dir, error);
  if (lock_fd < 0)
    return NULL;

  ini_path = g_build_filename (dir, IDENTITY_INI, NULL);
  if (g_file_test (ini_path, G_FILE_TEST_EXISTS))
    self = identity_load (dir, ini_path, cancellable, error);
  else
    self = identity_create (dir, ini_path, preferred, cancellable, error);

  close (lock_fd); /* releases the lock */
  return self;
}

typedef struct {
  char      *state_dir;
  PmKeyStore preferred;
} LoadData;

static void
load_data_free (LoadData *data)
{
  g_free (data->state_dir);
  g_free (data);
}

static void
load_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  LoadData   *data = task_data;
  GError     *error = NULL;
  PmIdentity *self;

  self = pm_identity_load_or_create (data->state_dir, data->preferred, cancellable, &error);
  if (self == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, self, g_object_unref);
}

/**
 * pm_identity_load_or_create_async:
 * @state_dir: (nullable): as for pm_identity_load_or_create()
 * @preferred: as for pm_identity_load_or_create()
 * @cancellable: (nullable): a #GCancellable
 * @callback: called in the thread-default main context of the caller
 * @user_data: data for @callback
 *
 * pm_identity_load_or_create() in a worker thread, since libsecret's calls
 * block on D-Bus (and may wait for the user to unlock a keyring).
 */
void
pm_identity_load_or_create_async (const char         *state_dir,
                                  PmKeyStore          preferred,
                                  GCancellable       *cancellable,
                                  GAsyncReadyCallback callback,
                                  gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  LoadData *data;

  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  data = g_new0 (LoadData, 1);
  data->state_dir = g_strdup (state_dir);
  data->preferred = preferred;

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_identity_load_or_create_async);
  g_task_set_task_data (task, data, (GDestroyNotify) load_data_free);
  g_task_run_in_thread (task, load_thread);
}

/**
 * pm_identity_load_or_create_finish:
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #PM_IDENTITY_ERROR
 *
 * Returns: (transfer full): the identity, or %NULL with @error set
 */
PmIdentity *
pm_identity_load_or_create_finish (GAsyncResult *result,
                                   GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) ==
                          pm_identity_load_or_create_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---------------------------------------------------------------------------
 * Getters
 * ------------------------------------------------------------------------- */

/**
 * pm_identity_get_public_key:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none) (array fixed-size=32): the X25519 public key
 */
const uint8_t *
pm_identity_get_public_key (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->keypair->pub;
}

/**
 * pm_identity_get_public_key_hex:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none): the public key as 64 lowercase hex digits
 */
const char *
pm_identity_get_public_key_hex (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->public_key_hex;
}

/**
 * pm_identity_get_keypair:
 * @self: a #PmIdentity
 * @out: (out caller-allocates): receives a copy of the key pair
 *
 * Copies the static key pair for a Noise handshake. The caller owns the copy
 * and must wipe it with pm_keypair_clear() (or declare it
 * `g_auto(PmKeypair)`).
 */
void
pm_identity_get_keypair (PmIdentity *self,
                         PmKeypair  *out)
{
  g_return_if_fail (PM_IS_IDENTITY (self));
  g_return_if_fail (out != NULL);

  memcpy (out, self->keypair, sizeof *out);
}

/**
 * pm_identity_get_key_store:
 * @self: a #PmIdentity
 *
 * Returns: %PM_KEY_STORE_SECRET_SERVICE or %PM_KEY_STORE_FILE, never
 *   %PM_KEY_STORE_AUTO
 */
PmKeyStore
pm_identity_get_key_store (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), PM_KEY_STORE_FILE);

  return self->key_store;
}

/**
 * pm_identity_get_key_store_string:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none): "secret-service" or "file", as in `identity.ini`
 */
const char *
pm_identity_get_key_store_string (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return pm_key_store_to_string (self->key_store);
}

/**
 * pm_identity_get_fingerprint:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none): the short fingerprint of the public key, for people
 *   to compare
 */
const char *
pm_identity_get_fingerprint (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->fingerprint;
}

/**
 * pm_identity_get_state_dir:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none): the absolute path of the state directory
 */
const char *
pm_identity_get_state_dir (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->state_dir;
}

/**
 * pm_identity_get_device_name:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none) (nullable): the device name recorded at creation
 */
const char *
pm_identity_get_device_name (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->device_name;
}

/**
 * pm_identity_get_created:
 * @self: a #PmIdentity
 *
 * Returns: (transfer none) (nullable): when the identity was made, if recorded
 */
GDateTime *
pm_identity_get_created (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), NULL);

  return self->created;
}

/**
 * pm_identity_get_was_created:
 * @self: a #PmIdentity
 *
 * Returns: %TRUE if this call of pm_identity_load_or_create() made the identity,
 *   %FALSE if it loaded an existing one
 */
gboolean
pm_identity_get_was_created (PmIdentity *self)
{
  g_return_val_if_fail (PM_IS_IDENTITY (self), FALSE);

  return self->was_created;
}
