/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-relay"

#include "pm-relay.h"

#include "pm-relay-stream.h"

#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/*
 * A session is one unordered pair of devices {a, b} (device ids are unique
 * server-wide) and holds at most one connection per side. Its account is the
 * account of the side that opened it; a side of another account is refused.
 * With one side it is waiting (wait timer running, the side's reading paused
 * so nothing piles up); with two it is active (idle timer running).
 *
 * Backpressure: every connection runs over PmRelayInputStream and
 * PmRelayOutputStream (pm-relay-stream.h). When the payload queued towards a
 * connection but not yet written to its socket passes queue_high_water, the
 * relay pauses reading from the other side; it resumes at half of that. The
 * per-account token bucket pauses reading the same way until the bucket has
 * refilled. Nothing is ever dropped for speed, and the memory of a session is
 * bounded by about two high-water queues plus libsoup's read buffers.
 */

typedef struct _Session Session;
typedef struct _Account Account;

typedef struct {
  PmRelay                 *relay;   /* not owned */
  Session                 *session; /* NULL once detached */
  SoupWebsocketConnection *ws;
  PmRelayInputStream      *input;
  PmRelayOutputStream     *output;
  char                    *device_id;
  char                    *account_id;
  uint64_t                 queued;       /* payload bytes handed to ws to send */
  gboolean                 paused_queue; /* the peer's queue is full */
  gboolean                 paused_rate;  /* the account's bucket is empty */
  guint                    rate_source;
  guint                    dead_source;
  guint                    too_big_source;
  int64_t                  attached_us;
} Conn;

struct _Session {
  PmRelay *relay; /* not owned */
  char    *key;
  char    *device[2];
  Conn    *side[2];
  Account *account;
  guint    wait_source;
  guint    idle_source;
  int64_t  last_data_us;
  gboolean active; /* both sides connected */
};

struct _Account {
  char    *id;
  unsigned sessions;
  double   tokens;
  int64_t  refilled_us;
};

struct _PmRelay {
  GObject parent_instance;

  PmRelayLimits limits;
  GHashTable   *sessions; /* key → Session */
  GHashTable   *accounts; /* id → Account */
  GHashTable   *conns;    /* Conn set: every connection not yet closed */
  PmRelayStats  stats;
};

G_DEFINE_FINAL_TYPE (PmRelay, pm_relay, G_TYPE_OBJECT)

static const char *const reason_names[PM_RELAY_N_REASONS] = {
  [PM_RELAY_REASON_CROSS_ACCOUNT] = "cross-account",
  [PM_RELAY_REASON_SESSION_LIMIT] = "session-limit",
  [PM_RELAY_REASON_WAIT_TIMEOUT] = "wait-timeout",
  [PM_RELAY_REASON_REPLACED] = "replaced",
  [PM_RELAY_REASON_TOO_BIG] = "too-big",
  [PM_RELAY_REASON_TEXT] = "text-message",
  [PM_RELAY_REASON_IDLE] = "idle",
  [PM_RELAY_REASON_DEAD] = "dead",
  [PM_RELAY_REASON_REVOKED] = "revoked",
  [PM_RELAY_REASON_BAD_REQUEST] = "bad-request",
};

static const struct {
  unsigned short code;
  const char    *text;
} reason_close[PM_RELAY_N_REASONS] = {
  [PM_RELAY_REASON_CROSS_ACCOUNT] = { PM_RELAY_CLOSE_CROSS_ACCOUNT, "peer is not in this account" },
  [PM_RELAY_REASON_SESSION_LIMIT] = { PM_RELAY_CLOSE_SESSION_LIMIT, "too many relay sessions" },
  [PM_RELAY_REASON_WAIT_TIMEOUT] = { PM_RELAY_CLOSE_WAIT_TIMEOUT, "peer did not connect" },
  [PM_RELAY_REASON_REPLACED] = { PM_RELAY_CLOSE_REPLACED, "replaced by a newer connection" },
  [PM_RELAY_REASON_TOO_BIG] = { PM_RELAY_CLOSE_TOO_BIG, "message too big" },
  [PM_RELAY_REASON_TEXT] = { PM_RELAY_CLOSE_UNSUPPORTED_DATA, "only binary messages are relayed" },
  [PM_RELAY_REASON_IDLE] = { PM_RELAY_CLOSE_IDLE, "idle timeout" },
  [PM_RELAY_REASON_DEAD] = { PM_RELAY_CLOSE_DEAD, "no answer to pings" },
  [PM_RELAY_REASON_REVOKED] = { PM_RELAY_CLOSE_REVOKED, "device revoked" },
  [PM_RELAY_REASON_BAD_REQUEST] = { PM_RELAY_CLOSE_BAD_REQUEST, "device and peer are the same" },
};

