/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-pair"

#include "pm-pair-cert.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CERT_FILE "cert.pem"
#define KEY_FILE  "key.pem"
#define LOCK_FILE ".pair-cert.lock"
/* The certificate's subject and issuer: it names nothing, the pin is its key. */
#define CERT_COMMON_NAME "PiperMesh pairing"
/* cert.pem and key.pem are well under 2 KiB; a larger file is not ours. */
#define MAX_PEM_SIZE (64 * 1024)
#define SERIAL_LEN   16

/* clang-format off */
G_DEFINE_QUARK (pm-pair-cert-error-quark, pm_pair_cert_error)
/* clang-format on */

static gboolean
gnutls_failed (int         ret,
               const char *what,
               GError    **error)
{
  if (ret >= 0)
    return FALSE;
  g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CRYPTO, "%s: %s", what,
               gnutls_strerror (ret));
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

/* Writes @data to @dir/@name with exactly @mode: a temporary file made with
 * O_EXCL and that mode from the start, fsync'd, then renamed over the name. */
static gboolean
write_file (const char *dir,
            const char *name,
            const void *data,
            size_t      len,
            int         mode,
            GError    **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s/.%s.XXXXXX", dir, name);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  const uint8_t   *p = data;
  gboolean         ok = TRUE;
  int              fd, errsv = 0;

  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0)
    {
      errsv = errno;
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_IO,
                   "Could not create a file in %s: %s", dir, g_strerror (errsv));
      return FALSE;
    }
  (void) fchmod (fd, (mode_t) mode); /* the umask may only have removed bits */
  while (ok && len > 0)
    {
      ssize_t n = write (fd, p, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          errsv = errno;
          ok = FALSE;
          break;
        }
      p += n;
      len -= (size_t) n;
    }
  if (ok && fsync (fd) != 0)
    {
      errsv = errno;
      ok = FALSE;
    }
  if (close (fd) != 0 && ok)
    {
      errsv = errno;
      ok = FALSE;
    }
  if (ok && g_rename (tmp, path) != 0)
    {
      errsv = errno;
      ok = FALSE;
    }
  if (!ok)
    {
      g_unlink (tmp);
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_IO, "Could not write %s: %s", path,
                   g_strerror (errsv));
      return FALSE;
    }
  return TRUE;
}

/* Makes a fresh key pair and self-signed certificate as PEM (the key as
 * unencrypted PKCS#8, which GTlsCertificate reads). */
static gboolean
generate (gnutls_datum_t *cert_pem,
          gnutls_datum_t *key_pem,
          GError        **error)
{
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t     crt = NULL;
  uint8_t               serial[SERIAL_LEN];
  gboolean              ok = FALSE;

  if (gnutls_failed (gnutls_x509_privkey_init (&key), "Could not make a key", error) ||
      gnutls_failed (gnutls_x509_privkey_generate (
                       key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0),
                     "Could not make an ECDSA P-256 key", error) ||
      gnutls_failed (gnutls_x509_crt_init (&crt), "Could not make a certificate", error))
    goto out;

  /* A positive serial of 16 random bytes (RFC 5280 §4.1.2.2). */
  if (gnutls_failed (gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial), "No randomness", error))
    goto out;
  serial[0] = (uint8_t) ((serial[0] & 0x7f) | 0x40);
  if (gnutls_failed (gnutls_x509_crt_set_version (crt, 3), "Certificate version", error) ||
      gnutls_failed (gnutls_x509_crt_set_serial (crt, serial, sizeof serial), "Certificate serial",
                     error) ||
      gnutls_failed (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                                    CERT_COMMON_NAME, strlen (CERT_COMMON_NAME)),
                     "Certificate subject", error) ||
      gnutls_failed (gnutls_x509_crt_set_activation_time (crt, time (NULL) - 24 * 3600),
                     "Certificate activation time", error) ||
      /* (time_t) -1: "no well-defined expiration date" (RFC 5280 §4.1.2.5). */
      gnutls_failed (gnutls_x509_crt_set_expiration_time (crt, (time_t) -1),
                     "Certificate expiration", error) ||
      gnutls_failed (gnutls_x509_crt_set_key (crt, key), "Certificate key", error) ||
      gnutls_failed (gnutls_x509_crt_set_basic_constraints (crt, 0, -1), "Certificate constraints",
                     error) ||
      gnutls_failed (gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_DIGITAL_SIGNATURE),
                     "Certificate key usage", error) ||
      gnutls_failed (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_SERVER, 0),
                     "Certificate purpose", error) ||
      gnutls_failed (gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0),
                     "Could not sign the certificate", error) ||
      gnutls_failed (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, cert_pem),
                     "Certificate export", error) ||
      gnutls_failed (gnutls_x509_privkey_export2_pkcs8 (key, GNUTLS_X509_FMT_PEM, NULL,
                                                        GNUTLS_PKCS_PLAIN, key_pem),
                     "Key export", error))
    goto out;
  ok = TRUE;

