# SPDX-License-Identifier: Apache-2.0
"""Issue 4 acceptance for `trellis proxy`, under load and with real upstream processes
(`trellis echo`, `trellis server` as the registry, small Python servers where a test
needs an upstream to misbehave on purpose):

- an upstream SIGKILLed mid-run with retries on costs no client a failed request;
- a weighted split stays within +-3 % of its weights over 10,000 requests;
- registry instances that appear and vanish during load get and lose traffic without a
  reload, and requests already sent to a removed one finish;
- SIGHUP reloads under load (route and cluster changes, invalid files in between) fail no
  request, and requests in flight finish on the configuration they started with;
- SIGTERM stops accepting, closes idle keep-alive connections at once, lets requests in
  flight finish and exits within the drain deadline;
- upstreams that close idle keep-alive connections (an idle timeout near the request
  spacing, or a close after every few requests without "Connection: close") cause no
  client error, bodies included (a POST the upstream read and then dropped is the one
  exception: it may have been processed);
- a body that turns malformed part way leaves no exchange behind (a fuzzer find).

test_proxy.py has the functional tests these build on; nothing here repeats one of them.
"""
import collections
import http.client
import json
import random
import signal
import socket
import struct
import threading
import time

from conftest import SLOW, raw_request
from proxy_helpers import PyUpstream, echo, get, start_proxy, wait_for


class Load:
    """Closed-loop load: `clients` threads, each on its own keep-alive connection, send
    requests until stop() or until each has sent `max_each` (a bound, so a broken proxy
    cannot keep a test busy). `pick(i, n)` gives (method, path) for a thread's n-th
    request. Every response is kept as (time it ended, status, body) and every exception
    as a failure, with a fresh connection afterwards."""

    def __init__(self, port, pick=None, clients=4, max_each=5000, pause=0.0, timeout=10):
        self.port = port
        self.pick = pick or (lambda i, n: ("GET", "/"))
        self.max_each = max_each
        self.pause = pause
        self.timeout = timeout * SLOW
        self.stop_flag = False
        self.lock = threading.Lock()
        self.responses = []
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def _conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _run(self, i):
        conn = self._conn()
        for n in range(self.max_each):
            if self.stop_flag:
                break
            method, path = self.pick(i, n)
            try:
                status, _, body = get(self.port, path, method=method, conn=conn)
                with self.lock:
                    self.responses.append((time.monotonic(), status, body))
            except Exception as e:  # noqa: BLE001 - any client-visible failure counts
                with self.lock:
                    self.failures.append((method, path, repr(e)))
                conn.close()
                conn = self._conn()
                time.sleep(0.01)
            if self.pause:
                time.sleep(self.pause)
        conn.close()

    def count(self):
        with self.lock:
            return len(self.responses)

    def bodies_since(self, t):
        with self.lock:
            return collections.Counter(b for (te, _, b) in self.responses if te >= t)

    def bad(self):
        """Failures and non-2xx responses."""
        with self.lock:
            return self.failures + [(s, b[:200]) for (_, s, b) in self.responses
                                    if not 200 <= s < 300]

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(60 * SLOW)
        assert not any(t.is_alive() for t in self.threads), "a load thread is stuck"


def wait_load(load, n, timeout=10):
    assert wait_for(lambda: load.count() >= n, timeout=timeout), (
        "load made no progress: %d responses, failures %s" % (load.count(), load.bad()[:5]))


def register(server_port, sid, port, name="product"):
    body = json.dumps({"ID": sid, "Name": name, "Address": "127.0.0.1", "Port": port}).encode()
    status, _, data = get(server_port, "/v1/agent/service/register", method="PUT", body=body)
    assert status == 200, data


def deregister(server_port, sid):
    status, _, data = get(server_port, "/v1/agent/service/deregister/" + sid, method="PUT")
    assert status == 200, data


def clusters(p):
    return json.loads(p.admin("/clusters")[2])["clusters"]


# ---------------------------------------------------------------- upstream killed


def test_upstream_sigkilled_under_load_costs_no_request(trellis_proc, tmp_path):
    a = echo(trellis_proc, body_size=71)
    b = echo(trellis_proc, body_size=72)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - name: web
    endpoints: [127.0.0.1:%d, 127.0.0.1:%d]
    retry: {attempts: 2, on: [connect_failure, reset, gateway_error], per_try_timeout: 2s}
