# SPDX-License-Identifier: Apache-2.0
"""`trellis proxy`: forwarding, headers, load balancing, discovery, reload, drain and
upstream failures, with real upstream processes (`trellis echo`, small Python servers,
`trellis server` as the registry)."""
import collections
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BIN, SLOW, parse_responses, raw_request
from proxy_helpers import (PyUpstream, RacyUpstream, echo, free_port, get, start_proxy,
                           wait_for)


def one_line(trellis_proc, addrs, workers=1, extra=()):
    return trellis_proc(["proxy", "--to", ",".join(addrs), "--workers", str(workers)] +
                        list(extra))


def body_sizes(port, n, path="/", conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
    counts = collections.Counter()
    for _ in range(n):
        status, _, body = get(port, path, conn=c)
        assert status == 200
        counts[len(body)] += 1
    if conn is None:
        c.close()
    return counts


# ---------------------------------------------------------------- forwarding


def test_one_line_round_robin_keepalive(trellis_proc):
    ups = [echo(trellis_proc, body_size=s) for s in (11, 12, 13)]
    p = one_line(trellis_proc, ["127.0.0.1:%d" % u.port for u in ups])
    counts = body_sizes(p.port, 300)
    assert counts == {11: 100, 12: 100, 13: 100}


def test_methods_and_bodies(trellis_proc):
    up = echo(trellis_proc, echo_mode=True)
    p = one_line(trellis_proc, ["127.0.0.1:%d" % up.port], extra=["--max-body-bytes", "64MiB"])
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        body = ("payload for %s" % method).encode() if method in ("POST", "PUT", "PATCH") else None
        status, _, data = get(p.port, "/m/%s?q=1&r=%%20x" % method, method=method, body=body,
                              conn=conn)
        assert status == 200
        head, _, echoed = data.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == ("%s /m/%s?q=1&r=%%20x HTTP/1.1" % (method, method)).encode()
        assert echoed == (body or b"")
    status, headers, data = get(p.port, "/head", method="HEAD", conn=conn)
    assert status == 200 and data == b""
    assert int(headers["content-length"]) > 0
    # A chunked request body arrives whole (the proxy re-frames it).
    raw = (b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    out = parse_responses(raw_request(p.port, raw, timeout=1.0 * SLOW))
    assert out and out[0][0] == 200
    assert out[0][2].endswith(b"\r\n\r\nhello world")


def read_response(sock):
    """Reads one response (Content-Length or chunked) from a blocking socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        assert d, "connection closed before the response head"
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
               for l in lines[1:]}
    status = int(lines[0].split()[1])
    chunks = [rest]
    if "content-length" in headers:
        need = int(headers["content-length"]) - len(rest)
        while need > 0:
            d = sock.recv(min(need, 1 << 20))
            assert d, "connection closed inside the body"
            chunks.append(d)
            need -= len(d)
        return status, headers, b"".join(chunks)
    assert headers.get("transfer-encoding") == "chunked"
    data = rest
    body = []
    while True:
        while b"\r\n" not in data:
            d = sock.recv(1 << 20)
            assert d
            data += d
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        while len(data) < size + 2:
            d = sock.recv(1 << 20)
            assert d
            data += d
        if size == 0:
            return status, headers, b"".join(body)
        body.append(data[:size])
        data = data[size + 2:]


@pytest.mark.parametrize("chunked", [False, True])
def test_16mib_streamed_both_ways(trellis_proc, chunked):
    up = echo(trellis_proc, echo_mode=True)
    p = one_line(trellis_proc, ["127.0.0.1:%d" % up.port], extra=["--max-body-bytes", "64MiB"])
    payload = os.urandom(16 * 1024 * 1024)
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(60 * SLOW)

    def send():
        if chunked:
            s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(payload), 1 << 20):
                piece = payload[i:i + (1 << 20)]
                s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        else:
            s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(payload))
            s.sendall(payload)

    # The echo upstream streams the body back while it arrives: read while sending.
    t = threading.Thread(target=send)
    t.start()
    status, headers, data = read_response(s)
    t.join()
    assert status == 200
    head, _, echoed = data.partition(b"\r\n\r\n")
    assert len(echoed) == len(payload)
    assert echoed == payload
    # The connection stays usable.
    s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s)[0] == 200
    s.close()
    assert p.rss_kib() < 64 * 1024


def test_large_bodies_sent_without_copy_slow_reader(trellis_proc):
    """Content-Length bodies of 4 KiB and more are sent from the upstream's read buffer
    together with the head (no copy); a client that reads slowly fills the socket, so the
    rest waits in the output buffer. Every byte must arrive once, in order, and the
    keep-alive connection must stay in step for the next response."""
    payloads = [os.urandom(n) for n in (4096, 700 * 1024, 5 * 1024 * 1024 + 7, 99)]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)

    def upstream():
        c, _ = lsock.accept()
        with c:
            buf = b""
            for body in payloads:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf.split(b"\r\n\r\n", 1)[1]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                # In pieces of different sizes, so the proxy's reads split the body.
                for i in range(0, len(body), 300000):
                    c.sendall(body[i:i + 300000])

    t = threading.Thread(target=upstream, daemon=True)
    t.start()
    p = one_line(trellis_proc, ["127.0.0.1:%d" % lsock.getsockname()[1]])
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(30 * SLOW)
    for n, body in enumerate(payloads):
        s.sendall(b"GET /b%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head, _, data = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert (b"content-length: %d" % len(body)) in head.lower()
        slow = n == 2
        while len(data) < len(body):
            if slow and len(data) < 1024 * 1024:
                time.sleep(0.002)  # let the proxy's socket fill up
            d = s.recv(16384 if slow else 1 << 20)
            assert d
            data += d
        assert len(data) == len(body)
        assert data == body
    s.close()
    t.join(timeout=5)
    lsock.close()


def test_pipelined_requests_answered_in_order(trellis_proc):
    up = echo(trellis_proc, echo_mode=True)
    p = one_line(trellis_proc, ["127.0.0.1:%d" % up.port])
    raw = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    raw += b"POST /last HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    out = parse_responses(raw_request(p.port, raw, timeout=2.0 * SLOW))
    assert [r[0] for r in out] == [200] * 6
    for i in range(5):
        assert out[i][2].startswith(b"GET /p%d HTTP/1.1" % i)
    assert out[5][2].startswith(b"POST /last") and out[5][2].endswith(b"abc")


def test_request_headers(trellis_proc):
    up = echo(trellis_proc, echo_mode=True)
    p = one_line(trellis_proc, ["127.0.0.1:%d" % up.port])
    raw = (b"GET /h HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Drop\r\n"
           b"X-Drop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n"
           b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n"
           b"Trailer: X-T\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
           b"Via: 1.0 edge\r\nX-Keep: me\r\n\r\n")
    out = parse_responses(raw_request(p.port, raw, timeout=1.0 * SLOW))
    assert out[0][0] == 200
    head = out[0][2].split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")[1:]
    names = [l.split(":", 1)[0].lower() for l in lines]
    fields = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines}
    for hop in ("connection", "x-drop", "keep-alive", "te", "upgrade", "proxy-authorization",
                "proxy-connection", "trailer"):
        assert hop not in names, hop
    assert fields["host"] == "example.test"
    assert fields["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert fields["x-forwarded-proto"] == "http"
    assert fields["via"] == "1.0 edge, 1.1 trellis"
    assert fields["x-keep"] == "me"
    rid = fields["x-request-id"]
    assert len(rid) == 36 and rid[14] == "4"
    # The response carries the same id; a client's own id is kept.
    assert out[0][1]["x-request-id"] == rid
    status, headers, data = get(p.port, "/h", headers={"X-Request-Id": "abc-123"})
    assert b"X-Request-Id: abc-123" in data
    assert data.count(b"X-Request-Id") == 1


def test_response_headers(trellis_proc):
    up = PyUpstream("py")
    try:
        p = one_line(trellis_proc, [up.addr])
        status, headers, body = get(p.port, "/hop")
        assert status == 200 and body == b"hop\n"
        for hop in ("x-secret", "keep-alive", "proxy-authenticate", "upgrade"):
            assert hop not in headers, hop
        assert headers["x-kept"] == "yes"
        assert headers["via"] == "1.1 trellis"
        assert headers["x-upstream"] == "py"
    finally:
        up.stop()


# ---------------------------------------------------------------- balancers


def test_weighted_round_robin(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=5)
    b = echo(trellis_proc, body_size=6)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: web
    endpoints: [127.0.0.1:%d, {address: 127.0.0.1:%d, weight: 3}]
routes:
  - match: {prefix: /}
    cluster: web
""" % (a.port, b.port))
    counts = body_sizes(p.port, 400)
    assert counts == {5: 100, 6: 300}


def test_random_honours_weights(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=5)
    b = echo(trellis_proc, body_size=6)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: web
    lb: random
    endpoints: [{address: 127.0.0.1:%d, weight: 1}, {address: 127.0.0.1:%d, weight: 4}]
routes:
  - cluster: web
""" % (a.port, b.port))
    counts = body_sizes(p.port, 1000)
    assert 120 <= counts[5] <= 280, counts


def test_least_request_prefers_idle_endpoint(trellis_proc, tmp_path):
    slow = PyUpstream("slow")
    fast = PyUpstream("fast")
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: pool
    lb: least_request
    endpoints: [%s, %s]
routes:
  - match: {prefix: /work}
    cluster: pool
""" % (slow.addr, fast.addr))
        # "slow" takes 200 ms per request: requests in flight pile up there.
        hits = collections.Counter()
        lock = threading.Lock()

        def worker():
            for _ in range(15):
                status, headers, body = get(p.port, "/work")
                with lock:
                    hits[body.decode()] += 1

        slow.delay = 0.2
        ts = [threading.Thread(target=worker) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert hits["fast"] > 3 * hits["slow"], hits
    finally:
        slow.stop()
        fast.stop()


RING_YAML = """
clusters:
  - name: sticky
    lb: ring_hash
    hash_on: header:x-user-id
    endpoints: [%s]
routes:
  - cluster: sticky
"""


def test_ring_hash_sticky_and_stable(trellis_proc, tmp_path):
    ups = [echo(trellis_proc, body_size=s) for s in (21, 22, 23)]
    addrs = ["127.0.0.1:%d" % u.port for u in ups]
    p = start_proxy(trellis_proc, tmp_path, RING_YAML % ", ".join(addrs), workers=2)
    users = ["user-%d" % i for i in range(60)]
    first = {}
    for u in users:
        seen = {len(get(p.port, "/", headers={"X-User-Id": u})[2]) for _ in range(3)}
        assert len(seen) == 1, (u, seen)
        first[u] = seen.pop()
    assert set(first.values()) == {21, 22, 23}
    # Without the header requests still succeed (random endpoint).
    assert get(p.port, "/")[0] == 200
    # Remove the third endpoint: only its users move.
    p.write(RING_YAML % ", ".join(addrs[:2]))
    p.proc.signal(signal.SIGHUP)
    assert wait_for(lambda: p.metric("trellis_proxy_config_generation") == 2)
    moved = 0
    for u in users:
        now = len(get(p.port, "/", headers={"X-User-Id": u})[2])
        if first[u] != 23:
            assert now == first[u], u
        else:
            assert now in (21, 22)
            moved += 1
    assert moved > 0


def test_ring_hash_cookie(trellis_proc, tmp_path):
    ups = [echo(trellis_proc, body_size=s) for s in (31, 32)]
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: sticky
    lb: ring_hash
    hash_on: cookie:session
    endpoints: [127.0.0.1:%d, 127.0.0.1:%d]
routes:
  - cluster: sticky
""" % (ups[0].port, ups[1].port))
    seen = collections.defaultdict(set)
    for i in range(40):
        for _ in range(2):
            cookie = "a=1; session=s%d; b=2" % i
            seen[i].add(len(get(p.port, "/", headers={"Cookie": cookie})[2]))
    assert all(len(v) == 1 for v in seen.values())
    assert {v.copy().pop() for v in seen.values()} == {31, 32}


def test_split_and_header_routing(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=41)
    b = echo(trellis_proc, body_size=42)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: v1, endpoints: [127.0.0.1:%d]}
  - {name: v2, endpoints: [127.0.0.1:%d]}
routes:
  - match: {prefix: /orders, headers: {x-canary: "1"}}
    cluster: v2
  - match: {prefix: /orders, methods: [GET]}
    split: [{cluster: v2, weight: 10}, {cluster: v1, weight: 90}]
  - match: {prefix: /legacy}
    cluster: v1
    rewrite: {prefix: /api}
""" % (a.port, b.port))
    assert len(get(p.port, "/orders/1", headers={"x-canary": "1"})[2]) == 42
    counts = body_sizes(p.port, 2000, "/orders/x")
    assert abs(counts[42] / 2000.0 - 0.10) < 0.03, counts
    status, _, body = get(p.port, "/orders", method="POST", body=b"x")
    assert status == 404 and b"no route matches POST /orders" in body
    assert json.loads(body)["error"]["code"] == "not_found"


