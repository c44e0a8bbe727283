/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmMdns: LAN discovery over mDNS/DNS-SD through the Avahi daemon (avahi-client
 * on D-Bus, driven by the thread-default main context of pm_mdns_start()).
 *
 * A paired host advertises "_pipermesh._udp" on its UDP port with the TXT
 * record "v=1" and "fp=<fingerprint>", where the fingerprint is
 * pm_mdns_fingerprint_of_key() of its static public key: public data, never a
 * secret. Every PmMdns browses the same type and reports each resolved
 * address as "peer-found" (fingerprint, GInetSocketAddress), and "peer-lost"
 * when the last address of a fingerprint goes; its own advertisement is never
 * reported. Discovery only tells where a key claims to be: the mesh still
 * authenticates the peer with Noise IK against the pinned key, so a forged
 * advertisement costs at most one failed handshake.
 *
 * Without a system bus or an Avahi daemon, discovery is off: one g_message
 * says so, "available" stays FALSE and every call is a no-op. The client is
 * made with AVAHI_CLIENT_NO_FAIL, so a daemon that starts (or restarts) later
 * is picked up: the advertisement is registered again and browsing resumes.
 * See docs/ARCHITECTURE.md, "LAN discovery (mDNS)".
 */

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_MDNS_ERROR (pm_mdns_error_quark ())

typedef enum {
  PM_MDNS_ERROR_FAILED, /* Avahi refused the client (not a missing daemon: see pm_mdns_start()) */
  PM_MDNS_ERROR_TXT,    /* a TXT record that is not a valid PiperMesh v=1 record */
} PmMdnsError;

GQuark pm_mdns_error_quark (void);

#define PM_MDNS_SERVICE_TYPE    "_pipermesh._udp"
#define PM_MDNS_TXT_VERSION     "1"
#define PM_MDNS_FINGERPRINT_LEN 16 /* lowercase hex digits */
#define PM_MDNS_NAME_MAX        63 /* bytes of an instance name (one DNS label) */

#define PM_TYPE_MDNS (pm_mdns_get_type ())
G_DECLARE_FINAL_TYPE (PmMdns, pm_mdns, PM, MDNS, GObject)

PmMdns    *pm_mdns_new (void);
gboolean   pm_mdns_start (PmMdns  *self,
                          GError **error);
gboolean   pm_mdns_get_available (PmMdns *self);
void       pm_mdns_advertise (PmMdns     *self,
                              const char *instance_name,
                              uint16_t    port,
                              const char *key_fingerprint);
void       pm_mdns_unadvertise (PmMdns *self);
GPtrArray *pm_mdns_lookup (PmMdns     *self,
                           const char *fingerprint);

char    *pm_mdns_fingerprint_of_key (const uint8_t key[32]);
gboolean pm_mdns_fingerprint_is_valid (const char *fingerprint);

G_END_DECLS
