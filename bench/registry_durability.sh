#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Acknowledged-durable writes per second: `trellis server` vs etcd, side by side in one run.
#
# Both servers run at the same time, each with its own fresh data dir, both pinned to core 0
# (SERVER_CPU); the load generator, wrk with bench/registry_put.lua, is pinned to core 1
# (CLIENT_CPU). Every wrk connection is one sequential client writing distinct keys with
# VALUE_BYTES-byte values: trellis gets `PUT /v1/kv/<key>` (Consul KV API, acknowledged with
# `true` once the SQLite WAL commit is fsynced), etcd gets `POST /v3/kv/put` on its HTTP/JSON
# gateway (acknowledged once the raft entry is in its fsynced WAL; etcd's default). Only 200
# answers that acknowledge the write count. For each client count (1 and 64) the servers
# alternate, ROUNDS times, DURATION seconds each; the median per server is reported with
# the trellis/etcd ratio and wrk's p50/p99 latency.
#
# Before measuring, durability is checked on both: one write is traced with strace to show
# that an fdatasync/fsync completes between reading the request and sending the 200, and a
# STRACE_SECONDS burst at 1 and at 64 clients counts fsync-class syscalls per acknowledged
# write. After every run the keys stored under that run's prefix are counted (must be >= the
# acknowledged writes); at the end both servers are killed with SIGKILL, restarted on the
# same data dirs, and every run's keys are counted again.
#
# Usage: bench/registry_durability.sh [BUILD_DIR]
#   BUILD_DIR      directory holding the trellis binary (default: build); TRELLIS_BIN wins
# Environment:
#   TRELLIS_BIN    path to trellis (default: BUILD_DIR/trellis)
#   DURATION=10 (seconds per run) ROUNDS=3 CLIENTS="1 64" VALUE_BYTES=100 WARMUP=2
#   KEYS=sequential|scattered (key order, see bench/registry_put.lua; with scattered keys the
#        stored-key checks compare totals over the whole store instead of per run)
#   STRACE_SECONDS=2 (0 skips the fsync count) TRELLIS_WORKERS=1 SERVER_CPU=0 CLIENT_CPU=1
#   ETCD=etcd WRK=wrk DATA_ROOT=${TMPDIR:-/tmp} (must be a real disk: fsync on tmpfs is a no-op)
#   CONTENDED_PCT=10  flag a run when core SERVER_CPU was busier than the server by more points
# Exits non-zero when the benchmark cannot run or a server loses or rejects acknowledged
# writes, never because trellis is slower than etcd.
set -euo pipefail

usage() {
    awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"
}

build_dir=build
while (($# > 0)); do
    case $1 in
    -h | --help) usage; exit 0 ;;
    -*) echo "registry_durability: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) build_dir=$1; shift ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
