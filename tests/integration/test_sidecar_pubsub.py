# SPDX-License-Identifier: Apache-2.0
"""Pub/sub through `trellis sidecar` with a real `trellis server` (the broker) and small
Python apps: publish and delivery (CloudEvents, content types, raw payloads, routing
rules, declarative subscriptions, metadata), one replica per consumer group, retries
with backoff, DROP / 404 / exhausted retries to the dead-letter topic, hanging and
garbage-answering subscribers, expired events, a `kill -9` of the server mid-stream
(no acknowledged publish lost, duplicates counted and bounded), and bad input."""
import base64
import json
import os
import signal
import threading
import time
import uuid

import pytest
import requests

from conftest import SLOW
from sidecar_helpers import (AppServer, free_port, start_server, start_sidecar, wait_for,
                             write_components)

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def publish_url(sc, pubsub, topic, query=""):
    return "%s/v1.0/publish/%s/%s%s" % (sc.url, pubsub, topic, query)


class Subscriber(AppServer):
    """An app that declares `subs` on GET /dapr/subscribe and records every delivery
    (parsed CloudEvent, headers) by route. `answer(route, event, n)` decides the reply
    (n = how many times this event id reached this route, 1 first): returns (status,
    body) or a float to sleep that long and then answer 200."""

    def __init__(self, name, subs, answer=None, **kw):
        super().__init__(name, **kw)
        self.subs = subs
        self.answer = answer or (lambda route, event, n: (200, b""))
        self.got = {}       # route -> [event]
        self.headers = {}   # route -> [headers]
        self.counts = {}    # (route, id) -> deliveries
        self.times = {}     # (route, id) -> [time.monotonic() of each delivery]
        self.routes["/dapr/subscribe"] = self._subscribe
        for s in subs:
            paths = [s.get("route")] + [r["path"] for r in s.get("routes", {}).get("rules", [])]
            paths.append(s.get("routes", {}).get("default"))
            for p in paths:
                if p:
                    self.routes["/" + p.lstrip("/")] = self._deliver

    def _subscribe(self, handler, body):
        return 200, {"Content-Type": "application/json"}, json.dumps(self.subs)

    def _deliver(self, handler, body):
        route = handler.path.split("?")[0]
        ev = json.loads(body)
        with self.lock:
            self.got.setdefault(route, []).append(ev)
            self.headers.setdefault(route, []).append(dict(handler.headers))
            key = (route, ev.get("id"))
            self.counts[key] = self.counts.get(key, 0) + 1
            self.times.setdefault(key, []).append(time.monotonic())
            n = self.counts[key]
        out = self.answer(route, ev, n)
        if isinstance(out, float):
            time.sleep(out)
            out = (200, b"")
        status, reply = out
        if isinstance(reply, (dict, list)):
            return status, {"Content-Type": "application/json"}, json.dumps(reply)
        return status, {}, reply

    def events(self, route):
        with self.lock:
            return list(self.got.get(route, []))

    def count(self, route):
        with self.lock:
            return len(self.got.get(route, []))

    def deliveries(self, route, event_id):
        with self.lock:
            return self.counts.get((route, event_id), 0)

    def ids(self, route):
        return sorted(e["id"] for e in self.events(route))


def components(tmp_path, pubsub_meta=None, extra=None):
    meta = ""
    if pubsub_meta:
        meta = "  metadata:\n" + "".join(
            "  - name: %s\n    value: \"%s\"\n" % kv for kv in pubsub_meta.items())
    files = {
        "pubsub.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
                       "  name: pubsub\nspec:\n  type: pubsub.trellis\n  version: v1\n" + meta,
    }
    files.update(extra or {})
    return write_components(tmp_path / "components", files)


def ready_subscriptions(sc, n):
    """Waits until the sidecar lists n subscriptions (it has read /dapr/subscribe)."""
    return wait_for(lambda: len(requests.get(sc.url + "/v1.0/metadata", timeout=5)
                                .json()["subscriptions"]) >= n, timeout=10)


# ------------------------------------------------------------------ publish and deliver


