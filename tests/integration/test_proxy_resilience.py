# SPDX-License-Identifier: Apache-2.0
"""`trellis proxy` resilience: circuit breaker (limits, open / half-open / closed),
outlier ejection and return, rate limiting, mirroring, and their metrics, against real
upstream processes (tests/integration/resil_upstream.py, one process each)."""
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import SLOW
from proxy_helpers import free_port, get, start_proxy, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.path.join(HERE, "resil_upstream.py")


class Upstream:
    """A resil_upstream.py process."""

    def __init__(self, name):
        self.name = name
        self.p = subprocess.Popen(["/usr/bin/python3", UPSTREAM, name], stdout=subprocess.PIPE,
                                  text=True)
        line = self.p.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def control(self, **kw):
        status, _, _ = get(self.port, "/__control?" + urllib.parse.urlencode(kw))
        assert status == 200

    def stats(self):
        return json.loads(get(self.port, "/__stats")[2])

    def count(self):
        return self.stats()["count"]

    def reset(self):
        get(self.port, "/__reset")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(10)


@pytest.fixture
def upstream():
    started = []

    def start(name="up"):
        u = Upstream(name)
        started.append(u)
        return u

    yield start
    for u in started:
        u.stop()


def overloaded(headers):
    return headers.get("x-trellis-overloaded")


def concurrent(port, paths, stagger=0.0, method="GET"):
    """Sends one request per path, each on its own connection and thread; returns
    [(status, headers, body, seconds)] in path order."""
    out = [None] * len(paths)

    def one(i, path):
        t = time.time()
        try:
            status, headers, body = get(port, path, method=method, timeout=30)
        except Exception as e:  # noqa: BLE001 - recorded for the assertion message
            status, headers, body = 0, {}, repr(e).encode()
        out[i] = (status, headers, body, time.time() - t)

    threads = []
    for i, p in enumerate(paths):
        t = threading.Thread(target=one, args=(i, p))
        t.start()
        threads.append(t)
        if stagger:
            time.sleep(stagger)
    for t in threads:
        t.join()
    return out


# ---------------------------------------------------------------- circuit breaker


BREAKER = """
clusters:
  - name: products
    endpoints: [%s]
    retry: {attempts: 0}
    circuit_breaker: {consecutive_failures: 3, open_for: %dms}
routes:
  - name: all
    cluster: products
"""


def breaker_state(p):
    return p.metric("trellis_proxy_circuit_breaker_state", cluster="products")


@pytest.mark.parametrize("workers", [1, 2])
def test_breaker_opens_rejects_at_once_and_recovers(trellis_proc, tmp_path, upstream, workers):
    up = upstream()
    open_ms = int(1000 * SLOW)
    # With two workers, requests (one connection each) spread over both: the breaker is
    # the cluster's, not a worker's, so it still opens after three failures.
    p = start_proxy(trellis_proc, tmp_path, BREAKER % (up.addr, open_ms), workers=workers)
    assert get(p.port, "/")[0] == 200
    assert breaker_state(p) == 0
    up.control(mode="fail", status=503)
    for _ in range(3):
        status, headers, body = get(p.port, "/")
        assert status == 503 and body == b"fail" and overloaded(headers) is None
    assert up.count() == 4
    assert breaker_state(p) == 1
    # Open: an immediate 503 naming the cluster; nothing reaches the upstream.
    for i in range(20):
        t = time.time()
        status, headers, body = get(p.port, "/x")
        elapsed = time.time() - t
        assert status == 503, body
        assert overloaded(headers) == "circuit_open"
        assert 1 <= int(headers["retry-after"]) <= open_ms // 1000 + 1
        err = json.loads(body)["error"]
        assert err["code"] == "circuit_open" and err["cluster"] == "products"
        assert err["message"] == 'cluster "products" circuit breaker is open'
        assert elapsed < 0.5 * SLOW
    assert up.count() == 4
    c = json.loads(p.admin("/clusters")[2])["clusters"][0]
    assert c["circuit_breaker"]["state"] == "open"
    assert c["circuit_breaker"]["opens"] == 1
    assert c["circuit_breaker"]["rejected"]["circuit_open"] == 20
    assert 0 < c["circuit_breaker"]["open_remaining_ms"] <= open_ms
    assert p.metric("trellis_proxy_circuit_breaker_rejections_total", cluster="products",
                    reason="circuit_open") == 20
    assert p.metric("trellis_proxy_circuit_breaker_opens_total", cluster="products") == 1
    assert p.metric("trellis_proxy_responses_total", route="all", **{"class": "5xx"}) == 23
    # The upstream recovers; the breaker stays open until open_for has passed ...
    up.control(mode="ok")
    assert overloaded(get(p.port, "/")[1]) == "circuit_open"
    # ... then the next request is the probe, which closes it.
    time.sleep(open_ms / 1000.0 + 0.1)
    status, headers, body = get(p.port, "/")
    assert status == 200 and body == b"up"
    assert breaker_state(p) == 0
    for _ in range(10):
        assert get(p.port, "/")[0] == 200
    assert up.count() == 15
    c = json.loads(p.admin("/clusters")[2])["clusters"][0]
    assert c["circuit_breaker"]["state"] == "closed"
    assert c["circuit_breaker"]["failures"] == 0