const char *
pm_relay_reason_to_string (PmRelayReason reason)
{
  g_return_val_if_fail (reason < PM_RELAY_N_REASONS, NULL);

  return reason_names[reason];
}

void
pm_relay_limits_default (PmRelayLimits *limits)
{
  g_return_if_fail (limits != NULL);

  *limits = (PmRelayLimits){
    .max_message_size = PM_RELAY_MAX_MESSAGE_SIZE,
    .queue_high_water = PM_RELAY_QUEUE_HIGH_WATER,
    .account_bytes_per_s = PM_RELAY_ACCOUNT_BYTES_PER_S,
    .account_burst_bytes = PM_RELAY_ACCOUNT_BURST_BYTES,
    .max_sessions_per_account = PM_RELAY_MAX_SESSIONS_PER_ACCOUNT,
    .wait_timeout_us = PM_RELAY_WAIT_TIMEOUT_US,
    .idle_timeout_us = PM_RELAY_IDLE_TIMEOUT_US,
    .keepalive_interval_s = PM_RELAY_KEEPALIVE_INTERVAL_S,
    .dead_after_pings = PM_RELAY_DEAD_AFTER_PINGS,
  };
}

static unsigned
us_to_ms (int64_t us)
{
  return (unsigned) CLAMP ((us + 999) / 1000, 1, (int64_t) G_MAXUINT);
}

/* --- Accounts and sessions ------------------------------------------------- */

static void
account_free (Account *account)
{
  g_free (account->id);
  g_free (account);
}

static Account *
account_get (PmRelay    *self,
             const char *id)
{
  Account *account = g_hash_table_lookup (self->accounts, id);

  if (account == NULL)
    {
      account = g_new0 (Account, 1);
      account->id = g_strdup (id);
      account->tokens = (double) self->limits.account_burst_bytes;
      account->refilled_us = g_get_monotonic_time ();
      g_hash_table_insert (self->accounts, account->id, account);
    }
  return account;
}

static char *
session_key (const char *a,
             const char *b)
{
  /* '\n' cannot occur in a device id the API layer accepts; it only has to
   * keep ("a b", "c") apart from ("a", "b c"). */
  return strcmp (a, b) < 0 ? g_strconcat (a, "\n", b, NULL) : g_strconcat (b, "\n", a, NULL);
}

static int
session_side (Session    *session,
              const char *device_id)
{
  return strcmp (session->device[0], device_id) == 0 ? 0 : 1;
}

static void
session_free (Session *session)
{
  g_clear_handle_id (&session->wait_source, g_source_remove);
  g_clear_handle_id (&session->idle_source, g_source_remove);
  g_free (session->key);
  g_free (session->device[0]);
  g_free (session->device[1]);
  g_free (session);
}

static void
update_paused (Conn *conn)
{
  Session *session = conn->session;
  gboolean waiting = session != NULL && !session->active;

  /* A waiting side is not read: what it sends stays in its socket until the
   * peer arrives. A detached (closing) connection is read so that libsoup
   * sees the peer's close frame. */
  pm_relay_input_stream_set_paused (conn->input,
                                    waiting || conn->paused_queue || conn->paused_rate);
}

static void conn_close (Conn         *conn,
                        PmRelayReason reason);
static void session_wait (PmRelay *self,
                          Session *session);

static void
session_remove (PmRelay *self,
                Session *session)
{
  g_assert (session->side[0] == NULL && session->side[1] == NULL);
  g_assert (session->account->sessions > 0);
  session->account->sessions--;
  g_hash_table_remove (self->sessions, session->key); /* frees it */
}

