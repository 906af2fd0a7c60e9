# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the registry tests (CLI, Consul client libraries, vmagent).

- `Upstream`: a tiny threaded HTTP server on a free loopback port, standing in for a
  service instance: /health answers with a status the test can change at run time,
  /metrics serves Prometheus text.
- `api()`: one request to a trellis server's HTTP API with the standard library.
- `wait_for()`: polls a condition with a bounded deadline.
"""
import http.server
import json
import threading
import time
import urllib.error
import urllib.request

from conftest import SLOW


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        up = self.server.upstream
        up.hits[self.path] = up.hits.get(self.path, 0) + 1
        if self.path.startswith("/health"):
            status, body = up.health_status, b"health\n"
            ctype = "text/plain"
        elif self.path.startswith("/metrics"):
            status, body = 200, up.metrics.encode()
            ctype = "text/plain; version=0.0.4"
        else:
            status, body, ctype = 404, b"not found\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Upstream:
    """A fake service instance on 127.0.0.1:<free port>."""

    def __init__(self, name, metrics=None, health_status=200):
        self.name = name
        self.health_status = health_status
        self.metrics = metrics if metrics is not None else (
            '# TYPE up_test gauge\nup_test{inst="%s"} 1\n' % name)
        self.hits = {}
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.upstream = self
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        self.stopped = False

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def health_url(self):
        return "http://127.0.0.1:%d/health" % self.port

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()


def api(port, method, path, body=None, timeout=10):
    """Returns (status, headers, body bytes). `body` may be bytes, str or a JSON value."""
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api_json(port, method, path, body=None, timeout=10):
    status, _, raw = api(port, method, path, body, timeout)
    assert status == 200, "%s %s -> %d %r" % (method, path, status, raw)
    return json.loads(raw) if raw.strip() else None


def wait_for(cond, timeout, what, interval=0.1):
    """Calls cond() until it returns something truthy; fails after `timeout` seconds
    (scaled for sanitizer builds) naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last: %r" %
                                 (timeout * SLOW, what, last))
        time.sleep(interval)
