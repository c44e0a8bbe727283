/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-state"

#include "pm-state.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

void
pm_state_coordination_clear (PmStateCoordination *coord)
{
  g_return_if_fail (coord != NULL);

  g_clear_pointer (&coord->server, g_free);
  g_clear_pointer (&coord->device_id, g_free);
  g_clear_pointer (&coord->account_id, g_free);
  g_clear_pointer (&coord->name, g_free);
  if (coord->token != NULL)
    sodium_memzero (coord->token, strlen (coord->token));
  g_clear_pointer (&coord->token, g_free);
}

gboolean
pm_state_load_coordination (const char          *dir,
                            PmStateCoordination *coord,
                            GError             **error)
{
  g_autoptr (GKeyFile) kf = NULL;
  g_autofree char *path = NULL;
  g_autofree char *data = NULL;
  gsize            len = 0;
  GStatBuf         st;

  g_return_val_if_fail (dir != NULL, FALSE);
  g_return_val_if_fail (coord != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  path = g_build_filename (dir, PM_STATE_COORDINATION_FILE, NULL);
  if (g_stat (path, &st) != 0)
    {
      int errsv = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errsv),
                   "This device is not enrolled (no %s): run “pipermesh enroll” first", path);
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > PM_STATE_COORDINATION_MAX)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is not a small regular file; remove it and enroll again", path);
      return FALSE;
    }
  if ((st.st_mode & 077) != 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                   "%s is readable by other users and holds a secret token: "
                   "run “chmod 600 %s”, and consider enrolling again",
                   path, path);
      return FALSE;
    }
  if (!g_file_get_contents (path, &data, &len, error))
    return FALSE;
  kf = g_key_file_new ();
  if (len > PM_STATE_COORDINATION_MAX ||
      !g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, NULL))
    {
      sodium_memzero (data, len);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is damaged; remove it and enroll again", path);
      return FALSE;
    }
  sodium_memzero (data, len);
  coord->server = g_key_file_get_string (kf, PM_STATE_COORDINATION_GROUP, "server", NULL);
  coord->device_id = g_key_file_get_string (kf, PM_STATE_COORDINATION_GROUP, "deviceId", NULL);
  coord->account_id = g_key_file_get_string (kf, PM_STATE_COORDINATION_GROUP, "accountId", NULL);
  coord->name = g_key_file_get_string (kf, PM_STATE_COORDINATION_GROUP, "name", NULL);
  coord->token = g_key_file_get_string (kf, PM_STATE_COORDINATION_GROUP, "token", NULL);
  if (coord->server == NULL || coord->device_id == NULL || coord->token == NULL)
    {
      pm_state_coordination_clear (coord);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is incomplete; remove it and enroll again", path);
      return FALSE;
    }
  return TRUE;
}
