/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-qr"

#include "pm-qr.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <qrencode.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <zbar.h>

/* clang-format off */
G_DEFINE_QUARK (pm-qr-error-quark, pm_qr_error)
/* clang-format on */

#define FOURCC_Y800 zbar_fourcc ('Y', '8', '0', '0')

struct _PmQr {
  QRcode *code;
};

/* --- The symbol -------------------------------------------------------------- */

/**
 * pm_qr_new:
 * @text: what the QR code holds (a pairing code: ASCII)
 *
 * Encodes @text with libqrencode: the smallest version that holds it, error
 * correction level M (15% of the symbol may be lost), case-sensitive, with
 * everything that is not a run of digits or upper-case letters in 8-bit byte
 * mode (hint QR_MODE_8: never Kanji).
 *
 * Returns: (transfer full) (nullable): the symbol, or %NULL with
 * PM_QR_ERROR_TOO_LONG when @text does not fit in a QR code
 */
PmQr *
pm_qr_new (const char *text,
           GError    **error)
{
  QRcode *code;
  PmQr   *qr;

  g_return_val_if_fail (text != NULL, NULL);

  errno = 0;
  code = QRcode_encodeString (text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (code == NULL)
    {
      int saved = errno;

      if (saved == ENOMEM)
        g_error ("libqrencode: out of memory");
      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_TOO_LONG,
                   "Cannot make a QR code of this text (%zu bytes): %s", strlen (text),
                   saved == ERANGE ? "too long" : g_strerror (saved));
      return NULL;
    }
  qr = g_new0 (PmQr, 1);
  qr->code = code;
  return qr;
}

/**
 * pm_qr_free:
 * Frees @qr, wiping its modules first (a pairing code's symbol holds its token).
 */
void
pm_qr_free (PmQr *qr)
{
  if (qr == NULL)
    return;
  sodium_memzero (qr->code->data, (size_t) qr->code->width * (size_t) qr->code->width);
  QRcode_free (qr->code);
  g_free (qr);
}

/**
 * pm_qr_get_size:
 * Returns: modules per side of the symbol, without the quiet zone (21 … 177)
 */
int
pm_qr_get_size (const PmQr *qr)
{
  g_return_val_if_fail (qr != NULL, 0);

  return qr->code->width;
}

/**
 * pm_qr_get_version:
 * Returns: the QR version, 1 … 40
 */
int
pm_qr_get_version (const PmQr *qr)
{
  g_return_val_if_fail (qr != NULL, 0);

  return qr->code->version;
}

/**
 * pm_qr_is_dark:
 * @x: column, 0 at the symbol's left edge (negative: in the quiet zone)
 * @y: row, 0 at its top edge
 *
 * Returns: whether the module at @x, @y is dark; every module outside the
 * symbol is light.
 */
gboolean
pm_qr_is_dark (const PmQr *qr,
               int         x,
               int         y)
{
  int size;

  g_return_val_if_fail (qr != NULL, FALSE);

  size = qr->code->width;
  if (x < 0 || y < 0 || x >= size || y >= size)
    return FALSE;
  return (qr->code->data[y * size + x] & 1) != 0;
}

/* Modules per side with the quiet zone. */
static int
full_size (const PmQr *qr)
{
  return qr->code->width + 2 * PM_QR_QUIET_ZONE;
}

/* --- Pictures ------------------------------------------------------------------ */

/**
 * pm_qr_to_pixbuf:
 * @scale: pixels per module, 1 … PM_QR_MAX_SCALE
 *
 * The symbol with its quiet zone as an opaque RGB picture: black modules on
 * white, (size + 2 × PM_QR_QUIET_ZONE) × @scale pixels square.
 *
 * Returns: (transfer full): the picture
 */