def test_publish_and_deliver(trellis_proc, tmp_path):
    subs = [
        {"pubsubname": "pubsub", "topic": "orders", "route": "orders"},
        {"pubsubname": "pubsub", "topic": "shop/events",
         "routes": {"rules": [{"match": "event.type == 'special' && event.data.n > 1",
                               "path": "/special"}],
                    "default": "/regular"}},
        {"pubsubname": "pubsub", "topic": "raw", "route": "/raw",
         "metadata": {"rawPayload": "true"}},
    ]
    app = Subscriber("shop", subs)
    try:
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "shop", app.port)
        ready_subscriptions(sc, 3)
        meta = requests.get(sc.url + "/v1.0/metadata", timeout=5).json()
        listed = {s["topic"]: s for s in meta["subscriptions"]}
        assert listed["orders"]["rules"] == [{"match": "", "path": "/orders"}]
        assert listed["orders"]["type"] == "PROGRAMMATIC"
        assert listed["shop/events"]["rules"][0]["match"].startswith("event.type")
        assert listed["raw"]["metadata"] == {"rawPayload": "true"}

        # JSON payload: wrapped, data kept byte-exact (big integer, decimal spelling).
        body = b'{"id": 12345678901234567890, "price": 0.10}'
        r = requests.post(publish_url(sc, "pubsub", "orders", "?"), data=body,
                          headers={"Content-Type": "application/json", "traceparent": TP},
                          timeout=5)
        assert r.status_code == 204 and r.content == b""
        wait_for(lambda: app.count("/orders") == 1)
        ev = app.events("/orders")[0]
        hdr = app.headers["/orders"][0]
        assert hdr["Content-Type"] == "application/cloudevents+json"
        assert hdr["traceparent"] == TP
        assert ev["specversion"] == "1.0" and ev["source"] == "shop"
        assert ev["type"] == "com.dapr.event.sent"
        assert ev["datacontenttype"] == "application/json"
        assert ev["topic"] == "orders" and ev["pubsubname"] == "pubsub"
        assert ev["traceparent"] == TP and ev["traceid"] == TP
        uuid.UUID(ev["id"])
        assert ev["time"].endswith("Z")
        assert ev["data"] == {"id": 12345678901234567890, "price": 0.10}
        raw = app.last("/orders")["body"]
        assert b'"data":{"id": 12345678901234567890, "price": 0.10}' in raw

        # Text (PUT works too); no Content-Type is text/plain.
        r = requests.put(publish_url(sc, "pubsub", "orders"), data=b"hello", timeout=5)
        assert r.status_code == 204
        r = requests.post(publish_url(sc, "pubsub", "orders",
                                      "?metadata.cloudevent.type=order.note"
                                      "&metadata.cloudevent.id=fixed-1"),
                          data="plain text".encode(), headers={"Content-Type": "text/plain"},
                          timeout=5)
        assert r.status_code == 204
        wait_for(lambda: app.count("/orders") == 3)
        evs = {e["id"]: e for e in app.events("/orders")}
        assert evs["fixed-1"]["type"] == "order.note" and evs["fixed-1"]["data"] == "plain text"
        assert any(e["data"] == "hello" and e["datacontenttype"] == "text/plain"
                   for e in evs.values())

        # An app's own CloudEvent, routed by rules, on a topic with a slash.
        ce = {"specversion": "1.0", "id": "ce-1", "source": "tests", "type": "special",
              "data": {"n": 2}}
        r = requests.post(publish_url(sc, "pubsub", "shop/events"), data=json.dumps(ce),
                          headers={"Content-Type": "application/cloudevents+json"}, timeout=5)
        assert r.status_code == 204
        ce2 = dict(ce, id="ce-2", data={"n": 1})
        r = requests.post(publish_url(sc, "pubsub", "shop/events"), data=json.dumps(ce2),
                          headers={"Content-Type": "application/cloudevents+json"}, timeout=5)
        assert r.status_code == 204
        wait_for(lambda: app.count("/special") == 1 and app.count("/regular") == 1)
        special = app.events("/special")[0]
        assert special["id"] == "ce-1" and special["source"] == "tests"
        assert special["topic"] == "shop/events" and special["pubsubname"] == "pubsub"
        assert app.events("/regular")[0]["id"] == "ce-2"

        # Raw payload in, raw-payload subscription out: base64 of the exact bytes.
        blob = bytes(range(256))
        r = requests.post(publish_url(sc, "pubsub", "raw", "?metadata.rawPayload=true"),
                          data=blob, headers={"Content-Type": "application/octet-stream"},
                          timeout=5)
        assert r.status_code == 204
        wait_for(lambda: app.count("/raw") == 1)
        got = app.events("/raw")[0]
        assert got["datacontenttype"] == "application/octet-stream"
        assert base64.b64decode(got["data_base64"]) == blob

        # Bulk publish (the JS SDK spells it entryID): events kept as written too.
        bulk = (b'[{"entryID": "b1", "event": {"price": 0.10}, "contentType": "application/json"},'
                b' {"entryId": "b2", "event": "text entry"}]')
        r = requests.post(sc.url + "/v1.0-alpha1/publish/bulk/pubsub/orders", data=bulk,
                          headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 204, r.text
        wait_for(lambda: app.count("/orders") == 5)
        bodies = [r["body"] for r in app.requests if r["path"] == "/orders"]
        assert any(b'"data":{"price": 0.10}' in b for b in bodies)
        assert any(e["data"] == "text entry" for e in app.events("/orders"))

        # Nothing is delivered twice.
        time.sleep(0.5 * SLOW)
        assert app.count("/orders") == 5
    finally:
        app.stop()


def publish(sc, topic, data, event_id=None, pubsub="pubsub", query=""):
    q = query
    if event_id is not None:
        q += ("&" if q else "?") + "metadata.cloudevent.id=" + event_id
    r = requests.post(publish_url(sc, pubsub, topic, q), json=data, timeout=10)
    assert r.status_code == 204, r.text
    return r


# ------------------------------------------------------------------ consumer groups


def test_one_replica_per_consumer_group(trellis_proc, tmp_path):
    subs = [{"pubsubname": "pubsub", "topic": "jobs", "route": "/jobs"}]
    a1, a2, b = Subscriber("A", subs), Subscriber("A", subs), Subscriber("B", subs)
    try:
        srv = start_server(trellis_proc, tmp_path)
        scs = [start_sidecar(trellis_proc, srv, name, app.port)
               for name, app in (("A", a1), ("A", a2), ("B", b))]
        for sc in scs:
            ready_subscriptions(sc, 1)
        n = 60
        for i in range(n):
            publish(scs[i % 3], "jobs", {"i": i})
        wait_for(lambda: b.count("/jobs") == n and a1.count("/jobs") + a2.count("/jobs") == n,
                 timeout=15)
        time.sleep(0.5 * SLOW)  # nothing more arrives
        got_a = [e["data"]["i"] for e in a1.events("/jobs") + a2.events("/jobs")]
        assert sorted(got_a) == list(range(n))  # each event once, to one replica of A
        assert a1.count("/jobs") > 0 and a2.count("/jobs") > 0  # and they share the work
        assert sorted(e["data"]["i"] for e in b.events("/jobs")) == list(range(n))  # B gets all
    finally:
        for app in (a1, a2, b):
            app.stop()


# ------------------------------------------------------------------ retries, dead letters


def test_retry_then_success(trellis_proc, tmp_path):
    def answer(route, ev, n):
        kind = ev["data"]["kind"]
        if kind == "retry2" and n <= 2:
            return 200, {"status": "RETRY"}
        if kind == "error1" and n == 1:
            return 500, b"boom"
        if kind == "unknown1" and n == 1:
            return 200, {"status": "LATER"}  # unknown status: retried
        if kind == "caps1" and n == 1:
            return 200, {"Status": "RETRY"}  # Go's JSON matches names without case
        return 200, {"status": "SUCCESS"}

    app = Subscriber("worker", [{"pubsubname": "pubsub", "topic": "work", "route": "/work"}],
                     answer=answer)
    try:
        comps = components(tmp_path, {"retryBackoff": "200ms", "retryMaxBackoff": "1s",
                                      "maxRetries": "5"})
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "worker", app.port, components=comps)
        ready_subscriptions(sc, 1)
        for kind in ("retry2", "error1", "unknown1", "caps1", "plain"):
            publish(sc, "work", {"kind": kind}, event_id=kind)
        wait_for(lambda: app.deliveries("/work", "retry2") == 3, timeout=10)
        wait_for(lambda: app.deliveries("/work", "error1") == 2)
        wait_for(lambda: app.deliveries("/work", "unknown1") == 2)
        wait_for(lambda: app.deliveries("/work", "caps1") == 2)
        time.sleep(1.0 * SLOW)  # acked: never again
        assert app.deliveries("/work", "retry2") == 3
        assert app.deliveries("/work", "error1") == 2
        assert app.deliveries("/work", "plain") == 1
        # Exponential backoff: 200 ms, then 400 ms (the broker's 20 ms tick aside).
        t = app.times[("/work", "retry2")]
        assert t[1] - t[0] >= 0.18 and t[2] - t[1] >= 0.36, t
        # Redeliveries carry the same event.
        evs = [e for e in app.events("/work") if e["id"] == "retry2"]
        assert len({json.dumps(e, sort_keys=True) for e in evs}) == 1
    finally:
        app.stop()


