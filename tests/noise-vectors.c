/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * noise-vectors FILE...
 *
 * Replays cacophony-format Noise test vectors through PmHandshakeState and
 * PmCipherState: every handshake and transport message must be reproduced byte
 * for byte by its sender and decrypted to its payload by its receiver, and the
 * handshake hash must match where the vector records it. Vectors of protocols
 * we do not implement are skipped and named. Prints "N passed, N failed,
 * N skipped" and exits non-zero on any failure or unreadable file.
 */
#define G_LOG_DOMAIN "pipermesh-vectors"

#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

#include "pm-handshake-state.h"

#define VECTOR_ERROR (vector_error_quark ())
GQuark vector_error_quark (void);
G_DEFINE_QUARK (pm-vector-error-quark, vector_error)

typedef enum {
  VECTOR_ERROR_FORMAT,
  VECTOR_ERROR_MISMATCH,
} VectorError;

typedef enum { RESULT_PASS,
               RESULT_FAIL,
               RESULT_SKIP } Result;

/* Reads an optional lowercase-or-uppercase hex field. Missing → FALSE with no
 * error; present but not a hex string, or of the wrong length → error. */
static gboolean
get_hex (JsonObject *obj,
         const char *field,
         gssize      want_len,
         GBytes    **out,
         GError    **error)
{
  JsonNode           *node = json_object_get_member (obj, field);
  const char         *hex;
  size_t              hex_len, bin_len = 0;
  g_autofree uint8_t *bin = NULL;

  *out = NULL;
  if (node == NULL)
    return FALSE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "field “%s” is not a string", field);
      return FALSE;
    }
  hex = json_node_get_string (node);
  hex_len = strlen (hex);
  if (hex_len % 2 != 0 || hex_len / 2 > PM_NOISE_MAX_MESSAGE)
    {
      g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT,
                   "field “%s” has an odd length or is over 65535 bytes", field);
      return FALSE;
    }
  bin = g_malloc (hex_len / 2 + 1);
  if (sodium_hex2bin (bin, hex_len / 2, hex, hex_len, NULL, &bin_len, NULL) != 0 ||
      bin_len != hex_len / 2)
    {
      g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "field “%s” is not hex", field);
      return FALSE;
    }
  if (want_len >= 0 && (gssize) bin_len != want_len)
    {
      g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT,
                   "field “%s” is %zu bytes, expected %zd", field, bin_len, want_len);
      return FALSE;
    }
  *out = g_bytes_new_take (g_steal_pointer (&bin), bin_len);
  return TRUE;
}

