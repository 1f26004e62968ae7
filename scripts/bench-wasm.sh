#!/usr/bin/env bash
# Runs one wasm benchmark (a tests/*_bench.rs that prints table rows
# prefixed `BENCH|` and asserts nothing): `bench-wasm.sh PORT FEATURES TEST`
# starts the test server (release) on PORT, builds TEST optimised with the
# cargo FEATURES and runs it in headless Chromium against it. Its output
# goes to stderr; the rows (without the prefix) to stdout. Used by the
# scripts that own a section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
port=$1
features=$2
test=$3
server_pid=$(SERVER_RELEASE=1 scripts/start-server.sh "$port")
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
log=$(mktemp)
# Optimised as a release build, without LTO (the figures are the code's,
# and LTO over Leptos takes minutes on 2 cores).
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_PANIC=unwind \
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)} \
DDP_TEST_SERVER="127.0.0.1:$port" WASM_BINDGEN_TEST_TIMEOUT=600 \
  wasm-pack test --headless --chrome --release --mode no-install -- --features "$features" --test "$test" -- --nocapture 2>&1 | tee "$log" >&2
rows=$(sed -n 's/.*BENCH|\(|.*\)$/\1/p' "$log")
[ -n "$rows" ] || { echo "no figures printed" >&2; exit 1; }
printf '%s\n' "$rows"
