/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-pair-dialog.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "pm-app-limits.h"
#include "pm-application.h"
#include "pm-identity.h"
#include "pm-pair-cert.h"
#include "pm-pair-client.h"
#include "pm-pair-code.h"
#include "pm-pair-host.h"
#include "pm-paired-store.h"
#include "pm-qr.h"
#include "pm-screenshot.h"
#include "pm-state.h"

typedef enum {
  ROLE_NONE,
  ROLE_HOST,   /* "Show a Code" */
  ROLE_CLIENT, /* "Scan a Code" */
} Role;

struct _PmPairDialog {
  AdwWindow parent_instance;

  char                 *state_dir;
  char                 *device_name; /* as given; NULL: found once the identity is loaded */
  GCancellable         *cancellable; /* the identity, the host's wait, the client, the camera */
  GCancellable         *camera_cancellable;
  PmIdentity           *identity;
  Role                  role;
  PmPairCode           *pending_code; /* ROLE_CLIENT: to pair with once the identity is here */
  PmPairHost           *host;
  PmPairClient         *client;
  int64_t               expires; /* the shown code's, unix time */
  unsigned              countdown_source;
  char                 *verification_code;
  char                 *peer_name;
  GtkFileChooserNative *chooser;

  /* --pair-show (pm_pair_dialog_run_test) */
  char    *test_dir;
  char    *test_scan_file;      /* --pair-scan: the picture to pair with */
  char    *test_camera_message; /* --pair-scan: what the scan page said after "Use Camera" */
  unsigned test_timeout_source;
  unsigned test_tick_id;
  int      test_frames;
  gboolean test_shot;

  GtkStack      *stack;
  GtkPicture    *qr_picture;
  GtkLabel      *expiry_label;
  GtkLabel      *uri_label;
  GtkWidget     *copy_button;
  GtkEntry      *code_entry;
  GtkWidget     *open_button;
  GtkWidget     *camera_button;
  GtkWidget     *camera_box;
  GtkSpinner    *camera_spinner;
  GtkLabel      *scan_error_label;
  GtkSpinner    *progress_spinner;
  GtkLabel      *progress_label;
  AdwStatusPage *verify_page;
  GtkLabel      *verify_code_label;
  GtkWidget     *decision_box;
  GtkSpinner    *verify_spinner;
  AdwStatusPage *result_page;
};

G_DEFINE_FINAL_TYPE (PmPairDialog, pm_pair_dialog, ADW_TYPE_WINDOW)

static void test_finish (PmPairDialog *self,
                         const char   *result,
                         const char   *message);

/* --- pages ------------------------------------------------------------------------- */

static void
stop_countdown (PmPairDialog *self)
{
  g_clear_handle_id (&self->countdown_source, g_source_remove);
}

static void
set_page (PmPairDialog *self,
          const char   *name)
{
  gtk_stack_set_visible_child_name (self->stack, name);
  if (g_str_equal (name, "progress"))
    gtk_spinner_start (self->progress_spinner);
  else
    gtk_spinner_stop (self->progress_spinner);
  if (!g_str_equal (name, "show"))
    stop_countdown (self);
}

static void
show_progress (PmPairDialog *self,
               const char   *text)
{
  gtk_label_set_text (self->progress_label, text);
  set_page (self, "progress");
}

/* The last page. @result: "paired", "rejected", "expired" or "failed" (the
 * test's report says which). */
static void
show_result (PmPairDialog *self,
             const char   *result,
             const char   *icon_name,
             const char   *title,
             const char   *description)
{
  g_autofree char *markup = g_markup_escape_text (description, -1);

  stop_countdown (self);
  adw_status_page_set_icon_name (self->result_page, icon_name);
  adw_status_page_set_title (self->result_page, title);
  adw_status_page_set_description (self->result_page, markup);
  set_page (self, "result");
  if (self->test_dir != NULL)
    test_finish (self, result, description);
}

