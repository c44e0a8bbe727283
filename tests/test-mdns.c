/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-test"

/*
 * PmMdns against real avahi-daemons (suite "pairing").
 *
 * tests/run-with-avahi.sh builds the lab: namespaces a and b joined by a
 * veth pair, each with its own system bus and avahi-daemon (see the script).
 * This process joins bus b (DBUS_SYSTEM_BUS_ADDRESS), so every PmMdns made
 * here talks to daemon b; an advertiser on daemon a runs as a child: this
 * binary with --advertise, given bus a. What the child advertises reaches
 * daemon b as real mDNS over the veth.
 *
 * Without the lab (not root, no `ip netns`, no avahi-daemon) the lab cases
 * skip; the others still run, and the binary exits 77 with the reason if all
 * that ran passed. Every wait is bounded (WAIT_MS).
 */

#include <avahi-common/strlst.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>
#include <unistd.h>

#include "pm-mdns-private.h"
#include "pm-mdns.h"
#include "pm-test-util.h"

/* The longest any one event may take: mDNS probing and announcing take about
 * a second, a daemon restart a few. */
#define WAIT_MS 20000

#define PORT_A 41641
#define PORT_X 41642
#define PORT_Y 41643

/* b's addresses on the veth (tests/run-with-avahi.sh). */
#define ADDR_B4 "10.213.0.2"
#define ADDR_B6 "fd6d:646e:7300::2"
/* What a's IPv4 address changes to in test_address_change. */
#define ADDR_A4_NEW "10.213.0.11"

static struct {
  const char *skip; /* why the lab cases skip, or NULL */
  const char *bus_a;
  const char *ns_a;
  const char *if_a;
  const char *addr_a4;
  const char *addr_a6;
  const char *ctl;
} lab;

static const char *FP_A = "a0a1a2a3a4a5a6a7";
static const char *FP_X = "b0b1b2b3b4b5b6b7";
static const char *FP_Y = "c0c1c2c3c4c5c6c7";

/* ---- log capture: the "mDNS discovery off" messages of pipermesh-mdns ----- */

static unsigned off_messages;

static void
count_mdns_messages (const char    *domain,
                     GLogLevelFlags level,
                     const char    *message,
                     gpointer       data)
{
  if (g_str_has_prefix (message, "mDNS discovery off: no Avahi daemon (") &&
      g_str_has_suffix (message, "); using stored addresses"))
    off_messages++;
  g_log_default_handler (domain, level, message, data);
}

/* ---- what one PmMdns reported -------------------------------------------- */

typedef struct {
  PmMdns    *mdns;
  GPtrArray *found; /* "fp address:port" */
  GPtrArray *lost;  /* "fp" */
  unsigned   available_changes;
} Watch;

/* "ip:port", or "[ip]:port" for IPv6. */
static char *
format_address (GInetAddress *inet,
                unsigned      port)
{
  g_autofree char *ip = g_inet_address_to_string (inet);

  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", ip, port);
  return g_strdup_printf ("%s:%u", ip, port);
}

/* "fp ip:port" */
static char *
describe (const char         *fp,
          GInetSocketAddress *address)
{
  g_autofree char *text = format_address (g_inet_socket_address_get_address (address),
                                          g_inet_socket_address_get_port (address));

  return g_strdup_printf ("%s %s", fp, text);
}

static void
on_found (PmMdns             *mdns,
          const char         *fp,
          GInetSocketAddress *address,
          Watch              *w)
{
  g_assert_true (pm_mdns_fingerprint_is_valid (fp));
  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  g_ptr_array_add (w->found, describe (fp, address));
}

static void
on_lost (PmMdns     *mdns,
         const char *fp,
         Watch      *w)
{
  g_ptr_array_add (w->lost, g_strdup (fp));
}

static void
on_available (PmMdns     *mdns,
              GParamSpec *pspec,
              Watch      *w)
{
  w->available_changes++;
}

