/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The pairing exchange in one process over real sockets: a PmPairHost
 * (HTTPS on 127.0.0.1 with its self-signed certificate) and PmPairClients,
 * each device with its own identity and paired store. Checks the success
 * path (both stores hold the other's key, both screens the same code) and
 * each refusal with its PM_PAIR_ERROR code and NOTHING stored on either side:
 * a certificate other than the pinned one (the token is not even sent: the
 * host still pairs afterwards), a wrong token (and the code retired after too
 * many), a reused token, a token expired at the host, a host whose static key
 * is not the code's, a rejection, a verification that times out, a client
 * cancelled while waiting, a name already paired on either side, an address
 * nobody listens on, and a host that fails to store (the client removes what
 * it had stored). Every wait is bounded.
 */
#define G_LOG_DOMAIN "pipermesh-test-pair-exchange"

#include <glib/gstdio.h>
#include <string.h>

#include "pm-pair-cert.h"
#include "pm-pair-client.h"
#include "pm-pair-host.h"
#include "pm-test-util.h"

#define WAIT_MS 15000

typedef enum {
  ANSWER_NONE,
  ANSWER_ACCEPT,
  ANSWER_REJECT,
} Answer;

typedef struct {
  char            *root;
  char            *host_dir;
  char            *client_dir;
  PmIdentity      *host_identity;
  PmIdentity      *client_identity;
  GTlsCertificate *certificate;
  PmPairedStore   *host_store;
  PmPairedStore   *client_store;
  PmPairHost      *host;
  PmPairLimits     limits;
  Answer           answer;
  char            *host_code;
  char            *client_code;
  char            *host_saw_name;
  GAsyncResult    *host_result;
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
        remove_tree (child);
      }
  g_remove (path);
}

static void
on_host_verify (PmPairHost *host,
                const char *code,
                const char *peer_name,
                const char *peer_type,
                gpointer    user_data)
{
  Fixture *f = user_data;

  g_free (f->host_code);
  f->host_code = g_strdup (code);
  g_free (f->host_saw_name);
  f->host_saw_name = g_strdup (peer_name);
  if (f->answer == ANSWER_ACCEPT)
    pm_pair_host_accept (host);
  else if (f->answer == ANSWER_REJECT)
    pm_pair_host_reject (host, "Not today");
}

static void
on_result (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static gboolean
result_arrived (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static PmPairHost *
start_host (Fixture       *f,
            PmPairedStore *store,
            int64_t        lifetime_s)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  PmPairHost *host =
    pm_pair_host_new (f->host_identity, f->certificate, store, "host", "linux", &f->limits);

  g_ptr_array_add (addresses, g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4));
  pm_pair_host_set_mesh_port (host, 45001);
  g_assert_true (pm_pair_host_start (host, addresses, 0, lifetime_s, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pm_pair_host_get_port (host), >, 0);
  g_signal_connect (host, "verify", G_CALLBACK (on_host_verify), f);
  pm_pair_host_wait_async (host, NULL, on_result, &f->host_result);
  return host;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->root = g_dir_make_tmp ("pm-pair-exchange-XXXXXX", &error);
  g_assert_no_error (error);
  f->host_dir = g_build_filename (f->root, "host", NULL);
  f->client_dir = g_build_filename (f->root, "client", NULL);
  f->host_identity = pm_identity_load_or_create (f->host_dir, PM_KEY_STORE_FILE, NULL, &error);
  g_assert_no_error (error);
  f->client_identity = pm_identity_load_or_create (f->client_dir, PM_KEY_STORE_FILE, NULL, &error);
  g_assert_no_error (error);
  f->certificate = pm_pair_cert_load_or_create (f->host_dir, NULL, &error);
  g_assert_no_error (error);
  f->host_store = pm_paired_store_new_for_state_dir (f->host_dir);
  f->client_store = pm_paired_store_new_for_state_dir (f->client_dir);
  pm_pair_limits_default (&f->limits);
  f->limits.connect_timeout_ms = 3000;
  f->limits.message_timeout_ms = 3000;
  f->limits.verify_timeout_ms = 3000;
  f->answer = ANSWER_ACCEPT;
  f->host = start_host (f, f->host_store, 600);
}

/* Lets the host's WebSocket close and its wait resolve, then drops it. */
static void
stop_host (Fixture    *f,
           PmPairHost *host)
{
  pm_pair_host_stop (host);
  g_assert_true (pm_test_spin_until (result_arrived, &f->host_result, WAIT_MS));
  g_signal_handlers_disconnect_by_data (host, f);
  g_object_unref (host);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  if (f->host != NULL)
    stop_host (f, f->host);
  g_clear_object (&f->host_result);
  g_clear_object (&f->host_identity);
  g_clear_object (&f->client_identity);
  g_clear_object (&f->certificate);
  g_clear_object (&f->host_store);
  g_clear_object (&f->client_store);
  remove_tree (f->root);
  g_free (f->root);
  g_free (f->host_dir);
  g_free (f->client_dir);
  g_free (f->host_code);
  g_free (f->client_code);
  g_free (f->host_saw_name);
}

static void
on_client_verify (PmPairClient *client,
                  const char   *code,
                  const char   *host_name,
                  const char   *host_type,
                  gpointer      user_data)
{
  Fixture *f = user_data;

  g_free (f->client_code);
  f->client_code = g_strdup (code);
  g_assert_cmpstr (host_name, ==, "host");
  g_assert_cmpstr (host_type, ==, "linux");
}

/* Runs one client pairing to its end. Returns the device or NULL with @error. */
static PmPairedDevice *
pair_client (Fixture          *f,
             PmIdentity       *identity,
             PmPairedStore    *store,
             const char       *name,
             const PmPairCode *code,
             GCancellable     *cancellable,
             GError          **error)
{
  g_autoptr (PmPairClient) client =
    pm_pair_client_new (identity, store, name, "android", &f->limits);
  g_autoptr (GAsyncResult) result = NULL;

  pm_pair_client_set_mesh_port (client, 45002);
  g_signal_connect (client, "verify", G_CALLBACK (on_client_verify), f);
  pm_pair_client_pair_async (client, code, cancellable, on_result, &result);
  g_assert_true (pm_test_spin_until (result_arrived, &result, WAIT_MS));
  return pm_pair_client_pair_finish (client, result, error);
}

static PmPairedDevice *
wait_host (Fixture *f,
           GError **error)
{
  g_assert_true (pm_test_spin_until (result_arrived, &f->host_result, WAIT_MS));
  return pm_pair_host_wait_finish (f->host, f->host_result, error);
}

static void
assert_empty (PmPairedStore *store)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) list = pm_paired_store_list (store, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 0);
}

