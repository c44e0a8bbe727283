#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# run-with-keyring.sh COMMAND [ARG...]
#
# Runs COMMAND on a private D-Bus session bus (dbus-run-session) with a
# throwaway gnome-keyring whose login keyring is created and unlocked with a
# dummy password, so Secret Service tests never touch a real user's keyring:
# HOME and the XDG directories point into a temporary directory that is removed
# afterwards. Exits with COMMAND's status.
#
# COMMAND learns the outcome from the environment:
#   PM_TEST_KEYRING=1          the throwaway keyring is up and unlocked
#   PM_TEST_KEYRING_SKIP=WHY   it is not (tools missing, or it failed to
#                              start); COMMAND still runs, so its other tests do
#
# DISPLAY and WAYLAND_DISPLAY are unset inside, so no keyring prompt can appear
# on the desktop of whoever runs the tests.

set -u

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

unset PM_TEST_KEYRING PM_TEST_KEYRING_SKIP

missing=
for tool in dbus-run-session gnome-keyring-daemon dbus-send; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  PM_TEST_KEYRING_SKIP="not installed:$missing (Debian: dbus-bin, gnome-keyring)"
  export PM_TEST_KEYRING_SKIP
  echo "run-with-keyring: $PM_TEST_KEYRING_SKIP; Secret Service tests will skip" >&2
  "$@"
  exit $?
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pm-keyring.XXXXXX") || exit 1
# From here on, whatever happens, the temporary directory goes.
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$tmp/home" "$tmp/data" "$tmp/config" "$tmp/cache" "$tmp/runtime" || exit 1
chmod 700 "$tmp/runtime"

# The part that runs on the private bus. $1 is the temporary directory and the
# rest is COMMAND.
# shellcheck disable=SC2016 # expanded by the inner shell, not here
inner='
tmp=$1
shift
printf "pipermesh-test\n" |
  gnome-keyring-daemon --foreground --unlock --components=secrets >"$tmp/gkd.log" 2>&1 &
gkd=$!

# Wait (up to 10 s) until the daemon owns org.freedesktop.secrets.
ready=
i=0
while [ $i -lt 100 ]; do
  if ! kill -0 "$gkd" 2>/dev/null; then
    break
  fi
  if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
       org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
     grep -q "boolean true"; then
    ready=1
    break
  fi
  i=$((i + 1))
  sleep 0.1
done

if [ -n "$ready" ]; then
  PM_TEST_KEYRING=1
  export PM_TEST_KEYRING
else
  PM_TEST_KEYRING_SKIP="gnome-keyring-daemon did not come up on the session bus: $(tr "\n" " " <"$tmp/gkd.log")"
  export PM_TEST_KEYRING_SKIP
  echo "run-with-keyring: $PM_TEST_KEYRING_SKIP; Secret Service tests will skip" >&2
fi

"$@"
status=$?

if kill -0 "$gkd" 2>/dev/null; then
  kill "$gkd" 2>/dev/null
fi
wait "$gkd" 2>/dev/null
exit $status
'

unset DISPLAY WAYLAND_DISPLAY GNOME_KEYRING_CONTROL SSH_AUTH_SOCK
HOME="$tmp/home" \
  XDG_DATA_HOME="$tmp/data" \
  XDG_CONFIG_HOME="$tmp/config" \
  XDG_CACHE_HOME="$tmp/cache" \
  XDG_RUNTIME_DIR="$tmp/runtime" \
  dbus-run-session -- sh -c "$inner" sh "$tmp" "$@"
status=$?
exit $status