static Watch *
watch_new (void)
{
  Watch *w = g_new0 (Watch, 1);

  w->mdns = pm_mdns_new ();
  w->found = g_ptr_array_new_with_free_func (g_free);
  w->lost = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (w->mdns, "peer-found", G_CALLBACK (on_found), w);
  g_signal_connect (w->mdns, "peer-lost", G_CALLBACK (on_lost), w);
  g_signal_connect (w->mdns, "notify::available", G_CALLBACK (on_available), w);
  return w;
}

static void
watch_free (Watch *w)
{
  g_signal_handlers_disconnect_by_data (w->mdns, w);
  g_object_unref (w->mdns);
  g_ptr_array_unref (w->found);
  g_ptr_array_unref (w->lost);
  g_free (w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Watch, watch_free)

static gboolean
strv_has (GPtrArray  *array,
          const char *s)
{
  return g_ptr_array_find_with_equal_func (array, s, g_str_equal, NULL);
}

typedef struct {
  GPtrArray  *array;
  const char *item;
} Expect;

static gboolean
expect_holds (gpointer data)
{
  Expect *e = data;

  return strv_has (e->array, e->item);
}

/* Waits for "peer-found" (@fp, @ip:@port). */
static void
wait_found (Watch      *w,
            const char *fp,
            const char *ip,
            unsigned    port)
{
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (ip);
  g_autofree char *address = format_address (inet, port); /* canonical form */
  g_autofree char *item = g_strdup_printf ("%s %s", fp, address);
  Expect           e = { w->found, item };
  int64_t          start = g_get_monotonic_time ();

  if (!pm_test_spin_until (expect_holds, &e, WAIT_MS))
    g_error ("no peer-found \"%s\" within %d ms", item, WAIT_MS);
  g_test_message ("peer-found %s after %.0f ms", item,
                  (double) (g_get_monotonic_time () - start) / 1000.0);
}

static void
wait_lost (Watch      *w,
           const char *fp)
{
  Expect  e = { w->lost, fp };
  int64_t start = g_get_monotonic_time ();

  if (!pm_test_spin_until (expect_holds, &e, WAIT_MS))
    g_error ("no peer-lost %s within %d ms", fp, WAIT_MS);
  g_test_message ("peer-lost %s after %.0f ms", fp,
                  (double) (g_get_monotonic_time () - start) / 1000.0);
}

static gboolean
is_available (gpointer data)
{
  return pm_mdns_get_available (data);
}

static gboolean
is_unavailable (gpointer data)
{
  return !pm_mdns_get_available (data);
}

static void
start_available (Watch *w)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (pm_mdns_start (w->mdns, &error));
  g_assert_no_error (error);
  g_assert_true (pm_test_spin_until (is_available, w->mdns, WAIT_MS));
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The addresses pm_mdns_lookup() gives, as sorted "ip:port" strings. */
static char *
lookup_text (PmMdns     *mdns,
             const char *fp)
{
  g_autoptr (GPtrArray) addresses = pm_mdns_lookup (mdns, fp);
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);

  for (unsigned i = 0; i < addresses->len; i++)
    {
      g_autofree char *d = describe (fp, addresses->pdata[i]);

      g_ptr_array_add (texts, g_strdup (d + strlen (fp) + 1));
    }
  g_ptr_array_sort (texts, compare_strings);
  g_ptr_array_add (texts, NULL);
  return g_strjoinv (" ", (char **) texts->pdata);
}

typedef struct {
  PmMdns     *mdns;
  const char *fp;
  const char *want;
} LookupExpect;

static gboolean
lookup_is (gpointer data)
{
  LookupExpect    *e = data;
  g_autofree char *have = lookup_text (e->mdns, e->fp);

  return g_str_equal (have, e->want);
}

static unsigned
lookup_count (PmMdns     *mdns,
              const char *fp)
{
  g_autoptr (GPtrArray) addresses = pm_mdns_lookup (mdns, fp);

  return addresses->len;
}

