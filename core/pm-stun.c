/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stun"

#include "pm-stun.h"

#include <sodium.h>
#include <string.h>
#include <zlib.h>

G_DEFINE_QUARK (pm-stun-error-quark, pm_stun_error)

static inline uint16_t
read_be16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

static inline uint32_t
read_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

static inline void
write_be16 (uint8_t *p,
            uint16_t v)
{
  p[0] = (uint8_t) (v >> 8);
  p[1] = (uint8_t) v;
}

static inline void
write_be32 (uint8_t *p,
            uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static inline size_t
padded (size_t len)
{
  return (len + 3) & ~(size_t) 3;
}

/* CRC-32 of @data XOR "STUN" (RFC 8489 §14.7). */
static uint32_t
fingerprint (const uint8_t *data,
             size_t         len)
{
  return (uint32_t) crc32 (0L, data, (uInt) len) ^ PM_STUN_FINGERPRINT_XOR;
}

/*
 * Comprehension-required attributes this module understands. MESSAGE-INTEGRITY,
 * MESSAGE-INTEGRITY-SHA256, USERNAME, USERHASH, REALM, NONCE and
 * PASSWORD-ALGORITHM are defined by RFC 8489 itself, so they are known; our
 * responder runs without credentials (like public STUN servers) and ignores
 * them, and never claims integrity in an answer. A client that needs
 * authentication then sees an answer without MESSAGE-INTEGRITY and can decide.
 * CHANGE-REQUEST is known: PmStunMessage.change_request carries its flags and
 * the responder decides. RESPONSE-ADDRESS (RFC 3489) is deliberately unknown:
 * sending answers to an address named in the request is a reflection attack.
 */
static gboolean
is_known (uint16_t type)
{
  switch (type)
    {
    case PM_STUN_ATTR_MAPPED_ADDRESS:
    case PM_STUN_ATTR_CHANGE_REQUEST:
    case PM_STUN_ATTR_SOURCE_ADDRESS:
    case PM_STUN_ATTR_CHANGED_ADDRESS:
    case PM_STUN_ATTR_USERNAME:
    case PM_STUN_ATTR_MESSAGE_INTEGRITY:
    case PM_STUN_ATTR_ERROR_CODE:
    case PM_STUN_ATTR_UNKNOWN_ATTRIBUTES:
    case PM_STUN_ATTR_REALM:
    case PM_STUN_ATTR_NONCE:
    case PM_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    case PM_STUN_ATTR_PASSWORD_ALGORITHM:
    case PM_STUN_ATTR_USERHASH:
    case PM_STUN_ATTR_XOR_MAPPED_ADDRESS:
      return TRUE;
    default:
      return FALSE;
    }
}

/**
 * pm_stun_is_stun:
 * Whether @data looks like an RFC 8489 STUN message, for demultiplexing one
 * UDP socket: the first two bits are zero, the length fits and the magic
 * cookie is there. Cheap; pm_stun_parse() does the real checks.
 */
gboolean
pm_stun_is_stun (const uint8_t *data,
                 size_t         len)
{
  if (data == NULL || len < PM_STUN_HEADER_LEN)
    return FALSE;
  return (data[0] & 0xC0) == 0 && read_be32 (data + 4) == PM_STUN_MAGIC_COOKIE &&
         (data[3] & 3) == 0;
}

/**
 * pm_stun_type:
 * The 14-bit message type of @method in @klass (RFC 8489 §5).
 */
uint16_t
pm_stun_type (uint16_t    method,
              PmStunClass klass)
{
  return (uint16_t) ((method & 0x000F) | (method & 0x0070) << 1 | (method & 0x0F80) << 2 |
                     (klass & 1) << 4 | (klass & 2) << 7);
}

/**
 * pm_stun_parse_header:
 * Checks the 20-byte header of the datagram @data: the first two bits, the
 * magic cookie (unless @flags allows RFC 3489), and that the length field is a
 * multiple of 4 that matches the datagram exactly. On failure @header is left
 * untouched.
 */
gboolean
pm_stun_parse_header (const uint8_t   *data,
                      size_t           len,
                      PmStunParseFlags flags,
                      PmStunHeader    *header,
                      GError         **error)
{
  PmStunHeader h = { 0 };

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (header != NULL, FALSE);

  if (len < PM_STUN_HEADER_LEN)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_TRUNCATED,
                   "Truncated STUN header: %zu bytes, %d needed", len, PM_STUN_HEADER_LEN);
      return FALSE;
    }
  if ((data[0] & 0xC0) != 0)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_NOT_STUN,
                   "Not a STUN message: first byte 0x%02x has its top bits set", data[0]);
      return FALSE;
    }
  if (len > PM_STUN_MAX_MESSAGE_LEN)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_TOO_LARGE,
                   "Oversized STUN message: %zu bytes, at most %d allowed", len,
                   PM_STUN_MAX_MESSAGE_LEN);
      return FALSE;
    }

  h.type = read_be16 (data);
  h.length = read_be16 (data + 2);
  h.cookie = read_be32 (data + 4);
  h.rfc3489 = h.cookie != PM_STUN_MAGIC_COOKIE;
  h.method = (uint16_t) ((h.type & 0x000F) | ((h.type & 0x00E0) >> 1) | ((h.type & 0x3E00) >> 2));
  h.klass = (PmStunClass) (((h.type & 0x0010) >> 4) | ((h.type & 0x0100) >> 7));
  memcpy (h.transaction_id, data + 8, PM_STUN_TRANSACTION_ID_LEN);

  if (h.rfc3489 && !(flags & PM_STUN_PARSE_ALLOW_RFC3489))
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_COOKIE,
                   "STUN message without the magic cookie (0x%08x instead of 0x%08x)", h.cookie,
                   PM_STUN_MAGIC_COOKIE);
      return FALSE;
    }
  if (h.length % 4 != 0)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_LENGTH,
                   "STUN message length %u is not a multiple of 4", h.length);
      return FALSE;
    }
  if ((size_t) h.length > len - PM_STUN_HEADER_LEN)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_TRUNCATED,
                   "Truncated STUN message: header says %u bytes of attributes, %zu present",
                   h.length, len - PM_STUN_HEADER_LEN);
      return FALSE;
    }
  if ((size_t) h.length < len - PM_STUN_HEADER_LEN)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_LENGTH,
                   "%zu bytes after the STUN message", len - PM_STUN_HEADER_LEN - h.length);
      return FALSE;
    }

  *header = h;
  return TRUE;
}

