/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pipermesh-bench [--json] [--rounds N] [--seconds S] [--quick] [--wall-clock] [--only TEXT]
 *
 * Measures the cryptographic hot paths of core/ beside the limits they are
 * bound by, all in the same run, so that ratios mean something on a noisy
 * machine:
 *
 *  - X25519: variable-base DH (pm_keypair_dh) and key generation
 *    (pm_keypair_generate: random scalar + base-point multiplication, which is
 *    what an "e" token costs).
 *  - Noise_IK and Noise_XX handshakes (25519/ChaChaPoly/BLAKE2s), both sides in
 *    this process, through PmHandshakeState down to Split(). Their limit is the
 *    rate the X25519 numbers allow for the pattern's X25519 operations, counted
 *    from the pattern's tokens (see count_x25519_ops()).
 *  - Transport: one message is pm_session_send() on A plus pm_session_receive()
 *    on B: framing, counter, seal, parse, replay check, open, delivery. The
 *    sessions use pm_session_limits_default(), so epochs (every 2^16 messages)
 *    and rotations (every 50 epochs) happen as in production.
 *  - Its peers: bare ChaCha20-Poly1305 seal + open of the same plaintext with
 *    the same 16-byte associated data, through OpenSSL EVP with reused contexts
 *    (IV-only re-init per message, as core/pm-cipher-state.c does) and through
 *    libsodium's crypto_aead_chacha20poly1305_ietf_*_detached.
 *
 * Every metric is measured in N rounds of S seconds, interleaved (round 1 of
 * every metric, then round 2, ...) so that a slow spell of the machine hits
 * all of them alike; the median of the rounds is reported, and each ratio both
 * as a ratio of medians and as the median of its per-round ratios. Rounds are
 * timed in the thread's CPU time, so other processes on the machine do not
 * count. Throughput is MB/s of plaintext with MB = 10^6 bytes. Exits 0 unless
 * something in core/ fails. To profile one metric:
 *   perf record -g pipermesh-bench --only handshakes_ik --rounds 3 --seconds 0.5
 */
#define G_LOG_DOMAIN "pipermesh-bench"

#include <json-glib/json-glib.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pm-frame.h"
#include "pm-handshake-state.h"
#include "pm-keypair.h"
#include "pm-noise-pattern-private.h"
#include "pm-session.h"

#define PROTOCOL_IK "Noise_IK_25519_ChaChaPoly_BLAKE2s"
#define PROTOCOL_XX "Noise_XX_25519_ChaChaPoly_BLAKE2s"

#define DEFAULT_ROUNDS  7
#define DEFAULT_SECONDS 0.25
#define QUICK_ROUNDS    3
#define QUICK_SECONDS   0.02
/* Each timed round is preceded by an untimed warm-up of this share of it. */
#define WARMUP_SHARE 0.1
/* The clock is read once per batch; batches are sized to take about this long. */
#define BATCH_SECONDS 0.002
#define AD_LEN        PM_DATA_HEADER_LEN
#define OUTBOX_SLOTS  8
#define TARGET_RATIO  0.9

/* Message sizes: label → plaintext bytes. "65535" is the largest message, a
 * 65535-byte Noise message, i.e. PM_MAX_PLAINTEXT = 65519 bytes of plaintext;
 * the raw AEAD peers use the same plaintext size. */
static const struct {
  const char *label;
  size_t      plaintext;
} sizes[] = {
  { "64", 64 },
  { "1400", 1400 },
  { "65535", PM_MAX_PLAINTEXT },
};
#define N_SIZES G_N_ELEMENTS (sizes)

typedef void (*RunFunc) (gpointer data,
                         uint64_t n);

typedef struct {
  char    *key;   /* JSON member */
  char    *label; /* table row */
  RunFunc  run;
  gpointer data;
  size_t   bytes_per_op; /* 0: ops/s; otherwise MB/s of plaintext */
  GArray  *samples;      /* double, one per round */
  uint64_t batch;        /* ops per clock read, calibrated in round 1 */
  gboolean skip;         /* not selected by --only */
  double   median;       /* NAN when skipped */
} Metric;

G_GNUC_NORETURN static void
die (const char *what,
     GError     *error)
{
  g_printerr ("pipermesh-bench: %s%s%s\n", what, error ? ": " : "", error ? error->message : "");
  exit (1);
}

/* Rounds are timed in this thread's CPU time by default: on a shared 2-core
 * machine the time other processes take from us is not a cost of the code
 * under test. --wall-clock switches to CLOCK_MONOTONIC. */
