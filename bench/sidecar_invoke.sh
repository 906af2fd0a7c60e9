#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Service invocation through two sidecars vs a direct call, side by side in one run, at a
# fixed request rate; compared with Dapr's published figures for the same path.
#
#   direct:   client ──────────────────────────────────────▶ app (trellis echo)
#   sidecars: client ─▶ sidecar A (app-id caller) ─▶ sidecar B (app-id callee) ─▶ app
#             GET http://127.0.0.1:<A>/v1.0/invoke/callee/method/x
#
# The client is bench/invoke_client.c (built here): open loop at RATE requests/s over
# CONNECTIONS keep-alive connections, latency from each request's *scheduled* send time
# (no coordinated omission), the first WARMUP seconds not recorded. ROUNDS rounds, each
# DURATION s direct then DURATION s via the sidecars, so both see the same machine load.
# Per round: added latency = sidecars - direct at p50/p90/p99; each sidecar's CPU time
# (utime+stime from /proc/PID/stat) over the sidecar phase, as vCPU per 1,000 requests/s;
# VmRSS and VmHWM of each sidecar at the end. Medians over the rounds are compared with
# Dapr's published figures (docs.dapr.io, "Service invocation performance": +1.40 ms p90,
# +2.10 ms p99, 0.48 vCPU and 23 MB per sidecar at 1,000 requests/s).
#
# Usage: bench/sidecar_invoke.sh [BUILD_DIR]
# Environment: TRELLIS_BIN (default BUILD_DIR/trellis, BUILD_DIR default build)
#   RATE=1000 DURATION=10 ROUNDS=5 CONNECTIONS=16 WARMUP=1 BODY=0 (BODY>0: POST that many
#   bytes) SIDECAR_WORKERS=1 ECHO_WORKERS=1 TIMEOUT=300 (whole-run bound, seconds)
set -euo pipefail

build_dir=${1:-build}
TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
RATE=${RATE:-1000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-16}
WARMUP=${WARMUP:-1}
BODY=${BODY:-0}
SIDECAR_WORKERS=${SIDECAR_WORKERS:-1}
ECHO_WORKERS=${ECHO_WORKERS:-1}
TIMEOUT=${TIMEOUT:-300}

