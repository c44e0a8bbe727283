/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-peer"

#include "pm-peer.h"

#include <sodium.h>
#include <string.h>

#include "pm-address.h"
#include "pm-frame.h"
#include "pm-mesh-private.h"
#include "pm-relay-client.h"
#include "pm-session.h"

/*
 * One remote device: its Noise session (pm-session.c, sans-IO), the relay
 * WebSocket, the direct UDP endpoints and the stream association. The design
 * follows Tailscale's magicsock/disco (docs/ARCHITECTURE.md, "Mesh sessions
 * and paths"):
 *
 *  - The session's datagrams go wherever the path policy says: the trusted
 *    direct endpoint alone; the direct endpoint and the relay while the direct
 *    one is unproven (its trust ran out); otherwise the relay. The receive side
 *    accepts any path: the Noise counters and replay window drop the copies.
 *  - Discovery: ping every candidate endpoint a few times, send a
 *    call-me-maybe with our own endpoints through the relay so the peer pings
 *    back at once (hole punching), take the best endpoint that answers, with
 *    hysteresis. A pong keeps an endpoint trusted for trust_us; heartbeats
 *    every heartbeat_us keep pongs coming.
 *  - Everything runs from one timer that ticks every PEER_TICK_MS while the
 *    peer is wanted, and from the callbacks of the sockets.
 */

#define PEER_TICK_MS 50
/* The byte counters and rotations are copied into the properties this often. */
#define COUNTERS_INTERVAL_US (G_GINT64_CONSTANT (250) * 1000)
/* Round trips of pings that never got an answer are forgotten after this. */
#define PING_EXPIRY_US (G_GINT64_CONSTANT (10) * G_USEC_PER_SEC)
/* The answer to pm_peer_ping_async() is awaited this long. */
#define PING_TIMEOUT_US (G_GINT64_CONSTANT (5) * G_USEC_PER_SEC)

/* clang-format off */
G_DEFINE_QUARK (pm-peer-error-quark, pm_peer_error)
/* clang-format on */

typedef struct {
  GInetSocketAddress *address;
  char               *key;   /* "IP:PORT" */
  gboolean            local; /* one of the peer's own interface addresses */
  int64_t             added_us;
  int64_t             last_ping_us;
  int64_t             last_pong_us; /* 0: never answered */
  int64_t             rtt_us;
  unsigned            pings_left; /* of the current discovery round */
} Endpoint;

typedef struct {
  uint8_t   tx_id[PM_DISCO_TX_ID_LEN];
  int64_t   sent_us;
  Endpoint *endpoint; /* NULL: sent over the relay */
  GTask    *task;     /* pm_peer_ping_async(), or NULL */
} Ping;

typedef enum {
  OUT_POLICY, /* the path policy decides */
  OUT_RELAY,  /* only the relay */
  OUT_ENDPOINT,
} OutMode;

struct _PmPeer {
  GObject parent_instance;

  PmMesh  *mesh; /* unowned: the mesh owns its peers and shuts them down first */
  char    *id;
  char    *name;
  char    *device_type;
  char    *public_key_hex;
  uint8_t  public_key[PM_KEY_LEN];
  gboolean online;

  gboolean       wanted;    /* a session is wanted (connect() or a wake, or traffic) */
  gboolean       initiator; /* we called connect() */
  PmSession     *session;
  PmRelayClient *relay;
  GCancellable  *relay_cancellable;
  int64_t        relay_backoff_us;
  int64_t        relay_retry_at_us; /* 0: none scheduled */
  GBytes        *held_handshake;    /* emitted while no path could carry it */
  PmStreamMux   *mux;
  GList         *pending_opens; /* GTask waiting for the session */
  int64_t        last_rx_us;

  GPtrArray *endpoints; /* Endpoint */
  Endpoint  *best;      /* the chosen direct endpoint, trusted or not */
  int64_t    best_trust_until_us;
  int64_t    last_round_us; /* our last discovery round, 0: never */
  int64_t    cmm_due_us;    /* send the call-me-maybe then; 0: none */
  int64_t    last_relay_ping_us;
  int64_t    relay_rtt_us; /* -1: unknown */
  GArray    *pings;        /* Ping */

  OutMode             out_mode;
  Endpoint           *out_endpoint;
  GInetSocketAddress *rx_from; /* during pm_session_receive(): the UDP source, NULL: relay */

  guint tick_id;

  /* The properties' values, notified on change. */
  PmPeerState state;
  PmPathType  path;
  double      rtt_ms;
  char       *endpoint_str;
  uint64_t    tx_bytes, rx_bytes;
  unsigned    rotations;
  int64_t     last_handshake;
  unsigned    direct_attempts;
  unsigned    path_changes;
  int64_t     last_handshake_mono;
  int64_t     last_counters_us;
};

G_DEFINE_FINAL_TYPE (PmPeer, pm_peer, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ID,
  PROP_NAME,
  PROP_DEVICE_TYPE,
  PROP_PUBLIC_KEY,
  PROP_ONLINE,
  PROP_STATE,
  PROP_PATH_TYPE,
  PROP_RTT_MS,
  PROP_ENDPOINT,
  PROP_TX_BYTES,
  PROP_RX_BYTES,
  PROP_ROTATIONS,
  PROP_LAST_HANDSHAKE,
  PROP_DIRECT_ATTEMPTS,
  PROP_PATH_CHANGES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void update_status (PmPeer *self);
static void update_counters (PmPeer *self);
static void send_ping (PmPeer *self, Endpoint *endpoint, GTask *task);
static void relay_connect (PmPeer *self);
static void on_established (PmPeer *self);

/* --- enums ------------------------------------------------------------------ */

GType
pm_peer_state_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_PEER_STATE_IDLE, "PM_PEER_STATE_IDLE", "idle" },
        { PM_PEER_STATE_CONNECTING, "PM_PEER_STATE_CONNECTING", "connecting" },
        { PM_PEER_STATE_CONNECTED, "PM_PEER_STATE_CONNECTED", "connected" },
        { 0, NULL, NULL },
      };
      g_once_init_leave (&type, g_enum_register_static ("PmPeerState", values));
    }
  return type;
}