static clockid_t bench_clock = CLOCK_THREAD_CPUTIME_ID;

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (bench_clock, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Noise's ChaChaPoly nonce: 32 zero bits, then the counter little-endian. */
static void
encode_nonce (uint8_t  iv[12],
              uint64_t n)
{
  memset (iv, 0, 4);
  for (int i = 0; i < 8; i++)
    iv[4 + i] = (uint8_t) (n >> (8 * i));
}

/* --- X25519 ------------------------------------------------------------- */

typedef struct {
  PmKeypair a, b;
  uint8_t   shared[PM_KEY_LEN];
} X25519Ctx;

static void
run_x25519_dh (gpointer data,
               uint64_t n)
{
  X25519Ctx *ctx = data;
  g_autoptr (GError) error = NULL;

  for (uint64_t i = 0; i < n; i++)
    if (!pm_keypair_dh (ctx->a.priv, ctx->b.pub, ctx->shared, &error))
      die ("X25519 failed", error);
}

static void
run_x25519_base (gpointer data,
                 uint64_t n)
{
  X25519Ctx *ctx = data;

  for (uint64_t i = 0; i < n; i++)
    pm_keypair_generate (&ctx->b);
}

/* --- Handshakes ----------------------------------------------------------- */

typedef struct {
  const char *protocol;
  PmKeypair   initiator_s, responder_s;
  unsigned    n_base, n_dh; /* X25519 operations per handshake, both sides */
} HandshakeCtx;

/* X25519 operations of one complete handshake, both sides together, read off
 * the pattern's tokens: each "e" is a key generation (a base-point
 * multiplication) by its writer only, its reader just stores the key; each of
 * "ee", "es", "se", "ss" is one DH on the writer's side and one on the
 * reader's. Pre-message keys are given, not computed.
 *   IK: -> e, es, s, ss  <- e, ee, se   : 2 "e" → 2 base,  4 DH tokens → 8 DH
 *   XX: -> e  <- e, ee, s, es  -> s, se : 2 "e" → 2 base,  3 DH tokens → 6 DH */
static void
count_x25519_ops (const char *protocol,
                  unsigned   *n_base,
                  unsigned   *n_dh)
{
  g_autoptr (GError) error = NULL;
  PmPattern p;

  if (!pm_noise_pattern_parse_protocol (protocol, &p, &error))
    die ("Cannot parse a Noise protocol name", error);
  *n_base = *n_dh = 0;
  for (unsigned m = 0; m < p.n_messages; m++)
    for (unsigned t = 0; t < p.n_tokens[m]; t++)
      switch (p.tokens[m][t])
        {
        case PM_TOKEN_E:
          *n_base += 1;
          break;
        case PM_TOKEN_EE:
        case PM_TOKEN_ES:
        case PM_TOKEN_SE:
        case PM_TOKEN_SS:
          *n_dh += 2;
          break;
        case PM_TOKEN_S:
        case PM_TOKEN_PSK:
        default:
          break;
        }
}

static void
run_handshake (gpointer data,
               uint64_t n)
{
  HandshakeCtx *ctx = data;
  g_autoptr (GError) error = NULL;

  for (uint64_t i = 0; i < n; i++)
    {
      g_autoptr (PmHandshakeState) ini = NULL;
      g_autoptr (PmHandshakeState) res = NULL;
      g_autoptr (PmCipherState) ini_send = NULL;
      g_autoptr (PmCipherState) ini_recv = NULL;
      g_autoptr (PmCipherState) res_send = NULL;
      g_autoptr (PmCipherState) res_recv = NULL;
      uint8_t msg[256], payload[64];
      size_t  len = 0, plen = 0;

      ini = pm_handshake_state_new (ctx->protocol, PM_ROLE_INITIATOR, &error);
      res = pm_handshake_state_new (ctx->protocol, PM_ROLE_RESPONDER, &error);
      if (ini == NULL || res == NULL)
        die ("Cannot create a handshake state", error);
      pm_handshake_state_set_local_static (ini, &ctx->initiator_s);
      pm_handshake_state_set_local_static (res, &ctx->responder_s);
      if (pm_handshake_state_needs_remote_static (ini))
        pm_handshake_state_set_remote_static (ini, ctx->responder_s.pub);
      if (!pm_handshake_state_start (ini, &error) || !pm_handshake_state_start (res, &error))
        die ("Cannot start a handshake", error);

      while (pm_handshake_state_get_action (ini) != PM_HANDSHAKE_SPLIT)
        {
          gboolean          ini_writes = pm_handshake_state_get_action (ini) == PM_HANDSHAKE_WRITE;
          PmHandshakeState *writer = ini_writes ? ini : res;
          PmHandshakeState *reader = ini_writes ? res : ini;

          if (!pm_handshake_state_write_message (writer, NULL, 0, msg, sizeof msg, &len, &error) ||
              !pm_handshake_state_read_message (reader, msg, len, payload, sizeof payload, &plen,
                                                &error))
            die ("Handshake failed", error);
        }
      if (!pm_handshake_state_split (ini, &ini_send, &ini_recv, &error) ||
          !pm_handshake_state_split (res, &res_send, &res_recv, &error))
        die ("Split() failed", error);
      if (memcmp (pm_handshake_state_get_handshake_hash (ini),
                  pm_handshake_state_get_handshake_hash (res), PM_NOISE_HASHLEN) != 0)
        die ("The two sides disagree on the handshake hash", NULL);
    }
}

/* --- Raw AEAD: OpenSSL ---------------------------------------------------- */

typedef struct {
  size_t          size;
  EVP_CIPHER_CTX *enc, *dec;
  EVP_CIPHER     *cipher;
  uint8_t         key[32];
  uint8_t         ad[AD_LEN];
  uint8_t        *in, *ct, *pt;
  uint64_t        nonce;
} OpensslCtx;

static OpensslCtx *
openssl_ctx_new (size_t size)
{
  OpensslCtx *ctx = g_new0 (OpensslCtx, 1);
  uint8_t     iv[12] = { 0 };

  ctx->size = size;
  ctx->in = g_malloc (size);
  ctx->ct = g_malloc (size + PM_NOISE_TAGLEN);
  ctx->pt = g_malloc (size);
  randombytes_buf (ctx->in, size);
  randombytes_buf (ctx->key, sizeof ctx->key);
  randombytes_buf (ctx->ad, sizeof ctx->ad);
  ctx->cipher = EVP_CIPHER_fetch (NULL, "ChaCha20-Poly1305", NULL);
  ctx->enc = EVP_CIPHER_CTX_new ();
  ctx->dec = EVP_CIPHER_CTX_new ();
  /* Keyed once; every message then re-initialises the IV only. */
  if (ctx->cipher == NULL || ctx->enc == NULL || ctx->dec == NULL ||
      EVP_CipherInit_ex (ctx->enc, ctx->cipher, NULL, ctx->key, iv, 1) != 1 ||
      EVP_CipherInit_ex (ctx->dec, ctx->cipher, NULL, ctx->key, iv, 0) != 1)
    die ("libcrypto cannot set up ChaCha20-Poly1305", NULL);
  return ctx;
}

static void
openssl_ctx_free (OpensslCtx *ctx)
{
  EVP_CIPHER_CTX_free (ctx->enc);
  EVP_CIPHER_CTX_free (ctx->dec);
  EVP_CIPHER_free (ctx->cipher);
  g_free (ctx->in);
  g_free (ctx->ct);
  g_free (ctx->pt);
  g_free (ctx);
}

static void
run_raw_openssl (gpointer data,
                 uint64_t n)
{
  OpensslCtx *ctx = data;
  int         len = (int) ctx->size, outl = 0;
  uint8_t     iv[12];

  for (uint64_t i = 0; i < n; i++)
    {
      encode_nonce (iv, ctx->nonce++);
      if (EVP_CipherInit_ex (ctx->enc, NULL, NULL, NULL, iv, 1) != 1 ||
          EVP_CipherUpdate (ctx->enc, NULL, &outl, ctx->ad, AD_LEN) != 1 ||
          EVP_CipherUpdate (ctx->enc, ctx->ct, &outl, ctx->in, len) != 1 ||
          EVP_CipherFinal_ex (ctx->enc, ctx->ct + len, &outl) != 1 ||
          EVP_CIPHER_CTX_ctrl (ctx->enc, EVP_CTRL_AEAD_GET_TAG, PM_NOISE_TAGLEN,
                               ctx->ct + len) != 1)
        die ("OpenSSL seal failed", NULL);
      if (EVP_CipherInit_ex (ctx->dec, NULL, NULL, NULL, iv, 0) != 1 ||
          EVP_CipherUpdate (ctx->dec, NULL, &outl, ctx->ad, AD_LEN) != 1 ||
          EVP_CipherUpdate (ctx->dec, ctx->pt, &outl, ctx->ct, len) != 1 ||
          EVP_CIPHER_CTX_ctrl (ctx->dec, EVP_CTRL_AEAD_SET_TAG, PM_NOISE_TAGLEN,
                               ctx->ct + len) != 1 ||
          EVP_CipherFinal_ex (ctx->dec, ctx->pt + len, &outl) != 1)
        die ("OpenSSL open failed: the tag did not verify", NULL);
    }
}

/* --- Raw AEAD: libsodium -------------------------------------------------- */

typedef struct {
  size_t   size;
  uint8_t  key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
  uint8_t  ad[AD_LEN];
  uint8_t  tag[crypto_aead_chacha20poly1305_ietf_ABYTES];
  uint8_t *in, *ct, *pt;
  uint64_t nonce;
} SodiumCtx;

static SodiumCtx *
sodium_ctx_new (size_t size)
{
  SodiumCtx *ctx = g_new0 (SodiumCtx, 1);

  ctx->size = size;
  ctx->in = g_malloc (size);
  ctx->ct = g_malloc (size);
  ctx->pt = g_malloc (size);
  randombytes_buf (ctx->in, size);
  randombytes_buf (ctx->key, sizeof ctx->key);
  randombytes_buf (ctx->ad, sizeof ctx->ad);
  return ctx;
}

static void
sodium_ctx_free (SodiumCtx *ctx)
{
  g_free (ctx->in);
  g_free (ctx->ct);
  g_free (ctx->pt);
  g_free (ctx);
}

static void
run_raw_sodium (gpointer data,
                uint64_t n)
{
  SodiumCtx *ctx = data;
  uint8_t    iv[12];

  for (uint64_t i = 0; i < n; i++)
    {
      encode_nonce (iv, ctx->nonce++);
      crypto_aead_chacha20poly1305_ietf_encrypt_detached (ctx->ct, ctx->tag, NULL, ctx->in,
                                                          ctx->size, ctx->ad, AD_LEN, NULL, iv,
                                                          ctx->key);
      if (crypto_aead_chacha20poly1305_ietf_decrypt_detached (ctx->pt, NULL, ctx->ct, ctx->size,
                                                              ctx->tag, ctx->ad, AD_LEN, iv,
                                                              ctx->key) != 0)
        die ("libsodium open failed: the tag did not verify", NULL);
    }
}

/* --- Transport: two PmSessions -------------------------------------------- */

/* Datagrams one side has emitted and the other has not received yet. The
 * output callback only copies into here (as a socket send would); the bench
 * loop hands them over, so no session is ever entered from another's callback. */
typedef struct {
  uint8_t *buf[OUTBOX_SLOTS];
  size_t   len[OUTBOX_SLOTS];
  unsigned head, count;
} Outbox;

typedef struct {
  PmSession *session;
  Outbox     outbox;
  uint64_t   delivered_bytes;
} Side;

typedef struct {
  size_t   size;
  Side     a, b; /* A initiates and sends, B receives */
  uint8_t *payload;
  uint64_t sent_bytes;
} TransportCtx;

static void
on_output (const uint8_t *datagram,
           size_t         len,
           gpointer       user_data)
{
  Side    *side = user_data;
  Outbox  *box = &side->outbox;
  unsigned slot;

  if (box->count == OUTBOX_SLOTS)
    die ("A session emitted more datagrams at once than the bench can hold", NULL);
  g_assert (len <= PM_DATA_FRAME_MAX_LEN);
  slot = (box->head + box->count) % OUTBOX_SLOTS;
  if (box->buf[slot] == NULL)
    box->buf[slot] = g_malloc (PM_DATA_FRAME_MAX_LEN);
  memcpy (box->buf[slot], datagram, len);
  box->len[slot] = len;
  box->count++;
}

static void
on_deliver (const uint8_t *data,
            size_t         len,
            gpointer       user_data)
{
  Side *side = user_data;

  side->delivered_bytes += len;
}

/* Hands every waiting datagram to the other side, in order, until both
 * outboxes are empty (a rotation takes a few exchanges). */
static void
pump (TransportCtx *t,
      int64_t       now)
{
  for (;;)
    {
      Side    *from, *to;
      Outbox  *box;
      unsigned slot;
      g_autoptr (GError) error = NULL;

      if (t->a.outbox.count > 0)
        from = &t->a, to = &t->b;
      else if (t->b.outbox.count > 0)
        from = &t->b, to = &t->a;
      else
        return;
      box = &from->outbox;
      slot = box->head;
      box->head = (box->head + 1) % OUTBOX_SLOTS;
      box->count--;
      /* The slot is not reused before @from emits again, which @to cannot cause. */
      if (!pm_session_receive (to->session, box->buf[slot], box->len[slot], now, &error))
        die ("A session refused a datagram", error);
    }
}

static TransportCtx *
transport_ctx_new (size_t size)
{
  TransportCtx *t = g_new0 (TransportCtx, 1);
  g_auto (PmKeypair) sa = { 0 };
  g_auto (PmKeypair) sb = { 0 };
  PmSessionLimits limits;
  int64_t         now = g_get_monotonic_time ();

  t->size = size;
  t->payload = g_malloc (size);
  randombytes_buf (t->payload, size);
  pm_keypair_generate (&sa);
  pm_keypair_generate (&sb);
  pm_session_limits_default (&limits);
  t->a.session = pm_session_new (&sa, sb.pub, &limits);
  t->b.session = pm_session_new (&sb, sa.pub, &limits);
  pm_session_set_callbacks (t->a.session, on_output, on_deliver, &t->a);
  pm_session_set_callbacks (t->b.session, on_output, on_deliver, &t->b);

  pm_session_connect (t->a.session, now);
  pump (t, now);
  if (pm_session_get_state (t->a.session) != PM_SESSION_ESTABLISHED ||
      pm_session_get_state (t->b.session) != PM_SESSION_ESTABLISHED)
    die ("The two sessions did not establish", NULL);
  return t;
}

static void
transport_ctx_free (TransportCtx *t)
{
  pm_session_free (t->a.session);
  pm_session_free (t->b.session);
  for (unsigned i = 0; i < OUTBOX_SLOTS; i++)
    {
      g_free (t->a.outbox.buf[i]);
      g_free (t->b.outbox.buf[i]);
    }
  g_free (t->payload);
  g_free (t);
}

static void
run_transport (gpointer data,
               uint64_t n)
{
  TransportCtx *t = data;
  int64_t       now = g_get_monotonic_time (); /* a caller reads its clock once per wakeup */
  g_autoptr (GError) error = NULL;

  for (uint64_t i = 0; i < n; i++)
    {
      if (!pm_session_send (t->a.session, t->payload, t->size, now, &error))
        die ("pm_session_send() failed", error);
      pump (t, now);
    }
  t->sent_bytes += n * t->size;
}

/* --- Measurement ---------------------------------------------------------- */

static Metric *
metric_new (const char *key,
            const char *label,
            RunFunc     run,
            gpointer    data,
            size_t      bytes_per_op)
{
  Metric *m = g_new0 (Metric, 1);

  m->key = g_strdup (key);
  m->label = g_strdup (label);
  m->run = run;
  m->data = data;
  m->bytes_per_op = bytes_per_op;
  m->samples = g_array_new (FALSE, FALSE, sizeof (double));
  return m;
}

static void
metric_free (Metric *m)
{
  g_free (m->key);
  g_free (m->label);
  g_array_unref (m->samples);
  g_free (m);
}

/* Runs batches of @m until @seconds have passed; returns ops per second. */
static double
time_ops (Metric *m,
          double  seconds)
{
  uint64_t ops = 0;
  double   start = now_seconds (), elapsed;

  do
    {
      m->run (m->data, m->batch);
      ops += m->batch;
      elapsed = now_seconds () - start;
    }
  while (elapsed < seconds);
  return (double) ops / elapsed;
}

/* One round: warm up, then time. The first round also sizes the batches. */
static void
metric_round (Metric *m,
              double  seconds)
{
  double rate;

  if (m->batch == 0)
    {
      double start = now_seconds (), t;

      /* Double the batch until one takes BATCH_SECONDS (this is the warm-up). */
      for (m->batch = 1;; m->batch *= 2)
        {
          double t0 = now_seconds ();

          m->run (m->data, m->batch);
          t = now_seconds ();
          if (t - t0 >= BATCH_SECONDS || t - start >= seconds * WARMUP_SHARE * 4)
            break;
        }
    }
  time_ops (m, seconds * WARMUP_SHARE);
  rate = time_ops (m, seconds);
  if (m->bytes_per_op > 0)
    rate = rate * (double) m->bytes_per_op / 1e6;
  g_array_append_val (m->samples, rate);
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
median (GArray *values)
{
  g_autofree double *v = g_memdup2 (values->data, values->len * sizeof (double));
  unsigned           n = values->len;

  g_assert (n > 0);
  qsort (v, n, sizeof (double), compare_doubles);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
sample_min (GArray *values)
{
  double r = g_array_index (values, double, 0);

  for (unsigned i = 1; i < values->len; i++)
    r = MIN (r, g_array_index (values, double, i));
  return r;
}

static double
sample_max (GArray *values)
{
  double r = g_array_index (values, double, 0);

  for (unsigned i = 1; i < values->len; i++)
    r = MAX (r, g_array_index (values, double, i));
  return r;
}

static Metric *
find_metric (GPtrArray  *metrics,
             const char *key)
{
  for (unsigned i = 0; i < metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (metrics, i);
      if (strcmp (m->key, key) == 0)
        return m;
    }
  g_assert_not_reached ();
}

static double
median_of (GPtrArray  *metrics,
           const char *key)
{
  return find_metric (metrics, key)->median;
}

/* --- Results -------------------------------------------------------------- */

typedef struct {
  char    *key;   /* JSON member */
  char    *label; /* table row */
  double   value;
  double   paired; /* median of the per-round ratios */
  gboolean has_target;
} Ratio;

static void
ratio_free (Ratio *r)
{
  g_free (r->key);
  g_free (r->label);
  g_free (r);
}

static void
add_ratio (GPtrArray *ratios,
           Ratio     *ratio)
{
  /* A ratio of a metric that --only left out is undefined: leave it out too. */
  if (isnan (ratio->value))
    ratio_free (ratio);
  else
    g_ptr_array_add (ratios, ratio);
}

static Ratio *
ratio_new (const char *key,
           const char *label,
           double      value,
           double      paired,
           gboolean    has_target)
{
  Ratio *r = g_new0 (Ratio, 1);

  r->key = g_strdup (key);
  r->label = g_strdup (label);
  r->value = value;
  r->paired = paired;
  r->has_target = has_target;
  return r;
}

/* The limit a handshake rate is held to: the rate at which this machine can do
 * the pattern's key generations and DHs and nothing else. */
static double
handshake_limit (double   base_per_s,
                 double   dh_per_s,
                 unsigned n_base,
                 unsigned n_dh)
{
  return 1.0 / ((double) n_base / base_per_s + (double) n_dh / dh_per_s);
}

static char *
cpu_model (void)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/cpuinfo", &text, NULL, NULL))
    return g_strdup ("unknown");
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (g_str_has_prefix (*l, "model name"))
      {
        const char *colon = strchr (*l, ':');
        if (colon != NULL)
          return g_strstrip (g_strdup (colon + 1));
      }
  return g_strdup ("unknown");
}

static double
round_to (double x,
          double unit)
{
  return unit * (double) (int64_t) (x / unit + 0.5);
}

/* Rounded to what the noise of the machine allows: whole numbers from 100 up
 * (json-glib then prints them short), four decimals below. */
static double
tidy (double value)
{
  return value >= 100 ? round_to (value, 1) : round_to (value, 0.0001);
}

static void
add_double (JsonBuilder *b,
            const char  *key,
            double       value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_double_value (b, tidy (value));
}

static void
add_string (JsonBuilder *b,
            const char  *key,
            const char  *value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_string_value (b, value);
}

static void
add_int (JsonBuilder *b,
         const char  *key,
         int64_t      value)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, value);
}

