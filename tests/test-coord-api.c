/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The coordination HTTP API end to end: an in-process PmCoordServer on
 * 127.0.0.1 (port 0) over a PmStoreSqlite in a temporary file, driven by a
 * SoupSession. Every refusal checks the status, the error code and that the
 * database did not change. Every wait is bounded.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

#include "pm-test-util.h"
#include "pm-address.h"
#include "pm-coord-server.h"
#include "pm-store-sqlite.h"

#define WAIT_MS      10000
#define WAKE_POLL_MS 300
#define MARKER_LEN   32

typedef struct {
  char            *dir;
  char            *db_path;
  PmStoreSqlite   *store;
  PmRelay         *relay;
  PmCoordServer   *server;
  SoupSession     *session;
  char            *base;
  PmAccountRecord *account_a, *account_b;
  char            *key_a, *key_b;
  /* Enrolled devices: a1, a2 in account A; b1 in account B. */
  char *a1, *a1_token, *a2, *a2_token, *b1, *b1_token;
  /* Set by tests that send a payload marker: the teardown checks the closed
   * database and the whole log for it again. */
  GBytes *marker;
} Fixture;

/* --- Log capture ------------------------------------------------------------ */

/* While not NULL, every log record (debug included) is appended here. */
static GString *captured_log;

static GLogWriterOutput
capture_writer (GLogLevelFlags   level,
                const GLogField *fields,
                gsize            n_fields,
                gpointer         user_data)
{
  if (captured_log != NULL)
    {
      for (gsize i = 0; i < n_fields; i++)
        {
          g_string_append (captured_log, fields[i].key);
          g_string_append_c (captured_log, '=');
          if (fields[i].length < 0)
            g_string_append (captured_log, fields[i].value);
          else
            g_string_append_len (captured_log, fields[i].value, fields[i].length);
          g_string_append_c (captured_log, ' ');
        }
      g_string_append_c (captured_log, '\n');
      /* Debug and info are captured only: the test output stays quiet. */
      if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        return G_LOG_WRITER_HANDLED;
    }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/* Captures every log record, debug included, until capture_stop(). */
static void
capture_start (void)
{
  g_assert_null (captured_log);
  captured_log = g_string_new (NULL);
  g_log_set_debug_enabled (TRUE);
}

static GString *
capture_stop (void)
{
  GString *log = g_steal_pointer (&captured_log);

  g_assert_nonnull (log);
  g_log_set_debug_enabled (FALSE);
  return log;
}

/* --- Bounded waiting --------------------------------------------------------- */

static void
spin_until (PmTestCond cond,
            gpointer   data,
            unsigned   timeout_ms)
{
  g_assert_true (pm_test_spin_until (cond, data, timeout_ms));
}


/* --- HTTP client ------------------------------------------------------------- */

typedef struct {
  SoupMessage *msg;
  GBytes      *body;
  GError      *error;
  gboolean     done;
} Pending;

static void
pending_free (Pending *p)
{
  g_clear_object (&p->msg);
  g_clear_pointer (&p->body, g_bytes_unref);
  g_clear_error (&p->error);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Pending, pending_free)

static void
on_sent (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Pending *p = user_data;

  p->body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &p->error);
  p->done = TRUE;
}

static Pending *
start (Fixture    *f,
       const char *method,
       const char *path,
       const char *token,
       const char *content_type,
       const char *body,
       gssize      len)
{
  g_autofree char *url = g_strconcat (f->base, path, NULL);
  Pending         *p = g_new0 (Pending, 1);

  p->msg = soup_message_new (method, url);
  g_assert_nonnull (p->msg);
  if (token != NULL)
    {
      g_autofree char *value = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (p->msg), "Authorization", value);
    }
  if (body != NULL)
    {
      g_autoptr (GBytes) bytes = g_bytes_new (body, len < 0 ? strlen (body) : (size_t) len);

      soup_message_set_request_body_from_bytes (p->msg, content_type, bytes);
    }
  soup_session_send_and_read_async (f->session, p->msg, G_PRIORITY_DEFAULT, NULL, on_sent, p);
  return p;
}

static void
finish (Pending *p)
{
  spin_until (pm_test_flag_is_set, &p->done, WAIT_MS);
  g_assert_no_error (p->error);
}

static Pending *
request (Fixture    *f,
         const char *method,
         const char *path,
         const char *token,
         const char *body)
{
  Pending *p = start (f, method, path, token, body != NULL ? "application/json" : NULL, body, -1);

  finish (p);
  return p;
}

static unsigned
status_of (Pending *p)
{
  return soup_message_get_status (p->msg);
}

static JsonObject *
json_of (Pending *p)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  size_t              len;
  const char         *data = g_bytes_get_data (p->body, &len);
  JsonNode           *root;
  SoupMessageHeaders *headers = soup_message_get_response_headers (p->msg);

  g_assert_cmpstr (soup_message_headers_get_content_type (headers, NULL), ==, "application/json");
  json_parser_load_from_data (parser, data, (gssize) len, &error);
  g_assert_no_error (error);
  root = json_parser_get_root (parser);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return json_object_ref (json_node_get_object (root));
}

static char *
error_code_of (Pending *p)
{
  g_autoptr (JsonObject) object = json_of (p);
  JsonObject *error = json_object_get_object_member (object, "error");

  g_assert_nonnull (error);
  g_assert_nonnull (json_object_get_string_member (error, "message"));
  return g_strdup (json_object_get_string_member (error, "code"));
}

/* --- Database snapshots ---------------------------------------------------- */

static void
append_devices (Fixture    *f,
                GString    *out,
                const char *account_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;

  devices = pm_store_list_devices (PM_STORE (f->store), account_id, TRUE, &error);

  g_assert_no_error (error);
  for (unsigned i = 0; i < devices->len; i++)
    {
      PmDeviceRecord *d = devices->pdata[i];

      g_string_append_printf (out, "%s|%s|%s|%s|%s|%s|%s|%s|%" G_GINT64_FORMAT "|%" G_GINT64_FORMAT "\n",
                              d->id, d->account_id, d->name, d->type, d->public_key, d->key_type,
                              d->candidates ? d->candidates : "(null)",
                              d->push_endpoint ? d->push_endpoint : "(null)", d->last_seen,
                              d->revoked_at);
    }
}

/* Everything the API could change: counts and every device of both accounts. */
static char *
snapshot (Fixture *f)
{
  GString      *out = g_string_new (NULL);
  PmStoreCounts counts;
  g_autoptr (GError) error = NULL;

  g_assert_true (pm_store_get_counts (PM_STORE (f->store), &counts, &error));
  g_string_append_printf (out, "%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n",
                          counts.accounts, counts.devices, counts.active_devices,
                          counts.enrollment_keys);
  append_devices (f, out, f->account_a->id);
  append_devices (f, out, f->account_b->id);
  return g_string_free (out, FALSE);
}

/* Sends a request that must be refused with @status and @code, and checks
 * that the database is exactly as before. */
static Pending *
refused_full (Fixture    *f,
              const char *method,
              const char *path,
              const char *token,
              const char *content_type,
              const char *body,
              gssize      len,
              unsigned    status,
              const char *code)
{
  g_autofree char *before = snapshot (f);
  g_autofree char *after = NULL;
  g_autofree char *got = NULL;
  Pending         *p = start (f, method, path, token, content_type, body, len);

  finish (p);
  g_assert_cmpuint (status_of (p), ==, status);
  got = error_code_of (p);
  g_assert_cmpstr (got, ==, code);
  after = snapshot (f);
  g_assert_cmpstr (before, ==, after);
  return p;
}

