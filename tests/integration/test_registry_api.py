# SPDX-License-Identifier: Apache-2.0
"""The catalog half of `trellis server`: Consul's agent, catalog and health API.

Covers registration shapes, real HTTP/TCP/TTL health checks against servers the test
starts, DeregisterCriticalServiceAfter, ?passing/?tag/?filter, blocking queries that
wake only the watchers of the service that changed, index monotonicity, durability
across kill -9, and bad input.
"""
import http.server
import json
import os
import socket
import threading
import time

import pytest
import requests

from conftest import SLOW


# --------------------------------------------------------------------------- helpers

def server(trellis_proc, tmp_path, sub="data"):
    return trellis_proc(["server", "--data-dir", str(tmp_path / sub)])


def put(p, path, body=None, timeout=10):
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return requests.put(p.url + path, data=body, timeout=timeout * SLOW)


def get(p, path, timeout=10):
    return requests.get(p.url + path, timeout=timeout * SLOW)


def index_of(r):
    return int(r.headers["X-Consul-Index"])


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def checks(p):
    r = get(p, "/v1/agent/checks")
    assert r.status_code == 200
    return r.json()


def status_of(p, check_id):
    c = checks(p).get(check_id)
    return c["Status"] if c else None


def register(p, body, query=""):
    r = put(p, "/v1/agent/service/register" + query, body)
    assert r.status_code == 200, r.text
    return r


def assert_json_error(r, status, *needles):
    assert r.status_code == status, (r.status_code, r.text)
    msg = r.json()["error"]["message"]
    for n in needles:
        assert n in msg, msg
    return msg


