/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * STUN: the parser refuses every malformed message with its own error code and
 * leaves its output untouched; the builders round-trip; the RFC 5769 sample
 * messages parse and our XOR-MAPPED-ADDRESS encoding matches theirs byte for
 * byte; pm_stun_server_handle() answers, refuses and stays silent as
 * documented; the server answers on 127.0.0.1 through a GMainContext; and
 * Debian's RFC 3489 client (/usr/bin/stun, package stun-client) gets its
 * mapped address from it. Every wait is bounded; traffic stays on loopback.
 */
#define G_LOG_DOMAIN "pipermesh-test-stun"

#include <stdio.h>
#include <string.h>

#include "pm-stun-server.h"
#include "pm-stun.h"

/* How long any network wait may take before the test fails. */
#define WAIT_MS 5000
/* How long we listen to be sure no answer comes. */
#define SILENCE_MS 200
/* How long the external client may run. */
#define CLIENT_WAIT_MS 30000

/* --- RFC 5769 test vectors (§2.1, §2.2, §2.3) -------------------------------- */

/* clang-format off */
static const uint8_t rfc5769_request[] = {
  0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
  0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
  0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
  0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
  0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
  0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
  0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

static const uint8_t rfc5769_response_v4[] = {
  0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
  0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
  0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
  0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
  0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

static const uint8_t rfc5769_response_v6[] = {
  0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
  0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
  0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
  0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
  0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
  0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};
/* clang-format on */

/* Offsets of XOR-MAPPED-ADDRESS (header included) in the two responses. */
#define V4_XMA_OFFSET 36
#define V4_XMA_LEN    12
#define V6_XMA_OFFSET 36
#define V6_XMA_LEN    24

/* The ICE PRIORITY attribute in the sample request: comprehension-required
 * and unknown to a plain Binding responder. */
#define ATTR_ICE_PRIORITY 0x0024

/* --- Helpers ----------------------------------------------------------------- */

static GInetSocketAddress *
address (const char *ip,
         uint16_t    port)
{
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string (ip, port));
}

static void
assert_same_address (GInetSocketAddress *a,
                     GInetSocketAddress *b)
{
  g_autofree char *sa = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (a));
  g_autofree char *sb = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (b));

  g_assert_cmpstr (sa, ==, sb);
}

static void
put_be16 (uint8_t *p,
          uint16_t v)
{
  p[0] = (uint8_t) (v >> 8);
  p[1] = (uint8_t) v;
}

static void
put_be32 (uint8_t *p,
          uint32_t v)
{
  put_be16 (p, (uint16_t) (v >> 16));
  put_be16 (p + 2, (uint16_t) v);
}

static PmStunHeader
fixed_ids (gboolean rfc3489)
{
  PmStunHeader ids = { .method = PM_STUN_METHOD_BINDING,
                       .cookie = rfc3489 ? 0x01020304u : PM_STUN_MAGIC_COOKIE,
                       .rfc3489 = rfc3489 };

  for (unsigned i = 0; i < PM_STUN_TRANSACTION_ID_LEN; i++)
    ids.transaction_id[i] = (uint8_t) (0xa0 + i);
  return ids;
}

static void
parse_ok (const uint8_t   *data,
          size_t           len,
          PmStunParseFlags flags,
          PmStunMessage   *msg)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (pm_stun_parse (data, len, flags, msg, &error));
  g_assert_no_error (error);
  g_assert_true (msg->data == data);
  g_assert_cmpuint (msg->len, ==, len);
}

static void
assert_refused (const uint8_t   *data,
                size_t           len,
                PmStunParseFlags flags,
                PmStunError      code)
{
  g_autoptr (GError) error = NULL;
  PmStunMessage msg, untouched;

  memset (&msg, 0xa5, sizeof msg);
  untouched = msg;
  g_assert_false (pm_stun_parse (data, len, flags, &msg, &error));
  g_assert_error (error, PM_STUN_ERROR, (int) code);
  g_assert_nonnull (error->message);
  g_assert_cmpuint (strlen (error->message), >, 0);
  g_test_message ("refused as expected: %s", error->message);
  g_assert_cmpmem (&msg, sizeof msg, &untouched, sizeof untouched);
}

/* A valid request carrying SOFTWARE (9 bytes + 3 of padding) and FINGERPRINT:
 * 20 + 16 + 8 bytes, FINGERPRINT's header at 36. */
static size_t
valid_request (uint8_t *buf,
               size_t   cap)
{
  PmStunHeader ids = fixed_ids (FALSE);
  PmStunWriter w;
  size_t       len;

  pm_stun_writer_init (&w, buf, cap, PM_STUN_BINDING_REQUEST, &ids);
  pm_stun_writer_add (&w, PM_STUN_ATTR_SOFTWARE, "test-stun", 9);
  pm_stun_writer_add_fingerprint (&w);
  g_assert_true (pm_stun_writer_finish (&w, &len, NULL));
  g_assert_cmpuint (len, ==, 44);
  return len;
}

/* --- Parser ------------------------------------------------------------------ */