/* Sets up one side from its fields (prefix "init_" or "resp_"). */
static PmHandshakeState *
make_side (JsonObject *v,
           const char *protocol,
           PmRole      role,
           GError    **error)
{
  const char *prefix = role == PM_ROLE_INITIATOR ? "init_" : "resp_";
  g_autoptr (PmHandshakeState) hs = pm_handshake_state_new (protocol, role, error);
  g_autoptr (GBytes) b = NULL;
  g_autofree char *f_prologue = g_strconcat (prefix, "prologue", NULL);
  g_autofree char *f_static = g_strconcat (prefix, "static", NULL);
  g_autofree char *f_ephemeral = g_strconcat (prefix, "ephemeral", NULL);
  g_autofree char *f_remote = g_strconcat (prefix, "remote_static", NULL);
  g_autofree char *f_psks = g_strconcat (prefix, "psks", NULL);
  GError          *local_error = NULL;

  if (hs == NULL)
    return NULL;

  if (get_hex (v, f_prologue, -1, &b, &local_error))
    pm_handshake_state_set_prologue (hs, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_clear_pointer (&b, g_bytes_unref);
  if (local_error == NULL && get_hex (v, f_static, PM_KEY_LEN, &b, &local_error))
    {
      g_auto (PmKeypair) kp;
      pm_keypair_from_private (&kp, g_bytes_get_data (b, NULL));
      pm_handshake_state_set_local_static (hs, &kp);
    }
  g_clear_pointer (&b, g_bytes_unref);
  if (local_error == NULL && get_hex (v, f_ephemeral, PM_KEY_LEN, &b, &local_error))
    {
      g_auto (PmKeypair) kp;
      pm_keypair_from_private (&kp, g_bytes_get_data (b, NULL));
      pm_handshake_state_set_local_ephemeral (hs, &kp);
    }
  g_clear_pointer (&b, g_bytes_unref);
  if (local_error == NULL && get_hex (v, f_remote, PM_KEY_LEN, &b, &local_error))
    pm_handshake_state_set_remote_static (hs, g_bytes_get_data (b, NULL));
  g_clear_pointer (&b, g_bytes_unref);

  if (local_error == NULL && json_object_has_member (v, f_psks))
    {
      JsonNode  *node = json_object_get_member (v, f_psks);
      JsonArray *arr = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;

      if (arr == NULL)
        g_set_error (&local_error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "“%s” is not an array", f_psks);
      for (guint i = 0; arr != NULL && local_error == NULL && i < json_array_get_length (arr); i++)
        {
          JsonNode   *item = json_array_get_element (arr, i);
          const char *hex = JSON_NODE_HOLDS_VALUE (item) &&
                                json_node_get_value_type (item) == G_TYPE_STRING
                              ? json_node_get_string (item)
                              : NULL;
          uint8_t     psk[PM_NOISE_KEYLEN];
          size_t      psk_len = 0;

          if (hex == NULL || strlen (hex) != 2 * PM_NOISE_KEYLEN ||
              sodium_hex2bin (psk, sizeof psk, hex, strlen (hex), NULL, &psk_len, NULL) != 0 ||
              psk_len != PM_NOISE_KEYLEN)
            g_set_error (&local_error, VECTOR_ERROR, VECTOR_ERROR_FORMAT,
                         "%s[%u] is not a 32-byte hex key", f_psks, i);
          else if (i >= 8)
            g_set_error (&local_error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "too many PSKs");
          else
            pm_handshake_state_add_psk (hs, psk);
          sodium_memzero (psk, sizeof psk);
        }
    }

  if (local_error != NULL || !pm_handshake_state_start (hs, &local_error))
    {
      g_propagate_prefixed_error (error, local_error, "%s: ", role == PM_ROLE_INITIATOR ? "initiator" : "responder");
      return NULL;
    }
  return g_steal_pointer (&hs);
}

static gboolean
compare (const char    *what,
         guint          index,
         const uint8_t *got,
         size_t         got_len,
         GBytes        *want,
         GError       **error)
{
  if (got_len != g_bytes_get_size (want) || memcmp (got, g_bytes_get_data (want, NULL), got_len) != 0)
    {
      g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_MISMATCH,
                   "message %u: %s differs from the vector", index, what);
      return FALSE;
    }
  return TRUE;
}

