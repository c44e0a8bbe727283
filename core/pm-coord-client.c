/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-coord-client"

#include "pm-coord-client.h"

#include "pm-address.h"
#include "pm-json.h"

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sodium.h>
#include <string.h>

/*
 * Every call goes the same way: a SoupMessage (no redirects: a bearer token
 * never follows one), soup_session_send_async(), the body read in chunks up to
 * PM_COORD_CLIENT_MAX_RESPONSE_SIZE, then one place that turns the status and
 * body into the call's result or into a PM_COORD_CLIENT_ERROR: server error
 * codes and foreign (GIO, TLS, resolver) errors are translated there and only
 * there. Unknown members of the server's objects are ignored (the server may
 * grow fields); known ones must have the documented type and form.
 */

#define DEVICE_ID_PREFIX  "dev_"
#define ACCOUNT_ID_PREFIX "acc_"
#define ID_HEX_LEN        32
#define TOKEN_PREFIX      "pmdt_"
#define PUBLIC_KEY_LEN    32
#define NAME_MAX_LEN      64
#define WORD_MAX_LEN      32
/* Longest server error message shown to the user, in bytes. */
#define MESSAGE_MAX_LEN 200
/* Longest RFC 3339 time accepted. */
#define TIME_MAX_LEN 40
#define READ_CHUNK   16384

/* --- Errors: one domain, with the Retry-After of a 429 ---------------------- */

typedef struct {
  unsigned retry_after;
} PmCoordClientErrorPrivate;

static void
pm_coord_client_error_private_init (PmCoordClientErrorPrivate *priv)
{
  if (priv != NULL)
    priv->retry_after = 0;
}

static void
pm_coord_client_error_private_copy (const PmCoordClientErrorPrivate *src,
                                    PmCoordClientErrorPrivate       *dest)
{
  if (src != NULL && dest != NULL)
    dest->retry_after = src->retry_after;
}

static void
pm_coord_client_error_private_clear (PmCoordClientErrorPrivate *priv)
{
}

/* clang-format off */
G_DEFINE_EXTENDED_ERROR (PmCoordClientError, pm_coord_client_error)
/* clang-format on */

/**
 * pm_coord_client_error_get_retry_after:
 * @error: a #GError
 *
 * Returns: for %PM_COORD_CLIENT_ERROR_RATE_LIMITED, the seconds the server
 *   asked to wait (at least 1); 0 for any other error
 */
unsigned
pm_coord_client_error_get_retry_after (const GError *error)
{
  PmCoordClientErrorPrivate *priv;

  g_return_val_if_fail (error != NULL, 0);

  if (!g_error_matches (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_RATE_LIMITED))
    return 0;
  priv = pm_coord_client_error_get_private (error);
  return priv != NULL ? priv->retry_after : 0;
}

/* --- Results ----------------------------------------------------------------- */

void
pm_enrollment_free (PmEnrollment *enrollment)
{
  if (enrollment == NULL)
    return;
  g_free (enrollment->device_id);
  if (enrollment->token != NULL)
    sodium_memzero (enrollment->token, strlen (enrollment->token));
  g_free (enrollment->token);
  g_free (enrollment->account_id);
  g_free (enrollment);
}

G_DEFINE_BOXED_TYPE (PmDeviceInfo, pm_device_info, pm_device_info_copy, pm_device_info_free)

static PmDeviceInfo *
device_info_new (void)
{
  PmDeviceInfo *info = g_new0 (PmDeviceInfo, 1);

  info->addresses = g_ptr_array_new_with_free_func (g_object_unref);
  return info;
}

PmDeviceInfo *
pm_device_info_copy (const PmDeviceInfo *info)
{
  PmDeviceInfo *copy;

  g_return_val_if_fail (info != NULL, NULL);

  copy = device_info_new ();
  copy->id = g_strdup (info->id);
  copy->name = g_strdup (info->name);
  copy->type = g_strdup (info->type);
  copy->key_type = g_strdup (info->key_type);
  memcpy (copy->public_key, info->public_key, sizeof copy->public_key);
  copy->last_seen = info->last_seen != NULL ? g_date_time_ref (info->last_seen) : NULL;
  copy->online = info->online;
  copy->has_candidates = info->has_candidates;
  for (unsigned i = 0; info->addresses != NULL && i < info->addresses->len; i++)
    g_ptr_array_add (copy->addresses, g_object_ref (info->addresses->pdata[i]));
  copy->mapped = info->mapped != NULL ? g_object_ref (info->mapped) : NULL;
  copy->mapping_varies = info->mapping_varies;
  return copy;
}

void
pm_device_info_free (PmDeviceInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->id);
  g_free (info->name);
  g_free (info->type);
  g_free (info->key_type);
  g_clear_pointer (&info->last_seen, g_date_time_unref);
  g_clear_pointer (&info->addresses, g_ptr_array_unref);
  g_clear_object (&info->mapped);
  g_free (info);
}

/* --- Parsing: pure functions over the response text ------------------------ */

static gboolean G_GNUC_PRINTF (2, 3)
  invalid (GError    **error,
           const char *format,
           ...)
{
  va_list          args;
  g_autofree char *detail = NULL;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE,
               "The coordination server sent an answer this client does not understand (%s); "
               "check that the server URL is right and the server is up to date",
               detail);
  return FALSE;
}

static gboolean
is_prefixed_hex_id (const char *text,
                    const char *prefix)
{
  size_t plen = strlen (prefix);

  return text != NULL && strlen (text) == plen + ID_HEX_LEN && strncmp (text, prefix, plen) == 0 &&
         strspn (text + plen, "0123456789abcdef") == ID_HEX_LEN;
}

/**
 * pm_coord_client_device_id_is_valid:
 * @id: (nullable): text
 *
 * Returns: whether @id has the form of a device id ("dev_" + 32 lowercase hex)
 */
gboolean
pm_coord_client_device_id_is_valid (const char *id)
{
  return is_prefixed_hex_id (id, DEVICE_ID_PREFIX);
}

