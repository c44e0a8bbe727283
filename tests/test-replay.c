/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * PmReplayWindow (RFC 6479): in-order, reordered and duplicate counters, the
 * exact edge of the window, jumps that recycle the whole ring, counter 0, and
 * a randomized comparison with a plain model (a set of seen counters and the
 * highest). The random tests use GTest's seed: rerun a failure with --seed.
 */
#define G_LOG_DOMAIN "pipermesh-test-replay"

#include <string.h>

#include "pm-replay.h"

/* What the session does with an authentic packet: check, then mark. */
static gboolean
check_and_mark (PmReplayWindow *w,
                uint64_t        counter)
{
  if (!pm_replay_window_check (w, counter))
    return FALSE;
  pm_replay_window_mark (w, counter);
  return TRUE;
}

static void
test_fresh (void)
{
  PmReplayWindow w;

  pm_replay_window_init (&w);
  /* Before anything is marked, every counter is new. */
  g_assert_true (pm_replay_window_check (&w, 0));
  g_assert_true (pm_replay_window_check (&w, 1));
  g_assert_true (pm_replay_window_check (&w, 100000));
  g_assert_true (pm_replay_window_check (&w, G_MAXUINT64));
}

static void
test_counter_zero (void)
{
  PmReplayWindow w;

  /* 0 is a counter like any other: the first of a key pair. */
  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, 0));
  g_assert_false (pm_replay_window_check (&w, 0));
  g_assert_true (check_and_mark (&w, 1));
  g_assert_false (pm_replay_window_check (&w, 0));
  g_assert_false (pm_replay_window_check (&w, 1));

  /* 0 arriving after later counters, while still inside the window. */
  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, 5));
  g_assert_true (check_and_mark (&w, 0));
  g_assert_false (pm_replay_window_check (&w, 0));

  /* 0 once it has slid out of the window. */
  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, PM_REPLAY_WINDOW + 1));
  g_assert_false (pm_replay_window_check (&w, 0));
  g_assert_true (pm_replay_window_check (&w, 1));
}

static void
test_in_order (void)
{
  PmReplayWindow w;

  pm_replay_window_init (&w);
  for (uint64_t c = 0; c < 20000; c++)
    {
      g_assert_true (check_and_mark (&w, c));
      g_assert_false (pm_replay_window_check (&w, c));
      if (c > 0)
        g_assert_false (pm_replay_window_check (&w, c - 1));
    }
  /* Everything in the window was seen; everything below it is too old. */
  for (uint64_t c = 0; c < 20000; c++)
    g_assert_false (pm_replay_window_check (&w, c));
  g_assert_true (pm_replay_window_check (&w, 20000));
}

static void
test_duplicate (void)
{
  PmReplayWindow w;

  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, 42));
  for (int i = 0; i < 3; i++)
    g_assert_false (check_and_mark (&w, 42));
  g_assert_true (check_and_mark (&w, 41));
  g_assert_false (check_and_mark (&w, 41));
  g_assert_true (check_and_mark (&w, 43));
  g_assert_false (check_and_mark (&w, 42));
  g_assert_false (check_and_mark (&w, 43));
}

static void
test_reordered (void)
{
  PmReplayWindow w;
  g_autoptr (GArray) order = g_array_new (FALSE, FALSE, sizeof (uint64_t));
  uint64_t base = 1000000;

  /* A shuffle of a window's worth of counters: each accepted exactly once,
   * whatever the order, because none falls behind the window. */
  for (uint64_t c = 0; c <= PM_REPLAY_WINDOW; c++)
    {
      uint64_t v = base + c;

      g_array_append_val (order, v);
    }
  for (unsigned i = order->len - 1; i > 0; i--)
    {
      unsigned j = (unsigned) g_test_rand_int_range (0, (gint32) i + 1);
      uint64_t t = g_array_index (order, uint64_t, i);

      g_array_index (order, uint64_t, i) = g_array_index (order, uint64_t, j);
      g_array_index (order, uint64_t, j) = t;
    }

  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, base + PM_REPLAY_WINDOW)); /* the top first */
  for (unsigned i = 0; i < order->len; i++)
    {
      uint64_t c = g_array_index (order, uint64_t, i);

      g_assert_cmpint (check_and_mark (&w, c), ==, c != base + PM_REPLAY_WINDOW);
    }
  for (unsigned i = 0; i < order->len; i++)
    g_assert_false (pm_replay_window_check (&w, g_array_index (order, uint64_t, i)));

  /* Two packets swapped on the way. */
  pm_replay_window_init (&w);
  g_assert_true (check_and_mark (&w, 0));
  g_assert_true (check_and_mark (&w, 2));
  g_assert_true (check_and_mark (&w, 1));
  g_assert_true (check_and_mark (&w, 3));
  g_assert_false (check_and_mark (&w, 1));
  g_assert_false (check_and_mark (&w, 2));
}

