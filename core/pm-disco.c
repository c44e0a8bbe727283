/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-disco"

#include "pm-disco.h"

#include <string.h>

/* clang-format off */
G_DEFINE_QUARK (pm-disco-error-quark, pm_disco_error)
/* clang-format on */

G_STATIC_ASSERT (PM_DISCO_MAX_LEN >= PM_DISCO_PONG_MAX_LEN);
G_STATIC_ASSERT (PM_DISCO_MAX_LEN >= PM_DISCO_PING_LEN);
G_STATIC_ASSERT (PM_DISCO_MAX_ENDPOINTS <= G_MAXUINT8);

static inline uint16_t
read_be16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

static inline void
write_be16 (uint8_t *p,
            uint16_t v)
{
  p[0] = (uint8_t) (v >> 8);
  p[1] = (uint8_t) v;
}

const char *
pm_disco_type_to_string (PmDiscoType type)
{
  switch (type)
    {
    case PM_DISCO_STREAM:
      return "STREAM";
    case PM_DISCO_PING:
      return "PING";
    case PM_DISCO_PONG:
      return "PONG";
    case PM_DISCO_CALL_ME_MAYBE:
      return "CALL_ME_MAYBE";
    default:
      return "unknown";
    }
}

/* --- Endpoints --------------------------------------------------------------- */

/**
 * pm_disco_endpoint_new:
 * @flags: #PmDiscoEndpointFlags
 * @address: (transfer none): the endpoint's address
 *
 * Returns: (transfer full): a new endpoint holding a reference to @address.
 */
PmDiscoEndpoint *
pm_disco_endpoint_new (uint8_t             flags,
                       GInetSocketAddress *address)
{
  PmDiscoEndpoint *endpoint;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), NULL);

  endpoint = g_new0 (PmDiscoEndpoint, 1);
  endpoint->flags = flags;
  endpoint->address = g_object_ref (address);
  return endpoint;
}

void
pm_disco_endpoint_free (PmDiscoEndpoint *endpoint)
{
  if (endpoint == NULL)
    return;
  g_clear_object (&endpoint->address);
  g_free (endpoint);
}