static Result
run_vector (JsonObject *v,
            GError    **error)
{
  JsonNode   *name_node = json_object_get_member (v, "protocol_name");
  const char *protocol;
  g_autoptr (PmHandshakeState) init = NULL;
  g_autoptr (PmHandshakeState) resp = NULL;
  g_autoptr (PmCipherState) init_send = NULL, init_recv = NULL, resp_send = NULL, resp_recv = NULL;
  g_autoptr (GBytes) hash = NULL;
  JsonArray *messages;
  GError    *local_error = NULL;
  gboolean   one_way;
  uint8_t   *buf = g_alloca (PM_NOISE_MAX_MESSAGE);
  uint8_t   *buf2 = g_alloca (PM_NOISE_MAX_MESSAGE);

  if (name_node == NULL || !JSON_NODE_HOLDS_VALUE (name_node) ||
      json_node_get_value_type (name_node) != G_TYPE_STRING)
    {
      g_set_error_literal (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "no “protocol_name” string");
      return RESULT_FAIL;
    }
  protocol = json_node_get_string (name_node);

  init = make_side (v, protocol, PM_ROLE_INITIATOR, &local_error);
  if (init == NULL)
    {
      gboolean unsupported = g_error_matches (local_error, PM_NOISE_ERROR, PM_NOISE_ERROR_UNSUPPORTED);
      g_propagate_error (error, local_error);
      return unsupported ? RESULT_SKIP : RESULT_FAIL;
    }
  resp = make_side (v, protocol, PM_ROLE_RESPONDER, error);
  if (resp == NULL)
    return RESULT_FAIL;
  if (get_hex (v, "handshake_hash", PM_NOISE_HASHLEN, &hash, &local_error), local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return RESULT_FAIL;
    }
  if (!json_object_has_member (v, "messages") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (v, "messages")))
    {
      g_set_error_literal (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "no “messages” array");
      return RESULT_FAIL;
    }
  messages = json_object_get_array_member (v, "messages");
  one_way = pm_handshake_state_is_one_way (init);

  for (guint i = 0; i < json_array_get_length (messages); i++)
    {
      JsonNode   *node = json_array_get_element (messages, i);
      JsonObject *msg = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      g_autoptr (GBytes) payload = NULL, ciphertext = NULL;
      gboolean          from_initiator = one_way || i % 2 == 0;
      PmHandshakeState *sender = from_initiator ? init : resp;
      PmHandshakeState *receiver = from_initiator ? resp : init;
      size_t            len = 0, plen = 0;

      if (msg == NULL || !get_hex (msg, "payload", -1, &payload, &local_error) ||
          !get_hex (msg, "ciphertext", -1, &ciphertext, &local_error))
        {
          if (local_error == NULL)
            g_set_error (&local_error, VECTOR_ERROR, VECTOR_ERROR_FORMAT,
                         "message %u lacks “payload” or “ciphertext”", i);
          g_propagate_error (error, local_error);
          return RESULT_FAIL;
        }

      if (pm_handshake_state_get_action (sender) == PM_HANDSHAKE_WRITE)
        {
          if (pm_handshake_state_get_action (receiver) != PM_HANDSHAKE_READ)
            {
              g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_MISMATCH,
                           "message %u: sender and receiver disagree about the handshake", i);
              return RESULT_FAIL;
            }
          if (!pm_handshake_state_write_message (sender, g_bytes_get_data (payload, NULL),
                                                 g_bytes_get_size (payload), buf,
                                                 PM_NOISE_MAX_MESSAGE, &len, error) ||
              !compare ("handshake ciphertext", i, buf, len, ciphertext, error) ||
              !pm_handshake_state_read_message (receiver, buf, len, buf2, PM_NOISE_MAX_MESSAGE,
                                                &plen, error) ||
              !compare ("handshake payload", i, buf2, plen, payload, error))
            return RESULT_FAIL;

          if (pm_handshake_state_get_action (init) == PM_HANDSHAKE_SPLIT ||
              pm_handshake_state_get_action (resp) == PM_HANDSHAKE_SPLIT)
            {
              if (pm_handshake_state_get_action (init) != PM_HANDSHAKE_SPLIT ||
                  pm_handshake_state_get_action (resp) != PM_HANDSHAKE_SPLIT)
                {
                  g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_MISMATCH,
                               "message %u: only one side finished the handshake", i);
                  return RESULT_FAIL;
                }
              if (hash != NULL &&
                  (!compare ("initiator handshake hash", i,
                             pm_handshake_state_get_handshake_hash (init), PM_NOISE_HASHLEN, hash, error) ||
                   !compare ("responder handshake hash", i,
                             pm_handshake_state_get_handshake_hash (resp), PM_NOISE_HASHLEN, hash, error)))
                return RESULT_FAIL;
              if (!pm_handshake_state_split (init, &init_send, &init_recv, error) ||
                  !pm_handshake_state_split (resp, &resp_send, &resp_recv, error))
                return RESULT_FAIL;
            }
        }
      else if (init_send != NULL)
        {
          PmCipherState *enc = from_initiator ? init_send : resp_send;
          PmCipherState *dec = from_initiator ? resp_recv : init_recv;

          len = g_bytes_get_size (payload);
          if (len + PM_NOISE_TAGLEN > PM_NOISE_MAX_MESSAGE)
            {
              g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_FORMAT, "message %u is too large", i);
              return RESULT_FAIL;
            }
          if (!pm_cipher_state_encrypt_with_ad (enc, NULL, 0, g_bytes_get_data (payload, NULL), len,
                                                buf, error) ||
              !compare ("transport ciphertext", i, buf, len + PM_NOISE_TAGLEN, ciphertext, error) ||
              !pm_cipher_state_decrypt_with_ad (dec, NULL, 0, buf, len + PM_NOISE_TAGLEN, buf2, error) ||
              !compare ("transport payload", i, buf2, len, payload, error))
            return RESULT_FAIL;
        }
      else
        {
          g_set_error (error, VECTOR_ERROR, VECTOR_ERROR_MISMATCH,
                       "message %u: the handshake expects the other side to send", i);
          return RESULT_FAIL;
        }
    }

  if (init_send == NULL)
    {
      g_set_error_literal (error, VECTOR_ERROR, VECTOR_ERROR_MISMATCH,
                           "the messages end before the handshake is complete");
      return RESULT_FAIL;
    }
  return RESULT_PASS;
}

