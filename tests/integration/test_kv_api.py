# SPDX-License-Identifier: Apache-2.0
"""Consul KV API of `trellis server`: shapes, CAS, blocking queries that wake only the
watchers of what changed, durability across kill -9, and bad input."""
import base64
import os
import signal
import threading
import time

import pytest
import requests

from conftest import SLOW


def srv(trellis_proc, tmp_path, name="data"):
    return trellis_proc(["server", "--data-dir", str(tmp_path / name), "--workers", "2"])


def put(p, key, value, **params):
    r = requests.put("%s/v1/kv/%s" % (p.url, key), data=value, params=params, timeout=10)
    return r


def test_put_get_shapes_and_headers(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    r = put(p, "app/config", b"\x00\x01binary")
    assert r.status_code == 200 and r.json() is True
    r = requests.get(p.url + "/v1/kv/app/config", timeout=5)
    assert r.status_code == 200
    idx = int(r.headers["X-Consul-Index"])
    assert idx >= 1
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert r.headers["X-Consul-LastContact"] == "0"
    [e] = r.json()
    assert e["Key"] == "app/config"
    assert base64.b64decode(e["Value"]) == b"\x00\x01binary"
    assert e["CreateIndex"] == e["ModifyIndex"] == idx
    assert e["Flags"] == 0 and e["LockIndex"] == 0
    raw = requests.get(p.url + "/v1/kv/app/config?raw", timeout=5)
    assert raw.content == b"\x00\x01binary"
    missing = requests.get(p.url + "/v1/kv/nope", timeout=5)
    assert missing.status_code == 404
    assert int(missing.headers["X-Consul-Index"]) >= 1


def test_cas_flags_delete(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    assert put(p, "lock", "a", cas=0).json() is True
    assert put(p, "lock", "b", cas=0).json() is False
    e = requests.get(p.url + "/v1/kv/lock", timeout=5).json()[0]
    assert put(p, "lock", "c", cas=e["ModifyIndex"] + 100).json() is False
    assert put(p, "lock", "c", cas=e["ModifyIndex"], flags=42).json() is True
    e2 = requests.get(p.url + "/v1/kv/lock", timeout=5).json()[0]
    assert e2["Flags"] == 42 and e2["CreateIndex"] == e["CreateIndex"]
    r = requests.delete(p.url + "/v1/kv/lock", params={"cas": e["ModifyIndex"]}, timeout=5)
    assert r.json() is False
    r = requests.delete(p.url + "/v1/kv/lock", params={"cas": e2["ModifyIndex"]}, timeout=5)
    assert r.json() is True
    assert requests.get(p.url + "/v1/kv/lock", timeout=5).status_code == 404
    for k in ("t/a", "t/b/c", "tx"):
        put(p, k, "v")
    assert requests.delete(p.url + "/v1/kv/t/?recurse", timeout=5).json() is True
    keys = requests.get(p.url + "/v1/kv/?keys", timeout=5).json()
    assert keys == ["tx"]


def blocking_get(url, index, wait, out):
    t0 = time.monotonic()
    r = requests.get(url, params={"index": index, "wait": wait}, timeout=60)
    out.append((time.monotonic() - t0, r))


def test_blocking_query_wakes_only_the_changed_prefix(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    put(p, "a/x", "1")
    put(p, "b/x", "1")
    ia = int(requests.get(p.url + "/v1/kv/a/?recurse", timeout=5).headers["X-Consul-Index"])
    ib = int(requests.get(p.url + "/v1/kv/b/?recurse", timeout=5).headers["X-Consul-Index"])
    got_a, got_b = [], []
    ta = threading.Thread(target=blocking_get, args=(p.url + "/v1/kv/a/?recurse", ia, "3s", got_a))
    tb = threading.Thread(target=blocking_get, args=(p.url + "/v1/kv/b/?recurse", ib, "3s", got_b))
    ta.start()
    tb.start()
    time.sleep(0.5 * SLOW)
    put(p, "a/new", "2")
    ta.join()
    tb.join()
    elapsed_a, ra = got_a[0]
    elapsed_b, rb = got_b[0]
    # The watcher of a/ woke at once with the new index ...
    assert elapsed_a < 0.5 * SLOW + 1.0
    assert int(ra.headers["X-Consul-Index"]) > ia
    assert {e["Key"] for e in ra.json()} == {"a/x", "a/new"}
    # ... the watcher of b/ slept through it until its wait ran out, same index.
    assert elapsed_b >= 3.0
    assert int(rb.headers["X-Consul-Index"]) == ib


def test_blocking_on_missing_key_wakes_on_create_and_delete_moves_index(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    r = requests.get(p.url + "/v1/kv/later", timeout=5)
    idx = int(r.headers["X-Consul-Index"])
    got = []
    t = threading.Thread(target=blocking_get, args=(p.url + "/v1/kv/later", idx, "10s", got))
    t.start()
    time.sleep(0.3 * SLOW)
    put(p, "later", "here")
    t.join()
    elapsed, r = got[0]
    assert elapsed < 5 and r.status_code == 200
    created = int(r.headers["X-Consul-Index"])
    requests.delete(p.url + "/v1/kv/later", timeout=5)
    r = requests.get(p.url + "/v1/kv/later", timeout=5)
    assert r.status_code == 404
    # A delete bumps the key's index: a watcher holding `created` must not miss it.
    assert int(r.headers["X-Consul-Index"]) > created


def test_wait_is_honoured_and_sigterm_answers_parked_queries(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    put(p, "k", "v")
    idx = int(requests.get(p.url + "/v1/kv/k", timeout=5).headers["X-Consul-Index"])
    t0 = time.monotonic()
    r = requests.get(p.url + "/v1/kv/k", params={"index": idx, "wait": "1s"}, timeout=10)
    assert 1.0 <= time.monotonic() - t0 < 1.0 + 1.0 / 16 + 1.0 * SLOW
    assert r.status_code == 200
    got = []
    t = threading.Thread(target=blocking_get, args=(p.url + "/v1/kv/k", idx, "5m", got))
    t.start()
    time.sleep(0.3 * SLOW)
    p.signal(signal.SIGTERM)
    t.join(10 * SLOW)
    assert got and got[0][1].status_code == 200 and got[0][0] < 5 * SLOW
    assert p.p.wait(10 * SLOW) == 0


def test_acknowledged_writes_survive_kill_9(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    acked = {}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            key = "w%d/%d" % (n, i)
            try:
                r = s.put("%s/v1/kv/%s" % (p.url, key), data=key, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200 and r.json() is True:
                with lock:
                    acked[key] = int(time.monotonic() * 1000)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    last_index = int(requests.get(p.url + "/v1/kv/nothing", timeout=5).headers["X-Consul-Index"])
    p.p.kill()  # kill -9 mid-stream
    p.p.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50
    p2 = srv(trellis_proc, tmp_path)
    keys = set(requests.get(p2.url + "/v1/kv/?keys", timeout=10).json())
    lost = [k for k in acked if k not in keys]
    assert not lost, "acknowledged but lost after kill -9: %s" % lost[:10]
    r = requests.get(p2.url + "/v1/kv/nothing", timeout=5)
    assert int(r.headers["X-Consul-Index"]) >= last_index  # never backwards
    assert put(p2, "after", "restart").json() is True
    e = requests.get(p2.url + "/v1/kv/after", timeout=5).json()[0]
    assert e["ModifyIndex"] > last_index


@pytest.mark.parametrize("path,params,status,needle", [
    ("/v1/kv/a/%2E%2E/b", {}, 400, ".."),
    ("/v1/kv/a/%2e/b", {}, 400, "segment"),
    ("/v1/kv/a%00b", {}, 400, "NUL"),
    ("/v1/kv/ok", {"cas": "x"}, 400, "cas"),
    ("/v1/kv/ok", {"flags": "-1"}, 400, "flags"),
    ("/v1/kv/ok", {"flags": str(2 ** 64)}, 400, "flags"),
    ("/v1/kv/ok", {"acquire": "abc"}, 501, "session"),
])
def test_bad_put_input(trellis_proc, tmp_path, path, params, status, needle):
    p = srv(trellis_proc, tmp_path)
    assert put(p, "ok", "original").json() is True
    r = requests.put(p.url + path, data="new", params=params, timeout=5)
    assert r.status_code == status
    assert needle.lower() in r.json()["error"]["message"].lower()
    assert requests.get(p.url + "/v1/kv/ok?raw", timeout=5).content == b"original"


def test_literal_dot_segments_are_refused(trellis_proc, tmp_path):
    # python-requests would normalise "a/../b" away; http.client sends it as written.
    import http.client
    p = srv(trellis_proc, tmp_path)
    for path in ("/v1/kv/a/../b", "/v1/kv/../etc", "/v1/kv/a/."):
        c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5)
        c.request("PUT", path, body=b"v")
        r = c.getresponse()
        assert r.status == 400, path
        r.read()
        c.close()
    assert requests.get(p.url + "/v1/kv/?keys", timeout=5).status_code == 404


def test_oversized_values_and_bodies(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    put(p, "big", "small")
    r = put(p, "big", b"x" * (512 * 1024 + 1))
    assert r.status_code == 413 and "512" in r.json()["error"]["message"]
    r = put(p, "big", b"x" * (10 * 1024 * 1024))
    assert r.status_code == 413
    assert requests.get(p.url + "/v1/kv/big?raw", timeout=5).content == b"small"


@pytest.mark.parametrize("query,needle", [
    ("index=abc", "index"),
    ("index=5&wait=forever", "wait"),
    ("index=5&wait=-1s", "wait"),
])
def test_bad_blocking_parameters(trellis_proc, tmp_path, query, needle):
    p = srv(trellis_proc, tmp_path)
    r = requests.get(p.url + "/v1/kv/k?" + query, timeout=5)
    assert r.status_code == 400
    assert needle in r.json()["error"]["message"]


def test_unknown_route_is_404_json(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    r = requests.get(p.url + "/v1/nope", timeout=5)
    assert r.status_code == 404
    r = requests.post(p.url + "/v1/kv/x", data="v", timeout=5)
    assert r.status_code == 405 and "PUT" in r.headers["Allow"]