typedef struct {
  int           rounds;
  double        seconds;
  gboolean      quick;
  GPtrArray    *metrics;
  GPtrArray    *ratios;
  HandshakeCtx *ik, *xx;
  TransportCtx *transport[N_SIZES];
} Results;

static char *
results_to_json (Results *r)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *cpu = cpu_model ();
  HandshakeCtx    *hs[] = { r->ik, r->xx };
  const char      *hs_names[] = { "ik", "xx" };

  json_builder_begin_object (b);

  /* The medians and ratios, flat, for scripts. */
  for (unsigned i = 0; i < r->metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (r->metrics, i);
      if (!m->skip)
        add_double (b, m->key, m->median);
    }
  for (unsigned i = 0; i < r->ratios->len; i++)
    {
      Ratio *q = g_ptr_array_index (r->ratios, i);
      add_double (b, q->key, q->value);
    }

  json_builder_set_member_name (b, "targets");
  json_builder_begin_object (b);
  for (unsigned i = 0; i < r->ratios->len; i++)
    {
      Ratio *q = g_ptr_array_index (r->ratios, i);
      if (!q->has_target)
        continue;
      json_builder_set_member_name (b, q->key);
      json_builder_begin_object (b);
      add_double (b, "min", TARGET_RATIO);
      add_double (b, "value", q->value);
      add_double (b, "paired_median", q->paired);
      json_builder_set_member_name (b, "met");
      json_builder_add_boolean_value (b, q->value >= TARGET_RATIO);
      json_builder_end_object (b);
    }
  json_builder_end_object (b);

  json_builder_set_member_name (b, "rounds_detail");
  json_builder_begin_object (b);
  for (unsigned i = 0; i < r->metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (r->metrics, i);
      if (m->skip)
        continue;
      json_builder_set_member_name (b, m->key);
      json_builder_begin_object (b);
      add_double (b, "median", m->median);
      add_double (b, "min", sample_min (m->samples));
      add_double (b, "max", sample_max (m->samples));
      json_builder_set_member_name (b, "samples");
      json_builder_begin_array (b);
      for (unsigned k = 0; k < m->samples->len; k++)
        json_builder_add_double_value (b, tidy (g_array_index (m->samples, double, k)));
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_end_object (b);

  json_builder_set_member_name (b, "x25519_ops_per_handshake");
  json_builder_begin_object (b);
  for (unsigned i = 0; i < G_N_ELEMENTS (hs); i++)
    {
      json_builder_set_member_name (b, hs_names[i]);
      json_builder_begin_object (b);
      add_string (b, "protocol", hs[i]->protocol);
      add_int (b, "base", hs[i]->n_base);
      add_int (b, "dh", hs[i]->n_dh);
      add_int (b, "total", hs[i]->n_base + hs[i]->n_dh);
      json_builder_end_object (b);
    }
  json_builder_end_object (b);

  json_builder_set_member_name (b, "transport_stats");
  json_builder_begin_object (b);
  for (unsigned i = 0; i < N_SIZES; i++)
    {
      TransportCtx  *t = r->transport[i];
      PmSessionStats sa, sb;

      pm_session_get_stats (t->a.session, &sa);
      pm_session_get_stats (t->b.session, &sb);
      json_builder_set_member_name (b, sizes[i].label);
      json_builder_begin_object (b);
      add_int (b, "plaintext_bytes", (int64_t) t->size);
      add_int (b, "messages", (int64_t) sa.tx_messages);
      add_int (b, "epochs", sa.epochs);
      add_int (b, "rotations", sa.rotations);
      add_int (b, "handshakes", sa.handshakes);
      add_int (b, "rejected", (int64_t) (sa.rejected + sb.rejected));
      json_builder_end_object (b);
    }
  json_builder_end_object (b);

  json_builder_set_member_name (b, "sizes");
  json_builder_begin_object (b);
  for (unsigned i = 0; i < N_SIZES; i++)
    add_int (b, sizes[i].label, (int64_t) sizes[i].plaintext);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "units");
  json_builder_begin_object (b);
  add_string (b, "mbps", "MB/s of plaintext, MB = 10^6 bytes; one message = seal + open, "
                         "with 16 bytes of associated data");
  add_string (b, "per_s", "operations per second; a handshake counts both sides");
  add_string (b, "ratios", "median / median (or / limit); paired_median is the median of the "
                           "per-round ratios");
  json_builder_end_object (b);

  json_builder_set_member_name (b, "environment");
  json_builder_begin_object (b);
  add_string (b, "cpu_model", cpu);
  add_int (b, "cpus", g_get_num_processors ());
  add_string (b, "openssl_version", OpenSSL_version (OPENSSL_VERSION));
  add_string (b, "libsodium_version", sodium_version_string ());
  add_string (b, "pipermesh_version", PACKAGE_VERSION);
  add_string (b, "clock", bench_clock == CLOCK_MONOTONIC ? "monotonic (wall)" : "thread CPU time");
  json_builder_end_object (b);

  add_int (b, "rounds", r->rounds);
  add_double (b, "seconds_per_round", r->seconds);
  json_builder_set_member_name (b, "quick");
  json_builder_add_boolean_value (b, r->quick);

  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

