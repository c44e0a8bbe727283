#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The PiperMesh NAT lab: real kernel NAT between network namespaces.

Library (imported by baseline.py and run-natlab.py) and a command line:

  natlab.py self-check --pipermesh BIN --server BIN [--scenario NAME]... [--json FILE]
      Builds each scenario and proves its NAT behaviour with real traffic:
      `pipermesh netcheck` against `pipermesh-server serve` (two STUN
      addresses) from every device, and a UDP probe that tells the mapping
      (endpoint-independent or not) and the filtering (port-restricted or
      full cone) from what a reflector on the "internet" sees and can send.
  natlab.py shell SCENARIO
      Builds one topology and opens a shell in its device "a" (for poking
      around by hand); everything is removed when the shell exits.
  natlab.py cleanup
      Deletes the namespaces of earlier runs whose process is gone (a run
      killed with SIGKILL cannot clean up after itself).

Exit status: 0 passed, 1 failed, 2 usage, 77 skipped (not root, or no
network namespaces), with the reason printed.

Topology (addresses are TEST-NET-3 and private nets; nothing is routed to
any interface outside the namespaces made here, and no namespace has a
default route out of the lab):

   a (10.1.0.10) ─┐                                  ┌─ b (10.2.0.10)
                  lan0 bridge in ra                  lan0 bridge in rb
   ra: NAT, wan0 203.0.113.1 ─┐                ┌─ rb: NAT, wan0 203.0.113.2
                              └── br0 in inet ──┘
                                      │
                srv: 203.0.113.10 (API, relay, STUN), .11 (STUN alt), .12 (a stranger)

In the "lan" scenario b sits on a's LAN (10.1.0.11) and there is no rb.
Namespaces are named pmnl<pid>x<n>-<role> (unique per run and lab).
ip_forward is turned on in the routers only; IPv6 is off everywhere so that
every path is the IPv4 one the lab controls (and blackholes).
"""
import argparse
import atexit
import ctypes
import hashlib
import json
import os
import queue
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
NS_PREFIX = "pmnl"

PUBLIC_PREFIX = "203.0.113"
SERVER_IP = "203.0.113.10"
STUN_ALT_IP = "203.0.113.11"
STRANGER_IP = "203.0.113.12"  # a host a device never talked to (filtering probe)
STUN_PORT = 3478
API_PORT = 443
FULL_CONE_PORT = 41641  # the fixed UDP port forwarded to the full-cone device

# NAT kinds of a site's router.
MASQ = "port-restricted"  # MASQUERADE: endpoint-independent mapping, port-restricted filtering
RANDOM = "destination-dependent"  # MASQUERADE --random-fully: a new port per destination
FULL_CONE = "full-cone"  # SNAT to a fixed port + DNAT back: independent mapping and filtering


class Scenario:
    def __init__(self, name, nat_a, nat_b, expect, one_lan=False, udp_blocked=False, doc=""):
        self.name, self.nat_a, self.nat_b, self.expect = name, nat_a, nat_b, expect
        self.one_lan, self.udp_blocked, self.doc = one_lan, udp_blocked, doc

    def nat(self, role):
        return self.nat_a if role == "a" else self.nat_b


SCENARIOS = {s.name: s for s in [
    Scenario("lan", MASQ, MASQ, "lan", one_lan=True, doc="both devices on one LAN behind one NAT"),
    Scenario("easy-easy", MASQ, MASQ, "direct", doc="both behind MASQUERADE"),
    Scenario("open-hard", FULL_CONE, RANDOM, "direct", doc="a full cone (fixed port), b --random-fully"),
    Scenario("easy-hard", MASQ, RANDOM, "relay", doc="a MASQUERADE, b --random-fully"),
    Scenario("hard-hard", RANDOM, RANDOM, "relay", doc="both --random-fully"),
    Scenario("udp-blocked", MASQ, MASQ, "relay", udp_blocked=True,
             doc="both routers drop all forwarded UDP: only TCP reaches the server"),
]}


class Skip(Exception):
    """The lab cannot run here; the message says why."""


class Interrupted(BaseException):
    """A signal (SIGTERM, SIGINT, SIGHUP) arrived: unwind and clean up."""


class TimeBound(BaseException):
    """A hard time bound (SIGALRM) ran out."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Cleanup on every exit path
# ---------------------------------------------------------------------------

_live_labs = []
_handlers_installed = False


def _on_signal(signum, frame):
    # Ignore further signals while the stack unwinds through the cleanups.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(f"signal {signal.Signals(signum).name}")


def _on_alarm(signum, frame):
    raise TimeBound("time bound reached")


def _close_all():
    for lab in list(_live_labs):
        lab.close()