def test_drop_404_and_exhausted_retries_go_to_the_dead_letter_topic(trellis_proc, tmp_path):
    def answer(route, ev, n):
        kind = ev["data"]["kind"]
        if route == "/poison":
            return 200, b""
        return {"drop": (200, {"status": "DROP"}), "gone": (404, b"no such handler"),
                "fail": (500, b"boom")}.get(kind, (200, b""))

    subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders",
             "deadLetterTopic": "poison"},
            {"pubsubname": "pubsub", "topic": "poison", "route": "/poison"},
            {"pubsubname": "pubsub", "topic": "nodlq", "route": "/nodlq"}]
    app = Subscriber("shop", subs, answer=answer)
    try:
        comps = components(tmp_path, {"retryBackoff": "50ms", "retryMaxBackoff": "100ms",
                                      "maxRetries": "2"})
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "shop", app.port, components=comps)
        sc.allowed_errors = []
        ready_subscriptions(sc, 3)
        for kind in ("drop", "gone", "fail", "ok"):
            publish(sc, "orders", {"kind": kind}, event_id=kind + "-1")
        wait_for(lambda: app.count("/poison") == 3, timeout=10)
        assert app.ids("/poison") == ["drop-1", "fail-1", "gone-1"]
        assert app.deliveries("/orders", "drop-1") == 1
        assert app.deliveries("/orders", "gone-1") == 1
        assert app.deliveries("/orders", "fail-1") == 3  # first try + maxRetries
        assert app.deliveries("/orders", "ok-1") == 1
        dead = {e["id"]: e for e in app.events("/poison")}
        assert dead["fail-1"]["data"] == {"kind": "fail"}
        assert dead["fail-1"]["topic"] == "orders"  # the event as it was

        # Without a dead-letter topic: DROP is final, failures keep being retried.
        publish(sc, "nodlq", {"kind": "drop"}, event_id="drop-2")
        publish(sc, "nodlq", {"kind": "fail"}, event_id="fail-2")
        wait_for(lambda: app.deliveries("/nodlq", "fail-2") >= 5, timeout=10)
        assert app.deliveries("/nodlq", "drop-2") == 1
        time.sleep(0.5 * SLOW)
        assert app.count("/poison") == 3
        assert any("no deadLetterTopic" in line for line in sc.lines)
    finally:
        app.stop()