/* --- Addresses ---------------------------------------------------------------- */

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Why @addr (4 or 16 bytes, by @family) may not be carried, or NULL if it may. */
static const char *
address_problem (uint8_t        family,
                 const uint8_t *addr)
{
  static const uint8_t zero[16] = { 0 };

  if (family == PM_DISCO_FAMILY_IPV4)
    {
      if (memcmp (addr, zero, 4) == 0)
        return "the unspecified address 0.0.0.0";
      if ((addr[0] & 0xf0) == 0xe0)
        return "a multicast address";
      return NULL;
    }

  g_assert (family == PM_DISCO_FAMILY_IPV6);
  if (memcmp (addr, zero, 16) == 0)
    return "the unspecified address ::";
  if (addr[0] == 0xff)
    return "a multicast address";
  if (memcmp (addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0)
    return "an IPv4-mapped IPv6 address (send it as family 4)";
  return NULL;
}

/* Encodes @address as family, port, address into @out (PM_DISCO_ADDRESS_MAX_LEN
 * bytes), an IPv4-mapped IPv6 address as IPv4. Returns the length, or 0 if the
 * address cannot be carried. */
static size_t
encode_address (uint8_t            *out,
                GInetSocketAddress *address)
{
  GInetAddress  *inet;
  const uint8_t *bytes;
  uint8_t        family;
  size_t         addr_len;
  uint16_t       port;

  if (!G_IS_INET_SOCKET_ADDRESS (address))
    return 0;
  inet = g_inet_socket_address_get_address (address);
  port = g_inet_socket_address_get_port (address);
  bytes = g_inet_address_to_bytes (inet);
  switch (g_inet_address_get_family (inet))
    {
    case G_SOCKET_FAMILY_IPV4:
      family = PM_DISCO_FAMILY_IPV4;
      addr_len = 4;
      break;
    case G_SOCKET_FAMILY_IPV6:
      if (memcmp (bytes, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0)
        {
          family = PM_DISCO_FAMILY_IPV4;
          addr_len = 4;
          bytes += sizeof v4_mapped_prefix;
        }
      else
        {
          family = PM_DISCO_FAMILY_IPV6;
          addr_len = 16;
        }
      break;
    default:
      return 0;
    }
  if (port == 0 || address_problem (family, bytes) != NULL)
    return 0;

  out[0] = family;
  write_be16 (out + 1, port);
  memcpy (out + PM_DISCO_ADDRESS_MIN_LEN, bytes, addr_len);
  return PM_DISCO_ADDRESS_MIN_LEN + addr_len;
}

/**
 * pm_disco_address_is_valid:
 * Whether @address can be sent as a PONG's address or a CALL_ME_MAYBE
 * endpoint: IPv4 or IPv6, port not 0, neither unspecified nor multicast. An
 * IPv4-mapped IPv6 address (from a dual-stack socket) is valid: the writers
 * send it as IPv4. The IPv6 scope id and flow info are not carried.
 */
gboolean
pm_disco_address_is_valid (GInetSocketAddress *address)
{
  uint8_t buf[PM_DISCO_ADDRESS_MAX_LEN];

  return encode_address (buf, address) != 0;
}

/* Reads family, port, address at @p (@left bytes left). @what names it in
 * errors. With @allow_none, family 0 (port 0, no address) gives *@address =
 * NULL. */
static gboolean
read_address (const uint8_t       *p,
              size_t               left,
              const char          *what,
              gboolean             allow_none,
              GInetSocketAddress **address,
              size_t              *consumed,
              GError             **error)
{
  g_autoptr (GInetAddress) inet = NULL;
  const char *problem;
  uint8_t     family;
  uint16_t    port;
  size_t      addr_len;

  if (left < PM_DISCO_ADDRESS_MIN_LEN)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                   "Truncated %s: family and port need %d bytes, %zu left", what,
                   PM_DISCO_ADDRESS_MIN_LEN, left);
      return FALSE;
    }
  family = p[0];
  port = read_be16 (p + 1);

  if (family == PM_DISCO_FAMILY_NONE && allow_none)
    {
      if (port != 0)
        {
          g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_BAD_PORT,
                       "%s of family 0 (not seen over UDP) has port %u; it must be 0", what,
                       port);
          return FALSE;
        }
      *address = NULL;
      *consumed = PM_DISCO_ADDRESS_MIN_LEN;
      return TRUE;
    }
  if (family == PM_DISCO_FAMILY_IPV4)
    addr_len = 4;
  else if (family == PM_DISCO_FAMILY_IPV6)
    addr_len = 16;
  else
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_BAD_FAMILY,
                   "%s has family %u; %s expected", what, family,
                   allow_none ? "0, 4 or 6" : "4 or 6");
      return FALSE;
    }
  if (left < PM_DISCO_ADDRESS_MIN_LEN + addr_len)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                   "Truncated %s: an IPv%u address needs %zu bytes, %zu left", what, family,
                   PM_DISCO_ADDRESS_MIN_LEN + addr_len, left);
      return FALSE;
    }
  if (port == 0)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_BAD_PORT, "%s has port 0", what);
      return FALSE;
    }
  problem = address_problem (family, p + PM_DISCO_ADDRESS_MIN_LEN);
  if (problem != NULL)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_BAD_ADDRESS, "%s is %s", what, problem);
      return FALSE;
    }

  inet = g_inet_address_new_from_bytes (p + PM_DISCO_ADDRESS_MIN_LEN,
                                        family == PM_DISCO_FAMILY_IPV4 ? G_SOCKET_FAMILY_IPV4
                                                                       : G_SOCKET_FAMILY_IPV6);
  *address = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));
  *consumed = PM_DISCO_ADDRESS_MIN_LEN + addr_len;
  return TRUE;
}

/* --- Parsing ------------------------------------------------------------------ */

static gboolean
check_exact_length (PmDiscoType type,
                    size_t      len,
                    size_t      expected,
                    GError    **error)
{
  if (len < expected)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                   "Truncated %s: %zu bytes, %zu expected", pm_disco_type_to_string (type), len,
                   expected);
      return FALSE;
    }
  if (len > expected)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRAILING,
                   "Trailing data after a %s: %zu bytes, %zu expected",
                   pm_disco_type_to_string (type), len, expected);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_call_me_maybe (const uint8_t  *data,
                     size_t          len,
                     PmDiscoMessage *m,
                     GError        **error)
{
  g_autoptr (GPtrArray) endpoints = NULL;
  size_t   pos;
  unsigned count;

  if (len < 2)
    {
      g_set_error_literal (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                           "Truncated CALL_ME_MAYBE: no endpoint count");
      return FALSE;
    }
  count = data[1];
  if (count > PM_DISCO_MAX_ENDPOINTS)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TOO_MANY_ENDPOINTS,
                   "CALL_ME_MAYBE lists %u endpoints; at most %d allowed", count,
                   PM_DISCO_MAX_ENDPOINTS);
      return FALSE;
    }

  endpoints = g_ptr_array_new_full (count, (GDestroyNotify) pm_disco_endpoint_free);
  pos = 2;
  for (unsigned i = 0; i < count; i++)
    {
      g_autoptr (GInetSocketAddress) address = NULL;
      g_autofree char *what = g_strdup_printf ("CALL_ME_MAYBE endpoint %u of %u", i + 1, count);
      PmDiscoEndpoint *endpoint;
      uint8_t          flags;
      size_t           used = 0;

      if (pos >= len)
        {
          g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                       "Truncated %s: the message ends before it", what);
          return FALSE;
        }
      flags = data[pos];
      if ((flags & ~PM_DISCO_ENDPOINT_FLAGS_ALL) != 0)
        {
          g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_BAD_FLAGS,
                       "%s has reserved flag bits set (flags 0x%02x)", what, flags);
          return FALSE;
        }
      if (!read_address (data + pos + 1, len - pos - 1, what, FALSE, &address, &used, error))
        return FALSE;
      g_assert (address != NULL);
      endpoint = g_new0 (PmDiscoEndpoint, 1);
      endpoint->flags = flags;
      endpoint->address = g_steal_pointer (&address);
      g_ptr_array_add (endpoints, endpoint);
      pos += 1 + used;
    }
  if (pos != len)
    {
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRAILING,
                   "Trailing data after a CALL_ME_MAYBE (count %u): %zu bytes, %zu expected",
                   count, len, pos);
      return FALSE;
    }

  m->endpoints = g_steal_pointer (&endpoints);
  return TRUE;
}

