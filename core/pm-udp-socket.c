/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-udp"

/*
 * PmUdpSocket: one non-blocking UDP socket shared by STUN, probes and Noise
 * frames (Tailscale's magicsock model). Each datagram is demultiplexed by its
 * first bytes:
 *
 *   - STUN (pm_stun_is_stun(): first two bits zero, magic cookie) goes to the
 *     STUN client below, which matches it to an outstanding query by
 *     transaction id *and* server address; anything else is ignored;
 *   - PiperMesh frames (pm_frame_is_pipermesh(): 0x81 … 0x83) are emitted as
 *     "frame-received";
 *   - the rest is dropped and counted.
 *
 * The STUN client retransmits as RFC 8489 §6.2.1 says, with the shorter timers
 * of pm-mesh-limits.h. Payloads and peer addresses are never logged.
 */

#include "pm-udp-socket.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "pm-frame.h"
#include "pm-stun.h"

/* clang-format off */
G_DEFINE_QUARK (pm-udp-socket-error-quark, pm_udp_socket_error)
/* clang-format on */

/* A Binding request with FINGERPRINT is 28 bytes. */
#define STUN_REQUEST_CAP 64

typedef struct _StunQuery StunQuery;

struct _PmUdpSocket {
  GObject parent_instance;

  GSocket            *socket; /* NULL once closed */
  GSource            *source;
  GMainContext       *context;
  GInetSocketAddress *local_address;
  GSocketFamily       family;
  PmUdpSocketLimits   limits;
  PmUdpSocketStats    stats;
  uint8_t            *rx_buf;  /* PM_UDP_RECV_BUFFER_LEN bytes */
  GList              *queries; /* StunQuery, outstanding */
};

G_DEFINE_FINAL_TYPE (PmUdpSocket, pm_udp_socket, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_LOCAL_ADDRESS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  FRAME_RECEIVED,
  N_SIGNALS
};

static unsigned signals[N_SIGNALS];

/* One outstanding STUN Binding transaction. */
struct _StunQuery {
  PmUdpSocket        *self; /* not a reference: the task holds one */
  GTask              *task;
  GInetSocketAddress *server;
  uint8_t             transaction_id[PM_STUN_TRANSACTION_ID_LEN];
  uint8_t             request[STUN_REQUEST_CAP];
  size_t              request_len;
  unsigned            transmissions;
  unsigned            rto_ms; /* the wait after the latest transmission */
  int64_t             started_us;
  int64_t             last_sent_us;
  GSource            *timer;
  GSource            *cancel_source;
};

typedef struct {
  GInetSocketAddress *mapped;
  double              rtt_ms;
} StunAnswer;

static void
stun_answer_free (StunAnswer *answer)
{
  g_clear_object (&answer->mapped);
  g_free (answer);
}

/**
 * pm_udp_socket_limits_default:
 * Fills @limits with the constants of pm-mesh-limits.h.
 */
void
pm_udp_socket_limits_default (PmUdpSocketLimits *limits)
{
  g_return_if_fail (limits != NULL);

  *limits = (PmUdpSocketLimits){
    .read_burst = PM_UDP_READ_BURST,
    .stun_rto_ms = PM_STUN_RTO_MS,
    .stun_max_transmissions = PM_STUN_MAX_TRANSMISSIONS,
  };
}

void
pm_netcheck_free (PmNetcheck *netcheck)
{
  if (netcheck == NULL)
    return;
  g_clear_object (&netcheck->mapped_primary);
  g_clear_object (&netcheck->mapped_secondary);
  g_free (netcheck->error);
  g_free (netcheck);
}

static gboolean
same_socket_address (GInetSocketAddress *a,
                     GInetSocketAddress *b)
{
  return g_inet_socket_address_get_port (a) == g_inet_socket_address_get_port (b) &&
         g_inet_address_equal (g_inet_socket_address_get_address (a),
                               g_inet_socket_address_get_address (b));
}

static char *
address_to_string (GInetSocketAddress *address)
{
  return g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));
}

/* --- STUN queries ---------------------------------------------------------------- */