lua=$here/registry_put.lua
TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 64"}
VALUE_BYTES=${VALUE_BYTES:-100}
KEYS=${KEYS:-sequential}
WARMUP=${WARMUP:-2}
STRACE_SECONDS=${STRACE_SECONDS:-2}
TRELLIS_WORKERS=${TRELLIS_WORKERS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ETCD=${ETCD:-etcd}
WRK=${WRK:-wrk}
DATA_ROOT=${DATA_ROOT:-${TMPDIR:-/tmp}}
CONTENDED_PCT=${CONTENDED_PCT:-10}

die() {
    echo "registry_durability: $*" >&2
    exit 1
}

[[ -x $TRELLIS_BIN ]] || die "trellis binary not found at $TRELLIS_BIN (pass the build dir or set TRELLIS_BIN)"
[[ -r $lua ]] || die "missing $lua"
command -v "$ETCD" >/dev/null || die "etcd not found (apt-get install etcd-server, or set ETCD)"
command -v "$WRK" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"
if ((STRACE_SECONDS > 0)); then
    command -v strace >/dev/null || die "strace not found (apt-get install strace, or STRACE_SECONDS=0)"
fi
for n in "$DURATION" "$ROUNDS" "$VALUE_BYTES" "$WARMUP" "$STRACE_SECONDS" "$TRELLIS_WORKERS" \
    "$SERVER_CPU" "$CLIENT_CPU" "$CONTENDED_PCT"; do
    [[ $n =~ ^[0-9]+$ ]] || die "DURATION, ROUNDS, VALUE_BYTES, WARMUP, STRACE_SECONDS, TRELLIS_WORKERS, SERVER_CPU, CLIENT_CPU, CONTENDED_PCT must be integers"
done
[[ $KEYS == sequential || $KEYS == scattered ]] || die "KEYS must be sequential or scattered, got \"$KEYS\""
for c in $CLIENTS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be positive integers, got \"$c\""
done
((ROUNDS >= 1 && DURATION >= 1 && TRELLIS_WORKERS >= 1)) || die "ROUNDS, DURATION and TRELLIS_WORKERS must be >= 1"
ncpu=$(nproc --all)
((SERVER_CPU < ncpu && CLIENT_CPU < ncpu)) || die "need CPUs $SERVER_CPU and $CLIENT_CPU, have $ncpu"
((SERVER_CPU != CLIENT_CPU)) || echo "registry_durability: warning: servers and wrk share CPU $SERVER_CPU" >&2

CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$DATA_ROOT"
tmp=$(mktemp -d "$DATA_ROOT/trellis-durability.XXXXXX")
fstype=$(df --output=fstype "$tmp" | tail -n1)
case $fstype in
tmpfs | ramfs) die "DATA_ROOT $DATA_ROOT is $fstype: fsync is a no-op there, use a directory on disk" ;;
esac
trellis_pid='' etcd_pid=''
trellis_port='' etcd_port='' etcd_peer_port=''

