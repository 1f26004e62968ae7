#!/usr/bin/env bash
# Runs every test: installs what is missing, checks the house rules
# (scripts/check.sh: fmt, clippy, docs; the run stops if they fail), starts
# the test server, runs the native tests (the browser end-to-end scenarios
# among them, natively against that server and the Meteor fixture), the
# browser tests (wasm-pack test in headless Chromium) and the
# JavaScript-surface tests of the built npm package, then stops the server
# and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh

port=${DDP_TEST_PORT:-3310}
logdir=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

step() { printf '\n\033[1;34m== %s ==\033[0m\n' "$*"; }

step "house rules (scripts/check.sh: fmt, clippy native + wasm32, docs)"
scripts/check.sh

step "test server on port $port"
server_pid=$(scripts/start-server.sh "$port")
echo "pid $server_pid"

# The browser end-to-end scenarios (tests/{lifecycle,methods,…}.rs) run
# natively in this step, against the server just started (DDP_TEST_SERVER),
# and against Meteor's own servers when the fixtures are beside the
# repository; one cargo run, so nothing runs twice or is built twice.
step "native tests (protocol core, test server, docs, the native host end to end, and the browser e2e scenarios natively)"
DDP_TEST_SERVER="127.0.0.1:$port" \
  cargo test --workspace --features ddp-live/js,ddp-live/js-full,ddp-live/native 2>&1 | tee "$logdir/native.log"

step "native tests with the leptos feature (the Leptos bridge)"
cargo test -p ddp-live --features leptos --lib leptos 2>&1 | tee "$logdir/leptos.log"

step "doc examples with the leptos feature (the Leptos hooks' examples compile)"
cargo test -p ddp-live --features leptos --doc 2>&1 | tee "$logdir/leptos-doc.log"

step "the Leptos hooks and doc examples with the ssr feature (server rendering)"
cargo test -p ddp-live --features ssr --lib leptos 2>&1 | tee "$logdir/ssr.log"
cargo test -p ddp-live --features ssr --doc leptos 2>&1 | tee "$logdir/ssr-doc.log"

step "the crate and the npm package publish clean (cargo publish --dry-run, npm pack --dry-run)"
cargo publish --dry-run --allow-dirty -p ddp-live 2>&1 | tail -n 3

step "npm package (wasm-pack build)"
scripts/build-pkg.sh

step "the Leptos apps of the size row (scripts/size-leptos.sh: the example app and a counter, release)"
scripts/size-leptos.sh

step "package size budget (.size-limit.json)"
node scripts/size-check.mjs 2>&1 | tee "$logdir/size.log"
(cd pkg && npm pack --dry-run 2>&1 | tail -n 4)

step "Leptos example app (scripts/build-example.sh)"
scripts/build-example.sh

step "Leptos SSR example (scripts/build-ssr-example.sh: plain cargo + wasm-bindgen CLI)"
scripts/build-ssr-example.sh

step "the native command line example against the test server"
cargo run -q --features native --example ddp -- "ws://127.0.0.1:$port/websocket" --sub items '[3]' --call add '[2,3]' --once \
  | tee "$logdir/cli.log"
grep -qx 'add → 5' "$logdir/cli.log" && grep -qx 'added items item-2' "$logdir/cli.log" && grep -qx 'items ready' "$logdir/cli.log" \
  || { echo "the ddp example did not print what it should" >&2; exit 1; }

step "browser tests (wasm-pack test --headless --chrome; the durable outbox over IndexedDB and one socket for every tab with --features persist,tabs)"
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)} \
DDP_TEST_SERVER="127.0.0.1:$port" \
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300} \
  wasm-pack test --headless --chrome --mode no-install -- --features persist,tabs --test lifecycle --test methods --test subscriptions --test rooms --test accounts --test queries --test resumption --test persist --test tabs 2>&1 | tee "$logdir/browser.log"

step "Leptos hooks in the browser (wasm-pack test --features leptos,leptos/csr)"
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)} \
DDP_TEST_SERVER="127.0.0.1:$port" \
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300} \
  wasm-pack test --headless --chrome --mode no-install -- --features leptos,leptos/csr --test leptos 2>&1 | tee "$logdir/leptos-browser.log"

step "JavaScript surface of the npm package and the Leptos example (node --test, playwright-core + Chromium)"
DDP_TEST_PORT=$port node --test --test-reporter=spec --test-timeout=120000 tests/js/ 2>&1 | tee "$logdir/js.log"

passed=0; failed=0
for f in "$logdir"/native.log "$logdir"/leptos.log "$logdir"/leptos-doc.log "$logdir"/ssr.log "$logdir"/ssr-doc.log "$logdir"/browser.log "$logdir"/leptos-browser.log; do
  while read -r p q; do passed=$((passed + p)); failed=$((failed + q)); done < <(
    sed -n 's/.*test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$f")
done
js_pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$logdir/js.log" | tail -n1)
js_fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$logdir/js.log" | tail -n1)
passed=$((passed + ${js_pass:-0})); failed=$((failed + ${js_fail:-0}))
# The size budget counts as one test (the step above already stopped the run if it failed).
passed=$((passed + 1))
echo
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
