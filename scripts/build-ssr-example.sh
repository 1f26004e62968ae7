#!/usr/bin/env bash
# Builds the Leptos SSR example (examples/leptos-ssr) with plain cargo and
# the wasm-bindgen CLI (the version Cargo.lock names; scripts/setup.sh
# installs it), into the layout cargo-leptos would make:
#   target/debug/leptos-ssr-example       the server (feature ssr)
#   target/leptos-ssr/pkg/leptos_ssr.js   the browser's entry (feature hydrate)
#   target/leptos-ssr/pkg/leptos_ssr_bg.wasm
# Not cargo-leptos: it would be one more tool to build on every fresh CI
# machine (several hundred crates, minutes on two cores) for what two
# cargo commands and the CLI we already install do. The example keeps
# cargo-leptos's settings in its Cargo.toml, so `cargo leptos watch` works too.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --target wasm32-unknown-unknown -p leptos-ssr-example --lib --features hydrate
out=target/leptos-ssr
rm -rf "$out/pkg"
mkdir -p "$out/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" --out-name leptos_ssr \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/debug/leptos_ssr_example.wasm"
cargo build -p leptos-ssr-example --bin leptos-ssr-example --features ssr
echo "built $out ($(du -h "$out/pkg/leptos_ssr_bg.wasm" | cut -f1) of wasm) and target/debug/leptos-ssr-example"
