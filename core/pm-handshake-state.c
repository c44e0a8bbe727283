/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-noise"

#include "pm-handshake-state.h"

#include <sodium.h>
#include <string.h>

#include "pm-noise-pattern-private.h"
#include "pm-symmetric-state-private.h"

#define MAX_PSKS PM_PATTERN_MAX_MESSAGES

struct _PmHandshakeState {
  char             *protocol_name;
  PmPattern         pattern;
  PmRole            role;
  PmSymmetricState *ss;
  GByteArray       *prologue;

  PmKeypair s, e;
  uint8_t   rs[PM_KEY_LEN], re[PM_KEY_LEN];
  gboolean  has_s, has_e, has_rs, has_re;

  uint8_t  psks[MAX_PSKS][PM_NOISE_KEYLEN];
  unsigned n_psks, next_psk;

  unsigned message_index;
  gboolean started, failed, split;
  uint8_t  final_hash[PM_NOISE_HASHLEN];
};

G_DEFINE_QUARK (pm-noise-error-quark, pm_noise_error)

void
pm_noise_ensure_init (void)
{
  static gsize done;

  if (g_once_init_enter (&done))
    {
      if (sodium_init () < 0)
        g_error ("libsodium failed to initialise");
      g_once_init_leave (&done, 1);
    }
}

PmHandshakeState *
pm_handshake_state_new (const char *protocol_name,
                        PmRole      role,
                        GError    **error)
{
  PmHandshakeState *hs;
  PmPattern         pattern;

  g_return_val_if_fail (protocol_name != NULL, NULL);

  if (!pm_noise_pattern_parse_protocol (protocol_name, &pattern, error))
    return NULL;
  pm_noise_ensure_init ();

  hs = g_new0 (PmHandshakeState, 1);
  hs->protocol_name = g_strdup (protocol_name);
  hs->pattern = pattern;
  hs->role = role;
  hs->prologue = g_byte_array_new ();
  return hs;
}

static void
wipe_keys (PmHandshakeState *hs)
{
  pm_keypair_clear (&hs->s);
  pm_keypair_clear (&hs->e);
  sodium_memzero (hs->psks, sizeof hs->psks);
  hs->n_psks = 0;
}

void
pm_handshake_state_free (PmHandshakeState *hs)
{
  if (hs == NULL)
    return;
  wipe_keys (hs);
  pm_symmetric_state_free (hs->ss);
  g_byte_array_unref (hs->prologue);
  g_free (hs->protocol_name);
  sodium_memzero (hs, sizeof *hs);
  g_free (hs);
}

/**
 * pm_handshake_state_copy:
 * An independent copy of @hs, keys included. Read an untrusted message into a
 * copy and keep it only if it authenticates: a forged message then cannot
 * spend the original (a datagram transport must survive forgeries).
 */
PmHandshakeState *
pm_handshake_state_copy (PmHandshakeState *hs)
{
  PmHandshakeState *copy = g_new0 (PmHandshakeState, 1);

  *copy = *hs;
  copy->protocol_name = g_strdup (hs->protocol_name);
  copy->prologue = g_byte_array_new ();
  g_byte_array_append (copy->prologue, hs->prologue->data, hs->prologue->len);
  copy->ss = hs->ss != NULL ? pm_symmetric_state_copy (hs->ss) : NULL;
  return copy;
}

const char *
pm_handshake_state_get_protocol_name (PmHandshakeState *hs)
{
  return hs->protocol_name;
}

PmRole
pm_handshake_state_get_role (PmHandshakeState *hs)
{
  return hs->role;
}

/* One-way patterns (N, K, X): the initiator sends the only message. */
gboolean
pm_handshake_state_is_one_way (PmHandshakeState *hs)
{
  return hs->pattern.one_way;
}

void
pm_handshake_state_set_prologue (PmHandshakeState *hs,
                                 const uint8_t    *prologue,
                                 size_t            len)
{
  g_return_if_fail (!hs->started);
  g_byte_array_set_size (hs->prologue, 0);
  if (len > 0)
    g_byte_array_append (hs->prologue, prologue, (guint) len);
}

