#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""check-api-bench-json.py BENCH

Runs `BENCH --json --quick` and checks that it exits 0 and prints one JSON
object with every required figure as a positive number, plus the environment.
Without wrk the bench says "skipped" and so does this test (exit 77).
Validity only: speed is never asserted here.
"""
import json
import math
import subprocess
import sys

REQUIRED = [
    "devices_get_per_s",
    "healthz_per_s",
    "not_found_per_s",
    "devices_vs_healthz",
    "devices_vs_not_found",
    "devices_get_server_cpu_us",
    "healthz_server_cpu_us",
    "not_found_server_cpu_us",
    "devices_per_account",
    "connections",
    "seconds_per_round",
    "rounds",
]
ENVIRONMENT = ("cpu_model", "libsoup_version", "sqlite_version", "wrk_version")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    proc = subprocess.run([sys.argv[1], "--json", "--quick"], stdout=subprocess.PIPE, text=True,
                          timeout=170)
    if proc.returncode != 0:
        sys.exit("api-bench exited with %d" % proc.returncode)
    try:
        data = json.loads(proc.stdout)
    except ValueError as e:
        sys.exit("api-bench did not print JSON: %s\n%s" % (e, proc.stdout))
    if not isinstance(data, dict):
        sys.exit("api-bench printed JSON that is not one object")
    if "skipped" in data:
        print("api-bench skipped: %s" % data["skipped"])
        sys.exit(77)

    errors = []
    for key in REQUIRED:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append("%s: missing or not a number (%r)" % (key, value))
        elif not math.isfinite(value) or value <= 0:
            errors.append("%s: not a positive number (%r)" % (key, value))
    env = data.get("environment")
    if not isinstance(env, dict):
        errors.append("environment: missing")
    else:
        for key in ENVIRONMENT:
            if not isinstance(env.get(key), str) or not env[key]:
                errors.append("environment.%s: missing or empty" % key)
    if errors:
        sys.exit("api-bench --json is incomplete:\n  " + "\n  ".join(errors))
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
