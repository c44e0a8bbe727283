/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * Every timer and limit of the transport in one place (see docs/PROTOCOL.md).
 * Sessions take their thresholds from a PmSessionLimits (pm-session.h) whose
 * defaults are these, so tests can force many rotations in little time.
 */

/* --- Framing ------------------------------------------------------------ */

/* Largest Noise message (spec §3) and so the largest frame body. */
#define PM_MAX_NOISE_MESSAGE 65535
/* Data frame header: type, epoch, reserved[2], receiver index, counter. */
#define PM_DATA_HEADER_LEN 16
/* Largest plaintext one data frame carries. */
#define PM_MAX_PLAINTEXT (PM_MAX_NOISE_MESSAGE - 16)

/* --- Replay protection (RFC 6479) ---------------------------------------- */

/* 256 blocks of 64 bits (2 KiB per key pair); one block is always being
 * recycled, so the window that is guaranteed is 255 × 64 = 16320 counters
 * (≥ the 2048 we promise). It is this wide for path migration: when data
 * moves from the relay to a direct path, the direct copies overtake what is
 * still in flight on the relay; at ~100k packets/s a relay 40 ms behind is
 * 4000 counters back, and a 4032-counter window refused those packets as
 * too old, which SCTP then had to recover with a 1 s retransmission
 * timeout (seen in the NAT lab). */
#define PM_REPLAY_RING_BLOCKS 256
#define PM_REPLAY_WINDOW      ((PM_REPLAY_RING_BLOCKS - 1) * 64)

/* --- Key rotation --------------------------------------------------------- */

/* An epoch is one Noise Rekey() of a direction's key, every 2^16 messages. */
#define PM_MESSAGES_PER_EPOCH (G_GUINT64_CONSTANT (1) << 16)
/* After this many epochs or this long, whichever is first, a fresh IK handshake. */
#define PM_EPOCHS_PER_SESSION  50
#define PM_SESSION_LIFETIME_US (G_GINT64_CONSTANT (10) * 60 * G_USEC_PER_SEC)
/* Hard limits: past these a key pair is never used to send again (messages are
 * queued until the new handshake completes). */
#define PM_REJECT_AFTER_EPOCHS 64
#define PM_REJECT_AFTER_US     (G_GINT64_CONSTANT (12) * 60 * G_USEC_PER_SEC)
/* How long the previous key pair still decrypts after a rotation. */
#define PM_PREVIOUS_KEYS_GRACE_US (G_GINT64_CONSTANT (10) * G_USEC_PER_SEC)
/* How many epochs a receiver derives forward when packets of skipped epochs
 * were all lost. */
#define PM_MAX_EPOCH_SKIP 8
/* The epoch field is one byte. */
#define PM_MAX_EPOCHS 255

/* --- Handshakes ------------------------------------------------------------ */

/* Resend a handshake initiation (with a fresh ephemeral and timestamp) this
 * often while no response arrives, and give up after this long. */
#define PM_HANDSHAKE_RETRY_US   (G_GINT64_CONSTANT (1) * G_USEC_PER_SEC)
#define PM_HANDSHAKE_GIVE_UP_US (G_GINT64_CONSTANT (90) * G_USEC_PER_SEC)
/* Application messages held while no key pair may send. */
#define PM_SEND_QUEUE_MAX 4096