def test_hanging_and_garbage_subscribers_are_bounded(trellis_proc, tmp_path):
    def answer(route, ev, n):
        kind = ev["data"]["kind"]
        if route == "/dead":
            return 200, b""
        if kind == "hang":
            return 3.0  # seconds: far beyond the delivery timeout
        return {"garbage": (200, {"status": "BANANA"}), "teapot": (418, b"\x00\xff junk"),
                "ok": (200, b"not json at all: success")}[kind]

    subs = [{"pubsubname": "pubsub", "topic": "t", "route": "/t", "deadLetterTopic": "dead"},
            {"pubsubname": "pubsub", "topic": "dead", "route": "/dead"}]
    app = Subscriber("svc", subs, answer=answer)
    try:
        comps = components(tmp_path, {"deliveryTimeout": "%dms" % int(400 * SLOW),
                                      "retryBackoff": "50ms", "retryMaxBackoff": "100ms",
                                      "maxRetries": "2"})
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "svc", app.port, components=comps)
        ready_subscriptions(sc, 2)
        for kind in ("hang", "garbage", "teapot"):
            publish(sc, "t", {"kind": kind}, event_id=kind)
        t0 = time.monotonic()
        publish(sc, "t", {"kind": "ok"}, event_id="ok")
        # A hanging subscriber does not hold the others up.
        wait_for(lambda: app.deliveries("/t", "ok") == 1)
        assert time.monotonic() - t0 < 1.0 * SLOW
        r = requests.get(sc.url + "/v1.0/metadata", timeout=2)
        assert r.status_code == 200
        wait_for(lambda: app.count("/dead") == 3, timeout=15)
        assert app.ids("/dead") == ["garbage", "hang", "teapot"]
        for kind in ("hang", "garbage", "teapot"):
            assert app.deliveries("/t", kind) == 3, kind
        assert app.deliveries("/t", "ok") == 1
    finally:
        app.stop()