static void
refused (Fixture    *f,
         const char *method,
         const char *path,
         const char *token,
         const char *body,
         unsigned    status,
         const char *code)
{
  pending_free (refused_full (f, method, path, token, body != NULL ? "application/json" : NULL,
                              body, -1, status, code));
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

static char *
enroll_body (const char *key,
             const char *name,
             const char *public_key)
{
  return g_strdup_printf ("{\"enrollmentKey\":\"%s\",\"publicKey\":\"%s\",\"name\":\"%s\","
                          "\"type\":\"linux\",\"keyType\":\"file\"}",
                          key, public_key, name);
}

static void
enroll (Fixture    *f,
        const char *key,
        const char *name,
        char      **out_id,
        char      **out_token)
{
  g_autofree char *public_key = random_public_key ();
  g_autofree char *body = enroll_body (key, name, public_key);
  g_autoptr (Pending) p = request (f, "POST", "/v1/mesh/devices", NULL, body);
  g_autoptr (JsonObject) object = NULL;

  g_assert_cmpuint (status_of (p), ==, 201);
  object = json_of (p);
  *out_id = g_strdup (json_object_get_string_member (object, "id"));
  *out_token = g_strdup (json_object_get_string_member (object, "token"));
  g_assert_true (g_str_has_prefix (*out_id, "dev_"));
  g_assert_true (g_str_has_prefix (*out_token, "pmdt_"));
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  PmCoordLimits limits;
  int64_t       now = pm_store_now ();

  f->dir = g_dir_make_tmp ("pipermesh-coord-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "server.db", NULL);
  f->store = pm_store_sqlite_open (f->db_path, &error);
  g_assert_no_error (error);
  f->account_a = pm_store_create_account (PM_STORE (f->store), "alice", now, &error);
  g_assert_no_error (error);
  f->account_b = pm_store_create_account (PM_STORE (f->store), "bob", now, &error);
  g_assert_no_error (error);
  f->key_a = pm_store_create_enrollment_key (PM_STORE (f->store), f->account_a->id, 3600, TRUE,
                                             now, NULL, &error);
  g_assert_no_error (error);
  f->key_b = pm_store_create_enrollment_key (PM_STORE (f->store), f->account_b->id, 3600, TRUE,
                                             now, NULL, &error);
  g_assert_no_error (error);

  pm_coord_limits_default (&limits);
  limits.wake_timeout_us = WAKE_POLL_MS * 1000;
  f->relay = pm_relay_new (NULL);
  f->server = pm_coord_server_new (PM_STORE (f->store), f->relay, &limits);
  g_assert_true (pm_coord_server_listen (f->server, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pm_coord_server_get_port (f->server), >, 0);
  f->base = pm_coord_server_get_base_uri (f->server);
  g_assert_true (g_str_has_prefix (f->base, "http://127.0.0.1:"));
  f->session = soup_session_new ();

  enroll (f, f->key_a, "laptop", &f->a1, &f->a1_token);
  enroll (f, f->key_a, "phone", &f->a2, &f->a2_token);
  enroll (f, f->key_b, "bobs-box", &f->b1, &f->b1_token);
}

static void assert_no_marker_in_files (Fixture *f);
static void assert_no_marker_in (const char *where,
                                 const void *data,
                                 size_t      len,
                                 GBytes     *marker);

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_clear_object (&f->session);
  g_clear_object (&f->server);
  g_clear_object (&f->relay);
  g_clear_object (&f->store);
  /* Let closed connections and cancelled operations finish. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  if (f->marker != NULL)
    {
      g_autoptr (GString) log = capture_stop ();

      /* Closed now: the last connection checkpointed the WAL into the file. */
      assert_no_marker_in_files (f);
      assert_no_marker_in ("the log", log->str, log->len, f->marker);
      g_clear_pointer (&f->marker, g_bytes_unref);
    }
  g_unlink (f->db_path);
  {
    g_autofree char *wal = g_strconcat (f->db_path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (f->db_path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->db_path);
  g_free (f->base);
  g_clear_pointer (&f->account_a, pm_account_record_free);
  g_clear_pointer (&f->account_b, pm_account_record_free);
  g_free (f->key_a);
  g_free (f->key_b);
  g_free (f->a1);
  g_free (f->a1_token);
  g_free (f->a2);
  g_free (f->a2_token);
  g_free (f->b1);
  g_free (f->b1_token);
}

static char *
device_path (const char *id,
             const char *suffix)
{
  return g_strdup_printf ("/v1/mesh/devices/%s%s", id, suffix);
}

/* --- Tests ------------------------------------------------------------------- */

static void
test_healthz_metrics (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (Pending) health = request (f, "GET", "/healthz", NULL, NULL);
  g_autoptr (JsonObject) object = NULL;
  g_autoptr (Pending) metrics = NULL;
  g_autoptr (Pending) nope = NULL;
  g_autofree char *text = NULL;
  const char      *type;

  g_assert_cmpuint (status_of (health), ==, 200);
  object = json_of (health);
  g_assert_cmpstr (json_object_get_string_member (object, "status"), ==, "ok");

  refused (f, "GET", "/nope", NULL, NULL, 404, "not_found");
  refused (f, "GET", "/v1/mesh/devices", NULL, NULL, 401, "unauthorized");

  metrics = request (f, "GET", "/metrics", NULL, NULL);
  g_assert_cmpuint (status_of (metrics), ==, 200);
  type = soup_message_headers_get_one (soup_message_get_response_headers (metrics->msg), "Content-Type");
  g_assert_true (g_str_has_prefix (type, "text/plain; version=0.0.4"));
  text = g_strndup (g_bytes_get_data (metrics->body, NULL), g_bytes_get_size (metrics->body));
  g_assert_nonnull (strstr (text, "# HELP pipermesh_accounts "));
  g_assert_nonnull (strstr (text, "# TYPE pipermesh_accounts gauge\npipermesh_accounts 2\n"));
  g_assert_nonnull (strstr (text, "# TYPE pipermesh_devices gauge\n"));
  g_assert_nonnull (strstr (text, "pipermesh_devices{state=\"active\"} 3\n"));
  g_assert_nonnull (strstr (text, "pipermesh_devices{state=\"revoked\"} 0\n"));
  g_assert_nonnull (strstr (text, "# TYPE pipermesh_http_requests_total counter\n"));
  g_assert_nonnull (strstr (text, "pipermesh_http_requests_total{route=\"enroll\"} 3\n"));
  g_assert_nonnull (strstr (text, "pipermesh_http_requests_total{route=\"healthz\"} 1\n"));
  g_assert_nonnull (strstr (text, "pipermesh_http_refusals_total{reason=\"not_found\"} 1\n"));
  g_assert_nonnull (strstr (text, "pipermesh_http_refusals_total{reason=\"unauthorized\"} 1\n"));
  g_assert_nonnull (strstr (text, "pipermesh_http_refusals_total{reason=\"body_too_large\"} 0\n"));
  g_assert_nonnull (strstr (text, "pipermesh_wakes_total{channel=\"long_poll\"} 0\n"));
  g_assert_nonnull (strstr (text, "pipermesh_relay_sessions{state=\"active\"} 0\n"));
  g_assert_nonnull (strstr (text, "# TYPE pipermesh_relay_bytes_total counter\n"));

  /* Wrong methods name the right ones. */
  nope = refused_full (f, "DELETE", "/healthz", NULL, NULL, NULL, 0, 405, "method_not_allowed");
  g_assert_cmpstr (soup_message_headers_get_one (soup_message_get_response_headers (nope->msg), "Allow"),
                   ==, "GET");
}

static void
test_enroll (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *public_key = random_public_key ();
  g_autofree char *good = enroll_body (f->key_a, "desktop", public_key);
  g_autofree char *bad_key = enroll_body ("pmek_nope", "desktop", public_key);
  g_autofree char *dup_key = NULL;
  g_autofree char *big = NULL;
  g_autofree char *wrong_type = NULL;
  g_autofree char *missing = NULL;
  g_autofree char *unknown = NULL;
  g_autofree char *bad_device_type = NULL;
  g_autofree char *bad_public_key = NULL;
  g_autoptr (Pending) p = NULL;
  g_autoptr (JsonObject) object = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  GString    *padded;
  const char *path = "/v1/mesh/devices";

  wrong_type = g_strdup_printf ("{\"enrollmentKey\":\"%s\",\"publicKey\":\"%s\",\"name\":5,"
                                "\"type\":\"linux\",\"keyType\":\"file\"}",
                                f->key_a, public_key);
  missing = g_strdup_printf ("{\"enrollmentKey\":\"%s\",\"publicKey\":\"%s\",\"name\":\"x\","
                             "\"type\":\"linux\"}",
                             f->key_a, public_key);
  unknown = g_strdup_printf ("{\"enrollmentKey\":\"%s\",\"publicKey\":\"%s\",\"name\":\"x\","
                             "\"type\":\"linux\",\"keyType\":\"file\",\"admin\":true}",
                             f->key_a, public_key);
  bad_device_type = g_strdup_printf ("{\"enrollmentKey\":\"%s\",\"publicKey\":\"%s\",\"name\":\"x\","
                                     "\"type\":\"toaster\",\"keyType\":\"file\"}",
                                     f->key_a, public_key);
  bad_public_key = enroll_body (f->key_a, "x", "abcd");

  refused (f, "POST", path, NULL, "{\"enrollmentKey\":", 400, "invalid_json");
  refused (f, "POST", path, NULL, "[1,2,3]", 400, "invalid_json");
  refused (f, "POST", path, NULL, "", 400, "invalid_json");
  refused (f, "POST", path, NULL, "{}{}", 400, "invalid_json");
  refused (f, "POST", path, NULL, "{\"name\":\"a\\615b\"}", 400, "invalid_json");
  {
    /* Nested deeper than PM_COORD_MAX_JSON_DEPTH: refused before json-glib sees it. */
    g_autoptr (GString) deep = g_string_new ("{\"a\":");

    for (unsigned i = 0; i < PM_COORD_MAX_JSON_DEPTH; i++)
      g_string_append_c (deep, '[');
    for (unsigned i = 0; i < PM_COORD_MAX_JSON_DEPTH; i++)
      g_string_append_c (deep, ']');
    g_string_append_c (deep, '}');
    refused (f, "POST", path, NULL, deep->str, 400, "invalid_json");
  }
  refused (f, "POST", path, NULL, wrong_type, 400, "invalid_field");
  refused (f, "POST", path, NULL, missing, 400, "missing_field");
  refused (f, "POST", path, NULL, unknown, 400, "invalid_field");
  refused (f, "POST", path, NULL, bad_device_type, 400, "invalid_field");
  refused (f, "POST", path, NULL, bad_public_key, 400, "invalid_field");
  refused (f, "POST", path, NULL, bad_key, 403, "invalid_enrollment_key");
  g_clear_pointer (&p, pending_free);
  p = refused_full (f, "POST", path, NULL, "text/plain", good, -1, 415, "unsupported_media_type");
  g_clear_pointer (&p, pending_free);
  p = refused_full (f, "POST", path, NULL, NULL, NULL, 0, 415, "unsupported_media_type");

  /* Oversized: refused from the Content-Length, before parsing. */
  padded = g_string_new (good);
  g_string_truncate (padded, padded->len - 1);
  g_string_append (padded, ",\"pad\":\"");
  while (padded->len < PM_COORD_MAX_BODY_SIZE + 10)
    g_string_append_c (padded, 'x');
  g_string_append (padded, "\"}");
  big = g_string_free (padded, FALSE);
  g_clear_pointer (&p, pending_free);
  p = refused_full (f, "POST", path, NULL, "application/json", big, -1, 413, "body_too_large");

  refused (f, "PATCH", path, NULL, good, 405, "method_not_allowed");

  /* A body without a Content-Length (chunked) is refused before it is read. */
  {
    g_autofree char *before = snapshot (f);
    g_autofree char *after = NULL;
    g_autofree char *code = NULL;
    g_autofree char *url = g_strconcat (f->base, path, NULL);
    g_autoptr (GInputStream) stream = NULL;
    Pending *chunked = g_new0 (Pending, 1);

    stream = g_memory_input_stream_new_from_data (good, strlen (good), NULL);
    chunked->msg = soup_message_new ("POST", url);
    soup_message_set_request_body (chunked->msg, "application/json", stream, -1);
    soup_session_send_and_read_async (f->session, chunked->msg, G_PRIORITY_DEFAULT, NULL,
                                      on_sent, chunked);
    finish (chunked);
    g_assert_cmpuint (status_of (chunked), ==, 411);
    code = error_code_of (chunked);
    g_assert_cmpstr (code, ==, "length_required");
    pending_free (chunked);
    after = snapshot (f);
    g_assert_cmpstr (before, ==, after);
  }

  /* Success. */
  g_clear_pointer (&p, pending_free);
  p = request (f, "POST", path, NULL, good);
  g_assert_cmpuint (status_of (p), ==, 201);
  object = json_of (p);
  g_assert_cmpstr (json_object_get_string_member (object, "accountId"), ==, f->account_a->id);
  device = pm_store_get_device (PM_STORE (f->store), json_object_get_string_member (object, "id"), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (device->name, ==, "desktop");
  g_assert_cmpstr (device->type, ==, "linux");
  g_assert_cmpstr (device->key_type, ==, "file");
  g_assert_cmpstr (device->public_key, ==, public_key);
  devices = pm_store_list_devices (PM_STORE (f->store), f->account_a->id, FALSE, &error);
  g_assert_cmpuint (devices->len, ==, 3);

  /* The same public key again. */
  dup_key = enroll_body (f->key_a, "another", public_key);
  refused (f, "POST", path, NULL, dup_key, 409, "conflict");
}

static JsonArray *
list_devices (Fixture     *f,
              const char  *token,
              JsonObject **out_root)
{
  g_autoptr (Pending) p = request (f, "GET", "/v1/mesh/devices", token, NULL);

  g_assert_cmpuint (status_of (p), ==, 200);
  *out_root = json_of (p);
  return json_object_get_array_member (*out_root, "devices");
}

static JsonObject *
find_device (JsonArray  *devices,
             const char *id)
{
  for (unsigned i = 0; i < json_array_get_length (devices); i++)
    {
      JsonObject *d = json_array_get_object_element (devices, i);

      if (g_strcmp0 (json_object_get_string_member (d, "id"), id) == 0)
        return d;
    }
  return NULL;
}

static void
test_list (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (JsonObject) root = NULL;
  g_autoptr (JsonObject) root_b = NULL;
  g_autoptr (PmDeviceRecord) a1 = NULL;
  g_autoptr (GError) error = NULL;
  JsonArray  *devices;
  JsonObject *d;

  refused (f, "GET", "/v1/mesh/devices", NULL, NULL, 401, "unauthorized");
  {
    g_autoptr (Pending) p = refused_full (f, "GET", "/v1/mesh/devices", "pmdt_wrong", NULL, NULL, 0,
                                          401, "unauthorized");
    SoupMessageHeaders *headers = soup_message_get_response_headers (p->msg);

    g_assert_true (g_str_has_prefix (soup_message_headers_get_one (headers, "WWW-Authenticate"),
                                     "Bearer"));
  }
  refused (f, "GET", "/v1/mesh/devices", "not a token at all", NULL, 401, "unauthorized");

  devices = list_devices (f, f->a1_token, &root);
  g_assert_cmpuint (json_array_get_length (devices), ==, 2);
  g_assert_null (find_device (devices, f->b1));
  d = find_device (devices, f->a1);
  g_assert_nonnull (d);
  g_assert_cmpstr (json_object_get_string_member (d, "name"), ==, "laptop");
  g_assert_cmpstr (json_object_get_string_member (d, "type"), ==, "linux");
  g_assert_cmpstr (json_object_get_string_member (d, "keyType"), ==, "file");
  g_assert_cmpuint (strlen (json_object_get_string_member (d, "publicKey")), ==, 64);
  g_assert_true (json_object_has_member (d, "candidates"));
  g_assert_true (json_object_get_null_member (d, "candidates"));
  /* a2 has not called anything but enrollment: never seen, offline. */
  d = find_device (devices, f->a2);
  g_assert_true (json_object_get_null_member (d, "lastSeen"));
  g_assert_false (json_object_get_boolean_member (d, "online"));

  /* The list call itself marked a1 seen. */
  a1 = pm_store_get_device (PM_STORE (f->store), f->a1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (a1->last_seen, >, 0);
  g_clear_pointer (&root, json_object_unref);
  devices = list_devices (f, f->a1_token, &root);
  d = find_device (devices, f->a1);
  g_assert_true (json_object_get_boolean_member (d, "online"));
  g_assert_true (g_str_has_suffix (json_object_get_string_member (d, "lastSeen"), "Z"));
  g_assert_cmpuint (strlen (json_object_get_string_member (d, "lastSeen")), ==, 20);

  devices = list_devices (f, f->b1_token, &root_b);
  g_assert_cmpuint (json_array_get_length (devices), ==, 1);
  g_assert_nonnull (find_device (devices, f->b1));
}

static void
test_candidates (Fixture      *f,
                 gconstpointer data)
{
  g_autofree char *own = device_path (f->a1, "/candidates");
  g_autofree char *sibling = device_path (f->a2, "/candidates");
  g_autofree char *foreign = device_path (f->b1, "/candidates");
  g_autoptr (Pending) p = NULL;
  g_autoptr (JsonObject) object = NULL;
  g_autoptr (JsonObject) root = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) many = g_string_new ("{\"addresses\":[");
  JsonArray  *devices;
  JsonObject *candidates;

  p = request (f, "PUT", own, f->a1_token,
               "{\"addresses\":[\"192.0.2.10:41641\",\"[2001:DB8::1]:41641\"],"
               "\"mapped\":\"203.0.113.7:41641\",\"mappingVariesByDestination\":false}");
  g_assert_cmpuint (status_of (p), ==, 200);
  object = json_of (p);
  g_assert_cmpstr (json_object_get_string_member (object, "mapped"), ==, "203.0.113.7:41641");

  device = pm_store_get_device (PM_STORE (f->store), f->a1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (device->candidates, ==,
                   "{\"addresses\":[\"192.0.2.10:41641\",\"[2001:db8::1]:41641\"],"
                   "\"mapped\":\"203.0.113.7:41641\",\"mappingVariesByDestination\":false}");

  /* Visible to the account's other device. */
  devices = list_devices (f, f->a2_token, &root);
  candidates = json_object_get_object_member (find_device (devices, f->a1), "candidates");
  g_assert_nonnull (candidates);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (candidates, "addresses")), ==, 2);
  g_assert_false (json_object_get_boolean_member (candidates, "mappingVariesByDestination"));

  /* Listings share parsed candidates: a new list shows up at once, and the
   * same list again (now parsed already) reads the same. */
  g_clear_pointer (&p, pending_free);
  p = request (f, "PUT", own, f->a1_token,
               "{\"addresses\":[\"192.0.2.11:41641\"],\"mappingVariesByDestination\":true}");
  g_assert_cmpuint (status_of (p), ==, 200);
  for (int i = 0; i < 2; i++)
    {
      g_clear_pointer (&root, json_object_unref);
      devices = list_devices (f, f->a2_token, &root);
      candidates = json_object_get_object_member (find_device (devices, f->a1), "candidates");
      g_assert_nonnull (candidates);
      g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (candidates, "addresses"), 0),
                       ==, "192.0.2.11:41641");
      g_assert_cmpuint (json_array_get_length (json_object_get_array_member (candidates, "addresses")), ==, 1);
      g_assert_true (json_object_get_boolean_member (candidates, "mappingVariesByDestination"));
      g_assert_true (json_object_get_null_member (candidates, "mapped"));
    }
  g_clear_pointer (&p, pending_free);
  p = request (f, "PUT", own, f->a1_token,
               "{\"addresses\":[\"192.0.2.10:41641\",\"[2001:DB8::1]:41641\"],"
               "\"mapped\":\"203.0.113.7:41641\",\"mappingVariesByDestination\":false}");
  g_assert_cmpuint (status_of (p), ==, 200);
  g_clear_pointer (&device, pm_device_record_free);
  device = pm_store_get_device (PM_STORE (f->store), f->a1, &error);
  g_assert_no_error (error);

  /* Refusals: the stored JSON (part of the snapshot) stays as it was. */
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[", 400, "invalid_json");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":\"192.0.2.1:1\"}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[42]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"example.com:1\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"192.0.2.1\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"192.0.2.1:0\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"192.0.2.1:65536\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"[192.0.2.1]:5\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"2001:db8::1:5\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[\"0.0.0.0:5\"]}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[],\"mapped\":7}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[],\"mappingVariesByDestination\":\"no\"}",
           400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"addresses\":[],\"extra\":1}", 400, "invalid_field");
  refused (f, "PUT", own, f->a1_token, "{\"mapped\":null}", 400, "missing_field");
  for (int i = 0; i < 17; i++)
    g_string_append_printf (many, "%s\"192.0.2.%d:41641\"", i > 0 ? "," : "", i + 1);
  g_string_append (many, "]}");
  refused (f, "PUT", own, f->a1_token, many->str, 400, "invalid_field");
  refused (f, "PUT", own, NULL, "{\"addresses\":[]}", 401, "unauthorized");
  refused (f, "PUT", own, "pmdt_wrong", "{\"addresses\":[]}", 401, "unauthorized");
  refused (f, "PUT", sibling, f->a1_token, "{\"addresses\":[]}", 403, "forbidden");
  refused (f, "PUT", foreign, f->a1_token, "{\"addresses\":[]}", 404, "not_found");
  refused (f, "POST", own, f->a1_token, "{\"addresses\":[]}", 405, "method_not_allowed");
  g_clear_pointer (&p, pending_free);
  p = refused_full (f, "PUT", own, f->a1_token, "application/x-www-form-urlencoded", "a=b", -1,
                    415, "unsupported_media_type");

  /* 16 addresses and the optional fields left out. */
  g_clear_pointer (&p, pending_free);
  g_string_assign (many, "{\"addresses\":[");
  for (int i = 0; i < 16; i++)
    g_string_append_printf (many, "%s\"192.0.2.%d:41641\"", i > 0 ? "," : "", i + 1);
  g_string_append (many, "]}");
  p = request (f, "PUT", own, f->a1_token, many->str);
  g_assert_cmpuint (status_of (p), ==, 200);
  g_clear_pointer (&object, json_object_unref);
  object = json_of (p);
  g_assert_true (json_object_get_null_member (object, "mapped"));
  g_assert_false (json_object_get_boolean_member (object, "mappingVariesByDestination"));
}

typedef struct {
  SoupServer *server;
  char       *body;
  char       *path;
  gboolean    got;
} PushService;

static void
on_push (SoupServer        *server,
         SoupServerMessage *msg,
         const char        *path,
         GHashTable        *query,
         gpointer           user_data)
{
  PushService     *push = user_data;
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);

  g_assert_cmpstr (soup_server_message_get_method (msg), ==, "POST");
  push->body = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  push->path = g_strdup (path);
  push->got = TRUE;
  soup_server_message_set_status (msg, 201, NULL);
}

