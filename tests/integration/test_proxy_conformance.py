# SPDX-License-Identifier: Apache-2.0
"""Request smuggling and malformed messages through `trellis proxy`, against llhttp
9.4.2's verdicts (conformance/llhttp-v9.4.2/, see test_conformance.py for the server
alone and docs/http-conformance.md for the results).

A recording backend (raw sockets, a strict parser of its own) stands behind the proxy.
It records every request the proxy sends it, exactly as framed on the wire, and answers
each with "X-Backend-Req: <n>"; it treats anything it cannot parse strictly as a finding.

Requests (requests.jsonl, each case as is and in its "+host" form): the raw bytes go to
the proxy over a fresh connection, which is then half-closed. The proxy must either
refuse a message (4xx/5xx of its own) or forward it as one well-formed request whose
method, target and body are exactly llhttp's parse of the client's bytes:

  DESYNC  the backend saw a request llhttp did not parse that way (method, target or body
          differ), more requests than llhttp completed for an `accept` case, a request the
          client got no answer for, or bytes that are not a well-formed request. Never.
  LAX     for a `reject`/`incomplete` case the backend got more requests than llhttp
          completed: allowed only for cases in LAX, each with its reason.
  STRICT  fewer: allowed for the server's own STRICTER list (test_conformance.py) and
          PROXY_STRICTER, each with its reason.

Responses (responses.jsonl): the client asks for /__resp/<case>, the backend answers with
the case's raw bytes and closes the connection after 0.15 s of silence. The client must
see either an error of the proxy's own (502) or a response whose status and body are
llhttp's parse of the first final message (a body cut short by the close is fine too, if
llhttp did not complete the message either). Then the client asks for /__second on the
same connection and must get exactly the backend's fixed answer: anything left over from
the case's bytes reaching it is a DESYNC (response smuggling or pool poisoning).
"""
import base64
import json
import os
import re
import socket
import threading
import time

import pytest

from conftest import SLOW, Proc
from test_conformance import (CORPUS, PAUSE_CODES, STRICTER, complete_responses, exchange,
                              inject_host, split_at_line_ends)

HERE = os.path.dirname(os.path.abspath(__file__))
RESPONSES = os.path.join(os.path.dirname(CORPUS), "responses.jsonl")
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "http-conformance.md")

# What each case came to, for the summary in docs/http-conformance.md: written as JSON to
# $TRELLIS_CONFORMANCE_REPORT when that is set.
OUTCOMES = {}

SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Second: 1\r\n\r\nsecond"
LINGER = 0.15  # the backend's silence before it closes after a response case

NOT_ROUTED = "request-target is not a path (asterisk-form): no proxy route matches, 404"

# Request cases the proxy forwards fewer messages of than llhttp 9.4.2 completed, beyond
# what the server alone refuses (STRICTER in test_conformance.py).
PROXY_STRICTER = {
}

# Request cases the proxy forwards MORE messages of than llhttp 9.4.2 completed.
LAX = {
}

# Response cases whose first final message reaches the client although llhttp 9.4.2
# rejects it (or never completes it): each with its reason.
RESPONSE_LAX = {
}

# Response cases where an accepted message does not reach the client complete.
RESPONSE_STRICTER = {
}


# ------------------------------------------------------------------ the corpus

def _span_text(line):
    m = re.search(r'span\[\w+\]="(.*)"$', line)
    return m.group(1) if m else ""