# ------------------------------------------------------------------ declarative, expiry


DECLARATIVE = """apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders-sub
spec:
  topic: orders
  pubsubname: pubsub
  routes:
    rules:
    - match: event.data.priority == "high"
      path: /urgent
    default: /orders
  deadLetterTopic: orders-dead
scopes:
- decl
"""


def test_declarative_subscriptions_and_expired_events(trellis_proc, tmp_path):
    comps = components(tmp_path, extra={"subs.yaml": DECLARATIVE})
    srv = start_server(trellis_proc, tmp_path)
    port = free_port()
    # The app is not up yet: publishing works anyway (no start-order deadlock).
    sc = start_sidecar(trellis_proc, srv, "decl", port, components=comps)
    r = requests.post(publish_url(sc, "pubsub", "orders", "?metadata.ttlInSeconds=1"),
                      json={"priority": "high", "n": 1}, timeout=5)
    assert r.status_code == 204
    publish(sc, "orders", {"priority": "high", "n": 2}, event_id="keep-high")
    publish(sc, "orders", {"priority": "low", "n": 3}, event_id="keep-low")
    time.sleep(1.5)  # the first one expires

    # A /dapr/subscribe answer that is not JSON: a warning; declarative ones still run.
    app = AppServer("decl", port=port, routes={
        "/dapr/subscribe": lambda h, b: (200, {"Content-Type": "application/json"}, b"oops"),
    })
    seen = []
    app.routes["/urgent"] = app.routes["/orders"] = (
        lambda h, b: (seen.append((h.path, json.loads(b))), (200, {}, b""))[1])
    try:
        ready_subscriptions(sc, 1)
        wait_for(lambda: len(seen) == 2, timeout=10)
        time.sleep(0.5 * SLOW)
        assert sorted((p, e["id"]) for p, e in seen) == [("/orders", "keep-low"),
                                                       ("/urgent", "keep-high")]
        sub = requests.get(sc.url + "/v1.0/metadata", timeout=5).json()["subscriptions"][0]
        assert sub["type"] == "DECLARATIVE" and sub["deadLetterTopic"] == "orders-dead"
        assert sub["rules"] == [{"match": 'event.data.priority == "high"', "path": "/urgent"},
                                {"match": "", "path": "/orders"}]
        assert any("/dapr/subscribe" in line and "JSON" in line for line in sc.lines)
        assert any("expired" in line for line in sc.lines)
    finally:
        app.stop()


# ------------------------------------------------------------------ durability


