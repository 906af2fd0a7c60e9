#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Memory held by idle keep-alive connections, and the slow-header (slowloris) cut-off.

Usage: bench/idle_connections.py [BUILD_DIR] [--connections N] [--header-timeout SECONDS]

  BUILD_DIR   directory holding the trellis binary (default: build); TRELLIS_BIN wins.

1. Starts `trellis echo --workers 1`, opens N (default 10000) keep-alive connections;
   each sends one complete request and reads the whole response, then stays idle.
   Prints the server's VmRSS (from /proc/PID/status) before and after, total and per
   connection. Fails if the server's VmRSS while holding them reaches 64 MiB (scaled
   up for N > 10000), if any answer is not 200, or if the server drops one early.
2. Starts `trellis echo --header-timeout 3s` and trickles a request head at one byte
   per second. The server must answer 408 and close within header-timeout + 1.5 s.

Exit status: 0 when both checks pass, 1 when one fails, 2 when the benchmark cannot run.
Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import errno
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

RSS_LIMIT_PER_10K = 64 * 1024 * 1024
SLACK_S = 1.5
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_connections.py\r\n\r\n"


class CannotRun(Exception):
    pass


def find_trellis(build_dir):
    path = os.environ.get("TRELLIS_BIN") or os.path.join(build_dir, "trellis")
    if not os.access(path, os.X_OK):
        raise CannotRun(f"trellis binary not found at {path} (pass the build dir or set TRELLIS_BIN)")
    return path