def llhttp_parse(case, raw):
    """llhttp's messages with their bytes: method, target, body (span contents taken from
    `raw`, the case's own bytes), status, llhttp flags, version, whether it completed, the
    offset its version ended at, whether it had a Host field."""
    msgs = []
    for line in case["llhttp_log"]:
        m = re.match(r"off=(\d+) (?:len=(\d+) )?(.*)$", line)
        off, span_len, what = int(m.group(1)), m.group(2), m.group(3)
        if what == "message begin":
            msgs.append({"method": None, "target": b"", "body": b"", "status": None,
                         "flags": 0, "version": None, "complete": False,
                         "version_end": None, "has_host": False, "host": None,
                         "field": b""})
            continue
        if not msgs:
            continue
        cur = msgs[-1]
        span = raw[off:off + int(span_len)] if span_len is not None else b""
        if what.startswith("span[method]"):
            cur["method"] = _span_text(what)
        elif what.startswith("span[url]"):
            cur["target"] += span
        elif what.startswith("span[version]"):
            cur["version"] = _span_text(what)
        elif what == "version complete":
            cur["version_end"] = off
        elif what.startswith("span[header_field]"):
            cur["has_host"] = cur["has_host"] or _span_text(what).lower() == "host"
            cur["field"] = span.lower()
        elif what.startswith("span[header_value]") and cur["field"] == b"host":
            cur["host"] = (cur["host"] or b"") + span
        elif what.startswith("span[body]"):
            cur["body"] += span
        elif what.startswith("headers complete"):
            status = re.search(r"status=(\d+)", what)
            cur["status"] = int(status.group(1)) if status else None
            cur["flags"] = int(re.search(r"flags=([0-9a-f]+)", what).group(1), 16)
        elif what == "message complete":
            cur["complete"] = True
    return msgs


def load(path, kind):
    out = []
    with open(path) as f:
        for line in f:
            c = json.loads(line)
            if c["type"] == kind:
                raw = base64.b64decode(c["raw_b64"])
                out.append((c["id"], c, raw, llhttp_parse(c, raw)))
    return out


def request_cases():
    cases = []
    for cid, c, raw, msgs in load(CORPUS, "request"):
        cases.append((cid, c, raw, msgs))
        with_host = inject_host(raw, msgs)
        if with_host is not None:
            # The messages inject_host() gave a Host line (its own rule, restated).
            injected = [dict(m, host=b"example.com") if (
                not m["has_host"] and m["version"] == "1.1" and m["version_end"] is not None and
                raw[m["version_end"]:m["version_end"] + 2] == b"\r\n" and
                raw[m["version_end"] + 2:m["version_end"] + 3] not in (b" ", b"\t")) else m
                for m in msgs]
            cases.append((cid + "+host", c, with_host, injected))
    return cases


REQUEST_CASES = request_cases()
RESPONSE_CASES = load(RESPONSES, "response")


def target_authority(target):
    """host[:port] of an absolute-form target, userinfo dropped, or None."""
    m = re.match(rb"[^/*][^:]*://([^/?#]*)", target)
    if m is None:
        return None
    host = m.group(1).rpartition(b"@")[2]
    return host or None


def expected_host(msg, upstream):
    """The Host the backend must see: an absolute-form target's authority (RFC 9112
    §3.2.2), else the client's Host, else (HTTP/1.0 without one) the upstream address the
    proxy's client fills in."""
    host = target_authority(msg["target"])
    if host is not None:
        return host
    if msg["host"] is not None:
        return msg["host"].rstrip(b" \t")
    return upstream.encode()


def expected_target(target):
    """What the proxy sends upstream for llhttp's request-target: origin-form as it is,
    absolute-form as its path and query (RFC 9112 §3.2.2: a proxy forwarding to an
    origin server sends origin-form)."""
    if target.startswith(b"/"):
        return target
    m = re.match(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?]*(.*)$", target, re.S)
    if m is None:
        return target
    rest = m.group(1)
    return rest if rest.startswith(b"/") else b"/" + rest


# ------------------------------------------------------------------ the backend