static gboolean
token_is_valid (const char *token)
{
  size_t len;

  if (token == NULL || !g_str_has_prefix (token, TOKEN_PREFIX))
    return FALSE;
  len = strlen (token);
  return len > strlen (TOKEN_PREFIX) && len <= PM_COORD_CLIENT_MAX_TOKEN_LEN &&
         strspn (token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == len;
}

/* A short lowercase word: a device type or key type. */
static gboolean
is_word (const char *text)
{
  size_t len = strlen (text);

  return len > 0 && len <= WORD_MAX_LEN &&
         strspn (text, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == len;
}

/* 1–64 bytes of UTF-8 (already validated) without control characters. */
static gboolean
is_device_name (const char *text)
{
  size_t len = strlen (text);

  if (len == 0 || len > NAME_MAX_LEN)
    return FALSE;
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}


/**
 * pm_coord_client_parse_address:
 * @text: a candidate address
 *
 * Parses "IPv4:PORT" or "[IPv6]:PORT" exactly as the server accepts them: a
 * literal unicast address (no names, no scope ids, not the any address or
 * multicast) and a port 1–65535 without leading zeros.
 *
 * Returns: (transfer full) (nullable): the address, or %NULL
 */
GInetSocketAddress *
pm_coord_client_parse_address (const char *text)
{
  g_autoptr (GInetSocketAddress) address = NULL;
  GInetAddress *ip;

  g_return_val_if_fail (text != NULL, NULL);

  address = pm_address_parse (text, FALSE);
  if (address == NULL)
    return NULL;
  ip = g_inet_socket_address_get_address (address);
  if (g_inet_address_get_is_any (ip) || g_inet_address_get_is_multicast (ip))
    return NULL;
  return g_steal_pointer (&address);
}


static char *sanitize_message (const char *message);

/* Refuses what json-glib should never see: bodies that are too large, not
 * UTF-8, nested deeper than PM_COORD_CLIENT_MAX_JSON_DEPTH (its parser
 * recurses once per level), not starting with "{", or with anything but
 * whitespace after the object closes (json-glib 1.6 leaks a second value it
 * refuses). Then parses, and returns the root object. */
static JsonObject *
parse_object (const char *json,
              gsize       len,
              GError    **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local = NULL;
  JsonNode *root;

  if (json == NULL && len > 0)
    {
      invalid (error, "no body");
      return NULL;
    }
  if (len > PM_COORD_CLIENT_MAX_RESPONSE_SIZE)
    {
      invalid (error, "the body is larger than %u bytes", PM_COORD_CLIENT_MAX_RESPONSE_SIZE);
      return NULL;
    }
  if (len == 0)
    {
      invalid (error, "an empty body");
      return NULL;
    }
  if (!g_utf8_validate_len (json, len, NULL))
    {
      invalid (error, "the body is not UTF-8");
      return NULL;
    }
  switch (pm_json_check_object_shape (json, len, PM_COORD_CLIENT_MAX_JSON_DEPTH))
    {
    case PM_JSON_SHAPE_OK:
      break;
    case PM_JSON_SHAPE_NOT_OBJECT:
      invalid (error, "not a JSON object");
      return NULL;
    case PM_JSON_SHAPE_TOO_DEEP:
      invalid (error, "JSON nested too deeply");
      return NULL;
    case PM_JSON_SHAPE_TRAILING_DATA:
    default:
      invalid (error, "data after the JSON object");
      return NULL;
    }

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, json, (gssize) len, &local))
    {
      /* json-glib may quote the input byte by byte: made valid and short. */
      g_autofree char *valid = g_utf8_make_valid (local->message, -1);
      g_autofree char *clean = sanitize_message (valid);

      invalid (error, "not JSON: %s", clean);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      invalid (error, "not a JSON object");
      return NULL;
    }
  /* json-glib decodes "\615" (octal, not JSON) into bytes that are not UTF-8. */
  if (!pm_json_node_is_utf8 (root))
    {
      invalid (error, "a string in the JSON is not UTF-8");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

/* The member @name of @object if it is a string, else NULL with @error set
 * (or, with @nullable, NULL and no error for a JSON null or a missing member). */
static const char *
get_string (JsonObject *object,
            const char *where,
            const char *name,
            gboolean    nullable,
            GError    **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (nullable && (node == NULL || JSON_NODE_HOLDS_NULL (node)))
    return NULL;
  if (node == NULL)
    {
      invalid (error, "%s has no “%s”", where, name);
      return NULL;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      invalid (error, "“%s” of %s is not a string", name, where);
      return NULL;
    }
  return json_node_get_string (node);
}

static gboolean
get_boolean (JsonObject *object,
             const char *where,
             const char *name,
             gboolean    optional,
             gboolean   *out,
             GError    **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL && optional)
    {
      *out = FALSE;
      return TRUE;
    }
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return invalid (error, "“%s” of %s is not true or false", name, where);
  *out = json_node_get_boolean (node);
  return TRUE;
}

static GPtrArray *
parse_candidates_object (JsonObject          *object,
                         GInetSocketAddress **out_mapped,
                         gboolean            *out_varies,
                         GError             **error)
{
  g_autoptr (GPtrArray) addresses = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GInetSocketAddress) mapped = NULL;
  g_autoptr (GError) local = NULL;
  JsonNode   *node = json_object_get_member (object, "addresses");
  JsonArray  *array;
  const char *mapped_text;
  gboolean    varies;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    {
      invalid (error, "the candidates have no “addresses” array");
      return NULL;
    }
  array = json_node_get_array (node);
  if (json_array_get_length (array) > PM_COORD_CLIENT_MAX_ADDRESSES)
    {
      invalid (error, "more than %d candidate addresses", PM_COORD_CLIENT_MAX_ADDRESSES);
      return NULL;
    }
  for (unsigned i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode           *element = json_array_get_element (array, i);
      GInetSocketAddress *address = NULL;

      if (JSON_NODE_HOLDS_VALUE (element) && json_node_get_value_type (element) == G_TYPE_STRING)
        address = pm_coord_client_parse_address (json_node_get_string (element));
      if (address == NULL)
        {
          invalid (error, "candidate address %u is not IP:PORT", i);
          return NULL;
        }
      g_ptr_array_add (addresses, address);
    }
  mapped_text = get_string (object, "the candidates", "mapped", TRUE, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (mapped_text != NULL && (mapped = pm_coord_client_parse_address (mapped_text)) == NULL)
    {
      invalid (error, "the mapped address is not IP:PORT");
      return NULL;
    }
  if (!get_boolean (object, "the candidates", "mappingVariesByDestination", TRUE, &varies, error))
    return NULL;

  *out_mapped = g_steal_pointer (&mapped);
  *out_varies = varies;
  return g_steal_pointer (&addresses);
}

/**
 * pm_coord_client_parse_candidates:
 * @json: the answer to PUT …/candidates
 * @len: its length
 * @out_addresses: (out) (transfer container): the addresses (GInetSocketAddress)
 * @out_mapped: (out) (transfer full) (nullable): the mapped address
 * @out_mapping_varies: (out): mappingVariesByDestination
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 *
 * Returns: %TRUE if @json is a valid candidates object; on %FALSE no output
 *   was touched
 */
gboolean
pm_coord_client_parse_candidates (const char          *json,
                                  gsize                len,
                                  GPtrArray          **out_addresses,
                                  GInetSocketAddress **out_mapped,
                                  gboolean            *out_mapping_varies,
                                  GError             **error)
{
  g_autoptr (JsonObject) object = parse_object (json, len, error);
  g_autoptr (GInetSocketAddress) mapped = NULL;
  GPtrArray *addresses;
  gboolean   varies = FALSE;

  if (object == NULL)
    return FALSE;
  addresses = parse_candidates_object (object, &mapped, &varies, error);
  if (addresses == NULL)
    return FALSE;
  if (out_addresses != NULL)
    *out_addresses = addresses;
  else
    g_ptr_array_unref (addresses);
  if (out_mapped != NULL)
    *out_mapped = g_steal_pointer (&mapped);
  if (out_mapping_varies != NULL)
    *out_mapping_varies = varies;
  return TRUE;
}

static PmDeviceInfo *
parse_device (JsonNode *node,
              unsigned  index,
              GError  **error)
{
  g_autoptr (PmDeviceInfo) info = device_info_new ();
  g_autoptr (GError) local = NULL;
  g_autofree char *where = g_strdup_printf ("device %u", index);
  JsonObject      *object;
  const char      *id, *name, *type, *key, *key_type, *last_seen;
  JsonNode        *candidates;
  size_t           bin_len = 0;
  const char      *end = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      invalid (error, "%s is not an object", where);
      return NULL;
    }
  object = json_node_get_object (node);
  if ((id = get_string (object, where, "id", FALSE, error)) == NULL ||
      (name = get_string (object, where, "name", FALSE, error)) == NULL ||
      (type = get_string (object, where, "type", FALSE, error)) == NULL ||
      (key = get_string (object, where, "publicKey", FALSE, error)) == NULL ||
      (key_type = get_string (object, where, "keyType", FALSE, error)) == NULL)
    return NULL;
  if (!pm_coord_client_device_id_is_valid (id))
    {
      invalid (error, "%s has a malformed id", where);
      return NULL;
    }
  if (!is_device_name (name))
    {
      invalid (error, "%s has a malformed name", where);
      return NULL;
    }
  if (!is_word (type) || !is_word (key_type))
    {
      invalid (error, "%s has a malformed type or keyType", where);
      return NULL;
    }
  if (strlen (key) != PUBLIC_KEY_LEN * 2 ||
      sodium_hex2bin (info->public_key, sizeof info->public_key, key, strlen (key), NULL,
                      &bin_len, &end) != 0 ||
      bin_len != PUBLIC_KEY_LEN || *end != '\0')
    {
      invalid (error, "%s has a public key that is not 64 hex digits", where);
      return NULL;
    }
  if (!get_boolean (object, where, "online", FALSE, &info->online, error))
    return NULL;

  last_seen = get_string (object, where, "lastSeen", TRUE, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (last_seen != NULL)
    {
      g_autoptr (GTimeZone) utc = g_time_zone_new_utc ();

      if (strlen (last_seen) <= TIME_MAX_LEN)
        info->last_seen = g_date_time_new_from_iso8601 (last_seen, utc);
      if (info->last_seen == NULL)
        {
          invalid (error, "%s has a lastSeen that is not an RFC 3339 time", where);
          return NULL;
        }
    }

  candidates = json_object_get_member (object, "candidates");
  if (candidates != NULL && JSON_NODE_HOLDS_OBJECT (candidates))
    {
      GPtrArray *addresses;

      addresses = parse_candidates_object (json_node_get_object (candidates), &info->mapped,
                                           &info->mapping_varies, error);
      if (addresses == NULL)
        return NULL;
      g_ptr_array_unref (info->addresses);
      info->addresses = addresses;
      info->has_candidates = TRUE;
    }
  else if (candidates != NULL && !JSON_NODE_HOLDS_NULL (candidates))
    {
      invalid (error, "“candidates” of %s is not an object or null", where);
      return NULL;
    }

  info->id = g_strdup (id);
  info->name = g_strdup (name);
  info->type = g_strdup (type);
  info->key_type = g_strdup (key_type);
  return g_steal_pointer (&info);
}

/**
 * pm_coord_client_parse_devices:
 * @json: the answer to GET /v1/mesh/devices
 * @len: its length
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 *
 * Returns: (transfer container): the devices (PmDeviceInfo), in the server's
 *   order, or %NULL: one malformed device refuses the whole listing
 */
GPtrArray *
pm_coord_client_parse_devices (const char *json,
                               gsize       len,
                               GError    **error)
{
  g_autoptr (JsonObject) object = parse_object (json, len, error);
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GHashTable) seen = NULL;
  JsonNode  *node;
  JsonArray *array;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, "devices");
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    {
      invalid (error, "no “devices” array");
      return NULL;
    }
  array = json_node_get_array (node);
  if (json_array_get_length (array) > PM_COORD_CLIENT_MAX_DEVICES)
    {
      invalid (error, "more than %d devices", PM_COORD_CLIENT_MAX_DEVICES);
      return NULL;
    }
  devices = g_ptr_array_new_with_free_func ((GDestroyNotify) pm_device_info_free);
  seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (unsigned i = 0; i < json_array_get_length (array); i++)
    {
      PmDeviceInfo *info = parse_device (json_array_get_element (array, i), i, error);

      if (info == NULL)
        return NULL;
      g_ptr_array_add (devices, info);
      if (!g_hash_table_add (seen, info->id))
        {
          invalid (error, "device %s is listed twice", info->id);
          return NULL;
        }
    }
  return g_steal_pointer (&devices);
}