/* Takes @conn out of its session. The other side, if any, waits again. */
static void
conn_detach (Conn *conn)
{
  PmRelay *self = conn->relay;
  Session *session = conn->session;
  int      side;

  if (session == NULL)
    return;
  side = session_side (session, conn->device_id);
  g_assert (session->side[side] == conn);
  session->side[side] = NULL;
  conn->session = NULL;
  g_clear_handle_id (&conn->rate_source, g_source_remove);
  conn->paused_rate = FALSE;
  conn->paused_queue = FALSE;
  update_paused (conn);

  if (session->side[!side] == NULL)
    {
      if (session->active)
        self->stats.sessions_active--;
      else
        self->stats.sessions_waiting--;
      session_remove (self, session);
      return;
    }
  /* The remaining side goes back to waiting for its peer to come back. */
  g_assert (session->active);
  session->active = FALSE;
  self->stats.sessions_active--;
  self->stats.sessions_waiting++;
  g_clear_handle_id (&session->idle_source, g_source_remove);
  session->side[!side]->paused_queue = FALSE;
  session_wait (self, session);
  update_paused (session->side[!side]);
}

static gboolean
on_wait_timeout (gpointer user_data)
{
  Session *session = user_data;
  Conn    *conn = session->side[0] != NULL ? session->side[0] : session->side[1];

  session->wait_source = 0;
  g_assert (conn != NULL);
  g_debug ("relay: %s waited in vain for its peer", conn->device_id);
  conn_close (conn, PM_RELAY_REASON_WAIT_TIMEOUT);
  return G_SOURCE_REMOVE;
}

static void
session_wait (PmRelay *self,
              Session *session)
{
  g_clear_handle_id (&session->wait_source, g_source_remove);
  session->wait_source = g_timeout_add (us_to_ms (self->limits.wait_timeout_us),
                                        on_wait_timeout, session);
}

static gboolean
on_idle_check (gpointer user_data)
{
  Session *session = user_data;
  PmRelay *self = session->relay;
  int64_t  quiet = g_get_monotonic_time () - session->last_data_us;

  session->idle_source = 0;
  if (quiet < self->limits.idle_timeout_us)
    {
      session->idle_source = g_timeout_add (us_to_ms (self->limits.idle_timeout_us - quiet),
                                            on_idle_check, session);
      return G_SOURCE_REMOVE;
    }
  g_debug ("relay: %s and %s idle, closing", session->device[0], session->device[1]);
  {
    Conn *b = session->side[1];

    conn_close (session->side[0], PM_RELAY_REASON_IDLE); /* b now waits */
    conn_close (b, PM_RELAY_REASON_IDLE);                /* frees session */
  }
  return G_SOURCE_REMOVE;
}

static void
session_activate (PmRelay *self,
                  Session *session)
{
  g_clear_handle_id (&session->wait_source, g_source_remove);
  session->active = TRUE;
  self->stats.sessions_waiting--;
  self->stats.sessions_active++;
  session->last_data_us = g_get_monotonic_time ();
  if (self->limits.idle_timeout_us > 0)
    session->idle_source = g_timeout_add (us_to_ms (self->limits.idle_timeout_us),
                                          on_idle_check, session);
  update_paused (session->side[0]);
  update_paused (session->side[1]);
  g_debug ("relay: paired %s and %s", session->device[0], session->device[1]);
}

/* --- Connections ----------------------------------------------------------- */

static void
conn_free (Conn *conn)
{
  g_clear_handle_id (&conn->rate_source, g_source_remove);
  g_clear_handle_id (&conn->dead_source, g_source_remove);
  g_clear_handle_id (&conn->too_big_source, g_source_remove);
  g_signal_handlers_disconnect_by_data (conn->ws, conn);
  pm_relay_input_stream_set_too_big_func (conn->input, NULL, NULL);
  pm_relay_output_stream_set_written_func (conn->output, NULL, NULL);
  g_clear_object (&conn->ws);
  g_clear_object (&conn->input);
  g_clear_object (&conn->output);
  g_free (conn->device_id);
  g_free (conn->account_id);
  g_free (conn);
}

static Conn *
conn_peer (Conn *conn)
{
  Session *session = conn->session;

  if (session == NULL)
    return NULL;
  return session->side[!session_side (session, conn->device_id)];
}