GType
pm_path_type_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    {
      static const GEnumValue values[] = {
        { PM_PATH_NONE, "PM_PATH_NONE", "none" },
        { PM_PATH_RELAY, "PM_PATH_RELAY", "relay" },
        { PM_PATH_DIRECT, "PM_PATH_DIRECT", "direct" },
        { PM_PATH_LAN, "PM_PATH_LAN", "lan" },
        { 0, NULL, NULL },
      };
      g_once_init_leave (&type, g_enum_register_static ("PmPathType", values));
    }
  return type;
}

const char *
pm_peer_state_to_string (PmPeerState state)
{
  switch (state)
    {
    case PM_PEER_STATE_CONNECTING:
      return "connecting";
    case PM_PEER_STATE_CONNECTED:
      return "connected";
    case PM_PEER_STATE_IDLE:
    default:
      return "idle";
    }
}

const char *
pm_path_type_to_string (PmPathType path)
{
  switch (path)
    {
    case PM_PATH_RELAY:
      return "relay";
    case PM_PATH_DIRECT:
      return "direct";
    case PM_PATH_LAN:
      return "lan";
    case PM_PATH_NONE:
    default:
      return "none";
    }
}

/* --- endpoints ---------------------------------------------------------------- */

static void
endpoint_free (Endpoint *endpoint)
{
  g_clear_object (&endpoint->address);
  g_free (endpoint->key);
  g_free (endpoint);
}

static Endpoint *
find_endpoint (PmPeer             *self,
               GInetSocketAddress *address)
{
  g_autofree char *key = pm_address_to_string (address);

  for (unsigned i = 0; i < self->endpoints->len; i++)
    {
      Endpoint *e = g_ptr_array_index (self->endpoints, i);
      if (g_str_equal (e->key, key))
        return e;
    }
  return NULL;
}

static gboolean
endpoint_trusted (PmPeer   *self,
                  Endpoint *e,
                  int64_t   now)
{
  return e->last_pong_us != 0 && now - e->last_pong_us < pm_mesh_get_limits (self->mesh)->trust_us;
}

static void
forget_pings_of (PmPeer   *self,
                 Endpoint *endpoint)
{
  for (unsigned i = 0; i < self->pings->len; i++)
    {
      Ping *p = &g_array_index (self->pings, Ping, i);
      if (p->endpoint == endpoint)
        {
          /* Expired at the next tick; a late answer is ignored. */
          p->endpoint = NULL;
          p->sent_us = 0;
        }
    }
}

/* Adds an endpoint (or refreshes what is known of it). Keeps at most
 * PM_PATH_MAX_ENDPOINTS: the oldest that never answered goes first. */
static Endpoint *
add_endpoint (PmPeer             *self,
              GInetSocketAddress *address,
              gboolean            local)
{
  Endpoint *e = find_endpoint (self, address);
  int64_t   now = g_get_monotonic_time ();

  if (e != NULL)
    {
      e->local = e->local || local;
      return e;
    }
  if (pm_mesh_get_udp_socket (self->mesh, g_socket_address_get_family (G_SOCKET_ADDRESS (address))) == NULL)
    return NULL; /* no socket of that family */
  /* An address the peer's frames came from, on the IP of one of its own
   * interfaces but another port (it sends from a socket other than the one
   * it listed, or its port changed): still the LAN, not a traversed NAT. */
  if (!local)
    for (unsigned i = 0; i < self->endpoints->len && !local; i++)
      {
        Endpoint *c = g_ptr_array_index (self->endpoints, i);
        local = c->local && g_inet_address_equal (g_inet_socket_address_get_address (c->address),
                                                  g_inet_socket_address_get_address (address));
      }

  if (self->endpoints->len >= PM_PATH_MAX_ENDPOINTS)
    {
      Endpoint *victim = NULL;
      for (unsigned i = 0; i < self->endpoints->len; i++)
        {
          Endpoint *c = g_ptr_array_index (self->endpoints, i);
          if (c != self->best && c->last_pong_us == 0 && (victim == NULL || c->added_us < victim->added_us))
            victim = c;
        }
      if (victim == NULL)
        return NULL;
      forget_pings_of (self, victim);
      g_ptr_array_remove (self->endpoints, victim);
    }
  e = g_new0 (Endpoint, 1);
  e->address = g_object_ref (address);
  e->key = pm_address_to_string (address);
  e->local = local;
  e->added_us = now;
  g_ptr_array_add (self->endpoints, e);
  g_debug ("%s: candidate %s%s", self->name, e->key, local ? " (its interface)" : "");
  return e;
}

/* --- sending ---------------------------------------------------------------- */

