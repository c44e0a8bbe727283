/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * Writes the seed corpora of the fuzz targets: gen-corpus DIR fills
 * DIR/frame, DIR/handshake and DIR/session. The output is the same on every
 * run (fixed keys, seeded randomness, fixed wall clock), so regenerating only
 * changes files when the protocol did. In a -Dfuzzing=true build:
 *
 *   ninja -C build-fuzz fuzz-corpus      # rewrites tests/fuzz/corpus/
 *
 * The session seeds are made by playing device A exactly as fuzz-session does
 * (pm_fuzz_session_apply()) against a real peer B, recording what A is fed;
 * each is then replayed through a fresh A to check that it goes as deep.
 */

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-frame.h"
#include "pm-handshake-state.h"

static const char *out_dir;
static unsigned    n_files;
static size_t      n_bytes;

static void
write_seed (const char    *target,
            const char    *name,
            const uint8_t *data,
            size_t         len)
{
  g_autofree char *dir = g_build_filename (out_dir, target, NULL);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    g_error ("Cannot create %s: %s", dir, g_strerror (errno));
  if (!g_file_set_contents (path, (const char *) data, (gssize) len, &error))
    g_error ("%s", error->message);
  n_files++;
  n_bytes += len;
}

static void
write_seed_bytes (const char *target,
                  const char *name,
                  GBytes     *bytes)
{
  gsize          len = 0;
  const uint8_t *data = g_bytes_get_data (bytes, &len);

  write_seed (target, name, data, len);
}

/* --- Session simulation ----------------------------------------------------- */

typedef struct {
  PmFuzzSession a; /* the device under test, fed as fuzz-session feeds it */
  PmSession    *b; /* its peer */
  PmFuzzRng     rng_b;
  GPtrArray    *b_out; /* GBytes: every datagram B emitted */
  unsigned      b_delivered;
  unsigned      a_forwarded; /* how many of A's datagrams went to B */
  GByteArray   *input;       /* the fuzz input being recorded */
} Sim;

static void
on_b_output (const uint8_t *datagram,
             size_t         len,
             gpointer       user_data)
{
  Sim *sim = user_data;

  g_ptr_array_add (sim->b_out, g_bytes_new (datagram, len));
}

static void
on_b_deliver (const uint8_t *data,
              size_t         len,
              gpointer       user_data)
{
  Sim *sim = user_data;

  sim->b_delivered++;
}

static void
sim_init (Sim    *sim,
          uint8_t flags)
{
  g_auto (PmKeypair) a = { 0 };
  g_auto (PmKeypair) b = { 0 };
  PmSessionLimits limits;

  memset (sim, 0, sizeof *sim);
  sim->input = g_byte_array_new ();
  g_byte_array_append (sim->input, &flags, 1);
  pm_fuzz_session_init (&sim->a, flags);

  pm_fuzz_session_keys (flags, &a, &b);
  pm_fuzz_session_limits (&limits);
  pm_fuzz_rng_seed (&sim->rng_b, PM_FUZZ_SEED_B);
  sim->b = pm_session_new (&b, a.pub, &limits);
  sim->b_out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  pm_session_set_callbacks (sim->b, on_b_output, on_b_deliver, sim);
}

static void
sim_clear (Sim *sim)
{
  pm_fuzz_session_clear (&sim->a);
  g_clear_pointer (&sim->b, pm_session_free);
  g_clear_pointer (&sim->b_out, g_ptr_array_unref);
  g_clear_pointer (&sim->input, g_byte_array_unref);
}

/* Appends one record to the input and plays it on A. @dt is in ticks of PM_FUZZ_TICK_US. */
static void
sim_record (Sim           *sim,
            PmFuzzOp       op,
            unsigned       dt,
            const uint8_t *data,
            size_t         len)
{
  uint8_t header[PM_FUZZ_RECORD_HEADER];

  g_assert (dt < 64 && len <= G_MAXUINT16);
  header[0] = (uint8_t) (dt << 2 | op);
  header[1] = (uint8_t) len;
  header[2] = (uint8_t) (len >> 8);
  g_byte_array_append (sim->input, header, sizeof header);
  if (len > 0)
    g_byte_array_append (sim->input, data, (guint) len);
  pm_fuzz_session_apply (&sim->a, header[0], data, len);
}

