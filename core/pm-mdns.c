/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-mdns"

/*
 * PmMdns: advertising and browsing "_pipermesh._udp" through avahi-client.
 *
 * avahi-client talks D-Bus to avahi-daemon; avahi-glib's poll adapter puts its
 * watches and timeouts on the GMainContext that was thread-default when
 * pm_mdns_start() ran. Every avahi-client call is a short synchronous D-Bus
 * round trip to the local daemon.
 *
 * The client is made with AVAHI_CLIENT_NO_FAIL: without a daemon it waits in
 * CONNECTING and moves to S_RUNNING when one claims its bus name. When the
 * daemon goes away, the client fails with AVAHI_ERR_DISCONNECTED; we free it
 * (and with it our entry group, browser and resolvers) and make a new one,
 * which waits for the next daemon: the advertisement and the browser are
 * created again on S_RUNNING. Without a system bus at all, discovery stays off.
 *
 * Browsing: one service browser for the type on every interface and protocol;
 * each (interface, protocol, name, domain) it reports gets a resolver that
 * stays alive, asking for an address of the same family as the protocol it
 * was seen on (so IPv4 and IPv6 each give one address). A live resolver
 * reports again whenever the host's address record changes, which is how an
 * address change reaches "peer-found". Services of this very client
 * (AVAHI_LOOKUP_RESULT_OUR_OWN) and services carrying the fingerprint we
 * advertise are never reported.
 *
 * Advertising: one entry group, one service on every interface and protocol.
 * A name taken by a service of another client of the same daemon fails at once
 * (AVAHI_ERR_COLLISION); one taken on the network shows up later as
 * AVAHI_ENTRY_GROUP_COLLISION. Both move to avahi_alternative_service_name()
 * ("name #2", ...) and register again. A host name change (S_REGISTERING,
 * S_COLLISION) withdraws the group until the server is S_RUNNING again.
 *
 * Nothing secret goes on the wire or into the log: the fingerprint is a hash
 * of a public key. Addresses are never logged.
 */

#include "pm-mdns.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-glib/glib-watch.h>
#include <string.h>

#include "pm-mdns-private.h"

/* clang-format off */
G_DEFINE_QUARK (pm-mdns-error-quark, pm_mdns_error)
/* clang-format on */

/* How many alternative names one registration tries when another client of the
 * same daemon holds each name in turn ("name #2", "name #3", ...). */
#define RENAME_MAX 32

/* One service instance as seen on one interface and protocol. */
typedef struct {
  PmMdns               *self; /* not a reference: self owns the table */
  AvahiServiceResolver *resolver;
  AvahiIfIndex          interface;
  AvahiProtocol         protocol;
  char                 *name;
  char                 *type;
  char                 *domain;
  /* The SRV target and fingerprint of the resolver's first answer. */
  char               *resolved_host;
  char               *resolved_fingerprint;
  char               *fingerprint; /* what we report: NULL until resolved and not ours */
  GInetSocketAddress *address;     /* NULL until resolved, or once it went */
} Service;

struct _PmMdns {
  GObject parent_instance;

  GMainContext        *context;
  AvahiGLibPoll       *poll; /* non-NULL once started */
  AvahiClient         *client;
  AvahiServiceBrowser *browser;
  AvahiEntryGroup     *group;
  GHashTable          *services; /* "iface/proto/domain/name" → Service */

  gboolean available;
  gboolean off_reported; /* the "discovery off" message was logged for this outage */

  /* What pm_mdns_advertise() asked for; adv_fingerprint NULL: nothing. */
  char    *adv_name;    /* as asked (truncated to one label) */
  char    *adv_current; /* adv_name, or the alternative a collision led to */
  char    *adv_fingerprint;
  uint16_t adv_port;
};

G_DEFINE_FINAL_TYPE (PmMdns, pm_mdns, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_AVAILABLE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  PEER_FOUND,
  PEER_LOST,
  N_SIGNALS
};

static unsigned signals[N_SIGNALS];

static gboolean connect_client (PmMdns  *self,
                                GError **error);

/* ---- fingerprints and TXT records ---------------------------------------- */