out:
  if (crt != NULL)
    gnutls_x509_crt_deinit (crt);
  if (key != NULL)
    gnutls_x509_privkey_deinit (key); /* GnuTLS wipes the key material */
  return ok;
}

static void
datum_wipe (gnutls_datum_t *datum)
{
  if (datum->data != NULL)
    {
      sodium_memzero (datum->data, datum->size);
      gnutls_free (datum->data);
    }
  datum->data = NULL;
  datum->size = 0;
}

/* Reads a PEM file of at most MAX_PEM_SIZE bytes. */
static gboolean
read_pem (const char *path,
          char      **contents,
          size_t     *len,
          GError    **error)
{
  g_autoptr (GError) local = NULL;
  GStatBuf st;

  if (g_stat (path, &st) != 0 || !S_ISREG (st.st_mode) || st.st_size > MAX_PEM_SIZE)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
                   "%s is not a PEM file of at most %d bytes", path, MAX_PEM_SIZE);
      return FALSE;
    }
  if (!g_file_get_contents (path, contents, len, &local))
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_IO, "%s", local->message);
      return FALSE;
    }
  return TRUE;
}

/* Checks that key.pem holds the private half of cert.pem's key. */
static gboolean
check_pair (const char *cert_path,
            const char *key_path,
            GError    **error)
{
  g_autofree char      *cert_text = NULL;
  g_autofree char      *key_text = NULL;
  size_t                cert_len = 0, key_len = 0;
  gnutls_x509_crt_t     crt = NULL;
  gnutls_x509_privkey_t key = NULL;
  uint8_t               crt_id[64], key_id[64];
  size_t                crt_id_len = sizeof crt_id, key_id_len = sizeof key_id;
  gnutls_datum_t        datum;
  gboolean              ok = FALSE;

  if (!read_pem (cert_path, &cert_text, &cert_len, error) ||
      !read_pem (key_path, &key_text, &key_len, error))
    goto out;
  gnutls_x509_crt_init (&crt);
  gnutls_x509_privkey_init (&key);
  datum.data = (unsigned char *) cert_text;
  datum.size = (unsigned) cert_len;
  if (gnutls_x509_crt_import (crt, &datum, GNUTLS_X509_FMT_PEM) < 0)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
                   "%s is not a PEM certificate", cert_path);
      goto out;
    }
  datum.data = (unsigned char *) key_text;
  datum.size = (unsigned) key_len;
  if (gnutls_x509_privkey_import (key, &datum, GNUTLS_X509_FMT_PEM) < 0)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
                   "%s is not a PEM private key", key_path);
      goto out;
    }
  if (gnutls_x509_crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_id_len) < 0 ||
      gnutls_x509_privkey_get_key_id (key, GNUTLS_KEYID_USE_SHA256, key_id, &key_id_len) < 0 ||
      crt_id_len != key_id_len || memcmp (crt_id, key_id, crt_id_len) != 0)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
                   "%s does not hold the key of %s; remove both to make a new pairing certificate",
                   key_path, cert_path);
      goto out;
    }
  ok = TRUE;

out:
  if (key_text != NULL)
    sodium_memzero (key_text, key_len);
  if (crt != NULL)
    gnutls_x509_crt_deinit (crt);
  if (key != NULL)
    gnutls_x509_privkey_deinit (key);
  return ok;
}

/**
 * pm_pair_cert_load_or_create:
 * @state_dir: the state directory (created 0700 if missing)
 * @created: (out) (optional): set to %TRUE when the certificate was made now
 *
 * Loads the pairing certificate and its key from @state_dir, or makes them
 * the first time. An existing certificate is never replaced: a certificate
 * without its key, a key open to other users or a pair that does not match is
 * an error, not a reason to start over. Several processes may call this at
 * once (a lock file in @state_dir serialises them).
 *
 * Returns: (transfer full): the certificate with its private key, ready for
 *   soup_server_set_tls_certificate(); %NULL on error
 */
