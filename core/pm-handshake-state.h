/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-cipher-state.h"
#include "pm-keypair.h"
#include "pm-noise.h"

G_BEGIN_DECLS

typedef enum {
  PM_ROLE_INITIATOR,
  PM_ROLE_RESPONDER,
} PmRole;

typedef enum {
  PM_HANDSHAKE_WRITE,  /* our turn to send a message */
  PM_HANDSHAKE_READ,   /* waiting for the peer's message */
  PM_HANDSHAKE_SPLIT,  /* complete: call pm_handshake_state_split() */
  PM_HANDSHAKE_FAILED, /* an error happened; the state is spent and must be freed */
} PmHandshakeAction;

/**
 * PmHandshakeState:
 * The Noise HandshakeState, generic over the fundamental patterns (NN … IX,
 * one-way N/K/X) and the pskN modifiers. Any error leaves it FAILED with its
 * keys wiped: a handshake is never continued after a bad message.
 */
typedef struct _PmHandshakeState PmHandshakeState;

PmHandshakeState *pm_handshake_state_new (const char *protocol_name,
                                          PmRole      role,
                                          GError    **error);
void              pm_handshake_state_free (PmHandshakeState *hs);
PmHandshakeState *pm_handshake_state_copy (PmHandshakeState *hs);
const char       *pm_handshake_state_get_protocol_name (PmHandshakeState *hs);
PmRole            pm_handshake_state_get_role (PmHandshakeState *hs);
gboolean          pm_handshake_state_is_one_way (PmHandshakeState *hs);

void     pm_handshake_state_set_prologue (PmHandshakeState *hs,
                                          const uint8_t    *prologue,
                                          size_t            len);
void     pm_handshake_state_set_local_static (PmHandshakeState *hs,
                                              const PmKeypair  *keypair);
void     pm_handshake_state_set_local_ephemeral (PmHandshakeState *hs,
                                                 const PmKeypair  *keypair);
void     pm_handshake_state_set_remote_static (PmHandshakeState *hs,
                                               const uint8_t     pub[PM_KEY_LEN]);
void     pm_handshake_state_add_psk (PmHandshakeState *hs,
                                     const uint8_t     psk[PM_NOISE_KEYLEN]);
gboolean pm_handshake_state_needs_local_static (PmHandshakeState *hs);
gboolean pm_handshake_state_needs_remote_static (PmHandshakeState *hs);
gboolean pm_handshake_state_start (PmHandshakeState *hs,
                                   GError          **error);

PmHandshakeAction pm_handshake_state_get_action (PmHandshakeState *hs);
gboolean          pm_handshake_state_write_message (PmHandshakeState *hs,
                                                    const uint8_t    *payload,
                                                    size_t            payload_len,
                                                    uint8_t          *out,
                                                    size_t            out_capacity,
                                                    size_t           *out_len,
                                                    GError          **error);
gboolean          pm_handshake_state_read_message (PmHandshakeState *hs,
                                                   const uint8_t    *message,
                                                   size_t            message_len,
                                                   uint8_t          *payload,
                                                   size_t            payload_capacity,
                                                   size_t           *payload_len,
                                                   GError          **error);
gboolean          pm_handshake_state_split (PmHandshakeState *hs,
                                            PmCipherState   **send,
                                            PmCipherState   **recv,
                                            GError          **error);

const uint8_t *pm_handshake_state_get_handshake_hash (PmHandshakeState *hs);
gboolean       pm_handshake_state_get_remote_static (PmHandshakeState *hs,
                                                     uint8_t           pub[PM_KEY_LEN]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmHandshakeState, pm_handshake_state_free)

G_END_DECLS
