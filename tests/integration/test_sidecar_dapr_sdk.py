# SPDX-License-Identifier: Apache-2.0
"""The official Dapr JS SDK (`@dapr/dapr`, pinned in tests/integration/npm/package.json,
HTTP protocol) against `trellis sidecar` + `trellis server`: DaprClient state
save/get/delete with ETags, bulk, transactions, invocation between two apps (the
callee is a DaprServer), secrets — every result asserted in npm/dapr_sdk.js, the
summary asserted again here. Pub/sub parts (DaprServer subscriptions, publish) are
added in the marked places by the pub/sub tests' author."""
import json
import os
import subprocess

from conftest import HERE, SLOW
from sidecar_helpers import (AppServer, free_port, start_server, start_sidecar,
                             write_components)
from test_consul_npm import NPM_DIR, node_modules, tool  # noqa: F401 (fixture)

COMPONENTS = {
    "statestore.yaml": """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.trellis
  version: v1
""",
    "pubsub.yaml": """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.trellis
  version: v1
""",
    "secrets.yaml": """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: secrets.json
""",
}


def test_dapr_js_sdk(node_modules, trellis_proc, tmp_path):  # noqa: F811
    srv = start_server(trellis_proc, tmp_path)
    comps = write_components(tmp_path / "components", COMPONENTS)
    with open(os.path.join(str(comps), "secrets.json"), "w") as f:
        json.dump({"db": {"user": "sdk-user", "password": "pw-sdk"}, "apiKey": "k-sdk"}, f)
    caller_app = AppServer("sdk-caller")
    callee_port = free_port()
    try:
        caller = start_sidecar(trellis_proc, srv, "sdk-caller", caller_app.port,
                               components=comps)
        # The callee app (a DaprServer) starts after its sidecar: no start-order deadlock.
        callee = start_sidecar(trellis_proc, srv, "sdk-callee", callee_port, components=comps)
        env = dict(os.environ,
                   CALLER_DAPR_PORT=str(caller.port),
                   CALLEE_DAPR_PORT=str(callee.port),
                   CALLEE_APP_PORT=str(callee_port),
                   DAPR_HTTP_PORT=str(caller.port))
        r = subprocess.run([tool("node"), "dapr_sdk.js"], cwd=NPM_DIR, env=env,
                           capture_output=True, text=True, timeout=120 * SLOW)
        assert r.returncode == 0, "node failed:\n%s\n%s" % (r.stdout[-4000:], r.stderr[-4000:])
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["metadata_id"] == "sdk-caller"
        assert summary["bulk_keys"] == ["sdk-missing", "sdk-order", "sdk-text"]
        assert summary["stale_etag_status"] == 409
        assert summary["deleted"] is True
        assert summary["transaction"] == "ok"
        assert summary["invoke_post"]["got"] == {"hello": "world", "n": 7}
        assert summary["invoke_post"]["caller"] == "sdk-caller"
        assert summary["invoke_get"] == {"pong": True}
        assert summary["secret_keys"] == ["apiKey", "db:password", "db:user"]
        # ---- pub/sub (helper "pubsub"): assert the delivery summary here ----
        assert summary["pubsub_orders"] == ['"bulk text"', '"plain text"',
                                            '{"id":1,"item":"book"}', '{"id":2}', '{"id":3}']
        assert summary["pubsub_retried"] == [{"n": 1}, {"n": 1}]
        assert summary["pubsub_dead"] == [{"poison": True}]
        assert summary["pubsub_unknown_status"] == 404
        assert summary["pubsub_subscriptions"] == ["sdk-dead", "sdk-drop", "sdk-orders",
                                                   "sdk-retry"]
        # The state really went through the server, namespaced by app id.
        got = subprocess.run(["curl", "-s", "%s/v1/state/statestore/sdk-caller/sdk-tx1" %
                              srv.url], capture_output=True, text=True, timeout=10)
        assert json.loads(got.stdout) == {"tx": 1}
    finally:
        caller_app.stop()