/* Checks the size of an attribute whose size this module knows. */
static gboolean
check_attribute (const PmStunAttribute *attr,
                 GError               **error)
{
  gboolean ok = TRUE;

  switch (attr->type)
    {
    case PM_STUN_ATTR_MESSAGE_INTEGRITY:
      ok = attr->length == 20;
      break;
    case PM_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
      ok = attr->length >= 16 && attr->length <= 32 && attr->length % 4 == 0;
      break;
    case PM_STUN_ATTR_FINGERPRINT:
    case PM_STUN_ATTR_CHANGE_REQUEST:
      ok = attr->length == 4;
      break;
    case PM_STUN_ATTR_ERROR_CODE:
      ok = attr->length >= 4;
      break;
    case PM_STUN_ATTR_UNKNOWN_ATTRIBUTES:
      ok = attr->length % 2 == 0;
      break;
    default:
      break;
    }
  if (!ok)
    g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ATTRIBUTE,
                 "STUN attribute 0x%04x has a bad length (%u bytes)", attr->type, attr->length);
  return ok;
}

/**
 * pm_stun_parse:
 * Parses one STUN datagram: the header (see pm_stun_parse_header()), then
 * every attribute, each of which must fit inside the message with its
 * padding. FINGERPRINT, if present, must be the last attribute and match.
 * MESSAGE-INTEGRITY is recorded but never verified (see is_known()).
 *
 * On failure @message is left untouched and @error says what was wrong.
 */