/**
 * pm_disco_parse:
 * @data: one decrypted transport plaintext
 * @out: (out caller-allocates): an empty message (zeroed, or cleared with
 *   pm_disco_message_clear())
 *
 * Parses one in-session message. On success @out holds it (release with
 * pm_disco_message_clear(); a STREAM's packet points into @data). On failure
 * @out is left untouched and @error, in %PM_DISCO_ERROR, says which rule the
 * message broke.
 */
gboolean
pm_disco_parse (const uint8_t  *data,
                size_t          len,
                PmDiscoMessage *out,
                GError        **error)
{
  PmDiscoMessage m = { 0 };

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (len == 0)
    {
      g_set_error_literal (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                           "Empty in-session message: no type byte");
      return FALSE;
    }

  m.type = (PmDiscoType) data[0];
  switch (data[0])
    {
    case PM_DISCO_STREAM:
      if (len < PM_DISCO_STREAM_HEADER_LEN + 1)
        {
          g_set_error_literal (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                               "Truncated STREAM: no SCTP packet");
          return FALSE;
        }
      m.stream = data + PM_DISCO_STREAM_HEADER_LEN;
      m.stream_len = len - PM_DISCO_STREAM_HEADER_LEN;
      break;

    case PM_DISCO_PING:
      if (!check_exact_length (m.type, len, PM_DISCO_PING_LEN, error))
        return FALSE;
      memcpy (m.tx_id, data + 1, PM_DISCO_TX_ID_LEN);
      break;

      case PM_DISCO_PONG: {
        size_t used = 0;

        if (len < PM_DISCO_PING_LEN)
          {
            g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRUNCATED,
                         "Truncated PONG: %zu bytes, at least %d expected", len,
                         PM_DISCO_PONG_MIN_LEN);
            return FALSE;
          }
        if (!read_address (data + PM_DISCO_PING_LEN, len - PM_DISCO_PING_LEN, "PONG address", TRUE,
                           &m.seen, &used, error))
          return FALSE;
        if (PM_DISCO_PING_LEN + used != len)
          {
            g_clear_object (&m.seen);
            g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_TRAILING,
                         "Trailing data after a PONG: %zu bytes, %zu expected", len,
                         PM_DISCO_PING_LEN + used);
            return FALSE;
          }
        memcpy (m.tx_id, data + 1, PM_DISCO_TX_ID_LEN);
        break;
      }

    case PM_DISCO_CALL_ME_MAYBE:
      if (!parse_call_me_maybe (data, len, &m, error))
        return FALSE;
      break;

    default:
      g_set_error (error, PM_DISCO_ERROR, PM_DISCO_ERROR_UNKNOWN_TYPE,
                   "Unknown in-session message type 0x%02x", data[0]);
      return FALSE;
    }

  *out = m;
  return TRUE;
}

/**
 * pm_disco_message_clear:
 * Releases what @message holds and zeroes it; it may be parsed into again.
 */
void
pm_disco_message_clear (PmDiscoMessage *message)
{
  g_return_if_fail (message != NULL);

  g_clear_object (&message->seen);
  g_clear_pointer (&message->endpoints, g_ptr_array_unref);
  memset (message, 0, sizeof *message);
}

/* --- Writing ------------------------------------------------------------------ */

/**
 * pm_disco_write_stream:
 * Writes a STREAM carrying @packet (at least one byte).
 */
