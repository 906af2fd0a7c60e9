# SPDX-License-Identifier: Apache-2.0
"""`trellis sidecar` against a real `trellis server` and small Python apps: health and
metadata (before and after the app is up), the API token, state (ETags, 409s, bulk,
transactions, namespacing), secrets (file and env stores), components errors,
registration and deregistration, invocation between apps (methods, headers, query,
bodies, status, header form, traceparent, load balancing, failover, unknown apps) and
WebSocket pass-through. Pub/sub has its own files."""
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, SLOW
from sidecar_helpers import (AppServer, free_port, start_server, start_sidecar, wait_for,
                             write_components)


def dapr(sc, path):
    return "%s/v1.0/%s" % (sc.url, path)


@pytest.fixture
def app():
    a = AppServer("app1")
    yield a
    a.stop()


# ------------------------------------------------------------------ health, metadata


def test_health_metadata_and_empty_query(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, health_path="/healthz")
    wait_for(lambda: requests.get(dapr(sc, "healthz"), timeout=5).status_code == 204)
    r = requests.get(dapr(sc, "healthz/outbound"), timeout=5)
    assert r.status_code == 204 and r.content == b""
    # SDKs send a trailing '?' with empty query strings.
    r = requests.get(dapr(sc, "metadata?"), timeout=5)
    assert r.status_code == 200
    meta = r.json()
    assert meta["id"] == "app1"
    comps = {c["name"]: c for c in meta["components"]}
    assert comps["statestore"]["type"] == "state.trellis"
    assert comps["statestore"]["version"] == "v1"
    assert "ETAG" in comps["statestore"]["capabilities"]
    assert comps["pubsub"]["type"] == "pubsub.trellis"
    assert isinstance(meta["subscriptions"], list)
    assert meta["appConnectionProperties"]["port"] == app.port
    assert meta["appConnectionProperties"]["health"]["healthCheckPath"] == "/healthz"
    # Custom attributes land under "extended".
    r = requests.put(dapr(sc, "metadata/team"), data=b"payments", timeout=5)
    assert r.status_code == 204
    assert requests.get(dapr(sc, "metadata"), timeout=5).json()["extended"]["team"] == "payments"
    # ?appid= must match (Dapr's Consul resolver uses it).
    r = requests.get(dapr(sc, "healthz?appid=other"), timeout=5)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_HEALTH_APPID_NOT_MATCH"
    assert requests.get(dapr(sc, "healthz?appid=app1"), timeout=5).status_code == 204
    # Unknown API paths: Dapr-shaped 404.
    r = requests.get(dapr(sc, "nothing/here"), timeout=5)
    assert r.status_code == 404 and r.json()["errorCode"] == "ERR_NOT_FOUND"


def test_outbound_apis_work_before_the_app_is_up(trellis_proc, tmp_path):
    srv = start_server(trellis_proc, tmp_path)
    port = free_port()
    sc = start_sidecar(trellis_proc, srv, "late", port, health_path="/healthz")
    r = requests.get(dapr(sc, "healthz"), timeout=5)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_HEALTH_NOT_READY"
    assert requests.get(dapr(sc, "healthz/outbound"), timeout=5).status_code == 204
    assert requests.get(dapr(sc, "metadata"), timeout=5).json()["id"] == "late"
    # State works with no app at all: no start-order deadlock.
    r = requests.post(dapr(sc, "state/statestore"), json=[{"key": "k", "value": 1}], timeout=5)
    assert r.status_code == 204
    assert requests.get(dapr(sc, "state/statestore/k"), timeout=5).content == b"1"
    late = AppServer("late", port=port)
    try:
        wait_for(lambda: requests.get(dapr(sc, "healthz"), timeout=5).status_code == 204)
        # Unhealthy again: three failed probes a second apart make it not ready.
        late.health_status = 503
        wait_for(lambda: requests.get(dapr(sc, "healthz"), timeout=5).status_code == 500,
                 timeout=8)
    finally:
        late.stop()