def test_breaker_half_open_single_probe_failure_reopens(trellis_proc, tmp_path, upstream):
    up = upstream()
    open_ms = int(800 * SLOW)
    p = start_proxy(trellis_proc, tmp_path, BREAKER % (up.addr, open_ms), workers=2)
    up.control(mode="fail", status=502)
    for _ in range(3):
        assert get(p.port, "/")[0] == 502
    assert overloaded(get(p.port, "/")[1]) == "circuit_open"
    time.sleep(open_ms / 1000.0 + 0.1)
    # The probe is slow and fails; while it is out, everyone else is refused.
    up.control(mode="fail", status=500, delay_ms=int(1000 * SLOW))
    probe = []
    t = threading.Thread(target=lambda: probe.append(get(p.port, "/probe")))
    t.start()
    assert wait_for(lambda: breaker_state(p) == 2)
    for _ in range(5):
        status, headers, _ = get(p.port, "/other")
        assert status == 503 and overloaded(headers) == "circuit_open"
    t.join()
    assert probe[0][0] == 500 and overloaded(probe[0][1]) is None
    # The failed probe opened it again at once.
    assert breaker_state(p) == 1
    assert overloaded(get(p.port, "/")[1]) == "circuit_open"
    assert up.count() == 4
    assert p.metric("trellis_proxy_circuit_breaker_opens_total", cluster="products") == 2
    # A reload that keeps the cluster keeps its breaker state.
    p.proc.signal(signal.SIGHUP)
    assert wait_for(lambda: p.metric("trellis_proxy_config_generation") == 2)
    assert overloaded(get(p.port, "/")[1]) == "circuit_open"
    assert breaker_state(p) == 1
    # A client that gives up on the probe (an abortive close) does not wedge the
    # breaker half-open: the next request probes, long before the first would have.
    time.sleep(open_ms / 1000.0 + 0.1)
    up.control(mode="ok", delay_ms=int(3000 * SLOW))
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"GET /abandoned HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_for(lambda: breaker_state(p) == 2)
    up.control(mode="ok", delay_ms=0)
    t0 = time.time()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert wait_for(lambda: get(p.port, "/")[0] == 200, timeout=2)
    assert time.time() - t0 < 2 * SLOW
    assert breaker_state(p) == 0


LIMITS = """
clusters:
  - name: capped
    endpoints: [%(up)s]
    retry: {attempts: 0}
    circuit_breaker: {max_requests: 3, consecutive_failures: 1000}
  - name: queued
    endpoints: [%(up)s]
    retry: {attempts: 0}
    timeout: %(timeout)dms
    circuit_breaker: {max_connections: 1, max_pending: 1, consecutive_failures: 1000}
routes:
  - match: {prefix: /capped}
    cluster: capped
  - match: {prefix: /queued}
    cluster: queued
"""


