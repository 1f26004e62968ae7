#!/usr/bin/env bash
# The Leptos benchmark (tests/leptos_bench.rs; it prints figures and asserts
# nothing): a live list of 10k documents under 100 server-side changes,
# `use_collection` with a keyed <For> against rebuilding the list, built
# optimised and run in headless Chromium against the test server. Writes its
# section of docs/benchmarks.md (between the "leptos-bench" markers).
# Run by scripts/bench.sh; alone it needs the tools scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=$(scripts/bench-wasm.sh "${DDP_BENCH_LEPTOS_PORT:-3331}" leptos,leptos/csr leptos_bench)
section=$(cat <<MD
<!-- leptos-bench -->
## Leptos: a live keyed list

Produced by \`scripts/bench-leptos.sh\` (\`tests/leptos_bench.rs\`, optimised, headless Chromium, the test server on loopback; $(date -u +%Y-%m-%d)). 10k documents of ~200 B rendered as a list, then 100 server-side changes, one document each (\`updateDoc\` from a second connection). Time per change: from the change reaching the collection to the DOM mutation that shows it (the MutationObserver's callback; median and worst of 100). DOM nodes touched: mutation records plus added and removed nodes per change (median).

| list | time per change (median) | worst | DOM nodes touched per change | first render of 10k |
| --- | --- | --- | --- | --- |
$rows

Leptos's renderer rebuilds a plain list in place and writes only the text that changed, so both lists touch about one DOM node per change; what rebuilding costs is time: every document copied into a new \`Vec\` and every row's view diffed, on every change, where \`use_collection\` sets one document's signal and re-runs the one text binding that reads it. A keyed \`<For>\` pays somewhat more on the first render (a signal and a key per row).
<!-- /leptos-bench -->
MD
)
part=$(mktemp)
printf '%s\n' "$section" > "$part"
echo "$section"
scripts/bench-section.sh leptos-bench "$part"