static void
test_parse_refuses (void)
{
  uint8_t buf[PM_STUN_MAX_MESSAGE_LEN + 64];
  uint8_t msg[64];
  size_t  len;

  len = valid_request (msg, sizeof msg);

  /* Empty and truncated header. */
  assert_refused (msg, 0, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_TRUNCATED);
  assert_refused (msg, 19, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_TRUNCATED);

  /* First two bits set: not STUN (a PiperMesh frame, say). */
  memcpy (buf, msg, len);
  buf[0] = 0x83;
  assert_refused (buf, len, PM_STUN_PARSE_ALLOW_RFC3489, PM_STUN_ERROR_NOT_STUN);

  /* Bad cookie: refused unless RFC 3489 is allowed (then the FINGERPRINT,
   * which covers the cookie, no longer matches). */
  memcpy (buf, msg, len);
  buf[4] ^= 1;
  assert_refused (buf, len, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_COOKIE);
  assert_refused (buf, len, PM_STUN_PARSE_ALLOW_RFC3489, PM_STUN_ERROR_BAD_FINGERPRINT);

  /* Length not a multiple of 4. */
  memcpy (buf, msg, len);
  put_be16 (buf + 2, (uint16_t) (len - 20 + 2));
  memset (buf + len, 0, 2);
  assert_refused (buf, len + 2, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_LENGTH);

  /* Length beyond the datagram, and bytes after the message. */
  memcpy (buf, msg, len);
  assert_refused (buf, len - 4, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_TRUNCATED);
  memset (buf + len, 0, 4);
  assert_refused (buf, len + 4, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_LENGTH);

  /* An attribute overrunning the message: in a message cut after SOFTWARE,
   * SOFTWARE claims 13 bytes (16 with padding) where 12 are left. */
  memcpy (buf, msg, len);
  put_be16 (buf + 2, 12);
  put_be16 (buf + 22, 13);
  assert_refused (buf, 32, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_ATTRIBUTE);
  /* An attribute without its padding. */
  memcpy (buf, msg, 20);
  put_be16 (buf + 2, 4);
  put_be16 (buf + 20, PM_STUN_ATTR_SOFTWARE);
  put_be16 (buf + 22, 1);
  assert_refused (buf, 24, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_ATTRIBUTE);

  /* Bad FINGERPRINT. */
  memcpy (buf, msg, len);
  buf[len - 1] ^= 0x01;
  assert_refused (buf, len, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_FINGERPRINT);
  /* A changed attribute also breaks it. */
  memcpy (buf, msg, len);
  buf[24] ^= 0x20;
  assert_refused (buf, len, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_FINGERPRINT);

  /* FINGERPRINT not last: another attribute after it. */
  memcpy (buf, msg, len);
  put_be16 (buf + 2, (uint16_t) (len - 20 + 4));
  put_be16 (buf + len, PM_STUN_ATTR_SOFTWARE);
  put_be16 (buf + len + 2, 0);
  assert_refused (buf, len + 4, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_FINGERPRINT_NOT_LAST);

  /* FINGERPRINT of the wrong size. */
  memcpy (buf, msg, len);
  put_be16 (buf + 38, 8);
  put_be16 (buf + 2, (uint16_t) (len - 20 + 4));
  memset (buf + len, 0, 4);
  assert_refused (buf, len + 4, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_ATTRIBUTE);

  /* MESSAGE-INTEGRITY of the wrong size. */
  memcpy (buf, msg, 20);
  put_be16 (buf + 2, 8);
  put_be16 (buf + 20, PM_STUN_ATTR_MESSAGE_INTEGRITY);
  put_be16 (buf + 22, 4);
  assert_refused (buf, 28, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_ATTRIBUTE);

  /* Oversized. */
  memset (buf, 0, sizeof buf);
  memcpy (buf, msg, 20);
  put_be16 (buf + 2, PM_STUN_MAX_MESSAGE_LEN + 4 - 20);
  for (size_t off = 20; off < PM_STUN_MAX_MESSAGE_LEN + 4; off += 4)
    put_be16 (buf + off, PM_STUN_ATTR_SOFTWARE);
  assert_refused (buf, PM_STUN_MAX_MESSAGE_LEN + 4, PM_STUN_PARSE_DEFAULT,
                  PM_STUN_ERROR_TOO_LARGE);

  /* Too many attributes (each empty SOFTWARE is 4 bytes). */
  put_be16 (buf + 2, 4 * (PM_STUN_MAX_ATTRIBUTES + 1));
  assert_refused (buf, 20 + 4 * (PM_STUN_MAX_ATTRIBUTES + 1), PM_STUN_PARSE_DEFAULT,
                  PM_STUN_ERROR_TOO_MANY_ATTRIBUTES);
  /* ... while exactly the limit is fine. */
  {
    PmStunMessage m;

    put_be16 (buf + 2, 4 * PM_STUN_MAX_ATTRIBUTES);
    parse_ok (buf, 20 + 4 * PM_STUN_MAX_ATTRIBUTES, PM_STUN_PARSE_DEFAULT, &m);
    g_assert_cmpuint (m.n_attributes, ==, PM_STUN_MAX_ATTRIBUTES);
  }

  /* And the untouched message parses. */
  {
    PmStunMessage m;

    parse_ok (msg, len, PM_STUN_PARSE_DEFAULT, &m);
    g_assert_true (m.has_fingerprint);
    g_assert_cmpuint (m.header.type, ==, PM_STUN_BINDING_REQUEST);
  }
}

static void
test_type (void)
{
  g_assert_cmpuint (pm_stun_type (PM_STUN_METHOD_BINDING, PM_STUN_CLASS_REQUEST), ==,
                    PM_STUN_BINDING_REQUEST);
  g_assert_cmpuint (pm_stun_type (PM_STUN_METHOD_BINDING, PM_STUN_CLASS_SUCCESS), ==,
                    PM_STUN_BINDING_SUCCESS);
  g_assert_cmpuint (pm_stun_type (PM_STUN_METHOD_BINDING, PM_STUN_CLASS_ERROR), ==,
                    PM_STUN_BINDING_ERROR);
  g_assert_cmpuint (pm_stun_type (PM_STUN_METHOD_BINDING, PM_STUN_CLASS_INDICATION), ==, 0x0011);
  /* Every method and class survives the round trip through a header. */
  for (unsigned method = 0; method < 0x1000; method += 0x55)
    for (int klass = 0; klass < 4; klass++)
      {
        PmStunHeader ids = fixed_ids (FALSE), h;
        PmStunWriter w;
        uint8_t      buf[PM_STUN_HEADER_LEN];
        size_t       len;

        pm_stun_writer_init (&w, buf, sizeof buf, pm_stun_type ((uint16_t) method, klass), &ids);
        g_assert_true (pm_stun_writer_finish (&w, &len, NULL));
        g_assert_true (pm_stun_parse_header (buf, len, PM_STUN_PARSE_DEFAULT, &h, NULL));
        g_assert_cmpuint (h.method, ==, method);
        g_assert_cmpint (h.klass, ==, klass);
      }
}

