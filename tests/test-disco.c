/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmDisco: the messages inside a Noise session. Every type and both address
 * families parse back what the writers wrote; the byte layout is pinned by
 * hand-written messages; every refusal gives its own code and message and
 * leaves the output untouched; the writers refuse what the parser would, and
 * write nothing into a buffer that is too small; the fuzz seeds are what their
 * names say.
 */
#define G_LOG_DOMAIN "pipermesh-test-disco"

#include <string.h>

#include "pm-disco.h"

static const uint8_t tx_id[PM_DISCO_TX_ID_LEN] = {
  0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb
};

static GInetSocketAddress *
sockaddr (const char *ip,
          uint16_t    port)
{
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (ip);

  g_assert_nonnull (inet);
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));
}

static void
assert_address (GInetSocketAddress *address,
                const char         *ip,
                uint16_t            port)
{
  g_autofree char *text = NULL;

  g_assert_nonnull (address);
  text = g_inet_address_to_string (g_inet_socket_address_get_address (address));
  g_assert_cmpstr (text, ==, ip);
  g_assert_cmpuint (g_inet_socket_address_get_port (address), ==, port);
}

static void
parse_ok (const uint8_t  *data,
          size_t          len,
          PmDiscoMessage *m)
{
  g_autoptr (GError) error = NULL;

  memset (m, 0, sizeof *m);
  g_assert_true (pm_disco_parse (data, len, m, &error));
  g_assert_no_error (error);
}

/* Parses and writes back: the same bytes. */
static void
assert_canonical (const uint8_t *data,
                  size_t         len)
{
  g_auto (PmDiscoMessage) m = { 0 };
  g_autofree uint8_t *out = g_malloc (len + 8);

  parse_ok (data, len, &m);
  g_assert_cmpuint (pm_disco_write (out, len + 8, &m), ==, len);
  g_assert_cmpmem (out, len, data, len);
}

/* Parses what must be refused with @code and a message containing @fragment,
 * and checks that the output is untouched. */
static void
assert_refused (const uint8_t *data,
                size_t         len,
                PmDiscoError   code,
                const char    *fragment)
{
  g_autoptr (GError) error = NULL;
  PmDiscoMessage m, untouched;

  memset (&m, 0xa5, sizeof m);
  untouched = m;
  g_assert_false (pm_disco_parse (data, len, &m, &error));
  g_assert_error (error, PM_DISCO_ERROR, (int) code);
  if (strstr (error->message, fragment) == NULL)
    g_error ("Error \"%s\" does not contain \"%s\"", error->message, fragment);
  g_assert_cmpmem (&m, sizeof m, &untouched, sizeof untouched);
}

/* Every writer must refuse each buffer shorter than @len and write nothing. */
typedef size_t (*WriteFunc) (uint8_t *out, size_t out_len, gpointer data);

static void
assert_short_buffers_refused (WriteFunc write,
                              gpointer  data,
                              size_t    len)
{
  uint8_t buf[PM_DISCO_MAX_LEN + 1];

  g_assert_cmpuint (len, <=, sizeof buf);
  for (size_t n = 0; n < len; n++)
    {
      memset (buf, 0x5a, sizeof buf);
      g_assert_cmpuint (write (buf, n, data), ==, 0);
      for (size_t i = 0; i < sizeof buf; i++)
        g_assert_cmpuint (buf[i], ==, 0x5a);
    }
  g_assert_cmpuint (write (buf, len, data), ==, len);
}

/* --- Round trips ---------------------------------------------------------------- */

static void
test_stream_roundtrip (void)
{
  static const size_t sizes[] = { 1, 2, 1200, 65518 };

  for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      size_t              n = sizes[s];
      g_autofree uint8_t *packet = g_malloc (n);
      g_autofree uint8_t *buf = g_malloc (n + 1);
      g_auto (PmDiscoMessage) m = { 0 };

      for (size_t i = 0; i < n; i++)
        packet[i] = (uint8_t) (i * 7 + 3);
      g_assert_cmpuint (pm_disco_write_stream (buf, n, packet, n), ==, 0);
      g_assert_cmpuint (pm_disco_write_stream (buf, n + 1, packet, n), ==, n + 1);
      g_assert_cmpuint (buf[0], ==, 0x01);

      parse_ok (buf, n + 1, &m);
      g_assert_cmpint (m.type, ==, PM_DISCO_STREAM);
      g_assert_true (m.stream == buf + 1); /* a view, not a copy */
      g_assert_cmpmem (m.stream, m.stream_len, packet, n);
      g_assert_null (m.seen);
      g_assert_null (m.endpoints);
      assert_canonical (buf, n + 1);
    }
}

