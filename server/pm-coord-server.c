/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-coord"

#include "pm-coord-server.h"
#include "pm-coord-server-private.h"

#include "pm-address.h"
#include "pm-json.h"

#include <json-glib/json-glib.h>
#include <string.h>

/*
 * One SoupServer handler (plus an early handler) serves every path; routes[]
 * below maps path patterns and methods to handlers, so 404 and 405 (with
 * Allow) come from one place. Order of checks for a request:
 *
 *   early (headers only): chunked body → 411, Content-Length too big → 413
 *   route → 404, method → 405, bearer token → 401 (the store is only read,
 *   and only for a well-formed token), Content-Type → 415, JSON → 400,
 *   then the handler. last_seen is written only after a success.
 *
 * Wake long-polls are paused SoupServerMessages kept per device in
 * wake_polls; they are answered by a wake, their timeout, a newer poll beyond
 * max_wake_polls, the device's revocation, or the server going away.
 */

/* clang-format off */
G_DEFINE_QUARK (pm-coord-server-error-quark, pm_coord_server_error)
G_DEFINE_QUARK (pm-coord-request-error-quark, pm_coord_request_error)
/* clang-format on */

#define DEVICE_ID_PREFIX "dev_"
#define DEVICE_ID_LEN    (4 + 32)
#define TOKEN_PREFIX     "pmdt_"
#define TOKEN_MAX_LEN    128
/* Size of the wake rate-limit table past which expired entries are dropped. */
#define PRUNE_LAST_WAKE_AT 1024
/* Parsed candidate lists (at most PM_COORD_MAX_ADDRESSES addresses each) kept
 * for GET /v1/mesh/devices; the cache is emptied when it reaches this size. */
#define CANDIDATES_CACHE_MAX 4096

/* --- Refusals: HTTP status and error code, counted for /metrics ---------- */

typedef enum {
  REFUSE_BAD_REQUEST,
  REFUSE_INVALID_JSON,
  REFUSE_MISSING_FIELD,
  REFUSE_INVALID_FIELD,
  REFUSE_SELF_TARGET,
  REFUSE_BAD_WEBSOCKET,
  REFUSE_UNAUTHORIZED,
  REFUSE_INVALID_ENROLLMENT_KEY,
  REFUSE_FORBIDDEN,
  REFUSE_NOT_FOUND,
  REFUSE_METHOD_NOT_ALLOWED,
  REFUSE_CONFLICT,
  REFUSE_LENGTH_REQUIRED,
  REFUSE_BODY_TOO_LARGE,
  REFUSE_UNSUPPORTED_MEDIA_TYPE,
  REFUSE_RATE_LIMITED,
  REFUSE_INTERNAL,
  REFUSE_RELAY_UNAVAILABLE,
  REFUSE_STORE_UNAVAILABLE,
  N_REFUSALS
} Refusal;

static const struct {
  unsigned    status;
  const char *code;
} refusals[N_REFUSALS] = {
  [REFUSE_BAD_REQUEST] = { SOUP_STATUS_BAD_REQUEST, "bad_request" },
  [REFUSE_INVALID_JSON] = { SOUP_STATUS_BAD_REQUEST, "invalid_json" },
  [REFUSE_MISSING_FIELD] = { SOUP_STATUS_BAD_REQUEST, "missing_field" },
  [REFUSE_INVALID_FIELD] = { SOUP_STATUS_BAD_REQUEST, "invalid_field" },
  [REFUSE_SELF_TARGET] = { SOUP_STATUS_BAD_REQUEST, "self_target" },
  [REFUSE_BAD_WEBSOCKET] = { SOUP_STATUS_BAD_REQUEST, "bad_websocket" },
  [REFUSE_UNAUTHORIZED] = { SOUP_STATUS_UNAUTHORIZED, "unauthorized" },
  [REFUSE_INVALID_ENROLLMENT_KEY] = { SOUP_STATUS_FORBIDDEN, "invalid_enrollment_key" },
  [REFUSE_FORBIDDEN] = { SOUP_STATUS_FORBIDDEN, "forbidden" },
  [REFUSE_NOT_FOUND] = { SOUP_STATUS_NOT_FOUND, "not_found" },
  [REFUSE_METHOD_NOT_ALLOWED] = { SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed" },
  [REFUSE_CONFLICT] = { SOUP_STATUS_CONFLICT, "conflict" },
  [REFUSE_LENGTH_REQUIRED] = { SOUP_STATUS_LENGTH_REQUIRED, "length_required" },
  [REFUSE_BODY_TOO_LARGE] = { SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "body_too_large" },
  [REFUSE_UNSUPPORTED_MEDIA_TYPE] = { SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE,
                                      "unsupported_media_type" },
  [REFUSE_RATE_LIMITED] = { 429 /* Too Many Requests */, "rate_limited" },
  [REFUSE_INTERNAL] = { SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal" },
  [REFUSE_RELAY_UNAVAILABLE] = { SOUP_STATUS_SERVICE_UNAVAILABLE, "relay_unavailable" },
  [REFUSE_STORE_UNAVAILABLE] = { SOUP_STATUS_SERVICE_UNAVAILABLE, "store_unavailable" },
};

/* --- Routes ---------------------------------------------------------------- */

typedef enum {
  ROUTE_HEALTHZ,
  ROUTE_METRICS,
  ROUTE_ENROLL,
  ROUTE_LIST,
  ROUTE_REVOKE,
  ROUTE_CANDIDATES,
  ROUTE_PUSH,
  ROUTE_WAKE,
  ROUTE_WAKE_POLL,
  ROUTE_RELAY,
  N_ROUTES
} RouteId;

typedef struct {
  PmCoordServer     *self;
  SoupServerMessage *msg;
  PmDeviceRecord    *caller; /* NULL on unauthenticated routes */
  const char        *param;  /* the {id} of the path, if any */
  JsonObject        *body;   /* the parsed body on BODY_JSON routes */
} Request;

typedef void (*RouteHandler) (Request *req);

static void handle_healthz (Request *req);
static void handle_metrics (Request *req);
static void handle_enroll (Request *req);
static void handle_list (Request *req);
static void handle_revoke (Request *req);
static void handle_candidates (Request *req);
static void handle_push (Request *req);
static void handle_wake (Request *req);
static void handle_wake_poll (Request *req);
static void handle_relay (Request *req);

static const struct {
  RouteId      id;
  const char  *name; /* the route label in /metrics */
  const char  *method;
  const char  *pattern; /* "{id}" matches one path segment */
  gboolean     auth;
  gboolean     json_body;
  RouteHandler handler;
} routes[] = {
  { ROUTE_HEALTHZ, "healthz", "GET", "/healthz", FALSE, FALSE, handle_healthz },
  { ROUTE_METRICS, "metrics", "GET", "/metrics", FALSE, FALSE, handle_metrics },
  { ROUTE_ENROLL, "enroll", "POST", "/v1/mesh/devices", FALSE, TRUE, handle_enroll },
  { ROUTE_LIST, "list_devices", "GET", "/v1/mesh/devices", TRUE, FALSE, handle_list },
  { ROUTE_REVOKE, "revoke", "DELETE", "/v1/mesh/devices/{id}", TRUE, FALSE, handle_revoke },
  { ROUTE_CANDIDATES, "candidates", "PUT", "/v1/mesh/devices/{id}/candidates", TRUE, TRUE,
    handle_candidates },
  { ROUTE_PUSH, "push_endpoint", "PUT", "/v1/mesh/devices/{id}/push", TRUE, TRUE, handle_push },
  { ROUTE_WAKE, "wake", "POST", "/v1/mesh/devices/{id}/wake", TRUE, FALSE, handle_wake },
  { ROUTE_WAKE_POLL, "wake_poll", "GET", "/v1/mesh/wake", TRUE, FALSE, handle_wake_poll },
  { ROUTE_RELAY, "relay", "GET", "/v1/mesh/relay/{id}/stream", TRUE, FALSE, handle_relay },
};

typedef enum {
  PUSH_OK,
  PUSH_HTTP_ERROR,
  PUSH_FAILED,
  N_PUSH_RESULTS
} PushResult;

static const char *const push_result_names[N_PUSH_RESULTS] = { "ok", "http_error", "failed" };

/* --- The object -------------------------------------------------------- */

typedef struct {
  PmCoordServer     *self; /* not owned */
  SoupServerMessage *msg;
  char              *device_id;
  GSource           *timeout;
  gulong             finished_id;
} WakePoll;

struct _PmCoordServer {
  GObject parent_instance;

  PmStore      *store;
  PmRelay      *relay; /* nullable */
  PmStunServer *stun;  /* nullable: only for /metrics */
  PmCoordLimits limits;
  SoupServer   *server;
  SoupSession  *push_session;
  GCancellable *cancellable; /* cancels push deliveries on dispose */

  GHashTable *wake_polls; /* device id → GPtrArray of WakePoll, oldest first */
  GHashTable *last_wake;  /* target device id → int64 monotonic µs, boxed */
  GHashTable *candidates; /* stored candidates JSON text → sealed JsonNode (object) */

  uint64_t requests[N_ROUTES];
  uint64_t refused[N_REFUSALS];
  uint64_t wakes_long_poll;
  uint64_t wakes_push;
  uint64_t push_results[N_PUSH_RESULTS];
};

G_DEFINE_FINAL_TYPE (PmCoordServer, pm_coord_server, G_TYPE_OBJECT)

void
pm_coord_limits_default (PmCoordLimits *limits)
{
  g_return_if_fail (limits != NULL);

  limits->max_body_size = PM_COORD_MAX_BODY_SIZE;
  limits->wake_timeout_us = PM_COORD_WAKE_TIMEOUT_US;
  limits->wake_interval_us = PM_COORD_WAKE_INTERVAL_US;
  limits->max_wake_polls = PM_COORD_MAX_WAKE_POLLS;
  limits->online_window_s = PM_COORD_ONLINE_WINDOW_S;
  limits->touch_interval_s = PM_COORD_TOUCH_INTERVAL_S;
  limits->push_timeout_s = PM_COORD_PUSH_TIMEOUT_S;
}

/* --- Responses ------------------------------------------------------------ */

static void
respond_json (SoupServerMessage *msg,
              unsigned           status,
              JsonNode          *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;
  size_t           len;

  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, &len);
  /* libsoup 3.2 has no reason phrase for 429. */
  soup_server_message_set_status (msg, status, status == 429 ? "Too Many Requests" : NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    g_steal_pointer (&text), len);
}

static void
respond_builder (SoupServerMessage *msg,
                 unsigned           status,
                 JsonBuilder       *builder)
{
  g_autoptr (JsonNode) node = json_builder_get_root (builder);

  respond_json (msg, status, node);
}

static void
refuse (PmCoordServer     *self,
        SoupServerMessage *msg,
        Refusal            refusal,
        const char        *message)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  g_assert (refusal < N_REFUSALS);
  self->refused[refusal]++;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "code");
  json_builder_add_string_value (builder, refusals[refusal].code);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, message);
  json_builder_end_object (builder);
  json_builder_end_object (builder);

  if (refusal == REFUSE_UNAUTHORIZED)
    soup_message_headers_replace (headers, "WWW-Authenticate", "Bearer realm=\"pipermesh\"");
  respond_builder (msg, refusals[refusal].status, builder);
}

