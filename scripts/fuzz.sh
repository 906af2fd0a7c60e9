#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
# Runs every libFuzzer binary BUILD_DIR/fuzz/fuzz_<name> for SECONDS on a scratch copy of
# its committed corpus fuzz/corpus/<name>/ (so what the run adds stays out of the tree),
# with fuzz/<name>.dict or fuzz/http.dict for HTTP targets. Fails if any target finds a
# crash, leak, timeout or OOM, and prints the reproducer to add to the corpus:
#   cp <reproducer> fuzz/corpus/<name>/    (after minimising with -minimize_crash=1)
# Logs and new corpus files stay in BUILD_DIR/fuzz-runs/<name>/.
set -u
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
seconds=$2
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no fuzz_* binaries in $build/fuzz (build with -DTRELLIS_FUZZ=ON)" >&2
    exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for bin in "${targets[@]}"; do
    [ -x "$bin" ] || continue
    target=$(basename "$bin")
    name=${target#fuzz_}
    run="$build/fuzz-runs/$name"
    rm -rf "$run"
    mkdir -p "$run/corpus" "$run/artifacts"
    if [ -d "fuzz/corpus/$name" ]; then
        cp -r "fuzz/corpus/$name/." "$run/corpus/"
    fi
    dict=()
    if [ -f "fuzz/$name.dict" ]; then
        dict=(-dict="fuzz/$name.dict")
    elif [[ $name == http* ]]; then
        dict=(-dict=fuzz/http.dict)
    fi
    echo "== $target for ${seconds}s (log: $run/fuzz.log)"
    "$bin" "$run/corpus" "${dict[@]}" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$run/artifacts/" \
        >"$run/fuzz.log" 2>&1
    rc=$?
    # The last status line and the final stats: execs/s, coverage, corpus size.
    grep -E '^#[0-9]+' "$run/fuzz.log" | tail -1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$run/fuzz.log"
    found=("$run"/artifacts/*)
    if [ "$rc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
        status=1
        echo "fuzz: $target FAILED (exit $rc); the end of its log:" >&2
        tail -40 "$run/fuzz.log" >&2
        for f in "${found[@]}"; do
            echo "fuzz: reproducer: $f" >&2
            echo "fuzz:   replay:   $bin $f" >&2
            echo "fuzz:   minimise: $bin -minimize_crash=1 -runs=10000 $f" >&2
        done
    else
        echo "fuzz: $target ok; corpus grew from $(find "fuzz/corpus/$name" -type f 2>/dev/null |
            wc -l) to $(find "$run/corpus" -type f | wc -l) files (left in $run/corpus)"
    fi
done
exit $status