def parse_request(buf):
    """Strict parse of one request at the start of `buf`: ("need", None, 0) when more is
    needed, ("bad", reason, 0) when it is not a well-formed HTTP/1.1 request as a proxy
    must send it, ("ok", (method, target, headers, body), consumed)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > 65536:
            return "bad", "head over 64 KiB", 0
        if b"\n" in buf.replace(b"\r\n", b""):
            return "bad", "bare LF in the head", 0
        return "need", None, 0
    head = buf[:head_end]
    if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
        return "bad", "bare CR or LF in the head", 0
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return "bad", "request line %r" % lines[0], 0
    method, target = parts[0], parts[1]
    if not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", method):
        return "bad", "method %r" % method, 0
    if not target or re.search(rb"[\x00-\x20\x7f]", target):
        return "bad", "target %r" % target, 0
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            return "bad", "header line %r" % line, 0
        value = value.strip(b" \t")
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
            return "bad", "header value %r" % line, 0
        headers.append((name.lower(), value))
    cls = [v for (n, v) in headers if n == b"content-length"]
    tes = [v for (n, v) in headers if n == b"transfer-encoding"]
    rest = buf[head_end + 4:]
    if tes:
        if cls or len(tes) != 1 or tes[0].lower() != b"chunked":
            return "bad", "framing: Content-Length %r, Transfer-Encoding %r" % (cls, tes), 0
        body = b""
        pos = 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return "need", None, 0
            size_text = rest[pos:eol]
            if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_text):
                return "bad", "chunk size %r" % size_text, 0
            size = int(size_text, 16)
            pos = eol + 2
            if size == 0:
                if rest[pos:pos + 2] == b"":
                    return "need", None, 0
                if rest[pos:pos + 2] != b"\r\n":
                    return "bad", "trailer section %r" % rest[pos:pos + 40], 0
                return "ok", (method, target, headers, body), head_end + 4 + pos + 2
            if len(rest) < pos + size + 2:
                return "need", None, 0
            if rest[pos + size:pos + size + 2] != b"\r\n":
                return "bad", "chunk data not followed by CRLF", 0
            body += rest[pos:pos + size]
            pos += size + 2
    if len(cls) > 1 or (cls and not re.fullmatch(rb"[0-9]{1,15}", cls[0])):
        return "bad", "Content-Length %r" % cls, 0
    n = int(cls[0]) if cls else 0
    if len(rest) < n:
        return "need", None, 0
    return "ok", (method, target, headers, rest[:n]), head_end + 4 + n


class Backend:
    """Records what the proxy sends; see the module docstring for its answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []   # (seq, method, target, body)
        self.malformed = []  # (reason, bytes)
        self.seq = 0
        self.last = time.monotonic()
        self.busy = 0        # connections holding a partial request
        self.responses = {}  # "/__resp/<i>" -> raw bytes
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.requests = []
            self.malformed = []

    def quiet(self, idle=0.03, limit=1.0):
        """Waits until nothing has arrived for `idle` seconds and no connection holds a
        partial request (or `limit` passed)."""
        deadline = time.monotonic() + limit * SLOW
        while time.monotonic() < deadline:
            with self.lock:
                if self.busy == 0 and time.monotonic() - self.last >= idle:
                    return
            time.sleep(0.005)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        partial = False
        try:
            while True:
                try:
                    data = c.recv(65536)
                except socket.timeout:
                    return  # the LINGER after a response case
                except OSError:
                    data = b""
                with self.lock:
                    self.last = time.monotonic()
                if not data:
                    return
                buf += data
                while buf:
                    state, what, used = parse_request(buf)
                    if state == "need":
                        break
                    if state == "bad":
                        with self.lock:
                            self.malformed.append((what, buf[:300]))
                        return
                    buf = buf[used:]
                    self._answer(c, what)
                if bool(buf) != partial:
                    partial = bool(buf)
                    with self.lock:
                        self.busy += 1 if partial else -1
        finally:
            if partial:
                with self.lock:
                    self.busy -= 1
            c.close()

    def _answer(self, c, req):
        method, target, headers, body = req
        if target in self.responses:
            c.sendall(self.responses[target])
            c.settimeout(LINGER)
            return
        if target == b"/__second":
            c.sendall(SECOND)
            return
        with self.lock:
            self.seq += 1
            seq = self.seq
            hosts = [v for (n, v) in headers if n == b"host"]
            self.requests.append((seq, method.decode("latin1"), target, body,
                                  hosts[0] if len(hosts) == 1 else hosts))
        answer = b"backend-req-%d" % seq
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Backend-Req: %d\r\nContent-Length: %d\r\n\r\n%s" %
                  (seq, len(answer), answer))

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def rig():
    backend = Backend()
    for i, (_, _, raw, _) in enumerate(RESPONSE_CASES):
        backend.responses[b"/__resp/%d" % i] = raw
    proxy = Proc(["proxy", "--to", "127.0.0.1:%d" % backend.port, "--workers", "1"])
    yield proxy, backend
    if os.environ.get("TRELLIS_CONFORMANCE_REPORT"):
        with open(os.environ["TRELLIS_CONFORMANCE_REPORT"], "w") as f:
            json.dump(OUTCOMES, f, indent=1, sort_keys=True)
    rc = proxy.stop()
    backend.stop()
    problems = proxy.problems()
    if rc != 0 or problems:
        pytest.fail("trellis proxy: exit %s\n%s" % (rc, "\n".join(problems[:20])))