/* Translates a store error once, here at the boundary. */
static void
refuse_store_error (PmCoordServer     *self,
                    SoupServerMessage *msg,
                    const GError      *error)
{
  if (error->domain != PM_STORE_ERROR)
    {
      g_warning ("Unexpected error: %s", error->message);
      refuse (self, msg, REFUSE_INTERNAL, "Internal error");
      return;
    }
  switch ((PmStoreError) error->code)
    {
    case PM_STORE_ERROR_NOT_FOUND:
      refuse (self, msg, REFUSE_NOT_FOUND, "No such device");
      break;
    case PM_STORE_ERROR_CONFLICT:
      refuse (self, msg, REFUSE_CONFLICT, error->message);
      break;
    case PM_STORE_ERROR_INVALID_KEY:
      refuse (self, msg, REFUSE_INVALID_ENROLLMENT_KEY, error->message);
      break;
    case PM_STORE_ERROR_INVALID_ARGUMENT:
      refuse (self, msg, REFUSE_INVALID_FIELD, error->message);
      break;
    case PM_STORE_ERROR_IO:
    default:
      g_warning ("Store error: %s", error->message);
      refuse (self, msg, REFUSE_STORE_UNAVAILABLE, "The database is unavailable; try again later");
      break;
    }
}

/* --- Parsing helpers ------------------------------------------------------- */

static gboolean
is_device_id (const char *text)
{
  return text != NULL && strlen (text) == DEVICE_ID_LEN &&
         g_str_has_prefix (text, DEVICE_ID_PREFIX) &&
         strspn (text + 4, "0123456789abcdef") == DEVICE_ID_LEN - 4;
}


/* A candidate: a literal unicast address and a non-zero port, normalized. */
char *
pm_coord_request_normalize_candidate (const char *text)
{
  g_autoptr (GInetSocketAddress) address = pm_address_parse (text, FALSE);
  GInetAddress *ip;

  if (address == NULL)
    return NULL;
  ip = g_inet_socket_address_get_address (address);
  if (g_inet_address_get_is_any (ip) || g_inet_address_get_is_multicast (ip))
    return NULL;
  return pm_address_to_string (address);
}

/* Refuses members of @object not in @allowed (NULL-terminated). */
static gboolean
check_members (JsonObject        *object,
               const char *const *allowed,
               GError           **error)
{
  g_autoptr (GList) members = json_object_get_members (object);

  for (GList *l = members; l != NULL; l = l->next)
    if (!g_strv_contains (allowed, l->data))
      {
        g_set_error (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                     "Unknown field “%s”", (const char *) l->data);
        return FALSE;
      }
  return TRUE;
}

/* The string member @name. Missing → missing_field unless @optional (then
 * *out = NULL); null → allowed only if @nullable; other types → invalid_field. */
static gboolean
get_string (JsonObject  *body,
            const char  *name,
            gboolean     optional,
            gboolean     nullable,
            const char **out,
            GError     **error)
{
  JsonNode *node = json_object_get_member (body, name);

  *out = NULL;
  if (node == NULL)
    {
      if (optional)
        return TRUE;
      g_set_error (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_MISSING_FIELD,
                   "The field “%s” is required", name);
      return FALSE;
    }
  if (JSON_NODE_HOLDS_NULL (node) && nullable)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                   "The field “%s” must be a string%s", name, nullable ? " or null" : "");
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

/* Translates a request error once, here at the boundary. */
static void
refuse_request_error (Request      *req,
                      const GError *error)
{
  static const Refusal refusal[] = {
    [PM_COORD_REQUEST_ERROR_BODY_TOO_LARGE] = REFUSE_BODY_TOO_LARGE,
    [PM_COORD_REQUEST_ERROR_INVALID_JSON] = REFUSE_INVALID_JSON,
    [PM_COORD_REQUEST_ERROR_MISSING_FIELD] = REFUSE_MISSING_FIELD,
    [PM_COORD_REQUEST_ERROR_INVALID_FIELD] = REFUSE_INVALID_FIELD,
  };

  g_assert (error->domain == PM_COORD_REQUEST_ERROR);
  g_assert (error->code >= 0 && (size_t) error->code < G_N_ELEMENTS (refusal));
  refuse (req->self, req->msg, refusal[error->code], error->message);
}

