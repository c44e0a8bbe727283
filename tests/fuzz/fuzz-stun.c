/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * STUN on arbitrary bytes: pm_stun_parse() (with and without RFC 3489
 * messages), the address decoder on every attribute, the client's
 * pm_stun_parse_binding_response(), and the server's request → answer
 * function pm_stun_server_handle() for an IPv4 and an IPv6 source.
 *
 * Accepted messages must be views inside the input with attributes that tile
 * it exactly; refused ones leave the output untouched and say why in the
 * PM_STUN_ERROR domain. Every answer the server writes must itself parse, carry
 * the request's transaction, and (for a success) map back to the source.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-stun-server.h"
#include "pm-stun.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static GInetSocketAddress *source_v4;
static GInetSocketAddress *source_v6;
static GInetSocketAddress *other_v4;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  source_v4 = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("192.0.2.10", 5000));
  source_v6 = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("2001:db8::10", 443));
  other_v4 = G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string ("192.0.2.1", 3479));
  return 0;
}

static void
check_accepted (const uint8_t       *data,
                size_t               size,
                PmStunParseFlags     flags,
                const PmStunMessage *msg)
{
  size_t off = PM_STUN_HEADER_LEN;

  g_assert (msg->data == data && msg->len == size);
  g_assert (size >= PM_STUN_HEADER_LEN && size <= PM_STUN_MAX_MESSAGE_LEN);
  g_assert (msg->header.length + PM_STUN_HEADER_LEN == size);
  g_assert (msg->header.length % 4 == 0);
  g_assert (msg->header.type == pm_stun_type (msg->header.method, msg->header.klass));
  g_assert (msg->header.rfc3489 == (msg->header.cookie != PM_STUN_MAGIC_COOKIE));
  if (!(flags & PM_STUN_PARSE_ALLOW_RFC3489))
    g_assert (!msg->header.rfc3489);
  g_assert (pm_stun_is_stun (data, size) == !msg->header.rfc3489);
  g_assert (msg->n_attributes <= PM_STUN_MAX_ATTRIBUTES);
  g_assert (msg->n_unknown <= PM_STUN_MAX_UNKNOWN);

  /* The attributes tile the message, each padded to 4 bytes. */
  for (unsigned i = 0; i < msg->n_attributes; i++)
    {
      const PmStunAttribute *attr = &msg->attributes[i];
      g_autoptr (GError) error = NULL;
      g_autoptr (GInetSocketAddress) addr = NULL;

      g_assert (attr->value == data + off + 4);
      off += 4 + ((attr->length + 3u) & ~3u);
      g_assert (off <= size);
      if (attr->type == PM_STUN_ATTR_FINGERPRINT)
        g_assert (msg->has_fingerprint && i == msg->n_attributes - 1);

      addr = pm_stun_attribute_get_address (msg, attr, &error);
      g_assert ((addr == NULL) == (error != NULL));
      if (error != NULL)
        g_assert (error->domain == PM_STUN_ERROR && error->code == PM_STUN_ERROR_BAD_ADDRESS);
    }
  g_assert (off == size);

  for (unsigned i = 0; i < msg->n_unknown; i++)
    {
      g_assert (PM_STUN_ATTR_IS_COMPREHENSION_REQUIRED (msg->unknown[i]));
      g_assert (pm_stun_message_find (msg, msg->unknown[i]) != NULL);
    }
}

static void
parse_one (const uint8_t   *data,
           size_t           size,
           PmStunParseFlags flags)
{
  g_autoptr (GError) error = NULL;
  PmStunMessage msg, untouched;

  memset (&msg, 0xa5, sizeof msg);
  untouched = msg;
  if (pm_stun_parse (data, size, flags, &msg, &error))
    {
      g_assert (error == NULL);
      check_accepted (data, size, flags, &msg);
    }
  else
    {
      g_assert (error != NULL);
      g_assert (error->domain == PM_STUN_ERROR);
      g_assert (error->code >= PM_STUN_ERROR_TRUNCATED &&
                error->code <= PM_STUN_ERROR_FINGERPRINT_NOT_LAST);
      g_assert (error->message != NULL && error->message[0] != '\0');
      g_assert (memcmp (&msg, &untouched, sizeof msg) == 0);
    }
}

static void
handle_one (const uint8_t      *data,
            size_t              size,
            GInetSocketAddress *source,
            GInetSocketAddress *other)
{
  uint8_t             out[PM_STUN_MAX_MESSAGE_LEN];
  PmStunServerOutcome outcome;
  PmStunMessage       answer;
  size_t              out_len = 1;

  outcome = pm_stun_server_handle (data, size, source, other, out, sizeof out, &out_len);
  g_assert (outcome < PM_STUN_SERVER_N_OUTCOMES);
  switch (outcome)
    {
    case PM_STUN_SERVER_ANSWERED:
    case PM_STUN_SERVER_ANSWERED_400:
    case PM_STUN_SERVER_ANSWERED_420:
      g_assert (out_len >= PM_STUN_HEADER_LEN);
      break;
    default:
      g_assert (out_len == 0);
      return;
    }

  /* The answer parses, is for the same transaction, and never answers an
   * answer. */
  g_assert (pm_stun_parse (out, out_len, PM_STUN_PARSE_ALLOW_RFC3489, &answer, NULL));
  g_assert (size >= PM_STUN_HEADER_LEN);
  g_assert (memcmp (out + 4, data + 4, 16) == 0);
  g_assert ((data[0] & 0x01) == 0 && (data[1] & 0x10) == 0); /* the request's class */
  if (!answer.header.rfc3489)
    g_assert (answer.has_fingerprint);

  if (outcome == PM_STUN_SERVER_ANSWERED)
    {
      g_autoptr (GInetSocketAddress) mapped = NULL;
      g_autofree char *want = NULL;
      g_autofree char *got = NULL;

      g_assert (answer.header.type == PM_STUN_BINDING_SUCCESS);
      if (answer.header.rfc3489)
        mapped = pm_stun_attribute_get_address (
          &answer, pm_stun_message_find (&answer, PM_STUN_ATTR_MAPPED_ADDRESS), NULL);
      else
        mapped = pm_stun_parse_binding_response (out, out_len, data + 8, NULL);
      g_assert (mapped != NULL);
      want = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (source));
      got = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (mapped));
      g_assert (strcmp (want, got) == 0);
    }
  else
    {
      g_assert (answer.header.klass == PM_STUN_CLASS_ERROR);
      g_assert (pm_stun_message_find (&answer, PM_STUN_ATTR_ERROR_CODE) != NULL);
      if (outcome == PM_STUN_SERVER_ANSWERED_420)
        g_assert (pm_stun_message_find (&answer, PM_STUN_ATTR_UNKNOWN_ATTRIBUTES) != NULL);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  parse_one (data, size, PM_STUN_PARSE_DEFAULT);
  parse_one (data, size, PM_STUN_PARSE_ALLOW_RFC3489);

  /* The client side, expecting the input's own transaction id. */
  if (size >= PM_STUN_HEADER_LEN)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GInetSocketAddress) mapped = NULL;

      mapped = pm_stun_parse_binding_response (data, size, data + 8, &error);
      g_assert ((mapped == NULL) == (error != NULL));
      if (error != NULL)
        g_assert (error->domain == PM_STUN_ERROR);
    }

  handle_one (data, size, source_v4, other_v4);
  handle_one (data, size, source_v6, NULL);

  /* The cheap demultiplexer never disagrees with the parser on a header it
   * accepts as RFC 8489. */
  if (pm_stun_is_stun (data, size))
    g_assert ((data[0] & 0xC0) == 0);

  return 0;
}