/* The stream layer may put the packet after one reserved byte and write the
 * type in place. */
static void
test_stream_in_place (void)
{
  uint8_t buf[6] = { 0, 'h', 'e', 'l', 'l', 'o' };

  g_assert_cmpuint (pm_disco_write_stream (buf, sizeof buf, buf + 1, 5), ==, 6);
  g_assert_cmpmem (buf, 6, "\x01hello", 6);
  g_assert_cmpuint (pm_disco_write_stream (buf, sizeof buf, buf + 1, 0), ==, 0);
}

static size_t
write_ping_cb (uint8_t *out,
               size_t   out_len,
               gpointer data)
{
  return pm_disco_write_ping (out, out_len, data);
}

static void
test_ping_roundtrip (void)
{
  static const uint8_t expected[PM_DISCO_PING_LEN] = { 0x02, 0x10, 0x21, 0x32, 0x43, 0x54, 0x65,
                                                       0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb };
  uint8_t              buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_cmpuint (pm_disco_write_ping (buf, sizeof buf, tx_id), ==, 13);
  g_assert_cmpmem (buf, 13, expected, sizeof expected);
  parse_ok (buf, 13, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_PING);
  g_assert_cmpmem (m.tx_id, sizeof m.tx_id, tx_id, sizeof tx_id);
  g_assert_null (m.seen);
  g_assert_null (m.endpoints);
  g_assert_null (m.stream);
  assert_canonical (buf, 13);
  assert_short_buffers_refused (write_ping_cb, (gpointer) tx_id, 13);
}

static size_t
write_pong_cb (uint8_t *out,
               size_t   out_len,
               gpointer data)
{
  return pm_disco_write_pong (out, out_len, tx_id, data);
}

static void
test_pong_ipv4 (void)
{
  static const uint8_t expected[] = { 0x03, 0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                      0x98, 0xa9, 0xba, 0xcb, 4, 0xd4, 0x31, 198, 51, 100, 7 };
  g_autoptr (GInetSocketAddress) seen = sockaddr ("198.51.100.7", 54321);
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_cmpuint (pm_disco_write_pong (buf, sizeof buf, tx_id, seen), ==, sizeof expected);
  g_assert_cmpmem (buf, sizeof expected, expected, sizeof expected);
  parse_ok (buf, sizeof expected, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_PONG);
  g_assert_cmpmem (m.tx_id, sizeof m.tx_id, tx_id, sizeof tx_id);
  assert_address (m.seen, "198.51.100.7", 54321);
  g_assert_cmpint (g_inet_address_get_family (g_inet_socket_address_get_address (m.seen)), ==,
                   G_SOCKET_FAMILY_IPV4);
  g_assert_null (m.endpoints);
  assert_canonical (buf, sizeof expected);
  assert_short_buffers_refused (write_pong_cb, seen, sizeof expected);
}

static void
test_pong_ipv6 (void)
{
  g_autoptr (GInetSocketAddress) seen = sockaddr ("2001:db8::1:2", 443);
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_cmpuint (pm_disco_write_pong (buf, sizeof buf, tx_id, seen), ==,
                    PM_DISCO_PONG_MAX_LEN);
  g_assert_cmpuint (PM_DISCO_PONG_MAX_LEN, ==, 32);
  g_assert_cmpuint (buf[13], ==, 6);
  g_assert_cmpuint (buf[14], ==, 0x01);
  g_assert_cmpuint (buf[15], ==, 0xbb);
  g_assert_cmpmem (buf + 16, 4, "\x20\x01\x0d\xb8", 4);
  parse_ok (buf, PM_DISCO_PONG_MAX_LEN, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_PONG);
  assert_address (m.seen, "2001:db8::1:2", 443);
  assert_canonical (buf, PM_DISCO_PONG_MAX_LEN);
  assert_short_buffers_refused (write_pong_cb, seen, PM_DISCO_PONG_MAX_LEN);
}

