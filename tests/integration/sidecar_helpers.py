# SPDX-License-Identifier: Apache-2.0
"""Helpers for the sidecar tests (test_sidecar*.py, pub/sub tests too).

- `start_server(trellis_proc, tmp_path)`: a `trellis server` with its own data dir.
- `start_sidecar(trellis_proc, server, app_id, app_port, ...)`: `trellis sidecar` on a
  free port (`--http-port 0`); the handle's .port/.url are the Dapr API.
- `AppServer`: a small threaded HTTP app on a free port. Every request is recorded
  (method, path, query, headers, body); `routes` maps a path to a function
  (handler, body) -> (status, headers dict, body bytes); anything else gets a JSON
  echo of the request. GET /healthz answers `health_status`.
- `write_components(dir, {name: yaml text})`.
- `wait_for(cond, timeout)`.
"""
import http.server
import json
import os
import socket
import threading
import time
import urllib.parse

from conftest import SLOW


def wait_for(cond, timeout=5.0, step=0.02):
    deadline = time.time() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("condition not met within %.1fs" % (timeout * SLOW))
        time.sleep(step)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(trellis_proc, tmp_path, name="data"):
    return trellis_proc(["server", "--data-dir", str(tmp_path / name), "--workers", "2"])


def start_sidecar(trellis_proc, server, app_id, app_port, components=None, health_path=None,
                  env=None, extra=(), register=True, **kw):
    args = ["sidecar", "--app-id", app_id, "--app-port", str(app_port), "--http-port", "0",
            "--server", server.url]
    if components is not None:
        args += ["--components", str(components)]
    if health_path is not None:
        args += ["--app-health-path", health_path]
    if not register:
        args += ["--no-register"]
    args += list(extra)
    return trellis_proc(args, env=env, listen_flag=False, **kw)


def write_components(directory, files):
    os.makedirs(str(directory), exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(str(directory), name), "w") as f:
            f.write(text)
    return directory


class _AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.app.lock:
            self.server.app.conns.add(self.connection)

    def finish(self):
        with self.server.app.lock:
            self.server.app.conns.discard(self.connection)
        super().finish()

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        app = self.server.app
        body = self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        rec = {
            "method": self.command,
            "path": parsed.path,
            "query": parsed.query,
            "target": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with app.lock:
            app.requests.append(rec)
        route = app.routes.get(parsed.path)
        if route is not None:
            status, headers, out = route(self, body)
        elif parsed.path == "/healthz":
            status, headers, out = app.health_status, {}, b"ok"
        else:
            status = 200
            headers = {"Content-Type": "application/json", "X-App": app.name}
            echo = dict(rec)
            echo["body"] = body.decode("latin1")
            echo["app"] = app.name
            out = json.dumps(echo).encode()
        if isinstance(out, str):
            out = out.encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status not in (204, 304) and self.command != "HEAD":
            self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def log_message(self, fmt, *args):
        pass


class AppServer:
    def __init__(self, name="app", port=0, routes=None, health_status=200):
        self.name = name
        self.routes = dict(routes or {})
        self.health_status = health_status
        self.requests = []
        self.conns = set()
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _AppHandler)
        self.httpd.daemon_threads = True
        self.httpd.app = self
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.stopped = False

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def last(self, path=None):
        with self.lock:
            for r in reversed(self.requests):
                if path is None or r["path"] == path:
                    return r
        return None

    def stop(self):
        """Stops listening and closes keep-alive connections, like a process exit."""
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()
            with self.lock:
                conns = list(self.conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