def test_rewrite_prefix(trellis_proc, tmp_path):
    up = echo(trellis_proc, echo_mode=True)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: api, endpoints: [127.0.0.1:%d]}
routes:
  - match: {prefix: /legacy}
    cluster: api
    rewrite: {prefix: /api/v2}
  - match: {prefix: /strip/}
    cluster: api
    rewrite: {prefix: /}
""" % up.port)
    assert get(p.port, "/legacy/orders?id=7")[2].startswith(b"GET /api/v2/orders?id=7 HTTP/1.1")
    assert get(p.port, "/strip/x/y")[2].startswith(b"GET /x/y HTTP/1.1")
    assert get(p.port, "/legacy")[2].startswith(b"GET /api/v2 HTTP/1.1")


# ---------------------------------------------------------------- upstream failures


def test_upstream_down_is_502_json(trellis_proc, tmp_path):
    dead = free_port()
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: gone, endpoints: [127.0.0.1:%d]}
routes:
  - cluster: gone
""" % dead)
    status, headers, body = get(p.port, "/x")
    assert status == 502
    assert headers["content-type"] == "application/json"
    err = json.loads(body)["error"]
    assert err["code"] == "bad_gateway"
    assert err["cluster"] == "gone"
    assert err["cause"] == "connect_failure"
    assert err["endpoint"] == "127.0.0.1:%d" % dead
    assert "gone" in err["message"]
    assert p.metric("trellis_proxy_upstream_connect_failures_total", cluster="gone") == 2
    assert p.metric("trellis_proxy_responses_total", route="/", **{"class": "5xx"}) == 1


