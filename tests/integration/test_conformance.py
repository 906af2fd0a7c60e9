# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 request parsing against llhttp 9.4.2's verdicts (conformance/llhttp-v9.4.2/).

Every request case of the corpus is replayed, over a fresh connection, to one
`trellis echo --echo`, and what the server did is classified:

  accepted   complete 2xx responses, i.e. messages the server parsed and handed to the
             handler. With --echo each one carries back the request line, headers and
             body, so we also learn the method, target length and body length the server
             framed for that message.

and compared with llhttp's callback log (`llhttp_log`), which says the same for llhttp:

  DESYNC  for any case, the i-th accepted message differs from llhttp's i-th message
          (method, target length or body length), or for an `accept` case the server
          accepted MORE messages than llhttp. Never allowed: this is request smuggling.
  LAX     for a `reject`/`incomplete` case the server accepted more messages than llhttp
          completed. Allowed only for cases in LAX, each with its reason.
  STRICT  the server accepted fewer messages than llhttp completed. Allowed only for cases
          in STRICTER, each with its reason (mostly RFC 9112 §3.2: Host is required).

Each case also runs a second time as "<id>+host" when llhttp saw an HTTP/1.1 message
without Host in it: a "Host: example.com" line is inserted right after that message's
request line (where llhttp had already parsed successfully, so its verdict still applies).
Without this, the Host rule would answer most of the corpus with 400 before any framing
rule is exercised.