static void
test_is_stun (void)
{
  uint8_t msg[64];
  size_t  len = valid_request (msg, sizeof msg);

  g_assert_true (pm_stun_is_stun (msg, len));
  g_assert_false (pm_stun_is_stun (msg, 19));
  g_assert_false (pm_stun_is_stun (NULL, 0));
  msg[0] |= 0x80;
  g_assert_false (pm_stun_is_stun (msg, len));
  msg[0] &= 0x3f;
  msg[5] ^= 0xff;
  g_assert_false (pm_stun_is_stun (msg, len));
}

/* --- RFC 5769 ---------------------------------------------------------------- */

static void
test_rfc5769_request (void)
{
  PmStunMessage          msg;
  const PmStunAttribute *attr;

  parse_ok (rfc5769_request, sizeof rfc5769_request, PM_STUN_PARSE_DEFAULT, &msg);
  g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_REQUEST);
  g_assert_cmpuint (msg.header.method, ==, PM_STUN_METHOD_BINDING);
  g_assert_cmpint (msg.header.klass, ==, PM_STUN_CLASS_REQUEST);
  g_assert_false (msg.header.rfc3489);
  g_assert_cmpmem (msg.header.transaction_id, 12, rfc5769_request + 8, 12);
  g_assert_cmpuint (msg.n_attributes, ==, 6);
  g_assert_true (msg.has_fingerprint);
  /* Parsed as an attribute, never verified. */
  g_assert_true (msg.has_message_integrity);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_MESSAGE_INTEGRITY);
  g_assert_nonnull (attr);
  g_assert_cmpuint (attr->length, ==, 20);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_SOFTWARE);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "STUN test client", 16);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_USERNAME);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "evtj:h6vY", 9);
  /* ICE's PRIORITY is comprehension-required and not ours; ICE-CONTROLLED
   * (0x8029) is optional and ignored. */
  g_assert_cmpuint (msg.n_unknown, ==, 1);
  g_assert_cmpuint (msg.unknown[0], ==, ATTR_ICE_PRIORITY);
}

static void
check_rfc5769_response (const uint8_t *data,
                        size_t         len,
                        const char    *ip,
                        size_t         xma_offset,
                        size_t         xma_len)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) mapped = NULL;
  g_autoptr (GInetSocketAddress) expected = address (ip, 32853);
  PmStunMessage          msg;
  PmStunHeader           request;
  uint8_t                wrong_id[PM_STUN_TRANSACTION_ID_LEN];
  uint8_t                out[256];
  size_t                 out_len;
  PmStunMessage          built;
  const PmStunAttribute *attr;

  parse_ok (data, len, PM_STUN_PARSE_DEFAULT, &msg);
  g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_SUCCESS);
  g_assert_cmpint (msg.header.klass, ==, PM_STUN_CLASS_SUCCESS);
  g_assert_cmpuint (msg.n_attributes, ==, 4);
  g_assert_true (msg.has_fingerprint);
  g_assert_true (msg.has_message_integrity);
  g_assert_cmpuint (msg.n_unknown, ==, 0);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_SOFTWARE);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "test vector", 11);

  /* The client helper finds the address. */
  mapped = pm_stun_parse_binding_response (data, len, data + 8, &error);
  g_assert_no_error (error);
  assert_same_address (mapped, expected);

  /* ... only for our transaction. */
  memcpy (wrong_id, data + 8, sizeof wrong_id);
  wrong_id[11] ^= 1;
  g_assert_null (pm_stun_parse_binding_response (data, len, wrong_id, &error));
  g_assert_error (error, PM_STUN_ERROR, PM_STUN_ERROR_UNEXPECTED_MESSAGE);
  g_clear_error (&error);

  /* Known answer: our encoding of the same address in the same transaction
   * is byte for byte the sample's XOR-MAPPED-ADDRESS, our first attribute. */
  parse_ok (rfc5769_request, sizeof rfc5769_request, PM_STUN_PARSE_DEFAULT, &built);
  request = built.header;
  g_assert_true (pm_stun_build_binding_success (&request, expected, NULL, NULL, out, sizeof out,
                                                &out_len, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out + PM_STUN_HEADER_LEN, xma_len, data + xma_offset, xma_len);
  g_assert_cmpmem (out + 4, 16, data + 4, 16);
  parse_ok (out, out_len, PM_STUN_PARSE_DEFAULT, &built);
  g_assert_true (built.has_fingerprint);
}

static void
test_rfc5769_response_ipv4 (void)
{
  check_rfc5769_response (rfc5769_response_v4, sizeof rfc5769_response_v4, "192.0.2.1",
                          V4_XMA_OFFSET, V4_XMA_LEN);
}

static void
test_rfc5769_response_ipv6 (void)
{
  check_rfc5769_response (rfc5769_response_v6, sizeof rfc5769_response_v6,
                          "2001:db8:1234:5678:11:2233:4455:6677", V6_XMA_OFFSET, V6_XMA_LEN);
}

/* --- Builders ---------------------------------------------------------------- */

