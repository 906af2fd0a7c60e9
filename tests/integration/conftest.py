# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: start real trellis processes on ports picked at run time.

`trellis_proc(args)` starts `trellis <args> --listen 127.0.0.1:0`, waits for the
"listening on" log line and returns a handle with .port/.url. Teardown sends SIGTERM,
and fails the test if the process exited non-zero, logged an unexpected error line,
or printed a sanitizer report.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TRELLIS_BIN", os.path.join(ROOT, "build", "trellis"))
SANITIZED = os.environ.get("TRELLIS_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")
# Sanitizer builds are several times slower; tests scale their timing budgets by this.
SLOW = 4.0 if SANITIZED else 1.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


class Proc:
    def __init__(self, args, env=None, listen_flag=True, ready=r"listening on (\S+):(\d+)"):
        cmd = [BIN] + list(args)
        if listen_flag and "--listen" not in args:
            cmd += ["--listen", "127.0.0.1:0"]
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            full_env.update(env)
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=full_env, text=True, errors="replace")
        self.lines = []
        self.stdout = []
        self.allowed_errors = []
        self._ready = threading.Event()
        self._ready_re = re.compile(ready) if ready else None
        self.port = None
        self.host = "127.0.0.1"
        threading.Thread(target=self._pump_err, daemon=True).start()
        threading.Thread(target=self._pump_out, daemon=True).start()
        if self._ready_re is not None:
            if not self._ready.wait(10 * SLOW):
                self.p.kill()
                raise RuntimeError("trellis did not become ready: %s\n%s" %
                                   (" ".join(cmd), "\n".join(self.lines)))

    def _pump_err(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            if self._ready_re is not None and self.port is None:
                m = self._ready_re.search(line)
                if m:
                    self.host, self.port = m.group(1), int(m.group(2))
                    self._ready.set()

    def _pump_out(self):
        for line in self.p.stdout:
            self.stdout.append(line.rstrip("\n"))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def json_logs(self):
        out = []
        for line in self.lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("trellis did not exit within %ss of SIGTERM" % timeout)
        time.sleep(0.05)  # let the pump threads read the last lines
        return self.p.returncode

    def problems(self):
        """Sanitizer reports and unexpected error-level log lines."""
        bad = []
        for line in self.lines:
            if any(m in line for m in SANITIZER_MARKERS):
                bad.append(line)
            elif '"level":"error"' in line or '"level":"fatal"' in line:
                if not any(a in line for a in self.allowed_errors):
                    bad.append(line)
        return bad


@pytest.fixture
def trellis_proc():
    procs = []

    def start(args, **kw):
        p = Proc(args, **kw)
        procs.append(p)
        return p

    yield start
    failures = []
    for p in procs:
        rc = p.stop()
        if rc not in (0, -signal.SIGKILL) and not getattr(p, "expect_failure", False):
            failures.append("%s exited with %s" % (" ".join(p.cmd), rc))
        failures += p.problems()
    if failures:
        pytest.fail("process problems:\n" + "\n".join(failures[:20]))


def raw_request(port, data, timeout=2.0, chunks=None, delay=0.0):
    """Sends raw bytes (optionally split into `chunks` pieces with `delay` between
    them) and returns everything the server sent until it closed or went quiet."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    try:
        if chunks:
            step = max(1, len(data) // chunks)
            for i in range(0, len(data), step):
                s.sendall(data[i:i + step])
                if delay:
                    time.sleep(delay)
        else:
            s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def parse_responses(data):
    """Splits a byte stream into (status, headers, body) tuples (Content-Length or
    chunked framing); stops at the first incomplete response."""
    out = []
    while data:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            break
        head = data[:head_end].decode("latin1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for h in head[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        rest = data[head_end + 4:]
        if status == 100:
            data = rest
            continue
        if "content-length" in headers:
            n = int(headers["content-length"])
            body, data = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                line_end = rest.find(b"\r\n")
                size = int(rest[:line_end].split(b";")[0], 16)
                rest = rest[line_end + 2:]
                if size == 0:
                    rest = rest[rest.find(b"\r\n") + 2:]
                    break
                body += rest[:size]
                rest = rest[size + 2:]
            data = rest
        else:
            body, data = rest, b""
        out.append((status, headers, body))
    return out
