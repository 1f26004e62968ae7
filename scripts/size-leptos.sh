#!/usr/bin/env bash
# Builds the Leptos apps of the size rows "what ddp-live adds to a Leptos
# app" (issue 23; `.size-limit.json`, checked by scripts/size-check.mjs):
# the CSR example app (examples/leptos-todos), the smallest ddp-live app
# (examples/leptos-live-list) and a Leptos counter without
# ddp-live (examples/leptos-counter), each the way an app ships it (cargo-
# leptos's release build: the release profile, LTO, then wasm-bindgen and
# wasm-opt -Oz), into target/leptos-size/<app>/. An app's gzipped size minus
# the counter's is what ddp-live (and that app's own UI) adds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir=${CARGO_TARGET_DIR:-target}
out=target/leptos-size
rm -rf "$out"
# The example app uses the offline features (persist, tabs); the live-list
# probe (examples/leptos-live-list: status, one live list, one call) none.
for app in leptos-counter leptos-live-list leptos-todos; do
  features=leptos,leptos/csr,persist,tabs
  [ "$app" = leptos-live-list ] && features=leptos,leptos/csr
  cargo build --quiet --release --target wasm32-unknown-unknown --example "$app" --features "$features"
  wasm-bindgen --target web --no-typescript --out-dir "$out/$app" --out-name app "$target_dir/wasm32-unknown-unknown/release/examples/$app.wasm"
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-reference-types --enable-multivalue --strip-debug --strip-producers "$out/$app/app_bg.wasm" -o "$out/$app/app_bg.wasm"
  echo "size-leptos: $app $(gzip -9 -c "$out/$app/app_bg.wasm" | wc -c) B gzipped wasm + $(gzip -9 -c "$out/$app/app.js" | wc -c) B glue"
done
