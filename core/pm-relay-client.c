/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-relay-client"

#include "pm-relay-client.h"

#include <libsoup/soup.h>
#include <string.h>

#include "pm-frame.h"

/* Every handshake frame fits; the largest data frames do not (see the header). */
G_STATIC_ASSERT (PM_RELAY_CLIENT_MAX_FRAME_LEN >= PM_INIT_FRAME_LEN);
G_STATIC_ASSERT (PM_RELAY_CLIENT_MAX_FRAME_LEN < PM_DATA_FRAME_MAX_LEN);

/* clang-format off */
G_DEFINE_QUARK (pm-relay-client-error-quark, pm_relay_client_error)
/* clang-format on */

struct _PmRelayClient {
  GObject parent_instance;

  char *base_uri;
  char *token;
  char *peer_id;

  SoupSession             *session;
  SoupWebsocketConnection *ws;

  PmRelayClientState state;
  unsigned           close_code;
  char              *close_reason;
  GError            *error; /* why the last connection or attempt ended */
  gboolean           close_requested;

  unsigned keepalive_interval_s;
  unsigned dead_after_pings;
  int64_t  last_heard_us;
  unsigned dead_source;
};

G_DEFINE_FINAL_TYPE (PmRelayClient, pm_relay_client, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STATE,
  PROP_PEER_ID,
  PROP_CLOSE_CODE,
  PROP_CLOSE_REASON,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_FRAME_RECEIVED,
  N_SIGNALS
};

static unsigned signals[N_SIGNALS];

GType
pm_relay_client_state_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_RELAY_CLIENT_STATE_DISCONNECTED, "PM_RELAY_CLIENT_STATE_DISCONNECTED",
          "disconnected" },
        { PM_RELAY_CLIENT_STATE_CONNECTING, "PM_RELAY_CLIENT_STATE_CONNECTING", "connecting" },
        { PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER, "PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER",
          "waiting-for-peer" },
        { PM_RELAY_CLIENT_STATE_CONNECTED, "PM_RELAY_CLIENT_STATE_CONNECTED", "connected" },
        { PM_RELAY_CLIENT_STATE_CLOSED, "PM_RELAY_CLIENT_STATE_CLOSED", "closed" },
        { 0, NULL, NULL },
      };
      GType id = g_enum_register_static (g_intern_static_string ("PmRelayClientState"), values);

      g_once_init_leave (&type, id);
    }
  return type;
}

/* --- Close codes -------------------------------------------------------------- */

/**
 * pm_relay_client_error_from_close_code:
 * @code: a WebSocket close code from the relay (docs/PROTOCOL.md §7)
 *
 * Returns: the #PmRelayClientError an owner can base its back-off on.
 */
PmRelayClientError
pm_relay_client_error_from_close_code (unsigned code)
{
  switch (code)
    {
    case 1001:
      return PM_RELAY_CLIENT_ERROR_UNAVAILABLE;
    case 1009:
      return PM_RELAY_CLIENT_ERROR_TOO_BIG;
    case 4000:
      return PM_RELAY_CLIENT_ERROR_IDLE;
    case 4001:
      return PM_RELAY_CLIENT_ERROR_DEAD;
    case 4400:
      return PM_RELAY_CLIENT_ERROR_BAD_REQUEST;
    case 4403:
      return PM_RELAY_CLIENT_ERROR_CROSS_ACCOUNT;
    case 4408:
      return PM_RELAY_CLIENT_ERROR_PEER_TIMEOUT;
    case 4409:
      return PM_RELAY_CLIENT_ERROR_REPLACED;
    case 4410:
      return PM_RELAY_CLIENT_ERROR_REVOKED;
    case 4429:
      return PM_RELAY_CLIENT_ERROR_SESSION_LIMIT;
    default:
      return PM_RELAY_CLIENT_ERROR_CLOSED;
    }
}