/* B's datagram number @i, fed to A. */
static void
sim_b_to_a (Sim     *sim,
            unsigned i,
            unsigned dt)
{
  gsize          len = 0;
  const uint8_t *data;

  g_assert (i < sim->b_out->len);
  data = g_bytes_get_data (g_ptr_array_index (sim->b_out, i), &len);
  sim_record (sim, PM_FUZZ_OP_RECEIVE, dt, data, len);
}

/* Everything A emitted since the last call, fed to B. */
static void
sim_a_to_b (Sim *sim)
{
  pm_fuzz_rng_use (&sim->rng_b);
  for (; sim->a_forwarded < sim->a.emitted->len; sim->a_forwarded++)
    {
      g_autoptr (GError) error = NULL;
      gsize          len = 0;
      const uint8_t *data = g_bytes_get_data (g_ptr_array_index (sim->a.emitted, sim->a_forwarded),
                                              &len);

      if (!pm_session_receive (sim->b, data, len, sim->a.now, &error))
        g_printerr ("  (B refused A's datagram %u: %s)\n", sim->a_forwarded, error->message);
    }
}

static void
sim_b_send (Sim        *sim,
            const char *text)
{
  g_autoptr (GError) error = NULL;

  pm_fuzz_rng_use (&sim->rng_b);
  if (!pm_session_send (sim->b, (const uint8_t *) text, strlen (text), sim->a.now, &error))
    g_error ("B cannot send: %s", error->message);
}

static void
sim_b_connect (Sim *sim)
{
  pm_fuzz_rng_use (&sim->rng_b);
  pm_session_connect (sim->b, sim->a.now);
}

static unsigned
sim_b_last (Sim *sim)
{
  g_assert (sim->b_out->len > 0);
  return sim->b_out->len - 1;
}

/* Writes the input recorded so far, after checking that a fresh A replays it alike. */
static void
sim_write (Sim        *sim,
           const char *name)
{
  PmFuzzSession replay;

  pm_fuzz_session_run (&replay, sim->input->data, sim->input->len);
  if (replay.accepted != sim->a.accepted || replay.refused != sim->a.refused ||
      replay.delivered != sim->a.delivered || replay.emitted->len != sim->a.emitted->len)
    g_error ("session/%s does not replay the same way: accepted %u/%u, refused %u/%u, delivered %u/%u",
             name, replay.accepted, sim->a.accepted, replay.refused, sim->a.refused,
             replay.delivered, sim->a.delivered);
  g_print ("session/%-22s %5u bytes: A accepted %u, refused %u, delivered %u, emitted %u\n", name,
           sim->input->len, replay.accepted, replay.refused, replay.delivered,
           replay.emitted->len);
  pm_fuzz_session_clear (&replay);
  write_seed ("session", name, sim->input->data, sim->input->len);
}

/* B initiates, A answers, then data both ways across key epochs, with
 * reordering, a replay and timers. Also writes the frames to the frame corpus. */
static void
gen_session_responder (void)
{
  static const unsigned order[] = { 0, 1, 2, 4, 3, 5, 6 };
  Sim                   sim;
  unsigned              init, keepalive, first;
  char                  text[64];

  sim_init (&sim, 0);
  sim_b_connect (&sim);
  init = sim_b_last (&sim);
  write_seed_bytes ("frame", "init-valid", g_ptr_array_index (sim.b_out, init));
  sim_b_to_a (&sim, init, 1);
  g_assert (sim.a.emitted->len == 1);
  write_seed_bytes ("frame", "response-valid", g_ptr_array_index (sim.a.emitted, 0));
  sim_write (&sim, "responder-init");

  sim_a_to_b (&sim);
  keepalive = sim_b_last (&sim);
  write_seed_bytes ("frame", "data-keepalive", g_ptr_array_index (sim.b_out, keepalive));
  sim_b_to_a (&sim, keepalive, 1);
  g_assert (sim.a.accepted == 2);
  sim_write (&sim, "responder-keepalive");

  /* Seven messages: B's key moves through epochs 0, 1 and 2. */
  first = sim.b_out->len;
  for (unsigned i = 0; i < 7; i++)
    {
      g_snprintf (text, sizeof text, "message %u from B", i);
      sim_b_send (&sim, text);
    }
  write_seed_bytes ("frame", "data-payload", g_ptr_array_index (sim.b_out, first));
  write_seed_bytes ("frame", "data-epoch2", g_ptr_array_index (sim.b_out, sim_b_last (&sim)));
  /* In order, except the fourth and fifth swapped, then a replay of the first. */
  for (unsigned i = 0; i < G_N_ELEMENTS (order); i++)
    sim_b_to_a (&sim, first + order[i], 0);
  sim_b_to_a (&sim, first, 0);
  sim_write (&sim, "responder-data");

  /* A answers; ticks run the timers. */
  sim_record (&sim, PM_FUZZ_OP_SEND, 2, (const uint8_t *) "reply from A", 12);
  sim_a_to_b (&sim);
  sim_record (&sim, PM_FUZZ_OP_TICK, 8, NULL, 0);
  sim_write (&sim, "responder-reply");
  sim_clear (&sim);
}

