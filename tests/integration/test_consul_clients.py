# SPDX-License-Identifier: Apache-2.0
"""Debian's python3-consul library (0.7.1, `import consul`) against a real trellis
server, used the way its users call it: KV get/put/delete with index, recurse, keys,
flags and check-and-set, blocking KV reads, service registration with checks, the
agent, catalog and health views, deregistration and TTL updates.

This library predates Consul 1.0 and writes its JSON in lower case ("name", "check":
{"http", "interval"}); Consul decodes field names case-insensitively, so trellis has to
as well. It also sends GET, not PUT, for service deregistration and TTL updates.
"""
import threading
import time

import consul
import pytest

from conftest import SLOW
from registry_helpers import Upstream, wait_for


@pytest.fixture
def srv(trellis_proc, tmp_path):
    return trellis_proc(["server", "--data-dir", str(tmp_path / "data")])


@pytest.fixture
def c(srv):
    return consul.Consul(host="127.0.0.1", port=srv.port)


@pytest.fixture
def upstreams():
    ups = []

    def make(name, **kw):
        u = Upstream(name, **kw)
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


def later(delay, fn, *args, **kw):
    """Runs fn in a thread after `delay` seconds; returns the thread."""
    def run():
        time.sleep(delay)
        fn(*args, **kw)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ----------------------------------------------------------------------------- kv


def test_kv_put_get_returns_value_and_index(c):
    assert c.kv.put("app/name", "trellis") is True
    index, entry = c.kv.get("app/name")
    assert int(index) >= 1
    assert entry["Key"] == "app/name"
    assert entry["Value"] == b"trellis"
    assert entry["Flags"] == 0
    assert int(index) == entry["ModifyIndex"]
    assert entry["CreateIndex"] == entry["ModifyIndex"]
    assert c.kv.put("app/name", b"\x00binary\xff") is True
    index2, entry2 = c.kv.get("app/name")
    assert entry2["Value"] == b"\x00binary\xff"
    assert int(index2) > int(index)
    assert entry2["CreateIndex"] == entry["CreateIndex"]


def test_kv_get_missing_returns_none_with_an_index(c):
    index, entry = c.kv.get("does/not/exist")
    assert entry is None
    assert int(index) >= 1  # the library reads X-Consul-Index even on 404


def test_kv_flags(c):
    assert c.kv.put("flagged", "v", flags=2 ** 63 - 1) is True
    _, entry = c.kv.get("flagged")
    assert entry["Flags"] == 2 ** 63 - 1
    # Above 2^63-1 trellis refuses (400) instead of handing back a different number:
    # most JSON decoders, jansson included, cannot carry such values (docs/registry.md).
    with pytest.raises(Exception):
        c.kv.put("flagged", "w", flags=2 ** 63 + 5)
    _, entry = c.kv.get("flagged")
    assert entry["Value"] == b"v"


def test_kv_recurse_and_keys(c):
    for k in ("cfg/a", "cfg/b", "cfg/sub/c", "cfgx", "other"):
        assert c.kv.put(k, k.upper()) is True
    index, entries = c.kv.get("cfg/", recurse=True)
    assert [e["Key"] for e in entries] == ["cfg/a", "cfg/b", "cfg/sub/c"]
    assert [e["Value"] for e in entries] == [b"CFG/A", b"CFG/B", b"CFG/SUB/C"]
    # The index of a prefix is the highest ModifyIndex under it.
    assert int(index) == max(e["ModifyIndex"] for e in entries)
    _, keys = c.kv.get("cfg/", keys=True)
    assert keys == ["cfg/a", "cfg/b", "cfg/sub/c"]
    _, keys = c.kv.get("cfg/", keys=True, separator="/")
    assert keys == ["cfg/a", "cfg/b", "cfg/sub/"]
    _, none = c.kv.get("nothing/", recurse=True)
    assert none is None


def test_kv_cas(c):
    assert c.kv.put("leader", "node-a", cas=0) is True
    assert c.kv.put("leader", "node-b", cas=0) is False  # exists: create-only fails
    _, entry = c.kv.get("leader")
    assert entry["Value"] == b"node-a"
    idx = entry["ModifyIndex"]
    assert c.kv.put("leader", "node-c", cas=idx) is True
    assert c.kv.put("leader", "node-d", cas=idx) is False  # stale index
    _, entry = c.kv.get("leader")
    assert entry["Value"] == b"node-c"