gboolean
pm_stun_parse (const uint8_t   *data,
               size_t           len,
               PmStunParseFlags flags,
               PmStunMessage   *message,
               GError         **error)
{
  PmStunMessage m_ = { 0 }, *m = &m_;
  gboolean      after_integrity = FALSE;
  size_t        off;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (message != NULL, FALSE);

  if (!pm_stun_parse_header (data, len, flags, &m->header, error))
    return FALSE;
  m->data = data;
  m->len = len;

  off = PM_STUN_HEADER_LEN;
  while (off < len)
    {
      PmStunAttribute attr;

      if (len - off < 4)
        {
          g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ATTRIBUTE,
                       "Truncated STUN attribute header at offset %zu", off);
          return FALSE;
        }
      attr.type = read_be16 (data + off);
      attr.length = read_be16 (data + off + 2);
      attr.value = data + off + 4;
      if (padded (attr.length) > len - off - 4)
        {
          g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ATTRIBUTE,
                       "STUN attribute 0x%04x (%u bytes) overruns the message at offset %zu",
                       attr.type, attr.length, off);
          return FALSE;
        }
      if (m->n_attributes == PM_STUN_MAX_ATTRIBUTES)
        {
          g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_TOO_MANY_ATTRIBUTES,
                       "Too many STUN attributes: more than %d", PM_STUN_MAX_ATTRIBUTES);
          return FALSE;
        }
      if (!check_attribute (&attr, error))
        return FALSE;

      switch (attr.type)
        {
        case PM_STUN_ATTR_FINGERPRINT:
          if (off + PM_STUN_FINGERPRINT_LEN != len)
            {
              g_set_error_literal (error, PM_STUN_ERROR, PM_STUN_ERROR_FINGERPRINT_NOT_LAST,
                                   "STUN FINGERPRINT is not the last attribute");
              return FALSE;
            }
          if (read_be32 (attr.value) != fingerprint (data, off))
            {
              g_set_error_literal (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_FINGERPRINT,
                                   "STUN FINGERPRINT does not match the message");
              return FALSE;
            }
          m->has_fingerprint = TRUE;
          break;
        case PM_STUN_ATTR_MESSAGE_INTEGRITY:
        case PM_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
          m->has_message_integrity = TRUE;
          after_integrity = TRUE;
          break;
        case PM_STUN_ATTR_CHANGE_REQUEST:
          if (!after_integrity && pm_stun_message_find (m, attr.type) == NULL)
            m->change_request = read_be32 (attr.value);
          break;
        default:
          if (!after_integrity && PM_STUN_ATTR_IS_COMPREHENSION_REQUIRED (attr.type) &&
              !is_known (attr.type))
            {
              gboolean seen = FALSE;

              for (unsigned i = 0; i < m->n_unknown; i++)
                seen |= m->unknown[i] == attr.type;
              if (!seen && m->n_unknown < PM_STUN_MAX_UNKNOWN)
                m->unknown[m->n_unknown++] = attr.type;
            }
          break;
        }

      m->attributes[m->n_attributes++] = attr;
      off += 4 + padded (attr.length);
    }

  *message = *m;
  return TRUE;
}

/**
 * pm_stun_message_find:
 * The first attribute of @type in @message (RFC 8489: later duplicates are
 * ignored), or %NULL.
 */
const PmStunAttribute *
pm_stun_message_find (const PmStunMessage *message,
                      uint16_t             type)
{
  g_return_val_if_fail (message != NULL, NULL);

  for (unsigned i = 0; i < message->n_attributes; i++)
    if (message->attributes[i].type == type)
      return &message->attributes[i];
  return NULL;
}

/**
 * pm_stun_attribute_get_address:
 * Decodes a MAPPED-ADDRESS-like attribute (MAPPED-ADDRESS, OTHER-ADDRESS,
 * CHANGED-ADDRESS, ...) or an XOR-MAPPED-ADDRESS of @message.
 *
 * Returns: (transfer full): the address, or %NULL with @error set.
 */