static void
assert_nothing_stored (Fixture *f)
{
  assert_empty (f->host_store);
  assert_empty (f->client_store);
}

static void
test_success (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) on_client = NULL, on_host = NULL;
  g_autoptr (PmPairedDevice) stored_host = NULL, stored_client = NULL;
  const PmPairCode *code = pm_pair_host_get_code (f->host);
  uint8_t           spki[PM_PAIR_SPKI_SHA256_LEN];

  g_assert_true (pm_pair_cert_get_spki_sha256 (f->certificate, spki, NULL));
  g_assert_cmpmem (code->cert_spki_sha256, sizeof spki, spki, sizeof spki);
  g_assert_cmpmem (code->static_public, PM_KEY_LEN, pm_identity_get_public_key (f->host_identity),
                   PM_KEY_LEN);

  on_client = pair_client (f, f->client_identity, f->client_store, "phone", code, NULL, &error);
  g_assert_no_error (error);
  on_host = wait_host (f, &error);
  g_assert_no_error (error);

  /* Both screens showed the same code. */
  g_assert_nonnull (f->host_code);
  g_assert_cmpuint (strlen (f->host_code), ==, 8);
  g_assert_cmpstr (f->host_code, ==, f->client_code);
  g_assert_cmpstr (f->host_saw_name, ==, "phone");

  /* Each store holds the other's static key. */
  stored_host = pm_paired_store_lookup (f->client_store, "host", &error);
  g_assert_no_error (error);
  g_assert_cmpmem (stored_host->public_key, PM_KEY_LEN,
                   pm_identity_get_public_key (f->host_identity), PM_KEY_LEN);
  g_assert_cmpstr (stored_host->device_type, ==, "linux");
  g_assert_cmpuint (stored_host->addresses->len, ==, 1);
  g_assert_cmpstr (stored_host->addresses->pdata[0], ==, "127.0.0.1:45001");
  g_assert_cmpstr (on_client->id, ==, stored_host->id);
  stored_client = pm_paired_store_lookup (f->host_store, "phone", &error);
  g_assert_no_error (error);
  g_assert_cmpmem (stored_client->public_key, PM_KEY_LEN,
                   pm_identity_get_public_key (f->client_identity), PM_KEY_LEN);
  g_assert_cmpstr (stored_client->device_type, ==, "android");
  g_assert_cmpstr (stored_client->addresses->pdata[0], ==, "127.0.0.1:45002");
  g_assert_true (pm_paired_device_allows (stored_client, "anything"));
  g_assert_cmpstr (on_host->id, ==, stored_client->id);
}