GTlsCertificate *
pm_pair_cert_load_or_create (const char *state_dir,
                             gboolean   *created,
                             GError    **error)
{
  g_autofree char *cert_path = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *lock_path = NULL;
  g_autoptr (GError) local = NULL;
  GTlsCertificate *certificate = NULL;
  GStatBuf         st;
  int              lock_fd = -1;

  g_return_val_if_fail (state_dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (created != NULL)
    *created = FALSE;
  if (g_mkdir_with_parents (state_dir, 0700) != 0)
    {
      int errsv = errno;
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_IO, "Could not create %s: %s",
                   state_dir, g_strerror (errsv));
      return NULL;
    }
  if (g_stat (state_dir, &st) == 0 && (st.st_mode & 022) != 0)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_INSECURE,
                   "%s is writable by other users; run chmod 700 on it", state_dir);
      return NULL;
    }

  cert_path = g_build_filename (state_dir, CERT_FILE, NULL);
  key_path = g_build_filename (state_dir, KEY_FILE, NULL);
  lock_path = g_build_filename (state_dir, LOCK_FILE, NULL);
  lock_fd = g_open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock (lock_fd, LOCK_EX) != 0)
    {
      int errsv = errno;
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_IO, "Could not lock %s: %s",
                   lock_path, g_strerror (errsv));
      if (lock_fd >= 0)
        close (lock_fd);
      return NULL;
    }

  if (!g_file_test (cert_path, G_FILE_TEST_EXISTS))
    {
      gnutls_datum_t cert_pem = { NULL, 0 }, key_pem = { NULL, 0 };
      gboolean       ok;

      /* The key first: a crash in between leaves a key without a
       * certificate, which the next call replaces. */
      ok = generate (&cert_pem, &key_pem, error) &&
           write_file (state_dir, KEY_FILE, key_pem.data, key_pem.size, 0600, error) &&
           write_file (state_dir, CERT_FILE, cert_pem.data, cert_pem.size, 0644, error);
      datum_wipe (&key_pem);
      datum_wipe (&cert_pem);
      if (!ok)
        goto out;
      fsync_dir (state_dir);
      g_debug ("Made a pairing certificate in %s", state_dir);
      if (created != NULL)
        *created = TRUE;
    }
  else if (!g_file_test (key_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (
        error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
        "%s has no private key (%s is missing); remove %s to make a new pairing certificate",
        cert_path, key_path, cert_path);
      goto out;
    }

  if (g_stat (key_path, &st) != 0 || (st.st_mode & 077) != 0)
    {
      g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_INSECURE,
                   "%s is accessible to other users; run chmod 600 on it", key_path);
      goto out;
    }
  if (!check_pair (cert_path, key_path, error))
    goto out;
  certificate = g_tls_certificate_new_from_files (cert_path, key_path, &local);
  if (certificate == NULL)
    g_set_error (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT, "Could not load %s: %s",
                 cert_path, local->message);

out:
  (void) flock (lock_fd, LOCK_UN);
  close (lock_fd);
  return certificate;
}

/**
 * pm_pair_cert_get_spki_sha256:
 * @certificate: any certificate (ours, or the one a TLS peer presented)
 * @out: (out caller-allocates): SHA-256 of its DER SubjectPublicKeyInfo
 *
 * The value a pairing code pins: the same as
 * `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
 */
gboolean
pm_pair_cert_get_spki_sha256 (GTlsCertificate *certificate,
                              uint8_t          out[PM_PAIR_SPKI_SHA256_LEN],
                              GError         **error)
{
  g_autoptr (GByteArray) der = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t   pubkey = NULL;
  gnutls_datum_t    datum;
  gnutls_datum_t    spki = { NULL, 0 };
  gboolean          ok = FALSE;

  g_return_val_if_fail (G_IS_TLS_CERTIFICATE (certificate), FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  g_object_get (certificate, "certificate", &der, NULL);
  if (der == NULL || der->len == 0)
    {
      g_set_error_literal (error, PM_PAIR_CERT_ERROR, PM_PAIR_CERT_ERROR_CORRUPT,
                           "The certificate has no DER form");
      return FALSE;
    }
  datum.data = der->data;
  datum.size = der->len;
  if (gnutls_failed (gnutls_x509_crt_init (&crt), "Certificate", error) ||
      gnutls_failed (gnutls_x509_crt_import (crt, &datum, GNUTLS_X509_FMT_DER),
                     "Could not read the certificate", error) ||
      gnutls_failed (gnutls_pubkey_init (&pubkey), "Public key", error) ||
      gnutls_failed (gnutls_pubkey_import_x509 (pubkey, crt, 0),
                     "Could not read the certificate's key", error) ||
      gnutls_failed (gnutls_pubkey_export2 (pubkey, GNUTLS_X509_FMT_DER, &spki),
                     "Could not export the key", error) ||
      gnutls_failed (gnutls_hash_fast (GNUTLS_DIG_SHA256, spki.data, spki.size, out), "SHA-256",
                     error))
    goto out;
  ok = TRUE;

out:
  gnutls_free (spki.data);
  if (pubkey != NULL)
    gnutls_pubkey_deinit (pubkey);
  if (crt != NULL)
    gnutls_x509_crt_deinit (crt);
  return ok;
}