here=$(cd "$(dirname "$0")" && pwd)
[ -x "$TRELLIS_BIN" ] || { echo "no trellis binary at $TRELLIS_BIN" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sidecar-bench.XXXXXX")
pids=()
watchdog=
# shellcheck disable=SC2317 # (called from the EXIT trap)
cleanup() {
    set +e # stop everything even if some are gone already
    [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Bound the whole run: after TIMEOUT s the watchdog signals this script, whose EXIT trap
# then stops everything it started.
main_pid=$$
# (The sleep gets no stdout/stderr, so a pipe the script's output goes into is not held
# open by it, and the watchdog kills its sleep when it is itself stopped.)
(
    sleep "$TIMEOUT" >/dev/null 2>&1 &
    sp=$!
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    wait "$sp" && echo "sidecar_invoke: timed out after ${TIMEOUT}s" >&2 && kill -TERM "$main_pid"
) &
watchdog=$!

cc -O2 -Wall -Wextra -o "$work/invoke_client" "$here/invoke_client.c"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # $1 = URL; waits for a 2xx
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "no answer from $1" >&2
    return 1
}

cpu_ticks() { # utime + stime of PID $1 (all its threads), in clock ticks
    # Field 2 (comm) may hold spaces; count from after its closing parenthesis.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

status_kb() { # $1 = PID, $2 = VmRSS | VmHWM
    awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"
}

server_port=$(free_port)
app_port=$(free_port)
a_port=$(free_port)
b_port=$(free_port)

"$TRELLIS_BIN" server --data-dir "$work/data" --listen "127.0.0.1:$server_port" \
    --workers 1 --log-level warn >"$work/server.log" 2>&1 &
pids+=($!)
"$TRELLIS_BIN" echo --listen "127.0.0.1:$app_port" --workers "$ECHO_WORKERS" \
    --log-level warn >"$work/echo.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$server_port/v1/status/leader"
wait_http "http://127.0.0.1:$app_port/"
# Sidecar A's own app can be anything; it is the same echo (it only gets health probes).
"$TRELLIS_BIN" sidecar --app-id caller --app-port "$app_port" --http-port "$a_port" \
    --server "http://127.0.0.1:$server_port" --workers "$SIDECAR_WORKERS" \
    --log-level warn >"$work/sidecar-a.log" 2>&1 &
a_pid=$!
pids+=("$a_pid")
"$TRELLIS_BIN" sidecar --app-id callee --app-port "$app_port" --http-port "$b_port" \
    --server "http://127.0.0.1:$server_port" --workers "$SIDECAR_WORKERS" \
    --log-level warn >"$work/sidecar-b.log" 2>&1 &
b_pid=$!
pids+=("$b_pid")
wait_http "http://127.0.0.1:$a_port/v1.0/healthz"
wait_http "http://127.0.0.1:$b_port/v1.0/healthz"
# B is registered once its app answers; wait until A can reach it.
wait_http "http://127.0.0.1:$a_port/v1.0/invoke/callee/method/x"

hz=$(getconf CLK_TCK)
idle_a=$(status_kb "$a_pid" VmRSS)
idle_b=$(status_kb "$b_pid" VmRSS)
echo "# $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# RATE=$RATE/s DURATION=${DURATION}s (+${WARMUP}s warm-up) ROUNDS=$ROUNDS" \
    "CONNECTIONS=$CONNECTIONS BODY=$BODY SIDECAR_WORKERS=$SIDECAR_WORKERS ECHO_WORKERS=$ECHO_WORKERS"
results="$work/results"
client() { # $1 = port, $2 = path
    "$work/invoke_client" "127.0.0.1:$1" "$2" "$RATE" "$DURATION" "$CONNECTIONS" "$BODY" "$WARMUP"
}
for _ in $(seq "$ROUNDS"); do
    echo "direct   $(client "$app_port" /x)" | tee -a "$results"
    a0=$(cpu_ticks "$a_pid")
    b0=$(cpu_ticks "$b_pid")
    t0=$(date +%s.%N)
    line=$(client "$a_port" /v1.0/invoke/callee/method/x)
    t1=$(date +%s.%N)
    a1=$(cpu_ticks "$a_pid")
    b1=$(cpu_ticks "$b_pid")
    # vCPU per 1,000 requests/s = CPU seconds / wall seconds / (achieved rate / 1000).
    rps=${line##*achieved_rps=}
    rps=${rps%% *}
    cpu_a=$(awk -v d=$((a1 - a0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" -v r="$rps" \
        'BEGIN {printf "%.4f", d / hz / (t1 - t0) / (r / 1000)}')
    cpu_b=$(awk -v d=$((b1 - b0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" -v r="$rps" \
        'BEGIN {printf "%.4f", d / hz / (t1 - t0) / (r / 1000)}')
    echo "sidecars $line cpu_a=$cpu_a cpu_b=$cpu_b ticks_a=$((a1 - a0)) ticks_b=$((b1 - b0))" |
        tee -a "$results"
done
rss_a=$(status_kb "$a_pid" VmRSS)
hwm_a=$(status_kb "$a_pid" VmHWM)
rss_b=$(status_kb "$b_pid" VmRSS)
hwm_b=$(status_kb "$b_pid" VmHWM)
anon_a=$(status_kb "$a_pid" RssAnon)
anon_b=$(status_kb "$b_pid" RssAnon)
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q 'errors=[1-9]' "$results"; then
    echo "sidecar_invoke: some requests failed (errors= above)" >&2
    status=1
else
    status=0
fi

median() { # $1 = label, $2 = field
    grep "^$1 " "$results" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2 | sort -g |
        awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
# Added latency per round (sidecars - direct, same round), then the median over rounds.
added() { # $1 = field
    paste -d' ' <(grep '^direct ' "$results" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2) \
        <(grep '^sidecars ' "$results" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2) |
        awk '{print $2 - $1}' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

echo
echo "medians of $ROUNDS rounds at $RATE requests/s (latency in microseconds)"
printf '%-10s %8s %8s %8s %8s %8s\n' path p50 p90 p99 p99.9 max
for label in direct sidecars; do
    printf '%-10s %8s %8s %8s %8s %8s\n' "$label" "$(median "$label" p50_us)" \
        "$(median "$label" p90_us)" "$(median "$label" p99_us)" "$(median "$label" p999_us)" \
        "$(median "$label" max_us)"
done
add50=$(added p50_us)
add90=$(added p90_us)
add99=$(added p99_us)
ca=$(median sidecars cpu_a)
cb=$(median sidecars cpu_b)
echo
echo "added by two sidecars: p50 +${add50} us, p90 +${add90} us, p99 +${add99} us"
echo "sidecar A (caller): $ca vCPU per 1,000 rps; VmRSS $rss_a kB (idle before load $idle_a kB)," \
    "VmHWM $hwm_a kB, of which RssAnon $anon_a kB (the rest: file pages of the binary and libraries)"
echo "sidecar B (callee): $cb vCPU per 1,000 rps; VmRSS $rss_b kB (idle before load $idle_b kB)," \
    "VmHWM $hwm_b kB, of which RssAnon $anon_b kB"
echo
echo "vs Dapr's published figures (ratio = Dapr / trellis; target >= 10):"
awk -v a90="$add90" -v a99="$add99" -v ca="$ca" -v cb="$cb" -v ra="$hwm_a" -v rb="$hwm_b" '
    function ratio(dapr, ours) { return ours > 0 ? sprintf("%.1fx", dapr / ours) : "n/a (<= 0)" }
    function cmax(x, y) { return x > y ? x : y }
    BEGIN {
        cpu = cmax(ca, cb); mem = cmax(ra, rb) / 1000
        printf "  added p90   %8.3f ms  vs 1.40 ms   %s\n", a90 / 1000, ratio(1.40, a90 / 1000)
        printf "  added p99   %8.3f ms  vs 2.10 ms   %s\n", a99 / 1000, ratio(2.10, a99 / 1000)
        printf "  CPU/sidecar %8.4f vCPU vs 0.48 vCPU %s (the busier sidecar)\n", cpu, ratio(0.48, cpu)
        printf "  RSS/sidecar %8.1f MB  vs 23 MB     %s (the larger VmHWM)\n", mem, ratio(23, mem)
    }'
exit "$status"
