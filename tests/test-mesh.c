/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmMesh and PmPeer against the real server: an in-process PmCoordServer with
 * a PmRelay over a PmStoreSqlite in a temporary file, on 127.0.0.1. Two
 * devices of one account, each a PmMesh with its own identity (file key store
 * in a temporary directory) and real UDP sockets on loopback. A service on
 * the host side is a real TCP listener. Every wait is bounded.
 *
 * The NAT traversal itself (direct paths through real NATs, fallback after a
 * blackhole) is proven in tests/natlab/, in network namespaces.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "pm-coord-server.h"
#include "pm-mesh-private.h"
#include "pm-mesh.h"
#include "pm-store-sqlite.h"
#include "pm-test-util.h"

#define WAIT_MS       15000
#define SERVICE_BYTES (8 * 1024 * 1024)

typedef struct {
  char           *dir;
  char           *db_path;
  PmStoreSqlite  *store;
  PmRelay        *relay;
  PmCoordServer  *server;
  char           *base;
  PmIdentity     *ia, *ib;
  char           *a, *a_token, *b, *b_token;
  PmMesh         *ma, *mb;
  GSocketService *service;
  GSocketService *digest_service;
  uint16_t        service_port;
  uint8_t         service_sha[32];
} Fixture;

typedef struct {
  gboolean relay_only; /* no direct probing: every byte over the relay */
  gboolean rotate;     /* tiny epochs and sessions: many key rotations per transfer */
} Options;

static const Options lan_options = { FALSE, FALSE };
static const Options relay_options = { TRUE, FALSE };
static const Options rotate_options = { FALSE, TRUE };

/* --- the service: writes SERVICE_BYTES of a fixed pseudo-random stream ---------- */

static void
fill_pattern (uint8_t *buf,
              size_t   len)
{
  static const uint8_t seed[randombytes_SEEDBYTES] = { 7 };

  randombytes_buf_deterministic (buf, len, seed);
}

static void
on_service_written (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr (GError) error = NULL;
  GSocketConnection *connection = user_data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error);
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  g_object_unref (connection);
}

static gboolean
on_service_incoming (GSocketService    *service,
                     GSocketConnection *connection,
                     GObject           *source,
                     gpointer           user_data)
{
  GBytes *data = user_data;

  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                   g_bytes_get_data (data, NULL), g_bytes_get_size (data), G_PRIORITY_DEFAULT, NULL,
                                   on_service_written, g_object_ref (connection));
  return TRUE;
}

/* --- the digest service: reads to EOF, answers with the SHA-256 of it ---------- */

typedef struct {
  GSocketConnection       *connection;
  crypto_hash_sha256_state sha;
  uint8_t                  buf[65536];
  uint8_t                  digest[32];
} DigestJob;

static void
on_digest_sent (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  DigestJob *job = user_data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (job->connection), NULL, NULL);
  g_object_unref (job->connection);
  g_free (job);
}

static void
on_digest_read (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  DigestJob *job = user_data;
  gssize     n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n > 0)
    {
      crypto_hash_sha256_update (&job->sha, job->buf, n);
      g_input_stream_read_async (G_INPUT_STREAM (source), job->buf, sizeof job->buf, G_PRIORITY_DEFAULT, NULL,
                                 on_digest_read, job);
      return;
    }
  crypto_hash_sha256_final (&job->sha, job->digest);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (job->connection)), job->digest,
                                   sizeof job->digest, G_PRIORITY_DEFAULT, NULL, on_digest_sent, job);
}

static gboolean
on_digest_incoming (GSocketService    *service,
                    GSocketConnection *connection,
                    GObject           *source,
                    gpointer           user_data)
{
  DigestJob *job = g_new0 (DigestJob, 1);

  job->connection = g_object_ref (connection);
  crypto_hash_sha256_init (&job->sha);
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (connection)), job->buf, sizeof job->buf,
                             G_PRIORITY_DEFAULT, NULL, on_digest_read, job);
  return TRUE;
}

/* --- fixture -------------------------------------------------------------------- */

static char *
hex_of (const uint8_t *data,
        size_t         len)
{
  char *hex = g_malloc (len * 2 + 1);

  sodium_bin2hex (hex, len * 2 + 1, data, len);
  return hex;
}

static PmIdentity *
make_identity (Fixture    *f,
               const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (f->dir, name, NULL);
  PmIdentity      *identity = pm_identity_load_or_create (dir, PM_KEY_STORE_FILE, NULL, &error);

  g_assert_no_error (error);
  return identity;
}

