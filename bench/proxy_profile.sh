#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-request cost of `trellis proxy` in figures that do not depend on how busy the
# machine is: user-space instructions (callgrind), system calls (strace -c) and user +
# kernel instructions and system calls (perf stat, when the kernel lets us count them).
#
#   bench/proxy_profile.sh [build-dir] [--size BYTES] [--requests N] [--conns C]
#                          [--tool callgrind|strace|perf|all] [--proxy trellis|haproxy|nginx]
#
# Starts two `trellis echo` upstreams, the proxy in front of them (one worker), sends
# 2,000 warm-up requests, then exactly N keep-alive GET requests over C connections
# (bench/lib/proxy_clients.py count: each connection sends its next request when the
# previous answer is in, no pipelining) while the tool counts, and prints the counts
# divided by N. `--proxy haproxy|nginx` measures those instead (strace and perf only),
# configured as in bench/proxy_vs_nginx_haproxy.sh. perf also reports cycles and context
# switches: those, unlike the counts, move with whatever else runs on the machine. How
# many epoll_wait calls a request shares depends on how fast the proxy is relative to
# the client; with --conns 1 every count is exact (two epoll_wait per request).
#
# The proxy is pinned to PROXY_CPU (0), the upstreams and the client to CLIENT_CPU (1),
# as in the comparison benchmark.
#
# Environment: TRELLIS_BIN, NGINX=/usr/sbin/nginx HAPROXY=/usr/sbin/haproxy, PROXY_CPU,
# CLIENT_CPU.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=build
size=100
requests=20000
conns=1
tool=all
proxy=trellis
while (($#)); do
    case $1 in
    --size) size=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --tool) tool=$2; shift 2 ;;
    --proxy) proxy=$2; shift 2 ;;
    -h | --help) sed -n '3,24p' "$0"; exit 0 ;;
    *) build_dir=$1; shift ;;
    esac
done
TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
NGINX=${NGINX:-/usr/sbin/nginx}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
PY=/usr/bin/python3
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLIENT=$here/lib/proxy_clients.py

die() {
    echo "proxy_profile: $*" >&2
    exit 1
}
[[ -x $TRELLIS_BIN ]] || die "trellis binary not found at $TRELLIS_BIN"
case $tool in callgrind | strace | perf | all) ;; *) die "unknown tool $tool" ;; esac
case $proxy in trellis | haproxy | nginx) ;; *) die "unknown proxy $proxy" ;; esac
[[ $proxy == trellis || $tool != callgrind ]] || die "callgrind is for trellis only"
[[ $tool != callgrind && $tool != all ]] || [[ $proxy != trellis ]] ||
    command -v callgrind_control >/dev/null || die "valgrind not found (apt-get install valgrind)"
[[ $tool != strace && $tool != all ]] || command -v strace >/dev/null ||
    die "strace not found (apt-get install strace)"
[[ $tool != perf && $tool != all ]] || command -v perf >/dev/null ||
    die "perf not found (apt-get install linux-perf)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trellis-proxy-profile.XXXXXX")
pids=()
cleanup() {
    set +e
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

log_port() { # log -> port from a "listening on 127.0.0.1:PORT" line, waiting for it
    local i p
    for ((i = 0; i < 300; i++)); do
        p=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$1" | head -n1)
        [[ -n $p ]] && { echo "$p"; return 0; }
        sleep 0.1
    done
    cat "$1" >&2
    die "no listening line in $1"
}

wait_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing accepts connections on port $1"
}

ups=()
for i in 1 2; do
    taskset -c "$CLIENT_CPU" "$TRELLIS_BIN" echo --listen 127.0.0.1:0 --workers 1 \
        --body-size "$size" 2>"$tmp/up$i.log" &
    pids+=($!)
    ups+=("$(log_port "$tmp/up$i.log")")
done

# The pid whose threads do the proxying, and how to start the proxy under a wrapper.
start_proxy() { # wrapper...
    case $proxy in
    trellis)
        taskset -c "$PROXY_CPU" "$@" "$TRELLIS_BIN" proxy --listen 127.0.0.1:0 --workers 1 \
            --to "127.0.0.1:${ups[0]},127.0.0.1:${ups[1]}" 2>"$tmp/proxy.log" &
        ppid=$!
        pids+=("$ppid")
        port=$(log_port "$tmp/proxy.log")
        ;;
    haproxy)
        port=$(free_port)
        cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$port
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:${ups[0]}
    server s2 127.0.0.1:${ups[1]}
EOF
        taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$tmp/haproxy.cfg" >"$tmp/proxy.log" 2>&1 &
        ppid=$!
        pids+=("$ppid")
        wait_port "$port"
        ;;
    nginx)
        port=$(free_port)
        mkdir -p "$tmp/nginx/logs"
        local user_line=
        ((EUID == 0)) && user_line='user root;'
        cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
