#!/usr/bin/env bash
# Builds and starts the test server in the background on $1 (port), serving
# the demo page, the npm package, the JS test page and the Leptos example
# (/leptos/, once scripts/build-example.sh built it). Prints its PID.
# Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
port=${1:?port}
# SERVER_RELEASE=1 (the benchmarks): an optimised server, so the clients and
# not the server bound the figures.
if [ "${SERVER_RELEASE:-0}" = 1 ]; then
  cargo build -q --release -p ddp-test-server >&2
  bin=${CARGO_TARGET_DIR:-./target}/release/ddp-test-server
else
  cargo build -q -p ddp-test-server >&2
  bin=${CARGO_TARGET_DIR:-./target}/debug/ddp-test-server
fi
log=${TMPDIR:-/tmp}/ddp-test-server-$port.log
$bin --port "$port" \
  --serve /=www --serve /pkg=pkg --serve /js-tests=tests/js --serve /bench-www=target/bench-www --serve /leptos=target/leptos-example >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if grep -q "listening" "$log" 2>/dev/null; then echo "$pid"; exit 0; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.1
done
echo "the test server did not start; its log:" >&2; cat "$log" >&2; exit 1
