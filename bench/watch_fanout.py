#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Watch fan-out: 10,000 blocking health queries over 1,000 services; one service changes.

Usage: bench/watch_fanout.py [BUILD_DIR] [--services 1000] [--watchers-per-service 10]
                             [--changes 20] [--change tag|ttl] [--workers 1] [--no-pin]

  BUILD_DIR   directory holding the trellis binary (default: build); TRELLIS_BIN wins.

1. Starts `trellis server` on a fresh data dir (RLIMIT_NOFILE 65536; pinned to CPU 0 and
   this client to CPU 1 unless --no-pin) and registers S services, one instance each
   (PUT /v1/agent/service/register with a TTL check that starts passing).
2. Reads every service's X-Consul-Index (GET /v1/health/service/<name>) and opens
   S x W connections, each parked on
   GET /v1/health/service/<name>?index=<that index>&wait=5m (W per service). They count
   as parked once the server has read every request (server-side receive queues empty, from
   /proc/net/tcp) and no answer came for --quiet seconds. The server's VmRSS is read then.
3. Changes one service at a time, --changes times on different services:
   `--change tag` re-registers it with a new tag, `--change ttl` sends
   PUT /v1/agent/check/fail/service:<id>. Latency runs from just before the change request
   is written to the moment each watcher has read its whole answer. Exactly that service's
   W watchers must answer, with a higher X-Consul-Index and a body that shows the change;
   any other answer within --settle seconds counts as a spurious wake-up. Woken watchers
   re-arm with the new index, as real clients do, before the next change.

Targets (issue 3): only the changed service's watchers wake; p99 notification latency
< 10 ms; server VmRSS < 100 MiB while holding the watchers.
Exit status: 0 when every check passes, 1 when one fails (a wrong or missing wake-up, an
error answer, a missed target), 2 when the benchmark cannot run.
Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

NOFILE = 65536
P99_TARGET_MS = 10.0
RSS_TARGET = 100 * 1024 * 1024


class CannotRun(Exception):
    pass


