/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-pair"

#include "pm-pair-host.h"

#include <ifaddrs.h>
#include <libsoup/soup.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>

#include "pm-address.h"
#include "pm-handshake-state.h"
#include "pm-mesh-limits.h"
#include "pm-pair-cert.h"
#include "pm-verification.h"

/* The host's side of one pairing:
 *
 *   WAITING ── first request with the token ──> UPGRADING ──101──> READ_MSG1
 *   READ_MSG1 ── msg1, write msg2 ──> READ_MSG3 ── msg3 ──> VERIFYING
 *   VERIFYING ── accept: ACCEPT ──> WAIT_STORED ── STORED: store ──> DONE
 *
 * Any error, a reject, a timeout or the client going away ends in DONE with
 * an error and nothing stored. The token is spent on entering UPGRADING. */
typedef enum {
  HOST_IDLE,
  HOST_WAITING,
  HOST_UPGRADING,
  HOST_READ_MSG1,
  HOST_READ_MSG3,
  HOST_VERIFYING,
  HOST_WAIT_STORED,
  HOST_DONE,
} HostState;

/* WebSocket close codes of the exchange (docs/PROTOCOL.md §11). */
enum {
  CLOSE_PROTOCOL = 4400,
  CLOSE_TIMEOUT = 4408,
  CLOSE_STORE = 4500,
};

struct _PmPairHost {
  GObject parent_instance;

  PmIdentity      *identity;
  GTlsCertificate *certificate;
  PmPairedStore   *store;
  char            *name;
  char            *device_type;
  PmPairLimits     limits;
  uint16_t         mesh_port;
  GStrv            allowed_services;

  SoupServer *server;
  PmPairCode *code;
  uint16_t    port;
  HostState   state;
  gboolean    spent; /* the token was presented once */
  gboolean    expired;
  unsigned    bad_tokens;
  guint       expiry_id;
  guint       timeout_id;
  guint       close_guard_id;

  SoupWebsocketConnection *ws;
  char                    *peer_address; /* "IP:PORT" of the TCP connection, for logs */
  GInetAddress            *peer_ip;
  PmHandshakeState        *hs;
  PmCipherState           *send;
  PmCipherState           *recv;
  PmPairHello              peer;
  uint8_t                  peer_key[PM_KEY_LEN];
  char                    *verification;

  gboolean        finished;
  PmPairedDevice *result;
  GError         *error;
  GList          *waiters; /* GTask */
};

G_DEFINE_FINAL_TYPE (PmPairHost, pm_pair_host, G_TYPE_OBJECT)

enum {
  SIGNAL_VERIFY,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* --- ending -------------------------------------------------------------------- */

static void
clear_timeout (PmPairHost *self)
{
  g_clear_handle_id (&self->timeout_id, g_source_remove);
}

static void
drop_keys (PmPairHost *self)
{
  g_clear_pointer (&self->hs, pm_handshake_state_free);
  g_clear_pointer (&self->send, pm_cipher_state_free);
  g_clear_pointer (&self->recv, pm_cipher_state_free);
}


/* The reason sent in the close frame (at most 123 bytes by RFC 6455). */
static const char *
close_reason (int close_code)
{
  switch (close_code)
    {
    case CLOSE_PROTOCOL:
      return "protocol error";
    case CLOSE_TIMEOUT:
      return "timed out";
    case CLOSE_STORE:
      return "the host could not store this device";
    case SOUP_WEBSOCKET_CLOSE_GOING_AWAY:
      return "the pairing was stopped";
    default:
      return NULL;
    }
}

static void
return_to (GTask      *task,
           PmPairHost *self)
{
  if (self->error != NULL)
    g_task_return_error (task, g_error_copy (self->error));
  else
    g_task_return_pointer (task, pm_paired_device_copy (self->result),
                           (GDestroyNotify) pm_paired_device_free);
}

/* The WebSocket is closed (or given up on): answers every waiter. */
static void
complete (PmPairHost *self)
{
  GList *waiters;

  g_clear_handle_id (&self->close_guard_id, g_source_remove);
  if (self->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->ws, self);
      g_clear_object (&self->ws);
    }
  waiters = g_steal_pointer (&self->waiters);
  for (GList *l = waiters; l != NULL; l = l->next)
    {
      return_to (l->data, self);
      g_object_unref (l->data);
    }
  g_list_free (waiters);
}

static void
on_final_close (SoupWebsocketConnection *ws,
                gpointer                 user_data)
{
  complete (user_data);
}

static gboolean
on_close_guard (gpointer user_data)
{
  PmPairHost *self = user_data;

  self->close_guard_id = 0;
  complete (self);
  return G_SOURCE_REMOVE;
}

