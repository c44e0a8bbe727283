/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-pair"

#include "pm-pair-client.h"

#include <libsoup/soup.h>
#include <sodium.h>
#include <stdarg.h>
#include <string.h>

#include "pm-address.h"
#include "pm-handshake-state.h"
#include "pm-mesh-limits.h"
#include "pm-pair-cert.h"
#include "pm-verification.h"

/* The client's side of one pairing:
 *
 *   CONNECTING (each address in turn: TCP, TLS pinned, upgrade with the token)
 *     ──101, write msg1──> READ_MSG2 ── msg2, key checked, write msg3 ──> WAIT_CONFIRM
 *   WAIT_CONFIRM ── ACCEPT: store the host, send STORED ──> WAIT_CLOSE
 *   WAIT_CLOSE ── the host closes normally (it stored us too) ──> success
 *
 * Any error ends it with nothing stored: what WAIT_CONFIRM stored is removed
 * again when the host does not close normally. */
typedef enum {
  CLIENT_CONNECTING,
  CLIENT_READ_MSG2,
  CLIENT_WAIT_CONFIRM,
  CLIENT_WAIT_CLOSE,
  CLIENT_DONE,
} ClientState;

/* WebSocket close codes of the exchange (docs/PROTOCOL.md §11). */
enum {
  CLOSE_PROTOCOL = 4400,
  CLOSE_WRONG_KEY = 4403,
  CLOSE_TIMEOUT = 4408,
  CLOSE_CONFLICT = 4409,
  CLOSE_STORE = 4500,
};

typedef struct {
  PmPairCode   *code;
  ClientState   state;
  unsigned      next_address;
  SoupSession  *session;
  SoupMessage  *msg;
  GCancellable *attempt;
  guint         attempt_timer;
  gboolean      attempt_timed_out;
  gboolean      cert_mismatch;
  char         *attempt_address;
  GError       *best_error;  /* the most telling failure of the addresses tried */
  GString      *unreachable; /* "ADDR: reason; ..." */
  gulong        cancelled_id;

  SoupWebsocketConnection *ws;
  GInetAddress            *host_ip;
  PmHandshakeState        *hs;
  PmCipherState           *send;
  PmCipherState           *recv;
  PmPairHello              host;
  char                    *verification;
  PmPairedDevice          *stored;
  gboolean                 stored_new;
  guint                    timeout_id;
  guint                    close_guard_id;

  gboolean        finished;
  PmPairedDevice *result;
  GError         *error;
} Op;

struct _PmPairClient {
  GObject parent_instance;

  PmIdentity    *identity;
  PmPairedStore *store;
  char          *name;
  char          *device_type;
  PmPairLimits   limits;
  uint16_t       mesh_port;
  GStrv          allowed_services;

  GTask *task; /* the pairing under way; its task data is the Op */
};

G_DEFINE_FINAL_TYPE (PmPairClient, pm_pair_client, G_TYPE_OBJECT)