routes:
  - cluster: web
""" % (a.port, b.port), workers=2)
    # Mostly GET, some HEAD, DELETE and OPTIONS (all idempotent: RFC 9110 §9.2.2).
    methods = ["GET"] * 7 + ["HEAD", "DELETE", "OPTIONS"]
    load = Load(p.port, lambda i, n: (methods[(i + n) % len(methods)], "/k/%d" % n), clients=6)
    wait_load(load, 1500)
    before = load.bodies_since(0)
    a.p.kill()  # SIGKILL: in-flight requests are reset, pooled connections die
    killed_at = time.monotonic()
    a.p.wait()
    wait_load(load, load.count() + 3000)
    load.stop()
    assert load.bad() == []
    assert before[b"x" * 71] > 100 and before[b"x" * 72] > 100, before
    # Once the kill has been noticed, everything comes from the survivor.
    after = load.bodies_since(killed_at + 0.5)
    assert set(after) <= {b"x" * 72, b""}, after
    assert sum(after.values()) > 1000
    assert p.metric("trellis_proxy_retries_total", cluster="web") > 0
    assert p.metric("trellis_proxy_responses_total", route="/", **{"class": "5xx"}) == 0


# ---------------------------------------------------------------- traffic split


def test_split_ratios_within_3_percent_over_10000_requests(trellis_proc, tmp_path):
    sizes = {"c10": 81, "c30": 82, "c60": 83}
    ups = {name: echo(trellis_proc, body_size=size) for name, size in sizes.items()}
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: c10, endpoints: [127.0.0.1:%d]}
  - {name: c30, endpoints: [127.0.0.1:%d]}
  - {name: c60, endpoints: [127.0.0.1:%d]}
routes:
  - match: {prefix: /orders}
    split: [{cluster: c10, weight: 10}, {cluster: c30, weight: 30}, {cluster: c60, weight: 60}]
""" % tuple(ups[n].port for n in sizes), workers=2)
    total = 10000
    clients = 8
    load = Load(p.port, lambda i, n: ("GET", "/orders/%d" % n), clients=clients,
                max_each=total // clients)
    for t in load.threads:
        t.join(120 * SLOW)
    load.stop()
    assert load.bad() == []
    counts = collections.Counter(len(b) for (_, _, b) in load.responses)
    assert sum(counts.values()) == total
    for name, weight in (("c10", 0.10), ("c30", 0.30), ("c60", 0.60)):
        share = counts[sizes[name]] / float(total)
        assert abs(share - weight) <= 0.03, (name, share, counts)
        # The proxy's own count per cluster agrees with what the clients saw.
        assert p.metric("trellis_proxy_cluster_requests_total", cluster=name) == counts[sizes[name]]


# ---------------------------------------------------------------- registry, live


def test_registry_changes_followed_live_under_load(trellis_proc, tmp_path):
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    a = echo(trellis_proc, body_size=51)
    b = echo(trellis_proc, body_size=52)
    slow = PyUpstream("slow")
    slow.delay = 0.4
    try:
        register(srv.port, "product-a", a.port)
        p = start_proxy(trellis_proc, tmp_path, """
registry: http://127.0.0.1:%d
clusters:
  - {name: products, service: product}
routes:
  - {match: {prefix: /products}, cluster: products}
""" % srv.port, workers=2)
        assert wait_for(lambda: p.admin("/ready")[0] == 200)
        load = Load(p.port, lambda i, n: ("GET", "/products/%d" % n), clients=6)
        wait_load(load, 200)
        assert set(load.bodies_since(0)) == {b"x" * 51}

        # A new instance gets traffic without a reload.
        t = time.monotonic()
        register(srv.port, "product-b", b.port)
        assert wait_for(lambda: load.bodies_since(t)[b"x" * 52] > 50), load.bodies_since(t)

        # A slow one joins; while requests are in flight on it, it is deregistered.
        register(srv.port, "product-slow", slow.port)
        assert wait_for(lambda: slow.count >= 10)

        def slow_in_flight():
            for c in clusters(p):
                for e in c["endpoints"]:
                    if e["address"] == slow.addr and e["in_flight"] > 0:
                        return True
            return False
        assert wait_for(slow_in_flight)
        removed_at = time.monotonic()
        deregister(srv.port, "product-slow")
        assert wait_for(lambda: slow.addr not in [e["address"] for e in clusters(p)[0]["endpoints"]])
        # Requests started before every worker took the new set finish (0.4 s each);
        # after that the slow instance gets nothing more.
        time.sleep(0.4 + 0.3 * SLOW)
        frozen = slow.count
        time.sleep(1.0)
        assert slow.count == frozen
        finished_late = sum(1 for (te, s, body) in load.responses
                            if body == b"slow" and te > removed_at)
        assert finished_late > 0  # they were in flight at deregistration and got their 200

        # The first instance goes away too: only b is left.
        deregister(srv.port, "product-a")
        assert wait_for(lambda: [e["address"] for e in clusters(p)[0]["endpoints"]] ==
                        ["127.0.0.1:%d" % b.port])
        t = time.monotonic() + 0.3
        time.sleep(0.3)
        wait_load(load, load.count() + 500)
        load.stop()
        assert set(load.bodies_since(t)) == {b"x" * 52}, load.bodies_since(t)
        assert load.bad() == []
        # No reload happened: the set followed the registry.
        assert p.metric("trellis_proxy_config_generation") == 1
    finally:
        slow.stop()


# ---------------------------------------------------------------- SIGHUP


RELOAD_GOOD = """
clusters:
  - {name: web, endpoints: [127.0.0.1:%(web)d]}
  - {name: other, endpoints: [127.0.0.1:%(other)d]}
routes:
  - match: {prefix: /api}
    cluster: %(api)s
    rewrite: {prefix: %(rewrite)s}
  - cluster: web
"""

# Each is rejected with a message naming the place (checked in the log).
RELOAD_BAD = [
    ("clusters:\n  - {name: web, endpoints: [127.0.0.1:1]\n",
     "gateway.yaml:3:1: did not find expected ',' or '}'"),
    ("clusters:\n  - {name: web, endpoints: [127.0.0.1:1], timeout: soon}\nroutes:\n"
     "  - cluster: web\n", "gateway.yaml:2:52: expected a duration"),
    ("clusters:\n  - {name: web, endpoints: [127.0.0.1:1]}\n  - {name: web, endpoints: "
     "[127.0.0.1:2]}\nroutes:\n  - cluster: web\n",
     'gateway.yaml:3:12: cluster \\"web\\" is defined twice'),
    ("clusters:\n  - {name: web, endpoints: [nowhere:1]}\nroutes:\n  - cluster: web\n",
     'gateway.yaml:2:29: expected an address like 127.0.0.1:9001'),
]


def test_sighup_storm_under_load(trellis_proc, tmp_path):
    """Good and bad configurations in turn while clients keep sending: no request fails,
    each good one takes effect (the route's cluster and its rewrite change), each bad one
    is refused with its file:line:col and the last good one keeps serving."""
    web = echo(trellis_proc, body_size=61)
    other = echo(trellis_proc, echo_mode=True)
    p = start_proxy(trellis_proc, tmp_path, RELOAD_GOOD % {
        "web": web.port, "other": other.port, "api": "web", "rewrite": "/v1"}, workers=2)
    p.proc.allowed_errors.append("reload rejected")
    load = Load(p.port, lambda i, n: ("GET", "/api/x" if n % 2 else "/page"), clients=6)
    wait_load(load, 300)

    def api_target():
        status, _, body = get(p.port, "/api/x")
        assert status == 200
        return body.split(b"\r\n")[0] if body != b"x" * 61 else b"web"

    generation = 1
    rejected = 0
    for step in range(8):
        good = step % 2 == 0
        if good:
            api, rewrite = ("other", "/v%d" % (step + 2))
            p.write(RELOAD_GOOD % {"web": web.port, "other": other.port, "api": api,
                                   "rewrite": rewrite})
            generation += 1
        else:
            text, expect = RELOAD_BAD[step // 2]
            p.write(text)
            rejected += 1
        seen = load.count()
        p.proc.signal(signal.SIGHUP)
        if good:
            want = ("GET %s/x HTTP/1.1" % rewrite).encode()
            assert wait_for(lambda: api_target() == want), api_target()
            assert p.metric("trellis_proxy_config_generation") == generation
        else:
            assert wait_for(lambda: sum("reload rejected" in l for l in p.proc.lines) == rejected)
            line = [l for l in p.proc.lines if "reload rejected" in l][-1]
            assert expect in line, line
            # The previous good configuration still answers.
            assert api_target() == ("GET /v%d/x HTTP/1.1" % (step + 1)).encode()
        wait_load(load, seen + 200)
    load.stop()
    assert load.bad() == []
    assert p.metric("trellis_proxy_config_reloads_total", result="ok") == 4
    assert p.metric("trellis_proxy_config_reloads_total", result="rejected") == 4


def test_sighup_requests_in_flight_finish_on_their_configuration(trellis_proc, tmp_path):
    slow = PyUpstream("before")
    slow.delay = 0.8
    after = echo(trellis_proc, body_size=62)
    try:
        v1 = """
clusters:
  - {name: web, endpoints: [%s]}
routes:
  - cluster: web
"""
        p = start_proxy(trellis_proc, tmp_path, v1 % slow.addr, workers=2)
        results = []
        lock = threading.Lock()

        def one():
            r = get(p.port, "/")
            with lock:
                results.append(r)
        ts = [threading.Thread(target=one) for _ in range(8)]
        for t in ts:
            t.start()
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 8)
        # The same cluster name now points elsewhere.
        p.write(v1 % ("127.0.0.1:%d" % after.port))
        p.proc.signal(signal.SIGHUP)
        assert wait_for(lambda: get(p.port, "/")[2] == b"x" * 62)
        for t in ts:
            t.join()
        assert sorted((s, b) for (s, _, b) in results) == [(200, b"before")] * 8
    finally:
        slow.stop()


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_drain_under_load(trellis_proc, tmp_path):
    """In flight: 12 requests the upstream answers after 1.5 s, plus keep-alive load on
    a fast route. SIGTERM: idle keep-alive connections close at once, new connections are
    refused, every request in flight gets its 200, and the process exits as soon as they
    are done, well within the 6 s drain deadline."""
    up = PyUpstream("up")
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: web, endpoints: [%s]}
routes:
  - cluster: web