/* Ends the pairing once: wipes the keys, closes the WebSocket with
 * @close_code (what was queued before, a REJECT say, goes out first) and
 * answers every waiter once it is closed. */
static void
finish (PmPairHost     *self,
        PmPairedDevice *device,
        GError         *error,
        int             close_code)
{
  if (self->finished)
    {
      g_clear_error (&error);
      g_clear_pointer (&device, pm_paired_device_free);
      return;
    }
  self->finished = TRUE;
  self->state = HOST_DONE;
  self->result = device;
  self->error = error;
  clear_timeout (self);
  drop_keys (self);
  if (error != NULL)
    g_debug ("Pairing failed: %s", error->message);

  if (self->ws == NULL ||
      soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_CLOSED)
    {
      complete (self);
      return;
    }
  g_signal_handlers_disconnect_by_data (self->ws, self);
  g_signal_connect (self->ws, "closed", G_CALLBACK (on_final_close), self);
  if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (
      self->ws, (gushort) (close_code != 0 ? close_code : SOUP_WEBSOCKET_CLOSE_NORMAL),
      close_reason (close_code));
  self->close_guard_id = g_timeout_add (PM_PAIR_CLOSE_TIMEOUT_MS, on_close_guard, self);
}

static void fail (PmPairHost *self,
                  int         close_code,
                  int         code,
                  const char *format,
                  ...) G_GNUC_PRINTF (4, 5);

static void
fail (PmPairHost *self,
      int         close_code,
      int         code,
      const char *format,
      ...)
{
  va_list args;
  GError *error;

  va_start (args, format);
  error = g_error_new_valist (PM_PAIR_ERROR, code, format, args);
  va_end (args);
  finish (self, NULL, error, close_code);
}

/* --- timers -------------------------------------------------------------------- */

static gboolean
on_timeout (gpointer user_data)
{
  PmPairHost *self = user_data;

  self->timeout_id = 0;
  if (self->state == HOST_VERIFYING)
    {
      uint8_t plain[PM_PAIR_CONFIRM_MAX_LEN];
      uint8_t sealed[PM_PAIR_CONFIRM_MAX_LEN + PM_NOISE_TAGLEN];
      size_t  len = pm_pair_confirm_write (
         PM_PAIR_CONFIRM_REJECT, "The host's user did not answer in time", plain, sizeof plain);

      if (len > 0 && self->ws != NULL &&
          pm_cipher_state_encrypt_with_ad (self->send, NULL, 0, plain, len, sealed, NULL))
        soup_websocket_connection_send_binary (self->ws, sealed, len + PM_NOISE_TAGLEN);
      fail (self, SOUP_WEBSOCKET_CLOSE_NORMAL, PM_PAIR_ERROR_TIMED_OUT,
            "Nobody accepted or rejected the verification code within %u s",
            self->limits.verify_timeout_ms / 1000);
    }
  else
    fail (self, CLOSE_TIMEOUT, PM_PAIR_ERROR_TIMED_OUT,
          "The device at %s stopped answering during the pairing",
          self->peer_address != NULL ? self->peer_address : "?");
  return G_SOURCE_REMOVE;
}

static void
arm_timeout (PmPairHost *self,
             unsigned    ms)
{
  clear_timeout (self);
  self->timeout_id = g_timeout_add (ms, on_timeout, self);
}

static gboolean
on_expired (gpointer user_data)
{
  PmPairHost *self = user_data;

  self->expiry_id = 0;
  self->expired = TRUE;
  if (self->state == HOST_WAITING)
    fail (self, 0, PM_PAIR_ERROR_TOKEN_EXPIRED,
          "The pairing code expired before any device used it");
  return G_SOURCE_REMOVE;
}

/* --- the exchange -------------------------------------------------------------- */

static gboolean
send_confirm (PmPairHost       *self,
              PmPairConfirmKind kind,
              const char       *reason)
{
  uint8_t plain[PM_PAIR_CONFIRM_MAX_LEN];
  uint8_t sealed[PM_PAIR_CONFIRM_MAX_LEN + PM_NOISE_TAGLEN];
  size_t  len = pm_pair_confirm_write (kind, reason, plain, sizeof plain);

  if (len == 0)
    len = pm_pair_confirm_write (kind, NULL, plain, sizeof plain); /* a reason we cannot send */
  if (len == 0 || self->ws == NULL || self->send == NULL ||
      !pm_cipher_state_encrypt_with_ad (self->send, NULL, 0, plain, len, sealed, NULL))
    return FALSE;
  soup_websocket_connection_send_binary (self->ws, sealed, len + PM_NOISE_TAGLEN);
  return TRUE;
}