enum {
  SIGNAL_VERIFY,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void try_next_address (PmPairClient *self);

static Op *
op_of (PmPairClient *self)
{
  return self->task != NULL ? g_task_get_task_data (self->task) : NULL;
}

static void
op_free (Op *op)
{
  g_assert (op->ws == NULL && op->timeout_id == 0 && op->close_guard_id == 0 &&
            op->attempt_timer == 0);
  g_clear_pointer (&op->code, pm_pair_code_free);
  g_clear_object (&op->session);
  g_clear_object (&op->msg);
  g_clear_object (&op->attempt);
  g_clear_object (&op->host_ip);
  g_clear_pointer (&op->hs, pm_handshake_state_free);
  g_clear_pointer (&op->send, pm_cipher_state_free);
  g_clear_pointer (&op->recv, pm_cipher_state_free);
  g_clear_pointer (&op->stored, pm_paired_device_free);
  g_clear_pointer (&op->result, pm_paired_device_free);
  g_clear_error (&op->error);
  g_clear_error (&op->best_error);
  if (op->unreachable != NULL)
    g_string_free (op->unreachable, TRUE);
  g_free (op->attempt_address);
  g_free (op->verification);
  g_free (op);
}

/* --- ending -------------------------------------------------------------------- */

static const char *
close_reason (int close_code)
{
  switch (close_code)
    {
    case CLOSE_PROTOCOL:
      return "protocol error";
    case CLOSE_WRONG_KEY:
      return "wrong static key: this host is not the one in the pairing code";
    case CLOSE_TIMEOUT:
      return "timed out";
    case CLOSE_CONFLICT:
      return "another device of that name is already paired here";
    case CLOSE_STORE:
      return "the device could not store this host";
    case SOUP_WEBSOCKET_CLOSE_GOING_AWAY:
      return "the pairing was cancelled";
    default:
      return NULL;
    }
}

/* The WebSocket is closed or given up on: the task returns. */
static void
complete (PmPairClient *self)
{
  g_autoptr (GTask) task = g_steal_pointer (&self->task);
  Op *op = g_task_get_task_data (task);

  g_clear_handle_id (&op->close_guard_id, g_source_remove);
  g_clear_handle_id (&op->timeout_id, g_source_remove);
  g_clear_handle_id (&op->attempt_timer, g_source_remove);
  if (op->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (op->ws, self);
      g_clear_object (&op->ws);
    }
  g_cancellable_disconnect (g_task_get_cancellable (task), op->cancelled_id);
  op->cancelled_id = 0;
  if (op->session != NULL)
    soup_session_abort (op->session);
  if (op->error != NULL)
    g_task_return_error (task, g_steal_pointer (&op->error));
  else
    g_task_return_pointer (task, g_steal_pointer (&op->result),
                           (GDestroyNotify) pm_paired_device_free);
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
  PmPairClient *self = user_data;
  Op           *op = op_of (self);

  if (op == NULL)
    return G_SOURCE_REMOVE;
  op->close_guard_id = 0;
  complete (self);
  return G_SOURCE_REMOVE;
}

static void
finish (PmPairClient   *self,
        PmPairedDevice *device,
        GError         *error,
        int             close_code)
{
  Op *op = op_of (self);

  if (op == NULL || op->finished)
    {
      g_clear_error (&error);
      g_clear_pointer (&device, pm_paired_device_free);
      return;
    }
  op->finished = TRUE;
  op->state = CLIENT_DONE;
  op->result = device;
  op->error = error;
  g_clear_handle_id (&op->timeout_id, g_source_remove);
  g_clear_pointer (&op->hs, pm_handshake_state_free);
  g_clear_pointer (&op->send, pm_cipher_state_free);
  g_clear_pointer (&op->recv, pm_cipher_state_free);

  /* Nothing stays stored after a failure. */
  if (error != NULL && op->stored != NULL && op->stored_new)
    {
      g_autoptr (GError) local = NULL;
      if (!pm_paired_store_remove (self->store, op->stored->id, &local))
        g_warning ("Could not remove “%s” again after the failed pairing: %s", op->stored->name,
                   local->message);
    }

  if (op->ws == NULL || soup_websocket_connection_get_state (op->ws) == SOUP_WEBSOCKET_STATE_CLOSED)
    {
      complete (self);
      return;
    }
  g_signal_handlers_disconnect_by_data (op->ws, self);
  g_signal_connect (op->ws, "closed", G_CALLBACK (on_final_close), self);
  if (soup_websocket_connection_get_state (op->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (
      op->ws, (gushort) (close_code != 0 ? close_code : SOUP_WEBSOCKET_CLOSE_NORMAL),
      close_reason (close_code));
  op->close_guard_id = g_timeout_add (PM_PAIR_CLOSE_TIMEOUT_MS, on_close_guard, self);
}

static void fail (PmPairClient *self,
                  int           close_code,
                  int           code,
                  const char   *format,
                  ...) G_GNUC_PRINTF (4, 5);

static void
fail (PmPairClient *self,
      int           close_code,
      int           code,
      const char   *format,
      ...)
{
  va_list args;
  GError *error;

  va_start (args, format);
  error = g_error_new_valist (PM_PAIR_ERROR, code, format, args);
  va_end (args);
  finish (self, NULL, error, close_code);
}

static gboolean
on_timeout (gpointer user_data)
{
  PmPairClient *self = user_data;
  Op           *op = op_of (self);

  if (op == NULL)
    return G_SOURCE_REMOVE;
  op->timeout_id = 0;
  if (op->state == CLIENT_WAIT_CONFIRM)
    fail (self, CLOSE_TIMEOUT, PM_PAIR_ERROR_TIMED_OUT,
          "“%s” did not say whether its user accepted the pairing; nothing was stored",
          op->host.name);
  else
    fail (self, CLOSE_TIMEOUT, PM_PAIR_ERROR_TIMED_OUT,
          "%s stopped answering during the pairing; nothing was stored", op->code->name);
  return G_SOURCE_REMOVE;
}

static void
arm_timeout (Op      *op,
             unsigned ms,
             gpointer self)
{
  g_clear_handle_id (&op->timeout_id, g_source_remove);
  op->timeout_id = g_timeout_add (ms, on_timeout, self);
}

/* --- the exchange -------------------------------------------------------------- */

static void
handle_msg2 (PmPairClient  *self,
             Op            *op,
             const uint8_t *data,
             size_t         len)
{
  g_autoptr (GError) error = NULL;
  uint8_t     payload[PM_PAIR_MAX_MESSAGE];
  uint8_t     out[PM_PAIR_MAX_MESSAGE];
  uint8_t     hello[PM_PAIR_HELLO_MAX_LEN];
  uint8_t     key[PM_KEY_LEN];
  size_t      payload_len = 0, out_len = 0, hello_len;
  PmPairHello mine;

  if (!pm_handshake_state_read_message (op->hs, data, len, payload, sizeof payload, &payload_len,
                                        &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "The host's handshake message was refused: %s", error->message);
      return;
    }
  if (!pm_handshake_state_get_remote_static (op->hs, key) ||
      sodium_memcmp (key, op->code->static_public, PM_KEY_LEN) != 0)
    {
      fail (self, CLOSE_WRONG_KEY, PM_PAIR_ERROR_WRONG_KEY,
            "The device at %s is not the one in the pairing code: its key differs from the code's "
            "(another device, or someone in between); nothing was stored",
            op->attempt_address);
      return;
    }
  if (!pm_pair_hello_parse (payload, payload_len, &op->host, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "The host sent a bad hello: %s",
            error->message);
      return;
    }
  if (!pm_paired_store_check_new (self->store, op->host.name, key, &error))
    {
      fail (self, CLOSE_CONFLICT,
            g_error_matches (error, PM_PAIRED_STORE_ERROR, PM_PAIRED_STORE_ERROR_CONFLICT)
              ? PM_PAIR_ERROR_CONFLICT
              : PM_PAIR_ERROR_STORE,
            "%s", error->message);
      return;
    }
  if (!pm_pair_hello_init (&mine, self->name, self->device_type, self->mesh_port, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  hello_len = pm_pair_hello_write (&mine, hello, sizeof hello);
  if (hello_len == 0 ||
      !pm_handshake_state_write_message (op->hs, hello, hello_len, out, sizeof out, &out_len,
                                         &error) ||
      !pm_handshake_state_split (op->hs, &op->send, &op->recv, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "Could not finish the handshake: %s",
            error != NULL ? error->message : "bad hello");
      return;
    }
  op->verification = pm_verification_code (pm_handshake_state_get_handshake_hash (op->hs));
  g_clear_pointer (&op->hs, pm_handshake_state_free);
  soup_websocket_connection_send_binary (op->ws, out, out_len);
  op->state = CLIENT_WAIT_CONFIRM;
  arm_timeout (op, self->limits.verify_timeout_ms + self->limits.message_timeout_ms, self);
  g_signal_emit (self, signals[SIGNAL_VERIFY], 0, op->verification, op->host.name,
                 op->host.device_type);
}

static void
add_address (GPtrArray    *addresses,
             GInetAddress *ip,
             uint16_t      port)
{
  g_autoptr (GSocketAddress) a = g_inet_socket_address_new (ip, port);
  g_autofree char *text = pm_address_to_string (G_INET_SOCKET_ADDRESS (a));

  for (unsigned i = 0; i < addresses->len; i++)
    if (g_str_equal (addresses->pdata[i], text))
      return;
  if (addresses->len < PM_PAIRED_STORE_MAX_ADDRESSES)
    g_ptr_array_add (addresses, g_steal_pointer (&text));
}

static gboolean
store_host (PmPairClient *self,
            Op           *op,
            GError      **error)
{
  g_autoptr (PmPairedDevice) device = pm_paired_device_new ();
  g_autoptr (PmPairedDevice) previous = NULL;

  device->name = g_strdup (op->host.name);
  device->device_type = g_strdup (op->host.device_type);
  memcpy (device->public_key, op->code->static_public, PM_KEY_LEN);
  if (op->host.mesh_port != 0)
    {
      /* The address that answered first, then the code's others. */
      if (op->host_ip != NULL)
        add_address (device->addresses, op->host_ip, op->host.mesh_port);
      for (unsigned i = 0; i < op->code->addresses->len; i++)
        add_address (device->addresses,
                     g_inet_socket_address_get_address (op->code->addresses->pdata[i]),
                     op->host.mesh_port);
    }
  if (self->allowed_services == NULL || self->allowed_services[0] == NULL)
    g_ptr_array_add (device->allowed_services, g_strdup (PM_PAIRED_ALL_SERVICES));
  else
    for (char **s = self->allowed_services; *s != NULL; s++)
      g_ptr_array_add (device->allowed_services, g_strdup (*s));
  device->paired_at = g_get_real_time () / G_USEC_PER_SEC;

  previous = pm_paired_store_lookup_key (self->store, device->public_key, NULL);
  if (!pm_paired_store_add (self->store, device, error))
    return FALSE;
  op->stored_new = previous == NULL;
  op->stored = g_steal_pointer (&device);
  return TRUE;
}

static void
handle_confirm (PmPairClient  *self,
                Op            *op,
                const uint8_t *data,
                size_t         len)
{
  g_autoptr (GError) error = NULL;
  uint8_t       plain[PM_PAIR_MAX_MESSAGE];
  uint8_t       sealed[PM_PAIR_CONFIRM_MAX_LEN + PM_NOISE_TAGLEN];
  size_t        stored_len;
  PmPairConfirm confirm;

  if (len < PM_NOISE_TAGLEN ||
      !pm_cipher_state_decrypt_with_ad (op->recv, NULL, 0, data, len, plain, &error) ||
      !pm_pair_confirm_parse (plain, len - PM_NOISE_TAGLEN, &confirm, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "A bad confirmation from the host: %s",
            error != NULL ? error->message : "too short");
      return;
    }
  switch (confirm.kind)
    {
    case PM_PAIR_CONFIRM_REJECT:
      if (confirm.reason[0] != '\0')
        fail (self, 0, PM_PAIR_ERROR_REJECTED, "“%s” refused the pairing: %s; nothing was stored",
              op->host.name, confirm.reason);
      else
        fail (self, 0, PM_PAIR_ERROR_REJECTED, "“%s” refused the pairing; nothing was stored",
              op->host.name);
      return;

    case PM_PAIR_CONFIRM_ACCEPT:
      if (!store_host (self, op, &error))
        {
          fail (self, CLOSE_STORE, PM_PAIR_ERROR_STORE, "Could not store “%s”: %s", op->host.name,
                error->message);
          return;
        }
      plain[0] = 0;
      stored_len = pm_pair_confirm_write (PM_PAIR_CONFIRM_STORED, NULL, plain, sizeof plain);
      if (stored_len == 0 ||
          !pm_cipher_state_encrypt_with_ad (op->send, NULL, 0, plain, stored_len, sealed, &error))
        {
          fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "Could not confirm: %s",
                error != NULL ? error->message : "");
          return;
        }
      soup_websocket_connection_send_binary (op->ws, sealed, stored_len + PM_NOISE_TAGLEN);
      op->state = CLIENT_WAIT_CLOSE;
      arm_timeout (op, self->limits.message_timeout_ms, self);
      return;

    default:
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL,
            "The host sent an unexpected confirmation");
      return;
    }
}

static void
on_ws_message (SoupWebsocketConnection *ws,
               int                      type,
               GBytes                  *message,
               gpointer                 user_data)
{
  PmPairClient  *self = user_data;
  Op            *op = op_of (self);
  size_t         len = 0;
  const uint8_t *data = g_bytes_get_data (message, &len);

  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      fail (self, SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA, PM_PAIR_ERROR_PROTOCOL,
            "The host sent a text message");
      return;
    }
  switch (op->state)
    {
    case CLIENT_READ_MSG2:
      handle_msg2 (self, op, data, len);
      break;
    case CLIENT_WAIT_CONFIRM:
      handle_confirm (self, op, data, len);
      break;
    default:
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "The host sent a message out of turn");
      break;
    }
}

static void
on_ws_closed (SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  PmPairClient *self = user_data;
  Op           *op = op_of (self);
  const char   *reason = soup_websocket_connection_get_close_data (ws);
  gushort       code = soup_websocket_connection_get_close_code (ws);
  gboolean      has_reason;

  has_reason = reason != NULL && *reason != '\0' && g_utf8_validate (reason, -1, NULL);

  if (op->state == CLIENT_WAIT_CLOSE && code == SOUP_WEBSOCKET_CLOSE_NORMAL)
    {
      g_debug ("Paired with “%s”", op->stored->name);
      finish (self, pm_paired_device_copy (op->stored), NULL, 0);
      return;
    }
  if (op->state == CLIENT_WAIT_CLOSE)
    fail (self, 0, PM_PAIR_ERROR_STORE,
          "“%s” could not finish the pairing (%u%s%s); nothing was stored", op->host.name, code,
          has_reason ? ": " : "", has_reason ? reason : "");
  else
    fail (self, 0, PM_PAIR_ERROR_CLOSED, "%s ended the pairing (%u%s%s); nothing was stored",
          op->code->name, code, has_reason ? ": " : "", has_reason ? reason : "");
}

static void
on_ws_error (SoupWebsocketConnection *ws,
             GError                  *error,
             gpointer                 user_data)
{
  g_debug ("Pairing WebSocket: %s", error->message);
}

/* --- connecting ------------------------------------------------------------------ */

/* Accepts the host's certificate only when its key is the one the code pins.
 * The session has no certificate database, so this runs for every
 * certificate, one a CA would vouch for included. */
static gboolean
on_accept_certificate (SoupMessage         *msg,
                       GTlsCertificate     *certificate,
                       GTlsCertificateFlags errors,
                       gpointer             user_data)
{
  PmPairClient *self = user_data;
  Op           *op = op_of (self);
  uint8_t       spki[PM_PAIR_SPKI_SHA256_LEN];
  g_autoptr (GError) error = NULL;

  if (op == NULL)
    return FALSE;
  if (!pm_pair_cert_get_spki_sha256 (certificate, spki, &error))
    {
      g_debug ("Pairing: unreadable certificate from %s: %s", op->attempt_address, error->message);
      op->cert_mismatch = TRUE;
      return FALSE;
    }
  if (sodium_memcmp (spki, op->code->cert_spki_sha256, PM_PAIR_SPKI_SHA256_LEN) != 0)
    {
      op->cert_mismatch = TRUE;
      return FALSE;
    }
  return TRUE;
}

static gboolean
on_attempt_timeout (gpointer user_data)
{
  PmPairClient *self = user_data;
  Op           *op = op_of (self);

  if (op == NULL)
    return G_SOURCE_REMOVE;
  op->attempt_timer = 0;
  op->attempt_timed_out = TRUE;
  g_cancellable_cancel (op->attempt);
  return G_SOURCE_REMOVE;
}

static void
note_unreachable (Op         *op,
                  const char *reason)
{
  if (op->unreachable->len > 0)
    g_string_append (op->unreachable, "; ");
  g_string_append_printf (op->unreachable, "%s: %s", op->attempt_address, reason);
}

static void
keep_error (Op     *op,
            GError *error)
{
  if (op->best_error == NULL)
    op->best_error = error;
  else
    g_error_free (error);
}

static void
start_handshake (PmPairClient *self,
                 Op           *op)
{
  g_autoptr (GError) error = NULL;
  uint8_t   prologue[sizeof PM_PAIR_PROLOGUE - 1 + PM_PAIR_CODE_TOKEN_LEN];
  uint8_t   out[PM_PAIR_MAX_MESSAGE];
  size_t    out_len = 0;
  PmKeypair keypair;

  op->hs = pm_handshake_state_new (PM_PAIR_PROTOCOL, PM_ROLE_INITIATOR, &error);
  if (op->hs == NULL)
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  memcpy (prologue, PM_PAIR_PROLOGUE, sizeof PM_PAIR_PROLOGUE - 1);
  memcpy (prologue + sizeof PM_PAIR_PROLOGUE - 1, op->code->token, PM_PAIR_CODE_TOKEN_LEN);
  pm_handshake_state_set_prologue (op->hs, prologue, sizeof prologue);
  sodium_memzero (prologue, sizeof prologue);
  pm_identity_get_keypair (self->identity, &keypair);
  pm_handshake_state_set_local_static (op->hs, &keypair);
  pm_keypair_clear (&keypair);
  if (!pm_handshake_state_start (op->hs, &error) ||
      !pm_handshake_state_write_message (op->hs, NULL, 0, out, sizeof out, &out_len, &error))
    {
      fail (self, CLOSE_PROTOCOL, PM_PAIR_ERROR_PROTOCOL, "%s", error->message);
      return;
    }
  soup_websocket_connection_send_binary (op->ws, out, out_len);
  op->state = CLIENT_READ_MSG2;
  arm_timeout (op, self->limits.message_timeout_ms, self);
}

static void
on_ws_connected (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (PmPairClient) self = user_data;
  g_autoptr (GError) error = NULL;
  Op         *op = op_of (self);
  unsigned    status;
  const char *refusal;

  g_autoptr (SoupWebsocketConnection) ws = NULL;

  ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &error);
  if (op == NULL || op->finished)
    {
      /* Cancelled meanwhile: finish() already answered; drop what came. */
      if (ws != NULL)
        soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
      return;
    }
  g_clear_handle_id (&op->attempt_timer, g_source_remove);
  op->ws = g_steal_pointer (&ws);
  if (op->ws != NULL)
    {
      GInetSocketAddress *address = op->code->addresses->pdata[op->next_address - 1];

      op->host_ip = g_object_ref (g_inet_socket_address_get_address (address));
      soup_websocket_connection_set_max_incoming_payload_size (op->ws, PM_PAIR_MAX_MESSAGE);
      soup_websocket_connection_set_keepalive_interval (op->ws, 0);
      g_signal_connect (op->ws, "message", G_CALLBACK (on_ws_message), self);
      g_signal_connect (op->ws, "closed", G_CALLBACK (on_ws_closed), self);
      g_signal_connect (op->ws, "error", G_CALLBACK (on_ws_error), self);
      g_debug ("Pairing: connected to %s", op->attempt_address);
      start_handshake (self, op);
      return;
    }

