/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmCoordClient against a real in-process PmCoordServer on 127.0.0.1 (port
 * 0) over a PmStoreSqlite in a temporary file, plus the pure parsers on a
 * table of refusals. Every wait is bounded.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <string.h>

#include "pm-test-util.h"
#include "pm-coord-client.h"
#include "pm-coord-server.h"
#include "pm-store-sqlite.h"

#define WAIT_MS      10000
#define WAKE_POLL_MS 300

typedef struct {
  char            *dir;
  char            *db_path;
  PmStoreSqlite   *store;
  PmCoordServer   *server;
  char            *base;
  PmAccountRecord *account;
  char            *key;
} Fixture;

/* --- Bounded waiting ------------------------------------------------------- */

static void
spin_until (PmTestCond cond,
            gpointer   data,
            unsigned   timeout_ms)
{
  g_assert_true (pm_test_spin_until (cond, data, timeout_ms));
}

static gboolean
result_is_set (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Waits for the GAsyncResult an _async call delivers to on_done. */
static GAsyncResult *
wait_result (GAsyncResult **slot)
{
  spin_until (result_is_set, slot, WAIT_MS);
  return g_steal_pointer (slot);
}

/* --- Fixture ----------------------------------------------------------------- */

static char *
random_public_key (void)
{
  GString *hex = g_string_new (NULL);

  for (int i = 0; i < 32; i++)
    g_string_append_printf (hex, "%02x", g_random_int_range (0, 256));
  return g_string_free (hex, FALSE);
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  PmCoordLimits limits;
  int64_t       now = pm_store_now ();

  f->dir = g_dir_make_tmp ("pipermesh-coord-client-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "server.db", NULL);
  f->store = pm_store_sqlite_open (f->db_path, &error);
  g_assert_no_error (error);
  f->account = pm_store_create_account (PM_STORE (f->store), "alice", now, &error);
  g_assert_no_error (error);
  f->key = pm_store_create_enrollment_key (PM_STORE (f->store), f->account->id, 3600, TRUE, now,
                                           NULL, &error);
  g_assert_no_error (error);

  pm_coord_limits_default (&limits);
  limits.wake_timeout_us = WAKE_POLL_MS * 1000;
  f->server = pm_coord_server_new (PM_STORE (f->store), NULL, &limits);
  g_assert_true (pm_coord_server_listen (f->server, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  f->base = pm_coord_server_get_base_uri (f->server);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_clear_object (&f->server);
  g_clear_object (&f->store);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_unlink (f->db_path);
  {
    g_autofree char *wal = g_strconcat (f->db_path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (f->db_path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (f->dir);
  g_free (f->db_path);
  g_free (f->dir);
  g_free (f->base);
  g_free (f->key);
  pm_account_record_free (f->account);
}

static PmCoordClient *
new_client (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  PmCoordClient *client = pm_coord_client_new (f->base, NULL, &error);

  g_assert_no_error (error);
  return client;
}

/* Enrolls @client; returns the enrollment, or NULL with @error. */
static PmEnrollment *
enroll (PmCoordClient *client,
        const char    *key,
        const char    *public_key,
        const char    *name,
        GError       **error)
{
  GAsyncResult *slot = NULL;
  g_autoptr (GAsyncResult) result = NULL;

  pm_coord_client_enroll_async (client, key, public_key, name, "linux", "file", NULL, on_done,
                                &slot);
  result = wait_result (&slot);
  return pm_coord_client_enroll_finish (client, result, error);
}

static PmEnrollment *
enroll_ok (Fixture       *f,
           PmCoordClient *client,
           const char    *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *public_key = random_public_key ();
  PmEnrollment    *enrollment = enroll (client, f->key, public_key, name, &error);

  g_assert_no_error (error);
  g_assert_nonnull (enrollment);
  return enrollment;
}

static GPtrArray *
list (PmCoordClient *client,
      GError       **error)
{
  GAsyncResult *slot = NULL;
  g_autoptr (GAsyncResult) result = NULL;

  pm_coord_client_list_devices_async (client, NULL, on_done, &slot);
  result = wait_result (&slot);
  return pm_coord_client_list_devices_finish (client, result, error);
}

static const PmDeviceInfo *
find_device (GPtrArray  *devices,
             const char *id)
{
  for (unsigned i = 0; i < devices->len; i++)
    if (g_str_equal (((PmDeviceInfo *) devices->pdata[i])->id, id))
      return devices->pdata[i];
  g_error ("device %s is not listed", id);
}

static char *
key_hex (const uint8_t key[32])
{
  GString *hex = g_string_new (NULL);

  for (int i = 0; i < 32; i++)
    g_string_append_printf (hex, "%02x", key[i]);
  return g_string_free (hex, FALSE);
}

/* --- Enrollment ---------------------------------------------------------------- */

static void
test_enroll (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (PmCoordClient) client = new_client (f);
  g_autoptr (PmCoordClient) other = new_client (f);
  g_autoptr (PmEnrollment) enrollment = NULL;
  g_autoptr (PmEnrollment) refused = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *public_key = random_public_key ();
  g_autofree char *key2 = random_public_key ();
  g_autofree char *key3 = random_public_key ();

  g_assert_false (pm_coord_client_get_enrolled (client));
  enrollment = enroll (client, f->key, public_key, "laptop", &error);
  g_assert_no_error (error);
  g_assert_true (pm_coord_client_device_id_is_valid (enrollment->device_id));
  g_assert_true (g_str_has_prefix (enrollment->token, "pmdt_"));
  g_assert_cmpstr (enrollment->account_id, ==, f->account->id);
  g_assert_true (pm_coord_client_get_enrolled (client));

  /* An unknown enrollment key. */
  refused = enroll (other, "pmek_wrong", key2, "phone", &error);
  g_assert_null (refused);
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_KEY);
  g_assert_nonnull (strstr (error->message, "enrollment key"));
  g_assert_false (pm_coord_client_get_enrolled (other));
  g_clear_error (&error);

  /* The same public key again. */
  refused = enroll (other, f->key, public_key, "phone", &error);
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_CONFLICT);
  g_clear_error (&error);

  /* A name the server does not accept: its own message is kept as detail. */
  refused = enroll (other, f->key, key3, "", &error);
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "HTTP 400"));
  g_clear_error (&error);
}

/* --- Listing and candidates ------------------------------------------------------ */

static void
test_list (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (PmCoordClient) laptop = new_client (f);
  g_autoptr (PmCoordClient) phone = new_client (f);
  g_autoptr (PmEnrollment) a = enroll_ok (f, laptop, "laptop");
  g_autoptr (PmEnrollment) b = enroll_ok (f, phone, "phone");
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GPtrArray) records = NULL;
  g_autoptr (GError) error = NULL;
  const PmDeviceInfo *info;

  /* The first listing records that the laptop was seen; the second shows it. */
  devices = list (laptop, &error);
  g_assert_no_error (error);
  g_clear_pointer (&devices, g_ptr_array_unref);
  devices = list (laptop, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, ==, 2);
  records = pm_store_list_devices (PM_STORE (f->store), f->account->id, FALSE, &error);
  g_assert_no_error (error);
  for (unsigned i = 0; i < records->len; i++)
    {
      PmDeviceRecord  *record = records->pdata[i];
      g_autofree char *hex = NULL;

      info = find_device (devices, record->id);
      g_assert_nonnull (info);
      hex = key_hex (info->public_key);
      g_assert_cmpstr (hex, ==, record->public_key);
      g_assert_cmpstr (info->name, ==, record->name);
      g_assert_cmpstr (info->type, ==, "linux");
      g_assert_cmpstr (info->key_type, ==, "file");
      g_assert_false (info->has_candidates);
      g_assert_cmpuint (info->addresses->len, ==, 0);
      g_assert_null (info->mapped);
    }
  /* The laptop was just seen: online, with a time; the phone never was. */
  info = find_device (devices, a->device_id);
  g_assert_true (info->online);
  g_assert_nonnull (info->last_seen);
  info = find_device (devices, b->device_id);
  g_assert_false (info->online);
  g_assert_null (info->last_seen);

  /* Copies are deep. */
  {
    g_autoptr (PmDeviceInfo) copy = pm_device_info_copy (info);

    g_assert_cmpstr (copy->id, ==, info->id);
    g_assert_cmpmem (copy->public_key, 32, info->public_key, 32);
  }
}

static void
test_candidates (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (PmCoordClient) laptop = new_client (f);
  g_autoptr (PmCoordClient) phone = new_client (f);
  g_autoptr (PmEnrollment) a = enroll_ok (f, laptop, "laptop");
  g_autoptr (PmEnrollment) b = enroll_ok (f, phone, "phone");
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GInetSocketAddress) mapped = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GAsyncResult       *slot = NULL;
  const PmDeviceInfo *info;

  g_ptr_array_add (addresses, pm_coord_client_parse_address ("192.0.2.10:41641"));
  g_ptr_array_add (addresses, pm_coord_client_parse_address ("[2001:db8::1]:41641"));
  mapped = pm_coord_client_parse_address ("203.0.113.7:41641");
  pm_coord_client_put_candidates_async (laptop, a->device_id, addresses, mapped, TRUE, NULL,
                                        on_done, &slot);
  result = wait_result (&slot);
  g_assert_true (pm_coord_client_put_candidates_finish (laptop, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  /* Setting another device's candidates is refused. */
  pm_coord_client_put_candidates_async (laptop, b->device_id, addresses, NULL, FALSE, NULL,
                                        on_done, &slot);
  result = wait_result (&slot);
  g_assert_false (pm_coord_client_put_candidates_finish (laptop, result, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_FORBIDDEN);
  g_clear_error (&error);
  g_clear_object (&result);

  /* The phone sees them. */
  devices = list (phone, &error);
  g_assert_no_error (error);
  info = find_device (devices, a->device_id);
  g_assert_nonnull (info);
  g_assert_true (info->has_candidates);
  g_assert_cmpuint (info->addresses->len, ==, 2);
  for (unsigned i = 0; i < 2; i++)
    {
      g_autofree char *want = g_socket_connectable_to_string (addresses->pdata[i]);
      g_autofree char *got = g_socket_connectable_to_string (info->addresses->pdata[i]);

      g_assert_cmpstr (got, ==, want);
    }
  g_assert_nonnull (info->mapped);
  g_assert_cmpuint (g_inet_socket_address_get_port (info->mapped), ==, 41641);
  g_assert_true (info->mapping_varies);
  info = find_device (devices, b->device_id);
  g_assert_false (info->has_candidates);
}

/* --- Wake ------------------------------------------------------------------------- */

typedef struct {
  PmCoordServer *server;
  const char    *device_id;
} PollCheck;

static gboolean
poll_is_held (gpointer data)
{
  PollCheck *check = data;

  return pm_coord_server_get_wake_polls (check->server, check->device_id) > 0;
}

static void
test_wake (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (PmCoordClient) laptop = new_client (f);
  g_autoptr (PmCoordClient) phone = new_client (f);
  g_autoptr (PmEnrollment) a = enroll_ok (f, laptop, "laptop");
  g_autoptr (PmEnrollment) b = enroll_ok (f, phone, "phone");
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GAsyncResult) wake_result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *from = NULL;
  GAsyncResult    *slot = NULL, *wake_slot = NULL;
  PollCheck        check = { f->server, b->device_id };
  unsigned         long_polls = 99;
  gboolean         push = TRUE;
  int64_t          start;

  /* No wake within the server's (shortened) timeout: NULL, no error. */
  start = g_get_monotonic_time ();
  pm_coord_client_wait_wake_async (phone, NULL, on_done, &slot);
  result = wait_result (&slot);
  from = pm_coord_client_wait_wake_finish (phone, result, &error);
  g_assert_no_error (error);
  g_assert_null (from);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, (WAKE_POLL_MS - 50) * 1000);
  g_clear_object (&result);

  /* The round trip. */
  pm_coord_client_wait_wake_async (phone, NULL, on_done, &slot);
  spin_until (poll_is_held, &check, WAIT_MS);
  pm_coord_client_wake_async (laptop, b->device_id, NULL, on_done, &wake_slot);
  wake_result = wait_result (&wake_slot);
  g_assert_true (pm_coord_client_wake_finish (laptop, wake_result, &long_polls, &push, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (long_polls, ==, 1);
  g_assert_false (push);
  g_clear_object (&wake_result);
  result = wait_result (&slot);
  from = pm_coord_client_wait_wake_finish (phone, result, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (from, ==, a->device_id);
  g_clear_object (&result);

  /* Again at once: rate limited, with a Retry-After. */
  pm_coord_client_wake_async (laptop, b->device_id, NULL, on_done, &wake_slot);
  wake_result = wait_result (&wake_slot);
  g_assert_false (pm_coord_client_wake_finish (laptop, wake_result, NULL, NULL, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_RATE_LIMITED);
  g_assert_cmpuint (pm_coord_client_error_get_retry_after (error), >=, 1);
  g_assert_cmpuint (pm_coord_client_error_get_retry_after (error), <=, 5);
  g_clear_error (&error);
  g_clear_object (&wake_result);

  /* Waking oneself is the caller's mistake; an unknown device is NOT_FOUND. */
  pm_coord_client_wake_async (laptop, a->device_id, NULL, on_done, &wake_slot);
  wake_result = wait_result (&wake_slot);
  g_assert_false (pm_coord_client_wake_finish (laptop, wake_result, NULL, NULL, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_clear_object (&wake_result);
  pm_coord_client_wake_async (laptop, "dev_00000000000000000000000000000000", NULL, on_done,
                              &wake_slot);
  wake_result = wait_result (&wake_slot);
  g_assert_false (pm_coord_client_wake_finish (laptop, wake_result, NULL, NULL, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_object (&wake_result);

  /* A malformed id never reaches the server. */
  pm_coord_client_wake_async (laptop, "../../healthz", NULL, on_done, &wake_slot);
  wake_result = wait_result (&wake_slot);
  g_assert_false (pm_coord_client_wake_finish (laptop, wake_result, NULL, NULL, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT);
}

/* --- Revocation --------------------------------------------------------------------- */

static void
test_revoke (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (PmCoordClient) laptop = new_client (f);
  g_autoptr (PmCoordClient) phone = new_client (f);
  g_autoptr (PmEnrollment) a = enroll_ok (f, laptop, "laptop");
  g_autoptr (PmEnrollment) b = enroll_ok (f, phone, "phone");
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GError) error = NULL;
  GAsyncResult *slot = NULL;

  pm_coord_client_revoke_async (laptop, b->device_id, NULL, on_done, &slot);
  result = wait_result (&slot);
  g_assert_true (pm_coord_client_revoke_finish (laptop, result, &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  devices = list (phone, &error);
  g_assert_null (devices);
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_UNAUTHORIZED);
  g_assert_nonnull (strstr (error->message, "enroll"));
  g_clear_error (&error);

  /* Already revoked. */
  pm_coord_client_revoke_async (laptop, b->device_id, NULL, on_done, &slot);
  result = wait_result (&slot);
  g_assert_false (pm_coord_client_revoke_finish (laptop, result, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NOT_FOUND);
  g_clear_error (&error);

  devices = list (laptop, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, ==, 1);
  g_assert_cmpstr (((PmDeviceInfo *) devices->pdata[0])->id, ==, a->device_id);
}

/* --- Cancellation -------------------------------------------------------------------- */

static gboolean
cancel_now (gpointer data)
{
  g_cancellable_cancel (data);
  return G_SOURCE_REMOVE;
}

static void
test_cancel (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (PmCoordClient) phone = new_client (f);
  g_autoptr (PmEnrollment) b = enroll_ok (f, phone, "phone");
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *from = NULL;
  GAsyncResult    *slot = NULL;
  PollCheck        check = { f->server, b->device_id };

  /* A held long-poll ends when cancelled (not with the server's 204). */
  pm_coord_client_wait_wake_async (phone, cancellable, on_done, &slot);
  spin_until (poll_is_held, &check, WAIT_MS);
  g_idle_add (cancel_now, cancellable);
  result = wait_result (&slot);
  from = pm_coord_client_wait_wake_finish (phone, result, &error);
  g_assert_null (from);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_clear_object (&result);

  /* Already cancelled: nothing is sent. */
  pm_coord_client_list_devices_async (phone, cancellable, on_done, &slot);
  result = wait_result (&slot);
  g_assert_null (pm_coord_client_list_devices_finish (phone, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* --- Construction and transport errors ------------------------------------------- */

static void
test_uri (void)
{
  static const char *const refused[] = {
    "http://192.0.2.1:8080",
    "http://example.com",
    "http://localhost:8080", /* a name, not a loopback literal */
    "ftp://127.0.0.1",
    "https://user@mesh.example.net",
    "https://mesh.example.net/?q=1",
    "https://mesh.example.net/#x",
    "mesh.example.net",
    "",
  };
  static const struct {
    const char *uri;
    const char *normal;
  } accepted[] = {
    { "https://mesh.example.net", "https://mesh.example.net" },
    { "https://mesh.example.net:8443/pm/", "https://mesh.example.net:8443/pm" },
    { "http://127.0.0.1:8080", "http://127.0.0.1:8080" },
    { "http://[::1]:8080/", "http://[::1]:8080" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmCoordClient) client = pm_coord_client_new (refused[i], NULL, &error);

      g_test_message ("refused: %s", refused[i]);
      g_assert_null (client);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_URI);
    }
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (PmCoordClient) client = pm_coord_client_new ("http://192.0.2.1", NULL, &error);

    g_assert_null (client);
    g_assert_nonnull (strstr (error->message, "https://"));
  }
  for (size_t i = 0; i < G_N_ELEMENTS (accepted); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmCoordClient) client = pm_coord_client_new (accepted[i].uri, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpstr (pm_coord_client_get_base_uri (client), ==, accepted[i].normal);
    }

  /* Tokens: malformed ones (a header injection included) are refused. */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (PmCoordClient) client = NULL;

    client = pm_coord_client_new ("http://127.0.0.1:1", "pmdt_abc\r\nX-Evil: 1", &error);
    g_assert_null (client);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
    client = pm_coord_client_new ("http://127.0.0.1:1", "pmdt_abc-_9", &error);
    g_assert_no_error (error);
    g_assert_true (pm_coord_client_get_enrolled (client));
    g_assert_true (pm_coord_client_set_token (client, NULL, &error));
    g_assert_false (pm_coord_client_get_enrolled (client));
  }
}

static void
test_not_enrolled_and_network (void)
{
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCoordClient) client = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autofree char *uri = NULL;
  GAsyncResult    *slot = NULL;

  /* A port that is bound but never listened on refuses connections. */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, any, FALSE, &error));
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  uri = g_strdup_printf ("http://127.0.0.1:%u",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  client = pm_coord_client_new (uri, NULL, &error);
  g_assert_no_error (error);

  pm_coord_client_list_devices_async (client, NULL, on_done, &slot);
  result = wait_result (&slot);
  g_assert_null (pm_coord_client_list_devices_finish (client, result, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NOT_ENROLLED);
  g_clear_error (&error);
  g_clear_object (&result);

  g_assert_true (pm_coord_client_set_token (client, "pmdt_test", &error));
  pm_coord_client_list_devices_async (client, NULL, on_done, &slot);
  result = wait_result (&slot);
  g_assert_null (pm_coord_client_list_devices_finish (client, result, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NETWORK);
  g_assert_nonnull (strstr (error->message, uri));
  g_assert_null (strstr (error->message, "pmdt_"));
}

/* --- A server that misbehaves ------------------------------------------------------- */

#define BIG_BODY (2 * 1024 * 1024)

/* Answers GET <prefix>/v1/mesh/devices in one wrong way per prefix. */
static void
on_bad_request (SoupServer        *server,
                SoupServerMessage *msg,
                const char        *path,
                GHashTable        *query,
                gpointer           user_data)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  SoupMessageBody    *body = soup_server_message_get_response_body (msg);

  if (g_str_has_prefix (path, "/big/"))
    {
      char *data = g_malloc (BIG_BODY);

      memset (data, ' ', BIG_BODY);
      soup_server_message_set_status (msg, 200, NULL);
      soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, data, BIG_BODY);
    }
  else if (g_str_has_prefix (path, "/chunked/"))
    {
      /* No Content-Length: the limit is enforced while reading. */
      soup_server_message_set_status (msg, 200, NULL);
      soup_message_headers_set_encoding (headers, SOUP_ENCODING_CHUNKED);
      soup_message_headers_set_content_type (headers, "application/json", NULL);
      for (int i = 0; i < BIG_BODY / 65536; i++)
        {
          char *data = g_malloc (65536);

          memset (data, ' ', 65536);
          soup_message_body_append (body, SOUP_MEMORY_TAKE, data, 65536);
        }
      soup_message_body_complete (body);
    }
  else if (g_str_has_prefix (path, "/redirect/"))
    {
      soup_server_message_set_redirect (msg, 302, "http://127.0.0.1:1/v1/mesh/devices");
    }
  else if (g_str_has_prefix (path, "/html/"))
    {
      soup_server_message_set_status (msg, 200, NULL);
      soup_server_message_set_response (msg, "text/html", SOUP_MEMORY_STATIC, "<html>", 6);
    }
  else if (g_str_has_prefix (path, "/created/"))
    {
      soup_server_message_set_status (msg, 201, NULL);
      soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_STATIC,
                                        "{\"devices\":[]}", 14);
    }
  else
    soup_server_message_set_status (msg, 404, NULL);
}

static void
test_bad_server (void)
{
  static const char *const prefixes[] = { "big", "chunked", "redirect", "html", "created" };
  g_autoptr (SoupServer) server = soup_server_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSList) uris = NULL;
  g_autofree char *base = NULL;

  soup_server_add_handler (server, NULL, on_bad_request, NULL, NULL);
  g_assert_true (soup_server_listen_local (server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (server);
  g_assert_nonnull (uris);
  base = g_uri_to_string (uris->data);
  g_slist_free_full (g_steal_pointer (&uris), (GDestroyNotify) g_uri_unref);

  for (size_t i = 0; i < G_N_ELEMENTS (prefixes); i++)
    {
      g_autofree char *uri = g_strconcat (base, prefixes[i], NULL);
      g_autoptr (PmCoordClient) client = pm_coord_client_new (uri, "pmdt_test", &error);
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GPtrArray) devices = NULL;
      GAsyncResult *slot = NULL;

      g_test_message ("%s", uri);
      g_assert_no_error (error);
      pm_coord_client_list_devices_async (client, NULL, on_done, &slot);
      result = wait_result (&slot);
      devices = pm_coord_client_list_devices_finish (client, result, &error);
      g_assert_null (devices);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }
}

/* A TCP peer that does not speak HTTP. */
static gboolean
on_garbage_client (GSocketService    *service,
                   GSocketConnection *connection,
                   GObject           *source,
                   gpointer           user_data)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  g_output_stream_write_all (out, "SSH-2.0-OpenSSH_9.2\r\n\r\n", 23, NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  return TRUE;
}

static void
test_not_http (void)
{
  g_autoptr (GSocketService) service = g_socket_service_new ();
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (PmCoordClient) client = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *uri = NULL;
  GAsyncResult    *slot = NULL;

  g_assert_true (g_socket_listener_add_address (G_SOCKET_LISTENER (service), any,
                                                G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                                &bound, &error));
  g_assert_no_error (error);
  g_signal_connect (service, "incoming", G_CALLBACK (on_garbage_client), NULL);
  uri = g_strdup_printf ("http://127.0.0.1:%u",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  client = pm_coord_client_new (uri, "pmdt_test", &error);
  g_assert_no_error (error);
  pm_coord_client_list_devices_async (client, NULL, on_done, &slot);
  result = wait_result (&slot);
  g_assert_null (pm_coord_client_list_devices_finish (client, result, &error));
  g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
  g_socket_service_stop (service);
  g_socket_listener_close (G_SOCKET_LISTENER (service));
}

/* --- Parsers ----------------------------------------------------------------------- */

#define KEY64 "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
#define DEV1  "dev_578bae3551f83356d28bc836c105f192"
#define DEV2  "dev_8ea1a234115573b06c205b6ae4ec6ea8"

/* A device object with one member replaced (or removed, with NULL). */
static char *
device_json (const char *member,
             const char *value)
{
  static const char *const names[] = { "id", "name", "type", "publicKey", "keyType",
                                       "lastSeen", "online", "candidates" };
  static const char *const values[] = {
    "\"" DEV1 "\"",
    "\"laptop\"",
    "\"linux\"",
    "\"" KEY64 "\"",
    "\"secret-service\"",
    "\"2026-11-25T00:37:41Z\"",
    "true",
    ("{\"addresses\":[\"192.0.2.10:41641\",\"[2001:db8::1]:41641\"],"
     "\"mapped\":\"203.0.113.7:41641\",\"mappingVariesByDestination\":false}"),
  };
  GString *out = g_string_new ("{\"devices\":[{");
  gboolean first = TRUE;

  for (size_t i = 0; i < G_N_ELEMENTS (names); i++)
    {
      const char *v = g_str_equal (names[i], member) ? value : values[i];

      if (v == NULL)
        continue;
      g_string_append_printf (out, "%s\"%s\":%s", first ? "" : ",", names[i], v);
      first = FALSE;
    }
  g_string_append (out, "}]}");
  return g_string_free (out, FALSE);
}

static void
test_parse_devices (void)
{
  static const struct {
    const char *member;
    const char *value;
  } refusals[] = {
    { "id", NULL },
    { "id", "5" },
    { "id", "\"dev_123\"" },
    { "id", "\"DEV_578bae3551f83356d28bc836c105f192\"" },
    { "name", "\"\"" },
    { "name", "\"a\\u0001b\"" },
    { "name", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" }, /* 65 */
    { "name", "null" },
    { "type", "\"Linux Box\"" },
    { "publicKey", "\"" KEY64 "00\"" },
    { "publicKey", "\"8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285\"" },
    { "publicKey", "\"zz40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f\"" },
    { "publicKey", "[1,2]" },
    { "keyType", "true" },
    { "lastSeen", "\"yesterday\"" },
    { "lastSeen", "0" },
    { "online", "\"yes\"" },
    { "online", "1" },
    { "online", NULL },
    { "candidates", "[]" },
    { "candidates", "\"192.0.2.1:1\"" },
    { "candidates", "{}" },
    { "candidates", "{\"addresses\":[\"example.com:1\"]}" },
    { "candidates", "{\"addresses\":[\"192.0.2.1:0\"]}" },
    { "candidates", "{\"addresses\":[\"192.0.2.1:065535\"]}" },
    { "candidates", "{\"addresses\":[\"[fe80::1%eth0]:1\"]}" },
    { "candidates", "{\"addresses\":[\"0.0.0.0:1\"]}" },
    { "candidates", "{\"addresses\":[\"[192.0.2.1]:1\"]}" },
    { "candidates", "{\"addresses\":[\"::1:80\"]}" },
    { "candidates", "{\"addresses\":[5]}" },
    { "candidates", "{\"addresses\":[],\"mapped\":5}" },
    { "candidates", "{\"addresses\":[],\"mapped\":\"x\"}" },
    { "candidates", "{\"addresses\":[],\"mappingVariesByDestination\":\"no\"}" },
    { "candidates", "{\"addresses\":[\"1.1.1.1:1\",\"1.1.1.1:2\",\"1.1.1.1:3\",\"1.1.1.1:4\","
                    "\"1.1.1.1:5\",\"1.1.1.1:6\",\"1.1.1.1:7\",\"1.1.1.1:8\",\"1.1.1.1:9\","
                    "\"1.1.1.1:10\",\"1.1.1.1:11\",\"1.1.1.1:12\",\"1.1.1.1:13\",\"1.1.1.1:14\","
                    "\"1.1.1.1:15\",\"1.1.1.1:16\",\"1.1.1.1:17\"]}" },
  };
  static const char *const whole[] = {
    "",
    "{",
    "[]",
    "null",
    "{\"devices\":{}}",
    "{\"devices\":null}",
    "{\"devices\":[1]}",
    "{\"nodevices\":[]}",
    "{\"devices\":[]} trailing",
    "{\"devices\":[]}{\"devices\":[{\"a\":1}]}", /* json-glib 1.6 would leak the second */
    "1{\"devices\":[]}",
    " \n{\"devices\":[]",
    "\xff\xfe{\"devices\":[]}",
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autofree char    *valid = device_json ("", NULL);
  const PmDeviceInfo *info;

  devices = pm_coord_client_parse_devices (valid, strlen (valid), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, ==, 1);
  info = devices->pdata[0];
  g_assert_cmpstr (info->id, ==, DEV1);
  g_assert_cmpuint (info->public_key[0], ==, 0x8f);
  g_assert_cmpuint (info->public_key[31], ==, 0x5f);
  g_assert_cmpint (g_date_time_to_unix (info->last_seen), ==, 1795567061);
  g_assert_cmpuint (info->addresses->len, ==, 2);
  g_clear_pointer (&devices, g_ptr_array_unref);

  /* Null and absent lastSeen and candidates; unknown members ignored;
   * upper-case hex keys decoded. */
  {
    const char *json = "{\"devices\":[{\"id\":\"" DEV1 "\",\"name\":\"a\",\"type\":\"mac\","
                       "\"publicKey\":\"" KEY64 "\",\"keyType\":\"file\",\"lastSeen\":null,"
                       "\"online\":false,\"candidates\":null,\"future\":[1]},"
                       "{\"id\":\"" DEV2 "\",\"name\":\"b\",\"type\":\"mac\","
                       "\"publicKey\":\"8F40C5ADB68F25624AE5B214EA767A6EC94D829D3D7B5E1AD1BA6F3E2138285F\","
                       "\"keyType\":\"file\",\"online\":false}],\"extra\":1}";

    devices = pm_coord_client_parse_devices (json, strlen (json), &error);
    g_assert_no_error (error);
    g_assert_cmpuint (devices->len, ==, 2);
    info = devices->pdata[1];
    g_assert_null (info->last_seen);
    g_assert_false (info->has_candidates);
    g_assert_cmpuint (info->public_key[0], ==, 0x8f);
    g_clear_pointer (&devices, g_ptr_array_unref);
  }

  for (size_t i = 0; i < G_N_ELEMENTS (refusals); i++)
    {
      g_autofree char *json = device_json (refusals[i].member, refusals[i].value);

      g_test_message ("refused: %s", json);
      devices = pm_coord_client_parse_devices (json, strlen (json), &error);
      g_assert_null (devices);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }
  for (size_t i = 0; i < G_N_ELEMENTS (whole); i++)
    {
      g_autofree char *escaped = g_strescape (whole[i], NULL);

      g_test_message ("refused: %s", escaped);
      devices = pm_coord_client_parse_devices (whole[i], strlen (whole[i]), &error);
      g_assert_null (devices);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }

  /* A NUL inside, deep nesting, duplicate ids, too many devices, too large. */
  {
    const char nul[] = "{\"devices\":[]}\0";
    g_autoptr (GString) deep = g_string_new ("{\"devices\":[],\"x\":");
    g_autoptr (GString) dup = g_string_new ("{\"devices\":[");
    g_autoptr (GString) many = g_string_new ("{\"devices\":[");
    g_autofree char *big = g_malloc (PM_COORD_CLIENT_MAX_RESPONSE_SIZE + 2);
    g_autofree char *one = device_json ("", NULL);
    const char      *device = one + strlen ("{\"devices\":[");
    size_t           device_len = strlen (device) - 2;

    devices = pm_coord_client_parse_devices (nul, sizeof nul - 1, &error);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
    g_clear_error (&error);

    for (int i = 0; i < 100000; i++)
      g_string_append_c (deep, '[');
    devices = pm_coord_client_parse_devices (deep->str, deep->len, &error);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
    g_assert_nonnull (strstr (error->message, "nested"));
    g_clear_error (&error);

    g_string_append_len (dup, device, (gssize) device_len);
    g_string_append_c (dup, ',');
    g_string_append_len (dup, device, (gssize) device_len);
    g_string_append (dup, "]}");
    devices = pm_coord_client_parse_devices (dup->str, dup->len, &error);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
    g_clear_error (&error);

    for (int i = 0; i <= PM_COORD_CLIENT_MAX_DEVICES; i++)
      g_string_append_printf (many, "%s{\"id\":\"dev_%032x\",\"name\":\"n\",\"type\":\"mac\","
                                    "\"publicKey\":\"" KEY64 "\",\"keyType\":\"file\","
                                    "\"online\":false}",
                              i == 0 ? "" : ",", i);
    g_string_append (many, "]}");
    devices = pm_coord_client_parse_devices (many->str, many->len, &error);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
    g_assert_nonnull (strstr (error->message, "1024"));
    g_clear_error (&error);

    memset (big, ' ', PM_COORD_CLIENT_MAX_RESPONSE_SIZE + 1);
    memcpy (big, "{\"devices\":[]}", 14);
    devices = pm_coord_client_parse_devices (big, PM_COORD_CLIENT_MAX_RESPONSE_SIZE + 1, &error);
    g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
    g_clear_error (&error);
    devices = pm_coord_client_parse_devices (big, PM_COORD_CLIENT_MAX_RESPONSE_SIZE, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (devices->len, ==, 0);
  }
}

static void
test_parse_others (void)
{
  static const char *const enrollments_refused[] = {
    "{\"id\":\"" DEV1 "\",\"token\":\"pmdt_x\"}",
    "{\"id\":\"" DEV1 "\",\"token\":\"x\",\"accountId\":\"acc_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}",
    "{\"id\":\"" DEV1 "\",\"token\":\"pmdt_a b\",\"accountId\":\"acc_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}",
    "{\"id\":\"dev_1\",\"token\":\"pmdt_x\",\"accountId\":\"acc_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}",
    "{\"id\":\"" DEV1 "\",\"token\":\"pmdt_x\",\"accountId\":\"dev_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}",
    "{\"id\":\"" DEV1 "\",\"token\":5,\"accountId\":\"acc_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}",
  };
  static const char *const wakes_refused[] = {
    "{}",
    "{\"wake\":null}",
    "{\"wake\":{}}",
    "{\"wake\":{\"from\":1}}",
    "{\"wake\":{\"from\":\"dev_x\"}}",
    "{\"from\":\"" DEV1 "\"}",
  };
  static const char *const sent_refused[] = {
    "{\"longPolls\":-1,\"push\":false}",
    "{\"longPolls\":1.5,\"push\":false}",
    "{\"longPolls\":\"1\",\"push\":false}",
    "{\"longPolls\":1}",
    "{\"longPolls\":1,\"push\":0}",
    "{\"longPolls\":99999999999,\"push\":false}",
  };
  static const struct {
    unsigned           status;
    const char        *retry_after;
    const char        *body;
    PmCoordClientError code;
    unsigned           retry;
  } responses[] = {
    { 400, NULL, "{\"error\":{\"code\":\"invalid_field\",\"message\":\"Bad name\"}}",
      PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT, 0 },
    { 401, NULL, "{\"error\":{\"code\":\"unauthorized\",\"message\":\"x\"}}",
      PM_COORD_CLIENT_ERROR_UNAUTHORIZED, 0 },
    { 403, NULL, "{\"error\":{\"code\":\"invalid_enrollment_key\",\"message\":\"x\"}}",
      PM_COORD_CLIENT_ERROR_INVALID_KEY, 0 },
    { 403, NULL, "{\"error\":{\"code\":\"forbidden\",\"message\":\"x\"}}",
      PM_COORD_CLIENT_ERROR_FORBIDDEN, 0 },
    { 403, NULL, "<html>", PM_COORD_CLIENT_ERROR_FORBIDDEN, 0 },
    { 404, NULL, NULL, PM_COORD_CLIENT_ERROR_NOT_FOUND, 0 },
    { 409, NULL, "{\"error\":5}", PM_COORD_CLIENT_ERROR_CONFLICT, 0 },
    { 429, "5", NULL, PM_COORD_CLIENT_ERROR_RATE_LIMITED, 5 },
    { 429, "0", NULL, PM_COORD_CLIENT_ERROR_RATE_LIMITED, 1 },
    { 429, "999999", NULL, PM_COORD_CLIENT_ERROR_RATE_LIMITED, PM_COORD_CLIENT_MAX_RETRY_AFTER },
    { 429, "Wed, 21 Oct 2015 07:28:00 GMT", NULL, PM_COORD_CLIENT_ERROR_RATE_LIMITED, 1 },
    { 429, NULL, NULL, PM_COORD_CLIENT_ERROR_RATE_LIMITED, 1 },
    { 500, NULL, NULL, PM_COORD_CLIENT_ERROR_SERVER_ERROR, 0 },
    { 503, NULL, "{\"error\":{\"code\":\"store_unavailable\",\"message\":\"retry\"}}",
      PM_COORD_CLIENT_ERROR_SERVER_ERROR, 0 },
    { 302, NULL, NULL, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE, 0 },
    { 418, NULL, NULL, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE, 0 },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (PmEnrollment) enrollment = NULL;
  g_autofree char *from = NULL;
  const char      *good_enrollment = "{\"id\":\"" DEV1 "\",\"token\":\"pmdt_tBdENY-JUFPoIQecAmbZ2bf4h3Qa7Ttf9VsFFOthqnA\","
                                     "\"accountId\":\"acc_fc0cbe1dd63bd12c6f5f00cc8d9d30c4\"}";
  const char      *good_wake = "{\"wake\":{\"from\":\"" DEV2 "\"}}";
  const char      *good_sent = "{\"longPolls\":2,\"push\":false}";
  unsigned         polls = 0;
  gboolean         push = TRUE;

  enrollment = pm_coord_client_parse_enrollment (good_enrollment, strlen (good_enrollment), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (enrollment->device_id, ==, DEV1);
  for (size_t i = 0; i < G_N_ELEMENTS (enrollments_refused); i++)
    {
      g_autoptr (PmEnrollment) refused = NULL;

      refused = pm_coord_client_parse_enrollment (enrollments_refused[i],
                                                  strlen (enrollments_refused[i]), &error);
      g_assert_null (refused);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }

  from = pm_coord_client_parse_wake (good_wake, strlen (good_wake), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (from, ==, DEV2);
  for (size_t i = 0; i < G_N_ELEMENTS (wakes_refused); i++)
    {
      g_autofree char *refused = pm_coord_client_parse_wake (wakes_refused[i],
                                                             strlen (wakes_refused[i]), &error);

      g_assert_null (refused);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }

  g_assert_true (pm_coord_client_parse_wake_sent (good_sent, strlen (good_sent), &polls, &push,
                                                  &error));
  g_assert_cmpuint (polls, ==, 2);
  g_assert_false (push);
  for (size_t i = 0; i < G_N_ELEMENTS (sent_refused); i++)
    {
      polls = 7;
      g_assert_false (pm_coord_client_parse_wake_sent (sent_refused[i], strlen (sent_refused[i]),
                                                       &polls, NULL, &error));
      g_assert_cmpuint (polls, ==, 7);
      g_assert_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE);
      g_clear_error (&error);
    }

  for (size_t i = 0; i < G_N_ELEMENTS (responses); i++)
    {
      const char *body = responses[i].body;
      g_autoptr (GError) e = pm_coord_client_error_from_response (
        responses[i].status, responses[i].retry_after, body, body != NULL ? strlen (body) : 0);

      g_test_message ("HTTP %u %s", responses[i].status, body != NULL ? body : "");
      g_assert_error (e, PM_COORD_CLIENT_ERROR, (int) responses[i].code);
      g_assert_cmpuint (pm_coord_client_error_get_retry_after (e), ==, responses[i].retry);
      /* The copy GTask may make keeps the Retry-After. */
      {
        g_autoptr (GError) copy = g_error_copy (e);

        g_assert_cmpuint (pm_coord_client_error_get_retry_after (copy), ==, responses[i].retry);
      }
    }

  /* The server's message is shown sanitized and bounded. */
  {
    g_autoptr (GString) body = g_string_new ("{\"error\":{\"code\":\"x\",\"message\":\"a\\u0007b");
    g_autoptr (GError) e = NULL;

    for (int i = 0; i < 1000; i++)
      g_string_append (body, "é");
    g_string_append (body, "\"}}");
    e = pm_coord_client_error_from_response (400, NULL, body->str, body->len);
    g_assert_nonnull (strstr (e->message, "a b"));
    g_assert_cmpuint (strlen (e->message), <, 400);
    g_assert_true (g_utf8_validate (e->message, -1, NULL));
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/coord-client/enroll", Fixture, NULL, fixture_setup, test_enroll,
              fixture_teardown);
  g_test_add ("/coord-client/list", Fixture, NULL, fixture_setup, test_list, fixture_teardown);
  g_test_add ("/coord-client/candidates", Fixture, NULL, fixture_setup, test_candidates,
              fixture_teardown);
  g_test_add ("/coord-client/wake", Fixture, NULL, fixture_setup, test_wake, fixture_teardown);
  g_test_add ("/coord-client/revoke", Fixture, NULL, fixture_setup, test_revoke,
              fixture_teardown);
  g_test_add ("/coord-client/cancel", Fixture, NULL, fixture_setup, test_cancel,
              fixture_teardown);
  g_test_add_func ("/coord-client/uri", test_uri);
  g_test_add_func ("/coord-client/not-enrolled-and-network", test_not_enrolled_and_network);
  g_test_add_func ("/coord-client/bad-server", test_bad_server);
  g_test_add_func ("/coord-client/not-http", test_not_http);
  g_test_add_func ("/coord-client/parse/devices", test_parse_devices);
  g_test_add_func ("/coord-client/parse/others", test_parse_others);

  return g_test_run ();
}