/**
 * pm_mdns_fingerprint_of_key:
 * @key: a 32-byte static public key
 *
 * The fingerprint advertised in the "fp=" TXT key: the first
 * PM_MDNS_FINGERPRINT_LEN lowercase hex digits (64 bits) of SHA-256(@key).
 * The advertiser and the browser both compute it with this function.
 *
 * Returns: (transfer full): the fingerprint
 */
char *
pm_mdns_fingerprint_of_key (const uint8_t key[32])
{
  g_autofree char *hex = NULL;

  g_return_val_if_fail (key != NULL, NULL);

  hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, key, 32);
  return g_strndup (hex, PM_MDNS_FINGERPRINT_LEN);
}

/* Whether @fingerprint is PM_MDNS_FINGERPRINT_LEN lowercase hex digits. */
gboolean
pm_mdns_fingerprint_is_valid (const char *fingerprint)
{
  if (fingerprint == NULL)
    return FALSE;
  for (size_t i = 0; i < PM_MDNS_FINGERPRINT_LEN; i++)
    if (!g_ascii_isxdigit (fingerprint[i]) || g_ascii_isupper (fingerprint[i]))
      return FALSE;
  return fingerprint[PM_MDNS_FINGERPRINT_LEN] == '\0';
}

static gboolean
txt_key_is (const uint8_t *text,
            size_t         key_len,
            const char    *key)
{
  return key_len == strlen (key) && g_ascii_strncasecmp ((const char *) text, key, key_len) == 0;
}

gboolean
pm_mdns_txt_parse (AvahiStringList *txt,
                   char           **fingerprint,
                   GError         **error)
{
  const uint8_t *v = NULL, *fp = NULL;
  size_t         v_len = 0, fp_len = 0;
  unsigned       n_v = 0, n_fp = 0;

  g_return_val_if_fail (fingerprint != NULL, FALSE);

  for (AvahiStringList *l = txt; l != NULL; l = avahi_string_list_get_next (l))
    {
      const uint8_t *text = avahi_string_list_get_text (l);
      size_t         size = avahi_string_list_get_size (l);
      const uint8_t *eq = memchr (text, '=', size);
      size_t         key_len = eq != NULL ? (size_t) (eq - text) : size;
      const uint8_t *value = eq != NULL ? eq + 1 : NULL;
      size_t         value_len = eq != NULL ? size - key_len - 1 : 0;

      if (txt_key_is (text, key_len, "v"))
        {
          n_v++;
          v = value;
          v_len = value_len;
        }
      else if (txt_key_is (text, key_len, "fp"))
        {
          n_fp++;
          fp = value;
          fp_len = value_len;
        }
    }

  if (n_v == 0)
    {
      g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT, "TXT record has no v= key");
      return FALSE;
    }
  if (n_v > 1 || n_fp > 1)
    {
      g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT, "TXT record repeats the %s key",
                   n_v > 1 ? "v=" : "fp=");
      return FALSE;
    }
  if (v == NULL || v_len != strlen (PM_MDNS_TXT_VERSION) ||
      memcmp (v, PM_MDNS_TXT_VERSION, v_len) != 0)
    {
      g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT,
                   "TXT record has an unsupported version (v= is not " PM_MDNS_TXT_VERSION ")");
      return FALSE;
    }
  if (n_fp == 0 || fp == NULL)
    {
      g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT, "TXT record has no fp= value");
      return FALSE;
    }
  if (fp_len != PM_MDNS_FINGERPRINT_LEN)
    {
      g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT,
                   "TXT fp= is %zu bytes long, not %d hex digits", fp_len, PM_MDNS_FINGERPRINT_LEN);
      return FALSE;
    }
  for (size_t i = 0; i < fp_len; i++)
    if (!g_ascii_isxdigit (fp[i]))
      {
        g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT, "TXT fp= is not hexadecimal");
        return FALSE;
      }

  *fingerprint = g_ascii_strdown ((const char *) fp, (gssize) fp_len);
  return TRUE;
}

/* ---- discovered services ------------------------------------------------- */

static void
service_free (gpointer data)
{
  Service *svc = data;

  if (svc->resolver != NULL)
    avahi_service_resolver_free (svc->resolver);
  g_free (svc->name);
  g_free (svc->type);
  g_free (svc->domain);
  g_free (svc->resolved_host);
  g_free (svc->resolved_fingerprint);
  g_free (svc->fingerprint);
  g_clear_object (&svc->address);
  g_free (svc);
}