/* Ends @query: takes it off the list, stops its timers and returns @answer or
 * @error (one of them) to its task. */
static void
stun_query_complete (StunQuery  *query,
                     StunAnswer *answer,
                     GError     *error)
{
  PmUdpSocket *self = query->self;
  g_autoptr (GTask) task = g_steal_pointer (&query->task);

  g_assert ((answer == NULL) != (error == NULL));

  self->queries = g_list_remove (self->queries, query);
  if (query->timer != NULL)
    g_source_destroy (query->timer);
  g_clear_pointer (&query->timer, g_source_unref);
  if (query->cancel_source != NULL)
    g_source_destroy (query->cancel_source);
  g_clear_pointer (&query->cancel_source, g_source_unref);
  g_clear_object (&query->server);
  g_free (query);

  if (answer != NULL)
    g_task_return_pointer (task, answer, (GDestroyNotify) stun_answer_free);
  else
    g_task_return_error (task, error);
}

static void
stun_query_fail (StunQuery  *query,
                 GQuark      domain,
                 int         code,
                 const char *format,
                 ...) G_GNUC_PRINTF (4, 5);

static void
stun_query_fail (StunQuery  *query,
                 GQuark      domain,
                 int         code,
                 const char *format,
                 ...)
{
  va_list args;
  GError *error;

  va_start (args, format);
  error = g_error_new_valist (domain, code, format, args);
  va_end (args);
  stun_query_complete (query, NULL, error);
}

static gboolean stun_query_on_timer (gpointer user_data);

/* Sends (or resends) the request and arms the retransmission timer. Returns
 * FALSE when the query failed and is gone. */
static gboolean
stun_query_transmit (StunQuery *query)
{
  PmUdpSocket *self = query->self;
  g_autoptr (GError) error = NULL;

  query->transmissions++;
  query->last_sent_us = g_get_monotonic_time ();
  self->stats.stun_transmissions++;
  if (!pm_udp_socket_send_to (self, query->server, query->request, query->request_len, &error) &&
      !g_error_matches (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_WOULD_BLOCK))
    {
      /* A full send buffer is what retransmission is for; anything else
       * (no route, closed socket) will not get better by waiting. */
      g_autofree char *where = address_to_string (query->server);

      stun_query_fail (query, PM_UDP_SOCKET_ERROR, error->code,
                       "Could not send a STUN request to %s: %s", where, error->message);
      return FALSE;
    }

  g_assert (query->timer == NULL);
  query->timer = g_timeout_source_new (query->rto_ms);
  g_source_set_callback (query->timer, stun_query_on_timer, query, NULL);
  g_source_set_static_name (query->timer, "PmUdpSocket STUN retransmission");
  g_source_attach (query->timer, self->context);
  return TRUE;
}

static gboolean
stun_query_on_timer (gpointer user_data)
{
  StunQuery   *query = user_data;
  PmUdpSocket *self = query->self;

  /* The source is destroyed when this returns. */
  g_clear_pointer (&query->timer, g_source_unref);

  if (query->transmissions >= self->limits.stun_max_transmissions)
    {
      g_autofree char *where = address_to_string (query->server);
      int64_t          waited_us = g_get_monotonic_time () - query->started_us;

      stun_query_fail (query, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_TIMED_OUT,
                       "No STUN answer from %s after %u requests in %.1f s: UDP may be blocked, "
                       "or the server is down",
                       where, query->transmissions, (double) waited_us / G_USEC_PER_SEC);
      return G_SOURCE_REMOVE;
    }

  query->rto_ms = query->rto_ms > G_MAXUINT / 2 ? G_MAXUINT : query->rto_ms * 2;
  stun_query_transmit (query);
  return G_SOURCE_REMOVE;
}

static gboolean
stun_query_on_cancelled (GCancellable *cancellable,
                         gpointer      user_data)
{
  StunQuery *query = user_data;
  GError    *error = NULL;

  g_clear_pointer (&query->cancel_source, g_source_unref);
  g_cancellable_set_error_if_cancelled (cancellable, &error);
  stun_query_complete (query, NULL, error);
  return G_SOURCE_REMOVE;
}