static void
print_table (Results *r)
{
  g_autofree char *cpu = cpu_model ();

  g_print ("PiperMesh benchmark: %d rounds of %.2f s (%s), medians (min .. max)\n", r->rounds,
           r->seconds, bench_clock == CLOCK_MONOTONIC ? "wall clock" : "thread CPU time");
  g_print ("CPU: %s (%d), %s, libsodium %s\n\n", cpu, g_get_num_processors (),
           OpenSSL_version (OPENSSL_VERSION), sodium_version_string ());
  for (unsigned i = 0; i < r->metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (r->metrics, i);
      if (m->skip)
        continue;
      g_print ("  %-42s %12.1f %-5s (%.1f .. %.1f)\n", m->label, m->median,
               m->bytes_per_op > 0 ? "MB/s" : "op/s", sample_min (m->samples),
               sample_max (m->samples));
    }
  g_print ("\n  %-42s %8s %8s %8s\n", "Ratio", "medians", "paired", "target");
  for (unsigned i = 0; i < r->ratios->len; i++)
    {
      Ratio *q = g_ptr_array_index (r->ratios, i);
      if (q->has_target)
        g_print ("  %-42s %8.3f %8.3f   >= %.2f  %s\n", q->label, q->value, q->paired, TARGET_RATIO,
                 q->value >= TARGET_RATIO ? "met" : "MISSED");
      else if (q->value >= 100) /* a limit, in handshakes per second */
        g_print ("  %-42s %8.0f\n", q->label, q->value);
      else
        g_print ("  %-42s %8.3f %8.3f\n", q->label, q->value, q->paired);
    }
  g_print ("\nMB = 10^6 bytes of plaintext; one message = seal + open. X25519 operations per "
           "handshake (both sides): IK %u base + %u DH, XX %u base + %u DH.\n",
           r->ik->n_base, r->ik->n_dh, r->xx->n_base, r->xx->n_dh);
}