static void
test_build_request (void)
{
  for (int fp = 0; fp <= 1; fp++)
    {
      g_autoptr (GError) error = NULL;
      uint8_t       buf[64];
      uint8_t       id[PM_STUN_TRANSACTION_ID_LEN], id2[PM_STUN_TRANSACTION_ID_LEN];
      size_t        len;
      PmStunMessage msg;

      g_assert_true (pm_stun_build_binding_request (buf, sizeof buf, fp, id, &len, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (len, ==, fp ? 28 : 20);
      g_assert_true (pm_stun_is_stun (buf, len));
      parse_ok (buf, len, PM_STUN_PARSE_DEFAULT, &msg);
      g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_REQUEST);
      g_assert_cmpmem (msg.header.transaction_id, 12, id, 12);
      g_assert_cmpint (msg.has_fingerprint, ==, fp);
      g_assert_cmpuint (msg.n_attributes, ==, (unsigned) fp);

      /* Fresh ids each time. */
      g_assert_true (pm_stun_build_binding_request (buf, sizeof buf, fp, id2, &len, &error));
      g_assert_cmpint (memcmp (id, id2, sizeof id), !=, 0);

      /* Too small a buffer. */
      g_assert_false (pm_stun_build_binding_request (buf, fp ? 27 : 19, fp, id, &len, &error));
      g_assert_error (error, PM_STUN_ERROR, PM_STUN_ERROR_NO_SPACE);
    }
}

static void
check_success_roundtrip (const char *mapped_ip,
                         uint16_t    mapped_port,
                         const char *other_ip)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) mapped = address (mapped_ip, mapped_port);
  g_autoptr (GInetSocketAddress) other = address (other_ip, 3479);
  g_autoptr (GInetSocketAddress) got = NULL;
  g_autoptr (GInetSocketAddress) got_other = NULL;
  PmStunHeader           ids = fixed_ids (FALSE);
  PmStunMessage          msg;
  uint8_t                buf[256];
  size_t                 len;
  const PmStunAttribute *attr;

  g_assert_true (pm_stun_build_binding_success (&ids, mapped, other, "PiperMesh", buf, sizeof buf,
                                                &len, &error));
  g_assert_no_error (error);
  parse_ok (buf, len, PM_STUN_PARSE_DEFAULT, &msg);
  g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_SUCCESS);
  g_assert_true (msg.has_fingerprint);
  g_assert_null (pm_stun_message_find (&msg, PM_STUN_ATTR_MAPPED_ADDRESS));
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_SOFTWARE);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "PiperMesh", 9);

  got = pm_stun_parse_binding_response (buf, len, ids.transaction_id, &error);
  g_assert_no_error (error);
  assert_same_address (got, mapped);

  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_OTHER_ADDRESS);
  g_assert_nonnull (attr);
  got_other = pm_stun_attribute_get_address (&msg, attr, &error);
  g_assert_no_error (error);
  assert_same_address (got_other, other);

  /* The address really is XORed: the plain bytes are not in the message. */
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_XOR_MAPPED_ADDRESS);
  g_assert_nonnull (attr);
  g_assert_cmpint (memcmp (attr->value + 4,
                           g_inet_address_to_bytes (g_inet_socket_address_get_address (mapped)),
                           attr->length - 4),
                   !=, 0);
}

static void
test_build_success (void)
{
  check_success_roundtrip ("203.0.113.7", 54321, "198.51.100.1");
  check_success_roundtrip ("2001:db8::1", 1, "2001:db8::2");
  check_success_roundtrip ("0.0.0.0", 65535, "::1");
}

/* An RFC 3489 request is answered with MAPPED-ADDRESS, and nothing RFC 3489
 * does not know. */
static void
test_build_success_rfc3489 (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) mapped = address ("127.0.0.1", 40000);
  g_autoptr (GInetSocketAddress) other = address ("127.0.0.1", 40001);
  g_autoptr (GInetSocketAddress) got = NULL;
  PmStunHeader           ids = fixed_ids (TRUE);
  PmStunMessage          msg;
  uint8_t                buf[256];
  size_t                 len;
  const PmStunAttribute *attr;

  g_assert_true (pm_stun_build_binding_success (&ids, mapped, other, "PiperMesh", buf, sizeof buf,
                                                &len, &error));
  g_assert_no_error (error);
  g_assert_false (pm_stun_is_stun (buf, len));
  assert_refused (buf, len, PM_STUN_PARSE_DEFAULT, PM_STUN_ERROR_BAD_COOKIE);
  parse_ok (buf, len, PM_STUN_PARSE_ALLOW_RFC3489, &msg);
  g_assert_true (msg.header.rfc3489);
  g_assert_cmpuint (msg.header.cookie, ==, ids.cookie);
  g_assert_cmpuint (msg.n_attributes, ==, 2);
  g_assert_nonnull (pm_stun_message_find (&msg, PM_STUN_ATTR_MAPPED_ADDRESS));
  g_assert_nonnull (pm_stun_message_find (&msg, PM_STUN_ATTR_CHANGED_ADDRESS));
  g_assert_false (msg.has_fingerprint);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_MAPPED_ADDRESS);
  got = pm_stun_attribute_get_address (&msg, attr, &error);
  g_assert_no_error (error);
  assert_same_address (got, mapped);
}

static void
test_build_error (void)
{
  static const uint16_t unknown[] = { 0x0024, 0x7fff };
  g_autoptr (GError) error = NULL;
  PmStunHeader           ids = fixed_ids (FALSE);
  PmStunMessage          msg;
  const PmStunAttribute *attr;
  uint8_t                buf[256];
  size_t                 len;

  g_assert_true (pm_stun_build_binding_error (&ids, 420, "Unknown Attribute", unknown, 2,
                                              "PiperMesh", buf, sizeof buf, &len, &error));
  g_assert_no_error (error);
  parse_ok (buf, len, PM_STUN_PARSE_DEFAULT, &msg);
  g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_ERROR);
  g_assert_cmpint (msg.header.klass, ==, PM_STUN_CLASS_ERROR);
  g_assert_true (msg.has_fingerprint);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_ERROR_CODE);
  g_assert_nonnull (attr);
  g_assert_cmpuint (attr->value[2], ==, 4);
  g_assert_cmpuint (attr->value[3], ==, 20);
  g_assert_cmpmem (attr->value + 4, attr->length - 4, "Unknown Attribute", 17);
  attr = pm_stun_message_find (&msg, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "\x00\x24\x7f\xff", 4);

  /* The client helper reports it as an error, with the code. */
  g_assert_null (pm_stun_parse_binding_response (buf, len, ids.transaction_id, &error));
  g_assert_error (error, PM_STUN_ERROR, PM_STUN_ERROR_ERROR_RESPONSE);
  g_assert_nonnull (strstr (error->message, "420"));
  g_clear_error (&error);

  /* A request is not a response. */
  len = valid_request (buf, sizeof buf);
  g_assert_null (pm_stun_parse_binding_response (buf, len, ids.transaction_id, &error));
  g_assert_error (error, PM_STUN_ERROR, PM_STUN_ERROR_UNEXPECTED_MESSAGE);
}

