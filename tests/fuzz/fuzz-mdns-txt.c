/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * pm_mdns_txt_parse() (core/pm-mdns.c) on arbitrary TXT records: the input is
 * TXT rdata as it travels (length-prefixed strings), turned into an
 * AvahiStringList by Avahi's own parser, as avahi-daemon does before the
 * record reaches us over D-Bus.
 *
 * An accepted record yields a valid fingerprint, and the record holds exactly
 * one "v=1" and exactly one "fp=" whose value is that fingerprint (any case).
 * A refused one leaves the output untouched and says why in PM_MDNS_ERROR_TXT.
 * The verdict does not depend on the order of the strings (reversed list).
 *
 * Seeds (corpus/mdns-txt, written by hand; test-mdns checks that every ok-*
 * parses to 0123456789abcdef and every bad-* is refused): the record as
 * advertised, in another order, with extra and upper-case keys; no v=, v=2,
 * v without a value, no fp=, short, long, non-hex and NUL-holding fp=,
 * repeated keys, an empty record and truncated rdata.
 */

#include <avahi-common/strlst.h>
#include <glib.h>
#include <string.h>

#include "fuzz-common.h"
#include "pm-mdns-private.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

/* How many strings of @txt have the key @key (any case), and the last one's
 * value (NULL: none, or no "="). */
static unsigned
count_key (AvahiStringList *txt,
           const char      *key,
           char           **value)
{
  unsigned n = 0;

  *value = NULL;
  for (AvahiStringList *l = txt; l != NULL; l = avahi_string_list_get_next (l))
    {
      const char *text = (const char *) avahi_string_list_get_text (l);
      size_t      size = avahi_string_list_get_size (l);
      size_t      key_len = strlen (key);

      if (size < key_len || g_ascii_strncasecmp (text, key, key_len) != 0)
        continue;
      if (size == key_len)
        {
          n++;
          g_clear_pointer (value, g_free);
        }
      else if (text[key_len] == '=')
        {
          n++;
          g_free (*value);
          *value = g_strndup (text + key_len + 1, size - key_len - 1);
        }
    }
  return n;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  AvahiStringList *txt = NULL, *reversed;
  g_autofree char *fp = NULL;
  g_autofree char *fp_again = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) error_again = NULL;
  gboolean ok, ok_again;

  if (avahi_string_list_parse (data, size, &txt) < 0)
    return 0;

  ok = pm_mdns_txt_parse (txt, &fp, &error);
  if (ok)
    {
      g_autofree char *v = NULL;
      g_autofree char *fp_value = NULL;

      g_assert (error == NULL);
      g_assert (pm_mdns_fingerprint_is_valid (fp));
      g_assert (count_key (txt, "v", &v) == 1 && g_strcmp0 (v, "1") == 0);
      g_assert (count_key (txt, "fp", &fp_value) == 1 && fp_value != NULL);
      g_assert (g_ascii_strcasecmp (fp_value, fp) == 0);
    }
  else
    {
      g_assert (fp == NULL);
      g_assert (g_error_matches (error, PM_MDNS_ERROR, PM_MDNS_ERROR_TXT));
      g_assert (error->message[0] != '\0');
    }

  /* The same strings in the other order: the same verdict. */
  reversed = avahi_string_list_reverse (avahi_string_list_copy (txt));
  ok_again = pm_mdns_txt_parse (reversed, &fp_again, &error_again);
  g_assert (ok_again == ok);
  g_assert (g_strcmp0 (fp_again, fp) == 0);
  avahi_string_list_free (reversed);

  avahi_string_list_free (txt);
  return 0;
}
