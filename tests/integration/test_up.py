# SPDX-License-Identifier: Apache-2.0
"""`trellis up` and its companions (ps, scale, rollout, logs, down) with small Python
services: start-up and status, health, crash restarts with backoff and crash loops, live
scaling, rollouts under load through the gateway with zero failed requests, logs, an
orderly stop that leaves no process behind (by pid and by process group) whether it is
asked for with `trellis down`, SIGTERM or SIGINT, malformed manifests, and sidecars.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import textwrap
import threading
import time

import pytest

from conftest import BIN, SANITIZER_MARKERS, SLOW

# A service whose behaviour the manifest picks through MODE (and friends).
SERVICE = r'''
import http.server, json, os, signal, subprocess, sys, time
name = "%s-%s" % (os.environ.get("APP_ID"), os.environ.get("TRELLIS_REPLICA"))
mode = os.environ.get("MODE", "serve")
print("hello from %s pid %d pgid %d" % (name, os.getpid(), os.getpgid(0)), flush=True)
if mode == "crash":
    time.sleep(float(os.environ.get("CRASH_AFTER", "0")))
    print("crashing with 3", flush=True)
    sys.exit(3)
if mode == "grandchild":
    child = subprocess.Popen(["sleep", "300"])
    print("grandchild %d" % child.pid, flush=True)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
log = os.environ.get("LOG_REQUESTS") == "1"

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/env":
            body = json.dumps(dict(os.environ)).encode()
        elif self.path.startswith("/print/"):
            print("printed %s" % self.path[7:], flush=True)
            body = b"ok"
        else:
            body = ("%s %d" % (name, os.getpid())).encode()
        if log and self.path != "/healthz":
            print("GET %s" % self.path, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), H)
srv.daemon_threads = True
srv.serve_forever()
'''


def sidecar_available():
    try:
        r = subprocess.run([BIN, "sidecar", "--help"], capture_output=True, timeout=10)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Up:
    """A `trellis up` in tmp_path, with its output pumped into lists."""

    def __init__(self, tmp_path, manifest, ready=True, args=(), env=None):
        self.dir = str(tmp_path)
        with open(os.path.join(self.dir, "svc.py"), "w") as f:
            f.write(SERVICE)
        with open(os.path.join(self.dir, "trellis.yaml"), "w") as f:
            f.write(textwrap.dedent(manifest))
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            full_env.update(env)
        self.p = subprocess.Popen([BIN, "up"] + list(args), cwd=self.dir, env=full_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  errors="replace")
        self.out = []
        self.err = []
        self.allowed = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err), daemon=True).start()
        if ready:
            self.wait_output(r" is (partly )?up \(\d+ ms\)", 30)

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_output(self, pattern, timeout=10):
        rx = re.compile(pattern)
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            for line in list(self.out):
                m = rx.search(line)
                if m:
                    return m
            if self.p.poll() is not None:
                time.sleep(0.1)
                break
            time.sleep(0.02)
        raise AssertionError("no line matching %r in trellis up output:\n%s\nstderr:\n%s" %
                             (pattern, "\n".join(self.out[-60:]), "\n".join(self.err[-20:])))

    def run(self, *args, timeout=30):
        return subprocess.run([BIN] + list(args), cwd=self.dir, capture_output=True, text=True,
                              timeout=timeout * SLOW)

    def ps(self):
        r = self.run("ps", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def replicas(self, service=None):
        out = []
        for svc in self.ps()["services"]:
            if service is None or svc["name"] == service:
                out += svc["replicas"]
        return out

    def wait_state(self, cond, timeout=10, what="condition"):
        deadline = time.time() + timeout * SLOW
        st = None
        while time.time() < deadline:
            st = self.ps()
            if cond(st):
                return st
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; last status:\n%s" %
                             (what, json.dumps(st, indent=1)[:4000]))

    def gateway_port(self):
        return int(self.ps()["gateway"]["listen"].rsplit(":", 1)[1])

    def server_port(self):
        return int(self.ps()["server"]["listen"].rsplit(":", 1)[1])

    def all_pids(self):
        """Every process trellis up runs: server, gateway, apps, sidecars."""
        st = self.ps()
        pids = [st["server"]["pid"]]
        if st.get("gateway"):
            pids.append(st["gateway"]["pid"])
        for svc in st["services"]:
            for r in svc["replicas"]:
                pids.append(r["pid"])
                if r.get("sidecar"):
                    pids.append(r["sidecar"]["pid"])
        return [p for p in pids if p]

    def stop(self, how="down", timeout=30):
        if self.p.poll() is None:
            if how == "down":
                r = self.run("down")
                assert r.returncode == 0, r.stdout + r.stderr
                assert "stopped" in r.stdout
            else:
                self.p.send_signal(how)
        rc = self.p.wait(timeout * SLOW)
        time.sleep(0.1)
        return rc

    def problems(self):
        bad = []
        for line in self.out + self.err:
            if any(m in line for m in SANITIZER_MARKERS):
                bad.append(line)
            elif '"level":"error"' in line and not any(a in line for a in self.allowed):
                bad.append(line)
        return bad

    def log_file(self, name):
        with open(os.path.join(self.dir, ".trellis", "logs", name + ".log")) as f:
            return f.read()


@pytest.fixture
def up_app(tmp_path):
    ups = []

    def start(manifest, **kw):
        u = Up(tmp_path, manifest, **kw)
        ups.append(u)
        return u

    yield start
    failures = []
    for u in ups:
        if u.p.poll() is None:
            try:
                u.stop("down")
            except Exception as e:  # keep cleaning up
                failures.append("stopping trellis up: %s" % e)
                u.p.kill()
                u.p.wait()
        failures += u.problems()
    if failures:
        pytest.fail("trellis up problems:\n" + "\n".join(failures[:20]))


def http_get(port, path="/", timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def group_members(pgids):
    """Live processes (not zombies) in any of the process groups."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in "ZX" and int(fields[2]) in pgids:
            found.append(int(d))
    return found


def pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


GATEWAY = """
    gateway:
      listen: 127.0.0.1:0
      clusters:
        - {name: web, service: web}
      routes:
        - {match: {prefix: /}, cluster: web}
"""


def manifest(services, gateway=True, top="sidecar: false\n"):
    text = "server: {listen: 127.0.0.1:0}\n" + top
    if gateway:
        text += textwrap.dedent(GATEWAY)
    return text + "services:\n" + textwrap.indent(textwrap.dedent(services), "  ")


# --------------------------------------------------------------------------- start, status


def test_start_status_health_and_env(up_app):
    up = up_app(manifest("""
        web:
          command: python3 svc.py
          replicas: 2
          health: /healthz
          env: {GREETING: "hi there", NUMBER: 42}
        api:
          command: [python3, svc.py]
    """))
    st = up.ps()
    assert st["phase"] == "running"
    assert st["server"]["state"] == "running" and st["server"]["health"] == "passing"
    assert st["gateway"]["state"] == "running" and st["gateway"]["health"] == "passing"
    reps = up.replicas()
    assert sorted((r["service"], r["replica"]) for r in reps) == [("api", 1), ("web", 1),
                                                                 ("web", 2)]
    ports = set()
    for r in reps:
        assert r["state"] == "running", r
        assert r["health"] == "passing" and r["registry"] == "passing" and r["ready"]
        assert alive(r["pid"]) and r["rss_kib"] > 0 and r["restarts"] == 0
        assert r["sidecar"] is None
        ports.add(r["app_port"])
    assert len(ports) == 3
    assert st["totals"]["trellis_processes"] == 2 and st["totals"]["trellis_rss_kib"] > 0
    assert st["totals"]["service_processes"] == 3

    # The foreground printed the table and what to open.
    up.wait_output(r"^TOTAL RSS: .* in 2 Trellis processes")
    gw = up.gateway_port()
    up.wait_output(r"gateway +http://127\.0\.0\.1:%d/" % gw)

    # The table of `trellis ps`.
    r = up.run("ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["SERVICE", "REPLICA", "STATE", "PID"]
    assert any(re.match(r"web +2 +running +\d+ +\d+ ", l) for l in lines), r.stdout
    assert lines[-1].startswith("TOTAL RSS:")

    # The gateway balances over both web replicas, found through the registry.
    seen = set()
    for _ in range(10):
        status, body = http_get(gw, "/")
        assert status == 200
        seen.add(body.split()[0])
    assert seen == {b"web-1", b"web-2"}

    # Each replica got its environment.
    web1 = [r for r in reps if r["name"] == "web-1"][0]
    status, body = http_get(web1["app_port"], "/env")
    env = json.loads(body)
    assert env["APP_PORT"] == str(web1["app_port"])
    assert env["APP_ID"] == "web" and env["TRELLIS_REPLICA"] == "1"
    assert env["GREETING"] == "hi there" and env["NUMBER"] == "42"
    assert env["TRELLIS_ADDR"] == st["server"]["listen"]
    assert "DAPR_HTTP_PORT" not in env

    # The registry has them, with their checks passing.
    status, body = http_get(up.server_port(), "/v1/health/service/web?passing")
    assert status == 200
    assert sorted(e["Service"]["Port"] for e in json.loads(body)) == sorted(
        r["app_port"] for r in reps if r["service"] == "web")

    # A second trellis up in the same directory refuses to start.
    second = up.run("up", timeout=10)
    assert second.returncode == 1
    assert "already running" in second.stderr


@pytest.mark.parametrize("sidecars", [False, True])
def test_cold_start_is_fast(up_app, sidecars):
    if sidecars and not sidecar_available():
        pytest.skip("this trellis has no sidecar command")
    echo = "%s echo --listen 127.0.0.1:${APP_PORT} --workers 1" % BIN
    up = up_app(manifest("""
        a: {command: "%s", replicas: 2, health: /}
        b: {command: "%s", replicas: 2}
        c: {command: "%s"}
    """ % (echo, echo, echo), top="sidecar: %s\n" % ("true" if sidecars else "false")))
    m = up.wait_output(r"all 5 replicas of 3 services healthy in (\d+) ms")
    assert int(m.group(1)) < 2000 * SLOW, m.group(0)
    assert up.ps()["totals"]["sidecars"] == (5 if sidecars else 0)


# --------------------------------------------------------------------------- restarts


def test_killed_replica_restarts_and_crash_loop_is_visible(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, health: /healthz}
        flaky:
          command: python3 svc.py
          env: {MODE: crash}
    """, top="sidecar: false\nstartup_timeout: 1s\n"), ready=False)
    up.wait_output(r"web-1 ready")
    old = up.replicas("web")[0]
    os.kill(old["pid"], signal.SIGKILL)
    st = up.wait_state(
        lambda st: [r for s in st["services"] if s["name"] == "web" for r in s["replicas"]
                    if r["restarts"] == 1 and r["state"] == "running"],
        what="web-1 restarted")
    web = [r for s in st["services"] if s["name"] == "web" for r in s["replicas"]][0]
    assert web["pid"] != old["pid"] and alive(web["pid"])
    assert web["app_port"] == old["app_port"]  # same port, so its registration stays valid
    assert web["last_exit"] == "signal 9 (Killed)"
    up.wait_output(r"web-1 exited \(signal 9 \(Killed\)\) after \d+ ms; restarting in 100 ms")

    # The crashing service: backoff doubles, and the state says crash loop.
    st = up.wait_state(lambda st: up.replicas("flaky")[0]["restarts"] >= 4, timeout=15,
                       what="4 restarts of flaky")
    flaky = up.replicas("flaky")[0]
    assert flaky["crashloop"] is True
    assert flaky["state"] == "crashloop"
    assert flaky["last_exit"] == "exit 3"
    assert flaky["health"] != "passing" and not flaky["ready"]
    delays = [int(m) for m in re.findall(r"flaky-1 exited \(exit 3\) after \d+ ms; restarting in "
                                         r"(\d+) ms", "\n".join(up.out))]
    assert delays[:4] == [100, 200, 400, 800], delays
    assert "(crash loop)" in "\n".join(up.out)
    r = up.run("ps")
    assert re.search(r"flaky +1 +crashloop .* exit 3", r.stdout), r.stdout


# --------------------------------------------------------------------------- scale


def test_scale_up_and_down_live(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, replicas: 2, health: /healthz}
    """))
    gw = up.gateway_port()
    before = {r["replica"]: r for r in up.replicas("web")}
    r = up.run("scale", "web=4")
    assert r.returncode == 0, r.stderr
    assert re.match(r"web: 2 -> 4 replicas, 4 ready \(\d+\.\d s\)", r.stdout), r.stdout
    reps = up.replicas("web")
    assert sorted(x["replica"] for x in reps) == [1, 2, 3, 4]
    assert all(x["state"] == "running" and x["ready"] for x in reps)
    assert len({x["app_port"] for x in reps}) == 4
    # The old replicas were not touched.
    for x in reps:
        if x["replica"] in before:
            assert x["pid"] == before[x["replica"]]["pid"]
    # Scaling waited for registration: the gateway reaches all four (or soon will).
    seen = set()
    deadline = time.time() + 5 * SLOW
    while len(seen) < 4 and time.time() < deadline:
        status, body = http_get(gw, "/")
        assert status == 200
        seen.add(body.split()[0])
    assert seen == {b"web-1", b"web-2", b"web-3", b"web-4"}

    gone = [x for x in reps if x["replica"] > 1]
    r = up.run("scale", "web=1")
    assert r.returncode == 0, r.stderr
    assert "web: 4 -> 1 replicas, 1 ready" in r.stdout
    reps = up.replicas("web")
    assert [x["replica"] for x in reps] == [1]
    for x in gone:
        assert not alive(x["pid"]), x
    status, body = http_get(up.server_port(), "/v1/health/service/web")
    assert [e["Service"]["Port"] for e in json.loads(body)] == [reps[0]["app_port"]]
    for _ in range(5):
        assert http_get(gw, "/")[0] == 200

    # The control API names what is wrong with a request.
    with open(os.path.join(up.dir, ".trellis", "control")) as f:
        control = json.load(f)
    assert control["pid"] == up.p.pid
    cport = int(control["addr"].rsplit(":", 1)[1])
    for method, path, body, status, code, needle in [
        ("POST", "/v1/services/web/scale", "{", 400, "bad_json", "not valid JSON"),
        ("POST", "/v1/services/web/scale", '{"replicas": "2"}', 400, "bad_param", "replicas"),
        ("POST", "/v1/services/web/scale", '{"replicas": 99}', 400, "bad_param", "64"),
        ("POST", "/v1/services/nope/rollout", "", 404, "not_found", 'no service "nope"'),
        ("GET", "/v1/services/web/scale", None, 405, "method_not_allowed", ""),
        ("GET", "/v1/nothing", None, 404, "not_found", ""),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", cport, timeout=10 * SLOW)
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        conn.close()
        assert resp.status == status, (path, body, resp.status, doc)
        assert doc["error"]["code"] == code and needle in doc["error"]["message"], doc

    # Mistakes.
    r = up.run("scale", "nope=2")
    assert r.returncode == 1 and 'no service "nope"' in r.stderr
    r = up.run("scale", "web=lots")
    assert r.returncode == 2 and "expected SERVICE=N" in r.stderr
    r = up.run("scale", "web=65")
    assert r.returncode == 2


# --------------------------------------------------------------------------- rollout


class Load:
    """Threads sending GETs through the gateway until stopped; counts every outcome."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.servers = set()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
                conn.request("GET", "/load")
                r = conn.getresponse()
                body = r.read()
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                        self.servers.add(body.split()[1])
                    else:
                        self.failures.append((r.status, body[:200]))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a failed request is what the test looks for
                with self.lock:
                    self.failures.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30 * SLOW)


def test_rollout_under_load_has_no_failed_request(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, replicas: 2, health: /healthz}
    """))
    old = up.replicas("web")
    load = Load(up.gateway_port())
    try:
        time.sleep(0.5)
        rollout = subprocess.Popen([BIN, "rollout", "web"], cwd=up.dir, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # One operation at a time per service.
        up.wait_state(lambda st: st["services"][0]["operation"] == "rollout",
                      what="the rollout to start")
        r = up.run("scale", "web=3")
        assert r.returncode == 1 and "a rollout of web is in progress" in r.stderr, r.stderr
        out, err = rollout.communicate(timeout=120 * SLOW)
        assert rollout.returncode == 0, err
        assert re.match(r"web: 2 replicas replaced \(\d+\.\d s\)", out), out
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:10]
    assert load.ok > 50, load.ok
    new = up.replicas("web")
    assert sorted(x["replica"] for x in new) == [1, 2]
    assert all(x["state"] == "running" and x["generation"] >= 1 for x in new)
    assert not {x["pid"] for x in new} & {x["pid"] for x in old}
    for x in old:
        assert not alive(x["pid"])
    # Requests reached old and new processes.
    pids = {str(x["pid"]).encode() for x in old + new}
    assert load.servers <= pids and len(load.servers & pids) >= 3, (load.servers, pids)
    r = up.run("rollout", "nope")
    assert r.returncode == 1 and 'no service "nope"' in r.stderr