/* --- pm_stun_server_handle() ------------------------------------------------- */

static PmStunServerOutcome
handle (const uint8_t *req,
        size_t         len,
        PmStunMessage *answer)
{
  g_autoptr (GInetSocketAddress) source = address ("192.0.2.10", 5000);
  g_autoptr (GInetSocketAddress) other = address ("192.0.2.1", 3479);
  uint8_t             out[PM_STUN_MAX_MESSAGE_LEN];
  PmStunServerOutcome outcome;
  size_t              out_len = 12345;
  static uint8_t      copy[PM_STUN_MAX_MESSAGE_LEN];

  outcome = pm_stun_server_handle (req, len, source, other, out, sizeof out, &out_len);
  if (out_len > 0)
    {
      memcpy (copy, out, out_len);
      parse_ok (copy, out_len, PM_STUN_PARSE_ALLOW_RFC3489, answer);
      /* Same transaction, and the cookie field echoed. */
      g_assert_cmpmem (copy + 4, 16, req + 4, 16);
    }
  else
    memset (answer, 0, sizeof *answer);
  return outcome;
}

static unsigned
error_code (const PmStunMessage *msg)
{
  const PmStunAttribute *attr = pm_stun_message_find (msg, PM_STUN_ATTR_ERROR_CODE);

  g_assert_nonnull (attr);
  return attr->value[2] * 100u + attr->value[3];
}

/* A Binding request with one extra attribute of @type and 4-byte @value. */
static size_t
request_with (uint8_t *buf,
              gboolean rfc3489,
              uint16_t type,
              uint32_t value)
{
  PmStunHeader ids = fixed_ids (rfc3489);
  PmStunWriter w;
  uint8_t      v[4];
  size_t       len;

  put_be32 (v, value);
  pm_stun_writer_init (&w, buf, PM_STUN_MAX_MESSAGE_LEN, PM_STUN_BINDING_REQUEST, &ids);
  pm_stun_writer_add (&w, type, v, sizeof v);
  g_assert_true (pm_stun_writer_finish (&w, &len, NULL));
  return len;
}

static void
test_handle (void)
{
  uint8_t                buf[PM_STUN_MAX_MESSAGE_LEN];
  PmStunMessage          answer;
  const PmStunAttribute *attr;
  size_t                 len;

  /* A plain request: XOR-MAPPED-ADDRESS of the source, OTHER-ADDRESS, SOFTWARE,
   * FINGERPRINT. */
  len = valid_request (buf, sizeof buf);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED);
  g_assert_cmpuint (answer.header.type, ==, PM_STUN_BINDING_SUCCESS);
  g_assert_nonnull (pm_stun_message_find (&answer, PM_STUN_ATTR_XOR_MAPPED_ADDRESS));
  g_assert_nonnull (pm_stun_message_find (&answer, PM_STUN_ATTR_OTHER_ADDRESS));
  g_assert_nonnull (pm_stun_message_find (&answer, PM_STUN_ATTR_SOFTWARE));
  g_assert_true (answer.has_fingerprint);

  /* The RFC 5769 request carries ICE PRIORITY: 420 naming it. */
  g_assert_cmpint (handle (rfc5769_request, sizeof rfc5769_request, &answer), ==,
                   PM_STUN_SERVER_ANSWERED_420);
  g_assert_cmpuint (answer.header.type, ==, PM_STUN_BINDING_ERROR);
  g_assert_cmpuint (error_code (&answer), ==, 420);
  attr = pm_stun_message_find (&answer, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "\x00\x24", 2);

  /* RESPONSE-ADDRESS is not honoured (reflection): 420. */
  len = request_with (buf, FALSE, PM_STUN_ATTR_RESPONSE_ADDRESS, 0);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED_420);

  /* An unknown optional attribute is ignored. */
  len = request_with (buf, FALSE, 0xC001, 0);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED);

  /* MESSAGE-INTEGRITY is understood and ignored (no credentials here); an
   * unknown attribute after it is ignored too (RFC 8489 §14.5). */
  {
    PmStunHeader ids = fixed_ids (FALSE);
    PmStunWriter w;
    uint8_t      mi[20] = { 0 };

    pm_stun_writer_init (&w, buf, sizeof buf, PM_STUN_BINDING_REQUEST, &ids);
    pm_stun_writer_add (&w, PM_STUN_ATTR_USERNAME, "user", 4);
    pm_stun_writer_add (&w, PM_STUN_ATTR_MESSAGE_INTEGRITY, mi, sizeof mi);
    pm_stun_writer_add (&w, 0x7001, mi, 4);
    pm_stun_writer_add_fingerprint (&w);
    g_assert_true (pm_stun_writer_finish (&w, &len, NULL));
    g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED);
    g_assert_false (answer.has_message_integrity);
  }

  /* CHANGE-REQUEST 0 is accepted; asking for another address gets 420
   * (RFC 8489) or silence (RFC 3489). */
  len = request_with (buf, FALSE, PM_STUN_ATTR_CHANGE_REQUEST, 0);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED);
  len = request_with (buf, FALSE, PM_STUN_ATTR_CHANGE_REQUEST, PM_STUN_CHANGE_PORT);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED_420);
  attr = pm_stun_message_find (&answer, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES);
  g_assert_nonnull (attr);
  g_assert_cmpmem (attr->value, attr->length, "\x00\x03", 2);
  len = request_with (buf, TRUE, PM_STUN_ATTR_CHANGE_REQUEST, 0);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED);
  g_assert_true (answer.header.rfc3489);
  g_assert_nonnull (pm_stun_message_find (&answer, PM_STUN_ATTR_MAPPED_ADDRESS));
  g_assert_nonnull (pm_stun_message_find (&answer, PM_STUN_ATTR_CHANGED_ADDRESS));
  g_assert_null (pm_stun_message_find (&answer, PM_STUN_ATTR_XOR_MAPPED_ADDRESS));
  len = request_with (buf, TRUE, PM_STUN_ATTR_CHANGE_REQUEST, PM_STUN_CHANGE_IP);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_DROPPED_CHANGE_REQUEST);

  /* A valid header with a bad attribute: 400. */
  len = request_with (buf, FALSE, PM_STUN_ATTR_CHANGE_REQUEST, 0);
  put_be16 (buf + 22, 8);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED_400);
  g_assert_cmpuint (error_code (&answer), ==, 400);

  /* Another method (Allocate, 0x003): 400. */
  len = request_with (buf, FALSE, PM_STUN_ATTR_CHANGE_REQUEST, 0);
  put_be16 (buf, 0x0003);
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_ANSWERED_400);
  g_assert_cmpuint (answer.header.method, ==, 0x003);
  g_assert_cmpint (answer.header.klass, ==, PM_STUN_CLASS_ERROR);

  /* Silence: garbage, a truncated request, answers and indications, a bad
   * FINGERPRINT. */
  g_assert_cmpint (handle ((const uint8_t *) "hello, world", 12, &answer), ==,
                   PM_STUN_SERVER_DROPPED_NOT_STUN);
  g_assert_cmpint (handle (buf, 0, &answer), ==, PM_STUN_SERVER_DROPPED_NOT_STUN);
  len = valid_request (buf, sizeof buf);
  g_assert_cmpint (handle (buf, len - 1, &answer), ==, PM_STUN_SERVER_DROPPED_NOT_STUN);
  g_assert_cmpint (handle (rfc5769_response_v4, sizeof rfc5769_response_v4, &answer), ==,
                   PM_STUN_SERVER_DROPPED_NOT_REQUEST);
  put_be16 (buf, 0x0011); /* Binding indication */
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_DROPPED_NOT_REQUEST);
  len = valid_request (buf, sizeof buf);
  buf[len - 1] ^= 0xff;
  g_assert_cmpint (handle (buf, len, &answer), ==, PM_STUN_SERVER_DROPPED_FINGERPRINT);

  for (int o = 0; o < PM_STUN_SERVER_N_OUTCOMES; o++)
    g_assert_cmpstr (pm_stun_server_outcome_name ((PmStunServerOutcome) o), !=, "unknown");
}

