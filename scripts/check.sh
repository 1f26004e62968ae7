#!/usr/bin/env bash
# The house rules, checked by tools (about a minute once built; scripts/test.sh
# runs it first and stops if it fails):
#   - formatting (rustfmt.toml),
#   - clippy with -D warnings ([workspace.lints] in Cargo.toml, the size
#     rules in clippy.toml), natively and for wasm32, with every feature a
#     build uses (js: the npm package; leptos, leptos/csr: the example and
#     the Leptos browser tests; native: the tokio host, natively only),
#   - the docs build with -D warnings (broken links, bad examples' markup).
# The doc examples themselves are compiled by `cargo test --doc` (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# clippy, rustfmt and the wasm32 target are installed by scripts/setup.sh.
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1 \
   || ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "check: clippy, rustfmt or the wasm32 target is missing: run scripts/setup.sh" >&2
  exit 1
fi

step() { printf '\n\033[1;34m== check: %s ==\033[0m\n' "$*"; }
start=$SECONDS

step "cargo fmt --check"
cargo fmt --all --check

step "clippy, native (every target, features js + js-full + leptos + native + persist + tabs)"
cargo clippy --workspace --all-targets --features ddp-live/js,ddp-live/js-full,ddp-live/leptos,ddp-live/native,ddp-live/persist,ddp-live/tabs -- -D warnings

step "clippy, the library alone natively (no feature; leptos alone): nothing unused hides behind a feature"
cargo clippy -p ddp-live --lib -- -D warnings
cargo clippy -p ddp-live --lib --features leptos -- -D warnings

step "clippy, wasm32 (every target, features js + js-full + leptos + leptos/csr + persist + tabs)"
cargo clippy -p ddp-live --all-targets --target wasm32-unknown-unknown --features js,js-full,leptos,leptos/csr,persist,tabs -- -D warnings
# The npm package's core alone (feature js): the build it ships.
cargo clippy -p ddp-live --lib --target wasm32-unknown-unknown --features js -- -D warnings

step "clippy, Leptos SSR: the server (native, ssr) and the browser (wasm32, hydrate) of examples/leptos-ssr"
cargo clippy -p ddp-live -p leptos-ssr-example --all-targets --features ddp-live/ssr,leptos-ssr-example/ssr -- -D warnings
cargo clippy -p leptos-ssr-example --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features ddp-live/js,ddp-live/js-full,ddp-live/leptos,ddp-live/native,ddp-live/persist,ddp-live/tabs,ddp-live/ssr

echo
echo "check: all passed in $((SECONDS - start)) s"
