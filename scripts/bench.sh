#!/usr/bin/env bash
# Benchmarks (they print figures and assert nothing): subscribe → ready for
# 10k and 100k documents of ~200 bytes in headless Chromium, with the longest
# main-thread block and memory. BENCH_SIZES=1000,5000 to choose sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build-pkg.sh
port=${DDP_BENCH_PORT:-3330}
server_pid=$(scripts/start-server.sh "$port")
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
DDP_TEST_PORT=$port node tests/js/bench-subscribe.mjs
