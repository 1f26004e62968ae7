#!/usr/bin/env bash
# Builds the two Leptos apps of the size row "what ddp-live adds to a Leptos
# app" (issue 23; `.size-limit.json`, checked by scripts/size-check.mjs):
# the CSR example app (examples/leptos-todos) and a Leptos counter without
# ddp-live (examples/leptos-counter), each the way an app ships it (cargo-
# leptos's release build: the release profile, LTO, then wasm-bindgen and
# wasm-opt -Oz), into target/leptos-size/<app>/. Their gzipped difference is
# what ddp-live (and the example's own UI) adds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir=${CARGO_TARGET_DIR:-target}
out=target/leptos-size
rm -rf "$out"
for app in leptos-counter leptos-todos; do
  cargo build --quiet --release --target wasm32-unknown-unknown --example "$app" --features leptos,leptos/csr,persist,tabs
  wasm-bindgen --target web --no-typescript --out-dir "$out/$app" --out-name app "$target_dir/wasm32-unknown-unknown/release/examples/$app.wasm"
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-reference-types --enable-multivalue --strip-debug --strip-producers "$out/$app/app_bg.wasm" -o "$out/$app/app_bg.wasm"
  echo "size-leptos: $app $(gzip -9 -c "$out/$app/app_bg.wasm" | wc -c) B gzipped wasm + $(gzip -9 -c "$out/$app/app.js" | wc -c) B glue"
done