/* An IPv4 peer on a dual-stack socket is answered with its IPv4 address. */
static void
test_handle_v4_mapped (void)
{
  g_autoptr (GInetSocketAddress) source = address ("::ffff:192.0.2.10", 5000);
  g_autoptr (GInetSocketAddress) expected = address ("192.0.2.10", 5000);
  g_autoptr (GInetSocketAddress) got = NULL;
  g_autoptr (GError) error = NULL;
  uint8_t buf[64], out[PM_STUN_MAX_MESSAGE_LEN];
  uint8_t id[PM_STUN_TRANSACTION_ID_LEN];
  size_t  len, out_len;

  g_assert_true (pm_stun_build_binding_request (buf, sizeof buf, TRUE, id, &len, NULL));
  g_assert_cmpint (pm_stun_server_handle (buf, len, source, NULL, out, sizeof out, &out_len), ==,
                   PM_STUN_SERVER_ANSWERED);
  got = pm_stun_parse_binding_response (out, out_len, id, &error);
  g_assert_no_error (error);
  assert_same_address (got, expected);
}

/* --- The server on 127.0.0.1 ------------------------------------------------- */

typedef struct {
  GMainContext *context;
  PmStunServer *server;
  GSocket      *client;
  GSource      *client_source;
  GBytes       *received; /* the last datagram the client got */
} Fixture;

