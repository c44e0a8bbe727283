# SPDX-License-Identifier: GPL-3.0-or-later
"""What the end-to-end Python tests share (python3 stdlib only): TAP lines, one
overall deadline that bounds every wait, long-running processes whose output
lines are collected, bounded command runs, a pipermesh-server on loopback and
a TCP data source.

The tests run as `python3 tests/test-X.py …`, so this file's directory is on
sys.path and `import pmtest` finds it. A test sets its budget first:

    pmtest.set_deadline(100)
    pmtest.set_env(DBUS_SESSION_BUS_ADDRESS="disabled:")

then reports with ok()/skip()/comment() and ends with finish().
"""
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time

# (passed, name) for every ok line printed so far.
tests = []
# Every Proc started, for stop_all().
procs = []

_deadline = time.monotonic() + 60
_env = dict(os.environ)


def set_deadline(seconds):
    """The whole test ends within @seconds from now: left() counts down to it."""
    global _deadline
    _deadline = time.monotonic() + seconds


def left(cap=30.0):
    """Seconds to wait at the most: @cap, or what is left before the deadline
    (never less than half a second)."""
    return max(0.5, min(cap, _deadline - time.monotonic()))


def set_env(**extra):
    """The environment of every process started here: this one's plus @extra."""
    global _env
    _env = dict(os.environ, **extra)


# --- TAP ---

def ok(cond, name):
    tests.append((bool(cond), name))
    print(("ok" if cond else "not ok") + f" {len(tests)} {name}", flush=True)
    return cond


def skip(name, reason):
    tests.append((True, name))
    print(f"ok {len(tests)} {name} # SKIP {reason}", flush=True)


def comment(text, lines=40):
    """The last @lines lines of @text as TAP comments."""
    for line in (text or "").splitlines()[-lines:]:
        print("# " + line, flush=True)


def sanitizer_check(what, text):
    """A failed check, with the report, if @text holds a sanitizer report."""
    if "runtime error" in (text or "") or "Sanitizer" in (text or ""):
        ok(False, f"{what}: no sanitizer report")
        comment(text)


def finish(summary=False):
    """Prints the plan (and with @summary a count line); the exit status."""
    failed = sum(1 for passed, _ in tests if not passed)
    print(f"1..{len(tests)}")
    if summary:
        print(f"# {len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


# --- processes ---

def run(argv, timeout=20):
    """Runs @argv to the end within min(@timeout, left()) s; a timeout is exit 124."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=min(timeout, left()),
                              env=_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, 124, e.stdout or "", e.stderr or "")


def run_cli(argv, timeout=20, what=None):
    """run(), showing the stderr of a crash (any exit but 0, 1 and 2) and, with
    @what, checking it for a sanitizer report."""
    out = run(argv, timeout=timeout)
    if out.returncode not in (0, 1, 2):
        comment(out.stderr)  # a crash, a sanitizer report or a timeout
    if what is not None:
        sanitizer_check(what, out.stderr)
    return out


class Proc:
    """A long-running process whose stdout and stderr lines are collected."""

    def __init__(self, argv, what="", *, stdin=subprocess.DEVNULL, extra_env=None):
        self.what = what
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
                                     text=True, env=dict(_env, **(extra_env or {})))
        self.lines = queue.Queue()
        self.out = []
        self.err = []
        procs.append(self)
        self._readers = [threading.Thread(target=self._read, args=(stream, store), daemon=True)
                         for stream, store in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, store):
        for line in stream:
            store.append(line)
            self.lines.put(line)

    def wait_line(self, pattern, timeout=20):
        """The first match of @pattern in a new output line, or None."""
        end = time.monotonic() + left(timeout)
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return None
                continue
            m = re.search(pattern, line)
            if m:
                return m
        return None

    def wait_stderr(self, pattern, timeout=10):
        """The first match of @pattern in all of stderr so far, or None."""
        end = time.monotonic() + left(timeout)
        while time.monotonic() < end:
            m = re.search(pattern, "".join(self.err))
            if m:
                return m
            time.sleep(0.1)
        return None

    def send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout=20):
        """The exit status, or None if it still runs after left(@timeout) s."""
        try:
            code = self.proc.wait(timeout=left(timeout))
        except subprocess.TimeoutExpired:
            return None
        self._drain()
        return code

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends @sig and waits @timeout s, then kills; the exit status, or None if killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            code = None
        self._drain()
        return code

    def _drain(self):
        # The process is gone: its last lines are read (bounded, in case a
        # child of its own still holds the pipes).
        for reader in self._readers:
            reader.join(timeout=5)

    def text(self):
        return "".join(self.out) + "".join(self.err)


def stop_all(timeout=5):
    """Stops every Proc started, checking each one's output for a sanitizer report."""
    for p in procs:
        p.stop(timeout=timeout)
        sanitizer_check(p.what, p.text())


# --- pipermesh-server ---

def admin(server, db, *args):
    """`SERVER --db DB ARGS`: its stdout; raises if it fails."""
    out = subprocess.run([server, "--db", db, *args], capture_output=True, text=True, timeout=20, env=_env)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr}")
    return out.stdout.strip()


def start_server(server, db, *serve_args, stun=0, timeout=15, extra_env=None):
    """`SERVER --db DB serve ARGS` as a Proc; waits (at most left(@timeout) s)
    until it has printed its API URL and @stun STUN addresses.
    Returns (Proc, URL or None, [STUN host:port, …])."""
    proc = Proc([server, "--db", db, "serve", *serve_args], "server", extra_env=extra_env)
    url, stuns = None, []
    end = time.monotonic() + left(timeout)
    while time.monotonic() < end and (url is None or len(stuns) < stun):
        m = proc.wait_line(r"API and relay on (https?://\S+)|STUN on udp://([\d.]+:\d+)",
                           timeout=end - time.monotonic())
        if m is None:
            break
        if m.group(1):
            url = m.group(1)
        else:
            stuns.append(m.group(2))
    return proc, url, stuns


def stop_server(proc, check="SIGTERM stops the server cleanly"):
    """SIGTERM, checked (as @check) to end it cleanly; its log is shown if not."""
    code = proc.stop(timeout=5)
    ok(code == 0, f"{check} (exit {code})")
    if code != 0:
        comment("".join(proc.err), lines=60)
    return code


# --- TCP data ---

class Source:
    """A TCP service on 127.0.0.1 that sends @data to every client, then closes."""

    def __init__(self, data):
        self.data = data
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn):
        try:
            conn.sendall(self.data)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def read_all(port, timeout):
    """Connects to 127.0.0.1:@port and reads until EOF: (bytes, error or None)."""
    data = bytearray()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return bytes(data), None
                data += chunk
            return bytes(data), "timed out"
    except OSError as e:
        return bytes(data), str(e)