# ------------------------------------------------------------------ requests

def check_request_case(rig, case_id, case, raw, msgs, split=False):
    proxy, backend = rig
    backend.reset()
    if split:
        data, clean = exchange(proxy.port, split_at_line_ends(raw), gap=0.002 * SLOW)
    else:
        data, clean = exchange(proxy.port, [raw])
    backend.quiet()
    with backend.lock:
        got = list(backend.requests)
        malformed = list(backend.malformed)
    head_methods = [m["method"] == "HEAD" for m in msgs]
    responses = complete_responses(data, clean, head_methods)
    summary = "client saw %s; backend got %s" % (
        [(s, b[:40]) for (s, _, b) in responses], [(g[1], g[2], len(g[3]), g[4]) for g in got])
    assert not malformed, "%s: DESYNC: the backend got a malformed request: %s" % (
        case_id, malformed)
    # Every request the backend got was answered to the client, in order, and nothing else
    # of the backend's reached the client.
    answered = [int(h["x-backend-req"]) for (_, h, _) in responses if "x-backend-req" in h]
    assert answered == [g[0] for g in got], "%s: DESYNC: %s" % (case_id, summary)
    done = [m for m in msgs if m["complete"]]
    for i, (_, method, target, body, host) in enumerate(got):
        if i >= len(done):
            break
        want = done[i]
        assert (method, target, body) == (want["method"], expected_target(want["target"]),
                                          want["body"]), (
            "%s: DESYNC: request %d went up as %r %r body %r; llhttp parsed %r %r body %r" % (
                case_id, i, method, target, body[:80], want["method"], want["target"],
                want["body"][:80]))
        upstream = "127.0.0.1:%d" % backend.port
        assert host == expected_host(want, upstream), (
            "%s: request %d went up with Host %r, expected %r" % (
                case_id, i, host, expected_host(want, upstream)))
    want_n = len(done)
    if case["expect"] == "accept":
        assert len(got) <= want_n, "%s: DESYNC: %d requests went up, llhttp completed %d (%s)" % (
            case_id, len(got), want_n, summary)
    elif len(got) > want_n:
        kind = "after protocol switch" if case["error_code"] in PAUSE_CODES else "LAX"
        assert case_id in LAX, "%s: %s: llhttp %s (%s) after %d messages; %s" % (
            case_id, kind, case["expect"], case["error_reason"], want_n, summary)
    if len(got) < want_n:
        assert case_id in STRICTER or case_id in PROXY_STRICTER, (
            "%s: STRICT: %d of llhttp's %d messages went up (%s)" % (
                case_id, len(got), want_n, summary))
    if case_id in PROXY_STRICTER:
        assert len(got) < want_n, "%s: in PROXY_STRICTER but all went up" % case_id
    if case_id in LAX:
        assert len(got) > want_n, "%s: in LAX but only %d went up" % (case_id, len(got))
    statuses = [r[0] for r in responses if "x-backend-req" not in r[1]]
    OUTCOMES[case_id + ("+split" if split else "")] = {"expect": case["expect"], "llhttp": want_n, "forwarded": len(got),
                         "refused_with": statuses[:1]}


@pytest.mark.parametrize("case_id,case,raw,msgs", REQUEST_CASES,
                         ids=[c[0] for c in REQUEST_CASES])
def test_request_case_through_proxy(rig, case_id, case, raw, msgs):
    check_request_case(rig, case_id, case, raw, msgs)


