/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* What pm_json_check_object_shape() found. */
typedef enum {
  PM_JSON_SHAPE_OK,
  PM_JSON_SHAPE_NOT_OBJECT,    /* the first non-blank byte is not "{" */
  PM_JSON_SHAPE_TOO_DEEP,      /* more nested objects/arrays than allowed */
  PM_JSON_SHAPE_TRAILING_DATA, /* something other than blanks after the object */
} PmJsonShape;

PmJsonShape pm_json_check_object_shape (const char *json,
                                        gsize       len,
                                        unsigned    max_depth);
gboolean    pm_json_node_is_utf8 (JsonNode *node);

G_END_DECLS
