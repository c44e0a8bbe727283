/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "pipermesh-fuzz"

/*
 * A PmSession fed a sequence of datagrams, sends and timer ticks split from
 * the input (format in fuzz-common.h), with a clock that only moves forward.
 * The randomness is seeded, so the seed corpus (gen-corpus.c) holds a real
 * peer's initiation and data frames that authenticate against this session.
 * pm_fuzz_session_apply() asserts that every refused datagram sets an error
 * and changes nothing, and that everything the session emits parses.
 */

#include <glib.h>

#include "fuzz-common.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  pm_fuzz_init ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  PmFuzzSession fs;

  if (size == 0)
    return 0;
  pm_fuzz_session_run (&fs, data, size);
  pm_fuzz_session_clear (&fs);
  return 0;
}
