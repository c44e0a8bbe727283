/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of the Noise core: handshakes over every pattern we use, what a
 * reader does with tampered, truncated, oversized or hostile messages, PSK and
 * key-setup mistakes, protocol-name parsing, the transport CipherState (Rekey,
 * nonce limits, explicit nonces, failure behaviour) and the pairing
 * verification code. The public vectors live in noise-vectors.c; these tests
 * cover what vectors cannot: failures.
 */
#define G_LOG_DOMAIN "pipermesh-test-noise"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "pm-cipher-state.h"
#include "pm-handshake-state.h"
#include "pm-keypair.h"
#include "pm-noise.h"
#include "pm-verification.h"

#define PROTOCOL(pattern) "Noise_" pattern "_25519_ChaChaPoly_BLAKE2s"

/* Handshake messages in these tests are small; transport ones are checked at
 * the 65535-byte limit separately. */
#define MSG_BUF    1024
#define CANARY     0xA5
#define PEER_OF(r) ((r) == PM_ROLE_INITIATOR ? PM_ROLE_RESPONDER : PM_ROLE_INITIATOR)

static const uint8_t prologue[] = "pipermesh-test-prologue";
static const uint8_t tamper_payload[] = "payload!"; /* 9 bytes with the NUL */

/* Public keys X25519 must refuse: they give an all-zero shared secret
 * whatever our private key is. */
static const char *const small_order_keys[] = {
  "0000000000000000000000000000000000000000000000000000000000000000", /* 0 */
  "0100000000000000000000000000000000000000000000000000000000000000", /* 1 */
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", /* order 8 */
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", /* order 8 */
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p - 1 */
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p */
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p + 1 */
};

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

static void
key_from_hex (const char *hex,
              uint8_t     key[PM_KEY_LEN])
{
  size_t bin_len = 0;

  g_assert_cmpint (sodium_hex2bin (key, PM_KEY_LEN, hex, strlen (hex), NULL, &bin_len, NULL), ==,
                   0);
  g_assert_cmpuint (bin_len, ==, PM_KEY_LEN);
}

static unsigned
count_psks (const char *protocol)
{
  unsigned n = 0;

  for (const char *p = strstr (protocol, "psk"); p != NULL; p = strstr (p + 3, "psk"))
    n++;
  return n;
}

static gboolean
all_bytes_are (const uint8_t *buf,
               size_t         len,
               uint8_t        value)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i] != value)
      return FALSE;
  return TRUE;
}

/* Every key a handshake may need, indexed by PmRole. */
typedef struct {
  PmKeypair static_key[2];
  PmKeypair ephemeral[2]; /* used only by reproducible handshakes */
  uint8_t   psk[2][PM_NOISE_KEYLEN];
} Keys;

static void
keys_generate (Keys *keys)
{
  for (int r = 0; r < 2; r++)
    {
      pm_keypair_generate (&keys->static_key[r]);
      pm_keypair_generate (&keys->ephemeral[r]);
    }
  randombytes_buf (keys->psk[0], PM_NOISE_KEYLEN);
  memcpy (keys->psk[1], keys->psk[0], PM_NOISE_KEYLEN);
}

/* The two sides of one handshake, indexed by PmRole. */
typedef struct {
  PmHandshakeState *hs[2];
} Pair;

