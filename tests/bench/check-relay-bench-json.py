#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""check-relay-bench-json.py BENCH

Runs `BENCH --json --quick` and checks that it exits 0 and prints one JSON
object with every required figure as a positive number. Validity only: the
speed and memory targets are never asserted here.
"""
import json
import math
import subprocess
import sys

REQUIRED = [
    "relay_mbps",
    "tcp_pipe_mbps",
    "tcp_direct_mbps",
    "relay_vs_tcp_pipe",
    "relay_vs_tcp_direct",
    "relay_vs_tcp_pipe_target",
    "relay_cpu_ns_per_byte",
    "tcp_pipe_cpu_ns_per_byte",
    "relay_vs_tcp_pipe_cpu",
    "idle_session_heap_bytes",
    "idle_session_rss_bytes",
    "idle_pairs",
    "message_size",
]

out = subprocess.run([sys.argv[1], "--json", "--quick"], check=True,
                     stdout=subprocess.PIPE, timeout=170).stdout
data = json.loads(out)
# Memory deltas may be 0: under AddressSanitizer mallinfo2() sees nothing.
MAY_BE_ZERO = {"idle_session_heap_bytes", "idle_session_rss_bytes"}
bad = [k for k in REQUIRED
       if not isinstance(data.get(k), (int, float)) or not math.isfinite(data[k])
       or data[k] < 0 or (data[k] == 0 and k not in MAY_BE_ZERO)]
if bad:
    sys.exit("missing or non-positive: " + ", ".join(bad))
print(json.dumps(data, indent=2))
