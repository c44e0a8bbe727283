/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-noise"

#include "pm-noise-pattern-private.h"

#include <stdlib.h>
#include <string.h>

#include "pm-noise.h"

/* The fundamental patterns of the Noise specification, §7.4 and §7.5, written
 * as in the spec: pre-messages, then one string per message. */
typedef struct {
  const char *name;
  const char *pre_initiator; /* "", "s", "e" */
  const char *pre_responder;
  const char *messages[4];
} PatternDef;

static const PatternDef fundamental[] = {
  { "N", "", "s", { "e, es", NULL } },
  { "K", "s", "s", { "e, es, ss", NULL } },
  { "X", "", "s", { "e, es, s, ss", NULL } },
  { "NN", "", "", { "e", "e, ee", NULL } },
  { "NK", "", "s", { "e, es", "e, ee", NULL } },
  { "NX", "", "", { "e", "e, ee, s, es", NULL } },
  { "XN", "", "", { "e", "e, ee", "s, se", NULL } },
  { "XK", "", "s", { "e, es", "e, ee", "s, se", NULL } },
  { "XX", "", "", { "e", "e, ee, s, es", "s, se", NULL } },
  { "KN", "s", "", { "e", "e, ee, se", NULL } },
  { "KK", "s", "s", { "e, es, ss", "e, ee, se", NULL } },
  { "KX", "s", "", { "e", "e, ee, se, s, es", NULL } },
  { "IN", "", "", { "e, s", "e, ee, se", NULL } },
  { "IK", "", "s", { "e, es, s, ss", "e, ee, se", NULL } },
  { "IX", "", "", { "e, s", "e, ee, se, s, es", NULL } },
};

static gboolean
parse_token (const char *word,
             PmToken    *token)
{
  static const struct {
    const char *word;
    PmToken     token;
  } table[] = {
    { "e", PM_TOKEN_E },
    { "s", PM_TOKEN_S },
    { "ee", PM_TOKEN_EE },
    { "es", PM_TOKEN_ES },
    { "se", PM_TOKEN_SE },
    { "ss", PM_TOKEN_SS },
    { "psk", PM_TOKEN_PSK },
  };

  for (size_t i = 0; i < G_N_ELEMENTS (table); i++)
    if (strcmp (word, table[i].word) == 0)
      {
        *token = table[i].token;
        return TRUE;
      }
  return FALSE;
}

static void
load_definition (const PatternDef *def,
                 PmPattern        *p)
{
  memset (p, 0, sizeof *p);
  g_strlcpy (p->name, def->name, sizeof p->name);
  p->one_way = strlen (def->name) == 1;
  p->pre_initiator_s = strcmp (def->pre_initiator, "s") == 0;
  p->pre_initiator_e = strcmp (def->pre_initiator, "e") == 0;
  p->pre_responder_s = strcmp (def->pre_responder, "s") == 0;
  p->pre_responder_e = strcmp (def->pre_responder, "e") == 0;
  for (unsigned m = 0; m < G_N_ELEMENTS (def->messages) && def->messages[m] != NULL; m++)
    {
      g_auto (GStrv) words = g_strsplit (def->messages[m], ", ", -1);

      for (unsigned t = 0; words[t] != NULL; t++)
        {
          gboolean ok = parse_token (words[t], &p->tokens[m][t]);
          g_assert (ok && t < PM_PATTERN_MAX_TOKENS);
          p->n_tokens[m]++;
        }
      p->n_messages++;
    }
}

/* Applies one "pskN" modifier (§9.2): psk0 goes first in the first message,
 * pskN (N ≥ 1) last in message N. */
