# SPDX-License-Identifier: Apache-2.0
"""The shop as `make demo` runs it: `trellis up` on examples/shop/trellis.yaml (commands
and ports adjusted to this build), orders through the gateway, events to the
notification service, and `trellis down` with every process exiting cleanly."""
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, SANITIZER_MARKERS, SLOW
from shop_helpers import shop_manifest
from sidecar_helpers import wait_for


class UpRun:
    def __init__(self, directory):
        self.dir = str(directory)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.p = subprocess.Popen([BIN, "up"], cwd=self.dir, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace")
        self.out = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.out.append(line.rstrip("\n"))

    def wait_up(self, timeout=30):
        rx = re.compile(r" is up \((\d+) ms\)")
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            for line in list(self.out):
                m = rx.search(line)
                if m:
                    return int(m.group(1))
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("trellis up did not come up:\n" + "\n".join(self.out[-80:]))

    def ctl(self, *args):
        return subprocess.run([BIN] + list(args), cwd=self.dir, capture_output=True, text=True,
                              timeout=60 * SLOW)


@pytest.fixture
def up(tmp_path):
    shop_manifest(tmp_path)
    run = UpRun(tmp_path)
    yield run
    if run.p.poll() is None:
        run.ctl("down")
        try:
            run.p.wait(60 * SLOW)
        except subprocess.TimeoutExpired:
            run.p.kill()
            run.p.wait()


def test_shop_under_trellis_up(up):
    ms = up.wait_up()
    st = json.loads(up.ctl("ps", "--json").stdout)
    gw = "http://" + st["gateway"]["listen"]
    names = sorted(s["name"] for s in st["services"])
    assert names == ["inventory", "notification", "order", "payment", "product"]

    r = requests.get(gw + "/products", timeout=10 * SLOW)
    assert r.status_code == 200 and len(r.json()["products"]) == 5

    def place(i):
        r = requests.post(gw + "/orders", json={"items": [{"product_id": "p%d" % (1 + i % 5),
                                                           "quantity": 1 + i % 3}]},
                          headers={"Idempotency-Key": "up-%d" % i}, timeout=30 * SLOW)
        return r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(place, range(40)))
    assert [s for s, _ in results] == [201] * 40, [b for s, b in results if s != 201][:3]
    r = requests.get(gw + "/orders/ord-up-7", timeout=10 * SLOW)
    assert r.status_code == 200 and r.json()["status"] == "created"

    def notified():
        r = requests.get(gw + "/notifications", timeout=10 * SLOW)
        return r.status_code == 200 and r.json()["count"] == 40
    wait_for(notified, 15)
    ids = {n["order_id"] for n in requests.get(gw + "/notifications").json()["notifications"]}
    assert ids == {"ord-up-%d" % i for i in range(40)}

    r = up.ctl("down")
    assert r.returncode == 0, r.stderr
    assert up.p.wait(60 * SLOW) == 0
    bad = []
    for path in glob.glob(os.path.join(up.dir, ".trellis", "logs", "*.log")):
        with open(path, errors="replace") as f:
            for line in f:
                if any(m in line for m in SANITIZER_MARKERS) or '"level":"error"' in line:
                    bad.append("%s: %s" % (os.path.basename(path), line.rstrip()))
    assert not bad, "\n".join(bad[:20])
    print("shop cold start to all healthy: %d ms" % ms)
