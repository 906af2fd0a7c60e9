#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `trellis echo` vs nginx 1.22 under wrk, side by side in one run.
#
# Both servers run at the same time, each pinned to core 0 (SERVER_CPU); wrk is pinned
# to core 1 (CLIENT_CPU). Rounds are interleaved (trellis/nginx, then nginx/trellis, ...)
# so drift on the machine hits both alike. For every round the server's CPU time
# (utime+stime from /proc/PID/stat, all threads; for nginx master+workers) is read
# before and after wrk and divided by the number of requests wrk completed.
#
# Usage: bench/echo_vs_nginx.sh [BUILD_DIR] [--body-size BYTES] [--sizes "100 16384"]
#   BUILD_DIR      directory holding the trellis binary (default: build); TRELLIS_BIN wins
# Environment:
#   TRELLIS_BIN    path to trellis (default: BUILD_DIR/trellis)
#   ROUNDS=5 DURATION=5 (seconds per round) CONNECTIONS=32 WARMUP=2 (seconds, per server)
#   SERVER_CPU=0 CLIENT_CPU=1 NGINX=/usr/sbin/nginx WRK=wrk
#   CONTENDED_PCT=10  flag a round when CPU 0 was busier than the server by more points
#
# nginx runs with daemon off and master_process ON (master + 1 worker, as deployed);
# the CPU of both processes is summed. keepalive_requests is raised to 1000000 so that
# neither server closes the benchmark's keep-alive connections (nginx's default is 1000).
# Exits non-zero only when the benchmark cannot run (missing tool, server crash, ...),
# never because trellis misses a target.
set -euo pipefail

usage() {
    awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"
}

build_dir=build
sizes=100
while (($# > 0)); do
    case $1 in
    --body-size) sizes=${2:?--body-size needs a value}; shift 2 ;;
    --body-size=*) sizes=${1#*=}; shift ;;
    --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
    --sizes=*) sizes=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "echo_vs_nginx: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) build_dir=$1; shift ;;
    esac
done

TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}
CONTENDED_PCT=${CONTENDED_PCT:-10}

die() {
    echo "echo_vs_nginx: $*" >&2
    exit 1
}

[[ -x $TRELLIS_BIN ]] || die "trellis binary not found at $TRELLIS_BIN (pass the build dir or set TRELLIS_BIN)"
[[ -x $NGINX ]] || die "nginx not found at $NGINX (apt-get install nginx-light, or set NGINX)"
command -v "$WRK" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
for n in "$ROUNDS" "$DURATION" "$CONNECTIONS" "$WARMUP" "$SERVER_CPU" "$CLIENT_CPU" "$CONTENDED_PCT"; do
    [[ $n =~ ^[0-9]+$ ]] || die "ROUNDS, DURATION, CONNECTIONS, WARMUP, SERVER_CPU, CLIENT_CPU, CONTENDED_PCT must be integers"
done
((ROUNDS >= 1 && DURATION >= 1)) || die "ROUNDS and DURATION must be >= 1"
for s in $sizes; do
    [[ $s =~ ^[0-9]+$ ]] || die "body sizes are plain byte counts, got \"$s\""
done
ncpu=$(nproc --all)
((SERVER_CPU < ncpu && CLIENT_CPU < ncpu)) || die "need CPUs $SERVER_CPU and $CLIENT_CPU, have $ncpu"
((SERVER_CPU != CLIENT_CPU)) || echo "echo_vs_nginx: warning: server and wrk share CPU $SERVER_CPU" >&2

CLK_TCK=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench.XXXXXX")
trellis_pid=
nginx_pid=