def test_connect_failure_is_retried_on_another_endpoint(trellis_proc):
    up = echo(trellis_proc, body_size=7)
    dead = free_port()
    p = one_line(trellis_proc, ["127.0.0.1:%d" % dead, "127.0.0.1:%d" % up.port])
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
    for _ in range(50):
        status, _, body = get(p.port, "/", conn=conn)
        assert status == 200 and body == b"x" * 7
    # A POST with a body is retried too: nothing was sent on a failed connect.
    for _ in range(10):
        status, _, body = get(p.port, "/", method="POST", body=b"y" * 1000, conn=conn)
        assert status == 200


def test_upstream_timeout_is_504(trellis_proc, tmp_path):
    up = PyUpstream("stuck")
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: stuck, endpoints: [%s], timeout: 300ms}
routes:
  - cluster: stuck
""" % up.addr)
        t0 = time.time()
        status, _, body = get(p.port, "/never")
        took = time.time() - t0
        assert status == 504
        err = json.loads(body)["error"]
        assert err["code"] == "gateway_timeout" and err["cause"] == "timeout"
        assert err["cluster"] == "stuck"
        assert 0.25 < took < 2.0 * SLOW
        assert get(p.port, "/fast")[0] == 200
    finally:
        up.stop()


def test_retry_on_503_for_idempotent_requests(trellis_proc, tmp_path):
    a = PyUpstream("a")
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: flaky
    endpoints: [%s]
    retry: {attempts: 2, on: [503], per_try_timeout: 1s}
routes:
  - cluster: flaky
""" % a.addr)
        # /flaky/2 answers 503 to every other request: one retry always gets a 200.
        for _ in range(20):
            assert get(p.port, "/flaky/2")[0] == 200
        assert p.metric("trellis_proxy_retries_total", cluster="flaky") >= 10
        # POST is not idempotent: its 503 goes to the client.
        statuses = {get(p.port, "/flaky/2", method="POST", body=b"x")[0] for _ in range(4)}
        assert 503 in statuses
        # /status/503 keeps failing: 1 + 2 attempts, then the 503 is passed through.
        before = a.count
        assert get(p.port, "/status/503")[0] == 503
        assert a.count - before == 3
    finally:
        a.stop()