GInetSocketAddress *
pm_stun_attribute_get_address (const PmStunMessage   *message,
                               const PmStunAttribute *attribute,
                               GError               **error)
{
  g_autoptr (GInetAddress) inet = NULL;
  uint8_t  addr[16];
  uint8_t  family;
  uint16_t port;
  size_t   addr_len;
  gboolean is_xor;

  g_return_val_if_fail (message != NULL, NULL);
  g_return_val_if_fail (attribute != NULL, NULL);

  is_xor = attribute->type == PM_STUN_ATTR_XOR_MAPPED_ADDRESS;
  if (attribute->length < 4)
    goto bad;
  family = attribute->value[1];
  if (family == PM_STUN_FAMILY_IPV4)
    addr_len = 4;
  else if (family == PM_STUN_FAMILY_IPV6)
    addr_len = 16;
  else
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ADDRESS,
                   "STUN address attribute 0x%04x has unknown family 0x%02x", attribute->type,
                   family);
      return NULL;
    }
  if (attribute->length != 4 + addr_len)
    goto bad;

  port = read_be16 (attribute->value + 2);
  memcpy (addr, attribute->value + 4, addr_len);
  if (is_xor)
    {
      uint8_t mask[16];

      write_be32 (mask, PM_STUN_MAGIC_COOKIE);
      memcpy (mask + 4, message->header.transaction_id, PM_STUN_TRANSACTION_ID_LEN);
      port ^= (uint16_t) (PM_STUN_MAGIC_COOKIE >> 16);
      for (size_t i = 0; i < addr_len; i++)
        addr[i] ^= mask[i];
    }

  inet = g_inet_address_new_from_bytes (addr, family == PM_STUN_FAMILY_IPV4 ? G_SOCKET_FAMILY_IPV4
                                                                            : G_SOCKET_FAMILY_IPV6);
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));

bad:
  g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ADDRESS,
               "STUN address attribute 0x%04x has a bad length (%u bytes)", attribute->type,
               attribute->length);
  return NULL;
}

/* --- Building ---------------------------------------------------------------- */

static void
writer_set_length (PmStunWriter *writer,
                   size_t        extra)
{
  write_be16 (writer->buf + 2, (uint16_t) (writer->len - PM_STUN_HEADER_LEN + extra));
}

/**
 * pm_stun_writer_init:
 * Starts a message of @type in @buf, with the cookie and transaction id of
 * @ids (a request's header, to answer it).
 */
void
pm_stun_writer_init (PmStunWriter       *writer,
                     uint8_t            *buf,
                     size_t              cap,
                     uint16_t            type,
                     const PmStunHeader *ids)
{
  g_return_if_fail (writer != NULL);
  g_return_if_fail (buf != NULL || cap == 0);
  g_return_if_fail (ids != NULL);

  writer->buf = buf;
  writer->cap = MIN (cap, (size_t) PM_STUN_MAX_MESSAGE_LEN);
  writer->len = 0;
  writer->overflow = writer->cap < PM_STUN_HEADER_LEN;
  if (writer->overflow)
    return;

  write_be16 (buf, type);
  write_be16 (buf + 2, 0);
  write_be32 (buf + 4, ids->cookie);
  memcpy (buf + 8, ids->transaction_id, PM_STUN_TRANSACTION_ID_LEN);
  writer->len = PM_STUN_HEADER_LEN;
}

/**
 * pm_stun_writer_add:
 * Appends one attribute, zero-padded to 4 bytes.
 */
void
pm_stun_writer_add (PmStunWriter *writer,
                    uint16_t      type,
                    const void   *value,
                    size_t        len)
{
  g_return_if_fail (writer != NULL);
  g_return_if_fail (value != NULL || len == 0);

  if (writer->overflow)
    return;
  if (len > G_MAXUINT16 || 4 + padded (len) > writer->cap - writer->len)
    {
      writer->overflow = TRUE;
      return;
    }
  write_be16 (writer->buf + writer->len, type);
  write_be16 (writer->buf + writer->len + 2, (uint16_t) len);
  if (len > 0)
    memcpy (writer->buf + writer->len + 4, value, len);
  memset (writer->buf + writer->len + 4 + len, 0, padded (len) - len);
  writer->len += 4 + padded (len);
  writer_set_length (writer, 0);
}