/**
 * pm_coord_client_parse_enrollment:
 * @json: the answer to POST /v1/mesh/devices
 * @len: its length
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 *
 * Returns: (transfer full): the enrollment, or %NULL
 */
PmEnrollment *
pm_coord_client_parse_enrollment (const char *json,
                                  gsize       len,
                                  GError    **error)
{
  g_autoptr (JsonObject) object = parse_object (json, len, error);
  const char   *id, *token, *account;
  PmEnrollment *enrollment;

  if (object == NULL)
    return NULL;
  if ((id = get_string (object, "the enrollment", "id", FALSE, error)) == NULL ||
      (token = get_string (object, "the enrollment", "token", FALSE, error)) == NULL ||
      (account = get_string (object, "the enrollment", "accountId", FALSE, error)) == NULL)
    return NULL;
  if (!pm_coord_client_device_id_is_valid (id) || !token_is_valid (token) ||
      !is_prefixed_hex_id (account, ACCOUNT_ID_PREFIX))
    {
      invalid (error, "a malformed device id, token or account id");
      return NULL;
    }
  enrollment = g_new0 (PmEnrollment, 1);
  enrollment->device_id = g_strdup (id);
  enrollment->token = g_strdup (token);
  enrollment->account_id = g_strdup (account);
  return enrollment;
}