def test_per_try_timeout_retries_idempotent(trellis_proc, tmp_path):
    slow = PyUpstream("slow")
    fast = PyUpstream("fast")
    slow.delay = 2.0
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: mixed
    endpoints: [%s, %s]
    timeout: 5s
    retry: {attempts: 1, on: [gateway_error], per_try_timeout: 200ms}
routes:
  - cluster: mixed
""" % (slow.addr, fast.addr))
        for _ in range(6):
            status, headers, body = get(p.port, "/")
            assert status == 200 and body == b"fast"
    finally:
        slow.stop()
        fast.stop()


def test_client_going_away_cancels_upstream(trellis_proc, tmp_path):
    up = PyUpstream("slow")
    up.delay = 1.0
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: slow, endpoints: [%s]}
routes:
  - cluster: slow
""" % up.addr)
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 1)
        # An abortive close (RST). A FIN after a complete request is a half-close, which
        # HTTP allows: the engine then still answers (see docs/proxy.md).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 0,
                        timeout=0.5)
        assert p.metric("trellis_proxy_responses_total", route="/", **{"class": "none"}) == 1
        _, _, body = p.admin("/clusters")
        assert json.loads(body)["clusters"][0]["in_flight"] == 0
    finally:
        up.stop()


def test_upstream_dies_mid_response_truncates(trellis_proc, tmp_path):
    """A response cut short upstream must not look complete to the client."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    port = ls.getsockname()[1]

    def serve():
        for _ in range(2):
            c, _ = ls.accept()
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.2)
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = one_line(trellis_proc, ["127.0.0.1:%d" % port])
    raw = raw_request(p.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2.0 * SLOW)
    assert b"hello" in raw
    assert not raw.endswith(b"0\r\n\r\n")
    ls.close()


# ---------------------------------------------------------------- keep-alive race


def test_upstream_closing_idle_keepalives_causes_no_errors(trellis_proc):
    # The upstream closes keep-alive connections idle for ~100-200 ms; requests spaced
    # around that interval race the close.
    ups = [echo(trellis_proc, body_size=3, extra=["--idle-timeout", "100ms"]) for _ in range(2)]
    p = one_line(trellis_proc, ["127.0.0.1:%d" % u.port for u in ups], workers=2)
    errors = []
    done = collections.Counter()

    def client(seed):
        import random
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
        for _ in range(250):
            try:
                status, _, body = get(p.port, "/", conn=conn)
                if status != 200 or body != b"xxx":
                    errors.append((status, body[:100]))
                done[seed] += 1
            except Exception as e:  # noqa: BLE001 - any client-visible failure counts
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
            time.sleep(rnd.choice((0.0, 0.09, 0.1, 0.11, 0.15, 0.19, 0.2, 0.21)))
        conn.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(done.values()) == 2000
    assert errors == []


def test_upstream_closing_reused_connection_on_request_is_retried(trellis_proc, tmp_path):
    # Deterministic version of the race: every reused connection is closed by the
    # upstream when the request arrives. Idempotent requests are replayed on a fresh
    # connection by the HTTP client, so the client never sees it.
    up = RacyUpstream()
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: racy, endpoints: [%s]}
routes:
  - cluster: racy
""" % up.addr)
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
        for _ in range(200):
            status, _, body = get(p.port, "/", conn=conn)
            assert status == 200 and body == b"racy"
        assert up.dropped >= 150
        assert wait_for(lambda: p.metric("trellis_proxy_upstream_stale_retries_total") >= 150,
                        timeout=3)
    finally:
        up.stop()


