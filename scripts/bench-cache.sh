#!/usr/bin/env bash
# The durable cache's benchmark (tests/cache_bench.rs; it prints figures and
# asserts nothing): a page's start with a warm cache against a cold one, and
# what IndexedDB holds per document, built optimised and run in headless
# Chromium against the test server. Writes its section of
# docs/benchmarks.md (between the "cache-bench" markers).
# Run by scripts/bench.sh; alone it needs the tools scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=$(scripts/bench-wasm.sh "${DDP_BENCH_CACHE_PORT:-3332}" persist cache_bench)
section=$(cat <<MD
<!-- cache-bench -->
## The durable cache: a reload, warm against cold (issue 24)

Produced by \`scripts/bench-cache.sh\` (\`tests/cache_bench.rs\`, optimised, headless Chromium, IndexedDB, the test server on loopback; $(date -u +%Y-%m-%d)). A page's start: from \`connect()\` (with \`persist\`) and \`subscribe\` to the first document in the collection and to all of them (what a page renders), and to the subscription ready with nothing stale (the server's documents reconciled with the cached ones). Cold: a cache with nothing kept (the documents stream in as the server sends them). Warm: the documents a previous page kept, all shown at once from IndexedDB (median of three starts). Bytes per document: the UTF-8 bytes of the cache's IndexedDB keys and values, and the growth of the origin's usage as the browser estimates it (\`navigator.storage.estimate()\`: on disk, LevelDB, compressed), per document of ~200 B of JSON.

| documents | cold cache: first / all shown | warm cache: first / all shown | ready and fresh: cold / warm | IndexedDB per document: records / on disk |
| --- | --- | --- | --- | --- |
$rows

A warm start shows every document as soon as IndexedDB has read them, before the socket is open (offline too), marked stale until the subscription is ready again; the reconciliation then applies only what changed (no change event for an unchanged document, hence a warm "ready and fresh" below a cold one). The first session's data is held until the cache is read, so a cold start's first document waits for that read too (an empty store: a few ms). The on-disk estimate is coarse (LevelDB's log, compaction and compression; 1,000 documents carry the database's fixed cost): the records column is what the cache writes.
<!-- /cache-bench -->
MD
)
part=$(mktemp)
printf '%s\n' "$section" > "$part"
echo "$section"
scripts/bench-section.sh cache-bench "$part"
