#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test of QR pairing without an account, and of LAN-only use of a
paired device: two `pipermesh` processes (two state dirs) on loopback.

Usage: test-pairing.py PIPERMESH

1. Pairing: the host runs `pair show --png FILE --auto-accept`; the client
   decodes the PNG with zbar (`pair scan FILE`). Both print the same
   verification code; `paired --json` on each lists the other with the static
   key `id --json` gives for it.
2. LAN only: the host runs `up --lan-only --service data=127.0.0.1:PORT`, the
   client `connect HOST --lan-only --forward …`; the bytes through the forward
   have the source's SHA-256 (Noise_IK over UDP to the stored address).
   No server is contacted: the client is "enrolled" (coordination.ini) with a
   server at 127.X.Y.Z:P whose TCP port and STUN port (127.X.Y.Z:3478) are
   held by recording sockets. With --lan-only they record no connection and no
   datagram; the same command without --lan-only makes them record at least
   one (so the recorder does see what it would have to see). As root, with
   `ip netns` and iptables, the same is checked again in a network namespace
   made by the test, where the server port is closed and iptables counters
   count the SYNs and the STUN datagrams (none with --lan-only, some without).
3. Refusals, each with a clear message and NOTHING stored on either side (no
   paired.db made): a code with another certificate's SPKI hash (the host
   keeps waiting: the token was not sent), a reused token (a second client
   while the first is at the verification), a rejected verification (the
   host's user answers n), a code whose static key is not the host's, an
   expired code (--ttl 1), truncated, garbage and oversized codes, a picture
   without a QR code and a file that is no picture. Then `unpair`.

Every wait is bounded; every process is killed in the end. Prints TAP.
"""
import base64
import hashlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import pmtest
from pmtest import comment, left, ok, read_all, skip

PIPERMESH = sys.argv[1]
pmtest.set_deadline(160)
DATA_LEN = 4 * 1024 * 1024
DATA = random.Random(20261125).randbytes(DATA_LEN)
DATA_SHA = hashlib.sha256(DATA).hexdigest()

# No Secret Service (identities use the file store); nothing reaches the
# user's session bus.
pmtest.set_env(DBUS_SESSION_BUS_ADDRESS="disabled:")


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pm(state, *args, timeout=20, prefix=()):
    return pmtest.run_cli([*prefix, PIPERMESH, "--state-dir", state, *args], timeout=timeout,
                          what=" ".join(args[:2]))


def last(text):
    """The last line of a command's stderr (its error), without the log above."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def pm_proc(state, *args, stdin=subprocess.DEVNULL, prefix=()):
    """`pipermesh --state-dir STATE ARGS` left running (in @prefix)."""
    return pmtest.Proc([*prefix, PIPERMESH, "--state-dir", state, *args], what=" ".join(args[:2]),
                       stdin=stdin)


class Recorder:
    """Holds the configured server's TCP port and its STUN port, counting every
    TCP connection accepted and every datagram received."""

    def __init__(self, host, tcp_port, udp_port):
        self.accepts = 0
        self.datagrams = 0
        self.tcp = socket.socket()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.tcp.bind((host, tcp_port))
            self.tcp.listen(16)
            self.udp.bind((host, udp_port))
        except OSError:
            self.tcp.close()
            self.udp.close()
            raise
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._receive, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            self.accepts += 1
            conn.close()

    def _receive(self):
        while True:
            try:
                self.udp.recvfrom(2048)
            except OSError:
                return
            self.datagrams += 1

    def close(self):
        self.tcp.close()
        self.udp.close()


def paired_json(state, prefix=()):
    out = pm(state, "paired", "--json", prefix=prefix)
    try:
        return json.loads(out.stdout) if out.returncode == 0 else None
    except ValueError:
        return None


def public_key(state):
    out = pm(state, "id", "--json", "--keystore", "file")
    try:
        return json.loads(out.stdout)["publicKey"]
    except (ValueError, KeyError):
        return None


def nothing_stored(*states):
    """paired --json is [] and no paired.db was made, on every state dir."""
    return all(paired_json(s) == [] and not os.path.exists(os.path.join(s, "paired.db"))
               for s in states)


def write_coordination(state, server):
    os.makedirs(state, mode=0o700, exist_ok=True)
    path = os.path.join(state, "coordination.ini")
    with open(path, "w") as f:
        f.write("[Coordination]\n"
                f"server={server}\n"
                "deviceId=dev_00000000000000000000000000000000\n"
                "accountId=acc_00000000000000000000000000000000\n"
                "name=client\n"
                "token=pmdt_not-a-real-token\n")
    os.chmod(path, 0o600)


def blank_png(path):
    """A 64x64 white PNG: a picture with no QR code in it."""
    raw = b"".join(b"\x00" + b"\xff" * 64 for _ in range(64))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def start_host(state, *extra, stdin=subprocess.DEVNULL, name="host"):
    """`pair show` on 127.0.0.1; returns (Proc, code text) once it waits."""
    host = pm_proc(state, "pair", "show", "--address", "127.0.0.1",
                   "--name", name, *extra, stdin=stdin)
    uri = None
    end = time.monotonic() + left(20)
    while time.monotonic() < end:
        m = host.wait_line(r"^(pipermesh:pair\?\S+)|^(Waiting for a device)", timeout=end - time.monotonic())
        if m is None:
            break
        if m.group(1):
            uri = m.group(1)
        if m.group(2):
            return host, uri
    comment(host.text())
    return host, None


def replace_field(uri, key, value):
    return re.sub(rf"([?&]){key}=[^&]*", lambda m: f"{m.group(1)}{key}={value}", uri)


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def phase_pairing(tmp, host_state, client_state, png):
    host, uri = start_host(host_state, "--png", png, "--auto-accept", "--mesh-port", str(HOST_UDP))
    if not ok(uri and os.path.exists(png), "pair show prints the code and writes the PNG"):
        host.stop()
        return False
    ok(re.search(r"[▀▄█]", host.text()) is not None, "pair show draws the QR code with terminal blocks")
    scan = pm(client_state, "pair", "scan", png, "--name", "client", "--mesh-port", str(CLIENT_UDP),
              timeout=30)
    rc = host.wait(20)
    m_client = re.search(r"Verification code: ([0-9A-Z]{8})", scan.stdout)
    m_host = re.search(r"Verification code: ([0-9A-Z]{8})", host.text())
    ok(scan.returncode == 0 and "Paired with “host”" in scan.stdout,
       "pair scan decodes the PNG (zbar) and pairs")
    if scan.returncode != 0:
        comment(scan.stdout + scan.stderr)
    ok(rc == 0 and "Paired with “client”" in host.text(), "pair show --auto-accept pairs once and exits 0")
    ok(m_client and m_host and m_client.group(1) == m_host.group(1),
       f"both print the same verification code ({m_client and m_client.group(1)})")
    if rc != 0:
        comment(host.text())

    host_key, client_key = public_key(host_state), public_key(client_state)
    on_host, on_client = paired_json(host_state), paired_json(client_state)
    ok(on_host and len(on_host) == 1 and on_host[0]["name"] == "client"
       and on_host[0]["publicKey"] == client_key and on_host[0]["addresses"] == [f"127.0.0.1:{CLIENT_UDP}"]
       and on_host[0]["allowedServices"] == ["*"],
       "the host's paired --json holds the client with its static key")
    ok(on_client and len(on_client) == 1 and on_client[0]["name"] == "host"
       and on_client[0]["publicKey"] == host_key and on_client[0]["addresses"] == [f"127.0.0.1:{HOST_UDP}"]
       and re.fullmatch(r"pd_[0-9a-f]{32}", on_client[0]["id"]),
       "the client's paired --json holds the host with its static key")
    out = pm(host_state, "paired")
    ok(out.returncode == 0 and re.search(r"^client\s+linux\s", out.stdout, re.M), "paired prints a table")
    return True


def phase_lan_only(tmp, host_state, client_state):
    source = pmtest.Source(DATA)
    recorder = None
    for _ in range(20):
        # A loopback address of its own, so that the STUN port (3478) is free
        # there even while other tests run.
        server_ip = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        server_port = free_port(host=server_ip)
        try:
            recorder = Recorder(server_ip, server_port, 3478)
            break
        except OSError:
            continue
    if not ok(recorder, f"a recorder holds the configured server {server_ip}:{server_port} and its STUN port"):
        source.close()
        return
    write_coordination(client_state, f"https://{server_ip}:{server_port}")
    procs = []
    try:
        up = pm_proc(host_state, "up", "--lan-only", "--port", str(HOST_UDP),
                     "--service", f"data=127.0.0.1:{source.port}")
        procs.append(up)
        ok(up.wait_line(r"^offering data \(127\.0\.0\.1:\d+\) to client$") is not None,
           "up --lan-only offers the service to the paired device (its allow-list)")
        if not ok(up.wait_line(r"^up as .*, LAN only, UDP port %d$" % HOST_UDP) is not None,
                  "up --lan-only starts on the given UDP port"):
            comment(up.text())
            return
        conn = pm_proc(client_state, "connect", "host", "--lan-only",
                       "--port", str(CLIENT_UDP), "--forward", "127.0.0.1:0=data")
        procs.append(conn)
        m = conn.wait_line(r"^forwarding 127\.0\.0\.1:(\d+) -> host/data$")
        if not ok(m, "connect --lan-only finds the paired host and forwards a port"):
            comment(conn.text())
            return
        data, error = read_all(int(m.group(1)), timeout=left(60))
        ok(error is None and len(data) == DATA_LEN and hashlib.sha256(data).hexdigest() == DATA_SHA,
           f"{DATA_LEN} bytes through the LAN-only forward, SHA-256 matches ({error or len(data)})")
        ok(conn.wait_line(r"^host: connected, path lan", timeout=10) is not None
           or "host: connected, path lan" in conn.text(), "the path is lan (UDP to the stored address)")
        status = pm(client_state, "status", "--json")
        ok(status.returncode == 0 and '"name" : "host"' in status.stdout, "status --json shows the paired host")
        conn.stop()
        up_rc = up.stop()
        ok(recorder.accepts == 0 and recorder.datagrams == 0,
           f"with --lan-only nothing reached the configured server: {recorder.accepts} TCP connections, "
           f"{recorder.datagrams} STUN datagrams")
        ok(up_rc == 0, "up stops cleanly on SIGTERM")

        # The control: the same client without --lan-only contacts the server.
        probe = pm_proc(client_state, "connect", "host", "--port", str(CLIENT_UDP),
                        "--forward", "127.0.0.1:0=data")
        procs.append(probe)
        end = time.monotonic() + left(10)
        while time.monotonic() < end and recorder.accepts == 0 and recorder.datagrams == 0:
            time.sleep(0.1)
        probe.stop()
        ok(recorder.accepts + recorder.datagrams > 0,
           f"without --lan-only the recorder sees it ({recorder.accepts} TCP, {recorder.datagrams} UDP): "
           "the zero above is real")
    finally:
        for p in procs:
            p.stop()
        recorder.close()
        source.close()


def iptables_count(ns, rule_comment):
    out = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-w", "-L", "OUTPUT", "-v", "-x", "-n"],
                         capture_output=True, text=True, timeout=10)
    for line in out.stdout.splitlines():
        if rule_comment in line:
            return int(line.split()[0])
    return None


