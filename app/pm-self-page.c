/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-app"

#include "pm-self-page.h"

#include <glib/gi18n.h>

#include "pm-app-format.h"
#include "pm-udp-socket.h"

struct _PmSelfPage {
  AdwBin parent_instance;

  PmRuntime    *runtime;
  GCancellable *check_cancellable; /* non-NULL while a check runs */
  PmUdpSocket  *check_socket;

  GtkLabel            *name_label;
  GtkLabel            *fingerprint_label;
  GtkLabel            *key_label;
  GtkLabel            *store_label;
  GtkLabel            *dir_label;
  GtkLabel            *server_label;
  GtkLabel            *id_label;
  GtkLabel            *port_label;
  AdwPreferencesGroup *mesh_group;
  GSettings           *settings;
  GtkLabel            *udp_label;
  GtkLabel            *mapped_label;
  GtkLabel            *mapping_label;
  GtkLabel            *stun_rtt_label;
  GtkButton           *check_button;
  GtkSpinner          *check_spinner;
};

enum {
  PROP_0,
  PROP_CHECKING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (PmSelfPage, pm_self_page, ADW_TYPE_BIN)

static void
set_label (GtkLabel   *label,
           const char *text)
{
  gtk_label_set_text (label, text != NULL && *text != '\0' ? text : "—");
}

static void
set_label_take (GtkLabel *label,
                char     *text)
{
  set_label (label, text);
  g_free (text);
}

static char *
address_to_string (GInetSocketAddress *address)
{
  g_autofree char *ip = NULL;

  if (address == NULL)
    return NULL;
  ip = g_inet_address_to_string (g_inet_socket_address_get_address (address));
  if (g_socket_address_get_family (G_SOCKET_ADDRESS (address)) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", ip, g_inet_socket_address_get_port (address));
  return g_strdup_printf ("%s:%u", ip, g_inet_socket_address_get_port (address));
}

static const char *
key_store_label (PmIdentity *identity)
{
  switch (pm_identity_get_key_store (identity))
    {
    case PM_KEY_STORE_SECRET_SERVICE:
      return _ ("The keyring (Secret Service)");
    case PM_KEY_STORE_FILE:
      return _ ("A private file (identity.key, mode 0600)");
    case PM_KEY_STORE_AUTO:
    default:
      return pm_identity_get_key_store_string (identity);
    }
}

static void
update (PmSelfPage *self)
{
  PmRuntime  *runtime = self->runtime;
  PmIdentity *identity = runtime != NULL ? pm_runtime_get_identity (runtime) : NULL;
  PmMesh     *mesh = runtime != NULL ? pm_runtime_get_mesh (runtime) : NULL;
  gboolean    have_stun = runtime != NULL && pm_runtime_get_stun_server (runtime, 0) != NULL;

  if (runtime == NULL)
    return;
  set_label (self->name_label, pm_runtime_get_device_name (runtime));
  set_label (self->fingerprint_label,
             identity != NULL ? pm_identity_get_fingerprint (identity) : NULL);
  set_label_take (self->key_label,
                  identity != NULL ? pm_app_format_key (pm_identity_get_public_key_hex (identity))
                                   : NULL);
  set_label (self->store_label, identity != NULL ? key_store_label (identity) : NULL);
  set_label (self->dir_label, pm_runtime_get_state_dir (runtime));
  if (pm_runtime_get_demo (runtime))
    set_label_take (self->server_label,
                    g_strdup_printf (_ ("%s (demo)"),
                                     pm_runtime_get_server_url (runtime)));
  else if (pm_runtime_get_enrolled (runtime))
    set_label (self->server_label, pm_runtime_get_server_url (runtime));
  else
    set_label (self->server_label, _ ("None (LAN only)"));
  if (!pm_runtime_get_enrolled (runtime) && pm_runtime_get_status (runtime) != PM_RUNTIME_STARTING)
    {
      g_autofree char *url = g_settings_get_string (self->settings, "server-url");
      /* The group's description is Pango markup. */
      g_autofree char *description =
        g_markup_printf_escaped (_ ("Without a coordination server (this device is not enrolled, "
                                    "or the lan-only setting is on), only paired devices can be "
                                    "reached. To enroll it, run “pipermesh enroll --server %s "
                                    "--key KEY” with a key from the server, then start the app "
                                    "again."),
                                 *url != '\0' ? url : "URL");

      adw_preferences_group_set_description (self->mesh_group, description);
    }
  else
    adw_preferences_group_set_description (self->mesh_group, NULL);
  set_label (self->id_label, pm_runtime_get_device_id (runtime));
  set_label_take (self->port_label,
                  mesh != NULL ? g_strdup_printf ("%u", pm_mesh_get_port (mesh)) : NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->check_button),
                            have_stun && self->check_cancellable == NULL);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->check_button),
                               have_stun ? NULL : _ ("No STUN server: enroll with a coordination server first"));
}