/**
 * pm_coord_client_parse_wake:
 * @json: the 200 answer of GET /v1/mesh/wake
 * @len: its length
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 *
 * Returns: (transfer full): the id of the device that sent the wake, or %NULL
 */
char *
pm_coord_client_parse_wake (const char *json,
                            gsize       len,
                            GError    **error)
{
  g_autoptr (JsonObject) object = parse_object (json, len, error);
  JsonNode   *wake;
  const char *from;

  if (object == NULL)
    return NULL;
  wake = json_object_get_member (object, "wake");
  if (wake == NULL || !JSON_NODE_HOLDS_OBJECT (wake))
    {
      invalid (error, "no “wake” object");
      return NULL;
    }
  from = get_string (json_node_get_object (wake), "the wake", "from", FALSE, error);
  if (from == NULL)
    return NULL;
  if (!pm_coord_client_device_id_is_valid (from))
    {
      invalid (error, "the wake is from a malformed device id");
      return NULL;
    }
  return g_strdup (from);
}

/**
 * pm_coord_client_parse_wake_sent:
 * @json: the 202 answer of POST …/wake
 * @len: its length
 * @out_long_polls: (out) (optional): long-polls the wake answered
 * @out_push: (out) (optional): whether a push was sent
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_RESPONSE
 *
 * Returns: %TRUE if @json is `{"longPolls": n, "push": bool}`
 */
gboolean
pm_coord_client_parse_wake_sent (const char *json,
                                 gsize       len,
                                 unsigned   *out_long_polls,
                                 gboolean   *out_push,
                                 GError    **error)
{
  g_autoptr (JsonObject) object = parse_object (json, len, error);
  JsonNode *node;
  int64_t   polls;
  gboolean  push;

  if (object == NULL)
    return FALSE;
  node = json_object_get_member (object, "longPolls");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64 ||
      (polls = json_node_get_int (node)) < 0 || polls > 1024)
    return invalid (error, "“longPolls” is not a small count");
  if (!get_boolean (object, "the wake answer", "push", FALSE, &push, error))
    return FALSE;
  if (out_long_polls != NULL)
    *out_long_polls = (unsigned) polls;
  if (out_push != NULL)
    *out_push = push;
  return TRUE;
}

/* The server's message, made safe to show: at most MESSAGE_MAX_LEN bytes of
 * UTF-8 (cut at a character boundary), control characters replaced. */
static char *
sanitize_message (const char *message)
{
  GString *out = g_string_new (NULL);

  for (const char *p = message; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      size_t   n = (size_t) (g_utf8_next_char (p) - p);

      if (out->len + n > MESSAGE_MAX_LEN)
        {
          g_string_append (out, "…");
          break;
        }
      if (g_unichar_iscntrl (c))
        g_string_append_c (out, ' ');
      else
        g_string_append_len (out, p, (gssize) n);
    }
  return g_string_free (out, FALSE);
}

static unsigned
parse_retry_after (const char *text)
{
  size_t   len;
  unsigned value = 0;

  if (text == NULL)
    return 1;
  while (*text == ' ')
    text++;
  len = strspn (text, "0123456789");
  if (len == 0 || len > 7 || text[len + strspn (text + len, " ")] != '\0')
    return 1; /* missing, an HTTP date or garbage: a second */
  for (size_t i = 0; i < len; i++)
    value = value * 10 + (unsigned) (text[i] - '0');
  return CLAMP (value, 1, PM_COORD_CLIENT_MAX_RETRY_AFTER);
}

/**
 * pm_coord_client_error_from_response:
 * @status: the HTTP status (not 2xx)
 * @retry_after: (nullable): the Retry-After header
 * @json: (nullable): the body, `{"error":{"code","message"}}` or anything else
 * @len: its length
 *
 * Translates a refusal into the one #PM_COORD_CLIENT_ERROR a caller can act
 * on. The server's own message, if any, is added (sanitized) for detail.
 *
 * Returns: (transfer full): the error
 */
