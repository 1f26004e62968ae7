#!/usr/bin/env bash
# Builds the Leptos example app (examples/leptos-todos, client-side
# rendering) to WebAssembly with cargo and wasm-bindgen-cli, into
# target/leptos-example/ (index.html + pkg/). The test server serves it at
# /leptos/ (scripts/start-server.sh, scripts/demo.sh).
# EXAMPLE_RELEASE=1 builds it optimised (slower to build, far smaller).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=debug
flags=()
if [ "${EXAMPLE_RELEASE:-0}" = 1 ]; then profile=release; flags=(--release); fi
cargo build --target wasm32-unknown-unknown --example leptos-todos --features leptos,leptos/csr,persist,tabs "${flags[@]}"
out=target/leptos-example
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" --out-name leptos_todos \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$profile/examples/leptos-todos.wasm"
cp examples/leptos-todos/index.html "$out/"
echo "built $out ($(du -h "$out/pkg/leptos_todos_bg.wasm" | cut -f1) of wasm)"
