#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Installs the dependencies, builds PiperMesh and starts it, on a fresh Debian 12 machine.
#
# Usage: scripts/run.sh [PIPERMESH ARGS...]
#   With no arguments it runs "pipermesh id", which prints this device's identity (and creates
#   it on the first run). Anything else is passed to build/cli/pipermesh as is.
#
# Installation and build messages go to stderr, so stdout is only the program's own output.
set -eu

cd "$(dirname "$0")/.."

{
  sh scripts/install-deps.sh
  # Same options as scripts/test.sh, so switching between the two never rebuilds everything.
  # An existing build directory is left as it is: ninja reconfigures it when meson.build changes.
  if [ ! -f build/meson-private/coredata.dat ]; then
    rm -rf build
    meson setup build --werror
  fi
  ninja -C build
} >&2

if [ ! -x build/cli/pipermesh ]; then
  echo "run.sh: build/cli/pipermesh was not built; is cli/ wired into cli/meson.build yet?" >&2
  exit 1
fi

if [ $# -eq 0 ]; then
  set -- id
fi
exec build/cli/pipermesh "$@"