static gboolean
content_type_is_json (SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char         *type = soup_message_headers_get_content_type (headers, NULL);

  return type != NULL && g_ascii_strcasecmp (type, "application/json") == 0;
}

JsonObject *
pm_coord_request_parse_body (const char *data,
                             size_t      len,
                             size_t      max_size,
                             GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  JsonNode   *root;
  PmJsonShape shape;

  if (len > max_size)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_BODY_TOO_LARGE,
                           "The request body is too large");
      return NULL;
    }
  if (len == 0 || !g_utf8_validate (data, (gssize) len, NULL) || memchr (data, '\0', len) != NULL)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body is not valid JSON");
      return NULL;
    }
  shape = pm_json_check_object_shape (data, len, PM_COORD_MAX_JSON_DEPTH);
  if (shape == PM_JSON_SHAPE_NOT_OBJECT)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body must be a JSON object");
      return NULL;
    }
  if (shape == PM_JSON_SHAPE_TOO_DEEP)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body's JSON is nested too deeply");
      return NULL;
    }
  if (shape != PM_JSON_SHAPE_OK || !json_parser_load_from_data (parser, data, (gssize) len, NULL))
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body is not valid JSON");
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body must be a JSON object");
      return NULL;
    }
  if (!pm_json_node_is_utf8 (root))
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_JSON,
                           "The body is not valid JSON");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static JsonObject *
parse_body (Request *req)
{
  SoupMessageBody *body = soup_server_message_get_request_body (req->msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (GError) error = NULL;
  size_t      len;
  const char *data = g_bytes_get_data (bytes, &len);
  JsonObject *object;

  object = pm_coord_request_parse_body (data, len, req->self->limits.max_body_size, &error);
  if (object == NULL)
    refuse_request_error (req, error);
  return object;
}

/* --- Authentication ---------------------------------------------------------- */

static PmDeviceRecord *
authenticate (PmCoordServer     *self,
              SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char         *value = soup_message_headers_get_one (headers, "Authorization");
  const char         *token;
  size_t              len;
  g_autoptr (GError) error = NULL;
  PmDeviceRecord *device;

  if (value == NULL || g_ascii_strncasecmp (value, "Bearer ", 7) != 0)
    {
      refuse (self, msg, REFUSE_UNAUTHORIZED, "A bearer token is required");
      return NULL;
    }
  token = value + 7;
  while (*token == ' ')
    token++;
  len = strlen (token);
  /* A token that cannot be one of ours never reaches the store. */
  if (!g_str_has_prefix (token, TOKEN_PREFIX) || len > TOKEN_MAX_LEN ||
      strspn (token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != len)
    {
      refuse (self, msg, REFUSE_UNAUTHORIZED, "The bearer token is not valid");
      return NULL;
    }
  device = pm_store_find_device_by_token (self->store, token, &error);
  if (device == NULL)
    {
      if (g_error_matches (error, PM_STORE_ERROR, PM_STORE_ERROR_NOT_FOUND))
        refuse (self, msg, REFUSE_UNAUTHORIZED, "The bearer token is not valid");
      else
        refuse_store_error (self, msg, error);
      return NULL;
    }
  return device;
}

/* Records that the caller was seen, at most every touch_interval_s. */
static void
touch_caller (PmCoordServer  *self,
              PmDeviceRecord *caller)
{
  int64_t now = pm_store_now ();
  g_autoptr (GError) error = NULL;

  if (caller->last_seen != 0 && now - caller->last_seen < self->limits.touch_interval_s)
    return;
  if (!pm_store_touch_device (self->store, caller->id, now, &error))
    g_debug ("Could not update last_seen of %s: %s", caller->id, error->message);
}

/* The other device @id of the caller's account, or NULL after refusing with
 * 404 (unknown, revoked or another account's: all look the same). */
static PmDeviceRecord *
get_account_device (Request    *req,
                    const char *id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;

  if (!is_device_id (id))
    {
      refuse (req->self, req->msg, REFUSE_NOT_FOUND, "No such device");
      return NULL;
    }
  device = pm_store_get_device (req->self->store, id, &error);
  if (device == NULL)
    {
      refuse_store_error (req->self, req->msg, error);
      return NULL;
    }
  if (device->revoked || g_strcmp0 (device->account_id, req->caller->account_id) != 0)
    {
      refuse (req->self, req->msg, REFUSE_NOT_FOUND, "No such device");
      return NULL;
    }
  return g_steal_pointer (&device);
}

/* Routes acting on the caller itself: {id} must be the caller. */
static gboolean
check_own_device (Request *req)
{
  g_autoptr (PmDeviceRecord) device = NULL;

  if (g_strcmp0 (req->param, req->caller->id) == 0)
    return TRUE;
  device = get_account_device (req, req->param);
  if (device != NULL)
    refuse (req->self, req->msg, REFUSE_FORBIDDEN, "A device can only change its own settings");
  return FALSE;
}

/* --- Wake long-polls ----------------------------------------------------------- */

static void wake_poll_free (WakePoll *poll);

static GPtrArray *
wake_polls_of (PmCoordServer *self,
               const char    *device_id)
{
  return g_hash_table_lookup (self->wake_polls, device_id);
}

/* Answers @poll (already detached from the table) and frees it. */
static void
wake_poll_answer (WakePoll *poll,
                  unsigned  status,
                  JsonNode *body)
{
  g_autoptr (SoupServerMessage) msg = g_object_ref (poll->msg);

  /* Freed first: unpausing may finish the message at once. */
  wake_poll_free (poll);
  if (status == SOUP_STATUS_NO_CONTENT)
    soup_server_message_set_status (msg, status, NULL);
  else if (body != NULL)
    respond_json (msg, status, body);
  soup_server_message_unpause (msg);
}

static void
wake_poll_free (WakePoll *poll)
{
  if (poll->timeout != NULL)
    {
      g_source_destroy (poll->timeout);
      g_source_unref (poll->timeout);
    }
  g_clear_signal_handler (&poll->finished_id, poll->msg);
  g_object_unref (poll->msg);
  g_free (poll->device_id);
  g_free (poll);
}

/* Takes @poll out of the table without answering it. */
static void
wake_poll_detach (WakePoll *poll)
{
  GPtrArray *polls = wake_polls_of (poll->self, poll->device_id);

  g_assert (polls != NULL);
  g_ptr_array_remove (polls, poll);
  if (polls->len == 0)
    g_hash_table_remove (poll->self->wake_polls, poll->device_id);
}

static gboolean
on_wake_poll_timeout (gpointer user_data)
{
  WakePoll *poll = user_data;

  wake_poll_detach (poll);
  wake_poll_answer (poll, SOUP_STATUS_NO_CONTENT, NULL);
  return G_SOURCE_REMOVE;
}

static void
on_wake_poll_finished (SoupServerMessage *msg,
                       gpointer           user_data)
{
  WakePoll *poll = user_data;

  /* The connection went away while the poll was held. */
  wake_poll_detach (poll);
  wake_poll_free (poll);
}

/* Detaches and returns every poll of @device_id (may be NULL). */
static GPtrArray *
wake_polls_steal (PmCoordServer *self,
                  const char    *device_id)
{
  g_autofree char *key = NULL;
  GPtrArray       *polls = NULL;

  if (!g_hash_table_steal_extended (self->wake_polls, device_id, (gpointer *) &key,
                                    (gpointer *) &polls))
    return NULL;
  return polls;
}

static void
end_wake_polls (PmCoordServer *self,
                const char    *device_id,
                Refusal        refusal,
                const char    *message)
{
  g_autoptr (GPtrArray) polls = wake_polls_steal (self, device_id);

  for (unsigned i = 0; polls != NULL && i < polls->len; i++)
    {
      WakePoll *poll = polls->pdata[i];

      refuse (self, poll->msg, refusal, message);
      wake_poll_answer (poll, 0, NULL);
    }
}

/* --- Push delivery ---------------------------------------------------------- */

typedef struct {
  PmCoordServer *self;
  char          *device_id;
} PushDelivery;

static void
push_delivery_free (PushDelivery *delivery)
{
  g_object_unref (delivery->self);
  g_free (delivery->device_id);
  g_free (delivery);
}

static void
on_push_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  PushDelivery *delivery = user_data;
  SoupMessage  *message = soup_session_get_async_result_message (SOUP_SESSION (source), result);
  g_autoptr (GError) error = NULL;
  g_autoptr (GInputStream) stream = NULL;
  unsigned status;

  stream = soup_session_send_finish (SOUP_SESSION (source), result, &error);
  if (stream == NULL)
    {
      /* Metadata only: never the endpoint URL (it is a capability) or a body. */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          delivery->self->push_results[PUSH_FAILED]++;
          g_message ("Push wake to %s failed: %s", delivery->device_id, error->message);
        }
    }
  else
    {
      status = soup_message_get_status (message);
      PushResult outcome = SOUP_STATUS_IS_SUCCESSFUL (status) ? PUSH_OK : PUSH_HTTP_ERROR;

      delivery->self->push_results[outcome]++;
      g_message ("Push wake to %s: HTTP %u", delivery->device_id, status);
      g_input_stream_close_async (stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
    }
  push_delivery_free (delivery);
}

static void
send_push (PmCoordServer        *self,
           const PmDeviceRecord *target,
           const char           *from)
{
  g_autoptr (SoupMessage) message = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (GBytes) body = NULL;
  PushDelivery *delivery;
  char         *text;

  message = soup_message_new (SOUP_METHOD_POST, target->push_endpoint);
  if (message == NULL)
    {
      self->push_results[PUSH_FAILED]++;
      return;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, "wake");
  json_builder_set_member_name (builder, "from");
  json_builder_add_string_value (builder, from);
  json_builder_end_object (builder);
  node = json_builder_get_root (builder);
  text = json_to_string (node, FALSE);
  body = g_bytes_new_take (text, strlen (text));
  soup_message_set_request_body_from_bytes (message, "application/json", body);
  soup_message_add_flags (message, SOUP_MESSAGE_NO_REDIRECT);

  delivery = g_new0 (PushDelivery, 1);
  delivery->self = g_object_ref (self);
  delivery->device_id = g_strdup (target->id);
  self->wakes_push++;
  soup_session_send_async (self->push_session, message, G_PRIORITY_DEFAULT, self->cancellable,
                           on_push_sent, delivery);
}

/* --- Handlers -------------------------------------------------------------- */

static void
handle_healthz (Request *req)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (GError) error = NULL;
  PmStoreCounts counts;
  gboolean      ok = pm_store_get_counts (req->self->store, &counts, &error);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, ok ? "ok" : "unavailable");
  json_builder_end_object (builder);
  if (!ok)
    g_warning ("Health check: %s", error->message);
  respond_builder (req->msg, ok ? SOUP_STATUS_OK : SOUP_STATUS_SERVICE_UNAVAILABLE, builder);
}

