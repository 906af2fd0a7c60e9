#!/usr/bin/env bash
# Fails on banned calls in project sources: unbounded string functions, and raw
# allocation outside src/core/mem.c (everything else goes through tr_xmalloc & co).
set -u
cd "$(dirname "$0")/.."
status=0
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|gets)\s*\('
if grep -rnE "$banned" src include fuzz tests/unit --include='*.c' --include='*.h'; then
    echo "lint: banned string function (use snprintf/tr_buf)" >&2
    status=1
fi
if grep -rnE '(^|[^_a-z])(malloc|calloc|realloc)\s*\(' src --include='*.c' | grep -v '^src/core/mem.c:'; then
    echo "lint: raw allocation outside src/core/mem.c (use tr_xmalloc)" >&2
    status=1
fi
exit $status