static void
enroll (Fixture    *f,
        const char *key,
        const char *name,
        PmIdentity *identity,
        char      **out_id,
        char      **out_token)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autofree char *public_key = hex_of (pm_identity_get_public_key (identity), 32);

  device = pm_store_enroll_device (PM_STORE (f->store), key, name, "linux", public_key, "file", pm_store_now (),
                                   out_token, &error);
  g_assert_no_error (error);
  *out_id = g_strdup (device->id);
}

static PmMesh *
make_mesh (Fixture       *f,
           PmIdentity    *identity,
           const char    *id,
           const char    *token,
           const Options *options)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCoordClient) coord = pm_coord_client_new (f->base, token, &error);
  PmMeshLimits limits;
  PmMesh      *mesh;

  g_assert_no_error (error);
  pm_mesh_limits_default (&limits);
  limits.loopback_candidates = TRUE;
  limits.relay_ping_us = 200 * 1000;
  limits.heartbeat_us = 500 * 1000;
  limits.trust_us = 1200 * 1000;
  if (options->relay_only)
    limits.probe_count = 0;
  if (options->rotate)
    {
      limits.session.messages_per_epoch = 256;
      limits.session.epochs_per_session = 4;
    }
  mesh = pm_mesh_new (identity, coord, id, &limits);
  g_assert_true (pm_mesh_start (mesh, 0, &error));
  g_assert_no_error (error);
  return mesh;
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  const Options *options = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmAccountRecord) account = NULL;
  g_autofree char    *key = NULL;
  g_autofree uint8_t *payload = g_malloc (SERVICE_BYTES);
  GBytes             *bytes;
  int64_t             now = pm_store_now ();

  f->dir = g_dir_make_tmp ("pipermesh-mesh-XXXXXX", &error);
  g_assert_no_error (error);
  f->db_path = g_build_filename (f->dir, "server.db", NULL);
  f->store = pm_store_sqlite_open (f->db_path, &error);
  g_assert_no_error (error);
  account = pm_store_create_account (PM_STORE (f->store), "alice", now, &error);
  g_assert_no_error (error);
  key = pm_store_create_enrollment_key (PM_STORE (f->store), account->id, 3600, TRUE, now, NULL, &error);
  g_assert_no_error (error);
  f->ia = make_identity (f, "laptop");
  f->ib = make_identity (f, "host");
  enroll (f, key, "laptop", f->ia, &f->a, &f->a_token);
  enroll (f, key, "host", f->ib, &f->b, &f->b_token);

  f->relay = pm_relay_new (NULL);
  f->server = pm_coord_server_new (PM_STORE (f->store), f->relay, NULL);
  g_assert_true (pm_coord_server_listen (f->server, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  f->base = pm_coord_server_get_base_uri (f->server);

  /* The host's service. */
  fill_pattern (payload, SERVICE_BYTES);
  crypto_hash_sha256 (f->service_sha, payload, SERVICE_BYTES);
  bytes = g_bytes_new_take (g_steal_pointer (&payload), SERVICE_BYTES);
  f->service = g_socket_service_new ();
  f->service_port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (f->service), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect_data (f->service, "incoming", G_CALLBACK (on_service_incoming), bytes,
                         (GClosureNotify) (void (*) (void)) g_bytes_unref, 0);

  f->digest_service = g_socket_service_new ();
  {
    uint16_t         port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (f->digest_service), NULL, &error);
    g_autofree char *target = g_strdup_printf ("127.0.0.1:%u", port);
    g_assert_no_error (error);
    g_signal_connect (f->digest_service, "incoming", G_CALLBACK (on_digest_incoming), NULL);
    f->ma = make_mesh (f, f->ia, f->a, f->a_token, options);
    f->mb = make_mesh (f, f->ib, f->b, f->b_token, options);
    g_assert_true (pm_mesh_add_service (f->mb, "digest", target, NULL, &error));
    g_assert_no_error (error);
  }
  {
    g_autofree char *target = g_strdup_printf ("127.0.0.1:%u", f->service_port);
    const char      *allowed[] = { "laptop", NULL };
    g_assert_true (pm_mesh_add_service (f->mb, "data", target, allowed, &error));
    g_assert_no_error (error);
    g_assert_true (pm_mesh_add_service (f->mb, "secret", target, (const char *[]){ "someone-else", NULL }, &error));
    g_assert_no_error (error);
  }
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *wal = g_strconcat (f->db_path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (f->db_path, "-shm", NULL);

  pm_mesh_stop (f->ma);
  pm_mesh_stop (f->mb);
  g_clear_object (&f->ma);
  g_clear_object (&f->mb);
  g_socket_service_stop (f->service);
  g_socket_listener_close (G_SOCKET_LISTENER (f->service));
  g_clear_object (&f->service);
  g_socket_service_stop (f->digest_service);
  g_socket_listener_close (G_SOCKET_LISTENER (f->digest_service));
  g_clear_object (&f->digest_service);
  g_clear_object (&f->server);
  g_clear_object (&f->relay);
  g_clear_object (&f->store);
  for (int i = 0; i < 50 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  g_clear_object (&f->ia);
  g_clear_object (&f->ib);
  g_unlink (f->db_path);
  g_unlink (wal);
  g_unlink (shm);
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->dir);
    g_assert_cmpint (system (cmd), ==, 0);
  }
  g_free (f->db_path);
  g_free (f->dir);
  g_free (f->base);
  g_free (f->a);
  g_free (f->a_token);
  g_free (f->b);
  g_free (f->b_token);
}

