#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test of `pipermesh enroll` and `pipermesh devices` against a real
`pipermesh-server serve` on loopback.

Usage: test-cli-enroll.py PIPERMESH PIPERMESH-SERVER

Makes an account and an enrollment key with the admin commands, enrolls two
devices (two --state-dir), checks coordination.ini (mode 0600, the token
never printed), lists the account from both devices with `devices --json`,
and checks the refusals (a wrong key, plain http to a remote host, enrolling
twice, listing before enrolling). Every wait is bounded. Prints TAP.
"""
import json
import os
import re
import stat
import subprocess
import sys
import tempfile

import pmtest
from pmtest import ok

PIPERMESH = sys.argv[1]
SERVER = sys.argv[2]
pmtest.set_deadline(45)

# No Secret Service here: identities use the file store, and nothing talks
# to the user's session bus.
pmtest.set_env(DBUS_SESSION_BUS_ADDRESS="disabled:")


def pm(state, *args):
    return pmtest.run_cli([PIPERMESH, "--state-dir", state, *args])


def main():
    tmp = tempfile.mkdtemp(prefix="pm-cli-enroll-")
    db = os.path.join(tmp, "server.db")
    pmtest.admin(SERVER, db, "account", "create", "home")
    key = pmtest.admin(SERVER, db, "enroll-key", "create", "home", "--reusable")

    server, base, _ = pmtest.start_server(SERVER, db, "--listen", "127.0.0.1:0", "--stun", "off",
                                          timeout=45)
    secrets_seen = []
    try:
        if not ok(base, "server starts and prints its URL"):
            return

        states = {name: os.path.join(tmp, name) for name in ("laptop", "phone")}
        public = {}
        for name, state in states.items():
            out = pm(state, "id", "--keystore", "file", "--json")
            public[name] = json.loads(out.stdout)["publicKey"] if out.returncode == 0 else None
        ok(all(public.values()), "both devices have an identity")

        enrolled = {}
        for name, type_ in (("laptop", "linux"), ("phone", "android")):
            out = pm(states[name], "enroll", "--server", base, "--key", key, "--name", name,
                     "--type", type_)
            m = re.search(r"\((dev_[0-9a-f]{32})\)", out.stdout)
            ok(out.returncode == 0 and m, f"enroll {name} (exit {out.returncode}: {out.stderr.strip()})")
            enrolled[name] = m.group(1) if m else None
            secrets_seen.append(out.stdout + out.stderr)

        ini = os.path.join(states["laptop"], "coordination.ini")
        mode = stat.S_IMODE(os.stat(ini).st_mode) if os.path.exists(ini) else None
        ok(mode == 0o600, f"coordination.ini is private (mode {oct(mode) if mode is not None else None})")
        text = open(ini).read() if mode is not None else ""
        token = re.search(r"^token=(pmdt_\S+)$", text, re.M)
        ok(token and f"deviceId={enrolled['laptop']}" in text and f"server={base}" in text,
           "coordination.ini has the server, device id and token")
        ok(not [f for f in os.listdir(states["laptop"]) if f.startswith(".coordination")],
           "no temporary file is left behind")

        for name, state in states.items():
            out = pm(state, "devices", "--json")
            try:
                listing = json.loads(out.stdout)["devices"]
            except (ValueError, KeyError):
                listing = []
            by_id = {d["id"]: d for d in listing}
            ok(out.returncode == 0 and set(by_id) == set(enrolled.values()),
               f"`devices --json` from the {name} lists both devices")
            ok(all(by_id.get(enrolled[n], {}).get("publicKey") == public[n] for n in states),
               f"... with the public keys of their identities ({name})")
            ok(by_id.get(enrolled[name], {}).get("self") is True and
               sum(1 for d in listing if d.get("self")) == 1, f"... and marks itself ({name})")
            ok(by_id.get(enrolled["phone"], {}).get("type") == "android" and
               by_id.get(enrolled["laptop"], {}).get("keyType") == "file",
               f"... with type and keyType ({name})")

        out = pm(states["laptop"], "devices")
        ok(out.returncode == 0 and "laptop" in out.stdout and "phone" in out.stdout and
           "(this device)" in out.stdout, "`devices` prints a table")
        secrets_seen.append(out.stdout + out.stderr)

        out = pm(states["laptop"], "enroll", "--server", base, "--key", key)
        ok(out.returncode == 1 and "already enrolled" in out.stderr and "--force" in out.stderr,
           "enrolling twice is refused without --force")

        other = os.path.join(tmp, "other")
        pm(other, "id", "--keystore", "file")
        out = pm(other, "enroll", "--server", base, "--key", "pmek_wrong")
        ok(out.returncode == 1 and "enrollment key" in out.stderr,
           f"a wrong enrollment key says so (exit {out.returncode})")
        ok(not os.path.exists(os.path.join(other, "coordination.ini")),
           "... and writes nothing")

        out = pm(other, "enroll", "--server", "http://192.0.2.1:8080", "--key", key)
        ok(out.returncode == 2 and "https://" in out.stderr,
           f"plain http to a remote host is refused (exit {out.returncode})")

        out = pm(other, "devices")
        ok(out.returncode == 1 and "enroll" in out.stderr, "`devices` before enrolling says to enroll")

        os.chmod(ini, 0o644)
        out = pm(states["laptop"], "devices")
        ok(out.returncode == 1 and "chmod 600" in out.stderr,
           "a coordination.ini readable by others is refused")
        os.chmod(ini, 0o600)

        out = pm(states["laptop"], "enroll")
        ok(out.returncode == 2, "enroll without --server and --key is a usage error")

        if token:
            ok(all(token.group(1) not in s for s in secrets_seen), "the token is never printed")
    finally:
        pmtest.stop_server(server)
        ok("pmdt_" not in "".join(server.err), "no token in the server's log")
        subprocess.run(["rm", "-rf", tmp])


main()
sys.exit(pmtest.finish())