stop_pid() { # pid: SIGTERM, wait up to 5 s, then SIGKILL
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_servers() {
    stop_pid "$trellis_pid"
    trellis_pid=
    if [[ -n $nginx_pid ]]; then
        local kids
        kids=$(child_pids "$nginx_pid")
        stop_pid "$nginx_pid"
        local k
        for k in $kids; do stop_pid "$k"; done
    fi
    nginx_pid=
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    # Runs from the EXIT trap, possibly after a signal: never stop half-way.
    # (Inside a trap a bare `return` reports the status of the command the signal
    # interrupted, so every function here returns explicitly.)
    set +e
    trap '' INT TERM
    stop_servers
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nginx_pids() { # master and workers
    echo "$nginx_pid"
    child_pids "$nginx_pid"
}

child_pids() { # pid -> its direct children
    if command -v pgrep >/dev/null; then
        pgrep -P "$1" || true
        return 0
    fi
    local f stat
    for f in /proc/[0-9]*/stat; do
        stat=$(<"$f") 2>/dev/null || continue
        stat=${stat##*) }
        read -r -a fields <<<"$stat"
        [[ ${fields[1]} == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

cpu_ticks() { # pid... -> utime+stime summed over the processes (all their threads)
    local total=0 pid stat
    local -a fields
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid vanished"
        stat=${stat##*) } # comm may contain spaces; fields restart after ") "
        read -r -a fields <<<"$stat"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

core_busy_ticks() { # cpu -> busy ticks of that core (everything but idle and iowait)
    local label user nice system irq softirq steal rest
    while read -r label user nice system _ _ irq softirq steal rest; do
        if [[ $label == "cpu$1" ]]; then
            echo $((user + nice + system + irq + softirq + steal))
            return 0
        fi
    done </proc/stat
    die "cpu$1 not in /proc/stat"
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return 0
    fi
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

wait_port() { # port pid log
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "server exited during startup"; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$3" >&2
    die "server did not accept connections on port $1"
}

start_trellis() { # size
    local log=$tmp/trellis-$1.log i
    taskset -c "$SERVER_CPU" "$TRELLIS_BIN" echo --listen 127.0.0.1:0 --workers 1 \
        --body-size "$1" 2>"$log" &
    trellis_pid=$!
    trellis_port=
    for ((i = 0; i < 100; i++)); do
        trellis_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
        [[ -n $trellis_port ]] && break
        kill -0 "$trellis_pid" 2>/dev/null || { cat "$log" >&2; die "trellis exited during startup"; }
        sleep 0.1
    done
    [[ -n $trellis_port ]] || { cat "$log" >&2; die "trellis did not log its listening address"; }
    wait_port "$trellis_port" "$trellis_pid" "$log"
}

start_nginx() { # size
    local size=$1 dir=$tmp/nginx-$1 body ret i user_line=
    mkdir -p "$dir/logs"
    nginx_port=$(free_port)
    # The config parser rejects tokens over ~4 KiB, so a large body is assembled from
    # constant 2 KiB map values; that costs nginx one copy of the body per request.
    local -a maps=()
    if ((size <= 3072)); then
        ret="return 200 \"$(head -c "$size" /dev/zero | tr '\0' x)\";"
    else
        ret='return 200 "'
        for ((i = 0; i * 2048 < size; i++)); do
            local n=$((size - i * 2048))
            ((n > 2048)) && n=2048
            body=$(head -c "$n" /dev/zero | tr '\0' x)
            maps+=("    map \"\" \$bench_body_$i { default \"$body\"; }")
            ret+="\$bench_body_$i"
        done
        ret+='";'
    fi
    # With master_process on, a root master would drop the worker to "nobody".
    ((EUID == 0)) && user_line='user root;'
    {
        echo 'daemon off;'
        echo 'master_process on;'
        echo 'worker_processes 1;'
        echo "$user_line"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log notice;"
        echo 'events { worker_connections 1024; }'
        echo 'http {'
        echo '    access_log off;'
        echo '    default_type text/plain;'
        echo '    keepalive_requests 1000000;'
        echo "    client_body_temp_path $dir/client_body;"
        echo "    proxy_temp_path $dir/proxy;"
        echo "    fastcgi_temp_path $dir/fastcgi;"
        echo "    uwsgi_temp_path $dir/uwsgi;"
        echo "    scgi_temp_path $dir/scgi;"
        if ((${#maps[@]} > 0)); then printf '%s\n' "${maps[@]}"; fi
        echo '    server {'
        echo "        listen 127.0.0.1:$nginx_port;"
        echo "        location / { $ret }"
        echo '    }'
        echo '}'
    } >"$dir/nginx.conf"
    taskset -c "$SERVER_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
        2>"$dir/stderr.log" &
    nginx_pid=$!
    wait_port "$nginx_port" "$nginx_pid" "$dir/error.log"
    for ((i = 0; i < 50; i++)); do
        [[ -n $(child_pids "$nginx_pid") ]] && break
        sleep 0.1
    done
    [[ -n $(child_pids "$nginx_pid") ]] || die "nginx worker did not start"
}

check_body() { # port size name: one request, checks status and body length
    local resp
    # shellcheck disable=SC2016 # $0 is expanded by the inner bash
    resp=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" &&
        printf "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" >&3 &&
        cat <&3' "$1") || die "$3: request failed"
    [[ $resp == "HTTP/1.1 200"* ]] || die "$3: unexpected response: ${resp%%$'\r'*}"
    local body=${resp#*$'\r\n\r\n'}
    ((${#body} == $2)) || die "$3: body is ${#body} bytes, expected $2"
}

# run_wrk name port pids... ; sets: r_reqs r_rps r_cpu_us r_core_us r_lat50 r_lat99 r_errs
run_wrk() {
    local name=$1 port=$2 out=$tmp/wrk.out
    shift 2
    local c0 c1 k0 k1 rc=0
    c0=$(cpu_ticks "$@")
    k0=$(core_busy_ticks "$SERVER_CPU")
    taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        "http://127.0.0.1:$port/" >"$out" 2>&1 || rc=$?
    c1=$(cpu_ticks "$@")
    k1=$(core_busy_ticks "$SERVER_CPU")
    cat "$out" >>"$tmp/wrk-all.log"
    ((rc == 0)) || { cat "$out" >&2; die "$name: wrk failed (exit $rc)"; }
    r_reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$out")
    r_rps=$(sed -n 's/^Requests\/sec: *\([0-9.][0-9.]*\).*/\1/p' "$out")
    r_lat50=$(awk '$1 == "50%" { print $2 }' "$out")
    r_lat99=$(awk '$1 == "99%" { print $2 }' "$out")
    [[ -n $r_reqs && -n $r_rps ]] || { cat "$out" >&2; die "$name: cannot parse wrk output"; }
    ((r_reqs > 0)) || { cat "$out" >&2; die "$name: wrk completed no requests"; }
    r_errs=
    local non2xx sock
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
    sock=$(sed -n 's/^ *Socket errors: *//p' "$out")
    [[ -n $non2xx ]] && r_errs+=" non-2xx=$non2xx"
    [[ -n $sock ]] && r_errs+=" socket-errors($sock)"
    r_cpu_us=$(((c1 - c0) * 1000000 / CLK_TCK))
    r_core_us=$(((k1 - k0) * 1000000 / CLK_TCK))
    return 0
}

median() { # numbers... -> median
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== trellis echo vs nginx: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)"
echo "   trellis: $TRELLIS_BIN ($("$TRELLIS_BIN" --version 2>/dev/null | head -n1 || echo '?'))"
echo "   nginx:   $("$NGINX" -v 2>&1 | head -n1) (master_process on, 1 worker)"
echo "   wrk:     $({ "$WRK" -v 2>&1 || true; } | head -n1 | cut -d' ' -f1-2) -t1 -c$CONNECTIONS -d${DURATION}s --latency"
echo "   servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; $ROUNDS rounds x ${DURATION}s per server; sizes: $sizes"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

summary=()
verdict=()
paired=()
anomalies=0
contended=0
total_rounds=0
for size in $sizes; do
    start_trellis "$size"
    start_nginx "$size"
    check_body "$trellis_port" "$size" trellis
    check_body "$nginx_port" "$size" nginx
    echo
    echo "-- body $size bytes: trellis pid $trellis_pid port $trellis_port; nginx pids $(nginx_pids | tr "\n" " ")port $nginx_port"
    if ((WARMUP > 0)); then
        taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:$trellis_port/" >/dev/null
        taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "http://127.0.0.1:$nginx_port/" >/dev/null
    fi
    printf '   %-5s %-7s %10s %10s %9s %9s %9s %8s %8s  %s\n' round server requests req/s \
        cpu-us/req "srv-cpu%" "core${SERVER_CPU}%" p50 p99 notes
    t_rps=() t_cpu=() n_rps=() n_cpu=()
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order="trellis nginx"; else order="nginx trellis"; fi
        for server in $order; do
            if [[ $server == trellis ]]; then
                run_wrk trellis "$trellis_port" "$trellis_pid"
                kill -0 "$trellis_pid" 2>/dev/null || die "trellis died during round $round (see $tmp)"
            else
                # shellcheck disable=SC2046 # one argument per pid is intended
                run_wrk nginx "$nginx_port" $(nginx_pids)
                kill -0 "$nginx_pid" 2>/dev/null || die "nginx died during round $round"
            fi
            total_rounds=$((total_rounds + 1))
            per_req=$(awk -v c="$r_cpu_us" -v n="$r_reqs" 'BEGIN { printf "%.2f", c / n }')
            util=$(awk -v c="$r_cpu_us" -v d="$DURATION" 'BEGIN { printf "%.0f", c / (d * 10000) }')
            core=$(awk -v c="$r_core_us" -v d="$DURATION" 'BEGIN { printf "%.0f", c / (d * 10000) }')
            [[ -n $r_errs ]] && anomalies=$((anomalies + 1))
            # CPU 0 busy beyond the server itself: other processes competed with it.
            if ((core - util > CONTENDED_PCT)); then
                r_errs+=" contended(cpu$SERVER_CPU +$((core - util))%)"
                contended=$((contended + 1))
            fi
            printf '   %-5s %-7s %10s %10s %9s %9s %9s %8s %8s %s\n' "$round" "$server" "$r_reqs" \
                "$(fmt "$r_rps" '%.0f')" "$per_req" "$util" "$core" "$r_lat50" "$r_lat99" "$r_errs"
            if [[ $server == trellis ]]; then
                t_rps+=("$r_rps") t_cpu+=("$per_req")
            else
                n_rps+=("$r_rps") n_cpu+=("$per_req")
            fi
        done
    done
    for f in "$tmp/nginx-$size/error.log" "$tmp/trellis-$size.log"; do
        if grep -Eq '\[(alert|crit|emerg|error)\]|"level":"(error|warn)"' "$f"; then
            echo "   warning: errors logged in $(basename "$f"):"
            grep -E '\[(alert|crit|emerg|error)\]|"level":"(error|warn)"' "$f" | head -n5 | sed 's/^/     /'
            anomalies=$((anomalies + 1))
        fi
    done
    stop_servers
    tm_rps=$(median "${t_rps[@]}") tm_cpu=$(median "${t_cpu[@]}")
    nm_rps=$(median "${n_rps[@]}") nm_cpu=$(median "${n_cpu[@]}")
    # Paired view: trellis/nginx within each round (both measured back to back), so
    # drift between rounds cancels out; the median of those ratios.
    pairs=()
    for ((i = 0; i < ROUNDS; i++)); do
        pairs+=("$(ratio "${t_cpu[i]}" "${n_cpu[i]}")")
    done
    paired+=("body $size B: per-round CPU-us/request ratios trellis/nginx: ${pairs[*]} -> median $(median "${pairs[@]}")")
    summary+=("$(printf '| %7s | %14s | %14s | %8s | %14s | %14s | %8s |' "$size" \
        "$(fmt "$tm_rps" '%.0f')" "$(fmt "$nm_rps" '%.0f')" "$(ratio "$tm_rps" "$nm_rps")" \
        "$(fmt "$tm_cpu" '%.2f')" "$(fmt "$nm_cpu" '%.2f')" "$(ratio "$tm_cpu" "$nm_cpu")")")
    verdict+=("body $size B: trellis $(fmt "$tm_cpu" '%.2f') vs nginx $(fmt "$nm_cpu" '%.2f') CPU-us/request -> $(awk -v a="$tm_cpu" -v b="$nm_cpu" 'BEGIN { print (a <= b) ? "trellis <= nginx (target met)" : "trellis uses MORE CPU per request than nginx (target missed)" }')")
done

echo
echo "== medians over $ROUNDS rounds (req/s: higher is better; CPU-us/request: lower is better)"
echo
echo "| body, B | trellis req/s  |   nginx req/s  | t/n      | trellis CPU-us | nginx CPU-us   | t/n      |"
echo "|--------:|---------------:|---------------:|---------:|---------------:|---------------:|---------:|"
printf '%s\n' "${summary[@]}"
echo
printf '%s\n' "${paired[@]}"
printf '%s\n' "${verdict[@]}"
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
((anomalies == 0)) || echo "warning: $anomalies round(s)/log(s) with errors, see above"
if ((contended > 0)); then
    echo "note: in $contended of $total_rounds server-rounds CPU $SERVER_CPU was busy >${CONTENDED_PCT} points"
    echo "      beyond the server's own CPU (other processes ran there); such rounds are noisier."
fi
exit 0
