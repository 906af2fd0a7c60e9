#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every benchmark in bench/ in turn (`make bench` calls `bench/run-all.sh build`).
#
# Usage: bench/run-all.sh [BUILD_DIR]
#   BUILD_DIR   directory holding the trellis binary (default: build). It is exported as
#               TRELLIS_BIN=BUILD_DIR/trellis unless TRELLIS_BIN is already set, and also
#               passed as the first argument to each script.
# Every script runs even if an earlier one fails; the exit status is 1 if any failed.
# Environment knobs of the individual scripts (ROUNDS, DURATION, ...) pass through.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=${1:-build}
export TRELLIS_BIN=${TRELLIS_BIN:-$build_dir/trellis}
if [[ ! -x $TRELLIS_BIN ]]; then
    echo "run-all: trellis binary not found at $TRELLIS_BIN (build it first: make build)" >&2
    exit 1
fi
# Scripts resolve the binary themselves; make it absolute so their cwd does not matter.
TRELLIS_BIN=$(cd "$(dirname "$TRELLIS_BIN")" && pwd)/$(basename "$TRELLIS_BIN")

python=/usr/bin/python3
[[ -x $python ]] || python=python3

failed=()
for script in "$here"/*.sh "$here"/*.py; do
    [[ -e $script && $script != "$here/run-all.sh" ]] || continue
    name=$(basename "$script")
    echo "=============== $name ==============="
    rc=0
    case $script in
    *.py) "$python" "$script" "$build_dir" || rc=$? ;;
    *) bash "$script" "$build_dir" || rc=$? ;;
    esac
    if ((rc != 0)); then
        echo "run-all: $name failed (exit $rc)" >&2
        failed+=("$name")
    fi
    echo
done

if ((${#failed[@]} > 0)); then
    echo "run-all: failed: ${failed[*]}" >&2
    exit 1
fi
echo "run-all: all benchmarks ran"