static gboolean
socket_address_equal (GInetSocketAddress *a,
                      GInetSocketAddress *b)
{
  GInetAddress *ia, *ib;

  if (a == NULL || b == NULL)
    return a == b;
  ia = g_inet_socket_address_get_address (a);
  ib = g_inet_socket_address_get_address (b);
  if (g_inet_socket_address_get_port (a) != g_inet_socket_address_get_port (b) ||
      !g_inet_address_equal (ia, ib))
    return FALSE;
  /* (equal addresses are of one family) */
  return g_inet_address_get_family (ia) != G_SOCKET_FAMILY_IPV6 ||
         g_inet_socket_address_get_scope_id (a) == g_inet_socket_address_get_scope_id (b);
}

/* How many services hold @fingerprint with @address (any address: NULL). */
static unsigned
count_holders (PmMdns             *self,
               const char         *fingerprint,
               GInetSocketAddress *address)
{
  GHashTableIter iter;
  gpointer       value;
  unsigned       n = 0;

  g_hash_table_iter_init (&iter, self->services);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Service *svc = value;

      if (svc->address == NULL || g_strcmp0 (svc->fingerprint, fingerprint) != 0)
        continue;
      if (address == NULL || socket_address_equal (svc->address, address))
        n++;
    }
  return n;
}

/* Sets what @svc says (@fingerprint at @address; either NULL: nothing usable)
 * and emits what changed: "peer-lost" when its old fingerprint has no address
 * left, "peer-found" when the new pair is held by no other service. @svc may
 * already be out of the table (being removed). */
static void
service_update (PmMdns             *self,
                Service            *svc,
                const char         *fingerprint,
                GInetSocketAddress *address)
{
  g_autofree char *old_fingerprint = NULL;
  g_autoptr (GInetSocketAddress) old_address = NULL;

  if (fingerprint == NULL || address == NULL)
    address = NULL;
  if (g_strcmp0 (svc->fingerprint, fingerprint) == 0 &&
      socket_address_equal (svc->address, address))
    return;

  old_fingerprint = g_steal_pointer (&svc->fingerprint);
  old_address = g_steal_pointer (&svc->address);
  svc->fingerprint = g_strdup (fingerprint);
  svc->address = address != NULL ? g_object_ref (address) : NULL;

  if (old_fingerprint != NULL && old_address != NULL &&
      count_holders (self, old_fingerprint, NULL) == 0)
    {
      g_debug ("\"%s\" (%s): no address left", svc->name, old_fingerprint);
      g_signal_emit (self, signals[PEER_LOST], 0, old_fingerprint);
    }
  if (svc->address != NULL && count_holders (self, svc->fingerprint, svc->address) == 1)
    {
      g_debug ("\"%s\" (%s): a new address", svc->name, svc->fingerprint);
      g_signal_emit (self, signals[PEER_FOUND], 0, svc->fingerprint, svc->address);
    }
}

/* Forgets every service (and frees the resolvers), then emits "peer-lost"
 * for each fingerprint that had an address, if @emit. */
static void
drop_services (PmMdns  *self,
               gboolean emit)
{
  g_autoptr (GPtrArray) lost = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer       value;

  g_hash_table_iter_init (&iter, self->services);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Service *svc = value;

      if (svc->address != NULL &&
          !g_ptr_array_find_with_equal_func (lost, svc->fingerprint, g_str_equal, NULL))
        g_ptr_array_add (lost, g_strdup (svc->fingerprint));
    }
  g_hash_table_remove_all (self->services);

  if (emit)
    for (unsigned i = 0; i < lost->len; i++)
      g_signal_emit (self, signals[PEER_LOST], 0, (const char *) lost->pdata[i]);
}

