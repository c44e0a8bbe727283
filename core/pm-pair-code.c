/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-pair-code"

#include "pm-pair-code.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#include "pm-address.h"
#include "pm-noise.h"

/* clang-format off */
G_DEFINE_QUARK (pm-pair-code-error-quark, pm_pair_code_error)
/* clang-format on */

G_DEFINE_BOXED_TYPE (PmPairCode, pm_pair_code, pm_pair_code_copy, pm_pair_code_free)

/* Unpadded base64url of 32 bytes. */
#define B64_32_LEN 43
/* Longest expiry text: PM_PAIR_CODE_MAX_EXPIRY has 12 digits. */
#define EXPIRY_MAX_DIGITS 12

/* What a field holds, for messages. */
static const char *
field_name (char key)
{
  switch (key)
    {
    case 'v':
      return "“v” (version)";
    case 'a':
      return "“a” (address)";
    case 't':
      return "“t” (token)";
    case 'e':
      return "“e” (expiry)";
    case 'c':
      return "“c” (certificate hash)";
    case 'k':
      return "“k” (public key)";
    case 'n':
      return "“n” (name)";
    default:
      g_assert_not_reached ();
    }
}

/* An INVALID_FIELD error naming the field. */
#define INVALID(error, key, format, ...)                                    \
  g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_INVALID_FIELD, \
               "Invalid pairing code: field %s " format, field_name (key), ##__VA_ARGS__)

/* --- Field values ------------------------------------------------------------ */

