# SPDX-License-Identifier: Apache-2.0
"""libtrellis through a real `trellis sidecar` and `trellis server`, with the example
service of docs/sdk.md (examples/hello): state read-modify-write, publish and the
subscription's deliveries, service invocation through two sidecar hops, trace context
carried from an incoming request through publish to the subscriber, and the built-in
/healthz and /dapr/subscribe answers."""
import os
import re
import time

import pytest
import requests

from conftest import BIN
from shop_helpers import Shop, call
from sidecar_helpers import wait_for

HELLO = os.path.join(os.path.dirname(BIN), "examples", "hello", "hello")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    s = Shop(tmp_path_factory.mktemp("sdk"))
    try:
        s.add("hello", binary=HELLO)
        s.wait_ready()
    except Exception:
        s.close()
        raise
    yield s
    problems = s.close()
    if problems:
        pytest.fail("process problems:\n" + "\n".join(problems[:20]))


def test_builtin_endpoints(hello):
    status, _, body = call("GET", hello.url("hello") + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, _, body = call("GET", hello.url("hello") + "/dapr/subscribe")
    assert status == 200 and len(body) == 1
    assert body[0]["pubsubname"] == "pubsub" and body[0]["topic"] == "greeted"
    assert body[0]["route"].startswith("/")
    status, _, body = call("GET", hello.url("hello") + "/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_state_publish_and_trace(hello):
    tp = "00-%s-00f067aa0ba902b7-01" % TRACE
    for n in (1, 2):
        status, _, body = call("GET", hello.url("hello") + "/hello/ada",
                               headers={"traceparent": tp})
        assert status == 200, body
        assert body == {"greeting": "Hello, ada!", "visits": n}
    app = hello.instances["hello"][0].app

    def delivered():
        for line in app.lines:
            if "ada has visited 2 time(s)" in line:
                return line
        return None
    line = wait_for(delivered, 10)
    # The subscriber ran under the trace of the request that published the event.
    assert '"trace_id":"%s"' % TRACE in line, line
    # The counter lives in the state store, visible through the sidecar.
    sc = hello.instances["hello"][0].sidecar
    r = requests.get(sc.url + "/v1.0/state/statestore/visits-ada")
    assert r.status_code == 200 and r.json() == {"visits": 2} and r.headers.get("ETag")


def test_invoke_through_sidecars(hello):
    status, _, body = call("POST", hello.url("hello") + "/echo?app=hello", {"x": [1, "two"]})
    assert (status, body) == (200, {"x": [1, "two"]})
    status, _, body = call("POST", hello.url("hello") + "/echo?app=hello", b"{nope")
    assert status == 400 and body["error"]["code"] == "bad_json"
    status, _, body = call("POST", hello.url("hello") + "/echo?app=nobody-here", {"x": 1},
                           timeout=60)
    assert status >= 500, body