static GInetSocketAddress *
socket_address_from_avahi (const AvahiAddress *a,
                           uint16_t            port,
                           AvahiIfIndex        interface)
{
  g_autoptr (GInetAddress) inet = NULL;

  if (a == NULL || port == 0)
    return NULL;
  if (a->proto == AVAHI_PROTO_INET)
    inet = g_inet_address_new_from_bytes ((const guint8 *) &a->data.ipv4.address,
                                          G_SOCKET_FAMILY_IPV4);
  else if (a->proto == AVAHI_PROTO_INET6)
    inet = g_inet_address_new_from_bytes (a->data.ipv6.address, G_SOCKET_FAMILY_IPV6);
  else
    return NULL;

  if (g_inet_address_get_is_any (inet) || g_inet_address_get_is_loopback (inet) ||
      g_inet_address_get_is_multicast (inet))
    return NULL;

  /* fe80::/10 means something only on one link: keep the interface the
   * daemon heard it on as the scope id, or drop it. */
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6 &&
      g_inet_address_get_is_link_local (inet))
    {
      if (interface <= 0)
        return NULL;
      return g_object_new (G_TYPE_INET_SOCKET_ADDRESS, "address", inet, "port", (guint) port,
                           "scope-id", (guint) interface, NULL);
    }
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));
}

static void on_resolver (AvahiServiceResolver  *resolver,
                         AvahiIfIndex           interface,
                         AvahiProtocol          protocol,
                         AvahiResolverEvent     event,
                         const char            *name,
                         const char            *type,
                         const char            *domain,
                         const char            *host_name,
                         const AvahiAddress    *a,
                         uint16_t               port,
                         AvahiStringList       *txt,
                         AvahiLookupResultFlags flags,
                         void                  *user_data);

/* (Re)starts @svc's resolver: it asks for an address of the family the
 * service was seen on, so IPv4 and IPv6 each resolve to one address. */
static gboolean
service_resolve (PmMdns  *self,
                 Service *svc)
{
  if (svc->resolver != NULL)
    avahi_service_resolver_free (svc->resolver);
  g_clear_pointer (&svc->resolved_host, g_free);
  g_clear_pointer (&svc->resolved_fingerprint, g_free);
  svc->resolver = avahi_service_resolver_new (self->client, svc->interface, svc->protocol,
                                              svc->name, svc->type, svc->domain, svc->protocol, 0,
                                              on_resolver, svc);
  if (svc->resolver == NULL)
    g_debug ("cannot resolve \"%s\": %s", svc->name,
             avahi_strerror (avahi_client_errno (self->client)));
  return svc->resolver != NULL;
}

static void
on_resolver (AvahiServiceResolver  *resolver,
             AvahiIfIndex           interface,
             AvahiProtocol          protocol,
             AvahiResolverEvent     event,
             const char            *name,
             const char            *type,
             const char            *domain,
             const char            *host_name,
             const AvahiAddress    *a,
             uint16_t               port,
             AvahiStringList       *txt,
             AvahiLookupResultFlags flags,
             void                  *user_data)
{
  Service *svc = user_data;
  g_autoptr (PmMdns) self = g_object_ref (svc->self);
  g_autoptr (GError) error = NULL;
  g_autofree char *fingerprint = NULL;
  g_autoptr (GInetSocketAddress) address = NULL;

  if (event != AVAHI_RESOLVER_FOUND)
    {
      /* The address went and no other came within Avahi's timeout (or the
       * daemon gave up): keep the service, without an address. It reports
       * again if one comes back. */
      g_autofree char *keep = g_strdup (svc->fingerprint);

      g_debug ("\"%s\": resolving failed: %s", svc->name,
               avahi_strerror (avahi_client_errno (self->client)));
      service_update (self, svc, keep, NULL);
      return;
    }

  if (!pm_mdns_txt_parse (txt, &fingerprint, &error))
    {
      g_debug ("ignoring \"%s\": %s", svc->name, error->message);
      service_update (self, svc, NULL, NULL);
      return;
    }

  /* A live resolver answers again when a record changes. When the SRV target
   * or the fingerprint changes under it (two hosts fighting over one name),
   * Avahi's resolver can pair one host's SRV or TXT with the other's address:
   * start afresh and take its first answer instead. */
  if (svc->resolved_host != NULL &&
      (g_strcmp0 (host_name, svc->resolved_host) != 0 ||
       g_strcmp0 (fingerprint, svc->resolved_fingerprint) != 0))
    {
      g_debug ("\"%s\" changed hands; resolving again", svc->name);
      if (!service_resolve (self, svc))
        service_update (self, svc, NULL, NULL);
      return;
    }
  if (svc->resolved_host == NULL)
    {
      svc->resolved_host = g_strdup (host_name);
      svc->resolved_fingerprint = g_strdup (fingerprint);
    }

  if (self->adv_fingerprint != NULL && strcmp (fingerprint, self->adv_fingerprint) == 0)
    {
      /* Our own key, advertised by another client (another PiperMesh process
       * of this device): nothing to connect to. */
      service_update (self, svc, NULL, NULL);
      return;
    }
  address = socket_address_from_avahi (a, port, interface);
  if (address == NULL)
    g_debug ("\"%s\": no usable address", svc->name);
  service_update (self, svc, fingerprint, address);
}