# ---------------------------------------------------------------- admin


def test_admin_endpoints(trellis_proc, tmp_path):
    up = echo(trellis_proc, body_size=4)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: web
    endpoints: [127.0.0.1:%d, {address: 127.0.0.1:%d, weight: 2}]
routes:
  - name: everything
    cluster: web
""" % (up.port, up.port))
    for _ in range(9):
        assert get(p.port, "/a")[0] == 200
    status, headers, body = p.admin("/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    status, headers, body = p.admin("/clusters")
    assert status == 200
    c = json.loads(body)["clusters"][0]
    assert c["name"] == "web" and c["lb"] == "round_robin" and c["source"] == "static"
    assert [e["weight"] for e in c["endpoints"]] == [1, 2]
    assert [e["requests"] for e in c["endpoints"]] == [3, 6]
    assert all(e["health"] == "healthy" and e["in_flight"] == 0 for e in c["endpoints"])
    status, headers, body = p.admin("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    for name in ("trellis_proxy_requests_total", "trellis_proxy_responses_total",
                 "trellis_proxy_request_duration_seconds_bucket",
                 "trellis_proxy_upstream_connect_failures_total",
                 "trellis_proxy_active_connections", "trellis_proxy_retries_total",
                 "trellis_proxy_cluster_requests_total"):
        assert "# TYPE %s" % name.replace("_bucket", "") in text, name
    assert p.metric("trellis_proxy_requests_total", route="everything") == 9
    assert p.metric("trellis_proxy_responses_total", route="everything", **{"class": "2xx"}) == 9
    assert p.metric("trellis_proxy_request_duration_seconds_count", route="everything") == 9
    assert p.metric("trellis_proxy_request_duration_seconds_bucket", route="everything",
                    le="+Inf") == 9
    assert p.metric("trellis_proxy_cluster_requests_total", cluster="web") == 9
    assert get(p.admin_port, "/nope")[0] == 404


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize("yaml_text,expect", [
    ("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    timout: 2s\nroutes:\n"
     "  - cluster: a\n",
     'gateway.yaml:4:5: unknown key "timout" in cluster section; did you mean "timeout"?'),
    ("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    timeout: fast\nroutes:\n"
     "  - cluster: a\n",
     "gateway.yaml:4:14: expected a duration"),
    ("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\nroutes:\n  - cluster: orders\n",
     'gateway.yaml:5:14: route refers to unknown cluster "orders"'),
    ("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\nroutes:\n"
     "  - split: [{cluster: a, weight: 1}, {cluster: b, weight: 1}]\n",
     'split refers to unknown cluster "b"'),
    ("clusters:\n  - name: a\n    service: web\nroutes:\n  - cluster: a\n",
     'cluster "a" uses service: but no registry: is configured'),
    ("clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    lb: fastest\nroutes:\n"
     "  - cluster: a\n", "lb: expected round_robin, least_request, random or ring_hash"),
    ("listn: 127.0.0.1:1\nclusters: []\n", 'unknown key "listn"; did you mean "listen"?'),
])
def test_config_errors_exit_2(tmp_path, yaml_text, expect):
    path = os.path.join(str(tmp_path), "gateway.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    r = subprocess.run([BIN, "proxy", "--config", path, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=10 * SLOW)
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr, r.stderr
    assert path + ":" in r.stderr or "gateway.yaml:" in r.stderr


def test_cli_errors():
    r = subprocess.run([BIN, "proxy", "--listen", "127.0.0.1:0"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--config" in r.stderr
    r = subprocess.run([BIN, "proxy", "--listen", "127.0.0.1:0", "--to", "nowhere"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nowhere" in r.stderr


# ---------------------------------------------------------------- registry discovery


def register(server_port, sid, port):
    body = json.dumps({"ID": sid, "Name": "product", "Address": "127.0.0.1",
                       "Port": port}).encode()
    status, _, _ = get(server_port, "/v1/agent/service/register", method="PUT", body=body)
    assert status == 200


def deregister(server_port, sid):
    status, _, _ = get(server_port, "/v1/agent/service/deregister/" + sid, method="PUT")
    assert status == 200


def test_registry_endpoints_follow_live(trellis_proc, tmp_path):
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    a = echo(trellis_proc, body_size=51)
    b = echo(trellis_proc, body_size=52)
    register(srv.port, "product-1", a.port)
    p = start_proxy(trellis_proc, tmp_path, """