def phase_netns(tmp, host_state, client_state):
    """LAN only in a network namespace: the server port is closed, iptables
    counts SYNs to it and datagrams to its STUN port."""
    name = "netns: no SYN or STUN datagram leaves with --lan-only (iptables counters)"
    if os.geteuid() != 0:
        return skip(name, "not root")
    if not shutil.which("ip") or not shutil.which("iptables"):
        return skip(name, "no ip or iptables")
    ns = f"pmpair{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        return skip(name, "ip netns add failed: " + made.stderr.strip())
    prefix = ("ip", "netns", "exec", ns)
    procs = []
    try:
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        port = 47211
        write_coordination(client_state, f"https://127.0.0.2:{port}")
        for rule, args in (("pm-syn", ["-p", "tcp", "--syn", "-d", "127.0.0.2", "--dport", str(port)]),
                           ("pm-stun", ["-p", "udp", "-d", "127.0.0.2", "--dport", "3478"])):
            r = subprocess.run([*prefix, "iptables", "-w", "-A", "OUTPUT", *args, "-m", "comment",
                                "--comment", rule], capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                return skip(name, "iptables in the namespace failed: " + r.stderr.strip())
        source_port = free_port()
        src = subprocess.Popen([*prefix, sys.executable, "-c",
                                "import socket,sys\n"
                                "s=socket.socket();s.bind(('127.0.0.1',int(sys.argv[1])));s.listen(4)\n"
                                "while True:\n"
                                "  c,_=s.accept();c.sendall(b'x'*65536);c.close()\n", str(source_port)])
        up = pm_proc(host_state, "up", "--lan-only", "--port", str(HOST_UDP),
                     "--service", f"data=127.0.0.1:{source_port}", prefix=prefix)
        procs.append(up)
        up.wait_line(r"^up as ")
        conn = pm_proc(client_state, "connect", "host", "--lan-only",
                       "--port", str(CLIENT_UDP), "--forward", "127.0.0.1:0=data", prefix=prefix)
        procs.append(conn)
        m = conn.wait_line(r"^forwarding 127\.0\.0\.1:(\d+) -> host/data$")
        got = None
        if m:
            fetch = subprocess.run([*prefix, sys.executable, "-c",
                                    "import socket,sys\n"
                                    "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=20)\n"
                                    "n=0\n"
                                    "while True:\n"
                                    "  b=s.recv(65536)\n"
                                    "  if not b: break\n"
                                    "  n+=len(b)\n"
                                    "print(n)\n", m.group(1)], capture_output=True, text=True, timeout=left(30))
            got = fetch.stdout.strip()
        conn.stop()
        up.stop()
        syn, stun = iptables_count(ns, "pm-syn"), iptables_count(ns, "pm-stun")
        ok(got == "65536" and syn == 0 and stun == 0,
           f"{name}: {got} bytes forwarded, {syn} SYNs, {stun} STUN datagrams")
        probe = pm_proc(client_state, "connect", "host", "--port", str(CLIENT_UDP),
                        "--forward", "127.0.0.1:0=data", prefix=prefix)
        procs.append(probe)
        end = time.monotonic() + left(10)
        while time.monotonic() < end and not (iptables_count(ns, "pm-syn") or iptables_count(ns, "pm-stun")):
            time.sleep(0.2)
        probe.stop()
        syn, stun = iptables_count(ns, "pm-syn"), iptables_count(ns, "pm-stun")
        ok((syn or 0) + (stun or 0) > 0,
           f"netns: without --lan-only the counters move ({syn} SYNs, {stun} STUN datagrams)")
        src.kill()
        src.wait(timeout=5)
    finally:
        for p in procs:
            p.stop()
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)
        os.unlink(os.path.join(client_state, "coordination.ini"))