/* Median over the rounds of f(round) for a ratio computed round by round. */
static double
paired_median (Results *r,
               double (*f) (Results *, unsigned, gconstpointer),
               gconstpointer data)
{
  g_autoptr (GArray) v = g_array_new (FALSE, FALSE, sizeof (double));

  for (unsigned k = 0; k < (unsigned) r->rounds; k++)
    {
      double x = f (r, k, data);
      g_array_append_val (v, x);
    }
  return median (v);
}

static double
sample_of (Results    *r,
           const char *key,
           unsigned    round)
{
  GArray *samples = find_metric (r->metrics, key)->samples;

  return round < samples->len ? g_array_index (samples, double, round) : NAN;
}

static double
transport_ratio_in_round (Results      *r,
                          unsigned      k,
                          gconstpointer data)
{
  const char      *label = data;
  g_autofree char *t = g_strconcat ("transport_seal_open_mbps_", label, NULL);
  g_autofree char *o = g_strconcat ("raw_aead_openssl_mbps_", label, NULL);
  g_autofree char *s = g_strconcat ("raw_aead_libsodium_mbps_", label, NULL);

  return sample_of (r, t, k) / MAX (sample_of (r, o, k), sample_of (r, s, k));
}

static double
handshake_ratio_in_round (Results      *r,
                          unsigned      k,
                          gconstpointer data)
{
  const HandshakeCtx *hs = data;
  const char         *key = hs == r->ik ? "handshakes_ik_per_s" : "handshakes_xx_per_s";

  return sample_of (r, key, k) / handshake_limit (sample_of (r, "x25519_base_per_s", k),
                                                  sample_of (r, "x25519_per_s", k), hs->n_base,
                                                  hs->n_dh);
}

