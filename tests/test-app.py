#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The desktop app end to end, in its demo mode, under a private D-Bus session
and a virtual X server (dbus-run-session -- xvfb-run -a).

Usage: test-app.py PIPERMESH-APP OUTDIR

`pipermesh-app --screenshot-dir OUTDIR` starts the demo (an in-process
coordination server, relay and STUN responder, and a second device with its
own mesh, all on loopback), waits until the window's row for the demo host
shows a path and a round trip, renders the window, the device page and This
Device (after a network check) to PNG files, writes report.json and quits.
This test checks the report (what the rows said, read from the widgets) and
that each picture is a real, non-blank window (pixel variance, through
ImageMagick's identify). The pictures stay in OUTDIR; docs/screenshots/ holds
copies. Bounded in time. Prints TAP; skips, saying why, without xvfb-run or
dbus-run-session.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

APP, OUT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
TIMEOUT_S = 150
SHOTS = ("main-window", "device", "this-device")
# A private session bus with nothing to activate: GTK and libadwaita find no
# portal or keyring there, so the run depends on nothing of the host's.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
tests = []


def ok(cond, name):
    tests.append(bool(cond))
    print(("ok" if cond else "not ok") + f" {len(tests)} {name}", flush=True)
    return cond


def comment(text):
    for line in text.splitlines()[-60:]:
        print("# " + line)


def skip_all(reason):
    print(f"1..0 # SKIP {reason}")
    sys.exit(0)


def image_stats(path):
    """(width, height, standard deviation of all channels in 0..1) or None."""
    identify = shutil.which("identify")
    if identify is None:
        return None
    out = subprocess.run([identify, "-format", "%w %h %[fx:standard_deviation]", path],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        comment(out.stderr)
        return (0, 0, 0.0)
    w, h, sd = out.stdout.split()
    return int(w), int(h), float(sd)


def main():
    for tool, package in (("xvfb-run", "xvfb xauth"), ("dbus-run-session", "dbus")):
        if shutil.which(tool) is None:
            skip_all(f"{tool} is not installed (apt-get install {package})")

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    env = dict(os.environ)
    env.setdefault("GSETTINGS_BACKEND", "memory")
    env.setdefault("GTK_A11Y", "test")
    env["NO_AT_BRIDGE"] = "1"
    env["ADW_DISABLE_PORTAL"] = "1"
    tmp = tempfile.mkdtemp(prefix="pm-app-test-")
    # Never the user's own state: the demo makes its own temporary one anyway.
    env["XDG_STATE_HOME"] = os.path.join(tmp, "state")
    env["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")
    bus_config = os.path.join(tmp, "bus.conf")
    with open(bus_config, "w", encoding="utf-8") as f:
        f.write(BUS_CONFIG % tmp)
    cmd = ["dbus-run-session", "--config-file", bus_config, "--",
           "xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", APP, "--screenshot-dir", OUT]
    # Its own process group, so that a run that hangs is ended whole (the bus,
    # Xvfb and the app), never left behind.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        ok(False, f"the app finishes within {TIMEOUT_S} s")
        comment(output)
        print(f"1..{len(tests)}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything the bus started
        except ProcessLookupError:
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    if not ok(proc.returncode == 0, "pipermesh-app --screenshot-dir exits 0"):
        comment(output)
    ok("the runtime and the mesh were freed" in output,
       "the runtime and the mesh are freed at shutdown")

    report_path = os.path.join(OUT, "report.json")
    report = {}
    if ok(os.path.exists(report_path), "it writes report.json"):
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
        comment(json.dumps(report, indent=1, ensure_ascii=False))
    ok(report and report.get("error") is None, "every state was reached in time")

    # The row of the demo host, as the widget shows it.
    ok(report.get("row_title") == "Demo host", "the connected peer's row is the demo host")
    subtitle = report.get("row_subtitle") or ""
    m = re.fullmatch(r"(LAN|Direct|Relay) · ([0-9.]+) ms", subtitle)
    ok(m is not None, f"the row shows a path and a round trip (“{subtitle}”)")
    path = report.get("path")
    ok(path in ("lan", "direct", "relay") and m is not None and m.group(1).lower() == path,
       f"the row's path is the peer's path ({path})")
    rtt = report.get("rtt_ms", -1)
    ok(0 <= rtt < 1000, f"the round trip is measured ({rtt} ms)")
    ok(m is not None and report.get("device_path") == m.group(1),
       "the device page shows the same path")
    ok(re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){4}", report.get("device_fingerprint") or ""),
       "the device page shows the peer's key fingerprint")
    ok(re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){4}", report.get("self_fingerprint") or ""),
       "This Device shows this device's key fingerprint")
    ok(report.get("netcheck_udp") == "Works", "the network check reaches the demo's STUN server")
    ok(re.fullmatch(r"127\.0\.0\.1:[0-9]+", report.get("netcheck_mapped") or ""),
       "the network check shows the mapped address (loopback: no NAT)")

    for name in SHOTS:
        png = os.path.join(OUT, name + ".png")
        if not ok(os.path.exists(png) and report.get(name) == name + ".png", f"{name}.png was saved"):
            continue
        stats = image_stats(png)
        if stats is None:
            print(f"ok {len(tests) + 1} {name}.png is not blank # SKIP identify (imagemagick) is missing")
            tests.append(True)
            continue
        w, h, sd = stats
        ok(w >= 300 and h >= 300 and sd > 0.05,
           f"{name}.png is a non-blank window ({w}x{h}, pixel standard deviation {sd:.3f})")

    print(f"1..{len(tests)}")
    return 0 if all(tests) else 1


if __name__ == "__main__":
    sys.exit(main())