registry: http://127.0.0.1:%d
clusters:
  - name: products
    service: product
    lb: least_request
    timeout: 2s
routes:
  - match: {prefix: /products, methods: [GET]}
    cluster: products
""" % srv.port, workers=2)
    assert wait_for(lambda: p.admin("/ready")[0] == 200)
    assert body_sizes(p.port, 20, "/products") == {51: 20}
    # A second instance appears: traffic reaches it without a reload.
    register(srv.port, "product-2", b.port)
    assert wait_for(lambda: len(body_sizes(p.port, 20, "/products")) == 2)
    # The first one goes away: only the second gets requests, with no client error.
    deregister(srv.port, "product-1")
    assert wait_for(lambda: body_sizes(p.port, 10, "/products") == {52: 10})
    _, _, body = p.admin("/clusters")
    c = json.loads(body)["clusters"][0]
    assert c["source"] == "registry" and c["service"] == "product"
    assert c["registry"]["synced"] is True
    assert [e["address"] for e in c["endpoints"]] == ["127.0.0.1:%d" % b.port]
    # Nobody left: 503 naming the cluster.
    deregister(srv.port, "product-2")
    assert wait_for(lambda: get(p.port, "/products")[0] == 503)
    err = json.loads(get(p.port, "/products")[2])["error"]
    assert err["cluster"] == "products" and err["cause"] == "no_endpoint"


def test_registry_in_flight_request_finishes_after_deregistration(trellis_proc, tmp_path):
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    up = PyUpstream("slowpoke")
    up.delay = 1.0
    try:
        register(srv.port, "product-1", up.port)
        p = start_proxy(trellis_proc, tmp_path, """