static gboolean
send_udp (PmPeer        *self,
          Endpoint      *e,
          const uint8_t *data,
          size_t         len)
{
  PmUdpSocket *socket = pm_mesh_get_udp_socket (self->mesh, g_socket_address_get_family (G_SOCKET_ADDRESS (e->address)));
  g_autoptr (GError) error = NULL;

  if (socket == NULL)
    return FALSE;
  if (!pm_udp_socket_send_to (socket, e->address, data, len, &error))
    {
      g_debug ("%s: UDP to %s: %s", self->name, e->key, error->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
send_relay (PmPeer        *self,
            const uint8_t *data,
            size_t         len)
{
  g_autoptr (GError) error = NULL;

  if (self->relay == NULL || !pm_relay_client_is_open (self->relay))
    return FALSE;
  if (!pm_relay_client_send (self->relay, data, len, &error))
    {
      g_debug ("%s: relay: %s", self->name, error->message);
      return FALSE;
    }
  return TRUE;
}

/* The session emits a datagram: send it where the path policy says. */
static void
on_session_output (const uint8_t *datagram,
                   size_t         len,
                   gpointer       user_data)
{
  PmPeer *self = user_data;
  int64_t now = g_get_monotonic_time ();

  switch (self->out_mode)
    {
    case OUT_RELAY:
      send_relay (self, datagram, len);
      return;
    case OUT_ENDPOINT:
      send_udp (self, self->out_endpoint, datagram, len);
      return;
    case OUT_POLICY:
    default:
      break;
    }

  if (datagram[0] != PM_FRAME_DATA)
    {
      /* Handshakes go everywhere that may reach the peer: the relay, and the
       * chosen endpoint or else every candidate (the LAN answers first when
       * it can). The latest one is held for a relay that is not open yet. */
      if (!send_relay (self, datagram, len))
        {
          g_clear_pointer (&self->held_handshake, g_bytes_unref);
          self->held_handshake = g_bytes_new (datagram, len);
        }
      if (self->best != NULL)
        send_udp (self, self->best, datagram, len);
      else
        for (unsigned i = 0; i < self->endpoints->len; i++)
          send_udp (self, g_ptr_array_index (self->endpoints, i), datagram, len);
      return;
    }

  if (self->best != NULL && now < self->best_trust_until_us)
    {
      send_udp (self, self->best, datagram, len);
      return;
    }
  /* Unproven or no direct path: the relay, and the direct one too if any. */
  if (self->best != NULL)
    send_udp (self, self->best, datagram, len);
  send_relay (self, datagram, len);
}

/* Sends one inner message through the session. */
static gboolean
send_inner (PmPeer        *self,
            const uint8_t *data,
            size_t         len,
            OutMode        mode,
            Endpoint      *endpoint)
{
  g_autoptr (GError) error = NULL;
  gboolean ok;

  if (self->session == NULL)
    return FALSE;
  /* An override only for a message that leaves at once (not one queued
   * behind a rotation). */
  if (pm_session_get_state (self->session) != PM_SESSION_ESTABLISHED || pm_session_get_queue_length (self->session) > 0)
    mode = OUT_POLICY;
  self->out_mode = mode;
  self->out_endpoint = endpoint;
  ok = pm_session_send (self->session, data, len, g_get_monotonic_time (), &error);
  self->out_mode = OUT_POLICY;
  self->out_endpoint = NULL;
  if (!ok)
    g_debug ("%s: send: %s", self->name, error->message);
  return ok;
}

static void
on_mux_output (const uint8_t *packet,
               size_t         len,
               gpointer       user_data)
{
  PmPeer *self = user_data;
  uint8_t buf[1 + PM_STREAM_MTU];

  if (len > PM_STREAM_MTU)
    {
      g_warning ("%s: SCTP packet of %zu bytes over the stream MTU; dropped", self->name, len);
      return;
    }
  buf[0] = PM_DISCO_STREAM;
  memcpy (buf + 1, packet, len);
  send_inner (self, buf, len + 1, OUT_POLICY, NULL);
}

/* --- pings -------------------------------------------------------------------- */

static void
send_ping (PmPeer   *self,
           Endpoint *endpoint,
           GTask    *task)
{
  Ping    p = { 0 };
  uint8_t buf[PM_DISCO_MAX_LEN];
  size_t  len;

  randombytes_buf (p.tx_id, sizeof p.tx_id);
  p.sent_us = g_get_monotonic_time ();
  p.endpoint = endpoint;
  p.task = task;
  len = pm_disco_write_ping (buf, sizeof buf, p.tx_id);
  g_assert (len > 0);
  if (endpoint != NULL)
    endpoint->last_ping_us = p.sent_us;
  else
    self->last_relay_ping_us = p.sent_us;
  g_array_append_val (self->pings, p);
  g_debug ("%s: ping %s", self->name, endpoint != NULL ? endpoint->key : "over the relay");
  send_inner (self, buf, len, endpoint != NULL ? OUT_ENDPOINT : OUT_RELAY, endpoint);
}

static void
send_call_me_maybe (PmPeer *self)
{
  g_autoptr (GPtrArray) mine = pm_mesh_get_local_endpoints (self->mesh);
  uint8_t buf[PM_DISCO_MAX_LEN];
  size_t  len;

  if (mine->len == 0)
    return;
  len = pm_disco_write_call_me_maybe (buf, sizeof buf, mine);
  if (len > 0)
    send_inner (self, buf, len, OUT_RELAY, NULL);
}

/* A discovery round: ping every candidate probe_count times; our own rounds
 * (not those answering the peer's call-me-maybe) send a call-me-maybe after
 * the first pings and count as an upgrade attempt. */
static void
start_round (PmPeer  *self,
             gboolean own)
{
  const PmMeshLimits *limits = pm_mesh_get_limits (self->mesh);
  int64_t             now = g_get_monotonic_time ();

  if (self->session == NULL || pm_session_get_state (self->session) != PM_SESSION_ESTABLISHED)
    return;
  for (unsigned i = 0; i < self->endpoints->len; i++)
    {
      Endpoint *e = g_ptr_array_index (self->endpoints, i);
      e->pings_left = limits->probe_count;
    }
  if (own)
    {
      self->last_round_us = now;
      self->direct_attempts++;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DIRECT_ATTEMPTS]);
      if (self->relay != NULL)
        self->cmm_due_us = now; /* sent right after this tick's first pings */
      g_debug ("%s: discovery round %u over %u candidates", self->name, self->direct_attempts, self->endpoints->len);
    }
}

static gboolean
better_endpoint (PmPeer   *self,
                 Endpoint *candidate,
                 int64_t   now)
{
  const PmMeshLimits *limits = pm_mesh_get_limits (self->mesh);
  Endpoint           *best = self->best;

  if (best == NULL || best == candidate)
    return best == NULL;
  if (!endpoint_trusted (self, best, now))
    return TRUE;
  if (candidate->local != best->local)
    return candidate->local;
  return candidate->rtt_us < best->rtt_us * limits->switch_ratio &&
         best->rtt_us - candidate->rtt_us >= limits->switch_min_gain_us;
}

static void
handle_pong (PmPeer               *self,
             const PmDiscoMessage *message)
{
  int64_t now = g_get_monotonic_time ();

  for (unsigned i = 0; i < self->pings->len; i++)
    {
      Ping     *p = &g_array_index (self->pings, Ping, i);
      Ping      ping;
      Endpoint *e;

      if (sodium_memcmp (p->tx_id, message->tx_id, PM_DISCO_TX_ID_LEN) != 0 || p->sent_us == 0)
        continue;
      ping = *p;
      g_array_remove_index_fast (self->pings, i);
      e = ping.endpoint;
      /* A pong must come back the way its ping went. */
      if (e != NULL && (self->rx_from == NULL || find_endpoint (self, self->rx_from) != e))
        {
          if (ping.task != NULL)
            {
              g_task_return_new_error (ping.task, PM_PEER_ERROR, PM_PEER_ERROR_TIMED_OUT, "The pong came back another way");
              g_object_unref (ping.task);
            }
          return;
        }
      if (e != NULL)
        {
          e->last_pong_us = now;
          e->rtt_us = MAX (now - ping.sent_us, 1);
          if (better_endpoint (self, e, now))
            {
              g_debug ("%s: direct path %s (%s), %.2f ms", self->name, e->key, e->local ? "lan" : "direct",
                       e->rtt_us / 1000.0);
              self->best = e;
            }
          if (self->best == e)
            self->best_trust_until_us = now + pm_mesh_get_limits (self->mesh)->trust_us;
        }
      else
        self->relay_rtt_us = MAX (now - ping.sent_us, 1);
      if (ping.task != NULL)
        {
          PmPathType *path = g_new (PmPathType, 1);
          *path = e == NULL ? PM_PATH_RELAY : e->local ? PM_PATH_LAN
                                                       : PM_PATH_DIRECT;
          g_task_set_task_data (ping.task, path, g_free);
          g_task_return_int (ping.task, MAX (now - ping.sent_us, 1));
          g_object_unref (ping.task);
        }
      update_status (self);
      return;
    }
}

/* --- receiving ---------------------------------------------------------------- */

static void
on_session_deliver (const uint8_t *data,
                    size_t         len,
                    gpointer       user_data)
{
  PmPeer *self = user_data;
  g_autoptr (GError) error = NULL;
  PmDiscoMessage message;
  uint8_t        buf[PM_DISCO_MAX_LEN];
  size_t         out_len;

  self->last_rx_us = g_get_monotonic_time ();
  if (!pm_disco_parse (data, len, &message, &error))
    {
      g_debug ("%s: inner message refused: %s", self->name, error->message);
      return;
    }
  switch (message.type)
    {
    case PM_DISCO_STREAM:
      if (self->mux == NULL)
        on_established (self);
      if (self->mux != NULL)
        pm_stream_mux_input (self->mux, message.stream, message.stream_len);
      break;
      case PM_DISCO_PING: {
        Endpoint *from = NULL;
        if (self->rx_from != NULL)
          from = add_endpoint (self, self->rx_from, FALSE);
        out_len = pm_disco_write_pong (buf, sizeof buf, message.tx_id, self->rx_from);
        if (out_len > 0)
          send_inner (self, buf, out_len, from != NULL ? OUT_ENDPOINT : OUT_RELAY, from);
        /* An authenticated ping from an endpoint we do not trust yet: ping
         * it back (a peer-reflexive candidate, or the other half of a punch). */
        if (from != NULL && !endpoint_trusted (self, from, self->last_rx_us) && from->pings_left == 0)
          from->pings_left = 1;
        break;
      }
    case PM_DISCO_PONG:
      handle_pong (self, &message);
      break;
    case PM_DISCO_CALL_ME_MAYBE:
      for (unsigned i = 0; i < message.endpoints->len; i++)
        {
          PmDiscoEndpoint *d = g_ptr_array_index (message.endpoints, i);
          Endpoint        *e = add_endpoint (self, d->address, (d->flags & PM_DISCO_ENDPOINT_LOCAL) != 0);
          if (e != NULL && !endpoint_trusted (self, e, self->last_rx_us))
            e->pings_left = pm_mesh_get_limits (self->mesh)->probe_count;
        }
      break;
    default:
      break;
    }
  pm_disco_message_clear (&message);
}

static void
on_stream_requested (PmStreamMux *mux,
                     PmStream    *stream,
                     const char  *service,
                     gpointer     user_data)
{
  PmPeer *self = user_data;

  pm_mesh_handle_stream_request (self->mesh, self, stream, service);
}

static void
fail_pending_opens (PmPeer     *self,
                    const char *why)
{
  GList *opens = g_steal_pointer (&self->pending_opens);

  for (GList *l = opens; l != NULL; l = l->next)
    {
      g_task_return_new_error (l->data, PM_PEER_ERROR, PM_PEER_ERROR_CLOSED, "%s", why);
      g_object_unref (l->data);
    }
  g_list_free (opens);
}

static void on_mux_open_done (GObject *source, GAsyncResult *result, gpointer user_data);

/* After every call into the session: start what its new state allows. */
/* Once the session has keys: the stream association, the streams waiting
 * for it, a ping over the relay (it confirms the keys to a responder and
 * measures the relay) and a first discovery round. Called from inside the
 * session's deliver callback too, so the peer's first SCTP packet finds its
 * association. */
static void
on_established (PmPeer *self)
{
  gboolean even = memcmp (pm_identity_get_public_key (pm_mesh_get_identity (self->mesh)), self->public_key,
                          PM_KEY_LEN) < 0;
  GList   *opens;

  g_debug ("%s: session established", self->name);
  self->mux = pm_stream_mux_new (even, on_mux_output, self, NULL, NULL);
  g_signal_connect (self->mux, "stream-requested", G_CALLBACK (on_stream_requested), self);
  pm_stream_mux_start (self->mux);
  opens = g_steal_pointer (&self->pending_opens);
  for (GList *l = opens; l != NULL; l = l->next)
    {
      GTask *task = l->data;
      pm_stream_mux_open_async (self->mux, g_task_get_task_data (task), g_task_get_cancellable (task),
                                on_mux_open_done, task);
    }
  g_list_free (opens);
  send_ping (self, NULL, NULL);
  start_round (self, TRUE);
}

/* After every call into the session: start what its new state allows. */
static void
after_session (PmPeer *self)
{
  if (self->session != NULL && pm_session_get_state (self->session) == PM_SESSION_ESTABLISHED &&
      self->mux == NULL)
    on_established (self);
  update_status (self);
}

static void
ensure_session (PmPeer *self)
{
  PmKeypair local;

  if (self->session != NULL)
    return;
  pm_mesh_get_keypair (self->mesh, &local);
  self->session = pm_session_new (&local, self->public_key, &pm_mesh_get_limits (self->mesh)->session);
  pm_keypair_clear (&local);
  pm_session_set_callbacks (self->session, on_session_output, on_session_deliver, self);
}

static gboolean
receive_frame (PmPeer             *self,
               const uint8_t      *frame,
               size_t              len,
               GInetSocketAddress *from,
               GError            **error)
{
  gboolean ok;

  if (self->session == NULL)
    {
      g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_INDEX, "No session with this peer");
      return FALSE;
    }
  self->rx_from = from;
  ok = pm_session_receive (self->session, frame, len, g_get_monotonic_time (), error);
  self->rx_from = NULL;
  if (ok && frame[0] == PM_FRAME_HANDSHAKE_INIT)
    {
      /* The peer wants a session: want it too (a responder stays while
       * traffic flows). Over UDP, its address is a candidate. */
      self->wanted = TRUE;
      self->last_rx_us = g_get_monotonic_time ();
      if (from != NULL)
        add_endpoint (self, from, FALSE);
    }
  after_session (self);
  return ok;
}

