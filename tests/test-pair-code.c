/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The pairing code and its QR code (core/pm-pair-code.c, core/pm-qr.c).
 *
 * PmPairCode: the canonical text is pinned byte for byte; codes read back
 * with the same fields (random, largest, odd names, any field order); every
 * refusal gives its code and a message naming the field (unknown version,
 * each field missing or twice, bad base64url, wrong lengths, bad addresses,
 * bad names, oversized, garbage, every truncation, random mutations); the
 * fuzz seeds are what their names say.
 *
 * PmQr: PNG files at several scales read back through zbar; their quiet zone
 * is 4 light modules; the SVG read back after ImageMagick's convert (and
 * gdk-pixbuf's SVG loader) rasterises it; a JPEG reads back; each text style
 * draws exactly the symbol and reads back; pictures with no code, several
 * codes, transparency; files that are missing, not pictures or too large;
 * the camera path with no camera.
 */
#define G_LOG_DOMAIN "pipermesh-test-pair-code"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <zlib.h>

#include "pm-pair-code.h"
#include "pm-qr.h"
#include "pm-test-util.h"

/* The fields of the pinned code. */
#define EXPIRES 1700000600
#define NAME    "Anna's laptop"
#define T_B64   "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define C_B64   "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"
#define K_B64   "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8"
#define A4      "192.0.2.7:41700"
#define A6      "%5B2001:db8::7%5D:41700"

static const char pinned_uri[] =
  "pipermesh:pair?v=1&a=" A4 "&a=" A6 "&t=" T_B64 "&e=1700000600&c=" C_B64 "&k=" K_B64
  "&n=Anna%27s%20laptop";

static void
fill (uint8_t out[32],
      uint8_t first)
{
  for (unsigned i = 0; i < 32; i++)
    out[i] = (uint8_t) (first + i);
}

static GInetSocketAddress *
sockaddr (const char *ip,
          uint16_t    port)
{
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (ip);

  g_assert_nonnull (inet);
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (inet, port));
}

static PmPairCode *
pinned_code (void)
{
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GError) error = NULL;
  uint8_t     token[32], cert[32], key[32];
  PmPairCode *code;

  fill (token, 0x00);
  fill (cert, 0x20);
  fill (key, 0x40);
  g_ptr_array_add (addresses, sockaddr ("192.0.2.7", 41700));
  g_ptr_array_add (addresses, sockaddr ("2001:db8::7", 41700));
  code = pm_pair_code_new (addresses, token, EXPIRES, cert, key, NAME, &error);
  g_assert_no_error (error);
  g_assert_nonnull (code);
  return code;
}

static void
assert_address (GInetSocketAddress *address,
                const char         *ip,
                uint16_t            port)
{
  g_autofree char *text = NULL;

  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  text = g_inet_address_to_string (g_inet_socket_address_get_address (address));
  g_assert_cmpstr (text, ==, ip);
  g_assert_cmpuint (g_inet_socket_address_get_port (address), ==, port);
}

static PmPairCode *
parse_ok (const char *text)
{
  g_autoptr (GError) error = NULL;
  PmPairCode *code = pm_pair_code_parse (text, &error);

  g_assert_no_error (error);
  g_assert_nonnull (code);
  return code;
}

/* Writes @code, reads it back: the same fields; and the text is canonical
 * (written again, the same bytes). */
static void
assert_round_trip (const PmPairCode *code)
{
  g_autofree char *uri = pm_pair_code_to_uri (code);
  g_autoptr (PmPairCode) back = NULL;
  g_autofree char *again = NULL;

  g_assert_nonnull (uri);
  g_assert_cmpuint (strlen (uri), <=, PM_PAIR_CODE_MAX_LEN);
  back = parse_ok (uri);
  g_assert_true (pm_pair_code_equal (code, back));
  again = pm_pair_code_to_uri (back);
  g_assert_cmpstr (again, ==, uri);
}

/* Parses what must be refused with @code and a message holding @fragment. */
static void
assert_refused (const char     *text,
                PmPairCodeError code,
                const char     *fragment)
{
  g_autoptr (GError) error = NULL;
  PmPairCode *parsed = pm_pair_code_parse (text, &error);

  if (parsed != NULL || error == NULL || !g_error_matches (error, PM_PAIR_CODE_ERROR, (int) code) ||
      strstr (error->message, fragment) == NULL)
    g_error ("%s: expected error %d with “%s”, got %s", text, code, fragment,
             error != NULL ? error->message : "success");
  g_test_message ("refused: %s", error->message);
}

/* The pinned text with @from replaced by @to (once; @from must be there). */
static char *
pinned_with (const char *from,
             const char *to)
{
  const char *at = strstr (pinned_uri, from);

  g_assert_nonnull (at);
  return g_strdup_printf ("%.*s%s%s", (int) (at - pinned_uri), pinned_uri, to, at + strlen (from));
}

static void
refuse_variant (const char     *from,
                const char     *to,
                PmPairCodeError code,
                const char     *fragment)
{
  g_autofree char *text = pinned_with (from, to);

  assert_refused (text, code, fragment);
}

/* --- Round trips ----------------------------------------------------------------- */

static void
test_pinned (void)
{
  g_autoptr (PmPairCode) code = pinned_code ();
  g_autoptr (PmPairCode) back = NULL;
  g_autofree char *uri = pm_pair_code_to_uri (code);
  uint8_t          expect[32];

  g_assert_cmpstr (uri, ==, pinned_uri);
  back = parse_ok (pinned_uri);
  g_assert_true (pm_pair_code_equal (code, back));
  g_assert_cmpuint (back->addresses->len, ==, 2);
  assert_address (g_ptr_array_index (back->addresses, 0), "192.0.2.7", 41700);
  assert_address (g_ptr_array_index (back->addresses, 1), "2001:db8::7", 41700);
  fill (expect, 0x00);
  g_assert_cmpmem (back->token, 32, expect, 32);
  g_assert_true (pm_pair_code_token_equal (back, expect));
  expect[31] ^= 1;
  g_assert_false (pm_pair_code_token_equal (back, expect));
  fill (expect, 0x20);
  g_assert_cmpmem (back->cert_spki_sha256, 32, expect, 32);
  fill (expect, 0x40);
  g_assert_cmpmem (back->static_public, 32, expect, 32);
  g_assert_cmpint (back->expires, ==, EXPIRES);
  g_assert_cmpstr (back->name, ==, NAME);
}

static void
test_boxed (void)
{
  g_autoptr (PmPairCode) code = pinned_code ();
  g_autoptr (PmPairCode) copy = g_boxed_copy (PM_TYPE_PAIR_CODE, code);
  g_auto (GValue) value = G_VALUE_INIT;

  g_assert_true (copy != code);
  g_assert_true (pm_pair_code_equal (code, copy));
  g_value_init (&value, PM_TYPE_PAIR_CODE);
  g_value_set_boxed (&value, code);
  g_assert_true (pm_pair_code_equal (g_value_get_boxed (&value), code));
}