def test_kv_delete_plain_cas_and_recurse(c):
    for k in ("d/1", "d/2", "d/3/x", "dz"):
        c.kv.put(k, "v")
    assert c.kv.delete("d/1") is True
    assert c.kv.get("d/1")[1] is None
    _, e2 = c.kv.get("d/2")
    assert c.kv.delete("d/2", cas=e2["ModifyIndex"] + 100) is False
    assert c.kv.get("d/2")[1] is not None
    assert c.kv.delete("d/2", cas=e2["ModifyIndex"]) is True
    assert c.kv.get("d/2")[1] is None
    assert c.kv.delete("d/", recurse=True) is True
    assert c.kv.get("d/", recurse=True)[1] is None
    assert c.kv.get("dz")[1] is not None


def test_kv_blocking_get_wakes_on_change(c):
    c.kv.put("watched", "v1")
    index, _ = c.kv.get("watched")
    t = later(0.5, c.kv.put, "watched", "v2")
    start = time.monotonic()
    index2, entry = c.kv.get("watched", index=index, wait="20s")
    elapsed = time.monotonic() - start
    t.join()
    assert entry["Value"] == b"v2"
    assert int(index2) > int(index)
    assert 0.3 < elapsed < 5 * SLOW, elapsed


def test_kv_blocking_get_times_out_unchanged(c):
    c.kv.put("quiet", "v")
    index, _ = c.kv.get("quiet")
    start = time.monotonic()
    index2, entry = c.kv.get("quiet", index=index, wait="1s")
    elapsed = time.monotonic() - start
    assert entry["Value"] == b"v"
    assert index2 == index
    # wait=1s plus Consul's jitter of up to wait/16.
    assert 0.9 < elapsed < 3 * SLOW, elapsed


def test_kv_blocking_get_on_missing_key_wakes_when_created(c):
    index, entry = c.kv.get("soon")
    assert entry is None
    t = later(0.3, c.kv.put, "soon", "here")
    index2, entry = c.kv.get("soon", index=index, wait="20s")
    t.join()
    assert entry is not None and entry["Value"] == b"here"
    assert int(index2) > int(index)


def test_kv_blocking_recurse_wakes_on_child_change_and_delete(c):
    c.kv.put("tree/a", "1")
    c.kv.put("tree/b", "2")
    index, _ = c.kv.get("tree/", recurse=True)
    t = later(0.3, c.kv.put, "tree/c/d", "3")
    index2, entries = c.kv.get("tree/", recurse=True, index=index, wait="20s")
    t.join()
    assert [e["Key"] for e in entries] == ["tree/a", "tree/b", "tree/c/d"]
    assert int(index2) > int(index)
    # A delete under the prefix wakes the watcher too.
    t = later(0.3, c.kv.delete, "tree/a")
    start = time.monotonic()
    index3, entries = c.kv.get("tree/", recurse=True, index=index2, wait="20s")
    t.join()
    assert time.monotonic() - start < 5 * SLOW
    assert [e["Key"] for e in entries] == ["tree/b", "tree/c/d"]
    assert int(index3) != int(index2)


# ----------------------------------------------------------------------------- services


def register_web(c, up, sid, tags=("web",)):
    assert c.agent.service.register(
        "web", service_id=sid, address="127.0.0.1", port=up.port, tags=list(tags),
        check=consul.Check.http(up.health_url, interval="200ms", timeout="1s")) is True


def passing_ids(c, name):
    _, nodes = c.health.service(name, passing=True)
    return sorted(n["Service"]["ID"] for n in nodes)


