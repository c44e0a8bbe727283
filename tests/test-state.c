/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * core/pm-state.c: coordination.ini as `pipermesh enroll` writes it, and
 * every way a state directory can hold a bad one.
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <glib/gstdio.h>
#include <string.h>

#include "pm-state.h"

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("pipermesh-state-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, PM_STATE_COORDINATION_FILE, NULL);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_unlink (f->path);
  g_rmdir (f->path); /* the directory case */
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);
  g_free (f->path);
  g_free (f->dir);
}

static void
write_ini (Fixture    *f,
           const char *text,
           int         mode)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents_full (f->path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, mode, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (f->path, mode), ==, 0);
}

static void
assert_empty (const PmStateCoordination *c)
{
  g_assert_null (c->server);
  g_assert_null (c->device_id);
  g_assert_null (c->account_id);
  g_assert_null (c->name);
  g_assert_null (c->token);
}

static void
test_good (Fixture      *f,
           gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };

  write_ini (f,
             "# comment\n[Coordination]\nserver=https://mesh.example.net\n"
             "deviceId=dev_0123\naccountId=acc_4567\nname=laptop\ntoken=pmdt_secret\n",
             0600);
  g_assert_true (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (c.server, ==, "https://mesh.example.net");
  g_assert_cmpstr (c.device_id, ==, "dev_0123");
  g_assert_cmpstr (c.account_id, ==, "acc_4567");
  g_assert_cmpstr (c.name, ==, "laptop");
  g_assert_cmpstr (c.token, ==, "pmdt_secret");
}

static void
test_without_name (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };

  write_ini (f, "[Coordination]\nserver=http://127.0.0.1:1\ndeviceId=d\ntoken=t\n", 0600);
  g_assert_true (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_no_error (error);
  g_assert_null (c.name);
  g_assert_null (c.account_id);
}

static void
test_missing (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };

  g_assert_false (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, "pipermesh enroll"));
  assert_empty (&c);
}

static void
test_readable_by_others (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };

  write_ini (f, "[Coordination]\nserver=s\ndeviceId=d\ntoken=t\n", 0644);
  g_assert_false (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_PERM);
  g_assert_nonnull (strstr (error->message, "chmod 600"));
  assert_empty (&c);
}

static void
test_bad (Fixture      *f,
          gconstpointer data)
{
  const char *const texts[] = {
    "not an ini file at all [[[\n\x01",
    "[Coordination]\nserver=s\ndeviceId=d\n",   /* no token */
    "[Coordination]\ndeviceId=d\ntoken=t\n",    /* no server */
    "[Other]\nserver=s\ndeviceId=d\ntoken=t\n", /* wrong group */
  };

  for (size_t i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr (GError) error = NULL;
      g_auto (PmStateCoordination) c = { NULL };

      write_ini (f, texts[i], 0600);
      g_assert_false (pm_state_load_coordination (f->dir, &c, &error));
      g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
      assert_empty (&c);
    }
}

static void
test_too_large (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };
  g_autofree char *big = g_strnfill (PM_STATE_COORDINATION_MAX + 1, '#');

  write_ini (f, big, 0600);
  g_assert_false (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
}

static void
test_directory (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (PmStateCoordination) c = { NULL };

  g_assert_cmpint (g_mkdir (f->path, 0700), ==, 0);
  g_assert_false (pm_state_load_coordination (f->dir, &c, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/state/coordination/good", Fixture, NULL, fixture_setup, test_good, fixture_teardown);
  g_test_add ("/state/coordination/without-name", Fixture, NULL, fixture_setup, test_without_name,
              fixture_teardown);
  g_test_add ("/state/coordination/missing", Fixture, NULL, fixture_setup, test_missing, fixture_teardown);
  g_test_add ("/state/coordination/readable-by-others", Fixture, NULL, fixture_setup,
              test_readable_by_others, fixture_teardown);
  g_test_add ("/state/coordination/bad", Fixture, NULL, fixture_setup, test_bad, fixture_teardown);
  g_test_add ("/state/coordination/too-large", Fixture, NULL, fixture_setup, test_too_large,
              fixture_teardown);
  g_test_add ("/state/coordination/directory", Fixture, NULL, fixture_setup, test_directory,
              fixture_teardown);
  return g_test_run ();
}