static void
test_reused_token (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) first = NULL, second = NULL, on_host = NULL;
  g_autofree char *dir = g_build_filename (f->root, "third", NULL);
  g_autoptr (PmIdentity) third = pm_identity_load_or_create (dir, PM_KEY_STORE_FILE, NULL, &error);
  g_autoptr (PmPairedStore) third_store = pm_paired_store_new_for_state_dir (dir);
  const PmPairCode *code = pm_pair_host_get_code (f->host);

  first = pair_client (f, f->client_identity, f->client_store, "phone", code, NULL, &error);
  g_assert_no_error (error);
  on_host = wait_host (f, &error);
  g_assert_no_error (error);

  /* The listener is still up: the same code again is "used". */
  second = pair_client (f, third, third_store, "tablet", code, NULL, &error);
  g_assert_null (second);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_USED);
  g_assert_nonnull (strstr (error->message, "already used"));
  assert_empty (third_store);
  g_assert_false (g_file_test (pm_paired_store_get_path (third_store), G_FILE_TEST_EXISTS));
}

static void
test_wrong_certificate (Fixture      *f,
                        gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) forged = pm_pair_code_copy (pm_pair_host_get_code (f->host));
  g_autoptr (PmPairedDevice) refused = NULL, good = NULL, on_host = NULL;

  forged->cert_spki_sha256[0] ^= 0x01;
  refused = pair_client (f, f->client_identity, f->client_store, "phone", forged, NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_WRONG_CERTIFICATE);
  g_assert_nonnull (strstr (error->message, "token was not sent"));
  g_clear_error (&error);
  assert_nothing_stored (f);
  g_assert_null (f->host_result);
  g_assert_null (f->host_code);

  /* The token never left: the real code still pairs. */
  good = pair_client (f, f->client_identity, f->client_store, "phone",
                      pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_no_error (error);
  on_host = wait_host (f, &error);
  g_assert_no_error (error);
}

static void
test_wrong_token (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) forged = pm_pair_code_copy (pm_pair_host_get_code (f->host));
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;

  forged->token[5] ^= 0x40;
  for (unsigned i = 0; i < f->limits.max_bad_tokens; i++)
    {
      refused = pair_client (f, f->client_identity, f->client_store, "phone", forged, NULL, &error);
      g_assert_null (refused);
      g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_INVALID);
      g_clear_error (&error);
      if (i + 1 < f->limits.max_bad_tokens)
        g_assert_null (f->host_result);
    }
  /* Too many wrong tokens: the code is retired. */
  on_host = wait_host (f, &error);
  g_assert_null (on_host);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_INVALID);
  g_clear_error (&error);
  assert_nothing_stored (f);
}

static void
test_expired_at_host (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) later = NULL;
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;
  PmPairHost *host = f->host;

  /* A code of one second; the client's copy claims a later expiry (a clock
   * behind the host's), so only the host's own check can refuse it. */
  f->host = NULL;
  stop_host (f, host);
  g_clear_object (&f->host_result);
  f->host = start_host (f, f->host_store, 1);
  later = pm_pair_code_copy (pm_pair_host_get_code (f->host));
  later->expires += 3600;
  on_host = wait_host (f, &error);
  g_assert_null (on_host);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_EXPIRED);
  g_clear_error (&error);

  refused = pair_client (f, f->client_identity, f->client_store, "phone", later, NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_EXPIRED);
  g_clear_error (&error);
  assert_nothing_stored (f);

  /* The client refuses an expired code by itself, before connecting. */
  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_EXPIRED);
  g_assert_nonnull (strstr (error->message, "expired at"));
}

static void
test_wrong_key (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) forged = pm_pair_code_copy (pm_pair_host_get_code (f->host));
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;

  forged->static_public[31] ^= 0x01;
  refused = pair_client (f, f->client_identity, f->client_store, "phone", forged, NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_WRONG_KEY);
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_null (on_host);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_CLOSED);
  g_assert_nonnull (strstr (error->message, "wrong static key"));
  g_assert_null (f->host_code); /* never reached verification */
  assert_nothing_stored (f);
}

static void
test_rejected (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;

  f->answer = ANSWER_REJECT;
  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_null (refused);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED);
  g_assert_nonnull (strstr (error->message, "Not today"));
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED);
  g_assert_cmpstr (f->host_code, ==, f->client_code);
  assert_nothing_stored (f);
}

static void
test_verify_timeout (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;
  PmPairHost *host = f->host;

  f->host = NULL;
  stop_host (f, host);
  g_clear_object (&f->host_result);
  f->limits.verify_timeout_ms = 300;
  f->answer = ANSWER_NONE;
  f->host = start_host (f, f->host_store, 600);
  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED);
  g_assert_nonnull (strstr (error->message, "did not answer in time"));
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TIMED_OUT);
  assert_nothing_stored (f);
}

static gboolean
cancel_soon (gpointer data)
{
  g_cancellable_cancel (data);
  return G_SOURCE_REMOVE;
}

static void
on_verify_cancel (PmPairClient *client,
                  const char   *code,
                  const char   *host_name,
                  const char   *host_type,
                  gpointer      user_data)
{
  g_timeout_add (50, cancel_soon, user_data);
}