""" % up.addr, workers=2, extra=["--drain-timeout", "6s"])
        idle = []
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
            assert get(p.port, "/fast", conn=c)[0] == 200
            idle.append(c.sock)
        results = []
        lock = threading.Lock()

        def slow_one():
            try:
                r = get(p.port, "/slow?ms=1500")
                with lock:
                    results.append((r[0], r[2], r[1].get("connection")))
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(repr(e))
        ts = [threading.Thread(target=slow_one) for _ in range(12)]
        for t in ts:
            t.start()
        load = Load(p.port, lambda i, n: ("GET", "/fast"), clients=3, max_each=100000)
        assert wait_for(lambda: up.count >= 12 + 50)
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") >= 12)
        t0 = time.monotonic()
        p.proc.signal(signal.SIGTERM)
        # Idle keep-alive connections are closed at once.
        for c in idle:
            c.settimeout(1.0 * SLOW)
            assert c.recv(65536) == b""
            c.close()
        assert time.monotonic() - t0 < 1.0 * SLOW
        # No new connection is accepted.

        def refused():
            try:
                s = socket.create_connection(("127.0.0.1", p.port), timeout=0.5)
            except OSError:
                return True
            try:
                s.settimeout(0.5)
                s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
                return s.recv(65536) == b""
            except OSError:
                return True
            finally:
                s.close()
        assert wait_for(refused, timeout=1.0)
        assert p.proc.p.wait(8 * SLOW) == 0
        took = time.monotonic() - t0
        for t in ts:
            t.join()
        load.stop()
        assert results == [(200, b"up", "close")] * 12, results
        assert took < 1.5 + 2.0 * SLOW, took  # the requests' own time, not the deadline
        # The fast load saw complete responses and, after the drain, only closed or
        # refused connections: never an error status or a truncated response.
        assert [r for r in load.responses if r[1] != 200] == []
        assert all(("RemoteDisconnected" in f[2] or "ConnectionRefused" in f[2] or
                    "ConnectionReset" in f[2] or "BrokenPipe" in f[2]) for f in load.failures), \
            load.failures[:5]
    finally:
        up.stop()


def test_sigterm_exits_at_the_drain_deadline(trellis_proc, tmp_path):
    up = PyUpstream("stuck")
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: web, endpoints: [%s], timeout: 60s}
routes:
  - cluster: web
""" % up.addr, extra=["--drain-timeout", "1s"])
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 1)
        t0 = time.monotonic()
        p.proc.signal(signal.SIGTERM)
        assert p.proc.p.wait(5 * SLOW) == 0
        took = time.monotonic() - t0
        assert 0.9 < took < 1.0 + 1.5 * SLOW, took
        s.settimeout(2)
        try:
            assert s.recv(65536) == b""  # cut off: no response at all, not a fake one
        except ConnectionResetError:
            pass
        s.close()
        assert any("drain deadline" in l for l in p.proc.lines)
    finally:
        up.stop()


