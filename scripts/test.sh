#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Installs the dependencies, builds PiperMesh and runs every test, on a fresh Debian 12 machine.
#
# Usage: scripts/test.sh [--quick]
#
# Three builds, each with warnings as errors (--werror):
#   build       the normal build                   meson test -C build
#   build-asan  AddressSanitizer + UBSan            meson test -C build-asan
#   build-fuzz  clang + libFuzzer + ASan/UBSan      meson test -C build-fuzz --suite fuzz
#               (only when meson_options.txt has the "fuzzing" option and clang is installed;
#               skipped when the "fuzz" suite has no tests yet), then the whole tree is built
#               there too, so code that clang warns about fails ("clang-build" in the summary)
# --quick runs the first build only.
#
# Every build's tests run even when an earlier build failed. The last line of output is the total
# over all builds, "N passed, N failed, N skipped", read from each build's meson-logs/testlog.json
# (a build that fails to configure or compile counts as one failure). Exit status is non-zero if
# anything failed.
set -eu

cd "$(dirname "$0")/.."

quick=false
for arg in "$@"; do
  case "$arg" in
    --quick) quick=true ;;
    -h | --help)
      sed -n '3,20s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "test.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

section () {
  printf '\n==== %s ====\n' "$*"
}

# setup DIR [MESON OPTIONS...]: configures DIR, reconfiguring it when it already exists so the
# options below always apply (and the list of vector files is refreshed). Wipes it only when it
# is not a usable meson build directory.
setup () {
  local dir=$1
  shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$dir" "$@" || meson setup --wipe "$dir" "$@"
  else
    rm -rf "$dir"
    meson setup "$dir" "$@"
  fi
}

# Results: one "DIR STATUS" per build that ran; STATUS is "ok", "tests-failed" or "build-failed".
phases=()
failed=false

# run_phase NAME DIR [MESON TEST ARGS...]: builds DIR and runs its tests.
run_phase () {
  local name=$1 dir=$2
  shift 2
  local start=$SECONDS
  section "$name: build ($dir)"
  rm -f "$dir/meson-logs/testlog.json"
  if ! ninja -C "$dir"; then
    echo "test.sh: $name: the build failed" >&2
    phases+=("$dir build-failed")
    failed=true
    return 0
  fi
  section "$name: tests"
  if meson test -C "$dir" --no-rebuild --print-errorlogs "$@"; then
    phases+=("$dir ok")
  else
    phases+=("$dir tests-failed")
    failed=true
  fi
  echo "($name took $((SECONDS - start)) s)"
}

# count_suite DIR SUITE: how many tests of a configured DIR are in SUITE (no build needed).
count_suite () {
  meson introspect --tests "$1" | python3 -c '
import json, sys
suite = sys.argv[1]
print(sum(1 for t in json.load(sys.stdin)
          if any(s == suite or s.endswith(":" + suite) for s in t.get("suite", []))))
' "$2"
}

configure_failed () {
  echo "test.sh: $1: meson setup failed" >&2
  phases+=("$2 build-failed")
  failed=true
}

start_all=$SECONDS

section "Dependencies"
sh scripts/install-deps.sh --test

# 1. Normal build.
section "build: configure"
if setup build --werror; then
  run_phase build build
else
  configure_failed build build
fi

if ! $quick; then
  # 2. AddressSanitizer + UndefinedBehaviorSanitizer. GLib 2.74 still has GSlice; always-malloc
  # lets ASan see every allocation. Sanitized code runs slower, hence the timeout multiplier.
  section "build-asan: configure"
  if setup build-asan --werror -Db_sanitize=address,undefined -Db_lundef=false; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    G_SLICE=always-malloc \
      run_phase build-asan build-asan --timeout-multiplier 3
  else
    configure_failed build-asan build-asan
  fi

  # 3. libFuzzer targets, registered as meson tests in the suite "fuzz", each bounded in time.
  if ! grep -qs "option *( *'fuzzing'" meson_options.txt meson.options; then
    section "build-fuzz: skipped (no 'fuzzing' option in meson_options.txt)"
  elif ! command -v clang >/dev/null 2>&1; then
    section "build-fuzz: skipped (clang is not installed)"
  else
    section "build-fuzz: configure"
    # The compiler of a build directory is fixed when it is first set up: start over if an
    # earlier build-fuzz was made with another compiler.
    if [ -f build-fuzz/build.ninja ] &&
      ! grep -A1 '^rule c_COMPILER' build-fuzz/build.ninja | grep -q 'command = \(ccache \)\{0,1\}clang'; then
      rm -rf build-fuzz
    fi
    if CC=clang setup build-fuzz --werror -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false; then
      if [ "$(count_suite build-fuzz fuzz)" = 0 ]; then
        section "build-fuzz: skipped (no tests in the 'fuzz' suite yet)"
      else
        # meson test builds just what the fuzz tests need, so a warning elsewhere in the tree
        # does not stop the fuzzing; the whole tree is built with clang afterwards.
        start=$SECONDS
        section "build-fuzz: build the fuzz targets and run them"
        rm -f build-fuzz/meson-logs/testlog.json
        if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
          G_SLICE=always-malloc \
          meson test -C build-fuzz --print-errorlogs --suite fuzz --timeout-multiplier 2; then
          phases+=("build-fuzz ok")
        elif [ -f build-fuzz/meson-logs/testlog.json ]; then
          phases+=("build-fuzz tests-failed")
          failed=true
        else
          phases+=("build-fuzz build-failed")
          failed=true
        fi
        echo "(build-fuzz took $((SECONDS - start)) s)"
      fi
      # clang warns about things gcc does not (an unused g_autoptr variable, for one).
      section "build-fuzz: build the whole tree with clang"
      if ! ninja -C build-fuzz; then
        echo "test.sh: the tree does not build with clang and -Werror" >&2
        phases+=("clang-build build-failed")
        failed=true
      fi
    else
      configure_failed build-fuzz build-fuzz
    fi
  fi
fi

section "Summary"
summary=$(python3 - "${phases[@]}" <<'EOF'
import json, os, sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}
FAILED = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}

total = {"passed": 0, "failed": 0, "skipped": 0}
args = sys.argv[1:]
for dir_, status in (a.rsplit(" ", 1) for a in args):
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    log = os.path.join(dir_, "meson-logs", "testlog.json")
    if status == "build-failed":
        counts["failed"] += 1
        failures.append("(configure or compile)")
    elif os.path.exists(log):
        with open(log, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                r = t.get("result", "")
                if r in PASSED:
                    counts["passed"] += 1
                elif r in SKIPPED:
                    counts["skipped"] += 1
                else:
                    counts["failed"] += 1
                    failures.append(f"{t.get('name', '?')} ({r})")
    elif status == "tests-failed":
        counts["failed"] += 1
        failures.append("(meson test failed before any test ran)")
    line = f"{dir_}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if failures:
        line += " — failed: " + ", ".join(failures)
    print(line)
    for k in total:
        total[k] += counts[k]
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
EOF
) || { echo "test.sh: could not read the test logs" >&2; summary="0 passed, 1 failed, 0 skipped"; failed=true; }

echo "(all builds took $((SECONDS - start_all)) s)"
echo "$summary"
case "${summary##*$'\n'}" in
  *" 0 failed, "*) ;;
  *) failed=true ;;
esac
if $failed; then
  exit 1
fi