static gboolean
is_bidi_control (gunichar c)
{
  /* LRE RLE PDF LRO RLO, LRI RLI FSI PDI: they could make a name display as
   * another one. (LRM, RLM and ALM are format marks, harmless alone.) */
  return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

static gboolean
check_name (const char *name,
            size_t      len,
            GError    **error)
{
  if (len == 0)
    {
      INVALID (error, 'n', "is empty");
      return FALSE;
    }
  if (len > PM_PAIR_CODE_MAX_NAME_LEN)
    {
      INVALID (error, 'n', "is longer than %d bytes", PM_PAIR_CODE_MAX_NAME_LEN);
      return FALSE;
    }
  if (!g_utf8_validate_len (name, len, NULL))
    {
      INVALID (error, 'n', "is not valid UTF-8");
      return FALSE;
    }
  for (const char *p = name; p < name + len; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_iscntrl (c))
        {
          INVALID (error, 'n', "holds a control character (U+%04X)", c);
          return FALSE;
        }
      if (is_bidi_control (c))
        {
          INVALID (error, 'n', "holds a bidirectional control character (U+%04X)", c);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
check_address (GInetSocketAddress *address,
               GError            **error)
{
  g_autofree char *text = NULL;
  GInetAddress    *ip;
  const uint8_t   *bytes;
  const char      *problem = NULL;

  if (!G_IS_INET_SOCKET_ADDRESS (address))
    {
      INVALID (error, 'a', "is not an IP address and port");
      return FALSE;
    }
  ip = g_inet_socket_address_get_address (address);
  bytes = g_inet_address_to_bytes (ip);
  if (g_inet_socket_address_get_port (address) == 0)
    problem = "has port 0";
  else if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV6 &&
           (g_inet_socket_address_get_scope_id (address) != 0 ||
            g_inet_socket_address_get_flowinfo (address) != 0))
    problem = "has an IPv6 scope id or flow label";
  else if (g_inet_address_get_is_any (ip))
    problem = "is unspecified";
  else if (g_inet_address_get_is_multicast (ip))
    problem = "is multicast";
  else if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV4 &&
           bytes[0] == 255 && bytes[1] == 255 && bytes[2] == 255 && bytes[3] == 255)
    problem = "is the broadcast address";
  else if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV6 &&
           g_inet_address_get_is_link_local (ip))
    problem = "is IPv6 link-local (a pairing code cannot name its interface)";
  else if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV6 &&
           memcmp (bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
    problem = "is IPv4-mapped IPv6 (write it as IPv4)";
  if (problem == NULL)
    return TRUE;

  text = pm_address_to_string (address);
  INVALID (error, 'a', "%s %s", text, problem);
  return FALSE;
}

/* Appends @address to @addresses (taking it) unless there are already
 * PM_PAIR_CODE_MAX_ADDRESSES or it is one of them. */
static gboolean
add_address (GPtrArray          *addresses,
             GInetSocketAddress *address,
             GError            **error)
{
  g_autoptr (GInetSocketAddress) owned = address;

  if (!check_address (address, error))
    return FALSE;
  if (addresses->len == PM_PAIR_CODE_MAX_ADDRESSES)
    {
      INVALID (error, 'a', "is given more than %d times",
               PM_PAIR_CODE_MAX_ADDRESSES);
      return FALSE;
    }
  for (unsigned i = 0; i < addresses->len; i++)
    {
      GInetSocketAddress *other = g_ptr_array_index (addresses, i);

      if (g_inet_socket_address_get_port (other) == g_inet_socket_address_get_port (address) &&
          g_inet_address_equal (g_inet_socket_address_get_address (other),
                                g_inet_socket_address_get_address (address)))
        {
          g_autofree char *text = pm_address_to_string (address);

          INVALID (error, 'a', "gives %s twice", text);
          return FALSE;
        }
    }
  g_ptr_array_add (addresses, g_steal_pointer (&owned));
  return TRUE;
}

static gboolean
check_expiry (int64_t  expires,
              GError **error)
{
  if (expires < 1 || expires > PM_PAIR_CODE_MAX_EXPIRY)
    {
      INVALID (error, 'e', "must be a unix time from 1 to %" PRId64,
               PM_PAIR_CODE_MAX_EXPIRY);
      return FALSE;
    }
  return TRUE;
}

/* --- The struct ---------------------------------------------------------------- */

static PmPairCode *
pair_code_alloc (void)
{
  PmPairCode *code = g_new0 (PmPairCode, 1);

  code->addresses = g_ptr_array_new_with_free_func (g_object_unref);
  return code;
}

/**
 * pm_pair_code_free:
 * Frees @code and wipes its token (and everything else it held).
 */
void
pm_pair_code_free (PmPairCode *code)
{
  if (code == NULL)
    return;
  g_clear_pointer (&code->addresses, g_ptr_array_unref);
  g_free (code->name);
  sodium_memzero (code, sizeof *code);
  g_free (code);
}

/**
 * pm_pair_code_new:
 * @addresses: (element-type GInetSocketAddress): where the host listens
 * @token: the bearer token
 * @expires: unix time (seconds) after which the code is refused
 * @cert_spki_sha256: SHA-256 of the host's TLS certificate's SubjectPublicKeyInfo
 * @static_public: the host's Noise static public key
 * @name: the host's name, as people should see it
 *
 * A code with exactly these fields (tests, and codes read back). Every field
 * is checked as pm_pair_code_parse() checks it, so any code that exists can
 * be written and read back.
 *
 * Returns: (transfer full) (nullable): the code, or %NULL with @error
 * (PM_PAIR_CODE_ERROR_INVALID_FIELD, or MISSING_FIELD for no address)
 */
PmPairCode *
pm_pair_code_new (GPtrArray    *addresses,
                  const uint8_t token[PM_PAIR_CODE_TOKEN_LEN],
                  int64_t       expires,
                  const uint8_t cert_spki_sha256[PM_PAIR_CODE_HASH_LEN],
                  const uint8_t static_public[PM_PAIR_CODE_KEY_LEN],
                  const char   *name,
                  GError      **error)
{
  g_autoptr (PmPairCode) code = NULL;

  g_return_val_if_fail (addresses != NULL, NULL);
  g_return_val_if_fail (token != NULL, NULL);
  g_return_val_if_fail (cert_spki_sha256 != NULL, NULL);
  g_return_val_if_fail (static_public != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  code = pair_code_alloc ();
  if (addresses->len == 0)
    {
      g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_MISSING_FIELD,
                   "Invalid pairing code: field %s is missing", field_name ('a'));
      return NULL;
    }
  for (unsigned i = 0; i < addresses->len; i++)
    {
      GInetSocketAddress *a = g_ptr_array_index (addresses, i);

      if (!add_address (code->addresses, G_IS_INET_SOCKET_ADDRESS (a) ? g_object_ref (a) : NULL,
                        error))
        return NULL;
    }
  if (!check_expiry (expires, error) || !check_name (name, strlen (name), error))
    return NULL;
  memcpy (code->token, token, PM_PAIR_CODE_TOKEN_LEN);
  code->expires = expires;
  memcpy (code->cert_spki_sha256, cert_spki_sha256, PM_PAIR_CODE_HASH_LEN);
  memcpy (code->static_public, static_public, PM_PAIR_CODE_KEY_LEN);
  code->name = g_strdup (name);
  return g_steal_pointer (&code);
}

/**
 * pm_pair_code_new_random:
 * @addresses: (element-type GInetAddress): the host's LAN addresses, in order of preference
 * @port: the port of the pairing exchange on all of them
 * @cert_spki_sha256: SHA-256 of the host's TLS certificate's SubjectPublicKeyInfo
 * @static_public: the host's Noise static public key
 * @name: the host's name
 * @lifetime_s: seconds from now until the code expires (PM_PAIR_CODE_LIFETIME_S)
 *
 * A new code with a fresh random token (libsodium's randombytes_buf()) that
 * expires @lifetime_s seconds from now (wall clock). The host keeps it to
 * check the token it is shown (pm_pair_code_token_equal()) and forgets it
 * after the first use or at expiry.
 *
 * Returns: (transfer full) (nullable): the code, or %NULL with @error when a
 * field would not be valid (an address a code cannot carry, a name that is
 * too long or holds control characters, ...)
 */
PmPairCode *
pm_pair_code_new_random (GPtrArray    *addresses,
                         uint16_t      port,
                         const uint8_t cert_spki_sha256[PM_PAIR_CODE_HASH_LEN],
                         const uint8_t static_public[PM_PAIR_CODE_KEY_LEN],
                         const char   *name,
                         int64_t       lifetime_s,
                         GError      **error)
{
  g_autoptr (GPtrArray) socket_addresses = NULL;
  uint8_t     token[PM_PAIR_CODE_TOKEN_LEN];
  PmPairCode *code;
  int64_t     now = g_get_real_time () / G_USEC_PER_SEC;

  g_return_val_if_fail (addresses != NULL, NULL);
  g_return_val_if_fail (lifetime_s > 0 && lifetime_s <= PM_PAIR_CODE_MAX_EXPIRY - now, NULL);

  socket_addresses = g_ptr_array_new_with_free_func (g_object_unref);
  for (unsigned i = 0; i < addresses->len; i++)
    {
      GInetAddress *ip = g_ptr_array_index (addresses, i);

      g_return_val_if_fail (G_IS_INET_ADDRESS (ip), NULL);
      g_ptr_array_add (socket_addresses, g_inet_socket_address_new (ip, port));
    }
  pm_noise_ensure_init ();
  randombytes_buf (token, sizeof token);
  code = pm_pair_code_new (socket_addresses, token, now + lifetime_s, cert_spki_sha256,
                           static_public, name, error);
  sodium_memzero (token, sizeof token);
  return code;
}

/**
 * pm_pair_code_copy:
 * Returns: (transfer full): a copy of @code (token included)
 */
PmPairCode *
pm_pair_code_copy (const PmPairCode *code)
{
  PmPairCode *copy;

  g_return_val_if_fail (code != NULL, NULL);

  copy = pair_code_alloc ();
  for (unsigned i = 0; i < code->addresses->len; i++)
    g_ptr_array_add (copy->addresses, g_object_ref (g_ptr_array_index (code->addresses, i)));
  memcpy (copy->token, code->token, PM_PAIR_CODE_TOKEN_LEN);
  copy->expires = code->expires;
  memcpy (copy->cert_spki_sha256, code->cert_spki_sha256, PM_PAIR_CODE_HASH_LEN);
  memcpy (copy->static_public, code->static_public, PM_PAIR_CODE_KEY_LEN);
  copy->name = g_strdup (code->name);
  return copy;
}

/* --- Writing ------------------------------------------------------------------- */

static void
append_base64url (GString       *out,
                  const uint8_t *bytes)
{
  char b64[sodium_base64_ENCODED_LEN (32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

  sodium_bin2base64 (b64, sizeof b64, bytes, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  g_assert (strlen (b64) == B64_32_LEN);
  g_string_append (out, b64);
  sodium_memzero (b64, sizeof b64);
}

/**
 * pm_pair_code_to_uri:
 *
 * The code as text, in the canonical form of docs/PROTOCOL.md §10: fields in
 * the order v, a…, t, e, c, k, n; IPv6 brackets and every byte of the name
 * outside A–Z a–z 0–9 - . _ ~ percent-encoded (upper-case hex). At most
 * PM_PAIR_CODE_MAX_LEN bytes. It holds the token: wipe it when done if you
 * can (sodium_memzero).
 *
 * Returns: (transfer full): the URI
 */
char *
pm_pair_code_to_uri (const PmPairCode *code)
{
  GString         *out;
  g_autofree char *name = NULL;

  g_return_val_if_fail (code != NULL, NULL);
  g_return_val_if_fail (code->addresses != NULL && code->addresses->len > 0 &&
                          code->addresses->len <= PM_PAIR_CODE_MAX_ADDRESSES,
                        NULL);
  g_return_val_if_fail (check_expiry (code->expires, NULL), NULL);
  g_return_val_if_fail (code->name != NULL && check_name (code->name, strlen (code->name), NULL),
                        NULL);

  /* Sized once: a GString that grew would leave copies of the token behind
   * in freed memory. */
  out = g_string_sized_new (PM_PAIR_CODE_MAX_LEN + 1);
  g_string_append (out, PM_PAIR_CODE_PREFIX "v=1");
  for (unsigned i = 0; i < code->addresses->len; i++)
    {
      GInetSocketAddress *a = g_ptr_array_index (code->addresses, i);
      g_autofree char    *text = NULL;
      g_autofree char    *escaped = NULL;

      if (!check_address (a, NULL))
        {
          g_critical ("pm_pair_code_to_uri: address %u cannot be in a pairing code", i);
          g_string_free (out, TRUE);
          return NULL;
        }
      text = pm_address_to_string (a);
      escaped = g_uri_escape_string (text, ":", FALSE);
      g_string_append_printf (out, "&a=%s", escaped);
    }
  g_string_append (out, "&t=");
  append_base64url (out, code->token);
  g_string_append_printf (out, "&e=%" PRId64 "&c=", code->expires);
  append_base64url (out, code->cert_spki_sha256);
  g_string_append (out, "&k=");
  append_base64url (out, code->static_public);
  name = g_uri_escape_string (code->name, NULL, FALSE);
  g_string_append_printf (out, "&n=%s", name);
  g_assert (out->len <= PM_PAIR_CODE_MAX_LEN);
  return g_string_free (out, FALSE);
}

/* --- Parsing --------------------------------------------------------------------- */

typedef struct {
  const char *key;
  size_t      key_len;
  const char *value; /* NULL: no "=" */
  size_t      value_len;
} Field;

/* A character a query may hold as it is (RFC 3986: pchar / "/" / "?"),
 * "%" aside; "&" separates fields and "=" a key from its value. */
static gboolean
is_query_char (char c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("-._~!$'()*+,;=:@/?", c) != NULL);
}

/* A key we would show in a message as it is. */
static gboolean
is_showable_key (const char *key,
                 size_t      len)
{
  if (len == 0 || len > 16)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum (key[i]) && key[i] != '_' && key[i] != '-' && key[i] != '.')
      return FALSE;
  return TRUE;
}

/* Checks the characters of one key or value: query characters and "%XX". */
static gboolean
check_chars (const char *text,
             size_t      len,
             const char *what,
             GError    **error)
{
  for (size_t i = 0; i < len; i++)
    {
      char c = text[i];

      if (c == '%')
        {
          if (i + 2 >= len || !g_ascii_isxdigit (text[i + 1]) || !g_ascii_isxdigit (text[i + 2]))
            {
              g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_SYNTAX,
                           "Invalid pairing code: %s has a “%%” that is not followed by two hex digits",
                           what);
              return FALSE;
            }
          i += 2;
        }
      else if (!is_query_char (c))
        {
          if (g_ascii_isgraph (c))
            g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_SYNTAX,
                         "Invalid pairing code: %s holds “%c”, which a URI must percent-encode",
                         what, c);
          else
            g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_SYNTAX,
                         "Invalid pairing code: %s holds byte 0x%02x, which a URI must percent-encode",
                         what, (unsigned) (uint8_t) c);
          return FALSE;
        }
    }
  return TRUE;
}