class _Health(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        st = self.server.status
        body = ("status %d\n" % st).encode()
        self.send_response(st)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class HealthServer:
    """A tiny HTTP server whose answer the test controls; stop() and start() again
    reuse the same port."""

    def __init__(self, port=0, status=200):
        self.status = status
        self.httpd = None
        self.port = port
        self.start()

    def start(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _Health)
        self.httpd.daemon_threads = True
        self.httpd.status = self.status
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set_status(self, st):
        self.status = st
        self.httpd.status = st

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d/health" % self.port


class TcpServer:
    """A listener on a fixed port; with accept=True it takes and closes connections,
    otherwise they wait in the backlog (a peer that never answers)."""

    def __init__(self, port=0, accept=True):
        self.port = port
        self.accept = accept
        self.start()

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        if self.accept:
            threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    @staticmethod
    def _accept(sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Watch(threading.Thread):
    """One blocking query in the background: .elapsed, .response once done."""

    def __init__(self, p, path, index, wait):
        super().__init__(daemon=True)
        sep = "&" if "?" in path else "?"
        self.url = "%s%s%sindex=%d&wait=%s" % (p.url, path, sep, index, wait)
        self.response = None
        self.elapsed = None
        self.start()
        time.sleep(0.1)  # let the query reach the server and park

    def run(self):
        t0 = time.monotonic()
        self.response = requests.get(self.url, timeout=60 * SLOW)
        self.elapsed = time.monotonic() - t0


# --------------------------------------------------------------------------- registration

def test_register_list_and_deregister(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "web1", "Name": "web", "Tags": ["v1", "prod"], "Address": "10.0.0.1",
                 "Port": 8080, "Meta": {"env": "prod"}, "Weights": {"Passing": 3, "Warning": 1},
                 "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 8080}}})
    # snake_case field names, ID defaulting to the name
    register(p, {"name": "db", "port": 5432, "tags": ["primary"], "enable_tag_override": True})

    svcs = get(p, "/v1/agent/services").json()
    assert set(svcs) == {"web1", "db"}
    w = svcs["web1"]
    assert (w["Service"], w["Port"], w["Address"], w["Tags"]) == ("web", 8080, "10.0.0.1",
                                                                  ["v1", "prod"])
    assert w["Meta"] == {"env": "prod"} and w["Weights"] == {"Passing": 3, "Warning": 1}
    assert w["TaggedAddresses"]["lan"] == {"Address": "10.0.0.1", "Port": 8080}
    assert svcs["db"]["EnableTagOverride"] is True and svcs["db"]["ID"] == "db"

    r = get(p, "/v1/agent/service/web1")
    assert r.status_code == 200 and r.json()["ID"] == "web1"
    assert get(p, "/v1/agent/service/nope").status_code == 404

    r = get(p, "/v1/catalog/services")
    assert r.status_code == 200 and r.json() == {"db": ["primary"], "web": ["v1", "prod"]}
    assert index_of(r) >= 1

    entries = get(p, "/v1/catalog/service/web").json()
    assert len(entries) == 1
    e = entries[0]
    for k in ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "ServiceID",
              "ServiceName", "ServiceTags", "ServiceAddress", "ServicePort", "ServiceMeta",
              "ServiceWeights", "ServiceEnableTagOverride", "CreateIndex", "ModifyIndex"):
        assert k in e, k
    assert (e["ServiceID"], e["ServiceName"], e["ServicePort"]) == ("web1", "web", 8080)
    assert e["Datacenter"] == "dc1" and e["ServiceMeta"] == {"env": "prod"}

    nodes = get(p, "/v1/catalog/nodes").json()
    assert len(nodes) == 1 and nodes[0]["Node"] == e["Node"]
    node = get(p, "/v1/catalog/node/" + e["Node"]).json()
    assert set(node["Services"]) == {"web1", "db"}

    assert put(p, "/v1/agent/service/deregister/web1").status_code == 200
    assert set(get(p, "/v1/agent/services").json()) == {"db"}
    assert get(p, "/v1/catalog/service/web").json() == []
    assert "web" not in get(p, "/v1/catalog/services").json()
    assert_json_error(put(p, "/v1/agent/service/deregister/web1"), 404, "Unknown service ID")


def test_agent_self_members_are_objects(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    body = get(p, "/v1/agent/self").json()
    for k, v in body.items():
        assert isinstance(v, dict) or v is None, k
    cfg = body["Config"]
    assert cfg["Datacenter"] == "dc1" and cfg["NodeName"] and cfg["NodeID"]
    assert cfg["Server"] is True and isinstance(cfg["Version"], str)
    for k in ("Member", "Meta", "Stats"):
        assert isinstance(body[k], dict)


def test_health_service_shape(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "api1", "Name": "api", "Port": 9000, "Tags": ["t"],
                 "Check": {"TTL": "30s", "Status": "passing", "Notes": "n"}})
    r = get(p, "/v1/health/service/api")
    assert r.status_code == 200 and index_of(r) >= 1
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert "X-Consul-LastContact" in r.headers
    [e] = r.json()
    assert set(e) == {"Node", "Service", "Checks"}
    for k in ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"):
        assert k in e["Node"], k
    for k in ("ID", "Service", "Tags", "Address", "Meta", "Port", "Weights"):
        assert k in e["Service"], k
    ids = [c["CheckID"] for c in e["Checks"]]
    assert ids == ["serfHealth", "service:api1"]
    c = e["Checks"][1]
    for k in ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
              "ServiceTags"):
        assert k in c, k
    assert (c["Status"], c["ServiceName"], c["ServiceTags"], c["Notes"]) == ("passing", "api",
                                                                            ["t"], "n")
    assert e["Checks"][0]["Status"] == "passing"
    hc = get(p, "/v1/health/checks/api").json()
    assert [x["CheckID"] for x in hc] == ["service:api1"]
    node = e["Node"]["Node"]
    assert [x["CheckID"] for x in get(p, "/v1/health/node/" + node).json()] == [
        "serfHealth", "service:api1"]
    # ?dc, ?stale, ?near, ?ns are accepted
    r = get(p, "/v1/health/service/api?dc=dc1&stale&near=_agent&ns=default")
    assert r.status_code == 200 and len(r.json()) == 1
    assert get(p, "/v1/health/service/api?dc=elsewhere").status_code == 500


def test_inline_check_ids_and_replace_existing_checks(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "a1", "Name": "a", "Checks": [{"TTL": "30s"}, {"TTL": "30s"},
                                                      {"CheckID": "mine", "TTL": "30s"}]})
    assert set(checks(p)) == {"service:a1:1", "service:a1:2", "mine"}
    assert all(c["Status"] == "critical" for c in checks(p).values())
    register(p, {"ID": "a1", "Name": "a", "Check": {"TTL": "30s"}})
    assert set(checks(p)) == {"service:a1", "service:a1:1", "service:a1:2", "mine"}
    register(p, {"ID": "a1", "Name": "a", "Check": {"TTL": "30s"}}, "?replace-existing-checks")
    assert set(checks(p)) == {"service:a1"}
    assert checks(p)["service:a1"]["Name"] == "Service 'a' check"