def test_server_kill9_mid_stream_loses_no_acknowledged_publish(trellis_proc, tmp_path):
    port = free_port()
    args = ["server", "--data-dir", str(tmp_path / "data"), "--workers", "2",
            "--listen", "127.0.0.1:%d" % port]
    srv = trellis_proc(args)
    app = Subscriber("sink", [{"pubsubname": "pubsub", "topic": "stream", "route": "/s"}])
    try:
        sc = start_sidecar(trellis_proc, srv, "sink", app.port, register=False)
        sc.allowed_errors = ["server"]
        ready_subscriptions(sc, 1)
        acked, failures = [], []
        stop = threading.Event()

        def publisher(k):
            s = requests.Session()
            i = k
            while not stop.is_set():
                try:
                    r = s.post(publish_url(sc, "pubsub", "stream"), json={"seq": i}, timeout=10)
                    if r.status_code == 204:
                        acked.append(i)
                    else:
                        failures.append(r.json()["errorCode"])
                except requests.RequestException:
                    failures.append("connection")
                i += 4

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        t_kill = time.monotonic()
        srv.p.kill()
        srv.p.wait()
        time.sleep(0.5)
        srv2 = trellis_proc(args)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        assert len(acked) > 100, "publishers too slow to test anything"
        assert "ERR_PUBSUB_PUBLISH_MESSAGE" in failures  # the outage was seen
        # Every acknowledged publish is delivered, after the restart if need be.
        wanted = set(acked)
        wait_for(lambda: wanted <= {e["data"]["seq"] for e in app.events("/s")}, timeout=30)
        time.sleep(1.0 * SLOW)
        got = [e["data"]["seq"] for e in app.events("/s")]
        dups = len(got) - len(set(got))
        # Duplicates: acks the broker had not saved yet (it saves about once a second) and
        # deliveries in flight at the crash (32 per subscription).
        with app.lock:
            recent = sum(1 for ts in app.times.values() for t in ts
                         if t_kill - 2.5 <= t <= t_kill)
        print("published %d acknowledged, %d failed, delivered %d, duplicates %d "
              "(bound %d)" % (len(acked), len(failures), len(got), dups, recent + 64))
        assert dups <= recent + 64
        assert srv2.p.poll() is None
    finally:
        app.stop()


# ------------------------------------------------------------------ bad input