static void
test_cancel (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (PmPairClient) client =
    pm_pair_client_new (f->client_identity, f->client_store, "phone", "linux", &f->limits);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (PmPairedDevice) device = NULL, on_host = NULL;

  f->answer = ANSWER_NONE;
  g_signal_connect (client, "verify", G_CALLBACK (on_verify_cancel), cancellable);
  pm_pair_client_pair_async (client, pm_pair_host_get_code (f->host), cancellable, on_result,
                             &result);
  g_assert_true (pm_test_spin_until (result_arrived, &result, WAIT_MS));
  device = pm_pair_client_pair_finish (client, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_CLOSED);
  assert_nothing_stored (f);
}

static void
test_name_taken_on_host (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) existing = pm_paired_device_new ();
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;
  g_autoptr (GPtrArray) list = NULL;

  existing->name = g_strdup ("phone");
  existing->device_type = g_strdup ("iphone");
  memset (existing->public_key, 0x77, PM_KEY_LEN);
  g_assert_true (pm_paired_store_add (f->host_store, existing, &error));

  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED);
  g_assert_nonnull (strstr (error->message, "already has another device named"));
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_CONFLICT);
  g_assert_null (f->host_code); /* refused before asking anyone */
  assert_empty (f->client_store);
  list = pm_paired_store_list (f->host_store, NULL);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpstr (((PmPairedDevice *) list->pdata[0])->device_type, ==, "iphone");
}

static void
test_name_taken_on_client (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) existing = pm_paired_device_new ();
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;

  existing->name = g_strdup ("host");
  existing->device_type = g_strdup ("mac");
  memset (existing->public_key, 0x77, PM_KEY_LEN);
  g_assert_true (pm_paired_store_add (f->client_store, existing, &error));

  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_CONFLICT);
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_CLOSED);
  assert_empty (f->host_store);
}

static void
test_no_route (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) forged = pm_pair_code_copy (pm_pair_host_get_code (f->host));
  g_autoptr (PmPairedDevice) refused = NULL;
  g_autoptr (GSocket) probe =
    g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) bound = NULL;

  /* A port that was free a moment ago: nobody listens there. */
  g_assert_true (g_socket_bind (probe, any, FALSE, NULL));
  bound = g_socket_get_local_address (probe, NULL);
  g_socket_close (probe, NULL);
  g_ptr_array_set_size (forged->addresses, 0);
  g_ptr_array_add (forged->addresses, g_object_ref (bound));

  refused = pair_client (f, f->client_identity, f->client_store, "phone", forged, NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_NO_ROUTE);
  g_assert_nonnull (strstr (error->message, "Could not reach host"));
  assert_nothing_stored (f);
  g_assert_null (f->host_result);
}

static void
test_host_store_fails (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) refused = NULL, on_host = NULL;
  g_autofree char *blocker = g_build_filename (f->root, "blocker", NULL);
  g_autofree char *path = g_build_filename (blocker, "paired.db", NULL);
  g_autoptr (PmPairedStore) broken = pm_paired_store_new (path);
  PmPairHost *host = f->host;

  /* The host's store sits under a regular file: it can never be created. */
  g_assert_true (g_file_set_contents (blocker, "not a folder", -1, NULL));
  f->host = NULL;
  stop_host (f, host);
  g_clear_object (&f->host_result);
  f->host = start_host (f, broken, 600);

  refused = pair_client (f, f->client_identity, f->client_store, "phone",
                         pm_pair_host_get_code (f->host), NULL, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_STORE);
  g_clear_error (&error);
  on_host = wait_host (f, &error);
  g_assert_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_STORE);
  /* The client had stored the host before the host failed: removed again. */
  assert_empty (f->client_store);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_setenv ("DBUS_SESSION_BUS_ADDRESS", "disabled:", TRUE);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/pair-exchange/success", test_success);
  ADD ("/pair-exchange/reused-token", test_reused_token);
  ADD ("/pair-exchange/wrong-certificate", test_wrong_certificate);
  ADD ("/pair-exchange/wrong-token", test_wrong_token);
  ADD ("/pair-exchange/expired-at-host", test_expired_at_host);
  ADD ("/pair-exchange/wrong-key", test_wrong_key);
  ADD ("/pair-exchange/rejected", test_rejected);
  ADD ("/pair-exchange/verify-timeout", test_verify_timeout);
  ADD ("/pair-exchange/cancel", test_cancel);
  ADD ("/pair-exchange/name-taken-on-host", test_name_taken_on_host);
  ADD ("/pair-exchange/name-taken-on-client", test_name_taken_on_client);
  ADD ("/pair-exchange/no-route", test_no_route);
  ADD ("/pair-exchange/host-store-fails", test_host_store_fails);
#undef ADD
  return g_test_run ();
}