static void
metric_header (GString    *out,
               const char *name,
               const char *type,
               const char *help)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
handle_metrics (Request *req)
{
  PmCoordServer *self = req->self;
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  PmStoreCounts  counts;
  GHashTableIter iter;
  gpointer       value;
  unsigned       polls = 0;
  size_t         len;

  if (!pm_store_get_counts (self->store, &counts, &error))
    {
      refuse_store_error (self, req->msg, error);
      return;
    }

  metric_header (out, "pipermesh_accounts", "gauge", "Accounts in the store.");
  g_string_append_printf (out, "pipermesh_accounts %" G_GINT64_FORMAT "\n", counts.accounts);
  metric_header (out, "pipermesh_devices", "gauge", "Devices in the store, by state.");
  g_string_append_printf (out, "pipermesh_devices{state=\"active\"} %" G_GINT64_FORMAT "\n",
                          counts.active_devices);
  g_string_append_printf (out, "pipermesh_devices{state=\"revoked\"} %" G_GINT64_FORMAT "\n",
                          counts.devices - counts.active_devices);

  g_hash_table_iter_init (&iter, self->wake_polls);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    polls += ((GPtrArray *) value)->len;
  metric_header (out, "pipermesh_wake_polls", "gauge", "Wake long-polls held open.");
  g_string_append_printf (out, "pipermesh_wake_polls %u\n", polls);

  metric_header (out, "pipermesh_http_requests_total", "counter", "HTTP requests, by route.");
  for (size_t i = 0; i < G_N_ELEMENTS (routes); i++)
    g_string_append_printf (out,
                            "pipermesh_http_requests_total{route=\"%s\"} %" G_GUINT64_FORMAT "\n",
                            routes[i].name, self->requests[routes[i].id]);
  metric_header (out, "pipermesh_http_refusals_total", "counter",
                 "HTTP requests refused, by error code.");
  for (unsigned i = 0; i < N_REFUSALS; i++)
    g_string_append_printf (out,
                            "pipermesh_http_refusals_total{reason=\"%s\"} %" G_GUINT64_FORMAT "\n",
                            refusals[i].code, self->refused[i]);

  metric_header (out, "pipermesh_wakes_total", "counter", "Wakes sent, by channel.");
  g_string_append_printf (out,
                          "pipermesh_wakes_total{channel=\"long_poll\"} %" G_GUINT64_FORMAT "\n",
                          self->wakes_long_poll);
  g_string_append_printf (out, "pipermesh_wakes_total{channel=\"push\"} %" G_GUINT64_FORMAT "\n",
                          self->wakes_push);
  metric_header (out, "pipermesh_push_deliveries_total", "counter",
                 "Push endpoint deliveries, by result.");
  for (unsigned i = 0; i < N_PUSH_RESULTS; i++)
    g_string_append_printf (out,
                            "pipermesh_push_deliveries_total{result=\"%s\"} %" G_GUINT64_FORMAT "\n",
                            push_result_names[i], self->push_results[i]);

  if (self->relay != NULL)
    {
      PmRelayStats stats;

      pm_relay_get_stats (self->relay, &stats);
      metric_header (out, "pipermesh_relay_sessions", "gauge", "Relay sessions, by state.");
      g_string_append_printf (out, "pipermesh_relay_sessions{state=\"waiting\"} %u\n",
                              stats.sessions_waiting);
      g_string_append_printf (out, "pipermesh_relay_sessions{state=\"active\"} %u\n",
                              stats.sessions_active);
      metric_header (out, "pipermesh_relay_connections", "gauge", "Open relay WebSockets.");
      g_string_append_printf (out, "pipermesh_relay_connections %u\n", stats.connections);
      metric_header (out, "pipermesh_relay_bytes_total", "counter", "Payload bytes relayed.");
      g_string_append_printf (out, "pipermesh_relay_bytes_total %" G_GUINT64_FORMAT "\n",
                              stats.bytes_relayed);
      metric_header (out, "pipermesh_relay_messages_total", "counter", "Messages relayed.");
      g_string_append_printf (out, "pipermesh_relay_messages_total %" G_GUINT64_FORMAT "\n",
                              stats.messages_relayed);
      metric_header (out, "pipermesh_relay_dropped_bytes_total", "counter",
                     "Payload bytes that arrived while the peer was away.");
      g_string_append_printf (out, "pipermesh_relay_dropped_bytes_total %" G_GUINT64_FORMAT "\n",
                              stats.bytes_dropped);
      metric_header (out, "pipermesh_relay_closed_total", "counter",
                     "Relay connections closed by the relay, by reason.");
      for (unsigned i = 0; i < PM_RELAY_N_REASONS; i++)
        g_string_append_printf (out,
                                "pipermesh_relay_closed_total{reason=\"%s\"} %" G_GUINT64_FORMAT "\n",
                                pm_relay_reason_to_string ((PmRelayReason) i), stats.closed[i]);
    }

  if (self->stun != NULL)
    {
      metric_header (out, "pipermesh_stun_datagrams_total", "counter",
                     "STUN datagrams received, by what the responder did with them.");
      for (unsigned i = 0; i < PM_STUN_SERVER_N_OUTCOMES; i++)
        g_string_append_printf (out,
                                "pipermesh_stun_datagrams_total{outcome=\"%s\"} %" G_GUINT64_FORMAT "\n",
                                pm_stun_server_outcome_name ((PmStunServerOutcome) i),
                                pm_stun_server_get_count (self->stun, (PmStunServerOutcome) i));
    }

  len = out->len;
  soup_server_message_set_status (req->msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (req->msg, "text/plain; version=0.0.4; charset=utf-8",
                                    SOUP_MEMORY_TAKE, g_string_free (g_steal_pointer (&out), FALSE),
                                    len);
}

gboolean
pm_coord_request_parse_enroll (JsonObject  *body,
                               const char **enrollment_key,
                               const char **public_key,
                               const char **name,
                               const char **type,
                               const char **key_type,
                               GError     **error)
{
  static const char *const allowed[] = {
    "enrollmentKey", "publicKey", "name", "type", "keyType", NULL
  };

  return check_members (body, allowed, error) &&
         get_string (body, "enrollmentKey", FALSE, FALSE, enrollment_key, error) &&
         get_string (body, "publicKey", FALSE, FALSE, public_key, error) &&
         get_string (body, "name", FALSE, FALSE, name, error) &&
         get_string (body, "type", FALSE, FALSE, type, error) &&
         get_string (body, "keyType", FALSE, FALSE, key_type, error);
}

static void
handle_enroll (Request *req)
{
  const char *key, *public_key, *name, *type, *key_type;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmDeviceRecord) device = NULL;
  g_autoptr (JsonBuilder) builder = NULL;
  g_autofree char *token = NULL;

  if (!pm_coord_request_parse_enroll (req->body, &key, &public_key, &name, &type, &key_type,
                                      &error))
    {
      refuse_request_error (req, error);
      return;
    }

  device = pm_store_enroll_device (req->self->store, key, name, type, public_key, key_type,
                                   pm_store_now (), &token, &error);
  if (device == NULL)
    {
      refuse_store_error (req->self, req->msg, error);
      return;
    }
  g_message ("Enrolled device %s in account %s", device->id, device->account_id);

  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, device->id);
  json_builder_set_member_name (builder, "token");
  json_builder_add_string_value (builder, token);
  json_builder_set_member_name (builder, "accountId");
  json_builder_add_string_value (builder, device->account_id);
  json_builder_end_object (builder);
  respond_builder (req->msg, SOUP_STATUS_CREATED, builder);
}