/* --- helpers -------------------------------------------------------------------- */

typedef struct {
  GObject      *result_source;
  GAsyncResult *result;
} AsyncWait;

static void
on_async (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  AsyncWait *w = user_data;

  w->result = g_object_ref (result);
}

static gboolean
async_done (gpointer data)
{
  return ((AsyncWait *) data)->result != NULL;
}

static gboolean
mesh_ready (gpointer data)
{
  return pm_mesh_lookup_peer (data, "host") != NULL || pm_mesh_lookup_peer (data, "laptop") != NULL;
}

static PmPeer *
peer_of (PmMesh     *mesh,
         const char *name)
{
  g_assert_true (pm_test_spin_until (mesh_ready, mesh, WAIT_MS));
  return pm_mesh_lookup_peer (mesh, name);
}

typedef struct {
  PmPeer    *peer;
  PmPathType path;
} PathWait;

static gboolean
path_is (gpointer data)
{
  PathWait *w = data;

  return pm_peer_get_path_type (w->peer) == w->path;
}

static PmStream *
open_stream (PmPeer     *peer,
             const char *service,
             GError    **error)
{
  AsyncWait w = { 0 };
  PmStream *stream;

  pm_peer_open_stream_async (peer, service, NULL, on_async, &w);
  g_assert_true (pm_test_spin_until (async_done, &w, WAIT_MS));
  stream = pm_peer_open_stream_finish (peer, w.result, error);
  g_object_unref (w.result);
  return stream;
}

typedef struct {
  GInputStream            *in;
  crypto_hash_sha256_state sha;
  uint8_t                  buf[65536];
  size_t                   total;
  gboolean                 done;
  GError                  *error;
} Reader;

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Reader *r = user_data;
  gssize  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &r->error);

  if (n <= 0)
    {
      r->done = TRUE;
      return;
    }
  crypto_hash_sha256_update (&r->sha, r->buf, n);
  r->total += n;
  g_input_stream_read_async (r->in, r->buf, sizeof r->buf, G_PRIORITY_DEFAULT, NULL, on_read, r);
}

static gboolean
reader_done (gpointer data)
{
  return ((Reader *) data)->done;
}

/* Reads the service through a stream of @peer and checks every byte. */
static void
read_service (Fixture *f,
              PmPeer  *peer)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) stream = open_stream (peer, "data", &error);
  Reader *r = g_new0 (Reader, 1);
  uint8_t sha[32];

  g_assert_no_error (error);
  r->in = g_io_stream_get_input_stream (G_IO_STREAM (stream));
  crypto_hash_sha256_init (&r->sha);
  g_input_stream_read_async (r->in, r->buf, sizeof r->buf, G_PRIORITY_DEFAULT, NULL, on_read, r);
  if (!pm_test_spin_until (reader_done, r, 60000))
    g_error ("The stream stalled after %zu of %u bytes", r->total, SERVICE_BYTES);
  g_assert_no_error (r->error);
  g_assert_cmpuint (r->total, ==, SERVICE_BYTES);
  crypto_hash_sha256_final (&r->sha, sha);
  g_assert_cmpmem (sha, 32, f->service_sha, 32);
  g_free (r);
}

/* --- tests ---------------------------------------------------------------------- */

/* Relay first, then the LAN: the session starts on the relay at once and
 * moves to UDP on loopback; the service's bytes arrive intact. */