static void
test_window_edge (void)
{
  static const uint64_t tops[] = {
    PM_REPLAY_WINDOW, /* the edge is counter 0 */
    PM_REPLAY_WINDOW + 1,
    PM_REPLAY_WINDOW * 2 + 17, /* well past the first window */
    64 * 1000,                 /* the top at the start of a block */
    64 * 1000 + 63,            /* ... and at its end */
    G_MAXUINT64,
  };

  g_assert_cmpuint (PM_REPLAY_WINDOW, >=, 2048);
  for (size_t i = 0; i < G_N_ELEMENTS (tops); i++)
    {
      uint64_t       top = tops[i];
      PmReplayWindow w;

      pm_replay_window_init (&w);
      g_assert_true (check_and_mark (&w, top));
      /* Exactly PM_REPLAY_WINDOW behind the top: still inside, accepted once. */
      g_assert_true (pm_replay_window_check (&w, top - PM_REPLAY_WINDOW));
      g_assert_true (pm_replay_window_check (&w, top - PM_REPLAY_WINDOW + 1));
      /* One beyond: too old, though it was never seen. */
      if (top > PM_REPLAY_WINDOW)
        g_assert_false (pm_replay_window_check (&w, top - PM_REPLAY_WINDOW - 1));
      g_assert_true (check_and_mark (&w, top - PM_REPLAY_WINDOW));
      g_assert_false (pm_replay_window_check (&w, top - PM_REPLAY_WINDOW));
      g_assert_true (check_and_mark (&w, top - 1));

      /* The top moves by one: the old edge falls out. */
      if (top < G_MAXUINT64)
        {
          g_assert_true (check_and_mark (&w, top + 1));
          g_assert_false (pm_replay_window_check (&w, top - PM_REPLAY_WINDOW));
          g_assert_true (pm_replay_window_check (&w, top + 1 - PM_REPLAY_WINDOW));
        }
    }
}

static void
test_large_jump (void)
{
  const uint64_t        ring = PM_REPLAY_RING_BLOCKS * 64;
  static const uint64_t jumps[] = { 1, 63, 64, 65, 1000, PM_REPLAY_WINDOW, PM_REPLAY_WINDOW + 1,
                                    PM_REPLAY_RING_BLOCKS * 64 - 1, PM_REPLAY_RING_BLOCKS * 64,
                                    PM_REPLAY_RING_BLOCKS * 64 * 3 + 17, G_GUINT64_CONSTANT (1) << 40 };

  for (size_t i = 0; i < G_N_ELEMENTS (jumps); i++)
    {
      PmReplayWindow w;
      uint64_t       old_top = ring - 1;
      uint64_t       top = old_top + jumps[i];

      /* Every bit of the ring set, then a jump forward. */
      pm_replay_window_init (&w);
      for (uint64_t c = 0; c <= old_top; c++)
        g_assert_true (check_and_mark (&w, c));
      g_assert_true (check_and_mark (&w, top));

      /* Inside the new window: seen only if it was marked before the jump. */
      for (uint64_t c = top - MIN (top, PM_REPLAY_WINDOW); c < top; c++)
        g_assert_cmpint (pm_replay_window_check (&w, c), ==, c > old_top);
      /* Behind it: too old. */
      if (top > PM_REPLAY_WINDOW)
        for (uint64_t c = top - MIN (top, PM_REPLAY_WINDOW + 200); c < top - PM_REPLAY_WINDOW; c++)
          g_assert_false (pm_replay_window_check (&w, c));
      g_assert_false (pm_replay_window_check (&w, top));
      g_assert_true (pm_replay_window_check (&w, top + 1));
    }
}

static void
test_check_does_not_mutate (void)
{
  PmReplayWindow w, copy;

  pm_replay_window_init (&w);
  memcpy (&copy, &w, sizeof w);
  /* Not even the first check of an empty window. */
  g_assert_true (pm_replay_window_check (&w, 12345));
  g_assert_cmpmem (&w, sizeof w, &copy, sizeof copy);

  for (uint64_t c = 100; c < 5000; c += 3)
    pm_replay_window_mark (&w, c);
  memcpy (&copy, &w, sizeof w);
  for (uint64_t c = 0; c < 20000; c++)
    (void) pm_replay_window_check (&w, c);
  (void) pm_replay_window_check (&w, G_MAXUINT64);
  (void) pm_replay_window_check (&w, 5000 + (G_GUINT64_CONSTANT (1) << 40));
  g_assert_cmpmem (&w, sizeof w, &copy, sizeof copy);
}

