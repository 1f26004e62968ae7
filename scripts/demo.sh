#!/usr/bin/env bash
# Installs what is missing, builds the npm package and starts the test server
# serving the demo page (www/), the package (pkg/) and the Leptos example app
# (/leptos/). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build-pkg.sh
scripts/build-example.sh
scripts/build-ssr-example.sh
port=${DDP_DEMO_PORT:-3300}
ssr_port=${DDP_DEMO_SSR_PORT:-3301}
cargo build -q -p ddp-test-server
# The SSR example's server, beside the test server (stopped with it).
DDP_SERVER="ws://127.0.0.1:$port" SSR_ADDR="127.0.0.1:$ssr_port" ./target/debug/leptos-ssr-example &
ssr_pid=$!
trap 'kill "$ssr_pid" 2>/dev/null || true' EXIT
echo
echo "demo: open http://127.0.0.1:$port/   (offline-first, in two tabs: http://127.0.0.1:$port/?offline=1;"
echo "      the Leptos example: http://127.0.0.1:$port/leptos/,"
echo "      the Leptos SSR example: http://127.0.0.1:$ssr_port/; Ctrl-C to stop)"
./target/debug/ddp-test-server --port "$port" --serve /=www --serve /pkg=pkg --serve /js-tests=tests/js --serve /leptos=target/leptos-example