/* A ping that came over the relay: family 0, port 0, nothing after. */
static void
test_pong_not_seen (void)
{
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_cmpuint (pm_disco_write_pong (buf, sizeof buf, tx_id, NULL), ==, PM_DISCO_PONG_MIN_LEN);
  g_assert_cmpuint (PM_DISCO_PONG_MIN_LEN, ==, 16);
  g_assert_cmpmem (buf + 13, 3, "\0\0\0", 3);
  parse_ok (buf, PM_DISCO_PONG_MIN_LEN, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_PONG);
  g_assert_cmpmem (m.tx_id, sizeof m.tx_id, tx_id, sizeof tx_id);
  g_assert_null (m.seen);
  assert_canonical (buf, PM_DISCO_PONG_MIN_LEN);
  assert_short_buffers_refused (write_pong_cb, NULL, PM_DISCO_PONG_MIN_LEN);
}

/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: sent as IPv4. */
static void
test_pong_v4_mapped_sent_as_ipv4 (void)
{
  g_autoptr (GInetSocketAddress) seen = sockaddr ("::ffff:192.0.2.33", 9);
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_true (pm_disco_address_is_valid (seen));
  g_assert_cmpuint (pm_disco_write_pong (buf, sizeof buf, tx_id, seen), ==, 20);
  g_assert_cmpmem (buf + 13, 7, "\x04\x00\x09\xc0\x00\x02\x21", 7);
  parse_ok (buf, 20, &m);
  assert_address (m.seen, "192.0.2.33", 9);
}

static size_t
write_cmm_cb (uint8_t *out,
              size_t   out_len,
              gpointer data)
{
  return pm_disco_write_call_me_maybe (out, out_len, data);
}

static void
add_endpoint (GPtrArray  *endpoints,
              uint8_t     flags,
              const char *ip,
              uint16_t    port)
{
  g_autoptr (GInetSocketAddress) address = sockaddr (ip, port);

  g_ptr_array_add (endpoints, pm_disco_endpoint_new (flags, address));
}

static void
test_call_me_maybe_roundtrip (void)
{
  static const uint8_t expected[] = {
    0x04, 3,                              /* type, count */
    0x01, 4, 0xa4, 0x55, 192, 168, 1, 20, /* LOCAL 192.168.1.20:42069 */
    0x02, 4, 0xc3, 0x50, 203, 0, 113, 9,  /* MAPPED 203.0.113.9:50000 */
    0x03, 6, 0x00, 0x50, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
    /* LOCAL|MAPPED [2001:db8::42]:80 */
  };
  g_autoptr (GPtrArray) endpoints =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };
  const PmDiscoEndpoint *e;

  add_endpoint (endpoints, PM_DISCO_ENDPOINT_LOCAL, "192.168.1.20", 42069);
  add_endpoint (endpoints, PM_DISCO_ENDPOINT_MAPPED, "203.0.113.9", 50000);
  add_endpoint (endpoints, PM_DISCO_ENDPOINT_LOCAL | PM_DISCO_ENDPOINT_MAPPED, "2001:db8::42", 80);

  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, sizeof expected);
  g_assert_cmpmem (buf, sizeof expected, expected, sizeof expected);
  parse_ok (buf, sizeof expected, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_CALL_ME_MAYBE);
  g_assert_null (m.seen);
  g_assert_nonnull (m.endpoints);
  g_assert_cmpuint (m.endpoints->len, ==, 3);
  e = g_ptr_array_index (m.endpoints, 0);
  g_assert_cmpuint (e->flags, ==, PM_DISCO_ENDPOINT_LOCAL);
  assert_address (e->address, "192.168.1.20", 42069);
  e = g_ptr_array_index (m.endpoints, 1);
  g_assert_cmpuint (e->flags, ==, PM_DISCO_ENDPOINT_MAPPED);
  assert_address (e->address, "203.0.113.9", 50000);
  e = g_ptr_array_index (m.endpoints, 2);
  g_assert_cmpuint (e->flags, ==, PM_DISCO_ENDPOINT_LOCAL | PM_DISCO_ENDPOINT_MAPPED);
  assert_address (e->address, "2001:db8::42", 80);
  assert_canonical (buf, sizeof expected);
  assert_short_buffers_refused (write_cmm_cb, endpoints, sizeof expected);

  /* Parsing again into a cleared message works and leaks nothing. */
  pm_disco_message_clear (&m);
  parse_ok (buf, sizeof expected, &m);
  g_assert_cmpuint (m.endpoints->len, ==, 3);
}