# shellcheck disable=SC2317 # called from the EXIT trap
stop_pid() { # pid: SIGTERM, wait up to 10 s, then SIGKILL
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    stop_pid "$trellis_pid"
    stop_pid "$etcd_pid"
    if [[ -n ${KEEP_TMP:-} ]]; then
        echo "registry_durability: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cpu_ticks() { # pid -> utime+stime of the process (all its threads)
    local stat
    local -a fields
    stat=$(<"/proc/$1/stat") || die "process $1 vanished"
    stat=${stat##*) }
    read -r -a fields <<<"$stat"
    echo $((fields[11] + fields[12]))
}

core_busy_ticks() { # cpu -> busy ticks of that core (everything but idle and iowait)
    local label user nice system irq softirq steal rest
    while read -r label user nice system _ _ irq softirq steal rest; do
        if [[ $label == "cpu$1" ]]; then
            echo $((user + nice + system + irq + softirq + steal))
            return
        fi
    done </proc/stat
    die "cpu$1 not in /proc/stat"
}

b64() { printf '%s' "$1" | base64 -w0; }

start_trellis() {
    local log=$tmp/trellis.log i
    touch "$log"
    taskset -c "$SERVER_CPU" "$TRELLIS_BIN" server --listen "127.0.0.1:${trellis_port:-0}" \
        --data-dir "$tmp/trellis-data" --workers "$TRELLIS_WORKERS" 2>>"$log" &
    trellis_pid=$!
    if [[ -z $trellis_port ]]; then
        for ((i = 0; i < 100; i++)); do
            trellis_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
            [[ -n $trellis_port ]] && break
            kill -0 "$trellis_pid" 2>/dev/null || { cat "$log" >&2; die "trellis exited during startup"; }
            sleep 0.1
        done
        [[ -n $trellis_port ]] || { cat "$log" >&2; die "trellis did not log its listening address"; }
    fi
    # A restart replays the whole data dir, which takes a while after a long run.
    for ((i = 0; i < 3000; i++)); do
        kill -0 "$trellis_pid" 2>/dev/null || { cat "$log" >&2; die "trellis exited during startup"; }
        curl -sf -o /dev/null "http://127.0.0.1:$trellis_port/v1/status/leader" && return 0
        sleep 0.1
    done
    cat "$log" >&2
    die "trellis does not answer on port $trellis_port"
}

start_etcd() {
    local log=$tmp/etcd.log i
    if [[ -z $etcd_port ]]; then
        etcd_port=$(free_port)
        etcd_peer_port=$(free_port)
    fi
    # Defaults otherwise: snapshot-count, quotas, and the WAL fsync on every commit.
    taskset -c "$SERVER_CPU" "$ETCD" --name bench --data-dir "$tmp/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$etcd_peer_port" >>"$log" 2>&1 &
    etcd_pid=$!
    for ((i = 0; i < 3000; i++)); do
        kill -0 "$etcd_pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "etcd exited during startup"; }
        curl -sf -o /dev/null "http://127.0.0.1:$etcd_port/health" && return 0
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "etcd does not answer on port $etcd_port"
}

stored_keys() { # server prefix -> number of keys stored under prefix/ (prefix "": all keys)
    local out path=$2/
    [[ -z $2 ]] && path=
    if [[ $1 == trellis ]]; then
        local code
        code=$(curl -s -o "$tmp/keys.json" -w '%{http_code}' "http://127.0.0.1:$trellis_port/v1/kv/$path?keys") ||
            die "trellis: cannot list $2/"
        case $code in
        404) echo 0 ;; # Consul answers 404 when nothing is under the prefix
        200) python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' <"$tmp/keys.json" ||
            die "trellis: cannot parse the key list of $2/" ;;
        *) die "trellis: listing $2/ answered $code" ;;
        esac
    else
        local range="{\"key\":\"AA==\",\"range_end\":\"AA==\",\"count_only\":true}" # every key
        [[ -n $2 ]] && range="{\"key\":\"$(b64 "$2/")\",\"range_end\":\"$(b64 "${2}0")\",\"count_only\":true}"
        out=$(curl -sf -X POST -H 'Content-Type: application/json' -d "$range" \
            "http://127.0.0.1:$etcd_port/v3/kv/range") || die "etcd: cannot count $2/"
        python3 -c 'import json, sys; print(int(json.load(sys.stdin).get("count", 0)))' <<<"$out" ||
            die "etcd: cannot parse the count of $2/"
    fi
}

server_port() { if [[ $1 == trellis ]]; then echo "$trellis_port"; else echo "$etcd_port"; fi; }
server_pid() { if [[ $1 == trellis ]]; then echo "$trellis_pid"; else echo "$etcd_pid"; fi; }