/* A STUN message arrived from @from. Only a response to one of our
 * transactions, from the very address we asked, is taken. */
static void
handle_stun (PmUdpSocket        *self,
             const uint8_t      *data,
             size_t              len,
             GInetSocketAddress *from)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) mapped = NULL;
  StunQuery  *query = NULL;
  StunAnswer *answer;

  self->stats.rx_stun++;
  g_assert (len >= PM_STUN_HEADER_LEN);
  for (GList *l = self->queries; l != NULL; l = l->next)
    {
      StunQuery *q = l->data;

      if (memcmp (data + 8, q->transaction_id, PM_STUN_TRANSACTION_ID_LEN) == 0)
        {
          query = q;
          break;
        }
    }
  if (query == NULL)
    {
      self->stats.rx_stun_ignored++;
      g_debug ("Ignored a STUN message that belongs to no transaction of ours");
      return;
    }
  if (!same_socket_address (from, query->server))
    {
      /* Right transaction id, wrong sender: forged, or a confused server. */
      self->stats.rx_stun_ignored++;
      g_debug ("Ignored a STUN response from another address than the server's");
      return;
    }

  mapped = pm_stun_parse_binding_response (data, len, query->transaction_id, &error);
  if (mapped == NULL)
    {
      g_autofree char *where = NULL;

      if (!g_error_matches (error, PM_STUN_ERROR, PM_STUN_ERROR_ERROR_RESPONSE) &&
          !g_error_matches (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_ADDRESS))
        {
          /* Malformed, bad FINGERPRINT, not a response: RFC 8489 §6.3 says
           * discard it and keep waiting for the real answer. */
          self->stats.rx_stun_ignored++;
          g_debug ("Ignored a STUN response: %s", error->message);
          return;
        }
      where = address_to_string (query->server);
      stun_query_fail (query, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_STUN,
                       "The STUN server %s did not give our address: %s", where, error->message);
      return;
    }

  answer = g_new0 (StunAnswer, 1);
  answer->mapped = g_steal_pointer (&mapped);
  /* Retransmissions carry the same transaction id, so an answer cannot be
   * tied to one of them: measured from the latest (Karn's ambiguity; it can
   * only under-estimate, and only after a loss). */
  answer->rtt_ms = (double) (g_get_monotonic_time () - query->last_sent_us) / 1000.0;
  stun_query_complete (query, answer, NULL);
}

/**
 * pm_udp_socket_stun_query_async:
 * Asks the STUN server @server (of the socket's family) for the address it
 * sees this socket as, from this socket, so the answer is the mapping the
 * NAT gave *this* port. Resends the request after an RTO that doubles each
 * time, up to PmUdpSocketLimits.stun_max_transmissions requests, then fails
 * with %PM_UDP_SOCKET_ERROR_TIMED_OUT. Answers with another transaction id,
 * from another address than @server, with a bad FINGERPRINT or malformed are
 * ignored. Several queries may run at once.
 */
void
pm_udp_socket_stun_query_async (PmUdpSocket        *self,
                                GInetSocketAddress *server,
                                GCancellable       *cancellable,
                                GAsyncReadyCallback callback,
                                gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GError) error = NULL;
  StunQuery *query;

  g_return_if_fail (PM_IS_UDP_SOCKET (self));
  g_return_if_fail (G_IS_INET_SOCKET_ADDRESS (server));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_udp_socket_stun_query_async);
  g_task_set_name (task, "PmUdpSocket STUN query");

  if (g_task_return_error_if_cancelled (task))
    return;
  if (self->socket == NULL)
    {
      g_task_return_new_error (task, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED,
                               "The UDP socket is closed");
      return;
    }
  if (g_socket_address_get_family (G_SOCKET_ADDRESS (server)) != self->family)
    {
      g_task_return_new_error (task, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_FAMILY,
                               "The STUN server's address is not of this socket's family (%s)",
                               self->family == G_SOCKET_FAMILY_IPV4 ? "IPv4" : "IPv6");
      return;
    }

  query = g_new0 (StunQuery, 1);
  if (!pm_stun_build_binding_request (query->request, sizeof query->request, TRUE,
                                      query->transaction_id, &query->request_len, &error))
    {
      g_free (query);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  query->self = self;
  query->task = g_steal_pointer (&task);
  query->server = g_object_ref (server);
  query->rto_ms = MAX (self->limits.stun_rto_ms, 1);
  query->started_us = g_get_monotonic_time ();
  self->queries = g_list_prepend (self->queries, query);

  if (cancellable != NULL)
    {
      query->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (query->cancel_source, G_SOURCE_FUNC (stun_query_on_cancelled), query,
                             NULL);
      g_source_set_static_name (query->cancel_source, "PmUdpSocket STUN cancel");
      g_source_attach (query->cancel_source, self->context);
    }
  stun_query_transmit (query);
}