void
pm_handshake_state_set_local_static (PmHandshakeState *hs,
                                     const PmKeypair  *keypair)
{
  g_return_if_fail (!hs->started);
  hs->s = *keypair;
  hs->has_s = TRUE;
}

/* Fixes the ephemeral key instead of generating one: for test vectors only. */
void
pm_handshake_state_set_local_ephemeral (PmHandshakeState *hs,
                                        const PmKeypair  *keypair)
{
  g_return_if_fail (!hs->started);
  hs->e = *keypair;
  hs->has_e = TRUE;
}

void
pm_handshake_state_set_remote_static (PmHandshakeState *hs,
                                      const uint8_t     pub[PM_KEY_LEN])
{
  g_return_if_fail (!hs->started);
  memcpy (hs->rs, pub, PM_KEY_LEN);
  hs->has_rs = TRUE;
}

void
pm_handshake_state_add_psk (PmHandshakeState *hs,
                            const uint8_t     psk[PM_NOISE_KEYLEN])
{
  g_return_if_fail (!hs->started);
  g_return_if_fail (hs->n_psks < MAX_PSKS);
  memcpy (hs->psks[hs->n_psks++], psk, PM_NOISE_KEYLEN);
}

static gboolean
pattern_sends_s (const PmPattern *p,
                 PmRole           role)
{
  for (unsigned m = 0; m < p->n_messages; m++)
    {
      PmRole sender = (p->one_way || m % 2 == 0) ? PM_ROLE_INITIATOR : PM_ROLE_RESPONDER;
      for (unsigned t = 0; t < p->n_tokens[m]; t++)
        if (sender == role && p->tokens[m][t] == PM_TOKEN_S)
          return TRUE;
    }
  return FALSE;
}

/* Does our role need a static key of its own (sent, or known to the peer before)? */
gboolean
pm_handshake_state_needs_local_static (PmHandshakeState *hs)
{
  const PmPattern *p = &hs->pattern;
  gboolean         pre = hs->role == PM_ROLE_INITIATOR ? p->pre_initiator_s : p->pre_responder_s;

  return pre || pattern_sends_s (p, hs->role);
}

/* Must the peer's static key be known before the handshake (a pre-message)? */
gboolean
pm_handshake_state_needs_remote_static (PmHandshakeState *hs)
{
  const PmPattern *p = &hs->pattern;

  return hs->role == PM_ROLE_INITIATOR ? p->pre_responder_s : p->pre_initiator_s;
}

static gboolean
fail (PmHandshakeState *hs,
      GError          **error,
      int               code,
      const char       *message)
{
  hs->failed = TRUE;
  wipe_keys (hs);
  g_set_error_literal (error, PM_NOISE_ERROR, code, message);
  return FALSE;
}

/* Initialize(): mixes the prologue and the pre-message public keys. */
gboolean
pm_handshake_state_start (PmHandshakeState *hs,
                          GError          **error)
{
  const PmPattern *p = &hs->pattern;
  gboolean         initiator = hs->role == PM_ROLE_INITIATOR;

  g_return_val_if_fail (!hs->started, FALSE);

  if (hs->failed)
    {
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           "The handshake already failed");
      return FALSE;
    }
  if (pm_handshake_state_needs_local_static (hs) && !hs->has_s)
    return fail (hs, error, PM_NOISE_ERROR_INVALID_STATE,
                 "This handshake pattern needs our static key, and none was set");
  if (pm_handshake_state_needs_remote_static (hs) && !hs->has_rs)
    return fail (hs, error, PM_NOISE_ERROR_INVALID_STATE,
                 "This handshake pattern needs the peer's static key in advance, and none was set");
  if (p->pre_initiator_e || p->pre_responder_e)
    return fail (hs, error, PM_NOISE_ERROR_UNSUPPORTED, "Ephemeral pre-messages are not supported");
  if (hs->n_psks != p->n_psks)
    {
      hs->failed = TRUE;
      wipe_keys (hs);
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                   "Pattern %s needs %u pre-shared keys, %u were given", p->name, p->n_psks,
                   hs->n_psks);
      return FALSE;
    }

  hs->ss = pm_symmetric_state_new (hs->protocol_name);
  pm_symmetric_state_mix_hash (hs->ss, hs->prologue->data, hs->prologue->len);
  if (p->pre_initiator_s)
    pm_symmetric_state_mix_hash (hs->ss, initiator ? hs->s.pub : hs->rs, PM_KEY_LEN);
  if (p->pre_responder_s)
    pm_symmetric_state_mix_hash (hs->ss, initiator ? hs->rs : hs->s.pub, PM_KEY_LEN);
  hs->started = TRUE;
  return TRUE;
}