static void
show_error (PmPairDialog *self,
            const GError *error)
{
  if (g_error_matches (error, PM_PAIR_ERROR, PM_PAIR_ERROR_REJECTED))
    show_result (self, "rejected", "action-unavailable-symbolic", _ ("Pairing Rejected"),
                 error->message);
  else if (g_error_matches (error, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_EXPIRED))
    show_result (self, "expired", "alarm-symbolic", _ ("Code Expired"), error->message);
  else
    show_result (self, "failed", "dialog-error-symbolic", _ ("Pairing Failed"), error->message);
}

static void
show_paired (PmPairDialog         *self,
             const PmPairedDevice *device)
{
  g_autofree char *text = g_strdup_printf (
    _ ("“%s” is paired with this device. It appears in the device list when both run on this "
       "network."),
    device->name);

  show_result (self, "paired", "emblem-ok-symbolic", _ ("Paired"), text);
}

static void
show_verify (PmPairDialog *self,
             const char   *code,
             const char   *peer_name,
             gboolean      decide)
{
  g_autofree char *text = NULL;

  g_free (self->verification_code);
  self->verification_code = g_strdup (code);
  g_free (self->peer_name);
  self->peer_name = g_strdup (peer_name);
  if (decide)
    text = g_strdup_printf (
      _ ("“%s” wants to pair. Accept only if it shows the same code."), peer_name);
  else
    text = g_strdup_printf (_ ("Check that “%s” shows the same code, and accept there."),
                            peer_name);
  adw_status_page_set_description (self->verify_page, NULL);
  adw_status_page_set_description (self->verify_page, text);
  gtk_label_set_text (self->verify_code_label, code);
  gtk_widget_set_visible (self->decision_box, decide);
  gtk_widget_set_visible (GTK_WIDGET (self->verify_spinner), !decide);
  gtk_spinner_set_spinning (self->verify_spinner, !decide);
  set_page (self, "verify");
}

/* --- this device ------------------------------------------------------------------- */

/* This device's name for a pairing: as given, else the enrolled name, else
 * the identity's, else the host name (as `pipermesh pair`). */
static const char *
self_name (PmPairDialog *self)
{
  if (self->device_name == NULL)
    {
      g_auto (PmStateCoordination) coord = { NULL };

      if (pm_state_load_coordination (self->state_dir, &coord, NULL) && coord.name != NULL)
        self->device_name = g_strdup (coord.name);
      else if (pm_identity_get_device_name (self->identity) != NULL)
        self->device_name = g_strdup (pm_identity_get_device_name (self->identity));
      else
        self->device_name = g_strdup (g_get_host_name ());
    }
  return self->device_name;
}

static void start_host (PmPairDialog *self);
static void start_client (PmPairDialog *self);

static void
go_on (PmPairDialog *self)
{
  if (self->role == ROLE_HOST)
    start_host (self);
  else if (self->role == ROLE_CLIENT)
    start_client (self);
}

static void
on_identity (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr (PmPairDialog) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmIdentity) identity = pm_identity_load_or_create_finish (result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (identity == NULL)
    {
      show_result (self, "failed", "dialog-error-symbolic", _ ("Pairing Failed"), error->message);
      return;
    }
  g_set_object (&self->identity, identity);
  go_on (self);
}

/* Loads the identity once, then goes on with the role chosen. */
static void
with_identity (PmPairDialog *self,
               Role          role)
{
  self->role = role;
  if (self->identity != NULL)
    {
      go_on (self);
      return;
    }
  show_progress (self, _ ("Loading this device’s keys…"));
  pm_identity_load_or_create_async (self->state_dir, PM_KEY_STORE_AUTO, self->cancellable,
                                    on_identity, g_object_ref (self));
}

/* --- Show a Code (the host) ----------------------------------------------------------- */

static void
update_expiry (PmPairDialog *self)
{
  int64_t          left = MAX (self->expires - g_get_real_time () / G_USEC_PER_SEC, 0);
  g_autofree char *text = NULL;

  /* TRANSLATORS: minutes and seconds until the pairing code expires, e.g. "Expires in 9:59" */
  text = g_strdup_printf (_ ("Expires in %d:%02d"), (int) (left / 60), (int) (left % 60));
  gtk_label_set_text (self->expiry_label, text);
}