/* Waits until pm_mdns_lookup(@fp) gives exactly @want (see lookup_text()). */
static void
wait_lookup (PmMdns     *mdns,
             const char *fp,
             const char *want)
{
  LookupExpect e = { mdns, fp, want };

  if (!pm_test_spin_until (lookup_is, &e, WAIT_MS))
    {
      g_autofree char *have = lookup_text (mdns, fp);

      g_error ("lookup %s: \"%s\", wanted \"%s\"", fp, have, want);
    }
}

/* Iterates the main context for @ms (to see that nothing else arrives). */
static void
spin_for (unsigned ms)
{
  gboolean never = FALSE;

  pm_test_spin_until (pm_test_flag_is_set, &never, ms);
}

/* ---- the advertiser on daemon a (a child process) ------------------------- */

typedef struct {
  GSubprocess *proc;
} Advertiser;

static Advertiser *
advertiser_spawn (const char *name,
                  unsigned    port,
                  const char *fp)
{
  g_autoptr (GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autoptr (GError) error = NULL;
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  Advertiser      *adv = g_new0 (Advertiser, 1);

  g_subprocess_launcher_setenv (launcher, "DBUS_SYSTEM_BUS_ADDRESS", lab.bus_a, TRUE);
  /* This very binary, even if a rebuild replaced the file meanwhile. */
  adv->proc = g_subprocess_launcher_spawn (launcher, &error, "/proc/self/exe", "--advertise", name,
                                           port_text, fp, NULL);
  g_assert_no_error (error);
  return adv;
}

static void
on_waited (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *(gboolean *) data = TRUE;
}

/* Closes the child's stdin: it withdraws its advertisement and exits, and
 * must exit 0 (so its own sanitizer checks passed too). */
static void
advertiser_stop (Advertiser *adv)
{
  gboolean done = FALSE;

  g_assert_true (g_output_stream_close (g_subprocess_get_stdin_pipe (adv->proc), NULL, NULL));
  g_subprocess_wait_async (adv->proc, NULL, on_waited, &done);
  if (!pm_test_spin_until (pm_test_flag_is_set, &done, WAIT_MS))
    {
      g_subprocess_force_exit (adv->proc);
      g_error ("the advertiser did not exit within %d ms", WAIT_MS);
    }
  g_assert_true (g_subprocess_get_if_exited (adv->proc));
  g_assert_cmpint (g_subprocess_get_exit_status (adv->proc), ==, 0);
  g_clear_object (&adv->proc);
  g_free (adv);
}

static gboolean
on_stdin (int          fd,
          GIOCondition condition,
          gpointer     data)
{
  char    buf[64];
  ssize_t n = read (fd, buf, sizeof buf);

  if (n > 0)
    return G_SOURCE_CONTINUE;
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

/* test-mdns --advertise NAME PORT FP: advertise until stdin closes. */
static int
run_advertiser (const char *name,
                const char *port,
                const char *fp)
{
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (PmMdns) mdns = pm_mdns_new ();
  g_autoptr (GError) error = NULL;

  if (!pm_mdns_start (mdns, &error))
    {
      g_printerr ("advertiser: %s\n", error->message);
      return 1;
    }
  pm_mdns_advertise (mdns, name, (uint16_t) g_ascii_strtoull (port, NULL, 10), fp);
  g_unix_fd_add (STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, loop);
  g_main_loop_run (loop);
  pm_mdns_unadvertise (mdns);
  return 0;
}

/* ---- the lab ------------------------------------------------------------- */

static void
run (const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  int              status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, &error))
    g_error ("%s: %s", argv[0], error->message);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("%s %s %s: %s: %s", argv[0], argv[1], argv[2], error->message, err);
}

/* Stops or starts avahi-daemon a or b (bounded by run-with-avahi.sh). */
static void
avahi_ctl (const char *what,
           const char *which)
{
  const char *argv[] = { "sh", lab.ctl, "--ctl", what, which, NULL };

  run (argv);
}