static void
on_runtime_notify (PmRuntime  *runtime,
                   GParamSpec *pspec,
                   PmSelfPage *self)
{
  update (self);
}

void
pm_self_page_set_runtime (PmSelfPage *self,
                          PmRuntime  *runtime)
{
  g_return_if_fail (PM_IS_SELF_PAGE (self));
  g_return_if_fail (runtime == NULL || PM_IS_RUNTIME (runtime));

  if (self->runtime == runtime)
    return;
  if (self->check_cancellable != NULL)
    g_cancellable_cancel (self->check_cancellable);
  if (self->runtime != NULL)
    g_signal_handlers_disconnect_by_func (self->runtime, on_runtime_notify, self);
  g_set_object (&self->runtime, runtime);
  for (GtkLabel **l = (GtkLabel *[]){ self->udp_label, self->mapped_label, self->mapping_label,
                                      self->stun_rtt_label, NULL };
       *l != NULL; l++)
    set_label (*l, NULL);
  if (runtime != NULL)
    {
      g_signal_connect_object (runtime, "notify", G_CALLBACK (on_runtime_notify), self, 0);
      update (self);
    }
}

/* --- the network check --------------------------------------------------------- */

static void
check_finished (PmSelfPage *self)
{
  g_clear_object (&self->check_cancellable);
  if (self->check_socket != NULL)
    pm_udp_socket_close (self->check_socket);
  g_clear_object (&self->check_socket);
  gtk_spinner_stop (self->check_spinner);
  update (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKING]);
}

static void
on_netcheck (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr (PmSelfPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmNetcheck) check =
    pm_udp_socket_netcheck_finish (PM_UDP_SOCKET (source), result, &error);
  GInetSocketAddress *seen;

  if (check == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        set_label (self->udp_label, error->message);
      check_finished (self);
      return;
    }
  seen = check->mapped_primary != NULL ? check->mapped_primary : check->mapped_secondary;
  if (check->udp_ok)
    set_label (self->udp_label, _ ("Works"));
  else
    set_label_take (self->udp_label, g_strdup_printf (_ ("Blocked (%s)"), check->error));
  set_label_take (self->mapped_label, address_to_string (seen));
  if (check->mapped_primary != NULL && check->mapped_secondary != NULL)
    set_label (self->mapping_label, check->mapping_varies_by_destination
                                      ? _ ("Varies by destination")
                                      : _ ("Same for every destination"));
  else
    set_label (self->mapping_label, _ ("Unknown (one answer)"));
  set_label_take (self->stun_rtt_label, pm_app_format_rtt (check->rtt_ms));
  check_finished (self);
}

