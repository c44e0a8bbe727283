#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test of `pipermesh netcheck` against a real
`pipermesh-server serve` with STUN on 127.0.0.1 and 127.0.0.2 (loopback only).

Usage: test-cli-netcheck.py PIPERMESH PIPERMESH-SERVER

No NAT on loopback: the mapped address is the CLI's own socket and the mapping
does not vary. A UDP socket that never answers stands in for a blocked
network. Every wait is bounded. Prints TAP.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import pmtest
from pmtest import comment, ok

CLI, SERVER = sys.argv[1], sys.argv[2]
pmtest.set_deadline(20)


def netcheck(*args, timeout=20):
    return subprocess.run([CLI, "netcheck", *args], capture_output=True, text=True, timeout=timeout)


def main():
    tmp = tempfile.mkdtemp(prefix="pm-netcheck-")
    server, _, stun = pmtest.start_server(SERVER, os.path.join(tmp, "server.db"),
                                          "--listen", "127.0.0.1:0",
                                          "--stun", "127.0.0.1:0", "--stun-alt", "127.0.0.2:0",
                                          stun=2, timeout=20)
    try:
        if not ok(len(stun) == 2, "server starts and prints two STUN addresses"):
            return

        out = netcheck("--stun", stun[0], "--stun-alt", stun[1], "--json")
        result = json.loads(out.stdout) if out.returncode == 0 else {}
        if not ok(out.returncode == 0 and result.get("udp") is True, "netcheck --json: UDP ok, exit 0"):
            comment(out.stdout + out.stderr)
        local_port = result.get("localAddress", ":").rsplit(":", 1)[1]
        ok(result.get("mappedAddress") == f"127.0.0.1:{local_port}",
           f"mapped address is our own socket (no NAT on loopback): {result.get('mappedAddress')}")
        ok(result.get("mappedAddressAlt") == result.get("mappedAddress"), "the second address sees the same")
        ok(result.get("mappingVariesByDestination") is False, "mapping does not vary by destination")
        ok(isinstance(result.get("rttUs"), int) and 0 <= result["rttUs"] < 5_000_000,
           f"STUN RTT reported ({result.get('rttUs')} µs)")
        ok(result.get("stun") == stun[0] and result.get("stunAlt") == stun[1] and result.get("error") is None,
           "JSON names both servers and no error")

        out = netcheck("--stun", stun[0], "--stun-alt", stun[1])
        text = out.stdout
        if not ok(out.returncode == 0 and "UDP:            ok" in text
                  and re.search(r"Mapped address: 127\.0\.0\.1:\d+", text)
                  and "Mapping varies by destination: no" in text
                  and re.search(r"STUN RTT:\s+[\d.]+ ms", text), "text output"):
            comment(out.stdout + out.stderr)

        out = netcheck("--stun", stun[0])
        ok(out.returncode == 0 and "unknown (give --stun-alt to check)" in out.stdout,
           "without --stun-alt the mapping is unknown, and it says how to check")

        # A STUN server that never answers: blocked, within the bounded retries.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            where = "127.0.0.1:%d" % silent.getsockname()[1]
            started = time.monotonic()
            out = netcheck("--stun", where, "--json")
            took = time.monotonic() - started
            result = json.loads(out.stdout) if out.stdout.startswith("{") else {}
            if not ok(out.returncode == 1 and result.get("udp") is False
                      and "No STUN answer" in (result.get("error") or "")
                      and result.get("mappedAddress") is None, "no answer: udp false, exit 1, says why"):
                comment(out.stdout + out.stderr)
            ok(took < 15, f"gives up after the bounded retransmissions ({took:.1f} s)")
            silent.setblocking(False)
            requests = 0
            try:
                while silent.recv(2048):
                    requests += 1
            except BlockingIOError:
                pass
            ok(requests == 4, f"sent 4 requests (RTO 250 ms doubling): {requests}")

        out = netcheck()
        ok(out.returncode == 2 and "--stun" in out.stderr, "no --stun is a usage error (exit 2)")
        out = netcheck("--stun", "not an address:x")
        ok(out.returncode == 2, "a bad --stun is a usage error (exit 2)")
    finally:
        pmtest.stop_server(server)
        subprocess.run(["rm", "-rf", tmp])


main()
sys.exit(pmtest.finish())