gboolean
pm_peer_receive_udp (PmPeer             *self,
                     const uint8_t      *frame,
                     size_t              len,
                     GInetSocketAddress *from,
                     GError            **error)
{
  g_return_val_if_fail (PM_IS_PEER (self), FALSE);

  if (self->session == NULL)
    {
      /* A handshake initiation may create the session (LAN, or a peer that
       * restarted); anything else needs one. */
      if (len == 0 || frame[0] != PM_FRAME_HANDSHAKE_INIT)
        {
          g_set_error_literal (error, PM_SESSION_ERROR, PM_SESSION_ERROR_UNKNOWN_INDEX, "No session with this peer");
          return FALSE;
        }
      ensure_session (self);
      if (!receive_frame (self, frame, len, from, error))
        {
          g_clear_pointer (&self->session, pm_session_free);
          return FALSE;
        }
      if (self->tick_id == 0)
        update_status (self);
      return TRUE;
    }
  return receive_frame (self, frame, len, from, error);
}

static void
on_relay_frame (PmRelayClient *relay,
                GBytes        *frame,
                gpointer       user_data)
{
  PmPeer *self = user_data;
  g_autoptr (GError) error = NULL;
  gsize          len;
  const uint8_t *data = g_bytes_get_data (frame, &len);

  if (len == 0)
    return;
  ensure_session (self);
  if (!receive_frame (self, data, len, NULL, &error))
    g_debug ("%s: relay frame refused: %s", self->name, error->message);
}