/**
 * pm_udp_socket_stun_query_finish:
 * @rtt_ms: (out) (optional): the round trip of the answered request
 *
 * Returns: (transfer full): the address the server saw us as, or %NULL with
 * @error set.
 */
GInetSocketAddress *
pm_udp_socket_stun_query_finish (PmUdpSocket  *self,
                                 GAsyncResult *result,
                                 double       *rtt_ms,
                                 GError      **error)
{
  StunAnswer         *answer;
  GInetSocketAddress *mapped;

  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == pm_udp_socket_stun_query_async,
                        NULL);

  answer = g_task_propagate_pointer (G_TASK (result), error);
  if (answer == NULL)
    return NULL;
  mapped = g_steal_pointer (&answer->mapped);
  if (rtt_ms != NULL)
    *rtt_ms = answer->rtt_ms;
  stun_answer_free (answer);
  return mapped;
}

/* --- Netcheck ---------------------------------------------------------------------- */

typedef struct {
  PmNetcheck *result;
  GError     *errors[2];
  double      rtts[2];
  unsigned    pending;
} NetcheckData;

static void
netcheck_data_free (NetcheckData *data)
{
  pm_netcheck_free (data->result);
  g_clear_error (&data->errors[0]);
  g_clear_error (&data->errors[1]);
  g_free (data);
}

static void
netcheck_done (GTask *task)
{
  NetcheckData *data = g_task_get_task_data (task);
  PmNetcheck   *result = data->result;

  for (unsigned i = 0; i < 2; i++)
    if (g_error_matches (data->errors[i], G_IO_ERROR, G_IO_ERROR_CANCELLED))
      {
        g_task_return_error (task, g_steal_pointer (&data->errors[i]));
        return;
      }

  result->udp_ok = result->mapped_primary != NULL || result->mapped_secondary != NULL;
  result->mapping_varies_by_destination =
    result->mapped_primary != NULL && result->mapped_secondary != NULL &&
    !same_socket_address (result->mapped_primary, result->mapped_secondary);
  result->rtt_ms = -1;
  if (result->mapped_primary != NULL)
    result->rtt_ms = data->rtts[0];
  if (result->mapped_secondary != NULL && (result->rtt_ms < 0 || data->rtts[1] < result->rtt_ms))
    result->rtt_ms = data->rtts[1];
  if (data->errors[0] != NULL || data->errors[1] != NULL)
    result->error = g_strdup (data->errors[0] != NULL ? data->errors[0]->message
                                                      : data->errors[1]->message);
  g_task_return_pointer (task, g_steal_pointer (&data->result), (GDestroyNotify) pm_netcheck_free);
}

static void
netcheck_on_query (GObject      *source,
                   GAsyncResult *res,
                   gpointer      user_data,
                   unsigned      index)
{
  g_autoptr (GTask) task = user_data;
  NetcheckData       *data = g_task_get_task_data (task);
  GInetSocketAddress *mapped;

  mapped = pm_udp_socket_stun_query_finish (PM_UDP_SOCKET (source), res, &data->rtts[index],
                                            &data->errors[index]);
  if (index == 0)
    data->result->mapped_primary = mapped;
  else
    data->result->mapped_secondary = mapped;
  g_assert (data->pending > 0);
  if (--data->pending == 0)
    netcheck_done (task);
}

