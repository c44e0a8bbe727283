/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmFrame: the transport's frame headers. Every type parses back what
 * pm_frame_write_*_header() wrote; every wrong length, reserved byte and type
 * is refused with its own error code; the byte order is pinned by hand-written
 * frames; and STUN's first bytes are never taken for ours.
 */
#define G_LOG_DOMAIN "pipermesh-test-frame"

#include <string.h>

#include "pm-frame.h"

/* Fills @buf with a recognisable body pattern. */
static void
fill (uint8_t *buf,
      size_t   len)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) (i * 7 + 3);
}

/* Parses what must be refused with @code, and checks that @frame is untouched. */
static void
assert_refused (const uint8_t *data,
                size_t         len,
                PmFrameError   code)
{
  g_autoptr (GError) error = NULL;
  PmFrame frame, untouched;

  memset (&frame, 0xa5, sizeof frame);
  untouched = frame;
  g_assert_false (pm_frame_parse (data, len, &frame, &error));
  g_assert_error (error, PM_FRAME_ERROR, (int) code);
  g_assert_nonnull (error->message);
  g_assert_cmpuint (strlen (error->message), >, 0);
  g_assert_cmpmem (&frame, sizeof frame, &untouched, sizeof untouched);
}

static void
parse_ok (const uint8_t *data,
          size_t         len,
          PmFrame       *frame)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (pm_frame_parse (data, len, frame, &error));
  g_assert_no_error (error);
  g_assert_true (frame->header == data);
  g_assert_true (frame->body == data + frame->header_len);
  g_assert_cmpuint (frame->header_len + frame->body_len, ==, len);
}

/* --- Round trips -------------------------------------------------------------- */

static void
test_init_roundtrip (void)
{
  static const uint32_t indexes[] = { 0, 1, 0x04030201, G_MAXUINT32 };
  uint8_t               buf[PM_INIT_FRAME_LEN];
  PmFrame               frame;

  for (size_t i = 0; i < G_N_ELEMENTS (indexes); i++)
    {
      fill (buf, sizeof buf);
      pm_frame_write_init_header (buf, indexes[i]);
      parse_ok (buf, sizeof buf, &frame);
      g_assert_cmpint (frame.type, ==, PM_FRAME_HANDSHAKE_INIT);
      g_assert_cmpuint (frame.sender_index, ==, indexes[i]);
      g_assert_cmpuint (frame.header_len, ==, PM_INIT_HEADER_LEN);
      g_assert_cmpuint (frame.body_len, ==, PM_IK_MSG1_LEN);
      /* The body is the caller's bytes, not a copy. */
      g_assert_true (frame.body == buf + PM_INIT_HEADER_LEN);
      g_assert_cmpuint (frame.body[0], ==, (uint8_t) (PM_INIT_HEADER_LEN * 7 + 3));
      g_assert_cmpuint (frame.receiver_index, ==, 0);
      g_assert_cmpuint (frame.counter, ==, 0);
      g_assert_cmpuint (frame.epoch, ==, 0);
    }
  g_assert_cmpuint (PM_INIT_FRAME_LEN, ==, 116);
}

static void
test_response_roundtrip (void)
{
  static const uint32_t indexes[][2] = {
    { 0, 0 },
    { 1, 2 },
    { 0x04030201, 0x08070605 },
    { G_MAXUINT32, 0x80000000 },
  };
  uint8_t buf[PM_RESPONSE_FRAME_LEN];
  PmFrame frame;

  for (size_t i = 0; i < G_N_ELEMENTS (indexes); i++)
    {
      fill (buf, sizeof buf);
      pm_frame_write_response_header (buf, indexes[i][0], indexes[i][1]);
      parse_ok (buf, sizeof buf, &frame);
      g_assert_cmpint (frame.type, ==, PM_FRAME_HANDSHAKE_RESPONSE);
      g_assert_cmpuint (frame.sender_index, ==, indexes[i][0]);
      g_assert_cmpuint (frame.receiver_index, ==, indexes[i][1]);
      g_assert_cmpuint (frame.header_len, ==, PM_RESPONSE_HEADER_LEN);
      g_assert_cmpuint (frame.body_len, ==, PM_IK_MSG2_LEN);
      g_assert_true (frame.body == buf + PM_RESPONSE_HEADER_LEN);
      g_assert_cmpuint (frame.counter, ==, 0);
      g_assert_cmpuint (frame.epoch, ==, 0);
    }
  g_assert_cmpuint (PM_RESPONSE_FRAME_LEN, ==, 60);
}