/* The stored candidates JSON of a device as a node for the listing, or NULL
 * if there are none (or they are not a JSON object). Listings are read far
 * more often than candidates change, and parsing was most of a listing's
 * cost: each distinct text is parsed once and the sealed tree is shared. */
static JsonNode *
candidates_node (PmCoordServer *self,
                 const char    *text)
{
  JsonNode *node;

  if (text == NULL)
    return NULL;
  node = g_hash_table_lookup (self->candidates, text);
  if (node == NULL)
    {
      node = json_from_string (text, NULL);
      if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
        {
          g_clear_pointer (&node, json_node_unref);
          return NULL;
        }
      json_node_seal (node);
      if (g_hash_table_size (self->candidates) >= CANDIDATES_CACHE_MAX)
        g_hash_table_remove_all (self->candidates);
      g_hash_table_insert (self->candidates, g_strdup (text), node);
    }
  /* A new node over the same immutable object: the response tree may set
   * its parent, the cached one stays untouched. */
  return json_node_copy (node);
}

static void
add_device (PmCoordServer        *self,
            JsonBuilder          *builder,
            const PmDeviceRecord *device,
            int64_t               now)
{
  gboolean recent = device->last_seen != 0 &&
                    now - device->last_seen <= self->limits.online_window_s;
  gboolean online = recent || wake_polls_of (self, device->id) != NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, device->id);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, device->name);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, device->type);
  json_builder_set_member_name (builder, "publicKey");
  json_builder_add_string_value (builder, device->public_key);
  json_builder_set_member_name (builder, "keyType");
  json_builder_add_string_value (builder, device->key_type);
  json_builder_set_member_name (builder, "lastSeen");
  if (device->last_seen != 0)
    {
      g_autoptr (GDateTime) time = g_date_time_new_from_unix_utc (device->last_seen);
      g_autofree char *text = time != NULL ? g_date_time_format (time, "%Y-%m-%dT%H:%M:%SZ") : NULL;

      if (text != NULL)
        json_builder_add_string_value (builder, text);
      else
        json_builder_add_null_value (builder);
    }
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "online");
  json_builder_add_boolean_value (builder, online);
  json_builder_set_member_name (builder, "candidates");
  {
    JsonNode *candidates = candidates_node (self, device->candidates);

    if (candidates != NULL)
      json_builder_add_value (builder, candidates);
    else
      json_builder_add_null_value (builder);
  }
  json_builder_end_object (builder);
}

static void
handle_list (Request *req)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  int64_t now = pm_store_now ();

  devices = pm_store_list_devices (req->self->store, req->caller->account_id, FALSE, &error);
  if (devices == NULL)
    {
      refuse_store_error (req->self, req->msg, error);
      return;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "devices");
  json_builder_begin_array (builder);
  for (unsigned i = 0; i < devices->len; i++)
    add_device (req->self, builder, devices->pdata[i], now);
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  respond_builder (req->msg, SOUP_STATUS_OK, builder);
}

static void
handle_revoke (Request *req)
{
  PmCoordServer *self = req->self;
  g_autoptr (GError) error = NULL;

  if (!is_device_id (req->param))
    {
      refuse (self, req->msg, REFUSE_NOT_FOUND, "No such device");
      return;
    }
  if (!pm_store_revoke_device (self->store, req->param, req->caller->account_id, pm_store_now (),
                               &error))
    {
      refuse_store_error (self, req->msg, error);
      return;
    }
  g_message ("Device %s revoked by %s", req->param, req->caller->id);
  if (self->relay != NULL)
    pm_relay_close_device (self->relay, req->param);
  end_wake_polls (self, req->param, REFUSE_UNAUTHORIZED, "The device was revoked");
  g_hash_table_remove (self->last_wake, req->param);
  soup_server_message_set_status (req->msg, SOUP_STATUS_NO_CONTENT, NULL);
}

