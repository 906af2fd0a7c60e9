# SPDX-License-Identifier: Apache-2.0
"""Running the shop example (examples/shop) without `trellis up`: a `trellis server`,
then for every service instance a `trellis sidecar` and the service binary, wired the
way `trellis up` wires them (APP_ID, APP_PORT, DAPR_HTTP_PORT).

- `ShopApp`: one service binary (built to <build>/examples/shop/<name>), started with
  its environment, ready once it logs "listening on"; `stop()` sends SIGTERM and
  returns the exit code; `problems()` lists sanitizer reports and error lines.
- `Shop`: the server plus instances; `add(svc, env)` starts a sidecar + app pair,
  `wait_ready()` waits until every instance is registered and passing, `url(svc)` is an
  instance's app URL, `close()` stops everything and returns the problems seen.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time

import requests

from conftest import BIN, ROOT, SANITIZED, SLOW, Proc
from sidecar_helpers import free_port, wait_for

SHOP_BIN = os.path.join(os.path.dirname(BIN), "examples", "shop")
COMPONENTS = os.path.join(ROOT, "examples", "shop", "components")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class ShopApp:
    def __init__(self, name, port, dapr_port, env=None, binary=None):
        self.name = name
        self.port = port
        self.dapr_port = dapr_port
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.update({"APP_ID": name, "APP_PORT": str(port), "DAPR_HTTP_PORT": str(dapr_port),
                         "TRELLIS_THREADS": "8"})
        self.env.update(env or {})
        self.lines = []
        self.allowed_errors = []
        self.killed = False
        self._ready = threading.Event()
        self.binary = binary or os.path.join(SHOP_BIN, name)
        self.p = subprocess.Popen([self.binary], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=self.env, text=True,
                                  errors="replace")
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(10 * SLOW):
            self.p.kill()
            raise RuntimeError("%s did not start:\n%s" % (name, "\n".join(self.lines)))

    def _pump(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self._ready.set()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def kill(self):
        self.killed = True
        self.p.kill()
        self.p.wait()

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("%s did not exit within %ss of SIGTERM" % (self.name, timeout))
        time.sleep(0.05)
        return self.p.returncode

    def problems(self):
        bad = []
        for line in self.lines:
            if any(m in line for m in SANITIZER_MARKERS):
                bad.append("%s: %s" % (self.name, line))
            elif '"level":"error"' in line and not any(a in line for a in self.allowed_errors):
                bad.append("%s: %s" % (self.name, line))
        return bad


class Instance:
    def __init__(self, svc, sidecar, app):
        self.svc = svc
        self.sidecar = sidecar
        self.app = app

    @property
    def url(self):
        return self.app.url


class Shop:
    def __init__(self, tmp_path, env=None):
        self.env = env or {}
        self.procs = []
        self.instances = {}
        self.server = self._proc(["server", "--data-dir", str(tmp_path / "data"),
                                  "--workers", "2"])

    def _proc(self, args, **kw):
        p = Proc(args, **kw)
        self.procs.append(p)
        return p

    def add(self, svc, env=None, binary=None):
        app_port = free_port()
        sc = self._proc(["sidecar", "--app-id", svc, "--app-port", str(app_port),
                         "--http-port", "0", "--server", self.server.url,
                         "--components", COMPONENTS, "--app-health-path", "/healthz"],
                        listen_flag=False)
        full_env = dict(self.env.get(svc, {}))
        full_env.update(env or {})
        app = ShopApp(svc, app_port, sc.port, full_env, binary)
        inst = Instance(svc, sc, app)
        self.instances.setdefault(svc, []).append(inst)
        return inst

    def restart_app(self, inst, env=None, kill=False):
        """Replaces an instance's app process (same ports, same sidecar)."""
        old = inst.app
        if kill:
            old.kill()
        else:
            assert old.stop() == 0
        self._retired = getattr(self, "_retired", []) + [old]
        full_env = dict(self.env.get(inst.svc, {}))
        full_env.update(env or {})
        inst.app = ShopApp(inst.svc, old.port, old.dapr_port, full_env, old.binary)
        return inst.app

    def passing(self, svc):
        r = requests.get("%s/v1/health/service/%s?passing" % (self.server.url, svc), timeout=5)
        return len(r.json()) if r.status_code == 200 else 0

    def wait_ready(self, timeout=15):
        for svc, insts in self.instances.items():
            wait_for(lambda: self.passing(svc) >= len(insts), timeout)
            for inst in insts:
                wait_for(lambda: requests.get(inst.url + "/healthz", timeout=5).status_code == 200,
                         timeout)

    def url(self, svc, i=0):
        return self.instances[svc][i].url

    def close(self):
        problems = []
        for insts in self.instances.values():
            for inst in insts:
                if not inst.app.killed:
                    rc = inst.app.stop()
                    if rc != 0:
                        problems.append("%s exited with %s" % (inst.svc, rc))
                problems += inst.app.problems()
        for old in getattr(self, "_retired", []):
            problems += old.problems()
        for p in reversed(self.procs):
            rc = p.stop()
            if rc not in (0, -signal.SIGKILL):
                problems.append("%s exited with %s" % (" ".join(p.cmd), rc))
            problems += p.problems()
        return problems


def shop_manifest(directory, edits=None):
    """Writes examples/shop/trellis.yaml into `directory` for this build: commands point at
    <build>/examples/shop, components at the source tree, and every listen address uses
    port 0. `edits` maps manifest text to replacement text (e.g. different env values).
    Returns the file's path."""
    with open(os.path.join(ROOT, "examples", "shop", "trellis.yaml")) as f:
        text = f.read()
    text = text.replace("../../build/examples/shop/", SHOP_BIN + "/")
    text = text.replace("components: ./components", "components: " + COMPONENTS)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:0", text)
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = os.path.join(str(directory), "trellis.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def call(method, url, body=None, headers=None, timeout=30):
    """One JSON request: returns (status, headers, parsed JSON or text)."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    r = requests.request(method, url, data=data, headers=h, timeout=timeout * SLOW)
    try:
        payload = r.json()
    except ValueError:
        payload = r.text
    return r.status_code, r.headers, payload