def test_agent_service_register_with_checks_and_agent_services(c, upstreams):
    up = upstreams("a")
    register_web(c, up, "web-1", tags=("web", "v1"))
    assert c.agent.service.register(
        "db", service_id="db-1", address="127.0.0.1", port=up.port,
        check=consul.Check.tcp("127.0.0.1", up.port, "200ms", timeout="1s")) is True
    assert c.agent.service.register("batch", service_id="batch-1", port=9999,
                                    check=consul.Check.ttl("30s")) is True
    svcs = c.agent.services()
    assert set(svcs) >= {"web-1", "db-1", "batch-1"}
    w = svcs["web-1"]
    assert (w["ID"], w["Service"], w["Address"], w["Port"]) == ("web-1", "web", "127.0.0.1",
                                                                  up.port)
    assert w["Tags"] == ["web", "v1"]
    assert svcs["batch-1"]["Port"] == 9999
    checks = c.agent.checks()
    by_service = {ch["ServiceID"]: ch for ch in checks.values()}
    assert set(by_service) >= {"web-1", "db-1", "batch-1"}
    assert by_service["batch-1"]["Status"] == "critical"  # TTL checks start critical
    assert by_service["web-1"]["CheckID"] == "service:web-1"


def test_catalog_services(c, upstreams):
    up = upstreams("a")
    register_web(c, up, "web-1", tags=("web", "blue"))
    register_web(c, up, "web-2", tags=("web", "green"))
    assert c.agent.service.register("db", service_id="db-1", port=5432) is True
    index, services = c.catalog.services()
    assert int(index) >= 1
    assert sorted(services["web"]) == ["blue", "green", "web"]
    assert services["db"] == []
    _, nodes = c.catalog.service("web")
    assert sorted(n["ServiceID"] for n in nodes) == ["web-1", "web-2"]


def test_health_service_passing_follows_http_checks(c, upstreams):
    good, bad = upstreams("good"), upstreams("bad", health_status=500)
    register_web(c, good, "web-good")
    register_web(c, bad, "web-bad")
    wait_for(lambda: passing_ids(c, "web") == ["web-good"], 10, "only web-good passing")
    _, all_nodes = c.health.service("web")
    status = {n["Service"]["ID"]: [ch["Status"] for ch in n["Checks"]] for n in all_nodes}
    assert "critical" in status["web-bad"]
    assert all(s == "passing" for s in status["web-good"])
    entry = [n for n in all_nodes if n["Service"]["ID"] == "web-good"][0]
    assert entry["Service"]["Port"] == good.port
    assert entry["Node"]["Node"] and entry["Node"]["Address"]
    # The bad one recovers, the good one goes down.
    bad.health_status = 200
    good.health_status = 503
    wait_for(lambda: passing_ids(c, "web") == ["web-bad"], 10, "only web-bad passing")


def test_health_service_blocking_wakes_when_an_instance_fails(c, upstreams):
    up = upstreams("a")
    register_web(c, up, "web-1")
    wait_for(lambda: passing_ids(c, "web") == ["web-1"], 10, "web-1 passing")
    index, _ = c.health.service("web", passing=True)
    up.health_status = 500
    start = time.monotonic()
    index2, nodes = c.health.service("web", passing=True, index=index, wait="30s")
    # The watch may wake for another change first; keep waiting until it shows.
    while nodes and time.monotonic() - start < 10 * SLOW:
        index2, nodes = c.health.service("web", passing=True, index=index2, wait="30s")
    assert nodes == []
    assert int(index2) > int(index)
    assert time.monotonic() - start < 10 * SLOW


def test_agent_deregister_and_ttl_updates(c):
    """python3-consul 0.7.1 sends these as GET (Consul before 1.0 accepted that)."""
    assert c.agent.service.register("job", service_id="job-1", port=1,
                                    check=consul.Check.ttl("30s")) is True
    assert passing_ids(c, "job") == []
    assert c.agent.check.ttl_pass("service:job-1", notes="all good") is True
    assert passing_ids(c, "job") == ["job-1"]
    assert c.agent.check.ttl_warn("service:job-1") is True
    _, nodes = c.health.service("job")
    assert [ch["Status"] for ch in nodes[0]["Checks"] if ch["CheckID"] == "service:job-1"] == [
        "warning"]
    assert c.agent.service.deregister("job-1") is True
    assert "job-1" not in c.agent.services()
    _, services = c.catalog.services()
    assert "job" not in services


def test_status_leader_and_peers(c):
    assert c.status.leader()
    assert isinstance(c.status.peers(), list)
