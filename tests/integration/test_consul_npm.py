# SPDX-License-Identifier: Apache-2.0
"""The npm `consul` client (version pinned in tests/integration/npm/package.json and
package-lock.json) against a real trellis server: agent.service.register with HTTP
checks, health.service with passing, kv.set with cas, kv.get with recurse, kv.keys,
kv.del, deregistration and catalog.service.list.

The packages are installed from the committed lockfile with `npm ci` into
tests/integration/npm/node_modules (git-ignored); a stamp file holding the lockfile's
hash makes later runs skip the install.
"""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import HERE, SLOW
from registry_helpers import Upstream

NPM_DIR = os.path.join(HERE, "npm")
STAMP = os.path.join(NPM_DIR, "node_modules", ".trellis-lock.sha256")


def lock_hash():
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(NPM_DIR, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s not found on PATH: run scripts/install-deps.sh" % name)
    return path


@pytest.fixture(scope="module")
def node_modules():
    """Runs `npm ci` unless node_modules already matches the lockfile."""
    tool("node")
    npm = tool("npm")
    want = lock_hash()
    lock_path = "/tmp/trellis-npm-ci-%s.lock" % hashlib.sha256(NPM_DIR.encode()).hexdigest()[:12]
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time, if tests run in parallel
        try:
            with open(STAMP) as f:
                if f.read().strip() == want:
                    return
        except OSError:
            pass
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=NPM_DIR, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail("npm ci failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
        with open(STAMP, "w") as f:
            f.write(want + "\n")


def test_pinned_exact_version():
    with open(os.path.join(NPM_DIR, "package.json")) as f:
        spec = json.load(f)["dependencies"]["consul"]
    assert spec[0].isdigit(), "pin an exact version, not a range: %r" % spec
    with open(os.path.join(NPM_DIR, "package-lock.json")) as f:
        lock = json.load(f)
    assert lock["packages"]["node_modules/consul"]["version"] == spec


def test_npm_consul_client(node_modules, trellis_proc, tmp_path):
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    good = Upstream("good")
    bad = Upstream("bad", health_status=500)
    try:
        env = dict(os.environ, TRELLIS_PORT=str(srv.port), GOOD_PORT=str(good.port),
                   BAD_PORT=str(bad.port), DEADLINE_MS=str(int(15000 * SLOW)))
        r = subprocess.run([tool("node"), os.path.join(NPM_DIR, "interop.js")], cwd=NPM_DIR,
                           env=env, capture_output=True, text=True, timeout=90 * SLOW)
    finally:
        good.stop()
        bad.stop()
    assert r.returncode == 0, "node interop.js failed:\n%s\n%s" % (r.stdout, r.stderr)
    out = json.loads(r.stdout)

    # agent.service.register / agent.service.list
    assert {"npm-web-good", "npm-web-bad"} <= set(out["agent_services"])

    # health.service with passing: only the instance whose /health answers 200.
    assert [e["id"] for e in out["passing"]] == ["npm-web-good"], out["passing"]
    g = out["passing"][0]
    assert (g["service"], g["address"], g["port"]) == ("npm-web", "127.0.0.1", good.port)
    assert g["tags"] == ["npm", "npm-web-good"]
    assert g["meta"] == {"client": "npm-consul"}
    assert g["checks"] and all(c["status"] == "passing" for c in g["checks"])
    assert "service:npm-web-good" in [c["id"] for c in g["checks"]]
    # Without passing, both, the bad one critical.
    everyone = {e["id"]: e for e in out["all"]}
    assert set(everyone) == {"npm-web-good", "npm-web-bad"}
    assert "critical" in [c["status"] for c in everyone["npm-web-bad"]["checks"]]

    # kv.set with cas, kv.get with recurse.
    kv = out["kv"]
    assert kv["create"] is True
    assert kv["create_again"] is False  # cas=0 only creates
    assert kv["a"]["value"] == "one"
    assert kv["a"]["modify_index"] >= kv["a"]["create_index"] >= 1
    assert kv["cas_ok"] is True
    assert kv["cas_stale"] is False
    assert kv["set_b"] is True and kv["set_nested"] is True and kv["set_outside"] is True
    assert kv["recurse"] == [
        {"key": "npm/config/a", "value": "three", "flags": 0},
        {"key": "npm/config/b", "value": "bee", "flags": 0},
        {"key": "npm/config/c/d", "value": "deep", "flags": 7},
    ]
    assert kv["missing"] is True
    assert kv["keys"] == ["npm/config/", "npm/configuration"]
    assert kv["del"] is True
    assert kv["after_del"] == ["npm/config/a", "npm/config/c/d"]

    # agent.service.deregister, catalog.service.list
    assert out["after_deregister"] == ["npm-web-good"]
    assert "npm-web" in out["catalog"]
    assert "npm-web-good" in out["catalog"]["npm-web"]
    assert "npm-web-bad" not in out["catalog"]["npm-web"]