/* Splits the part after the prefix at "&" and each field at its first "=". */
static GArray *
split_fields (const char *query)
{
  GArray     *fields = g_array_new (FALSE, TRUE, sizeof (Field));
  const char *p = query;

  for (;;)
    {
      const char *end = strchr (p, '&');
      Field       f = { 0 };
      const char *eq;

      if (end == NULL)
        end = p + strlen (p);
      eq = memchr (p, '=', (size_t) (end - p));
      f.key = p;
      if (eq != NULL)
        {
          f.key_len = (size_t) (eq - p);
          f.value = eq + 1;
          f.value_len = (size_t) (end - eq - 1);
        }
      else
        f.key_len = (size_t) (end - p);
      g_array_append_val (fields, f);
      if (*end == '\0')
        break;
      p = end + 1;
    }
  return fields;
}

static gboolean
is_decimal (const char *text,
            size_t      len)
{
  if (len == 0 || (len > 1 && text[0] == '0'))
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isdigit (text[i]))
      return FALSE;
  return TRUE;
}

/* A newer PiperMesh's code (v=2 or more) gets its own message, whatever
 * else it holds. */
static gboolean
check_version_first (GArray  *fields,
                     GError **error)
{
  for (unsigned i = 0; i < fields->len; i++)
    {
      const Field *f = &g_array_index (fields, Field, i);

      if (f->key_len == 1 && f->key[0] == 'v' && f->value != NULL &&
          is_decimal (f->value, f->value_len) && !(f->value_len == 1 && f->value[0] <= '1'))
        {
          g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_VERSION,
                       "This pairing code was made by a newer PiperMesh (code version %.*s): "
                       "update this one",
                       (int) MIN (f->value_len, 12), f->value);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
parse_base64url_32 (char        key,
                    const char *value,
                    size_t      len,
                    uint8_t     out[32],
                    GError    **error)
{
  size_t bin_len = 0;

  if (len != B64_32_LEN ||
      sodium_base642bin (out, 32, value, len, NULL, &bin_len, NULL,
                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      bin_len != 32)
    {
      sodium_memzero (out, 32);
      INVALID (error, key, "must be 32 bytes in unpadded base64url (%d characters)", B64_32_LEN);
      return FALSE;
    }
  return TRUE;
}

/* Percent-decodes a value; NULL if a "%XX" gives a NUL byte. */
static char *
unescape (const char *value,
          size_t      len,
          char        key,
          GError    **error)
{
  char *decoded = g_uri_unescape_segment (value, value + len, NULL);

  if (decoded == NULL)
    INVALID (error, key, "holds a percent-encoded NUL byte");
  return decoded;
}

static gboolean
parse_field (PmPairCode  *code,
             const Field *f,
             GError     **error)
{
  switch (f->key[0])
    {
    case 'v':
      if (f->value_len != 1 || f->value[0] != '1')
        {
          INVALID (error, 'v', "must be 1");
          return FALSE;
        }
      return TRUE;

      case 'a': {
        g_autofree char    *decoded = unescape (f->value, f->value_len, 'a', error);
        GInetSocketAddress *address;

        if (decoded == NULL)
          return FALSE;
        address = pm_address_parse (decoded, TRUE);
        if (address == NULL)
          {
            INVALID (error, 'a', "must be IPv4:PORT or %%5BIPv6%%5D:PORT (IPv6 in brackets)");
            return FALSE;
          }
        return add_address (code->addresses, address, error);
      }

    case 't':
      return parse_base64url_32 ('t', f->value, f->value_len, code->token, error);

      case 'e': {
        char digits[EXPIRY_MAX_DIGITS + 1];

        if (!is_decimal (f->value, f->value_len) || f->value_len > EXPIRY_MAX_DIGITS)
          {
            INVALID (error, 'e', "must be a unix time in decimal digits");
            return FALSE;
          }
        memcpy (digits, f->value, f->value_len);
        digits[f->value_len] = '\0';
        code->expires = g_ascii_strtoll (digits, NULL, 10);
        return check_expiry (code->expires, error);
      }

    case 'c':
      return parse_base64url_32 ('c', f->value, f->value_len, code->cert_spki_sha256, error);

    case 'k':
      return parse_base64url_32 ('k', f->value, f->value_len, code->static_public, error);

      case 'n': {
        g_autofree char *decoded = unescape (f->value, f->value_len, 'n', error);

        if (decoded == NULL || !check_name (decoded, strlen (decoded), error))
          return FALSE;
        code->name = g_steal_pointer (&decoded);
        return TRUE;
      }

    default:
      g_assert_not_reached ();
    }
}

/**
 * pm_pair_code_parse:
 * @text: what a QR code, a paste or a link gave (leading and trailing white
 *   space is not removed: strip a paste first)
 *
 * Reads a pairing code, strictly (docs/PROTOCOL.md §10): the exact prefix
 * "pipermesh:pair?", then the fields v, a (1 to PM_PAIR_CODE_MAX_ADDRESSES
 * times), t, e, c, k and n, each once, in any order. A code whose v is
 * another number gets PM_PAIR_CODE_ERROR_VERSION whatever else it holds.
 * An expired code is not refused here (see pm_pair_code_is_expired()).
 *
 * Returns: (transfer full) (nullable): the code, or %NULL with @error in
 * PM_PAIR_CODE_ERROR; nothing is kept on failure.
 */
PmPairCode *
pm_pair_code_parse (const char *text,
                    GError    **error)
{
  static const char keys[] = "vateckn";
  g_autoptr (PmPairCode) code = NULL;
  g_autoptr (GArray) fields = NULL;
  unsigned seen[G_N_ELEMENTS (keys) - 1] = { 0 };
  size_t   len;

  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  len = strnlen (text, PM_PAIR_CODE_MAX_LEN + 1);
  if (len > PM_PAIR_CODE_MAX_LEN)
    {
      g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_TOO_LONG,
                   "This is not a PiperMesh pairing code: it is longer than %d bytes",
                   PM_PAIR_CODE_MAX_LEN);
      return NULL;
    }
  if (!g_str_has_prefix (text, PM_PAIR_CODE_PREFIX))
    {
      g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE,
                   "This is not a PiperMesh pairing code (one starts with “%s”)",
                   PM_PAIR_CODE_PREFIX);
      return NULL;
    }

  fields = split_fields (text + strlen (PM_PAIR_CODE_PREFIX));
  if (!check_version_first (fields, error))
    return NULL;

  code = pair_code_alloc ();
  for (unsigned i = 0; i < fields->len; i++)
    {
      const Field     *f = &g_array_index (fields, Field, i);
      g_autofree char *what = NULL;
      const char      *k;

      if (f->key_len == 0 && f->value == NULL)
        {
          g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_SYNTAX,
                       "Invalid pairing code: field %u is empty (“&&”, or “&” at an end)", i + 1);
          return NULL;
        }
      if (is_showable_key (f->key, f->key_len))
        what = g_strdup_printf ("field “%.*s”", (int) f->key_len, f->key);
      else
        what = g_strdup_printf ("field %u", i + 1);
      if (f->value == NULL)
        {
          g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_SYNTAX,
                       "Invalid pairing code: %s has no “=”", what);
          return NULL;
        }
      if (!check_chars (f->key, f->key_len, what, error) ||
          !check_chars (f->value, f->value_len, what, error))
        return NULL;
      k = f->key_len == 1 ? strchr (keys, f->key[0]) : NULL;
      if (k == NULL || f->key[0] == '\0')
        {
          g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_UNKNOWN_FIELD,
                       "Invalid pairing code: unknown %s", what);
          return NULL;
        }
      if (*k != 'a' && seen[k - keys] > 0)
        {
          g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_DUPLICATE_FIELD,
                       "Invalid pairing code: field %s is given twice", field_name (*k));
          return NULL;
        }
      seen[k - keys]++;
      if (!parse_field (code, f, error))
        return NULL;
    }

  for (size_t i = 0; keys[i] != '\0'; i++)
    if (seen[i] == 0)
      {
        g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_MISSING_FIELD,
                     "Invalid pairing code: field %s is missing", field_name (keys[i]));
        return NULL;
      }

  return g_steal_pointer (&code);
}