def test_breaker_max_requests(trellis_proc, tmp_path, upstream):
    up = upstream()
    p = start_proxy(trellis_proc, tmp_path, LIMITS % {"up": up.addr, "timeout": 10000})
    slow = int(1000 * SLOW)
    res = concurrent(p.port, ["/capped/slow?ms=%d" % slow] * 6, stagger=0.02)
    ok = [r for r in res if r[0] == 200]
    rejected = [r for r in res if r[0] == 503]
    assert len(ok) == 3 and len(rejected) == 3, [(r[0], r[2]) for r in res]
    for status, headers, body, secs in rejected:
        assert overloaded(headers) == "max_requests"
        err = json.loads(body)["error"]
        assert err["code"] == "overloaded" and err["cluster"] == "capped"
        assert "max_requests (3)" in err["message"]
        assert secs < slow / 2000.0
    assert up.stats()["max_in_flight"] == 3
    assert p.metric("trellis_proxy_circuit_breaker_rejections_total", cluster="capped",
                    reason="max_requests") == 3
    # Limit rejections are not failures: the breaker stays closed.
    assert p.metric("trellis_proxy_circuit_breaker_state", cluster="capped") == 0


def test_breaker_max_connections_queues_then_max_pending(trellis_proc, tmp_path, upstream):
    up = upstream()
    p = start_proxy(trellis_proc, tmp_path, LIMITS % {"up": up.addr, "timeout": 10000})
    slow = 0.6 * SLOW
    res = []
    t = threading.Thread(target=lambda: res.extend(
        concurrent(p.port, ["/queued/slow?ms=%d" % (slow * 1000)] * 3, stagger=0.1 * SLOW)))
    t.start()
    # One on the connection, one waiting for it, the third refused.
    assert wait_for(lambda: p.metric("trellis_proxy_cluster_pending_requests",
                                     cluster="queued") == 1)
    assert p.metric("trellis_proxy_cluster_active_connections", cluster="queued") == 1
    t.join()
    assert [r[0] for r in res] == [200, 200, 503], [(r[0], r[2]) for r in res]
    assert overloaded(res[2][1]) == "max_pending"
    assert res[2][3] < slow / 2
    # The queued request went up only when the first was done (alone it takes `slow`).
    assert res[1][3] >= 1.5 * slow
    assert up.stats()["max_in_flight"] == 1
    assert p.metric("trellis_proxy_cluster_pending_requests", cluster="queued") == 0
    assert p.metric("trellis_proxy_cluster_active_connections", cluster="queued") == 0


def test_breaker_pending_timeout(trellis_proc, tmp_path, upstream):
    up = upstream()
    timeout = 1.0 * SLOW
    p = start_proxy(trellis_proc, tmp_path, LIMITS % {"up": up.addr,
                                                      "timeout": int(timeout * 1000)})
    # The first request holds the one connection: its body (streamed: over 64 KiB) ends
    # late, which re-arms its timeout, and its upstream then takes its time.
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(10 * SLOW)
    s.sendall(b"POST /queued/slow?ms=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
              % int(2000 * SLOW) + b"a" * 1000)
    assert wait_for(lambda: p.metric("trellis_proxy_cluster_active_connections",
                                     cluster="queued") == 1)
    t0 = time.time()
    waiter = []
    t = threading.Thread(target=lambda: waiter.extend(concurrent(p.port, ["/queued/b"])))
    t.start()
    time.sleep(0.5 * timeout)
    s.sendall(b"b" * 99000)
    t.join()
    status, headers, body, secs = waiter[0]
    assert status == 503 and overloaded(headers) == "pending_timeout", body
    assert json.loads(body)["error"]["code"] == "overloaded"
    assert timeout - 0.05 <= time.time() - t0 <= timeout + 0.6 * SLOW
    assert p.metric("trellis_proxy_circuit_breaker_rejections_total", cluster="queued",
                    reason="pending_timeout") == 1
    assert p.metric("trellis_proxy_cluster_pending_requests", cluster="queued") == 0
    s.close()
    # /queued/b never reached the upstream.
    assert all(r["path"] != "/queued/b" for r in up.stats()["requests"])


def test_breaker_limits_are_shared_by_workers(trellis_proc, tmp_path, upstream):
    up = upstream()
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: capped
    endpoints: [%s]
    circuit_breaker: {max_requests: 4, consecutive_failures: 1000}
routes:
  - cluster: capped
""" % up.addr, workers=2)
    res = concurrent(p.port, ["/slow?ms=%d" % int(1000 * SLOW)] * 12, stagger=0.01)
    ok = sum(1 for r in res if r[0] == 200)
    assert 1 <= ok <= 4, [(r[0], r[2]) for r in res]
    assert sum(1 for r in res if overloaded(r[1]) == "max_requests") == 12 - ok
    assert up.stats()["max_in_flight"] <= 4


# ---------------------------------------------------------------- outlier detection


OUTLIER = """
clusters:
  - name: pool
    endpoints: [%s]
    retry: {attempts: 0}
    outlier: {consecutive_5xx: 3, base_ejection: %dms, max_ejection_percent: 50}
