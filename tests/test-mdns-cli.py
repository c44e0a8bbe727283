#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: a paired host changes its address and the client still
connects, because it finds the host through mDNS (real avahi-daemons).

Usage: run-with-avahi.sh python3 test-mdns-cli.py PIPERMESH

run-with-avahi.sh builds the LAN: namespaces a and b joined by a veth pair,
each with its own system bus and avahi-daemon. Every pipermesh process runs in
one of the namespaces (`ip netns exec`), on that namespace's bus:

1. Pairing over the veth: the host (a) runs `pair show --png FILE
   --auto-accept --address A4`; the client (b) runs `pair scan FILE`. The
   client stores the host at A4:41641.
2. The host runs `up --lan-only --service data=127.0.0.1:PORT` (UDP 41641,
   advertised as _pipermesh._udp) next to a TCP data source.
3. The host's addresses change under the running `up` (IPv4 and IPv6: new
   ones added, the old ones deleted), so the address stored at pairing is
   wrong. `up` is not restarted: its UDP sockets are bound to the wildcard,
   and avahi-daemon a re-announces the host name's new address records itself.
4. The client runs `connect host --lan-only --forward 127.0.0.1:0=data`:
   4 MiB read through the forward (in b) have the source's SHA-256, the path
   is lan, the client logged the mDNS discovery of the new address, and its
   `paired --json` now lists the new address and no longer the stale one.
5. Control: the same connect from a copy of the client's state taken before
   step 4 (so the stale address only) with avahi-daemon b stopped: the peer
   never connects and nothing comes through the forward within a bounded
   time, and the copy's stored address is unchanged.

Skips (exit 77, with the reason) when the lab cannot be built: not root, no
`ip netns`, no avahi-daemon or dbus-daemon (PM_TEST_AVAHI_SKIP). Every wait
is bounded; every process started here is stopped on every exit path (and
run-with-avahi.sh kills whatever is left in the namespaces). Prints TAP-style
lines; the exit status is the result (0 pass, 1 fail, 77 skip).
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

import pmtest
from pmtest import Proc, comment, left, ok, run

PIPERMESH = os.path.abspath(sys.argv[1])
pmtest.set_deadline(160)
DATA_LEN = 4 * 1024 * 1024
MESH_PORT = 41641  # pair's --mesh-port and up --lan-only's --port defaults
NEW_A4 = "10.213.0.77"
NEW_A6 = "fd6d:646e:7300::77"
CONTROL_S = 12  # how long the control case waits for bytes that must not come

LAB = {k: os.environ.get("PM_TEST_AVAHI_" + k)
       for k in ("SKIP", "NS_A", "NS_B", "BUS_A", "BUS_B", "IF_A", "ADDR_A4", "ADDR_A6", "CTL")}

# No Secret Service (identities use the file store); nothing reaches the
# user's session bus. Each process gets its namespace's system bus below.
pmtest.set_env(DBUS_SESSION_BUS_ADDRESS="disabled:")


def in_ns(x, bus=None):
    """The argv prefix that runs a command in namespace @x on its own bus (or @bus)."""
    return ("ip", "netns", "exec", LAB["NS_" + x.upper()], "env",
            "DBUS_SYSTEM_BUS_ADDRESS=" + (bus or LAB["BUS_" + x.upper()]))


def pm(x, state, *args, timeout=20, bus=None):
    return pmtest.run_cli([*in_ns(x, bus), PIPERMESH, "--state-dir", state, *args], timeout=timeout,
                          what=" ".join(args[:2]))


def ip(*args):
    out = run(["ip", *args], timeout=10)
    if out.returncode != 0:
        comment(f"ip {' '.join(args)}: {out.stderr}")
    return out.returncode == 0


# Runs in namespace a: pmtest.Source (from the directory argv[2]) serving the
# file argv[1] on 127.0.0.1 (any port, printed) until it is stopped.
SOURCE = r"""
import sys, threading
sys.path.insert(0, sys.argv[2])
import pmtest
source = pmtest.Source(open(sys.argv[1], "rb").read())
print(source.port, flush=True)
threading.Event().wait()
"""

# Runs in namespace b: reads 127.0.0.1:argv[1] to EOF within argv[2]
# seconds; prints the byte count, the SHA-256 and what stopped it.
READER = r"""
import hashlib, socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
h, n, why = hashlib.sha256(), 0, "eof"
end = time.monotonic() + limit
try:
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        while True:
            rest = end - time.monotonic()
            if rest <= 0:
                why = "timed out"
                break
            s.settimeout(rest)
            b = s.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
except OSError as e:
    why = type(e).__name__ + ": " + str(e)
print(n, h.hexdigest(), why)
"""


