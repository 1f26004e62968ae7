// Benchmark of a live query against re-running find() and plain JS
// (Array.filter + sort) over the same documents in the same page: 100k
// documents, the query {status: "open"} sorted by `n`, limit 50, and 1,000
// server-side changes. Prints the time per change of each, as rows for
// docs/benchmarks.md; asserts only that all three give the same results.
//
// Needs the release package (scripts/build-pkg.sh) and a test server
// (SERVER_RELEASE=1 scripts/start-server.sh PORT), then:
//   DDP_TEST_PORT=PORT node tests/js/bench/query.mjs [DOCS] [CHANGES]
//
// Each mode registers three onChange listeners in order: a timer start, the
// mode's work, a timer stop; listeners run in registration order within one
// change, so the time between the timers is that mode's work alone (a mode
// with nothing between them is the floor, subtracted).
import { openPage, scenario, wsUrl } from "../harness.mjs";

const docs = Number(process.argv[2] ?? 100_000);
const changes = Number(process.argv[3] ?? 1_000);
const sc = scenario("bench-query");
const { browser, page } = await openPage();
try {
  const r = await page.evaluate(async ([url, docs, changes]) => {
    const connect = (opts = {}) =>
      new Promise((res) => {
        const c = ddp.DDP.connect(url, { watchPage: false, ...opts });
        c.once("connect", () => res(c));
      });
    // mulberry32: a fixed sequence, the same on every run.
    let seed = 7;
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const writer = await connect({ maxPendingCalls: docs + changes + 10 });
    const batch = 5000;
    for (let i = 0; i < docs; i += batch) {
      const calls = [];
      for (let j = i; j < Math.min(docs, i + batch); j++) {
        calls.push(writer.call("insertDoc", "tasks", { _id: `t${j}`, status: rand() < 0.25 ? "open" : "closed", n: Math.floor(rand() * 1e6), title: `task ${j}`, pad: "x".repeat(120) }));
      }
      await Promise.all(calls);
    }
    const reader = await connect();
    const tasks = reader.collection("tasks");
    await new Promise((res) => reader.subscribe("docs", "tasks", res));
    if (tasks.count() !== docs) throw new Error(`${tasks.count()} of ${docs} documents`);
    const selector = { status: "open" };
    const options = { sort: { n: 1 }, limit: 50 };

    // Each mode: set up (untimed), then `changes` server-side changes.
    const run = async (name, setup) => {
      let t0 = 0;
      let total = 0;
      let seen = 0;
      const start = tasks.onChange(() => (t0 = performance.now()));
      const mode = setup();
      const stop = tasks.onChange(() => {
        total += performance.now() - t0;
        seen++;
      });
      const calls = [];
      for (let i = 0; i < changes; i++) {
        const id = `t${Math.floor(rand() * docs)}`;
        calls.push(writer.call("updateDoc", "tasks", id, { n: Math.floor(rand() * 1e6), status: rand() < 0.25 ? "open" : "closed" }));
      }
      await Promise.all(calls);
      // (An update that changes nothing sends nothing: count what arrived.)
      const deadline = performance.now() + 60_000;
      while (seen < changes && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      if (seen < changes) throw new Error(`${name}: ${seen} of ${changes} changes arrived`);
      start.stop();
      stop.stop();
      const result = mode.result();
      const fresh = tasks.find(selector, options).map((d) => d._id);
      mode.stop();
      return { name, perChangeMs: total / changes, same: result === null || JSON.stringify(result) === JSON.stringify(fresh) };
    };

    const out = [];
    const floor = () => ({ result: () => null, stop() {} });
    await run("warm-up", floor);
    out.push(await run("floor", floor));
    out.push(
      await run("live", () => {
        const list = [];
        const h = tasks.observe(selector, options, {
          addedAt: (d, i) => list.splice(i, 0, d),
          changedAt: (d, _o, i) => (list[i] = d),
          removedAt: (_o, i) => list.splice(i, 1),
          movedTo: (d, f, t) => (list.splice(f, 1), list.splice(t, 0, d)),
        });
        return { result: () => list.map((d) => d._id), stop: () => h.stop() };
      }),
    );
    out.push(
      await run("find", () => {
        let list = tasks.find(selector, options);
        const h = tasks.onChange(() => (list = tasks.find(selector, options)));
        return { result: () => list.map((d) => d._id), stop: () => h.stop() };
      }),
    );
    out.push(
      await run("plain JS", () => {
        const byId = new Map(tasks.find().map((d) => [d._id, d]));
        const q = () => [...byId.values()].filter((d) => d.status === "open").sort((a, b) => a.n - b.n || (a._id < b._id ? -1 : 1)).slice(0, 50);
        let list = q();
        const h = tasks.onChange((c) => {
          if (c.type === "removed") byId.delete(c.id);
          else {
            const d = { ...(byId.get(c.id) ?? { _id: c.id }), ...c.fields };
            for (const k of c.cleared ?? []) delete d[k];
            byId.set(c.id, d);
          }
          list = q();
        });
        return { result: () => list.map((d) => d._id), stop: () => h.stop() };
      }),
    );
    // The floor again, last: the smaller of the two is subtracted.
    const last = await run("floor", floor);
    out[0].perChangeMs = Math.min(out[0].perChangeMs, last.perChangeMs);
    reader.close();
    writer.close();
    return { out };
  }, [wsUrl(sc), docs, changes]);
  const floor = r.out[0].perChangeMs;
  const [live, find, plain] = r.out.slice(1);
  // Each mode ended with the results of the same query over the same documents.
  for (const m of [live, find, plain]) {
    if (!m.same) throw new Error(`${m.name}: results differ from a fresh find()`);
  }
  const us = (ms) => `${Math.max(0, (ms - floor) * 1000).toFixed(1)} µs`;
  console.log(`| live query \`{status: "open"}\` sorted by a field, limit 50, over ${docs / 1000}k docs: time per server-side change (${changes} changes) | ${us(live.perChangeMs)} | – | – | – | – |`);
  console.log(`| … re-running \`find(selector, options)\` on every change | ${us(find.perChangeMs)} | – | – | – | – |`);
  console.log(`| … plain JS (\`Array.filter\` + \`sort\` over the same documents) on every change | ${us(plain.perChangeMs)} | – | – | – | – |`);
  console.log(`(floor subtracted: ${(floor * 1000).toFixed(1)} µs per change for the timing listeners)`);
} finally {
  await browser.close();
}
