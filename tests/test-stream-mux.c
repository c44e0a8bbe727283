/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmStreamMux and PmStream: two multiplexers joined in this process by a
 * simulated link (GLib main-loop timers) that can lose, duplicate, reorder
 * and delay packets, and "switch path" (drop everything for a while, then
 * carry on with another delay). Every wait is bounded (pm_test_spin_until).
 */
#define G_LOG_DOMAIN "pipermesh-test"

#include <gio/gio.h>
#include <string.h>

#include "pm-sctp-private.h"
#include "pm-stream-control.h"
#include "pm-stream-mux.h"
#include "pm-test-util.h"

#define CONNECT_TIMEOUT_MS  10000
#define TRANSFER_TIMEOUT_MS 120000
#define CHUNK               (64 * 1024)
#define MIB                 (1024 * 1024)

/* --- The simulated link ----------------------------------------------------------- */

typedef struct {
  double   loss;      /* probability that a packet is dropped */
  double   duplicate; /* … sent twice */
  double   reorder;   /* … held back by up to jitter_ms more */
  unsigned delay_ms;  /* one way */
  unsigned jitter_ms;
} LinkParams;

typedef struct {
  int64_t due_us;
  GBytes *packet;
} Pending;

typedef struct {
  GRand       *rand;
  LinkParams   params;
  int64_t      blackout_until_us;
  GQueue       queue[2]; /* Pending, by due time; [0]: a → b */
  GSource     *source;
  PmStreamMux *mux[2];
  uint64_t     packets[2];
  uint64_t     dropped[2];
  size_t       largest_packet;
} Link;

typedef struct {
  Link    *link;
  unsigned dir;
} LinkEnd;

static int64_t
link_next_due (Link *link)
{
  int64_t next = -1;

  for (unsigned d = 0; d < 2; d++)
    {
      Pending *p = g_queue_peek_head (&link->queue[d]);

      if (p != NULL && (next < 0 || p->due_us < next))
        next = p->due_us;
    }
  return next;
}

static void
link_schedule (Link *link)
{
  int64_t next = link_next_due (link);

  if (link->source != NULL)
    g_source_set_ready_time (link->source, next);
}

static void
pending_free (Pending *p)
{
  g_bytes_unref (p->packet);
  g_free (p);
}

static void
link_enqueue (Link    *link,
              unsigned dir,
              GBytes  *packet,
              int64_t  due_us)
{
  GQueue  *q = &link->queue[dir];
  Pending *p = g_new (Pending, 1);
  GList   *l;

  p->due_us = due_us;
  p->packet = g_bytes_ref (packet);
  /* Mostly appended in order; a reordered packet walks back a little. */
  for (l = q->tail; l != NULL && ((Pending *) l->data)->due_us > due_us; l = l->prev)
    ;
  if (l == NULL)
    g_queue_push_head (q, p);
  else
    g_queue_insert_after (q, l, p);
}

static void
link_output (const uint8_t *packet,
             size_t         len,
             gpointer       user_data)
{
  LinkEnd *end = user_data;
  Link    *link = end->link;
  int64_t  now = g_get_monotonic_time ();
  int64_t  due;
  g_autoptr (GBytes) bytes = NULL;

  link->packets[end->dir]++;
  link->largest_packet = MAX (link->largest_packet, len);
  if (now < link->blackout_until_us ||
      (link->params.loss > 0 && g_rand_double (link->rand) < link->params.loss))
    {
      link->dropped[end->dir]++;
      return;
    }
  bytes = g_bytes_new (packet, len);
  due = now + (int64_t) link->params.delay_ms * 1000;
  if (link->params.reorder > 0 && g_rand_double (link->rand) < link->params.reorder)
    due += g_rand_int_range (link->rand, 0, (int) link->params.jitter_ms * 1000 + 1);
  link_enqueue (link, end->dir, bytes, due);
  if (link->params.duplicate > 0 && g_rand_double (link->rand) < link->params.duplicate)
    link_enqueue (link, end->dir, bytes,
                  due + g_rand_int_range (link->rand, 0, (int) link->params.jitter_ms * 1000 + 1));
  link_schedule (link);
}