static void
handle_msg1 (PmPairHost    *self,
             const uint8_t *data,
             size_t         len)
{
  g_autoptr (GError) error = NULL;
  uint8_t     payload[PM_PAIR_MAX_MESSAGE];
  uint8_t     out[PM_PAIR_MAX_MESSAGE];
  uint8_t     hello[PM_PAIR_HELLO_MAX_LEN];
  size_t      payload_len = 0, out_len = 0, hello_len;
  PmPairHello mine;

  if (!pm_handshake_state_read_message (self->hs, data, len, payload, sizeof payload, &payload_len,
                                        &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "Handshake message 1 from %s was refused: %s", self->peer_address, error->message);
      return;
    }
  if (payload_len != 0)
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "Handshake message 1 from %s carried a payload", self->peer_address);
      return;
    }
  if (!pm_pair_hello_init (&mine, self->name, self->device_type, self->mesh_port, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  hello_len = pm_pair_hello_write (&mine, hello, sizeof hello);
  if (hello_len == 0 || !pm_handshake_state_write_message (self->hs, hello, hello_len, out,
                                                           sizeof out, &out_len, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "Could not write handshake message 2: %s",
            error != NULL ? error->message : "bad hello");
      return;
    }
  soup_websocket_connection_send_binary (self->ws, out, out_len);
  self->state = HOST_READ_MSG3;
  arm_timeout (self, self->limits.message_timeout_ms);
}

static void
handle_msg3 (PmPairHost    *self,
             const uint8_t *data,
             size_t         len)
{
  g_autoptr (GError) error = NULL;
  uint8_t payload[PM_PAIR_MAX_MESSAGE];
  size_t  payload_len = 0;

  if (!pm_handshake_state_read_message (self->hs, data, len, payload, sizeof payload, &payload_len,
                                        &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "Handshake message 3 from %s was refused: %s", self->peer_address, error->message);
      return;
    }
  if (!pm_pair_hello_parse (payload, payload_len, &self->peer, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "The device at %s sent a bad hello: %s",
            self->peer_address, error->message);
      return;
    }
  if (!pm_handshake_state_get_remote_static (self->hs, self->peer_key) ||
      !pm_handshake_state_split (self->hs, &self->send, &self->recv, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "The handshake did not complete: %s",
            error != NULL ? error->message : "no static key");
      return;
    }
  self->verification = pm_verification_code (pm_handshake_state_get_handshake_hash (self->hs));
  g_clear_pointer (&self->hs, pm_handshake_state_free);

  if (sodium_memcmp (self->peer_key, pm_identity_get_public_key (self->identity), PM_KEY_LEN) == 0)
    {
      send_confirm (self, PM_PAIR_CONFIRM_REJECT, "A device cannot pair with itself");
      fail (self, SOUP_WEBSOCKET_CLOSE_NORMAL, PM_PAIR_ERROR_PROTOCOL,
            "A device cannot pair with itself");
      return;
    }
  if (!pm_paired_store_check_new (self->store, self->peer.name, self->peer_key, &error))
    {
      g_autofree char *reason =
        g_strdup_printf ("The host already has another device named “%s” paired", self->peer.name);
      send_confirm (self, PM_PAIR_CONFIRM_REJECT, reason);
      fail (self, SOUP_WEBSOCKET_CLOSE_NORMAL,
            g_error_matches (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT)
              ? PM_PAIR_ERROR_CONFLICT
              : PM_PAIR_ERROR_STORE,
            "%s", error->message);
      return;
    }

  self->state = HOST_VERIFYING;
  arm_timeout (self, self->limits.verify_timeout_ms);
  g_debug ("Pairing with “%s” (%s) from %s: waiting for the user", self->peer.name,
           self->peer.device_type, self->peer_address);
  g_signal_emit (self, signals[SIGNAL_VERIFY], 0, self->verification, self->peer.name,
                 self->peer.device_type);
}

static void
store_peer (PmPairHost *self)
{
  g_autoptr (PmPairedDevice) device = pm_paired_device_new ();
  g_autoptr (GError) error = NULL;

  device->name = g_strdup (self->peer.name);
  device->device_type = g_strdup (self->peer.device_type);
  memcpy (device->public_key, self->peer_key, PM_KEY_LEN);
  if (self->peer.mesh_port != 0 && self->peer_ip != NULL)
    {
      g_autoptr (GInetSocketAddress) a =
        G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (self->peer_ip, self->peer.mesh_port));
      g_ptr_array_add (device->addresses, pm_address_to_string (a));
    }
  if (self->allowed_services == NULL || self->allowed_services[0] == NULL)
    g_ptr_array_add (device->allowed_services, g_strdup (PM_PAIRED_ALL_SERVICES));
  else
    for (char **s = self->allowed_services; *s != NULL; s++)
      g_ptr_array_add (device->allowed_services, g_strdup (*s));
  device->paired_at = g_get_real_time () / G_USEC_PER_SEC;

  if (!pm_paired_store_add (self->store, device, &error))
    {
      fail (self, CLOSE_STORE, PM_PAIR_ERROR_STORE, "Could not store “%s”: %s", self->peer.name,
            error->message);
      return;
    }
  g_debug ("Paired with “%s” (%s)", device->name, device->id);
  finish (self, g_steal_pointer (&device), NULL, SOUP_WEBSOCKET_CLOSE_NORMAL);
}

