/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * STUN (RFC 8489, formerly RFC 5389) message parsing and building: just what a
 * Binding responder and a Binding client need. No allocation: a parsed message
 * is a view into the caller's buffer, and the builders write into a buffer the
 * caller provides. See docs/PROTOCOL.md, "STUN".
 */

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_STUN_ERROR (pm_stun_error_quark ())

typedef enum {
  PM_STUN_ERROR_TRUNCATED,           /* shorter than a header, or than its length says */
  PM_STUN_ERROR_NOT_STUN,            /* first two bits not zero */
  PM_STUN_ERROR_BAD_COOKIE,          /* no magic cookie (and RFC 3489 not allowed) */
  PM_STUN_ERROR_BAD_LENGTH,          /* length not a multiple of 4, or bytes after the message */
  PM_STUN_ERROR_TOO_LARGE,           /* longer than PM_STUN_MAX_MESSAGE_LEN */
  PM_STUN_ERROR_BAD_ATTRIBUTE,       /* an attribute overruns the message or has a bad size */
  PM_STUN_ERROR_TOO_MANY_ATTRIBUTES, /* more than PM_STUN_MAX_ATTRIBUTES */
  PM_STUN_ERROR_BAD_FINGERPRINT,     /* FINGERPRINT does not match the message */
  PM_STUN_ERROR_FINGERPRINT_NOT_LAST,
  PM_STUN_ERROR_UNEXPECTED_MESSAGE, /* client: not a Binding response to our transaction */
  PM_STUN_ERROR_ERROR_RESPONSE,     /* client: the server answered with an error */
  PM_STUN_ERROR_BAD_ADDRESS,        /* client: no usable (XOR-)MAPPED-ADDRESS */
  PM_STUN_ERROR_NO_SPACE,           /* builder: the output buffer is too small */
} PmStunError;

GQuark pm_stun_error_quark (void);

/* --- Wire constants ---------------------------------------------------------- */

#define PM_STUN_HEADER_LEN         20
#define PM_STUN_MAGIC_COOKIE       0x2112A442u
#define PM_STUN_TRANSACTION_ID_LEN 12
#define PM_STUN_FINGERPRINT_XOR    0x5354554Eu
#define PM_STUN_FINGERPRINT_LEN    8 /* attribute header + CRC-32 */

/* Largest message parsed or built: the IPv6 minimum MTU, which RFC 8489 §6.1
 * asks UDP senders to stay under when the path MTU is unknown. */
#define PM_STUN_MAX_MESSAGE_LEN 1280
/* Most attributes one message may carry; a Binding request needs a handful. */
#define PM_STUN_MAX_ATTRIBUTES 32
/* Most attribute types listed in a 420 response's UNKNOWN-ATTRIBUTES. */
#define PM_STUN_MAX_UNKNOWN 8
/* Longest ERROR-CODE reason phrase we write (RFC 8489 allows 763 bytes). */
#define PM_STUN_MAX_REASON_LEN 127

/* Methods (12 bits) and classes (2 bits), combined into the 14-bit type. */
#define PM_STUN_METHOD_BINDING 0x001

typedef enum {
  PM_STUN_CLASS_REQUEST = 0,
  PM_STUN_CLASS_INDICATION = 1,
  PM_STUN_CLASS_SUCCESS = 2,
  PM_STUN_CLASS_ERROR = 3,
} PmStunClass;

#define PM_STUN_BINDING_REQUEST 0x0001
#define PM_STUN_BINDING_SUCCESS 0x0101
#define PM_STUN_BINDING_ERROR   0x0111

/* Attribute types. Below 0x8000 they are comprehension-required. */
#define PM_STUN_ATTR_MAPPED_ADDRESS           0x0001
#define PM_STUN_ATTR_RESPONSE_ADDRESS         0x0002 /* RFC 3489, obsolete */
#define PM_STUN_ATTR_CHANGE_REQUEST           0x0003 /* RFC 5780 / RFC 3489 */
#define PM_STUN_ATTR_SOURCE_ADDRESS           0x0004 /* RFC 3489, obsolete */
#define PM_STUN_ATTR_CHANGED_ADDRESS          0x0005 /* RFC 3489, obsolete */
#define PM_STUN_ATTR_USERNAME                 0x0006
#define PM_STUN_ATTR_MESSAGE_INTEGRITY        0x0008
#define PM_STUN_ATTR_ERROR_CODE               0x0009
#define PM_STUN_ATTR_UNKNOWN_ATTRIBUTES       0x000A
#define PM_STUN_ATTR_REALM                    0x0014
#define PM_STUN_ATTR_NONCE                    0x0015
#define PM_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define PM_STUN_ATTR_PASSWORD_ALGORITHM       0x001D
#define PM_STUN_ATTR_USERHASH                 0x001E
#define PM_STUN_ATTR_XOR_MAPPED_ADDRESS       0x0020
#define PM_STUN_ATTR_PASSWORD_ALGORITHMS      0x8002
#define PM_STUN_ATTR_ALTERNATE_DOMAIN         0x8003
#define PM_STUN_ATTR_SOFTWARE                 0x8022
#define PM_STUN_ATTR_ALTERNATE_SERVER         0x8023
#define PM_STUN_ATTR_FINGERPRINT              0x8028
#define PM_STUN_ATTR_RESPONSE_ORIGIN          0x802B /* RFC 5780 */
#define PM_STUN_ATTR_OTHER_ADDRESS            0x802C /* RFC 5780 */

#define PM_STUN_ATTR_IS_COMPREHENSION_REQUIRED(type) ((type) < 0x8000)