JsonNode *
pm_coord_request_parse_candidates (JsonObject *body,
                                   GError    **error)
{
  static const char *const allowed[] = {
    "addresses", "mapped", "mappingVariesByDestination", NULL
  };
  JsonNode        *addresses = json_object_get_member (body, "addresses");
  JsonNode        *varies = json_object_get_member (body, "mappingVariesByDestination");
  const char      *mapped;
  g_autofree char *mapped_normal = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  JsonArray *array;

  if (!check_members (body, allowed, error))
    return NULL;
  if (addresses == NULL)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_MISSING_FIELD,
                           "The field “addresses” is required");
      return NULL;
    }
  if (!JSON_NODE_HOLDS_ARRAY (addresses))
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                           "The field “addresses” must be an array of strings");
      return NULL;
    }
  array = json_node_get_array (addresses);
  if (json_array_get_length (array) > PM_COORD_MAX_ADDRESSES)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                           "At most 16 addresses are allowed");
      return NULL;
    }
  if (varies != NULL && (!JSON_NODE_HOLDS_VALUE (varies) ||
                         json_node_get_value_type (varies) != G_TYPE_BOOLEAN))
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                           "The field “mappingVariesByDestination” must be true or false");
      return NULL;
    }
  if (!get_string (body, "mapped", TRUE, TRUE, &mapped, error))
    return NULL;
  if (mapped != NULL && (mapped_normal = pm_coord_request_normalize_candidate (mapped)) == NULL)
    {
      g_set_error_literal (error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
                           "The field “mapped” must be an address such as 203.0.113.7:41641");
      return NULL;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "addresses");
  json_builder_begin_array (builder);
  for (unsigned i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode        *element = json_array_get_element (array, i);
      g_autofree char *normal = NULL;

      if (JSON_NODE_HOLDS_VALUE (element) && json_node_get_value_type (element) == G_TYPE_STRING)
        normal = pm_coord_request_normalize_candidate (json_node_get_string (element));
      if (normal == NULL)
        {
          g_set_error_literal (
            error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
            "Each address must be a string such as 192.0.2.10:41641 or [2001:db8::1]:41641");
          return NULL;
        }
      json_builder_add_string_value (builder, normal);
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "mapped");
  if (mapped_normal != NULL)
    json_builder_add_string_value (builder, mapped_normal);
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "mappingVariesByDestination");
  json_builder_add_boolean_value (builder, varies != NULL && json_node_get_boolean (varies));
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

static void
handle_candidates (Request *req)
{
  PmCoordServer *self = req->self;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;

  if (!check_own_device (req))
    return;
  node = pm_coord_request_parse_candidates (req->body, &error);
  if (node == NULL)
    {
      refuse_request_error (req, error);
      return;
    }
  text = json_to_string (node, FALSE);
  if (!pm_store_set_candidates (self->store, req->caller->id, text, pm_store_now (), &error))
    {
      refuse_store_error (self, req->msg, error);
      return;
    }
  /* set_candidates also wrote last_seen. */
  req->caller->last_seen = pm_store_now ();
  respond_json (req->msg, SOUP_STATUS_OK, node);
}

/* http: only to a loopback IP literal (a push service on the same host). */
gboolean
pm_coord_request_endpoint_is_acceptable (const char *endpoint)
{
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GInetAddress) address = NULL;
  const char *scheme, *host;

  if (strlen (endpoint) > PM_COORD_MAX_ENDPOINT_LEN)
    return FALSE;
  uri = g_uri_parse (endpoint, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if (host == NULL || *host == '\0' || g_uri_get_userinfo (uri) != NULL ||
      g_uri_get_fragment (uri) != NULL)
    return FALSE;
  if (g_ascii_strcasecmp (scheme, "https") == 0)
    return TRUE;
  if (g_ascii_strcasecmp (scheme, "http") != 0)
    return FALSE;
  address = g_inet_address_new_from_string (host);
  return address != NULL && g_inet_address_get_is_loopback (address);
}

gboolean
pm_coord_request_parse_push (JsonObject  *body,
                             const char **endpoint,
                             GError     **error)
{
  static const char *const allowed[] = { "endpoint", NULL };

  *endpoint = NULL;
  if (!check_members (body, allowed, error) ||
      !get_string (body, "endpoint", FALSE, TRUE, endpoint, error))
    return FALSE;
  if (*endpoint != NULL && !pm_coord_request_endpoint_is_acceptable (*endpoint))
    {
      g_set_error_literal (
        error, PM_COORD_REQUEST_ERROR, PM_COORD_REQUEST_ERROR_INVALID_FIELD,
        "The endpoint must be an https:// URL (http:// only to a loopback address)");
      *endpoint = NULL;
      return FALSE;
    }
  return TRUE;
}

static void
handle_push (Request *req)
{
  const char *endpoint;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();

  if (!check_own_device (req))
    return;
  if (!pm_coord_request_parse_push (req->body, &endpoint, &error))
    {
      refuse_request_error (req, error);
      return;
    }
  if (!pm_store_set_push_endpoint (req->self->store, req->caller->id, endpoint, &error))
    {
      refuse_store_error (req->self, req->msg, error);
      return;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "endpoint");
  if (endpoint != NULL)
    json_builder_add_string_value (builder, endpoint);
  else
    json_builder_add_null_value (builder);
  json_builder_end_object (builder);
  respond_builder (req->msg, SOUP_STATUS_OK, builder);
}

/* Forgets wakes older than the interval once the table has grown: they no
 * longer limit anything. */
static void
prune_last_wake (PmCoordServer *self,
                 int64_t        now)
{
  GHashTableIter iter;
  int64_t       *last;

  if (g_hash_table_size (self->last_wake) < PRUNE_LAST_WAKE_AT)
    return;
  g_hash_table_iter_init (&iter, self->last_wake);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &last))
    if (now - *last >= self->limits.wake_interval_us)
      g_hash_table_iter_remove (&iter);
}

static void
handle_wake (Request *req)
{
  PmCoordServer *self = req->self;
  g_autoptr (PmDeviceRecord) target = NULL;
  g_autoptr (GPtrArray) polls = NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) wake = NULL;
  int64_t *last;
  int64_t  now = g_get_monotonic_time ();
  unsigned delivered = 0;

  if (g_strcmp0 (req->param, req->caller->id) == 0)
    {
      refuse (self, req->msg, REFUSE_SELF_TARGET, "A device cannot wake itself");
      return;
    }
  target = get_account_device (req, req->param);
  if (target == NULL)
    return;

  last = g_hash_table_lookup (self->last_wake, target->id);
  if (last != NULL && now - *last < self->limits.wake_interval_us)
    {
      int64_t          left_us = self->limits.wake_interval_us - (now - *last);
      int64_t          wait_s = (left_us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC;
      g_autofree char *retry = g_strdup_printf ("%" G_GINT64_FORMAT, MAX (wait_s, 1));

      soup_message_headers_replace (soup_server_message_get_response_headers (req->msg),
                                    "Retry-After", retry);
      refuse (self, req->msg, REFUSE_RATE_LIMITED,
              "This device was woken moments ago; try again later");
      return;
    }
  prune_last_wake (self, now);
  g_hash_table_insert (self->last_wake, g_strdup (target->id), g_memdup2 (&now, sizeof now));

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "wake");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "from");
  json_builder_add_string_value (builder, req->caller->id);
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  wake = json_builder_get_root (builder);

  polls = wake_polls_steal (self, target->id);
  for (unsigned i = 0; polls != NULL && i < polls->len; i++)
    {
      wake_poll_answer (polls->pdata[i], SOUP_STATUS_OK, wake);
      delivered++;
    }
  self->wakes_long_poll += delivered;
  if (target->push_endpoint != NULL)
    send_push (self, target, req->caller->id);

  g_clear_object (&builder);
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "longPolls");
  json_builder_add_int_value (builder, delivered);
  json_builder_set_member_name (builder, "push");
  json_builder_add_boolean_value (builder, target->push_endpoint != NULL);
  json_builder_end_object (builder);
  respond_builder (req->msg, SOUP_STATUS_ACCEPTED, builder);
}