GdkPixbuf *
pm_qr_to_pixbuf (const PmQr *qr,
                 int         scale)
{
  GdkPixbuf *pixbuf;
  uint8_t   *pixels;
  int        side, rowstride;

  g_return_val_if_fail (qr != NULL, NULL);
  g_return_val_if_fail (scale >= 1 && scale <= PM_QR_MAX_SCALE, NULL);

  side = full_size (qr) * scale;
  pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, side, side);
  if (pixbuf == NULL)
    g_error ("Out of memory for a %d×%d QR code picture", side, side);
  pixels = gdk_pixbuf_get_pixels (pixbuf);
  rowstride = gdk_pixbuf_get_rowstride (pixbuf);
  for (int py = 0; py < side; py++)
    {
      uint8_t *row = pixels + (size_t) py * (size_t) rowstride;
      int      y = py / scale - PM_QR_QUIET_ZONE;

      memset (row, 0xff, (size_t) side * 3);
      for (int x = 0; x < qr->code->width; x++)
        if (pm_qr_is_dark (qr, x, y))
          memset (row + (size_t) (x + PM_QR_QUIET_ZONE) * (size_t) scale * 3, 0,
                  (size_t) scale * 3);
    }
  return pixbuf;
}

/**
 * pm_qr_save_png:
 * @path: the file to write (replaced if it exists)
 * @scale: pixels per module, 1 … PM_QR_MAX_SCALE
 *
 * Writes pm_qr_to_pixbuf() as a PNG file (gdk-pixbuf's PNG writer).
 *
 * Returns: whether it was written; PM_QR_ERROR_WRITE if not
 */
gboolean
pm_qr_save_png (const PmQr *qr,
                const char *path,
                int         scale,
                GError    **error)
{
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  g_autoptr (GError) local_error = NULL;

  g_return_val_if_fail (qr != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (scale >= 1 && scale <= PM_QR_MAX_SCALE, FALSE);

  pixbuf = pm_qr_to_pixbuf (qr, scale);
  if (!gdk_pixbuf_save (pixbuf, path, "png", &local_error, NULL))
    {
      g_autofree char *name = g_filename_display_name (path);

      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_WRITE, "Could not write %s: %s", name,
                   local_error->message);
      return FALSE;
    }
  return TRUE;
}

/**
 * pm_qr_to_svg:
 * @scale: pixels per module for the width and height attributes, 1 … PM_QR_MAX_SCALE
 *
 * The symbol as an SVG document: a white square of (size + 2 ×
 * PM_QR_QUIET_ZONE) modules (the viewBox, one unit per module) and one black
 * path of a rectangle per run of dark modules in a row, drawn with crisp edges.
 * "stroke" is said to be "none" on each shape: ImageMagick's own renderer
 * (MSVG) would otherwise outline them one module wide.
 *
 * Returns: (transfer full): the document, UTF-8
 */
char *
pm_qr_to_svg (const PmQr *qr,
              int         scale)
{
  GString *svg;
  int      n;

  g_return_val_if_fail (qr != NULL, NULL);
  g_return_val_if_fail (scale >= 1 && scale <= PM_QR_MAX_SCALE, NULL);

  n = full_size (qr);
  svg = g_string_new (NULL);
  g_string_append_printf (svg,
                          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                          "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                          "shape-rendering=\"crispEdges\">\n"
                          "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\" "
                          "stroke=\"none\"/>\n"
                          "<path fill=\"#000000\" stroke=\"none\" d=\"",
                          n * scale, n * scale, n, n, n, n);
  for (int y = 0; y < qr->code->width; y++)
    {
      for (int x = 0; x < qr->code->width;)
        {
          int run = 0;

          while (x + run < qr->code->width && pm_qr_is_dark (qr, x + run, y))
            run++;
          if (run == 0)
            {
              x++;
              continue;
            }
          g_string_append_printf (svg, "M%d %dh%dv1h-%dz", x + PM_QR_QUIET_ZONE,
                                  y + PM_QR_QUIET_ZONE, run, run);
          x += run;
        }
      g_string_append_c (svg, '\n');
    }
  g_string_append (svg, "\"/>\n</svg>\n");
  return g_string_free (svg, FALSE);
}

/**
 * pm_qr_save_svg:
 * Writes pm_qr_to_svg() to @path (atomically: g_file_set_contents()).
 *
 * Returns: whether it was written; PM_QR_ERROR_WRITE if not
 */
gboolean
pm_qr_save_svg (const PmQr *qr,
                const char *path,
                int         scale,
                GError    **error)
{
  g_autofree char *svg = NULL;
  g_autoptr (GError) local_error = NULL;

  g_return_val_if_fail (qr != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (scale >= 1 && scale <= PM_QR_MAX_SCALE, FALSE);

  svg = pm_qr_to_svg (qr, scale);
  if (!g_file_set_contents (path, svg, -1, &local_error))
    {
      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_WRITE, "%s", local_error->message);
      return FALSE;
    }
  return TRUE;
}

