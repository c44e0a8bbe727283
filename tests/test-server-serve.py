#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test of `pipermesh-server serve`: the real binary on loopback,
with a real SQLite file that the admin commands change while it runs.

Usage: test-server-serve.py PIPERMESH-SERVER

Enrolls two devices over HTTP, lists them, publishes candidates, asks the
STUN responders (two addresses) for the mapped address, checks /metrics,
revokes a device (its token stops working at once), then stops the server
with SIGTERM. Every wait is bounded. Prints TAP.
"""
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pmtest
from pmtest import ok

SERVER = sys.argv[1]
pmtest.set_deadline(45)


def admin(db, *args):
    return pmtest.admin(SERVER, db, *args)


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get_content_type() == "application/json" else raw)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def stun_binding(host, port):
    """A minimal RFC 8489 Binding request; returns the XOR-MAPPED-ADDRESS port."""
    txid = secrets.token_bytes(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.bind(("127.0.0.1", 0))
        s.sendto(req, (host, port))
        data, _ = s.recvfrom(2048)
        mine = s.getsockname()[1]
    mtype, mlen, cookie = struct.unpack("!HHI", data[:8])
    if mtype != 0x0101 or cookie != 0x2112A442 or data[8:20] != txid:
        return None, mine
    pos = 20
    while pos + 4 <= 20 + mlen:
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        if atype == 0x0020:
            xport = struct.unpack("!H", data[pos + 6:pos + 8])[0] ^ 0x2112
            return xport, mine
        pos += 4 + ((alen + 3) & ~3)
    return None, mine


def main():
    tmp = tempfile.mkdtemp(prefix="pm-serve-")
    db = os.path.join(tmp, "server.db")
    admin(db, "account", "create", "home")
    key = admin(db, "enroll-key", "create", "home", "--reusable")

    server, base, stuns = pmtest.start_server(SERVER, db, "--listen", "127.0.0.1:0",
                                              "--stun", "127.0.0.1:0", "--stun-alt", "127.0.0.2:0",
                                              stun=2, timeout=45)
    stun = [(host, int(port)) for host, port in (s.rsplit(":", 1) for s in stuns)]
    try:
        if not ok(base and len(stun) == 2, "server starts and prints its API and two STUN addresses"):
            return

        status, body = http("GET", base + "/healthz")
        ok(status == 200, "healthz")

        devices = {}
        for name in ("mac", "phone"):
            status, body = http("POST", base + "/v1/mesh/devices",
                                {"enrollmentKey": key, "publicKey": secrets.token_hex(32),
                                 "name": name, "type": "mac" if name == "mac" else "iphone",
                                 "keyType": "file"})
            ok(status == 201 and body["token"].startswith("pmdt_"), f"enroll {name}")
            devices[name] = body

        # The admin command sees what the running server wrote (same SQLite file, WAL).
        listing = json.loads(admin(db, "device", "list", "home", "--json"))
        names = sorted(d["name"] for d in (listing["devices"] if isinstance(listing, dict) else listing))
        ok(names == ["mac", "phone"], "admin `device list` sees both devices while the server runs")

        mac = devices["mac"]
        status, body = http("PUT", f"{base}/v1/mesh/devices/{mac['id']}/candidates",
                            {"addresses": ["192.0.2.10:41641"], "mapped": "203.0.113.7:41641",
                             "mappingVariesByDestination": False}, token=mac["token"])
        ok(status in (200, 204), "publish candidates")
        status, body = http("GET", base + "/v1/mesh/devices", token=devices["phone"]["token"])
        seen = {d["name"]: d for d in body["devices"]} if status == 200 else {}
        ok(seen.get("mac", {}).get("candidates", {}).get("mapped") == "203.0.113.7:41641",
           "the other device sees the candidates")

        for host, port in stun:
            mapped, mine = stun_binding(host, port)
            ok(mapped == mine, f"STUN on {host} maps our port ({mapped} == {mine})")

        status, body = http("GET", base + "/metrics")
        text = body.decode() if isinstance(body, bytes) else ""
        m = re.search(r'pipermesh_stun_datagrams_total\{outcome="answered"\} (\d+)', text)
        ok(status == 200 and m and int(m.group(1)) >= 2, "metrics count the STUN answers")
        ok('pipermesh_devices{state="active"} 2' in text, "metrics count the devices")

        phone = devices["phone"]
        status, _ = http("DELETE", f"{base}/v1/mesh/devices/{phone['id']}", token=mac["token"])
        ok(status in (200, 204), "revoke the phone")
        status, body = http("GET", base + "/v1/mesh/devices", token=phone["token"])
        ok(status == 401, "the revoked token stops working at once")
    finally:
        pmtest.stop_server(server)
        err = "".join(server.err)
        # Secrets never reach the log: no token, no enrollment key.
        ok(key not in err and "pmdt_" not in err, "no secret in the server's log")
        subprocess.run(["rm", "-rf", tmp])


def tls():
    """serve with --tls-cert/--tls-key on a wildcard address answers HTTPS
    (checked against the certificate) and nothing in clear."""
    import shutil
    import ssl
    if shutil.which("openssl") is None:
        print("# openssl is not installed: TLS case skipped")
        return
    tmp = tempfile.mkdtemp(prefix="pm-serve-tls-")
    cert, keyfile = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", keyfile, "-out", cert], check=True, capture_output=True, timeout=20)
    # Under ASan, LeakSanitizer's own tracer crashes (signal 11 in StopTheWorld)
    # at the exit of a process that ran GnuTLS through glib-networking, so the
    # leak check is off for this one process; AddressSanitizer stays on, and
    # the plain-HTTP server above is leak-checked.
    # Always: meson sets ASAN_OPTIONS only sometimes (not when the caller did).
    env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")}
    server, url, _ = pmtest.start_server(SERVER, os.path.join(tmp, "db"), "--listen", "0.0.0.0:0",
                                         "--stun", "off", "--tls-cert", cert, "--tls-key", keyfile,
                                         timeout=15, extra_env=env)
    try:
        m = re.match(r"https://[^:]+:(\d+)", url or "")
        port = int(m.group(1)) if m else None
        if not ok(port, "serve with TLS starts on a wildcard address"):
            return
        context = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=10) as r:
            ok(r.status == 200, "HTTPS answers with the configured certificate")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            ok(False, "plain HTTP is refused on the TLS port")
        except (urllib.error.URLError, ConnectionError, http_client_errors()):
            ok(True, "plain HTTP is refused on the TLS port")
    finally:
        pmtest.stop_server(server, check="the TLS server stops cleanly")
        subprocess.run(["rm", "-rf", tmp])


def http_client_errors():
    import http.client
    return http.client.HTTPException


main()
tls()
sys.exit(pmtest.finish())