static void
handle_wake_poll (Request *req)
{
  PmCoordServer *self = req->self;
  GPtrArray     *polls = wake_polls_of (self, req->caller->id);
  WakePoll      *poll;

  if (polls == NULL)
    {
      polls = g_ptr_array_new ();
      g_hash_table_insert (self->wake_polls, g_strdup (req->caller->id), polls);
    }
  /* A device that lost its connection without us noticing comes back with a
   * new poll: the oldest one gives way. */
  while (polls->len >= MAX (self->limits.max_wake_polls, 1))
    {
      WakePoll *oldest = g_ptr_array_steal_index (polls, 0);

      wake_poll_answer (oldest, SOUP_STATUS_NO_CONTENT, NULL);
    }

  poll = g_new0 (WakePoll, 1);
  poll->self = self;
  poll->msg = g_object_ref (req->msg);
  poll->device_id = g_strdup (req->caller->id);
  poll->timeout = g_timeout_source_new ((unsigned) (self->limits.wake_timeout_us / 1000));
  g_source_set_callback (poll->timeout, on_wake_poll_timeout, poll, NULL);
  g_source_set_static_name (poll->timeout, "[pipermesh] wake poll timeout");
  g_source_attach (poll->timeout, g_main_context_get_thread_default ());
  poll->finished_id = g_signal_connect (req->msg, "finished",
                                        G_CALLBACK (on_wake_poll_finished), poll);
  g_ptr_array_add (polls, poll);
  soup_server_message_pause (req->msg);
}

static void
handle_relay (Request *req)
{
  PmCoordServer *self = req->self;
  g_autoptr (PmDeviceRecord) peer = NULL;

  if (self->relay == NULL)
    {
      refuse (self, req->msg, REFUSE_RELAY_UNAVAILABLE, "This server has no relay configured");
      return;
    }
  if (g_strcmp0 (req->param, req->caller->id) == 0)
    {
      refuse (self, req->msg, REFUSE_SELF_TARGET, "A device cannot relay to itself");
      return;
    }
  peer = get_account_device (req, req->param);
  if (peer == NULL)
    return;
  if (!pm_relay_accept (self->relay, req->msg, req->caller->account_id, req->caller->id, peer->id))
    {
      /* Not a WebSocket handshake: libsoup set the status (usually 400). */
      if (soup_server_message_get_status (req->msg) == 0)
        refuse (self, req->msg, REFUSE_BAD_WEBSOCKET, "A WebSocket handshake is required");
      else
        self->refused[REFUSE_BAD_WEBSOCKET]++;
    }
}

/* --- Dispatch --------------------------------------------------------------- */

/* Whether @path matches @pattern; *param is the {id} segment (in @path). */
static gboolean
match_pattern (const char  *pattern,
               const char  *path,
               const char **param,
               size_t      *param_len)
{
  while (*pattern != '\0')
    {
      if (g_str_has_prefix (pattern, "{id}"))
        {
          size_t len = strcspn (path, "/");

          if (len == 0)
            return FALSE;
          *param = path;
          *param_len = len;
          path += len;
          pattern += 4;
          continue;
        }
      if (*pattern != *path)
        return FALSE;
      pattern++;
      path++;
    }
  return *path == '\0';
}

static void
on_request (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  PmCoordServer *self = user_data;
  const char    *method = soup_server_message_get_method (msg);
  g_autoptr (GString) allow = g_string_new (NULL);
  g_autoptr (PmDeviceRecord) caller = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autofree char *param = NULL;
  Request          req = { self, msg, NULL, NULL, NULL };
  int              found = -1;

  for (size_t i = 0; i < G_N_ELEMENTS (routes); i++)
    {
      const char *p = NULL;
      size_t      p_len = 0;

      if (!match_pattern (routes[i].pattern, path, &p, &p_len))
        continue;
      if (g_str_equal (routes[i].method, method))
        {
          found = (int) i;
          if (p != NULL)
            param = g_strndup (p, p_len);
          break;
        }
      g_string_append_printf (allow, "%s%s", allow->len > 0 ? ", " : "", routes[i].method);
    }
  if (found < 0)
    {
      if (allow->len > 0)
        {
          soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow",
                                        allow->str);
          refuse (self, msg, REFUSE_METHOD_NOT_ALLOWED, "Method not allowed on this path");
        }
      else
        refuse (self, msg, REFUSE_NOT_FOUND, "No such resource");
      return;
    }

  self->requests[routes[found].id]++;
  req.param = param;
  if (routes[found].auth)
    {
      caller = authenticate (self, msg);
      if (caller == NULL)
        return;
      req.caller = caller;
    }
  if (routes[found].json_body)
    {
      if (!content_type_is_json (msg))
        {
          refuse (self, msg, REFUSE_UNSUPPORTED_MEDIA_TYPE, "The body must be application/json");
          return;
        }
      body = parse_body (&req);
      if (body == NULL)
        return;
      req.body = body;
    }

  routes[found].handler (&req);

  /* A successful call (or a held long-poll, status 0) counts as a sign of life;
   * a device that just revoked itself is gone. */
  if (caller != NULL && !(routes[found].id == ROUTE_REVOKE && g_strcmp0 (param, caller->id) == 0))
    {
      unsigned status = soup_server_message_get_status (msg);

      if (status == 0 || (status >= 100 && status < 300))
        touch_caller (self, caller);
    }
}

/* Refuses from the headers alone, before the body is read: chunked bodies
 * (411: we need the length up front) and bodies over the limit (413). The
 * refused body is drained without being kept. */
static void
on_early_request (SoupServer        *server,
                  SoupServerMessage *msg,
                  const char        *path,
                  GHashTable        *query,
                  gpointer           user_data)
{
  PmCoordServer      *self = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  SoupEncoding        encoding = soup_message_headers_get_encoding (headers);
  Refusal             refusal;

  if (encoding == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length (headers) > (goffset) self->limits.max_body_size)
    refusal = REFUSE_BODY_TOO_LARGE;
  else if (encoding == SOUP_ENCODING_CHUNKED || encoding == SOUP_ENCODING_EOF)
    refusal = REFUSE_LENGTH_REQUIRED;
  else
    return;

  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Connection", "close");
  refuse (self, msg, refusal,
          refusal == REFUSE_BODY_TOO_LARGE
            ? "The request body is too large"
            : "The request body needs a Content-Length");
}

/* --- Object ------------------------------------------------------------------ */

static void
pm_coord_server_dispose (GObject *object)
{
  PmCoordServer *self = PM_COORD_SERVER (object);

  g_cancellable_cancel (self->cancellable);
  if (self->wake_polls != NULL)
    {
      g_autoptr (GList) ids = g_hash_table_get_keys (self->wake_polls);
      g_autoptr (GPtrArray) copy = g_ptr_array_new_with_free_func (g_free);

      for (GList *l = ids; l != NULL; l = l->next)
        g_ptr_array_add (copy, g_strdup (l->data));
      for (unsigned i = 0; i < copy->len; i++)
        end_wake_polls (self, copy->pdata[i], REFUSE_INTERNAL, "The server is shutting down");
    }
  if (self->server != NULL)
    soup_server_disconnect (self->server);
  g_clear_object (&self->server);
  g_clear_object (&self->push_session);
  g_clear_object (&self->relay);
  g_clear_object (&self->stun);
  g_clear_object (&self->store);

  G_OBJECT_CLASS (pm_coord_server_parent_class)->dispose (object);
}