static const char *
close_code_message (unsigned code)
{
  switch (code)
    {
    case 1001:
      return "The relay is shutting down";
    case 1009:
      return "A message was over the relay's size limit";
    case 4000:
      return "The relay closed the idle connection";
    case 4001:
      return "The relay heard nothing from this device for too long";
    case 4400:
      return "A device cannot relay to itself";
    case 4403:
      return "The peer belongs to another account";
    case 4408:
      return "The peer did not connect to the relay in time";
    case 4409:
      return "Replaced by a newer relay connection of this device";
    case 4410:
      return "A device of the pair was revoked";
    case 4429:
      return "The account has too many relay sessions";
    case 0:
    case 1006:
      return "The connection to the relay was lost";
    default:
      return "The relay closed the connection";
    }
}

/* --- State -------------------------------------------------------------------- */

static void
set_state (PmRelayClient     *self,
           PmRelayClientState state)
{
  if (self->state == state)
    return;
  g_debug ("relay client %s: state %d -> %d", self->peer_id, self->state, state);
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static void
drop_ws (PmRelayClient *self)
{
  g_clear_handle_id (&self->dead_source, g_source_remove);
  if (self->ws == NULL)
    return;
  g_signal_handlers_disconnect_by_data (self->ws, self);
  if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_clear_object (&self->ws);
}

static void
on_message (SoupWebsocketConnection *ws,
            int                      type,
            GBytes                  *message,
            gpointer                 user_data)
{
  PmRelayClient *self = user_data;

  self->last_heard_us = g_get_monotonic_time ();
  if (self->state == PM_RELAY_CLIENT_STATE_CLOSED)
    return; /* closed for the owner; libsoup is still finishing */
  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      g_debug ("relay client %s: ignoring a text message", self->peer_id);
      return;
    }
  g_object_ref (self);
  if (self->state == PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER)
    set_state (self, PM_RELAY_CLIENT_STATE_CONNECTED);
  g_signal_emit (self, signals[SIGNAL_FRAME_RECEIVED], 0, message);
  g_object_unref (self);
}

static void
on_pong (SoupWebsocketConnection *ws,
         GBytes                  *message,
         gpointer                 user_data)
{
  PmRelayClient *self = user_data;

  self->last_heard_us = g_get_monotonic_time ();
}

static void
on_ws_error (SoupWebsocketConnection *ws,
             GError                  *error,
             gpointer                 user_data)
{
  PmRelayClient *self = user_data;

  /* libsoup closes the connection itself after a protocol error (such as an
   * incoming message over our limit); "closed" follows. */
  g_debug ("relay client %s: %s", self->peer_id, error->message);
  if (self->error == NULL && !self->close_requested)
    {
      /* libsoup's protocol errors carry the close code it sends. */
      if (g_error_matches (error, SOUP_WEBSOCKET_ERROR, SOUP_WEBSOCKET_CLOSE_TOO_BIG))
        self->error = g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_TOO_BIG,
                                   "The relay sent a message over %u bytes",
                                   PM_RELAY_CLIENT_MAX_FRAME_LEN);
      else
        self->error = g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_CLOSED,
                                   "Relay connection failed: %s", error->message);
    }
}

static void
on_closed (SoupWebsocketConnection *ws,
           gpointer                 user_data)
{
  PmRelayClient *self = user_data;
  unsigned       code = soup_websocket_connection_get_close_code (ws);
  const char    *reason = soup_websocket_connection_get_close_data (ws);

  g_signal_handlers_disconnect_by_data (ws, self);
  if (self->state == PM_RELAY_CLIENT_STATE_CLOSED)
    return; /* closed by pm_relay_client_close() already */
  g_object_ref (self);
  g_clear_handle_id (&self->dead_source, g_source_remove);
  self->close_code = code;
  g_free (self->close_reason);
  self->close_reason = g_strdup (reason);
  if (self->error == NULL)
    self->error = g_error_new (PM_RELAY_CLIENT_ERROR, pm_relay_client_error_from_close_code (code),
                               "%s (close code %u%s%s)", close_code_message (code), code,
                               reason != NULL && *reason != '\0' ? ": " : "",
                               reason != NULL ? reason : "");
  g_message ("relay client %s: closed with code %u", self->peer_id, code);
  /* The WebSocket is released on the next connect or at dispose, not inside
   * its own signal emission. */
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_CODE]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_REASON]);
  set_state (self, PM_RELAY_CLIENT_STATE_CLOSED);
  g_object_unref (self);
}