static void
test_call_me_maybe_empty (void)
{
  g_autoptr (GPtrArray) endpoints = g_ptr_array_new ();
  uint8_t buf[PM_DISCO_MAX_LEN];
  g_auto (PmDiscoMessage) m = { 0 };

  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, 2);
  g_assert_cmpmem (buf, 2, "\x04\x00", 2);
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, NULL), ==, 2);
  parse_ok (buf, 2, &m);
  g_assert_cmpint (m.type, ==, PM_DISCO_CALL_ME_MAYBE);
  g_assert_nonnull (m.endpoints);
  g_assert_cmpuint (m.endpoints->len, ==, 0);
  assert_canonical (buf, 2);
}

/* PM_DISCO_MAX_ENDPOINTS IPv6 endpoints: the largest message, exactly
 * PM_DISCO_MAX_LEN bytes. */
static void
test_call_me_maybe_max (void)
{
  g_autoptr (GPtrArray) endpoints =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);
  uint8_t buf[PM_DISCO_MAX_LEN + 32];
  g_auto (PmDiscoMessage) m = { 0 };

  for (unsigned i = 0; i < PM_DISCO_MAX_ENDPOINTS; i++)
    {
      g_autofree char *ip = g_strdup_printf ("fd00::%x", i + 1);

      add_endpoint (endpoints, (uint8_t) (i % 4), ip, (uint16_t) (1000 + i));
    }
  g_assert_cmpuint (PM_DISCO_MAX_LEN, ==, 322);
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==,
                    PM_DISCO_MAX_LEN);
  parse_ok (buf, PM_DISCO_MAX_LEN, &m);
  g_assert_cmpuint (m.endpoints->len, ==, PM_DISCO_MAX_ENDPOINTS);
  for (unsigned i = 0; i < PM_DISCO_MAX_ENDPOINTS; i++)
    {
      const PmDiscoEndpoint *e = g_ptr_array_index (m.endpoints, i);
      g_autofree char       *ip = g_strdup_printf ("fd00::%x", i + 1);

      g_assert_cmpuint (e->flags, ==, i % 4);
      assert_address (e->address, ip, (uint16_t) (1000 + i));
    }
  assert_canonical (buf, PM_DISCO_MAX_LEN);

  /* One more is refused by the writer. */
  add_endpoint (endpoints, 0, "fd00::99", 1);
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, 0);
}

/* --- Refusals --------------------------------------------------------------------- */