def test_rollout_of_a_broken_build_keeps_the_old_replicas(up_app, tmp_path):
    up = up_app(manifest("""
        web: {command: python3 svc.py, health: /healthz}
    """, top="sidecar: false\nstartup_timeout: 1500ms\n"))
    up.wait_state(lambda st: up.replicas("web")[0]["ready"], what="web-1 ready")
    old = up.replicas("web")[0]
    with open(os.path.join(str(tmp_path), "svc.py"), "w") as f:
        f.write("import sys\nprint('broken build', flush=True)\nsys.exit(1)\n")
    r = up.run("rollout", "web", timeout=60)
    assert r.returncode == 1
    assert "the new web-1 was not ready" in r.stderr and "old replicas keep running" in r.stderr
    st = up.wait_state(lambda st: len(up.replicas("web")) == 1, what="the new replica gone")
    cur = up.replicas("web")[0]
    assert cur["pid"] == old["pid"] and cur["state"] == "running" and alive(cur["pid"])
    assert http_get(up.gateway_port(), "/")[0] == 200
    del st


# --------------------------------------------------------------------------- logs


def test_logs_are_prefixed_kept_in_files_and_followed(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, replicas: 2, health: /healthz}
        api: {command: python3 svc.py}
    """, gateway=False))
    up.wait_output(r"^web-1 +\| hello from web-1 pid \d+")
    up.wait_output(r"^api-1 +\| hello from api-1 pid \d+")
    up.wait_output(r"^server +\| \{.*listening on")
    up.wait_output(r"^up +\| all 3 replicas of 2 services healthy")
    # Each process's own file has its lines without the prefix.
    assert re.match(r"hello from web-2 pid \d+", up.log_file("web-2"))
    assert "listening on" in up.log_file("server")

    r = up.run("logs", "web")
    assert r.returncode == 0, r.stderr
    names = {l.split("|")[0].strip() for l in r.stdout.splitlines()}
    assert names == {"web-1", "web-2"}, names
    r = up.run("logs", "web-2")
    assert {l.split("|")[0].strip() for l in r.stdout.splitlines()} == {"web-2"}
    r = up.run("logs")
    names = {l.split("|")[0].strip() for l in r.stdout.splitlines()}
    assert {"up", "server", "web-1", "web-2", "api-1"} <= names
    r = up.run("logs", "-n", "1", "api")
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("api-1")

    # Follow: a line printed later shows up.
    follower = subprocess.Popen([BIN, "logs", "-f", "web"], cwd=up.dir, stdout=subprocess.PIPE,
                                text=True)
    got = []
    threading.Thread(target=Up._pump, args=(follower.stdout, got), daemon=True).start()
    try:
        time.sleep(0.3)
        web2 = [x for x in up.replicas("web") if x["replica"] == 2][0]
        assert http_get(web2["app_port"], "/print/marker-7")[0] == 200
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and not [l for l in got if "printed marker-7" in l]:
            time.sleep(0.05)
        marked = [l for l in got if "printed marker-7" in l]
        assert marked and re.match(r"web-2 +\| printed marker-7", marked[0]), got[-20:]
        assert all(re.match(r"web-[12] +\| ", l) for l in got), got[-20:]
    finally:
        follower.kill()
        follower.wait()
    assert "printed marker-7" in up.log_file("web-2")


# --------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("how", ["down", signal.SIGTERM, signal.SIGINT])
def test_stop_leaves_no_process_behind(up_app, how):
    up = up_app(manifest("""
        web: {command: python3 svc.py, replicas: 2, health: /healthz, env: {MODE: grandchild}}
        stubborn:
          command: python3 svc.py
          env: {MODE: stubborn}
          stop_timeout: 500ms
    """))
    pids = up.all_pids()
    assert len(pids) == 5
    grandchildren = [int(m) for m in re.findall(r"grandchild (\d+)", "\n".join(up.out))]
    assert len(grandchildren) == 2
    assert all(alive(p) for p in pids + grandchildren)
    groups = {pgid(p) for p in pids}
    assert None not in groups and os.getpgid(up.p.pid) not in groups
    assert {pgid(g) for g in grandchildren} <= groups

    rc = up.stop(how)
    assert rc == 0, "\n".join(up.out[-30:] + up.err)
    assert not [p for p in pids + grandchildren if alive(p)]
    assert group_members(groups) == []
    assert "stubborn-1 did not stop in time after SIGTERM: sending SIGKILL" in "\n".join(up.out)
    # In order: the gateway first, the server last.
    order = [l.split("|")[0].strip() for l in up.out if '"msg":"stopped"' in l]
    assert order[0] == "gateway" and order[-1] == "server", order
    assert not os.path.exists(os.path.join(up.dir, ".trellis", "control"))
    r = up.run("ps")
    assert r.returncode == 1 and "not running" in r.stderr
    r = up.run("down")
    assert r.returncode == 0 and "nothing to stop" in r.stdout


def test_children_die_when_up_is_killed(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, health: /healthz}
    """))
    pids = up.all_pids()
    up.p.kill()
    up.p.wait()
    deadline = time.time() + 5 * SLOW
    while time.time() < deadline and [p for p in pids if alive(p)]:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]