static void
netcheck_on_primary (GObject      *source,
                     GAsyncResult *res,
                     gpointer      user_data)
{
  netcheck_on_query (source, res, user_data, 0);
}

static void
netcheck_on_secondary (GObject      *source,
                       GAsyncResult *res,
                       gpointer      user_data)
{
  netcheck_on_query (source, res, user_data, 1);
}

/**
 * pm_udp_socket_netcheck_async:
 * Asks @primary and, if not %NULL, @secondary (two addresses of a STUN server,
 * or two servers) at once for our mapped address, and compares the answers:
 * see #PmNetcheck. Finishes once both queries ended (at most the STUN
 * timeout). No answer is not an error: the result says UDP is not ok and
 * why. Fails only when cancelled.
 */
void
pm_udp_socket_netcheck_async (PmUdpSocket        *self,
                              GInetSocketAddress *primary,
                              GInetSocketAddress *secondary,
                              GCancellable       *cancellable,
                              GAsyncReadyCallback callback,
                              gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  NetcheckData *data;

  g_return_if_fail (PM_IS_UDP_SOCKET (self));
  g_return_if_fail (G_IS_INET_SOCKET_ADDRESS (primary));
  g_return_if_fail (secondary == NULL || G_IS_INET_SOCKET_ADDRESS (secondary));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, pm_udp_socket_netcheck_async);
  g_task_set_name (task, "PmUdpSocket netcheck");
  data = g_new0 (NetcheckData, 1);
  data->result = g_new0 (PmNetcheck, 1);
  data->rtts[0] = data->rtts[1] = -1;
  data->pending = secondary != NULL ? 2 : 1;
  g_task_set_task_data (task, data, (GDestroyNotify) netcheck_data_free);

  pm_udp_socket_stun_query_async (self, primary, cancellable, netcheck_on_primary,
                                  g_object_ref (task));
  if (secondary != NULL)
    pm_udp_socket_stun_query_async (self, secondary, cancellable, netcheck_on_secondary,
                                    g_object_ref (task));
}

/**
 * pm_udp_socket_netcheck_finish:
 *
 * Returns: (transfer full): the result (free with pm_netcheck_free()), or
 * %NULL with @error set (cancelled).
 */