/* --- the relay ---------------------------------------------------------------- */

static void
on_wake_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!pm_coord_client_wake_finish (PM_COORD_CLIENT (source), result, NULL, NULL, &error))
    g_debug ("wake: %s", error->message);
}

static void
on_relay_connected (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr (PmPeer) self = user_data;
  g_autoptr (GError) error = NULL;
  PmRelayClient *relay = PM_RELAY_CLIENT (source);

  if (!pm_relay_client_connect_finish (relay, result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || relay != self->relay)
        return;
      g_message ("%s: relay: %s", self->name, error->message);
      update_status (self);
      return; /* the state notify schedules the retry */
    }
  if (relay != self->relay)
    return;
  g_debug ("%s: relay open", self->name);
  self->relay_backoff_us = 0;
  if (self->held_handshake != NULL)
    {
      g_autoptr (GBytes) held = g_steal_pointer (&self->held_handshake);
      send_relay (self, g_bytes_get_data (held, NULL), g_bytes_get_size (held));
    }
  if (self->initiator)
    pm_coord_client_wake_async (pm_mesh_get_coord (self->mesh), self->id, NULL, on_wake_done, NULL);
  update_status (self);
}

static void
on_relay_state (PmRelayClient *relay,
                GParamSpec    *pspec,
                gpointer       user_data)
{
  PmPeer             *self = user_data;
  const PmMeshLimits *limits = pm_mesh_get_limits (self->mesh);
  const GError       *error;

  if (relay != self->relay || pm_relay_client_get_state (relay) != PM_RELAY_CLIENT_STATE_CLOSED)
    {
      update_status (self);
      return;
    }
  error = pm_relay_client_get_error (relay);
  g_debug ("%s: relay closed (%u): %s", self->name, pm_relay_client_get_close_code (relay),
           error != NULL ? error->message : "no error");
  if (error != NULL && g_error_matches (error, PM_RELAY_CLIENT_ERROR, PM_RELAY_CLIENT_ERROR_REPLACED))
    self->relay_retry_at_us = 0; /* another connection of ours took over */
  else if (self->wanted)
    {
      self->relay_backoff_us = self->relay_backoff_us == 0 ? limits->relay_retry_min_us
                                                           : MIN (self->relay_backoff_us * 2, limits->relay_retry_max_us);
      self->relay_retry_at_us = g_get_monotonic_time () + self->relay_backoff_us;
    }
  update_status (self);
}

static void
relay_drop (PmPeer *self)
{
  if (self->relay_cancellable != NULL)
    g_cancellable_cancel (self->relay_cancellable);
  g_clear_object (&self->relay_cancellable);
  if (self->relay != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->relay, self);
      pm_relay_client_close (self->relay);
      g_clear_object (&self->relay);
    }
}

static void
relay_connect (PmPeer *self)
{
  PmCoordClient *coord = pm_mesh_get_coord (self->mesh);

  self->relay_retry_at_us = 0;
  if (coord == NULL || pm_coord_client_get_token (coord) == NULL)
    return;
  relay_drop (self);
  self->relay = pm_relay_client_new (pm_coord_client_get_base_uri (coord), pm_coord_client_get_token (coord), self->id);
  self->relay_cancellable = g_cancellable_new ();
  g_signal_connect (self->relay, "frame-received", G_CALLBACK (on_relay_frame), self);
  g_signal_connect (self->relay, "notify::state", G_CALLBACK (on_relay_state), self);
  pm_relay_client_connect_async (self->relay, self->relay_cancellable, on_relay_connected, g_object_ref (self));
}

/* --- the timer -------------------------------------------------------------- */

static void
expire_pings (PmPeer *self,
              int64_t now)
{
  for (unsigned i = 0; i < self->pings->len;)
    {
      Ping *p = &g_array_index (self->pings, Ping, i);
      if (p->sent_us == 0 || now - p->sent_us > (p->task != NULL ? PING_TIMEOUT_US : PING_EXPIRY_US))
        {
          GTask *task = p->task;
          g_array_remove_index_fast (self->pings, i);
          if (task != NULL)
            {
              g_task_return_new_error (task, PM_PEER_ERROR, PM_PEER_ERROR_TIMED_OUT,
                                       "No answer to the ping in %d s", (int) (PING_TIMEOUT_US / G_USEC_PER_SEC));
              g_object_unref (task);
            }
          continue;
        }
      i++;
    }
}

