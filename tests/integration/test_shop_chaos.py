# SPDX-License-Identifier: Apache-2.0
"""Issue 6's end-to-end acceptance test: the shop under `trellis up` takes 2,000 orders
through the gateway at a steady rate while an order replica is kill -9'd every few
seconds, order is scaled 2 -> 4 -> 2 and inventory is rolled out. Afterwards: no order
lost, none charged twice, exactly one notification per created order, stock adds up,
and no client-visible error except 503 payment_breaker_open (counted and printed).

A replica is killed only while another one is ready (killing the last one would be an
outage of order, not a crash to ride out). The client never retries: every failure it sees counts. Requests cut off by a killed
replica are resent by the gateway (the orders cluster's retry policy names
Idempotency-Key as its idempotency_header), and the order service dedupes by that key.
Under ASan (SLOW) fewer orders at a lower rate, same invariants."""
import collections
import concurrent.futures
import json
import os
import random
import signal
import subprocess
import threading
import time

import requests

from conftest import SANITIZER_MARKERS, SANITIZED, SLOW
from shop_helpers import shop_manifest
from sidecar_helpers import wait_for
from test_shop_up import UpRun

ORDERS = 2000 if not SANITIZED else 400
RATE = 90.0 if not SANITIZED else 20.0  # orders per second
CLIENTS = 32
KILL_EVERY = 3.0
INITIAL_STOCK = 100000


