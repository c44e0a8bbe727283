/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The coordination server's request-body validation as pure functions (no
 * SoupServerMessage, no store), for the server itself and for the fuzzer
 * (tests/fuzz/fuzz-coord-request.c). A refusal is a PM_COORD_REQUEST_ERROR
 * whose message is the one the client sees; the server translates the code to
 * its HTTP refusal in one place.
 */

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define PM_COORD_REQUEST_ERROR (pm_coord_request_error_quark ())

typedef enum {
  PM_COORD_REQUEST_ERROR_BODY_TOO_LARGE, /* 413 body_too_large */
  PM_COORD_REQUEST_ERROR_INVALID_JSON,   /* 400 invalid_json */
  PM_COORD_REQUEST_ERROR_MISSING_FIELD,  /* 400 missing_field */
  PM_COORD_REQUEST_ERROR_INVALID_FIELD,  /* 400 invalid_field */
} PmCoordRequestError;

GQuark pm_coord_request_error_quark (void);

/* A request body of @len bytes as a JSON object: at most @max_size bytes,
 * valid UTF-8 without NUL. */
JsonObject *pm_coord_request_parse_body (const char *data,
                                         size_t      len,
                                         size_t      max_size,
                                         GError    **error);
/* A literal unicast "IP:PORT" / "[IPv6]:PORT" with a non-zero port, in its
 * normal form; NULL otherwise. */
char *pm_coord_request_normalize_candidate (const char *text);
/* POST /v1/mesh/devices: the five strings point into @body. */
gboolean pm_coord_request_parse_enroll (JsonObject  *body,
                                        const char **enrollment_key,
                                        const char **public_key,
                                        const char **name,
                                        const char **type,
                                        const char **key_type,
                                        GError     **error);
/* PUT …/candidates: the normalized {"addresses", "mapped",
 * "mappingVariesByDestination"} object that is stored and answered. */
JsonNode *pm_coord_request_parse_candidates (JsonObject *body,
                                             GError    **error);
/* PUT …/push: @endpoint points into @body, NULL to remove the endpoint (and
 * on a refusal). */
gboolean pm_coord_request_parse_push (JsonObject  *body,
                                      const char **endpoint,
                                      GError     **error);
/* https://, or http:// to a loopback IP literal; at most
 * PM_COORD_MAX_ENDPOINT_LEN bytes. */
gboolean pm_coord_request_endpoint_is_acceptable (const char *endpoint);

G_END_DECLS