static void
test_refuse_type_and_length (void)
{
  uint8_t buf[64] = { 0 };

  assert_refused (buf, 0, PM_DISCO_ERROR_TRUNCATED, "Empty in-session message");
  for (unsigned type = 0; type < 256; type++)
    {
      if (type >= PM_DISCO_STREAM && type <= PM_DISCO_CALL_ME_MAYBE)
        continue;
      buf[0] = (uint8_t) type;
      assert_refused (buf, 13, PM_DISCO_ERROR_UNKNOWN_TYPE, "Unknown in-session message type 0x");
    }

  buf[0] = PM_DISCO_STREAM;
  assert_refused (buf, 1, PM_DISCO_ERROR_TRUNCATED, "Truncated STREAM: no SCTP packet");

  pm_disco_write_ping (buf, sizeof buf, tx_id);
  for (size_t n = 1; n < PM_DISCO_PING_LEN; n++)
    assert_refused (buf, n, PM_DISCO_ERROR_TRUNCATED, "Truncated PING");
  assert_refused (buf, 14, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a PING: 14 bytes, 13 expected");

  buf[0] = PM_DISCO_CALL_ME_MAYBE;
  assert_refused (buf, 1, PM_DISCO_ERROR_TRUNCATED, "no endpoint count");
}

static void
test_refuse_pong (void)
{
  g_autoptr (GInetSocketAddress) v4 = sockaddr ("198.51.100.7", 54321);
  g_autoptr (GInetSocketAddress) v6 = sockaddr ("2001:db8::1", 7);
  uint8_t buf[64] = { 0 };
  size_t  len;

  /* Truncated anywhere. */
  len = pm_disco_write_pong (buf, sizeof buf, tx_id, v6);
  for (size_t n = 1; n < PM_DISCO_PING_LEN; n++)
    assert_refused (buf, n, PM_DISCO_ERROR_TRUNCATED, "Truncated PONG: ");
  for (size_t n = PM_DISCO_PING_LEN; n < PM_DISCO_PONG_MIN_LEN; n++)
    assert_refused (buf, n, PM_DISCO_ERROR_TRUNCATED, "family and port need 3 bytes");
  for (size_t n = PM_DISCO_PONG_MIN_LEN; n < len; n++)
    assert_refused (buf, n, PM_DISCO_ERROR_TRUNCATED, "an IPv6 address needs 19 bytes");
  assert_refused (buf, len + 1, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a PONG: 33 bytes, 32 expected");

  len = pm_disco_write_pong (buf, sizeof buf, tx_id, v4);
  assert_refused (buf, len - 1, PM_DISCO_ERROR_TRUNCATED, "an IPv4 address needs 7 bytes, 6 left");
  assert_refused (buf, len + 3, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a PONG: 23 bytes, 20 expected");

  /* An IPv4 address labelled 6 is short; an IPv6 one labelled 4 is long. */
  buf[13] = 6;
  assert_refused (buf, len, PM_DISCO_ERROR_TRUNCATED, "Truncated PONG address");
  len = pm_disco_write_pong (buf, sizeof buf, tx_id, v6);
  buf[13] = 4;
  assert_refused (buf, len, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a PONG: 32 bytes, 20 expected");

  /* Families. */
  for (unsigned family = 1; family < 256; family++)
    {
      if (family == 4 || family == 6)
        continue;
      buf[13] = (uint8_t) family;
      assert_refused (buf, len, PM_DISCO_ERROR_BAD_FAMILY, "; 0, 4 or 6 expected");
    }

  /* Family 0: port 0 and nothing after. */
  len = pm_disco_write_pong (buf, sizeof buf, tx_id, NULL);
  buf[15] = 1;
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_PORT, "family 0 (not seen over UDP) has port 1");
  buf[15] = 0;
  buf[len] = 127;
  assert_refused (buf, len + 4, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a PONG: 20 bytes, 16 expected");

  /* Port 0 with an address. */
  len = pm_disco_write_pong (buf, sizeof buf, tx_id, v4);
  buf[14] = buf[15] = 0;
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_PORT, "PONG address has port 0");
}

/* Writes a PONG whose address bytes are @addr, by family. */
static size_t
raw_pong (uint8_t       *buf,
          uint8_t        family,
          const uint8_t *addr)
{
  size_t addr_len = family == 4 ? 4 : 16;

  pm_disco_write_ping (buf, PM_DISCO_PING_LEN, tx_id);
  buf[0] = PM_DISCO_PONG;
  buf[13] = family;
  buf[14] = 0x12;
  buf[15] = 0x34;
  memcpy (buf + 16, addr, addr_len);
  return 16 + addr_len;
}

static void
test_refuse_addresses (void)
{
  static const struct {
    uint8_t     family;
    uint8_t     addr[16];
    const char *fragment;
  } bad[] = {
    { 4, { 0, 0, 0, 0 }, "the unspecified address 0.0.0.0" },
    { 4, { 224, 0, 0, 251 }, "a multicast address" },
    { 4, { 239, 255, 255, 250 }, "a multicast address" },
    { 6, { 0 }, "the unspecified address ::" },
    { 6, { 0xff, 0x02, [15] = 0xfb }, "a multicast address" },
    { 6, { [10] = 0xff, [11] = 0xff, 192, 0, 2, 1 }, "IPv4-mapped IPv6 address" },
  };
  static const struct {
    uint8_t addr[16];
  } good_v4[] = { { { 0, 0, 0, 1 } }, { { 223, 255, 255, 255 } }, { { 240, 0, 0, 1 } } };
  uint8_t buf[64];

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GInetAddress) inet = NULL;
      g_autoptr (GSocketAddress) address = NULL;
      size_t len = raw_pong (buf, bad[i].family, bad[i].addr);

      assert_refused (buf, len, PM_DISCO_ERROR_BAD_ADDRESS, bad[i].fragment);

      /* The writers refuse the same addresses (the mapped one excepted: it is
       * sent as IPv4, and 192.0.2.1 is fine). */
      inet = g_inet_address_new_from_bytes (bad[i].addr, bad[i].family == 4 ? G_SOCKET_FAMILY_IPV4
                                                                            : G_SOCKET_FAMILY_IPV6);
      address = g_inet_socket_address_new (inet, 0x1234);
      if (strstr (bad[i].fragment, "mapped") != NULL)
        continue;
      g_assert_false (pm_disco_address_is_valid (G_INET_SOCKET_ADDRESS (address)));
      g_assert_cmpuint (
        pm_disco_write_pong (buf, sizeof buf, tx_id, G_INET_SOCKET_ADDRESS (address)), ==, 0);
    }
  for (size_t i = 0; i < G_N_ELEMENTS (good_v4); i++)
    assert_canonical (buf, raw_pong (buf, 4, good_v4[i].addr));
}

/* A CALL_ME_MAYBE of two endpoints: 192.0.2.1:1 and [2001:db8::2]:2. */
static size_t
two_endpoints (uint8_t *buf)
{
  g_autoptr (GPtrArray) endpoints =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);

  add_endpoint (endpoints, PM_DISCO_ENDPOINT_LOCAL, "192.0.2.1", 1);
  add_endpoint (endpoints, PM_DISCO_ENDPOINT_MAPPED, "2001:db8::2", 2);
  return pm_disco_write_call_me_maybe (buf, PM_DISCO_MAX_LEN, endpoints);
}