static char *
service_key (AvahiIfIndex  interface,
             AvahiProtocol protocol,
             const char   *name,
             const char   *domain)
{
  return g_strdup_printf ("%d/%d/%s/%s", interface, protocol, domain, name);
}

static void
on_browser (AvahiServiceBrowser   *browser,
            AvahiIfIndex           interface,
            AvahiProtocol          protocol,
            AvahiBrowserEvent      event,
            const char            *name,
            const char            *type,
            const char            *domain,
            AvahiLookupResultFlags flags,
            void                  *user_data)
{
  g_autoptr (PmMdns) self = g_object_ref (user_data);
  g_autofree char *key = NULL;
  g_autofree char *stolen_key = NULL;
  Service         *svc;

  switch (event)
    {
    case AVAHI_BROWSER_NEW:
      if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN)
        return;
      key = service_key (interface, protocol, name, domain);
      if (g_hash_table_contains (self->services, key))
        return;
      svc = g_new0 (Service, 1);
      svc->self = self;
      svc->interface = interface;
      svc->protocol = protocol;
      svc->name = g_strdup (name);
      svc->type = g_strdup (type);
      svc->domain = g_strdup (domain);
      if (!service_resolve (self, svc))
        {
          service_free (svc);
          return;
        }
      g_hash_table_insert (self->services, g_steal_pointer (&key), svc);
      break;

    case AVAHI_BROWSER_REMOVE:
      key = service_key (interface, protocol, name, domain);
      if (!g_hash_table_steal_extended (self->services, key, (gpointer *) &stolen_key,
                                        (gpointer *) &svc))
        return;
      service_update (self, svc, NULL, NULL);
      service_free (svc);
      break;

    case AVAHI_BROWSER_FAILURE:
      g_warning ("mDNS browsing failed: %s", avahi_strerror (avahi_client_errno (self->client)));
      break;

    case AVAHI_BROWSER_CACHE_EXHAUSTED:
    case AVAHI_BROWSER_ALL_FOR_NOW:
    default:
      break;
    }
}

/* ---- advertising --------------------------------------------------------- */

static void
rename_advertisement (PmMdns *self)
{
  char *alternative = avahi_alternative_service_name (self->adv_current);

  g_message ("mDNS: the name \"%s\" is taken; advertising as \"%s\"",
             self->adv_current, alternative);
  g_free (self->adv_current);
  self->adv_current = g_strdup (alternative);
  avahi_free (alternative);
}

static void on_group (AvahiEntryGroup     *group,
                      AvahiEntryGroupState state,
                      void                *user_data);

/* (Re)registers the advertisement, if one is wanted and the server runs. */
static void
publish (PmMdns *self)
{
  g_autofree char *fp_txt = NULL;

  if (self->adv_fingerprint == NULL || self->client == NULL ||
      avahi_client_get_state (self->client) != AVAHI_CLIENT_S_RUNNING)
    return;

  if (self->group == NULL)
    {
      self->group = avahi_entry_group_new (self->client, on_group, self);
      if (self->group == NULL)
        {
          g_warning ("mDNS: cannot advertise: %s",
                     avahi_strerror (avahi_client_errno (self->client)));
          return;
        }
    }
  else
    avahi_entry_group_reset (self->group);

  fp_txt = g_strconcat ("fp=", self->adv_fingerprint, NULL);
  for (unsigned i = 0; i < RENAME_MAX; i++)
    {
      int r = avahi_entry_group_add_service (self->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
                                             self->adv_current, PM_MDNS_SERVICE_TYPE, NULL, NULL,
                                             self->adv_port, "v=" PM_MDNS_TXT_VERSION, fp_txt,
                                             NULL);

      if (r == AVAHI_ERR_COLLISION)
        {
          rename_advertisement (self);
          continue;
        }
      if (r < 0 || (r = avahi_entry_group_commit (self->group)) < 0)
        g_warning ("mDNS: cannot advertise \"%s\": %s", self->adv_current, avahi_strerror (r));
      return;
    }
  g_warning ("mDNS: cannot advertise: %d names like \"%s\" are taken", RENAME_MAX, self->adv_name);
}