static void
compute_ratios (Results *r)
{
  HandshakeCtx *hs[] = { r->ik, r->xx };
  const char   *names[] = { "ik", "xx" };
  const char   *upper[] = { "IK", "XX" };
  double        dh = median_of (r->metrics, "x25519_per_s");
  double        base = median_of (r->metrics, "x25519_base_per_s");

  for (unsigned i = 0; i < N_SIZES; i++)
    {
      const char      *l = sizes[i].label;
      g_autofree char *t = g_strconcat ("transport_seal_open_mbps_", l, NULL);
      g_autofree char *o = g_strconcat ("raw_aead_openssl_mbps_", l, NULL);
      g_autofree char *s = g_strconcat ("raw_aead_libsodium_mbps_", l, NULL);
      g_autofree char *key = g_strconcat ("transport_vs_raw_", l, NULL);
      g_autofree char *label = g_strdup_printf ("transport / faster raw AEAD, %s B", l);
      g_autofree char *okey = g_strconcat ("raw_openssl_vs_libsodium_", l, NULL);
      g_autofree char *olabel = g_strdup_printf ("raw OpenSSL / raw libsodium, %s B", l);
      double           faster = MAX (median_of (r->metrics, o), median_of (r->metrics, s));

      add_ratio (r->ratios,
                 ratio_new (key, label, median_of (r->metrics, t) / faster,
                            paired_median (r, transport_ratio_in_round, l),
                            strcmp (l, "1400") == 0));
      add_ratio (r->ratios, ratio_new (okey, olabel,
                                       median_of (r->metrics, o) / median_of (r->metrics, s),
                                       median_of (r->metrics, o) / median_of (r->metrics, s),
                                       FALSE));
    }

  for (unsigned i = 0; i < G_N_ELEMENTS (hs); i++)
    {
      g_autofree char *rate_key = g_strdup_printf ("handshakes_%s_per_s", names[i]);
      g_autofree char *limit_key = g_strdup_printf ("handshakes_%s_limit_per_s", names[i]);
      g_autofree char *ratio_key = g_strdup_printf ("handshakes_%s_vs_x25519_limit", names[i]);
      g_autofree char *uniform_key = g_strdup_printf ("handshakes_%s_vs_dh_only_limit", names[i]);
      g_autofree char *limit_label = g_strdup_printf ("%s limit (%u base + %u DH), handshakes/s",
                                                      upper[i], hs[i]->n_base, hs[i]->n_dh);
      g_autofree char *ratio_label = g_strdup_printf ("%s handshakes / X25519 limit", upper[i]);
      g_autofree char *uniform_label = g_strdup_printf ("%s handshakes / (x25519_per_s / %u)",
                                                        upper[i], hs[i]->n_base + hs[i]->n_dh);
      double           rate = median_of (r->metrics, rate_key);
      double           limit = handshake_limit (base, dh, hs[i]->n_base, hs[i]->n_dh);
      double           uniform = dh / (hs[i]->n_base + hs[i]->n_dh);

      /* The limit is not a ratio, but it belongs beside them in the output. */
      add_ratio (r->ratios, ratio_new (limit_key, limit_label, limit, limit, FALSE));
      add_ratio (r->ratios,
                 ratio_new (ratio_key, ratio_label, rate / limit,
                            paired_median (r, handshake_ratio_in_round, hs[i]), TRUE));
      add_ratio (r->ratios, ratio_new (uniform_key, uniform_label, rate / uniform,
                                       rate / uniform, FALSE));
    }
}