static void
pm_coord_server_finalize (GObject *object)
{
  PmCoordServer *self = PM_COORD_SERVER (object);

  g_clear_pointer (&self->wake_polls, g_hash_table_unref);
  g_clear_pointer (&self->last_wake, g_hash_table_unref);
  g_clear_pointer (&self->candidates, g_hash_table_unref);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (pm_coord_server_parent_class)->finalize (object);
}

static void
pm_coord_server_class_init (PmCoordServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_coord_server_dispose;
  object_class->finalize = pm_coord_server_finalize;
}

static void
pm_coord_server_init (PmCoordServer *self)
{
  pm_coord_limits_default (&self->limits);
  self->wake_polls = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) g_ptr_array_unref);
  self->last_wake = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->candidates = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) json_node_unref);
  self->cancellable = g_cancellable_new ();
}

/**
 * pm_coord_server_new:
 * @store: where accounts and devices live
 * @relay: (nullable): the relay behind /v1/mesh/relay; without one that
 *   route answers 503 relay_unavailable
 * @limits: (nullable): NULL for pm_coord_limits_default()
 *
 * Returns: (transfer full): a server that is not listening yet.
 */
PmCoordServer *
pm_coord_server_new (PmStore             *store,
                     PmRelay             *relay,
                     const PmCoordLimits *limits)
{
  PmCoordServer *self;

  g_return_val_if_fail (PM_IS_STORE (store), NULL);
  g_return_val_if_fail (relay == NULL || PM_IS_RELAY (relay), NULL);

  self = g_object_new (PM_TYPE_COORD_SERVER, NULL);
  self->store = g_object_ref (store);
  self->relay = relay != NULL ? g_object_ref (relay) : NULL;
  if (limits != NULL)
    {
      g_return_val_if_fail (limits->max_body_size > 0, self);
      g_return_val_if_fail (limits->wake_timeout_us >= 1000, self);
      self->limits = *limits;
    }
  self->server = soup_server_new ("server-header", "pipermesh-server", NULL);
  soup_server_add_early_handler (self->server, NULL, on_early_request, self, NULL);
  soup_server_add_handler (self->server, NULL, on_request, self, NULL);
  self->push_session = soup_session_new_with_options ("timeout", self->limits.push_timeout_s,
                                                      "idle-timeout", 60u,
                                                      "user-agent", "pipermesh-server",
                                                      "max-conns-per-host", 4,
                                                      NULL);
  return self;
}

/* soup_server_listen() with a listen backlog of our choosing. */
static gboolean
listen_socket (PmCoordServer          *self,
               GInetSocketAddress     *address,
               SoupServerListenOptions options,
               GError                **error)
{
  g_autoptr (GSocket) socket = NULL;

  socket = g_socket_new (g_socket_address_get_family (G_SOCKET_ADDRESS (address)),
                         G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return FALSE;
  g_socket_set_listen_backlog (socket, PM_COORD_LISTEN_BACKLOG);
  return g_socket_bind (socket, G_SOCKET_ADDRESS (address), TRUE, error) &&
         g_socket_listen (socket, error) &&
         soup_server_listen_socket (self->server, socket, options, error);
}

/**
 * pm_coord_server_listen:
 * @address: "IPv4:PORT" or "[IPv6]:PORT"; port 0 picks a free port
 * @tls: (nullable): the certificate (with its private key) to serve HTTPS;
 *   without one only a loopback address is accepted
 *
 * Starts listening on the thread-default main context.
 */
gboolean
pm_coord_server_listen (PmCoordServer   *self,
                        const char      *address,
                        GTlsCertificate *tls,
                        GError         **error)
{
  g_autoptr (GInetSocketAddress) socket_address = NULL;
  g_autoptr (GError) local_error = NULL;
  SoupServerListenOptions options = 0;

  g_return_val_if_fail (PM_IS_COORD_SERVER (self), FALSE);
  g_return_val_if_fail (address != NULL, FALSE);
  g_return_val_if_fail (tls == NULL || G_IS_TLS_CERTIFICATE (tls), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  socket_address = pm_address_parse (address, TRUE);
  if (socket_address == NULL)
    {
      g_set_error (error, PM_COORD_SERVER_ERROR, PM_COORD_SERVER_ERROR_INVALID_ADDRESS,
                   "“%s” is not an address to listen on; use IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
                   address);
      return FALSE;
    }
  if (tls == NULL &&
      !g_inet_address_get_is_loopback (g_inet_socket_address_get_address (socket_address)))
    {
      g_set_error (error, PM_COORD_SERVER_ERROR, PM_COORD_SERVER_ERROR_INSECURE,
                   "Refusing to serve plain HTTP on %s: device tokens would cross the network in clear text. "
                   "Give a TLS certificate and key, or listen on a loopback address behind a TLS proxy",
                   address);
      return FALSE;
    }
  if (tls != NULL)
    {
      soup_server_set_tls_certificate (self->server, tls);
      options |= SOUP_SERVER_LISTEN_HTTPS;
    }
  if (!listen_socket (self, socket_address, options, &local_error))
    {
      g_set_error (error, PM_COORD_SERVER_ERROR, PM_COORD_SERVER_ERROR_LISTEN,
                   "Could not listen on %s: %s%s", address, local_error->message,
                   g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)
                     ? " (is another server running on this port?)"
                     : "");
      return FALSE;
    }
  return TRUE;
}

static GUri *
first_uri (PmCoordServer *self)
{
  GSList *uris = soup_server_get_uris (self->server);
  GUri   *uri = uris != NULL ? g_uri_ref (uris->data) : NULL;

  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return uri;
}

/* Lets /metrics report the STUN responder's counters. */
void
pm_coord_server_set_stun_server (PmCoordServer *self,
                                 PmStunServer  *stun)
{
  g_return_if_fail (PM_IS_COORD_SERVER (self));
  g_return_if_fail (stun == NULL || PM_IS_STUN_SERVER (stun));

  g_set_object (&self->stun, stun);
}

/* The port of the first listening socket, 0 if not listening. */
uint16_t
pm_coord_server_get_port (PmCoordServer *self)
{
  g_autoptr (GUri) uri = NULL;

  g_return_val_if_fail (PM_IS_COORD_SERVER (self), 0);

  uri = first_uri (self);
  return uri != NULL ? (uint16_t) g_uri_get_port (uri) : 0;
}

/* "http://127.0.0.1:PORT" (no trailing slash), or NULL if not listening. */
char *
pm_coord_server_get_base_uri (PmCoordServer *self)
{
  g_autoptr (GUri) uri = NULL;
  g_autofree char *text = NULL;

  g_return_val_if_fail (PM_IS_COORD_SERVER (self), NULL);

  uri = first_uri (self);
  if (uri == NULL)
    return NULL;
  text = g_uri_to_string (uri);
  if (g_str_has_suffix (text, "/"))
    text[strlen (text) - 1] = '\0';
  return g_steal_pointer (&text);
}

/* Long-polls @device_id holds right now. */
unsigned
pm_coord_server_get_wake_polls (PmCoordServer *self,
                                const char    *device_id)
{
  GPtrArray *polls;

  g_return_val_if_fail (PM_IS_COORD_SERVER (self), 0);
  g_return_val_if_fail (device_id != NULL, 0);

  polls = wake_polls_of (self, device_id);
  return polls != NULL ? polls->len : 0;
}