static void
test_wake (Fixture      *f,
           gconstpointer data)
{
  g_autofree char *push_a2 = device_path (f->a2, "/push");
  g_autofree char *push_b1 = device_path (f->b1, "/push");
  g_autofree char *wake_a2 = device_path (f->a2, "/wake");
  g_autofree char *wake_a1 = device_path (f->a1, "/wake");
  g_autofree char *wake_b1 = device_path (f->b1, "/wake");
  g_autofree char *endpoint = NULL;
  g_autofree char *endpoint_body = NULL;
  g_autofree char *expected = NULL;
  g_autoptr (Pending) poll = NULL;
  g_autoptr (Pending) p = NULL;
  g_autoptr (JsonObject) object = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (GSList) uris = NULL;
  PushService push = { 0 };
  JsonObject *wake;
  const char *retry;

  push.server = soup_server_new (NULL, NULL);
  soup_server_add_handler (push.server, "/up", on_push, &push, NULL);
  g_assert_true (soup_server_listen_local (push.server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  uris = soup_server_get_uris (push.server);
  endpoint = g_strdup_printf ("http://127.0.0.1:%d/up/abc123", g_uri_get_port (uris->data));
  g_slist_free_full (g_steal_pointer (&uris), (GDestroyNotify) g_uri_unref);
  endpoint_body = g_strdup_printf ("{\"endpoint\":\"%s\"}", endpoint);

  /* Push endpoint registration and its refusals. */
  refused (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":\"ftp://example.com/x\"}", 400, "invalid_field");
  refused (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":\"http://example.com/x\"}", 400, "invalid_field");
  refused (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":\"http://192.0.2.1/x\"}", 400, "invalid_field");
  refused (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":\"not a url\"}", 400, "invalid_field");
  refused (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":5}", 400, "invalid_field");
  refused (f, "PUT", push_a2, f->a2_token, "{}", 400, "missing_field");
  refused (f, "PUT", push_a2, f->a1_token, endpoint_body, 403, "forbidden");
  refused (f, "PUT", push_b1, f->a2_token, endpoint_body, 404, "not_found");
  refused (f, "PUT", push_a2, NULL, endpoint_body, 401, "unauthorized");
  p = request (f, "PUT", push_a2, f->a2_token, "{\"endpoint\":\"https://push.example.net/up/x\"}");
  g_assert_cmpuint (status_of (p), ==, 200);
  g_clear_pointer (&p, pending_free);
  p = request (f, "PUT", push_a2, f->a2_token, endpoint_body);
  g_assert_cmpuint (status_of (p), ==, 200);
  device = pm_store_get_device (PM_STORE (f->store), f->a2, &error);
  g_assert_cmpstr (device->push_endpoint, ==, endpoint);

  /* a2 holds a long-poll; a1 wakes it. */
  poll = start (f, "GET", "/v1/mesh/wake", f->a2_token, NULL, NULL, 0);
  while (pm_coord_server_get_wake_polls (f->server, f->a2) == 0)
    {
      g_assert_false (poll->done);
      g_main_context_iteration (NULL, TRUE);
    }
  /* Holding the wake channel counts as online. */
  {
    g_autoptr (JsonObject) root = NULL;
    JsonArray *devices = list_devices (f, f->a1_token, &root);

    g_assert_true (json_object_get_boolean_member (find_device (devices, f->a2), "online"));
  }

  refused (f, "POST", wake_a1, f->a1_token, NULL, 400, "self_target");
  refused (f, "POST", wake_b1, f->a1_token, NULL, 404, "not_found");
  refused (f, "POST", "/v1/mesh/devices/dev_0123/wake", f->a1_token, NULL, 404, "not_found");
  refused (f, "POST", wake_a2, NULL, NULL, 401, "unauthorized");
  refused (f, "GET", wake_a2, f->a1_token, NULL, 405, "method_not_allowed");
  g_assert_false (poll->done);

  g_clear_pointer (&p, pending_free);
  p = request (f, "POST", wake_a2, f->a1_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 202);
  object = json_of (p);
  g_assert_cmpint (json_object_get_int_member (object, "longPolls"), ==, 1);
  g_assert_true (json_object_get_boolean_member (object, "push"));

  finish (poll);
  g_assert_cmpuint (status_of (poll), ==, 200);
  g_clear_pointer (&object, json_object_unref);
  object = json_of (poll);
  wake = json_object_get_object_member (object, "wake");
  g_assert_cmpstr (json_object_get_string_member (wake, "from"), ==, f->a1);

  spin_until (pm_test_flag_is_set, &push.got, WAIT_MS);
  g_assert_cmpstr (push.path, ==, "/up/abc123");
  expected = g_strdup_printf ("{\"type\":\"wake\",\"from\":\"%s\"}", f->a1);
  g_assert_cmpstr (push.body, ==, expected);

  /* Rate limit per target device. */
  g_clear_pointer (&p, pending_free);
  p = refused_full (f, "POST", wake_a2, f->a1_token, NULL, NULL, 0, 429, "rate_limited");
  retry = soup_message_headers_get_one (soup_message_get_response_headers (p->msg), "Retry-After");
  g_assert_nonnull (retry);
  g_assert_cmpint (atoi (retry), >=, 1);
  g_assert_cmpint (atoi (retry), <=, 5);

  /* The other direction is a different target: not limited. */
  g_clear_pointer (&p, pending_free);
  p = request (f, "POST", wake_a1, f->a2_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 202);

  {
    g_autoptr (Pending) metrics = request (f, "GET", "/metrics", NULL, NULL);
    g_autofree char *text = g_strndup (g_bytes_get_data (metrics->body, NULL),
                                       g_bytes_get_size (metrics->body));

    g_assert_nonnull (strstr (text, "pipermesh_wakes_total{channel=\"long_poll\"} 1\n"));
    g_assert_nonnull (strstr (text, "pipermesh_wakes_total{channel=\"push\"} 1\n"));
    g_assert_nonnull (strstr (text, "pipermesh_http_refusals_total{reason=\"rate_limited\"} 1\n"));
    g_assert_nonnull (strstr (text, "pipermesh_push_deliveries_total{result=\"ok\"} 1\n"));
  }

  soup_server_disconnect (push.server);
  g_object_unref (push.server);
  g_free (push.body);
  g_free (push.path);
}

static void
test_wake_timeout (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (Pending) poll = NULL;
  gint64 started = g_get_monotonic_time ();

  refused (f, "GET", "/v1/mesh/wake", NULL, NULL, 401, "unauthorized");
  poll = start (f, "GET", "/v1/mesh/wake", f->a1_token, NULL, NULL, 0);
  finish (poll);
  g_assert_cmpuint (status_of (poll), ==, 204);
  g_assert_cmpint (g_get_monotonic_time () - started, >=, (WAKE_POLL_MS - 50) * 1000);
  g_assert_cmpuint (pm_coord_server_get_wake_polls (f->server, f->a1), ==, 0);

  /* A poll still held when the server goes away ends (its connection is
   * closed) and nothing leaks. */
  g_clear_pointer (&poll, pending_free);
  poll = start (f, "GET", "/v1/mesh/wake", f->a1_token, NULL, NULL, 0);
  while (pm_coord_server_get_wake_polls (f->server, f->a1) == 0)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&f->server);
  spin_until (pm_test_flag_is_set, &poll->done, WAIT_MS);
  g_assert_true (poll->error != NULL || status_of (poll) == 500);
}

static void
test_revoke (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *a2 = device_path (f->a2, "");
  g_autofree char *a1 = device_path (f->a1, "");
  g_autofree char *b1 = device_path (f->b1, "");
  g_autoptr (Pending) poll = NULL;
  g_autoptr (Pending) p = NULL;
  g_autoptr (JsonObject) root = NULL;
  g_autofree char *code = NULL;
  JsonArray       *devices;

  refused (f, "DELETE", b1, f->a1_token, NULL, 404, "not_found");
  refused (f, "DELETE", "/v1/mesh/devices/dev_nope", f->a1_token, NULL, 404, "not_found");
  refused (f, "DELETE", a2, NULL, NULL, 401, "unauthorized");
  refused (f, "PUT", a2, f->a1_token, "{}", 405, "method_not_allowed");

  poll = start (f, "GET", "/v1/mesh/wake", f->a2_token, NULL, NULL, 0);
  while (pm_coord_server_get_wake_polls (f->server, f->a2) == 0)
    g_main_context_iteration (NULL, TRUE);

  p = request (f, "DELETE", a2, f->a1_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 204);

  /* Its held long-poll ends and its token stops working at once. */
  finish (poll);
  g_assert_cmpuint (status_of (poll), ==, 401);
  code = error_code_of (poll);
  g_assert_cmpstr (code, ==, "unauthorized");
  refused (f, "GET", "/v1/mesh/devices", f->a2_token, NULL, 401, "unauthorized");
  refused (f, "DELETE", a2, f->a1_token, NULL, 404, "not_found");

  devices = list_devices (f, f->a1_token, &root);
  g_assert_cmpuint (json_array_get_length (devices), ==, 1);

  /* A device may revoke itself. */
  g_clear_pointer (&p, pending_free);
  p = request (f, "DELETE", a1, f->a1_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 204);
  refused (f, "GET", "/v1/mesh/devices", f->a1_token, NULL, 401, "unauthorized");
}

/* --- Relay route ------------------------------------------------------------- */

typedef struct {
  SoupWebsocketConnection *ws;
  GError                  *error;
  SoupMessage             *msg;
  gboolean                 done;
  GBytes                  *received;
  gboolean                 closed;
} WsClient;

static void
on_ws_message (SoupWebsocketConnection *ws,
               int                      type,
               GBytes                  *message,
               gpointer                 user_data)
{
  WsClient *c = user_data;

  g_clear_pointer (&c->received, g_bytes_unref);
  c->received = g_bytes_ref (message);
}

static void
on_ws_closed (SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  ((WsClient *) user_data)->closed = TRUE;
}

static void
on_ws_connected (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  WsClient *c = user_data;

  c->ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &c->error);
  c->done = TRUE;
  if (c->ws != NULL)
    {
      g_signal_connect (c->ws, "message", G_CALLBACK (on_ws_message), c);
      g_signal_connect (c->ws, "closed", G_CALLBACK (on_ws_closed), c);
    }
}