/* B sends enough to rotate: its second initiation, A's second answer, data on
 * the new keys, then the old keys' grace period runs out. */
static void
gen_session_rotation (void)
{
  Sim  sim;
  char text[64];

  sim_init (&sim, 0);
  sim_b_connect (&sim);
  sim_b_to_a (&sim, sim_b_last (&sim), 1);
  sim_a_to_b (&sim);
  sim_b_to_a (&sim, sim_b_last (&sim), 1);

  for (unsigned i = 0; i < 16; i++)
    {
      unsigned before = sim.b_out->len;

      g_snprintf (text, sizeof text, "rotation message %u", i);
      sim_b_send (&sim, text);
      /* Includes what B emits while this runs (its keepalive after a rotation). */
      for (unsigned j = before; j < sim.b_out->len; j++)
        {
          sim_b_to_a (&sim, j, 1);
          sim_a_to_b (&sim);
        }
    }
  sim_record (&sim, PM_FUZZ_OP_TICK, 40, NULL, 0);
  sim_record (&sim, PM_FUZZ_OP_SEND, 1, (const uint8_t *) "after rotation", 14);
  sim_a_to_b (&sim);
  sim_write (&sim, "rotation");
  sim_clear (&sim);
}

/* A initiates; B's response, then data both ways. */
static void
gen_session_initiator (void)
{
  Sim sim;

  sim_init (&sim, PM_FUZZ_FLAG_CONNECT);
  g_assert (sim.a.emitted->len == 1);
  sim_a_to_b (&sim);
  write_seed_bytes ("frame", "response-from-b", g_ptr_array_index (sim.b_out, sim_b_last (&sim)));
  sim_b_to_a (&sim, sim_b_last (&sim), 1);
  sim_write (&sim, "initiator-response");

  sim_a_to_b (&sim);
  sim_b_send (&sim, "hello A");
  sim_b_to_a (&sim, sim_b_last (&sim), 1);
  for (unsigned i = 0; i < 4; i++)
    sim_record (&sim, PM_FUZZ_OP_SEND, 1, (const uint8_t *) "hello B", 7);
  sim_a_to_b (&sim);
  sim_write (&sim, "initiator-data");
  sim_clear (&sim);
}

/* A queues messages while it initiates, retries, and finally gives up. */
static void
gen_session_queue (void)
{
  Sim sim;

  sim_init (&sim, 0);
  for (unsigned i = 0; i < 4; i++)
    sim_record (&sim, PM_FUZZ_OP_SEND, 0, (const uint8_t *) "queued", 6);
  for (unsigned i = 0; i < 10; i++)
    sim_record (&sim, PM_FUZZ_OP_TICK, 16, NULL, 0);
  sim_write (&sim, "queue-give-up");
  sim_clear (&sim);

  /* One more than the queue holds. */
  sim_init (&sim, 0);
  for (unsigned i = 0; i <= PM_FUZZ_SEND_QUEUE_MAX; i++)
    sim_record (&sim, PM_FUZZ_OP_SEND, 0, (const uint8_t *) "q", 1);
  g_assert (pm_session_get_queue_length (sim.a.session) == PM_FUZZ_SEND_QUEUE_MAX);
  sim_write (&sim, "queue-full");
  sim_clear (&sim);
}