static gboolean
link_dispatch (GSource    *source,
               GSourceFunc callback,
               gpointer    user_data)
{
  Link   *link = user_data;
  int64_t now = g_get_monotonic_time ();

  /* A bounded batch per dispatch, so the applications' sources run too. */
  for (unsigned n = 0; n < 512; n++)
    {
      Pending *p = NULL;
      unsigned dir = 0;

      for (unsigned d = 0; d < 2; d++)
        {
          Pending *head = g_queue_peek_head (&link->queue[d]);

          if (head != NULL && head->due_us <= now && (p == NULL || head->due_us < p->due_us))
            {
              p = head;
              dir = d;
            }
        }
      if (p == NULL)
        break;
      g_queue_pop_head (&link->queue[dir]);
      if (link->mux[1 - dir] != NULL)
        pm_stream_mux_input (link->mux[1 - dir], g_bytes_get_data (p->packet, NULL),
                             g_bytes_get_size (p->packet));
      pending_free (p);
    }
  link_schedule (link);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs link_funcs = {
  .dispatch = link_dispatch,
};

static Link *
link_new (const LinkParams *params)
{
  Link *link = g_new0 (Link, 1);

  link->rand = g_rand_new_with_seed (0x5049504d);
  if (params != NULL)
    link->params = *params;
  g_queue_init (&link->queue[0]);
  g_queue_init (&link->queue[1]);
  link->source = g_source_new (&link_funcs, sizeof (GSource));
  g_source_set_callback (link->source, NULL, link, NULL);
  g_source_set_name (link->source, "test link");
  g_source_attach (link->source, NULL);
  return link;
}

/* "Switches path": nothing gets through for @ms, then packets take
 * @delay_ms. What was in flight is lost. */
static void
link_switch_path (Link    *link,
                  unsigned ms,
                  unsigned delay_ms)
{
  link->blackout_until_us = g_get_monotonic_time () + (int64_t) ms * 1000;
  for (unsigned d = 0; d < 2; d++)
    {
      link->dropped[d] += g_queue_get_length (&link->queue[d]);
      g_queue_clear_full (&link->queue[d], (GDestroyNotify) pending_free);
    }
  link->params.delay_ms = delay_ms;
  link_schedule (link);
}

static void
link_free (Link *link)
{
  for (unsigned d = 0; d < 2; d++)
    g_queue_clear_full (&link->queue[d], (GDestroyNotify) pending_free);
  g_source_destroy (link->source);
  g_source_unref (link->source);
  g_rand_free (link->rand);
  g_free (link);
}

/* --- Two multiplexers ----------------------------------------------------------------- */

typedef struct {
  Link        *link;
  PmStreamMux *a;
  PmStreamMux *b;
  GPtrArray   *incoming[2]; /* PmStream the services accepted, per side */
  GPtrArray   *deferred[2]; /* PmStream kept undecided */
} Pair;

/* The services of both sides: "ok*" is accepted, "forbidden" refused with a
 * reason, "later" left undecided (kept), anything else unhandled. */
static void
on_stream_requested (PmStreamMux *mux,
                     PmStream    *stream,
                     const char  *service,
                     gpointer     user_data)
{
  Pair    *pair = user_data;
  unsigned side = mux == pair->a ? 0 : 1;

  g_assert_true (pm_stream_is_incoming (stream));
  g_assert_cmpstr (service, ==, pm_stream_get_service (stream));
  if (g_str_has_prefix (service, "ok"))
    {
      pm_stream_accept (stream);
      g_ptr_array_add (pair->incoming[side], g_object_ref (stream));
      return;
    }
  if (g_str_equal (service, "forbidden"))
    {
      pm_stream_refuse (stream, "service 'forbidden' is not allowed for this device");
      return;
    }
  if (g_str_equal (service, "later"))
    {
      g_ptr_array_add (pair->deferred[side], g_object_ref (stream)); /* decided later */
      return;
    }
  /* Anything else: neither decided nor kept, so refused. */
}

static gboolean
pair_connected (gpointer data)
{
  Pair *pair = data;

  return pm_stream_mux_get_state (pair->a) == PM_STREAM_MUX_STATE_CONNECTED &&
         pm_stream_mux_get_state (pair->b) == PM_STREAM_MUX_STATE_CONNECTED;
}

static Pair *
pair_new (const LinkParams        *params,
          const PmStreamMuxLimits *limits)
{
  Pair    *pair = g_new0 (Pair, 1);
  LinkEnd *end_a = g_new (LinkEnd, 1);
  LinkEnd *end_b = g_new (LinkEnd, 1);

  pair->link = link_new (params);
  end_a->link = end_b->link = pair->link;
  end_a->dir = 0;
  end_b->dir = 1;
  pair->a = pm_stream_mux_new (TRUE, link_output, end_a, g_free, limits);
  pair->b = pm_stream_mux_new (FALSE, link_output, end_b, g_free, limits);
  pair->link->mux[0] = pair->a;
  pair->link->mux[1] = pair->b;
  for (unsigned i = 0; i < 2; i++)
    {
      pair->incoming[i] = g_ptr_array_new_with_free_func (g_object_unref);
      pair->deferred[i] = g_ptr_array_new_with_free_func (g_object_unref);
    }
  g_signal_connect (pair->a, "stream-requested", G_CALLBACK (on_stream_requested), pair);
  g_signal_connect (pair->b, "stream-requested", G_CALLBACK (on_stream_requested), pair);
  return pair;
}

static void
pair_start (Pair *pair)
{
  pm_stream_mux_start (pair->a);
  pm_stream_mux_start (pair->b);
  g_assert_true (pm_test_spin_until (pair_connected, pair, CONNECT_TIMEOUT_MS));
}

static gboolean
sctp_finished (gpointer data)
{
  return !pm_sctp_is_running () && !pm_sctp_is_ticking ();
}

static void
pair_free (Pair *pair)
{
  for (unsigned i = 0; i < 2; i++)
    {
      g_ptr_array_unref (pair->incoming[i]);
      g_ptr_array_unref (pair->deferred[i]);
    }
  pm_stream_mux_close (pair->a);
  pm_stream_mux_close (pair->b);
  pair->link->mux[0] = pair->link->mux[1] = NULL;
  g_object_unref (pair->a);
  g_object_unref (pair->b);
  link_free (pair->link);
  g_free (pair);
  /* usrsctp is shut down after the last multiplexer, and its timer stops. */
  g_assert_true (pm_test_spin_until (sctp_finished, NULL, 10000));
}

/* --- Control messages ------------------------------------------------------------- */

/* The fuzz seeds double as test vectors: ok-* parse and write back byte for
 * byte, bad-* are refused. */
static void
test_control_corpus (void)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "fuzz", "corpus", "stream-control",
                                                NULL);
  g_autoptr (GDir) d = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;
  unsigned    n_ok = 0, n_bad = 0;

  d = g_dir_open (dir, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *data = NULL;
      gsize            len;
      PmStreamControl  msg;
      uint8_t          out[PM_STREAM_CONTROL_MAX_LEN];
      g_autoptr (GError) parse_error = NULL;
      gboolean ok;

      g_assert_true (g_file_get_contents (path, &data, &len, NULL));
      ok = pm_stream_control_parse ((const uint8_t *) data, len, &msg, &parse_error);
      if (g_str_has_prefix (name, "ok-"))
        {
          g_assert_no_error (parse_error);
          g_assert_true (ok);
          g_assert_cmpuint (pm_stream_control_write (&msg, out, sizeof out), ==, len);
          g_assert_cmpmem (out, len, data, len);
          n_ok++;
        }
      else
        {
          g_assert_true (g_str_has_prefix (name, "bad-"));
          g_assert_false (ok);
          g_assert_nonnull (parse_error);
          g_assert_cmpuint (parse_error->domain, ==, PM_STREAM_CONTROL_ERROR);
          n_bad++;
        }
    }
  g_assert_cmpuint (n_ok, >=, 10);
  g_assert_cmpuint (n_bad, >=, 20);
}