def test_standalone_check_register_and_deregister(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "s1", "Name": "s"})
    r = put(p, "/v1/agent/check/register", {"Name": "ttl-one", "ServiceID": "s1", "TTL": "30s",
                                             "Status": "warning"})
    assert r.status_code == 200, r.text
    c = checks(p)["ttl-one"]
    assert (c["ServiceID"], c["ServiceName"], c["Status"]) == ("s1", "s", "warning")
    assert_json_error(put(p, "/v1/agent/check/register", {"Name": "x", "ServiceID": "nope",
                                                           "TTL": "1s"}), 400, "nope")
    assert_json_error(put(p, "/v1/agent/check/register", {"TTL": "1s"}), 400, "Name")
    assert put(p, "/v1/agent/check/deregister/ttl-one").status_code == 200
    assert "ttl-one" not in checks(p)
    assert_json_error(put(p, "/v1/agent/check/deregister/ttl-one"), 404, "Unknown check ID")


# --------------------------------------------------------------------------- health checks

def test_http_check_follows_the_upstream(trellis_proc, tmp_path):
    up = HealthServer()
    p = server(trellis_proc, tmp_path)
    try:
        register(p, {"ID": "h1", "Name": "h", "Port": up.port,
                     "Check": {"HTTP": up.url, "Interval": "200ms", "Timeout": "1s"}})
        wait_for(lambda: status_of(p, "service:h1") == "passing", 5, "passing")
        out = checks(p)["service:h1"]["Output"]
        assert out.startswith("HTTP GET %s: 200 OK Output: status 200" % up.url), out
        assert [e["Service"]["ID"] for e in get(p, "/v1/health/service/h?passing").json()] == ["h1"]

        up.set_status(429)
        wait_for(lambda: status_of(p, "service:h1") == "warning", 5, "429 -> warning")
        assert get(p, "/v1/health/service/h?passing=1").json() == []
        up.set_status(503)
        wait_for(lambda: status_of(p, "service:h1") == "critical", 5, "503 -> critical")
        up.set_status(200)
        wait_for(lambda: status_of(p, "service:h1") == "passing", 5, "passing again")

        up.stop()
        wait_for(lambda: status_of(p, "service:h1") == "critical", 5, "stopped -> critical")
        assert "HTTP GET" in checks(p)["service:h1"]["Output"]
        assert get(p, "/v1/health/service/h?passing").json() == []
        up.start()
        wait_for(lambda: status_of(p, "service:h1") == "passing", 5, "restarted -> passing")
    finally:
        up.stop()