static void
handle_confirm (PmPairHost    *self,
                const uint8_t *data,
                size_t         len)
{
  g_autoptr (GError) error = NULL;
  uint8_t       plain[PM_PAIR_MAX_MESSAGE];
  PmPairConfirm confirm;

  if (len < PM_NOISE_TAGLEN ||
      !pm_cipher_state_decrypt_with_ad (self->recv, NULL, 0, data, len, plain, &error) ||
      !pm_pair_confirm_parse (plain, len - PM_NOISE_TAGLEN, &confirm, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "A bad confirmation from %s: %s",
            self->peer_address, error != NULL ? error->message : "too short");
      return;
    }
  if (confirm.kind != PM_PAIR_CONFIRM_STORED)
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "The device at %s sent an unexpected confirmation", self->peer_address);
      return;
    }
  store_peer (self);
}

static void
on_ws_message (SoupWebsocketConnection *ws,
               int                      type,
               GBytes                  *message,
               gpointer                 user_data)
{
  PmPairHost    *self = user_data;
  size_t         len = 0;
  const uint8_t *data = g_bytes_get_data (message, &len);

  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      fail (self, SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA, PM_PAIR_ERROR_PROTOCOL,
            "The device at %s sent a text message", self->peer_address);
      return;
    }
  switch (self->state)
    {
    case HOST_READ_MSG1:
      handle_msg1 (self, data, len);
      break;
    case HOST_READ_MSG3:
      handle_msg3 (self, data, len);
      break;
    case HOST_WAIT_STORED:
      handle_confirm (self, data, len);
      break;
    default:
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "The device at %s sent a message out of turn", self->peer_address);
      break;
    }
}

static void
on_ws_closed (SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  PmPairHost *self = user_data;
  const char *reason = soup_websocket_connection_get_close_data (ws);
  gushort     code = soup_websocket_connection_get_close_code (ws);

  if (reason != NULL && *reason != '\0' && g_utf8_validate (reason, -1, NULL))
    fail (self, 0, PM_PAIR_ERROR_CLOSED, "The device at %s ended the pairing (%u): %s",
          self->peer_address, code, reason);
  else
    fail (self, 0, PM_PAIR_ERROR_CLOSED,
          "The device at %s closed the connection during the pairing (%u)", self->peer_address,
          code);
}

static void
on_ws_error (SoupWebsocketConnection *ws,
             GError                  *error,
             gpointer                 user_data)
{
  PmPairHost *self = user_data;

  g_debug ("Pairing WebSocket from %s: %s", self->peer_address, error->message);
}