/* CHANGE-REQUEST flags (RFC 5780 §7.2). */
#define PM_STUN_CHANGE_IP   0x4
#define PM_STUN_CHANGE_PORT 0x2

/* Address families in (XOR-)MAPPED-ADDRESS. */
#define PM_STUN_FAMILY_IPV4 0x01
#define PM_STUN_FAMILY_IPV6 0x02

/* Error codes we send. */
#define PM_STUN_CODE_BAD_REQUEST       400
#define PM_STUN_CODE_UNKNOWN_ATTRIBUTE 420

/* --- Parsing ----------------------------------------------------------------- */

typedef enum {
  PM_STUN_PARSE_DEFAULT = 0,
  /* Accept a message without the magic cookie (an RFC 3489 client's); its
   * 128-bit transaction id is then the cookie field + transaction_id. */
  PM_STUN_PARSE_ALLOW_RFC3489 = 1 << 0,
} PmStunParseFlags;

typedef struct {
  uint16_t       type;
  uint16_t       length; /* of the value, without padding */
  const uint8_t *value;  /* inside the parsed buffer */
} PmStunAttribute;

/* The 20-byte header, checked on its own (see pm_stun_parse_header()). */
typedef struct {
  uint16_t    type;
  uint16_t    method;
  PmStunClass klass;
  uint16_t    length;  /* of the attributes */
  uint32_t    cookie;  /* PM_STUN_MAGIC_COOKIE unless rfc3489 */
  gboolean    rfc3489; /* no magic cookie: an RFC 3489 message */
  uint8_t     transaction_id[PM_STUN_TRANSACTION_ID_LEN];
} PmStunHeader;

/* A parsed message: views into the caller's buffer, nothing copied. */
typedef struct {
  PmStunHeader    header;
  const uint8_t  *data; /* the whole message */
  size_t          len;
  PmStunAttribute attributes[PM_STUN_MAX_ATTRIBUTES];
  unsigned        n_attributes;
  /* Comprehension-required attributes this module does not know, before any
   * MESSAGE-INTEGRITY (those after it are ignored, RFC 8489 §14.5), without
   * duplicates, at most PM_STUN_MAX_UNKNOWN of them. */
  uint16_t unknown[PM_STUN_MAX_UNKNOWN];
  unsigned n_unknown;
  gboolean has_fingerprint;       /* present and verified */
  gboolean has_message_integrity; /* present; never verified here */
  uint32_t change_request;        /* CHANGE-REQUEST flags, 0 if absent */
} PmStunMessage;

uint16_t               pm_stun_type (uint16_t    method,
                                     PmStunClass klass);
gboolean               pm_stun_is_stun (const uint8_t *data,
                                        size_t         len);
gboolean               pm_stun_parse_header (const uint8_t   *data,
                                             size_t           len,
                                             PmStunParseFlags flags,
                                             PmStunHeader    *header,
                                             GError         **error);
gboolean               pm_stun_parse (const uint8_t   *data,
                                      size_t           len,
                                      PmStunParseFlags flags,
                                      PmStunMessage   *message,
                                      GError         **error);
const PmStunAttribute *pm_stun_message_find (const PmStunMessage *message,
                                             uint16_t             type);
GInetSocketAddress    *pm_stun_attribute_get_address (const PmStunMessage   *message,
                                                      const PmStunAttribute *attribute,
                                                      GError               **error);

/* --- Building ---------------------------------------------------------------- */

/* Writes a message into a caller buffer. Errors are sticky: after the buffer
 * overflows every call is a no-op and pm_stun_writer_finish() fails. */
typedef struct {
  uint8_t *buf;
  size_t   cap;
  size_t   len;
  gboolean overflow;
} PmStunWriter;

void     pm_stun_writer_init (PmStunWriter       *writer,
                              uint8_t            *buf,
                              size_t              cap,
                              uint16_t            type,
                              const PmStunHeader *ids);
void     pm_stun_writer_add (PmStunWriter *writer,
                             uint16_t      type,
                             const void   *value,
                             size_t        len);
void     pm_stun_writer_add_address (PmStunWriter       *writer,
                                     uint16_t            type,
                                     GInetSocketAddress *address);
void     pm_stun_writer_add_error_code (PmStunWriter *writer,
                                        unsigned      code,
                                        const char   *reason);
void     pm_stun_writer_add_fingerprint (PmStunWriter *writer);
gboolean pm_stun_writer_finish (PmStunWriter *writer,
                                size_t       *len,
                                GError      **error);

gboolean pm_stun_build_binding_request (uint8_t *buf,
                                        size_t   cap,
                                        gboolean fingerprint,
                                        uint8_t  transaction_id[PM_STUN_TRANSACTION_ID_LEN],
                                        size_t  *len,
                                        GError **error);
gboolean pm_stun_build_binding_success (const PmStunHeader *request,
                                        GInetSocketAddress *mapped,
                                        GInetSocketAddress *other_address,
                                        const char         *software,
                                        uint8_t            *buf,
                                        size_t              cap,
                                        size_t             *len,
                                        GError            **error);
gboolean pm_stun_build_binding_error (const PmStunHeader *request,
                                      unsigned            code,
                                      const char         *reason,
                                      const uint16_t     *unknown,
                                      unsigned            n_unknown,
                                      const char         *software,
                                      uint8_t            *buf,
                                      size_t              cap,
                                      size_t             *len,
                                      GError            **error);

/* --- Client side ------------------------------------------------------------- */

GInetSocketAddress *pm_stun_parse_binding_response (const uint8_t *data,
                                                    size_t         len,
                                                    const uint8_t *transaction_id,
                                                    GError       **error);

G_END_DECLS