registry: http://127.0.0.1:%d
clusters:
  - {name: products, service: product}
routes:
  - cluster: products
""" % srv.port)
        assert wait_for(lambda: p.admin("/ready")[0] == 200)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=get(p.port, "/")))
        t.start()
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 1)
        deregister(srv.port, "product-1")
        assert wait_for(lambda: p.metric("trellis_proxy_cluster_endpoints",
                                         cluster="products") == 0)
        t.join()
        assert result["r"][0] == 200 and result["r"][2] == b"slowpoke"
    finally:
        up.stop()


# ---------------------------------------------------------------- reload and drain


class Load:
    """Closed-loop load from a few keep-alive clients; records every failure."""

    def __init__(self, port, paths, clients=4):
        self.port = port
        self.paths = paths
        self.stop_flag = False
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, i):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
        n = 0
        while not self.stop_flag:
            path = self.paths[n % len(self.paths)]
            n += 1
            try:
                status, _, _ = get(self.port, path, conn=conn)
                with self.lock:
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failures.append((path, status))
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    if len(self.failures) < 1000:
                        self.failures.append((path, repr(e)))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
                time.sleep(0.01)  # a proxy that went away refuses at once: do not spin
        conn.close()

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join()


RELOAD_V1 = """
clusters:
  - {name: a, endpoints: [127.0.0.1:%d]}
routes:
  - match: {prefix: /a}
    cluster: a
"""

RELOAD_V2 = """
clusters:
  - {name: a, endpoints: [127.0.0.1:%d]}
  - {name: b, endpoints: [127.0.0.1:%d]}
routes:
  - match: {prefix: /a}
    cluster: a
  - match: {prefix: /b}
    cluster: b
"""


def test_sighup_reload_under_load(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=61)
    b = echo(trellis_proc, body_size=62)
    p = start_proxy(trellis_proc, tmp_path, RELOAD_V1 % a.port, workers=2)
    assert get(p.port, "/b")[0] == 404
    load = Load(p.port, ["/a"])
    time.sleep(0.3)
    p.write(RELOAD_V2 % (a.port, b.port))
    p.proc.signal(signal.SIGHUP)
    assert wait_for(lambda: get(p.port, "/b")[0] == 200)
    time.sleep(0.3)
    load.stop()
    assert load.failures == []
    assert load.ok > 50
    assert len(get(p.port, "/b")[2]) == 62
    assert p.metric("trellis_proxy_config_reloads_total", result="ok") == 1
    # Counters of a kept route survive the reload.
    assert p.metric("trellis_proxy_requests_total", route="/a") >= load.ok


def test_sighup_invalid_config_keeps_serving(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=61)
    p = start_proxy(trellis_proc, tmp_path, RELOAD_V1 % a.port, workers=2)
    p.proc.allowed_errors.append("reload rejected")
    load = Load(p.port, ["/a"])
    p.write(RELOAD_V1 % a.port + "  - match: {prefix: /c}\n    cluster: missing\n")
    p.proc.signal(signal.SIGHUP)
    assert wait_for(lambda: any("reload rejected" in l for l in p.proc.lines))
    time.sleep(0.3)
    load.stop()
    assert load.failures == []
    line = [l for l in p.proc.lines if "reload rejected" in l][0]
    assert 'gateway.yaml:8:14: route refers to unknown cluster \\"missing\\"' in line, line
    assert p.metric("trellis_proxy_config_reloads_total", result="rejected") == 1
    assert p.metric("trellis_proxy_config_generation") == 1
    assert get(p.port, "/a")[0] == 200


def test_sigterm_drains_in_flight_requests(trellis_proc, tmp_path):
    up = PyUpstream("slow")
    up.delay = 0.5
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: slow, endpoints: [%s]}
routes:
  - cluster: slow
""" % up.addr, workers=2)
        results = []
        lock = threading.Lock()

        def one():
            try:
                r = get(p.port, "/")
                with lock:
                    results.append(r[0])
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(repr(e))

        ts = [threading.Thread(target=one) for _ in range(20)]
        for t in ts:
            t.start()
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 20)
        p.proc.signal(signal.SIGTERM)
        for t in ts:
            t.join()
        assert results == [200] * 20
        assert p.proc.p.wait(5 * SLOW) == 0
        # New connections are refused once drained.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p.port), timeout=1).recv(1)
    finally:
        up.stop()