static void
on_group (AvahiEntryGroup     *group,
          AvahiEntryGroupState state,
          void                *user_data)
{
  g_autoptr (PmMdns) self = g_object_ref (user_data);

  switch (state)
    {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
      g_debug ("advertising \"%s\" (%s) on port %u", self->adv_current, self->adv_fingerprint,
               self->adv_port);
      break;

    case AVAHI_ENTRY_GROUP_COLLISION:
      rename_advertisement (self);
      publish (self);
      break;

    case AVAHI_ENTRY_GROUP_FAILURE:
      g_warning ("mDNS: advertising \"%s\" failed: %s", self->adv_current,
                 avahi_strerror (avahi_client_errno (avahi_entry_group_get_client (group))));
      break;

    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
    default:
      break;
    }
}

/* ---- the client ---------------------------------------------------------- */

static void
set_available (PmMdns  *self,
               gboolean available)
{
  if (self->available == available)
    return;
  self->available = available;
  if (available && self->off_reported)
    {
      self->off_reported = FALSE;
      g_message ("mDNS discovery on: the Avahi daemon is back");
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_AVAILABLE]);
}

/* Logs why discovery is off, once per outage. */
static void
report_off (PmMdns     *self,
            const char *reason)
{
  if (self->off_reported)
    return;
  self->off_reported = TRUE;
  g_message ("mDNS discovery off: no Avahi daemon (%s); using stored addresses", reason);
}

/* Frees what the client made (resolvers, browser, group), not the client. */
static void
drop_client_objects (PmMdns  *self,
                     gboolean emit)
{
  drop_services (self, emit);
  g_clear_pointer (&self->browser, avahi_service_browser_free);
  g_clear_pointer (&self->group, avahi_entry_group_free);
}

static void
on_client (AvahiClient     *client,
           AvahiClientState state,
           void            *user_data)
{
  g_autoptr (PmMdns) self = g_object_ref (user_data);
  int err;

  /* Also called from inside avahi_client_new(), before it returns. */
  self->client = client;

  switch (state)
    {
    case AVAHI_CLIENT_S_REGISTERING:
    case AVAHI_CLIENT_S_COLLISION:
      /* The host name is being (re)established: our records wait for it. */
      if (self->group != NULL)
        avahi_entry_group_reset (self->group);
      G_GNUC_FALLTHROUGH;
    case AVAHI_CLIENT_S_RUNNING:
      if (self->browser == NULL)
        {
          self->browser = avahi_service_browser_new (client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                     PM_MDNS_SERVICE_TYPE, NULL, 0, on_browser,
                                                     self);
          if (self->browser == NULL)
            g_warning ("mDNS: cannot browse: %s", avahi_strerror (avahi_client_errno (client)));
        }
      if (state == AVAHI_CLIENT_S_RUNNING)
        publish (self);
      set_available (self, TRUE);
      break;

    case AVAHI_CLIENT_CONNECTING:
      /* A bus but no daemon (yet): avahi-client waits for its name. */
      drop_client_objects (self, TRUE);
      set_available (self, FALSE);
      report_off (self, avahi_strerror (AVAHI_ERR_NO_DAEMON));
      break;

    case AVAHI_CLIENT_FAILURE:
    default:
      err = avahi_client_errno (client);
      drop_client_objects (self, TRUE);
      set_available (self, FALSE);
      report_off (self, avahi_strerror (err));
      /* As avahi-browse does: free the failed client from its callback. */
      avahi_client_free (client);
      self->client = NULL;
      if (err == AVAHI_ERR_DISCONNECTED)
        {
          g_autoptr (GError) error = NULL;

          if (!connect_client (self, &error))
            g_warning ("%s", error->message);
        }
      break;
    }
}