# ---------------------------------------------------------------- malformed body mid-way


def test_bad_chunk_mid_body_releases_the_exchange(trellis_proc, tmp_path):
    """Regression (found by fuzz/fuzz_proxy.c): a chunked body that turns malformed after
    the proxy took the request made the server answer 400 and close without telling the
    proxy, which kept the exchange: waiting forever for a buffered body, or, for a body
    already streaming upstream, touching the freed request when the cluster timeout
    fired. Both sizes: 10 bytes (buffered) and 100 KiB (streamed)."""
    up = echo(trellis_proc, body_size=3)
    p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: web, endpoints: [127.0.0.1:%d], timeout: 1s}
routes:
  - cluster: web
""" % up.port)
    for size in (10, 100 * 1024):
        raw = (b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n%s\r\n" % (size, b"b" * size) + b"zz\r\n")
        out = raw_request(p.port, raw, timeout=1.0 * SLOW)
        assert out.startswith(b"HTTP/1.1 400 "), out[:200]
        assert b"chunk" in out
        assert wait_for(lambda: p.metric("trellis_proxy_active_requests", route="/") == 0), size
    time.sleep(1.5)  # past the cluster timeout: a forgotten exchange would fire now
    assert get(p.port, "/")[0] == 200
    assert p.metric("trellis_proxy_active_requests", route="/") == 0


# ---------------------------------------------------------------- idle keep-alive races


def test_upstream_idle_timeout_near_request_spacing(trellis_proc):
    """Upstreams close keep-alive connections idle for 1 s; each client sends a request
    every 0.95-1.05 s, so the proxy keeps reusing connections just as they time out."""
    ups = [echo(trellis_proc, body_size=4, extra=["--idle-timeout", "1s"]) for _ in range(2)]
    p = trellis_proc(["proxy", "--to", ",".join("127.0.0.1:%d" % u.port for u in ups),
                      "--workers", "2"])
    errors = []
    done = collections.Counter()

    def client(seed):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
        time.sleep(rnd.uniform(0, 1.0))
        for _ in range(7):
            try:
                status, _, body = get(p.port, "/", conn=conn)
                if status != 200 or body != b"xxxx":
                    errors.append((status, body[:100]))
                done[seed] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
            time.sleep(rnd.uniform(0.95, 1.05))
        conn.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert sum(done.values()) == 40 * 7


class CloseAfterN:
    """An upstream that serves `n` requests per connection with keep-alive responses (no
    "Connection: close"), then closes the connection, chosen per connection:

      after        right after the n-th response
      on-next      when the next request has arrived (read, not answered): FIN
      rst-on-next  the same with a reset

    Each response echoes the request's method and body length. `dropped` counts requests
    that reached this upstream and were not answered: read by the on-next modes, or
    found unread in the socket when "after" closed. Only those may have been processed,
    so only those may fail a non-idempotent request."""

    def __init__(self, n_range=(1, 5)):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.n_range = n_range
        self.lock = threading.Lock()
        self.answered = 0
        self.dropped = 0
        self.closes = collections.Counter()
        self.rnd = random.Random(7)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                n = self.rnd.randint(*self.n_range)
                how = self.rnd.choice(("after", "on-next", "rst-on-next"))
            threading.Thread(target=self._serve, args=(c, n, how), daemon=True).start()

    def _read_request(self, c, buf):
        """(request line, body, rest of the input), or None at EOF."""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            fields[k.strip().lower()] = v.strip()
        if fields.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in rest:
                    d = c.recv(65536)
                    if not d:
                        return None
                    rest += d
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                while len(rest) < size + 2:
                    d = c.recv(65536)
                    if not d:
                        return None
                    rest += d
                body, rest = body + rest[:size], rest[size + 2:]
                if size == 0:
                    return lines[0], body, rest
        length = int(fields.get(b"content-length", b"0"))
        while len(rest) < length:
            d = c.recv(65536)
            if not d:
                return None
            rest += d
        return lines[0], rest[:length], rest[length:]

    def _serve(self, c, n, how):
        buf = b""
        try:
            for _ in range(n):
                r = self._read_request(c, buf)
                if r is None:
                    return
                line, body, buf = r
                answer = b"%s %d" % (line.split(b" ")[0], len(body))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" %
                          (len(answer), answer))
                with self.lock:
                    self.answered += 1
            if how == "after":
                c.setblocking(False)
                try:
                    unread = buf or c.recv(1, socket.MSG_PEEK)
                except BlockingIOError:
                    unread = b""
                c.close()
                with self.lock:
                    self.dropped += 1 if unread else 0
                    self.closes[how] += 1
                return
            if self._read_request(c, buf) is None:
                return
            if how == "rst-on-next":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.lock:
                self.dropped += 1
                self.closes[how] += 1
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def test_upstream_closing_after_n_requests_without_notice(trellis_proc, tmp_path):
    """Idempotent requests, with and without bodies, never fail however the upstream
    closes. A POST may fail only when it reached the upstream, which then closed without
    answering (it may have been processed: RFC 9110 §9.2.2 forbids replaying it); one
    that met an already closed connection is replayed, body included."""
    up = CloseAfterN()
    try:
        p = start_proxy(trellis_proc, tmp_path, """
