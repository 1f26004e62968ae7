#!/usr/bin/env bash
# The shared socket's benchmark (tests/tabs_bench.rs; it prints figures and
# asserts nothing): the round trip of a call from a plain connection, from
# the leader of a group of tabs and from a follower, built optimised and
# run in headless Chromium against the test server. Writes its section of
# docs/benchmarks.md (between the "tabs-bench" markers). Run by
# scripts/bench.sh; alone it needs the tools scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
port=${DDP_BENCH_TABS_PORT:-3332}
server_pid=$(SERVER_RELEASE=1 scripts/start-server.sh "$port")
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
log=$(mktemp)
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_PANIC=unwind \
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)} \
DDP_TEST_SERVER="127.0.0.1:$port" WASM_BINDGEN_TEST_TIMEOUT=600 \
  wasm-pack test --headless --chrome --release --mode no-install -- --features tabs --test tabs_bench -- --nocapture 2>&1 | tee "$log"
rows=$(sed -n 's/.*BENCH|\(|.*\)$/\1/p' "$log")
[ -n "$rows" ] || { echo "no figures printed" >&2; exit 1; }
part=$(mktemp)
cat > "$part" <<MD
<!-- tabs-bench -->
## One socket for every tab: what a follower's call costs

Produced by \`scripts/bench-tabs.sh\` (\`tests/tabs_bench.rs\`, optimised, headless Chromium, the test server on loopback; $(date -u +%Y-%m-%d)). 300 sequential calls of \`add\` (after 20 to warm up), each timed from \`call\` to its result. The leader and the follower are two members of one group in the same page (\`Options::share_across_tabs\`): the follower's call crosses a real BroadcastChannel twice, but not the process boundary between two tabs; the failover figure of real tabs is in the README ("One socket for every tab").

| caller | round trip (median) | p95 | over a plain connection (median) |
| --- | --- | --- | --- |
$rows
<!-- /tabs-bench -->
MD
cat "$part"
scripts/bench-section.sh tabs-bench "$part"