static gboolean
on_countdown (gpointer user_data)
{
  PmPairDialog *self = user_data;

  update_expiry (self);
  if (self->expires <= g_get_real_time () / G_USEC_PER_SEC)
    {
      self->countdown_source = 0;
      if (self->host != NULL)
        pm_pair_host_stop (self->host);
      show_result (self, "expired", "alarm-symbolic", _ ("Code Expired"),
                   _ ("Nobody used the code in time. Show a new code to try again."));
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* A timer only while the code shows. */
static void
on_visible_page (PmPairDialog *self)
{
  const char *page = gtk_stack_get_visible_child_name (self->stack);

  if (g_strcmp0 (page, "show") == 0 && self->host != NULL && self->countdown_source == 0)
    {
      update_expiry (self);
      self->countdown_source =
        g_timeout_add_seconds (PM_APP_PAIR_COUNTDOWN_S, on_countdown, self);
    }
  else if (g_strcmp0 (page, "show") != 0)
    stop_countdown (self);
}

static void
on_host_verify (PmPairHost   *host,
                const char   *code,
                const char   *peer_name,
                const char   *peer_type,
                PmPairDialog *self)
{
  show_verify (self, code, peer_name, TRUE);
  if (self->test_dir != NULL)
    pm_pair_host_accept (host);
}

static void
on_host_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (PmPairDialog) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) device =
    pm_pair_host_wait_finish (PM_PAIR_HOST (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  pm_pair_host_stop (PM_PAIR_HOST (source));
  /* The countdown already said that the code expired. */
  if (g_strcmp0 (gtk_stack_get_visible_child_name (self->stack), "result") == 0)
    return;
  if (device == NULL)
    show_error (self, error);
  else
    show_paired (self, device);
}

static void
start_host (PmPairDialog *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GTlsCertificate) certificate = NULL;
  g_autoptr (PmPairedStore) store = NULL;
  g_autoptr (GPtrArray) addresses = NULL;
  g_autoptr (PmQr) qr = NULL;
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  g_autofree char  *uri = NULL;
  const PmPairCode *code;
  PmPairLimits      limits;
  int               scale;

  certificate = pm_pair_cert_load_or_create (self->state_dir, NULL, &error);
  if (certificate == NULL)
    {
      show_result (self, "failed", "dialog-error-symbolic", _ ("Pairing Failed"), error->message);
      return;
    }
  pm_pair_limits_default (&limits);
  store = pm_paired_store_new_for_state_dir (self->state_dir);
  self->host = pm_pair_host_new (self->identity, certificate, store, self_name (self),
                                 pm_pair_device_type_default (), &limits);
  if (self->test_dir != NULL)
    {
      addresses = g_ptr_array_new_with_free_func (g_object_unref);
      g_ptr_array_add (addresses, g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4));
    }
  if (!pm_pair_host_start (self->host, addresses, 0, PM_PAIR_CODE_LIFETIME_S, &error))
    {
      g_clear_object (&self->host);
      show_result (self, "failed", "dialog-error-symbolic", _ ("Could Not Show a Code"),
                   error->message);
      return;
    }
  code = pm_pair_host_get_code (self->host);
  self->expires = code->expires;
  uri = pm_pair_code_to_uri (code);
  qr = pm_qr_new (uri, &error);
  if (qr == NULL)
    {
      pm_pair_host_stop (self->host);
      g_clear_object (&self->host);
      show_result (self, "failed", "dialog-error-symbolic", _ ("Could Not Show a Code"),
                   error->message);
      return;
    }
  /* Whole pixels per module: the picture shows at its natural size, sharp. */
  scale = (PM_APP_PAIR_QR_MIN_PX + pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE - 1) /
          (pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE);
  pixbuf = pm_qr_to_pixbuf (qr, CLAMP (scale, 1, PM_QR_MAX_SCALE));
  texture = gdk_texture_new_for_pixbuf (pixbuf);
  gtk_picture_set_paintable (self->qr_picture, GDK_PAINTABLE (texture));
  gtk_label_set_text (self->uri_label, uri);

  g_signal_connect_object (self->host, "verify", G_CALLBACK (on_host_verify), self, 0);
  pm_pair_host_wait_async (self->host, self->cancellable, on_host_done, g_object_ref (self));
  set_page (self, "show");
  on_visible_page (self);
  /* Not the selectable text: it would show all selected. */
  gtk_widget_grab_focus (self->copy_button);
}