GError *
pm_coord_client_error_from_response (unsigned    status,
                                     const char *retry_after,
                                     const char *json,
                                     gsize       len)
{
  g_autoptr (JsonObject) object = NULL;
  g_autofree char   *detail = NULL;
  const char        *code = NULL;
  const char        *text;
  PmCoordClientError error_code;
  GError            *error;

  if (json != NULL && len > 0)
    object = parse_object (json, len, NULL);
  if (object != NULL)
    {
      JsonNode *node = json_object_get_member (object, "error");

      if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
        {
          JsonObject *inner = json_node_get_object (node);
          const char *message = get_string (inner, "", "message", TRUE, NULL);

          code = get_string (inner, "", "code", TRUE, NULL);
          if (message != NULL)
            detail = sanitize_message (message);
        }
    }

  switch (status)
    {
    case SOUP_STATUS_BAD_REQUEST:
    case SOUP_STATUS_LENGTH_REQUIRED:
    case SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE:
    case SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE:
      error_code = PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT;
      text = "The coordination server refused the request";
      break;
    case SOUP_STATUS_UNAUTHORIZED:
      error_code = PM_COORD_CLIENT_ERROR_UNAUTHORIZED;
      text = "The coordination server no longer accepts this device (its token is unknown or "
             "was revoked); enroll it again with a new enrollment key";
      break;
    case SOUP_STATUS_FORBIDDEN:
      if (g_strcmp0 (code, "invalid_enrollment_key") == 0)
        {
          error_code = PM_COORD_CLIENT_ERROR_INVALID_KEY;
          text = "The enrollment key is unknown, expired or already used; "
                 "ask the account's administrator for a new one";
        }
      else
        {
          error_code = PM_COORD_CLIENT_ERROR_FORBIDDEN;
          text = "This device is not allowed to do that";
        }
      break;
    case SOUP_STATUS_NOT_FOUND:
      error_code = PM_COORD_CLIENT_ERROR_NOT_FOUND;
      text = "No such device in this account (it may have been removed); "
             "check the server URL if this keeps happening";
      break;
    case SOUP_STATUS_CONFLICT:
      error_code = PM_COORD_CLIENT_ERROR_CONFLICT;
      text = "This device's public key is already enrolled; remove the old device first";
      break;
    case 429:
      error_code = PM_COORD_CLIENT_ERROR_RATE_LIMITED;
      text = "The coordination server asks to slow down";
      break;
    default:
      if (status >= 500 && status <= 599)
        {
          error_code = PM_COORD_CLIENT_ERROR_SERVER_ERROR;
          text = "The coordination server failed or is unavailable; try again later";
        }
      else
        {
          error_code = PM_COORD_CLIENT_ERROR_INVALID_RESPONSE;
          text = "The coordination server sent an answer this client does not understand; "
                 "check that the server URL is right";
        }
      break;
    }

  if (error_code == PM_COORD_CLIENT_ERROR_RATE_LIMITED)
    {
      unsigned seconds = parse_retry_after (retry_after);

      PmCoordClientErrorPrivate *priv;

      error = g_error_new (PM_COORD_CLIENT_ERROR, error_code, "%s: try again in %u s", text,
                           seconds);
      priv = pm_coord_client_error_get_private (error);
      if (priv != NULL)
        priv->retry_after = seconds;
    }
  else if (detail != NULL && detail[0] != '\0')
    error = g_error_new (PM_COORD_CLIENT_ERROR, error_code, "%s (HTTP %u: %s)", text, status,
                         detail);
  else
    error = g_error_new (PM_COORD_CLIENT_ERROR, error_code, "%s (HTTP %u)", text, status);
  return error;
}

/* --- The client ------------------------------------------------------------ */

struct _PmCoordClient {
  GObject parent_instance;

  SoupSession *session;
  char        *base_uri; /* no trailing slash */
  char        *token;    /* nullable; never logged */
};

