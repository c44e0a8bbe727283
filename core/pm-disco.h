/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The messages that travel inside an established Noise session: every
 * transport plaintext starts with one type byte. STREAM carries one SCTP
 * packet; PING, PONG and CALL_ME_MAYBE are path discovery (Tailscale's disco,
 * but already authenticated and encrypted by the session, so they need no keys
 * or signatures of their own). Big-endian integers. See docs/PROTOCOL.md §8.
 *
 * Parsing is strict: one encoding per message, so what pm_disco_parse()
 * accepts pm_disco_write() writes back byte for byte.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

#define PM_DISCO_ERROR (pm_disco_error_quark ())

typedef enum {
  PM_DISCO_ERROR_TRUNCATED,          /* empty, or shorter than its type or count needs */
  PM_DISCO_ERROR_TRAILING,           /* bytes after the end of the message */
  PM_DISCO_ERROR_UNKNOWN_TYPE,       /* first byte is not a PmDiscoType */
  PM_DISCO_ERROR_BAD_FAMILY,         /* address family not 4 or 6 (or 0 in a PONG) */
  PM_DISCO_ERROR_BAD_PORT,           /* port 0 with an address, or not 0 with family 0 */
  PM_DISCO_ERROR_BAD_ADDRESS,        /* unspecified, multicast, or IPv4-mapped IPv6 */
  PM_DISCO_ERROR_BAD_FLAGS,          /* reserved endpoint flag bits set */
  PM_DISCO_ERROR_TOO_MANY_ENDPOINTS, /* more than PM_DISCO_MAX_ENDPOINTS */
} PmDiscoError;

GQuark pm_disco_error_quark (void);

typedef enum {
  PM_DISCO_STREAM = 0x01,
  PM_DISCO_PING = 0x02,
  PM_DISCO_PONG = 0x03,
  PM_DISCO_CALL_ME_MAYBE = 0x04,
} PmDiscoType;

/* Endpoint flags of CALL_ME_MAYBE; the other bits are reserved (zero). */
typedef enum {
  PM_DISCO_ENDPOINT_LOCAL = 1 << 0,  /* an interface address of the sender */
  PM_DISCO_ENDPOINT_MAPPED = 1 << 1, /* the sender's STUN-mapped address */
} PmDiscoEndpointFlags;

#define PM_DISCO_ENDPOINT_FLAGS_ALL (PM_DISCO_ENDPOINT_LOCAL | PM_DISCO_ENDPOINT_MAPPED)

/* Address family bytes on the wire. */
#define PM_DISCO_FAMILY_NONE 0 /* PONG only: the ping did not come over UDP */
#define PM_DISCO_FAMILY_IPV4 4
#define PM_DISCO_FAMILY_IPV6 6

/* Sizes. */
#define PM_DISCO_TX_ID_LEN        12
#define PM_DISCO_PING_LEN         (1 + PM_DISCO_TX_ID_LEN)
#define PM_DISCO_ADDRESS_MIN_LEN  3 /* family u8, port u16 */
#define PM_DISCO_ADDRESS_MAX_LEN  (PM_DISCO_ADDRESS_MIN_LEN + 16)
#define PM_DISCO_PONG_MIN_LEN     (PM_DISCO_PING_LEN + PM_DISCO_ADDRESS_MIN_LEN)
#define PM_DISCO_PONG_MAX_LEN     (PM_DISCO_PING_LEN + PM_DISCO_ADDRESS_MAX_LEN)
#define PM_DISCO_ENDPOINT_MIN_LEN (1 + PM_DISCO_ADDRESS_MIN_LEN + 4) /* flags u8, IPv4 */
#define PM_DISCO_ENDPOINT_MAX_LEN (1 + PM_DISCO_ADDRESS_MAX_LEN)     /* flags u8, IPv6 */
#define PM_DISCO_CALL_ME_MAYBE_MAX_LEN \
  (2 + PM_DISCO_MAX_ENDPOINTS * PM_DISCO_ENDPOINT_MAX_LEN)
/* The largest message other than STREAM (CALL_ME_MAYBE with every endpoint
 * IPv6): a buffer of this size holds any PING, PONG or CALL_ME_MAYBE. */
#define PM_DISCO_MAX_LEN PM_DISCO_CALL_ME_MAYBE_MAX_LEN
/* STREAM: the type byte, then the SCTP packet (at least one byte). */
#define PM_DISCO_STREAM_HEADER_LEN 1

/* One candidate address in a CALL_ME_MAYBE. */
typedef struct {
  uint8_t             flags; /* PmDiscoEndpointFlags */
  GInetSocketAddress *address;
} PmDiscoEndpoint;

PmDiscoEndpoint *pm_disco_endpoint_new (uint8_t             flags,
                                        GInetSocketAddress *address);
void             pm_disco_endpoint_free (PmDiscoEndpoint *endpoint);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmDiscoEndpoint, pm_disco_endpoint_free)

/* A parsed message. Fields not used by its type are zero / NULL. */
typedef struct {
  PmDiscoType         type;
  uint8_t             tx_id[PM_DISCO_TX_ID_LEN]; /* PING, PONG */
  GInetSocketAddress *seen;                      /* PONG: NULL for family 0 (not over UDP) */
  GPtrArray          *endpoints;                 /* CALL_ME_MAYBE: PmDiscoEndpoint, maybe empty */
  const uint8_t      *stream;                    /* STREAM: the SCTP packet, inside the input */
  size_t              stream_len;
} PmDiscoMessage;

gboolean pm_disco_parse (const uint8_t  *data,
                         size_t          len,
                         PmDiscoMessage *out,
                         GError        **error);
void     pm_disco_message_clear (PmDiscoMessage *message);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PmDiscoMessage, pm_disco_message_clear)

gboolean    pm_disco_address_is_valid (GInetSocketAddress *address);
const char *pm_disco_type_to_string (PmDiscoType type);

/* Writers: each returns the number of bytes written, or 0 (nothing written)
 * when @out_len is too small or the input cannot be encoded. */
size_t pm_disco_write_stream (uint8_t       *out,
                              size_t         out_len,
                              const uint8_t *packet,
                              size_t         packet_len);
size_t pm_disco_write_ping (uint8_t      *out,
                            size_t        out_len,
                            const uint8_t tx_id[PM_DISCO_TX_ID_LEN]);
size_t pm_disco_write_pong (uint8_t            *out,
                            size_t              out_len,
                            const uint8_t       tx_id[PM_DISCO_TX_ID_LEN],
                            GInetSocketAddress *seen);
size_t pm_disco_write_call_me_maybe (uint8_t   *out,
                                     size_t     out_len,
                                     GPtrArray *endpoints);
size_t pm_disco_write (uint8_t              *out,
                       size_t                out_len,
                       const PmDiscoMessage *message);

G_END_DECLS
