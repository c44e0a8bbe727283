/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * The pairing exchange's own messages (docs/PROTOCOL.md §11): the HELLO
 * payload each device puts in its Noise_XX message (the host in message 2,
 * the client in message 3): who it is and which UDP port its mesh uses; and
 * the CONFIRM messages sent after the handshake, encrypted with its keys.
 * Strict, canonical codecs: what the parsers accept the writers write back
 * byte for byte. Fuzzed by tests/fuzz/fuzz-pair-payload.c.
 */

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PM_PAIR_PAYLOAD_VERSION  1
#define PM_PAIR_NAME_MAX         64 /* bytes of UTF-8 */
#define PM_PAIR_HELLO_HEADER_LEN 5  /* version, type, port, name length */
#define PM_PAIR_HELLO_MIN_LEN    (PM_PAIR_HELLO_HEADER_LEN + 1)
#define PM_PAIR_HELLO_MAX_LEN    (PM_PAIR_HELLO_HEADER_LEN + PM_PAIR_NAME_MAX)
#define PM_PAIR_REASON_MAX       256 /* bytes of a REJECT's reason */
#define PM_PAIR_CONFIRM_MAX_LEN  (1 + PM_PAIR_REASON_MAX)

/* The exchange: a WebSocket at this path of the host's HTTPS listener, one
 * Noise_XX handshake whose prologue is PM_PAIR_PROLOGUE followed by the 32
 * raw bytes of the code's token. */
#define PM_PAIR_PATH     "/v1/pair"
#define PM_PAIR_PROTOCOL "Noise_XX_25519_ChaChaPoly_BLAKE2s"
#define PM_PAIR_PROLOGUE "pipermesh/1 pair"
#define PM_PAIR_ERROR_HEADER \
  "PiperMesh-Error" /* on a refused upgrade: the reason, as in the JSON body */

#define PM_PAIR_ERROR (pm_pair_error_quark ())

/* What a pairing can end with, on either side. */
typedef enum {
  PM_PAIR_ERROR_NO_ROUTE,          /* no address of the code could be reached */
  PM_PAIR_ERROR_WRONG_CERTIFICATE, /* the TLS certificate is not the one the code pins */
  PM_PAIR_ERROR_TOKEN_INVALID,     /* a token the host does not know; a retired code */
  PM_PAIR_ERROR_TOKEN_USED,        /* the code was already used (single use) */
  PM_PAIR_ERROR_TOKEN_EXPIRED,     /* the code expired */
  PM_PAIR_ERROR_WRONG_KEY,         /* the host's Noise static key is not the one in the code */
  PM_PAIR_ERROR_REJECTED,          /* the host's user said no (or did not answer) */
  PM_PAIR_ERROR_CONFLICT,          /* another device of that name is already paired */
  PM_PAIR_ERROR_PROTOCOL,          /* a malformed or unexpected message, a failed handshake */
  PM_PAIR_ERROR_CLOSED,            /* the other side went away */
  PM_PAIR_ERROR_TIMED_OUT,         /* the other side did not answer in time */
  PM_PAIR_ERROR_STORE,             /* the paired device could not be stored */
  PM_PAIR_ERROR_LISTEN,            /* the host could not listen (port taken, no LAN address) */
} PmPairError;

GQuark pm_pair_error_quark (void);

/**
 * PmPairLimits:
 * The exchange's timers (core/pm-mesh-limits.h), in milliseconds; start from
 * pm_pair_limits_default() and shorten them in tests.
 */
typedef struct {
  unsigned connect_timeout_ms; /* client: per address, TCP + TLS + upgrade */
  unsigned message_timeout_ms; /* each side: the next message */
  unsigned verify_timeout_ms;  /* host: the user's decision */
  unsigned max_bad_tokens;     /* host: wrong tokens before the code is retired */
} PmPairLimits;

void pm_pair_limits_default (PmPairLimits *limits);

#define PM_PAIR_PAYLOAD_ERROR (pm_pair_payload_error_quark ())

typedef enum {
  PM_PAIR_PAYLOAD_ERROR_TRUNCATED,    /* shorter than its fields need */
  PM_PAIR_PAYLOAD_ERROR_TRAILING,     /* bytes after the last field */
  PM_PAIR_PAYLOAD_ERROR_VERSION,      /* a HELLO version other than 1 */
  PM_PAIR_PAYLOAD_ERROR_BAD_TYPE,     /* an unknown device type code */
  PM_PAIR_PAYLOAD_ERROR_BAD_NAME,     /* empty, too long, not UTF-8, control chars, outer spaces */
  PM_PAIR_PAYLOAD_ERROR_UNKNOWN_KIND, /* a CONFIRM kind other than ACCEPT, REJECT, STORED */
  PM_PAIR_PAYLOAD_ERROR_BAD_REASON,   /* a REJECT reason too long, not UTF-8, control chars */
} PmPairPayloadError;

GQuark pm_pair_payload_error_quark (void);

/* HELLO: one device introducing itself inside the handshake. */
typedef struct {
  char        name[PM_PAIR_NAME_MAX + 1]; /* NUL-terminated */
  const char *device_type;                /* static: "linux", "mac", … */
  uint16_t    mesh_port;                  /* UDP port of its mesh; 0: chosen at run time */
} PmPairHello;

gboolean pm_pair_hello_parse (const uint8_t *data,
                              size_t         len,
                              PmPairHello   *out,
                              GError       **error);
size_t   pm_pair_hello_write (const PmPairHello *hello,
                              uint8_t           *out,
                              size_t             capacity);
gboolean pm_pair_hello_init (PmPairHello *hello,
                             const char  *name,
                             const char  *device_type,
                             uint16_t     mesh_port,
                             GError     **error);

gboolean    pm_pair_name_check (const char *name,
                                size_t      len,
                                GError    **error);
gboolean    pm_pair_device_type_is_valid (const char *device_type);
const char *pm_pair_device_type_default (void);

/* CONFIRM: after the handshake, inside its transport keys. */
typedef enum {
  PM_PAIR_CONFIRM_ACCEPT = 0x01, /* host → client: the host's user accepted */
  PM_PAIR_CONFIRM_REJECT = 0x02, /* host → client: refused, with a reason */
  PM_PAIR_CONFIRM_STORED = 0x03, /* client → host: the client has stored the host */
} PmPairConfirmKind;

typedef struct {
  PmPairConfirmKind kind;
  char              reason[PM_PAIR_REASON_MAX + 1]; /* REJECT only; NUL-terminated, may be empty */
} PmPairConfirm;

gboolean pm_pair_confirm_parse (const uint8_t *data,
                                size_t         len,
                                PmPairConfirm *out,
                                GError       **error);
size_t   pm_pair_confirm_write (PmPairConfirmKind kind,
                                const char       *reason,
                                uint8_t          *out,
                                size_t            capacity);

G_END_DECLS
