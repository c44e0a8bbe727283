#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# run-with-avahi.sh COMMAND [ARG...]
#
# Runs COMMAND next to a throwaway mDNS LAN: two network namespaces ("a" and
# "b") joined by a veth pair (multicast on, IPv4 and IPv6), each with its own
# D-Bus system bus (dbus-daemon, a minimal config written here) and its own
# avahi-daemon on that bus (its own avahi-daemon.conf, a private tmpfs over
# /run so the host's daemon, pid file and socket are never touched). mDNS
# crosses the veth for real: an advertisement on bus a is discovered through
# bus b. Everything lives in the namespaces and in one temporary directory,
# and goes on every exit path (the namespaces' processes are killed, the
# namespaces deleted). Namespaces left by a run that was killed with SIGKILL
# are swept by the next run.
#
# COMMAND runs in the host's namespace (D-Bus sockets are files, so it reaches
# both buses from there) with this environment:
#   DBUS_SYSTEM_BUS_ADDRESS   bus b, or a socket that does not exist when the
#                             lab is off: never the host's own system bus
#   PM_TEST_AVAHI_BUS_A/_B    the two buses' addresses
#   PM_TEST_AVAHI_NS_A/_B     the namespaces; PM_TEST_AVAHI_IF_A is a's veth
#   PM_TEST_AVAHI_ADDR_A4/_A6 a's addresses (IPv4, IPv6) on that veth
#   PM_TEST_AVAHI_CTL         "sh $PM_TEST_AVAHI_CTL --ctl stop|start a|b"
#                             stops or starts one avahi-daemon (bounded)
#   PM_TEST_AVAHI_SKIP=WHY    set instead when the lab cannot be built (not
#                             root, no `ip netns`, no avahi-daemon or
#                             dbus-daemon); COMMAND still runs, so the cases
#                             that need no daemon do
# A lab that has everything it needs but does not come up is an error (exit 1,
# with the daemons' logs), not a skip. Exits with COMMAND's status otherwise.

set -u

# ---- helpers shared by the lab and --ctl ------------------------------------

# start_avahi X: avahi-daemon for namespace X on bus X, in the background. `ip
# netns exec` gives it a private mount namespace, in which a tmpfs covers /run:
# its pid file and socket (/run/avahi-daemon) never meet the host's daemon.
start_avahi () {
  x=$1
  eval "ns=\$PM_TEST_AVAHI_NS_$(echo "$x" | tr ab AB)"
  # shellcheck disable=SC2154,SC2016 # ns: set by the eval; $1, $2: the inner shell's
  ip netns exec "$ns" sh -c '
    mount -t tmpfs -o mode=0755,size=1m pm-mdns-run /run || exit 1
    DBUS_SYSTEM_BUS_ADDRESS=$1 exec avahi-daemon --no-drop-root --no-chroot --no-rlimits \
      --no-proc-title -f "$2"' \
    sh "unix:path=$PM_TEST_AVAHI_DIR/bus-$x" "$PM_TEST_AVAHI_DIR/avahi-$x.conf" \
    >>"$PM_TEST_AVAHI_DIR/avahi-$x.log" 2>&1 </dev/null &
  echo $! >"$PM_TEST_AVAHI_DIR/avahi-$x.pid"
}

# has_avahi X: whether org.freedesktop.Avahi has an owner on bus X.
has_avahi () {
  dbus-send --bus="unix:path=$PM_TEST_AVAHI_DIR/bus-$1" --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Avahi \
    2>/dev/null | grep -q "boolean true"
}

# wait_avahi X: up to 10 s for avahi-daemon X to own its name.
wait_avahi () {
  i=0
  while [ $i -lt 100 ]; do
    has_avahi "$1" && return 0
    kill -0 "$(cat "$PM_TEST_AVAHI_DIR/avahi-$1.pid")" 2>/dev/null || return 1
    i=$((i + 1))
    sleep 0.1
  done
  return 1
}

# stop_avahi X: SIGTERM (avahi-daemon sends its goodbye packets), then up to
# 10 s for it to go, then SIGKILL.
stop_avahi () {
  pid=$(cat "$PM_TEST_AVAHI_DIR/avahi-$1.pid")
  kill "$pid" 2>/dev/null || return 0
  i=0
  while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  return 0
}