static void
test_control_rules (void)
{
  static const uint8_t reserved[] = { PM_STREAM_CONTROL_FIN, 1 };
  static const uint8_t unknown[] = { 0x42, 0 };
  uint8_t              out[PM_STREAM_CONTROL_MAX_LEN];
  PmStreamControl      msg = { .type = PM_STREAM_CONTROL_OPEN, .window = 1000 };
  g_autoptr (GError) error = NULL;
  g_autofree char *long_reason = NULL;

  g_assert_false (pm_stream_control_parse (reserved, sizeof reserved, &msg, &error));
  g_assert_error (error, PM_STREAM_CONTROL_ERROR, PM_STREAM_CONTROL_ERROR_RESERVED);
  g_clear_error (&error);
  g_assert_false (pm_stream_control_parse (unknown, sizeof unknown, &msg, &error));
  g_assert_error (error, PM_STREAM_CONTROL_ERROR, PM_STREAM_CONTROL_ERROR_UNKNOWN_TYPE);
  g_clear_error (&error);

  /* The writer never writes what the parser would refuse. */
  msg = (PmStreamControl){ .type = PM_STREAM_CONTROL_OPEN, .window = 1000 };
  msg.text = "ssh";
  msg.text_len = 3;
  g_assert_cmpuint (pm_stream_control_write (&msg, out, sizeof out), ==, 0); /* window < 1 KiB */
  msg.window = PM_STREAM_WINDOW;
  msg.text = "two words";
  msg.text_len = 9;
  g_assert_cmpuint (pm_stream_control_write (&msg, out, sizeof out), ==, 0);
  msg = (PmStreamControl){ .type = PM_STREAM_CONTROL_RESET, .text = "a\nb", .text_len = 3 };
  g_assert_cmpuint (pm_stream_control_write (&msg, out, sizeof out), ==, 0);
  g_assert_true (pm_stream_control_is_final (PM_STREAM_CONTROL_CLOSE));
  g_assert_false (pm_stream_control_is_final (PM_STREAM_CONTROL_FIN));

  /* A long reason is cut at a character boundary within the limit. */
  long_reason = g_strnfill (200, 'x');
  {
    GString *with_accents = g_string_new (long_reason);
    size_t   n;

    for (unsigned i = 0; i < 40; i++)
      g_string_append (with_accents, "\u00e9"); /* 2 bytes each */
    n = pm_stream_reason_clamp (with_accents->str);
    g_assert_cmpuint (n, <=, PM_STREAM_MAX_REASON_LEN);
    g_assert_cmpuint (n, >=, PM_STREAM_MAX_REASON_LEN - 1);
    g_assert_true (g_utf8_validate_len (with_accents->str, n, NULL));
    g_string_free (with_accents, TRUE);
  }
}

/* --- Opening ------------------------------------------------------------------------ */

typedef struct {
  gboolean  done;
  PmStream *stream;
  GError   *error;
} OpenResult;

static void
on_opened (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  OpenResult *r = user_data;

  r->stream = pm_stream_mux_open_finish (PM_STREAM_MUX (source), result, &r->error);
  r->done = TRUE;
}

static PmStream *
open_stream (PmStreamMux *mux,
             const char  *service,
             GError     **error)
{
  OpenResult r = { 0 };

  pm_stream_mux_open_async (mux, service, NULL, on_opened, &r);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &r.done, CONNECT_TIMEOUT_MS));
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.stream;
}

static void
test_open_accept_refuse (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) stream = NULL;
  OpenResult early = { 0 };

  /* An open before the association is up waits for it. */
  pm_stream_mux_open_async (pair->a, "ok-early", NULL, on_opened, &early);
  pair_start (pair);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &early.done, CONNECT_TIMEOUT_MS));
  g_assert_no_error (early.error);
  g_assert_nonnull (early.stream);
  g_assert_cmpuint (pm_stream_get_id (early.stream) % 2, ==, 0); /* a: even ids */
  g_assert_false (pm_stream_is_incoming (early.stream));
  g_clear_object (&early.stream);

  stream = open_stream (pair->b, "ok-b", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (pm_stream_get_id (stream) % 2, ==, 1); /* b: odd ids */
  g_assert_cmpstr (pm_stream_get_service (stream), ==, "ok-b");
  g_assert_cmpuint (pair->incoming[0]->len, ==, 1);

  g_assert_null (open_stream (pair->a, "forbidden", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_REFUSED);
  g_assert_cmpstr (error->message, ==, "service 'forbidden' is not allowed for this device");
  g_clear_error (&error);

  g_assert_null (open_stream (pair->a, "nothing-here", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_REFUSED);
  g_assert_cmpstr (error->message, ==, "No service 'nothing-here' on this device");
  g_clear_error (&error);

  g_assert_null (open_stream (pair->a, "bad service", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_INVALID_SERVICE);
  g_clear_error (&error);

  /* Every packet fits the fixed MTU. */
  g_assert_cmpuint (pair->link->largest_packet, <=, PM_STREAM_MTU);
  g_assert_cmpuint (pair->link->largest_packet, >, 0);

  g_clear_object (&stream);
  pair_free (pair);
}

/* --- Moving bytes ------------------------------------------------------------------ */

/* Deterministic bytes: xorshift64* per stream. */
static void
fill_pattern (uint64_t *state,
              uint8_t  *buf,
              size_t    len)
{
  for (size_t i = 0; i < len; i += 8)
    {
      uint64_t x = *state;

      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      *state = x;
      x *= G_GUINT64_CONSTANT (0x2545F4914F6CDD1D);
      memcpy (buf + i, &x, MIN (8, len - i));
    }
}

typedef struct {
  GOutputStream *out;
  uint64_t       total;
  uint64_t       generated;
  uint64_t       sent;
  uint64_t       rng;
  GChecksum     *sum;
  uint8_t        buf[CHUNK];
  size_t         buf_len;
  size_t         buf_off;
  gboolean       close_at_end;
  gboolean       done;
  GError        *error;
} Sender;

typedef struct {
  GInputStream *in;
  uint64_t      received;
  GChecksum    *sum;
  uint8_t       buf[CHUNK];
  gboolean      paused;
  gboolean      reading;
  gboolean      done; /* end of stream, or error */
  GError       *error;
  int64_t       watch_after_us; /* first data after this time: */
  int64_t       first_after_us;
  int64_t       finished_us;
} Receiver;

static void sender_pump (Sender *s);

static void
on_sender_closed (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Sender *s = user_data;

  g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, &s->error);
  s->done = TRUE;
}

static void
on_written (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Sender *s = user_data;
  gssize  n = g_output_stream_write_finish (G_OUTPUT_STREAM (source), result, &s->error);

  if (n < 0)
    {
      s->done = TRUE;
      return;
    }
  g_assert_cmpint (n, >, 0);
  s->buf_off += (size_t) n;
  s->sent += (uint64_t) n;
  sender_pump (s);
}

static void
sender_pump (Sender *s)
{
  if (s->buf_off == s->buf_len)
    {
      if (s->generated == s->total)
        {
          if (s->close_at_end)
            g_output_stream_close_async (s->out, G_PRIORITY_DEFAULT, NULL, on_sender_closed, s);
          else
            s->done = TRUE;
          return;
        }
      s->buf_len = (size_t) MIN (CHUNK, s->total - s->generated);
      fill_pattern (&s->rng, s->buf, s->buf_len);
      g_checksum_update (s->sum, s->buf, s->buf_len);
      s->generated += s->buf_len;
      s->buf_off = 0;
    }
  g_output_stream_write_async (s->out, s->buf + s->buf_off, s->buf_len - s->buf_off,
                               G_PRIORITY_DEFAULT, NULL, on_written, s);
}

static Sender *
sender_start (gpointer stream, /* a GIOStream */
              uint64_t total,
              uint64_t seed)
{
  Sender *s = g_new0 (Sender, 1);

  s->out = g_io_stream_get_output_stream (G_IO_STREAM (stream));
  s->total = total;
  s->rng = seed | 1;
  s->sum = g_checksum_new (G_CHECKSUM_SHA256);
  s->close_at_end = TRUE;
  sender_pump (s);
  return s;
}

static void
sender_free (Sender *s)
{
  g_checksum_free (s->sum);
  g_clear_error (&s->error);
  g_free (s);
}

static void receiver_read (Receiver *r);

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Receiver *r = user_data;
  gssize    n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &r->error);
  int64_t   now = g_get_monotonic_time ();

  r->reading = FALSE;
  if (n <= 0)
    {
      r->done = TRUE;
      r->finished_us = now;
      return;
    }
  g_checksum_update (r->sum, r->buf, (size_t) n);
  r->received += (uint64_t) n;
  if (r->watch_after_us != 0 && r->first_after_us == 0 && now >= r->watch_after_us)
    r->first_after_us = now;
  if (!r->paused)
    receiver_read (r);
}