def read_forward(port, limit):
    """(bytes, sha256, why) read through the forward at 127.0.0.1:@port in b."""
    out = run([*in_ns("b"), sys.executable, "-c", READER, str(port), str(limit)], timeout=limit + 10)
    parts = out.stdout.strip().split(" ", 2)
    if out.returncode != 0 or len(parts) != 3:
        comment(out.stdout + out.stderr)
        return 0, None, f"reader failed ({out.returncode})"
    return int(parts[0]), parts[1], parts[2]


def paired_addresses(x, state):
    out = pm(x, state, "paired", "--json")
    try:
        devices = json.loads(out.stdout) if out.returncode == 0 else None
    except ValueError:
        devices = None
    if not devices or len(devices) != 1:
        comment(out.stdout + out.stderr)
        return None
    return devices[0]["addresses"]


def avahi_browse(x):
    """What avahi-daemon @x resolves for _pipermesh._udp (diagnostics only)."""
    if shutil.which("avahi-browse") is None:
        return
    out = run([*in_ns(x), "avahi-browse", "-rpt", "_pipermesh._udp"], timeout=10)
    comment(f"avahi-browse in {x}: " + (out.stdout.strip().replace("\n", " | ") or out.stderr.strip()))


def pairing(tmp, host_state, client_state):
    png = os.path.join(tmp, "code.png")
    host = Proc([*in_ns("a"), PIPERMESH, "--state-dir", host_state, "pair", "show", "--png", png,
                 "--auto-accept", "--address", LAB["ADDR_A4"], "--name", "host"], "pair show")
    if not ok(host.wait_line(r"^Waiting for a device") and os.path.exists(png),
              f"pair show in a (--address {LAB['ADDR_A4']}) writes the PNG and waits"):
        comment(host.text())
        return False
    scan = pm("b", client_state, "pair", "scan", png, "--name", "client", timeout=40)
    rc = host.wait(20)
    if not ok(scan.returncode == 0 and rc == 0 and "Paired with “host”" in scan.stdout,
              "pair scan in b pairs with the host over the veth"):
        comment(scan.stdout + scan.stderr + host.text())
        return False
    stored = paired_addresses("b", client_state)
    return ok(stored == [f"{LAB['ADDR_A4']}:{MESH_PORT}"],
              f"the client stores the host at the pairing address ({stored})")


def renumber():
    """a's addresses change: the new ones first, as a renumbering host has
    both for a moment (promote_secondaries, set by the lab, keeps the new
    IPv4 address when the old primary goes), then the old ones go."""
    dev = LAB["IF_A"]
    ns = LAB["NS_A"]
    return (ip("-n", ns, "addr", "add", f"{NEW_A4}/24", "dev", dev)
            and ip("-n", ns, "addr", "add", f"{NEW_A6}/64", "dev", dev, "nodad")
            and ip("-n", ns, "addr", "del", f"{LAB['ADDR_A4']}/24", "dev", dev)
            and ip("-n", ns, "addr", "del", f"{LAB['ADDR_A6']}/64", "dev", dev))


def connect(state, bus=None):
    """`connect host --lan-only` in b; (Proc, forwarded port or None)."""
    conn = Proc([*in_ns("b", bus), PIPERMESH, "--state-dir", state, "connect", "host", "--lan-only",
                 "--forward", "127.0.0.1:0=data"], "connect", extra_env={"G_MESSAGES_DEBUG": "pipermesh-cli pipermesh-lan-peers"})
    m = conn.wait_line(r"^forwarding 127\.0\.0\.1:(\d+) -> host/data$", timeout=30)
    return conn, int(m.group(1)) if m else None