static gboolean
on_client_readable (GSocket     *socket,
                    GIOCondition condition,
                    gpointer     user_data)
{
  Fixture *f = user_data;
  uint8_t  buf[2048];
  gssize   got = g_socket_receive (socket, (char *) buf, sizeof buf, NULL, NULL);

  if (got >= 0)
    {
      g_clear_pointer (&f->received, g_bytes_unref);
      f->received = g_bytes_new (buf, (size_t) got);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_timeout (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the context until @done (checked with @f) or @ms pass; returns @done's
 * verdict. */
static gboolean
run_until (Fixture *f,
           gboolean (*done) (Fixture *f, gconstpointer data),
           gconstpointer data,
           unsigned      ms)
{
  gboolean expired = FALSE;
  GSource *timeout = g_timeout_source_new (ms);

  g_source_set_callback (timeout, on_timeout, &expired, NULL);
  g_source_attach (timeout, f->context);
  while (!done (f, data) && !expired)
    g_main_context_iteration (f->context, TRUE);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  return done (f, data);
}

static gboolean
have_answer (Fixture      *f,
             gconstpointer data)
{
  return f->received != NULL;
}

static gboolean
server_received (Fixture      *f,
                 gconstpointer data)
{
  return pm_stun_server_get_received (f->server) >= GPOINTER_TO_UINT (data);
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) primary = address ("127.0.0.1", 0);
  g_autoptr (GInetSocketAddress) secondary = address ("127.0.0.1", 0);
  g_autoptr (GInetSocketAddress) local = address ("127.0.0.1", 0);

  f->context = g_main_context_new ();
  g_main_context_push_thread_default (f->context);

  f->server = pm_stun_server_new ();
  g_assert_true (pm_stun_server_start (f->server, primary, secondary, &error));
  g_assert_no_error (error);
  g_assert_true (pm_stun_server_is_running (f->server));
  g_assert_cmpuint (pm_stun_server_get_port (f->server), >, 0);

  f->client = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP,
                            &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (f->client, G_SOCKET_ADDRESS (local), FALSE, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (f->client, FALSE);
  f->client_source = g_socket_create_source (f->client, G_IO_IN, NULL);
  g_source_set_callback (f->client_source, G_SOURCE_FUNC (on_client_readable), f, NULL);
  g_source_attach (f->client_source, f->context);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_source_destroy (f->client_source);
  g_clear_pointer (&f->client_source, g_source_unref);
  g_socket_close (f->client, NULL);
  g_clear_object (&f->client);
  pm_stun_server_stop (f->server);
  g_assert_false (pm_stun_server_is_running (f->server));
  g_clear_object (&f->server);
  g_clear_pointer (&f->received, g_bytes_unref);
  /* Nothing of ours is left to dispatch. */
  while (g_main_context_iteration (f->context, FALSE))
    ;
  g_main_context_pop_thread_default (f->context);
  g_clear_pointer (&f->context, g_main_context_unref);
}

static void
client_send (Fixture       *f,
             unsigned       index,
             const uint8_t *data,
             size_t         len)
{
  g_autoptr (GError) error = NULL;

  GSocketAddress *to = G_SOCKET_ADDRESS (pm_stun_server_get_address (f->server, index));

  g_clear_pointer (&f->received, g_bytes_unref);
  g_assert_cmpint (g_socket_send_to (f->client, to, (const char *) data, len, NULL, &error), ==,
                   (gssize) len);
  g_assert_no_error (error);
}

static void
test_server_answers (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (f->client, NULL);
  uint8_t buf[64];
  uint8_t id[PM_STUN_TRANSACTION_ID_LEN];
  size_t  len;

  for (unsigned index = 0; index < 2; index++)
    {
      g_autoptr (GInetSocketAddress) mapped = NULL;
      g_autoptr (GInetSocketAddress) other = NULL;
      PmStunMessage  msg;
      const uint8_t *answer;
      size_t         answer_len;

      g_assert_true (pm_stun_build_binding_request (buf, sizeof buf, TRUE, id, &len, NULL));
      client_send (f, index, buf, len);
      g_assert_true (run_until (f, have_answer, NULL, WAIT_MS));

      answer = g_bytes_get_data (f->received, &answer_len);
      mapped = pm_stun_parse_binding_response (answer, answer_len, id, &error);
      g_assert_no_error (error);
      assert_same_address (mapped, G_INET_SOCKET_ADDRESS (local));

      /* OTHER-ADDRESS names the other socket. */
      parse_ok (answer, answer_len, PM_STUN_PARSE_DEFAULT, &msg);
      other = pm_stun_attribute_get_address (
        &msg, pm_stun_message_find (&msg, PM_STUN_ATTR_OTHER_ADDRESS), &error);
      g_assert_no_error (error);
      assert_same_address (other, pm_stun_server_get_address (f->server, 1 - index));
    }
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_ANSWERED), ==, 2);
  g_assert_cmpuint (pm_stun_server_get_received (f->server), ==, 2);
  g_assert_cmpuint (pm_stun_server_get_send_failures (f->server), ==, 0);
}

static void
test_server_unknown_attribute (Fixture      *f,
                               gconstpointer data)
{
  uint8_t        buf[PM_STUN_MAX_MESSAGE_LEN];
  PmStunMessage  msg;
  const uint8_t *answer;
  size_t         len, answer_len;

  len = request_with (buf, FALSE, 0x7ABC, 0);
  client_send (f, 0, buf, len);
  g_assert_true (run_until (f, have_answer, NULL, WAIT_MS));
  answer = g_bytes_get_data (f->received, &answer_len);
  parse_ok (answer, answer_len, PM_STUN_PARSE_DEFAULT, &msg);
  g_assert_cmpuint (msg.header.type, ==, PM_STUN_BINDING_ERROR);
  g_assert_cmpuint (error_code (&msg), ==, 420);
  g_assert_cmpmem (pm_stun_message_find (&msg, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES)->value, 2,
                   "\x7a\xbc", 2);
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_ANSWERED_420), ==, 1);
}

static void
test_server_silent (Fixture      *f,
                    gconstpointer data)
{
  uint8_t big[PM_STUN_MAX_MESSAGE_LEN + 100] = { 0 };
  uint8_t buf[64];
  size_t  len;

  /* Garbage, a PiperMesh-looking frame, an oversized STUN-looking datagram
   * and a response: the server reads each and answers none. */
  client_send (f, 0, (const uint8_t *) "not stun at all, really", 23);
  client_send (f, 0, (const uint8_t *) "\x83\x00\x00\x00", 4);
  put_be16 (big + 2, sizeof big - 20);
  put_be32 (big + 4, PM_STUN_MAGIC_COOKIE);
  client_send (f, 0, big, sizeof big);
  client_send (f, 0, rfc5769_response_v4, sizeof rfc5769_response_v4);
  g_assert_true (run_until (f, server_received, GUINT_TO_POINTER (4), WAIT_MS));
  g_assert_false (run_until (f, have_answer, NULL, SILENCE_MS));
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_DROPPED_NOT_STUN), ==, 3);
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_DROPPED_NOT_REQUEST), ==,
                    1);

  /* ... and still answers a real request afterwards. */
  g_assert_true (pm_stun_build_binding_request (buf, sizeof buf, FALSE, (uint8_t[12]){ 0 }, &len,
                                                NULL));
  client_send (f, 0, buf, len);
  g_assert_true (run_until (f, have_answer, NULL, WAIT_MS));

  /* Once stopped, it answers nothing; its port is released. */
  pm_stun_server_stop (f->server);
  g_assert_cmpuint (pm_stun_server_get_port (f->server), ==, 0);
  g_assert_null (pm_stun_server_get_address (f->server, 0));
}