static gboolean
connect_client (PmMdns  *self,
                GError **error)
{
  AvahiClient *client;
  int          err = AVAHI_OK;

  client = avahi_client_new (avahi_glib_poll_get (self->poll), AVAHI_CLIENT_NO_FAIL, on_client,
                             self, &err);
  if (client != NULL)
    {
      self->client = client;
      return TRUE;
    }

  /* avahi_client_new() only calls back once it cannot fail any more. */
  g_assert (self->browser == NULL && self->group == NULL);
  self->client = NULL;
  set_available (self, FALSE);
  if (err == AVAHI_ERR_NO_DAEMON || err == AVAHI_ERR_DBUS_ERROR || err == AVAHI_ERR_DISCONNECTED)
    {
      /* No system bus (or none that answers): off for this object's life. */
      report_off (self, avahi_strerror (err));
      return TRUE;
    }
  g_set_error (error, PM_MDNS_ERROR, PM_MDNS_ERROR_FAILED,
               "mDNS discovery off: the Avahi daemon refused the client: %s", avahi_strerror (err));
  return FALSE;
}

/* ---- GObject ------------------------------------------------------------- */

static void
pm_mdns_dispose (GObject *object)
{
  PmMdns *self = PM_MDNS (object);

  drop_client_objects (self, FALSE);
  g_clear_pointer (&self->client, avahi_client_free);
  g_clear_pointer (&self->poll, avahi_glib_poll_free);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (pm_mdns_parent_class)->dispose (object);
}

static void
pm_mdns_finalize (GObject *object)
{
  PmMdns *self = PM_MDNS (object);

  g_hash_table_unref (self->services);
  g_free (self->adv_name);
  g_free (self->adv_current);
  g_free (self->adv_fingerprint);

  G_OBJECT_CLASS (pm_mdns_parent_class)->finalize (object);
}

