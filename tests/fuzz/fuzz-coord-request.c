/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The coordination server's request-body validation (server/pm-coord-server.c
 * through pm-coord-server-private.h) on arbitrary bytes: the body parser, then
 * the same object validated as an enrollment, a candidates update and a push
 * endpoint, plus the candidate and endpoint syntax on the input as text.
 *
 * Each step either refuses with exactly one PM_COORD_REQUEST_ERROR carrying a
 * non-empty, valid UTF-8 message, or returns a result whose every field has
 * the documented form: the candidates object the server stores must re-parse
 * and hold only normalized unicast addresses with a port.
 *
 * Seeds (tests/fuzz/corpus/coord-request/) are plain JSON bodies: valid
 * enroll, candidates and push requests, and mistyped, unknown-field, deeply
 * nested, invalid UTF-8 and oversized variants of them.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-address.h"
#include "pm-coord-server-private.h"
#include "pm-coord-server.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

static void
check_refused (GError *error)
{
  g_assert (error != NULL);
  g_assert (error->domain == PM_COORD_REQUEST_ERROR);
  g_assert (error->code >= PM_COORD_REQUEST_ERROR_BODY_TOO_LARGE &&
            error->code <= PM_COORD_REQUEST_ERROR_INVALID_FIELD);
  g_assert (error->message != NULL && error->message[0] != '\0');
  g_assert (g_utf8_validate (error->message, -1, NULL));
  g_error_free (error);
}

/* A normalized candidate: parses, is unicast with a port, and is a fixed
 * point of the normalization. */
static void
check_candidate (const char *text)
{
  g_autoptr (GInetSocketAddress) address = pm_address_parse (text, FALSE);
  g_autofree char *again = pm_coord_request_normalize_candidate (text);
  GInetAddress    *ip;

  g_assert (address != NULL);
  ip = g_inet_socket_address_get_address (address);
  g_assert (g_inet_socket_address_get_port (address) != 0);
  g_assert (!g_inet_address_get_is_any (ip) && !g_inet_address_get_is_multicast (ip));
  g_assert (again != NULL && strcmp (again, text) == 0);
}

static void
check_string_member (JsonObject *body,
                     const char *name,
                     const char *value)
{
  JsonNode *node = json_object_get_member (body, name);

  if (value == NULL)
    {
      g_assert (node == NULL || JSON_NODE_HOLDS_NULL (node));
      return;
    }
  g_assert (node != NULL && json_node_get_value_type (node) == G_TYPE_STRING);
  g_assert (json_node_get_string (node) == value);
  g_assert (g_utf8_validate (value, -1, NULL));
}

static void
fuzz_enroll (JsonObject *body)
{
  GError     *error = NULL;
  const char *key, *public_key, *name, *type, *key_type;

  if (!pm_coord_request_parse_enroll (body, &key, &public_key, &name, &type, &key_type, &error))
    {
      check_refused (error);
      return;
    }
  g_assert (error == NULL);
  g_assert (json_object_get_size (body) == 5);
  check_string_member (body, "enrollmentKey", key);
  check_string_member (body, "publicKey", public_key);
  check_string_member (body, "name", name);
  check_string_member (body, "type", type);
  check_string_member (body, "keyType", key_type);
  g_assert (key != NULL && public_key != NULL && name != NULL && type != NULL &&
            key_type != NULL);
}

static void
check_candidates_object (JsonObject *object,
                         JsonObject *body)
{
  JsonNode  *addresses = json_object_get_member (object, "addresses");
  JsonNode  *mapped = json_object_get_member (object, "mapped");
  JsonNode  *varies = json_object_get_member (object, "mappingVariesByDestination");
  JsonNode  *given = json_object_get_member (body, "addresses");
  JsonArray *array;

  g_assert (json_object_get_size (object) == 3);
  g_assert (addresses != NULL && JSON_NODE_HOLDS_ARRAY (addresses));
  array = json_node_get_array (addresses);
  g_assert (json_array_get_length (array) <= PM_COORD_MAX_ADDRESSES);
  g_assert (json_array_get_length (array) == json_array_get_length (json_node_get_array (given)));
  for (unsigned i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *element = json_array_get_element (array, i);

      g_assert (json_node_get_value_type (element) == G_TYPE_STRING);
      check_candidate (json_node_get_string (element));
    }
  g_assert (mapped != NULL);
  if (!JSON_NODE_HOLDS_NULL (mapped))
    {
      g_assert (json_node_get_value_type (mapped) == G_TYPE_STRING);
      check_candidate (json_node_get_string (mapped));
    }
  g_assert (varies != NULL && json_node_get_value_type (varies) == G_TYPE_BOOLEAN);
}

