// Benchmark (not a test): time from subscribe to ready with every document
// applied, for 10k and 100k documents of ~200 bytes, in headless Chromium
// against the test server; with the longest main-thread block and memory.
// Run it with scripts/bench.sh. Prints a table; asserts nothing.
import { openPage, scenario, wsUrl } from "./harness.mjs";

const sizes = (process.env.BENCH_SIZES ?? "10000,100000").split(",").map(Number);
const { browser, page } = await openPage();
const rows = [];
for (const n of sizes) {
  const sc = scenario(`bench-${n}`);
  const r = await page.evaluate(async ([url, n]) => {
    let longest = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
    });
    obs.observe({ type: "longtask", buffered: false });
    const conn = ddp.DDP.connect(url, { watchPage: false });
    await new Promise((res) => conn.once("connect", res));
    const items = conn.collection("items");
    const heapBefore = performance.memory?.usedJSHeapSize ?? 0;
    const t0 = performance.now();
    await new Promise((res) => conn.subscribe("items", n, 200, { onReady: res }));
    const t1 = performance.now();
    const count = items.count();
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    const heapAfter = performance.memory?.usedJSHeapSize ?? 0;
    const wasmBytes = window.ddpWasm?.memory?.buffer?.byteLength ?? 0;
    conn.close();
    return { ms: t1 - t0, count, longest, heapMb: (heapAfter - heapBefore) / 1e6, wasmMb: wasmBytes / 1e6 };
  }, [wsUrl(sc), n]);
  if (r.count !== n) throw new Error(`expected ${n} documents, got ${r.count}`);
  rows.push({ documents: n, "subscribe→ready (ms)": r.ms.toFixed(0), "µs/doc": ((r.ms * 1000) / n).toFixed(1), "longest block (ms)": r.longest.toFixed(0), "JS heap Δ (MB)": r.heapMb.toFixed(1), "wasm memory (MB)": r.wasmMb.toFixed(1) });
}
await browser.close();
console.table(rows);
