# SPDX-License-Identifier: Apache-2.0
"""The embedded state store's API in `trellis server` (/v1/state/{store}/{app}/...):
Dapr's shapes and status codes, ETags with first-write/last-write, bulk get,
all-or-nothing transactions, app-id isolation, durability across kill -9, bad input."""
import threading
import time

import pytest
import requests


def srv(trellis_proc, tmp_path, name="data"):
    return trellis_proc(["server", "--data-dir", str(tmp_path / name), "--workers", "2"])


def base(p, store="statestore", app="app1"):
    return "%s/v1/state/%s/%s" % (p.url, store, app)


def save(p, items, **kw):
    return requests.post(base(p, **kw), json=items, timeout=10)


def get(p, key, **kw):
    return requests.get("%s/%s" % (base(p, **kw), key), timeout=10)


def bulk(p, keys, **kw):
    r = requests.post(base(p, **kw) + "/bulk", json={"keys": keys}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def transact(p, ops, **kw):
    return requests.post(base(p, **kw) + "/transaction", json={"operations": ops}, timeout=10)


def test_save_get_delete_shapes(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    r = requests.post(base(p), data=b'[{"key":"order","value":{"id":7,"price":0.1}},'
                      b'{"key":"name","value":"hello"},{"key":"text","value":"plain",'
                      b'"metadata":{"contentType":"text/plain"}}]', timeout=10)
    assert r.status_code == 204 and r.content == b""
    r = get(p, "order")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == b'{"id":7,"price":0.1}'  # the JSON as sent, not re-encoded
    etag = r.headers["ETag"]
    assert etag
    # A JSON string is stored as JSON (Dapr returns "hello" with its quotes).
    assert get(p, "name").content == b'"hello"'
    r = get(p, "text")
    assert r.content == b"plain" and r.headers["Content-Type"] == "text/plain"
    # Missing key: 204, empty body (Dapr).
    r = get(p, "nope")
    assert r.status_code == 204 and r.content == b""
    # Raw bytes survive: numbers beyond 64 bits, whitespace inside strings.
    r = requests.post(base(p), data=b'[{"key":"big","value":[12345678901234567890, "a  b"]}]',
                      timeout=10)
    assert r.status_code == 204
    assert get(p, "big").content == b'[12345678901234567890, "a  b"]'
    assert save(p, []).status_code == 204
    r = requests.delete(base(p) + "/order", timeout=10)
    assert r.status_code == 204
    assert get(p, "order").status_code == 204
    r = requests.delete(base(p) + "/order", timeout=10)  # already gone, no ETag: fine
    assert r.status_code == 204
    # PUT is accepted like POST.
    r = requests.put(base(p), json=[{"key": "viaput", "value": 1}], timeout=10)
    assert r.status_code == 204 and get(p, "viaput").content == b"1"


def test_etags_and_concurrency(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    assert save(p, [{"key": "k", "value": 1}]).status_code == 204
    e1 = get(p, "k").headers["ETag"]
    assert save(p, [{"key": "k", "value": 2}]).status_code == 204  # last-write, no ETag
    e2 = get(p, "k").headers["ETag"]
    assert e1 != e2
    # A stale ETag: 409 ERR_STATE_SAVE naming the key, value unchanged.
    r = save(p, [{"key": "k", "value": 3, "etag": e1}])
    assert r.status_code == 409
    assert r.json()["errorCode"] == "ERR_STATE_SAVE" and '"k"' in r.json()["message"]
    assert get(p, "k").content == b"2"
    r = save(p, [{"key": "k", "value": 3, "etag": e2}])
    assert r.status_code == 204
    e3 = get(p, "k").headers["ETag"]
    # An ETag that is not one of ours is a 400; on a missing key it is a mismatch.
    r = save(p, [{"key": "k", "value": 4, "etag": "W/xyz"}])
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_STATE_SAVE"
    assert save(p, [{"key": "missing", "value": 4, "etag": "5"}]).status_code == 409
    # first-write without an ETag only creates.
    fw = {"concurrency": "first-write"}
    assert save(p, [{"key": "k", "value": 5, "options": fw}]).status_code == 409
    assert save(p, [{"key": "fresh", "value": 5, "options": fw}]).status_code == 204
    r = save(p, [{"key": "k", "value": 6, "etag": e3, "options": fw}])
    assert r.status_code == 204
    # Two writers with the same ETag: exactly one wins.
    e4 = get(p, "k").headers["ETag"]
    codes = [save(p, [{"key": "k", "value": v, "etag": e4, "options": fw}]).status_code
             for v in (7, 8)]
    assert sorted(codes) == [204, 409]
    # Deletes: If-Match, quoted or not.
    e5 = get(p, "k").headers["ETag"]
    r = requests.delete(base(p) + "/k", headers={"If-Match": e1}, timeout=10)
    assert r.status_code == 409 and r.json()["errorCode"] == "ERR_STATE_DELETE"
    r = requests.delete(base(p) + "/k", headers={"If-Match": '"%s"' % e5}, timeout=10)
    assert r.status_code == 204
    r = requests.delete(base(p) + "/k", headers={"If-Match": e5}, timeout=10)
    assert r.status_code == 409  # gone: nothing has that ETag any more
    # Re-creating the key never hands out an old ETag.
    assert save(p, [{"key": "k", "value": 9}]).status_code == 204
    assert get(p, "k").headers["ETag"] not in (e1, e2, e3, e4, e5)


def test_racing_writers_with_one_etag_one_wins(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    assert save(p, [{"key": "counter", "value": 0}]).status_code == 204
    etag = get(p, "counter").headers["ETag"]
    codes = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def racer(n):
        start.wait()
        r = save(p, [{"key": "counter", "value": n, "etag": etag,
                      "options": {"concurrency": "first-write"}}])
        with lock:
            codes.append((r.status_code, n))

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for code, n in codes if code == 204]
    assert len(winners) == 1 and len(codes) == 16
    assert all(code == 409 for code, n in codes if n != winners[0])
    assert get(p, "counter").content == str(winners[0]).encode()


def test_bulk_get_with_missing_keys(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    save(p, [{"key": "a", "value": {"x": 1}}, {"key": "b", "value": "two"},
             {"key": "t", "value": "txt", "metadata": {"contentType": "text/plain"}}])
    out = bulk(p, ["a", "missing", "b", "t"])
    assert [i["key"] for i in out] == ["a", "missing", "b", "t"]
    assert out[0]["data"] == {"x": 1} and out[0]["etag"] == get(p, "a").headers["ETag"]
    assert out[1] == {"key": "missing"}  # no data, no etag (Dapr omits them)
    assert out[2]["data"] == "two"
    assert out[3]["data"] == "txt"
    assert bulk(p, []) == []


def test_transactions_are_all_or_nothing(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    save(p, [{"key": "a", "value": 1}, {"key": "b", "value": 1}])
    ea = get(p, "a").headers["ETag"]
    ops = [{"operation": "upsert", "request": {"key": "c", "value": {"new": True}}},
           {"operation": "delete", "request": {"key": "a", "etag": ea}},
           {"operation": "upsert", "request": {"key": "b", "value": 2, "etag": "1"}}]
    r = transact(p, ops)
    assert r.status_code == 409, r.text
    assert r.json()["errorCode"] == "ERR_STATE_TRANSACTION" and '"b"' in r.json()["message"]
    assert get(p, "c").status_code == 204  # nothing applied
    assert get(p, "a").headers["ETag"] == ea
    assert get(p, "b").content == b"1"
    ops[2]["request"]["etag"] = get(p, "b").headers["ETag"]
    assert transact(p, ops).status_code == 204
    assert get(p, "c").content == b'{"new": true}'
    assert get(p, "a").status_code == 204
    assert get(p, "b").content == b"2"
    assert get(p, "b").headers["ETag"] == get(p, "c").headers["ETag"]  # one version
    r = transact(p, [{"operation": "merge", "request": {"key": "x"}}])
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_NOT_SUPPORTED_STATE_OPERATION"
    assert transact(p, []).status_code == 204


def test_app_ids_and_stores_are_isolated(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    assert save(p, [{"key": "k", "value": "one"}], app="app1").status_code == 204
    assert save(p, [{"key": "k", "value": "two"}], app="app2").status_code == 204
    assert get(p, "k", app="app1").content == b'"one"'
    assert get(p, "k", app="app2").content == b'"two"'
    assert get(p, "k", app="app3").status_code == 204
    assert get(p, "k", store="other", app="app1").status_code == 204
    assert bulk(p, ["k"], app="app3") == [{"key": "k"}]
    requests.delete(base(p, app="app2") + "/k", timeout=10)
    assert get(p, "k", app="app1").content == b'"one"'
    # An app cannot reach another's keys through the separator.
    r = get(p, "app2||k", app="app1")
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"


def test_bad_input_is_refused_and_data_intact(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    save(p, [{"key": "keep", "value": {"v": 1}}])
    etag = get(p, "keep").headers["ETag"]
    cases = [
        (b'[{"key": "keep", "value": 2}', 400, "ERR_MALFORMED_REQUEST"),  # truncated
        (b'{"key": "keep"}', 400, "ERR_MALFORMED_REQUEST"),               # not an array
        (b'[{"value": 2}]', 400, "ERR_MALFORMED_REQUEST"),                # no key
        (b'[{"key": 5, "value": 2}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"key": "keep", "key": "x", "value": 2}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"key": "", "value": 2}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"key": "a||b", "value": 2}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"key": "keep", "value": 2, "etag": 5}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"key": "keep", "value": 2, "options": {"concurrency": "x"}}]', 400,
         "ERR_MALFORMED_REQUEST"),
        # One bad item spoils the whole save.
        (b'[{"key": "other", "value": 1}, {"key": "keep", "value": 2, "etag": "1"}]', 409,
         "ERR_STATE_SAVE"),
    ]
    for body, status, code in cases:
        r = requests.post(base(p), data=body, timeout=10)
        assert r.status_code == status, (body, r.text)
        assert r.json()["errorCode"] == code, (body, r.text)
    # Keys too long, bad store and app names.
    r = save(p, [{"key": "k" * 1025, "value": 1}])
    assert r.status_code == 400
    r = requests.get(p.url + "/v1/state/bad$store/app1/k", timeout=10)
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"
    r = requests.get(p.url + "/v1/state/statestore/bad$app/k", timeout=10)
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    r = requests.post(base(p) + "/nosuchop", json={}, timeout=10)
    assert r.status_code == 404
    # Oversized value (4 MiB limit; the body itself is under the server's 8 MiB).
    big = "x" * (4 * 1024 * 1024 + 10)
    r = save(p, [{"key": "keep", "value": big}])
    assert r.status_code == 413 and "limit" in r.json()["message"]
    # Too many operations, too many bulk keys.
    r = save(p, [{"key": "k%d" % i, "value": i} for i in range(257)])
    assert r.status_code == 400
    r = transact(p, [{"operation": "upsert", "request": {"key": "k%d" % i, "value": i}}
                     for i in range(257)])
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_STATE_TRANSACTION"
    r = requests.post(base(p) + "/bulk", json={"keys": ["k"] * 1001}, timeout=10)
    assert r.status_code == 400
    r = requests.post(base(p) + "/bulk", json={"keys": "keep"}, timeout=10)
    assert r.status_code == 400
    r = requests.post(base(p) + "/transaction", data=b'{"operations": 5}', timeout=10)
    assert r.status_code == 400
    r = requests.delete(base(p) + "/keep", params={"concurrency": "sometimes"}, timeout=10)
    assert r.status_code == 400
    # Nothing of the above changed the stored data.
    r = get(p, "keep")
    assert r.content == b'{"v": 1}' and r.headers["ETag"] == etag
    assert get(p, "other").status_code == 204
    assert get(p, "k0").status_code == 204


def test_acknowledged_writes_survive_kill_9(trellis_proc, tmp_path):
    p = srv(trellis_proc, tmp_path)
    acked = {}     # key -> value acknowledged
    etags = {}     # key -> ETag seen after the acknowledgement
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n):
        s = requests.Session()
        url = base(p)
        i = 0
        while not stop.is_set():
            keys = ["w%d-%d" % (n, i)] if n % 2 else ["w%d-%d-a" % (n, i), "w%d-%d-b" % (n, i)]
            try:
                if n % 2:
                    r = s.post(url, json=[{"key": keys[0], "value": {"i": i}}], timeout=5)
                else:
                    ops = [{"operation": "upsert", "request": {"key": k, "value": {"i": i}}}
                           for k in keys]
                    r = s.post(url + "/transaction", json={"operations": ops}, timeout=5)
                if r.status_code != 204:
                    return
                with lock:
                    for k in keys:
                        acked[k] = i
                g = s.get("%s/%s" % (url, keys[0]), timeout=5)
                if g.status_code == 200:
                    with lock:
                        etags[keys[0]] = g.headers["ETag"]
            except requests.RequestException:
                return
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    p.p.kill()  # kill -9 mid-stream
    p.p.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50
    p2 = srv(trellis_proc, tmp_path)
    keys = sorted(acked)
    got = {}
    for i in range(0, len(keys), 1000):
        for item in bulk(p2, keys[i:i + 1000]):
            got[item["key"]] = item
    lost = [k for k in keys if "data" not in got[k]]
    assert not lost, "acknowledged but lost after kill -9: %s" % lost[:10]
    changed = [k for k in keys if got[k]["data"] != {"i": acked[k]}]
    assert not changed, "acknowledged value changed after kill -9: %s" % changed[:10]
    wrong = [k for k, e in etags.items() if got[k]["etag"] != e]
    assert not wrong, "ETag changed across restart: %s" % wrong[:10]
    # Pairs written in one transaction are both there with one ETag.
    for k in keys:
        if k.endswith("-a"):
            assert got[k]["etag"] == got[k[:-2] + "-b"]["etag"]
    # New writes get ETags never seen before.
    assert save(p2, [{"key": "after", "value": 1}]).status_code == 204
    assert get(p2, "after").headers["ETag"] not in set(etags.values())