# The same bytes cut at every line break (the "+host" form where there is one): how the
# request arrives must not change what goes up.
SPLIT_CASES = [c for c in REQUEST_CASES if c[0].endswith("+host") or
               c[0] + "+host" not in {x[0] for x in REQUEST_CASES}]


@pytest.mark.parametrize("case_id,case,raw,msgs", SPLIT_CASES,
                         ids=[c[0] + "+split" for c in SPLIT_CASES])
def test_request_case_through_proxy_split(rig, case_id, case, raw, msgs):
    check_request_case(rig, case_id, case, raw, msgs, split=True)


def _chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x;ext=%d\r\n%s\r\n" % (len(piece), i, piece)
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


BIG = bytes(range(256)) * 400  # 100 KiB: above the proxy's 64 KiB buffering limit
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# Beyond the corpus: bodies the proxy streams rather than buffers (over 64 KiB), each
# followed by a pipelined request that must go up as a request of its own, never as
# body bytes. (name, bytes sent, [(method, target, body)] the backend must see)
STREAMED = [
    ("content-length-100k",
     b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
     b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n" % (len(BIG), BIG),
     [("POST", b"/cl", BIG), ("GET", b"/next", b"")]),
    ("chunked-100k",
     b"PUT /ch HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
     _chunked(BIG, 30000) + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
     [("PUT", b"/ch", BIG), ("GET", b"/next", b"")]),
    ("chunked-small-with-trailer",
     b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
     _chunked(b"0123456789", 3) +
     b"POST /after HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     [("POST", b"/small", b"0123456789"), ("POST", b"/after", b"hello")]),
    ("chunked-100k-then-smuggle-attempt",
     b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
     _chunked(BIG[:70000], 70000) +
     b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
     [("POST", b"/s", BIG[:70000]), ("GET", b"/x", SMUGGLED)]),
]


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("name,raw,want", STREAMED, ids=[c[0] for c in STREAMED])
def test_streamed_bodies_through_proxy(rig, name, raw, want, split):
    proxy, backend = rig
    backend.reset()
    pieces = [raw[i:i + 7000] for i in range(0, len(raw), 7000)] if split else [raw]
    data, clean = exchange(proxy.port, pieces, gap=0.002 * SLOW)
    backend.quiet()
    responses = complete_responses(data, clean, [False] * len(want))
    with backend.lock:
        got = [(m, t, b) for (_, m, t, b, _) in backend.requests]
        malformed = list(backend.malformed)
    assert not malformed, malformed
    assert [r[0] for r in responses] == [200] * len(want), data[:500]
    assert got == want, [(m, t, len(b)) for (m, t, b) in got]


# ------------------------------------------------------------------ responses

def read_one_response(sock, timeout):
    """Reads from `sock` until one complete response (by Content-Length, chunked or, with
    no framing, the connection's end) is in, the connection ends or `timeout` passes.
    Returns (data, eof)."""
    data = b""
    eof = False
    deadline = time.monotonic() + timeout
    while not eof and time.monotonic() < deadline:
        if complete_responses(data, False, [False]):
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            d = b""
        if not d:
            eof = True
        data += d
    return data, eof


def first_final(msgs):
    for m in msgs:
        if m["status"] is None or not 100 <= m["status"] < 200:
            return m
    return None


def until_eof(m):
    """The message's body runs to the connection's end (no Content-Length, no chunked)."""
    return (m["status"] is not None and m["status"] not in (204, 304) and
            m["status"] >= 200 and not m["flags"] & 0x28)


RESPONSE_IDS = [c[0] for c in RESPONSE_CASES]


@pytest.mark.parametrize("index", range(len(RESPONSE_CASES)), ids=RESPONSE_IDS)
def test_response_case_through_proxy(rig, index):
    proxy, backend = rig
    case_id, case, raw, msgs = RESPONSE_CASES[index]
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.sendall(b"GET /__resp/%d HTTP/1.1\r\nHost: x\r\n\r\n" % index)
        data, eof = read_one_response(s, 3.0 * SLOW)
        got = complete_responses(data, eof, [False])
        want = first_final(msgs)
        verdict = check_first_response(case_id, case, want, data, got)
        OUTCOMES[case_id] = {"expect": case["expect"], "client": verdict}
        if eof or not got or got[0][1].get("connection") == "close":
            return
        # The same client connection asks again: the answer must be the backend's fresh
        # one, never bytes left over from the case.
        s.sendall(b"GET /__second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        rest = data[len(first_response_bytes(data)):]
        more, _ = read_all(s, 3.0 * SLOW)
        second = complete_responses(rest + more, True, [False])
        assert len(second) == 1 and second[0][0] == 200 and second[0][2] == b"second" and \
            second[0][1].get("x-second") == "1", (
                "%s: DESYNC: the next request on the connection got %r" % (case_id, rest + more))
        OUTCOMES[case_id]["second"] = "fresh"
    finally:
        s.close()


def read_all(sock, timeout):
    out = b""
    sock.settimeout(timeout)
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return out, True
            out += d
    except (socket.timeout, OSError):
        return out, False


def first_response_bytes(data):
    """The bytes of the first complete response in `data` (1xx included)."""
    for cut in range(1, len(data) + 1):
        if complete_responses(data[:cut], False, [False]):
            return data[:cut]
    return data


def check_first_response(case_id, case, want, data, got):
    """Classifies the client's first answer: "error" (the proxy's own 502), "truncated"
    (a head and part of a body, then the end), or "forwarded" (complete, checked)."""
    if got and got[0][1].get("via") is None:
        status = got[0][0]
        assert status == 502, "%s: the proxy answered %d itself: %r" % (case_id, status, data)
        assert json.loads(got[0][2])["error"]["cause"] in ("bad_response", "reset"), data
        assert case_id not in RESPONSE_LAX, "%s: in RESPONSE_LAX but refused" % case_id
        if want is not None and want["complete"]:
            assert case_id in RESPONSE_STRICTER, (
                "%s: STRICT: llhttp accepts the response (%d, %d body bytes), the proxy "
                "answered %r" % (case_id, want["status"], len(want["body"]), got[0][2][:200]))
        return "error"
    if not got:
        # No complete answer: the head went to the client and the body was cut short.
        assert data.startswith(b"HTTP/1.1 "), "%s: no response at all: %r" % (case_id, data)
        assert want is not None and not (want["complete"] and case["expect"] == "accept"), (
            "%s: STRICT: llhttp accepts the response, the client got it truncated: %r" % (
                case_id, data))
        return "truncated"
    status, headers, body = got[0]
    assert want is not None, "%s: LAX: llhttp found no response, the client got %d %r" % (
        case_id, status, body[:100])
    assert (status, body) == (want["status"], want["body"]), (
        "%s: DESYNC: the client got %d %r, llhttp parsed %d %r" % (
            case_id, status, body[:100], want["status"], want["body"][:100]))
    if not want["complete"] and not until_eof(want):
        assert case_id in RESPONSE_LAX, (
            "%s: LAX: llhttp %s (%s), the client got the complete response %d" % (
                case_id, case["expect"], case["error_reason"], status))
    elif case_id in RESPONSE_LAX:
        pytest.fail("%s: in RESPONSE_LAX but llhttp completes it too" % case_id)
    return "forwarded" if want["complete"] else "forwarded (ended by the close)"


# ------------------------------------------------------------------ the tables

def test_docs_list_every_proxy_difference():
    with open(DOC) as f:
        doc = f.read()
    section = doc.split("\n## Through the proxy\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([^`]+)` \|", section, re.M))
    listed = set(PROXY_STRICTER) | set(LAX) | set(RESPONSE_LAX) | set(RESPONSE_STRICTER)
    assert not listed - rows, "missing from %s: %s" % (DOC, sorted(listed - rows))
    assert not rows - listed, "in %s but not in the test: %s" % (DOC, sorted(rows - listed))


def test_tables_name_real_cases():
    ids = {c[0] for c in REQUEST_CASES}
    unknown = (set(PROXY_STRICTER) | set(LAX)) - ids
    unknown |= (set(RESPONSE_LAX) | set(RESPONSE_STRICTER)) - set(RESPONSE_IDS)
    assert not unknown, "not in the corpus: %s" % sorted(unknown)