LAX and STRICTER must match docs/http-conformance.md, which lists every difference;
test_docs_list_every_difference checks that. An entry for a case that no longer differs
fails too, so the tables cannot go stale.
"""
import base64
import json
import os
import re
import socket
import time

import pytest

from conftest import SLOW, Proc

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "conformance", "llhttp-v9.4.2", "requests.jsonl")
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "http-conformance.md")

HOST_LINE = b"Host: example.com\r\n"

# llhttp error codes that are not errors: it pauses so that the connection can become a
# tunnel (CONNECT, Upgrade: 22) or HTTP/2 (PRI: 23). We never switch protocols; see
# server.c conn_execute.
PAUSE_CODES = (22, 23)

# Cases where the server accepts MORE messages than llhttp 9.4.2 completed. Debian ships
# llhttp 8.1, so a 9.x-only rejection would land here. Each value is the justification.
LAX = {
}

NO_HOST = "RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400"
NO_CONNECT = "CONNECT is not served (RFC 9110 §9.3.6: tunnels are a proxy's job): 404, close"
ONLY_CHUNKED = "transfer coding other than chunked (deflate): RFC 9112 §6.1 allows 501"

# Cases where the server accepts FEWER messages than llhttp 9.4.2 completed.
STRICTER = {
    "test/request/connection.md:9": NO_HOST,
    "test/request/connection.md:37": NO_HOST,
    "test/request/connection.md:239": NO_HOST,
    "test/request/connection.md:267": NO_HOST,
    "test/request/connection.md:456": NO_HOST,
    "test/request/connection.md:545": NO_HOST,
    "test/request/connection.md:682": NO_HOST,
    "test/request/connection.md:716": NO_HOST,
    "test/request/content-length.md:7": NO_HOST,
    "test/request/content-length.md:44": NO_HOST,
    "test/request/method.md:7": NO_HOST,
    "test/request/pipelining.md:7": NO_HOST,
    "test/request/sample.md:9": NO_HOST,
    "test/request/sample.md:47": NO_HOST,
    "test/request/sample.md:171": NO_HOST,
    "test/request/sample.md:199": NO_HOST,
    "test/request/sample.md:222": NO_HOST,
    "test/request/sample.md:294": NO_HOST,
    "test/request/sample.md:481": NO_HOST,
    "test/request/sample.md:511": NO_HOST,
    "test/request/sample.md:541": NO_HOST,
    "test/request/transfer-encoding.md:36": NO_HOST,
    "test/request/transfer-encoding.md:73": NO_HOST,
    "test/request/transfer-encoding.md:110": NO_HOST,
    "test/request/transfer-encoding.md:147": NO_HOST,
    "test/request/transfer-encoding.md:189": NO_HOST,
    "test/request/uri.md:7": NO_HOST,
    "test/request/uri.md:32": NO_HOST,
    "test/request/uri.md:55": NO_HOST,
    "test/request/uri.md:78": NO_HOST,
    "test/request/uri.md:105": NO_HOST,
    "test/request/uri.md:128": NO_HOST,
    "test/request/uri.md:168": NO_HOST,
    "test/request/uri.md:225": NO_HOST,
    "test/request/sample.md:317":
        "HTTP/0.9 request line (no version): not served, RFC 9112 Appendix C.1; 505",
    "test/request/method.md:30": NO_CONNECT,
    "test/request/method.md:65": NO_CONNECT,
    "test/request/method.md:99": NO_CONNECT,
    "test/request/uri.md:191": NO_CONNECT,
    "test/request/method.md:138":
        "M-SEARCH with asterisk-form target: RFC 9112 §3.2.4 keeps '*' for OPTIONS; 404",
    "test/request/method.md:485":
        "QUERY is not in llhttp 8.1's method table (added in 9.x): 400 invalid method",
    "test/request/transfer-encoding.md:754": ONLY_CHUNKED,
    "test/request/transfer-encoding.md:754+host": ONLY_CHUNKED,
    "test/request/transfer-encoding.md:796": ONLY_CHUNKED,
    "test/request/transfer-encoding.md:796+host": ONLY_CHUNKED,
}


# ------------------------------------------------------------------ the corpus

def _span_text(line):
    """The quoted value of a `span[...]="..."` log line (llhttp escapes it)."""
    m = re.search(r'span\[\w+\]="(.*)"$', line)
    return m.group(1) if m else ""


def llhttp_messages(case):
    """Messages in llhttp's log, in order: method, target length, body length, version,
    whether the message completed, the offset where its version ended and whether a Host
    field was among its headers."""
    msgs = []
    for line in case["llhttp_log"]:
        m = re.match(r"off=(\d+) (?:len=(\d+) )?(.*)$", line)
        off, span_len, what = int(m.group(1)), m.group(2), m.group(3)
        if what == "message begin":
            msgs.append({"method": None, "target_len": 0, "body_len": 0, "version": None,
                         "complete": False, "version_end": None, "has_host": False})
            continue
        if not msgs:
            continue
        cur = msgs[-1]
        if what.startswith("span[method]"):
            cur["method"] = _span_text(what)
        elif what.startswith("span[url]"):
            cur["target_len"] += int(span_len)
        elif what.startswith("span[version]"):
            cur["version"] = _span_text(what)
        elif what == "version complete":
            cur["version_end"] = off
        elif what.startswith("span[header_field]"):
            if _span_text(what).lower() == "host":
                cur["has_host"] = True
        elif what.startswith("span[body]"):
            cur["body_len"] += int(span_len)
        elif what == "message complete":
            cur["complete"] = True
    return msgs


def inject_host(raw, msgs):
    """`raw` with a Host line after the request line of each HTTP/1.1 message that lacks
    one, or None when no message needs it. Skipped where the request line does not end in
    CRLF (llhttp fails there anyway) or the next line starts with whitespace (the insert
    would turn it into obs-fold and change llhttp's verdict)."""
    points = []
    for msg in msgs:
        end = msg["version_end"]
        if msg["has_host"] or msg["version"] != "1.1" or end is None:
            continue
        if raw[end:end + 2] != b"\r\n" or raw[end + 2:end + 3] in (b" ", b"\t"):
            continue
        points.append(end + 2)
    if not points:
        return None
    for p in sorted(points, reverse=True):
        raw = raw[:p] + HOST_LINE + raw[p:]
    return raw


def load_cases():
    cases = []
    with open(CORPUS) as f:
        for line in f:
            c = json.loads(line)
            if c["type"] != "request":
                continue
            raw = base64.b64decode(c["raw_b64"])
            msgs = llhttp_messages(c)
            cases.append((c["id"], c, raw, msgs))
            with_host = inject_host(raw, msgs)
            if with_host is not None:
                cases.append((c["id"] + "+host", c, with_host, msgs))
    return cases


CASES = load_cases()


# ------------------------------------------------------------------ talking to the server

def exchange(port, pieces, timeout=5.0, gap=0.0):
    """Sends `pieces` (`gap` seconds apart), half-closes, and reads until the server
    closes. Unlike conftest's raw_request this does not wait for the connection to go
    quiet: EOF after the last byte makes the server answer what it has and close, so each
    case takes milliseconds. Returns (bytes, clean): clean is False on reset or timeout."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout * SLOW)
    out = b""
    clean = True
    try:
        try:
            for i, piece in enumerate(pieces):
                if i and gap:
                    time.sleep(gap)
                s.sendall(piece)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed early (after an error): read what it sent
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        clean = False
    finally:
        s.close()
    return out, clean


def _dechunk(rest):
    """(body, remaining) of a complete chunked body, or None if it is cut short."""
    body = b""
    while True:
        line_end = rest.find(b"\r\n")
        if line_end < 0:
            return None
        try:
            size = int(rest[:line_end].split(b";")[0], 16)
        except ValueError:
            return None
        rest = rest[line_end + 2:]
        if size == 0:
            trailer_end = rest.find(b"\r\n")
            while trailer_end > 0:  # skip trailer fields
                rest = rest[trailer_end + 2:]
                trailer_end = rest.find(b"\r\n")
            if trailer_end < 0:
                return None
            return body, rest[2:]
        if len(rest) < size + 2 or rest[size:size + 2] != b"\r\n":
            return None
        body += rest[:size]
        rest = rest[size + 2:]


def complete_responses(data, clean_eof, head_methods):
    """Like conftest.parse_responses, but only COMPLETE responses count: the echo handler
    sends its 200 head before the body arrives, so a request that fails mid-body leaves a
    truncated 200 that must not pass for an accepted message. `head_methods[i]` tells
    whether the i-th request was HEAD (its response has no body)."""
    out = []
    while data:
        if not data.startswith(b"HTTP/1.1 "):
            break
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            break
        lines = data[:head_end].decode("latin1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        rest = data[head_end + 4:]
        if 100 <= status < 200:
            data = rest
            continue
        is_head = len(out) < len(head_methods) and head_methods[len(out)]
        if is_head or status in (204, 304):
            body = b""
            data = rest
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) < n:
                break
            body, data = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            r = _dechunk(rest)
            if r is None:
                break
            body, data = r
        else:
            if not clean_eof:  # close-delimited: complete only with a clean EOF
                break
            body, data = rest, b""
        out.append((status, headers, body))
    return out


def parse_echo(body):
    """(method, target, body length) from an --echo response body."""
    line_end = body.find(b"\r\n")
    head_end = body.find(b"\r\n\r\n")
    parts = body[:line_end].split(b" ")
    if line_end < 0 or head_end < 0 or len(parts) != 3:
        return None
    return parts[0].decode("latin1"), parts[1], len(body) - head_end - 4


class Outcome:
    def __init__(self, responses, echoes):
        self.responses = responses
        self.echoes = echoes  # (method, target, body length) per accepted message

    @property
    def accepted(self):
        return len(self.echoes)

    def summary(self):
        return "statuses %s, accepted %d %s" % ([r[0] for r in self.responses],
                                                 self.accepted, self.echoes)


def split_at_line_ends(raw):
    """`raw` cut before and after every CR and LF, so that each line break arrives in a
    read of its own (as far as TCP lets us)."""
    pieces = []
    start = 0
    for i, byte in enumerate(raw):
        if byte in (0x0d, 0x0a):
            for cut in (i, i + 1):
                if cut > start:
                    pieces.append(raw[start:cut])
                    start = cut
    if start < len(raw):
        pieces.append(raw[start:])
    return pieces


def replay(port, raw, msgs, split=False):
    if split:
        data, clean = exchange(port, split_at_line_ends(raw), gap=0.002 * SLOW)
    else:
        data, clean = exchange(port, [raw])
    head_methods = [m["method"] == "HEAD" for m in msgs]
    responses = complete_responses(data, clean, head_methods)
    echoes = []
    for i, (status, _, body) in enumerate(responses):
        if not 200 <= status < 300:
            break  # every error response closes the connection
        if i < len(head_methods) and head_methods[i]:
            echoes.append(("HEAD", None, None))  # no body to read the echo from
        else:
            echoes.append(parse_echo(body))
    return Outcome(responses, echoes)


@pytest.fixture(scope="module")
def echo_server():
    """One `trellis echo --echo` for the module (conftest's trellis_proc is per test);
    teardown applies the same checks: clean exit, no error lines, no sanitizer report."""
    p = Proc(["echo", "--echo", "--workers", "1"])
    yield p
    rc = p.stop()
    problems = p.problems()
    if rc != 0 or problems:
        pytest.fail("trellis echo: exit %s\n%s" % (rc, "\n".join(problems[:20])))


# ------------------------------------------------------------------ the checks

def expected_messages(case, msgs):
    """How many messages llhttp completed, i.e. the most the server may accept."""
    return sum(1 for m in msgs if m["complete"])


def check_no_desync(case_id, msgs, outcome):
    done = [m for m in msgs if m["complete"]]
    for i, echo in enumerate(outcome.echoes):
        assert echo is not None, "%s: response %d is not an echo: %s" % (
            case_id, i, outcome.summary())
        if i >= len(done):
            break
        want = done[i]
        method, target, body_len = echo
        if target is None:
            continue  # HEAD
        assert method == want["method"], "%s: DESYNC: message %d method %r, llhttp %r" % (
            case_id, i, method, want["method"])
        assert len(target) == want["target_len"], (
            "%s: DESYNC: message %d target %r (%d bytes), llhttp %d bytes" % (
                case_id, i, target, len(target), want["target_len"]))
        assert body_len == want["body_len"], (
            "%s: DESYNC: message %d body %d bytes, llhttp %d bytes" % (
                case_id, i, body_len, want["body_len"]))


@pytest.mark.parametrize("case_id,case,raw,msgs", CASES, ids=[c[0] for c in CASES])
def test_request_case(echo_server, case_id, case, raw, msgs):
    outcome = replay(echo_server.port, raw, msgs)
    check_no_desync(case_id, msgs, outcome)
    want = expected_messages(case, msgs)
    got = outcome.accepted
    expect = case["expect"]
    if expect == "accept":
        assert got <= want, "%s: DESYNC: accepted %d messages, llhttp %d (%s)" % (
            case_id, got, want, outcome.summary())
    elif got > want:
        # After a pause code llhttp would switch protocols; we carry on as HTTP/1.1, so
        # more messages could be legitimate there, but none of the corpus cases needs it.
        kind = "after protocol switch" if case["error_code"] in PAUSE_CODES else "LAX"
        assert case_id in LAX, "%s: %s: llhttp %s (%s) after %d messages; server %s" % (
            case_id, kind, expect, case["error_reason"], want, outcome.summary())
    if got < want:
        assert case_id in STRICTER, (
            "%s: STRICT: accepted %d of llhttp's %d messages (%s); add it to STRICTER "
            "and docs/http-conformance.md with a reason, or fix the server" % (
                case_id, got, want, outcome.summary()))
    if case_id in STRICTER:
        assert got < want, "%s: listed in STRICTER but accepted all %d messages" % (
            case_id, want)
    if case_id in LAX:
        assert got > want, "%s: listed in LAX but accepted only %d messages" % (case_id, got)


def test_docs_list_every_difference():
    with open(DOC) as f:
        doc = f.read()
    section = doc.split("\n## Verdict differences\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([^`]+)` \|", section, re.M))
    listed = set(LAX) | set(STRICTER)
    assert not listed - rows, "missing from %s: %s" % (DOC, sorted(listed - rows))
    assert not rows - listed, "in %s but not in the test: %s" % (DOC, sorted(rows - listed))


def test_tables_name_real_cases():
    ids = {c[0] for c in CASES}
    unknown = (set(LAX) | set(STRICTER)) - ids
    assert not unknown, "not in the corpus: %s" % sorted(unknown)


# One variant per corpus case (host-injected where there is one): the same bytes cut at
# every line break. How the bytes are split across reads must not change the verdict;
# the server carries header spans and the obs-fold check across reads.
SPLIT_CASES = [c for c in CASES if c[0].endswith("+host") or c[0] + "+host" not in
               {x[0] for x in CASES}]


@pytest.mark.parametrize("case_id,case,raw,msgs", SPLIT_CASES,
                         ids=[c[0] + "+split" for c in SPLIT_CASES])
def test_request_case_split(echo_server, case_id, case, raw, msgs):
    whole = replay(echo_server.port, raw, msgs)
    split = replay(echo_server.port, raw, msgs, split=True)
    assert split.echoes == whole.echoes, "%s: split %s, whole %s" % (
        case_id, split.summary(), whole.summary())


# ------------------------------------------------------------------ beyond the corpus

@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9", "HTTP/0.0"])
def test_request_line_major_version_other_than_1_is_refused(echo_server, version):
    """RFC 9112 §2.3 / RFC 9110 §15.6.6: this is an HTTP/1.x server. llhttp 8.1 lets 0.9
    and 2.0 through its version check, so the server has to look at http_major itself;
    otherwise "HTTP/2.0" is served as HTTP/1.0 and "HTTP/0.9" echoed as "HTTP/1.9"."""
    raw = ("GET / %s\r\nHost: a\r\n\r\n" % version).encode()
    data, clean = exchange(echo_server.port, [raw])
    responses = complete_responses(data, clean, [False])
    assert responses, "no response to %r" % raw
    assert responses[0][0] in (400, 505), "%r answered %d: %r" % (raw, responses[0][0], data)


@pytest.mark.parametrize("line", [b": Bar", b":", b":\tx"])
def test_empty_header_name_is_refused(echo_server, line):
    """RFC 9110 §5.1: field-name = token, at least one tchar. llhttp 9.4.2 rejects an
    empty name (corpus test/request/invalid.md:336); Debian's 8.1 passes it on, so the
    server must refuse it itself, as it does obs-fold."""
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n"
    data, clean = exchange(echo_server.port, [raw])
    responses = complete_responses(data, clean, [False])
    assert responses and responses[0][0] == 400, "%r answered %r" % (raw, data)


def test_head_error_response_has_no_body(echo_server):
    """RFC 9110 §9.3.2: a response to HEAD never carries content, errors included. A
    request that fails before its head is complete is still known to be HEAD (llhttp has
    parsed the method), so the 400 must not be followed by its JSON body."""
    raw = b"HEAD / HTTP/1.1\r\nHost: a\r\nFoo: a\x01b\r\n\r\n"
    data, _ = exchange(echo_server.port, [raw])
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and sep, data
    assert rest == b"", "body after a HEAD response: %r" % rest


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("line", [b"X-Empty:", b"X-Empty: ", b"X-Empty:\t"])
def test_empty_header_value_is_accepted(echo_server, line, split):
    """RFC 9110 §5.5: field-value = *field-content, so an empty value is valid and must not
    be mistaken for obs-fold, whole or split at the line end."""
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\nY: 1\r\n\r\n"
    msgs = [{"method": "GET"}]
    outcome = replay(echo_server.port, raw, msgs, split=split)
    assert outcome.accepted == 1, "%r: %s" % (raw, outcome.summary())
