#!/usr/bin/env bash
# Installs what is missing, builds the npm package and starts the test server
# serving the demo page (www/) and the package (pkg/). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build-pkg.sh
port=${DDP_DEMO_PORT:-3300}
cargo build -q -p ddp-test-server
echo
echo "demo: open http://127.0.0.1:$port/   (Ctrl-C to stop)"
exec ./target/debug/ddp-test-server --port "$port" --serve /=www --serve /pkg=pkg --serve /js-tests=tests/js