def test_http_check_timeout(trellis_proc, tmp_path):
    # A listener that accepts and never answers.
    silent = TcpServer(accept=False)
    p = server(trellis_proc, tmp_path)
    try:
        register(p, {"ID": "slow1", "Name": "slow", "Check": {
            "HTTP": "http://127.0.0.1:%d/" % silent.port, "Interval": "300ms",
            "Timeout": "200ms", "Status": "passing"}})
        wait_for(lambda: status_of(p, "service:slow1") == "critical", 5, "timeout -> critical")
        assert "timed out" in checks(p)["service:slow1"]["Output"]
    finally:
        silent.stop()


def test_tcp_check_follows_the_listener(trellis_proc, tmp_path):
    t = TcpServer()
    p = server(trellis_proc, tmp_path)
    try:
        register(p, {"ID": "t1", "Name": "t", "Check": {"TCP": "127.0.0.1:%d" % t.port,
                                                         "Interval": "200ms"}})
        wait_for(lambda: status_of(p, "service:t1") == "passing", 5, "passing")
        assert checks(p)["service:t1"]["Output"] == "TCP connect 127.0.0.1:%d: Success" % t.port
        t.stop()
        wait_for(lambda: status_of(p, "service:t1") == "critical", 5, "closed -> critical")
        assert "connect" in checks(p)["service:t1"]["Output"]
        t.start()
        wait_for(lambda: status_of(p, "service:t1") == "passing", 5, "reopened -> passing")
    finally:
        t.stop()


def test_failures_before_critical_holds_the_status(trellis_proc, tmp_path):
    up = HealthServer()
    p = server(trellis_proc, tmp_path)
    try:
        register(p, {"ID": "f1", "Name": "f", "Check": {
            "HTTP": up.url, "Interval": "100ms", "FailuresBeforeCritical": 1000}})
        wait_for(lambda: status_of(p, "service:f1") == "passing", 5, "passing")
        up.stop()
        time.sleep(1.0)
        assert status_of(p, "service:f1") == "passing"
    finally:
        up.stop()


def test_a_thousand_checks_share_one_loop(trellis_proc, tmp_path):
    t = TcpServer()
    p = server(trellis_proc, tmp_path)
    n = 1000
    try:
        def worker(k):
            s = requests.Session()
            for i in range(k, n, 16):
                r = s.put(p.url + "/v1/agent/service/register", data=json.dumps({
                    "ID": "m%d" % i, "Name": "many%d" % (i % 100),
                    "Check": {"TCP": "127.0.0.1:%d" % t.port, "Interval": "1s"}}),
                    timeout=30 * SLOW)
                assert r.status_code == 200
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wait_for(lambda: len(get(p, "/v1/health/state/passing").json()) == n + 1, 15,
                 "all checks passing")
        tasks = len(os.listdir("/proc/%d/task" % p.p.pid))
        assert tasks < 16, "%d threads for %d checks" % (tasks, n)
    finally:
        t.stop()


def test_ttl_updates_and_expiry(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "w1", "Name": "w", "Check": {"TTL": "%ds" % int(2 * SLOW)}})
    cid = "service:w1"
    assert status_of(p, cid) == "critical"
    assert put(p, "/v1/agent/check/pass/%s?note=all%%20good" % cid).status_code == 200
    c = checks(p)[cid]
    assert (c["Status"], c["Output"]) == ("passing", "all good")
    assert put(p, "/v1/agent/check/warn/" + cid).status_code == 200
    assert status_of(p, cid) == "warning"
    assert put(p, "/v1/agent/check/fail/%s?note=down" % cid).status_code == 200
    assert (checks(p)[cid]["Status"], checks(p)[cid]["Output"]) == ("critical", "down")
    r = put(p, "/v1/agent/check/update/" + cid, {"Status": "passing", "Output": "via update"})
    assert r.status_code == 200
    assert (checks(p)[cid]["Status"], checks(p)[cid]["Output"]) == ("passing", "via update")
    assert_json_error(put(p, "/v1/agent/check/update/" + cid, {"Status": "bogus"}), 400,
                      "Status")
    assert_json_error(put(p, "/v1/agent/check/pass/nope"), 404, "Unknown check ID")
    # No update within the TTL: critical.
    wait_for(lambda: status_of(p, cid) == "critical", 6, "TTL expiry")
    assert checks(p)[cid]["Output"].startswith("TTL expired")
    # An update brings it back; old clients (python-consul 0.7) send it as GET.
    assert get(p, "/v1/agent/check/pass/" + cid).status_code == 200
    assert status_of(p, cid) == "passing"