static void
on_wrote_informational (SoupServerMessage *msg,
                        gpointer           user_data)
{
  PmPairHost *self = user_data;
  g_autoptr (GIOStream) stream = NULL;
  g_autoptr (GError) error = NULL;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  if (soup_server_message_get_status (msg) != SOUP_STATUS_SWITCHING_PROTOCOLS || self->finished)
    return;
  stream = soup_server_message_steal_connection (msg);
  self->ws = soup_websocket_connection_new (
    stream, soup_server_message_get_uri (msg), SOUP_WEBSOCKET_CONNECTION_SERVER,
    soup_message_headers_get_one (headers, "Origin"), NULL, NULL);
  soup_websocket_connection_set_max_incoming_payload_size (self->ws, PM_PAIR_MAX_MESSAGE);
  soup_websocket_connection_set_keepalive_interval (self->ws, 0);
  g_signal_connect (self->ws, "message", G_CALLBACK (on_ws_message), self);
  g_signal_connect (self->ws, "closed", G_CALLBACK (on_ws_closed), self);
  g_signal_connect (self->ws, "error", G_CALLBACK (on_ws_error), self);

  self->hs = pm_handshake_state_new (PM_PAIR_PROTOCOL, PM_ROLE_RESPONDER, &error);
  if (self->hs == NULL)
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  {
    uint8_t   prologue[sizeof PM_PAIR_PROLOGUE - 1 + PM_PAIR_CODE_TOKEN_LEN];
    PmKeypair keypair;

    memcpy (prologue, PM_PAIR_PROLOGUE, sizeof PM_PAIR_PROLOGUE - 1);
    memcpy (prologue + sizeof PM_PAIR_PROLOGUE - 1, self->code->token, PM_PAIR_CODE_TOKEN_LEN);
    pm_handshake_state_set_prologue (self->hs, prologue, sizeof prologue);
    sodium_memzero (prologue, sizeof prologue);
    pm_identity_get_keypair (self->identity, &keypair);
    pm_handshake_state_set_local_static (self->hs, &keypair);
    pm_keypair_clear (&keypair);
  }
  if (!pm_handshake_state_start (self->hs, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  self->state = HOST_READ_MSG1;
  arm_timeout (self, self->limits.message_timeout_ms);
}

/* --- the HTTPS request --------------------------------------------------------- */

static void
refuse (SoupServerMessage *msg,
        unsigned           status,
        const char        *error_name,
        const char        *message)
{
  g_autofree char *body =
    g_strdup_printf ("{\"error\":\"%s\",\"message\":\"%s\"}\n", error_name, message);

  soup_server_message_set_status (msg, status, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                PM_PAIR_ERROR_HEADER, error_name);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
}

/* "Bearer " and the 43 characters of 32 bytes in unpadded base64url. */
static gboolean
parse_bearer (const char *header,
              uint8_t     token[PM_PAIR_CODE_TOKEN_LEN])
{
  size_t bin_len = 0;
  size_t text_len;

  if (header == NULL || !g_str_has_prefix (header, "Bearer "))
    return FALSE;
  header += strlen ("Bearer ");
  text_len = strlen (header);
  if (text_len !=
      sodium_base64_ENCODED_LEN (PM_PAIR_CODE_TOKEN_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING) -
        1)
    return FALSE;
  return sodium_base642bin (token, PM_PAIR_CODE_TOKEN_LEN, header, text_len, NULL, &bin_len, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
         bin_len == PM_PAIR_CODE_TOKEN_LEN;
}

static void
on_request (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  PmPairHost      *self = user_data;
  GSocketAddress  *remote = soup_server_message_get_remote_address (msg);
  g_autofree char *from = remote != NULL && G_IS_INET_SOCKET_ADDRESS (remote)
                            ? pm_address_to_string (G_INET_SOCKET_ADDRESS (remote))
                            : g_strdup ("?");
  uint8_t          token[PM_PAIR_CODE_TOKEN_LEN];
  gboolean         good;

  if (strcmp (path, PM_PAIR_PATH) != 0)
    {
      refuse (msg, SOUP_STATUS_NOT_FOUND, "not_found", "Nothing here but " PM_PAIR_PATH);
      return;
    }
  if (soup_server_message_get_method (msg) != SOUP_METHOD_GET)
    {
      refuse (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
              "Use GET with a WebSocket upgrade");
      return;
    }
  good = self->code != NULL &&
         parse_bearer (soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                     "Authorization"),
                       token) &&
         pm_pair_code_token_equal (self->code, token);
  sodium_memzero (token, sizeof token);
  if (!good)
    {
      self->bad_tokens++;
      g_message ("Pairing request from %s with a wrong token (%u)", from, self->bad_tokens);
      refuse (msg, SOUP_STATUS_UNAUTHORIZED, "invalid_token",
              "This is not the token of the pairing code shown");
      if (self->bad_tokens >= self->limits.max_bad_tokens && self->state == HOST_WAITING)
        fail (self, 0, PM_PAIR_ERROR_TOKEN_INVALID,
              "The pairing code was retired after %u requests with a wrong token; show a new one",
              self->bad_tokens);
      return;
    }
  if (self->spent)
    {
      g_message ("Pairing request from %s with a used token", from);
      refuse (msg, SOUP_STATUS_GONE, "token_used",
              "This pairing code was already used; show a new code on the host");
      return;
    }
  if (self->expired || pm_pair_code_is_expired (self->code, g_get_real_time () / G_USEC_PER_SEC))
    {
      g_message ("Pairing request from %s with an expired token", from);
      refuse (msg, SOUP_STATUS_GONE, "token_expired",
              "This pairing code expired; show a new code on the host");
      if (!self->finished)
        {
          self->expired = TRUE;
          fail (self, 0, PM_PAIR_ERROR_TOKEN_EXPIRED,
                "The pairing code expired before any device used it");
        }
      return;
    }
  if (self->state != HOST_WAITING)
    {
      g_message ("Pairing request from %s for a withdrawn code", from);
      refuse (
        msg, SOUP_STATUS_GONE, "token_retired",
        "This pairing code was withdrawn (stopped, or too many wrong tokens); "
        "show a new code on the host");
      return;
    }

  /* Spent now, whatever happens next. */
  self->spent = TRUE;
  self->state = HOST_UPGRADING;
  g_clear_handle_id (&self->expiry_id, g_source_remove);
  self->peer_address = g_steal_pointer (&from);
  if (remote != NULL && G_IS_INET_SOCKET_ADDRESS (remote))
    self->peer_ip =
      g_object_ref (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
  if (!soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL))
    {
      fail (self, 0, PM_PAIR_ERROR_PROTOCOL, "The device at %s did not ask for a WebSocket",
            self->peer_address);
      return;
    }
  g_signal_connect (msg, "wrote-informational", G_CALLBACK (on_wrote_informational), self);
  arm_timeout (self, self->limits.message_timeout_ms);
}

/* --- listening ------------------------------------------------------------------ */

static gboolean
is_lan_address (GInetAddress *ip)
{
  if (g_inet_address_get_is_loopback (ip) || g_inet_address_get_is_link_local (ip) ||
      g_inet_address_get_is_multicast (ip) || g_inet_address_get_is_any (ip))
    return FALSE;
  if (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV6)
    {
      const uint8_t       *b = g_inet_address_to_bytes (ip);
      static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

      if (memcmp (b, mapped, sizeof mapped) == 0)
        return FALSE;
    }
  return TRUE;
}

/* The addresses of interfaces that are up, for a code: IPv4 first, no
 * loopback, link-local or multicast; at most PM_PAIR_CODE_MAX_ADDRESSES. */
static GPtrArray *
lan_addresses (void)
{
  g_autoptr (GPtrArray) v4 = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) v6 = g_ptr_array_new_with_free_func (g_object_unref);
  GPtrArray      *all = g_ptr_array_new_with_free_func (g_object_unref);
  struct ifaddrs *ifaddrs = NULL;

  if (getifaddrs (&ifaddrs) != 0)
    return all;
  for (struct ifaddrs *ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    {
      g_autoptr (GSocketAddress) address = NULL;
      GInetAddress *ip;
      size_t        len;

      if (ifa->ifa_addr == NULL || (ifa->ifa_flags & IFF_UP) == 0 ||
          (ifa->ifa_addr->sa_family != AF_INET && ifa->ifa_addr->sa_family != AF_INET6))
        continue;
      len = ifa->ifa_addr->sa_family == AF_INET ? sizeof (struct sockaddr_in)
                                                : sizeof (struct sockaddr_in6);
      address = g_socket_address_new_from_native (ifa->ifa_addr, len);
      if (!G_IS_INET_SOCKET_ADDRESS (address))
        continue;
      ip = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
      if (!is_lan_address (ip))
        continue;
      g_ptr_array_add (g_inet_address_get_family (ip) == G_SOCKET_FAMILY_IPV4 ? v4 : v6,
                       g_object_ref (ip));
    }
  freeifaddrs (ifaddrs);
  for (unsigned i = 0; i < v4->len && all->len < PM_PAIR_CODE_MAX_ADDRESSES; i++)
    g_ptr_array_add (all, g_object_ref (v4->pdata[i]));
  for (unsigned i = 0; i < v6->len && all->len < PM_PAIR_CODE_MAX_ADDRESSES; i++)
    g_ptr_array_add (all, g_object_ref (v6->pdata[i]));
  return all;
}

static uint16_t
listening_port (SoupServer *server)
{
  GSList  *listeners = soup_server_get_listeners (server);
  uint16_t port = 0;

  for (GSList *l = listeners; l != NULL && port == 0; l = l->next)
    {
      g_autoptr (GSocketAddress) local = g_socket_get_local_address (l->data, NULL);
      if (local != NULL && G_IS_INET_SOCKET_ADDRESS (local))
        port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
    }
  g_slist_free (listeners);
  return port;
}

/**
 * pm_pair_host_start:
 * @addresses: (element-type GInetAddress) (nullable): where to listen; the
 *   code lists them in this order. NULL: listen on every address (IPv4 and
 *   IPv6) and list this device's LAN addresses in the code.
 * @port: the TCP port (0: a free one, the same on every address)
 * @lifetime_s: how long the code is valid (PM_PAIR_CODE_LIFETIME_S)
 */
gboolean
pm_pair_host_start (PmPairHost *self,
                    GPtrArray  *addresses,
                    uint16_t    port,
                    int64_t     lifetime_s,
                    GError    **error)
{
  g_autoptr (GPtrArray) code_addresses = NULL;
  g_autoptr (GError) local = NULL;
  uint8_t spki[PM_PAIR_SPKI_SHA256_LEN];
  int64_t seconds;

  g_return_val_if_fail (PM_IS_PAIR_HOST (self), FALSE);
  g_return_val_if_fail (self->state == HOST_IDLE, FALSE);
  g_return_val_if_fail (lifetime_s > 0, FALSE);

  if (!pm_pair_cert_get_spki_sha256 (self->certificate, spki, error))
    return FALSE;
  if (addresses == NULL)
    {
      code_addresses = lan_addresses ();
      if (code_addresses->len == 0)
        {
          g_set_error_literal (
            error, PM_PAIR_ERROR, PM_PAIR_ERROR_LISTEN,
            "This device has no LAN address (no network?); give the address to listen on");
          return FALSE;
        }
    }
  else
    {
      if (addresses->len == 0 || addresses->len > PM_PAIR_CODE_MAX_ADDRESSES)
        {
          g_set_error (error, PM_PAIR_ERROR, PM_PAIR_ERROR_LISTEN,
                       "Give 1 to %d addresses to listen on", PM_PAIR_CODE_MAX_ADDRESSES);
          return FALSE;
        }
      code_addresses = g_ptr_array_ref (addresses);
    }

  self->server = soup_server_new ("server-header", NULL, NULL);
  soup_server_set_tls_certificate (self->server, self->certificate);
  soup_server_add_handler (self->server, PM_PAIR_PATH, on_request, self, NULL);
  if (addresses == NULL)
    {
      if (!soup_server_listen_all (self->server, port, SOUP_SERVER_LISTEN_HTTPS, &local))
        goto listen_failed;
      port = listening_port (self->server);
    }
  else
    for (unsigned i = 0; i < addresses->len; i++)
      {
        g_autoptr (GSocketAddress) at = g_inet_socket_address_new (addresses->pdata[i], port);

        if (!soup_server_listen (self->server, at, SOUP_SERVER_LISTEN_HTTPS, &local))
          goto listen_failed;
        if (port == 0)
          port = listening_port (self->server);
      }
  self->port = port;

  self->code = pm_pair_code_new_random (code_addresses, port, spki,
                                        pm_identity_get_public_key (self->identity), self->name,
                                        lifetime_s, error);
  if (self->code == NULL)
    {
      soup_server_disconnect (self->server);
      g_clear_object (&self->server);
      return FALSE;
    }
  seconds = self->code->expires - g_get_real_time () / G_USEC_PER_SEC;
  self->expiry_id =
    g_timeout_add_seconds ((unsigned) CLAMP (seconds, 1, G_MAXINT32), on_expired, self);
  self->state = HOST_WAITING;
  g_debug ("Pairing host listening on port %u", port);
  return TRUE;

listen_failed:
  g_set_error (
    error, PM_PAIR_ERROR, PM_PAIR_ERROR_LISTEN, "Could not listen for pairing on port %u: %s%s",
    port, local->message,
    g_error_matches (local, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE) ? " (choose another port)" : "");
  soup_server_disconnect (self->server);
  g_clear_object (&self->server);
  return FALSE;
}

const PmPairCode *
pm_pair_host_get_code (PmPairHost *self)
{
  g_return_val_if_fail (PM_IS_PAIR_HOST (self), NULL);
  return self->code;
}

uint16_t
pm_pair_host_get_port (PmPairHost *self)
{
  g_return_val_if_fail (PM_IS_PAIR_HOST (self), 0);
  return self->port;
}

/**
 * pm_pair_host_stop:
 * Stops listening; a pairing under way fails (CLOSED).
 */
void
pm_pair_host_stop (PmPairHost *self)
{
  g_return_if_fail (PM_IS_PAIR_HOST (self));

  if (!self->finished && self->state != HOST_IDLE)
    fail (self, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, PM_PAIR_ERROR_CLOSED, "The pairing was stopped");
  g_clear_handle_id (&self->expiry_id, g_source_remove);
  if (self->server != NULL)
    {
      soup_server_remove_handler (self->server, PM_PAIR_PATH);
      soup_server_disconnect (self->server);
      g_clear_object (&self->server);
    }
}

/* --- the user's answer ----------------------------------------------------------- */

/**
 * pm_pair_host_accept:
 * The user saw the same code on both screens: tells the client, which stores
 * this host and says so; then the client is stored here.
 */
void
pm_pair_host_accept (PmPairHost *self)
{
  g_return_if_fail (PM_IS_PAIR_HOST (self));

  if (self->state != HOST_VERIFYING)
    return;
  if (!send_confirm (self, PM_PAIR_CONFIRM_ACCEPT, NULL))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "Could not send the confirmation");
      return;
    }
  self->state = HOST_WAIT_STORED;
  arm_timeout (self, self->limits.message_timeout_ms);
}

