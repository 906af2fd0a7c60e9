#!/usr/bin/env bash
# `make demo`: until the shop example lands, runs `trellis echo` in the foreground and
# prints what to try against it. Ctrl-C stops it (a graceful drain).
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/trellis"
PORT=${TRELLIS_DEMO_PORT:-8080}
if [ ! -x "$BIN" ]; then
    echo "demo: $BIN not built; run 'make' first" >&2
    exit 1
fi
cat <<MSG

  Trellis $("$BIN" --version | awk '{print $2}') demo: the HTTP engine, serving on http://127.0.0.1:$PORT

  Try, in another terminal:
    curl -i http://127.0.0.1:$PORT/hello
    curl -i -X POST --data-binary @README.md http://127.0.0.1:$PORT/echo     # echoes back (--echo mode)
    curl -i -H 'Content-Length: 1' -H 'Transfer-Encoding: chunked' http://127.0.0.1:$PORT/
                                       # request smuggling shape: 400 with a JSON error
    wrk -t1 -c32 -d5s http://127.0.0.1:$PORT/                               # load test

  The registry (trellis server), gateway, sidecars and the shop example arrive in
  later releases; see docs/ for what exists today. Ctrl-C stops the server.

MSG
exec "$BIN" echo --echo --listen "127.0.0.1:$PORT"