G_DEFINE_FINAL_TYPE (PmCoordClient, pm_coord_client, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_BASE_URI,
  PROP_ENROLLED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
clear_token (PmCoordClient *self)
{
  if (self->token != NULL)
    sodium_memzero (self->token, strlen (self->token));
  g_clear_pointer (&self->token, g_free);
}

static void
pm_coord_client_finalize (GObject *object)
{
  PmCoordClient *self = PM_COORD_CLIENT (object);

  soup_session_abort (self->session);
  g_clear_object (&self->session);
  g_free (self->base_uri);
  clear_token (self);
  G_OBJECT_CLASS (pm_coord_client_parent_class)->finalize (object);
}

static void
pm_coord_client_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  PmCoordClient *self = PM_COORD_CLIENT (object);

  switch (prop_id)
    {
    case PROP_BASE_URI:
      g_value_set_string (value, self->base_uri);
      break;
    case PROP_ENROLLED:
      g_value_set_boolean (value, self->token != NULL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_coord_client_class_init (PmCoordClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = pm_coord_client_finalize;
  object_class->get_property = pm_coord_client_get_property;

  properties[PROP_BASE_URI] =
    g_param_spec_string ("base-uri", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_ENROLLED] =
    g_param_spec_boolean ("enrolled", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_coord_client_init (PmCoordClient *self)
{
  self->session = soup_session_new_with_options ("timeout", PM_COORD_CLIENT_TIMEOUT_S,
                                                 "idle-timeout", 60,
                                                 "max-conns-per-host", 8,
                                                 "user-agent", "pipermesh ",
                                                 NULL);
}

/* https, or http to a loopback IP literal only (the server's own rule). */
static char *
check_base_uri (const char *base_uri,
                gboolean   *out_loopback,
                GError    **error)
{
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GInetAddress) address = NULL;
  g_autofree char *text = NULL;
  const char      *scheme, *host;
  size_t           len;

  uri = base_uri != NULL && strlen (base_uri) <= 2048
          ? g_uri_parse (base_uri, G_URI_FLAGS_NONE, NULL)
          : NULL;
  if (uri == NULL)
    {
      g_set_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_URI,
                   "“%s” is not a server URL; give one such as https://mesh.example.net",
                   base_uri != NULL ? base_uri : "");
      return NULL;
    }
  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if ((g_ascii_strcasecmp (scheme, "https") != 0 && g_ascii_strcasecmp (scheme, "http") != 0) ||
      host == NULL || host[0] == '\0' || g_uri_get_userinfo (uri) != NULL ||
      g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_URI,
                   "“%s” is not a server URL: it must be https://HOST[:PORT][/PATH] "
                   "without user, query or fragment",
                   base_uri);
      return NULL;
    }
  address = g_inet_address_new_from_string (host);
  *out_loopback = address != NULL && g_inet_address_get_is_loopback (address);
  if (g_ascii_strcasecmp (scheme, "http") == 0 && !*out_loopback)
    {
      g_set_error (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_URI,
                   "Refusing plain http:// to %s: the device token would travel unencrypted. "
                   "Use https:// (http:// is only allowed to a loopback address such as 127.0.0.1)",
                   host);
      return NULL;
    }
  text = g_uri_to_string (uri);
  len = strlen (text);
  while (len > 0 && text[len - 1] == '/')
    text[--len] = '\0';
  return g_steal_pointer (&text);
}

/**
 * pm_coord_client_new:
 * @base_uri: the server, e.g. "https://mesh.example.net" (http:// only to a
 *   loopback address, as the server itself allows)
 * @token: (nullable): this device's token, if it is enrolled
 * @error: a #PM_COORD_CLIENT_ERROR_INVALID_URI or _INVALID_ARGUMENT
 *
 * Returns: (transfer full): a client, or %NULL
 */
PmCoordClient *
pm_coord_client_new (const char *base_uri,
                     const char *token,
                     GError    **error)
{
  g_autoptr (PmCoordClient) self = NULL;
  g_autofree char *normal = NULL;
  gboolean         loopback = FALSE;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  normal = check_base_uri (base_uri, &loopback, error);
  if (normal == NULL)
    return NULL;
  self = g_object_new (PM_TYPE_COORD_CLIENT, NULL);
  self->base_uri = g_steal_pointer (&normal);
  /* A proxy from the environment has no business with a loopback server. */
  if (loopback)
    soup_session_set_proxy_resolver (self->session, NULL);
  if (token != NULL && !pm_coord_client_set_token (self, token, error))
    return NULL;
  return g_steal_pointer (&self);
}

const char *
pm_coord_client_get_base_uri (PmCoordClient *self)
{
  g_return_val_if_fail (PM_IS_COORD_CLIENT (self), NULL);
  return self->base_uri;
}

gboolean
pm_coord_client_get_enrolled (PmCoordClient *self)
{
  g_return_val_if_fail (PM_IS_COORD_CLIENT (self), FALSE);
  return self->token != NULL;
}

/**
 * pm_coord_client_get_token:
 * The device token (a secret: for the relay's Authorization header, never for
 * logs), or %NULL before enrollment.
 */
const char *
pm_coord_client_get_token (PmCoordClient *self)
{
  g_return_val_if_fail (PM_IS_COORD_CLIENT (self), NULL);
  return self->token;
}

/**
 * pm_coord_client_set_token:
 * @self: a #PmCoordClient
 * @token: (nullable): the device token ("pmdt_…"), or %NULL to forget it
 * @error: %PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT for a malformed token
 *
 * Returns: whether the token was set
 */
gboolean
pm_coord_client_set_token (PmCoordClient *self,
                           const char    *token,
                           GError       **error)
{
  gboolean was_enrolled;

  g_return_val_if_fail (PM_IS_COORD_CLIENT (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (token != NULL && !token_is_valid (token))
    {
      g_set_error_literal (error, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT,
                           "The stored device token is malformed; enroll this device again");
      return FALSE;
    }
  was_enrolled = self->token != NULL;
  clear_token (self);
  self->token = g_strdup (token);
  if (was_enrolled != (token != NULL))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ENROLLED]);
  return TRUE;
}

/* --- Calls ------------------------------------------------------------------- */

typedef enum {
  CALL_ENROLL,
  CALL_LIST,
  CALL_CANDIDATES,
  CALL_WAKE,
  CALL_WAIT_WAKE,
  CALL_REVOKE,
} CallKind;

typedef struct {
  CallKind      kind;
  unsigned      success; /* the status that means success */
  SoupMessage  *msg;
  GInputStream *stream;
  GByteArray   *body;
} Call;

typedef struct {
  unsigned long_polls;
  gboolean push;
} WakeSent;

static void
call_free (Call *call)
{
  g_clear_object (&call->msg);
  g_clear_object (&call->stream);
  g_clear_pointer (&call->body, g_byte_array_unref);
  g_free (call);
}

static GError *
network_error (PmCoordClient *self,
               const GError  *error)
{
  return g_error_new (PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NETWORK,
                      "Could not reach the coordination server at %s: %s", self->base_uri,
                      error->message);
}

/* Returns @task's error (translated once, here) and finishes it. */
static void
call_fail (GTask  *task,
           GError *error)
{
  PmCoordClient *self = g_task_get_source_object (task);

  if (error->domain == PM_COORD_CLIENT_ERROR ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_task_return_error (task, error);
  else if (error->domain == SOUP_SESSION_ERROR)
    {
      /* Reached, but what came back is not HTTP as libsoup can read it. */
      g_task_return_new_error (task, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_RESPONSE,
                               "The server at %s did not answer as a coordination server does "
                               "(%s); check the server URL",
                               self->base_uri, error->message);
      g_error_free (error);
    }
  else
    {
      g_task_return_error (task, network_error (self, error));
      g_error_free (error);
    }
}

static void
call_complete (GTask *task)
{
  PmCoordClient *self = g_task_get_source_object (task);
  Call          *call = g_task_get_task_data (task);
  unsigned       status = soup_message_get_status (call->msg);
  const char    *data = (const char *) call->body->data;
  gsize          len = call->body->len;
  GError        *error = NULL;

  if (status != call->success && !(call->kind == CALL_WAIT_WAKE && status == 204))
    {
      SoupMessageHeaders *headers = soup_message_get_response_headers (call->msg);

      if (status >= 200 && status <= 299)
        invalid (&error, "HTTP %u where %u was expected", status, call->success);
      else
        error = pm_coord_client_error_from_response (
          status, soup_message_headers_get_one (headers, "Retry-After"), data, len);
      g_task_return_error (task, error);
      return;
    }

  switch (call->kind)
    {
      case CALL_ENROLL: {
        PmEnrollment *enrollment = pm_coord_client_parse_enrollment (data, len, &error);

        if (enrollment == NULL)
          break;
        pm_coord_client_set_token (self, enrollment->token, NULL);
        g_task_return_pointer (task, enrollment, (GDestroyNotify) pm_enrollment_free);
        return;
      }
      case CALL_LIST: {
        GPtrArray *devices = pm_coord_client_parse_devices (data, len, &error);

        if (devices == NULL)
          break;
        g_task_return_pointer (task, devices, (GDestroyNotify) g_ptr_array_unref);
        return;
      }
    case CALL_CANDIDATES:
      if (!pm_coord_client_parse_candidates (data, len, NULL, NULL, NULL, &error))
        break;
      g_task_return_boolean (task, TRUE);
      return;
      case CALL_WAKE: {
        WakeSent sent = { 0 };

        if (!pm_coord_client_parse_wake_sent (data, len, &sent.long_polls, &sent.push, &error))
          break;
        g_task_return_pointer (task, g_memdup2 (&sent, sizeof sent), g_free);
        return;
      }
      case CALL_WAIT_WAKE: {
        char *from;

        if (status == 204)
          {
            g_task_return_pointer (task, NULL, NULL);
            return;
          }
        from = pm_coord_client_parse_wake (data, len, &error);
        if (from == NULL)
          break;
        g_task_return_pointer (task, from, g_free);
        return;
      }
    case CALL_REVOKE:
      g_task_return_boolean (task, TRUE);
      return;
    default:
      g_assert_not_reached ();
    }
  g_task_return_error (task, error);
}

static void on_read (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data);

/* Reads the next chunk of the body; takes @task. */
static void
read_next (GTask *task)
{
  Call *call = g_task_get_task_data (task);

  g_input_stream_read_bytes_async (call->stream, READ_CHUNK, g_task_get_priority (task),
                                   g_task_get_cancellable (task), on_read, task);
}

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr (GTask) task = user_data;
  Call   *call = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (GBytes) bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result,
                                                               &error);

  if (bytes == NULL)
    {
      call_fail (task, error);
      return;
    }
  if (g_bytes_get_size (bytes) == 0)
    {
      call_complete (task);
      return;
    }
  if (call->body->len + g_bytes_get_size (bytes) > PM_COORD_CLIENT_MAX_RESPONSE_SIZE)
    {
      invalid (&error, "the body is larger than %u bytes", PM_COORD_CLIENT_MAX_RESPONSE_SIZE);
      g_task_return_error (task, error);
      return;
    }
  g_byte_array_append (call->body, g_bytes_get_data (bytes, NULL),
                       (guint) g_bytes_get_size (bytes));
  read_next (g_steal_pointer (&task));
}

static void
on_sent (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr (GTask) task = user_data;
  Call               *call = g_task_get_task_data (task);
  GError             *error = NULL;
  SoupMessageHeaders *headers;

  call->stream = soup_session_send_finish (SOUP_SESSION (source), result, &error);
  if (call->stream == NULL)
    {
      call_fail (task, error);
      return;
    }
  headers = soup_message_get_response_headers (call->msg);
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length (headers) > PM_COORD_CLIENT_MAX_RESPONSE_SIZE)
    {
      invalid (&error, "the body is larger than %u bytes", PM_COORD_CLIENT_MAX_RESPONSE_SIZE);
      g_task_return_error (task, error);
      return;
    }
  read_next (g_steal_pointer (&task));
}