/* An IK initiation to A, well formed and authentic, but from a stranger's key. */
static void
unknown_peer_init (uint8_t frame[PM_INIT_FRAME_LEN])
{
  static const uint8_t timestamp[PM_IK_TIMESTAMP_LEN] = { 0x40, 0, 0, 0, 0x70, 0, 0, 0, 0, 0, 0, 1 };
  g_autoptr (PmHandshakeState) hs = NULL;
  g_auto (PmKeypair) a = { 0 };
  g_auto (PmKeypair) stranger = { 0 };
  size_t len = 0;

  pm_fuzz_keypair (PM_FUZZ_KEY_A, &a);
  pm_fuzz_keypair (PM_FUZZ_KEY_INITIATOR, &stranger);
  hs = pm_handshake_state_new (PM_FUZZ_IK_PROTOCOL, PM_ROLE_INITIATOR, NULL);
  pm_handshake_state_set_prologue (hs, (const uint8_t *) PM_FUZZ_IK_PROLOGUE,
                                   strlen (PM_FUZZ_IK_PROLOGUE));
  pm_handshake_state_set_local_static (hs, &stranger);
  pm_handshake_state_set_remote_static (hs, a.pub);
  pm_frame_write_init_header (frame, 0x5742a9e1);
  if (!pm_handshake_state_write_message (hs, timestamp, sizeof timestamp,
                                         frame + PM_INIT_HEADER_LEN, PM_IK_MSG1_LEN, &len, NULL))
    g_error ("Cannot write the stranger's initiation");
  g_assert (len == PM_IK_MSG1_LEN);
}

/* Both initiate at once; then garbage, truncated and misrouted datagrams. */
static void
gen_session_misc (void)
{
  Sim                  sim;
  static const uint8_t stun[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };
  uint8_t              data[PM_DATA_FRAME_MIN_LEN] = { 0 };
  uint8_t              init_frame[PM_INIT_FRAME_LEN];
  GBytes              *init;
  gsize                len = 0;
  const uint8_t       *p;

  sim_init (&sim, PM_FUZZ_FLAG_CONNECT);
  sim_b_connect (&sim);
  sim_b_to_a (&sim, sim_b_last (&sim), 0);
  sim_a_to_b (&sim);
  sim_write (&sim, "simultaneous");
  sim_clear (&sim);

  /* The same with the keys the other way round: now A's initiation wins. */
  sim_init (&sim, PM_FUZZ_FLAG_CONNECT | PM_FUZZ_FLAG_SWAP_KEYS);
  sim_b_connect (&sim);
  sim_b_to_a (&sim, sim_b_last (&sim), 0);
  sim_a_to_b (&sim);
  sim_b_to_a (&sim, sim_b_last (&sim), 0);
  sim_write (&sim, "simultaneous-swapped");
  sim_clear (&sim);

  /* A valid initiation from a key that is not A's peer. */
  sim_init (&sim, 0);
  unknown_peer_init (init_frame);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, init_frame, sizeof init_frame);
  g_assert (sim.a.refused == 1);
  sim_write (&sim, "unknown-peer");
  sim_clear (&sim);

  sim_init (&sim, 0);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, stun, sizeof stun);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, NULL, 0);
  pm_frame_write_data_header (data, 0, 0x01020304, 7);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, data, sizeof data);
  sim_b_connect (&sim);
  init = g_ptr_array_index (sim.b_out, sim_b_last (&sim));
  p = g_bytes_get_data (init, &len);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, p, len - 1);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, p, len);
  sim_record (&sim, PM_FUZZ_OP_RECEIVE, 0, p, len); /* a replayed initiation */
  sim_write (&sim, "garbage");
  sim_clear (&sim);
}

/* --- Frames ------------------------------------------------------------------- */

static void
gen_frames (void)
{
  uint8_t              buf[PM_DATA_FRAME_MIN_LEN + 64];
  static const uint8_t stun[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };
  static const uint8_t channel_data[8] = { 0x40, 0x00, 0x00, 0x04, 'p', 'i', 'n', 'g' };
  uint8_t              init[PM_INIT_FRAME_LEN + 1] = { 0 };
  uint8_t              response[PM_RESPONSE_FRAME_LEN + 1] = { 0 };

  pm_frame_write_init_header (init, 0xdeadbeef);
  write_seed ("frame", "init-truncated", init, PM_INIT_FRAME_LEN - 1);
  write_seed ("frame", "init-oversized", init, PM_INIT_FRAME_LEN + 1);
  init[2] = 1;
  write_seed ("frame", "init-reserved", init, PM_INIT_FRAME_LEN);

  pm_frame_write_response_header (response, 0x11223344, 0x55667788);
  write_seed ("frame", "response-truncated", response, PM_RESPONSE_HEADER_LEN);
  write_seed ("frame", "response-oversized", response, PM_RESPONSE_FRAME_LEN + 1);

  memset (buf, 0x5a, sizeof buf);
  pm_frame_write_data_header (buf, 0, 1, 0);
  write_seed ("frame", "data-min", buf, PM_DATA_FRAME_MIN_LEN);
  write_seed ("frame", "data-truncated", buf, PM_DATA_FRAME_MIN_LEN - 1);
  write_seed ("frame", "data-header-only", buf, PM_DATA_HEADER_LEN);
  pm_frame_write_data_header (buf, 255, G_MAXUINT32, G_MAXUINT64);
  write_seed ("frame", "data-max-fields", buf, sizeof buf);
  buf[3] = 0x80;
  write_seed ("frame", "data-reserved", buf, sizeof buf);

  buf[0] = 0x84;
  write_seed ("frame", "unknown-type", buf, 40);
  buf[0] = 0x80;
  write_seed ("frame", "unknown-type-0x80", buf, 40);
  write_seed ("frame", "stun-binding", stun, sizeof stun);
  write_seed ("frame", "turn-channel-data", channel_data, sizeof channel_data);
  write_seed ("frame", "single-byte", (const uint8_t *) "\x83", 1);
}