static void
receiver_read (Receiver *r)
{
  if (r->reading || r->done)
    return;
  r->reading = TRUE;
  g_input_stream_read_async (r->in, r->buf, sizeof r->buf, G_PRIORITY_DEFAULT, NULL, on_read, r);
}

static Receiver *
receiver_start (gpointer stream, /* a GIOStream */
                gboolean paused)
{
  Receiver *r = g_new0 (Receiver, 1);

  r->in = g_io_stream_get_input_stream (G_IO_STREAM (stream));
  r->sum = g_checksum_new (G_CHECKSUM_SHA256);
  r->paused = paused;
  if (!paused)
    receiver_read (r);
  return r;
}

static void
receiver_free (Receiver *r)
{
  g_checksum_free (r->sum);
  g_clear_error (&r->error);
  g_free (r);
}

/* A transfer over one stream in one direction. */
typedef struct {
  Sender   *sender;
  Receiver *receiver;
} Flow;

static gboolean
flows_done (gpointer data)
{
  GPtrArray *flows = data;

  for (unsigned i = 0; i < flows->len; i++)
    {
      Flow *f = g_ptr_array_index (flows, i);

      if (!f->sender->done || !f->receiver->done)
        return FALSE;
    }
  return TRUE;
}

static void
flow_free (Flow *f)
{
  sender_free (f->sender);
  receiver_free (f->receiver);
  g_free (f);
}

static void
check_flow (Flow *f)
{
  g_assert_no_error (f->sender->error);
  g_assert_no_error (f->receiver->error);
  g_assert_cmpuint (f->receiver->received, ==, f->sender->total);
  g_assert_cmpstr (g_checksum_get_string (f->receiver->sum), ==,
                   g_checksum_get_string (f->sender->sum));
}

/* The peer's side of a stream @local opened: the accepted PmStream. */
static PmStream *
peer_stream (Pair     *pair,
             unsigned  peer_side,
             PmStream *local)
{
  GPtrArray *incoming = pair->incoming[peer_side];

  /* The newest first: an id may have served an older, finished stream. */
  for (unsigned i = incoming->len; i-- > 0;)
    {
      PmStream *s = g_ptr_array_index (incoming, i);

      if (pm_stream_get_id (s) == pm_stream_get_id (local) &&
          !g_io_stream_is_closed (G_IO_STREAM (s)))
        return s;
    }
  g_assert_not_reached ();
}

static gboolean
no_streams_open (gpointer data)
{
  Pair            *pair = data;
  PmStreamMuxStats a, b;

  pm_stream_mux_get_stats (pair->a, &a);
  pm_stream_mux_get_stats (pair->b, &b);
  return a.streams_open == 0 && b.streams_open == 0;
}

/* Opens @n streams from a and sends @mib MiB on each, a → b, and back on
 * the first @n_back of them; checks every byte (SHA-256) and that every
 * stream id is free again after both ends closed. Returns the elapsed time. */
static double
run_transfers (Pair    *pair,
               unsigned n,
               unsigned n_back,
               unsigned mib,
               unsigned timeout_ms)
{
  g_autoptr (GPtrArray) streams = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) flows = g_ptr_array_new_with_free_func ((GDestroyNotify) flow_free);
  int64_t  start;
  double   seconds;
  uint64_t bytes = 0;

  for (unsigned i = 0; i < n; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *service = g_strdup_printf ("ok-%u", i);
      PmStream        *s = open_stream (pair->a, service, &error);

      g_assert_no_error (error);
      g_ptr_array_add (streams, s);
    }
  start = g_get_monotonic_time ();
  for (unsigned i = 0; i < n; i++)
    {
      PmStream *local = g_ptr_array_index (streams, i);
      PmStream *remote = peer_stream (pair, 1, local);
      Flow     *f = g_new0 (Flow, 1);

      f->sender = sender_start (local, (uint64_t) mib * MIB, 1000 + i);
      f->receiver = receiver_start (remote, FALSE);
      g_ptr_array_add (flows, f);
      bytes += (uint64_t) mib * MIB;
      if (i < n_back)
        {
          f = g_new0 (Flow, 1);
          f->sender = sender_start (remote, (uint64_t) mib * MIB, 2000 + i);
          f->receiver = receiver_start (local, FALSE);
          g_ptr_array_add (flows, f);
          bytes += (uint64_t) mib * MIB;
        }
      else
        /* Nothing back: b half-closes at once, a reads the end at once. */
        g_output_stream_close (g_io_stream_get_output_stream (G_IO_STREAM (remote)), NULL, NULL);
    }
  g_assert_true (pm_test_spin_until (flows_done, flows, timeout_ms));
  seconds = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  for (unsigned i = 0; i < flows->len; i++)
    check_flow (g_ptr_array_index (flows, i));
  g_test_message ("%u streams, %.1f MiB in %.2f s: %.1f MB/s", n, (double) bytes / MIB, seconds,
                  (double) bytes / seconds / 1e6);

  /* Reading the ends of one-way streams */
  for (unsigned i = n_back; i < n; i++)
    {
      PmStream *local = g_ptr_array_index (streams, i);
      Receiver *r = receiver_start (local, FALSE);

      g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &r->done, timeout_ms));
      g_assert_no_error (r->error);
      g_assert_cmpuint (r->received, ==, 0);
      receiver_free (r);
    }
  /* Both ends closed: every id is free again on both sides. */
  for (unsigned i = 0; i < n; i++)
    {
      PmStream *local = g_ptr_array_index (streams, i);

      g_io_stream_close (G_IO_STREAM (peer_stream (pair, 1, local)), NULL, NULL);
      g_io_stream_close (G_IO_STREAM (local), NULL, NULL);
    }
  g_assert_true (pm_test_spin_until (no_streams_open, pair, timeout_ms));
  g_ptr_array_set_size (pair->incoming[1], 0);
  return seconds;
}