def phase_refusals(tmp):
    h = os.path.join(tmp, "h2")
    c_cert, c_one, c_two = (os.path.join(tmp, n) for n in ("c-cert", "c-one", "c-two"))

    # One host, no --auto-accept: its user answers on standard input.
    host, uri = start_host(h, stdin=subprocess.PIPE)
    if not ok(uri, "a second host shows a code"):
        host.stop()
        return

    # Another certificate's SPKI hash: refused before the token is sent.
    forged = replace_field(uri, "c", b64(bytes(32)))
    out = pm(c_cert, "pair", "scan", "--uri", forged, timeout=20)
    ok(out.returncode == 1 and "TLS certificate other than the one the pairing code pins" in out.stderr,
       f"a code pinning another certificate is refused ({last(out.stderr)})")
    ok(host.proc.poll() is None, "... and the host keeps waiting (the token was never sent)")

    # The real code: the first client reaches the verification...
    first = pm_proc(c_one, "pair", "scan", "--uri", uri, "--name", "one")
    ok(host.wait_line(r"Accept the pairing\? \[y/N\]|^Verification code:") is not None
       and first.wait_line(r"^Verification code: ") is not None,
       "the first client reaches the verification; the host asks y/N")
    # ... a second one with the same code is refused: single use.
    out = pm(c_two, "pair", "scan", "--uri", uri, "--name", "two", timeout=20)
    ok(out.returncode == 1 and "already used" in out.stderr,
       f"the same code a second time is refused ({last(out.stderr)})")
    # The host's user answers n.
    host.send("n\n")
    rc_first = first.wait(20)
    rc_host = host.wait(20)
    ok(rc_first == 1 and "refused the pairing" in first.text(),
       f"answering n: the client says it was refused ({last(''.join(first.err))})")
    ok(rc_host == 1 and "rejected" in host.text(), "… and the host exits 1 saying so")
    ok(nothing_stored(h, c_cert, c_one, c_two), "after these refusals nothing is stored on any side")

    # A static key that is not the host's: the client stops after message 2.
    h3, c3 = os.path.join(tmp, "h3"), os.path.join(tmp, "c3")
    host, uri = start_host(h3, "--auto-accept")
    if uri:
        out = pm(c3, "pair", "scan", "--uri", replace_field(uri, "k", b64(b"\x09" * 32)), timeout=20)
        rc = host.wait(20)
        ok(out.returncode == 1 and "not the one in the pairing code" in out.stderr,
           f"a host whose static key differs from the code's is refused ({last(out.stderr)})")
        ok(rc == 1 and "wrong static key" in host.text(), "… and the host says why the client left")
        ok(nothing_stored(h3, c3), "… and nothing is stored")
    host.stop()

    # An expired code.
    h4, c4 = os.path.join(tmp, "h4"), os.path.join(tmp, "c4")
    host, uri = start_host(h4, "--auto-accept", "--ttl", "1")
    rc = host.wait(10)
    ok(rc == 1 and "expired" in host.text(), "pair show --ttl 1: the unused code expires and it exits 1")
    if uri:
        out = pm(c4, "pair", "scan", "--uri", uri, timeout=20)
        ok(out.returncode == 1 and "expired" in out.stderr,
           f"an expired code is refused ({last(out.stderr)})")
    ok(nothing_stored(h4, c4), "… and nothing is stored")

    # Codes that are not codes.
    c5 = os.path.join(tmp, "c5")
    good = uri or "pipermesh:pair?v=1"
    for label, text in (("truncated", good[: len(good) // 2]), ("garbage", "hello, world"),
                        ("oversized", good + "&n=" + "x" * 2000), ("empty", "")):
        out = pm(c5, "pair", "scan", "--uri", text)
        ok(out.returncode in (1, 2) and out.stderr.startswith("pipermesh: ") and len(out.stderr.strip()) > 20
           and "Traceback" not in out.stderr,
           f"a {label} code is refused with a message ({last(out.stderr)[:120]})")
    blank = os.path.join(tmp, "blank.png")
    blank_png(blank)
    out = pm(c5, "pair", "scan", blank)
    ok(out.returncode == 1 and re.search(r"QR", out.stderr), f"a picture without a QR code ({last(out.stderr)})")
    notpic = os.path.join(tmp, "notes.txt")
    with open(notpic, "w") as f:
        f.write("not a picture\n")
    out = pm(c5, "pair", "scan", notpic)
    ok(out.returncode == 1 and out.stderr.startswith("pipermesh: "),
       f"a file that is no picture ({last(out.stderr)[:120]})")
    ok(nothing_stored(c5), "… and nothing is stored")


def main():
    global HOST_UDP, CLIENT_UDP
    tmp = tempfile.mkdtemp(prefix="pm-pairing-")
    HOST_UDP, CLIENT_UDP = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    host_state, client_state = os.path.join(tmp, "host"), os.path.join(tmp, "client")
    try:
        if phase_pairing(tmp, host_state, client_state, os.path.join(tmp, "code.png")):
            phase_lan_only(tmp, host_state, client_state)
            phase_netns(tmp, host_state, client_state)
            out = pm(host_state, "unpair", "client")
            ok(out.returncode == 0 and paired_json(host_state) == [], "unpair forgets the device")
            out = pm(host_state, "unpair", "client")
            ok(out.returncode == 1 and "No paired device is named “client”" in out.stderr,
               f"unpair of an unknown name says so ({last(out.stderr)})")
        phase_refusals(tmp)
    finally:
        pmtest.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return pmtest.finish(summary=True)


if __name__ == "__main__":
    sys.exit(main())