/* --- Handshakes -------------------------------------------------------------- */

static PmHandshakeState *
new_state (const char *protocol,
           const char *prologue,
           PmRole      role,
           PmFuzzKey   s,
           PmFuzzKey   e)
{
  PmHandshakeState *hs = pm_handshake_state_new (protocol, role, NULL);
  g_auto (PmKeypair) kp = { 0 };

  g_assert (hs != NULL);
  pm_handshake_state_set_prologue (hs, (const uint8_t *) prologue, strlen (prologue));
  pm_fuzz_keypair (s, &kp);
  pm_handshake_state_set_local_static (hs, &kp);
  pm_fuzz_keypair (e, &kp);
  pm_handshake_state_set_local_ephemeral (hs, &kp);
  return hs;
}

static void
hs_write (PmHandshakeState *hs,
          const char       *payload,
          uint8_t          *out,
          size_t            capacity,
          size_t           *len)
{
  g_autoptr (GError) error = NULL;

  if (!pm_handshake_state_write_message (hs, (const uint8_t *) payload,
                                         payload ? strlen (payload) : 0, out, capacity, len, &error))
    g_error ("%s", error->message);
}

static void
hs_read (PmHandshakeState *hs,
         const uint8_t    *msg,
         size_t            len)
{
  g_autoptr (GError) error = NULL;
  uint8_t payload[256];
  size_t  plen = 0;

  if (!pm_handshake_state_read_message (hs, msg, len, payload, sizeof payload, &plen, &error))
    g_error ("%s", error->message);
}

/* Writes @msg as case @which, with the small payload buffer if @small, and a
 * truncated copy. */
static void
hs_seed (PmFuzzHandshakeCase which,
         gboolean            small,
         const char         *name,
         const uint8_t      *msg,
         size_t              len,
         gboolean            truncated_too)
{
  g_autofree uint8_t *buf = g_malloc (len + 1);
  g_autofree char    *tname = g_strconcat (name, "-truncated", NULL);

  buf[0] = (uint8_t) which;
  if (small)
    while (buf[0] < 0x80 || buf[0] % PM_FUZZ_HS_N_CASES != which)
      buf[0]++;
  memcpy (buf + 1, msg, len);
  write_seed ("handshake", name, buf, len + 1);
  if (truncated_too)
    write_seed ("handshake", tname, buf, len);
}