PmHandshakeAction
pm_handshake_state_get_action (PmHandshakeState *hs)
{
  PmRole sender;

  if (hs->failed)
    return PM_HANDSHAKE_FAILED;
  if (hs->message_index >= hs->pattern.n_messages)
    return PM_HANDSHAKE_SPLIT;
  sender = (hs->pattern.one_way || hs->message_index % 2 == 0) ? PM_ROLE_INITIATOR
                                                               : PM_ROLE_RESPONDER;
  return sender == hs->role ? PM_HANDSHAKE_WRITE : PM_HANDSHAKE_READ;
}

/* Performs a DH token. Returns FALSE (with error) on a missing key or a
 * small-order peer key. */
static gboolean
mix_dh (PmHandshakeState *hs,
        PmToken           token,
        GError          **error)
{
  gboolean         initiator = hs->role == PM_ROLE_INITIATOR;
  const PmKeypair *local;
  const uint8_t   *remote;
  gboolean         have_local, have_remote;
  uint8_t          shared[PM_KEY_LEN];

  switch (token)
    {
    case PM_TOKEN_EE:
      local = &hs->e, have_local = hs->has_e, remote = hs->re, have_remote = hs->has_re;
      break;
    case PM_TOKEN_ES: /* initiator's e with responder's s */
      if (initiator)
        local = &hs->e, have_local = hs->has_e, remote = hs->rs, have_remote = hs->has_rs;
      else
        local = &hs->s, have_local = hs->has_s, remote = hs->re, have_remote = hs->has_re;
      break;
    case PM_TOKEN_SE: /* initiator's s with responder's e */
      if (initiator)
        local = &hs->s, have_local = hs->has_s, remote = hs->re, have_remote = hs->has_re;
      else
        local = &hs->e, have_local = hs->has_e, remote = hs->rs, have_remote = hs->has_rs;
      break;
    case PM_TOKEN_SS:
      local = &hs->s, have_local = hs->has_s, remote = hs->rs, have_remote = hs->has_rs;
      break;
    case PM_TOKEN_E:
    case PM_TOKEN_S:
    case PM_TOKEN_PSK:
    default:
      g_assert_not_reached ();
    }

  if (!have_local || !have_remote)
    {
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           "A Diffie-Hellman token needs a key that is not known yet");
      return FALSE;
    }
  if (!pm_keypair_dh (local->priv, remote, shared, error))
    return FALSE;
  pm_symmetric_state_mix_key (hs->ss, shared, sizeof shared);
  sodium_memzero (shared, sizeof shared);
  return TRUE;
}

static void
finish_message (PmHandshakeState *hs)
{
  hs->message_index++;
  if (hs->message_index >= hs->pattern.n_messages)
    memcpy (hs->final_hash, pm_symmetric_state_get_handshake_hash (hs->ss), PM_NOISE_HASHLEN);
}