def test_ttl_update_on_http_check_is_400(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "x1", "Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/",
                                                     "Interval": "10s"}})
    assert_json_error(put(p, "/v1/agent/check/pass/service:x1"), 400, "not a TTL check")


def test_deregister_critical_service_after(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "doomed", "Name": "d", "Check": {
        "TTL": "30s", "DeregisterCriticalServiceAfter": "1s"}})
    register(p, {"ID": "healthy", "Name": "d", "Check": {
        "TTL": "30s", "Status": "passing", "DeregisterCriticalServiceAfter": "1s"}})
    wait_for(lambda: "doomed" not in get(p, "/v1/agent/services").json(), 6, "reaping")
    assert "service:doomed" not in checks(p)
    time.sleep(1.5)
    assert "healthy" in get(p, "/v1/agent/services").json()
    assert [e["Service"]["ID"] for e in get(p, "/v1/health/service/d").json()] == ["healthy"]


def test_maintenance_mode(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "m1", "Name": "m", "Check": {"TTL": "30s", "Status": "passing"}})
    assert put(p, "/v1/agent/service/maintenance/m1?enable=true&reason=upgrade").status_code == 200
    c = checks(p)["_service_maintenance:m1"]
    assert (c["Status"], c["Notes"]) == ("critical", "upgrade")
    assert get(p, "/v1/health/service/m?passing").json() == []
    assert put(p, "/v1/agent/service/maintenance/m1?enable=false").status_code == 200
    assert len(get(p, "/v1/health/service/m?passing").json()) == 1
    assert put(p, "/v1/agent/service/maintenance/zz?enable=true").status_code == 404
    assert put(p, "/v1/agent/service/maintenance/m1").status_code == 400


# --------------------------------------------------------------------------- queries

def test_passing_and_tag_filters(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "a", "Name": "q", "Tags": ["x", "y"], "Check": {"TTL": "30s",
                                                                       "Status": "passing"}})
    register(p, {"ID": "b", "Name": "q", "Tags": ["x"], "Check": {"TTL": "30s"}})
    register(p, {"ID": "c", "Name": "q", "Tags": ["y"]})  # no checks: passing

    def ids(query):
        r = get(p, "/v1/health/service/q" + query)
        assert r.status_code == 200, r.text
        return [e["Service"]["ID"] for e in r.json()]

    assert ids("") == ["a", "b", "c"]
    assert ids("?passing") == ["a", "c"]
    assert ids("?passing=1") == ["a", "c"]
    assert ids("?passing=false") == ["a", "b", "c"]
    assert ids("?tag=x") == ["a", "b"]
    assert ids("?tag=x&tag=y") == ["a"]
    assert ids("?tag=x&passing") == ["a"]
    assert ids("?tag=nope") == []
    r = get(p, "/v1/catalog/service/q?tag=y")
    assert [e["ServiceID"] for e in r.json()] == ["a", "c"]
    assert get(p, "/v1/health/service/unknown").json() == []
    st = get(p, "/v1/health/state/critical").json()
    assert [c["CheckID"] for c in st] == ["service:b"]
    passing = [c["CheckID"] for c in get(p, "/v1/health/state/passing").json()]
    assert passing == ["serfHealth", "service:a"]
    assert len(get(p, "/v1/health/state/any").json()) == 3
    assert_json_error(get(p, "/v1/health/state/bogus"), 400, "bogus")


