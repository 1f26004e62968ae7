// Profiles one benchmark workload of one client with Chromium's CPU profiler
// (through the DevTools protocol) and prints the functions with the most
// self time. For hot-path work; build with `PROFILING=1 scripts/build-pkg.sh`
// to see wasm function names.
//
//   node tests/js/bench/profile.mjs ddp-live subscribe 10000
import { chromium } from "playwright-core";

const [client = "ddp-live", workload = "subscribe", rawArg = "10000"] = process.argv.slice(2);
const arg = Number.isNaN(Number(rawArg)) ? rawArg : Number(rawArg);
const port = process.env.DDP_TEST_PORT ?? "3330";
const top = Number(process.env.PROFILE_TOP ?? 30);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
});
const page = await browser.newPage();
page.on("pageerror", (e) => console.error("page error:", e));
await page.goto(`http://127.0.0.1:${port}/js-tests/bench/index.html`);
await page.waitForFunction(() => window.benchReady === true, null, { timeout: 20000 });
const url = (i) => `ws://127.0.0.1:${port}/t/profile-${process.pid}-${i}/websocket`;
// One warm-up run so the profile shows optimised code, then the profiled run.
await page.evaluate(([c, w, u, a]) => window.bench[c][w](u, a), [client, workload, url(0), arg]);
const cdp = await page.context().newCDPSession(page);
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
await cdp.send("Profiler.start");
const result = await page.evaluate(([c, w, u, a]) => window.bench[c][w](u, a), [client, workload, url(1), arg]);
const { profile } = await cdp.send("Profiler.stop");
await browser.close();

const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = profile.timeDeltas;
let total = 0;
const byFile = new Map();
profile.samples.forEach((id, i) => {
  const n = byId.get(id);
  const f = n.callFrame;
  const key = `${f.functionName || "(anonymous)"}  ${f.url.split("/").pop()}${f.url ? ":" + f.lineNumber : ""}`;
  const d = dt[i] ?? 0;
  total += d;
  self.set(key, (self.get(key) ?? 0) + d);
  const file = f.url ? f.url.split("/").pop() : f.functionName.startsWith("(") ? f.functionName : "(native)";
  byFile.set(file, (byFile.get(file) ?? 0) + d);
});
// Inclusive time: each function once per sample, however deep it recurs.
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
profile.samples.forEach((id, i) => {
  const seen = new Set();
  for (let cur = id; cur != null; cur = parent.get(cur)) {
    const name = byId.get(cur).callFrame.functionName;
    if (!name || name.startsWith("(") || seen.has(name)) continue;
    seen.add(name);
    incl.set(name, (incl.get(name) ?? 0) + (dt[i] ?? 0));
  }
});
console.log(`${client} ${workload} ${rawArg}: ${JSON.stringify(result)}; ${(total / 1000).toFixed(0)} ms sampled`);
console.log("by source: " + [...byFile].sort((a, b) => b[1] - a[1]).map(([k, us]) => `${k} ${(us / 1000).toFixed(0)} ms`).join(", "));
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}
if (process.env.PROFILE_INCLUSIVE) {
  console.log("inclusive:");
  for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_INCLUSIVE))) {
    console.log(`${(us / 1000).toFixed(1).padStart(8)} ms  ${k.slice(0, 160)}`);
  }
}