static void
test_server_bind_errors (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStunServer) a = pm_stun_server_new ();
  g_autoptr (PmStunServer) b = pm_stun_server_new ();
  g_autoptr (GInetSocketAddress) any = address ("127.0.0.1", 0);
  GInetSocketAddress *taken;

  g_assert_true (pm_stun_server_start (a, any, NULL, &error));
  g_assert_no_error (error);
  g_assert_null (pm_stun_server_get_address (a, 1));
  g_assert_false (pm_stun_server_start (a, any, NULL, &error));
  g_assert_error (error, PM_STUN_SERVER_ERROR, PM_STUN_SERVER_ERROR_RUNNING);
  g_clear_error (&error);

  /* The secondary port is taken: the primary is not left open either. */
  taken = pm_stun_server_get_address (a, 0);
  g_assert_false (pm_stun_server_start (b, any, taken, &error));
  g_assert_error (error, PM_STUN_SERVER_ERROR, PM_STUN_SERVER_ERROR_BIND);
  g_test_message ("%s", error->message);
  g_assert_false (pm_stun_server_is_running (b));
  g_assert_null (pm_stun_server_get_address (b, 0));
}

/* --- Debian's stun client ---------------------------------------------------- */

#define STUN_CLIENT "/usr/bin/stun"

typedef struct {
  gboolean done;
  char    *output;
  GError  *error;
} ClientRun;

static void
on_communicated (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  ClientRun *run = user_data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &run->output, NULL,
                                        &run->error);
  run->done = TRUE;
}

static gboolean
client_done (Fixture      *f,
             gconstpointer data)
{
  return ((const ClientRun *) data)->done;
}

/* Runs `stun ARGS...` against the server; returns its merged output. */
static char *
run_stun_client (Fixture    *f,
                 const char *test_number)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) process = NULL;
  g_autofree char *server = g_strdup_printf ("127.0.0.1:%u", pm_stun_server_get_port (f->server));
  ClientRun        run = { 0 };

  if (test_number != NULL)
    process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE,
                                &error, STUN_CLIENT, server, test_number, "-v", NULL);
  else
    process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE,
                                &error, STUN_CLIENT, server, "-v", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, on_communicated, &run);
  if (!run_until (f, client_done, &run, CLIENT_WAIT_MS))
    {
      g_subprocess_force_exit (process);
      run_until (f, client_done, &run, WAIT_MS);
      g_error ("%s did not finish within %d ms", STUN_CLIENT, CLIENT_WAIT_MS);
    }
  g_assert_no_error (run.error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_test_message ("stun %s output:\n%s", test_number ? test_number : "", run.output);
  return run.output;
}

static void
test_debian_stun_client (Fixture      *f,
                         gconstpointer data)
{
  g_autofree char    *output = NULL;
  g_autofree char    *expected = NULL;
  GInetSocketAddress *secondary;

  if (!g_file_test (STUN_CLIENT, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip (STUN_CLIENT " is missing (Debian package stun-client): cannot check the "
                               "server against a real STUN client");
      return;
    }

  /* Test 1 of RFC 3489: one Binding request, the mapped address printed. */
  output = run_stun_client (f, "1");
  {
    const char      *opened = strstr (output, "Opened port ");
    unsigned         client_port = 0;
    g_autofree char *mapped = NULL;

    /* The mapped address is the client's own socket. */
    g_assert_nonnull (opened);
    g_assert_cmpint (sscanf (opened, "Opened port %u", &client_port), ==, 1);
    g_assert_cmpuint (client_port, >, 0);
    mapped = g_strdup_printf ("mappedAddr=127.0.0.1:%u\n", client_port);
    g_assert_nonnull (strstr (output, mapped));
  }
  secondary = pm_stun_server_get_address (f->server, 1);
  expected = g_strdup_printf ("changedAddr=127.0.0.1:%u",
                              g_inet_socket_address_get_port (secondary));
  g_assert_nonnull (strstr (output, expected));
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_ANSWERED), >=, 1);
  g_clear_pointer (&output, g_free);

  /* The full NAT-type run: Binding requests to both addresses are answered,
   * the CHANGE-REQUESTs we cannot honour go unanswered, and the client
   * reaches a verdict instead of failing. */
  output = run_stun_client (f, NULL);
  g_assert_nonnull (strstr (output, "Primary:"));
  g_assert_null (strstr (output, "Primary: Open"));
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_DROPPED_CHANGE_REQUEST),
                    >=, 1);
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_ANSWERED_400), ==, 0);
  g_assert_cmpuint (pm_stun_server_get_count (f->server, PM_STUN_SERVER_ANSWERED_420), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/stun/parse/refuses", test_parse_refuses);
  g_test_add_func ("/stun/parse/is-stun", test_is_stun);
  g_test_add_func ("/stun/parse/type", test_type);
  g_test_add_func ("/stun/rfc5769/request", test_rfc5769_request);
  g_test_add_func ("/stun/rfc5769/response-ipv4", test_rfc5769_response_ipv4);
  g_test_add_func ("/stun/rfc5769/response-ipv6", test_rfc5769_response_ipv6);
  g_test_add_func ("/stun/build/request", test_build_request);
  g_test_add_func ("/stun/build/success", test_build_success);
  g_test_add_func ("/stun/build/success-rfc3489", test_build_success_rfc3489);
  g_test_add_func ("/stun/build/error", test_build_error);
  g_test_add_func ("/stun/handle/outcomes", test_handle);
  g_test_add_func ("/stun/handle/v4-mapped", test_handle_v4_mapped);
  g_test_add_func ("/stun/server/bind-errors", test_server_bind_errors);
  g_test_add ("/stun/server/answers", Fixture, NULL, fixture_setup, test_server_answers,
              fixture_teardown);
  g_test_add ("/stun/server/unknown-attribute", Fixture, NULL, fixture_setup,
              test_server_unknown_attribute, fixture_teardown);
  g_test_add ("/stun/server/silent", Fixture, NULL, fixture_setup, test_server_silent,
              fixture_teardown);
  g_test_add ("/stun/server/debian-stun-client", Fixture, NULL, fixture_setup,
              test_debian_stun_client, fixture_teardown);

  return g_test_run ();
}
