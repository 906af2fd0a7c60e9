#!/usr/bin/env bash
# `make demo`: runs the shop example (examples/shop) with `trellis up` in the foreground and
# prints a short guided tour. Ctrl-C stops everything gracefully.
set -euo pipefail
BUILD=${1:-build}
BIN="$(cd "$(dirname "$BUILD/trellis")" && pwd)/trellis"
MANIFEST=examples/shop/trellis.yaml
if [ ! -x "$BIN" ]; then
    echo "demo: $BIN not built; run 'make' first" >&2
    exit 1
fi
if [ ! -x "$BUILD/examples/shop/order" ]; then
    echo "demo: the shop services are not built in $BUILD; run 'make' first" >&2
    exit 1
fi
cat <<MSG

  Trellis $("$BIN" --version | awk '{print $2}') demo: the shop, five C services on libtrellis,
  two replicas each, every replica beside its own sidecar, behind the gateway.

  Once the status table below says everything is healthy, try in another terminal
  (from this directory, so the trellis commands find the running app):

    # place an order through the gateway (order -> inventory -> payment, then an event)
    curl -s -XPOST localhost:8080/orders -H 'Content-Type: application/json' \\
         -d '{"customer_id":"ada","items":[{"product_id":"p1","quantity":2}]}'
    curl -s localhost:8080/orders/<id from above>
    curl -s localhost:8080/notifications         # the order.created event arrived
    curl -s localhost:8080/products

    $BIN ps -f $MANIFEST                     # replicas: state, pid, ports, restarts, RSS
    kill -9 <an order pid from ps>; sleep 1; $BIN ps -f $MANIFEST   # it comes back
    $BIN scale -f $MANIFEST order=4          # live scaling
    $BIN rollout -f $MANIFEST inventory      # rolling restart, no failed request
    $BIN logs --file $MANIFEST order          # aggregated logs (also in examples/shop/.trellis/logs)
    curl -s localhost:9901/metrics | head    # gateway metrics (Prometheus text)
    curl -s localhost:8500/v1/catalog/services   # the registry (Consul API)

  Ctrl-C (or '$BIN down -f $MANIFEST') stops everything.

MSG
exec "$BIN" up "$MANIFEST"