static void
conn_close (Conn         *conn,
            PmRelayReason reason)
{
  PmRelay *self = conn->relay;

  g_debug ("relay: closing %s: %s", conn->device_id, reason_names[reason]);
  self->stats.closed[reason]++;
  conn_detach (conn);
  g_clear_handle_id (&conn->dead_source, g_source_remove);
  if (soup_websocket_connection_get_state (conn->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (conn->ws, reason_close[reason].code,
                                     reason_close[reason].text);
}

/* Payload queued towards @conn and not yet on its socket. */
static uint64_t
conn_pending (Conn *conn)
{
  uint64_t written = pm_relay_output_stream_get_data_written (conn->output);

  return conn->queued > written ? conn->queued - written : 0;
}

static void
on_written (gpointer user_data)
{
  Conn *conn = user_data;
  Conn *sender = conn_peer (conn);

  if (sender != NULL && sender->paused_queue &&
      conn_pending (conn) <= conn->relay->limits.queue_high_water / 2)
    {
      sender->paused_queue = FALSE;
      update_paused (sender);
    }
}

static gboolean
on_rate_refilled (gpointer user_data)
{
  Conn *conn = user_data;

  conn->rate_source = 0;
  conn->paused_rate = FALSE;
  update_paused (conn);
  return G_SOURCE_REMOVE;
}

/* Takes @size bytes from @conn's account; pauses @conn while in debt. */
static void
conn_charge (Conn  *conn,
             size_t size)
{
  PmRelay *self = conn->relay;
  Account *account = conn->session->account;
  double   rate = (double) self->limits.account_bytes_per_s;
  int64_t  now;

  if (self->limits.account_bytes_per_s == 0)
    return;
  now = g_get_monotonic_time ();
  account->tokens += rate * (double) (now - account->refilled_us) / G_USEC_PER_SEC;
  account->tokens = MIN ((double) self->limits.account_burst_bytes, account->tokens);
  account->refilled_us = now;
  account->tokens -= (double) size;
  if (account->tokens < 0 && !conn->paused_rate)
    {
      int64_t wait_us = (int64_t) (-account->tokens / rate * G_USEC_PER_SEC);

      conn->paused_rate = TRUE;
      self->stats.rate_pauses++;
      conn->rate_source = g_timeout_add (us_to_ms (wait_us), on_rate_refilled, conn);
      update_paused (conn);
    }
}

static void
on_message (SoupWebsocketConnection *ws,
            int                      type,
            GBytes                  *message,
            gpointer                 user_data)
{
  Conn    *conn = user_data;
  PmRelay *self = conn->relay;
  Conn    *peer;
  size_t   size = g_bytes_get_size (message);

  if (conn->session == NULL)
    return; /* closing */
  if (type != SOUP_WEBSOCKET_DATA_BINARY)
    {
      conn_close (conn, PM_RELAY_REASON_TEXT);
      return;
    }
  peer = conn_peer (conn);
  if (peer == NULL)
    {
      self->stats.bytes_dropped += size;
      return;
    }
  conn->session->last_data_us = g_get_monotonic_time ();
  /* The GBytes goes out as it came in: same bytes, no copy here. */
  soup_websocket_connection_send_message (peer->ws, SOUP_WEBSOCKET_DATA_BINARY, message);
  peer->queued += size;
  self->stats.bytes_relayed += size;
  self->stats.messages_relayed++;

  peer = conn_peer (conn);
  if (peer == NULL)
    return; /* the send failed and closed things */
  if (!conn->paused_queue && conn_pending (peer) > self->limits.queue_high_water)
    {
      conn->paused_queue = TRUE;
      self->stats.backpressure_pauses++;
      update_paused (conn);
    }
  conn_charge (conn, size);
}

static gboolean
on_too_big_idle (gpointer user_data)
{
  Conn *conn = user_data;

  conn->too_big_source = 0;
  conn_close (conn, PM_RELAY_REASON_TOO_BIG);
  return G_SOURCE_REMOVE;
}

static void
on_too_big (gpointer user_data)
{
  Conn *conn = user_data;

  /* Inside libsoup's read: close from the main loop, not from here. */
  if (conn->too_big_source == 0)
    conn->too_big_source = g_idle_add (on_too_big_idle, conn);
}

static gboolean
on_dead_check (gpointer user_data)
{
  Conn    *conn = user_data;
  PmRelay *self = conn->relay;
  int64_t  last = MAX (pm_relay_input_stream_get_last_read (conn->input), conn->attached_us);
  int64_t  silent = g_get_monotonic_time () - last;
  int64_t  limit = (int64_t) self->limits.keepalive_interval_s * self->limits.dead_after_pings *
                  G_USEC_PER_SEC;

  /* A paused connection is not read, so its silence means nothing. */
  if (pm_relay_input_stream_get_paused (conn->input) || silent < limit)
    return G_SOURCE_CONTINUE;
  conn->dead_source = 0;
  conn_close (conn, PM_RELAY_REASON_DEAD);
  return G_SOURCE_REMOVE;
}

/* The client started closing: it will not read what we would send it, so
 * take it out of its session now rather than when the socket is gone. */
static void
on_closing (SoupWebsocketConnection *ws,
            gpointer                 user_data)
{
  conn_detach (user_data);
}

static void
on_closed (SoupWebsocketConnection *ws,
           gpointer                 user_data)
{
  Conn    *conn = user_data;
  PmRelay *self = conn->relay;

  g_debug ("relay: %s disconnected (code %u)", conn->device_id,
           soup_websocket_connection_get_close_code (ws));
  conn_detach (conn);
  g_hash_table_remove (self->conns, conn); /* frees it */
}

static void
attach (PmRelay                 *self,
        SoupWebsocketConnection *ws,
        PmRelayInputStream      *input,
        PmRelayOutputStream     *output,
        const char              *account_id,
        const char              *device_id,
        const char              *peer_id)
{
  Conn            *conn = g_new0 (Conn, 1);
  g_autofree char *key = NULL;
  Session         *session;
  int              side;

  conn->relay = self;
  conn->ws = g_object_ref (ws);
  conn->input = g_object_ref (input);
  conn->output = g_object_ref (output);
  conn->device_id = g_strdup (device_id);
  conn->account_id = g_strdup (account_id);
  conn->attached_us = g_get_monotonic_time ();
  g_hash_table_add (self->conns, conn);

  /* Second guard behind the input stream's own check, which closes with a
   * proper 1009 before libsoup ever sees an oversized header. */
  soup_websocket_connection_set_max_incoming_payload_size (ws, self->limits.max_message_size + 1);
  soup_websocket_connection_set_keepalive_interval (ws, self->limits.keepalive_interval_s);
  g_signal_connect (ws, "message", G_CALLBACK (on_message), conn);
  g_signal_connect (ws, "closing", G_CALLBACK (on_closing), conn);
  g_signal_connect (ws, "closed", G_CALLBACK (on_closed), conn);
  pm_relay_input_stream_set_too_big_func (input, on_too_big, conn);
  pm_relay_output_stream_set_written_func (output, on_written, conn);
  if (self->limits.keepalive_interval_s > 0 && self->limits.dead_after_pings > 0)
    conn->dead_source = g_timeout_add_seconds (self->limits.keepalive_interval_s,
                                               on_dead_check, conn);

  if (strcmp (device_id, peer_id) == 0)
    {
      conn_close (conn, PM_RELAY_REASON_BAD_REQUEST);
      return;
    }

  key = session_key (device_id, peer_id);
  session = g_hash_table_lookup (self->sessions, key);
  if (session != NULL)
    {
      if (strcmp (session->account->id, account_id) != 0)
        {
          /* The API layer should never let this happen; refuse anyway. */
          g_message ("relay: refused %s: its peer %s is in another account", device_id, peer_id);
          conn_close (conn, PM_RELAY_REASON_CROSS_ACCOUNT);
          return;
        }
      side = session_side (session, device_id);
      if (session->side[side] != NULL)
        {
          g_debug ("relay: %s reconnected for %s; last connection wins", device_id, peer_id);
          conn_close (session->side[side], PM_RELAY_REASON_REPLACED);
          /* If that emptied the session, it is gone now. */
          session = g_hash_table_lookup (self->sessions, key);
        }
    }
  if (session == NULL)
    {
      Account *account = account_get (self, account_id);

      if (self->limits.max_sessions_per_account > 0 &&
          account->sessions >= self->limits.max_sessions_per_account)
        {
          g_message ("relay: refused %s: account has %u relay sessions",
                     device_id, account->sessions);
          conn_close (conn, PM_RELAY_REASON_SESSION_LIMIT);
          return;
        }
      session = g_new0 (Session, 1);
      session->relay = self;
      session->key = g_steal_pointer (&key);
      session->device[0] = g_strdup (strcmp (device_id, peer_id) < 0 ? device_id : peer_id);
      session->device[1] = g_strdup (strcmp (device_id, peer_id) < 0 ? peer_id : device_id);
      session->account = account;
      account->sessions++;
      g_hash_table_insert (self->sessions, session->key, session);
      self->stats.sessions_waiting++;
      session_wait (self, session);
    }
  side = session_side (session, device_id);
  g_assert (session->side[side] == NULL);
  session->side[side] = conn;
  conn->session = session;
  if (session->side[!side] != NULL && !session->active)
    session_activate (self, session);
  else
    update_paused (conn);
  g_debug ("relay: %s attached for %s", device_id, peer_id);
}

/* --- Upgrade --------------------------------------------------------------- */

typedef struct {
  PmRelay *relay;
  char    *account_id;
  char    *device_id;
  char    *peer_id;
} Upgrade;

static void
upgrade_free (gpointer  data,
              GClosure *closure)
{
  Upgrade *upgrade = data;

  g_object_unref (upgrade->relay);
  g_free (upgrade->account_id);
  g_free (upgrade->device_id);
  g_free (upgrade->peer_id);
  g_free (upgrade);
}

static void
on_wrote_informational (SoupServerMessage *msg,
                        gpointer           user_data)
{
  Upgrade *upgrade = user_data;
  g_autoptr (GIOStream) base = NULL;
  g_autoptr (PmRelayInputStream) input = NULL;
  g_autoptr (PmRelayOutputStream) output = NULL;
  g_autoptr (GIOStream) stream = NULL;
  g_autoptr (SoupWebsocketConnection) ws = NULL;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  if (soup_server_message_get_status (msg) != SOUP_STATUS_SWITCHING_PROTOCOLS)
    return;
  base = soup_server_message_steal_connection (msg);
  input = pm_relay_input_stream_new (g_io_stream_get_input_stream (base),
                                     upgrade->relay->limits.max_message_size);
  output = pm_relay_output_stream_new (base);
  stream = g_simple_io_stream_new (G_INPUT_STREAM (input), G_OUTPUT_STREAM (output));
  ws = soup_websocket_connection_new (stream, soup_server_message_get_uri (msg),
                                      SOUP_WEBSOCKET_CONNECTION_SERVER,
                                      soup_message_headers_get_one (headers, "Origin"),
                                      NULL, NULL);
  attach (upgrade->relay, ws, input, output,
          upgrade->account_id, upgrade->device_id, upgrade->peer_id);
}

/**
 * pm_relay_accept:
 * @relay: a #PmRelay
 * @msg: a GET request for the relay stream, from a plain SoupServer handler
 * @account_id: the authenticated device's account
 * @device_id: the authenticated device
 * @peer_id: the device it wants to reach, already checked to be a live device
 *   of @account_id
 *
 * Answers @msg with the WebSocket handshake (no extensions: compressing
 * ciphertext only costs memory) and, once the 101 response is written, takes
 * the connection over and attaches it to the relay. If @msg is not a valid
 * WebSocket request, sets an error status on it and returns %FALSE.
 *
 * The relay runs the WebSocket over its own stream wrappers, which is why it
 * performs the upgrade itself instead of taking a connection from
 * soup_server_add_websocket_handler(): libsoup 3.2 offers no other way to
 * pause reading or to see its send queue.
 */
gboolean
pm_relay_accept (PmRelay           *relay,
                 SoupServerMessage *msg,
                 const char        *account_id,
                 const char        *device_id,
                 const char        *peer_id)
{
  Upgrade *upgrade;

  g_return_val_if_fail (PM_IS_RELAY (relay), FALSE);
  g_return_val_if_fail (SOUP_IS_SERVER_MESSAGE (msg), FALSE);
  g_return_val_if_fail (account_id != NULL && device_id != NULL && peer_id != NULL, FALSE);

  if (!soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL))
    return FALSE;
  upgrade = g_new0 (Upgrade, 1);
  upgrade->relay = g_object_ref (relay);
  upgrade->account_id = g_strdup (account_id);
  upgrade->device_id = g_strdup (device_id);
  upgrade->peer_id = g_strdup (peer_id);
  g_signal_connect_data (msg, "wrote-informational", G_CALLBACK (on_wrote_informational),
                         upgrade, upgrade_free, 0);
  return TRUE;
}

/**
 * pm_relay_close_device:
 * Closes every relay connection of @device_id and of its peers in those
 * sessions (close code 4410), e.g. when the device is revoked.
 */
void
pm_relay_close_device (PmRelay    *relay,
                       const char *device_id)
{
  GHashTableIter iter;
  Session       *session;
  g_autoptr (GPtrArray) victims = g_ptr_array_new ();

  g_return_if_fail (PM_IS_RELAY (relay));
  g_return_if_fail (device_id != NULL);

  g_hash_table_iter_init (&iter, relay->sessions);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &session))
    if (strcmp (session->device[0], device_id) == 0 || strcmp (session->device[1], device_id) == 0)
      for (int i = 0; i < 2; i++)
        if (session->side[i] != NULL)
          g_ptr_array_add (victims, session->side[i]);
  for (unsigned i = 0; i < victims->len; i++)
    conn_close (victims->pdata[i], PM_RELAY_REASON_REVOKED);
}

