/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-stun-server"

/*
 * A STUN Binding responder (RFC 8489) on one or two UDP sockets. With two, each
 * answer names the other socket in OTHER-ADDRESS (CHANGED-ADDRESS for RFC 3489
 * clients), so a client can ask both and tell whether its NAT mapping depends
 * on the destination. The request → answer logic is the pure function
 * pm_stun_server_handle(), fuzzed without sockets (tests/fuzz/fuzz-stun.c).
 * Payloads and addresses are never logged.
 */

#include "pm-stun-server.h"

#include <string.h>

G_DEFINE_QUARK (pm-stun-server-error-quark, pm_stun_server_error)

#define N_SOCKETS 2

struct _PmStunServer {
  GObject parent_instance;

  GSocket            *sockets[N_SOCKETS];
  GSource            *sources[N_SOCKETS];
  GInetSocketAddress *addresses[N_SOCKETS]; /* as bound, with the real port */
  unsigned            n_sockets;

  uint64_t received;
  uint64_t outcomes[PM_STUN_SERVER_N_OUTCOMES];
  uint64_t send_failures;
};

G_DEFINE_FINAL_TYPE (PmStunServer, pm_stun_server, G_TYPE_OBJECT)

/* --- The pure part ------------------------------------------------------------ */

/* An IPv4 peer seen on a dual-stack IPv6 socket arrives as ::ffff:a.b.c.d;
 * answer it with its IPv4 address, which is what it knows itself as. */
static GInetSocketAddress *
unmap_v4 (GInetSocketAddress *address)
{
  static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  GInetAddress        *inet = g_inet_socket_address_get_address (address);
  g_autoptr (GInetAddress) v4 = NULL;
  const uint8_t *bytes;

  if (g_inet_address_get_family (inet) != G_SOCKET_FAMILY_IPV6)
    return g_object_ref (address);
  bytes = g_inet_address_to_bytes (inet);
  if (memcmp (bytes, prefix, sizeof prefix) != 0)
    return g_object_ref (address);
  v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);
  return G_INET_SOCKET_ADDRESS (
    g_inet_socket_address_new (v4, g_inet_socket_address_get_port (address)));
}

static PmStunServerOutcome
answer_error (const PmStunHeader *header,
              PmStunServerOutcome outcome,
              unsigned            code,
              const char         *reason,
              const uint16_t     *unknown,
              unsigned            n_unknown,
              uint8_t            *out,
              size_t              cap,
              size_t             *out_len)
{
  gboolean ok;

  ok = pm_stun_build_binding_error (header, code, reason, unknown, n_unknown,
                                    PM_STUN_SERVER_SOFTWARE, out, cap, out_len, NULL);
  g_assert (ok);
  return outcome;
}

/**
 * pm_stun_server_handle:
 * Decides the answer to one datagram @request from @source, received on a
 * socket whose twin is @other_address (or %NULL). Writes the answer into @out
 * (at least PM_STUN_MAX_MESSAGE_LEN bytes) and its length into @out_len, which
 * is 0 when nothing must be sent.
 *
 *  - not STUN, or a header that does not hold together: dropped;
 *  - indications and responses: dropped (never answer an answer);
 *  - a bad FINGERPRINT: dropped (RFC 8489 §7.3: it may not be STUN at all);
 *  - a request with a valid header but bad attributes, or not Binding: 400;
 *  - unknown comprehension-required attributes: 420 listing them;
 *  - CHANGE-REQUEST asking for another address or port, which we cannot honour
 *    (no NAT-behaviour tests): an RFC 8489 request gets 420 listing
 *    CHANGE-REQUEST, as RFC 5780 §6.1 expects from such a server; an RFC 3489
 *    request is dropped, because RFC 3489 clients (Debian's `stun`) take any
 *    answer, even a 420, as the changed address answering and would report an
 *    open Internet; silence makes them report filtering, which is the safe
 *    reading. A CHANGE-REQUEST of 0 is accepted and ignored;
 *  - otherwise the Binding success answer (pm_stun_build_binding_success()).
 *
 * RFC 3489 requests (no magic cookie) are answered the RFC 3489 way.
 */