routes:
  - cluster: pool
"""


def endpoint(p, addr):
    c = json.loads(p.admin("/clusters")[2])["clusters"][0]
    return next(e for e in c["endpoints"] if e["address"] == addr)


def test_outlier_ejects_returns_and_ejects_longer(trellis_proc, tmp_path, upstream):
    ups = [upstream("u%d" % i) for i in range(3)]
    base_ms = int(1000 * SLOW)
    p = start_proxy(trellis_proc, tmp_path, OUTLIER % (", ".join(u.addr for u in ups), base_ms))
    bad = ups[1]
    bad.control(mode="fail", status=500)
    statuses = [get(p.port, "/")[0] for _ in range(30)]
    assert statuses.count(500) == 3 and statuses.count(200) == 27
    assert bad.count() == 3
    e = endpoint(p, bad.addr)
    assert e["health"] == "ejected" and 0 < e["ejected_remaining_ms"] <= base_ms
    assert endpoint(p, ups[0].addr)["health"] == "healthy"
    assert p.metric("trellis_proxy_outlier_ejections_total", cluster="pool") == 1
    assert p.metric("trellis_proxy_outlier_ejected_endpoints", cluster="pool") == 1
    c = json.loads(p.admin("/clusters")[2])["clusters"][0]
    assert c["outlier"]["ejected"] == 1 and c["outlier"]["ejections"] == 1
    # It heals and comes back after base_ejection.
    bad.control(mode="ok")
    t_eject = time.time()
    assert wait_for(lambda: endpoint(p, bad.addr)["health"] == "healthy", timeout=3)
    assert p.metric("trellis_proxy_outlier_ejected_endpoints", cluster="pool") == 0
    before = bad.count()
    for _ in range(30):
        assert get(p.port, "/")[0] == 200
    assert bad.count() - before == 10
    # Failing again right after its return: ejected for twice base_ejection.
    bad.control(mode="fail", status=503)
    t_fail = time.time()
    statuses = []
    while statuses.count(503) < 3:
        statuses.append(get(p.port, "/")[0])
    t_eject = time.time()
    remaining = endpoint(p, bad.addr)["ejected_remaining_ms"]
    since = (time.time() - t_fail) * 1000
    assert 2 * base_ms - since - 20 <= remaining <= 2 * base_ms, (remaining, since)
    assert [get(p.port, "/")[0] for _ in range(6)] == [200] * 6
    assert p.metric("trellis_proxy_outlier_ejections_total", cluster="pool") == 2
    bad.control(mode="ok")
    time.sleep(max(0, (remaining - 300) / 1000.0))
    assert endpoint(p, bad.addr)["health"] == "ejected"
    assert wait_for(lambda: endpoint(p, bad.addr)["health"] == "healthy", timeout=2)
    assert time.time() - t_eject >= (remaining - 20) / 1000.0


def test_outlier_respects_max_ejection_percent(trellis_proc, tmp_path, upstream):
    ups = [upstream("u%d" % i) for i in range(3)]
    p = start_proxy(trellis_proc, tmp_path, OUTLIER % (", ".join(u.addr for u in ups),
                                                       int(30000 * SLOW)))
    ups[1].control(mode="fail", status=500)
    ups[2].control(mode="fail", status=500)
    statuses = [get(p.port, "/")[0] for _ in range(60)]
    # One of the two failing endpoints is ejected; ejecting the other would leave 1 of
    # 3 (67 % ejected, over 50 %), so it keeps its share.
    assert p.metric("trellis_proxy_outlier_ejections_total", cluster="pool") == 1
    assert p.metric("trellis_proxy_outlier_ejected_endpoints", cluster="pool") == 1
    counts = sorted([ups[1].count(), ups[2].count()])
    assert counts[0] == 3 and counts[1] >= 25, counts
    assert statuses.count(200) == ups[0].count()
    health = sorted(endpoint(p, u.addr)["health"] for u in ups)
    assert health == ["ejected", "healthy", "healthy"]


def test_outlier_counts_connect_failures(trellis_proc, tmp_path, upstream):
    up = upstream()
    dead = "127.0.0.1:%d" % free_port()
    # The default retry policy (one retry on connect failure) this time.
    p = start_proxy(trellis_proc, tmp_path, OUTLIER.replace("    retry: {attempts: 0}\n", "") %
                    ("%s, %s" % (up.addr, dead), int(30000 * SLOW)))
    # Connect failures are retried by default: the client sees no error, and after
    # three the dead endpoint is ejected and no longer tried.
    for _ in range(20):
        assert get(p.port, "/")[0] == 200
    assert p.metric("trellis_proxy_outlier_ejections_total", cluster="pool") == 1
    failures = p.metric("trellis_proxy_upstream_connect_failures_total", cluster="pool")
    assert failures == 3
    for _ in range(10):
        assert get(p.port, "/")[0] == 200
    assert p.metric("trellis_proxy_upstream_connect_failures_total", cluster="pool") == 3
    assert endpoint(p, dead)["health"] == "ejected"


# ---------------------------------------------------------------- rate limiting


RATE = """
clusters:
  - name: web
    endpoints: [%s]