def install_handlers():
    """Signals unwind the stack (so every `finally` and `with` cleans up);
    atexit removes whatever is still standing."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    atexit.register(_close_all)


class time_bound:
    """with time_bound(seconds): a hard bound on a block (SIGALRM raises
    TimeBound in the main thread, interrupting any blocking call)."""

    def __init__(self, seconds):
        self.seconds = max(1, int(seconds + 0.999))

    def __enter__(self):
        install_handlers()
        signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        signal.alarm(0)
        return False


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


_SETPRIV = shutil.which("setpriv")


def _die_with_parent():
    # Children die with the lab's process even if it is killed with SIGKILL.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_env(extra=None):
    """The environment for everything started in the lab: no proxy (the lab
    has no way out), and no session bus (identities use the file store)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["DBUS_SESSION_BUS_ADDRESS"] = "disabled:"
    if extra:
        env.update(extra)
    return env


def check_can_run():
    """Raises Skip with the reason when the lab cannot run here."""
    if os.geteuid() != 0:
        raise Skip("the NAT lab needs root (network namespaces, veth, iptables)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise Skip(f"`{tool}` is not installed")
    name = f"{NS_PREFIX}{os.getpid()}-probe"
    out = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise Skip(f"`ip netns add` failed: {out.stderr.strip()}")
    try:
        out = subprocess.run(["ip", "netns", "exec", name, "iptables", "-t", "nat", "-S"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise Skip(f"iptables' nat table does not work in a namespace: {out.stderr.strip()}")
        out = subprocess.run(["ip", "-n", name, "link", "add", "br0", "type", "bridge"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise Skip(f"cannot make a bridge in a namespace: {out.stderr.strip()}")
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def stale_namespaces():
    """Namespaces of earlier lab runs whose process is gone."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20)
    stale = []
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{NS_PREFIX}(\d+)(x\d+)?-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            stale.append(name)
    return stale


# ---------------------------------------------------------------------------
# The lab
# ---------------------------------------------------------------------------

_lab_counter = 0


class Lab:
    """One scenario's topology. Use as a context manager (or call build()
    and close()); close() is idempotent and runs at exit and on signals."""

    def __init__(self, scenario, workdir=None):
        global _lab_counter
        install_handlers()
        if isinstance(scenario, str):
            scenario = SCENARIOS[scenario]
        self.scenario = scenario
        _lab_counter += 1
        self.tag = f"{NS_PREFIX}{os.getpid()}x{_lab_counter}"
        self.roles = ["inet", "srv", "ra", "a", "b"] + ([] if scenario.one_lan else ["rb"])
        self.ns = {role: f"{self.tag}-{role}" for role in self.roles}
        self.router = {"a": "ra", "b": "ra" if scenario.one_lan else "rb"}
        self.lan_ip = {"a": "10.1.0.10", "b": "10.1.0.11" if scenario.one_lan else "10.2.0.10"}
        self.public_ip = {"a": f"{PUBLIC_PREFIX}.1",
                          "b": f"{PUBLIC_PREFIX}.1" if scenario.one_lan else f"{PUBLIC_PREFIX}.2"}
        self.gateway = {"a": "10.1.0.1", "b": "10.1.0.1" if scenario.one_lan else "10.2.0.1"}
        self.server_ip, self.stun_alt_ip, self.stranger_ip = SERVER_IP, STUN_ALT_IP, STRANGER_IP
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"{self.tag}-")
        self.procs = []
        self.made = []
        self.blackholed = False
        self.closed = False
        self.ca_dir = None

    # -- context manager --
    def __enter__(self):
        self.build()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- running things in the namespaces --
    def cmd(self, role, argv):
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def run(self, role, argv, check=True, timeout=30, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("env", child_env())
        out = subprocess.run(self.cmd(role, argv), timeout=timeout, **kw)
        if check and out.returncode != 0:
            raise RuntimeError(f"[{role}] {' '.join(argv)}: exit {out.returncode}: "
                               f"{(out.stderr or '').strip()}")
        return out

    def ip(self, role, *args):
        out = subprocess.run(["ip", "-n", self.ns[role], *args], capture_output=True, text=True,
                             timeout=20)
        if out.returncode != 0:
            raise RuntimeError(f"[{role}] ip {' '.join(args)}: {out.stderr.strip()}")

    def iptables(self, role, *args):
        self.run(role, ["iptables", "-w", "5", *args])

    def sysctl(self, role, *settings):
        self.run(role, ["sysctl", "-q", "-w", *settings])

    def spawn(self, role, argv, **kw):
        """Starts a long-running process in a namespace; close() stops it.
        `ip netns exec` (and setpriv) exec the command, so proc.pid is the
        program itself. Spawn from the main thread: the parent-death signal
        follows the thread that forked."""
        kw.setdefault("env", child_env())
        kw.setdefault("stdin", subprocess.DEVNULL)
        if _SETPRIV:
            # setpriv sets the parent-death signal and execs: no Python code
            # between fork and exec (preexec_fn is unsafe with threads).
            proc = subprocess.Popen(self.cmd(role, [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]), **kw)
        else:
            proc = subprocess.Popen(self.cmd(role, argv), preexec_fn=_die_with_parent, **kw)
        proc.natlab_role = role
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=3):
        """SIGTERM, then SIGKILL; returns the exit code (None if it had to be killed)."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                return None
        return proc.returncode

    def with_ca(self, argv):
        """argv wrapped so that its TLS trusts only the lab's CA: a bind mount
        over /etc/ssl/certs inside the private mount namespace that
        `ip netns exec` makes for each command (it never reaches the host)."""
        if self.ca_dir is None:
            return argv
        return ["sh", "-c", 'mount --bind "$0" /etc/ssl/certs && exec "$@"', self.ca_dir, *argv]

    # -- building --
    def build(self):
        _live_labs.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _add_ns(self, role):
        name = self.ns[role]
        out = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(f"ip netns add {name}: {out.stderr.strip()}")
        self.made.append(name)
        # Before any interface exists, so every one is IPv4 only.
        self.sysctl(role, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        self.ip(role, "link", "set", "lo", "up")

    def _veth(self, role, name, peer_role, peer_name):
        # Both ends are made directly inside their namespaces: nothing ever
        # appears in the host's namespace.
        self.ip(role, "link", "add", name, "type", "veth", "peer", "name", peer_name,
                "netns", self.ns[peer_role])

    def _bridge(self, role, name):
        self.ip(role, "link", "add", name, "type", "bridge")
        self.ip(role, "link", "set", name, "up")
        # br_netfilter is built in here: bridged frames must not meet iptables
        # (per namespace since Linux 5.3).
        path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
        if os.path.exists(path):
            self.sysctl(role, "net.bridge.bridge-nf-call-iptables=0",
                        "net.bridge.bridge-nf-call-arptables=0")

    def _build(self):
        s = self.scenario
        for role in self.roles:
            self._add_ns(role)

        # The internet: one bridge, the server and the routers' WAN ports.
        self._bridge("inet", "br0")
        self._veth("srv", "eth0", "inet", "p-srv")
        self.ip("inet", "link", "set", "p-srv", "master", "br0", "up")
        for addr in (self.server_ip, self.stun_alt_ip, self.stranger_ip):
            self.ip("srv", "addr", "add", f"{addr}/24", "dev", "eth0")
        self.ip("srv", "link", "set", "eth0", "up")

        sites = [("ra", self.public_ip["a"], "10.1.0")]
        if not s.one_lan:
            sites.append(("rb", self.public_ip["b"], "10.2.0"))
        for router, public, lan in sites:
            self._veth(router, "wan0", "inet", f"p-{router}")
            self.ip("inet", "link", "set", f"p-{router}", "master", "br0", "up")
            self.ip(router, "addr", "add", f"{public}/24", "dev", "wan0")
            self.ip(router, "link", "set", "wan0", "up")
            self._bridge(router, "lan0")
            self.ip(router, "addr", "add", f"{lan}.1/24", "dev", "lan0")
            self.sysctl(router, "net.ipv4.ip_forward=1")

        for dev in ("a", "b"):
            router = self.router[dev]
            self._veth(dev, "eth0", router, f"d-{dev}")
            self.ip(router, "link", "set", f"d-{dev}", "master", "lan0", "up")
            self.ip(dev, "addr", "add", f"{self.lan_ip[dev]}/24", "dev", "eth0")
            self.ip(dev, "link", "set", "eth0", "up")
            self.ip(dev, "route", "add", "default", "via", self.gateway[dev])

        done = set()
        for dev in ("a", "b"):
            router = self.router[dev]
            if router in done:
                continue
            done.add(router)
            self._nat(router, s.nat(dev), self.lan_ip[dev], self.public_ip[dev])
            if s.udp_blocked:
                self.iptables(router, "-A", "FORWARD", "-p", "udp", "-j", "DROP")

    def _nat(self, router, kind, device_ip, public_ip):
        # The router's own firewall, as on every home router: nothing new may
        # reach the router itself from the internet. Besides being realistic,
        # this matters for hole punching: an unsolicited datagram that is
        # accepted to INPUT (and answered with ICMP) leaves a confirmed
        # conntrack entry that makes MASQUERADE pick another port for the
        # device's own packets to that sender (a tuple clash), while one
        # dropped here never becomes an entry.
        self.iptables(router, "-A", "INPUT", "-i", "wan0", "-m", "conntrack",
                      "--ctstate", "NEW,INVALID", "-j", "DROP")
        if kind == FULL_CONE:
            # Endpoint-independent mapping: the device's fixed port always
            # leaves as public:FULL_CONE_PORT ...
            self.iptables(router, "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-p", "udp",
                          "-s", device_ip, "--sport", str(FULL_CONE_PORT),
                          "-j", "SNAT", "--to-source", f"{public_ip}:{FULL_CONE_PORT}")
            # ... and endpoint-independent filtering: anyone may send to it.
            self.iptables(router, "-t", "nat", "-A", "PREROUTING", "-i", "wan0", "-p", "udp",
                          "--dport", str(FULL_CONE_PORT),
                          "-j", "DNAT", "--to-destination", f"{device_ip}:{FULL_CONE_PORT}")
            self.iptables(router, "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
        elif kind == RANDOM:
            self.iptables(router, "-t", "nat", "-A", "POSTROUTING", "-o", "wan0",
                          "-j", "MASQUERADE", "--random-fully")
        elif kind == MASQ:
            self.iptables(router, "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
        else:
            raise ValueError(kind)

    def port_forward(self, dev, proto, port):
        """A DNAT rule on dev's router: public:port → dev:port (baselines only)."""
        router = self.router[dev]
        self.iptables(router, "-t", "nat", "-I", "PREROUTING", "-i", "wan0", "-p", proto,
                      "--dport", str(port), "-j", "DNAT", "--to-destination",
                      f"{self.lan_ip[dev]}:{port}")

    def address_of(self, dev, from_dev):
        """Where from_dev reaches dev (with port_forward): the LAN address on
        one LAN, the public address of dev's router otherwise."""
        if self.router[dev] == self.router[from_dev]:
            return self.lan_ip[dev]
        return self.public_ip[dev]

    def _blackhole_rules(self):
        """(role, rule) pairs that drop all UDP between the two devices."""
        if self.scenario.one_lan:
            # On one LAN the frames never reach a router's iptables: drop in
            # the devices themselves.
            return [("a", ["OUTPUT", "-p", "udp", "-d", self.lan_ip["b"]]),
                    ("a", ["INPUT", "-p", "udp", "-s", self.lan_ip["b"]]),
                    ("b", ["OUTPUT", "-p", "udp", "-d", self.lan_ip["a"]]),
                    ("b", ["INPUT", "-p", "udp", "-s", self.lan_ip["a"]])]
        rules = []
        for dev, other in (("a", "b"), ("b", "a")):
            router = self.router[dev]
            rules.append((router, ["FORWARD", "-p", "udp", "-d", self.public_ip[other]]))
            rules.append((router, ["FORWARD", "-p", "udp", "-s", self.public_ip[other]]))
        return rules

    def blackhole_direct(self, on=True):
        """Drops every UDP datagram between the sites (or the two devices of
        one LAN); STUN and TCP to the server still pass."""
        if on == self.blackholed:
            return
        for role, rule in self._blackhole_rules():
            if on:
                self.iptables(role, "-I", rule[0], *rule[1:], "-j", "DROP")
            else:
                self.iptables(role, "-D", rule[0], *rule[1:], "-j", "DROP")
        self.blackholed = on

    # -- the server --
    def make_ca(self):
        """A throwaway self-signed certificate for the server's address, and
        a CA folder that with_ca() mounts over /etc/ssl/certs."""
        if shutil.which("openssl") is None:
            raise Skip("openssl is not installed (the lab's server needs a TLS certificate)")
        if not os.path.isdir("/etc/ssl/certs"):
            raise Skip("/etc/ssl/certs does not exist (the lab mounts its CA there)")
        tls = os.path.join(self.workdir, "tls")
        os.makedirs(os.path.join(tls, "certs"), exist_ok=True)
        cert, key = os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                        "-subj", "/CN=pipermesh-natlab",
                        "-addext", f"subjectAltName=IP:{self.server_ip}",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=20)
        shutil.copy(cert, os.path.join(tls, "certs", "ca-certificates.crt"))
        self.ca_dir = os.path.join(tls, "certs")
        return cert, key

    def start_server(self, server_bin, tls=True, timeout=20):
        """Starts `pipermesh-server serve` in srv: the API and relay on
        https://203.0.113.10:443 (tls) or on the namespace's own loopback
        (tls=False, enough for STUN), STUN on .10:3478 and .11:3478. Makes an
        account and a reusable enrollment key first."""
        d = os.path.join(self.workdir, "server")
        os.makedirs(d, exist_ok=True)
        db = os.path.join(d, "server.db")

        def admin(*args):
            out = subprocess.run([server_bin, "--db", db, *args], capture_output=True, text=True,
                                 timeout=20, env=child_env())
            if out.returncode != 0:
                raise RuntimeError(f"pipermesh-server {' '.join(args)}: {out.stderr.strip()}")
            return out.stdout.strip()

        admin("account", "create", "natlab")
        key = admin("enroll-key", "create", "natlab", "--reusable")
        # The relay's per-account rate limit (8 MiB/s by default, a VPS
        # operator's protection) would make the lab measure the policy, not
        # the relay: the lab lifts it to 1 GiB/s.
        conf = os.path.join(d, "server.conf")
        with open(conf, "w") as f:
            f.write("[relay]\naccount-bytes-per-second=1073741824\naccount-burst-bytes=1073741824\n")
        argv = [server_bin, "--db", db, "serve", "--config", conf,
                "--stun", f"{self.server_ip}:{STUN_PORT}",
                "--stun-alt", f"{self.stun_alt_ip}:{STUN_PORT}"]
        if tls:
            cert, tkey = self.make_ca()
            argv += ["--listen", f"{self.server_ip}:{API_PORT}", "--tls-cert", cert, "--tls-key", tkey]
        else:
            argv += ["--listen", "127.0.0.1:0"]
        err = open(os.path.join(d, "server.log"), "w")
        proc = self.spawn("srv", argv, stdout=subprocess.PIPE, stderr=err, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
        url, stun = None, []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (url and len(stun) == 2):
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            m = re.search(r"API and relay on (https?://\S+)", line)
            if m:
                url = m.group(1)
            m = re.search(r"STUN on udp://([\d.]+:\d+)", line)
            if m:
                stun.append(m.group(1))
        if not (url and len(stun) == 2):
            self.stop(proc)
            raise RuntimeError("pipermesh-server did not start: "
                               + open(os.path.join(d, "server.log")).read()[-2000:])
        return Server(proc, url, stun[0], stun[1], key, db, os.path.join(d, "server.log"))

    # -- teardown --
    def close(self):
        if self.closed:
            return
        self.closed = True
        # Not interrupted by a time bound halfway: it is re-armed afterwards.
        remaining = signal.alarm(0)
        for proc in reversed(self.procs):
            try:
                self.stop(proc, timeout=2)
            except Exception as e:  # keep going: the namespaces must go
                log(f"natlab: could not stop pid {proc.pid}: {e}")
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self.made = []
        if self.own_workdir and not os.environ.get("NATLAB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _live_labs:
            _live_labs.remove(self)
        if remaining:
            signal.alarm(remaining)


class Server:
    def __init__(self, proc, url, stun, stun_alt, key, db, log_path):
        self.proc, self.url, self.stun, self.stun_alt = proc, url, stun, stun_alt
        self.key, self.db, self.log_path = key, db, log_path


# ---------------------------------------------------------------------------
# Helpers that run inside the namespaces (natlab.py _helper ...)
# ---------------------------------------------------------------------------

def helper_argv(name, *args):
    return [sys.executable, os.path.abspath(__file__), name, *map(str, args)]


def _addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _fmt(addr):
    return f"{addr[0]}:{addr[1]}"


def helper_reflector(args):
    """Answers "map" with "seen IP:PORT" (the source it saw) on every --map
    address. On "probe", sends "other-port" from --other-port (same host,
    a port the prober never used), "other-ip" from --other-ip (a host it
    never used), then "same" from the probed socket itself. Also accepts TCP
    on --tcp and writes "tcp-ok". Exits after --lifetime seconds."""
    sel = selectors.DefaultSelector()
    socks = {}
    for text in args.map:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(_addr(text))
        sel.register(s, selectors.EVENT_READ, "udp")
        socks[text] = s
    senders = {}
    for label, text in (("other-port", args.other_port), ("other-ip", args.other_ip)):
        if text:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(_addr(text))
            senders[label] = s
    if args.tcp:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(_addr(args.tcp))
        t.listen(8)
        sel.register(t, selectors.EVENT_READ, "tcp")
    print("ready", flush=True)
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if key.data == "tcp":
                c, _ = s.accept()
                c.sendall(b"tcp-ok")
                c.close()
                continue
            data, src = s.recvfrom(2048)
            if data.startswith(b"map"):
                s.sendto(b"seen " + _fmt(src).encode(), src)
            elif data.startswith(b"probe"):
                for label, sender in senders.items():
                    sender.sendto(label.encode(), src)
                time.sleep(0.2)  # the strangers' datagrams are on their way first
                s.sendto(b"same", src)


def helper_probe(args):
    """From one UDP socket (bound to --port, or any): "map" to every --map
    address (what source does each see?), then "probe" to the first and
    collect what comes back. Prints JSON."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", args.port))
    result = {"local": _fmt(s.getsockname()), "mapped": {}, "received": [], "tcp": None}
    for text in args.map:
        dest = _addr(text)
        for _ in range(4):
            s.sendto(b"map", dest)
            s.settimeout(0.3)
            try:
                data, src = s.recvfrom(2048)
            except socket.timeout:
                continue
            if src == dest and data.startswith(b"seen "):
                result["mapped"][text] = data[5:].decode()
                break
    if result["mapped"]:
        first = _addr(args.map[0])
        s.sendto(b"probe", first)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, src = s.recvfrom(2048)
            except socket.timeout:
                break
            result["received"].append({"from": _fmt(src), "what": data.decode(errors="replace")})
            if data == b"same":
                end = min(end, time.monotonic() + 0.3)
    if args.tcp:
        try:
            with socket.create_connection(_addr(args.tcp), timeout=3) as t:
                t.settimeout(3)
                result["tcp"] = t.recv(16).decode() == "tcp-ok"
        except OSError as e:
            result["tcp"] = False
            result["tcpError"] = str(e)
    print(json.dumps(result))


def helper_udp_echo(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(_addr(args.listen))
    print("ready", flush=True)
    s.settimeout(0.5)
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        s.sendto(data, src)


def helper_udp_ping(args):
    """--count pings of 64 bytes, --interval apart; prints RTTs (ms) as JSON."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = _addr(args.to)
    rtts, lost = [], 0
    for i in range(args.count):
        payload = struct.pack("!Iq", i, time.monotonic_ns()).ljust(64, b"\0")
        t0 = time.perf_counter()
        s.sendto(payload, dest)
        s.settimeout(1.0)
        while True:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                lost += 1
                break
            if data[:4] == payload[:4]:
                rtts.append((time.perf_counter() - t0) * 1000)
                break
        time.sleep(args.interval)
    print(json.dumps({"rttMs": rtts, "lost": lost}))


def payload(seed, size):
    """The deterministic pseudo-random bytes a data source serves."""
    return random.Random(seed).randbytes(size)


def helper_source(args):
    """A TCP server that sends --mib MiB of payload(--seed) to each client."""
    data = memoryview(payload(args.seed, args.mib << 20))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(_addr(args.listen))
    t.listen(8)
    print("ready " + hashlib.sha256(data).hexdigest(), flush=True)

    def serve(c):
        try:
            with c:
                for off in range(0, len(data), 256 << 10):
                    c.sendall(data[off:off + (256 << 10)])
                c.shutdown(socket.SHUT_WR)
                c.settimeout(30)
                while c.recv(4096):  # until the reader closes
                    pass
        except OSError:
            pass

    t.settimeout(0.5)
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:
        try:
            c, _ = t.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def helper_sink(args):
    """Connects to --connect, reads until EOF (or --bytes), hashing. While
    throttled (until SIGUSR1) reads at most --rate MiB/s. Prints JSON:
    bytes, sha256, monotonic times (the clock is the same in every
    namespace), samples [t, bytes] every 50 ms, and when the throttle went."""
    state = {"throttled": args.rate > 0, "unthrottled_at": None}

    def unthrottle(signum, frame):
        if state["throttled"]:
            state["throttled"] = False
            state["unthrottled_at"] = time.monotonic()

    signal.signal(signal.SIGUSR1, unthrottle)
    h = hashlib.sha256()
    t_connect = time.monotonic()
    c = None
    while c is None:
        try:
            c = socket.create_connection(_addr(args.connect), timeout=5)
        except OSError:
            if time.monotonic() - t_connect > args.connect_timeout:
                raise
            time.sleep(0.002)
    t_connected = time.monotonic()
    c.settimeout(args.idle_timeout)
    total, t_first, samples = 0, None, [[t_connected, 0]]
    rate = args.rate * (1 << 20)
    throttle_start, throttle_bytes = t_connected, 0
    error = None
    buf = bytearray(256 << 10)
    try:
        while args.bytes == 0 or total < args.bytes:
            want = len(buf)
            if state["throttled"]:
                want = 64 << 10
            n = c.recv_into(buf, want)
            if n == 0:
                break
            now = time.monotonic()
            if t_first is None:
                t_first = now
            h.update(memoryview(buf)[:n])
            total += n
            if now - samples[-1][0] >= 0.05:
                samples.append([now, total])
            if state["throttled"]:
                throttle_bytes += n
                ahead = throttle_bytes / rate - (now - throttle_start)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError as e:
        error = str(e)
    t_end = time.monotonic()
    samples.append([t_end, total])
    c.close()
    print(json.dumps({"bytes": total, "sha256": h.hexdigest(), "tConnect": t_connect,
                      "tConnected": t_connected, "tFirst": t_first, "tEnd": t_end,
                      "unthrottledAt": state["unthrottled_at"], "samples": samples,
                      "error": error}))


def run_helper(argv):
    p = argparse.ArgumentParser(prog="natlab.py " + argv[0])
    name = argv[0]
    if name == "_reflector":
        p.add_argument("--map", action="append", default=[])
        p.add_argument("--other-port")
        p.add_argument("--other-ip")
        p.add_argument("--tcp")
        p.add_argument("--lifetime", type=float, default=60)
        helper_reflector(p.parse_args(argv[1:]))
    elif name == "_probe":
        p.add_argument("--map", action="append", default=[])
        p.add_argument("--port", type=int, default=0)
        p.add_argument("--tcp")
        helper_probe(p.parse_args(argv[1:]))
    elif name == "_udp-echo":
        p.add_argument("--listen", required=True)
        p.add_argument("--lifetime", type=float, default=60)
        helper_udp_echo(p.parse_args(argv[1:]))
    elif name == "_udp-ping":
        p.add_argument("--to", required=True)
        p.add_argument("--count", type=int, default=50)
        p.add_argument("--interval", type=float, default=0.01)
        helper_udp_ping(p.parse_args(argv[1:]))
    elif name == "_source":
        p.add_argument("--listen", required=True)
        p.add_argument("--mib", type=int, default=64)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--lifetime", type=float, default=300)
        helper_source(p.parse_args(argv[1:]))
    elif name == "_sink":
        p.add_argument("--connect", required=True)
        p.add_argument("--bytes", type=int, default=0)
        p.add_argument("--rate", type=float, default=0, help="MiB/s until SIGUSR1 (0: none)")
        p.add_argument("--connect-timeout", type=float, default=10)
        p.add_argument("--idle-timeout", type=float, default=30)
        helper_sink(p.parse_args(argv[1:]))
    else:
        raise SystemExit(f"unknown helper {name}")


def wait_ready(proc, what, timeout=10):
    """Waits for a helper's "ready" line; returns the line."""
    q = queue.Queue()
    threading.Thread(target=lambda: q.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = q.get(timeout=timeout)
    except queue.Empty:
        line = ""
    if not line.startswith("ready"):
        raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
    return line.strip()


# ---------------------------------------------------------------------------
# Self-check: prove each scenario's NAT with real traffic
# ---------------------------------------------------------------------------

class Checks:
    """TAP-style checks, collected for the JSON report."""

    def __init__(self):
        self.items = []

    def ok(self, cond, name, detail=None):
        self.items.append({"ok": bool(cond), "name": name, "detail": detail})
        print(("ok" if cond else "not ok") + f" {len(self.items)} {name}", flush=True)
        return bool(cond)

    def all_ok(self):
        return all(i["ok"] for i in self.items)


def netcheck(lab, pipermesh, dev, server):
    out = lab.run(dev, [pipermesh, "--state-dir", os.path.join(lab.workdir, f"nc-{dev}"), "netcheck",
                        "--stun", server.stun, "--stun-alt", server.stun_alt, "--json"],
                  check=False, timeout=30)
    try:
        result = json.loads(out.stdout)
    except ValueError:
        result = {"unparsed": out.stdout[-500:], "stderr": out.stderr[-500:]}
    result["exitCode"] = out.returncode
    return result


def probe(lab, dev, port=0):
    """Runs the mapping/filtering probe from dev against a reflector on srv."""
    ip10, ip11 = lab.server_ip, lab.stun_alt_ip
    maps = [f"{ip10}:5000", f"{ip10}:5001", f"{ip11}:5000"]
    argv = helper_argv("_reflector", "--other-port", f"{ip10}:5009",
                       "--other-ip", f"{lab.stranger_ip}:5009", "--tcp", f"{ip10}:5000",
                       "--lifetime", 20)
    for m in maps:
        argv += ["--map", m]
    refl = lab.spawn("srv", argv, stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(refl, "the reflector")
        pargv = helper_argv("_probe", "--port", port, "--tcp", f"{ip10}:5000")
        for m in maps:
            pargv += ["--map", m]
        out = lab.run(dev, pargv, timeout=30)
        return json.loads(out.stdout)
    finally:
        lab.stop(refl)


def check_nat(c, lab, pipermesh, server, dev, kind):
    """The checks for one device behind a NAT of `kind`."""
    s = lab.scenario
    pub = lab.public_ip[dev]
    tag = f"{s.name}/{dev} ({kind if not s.udp_blocked else 'UDP blocked'})"
    report = {"nat": kind, "udpBlocked": s.udp_blocked}

    nc = netcheck(lab, pipermesh, dev, server)
    report["netcheck"] = nc
    mapped = nc.get("mappedAddress") or ""
    if s.udp_blocked:
        c.ok(nc.get("udp") is False and nc["exitCode"] == 1,
             f"{tag}: netcheck says no UDP (udp {nc.get('udp')}, exit {nc['exitCode']})", nc)
    else:
        c.ok(nc.get("udp") is True and mapped.startswith(pub + ":"),
             f"{tag}: netcheck maps to the router's public address ({mapped})", nc)
        varies = nc.get("mappingVariesByDestination")
        want = kind == RANDOM
        c.ok(varies is want, f"{tag}: netcheck mapping varies by destination: {varies} "
             f"(want {want}; {nc.get('mappedAddress')} vs {nc.get('mappedAddressAlt')})", nc)

    port = FULL_CONE_PORT if kind == FULL_CONE else 0
    pr = probe(lab, dev, port)
    report["probe"] = pr
    got = {r["what"] for r in pr["received"]}
    ports = {m.rsplit(":", 1)[1] for m in pr["mapped"].values()}
    hosts = {m.rsplit(":", 1)[0] for m in pr["mapped"].values()}
    c.ok(pr.get("tcp") is True, f"{tag}: TCP reaches the server", pr.get("tcpError"))
    if s.udp_blocked:
        c.ok(not pr["mapped"] and not got, f"{tag}: no UDP datagram gets through either way", pr)
        return report
    c.ok(len(pr["mapped"]) == 3 and hosts == {pub},
         f"{tag}: three destinations see the router's address ({sorted(pr['mapped'].values())})", pr)
    if kind == RANDOM:
        c.ok(len(ports) == 3, f"{tag}: a new public port per destination "
             f"(destination-dependent mapping: {sorted(ports)})", pr)
    else:
        c.ok(len(ports) == 1, f"{tag}: one public port for every destination "
             f"(endpoint-independent mapping: {sorted(ports)})", pr)
    if kind == FULL_CONE:
        c.ok(ports == {str(FULL_CONE_PORT)}, f"{tag}: the fixed port {FULL_CONE_PORT} is kept", pr)
        c.ok(got >= {"other-port", "other-ip", "same"},
             f"{tag}: unsolicited datagrams from a new port and a new host arrive "
             f"(endpoint-independent filtering: {sorted(got)})", pr)
    else:
        c.ok(got == {"same"}, f"{tag}: only the contacted endpoint gets through; a new port and a "
             f"new host are dropped (port-restricted filtering: {sorted(got)})", pr)
    return report


def check_lan(c, lab):
    """On one LAN, b sees a's own private address and port."""
    refl = lab.spawn("b", helper_argv("_reflector", "--map", f"{lab.lan_ip['b']}:5000",
                                      "--lifetime", 20), stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(refl, "the LAN reflector")
        out = lab.run("a", helper_argv("_probe", "--map", f"{lab.lan_ip['b']}:5000"), timeout=30)
        pr = json.loads(out.stdout)
    finally:
        lab.stop(refl)
    seen = pr["mapped"].get(f"{lab.lan_ip['b']}:5000", "")
    c.ok(seen.startswith(lab.lan_ip["a"] + ":") and seen.split(":")[1] == pr["local"].split(":")[1],
         f"lan: b sees a's LAN address untranslated ({seen})", pr)
    return pr


def check_isolation(c, lab):
    """Sanity: the other site's private address is not routable from a."""
    if lab.scenario.one_lan:
        return
    target = f"{lab.lan_ip['b']}:5000"
    refl = lab.spawn("b", helper_argv("_reflector", "--map", target, "--lifetime", 20),
                     stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(refl, "the reflector in b")
        pr = json.loads(lab.run("a", helper_argv("_probe", "--map", target), timeout=30).stdout)
    finally:
        lab.stop(refl)
    c.ok(not pr["mapped"], f"{lab.scenario.name}: a cannot reach b's private address {target}", pr)


def self_check(args):
    results = {}
    c = Checks()
    for name in args.scenario or list(SCENARIOS):
        s = SCENARIOS[name]
        started = time.monotonic()
        report = {"doc": s.doc, "devices": {}}
        try:
            with time_bound(args.time_bound), Lab(s) as lab:
                server = lab.start_server(args.server, tls=False)
                for dev in ("a", "b"):
                    report["devices"][dev] = check_nat(c, lab, args.pipermesh, server, dev, s.nat(dev))
                if s.one_lan:
                    report["lan"] = check_lan(c, lab)
                check_isolation(c, lab)
                code = lab.stop(server.proc)
                c.ok(code == 0, f"{name}: the server stops cleanly (exit {code})")
        except TimeBound:
            c.ok(False, f"{name}: finished within {args.time_bound} s")
        except Exception as e:
            c.ok(False, f"{name}: {type(e).__name__}: {e}")
        report["seconds"] = round(time.monotonic() - started, 2)
        results[name] = report
    print(f"1..{len(c.items)}")
    out = {"checks": c.items, "scenarios": results, "passed": c.all_ok()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    summary = {n: {d: {"nat": r["nat"],
                       "mapped": r.get("netcheck", {}).get("mappedAddress"),
                       "mappedAlt": r.get("netcheck", {}).get("mappedAddressAlt"),
                       "varies": r.get("netcheck", {}).get("mappingVariesByDestination"),
                       "udp": r.get("netcheck", {}).get("udp"),
                       "probeReceived": sorted({x["what"] for x in r.get("probe", {}).get("received", [])})}
                   for d, r in rep["devices"].items()} for n, rep in results.items()}
    print("# " + json.dumps(summary))
    return 0 if c.all_ok() else 1


def shell(args):
    with Lab(args.scenario) as lab:
        log(f"natlab: {args.scenario}: namespaces " + " ".join(lab.ns.values()))
        log(f"natlab: a {lab.lan_ip['a']} (public {lab.public_ip['a']}), "
            f"b {lab.lan_ip['b']} (public {lab.public_ip['b']}), server {lab.server_ip}")
        log("natlab: opening a shell in a; exit it to tear everything down")
        subprocess.run(lab.cmd("a", [os.environ.get("SHELL", "/bin/sh")]))
    return 0


def main(argv):
    if argv and argv[0].startswith("_"):
        run_helper(argv)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("self-check", help="prove each scenario's NAT behaviour")
    sc.add_argument("--pipermesh", required=True)
    sc.add_argument("--server", required=True)
    sc.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    sc.add_argument("--json")
    sc.add_argument("--time-bound", type=float, default=60, help="seconds per scenario")
    sh = sub.add_parser("shell", help="build one topology and open a shell in device a")
    sh.add_argument("scenario", choices=list(SCENARIOS))
    sub.add_parser("cleanup", help="delete namespaces left by killed runs")
    args = p.parse_args(argv)
    try:
        check_can_run()
    except Skip as e:
        print(f"1..0 # SKIP {e}", flush=True)
        return SKIP
    if args.command == "cleanup":
        for name in stale_namespaces():
            subprocess.run(["ip", "netns", "del", name], timeout=20)
            log(f"natlab: deleted namespace {name}")
        tmp = tempfile.gettempdir()
        for entry in os.listdir(tmp):
            m = re.match(rf"{NS_PREFIX}(\d+)x\d+-", entry)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
                log(f"natlab: deleted {os.path.join(tmp, entry)}")
        return 0
    install_handlers()
    if args.command == "self-check":
        args.pipermesh, args.server = os.path.abspath(args.pipermesh), os.path.abspath(args.server)
    try:
        if args.command == "self-check":
            return self_check(args)
        return shell(args)
    except Skip as e:
        print(f"1..0 # SKIP {e}", flush=True)
        return SKIP
    except Interrupted as e:
        log(f"natlab: interrupted ({e}); cleaned up")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