void
pm_relay_get_stats (PmRelay      *relay,
                    PmRelayStats *stats)
{
  g_return_if_fail (PM_IS_RELAY (relay));
  g_return_if_fail (stats != NULL);

  *stats = relay->stats;
  stats->connections = g_hash_table_size (relay->conns);
}

PmRelay *
pm_relay_new (const PmRelayLimits *limits)
{
  PmRelay *self = g_object_new (PM_TYPE_RELAY, NULL);

  if (limits != NULL)
    {
      g_return_val_if_fail (limits->max_message_size > 0, self);
      g_return_val_if_fail (limits->queue_high_water >= limits->max_message_size, self);
      g_return_val_if_fail (limits->wait_timeout_us > 0, self);
      self->limits = *limits;
      if (self->limits.account_burst_bytes < self->limits.max_message_size)
        self->limits.account_burst_bytes = self->limits.max_message_size;
    }
  return self;
}

static void
pm_relay_dispose (GObject *object)
{
  PmRelay *self = PM_RELAY (object);

  /* Close what is still open; the connections free themselves on "closed". */
  if (self->conns != NULL)
    {
      GHashTableIter iter;
      Conn          *conn;
      g_autoptr (GPtrArray) all = g_ptr_array_new ();

      g_hash_table_iter_init (&iter, self->conns);
      while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
        g_ptr_array_add (all, conn);
      for (unsigned i = 0; i < all->len; i++)
        {
          conn = all->pdata[i];
          conn_detach (conn);
          if (soup_websocket_connection_get_state (conn->ws) == SOUP_WEBSOCKET_STATE_OPEN)
            soup_websocket_connection_close (conn->ws, PM_RELAY_CLOSE_SHUTDOWN,
                                             "relay shutting down");
        }
      /* Nobody is left to receive their "closed": free them now. */
      g_hash_table_remove_all (self->conns);
    }
  G_OBJECT_CLASS (pm_relay_parent_class)->dispose (object);
}