/**
 * pm_stun_writer_add_address:
 * Appends @address as a MAPPED-ADDRESS-like attribute of @type, XORed with
 * the cookie and transaction id when @type is XOR-MAPPED-ADDRESS.
 */
void
pm_stun_writer_add_address (PmStunWriter       *writer,
                            uint16_t            type,
                            GInetSocketAddress *address)
{
  GInetAddress *inet;
  uint8_t       value[4 + 16];
  size_t        addr_len;
  uint16_t      port;

  g_return_if_fail (writer != NULL);
  g_return_if_fail (G_IS_INET_SOCKET_ADDRESS (address));

  if (writer->overflow)
    return;
  inet = g_inet_socket_address_get_address (address);
  addr_len = g_inet_address_get_native_size (inet);
  g_assert (addr_len == 4 || addr_len == 16);
  port = g_inet_socket_address_get_port (address);

  value[0] = 0;
  value[1] = addr_len == 4 ? PM_STUN_FAMILY_IPV4 : PM_STUN_FAMILY_IPV6;
  memcpy (value + 4, g_inet_address_to_bytes (inet), addr_len);
  if (type == PM_STUN_ATTR_XOR_MAPPED_ADDRESS)
    {
      uint8_t mask[16];

      write_be32 (mask, PM_STUN_MAGIC_COOKIE);
      memcpy (mask + 4, writer->buf + 8, PM_STUN_TRANSACTION_ID_LEN);
      port ^= (uint16_t) (PM_STUN_MAGIC_COOKIE >> 16);
      for (size_t i = 0; i < addr_len; i++)
        value[4 + i] ^= mask[i];
    }
  write_be16 (value + 2, port);
  pm_stun_writer_add (writer, type, value, 4 + addr_len);
}

/**
 * pm_stun_writer_add_error_code:
 * Appends ERROR-CODE with @code (300..699) and a reason phrase, cut to
 * PM_STUN_MAX_REASON_LEN bytes on a character boundary.
 */
void
pm_stun_writer_add_error_code (PmStunWriter *writer,
                               unsigned      code,
                               const char   *reason)
{
  uint8_t value[4 + PM_STUN_MAX_REASON_LEN];
  size_t  reason_len;

  g_return_if_fail (writer != NULL);
  g_return_if_fail (code >= 300 && code <= 699);
  g_return_if_fail (reason != NULL && g_utf8_validate (reason, -1, NULL));

  reason_len = strlen (reason);
  if (reason_len > PM_STUN_MAX_REASON_LEN)
    {
      const char *end = g_utf8_find_prev_char (reason, reason + PM_STUN_MAX_REASON_LEN + 1);

      reason_len = (size_t) (end - reason);
    }
  value[0] = 0;
  value[1] = 0;
  value[2] = (uint8_t) (code / 100);
  value[3] = (uint8_t) (code % 100);
  memcpy (value + 4, reason, reason_len);
  pm_stun_writer_add (writer, PM_STUN_ATTR_ERROR_CODE, value, 4 + reason_len);
}

/**
 * pm_stun_writer_add_fingerprint:
 * Appends FINGERPRINT over everything written so far; add it last.
 */
void
pm_stun_writer_add_fingerprint (PmStunWriter *writer)
{
  uint8_t value[4];

  g_return_if_fail (writer != NULL);

  if (writer->overflow)
    return;
  if (writer->cap - writer->len < PM_STUN_FINGERPRINT_LEN)
    {
      writer->overflow = TRUE;
      return;
    }
  /* The CRC covers the header with a length that already counts FINGERPRINT. */
  writer_set_length (writer, PM_STUN_FINGERPRINT_LEN);
  write_be32 (value, fingerprint (writer->buf, writer->len));
  pm_stun_writer_add (writer, PM_STUN_ATTR_FINGERPRINT, value, sizeof value);
}

/**
 * pm_stun_writer_finish:
 * Returns the message's length in @len, or fails if the buffer was too small.
 */