def test_filter_expressions(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "a1", "Name": "a", "Tags": ["prod"], "Meta": {"env": "prod"}})
    register(p, {"ID": "b1", "Name": "b", "Tags": ["dev"], "Meta": {"env": "dev"},
                 "Check": {"TTL": "30s"}})
    register(p, {"ID": "c1", "Name": "c"})

    def q(path, expr):
        return requests.get(p.url + path, params={"filter": expr}, timeout=10 * SLOW)

    # Dapr's cache watcher
    r = q("/v1/health/state/any", 'ServiceName=="a" or ServiceName=="b"')
    assert r.status_code == 200 and {c["ServiceName"] for c in r.json()} == {"b"}
    assert set(q("/v1/catalog/services", '"prod" in ServiceTags').json()) == {"a"}
    assert set(q("/v1/catalog/services", 'ServiceMeta.env == "dev"').json()) == {"b"}
    assert [e["Service"]["ID"] for e in q("/v1/health/service/a",
                                          'Service.Meta.env == "prod"').json()] == ["a1"]
    assert q("/v1/health/service/a", 'Service.Meta.env != "prod"').json() == []
    assert set(q("/v1/agent/services", 'Service == "a" or Service == "c"').json()) == {"a1", "c1"}
    assert set(q("/v1/agent/services", 'not (Tags contains "prod") and Meta is not empty')
               .json()) == {"b1"}
    assert set(q("/v1/agent/services", 'Service matches "^[ab]$"').json()) == {"a1", "b1"}
    assert len(q("/v1/health/service/b", 'Checks.Status == "critical"').json()) == 1
    for bad in ('ServiceName ~= "a"', 'Bogus == "x"', 'ServiceName ==', '(ServiceName == "a"'):
        assert_json_error(q("/v1/health/state/any", bad), 400, "filter")


def test_blocking_wakes_only_the_changed_service(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "a1", "Name": "a", "Check": {"TTL": "60s"}})
    register(p, {"ID": "b1", "Name": "b", "Check": {"TTL": "60s"}})
    ia = index_of(get(p, "/v1/health/service/a"))
    ib = index_of(get(p, "/v1/health/service/b"))
    ic = index_of(get(p, "/v1/catalog/services"))
    assert ia >= 1 and ib >= 1 and ic >= 1

    wait = 2.0 * SLOW
    wa = Watch(p, "/v1/health/service/a", ia, "60s")
    wb = Watch(p, "/v1/health/service/b", ib, "%dms" % int(wait * 1000))
    wc = Watch(p, "/v1/catalog/services", ic, "%dms" % int(wait * 1000))
    t0 = time.monotonic()
    # A health change of a: wakes a's watcher only (the service list did not change).
    assert put(p, "/v1/agent/check/pass/service:a1").status_code == 200
    wa.join(10 * SLOW)
    assert wa.response is not None, "a's watcher did not wake"
    assert wa.response.status_code == 200 and index_of(wa.response) > ia
    assert wa.response.json()[0]["Checks"][1]["Status"] == "passing"
    assert time.monotonic() - t0 < 1.5 * SLOW
    # More changes to a while b's watcher waits.
    for st in ("fail", "pass", "warn"):
        assert put(p, "/v1/agent/check/%s/service:a1" % st).status_code == 200
    wb.join(30 * SLOW)
    wc.join(30 * SLOW)
    assert wb.response.status_code == 200
    assert wb.elapsed >= wait * 0.95, "b's watcher woke after %.2fs" % wb.elapsed
    assert index_of(wb.response) == ib
    assert wc.elapsed >= wait * 0.95, "catalog watcher woke after %.2fs" % wc.elapsed
    assert index_of(wc.response) == ic

    # A change to the service list wakes the catalog watcher.
    ic = index_of(get(p, "/v1/catalog/services"))
    wc = Watch(p, "/v1/catalog/services", ic, "60s")
    register(p, {"ID": "n1", "Name": "new"})
    wc.join(10 * SLOW)
    assert wc.response is not None and "new" in wc.response.json()
    assert index_of(wc.response) > ic

    # Deregistration wakes the service's watchers, and its index does not go back.
    ia = index_of(get(p, "/v1/health/service/a"))
    wa = Watch(p, "/v1/health/service/a", ia, "60s")
    assert put(p, "/v1/agent/service/deregister/a1").status_code == 200
    wa.join(10 * SLOW)
    assert wa.response is not None and wa.response.json() == []
    ia2 = index_of(wa.response)
    assert ia2 > ia
    assert index_of(get(p, "/v1/health/service/a")) == ia2