int
main (int   argc,
      char *argv[])
{
  unsigned passed = 0, failed = 0, skipped = 0;
  gboolean bad_file = FALSE;

  if (argc < 2)
    {
      g_printerr ("usage: %s FILE...\n", argv[0]);
      return 2;
    }

  for (int f = 1; f < argc; f++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_autoptr (GError) error = NULL;
      g_autofree char *base = g_path_get_basename (argv[f]);
      JsonNode        *root;
      JsonArray       *vectors;

      if (!json_parser_load_from_file (parser, argv[f], &error))
        {
          g_printerr ("%s: cannot read vectors: %s\n", argv[f], error->message);
          bad_file = TRUE;
          continue;
        }
      root = json_parser_get_root (parser);
      if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root) ||
          !json_object_has_member (json_node_get_object (root), "vectors") ||
          !JSON_NODE_HOLDS_ARRAY (json_object_get_member (json_node_get_object (root), "vectors")))
        {
          g_printerr ("%s: not a cacophony vector file (no top-level “vectors” array)\n", argv[f]);
          bad_file = TRUE;
          continue;
        }
      vectors = json_object_get_array_member (json_node_get_object (root), "vectors");
      for (guint i = 0; i < json_array_get_length (vectors); i++)
        {
          JsonNode   *node = json_array_get_element (vectors, i);
          JsonObject *v = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
          const char *name = v && json_object_has_member (v, "protocol_name") &&
                                 JSON_NODE_HOLDS_VALUE (json_object_get_member (v, "protocol_name"))
                               ? json_object_get_string_member (v, "protocol_name")
                               : "?";
          g_autoptr (GError) verror = NULL;
          Result r;

          if (v == NULL)
            {
              g_printerr ("%s #%u: not an object\n", base, i);
              failed++;
              continue;
            }
          r = run_vector (v, &verror);
          switch (r)
            {
            case RESULT_PASS:
              passed++;
              break;
            case RESULT_SKIP:
              skipped++;
              g_print ("SKIP %s #%u %s: %s\n", base, i, name ?: "?", verror->message);
              break;
            case RESULT_FAIL:
            default:
              failed++;
              g_print ("FAIL %s #%u %s: %s\n", base, i, name ?: "?", verror ? verror->message : "?");
              break;
            }
        }
    }

  g_print ("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
  return (failed > 0 || bad_file) ? 1 : 0;
}