static void
set_ipv4_a (const char *add,
            const char *del)
{
  g_autofree char *add_cidr = g_strdup_printf ("%s/24", add);
  g_autofree char *del_cidr = g_strdup_printf ("%s/24", del);
  const char      *add_argv[] = { "ip", "-n", lab.ns_a, "addr", "add", add_cidr, "dev", lab.if_a, NULL };
  const char      *del_argv[] = { "ip", "-n", lab.ns_a, "addr", "del", del_cidr, "dev", lab.if_a, NULL };

  /* The new address first, as a renumbering host has both for a moment;
   * promote_secondaries (set by the lab) keeps it when the old one goes. */
  run (add_argv);
  run (del_argv);
}

#define LAB_OR_SKIP()           \
  G_STMT_START                  \
  {                             \
    if (lab.skip != NULL)       \
      {                         \
        g_test_skip (lab.skip); \
        return;                 \
      }                         \
  }                             \
  G_STMT_END

/* ---- cases --------------------------------------------------------------- */

/* Advertised on daemon a, browsed on daemon b: both addresses with the right
 * fingerprint and port; gone when the advertiser stops. */
static void
test_discover (void)
{
  g_autoptr (Watch) b = NULL;
  g_autofree char *want = NULL;
  Advertiser      *adv;

  LAB_OR_SKIP ();
  b = watch_new ();
  start_available (b);

  adv = advertiser_spawn ("pm-test-discover", PORT_A, FP_A);
  wait_found (b, FP_A, lab.addr_a4, PORT_A);
  wait_found (b, FP_A, lab.addr_a6, PORT_A);
  want = g_strdup_printf ("%s:%u [%s]:%u", lab.addr_a4, PORT_A, lab.addr_a6, PORT_A);
  wait_lookup (b->mdns, FP_A, want);
  g_assert_cmpuint (lookup_count (b->mdns, FP_X), ==, 0);
  g_assert_cmpuint (b->lost->len, ==, 0);

  advertiser_stop (adv);
  wait_lost (b, FP_A);
  wait_lookup (b->mdns, FP_A, "");
  g_assert_cmpuint (b->lost->len, ==, 1);
}

/* a's IPv4 address changes: daemon a announces the new one and withdraws the
 * old; the browser's resolver reports the new address, the lookup drops the
 * old one, and the peer is never lost (its IPv6 address stays). */
static void
test_address_change (void)
{
  g_autoptr (Watch) b = NULL;
  g_autofree char *want = NULL;
  Advertiser      *adv;

  LAB_OR_SKIP ();
  b = watch_new ();
  start_available (b);
  adv = advertiser_spawn ("pm-test-renumber", PORT_A, FP_A);
  wait_found (b, FP_A, lab.addr_a4, PORT_A);
  wait_found (b, FP_A, lab.addr_a6, PORT_A);

  set_ipv4_a (ADDR_A4_NEW, lab.addr_a4);
  wait_found (b, FP_A, ADDR_A4_NEW, PORT_A);
  want = g_strdup_printf ("%s:%u [%s]:%u", ADDR_A4_NEW, PORT_A, lab.addr_a6, PORT_A);
  wait_lookup (b->mdns, FP_A, want);
  g_assert_cmpuint (b->lost->len, ==, 0);

  set_ipv4_a (lab.addr_a4, ADDR_A4_NEW);
  wait_found (b, FP_A, lab.addr_a4, PORT_A);
  advertiser_stop (adv);
  wait_lost (b, FP_A);
}

/* Two clients of daemon b: x advertises and browses, y browses. y finds x (a
 * local service, at b's addresses); x finds the remote advertiser but never
 * itself; when x withdraws, y loses it. */
static void
test_not_own (void)
{
  g_autoptr (Watch) x = NULL;
  g_autoptr (Watch) y = NULL;
  Advertiser *adv;

  LAB_OR_SKIP ();
  x = watch_new ();
  y = watch_new ();
  start_available (x);
  start_available (y);
  pm_mdns_advertise (x->mdns, "pm-test-own", PORT_X, FP_X);
  adv = advertiser_spawn ("pm-test-remote", PORT_A, FP_A);

  wait_found (y, FP_X, ADDR_B4, PORT_X);
  wait_found (y, FP_X, ADDR_B6, PORT_X);
  wait_found (x, FP_A, lab.addr_a4, PORT_A);
  wait_found (y, FP_A, lab.addr_a4, PORT_A);
  spin_for (500);
  for (unsigned i = 0; i < x->found->len; i++)
    g_assert_false (g_str_has_prefix (x->found->pdata[i], FP_X));
  g_assert_cmpuint (lookup_count (x->mdns, FP_X), ==, 0);

  pm_mdns_unadvertise (x->mdns);
  wait_lost (y, FP_X);
  advertiser_stop (adv);
  wait_lost (x, FP_A);
  wait_lost (y, FP_A);
  g_assert_false (strv_has (x->lost, FP_X));
}

