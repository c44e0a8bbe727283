/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  PM_TOKEN_E,
  PM_TOKEN_S,
  PM_TOKEN_EE,
  PM_TOKEN_ES,
  PM_TOKEN_SE,
  PM_TOKEN_SS,
  PM_TOKEN_PSK,
} PmToken;

#define PM_PATTERN_MAX_MESSAGES 8
#define PM_PATTERN_MAX_TOKENS   8

/* One handshake pattern after its modifiers were applied. Messages alternate
 * initiator → responder → initiator ... except for one-way patterns, where the
 * initiator sends the only message. */
typedef struct {
  char     name[32]; /* "XXpsk3" */
  gboolean one_way;
  gboolean has_psk;
  gboolean pre_initiator_s, pre_initiator_e;
  gboolean pre_responder_s, pre_responder_e;
  unsigned n_messages;
  unsigned n_tokens[PM_PATTERN_MAX_MESSAGES];
  PmToken  tokens[PM_PATTERN_MAX_MESSAGES][PM_PATTERN_MAX_TOKENS];
  unsigned n_psks;
} PmPattern;

/* Parses "Noise_<pattern>_25519_ChaChaPoly_BLAKE2s". */
gboolean pm_noise_pattern_parse_protocol (const char *protocol_name,
                                          PmPattern  *pattern,
                                          GError    **error);

G_END_DECLS