gboolean
pm_stun_writer_finish (PmStunWriter *writer,
                       size_t       *len,
                       GError      **error)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (len != NULL, FALSE);

  if (writer->overflow)
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_NO_SPACE,
                   "STUN message does not fit in %zu bytes", writer->cap);
      return FALSE;
    }
  *len = writer->len;
  return TRUE;
}

/**
 * pm_stun_build_binding_request:
 * Writes a Binding request with a fresh random transaction id, returned in
 * @transaction_id to match the answer with pm_stun_parse_binding_response().
 */
gboolean
pm_stun_build_binding_request (uint8_t *buf,
                               size_t   cap,
                               gboolean with_fingerprint,
                               uint8_t  transaction_id[PM_STUN_TRANSACTION_ID_LEN],
                               size_t  *len,
                               GError **error)
{
  PmStunHeader ids = { .cookie = PM_STUN_MAGIC_COOKIE };
  PmStunWriter writer;

  g_return_val_if_fail (transaction_id != NULL, FALSE);

  randombytes_buf (ids.transaction_id, sizeof ids.transaction_id);
  pm_stun_writer_init (&writer, buf, cap, PM_STUN_BINDING_REQUEST, &ids);
  if (with_fingerprint)
    pm_stun_writer_add_fingerprint (&writer);
  if (!pm_stun_writer_finish (&writer, len, error))
    return FALSE;
  memcpy (transaction_id, ids.transaction_id, PM_STUN_TRANSACTION_ID_LEN);
  return TRUE;
}

/**
 * pm_stun_build_binding_success:
 * Writes the success answer to the Binding request @request, seen from
 * @mapped. An RFC 8489 request gets XOR-MAPPED-ADDRESS, OTHER-ADDRESS (if
 * @other_address), SOFTWARE (if @software) and FINGERPRINT. An RFC 3489
 * request (no magic cookie) gets only what RFC 3489 defines, as RFC 8489 §12
 * asks: MAPPED-ADDRESS and CHANGED-ADDRESS (if @other_address).
 */
gboolean
pm_stun_build_binding_success (const PmStunHeader *request,
                               GInetSocketAddress *mapped,
                               GInetSocketAddress *other_address,
                               const char         *software,
                               uint8_t            *buf,
                               size_t              cap,
                               size_t             *len,
                               GError            **error)
{
  PmStunWriter writer;

  g_return_val_if_fail (request != NULL, FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (mapped), FALSE);
  g_return_val_if_fail (other_address == NULL || G_IS_INET_SOCKET_ADDRESS (other_address), FALSE);

  pm_stun_writer_init (&writer, buf, cap, PM_STUN_BINDING_SUCCESS, request);
  if (request->rfc3489)
    {
      pm_stun_writer_add_address (&writer, PM_STUN_ATTR_MAPPED_ADDRESS, mapped);
      if (other_address != NULL)
        pm_stun_writer_add_address (&writer, PM_STUN_ATTR_CHANGED_ADDRESS, other_address);
    }
  else
    {
      pm_stun_writer_add_address (&writer, PM_STUN_ATTR_XOR_MAPPED_ADDRESS, mapped);
      if (other_address != NULL)
        pm_stun_writer_add_address (&writer, PM_STUN_ATTR_OTHER_ADDRESS, other_address);
      if (software != NULL)
        pm_stun_writer_add (&writer, PM_STUN_ATTR_SOFTWARE, software, strlen (software));
      pm_stun_writer_add_fingerprint (&writer);
    }
  return pm_stun_writer_finish (&writer, len, error);
}

/**
 * pm_stun_build_binding_error:
 * Writes an error answer to @request (of its method, normally Binding; 400
 * answers other methods too): ERROR-CODE @code with @reason, then
 * UNKNOWN-ATTRIBUTES if @n_unknown > 0 (for 420), and for an RFC 8489
 * request SOFTWARE and FINGERPRINT.
 */