static gboolean opt_json, opt_quick, opt_wall_clock;
static int      opt_rounds;
static double   opt_seconds;
static char    *opt_only;

static const GOptionEntry entries[] = {
  { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "Print one JSON object instead of a table", NULL },
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "Rounds per metric (default 7, quick 3)", "N" },
  { "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &opt_seconds,
    "Seconds per round (default 0.25, quick 0.02)", "S" },
  { "quick", 0, 0, G_OPTION_ARG_NONE, &opt_quick,
    "Few short rounds, for CI: checks the output, not the speed", NULL },
  { "wall-clock", 0, 0, G_OPTION_ARG_NONE, &opt_wall_clock,
    "Time rounds by the monotonic clock instead of this thread's CPU time", NULL },
  { "only", 0, 0, G_OPTION_ARG_STRING, &opt_only,
    "Measure only the metrics whose key contains TEXT (for profiling)", "TEXT" },
  G_OPTION_ENTRY_NULL
};

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = g_option_context_new ("- benchmark PiperMesh's crypto");
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) metrics = g_ptr_array_new_with_free_func ((GDestroyNotify) metric_free);
  g_autoptr (GPtrArray) ratios = g_ptr_array_new_with_free_func ((GDestroyNotify) ratio_free);
  gboolean     selected = FALSE;
  int          rounds;
  double       seconds;
  OpensslCtx  *raw_openssl[N_SIZES];
  SodiumCtx   *raw_sodium[N_SIZES];
  X25519Ctx    x25519 = { 0 };
  HandshakeCtx ik = { .protocol = PROTOCOL_IK }, xx = { .protocol = PROTOCOL_XX };
  Results      r = { 0 };

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("pipermesh-bench: %s\n", error->message);
      return 2;
    }
  rounds = opt_rounds;
  seconds = opt_seconds;
  if (rounds < 0 || seconds < 0 || seconds > 60)
    {
      g_printerr ("pipermesh-bench: --rounds must be positive and --seconds in (0, 60]\n");
      return 2;
    }
  if (rounds == 0)
    rounds = opt_quick ? QUICK_ROUNDS : DEFAULT_ROUNDS;
  if (seconds == 0)
    seconds = opt_quick ? QUICK_SECONDS : DEFAULT_SECONDS;

  if (opt_wall_clock)
    bench_clock = CLOCK_MONOTONIC;
  if (sodium_init () < 0)
    die ("libsodium failed to initialise", NULL);

  pm_keypair_generate (&x25519.a);
  pm_keypair_generate (&x25519.b);
  pm_keypair_generate (&ik.initiator_s);
  pm_keypair_generate (&ik.responder_s);
  xx.initiator_s = ik.initiator_s;
  xx.responder_s = ik.responder_s;
  count_x25519_ops (ik.protocol, &ik.n_base, &ik.n_dh);
  count_x25519_ops (xx.protocol, &xx.n_base, &xx.n_dh);

  g_ptr_array_add (metrics, metric_new ("x25519_per_s", "X25519 DH (pm_keypair_dh)",
                                        run_x25519_dh, &x25519, 0));
  g_ptr_array_add (metrics, metric_new ("x25519_base_per_s", "X25519 keygen (pm_keypair_generate)",
                                        run_x25519_base, &x25519, 0));
  g_ptr_array_add (metrics, metric_new ("handshakes_ik_per_s", "Noise_IK handshakes, both sides",
                                        run_handshake, &ik, 0));
  g_ptr_array_add (metrics, metric_new ("handshakes_xx_per_s", "Noise_XX handshakes, both sides",
                                        run_handshake, &xx, 0));
  for (unsigned i = 0; i < N_SIZES; i++)
    {
      const char      *l = sizes[i].label;
      size_t           n = sizes[i].plaintext;
      g_autofree char *k1 = g_strconcat ("raw_aead_openssl_mbps_", l, NULL);
      g_autofree char *k2 = g_strconcat ("raw_aead_libsodium_mbps_", l, NULL);
      g_autofree char *k3 = g_strconcat ("transport_seal_open_mbps_", l, NULL);
      g_autofree char *l1 = g_strdup_printf ("raw AEAD OpenSSL EVP, %zu B", n);
      g_autofree char *l2 = g_strdup_printf ("raw AEAD libsodium, %zu B", n);
      g_autofree char *l3 = g_strdup_printf ("transport (PmSession A->B), %zu B", n);

      raw_openssl[i] = openssl_ctx_new (n);
      raw_sodium[i] = sodium_ctx_new (n);
      r.transport[i] = transport_ctx_new (n);
      g_ptr_array_add (metrics, metric_new (k1, l1, run_raw_openssl, raw_openssl[i], n));
      g_ptr_array_add (metrics, metric_new (k2, l2, run_raw_sodium, raw_sodium[i], n));
      g_ptr_array_add (metrics, metric_new (k3, l3, run_transport, r.transport[i], n));
    }

  /* Interleaved rounds: round k of every metric, then round k + 1. */
  for (unsigned i = 0; i < metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (metrics, i);
      m->skip = opt_only != NULL && strstr (m->key, opt_only) == NULL;
      selected |= !m->skip;
    }
  if (opt_only != NULL && !selected)
    {
      g_printerr ("pipermesh-bench: no metric key contains '%s'\n", opt_only);
      return 2;
    }
  for (int k = 0; k < rounds; k++)
    for (unsigned i = 0; i < metrics->len; i++)
      {
        Metric *m = g_ptr_array_index (metrics, i);
        if (!m->skip)
          metric_round (m, seconds);
      }
  for (unsigned i = 0; i < metrics->len; i++)
    {
      Metric *m = g_ptr_array_index (metrics, i);
      m->median = m->skip ? NAN : median (m->samples);
    }

  /* Nothing may have been lost on the way. */
  for (unsigned i = 0; i < N_SIZES; i++)
    if (r.transport[i]->b.delivered_bytes != r.transport[i]->sent_bytes)
      die ("The transport lost or duplicated data", NULL);

  r.rounds = rounds;
  r.seconds = seconds;
  r.quick = opt_quick;
  r.metrics = metrics;
  r.ratios = ratios;
  r.ik = &ik;
  r.xx = &xx;
  compute_ratios (&r);

  if (opt_json)
    {
      g_autofree char *text = results_to_json (&r);
      g_print ("%s\n", text);
    }
  else
    print_table (&r);

  for (unsigned i = 0; i < N_SIZES; i++)
    {
      openssl_ctx_free (raw_openssl[i]);
      sodium_ctx_free (raw_sodium[i]);
      transport_ctx_free (r.transport[i]);
    }
  pm_keypair_clear (&x25519.a);
  pm_keypair_clear (&x25519.b);
  pm_keypair_clear (&ik.initiator_s);
  pm_keypair_clear (&ik.responder_s);
  pm_keypair_clear (&xx.initiator_s);
  pm_keypair_clear (&xx.responder_s);
  g_free (opt_only);
  return 0;
}
