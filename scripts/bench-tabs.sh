#!/usr/bin/env bash
# The shared socket's benchmark (tests/tabs_bench.rs; it prints figures and
# asserts nothing): the round trip of a call from a plain connection, from
# the leader of a group of tabs and from a follower, built optimised and
# run in headless Chromium against the test server. Writes its section of
# docs/benchmarks.md (between the "tabs-bench" markers). Run by
# scripts/bench.sh; alone it needs the tools scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=$(scripts/bench-wasm.sh "${DDP_BENCH_TABS_PORT:-3333}" tabs tabs_bench)
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
