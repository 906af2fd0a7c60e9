# SPDX-License-Identifier: Apache-2.0
"""A real service-discovery client: vmagent (Debian's victoria-metrics package) with
Prometheus' consul_sd_configs pointed at trellis server discovers and scrapes the
registered instances, and drops an instance once it is deregistered or its health check
turns critical.

vmagent long-polls /v1/agent/self (no datacenter is configured, as in most setups),
/v1/catalog/services and /v1/health/service/<name> with ?index=&wait=&stale. Like
Prometheus, its consul_sd returns unhealthy instances too, labelled
__meta_consul_health; the scrape config keeps only "passing" ones with a relabel rule.
vmagent 1.79 has no per-config refresh_interval: -promscrape.consulSDCheckInterval
sets how often discovered targets are refreshed.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.request

import pytest

from conftest import SLOW
from registry_helpers import Upstream, api, wait_for

VMAGENT = shutil.which("vmagent") or "/usr/bin/vmagent"


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts Prometheus remote-write requests and throws them away."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.server.writes += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def register(srv, sid, name, up):
    body = {
        "ID": sid,
        "Name": name,
        "Address": "127.0.0.1",
        "Port": up.port,
        "Tags": ["metrics", sid],
        "Meta": {"instance": sid},
        "Check": {"HTTP": up.health_url, "Interval": "300ms", "Timeout": "1s"},
    }
    status, _, raw = api(srv.port, "PUT", "/v1/agent/service/register", body)
    assert status == 200, raw


def targets(vm_port):
    """({service_id: target} for vmagent's active targets, [dropped targets])."""
    url = "http://127.0.0.1:%d/api/v1/targets" % vm_port
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.load(r)["data"]
    except OSError:
        return {}, []
    active = {}
    for t in data.get("activeTargets") or []:
        sid = t["labels"].get("service_id") or t.get("discoveredLabels", {}).get(
            "__meta_consul_service_id")
        active[sid] = t
    return active, data.get("droppedTargets") or []


@pytest.fixture
def vmagent_env(tmp_path):
    """A remote-write sink and the vmagent processes started by the test (cleaned up)."""
    if not os.path.exists(VMAGENT):
        pytest.fail("vmagent not found: run scripts/install-deps.sh (Debian victoria-metrics)")
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    sink.daemon_threads = True
    sink.writes = 0
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    procs = []
    yield sink, procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    sink.shutdown()
    sink.server_close()


def start_vmagent(tmp_path, trellis_port, sink, procs):
    vm_port = free_port()
    cfg = tmp_path / "vmagent.yml"
    cfg.write_text("""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: trellis
    consul_sd_configs:
      - server: "127.0.0.1:%d"
        services: [alpha, beta]
    relabel_configs:
      - source_labels: [__meta_consul_health]
        regex: passing
        action: keep
      - source_labels: [__meta_consul_service]
        target_label: service
      - source_labels: [__meta_consul_service_id]
        target_label: service_id
""" % trellis_port)
    log = open(tmp_path / "vmagent.log", "w")
    p = subprocess.Popen([
        VMAGENT,
        "-promscrape.config=%s" % cfg,
        "-promscrape.consulSDCheckInterval=1s",
        "-promscrape.consul.waitTime=2s",
        "-httpListenAddr=127.0.0.1:%d" % vm_port,
        "-remoteWrite.url=http://127.0.0.1:%d/api/v1/write" % sink.server_address[1],
        "-remoteWrite.tmpDataPath=%s" % (tmp_path / "vmagent-data"),
        "-loggerLevel=INFO",
    ], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p, vm_port, tmp_path / "vmagent.log"


def test_vmagent_discovers_scrapes_and_drops(trellis_proc, tmp_path, vmagent_env):
    sink, procs = vmagent_env
    srv = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    ups = {sid: Upstream(sid) for sid in ("alpha-1", "alpha-2", "beta-1")}
    try:
        register(srv, "alpha-1", "alpha", ups["alpha-1"])
        register(srv, "alpha-2", "alpha", ups["alpha-2"])
        register(srv, "beta-1", "beta", ups["beta-1"])
        vm, vm_port, log = start_vmagent(tmp_path, srv.port, sink, procs)

        def all_up():
            assert vm.poll() is None, "vmagent exited:\n" + log.read_text()
            active, _ = targets(vm_port)
            ok = set(active) == set(ups) and all(t["health"] == "up" for t in active.values())
            return active if ok else None

        try:
            active = wait_for(all_up, 20, "vmagent to discover and scrape all three instances",
                              interval=0.25)
        except AssertionError as e:
            raise AssertionError("%s\ntargets: %r\nvmagent log:\n%s" % (
                e, targets(vm_port), log.read_text()[-4000:]))
        # Discovery worked without vmagent complaining about the Consul API on the way.
        # (Later lines may hold errors of the scrapes and watches the test breaks.)
        errors = [l for l in log.read_text().splitlines()
                  if "\terror\t" in l and "consul" in l.lower()]
        assert not errors, "vmagent logged Consul discovery errors:\n" + "\n".join(errors[:10])
        for sid, t in active.items():
            up = ups[sid]
            assert t["labels"]["service"] == sid.split("-")[0]
            assert t["scrapeUrl"] == "http://127.0.0.1:%d/metrics" % up.port
            assert up.hits.get("/metrics", 0) >= 1, sid
            d = t["discoveredLabels"]
            assert d["__meta_consul_health"] == "passing"
            assert d["__meta_consul_service_metadata_instance"] == sid
            assert d["__meta_consul_tags"] == ",metrics,%s," % sid

        # beta-1 leaves the registry; alpha-1 stays registered but fails its check
        # (its /metrics still answers, so only discovery can drop it).
        status, _, raw = api(srv.port, "PUT", "/v1/agent/service/deregister/beta-1")
        assert status == 200, raw
        ups["alpha-1"].health_status = 500

        def only_alpha_2():
            assert vm.poll() is None, "vmagent exited:\n" + log.read_text()
            active, _ = targets(vm_port)
            return set(active) == {"alpha-2"}

        wait_for(only_alpha_2, 15, "beta-1 and alpha-1 to disappear from vmagent's targets",
                 interval=0.25)
        active, _ = targets(vm_port)
        assert active["alpha-2"]["health"] == "up"

        # The critical instance comes back once its check passes again.
        ups["alpha-1"].health_status = 200
        wait_for(lambda: set(targets(vm_port)[0]) == {"alpha-1", "alpha-2"}, 15,
                 "alpha-1 to return after its check passes", interval=0.25)
    finally:
        for u in ups.values():
            u.stop()