static void
test_data_roundtrip (void)
{
  static const struct {
    uint8_t  epoch;
    uint32_t receiver;
    uint64_t counter;
  } headers[] = {
    { 0, 0, 0 },
    { 1, 0x04030201, 1 },
    { 49, 0xdeadbeef, G_GUINT64_CONSTANT (0x0807060504030201) },
    { 255, G_MAXUINT32, G_MAXUINT64 },
  };
  static const size_t body_lens[] = { 16, 17, 1024 + 16, PM_MAX_NOISE_MESSAGE };
  g_autofree uint8_t *buf = g_malloc (PM_DATA_FRAME_MAX_LEN);
  PmFrame             frame;

  for (size_t h = 0; h < G_N_ELEMENTS (headers); h++)
    for (size_t b = 0; b < G_N_ELEMENTS (body_lens); b++)
      {
        size_t len = PM_DATA_HEADER_LEN + body_lens[b];

        fill (buf, len);
        pm_frame_write_data_header (buf, headers[h].epoch, headers[h].receiver, headers[h].counter);
        parse_ok (buf, len, &frame);
        g_assert_cmpint (frame.type, ==, PM_FRAME_DATA);
        g_assert_cmpuint (frame.epoch, ==, headers[h].epoch);
        g_assert_cmpuint (frame.receiver_index, ==, headers[h].receiver);
        g_assert_cmphex (frame.counter, ==, headers[h].counter);
        g_assert_cmpuint (frame.sender_index, ==, 0);
        /* The whole header is the associated data of the AEAD. */
        g_assert_cmpuint (frame.header_len, ==, PM_DATA_HEADER_LEN);
        g_assert_cmpuint (frame.body_len, ==, body_lens[b]);
        g_assert_true (frame.body == buf + PM_DATA_HEADER_LEN);
      }
  g_assert_cmpuint (PM_DATA_FRAME_MIN_LEN, ==, 32);
  g_assert_cmpuint (PM_DATA_FRAME_MAX_LEN, ==, 65551);
}

/* --- Byte order ------------------------------------------------------------- */

static void
test_little_endian (void)
{
  static const uint8_t init[PM_INIT_HEADER_LEN] = {
    0x81, 0x00, 0x00, 0x00, /* type, reserved */
    0x44, 0x33, 0x22, 0x11, /* sender index 0x11223344 */
  };
  static const uint8_t response[PM_RESPONSE_HEADER_LEN] = {
    0x82, 0x00, 0x00, 0x00, /* type, reserved */
    0x44, 0x33, 0x22, 0x11, /* sender index 0x11223344 */
    0xd4, 0xc3, 0xb2, 0xa1, /* receiver index 0xa1b2c3d4 */
  };
  static const uint8_t data[PM_DATA_HEADER_LEN] = {
    0x83, 0x07, 0x00, 0x00,                         /* type, epoch 7, reserved */
    0xd4, 0xc3, 0xb2, 0xa1,                         /* receiver index 0xa1b2c3d4 */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* counter 0x0102030405060708 */
  };
  uint8_t out[PM_DATA_HEADER_LEN];
  uint8_t frame_buf[PM_INIT_FRAME_LEN] = { 0 };
  PmFrame frame;

  /* Writing gives exactly these bytes... */
  pm_frame_write_init_header (out, 0x11223344);
  g_assert_cmpmem (out, PM_INIT_HEADER_LEN, init, sizeof init);
  pm_frame_write_response_header (out, 0x11223344, 0xa1b2c3d4);
  g_assert_cmpmem (out, PM_RESPONSE_HEADER_LEN, response, sizeof response);
  pm_frame_write_data_header (out, 7, 0xa1b2c3d4, G_GUINT64_CONSTANT (0x0102030405060708));
  g_assert_cmpmem (out, PM_DATA_HEADER_LEN, data, sizeof data);

  /* ...and parsing these bytes gives these values. */
  memcpy (frame_buf, init, sizeof init);
  parse_ok (frame_buf, PM_INIT_FRAME_LEN, &frame);
  g_assert_cmphex (frame.sender_index, ==, 0x11223344);

  memset (frame_buf, 0, sizeof frame_buf);
  memcpy (frame_buf, response, sizeof response);
  parse_ok (frame_buf, PM_RESPONSE_FRAME_LEN, &frame);
  g_assert_cmphex (frame.sender_index, ==, 0x11223344);
  g_assert_cmphex (frame.receiver_index, ==, 0xa1b2c3d4);

  memset (frame_buf, 0, sizeof frame_buf);
  memcpy (frame_buf, data, sizeof data);
  parse_ok (frame_buf, PM_DATA_FRAME_MIN_LEN, &frame);
  g_assert_cmpuint (frame.epoch, ==, 7);
  g_assert_cmphex (frame.receiver_index, ==, 0xa1b2c3d4);
  g_assert_cmphex (frame.counter, ==, G_GUINT64_CONSTANT (0x0102030405060708));
}