static void
pair_clear (Pair *pair)
{
  g_clear_pointer (&pair->hs[PM_ROLE_INITIATOR], pm_handshake_state_free);
  g_clear_pointer (&pair->hs[PM_ROLE_RESPONDER], pm_handshake_state_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Pair, pair_clear)

/* Creates both sides of @protocol with the keys their pattern needs, the
 * protocol's number of PSKs and a shared prologue. With @fixed_ephemerals the
 * ephemeral keys come from @keys too, so every message is reproducible. */
static void
pair_init (Pair       *pair,
           const char *protocol,
           const Keys *keys,
           gboolean    fixed_ephemerals)
{
  unsigned n_psks = count_psks (protocol);

  for (int r = PM_ROLE_INITIATOR; r <= PM_ROLE_RESPONDER; r++)
    {
      g_autoptr (GError) error = NULL;
      PmHandshakeState *hs = pm_handshake_state_new (protocol, (PmRole) r, &error);

      g_assert_no_error (error);
      g_assert_nonnull (hs);
      g_assert_cmpstr (pm_handshake_state_get_protocol_name (hs), ==, protocol);
      g_assert_cmpint (pm_handshake_state_get_role (hs), ==, r);
      if (pm_handshake_state_needs_local_static (hs))
        pm_handshake_state_set_local_static (hs, &keys->static_key[r]);
      if (pm_handshake_state_needs_remote_static (hs))
        pm_handshake_state_set_remote_static (hs, keys->static_key[PEER_OF (r)].pub);
      if (fixed_ephemerals)
        pm_handshake_state_set_local_ephemeral (hs, &keys->ephemeral[r]);
      for (unsigned i = 0; i < n_psks; i++)
        pm_handshake_state_add_psk (hs, keys->psk[r]);
      pm_handshake_state_set_prologue (hs, prologue, sizeof prologue);
      pair->hs[r] = hs;
    }
}

static PmRole
pair_writer (Pair *pair)
{
  if (pm_handshake_state_get_action (pair->hs[PM_ROLE_INITIATOR]) == PM_HANDSHAKE_WRITE)
    {
      g_assert_cmpint (pm_handshake_state_get_action (pair->hs[PM_ROLE_RESPONDER]), ==,
                       PM_HANDSHAKE_READ);
      return PM_ROLE_INITIATOR;
    }
  g_assert_cmpint (pm_handshake_state_get_action (pair->hs[PM_ROLE_RESPONDER]), ==,
                   PM_HANDSHAKE_WRITE);
  g_assert_cmpint (pm_handshake_state_get_action (pair->hs[PM_ROLE_INITIATOR]), ==,
                   PM_HANDSHAKE_READ);
  return PM_ROLE_RESPONDER;
}

static gboolean
pair_is_done (Pair *pair)
{
  return pm_handshake_state_get_action (pair->hs[PM_ROLE_INITIATOR]) == PM_HANDSHAKE_SPLIT &&
         pm_handshake_state_get_action (pair->hs[PM_ROLE_RESPONDER]) == PM_HANDSHAKE_SPLIT;
}

/* Has whichever side's turn it is write the next handshake message with
 * @payload, and returns its role; the message is left in @msg, undelivered. */
static PmRole
pair_write (Pair          *pair,
            const uint8_t *payload,
            size_t         payload_len,
            uint8_t        msg[MSG_BUF],
            size_t        *msg_len)
{
  g_autoptr (GError) error = NULL;
  PmRole writer = pair_writer (pair);

  g_assert_true (pm_handshake_state_write_message (pair->hs[writer], payload, payload_len, msg,
                                                   MSG_BUF, msg_len, &error));
  g_assert_no_error (error);
  return writer;
}

/* Sends handshake message @n from whichever side's turn it is and checks that
 * its payload arrives intact. */
static void
pair_exchange (Pair    *pair,
               unsigned n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *payload = g_strdup_printf ("handshake payload %u", n);
  uint8_t          msg[MSG_BUF], received[MSG_BUF];
  size_t           msg_len = 0, received_len = 0;
  PmRole           writer;

  writer = pair_write (pair, (const uint8_t *) payload, strlen (payload), msg, &msg_len);
  g_assert_true (pm_handshake_state_read_message (pair->hs[PEER_OF (writer)], msg, msg_len,
                                                  received, sizeof received, &received_len,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpmem (received, received_len, payload, strlen (payload));
}

/* Plays the whole handshake; returns the number of messages. */
static unsigned
pair_run (Pair *pair)
{
  unsigned n = 0;

  while (!pair_is_done (pair))
    {
      g_assert_cmpuint (n, <, 4);
      pair_exchange (pair, n++);
    }
  return n;
}

/* Plays messages until a read fails, and returns that error. */
static GError *
pair_run_until_failure (Pair   *pair,
                        PmRole *failed_reader)
{
  for (unsigned n = 0; !pair_is_done (pair); n++)
    {
      GError *error = NULL;
      uint8_t msg[MSG_BUF], received[MSG_BUF];
      size_t  msg_len = 0, received_len = 0;
      PmRole  writer = pair_write (pair, tamper_payload, sizeof tamper_payload, msg, &msg_len);

      if (!pm_handshake_state_read_message (pair->hs[PEER_OF (writer)], msg, msg_len, received,
                                            sizeof received, &received_len, &error))
        {
          g_assert_nonnull (error);
          *failed_reader = PEER_OF (writer);
          return error;
        }
      g_assert_no_error (error);
    }
  return NULL;
}

/* A failed state is spent: every further call says INVALID_STATE. */
static void
assert_spent (PmHandshakeState *hs)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCipherState) send = NULL;
  g_autoptr (PmCipherState) recv = NULL;
  uint8_t msg[MSG_BUF], payload[MSG_BUF];
  size_t  len = 0;

  g_assert_cmpint (pm_handshake_state_get_action (hs), ==, PM_HANDSHAKE_FAILED);
  g_assert_null (pm_handshake_state_get_handshake_hash (hs));

  g_assert_false (pm_handshake_state_write_message (hs, tamper_payload, sizeof tamper_payload, msg,
                                                    sizeof msg, &len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  memset (msg, 0, sizeof msg);
  g_assert_false (pm_handshake_state_read_message (hs, msg, 200, payload, sizeof payload, &len,
                                                   &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_false (pm_handshake_state_split (hs, &send, &recv, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_assert_null (send);
  g_assert_null (recv);
}

/* ------------------------------------------------------------------------- */
/* Fixtures                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct {
  Keys keys;
  Pair pair;
} HandshakeFixture;

static void
handshake_fixture_setup (HandshakeFixture *fx,
                         gconstpointer     data)
{
  keys_generate (&fx->keys);
  memset (&fx->pair, 0, sizeof fx->pair);
}

static void
handshake_fixture_teardown (HandshakeFixture *fx,
                            gconstpointer     data)
{
  pair_clear (&fx->pair);
  sodium_memzero (&fx->keys, sizeof fx->keys);
}

/* Two CipherStates with one random key: @a sends, @b receives. */
typedef struct {
  uint8_t        key[PM_NOISE_KEYLEN];
  PmCipherState *a;
  PmCipherState *b;
} CipherFixture;

static void
cipher_fixture_setup (CipherFixture *fx,
                      gconstpointer  data)
{
  randombytes_buf (fx->key, sizeof fx->key);
  fx->a = pm_cipher_state_new ();
  fx->b = pm_cipher_state_new ();
  pm_cipher_state_initialize_key (fx->a, fx->key);
  pm_cipher_state_initialize_key (fx->b, fx->key);
}

static void
cipher_fixture_teardown (CipherFixture *fx,
                         gconstpointer  data)
{
  g_clear_pointer (&fx->a, pm_cipher_state_free);
  g_clear_pointer (&fx->b, pm_cipher_state_free);
}

/* ------------------------------------------------------------------------- */
/* Key pairs                                                                  */
/* ------------------------------------------------------------------------- */

static void
test_keypair_dh_agrees (void)
{
  g_auto (PmKeypair) a = { 0 };
  g_auto (PmKeypair) b = { 0 };
  g_auto (PmKeypair) a2 = { 0 };
  uint8_t ab[PM_KEY_LEN], ba[PM_KEY_LEN];
  g_autoptr (GError) error = NULL;

  pm_keypair_generate (&a);
  pm_keypair_generate (&b);
  g_assert_false (all_bytes_are (a.pub, PM_KEY_LEN, 0));
  g_assert_true (memcmp (a.pub, b.pub, PM_KEY_LEN) != 0);

  pm_keypair_from_private (&a2, a.priv);
  g_assert_cmpmem (a2.pub, PM_KEY_LEN, a.pub, PM_KEY_LEN);

  g_assert_true (pm_keypair_dh (a.priv, b.pub, ab, &error));
  g_assert_no_error (error);
  g_assert_true (pm_keypair_dh (b.priv, a.pub, ba, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (ab, sizeof ab, ba, sizeof ba);

  pm_keypair_clear (&a2);
  g_assert_true (all_bytes_are (a2.priv, PM_KEY_LEN, 0));
}

static void
test_keypair_dh_rejects_small_order (void)
{
  g_auto (PmKeypair) kp = { 0 };

  pm_keypair_generate (&kp);
  for (size_t i = 0; i < G_N_ELEMENTS (small_order_keys); i++)
    {
      g_autoptr (GError) error = NULL;
      uint8_t pub[PM_KEY_LEN], out[PM_KEY_LEN];

      key_from_hex (small_order_keys[i], pub);
      memset (out, CANARY, sizeof out);
      g_assert_false (pm_keypair_dh (kp.priv, pub, out, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
      g_assert_true (all_bytes_are (out, sizeof out, 0));
    }
}

/* ------------------------------------------------------------------------- */
/* Protocol names                                                             */
/* ------------------------------------------------------------------------- */

static void
test_protocol_supported (void)
{
  static const struct {
    const char *name;
    gboolean    one_way;
  } supported[] = {
    { PROTOCOL ("N"), TRUE },
    { PROTOCOL ("K"), TRUE },
    { PROTOCOL ("X"), TRUE },
    { PROTOCOL ("NN"), FALSE },
    { PROTOCOL ("NK"), FALSE },
    { PROTOCOL ("NX"), FALSE },
    { PROTOCOL ("XN"), FALSE },
    { PROTOCOL ("XK"), FALSE },
    { PROTOCOL ("XX"), FALSE },
    { PROTOCOL ("KN"), FALSE },
    { PROTOCOL ("KK"), FALSE },
    { PROTOCOL ("KX"), FALSE },
    { PROTOCOL ("IN"), FALSE },
    { PROTOCOL ("IK"), FALSE },
    { PROTOCOL ("IX"), FALSE },
    { PROTOCOL ("Npsk0"), TRUE },
    { PROTOCOL ("Xpsk1"), TRUE },
    { PROTOCOL ("NNpsk0"), FALSE },
    { PROTOCOL ("NNpsk2"), FALSE },
    { PROTOCOL ("XXpsk3"), FALSE },
    { PROTOCOL ("IKpsk2"), FALSE },
    { PROTOCOL ("XXpsk0+psk3"), FALSE },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (supported); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmHandshakeState) hs =
        pm_handshake_state_new (supported[i].name, PM_ROLE_INITIATOR, &error);

      g_assert_no_error (error);
      g_assert_nonnull (hs);
      g_assert_cmpint (pm_handshake_state_is_one_way (hs), ==, supported[i].one_way);
    }
}

static void
test_protocol_unsupported (void)
{
  static const char *const unsupported[] = {
    "Noise_XX_448_ChaChaPoly_BLAKE2s",
    "Noise_XX_25519_AESGCM_SHA256",
    "Noise_XX_25519_AESGCM_BLAKE2s",
    "Noise_XX_25519_ChaChaPoly_SHA256",
    "Noise_XX_25519_ChaChaPoly_BLAKE2b",
    "Noise_ZZ_25519_ChaChaPoly_BLAKE2s",
    "Noise_xx_25519_ChaChaPoly_BLAKE2s",
    "Noise__25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk9_25519_ChaChaPoly_BLAKE2s",
    "Noise_NNpsk3_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk-1_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk3psk3_25519_ChaChaPoly_BLAKE2s",
    "Noise_XX+psk3_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk0+_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXpsk99999999999999999999_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXfallback_25519_ChaChaPoly_BLAKE2s",
    "Noise_XXhfs_25519+Kyber1024_ChaChaPoly_BLAKE2s",
    "Noise_XX_25519_ChaChaPoly",
    "Noise_XX_25519_ChaChaPoly_BLAKE2s_",
    "NoiseX_XX_25519_ChaChaPoly_BLAKE2s",
    "Noise_NNpsk0+psk0+psk0+psk0+psk0+psk0+psk0_25519_ChaChaPoly_BLAKE2s", /* name too long */
    "garbage",
    "",
  };

  for (size_t i = 0; i < G_N_ELEMENTS (unsupported); i++)
    {
      g_autoptr (GError) error = NULL;
      PmHandshakeState *hs = pm_handshake_state_new (unsupported[i], PM_ROLE_RESPONDER, &error);

      if (hs != NULL || !g_error_matches (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED))
        {
          g_test_fail_printf ("“%s” was not rejected as UNSUPPORTED", unsupported[i]);
          pm_handshake_state_free (hs);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Handshake round trips                                                      */
/* ------------------------------------------------------------------------- */

static void
assert_transport (PmCipherState *send,
                  PmCipherState *recv,
                  unsigned       n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = g_strdup_printf ("transport message %u", n);
  size_t           len = strlen (text);
  uint8_t          ct[MSG_BUF], pt[MSG_BUF];
  uint64_t         nonce = pm_cipher_state_get_nonce (send);

  g_assert_cmpuint (pm_cipher_state_get_nonce (recv), ==, nonce);
  g_assert_true (pm_cipher_state_encrypt_with_ad (send, NULL, 0, (const uint8_t *) text, len, ct,
                                                  &error));
  g_assert_no_error (error);
  g_assert_true (memcmp (ct, text, len) != 0);
  g_assert_true (pm_cipher_state_decrypt_with_ad (recv, NULL, 0, ct, len + PM_NOISE_TAGLEN, pt,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpmem (pt, len, text, len);
  g_assert_cmpuint (pm_cipher_state_get_nonce (send), ==, nonce + 1);
  g_assert_cmpuint (pm_cipher_state_get_nonce (recv), ==, nonce + 1);

  /* The same message again is a replay: the receiver's nonce moved on. */
  g_assert_false (pm_cipher_state_decrypt_with_ad (recv, NULL, 0, ct, len + PM_NOISE_TAGLEN, pt,
                                                   &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  g_assert_cmpuint (pm_cipher_state_get_nonce (recv), ==, nonce + 1);
}

typedef struct {
  const char *protocol;
  unsigned    n_messages;
} RoundTripCase;

static void
test_handshake_round_trip (HandshakeFixture *fx,
                           gconstpointer     data)
{
  const RoundTripCase *rc = data;
  const char          *protocol = rc->protocol;
  Pair                *pair = &fx->pair;
  PmHandshakeState    *init, *resp;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCipherState) init_send = NULL;
  g_autoptr (PmCipherState) init_recv = NULL;
  g_autoptr (PmCipherState) resp_send = NULL;
  g_autoptr (PmCipherState) resp_recv = NULL;
  unsigned n_messages;
  gboolean one_way;

  pair_init (pair, protocol, &fx->keys, FALSE);
  init = pair->hs[PM_ROLE_INITIATOR];
  resp = pair->hs[PM_ROLE_RESPONDER];
  one_way = pm_handshake_state_is_one_way (init);
  g_assert_null (pm_handshake_state_get_handshake_hash (init));
  g_assert_null (pm_handshake_state_get_handshake_hash (resp));

  n_messages = pair_run (pair);
  g_assert_cmpuint (n_messages, ==, rc->n_messages);
  g_assert_true (one_way == (n_messages == 1));

  g_assert_nonnull (pm_handshake_state_get_handshake_hash (init));
  g_assert_cmpmem (pm_handshake_state_get_handshake_hash (init), PM_NOISE_HASHLEN,
                   pm_handshake_state_get_handshake_hash (resp), PM_NOISE_HASHLEN);

  /* Each side knows the peer's static key exactly when the peer has one. */
  for (int r = PM_ROLE_INITIATOR; r <= PM_ROLE_RESPONDER; r++)
    {
      uint8_t  rs[PM_KEY_LEN];
      gboolean peer_has_static = pm_handshake_state_needs_local_static (pair->hs[PEER_OF (r)]);

      g_assert_cmpint (pm_handshake_state_get_remote_static (pair->hs[r], rs), ==, peer_has_static);
      if (peer_has_static)
        g_assert_cmpmem (rs, sizeof rs, fx->keys.static_key[PEER_OF (r)].pub, PM_KEY_LEN);
    }

  g_assert_true (pm_handshake_state_split (init, &init_send, &init_recv, &error));
  g_assert_no_error (error);
  g_assert_true (pm_handshake_state_split (resp, &resp_send, &resp_recv, &error));
  g_assert_no_error (error);
  g_assert_true (pm_cipher_state_has_key (init_send));
  g_assert_true (pm_cipher_state_has_key (resp_recv));
  {
    /* Split() once only: a second call would reuse the keys at nonce 0. */
    PmCipherState *again_send = NULL, *again_recv = NULL;

    g_assert_false (pm_handshake_state_split (init, &again_send, &again_recv, &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
    g_clear_error (&error);
    g_assert_null (again_send);
  }

  for (unsigned i = 0; i < 4; i++)
    {
      assert_transport (init_send, resp_recv, i);
      if (!one_way)
        assert_transport (resp_send, init_recv, i);
    }

  /* The two directions use different keys: our own message does not open with
   * our receiving CipherState. */
  {
    g_autoptr (PmCipherState) own = pm_cipher_state_copy (init_recv);
    uint8_t ct[64], pt[64];

    pm_cipher_state_set_nonce (own, pm_cipher_state_get_nonce (init_send));
    g_assert_true (pm_cipher_state_encrypt_with_ad (init_send, NULL, 0, tamper_payload,
                                                    sizeof tamper_payload, ct, &error));
    g_assert_false (pm_cipher_state_decrypt_with_ad (own, NULL, 0, ct,
                                                     sizeof tamper_payload + PM_NOISE_TAGLEN, pt,
                                                     &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  }
}

/* Empty payloads passed as NULL, and a NULL payload buffer on the reader. */
static void
test_handshake_null_payloads (HandshakeFixture *fx,
                              gconstpointer     data)
{
  Pair    *pair = &fx->pair;
  unsigned n = 0;

  pair_init (pair, PROTOCOL ("XX"), &fx->keys, FALSE);
  while (!pair_is_done (pair))
    {
      g_autoptr (GError) error = NULL;
      uint8_t msg[MSG_BUF];
      size_t  msg_len = 0, payload_len = 1;
      PmRole  writer = pair_write (pair, NULL, 0, msg, &msg_len);

      g_assert_true (pm_handshake_state_read_message (pair->hs[PEER_OF (writer)], msg, msg_len,
                                                      NULL, 0, &payload_len, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (payload_len, ==, 0);
      g_assert_cmpuint (++n, <=, 3);
    }
}

static void
test_handshake_prologue_mismatch (HandshakeFixture *fx,
                                  gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  PmRole failed = PM_ROLE_INITIATOR;

  pair_init (pair, PROTOCOL ("NN"), &fx->keys, FALSE);
  pm_handshake_state_set_prologue (pair->hs[PM_ROLE_RESPONDER], (const uint8_t *) "other", 5);
  error = pair_run_until_failure (pair, &failed);
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  g_assert_cmpint (failed, ==, PM_ROLE_INITIATOR);
  assert_spent (pair->hs[PM_ROLE_INITIATOR]);
}

static void
test_handshake_out_of_turn (HandshakeFixture *fx,
                            gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCipherState) send = NULL;
  g_autoptr (PmCipherState) recv = NULL;
  uint8_t msg[MSG_BUF], payload[MSG_BUF];
  size_t  len = 0;

  pair_init (pair, PROTOCOL ("XX"), &fx->keys, FALSE);
  memset (msg, 0, sizeof msg);

  g_assert_false (pm_handshake_state_write_message (pair->hs[PM_ROLE_RESPONDER], NULL, 0, msg,
                                                    sizeof msg, &len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_false (pm_handshake_state_read_message (pair->hs[PM_ROLE_INITIATOR], msg, 64, payload,
                                                   sizeof payload, &len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_false (pm_handshake_state_split (pair->hs[PM_ROLE_INITIATOR], &send, &recv, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_assert_null (send);
  g_assert_null (recv);
}

/* IK where the initiator believes in the wrong responder key: the responder
 * cannot decrypt the initiator's static key. */
static void
test_handshake_ik_wrong_remote_static (HandshakeFixture *fx,
                                       gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  g_auto (PmKeypair) wrong = { 0 };
  uint8_t msg[MSG_BUF], payload[MSG_BUF];
  size_t  msg_len = 0, payload_len = 0;
  uint8_t rs[PM_KEY_LEN];

  pair_init (pair, PROTOCOL ("IK"), &fx->keys, FALSE);
  pm_keypair_generate (&wrong);
  pm_handshake_state_set_remote_static (pair->hs[PM_ROLE_INITIATOR], wrong.pub);

  g_assert_cmpint (pair_write (pair, tamper_payload, sizeof tamper_payload, msg, &msg_len), ==,
                   PM_ROLE_INITIATOR);
  g_assert_false (pm_handshake_state_read_message (pair->hs[PM_ROLE_RESPONDER], msg, msg_len,
                                                   payload, sizeof payload, &payload_len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  g_assert_false (pm_handshake_state_get_remote_static (pair->hs[PM_ROLE_RESPONDER], rs));
  assert_spent (pair->hs[PM_ROLE_RESPONDER]);
}

/* ------------------------------------------------------------------------- */
/* Tampered, truncated and oversized handshake messages                       */
/* ------------------------------------------------------------------------- */

typedef struct {
  const char *protocol;
  unsigned    message; /* which handshake message, from 0 */
} TamperCase;

/* A reproducible handshake stopped just before message @tc->message is read:
 * that message, with the tamper payload, is in @msg. Returns the reader. */
static PmRole
tamper_prepare (Pair             *pair,
                const TamperCase *tc,
                const Keys       *keys,
                uint8_t           msg[MSG_BUF],
                size_t           *msg_len)
{
  pair_init (pair, tc->protocol, keys, TRUE);
  for (unsigned i = 0; i < tc->message; i++)
    pair_exchange (pair, i);
  return PEER_OF (pair_write (pair, tamper_payload, sizeof tamper_payload, msg, msg_len));
}

static void
test_tamper_bit_flips (HandshakeFixture *fx,
                       gconstpointer     data)
{
  const TamperCase *tc = data;
  uint8_t           reference[MSG_BUF];
  size_t            reference_len = 0;

  {
    g_auto (Pair) pair = { 0 };
    tamper_prepare (&pair, tc, &fx->keys, reference, &reference_len);
  }

  for (size_t pos = 0; pos < reference_len; pos++)
    for (unsigned bit = 0; bit < 8; bit++)
      {
        g_auto (Pair) pair = { 0 };
        g_autoptr (GError) error = NULL;
        uint8_t msg[MSG_BUF], payload[MSG_BUF];
        size_t  msg_len = 0, payload_len = 0;
        PmRole  reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);

        g_assert_cmpmem (msg, msg_len, reference, reference_len);
        msg[pos] ^= (uint8_t) (1u << bit);
        if (pm_handshake_state_read_message (pair.hs[reader], msg, msg_len, payload,
                                             sizeof payload, &payload_len, &error) ||
            !(g_error_matches (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT) ||
              g_error_matches (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY)))
          {
            g_test_fail_printf ("%s message %u: flipping bit %u of byte %zu was not rejected "
                                "with DECRYPT or BAD_KEY (%s)",
                                tc->protocol, tc->message, bit, pos,
                                error ? error->message : "accepted");
            return;
          }
        g_assert_cmpint (pm_handshake_state_get_action (pair.hs[reader]), ==, PM_HANDSHAKE_FAILED);
      }
}

/* The first message of XX and NN carries no tag, so its reader cannot notice
 * a flipped bit; the handshake must still fail at the next message, read by
 * the original sender. */
static void
test_tamper_unauthenticated_first_message (HandshakeFixture *fx,
                                           gconstpointer     data)
{
  const TamperCase *tc = data;
  uint8_t           reference[MSG_BUF];
  size_t            reference_len = 0;

  g_assert_cmpuint (tc->message, ==, 0);
  {
    g_auto (Pair) pair = { 0 };
    tamper_prepare (&pair, tc, &fx->keys, reference, &reference_len);
  }

  for (size_t pos = 0; pos < reference_len; pos++)
    for (unsigned bit = 0; bit < 8; bit++)
      {
        g_auto (Pair) pair = { 0 };
        g_autoptr (GError) error = NULL;
        uint8_t msg[MSG_BUF], payload[MSG_BUF];
        size_t  msg_len = 0, payload_len = 0;
        PmRole  reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);

        msg[pos] ^= (uint8_t) (1u << bit);
        g_assert_true (pm_handshake_state_read_message (pair.hs[reader], msg, msg_len, payload,
                                                        sizeof payload, &payload_len, &error));
        g_assert_no_error (error);

        /* The reader answers; its answer must not open for the real sender.
         * (A flipped ephemeral of small order would already fail here.) */
        if (!pm_handshake_state_write_message (pair.hs[reader], tamper_payload,
                                               sizeof tamper_payload, msg, sizeof msg, &msg_len,
                                               &error))
          {
            g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
            continue;
          }
        if (pm_handshake_state_read_message (pair.hs[PEER_OF (reader)], msg, msg_len, payload,
                                             sizeof payload, &payload_len, &error) ||
            !g_error_matches (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT))
          {
            g_test_fail_printf ("%s: flipping bit %u of byte %zu of message 0 went unnoticed (%s)",
                                tc->protocol, bit, pos, error ? error->message : "accepted");
            return;
          }
      }

  /* Truncations cut into the ephemeral key are caught by the reader; longer
   * ones are indistinguishable from a shorter unencrypted payload. */
  for (size_t cut = 0; cut < PM_KEY_LEN; cut++)
    {
      g_auto (Pair) pair = { 0 };
      g_autoptr (GError) error = NULL;
      uint8_t msg[MSG_BUF], payload[MSG_BUF];
      size_t  msg_len = 0, payload_len = 0;
      PmRole  reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);

      g_assert_false (pm_handshake_state_read_message (pair.hs[reader], msg, cut, payload,
                                                       sizeof payload, &payload_len, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TRUNCATED);
      assert_spent (pair.hs[reader]);
    }
}

/* Every shorter length is refused: TRUNCATED while the tokens and the payload
 * tag do not fit, DECRYPT once only payload bytes are missing. */
static void
test_tamper_truncations (HandshakeFixture *fx,
                         gconstpointer     data)
{
  const TamperCase *tc = data;
  uint8_t           reference[MSG_BUF];
  size_t            reference_len = 0, min_len;

  {
    g_auto (Pair) pair = { 0 };
    tamper_prepare (&pair, tc, &fx->keys, reference, &reference_len);
  }
  min_len = reference_len - sizeof tamper_payload;

  for (size_t cut = 0; cut < reference_len; cut++)
    {
      g_auto (Pair) pair = { 0 };
      g_autoptr (GError) error = NULL;
      uint8_t msg[MSG_BUF], payload[MSG_BUF];
      size_t  msg_len = 0, payload_len = 0;
      PmRole  reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);
      int     expected = cut < min_len ? PM_NOISE_ERROR_TRUNCATED : PM_NOISE_ERROR_DECRYPT;

      if (pm_handshake_state_read_message (pair.hs[reader], msg, cut, payload, sizeof payload,
                                           &payload_len, &error) ||
          !g_error_matches (error, PM_NOISE_ERROR, expected))
        {
          g_test_fail_printf ("%s message %u cut to %zu of %zu bytes: expected error %d, got %s",
                              tc->protocol, tc->message, cut, reference_len, expected,
                              error ? error->message : "success");
          return;
        }
      g_assert_cmpint (pm_handshake_state_get_action (pair.hs[reader]), ==, PM_HANDSHAKE_FAILED);
    }
}

static void
test_tamper_oversized (HandshakeFixture *fx,
                       gconstpointer     data)
{
  const TamperCase *tc = data;
  g_auto (Pair) pair = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *big = g_malloc0 (PM_NOISE_MAX_MESSAGE + 1);
  g_autofree uint8_t *payload = g_malloc0 (PM_NOISE_MAX_MESSAGE + 1);
  uint8_t             msg[MSG_BUF];
  size_t              msg_len = 0, payload_len = 0;
  PmRole              reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);

  /* The payload buffer could hold it all: the refusal is about the message. */
  memcpy (big, msg, msg_len);
  g_assert_false (pm_handshake_state_read_message (pair.hs[reader], big, PM_NOISE_MAX_MESSAGE + 1,
                                                   payload, PM_NOISE_MAX_MESSAGE + 1, &payload_len,
                                                   &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
  assert_spent (pair.hs[reader]);
}

/* ------------------------------------------------------------------------- */
/* Small-order keys inside handshakes                                         */
/* ------------------------------------------------------------------------- */

/* NN message 1 is "e" in the clear: a small-order e is read without complaint,
 * and the responder's ee in message 2 must then refuse it. */
static void
test_small_order_nn_initiator_ephemeral (HandshakeFixture *fx,
                                         gconstpointer     data)
{
  Pair             *pair = &fx->pair;
  PmHandshakeState *resp;
  uint8_t           msg[MSG_BUF], payload[MSG_BUF];
  size_t            payload_len = 0, len = 0;

  pair_init (pair, PROTOCOL ("NN"), &fx->keys, FALSE);
  resp = pair->hs[PM_ROLE_RESPONDER];

  key_from_hex (data, msg);
  memcpy (msg + PM_KEY_LEN, "hi", 2);
  {
    g_autoptr (GError) error = NULL;

    g_assert_true (pm_handshake_state_read_message (resp, msg, PM_KEY_LEN + 2, payload,
                                                    sizeof payload, &payload_len, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (payload, payload_len, "hi", 2);
  }
  {
    g_autoptr (GError) error = NULL;

    memset (msg, CANARY, sizeof msg);
    g_assert_false (pm_handshake_state_write_message (resp, tamper_payload, sizeof tamper_payload,
                                                      msg, sizeof msg, &len, &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
    /* Nothing of the half-written message is left behind, nothing past it touched. */
    g_assert_true (all_bytes_are (msg, PM_KEY_LEN, 0));
    g_assert_true (all_bytes_are (msg + PM_KEY_LEN, sizeof msg - PM_KEY_LEN, CANARY));
  }
  assert_spent (resp);
}

/* And the other way: a small-order e from the responder in NN message 2. */
static void
test_small_order_nn_responder_ephemeral (HandshakeFixture *fx,
                                         gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  uint8_t msg[MSG_BUF], payload[MSG_BUF];
  size_t  msg_len = 0, payload_len = 0;

  pair_init (pair, PROTOCOL ("NN"), &fx->keys, FALSE);
  pair_write (pair, NULL, 0, msg, &msg_len);

  key_from_hex (data, msg);
  memset (msg + PM_KEY_LEN, 0, PM_NOISE_TAGLEN);
  g_assert_false (pm_handshake_state_read_message (pair->hs[PM_ROLE_INITIATOR], msg,
                                                   PM_KEY_LEN + PM_NOISE_TAGLEN, payload,
                                                   sizeof payload, &payload_len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
  assert_spent (pair->hs[PM_ROLE_INITIATOR]);
}

/* IK message 1: e then es, so the responder refuses at once. */
static void
test_small_order_ik_ephemeral (HandshakeFixture *fx,
                               gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  uint8_t msg[MSG_BUF], payload[MSG_BUF];
  size_t  msg_len = 0, payload_len = 0;

  pair_init (pair, PROTOCOL ("IK"), &fx->keys, FALSE);
  pair_write (pair, tamper_payload, sizeof tamper_payload, msg, &msg_len);
  key_from_hex (data, msg);
  g_assert_false (pm_handshake_state_read_message (pair->hs[PM_ROLE_RESPONDER], msg, msg_len,
                                                   payload, sizeof payload, &payload_len, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
  assert_spent (pair->hs[PM_ROLE_RESPONDER]);
}

/* XX with a responder whose (authenticated, encrypted) static key is of small
 * order: the initiator's es must refuse it. */
static void
test_small_order_xx_static (HandshakeFixture *fx,
                            gconstpointer     data)
{
  Pair *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  PmRole failed = PM_ROLE_RESPONDER;

  key_from_hex (data, fx->keys.static_key[PM_ROLE_RESPONDER].pub);
  pair_init (pair, PROTOCOL ("XX"), &fx->keys, FALSE);
  error = pair_run_until_failure (pair, &failed);
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_BAD_KEY);
  g_assert_cmpint (failed, ==, PM_ROLE_INITIATOR);
  assert_spent (pair->hs[PM_ROLE_INITIATOR]);
}

/* ------------------------------------------------------------------------- */
/* PSKs and key setup                                                         */
/* ------------------------------------------------------------------------- */

static void
test_psk_mismatch (HandshakeFixture *fx,
                   gconstpointer     data)
{
  const TamperCase *tc = data;
  Pair             *pair = &fx->pair;
  g_autoptr (GError) error = NULL;
  PmRole   failed = PM_ROLE_INITIATOR;
  unsigned reached = 0;

  fx->keys.psk[PM_ROLE_RESPONDER][7] ^= 0x01;
  pair_init (pair, tc->protocol, &fx->keys, FALSE);
  for (; !pair_is_done (pair) && reached < tc->message; reached++)
    pair_exchange (pair, reached);
  g_assert_cmpuint (reached, ==, tc->message);

  error = pair_run_until_failure (pair, &failed);
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  assert_spent (pair->hs[failed]);
}

typedef struct {
  const char *protocol;
  PmRole      role;
  unsigned    n_psks;
} PskCountCase;

static void
test_psk_wrong_count (void)
{
  static const PskCountCase cases[] = {
    { PROTOCOL ("XXpsk3"), PM_ROLE_INITIATOR, 0 },
    { PROTOCOL ("XXpsk3"), PM_ROLE_RESPONDER, 2 },
    { PROTOCOL ("NN"), PM_ROLE_INITIATOR, 1 },
    { PROTOCOL ("XXpsk0+psk3"), PM_ROLE_RESPONDER, 1 },
    { PROTOCOL ("IKpsk2"), PM_ROLE_RESPONDER, 0 },
  };
  uint8_t psk[PM_NOISE_KEYLEN];
  g_auto (PmKeypair) s = { 0 };
  g_auto (PmKeypair) rs = { 0 };

  randombytes_buf (psk, sizeof psk);
  pm_keypair_generate (&s);
  pm_keypair_generate (&rs);

  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int via_write = 0; via_write < 2; via_write++)
      {
        g_autoptr (GError) error = NULL;
        g_autoptr (PmHandshakeState) hs =
          pm_handshake_state_new (cases[i].protocol, cases[i].role, &error);
        uint8_t  msg[MSG_BUF] = { 0 };
        size_t   len = 0;
        gboolean ok;

        g_assert_no_error (error);
        pm_handshake_state_set_local_static (hs, &s);
        pm_handshake_state_set_remote_static (hs, rs.pub);
        for (unsigned k = 0; k < cases[i].n_psks; k++)
          pm_handshake_state_add_psk (hs, psk);

        /* The count is checked before any message, whoever moves first. */
        if (via_write && cases[i].role == PM_ROLE_INITIATOR)
          ok = pm_handshake_state_write_message (hs, NULL, 0, msg, sizeof msg, &len, &error);
        else if (via_write)
          ok = pm_handshake_state_read_message (hs, msg, 0, msg, sizeof msg, &len, &error);
        else
          ok = pm_handshake_state_start (hs, &error);
        g_assert_false (ok);
        g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
        assert_spent (hs);
      }
}

typedef struct {
  const char *protocol;
  PmRole      role;
  gboolean    needs_local_static;
  gboolean    needs_remote_static;
} KeyNeedsCase;

static const KeyNeedsCase key_needs[] = {
  { PROTOCOL ("NN"), PM_ROLE_INITIATOR, FALSE, FALSE },
  { PROTOCOL ("NN"), PM_ROLE_RESPONDER, FALSE, FALSE },
  { PROTOCOL ("XX"), PM_ROLE_INITIATOR, TRUE, FALSE },
  { PROTOCOL ("XX"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("IK"), PM_ROLE_INITIATOR, TRUE, TRUE },
  { PROTOCOL ("IK"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("NK"), PM_ROLE_INITIATOR, FALSE, TRUE },
  { PROTOCOL ("NK"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("KK"), PM_ROLE_INITIATOR, TRUE, TRUE },
  { PROTOCOL ("KK"), PM_ROLE_RESPONDER, TRUE, TRUE },
  { PROTOCOL ("XK"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("KN"), PM_ROLE_RESPONDER, FALSE, TRUE },
  { PROTOCOL ("NX"), PM_ROLE_INITIATOR, FALSE, FALSE },
  { PROTOCOL ("NX"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("N"), PM_ROLE_INITIATOR, FALSE, TRUE },
  { PROTOCOL ("N"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("K"), PM_ROLE_INITIATOR, TRUE, TRUE },
  { PROTOCOL ("K"), PM_ROLE_RESPONDER, TRUE, TRUE },
  { PROTOCOL ("X"), PM_ROLE_INITIATOR, TRUE, TRUE },
  { PROTOCOL ("X"), PM_ROLE_RESPONDER, TRUE, FALSE },
  { PROTOCOL ("XXpsk3"), PM_ROLE_INITIATOR, TRUE, FALSE },
};

static void
test_key_needs (void)
{
  for (size_t i = 0; i < G_N_ELEMENTS (key_needs); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmHandshakeState) hs =
        pm_handshake_state_new (key_needs[i].protocol, key_needs[i].role, &error);

      g_assert_no_error (error);
      if (pm_handshake_state_needs_local_static (hs) != key_needs[i].needs_local_static ||
          pm_handshake_state_needs_remote_static (hs) != key_needs[i].needs_remote_static)
        g_test_fail_printf ("%s, role %d: wrong idea of which static keys are needed",
                            key_needs[i].protocol, key_needs[i].role);
    }
}

/* Leaving out any key the pattern needs makes start() fail, and the state is spent. */
static void
test_missing_keys (void)
{
  g_auto (PmKeypair) s = { 0 };
  g_auto (PmKeypair) rs = { 0 };

  pm_keypair_generate (&s);
  pm_keypair_generate (&rs);

  for (size_t i = 0; i < G_N_ELEMENTS (key_needs); i++)
    for (int omit = 0; omit < 2; omit++)
      {
        const KeyNeedsCase *kc = &key_needs[i];
        g_autoptr (GError) error = NULL;
        g_autoptr (PmHandshakeState) hs = NULL;
        gboolean set_local = kc->needs_local_static && omit != 0;
        gboolean set_remote = kc->needs_remote_static && omit != 1;

        if ((omit == 0 && !kc->needs_local_static) || (omit == 1 && !kc->needs_remote_static))
          continue;

        hs = pm_handshake_state_new (kc->protocol, kc->role, &error);
        g_assert_no_error (error);
        if (set_local)
          pm_handshake_state_set_local_static (hs, &s);
        if (set_remote)
          pm_handshake_state_set_remote_static (hs, rs.pub);
        for (unsigned k = 0; k < count_psks (kc->protocol); k++)
          pm_handshake_state_add_psk (hs, rs.pub);

        if (pm_handshake_state_start (hs, &error) ||
            !g_error_matches (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE))
          {
            g_test_fail_printf ("%s, role %d, without its %s static key: start() did not fail",
                                kc->protocol, kc->role, omit == 0 ? "own" : "peer's");
            continue;
          }
        assert_spent (hs);
      }
}

/* ------------------------------------------------------------------------- */
/* Buffer limits                                                              */
/* ------------------------------------------------------------------------- */

/* Every output capacity shorter than the message fails with TOO_LARGE and
 * writes nothing past the capacity. */
static void
test_limits_write_capacity (HandshakeFixture *fx,
                            gconstpointer     data)
{
  const TamperCase *tc = data;
  uint8_t           reference[MSG_BUF];
  size_t            reference_len = 0;

  {
    g_auto (Pair) pair = { 0 };
    tamper_prepare (&pair, tc, &fx->keys, reference, &reference_len);
  }

  for (size_t capacity = 0; capacity < reference_len; capacity++)
    {
      g_auto (Pair) pair = { 0 };
      g_autoptr (GError) error = NULL;
      uint8_t msg[MSG_BUF];
      size_t  msg_len = 12345;
      PmRole  writer;

      pair_init (&pair, tc->protocol, &fx->keys, TRUE);
      for (unsigned i = 0; i < tc->message; i++)
        pair_exchange (&pair, i);
      writer = pair_writer (&pair);
      memset (msg, CANARY, sizeof msg);
      g_assert_false (pm_handshake_state_write_message (pair.hs[writer], tamper_payload,
                                                        sizeof tamper_payload, msg, capacity,
                                                        &msg_len, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
      g_assert_true (all_bytes_are (msg + capacity, sizeof msg - capacity, CANARY));
      g_assert_cmpuint (msg_len, ==, 12345);
      /* No half-written message is left inside the capacity either: what was
       * written is wiped, the rest untouched. */
      for (size_t i = 0; i < capacity; i++)
        g_assert_true (msg[i] == 0 || msg[i] == CANARY);
      assert_spent (pair.hs[writer]);
    }
}

/* Every payload capacity shorter than the payload fails with TOO_LARGE and
 * writes nothing past it. */
static void
test_limits_read_capacity (HandshakeFixture *fx,
                           gconstpointer     data)
{
  const TamperCase *tc = data;

  for (size_t capacity = 0; capacity < sizeof tamper_payload; capacity++)
    {
      g_auto (Pair) pair = { 0 };
      g_autoptr (GError) error = NULL;
      uint8_t msg[MSG_BUF], payload[MSG_BUF];
      size_t  msg_len = 0, payload_len = 12345;
      PmRole  reader = tamper_prepare (&pair, tc, &fx->keys, msg, &msg_len);

      memset (payload, CANARY, sizeof payload);
      g_assert_false (pm_handshake_state_read_message (pair.hs[reader], msg, msg_len, payload,
                                                       capacity, &payload_len, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
      g_assert_true (all_bytes_are (payload + capacity, sizeof payload - capacity, CANARY));
      g_assert_cmpuint (payload_len, ==, 12345);
      assert_spent (pair.hs[reader]);
    }
}

/* A handshake message may be exactly 65535 bytes, never more, whether its
 * payload is in the clear (NN message 1) or encrypted (NN message 2). */
static void
test_limits_max_message (HandshakeFixture *fx,
                         gconstpointer     data)
{
  const size_t        buf_len = PM_NOISE_MAX_MESSAGE + 100;
  g_autofree uint8_t *payload = g_malloc (buf_len);
  g_autofree uint8_t *msg = g_malloc (buf_len);
  g_autofree uint8_t *received = g_malloc (buf_len);

  randombytes_buf (payload, buf_len);
  for (unsigned m = 0; m < 2; m++)
    {
      size_t max_payload = PM_NOISE_MAX_MESSAGE - PM_KEY_LEN - (m == 0 ? 0 : PM_NOISE_TAGLEN);

      /* One byte too many, with a buffer that would hold it. */
      {
        g_auto (Pair) pair = { 0 };
        g_autoptr (GError) error = NULL;
        size_t msg_len = 0;
        PmRole writer;

        pair_init (&pair, PROTOCOL ("NN"), &fx->keys, FALSE);
        if (m == 1)
          pair_exchange (&pair, 0);
        writer = pair_writer (&pair);
        g_assert_false (pm_handshake_state_write_message (pair.hs[writer], payload,
                                                          max_payload + 1, msg, buf_len, &msg_len,
                                                          &error));
        g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
      }

      /* Exactly at the limit. */
      {
        g_auto (Pair) pair = { 0 };
        g_autoptr (GError) error = NULL;
        size_t msg_len = 0, received_len = 0;
        PmRole writer;

        pair_init (&pair, PROTOCOL ("NN"), &fx->keys, FALSE);
        if (m == 1)
          pair_exchange (&pair, 0);
        writer = pair_writer (&pair);
        g_assert_true (pm_handshake_state_write_message (pair.hs[writer], payload, max_payload,
                                                         msg, buf_len, &msg_len, &error));
        g_assert_no_error (error);
        g_assert_cmpuint (msg_len, ==, PM_NOISE_MAX_MESSAGE);
        g_assert_true (pm_handshake_state_read_message (pair.hs[PEER_OF (writer)], msg, msg_len,
                                                        received, max_payload, &received_len,
                                                        &error));
        g_assert_no_error (error);
        g_assert_cmpmem (received, received_len, payload, max_payload);
      }
    }
}

/* A payload length near SIZE_MAX must not wrap the size arithmetic into a
 * "fits" verdict (the payload pointer here has 16 readable bytes). */
static void
test_limits_absurd_payload_len (HandshakeFixture *fx,
                                gconstpointer     data)
{
  static const size_t lengths[] = { SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 31, SIZE_MAX - 47,
                                    (size_t) PM_NOISE_MAX_MESSAGE + 1 };
  uint8_t             payload[16] = { 0 };

  for (unsigned m = 0; m < 2; m++)
    for (size_t i = 0; i < G_N_ELEMENTS (lengths); i++)
      {
        g_auto (Pair) pair = { 0 };
        g_autoptr (GError) error = NULL;
        uint8_t msg[MSG_BUF];
        size_t  msg_len = 0;
        PmRole  writer;

        pair_init (&pair, PROTOCOL ("NN"), &fx->keys, FALSE);
        if (m == 1)
          pair_exchange (&pair, 0);
        writer = pair_writer (&pair);
        g_assert_false (pm_handshake_state_write_message (pair.hs[writer], payload, lengths[i],
                                                          msg, sizeof msg, &msg_len, &error));
        g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
      }
}

/* ------------------------------------------------------------------------- */
/* CipherState                                                                */
/* ------------------------------------------------------------------------- */

/* ENCRYPT(k, n, ad, p) computed by libsodium, as an independent reference. */
static void
reference_encrypt (const uint8_t  key[PM_NOISE_KEYLEN],
                   uint64_t       n,
                   const uint8_t *ad,
                   size_t         ad_len,
                   const uint8_t *pt,
                   size_t         len,
                   uint8_t       *out)
{
  uint8_t            iv[crypto_aead_chacha20poly1305_IETF_NPUBBYTES] = { 0 };
  unsigned long long out_len = 0;

  for (int i = 0; i < 8; i++)
    iv[4 + i] = (uint8_t) (n >> (8 * i));
  crypto_aead_chacha20poly1305_ietf_encrypt (out, &out_len, pt, len, ad, ad_len, NULL, iv, key);
  g_assert_cmpuint (out_len, ==, len + PM_NOISE_TAGLEN);
}

static void
test_cipher_matches_reference (CipherFixture *fx,
                               gconstpointer  data)
{
  static const uint8_t ad[] = "associated data";
  uint8_t              pt[300], ct[300 + PM_NOISE_TAGLEN], expected[300 + PM_NOISE_TAGLEN], out[300];
  g_autoptr (GError) error = NULL;

  randombytes_buf (pt, sizeof pt);
  for (uint64_t n = 0; n < 5; n++)
    {
      size_t len = (size_t) n * 70; /* includes the empty message */

      g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, ad, sizeof ad, pt, len, ct, &error));
      g_assert_no_error (error);
      reference_encrypt (fx->key, n, ad, sizeof ad, pt, len, expected);
      g_assert_cmpmem (ct, len + PM_NOISE_TAGLEN, expected, len + PM_NOISE_TAGLEN);

      g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, ad, sizeof ad, ct,
                                                      len + PM_NOISE_TAGLEN, out, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (out, len, pt, len);
    }
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 5);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, 5);

  /* Different associated data does not authenticate. */
  g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, ad, sizeof ad, pt, 10, ct, &error));
  g_assert_false (pm_cipher_state_decrypt_with_ad (fx->b, ad, sizeof ad - 1, ct,
                                                   10 + PM_NOISE_TAGLEN, out, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
}

/* Without a key, EncryptWithAd and DecryptWithAd are plain copies. */
static void
test_cipher_empty_key (void)
{
  g_autoptr (PmCipherState) cs = pm_cipher_state_new ();
  g_autoptr (GError) error = NULL;
  uint8_t out[8];

  g_assert_false (pm_cipher_state_has_key (cs));
  g_assert_true (pm_cipher_state_encrypt_with_ad (cs, NULL, 0, tamper_payload, 8, out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, 8, tamper_payload, 8);
  g_assert_true (pm_cipher_state_decrypt_with_ad (cs, NULL, 0, tamper_payload, 8, out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, 8, tamper_payload, 8);
  g_assert_cmpuint (pm_cipher_state_get_nonce (cs), ==, 0);
}

/* A copy has the same key and nonce, and then lives its own life. */
static void
test_cipher_copy (CipherFixture *fx,
                  gconstpointer  data)
{
  g_autoptr (PmCipherState) empty = pm_cipher_state_new ();
  g_autoptr (PmCipherState) empty_copy = pm_cipher_state_copy (empty);
  g_autoptr (PmCipherState) copy = NULL;
  g_autoptr (GError) error = NULL;
  uint8_t ct[64], expected[64], out[64];

  g_assert_false (pm_cipher_state_has_key (empty_copy));

  pm_cipher_state_set_nonce (fx->a, 41);
  copy = pm_cipher_state_copy (fx->a);
  g_assert_true (pm_cipher_state_has_key (copy));
  g_assert_cmpuint (pm_cipher_state_get_nonce (copy), ==, 41);

  g_assert_true (pm_cipher_state_encrypt_with_ad (copy, NULL, 0, tamper_payload, 8, ct, &error));
  g_assert_no_error (error);
  reference_encrypt (fx->key, 41, NULL, 0, tamper_payload, 8, expected);
  g_assert_cmpmem (ct, 8 + PM_NOISE_TAGLEN, expected, 8 + PM_NOISE_TAGLEN);
  g_assert_cmpuint (pm_cipher_state_get_nonce (copy), ==, 42);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 41);

  pm_cipher_state_rekey (copy);
  pm_cipher_state_set_nonce (fx->b, 41);
  g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, 8, tamper_payload, 8);
}

static void
test_cipher_rekey (CipherFixture *fx,
                   gconstpointer  data)
{
  static const uint8_t zeros[PM_NOISE_KEYLEN] = { 0 };
  g_autoptr (PmCipherState) old = pm_cipher_state_copy (fx->b);
  g_autoptr (GError) error = NULL;
  uint8_t new_key[PM_NOISE_KEYLEN + PM_NOISE_TAGLEN];
  uint8_t ct[64], expected[64], out[64];

  /* Move off nonce 0 first: Rekey must not touch the nonce. */
  g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, tamper_payload, 8, ct, &error));
  g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                  &error));
  g_assert_no_error (error);
  pm_cipher_state_set_nonce (old, 1);

  pm_cipher_state_rekey (fx->a);
  pm_cipher_state_rekey (fx->b);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 1);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, 1);

  /* k' = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros[32]) */
  reference_encrypt (fx->key, G_MAXUINT64, NULL, 0, zeros, sizeof zeros, new_key);
  reference_encrypt (new_key, 1, NULL, 0, tamper_payload, 8, expected);

  g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, tamper_payload, 8, ct, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (ct, 8 + PM_NOISE_TAGLEN, expected, 8 + PM_NOISE_TAGLEN);

  /* The old key no longer opens it; the equally rekeyed copy does. */
  g_assert_false (pm_cipher_state_decrypt_with_ad (old, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                   &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
  g_clear_error (&error);
  g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, 8, tamper_payload, 8);

  /* Rekeying once more gives yet another key. */
  pm_cipher_state_rekey (old);
  pm_cipher_state_rekey (old);
  pm_cipher_state_set_nonce (old, 1);
  g_assert_false (pm_cipher_state_decrypt_with_ad (old, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                   &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
}

static void
test_cipher_nonce_exhausted (CipherFixture *fx,
                             gconstpointer  data)
{
  uint8_t ct[64], out[64];

  /* 2^64-2 is the last usable nonce. */
  pm_cipher_state_set_nonce (fx->a, G_MAXUINT64 - 1);
  pm_cipher_state_set_nonce (fx->b, G_MAXUINT64 - 1);
  {
    g_autoptr (GError) error = NULL;

    g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, tamper_payload, 8, ct, &error));
    g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                    &error));
    g_assert_no_error (error);
    g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, G_MAXUINT64);
  }
  {
    g_autoptr (GError) error = NULL;

    memset (ct, CANARY, sizeof ct);
    g_assert_false (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, tamper_payload, 8, ct,
                                                     &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_NONCE_EXHAUSTED);
    g_assert_true (all_bytes_are (ct, sizeof ct, CANARY));
    g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, G_MAXUINT64);
  }
  {
    g_autoptr (GError) error = NULL;

    /* A message sealed with nonce 2^64-1 by someone else still is refused. */
    reference_encrypt (fx->key, G_MAXUINT64, NULL, 0, tamper_payload, 8, ct);
    g_assert_false (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, 8 + PM_NOISE_TAGLEN, out,
                                                     &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_NONCE_EXHAUSTED);
  }
  {
    g_autoptr (GError) error = NULL;

    g_assert_false (pm_cipher_state_seal (fx->a, G_MAXUINT64, NULL, 0, tamper_payload, 8, ct,
                                          &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_NONCE_EXHAUSTED);
  }
  {
    g_autoptr (GError) error = NULL;

    g_assert_false (pm_cipher_state_open (fx->b, G_MAXUINT64, NULL, 0, ct, 8 + PM_NOISE_TAGLEN,
                                          out, &error));
    g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_NONCE_EXHAUSTED);
  }
}

/* Explicit nonces are interchangeable with the counter, in any order, and
 * leave the counter alone. The same CipherState alternates directions. */
static void
test_cipher_seal_open (CipherFixture *fx,
                       gconstpointer  data)
{
  static const uint64_t nonces[] = { 9, 3, 0, 1000000, G_MAXUINT64 - 1, 3 };
  static const uint8_t  ad[] = { 1, 2, 3 };
  g_autoptr (GError) error = NULL;
  uint8_t sealed[64], counted[64], out[64];

  for (size_t i = 0; i < G_N_ELEMENTS (nonces); i++)
    {
      uint64_t n = nonces[i];

      g_assert_true (pm_cipher_state_seal (fx->a, n, ad, sizeof ad, tamper_payload, 8, sealed,
                                           &error));
      g_assert_no_error (error);
      g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 0);

      /* Same bytes as SetNonce(n) + EncryptWithAd on an independent state. */
      pm_cipher_state_set_nonce (fx->b, n);
      g_assert_true (pm_cipher_state_encrypt_with_ad (fx->b, ad, sizeof ad, tamper_payload, 8,
                                                      counted, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (sealed, 8 + PM_NOISE_TAGLEN, counted, 8 + PM_NOISE_TAGLEN);

      /* open() on the sealing state itself (direction switch), and
       * DecryptWithAd at nonce n on the other. */
      memset (out, 0, sizeof out);
      g_assert_true (pm_cipher_state_open (fx->a, n, ad, sizeof ad, counted, 8 + PM_NOISE_TAGLEN,
                                           out, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (out, 8, tamper_payload, 8);
      pm_cipher_state_set_nonce (fx->b, n);
      g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, ad, sizeof ad, sealed,
                                                      8 + PM_NOISE_TAGLEN, out, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, n + 1);

      /* The wrong nonce does not open it. */
      g_assert_false (pm_cipher_state_open (fx->a, n ^ 2, ad, sizeof ad, sealed,
                                            8 + PM_NOISE_TAGLEN, out, &error));
      g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
      g_clear_error (&error);
    }
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 0);
}

/* A failed decryption zeroes the output, keeps the nonce, and does not
 * disturb the next, genuine message. */
static void
test_cipher_decrypt_failure (CipherFixture *fx,
                             gconstpointer  data)
{
  uint8_t pt[100], ct[100 + PM_NOISE_TAGLEN], bad[100 + PM_NOISE_TAGLEN], out[100 + 8];

  randombytes_buf (pt, sizeof pt);
  for (int iteration = 0; iteration < 3; iteration++)
    {
      uint64_t nonce = pm_cipher_state_get_nonce (fx->b);
      g_autoptr (GError) error = NULL;

      g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, pt, sizeof pt, ct, &error));
      g_assert_no_error (error);

      for (size_t pos = 0; pos < sizeof ct; pos += 23)
        {
          memcpy (bad, ct, sizeof ct);
          bad[pos] ^= 0x80;
          memset (out, CANARY, sizeof out);
          g_assert_false (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, bad, sizeof bad, out,
                                                           &error));
          g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
          g_clear_error (&error);
          g_assert_true (all_bytes_are (out, sizeof pt, 0));
          g_assert_true (all_bytes_are (out + sizeof pt, sizeof out - sizeof pt, CANARY));
          g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, nonce);

          memset (out, CANARY, sizeof out);
          g_assert_false (pm_cipher_state_open (fx->b, nonce, NULL, 0, bad, sizeof bad, out,
                                                &error));
          g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_DECRYPT);
          g_clear_error (&error);
          g_assert_true (all_bytes_are (out, sizeof pt, 0));
        }

      /* Too short to hold a tag. */
      for (size_t len = 0; len < PM_NOISE_TAGLEN; len++)
        {
          g_assert_false (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, len, out, &error));
          g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TRUNCATED);
          g_clear_error (&error);
        }
      g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, nonce);

      g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, sizeof ct, out, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (out, sizeof pt, pt, sizeof pt);
      g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, nonce + 1);
    }
}

static void
test_cipher_in_place (CipherFixture *fx,
                      gconstpointer  data)
{
  static const size_t lengths[] = { 0, 1, 15, 16, 17, 63, 64, 65, 1400 };
  uint8_t             pt[1400], buf[1400 + PM_NOISE_TAGLEN], expected[1400 + PM_NOISE_TAGLEN];
  g_autoptr (GError) error = NULL;

  randombytes_buf (pt, sizeof pt);
  for (size_t i = 0; i < G_N_ELEMENTS (lengths); i++)
    {
      size_t   len = lengths[i];
      uint64_t n = pm_cipher_state_get_nonce (fx->a);

      memcpy (buf, pt, len);
      g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, buf, len, buf, &error));
      g_assert_no_error (error);
      reference_encrypt (fx->key, n, NULL, 0, pt, len, expected);
      g_assert_cmpmem (buf, len + PM_NOISE_TAGLEN, expected, len + PM_NOISE_TAGLEN);

      g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, buf, len + PM_NOISE_TAGLEN,
                                                      buf, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (buf, len, pt, len);

      /* And with explicit nonces. */
      memcpy (buf, pt, len);
      g_assert_true (pm_cipher_state_seal (fx->a, 77, NULL, 0, buf, len, buf, &error));
      g_assert_true (pm_cipher_state_open (fx->b, 77, NULL, 0, buf, len + PM_NOISE_TAGLEN, buf,
                                           &error));
      g_assert_no_error (error);
      g_assert_cmpmem (buf, len, pt, len);
    }
}

static void
test_cipher_size_limits (CipherFixture *fx,
                         gconstpointer  data)
{
  g_autofree uint8_t *pt = g_malloc0 (PM_NOISE_MAX_MESSAGE + 1);
  g_autofree uint8_t *ct = g_malloc0 (PM_NOISE_MAX_MESSAGE + PM_NOISE_TAGLEN + 1);
  g_autofree uint8_t *out = g_malloc0 (PM_NOISE_MAX_MESSAGE + 1);
  size_t              max_pt = PM_NOISE_MAX_MESSAGE - PM_NOISE_TAGLEN;
  g_autoptr (GError) error = NULL;

  g_assert_false (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, pt, max_pt + 1, ct, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->a), ==, 0);
  g_assert_false (pm_cipher_state_seal (fx->a, 0, NULL, 0, pt, max_pt + 1, ct, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
  g_clear_error (&error);

  randombytes_buf (pt, max_pt);
  g_assert_true (pm_cipher_state_encrypt_with_ad (fx->a, NULL, 0, pt, max_pt, ct, &error));
  g_assert_no_error (error);
  g_assert_true (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, PM_NOISE_MAX_MESSAGE, out,
                                                  &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, max_pt, pt, max_pt);

  g_assert_false (pm_cipher_state_decrypt_with_ad (fx->b, NULL, 0, ct, PM_NOISE_MAX_MESSAGE + 1,
                                                   out, &error));
  g_assert_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_TOO_LARGE);
  g_assert_cmpuint (pm_cipher_state_get_nonce (fx->b), ==, 1);
}

/* ------------------------------------------------------------------------- */
/* Verification code                                                          */
/* ------------------------------------------------------------------------- */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void
assert_code_well_formed (const char *code)
{
  g_assert_nonnull (code);
  g_assert_cmpuint (strlen (code), ==, PM_VERIFICATION_CODE_LEN);
  for (size_t i = 0; i < PM_VERIFICATION_CODE_LEN; i++)
    g_assert_nonnull (strchr (crockford, code[i]));
}

static void
test_verification_handshake (HandshakeFixture *fx,
                             gconstpointer     data)
{
  char *codes[2][2] = { { NULL } };

  /* Two handshakes between the same two keys: equal codes on both sides of
   * each, different codes across them (fresh ephemerals). */
  for (int run = 0; run < 2; run++)
    {
      g_auto (Pair) pair = { 0 };

      pair_init (&pair, PROTOCOL ("XX"), &fx->keys, FALSE);
      pair_run (&pair);
      for (int r = 0; r < 2; r++)
        {
          codes[run][r] = pm_verification_code (pm_handshake_state_get_handshake_hash (pair.hs[r]));
          assert_code_well_formed (codes[run][r]);
        }
      g_assert_cmpstr (codes[run][PM_ROLE_INITIATOR], ==, codes[run][PM_ROLE_RESPONDER]);
    }
  g_assert_cmpstr (codes[0][0], !=, codes[1][0]);

  for (int run = 0; run < 2; run++)
    for (int r = 0; r < 2; r++)
      g_clear_pointer (&codes[run][r], g_free);
}

static void
test_verification_known_value (void)
{
  uint8_t          hash[PM_NOISE_HASHLEN];
  uint8_t          digest[PM_NOISE_HASHLEN];
  unsigned int     digest_len = 0;
  g_autofree char *code = NULL;
  g_autofree char *zero_code = NULL;
  g_autofree char *flipped_code = NULL;
  EVP_MD          *blake2s;
  EVP_MD_CTX      *md;
  uint64_t         bits = 0;

  for (size_t i = 0; i < sizeof hash; i++)
    hash[i] = (uint8_t) i;

  /* Regression guard, computed once by this implementation. */
  code = pm_verification_code (hash);
  g_assert_cmpstr (code, ==, "VAPWSXKX");

  /* Independently: the code is the first 40 bits of
   * BLAKE2s("pipermesh-verify-v1" || h), five bits per character. */
  blake2s = EVP_MD_fetch (NULL, "BLAKE2S-256", NULL);
  md = EVP_MD_CTX_new ();
  g_assert_nonnull (blake2s);
  g_assert_nonnull (md);
  g_assert_cmpint (EVP_DigestInit_ex2 (md, blake2s, NULL), ==, 1);
  g_assert_cmpint (EVP_DigestUpdate (md, "pipermesh-verify-v1", 19), ==, 1);
  g_assert_cmpint (EVP_DigestUpdate (md, hash, sizeof hash), ==, 1);
  g_assert_cmpint (EVP_DigestFinal_ex (md, digest, &digest_len), ==, 1);
  EVP_MD_CTX_free (md);
  EVP_MD_free (blake2s);
  g_assert_cmpuint (digest_len, ==, PM_NOISE_HASHLEN);
  for (size_t i = 0; i < PM_VERIFICATION_CODE_LEN; i++)
    bits = (bits << 5) | (uint64_t) (strchr (crockford, code[i]) - crockford);
  g_assert_cmpuint (bits, ==,
                    ((uint64_t) digest[0] << 32) | ((uint64_t) digest[1] << 24) |
                      ((uint64_t) digest[2] << 16) | ((uint64_t) digest[3] << 8) | digest[4]);

  /* Any change to the hash changes the code. */
  memset (hash, 0, sizeof hash);
  zero_code = pm_verification_code (hash);
  assert_code_well_formed (zero_code);
  hash[31] ^= 1;
  flipped_code = pm_verification_code (hash);
  g_assert_cmpstr (zero_code, !=, flipped_code);
  g_assert_cmpstr (zero_code, !=, code);
}

/* ------------------------------------------------------------------------- */

static const RoundTripCase round_trips[] = {
  { PROTOCOL ("NN"), 2 },
  { PROTOCOL ("XX"), 3 },
  { PROTOCOL ("IK"), 2 },
  { PROTOCOL ("XXpsk3"), 3 },
  { PROTOCOL ("IKpsk2"), 2 },
  { PROTOCOL ("NK"), 2 },
  { PROTOCOL ("KK"), 2 },
  { PROTOCOL ("X"), 1 },
  { PROTOCOL ("N"), 1 },
  { PROTOCOL ("K"), 1 },
  { PROTOCOL ("NX"), 2 },
  { PROTOCOL ("XK"), 3 },
  { PROTOCOL ("IX"), 2 },
  { PROTOCOL ("NNpsk0"), 2 },
  { PROTOCOL ("XXpsk0+psk3"), 3 },
};

/* Authenticated handshake messages: every flip and cut is refused at once. */
static const TamperCase authenticated_messages[] = {
  { PROTOCOL ("XX"), 1 },
  { PROTOCOL ("XX"), 2 },
  { PROTOCOL ("IK"), 0 },
  { PROTOCOL ("IK"), 1 },
  { PROTOCOL ("NN"), 1 },
  { PROTOCOL ("XXpsk3"), 2 },
  { PROTOCOL ("NNpsk0"), 0 },
};

static const TamperCase unauthenticated_messages[] = {
  { PROTOCOL ("XX"), 0 },
  { PROTOCOL ("NN"), 0 },
};

static const TamperCase psk_mismatches[] = {
  { PROTOCOL ("XXpsk3"), 2 },
  { PROTOCOL ("IKpsk2"), 1 },
  { PROTOCOL ("NNpsk0"), 0 },
  { PROTOCOL ("XXpsk0+psk3"), 0 },
};

static void
add_handshake_test (const char   *path,
                    gconstpointer data,
                    void (*func) (HandshakeFixture *, gconstpointer))
{
  g_test_add (path, HandshakeFixture, data, handshake_fixture_setup, func,
              handshake_fixture_teardown);
}

static void
add_tamper_tests (const char       *prefix,
                  const TamperCase *cases,
                  size_t            n_cases,
                  void (*func) (HandshakeFixture *, gconstpointer))
{
  for (size_t i = 0; i < n_cases; i++)
    {
      g_autofree char *path =
        g_strdup_printf ("%s/%s/%u", prefix, cases[i].protocol, cases[i].message);
      add_handshake_test (path, &cases[i], func);
    }
}

#define ADD_CIPHER_TEST(path, func) \
  g_test_add (path, CipherFixture, NULL, cipher_fixture_setup, func, cipher_fixture_teardown)

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  pm_noise_ensure_init ();

  g_test_add_func ("/noise/keypair/dh-agrees", test_keypair_dh_agrees);
  g_test_add_func ("/noise/keypair/dh-rejects-small-order", test_keypair_dh_rejects_small_order);

  g_test_add_func ("/noise/protocol/supported", test_protocol_supported);
  g_test_add_func ("/noise/protocol/unsupported", test_protocol_unsupported);
  g_test_add_func ("/noise/protocol/key-needs", test_key_needs);

  for (size_t i = 0; i < G_N_ELEMENTS (round_trips); i++)
    {
      g_autofree char *path =
        g_strdup_printf ("/noise/handshake/round-trip/%s", round_trips[i].protocol);
      add_handshake_test (path, &round_trips[i], test_handshake_round_trip);
    }
  add_handshake_test ("/noise/handshake/null-payloads", NULL, test_handshake_null_payloads);
  add_handshake_test ("/noise/handshake/prologue-mismatch", NULL,
                      test_handshake_prologue_mismatch);
  add_handshake_test ("/noise/handshake/out-of-turn", NULL, test_handshake_out_of_turn);
  add_handshake_test ("/noise/handshake/ik-wrong-remote-static", NULL,
                      test_handshake_ik_wrong_remote_static);
  g_test_add_func ("/noise/handshake/missing-keys", test_missing_keys);

  add_tamper_tests ("/noise/tamper/bit-flips", authenticated_messages,
                    G_N_ELEMENTS (authenticated_messages), test_tamper_bit_flips);
  add_tamper_tests ("/noise/tamper/truncations", authenticated_messages,
                    G_N_ELEMENTS (authenticated_messages), test_tamper_truncations);
  add_tamper_tests ("/noise/tamper/oversized", authenticated_messages,
                    G_N_ELEMENTS (authenticated_messages), test_tamper_oversized);
  add_tamper_tests ("/noise/tamper/unauthenticated", unauthenticated_messages,
                    G_N_ELEMENTS (unauthenticated_messages),
                    test_tamper_unauthenticated_first_message);

  for (size_t i = 0; i < G_N_ELEMENTS (small_order_keys); i++)
    {
      static const struct {
        const char *name;
        void (*func) (HandshakeFixture *, gconstpointer);
      } small_order_tests[] = {
        { "nn-initiator-ephemeral", test_small_order_nn_initiator_ephemeral },
        { "nn-responder-ephemeral", test_small_order_nn_responder_ephemeral },
        { "ik-ephemeral", test_small_order_ik_ephemeral },
        { "xx-static", test_small_order_xx_static },
      };

      for (size_t t = 0; t < G_N_ELEMENTS (small_order_tests); t++)
        {
          g_autofree char *path = g_strdup_printf ("/noise/small-order/%s/%.16s",
                                                   small_order_tests[t].name, small_order_keys[i]);
          add_handshake_test (path, small_order_keys[i], small_order_tests[t].func);
        }
    }

  add_tamper_tests ("/noise/psk/mismatch", psk_mismatches, G_N_ELEMENTS (psk_mismatches),
                    test_psk_mismatch);
  g_test_add_func ("/noise/psk/wrong-count", test_psk_wrong_count);

  add_tamper_tests ("/noise/limits/write-capacity", authenticated_messages,
                    G_N_ELEMENTS (authenticated_messages), test_limits_write_capacity);
  add_tamper_tests ("/noise/limits/write-capacity", unauthenticated_messages,
                    G_N_ELEMENTS (unauthenticated_messages), test_limits_write_capacity);
  add_tamper_tests ("/noise/limits/read-capacity", authenticated_messages,
                    G_N_ELEMENTS (authenticated_messages), test_limits_read_capacity);
  add_tamper_tests ("/noise/limits/read-capacity", unauthenticated_messages,
                    G_N_ELEMENTS (unauthenticated_messages), test_limits_read_capacity);
  add_handshake_test ("/noise/limits/max-message", NULL, test_limits_max_message);
  add_handshake_test ("/noise/limits/absurd-payload-len", NULL, test_limits_absurd_payload_len);

  ADD_CIPHER_TEST ("/noise/cipher/matches-reference", test_cipher_matches_reference);
  g_test_add_func ("/noise/cipher/empty-key", test_cipher_empty_key);
  ADD_CIPHER_TEST ("/noise/cipher/copy", test_cipher_copy);
  ADD_CIPHER_TEST ("/noise/cipher/rekey", test_cipher_rekey);
  ADD_CIPHER_TEST ("/noise/cipher/nonce-exhausted", test_cipher_nonce_exhausted);
  ADD_CIPHER_TEST ("/noise/cipher/seal-open", test_cipher_seal_open);
  ADD_CIPHER_TEST ("/noise/cipher/decrypt-failure", test_cipher_decrypt_failure);
  ADD_CIPHER_TEST ("/noise/cipher/in-place", test_cipher_in_place);
  ADD_CIPHER_TEST ("/noise/cipher/size-limits", test_cipher_size_limits);

  add_handshake_test ("/noise/verification/handshake", NULL, test_verification_handshake);
  g_test_add_func ("/noise/verification/known-value", test_verification_known_value);

  return g_test_run ();
}
