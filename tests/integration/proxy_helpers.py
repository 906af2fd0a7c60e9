# SPDX-License-Identifier: Apache-2.0
"""Helpers for the proxy tests.

- `PyUpstream`: a threaded HTTP/1.1 server whose behaviour the test picks per path:
  /slow?ms=N answers after N ms, /status/N answers with status N, /flaky/N answers 503
  to every Nth request, /hop sends hop-by-hop headers, /never never answers, /close
  answers and closes. Every request's head is recorded.
- `start_proxy()`: writes a gateway YAML and starts `trellis proxy` with an admin port.
- `get()`: one request over a fresh or given http.client connection.
"""
import http.client
import http.server
import os
import re
import socket
import threading
import time
import urllib.parse

from conftest import SLOW


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", self.server.up.name)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        up = self.server.up
        body = self._body()
        with up.lock:
            up.requests.append((self.command, self.path, dict(self.headers.items()), body))
            up.count += 1
            count = up.count
        if up.delay:
            time.sleep(up.delay)
        path = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(path.query)
        p = path.path
        if p.startswith("/slow"):
            time.sleep(int(q.get("ms", ["100"])[0]) / 1000.0)
            self._answer(200, up.name.encode())
        elif p.startswith("/status/"):
            self._answer(int(p.split("/")[2]), ("status from %s\n" % up.name).encode())
        elif p.startswith("/flaky/"):
            every = int(p.split("/")[2])
            if count % every == 1 or every == 1:
                self._answer(503, b"flaky\n")
            else:
                self._answer(200, up.name.encode())
        elif p.startswith("/hop"):
            self._answer(200, b"hop\n", [("Connection", "X-Secret, keep-alive"),
                                         ("X-Secret", "1"), ("Keep-Alive", "timeout=5"),
                                         ("Proxy-Authenticate", "Basic"),
                                         ("Upgrade", "h2c"), ("X-Kept", "yes")])
        elif p.startswith("/never"):
            time.sleep(30)
        elif p.startswith("/close"):
            self.close_connection = True
            self._answer(200, up.name.encode(), [("Connection", "close")])
        else:
            self._answer(200, up.name.encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def log_message(self, fmt, *args):
        pass


class PyUpstream:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.requests = []
        self.count = 0
        self.delay = 0.0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.up = self
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def echo(trellis_proc, body_size=None, echo_mode=False, extra=()):
    args = ["echo", "--workers", "1"]
    if body_size is not None:
        args += ["--body-size", str(body_size)]
    if echo_mode:
        args += ["--echo", "--max-body-bytes", "64MiB"]
    return trellis_proc(args + list(extra))


class ProxyHandle:
    def __init__(self, proc, path):
        self.proc = proc
        self.path = path
        self.port = proc.port
        m = None
        deadline = time.time() + 5 * SLOW
        while m is None and time.time() < deadline:
            for line in proc.lines:
                m = re.search(r"admin endpoint on 127\.0\.0\.1:(\d+)", line)
                if m:
                    break
            else:
                time.sleep(0.02)
        self.admin_port = int(m.group(1)) if m else None

    def write(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.path)

    def admin(self, path):
        return get(self.admin_port, path)

    def metric(self, name, **labels):
        _, _, body = self.admin("/metrics")
        total = 0
        found = False
        for line in body.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None


def start_proxy(trellis_proc, tmp_path, yaml_text, workers=1, extra=(), **kw):
    path = os.path.join(str(tmp_path), "gateway.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    proc = trellis_proc(["proxy", "--config", path, "--admin", "127.0.0.1:0", "--workers",
                         str(workers)] + list(extra), **kw)
    return ProxyHandle(proc, path)


def get(port, path="/", method="GET", body=None, headers=None, conn=None, timeout=10):
    """Returns (status, headers dict with lower-case names, body)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            conn.close()


def wait_for(cond, timeout=5.0, step=0.05):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


class RacyUpstream:
    """Answers the first request on each connection with a keep-alive response, then
    closes the connection as soon as the next request arrives, without answering: what
    an upstream whose idle timer fires just as a reused connection carries a request
    looks like from the proxy (the race behind intermittent 503s in some proxies)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.answered = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_head(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d:
                return None
            data += d
        return data

    def _serve(self, c):
        try:
            if self._read_head(c) is None:
                return
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nracy")
            with self.lock:
                self.answered += 1
            if self._read_head(c) is not None:
                with self.lock:
                    self.dropped += 1
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()
