/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-json"

#include "pm-json.h"

/*
 * Guards for json-glib 1.6 (Debian 12), shared by the server's request parsing
 * and the coordination client's response parsing. json-glib parses; these
 * only refuse, before or after it, what it handles badly:
 *  - several top-level values ("{}{…}", "1 {…}"): it keeps the first and
 *    leaks the rest;
 *  - deep nesting: its parser recurses once per level;
 *  - escapes that are not JSON ("\615", octal): they decode to bytes that are
 *    not UTF-8.
 */

static gboolean
is_json_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/**
 * pm_json_check_object_shape:
 * @json: the text (need not be NUL-terminated)
 * @len: its length
 * @max_depth: how many objects/arrays may nest
 *
 * A scan of @json's structure, without parsing it: it must be one object,
 * nested at most @max_depth deep, with only blanks after it. Strings are
 * skipped with their escapes; whether the rest is valid JSON is json-glib's
 * to say afterwards.
 */
PmJsonShape
pm_json_check_object_shape (const char *json,
                            gsize       len,
                            unsigned    max_depth)
{
  unsigned depth = 0;
  gboolean in_string = FALSE, escaped = FALSE, closed = FALSE;
  gsize    start = 0;

  while (start < len && is_json_space (json[start]))
    start++;
  if (start >= len || json[start] != '{')
    return PM_JSON_SHAPE_NOT_OBJECT;
  for (gsize i = start; i < len; i++)
    {
      char c = json[i];

      if (closed)
        {
          if (!is_json_space (c))
            return PM_JSON_SHAPE_TRAILING_DATA;
        }
      else if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (c == '\\')
            escaped = TRUE;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '[' || c == '{')
        {
          if (++depth > max_depth)
            return PM_JSON_SHAPE_TOO_DEEP;
        }
      else if ((c == ']' || c == '}') && depth > 0)
        closed = --depth == 0;
    }
  return PM_JSON_SHAPE_OK;
}

/**
 * pm_json_node_is_utf8:
 * Whether every string and member name under @node is valid UTF-8.
 */
gboolean
pm_json_node_is_utf8 (JsonNode *node)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObjectIter iter;
      const char    *name;
      JsonNode      *member;

      json_object_iter_init (&iter, json_node_get_object (node));
      while (json_object_iter_next (&iter, &name, &member))
        if (!g_utf8_validate (name, -1, NULL) || !pm_json_node_is_utf8 (member))
          return FALSE;
      return TRUE;
    }
  if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (unsigned i = 0; i < json_array_get_length (array); i++)
        if (!pm_json_node_is_utf8 (json_array_get_element (array, i)))
          return FALSE;
      return TRUE;
    }
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return g_utf8_validate (json_node_get_string (node), -1, NULL);
  return TRUE;
}