/* --- Randomized, against a model ------------------------------------------------ */

typedef struct {
  GHashTable *seen; /* uint64_t* → itself */
  uint64_t    top;
  gboolean    any;
} Model;

static gboolean
model_seen (Model   *m,
            uint64_t c)
{
  return g_hash_table_contains (m->seen, &c);
}

static void
model_mark (Model   *m,
            uint64_t c)
{
  uint64_t *key = g_new (uint64_t, 1);

  *key = c;
  g_hash_table_add (m->seen, key);
  if (!m->any || c > m->top)
    m->top = c;
  m->any = TRUE;
}

/* Draws a counter near the model's top: mostly just above or inside the
 * window, sometimes around its edge, rarely a big jump. */
static uint64_t
draw_counter (Model *m)
{
  int64_t delta;
  int     kind = g_test_rand_int_range (0, 100);

  if (kind < 40)
    delta = g_test_rand_int_range (1, 8);
  else if (kind < 75)
    delta = -g_test_rand_int_range (0, PM_REPLAY_WINDOW + 1);
  else if (kind < 90)
    delta = -(int64_t) PM_REPLAY_WINDOW + g_test_rand_int_range (-3, 4);
  else if (kind < 99)
    delta = -g_test_rand_int_range (0, 64); /* duplicates near the top */
  else
    delta = g_test_rand_int_range (64, 64 * PM_REPLAY_RING_BLOCKS * 2);

  if (delta < 0 && (uint64_t) -delta > m->top)
    return (uint64_t) g_test_rand_int_range (0, 64);
  return m->top + (uint64_t) delta;
}

static void
test_random_model (void)
{
  PmReplayWindow w;
  Model          m = { g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL), 0, FALSE };
  unsigned       n_ops = g_test_slow () ? 2000000 : 200000;
  unsigned       accepted = 0, replays = 0, too_old = 0;

  pm_replay_window_init (&w);
  for (unsigned op = 0; op < n_ops; op++)
    {
      uint64_t c = draw_counter (&m);
      gboolean ok = pm_replay_window_check (&w, c);
      gboolean seen = model_seen (&m, c);
      gboolean fresh_in_window = !seen && (!m.any || c > m.top || m.top - c <= PM_REPLAY_WINDOW);

      /* At least as strict as the model: nothing seen is accepted ... */
      if (seen)
        g_assert_false (ok);
      /* ... and no stricter inside the window it promises. */
      if (fresh_in_window)
        g_assert_true (ok);
      /* Beyond the window, everything is refused. */
      if (m.any && c < m.top && m.top - c > PM_REPLAY_WINDOW)
        g_assert_false (ok);

      replays += seen;
      too_old += !seen && !fresh_in_window;
      /* Most accepted counters authenticate; one in eight is a forgery
       * that must leave the window as it was. */
      if (ok && g_test_rand_int_range (0, 8) != 0)
        {
          pm_replay_window_mark (&w, c);
          model_mark (&m, c);
          accepted++;
          g_assert_cmpuint (w.top, ==, m.top);
        }
    }
  g_test_message ("%u operations: %u accepted, %u replays and %u too old refused", n_ops,
                  accepted, replays, too_old);
  /* The draw did exercise every branch. */
  g_assert_cmpuint (accepted, >, n_ops / 4);
  g_assert_cmpuint (replays, >, n_ops / 100);
  g_assert_cmpuint (too_old, >, n_ops / 100);
  g_hash_table_unref (m.seen);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/replay/fresh", test_fresh);
  g_test_add_func ("/replay/counter-zero", test_counter_zero);
  g_test_add_func ("/replay/in-order", test_in_order);
  g_test_add_func ("/replay/duplicate", test_duplicate);
  g_test_add_func ("/replay/reordered", test_reordered);
  g_test_add_func ("/replay/window-edge", test_window_edge);
  g_test_add_func ("/replay/large-jump", test_large_jump);
  g_test_add_func ("/replay/check-does-not-mutate", test_check_does_not_mutate);
  g_test_add_func ("/replay/random-model", test_random_model);

  return g_test_run ();
}