static void
print_stats (const char  *what,
             PmStreamMux *mux)
{
  PmStreamMuxStats st;

  pm_stream_mux_get_stats (mux, &st);
  g_test_message ("%s: %" G_GUINT64_FORMAT " packets out (%" G_GUINT64_FORMAT
                  " DATA chunks retransmitted), %" G_GUINT64_FORMAT " in; srtt %u ms, rto %u ms",
                  what, st.packets_sent, st.retransmitted_chunks, st.packets_received, st.srtt_ms,
                  st.rto_ms);
}

static void
test_concurrent (void)
{
  Pair *pair = pair_new (NULL, NULL);

  pair_start (pair);
  /* Four streams of 16 MiB a → b, two of them 16 MiB back too. */
  run_transfers (pair, 4, 2, 16, TRANSFER_TIMEOUT_MS);
  g_assert_cmpuint (pair->link->largest_packet, <=, PM_STREAM_MTU);
  print_stats ("a", pair->a);
  pair_free (pair);
}

static void
test_loss (void)
{
  LinkParams       params = { .loss = 0.01, .delay_ms = 1 };
  Pair            *pair = pair_new (&params, NULL);
  PmStreamMuxStats st;

  pair_start (pair);
  run_transfers (pair, 2, 1, 8, TRANSFER_TIMEOUT_MS);
  pm_stream_mux_get_stats (pair->a, &st);
  g_assert_cmpuint (st.retransmitted_chunks, >, 0);
  g_test_message ("link dropped %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT " packets",
                  pair->link->dropped[0], pair->link->dropped[1]);
  print_stats ("a", pair->a);
  pair_free (pair);
}

static void
test_duplicate_reorder (void)
{
  LinkParams params = {
    .duplicate = 0.05,
    .reorder = 0.05,
    .delay_ms = 2,
    .jitter_ms = 4
  };
  Pair *pair = pair_new (&params, NULL);

  pair_start (pair);
  run_transfers (pair, 2, 2, 4, TRANSFER_TIMEOUT_MS);
  print_stats ("a", pair->a);
  pair_free (pair);
}

typedef struct {
  Receiver *receiver;
  uint64_t  at;
} ProgressWait;

static gboolean
progress_reached (gpointer data)
{
  ProgressWait *w = data;

  return w->receiver->received >= w->at || w->receiver->done;
}

static void
test_blackout (void)
{
  LinkParams params = { .delay_ms = 5 };
  Pair      *pair = pair_new (&params, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) local = NULL;
  Sender      *sender;
  Receiver    *receiver;
  ProgressWait wait;
  int64_t      resume_us;

  pair_start (pair);
  local = open_stream (pair->a, "ok-blackout", &error);
  g_assert_no_error (error);
  sender = sender_start (local, 24 * MIB, 77);
  receiver = receiver_start (peer_stream (pair, 1, local), FALSE);

  /* A quarter of the way: the path goes dark for 500 ms and comes back
   * slower (another path). */
  wait = (ProgressWait){ receiver, 6 * MIB };
  g_assert_true (pm_test_spin_until (progress_reached, &wait, TRANSFER_TIMEOUT_MS));
  g_assert_false (receiver->done);
  link_switch_path (pair->link, 500, 20);
  resume_us = g_get_monotonic_time () + 500 * 1000;
  receiver->watch_after_us = resume_us;

  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &receiver->done, TRANSFER_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &sender->done, TRANSFER_TIMEOUT_MS));
  g_assert_no_error (sender->error);
  g_assert_no_error (receiver->error);
  g_assert_cmpuint (receiver->received, ==, sender->total);
  g_assert_cmpstr (g_checksum_get_string (receiver->sum), ==, g_checksum_get_string (sender->sum));
  g_assert_cmpint (receiver->first_after_us, >, 0);
  g_test_message ("recovery after a 500 ms blackout: first new bytes %.0f ms after the path "
                  "came back",
                  (double) (receiver->first_after_us - resume_us) / 1000);
  print_stats ("a", pair->a);
  g_assert_cmpint (pm_stream_mux_get_state (pair->a), ==, PM_STREAM_MUX_STATE_CONNECTED);

  sender_free (sender);
  receiver_free (receiver);
  g_clear_object (&local);
  pair_free (pair);
}

/* Reads everything up to the end of @stream's input. */
static char *
read_to_end (PmStream *stream,
             GError  **error)
{
  GString *text = g_string_new (NULL);

  /* Small texts, read through the pollable API. */
  for (;;)
    {
      char   buf[256];
      gssize n;
      g_autoptr (GError) local = NULL;

      n = g_pollable_input_stream_read_nonblocking (
        G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (G_IO_STREAM (stream))), buf,
        sizeof buf, NULL, &local);
      if (n > 0)
        {
          g_string_append_len (text, buf, n);
          continue;
        }
      if (n == 0)
        break;
      if (!g_error_matches (local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          break;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  return g_string_free (text, FALSE);
}

static void
write_text (PmStream   *stream,
            const char *text)
{
  g_autoptr (GError) error = NULL;
  gsize written = 0;

  /* Small writes never block (credit and buffer space are there). */
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (stream)),
                                            text, strlen (text), &written, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (written, ==, strlen (text));
}

static void
close_output (PmStream *stream)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (g_output_stream_close (g_io_stream_get_output_stream (G_IO_STREAM (stream)),
                                        NULL, &error));
  g_assert_no_error (error);
}