# --------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("text, message", [
    ("services:\n  order:\n    command: ./order\n    replicas: two\n",
     'trellis.yaml:4:15: services.order.replicas: expected an integer between 0 and 64, '
     'got "two"'),
    ("services:\n  order:\n    command: python3 svc.py\n    replics: 2\n",
     'trellis.yaml:4:5: services.order: unknown key "replics"; did you mean "replicas"?'),
    ("sevices: {}\n", 'trellis.yaml:1:1: unknown key "sevices"; did you mean "services"?'),
    ("services:\n  web: {command: ./missing-binary}\n",
     "trellis.yaml:2:18: services.web.command: %s/missing-binary: No such file or directory"),
    ("services: {web: {command: x}}\ngateway:\n  clusters: [{name: a, service: web}]\n"
     "  routes: [{cluster: b}]\n",
     'trellis.yaml:4:22: gateway: route refers to unknown cluster "b"'),
    ("services: {web: {command: 'a \"b'}}\n",
     "trellis.yaml:1:27: services.web.command: unterminated double quote"),
    ("services: [\n", "trellis.yaml:2:1: did not find expected node content"),
])
def test_malformed_manifest_names_file_line_and_key(tmp_path, text, message):
    with open(os.path.join(str(tmp_path), "trellis.yaml"), "w") as f:
        f.write(text)
    r = subprocess.run([BIN, "up"], cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=10 * SLOW)
    assert r.returncode == 2, r.stdout + r.stderr
    want = message.replace("%s", os.path.realpath(str(tmp_path)))
    assert r.stderr.startswith("trellis up: " + want), r.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), ".trellis", "control"))


