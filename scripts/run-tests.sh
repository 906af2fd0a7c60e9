#!/usr/bin/env bash
# Runs ctest in each build directory given and ends with one summary line that counts
# every test across them ("N passed, N failed").
set -u
passed=0
failed=0
for dir in "$@"; do
    echo "== ctest in $dir"
    log=$(mktemp)
    (cd "$dir" && ctest --output-on-failure -j "$(nproc)" 2>&1) | tee "$log"
    total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
    fails=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ -z "$total" ]; then
        echo "ctest in $dir produced no summary" >&2
        failed=$((failed + 1))
    else
        passed=$((passed + total - fails))
        failed=$((failed + fails))
    fi
    rm -f "$log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