static void
test_connect_lan (Fixture      *f,
                  gconstpointer data)
{
  PmPeer    *host = peer_of (f->ma, "host");
  PathWait   lan = { host, PM_PATH_LAN };
  AsyncWait  w = { 0 };
  double     rtt = 0;
  PmPathType path = PM_PATH_NONE;
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (host);
  g_assert_cmpint (pm_peer_get_state (host), ==, PM_PEER_STATE_IDLE);
  pm_peer_connect (host);
  g_assert_true (pm_test_spin_until (path_is, &lan, WAIT_MS));
  g_assert_cmpint (pm_peer_get_state (host), ==, PM_PEER_STATE_CONNECTED);
  g_assert_nonnull (pm_peer_get_endpoint (host));
  g_assert_cmpfloat (pm_peer_get_rtt_ms (host), >, 0);
  g_assert_cmpuint (pm_peer_get_direct_attempts (host), >=, 1);

  read_service (f, host);
  g_assert_cmpuint (pm_peer_get_rx_bytes (host), >=, SERVICE_BYTES);

  pm_peer_ping_async (host, NULL, on_async, &w);
  g_assert_true (pm_test_spin_until (async_done, &w, WAIT_MS));
  g_assert_true (pm_peer_ping_finish (host, w.result, &rtt, &path, &error));
  g_assert_no_error (error);
  g_object_unref (w.result);
  g_assert_cmpint (path, ==, PM_PATH_LAN);
  g_assert_cmpfloat (rtt, >, 0);

  /* The host sees the laptop too. */
  {
    PmPeer  *laptop = pm_mesh_lookup_peer (f->mb, "laptop");
    PathWait back = { laptop, PM_PATH_LAN };
    g_assert_nonnull (laptop);
    g_assert_true (pm_test_spin_until (path_is, &back, WAIT_MS));
    g_assert_cmpint (pm_peer_get_state (laptop), ==, PM_PEER_STATE_CONNECTED);
  }

  pm_peer_disconnect (host);
  g_assert_cmpint (pm_peer_get_state (host), ==, PM_PEER_STATE_IDLE);
  g_assert_cmpint (pm_peer_get_path_type (host), ==, PM_PATH_NONE);
}

/* With no direct path, everything goes through the relay, intact, and the
 * path says so. */
static void
test_relay_only (Fixture      *f,
                 gconstpointer data)
{
  PmPeer  *host = peer_of (f->ma, "host");
  PathWait relay = { host, PM_PATH_RELAY };

  pm_peer_connect (host);
  g_assert_true (pm_test_spin_until (path_is, &relay, WAIT_MS));
  read_service (f, host);
  g_assert_cmpint (pm_peer_get_path_type (host), ==, PM_PATH_RELAY);
  g_assert_null (pm_peer_get_endpoint (host));
  g_assert_cmpuint (pm_peer_get_path_changes (host), ==, 0);
}

/* A service the device may not use, and one that does not exist, are refused
 * with the host's reason; the session carries on. */
static void
test_refused (Fixture      *f,
              gconstpointer data)
{
  PmPeer *host = peer_of (f->ma, "host");
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) secret = open_stream (host, "secret", &error);

  g_assert_null (secret);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "not offered to this device"));
  g_clear_error (&error);
  {
    g_autoptr (PmStream) none = open_stream (host, "nothing-here", &error);
    g_assert_null (none);
    g_assert_nonnull (strstr (error->message, "not offered to this device"));
  }
  read_service (f, host);
}

/* Key rotations while a stream flows: fresh IK handshakes every 1024
 * messages, not one byte lost or changed. */
static void
test_rotation (Fixture      *f,
               gconstpointer data)
{
  PmPeer  *host = peer_of (f->ma, "host");
  PathWait lan = { host, PM_PATH_LAN };

  pm_peer_connect (host);
  g_assert_true (pm_test_spin_until (path_is, &lan, WAIT_MS));
  read_service (f, host);
  read_service (f, host);
  g_assert_cmpuint (pm_peer_get_rotations (host) + pm_peer_get_rotations (pm_mesh_lookup_peer (f->mb, "laptop")), >=, 4);
  g_assert_cmpint (pm_peer_get_last_handshake (host), >, 0);
}

/* Upload while the path moves: the session starts relay-only, and halfway
 * through a 16 MiB upload discovery is switched on (as after a network
 * change), so the stream moves from the relay to the LAN mid-flight; the
 * host's digest of what arrived must match, byte for byte. */