/**
 * pm_pair_code_parse_first:
 * @texts: (array zero-terminated=1): texts to try, as pm_qr_decode_file() returns them
 *
 * The first of @texts that is a pairing code: for a picture holding several
 * QR codes.
 *
 * Returns: (transfer full) (nullable): the code, or %NULL with the error of
 * the first text (PM_PAIR_CODE_ERROR_NOT_PAIR_CODE if @texts is empty)
 */
PmPairCode *
pm_pair_code_parse_first (const char *const *texts,
                          GError           **error)
{
  g_autoptr (GError) first_error = NULL;

  g_return_val_if_fail (texts != NULL, NULL);

  for (size_t i = 0; texts[i] != NULL; i++)
    {
      g_autoptr (GError) local_error = NULL;
      PmPairCode *code = pm_pair_code_parse (texts[i], &local_error);

      if (code != NULL)
        return code;
      if (first_error == NULL)
        first_error = g_steal_pointer (&local_error);
    }
  if (first_error == NULL)
    g_set_error (error, PM_PAIR_CODE_ERROR, PM_PAIR_CODE_ERROR_NOT_PAIR_CODE,
                 "There is no pairing code here");
  else
    g_propagate_error (error, g_steal_pointer (&first_error));
  return NULL;
}

/* --- Questions ----------------------------------------------------------------- */