routes:
  - name: limited
    match: {prefix: /}
    cluster: web
    rate_limit: {requests_per_second: %d, burst: %d, key: '%s'}
"""


def hammer(port, seconds, headers=None, counts=None):
    """Sequential requests on one keep-alive connection for `seconds`; returns
    {status: n} and the first 429's headers and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
    counts = {} if counts is None else counts
    first = None
    end = time.time() + seconds
    while time.time() < end:
        status, h, body = get(port, "/", headers=headers, conn=conn)
        counts[status] = counts.get(status, 0) + 1
        if status == 429 and first is None:
            first = (h, body)
    conn.close()
    return counts, first


@pytest.mark.parametrize("workers,clients", [(1, 1), (2, 4)])
def test_rate_limit_holds_the_configured_rate(trellis_proc, tmp_path, upstream, workers,
                                              clients):
    up = upstream()
    p = start_proxy(trellis_proc, tmp_path, RATE % (up.addr, 50, 10, "client_ip"),
                    workers=workers)
    results = [None] * clients
    seconds = 2.0

    def run(i):
        results[i] = hammer(p.port, seconds)

    t0 = time.time()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    allowed = sum(r[0].get(200, 0) for r in results)
    limited = sum(r[0].get(429, 0) for r in results)
    # One bucket for the client address, whichever worker each connection landed on:
    # burst + rate x time, within 10 %.
    expect = 10 + 50 * elapsed
    assert abs(allowed - expect) <= 0.1 * expect, (allowed, expect, limited)
    assert limited > allowed  # the clients really asked for more
    assert up.count() == allowed
    h, body = next(r[1] for r in results if r[1] is not None)
    assert h["retry-after"] == "1"
    err = json.loads(body)["error"]
    assert err["code"] == "too_many_requests" and err["route"] == "limited"
    assert err["retry_after"] == 1
    assert "50 requests per second (burst 10) per client_ip" in err["message"]
    assert p.metric("trellis_proxy_rate_limited_total", route="limited") == limited
    assert p.metric("trellis_proxy_responses_total", route="limited",
                    **{"class": "4xx"}) == limited
    assert p.metric("trellis_proxy_requests_total", route="limited") == allowed + limited


def test_rate_limit_keys_and_retry_after(trellis_proc, tmp_path, upstream):
    up = upstream()
    p = start_proxy(trellis_proc, tmp_path, RATE % (up.addr, 1, 3, "header:x-user"))
    def statuses(headers, n):
        return [get(p.port, "/", headers=headers)[0] for _ in range(n)]
    # Each user has a bucket of 3; requests without the header share one.
    assert statuses({"X-User": "alice"}, 5) == [200, 200, 200, 429, 429]
    assert statuses({"X-User": "bob"}, 4) == [200, 200, 200, 429]
    assert statuses({}, 4) == [200, 200, 200, 429]
    status, headers, body = get(p.port, "/", headers={"X-User": "alice"})
    assert status == 429 and headers["retry-after"] == "1"
    assert "per header" in json.loads(body)["error"]["message"]
    # One token a second: alice gets one more request after a second.
    time.sleep(1.05)
    assert statuses({"X-User": "alice"}, 2) == [200, 429]
    assert up.count() == 10
    # key: route: one bucket for everybody; Retry-After rounds up to whole seconds.
    p.write(RATE % (up.addr, 1, 2, "route"))
    p.proc.signal(signal.SIGHUP)
    assert wait_for(lambda: p.metric("trellis_proxy_config_generation") == 2)
    got = [get(p.port, "/", headers={"X-User": u})[0] for u in ("a", "b", "c")]
    assert got == [200, 200, 429]