static void
pm_relay_finalize (GObject *object)
{
  PmRelay *self = PM_RELAY (object);

  g_clear_pointer (&self->conns, g_hash_table_unref);
  g_clear_pointer (&self->sessions, g_hash_table_unref);
  g_clear_pointer (&self->accounts, g_hash_table_unref);
  G_OBJECT_CLASS (pm_relay_parent_class)->finalize (object);
}

/**
 * pm_relay_tune_allocator:
 * Keeps libsoup's per-message 128 KiB buffers in the heap (see
 * PM_RELAY_MALLOC_MMAP_THRESHOLD). It changes the whole process's allocator,
 * so the program that runs the relay calls it once, from main(); the library
 * never does it behind its caller's back.
 */
void
pm_relay_tune_allocator (void)
{
#ifdef __GLIBC__
  if (mallopt (M_MMAP_THRESHOLD, PM_RELAY_MALLOC_MMAP_THRESHOLD) == 0 ||
      mallopt (M_TRIM_THRESHOLD, PM_RELAY_MALLOC_TRIM_THRESHOLD) == 0)
    g_debug ("relay: could not tune the allocator");
#endif
}

static void
pm_relay_class_init (PmRelayClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_relay_dispose;
  object_class->finalize = pm_relay_finalize;
}

static void
pm_relay_init (PmRelay *self)
{
  pm_relay_limits_default (&self->limits);
  self->sessions = g_hash_table_new_full (g_str_hash, g_str_equal,
                                          NULL, (GDestroyNotify) session_free);
  self->accounts = g_hash_table_new_full (g_str_hash, g_str_equal,
                                          NULL, (GDestroyNotify) account_free);
  self->conns = g_hash_table_new_full (g_direct_hash, g_direct_equal,
                                       (GDestroyNotify) conn_free, NULL);
}