static void
gen_handshakes (void)
{
  g_autoptr (PmHandshakeState) i = NULL;
  g_autoptr (PmHandshakeState) r = NULL;
  g_auto (PmKeypair) responder = { 0 };
  uint8_t           msg[512], garbage[PM_IK_MSG1_LEN];
  size_t            len = 0;
  static const char timestamp[] = "\x40\x00\x00\x00\x65\x53\xf1\x00\x00\x00\x00\x01";

  /* (a) IK message 1, as the session sends it: a 12-byte timestamp payload. */
  pm_fuzz_keypair (PM_FUZZ_KEY_RESPONDER, &responder);
  i = new_state (PM_FUZZ_IK_PROTOCOL, PM_FUZZ_IK_PROLOGUE, PM_ROLE_INITIATOR,
                 PM_FUZZ_KEY_INITIATOR, PM_FUZZ_KEY_INITIATOR_E);
  pm_handshake_state_set_remote_static (i, responder.pub);
  if (!pm_handshake_state_write_message (i, (const uint8_t *) timestamp, PM_IK_TIMESTAMP_LEN, msg,
                                         sizeof msg, &len, NULL))
    g_error ("Cannot write IK message 1");
  g_assert (len == PM_IK_MSG1_LEN);
  hs_seed (PM_FUZZ_HS_IK_MSG1, FALSE, "ik-msg1", msg, len, TRUE);
  hs_seed (PM_FUZZ_HS_IK_MSG1, TRUE, "ik-msg1-small-buffer", msg, len, FALSE);
  g_clear_pointer (&i, pm_handshake_state_free);

  i = new_state (PM_FUZZ_IK_PROTOCOL, PM_FUZZ_IK_PROLOGUE, PM_ROLE_INITIATOR,
                 PM_FUZZ_KEY_INITIATOR, PM_FUZZ_KEY_INITIATOR_E);
  pm_handshake_state_set_remote_static (i, responder.pub);
  hs_write (i, NULL, msg, sizeof msg, &len);
  hs_seed (PM_FUZZ_HS_IK_MSG1, FALSE, "ik-msg1-no-payload", msg, len, FALSE);
  g_clear_pointer (&i, pm_handshake_state_free);

  for (size_t k = 0; k < sizeof garbage; k++)
    garbage[k] = (uint8_t) (k * 37 + 11);
  hs_seed (PM_FUZZ_HS_IK_MSG1, FALSE, "ik-msg1-garbage", garbage, sizeof garbage, FALSE);

  /* (b) XX message 2 to the fuzzed initiator; (c) message 3 to the fuzzed responder. */
  i = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_INITIATOR,
                 PM_FUZZ_KEY_INITIATOR, PM_FUZZ_KEY_INITIATOR_E);
  r = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_RESPONDER,
                 PM_FUZZ_KEY_RESPONDER, PM_FUZZ_KEY_RESPONDER_E);
  hs_write (i, NULL, msg, sizeof msg, &len);
  hs_read (r, msg, len);
  hs_write (r, NULL, msg, sizeof msg, &len); /* what the fuzzed responder writes */
  hs_seed (PM_FUZZ_HS_XX_MSG2, FALSE, "xx-msg2", msg, len, TRUE);
  hs_seed (PM_FUZZ_HS_XX_MSG2, FALSE, "xx-msg2-garbage", garbage, len, FALSE);
  hs_read (i, msg, len);
  hs_write (i, "payload of message 3", msg, sizeof msg, &len);
  hs_seed (PM_FUZZ_HS_XX_MSG3, FALSE, "xx-msg3-payload", msg, len, TRUE);
  hs_seed (PM_FUZZ_HS_XX_MSG3, TRUE, "xx-msg3-small-buffer", msg, len, FALSE);
  g_clear_pointer (&i, pm_handshake_state_free);
  g_clear_pointer (&r, pm_handshake_state_free);

  i = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_INITIATOR,
                 PM_FUZZ_KEY_INITIATOR, PM_FUZZ_KEY_INITIATOR_E);
  r = new_state (PM_FUZZ_XX_PROTOCOL, PM_FUZZ_XX_PROLOGUE, PM_ROLE_RESPONDER,
                 PM_FUZZ_KEY_RESPONDER, PM_FUZZ_KEY_RESPONDER_E);
  hs_write (i, NULL, msg, sizeof msg, &len);
  hs_read (r, msg, len);
  hs_write (r, "payload of message 2", msg, sizeof msg, &len);
  hs_seed (PM_FUZZ_HS_XX_MSG2, FALSE, "xx-msg2-payload", msg, len, FALSE);
  hs_seed (PM_FUZZ_HS_XX_MSG2, TRUE, "xx-msg2-small-buffer", msg, len, FALSE);
  hs_read (i, msg, len);
  hs_write (i, NULL, msg, sizeof msg, &len);
  /* Message 3 after a message 2 with a payload: the fuzzed responder's
   * transcript differs, so this one fails late (at the payload tag). */
  hs_seed (PM_FUZZ_HS_XX_MSG3, FALSE, "xx-msg3-other-transcript", msg, len, FALSE);
}

int
main (int   argc,
      char *argv[])
{
  if (argc != 2)
    {
      g_printerr ("Usage: %s DIR\nWrites the seed corpora into DIR/frame, DIR/handshake and DIR/session.\n",
                  argv[0]);
      return 2;
    }
  out_dir = argv[1];
  pm_fuzz_init ();

  gen_frames ();
  gen_handshakes ();
  gen_session_responder ();
  gen_session_rotation ();
  gen_session_initiator ();
  gen_session_queue ();
  gen_session_misc ();
  g_print ("%u files, %zu bytes in %s\n", n_files, n_bytes, out_dir);
  return 0;
}