def test_api_token(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    env = {"DAPR_API_TOKEN": "s3cret"}
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, env=env)
    r = requests.get(dapr(sc, "metadata"), timeout=5)
    assert r.status_code == 401 and r.json()["errorCode"] == "ERR_UNAUTHORIZED"
    r = requests.get(dapr(sc, "metadata"), headers={"dapr-api-token": "wrong"}, timeout=5)
    assert r.status_code == 401
    r = requests.get(dapr(sc, "metadata"), headers={"dapr-api-token": "s3cret"}, timeout=5)
    assert r.status_code == 200
    # Health endpoints are exempt.
    assert requests.get(dapr(sc, "healthz/outbound"), timeout=5).status_code == 204
    r = requests.post(dapr(sc, "state/statestore"), json=[{"key": "a", "value": 1}], timeout=5)
    assert r.status_code == 401
    # Invocation between two sidecars sharing the token; the apps never see it.
    app2 = AppServer("app2")
    try:
        sc2 = start_sidecar(trellis_proc, srv, "app2", app2.port, env=env)
        r = wait_for(lambda: _ok(requests.get(dapr(sc2, "invoke/app1/method/hello"),
                                              headers={"dapr-api-token": "s3cret"}, timeout=5)))
        assert r.json()["app"] == "app1"
        assert "dapr-api-token" not in app.last("/hello")["headers"]
        r = requests.get(dapr(sc2, "invoke/app1/method/hello"), timeout=5)
        assert r.status_code == 401
    finally:
        app2.stop()


def _ok(r):
    return r if r.status_code == 200 else None


# ------------------------------------------------------------------ state


def test_state_crud_etags_and_errors(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "app1", app.port)
    st = dapr(sc, "state/statestore")
    r = requests.post(st, json=[{"key": "order", "value": {"id": 7}},
                                {"key": "name", "value": "hello"}], timeout=5)
    assert r.status_code == 204 and r.content == b""
    r = requests.get(st + "/order", timeout=5)
    assert r.status_code == 200 and r.json() == {"id": 7}
    etag = r.headers["ETag"]
    assert etag
    assert requests.get(st + "/name", timeout=5).content == b'"hello"'
    # Missing key: 204 with an empty body.
    r = requests.get(st + "/missing?consistency=strong", timeout=5)
    assert r.status_code == 204 and r.content == b""
    # Optimistic concurrency: a stale ETag is a 409 ERR_STATE_SAVE; the right one wins.
    r = requests.post(st, json=[{"key": "order", "value": {"id": 8}, "etag": etag + "9"}],
                      timeout=5)
    assert r.status_code == 409 and r.json()["errorCode"] == "ERR_STATE_SAVE"
    r = requests.put(st, json=[{"key": "order", "value": {"id": 8}, "etag": etag}], timeout=5)
    assert r.status_code == 204
    new = requests.get(st + "/order", timeout=5)
    assert new.json() == {"id": 8} and new.headers["ETag"] != etag
    # first-write without ETag on an existing key: 409.
    r = requests.post(st, json=[{"key": "order", "value": 1,
                                 "options": {"concurrency": "first-write"}}], timeout=5)
    assert r.status_code == 409
    # Invalid ETag: 400.
    r = requests.post(st, json=[{"key": "order", "value": 1, "etag": "abc"}], timeout=5)
    assert r.status_code == 400
    # Delete with a wrong If-Match: 409 ERR_STATE_DELETE; right one: 204.
    r = requests.delete(st + "/order", headers={"If-Match": etag}, timeout=5)
    assert r.status_code == 409 and r.json()["errorCode"] == "ERR_STATE_DELETE"
    r = requests.delete(st + "/order", headers={"If-Match": new.headers["ETag"]}, timeout=5)
    assert r.status_code == 204
    assert requests.get(st + "/order", timeout=5).status_code == 204
    # Metadata query parameters pass through (TTL is accepted).
    r = requests.post(st + "?metadata.ttlInSeconds=60", json=[{"key": "t", "value": 1}],
                      timeout=5)
    assert r.status_code == 204
    # Bad input: malformed JSON, missing key.
    r = requests.post(st, data=b"[{", timeout=5)
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    r = requests.post(st, json=[{"value": 1}], timeout=5)
    assert r.status_code == 400
    # Unknown store: 400 ERR_STATE_STORE_NOT_FOUND.
    r = requests.get(dapr(sc, "state/nope/k"), timeout=5)
    assert r.status_code == 400 and r.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"
    # Keys with slashes.
    r = requests.post(st, json=[{"key": "a/b/c", "value": [1]}], timeout=5)
    assert r.status_code == 204
    assert requests.get(st + "/a/b/c", timeout=5).json() == [1]