/**
 * pm_qr_to_text:
 * @style: which modules the blocks draw, and whether to pin the colours
 *
 * The symbol with its quiet zone as lines of text, each character cell two
 * modules high (upper and lower half): "█" both drawn, "▀" the upper one,
 * "▄" the lower one, " " neither (see #PmQrTextStyle for which modules are
 * drawn). The symbol and its quiet zone are an odd number of modules high; the
 * half row below the last is drawn as the terminal background. Every line
 * ends with "\n" (with PM_QR_TEXT_ANSI, after a reset escape).
 *
 * Returns: (transfer full): the text, UTF-8
 */
char *
pm_qr_to_text (const PmQr   *qr,
               PmQrTextStyle style)
{
  static const char *const glyph[4] = { " ", "▀", "▄", "█" }; /* index: upper | lower << 1 */
  GString                 *text;
  gboolean                 draw_dark;
  int                      n;

  g_return_val_if_fail (qr != NULL, NULL);
  g_return_val_if_fail (style == PM_QR_TEXT_ANSI || style == PM_QR_TEXT_LIGHT_ON_DARK ||
                          style == PM_QR_TEXT_DARK_ON_LIGHT,
                        NULL);

  draw_dark = style == PM_QR_TEXT_DARK_ON_LIGHT;
  n = full_size (qr);
  text = g_string_new (NULL);
  for (int row = 0; row < n; row += 2)
    {
      if (style == PM_QR_TEXT_ANSI)
        g_string_append (text, "\033[40;37;1m"); /* bright white on black */
      for (int col = 0; col < n; col++)
        {
          int      x = col - PM_QR_QUIET_ZONE;
          int      y = row - PM_QR_QUIET_ZONE;
          gboolean upper = pm_qr_is_dark (qr, x, y) == draw_dark;
          /* Below the last row: the background, neither light nor dark. */
          gboolean lower = row + 1 < n && pm_qr_is_dark (qr, x, y + 1) == draw_dark;

          g_string_append (text, glyph[upper | lower << 1]);
        }
      if (style == PM_QR_TEXT_ANSI)
        g_string_append (text, "\033[0m");
      g_string_append_c (text, '\n');
    }
  return g_string_free (text, FALSE);
}

/* --- Reading pictures -------------------------------------------------------------- */

static zbar_image_scanner_t *
qr_scanner_new (void)
{
  zbar_image_scanner_t *scanner = zbar_image_scanner_create ();

  /* QR codes only: the other symbologies would only find false positives. */
  zbar_image_scanner_set_config (scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
  zbar_image_scanner_set_config (scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
  return scanner;
}

/* Adds the text of every QR code zbar found in @image to @texts; codes whose
 * data is not UTF-8 text (binary, or holding NUL bytes) are left out. */
static void
collect_texts (const zbar_image_t *image,
               GPtrArray          *texts)
{
  for (const zbar_symbol_t *s = zbar_image_first_symbol (image); s != NULL;
       s = zbar_symbol_next (s))
    {
      const char *data = zbar_symbol_get_data (s);
      unsigned    len = zbar_symbol_get_data_length (s);

      if (zbar_symbol_get_type (s) != ZBAR_QRCODE || data == NULL ||
          memchr (data, '\0', len) != NULL || !g_utf8_validate_len (data, len, NULL))
        continue;
      g_ptr_array_add (texts, g_strndup (data, len));
    }
}

/* Greys @pixbuf (alpha laid over white) and scans it. @what names it in the
 * NOT_FOUND message. */
static char **
decode_pixbuf (GdkPixbuf  *pixbuf,
               const char *what,
               GError    **error)
{
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree uint8_t   *grey = NULL;
  zbar_image_scanner_t *scanner;
  zbar_image_t         *image;
  const uint8_t        *pixels = gdk_pixbuf_read_pixels (pixbuf);
  int                   width = gdk_pixbuf_get_width (pixbuf);
  int                   height = gdk_pixbuf_get_height (pixbuf);
  int                   channels = gdk_pixbuf_get_n_channels (pixbuf);
  int                   rowstride = gdk_pixbuf_get_rowstride (pixbuf);
  gboolean              has_alpha = gdk_pixbuf_get_has_alpha (pixbuf);
  int                   found;

  g_assert (gdk_pixbuf_get_colorspace (pixbuf) == GDK_COLORSPACE_RGB);
  g_assert (gdk_pixbuf_get_bits_per_sample (pixbuf) == 8);
  g_assert (channels == (has_alpha ? 4 : 3));

  grey = g_malloc ((size_t) width * (size_t) height);
  for (int y = 0; y < height; y++)
    {
      const uint8_t *p = pixels + (size_t) y * (size_t) rowstride;
      uint8_t       *g = grey + (size_t) y * (size_t) width;

      for (int x = 0; x < width; x++, p += channels)
        {
          /* ITU-R BT.601 luma, as zbar's own RGB conversion. */
          unsigned luma = (77u * p[0] + 150u * p[1] + 29u * p[2]) >> 8;

          if (has_alpha)
            luma = (luma * p[3] + 255u * (255u - p[3])) / 255u;
          g[x] = (uint8_t) luma;
        }
    }

  scanner = qr_scanner_new ();
  image = zbar_image_create ();
  zbar_image_set_format (image, FOURCC_Y800);
  zbar_image_set_size (image, (unsigned) width, (unsigned) height);
  zbar_image_set_data (image, grey, (unsigned long) width * (unsigned long) height, NULL);
  found = zbar_scan_image (scanner, image);
  if (found > 0)
    collect_texts (image, texts);
  zbar_image_destroy (image);
  zbar_image_scanner_destroy (scanner);

  if (texts->len == 0)
    {
      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_NOT_FOUND, "No QR code found in %s", what);
      return NULL;
    }
  g_ptr_array_add (texts, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&texts), FALSE);
}