/* --- Refusals --------------------------------------------------------------- */

static void
test_empty (void)
{
  uint8_t byte = PM_FRAME_DATA;

  assert_refused (NULL, 0, PM_FRAME_ERROR_TRUNCATED);
  assert_refused (&byte, 0, PM_FRAME_ERROR_TRUNCATED);
}

/* Every length below the type's minimum, each in a buffer of exactly that
 * size so that a read past it would show under a sanitizer. */
static void
assert_truncated_below (PmFrameType type,
                        size_t      min)
{
  for (size_t len = 1; len < min; len++)
    {
      g_autofree uint8_t *buf = g_malloc0 (len);

      buf[0] = (uint8_t) type;
      assert_refused (buf, len, PM_FRAME_ERROR_TRUNCATED);
    }
}

static void
test_truncated (void)
{
  assert_truncated_below (PM_FRAME_HANDSHAKE_INIT, PM_INIT_FRAME_LEN);
  assert_truncated_below (PM_FRAME_HANDSHAKE_RESPONSE, PM_RESPONSE_FRAME_LEN);
  assert_truncated_below (PM_FRAME_DATA, PM_DATA_FRAME_MIN_LEN);
}

static void
test_oversized (void)
{
  size_t              big = PM_DATA_FRAME_MAX_LEN + 256;
  g_autofree uint8_t *buf = g_malloc0 (big);

  /* The handshake frames have one size: a byte more is refused. */
  pm_frame_write_init_header (buf, 1);
  for (size_t len = PM_INIT_FRAME_LEN + 1; len < PM_INIT_FRAME_LEN + 64; len++)
    assert_refused (buf, len, PM_FRAME_ERROR_TOO_LARGE);
  assert_refused (buf, big, PM_FRAME_ERROR_TOO_LARGE);

  pm_frame_write_response_header (buf, 1, 2);
  for (size_t len = PM_RESPONSE_FRAME_LEN + 1; len < PM_RESPONSE_FRAME_LEN + 64; len++)
    assert_refused (buf, len, PM_FRAME_ERROR_TOO_LARGE);
  assert_refused (buf, big, PM_FRAME_ERROR_TOO_LARGE);

  /* A data frame may carry up to the 65535-byte Noise limit, not one more. */
  pm_frame_write_data_header (buf, 0, 1, 2);
  assert_refused (buf, PM_DATA_FRAME_MAX_LEN + 1, PM_FRAME_ERROR_TOO_LARGE);
  assert_refused (buf, big, PM_FRAME_ERROR_TOO_LARGE);
  assert_refused (buf, G_MAXSIZE, PM_FRAME_ERROR_TOO_LARGE);
}

static void
test_reserved (void)
{
  static const uint8_t values[] = { 0x01, 0x80, 0xff };
  uint8_t              buf[PM_INIT_FRAME_LEN];
  PmFrame              frame;

  for (size_t v = 0; v < G_N_ELEMENTS (values); v++)
    {
      for (size_t pos = 1; pos <= 3; pos++)
        {
          memset (buf, 0, sizeof buf);
          pm_frame_write_init_header (buf, 1);
          buf[pos] = values[v];
          assert_refused (buf, PM_INIT_FRAME_LEN, PM_FRAME_ERROR_RESERVED);

          memset (buf, 0, sizeof buf);
          pm_frame_write_response_header (buf, 1, 2);
          buf[pos] = values[v];
          assert_refused (buf, PM_RESPONSE_FRAME_LEN, PM_FRAME_ERROR_RESERVED);
        }
      /* Data: byte 1 is the epoch, bytes 2 and 3 are reserved. */
      for (size_t pos = 2; pos <= 3; pos++)
        {
          memset (buf, 0, sizeof buf);
          pm_frame_write_data_header (buf, 0, 1, 2);
          buf[pos] = values[v];
          assert_refused (buf, PM_DATA_FRAME_MIN_LEN, PM_FRAME_ERROR_RESERVED);
        }
    }

  /* A truncated frame with a bad reserved byte: the length is reported first. */
  memset (buf, 0, sizeof buf);
  pm_frame_write_init_header (buf, 1);
  buf[1] = 1;
  assert_refused (buf, PM_INIT_FRAME_LEN - 1, PM_FRAME_ERROR_TRUNCATED);

  /* Any epoch is fine. */
  memset (buf, 0, sizeof buf);
  pm_frame_write_data_header (buf, 0xff, 1, 2);
  parse_ok (buf, PM_DATA_FRAME_MIN_LEN, &frame);
  g_assert_cmpuint (frame.epoch, ==, 0xff);
}

