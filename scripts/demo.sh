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
port=${DDP_DEMO_PORT:-3300}
cargo build -q -p ddp-test-server
echo
echo "demo: open http://127.0.0.1:$port/   (the Leptos example: http://127.0.0.1:$port/leptos/; Ctrl-C to stop)"
exec ./target/debug/ddp-test-server --port "$port" --serve /=www --serve /pkg=pkg --serve /js-tests=tests/js --serve /leptos=target/leptos-example