/* Ends the connection for the owner at once: sends a close frame and does not
 * wait for the answer. The relay does not read from a side whose peer is
 * away, and a dead server never answers, so the answer may never come
 * (libsoup then gives up after 5 s); the WebSocket finishes closing on its
 * own. @code is what get_close_code() reports. */
static void
close_now (PmRelayClient *self,
           unsigned short send_code,
           const char    *send_reason,
           unsigned       code)
{
  g_clear_handle_id (&self->dead_source, g_source_remove);
  if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (self->ws, send_code, send_reason);
  self->close_code = code;
  g_clear_pointer (&self->close_reason, g_free);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_CODE]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_REASON]);
  set_state (self, PM_RELAY_CLIENT_STATE_CLOSED);
}

static gboolean
on_dead_check (gpointer user_data)
{
  PmRelayClient *self = user_data;
  unsigned       limit_s = self->keepalive_interval_s * self->dead_after_pings;

  if (g_get_monotonic_time () - self->last_heard_us < (int64_t) limit_s * G_USEC_PER_SEC)
    return G_SOURCE_CONTINUE;
  self->dead_source = 0;
  g_message ("relay client %s: nothing heard for %u s; closing as dead", self->peer_id, limit_s);
  if (self->error == NULL)
    self->error = g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_DEAD,
                               "Nothing heard from the relay for %u s", limit_s);
  /* No close frame came: close code 0. */
  close_now (self, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "no answer", 0);
  return G_SOURCE_REMOVE;
}

/* --- Connect ------------------------------------------------------------------ */

/* The stream URL, or NULL with INVALID_URI or INSECURE. */
static GUri *
build_url (PmRelayClient *self,
           GError       **error)
{
  g_autoptr (GUri) base = NULL;
  g_autoptr (GInetAddress) address = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *path = NULL;
  const char      *scheme;
  const char      *host;
  const char      *base_path;
  size_t           base_path_len;

  base = g_uri_parse (self->base_uri, G_URI_FLAGS_ENCODED, NULL);
  scheme = base != NULL ? g_uri_get_scheme (base) : NULL;
  host = base != NULL ? g_uri_get_host (base) : NULL;
  if (base == NULL || host == NULL || *host == '\0' ||
      (g_strcmp0 (scheme, "http") != 0 && g_strcmp0 (scheme, "https") != 0))
    {
      g_set_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_INVALID_URI,
                   "The server address must be an http:// or https:// URL");
      return NULL;
    }
  if (strcmp (scheme, "http") == 0)
    {
      address = g_inet_address_new_from_string (host);
      if (address == NULL || !g_inet_address_get_is_loopback (address))
        {
          g_set_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_INSECURE,
                       "The relay must be reached over https:// (http:// only on a loopback "
                       "address)");
          return NULL;
        }
    }
  /* A base path (a server behind a reverse proxy) is kept; its trailing
   * slashes are not doubled. */
  base_path = g_uri_get_path (base);
  base_path_len = strlen (base_path);
  while (base_path_len > 0 && base_path[base_path_len - 1] == '/')
    base_path_len--;
  escaped = g_uri_escape_string (self->peer_id, NULL, FALSE);
  path = g_strdup_printf ("%.*s/v1/mesh/relay/%s/stream", (int) base_path_len, base_path,
                          escaped);
  return g_uri_build (G_URI_FLAGS_ENCODED, scheme, NULL, host, g_uri_get_port (base), path, NULL,
                      NULL);
}