# ---------------------------------------------------------------- mirroring


MIRROR = """
clusters:
  - name: main
    endpoints: [%(main)s]
  - name: shadow
    endpoints: [%(shadow)s]
    timeout: %(timeout)dms
routes:
  - name: mirrored
    match: {prefix: /}
    cluster: main
    mirror: {cluster: shadow, percent: %(percent)d}
"""


def test_mirror_receives_copies(trellis_proc, tmp_path, upstream):
    main, shadow = upstream("main"), upstream("shadow")
    p = start_proxy(trellis_proc, tmp_path, MIRROR % {
        "main": main.addr, "shadow": shadow.addr, "timeout": 5000, "percent": 100})
    sent = []
    for i in range(10):
        assert get(p.port, "/get/%d?q=%d" % (i, i), headers={"X-Test": str(i)})[2] == b"main"
        sent.append(("GET", "/get/%d?q=%d" % (i, i), b""))
    for i in range(3):
        body = os.urandom(1000 * (i + 1))
        assert get(p.port, "/post/%d" % i, method="POST", body=body)[0] == 200
        sent.append(("POST", "/post/%d" % i, body))
    body = os.urandom(64 * 1024)  # exactly the limit: mirrored
    assert get(p.port, "/post/limit", method="PUT", body=body)[0] == 200
    sent.append(("PUT", "/post/limit", body))
    # Too big to mirror: the main request is unaffected.
    assert get(p.port, "/post/big", method="POST", body=os.urandom(100 * 1024))[0] == 200
    # A chunked body is collected for the mirror as it arrives.
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"POST /post/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert b" 200 " in s.recv(4096)
    s.close()
    sent.append(("POST", "/post/chunked", b"hello world"))
    assert wait_for(lambda: shadow.count() == len(sent))
    got = {r["path"]: r for r in shadow.stats()["requests"]}
    mains = {r["path"]: r for r in main.stats()["requests"]}
    for method, path, body in sent:
        r = got[path]
        assert r["method"] == method
        assert r["body_len"] == len(body)
        assert r["body_sha"] == hashlib.sha256(body).hexdigest()
        assert r["headers"]["x-trellis-shadow"] == "1"
        assert r["headers"]["x-request-id"] == mains[path]["headers"]["x-request-id"]
        assert "x-trellis-shadow" not in mains[path]["headers"]
    assert got["/get/3?q=3"]["headers"]["x-test"] == "3"
    assert "/post/big" not in got and "/post/big" in mains
    assert wait_for(lambda: p.metric("trellis_proxy_mirror_requests_total", route="mirrored",
                                     result="ok") == len(sent))
    assert p.metric("trellis_proxy_mirror_requests_total", route="mirrored",
                    result="skipped") == 1
    assert p.metric("trellis_proxy_mirror_requests_total", route="mirrored", result="failed") == 0
    # The main cluster's counters see only the main requests.
    assert p.metric("trellis_proxy_cluster_requests_total", cluster="main") == len(sent) + 1
    assert p.metric("trellis_proxy_cluster_requests_total", cluster="shadow") == 0


