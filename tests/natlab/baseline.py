#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Baselines in the NAT lab, for the mesh's figures to stand next to.

Usage: baseline.py [--scenario NAME] [--seconds S] [--no-wireguard] [--json FILE]

In one lab topology (default easy-easy: both devices behind MASQUERADE),
over the same veth/bridge/NAT path the mesh uses:

  tcp          iperf3, a → b, S seconds (default 5), through a DNAT port
               forward on b's router (plain MASQUERADE refuses unsolicited
               traffic; on one LAN it is the LAN address)
  udpRtt       UDP echo round trips a → b (200 × 64 bytes, 5 ms apart)
  wireguardGo  wireguard-go in a and b (a tun in each namespace, keys from
               `wg genkey`, b's UDP port forwarded), iperf3 and the same UDP
               RTT through the tunnel

Prints JSON (to stdout, and to FILE with --json). Exit 77 with the reason
when the lab cannot run (not root, no netns, iperf3 missing).
run-natlab.py imports measure_tcp() and measure_udp_rtt() from here.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import natlab  # noqa: E402

IPERF_PORT = 5201
ECHO_PORT = 7007
WG_PORT = 51820
WG_NET = "10.99.0"


def _wait_listening(lab, dev, proto, port, timeout=5):
    flag = "-ltn" if proto == "tcp" else "-lun"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.run(dev, ["ss", "-H", flag, f"sport = :{port}"], check=False, timeout=10)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {proto} port {port} in {dev}")


def _forward(lab, proto, port, forwarded):
    key = (proto, port)
    if key not in forwarded and lab.router["a"] != lab.router["b"]:
        lab.port_forward("b", proto, port)
        forwarded.add(key)


def iperf(lab, server_ip, dest, seconds):
    """iperf3 a → b (the server bound to server_ip in b); returns a dict."""
    srv = lab.spawn("b", ["iperf3", "-s", "-1", "-B", server_ip, "-p", str(IPERF_PORT)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(lab, "b", "tcp", IPERF_PORT)
        out = lab.run("a", ["iperf3", "-c", dest, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                      timeout=seconds + 30)
        r = json.loads(out.stdout)
        end = r["end"]
        return {"mbps": round(end["sum_received"]["bits_per_second"] / 1e6, 1),
                "seconds": seconds,
                "retransmits": end["sum_sent"].get("retransmits"),
                "senderCpuPercent": round(end["cpu_utilization_percent"]["host_total"], 1),
                "receiverCpuPercent": round(end["cpu_utilization_percent"]["remote_total"], 1)}
    finally:
        lab.stop(srv)


def udp_rtt(lab, bind_ip, dest, count=200, interval=0.005):
    echo = lab.spawn("b", natlab.helper_argv("_udp-echo", "--listen", f"{bind_ip}:{ECHO_PORT}",
                                             "--lifetime", 60),
                     stdout=subprocess.PIPE, text=True)
    try:
        natlab.wait_ready(echo, "the UDP echo")
        out = lab.run("a", natlab.helper_argv("_udp-ping", "--to", f"{dest}:{ECHO_PORT}",
                                              "--count", count, "--interval", interval),
                      timeout=count * (interval + 1) + 10)
        return summarize_rtt(json.loads(out.stdout))
    finally:
        lab.stop(echo)


def summarize_rtt(r):
    rtts = sorted(r["rttMs"])
    if not rtts:
        return {"count": 0, "lost": r["lost"]}
    q = statistics.quantiles(rtts, n=100) if len(rtts) >= 2 else rtts * 99
    return {"count": len(rtts), "lost": r["lost"], "minMs": round(rtts[0], 3),
            "medianMs": round(statistics.median(rtts), 3), "p90Ms": round(q[89], 3),
            "p99Ms": round(q[98], 3), "meanMs": round(statistics.fmean(rtts), 3)}


def measure_tcp(lab, seconds=5, forwarded=None):
    """Plain TCP a → b over the routed path (a port forward on b's router)."""
    forwarded = set() if forwarded is None else forwarded
    _forward(lab, "tcp", IPERF_PORT, forwarded)
    return iperf(lab, lab.lan_ip["b"], lab.address_of("b", "a"), seconds)


def measure_udp_rtt(lab, forwarded=None, count=200):
    forwarded = set() if forwarded is None else forwarded
    _forward(lab, "udp", ECHO_PORT, forwarded)
    return udp_rtt(lab, lab.lan_ip["b"], lab.address_of("b", "a"), count=count)


def measure_wireguard(lab, seconds=5, forwarded=None):
    """wireguard-go a ↔ b over the same path; iperf3 and UDP RTT inside."""
    import shutil
    for tool in ("wireguard-go", "wg"):
        if shutil.which(tool) is None:
            return {"skipped": f"{tool} is not installed"}
    forwarded = set() if forwarded is None else forwarded
    _forward(lab, "udp", WG_PORT, forwarded)
    d = os.path.join(lab.workdir, "wg")
    os.makedirs(d, exist_ok=True)
    keys = {}
    for dev in ("a", "b"):
        priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
        pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        path = os.path.join(d, f"{dev}.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(priv + "\n")
        keys[dev] = (path, pub)
    # The UAPI socket (/var/run/wireguard/NAME.sock) is shared by every
    # namespace: names unique per lab.
    names = {dev: f"wg{lab.tag[len(natlab.NS_PREFIX):]}{dev}"[:15] for dev in ("a", "b")}
    env = natlab.child_env({"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"})
    procs = []
    try:
        for dev in ("a", "b"):
            procs.append(lab.spawn(dev, ["wireguard-go", "-f", names[dev]], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for dev in ("a", "b"):
            deadline = time.monotonic() + 5
            while lab.run(dev, ["ip", "link", "show", names[dev]], check=False).returncode != 0 or \
                    not os.path.exists(f"/var/run/wireguard/{names[dev]}.sock"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"wireguard-go made no {names[dev]} in {dev}")
                time.sleep(0.05)
        ips = {"a": f"{WG_NET}.1", "b": f"{WG_NET}.2"}
        for dev, other in (("a", "b"), ("b", "a")):
            argv = ["wg", "set", names[dev], "private-key", keys[dev][0], "listen-port", str(WG_PORT),
                    "peer", keys[other][1], "allowed-ips", f"{ips[other]}/32"]
            if dev == "a":
                argv += ["endpoint", f"{lab.address_of('b', 'a')}:{WG_PORT}"]
            lab.run(dev, argv)
            lab.ip(dev, "addr", "add", f"{ips[dev]}/24", "dev", names[dev])
            lab.ip(dev, "link", "set", names[dev], "up")
        mtu = lab.run("a", ["cat", f"/sys/class/net/{names['a']}/mtu"]).stdout.strip()
        rtt = udp_rtt(lab, ips["b"], ips["b"])  # also brings the handshake up first
        result = {"tcp": iperf(lab, ips["b"], ips["b"], seconds), "udpRtt": rtt, "mtu": int(mtu)}
        result["mbps"] = result["tcp"]["mbps"]
        return result
    finally:
        for p in procs:
            lab.stop(p)


def measure(scenario="easy-easy", seconds=5, wireguard=True, rtt_count=200):
    with natlab.Lab(scenario) as lab:
        forwarded = set()
        out = {"scenario": lab.scenario.name,
               "path": ("a and b on one LAN bridge" if lab.scenario.one_lan else
                        f"a → ra ({lab.scenario.nat_a}) → internet bridge → "
                        f"rb ({lab.scenario.nat_b}, DNAT port forward) → b"),
               "tcp": measure_tcp(lab, seconds, forwarded)}
        if not lab.scenario.udp_blocked:
            out["udpRtt"] = measure_udp_rtt(lab, forwarded, count=rtt_count)
        if wireguard:
            out["wireguardGo"] = measure_wireguard(lab, seconds, forwarded)
            wg = out["wireguardGo"].get("mbps")
            if wg:
                out["wireguardGoVsTcp"] = round(wg / out["tcp"]["mbps"], 3)
        return out


def main(argv):
    p = argparse.ArgumentParser(description="TCP, UDP RTT and wireguard-go baselines in the NAT lab")
    p.add_argument("--scenario", default="easy-easy", choices=list(natlab.SCENARIOS))
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--no-wireguard", action="store_true")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if natlab.SCENARIOS[args.scenario].udp_blocked and not args.no_wireguard:
        p.error("wireguard needs UDP: use --no-wireguard with udp-blocked")
    try:
        natlab.check_can_run()
        import shutil
        if shutil.which("iperf3") is None:
            raise natlab.Skip("iperf3 is not installed")
    except natlab.Skip as e:
        print(f"baseline: skipped: {e}", flush=True)
        return natlab.SKIP
    natlab.install_handlers()
    try:
        with natlab.time_bound(3 * args.seconds + 60):
            result = measure(args.scenario, args.seconds, not args.no_wireguard)
    except natlab.Interrupted as e:
        natlab.log(f"baseline: interrupted ({e}); cleaned up")
        return 1
    except natlab.TimeBound:
        natlab.log("baseline: ran out of time; cleaned up")
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