if [ "${1:-}" = "--ctl" ]; then
  if [ $# -ne 3 ] || [ -z "${PM_TEST_AVAHI_DIR:-}" ]; then
    echo "usage: PM_TEST_AVAHI_DIR=... $0 --ctl stop|start a|b" >&2
    exit 2
  fi
  case "$2:$3" in
    stop:a | stop:b) stop_avahi "$3" ;;
    start:a | start:b)
      start_avahi "$3"
      if ! wait_avahi "$3"; then
        echo "run-with-avahi: avahi-daemon $3 did not come back:" >&2
        cat "$PM_TEST_AVAHI_DIR/avahi-$3.log" >&2
        exit 1
      fi
      ;;
    *)
      echo "usage: $0 --ctl stop|start a|b" >&2
      exit 2
      ;;
  esac
  exit 0
fi

# ---- the lab ------------------------------------------------------------------

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

unset PM_TEST_AVAHI_SKIP PM_TEST_AVAHI_DIR PM_TEST_AVAHI_BUS_A PM_TEST_AVAHI_BUS_B \
  PM_TEST_AVAHI_NS_A PM_TEST_AVAHI_NS_B PM_TEST_AVAHI_IF_A PM_TEST_AVAHI_ADDR_A4 \
  PM_TEST_AVAHI_ADDR_A6 PM_TEST_AVAHI_CTL

# Under /tmp, not $TMPDIR: the daemons' private /run must not hide the buses.
tmp=$(mktemp -d "/tmp/pm-mdns-$$.XXXXXX") || exit 1
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmp/no-bus"
export DBUS_SYSTEM_BUS_ADDRESS

