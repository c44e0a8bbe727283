#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test of `pipermesh up`, `connect`, `status` and `ping`: two
devices on one machine, through a real `pipermesh-server serve` on loopback.

Usage: test-cli-mesh.py PIPERMESH PIPERMESH-SERVER

Device b runs `up` and offers a local TCP source of 16 MiB of deterministic
bytes as the service "data" (allowed for a) and as "secret" (allowed for
nobody). Device a runs `connect b` with a forward to each. Both offer their
loopback addresses as candidates (PIPERMESH_LOOPBACK_CANDIDATES=1), so the
path is 'lan' once probed ('relay' before). Checks: the bytes through the
forward (SHA-256), `status --json` on both sides and its numbers growing,
`ping b --count 3` and its JSON, the refusal of "secret" (the TCP connection
closes and connect prints b's reason), an unknown device, a taken port,
`status` with nothing running, a second `up` on one state dir, a control
socket left by a killed process, and `gdbus call` against the control
socket. Every wait is bounded; every process is killed in the end. Prints TAP.
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

import pmtest
from pmtest import Proc, comment, left, ok

PIPERMESH = sys.argv[1]
SERVER = sys.argv[2]
pmtest.set_deadline(100)
DATA_LEN = 16 * 1024 * 1024
DATA = random.Random(20240611).randbytes(DATA_LEN)
DATA_SHA = hashlib.sha256(DATA).hexdigest()

# No Secret Service here (identities use the file store), nothing talks to the
# user's session bus, and candidates include 127.0.0.1.
pmtest.set_env(DBUS_SESSION_BUS_ADDRESS="disabled:", PIPERMESH_LOOPBACK_CANDIDATES="1")


def pm(state, *args, timeout=20):
    return pmtest.run_cli([PIPERMESH, "--state-dir", state, *args], timeout=timeout)


def status_json(state):
    out = pm(state, "status", "--json")
    try:
        return json.loads(out.stdout) if out.returncode == 0 else None
    except ValueError:
        return None


def peer_of(status, name):
    for p in (status or {}).get("peers", []):
        if p.get("name") == name:
            return p
    return None


def wait_peer(state, name, cond, timeout=20):
    """Polls `status --json` until cond(peer) holds; returns the last peer seen."""
    end = time.monotonic() + left(timeout)
    peer = None
    while time.monotonic() < end:
        peer = peer_of(status_json(state), name)
        if peer is not None and cond(peer):
            return peer
        time.sleep(0.2)
    return peer


def check_peer_shape(peer, where):
    keys = {"id": str, "name": str, "type": str, "online": bool, "state": str, "path": str,
            "txBytes": int, "rxBytes": int, "rotations": int, "directAttempts": int,
            "pathChanges": int}
    shape = peer is not None and all(isinstance(peer.get(k), t) for k, t in keys.items())
    shape = shape and (peer["rttMs"] is None or isinstance(peer["rttMs"], (int, float)))
    shape = shape and (peer["endpoint"] is None or re.fullmatch(r"[\d.]+:\d+|\[.*\]:\d+",
                                                                 peer["endpoint"]))
    shape = shape and (peer["lastHandshake"] is None or
                       re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", peer["lastHandshake"]))
    ok(shape, f"status --json on {where} has every field with its type")


def main():
    tmp = tempfile.mkdtemp(prefix="pm-cli-mesh-")
    db = os.path.join(tmp, "server.db")
    source = pmtest.Source(DATA)
    try:
        pmtest.admin(SERVER, db, "account", "create", "home")
        key = pmtest.admin(SERVER, db, "enroll-key", "create", "home", "--reusable")
        server, base, stuns = pmtest.start_server(SERVER, db, "--listen", "127.0.0.1:0",
                                                  "--stun", "127.0.0.1:0", stun=1)
        stun = stuns[0] if stuns else None
        if not ok(base and stun, "server starts and prints its URL and STUN address"):
            comment(server.text())
            return

        states = {n: os.path.join(tmp, n) for n in ("a", "b")}
        ids = {}
        for name, state in states.items():
            pm(state, "id", "--keystore", "file")
            out = pm(state, "enroll", "--server", base, "--key", key, "--name", name)
            m = re.search(r"\((dev_[0-9a-f]{32})\)", out.stdout)
            ids[name] = m.group(1) if m else None
        if not ok(all(ids.values()), "two devices enrolled"):
            return

        out = pm(states["a"], "status")
        ok(out.returncode == 1 and "No pipermesh is running" in out.stderr,
           f"status with nothing running: exit 1 and says so ({out.stderr.strip()})")

        # b offers the source as "data" (a may use it) and "secret" (nobody may).
        b = Proc([PIPERMESH, "--state-dir", states["b"], "up", "--stun", stun,
                  "--service", f"data=127.0.0.1:{source.port}", "--allow", "data=a",
                  "--service", f"secret=127.0.0.1:{source.port}", "--allow", "secret=nobody"],
                 "b")
        if not ok(b.wait_line(r"^ready: ") is not None, "b: `up` starts and gets the device list"):
            comment(b.text())
            return

        out = pm(states["b"], "up", "--stun", stun)
        ok(out.returncode == 1 and "another pipermesh is running for this state dir" in out.stderr,
           f"a second `up` on b's state dir is refused ({out.stderr.strip()})")
        ok(b.proc.poll() is None, "... and the first one keeps running")

        sock_path = os.path.join(states["b"], "control.socket")
        gdbus = shutil.which("gdbus")
        if gdbus:
            out = pmtest.run([gdbus, "call", "--address", f"unix:path={sock_path}",
                              "--dest", "org.pipermesh.Control",
                              "--object-path", "/org/pipermesh/Control",
                              "--method", "org.pipermesh.Control1.GetStatus"], timeout=10)
            ok(out.returncode == 0 and f"'{ids['b']}'" in out.stdout and f"'{ids['a']}'" in out.stdout,
               "`gdbus call … GetStatus` answers on b's control socket")
            if out.returncode != 0:
                comment(out.stderr)
        else:
            ok(True, "gdbus call # SKIP gdbus is not installed")

        # Refusals before the forward runs.
        out = pm(states["a"], "connect", "nosuch", "--stun", stun, "--forward", "0=data")
        ok(out.returncode == 1 and "unknown device “nosuch”" in out.stderr,
           f"connect to an unknown device: a clear error ({out.stderr.strip()})")
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        held_port = held.getsockname()[1]
        out = pm(states["a"], "connect", "b", "--stun", stun, "--forward", f"{held_port}=data")
        held.close()
        ok(out.returncode == 1 and f"127.0.0.1:{held_port} is taken" in out.stderr,
           f"a taken port says so ({out.stderr.strip()})")

        a = Proc([PIPERMESH, "--state-dir", states["a"], "connect", "b", "--stun", stun,
                  "--forward", "127.0.0.1:0=data", "--forward", "0=secret"], "a")
        fwd = {}
        for _ in range(2):
            m = a.wait_line(r"^forwarding 127\.0\.0\.1:(\d+) -> b/(\w+)$")
            if m:
                fwd[m.group(2)] = int(m.group(1))
        if not ok(set(fwd) == {"data", "secret"}, f"a: connect prints both forwards ({fwd})"):
            comment(a.text())
            return

        peer = wait_peer(states["a"], "b", lambda p: p["state"] == "connected")
        ok(peer and peer["state"] == "connected" and peer["path"] in ("lan", "relay"),
           f"status on a: b is connected over lan or relay ({peer and (peer['state'], peer['path'])})")
        before = peer or {}

        t0 = time.monotonic()
        data, err = pmtest.read_all(fwd["data"], left(40))
        elapsed = time.monotonic() - t0
        ok(err is None and len(data) == DATA_LEN,
           f"16 MiB through the forward ({len(data)} bytes, {err or 'EOF'}, {elapsed:.2f} s)")
        ok(hashlib.sha256(data).hexdigest() == DATA_SHA, "... with the same SHA-256")
        if elapsed > 0:
            print(f"# throughput a<-b through connect/up: {DATA_LEN / elapsed / 1e6:.1f} MB/s")

        after = wait_peer(states["a"], "b", lambda p: p["rxBytes"] >= before.get("rxBytes", 0) + DATA_LEN,
                          timeout=5) or {}
        ok(after.get("rxBytes", 0) >= before.get("rxBytes", 0) + DATA_LEN and
           after.get("txBytes", 0) > before.get("txBytes", -1),
           f"status on a: rx/tx bytes grew ({before.get('rxBytes')} -> {after.get('rxBytes')}, "
           f"{before.get('txBytes')} -> {after.get('txBytes')})")
        ok(after.get("lastHandshake") is not None and after.get("id") == ids["b"],
           "... with b's id and a handshake time")
        check_peer_shape(after, "a")
        st = status_json(states["a"]) or {}
        ok(st.get("self", {}).get("id") == ids["a"] and st.get("self", {}).get("name") == "a",
           "status --json names this device in self")

        peer_a = wait_peer(states["b"], "a",
                           lambda p: p["state"] == "connected" and p["txBytes"] >= DATA_LEN,
                           timeout=5)
        ok(peer_a and peer_a["txBytes"] >= DATA_LEN,
           f"status on b: a is connected and b sent 16 MiB ({peer_a and peer_a['txBytes']})")
        check_peer_shape(peer_a, "b")

        out = pm(states["a"], "status")
        ok(out.returncode == 0 and re.search(r"^● b\s+linux\s+dev_\w+\s+active; (lan|relay|direct)",
                                             out.stdout, re.M),
           "status prints a table row for b")
        if out.returncode != 0 or "active" not in out.stdout:
            comment(out.stdout + out.stderr)

        out = pm(states["a"], "ping", "b", "--count", "3")
        pongs = re.findall(r"^pong from b via (lan|direct|relay) in ([\d.]+) ms$", out.stdout, re.M)
        ok(out.returncode == 0 and len(pongs) == 3, f"ping b --count 3: three pongs ({pongs})")
        if len(pongs) != 3:
            comment(out.stdout + out.stderr)
        ok("3 pings to b, 3 pongs, 0% lost" in out.stdout, "... and a summary")
        out = pm(states["a"], "ping", ids["b"], "--count", "2", "--json")
        try:
            pj = json.loads(out.stdout)
        except ValueError:
            pj = {}
        ok(out.returncode == 0 and pj.get("received") == 2 and pj.get("device", {}).get("name") == "b"
           and all(isinstance(p.get("rttMs"), (int, float)) and p.get("path") in ("lan", "direct", "relay")
                   for p in pj.get("pings", [])),
           "ping --json by id: per-ping rtt and path")
        out = pm(states["a"], "ping", "nosuch", "--count", "1")
        ok(out.returncode == 1 and "unknown device" in out.stderr, "ping an unknown device: exit 1")

        accepted = source.accepted
        data, err = pmtest.read_all(fwd["secret"], left(15))
        ok(data == b"" and err is None, f"a service b does not allow for a: the connection closes ({err})")
        m = a.wait_stderr(r"b/secret: (.+)")
        ok(m and re.search(r"not (offered|allowed)", m.group(1)),
           f"... and connect prints b's reason ({m and m.group(1)})")
        ok(source.accepted == accepted, "... and b never connected to the service")

        # Stop a with SIGTERM: exit 0, its socket gone.
        code = a.stop()
        ok(code == 0, f"SIGTERM stops connect cleanly (exit {code})")
        ok(not os.path.exists(os.path.join(states["a"], "control.socket")),
           "... and removes its control socket")

        code = b.stop()
        ok(code == 0, f"SIGTERM stops up cleanly (exit {code})")
        ok(not os.path.exists(sock_path), "... and removes its control socket")

        # A killed up leaves its socket behind: status says nothing runs; a new up takes over.
        b2 = Proc([PIPERMESH, "--state-dir", states["b"], "up", "--stun", stun], "b2")
        ok(b2.wait_line(r"^up as b ") is not None, "b: `up` again")
        b2.stop(signal.SIGKILL)
        ok(os.path.exists(sock_path), "a killed `up` leaves its control socket behind")
        out = pm(states["b"], "status")
        ok(out.returncode == 1 and "No pipermesh is running" in out.stderr,
           "status on a stale socket: exit 1, nothing running")
        b3 = Proc([PIPERMESH, "--state-dir", states["b"], "up", "--stun", stun], "b3")
        ok(b3.wait_line(r"^up as b ") is not None, "a new `up` replaces the stale socket")
        out = pm(states["b"], "status", "--json")
        ok(out.returncode == 0, "... and answers status")
        code = b3.stop()
        ok(code == 0, f"SIGTERM stops it cleanly (exit {code})")
        for p in (a, b, b3):
            pmtest.sanitizer_check(p.what, p.text())
    finally:
        for p in pmtest.procs:
            p.stop(timeout=5)
        source.close()
        shutil.rmtree(tmp, ignore_errors=True)


main()
sys.exit(pmtest.finish())
