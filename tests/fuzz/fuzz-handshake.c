/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * The handshake reader, pm_handshake_state_read_message(), on arbitrary
 * messages, in three positions (the input format is in fuzz-common.h):
 * IK message 1 to a responder, XX message 2 to an initiator, XX message 3 to a
 * responder. Every key is fixed, so the seed corpus holds messages that
 * authenticate and the fuzzer starts from the far side of every check.
 */

#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-handshake-state.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static PmKeypair initiator_s, responder_s, initiator_e, responder_e;
/* XX message 1 from the initiator with the fixed ephemeral and no payload. */
static uint8_t xx_msg1[PM_KEY_LEN];
static size_t  xx_msg1_len;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_autoptr (PmHandshakeState) hs = NULL;

  pm_fuzz_init ();
  pm_fuzz_keypair (PM_FUZZ_KEY_INITIATOR, &initiator_s);
  pm_fuzz_keypair (PM_FUZZ_KEY_RESPONDER, &responder_s);
  pm_fuzz_keypair (PM_FUZZ_KEY_INITIATOR_E, &initiator_e);
  pm_fuzz_keypair (PM_FUZZ_KEY_RESPONDER_E, &responder_e);

  hs = pm_handshake_state_new (PM_FUZZ_XX_PROTOCOL, PM_ROLE_INITIATOR, NULL);
  pm_handshake_state_set_prologue (hs, (const uint8_t *) PM_FUZZ_XX_PROLOGUE,
                                   strlen (PM_FUZZ_XX_PROLOGUE));
  pm_handshake_state_set_local_static (hs, &initiator_s);
  pm_handshake_state_set_local_ephemeral (hs, &initiator_e);
  if (!pm_handshake_state_write_message (hs, NULL, 0, xx_msg1, sizeof xx_msg1, &xx_msg1_len, NULL))
    g_error ("Cannot write XX message 1");
  return 0;
}

static PmHandshakeState *
new_state (const char *protocol,
           const char *prologue,
           PmRole      role)
{
  PmHandshakeState *hs = pm_handshake_state_new (protocol, role, NULL);

  g_assert (hs != NULL);
  pm_handshake_state_set_prologue (hs, (const uint8_t *) prologue, strlen (prologue));
  return hs;
}

/* The state in which @which reads the fuzzed message. */
static PmHandshakeState *
prepare (PmFuzzHandshakeCase which)
{
  PmHandshakeState *hs = NULL;
  uint8_t           buf[256], payload[16];
  size_t            len = 0, plen = 0;

  switch (which)
    {
    case PM_FUZZ_HS_IK_MSG1:
      hs = new_state (PM_FUZZ_IK_PROTOCOL, PM_FUZZ_IK_PROLOGUE, PM_ROLE_RESPONDER);
      pm_handshake_state_set_local_static (hs, &responder_s);
      pm_handshake_state_set_local_ephemeral (hs, &responder_e);
      break;

    case PM_FUZZ_HS_XX_MSG2:
      hs = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_INITIATOR);
      pm_handshake_state_set_local_static (hs, &initiator_s);
      pm_handshake_state_set_local_ephemeral (hs, &initiator_e);
      if (!pm_handshake_state_write_message (hs, NULL, 0, buf, sizeof buf, &len, NULL))
        g_error ("Cannot write XX message 1");
      g_assert (len == xx_msg1_len && memcmp (buf, xx_msg1, len) == 0);
      break;

    case PM_FUZZ_HS_XX_MSG3:
      hs = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_RESPONDER);
      pm_handshake_state_set_local_static (hs, &responder_s);
      pm_handshake_state_set_local_ephemeral (hs, &responder_e);
      if (!pm_handshake_state_read_message (hs, xx_msg1, xx_msg1_len, payload, sizeof payload,
                                            &plen, NULL) ||
          !pm_handshake_state_write_message (hs, NULL, 0, buf, sizeof buf, &len, NULL))
        g_error ("Cannot play the responder's part of XX up to message 3");
      break;

    case PM_FUZZ_HS_N_CASES:
    default:
      g_assert_not_reached ();
    }

  g_assert (pm_handshake_state_get_action (hs) == PM_HANDSHAKE_READ);
  return hs;
}

/* After a message that was accepted, the handshake must run to its end. */
static void
finish (PmHandshakeState *hs)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PmCipherState) send = NULL;
  g_autoptr (PmCipherState) recv = NULL;
  uint8_t remote[PM_KEY_LEN];
  uint8_t buf[256];
  size_t  len = 0;

  g_assert (pm_handshake_state_get_remote_static (hs, remote));
  if (pm_handshake_state_get_action (hs) == PM_HANDSHAKE_WRITE)
    {
      g_assert (pm_handshake_state_get_handshake_hash (hs) == NULL);
      if (!pm_handshake_state_write_message (hs, NULL, 0, buf, sizeof buf, &len, &error))
        g_error ("Cannot answer an accepted handshake message: %s", error->message);
    }
  g_assert (pm_handshake_state_get_action (hs) == PM_HANDSHAKE_SPLIT);
  g_assert (pm_handshake_state_get_handshake_hash (hs) != NULL);
  if (!pm_handshake_state_split (hs, &send, &recv, &error))
    g_error ("Cannot split a complete handshake: %s", error->message);
  g_assert (send != NULL && recv != NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr (PmHandshakeState) hs = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) again = NULL;
  g_autofree uint8_t *payload = NULL;
  size_t              capacity, plen = G_MAXSIZE;
  uint8_t             dummy[1];

  if (size == 0)
    return 0;

  hs = prepare ((PmFuzzHandshakeCase) (data[0] % PM_FUZZ_HS_N_CASES));
  /* Exactly the capacity we announce, so that ASan sees any write past it. */
  capacity = data[0] >= 0x80 ? PM_FUZZ_SMALL_PAYLOAD : PM_NOISE_MAX_MESSAGE;
  payload = g_malloc (capacity);

  if (pm_handshake_state_read_message (hs, data + 1, size - 1, payload, capacity, &plen, &error))
    {
      g_assert (error == NULL);
      g_assert (plen <= capacity);
      g_assert (plen <= size - 1);
      finish (hs);
      return 0;
    }

  g_assert (error != NULL);
  g_assert (error->domain == PM_NOISE_ERROR);
  g_assert (error->message != NULL && error->message[0] != '\0');
  g_assert (pm_handshake_state_get_action (hs) == PM_HANDSHAKE_FAILED);
  g_assert (pm_handshake_state_get_handshake_hash (hs) == NULL);

  /* A failed handshake is never continued. */
  g_assert (!pm_handshake_state_read_message (hs, data + 1, size - 1, payload, capacity, &plen,
                                              &again));
  g_assert_error (again, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  g_clear_error (&again);
  g_assert (!pm_handshake_state_write_message (hs, NULL, 0, dummy, sizeof dummy, &plen, &again));
  g_assert_error (again, PM_NOISE_ERROR, PM_NOISE_ERROR_INVALID_STATE);
  return 0;
}