static gboolean
on_tick (gpointer user_data)
{
  PmPeer             *self = user_data;
  const PmMeshLimits *limits = pm_mesh_get_limits (self->mesh);
  int64_t             now = g_get_monotonic_time ();
  gboolean            established;

  if (self->relay_retry_at_us != 0 && now >= self->relay_retry_at_us && self->wanted)
    relay_connect (self);

  if (self->session != NULL && pm_session_get_next_deadline (self->session) <= now)
    pm_session_tick (self->session, now);
  established = self->session != NULL && pm_session_get_state (self->session) == PM_SESSION_ESTABLISHED;

  expire_pings (self, now);
  if (established)
    {
      /* Discovery probes, one per tick per candidate at most. */
      for (unsigned i = 0; i < self->endpoints->len; i++)
        {
          Endpoint *e = g_ptr_array_index (self->endpoints, i);
          if (e->pings_left > 0 && now - e->last_ping_us >= limits->probe_interval_us)
            {
              e->pings_left--;
              send_ping (self, e, NULL);
            }
        }
      if (self->cmm_due_us != 0 && now >= self->cmm_due_us)
        {
          self->cmm_due_us = 0;
          send_call_me_maybe (self);
        }
      /* Heartbeat of the chosen endpoint; drop it once it stayed silent for
       * a second trust period. */
      if (self->best != NULL)
        {
          if (now - self->best->last_ping_us >= limits->heartbeat_us)
            send_ping (self, self->best, NULL);
          if (now >= self->best_trust_until_us + limits->trust_us)
            {
              g_message ("%s: direct path %s lost", self->name, self->best->key);
              self->best = NULL;
            }
        }
      /* The relay's round trip while it carries the data. */
      if ((self->best == NULL || now >= self->best_trust_until_us) && self->relay != NULL &&
          pm_relay_client_is_open (self->relay) && now - self->last_relay_ping_us >= limits->relay_ping_us)
        send_ping (self, NULL, NULL);
      /* No trusted direct path: try again, at most once per reprobe_us. */
      if ((self->best == NULL || now >= self->best_trust_until_us) && now - self->last_round_us >= limits->reprobe_us)
        start_round (self, TRUE);
    }

  /* A responder lets an idle peer go. */
  if (!self->initiator && self->wanted && self->last_rx_us != 0 && now - self->last_rx_us >= limits->peer_idle_us)
    {
      g_message ("%s: idle for %" G_GINT64_FORMAT " s; letting go", self->name, limits->peer_idle_us / G_USEC_PER_SEC);
      pm_peer_disconnect (self);
      return G_SOURCE_REMOVE;
    }
  after_session (self); /* once per tick, after the timers moved the state */
  if (now - self->last_counters_us >= COUNTERS_INTERVAL_US)
    {
      self->last_counters_us = now;
      update_counters (self);
    }
  return G_SOURCE_CONTINUE;
}

/* --- status ---------------------------------------------------------------- */

static void
set_uint64 (PmPeer   *self,
            uint64_t *field,
            uint64_t  value,
            int       prop)
{
  if (*field != value)
    {
      *field = value;
      g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
    }
}

/* The session's counters, copied into the properties at most every
 * COUNTERS_INTERVAL_US (from the timer), not per packet. */
static void
update_counters (PmPeer *self)
{
  PmSessionStats stats;
  int64_t        now = g_get_monotonic_time ();

  if (self->session == NULL)
    return;
  g_object_freeze_notify (G_OBJECT (self));
  pm_session_get_stats (self->session, &stats);
  set_uint64 (self, &self->tx_bytes, stats.tx_bytes, PROP_TX_BYTES);
  set_uint64 (self, &self->rx_bytes, stats.rx_bytes, PROP_RX_BYTES);
  if (stats.rotations != self->rotations)
    {
      self->rotations = stats.rotations;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ROTATIONS]);
    }
  if (stats.last_handshake_us != 0 && stats.last_handshake_us != self->last_handshake_mono)
    {
      self->last_handshake_mono = stats.last_handshake_us;
      self->last_handshake = g_get_real_time () - (now - stats.last_handshake_us);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_HANDSHAKE]);
    }
  g_object_thaw_notify (G_OBJECT (self));
}

static void
update_status (PmPeer *self)
{
  int64_t     now = g_get_monotonic_time ();
  PmPeerState state;
  PmPathType  path = PM_PATH_NONE;
  double      rtt = -1;
  const char *endpoint = NULL;
  gboolean    established = self->session != NULL && pm_session_get_state (self->session) == PM_SESSION_ESTABLISHED;

  g_object_freeze_notify (G_OBJECT (self));

  if (established)
    state = PM_PEER_STATE_CONNECTED;
  else if (self->wanted)
    state = PM_PEER_STATE_CONNECTING;
  else
    state = PM_PEER_STATE_IDLE;

  if (established)
    {
      if (self->best != NULL && now < self->best_trust_until_us)
        {
          path = self->best->local ? PM_PATH_LAN : PM_PATH_DIRECT;
          rtt = self->best->rtt_us / 1000.0;
          endpoint = self->best->key;
        }
      else if (self->relay != NULL && pm_relay_client_is_open (self->relay))
        {
          path = PM_PATH_RELAY;
          rtt = self->relay_rtt_us > 0 ? self->relay_rtt_us / 1000.0 : -1;
        }
    }

  if (state != self->state)
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }
  if (path != self->path)
    {
      g_debug ("%s: path %s -> %s", self->name, pm_path_type_to_string (self->path), pm_path_type_to_string (path));
      if (self->path != PM_PATH_NONE && path != PM_PATH_NONE)
        {
          self->path_changes++;
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PATH_CHANGES]);
        }
      self->path = path;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PATH_TYPE]);
    }
  if (rtt != self->rtt_ms)
    {
      self->rtt_ms = rtt;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RTT_MS]);
    }
  if (g_strcmp0 (endpoint, self->endpoint_str) != 0)
    {
      g_free (self->endpoint_str);
      self->endpoint_str = g_strdup (endpoint);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ENDPOINT]);
    }
  /* The timer runs while anything is under way. */
  if ((self->wanted || self->session != NULL) && self->tick_id == 0)
    self->tick_id = g_timeout_add (PEER_TICK_MS, on_tick, self);
  else if (!self->wanted && self->session == NULL && self->tick_id != 0)
    g_clear_handle_id (&self->tick_id, g_source_remove);

  g_object_thaw_notify (G_OBJECT (self));
}

/* --- public API ------------------------------------------------------------- */

void
pm_peer_connect (PmPeer *self)
{
  g_return_if_fail (PM_IS_PEER (self));

  self->wanted = TRUE;
  self->initiator = TRUE;
  ensure_session (self);
  /* Relay first: it is opened (and the peer woken) at once; the handshake
   * leaves now over UDP to every known candidate and is held for the relay
   * until it opens. */
  if (pm_mesh_get_coord (self->mesh) != NULL &&
      (self->relay == NULL || pm_relay_client_get_state (self->relay) == PM_RELAY_CLIENT_STATE_CLOSED))
    relay_connect (self);
  if (pm_session_get_state (self->session) != PM_SESSION_ESTABLISHED)
    pm_session_connect (self->session, g_get_monotonic_time ());
  update_status (self);
}

