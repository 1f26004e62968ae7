#!/usr/bin/env bash
# Benchmarks against the JavaScript DDP clients (they print figures and
# assert nothing): builds the release package, bundles ddp.js and simpleddp
# (minified, esbuild), starts the test server, runs every workload in one
# headless Chromium page and prints one table, saved to docs/benchmarks.md.
# BENCH_QUICK=1 runs small sizes and does not write the file.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build-pkg.sh
scripts/size-leptos.sh
mkdir -p target/bench-www
for e in ddpjs simpleddp; do
  node_modules/.bin/esbuild "tests/js/bench/$e-entry.js" --bundle --minify --format=iife \
    --outfile="target/bench-www/$e.min.js" --log-level=warning
done
port=${DDP_BENCH_PORT:-3330}
server_pid=$(SERVER_RELEASE=1 scripts/start-server.sh "$port")
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
DDP_TEST_PORT=$port node tests/js/bench/run.mjs
# The Leptos list (its own section of docs/benchmarks.md); BENCH_LEPTOS=0 skips it.
if [ "${BENCH_LEPTOS:-1}" = 1 ]; then scripts/bench-leptos.sh; fi
# A follower tab's call over the shared socket (its own section); BENCH_TABS=0 skips it.
if [ "${BENCH_TABS:-1}" = 1 ]; then scripts/bench-tabs.sh; fi
# The durable cache (its own section of docs/benchmarks.md); BENCH_CACHE=0 skips it.
if [ "${BENCH_CACHE:-1}" = 1 ]; then scripts/bench-cache.sh; fi