void
pm_self_page_run_check (PmSelfPage *self)
{
  g_autoptr (GError) error = NULL;
  GInetSocketAddress *primary, *secondary;
  GSocketFamily       family;

  g_return_if_fail (PM_IS_SELF_PAGE (self));

  if (self->runtime == NULL || self->check_cancellable != NULL)
    return;
  primary = pm_runtime_get_stun_server (self->runtime, 0);
  secondary = pm_runtime_get_stun_server (self->runtime, 1);
  if (primary == NULL)
    return;
  for (GtkLabel **l = (GtkLabel *[]){ self->udp_label, self->mapped_label, self->mapping_label,
                                      self->stun_rtt_label, NULL };
       *l != NULL; l++)
    set_label (*l, _ ("Checking…"));
  family = g_socket_address_get_family (G_SOCKET_ADDRESS (primary));
  self->check_socket = pm_udp_socket_new_any (family, 0, NULL, &error);
  if (self->check_socket == NULL)
    {
      set_label (self->udp_label, error->message);
      check_finished (self);
      return;
    }
  self->check_cancellable = g_cancellable_new ();
  gtk_spinner_start (self->check_spinner);
  gtk_widget_set_sensitive (GTK_WIDGET (self->check_button), FALSE);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKING]);
  /* Bounded: the STUN client gives up after its last retransmission. */
  pm_udp_socket_netcheck_async (self->check_socket, primary, secondary, self->check_cancellable,
                                on_netcheck, g_object_ref (self));
}

void
pm_self_page_scroll_to_end (PmSelfPage *self)
{
  GtkWidget     *scrolled;
  GtkAdjustment *adjustment;

  g_return_if_fail (PM_IS_SELF_PAGE (self));

  scrolled = gtk_widget_get_ancestor (GTK_WIDGET (self->check_button), GTK_TYPE_SCROLLED_WINDOW);
  if (scrolled == NULL)
    return;
  adjustment = gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scrolled));
  gtk_adjustment_set_value (adjustment, gtk_adjustment_get_upper (adjustment) -
                                          gtk_adjustment_get_page_size (adjustment));
}

gboolean
pm_self_page_get_checking (PmSelfPage *self)
{
  g_return_val_if_fail (PM_IS_SELF_PAGE (self), FALSE);
  return self->check_cancellable != NULL;
}

const char *
pm_self_page_get_value (PmSelfPage *self,
                        const char *row)
{
  g_return_val_if_fail (PM_IS_SELF_PAGE (self), NULL);

  if (g_str_equal (row, "udp"))
    return gtk_label_get_text (self->udp_label);
  if (g_str_equal (row, "mapped"))
    return gtk_label_get_text (self->mapped_label);
  if (g_str_equal (row, "mapping"))
    return gtk_label_get_text (self->mapping_label);
  if (g_str_equal (row, "stun-rtt"))
    return gtk_label_get_text (self->stun_rtt_label);
  if (g_str_equal (row, "fingerprint"))
    return gtk_label_get_text (self->fingerprint_label);
  return NULL;
}

/* --- GObject ------------------------------------------------------------------- */

static void
pm_self_page_dispose (GObject *object)
{
  PmSelfPage *self = PM_SELF_PAGE (object);

  if (self->check_cancellable != NULL)
    g_cancellable_cancel (self->check_cancellable);
  if (self->runtime != NULL)
    g_signal_handlers_disconnect_by_func (self->runtime, on_runtime_notify, self);
  g_clear_object (&self->runtime);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (pm_self_page_parent_class)->dispose (object);
}

static void
pm_self_page_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  PmSelfPage *self = PM_SELF_PAGE (object);

  switch (prop_id)
    {
    case PROP_CHECKING:
      g_value_set_boolean (value, pm_self_page_get_checking (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_self_page_class_init (PmSelfPageClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = pm_self_page_dispose;
  object_class->get_property = pm_self_page_get_property;

  properties[PROP_CHECKING] =
    g_param_spec_boolean ("checking", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/pipermesh/PiperMesh/pm-self-page.ui");
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, name_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, fingerprint_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, key_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, store_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, dir_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, server_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, id_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, port_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, mesh_group);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, udp_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, mapped_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, mapping_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, stun_rtt_label);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, check_button);
  gtk_widget_class_bind_template_child (widget_class, PmSelfPage, check_spinner);
  gtk_widget_class_bind_template_callback (widget_class, pm_self_page_run_check);
}

static void
pm_self_page_init (PmSelfPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->settings = g_settings_new (PM_APP_ID);
}