/**
 * pm_pair_host_reject:
 * @reason: (nullable): told to the client (at most PM_PAIR_REASON_MAX bytes)
 */
void
pm_pair_host_reject (PmPairHost *self,
                     const char *reason)
{
  g_return_if_fail (PM_IS_PAIR_HOST (self));

  if (self->state != HOST_VERIFYING)
    return;
  send_confirm (self, PM_PAIR_CONFIRM_REJECT,
                reason != NULL ? reason : "The host's user rejected the pairing");
  fail (self, SOUP_WEBSOCKET_CLOSE_NORMAL, PM_PAIR_ERROR_REJECTED,
        "The pairing with “%s” was rejected", self->peer.name);
}

/* --- waiting ---------------------------------------------------------------------- */

void
pm_pair_host_wait_async (PmPairHost         *self,
                         GCancellable       *cancellable,
                         GAsyncReadyCallback callback,
                         gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (PM_IS_PAIR_HOST (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_pair_host_wait_async);
  g_task_set_check_cancellable (task, TRUE);
  if (self->finished)
    {
      return_to (task, self);
      return;
    }
  self->waiters = g_list_append (self->waiters, g_steal_pointer (&task));
}

/**
 * pm_pair_host_wait_finish:
 * Returns: (transfer full): the device now paired, or %NULL with @error
 */
PmPairedDevice *
pm_pair_host_wait_finish (PmPairHost   *self,
                          GAsyncResult *result,
                          GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* --- object --------------------------------------------------------------------- */

static void
pm_pair_host_dispose (GObject *object)
{
  PmPairHost *self = PM_PAIR_HOST (object);

  pm_pair_host_stop (self);
  clear_timeout (self);
  complete (self); /* drops a WebSocket still closing */
  drop_keys (self);
  G_OBJECT_CLASS (pm_pair_host_parent_class)->dispose (object);
}

static void
pm_pair_host_finalize (GObject *object)
{
  PmPairHost *self = PM_PAIR_HOST (object);

  g_assert (self->waiters == NULL);
  g_clear_object (&self->identity);
  g_clear_object (&self->certificate);
  g_clear_object (&self->store);
  g_clear_object (&self->peer_ip);
  g_clear_pointer (&self->code, pm_pair_code_free);
  g_clear_pointer (&self->result, pm_paired_device_free);
  g_clear_error (&self->error);
  g_strfreev (self->allowed_services);
  g_free (self->name);
  g_free (self->device_type);
  g_free (self->peer_address);
  g_free (self->verification);
  sodium_memzero (self->peer_key, sizeof self->peer_key);
  G_OBJECT_CLASS (pm_pair_host_parent_class)->finalize (object);
}

static void
pm_pair_host_class_init (PmPairHostClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_pair_host_dispose;
  object_class->finalize = pm_pair_host_finalize;

  /**
   * PmPairHost::verify:
   * @code: the verification code both screens show
   * @peer_name: the name the other device gave
   * @peer_type: its device type
   */
  signals[SIGNAL_VERIFY] =
    g_signal_new ("verify", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
}

static void
pm_pair_host_init (PmPairHost *self)
{
  self->mesh_port = PM_MESH_LAN_PORT;
  pm_pair_limits_default (&self->limits);
}

/**
 * pm_pair_host_new:
 * @certificate: from pm_pair_cert_load_or_create()
 * @store: where the new device is stored (nothing is written unless the
 *   pairing succeeds)
 * @name: this device's name, shown to the other one (and put in the code)
 * @device_type: "linux", "mac", …
 * @limits: (nullable): timers; NULL for the defaults
 */
PmPairHost *
pm_pair_host_new (PmIdentity         *identity,
                  GTlsCertificate    *certificate,
                  PmPairedStore      *store,
                  const char         *name,
                  const char         *device_type,
                  const PmPairLimits *limits)
{
  PmPairHost *self;

  g_return_val_if_fail (PM_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (G_IS_TLS_CERTIFICATE (certificate), NULL);
  g_return_val_if_fail (PM_IS_PAIRED_STORE (store), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (pm_pair_device_type_is_valid (device_type), NULL);

  self = g_object_new (PM_TYPE_PAIR_HOST, NULL);
  self->identity = g_object_ref (identity);
  self->certificate = g_object_ref (certificate);
  self->store = g_object_ref (store);
  self->name = g_strdup (name);
  self->device_type = g_strdup (device_type);
  if (limits != NULL)
    self->limits = *limits;
  return self;
}

void
pm_pair_host_set_mesh_port (PmPairHost *self,
                            uint16_t    port)
{
  g_return_if_fail (PM_IS_PAIR_HOST (self));
  self->mesh_port = port;
}

void
pm_pair_host_set_allowed_services (PmPairHost        *self,
                                   const char *const *services)
{
  g_return_if_fail (PM_IS_PAIR_HOST (self));
  g_strfreev (self->allowed_services);
  self->allowed_services = g_strdupv ((char **) services);
}
