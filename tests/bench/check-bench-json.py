#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""check-bench-json.py BENCH

Runs `BENCH --json --quick` and checks that it exits 0 and prints one JSON
object holding every required metric and ratio as a positive number, plus the
environment. Validity only: speed targets are never asserted here.
"""
import json
import math
import subprocess
import sys

SIZES = ("64", "1400", "65535")
REQUIRED = [
    "x25519_per_s",
    "x25519_base_per_s",
    "handshakes_ik_per_s",
    "handshakes_xx_per_s",
    "handshakes_ik_limit_per_s",
    "handshakes_xx_limit_per_s",
    "handshakes_ik_vs_x25519_limit",
    "handshakes_xx_vs_x25519_limit",
    "seconds_per_round",
]
for size in SIZES:
    REQUIRED += [
        "transport_seal_open_mbps_" + size,
        "raw_aead_openssl_mbps_" + size,
        "raw_aead_libsodium_mbps_" + size,
        "transport_vs_raw_" + size,
    ]
ENVIRONMENT = ("cpu_model", "openssl_version", "libsodium_version")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    proc = subprocess.run([sys.argv[1], "--json", "--quick"], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit("pipermesh-bench exited with %d" % proc.returncode)
    try:
        data = json.loads(proc.stdout)
    except ValueError as e:
        sys.exit("pipermesh-bench did not print JSON: %s\n%s" % (e, proc.stdout))
    if not isinstance(data, dict):
        sys.exit("pipermesh-bench printed JSON that is not one object")

    errors = []
    for key in REQUIRED:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append("%s: missing or not a number (%r)" % (key, value))
        elif not math.isfinite(value) or value <= 0:
            errors.append("%s: not a positive number (%r)" % (key, value))
    if not isinstance(data.get("rounds"), int) or isinstance(data.get("rounds"), bool) or data["rounds"] < 1:
        errors.append("rounds: missing or not a positive integer")
    env = data.get("environment")
    if not isinstance(env, dict):
        errors.append("environment: missing")
    else:
        for key in ENVIRONMENT:
            if not isinstance(env.get(key), str) or not env[key]:
                errors.append("environment.%s: missing or empty" % key)
    if "MB = 10^6" not in str(data.get("units", {}).get("mbps", "")):
        errors.append("units.mbps: does not say what a MB is")

    if errors:
        sys.exit("pipermesh-bench --json is incomplete:\n  " + "\n  ".join(errors))
    print("pipermesh-bench --json --quick: %d required keys present and positive" % len(REQUIRED))


if __name__ == "__main__":
    main()