static void
on_copy_clicked (PmPairDialog *self)
{
  gdk_clipboard_set_text (gtk_widget_get_clipboard (GTK_WIDGET (self)),
                          gtk_label_get_text (self->uri_label));
}

static void
on_accept_clicked (PmPairDialog *self)
{
  if (self->host == NULL)
    return;
  gtk_widget_set_visible (self->decision_box, FALSE);
  pm_pair_host_accept (self->host);
  show_progress (self, _ ("Saving the pairing…"));
}

static void
on_reject_clicked (PmPairDialog *self)
{
  if (self->host == NULL)
    return;
  gtk_widget_set_visible (self->decision_box, FALSE);
  /* Sent to the other device: its error message says this. */
  pm_pair_host_reject (self->host, "The host's user rejected the pairing");
}

/* --- Scan a Code (the client) --------------------------------------------------------- */

static void
show_scan_error (PmPairDialog *self,
                 const char   *message)
{
  gtk_label_set_text (self->scan_error_label, message != NULL ? message : "");
  gtk_widget_set_visible (GTK_WIDGET (self->scan_error_label), message != NULL);
}

static void
on_client_verify (PmPairClient *client,
                  const char   *code,
                  const char   *host_name,
                  const char   *host_type,
                  PmPairDialog *self)
{
  show_verify (self, code, host_name, FALSE);
}

static void
on_client_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr (PmPairDialog) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairedDevice) device =
    pm_pair_client_pair_finish (PM_PAIR_CLIENT (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (device == NULL)
    show_error (self, error);
  else
    show_paired (self, device);
}

static void
start_client (PmPairDialog *self)
{
  g_autoptr (PmPairedStore) store = pm_paired_store_new_for_state_dir (self->state_dir);
  g_autoptr (PmPairCode) code = g_steal_pointer (&self->pending_code);
  g_autofree char *text = NULL;
  PmPairLimits     limits;

  g_assert (code != NULL);
  pm_pair_limits_default (&limits);
  g_clear_object (&self->client);
  self->client = pm_pair_client_new (self->identity, store, self_name (self),
                                     pm_pair_device_type_default (), &limits);
  g_signal_connect_object (self->client, "verify", G_CALLBACK (on_client_verify), self, 0);
  text = g_strdup_printf (_ ("Connecting to “%s”…"), code->name);
  show_progress (self, text);
  pm_pair_client_pair_async (self->client, code, self->cancellable, on_client_done,
                             g_object_ref (self));
}

/* The first pairing code among @texts (what a QR reader found), or a message
 * on the scan page. */
static void
pair_with_texts (PmPairDialog      *self,
                 const char *const *texts)
{
  g_autoptr (GError) error = NULL;
  PmPairCode *code = pm_pair_code_parse_first (texts, &error);

  if (code == NULL)
    {
      show_scan_error (self, error->message);
      return;
    }
  show_scan_error (self, NULL);
  g_clear_pointer (&self->pending_code, pm_pair_code_free);
  self->pending_code = code;
  with_identity (self, ROLE_CLIENT);
}

static void
on_paste_clicked (PmPairDialog *self)
{
  g_autofree char *text = g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->code_entry)));
  const char      *texts[] = { g_strstrip (text), NULL };

  if (*texts[0] == '\0')
    {
      show_scan_error (self, _ ("Paste the code’s text first."));
      return;
    }
  pair_with_texts (self, texts);
}

/* The QR code in the picture at @path (PNG or JPEG, through zbar). */
static void
open_picture (PmPairDialog *self,
              const char   *path)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) texts = pm_qr_decode_file (path, &error);

  if (texts == NULL)
    {
      show_scan_error (self, error->message);
      return;
    }
  pair_with_texts (self, (const char *const *) texts);
}