static gboolean
apply_psk (PmPattern  *p,
           const char *modifier,
           GError    **error)
{
  char         *end = NULL;
  unsigned long n;
  unsigned      m;

  if (!g_str_has_prefix (modifier, "psk") || !g_ascii_isdigit (modifier[3]))
    goto unsupported;
  n = strtoul (modifier + 3, &end, 10);
  if (*end != '\0' || n > p->n_messages)
    goto unsupported;

  m = n == 0 ? 0 : (unsigned) n - 1;
  if (p->n_tokens[m] >= PM_PATTERN_MAX_TOKENS)
    goto unsupported;
  if (n == 0)
    {
      memmove (&p->tokens[m][1], &p->tokens[m][0], p->n_tokens[m] * sizeof (PmToken));
      p->tokens[m][0] = PM_TOKEN_PSK;
    }
  else
    p->tokens[m][p->n_tokens[m]] = PM_TOKEN_PSK;
  p->n_tokens[m]++;
  p->n_psks++;
  p->has_psk = TRUE;
  return TRUE;

unsupported:
  g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
               "Unsupported pattern modifier “%s” (supported: psk0 … psk%u)", modifier, p->n_messages);
  return FALSE;
}

/* The fundamental patterns, tokenised once per process: a handshake then
 * starts from a copy instead of parsing strings. */
static const PmPattern *
fundamental_patterns (void)
{
  static PmPattern parsed[G_N_ELEMENTS (fundamental)];
  static gsize     done;

  if (g_once_init_enter (&done))
    {
      for (size_t i = 0; i < G_N_ELEMENTS (fundamental); i++)
        load_definition (&fundamental[i], &parsed[i]);
      g_once_init_leave (&done, 1);
    }
  return parsed;
}

static gboolean
parse_pattern (const char *text,
               PmPattern  *p,
               GError    **error)
{
  size_t           base_len = 0;
  const PmPattern *patterns = fundamental_patterns ();
  const PmPattern *found = NULL;

  while (g_ascii_isupper (text[base_len]))
    base_len++;
  for (size_t i = 0; i < G_N_ELEMENTS (fundamental); i++)
    if (strlen (fundamental[i].name) == base_len &&
        strncmp (fundamental[i].name, text, base_len) == 0)
      found = &patterns[i];
  if (found == NULL)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
                   "Unsupported handshake pattern “%.*s”", (int) MIN (base_len, 16), text);
      return FALSE;
    }
  *p = *found;

  if (text[base_len] != '\0')
    {
      g_auto (GStrv) modifiers = g_strsplit (text + base_len, "+", -1);

      for (unsigned i = 0; modifiers[i] != NULL; i++)
        if (!apply_psk (p, modifiers[i], error))
          return FALSE;
    }
  if (strlen (text) >= sizeof p->name)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
                   "Handshake pattern name “%s” is too long", text);
      return FALSE;
    }
  g_strlcpy (p->name, text, sizeof p->name);
  return TRUE;
}

gboolean
pm_noise_pattern_parse_protocol (const char *protocol_name,
                                 PmPattern  *pattern,
                                 GError    **error)
{
  static const char prefix[] = "Noise_";
  static const char suffix[] = "_25519_ChaChaPoly_BLAKE2s";
  size_t            len, pattern_len;
  char              name[sizeof pattern->name];

  g_return_val_if_fail (protocol_name != NULL, FALSE);

  len = strlen (protocol_name);
  if (!g_str_has_prefix (protocol_name, prefix) || len <= strlen (prefix) ||
      strchr (protocol_name + strlen (prefix), '_') == NULL)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
                   "“%s” is not a Noise protocol name (Noise_PATTERN_DH_CIPHER_HASH)", protocol_name);
      return FALSE;
    }
  pattern_len = (size_t) (strchr (protocol_name + strlen (prefix), '_') - protocol_name) - strlen (prefix);
  if (strcmp (protocol_name + strlen (prefix) + pattern_len, suffix) != 0)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
                   "Unsupported primitives in “%s”: PiperMesh implements 25519, ChaChaPoly and BLAKE2s",
                   protocol_name);
      return FALSE;
    }
  if (pattern_len == 0 || pattern_len >= sizeof name)
    {
      g_set_error (error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED,
                   "Handshake pattern name in “%s” is empty or too long", protocol_name);
      return FALSE;
    }
  memcpy (name, protocol_name + strlen (prefix), pattern_len);
  name[pattern_len] = '\0';
  return parse_pattern (name, pattern, error);
}