gboolean
pm_stun_build_binding_error (const PmStunHeader *request,
                             unsigned            code,
                             const char         *reason,
                             const uint16_t     *unknown,
                             unsigned            n_unknown,
                             const char         *software,
                             uint8_t            *buf,
                             size_t              cap,
                             size_t             *len,
                             GError            **error)
{
  PmStunWriter writer;

  g_return_val_if_fail (request != NULL, FALSE);
  g_return_val_if_fail (unknown != NULL || n_unknown == 0, FALSE);
  g_return_val_if_fail (n_unknown <= PM_STUN_MAX_UNKNOWN, FALSE);

  pm_stun_writer_init (&writer, buf, cap, pm_stun_type (request->method, PM_STUN_CLASS_ERROR),
                       request);
  pm_stun_writer_add_error_code (&writer, code, reason);
  if (n_unknown > 0)
    {
      uint8_t value[2 * PM_STUN_MAX_UNKNOWN];

      for (unsigned i = 0; i < n_unknown; i++)
        write_be16 (value + 2 * i, unknown[i]);
      pm_stun_writer_add (&writer, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES, value, 2 * n_unknown);
    }
  if (!request->rfc3489)
    {
      if (software != NULL)
        pm_stun_writer_add (&writer, PM_STUN_ATTR_SOFTWARE, software, strlen (software));
      pm_stun_writer_add_fingerprint (&writer);
    }
  return pm_stun_writer_finish (&writer, len, error);
}

/* --- Client side ------------------------------------------------------------- */

/**
 * pm_stun_parse_binding_response:
 * Parses the answer to our Binding request with @transaction_id
 * (PM_STUN_TRANSACTION_ID_LEN bytes) and returns
 * the address the server saw us from: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS
 * from an old server. An error answer fails with
 * %PM_STUN_ERROR_ERROR_RESPONSE and the server's code.
 *
 * Returns: (transfer full): the mapped address, or %NULL with @error set.
 */
GInetSocketAddress *
pm_stun_parse_binding_response (const uint8_t *data,
                                size_t         len,
                                const uint8_t *transaction_id,
                                GError       **error)
{
  PmStunMessage          msg_, *msg = &msg_;
  const PmStunAttribute *attr;

  g_return_val_if_fail (transaction_id != NULL, NULL);

  if (!pm_stun_parse (data, len, PM_STUN_PARSE_DEFAULT, msg, error))
    return NULL;
  if (msg->header.method != PM_STUN_METHOD_BINDING ||
      (msg->header.klass != PM_STUN_CLASS_SUCCESS && msg->header.klass != PM_STUN_CLASS_ERROR))
    {
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_UNEXPECTED_MESSAGE,
                   "STUN message of type 0x%04x is not a Binding response", msg->header.type);
      return NULL;
    }
  if (sodium_memcmp (msg->header.transaction_id, transaction_id, PM_STUN_TRANSACTION_ID_LEN) != 0)
    {
      g_set_error_literal (error, PM_STUN_ERROR, PM_STUN_ERROR_UNEXPECTED_MESSAGE,
                           "STUN response to another transaction");
      return NULL;
    }
  if (msg->header.klass == PM_STUN_CLASS_ERROR)
    {
      unsigned code = 0;

      attr = pm_stun_message_find (msg, PM_STUN_ATTR_ERROR_CODE);
      if (attr != NULL)
        code = (attr->value[2] & 7) * 100u + attr->value[3];
      /* The reason phrase is the server's text: not shown, the code says enough. */
      g_set_error (error, PM_STUN_ERROR, PM_STUN_ERROR_ERROR_RESPONSE,
                   "STUN server answered with error %u", code);
      return NULL;
    }

  attr = pm_stun_message_find (msg, PM_STUN_ATTR_XOR_MAPPED_ADDRESS);
  if (attr == NULL)
    attr = pm_stun_message_find (msg, PM_STUN_ATTR_MAPPED_ADDRESS);
  if (attr == NULL)
    {
      g_set_error_literal (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ADDRESS,
                           "STUN Binding response without a mapped address");
      return NULL;
    }
  return pm_stun_attribute_get_address (msg, attr, error);
}