static void
on_chooser_response (GtkNativeDialog *chooser,
                     int              response,
                     PmPairDialog    *self)
{
  g_autoptr (GFile) file = NULL;
  g_autofree char *path = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
  g_clear_object (&self->chooser);
  if (file == NULL)
    return;
  path = g_file_get_path (file);
  if (path == NULL)
    {
      show_scan_error (self, _ ("Choose a picture saved on this computer."));
      return;
    }
  open_picture (self, path);
}

static void
on_open_clicked (PmPairDialog *self)
{
  g_autoptr (GtkFileFilter) filter = gtk_file_filter_new ();

  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (_ ("Open a Picture of the Code"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _ ("_Open"),
                                               _ ("_Cancel"));
  gtk_file_filter_set_name (filter, _ ("PNG and JPEG pictures"));
  gtk_file_filter_add_mime_type (filter, "image/png");
  gtk_file_filter_add_mime_type (filter, "image/jpeg");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
set_camera_busy (PmPairDialog *self,
                 gboolean      busy)
{
  gtk_widget_set_visible (self->camera_box, busy);
  gtk_spinner_set_spinning (self->camera_spinner, busy);
  gtk_widget_set_sensitive (self->camera_button, !busy);
}

static void
on_camera_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr (PmPairDialog) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = pm_qr_scan_camera_finish (result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      if (!g_cancellable_is_cancelled (self->cancellable))
        set_camera_busy (self, FALSE);
      return;
    }
  g_clear_object (&self->camera_cancellable);
  set_camera_busy (self, FALSE);
  if (text == NULL)
    {
      if (g_error_matches (error, PM_QR_ERROR, PM_QR_ERROR_NO_CAMERA))
        show_scan_error (self, _ ("No camera found"));
      else
        show_scan_error (self, error->message);
      /* --pair-scan: what the page said, then the picture. */
      if (self->test_dir != NULL && self->test_scan_file != NULL)
        {
          self->test_camera_message = g_strdup (gtk_label_get_text (self->scan_error_label));
          open_picture (self, self->test_scan_file);
        }
      return;
    }
  pair_with_texts (self, (const char *const[]){ text, NULL });
}

static void
on_camera_clicked (PmPairDialog *self)
{
  if (self->camera_cancellable != NULL)
    return;
  show_scan_error (self, NULL);
  self->camera_cancellable = g_cancellable_new ();
  set_camera_busy (self, TRUE);
  pm_qr_scan_camera_async (NULL, self->camera_cancellable, on_camera_done, g_object_ref (self));
}

static void
on_camera_stop_clicked (PmPairDialog *self)
{
  if (self->camera_cancellable != NULL)
    g_cancellable_cancel (self->camera_cancellable);
  g_clear_object (&self->camera_cancellable);
}

/* --- public ------------------------------------------------------------------------ */

void
pm_pair_dialog_show_code (PmPairDialog *self)
{
  g_return_if_fail (PM_IS_PAIR_DIALOG (self));

  if (self->host != NULL)
    {
      set_page (self, "show");
      on_visible_page (self);
      return;
    }
  with_identity (self, ROLE_HOST);
}

void
pm_pair_dialog_scan_code (PmPairDialog *self)
{
  g_return_if_fail (PM_IS_PAIR_DIALOG (self));

  show_scan_error (self, NULL);
  set_page (self, "scan");
  gtk_widget_grab_focus (GTK_WIDGET (self->code_entry));
}

PmPairDialog *
pm_pair_dialog_new (GtkWindow  *parent,
                    const char *state_dir,
                    const char *device_name)
{
  PmPairDialog *self;

  g_return_val_if_fail (parent == NULL || GTK_IS_WINDOW (parent), NULL);
  g_return_val_if_fail (state_dir != NULL, NULL);

  self = g_object_new (PM_TYPE_PAIR_DIALOG, "transient-for", parent, NULL);
  self->state_dir = g_strdup (state_dir);
  self->device_name = g_strdup (device_name);
  return self;
}

/* --- --pair-show ----------------------------------------------------------------------- */

static void
test_finish (PmPairDialog *self,
             const char   *result,
             const char   *message)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *json = NULL, *path = NULL;
  g_autoptr (GError) error = NULL;
  GtkWindow      *parent = gtk_window_get_transient_for (GTK_WINDOW (self));
  GtkApplication *app = parent != NULL ? gtk_window_get_application (parent) : NULL;
  gboolean        paired =
    g_strcmp0 (result, "paired") == 0 && (self->test_shot || self->test_scan_file != NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "result");
  json_builder_add_string_value (builder, result);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, message);
  json_builder_set_member_name (builder, "verification_code");
  json_builder_add_string_value (builder, self->verification_code);
  json_builder_set_member_name (builder, "peer");
  json_builder_add_string_value (builder, self->peer_name);
  json_builder_set_member_name (builder, "screenshot");
  json_builder_add_string_value (builder, self->test_shot ? "pair.png" : NULL);
  json_builder_set_member_name (builder, "camera_message");
  json_builder_add_string_value (builder, self->test_camera_message);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  json = json_generator_to_data (generator, NULL);
  path = g_build_filename (self->test_dir, "pair-report.json", NULL);
  if (!g_file_set_contents (path, json, -1, &error))
    {
      g_printerr ("pipermesh-app: %s\n", error->message);
      paired = FALSE;
    }
  g_clear_pointer (&self->test_dir, g_free);
  g_clear_handle_id (&self->test_timeout_source, g_source_remove);
  if (app != NULL)
    {
      if (!paired)
        pm_application_set_exit_status (PM_APPLICATION (app), 1);
      g_application_quit (G_APPLICATION (app));
    }
}