def test_bad_input_gets_clear_errors(trellis_proc, tmp_path):
    app = AppServer("bad")
    try:
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "bad", app.port)
        ce = {"Content-Type": "application/cloudevents+json"}

        def err(r, status, code, text=None):
            assert r.status_code == status, (r.status_code, r.text)
            body = r.json()
            assert body["errorCode"] == code, body
            if text is not None:
                assert text in body["message"], body["message"]

        url = publish_url(sc, "pubsub", "t")
        err(requests.post(url, data=b"{nope", headers=ce, timeout=5), 400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER", "not a valid CloudEvent")
        err(requests.post(url, data=b"[1,2]", headers=ce, timeout=5), 400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER", "JSON object")
        err(requests.post(url, json={"specversion": "0.3"}, headers=ce, timeout=5), 400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER", "specversion")
        err(requests.post(url, data=json.dumps({"id": 5}), headers=ce, timeout=5), 400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER", '"id"')
        err(requests.post(url, data=json.dumps({"data": 1, "data_base64": "aGk="}), headers=ce,
                          timeout=5), 400, "ERR_PUBSUB_CLOUD_EVENTS_SER", "both")
        err(requests.post(publish_url(sc, "nope", "t"), json={}, timeout=5), 404,
            "ERR_PUBSUB_NOT_FOUND", "pubsub nope not found")
        err(requests.post(sc.url + "/v1.0/publish/pubsub/", json={}, timeout=5), 404,
            "ERR_TOPIC_NAME_EMPTY")
        err(requests.post(sc.url + "/v1.0/publish/pubsub", json={}, timeout=5), 404,
            "ERR_TOPIC_NAME_EMPTY")
        err(requests.post(sc.url + "/v1.0/publish//t", json={}, timeout=5), 404,
            "ERR_PUBSUB_EMPTY")
        err(requests.post(publish_url(sc, "pubsub", "x" * 300), json={}, timeout=5), 400,
            "ERR_MALFORMED_REQUEST", "too long")
        err(requests.post(url + "?metadata.ttlInSeconds=soon", json={}, timeout=5), 400,
            "ERR_PUBSUB_PUBLISH_MESSAGE", "ttlInSeconds")
        err(requests.post(url + "?metadata.rawPayload=true", data=b"{bad",
                          headers={"Content-Type": "application/json"}, timeout=5), 400,
            "ERR_PUBSUB_PUBLISH_MESSAGE", "not JSON")
        # Over the broker's event limit (1 MiB by default): 413 naming the limit.
        big = b"x" * (1536 * 1024)
        err(requests.post(url, data=big, headers={"Content-Type": "text/plain"}, timeout=10),
            413, "ERR_PUBSUB_PUBLISH_MESSAGE", "TRELLIS_BROKER_MAX_PAYLOAD")
        # Over the sidecar's request limit (4 MiB, Dapr's default).
        r = requests.post(url, data=b"x" * (5 << 20), timeout=10)
        assert r.status_code == 413
        # Nothing of that was stored.
        topics = requests.get(srv.url + "/v1/broker/topics", timeout=5).json()["topics"]
        assert all(t["next_offset"] == 0 for t in topics if t["name"] == "t")

        # Bulk publish: all or nothing, per-entry errors named.
        bulk = sc.url + "/v1.0-alpha1/publish/bulk/pubsub/t"
        entries = [{"entryId": "1", "event": {"a": 1}, "contentType": "application/json"},
                   {"entryId": "2", "event": "text"}]
        assert requests.post(bulk, json=entries, timeout=5).status_code == 204
        err(requests.post(bulk, json=[{"event": 1}], timeout=5), 400,
            "ERR_PUBSUB_CLOUD_EVENTS_SER", "entryId")
        err(requests.post(bulk, data=b"{}", timeout=5), 400, "ERR_MALFORMED_REQUEST")
        topics = requests.get(srv.url + "/v1/broker/topics", timeout=5).json()["topics"]
        assert [t["next_offset"] for t in topics if t["name"] == "t"] == [2]
    finally:
        app.stop()


def test_no_pubsub_configured(trellis_proc, tmp_path):
    comps = write_components(tmp_path / "c", {
        "state.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
                      "  name: statestore\nspec:\n  type: state.trellis\n  version: v1\n"})
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "x", free_port(), components=comps)
    r = requests.post(publish_url(sc, "pubsub", "t"), json={}, timeout=5)
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_PUBSUB_NOT_CONFIGURED"


def test_sigterm_finishes_deliveries_in_flight(trellis_proc, tmp_path):
    started = threading.Event()

    def answer(route, ev, n):
        started.set()
        return 1.0  # answer 200 after a second

    app = Subscriber("slow", [{"pubsubname": "pubsub", "topic": "slow", "route": "/slow"}],
                     answer=answer)
    try:
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "slow", app.port)
        ready_subscriptions(sc, 1)
        publish(sc, "slow", {"n": 1})
        assert started.wait(5 * SLOW)
        t0 = time.monotonic()
        sc.signal(signal.SIGTERM)
        assert sc.p.wait(10 * SLOW) == 0
        # It waited for the app's answer, then acked before exiting.
        assert 0.5 <= time.monotonic() - t0 < 5 * SLOW
        topics = requests.get(srv.url + "/v1/broker/topics", timeout=5).json()["topics"]
        group = [g for t in topics if t["name"] == "slow" for g in t["groups"]][0]
        assert group["name"] == "slow" and group["lag"] == 0 and group["in_flight"] == 0
    finally:
        app.stop()


def test_subscribe_endpoint_is_retried_until_the_app_answers(trellis_proc, tmp_path):
    calls = []

    def subscribe(handler, body):
        calls.append(time.monotonic())
        if len(calls) < 3:
            return 503, {}, b"starting"
        return 200, {"Content-Type": "application/json"}, json.dumps(
            [{"pubsubname": "pubsub", "topic": "late", "route": "/late"}])

    got = []
    app = AppServer("late", routes={"/dapr/subscribe": subscribe,
                                    "/late": lambda h, b: (got.append(json.loads(b)),
                                                           (200, {}, b""))[1]})
    try:
        srv = start_server(trellis_proc, tmp_path)
        sc = start_sidecar(trellis_proc, srv, "late", app.port)
        ready_subscriptions(sc, 1)
        assert len(calls) == 3
        publish(sc, "late", {"n": 1})
        wait_for(lambda: len(got) == 1)
        assert any("retrying until the app answers" in line for line in sc.lines)
    finally:
        app.stop()