def lab_run(tmp):
    host_state, client_state = os.path.join(tmp, "host"), os.path.join(tmp, "client")
    control_state = os.path.join(tmp, "client-control")
    data_path = os.path.join(tmp, "data")
    data = random.Random(20261207).randbytes(DATA_LEN)
    data_sha = hashlib.sha256(data).hexdigest()
    with open(data_path, "wb") as f:
        f.write(data)
    old4 = f"{LAB['ADDR_A4']}:{MESH_PORT}"
    new4 = f"{NEW_A4}:{MESH_PORT}"
    new6 = f"[{NEW_A6}]:{MESH_PORT}"

    if not pairing(tmp, host_state, client_state):
        return

    source = Proc([*in_ns("a"), sys.executable, "-c", SOURCE, data_path,
                   os.path.dirname(os.path.abspath(pmtest.__file__))], "source")
    m = source.wait_line(r"^(\d+)$", timeout=10)
    if not ok(m, "a TCP data source listens in a"):
        comment(source.text())
        return
    up = Proc([*in_ns("a"), PIPERMESH, "--state-dir", host_state, "up", "--lan-only",
               "--service", f"data=127.0.0.1:{m.group(1)}"], "up")
    if not ok(up.wait_line(rf"^up as .*, LAN only, UDP port {MESH_PORT}$", timeout=30),
              f"up --lan-only runs in a on UDP {MESH_PORT}"):
        comment(up.text())
        return
    # Its advertisement is probed and announced before the address changes.
    time.sleep(1.5)
    ok("mDNS discovery off" not in up.text(), "up found avahi-daemon a (no “mDNS discovery off”)")

    if not ok(renumber(), f"a's addresses change to {NEW_A4} and {NEW_A6}; the old ones are gone"):
        return
    addrs = run(["ip", "-n", LAB["NS_A"], "-brief", "addr", "show", "dev", LAB["IF_A"]]).stdout.strip()
    comment("a now: " + addrs)
    ok(LAB["ADDR_A4"] + "/" not in addrs and NEW_A4 in addrs, "the pairing address is not a's any more")
    ok(up.proc.poll() is None, "up keeps running across the change (UDP bound to the wildcard)")
    # The state as it was at pairing, for the control below.
    shutil.copytree(client_state, control_state)

    # The connect that has to find the host through mDNS.
    conn, port = connect(client_state)
    if not ok(port, "connect --lan-only in b forwards a port"):
        comment(conn.text())
        return
    t0 = time.monotonic()
    # "connected, path none" comes first (the session), then "path lan" once
    # a discovery ping over the LAN address is answered.
    connected = conn.wait_line(r"^host: connected, path lan", timeout=40)
    t_connected = time.monotonic() - t0
    if not ok(connected, f"the client connects to the host, path lan, {t_connected:.1f} s after the "
              "forward listens"):
        avahi_browse("b")
        comment(conn.text())
        comment(up.text())
    t0 = time.monotonic()
    n, sha, why = read_forward(port, left(60))
    elapsed = time.monotonic() - t0
    ok(n == DATA_LEN and sha == data_sha,
       f"{DATA_LEN} bytes through the forward, SHA-256 matches ({n} bytes, {why}, {elapsed:.1f} s)")
    ok(re.search(rf"mDNS: host is at {re.escape(new4)}$", conn.text(), re.M),
       f"the client found the host at {new4} through mDNS")
    conn.stop()
    stored = paired_addresses("b", client_state)
    ok(stored is not None and new4 in stored and old4 not in stored,
       f"the client's paired --json lists the new address, not the stale one ({stored})")
    comment(f"IPv6 address {new6} {'also' if stored and new6 in stored else 'not'} stored")

    # Control: no avahi-daemon for the client; only the stale address.
    out = run(["sh", LAB["CTL"], "--ctl", "stop", "b"], timeout=20)
    if not ok(out.returncode == 0, "avahi-daemon b stops"):
        comment(out.stderr)
        return
    conn, port = connect(control_state)
    if not ok(port, "control: connect --lan-only in b forwards a port without avahi-daemon"):
        comment(conn.text())
        return
    n, sha, why = read_forward(port, CONTROL_S)
    connected = "host: connected" in conn.text()
    ok(n == 0 and not connected,
       f"control: without avahi the stale address gets nothing in {CONTROL_S} s ({n} bytes, {why}; "
       f"connected: {connected})")
    ok("mDNS discovery off" in conn.text(), "control: the client says discovery is off")
    conn.stop()
    stored = paired_addresses("b", control_state)
    ok(stored == [old4], f"control: the stored address is still the stale one ({stored})")
    ok(up.proc.poll() is None, "up is still running")
    rc = up.stop()
    ok(rc == 0, "up stops cleanly on SIGTERM")


def main():
    if LAB["SKIP"]:
        print(f"SKIP: {LAB['SKIP']}", flush=True)
        return 77
    if any(LAB[k] is None for k in ("NS_A", "NS_B", "BUS_A", "BUS_B", "IF_A", "ADDR_A4", "ADDR_A6", "CTL")):
        print("test-mdns-cli.py: run it under tests/run-with-avahi.sh", file=sys.stderr)
        return 2
    # meson's timeout (SIGTERM): stop what we started, then go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="pm-mdns-cli-")
    try:
        lab_run(tmp)
    finally:
        pmtest.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    failed = pmtest.finish(summary=True)
    return 1 if failed or not pmtest.tests else 0


if __name__ == "__main__":
    sys.exit(main())