static GError *
error_for_refusal (SoupMessage *msg,
                   GError      *soup_error)
{
  unsigned status = soup_message_get_status (msg);

  switch (status)
    {
    case SOUP_STATUS_NONE:
    case SOUP_STATUS_SWITCHING_PROTOCOLS:
      return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_CONNECTION,
                          "Could not open the relay connection: %s", soup_error->message);
    case SOUP_STATUS_UNAUTHORIZED:
      return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_UNAUTHORIZED,
                          "The server refused this device's token (HTTP 401): enroll again");
    case SOUP_STATUS_NOT_FOUND:
      return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_FOUND,
                          "The peer is not a device of this account (HTTP 404)");
    case SOUP_STATUS_BAD_REQUEST:
      return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_BAD_REQUEST,
                          "The server refused the relay request (HTTP 400)");
    default:
      if (SOUP_STATUS_IS_SUCCESSFUL (status))
        return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_CONNECTION,
                            "The server did not open a WebSocket (HTTP %u)", status);
      return g_error_new (PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_UNAVAILABLE,
                          "The relay is unavailable (HTTP %u)", status);
    }
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (GTask) task = user_data;
  PmRelayClient *self = g_task_get_source_object (task);
  SoupMessage   *msg = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (SoupWebsocketConnection) ws = NULL;

  ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &error);
  if (ws == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->close_requested)
        {
          set_state (self, PM_RELAY_CLIENT_STATE_DISCONNECTED);
          g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                   "The relay connection was cancelled");
          return;
        }
      self->error = error_for_refusal (msg, error);
      g_message ("relay client %s: refused: %s", self->peer_id, self->error->message);
      set_state (self, PM_RELAY_CLIENT_STATE_CLOSED);
      g_task_return_error (task, g_error_copy (self->error));
      return;
    }
  if (self->close_requested || g_task_return_error_if_cancelled (task))
    {
      soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      set_state (self, PM_RELAY_CLIENT_STATE_DISCONNECTED);
      if (!g_task_had_error (task))
        g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                 "The relay connection was cancelled");
      return;
    }

  self->ws = g_steal_pointer (&ws);
  soup_websocket_connection_set_max_incoming_payload_size (self->ws, PM_RELAY_CLIENT_MAX_FRAME_LEN);
  soup_websocket_connection_set_keepalive_interval (self->ws, self->keepalive_interval_s);
  g_signal_connect (self->ws, "message", G_CALLBACK (on_message), self);
  g_signal_connect (self->ws, "pong", G_CALLBACK (on_pong), self);
  g_signal_connect (self->ws, "error", G_CALLBACK (on_ws_error), self);
  g_signal_connect (self->ws, "closed", G_CALLBACK (on_closed), self);
  self->last_heard_us = g_get_monotonic_time ();
  if (self->keepalive_interval_s > 0 && self->dead_after_pings > 0)
    self->dead_source = g_timeout_add_seconds (self->keepalive_interval_s, on_dead_check, self);
  g_debug ("relay client %s: open", self->peer_id);
  set_state (self, PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER);
  g_task_return_boolean (task, TRUE);
}

/**
 * pm_relay_client_connect_async:
 * @self: a #PmRelayClient, disconnected or closed
 * @cancellable: (nullable): cancels the connect (not the open connection: use
 *   pm_relay_client_close() for that)
 *
 * Opens the WebSocket to the relay: "Authorization: Bearer", no extensions,
 * binary messages only. Succeeds once the WebSocket is open, whether or not
 * the peer is there yet (state waiting-for-peer). A refusal sets the state to
 * closed and the error to what the server said (UNAUTHORIZED, NOT_FOUND...).
 * One connect at a time; reconnecting after a close is the caller's decision.
 */