PmStunServerOutcome
pm_stun_server_handle (const uint8_t      *request,
                       size_t              len,
                       GInetSocketAddress *source,
                       GInetSocketAddress *other_address,
                       uint8_t            *out,
                       size_t              cap,
                       size_t             *out_len)
{
  PmStunHeader  header;
  PmStunMessage msg;
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetSocketAddress) mapped = NULL;
  gboolean ok;

  g_return_val_if_fail (request != NULL || len == 0, PM_STUN_SERVER_DROPPED_NOT_STUN);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (source), PM_STUN_SERVER_DROPPED_NOT_STUN);
  g_return_val_if_fail (out != NULL && cap >= PM_STUN_MAX_MESSAGE_LEN,
                        PM_STUN_SERVER_DROPPED_NOT_STUN);
  g_return_val_if_fail (out_len != NULL, PM_STUN_SERVER_DROPPED_NOT_STUN);

  *out_len = 0;
  if (!pm_stun_parse_header (request, len, PM_STUN_PARSE_ALLOW_RFC3489, &header, NULL))
    return PM_STUN_SERVER_DROPPED_NOT_STUN;
  if (header.klass != PM_STUN_CLASS_REQUEST)
    return PM_STUN_SERVER_DROPPED_NOT_REQUEST;

  if (!pm_stun_parse (request, len, PM_STUN_PARSE_ALLOW_RFC3489, &msg, &error))
    {
      if (g_error_matches (error, PM_STUN_ERROR, PM_STUN_ERROR_BAD_FINGERPRINT))
        return PM_STUN_SERVER_DROPPED_FINGERPRINT;
      return answer_error (&header, PM_STUN_SERVER_ANSWERED_400, PM_STUN_CODE_BAD_REQUEST,
                           "Bad Request: malformed attributes", NULL, 0, out, cap, out_len);
    }
  if (header.method != PM_STUN_METHOD_BINDING)
    return answer_error (&header, PM_STUN_SERVER_ANSWERED_400, PM_STUN_CODE_BAD_REQUEST,
                         "Bad Request: only Binding is supported", NULL, 0, out, cap, out_len);
  if (msg.n_unknown > 0)
    return answer_error (&header, PM_STUN_SERVER_ANSWERED_420, PM_STUN_CODE_UNKNOWN_ATTRIBUTE,
                         "Unknown Attribute", msg.unknown, msg.n_unknown, out, cap, out_len);
  if ((msg.change_request & (PM_STUN_CHANGE_IP | PM_STUN_CHANGE_PORT)) != 0)
    {
      if (header.rfc3489)
        return PM_STUN_SERVER_DROPPED_CHANGE_REQUEST;
      static const uint16_t change_request = PM_STUN_ATTR_CHANGE_REQUEST;

      return answer_error (&header, PM_STUN_SERVER_ANSWERED_420, PM_STUN_CODE_UNKNOWN_ATTRIBUTE,
                           "Unknown Attribute: CHANGE-REQUEST is not supported", &change_request,
                           1, out, cap, out_len);
    }

  mapped = unmap_v4 (source);
  ok = pm_stun_build_binding_success (&header, mapped, other_address, PM_STUN_SERVER_SOFTWARE, out,
                                      cap, out_len, NULL);
  g_assert (ok);
  return PM_STUN_SERVER_ANSWERED;
}

/**
 * pm_stun_server_outcome_name:
 * A short name for @outcome, for metrics labels.
 */
const char *
pm_stun_server_outcome_name (PmStunServerOutcome outcome)
{
  switch (outcome)
    {
    case PM_STUN_SERVER_ANSWERED:
      return "answered";
    case PM_STUN_SERVER_ANSWERED_420:
      return "error-420";
    case PM_STUN_SERVER_ANSWERED_400:
      return "error-400";
    case PM_STUN_SERVER_DROPPED_NOT_STUN:
      return "dropped-not-stun";
    case PM_STUN_SERVER_DROPPED_NOT_REQUEST:
      return "dropped-not-request";
    case PM_STUN_SERVER_DROPPED_FINGERPRINT:
      return "dropped-fingerprint";
    case PM_STUN_SERVER_DROPPED_CHANGE_REQUEST:
      return "dropped-change-request";
    case PM_STUN_SERVER_N_OUTCOMES:
    default:
      break;
    }
  g_return_val_if_reached ("unknown");
}