/* Starts @method @path (appended to the base URI) with an optional JSON body. */
static void
call_start (PmCoordClient *self,
            GTask         *task,
            CallKind       kind,
            unsigned       success,
            const char    *method,
            const char    *path,
            gboolean       auth,
            JsonBuilder   *body)
{
  g_autofree char *url = g_strconcat (self->base_uri, path, NULL);
  Call            *call;

  if (auth && self->token == NULL)
    {
      g_task_return_new_error (task, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_NOT_ENROLLED,
                               "This device is not enrolled with a coordination server yet");
      return;
    }
  call = g_new0 (Call, 1);
  call->kind = kind;
  call->success = success;
  call->body = g_byte_array_new ();
  call->msg = soup_message_new (method, url);
  g_task_set_task_data (task, call, (GDestroyNotify) call_free);
  if (call->msg == NULL)
    {
      g_task_return_new_error (task, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_URI,
                               "Could not make a request to %s", self->base_uri);
      return;
    }
  soup_message_add_flags (call->msg, SOUP_MESSAGE_NO_REDIRECT);
  if (auth)
    {
      g_autofree char *value = g_strconcat ("Bearer ", self->token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (call->msg),
                                    "Authorization", value);
      sodium_memzero (value, strlen (value));
    }
  if (body != NULL)
    {
      g_autoptr (JsonNode) root = json_builder_get_root (body);
      gsize len = 0;
      char *text = json_to_string (root, FALSE);
      g_autoptr (GBytes) bytes = NULL;

      len = strlen (text);
      bytes = g_bytes_new_take (text, len);
      soup_message_set_request_body_from_bytes (call->msg, "application/json", bytes);
    }
  soup_session_send_async (self->session, call->msg, g_task_get_priority (task),
                           g_task_get_cancellable (task), on_sent, g_object_ref (task));
}

static GTask *
call_task (PmCoordClient      *self,
           gpointer            source_tag,
           GCancellable       *cancellable,
           GAsyncReadyCallback callback,
           gpointer            user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  return task;
}

static gboolean
check_device_id (GTask      *task,
                 const char *device_id)
{
  if (pm_coord_client_device_id_is_valid (device_id))
    return TRUE;
  g_task_return_new_error (task, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT,
                           "“%s” is not a device id", device_id != NULL ? device_id : "");
  return FALSE;
}

static void
add_string (JsonBuilder *builder,
            const char  *name,
            const char  *value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, value);
}

/**
 * pm_coord_client_enroll_async:
 * @self: a #PmCoordClient
 * @enrollment_key: the account's enrollment key ("pmek_…")
 * @public_key_hex: this device's X25519 public key, 64 hex digits
 * @name: the device name (1–64 bytes)
 * @type: mac, linux, windows, iphone, ipad, watch or android
 * @key_type: where the private key is kept (pm_identity_get_key_store_string())
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: for @callback
 *
 * Enrolls this device. On success the client keeps the new token.
 */
void
pm_coord_client_enroll_async (PmCoordClient      *self,
                              const char         *enrollment_key,
                              const char         *public_key_hex,
                              const char         *name,
                              const char         *type,
                              const char         *key_type,
                              GCancellable       *cancellable,
                              GAsyncReadyCallback callback,
                              gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (JsonBuilder) builder = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (enrollment_key != NULL && public_key_hex != NULL && name != NULL);
  g_return_if_fail (type != NULL && key_type != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_enroll_async, cancellable, callback, user_data);
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  add_string (builder, "enrollmentKey", enrollment_key);
  add_string (builder, "publicKey", public_key_hex);
  add_string (builder, "name", name);
  add_string (builder, "type", type);
  add_string (builder, "keyType", key_type);
  json_builder_end_object (builder);
  call_start (self, task, CALL_ENROLL, SOUP_STATUS_CREATED, "POST", "/v1/mesh/devices", FALSE,
              builder);
}

/**
 * pm_coord_client_enroll_finish:
 *
 * Returns: (transfer full): the enrollment (device id, token, account id), or
 *   %NULL with @error set
 */
