/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The longest "IP:PORT" / "[IPv6]:PORT" text accepted. */
#define PM_ADDRESS_MAX_TEXT_LEN 64

GInetSocketAddress *pm_address_parse (const char *text,
                                      gboolean    allow_port_zero);
char               *pm_address_to_string (GInetSocketAddress *address);

G_END_DECLS
