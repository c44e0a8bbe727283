/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Files of the state directory that more than one program reads: for now
 * coordination.ini, this device's enrollment with a coordination server
 * (written by `pipermesh enroll`, read by `pipermesh up` and the app).
 *
 *   [Coordination]
 *   server=https://mesh.example.net
 *   deviceId=dev_…
 *   accountId=acc_…
 *   name=laptop        (absent from files written before names were kept)
 *   token=pmdt_…       (a secret: the file is mode 0600)
 */

#include <glib.h>

G_BEGIN_DECLS

#define PM_STATE_COORDINATION_FILE  "coordination.ini"
#define PM_STATE_COORDINATION_GROUP "Coordination"
/* A larger coordination.ini is refused unread. */
#define PM_STATE_COORDINATION_MAX (16 * 1024)

typedef struct {
  char *server;
  char *device_id;
  char *account_id; /* may be NULL */
  char *name;       /* this device's name as enrolled; may be NULL */
  char *token;      /* secret: never printed or logged; wiped by the clear function */
} PmStateCoordination;

void pm_state_coordination_clear (PmStateCoordination *coord);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PmStateCoordination, pm_state_coordination_clear)

/* Loads @dir/coordination.ini into @coord (all fields NULL before). FALSE
 * with @error in G_FILE_ERROR when it is missing (G_FILE_ERROR_NOENT: not
 * enrolled), not a small regular file, readable by other users
 * (G_FILE_ERROR_PERM), damaged or incomplete; @coord is then left empty. */
gboolean pm_state_load_coordination (const char          *dir,
                                     PmStateCoordination *coord,
                                     GError             **error);

G_END_DECLS