static void
test_refuse_call_me_maybe (void)
{
  uint8_t buf[PM_DISCO_MAX_LEN + 64] = { 0 };
  size_t  len = two_endpoints (buf);

  g_assert_cmpuint (len, ==, 2 + 8 + 20);
  assert_canonical (buf, len);

  /* Truncated anywhere, trailing bytes. */
  assert_refused (buf, 2, PM_DISCO_ERROR_TRUNCATED,
                  "Truncated CALL_ME_MAYBE endpoint 1 of 2: the message ends before it");
  assert_refused (buf, 4, PM_DISCO_ERROR_TRUNCATED,
                  "Truncated CALL_ME_MAYBE endpoint 1 of 2: family and port need 3 bytes, 1 left");
  assert_refused (buf, 9, PM_DISCO_ERROR_TRUNCATED,
                  "Truncated CALL_ME_MAYBE endpoint 1 of 2: an IPv4 address needs 7 bytes, 6 left");
  assert_refused (buf, 10, PM_DISCO_ERROR_TRUNCATED, "endpoint 2 of 2: the message ends before it");
  for (size_t n = 11; n < len; n++)
    assert_refused (buf, n, PM_DISCO_ERROR_TRUNCATED, "Truncated CALL_ME_MAYBE endpoint 2 of 2");
  assert_refused (buf, len + 1, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a CALL_ME_MAYBE (count 2): 31 bytes, 30 expected");
  buf[1] = 1;
  assert_refused (buf, len, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a CALL_ME_MAYBE (count 1): 30 bytes, 10 expected");
  buf[1] = 0;
  assert_refused (buf, len, PM_DISCO_ERROR_TRAILING,
                  "Trailing data after a CALL_ME_MAYBE (count 0): 30 bytes, 2 expected");
  buf[1] = 3;
  assert_refused (buf, len, PM_DISCO_ERROR_TRUNCATED, "endpoint 3 of 3: the message ends");

  /* Too many: refused on the count, before any entry is read. */
  for (unsigned count = PM_DISCO_MAX_ENDPOINTS + 1; count < 256; count++)
    {
      buf[1] = (uint8_t) count;
      assert_refused (buf, len, PM_DISCO_ERROR_TOO_MANY_ENDPOINTS,
                      "endpoints; at most 16 allowed");
    }

  /* Reserved flag bits, in either endpoint. */
  for (unsigned bit = 2; bit < 8; bit++)
    {
      len = two_endpoints (buf);
      buf[2] |= (uint8_t) (1u << bit);
      assert_refused (buf, len, PM_DISCO_ERROR_BAD_FLAGS,
                      "CALL_ME_MAYBE endpoint 1 of 2 has reserved flag bits set");
      len = two_endpoints (buf);
      buf[10] = (uint8_t) (1u << bit);
      assert_refused (buf, len, PM_DISCO_ERROR_BAD_FLAGS, "endpoint 2 of 2 has reserved flag bits");
    }

  /* Families: 0 is a PONG's only. */
  for (unsigned family = 0; family < 256; family++)
    {
      if (family == 4 || family == 6)
        continue;
      len = two_endpoints (buf);
      buf[11] = (uint8_t) family;
      assert_refused (buf, len, PM_DISCO_ERROR_BAD_FAMILY,
                      "CALL_ME_MAYBE endpoint 2 of 2 has family");
    }
  len = two_endpoints (buf);
  buf[11] = 0;
  {
    g_autoptr (GError) error = NULL;
    PmDiscoMessage m = { 0 };

    g_assert_false (pm_disco_parse (buf, len, &m, &error));
    g_assert_cmpstr (error->message, ==,
                     "CALL_ME_MAYBE endpoint 2 of 2 has family 0; 4 or 6 expected");
  }

  /* Port 0. */
  len = two_endpoints (buf);
  buf[12] = buf[13] = 0;
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_PORT, "CALL_ME_MAYBE endpoint 2 of 2 has port 0");

  /* Addresses. */
  len = two_endpoints (buf);
  buf[6] = 239;
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_ADDRESS,
                  "CALL_ME_MAYBE endpoint 1 of 2 is a multicast address");
  len = two_endpoints (buf);
  memcpy (buf + 14, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\0\0\x01", 16);
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_ADDRESS,
                  "endpoint 2 of 2 is an IPv4-mapped IPv6 address (send it as family 4)");
  memset (buf + 14, 0, 16);
  assert_refused (buf, len, PM_DISCO_ERROR_BAD_ADDRESS, "is the unspecified address ::");
}