void
pm_relay_client_connect_async (PmRelayClient      *self,
                               GCancellable       *cancellable,
                               GAsyncReadyCallback callback,
                               gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GUri) url = NULL;
  g_autofree char *authorization = NULL;
  SoupMessage     *msg;

  g_return_if_fail (PM_IS_RELAY_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_relay_client_connect_async);
  if (self->state == PM_RELAY_CLIENT_STATE_CONNECTING ||
      self->state == PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER ||
      self->state == PM_RELAY_CLIENT_STATE_CONNECTED)
    {
      g_task_return_new_error (task, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_BUSY,
                               "The relay connection is already open or opening");
      return;
    }
  url = build_url (self, &error);
  if (url == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  drop_ws (self);
  g_clear_error (&self->error);
  g_clear_pointer (&self->close_reason, g_free);
  self->close_requested = FALSE;
  if (self->close_code != 0)
    {
      self->close_code = 0;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_CODE]);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_REASON]);
    }

  msg = soup_message_new_from_uri (SOUP_METHOD_GET, url);
  authorization = g_strconcat ("Bearer ", self->token, NULL);
  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
                                authorization);
  g_task_set_task_data (task, msg, g_object_unref);
  set_state (self, PM_RELAY_CLIENT_STATE_CONNECTING);
  soup_session_websocket_connect_async (self->session, msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                        cancellable, on_connected, g_steal_pointer (&task));
}

gboolean
pm_relay_client_connect_finish (PmRelayClient *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == pm_relay_client_connect_async,
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * pm_relay_client_send:
 * @frame: one PiperMesh frame (docs/PROTOCOL.md §2)
 * @len: its length, 1 … %PM_RELAY_CLIENT_MAX_FRAME_LEN
 *
 * Sends @frame as one binary message. Nothing is queued here: while the
 * WebSocket is not open this fails with NOT_CONNECTED (the session above
 * holds its messages until a path is up). Frames sent before the peer has
 * connected are held back by the relay, not lost.
 */
gboolean
pm_relay_client_send (PmRelayClient *self,
                      const uint8_t *frame,
                      size_t         len,
                      GError       **error)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), FALSE);
  g_return_val_if_fail (frame != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (len == 0 || len > PM_RELAY_CLIENT_MAX_FRAME_LEN)
    {
      g_set_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_TOO_BIG,
                   "A relayed frame must be 1 to %u bytes, not %zu",
                   PM_RELAY_CLIENT_MAX_FRAME_LEN, len);
      return FALSE;
    }
  if (!pm_relay_client_is_open (self))
    {
      g_set_error (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_NOT_CONNECTED,
                   "The relay connection is not open");
      return FALSE;
    }
  soup_websocket_connection_send_binary (self->ws, frame, len);
  return TRUE;
}

/**
 * pm_relay_client_close:
 *
 * Closes the connection normally (1000), or abandons a connect under way
 * (which then fails with G_IO_ERROR_CANCELLED). An open connection is closed
 * at once, without an error: the state becomes closed and the close code
 * 1000 before this returns.
 */
void
pm_relay_client_close (PmRelayClient *self)
{
  g_return_if_fail (PM_IS_RELAY_CLIENT (self));

  self->close_requested = TRUE;
  if (self->ws == NULL || self->state == PM_RELAY_CLIENT_STATE_CLOSED)
    return;
  close_now (self, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL, SOUP_WEBSOCKET_CLOSE_NORMAL);
}

PmRelayClientState
pm_relay_client_get_state (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), PM_RELAY_CLIENT_STATE_DISCONNECTED);

  return self->state;
}

/* TRUE in waiting-for-peer and connected: frames can be sent. */
gboolean
pm_relay_client_is_open (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), FALSE);

  return (self->state == PM_RELAY_CLIENT_STATE_WAITING_FOR_PEER ||
          self->state == PM_RELAY_CLIENT_STATE_CONNECTED) &&
         self->ws != NULL &&
         soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

const char *
pm_relay_client_get_peer_id (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), NULL);

  return self->peer_id;
}

/* The close code of the last connection (0: none yet, or no close frame). */
unsigned
pm_relay_client_get_close_code (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), 0);

  return self->close_code;
}

const char *
pm_relay_client_get_close_reason (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), NULL);

  return self->close_reason;
}

/* Why the last connection or attempt ended, or NULL (none, or closed by us). */
const GError *
pm_relay_client_get_error (PmRelayClient *self)
{
  g_return_val_if_fail (PM_IS_RELAY_CLIENT (self), NULL);

  return self->error;
}