PmEnrollment *
pm_coord_client_enroll_finish (PmCoordClient *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_enroll_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * pm_coord_client_list_devices_async:
 *
 * Lists the devices of this device's account (itself included).
 */
void
pm_coord_client_list_devices_async (PmCoordClient      *self,
                                    GCancellable       *cancellable,
                                    GAsyncReadyCallback callback,
                                    gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_list_devices_async, cancellable, callback, user_data);
  call_start (self, task, CALL_LIST, SOUP_STATUS_OK, "GET", "/v1/mesh/devices", TRUE, NULL);
}

/**
 * pm_coord_client_list_devices_finish:
 *
 * Returns: (transfer container) (element-type PmDeviceInfo): the devices,
 *   oldest first, or %NULL with @error set
 */
GPtrArray *
pm_coord_client_list_devices_finish (PmCoordClient *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_list_devices_async),
                        NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * pm_coord_client_put_candidates_async:
 * @self: a #PmCoordClient
 * @device_id: this device's id
 * @addresses: (element-type GInetSocketAddress): at most
 *   %PM_COORD_CLIENT_MAX_ADDRESSES local candidate addresses
 * @mapped: (nullable): the STUN-mapped address
 * @mapping_varies: whether the NAT maps per destination
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: for @callback
 *
 * Publishes this device's candidates, replacing the previous ones.
 */
void
pm_coord_client_put_candidates_async (PmCoordClient      *self,
                                      const char         *device_id,
                                      GPtrArray          *addresses,
                                      GInetSocketAddress *mapped,
                                      gboolean            mapping_varies,
                                      GCancellable       *cancellable,
                                      GAsyncReadyCallback callback,
                                      gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (JsonBuilder) builder = NULL;
  g_autofree char *path = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (addresses != NULL);
  g_return_if_fail (mapped == NULL || G_IS_INET_SOCKET_ADDRESS (mapped));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_put_candidates_async, cancellable, callback, user_data);
  if (!check_device_id (task, device_id))
    return;
  if (addresses->len > PM_COORD_CLIENT_MAX_ADDRESSES)
    {
      g_task_return_new_error (task, PM_COORD_CLIENT_ERROR, PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT,
                               "At most %d candidate addresses can be published",
                               PM_COORD_CLIENT_MAX_ADDRESSES);
      return;
    }
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "addresses");
  json_builder_begin_array (builder);
  for (unsigned i = 0; i < addresses->len; i++)
    {
      g_autofree char *text = NULL;

      g_return_if_fail (G_IS_INET_SOCKET_ADDRESS (addresses->pdata[i]));
      text = pm_address_to_string (addresses->pdata[i]);
      json_builder_add_string_value (builder, text);
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "mapped");
  if (mapped != NULL)
    {
      g_autofree char *text = pm_address_to_string (mapped);

      json_builder_add_string_value (builder, text);
    }
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "mappingVariesByDestination");
  json_builder_add_boolean_value (builder, mapping_varies);
  json_builder_end_object (builder);

  path = g_strdup_printf ("/v1/mesh/devices/%s/candidates", device_id);
  call_start (self, task, CALL_CANDIDATES, SOUP_STATUS_OK, "PUT", path, TRUE, builder);
}

gboolean
pm_coord_client_put_candidates_finish (PmCoordClient *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_put_candidates_async),
                        FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * pm_coord_client_wake_async:
 * @self: a #PmCoordClient
 * @device_id: another device of the account
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: for @callback
 *
 * Wakes @device_id through its long-polls and push endpoint. At most once per
 * 5 s per target: more fail with %PM_COORD_CLIENT_ERROR_RATE_LIMITED.
 */
void
pm_coord_client_wake_async (PmCoordClient      *self,
                            const char         *device_id,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char *path = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_wake_async, cancellable, callback, user_data);
  if (!check_device_id (task, device_id))
    return;
  path = g_strdup_printf ("/v1/mesh/devices/%s/wake", device_id);
  call_start (self, task, CALL_WAKE, SOUP_STATUS_ACCEPTED, "POST", path, TRUE, NULL);
}

/**
 * pm_coord_client_wake_finish:
 * @out_long_polls: (out) (optional): how many long-polls the wake answered
 * @out_push: (out) (optional): whether a push was sent
 *
 * Returns: whether the server accepted the wake
 */
gboolean
pm_coord_client_wake_finish (PmCoordClient *self,
                             GAsyncResult  *result,
                             unsigned      *out_long_polls,
                             gboolean      *out_push,
                             GError       **error)
{
  g_autofree WakeSent *sent = NULL;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_wake_async), FALSE);

  sent = g_task_propagate_pointer (G_TASK (result), error);
  if (sent == NULL)
    return FALSE;
  if (out_long_polls != NULL)
    *out_long_polls = sent->long_polls;
  if (out_push != NULL)
    *out_push = sent->push;
  return TRUE;
}

/**
 * pm_coord_client_wait_wake_async:
 *
 * Holds the wake long-poll (GET /v1/mesh/wake) until another device wakes
 * this one or the server's timeout (25 s) passes; then call it again.
 */
void
pm_coord_client_wait_wake_async (PmCoordClient      *self,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_wait_wake_async, cancellable, callback, user_data);
  call_start (self, task, CALL_WAIT_WAKE, SOUP_STATUS_OK, "GET", "/v1/mesh/wake", TRUE, NULL);
}

/**
 * pm_coord_client_wait_wake_finish:
 *
 * Returns: (transfer full) (nullable): the id of the device that woke this
 *   one; %NULL without an error when the server's timeout passed (ask again),
 *   %NULL with @error set on failure
 */
char *
pm_coord_client_wait_wake_finish (PmCoordClient *self,
                                  GAsyncResult  *result,
                                  GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_wait_wake_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * pm_coord_client_revoke_async:
 *
 * Revokes @device_id (a device of this account, this one included): its token
 * stops working at once.
 */
void
pm_coord_client_revoke_async (PmCoordClient      *self,
                              const char         *device_id,
                              GCancellable       *cancellable,
                              GAsyncReadyCallback callback,
                              gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char *path = NULL;

  g_return_if_fail (PM_IS_COORD_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = call_task (self, pm_coord_client_revoke_async, cancellable, callback, user_data);
  if (!check_device_id (task, device_id))
    return;
  path = g_strdup_printf ("/v1/mesh/devices/%s", device_id);
  call_start (self, task, CALL_REVOKE, SOUP_STATUS_NO_CONTENT, "DELETE", path, TRUE, NULL);
}

gboolean
pm_coord_client_revoke_finish (PmCoordClient *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, pm_coord_client_revoke_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