/**
 * pm_qr_decode_pixbuf:
 * @pixbuf: a picture (a camera frame, a screenshot), any size
 *
 * Reads the QR codes in @pixbuf with zbar (QR codes only; dark on light).
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): the text of
 * every QR code found, at least one, in zbar's order; %NULL with
 * PM_QR_ERROR_NOT_FOUND if there is none (codes that do not hold UTF-8 text
 * do not count)
 */
char **
pm_qr_decode_pixbuf (GdkPixbuf *pixbuf,
                     GError   **error)
{
  g_return_val_if_fail (GDK_IS_PIXBUF (pixbuf), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return decode_pixbuf (pixbuf, "the picture", error);
}

/**
 * pm_qr_decode_file:
 * @path: a picture file in any format gdk-pixbuf reads (PNG, JPEG, …)
 *
 * Loads @path with gdk-pixbuf and reads its QR codes as
 * pm_qr_decode_pixbuf() does. A picture of more than PM_QR_MAX_IMAGE_PIXELS
 * is refused from its header, before its pixels are read.
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): the texts,
 * or %NULL with PM_QR_ERROR_READ (unreadable, not a picture, too large) or
 * PM_QR_ERROR_NOT_FOUND ("No QR code found in FILE")
 */
char **
pm_qr_decode_file (const char *path,
                   GError    **error)
{
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autofree char *name = NULL;
  int              width = 0, height = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  name = g_filename_display_name (path);
  if (g_access (path, R_OK) != 0)
    {
      int saved = errno;

      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_READ, "Could not read %s: %s", name,
                   g_strerror (saved));
      return NULL;
    }
  if (gdk_pixbuf_get_file_info (path, &width, &height) == NULL)
    {
      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_READ,
                   "%s is not a picture in a format this computer can read (PNG, JPEG, …)",
                   name);
      return NULL;
    }
  if ((int64_t) width * height > PM_QR_MAX_IMAGE_PIXELS)
    goto too_large;
  pixbuf = gdk_pixbuf_new_from_file (path, &local_error);
  if (pixbuf == NULL)
    {
      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_READ, "Could not read %s: %s", name,
                   local_error->message);
      return NULL;
    }
  /* The header may not have said, or the file may have changed since. */
  width = gdk_pixbuf_get_width (pixbuf);
  height = gdk_pixbuf_get_height (pixbuf);
  if ((int64_t) width * height > PM_QR_MAX_IMAGE_PIXELS)
    goto too_large;
  return decode_pixbuf (pixbuf, name, error);

too_large:
  g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_READ,
               "%s is too large to read (%d×%d pixels; at most %d million)", name, width,
               height, PM_QR_MAX_IMAGE_PIXELS / 1000000);
  return NULL;
}