$user_line
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/cb;
    proxy_temp_path $tmp/nginx/p;
    fastcgi_temp_path $tmp/nginx/f;
    uwsgi_temp_path $tmp/nginx/u;
    scgi_temp_path $tmp/nginx/s;
    upstream echo {
        server 127.0.0.1:${ups[0]};
        server 127.0.0.1:${ups[1]};
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
        taskset -c "$PROXY_CPU" "$NGINX" -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" 2>"$tmp/proxy.log" &
        ppid=$!
        pids+=("$ppid")
        wait_port "$port"
        ;;
    esac
}

load() { # requests
    taskset -c "$CLIENT_CPU" "$PY" "$CLIENT" count "$port" "$1" "$conns" >"$tmp/load.json" || die "load failed"
    local n
    n=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["n"] if d["errors"] == 0 else -1)' "$tmp/load.json")
    ((n == $1)) || { cat "$tmp/load.json" >&2; die "expected $1 good answers"; }
}

stop_proxy() {
    kill -TERM "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
}

per() { awk -v a="$1" -v n="$requests" 'BEGIN { v = a / n; printf(v < 10 ? "%.3f" : "%.1f", v) }'; }

echo "== $proxy, ${size} B bodies, $requests requests over $conns keep-alive connection(s)"

if [[ $tool == callgrind || $tool == all ]] && [[ $proxy == trellis ]]; then
    start_proxy valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out.%p" -q
    load 2000
    callgrind_control -z "$ppid" >/dev/null
    load "$requests"
    callgrind_control -d "$ppid" >/dev/null
    stop_proxy
    dumps=("$tmp"/cg.out.*.1)
    dump=${dumps[0]}
    [[ -f $dump ]] || die "no callgrind dump"
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dump")
    echo "callgrind: $(per "$ir") user-space instructions (Ir) per request"
    if [[ -n ${PROFILE_KEEP:-} ]]; then
        cp "$dump" "$PROFILE_KEEP"
        echo "   dump kept as $PROFILE_KEEP (callgrind_annotate $PROFILE_KEEP)"
    fi
fi

if [[ $tool == strace || $tool == all ]]; then
    start_proxy
    load 2000
    strace -c -f -qq -o "$tmp/strace.txt" -p "$ppid" &
    spid=$!
    sleep 1
    load "$requests"
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    stop_proxy
    total=$(awk '$NF == "total" { print $4 }' "$tmp/strace.txt")
    echo "strace: $(per "$total") system calls per request"
    awk -v n="$requests" 'NR > 2 && $1 !~ /^-/ && $NF != "total" {
        calls = ($4 ~ /^[0-9]+$/) ? $4 : 0; name = $NF
        if (calls > 0) printf "   %-16s %8.3f\n", name, calls / n }' "$tmp/strace.txt"
fi

if [[ $tool == perf || $tool == all ]]; then
    # Instructions first; then, in a second run of the same load, system calls counted
    # by tracepoints (no ptrace slowdown, unlike strace; but the tracepoints cost kernel
    # instructions of their own, hence two runs) when the kernel exposes them.
    sc=(read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_ctl
        getsockopt clock_gettime)
    start_proxy
    load 2000
    measure() { # events
        perf stat -x, -e "$1" -p "$ppid" -o "$tmp/perf.txt" &
        spid=$!
        sleep 0.5
        load "$requests"
        kill -INT "$spid"
        wait "$spid" 2>/dev/null || true
    }
    count() { awk -F, -v e="$1" '$3 == e { print $1 }' "$tmp/perf.txt"; }
    measure instructions:u,instructions:k,cycles:u,cycles:k,page-faults,context-switches
    u=$(count instructions:u)
    k=$(count instructions:k)
    if [[ $u =~ ^[0-9]+$ && $k =~ ^[0-9]+$ ]]; then
        echo "perf: $(per "$u") user + $(per "$k") kernel instructions per request"
        echo "perf: $(per "$(count cycles:u)") user + $(per "$(count cycles:k)") kernel cycles per request (these depend on the machine's load)"
        echo "perf: $(per "$(count page-faults)") page faults, $(per "$(count context-switches)") context switches per request"
    else
        echo "perf: counters not available ($(tr '\n' ' ' <"$tmp/perf.txt"))"
    fi
    if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
        events=raw_syscalls:sys_enter
        for s in "${sc[@]}"; do events+=",syscalls:sys_enter_$s"; done
        measure "$events"
        echo "perf: $(per "$(count raw_syscalls:sys_enter)") system calls per request"
        for s in "${sc[@]}"; do
            c=$(count "syscalls:sys_enter_$s")
            [[ $c =~ ^[0-9]+$ ]] && ((c > 0)) && printf '   %-16s %8.3f\n' "$s" "$(per "$c")"
        done
    fi
    stop_proxy
fi