def test_state_bulk_transaction_and_namespacing(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc1 = start_sidecar(trellis_proc, srv, "app1", app.port)
    app2 = AppServer("app2")
    try:
        sc2 = start_sidecar(trellis_proc, srv, "app2", app2.port)
        s1, s2 = dapr(sc1, "state/statestore"), dapr(sc2, "state/statestore")
        assert requests.post(s1, json=[{"key": "k", "value": "one"},
                                       {"key": "j", "value": 2}], timeout=5).status_code == 204
        assert requests.post(s2, json=[{"key": "k", "value": "two"}], timeout=5).status_code == 204
        # Each app sees its own key: namespaced app||key by the server.
        assert requests.get(s1 + "/k", timeout=5).json() == "one"
        assert requests.get(s2 + "/k", timeout=5).json() == "two"
        raw = requests.get("%s/v1/state/statestore/app1/k" % srv.url, timeout=5)
        assert raw.json() == "one"
        # Bulk: values under "data", missing keys with their key only.
        r = requests.post(s1 + "/bulk", json={"keys": ["k", "j", "zz"], "parallelism": 2},
                          timeout=5)
        assert r.status_code == 200
        items = {i["key"]: i for i in r.json()}
        assert items["k"]["data"] == "one" and items["k"]["etag"]
        assert items["j"]["data"] == 2
        assert "data" not in items["zz"]
        etag_j = items["j"]["etag"]
        # Transaction: all or nothing.
        r = requests.post(s1 + "/transaction", json={"operations": [
            {"operation": "upsert", "request": {"key": "t1", "value": {"x": 1}}},
            {"operation": "delete", "request": {"key": "j", "etag": etag_j + "0"}},
        ]}, timeout=5)
        assert r.status_code == 409
        assert requests.get(s1 + "/t1", timeout=5).status_code == 204
        r = requests.post(s1 + "/transaction", json={"operations": [
            {"operation": "upsert", "request": {"key": "t1", "value": {"x": 1}}},
            {"operation": "delete", "request": {"key": "j", "etag": etag_j}},
        ]}, timeout=5)
        assert r.status_code == 204
        assert requests.get(s1 + "/t1", timeout=5).json() == {"x": 1}
        assert requests.get(s1 + "/j", timeout=5).status_code == 204
        # Many small requests over one keep-alive connection.
        with requests.Session() as s:
            for i in range(200):
                assert s.post(s1, json=[{"key": "n%d" % i, "value": i}],
                              timeout=5).status_code == 204
            assert s.get(s1 + "/n199", timeout=5).json() == 199
    finally:
        app2.stop()


def test_state_server_unreachable(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, register=False)
    assert srv.stop() == 0
    r = requests.get(dapr(sc, "state/statestore/k"), timeout=10)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_STATE_GET"
    assert "trellis server" in r.json()["message"]


# ------------------------------------------------------------------ secrets

SECRETS = {
    "db": {"user": "admin", "password": "p@ss-9f8e7d"},
    "apiKey": "key-5a4b3c",
    "ports": [80, 443],
    "flag": True,
}


def test_secrets_file_and_env(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    with open(str(tmp_path / "secrets.json"), "w") as f:
        json.dump(SECRETS, f)
    comps = write_components(tmp_path / "components", {
        "state.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n"
                      "spec:\n  type: state.trellis\n  version: v1\n",
        "secrets.yaml": """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: %s
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: multi
spec:
  type: secretstores.local.file
  metadata:
  - name: secretsFile
    value: ../secrets.json
  - name: nestedSeparator
    value: "."
  - name: multiValued
    value: "true"
""" % str(tmp_path / "secrets.json"),
        "env.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: envstore\n"
                    "spec:\n  type: secretstores.local.env\n  metadata:\n  - name: prefix\n"
                    "    value: MYAPP_\n",
    })
    env = {"MYAPP_TOKEN": "env-7x7x7x", "OTHER_VAR": "hidden"}
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, components=comps, env=env)
    get = lambda p: requests.get(dapr(sc, "secrets/" + p), timeout=5)
    r = get("localsecrets/db:password")
    assert r.status_code == 200 and r.json() == {"db:password": "p@ss-9f8e7d"}
    assert get("localsecrets/apiKey").json() == {"apiKey": "key-5a4b3c"}
    assert get("localsecrets/ports:1").json() == {"ports:1": "443"}
    assert get("localsecrets/flag").json() == {"flag": "true"}
    r = get("localsecrets/nope")
    assert r.status_code == 204 and r.content == b""
    bulk = get("localsecrets/bulk").json()
    assert bulk["db:user"] == {"db:user": "admin"} and bulk["apiKey"] == {"apiKey": "key-5a4b3c"}
    # multiValued: top-level keys are secrets, nested values flattened with ".".
    assert get("multi/db").json() == {"user": "admin", "password": "p@ss-9f8e7d"}
    assert get("multi/ports").json() == {"0": "80", "1": "443"}
    assert get("multi/bulk").json()["db"] == {"user": "admin", "password": "p@ss-9f8e7d"}
    # env store with a prefix.
    assert get("envstore/TOKEN").json() == {"TOKEN": "env-7x7x7x"}
    assert get("envstore/OTHER_VAR").status_code == 204
    assert get("envstore/bulk").json() == {"TOKEN": {"TOKEN": "env-7x7x7x"}}
    # Unknown store: 401 ERR_SECRET_STORE_NOT_FOUND (the runtime's code).
    r = get("nostore/x")
    assert r.status_code == 401 and r.json()["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND"
    # Metadata lists the stores.
    names = {c["name"]: c for c in requests.get(dapr(sc, "metadata"), timeout=5).json()["components"]}
    assert "MULTIPLE_KEY_VALUES_PER_SECRET" in names["multi"]["capabilities"]
    sc.stop()
    # Secret values never appear in the logs.
    logs = "\n".join(sc.lines)
    for v in ("p@ss-9f8e7d", "key-5a4b3c", "env-7x7x7x"):
        assert v not in logs


def test_no_secret_stores(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "app1", app.port)
    r = requests.get(dapr(sc, "secrets/any/x"), timeout=5)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_SECRET_STORES_NOT_CONFIGURED"


# ------------------------------------------------------------------ components


def run_sidecar_expect_fail(args, timeout=10):
    r = subprocess.run([BIN, "sidecar"] + args, capture_output=True, text=True,
                       timeout=timeout * SLOW)
    return r.returncode, r.stderr


def test_component_errors(tmp_path):
    d = tmp_path / "c1"
    write_components(d, {"redis.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                                       "metadata:\n  name: cache\nspec:\n  type: state.redis\n"})
    rc, err = run_sidecar_expect_fail(["--app-id", "a", "--app-port", "1", "--components", str(d)])
    assert rc == 2
    assert "redis.yaml" in err and "state.redis" in err and "unknown component type" in err
    d = tmp_path / "c2"
    write_components(d, {"bad.yml": "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                                    "metadata:\n  name: s\nspec:\n  type: [oops\n"})
    rc, err = run_sidecar_expect_fail(["--app-id", "a", "--app-port", "1", "--components", str(d)])
    assert rc == 2 and "bad.yml:" in err
    d = tmp_path / "c3"
    write_components(d, {"a.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
                                   "  name: s\nspec:\n  type: state.trellis\n",
                         "b.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
                                   "  name: s\nspec:\n  type: state.trellis\n"})
    rc, err = run_sidecar_expect_fail(["--app-id", "a", "--app-port", "1", "--components", str(d)])
    assert rc == 2 and "already defined" in err
    rc, err = run_sidecar_expect_fail(["--app-id", "a", "--app-port", "1", "--components",
                                       str(tmp_path / "missing")])
    assert rc == 2 and "missing" in err
    rc, err = run_sidecar_expect_fail(["--app-port", "1"])
    assert rc == 2 and "--app-id" in err
    d = tmp_path / "c4"
    write_components(d, {"s.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n"
                                   "  name: sec\nspec:\n  type: secretstores.local.file\n"
                                   "  metadata:\n  - name: secretsFile\n    value: /nonexistent.json\n"})
    rc, err = run_sidecar_expect_fail(["--app-id", "a", "--app-port", "1", "--components", str(d)])
    assert rc == 2 and "s.yaml" in err and "/nonexistent.json" in err


def test_component_scopes_and_other_kinds(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    comps = write_components(tmp_path / "components", {
        "all.yaml": """# several documents in one file
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mine
spec:
  type: state.trellis
scopes:
- app1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: theirs
spec:
  type: state.trellis
scopes:
- other
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: tracing
spec: {}
""",
    })
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, components=comps)
    names = [c["name"] for c in requests.get(dapr(sc, "metadata"), timeout=5).json()["components"]]
    assert names == ["mine"]
    assert requests.post(dapr(sc, "state/mine"), json=[{"key": "a", "value": 1}],
                         timeout=5).status_code == 204
    assert requests.get(dapr(sc, "state/theirs/a"), timeout=5).status_code == 400
    assert any("Configuration" in l for l in sc.lines)


# ------------------------------------------------------------------ registration


def test_registration_and_deregistration(trellis_proc, tmp_path, app):
    srv = start_server(trellis_proc, tmp_path)
    sc = start_sidecar(trellis_proc, srv, "app1", app.port, health_path="/healthz")

    def passing():
        r = requests.get("%s/v1/health/service/app1?passing" % srv.url, timeout=5)
        return r.json() if r.status_code == 200 and r.json() else None
    entries = wait_for(passing)
    svc = entries[0]["Service"]
    assert svc["ID"] == "app1-%d" % sc.port
    assert svc["Port"] == app.port and svc["Address"] == "127.0.0.1"
    assert svc["Meta"]["dapr_http_port"] == str(sc.port)
    assert svc["Meta"]["app_id"] == "app1"
    checks = [c for c in entries[0]["Checks"] if c["ServiceID"] == svc["ID"]]
    assert checks and checks[0]["Type"] == "http" and checks[0]["Interval"] == "1s"
    assert "/healthz" in app.paths()
    assert sc.stop() == 0
    r = requests.get("%s/v1/health/service/app1" % srv.url, timeout=5)
    assert r.json() == []
    assert any("deregistered" in l for l in sc.lines)


def test_registration_waits_for_the_server(trellis_proc, tmp_path, app):
    port = free_port()

    class Late:
        url = "http://127.0.0.1:%d" % port
    sc = start_sidecar(trellis_proc, Late, "app1", app.port)
    # No server yet: outbound calls fail cleanly, the sidecar keeps serving.
    r = requests.get(dapr(sc, "state/statestore/k"), timeout=10)
    assert r.status_code == 500 and r.json()["errorCode"] == "ERR_STATE_GET"
    time.sleep(0.5)
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data"), "--listen",
                        "127.0.0.1:%d" % port])

    def registered():
        r = requests.get("%s/v1/health/service/app1?passing" % srv.url, timeout=5)
        return r.json() if r.status_code == 200 and r.json() else None
    entries = wait_for(registered, timeout=10)
    assert entries[0]["Service"]["Meta"]["dapr_http_port"] == str(sc.port)
    assert any("cannot register" in l for l in sc.lines)
    assert requests.post(dapr(sc, "state/statestore"), json=[{"key": "k", "value": 2}],
                         timeout=5).status_code == 204


# ------------------------------------------------------------------ invocation


def two_apps(trellis_proc, tmp_path, routes1=None, env=None):
    srv = start_server(trellis_proc, tmp_path)
    a1 = AppServer("app1", routes=routes1)
    a2 = AppServer("app2")
    sc1 = start_sidecar(trellis_proc, srv, "app1", a1.port, env=env)
    sc2 = start_sidecar(trellis_proc, srv, "app2", a2.port, env=env)
    return srv, a1, a2, sc1, sc2


def wait_invocable(sc, app_id):
    wait_for(lambda: requests.get(dapr(sc, "invoke/%s/method/ping" % app_id),
                                  timeout=5).status_code == 200)


def test_invoke_passthrough(trellis_proc, tmp_path):
    def teapot(h, body):
        return 418, {"Content-Type": "text/plain", "X-Reason": "short"}, b"I'm a teapot"
    srv, a1, a2, sc1, sc2 = two_apps(trellis_proc, tmp_path, routes1={"/tea": teapot})
    try:
        wait_invocable(sc2, "app1")
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            body = b"payload-" + method.encode() if method != "GET" else None
            r = requests.request(method, dapr(sc2, "invoke/app1/method/orders/42?x=1&y=%20z"),
                                 data=body, headers={"X-Custom": "v1"}, timeout=5)
            assert r.status_code == 200, r.text
            echo = r.json()
            assert echo["app"] == "app1"
            assert echo["method"] == method
            assert echo["target"] == "/orders/42?x=1&y=%20z"
            assert echo["headers"]["x-custom"] == "v1"
            assert echo["headers"]["dapr-caller-app-id"] == "app2"
            assert echo["headers"]["dapr-callee-app-id"] == "app1"
            assert echo["body"] == (body.decode() if body else "")
            assert r.headers["X-App"] == "app1"
        r = requests.head(dapr(sc2, "invoke/app1/method/h"), timeout=5)
        assert r.status_code == 200 and a1.last("/h")["method"] == "HEAD"
        # The app's status, headers and body come back as they are.
        r = requests.post(dapr(sc2, "invoke/app1/method/tea"), data=b"x", timeout=5)
        assert r.status_code == 418 and r.content == b"I'm a teapot"
        assert r.headers["X-Reason"] == "short"
        # Header form: dapr-app-id on any path.
        r = requests.post("%s/shop/cart?id=3" % sc2.url, headers={"dapr-app-id": "app1"},
                          data=b"hdr", timeout=5)
        assert r.status_code == 200
        assert r.json()["target"] == "/shop/cart?id=3" and r.json()["body"] == "hdr"
        # Basic-auth form: http://dapr-app-id:<app>@host:port/<path>.
        r = requests.get("http://dapr-app-id:app1@127.0.0.1:%d/basic/x?q=1" % sc2.port, timeout=5)
        assert r.status_code == 200 and r.json()["target"] == "/basic/x?q=1"
        assert r.json()["app"] == "app1"
        # Own app id: delivered to the local app.
        r = requests.get(dapr(sc1, "invoke/app1/method/self"), timeout=5)
        assert r.status_code == 200 and r.json()["app"] == "app1"
        # Empty query string is kept as-is.
        r = requests.get(dapr(sc2, "invoke/app1/method/q?"), timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/q"
    finally:
        a1.stop()
        a2.stop()


def test_invoke_bodies_streamed_and_chunked(trellis_proc, tmp_path):
    def digest(h, body):
        return 200, {"Content-Type": "text/plain"}, hashlib.sha256(body).hexdigest().encode()

    def big(h, body):
        return 200, {"Content-Type": "application/octet-stream"}, b"z" * (3 * 1024 * 1024)
    srv, a1, a2, sc1, sc2 = two_apps(trellis_proc, tmp_path,
                                     routes1={"/digest": digest, "/big": big})
    try:
        wait_invocable(sc2, "app1")
        payload = os.urandom(3 * 1024 * 1024)
        r = requests.post(dapr(sc2, "invoke/app1/method/digest"), data=payload, timeout=20)
        assert r.status_code == 200 and r.text == hashlib.sha256(payload).hexdigest()

        def gen():
            for _ in range(64):
                yield b"c" * 10000
        r = requests.post(dapr(sc2, "invoke/app1/method/digest"), data=gen(), timeout=20)
        assert r.text == hashlib.sha256(b"c" * 640000).hexdigest()
        r = requests.get(dapr(sc2, "invoke/app1/method/big"), timeout=20)
        assert len(r.content) == 3 * 1024 * 1024 and r.content == b"z" * len(r.content)
        # Over the 4 MiB request limit: 413.
        r = requests.post(dapr(sc2, "invoke/app1/method/digest"), data=b"x" * (5 << 20),
                          timeout=20)
        assert r.status_code == 413
    finally:
        a1.stop()
        a2.stop()


def test_invoke_traceparent(trellis_proc, tmp_path):
    srv, a1, a2, sc1, sc2 = two_apps(trellis_proc, tmp_path)
    try:
        wait_invocable(sc2, "app1")
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        r = requests.get(dapr(sc2, "invoke/app1/method/t"), headers={"traceparent": tp,
                                                                      "tracestate": "k=v"},
                         timeout=5)
        got = r.json()["headers"]["traceparent"]
        assert got.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and got.endswith("-01")
        assert got != tp  # a new parent id for the hop
        assert r.json()["headers"]["tracestate"] == "k=v"
        # None given: one is generated.
        r = requests.get(dapr(sc2, "invoke/app1/method/t"), timeout=5)
        got = r.json()["headers"]["traceparent"]
        parts = got.split("-")
        assert len(got) == 55 and parts[0] == "00" and len(parts[1]) == 32 and parts[1] != "0" * 32
        # An invalid one is replaced.
        r = requests.get(dapr(sc2, "invoke/app1/method/t"), headers={"traceparent": "garbage"},
                         timeout=5)
        assert len(r.json()["headers"]["traceparent"]) == 55
    finally:
        a1.stop()
        a2.stop()


def test_invoke_errors(trellis_proc, tmp_path):
    srv, a1, a2, sc1, sc2 = two_apps(trellis_proc, tmp_path)
    try:
        r = requests.get(dapr(sc2, "invoke/ghost/method/x"), timeout=10)
        assert r.status_code == 500 and r.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert "ghost" in r.json()["message"]
        r = requests.get(dapr(sc2, "invoke/bad$id/method/x"), timeout=5)
        assert r.status_code == 400 and r.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        r = requests.get(dapr(sc2, "invoke/app1/method"), timeout=5)
        assert r.status_code == 400
        # The local app is down: 500 ERR_DIRECT_INVOKE naming the port.
        a2.stop()
        r = requests.get(dapr(sc2, "invoke/app2/method/x"), timeout=5)
        assert r.status_code == 500 and r.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert str(a2.port) in r.json()["message"]
    finally:
        a1.stop()
        a2.stop()


def test_invoke_load_balancing_and_failover(trellis_proc, tmp_path):
    srv = start_server(trellis_proc, tmp_path)
    apps = [AppServer("b%d" % i) for i in range(2)]
    caller = AppServer("caller")
    try:
        scs = [start_sidecar(trellis_proc, srv, "backend", a.port, health_path="/healthz")
               for a in apps]
        sc = start_sidecar(trellis_proc, srv, "caller", caller.port)

        def both_registered():
            r = requests.get("%s/v1/health/service/backend?passing" % srv.url, timeout=5)
            return len(r.json()) == 2
        wait_for(both_registered)
        seen = set()
        for _ in range(20):
            r = requests.get(dapr(sc, "invoke/backend/method/who"), timeout=5)
            assert r.status_code == 200
            seen.add(r.json()["app"])
        assert seen == {"b0", "b1"}
        # Kill one instance's sidecar: every call still succeeds (connect failures are
        # retried on the other instance; deregistration removes it).
        scs[0].p.kill()
        scs[0].p.wait()
        scs[0].expect_failure = True
        for _ in range(20):
            r = requests.get(dapr(sc, "invoke/backend/method/who"), timeout=5)
            assert r.status_code == 200, r.text
            assert r.json()["app"] == "b1"
    finally:
        for a in apps + [caller]:
            a.stop()


# ------------------------------------------------------------------ websocket


class WsEchoApp:
    """A raw-socket WebSocket echo server (RFC 6455 handshake, unmasked replies)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.paths = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            lines = head.split(b"\r\n")
            self.paths.append(lines[0].split()[1].decode())
            hdrs = {}
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                hdrs[k.strip().lower()] = v.strip()
            if b"upgrade" not in hdrs.get(b"connection", b"").lower():
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                return
            accept = base64.b64encode(hashlib.sha1(
                hdrs[b"sec-websocket-key"] + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            buf = b""
            while True:
                frame, buf = read_frame(c, buf)
                if frame is None:
                    return
                opcode, payload = frame
                if opcode == 8:
                    c.sendall(b"\x88\x00")
                    return
                c.sendall(make_frame(opcode, payload, mask=False))
        finally:
            c.close()

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()


def make_frame(opcode, payload, mask=True):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(s, buf):
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                return False
            buf += d
        return True
    if not need(2):
        return None, buf
    opcode = buf[0] & 0x0F
    masked = buf[1] & 0x80
    n = buf[1] & 0x7F
    off = 2
    if n == 126:
        if not need(4):
            return None, buf
        n = struct.unpack("!H", buf[2:4])[0]
        off = 4
    elif n == 127:
        if not need(10):
            return None, buf
        n = struct.unpack("!Q", buf[2:10])[0]
        off = 10
    key = b""
    if masked:
        if not need(off + 4):
            return None, buf
        key = buf[off:off + 4]
        off += 4
    if not need(off + n):
        return None, buf
    payload = buf[off:off + n]
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return (opcode, payload), buf[off + n:]


def ws_handshake(port, target, key=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
    key = key or base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + target + b" HTTP/1.1\r\n"
              b"Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        assert d, head
        head += d
    head, _, rest = head.partition(b"\r\n\r\n")
    return s, key, head, rest


def test_websocket_upgrade_passthrough(trellis_proc, tmp_path):
    srv = start_server(trellis_proc, tmp_path)
    ws = WsEchoApp()
    caller = AppServer("caller")
    try:
        sc1 = start_sidecar(trellis_proc, srv, "wsapp", ws.port)
        sc2 = start_sidecar(trellis_proc, srv, "caller", caller.port)
        # sc2's first call to wsapp is the upgrade itself: it waits for the registry.
        for sc in (sc2, sc1):  # through two sidecars, and the app's own sidecar
            s, key, head, buf = ws_handshake(sc.port, b"/v1.0/invoke/wsapp/method/chat?room=1")
            assert head.startswith(b"HTTP/1.1 101"), head
            want = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            assert b"Sec-WebSocket-Accept: " + want in head
            for msg in (b"hello", b"x" * 70000, "h\u00e9llo".encode()):
                s.sendall(make_frame(1 if msg != b"x" * 70000 else 2, msg))
                frame, buf = read_frame(s, buf)
                assert frame is not None and frame[1] == msg
            s.sendall(make_frame(8, b""))
            frame, buf = read_frame(s, buf)
            assert frame is not None and frame[0] == 8
            s.close()
        assert ws.paths[-1] == "/chat?room=1"
        # Plain HTTP to the same app still works; unknown apps get Dapr's error as HTTP.
        assert requests.get(dapr(sc2, "invoke/wsapp/method/plain"), timeout=5).text == "ok"
        s, _, head, rest = ws_handshake(sc2.port, b"/v1.0/invoke/ghost/method/ws")
        assert head.startswith(b"HTTP/1.1 500") and b"ERR_DIRECT_INVOKE" in rest
        s.close()
        # The app gone: the upgrade is answered 500 before any takeover.
        ws.stop()
        s, _, head, rest = ws_handshake(sc1.port, b"/v1.0/invoke/wsapp/method/ws")
        assert head.startswith(b"HTTP/1.1 500") and b"cannot open the upgrade" in rest
        s.close()
    finally:
        ws.stop()
        caller.stop()


def test_sigterm_drains_in_flight_invocation(trellis_proc, tmp_path):
    def slow(h, body):
        time.sleep(0.5)
        return 200, {"Content-Type": "text/plain"}, b"done"
    srv, a1, a2, sc1, sc2 = two_apps(trellis_proc, tmp_path, routes1={"/slow": slow})
    try:
        wait_invocable(sc2, "app1")
        out = {}

        def call():
            out["r"] = requests.get(dapr(sc1, "invoke/app1/method/slow"), timeout=10)
        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.2)
        sc1.signal(signal.SIGTERM)
        t.join(10)
        assert out["r"].status_code == 200 and out["r"].content == b"done"
        assert sc1.p.wait(5 * SLOW) == 0  # exits by itself once drained
    finally:
        a1.stop()
        a2.stop()
