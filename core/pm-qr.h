/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * QR codes out and in, for the pairing code (core/pm-pair-code.h). Out:
 * libqrencode makes the symbol (error correction M, 8-bit data), drawn
 * always dark on light with a quiet zone of PM_QR_QUIET_ZONE modules, as a
 * GdkPixbuf, a PNG file (gdk-pixbuf's writer), an SVG file or UTF-8 text for
 * a terminal. In: zbar reads QR codes (and only those) from a picture file, a
 * GdkPixbuf or a camera (Video4Linux through zbar's video API).
 *
 * GIO and gdk-pixbuf only, no GTK: the app makes a GdkTexture from the
 * pixbuf (gdk_texture_new_for_pixbuf()).
 */

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

#define PM_QR_ERROR (pm_qr_error_quark ())

typedef enum {
  PM_QR_ERROR_TOO_LONG,  /* the text does not fit in a QR code */
  PM_QR_ERROR_WRITE,     /* a file could not be written */
  PM_QR_ERROR_READ,      /* a picture could not be read: missing, not a picture, too large */
  PM_QR_ERROR_NOT_FOUND, /* no QR code in the picture */
  PM_QR_ERROR_NO_CAMERA, /* no video device (or none at the path given) */
  PM_QR_ERROR_CAMERA,    /* the camera could not be opened, or stopped sending pictures */
} PmQrError;

GQuark pm_qr_error_quark (void);

/* Light modules around the symbol on every side (ISO/IEC 18004 asks for 4). */
#define PM_QR_QUIET_ZONE 4
/* Pixels per module: the scale parameters run from 1 to this. */
#define PM_QR_MAX_SCALE 32

/* --- Out ------------------------------------------------------------------- */

typedef struct _PmQr PmQr;

/* How pm_qr_to_text() draws: two modules per character cell, stacked, with
 * the half blocks ▀ ▄, the full block █ and the space. */
typedef enum {
  /* The blocks draw the light modules in bright white on a black background
   * set by ANSI escapes (as `qrencode -t ANSIUTF8`): scans in a terminal of
   * any colour scheme. For a terminal (isatty). */
  PM_QR_TEXT_ANSI,
  /* No escapes; the blocks draw the light modules, the terminal's background
   * shows the dark ones (as `qrencode -t UTF8`): for light text on a dark
   * background. */
  PM_QR_TEXT_LIGHT_ON_DARK,
  /* No escapes; the blocks draw the dark modules, the background shows the
   * light ones (as `qrencode -t UTF8i`): for dark text on a light
   * background, and for files and print. */
  PM_QR_TEXT_DARK_ON_LIGHT,
} PmQrTextStyle;

PmQr    *pm_qr_new (const char *text,
                    GError    **error);
void     pm_qr_free (PmQr *qr);
int      pm_qr_get_size (const PmQr *qr);
int      pm_qr_get_version (const PmQr *qr);
gboolean pm_qr_is_dark (const PmQr *qr,
                        int         x,
                        int         y);

GdkPixbuf *pm_qr_to_pixbuf (const PmQr *qr,
                            int         scale);
gboolean   pm_qr_save_png (const PmQr *qr,
                           const char *path,
                           int         scale,
                           GError    **error);
char      *pm_qr_to_svg (const PmQr *qr,
                         int         scale);
gboolean   pm_qr_save_svg (const PmQr *qr,
                           const char *path,
                           int         scale,
                           GError    **error);
char      *pm_qr_to_text (const PmQr   *qr,
                          PmQrTextStyle style);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmQr, pm_qr_free)

/* --- In -------------------------------------------------------------------- */

char **pm_qr_decode_pixbuf (GdkPixbuf *pixbuf,
                            GError   **error);
char **pm_qr_decode_file (const char *path,
                          GError    **error);

char **pm_qr_list_cameras (void);
void   pm_qr_scan_camera_async (const char         *device,
                                GCancellable       *cancellable,
                                GAsyncReadyCallback callback,
                                gpointer            user_data);
char  *pm_qr_scan_camera_finish (GAsyncResult *result,
                                 GError      **error);

G_END_DECLS
