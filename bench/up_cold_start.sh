#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trellis up cold start: a shop-sized application — server, gateway, 5 services with
# 2+2+1+2+1 replicas, each with its sidecar — from `trellis up` to "all healthy", and
# the RSS of the Trellis processes as `trellis ps` shows it. The services are `trellis
# echo` (a C HTTP server that starts in about a millisecond), so the figure is trellis
# up's own overhead, not an application's start-up.
#
# Usage: bench/up_cold_start.sh [BUILD_DIR]   (ROUNDS=5 by default)
set -euo pipefail
build_dir=${1:-build}
bin=${TRELLIS_BIN:-$build_dir/trellis}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
rounds=${ROUNDS:-5}
dir=$(mktemp -d /tmp/trellis-up-bench-XXXXXX)
trap 'cd /; "$bin" down -f "$dir/trellis.yaml" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
echo_cmd="$bin echo --listen 127.0.0.1:\${APP_PORT} --workers 1"
cat > "$dir/trellis.yaml" <<YAML
name: bench
server: {listen: 127.0.0.1:0}
gateway:
  listen: 127.0.0.1:0
  clusters:
    - {name: product, service: product}
    - {name: order, service: order}
  routes:
    - {match: {prefix: /products}, cluster: product}
    - {match: {prefix: /orders}, cluster: order}
services:
  product:      {command: "$echo_cmd", replicas: 2, health: /healthz}
  inventory:    {command: "$echo_cmd", replicas: 2, health: /healthz}
  payment:      {command: "$echo_cmd", replicas: 1, health: /healthz}
  order:        {command: "$echo_cmd", replicas: 2, health: /healthz}
  notification: {command: "$echo_cmd", replicas: 1, health: /healthz}
YAML
cd "$dir"
for i in $(seq 1 "$rounds"); do
    "$bin" up > up.out 2>&1 &
    pid=$!
    for _ in $(seq 1 500); do
        grep -q " is \(partly \)\?up (" up.out && break
        sleep 0.02
    done
    took=$(sed -n 's/.*all .* healthy in \([0-9]*\) ms/\1/p' up.out)
    rss=$("$bin" ps | tail -1)
    echo "round $i: all healthy in ${took:-?} ms; $rss"
    "$bin" down >/dev/null
    wait "$pid" || true
done