static void
test_random (void)
{
  g_autoptr (GPtrArray) ips = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (PmPairCode) a = NULL;
  g_autoptr (PmPairCode) b = NULL;
  g_autoptr (GError) error = NULL;
  uint8_t cert[32], key[32], zero[32] = { 0 };
  int64_t before = g_get_real_time () / G_USEC_PER_SEC;
  int64_t after;

  fill (cert, 0x20);
  fill (key, 0x40);
  g_ptr_array_add (ips, g_inet_address_new_from_string ("10.1.2.3"));
  g_ptr_array_add (ips, g_inet_address_new_from_string ("fd00::1234"));
  a = pm_pair_code_new_random (ips, 41700, cert, key, "host", PM_PAIR_CODE_LIFETIME_S, &error);
  g_assert_no_error (error);
  b = pm_pair_code_new_random (ips, 41700, cert, key, "host", PM_PAIR_CODE_LIFETIME_S, &error);
  g_assert_no_error (error);
  after = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_cmpint (PM_PAIR_CODE_LIFETIME_S, ==, 600);
  g_assert_cmpint (a->expires, >=, before + PM_PAIR_CODE_LIFETIME_S);
  g_assert_cmpint (a->expires, <=, after + PM_PAIR_CODE_LIFETIME_S);
  g_assert_true (memcmp (a->token, zero, 32) != 0);
  g_assert_true (memcmp (a->token, b->token, 32) != 0);
  g_assert_false (pm_pair_code_equal (a, b));
  assert_address (g_ptr_array_index (a->addresses, 0), "10.1.2.3", 41700);
  assert_address (g_ptr_array_index (a->addresses, 1), "fd00::1234", 41700);
  assert_round_trip (a);

  g_assert_false (pm_pair_code_is_expired (a, before));
  g_assert_false (pm_pair_code_is_expired (a, a->expires - 1));
  g_assert_true (pm_pair_code_is_expired (a, a->expires));
  g_assert_true (pm_pair_code_is_expired (a, a->expires + 3600));
}

/* The longest code the writer can make stays under the limit. */
static void
test_largest (void)
{
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) name = g_string_new (NULL);
  g_autofree char *uri = NULL;
  uint8_t          t[32];

  fill (t, 0xe0);
  for (int i = 0; i < PM_PAIR_CODE_MAX_ADDRESSES; i++)
    {
      g_autofree char *ip = g_strdup_printf ("fd12:3456:789a:bcde:f012:3456:789a:bc%02x", i);

      g_ptr_array_add (addresses, sockaddr (ip, 65535));
    }
  while (name->len + strlen ("€") <= PM_PAIR_CODE_MAX_NAME_LEN)
    g_string_append (name, "€");
  g_string_append (name, "!");
  g_assert_cmpuint (name->len, ==, PM_PAIR_CODE_MAX_NAME_LEN);
  code = pm_pair_code_new (addresses, t, PM_PAIR_CODE_MAX_EXPIRY, t, t, name->str, &error);
  g_assert_no_error (error);
  uri = pm_pair_code_to_uri (code);
  g_test_message ("largest code: %zu bytes", strlen (uri));
  g_assert_cmpuint (strlen (uri), ==, 798);
  assert_round_trip (code);
}

static void
test_names (void)
{
  static const char *const names[] = {
    "a",
    "Anna's laptop",
    "x&y=z%20+q #frag?/:@",
    "Café ☕ Küche",
    "日本語のホスト",
    "👨‍👩‍👧 family",      /* ZWJ sequences are fine */
    "\u200f\u05e9\u05dc\u05d5\u05dd", /* an RLM mark is fine */
    "1234567890123456789012345678901234567890123456789012345678901234",
  };

  for (size_t i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr (PmPairCode) code = pinned_code ();

      g_free (code->name);
      code->name = g_strdup (names[i]);
      assert_round_trip (code);
    }
}

/* Fields in any order; percent-encoding in any case; "+" is a plus sign. */
static void
test_any_order (void)
{
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (PmPairCode) pinned = pinned_code ();

  code = parse_ok ("pipermesh:pair?n=Anna%27s%20laptop&k=" K_B64 "&c=" C_B64
                   "&e=1700000600&a=%5b2001:DB8:0:0:0:0:0:7%5d:41700&t=" T_B64 "&v=1&a=" A4);
  g_assert_cmpuint (code->addresses->len, ==, 2);
  assert_address (g_ptr_array_index (code->addresses, 0), "2001:db8::7", 41700);
  assert_address (g_ptr_array_index (code->addresses, 1), "192.0.2.7", 41700);
  g_ptr_array_remove_index (code->addresses, 0);
  g_ptr_array_add (code->addresses, sockaddr ("2001:db8::7", 41700));
  g_assert_true (pm_pair_code_equal (code, pinned));

  g_clear_pointer (&code, pm_pair_code_free);
  code = parse_ok ("pipermesh:pair?v=1&a=" A4 "&t=" T_B64 "&e=1&c=" C_B64 "&k=" K_B64
                   "&n=a+b%2Bc");
  g_assert_cmpstr (code->name, ==, "a+b+c");
  g_assert_cmpint (code->expires, ==, 1);
}

/* --- Refusals ------------------------------------------------------------------------ */

