# SPDX-License-Identifier: Apache-2.0
"""The embedded broker's HTTP API (/v1/broker/...) in `trellis server`."""
import base64
import json
import os
import threading
import time

import requests

from conftest import SLOW


def start(trellis_proc, tmp_path, env=None):
    return trellis_proc(["server", "--data-dir", str(tmp_path)], env=env)


def publish(s, url, topic, events):
    body = "".join(json.dumps({"data": e}) + "\n" for e in events)
    r = s.post("%s/v1/broker/publish/%s" % (url, topic), data=body,
               headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    return r.json()


def fetch(s, url, group, topic, **params):
    r = s.post("%s/v1/broker/fetch/%s/%s" % (url, group, topic), params=params)
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def ack(s, url, group, topic, offsets, verb="ack", **params):
    return s.post("%s/v1/broker/%s/%s/%s" % (url, verb, group, topic), json=offsets,
                  params=params)


def drain(s, url, group, topic, wait="300ms"):
    """Fetches and acks until nothing more arrives; returns the messages."""
    got = []
    while True:
        msgs = fetch(s, url, group, topic, max=1000, wait=wait)
        if not msgs:
            return got
        got += msgs
        assert ack(s, url, group, topic, [m["offset"] for m in msgs]).status_code == 200


def topic_stats(s, url, name):
    for t in s.get(url + "/v1/broker/topics").json()["topics"]:
        if t["name"] == name:
            return t
    return None


def test_publish_fetch_ack_round_trip(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    r = s.post(p.url + "/v1/broker/publish/orders", data=b"\x00\xffraw",
               headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["first_offset"] == 0
    r = s.post(p.url + "/v1/broker/publish/orders", data='{"n":1}',
               headers={"Content-Type": "application/json"})
    assert r.json()["first_offset"] == 1
    res = publish(s, p.url, "orders", [{"n": 2}, "three"])
    assert (res["first_offset"], res["last_offset"], res["count"]) == (2, 3, 2)
    msgs = fetch(s, p.url, "billing", "orders", max=10)
    assert [m["offset"] for m in msgs] == [0, 1, 2, 3]
    assert base64.b64decode(msgs[0]["data_base64"]) == b"\x00\xffraw"
    assert msgs[0]["metadata"] == {"content_type": "application/octet-stream"}
    assert msgs[1]["data"] == {"n": 1} and msgs[2]["data"] == {"n": 2}
    assert msgs[3]["data"] == "three"
    assert all(m["attempts"] == 1 and m["published_at"] > 0 for m in msgs)
    r = ack(s, p.url, "billing", "orders", [0, 1, 2, 3])
    assert r.status_code == 200 and r.json() == {"acked": 4}
    assert fetch(s, p.url, "billing", "orders", wait="200ms") == []
    st = topic_stats(s, p.url, "orders")
    assert st["next_offset"] == 4 and st["groups"][0]["committed"] == 4
    assert st["groups"][0]["lag"] == 0 and st["groups"][0]["in_flight"] == 0
    # NDJSON out.
    publish(s, p.url, "orders", ["five"])
    r = s.post(p.url + "/v1/broker/fetch/billing/orders", headers={"Accept": "application/x-ndjson"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert [x["data"] for x in lines] == ["five"]


def test_long_poll_wakes_on_publish(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    fetch(s, p.url, "g", "t")  # creates the group
    out = {}

    def consumer():
        t0 = time.time()
        out["msgs"] = fetch(requests.Session(), p.url, "g", "t", wait="10s")
        out["took"] = time.time() - t0

    th = threading.Thread(target=consumer)
    th.start()
    time.sleep(0.3)
    publish(s, p.url, "t", ["hello"])
    th.join(10)
    assert [m["data"] for m in out["msgs"]] == ["hello"]
    assert out["took"] < 2 * SLOW


def test_two_groups_each_get_every_event(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    publish(s, p.url, "t", list(range(50)))
    a = drain(s, p.url, "a", "t")
    b = drain(s, p.url, "b", "t")
    assert sorted(m["data"] for m in a) == list(range(50))
    assert sorted(m["data"] for m in b) == list(range(50))


def test_consumers_in_one_group_split_events(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    fetch(s, p.url, "g", "t")
    got = [[], []]

    def consumer(i):
        cs = requests.Session()
        idle = 0
        while idle < 3:
            msgs = fetch(cs, p.url, "g", "t", max=7, wait="300ms")
            if not msgs:
                idle += 1
                continue
            idle = 0
            got[i] += [m["data"] for m in msgs]
            assert ack(cs, p.url, "g", "t", [m["offset"] for m in msgs]).status_code == 200
            time.sleep(0.01)

    ths = [threading.Thread(target=consumer, args=(i,)) for i in range(2)]
    for t in ths:
        t.start()
    for k in range(10):
        publish(s, p.url, "t", list(range(k * 20, k * 20 + 20)))
        time.sleep(0.02)
    for t in ths:
        t.join(60)
    assert sorted(got[0] + got[1]) == list(range(200))  # each event to exactly one
    assert got[0] and got[1]


def test_unacked_redelivered_after_timeout(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    publish(s, p.url, "t", ["a", "b"])
    msgs = fetch(s, p.url, "g", "t", ack_timeout="400ms")
    assert [m["data"] for m in msgs] == ["a", "b"]
    assert ack(s, p.url, "g", "t", [msgs[1]["offset"]]).status_code == 200
    t0 = time.time()
    again = fetch(s, p.url, "g", "t", wait="5s", ack_timeout="400ms")
    took = time.time() - t0
    assert [(m["data"], m["attempts"]) for m in again] == [("a", 2)]
    assert 0.2 < took < 2 * SLOW
    assert ack(s, p.url, "g", "t", [again[0]["offset"]]).status_code == 200
    assert fetch(s, p.url, "g", "t", wait="800ms") == []
    assert topic_stats(s, p.url, "t")["groups"][0]["redelivered"] == 1


def test_nack_redelivers_after_backoff(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    publish(s, p.url, "t", ["x"])
    m = fetch(s, p.url, "g", "t")[0]
    r = ack(s, p.url, "g", "t", {"offsets": [m["offset"]]}, verb="nack", delay="300ms")
    assert r.status_code == 200 and r.json() == {"nacked": 1}
    assert fetch(s, p.url, "g", "t", wait="100ms") == []
    again = fetch(s, p.url, "g", "t", wait="5s")
    assert [(x["data"], x["attempts"]) for x in again] == [("x", 2)]


def test_kill9_loses_no_acknowledged_publish(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    # A consumer group with deliveries in flight and some acked before the crash.
    publish(s, p.url, "t", [{"pre": i} for i in range(20)])
    pre = fetch(s, p.url, "g", "t", max=20)
    assert ack(s, p.url, "g", "t", [m["offset"] for m in pre[:10]]).status_code == 200
    time.sleep(1.5)  # let the lazily saved offsets reach the disk
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def publisher(w):
        ps = requests.Session()
        n = 0
        while not stop.is_set():
            batch = [{"w": w, "n": n + i} for i in range(10)]
            try:
                r = ps.post(p.url + "/v1/broker/publish/t",
                            data="".join(json.dumps({"data": e}) + "\n" for e in batch),
                            headers={"Content-Type": "application/x-ndjson"}, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    acked.extend((e["w"], e["n"]) for e in batch)
            n += 10

    ths = [threading.Thread(target=publisher, args=(w,)) for w in range(4)]
    for t in ths:
        t.start()
    time.sleep(1.0)
    p.p.kill()  # kill -9 mid-stream
    stop.set()
    for t in ths:
        t.join(10)
    p.p.wait()
    assert len(acked) > 100

    p2 = start(trellis_proc, tmp_path)
    s2 = requests.Session()
    got = drain(s2, p2.url, "g", "t")
    seen = {}
    for m in got:
        d = m["data"]
        key = ("pre", d["pre"]) if "pre" in d else (d["w"], d["n"])
        seen[key] = seen.get(key, 0) + 1
    missing = [k for k in acked if k not in seen]
    assert not missing, "lost %d acknowledged events, e.g. %s" % (len(missing), missing[:5])
    # Unacked pre-crash deliveries come again; the acked ones do not (their offsets
    # were saved), and nothing is delivered twice within this one drain.
    assert all(("pre", i) in seen for i in range(10, 20))
    assert not any(("pre", i) in seen for i in range(10))
    dups = sum(c - 1 for c in seen.values())
    assert dups == 0
    # Every event is in the log exactly once: no publish was retried here.
    st = topic_stats(s2, p2.url, "t")
    assert st["next_offset"] >= 20 + len(acked)


def test_retention_by_size_drops_old_segments(trellis_proc, tmp_path):
    env = {"TRELLIS_BROKER_SEGMENT_BYTES": "8192", "TRELLIS_BROKER_RETENTION_BYTES": "32768"}
    p = start(trellis_proc, tmp_path, env=env)
    s = requests.Session()
    for k in range(20):
        publish(s, p.url, "t", ["x" * 500] * 10)
    deadline = time.time() + 5 * SLOW
    st = topic_stats(s, p.url, "t")
    while st["first_offset"] == 0 and time.time() < deadline:
        time.sleep(0.2)
        st = topic_stats(s, p.url, "t")
    assert st["first_offset"] > 0 and st["next_offset"] == 200
    assert st["size_bytes"] <= 32768
    files = os.listdir(os.path.join(str(tmp_path), "broker", "t"))
    assert len([f for f in files if f.endswith(".log")]) == st["segments"] <= 5
    # A new group starts at the oldest record still kept.
    msgs = drain(s, p.url, "late", "t")
    assert msgs[0]["offset"] == st["first_offset"] and msgs[-1]["offset"] == 199


def test_bad_input_is_rejected_and_nothing_lost(trellis_proc, tmp_path):
    p = start(trellis_proc, tmp_path, env={"TRELLIS_BROKER_MAX_PAYLOAD": "1000",
                                           "TRELLIS_BROKER_MAX_BATCH": "50"})
    s = requests.Session()
    publish(s, p.url, "t", ["keep"])

    def post(path, **kw):
        r = s.post(p.url + path, **kw)
        assert r.headers["content-type"].startswith("application/json")
        return r.status_code, r.json()

    for bad in ["a%2Fb", "a%20b", "x" * 256, "%2E%2E", "%C3%A9"]:
        st, body = post("/v1/broker/publish/" + bad, data="x")
        assert st == 400 and body["error"]["code"] == "bad_param", bad
        st, body = post("/v1/broker/fetch/g/" + bad)
        assert st == 400
        st, body = post("/v1/broker/fetch/%s/t" % bad)
        assert st == 400
    assert post("/v1/broker/publish/" + "x" * 255, data="ok")[0] == 200
    st, body = post("/v1/broker/publish/t", data="y" * 1001)
    assert st == 413 and "TRELLIS_BROKER_MAX_PAYLOAD" in body["error"]["message"]
    nd = {"Content-Type": "application/x-ndjson"}
    st, body = post("/v1/broker/publish/t", data='{"data":"ok"}\n{"data": nope}\n', headers=nd)
    assert st == 400 and "line 2" in body["error"]["message"]
    st, body = post("/v1/broker/publish/t", data='{"data":"ok"}\n{"dat":"typo"}\n', headers=nd)
    assert st == 400 and "dat" in body["error"]["message"]
    st, body = post("/v1/broker/publish/t", data=json.dumps({"data": "z" * 1001}), headers=nd)
    assert st == 413
    st, body = post("/v1/broker/publish/t", data='{"data_base64":"!!"}', headers=nd)
    assert st == 400
    st, body = post("/v1/broker/publish/t", data='{"data":1}\n' * 51, headers=nd)
    assert st == 413 and "TRELLIS_BROKER_MAX_BATCH" in body["error"]["message"]
    st, body = post("/v1/broker/publish/t", data="\n\n", headers=nd)
    assert st == 400
    st, body = post("/v1/broker/publish/t", data="{bad",
                    headers={"Content-Type": "application/json"})
    assert st == 400
    assert post("/v1/broker/fetch/g/t", params={"max": "0"})[0] == 400
    assert post("/v1/broker/fetch/g/t", params={"wait": "soon"})[0] == 400
    # Nothing from the rejected requests was published.
    assert topic_stats(s, p.url, "t")["next_offset"] == 1
    msgs = fetch(s, p.url, "g", "t")
    assert [m["data"] for m in msgs] == ["keep"]
    st, body = post("/v1/broker/ack/nobody/t", json=[0])
    assert st == 404 and body["error"]["code"] == "not_found"
    st, body = post("/v1/broker/ack/g/unknown-topic", json=[0])
    assert st == 404
    st, body = post("/v1/broker/ack/g/t", json=[0, 7])
    assert st == 409 and "7" in body["error"]["message"]
    assert post("/v1/broker/ack/g/t", data="[-1]")[0] == 400
    assert post("/v1/broker/ack/g/t", data="{}")[0] == 400
    assert post("/v1/broker/ack/g/t", data="not json")[0] == 400
    # The good offset in the 409 request was acked; the event is kept in the log.
    assert fetch(s, p.url, "g", "t", wait="100ms") == []
    assert [m["data"] for m in fetch(s, p.url, "g2", "t")] == ["keep"]


def test_big_numbers_stay_as_written(trellis_proc, tmp_path):
    """Regression: integers beyond 64 bits are valid JSON but jansson's integers refused
    them (400), and NDJSON `data` was re-dumped, respelling 0.10 as 0.1. Found by the
    sidecar's pub/sub, whose CloudEvents carry app payloads as written."""
    p = start(trellis_proc, tmp_path)
    s = requests.Session()
    single = b'{"id": 123456789012345678901234567890, "price": 0.10}'
    r = s.post(p.url + "/v1/broker/publish/nums", data=single,
               headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    line = b'{"data": {"n": 1e2, "big": 18446744073709551616, "p": 0.10}}\n'
    r = s.post(p.url + "/v1/broker/publish/nums", data=line,
               headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    r = s.post(p.url + "/v1/broker/fetch/g/nums", params={"max": 10},
               headers={"Accept": "application/x-ndjson"})
    lines = r.content.splitlines()
    assert lines[0].endswith(b',"data":' + single + b"}")
    assert lines[1].endswith(b',"data":{"n": 1e2, "big": 18446744073709551616, "p": 0.10}}')


def test_shutdown_answers_long_polls_at_once(trellis_proc, tmp_path):
    """Regression: a parked fetch (wait=30s) held SIGTERM up for the whole drain timeout,
    so a server with subscribed sidecars took 10 s to stop."""
    p = start(trellis_proc, tmp_path)
    answers = []

    def poll():
        r = requests.post(p.url + "/v1/broker/fetch/g/idle", params={"wait": "30s"}, timeout=60)
        answers.append(r.status_code)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3 * SLOW)  # parked
    t0 = time.monotonic()
    assert p.stop() == 0
    assert time.monotonic() - t0 < 3 * SLOW
    t.join(5)
    assert answers == [200]