def test_indexes_are_at_least_one_and_monotonic(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    paths = ["/v1/catalog/services", "/v1/catalog/service/s", "/v1/health/service/s",
             "/v1/health/checks/s", "/v1/health/state/any", "/v1/agent/services",
             "/v1/agent/checks", "/v1/catalog/nodes", "/v1/health/service/never-registered"]
    last = {}

    def observe():
        for path in paths:
            r = get(p, path)
            assert r.status_code == 200, (path, r.text)
            i = index_of(r)
            assert i >= 1, path
            assert i >= last.get(path, 0), "%s went back from %d to %d" % (path, last[path], i)
            last[path] = i

    observe()
    register(p, {"ID": "s1", "Name": "s", "Check": {"TTL": "60s"}})
    observe()
    register(p, {"ID": "s2", "Name": "s", "Check": {"TTL": "60s", "Status": "passing"}})
    observe()
    put(p, "/v1/agent/check/pass/service:s1")
    observe()
    # Deleting the newest object must not lower the index.
    put(p, "/v1/agent/service/deregister/s2")
    observe()
    put(p, "/v1/agent/service/deregister/s1")
    observe()
    # An identical re-registration changes nothing and takes no index.
    register(p, {"ID": "s3", "Name": "s"})
    before = index_of(get(p, "/v1/health/service/s"))
    register(p, {"ID": "s3", "Name": "s"})
    assert index_of(get(p, "/v1/health/service/s")) == before
    observe()


# --------------------------------------------------------------------------- durability

def test_registrations_survive_kill_9(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "web1", "Name": "web", "Tags": ["a"], "Port": 80, "Meta": {"k": "v"},
                 "Checks": [{"TTL": "60s"}, {"TCP": "127.0.0.1:1", "Interval": "30s"}]})
    register(p, {"ID": "web2", "Name": "web", "Port": 81})
    register(p, {"ID": "gone", "Name": "gone"})
    put(p, "/v1/agent/check/pass/service:web1:1?note=fine")
    put(p, "/v1/agent/check/register", {"Name": "node-check", "TTL": "60s", "Status": "warning"})
    put(p, "/v1/agent/service/deregister/gone")
    before = {path: index_of(get(p, path)) for path in (
        "/v1/health/service/web", "/v1/health/service/gone", "/v1/catalog/services",
        "/v1/health/state/any")}
    services_before = get(p, "/v1/agent/services").json()
    p.p.kill()
    p.p.wait()

    p2 = server(trellis_proc, tmp_path)
    assert get(p2, "/v1/agent/services").json() == services_before
    c = checks(p2)
    assert set(c) == {"service:web1:1", "service:web1:2", "node-check"}
    assert (c["service:web1:1"]["Status"], c["service:web1:1"]["Output"]) == ("passing", "fine")
    assert c["node-check"]["Status"] == "warning"
    for path, i in before.items():
        assert index_of(get(p2, path)) >= i, path
    # New writes continue above the old indexes.
    register(p2, {"ID": "web3", "Name": "web"})
    assert index_of(get(p2, "/v1/health/service/web")) > before["/v1/health/service/web"]


# --------------------------------------------------------------------------- bad input