static void
test_half_close (void)
{
  Pair *pair = pair_new (NULL, NULL);

  pair_start (pair);
  for (unsigned opener_first = 0; opener_first < 2; opener_first++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (PmStream) a = open_stream (pair->a, "ok-half", &error);
      PmStream        *b;
      g_autofree char *got_b = NULL;
      g_autofree char *got_a = NULL;

      g_assert_no_error (error);
      b = peer_stream (pair, 1, a);
      if (opener_first)
        {
          /* a says everything and half-closes; b still answers after
           * reading the end. */
          write_text (a, "request");
          close_output (a);
          got_b = read_to_end (b, &error);
          g_assert_no_error (error);
          g_assert_cmpstr (got_b, ==, "request");
          write_text (b, "response");
          close_output (b);
          got_a = read_to_end (a, &error);
          g_assert_no_error (error);
          g_assert_cmpstr (got_a, ==, "response");
        }
      else
        {
          /* b half-closes first; a keeps sending. */
          write_text (b, "banner");
          close_output (b);
          got_a = read_to_end (a, &error);
          g_assert_no_error (error);
          g_assert_cmpstr (got_a, ==, "banner");
          write_text (a, "upload after the peer's end");
          close_output (a);
          got_b = read_to_end (b, &error);
          g_assert_no_error (error);
          g_assert_cmpstr (got_b, ==, "upload after the peer's end");
        }
      /* A closed output refuses writes. */
      g_assert_cmpint (g_output_stream_write (g_io_stream_get_output_stream (G_IO_STREAM (a)),
                                              "x", 1, NULL, &error),
                       ==, -1);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
      g_clear_error (&error);
      /* Both FINs through: the id is free on both ends, with no explicit
       * close of the PmStreams. */
      g_assert_true (pm_test_spin_until (no_streams_open, pair, CONNECT_TIMEOUT_MS));
      g_ptr_array_set_size (pair->incoming[1], 0);
    }
  pair_free (pair);
}

typedef struct {
  Receiver *fast;
  Pair     *pair;
} SlowWait;

static void
test_slow_reader (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) slow = NULL;
  g_autoptr (PmStream) fast = NULL;
  Sender   *slow_sender, *fast_sender;
  Receiver *slow_receiver, *fast_receiver;
  PmStream *slow_remote;

  pair_start (pair);
  slow = open_stream (pair->a, "ok-slow", &error);
  g_assert_no_error (error);
  fast = open_stream (pair->a, "ok-fast", &error);
  g_assert_no_error (error);
  slow_remote = peer_stream (pair, 1, slow);

  /* Nobody reads the slow stream; the fast one moves 32 MiB meanwhile. */
  slow_sender = sender_start (slow, 4 * MIB, 5);
  slow_receiver = receiver_start (slow_remote, TRUE);
  fast_sender = sender_start (fast, 32 * MIB, 6);
  fast_receiver = receiver_start (peer_stream (pair, 1, fast), FALSE);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &fast_receiver->done,
                                     TRANSFER_TIMEOUT_MS));
  g_assert_no_error (fast_receiver->error);
  g_assert_cmpuint (fast_receiver->received, ==, 32 * MIB);
  g_assert_cmpstr (g_checksum_get_string (fast_receiver->sum), ==,
                   g_checksum_get_string (fast_sender->sum));

  /* The slow stream got no further than its window: the sender waits for
   * credit, and the receiving end holds at most the window. */
  g_assert_false (slow_sender->done);
  g_assert_cmpuint (pm_stream_get_bytes_sent (slow), <=, PM_STREAM_WINDOW);
  g_assert_cmpuint (pm_stream_get_bytes_received (slow_remote), <=, PM_STREAM_WINDOW);
  g_assert_cmpuint (pm_stream_get_bytes_received (slow_remote), >, 0);
  g_test_message ("slow stream: %" G_GUINT64_FORMAT " bytes buffered while the fast one moved "
                  "32 MiB",
                  pm_stream_get_bytes_received (slow_remote));

  /* Reading resumes it, to the last byte. */
  slow_receiver->paused = FALSE;
  receiver_read (slow_receiver);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &slow_receiver->done,
                                     TRANSFER_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &slow_sender->done,
                                     TRANSFER_TIMEOUT_MS));
  g_assert_no_error (slow_receiver->error);
  g_assert_cmpuint (slow_receiver->received, ==, 4 * MIB);
  g_assert_cmpstr (g_checksum_get_string (slow_receiver->sum), ==,
                   g_checksum_get_string (slow_sender->sum));

  sender_free (slow_sender);
  sender_free (fast_sender);
  receiver_free (slow_receiver);
  receiver_free (fast_receiver);
  pair_free (pair);
}

static void
test_close_mid_transfer (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) local = NULL;
  PmStream    *remote;
  Sender      *a_sender, *b_sender;
  Receiver    *a_receiver, *b_receiver;
  ProgressWait wait;
  OpenResult   late = { 0 };

  pair_start (pair);
  local = open_stream (pair->a, "ok-doomed", &error);
  g_assert_no_error (error);
  remote = peer_stream (pair, 1, local);
  a_sender = sender_start (local, 64 * MIB, 1);
  b_receiver = receiver_start (remote, FALSE);
  b_sender = sender_start (remote, 64 * MIB, 2);
  a_receiver = receiver_start (local, FALSE);
  /* An open that b never answers ("later" is kept undecided). */
  pm_stream_mux_open_async (pair->a, "later", NULL, on_opened, &late);

  wait = (ProgressWait){ b_receiver, 2 * MIB };
  g_assert_true (pm_test_spin_until (progress_reached, &wait, TRANSFER_TIMEOUT_MS));
  pm_stream_mux_close (pair->a);

  /* This end: everything fails at once with a clear error. */
  g_assert_cmpint (pm_stream_mux_get_state (pair->a), ==, PM_STREAM_MUX_STATE_CLOSED);
  g_assert_error (pm_stream_mux_get_error (pair->a), PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &a_sender->done, CONNECT_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &a_receiver->done, CONNECT_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &late.done, CONNECT_TIMEOUT_MS));
  g_assert_error (a_sender->error, PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED);
  g_assert_error (a_receiver->error, PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED);
  g_assert_error (late.error, PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED);
  g_assert_cmpstr (a_sender->error->message, ==, "The stream multiplexer was closed");

  /* The peer: the ABORT went out, so it fails too (not after a timeout). */
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &b_sender->done, CONNECT_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &b_receiver->done, CONNECT_TIMEOUT_MS));
  g_assert_error (b_sender->error, PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST);
  g_assert_error (b_receiver->error, PM_STREAM_ERROR, PM_STREAM_ERROR_CONNECTION_LOST);
  g_assert_cmpint (pm_stream_mux_get_state (pair->b), ==, PM_STREAM_MUX_STATE_CLOSED);
  g_test_message ("peer: %s", pm_stream_mux_get_error (pair->b)->message);

  /* Opening on a closed multiplexer fails at once. */
  g_assert_null (open_stream (pair->a, "ok-again", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_CLOSED);
  g_clear_error (&error);

  sender_free (a_sender);
  sender_free (b_sender);
  receiver_free (a_receiver);
  receiver_free (b_receiver);
  g_clear_error (&late.error);
  pair_free (pair);
}