/* --- The sockets -------------------------------------------------------------- */

static gboolean
on_readable (GSocket     *socket,
             GIOCondition condition,
             gpointer     user_data)
{
  PmStunServer       *self = PM_STUN_SERVER (user_data);
  GInetSocketAddress *other = NULL;
  unsigned            index;

  for (index = 0; index < self->n_sockets; index++)
    if (self->sockets[index] == socket)
      break;
  g_assert (index < self->n_sockets);
  if (self->n_sockets == N_SOCKETS)
    {
      other = self->addresses[1 - index];
      /* A wildcard address tells the client nothing: leave it out. */
      if (g_inet_address_get_is_any (g_inet_socket_address_get_address (other)))
        other = NULL;
    }

  for (unsigned n = 0; n < PM_STUN_SERVER_BURST; n++)
    {
      /* One byte more than we accept, so an oversized datagram is seen as such. */
      uint8_t buf[PM_STUN_MAX_MESSAGE_LEN + 1];
      uint8_t answer[PM_STUN_MAX_MESSAGE_LEN];
      g_autoptr (GSocketAddress) from = NULL;
      g_autoptr (GError) error = NULL;
      PmStunServerOutcome outcome;
      size_t              answer_len;
      gssize              got;

      got = g_socket_receive_from (socket, &from, (char *) buf, sizeof buf, NULL, &error);
      if (got < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_debug ("STUN receive failed: %s", error->message);
          break;
        }
      if (!G_IS_INET_SOCKET_ADDRESS (from))
        continue;

      self->received++;
      outcome = pm_stun_server_handle (buf, (size_t) got, G_INET_SOCKET_ADDRESS (from), other,
                                       answer, sizeof answer, &answer_len);
      self->outcomes[outcome]++;
      if (answer_len == 0)
        continue;
      if (g_socket_send_to (socket, from, (const char *) answer, answer_len, NULL, &error) < 0)
        {
          self->send_failures++;
          g_debug ("STUN send failed: %s", error->message);
        }
    }

  return G_SOURCE_CONTINUE;
}

static GSocket *
bind_one (GInetSocketAddress  *address,
          GInetSocketAddress **bound,
          GError             **error)
{
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GSocketAddress) local = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autofree char *where = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  socket = g_socket_new (g_socket_address_get_family (G_SOCKET_ADDRESS (address)),
                         G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &local_error);
  if (socket == NULL || !g_socket_bind (socket, G_SOCKET_ADDRESS (address), FALSE, &local_error) ||
      (local = g_socket_get_local_address (socket, &local_error)) == NULL)
    {
      g_set_error (error, PM_STUN_SERVER_ERROR, PM_STUN_SERVER_ERROR_BIND,
                   "Could not open the STUN port %s: %s", where, local_error->message);
      return NULL;
    }
  g_socket_set_blocking (socket, FALSE);
  *bound = G_INET_SOCKET_ADDRESS (g_steal_pointer (&local));
  return g_steal_pointer (&socket);
}

/**
 * pm_stun_server_start:
 * Binds @primary and, if not %NULL, @secondary (port 0 picks a free port; see
 * pm_stun_server_get_address()) and starts answering on the thread-default
 * main context. For OTHER-ADDRESS to be useful, bind specific addresses
 * rather than a wildcard. On failure nothing stays open.
 */