def test_mirror_down_or_slow_does_not_affect_main(trellis_proc, tmp_path, upstream):
    main, shadow = upstream("main"), upstream("shadow")
    # A shadow that takes 3 s, with a 1 s timeout for mirror requests.
    shadow.control(mode="ok", delay_ms=int(3000 * SLOW))
    p = start_proxy(trellis_proc, tmp_path, MIRROR % {
        "main": main.addr, "shadow": shadow.addr, "timeout": int(1000 * SLOW), "percent": 100})
    t0 = time.time()
    for i in range(10):
        t = time.time()
        status, _, body = get(p.port, "/shadowed/%d" % i)
        assert status == 200 and body == b"main"
        assert time.time() - t < 0.3 * SLOW
    assert time.time() - t0 < 1.0 * SLOW
    assert wait_for(lambda: p.metric("trellis_proxy_mirror_requests_total", route="mirrored",
                                     result="failed") == 10, timeout=3)
    # A shadow that is down.
    shadow.stop()
    for i in range(10):
        t = time.time()
        assert get(p.port, "/down/%d" % i, method="POST", body=b"x" * 100)[0] == 200
        assert time.time() - t < 0.3 * SLOW
    assert wait_for(lambda: p.metric("trellis_proxy_mirror_requests_total", route="mirrored",
                                     result="failed") == 20)
    assert main.count() == 20


def test_mirror_percent(trellis_proc, tmp_path, upstream):
    main, shadow = upstream("main"), upstream("shadow")
    p = start_proxy(trellis_proc, tmp_path, MIRROR % {
        "main": main.addr, "shadow": shadow.addr, "timeout": 5000, "percent": 25})
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
    for i in range(400):
        assert get(p.port, "/%d" % i, conn=conn)[0] == 200
    conn.close()
    ok = wait_for(lambda: p.metric("trellis_proxy_mirror_requests_total", route="mirrored",
                                   result="ok") == shadow.count() and shadow.count())
    assert ok
    # 25 % of 400 = 100; 6 standard deviations is about +-52.
    assert 50 <= shadow.count() <= 150, shadow.count()


# ---------------------------------------------------------------- everything at once


def test_all_features_configured_metrics_and_no_warnings(trellis_proc, tmp_path, upstream):
    up, shadow = upstream("up"), upstream("shadow")
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: products
    endpoints: [%s]
    circuit_breaker: {max_connections: 64, max_pending: 16, max_requests: 128,
                      consecutive_failures: 5, open_for: 10s}
    outlier: {consecutive_5xx: 5, base_ejection: 30s, max_ejection_percent: 50}
  - name: shadow
    endpoints: [%s]
routes:
  - match: {prefix: /}
    cluster: products
    mirror: {cluster: shadow, percent: 100}
    rate_limit: {requests_per_second: 1000, burst: 1000, key: client_ip}
""" % (up.addr, shadow.addr))
    assert not [l for l in p.proc.lines if "not implemented" in l], p.proc.lines
    for _ in range(20):
        assert get(p.port, "/")[0] == 200
    text = p.admin("/metrics")[2].decode()
    for name, kind in (("trellis_proxy_circuit_breaker_state", "gauge"),
                       ("trellis_proxy_circuit_breaker_opens_total", "counter"),
                       ("trellis_proxy_circuit_breaker_rejections_total", "counter"),
                       ("trellis_proxy_cluster_active_connections", "gauge"),
                       ("trellis_proxy_cluster_pending_requests", "gauge"),
                       ("trellis_proxy_outlier_ejections_total", "counter"),
                       ("trellis_proxy_outlier_ejected_endpoints", "gauge"),
                       ("trellis_proxy_rate_limited_total", "counter"),
                       ("trellis_proxy_mirror_requests_total", "counter"),
                       ("trellis_proxy_retries_total", "counter"),
                       ("trellis_proxy_upstream_connect_failures_total", "counter"),
                       ("trellis_proxy_request_duration_seconds", "histogram"),
                       ("trellis_proxy_cluster_request_duration_seconds", "histogram"),
                       ("trellis_proxy_active_connections", "gauge")):
        assert "# TYPE %s %s" % (name, kind) in text, name
    assert p.metric("trellis_proxy_requests_total", route="/") == 20
    assert p.metric("trellis_proxy_cluster_responses_total", cluster="products",
                    **{"class": "2xx"}) == 20
    assert p.metric("trellis_proxy_rate_limited_total", route="/") == 0
    assert p.metric("trellis_proxy_circuit_breaker_state", cluster="shadow") == 0
    assert wait_for(lambda: p.metric("trellis_proxy_mirror_requests_total", route="/",
                                     result="ok") == 20)
    c = json.loads(p.admin("/clusters")[2])["clusters"]
    assert c[0]["circuit_breaker"]["max_connections"] == 64
    assert c[0]["outlier"]["max_ejection_percent"] == 50
    assert c[1]["circuit_breaker"] is None and c[1]["outlier"] is None