gboolean
pm_handshake_state_write_message (PmHandshakeState *hs,
                                  const uint8_t    *payload,
                                  size_t            payload_len,
                                  uint8_t          *out,
                                  size_t            out_capacity,
                                  size_t           *out_len,
                                  GError          **error)
{
  const PmPattern *p = &hs->pattern;
  unsigned         m = hs->message_index;
  size_t           pos = 0;
  size_t           need;
  GError          *local_error = NULL;

  if (!hs->started && !hs->failed && !pm_handshake_state_start (hs, error))
    return FALSE;
  if (pm_handshake_state_get_action (hs) != PM_HANDSHAKE_WRITE)
    {
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           hs->failed ? "The handshake already failed"
                                      : "It is not our turn to write a handshake message");
      return FALSE;
    }
  if (out_capacity > PM_NOISE_MAX_MESSAGE)
    out_capacity = PM_NOISE_MAX_MESSAGE;

  for (unsigned t = 0; t < p->n_tokens[m]; t++)
    {
      switch (p->tokens[m][t])
        {
        case PM_TOKEN_E:
          if (pos + PM_KEY_LEN > out_capacity)
            goto too_large;
          if (!hs->has_e)
            {
              pm_keypair_generate (&hs->e);
              hs->has_e = TRUE;
            }
          memcpy (out + pos, hs->e.pub, PM_KEY_LEN);
          pos += PM_KEY_LEN;
          pm_symmetric_state_mix_hash (hs->ss, hs->e.pub, PM_KEY_LEN);
          if (p->has_psk)
            pm_symmetric_state_mix_key (hs->ss, hs->e.pub, PM_KEY_LEN);
          break;

        case PM_TOKEN_S:
          need = PM_KEY_LEN + (pm_symmetric_state_has_key (hs->ss) ? PM_NOISE_TAGLEN : 0);
          if (pos + need > out_capacity)
            goto too_large;
          if (!pm_symmetric_state_encrypt_and_hash (hs->ss, hs->s.pub, PM_KEY_LEN, out + pos,
                                                    &local_error))
            goto error;
          pos += need;
          break;

        case PM_TOKEN_PSK:
          pm_symmetric_state_mix_key_and_hash (hs->ss, hs->psks[hs->next_psk++], PM_NOISE_KEYLEN);
          break;

        case PM_TOKEN_EE:
        case PM_TOKEN_ES:
        case PM_TOKEN_SE:
        case PM_TOKEN_SS:
        default:
          if (!mix_dh (hs, p->tokens[m][t], &local_error))
            goto error;
          break;
        }
    }

  /* Bound payload_len first, so that pos + need cannot wrap around. */
  need = payload_len + (pm_symmetric_state_has_key (hs->ss) ? PM_NOISE_TAGLEN : 0);
  if (payload_len > PM_NOISE_MAX_MESSAGE || pos + need > out_capacity)
    goto too_large;
  if (!pm_symmetric_state_encrypt_and_hash (hs->ss, payload, payload_len, out + pos, &local_error))
    goto error;
  *out_len = pos + need;
  finish_message (hs);
  return TRUE;

too_large:
  sodium_memzero (out, MIN (pos, out_capacity));
  return fail (hs, error, PM_NOISE_ERROR_TOO_LARGE,
               "The handshake message does not fit the output buffer or the 65535-byte Noise limit");

error:
  sodium_memzero (out, MIN (pos, out_capacity));
  hs->failed = TRUE;
  wipe_keys (hs);
  g_propagate_error (error, local_error);
  return FALSE;
}