size_t
pm_disco_write_stream (uint8_t       *out,
                       size_t         out_len,
                       const uint8_t *packet,
                       size_t         packet_len)
{
  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (packet != NULL || packet_len == 0, 0);

  if (packet_len == 0 || out_len < PM_DISCO_STREAM_HEADER_LEN ||
      out_len - PM_DISCO_STREAM_HEADER_LEN < packet_len)
    return 0;
  out[0] = PM_DISCO_STREAM;
  memmove (out + PM_DISCO_STREAM_HEADER_LEN, packet, packet_len);
  return PM_DISCO_STREAM_HEADER_LEN + packet_len;
}

size_t
pm_disco_write_ping (uint8_t      *out,
                     size_t        out_len,
                     const uint8_t tx_id[PM_DISCO_TX_ID_LEN])
{
  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (tx_id != NULL, 0);

  if (out_len < PM_DISCO_PING_LEN)
    return 0;
  out[0] = PM_DISCO_PING;
  memcpy (out + 1, tx_id, PM_DISCO_TX_ID_LEN);
  return PM_DISCO_PING_LEN;
}

/**
 * pm_disco_write_pong:
 * @seen: (nullable): where the ping's sender was seen, or %NULL if the ping
 *   did not come over UDP (e.g. over the relay)
 *
 * Writes a PONG. Returns 0 if @seen is given but not valid
 * (pm_disco_address_is_valid()).
 */
size_t
pm_disco_write_pong (uint8_t            *out,
                     size_t              out_len,
                     const uint8_t       tx_id[PM_DISCO_TX_ID_LEN],
                     GInetSocketAddress *seen)
{
  uint8_t address[PM_DISCO_ADDRESS_MAX_LEN] = { 0 };
  size_t  address_len;

  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (tx_id != NULL, 0);

  if (seen == NULL)
    address_len = PM_DISCO_ADDRESS_MIN_LEN; /* family 0, port 0 */
  else if ((address_len = encode_address (address, seen)) == 0)
    return 0;
  if (out_len < PM_DISCO_PING_LEN + address_len)
    return 0;

  out[0] = PM_DISCO_PONG;
  memcpy (out + 1, tx_id, PM_DISCO_TX_ID_LEN);
  memcpy (out + PM_DISCO_PING_LEN, address, address_len);
  return PM_DISCO_PING_LEN + address_len;
}

/**
 * pm_disco_write_call_me_maybe:
 * @endpoints: (nullable) (element-type PmDiscoEndpoint): at most
 *   %PM_DISCO_MAX_ENDPOINTS endpoints; %NULL for none
 *
 * Writes a CALL_ME_MAYBE. Returns 0 if there are too many endpoints, or one
 * has reserved flags or an address that is not valid
 * (pm_disco_address_is_valid()).
 */
size_t
pm_disco_write_call_me_maybe (uint8_t   *out,
                              size_t     out_len,
                              GPtrArray *endpoints)
{
  uint8_t buf[PM_DISCO_CALL_ME_MAYBE_MAX_LEN];
  size_t  pos;
  size_t  count;

  g_return_val_if_fail (out != NULL, 0);

  count = endpoints != NULL ? endpoints->len : 0;
  if (count > PM_DISCO_MAX_ENDPOINTS)
    return 0;

  /* Built aside, so nothing is written when an endpoint is refused. */
  buf[0] = PM_DISCO_CALL_ME_MAYBE;
  buf[1] = (uint8_t) count;
  pos = 2;
  for (size_t i = 0; i < count; i++)
    {
      const PmDiscoEndpoint *endpoint = g_ptr_array_index (endpoints, i);
      size_t                 used;

      if (endpoint == NULL || (endpoint->flags & ~PM_DISCO_ENDPOINT_FLAGS_ALL) != 0)
        return 0;
      buf[pos] = endpoint->flags;
      used = encode_address (buf + pos + 1, endpoint->address);
      if (used == 0)
        return 0;
      pos += 1 + used;
    }
  g_assert (pos <= sizeof buf);
  if (out_len < pos)
    return 0;
  memcpy (out, buf, pos);
  return pos;
}

/**
 * pm_disco_write:
 * Writes @message, as pm_disco_parse() gave it or as filled by hand. Returns
 * 0 for an unknown type or what the type's writer refuses.
 */
size_t
pm_disco_write (uint8_t              *out,
                size_t                out_len,
                const PmDiscoMessage *message)
{
  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (message != NULL, 0);

  switch (message->type)
    {
    case PM_DISCO_STREAM:
      return pm_disco_write_stream (out, out_len, message->stream, message->stream_len);
    case PM_DISCO_PING:
      return pm_disco_write_ping (out, out_len, message->tx_id);
    case PM_DISCO_PONG:
      return pm_disco_write_pong (out, out_len, message->tx_id, message->seen);
    case PM_DISCO_CALL_ME_MAYBE:
      return pm_disco_write_call_me_maybe (out, out_len, message->endpoints);
    default:
      return 0;
    }
}