ns_prefix=pm-mdns-
NS_A=$ns_prefix$$-a
NS_B=$ns_prefix$$-b
made_ns=

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup () {
  for ns in $made_ns; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086 # one pid per word
      kill $pids 2>/dev/null
      i=0
      while [ "$i" -lt 30 ] && [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; do
        i=$((i + 1))
        sleep 0.1
      done
      # shellcheck disable=SC2046
      kill -9 $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
    fi
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

skip () {
  PM_TEST_AVAHI_SKIP=$1
  export PM_TEST_AVAHI_SKIP
  echo "run-with-avahi: $1; the mDNS lab cases will skip" >&2
}

# fail WHAT: the lab has what it needs but does not come up.
fail () {
  echo "run-with-avahi: $1" >&2
  for f in "$tmp"/*.log; do
    [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
  done
  exit 1
}

lab () {
  if [ "$(id -u)" -ne 0 ]; then
    skip "not root (network namespaces need it)"
    return
  fi
  missing=
  for tool in ip dbus-daemon dbus-send avahi-daemon; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
  done
  if [ -n "$missing" ]; then
    skip "not installed:$missing (Debian: iproute2, dbus, avahi-daemon)"
    return
  fi

  # Sweep what runs that died with SIGKILL left: their namespaces (and the
  # daemons in them) and their temporary directories.
  for ns in $(ip netns list 2>/dev/null | sed -n "s/^\($ns_prefix\([0-9]*\)-[ab]\).*/\1 \2/p" |
    while read -r name pid; do kill -0 "$pid" 2>/dev/null || echo "$name"; done); do
    # shellcheck disable=SC2046
    kill -9 $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  for dir in /tmp/pm-mdns-[0-9]*.*; do
    pid=${dir#/tmp/pm-mdns-}
    pid=${pid%%.*}
    [ -d "$dir" ] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$dir"
  done

  if ! out=$(ip netns add "$NS_A" 2>&1); then
    skip "\`ip netns add\` failed: $out"
    return
  fi
  made_ns=$NS_A
  ip netns add "$NS_B" || fail "ip netns add $NS_B failed"
  made_ns="$NS_A $NS_B"

  PM_TEST_AVAHI_DIR=$tmp
  PM_TEST_AVAHI_NS_A=$NS_A
  PM_TEST_AVAHI_NS_B=$NS_B
  PM_TEST_AVAHI_IF_A=mdns-a
  PM_TEST_AVAHI_ADDR_A4=10.213.0.1
  PM_TEST_AVAHI_ADDR_A6=fd6d:646e:7300::1
  PM_TEST_AVAHI_BUS_A="unix:path=$tmp/bus-a"
  PM_TEST_AVAHI_BUS_B="unix:path=$tmp/bus-b"
  PM_TEST_AVAHI_CTL="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

  # The link: no DAD (addresses usable at once), no link-local IPv6 addresses
  # (addr_gen_mode 1), so each side has exactly one address per family; a
  # secondary IPv4 address survives the primary's removal (renumbering tests).
  for x in a b; do
    eval "ns=\$NS_$(echo "$x" | tr ab AB)"
    ip -n "$ns" link set lo up || fail "ip link set lo up failed in $ns"
    # shellcheck disable=SC2016 # $k is the inner shell's
    ip netns exec "$ns" sh -c 'for k in all default; do
        echo 0 >/proc/sys/net/ipv6/conf/$k/accept_dad
        echo 1 >/proc/sys/net/ipv6/conf/$k/addr_gen_mode
        echo 1 >/proc/sys/net/ipv4/conf/$k/promote_secondaries
      done' || fail "sysctl failed in $ns"
  done
  ip -n "$NS_A" link add mdns-a type veth peer name mdns-b netns "$NS_B" ||
    fail "ip link add (veth) failed"
  if ! { ip -n "$NS_A" addr add "$PM_TEST_AVAHI_ADDR_A4/24" dev mdns-a &&
    ip -n "$NS_A" addr add "$PM_TEST_AVAHI_ADDR_A6/64" dev mdns-a nodad &&
    ip -n "$NS_B" addr add 10.213.0.2/24 dev mdns-b &&
    ip -n "$NS_B" addr add fd6d:646e:7300::2/64 dev mdns-b nodad &&
    ip -n "$NS_A" link set mdns-a multicast on up &&
    ip -n "$NS_B" link set mdns-b multicast on up; }; then
    fail "configuring the veth pair failed"
  fi

  for x in a b; do
    eval "ns=\$NS_$(echo "$x" | tr ab AB)"
    # A system bus only root (the bus's owner) may join, on which anyone
    # connected may own and call anything: what avahi-dbus.conf grants root.
    cat >"$tmp/bus-$x.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus-$x</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow own="org.freedesktop.Avahi"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
    cat >"$tmp/avahi-$x.conf" <<EOF
[server]
host-name=pm-mdns-$x
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces=mdns-$x
enable-dbus=yes
disallow-other-stacks=no
ratelimit-interval-usec=0
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-domain=no
[reflector]
enable-reflector=no
EOF
    ip netns exec "$ns" dbus-daemon --nofork --nopidfile --config-file="$tmp/bus-$x.conf" \
      >"$tmp/dbus-$x.log" 2>&1 </dev/null &
  done
  i=0
  while [ $i -lt 100 ] && ! { [ -S "$tmp/bus-a" ] && [ -S "$tmp/bus-b" ]; }; do
    i=$((i + 1))
    sleep 0.1
  done
  if ! { [ -S "$tmp/bus-a" ] && [ -S "$tmp/bus-b" ]; }; then
    fail "dbus-daemon did not come up"
  fi

  export PM_TEST_AVAHI_DIR PM_TEST_AVAHI_NS_A PM_TEST_AVAHI_NS_B PM_TEST_AVAHI_IF_A \
    PM_TEST_AVAHI_ADDR_A4 PM_TEST_AVAHI_ADDR_A6 PM_TEST_AVAHI_BUS_A PM_TEST_AVAHI_BUS_B \
    PM_TEST_AVAHI_CTL
  for x in a b; do
    start_avahi "$x"
  done
  for x in a b; do
    wait_avahi "$x" || fail "avahi-daemon $x did not come up on its bus"
  done
  DBUS_SYSTEM_BUS_ADDRESS=$PM_TEST_AVAHI_BUS_B
}

lab
"$@"
exit $?