/* --- Cameras -------------------------------------------------------------------- */

static int
compare_camera_numbers (gconstpointer a,
                        gconstpointer b)
{
  const char *x = *(const char *const *) a + strlen ("/dev/video");
  const char *y = *(const char *const *) b + strlen ("/dev/video");

  return (int) (g_ascii_strtoull (x, NULL, 10) > g_ascii_strtoull (y, NULL, 10)) -
         (int) (g_ascii_strtoull (x, NULL, 10) < g_ascii_strtoull (y, NULL, 10));
}

/**
 * pm_qr_list_cameras:
 *
 * The Video4Linux devices: the character devices /dev/video0, /dev/video1, …
 * in number order. Some of them may be a camera's metadata node rather than
 * a picture source; pm_qr_scan_camera_async() skips those.
 *
 * Returns: (transfer full) (array zero-terminated=1): their paths, maybe none
 */
char **
pm_qr_list_cameras (void)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open ("/dev", 0, NULL);
  const char *entry;

  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    {
      const char      *digits = entry + strlen ("video");
      g_autofree char *path = NULL;
      GStatBuf         st;

      if (!g_str_has_prefix (entry, "video") || digits[0] == '\0' ||
          strspn (digits, "0123456789") != strlen (digits) || strlen (digits) > 4)
        continue;
      path = g_build_filename ("/dev", entry, NULL);
      if (g_stat (path, &st) == 0 && S_ISCHR (st.st_mode))
        g_ptr_array_add (paths, g_steal_pointer (&path));
    }
  g_ptr_array_sort (paths, compare_camera_numbers);
  g_ptr_array_add (paths, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&paths), FALSE);
}

/* zbar's error text is "ERROR: zbar video in _zbar_video_open():\n    system
 * error: DETAIL": DETAIL is what a person can act on. */
static char *
video_error (const zbar_video_t *video)
{
  g_autofree char *full = g_strdup (zbar_video_error_string (video, 0));
  const char      *detail;

  g_strstrip (full);
  detail = strrchr (full, '\n') != NULL ? strrchr (full, '\n') + 1 : full;
  while (g_ascii_isspace (*detail))
    detail++;
  if (g_str_has_prefix (detail, "system error: "))
    detail += strlen ("system error: ");
  return g_strdup (*detail != '\0' ? detail : "unknown error");
}

/* Scans frames from @device until a QR code holding text is seen. *@opened
 * says whether the device opened as a camera (a failure before that lets the
 * caller try the next device). */
static char *
scan_device (const char   *device,
             GCancellable *cancellable,
             gboolean     *opened,
             GError      **error)
{
  zbar_video_t         *video = zbar_video_create ();
  zbar_image_scanner_t *scanner = NULL;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  GPollFD  cancel_fd = { .fd = -1 };
  gboolean have_cancel_fd = FALSE;
  int64_t  last_frame;
  int      fd;

  *opened = FALSE;
  if (zbar_video_open (video, device) < 0 || zbar_negotiate_format (video, NULL) < 0 ||
      zbar_video_enable (video, 1) < 0)
    {
      g_autofree char *why = video_error (video);

      g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_CAMERA, "Could not open the camera %s: %s",
                   device, why);
      zbar_video_destroy (video);
      return NULL;
    }
  *opened = TRUE;

  scanner = qr_scanner_new ();
  fd = zbar_video_get_fd (video);
  if (cancellable != NULL && fd >= 0)
    have_cancel_fd = g_cancellable_make_pollfd (cancellable, &cancel_fd);
  last_frame = g_get_monotonic_time ();
  while (texts->len == 0)
    {
      zbar_image_t *frame, *grey;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      if (fd >= 0)
        {
          struct pollfd fds[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = cancel_fd.fd, .events = POLLIN },
          };
          int64_t elapsed_ms = (g_get_monotonic_time () - last_frame) / 1000;
          int     ready;

          if (elapsed_ms >= PM_QR_CAMERA_FRAME_TIMEOUT_MS)
            {
              g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_CAMERA,
                           "The camera %s sent no picture for %d seconds", device,
                           PM_QR_CAMERA_FRAME_TIMEOUT_MS / 1000);
              break;
            }
          ready = poll (fds, have_cancel_fd ? 2 : 1,
                        (int) (PM_QR_CAMERA_FRAME_TIMEOUT_MS - elapsed_ms));
          if (ready < 0 && errno == EINTR)
            continue;
          if (ready < 0)
            {
              int saved = errno;

              g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_CAMERA, "Camera %s: %s", device,
                           g_strerror (saved));
              break;
            }
          if (ready == 0 || (fds[0].revents & POLLIN) == 0)
            {
              if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
                {
                  g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_CAMERA,
                               "The camera %s went away", device);
                  break;
                }
              continue;
            }
        }
      frame = zbar_video_next_image (video);
      if (frame == NULL)
        {
          g_autofree char *why = video_error (video);

          g_set_error (error, PM_QR_ERROR, PM_QR_ERROR_CAMERA, "The camera %s stopped: %s",
                       device, why);
          break;
        }
      last_frame = g_get_monotonic_time ();
      grey = zbar_image_convert (frame, FOURCC_Y800);
      zbar_image_destroy (frame);
      if (grey != NULL)
        {
          if (zbar_scan_image (scanner, grey) > 0)
            collect_texts (grey, texts);
          zbar_image_destroy (grey);
        }
    }

  if (have_cancel_fd)
    g_cancellable_release_fd (cancellable);
  zbar_video_enable (video, 0);
  zbar_image_scanner_destroy (scanner);
  zbar_video_destroy (video);
  if (texts->len == 0)
    return NULL;
  return g_strdup (g_ptr_array_index (texts, 0));
}

