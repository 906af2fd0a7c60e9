#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `trellis proxy` vs nginx 1.22 and HAProxy 2.6 as reverse proxies, side by side in one run.
#
# Each proxy runs one worker pinned to core 0 (PROXY_CPU) in front of the same two
# `trellis echo` upstreams, which run on core 1 (CLIENT_CPU) with the load generator.
# All three keep connections to the upstreams alive and balance round robin. For each
# response size (100 B and 16 KiB by default):
#   1. throughput: wrk -t1 -cCONNECTIONS for DURATION s per proxy, ROUNDS interleaved
#      rounds (the order rotates each round so drift hits all alike); the proxy's CPU
#      time (utime+stime from /proc/PID/stat, all threads; nginx master+worker) before
#      and after, divided by the requests wrk completed;
#   2. latency added: an open-loop client (bench/lib/proxy_clients.py, Python asyncio)
#      sends GET / at a fixed LAT_RATE requests/s over LAT_CONNS keep-alive connections
#      for LAT_SECONDS, straight to an upstream and then through each proxy (interleaved,
#      LAT_ROUNDS times); latency counts from each request's scheduled send time. The
#      table gives p50/p99 through the proxy minus the direct path's;
#   3. memory: VmRSS of the proxy (nginx: master+worker) idle after startup, its VmHWM
#      after the runs, and VmRSS while HOLD_CONNS keep-alive client connections, each
#      having made one request, are held open.
#
# Usage: bench/proxy_vs_nginx_haproxy.sh [BUILD_DIR] [--sizes "100 16384"]
# Environment: TRELLIS_BIN, ROUNDS=3 DURATION=5 CONNECTIONS=32 WARMUP=2 PROXY_CPU=0
#   CLIENT_CPU=1 LAT_RATE=2000 LAT_SECONDS=5 LAT_CONNS=16 LAT_ROUNDS=2 HOLD_CONNS=10000
#   NGINX=/usr/sbin/nginx HAPROXY=/usr/sbin/haproxy WRK=wrk
# Exits non-zero only when the benchmark cannot run, never because a target is missed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=build
sizes="100 16384"
while (($# > 0)); do
    case $1 in
    --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
    --sizes=*) sizes=${1#*=}; shift ;;
    -h | --help) awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"; exit 0 ;;
    -*) echo "proxy_vs_nginx_haproxy: unknown option $1" >&2; exit 2 ;;
    *) build_dir=$1; shift ;;
    esac
done

TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
LAT_RATE=${LAT_RATE:-2000}
LAT_SECONDS=${LAT_SECONDS:-5}
LAT_CONNS=${LAT_CONNS:-16}
LAT_ROUNDS=${LAT_ROUNDS:-2}
HOLD_CONNS=${HOLD_CONNS:-10000}
NGINX=${NGINX:-/usr/sbin/nginx}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
WRK=${WRK:-wrk}
PY=/usr/bin/python3
CLIENTS=$here/lib/proxy_clients.py

die() {
    echo "proxy_vs_nginx_haproxy: $*" >&2
    exit 1
}

[[ -x $TRELLIS_BIN ]] || die "trellis binary not found at $TRELLIS_BIN"
[[ -x $NGINX ]] || die "nginx not found at $NGINX (apt-get install nginx-light)"
[[ -x $HAPROXY ]] || die "haproxy not found at $HAPROXY (apt-get install haproxy)"
command -v "$WRK" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
[[ -x $PY ]] || die "$PY not found"
for s in $sizes; do [[ $s =~ ^[0-9]+$ ]] || die "sizes are byte counts, got \"$s\""; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
((NOFILE > HOLD_CONNS + 200)) || die "need more than $((HOLD_CONNS + 200)) open files, have $NOFILE"

CLK_TCK=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trellis-proxy-bench.XXXXXX")
pids=()

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    set +e
    trap '' INT TERM
    local p
    for p in "${pids[@]}"; do stop_pid "$p"; done
    pids=()
    rm -rf "$tmp"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port pid log
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "process exited during startup"; }
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$3" >&2
    die "nothing accepts connections on port $1"
}

children() { pgrep -P "$1" || true; }