static void
test_refuse_version (void)
{
  assert_refused ("pipermesh:pair?v=2", PM_PAIR_CODE_ERROR_VERSION, "newer PiperMesh");
  refuse_variant ("v=1", "v=2", PM_PAIR_CODE_ERROR_VERSION, "update this one");
  refuse_variant ("v=1", "v=10", PM_PAIR_CODE_ERROR_VERSION, "version 10");
  /* Whatever else a newer code holds. */
  assert_refused ("pipermesh:pair?x=%%%&&v=3&w", PM_PAIR_CODE_ERROR_VERSION, "newer PiperMesh");
  assert_refused ("pipermesh:pair?v=1&v=2", PM_PAIR_CODE_ERROR_VERSION, "newer");
  /* Not a version. */
  refuse_variant ("v=1", "v=0", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“v” (version) must be 1");
  refuse_variant ("v=1", "v=01", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“v” (version) must be 1");
  refuse_variant ("v=1", "v=one", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“v” (version)");
  refuse_variant ("v=1", "v=", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“v” (version)");
  refuse_variant ("v=1", "v=1.0", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“v” (version)");
}

static void
test_refuse_missing (void)
{
  static const struct {
    const char *field;
    const char *fragment;
  } fields[] = {
    { "v=1&", "field “v” (version) is missing" },
    { "&t=" T_B64, "field “t” (token) is missing" },
    { "&e=1700000600", "field “e” (expiry) is missing" },
    { "&c=" C_B64, "field “c” (certificate hash) is missing" },
    { "&k=" K_B64, "field “k” (public key) is missing" },
    { "&n=Anna%27s%20laptop", "field “n” (name) is missing" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (fields); i++)
    refuse_variant (fields[i].field, "", PM_PAIR_CODE_ERROR_MISSING_FIELD, fields[i].fragment);
  refuse_variant ("&a=" A4 "&a=" A6, "", PM_PAIR_CODE_ERROR_MISSING_FIELD,
                  "field “a” (address) is missing");
  assert_refused ("pipermesh:pair?v=1", PM_PAIR_CODE_ERROR_MISSING_FIELD, "“a” (address)");
}

static void
test_refuse_duplicate (void)
{
  static const struct {
    const char *field;
    const char *fragment;
  } fields[] = {
    { "v=1", "field “v” (version) is given twice" },
    { "t=" T_B64, "field “t” (token) is given twice" },
    { "e=1700000600", "field “e” (expiry) is given twice" },
    { "c=" C_B64, "field “c” (certificate hash) is given twice" },
    { "k=" K_B64, "field “k” (public key) is given twice" },
    { "n=Anna%27s%20laptop", "field “n” (name) is given twice" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autofree char *twice = g_strdup_printf ("%s&%s", fields[i].field, fields[i].field);

      refuse_variant (fields[i].field, twice, PM_PAIR_CODE_ERROR_DUPLICATE_FIELD,
                      fields[i].fragment);
    }
  /* A second value, not the same one. */
  refuse_variant ("e=1700000600", "e=1700000600&e=1700000601", PM_PAIR_CODE_ERROR_DUPLICATE_FIELD,
                  "“e” (expiry) is given twice");

  /* "a" may repeat, up to 8 different addresses. */
  {
    g_autoptr (GString) eight = g_string_new ("a=" A4);
    g_autoptr (PmPairCode) code = NULL;
    g_autofree char *text = NULL;
    g_autofree char *nine = NULL;

    for (int i = 1; i < PM_PAIR_CODE_MAX_ADDRESSES; i++)
      g_string_append_printf (eight, "&a=192.0.2.%d:1", i);
    text = pinned_with ("a=" A4 "&a=" A6, eight->str);
    code = parse_ok (text);
    g_assert_cmpuint (code->addresses->len, ==, PM_PAIR_CODE_MAX_ADDRESSES);
    nine = pinned_with ("a=" A4 "&a=" A6, eight->str);
    g_free (nine);
    g_string_append (eight, "&a=" A6);
    nine = pinned_with ("a=" A4 "&a=" A6, eight->str);
    assert_refused (nine, PM_PAIR_CODE_ERROR_INVALID_FIELD, "“a” (address) is given more than 8 times");
  }
  refuse_variant ("a=" A6, "a=" A6 "&a=%5B2001:db8:0::7%5D:41700", PM_PAIR_CODE_ERROR_INVALID_FIELD,
                  "“a” (address) gives [2001:db8::7]:41700 twice");
}

static void
test_refuse_base64 (void)
{
  static const char *const keys[] = { "t", "c", "k" };
  static const char *const values[] = { T_B64, C_B64, K_B64 };
  static const char *const what[] = { "“t” (token)", "“c” (certificate hash)", "“k” (public key)" };

  for (size_t i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_autofree char *field = g_strdup_printf ("%s=%s", keys[i], values[i]);
      g_autofree char *expect = g_strdup_printf ("%s must be 32 bytes in unpadded base64url", what[i]);
      g_autofree char *short_v = g_strdup_printf ("%s=%.42s", keys[i], values[i]);
      g_autofree char *long_v = g_strdup_printf ("%s=%sA", keys[i], values[i]);
      g_autofree char *padded = g_strdup_printf ("%s=%s=", keys[i], values[i]);
      g_autofree char *std_b64 = g_strdup_printf ("%s=/%s", keys[i], values[i] + 1);
      g_autofree char *plus = g_strdup_printf ("%s=+%s", keys[i], values[i] + 1);
      g_autofree char *escaped = g_strdup_printf ("%s=%%41%s", keys[i], values[i] + 1);
      /* The last character carries 4 unused bits: they must be zero. */
      g_autofree char *noncanon = g_strdup_printf ("%s=%.42s%c", keys[i], values[i],
                                                   values[i][42] + 1);
      g_autofree char *empty = g_strdup_printf ("%s=", keys[i]);
      g_autofree char *b64_16 = g_strdup_printf ("%s=AAECAwQFBgcICQoLDA0ODw", keys[i]);
      g_autofree char *b64_33 = g_strdup_printf ("%s=%.42sAA", keys[i], values[i]);

      refuse_variant (field, short_v, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, long_v, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, padded, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, std_b64, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, plus, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, escaped, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, noncanon, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, empty, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, b64_16, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
      refuse_variant (field, b64_33, PM_PAIR_CODE_ERROR_INVALID_FIELD, expect);
    }
}

static void
test_refuse_address (void)
{
  static const struct {
    const char *value;
    const char *fragment;
  } bad[] = {
    { "192.0.2.7", "must be IPv4:PORT or %5BIPv6%5D:PORT" },
    { "192.0.2.7:", "must be IPv4:PORT" },
    { "192.0.2.7:65536", "must be IPv4:PORT" },
    { "192.0.2.7:041700", "must be IPv4:PORT" },
    { "192.0.2:1", "must be IPv4:PORT" },
    { "example.com:41700", "must be IPv4:PORT" },
    { "2001:db8::7:41700", "must be IPv4:PORT" },
    { "%5B2001:db8::7%5D", "must be IPv4:PORT" },
    { "%5B192.0.2.7%5D:1", "must be IPv4:PORT" },
    { "%5Bfe80::1%25eth0%5D:1", "must be IPv4:PORT" },
    { "", "must be IPv4:PORT" },
    { "192.0.2.7:0", "192.0.2.7:0 has port 0" },
    { "0.0.0.0:1", "0.0.0.0:1 is unspecified" },
    { "%5B::%5D:1", "[::]:1 is unspecified" },
    { "224.0.0.251:5353", "224.0.0.251:5353 is multicast" },
    { "%5Bff02::fb%5D:5353", "is multicast" },
    { "255.255.255.255:9", "is the broadcast address" },
    { "%5Bfe80::1%5D:1", "is IPv6 link-local" },
    { "%5B::ffff:192.0.2.7%5D:1", "is IPv4-mapped IPv6" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *to = g_strdup_printf ("a=%s", bad[i].value);

      refuse_variant ("a=" A4, to, PM_PAIR_CODE_ERROR_INVALID_FIELD, bad[i].fragment);
    }
  /* Brackets must be percent-encoded in a URI's query. */
  refuse_variant ("a=" A6, "a=[2001:db8::7]:41700", PM_PAIR_CODE_ERROR_SYNTAX,
                  "field “a” holds “[”, which a URI must percent-encode");
  /* Loopback and IPv4 link-local are fine (tests; ad-hoc links). */
  {
    g_autofree char *text = pinned_with ("a=" A4, "a=127.0.0.1:1&a=169.254.1.2:2&a=%5B::1%5D:3");
    g_autoptr (PmPairCode) code = parse_ok (text);

    g_assert_cmpuint (code->addresses->len, ==, 4);
  }
}

static void
test_refuse_expiry (void)
{
  static const char *const bad[] = {
    "0",
    "01",
    "-1",
    "+1",
    "1e9",
    "abc",
    "",
    "253402300800",
    "1234567890123",
    "99999999999999999999",
  };

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *to = g_strdup_printf ("e=%s", bad[i]);

      refuse_variant ("e=1700000600", to, PM_PAIR_CODE_ERROR_INVALID_FIELD, "“e” (expiry)");
    }
  {
    g_autofree char *text = pinned_with ("e=1700000600", "e=253402300799");
    g_autoptr (PmPairCode) code = parse_ok (text);

    g_assert_cmpint (code->expires, ==, PM_PAIR_CODE_MAX_EXPIRY);
  }
}

static void
test_refuse_name (void)
{
  static const struct {
    const char     *value;
    PmPairCodeError code;
    const char     *fragment;
  } bad[] = {
    { "", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“n” (name) is empty" },
    { "12345678901234567890123456789012345678901234567890123456789012345",
      PM_PAIR_CODE_ERROR_INVALID_FIELD, "“n” (name) is longer than 64 bytes" },
    { "%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC"
      "%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC"
      "%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%ACab",
      PM_PAIR_CODE_ERROR_INVALID_FIELD, "is longer than 64 bytes" },
    { "a%0Ab", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“n” (name) holds a control character (U+000A)" },
    { "a%09b", PM_PAIR_CODE_ERROR_INVALID_FIELD, "control character (U+0009)" },
    { "a%7F", PM_PAIR_CODE_ERROR_INVALID_FIELD, "control character (U+007F)" },
    { "a%C2%85", PM_PAIR_CODE_ERROR_INVALID_FIELD, "control character (U+0085)" },
    { "%1B%5B31m", PM_PAIR_CODE_ERROR_INVALID_FIELD, "control character (U+001B)" },
    { "evil%E2%80%AEtxt.exe", PM_PAIR_CODE_ERROR_INVALID_FIELD,
      "“n” (name) holds a bidirectional control character (U+202E)" },
    { "a%E2%81%A6b", PM_PAIR_CODE_ERROR_INVALID_FIELD, "bidirectional control character (U+2066)" },
    { "%FF", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“n” (name) is not valid UTF-8" },
    { "%C3", PM_PAIR_CODE_ERROR_INVALID_FIELD, "is not valid UTF-8" },
    { "%C0%80", PM_PAIR_CODE_ERROR_INVALID_FIELD, "is not valid UTF-8" },
    { "%ED%A0%80", PM_PAIR_CODE_ERROR_INVALID_FIELD, "is not valid UTF-8" },
    { "a%00b", PM_PAIR_CODE_ERROR_INVALID_FIELD, "“n” (name) holds a percent-encoded NUL byte" },
    { "a%G1", PM_PAIR_CODE_ERROR_SYNTAX, "field “n” has a “%” that is not followed by two hex digits" },
    { "a%2", PM_PAIR_CODE_ERROR_SYNTAX, "not followed by two hex digits" },
    { "a%", PM_PAIR_CODE_ERROR_SYNTAX, "not followed by two hex digits" },
    { "Anna laptop", PM_PAIR_CODE_ERROR_SYNTAX, "field “n” holds byte 0x20" },
    { "Anna\"s", PM_PAIR_CODE_ERROR_SYNTAX, "holds “\"”, which a URI must percent-encode" },
    { "a#b", PM_PAIR_CODE_ERROR_SYNTAX, "holds “#”" },
    { "caf\xc3\xa9", PM_PAIR_CODE_ERROR_SYNTAX, "holds byte 0xc3" },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *to = g_strdup_printf ("n=%s", bad[i].value);

      refuse_variant ("n=Anna%27s%20laptop", to, bad[i].code, bad[i].fragment);
    }
}

static void
test_refuse_syntax (void)
{
  g_autofree char *upper = g_ascii_strup (pinned_uri, -1);
  g_autofree char *spaced = g_strdup_printf (" %s", pinned_uri);
  g_autofree char *newline = g_strdup_printf ("%s\n", pinned_uri);
  g_autofree char *trailing = g_strdup_printf ("%s&", pinned_uri);
  g_autofree char *fragment = g_strdup_printf ("%s#x", pinned_uri);

  assert_refused ("", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh pairing code");
  assert_refused ("hello", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "“pipermesh:pair?”");
  assert_refused ("pipermesh:pair", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh");
  assert_refused ("pipermesh://pair?v=1", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh");
  assert_refused ("https://example.com/?v=1", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh");
  assert_refused (upper, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh");
  assert_refused (spaced, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE, "not a PiperMesh");
  assert_refused (newline, PM_PAIR_CODE_ERROR_SYNTAX, "field “n” holds byte 0x0a");
  assert_refused (trailing, PM_PAIR_CODE_ERROR_SYNTAX, "field 9 is empty");
  assert_refused (fragment, PM_PAIR_CODE_ERROR_SYNTAX, "field “n” holds “#”");
  assert_refused ("pipermesh:pair?", PM_PAIR_CODE_ERROR_SYNTAX, "field 1 is empty");
  assert_refused ("pipermesh:pair?&v=1", PM_PAIR_CODE_ERROR_SYNTAX, "field 1 is empty");
  refuse_variant ("&t=", "&&t=", PM_PAIR_CODE_ERROR_SYNTAX, "field 4 is empty");
  refuse_variant ("e=1700000600", "e", PM_PAIR_CODE_ERROR_SYNTAX, "field “e” has no “=”");
  refuse_variant ("e=1700000600", "=1700000600", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                  "unknown field 5");
  refuse_variant ("e=1700000600", "E=1700000600", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                  "unknown field “E”");
  refuse_variant ("&e=1700000600", "&e=1700000600&x=1", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                  "unknown field “x”");
  refuse_variant ("&e=1700000600", "&e=1700000600&ee=1", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                  "unknown field “ee”");
  refuse_variant ("&e=1700000600", "&e=1700000600&%65=1", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                  "unknown field 6");
  refuse_variant ("&e=1700000600", "&e=1700000600&x y=1", PM_PAIR_CODE_ERROR_SYNTAX,
                  "field 6 holds byte 0x20");
}

static void
test_refuse_oversized (void)
{
  g_autoptr (GString) text = g_string_new (pinned_uri);
  g_autoptr (GError) error = NULL;
  PmPairCode *code;

  /* Exactly the limit: refused for what it holds, not for its length. */
  g_string_append (text, "&x=");
  while (text->len < PM_PAIR_CODE_MAX_LEN)
    g_string_append_c (text, 'y');
  code = pm_pair_code_parse (text->str, &error);
  g_assert_null (code);
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_UNKNOWN_FIELD);
  g_clear_error (&error);

  g_string_append_c (text, 'y');
  assert_refused (text->str, PM_PAIR_CODE_ERROR_TOO_LONG, "longer than 1024 bytes");
  /* Long garbage is refused for its length whatever it starts with. */
  g_string_overwrite (text, 0, "hello");
  assert_refused (text->str, PM_PAIR_CODE_ERROR_TOO_LONG, "longer than 1024 bytes");
}

/* Every prefix of a code is refused, except those that cut the name short
 * (they are codes for a shorter name). */
static void
test_refuse_truncated (void)
{
  size_t   name_at = (size_t) (strstr (pinned_uri, "&n=") - pinned_uri) + strlen ("&n=");
  unsigned accepted = 0;

  for (size_t len = 0; len < strlen (pinned_uri); len++)
    {
      g_autofree char *text = g_strndup (pinned_uri, len);
      g_autoptr (GError) error = NULL;
      g_autoptr (PmPairCode) code = pm_pair_code_parse (text, &error);

      if (code != NULL)
        {
          g_assert_cmpuint (len, >, name_at);
          g_assert_true (g_str_has_prefix (NAME, code->name));
          accepted++;
          continue;
        }
      g_assert_nonnull (error);
      g_assert_true (error->domain == PM_PAIR_CODE_ERROR);
      g_assert_cmpstr (error->message, !=, "");
    }
  /* "Anna" "Anna%27s" "Anna%27s%20laptop" less its last bytes ... */
  g_test_message ("%u truncations still read as codes (shorter names)", accepted);
  g_assert_cmpuint (accepted, >, 0);
}

/* Random bytes and random edits of a good code: refused cleanly, or read
 * back as codes that write and read back the same. */
static void
test_refuse_garbage (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (20240501);
  unsigned accepted = 0;

  for (int round = 0; round < 4000; round++)
    {
      g_autoptr (GString) text = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (PmPairCode) code = NULL;

      if (round % 4 == 0)
        {
          text = g_string_new (NULL);
          for (int i = g_rand_int_range (rand, 0, 200); i > 0; i--)
            g_string_append_c (text, (char) g_rand_int_range (rand, 1, 256));
        }
      else
        {
          text = g_string_new (pinned_uri);
          for (int edits = g_rand_int_range (rand, 1, 4); edits > 0; edits--)
            {
              size_t at = (size_t) g_rand_int_range (rand, 0, (int) text->len);
              char   c = (char) g_rand_int_range (rand, 1, 128);

              switch (g_rand_int_range (rand, 0, 3))
                {
                case 0:
                  text->str[at] = c;
                  break;
                case 1:
                  g_string_erase (text, (gssize) at, 1);
                  break;
                default:
                  g_string_insert_c (text, (gssize) at, c);
                }
            }
        }
      code = pm_pair_code_parse (text->str, &error);
      if (code != NULL)
        {
          g_assert_no_error (error);
          assert_round_trip (code);
          accepted++;
        }
      else
        {
          g_assert_nonnull (error);
          g_assert_true (error->domain == PM_PAIR_CODE_ERROR);
          g_assert_cmpint (error->code, >=, PM_PAIR_CODE_ERROR_TOO_LONG);
          g_assert_cmpint (error->code, <=, PM_PAIR_CODE_ERROR_INVALID_FIELD);
          g_assert_cmpstr (error->message, !=, "");
          /* The token never shows in a message. */
          g_assert_null (strstr (error->message, T_B64));
          g_assert_null (strstr (error->message, "AAECAwQF"));
        }
    }
  g_test_message ("%u of 4000 mutated inputs still read as codes", accepted);
}

static void
test_refuse_new (void)
{
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) ips = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GError) error = NULL;
  uint8_t t[32];

  fill (t, 0);
  g_assert_null (pm_pair_code_new (addresses, t, EXPIRES, t, t, "x", &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_MISSING_FIELD);
  g_clear_error (&error);

  g_ptr_array_add (addresses, sockaddr ("192.0.2.1", 1));
  g_assert_null (pm_pair_code_new (addresses, t, EXPIRES, t, t, "line\nbreak", &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_assert_nonnull (strstr (error->message, "control character"));
  g_clear_error (&error);
  g_assert_null (pm_pair_code_new (addresses, t, 0, t, t, "x", &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_clear_error (&error);

  g_ptr_array_add (addresses, g_object_ref (g_ptr_array_index (addresses, 0)));
  g_assert_null (pm_pair_code_new (addresses, t, EXPIRES, t, t, "x", &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_assert_nonnull (strstr (error->message, "twice"));
  g_clear_error (&error);

  /* new_random(): a scoped or link-local address, too long a name. */
  g_ptr_array_add (ips, g_inet_address_new_from_string ("fe80::1"));
  g_assert_null (pm_pair_code_new_random (ips, 1, t, t, "x", 60, &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_assert_nonnull (strstr (error->message, "link-local"));
  g_clear_error (&error);
  g_ptr_array_set_size (ips, 0);
  g_ptr_array_add (ips, g_inet_address_new_from_string ("192.0.2.1"));
  g_assert_null (pm_pair_code_new_random (
    ips, 1, t, t, "a name that is much too long to fit in a pairing code, at 65 bytes", 60,
    &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_assert_nonnull (strstr (error->message, "longer than 64 bytes"));
  g_clear_error (&error);
  g_assert_null (pm_pair_code_new_random (ips, 0, t, t, "x", 60, &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD);
  g_assert_nonnull (strstr (error->message, "port 0"));
}

static void
test_parse_first (void)
{
  const char *const none[] = { NULL };
  const char *const one_bad[] = { "hello", NULL };
  const char *const mixed[] = { "https://example.com/", "pipermesh:pair?v=9", pinned_uri, NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (PmPairCode) pinned = pinned_code ();

  g_assert_null (pm_pair_code_parse_first (none, &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE);
  g_clear_error (&error);
  g_assert_null (pm_pair_code_parse_first (one_bad, &error));
  g_assert_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE);
  g_clear_error (&error);
  code = pm_pair_code_parse_first (mixed, &error);
  g_assert_no_error (error);
  g_assert_true (pm_pair_code_equal (code, pinned));
}

/* --- The fuzz seeds ------------------------------------------------------------------ */

/* tests/fuzz/corpus/pair-code: every ok-* seed reads back; every bad-* seed
 * is refused with the code its name starts with. */
static const struct {
  const char     *prefix;
  PmPairCodeError code;
} seed_codes[] = {
  { "bad-toolong-", PM_PAIR_CODE_ERROR_TOO_LONG },
  { "bad-prefix-", PM_PAIR_CODE_ERROR_NOT_PAIR_CODE },
  { "bad-syntax-", PM_PAIR_CODE_ERROR_SYNTAX },
  { "bad-version-", PM_PAIR_CODE_ERROR_VERSION },
  { "bad-unknown-", PM_PAIR_CODE_ERROR_UNKNOWN_FIELD },
  { "bad-duplicate-", PM_PAIR_CODE_ERROR_DUPLICATE_FIELD },
  { "bad-missing-", PM_PAIR_CODE_ERROR_MISSING_FIELD },
  { "bad-invalid-", PM_PAIR_CODE_ERROR_INVALID_FIELD },
};

static void
test_fuzz_seeds (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "fuzz", "corpus", "pair-code", NULL);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  unsigned    n_ok = 0, n_bad = 0;
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir_path, name, NULL);
      g_autofree char *contents = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (PmPairCode) code = NULL;
      size_t len;

      g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
      g_assert_cmpuint (strlen (contents), ==, len);
      code = pm_pair_code_parse (contents, &error);
      if (g_str_has_prefix (name, "ok-"))
        {
          if (code == NULL)
            g_error ("seed %s: %s", name, error->message);
          assert_round_trip (code);
          n_ok++;
          continue;
        }
      for (size_t i = 0;; i++)
        {
          if (i == G_N_ELEMENTS (seed_codes))
            g_error ("seed %s is neither ok-* nor bad-<reason>-*", name);
          if (!g_str_has_prefix (name, seed_codes[i].prefix))
            continue;
          if (code != NULL ||
              !g_error_matches (error, PM_PAIR_CODE_ERROR, (int) seed_codes[i].code))
            g_error ("seed %s: expected error %d, got %s", name, seed_codes[i].code,
                     error != NULL ? error->message : "success");
          break;
        }
      n_bad++;
    }
  g_test_message ("%u good seeds, %u bad seeds", n_ok, n_bad);
  g_assert_cmpuint (n_ok, >=, 4);
  g_assert_cmpuint (n_bad, >=, G_N_ELEMENTS (seed_codes));
}

/* --- QR codes --------------------------------------------------------------------- */

static char *
tmp_dir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("pm-test-qr-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_dir (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_assert_cmpint (g_unlink (path), ==, 0);
    }
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static PmQr *
pinned_qr (void)
{
  g_autoptr (GError) error = NULL;
  PmQr *qr = pm_qr_new (pinned_uri, &error);

  g_assert_no_error (error);
  g_assert_nonnull (qr);
  return qr;
}

/* The file holds exactly one QR code, and it is @expect. */
static void
assert_decodes_file (const char *path,
                     const char *expect)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) texts = pm_qr_decode_file (path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (texts);
  g_assert_cmpuint (g_strv_length (texts), ==, 1);
  g_assert_cmpstr (texts[0], ==, expect);
}

static void
assert_decodes_pixbuf (GdkPixbuf  *pixbuf,
                       const char *expect)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) texts = pm_qr_decode_pixbuf (pixbuf, &error);

  g_assert_no_error (error);
  g_assert_nonnull (texts);
  g_assert_cmpuint (g_strv_length (texts), ==, 1);
  g_assert_cmpstr (texts[0], ==, expect);
}

/* @pixbuf is the symbol drawn at @scale with its quiet zone: darker than
 * mid-grey where a module is dark, lighter elsewhere. With @centres_only,
 * only the pixel at the centre of each module is looked at (ImageMagick's
 * own SVG renderer fills each shape one pixel past its right and bottom
 * edges; librsvg and the PNG writer must match to the pixel). */
static void
assert_same_modules (GdkPixbuf  *pixbuf,
                     const PmQr *qr,
                     int         scale,
                     gboolean    centres_only)
{
  int            side = (pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE) * scale;
  int            rowstride = gdk_pixbuf_get_rowstride (pixbuf);
  int            channels = gdk_pixbuf_get_n_channels (pixbuf);
  const uint8_t *pixels = gdk_pixbuf_read_pixels (pixbuf);
  unsigned       wrong = 0;

  g_assert_cmpint (gdk_pixbuf_get_width (pixbuf), ==, side);
  g_assert_cmpint (gdk_pixbuf_get_height (pixbuf), ==, side);
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      {
        const uint8_t *p = pixels + y * rowstride + x * channels;
        gboolean       dark = pm_qr_is_dark (qr, x / scale - PM_QR_QUIET_ZONE,
                                             y / scale - PM_QR_QUIET_ZONE);

        if (centres_only && (x % scale != scale / 2 || y % scale != scale / 2))
          continue;
        if (channels == 4 && p[3] < 128)
          wrong += dark; /* transparent: light */
        else if ((p[0] < 128) != dark)
          wrong++;
      }
  g_assert_cmpuint (wrong, ==, 0);
}

static void
test_qr_symbol (void)
{
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (PmQr) largest = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *too_long = g_strnfill (3000, 'x');
  int              size = pm_qr_get_size (qr);

  g_test_message ("pinned code: %zu bytes, QR version %d, %d modules", strlen (pinned_uri),
                  pm_qr_get_version (qr), size);
  g_assert_cmpint (size, ==, 17 + 4 * pm_qr_get_version (qr));
  /* The finder patterns' corners; nothing outside the symbol is dark. */
  g_assert_true (pm_qr_is_dark (qr, 0, 0));
  g_assert_true (pm_qr_is_dark (qr, size - 1, 0));
  g_assert_true (pm_qr_is_dark (qr, 0, size - 1));
  g_assert_false (pm_qr_is_dark (qr, 7, 7));
  g_assert_false (pm_qr_is_dark (qr, -1, 0));
  g_assert_false (pm_qr_is_dark (qr, 0, size));

  g_assert_null (pm_qr_new (too_long, &error));
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_TOO_LONG);
  g_clear_error (&error);

  /* The longest pairing code fits with room to spare. */
  {
    g_autoptr (GString) big = g_string_new (pinned_uri);

    while (big->len < PM_PAIR_CODE_MAX_LEN)
      g_string_append_c (big, 'Z');
    largest = pm_qr_new (big->str, &error);
    g_assert_no_error (error);
    g_test_message ("%d bytes: QR version %d", PM_PAIR_CODE_MAX_LEN, pm_qr_get_version (largest));
    g_assert_cmpint (pm_qr_get_version (largest), <=, 30);
  }
}

static void
test_qr_png (void)
{
  g_autofree char *dir = tmp_dir ();
  g_autoptr (PmQr) qr = pinned_qr ();
  static const int scales[] = { 2, 3, 8 };

  for (size_t i = 0; i < G_N_ELEMENTS (scales); i++)
    {
      g_autofree char *name = g_strdup_printf ("code-%d.png", scales[i]);
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (GdkPixbuf) loaded = NULL;
      int side = (pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE) * scales[i];

      g_assert_true (pm_qr_save_png (qr, path, scales[i], &error));
      g_assert_no_error (error);
      loaded = gdk_pixbuf_new_from_file (path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (gdk_pixbuf_get_width (loaded), ==, side);
      assert_same_modules (loaded, qr, scales[i], FALSE);
      assert_decodes_file (path, pinned_uri);
    }

  /* A directory that does not exist. */
  {
    g_autofree char *path = g_build_filename (dir, "missing", "code.png", NULL);
    g_autoptr (GError) error = NULL;

    g_assert_false (pm_qr_save_png (qr, path, 4, &error));
    g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_WRITE);
    g_assert_nonnull (strstr (error->message, "code.png"));
  }
  remove_dir (dir);
}

/* The PNG's border: 4 modules of white on every side, then the dark corner
 * of a finder pattern. */
static void
test_qr_quiet_zone (void)
{
  g_autofree char *dir = tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "code.png", NULL);
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (GdkPixbuf) png = NULL;
  g_autoptr (GError) error = NULL;
  const int      scale = 5;
  const int      quiet = PM_QR_QUIET_ZONE * scale;
  const uint8_t *pixels;
  int            side, rowstride, channels;
  unsigned       light = 0;

  g_assert_true (pm_qr_save_png (qr, path, scale, &error));
  png = gdk_pixbuf_new_from_file (path, &error);
  g_assert_no_error (error);
  side = gdk_pixbuf_get_width (png);
  rowstride = gdk_pixbuf_get_rowstride (png);
  channels = gdk_pixbuf_get_n_channels (png);
  pixels = gdk_pixbuf_read_pixels (png);

  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      {
        const uint8_t *p = pixels + y * rowstride + x * channels;
        gboolean       in_border = x < quiet || y < quiet || x >= side - quiet || y >= side - quiet;

        /* Every pixel is pure black or pure white. */
        g_assert_true ((p[0] == 0 && p[1] == 0 && p[2] == 0) ||
                       (p[0] == 255 && p[1] == 255 && p[2] == 255));
        if (in_border)
          {
            g_assert_cmpuint (p[0], ==, 255);
            light++;
          }
      }
  g_assert_cmpuint (light, ==, (unsigned) (side * side - (side - 2 * quiet) * (side - 2 * quiet)));
  /* Just inside: the finder patterns' outer corners are dark. */
  g_assert_cmpuint (pixels[quiet * rowstride + quiet * channels], ==, 0);
  g_assert_cmpuint (pixels[quiet * rowstride + (side - quiet - 1) * channels], ==, 0);
  g_assert_cmpuint (pixels[(side - quiet - 1) * rowstride + quiet * channels], ==, 0);
  remove_dir (dir);
}

static gboolean
have_imagemagick (char **why)
{
  g_autofree char *out = NULL;
  g_autofree char *convert = g_find_program_in_path ("convert");
  const char      *argv[] = { "convert", "-version", NULL };
  int              status = 0;

  if (convert == NULL)
    {
      *why = g_strdup ("ImageMagick's convert is not installed (apt-get install imagemagick)");
      return FALSE;
    }
  argv[0] = convert;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                     NULL, &status, NULL) ||
      !g_spawn_check_wait_status (status, NULL) || out == NULL || strstr (out, "ImageMagick") == NULL)
    {
      *why = g_strdup_printf ("%s is not ImageMagick's convert (apt-get install imagemagick)", convert);
      return FALSE;
    }
  return TRUE;
}

static void
test_qr_svg_convert (void)
{
  g_autofree char *why = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *svg_path = NULL;
  g_autofree char *png_path = NULL;
  g_autofree char *svg = NULL;
  g_autofree char *err = NULL;
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (GError) error = NULL;
  int status = 0;

  /* The document itself: white background, viewBox in modules, the size. */
  svg = pm_qr_to_svg (qr, 4);
  {
    int              n = pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE;
    g_autofree char *view = g_strdup_printf ("viewBox=\"0 0 %d %d\"", n, n);
    g_autofree char *width = g_strdup_printf ("width=\"%d\"", n * 4);

    g_assert_true (g_str_has_prefix (svg, "<?xml"));
    g_assert_nonnull (strstr (svg, view));
    g_assert_nonnull (strstr (svg, width));
    g_assert_nonnull (strstr (svg, "fill=\"#ffffff\""));
    g_assert_nonnull (strstr (svg, "M4 4h7v1h-7z")); /* the top-left finder's top row */
  }

  if (!have_imagemagick (&why))
    {
      g_test_skip (why);
      return;
    }
  dir = tmp_dir ();
  svg_path = g_build_filename (dir, "code.svg", NULL);
  png_path = g_build_filename (dir, "code.png", NULL);
  g_assert_true (pm_qr_save_svg (qr, svg_path, 4, &error));
  g_assert_no_error (error);
  {
    const char *argv[] = { "convert", svg_path, png_path, NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                                 NULL, &err, &status, &error));
    g_assert_no_error (error);
    if (!g_spawn_check_wait_status (status, NULL))
      g_error ("convert %s failed: %s", svg_path, err);
  }
  assert_decodes_file (png_path, pinned_uri);
  {
    g_autoptr (GdkPixbuf) rendered = gdk_pixbuf_new_from_file (png_path, &error);

    g_assert_no_error (error);
    assert_same_modules (rendered, qr, 4, TRUE);
  }
  remove_dir (dir);
}

/* gdk-pixbuf reads SVG itself where librsvg's loader is installed. */
static void
test_qr_svg_pixbuf (void)
{
  g_autoptr (GSList) formats = gdk_pixbuf_get_formats ();
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (GError) error = NULL;
  gboolean have_svg = FALSE;

  for (GSList *l = formats; l != NULL; l = l->next)
    {
      g_autofree char *name = gdk_pixbuf_format_get_name (l->data);

      have_svg |= g_str_equal (name, "svg");
    }
  if (!have_svg)
    {
      g_test_skip ("gdk-pixbuf has no SVG loader here (librsvg2-common)");
      return;
    }
  dir = tmp_dir ();
  path = g_build_filename (dir, "code.svg", NULL);
  g_assert_true (pm_qr_save_svg (qr, path, 3, &error));
  assert_decodes_file (path, pinned_uri);
  {
    g_autoptr (GdkPixbuf) rendered = gdk_pixbuf_new_from_file (path, &error);

    g_assert_no_error (error);
    assert_same_modules (rendered, qr, 3, FALSE);
  }
  remove_dir (dir);
}

static void
test_qr_jpeg (void)
{
  g_autofree char *dir = tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "code.jpg", NULL);
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (GdkPixbuf) pixbuf = pm_qr_to_pixbuf (qr, 4);
  g_autoptr (GError) error = NULL;

  g_assert_true (gdk_pixbuf_save (pixbuf, path, "jpeg", &error, "quality", "60", NULL));
  g_assert_no_error (error);
  assert_decodes_file (path, pinned_uri);
  remove_dir (dir);
}

/* Reads pm_qr_to_text() back into modules: TRUE for each half cell the
 * blocks draw. */
static gboolean *
read_text_modules (const char *text,
                   int         n,
                   gboolean    ansi)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  gboolean *drawn = g_new0 (gboolean, (size_t) (n + 1) * (size_t) n);

  g_assert_cmpuint (g_strv_length (lines), ==, (unsigned) (n + 1) / 2 + 1);
  g_assert_cmpstr (lines[(n + 1) / 2], ==, "");
  for (int row = 0; row < (n + 1) / 2; row++)
    {
      const char *p = lines[row];
      int         col = 0;

      if (ansi)
        {
          g_assert_true (g_str_has_prefix (p, "\033[40;37;1m"));
          g_assert_true (g_str_has_suffix (p, "\033[0m"));
          p += strlen ("\033[40;37;1m");
        }
      for (; *p != '\0' && *p != '\033'; p = g_utf8_next_char (p), col++)
        {
          gunichar c = g_utf8_get_char (p);
          gboolean upper = c == 0x2580 || c == 0x2588; /* ▀ █ */
          gboolean lower = c == 0x2584 || c == 0x2588; /* ▄ █ */

          g_assert_true (c == ' ' || c == 0x2580 || c == 0x2584 || c == 0x2588);
          g_assert_cmpint (col, <, n);
          drawn[2 * row * n + col] = upper;
          drawn[(2 * row + 1) * n + col] = lower;
        }
      g_assert_cmpint (col, ==, n);
    }
  return drawn;
}

static void
test_qr_text (void)
{
  g_autoptr (PmQr) qr = pinned_qr ();
  int n = pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE;

  for (int style = PM_QR_TEXT_ANSI; style <= PM_QR_TEXT_DARK_ON_LIGHT; style++)
    {
      g_autofree char     *text = pm_qr_to_text (qr, style);
      gboolean             draw_dark = style == PM_QR_TEXT_DARK_ON_LIGHT;
      g_autofree gboolean *drawn = read_text_modules (text, n, style == PM_QR_TEXT_ANSI);
      g_autoptr (GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, n * 4, n * 4);

      /* Exactly the symbol and its quiet zone; the half row below is background. */
      for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
          {
            gboolean dark = pm_qr_is_dark (qr, x - PM_QR_QUIET_ZONE, y - PM_QR_QUIET_ZONE);

            g_assert_cmpint (drawn[y * n + x], ==, dark == draw_dark);
          }
      for (int x = 0; x < n; x++)
        g_assert_false (drawn[n * n + x]);

      /* Drawn as a terminal shows it, it scans. */
      gdk_pixbuf_fill (pixbuf, 0xffffffff);
      for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
          if (drawn[y * n + x] == draw_dark)
            {
              g_autoptr (GdkPixbuf) block = gdk_pixbuf_new_subpixbuf (pixbuf, x * 4, y * 4, 4, 4);

              gdk_pixbuf_fill (block, 0x000000ff);
            }
      assert_decodes_pixbuf (pixbuf, pinned_uri);
      if (style == PM_QR_TEXT_DARK_ON_LIGHT && g_test_verbose ())
        g_printerr ("%s", text);
    }
}

static void
append_chunk (GByteArray    *png,
              const char    *type,
              const uint8_t *data,
              uint32_t       len)
{
  uint8_t  be[4];
  uint32_t crc;

  be[0] = (uint8_t) (len >> 24), be[1] = (uint8_t) (len >> 16);
  be[2] = (uint8_t) (len >> 8), be[3] = (uint8_t) len;
  g_byte_array_append (png, be, 4);
  g_byte_array_append (png, (const uint8_t *) type, 4);
  g_byte_array_append (png, data, len);
  crc = (uint32_t) crc32 (crc32 (0, (const uint8_t *) type, 4), data, len);
  be[0] = (uint8_t) (crc >> 24), be[1] = (uint8_t) (crc >> 16);
  be[2] = (uint8_t) (crc >> 8), be[3] = (uint8_t) crc;
  g_byte_array_append (png, be, 4);
}

/* A PNG of @width × @height (8-bit RGB) by its header, with one row of
 * pixels: enough for gdk-pixbuf to say its size, not to load it. */
static void
write_png_header (const char *path,
                  uint32_t    width,
                  uint32_t    height)
{
  static const uint8_t signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  g_autoptr (GByteArray) png = g_byte_array_new ();
  g_autofree uint8_t *row = g_malloc0 (1 + (size_t) width * 3);
  g_autofree uint8_t *deflated = NULL;
  uLongf              deflated_len = compressBound (1 + width * 3);
  uint8_t             ihdr[13] = { 0 };

  ihdr[0] = (uint8_t) (width >> 24), ihdr[1] = (uint8_t) (width >> 16);
  ihdr[2] = (uint8_t) (width >> 8), ihdr[3] = (uint8_t) width;
  ihdr[4] = (uint8_t) (height >> 24), ihdr[5] = (uint8_t) (height >> 16);
  ihdr[6] = (uint8_t) (height >> 8), ihdr[7] = (uint8_t) height;
  ihdr[8] = 8, ihdr[9] = 2; /* 8 bits, RGB */
  deflated = g_malloc (deflated_len);
  g_assert_cmpint (compress (deflated, &deflated_len, row, 1 + width * 3), ==, Z_OK);
  g_byte_array_append (png, signature, sizeof signature);
  append_chunk (png, "IHDR", ihdr, sizeof ihdr);
  append_chunk (png, "IDAT", deflated, (uint32_t) deflated_len);
  g_assert_true (g_file_set_contents (path, (const char *) png->data, png->len, NULL));
}

static void
test_qr_no_code (void)
{
  g_autofree char *dir = tmp_dir ();
  g_autofree char *blank = g_build_filename (dir, "blank.png", NULL);
  g_autofree char *noise = g_build_filename (dir, "noise.png", NULL);
  g_autofree char *text = g_build_filename (dir, "notes.png", NULL);
  g_autofree char *huge = g_build_filename (dir, "huge.png", NULL);
  g_autofree char *missing = g_build_filename (dir, "missing.png", NULL);
  g_autoptr (GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 300, 200);
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) texts = NULL;

  gdk_pixbuf_fill (pixbuf, 0xffffffff);
  g_assert_true (gdk_pixbuf_save (pixbuf, blank, "png", NULL, NULL));
  texts = pm_qr_decode_file (blank, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_NOT_FOUND);
  g_assert_true (g_str_has_prefix (error->message, "No QR code found in "));
  g_assert_true (g_str_has_suffix (error->message, "blank.png"));
  g_clear_error (&error);

  texts = pm_qr_decode_pixbuf (pixbuf, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "No QR code found in the picture");
  g_clear_error (&error);

  for (int y = 0; y < 200; y++)
    for (int x = 0; x < 300; x++)
      memset (gdk_pixbuf_get_pixels (pixbuf) + y * gdk_pixbuf_get_rowstride (pixbuf) + x * 3,
              g_rand_boolean (rand) ? 0 : 255, 3);
  g_assert_true (gdk_pixbuf_save (pixbuf, noise, "png", NULL, NULL));
  texts = pm_qr_decode_file (noise, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (g_file_set_contents (text, "just some text\n", -1, NULL));
  texts = pm_qr_decode_file (text, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_READ);
  g_assert_nonnull (strstr (error->message, "is not a picture"));
  g_clear_error (&error);

  texts = pm_qr_decode_file (missing, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_READ);
  g_assert_nonnull (strstr (error->message, "missing.png"));
  g_clear_error (&error);

  /* 10000 × 10000 pixels by its header: refused before its pixels are read. */
  write_png_header (huge, 10000, 10000);
  texts = pm_qr_decode_file (huge, &error);
  g_assert_null (texts);
  g_assert_error (error, PM_QR_ERROR, PM_QR_ERROR_READ);
  g_assert_nonnull (strstr (error->message, "too large"));
  g_clear_error (&error);
  remove_dir (dir);
}

/* Two codes in one picture: both are read, and the pairing code is picked. */
static void
test_qr_several (void)
{
  g_autoptr (PmQr) qr = pinned_qr ();
  g_autoptr (PmQr) other = pm_qr_new ("https://example.com/not-a-pairing-code", NULL);
  g_autoptr (GdkPixbuf) a = pm_qr_to_pixbuf (qr, 3);
  g_autoptr (GdkPixbuf) b = pm_qr_to_pixbuf (other, 3);
  g_autoptr (GdkPixbuf) both = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (PmPairCode) pinned = pinned_code ();
  g_auto (GStrv) texts = NULL;
  int wa = gdk_pixbuf_get_width (a), wb = gdk_pixbuf_get_width (b);

  both = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, wb + wa, MAX (wa, wb));
  gdk_pixbuf_fill (both, 0xffffffff);
  gdk_pixbuf_copy_area (b, 0, 0, wb, wb, both, 0, 0);
  gdk_pixbuf_copy_area (a, 0, 0, wa, wa, both, wb, 0);
  texts = pm_qr_decode_pixbuf (both, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (texts), ==, 2);
  g_assert_true (g_strv_contains ((const char *const *) texts, pinned_uri));
  g_assert_true (g_strv_contains ((const char *const *) texts, "https://example.com/not-a-pairing-code"));
  code = pm_pair_code_parse_first ((const char *const *) texts, &error);
  g_assert_no_error (error);
  g_assert_true (pm_pair_code_equal (code, pinned));
}

/* A transparent background counts as white. */
static void
test_qr_alpha (void)
{
  g_autoptr (PmQr) qr = pinned_qr ();
  int n = pm_qr_get_size (qr) + 2 * PM_QR_QUIET_ZONE, scale = 3;
  g_autoptr (GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, n * scale, n * scale);

  gdk_pixbuf_fill (pixbuf, 0x00000000); /* transparent black */
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++)
      if (pm_qr_is_dark (qr, x - PM_QR_QUIET_ZONE, y - PM_QR_QUIET_ZONE))
        {
          g_autoptr (GdkPixbuf) block = gdk_pixbuf_new_subpixbuf (pixbuf, x * scale, y * scale,
                                                                  scale, scale);

          gdk_pixbuf_fill (block, 0x000000ff);
        }
  assert_decodes_pixbuf (pixbuf, pinned_uri);
}

/* --- The camera, with none ------------------------------------------------------- */

typedef struct {
  gboolean done;
  char    *text;
  GError  *error;
} ScanResult;

static void
scan_done (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  ScanResult *r = user_data;

  r->text = pm_qr_scan_camera_finish (result, &r->error);
  r->done = TRUE;
}

static void
scan (const char   *device,
      GCancellable *cancellable,
      ScanResult   *r)
{
  memset (r, 0, sizeof *r);
  pm_qr_scan_camera_async (device, cancellable, scan_done, r);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &r->done, 10000));
}

static void
test_camera_none (void)
{
  g_auto (GStrv) cameras = pm_qr_list_cameras ();
  ScanResult r;

  g_assert_nonnull (cameras);
  /* A path that is not there, and one that is not a camera: never a camera. */
  scan ("/nonexistent/video0", NULL, &r);
  g_assert_null (r.text);
  g_assert_error (r.error, PM_QR_ERROR, PM_QR_ERROR_NO_CAMERA);
  g_assert_cmpstr (r.error->message, ==, "No camera found at /nonexistent/video0");
  g_clear_error (&r.error);

  scan ("/dev/null", NULL, &r);
  g_assert_null (r.text);
  g_assert_error (r.error, PM_QR_ERROR, PM_QR_ERROR_CAMERA);
  g_assert_true (g_str_has_prefix (r.error->message, "Could not open the camera /dev/null"));
  g_test_message ("%s", r.error->message);
  g_clear_error (&r.error);

  if (cameras[0] != NULL)
    {
      g_autofree char *why = g_strdup_printf ("this machine has a camera (%s)", cameras[0]);

      g_test_skip (why);
      return;
    }
  scan (NULL, NULL, &r);
  g_assert_null (r.text);
  g_assert_error (r.error, PM_QR_ERROR, PM_QR_ERROR_NO_CAMERA);
  g_assert_cmpstr (r.error->message, ==, "No camera found");
  g_clear_error (&r.error);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pair-code/pinned", test_pinned);
  g_test_add_func ("/pair-code/boxed", test_boxed);
  g_test_add_func ("/pair-code/random", test_random);
  g_test_add_func ("/pair-code/largest", test_largest);
  g_test_add_func ("/pair-code/names", test_names);
  g_test_add_func ("/pair-code/any-order", test_any_order);
  g_test_add_func ("/pair-code/refuse/version", test_refuse_version);
  g_test_add_func ("/pair-code/refuse/missing", test_refuse_missing);
  g_test_add_func ("/pair-code/refuse/duplicate", test_refuse_duplicate);
  g_test_add_func ("/pair-code/refuse/base64", test_refuse_base64);
  g_test_add_func ("/pair-code/refuse/address", test_refuse_address);
  g_test_add_func ("/pair-code/refuse/expiry", test_refuse_expiry);
  g_test_add_func ("/pair-code/refuse/name", test_refuse_name);
  g_test_add_func ("/pair-code/refuse/syntax", test_refuse_syntax);
  g_test_add_func ("/pair-code/refuse/oversized", test_refuse_oversized);
  g_test_add_func ("/pair-code/refuse/truncated", test_refuse_truncated);
  g_test_add_func ("/pair-code/refuse/garbage", test_refuse_garbage);
  g_test_add_func ("/pair-code/refuse/new", test_refuse_new);
  g_test_add_func ("/pair-code/parse-first", test_parse_first);
  g_test_add_func ("/pair-code/fuzz-seeds", test_fuzz_seeds);
  g_test_add_func ("/qr/symbol", test_qr_symbol);
  g_test_add_func ("/qr/png", test_qr_png);
  g_test_add_func ("/qr/quiet-zone", test_qr_quiet_zone);
  g_test_add_func ("/qr/svg-convert", test_qr_svg_convert);
  g_test_add_func ("/qr/svg-pixbuf", test_qr_svg_pixbuf);
  g_test_add_func ("/qr/jpeg", test_qr_jpeg);
  g_test_add_func ("/qr/text", test_qr_text);
  g_test_add_func ("/qr/no-code", test_qr_no_code);
  g_test_add_func ("/qr/several", test_qr_several);
  g_test_add_func ("/qr/alpha", test_qr_alpha);
  g_test_add_func ("/qr/camera-none", test_camera_none);

  return g_test_run ();
}