gboolean
pm_stun_server_start (PmStunServer       *self,
                      GInetSocketAddress *primary,
                      GInetSocketAddress *secondary,
                      GError            **error)
{
  GInetSocketAddress *wanted[N_SOCKETS] = { primary, secondary };
  GSocket            *sockets[N_SOCKETS] = { NULL };
  GInetSocketAddress *bound[N_SOCKETS] = { NULL };
  unsigned            n = secondary != NULL ? 2 : 1;

  g_return_val_if_fail (PM_IS_STUN_SERVER (self), FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (primary), FALSE);
  g_return_val_if_fail (secondary == NULL || G_IS_INET_SOCKET_ADDRESS (secondary), FALSE);

  if (self->n_sockets > 0)
    {
      g_set_error_literal (error, PM_STUN_SERVER_ERROR, PM_STUN_SERVER_ERROR_RUNNING,
                           "The STUN server is already running");
      return FALSE;
    }

  for (unsigned i = 0; i < n; i++)
    {
      sockets[i] = bind_one (wanted[i], &bound[i], error);
      if (sockets[i] == NULL)
        {
          for (unsigned j = 0; j < i; j++)
            {
              g_socket_close (sockets[j], NULL);
              g_object_unref (sockets[j]);
              g_object_unref (bound[j]);
            }
          return FALSE;
        }
    }

  for (unsigned i = 0; i < n; i++)
    {
      self->sockets[i] = sockets[i];
      self->addresses[i] = bound[i];
      self->sources[i] = g_socket_create_source (sockets[i], G_IO_IN, NULL);
      g_source_set_callback (self->sources[i], G_SOURCE_FUNC (on_readable), self, NULL);
      g_source_set_static_name (self->sources[i], "PmStunServer");
      g_source_attach (self->sources[i], g_main_context_get_thread_default ());
    }
  self->n_sockets = n;
  return TRUE;
}

/**
 * pm_stun_server_stop:
 * Stops answering and closes the sockets. The counters stay. Safe to call
 * when not running.
 */
void
pm_stun_server_stop (PmStunServer *self)
{
  g_return_if_fail (PM_IS_STUN_SERVER (self));

  for (unsigned i = 0; i < N_SOCKETS; i++)
    {
      if (self->sources[i] != NULL)
        g_source_destroy (self->sources[i]);
      g_clear_pointer (&self->sources[i], g_source_unref);
      if (self->sockets[i] != NULL)
        g_socket_close (self->sockets[i], NULL);
      g_clear_object (&self->sockets[i]);
      g_clear_object (&self->addresses[i]);
    }
  self->n_sockets = 0;
}

gboolean
pm_stun_server_is_running (PmStunServer *self)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), FALSE);

  return self->n_sockets > 0;
}

/**
 * pm_stun_server_get_address:
 * The address socket @index (0 primary, 1 secondary) is bound to, with its
 * real port, or %NULL.
 *
 * Returns: (transfer none) (nullable)
 */
GInetSocketAddress *
pm_stun_server_get_address (PmStunServer *self,
                            unsigned      index)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), NULL);

  return index < N_SOCKETS ? self->addresses[index] : NULL;
}

/**
 * pm_stun_server_get_port:
 * The primary socket's port, or 0 when not running.
 */
uint16_t
pm_stun_server_get_port (PmStunServer *self)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), 0);

  return self->addresses[0] != NULL ? g_inet_socket_address_get_port (self->addresses[0]) : 0;
}

/* Datagrams read, whatever became of them. */
uint64_t
pm_stun_server_get_received (PmStunServer *self)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), 0);

  return self->received;
}

uint64_t
pm_stun_server_get_count (PmStunServer       *self,
                          PmStunServerOutcome outcome)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), 0);
  g_return_val_if_fail (outcome < PM_STUN_SERVER_N_OUTCOMES, 0);

  return self->outcomes[outcome];
}

/* Answers that could not be sent (a full socket buffer, an unreachable peer). */
uint64_t
pm_stun_server_get_send_failures (PmStunServer *self)
{
  g_return_val_if_fail (PM_IS_STUN_SERVER (self), 0);

  return self->send_failures;
}

PmStunServer *
pm_stun_server_new (void)
{
  return g_object_new (PM_TYPE_STUN_SERVER, NULL);
}

static void
pm_stun_server_dispose (GObject *object)
{
  pm_stun_server_stop (PM_STUN_SERVER (object));

  G_OBJECT_CLASS (pm_stun_server_parent_class)->dispose (object);
}

static void
pm_stun_server_class_init (PmStunServerClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = pm_stun_server_dispose;
}

static void
pm_stun_server_init (PmStunServer *self)
{
}