void
pm_peer_woken (PmPeer *self)
{
  g_return_if_fail (PM_IS_PEER (self));

  g_debug ("%s: woken", self->name);
  self->wanted = TRUE;
  self->last_rx_us = g_get_monotonic_time ();
  if (self->relay == NULL || pm_relay_client_get_state (self->relay) == PM_RELAY_CLIENT_STATE_CLOSED)
    relay_connect (self);
  update_status (self);
}

void
pm_peer_network_changed (PmPeer *self)
{
  g_return_if_fail (PM_IS_PEER (self));

  self->last_round_us = 0; /* a round at the next tick */
  if (self->relay != NULL && pm_relay_client_get_state (self->relay) == PM_RELAY_CLIENT_STATE_CLOSED && self->wanted)
    self->relay_retry_at_us = g_get_monotonic_time ();
}

static void
teardown (PmPeer     *self,
          const char *why)
{
  self->wanted = FALSE;
  self->initiator = FALSE;
  fail_pending_opens (self, why);
  if (self->mux != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->mux, self);
      pm_stream_mux_close (self->mux);
      g_clear_object (&self->mux);
    }
  relay_drop (self);
  self->relay_retry_at_us = 0;
  self->relay_backoff_us = 0;
  g_clear_pointer (&self->held_handshake, g_bytes_unref);
  expire_pings (self, G_MAXINT64);
  g_clear_pointer (&self->session, pm_session_free); /* wipes the keys */
  self->best = NULL;
  self->cmm_due_us = 0;
  self->last_round_us = 0;
  self->last_rx_us = 0;
  self->relay_rtt_us = -1;
}

void
pm_peer_disconnect (PmPeer *self)
{
  g_return_if_fail (PM_IS_PEER (self));

  teardown (self, "Disconnected");
  update_status (self);
}

void
pm_peer_shutdown (PmPeer *self)
{
  g_return_if_fail (PM_IS_PEER (self));

  teardown (self, "The mesh stopped");
  update_status (self); /* nothing wanted, no session: stops the timer */
}

static void
on_mux_open_done (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (GTask) task = user_data;
  GError   *error = NULL;
  PmStream *stream = pm_stream_mux_open_finish (PM_STREAM_MUX (source), result, &error);

  if (stream == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, stream, g_object_unref);
}

void
pm_peer_open_stream_async (PmPeer             *self,
                           const char         *service,
                           GCancellable       *cancellable,
                           GAsyncReadyCallback callback,
                           gpointer            user_data)
{
  GTask *task;

  g_return_if_fail (PM_IS_PEER (self));
  g_return_if_fail (service != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_peer_open_stream_async);
  g_task_set_task_data (task, g_strdup (service), g_free);
  if (self->mux != NULL)
    {
      pm_stream_mux_open_async (self->mux, service, cancellable, on_mux_open_done, task);
      return;
    }
  if (pm_mesh_get_coord (self->mesh) == NULL && self->endpoints->len == 0)
    {
      g_task_return_new_error (task, PM_PEER_ERROR, PM_PEER_ERROR_NO_ROUTE,
                               "No address of %s is known and there is no server to ask", self->name);
      g_object_unref (task);
      return;
    }
  self->pending_opens = g_list_append (self->pending_opens, task);
  if (!self->wanted || self->session == NULL)
    pm_peer_connect (self);
}

PmStream *
pm_peer_open_stream_finish (PmPeer       *self,
                            GAsyncResult *result,
                            GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
pm_peer_ping_async (PmPeer             *self,
                    GCancellable       *cancellable,
                    GAsyncReadyCallback callback,
                    gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  int64_t now = g_get_monotonic_time ();

  g_return_if_fail (PM_IS_PEER (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_peer_ping_async);
  if (self->session == NULL || pm_session_get_state (self->session) != PM_SESSION_ESTABLISHED)
    {
      g_task_return_new_error (task, PM_PEER_ERROR, PM_PEER_ERROR_NOT_CONNECTED, "Not connected to %s", self->name);
      return;
    }
  if (self->best != NULL && now < self->best_trust_until_us)
    send_ping (self, self->best, g_object_ref (task));
  else
    send_ping (self, NULL, g_object_ref (task));
}

gboolean
pm_peer_ping_finish (PmPeer       *self,
                     GAsyncResult *result,
                     double       *rtt_ms,
                     PmPathType   *path,
                     GError      **error)
{
  gssize rtt;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  rtt = g_task_propagate_int (G_TASK (result), error);
  if (rtt < 0)
    return FALSE;
  if (rtt_ms != NULL)
    *rtt_ms = rtt / 1000.0;
  if (path != NULL)
    *path = *(PmPathType *) g_task_get_task_data (G_TASK (result));
  return TRUE;
}

/* --- construction ------------------------------------------------------------ */

PmPeer *
pm_peer_new (PmMesh        *mesh,
             const char    *id,
             const char    *name,
             const char    *device_type,
             const uint8_t *public_key)
{
  PmPeer *self = g_object_new (PM_TYPE_PEER, NULL);

  self->mesh = mesh;
  self->id = g_strdup (id);
  self->name = g_strdup (name);
  self->device_type = g_strdup (device_type);
  memcpy (self->public_key, public_key, PM_KEY_LEN);
  self->public_key_hex = g_malloc (PM_KEY_LEN * 2 + 1);
  sodium_bin2hex (self->public_key_hex, PM_KEY_LEN * 2 + 1, public_key, PM_KEY_LEN);
  return self;
}

void
pm_peer_set_info (PmPeer             *self,
                  const char         *name,
                  gboolean            online,
                  GPtrArray          *local_addresses,
                  GInetSocketAddress *mapped)
{
  g_return_if_fail (PM_IS_PEER (self));

  if (name != NULL && g_strcmp0 (name, self->name) != 0)
    {
      g_free (self->name);
      self->name = g_strdup (name);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_NAME]);
    }
  if (online != self->online)
    {
      self->online = online;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ONLINE]);
    }
  for (unsigned i = 0; local_addresses != NULL && i < local_addresses->len; i++)
    add_endpoint (self, g_ptr_array_index (local_addresses, i), TRUE);
  if (mapped != NULL)
    add_endpoint (self, mapped, FALSE);
}