/* --- Writers refuse what the parser would ----------------------------------------- */

static void
test_writer_refusals (void)
{
  g_autoptr (GPtrArray) endpoints =
    g_ptr_array_new_with_free_func ((GDestroyNotify) pm_disco_endpoint_free);
  g_autoptr (GInetSocketAddress) port0 = sockaddr ("192.0.2.1", 0);
  g_autoptr (GInetSocketAddress) any = sockaddr ("::", 5);
  g_autoptr (GInetSocketAddress) good = sockaddr ("192.0.2.1", 5);
  uint8_t        buf[PM_DISCO_MAX_LEN];
  PmDiscoMessage m = { 0 };

  g_assert_false (pm_disco_address_is_valid (port0));
  g_assert_false (pm_disco_address_is_valid (any));
  g_assert_true (pm_disco_address_is_valid (good));
  g_assert_cmpuint (pm_disco_write_pong (buf, sizeof buf, tx_id, port0), ==, 0);

  /* A bad endpoint anywhere: nothing written. */
  add_endpoint (endpoints, PM_DISCO_ENDPOINT_LOCAL, "192.0.2.1", 5);
  add_endpoint (endpoints, PM_DISCO_ENDPOINT_LOCAL, "224.0.0.1", 5);
  memset (buf, 0x5a, sizeof buf);
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, 0);
  g_assert_cmpuint (buf[0], ==, 0x5a);
  g_ptr_array_remove_index (endpoints, 1);
  add_endpoint (endpoints, 0x04, "192.0.2.2", 5);
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, 0);
  g_ptr_array_remove_index (endpoints, 1);
  add_endpoint (endpoints, 0, "192.0.2.2", 5); /* no flag: allowed */
  g_assert_cmpuint (pm_disco_write_call_me_maybe (buf, sizeof buf, endpoints), ==, 18);

  /* pm_disco_write() with an unknown type, or an empty STREAM. */
  m.type = (PmDiscoType) 9;
  g_assert_cmpuint (pm_disco_write (buf, sizeof buf, &m), ==, 0);
  m.type = PM_DISCO_STREAM;
  g_assert_cmpuint (pm_disco_write (buf, sizeof buf, &m), ==, 0);

  /* No address at all. */
  g_assert_false (pm_disco_address_is_valid (NULL));
}

/* --- The fuzz seeds ------------------------------------------------------------------ */

/* tests/fuzz/corpus/disco: every ok-* seed parses and writes back the same
 * bytes; every bad-* seed is refused, for the reason its name says. */
