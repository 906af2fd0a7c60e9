#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Broker publish -> deliver -> ack throughput and end-to-end latency: trellis server's
# embedded broker vs nats-server JetStream (Debian's nats-server, file storage), side by
# side in one run, ROUNDS alternating rounds each.
#
# The client is bench/broker_bench.c (built here against Debian's libnats). Each event is
# SIZE bytes and carries its send time; the consumer acks every event and records
# publish -> delivery latency. Throughput = events / (first publish .. last delivery).
#   trellis:   PUBLISHERS keep-alive connections posting NDJSON batches of BATCH events to
#              /v1/broker/publish (answered after fdatasync: group commit), CONSUMERS
#              connections long-polling /v1/broker/fetch (max=1000) and acking each batch.
#   JetStream: one connection, js_PublishAsync with MAX_PENDING acks outstanding, a push
#              consumer with explicit acks (natsMsg_Ack per event).
# Durability is not equal by default: JetStream acknowledges a publish once it is written
# to its file store, and fsyncs on a timer (sync_interval, 2 min by default); a per-publish
# fsync ("sync_interval: always") exists only from nats-server 2.10. The script checks
# whether the installed nats-server accepts it and, if so, also runs JetStream that way.
# Two phases: "max" publishes as fast as each client can (trellis publishers are closed
# loop: each waits for its batch's answer; JetStream keeps MAX_PENDING publishes in
# flight), so its latencies are mostly queueing; "paced" publishes PACED_RATE events/s
# (trellis in batches of PACED_BATCH) and measures latency at that fixed load.
#
# Usage: bench/broker_vs_jetstream.sh [BUILD_DIR]
# Environment: TRELLIS_BIN (default BUILD_DIR/trellis, BUILD_DIR default build)
#   N=100000 SIZE=1024 ROUNDS=3 PUBLISHERS=4 BATCH=256 CONSUMERS=2 MAX_PENDING=4096
#   PACED_RATE=10000 PACED_N=50000 PACED_BATCH=10 (PACED_RATE=0 skips the paced phase)
#   DATA_ROOT=${TMPDIR:-/tmp} (a real disk: fsync on tmpfs is a no-op)
set -euo pipefail

build_dir=${1:-build}
TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
N=${N:-100000}
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-3}
PUBLISHERS=${PUBLISHERS:-4}
BATCH=${BATCH:-256}
CONSUMERS=${CONSUMERS:-2}
MAX_PENDING=${MAX_PENDING:-4096}
PACED_RATE=${PACED_RATE:-10000}
PACED_N=${PACED_N:-50000}
PACED_BATCH=${PACED_BATCH:-10}
DATA_ROOT=${DATA_ROOT:-${TMPDIR:-/tmp}}

here=$(cd "$(dirname "$0")" && pwd)
command -v nats-server >/dev/null || { echo "nats-server missing: scripts/install-deps.sh" >&2; exit 1; }
[ -x "$TRELLIS_BIN" ] || { echo "no trellis binary at $TRELLIS_BIN" >&2; exit 1; }

work=$(mktemp -d "$DATA_ROOT/broker-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cc -O2 -o "$work/broker_bench" "$here/broker_bench.c" -lnats -lpthread

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on $1" >&2
    return 1
}

nats_version=$(nats-server --version | awk '{print $NF}')
sync_always=no
printf 'jetstream { store_dir: "%s/probe", sync_interval: always }\n' "$work" >"$work/probe.conf"
if nats-server -t -c "$work/probe.conf" >/dev/null 2>&1; then
    sync_always=yes
fi

run_jetstream() { # $1 = label, $2 = extra jetstream config, $3 = N, $4 = rate
    local port dir
    port=$(free_port)
    dir="$work/js-$RANDOM"
    printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s" %s }\n' "$port" "$dir" "$2" \
        >"$work/js.conf"
    nats-server -c "$work/js.conf" >"$work/js.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port"
    "$work/broker_bench" jetstream "nats://127.0.0.1:$port" "$3" "$SIZE" "$MAX_PENDING" "$4" |
        sed "s/^jetstream/$1/"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

run_trellis() { # $1 = label, $2 = N, $3 = batch, $4 = rate
    local port dir
    port=$(free_port)
    dir="$work/tr-$RANDOM"
    "$TRELLIS_BIN" server --data-dir "$dir" --listen "127.0.0.1:$port" >"$work/tr.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port"
    "$work/broker_bench" trellis "127.0.0.1:$port" "$2" "$SIZE" "$PUBLISHERS" "$3" \
        "$CONSUMERS" "$4" | sed "s/^trellis/$1/"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

echo "# $(nproc) cores; nats-server $nats_version (sync_interval: always supported: $sync_always);"
echo "# N=$N SIZE=$SIZE trellis: PUBLISHERS=$PUBLISHERS BATCH=$BATCH CONSUMERS=$CONSUMERS;"
echo "# jetstream: MAX_PENDING=$MAX_PENDING; data in $DATA_ROOT"
results="$work/results"
for r in $(seq "$ROUNDS"); do
    run_trellis trellis "$N" "$BATCH" 0 | tee -a "$results"
    run_jetstream jetstream-default "" "$N" 0 | tee -a "$results"
    if [ "$sync_always" = yes ]; then
        run_jetstream jetstream-sync-always "sync_interval: always" "$N" 0 | tee -a "$results"
    fi
    if [ "$PACED_RATE" != 0 ]; then
        run_trellis trellis-paced "$PACED_N" "$PACED_BATCH" "$PACED_RATE" | tee -a "$results"
        run_jetstream jetstream-default-paced "" "$PACED_N" "$PACED_RATE" | tee -a "$results"
        if [ "$sync_always" = yes ]; then
            run_jetstream jetstream-sync-always-paced "sync_interval: always" "$PACED_N" \
                "$PACED_RATE" | tee -a "$results"
        fi
    fi
done

median() { # $1 = label, $2 = field
    grep "^$1 " "$results" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2 | sort -g |
        awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

echo
echo "medians of $ROUNDS rounds (paced: $PACED_RATE events/s offered)"
printf '%-28s %12s %10s %10s\n' run "msgs/s" "p50 ms" "p99 ms"
for label in trellis jetstream-default jetstream-sync-always trellis-paced \
    jetstream-default-paced jetstream-sync-always-paced; do
    grep -q "^$label " "$results" || continue
    printf '%-28s %12s %10s %10s\n' "$label" "$(median "$label" rate)" \
        "$(median "$label" p50_ms)" "$(median "$label" p99_ms)"
done
tr_rate=$(median trellis rate)
js_rate=$(median jetstream-default rate)
echo
echo "throughput ratio trellis / jetstream-default: $(awk -v a="$tr_rate" -v b="$js_rate" 'BEGIN {printf "%.2f", a / b}')"
if grep -q "^jetstream-sync-always " "$results"; then
    js2=$(median jetstream-sync-always rate)
    echo "throughput ratio trellis / jetstream-sync-always: $(awk -v a="$tr_rate" -v b="$js2" 'BEGIN {printf "%.2f", a / b}')"
fi