cpu_ticks() { # pid... -> utime+stime summed
    local total=0 pid stat
    local -a f
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid vanished"
        stat=${stat##*) }
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

status_kib() { # field pid... -> sum of a /proc/PID/status field in KiB
    local field=$1 total=0 pid v
    shift
    for pid in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status")
        total=$((total + v))
    done
    echo "$total"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

start_upstream() { # size -> sets up_pid up_port
    local log=$tmp/upstream-$RANDOM.log i
    taskset -c "$CLIENT_CPU" "$TRELLIS_BIN" echo --listen 127.0.0.1:0 --workers 1 \
        --body-size "$1" 2>"$log" &
    up_pid=$!
    pids+=("$up_pid")
    up_port=
    for ((i = 0; i < 100; i++)); do
        up_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
        [[ -n $up_port ]] && break
        sleep 0.1
    done
    [[ -n $up_port ]] || { cat "$log" >&2; die "trellis echo did not start"; }
}

start_trellis() { # -> proxy pid(s) in t_pids, port in t_port
    local log=$tmp/trellis-proxy.log i
    taskset -c "$PROXY_CPU" "$TRELLIS_BIN" proxy --listen 127.0.0.1:0 --workers 1 \
        --to "127.0.0.1:$up1,127.0.0.1:$up2" 2>"$log" &
    t_pids=$!
    pids+=("$t_pids")
    t_port=
    for ((i = 0; i < 100; i++)); do
        t_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
        [[ -n $t_port ]] && break
        sleep 0.1
    done
    [[ -n $t_port ]] || { cat "$log" >&2; die "trellis proxy did not start"; }
    wait_port "$t_port" "$t_pids" "$log"
}

start_nginx() {
    local dir=$tmp/nginx i user_line=
    mkdir -p "$dir/logs"
    n_port=$(free_port)
    ((EUID == 0)) && user_line='user root;'
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
$user_line
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $((HOLD_CONNS + 500)); }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream echo {
        server 127.0.0.1:$up1;
        server 127.0.0.1:$up2;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$n_port;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    taskset -c "$PROXY_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
        2>"$dir/stderr.log" &
    local master=$!
    pids+=("$master")
    wait_port "$n_port" "$master" "$dir/error.log"
    for ((i = 0; i < 50; i++)); do
        [[ -n $(children "$master") ]] && break
        sleep 0.1
    done
    n_pids="$master $(children "$master" | tr '\n' ' ')"
}

# HAProxy sizes its fd table for two sockets per connection (maxsock = 2 x maxconn + a
# few) and refuses to start when the fd limit is lower, so with a 20,000 fd limit it can
# hold at most ~9,900 client connections; the hold test then uses that many for it.
h_maxconn=$(((NOFILE - 300) / 2))
((h_maxconn > HOLD_CONNS + 100)) && h_maxconn=$((HOLD_CONNS + 100))

start_haproxy() {
    local dir=$tmp/haproxy
    mkdir -p "$dir"
    h_port=$(free_port)
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $h_maxconn
    ulimit-n $NOFILE
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$h_port
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:$up1
    server s2 127.0.0.1:$up2
EOF
    taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/out.log" 2>&1 &
    h_pids=$!
    pids+=("$h_pids")
    wait_port "$h_port" "$h_pids" "$dir/out.log"
}

check() { # name port size
    local resp body
    # shellcheck disable=SC2016
    resp=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" &&
        printf "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" >&3 && cat <&3' "$2") ||
        die "$1: request failed"
    [[ $resp == "HTTP/1.1 200"* ]] || die "$1: unexpected response: ${resp%%$'\r'*}"
    body=${resp#*$'\r\n\r\n'}
    ((${#body} == $3)) || die "$1: body is ${#body} bytes, expected $3"
}

run_wrk() { # name port pids... -> r_reqs r_rps r_cpu_us r_note
    local name=$1 port=$2 out=$tmp/wrk.out c0 c1 rc=0
    shift 2
    c0=$(cpu_ticks "$@")
    taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/" \
        >"$out" 2>&1 || rc=$?
    c1=$(cpu_ticks "$@")
    ((rc == 0)) || { cat "$out" >&2; die "$name: wrk failed"; }
    r_reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$out")
    r_rps=$(sed -n 's/^Requests\/sec: *\([0-9.][0-9.]*\).*/\1/p' "$out")
    r_cpu_us=$(((c1 - c0) * 1000000 / CLK_TCK))
    r_note=$(sed -n 's/^ *\(Non-2xx or 3xx responses: *[0-9]*\|Socket errors:.*\)/\1/p' "$out" | tr '\n' ' ')
}

latency() { # port -> "p50 p99 errors"
    taskset -c "$CLIENT_CPU" "$PY" "$CLIENTS" latency "$1" "$LAT_RATE" "$LAT_SECONDS" "$LAT_CONNS" |
        "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(d["p50_us"], d["p99_us"], d["errors"], d["achieved_rps"])'
}

hold_rss() { # port count pids... -> VmRSS KiB while `count` connections are held
    local port=$1 count=$2 fifo=$tmp/hold.fifo line kib
    shift 2
    rm -f "$fifo"
    mkfifo "$fifo"
    taskset -c "$CLIENT_CPU" "$PY" "$CLIENTS" hold "$port" "$count" <"$fifo" >"$tmp/hold.out" &
    local hp=$!
    exec 4>"$fifo"
    for ((i = 0; i < 600; i++)); do
        line=$(cat "$tmp/hold.out")
        [[ -n $line ]] && break
        sleep 0.1
    done
    sleep 0.5
    kib=$(status_kib VmRSS "$@")
    exec 4>&-
    wait "$hp" 2>/dev/null || true
    echo "$kib ${line:-timeout}"
}

echo "== trellis proxy vs nginx vs HAProxy: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)"
echo "   trellis: $TRELLIS_BIN ($("$TRELLIS_BIN" --version 2>/dev/null | head -n1))"
echo "   nginx:   $("$NGINX" -v 2>&1 | head -n1) (master + 1 worker, upstream keepalive 256)"
echo "   haproxy: $("$HAPROXY" -v 2>&1 | head -n1 | cut -d' ' -f1-3) (nbthread 1, http-reuse always)"
echo "   proxies on CPU $PROXY_CPU; wrk, latency client and 2 trellis echo upstreams on CPU $CLIENT_CPU"
echo "   wrk -t1 -c$CONNECTIONS -d${DURATION}s x $ROUNDS rounds; open-loop $LAT_RATE req/s x ${LAT_SECONDS}s over $LAT_CONNS conns x $LAT_ROUNDS rounds; hold $HOLD_CONNS conns"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

thr_rows=()
lat_rows=()
mem_rows=()
for size in $sizes; do
    start_upstream "$size"
    up1=$up_port
    start_upstream "$size"
    up2=$up_port
    start_trellis
    start_nginx
    start_haproxy
    check trellis "$t_port" "$size"
    check nginx "$n_port" "$size"
    check haproxy "$h_port" "$size"
    check direct "$up1" "$size"
    # shellcheck disable=SC2086
    declare -A idle=([trellis]=$(status_kib VmRSS $t_pids) [nginx]=$(status_kib VmRSS $n_pids)
        [haproxy]=$(status_kib VmRSS $h_pids))
    declare -A port=([trellis]=$t_port [nginx]=$n_port [haproxy]=$h_port)
    declare -A ppids=([trellis]=$t_pids [nginx]=$n_pids [haproxy]=$h_pids)
    echo
    echo "-- response body $size B (upstreams on ports $up1, $up2)"
    if ((WARMUP > 0)); then
        for p in trellis nginx haproxy; do
            taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:${port[$p]}/" >/dev/null
        done
    fi
    printf '   %-5s %-8s %10s %10s %10s  %s\n' round proxy requests req/s cpu-us/req notes
    declare -A rps=() cpu=()
    orders=("trellis nginx haproxy" "nginx haproxy trellis" "haproxy trellis nginx")
    for ((round = 1; round <= ROUNDS; round++)); do
        for p in ${orders[$(((round - 1) % 3))]}; do
            # shellcheck disable=SC2086
            run_wrk "$p" "${port[$p]}" ${ppids[$p]}
            per=$(awk -v c="$r_cpu_us" -v n="$r_reqs" 'BEGIN { printf "%.2f", c / n }')
            printf '   %-5s %-8s %10s %10.0f %10s  %s\n' "$round" "$p" "$r_reqs" "$r_rps" "$per" "$r_note"
            rps[$p]+=" $r_rps"
            cpu[$p]+=" $per"
        done
    done
    # shellcheck disable=SC2086
    for p in trellis nginx haproxy; do
        thr_rows+=("$(printf '| %6s | %-8s | %9.0f | %6s | %8s | %6s |' "$size" "$p" \
            "$(median ${rps[$p]})" "$(ratio "$(median ${rps[$p]})" "$(median ${rps[haproxy]})")" \
            "$(median ${cpu[$p]})" "$(ratio "$(median ${cpu[$p]})" "$(median ${cpu[haproxy]})")")")
    done

    echo "   latency at $LAT_RATE req/s (open loop): p50/p99 in us"
    declare -A l50=() l99=()
    for ((round = 1; round <= LAT_ROUNDS; round++)); do
        for p in direct trellis nginx haproxy; do
            if [[ $p == direct ]]; then lp=$up1; else lp=${port[$p]}; fi
            read -r a b e ach <<<"$(latency "$lp")"
            printf '   %-5s %-8s p50 %6s p99 %6s errors %s achieved %s req/s\n' "$round" "$p" "$a" "$b" "$e" "$ach"
            l50[$p]+=" $a"
            l99[$p]+=" $b"
        done
    done
    # shellcheck disable=SC2086
    d50=$(median ${l50[direct]}) d99=$(median ${l99[direct]})
    for p in trellis nginx haproxy; do
        # shellcheck disable=SC2086
        m50=$(median ${l50[$p]}) m99=$(median ${l99[$p]})
        lat_rows+=("$(printf '| %6s | %-8s | %6.0f | %6.0f | %+7.0f | %+7.0f |' "$size" "$p" "$m50" "$m99" \
            "$(awk -v a="$m50" -v b="$d50" 'BEGIN { print a - b }')" \
            "$(awk -v a="$m99" -v b="$d99" 'BEGIN { print a - b }')")")
    done
    lat_rows+=("$(printf '| %6s | %-8s | %6.0f | %6.0f | %7s | %7s |' "$size" direct "$d50" "$d99" - -)")

    for p in trellis nginx haproxy; do
        # shellcheck disable=SC2086
        hwm=$(status_kib VmHWM ${ppids[$p]})
        # shellcheck disable=SC2086
        n=$HOLD_CONNS
        [[ $p == haproxy ]] && ((n > h_maxconn - 100)) && n=$((h_maxconn - 100))
        # shellcheck disable=SC2086
        read -r held what <<<"$(hold_rss "${port[$p]}" "$n" ${ppids[$p]})"
        mem_rows+=("$(printf '| %6s | %-8s | %8s | %8s | %8s | %s |' "$size" "$p" "$(mib "${idle[$p]}")" \
            "$(mib "$hwm")" "$(mib "$held")" "$what")")
    done
    for p in "${pids[@]}"; do stop_pid "$p"; done
    pids=()
done

echo
echo "== throughput and CPU (medians over $ROUNDS rounds; ratios against HAProxy)"
echo
echo "| body B | proxy    |     req/s | vs HAP | CPU-us/r | vs HAP |"
echo "|-------:|----------|----------:|-------:|---------:|-------:|"
printf '%s\n' "${thr_rows[@]}"
echo
echo "== latency at $LAT_RATE req/s, open loop (median of $LAT_ROUNDS rounds, microseconds)"
echo
echo "| body B | path     |    p50 |    p99 | p50 add | p99 add |"
echo "|-------:|----------|-------:|-------:|--------:|--------:|"
printf '%s\n' "${lat_rows[@]}"
echo
echo "== memory (MiB; nginx = master + worker)"
echo
echo "| body B | proxy    | RSS idle | peak RSS | RSS $HOLD_CONNS conns | client |"
echo "|-------:|----------|---------:|---------:|---------:|--------|"
printf '%s\n' "${mem_rows[@]}"
echo
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