PmNetcheck *
pm_udp_socket_netcheck_finish (PmUdpSocket  *self,
                               GAsyncResult *result,
                               GError      **error)
{
  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == pm_udp_socket_netcheck_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* --- Receiving ------------------------------------------------------------------- */

static gboolean
on_readable (GSocket     *socket,
             GIOCondition condition,
             gpointer     user_data)
{
  g_autoptr (PmUdpSocket) self = g_object_ref (PM_UDP_SOCKET (user_data));

  /* self->socket turns NULL if a handler closes us. */
  for (unsigned n = 0; n < self->limits.read_burst && self->socket != NULL; n++)
    {
      g_autoptr (GSocketAddress) from = NULL;
      g_autoptr (GError) error = NULL;
      const uint8_t *data = self->rx_buf;
      gssize         got;

      got = g_socket_receive_from (self->socket, &from, (char *) self->rx_buf,
                                   PM_UDP_RECV_BUFFER_LEN, NULL, &error);
      if (got < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            {
              self->stats.rx_errors++;
              g_debug ("UDP receive failed: %s", error->message);
            }
          break;
        }

      self->stats.rx_datagrams++;
      if (!G_IS_INET_SOCKET_ADDRESS (from))
        self->stats.rx_dropped++;
      else if (pm_stun_is_stun (data, (size_t) got))
        handle_stun (self, data, (size_t) got, G_INET_SOCKET_ADDRESS (from));
      else if (pm_frame_is_pipermesh (data, (size_t) got))
        {
          g_autoptr (GBytes) bytes = g_bytes_new (data, (size_t) got);

          self->stats.rx_frames++;
          g_signal_emit (self, signals[FRAME_RECEIVED], 0, bytes, from);
        }
      else
        self->stats.rx_dropped++;
    }

  return G_SOURCE_CONTINUE;
}

/* --- Sending --------------------------------------------------------------------- */

/**
 * pm_udp_socket_send_to:
 * Sends one datagram to @to, never blocking. A full send buffer (EAGAIN,
 * ENOBUFS) drops the datagram and fails with
 * %PM_UDP_SOCKET_ERROR_WOULD_BLOCK, which callers may treat as a loss; other
 * failures give %PM_UDP_SOCKET_ERROR_SEND. Both are counted.
 */
gboolean
pm_udp_socket_send_to (PmUdpSocket        *self,
                       GInetSocketAddress *to,
                       const uint8_t      *data,
                       size_t              len,
                       GError            **error)
{
  g_autoptr (GError) local_error = NULL;
  gssize sent;

  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (to), FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->socket == NULL)
    {
      g_set_error_literal (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED,
                           "The UDP socket is closed");
      return FALSE;
    }
  if (g_socket_address_get_family (G_SOCKET_ADDRESS (to)) != self->family)
    {
      self->stats.tx_errors++;
      g_set_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_FAMILY,
                   "Cannot send to an %s address from an %s socket",
                   self->family == G_SOCKET_FAMILY_IPV4 ? "IPv6" : "IPv4",
                   self->family == G_SOCKET_FAMILY_IPV4 ? "IPv4" : "IPv6");
      return FALSE;
    }

  sent = g_socket_send_to (self->socket, G_SOCKET_ADDRESS (to), (const char *) data, len, NULL,
                           &local_error);
  if (sent < 0)
    {
      /* GIO maps EAGAIN to WOULD_BLOCK and ENOBUFS to NO_SPACE. */
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK) ||
          g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
        {
          self->stats.tx_would_block++;
          g_set_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_WOULD_BLOCK,
                       "The UDP send buffer is full: a datagram of %zu bytes was dropped (%s)",
                       len, local_error->message);
        }
      else
        {
          self->stats.tx_errors++;
          g_set_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_SEND,
                       "Could not send a UDP datagram of %zu bytes: %s", len,
                       local_error->message);
        }
      return FALSE;
    }
  self->stats.tx_datagrams++;
  return TRUE;
}

/* --- Candidates ------------------------------------------------------------------ */

static gboolean
is_candidate (GInetAddress       *inet,
              PmUdpCandidateFlags flags)
{
  if (g_inet_address_get_is_any (inet) || g_inet_address_get_is_multicast (inet) ||
      g_inet_address_get_is_link_local (inet))
    return FALSE;
  if (g_inet_address_get_is_loopback (inet))
    return (flags & PM_UDP_CANDIDATES_LOOPBACK) != 0;
  return TRUE;
}

static void
add_candidate (GPtrArray    *candidates,
               GInetAddress *inet,
               uint16_t      port)
{
  for (unsigned i = 0; i < candidates->len; i++)
    if (g_inet_address_equal (g_inet_socket_address_get_address (candidates->pdata[i]), inet))
      return;
  g_ptr_array_add (candidates, g_inet_socket_address_new (inet, port));
}

/**
 * pm_udp_socket_get_local_candidates:
 * The addresses peers on the same networks may reach this socket at: every
 * unicast address of an interface that is up, of the socket's family, with
 * the socket's port — without loopback (unless @flags has
 * %PM_UDP_CANDIDATES_LOOPBACK), link-local or multicast addresses. A socket
 * bound to one address has only that one. Empty when closed.
 *
 * Returns: (transfer full) (element-type GInetSocketAddress)
 */