/* Three advertisers with one name: a (remote), then x and y on daemon b.
 * y meets x's name locally (AVAHI_ERR_COLLISION at once); x and a meet on
 * the network (a probing conflict, or a conflict after both announced, when
 * a probe crosses an answer): the loser renames. A browser ends with each
 * fingerprint at its own host's addresses and port, whatever it saw while
 * the names were fought over. */
static void
test_collision (void)
{
  g_autoptr (Watch) x = NULL;
  g_autoptr (Watch) y = NULL;
  g_autoptr (Watch) z = NULL;
  g_autofree char *want_a = NULL;
  g_autofree char *want_x = NULL;
  g_autofree char *want_y = NULL;
  Advertiser      *adv;

  LAB_OR_SKIP ();
  z = watch_new ();
  start_available (z);
  adv = advertiser_spawn ("pm-test-same", PORT_A, FP_A);
  wait_found (z, FP_A, lab.addr_a4, PORT_A);

  x = watch_new ();
  y = watch_new ();
  start_available (x);
  start_available (y);
  pm_mdns_advertise (x->mdns, "pm-test-same", PORT_X, FP_X);
  pm_mdns_advertise (y->mdns, "pm-test-same", PORT_Y, FP_Y);

  want_a = g_strdup_printf ("%s:%u [%s]:%u", lab.addr_a4, PORT_A, lab.addr_a6, PORT_A);
  want_x = g_strdup_printf ("%s:%u [%s]:%u", ADDR_B4, PORT_X, ADDR_B6, PORT_X);
  want_y = g_strdup_printf ("%s:%u [%s]:%u", ADDR_B4, PORT_Y, ADDR_B6, PORT_Y);
  wait_lookup (z->mdns, FP_X, want_x);
  wait_lookup (z->mdns, FP_Y, want_y);
  wait_lookup (z->mdns, FP_A, want_a);
  /* ... and stays there. */
  spin_for (2000);
  wait_lookup (z->mdns, FP_X, want_x);
  wait_lookup (z->mdns, FP_Y, want_y);
  wait_lookup (z->mdns, FP_A, want_a);

  advertiser_stop (adv);
  wait_lost (z, FP_A);
}

/* Daemon a restarts: the advertiser registers again by itself. Daemon b
 * restarts: the browser goes unavailable (one message), comes back and finds
 * the peer again; a PmMdns started while b is down waits for it. */
