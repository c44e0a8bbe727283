#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""check-stream-bench-json.py BENCH

Runs `BENCH --json --quick` and checks that it exits 0 and prints one JSON
object with every required figure as a positive number. Validity only: no
speed is ever asserted here.
"""
import json
import math
import subprocess
import sys

REQUIRED = [
    "tcp_mbps",
    "stream_mbps",
    "streams4_mbps",
    "stream_vs_tcp",
    "tcp_cpu_ns_per_byte",
    "stream_cpu_ns_per_byte",
    "streams4_cpu_ns_per_byte",
    "connect_ms",
    "open_ms",
    "mtu",
    "window",
    "rounds",
]

out = subprocess.run([sys.argv[1], "--json", "--quick"], check=True,
                     stdout=subprocess.PIPE, timeout=170).stdout
data = json.loads(out)
bad = [k for k in REQUIRED
       if not isinstance(data.get(k), (int, float)) or not math.isfinite(data[k])
       or data[k] <= 0]
if bad:
    sys.exit("missing or non-positive: " + ", ".join(bad))
print(json.dumps(data, indent=2))