GPtrArray *
pm_udp_socket_get_local_candidates (PmUdpSocket        *self,
                                    PmUdpCandidateFlags flags)
{
  g_autoptr (GPtrArray) candidates = g_ptr_array_new_with_free_func (g_object_unref);
  struct ifaddrs *ifaddrs = NULL;
  GInetAddress   *bound;
  uint16_t        port;
  int             native_family;

  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), NULL);

  if (self->socket == NULL)
    return g_steal_pointer (&candidates);
  bound = g_inet_socket_address_get_address (self->local_address);
  port = g_inet_socket_address_get_port (self->local_address);
  if (!g_inet_address_get_is_any (bound))
    {
      if (is_candidate (bound, flags))
        add_candidate (candidates, bound, port);
      return g_steal_pointer (&candidates);
    }

  if (getifaddrs (&ifaddrs) != 0)
    {
      g_debug ("getifaddrs failed: %s", g_strerror (errno));
      return g_steal_pointer (&candidates);
    }
  native_family = self->family == G_SOCKET_FAMILY_IPV4 ? AF_INET : AF_INET6;
  for (struct ifaddrs *ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    {
      g_autoptr (GSocketAddress) address = NULL;
      size_t native_len;

      if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != native_family ||
          (ifa->ifa_flags & IFF_UP) == 0)
        continue;
      native_len = native_family == AF_INET ? sizeof (struct sockaddr_in)
                                            : sizeof (struct sockaddr_in6);
      address = g_socket_address_new_from_native (ifa->ifa_addr, native_len);
      if (!G_IS_INET_SOCKET_ADDRESS (address))
        continue;
      if (is_candidate (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)), flags))
        add_candidate (candidates,
                       g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)), port);
    }
  freeifaddrs (ifaddrs);
  return g_steal_pointer (&candidates);
}

/* --- The object ------------------------------------------------------------------ */

/**
 * pm_udp_socket_close:
 * Closes the socket: outstanding STUN queries fail with
 * %PM_UDP_SOCKET_ERROR_CLOSED, sends fail, nothing more is received. The
 * counters stay. Safe to call twice.
 */
void
pm_udp_socket_close (PmUdpSocket *self)
{
  g_return_if_fail (PM_IS_UDP_SOCKET (self));

  if (self->source != NULL)
    g_source_destroy (self->source);
  g_clear_pointer (&self->source, g_source_unref);
  if (self->socket != NULL)
    g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);

  while (self->queries != NULL)
    stun_query_fail (self->queries->data, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_CLOSED,
                     "The UDP socket was closed");
}

static void
pm_udp_socket_dispose (GObject *object)
{
  PmUdpSocket *self = PM_UDP_SOCKET (object);

  pm_udp_socket_close (self);
  G_OBJECT_CLASS (pm_udp_socket_parent_class)->dispose (object);
}

static void
pm_udp_socket_finalize (GObject *object)
{
  PmUdpSocket *self = PM_UDP_SOCKET (object);

  g_clear_object (&self->local_address);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_free (self->rx_buf);
  G_OBJECT_CLASS (pm_udp_socket_parent_class)->finalize (object);
}