static void
fuzz_candidates (JsonObject *body)
{
  GError *error = NULL;
  g_autoptr (JsonNode) node = pm_coord_request_parse_candidates (body, &error);
  g_autoptr (JsonNode) reparsed = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text_again = NULL;

  if (node == NULL)
    {
      check_refused (error);
      return;
    }
  g_assert (error == NULL);
  g_assert (JSON_NODE_HOLDS_OBJECT (node));
  check_candidates_object (json_node_get_object (node), body);

  /* What the server stores re-parses to the same object, and is itself an
   * acceptable candidates body (the listing hands it back to clients). */
  text = json_to_string (node, FALSE);
  reparsed = json_from_string (text, NULL);
  g_assert (reparsed != NULL && JSON_NODE_HOLDS_OBJECT (reparsed));
  g_assert (json_node_equal (node, reparsed));
  {
    g_autoptr (JsonObject) stored = pm_coord_request_parse_body (text, strlen (text),
                                                                 G_MAXSIZE, NULL);
    g_autoptr (JsonNode) again = NULL;

    g_assert (stored != NULL);
    again = pm_coord_request_parse_candidates (stored, NULL);
    g_assert (again != NULL);
    text_again = json_to_string (again, FALSE);
    g_assert (strcmp (text, text_again) == 0);
  }
}

static void
fuzz_push (JsonObject *body)
{
  GError     *error = NULL;
  const char *endpoint = "untouched";

  if (!pm_coord_request_parse_push (body, &endpoint, &error))
    {
      g_assert (endpoint == NULL);
      check_refused (error);
      return;
    }
  g_assert (error == NULL);
  g_assert (json_object_get_size (body) == 1);
  check_string_member (body, "endpoint", endpoint);
  if (endpoint != NULL)
    {
      g_assert (strlen (endpoint) <= PM_COORD_MAX_ENDPOINT_LEN);
      g_assert (pm_coord_request_endpoint_is_acceptable (endpoint));
    }
}

static void
fuzz_text (const char *data,
           size_t      size)
{
  g_autofree char *text = g_strndup (data, MIN (size, PM_COORD_MAX_ENDPOINT_LEN + 16));
  g_autofree char *normal = NULL;

  if (text == NULL || !g_utf8_validate (text, -1, NULL))
    return;
  normal = pm_coord_request_normalize_candidate (text);
  if (normal != NULL)
    check_candidate (normal);
  if (pm_coord_request_endpoint_is_acceptable (text))
    g_assert (g_ascii_strncasecmp (text, "http", 4) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const char *json = (const char *) data;
  GError     *error = NULL;
  g_autoptr (JsonObject) body = NULL;

  /* The server's own limit, and a smaller one the input may cross. */
  if (size > 64)
    {
      g_assert (pm_coord_request_parse_body (json, size, 64, &error) == NULL);
      g_assert (error->code == PM_COORD_REQUEST_ERROR_BODY_TOO_LARGE);
      check_refused (error);
      error = NULL;
    }
  body = pm_coord_request_parse_body (json, size, PM_COORD_MAX_BODY_SIZE, &error);
  if (body == NULL)
    check_refused (error);
  else
    {
      g_assert (error == NULL);
      g_assert (size > 0 && size <= PM_COORD_MAX_BODY_SIZE);
      g_assert (g_utf8_validate (json, (gssize) size, NULL));
      fuzz_enroll (body);
      fuzz_candidates (body);
      fuzz_push (body);
    }
  fuzz_text (json, size);
  return 0;
}