static void
test_daemon_restart (void)
{
  g_autoptr (Watch) b = NULL;
  g_autoptr (Watch) late = NULL;
  g_autoptr (GError) error = NULL;
  Advertiser *adv;

  LAB_OR_SKIP ();
  b = watch_new ();
  start_available (b);
  adv = advertiser_spawn ("pm-test-restart", PORT_A, FP_A);
  wait_found (b, FP_A, lab.addr_a4, PORT_A);

  /* a goes (its goodbyes withdraw the service) and comes back. */
  avahi_ctl ("stop", "a");
  wait_lost (b, FP_A);
  g_ptr_array_set_size (b->found, 0);
  avahi_ctl ("start", "a");
  wait_found (b, FP_A, lab.addr_a4, PORT_A);
  wait_found (b, FP_A, lab.addr_a6, PORT_A);

  /* b goes: discovery off, said once, the peer lost. */
  off_messages = 0;
  g_ptr_array_set_size (b->lost, 0);
  g_ptr_array_set_size (b->found, 0);
  avahi_ctl ("stop", "b");
  g_assert_true (pm_test_spin_until (is_unavailable, b->mdns, WAIT_MS));
  wait_lost (b, FP_A);
  g_assert_cmpuint (lookup_count (b->mdns, FP_A), ==, 0);

  /* Started while b is down: off at once, one message, calls are no-ops. */
  late = watch_new ();
  g_assert_true (pm_mdns_start (late->mdns, &error));
  g_assert_no_error (error);
  g_assert_false (pm_mdns_get_available (late->mdns));
  pm_mdns_advertise (late->mdns, "pm-test-late", PORT_X, FP_X);
  spin_for (300);
  g_assert_cmpuint (off_messages, ==, 2); /* b's, and late's */

  avahi_ctl ("start", "b");
  g_assert_true (pm_test_spin_until (is_available, b->mdns, WAIT_MS));
  g_assert_true (pm_test_spin_until (is_available, late->mdns, WAIT_MS));
  wait_found (b, FP_A, lab.addr_a4, PORT_A);
  wait_found (late, FP_A, lab.addr_a4, PORT_A);
  /* late's advertisement went out once b was back. */
  wait_found (b, FP_X, ADDR_B4, PORT_X);
  g_assert_cmpuint (off_messages, ==, 2);

  advertiser_stop (adv);
  wait_lost (b, FP_A);
}

/* No system bus at all (a socket path that does not exist), in a child so
 * that libdbus reads that address: discovery off, said once, no crash. */
static void
test_no_daemon (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (PmMdns) mdns = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) addresses = NULL;
      uint8_t          key[32] = { 1 };
      g_autofree char *fp = pm_mdns_fingerprint_of_key (key);

      g_setenv ("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/pipermesh-test-bus", TRUE);
      off_messages = 0;
      mdns = pm_mdns_new ();
      g_assert_false (pm_mdns_get_available (mdns));
      g_assert_true (pm_mdns_start (mdns, &error));
      g_assert_no_error (error);
      g_assert_false (pm_mdns_get_available (mdns));
      pm_mdns_advertise (mdns, "pm-test-nobody", PORT_A, fp);
      addresses = pm_mdns_lookup (mdns, fp);
      g_assert_cmpuint (addresses->len, ==, 0);
      spin_for (200);
      pm_mdns_unadvertise (mdns);
      pm_mdns_advertise (mdns, "pm-test-nobody", PORT_A, fp);
      g_assert_false (pm_mdns_get_available (mdns));
      g_assert_cmpuint (off_messages, ==, 1);
      return;
    }

  g_test_trap_subprocess (NULL, 30 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDOUT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*mDNS discovery off: no Avahi daemon (*); using stored addresses*");
}

/* pm_mdns_fingerprint_of_key(): SHA-256's first 16 hex digits. */
static void
test_fingerprint (void)
{
  uint8_t          zero[32] = { 0 };
  g_autofree char *fp = pm_mdns_fingerprint_of_key (zero);

  /* SHA-256 of 32 zero bytes: 66687aad f862bd77 6c8fc18b 8e9f8e20 ... */
  g_assert_cmpstr (fp, ==, "66687aadf862bd77");
  g_assert_true (pm_mdns_fingerprint_is_valid (fp));
  g_assert_false (pm_mdns_fingerprint_is_valid (NULL));
  g_assert_false (pm_mdns_fingerprint_is_valid (""));
  g_assert_false (pm_mdns_fingerprint_is_valid ("66687aadf862bd7"));
  g_assert_false (pm_mdns_fingerprint_is_valid ("66687aadf862bd777"));
  g_assert_false (pm_mdns_fingerprint_is_valid ("66687AADF862BD77"));
  g_assert_false (pm_mdns_fingerprint_is_valid ("66687aadf862bd7g"));
}

/* tests/fuzz/corpus/mdns-txt: every ok-* parses (to fp 0123456789abcdef),
 * every bad-* is refused, by Avahi's wire parser or by ours. */
