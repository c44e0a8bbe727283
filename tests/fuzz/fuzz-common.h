/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Shared by the fuzz targets and gen-corpus: fixed keys, a deterministic
 * random source for libsodium, and the session driver whose input format the
 * seed corpus must follow.
 */

#include <glib.h>
#include <stdint.h>

#include "pm-keypair.h"
#include "pm-session.h"

G_BEGIN_DECLS

/* --- Deterministic randomness -------------------------------------------------
 *
 * Every ephemeral key and receiver index comes from libsodium's randombytes.
 * The fuzz targets replace it with a seeded generator (never do this outside a
 * test), so one input always takes the same path, crashes reproduce, and the
 * corpus can hold frames that authenticate against the session under test.
 * Each PmFuzzRng is one stream; gen-corpus keeps one per simulated device and
 * switches with pm_fuzz_rng_use() before calling into that device.
 */
typedef struct {
  uint64_t state;
} PmFuzzRng;

void pm_fuzz_init (void);
void pm_fuzz_rng_seed (PmFuzzRng *rng,
                       uint64_t   seed);
void pm_fuzz_rng_use (PmFuzzRng *rng);

/* --- Fixed keys ------------------------------------------------------------- */

typedef enum {
  PM_FUZZ_KEY_A,         /* the session under test (fuzz-session) */
  PM_FUZZ_KEY_B,         /* its peer */
  PM_FUZZ_KEY_INITIATOR, /* fuzz-handshake: static keys ... */
  PM_FUZZ_KEY_RESPONDER,
  PM_FUZZ_KEY_INITIATOR_E, /* ... and fixed ephemerals */
  PM_FUZZ_KEY_RESPONDER_E,
} PmFuzzKey;

void pm_fuzz_keypair (PmFuzzKey  which,
                      PmKeypair *keypair);

/* --- fuzz-handshake ----------------------------------------------------------
 *
 * Input: one byte, then the message. Byte % 3 picks the case; a byte >= 0x80
 * gives the reader a payload buffer of only PM_FUZZ_SMALL_PAYLOAD bytes.
 */
typedef enum {
  PM_FUZZ_HS_IK_MSG1, /* IK message 1 to a responder, prologue "pipermesh/1 session" */
  PM_FUZZ_HS_XX_MSG2, /* XX message 2 to an initiator that wrote message 1 */
  PM_FUZZ_HS_XX_MSG3, /* XX message 3 to a responder that read 1 and wrote 2 */
  PM_FUZZ_HS_N_CASES,
} PmFuzzHandshakeCase;

#define PM_FUZZ_IK_PROTOCOL   "Noise_IK_25519_ChaChaPoly_BLAKE2s"
#define PM_FUZZ_IK_PROLOGUE   "pipermesh/1 session"
#define PM_FUZZ_XX_PROTOCOL   "Noise_XX_25519_ChaChaPoly_BLAKE2s"
#define PM_FUZZ_XX_PROLOGUE   "pipermesh/1 fuzz"
#define PM_FUZZ_SMALL_PAYLOAD 8

/* --- fuzz-session -------------------------------------------------------------
 *
 * Input: a flags byte, then records until the input ends:
 *
 *   op (1 byte) | length (2 bytes, little-endian) | length bytes
 *
 * (a length past the end of the input takes what is left). Before each record
 * the clock advances by (op >> 2) sixteenths of a second plus 1 µs, so it
 * always grows. op & 3: 0 or 1 feeds the bytes to pm_session_receive(), 2
 * sends them with pm_session_send(), 3 runs pm_session_tick().
 *
 * The session is device A (PM_FUZZ_KEY_A) with the small limits of
 * pm_fuzz_session_limits(), its random source seeded with PM_FUZZ_SEED_A;
 * flag PM_FUZZ_FLAG_CONNECT makes it initiate before the first record, and
 * PM_FUZZ_FLAG_SWAP_KEYS swaps its static key with its peer's (which decides
 * whose initiation wins when both initiate at once).
 */
#define PM_FUZZ_SEED_A         G_GUINT64_CONSTANT (0x5049504552414141) /* "PIPERAAA" */
#define PM_FUZZ_SEED_B         G_GUINT64_CONSTANT (0x5049504552424242) /* "PIPERBBB" */
#define PM_FUZZ_FLAG_CONNECT   0x01
#define PM_FUZZ_FLAG_SWAP_KEYS 0x02
#define PM_FUZZ_RECORD_HEADER  3
#define PM_FUZZ_START_US       (G_GINT64_CONSTANT (1000) * G_USEC_PER_SEC)
#define PM_FUZZ_TICK_US        (G_USEC_PER_SEC / 16)
#define PM_FUZZ_SEND_QUEUE_MAX 16

typedef enum {
  PM_FUZZ_OP_RECEIVE = 0,
  PM_FUZZ_OP_SEND = 2,
  PM_FUZZ_OP_TICK = 3,
} PmFuzzOp;

void pm_fuzz_session_keys (uint8_t    flags,
                           PmKeypair *local,
                           PmKeypair *peer);
void pm_fuzz_session_limits (PmSessionLimits *limits);

/* One session under test, and what it did. */
typedef struct {
  PmSession *session;
  PmFuzzRng  rng;
  int64_t    now;
  GPtrArray *emitted;   /* GBytes: every datagram it sent, in order */
  unsigned   delivered; /* messages delivered to the application */
  unsigned   accepted;  /* datagrams pm_session_receive() accepted */
  unsigned   refused;   /* ... and refused */
} PmFuzzSession;

void pm_fuzz_session_init (PmFuzzSession *fs,
                           uint8_t        flags);
void pm_fuzz_session_apply (PmFuzzSession *fs,
                            uint8_t        op,
                            const uint8_t *data,
                            size_t         len);
void pm_fuzz_session_run (PmFuzzSession *fs,
                          const uint8_t *input,
                          size_t         len);
void pm_fuzz_session_clear (PmFuzzSession *fs);

G_END_DECLS