typedef struct {
  GOutputStream *out;
  uint8_t       *data;
  size_t         len, sent;
  gboolean       done;
  GError        *error;
} Writer;

static void
on_written_chunk (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Writer *w = user_data;
  gsize   n = 0;

  if (!g_output_stream_write_all_finish (w->out, result, &n, &w->error))
    {
      w->done = TRUE;
      return;
    }
  w->sent += n;
  if (w->sent == w->len)
    {
      w->done = TRUE;
      return;
    }
  g_output_stream_write_all_async (w->out, w->data + w->sent, MIN (w->len - w->sent, 65536), G_PRIORITY_DEFAULT,
                                   NULL, on_written_chunk, w);
}

static gboolean
writer_halfway (gpointer data)
{
  Writer *w = data;

  return w->done || w->sent >= w->len / 2;
}

static gboolean
writer_done (gpointer data)
{
  return ((Writer *) data)->done;
}

static void
test_migrate_upload (Fixture      *f,
                     gconstpointer data)
{
  PmPeer  *host = peer_of (f->ma, "host");
  PmPeer  *laptop;
  PathWait relay = { host, PM_PATH_RELAY };
  PathWait lan = { host, PM_PATH_LAN };
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) stream = NULL;
  Writer  w = { 0 };
  uint8_t expected[32], digest[32];
  gsize   got = 0;

  pm_peer_connect (host);
  g_assert_true (pm_test_spin_until (path_is, &relay, WAIT_MS));
  stream = open_stream (host, "digest", &error);
  g_assert_no_error (error);

  w.len = 16 * 1024 * 1024;
  w.data = g_malloc (w.len);
  fill_pattern (w.data, w.len);
  crypto_hash_sha256 (expected, w.data, w.len);
  w.out = g_io_stream_get_output_stream (G_IO_STREAM (stream));
  g_output_stream_write_all_async (w.out, w.data, 65536, G_PRIORITY_DEFAULT, NULL, on_written_chunk, &w);
  g_assert_true (pm_test_spin_until (writer_halfway, &w, 60000));
  g_assert_false (w.done);
  g_assert_cmpint (pm_peer_get_path_type (host), ==, PM_PATH_RELAY);

  /* Discovery on, as after a network change, on both sides. */
  ((PmMeshLimits *) pm_mesh_get_limits (f->ma))->probe_count = 3;
  ((PmMeshLimits *) pm_mesh_get_limits (f->mb))->probe_count = 3;
  laptop = pm_mesh_lookup_peer (f->mb, "laptop");
  pm_peer_network_changed (host);
  pm_peer_network_changed (laptop);
  g_assert_true (pm_test_spin_until (path_is, &lan, WAIT_MS));
  g_test_message ("on the LAN after %zu of %zu bytes", w.sent, w.len);

  g_assert_true (pm_test_spin_until (writer_done, &w, 60000));
  g_assert_no_error (w.error);
  g_assert_true (g_output_stream_close (w.out, NULL, &error)); /* FIN: the host hashes and answers */
  g_assert_no_error (error);
  {
    AsyncWait rw = { 0 };
    g_input_stream_read_all_async (g_io_stream_get_input_stream (G_IO_STREAM (stream)), digest, sizeof digest,
                                   G_PRIORITY_DEFAULT, NULL, on_async, &rw);
    g_assert_true (pm_test_spin_until (async_done, &rw, WAIT_MS));
    g_assert_true (g_input_stream_read_all_finish (g_io_stream_get_input_stream (G_IO_STREAM (stream)), rw.result,
                                                   &got, &error));
    g_object_unref (rw.result);
  }
  g_assert_no_error (error);
  g_assert_cmpuint (got, ==, 32);
  g_assert_cmpmem (digest, 32, expected, 32);
  g_assert_cmpuint (pm_peer_get_path_changes (host), >=, 1);
  g_free (w.data);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

  g_test_add ("/mesh/connect-lan", Fixture, &lan_options, fixture_setup, test_connect_lan, fixture_teardown);
  g_test_add ("/mesh/relay-only", Fixture, &relay_options, fixture_setup, test_relay_only, fixture_teardown);
  g_test_add ("/mesh/rotation", Fixture, &rotate_options, fixture_setup, test_rotation, fixture_teardown);
  g_test_add ("/mesh/migrate-upload", Fixture, &relay_options, fixture_setup, test_migrate_upload, fixture_teardown);
  g_test_add ("/mesh/refused", Fixture, &lan_options, fixture_setup, test_refused, fixture_teardown);
  return g_test_run ();
}