/**
 * pm_relay_client_set_keepalive:
 * @interval_s: ping interval in seconds, 0: no pings and no dead check
 * @dead_after_pings: close as dead after this many intervals without hearing
 *   anything, 0: never
 *
 * Applies from the next connect. Defaults: %PM_RELAY_CLIENT_KEEPALIVE_INTERVAL_S,
 * %PM_RELAY_CLIENT_DEAD_AFTER_PINGS.
 */
void
pm_relay_client_set_keepalive (PmRelayClient *self,
                               unsigned       interval_s,
                               unsigned       dead_after_pings)
{
  g_return_if_fail (PM_IS_RELAY_CLIENT (self));

  self->keepalive_interval_s = interval_s;
  self->dead_after_pings = dead_after_pings;
}

/* --- GObject ------------------------------------------------------------------ */

static void
pm_relay_client_dispose (GObject *object)
{
  PmRelayClient *self = PM_RELAY_CLIENT (object);

  drop_ws (self);
  if (self->session != NULL)
    soup_session_abort (self->session);
  g_clear_object (&self->session);

  G_OBJECT_CLASS (pm_relay_client_parent_class)->dispose (object);
}

static void
pm_relay_client_finalize (GObject *object)
{
  PmRelayClient *self = PM_RELAY_CLIENT (object);

  g_free (self->base_uri);
  if (self->token != NULL)
    memset (self->token, 0, strlen (self->token));
  g_free (self->token);
  g_free (self->peer_id);
  g_free (self->close_reason);
  g_clear_error (&self->error);

  G_OBJECT_CLASS (pm_relay_client_parent_class)->finalize (object);
}

static void
pm_relay_client_get_property (GObject    *object,
                              unsigned    prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  PmRelayClient *self = PM_RELAY_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_PEER_ID:
      g_value_set_string (value, self->peer_id);
      break;
    case PROP_CLOSE_CODE:
      g_value_set_uint (value, self->close_code);
      break;
    case PROP_CLOSE_REASON:
      g_value_set_string (value, self->close_reason);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_relay_client_class_init (PmRelayClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_relay_client_dispose;
  object_class->finalize = pm_relay_client_finalize;
  object_class->get_property = pm_relay_client_get_property;

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, PM_TYPE_RELAY_CLIENT_STATE,
                       PM_RELAY_CLIENT_STATE_DISCONNECTED,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_PEER_ID] =
    g_param_spec_string ("peer-id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_CLOSE_CODE] =
    g_param_spec_uint ("close-code", NULL, NULL, 0, G_MAXUINT16, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_CLOSE_REASON] =
    g_param_spec_string ("close-reason", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * PmRelayClient::frame-received:
   * @frame: (transfer none): one binary message from the peer
   */
  signals[SIGNAL_FRAME_RECEIVED] =
    g_signal_new ("frame-received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
}

static void
pm_relay_client_init (PmRelayClient *self)
{
  self->keepalive_interval_s = PM_RELAY_CLIENT_KEEPALIVE_INTERVAL_S;
  self->dead_after_pings = PM_RELAY_CLIENT_DEAD_AFTER_PINGS;
}

/**
 * pm_relay_client_new:
 * @base_uri: the server, "https://host[:port]" (http:// only on loopback)
 * @token: this device's bearer token ("pmdt_…")
 * @peer_id: the peer device ("dev_…")
 */
PmRelayClient *
pm_relay_client_new (const char *base_uri,
                     const char *token,
                     const char *peer_id)
{
  PmRelayClient *self;

  g_return_val_if_fail (base_uri != NULL, NULL);
  g_return_val_if_fail (token != NULL, NULL);
  g_return_val_if_fail (peer_id != NULL, NULL);

  self = g_object_new (PM_TYPE_RELAY_CLIENT, NULL);
  self->base_uri = g_strdup (base_uri);
  self->token = g_strdup (token);
  self->peer_id = g_strdup (peer_id);
  self->session = soup_session_new ();
  /* No permessage-deflate: compressing ciphertext gains nothing. */
  soup_session_remove_feature_by_type (self->session, SOUP_TYPE_WEBSOCKET_EXTENSION_MANAGER);
  return self;
}