static gboolean
on_test_timeout (gpointer user_data)
{
  PmPairDialog *self = user_data;

  self->test_timeout_source = 0;
  test_finish (self, "timeout", "No device paired in time");
  return G_SOURCE_REMOVE;
}

/* Once the QR code has been drawn for a few frames: DIR/pair.png, written
 * under another name first so that the test never reads half a file. */
static gboolean
on_test_tick (GtkWidget     *widget,
              GdkFrameClock *clock,
              gpointer       user_data)
{
  PmPairDialog    *self = PM_PAIR_DIALOG (widget);
  g_autofree char *part = NULL, *path = NULL;
  g_autoptr (GError) error = NULL;

  if (self->test_dir == NULL)
    {
      self->test_tick_id = 0;
      return G_SOURCE_REMOVE;
    }
  /* The stack crossfades: the page is drawn alone once the transition ends. */
  if (g_strcmp0 (gtk_stack_get_visible_child_name (self->stack), "show") != 0 ||
      gtk_picture_get_paintable (self->qr_picture) == NULL ||
      gtk_stack_get_transition_running (self->stack))
    {
      self->test_frames = 0;
      return G_SOURCE_CONTINUE;
    }
  if (++self->test_frames < PM_APP_SCREENSHOT_SETTLE_FRAMES)
    return G_SOURCE_CONTINUE;
  self->test_tick_id = 0;
  part = g_build_filename (self->test_dir, "pair.png.part", NULL);
  path = g_build_filename (self->test_dir, "pair.png", NULL);
  if (!pm_screenshot_save_widget (widget, part, &error) || g_rename (part, path) != 0)
    {
      test_finish (self, "failed",
                   error != NULL ? error->message : "Could not rename the screenshot");
      return G_SOURCE_REMOVE;
    }
  self->test_shot = TRUE;
  g_print ("pipermesh-app: the pairing code is in %s\n", path);
  return G_SOURCE_REMOVE;
}