  if (op->cert_mismatch)
    {
      keep_error (
        op,
        g_error_new (PM_PAIR_ERROR, PM_PAIR_ERROR_WRONG_CERTIFICATE,
                     "The device at %s presented a TLS certificate other than the one the pairing "
                     "code pins (another device, or someone in between); the token was not sent",
                     op->attempt_address));
      note_unreachable (op, "wrong certificate");
      try_next_address (self);
      return;
    }
  status = soup_message_get_status (op->msg);
  refusal = soup_message_headers_get_one (soup_message_get_response_headers (op->msg),
                                          PM_PAIR_ERROR_HEADER);
  if (status == SOUP_STATUS_UNAUTHORIZED)
    {
      fail (
        self, 0, PM_PAIR_ERROR_TOKEN_INVALID,
        "%s does not accept this pairing code's token (a stale code?); show a new code on the host",
        op->code->name);
      return;
    }
  if (status == SOUP_STATUS_GONE && g_strcmp0 (refusal, "token_expired") == 0)
    {
      fail (self, 0, PM_PAIR_ERROR_TOKEN_EXPIRED,
            "This pairing code expired; show a new code on %s", op->code->name);
      return;
    }
  if (status == SOUP_STATUS_GONE && g_strcmp0 (refusal, "token_retired") == 0)
    {
      fail (
        self, 0, PM_PAIR_ERROR_TOKEN_INVALID,
        "%s withdrew this pairing code (stopped, or too many wrong tokens); show a new code there",
        op->code->name);
      return;
    }
  if (status == SOUP_STATUS_GONE)
    {
      fail (self, 0, PM_PAIR_ERROR_TOKEN_USED,
            "This pairing code was already used (a code pairs once); show a new code on %s",
            op->code->name);
      return;
    }
  if (status >= 100)
    {
      g_autofree char *reason = g_strdup_printf ("answered HTTP %u, not a pairing", status);
      keep_error (op, g_error_new (PM_PAIR_ERROR, PM_PAIR_ERROR_PROTOCOL,
                                   "The device at %s is not a PiperMesh pairing host (HTTP %u)",
                                   op->attempt_address, status));
      note_unreachable (op, reason);
      try_next_address (self);
      return;
    }
  if (op->attempt_timed_out)
    note_unreachable (op, "timed out");
  else
    note_unreachable (op, error->message);
  try_next_address (self);
}