def find_trellis(build_dir):
    path = os.environ.get("TRELLIS_BIN") or os.path.join(build_dir, "trellis")
    if not os.access(path, os.X_OK):
        raise CannotRun(f"trellis binary not found at {path} (pass the build dir or set TRELLIS_BIN)")
    return path


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def mib(n):
    return n / (1024 * 1024)


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, -(-len(sorted_vals) * p // 100) - 1))
    return sorted_vals[int(k)]


class Server:
    def __init__(self, binary, workers, cpu):
        self.dir = tempfile.mkdtemp(prefix="trellis-fanout-")
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "w+b")
        argv = [binary, "server", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data")]
        if workers:
            argv += ["--workers", str(workers)]
        self.argv = argv

        def setup():  # in the child before exec: `prlimit --nofile=65536:65536 taskset -c CPU`
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
            except (ValueError, OSError):
                pass
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, preexec_fn=setup)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", self.read_log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise CannotRun(f"trellis exited during startup:\n{self.read_log().decode(errors='replace')}")
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise CannotRun("trellis did not log its listening address")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def status(self, field):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
        raise CannotRun(f"{field} not in /proc/{self.pid}/status")

    def nofile(self):
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def nthreads(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def alive(self):
        return self.proc.poll() is None

    def unread_sockets(self):
        """(established server-side sockets, how many of them hold unread bytes)."""
        n = unread = 0
        want = f":{self.port:04X}"
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if parts[1].endswith(want) and parts[3] == "01":
                            n += 1
                            if int(parts[4].split(":")[1], 16) != 0:
                                unread += 1
            except FileNotFoundError:
                pass
        return n, unread

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Response:
    __slots__ = ("status", "headers", "body", "t_ns")

    def __init__(self, status, headers, body, t_ns):
        self.status, self.headers, self.body, self.t_ns = status, headers, body, t_ns

    def index(self):
        try:
            return int(self.headers.get("x-consul-index", "0"))
        except ValueError:
            return 0


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += chunk[:-2]
            if size == 0:
                break
    else:
        body = b""
    return Response(status, headers, body, time.perf_counter_ns())


def request(method, target, body=b""):
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: watch_fanout.py\r\n"
    if body or method in ("PUT", "POST"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class Conn:
    """A keep-alive connection for sequential requests."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(r, w)

    async def call(self, method, target, body=b""):
        self.writer.write(request(method, target, body))
        return await asyncio.wait_for(read_response(self.reader), 30)

    def close(self):
        self.writer.close()


def service_name(i):
    return f"svc-{i:04d}"


def register_body(i, tag):
    name = service_name(i)
    return json.dumps({
        "ID": name, "Name": name, "Tags": [tag], "Address": "127.0.0.1", "Port": 20000 + i,
        "Meta": {"bench": "watch_fanout"},
        "Check": {"CheckID": f"service:{name}", "Name": f"{name} ttl", "TTL": "30m", "Status": "passing"},
    }).encode()


class Watcher:
    __slots__ = ("wid", "svc", "conn", "index", "task")

    def __init__(self, wid, svc, conn):
        self.wid, self.svc, self.conn, self.index, self.task = wid, svc, conn, 0, None


class Bench:
    def __init__(self, srv, args):
        self.srv, self.a = srv, args
        self.port = srv.port
        self.watchers = []
        self.by_svc = {}
        self.events = []  # (watcher, Response or Exception)
        self.last_event_ns = 0
        self.errors = []

    # -- watchers --------------------------------------------------------------------------
    def arm(self, w):
        name = service_name(w.svc)
        w.conn.writer.write(request("GET", f"/v1/health/service/{name}?index={w.index}&wait={self.a.wait}"))
        w.task = asyncio.ensure_future(self._watch(w))

    async def _watch(self, w):
        try:
            resp = await read_response(w.conn.reader)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
            resp = e
        except asyncio.CancelledError:
            return
        self.events.append((w, resp))
        self.last_event_ns = time.perf_counter_ns()

    async def wait_parked(self, what):
        """Waits until the server has read every request and nothing answered for --quiet s."""
        quiet_ns = int(self.a.quiet * 1e9)
        deadline = time.monotonic() + 120
        while True:
            await asyncio.sleep(0.1)
            n, unread = self.srv.unread_sockets()
            now = time.perf_counter_ns()
            if unread == 0 and now - max(self.last_event_ns, self.armed_ns) >= quiet_ns:
                return n
            if time.monotonic() > deadline:
                raise CannotRun(f"{what}: not parked after 120 s ({unread} sockets with unread requests)")
            if not self.srv.alive():
                raise CannotRun(f"trellis died while {what}")

    # -- phases ----------------------------------------------------------------------------
    async def register_all(self):
        pool = [await Conn.open(self.port) for _ in range(16)]
        t0 = time.monotonic()
        bad = []

        async def worker(k, conn):
            for i in range(k, self.a.services, len(pool)):
                r = await conn.call("PUT", "/v1/agent/service/register", register_body(i, "v0"))
                if r.status != 200:
                    bad.append((i, r.status, r.body[:200]))

        await asyncio.gather(*(worker(k, c) for k, c in enumerate(pool)))
        t_reg = time.monotonic() - t0
        if bad:
            i, st, body = bad[0]
            raise CannotRun(f"register {service_name(i)} answered {st}: {body.decode(errors='replace')}"
                            f" ({len(bad)} failed)")
        # Current index of every service's health result.
        self.index = {}

        async def reader(k, conn):
            for i in range(k, self.a.services, len(pool)):
                r = await conn.call("GET", f"/v1/health/service/{service_name(i)}")
                if r.status != 200:
                    raise CannotRun(f"GET /v1/health/service/{service_name(i)} answered {r.status}")
                entries = json.loads(r.body)
                if len(entries) != 1 or entries[0]["Service"]["ID"] != service_name(i):
                    raise CannotRun(f"health of {service_name(i)}: expected its one instance, got {r.body[:200]!r}")
                if r.index() < 1:
                    raise CannotRun(f"health of {service_name(i)}: X-Consul-Index {r.headers.get('x-consul-index')!r}")
                self.index[i] = r.index()

        await asyncio.gather(*(reader(k, c) for k, c in enumerate(pool)))
        self.pool = pool
        distinct = len(set(self.index.values()))
        return t_reg, distinct

    async def open_watchers(self):
        per = self.a.watchers_per_service
        total = self.a.services * per
        t0 = time.monotonic()
        wid = 0
        for start in range(0, total, self.a.batch):
            n = min(self.a.batch, total - start)
            conns = await asyncio.gather(*(Conn.open(self.port) for _ in range(n)))
            for conn in conns:
                svc = wid % self.a.services  # spread evenly: W per service
                w = Watcher(wid, svc, conn)
                w.index = self.index[svc]
                self.watchers.append(w)
                self.by_svc.setdefault(svc, []).append(w)
                self.arm(w)
                wid += 1
            self.armed_ns = time.perf_counter_ns()
            await asyncio.sleep(0)
        t_open = time.monotonic() - t0
        return t_open

    async def settle_initial(self):
        """Parks all watchers; an early answer (nothing changed) is re-armed, up to 3 times."""
        early = 0
        for attempt in range(4):
            n = await self.wait_parked("parking the watchers")
            if not self.events:
                return n, early
            evs, self.events = self.events, []
            early += len(evs)
            for w, resp in evs:
                if isinstance(resp, Exception):
                    raise CannotRun(f"watcher {w.wid} ({service_name(w.svc)}) failed before any change: {resp!r}")
                w.index = max(w.index, resp.index())
                self.arm(w)
            self.armed_ns = time.perf_counter_ns()
        raise CannotRun(f"watchers keep returning without a change ({early} early answers)")

    async def change(self, k, svc):
        """One change; returns (latencies_ms, ack_ms, woke_target, spurious, problems)."""
        name = service_name(svc)
        old_index = {w.wid: w.index for w in self.by_svc[svc]}
        conn = self.pool[0]
        if self.a.change == "tag":
            tag = f"v{k + 1}"
            req = request("PUT", "/v1/agent/service/register", register_body(svc, tag))
        else:
            tag = None
            req = request("PUT", f"/v1/agent/check/fail/service:{name}?note=bench", b"")
        # Answers that came while nothing changed (since the watchers were last parked).
        idle_wakes, self.events = self.events, []
        for w, resp in idle_wakes:
            if not isinstance(resp, Exception):
                w.index = max(w.index, resp.index())
                self.arm(w)
        t0 = time.perf_counter_ns()
        conn.writer.write(req)
        ack = await asyncio.wait_for(read_response(conn.reader), 30)
        ack_ms = (ack.t_ns - t0) / 1e6
        problems = []
        if ack.status != 200:
            problems.append(f"change request answered {ack.status}: {ack.body[:200]!r}")
        want = len(self.by_svc[svc])
        deadline = time.monotonic() + 5
        while sum(1 for w, _ in self.events if w.svc == svc) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await asyncio.sleep(self.a.settle)  # catch stray wake-ups of other services' watchers
        lat, woke, spurious, after_ack = [], 0, list(idle_wakes), []
        for w, resp in self.events:
            if w.svc != svc:
                spurious.append((w, resp))
                continue
            woke += 1
            if isinstance(resp, Exception):
                problems.append(f"watcher {w.wid} of {name}: {resp!r}")
                continue
            if resp.status != 200:
                problems.append(f"watcher {w.wid} of {name}: status {resp.status}")
            elif resp.index() <= old_index[w.wid]:
                problems.append(f"watcher {w.wid} of {name}: X-Consul-Index {resp.index()} not above {old_index[w.wid]}")
            else:
                try:
                    entries = json.loads(resp.body)
                    e = entries[0]
                    if tag is not None:
                        shows = tag in (e["Service"].get("Tags") or [])
                    else:
                        shows = any(c.get("Status") == "critical" for c in e.get("Checks") or [])
                except (ValueError, LookupError, TypeError, AttributeError):
                    shows = False
                if not shows:
                    problems.append(f"watcher {w.wid} of {name}: answer does not show the change: {resp.body[:200]!r}")
            lat.append((resp.t_ns - t0) / 1e6)
            after_ack.append((resp.t_ns - ack.t_ns) / 1e6)
        # Re-arm everything that answered (also strays, so the next change starts from 10k parked).
        for w, resp in self.events:
            if isinstance(resp, Exception):
                continue
            w.index = max(w.index, resp.index())
            self.arm(w)
        self.events = []
        self.armed_ns = time.perf_counter_ns()
        return lat, ack_ms, woke, want, spurious, problems, after_ack

    async def run(self):
        a = self.a
        self.armed_ns = 0
        rss_start = self.srv.status("VmRSS")
        t_reg, distinct = await self.register_all()
        await asyncio.sleep(0.5)
        rss_reg = self.srv.status("VmRSS")
        print(f"   registered {a.services} services in {t_reg:.2f}s; {distinct} distinct X-Consul-Index values "
              f"among them (per-service indexes)")
        t_open = await self.open_watchers()
        parked, early = await self.settle_initial()
        rss_parked, hwm_parked = self.srv.status("VmRSS"), self.srv.status("VmHWM")
        print(f"   opened {len(self.watchers)} blocking queries in {t_open:.2f}s; {parked} server-side connections "
              f"established, all requests read" + (f"; {early} answered early and were re-armed" if early else ""))
        print(f"   server VmRSS: {mib(rss_start):.1f} MiB at start, {mib(rss_reg):.1f} MiB with {a.services} services, "
              f"{mib(rss_parked):.1f} MiB with {len(self.watchers)} parked watchers (VmHWM {mib(hwm_parked):.1f} MiB, "
              f"{(rss_parked - rss_reg) / max(1, len(self.watchers)):.0f} B per watcher); {self.srv.nthreads()} threads")

        step = max(1, a.services // a.changes)
        targets = [(k * step + step // 2) % a.services for k in range(a.changes)]
        all_lat, acks, spurious_total, problems_total, missing, all_after = [], [], 0, [], 0, []
        print(f"   {'change':>6} {'service':>9} {'woke':>5} {'other':>5} {'ack ms':>8} {'min ms':>8} "
              f"{'p50 ms':>8} {'max ms':>8}")
        for k, svc in enumerate(targets):
            lat, ack_ms, woke, want, spurious, problems, after_ack = await self.change(k, svc)
            lat.sort()
            all_after += after_ack
            all_lat += lat
            acks.append(ack_ms)
            spurious_total += len(spurious)
            missing += max(0, want - woke)
            problems_total += problems
            print(f"   {k + 1:>6} {service_name(svc):>9} {woke:>3}/{want:<1} {len(spurious):>5} {ack_ms:>8.2f} "
                  f"{(lat[0] if lat else float('nan')):>8.2f} {pct(lat, 50):>8.2f} {(lat[-1] if lat else float('nan')):>8.2f}")
            for w, resp in spurious[:3]:
                what = repr(resp) if isinstance(resp, Exception) else f"status {resp.status} index {resp.index()}"
                print(f"          spurious: watcher {w.wid} of {service_name(w.svc)}: {what}")
            await self.wait_parked(f"re-parking after change {k + 1}")
            if not self.srv.alive():
                raise CannotRun("trellis died during the changes")
        rss_end, hwm_end = self.srv.status("VmRSS"), self.srv.status("VmHWM")
        still = self.srv.unread_sockets()[0]
        return dict(lat=sorted(all_lat), acks=sorted(acks), after=sorted(all_after), spurious=spurious_total, missing=missing,
                    problems=problems_total, rss_parked=rss_parked, rss_end=rss_end, hwm_end=hwm_end,
                    targets=targets, still=still)


async def amain(srv, a):
    b = Bench(srv, a)
    try:
        return await b.run()
    finally:
        for w in b.watchers:
            if w.task is not None:
                w.task.cancel()
            w.conn.close()
        for c in getattr(b, "pool", []):
            c.close()
        await asyncio.sleep(0.1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build_dir", nargs="?", default="build")
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--watchers-per-service", type=int, default=10)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--change", choices=("tag", "ttl"), default="tag",
                   help="re-register with a new tag (default) or fail the service's TTL check")
    p.add_argument("--workers", type=int, default=1, help="trellis server --workers (0: its default)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the server to CPU 0 and this client to CPU 1")
    p.add_argument("--wait", default="5m", help="wait= of the blocking queries")
    p.add_argument("--quiet", type=float, default=1.0, help="seconds without answers that count as parked")
    p.add_argument("--settle", type=float, default=0.3, help="seconds to watch for stray wake-ups per change")
    p.add_argument("--batch", type=int, default=500, help="connections opened at a time")
    a = p.parse_args()
    if a.changes > a.services:
        p.error("--changes must not exceed --services")
    total = a.services * a.watchers_per_service
    try:
        binary = find_trellis(a.build_dir)
        nofile = raise_nofile(NOFILE)
        if nofile < total + 100:
            raise CannotRun(f"RLIMIT_NOFILE is {nofile}, {total + 100} needed")
        cpu_srv = None
        if not a.no_pin and os.cpu_count() and os.cpu_count() >= 2:
            cpu_srv = 0
            os.sched_setaffinity(0, {1})
        srv = Server(binary, a.workers, cpu_srv)
    except CannotRun as e:
        print(f"watch_fanout: {e}", file=sys.stderr)
        return 2
    print(f"== watch fan-out: {total} blocking queries over {a.services} services ({a.watchers_per_service} each), "
          f"{a.changes} changes ({a.change}), wait={a.wait}, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    print(f"   load average before: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"   machine: {os.cpu_count()} cores, kernel {os.uname().release}; server "
          + (f"on CPU {cpu_srv}, client on CPU 1" if cpu_srv is not None else "and client unpinned")
          + f"; server: {' '.join(srv.argv[1:2])} --workers {a.workers or 'default'}, fd limit {srv.nofile()}")
    rc_srv = None
    try:
        res = asyncio.run(amain(srv, a))
    except CannotRun as e:
        print(f"watch_fanout: {e}", file=sys.stderr)
        tail = srv.read_log().decode(errors="replace").strip().splitlines()[-5:]
        for line in tail:
            print(f"   server log: {line}", file=sys.stderr)
        srv.stop()
        srv.cleanup()
        return 2
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        print(f"watch_fanout: {e!r}", file=sys.stderr)
        srv.stop()
        srv.cleanup()
        return 2
    finally:
        if srv.alive():
            rc_srv = srv.stop()
    srv.cleanup()
    lat, n = res["lat"], len(res["lat"])
    want = a.changes * a.watchers_per_service
    p50, p99, mx = pct(lat, 50), pct(lat, 99), (lat[-1] if lat else float("nan"))
    print()
    print(f"   watchers woken: {n} of {want} expected (the changed services' watchers); "
          f"spurious wake-ups of other services' watchers: {res['spurious']}")
    print(f"   notification latency over {n} wake-ups (change request sent -> watcher has the answer): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms")
    print(f"   change request answered: p50 {pct(res['acks'], 50):.2f} ms, max {res['acks'][-1]:.2f} ms; "
          f"watcher answer minus change answer: p50 {pct(res['after'], 50):.2f} ms, "
          f"p99 {pct(res['after'], 99):.2f} ms, max {res['after'][-1]:.2f} ms")
    print(f"   server VmRSS with {a.services * a.watchers_per_service} parked watchers: {mib(res['rss_parked']):.1f} MiB; "
          f"at the end {mib(res['rss_end']):.1f} MiB (VmHWM {mib(res['hwm_end']):.1f} MiB)")
    print(f"   server exit code after SIGTERM: {rc_srv}; load average after: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    for prob in res["problems"][:10]:
        print(f"   problem: {prob}")
    checks = [
        ("only the changed service's watchers woke", res["spurious"] == 0),
        ("every watcher of a changed service woke, with the change", res["missing"] == 0 and not res["problems"]),
        (f"p99 notification latency < {P99_TARGET_MS:.0f} ms ({p99:.2f} ms)", p99 < P99_TARGET_MS),
        (f"server VmRSS < {mib(RSS_TARGET):.0f} MiB ({mib(res['rss_parked']):.1f} MiB)", res["rss_parked"] < RSS_TARGET),
    ]
    for what, ok in checks:
        print(f"   -> {'PASS' if ok else 'FAIL'}: {what}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