BAD_BODIES = [
    ("{not json", 400, "JSON"),
    ("[1,2]", 400, "object"),
    ({"Port": 80}, 400, "Name"),
    ({"Name": ""}, 400, "Name"),
    ({"Name": "x", "Port": "80"}, 400, "Port"),
    ({"Name": "x", "Port": 70000}, 400, "Port"),
    ({"Name": "x", "Tags": "a,b"}, 400, "Tags"),
    ({"Name": "x", "Meta": {"k": 1}}, 400, "Meta"),
    ({"Name": "x", "Check": {"TTL": "10 seconds"}}, 400, "TTL", "10 seconds"),
    ({"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "often"}}, 400,
     "Interval"),
    ({"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/"}}, 400, "Interval"),
    ({"Name": "x", "Check": {"Interval": "10s"}}, 400, "unknown check type"),
    ({"Name": "x", "Checks": [{"TTL": "5s"}, {"Notes": "?"}]}, 400, "Checks[1]",
     "unknown check type"),
    ({"Name": "x", "Check": {"GRPC": "127.0.0.1:1", "Interval": "10s"}}, 400, "GRPC",
     "not supported"),
    ({"Name": "x", "Check": {"Args": ["/bin/true"], "Interval": "10s"}}, 400, "Args",
     "not supported"),
    ({"Name": "x", "Check": {"H2PING": "127.0.0.1:1", "Interval": "10s"}}, 400, "H2PING"),
    ({"Name": "x", "Check": {"HTTP": "https://127.0.0.1/", "Interval": "10s"}}, 400, "https"),
    ({"Name": "x", "Check": {"TCP": "nohost", "Interval": "10s"}}, 400, "TCP"),
    ({"Name": "x", "Check": {"TTL": "5s", "Status": "fine"}}, 400, "Status"),
    ({"Name": "x", "Kind": "connect-proxy"}, 400, "Kind"),
]


@pytest.mark.parametrize("body,status,needles", [(b[0], b[1], b[2:]) for b in BAD_BODIES])
def test_bad_registrations_are_rejected(trellis_proc, tmp_path, body, status, needles):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "keep", "Name": "keep", "Check": {"TTL": "60s"}})
    before = get(p, "/v1/agent/services").json()
    idx = index_of(get(p, "/v1/health/state/any"))
    r = put(p, "/v1/agent/service/register", body)
    assert_json_error(r, status, *needles)
    assert get(p, "/v1/agent/services").json() == before
    assert set(checks(p)) == {"service:keep"}
    assert index_of(get(p, "/v1/health/state/any")) == idx


def test_ten_mib_body_is_413(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "keep", "Name": "keep"})
    body = b'{"Name":"big","Meta":{"k":"' + b"x" * (10 * 1024 * 1024) + b'"}}'
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(10 * SLOW)
    s.sendall(b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    try:
        s.sendall(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    err = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert err["error"]["code"] == "body_too_large"
    assert set(get(p, "/v1/agent/services").json()) == {"keep"}


def test_bad_check_updates_and_registrations(trellis_proc, tmp_path):
    p = server(trellis_proc, tmp_path)
    register(p, {"ID": "k", "Name": "k", "Check": {"TTL": "60s"}})
    assert_json_error(put(p, "/v1/agent/check/update/service:k", "{"), 400, "JSON")
    assert_json_error(put(p, "/v1/agent/check/register", {"Name": "c", "TTL": "-5s"}), 400, "TTL")
    assert_json_error(put(p, "/v1/agent/check/register", {"Name": "c", "TTL": "5s",
                                                           "Interval": "5s"}), 400, "Interval")
    assert_json_error(get(p, "/v1/health/service/k?index=abc"), 400, "index")
    assert_json_error(get(p, "/v1/health/service/k?index=1&wait=soon"), 400, "wait")
    assert status_of(p, "service:k") == "critical"
    assert set(checks(p)) == {"service:k"}