# wrk_run server clients seconds prefix -> sets w_ok w_bad w_p50 w_p99 w_secs; log in $tmp/wrk.out
wrk_run() {
    local server=$1 c=$2 secs=$3 prefix=$4 out=$tmp/wrk.out rc=0 line
    taskset -c "$CLIENT_CPU" "$WRK" -t1 -c"$c" -d"${secs}s" --timeout 10s --latency -s "$lua" \
        "http://127.0.0.1:$(server_port "$server")" -- "$server" "$prefix" "$VALUE_BYTES" "$KEYS" >"$out" 2>&1 || rc=$?
    {
        echo "### $server c=$c ${secs}s prefix=$prefix"
        cat "$out"
    } >>"$tmp/wrk-all.log"
    ((rc == 0)) || { cat "$out" >&2; die "$server: wrk failed (exit $rc)"; }
    line=$(grep '^RESULT ' "$out") || { cat "$out" >&2; die "$server: no RESULT line from wrk"; }
    w_ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    w_bad=$(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        END { printf "%d", v["bad_status"] + v["bad_body"] + v["sock_errors"] }' <<<"$line")
    w_badtxt=$(awk '{ print $3, $4, $5 }' <<<"$line")
    w_p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line")
    w_p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")
    w_secs=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$line")
    w_secs=$(awk -v u="$w_secs" 'BEGIN { printf "%.3f", u / 1e6 }')
    acked_all[$server]=$((acked_all[$server] + w_ok))
    kill -0 "$(server_pid "$server")" 2>/dev/null || die "$server died during the run (see $tmp)"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

declare -A acked_all=([trellis]=0 [etcd]=0) # every acknowledged write so far
failures=0
fail() {
    echo "   FAIL: $*"
    failures=$((failures + 1))
}

# One write traced: an fsync-class call must complete between the request and the 200.
check_order() { # server
    local server=$1 pid port key trace=$tmp/order-$1.strace sp verdict
    pid=$(server_pid "$server") port=$(server_port "$server")
    key=ordercheck-$RANDOM$RANDOM
    strace -f -tt -s 512 -e trace=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,fsync,fdatasync,sync_file_range \
        -p "$pid" -o "$trace" 2>/dev/null &
    sp=$!
    sleep 1
    if [[ $server == trellis ]]; then
        curl -sf -o /dev/null -X PUT --data-binary x "http://127.0.0.1:$port/v1/kv/$key" || die "trellis: ordering probe failed"
    else
        curl -sf -o /dev/null -X POST -d "{\"key\":\"$(b64 "$key")\",\"value\":\"eA==\"}" \
            "http://127.0.0.1:$port/v3/kv/put" || die "etcd: ordering probe failed"
    fi
    acked_all[$server]=$((acked_all[$server] + 1))
    sleep 0.5
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    [[ $server == etcd ]] && key=$(b64 "$key")
    verdict=$(awk -v key="$key" '
        !req && index($0, key) && /(read|recv)/ { req = NR; next }
        req && !ack && /(fsync|fdatasync|sync_file_range)/ && /= 0$/ { n++ }
        req && !ack && /HTTP\/1\.1 200/ { ack = NR }
        END {
            if (!req) print "request not seen";
            else if (!ack) print "200 not seen";
            else print n " fsync-class call(s) completed between request and 200"
        }' "$trace")
    echo "   $server: one traced write: $verdict"
    [[ $verdict == [1-9]*"between request and 200" ]] || fail "$server: no fsync completed before the write was acknowledged"
}

# fsync-class syscalls per acknowledged write during a short burst
count_fsyncs() { # server clients
    local server=$1 c=$2 pid out=$tmp/fsync-$1-$2.strace sp calls
    pid=$(server_pid "$server")
    strace -f -c -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync -p "$pid" -o "$out" 2>/dev/null &
    sp=$!
    sleep 1
    wrk_run "$server" "$c" "$STRACE_SECONDS" "strace-c$c"
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    calls=$(awk '$NF == "total" { print $4 }' "$out")
    calls=${calls:-0}
    local detail
    detail=$(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { printf "%s%s=%s", sep, $NF, $4; sep = " " }' "$out")
    printf '   %-7s c=%-3s %7d writes acknowledged (under strace), %6d fsync-class calls (%s) = %s per write\n' \
        "$server" "$c" "$w_ok" "$calls" "${detail:-none}" "$(awk -v f="$calls" -v w="$w_ok" 'BEGIN { if (w) printf "%.3f", f / w; else print "n/a" }')"
    ((w_bad == 0)) || fail "$server c=$c: $w_bad bad answers under strace ($w_badtxt)"
    ((calls > 0)) || fail "$server: no fsync-class syscalls while writing: not durable?"
}

etcd_version=$("$ETCD" --version 2>/dev/null | sed -n 's/^etcd Version: //p')
echo "== registry write durability: trellis server vs etcd, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(($(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024)) MiB, kernel $(uname -r)"
echo "   data dirs: $tmp ($fstype on $(df -P "$tmp" | awk 'NR == 2 { print $1 }'))"
echo "   trellis: $TRELLIS_BIN ($("$TRELLIS_BIN" --version 2>/dev/null | head -n1 || echo '?')) server --workers $TRELLIS_WORKERS"
echo "   etcd:    $ETCD $etcd_version, single node, default settings (WAL fsync per commit)"
echo "   wrk:     $("$WRK" -v 2>&1 | head -n1 | cut -d' ' -f1-2) -t1 -cN -d${DURATION}s --timeout 10s --latency -s bench/registry_put.lua"
echo "   servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; clients: $CLIENTS; $ROUNDS rounds x ${DURATION}s per server and client count; values ${VALUE_BYTES} B; keys $KEYS"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

start_trellis
start_etcd
echo "   trellis pid $trellis_pid port $trellis_port; etcd pid $etcd_pid port $etcd_port"

if ((STRACE_SECONDS > 0)); then
    echo
    echo "-- durability check (strace)"
    check_order trellis
    check_order etcd
    for c in $CLIENTS; do
        count_fsyncs trellis "$c"
        count_fsyncs etcd "$c"
    done
fi

if ((WARMUP > 0)); then
    for server in trellis etcd; do
        wrk_run "$server" 64 "$WARMUP" warmup
    done
fi

declare -A acked=() # prefix -> acknowledged writes, for the post-crash check
summary=()
contended=0
total_runs=0
for c in $CLIENTS; do
    echo
    echo "-- $c concurrent client(s)"
    printf '   %-5s %-7s %9s %10s %9s %9s %9s %9s %9s  %s\n' round server acked writes/s \
        p50-ms p99-ms cpu-us/w "core${SERVER_CPU}%" stored notes
    t_wps=() e_wps=() t_p50=() e_p50=() t_p99=() e_p99=()
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order="trellis etcd"; else order="etcd trellis"; fi
        for server in $order; do
            prefix=r${round}c$c
            pid=$(server_pid "$server")
            c0=$(cpu_ticks "$pid")
            k0=$(core_busy_ticks "$SERVER_CPU")
            wrk_run "$server" "$c" "$DURATION" "$prefix"
            c1=$(cpu_ticks "$pid")
            k1=$(core_busy_ticks "$SERVER_CPU")
            total_runs=$((total_runs + 1))
            notes=
            wps=$(awk -v n="$w_ok" -v s="$w_secs" 'BEGIN { printf "%.1f", n / s }')
            cpu_us=$(((c1 - c0) * 1000000 / CLK_TCK))
            per_w=$(awk -v c="$cpu_us" -v n="$w_ok" 'BEGIN { if (n) printf "%.1f", c / n; else print "n/a" }')
            util=$(awk -v c="$cpu_us" -v d="$w_secs" 'BEGIN { printf "%.0f", c / (d * 10000) }')
            core=$(awk -v k="$(((k1 - k0) * 1000000 / CLK_TCK))" -v d="$w_secs" 'BEGIN { printf "%.0f", k / (d * 10000) }')
            if ((core - util > CONTENDED_PCT)); then
                notes+=" contended(cpu$SERVER_CPU +$((core - util))%)"
                contended=$((contended + 1))
            fi
            ((w_bad == 0)) || { notes+=" errors($w_badtxt)"; fail "$server c=$c round $round: $w_badtxt"; }
            if [[ $KEYS == sequential ]]; then
                stored=$(stored_keys "$server" "$prefix")
                acked[$server/$prefix]=$w_ok
                ((stored >= w_ok)) || { notes+=" LOST"; fail "$server c=$c round $round: $w_ok acknowledged but only $stored stored"; }
            else # whole store: every write acknowledged so far
                stored=$(stored_keys "$server" "")
                ((stored >= acked_all[$server])) || { notes+=" LOST"; fail "$server c=$c round $round: ${acked_all[$server]} acknowledged in all, only $stored stored"; }
            fi
            printf '   %-5s %-7s %9d %10s %9s %9s %9s %9s %9d %s\n' "$round" "$server" "$w_ok" \
                "$(fmt "$wps" '%.0f')" "$(ms "$w_p50")" "$(ms "$w_p99")" "$per_w" "$core" "$stored" "$notes"
            if [[ $server == trellis ]]; then
                t_wps+=("$wps") t_p50+=("$w_p50") t_p99+=("$w_p99")
            else
                e_wps+=("$wps") e_p50+=("$w_p50") e_p99+=("$w_p99")
            fi
        done
    done
    tm=$(median "${t_wps[@]}") em=$(median "${e_wps[@]}")
    summary+=("$(printf '| %7s | %13s | %13s | %7s | %15s | %15s |' "$c" "$(fmt "$tm" '%.0f')" \
        "$(fmt "$em" '%.0f')" "$(ratio "$tm" "$em")" \
        "$(ms "$(median "${t_p50[@]}")") / $(ms "$(median "${t_p99[@]}")")" \
        "$(ms "$(median "${e_p50[@]}")") / $(ms "$(median "${e_p99[@]}")")")")
    verdict+=("$c client(s): trellis/etcd = $(ratio "$tm" "$em") -> $(awk -v a="$tm" -v b="$em" 'BEGIN { print (a >= b) ? "trellis >= etcd (target met)" : "trellis SLOWER than etcd (target missed)" }')")
done

echo
echo "-- crash check: SIGKILL both servers, restart on the same data dirs, recount every run's keys"
{
    kill -KILL "$trellis_pid" "$etcd_pid" || true
    wait "$trellis_pid" || true
    wait "$etcd_pid" || true
} 2>/dev/null # no "Killed" job notices
t0=$(date +%s.%N)
start_trellis
t1=$(date +%s.%N)
start_etcd
t2=$(date +%s.%N)
echo "   restart until serving: trellis $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, etcd $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }') s"
lost=0
for server in trellis etcd; do
    stored=$(stored_keys "$server" "")
    echo "   $server: ${acked_all[$server]} writes acknowledged in the whole run, $stored keys present after restart"
    ((stored >= acked_all[$server])) || { fail "$server: acknowledged writes missing after kill -9 + restart"; lost=$((lost + 1)); }
done
for k in "${!acked[@]}"; do
    server=${k%%/*} prefix=${k#*/}
    stored=$(stored_keys "$server" "$prefix")
    if ((stored < acked[$k])); then
        fail "$server $prefix: ${acked[$k]} acknowledged, $stored present after kill -9 + restart"
        lost=$((lost + 1))
    fi
done
((lost == 0 && ${#acked[@]} > 0)) && echo "   all ${#acked[@]} runs: every acknowledged key present after kill -9 and restart (both servers)"

echo
echo "== medians over $ROUNDS rounds of ${DURATION}s (acknowledged-durable writes/s: higher is better)"
echo
echo "| clients | trellis w/s   |    etcd w/s   | t/e     | trellis p50/p99 ms | etcd p50/p99 ms |"
echo "|--------:|--------------:|--------------:|--------:|----------------:|----------------:|"
printf '%s\n' "${summary[@]}"
echo
printf '%s\n' "${verdict[@]}"
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((contended > 0)); then
    echo "note: in $contended of $total_runs runs CPU $SERVER_CPU was busy >${CONTENDED_PCT} points beyond the"
    echo "      measured server's own CPU (other processes ran there); such runs are noisier."
fi
if grep -Eq '"level":"(error|warn)"' "$tmp/trellis.log"; then
    echo "warning: errors logged by trellis:"
    grep -E '"level":"(error|warn)"' "$tmp/trellis.log" | head -n5 | sed 's/^/     /'
fi
if ((failures > 0)); then
    echo "registry_durability: $failures failure(s), see above (wrk output: KEEP_TMP=1 keeps $tmp)" >&2
    exit 1
fi
exit 0