static WsClient *
ws_connect (Fixture    *f,
            const char *token,
            const char *peer)
{
  g_autofree char *url = g_strdup_printf ("%s/v1/mesh/relay/%s/stream", f->base, peer);
  WsClient        *c = g_new0 (WsClient, 1);

  c->msg = soup_message_new ("GET", url);
  if (token != NULL)
    {
      g_autofree char *value = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (c->msg), "Authorization", value);
    }
  soup_session_websocket_connect_async (f->session, c->msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        on_ws_connected, c);
  spin_until (pm_test_flag_is_set, &c->done, WAIT_MS);
  return c;
}

static void
ws_free (WsClient *c)
{
  if (c->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (c->ws, c);
      if (soup_websocket_connection_get_state (c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (c->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
    }
  g_clear_object (&c->ws);
  g_clear_object (&c->msg);
  g_clear_error (&c->error);
  g_clear_pointer (&c->received, g_bytes_unref);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WsClient, ws_free)

static gboolean
ws_has_message (gpointer data)
{
  return ((WsClient *) data)->received != NULL;
}

static gboolean
ws_is_closed (gpointer data)
{
  return ((WsClient *) data)->closed;
}

/* Every route's generic refusals, each leaving the database as it was. */
static void
test_refusal_matrix (Fixture      *f,
                     gconstpointer data)
{
  g_autofree char *a3 = NULL;
  g_autofree char *a3_token = NULL;
  g_autofree char *a3_path = NULL;
  g_autofree char *big = NULL;
  g_autoptr (Pending) p = NULL;
  GString *padded = g_string_new ("{\"addresses\":[],\"pad\":\"");
  struct {
    const char *method;
    char       *path;
    gboolean    body;
    const char *allow;
  } routes[] = {
    { "GET", g_strdup ("/v1/mesh/devices"), FALSE, "POST, GET" },
    { "DELETE", device_path (f->a2, ""), FALSE, "DELETE" },
    { "PUT", device_path (f->a1, "/candidates"), TRUE, "PUT" },
    { "PUT", device_path (f->a1, "/push"), TRUE, "PUT" },
    { "POST", device_path (f->a2, "/wake"), FALSE, "POST" },
    { "GET", g_strdup ("/v1/mesh/wake"), FALSE, "GET" },
    { "GET", g_strdup_printf ("/v1/mesh/relay/%s/stream", f->a2), FALSE, "GET" },
  };

  /* A revoked device of the same account. */
  enroll (f, f->key_a, "old", &a3, &a3_token);
  a3_path = device_path (a3, "");
  p = request (f, "DELETE", a3_path, f->a1_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 204);

  while (padded->len < PM_COORD_MAX_BODY_SIZE + 1)
    g_string_append_c (padded, 'x');
  g_string_append (padded, "\"}");
  big = g_string_free (padded, FALSE);

  for (size_t i = 0; i < G_N_ELEMENTS (routes); i++)
    {
      const char *method = routes[i].method;
      const char *path = routes[i].path;
      const char *body = routes[i].body ? "{\"addresses\":[]}" : NULL;
      const char *wrong = g_str_equal (method, "PATCH") ? "GET" : "PATCH";

      g_test_message ("%s %s", method, path);
      refused (f, method, path, NULL, body, 401, "unauthorized");
      refused (f, method, path, "pmdt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", body, 401,
               "unauthorized");
      refused (f, method, path, "Basic dXNlcjpwYXNz", body, 401, "unauthorized");
      refused (f, method, path, a3_token, body, 401, "unauthorized");
      g_clear_pointer (&p, pending_free);
      p = refused_full (f, wrong, path, f->a1_token, NULL, NULL, 0, 405, "method_not_allowed");
      g_assert_cmpstr (soup_message_headers_get_one (soup_message_get_response_headers (p->msg), "Allow"),
                       ==, routes[i].allow);
      g_clear_pointer (&p, pending_free);
      p = refused_full (f, method, path, f->a1_token, "application/json", big, -1, 413,
                        "body_too_large");
      if (routes[i].body)
        {
          refused (f, method, path, f->a1_token, "{", 400, "invalid_json");
          refused (f, method, path, f->a1_token, "\"text\"", 400, "invalid_json");
          refused (f, method, path, f->a1_token, "{\"addresses\":[],\"endpoint\":true,\"x\":1}",
                   400, "invalid_field");
          g_clear_pointer (&p, pending_free);
          p = refused_full (f, method, path, f->a1_token, "application/json", "{\"a\":\"\xff\"}", -1,
                            400, "invalid_json");
        }
      g_free (routes[i].path);
    }
}

/* --- Payload markers ------------------------------------------------------------ */

/* The forms in which a payload could end up in a file or a log line: the raw
 * bytes, hex (both cases) and base64 (standard and URL-safe, without the
 * padding so that padded and unpadded forms both match). */
static GPtrArray *
marker_forms (GBytes *marker)
{
  size_t           len;
  const uint8_t   *data = g_bytes_get_data (marker, &len);
  GPtrArray       *forms = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GString         *lower = g_string_new (NULL);
  g_autofree char *upper = NULL;
  g_autofree char *base64 = g_base64_encode (data, len);
  g_autofree char *base64url = NULL;

  for (size_t i = 0; i < len; i++)
    g_string_append_printf (lower, "%02x", data[i]);
  upper = g_ascii_strup (lower->str, -1);
  g_strdelimit (base64, "=", '\0');
  base64url = g_strdup (base64);
  g_strdelimit (base64url, "+", '-');
  g_strdelimit (base64url, "/", '_');

  g_ptr_array_add (forms, g_bytes_ref (marker));
  g_ptr_array_add (forms, g_bytes_new (lower->str, lower->len));
  g_ptr_array_add (forms, g_bytes_new (upper, strlen (upper)));
  g_ptr_array_add (forms, g_bytes_new (base64, strlen (base64)));
  g_ptr_array_add (forms, g_bytes_new (base64url, strlen (base64url)));
  g_string_free (lower, TRUE);
  return forms;
}

/* memmem() without _GNU_SOURCE. */
static gboolean
contains_bytes (const void *haystack,
                size_t      len,
                const void *needle,
                size_t      needle_len)
{
  const uint8_t *h = haystack;

  for (size_t i = 0; needle_len <= len && i <= len - needle_len; i++)
    if (memcmp (h + i, needle, needle_len) == 0)
      return TRUE;
  return FALSE;
}

static void
assert_no_marker_in (const char *where,
                     const void *data,
                     size_t      len,
                     GBytes     *marker)
{
  g_autoptr (GPtrArray) forms = marker_forms (marker);
  static const char *const names[] = { "raw", "hex", "HEX", "base64", "base64url" };

  g_assert_cmpuint (forms->len, ==, G_N_ELEMENTS (names));
  for (unsigned i = 0; i < forms->len; i++)
    {
      size_t      form_len;
      const void *form = g_bytes_get_data (forms->pdata[i], &form_len);

      if (contains_bytes (data, len, form, form_len))
        g_error ("The payload marker (%s) is in %s", names[i], where);
    }
}

/* Reads the database file and its -wal and -shm files (when they exist) as
 * bytes; none may hold the marker. */
static void
assert_no_marker_in_files (Fixture *f)
{
  static const char *const suffixes[] = { "", "-wal", "-shm" };

  for (size_t i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (f->db_path, suffixes[i], NULL);
      g_autofree char *contents = NULL;
      size_t           len = 0;
      g_autoptr (GError) error = NULL;

      if (!g_file_get_contents (path, &contents, &len, &error))
        {
          /* Only -wal and -shm may be missing (the last close removes them). */
          g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
          g_assert_cmpstr (suffixes[i], !=, "");
          continue;
        }
      g_test_message ("%s: %zu bytes, no marker", path, len);
      assert_no_marker_in (path, contents, len, f->marker);
    }
}

static GBytes *
random_marker (void)
{
  uint8_t data[MARKER_LEN];

  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t) g_random_int_range (0, 256);
  return g_bytes_new (data, sizeof data);
}

static void
test_relay (Fixture      *f,
            gconstpointer data)
{
  g_autofree char *before = snapshot (f);
  g_autofree char *after = NULL;
  g_autofree char *a2_path = device_path (f->a2, "");
  g_autoptr (WsClient) no_token = ws_connect (f, NULL, f->a2);
  g_autoptr (WsClient) bad_token = ws_connect (f, "pmdt_wrong", f->a2);
  g_autoptr (WsClient) foreign = ws_connect (f, f->a1_token, f->b1);
  g_autoptr (WsClient) self = ws_connect (f, f->a1_token, f->a1);
  g_autoptr (WsClient) c1 = NULL;
  g_autoptr (WsClient) c2 = NULL;
  g_autoptr (GBytes) payload = g_bytes_new_static ("\x01\x02\x03ciphertext", 13);
  g_autoptr (Pending) p = NULL;

  /* Every log record from here to the teardown is kept (debug included) and
   * searched for the payload marker. */
  capture_start ();
  f->marker = random_marker ();

  /* Refused before the upgrade, with the API's status codes. */
  g_assert_null (no_token->ws);
  g_assert_cmpuint (soup_message_get_status (no_token->msg), ==, 401);
  g_assert_null (bad_token->ws);
  g_assert_cmpuint (soup_message_get_status (bad_token->msg), ==, 401);
  g_assert_null (foreign->ws);
  g_assert_cmpuint (soup_message_get_status (foreign->msg), ==, 404);
  g_assert_null (self->ws);
  g_assert_cmpuint (soup_message_get_status (self->msg), ==, 400);
  refused (f, "GET", "/v1/mesh/relay/dev_x/stream", f->a1_token, NULL, 404, "not_found");
  after = snapshot (f);
  g_assert_cmpstr (before, ==, after);

  /* A plain GET (no handshake) is refused too. */
  {
    g_autofree char *path = g_strdup_printf ("/v1/mesh/relay/%s/stream", f->a2);
    g_autoptr (Pending) plain = request (f, "GET", path, f->a1_token, NULL);

    g_assert_cmpuint (status_of (plain), ==, 400);
  }

  /* Two live devices of one account are paired. */
  c1 = ws_connect (f, f->a1_token, f->a2);
  g_assert_no_error (c1->error);
  c2 = ws_connect (f, f->a2_token, f->a1);
  g_assert_no_error (c2->error);
  soup_websocket_connection_send_message (c1->ws, SOUP_WEBSOCKET_DATA_BINARY, payload);
  spin_until (ws_has_message, c2, WAIT_MS);
  g_assert_true (g_bytes_equal (c2->received, payload));

  /* The marker, both ways. */
  g_clear_pointer (&c2->received, g_bytes_unref);
  soup_websocket_connection_send_message (c1->ws, SOUP_WEBSOCKET_DATA_BINARY, f->marker);
  spin_until (ws_has_message, c2, WAIT_MS);
  g_assert_true (g_bytes_equal (c2->received, f->marker));
  soup_websocket_connection_send_message (c2->ws, SOUP_WEBSOCKET_DATA_BINARY, f->marker);
  spin_until (ws_has_message, c1, WAIT_MS);
  g_assert_true (g_bytes_equal (c1->received, f->marker));

  /* Revoking a2 closes its pipes. */
  p = request (f, "DELETE", a2_path, f->a1_token, NULL);
  g_assert_cmpuint (status_of (p), ==, 204);
  spin_until (ws_is_closed, c1, WAIT_MS);
  spin_until (ws_is_closed, c2, WAIT_MS);

  /* The relay never stored or logged the payload: not in the database, its
   * WAL or its shared-memory index (the store is still open), nor in any log
   * record so far. The teardown looks again once everything is closed. */
  assert_no_marker_in_files (f);
  g_assert_nonnull (captured_log);
  assert_no_marker_in ("the log", captured_log->str, captured_log->len, f->marker);
  /* The capture did see the relay and the API at work (debug included). */
  g_assert_nonnull (strstr (captured_log->str, "GLIB_DOMAIN=pipermesh-"));
}

static void
test_relay_not_configured (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("pipermesh-coord-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "server.db", NULL);
  g_autoptr (PmStoreSqlite) store = pm_store_sqlite_open (path, &error);
  g_autoptr (PmCoordServer) server = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autofree char *key = NULL;
  g_autofree char *token = NULL;
  g_autofree char *base = NULL;
  g_autofree char *url = NULL;
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = NULL;
  Pending p = { 0 };

  g_assert_no_error (error);
  account = pm_store_create_account (PM_STORE (store), "carol", pm_store_now (), &error);
  key = pm_store_create_enrollment_key (PM_STORE (store), account->id, 0, FALSE, pm_store_now (),
                                        NULL, &error);
  device = pm_store_enroll_device (PM_STORE (store), key, "box", "linux",
                                   "0000000000000000000000000000000000000000000000000000000000000001",
                                   "file", pm_store_now (), &token, &error);
  g_assert_no_error (error);

  server = pm_coord_server_new (PM_STORE (store), NULL, NULL);
  g_assert_true (pm_coord_server_listen (server, "127.0.0.1:0", NULL, &error));
  base = pm_coord_server_get_base_uri (server);
  url = g_strdup_printf ("%s/v1/mesh/relay/dev_00000000000000000000000000000000/stream", base);
  msg = soup_message_new ("GET", url);
  {
    g_autofree char *value = g_strconcat ("Bearer ", token, NULL);

    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", value);
  }
  p.msg = g_object_ref (msg);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, on_sent, &p);
  spin_until (pm_test_flag_is_set, &p.done, WAIT_MS);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 503);
  g_clear_object (&p.msg);
  g_clear_pointer (&p.body, g_bytes_unref);
  g_clear_error (&p.error);

  g_clear_object (&session);
  g_clear_object (&server);
  g_clear_object (&store);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_unlink (path);
  {
    g_autofree char *wal = g_strconcat (path, "-wal", NULL);
    g_autofree char *shm = g_strconcat (path, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (dir);
}

static void
test_listen (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStoreSqlite) store = pm_store_sqlite_open (":memory:", &error);
  g_autoptr (PmCoordServer) server = NULL;
  static const char *const good[] = { "192.0.2.1:1", "[2001:db8::1]:65535", "[::1]:80", NULL };
  static const char *const bad[] = {
    "192.0.2.1", "192.0.2.1:", "192.0.2.1:x", "192.0.2.1:65536", "192.0.2.1:080",
    "localhost:80", "2001:db8::1:80", "[192.0.2.1]:80", "[fe80::1%eth0]:80", "[::1]80", "", NULL
  };

  g_assert_no_error (error);
  for (int i = 0; good[i] != NULL; i++)
    {
      g_autoptr (GInetSocketAddress) address = pm_address_parse (good[i], FALSE);

      g_assert_nonnull (address);
    }
  for (int i = 0; bad[i] != NULL; i++)
    {
      g_autoptr (GInetSocketAddress) address = pm_address_parse (bad[i], FALSE);

      if (address != NULL)
        g_error ("“%s” was accepted", bad[i]);
    }
  g_assert_null (pm_address_parse ("192.0.2.1:0", FALSE));

  server = pm_coord_server_new (PM_STORE (store), NULL, NULL);
  g_assert_false (pm_coord_server_listen (server, "0.0.0.0:0", NULL, &error));
  g_assert_error (error, PM_COORD_SERVER_ERROR, PM_COORD_SERVER_ERROR_INSECURE);
  g_clear_error (&error);
  g_assert_false (pm_coord_server_listen (server, "localhost:0", NULL, &error));
  g_assert_error (error, PM_COORD_SERVER_ERROR, PM_COORD_SERVER_ERROR_INVALID_ADDRESS);
  g_clear_error (&error);
  g_assert_cmpuint (pm_coord_server_get_port (server), ==, 0);
  g_assert_true (pm_coord_server_listen (server, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pm_coord_server_get_port (server), >, 0);
}

int
main (int    argc,
      char **argv)
{
  /* Forwards to the default writer unless a test captures the log. */
  g_log_set_writer_func (capture_writer, NULL, NULL);
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/coord/healthz-metrics", test_healthz_metrics);
  ADD ("/coord/enroll", test_enroll);
  ADD ("/coord/list", test_list);
  ADD ("/coord/candidates", test_candidates);
  ADD ("/coord/wake", test_wake);
  ADD ("/coord/wake-timeout", test_wake_timeout);
  ADD ("/coord/revoke", test_revoke);
  ADD ("/coord/refusal-matrix", test_refusal_matrix);
  ADD ("/coord/relay", test_relay);
#undef ADD
  g_test_add_func ("/coord/relay-not-configured", test_relay_not_configured);
  g_test_add_func ("/coord/listen", test_listen);

  return g_test_run ();
}