static void
pm_mdns_get_property (GObject    *object,
                      guint       prop_id,
                      GValue     *value,
                      GParamSpec *pspec)
{
  PmMdns *self = PM_MDNS (object);

  switch (prop_id)
    {
    case PROP_AVAILABLE:
      g_value_set_boolean (value, self->available);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_mdns_class_init (PmMdnsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_mdns_dispose;
  object_class->finalize = pm_mdns_finalize;
  object_class->get_property = pm_mdns_get_property;

  /**
   * PmMdns:available:
   * Whether discovery runs: connected to an Avahi daemon whose server is up.
   */
  properties[PROP_AVAILABLE] =
    g_param_spec_boolean ("available", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * PmMdns::peer-found:
   * @fingerprint: the "fp=" of the service (pm_mdns_fingerprint_of_key())
   * @address: a GInetSocketAddress it was resolved to (IPv6 link-local ones
   *   carry the interface as scope id)
   *
   * A service of another host (or another client) was resolved to an address
   * not known for @fingerprint yet: a new service, a new family, or a new
   * address after the host's changed.
   */
  signals[PEER_FOUND] = g_signal_new ("peer-found", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                      NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING,
                                      G_TYPE_INET_SOCKET_ADDRESS);

  /**
   * PmMdns::peer-lost:
   * @fingerprint: the fingerprint
   *
   * The last address known for @fingerprint went: its services were
   * withdrawn (or expired), or the daemon went away.
   */
  signals[PEER_LOST] = g_signal_new ("peer-lost", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                     NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
pm_mdns_init (PmMdns *self)
{
  self->services = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, service_free);
}

/* ---- public API ---------------------------------------------------------- */

PmMdns *
pm_mdns_new (void)
{
  return g_object_new (PM_TYPE_MDNS, NULL);
}

/**
 * pm_mdns_start:
 *
 * Connects to the Avahi daemon on the system bus and starts browsing (and
 * advertising, if pm_mdns_advertise() was called). Callbacks and signals run
 * on the thread-default main context of this call. Call it once.
 *
 * Without a system bus or without a daemon, discovery is off: one g_message
 * says so, "available" stays FALSE, and the other calls are no-ops. This is
 * not an error: it returns TRUE. With a bus, a daemon that appears later is
 * used at once.
 *
 * Returns: FALSE with PM_MDNS_ERROR_FAILED only when the daemon refuses the
 *   client (another D-Bus API version, no memory). The object stays usable
 *   (discovery off) either way.
 */
gboolean
pm_mdns_start (PmMdns  *self,
               GError **error)
{
  g_return_val_if_fail (PM_IS_MDNS (self), FALSE);
  g_return_val_if_fail (self->poll == NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  self->context = g_main_context_ref_thread_default ();
  self->poll = avahi_glib_poll_new (self->context, G_PRIORITY_DEFAULT);
  return connect_client (self, error);
}

gboolean
pm_mdns_get_available (PmMdns *self)
{
  g_return_val_if_fail (PM_IS_MDNS (self), FALSE);

  return self->available;
}

/**
 * pm_mdns_advertise:
 * @instance_name: the DNS-SD instance name (the device's name), UTF-8; cut to
 *   PM_MDNS_NAME_MAX bytes. A name already taken gets " #2", " #3", ...
 * @port: the UDP port the mesh listens on
 * @key_fingerprint: pm_mdns_fingerprint_of_key() of this device's static key
 *
 * Advertises "_pipermesh._udp" on @port with TXT "v=1" and "fp=...", now if
 * the daemon is running, otherwise as soon as it is (and again after it
 * restarts). A second call replaces the advertisement.
 */
void
pm_mdns_advertise (PmMdns     *self,
                   const char *instance_name,
                   uint16_t    port,
                   const char *key_fingerprint)
{
  size_t n;

  g_return_if_fail (PM_IS_MDNS (self));
  g_return_if_fail (instance_name != NULL && *instance_name != '\0');
  g_return_if_fail (g_utf8_validate (instance_name, -1, NULL));
  g_return_if_fail (port != 0);
  g_return_if_fail (pm_mdns_fingerprint_is_valid (key_fingerprint));

  /* One DNS label: at most PM_MDNS_NAME_MAX bytes, cut between characters. */
  n = strlen (instance_name);
  if (n > PM_MDNS_NAME_MAX)
    {
      n = PM_MDNS_NAME_MAX;
      while (n > 0 && ((uint8_t) instance_name[n] & 0xC0) == 0x80)
        n--;
    }

  if (self->adv_fingerprint != NULL && self->adv_port == port &&
      strcmp (self->adv_fingerprint, key_fingerprint) == 0 &&
      strlen (self->adv_name) == n && strncmp (self->adv_name, instance_name, n) == 0)
    return;

  g_free (self->adv_name);
  g_free (self->adv_current);
  g_free (self->adv_fingerprint);
  self->adv_name = g_strndup (instance_name, n);
  self->adv_current = g_strdup (self->adv_name);
  self->adv_fingerprint = g_strdup (key_fingerprint);
  self->adv_port = port;
  publish (self);
}

/* Withdraws the advertisement (a goodbye goes out at once), if any. */
void
pm_mdns_unadvertise (PmMdns *self)
{
  g_return_if_fail (PM_IS_MDNS (self));

  g_clear_pointer (&self->group, avahi_entry_group_free);
  g_clear_pointer (&self->adv_name, g_free);
  g_clear_pointer (&self->adv_current, g_free);
  g_clear_pointer (&self->adv_fingerprint, g_free);
  self->adv_port = 0;
}

/**
 * pm_mdns_lookup:
 * @fingerprint: a fingerprint (pm_mdns_fingerprint_of_key())
 *
 * Returns: (transfer full) (element-type GInetSocketAddress): the addresses
 *   currently resolved for @fingerprint, each once; empty when none (and
 *   whenever discovery is off)
 */
GPtrArray *
pm_mdns_lookup (PmMdns     *self,
                const char *fingerprint)
{
  GPtrArray     *addresses = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer       value;

  g_return_val_if_fail (PM_IS_MDNS (self), addresses);
  g_return_val_if_fail (fingerprint != NULL, addresses);

  g_hash_table_iter_init (&iter, self->services);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Service *svc = value;
      gboolean seen = FALSE;

      if (svc->address == NULL || g_strcmp0 (svc->fingerprint, fingerprint) != 0)
        continue;
      for (unsigned i = 0; i < addresses->len && !seen; i++)
        seen = socket_address_equal (addresses->pdata[i], svc->address);
      if (!seen)
        g_ptr_array_add (addresses, g_object_ref (svc->address));
    }
  return addresses;
}
