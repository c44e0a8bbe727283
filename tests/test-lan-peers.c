/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * app/pm-lan-peers.c: two devices that paired by QR code (each holds the
 * other in its paired store) run LAN-only meshes on loopback, and the app's
 * PmLanPeers makes the stored devices peers that connect over UDP. mDNS is
 * off: nothing leaves loopback. Every wait is bounded.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <string.h>

#include "pm-lan-peers.h"
#include "pm-paired-store.h"
#include "pm-test-util.h"

#define WAIT_MS 15000

typedef struct {
  char       *dir;
  char       *dir_a, *dir_b;
  PmIdentity *ia, *ib;
  PmMesh     *ma, *mb;
} Fixture;

static PmIdentity *
make_identity (const char *dir)
{
  g_autoptr (GError) error = NULL;
  PmIdentity *identity = pm_identity_load_or_create (dir, PM_KEY_STORE_FILE, NULL, &error);

  g_assert_no_error (error);
  return identity;
}

static PmMesh *
make_mesh (PmIdentity *identity)
{
  g_autoptr (GError) error = NULL;
  PmMeshLimits limits;
  PmMesh      *mesh;

  pm_mesh_limits_default (&limits);
  limits.loopback_candidates = TRUE;
  mesh = pm_mesh_new (identity, NULL, NULL, &limits);
  g_assert_true (pm_mesh_start (mesh, 0, &error));
  g_assert_no_error (error);
  return mesh;
}

/* Stores @other (named @name, its mesh on loopback) in @dir's paired store. */
static void
pair (const char *dir,
      const char *name,
      PmIdentity *other,
      PmMesh     *other_mesh)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedStore) store = pm_paired_store_new_for_state_dir (dir);
  g_autoptr (PmPairedDevice) device = pm_paired_device_new ();

  device->name = g_strdup (name);
  device->device_type = g_strdup ("linux");
  memcpy (device->public_key, pm_identity_get_public_key (other), PM_KEY_LEN);
  g_ptr_array_add (device->addresses,
                   g_strdup_printf ("127.0.0.1:%u", pm_mesh_get_port (other_mesh)));
  g_ptr_array_add (device->allowed_services, g_strdup (PM_PAIRED_ALL_SERVICES));
  g_assert_true (pm_paired_store_add (store, device, &error));
  g_assert_no_error (error);
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("pipermesh-lan-peers-XXXXXX", &error);
  g_assert_no_error (error);
  f->dir_a = g_build_filename (f->dir, "a", NULL);
  f->dir_b = g_build_filename (f->dir, "b", NULL);
  f->ia = make_identity (f->dir_a);
  f->ib = make_identity (f->dir_b);
  f->ma = make_mesh (f->ia);
  f->mb = make_mesh (f->ib);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  pm_mesh_stop (f->ma);
  pm_mesh_stop (f->mb);
  g_clear_object (&f->ma);
  g_clear_object (&f->mb);
  for (int i = 0; i < 50 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  g_clear_object (&f->ia);
  g_clear_object (&f->ib);
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->dir);
    g_assert_cmpint (system (cmd), ==, 0);
  }
  g_free (f->dir_a);
  g_free (f->dir_b);
  g_free (f->dir);
}

static gboolean
connected (gpointer data)
{
  PmPeer *peer = data;

  return pm_peer_get_state (peer) == PM_PEER_STATE_CONNECTED &&
         pm_peer_get_path_type (peer) == PM_PATH_LAN;
}

static void
test_connect (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmLanPeers) la = NULL;
  g_autoptr (PmLanPeers) lb = NULL;
  GListModel *peers_a = pm_mesh_get_peers (f->ma);
  PmPeer     *host;

  pair (f->dir_a, "host", f->ib, f->mb);
  pair (f->dir_b, "laptop", f->ia, f->ma);
  la = pm_lan_peers_new (f->ma, f->dir_a, FALSE);
  lb = pm_lan_peers_new (f->mb, f->dir_b, FALSE);
  g_assert_true (pm_lan_peers_start (la, "laptop", &error));
  g_assert_no_error (error);
  g_assert_true (pm_lan_peers_start (lb, "host", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pm_lan_peers_get_n_paired (la), ==, 1);

  /* The stored device is a peer at once, not online (no server tells). */
  g_assert_cmpuint (g_list_model_get_n_items (peers_a), ==, 1);
  host = pm_mesh_lookup_peer (f->ma, "host");
  g_assert_nonnull (host);
  g_assert_cmpstr (pm_peer_get_device_type (host), ==, "linux");
  g_assert_false (pm_peer_get_online (host));
  g_assert_cmpint (pm_peer_get_state (host), ==, PM_PEER_STATE_IDLE);

  /* Connecting reaches it at its stored address, with no server at all. */
  pm_peer_connect (host);
  g_assert_true (pm_test_spin_until (connected, host, WAIT_MS));
  g_assert_cmpstr (pm_peer_get_endpoint (host), !=, NULL);

  pm_lan_peers_stop (la);
  pm_lan_peers_stop (lb);
}

static void
test_nothing_paired (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmLanPeers) la = pm_lan_peers_new (f->ma, f->dir_a, FALSE);
  g_autofree char *db = g_build_filename (f->dir_a, PM_PAIRED_STORE_FILE, NULL);

  g_assert_true (pm_lan_peers_start (la, "laptop", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pm_lan_peers_get_n_paired (la), ==, 0);
  g_assert_cmpuint (g_list_model_get_n_items (pm_mesh_get_peers (f->ma)), ==, 0);
  /* Reading an absent store writes nothing. */
  g_assert_false (g_file_test (db, G_FILE_TEST_EXISTS));
}

static void
test_damaged_store (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmLanPeers) la = pm_lan_peers_new (f->ma, f->dir_a, FALSE);
  g_autofree char *db = g_build_filename (f->dir_a, PM_PAIRED_STORE_FILE, NULL);
  g_autofree char *junk = g_strnfill (8192, 'x');

  g_assert_true (g_file_set_contents (db, junk, -1, NULL));
  g_assert_false (pm_lan_peers_start (la, "laptop", &error));
  g_assert_true (error != NULL && error->domain == PM_PAIRED_STORE_ERROR);
  g_assert_cmpuint (g_list_model_get_n_items (pm_mesh_get_peers (f->ma)), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/lan-peers/connect", Fixture, NULL, fixture_setup, test_connect, fixture_teardown);
  g_test_add ("/lan-peers/nothing-paired", Fixture, NULL, fixture_setup, test_nothing_paired,
              fixture_teardown);
  g_test_add ("/lan-peers/damaged-store", Fixture, NULL, fixture_setup, test_damaged_store,
              fixture_teardown);
  return g_test_run ();
}