static void
test_txt_seeds (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "fuzz", "corpus", "mdns-txt", NULL);
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GError) error = NULL;
  unsigned    n_ok = 0, n_bad = 0;
  const char *name;

  dir = g_dir_open (dir_path, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir_path, name, NULL);
      g_autofree char *contents = NULL;
      g_autofree char *fp = NULL;
      g_autoptr (GError) parse_error = NULL;
      AvahiStringList *txt = NULL;
      gsize            len = 0;
      gboolean         ok;

      g_assert_true (g_file_get_contents (path, &contents, &len, &error));
      g_assert_no_error (error);
      ok = avahi_string_list_parse (contents, len, &txt) >= 0 &&
           pm_mdns_txt_parse (txt, &fp, &parse_error);
      avahi_string_list_free (txt);
      if (g_str_has_prefix (name, "ok-"))
        {
          g_assert_no_error (parse_error);
          g_assert_true (ok);
          g_assert_cmpstr (fp, ==, "0123456789abcdef");
          n_ok++;
        }
      else
        {
          g_assert_true (g_str_has_prefix (name, "bad-"));
          g_assert_false (ok);
          g_assert_null (fp);
          if (parse_error != NULL)
            {
              g_assert_error (parse_error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT);
              g_test_message ("%s: %s", name, parse_error->message);
            }
          n_bad++;
        }
    }
  g_assert_cmpuint (n_ok, >=, 3);
  g_assert_cmpuint (n_bad, >=, 10);
}

int
main (int   argc,
      char *argv[])
{
  int rc;

  if (argc == 5 && g_str_equal (argv[1], "--advertise"))
    return run_advertiser (argv[2], argv[3], argv[4]);

  g_test_init (&argc, &argv, NULL);
  g_log_set_handler ("pipermesh-mdns", G_LOG_LEVEL_MESSAGE, count_mdns_messages, NULL);

  lab.skip = g_getenv ("PM_TEST_AVAHI_SKIP");
  lab.bus_a = g_getenv ("PM_TEST_AVAHI_BUS_A");
  lab.ns_a = g_getenv ("PM_TEST_AVAHI_NS_A");
  lab.if_a = g_getenv ("PM_TEST_AVAHI_IF_A");
  lab.addr_a4 = g_getenv ("PM_TEST_AVAHI_ADDR_A4");
  lab.addr_a6 = g_getenv ("PM_TEST_AVAHI_ADDR_A6");
  lab.ctl = g_getenv ("PM_TEST_AVAHI_CTL");
  if (lab.skip == NULL && (lab.bus_a == NULL || g_getenv ("PM_TEST_AVAHI_BUS_B") == NULL ||
                           lab.ns_a == NULL || lab.if_a == NULL || lab.addr_a4 == NULL ||
                           lab.addr_a6 == NULL || lab.ctl == NULL))
    lab.skip = "not run through tests/run-with-avahi.sh (no mDNS lab)";
  /* This process only ever talks to the lab's bus b (libdbus reads the
   * address once), or to no bus at all: never the host's. */
  if (!g_test_subprocess ())
    g_setenv ("DBUS_SYSTEM_BUS_ADDRESS",
              lab.skip == NULL ? g_getenv ("PM_TEST_AVAHI_BUS_B") : "unix:path=/nonexistent/pipermesh-test-bus",
              TRUE);

  g_test_add_func ("/mdns/fingerprint", test_fingerprint);
  g_test_add_func ("/mdns/txt-seeds", test_txt_seeds);
  g_test_add_func ("/mdns/no-daemon", test_no_daemon);
  g_test_add_func ("/mdns/discover", test_discover);
  g_test_add_func ("/mdns/address-change", test_address_change);
  g_test_add_func ("/mdns/not-own", test_not_own);
  g_test_add_func ("/mdns/collision", test_collision);
  g_test_add_func ("/mdns/daemon-restart", test_daemon_restart);

  rc = g_test_run ();
  if (rc == 0 && lab.skip != NULL && !g_test_subprocess ())
    {
      g_print ("SKIP: the mDNS lab cases: %s\n", lab.skip);
      return 77;
    }
  return rc;
}