gboolean
pm_handshake_state_read_message (PmHandshakeState *hs,
                                 const uint8_t    *message,
                                 size_t            message_len,
                                 uint8_t          *payload,
                                 size_t            payload_capacity,
                                 size_t           *payload_len,
                                 GError          **error)
{
  const PmPattern *p = &hs->pattern;
  unsigned         m = hs->message_index;
  size_t           pos = 0;
  size_t           need;
  GError          *local_error = NULL;

  if (!hs->started && !hs->failed && !pm_handshake_state_start (hs, error))
    return FALSE;
  if (pm_handshake_state_get_action (hs) != PM_HANDSHAKE_READ)
    {
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           hs->failed ? "The handshake already failed"
                                      : "It is not our turn to read a handshake message");
      return FALSE;
    }
  if (message_len > PM_NOISE_MAX_MESSAGE)
    return fail (hs, error, PM_NOISE_ERROR_TOO_LARGE,
                 "Handshake message is over the 65535-byte Noise limit");

  for (unsigned t = 0; t < p->n_tokens[m]; t++)
    {
      switch (p->tokens[m][t])
        {
        case PM_TOKEN_E:
          if (message_len - pos < PM_KEY_LEN)
            goto truncated;
          memcpy (hs->re, message + pos, PM_KEY_LEN);
          hs->has_re = TRUE;
          pos += PM_KEY_LEN;
          pm_symmetric_state_mix_hash (hs->ss, hs->re, PM_KEY_LEN);
          if (p->has_psk)
            pm_symmetric_state_mix_key (hs->ss, hs->re, PM_KEY_LEN);
          break;

        case PM_TOKEN_S:
          need = PM_KEY_LEN + (pm_symmetric_state_has_key (hs->ss) ? PM_NOISE_TAGLEN : 0);
          if (message_len - pos < need)
            goto truncated;
          if (!pm_symmetric_state_decrypt_and_hash (hs->ss, message + pos, need, hs->rs,
                                                    &local_error))
            goto error;
          hs->has_rs = TRUE;
          pos += need;
          break;

        case PM_TOKEN_PSK:
          pm_symmetric_state_mix_key_and_hash (hs->ss, hs->psks[hs->next_psk++], PM_NOISE_KEYLEN);
          break;

        case PM_TOKEN_EE:
        case PM_TOKEN_ES:
        case PM_TOKEN_SE:
        case PM_TOKEN_SS:
        default:
          if (!mix_dh (hs, p->tokens[m][t], &local_error))
            goto error;
          break;
        }
    }

  need = pm_symmetric_state_has_key (hs->ss) ? PM_NOISE_TAGLEN : 0;
  if (message_len - pos < need)
    goto truncated;
  if (message_len - pos - need > payload_capacity)
    return fail (hs, error, PM_NOISE_ERROR_TOO_LARGE,
                 "The handshake payload does not fit the buffer given for it");
  if (!pm_symmetric_state_decrypt_and_hash (hs->ss, message + pos, message_len - pos, payload,
                                            &local_error))
    goto error;
  *payload_len = message_len - pos - need;
  finish_message (hs);
  return TRUE;

truncated:
  return fail (hs, error, PM_NOISE_ERROR_TRUNCATED,
               "Handshake message is truncated: it is shorter than its pattern requires");

error:
  hs->failed = TRUE;
  wipe_keys (hs);
  g_propagate_error (error, local_error);
  return FALSE;
}

/* Split(): @send encrypts what we send, @recv decrypts what we receive (the
 * initiator sends with the first CipherState, the responder with the second). */
gboolean
pm_handshake_state_split (PmHandshakeState *hs,
                          PmCipherState   **send,
                          PmCipherState   **recv,
                          GError          **error)
{
  PmCipherState *c1, *c2;

  if (pm_handshake_state_get_action (hs) != PM_HANDSHAKE_SPLIT || hs->split)
    {
      /* A second Split() would hand out the same keys at nonce 0 again. */
      g_set_error_literal (error, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE,
                           hs->split ? "The handshake keys were already split off"
                                     : "The handshake is not complete");
      return FALSE;
    }
  hs->split = TRUE;
  pm_symmetric_state_split (hs->ss, &c1, &c2);
  if (hs->role == PM_ROLE_INITIATOR)
    *send = c1, *recv = c2;
  else
    *send = c2, *recv = c1;
  pm_keypair_clear (&hs->e);
  hs->has_e = FALSE;
  return TRUE;
}

/* GetHandshakeHash(): the channel-binding value, valid once the handshake is
 * complete (NULL before). */
const uint8_t *
pm_handshake_state_get_handshake_hash (PmHandshakeState *hs)
{
  if (hs->failed || hs->message_index < hs->pattern.n_messages)
    return NULL;
  return hs->final_hash;
}

gboolean
pm_handshake_state_get_remote_static (PmHandshakeState *hs,
                                      uint8_t           pub[PM_KEY_LEN])
{
  if (!hs->has_rs)
    return FALSE;
  memcpy (pub, hs->rs, PM_KEY_LEN);
  return TRUE;
}