def test_missing_manifest_and_busy_port(tmp_path):
    r = subprocess.run([BIN, "up"], cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=10 * SLOW)
    assert r.returncode == 2
    assert "trellis.yaml: No such file or directory" in r.stderr
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    with open(os.path.join(str(tmp_path), "app.yaml"), "w") as f:
        f.write("server: {listen: 127.0.0.1:%d}\nservices: {}\n" % port)
    r = subprocess.run([BIN, "up", "-f", "app.yaml"], cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=10 * SLOW)
    s.close()
    assert r.returncode == 1
    assert "server.listen 127.0.0.1:%d is in use" % port in r.stderr


# --------------------------------------------------------------------------- sidecars


@pytest.mark.skipif(not sidecar_available(), reason="this trellis has no sidecar command")
def test_with_sidecars(up_app):
    up = up_app(manifest("""
        web: {command: python3 svc.py, replicas: 2, health: /healthz}
        api: {command: python3 svc.py, health: /healthz}
    """, top=""))
    reps = up.replicas()
    assert len(reps) == 3
    for r in reps:
        sc = r["sidecar"]
        assert sc is not None and sc["state"] == "running" and alive(sc["pid"])
        assert sc["port"] and sc["port"] != r["app_port"]
        assert r["registry_id"] == "%s-%d" % (r["service"], sc["port"])
        assert r["ready"]
    st = up.ps()
    assert st["totals"]["sidecars"] == 3 and st["totals"]["trellis_processes"] == 5
    web1 = [r for r in reps if r["name"] == "web-1"][0]
    env = json.loads(http_get(web1["app_port"], "/env")[1])
    assert env["DAPR_HTTP_PORT"] == str(web1["sidecar"]["port"])
    # Service invocation through web-1's sidecar reaches api.
    status, body = http_get(web1["sidecar"]["port"], "/v1.0/invoke/api/method/hello")
    assert status == 200 and body.startswith(b"api-1 "), body
    # Rolling out with sidecars loses no request either.
    old = {r["pid"] for r in up.replicas("web")} | {r["sidecar"]["pid"] for r in
                                                    up.replicas("web")}
    load = Load(up.gateway_port(), threads=2)
    try:
        r = up.run("rollout", "web", timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        load.stop()
    assert load.failures == [], load.failures[:10]
    assert not [p for p in old if alive(p)]
    pids = up.all_pids()
    assert up.stop("down") == 0
    assert not [p for p in pids if alive(p)]