static void
pm_udp_socket_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  PmUdpSocket *self = PM_UDP_SOCKET (object);

  switch (prop_id)
    {
    case PROP_LOCAL_ADDRESS:
      g_value_set_object (value, self->local_address);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
pm_udp_socket_class_init (PmUdpSocketClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = pm_udp_socket_dispose;
  object_class->finalize = pm_udp_socket_finalize;
  object_class->get_property = pm_udp_socket_get_property;

  /**
   * PmUdpSocket:local-address:
   * The address the socket is bound to, with its real port.
   */
  properties[PROP_LOCAL_ADDRESS] =
    g_param_spec_object ("local-address", NULL, NULL, G_TYPE_INET_SOCKET_ADDRESS,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * PmUdpSocket::frame-received:
   * @self: the socket
   * @frame: (type GBytes): the datagram, a PiperMesh frame by its first byte
   *   (not yet parsed or authenticated)
   * @source: (type GInetSocketAddress): where it came from
   */
  signals[FRAME_RECEIVED] =
    g_signal_new ("frame-received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 2, G_TYPE_BYTES, G_TYPE_INET_SOCKET_ADDRESS);
}

static void
pm_udp_socket_init (PmUdpSocket *self)
{
  pm_udp_socket_limits_default (&self->limits);
}

/**
 * pm_udp_socket_new:
 * Binds a UDP socket to @address (port 0 picks a free port; see
 * pm_udp_socket_get_local_address()) and starts reading on the thread-default
 * main context. An IPv6 socket is IPv6-only: use one socket per family.
 * @limits: (nullable): timers, or %NULL for pm_udp_socket_limits_default()
 *
 * Returns: (transfer full): the socket, or %NULL with @error set
 * (%PM_UDP_SOCKET_ERROR_BIND).
 */
PmUdpSocket *
pm_udp_socket_new (GInetSocketAddress      *address,
                   const PmUdpSocketLimits *limits,
                   GError                 **error)
{
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GSocketAddress) local = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autofree char *where = NULL;
  GSocketFamily    family;
  PmUdpSocket     *self;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  family = g_socket_address_get_family (G_SOCKET_ADDRESS (address));
  socket = g_socket_new (family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &local_error);
  if (socket != NULL && family == G_SOCKET_FAMILY_IPV6 &&
      !g_socket_set_option (socket, IPPROTO_IPV6, IPV6_V6ONLY, 1, &local_error))
    g_clear_object (&socket);
  if (socket == NULL ||
      !g_socket_bind (socket, G_SOCKET_ADDRESS (address), FALSE, &local_error) ||
      (local = g_socket_get_local_address (socket, &local_error)) == NULL)
    {
      where = address_to_string (address);
      g_set_error (error, PM_UDP_SOCKET_ERROR, PM_UDP_SOCKET_ERROR_BIND,
                   "Could not open UDP port %s: %s", where, local_error->message);
      return NULL;
    }
  g_socket_set_blocking (socket, FALSE);

  self = g_object_new (PM_TYPE_UDP_SOCKET, NULL);
  if (limits != NULL)
    self->limits = *limits;
  self->limits.read_burst = MAX (self->limits.read_burst, 1);
  self->limits.stun_rto_ms = MAX (self->limits.stun_rto_ms, 1);
  self->limits.stun_max_transmissions = MAX (self->limits.stun_max_transmissions, 1);
  self->family = family;
  self->socket = g_steal_pointer (&socket);
  self->local_address = G_INET_SOCKET_ADDRESS (g_steal_pointer (&local));
  self->rx_buf = g_malloc (PM_UDP_RECV_BUFFER_LEN);
  self->context = g_main_context_ref_thread_default ();
  self->source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->source, G_SOURCE_FUNC (on_readable), self, NULL);
  g_source_set_static_name (self->source, "PmUdpSocket");
  g_source_attach (self->source, self->context);
  return self;
}

/**
 * pm_udp_socket_new_any:
 * pm_udp_socket_new() on the wildcard address of @family (0.0.0.0 or ::) and
 * @port (0: any free port).
 */
PmUdpSocket *
pm_udp_socket_new_any (GSocketFamily            family,
                       uint16_t                 port,
                       const PmUdpSocketLimits *limits,
                       GError                 **error)
{
  g_autoptr (GInetAddress) any = NULL;
  g_autoptr (GSocketAddress) address = NULL;

  g_return_val_if_fail (family == G_SOCKET_FAMILY_IPV4 || family == G_SOCKET_FAMILY_IPV6, NULL);

  any = g_inet_address_new_any (family);
  address = g_inet_socket_address_new (any, port);
  return pm_udp_socket_new (G_INET_SOCKET_ADDRESS (address), limits, error);
}

/**
 * pm_udp_socket_get_local_address:
 * Returns: (transfer none): the bound address, with the real port (kept after
 * close)
 */
GInetSocketAddress *
pm_udp_socket_get_local_address (PmUdpSocket *self)
{
  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), NULL);

  return self->local_address;
}

GSocketFamily
pm_udp_socket_get_family (PmUdpSocket *self)
{
  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), G_SOCKET_FAMILY_INVALID);

  return self->family;
}

uint16_t
pm_udp_socket_get_port (PmUdpSocket *self)
{
  g_return_val_if_fail (PM_IS_UDP_SOCKET (self), 0);

  return g_inet_socket_address_get_port (self->local_address);
}

void
pm_udp_socket_get_stats (PmUdpSocket      *self,
                         PmUdpSocketStats *stats)
{
  g_return_if_fail (PM_IS_UDP_SOCKET (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
}