static void
test_unknown_type (void)
{
  uint8_t buf[PM_INIT_FRAME_LEN] = { 0 };

  for (unsigned type = 0; type <= 0xff; type++)
    {
      if (type >= PM_FRAME_HANDSHAKE_INIT && type <= PM_FRAME_DATA)
        continue;
      buf[0] = (uint8_t) type;
      /* Whatever the length, even one that would suit a known type. */
      assert_refused (buf, 1, PM_FRAME_ERROR_UNKNOWN_TYPE);
      assert_refused (buf, PM_DATA_FRAME_MIN_LEN, PM_FRAME_ERROR_UNKNOWN_TYPE);
      assert_refused (buf, PM_INIT_FRAME_LEN, PM_FRAME_ERROR_UNKNOWN_TYPE);
    }
}

static void
test_error_messages (void)
{
  uint8_t buf[PM_INIT_FRAME_LEN] = { 0 };
  PmFrame frame;
  g_autoptr (GError) error = NULL;

  /* Messages a person can act on: the type and the sizes. */
  pm_frame_write_init_header (buf, 1);
  g_assert_false (pm_frame_parse (buf, 50, &frame, &error));
  g_assert_nonnull (strstr (error->message, "handshake initiation"));
  g_assert_nonnull (strstr (error->message, "50"));
  g_assert_nonnull (strstr (error->message, "116"));
  g_clear_error (&error);

  buf[0] = 0x99;
  g_assert_false (pm_frame_parse (buf, sizeof buf, &frame, &error));
  g_assert_nonnull (strstr (error->message, "0x99"));
}

/* --- Demultiplexing ------------------------------------------------------------- */

static void
test_is_pipermesh (void)
{
  /* A STUN Binding request and success response, as they start on the wire. */
  static const uint8_t stun_request[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };
  static const uint8_t stun_response[20] = { 0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42 };
  uint8_t              byte;

  g_assert_false (pm_frame_is_pipermesh (stun_request, sizeof stun_request));
  g_assert_false (pm_frame_is_pipermesh (stun_response, sizeof stun_response));
  g_assert_false (pm_frame_is_pipermesh (stun_request, 0));

  for (unsigned b = 0; b <= 0xff; b++)
    {
      gboolean ours = b == PM_FRAME_HANDSHAKE_INIT || b == PM_FRAME_HANDSHAKE_RESPONSE ||
                      b == PM_FRAME_DATA;

      byte = (uint8_t) b;
      g_assert_cmpint (pm_frame_is_pipermesh (&byte, 1), ==, ours);
      /* STUN and TURN ChannelData (first two bits 00 or 01) are never ours. */
      if (b < 0x80)
        g_assert_false (pm_frame_is_pipermesh (&byte, 1));
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/frame/init/roundtrip", test_init_roundtrip);
  g_test_add_func ("/frame/response/roundtrip", test_response_roundtrip);
  g_test_add_func ("/frame/data/roundtrip", test_data_roundtrip);
  g_test_add_func ("/frame/little-endian", test_little_endian);
  g_test_add_func ("/frame/refuse/empty", test_empty);
  g_test_add_func ("/frame/refuse/truncated", test_truncated);
  g_test_add_func ("/frame/refuse/oversized", test_oversized);
  g_test_add_func ("/frame/refuse/reserved", test_reserved);
  g_test_add_func ("/frame/refuse/unknown-type", test_unknown_type);
  g_test_add_func ("/frame/refuse/messages", test_error_messages);
  g_test_add_func ("/frame/is-pipermesh", test_is_pipermesh);

  return g_test_run ();
}