clusters:
  - {name: closer, endpoints: [%s]}
routes:
  - cluster: closer
""" % up.addr, workers=2)
        kinds = [("GET", None), ("PUT", 100), ("HEAD", None), ("POST", 300), ("DELETE", None),
                 ("PUT", 5000), ("OPTIONS", None), ("POST", 20), ("PUT", "chunked")]
        results = []
        lock = threading.Lock()

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
            for n in range(300):
                method, size = kinds[(i + n) % len(kinds)]
                if size == "chunked":
                    body, want = iter([b"ab", b"cde"]), b"PUT 5"
                    headers = {"Transfer-Encoding": "chunked"}
                elif size is None:
                    body, want, headers = None, b"%s 0" % method.encode(), {}
                else:
                    body, headers = b"b" * size, {}
                    want = b"%s %d" % (method.encode(), size)
                try:
                    conn.request(method, "/r/%d/%d" % (i, n), body=body, headers=headers,
                                 encode_chunked=size == "chunked")
                    r = conn.getresponse()
                    data = r.read()
                    ok = r.status == 200 and (data == want or method == "HEAD")
                    outcome = "ok" if ok else (r.status, data)
                except Exception as e:  # noqa: BLE001
                    outcome = repr(e)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10 * SLOW)
                with lock:
                    results.append((method, outcome))
            conn.close()

        ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120 * SLOW)
        assert len(results) == 6 * 300
        assert [r for r in results if r[0] != "POST" and r[1] != "ok"] == []
        post_failures = [r for r in results if r[0] == "POST" and r[1] != "ok"]
        assert all(f[1][0] == 502 and b'"cause":"reset"' in f[1][1] for f in post_failures), \
            post_failures[:3]
        assert len(post_failures) <= up.dropped, (len(post_failures), up.dropped, up.closes)
        assert min(up.closes.values()) > 20, up.closes
        # Requests that met a connection the upstream had closed were replayed (the
        # gauges are refreshed once a second).
        assert wait_for(lambda: p.metric("trellis_proxy_upstream_stale_retries_total") >
                        up.closes["on-next"], timeout=3)
    finally:
        up.stop()