def test_sigterm_under_keepalive_load_has_no_failed_request(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=61)
    p = start_proxy(trellis_proc, tmp_path, RELOAD_V1 % a.port, workers=2)
    load = Load(p.port, ["/a"], clients=8)
    time.sleep(0.5)
    p.proc.signal(signal.SIGTERM)
    assert p.proc.p.wait(10 * SLOW) == 0
    load.stop()
    # Requests answered before the drain all succeeded; after it, clients may only see
    # the connection close (never a 5xx or a truncated response).
    bad = [f for f in load.failures if not isinstance(f[1], str)]
    assert bad == []
    assert all("RemoteDisconnected" in f[1] or "ConnectionRefused" in f[1] or
               "ConnectionReset" in f[1] or "BrokenPipe" in f[1] for f in load.failures)
    assert load.ok > 100


def test_idempotency_header_lets_post_retry(trellis_proc, tmp_path):
    """retry.idempotency_header: a POST carrying the header is retried like a GET (the
    upstream dedupes by its value); one without it still is not."""
    a = PyUpstream("a")
    # An upstream that reads a whole request, then closes without answering: the
    # gateway sees a reset before any response, as from a crashed replica.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(16)
    dead_seen = []

    def drop():
        while True:
            try:
                c, _ = dead.accept()
            except OSError:
                return
            c.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data or not data.endswith(b"body"):
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            dead_seen.append(data)
            c.close()
    threading.Thread(target=drop, daemon=True).start()
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: flaky
    endpoints: [%s]
    retry: {attempts: 2, on: [503], idempotency_header: Idempotency-Key}
  - name: crashy
    endpoints: ["127.0.0.1:%d", %s]
    lb: round_robin
    retry: {attempts: 1, on: [reset], idempotency_header: Idempotency-Key}
routes:
  - {match: {prefix: /flaky}, cluster: flaky}
  - {match: {prefix: /crash}, cluster: crashy}
""" % (a.addr, dead.getsockname()[1], a.addr))
        for i in range(6):
            status, _, _ = get(p.port, "/flaky/2", method="POST", body=b"x",
                               headers={"Idempotency-Key": "k%d" % i})
            assert status == 200
        assert p.metric("trellis_proxy_retries_total", cluster="flaky") >= 3
        statuses = {get(p.port, "/flaky/2", method="POST", body=b"x")[0] for _ in range(4)}
        assert 503 in statuses  # without the header: not retried
        # Reset before a response: the keyed POST is resent, body and all, to the other
        # endpoint; an unkeyed one gets the 502.
        for i in range(4):
            before = len(a.requests)
            status, _, body = get(p.port, "/crash", method="POST", body=b"the body",
                                  headers={"Idempotency-Key": "c%d" % i})
            assert status == 200 and body == b"a", body
            assert a.requests[before:][-1][3] == b"the body"
        assert len(dead_seen) >= 2
        statuses = {get(p.port, "/crash", method="POST", body=b"the body")[0] for _ in range(4)}
        assert 502 in statuses
    finally:
        dead.close()
        a.stop()