typedef struct {
  GSocketConnection *conn;
  gboolean           done;
} Accepted;

static void
on_tcp_accepted (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Accepted *a = user_data;

  a->conn = g_socket_listener_accept_finish (G_SOCKET_LISTENER (source), result, NULL, NULL);
  a->done = TRUE;
}

static void
on_spliced (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GError **error = user_data;

  if (!g_io_stream_splice_finish (result, error))
    g_assert_nonnull (*error);
  else
    *error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_EXISTS, "spliced"); /* marks "done" */
}

/* What the forwarder does: a PmStream spliced to a TCP connection on
 * loopback (g_io_stream_splice_async), both ways, with every byte checked. */
static void
test_splice (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) spliced = NULL;
  g_autoptr (PmStream) a = NULL;
  g_autoptr (GSocketListener) listener = g_socket_listener_new ();
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) want = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) service_side = NULL;
  Accepted  accepted = { 0 };
  Sender   *a_sender, *tcp_sender;
  Receiver *a_receiver, *tcp_receiver;

  pair_start (pair);
  a = open_stream (pair->a, "ok-splice", &error);
  g_assert_no_error (error);

  /* b's end is spliced to a local TCP service; the test plays the service. */
  g_assert_true (g_socket_listener_add_address (listener, want, G_SOCKET_TYPE_STREAM,
                                                G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error));
  g_socket_listener_accept_async (listener, NULL, on_tcp_accepted, &accepted);
  service_side = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (bound), NULL, &error);
  g_assert_no_error (error);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &accepted.done, CONNECT_TIMEOUT_MS));
  g_assert_nonnull (accepted.conn);
  g_io_stream_splice_async (G_IO_STREAM (peer_stream (pair, 1, a)), G_IO_STREAM (accepted.conn),
                            G_IO_STREAM_SPLICE_CLOSE_STREAM1 | G_IO_STREAM_SPLICE_CLOSE_STREAM2 |
                              G_IO_STREAM_SPLICE_WAIT_FOR_BOTH,
                            G_PRIORITY_DEFAULT, NULL, on_spliced, &spliced);

  a_sender = sender_start (a, 8 * MIB, 11);
  a_receiver = receiver_start (a, FALSE);
  tcp_sender = sender_start (service_side, 8 * MIB, 12);
  tcp_sender->close_at_end = FALSE; /* a socket's output stream cannot half-close */
  tcp_receiver = receiver_start (service_side, FALSE);

  /* The service half-closes once it has said everything... */
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &tcp_sender->done, TRANSFER_TIMEOUT_MS));
  g_assert_no_error (tcp_sender->error);
  g_assert_true (g_socket_shutdown (g_socket_connection_get_socket (service_side), FALSE, TRUE,
                                    &error));
  /* ... a's FIN ends the other direction: the splice ends and closes both,
   * and each side reads its end. */
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &a_receiver->done, TRANSFER_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &tcp_receiver->done,
                                     TRANSFER_TIMEOUT_MS));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &a_sender->done, TRANSFER_TIMEOUT_MS));
  g_assert_no_error (a_sender->error);
  g_assert_no_error (a_receiver->error);
  g_assert_no_error (tcp_receiver->error);
  g_assert_cmpuint (tcp_receiver->received, ==, 8 * MIB);
  g_assert_cmpuint (a_receiver->received, ==, 8 * MIB);
  g_assert_cmpstr (g_checksum_get_string (tcp_receiver->sum), ==,
                   g_checksum_get_string (a_sender->sum));
  g_assert_cmpstr (g_checksum_get_string (a_receiver->sum), ==,
                   g_checksum_get_string (tcp_sender->sum));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &spliced, CONNECT_TIMEOUT_MS));
  g_assert_error (spliced, G_IO_ERROR, G_IO_ERROR_EXISTS); /* finished without an error */

  sender_free (a_sender);
  sender_free (tcp_sender);
  receiver_free (a_receiver);
  receiver_free (tcp_receiver);
  g_object_unref (accepted.conn);
  g_socket_listener_close (listener);
  pair_free (pair);
}

static gboolean
ticking_slowly (gpointer data)
{
  return pm_sctp_get_tick_interval () == PM_STREAM_IDLE_TICK_MS;
}

/* usrsctp's timers: a fine tick while packets flow, a coarse one once all is
 * quiet, none without an association (checked by pair_free()). */
static void
test_timers (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) a = NULL;
  g_autofree char *got = NULL;

  g_assert_false (pm_sctp_is_ticking ()); /* created, not started */
  pair_start (pair);
  g_assert_cmpuint (pm_sctp_get_tick_interval (), ==, PM_STREAM_TICK_MS);
  a = open_stream (pair->a, "ok-timers", &error);
  g_assert_no_error (error);
  g_assert_true (pm_test_spin_until (ticking_slowly, NULL, PM_STREAM_IDLE_AFTER_MS + 3000));
  write_text (a, "wake up");
  g_assert_cmpuint (pm_sctp_get_tick_interval (), ==, PM_STREAM_TICK_MS);
  close_output (a);
  got = read_to_end (peer_stream (pair, 1, a), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got, ==, "wake up");
  pair_free (pair);
}