def ps(up):
    r = up.ctl("ps", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def replicas(st, svc):
    for s in st["services"]:
        if s["name"] == svc:
            return s["replicas"]
    return []


def app_url(up, svc):
    for rep in replicas(ps(up), svc):
        if rep.get("ready") and rep.get("app_port"):
            return "http://127.0.0.1:%d" % rep["app_port"]
    raise AssertionError("no ready %s replica" % svc)


def get_json(url):
    r = requests.get(url, timeout=10 * SLOW)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return r.json()


def test_shop_chaos(tmp_path):
    shop_manifest(tmp_path)
    up = UpRun(tmp_path)
    try:
        run_chaos(up)
    finally:
        if up.p.poll() is None:
            up.ctl("down")
            try:
                up.p.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                up.p.kill()
                up.p.wait()


def run_chaos(up):
    up.wait_up()
    gw = "http://" + ps(up)["gateway"]["listen"]
    wait_for(lambda: requests.get(gw + "/products", timeout=5).status_code == 200, 10)

    lock = threading.Lock()
    outcomes = {}  # key -> (status, body)
    stop = threading.Event()
    events = collections.Counter()
    log = []

    def place(i):
        key = "chaos-%d" % i
        body = {"items": [{"product_id": "p%d" % (1 + i % 5), "quantity": 1 + i % 3}],
                "customer_id": "c%d" % (i % 7)}
        try:
            r = requests.post(gw + "/orders", json=body, headers={"Idempotency-Key": key},
                              timeout=30 * SLOW)
            status, text = r.status_code, r.text
        except requests.RequestException as e:
            status, text = "exception", str(e)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        with lock:
            outcomes[key] = (status, payload)

    def chaos():
        t0 = time.time()
        next_kill = t0 + KILL_EVERY
        steps = [(0.30, "scale", "order=4"), (0.45, "rollout", "inventory"),
                 (0.65, "scale", "order=2")]
        total = ORDERS / RATE
        while not stop.wait(0.1):
            now = time.time()
            while steps and now - t0 >= steps[0][0] * total:
                _, cmd, arg = steps.pop(0)
                r = up.ctl(cmd, arg)
                assert r.returncode == 0, (cmd, arg, r.stdout, r.stderr)
                events[cmd] += 1
                log.append("%.1fs %s %s" % (time.time() - t0, cmd, arg))
            if now >= next_kill:
                next_kill = now + KILL_EVERY
                # A replica dies while the others serve: never the last ready one (a
                # restarted replica may still be in its crash-loop backoff), which
                # would be a total outage of order rather than a crash to ride out.
                reps = [rep for rep in replicas(ps(up), "order")
                        if rep.get("pid") and rep.get("ready")]
                if len(reps) >= 2:
                    victim = random.choice(reps)
                    try:
                        os.kill(victim["pid"], signal.SIGKILL)
                        events["kills"] += 1
                        log.append("%.1fs kill -9 order pid %d" % (time.time() - t0,
                                                                   victim["pid"]))
                    except OSError:
                        pass

    start = time.time()
    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            futures = []
            for i in range(ORDERS):
                delay = start + i / RATE - time.time()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(place, i))
            for f in futures:
                f.result()
    finally:
        stop.set()
        chaos_thread.join()
    duration = time.time() - start
    assert events["scale"] == 2 and events["rollout"] == 1, log

    created = {k: b for k, (s, b) in outcomes.items() if s in (200, 201)}
    breaker = [k for k, (s, b) in outcomes.items()
               if s == 503 and isinstance(b, dict)
               and b.get("error", {}).get("code") == "payment_breaker_open"]
    errors = [(k, s, str(b)[:600]) for k, (s, b) in outcomes.items()
              if s not in (200, 201) and k not in breaker]
    print("chaos: %d orders in %.1f s (%.0f/s): %d created, %d 503 payment_breaker_open, "
          "%d other errors, 0 client retries; %d order kills, %d scales, %d rollouts"
          % (ORDERS, duration, ORDERS / duration, len(created), len(breaker), len(errors),
             events["kills"], events["scale"], events["rollout"]))
    print("\n".join(log))
    assert len(outcomes) == ORDERS
    assert not errors, "client-visible errors: %d, e.g. %s" % (len(errors), errors[:5])
    assert events["kills"] >= 3

    # No order lost: every created order reads back as created; breaker-failed ones are
    # stored as failed (or were never stored).
    for key, body in created.items():
        assert body["order_id"] == "ord-" + key and body["status"] == "created", body
    for key in list(created)[::7]:
        assert get_json(gw + "/orders/ord-" + key)["status"] == "created"
    for key in breaker:
        r = requests.get(gw + "/orders/ord-" + key, timeout=10 * SLOW)
        assert r.status_code == 404 or (r.status_code == 200 and r.json()["status"] == "failed"), \
            r.text

    # None charged twice, and exactly the created orders charged.
    payments = get_json(app_url(up, "payment") + "/payments")["payments"]
    charged = collections.Counter(p["order_id"] for p in payments if p["status"] == "charged")
    created_ids = {"ord-" + k for k in created}
    assert all(n == 1 for n in charged.values()), [o for o, n in charged.items() if n > 1][:5]
    assert set(charged) == created_ids, (sorted(set(charged) ^ created_ids)[:5])
    for b in created.values():
        assert b.get("payment_id"), b

    # Stock adds up: what created orders took is reserved, the rest (failed orders'
    # reservations released) is available again.
    want = collections.Counter()
    for b in created.values():
        for it in b["items"]:
            want[it["product_id"]] += it["quantity"]
    inv = app_url(up, "inventory")
    for pid in ("p1", "p2", "p3", "p4", "p5"):
        s = get_json(inv + "/inventory/" + pid)
        assert s["reserved"] == want[pid], (pid, s, want[pid])
        assert s["available"] == INITIAL_STOCK - want[pid], (pid, s, want[pid])

    # Exactly one notification per created order (deliveries are at least once; the
    # service dedupes by CloudEvent id), none for failed ones; wait for them to settle.
    def notes():
        return get_json(gw + "/notifications")["notifications"]
    wait_for(lambda: len(notes()) >= len(created), 30)
    time.sleep(1.0 * SLOW)
    ns = notes()
    by_event = collections.Counter(n["event_id"] for n in ns)
    by_order = collections.Counter(n["order_id"] for n in ns)
    assert all(v == 1 for v in by_event.values())
    assert all(v == 1 for v in by_order.values()), [o for o, v in by_order.items() if v > 1][:5]
    assert set(by_order) == created_ids, sorted(set(by_order) ^ created_ids)[:5]

    # The gateway did the retrying the client did not have to do.
    admin = ps(up)["gateway"].get("admin")
    if admin:
        print("gateway retries in the orders cluster: %s" % gateway_retries(admin))

    r = up.ctl("down")
    assert r.returncode == 0, r.stderr
    assert up.p.wait(60 * SLOW) == 0
    bad = []
    logs = os.path.join(up.dir, ".trellis", "logs")
    for name in sorted(os.listdir(logs)):
        with open(os.path.join(logs, name), errors="replace") as f:
            for line in f:
                if any(m in line for m in SANITIZER_MARKERS):
                    bad.append("%s: %s" % (name, line.rstrip()))
    assert not bad, "\n".join(bad[:20])


def gateway_retries(admin):
    r = requests.get("http://%s/metrics" % admin, timeout=5)
    total = None
    for line in r.text.splitlines():
        if line.startswith("trellis_proxy_retries_total{") and 'cluster="orders"' in line:
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return "?" if total is None else "%d" % total
