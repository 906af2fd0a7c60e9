# SPDX-License-Identifier: Apache-2.0
"""A configurable HTTP/1.1 upstream for the proxy resilience tests, run as its own
process: `python3 resil_upstream.py NAME` prints `listening on 127.0.0.1:PORT` on stdout
and serves until terminated.

Control requests (not recorded, not subject to the mode):
  GET /__control?mode=ok|fail&status=503&delay_ms=N   how to answer from now on
  GET /__stats    JSON {"count", "in_flight", "max_in_flight", "requests": [...]}
  GET /__reset    forgets the recorded requests and counters
Every other request is recorded (method, path, headers, body length and SHA-256), then
answered after `delay_ms` (and after ?ms=N when the path has /slow in it): mode ok -> 200 with the
upstream's name as body; mode fail -> `status` (default 503) with body "fail".
"""
import hashlib
import http.server
import json
import sys
import threading
import time
import urllib.parse


class State:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.mode = "ok"
        self.status = 503
        self.delay_ms = 0
        self.reset()

    def reset(self):
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: without TCP_NODELAY the second waits for
    # the proxy's delayed ACK of the first (40 ms a response).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", self.server.state.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _control(self, path, q):
        st = self.server.state
        with st.lock:
            if path == "/__control":
                st.mode = q.get("mode", [st.mode])[0]
                st.status = int(q.get("status", [st.status])[0])
                st.delay_ms = int(q.get("delay_ms", [st.delay_ms])[0])
                body = b"ok"
            elif path == "/__reset":
                st.reset()
                body = b"ok"
            else:
                body = json.dumps({"count": st.count, "in_flight": st.in_flight,
                                   "max_in_flight": st.max_in_flight,
                                   "requests": st.requests}).encode()
        self._send(200, body, "application/json")

    def _handle(self):
        st = self.server.state
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path.startswith("/__"):
            self._control(url.path, q)
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        with st.lock:
            st.count += 1
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            st.requests.append({"method": self.command, "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body_len": len(body),
                                "body_sha": hashlib.sha256(body).hexdigest()})
            mode, status, delay = st.mode, st.status, st.delay_ms
        try:
            if "/slow" in url.path:
                time.sleep(int(q.get("ms", ["100"])[0]) / 1000.0)
            if delay:
                time.sleep(delay / 1000.0)
            if mode == "fail":
                self._send(status, b"fail")
            else:
                self._send(200, st.name.encode())
        finally:
            with st.lock:
                st.in_flight -= 1

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(sys.argv[1] if len(sys.argv) > 1 else "upstream")
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
