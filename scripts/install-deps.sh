#!/usr/bin/env bash
# Installs exactly the Debian packages Trellis needs to build, test and benchmark.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
    # build
    cmake ninja-build gcc clang pkg-config
    libuv1-dev node-llhttp libjansson-dev libyaml-dev libsqlite3-dev libssl-dev
    # sanitizers and fuzzing (clang's runtime)
    libclang-rt-14-dev
    # tests
    libcmocka-dev python3 python3-pytest python3-requests curl procps
    # Consul-compatibility tests: a Python client library and a real discovery client (vmagent)
    python3-consul victoria-metrics
    # benchmarks
    nginx-light haproxy wrk util-linux etcd-server etcd-client strace nats-server libnats-dev
    # per-request cost counts (bench/proxy_profile.sh)
    valgrind linux-perf
)

# Node.js and npm run the npm `consul` client (tests/integration/test_consul_npm.py). The
# machine image may ship them from elsewhere than Debian; add Debian's only when absent, so
# an existing Node.js is not replaced.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