static void
test_stream_id_reuse (void)
{
  PmStreamMuxLimits limits;
  Pair             *pair;
  PmStream         *streams[4];
  PmStream         *extra;
  unsigned          freed_id;
  g_autoptr (GError) error = NULL;

  pm_stream_mux_limits_default (&limits);
  limits.max_streams = 8; /* a: ids 0, 2, 4, 6 */
  pair = pair_new (NULL, &limits);
  pair_start (pair);
  for (unsigned i = 0; i < 4; i++)
    {
      streams[i] = open_stream (pair->a, "ok-id", &error);
      g_assert_no_error (error);
      g_assert_cmpuint (pm_stream_get_id (streams[i]), ==, 2 * i);
    }
  g_assert_null (open_stream (pair->a, "ok-id", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_TOO_MANY_STREAMS);
  g_clear_error (&error);

  /* Half-closed is not closed: the id stays taken. */
  freed_id = pm_stream_get_id (streams[1]);
  close_output (streams[1]);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &(gboolean){ FALSE }, 200) == FALSE);
  g_assert_null (open_stream (pair->a, "ok-id", &error));
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_TOO_MANY_STREAMS);
  g_clear_error (&error);

  /* Once the peer closes too (both FINs, both CLOSEs), the id is reused. */
  close_output (peer_stream (pair, 1, streams[1]));
  extra = NULL;
  for (unsigned tries = 0; tries < 50 && extra == NULL; tries++)
    {
      extra = open_stream (pair->a, "ok-id", &error);
      if (extra == NULL)
        {
          g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_TOO_MANY_STREAMS);
          g_clear_error (&error);
          pm_test_spin_until (pm_test_flag_is_set, &(gboolean){ FALSE }, 20);
        }
    }
  g_assert_nonnull (extra);
  g_assert_cmpuint (pm_stream_get_id (extra), ==, freed_id);

  /* The new stream on the old id works, and old and new never mix. */
  write_text (extra, "new");
  close_output (extra);
  {
    g_autofree char *got = read_to_end (peer_stream (pair, 1, extra), &error);

    g_assert_no_error (error);
    g_assert_cmpstr (got, ==, "new");
  }

  /* b's ids are the odd ones. */
  {
    g_autoptr (PmStream) from_b = open_stream (pair->b, "ok-b", &error);

    g_assert_no_error (error);
    g_assert_cmpuint (pm_stream_get_id (from_b) % 2, ==, 1);
  }

  for (unsigned i = 0; i < 4; i++)
    g_object_unref (streams[i]);
  g_object_unref (extra);
  pair_free (pair);
}

static void
test_reset (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PmStream) a = NULL;
  PmStream *b;
  Sender   *sender;
  char      buf[16];
  gssize    n;

  pair_start (pair);
  a = open_stream (pair->a, "ok-reset", &error);
  g_assert_no_error (error);
  b = peer_stream (pair, 1, a);
  sender = sender_start (a, 64 * MIB, 3);
  write_text (b, "partial answer");
  /* b gives up mid-way. */
  pm_stream_reset (b, "quota exceeded");
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &sender->done, CONNECT_TIMEOUT_MS));
  g_assert_error (sender->error, PM_STREAM_ERROR, PM_STREAM_ERROR_RESET);
  g_assert_cmpstr (sender->error->message, ==, "The peer reset the stream: quota exceeded");
  /* What arrived before the reset is still read, then the error. */
  {
    g_autofree char *got = read_to_end (a, &error);

    g_assert_cmpstr (got, ==, "partial answer");
    g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_RESET);
    g_clear_error (&error);
  }
  /* b's own operations fail with ABORTED. */
  n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (b)), buf, sizeof buf, NULL,
                           &error);
  g_assert_cmpint (n, ==, -1);
  g_assert_error (error, PM_STREAM_ERROR, PM_STREAM_ERROR_ABORTED);
  g_clear_error (&error);
  g_assert_true (pm_test_spin_until (no_streams_open, pair, CONNECT_TIMEOUT_MS));

  sender_free (sender);
  pair_free (pair);
}

static void
test_cancel_and_defer (void)
{
  Pair *pair = pair_new (NULL, NULL);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  OpenResult r = { 0 };
  OpenResult later = { 0 };
  PmStream  *pending;

  pair_start (pair);

  /* b keeps "later" undecided; a gives up waiting. */
  pm_stream_mux_open_async (pair->a, "later", cancellable, on_opened, &r);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &(gboolean){ FALSE }, 100) == FALSE);
  g_assert_cmpuint (pair->deferred[1]->len, ==, 1);
  g_cancellable_cancel (cancellable);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &r.done, CONNECT_TIMEOUT_MS));
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&r.error);
  /* b's pending stream learns it; accepting it now does nothing. */
  pending = g_ptr_array_index (pair->deferred[1], 0);
  g_assert_true (pm_test_spin_until (no_streams_open, pair, CONNECT_TIMEOUT_MS));
  pm_stream_accept (pending);
  g_assert_true (no_streams_open (pair));

  /* A decision taken later, outside the signal, goes through. */
  pm_stream_mux_open_async (pair->a, "later", NULL, on_opened, &later);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &(gboolean){ FALSE }, 100) == FALSE);
  g_assert_cmpuint (pair->deferred[1]->len, ==, 2);
  g_assert_false (later.done);
  pm_stream_accept (g_ptr_array_index (pair->deferred[1], 1));
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &later.done, CONNECT_TIMEOUT_MS));
  g_assert_no_error (later.error);
  g_clear_object (&later.stream);

  /* A kept stream dropped undecided is refused. */
  later = (OpenResult){ 0 };
  pm_stream_mux_open_async (pair->a, "later", NULL, on_opened, &later);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &(gboolean){ FALSE }, 100) == FALSE);
  g_assert_cmpuint (pair->deferred[1]->len, ==, 3);
  g_ptr_array_remove_index (pair->deferred[1], 2);
  g_assert_true (pm_test_spin_until (pm_test_flag_is_set, &later.done, CONNECT_TIMEOUT_MS));
  g_assert_error (later.error, PM_STREAM_ERROR, PM_STREAM_ERROR_REFUSED);
  g_assert_cmpstr (later.error->message, ==, "The service dropped the stream");
  g_clear_error (&later.error);

  pair_free (pair);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/stream-control/corpus", test_control_corpus);
  g_test_add_func ("/stream-control/rules", test_control_rules);
  g_test_add_func ("/stream-mux/open-accept-refuse", test_open_accept_refuse);
  g_test_add_func ("/stream-mux/concurrent", test_concurrent);
  g_test_add_func ("/stream-mux/loss", test_loss);
  g_test_add_func ("/stream-mux/duplicate-reorder", test_duplicate_reorder);
  g_test_add_func ("/stream-mux/blackout", test_blackout);
  g_test_add_func ("/stream-mux/half-close", test_half_close);
  g_test_add_func ("/stream-mux/slow-reader", test_slow_reader);
  g_test_add_func ("/stream-mux/close-mid-transfer", test_close_mid_transfer);
  g_test_add_func ("/stream-mux/splice", test_splice);
  g_test_add_func ("/stream-mux/timers", test_timers);
  g_test_add_func ("/stream-mux/stream-id-reuse", test_stream_id_reuse);
  g_test_add_func ("/stream-mux/reset", test_reset);
  g_test_add_func ("/stream-mux/cancel-and-defer", test_cancel_and_defer);
  return g_test_run ();
}