static void
try_next_address (PmPairClient *self)
{
  Op                 *op = g_task_get_task_data (self->task);
  g_autofree char    *url = NULL;
  g_autofree char    *authorization = NULL;
  char                b64[sodium_base64_ENCODED_LEN (PM_PAIR_CODE_TOKEN_LEN,
                                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  GInetSocketAddress *address;

  g_clear_object (&op->msg);
  g_clear_object (&op->attempt);
  g_clear_pointer (&op->attempt_address, g_free);
  op->cert_mismatch = FALSE;
  op->attempt_timed_out = FALSE;

  if (op->next_address >= op->code->addresses->len)
    {
      if (op->best_error != NULL)
        finish (self, NULL, g_steal_pointer (&op->best_error), 0);
      else
        fail (self, 0, PM_PAIR_ERROR_NO_ROUTE,
              "Could not reach %s (%s); is it on this network and still showing the "
              "code?",
              op->code->name, op->unreachable->str);
      return;
    }
  address = op->code->addresses->pdata[op->next_address++];
  op->attempt_address = pm_address_to_string (address);
  url = g_strdup_printf ("https://%s%s", op->attempt_address, PM_PAIR_PATH);
  op->msg = soup_message_new (SOUP_METHOD_GET, url);
  if (op->msg == NULL)
    {
      note_unreachable (op, "not a URL");
      try_next_address (self);
      return;
    }
  sodium_bin2base64 (b64, sizeof b64, op->code->token, PM_PAIR_CODE_TOKEN_LEN,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  authorization = g_strconcat ("Bearer ", b64, NULL);
  sodium_memzero (b64, sizeof b64);
  soup_message_headers_replace (soup_message_get_request_headers (op->msg), "Authorization",
                                authorization);
  sodium_memzero (authorization, strlen (authorization));
  /* The token goes to the pinned host or nowhere: never after a redirect. */
  soup_message_add_flags (op->msg, SOUP_MESSAGE_NO_REDIRECT);
  g_signal_connect (op->msg, "accept-certificate", G_CALLBACK (on_accept_certificate), self);

  op->attempt = g_cancellable_new ();
  op->attempt_timer = g_timeout_add (self->limits.connect_timeout_ms, on_attempt_timeout, self);
  g_debug ("Pairing: trying %s", op->attempt_address);
  soup_session_websocket_connect_async (op->session, op->msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                        op->attempt, on_ws_connected, g_object_ref (self));
}

static gboolean
on_cancelled_idle (gpointer user_data)
{
  PmPairClient *self = user_data;
  Op           *op = op_of (self);

  if (op != NULL && !op->finished)
    {
      if (op->attempt != NULL)
        g_cancellable_cancel (op->attempt);
      finish (self, NULL,
              g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "The pairing was cancelled"),
              SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
    }
  return G_SOURCE_REMOVE;
}

/* Runs where the cancellable was cancelled (and at once if it already was):
 * the pairing ends from an idle callback, never inside another call. */
static void
on_cancelled (GCancellable *cancellable,
              gpointer      user_data)
{
  g_idle_add_full (G_PRIORITY_HIGH, on_cancelled_idle, g_object_ref (user_data), g_object_unref);
}

/**
 * pm_pair_client_pair_async:
 * @code: a code from pm_pair_code_parse() (copied)
 *
 * Pairs with the host of @code. Emits "verify" once both sides can show the
 * verification code; resolves when the host's user has accepted and both
 * sides have stored each other, or with a #PM_PAIR_ERROR (nothing stored).
 */
void
pm_pair_client_pair_async (PmPairClient       *self,
                           const PmPairCode   *code,
                           GCancellable       *cancellable,
                           GAsyncReadyCallback callback,
                           gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  Op *op;

  g_return_if_fail (PM_IS_PAIR_CLIENT (self));
  g_return_if_fail (code != NULL);
  g_return_if_fail (self->task == NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_pair_client_pair_async);
  if (pm_pair_code_is_expired (code, g_get_real_time () / G_USEC_PER_SEC))
    {
      g_autoptr (GDateTime) when = g_date_time_new_from_unix_local (code->expires);
      g_autofree char *text = when != NULL ? g_date_time_format (when, "%H:%M:%S") : g_strdup ("?");

      g_task_return_new_error (task, PM_PAIR_ERROR, PM_PAIR_ERROR_TOKEN_EXPIRED,
                               "This pairing code expired at %s; show a new code on %s", text,
                               code->name);
      return;
    }
  if (sodium_memcmp (code->static_public, pm_identity_get_public_key (self->identity),
                     PM_KEY_LEN) == 0)
    {
      g_task_return_new_error (task, PM_PAIR_ERROR, PM_PAIR_ERROR_PROTOCOL,
                               "This is this device's own pairing code; scan it on another device");
      return;
    }

  op = g_new0 (Op, 1);
  op->code = pm_pair_code_copy (code);
  op->unreachable = g_string_new (NULL);
  /* No certificate database: every certificate goes to accept-certificate,
   * which pins. No proxy: the host is on this network. */
  op->session =
    soup_session_new_with_options ("tls-database", NULL, "proxy-resolver", NULL, "timeout",
                                   (unsigned) (self->limits.message_timeout_ms / 1000 + 1), NULL);
  soup_session_remove_feature_by_type (op->session, SOUP_TYPE_WEBSOCKET_EXTENSION_MANAGER);
  g_task_set_task_data (task, op, (GDestroyNotify) op_free);
  self->task = g_steal_pointer (&task);
  if (cancellable != NULL)
    op->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), self, NULL);
  try_next_address (self);
}

PmPairedDevice *
pm_pair_client_pair_finish (PmPairClient *self,
                            GAsyncResult *result,
                            GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* --- object --------------------------------------------------------------------- */

static void
pm_pair_client_finalize (GObject *object)
{
  PmPairClient *self = PM_PAIR_CLIENT (object);

  g_assert (self->task == NULL);
  g_clear_object (&self->identity);
  g_clear_object (&self->store);
  g_free (self->name);
  g_free (self->device_type);
  g_strfreev (self->allowed_services);
  G_OBJECT_CLASS (pm_pair_client_parent_class)->finalize (object);
}

static void
pm_pair_client_class_init (PmPairClientClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = pm_pair_client_finalize;

  /**
   * PmPairClient::verify:
   * @code: the verification code both screens show
   * @host_name: the host's name, as it said in the handshake
   * @host_type: its device type
   */
  signals[SIGNAL_VERIFY] =
    g_signal_new ("verify", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
}

static void
pm_pair_client_init (PmPairClient *self)
{
  self->mesh_port = PM_MESH_LAN_PORT;
  pm_pair_limits_default (&self->limits);
}

/**
 * pm_pair_client_new:
 * @store: where the host is stored on success
 * @name: this device's name, sent to the host
 * @device_type: "linux", "mac", …
 * @limits: (nullable): timers; NULL for the defaults
 */
PmPairClient *
pm_pair_client_new (PmIdentity         *identity,
                    PmPairedStore      *store,
                    const char         *name,
                    const char         *device_type,
                    const PmPairLimits *limits)
{
  PmPairClient *self;

  g_return_val_if_fail (PM_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (PM_IS_PAIRED_STORE (store), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (pm_pair_device_type_is_valid (device_type), NULL);

  self = g_object_new (PM_TYPE_PAIR_CLIENT, NULL);
  self->identity = g_object_ref (identity);
  self->store = g_object_ref (store);
  self->name = g_strdup (name);
  self->device_type = g_strdup (device_type);
  if (limits != NULL)
    self->limits = *limits;
  return self;
}

void
pm_pair_client_set_mesh_port (PmPairClient *self,
                              uint16_t      port)
{
  g_return_if_fail (PM_IS_PAIR_CLIENT (self));
  self->mesh_port = port;
}

void
pm_pair_client_set_allowed_services (PmPairClient      *self,
                                     const char *const *services)
{
  g_return_if_fail (PM_IS_PAIR_CLIENT (self));
  g_strfreev (self->allowed_services);
  self->allowed_services = g_strdupv ((char **) services);
}