static const struct {
  const char  *name;
  PmDiscoError code;
} bad_seeds[] = {
  { "bad-empty", PM_DISCO_ERROR_TRUNCATED },
  { "bad-type", PM_DISCO_ERROR_UNKNOWN_TYPE },
  { "bad-stream-empty", PM_DISCO_ERROR_TRUNCATED },
  { "bad-ping-trailing", PM_DISCO_ERROR_TRAILING },
  { "bad-ping-short", PM_DISCO_ERROR_TRUNCATED },
  { "bad-pong-family", PM_DISCO_ERROR_BAD_FAMILY },
  { "bad-pong-relay-port", PM_DISCO_ERROR_BAD_PORT },
  { "bad-pong-v4-mapped", PM_DISCO_ERROR_BAD_ADDRESS },
  { "bad-pong-port0", PM_DISCO_ERROR_BAD_PORT },
  { "bad-cmm-flags", PM_DISCO_ERROR_BAD_FLAGS },
  { "bad-cmm-count", PM_DISCO_ERROR_TOO_MANY_ENDPOINTS },
  { "bad-cmm-port0", PM_DISCO_ERROR_BAD_PORT },
  { "bad-cmm-multicast", PM_DISCO_ERROR_BAD_ADDRESS },
  { "bad-cmm-unspecified", PM_DISCO_ERROR_BAD_ADDRESS },
  { "bad-cmm-truncated", PM_DISCO_ERROR_TRUNCATED },
  { "bad-cmm-trailing", PM_DISCO_ERROR_TRAILING },
};

static void
test_fuzz_seeds (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "fuzz", "corpus", "disco", NULL);
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GError) error = NULL;
  unsigned    n_ok = 0, n_bad = 0;
  const char *name;

  dir = g_dir_open (dir_path, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir_path, name, NULL);
      g_autofree char *contents = NULL;
      gsize            len = 0;

      g_assert_true (g_file_get_contents (path, &contents, &len, &error));
      g_assert_no_error (error);
      if (g_str_has_prefix (name, "ok-"))
        {
          assert_canonical ((const uint8_t *) contents, len);
          n_ok++;
        }
      else if (g_str_has_prefix (name, "bad-"))
        {
          g_auto (PmDiscoMessage) m = { 0 };
          g_autoptr (GError) parse_error = NULL;

          size_t i;

          for (i = 0; i < G_N_ELEMENTS (bad_seeds); i++)
            if (g_str_equal (bad_seeds[i].name, name))
              break;
          if (i == G_N_ELEMENTS (bad_seeds))
            g_error ("Seed %s has no expected error in bad_seeds[]", name);
          if (pm_disco_parse ((const uint8_t *) contents, len, &m, &parse_error))
            g_error ("Seed %s parses", name);
          g_test_message ("%s: %s", name, parse_error->message);
          g_assert_error (parse_error, PM_DISCO_ERROR, (int) bad_seeds[i].code);
          n_bad++;
        }
      else
        g_error ("Seed %s is neither ok-* nor bad-*", name);
    }
  g_assert_cmpuint (n_ok, >=, 6);
  g_assert_cmpuint (n_bad, ==, G_N_ELEMENTS (bad_seeds));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/disco/stream/roundtrip", test_stream_roundtrip);
  g_test_add_func ("/disco/stream/in-place", test_stream_in_place);
  g_test_add_func ("/disco/ping/roundtrip", test_ping_roundtrip);
  g_test_add_func ("/disco/pong/ipv4", test_pong_ipv4);
  g_test_add_func ("/disco/pong/ipv6", test_pong_ipv6);
  g_test_add_func ("/disco/pong/not-seen", test_pong_not_seen);
  g_test_add_func ("/disco/pong/v4-mapped-sent-as-ipv4", test_pong_v4_mapped_sent_as_ipv4);
  g_test_add_func ("/disco/call-me-maybe/roundtrip", test_call_me_maybe_roundtrip);
  g_test_add_func ("/disco/call-me-maybe/empty", test_call_me_maybe_empty);
  g_test_add_func ("/disco/call-me-maybe/max", test_call_me_maybe_max);
  g_test_add_func ("/disco/refuse/type-and-length", test_refuse_type_and_length);
  g_test_add_func ("/disco/refuse/pong", test_refuse_pong);
  g_test_add_func ("/disco/refuse/addresses", test_refuse_addresses);
  g_test_add_func ("/disco/refuse/call-me-maybe", test_refuse_call_me_maybe);
  g_test_add_func ("/disco/writer-refusals", test_writer_refusals);
  g_test_add_func ("/disco/fuzz-seeds", test_fuzz_seeds);

  return g_test_run ();
}