const uint8_t *
pm_peer_get_public_key (PmPeer *self)
{
  return self->public_key;
}

static void
pm_peer_dispose (GObject *object)
{
  PmPeer *self = PM_PEER (object);

  teardown (self, "The peer is gone");
  g_clear_handle_id (&self->tick_id, g_source_remove);
  G_OBJECT_CLASS (pm_peer_parent_class)->dispose (object);
}

static void
pm_peer_finalize (GObject *object)
{
  PmPeer *self = PM_PEER (object);

  g_ptr_array_unref (self->endpoints);
  g_array_unref (self->pings);
  g_free (self->id);
  g_free (self->name);
  g_free (self->device_type);
  g_free (self->public_key_hex);
  g_free (self->endpoint_str);
  G_OBJECT_CLASS (pm_peer_parent_class)->finalize (object);
}

static void
pm_peer_get_property (GObject    *object,
                      guint       prop_id,
                      GValue     *value,
                      GParamSpec *pspec)
{
  PmPeer *self = PM_PEER (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_DEVICE_TYPE:
      g_value_set_string (value, self->device_type);
      break;
    case PROP_PUBLIC_KEY:
      g_value_set_string (value, self->public_key_hex);
      break;
    case PROP_ONLINE:
      g_value_set_boolean (value, self->online);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_PATH_TYPE:
      g_value_set_enum (value, self->path);
      break;
    case PROP_RTT_MS:
      g_value_set_double (value, self->rtt_ms);
      break;
    case PROP_ENDPOINT:
      g_value_set_string (value, self->endpoint_str);
      break;
    case PROP_TX_BYTES:
      g_value_set_uint64 (value, self->tx_bytes);
      break;
    case PROP_RX_BYTES:
      g_value_set_uint64 (value, self->rx_bytes);
      break;
    case PROP_ROTATIONS:
      g_value_set_uint (value, self->rotations);
      break;
    case PROP_LAST_HANDSHAKE:
      g_value_set_int64 (value, self->last_handshake);
      break;
    case PROP_DIRECT_ATTEMPTS:
      g_value_set_uint (value, self->direct_attempts);
      break;
    case PROP_PATH_CHANGES:
      g_value_set_uint (value, self->path_changes);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_peer_class_init (PmPeerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags   flags = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = pm_peer_dispose;
  object_class->finalize = pm_peer_finalize;
  object_class->get_property = pm_peer_get_property;

  properties[PROP_ID] = g_param_spec_string ("id", NULL, NULL, NULL, flags);
  properties[PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL, flags);
  properties[PROP_DEVICE_TYPE] = g_param_spec_string ("device-type", NULL, NULL, NULL, flags);
  properties[PROP_PUBLIC_KEY] = g_param_spec_string ("public-key", NULL, NULL, NULL, flags);
  properties[PROP_ONLINE] = g_param_spec_boolean ("online", NULL, NULL, FALSE, flags);
  properties[PROP_STATE] = g_param_spec_enum ("state", NULL, NULL, PM_TYPE_PEER_STATE, PM_PEER_STATE_IDLE, flags);
  properties[PROP_PATH_TYPE] = g_param_spec_enum ("path-type", NULL, NULL, PM_TYPE_PATH_TYPE, PM_PATH_NONE, flags);
  properties[PROP_RTT_MS] = g_param_spec_double ("rtt-ms", NULL, NULL, -1, G_MAXDOUBLE, -1, flags);
  properties[PROP_ENDPOINT] = g_param_spec_string ("endpoint", NULL, NULL, NULL, flags);
  properties[PROP_TX_BYTES] = g_param_spec_uint64 ("tx-bytes", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  properties[PROP_RX_BYTES] = g_param_spec_uint64 ("rx-bytes", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  properties[PROP_ROTATIONS] = g_param_spec_uint ("rotations", NULL, NULL, 0, G_MAXUINT, 0, flags);
  properties[PROP_LAST_HANDSHAKE] = g_param_spec_int64 ("last-handshake", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_DIRECT_ATTEMPTS] = g_param_spec_uint ("direct-attempts", NULL, NULL, 0, G_MAXUINT, 0, flags);
  properties[PROP_PATH_CHANGES] = g_param_spec_uint ("path-changes", NULL, NULL, 0, G_MAXUINT, 0, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
pm_peer_init (PmPeer *self)
{
  self->endpoints = g_ptr_array_new_with_free_func ((GDestroyNotify) endpoint_free);
  self->pings = g_array_new (FALSE, TRUE, sizeof (Ping));
  self->rtt_ms = -1;
  self->relay_rtt_us = -1;
}

/* --- getters ------------------------------------------------------------------ */

const char *
pm_peer_get_id (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), NULL);
  return self->id;
}

const char *
pm_peer_get_name (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), NULL);
  return self->name;
}

const char *
pm_peer_get_device_type (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), NULL);
  return self->device_type;
}

const char *
pm_peer_get_public_key_hex (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), NULL);
  return self->public_key_hex;
}

gboolean
pm_peer_get_online (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), FALSE);
  return self->online;
}

PmPeerState
pm_peer_get_state (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), PM_PEER_STATE_IDLE);
  return self->state;
}

PmPathType
pm_peer_get_path_type (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), PM_PATH_NONE);
  return self->path;
}

double
pm_peer_get_rtt_ms (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), -1);
  return self->rtt_ms;
}

const char *
pm_peer_get_endpoint (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), NULL);
  return self->endpoint_str;
}

uint64_t
pm_peer_get_tx_bytes (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  update_counters (self); /* the live value; notifies if it moved */
  return self->tx_bytes;
}

uint64_t
pm_peer_get_rx_bytes (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  update_counters (self); /* the live value; notifies if it moved */
  return self->rx_bytes;
}

unsigned
pm_peer_get_rotations (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  update_counters (self); /* the live value; notifies if it moved */
  return self->rotations;
}

int64_t
pm_peer_get_last_handshake (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  return self->last_handshake;
}

unsigned
pm_peer_get_direct_attempts (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  return self->direct_attempts;
}

unsigned
pm_peer_get_path_changes (PmPeer *self)
{
  g_return_val_if_fail (PM_IS_PEER (self), 0);
  return self->path_changes;
}