/**
 * pm_pair_code_is_expired:
 * @now: unix time, seconds (g_get_real_time () / G_USEC_PER_SEC)
 *
 * Returns: whether @code's expiry has come
 */
gboolean
pm_pair_code_is_expired (const PmPairCode *code,
                         int64_t           now)
{
  g_return_val_if_fail (code != NULL, TRUE);

  return now >= code->expires;
}

/**
 * pm_pair_code_token_equal:
 * Whether @token is @code's token, compared in constant time: for the host
 * to check the token a device presents.
 */
gboolean
pm_pair_code_token_equal (const PmPairCode *code,
                          const uint8_t     token[PM_PAIR_CODE_TOKEN_LEN])
{
  g_return_val_if_fail (code != NULL, FALSE);
  g_return_val_if_fail (token != NULL, FALSE);

  return sodium_memcmp (code->token, token, PM_PAIR_CODE_TOKEN_LEN) == 0;
}

/**
 * pm_pair_code_equal:
 * Whether two codes have the same fields (addresses in the same order).
 */
gboolean
pm_pair_code_equal (const PmPairCode *a,
                    const PmPairCode *b)
{
  g_return_val_if_fail (a != NULL && b != NULL, FALSE);

  if (a->addresses->len != b->addresses->len || a->expires != b->expires ||
      g_strcmp0 (a->name, b->name) != 0 ||
      sodium_memcmp (a->token, b->token, PM_PAIR_CODE_TOKEN_LEN) != 0 ||
      memcmp (a->cert_spki_sha256, b->cert_spki_sha256, PM_PAIR_CODE_HASH_LEN) != 0 ||
      memcmp (a->static_public, b->static_public, PM_PAIR_CODE_KEY_LEN) != 0)
    return FALSE;
  for (unsigned i = 0; i < a->addresses->len; i++)
    {
      GInetSocketAddress *x = g_ptr_array_index (a->addresses, i);
      GInetSocketAddress *y = g_ptr_array_index (b->addresses, i);

      if (g_inet_socket_address_get_port (x) != g_inet_socket_address_get_port (y) ||
          !g_inet_address_equal (g_inet_socket_address_get_address (x),
                                 g_inet_socket_address_get_address (y)))
        return FALSE;
    }
  return TRUE;
}
