#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Installs the dependencies, builds PiperMesh and starts it, on a fresh Debian 12 machine.
#
# Usage: scripts/run.sh [ARGS...]
#   On a desktop (DISPLAY or WAYLAND_DISPLAY set) it starts the app, build/app/pipermesh-app,
#   with ARGS (e.g. --demo: a local server and a second device, to look around at once).
#   Without a display it runs the command-line tool, build/cli/pipermesh, with ARGS; with no
#   ARGS that is "pipermesh id", which prints this device's identity (and creates it the first
#   time). PIPERMESH_RUN=cli forces the command-line tool.
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

if [ "${PIPERMESH_RUN:-}" != cli ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  # The app's GSettings schema, compiled in the build tree (it is not installed).
  export GSETTINGS_SCHEMA_DIR="$PWD/build/data"
  exec build/app/pipermesh-app "$@"
fi

if [ $# -eq 0 ]; then
  set -- id
fi
exec build/cli/pipermesh "$@"