def raise_nofile(want):
    """Raises our soft fd limit towards `want` (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            raise CannotRun(f"cannot raise RLIMIT_NOFILE to {target}: {e}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """`trellis echo` on 127.0.0.1:0; the port is parsed from its "listening on" log line."""

    def __init__(self, binary, extra, nofile):
        fd, self.log_path = tempfile.mkstemp(prefix="trellis-idle-", suffix=".log")
        self.log = os.fdopen(fd, "w+b")
        argv = [binary, "echo", "--listen", "127.0.0.1:0", "--workers", "1", *extra]

        def limits():  # runs in the child before exec: same as `ulimit -n`
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, preexec_fn=limits)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", self.read_log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise CannotRun(f"trellis exited during startup:\n{self.read_log().decode(errors='replace')}")
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise CannotRun("trellis did not log its listening address")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def status(self, field):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
        raise CannotRun(f"{field} not in /proc/{self.pid}/status")

    def nfds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
        return self.proc.returncode


def read_response(sock):
    """Reads one Content-Length response; returns (status, body length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if not m:
        raise ConnectionError("response without Content-Length")
    want = int(m.group(1))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the response body")
        body += chunk
    return status, len(body)


def mib(n):
    return n / (1024 * 1024)


def idle_check(binary, n, batch):
    need = n + 64
    nofile = raise_nofile(need)
    if nofile < need:
        raise CannotRun(f"RLIMIT_NOFILE hard limit allows {nofile} fds, {need} needed for "
                        f"{n} connections (lower --connections, or raise the hard limit)")
    srv = Server(binary, ["--body-size", "2"], nofile)
    socks = []
    try:
        # Warm the server up (first request, lazy allocations) before the baseline.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(REQUEST)
            read_response(s)
        time.sleep(0.3)
        rss0, fds0 = srv.status("VmRSS"), srv.nfds()
        t0 = time.monotonic()
        bad = 0
        for start in range(0, n, batch):
            group = []
            for _ in range(min(batch, n - start)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(30)
                s.connect(("127.0.0.1", srv.port))
                s.sendall(REQUEST)
                group.append(s)
            for s in group:
                status, _ = read_response(s)
                bad += status != 200
            socks.extend(group)
        t_open = time.monotonic() - t0
        time.sleep(1.0)  # let the server settle: everything idle, nothing in flight
        # Any connection the server closed in the meantime would now be readable (EOF).
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        closed = len(poller.poll(0))
        rss1, hwm1, fds1 = srv.status("VmRSS"), srv.status("VmHWM"), srv.nfds()
        if not srv.alive():
            raise CannotRun("trellis died while holding the idle connections")
        for s in socks:
            s.close()
        socks = []
        time.sleep(1.0)
        rss2 = srv.status("VmRSS")
    finally:
        for s in socks:
            s.close()
        rc = srv.stop()

    grown = rss1 - rss0
    limit = RSS_LIMIT_PER_10K * max(1.0, n / 10000)
    print(f"== idle keep-alive connections: {n} (opened and answered in {t_open:.2f}s, batches of {batch})")
    print(f"   server fds:       {fds0} before, {fds1} while idle")
    print(f"   non-200 answers:  {bad}; closed by the server while idle: {closed}")
    print(f"   VmRSS before:     {mib(rss0):8.2f} MiB")
    print(f"   VmRSS idle:       {mib(rss1):8.2f} MiB   (VmHWM {mib(hwm1):.2f} MiB)")
    print(f"   growth:           {mib(grown):8.2f} MiB = {grown / n:.0f} bytes per connection")
    print(f"   VmRSS after close:{mib(rss2):8.2f} MiB")
    print(f"   server exit code after SIGTERM: {rc}")
    ok = rss1 < limit and bad == 0 and closed == 0
    print(f"   -> {'PASS' if ok else 'FAIL'}: VmRSS with {n} idle connections {mib(rss1):.2f} MiB,"
          f" limit < {mib(limit):.0f} MiB"
          + ("" if bad == 0 else f"; {bad} non-200 answers")
          + ("" if closed == 0 else f"; {closed} connections closed early"))
    return ok


def slow_header_check(binary, timeout_s):
    srv = Server(binary, ["--header-timeout", f"{timeout_s}s"], raise_nofile(1024))
    try:
        head = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slowloris: " + b"a" * 64
        # Alongside, a client that connects and never sends a byte (informational).
        silent = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        t0 = time.monotonic()
        poller = select.poll()
        poller.register(s, select.POLLIN)
        poller.register(silent, select.POLLIN)
        silent_closed_at, silent_answer = None, b""
        deadline = t0 + timeout_s + SLACK_S + 3  # keep watching a bit past the limit
        sent, answer, closed_at, send_error = 0, b"", None, None
        next_send = t0
        while time.monotonic() < deadline and closed_at is None:
            now = time.monotonic()
            if now >= next_send:
                next_send += 1.0
                if send_error is None and sent < len(head):
                    try:
                        s.send(head[sent:sent + 1])
                        sent += 1
                    except OSError as e:  # the server already closed (EPIPE/ECONNRESET)
                        send_error = errno.errorcode.get(e.errno, str(e))
            wait_s = max(0.0, min(next_send, deadline) - time.monotonic())
            ready = {fd for fd, _ in poller.poll(wait_s * 1000)}
            if silent_closed_at is None and silent.fileno() in ready:
                try:
                    chunk = silent.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                silent_answer += chunk
                if not chunk:
                    silent_closed_at = time.monotonic() - t0
                    poller.unregister(silent)
            if s.fileno() in ready:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                    send_error = send_error or "ECONNRESET"
                if chunk:
                    answer += chunk
                else:
                    closed_at = time.monotonic() - t0
        s.close()
        silent.close()
    finally:
        rc = srv.stop()

    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "(nothing)"
    body = answer.partition(b"\r\n\r\n")[2].decode(errors="replace")
    limit = timeout_s + SLACK_S
    print(f"== slow header (slowloris): one byte per second, --header-timeout {timeout_s}s")
    print(f"   bytes sent before the cut-off: {sent}" + (f" (send failed: {send_error})" if send_error else ""))
    print(f"   answer: {status_line}" + (f"  body: {body.strip()[:200]}" if body else ""))
    if closed_at is None:
        print(f"   connection still open after {timeout_s + SLACK_S + 3:.1f}s")
    else:
        print(f"   closed after {closed_at:.2f}s (limit {limit:.1f}s)")
    silent_status = silent_answer.split(b"\r\n", 1)[0].decode(errors="replace") or "no answer"
    print("   silent client (connects, sends nothing): "
          + (f"closed after {silent_closed_at:.2f}s, {silent_status}" if silent_closed_at is not None
             else "still open when the check ended"))
    print(f"   server exit code after SIGTERM: {rc}")
    ok = closed_at is not None and closed_at <= limit and status_line.startswith("HTTP/1.1 408")
    print(f"   -> {'PASS' if ok else 'FAIL'}")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build_dir", nargs="?", default="build")
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--batch", type=int, default=250, help="connections opened at a time")
    p.add_argument("--header-timeout", type=int, default=3, help="seconds")
    a = p.parse_args()
    try:
        binary = find_trellis(a.build_dir)
        ok_idle = idle_check(binary, a.connections, a.batch)
        print()
        ok_slow = slow_header_check(binary, a.header_timeout)
    except CannotRun as e:
        print(f"idle_connections: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"idle_connections: {e}", file=sys.stderr)
        return 2
    return 0 if ok_idle and ok_slow else 1


if __name__ == "__main__":
    sys.exit(main())
