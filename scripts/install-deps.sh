#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Install everything PiperMesh needs to build and test, from Debian 12 packages.
# Usage: scripts/install-deps.sh [--test]   (--test adds the tools the test suite uses)
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

BUILD_PKGS="
  build-essential pkg-config meson ninja-build
  libglib2.0-dev libglib2.0-bin
  libsodium-dev libssl-dev
  libjson-glib-dev libsecret-1-dev
  libsoup-3.0-dev libsqlite3-dev zlib1g-dev
  libusrsctp-dev libgnutls28-dev
  libqrencode-dev libzbar-dev libgdk-pixbuf-2.0-dev
  libavahi-client-dev libavahi-glib-dev
  libgtk-4-dev libadwaita-1-dev libdbusmenu-glib-dev gettext
"

TEST_PKGS="
  clang libclang-rt-14-dev llvm
  clang-format python3
  dbus dbus-x11 gnome-keyring
  stun-client sqlite3 openssl wrk
  iproute2 iptables iperf3 wireguard-go wireguard-tools util-linux
  imagemagick
  avahi-daemon avahi-utils
  xvfb xauth desktop-file-utils appstream
"

PKGS="$BUILD_PKGS"
if [ "${1:-}" = "--test" ]; then
  PKGS="$PKGS $TEST_PKGS"
fi

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  echo "Installing:$missing"
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
else
  echo "All build dependencies are installed."
fi