static void
scan_camera_thread (GTask        *task,
                    gpointer      source_object,
                    gpointer      task_data,
                    GCancellable *cancellable)
{
  const char *device = task_data;
  g_auto (GStrv) devices = NULL;
  g_autoptr (GError) error = NULL;

  if (device != NULL)
    {
      if (!g_file_test (device, G_FILE_TEST_EXISTS))
        {
          g_task_return_new_error (task, PM_QR_ERROR, PM_QR_ERROR_NO_CAMERA,
                                   "No camera found at %s", device);
          return;
        }
      devices = g_new0 (char *, 2);
      devices[0] = g_strdup (device);
    }
  else
    {
      devices = pm_qr_list_cameras ();
      if (devices[0] == NULL)
        {
          g_task_return_new_error (task, PM_QR_ERROR, PM_QR_ERROR_NO_CAMERA, "No camera found");
          return;
        }
    }

  /* The first device that opens as a camera; a later one only if it fails
   * to open (a camera's metadata node, a busy device). */
  for (size_t i = 0; devices[i] != NULL; i++)
    {
      gboolean opened = FALSE;
      char    *text;

      g_clear_error (&error);
      text = scan_device (devices[i], cancellable, &opened, &error);
      if (text != NULL)
        {
          g_task_return_pointer (task, text, g_free);
          return;
        }
      if (opened)
        break;
    }
  g_task_return_error (task, g_steal_pointer (&error));
}

/**
 * pm_qr_scan_camera_async:
 * @device: (nullable): a Video4Linux device ("/dev/video0"), or %NULL for the
 *   first of pm_qr_list_cameras() that opens
 * @cancellable: (nullable): stops the scan (and frees the camera)
 *
 * Reads pictures from a camera, in a worker thread, until one shows a QR
 * code holding text (zbar's video API: Video4Linux 2, the format zbar
 * negotiates, converted to grey). Any QR code ends the scan: parse its text
 * and scan again if it is not what you wanted.
 */
void
pm_qr_scan_camera_async (const char         *device,
                         GCancellable       *cancellable,
                         GAsyncReadyCallback callback,
                         gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_qr_scan_camera_async);
  g_task_set_task_data (task, g_strdup (device), g_free);
  g_task_set_return_on_cancel (task, FALSE);
  g_task_run_in_thread (task, scan_camera_thread);
}

/**
 * pm_qr_scan_camera_finish:
 *
 * Returns: (transfer full) (nullable): the text of the first QR code seen,
 * or %NULL with PM_QR_ERROR_NO_CAMERA ("No camera found"),
 * PM_QR_ERROR_CAMERA (could not open, no picture for
 * PM_QR_CAMERA_FRAME_TIMEOUT_MS, gone) or G_IO_ERROR_CANCELLED
 */
char *
pm_qr_scan_camera_finish (GAsyncResult *result,
                          GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == pm_qr_scan_camera_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
