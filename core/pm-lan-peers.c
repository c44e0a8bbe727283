/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-lan-peers"

#include "pm-lan-peers.h"

#include "pm-address.h"
#include "pm-mdns.h"
#include "pm-paired-store.h"

struct _PmLanPeers {
  GObject parent_instance;

  PmMesh    *mesh;
  char      *state_dir;
  GPtrArray *paired; /* PmPairedDevice */
  gboolean   use_mdns;
  PmMdns    *mdns;
};

G_DEFINE_FINAL_TYPE (PmLanPeers, pm_lan_peers, G_TYPE_OBJECT)

static void
add_peer (PmLanPeers     *self,
          PmPairedDevice *device,
          GPtrArray      *addresses)
{
  pm_mesh_add_peer (self->mesh, device->id, device->name, device->device_type,
                    device->public_key, addresses);
}

/* mDNS found a key at @address: if it is a paired device's, the mesh tries
 * that address, and the store keeps every address mDNS knows for the key, the
 * new one first. A forged announcement costs one failed IK handshake. */
static void
on_peer_found (PmMdns             *mdns,
               const char         *fingerprint,
               GInetSocketAddress *address,
               PmLanPeers         *self)
{
  for (unsigned i = 0; i < self->paired->len; i++)
    {
      PmPairedDevice  *device = g_ptr_array_index (self->paired, i);
      g_autofree char *fp = pm_mdns_fingerprint_of_key (device->public_key);
      g_autoptr (GPtrArray) addresses = NULL;
      g_autoptr (GPtrArray) known = NULL;
      g_autoptr (GPtrArray) list = NULL;
      g_autoptr (PmPairedStore) store = NULL;
      g_autoptr (GError) error = NULL;

      if (!g_str_equal (fp, fingerprint))
        continue;
      addresses = g_ptr_array_new ();
      g_ptr_array_add (addresses, address);
      add_peer (self, device, addresses);

      known = pm_mdns_lookup (mdns, fingerprint);
      list = g_ptr_array_new_null_terminated (known->len + 1, g_free, TRUE);
      g_ptr_array_add (list, pm_address_to_string (address));
      g_debug ("mDNS: %s is at %s", device->name, (char *) list->pdata[0]);
      for (unsigned j = 0; j < known->len && list->len < PM_PAIRED_STORE_MAX_ADDRESSES; j++)
        {
          char *other = pm_address_to_string (g_ptr_array_index (known, j));

          if (g_str_equal (other, list->pdata[0]))
            g_free (other);
          else
            g_ptr_array_add (list, other);
        }
      store = pm_paired_store_new_for_state_dir (self->state_dir);
      if (!pm_paired_store_set_addresses (store, device->id, (const char *const *) list->pdata,
                                          &error))
        g_debug ("Could not remember %s's addresses: %s", device->name, error->message);
      return;
    }
}

gboolean
pm_lan_peers_start (PmLanPeers *self,
                    const char *self_name,
                    GError    **error)
{
  g_autoptr (PmPairedStore) store = NULL;
  g_autoptr (GError) local_error = NULL;

  g_return_val_if_fail (PM_IS_LAN_PEERS (self), FALSE);
  g_return_val_if_fail (self->paired == NULL, FALSE);

  store = pm_paired_store_new_for_state_dir (self->state_dir);
  self->paired = pm_paired_store_list (store, error);
  if (self->paired == NULL)
    return FALSE;
  for (unsigned i = 0; i < self->paired->len; i++)
    {
      PmPairedDevice *device = g_ptr_array_index (self->paired, i);
      g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);

      for (unsigned j = 0; j < device->addresses->len; j++)
        {
          const char         *text = g_ptr_array_index (device->addresses, j);
          GInetSocketAddress *a = pm_address_parse (text, FALSE);

          if (a != NULL)
            g_ptr_array_add (addresses, a);
        }
      add_peer (self, device, addresses);
    }

  if (!self->use_mdns)
    return TRUE;
  self->mdns = pm_mdns_new ();
  g_signal_connect_object (self->mdns, "peer-found", G_CALLBACK (on_peer_found), self, 0);
  if (!pm_mdns_start (self->mdns, &local_error))
    {
      g_message ("mDNS discovery off: %s", local_error->message);
      return TRUE;
    }
  if (self_name != NULL)
    {
      g_autofree char *fp =
        pm_mdns_fingerprint_of_key (pm_identity_get_public_key (pm_mesh_get_identity (self->mesh)));

      pm_mdns_advertise (self->mdns, self_name, pm_mesh_get_port (self->mesh), fp);
    }
  return TRUE;
}

void
pm_lan_peers_stop (PmLanPeers *self)
{
  g_return_if_fail (PM_IS_LAN_PEERS (self));

  if (self->mdns != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->mdns, self);
      pm_mdns_unadvertise (self->mdns);
    }
  g_clear_object (&self->mdns);
}

unsigned
pm_lan_peers_get_n_paired (PmLanPeers *self)
{
  g_return_val_if_fail (PM_IS_LAN_PEERS (self), 0);
  return self->paired != NULL ? self->paired->len : 0;
}

PmLanPeers *
pm_lan_peers_new (PmMesh     *mesh,
                  const char *state_dir,
                  gboolean    mdns)
{
  PmLanPeers *self;

  g_return_val_if_fail (PM_IS_MESH (mesh), NULL);
  g_return_val_if_fail (state_dir != NULL, NULL);

  self = g_object_new (PM_TYPE_LAN_PEERS, NULL);
  self->mesh = g_object_ref (mesh);
  self->state_dir = g_strdup (state_dir);
  self->use_mdns = mdns;
  return self;
}

static void
pm_lan_peers_dispose (GObject *object)
{
  PmLanPeers *self = PM_LAN_PEERS (object);

  pm_lan_peers_stop (self);
  g_clear_object (&self->mesh);
  G_OBJECT_CLASS (pm_lan_peers_parent_class)->dispose (object);
}

static void
pm_lan_peers_finalize (GObject *object)
{
  PmLanPeers *self = PM_LAN_PEERS (object);

  g_clear_pointer (&self->paired, g_ptr_array_unref);
  g_free (self->state_dir);
  G_OBJECT_CLASS (pm_lan_peers_parent_class)->finalize (object);
}

static void
pm_lan_peers_class_init (PmLanPeersClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_lan_peers_dispose;
  object_class->finalize = pm_lan_peers_finalize;
}

static void
pm_lan_peers_init (PmLanPeers *self)
{
}
