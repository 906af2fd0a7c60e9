# SPDX-License-Identifier: Apache-2.0
"""The registry CLI (`trellis kv`, `services`, `register`, `deregister`) against a real
trellis server: output formats (tables and --json), values from stdin, exit statuses
(0 ok, 1 failure or not found, 2 usage), the unreachable-server message and how the
server address is chosen (--addr > TRELLIS_ADDR > CONSUL_HTTP_ADDR > 127.0.0.1:8500).
"""
import base64
import json
import os
import socket
import subprocess

import pytest

from conftest import BIN, SLOW
from registry_helpers import Upstream, api, api_json, wait_for


def free_port():
    """A loopback port nothing listens on (bound and released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(*args, addr=None, env=None, stdin=None, binary=False, timeout=20):
    """Runs `trellis <args>` to completion with TRELLIS_ADDR=`addr` and no
    CONSUL_HTTP_ADDR unless `env` says otherwise."""
    full_env = dict(os.environ)
    full_env.pop("TRELLIS_ADDR", None)
    full_env.pop("CONSUL_HTTP_ADDR", None)
    if addr is not None:
        full_env["TRELLIS_ADDR"] = addr
    full_env.update(env or {})
    r = subprocess.run([BIN] + list(args), input=stdin, capture_output=True,
                       env=full_env, timeout=timeout * SLOW, text=not binary)
    return r


@pytest.fixture
def srv(trellis_proc, tmp_path):
    s = trellis_proc(["server", "--data-dir", str(tmp_path / "data")])
    s.addr = "127.0.0.1:%d" % s.port
    return s


@pytest.fixture
def upstreams():
    ups = []

    def make(name, **kw):
        u = Upstream(name, **kw)
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


def kv_entry(srv, key):
    status, _, body = api(srv.port, "GET", "/v1/kv/" + key)
    if status == 404:
        return None
    assert status == 200, body
    return json.loads(body)[0]


# ----------------------------------------------------------------------------- kv


def test_kv_put_then_get_prints_the_value(srv):
    r = cli("kv", "put", "app/greeting", "hello world", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert "app/greeting" in r.stdout
    r = cli("kv", "get", "app/greeting", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello world\n"
    e = kv_entry(srv, "app/greeting")
    assert base64.b64decode(e["Value"]) == b"hello world"


def test_kv_put_reads_stdin_with_dash_and_raw_get_is_byte_exact(srv):
    value = b"line one\n\x00\x01\xff binary\r\n"
    r = cli("kv", "put", "blob", "-", addr=srv.addr, stdin=value, binary=True)
    assert r.returncode == 0, r.stderr
    r = cli("kv", "get", "blob", "--raw", addr=srv.addr, binary=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == value
    assert base64.b64decode(kv_entry(srv, "blob")["Value"]) == value


def test_kv_put_empty_stdin_stores_an_empty_value(srv):
    r = cli("kv", "put", "empty", "-", addr=srv.addr, stdin="")
    assert r.returncode == 0, r.stderr
    r = cli("kv", "get", "empty", "--raw", addr=srv.addr)
    assert (r.returncode, r.stdout) == (0, "")
    r = cli("kv", "get", "empty", "--json", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Value"] in (None, "")


def test_kv_get_json_is_the_consul_entry(srv):
    r = cli("kv", "put", "cfg/db", "postgres://x", "--flags", "42", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    r = cli("kv", "get", "cfg/db", "--json", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    assert e["Key"] == "cfg/db"
    assert e["Flags"] == 42
    assert base64.b64decode(e["Value"]) == b"postgres://x"
    assert e["ModifyIndex"] >= e["CreateIndex"] >= 1
    assert e == kv_entry(srv, "cfg/db")


def test_kv_value_starting_with_a_dash_after_double_dash(srv):
    r = cli("kv", "put", "neg", "--", "-5", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert cli("kv", "get", "neg", addr=srv.addr).stdout == "-5\n"


def test_kv_get_missing_key_exits_1(srv):
    r = cli("kv", "get", "no/such/key", addr=srv.addr)
    assert r.returncode == 1
    assert r.stdout == ""
    assert 'key "no/such/key" not found' in r.stderr
    r = cli("kv", "get", "no/such/key", "--raw", addr=srv.addr)
    assert r.returncode == 1
    assert "not found" in r.stderr


def test_kv_cas_create_only_and_index_match(srv):
    r = cli("kv", "put", "lock", "first", "--cas", "0", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    # --cas 0 only creates: the second create loses, exit 1, value untouched.
    r = cli("kv", "put", "lock", "second", "--cas", "0", addr=srv.addr)
    assert r.returncode == 1
    assert "check-and-set failed" in r.stderr and "already exists" in r.stderr
    e = kv_entry(srv, "lock")
    assert base64.b64decode(e["Value"]) == b"first"
    idx = e["ModifyIndex"]
    r = cli("kv", "put", "lock", "third", "--cas", str(idx), addr=srv.addr)
    assert r.returncode == 0, r.stderr
    # The index we used is now stale.
    r = cli("kv", "put", "lock", "fourth", "--cas", str(idx), addr=srv.addr)
    assert r.returncode == 1
    assert "check-and-set failed" in r.stderr and str(idx) in r.stderr
    assert base64.b64decode(kv_entry(srv, "lock")["Value"]) == b"third"


def test_kv_list_table_and_json(srv):
    for k, v in [("svc/a", "alpha"), ("svc/b", "beta"), ("svc/c/d", "x" * 200),
                 ("other", "o")]:
        assert cli("kv", "put", k, v, addr=srv.addr).returncode == 0
    r = cli("kv", "list", "svc/", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KEY", "FLAGS", "INDEX", "VALUE"]
    assert [l.split()[0] for l in lines[1:]] == ["svc/a", "svc/b", "svc/c/d"]
    assert lines[1].split()[3] == "alpha"
    assert lines[3].rstrip().endswith("...")  # long values are cut short
    assert len(lines[3]) < 120
    r = cli("kv", "list", "svc/", "--json", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert [e["Key"] for e in entries] == ["svc/a", "svc/b", "svc/c/d"]
    assert base64.b64decode(entries[1]["Value"]) == b"beta"
    # No prefix: everything.
    r = cli("kv", "list", "--json", addr=srv.addr)
    assert sorted(e["Key"] for e in json.loads(r.stdout)) == [
        "other", "svc/a", "svc/b", "svc/c/d"]


def test_kv_list_empty_prefix_is_not_an_error(srv):
    r = cli("kv", "list", "nothing/here/", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "no keys" in r.stderr
    r = cli("kv", "list", "nothing/here/", "--json", addr=srv.addr)
    assert (r.returncode, json.loads(r.stdout)) == (0, [])


def test_kv_delete_single_cas_and_recurse(srv):
    for k in ["d/one", "d/two", "d/sub/three", "keep"]:
        assert cli("kv", "put", k, "v", addr=srv.addr).returncode == 0
    r = cli("kv", "delete", "d/one", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert kv_entry(srv, "d/one") is None
    idx = kv_entry(srv, "d/two")["ModifyIndex"]
    r = cli("kv", "delete", "d/two", "--cas", str(idx + 1000), addr=srv.addr)
    assert r.returncode == 1
    assert "check-and-set failed" in r.stderr
    assert kv_entry(srv, "d/two") is not None
    r = cli("kv", "delete", "d/two", "--cas", str(idx), addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert kv_entry(srv, "d/two") is None
    r = cli("kv", "delete", "d/", "--recurse", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert kv_entry(srv, "d/sub/three") is None
    assert kv_entry(srv, "keep") is not None


def test_kv_server_4xx_message_is_printed(srv):
    r = cli("kv", "get", "a/../b", addr=srv.addr)
    assert r.returncode == 1
    assert "server answered 400" in r.stderr
    assert "invalid key" in r.stderr  # the server's own message


@pytest.mark.parametrize("args", [
    ["kv"],
    ["kv", "frob"],
    ["kv", "get"],
    ["kv", "get", "a", "b"],
    ["kv", "put", "k"],
    ["kv", "put", "", "v"],
    ["kv", "get", "k", "--json", "--raw"],
    ["kv", "put", "k", "v", "--cas", "abc"],
    ["kv", "put", "k", "v", "--flags", "-1"],
    ["kv", "put", "k", "v", "--cas"],
    ["kv", "get", "k", "--recurse"],
    ["kv", "delete", "k", "--recurse", "--cas", "3"],
    ["kv", "delete", "k", "--cas", "0"],
    ["kv", "list", "a", "b"],
])
def test_kv_usage_errors_exit_2(args):
    # The address points nowhere: a usage error must be found before any request.
    r = cli(*args, addr="127.0.0.1:%d" % free_port())
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "trellis kv" in r.stderr
    assert "--help" in r.stderr
    assert "cannot reach" not in r.stderr


# ----------------------------------------------------------------------------- address


def test_unreachable_server_message(srv):
    port = free_port()
    r = cli("kv", "get", "x", addr="127.0.0.1:%d" % port)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "trellis kv get: cannot reach trellis server at 127.0.0.1:%d: connection refused" % port)
    for args in (["services"], ["deregister", "x"], ["register", "--name", "x"],
                 ["kv", "put", "k", "v"], ["kv", "list"], ["kv", "delete", "k"]):
        r = cli(*args, addr="127.0.0.1:%d" % port)
        assert r.returncode == 1, args
        assert "cannot reach trellis server at 127.0.0.1:%d: connection refused" % port \
            in r.stderr, args


def test_default_address_is_127_0_0_1_8500():
    r = cli("kv", "get", "x")
    probe = socket.socket()
    try:
        in_use = probe.connect_ex(("127.0.0.1", 8500)) == 0
    finally:
        probe.close()
    if in_use:
        # Something else owns 8500 here; at least the CLI must have talked to it.
        assert "cannot reach" not in r.stderr
    else:
        assert r.returncode == 1
        assert "cannot reach trellis server at 127.0.0.1:8500: connection refused" in r.stderr


def test_address_precedence(srv):
    dead = "127.0.0.1:%d" % free_port()
    assert cli("kv", "put", "where", "here", addr=srv.addr).returncode == 0
    # TRELLIS_ADDR wins over CONSUL_HTTP_ADDR.
    r = cli("kv", "get", "where", addr=srv.addr, env={"CONSUL_HTTP_ADDR": dead})
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    r = cli("kv", "get", "where", addr=dead, env={"CONSUL_HTTP_ADDR": srv.addr})
    assert r.returncode == 1 and dead in r.stderr
    # CONSUL_HTTP_ADDR alone, in URL form with a trailing slash; an empty TRELLIS_ADDR
    # counts as unset.
    r = cli("kv", "get", "where", env={"CONSUL_HTTP_ADDR": "http://%s/" % srv.addr})
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    r = cli("kv", "get", "where", addr="", env={"CONSUL_HTTP_ADDR": "http://" + srv.addr})
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    # --addr wins over both, in either form.
    r = cli("kv", "get", "where", "--addr", srv.addr, addr=dead,
            env={"CONSUL_HTTP_ADDR": dead})
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    r = cli("kv", "get", "where", "--addr=http://" + srv.addr, addr=dead)
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    r = cli("kv", "get", "where", "--addr", dead, addr=srv.addr)
    assert r.returncode == 1 and dead in r.stderr
    # localhost resolves.
    r = cli("kv", "get", "where", addr="localhost:%d" % srv.port)
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr


@pytest.mark.parametrize("bad,why", [
    ("https://127.0.0.1:8501", "unsupported scheme"),
    ("unix:///tmp/x.sock", "unsupported scheme"),
    ("127.0.0.1:notaport", "port"),
    ("127.0.0.1:70000", "port"),
    ("::1:8500", "brackets"),
    ("http://127.0.0.1:8500/some/path", "expected host:port"),
])
def test_malformed_address_is_a_usage_error_naming_its_source(bad, why):
    r = cli("kv", "get", "x", env={"CONSUL_HTTP_ADDR": bad})
    assert r.returncode == 2, r.stderr
    assert "CONSUL_HTTP_ADDR" in r.stderr and why in r.stderr
    r = cli("services", "--addr", bad)
    assert r.returncode == 2, r.stderr
    assert "--addr" in r.stderr and why in r.stderr


def test_unresolvable_host_exits_1():
    r = cli("services", "--addr", "no-such-host.invalid:8500")
    assert r.returncode == 1
    assert "cannot resolve" in r.stderr and "no-such-host.invalid" in r.stderr


@pytest.mark.parametrize("cmd,words", [
    ("kv", ["get", "put", "delete", "list", "--cas", "--flags", "--recurse", "--raw",
            "--json", "TRELLIS_ADDR", "CONSUL_HTTP_ADDR"]),
    ("services", ["--json", "--addr", "TRELLIS_ADDR"]),
    ("register", ["--name", "--id", "--address", "--port", "--tag", "--meta",
                  "--http-check", "--tcp-check", "--ttl", "--interval", "--timeout"]),
    ("deregister", ["ID", "--addr"]),
])
def test_help_text(cmd, words):
    r = cli(cmd, "--help")
    assert r.returncode == 0
    for w in words:
        assert w in r.stdout, (cmd, w)
    assert cmd in cli("help").stdout


# ----------------------------------------------------------------------------- register


@pytest.mark.parametrize("args,why", [
    ([], "--name is required"),
    (["--name", "x", "--port", "65536"], "--port"),
    (["--name", "x", "--port", "http"], "--port"),
    (["--name", "x", "--meta", "novalue"], "--meta"),
    (["--name", "x", "--meta", "=v"], "--meta"),
    (["--name", "x", "--ttl", "soon"], "--ttl"),
    (["--name", "x", "--http-check", "http://h/", "--interval", "0"], "--interval"),
    (["--name", "x", "--interval", "5s"], "--interval"),
    (["--name", "x", "--http-check", "ftp://h/"], "--http-check"),
    (["--name", "x", "--tcp-check", "hostonly"], "--tcp-check"),
    (["--name", "x", "--bogus", "1"], "--bogus"),
    (["--name", "x", "positional"], "positional"),
    (["--name"], "--name"),
])
def test_register_usage_errors_exit_2(args, why):
    r = cli("register", *args, addr="127.0.0.1:%d" % free_port())
    assert r.returncode == 2, (args, r.stderr)
    assert why in r.stderr


def test_deregister_usage_errors_exit_2():
    for args in ([], ["a", "b"], ["--bogus", "x", "a"]):
        r = cli("deregister", *args, addr="127.0.0.1:%d" % free_port())
        assert r.returncode == 2, (args, r.stderr)


def services_json(srv, *name):
    r = cli("services", *name, "--json", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def summary(srv, name):
    for s in services_json(srv):
        if s["name"] == name:
            return s
    return None


def test_register_sends_every_field(srv):
    r = cli("register", "--name", "billing", "--id", "billing-1", "--address", "127.0.0.5",
            "--port", "8080", "--tag", "v1", "--tag", "primary", "--meta", "env=prod",
            "--meta", "team=pay=ments", "--ttl", "30s", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert "billing-1" in r.stdout
    svcs = api_json(srv.port, "GET", "/v1/agent/services")
    s = svcs["billing-1"]
    assert s["Service"] == "billing"
    assert s["Address"] == "127.0.0.5"
    assert s["Port"] == 8080
    assert s["Tags"] == ["v1", "primary"]
    assert s["Meta"] == {"env": "prod", "team": "pay=ments"}
    checks = api_json(srv.port, "GET", "/v1/agent/checks")
    mine = [c for c in checks.values() if c["ServiceID"] == "billing-1"]
    assert len(mine) == 1
    assert mine[0]["Status"] == "critical"  # a TTL check starts critical


def test_register_defaults_id_to_name_and_registering_again_replaces(srv):
    assert cli("register", "--name", "cache", "--port", "6379", addr=srv.addr).returncode == 0
    assert cli("register", "--name", "cache", "--port", "6380", addr=srv.addr).returncode == 0
    svcs = api_json(srv.port, "GET", "/v1/agent/services")
    assert svcs["cache"]["Port"] == 6380
    assert [i["id"] for i in services_json(srv, "cache")] == ["cache"]


def test_services_table_json_and_health(srv, upstreams):
    web1 = upstreams("web1")
    web2 = upstreams("web2")
    for up, i in ((web1, 1), (web2, 2)):
        r = cli("register", "--name", "web", "--id", "web-%d" % i, "--address", "127.0.0.1",
                "--port", str(up.port), "--tag", "http", "--http-check", up.health_url,
                "--interval", "200ms", "--timeout", "1s", addr=srv.addr)
        assert r.returncode == 0, r.stderr
    r = cli("register", "--name", "db", "--id", "db-1", "--port", "5432",
            "--tcp-check", web1.addr, "--interval", "200ms", addr=srv.addr)
    assert r.returncode == 0, r.stderr

    wait_for(lambda: (summary(srv, "web") or {}).get("passing") == 2, 10,
             "both web instances passing")
    wait_for(lambda: (summary(srv, "db") or {}).get("passing") == 1, 10, "db passing")
    s = summary(srv, "web")
    assert s["instances"] == 2 and s["critical"] == 0 and s["warning"] == 0
    assert s["tags"] == ["http"]

    r = cli("services", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "INSTANCES", "PASSING", "WARNING", "CRITICAL",
                                "TAGS"]
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    assert rows["web"][1:5] == ["2", "2", "0", "0"]
    assert rows["db"][1:5] == ["1", "1", "0", "0"]
    assert list(rows) == sorted(rows)

    # One instance starts failing its check: 500 is critical.
    web2.health_status = 500
    wait_for(lambda: (summary(srv, "web") or {}).get("critical") == 1, 10, "web-2 critical")
    assert summary(srv, "web")["passing"] == 1
    inst = {i["id"]: i for i in services_json(srv, "web")}
    assert inst["web-1"]["status"] == "passing"
    assert inst["web-2"]["status"] == "critical"
    assert inst["web-2"]["port"] == web2.port
    assert inst["web-2"]["address"] == "127.0.0.1"
    assert inst["web-2"]["service"] == "web"
    # 429 is warning (Consul's rule).
    web2.health_status = 429
    wait_for(lambda: (summary(srv, "web") or {}).get("warning") == 1, 10, "web-2 warning")

    r = cli("services", "web", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NODE", "ADDRESS", "PORT", "STATUS", "TAGS"]
    status = {l.split()[0]: l.split()[4] for l in lines[1:]}
    assert status == {"web-1": "passing", "web-2": "warning"}


def test_services_for_unknown_name_exits_1(srv):
    r = cli("services", "nope", addr=srv.addr)
    assert r.returncode == 1
    assert 'no instances of service "nope"' in r.stderr
    assert services_json(srv, "nope") == []


def test_deregister(srv):
    assert cli("register", "--name", "tmp", "--id", "tmp-1", addr=srv.addr).returncode == 0
    assert cli("register", "--name", "tmp", "--id", "tmp-2", addr=srv.addr).returncode == 0
    assert summary(srv, "tmp")["instances"] == 2
    r = cli("deregister", "tmp-1", addr=srv.addr)
    assert r.returncode == 0, r.stderr
    assert "tmp-1" in r.stdout
    assert [i["id"] for i in services_json(srv, "tmp")] == ["tmp-2"]
    assert "tmp-1" not in api_json(srv.port, "GET", "/v1/agent/services")
    assert cli("deregister", "tmp-2", addr=srv.addr).returncode == 0
    assert summary(srv, "tmp") is None


def test_deregister_unknown_id_prints_the_server_answer(srv):
    r = cli("deregister", "ghost", addr=srv.addr)
    assert r.returncode == 1
    assert "server answered 404" in r.stderr
