/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-address"

#include "pm-address.h"

#include <stdint.h>
#include <string.h>

/* A decimal port without sign or leading zeros. */
static gboolean
parse_port (const char *text,
            gboolean    allow_zero,
            uint16_t   *out)
{
  size_t   len = strlen (text);
  unsigned port = 0;

  if (len == 0 || len > 5 || strspn (text, "0123456789") != len)
    return FALSE;
  if (len > 1 && text[0] == '0')
    return FALSE;
  for (size_t i = 0; i < len; i++)
    port = port * 10 + (unsigned) (text[i] - '0');
  if (port > 65535 || (port == 0 && !allow_zero))
    return FALSE;
  *out = (uint16_t) port;
  return TRUE;
}

/**
 * pm_address_parse:
 * @text: "IPv4:PORT" or "[IPv6]:PORT"
 * @allow_port_zero: whether port 0 ("any free port", for listening) is fine
 *
 * The one strict parser of socket addresses that the server, the clients and
 * the CLI share: literal IP addresses only (no names, no scope ids), IPv6 in
 * brackets and IPv4 without, a port without leading zeros, at most
 * PM_ADDRESS_MAX_TEXT_LEN bytes. Addresses come from outside (candidates in
 * JSON, configuration), so anything else is refused.
 *
 * Returns: (transfer full) (nullable): the address, or %NULL if @text is not one
 */
GInetSocketAddress *
pm_address_parse (const char *text,
                  gboolean    allow_port_zero)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) address = NULL;
  const char *port_text;
  uint16_t    port;

  g_return_val_if_fail (text != NULL, NULL);

  if (strlen (text) > PM_ADDRESS_MAX_TEXT_LEN)
    return NULL;
  if (text[0] == '[')
    {
      const char *end = strchr (text, ']');

      if (end == NULL || end[1] != ':')
        return NULL;
      host = g_strndup (text + 1, (size_t) (end - text - 1));
      port_text = end + 2;
    }
  else
    {
      const char *colon = strchr (text, ':');

      if (colon == NULL || strchr (colon + 1, ':') != NULL)
        return NULL;
      host = g_strndup (text, (size_t) (colon - text));
      port_text = colon + 1;
    }
  if (strchr (host, '%') != NULL || !parse_port (port_text, allow_port_zero, &port))
    return NULL;
  address = g_inet_address_new_from_string (host);
  if (address == NULL)
    return NULL;
  /* "[1.2.3.4]:1" and "::1:80" are not ours. */
  if ((text[0] == '[') != (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6))
    return NULL;
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (address, port));
}

/**
 * pm_address_to_string:
 * The form pm_address_parse() reads back: "192.0.2.1:41641", "[2001:db8::1]:41641".
 */
char *
pm_address_to_string (GInetSocketAddress *address)
{
  GInetAddress    *ip;
  g_autofree char *host = NULL;
  unsigned         port;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), NULL);

  ip = g_inet_socket_address_get_address (address);
  host = g_inet_address_to_string (ip);
  port = g_inet_socket_address_get_port (address);
  if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", host, port);
  return g_strdup_printf ("%s:%u", host, port);
}