void
pm_pair_dialog_run_test (PmPairDialog *self,
                         const char   *dir,
                         const char   *scan_file)
{
  g_return_if_fail (PM_IS_PAIR_DIALOG (self));
  g_return_if_fail (dir != NULL);

  g_free (self->test_dir);
  self->test_dir = g_strdup (dir);
  self->test_timeout_source =
    g_timeout_add_seconds (PM_APP_PAIR_TEST_TIMEOUT_S, on_test_timeout, self);
  gtk_window_present (GTK_WINDOW (self));
  if (scan_file == NULL)
    {
      self->test_tick_id =
        gtk_widget_add_tick_callback (GTK_WIDGET (self), on_test_tick, NULL, NULL);
      pm_pair_dialog_show_code (self);
      return;
    }
  self->test_scan_file = g_strdup (scan_file);
  pm_pair_dialog_scan_code (self);
  /* "Use Camera" first where there is none (it would wait for a picture). */
  {
    g_auto (GStrv) cameras = pm_qr_list_cameras ();

    if (cameras == NULL || cameras[0] == NULL)
      on_camera_clicked (self);
    else
      open_picture (self, scan_file);
  }
}

/* --- GObject ----------------------------------------------------------------------- */

static void
pm_pair_dialog_dispose (GObject *object)
{
  PmPairDialog *self = PM_PAIR_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  /* Closing the dialog stops the camera too. */
  if (self->camera_cancellable != NULL)
    g_cancellable_cancel (self->camera_cancellable);
  if (self->stack != NULL)
    g_signal_handlers_disconnect_by_data (self->stack, self);
  stop_countdown (self);
  g_clear_handle_id (&self->test_timeout_source, g_source_remove);
  if (self->test_tick_id != 0)
    gtk_widget_remove_tick_callback (GTK_WIDGET (self), self->test_tick_id);
  self->test_tick_id = 0;
  if (self->chooser != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->chooser, self);
      gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
      g_clear_object (&self->chooser);
    }
  if (self->host != NULL)
    pm_pair_host_stop (self->host);
  g_clear_object (&self->host);
  g_clear_object (&self->client);
  g_clear_object (&self->camera_cancellable);
  g_clear_object (&self->identity);
  gtk_widget_dispose_template (GTK_WIDGET (self), PM_TYPE_PAIR_DIALOG);
  G_OBJECT_CLASS (pm_pair_dialog_parent_class)->dispose (object);
}

static void
pm_pair_dialog_finalize (GObject *object)
{
  PmPairDialog *self = PM_PAIR_DIALOG (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->pending_code, pm_pair_code_free);
  g_free (self->state_dir);
  g_free (self->device_name);
  g_free (self->verification_code);
  g_free (self->peer_name);
  g_free (self->test_dir);
  g_free (self->test_scan_file);
  g_free (self->test_camera_message);
  G_OBJECT_CLASS (pm_pair_dialog_parent_class)->finalize (object);
}

static void
pm_pair_dialog_class_init (PmPairDialogClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = pm_pair_dialog_dispose;
  object_class->finalize = pm_pair_dialog_finalize;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/pipermesh/PiperMesh/pm-pair-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, stack);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, qr_picture);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, expiry_label);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, uri_label);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, copy_button);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, code_entry);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, open_button);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, camera_button);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, camera_box);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, camera_spinner);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, scan_error_label);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, progress_spinner);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, progress_label);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, verify_page);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, verify_code_label);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, decision_box);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, verify_spinner);
  gtk_widget_class_bind_template_child (widget_class, PmPairDialog, result_page);
  gtk_widget_class_bind_template_callback (widget_class, pm_pair_dialog_show_code);
  gtk_widget_class_bind_template_callback (widget_class, pm_pair_dialog_scan_code);
  gtk_widget_class_bind_template_callback (widget_class, on_copy_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_accept_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_reject_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_open_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_camera_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_camera_stop_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_paste_clicked);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
load_css (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done))
    {
      g_autoptr (GtkCssProvider) provider = gtk_css_provider_new ();

      gtk_css_provider_load_from_resource (provider, "/org/pipermesh/PiperMesh/pm-pair-dialog.css");
      gtk_style_context_add_provider_for_display (gdk_display_get_default (),
                                                  GTK_STYLE_PROVIDER (provider),
                                                  GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
      g_once_init_leave (&done, 1);
    }
}

static void
pm_pair_dialog_init (PmPairDialog *self)
{
  load_css ();
  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));
  g_signal_connect_swapped (self->stack, "notify::visible-child", G_CALLBACK (on_visible_page),
                            self);
}
