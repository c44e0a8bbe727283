/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* PmMdns internals shared with the tests and the fuzz target (fuzz-mdns-txt). */

#include <avahi-common/strlst.h>

#include "pm-mdns.h"

G_BEGIN_DECLS

/* Parses the TXT record of a "_pipermesh._udp" service (outside input: any
 * host on the LAN can announce one). Accepts exactly one "v=1" and exactly one
 * "fp=" with PM_MDNS_FINGERPRINT_LEN hex digits; keys are case-insensitive
 * (RFC 6763 §6.4), other keys are ignored. Sets *fingerprint (lowercase,
 * g_free()) on success; otherwise a PM_MDNS_ERROR_TXT error that says why. */
gboolean pm_mdns_txt_parse (AvahiStringList *txt,
                            char           **fingerprint,
                            GError         **error);

G_END_DECLS
