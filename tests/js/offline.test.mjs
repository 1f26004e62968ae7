// The npm package's offline part ("ddp-live/offline": pkg/offline.js over
// the wasm built with cargo features js,persist,tabs) in headless Chromium
// against the test server: calls queued while the server refuses survive a
// real page reload and run once, with their stubs' ids, each earlier call's
// end told by a `settled` event; cancelling a kept call (this page's and an
// earlier page's); storage failures as typed events; two real tabs with
// `shareAcrossTabs` on one socket; and the core module ("ddp-live")
// refusing the options with a typed DDPError. The bundler's view of the
// package (package.json "exports") is checked with esbuild.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, symlinkSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { useBrowser, pageReady, base, control, scenario, wsUrl, fast } from "./harness.mjs";

const shared = useBrowser(before, after, assert);
const errors = shared.errors;

/** A page of `context` that loaded `ddp-live/offline` (or, with `core`, the core module). */
async function openOffline(context, core = false) {
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e));
  // Chromium logs the handshakes the refusing server turns down itself;
  // anything else logged as an error is the package's.
  page.on("console", (m) => {
    if (m.type() === "error" && !/^WebSocket connection to .* failed/.test(m.text()) && !m.location()?.url?.endsWith("/favicon.ico")) errors.push(m.text());
  });
  await page.goto(`${base}/js-tests/${core ? "index" : "offline"}.html`);
  await pageReady(page);
  return page;
}

/**
 * In the page: a connection to scenario `sc` with `options`, the stub of
 * insertDoc (Meteor's insert: the id from the call's randomSeed), the
 * `docs` publication of "todos" (without the stub when `stub` is false),
 * and what the offline part tells it,
 * recorded on `window.t`: its `persist` events and every count of
 * `persistedCalls()` seen by `onPersistedCallsChange`.
 */
function connect(page, sc, options, stub = true) {
  return page.evaluate(
    ([url, options, stub]) => {
      const { DDP } = window.ddp;
      const conn = DDP.connect(url, options);
      const t = (window.t = { conn, events: [], counts: [], stale: [] });
      conn.on("persist", (e) => t.events.push(e));
      conn.onPersistedCallsChange((calls) => t.counts.push(calls.length));
      conn.onStaleChange((s) => t.stale.push(s));
      if (stub)
        conn.methods({
          insertDoc(collection, doc) {
            return this.insert(collection, doc);
          },
        });
      t.sub = conn.subscribe("docs", "todos");
      t.todos = conn.collection("todos");
      // What the test reads back: plain JSON.
      t.view = (e) => {
        if (!e) return e;
        const o = { ...e };
        if (e.error) o.error = { name: e.error.name, code: e.error.code, error: e.error.error, message: e.error.message };
        return o;
      };
    },
    [wsUrl(sc), options, stub],
  );
}

const waitFor = (page, fn, arg, timeout = 15000) => page.waitForFunction(fn, arg, { timeout });
const connected = (page) => waitFor(page, () => window.t.conn.status().connected);
const persisted = (page) => page.evaluate(() => window.t.conn.persistedCalls());
const events = (page, type) => page.evaluate((type) => window.t.events.filter((e) => e.type === type).map(window.t.view), type);

test("calls queued while the server refuses survive a reload and each runs once, with the stub's ids; each settles in an event", async () => {
  const sc = scenario("offline-reload");
  const store = `reload-${sc}`;
  const context = await shared.browser.newContext();
  let page = await openOffline(context);
  await connect(page, sc, { ...fast, persist: store });
  await connected(page);
  await control(sc, "refuse?on=true");
  await control(sc, "drop");
  await waitFor(page, () => !window.t.conn.status().connected);
  // Queued, never sent: two inserts through their stub (their ids are the
  // stub's), a counter and a call the server fails.
  const stubIds = await page.evaluate(async () => {
    const { conn } = window.t;
    const ids = [];
    for (const text of ["bread", "milk"]) ids.push(await conn.apply("insertDoc", ["todos", { text }], { returnStubValue: true }));
    conn.call("inc", "n").catch(() => {});
    conn.call("fail", "not-allowed", "No, says the server").catch(() => {});
    return ids;
  });
  assert.equal(stubIds.length, 2);
  // Kept, and IndexedDB confirmed each before the page goes.
  await waitFor(page, () => window.t.conn.persistedCalls().filter((c) => c.durable).length === 4);
  const before = await persisted(page);
  assert.deepEqual(
    before.map((c) => [c.name, c.fromEarlierPage, c.waitingForUser, c.user]),
    [
      ["insertDoc", false, false, null],
      ["insertDoc", false, false, null],
      ["inc", false, false, null],
      ["fail", false, false, null],
    ],
  );
  assert.ok(before.every((c) => typeof c.key === "string" && typeof c.id === "number"), JSON.stringify(before));
  // The reactive count: at once (0), then one more per call.
  assert.deepEqual((await page.evaluate(() => window.t.counts)).slice(0, 5), [0, 1, 2, 3, 4]);

  await page.reload();
  await pageReady(page);
  await connect(page, sc, { ...fast, persist: store });
  // The server still refuses: the earlier page's calls are read back, listed as its.
  await waitFor(page, () => window.t.events.some((e) => e.type === "restored"));
  assert.deepEqual(await events(page, "restored"), [{ type: "restored", count: 4, waiting: 0 }]);
  const after = await persisted(page);
  assert.deepEqual(
    after.map((c) => c.key),
    before.map((c) => c.key),
    "the same keys",
  );
  assert.ok(after.every((c) => c.fromEarlierPage && c.durable), JSON.stringify(after));
  assert.equal(await page.evaluate(() => window.t.todos.count()), 0);

  await control(sc, "refuse?on=false");
  await waitFor(page, () => window.t.events.filter((e) => e.type === "settled").length === 4 && window.t.conn.persistedCalls().length === 0);
  await waitFor(page, () => window.t.todos.count() === 2 && window.t.sub.ready());
  // Each ran once on the server; the inserts made the stubs' ids.
  const runs = await control(sc, "executions");
  assert.equal(runs.runs.insertDoc, 2, JSON.stringify(runs));
  assert.equal(runs.runs.inc, 1, JSON.stringify(runs));
  assert.equal(runs.runs.fail, 1, JSON.stringify(runs));
  assert.equal(runs.counters.n, 1);
  const docs = await page.evaluate(() => window.t.todos.find().map((d) => [d._id, d.text]));
  assert.deepEqual(docs.map((d) => d[0]).sort(), [...stubIds].sort(), "the server's ids are the stubs'");
  // How each earlier call ended: one `settled` event per key, in order.
  const settled = await events(page, "settled");
  assert.deepEqual(
    settled.map((e) => e.key),
    before.map((c) => c.key),
  );
  assert.deepEqual(settled[0], { type: "settled", key: before[0].key, name: "insertDoc", result: stubIds[0] });
  assert.deepEqual(settled[1], { type: "settled", key: before[1].key, name: "insertDoc", result: stubIds[1] });
  assert.deepEqual(settled[2], { type: "settled", key: before[2].key, name: "inc", result: 1 });
  assert.equal(settled[3].name, "fail");
  assert.equal(settled[3].result, undefined);
  assert.deepEqual(
    { name: settled[3].error.name, error: settled[3].error.error },
    { name: "DDPMethodError", error: "not-allowed" },
    "the server's error, as a DDPMethodError",
  );
  assert.equal(await page.evaluate(() => window.t.events.find((e) => e.type === "settled" && e.error).error instanceof Error), true);
  assert.equal(await page.evaluate(() => window.t.counts.at(-1)), 0);
  // The stale flag: not the cache's documents any more.
  assert.equal(await page.evaluate(() => window.t.conn.stale), false);
  await context.close();
});

test("a reload shows the documents kept by the cache at once, stale until the subscription is ready again", async () => {
  const sc = scenario("offline-stale");
  const store = `stale-${sc}`;
  const context = await shared.browser.newContext();
  const page = await openOffline(context);
  // (No stub: a document a stub showed first, then the server's equal
  // copy, is not written to the cache; see the report of this change.)
  await connect(page, sc, { ...fast, persist: store }, false);
  await connected(page);
  await page.evaluate(() => window.t.conn.call("insertDoc", "todos", { text: "kept" }));
  await waitFor(page, () => window.t.sub.ready() && window.t.todos.count() === 1);
  // Written in a batch 200 ms after the change.
  await waitFor(page, () => window.t.events.some((e) => e.type === "cacheWritten" && e.documents === 1));
  assert.equal(await page.evaluate(() => window.t.conn.stale), false);
  await control(sc, "refuse?on=true");
  await page.reload();
  await pageReady(page);
  await connect(page, sc, { ...fast, persist: store }, false);
  await waitFor(page, () => window.t.todos.count() === 1);
  assert.deepEqual(await events(page, "cacheRestored"), [{ type: "cacheRestored", documents: 1, user: null }]);
  assert.equal(await page.evaluate(() => window.t.conn.stale), true, "the cache's copy, not confirmed");
  assert.equal(await page.evaluate(() => window.t.todos.findOne().text), "kept");
  await control(sc, "refuse?on=false");
  await waitFor(page, () => window.t.sub.ready() && !window.t.conn.stale);
  const seen = await page.evaluate(() => window.t.stale);
  assert.ok(seen.includes(true) && seen.at(-1) === false, `onStaleChange heard it: ${seen}`);
  await context.close();
});

test("cancelling kept calls by key: this page's (its Promise rejects) and an earlier page's (settled cancelled); neither runs", async () => {
  const sc = scenario("offline-cancel");
  const store = `cancel-${sc}`;
  const context = await shared.browser.newContext();
  const page = await openOffline(context);
  await connect(page, sc, { ...fast, persist: store });
  await connected(page);
  await control(sc, "refuse?on=true");
  await control(sc, "drop");
  await waitFor(page, () => !window.t.conn.status().connected);
  const mine = await page.evaluate(async () => {
    const { conn } = window.t;
    const p = conn.call("insertDoc", "todos", { text: "one" });
    conn.call("insertDoc", "todos", { text: "two" }).catch(() => {});
    conn.call("insertDoc", "todos", { text: "three" }).catch(() => {});
    const [first] = conn.persistedCalls();
    const cancelled = conn.cancelPersistedCall(first.key);
    const again = conn.cancelPersistedCall(first.key);
    const unknown = conn.cancelPersistedCall("no-such-key");
    const error = await p.then(
      () => null,
      (e) => e.error,
    );
    return { cancelled, again, unknown, error, left: conn.persistedCalls().length };
  });
  assert.deepEqual(mine, { cancelled: true, again: false, unknown: false, error: "cancelled", left: 2 });
  await waitFor(page, () => window.t.conn.persistedCalls().every((c) => c.durable));
  await page.reload();
  await pageReady(page);
  await connect(page, sc, { ...fast, persist: store });
  await waitFor(page, () => window.t.events.some((e) => e.type === "restored"));
  const earlier = await persisted(page);
  assert.equal(earlier.length, 2);
  assert.equal(await page.evaluate((key) => window.t.conn.cancelPersistedCall(key), earlier[0].key), true);
  await waitFor(page, () => window.t.events.some((e) => e.type === "settled"));
  const [settled] = await events(page, "settled");
  assert.equal(settled.key, earlier[0].key);
  assert.equal(settled.error.error, "cancelled");
  await control(sc, "refuse?on=false");
  await waitFor(page, () => window.t.conn.persistedCalls().length === 0 && window.t.sub.ready() && window.t.todos.count() === 1);
  assert.deepEqual(await page.evaluate(() => window.t.todos.find().map((d) => d.text)), ["three"]);
  assert.equal((await control(sc, "executions")).runs.insertDoc, 1, "only the call not cancelled ran");
  await context.close();
});

test("IndexedDB unavailable: typed storage-unavailable events, and the call still runs", async () => {
  const sc = scenario("offline-no-idb");
  const context = await shared.browser.newContext();
  const page = await openOffline(context);
  await page.evaluate(() => Object.defineProperty(globalThis, "indexedDB", { configurable: true, get() { throw new DOMException("blocked", "SecurityError"); } }));
  await connect(page, sc, { ...fast, persist: true });
  await connected(page);
  assert.equal(await page.evaluate(() => window.t.conn.call("add", 2, 3)), 5);
  await waitFor(page, () => window.t.events.some((e) => e.type === "storageFailed") && window.t.events.some((e) => e.type === "cacheFailed"));
  const [failed] = await events(page, "storageFailed");
  assert.equal(failed.key, null, "the store could not be opened");
  assert.deepEqual([failed.error.name, failed.error.code], ["DDPError", "storage-unavailable"]);
  const [cache] = await events(page, "cacheFailed");
  assert.deepEqual([cache.error.name, cache.error.code], ["DDPError", "storage-unavailable"]);
  assert.equal(await page.evaluate(() => window.t.events.find((e) => e.type === "storageFailed").error instanceof Error), true);
  await context.close();
});

test("two tabs with shareAcrossTabs: one socket on the server, and both get the data", async () => {
  const sc = scenario("offline-tabs");
  const context = await shared.browser.newContext();
  const tabs = [await openOffline(context), await openOffline(context)];
  for (const tab of tabs) {
    await connect(tab, sc, { ...fast, shareAcrossTabs: true });
    await connected(tab);
    await waitFor(tab, () => window.t.sub.ready());
  }
  const stats = await control(sc, "stats");
  assert.equal(stats.connections, 1, `two tabs, one socket: ${JSON.stringify(stats)}`);
  assert.equal(stats.accepted, 1, "no tab opened a socket of its own");
  // A call from each tab; both tabs see both documents.
  const ids = [];
  for (const [i, tab] of tabs.entries()) ids.push(await tab.evaluate((i) => window.t.conn.call("insertDoc", "todos", { text: `from tab ${i}` }), i));
  for (const tab of tabs) await waitFor(tab, () => window.t.todos.count() === 2);
  for (const tab of tabs) {
    assert.deepEqual(await tab.evaluate(() => window.t.todos.find().map((d) => d.text).sort()), ["from tab 0", "from tab 1"]);
  }
  assert.equal((await control(sc, "executions")).runs.insertDoc, 2);
  assert.equal((await control(sc, "stats")).connections, 1);
  // Without persist: nothing kept, never stale.
  assert.deepEqual(await tabs[1].evaluate(() => [window.t.conn.persistedCalls(), window.t.conn.stale]), [[], false]);
  await context.close();
});

test("the core module refuses persist and shareAcrossTabs with a typed DDPError saying how to load the offline part", async () => {
  const context = await shared.browser.newContext();
  const page = await openOffline(context, true);
  const r = await page.evaluate((url) => {
    const { DDP, Client } = window.ddp;
    const attempt = (f) => {
      try {
        f();
        return "no error";
      } catch (e) {
        return { name: e.name, code: e.code, message: e.message, isError: e instanceof Error };
      }
    };
    const off = DDP.connect(url, { persist: false, shareAcrossTabs: false, watchPage: false });
    const methods = ["persistedCalls", "onPersistedCallsChange", "cancelPersistedCall", "onStaleChange"].map((m) => attempt(() => off[m](() => {})));
    methods.push(attempt(() => off.stale));
    off.close();
    return {
      persist: attempt(() => DDP.connect(url, { persist: true })),
      named: attempt(() => DDP.connect(url, { persist: "todos" })),
      tabs: attempt(() => DDP.connect(url, { shareAcrossTabs: true })),
      client: attempt(() => new Client(url, { persist: true })),
      methods,
    };
  }, wsUrl(scenario("offline-core")));
  for (const e of [r.persist, r.named, r.tabs, r.client, ...r.methods]) {
    assert.equal(e.name, "DDPError", JSON.stringify(e));
    assert.equal(e.code, "offline-not-loaded", JSON.stringify(e));
    assert.match(e.message, /"ddp-live\/offline"/);
    assert.equal(e.isError, true);
  }
  await context.close();
});

test("the offline part checks its options: invalid-options for a bad persist or shareAcrossTabs", async () => {
  const context = await shared.browser.newContext();
  const page = await openOffline(context);
  const codes = await page.evaluate((url) => {
    const { DDP } = window.ddp;
    return [{ persist: "" }, { persist: 3 }, { shareAcrossTabs: "yes" }, { persist: true, bogus: 1 }].map((o) => {
      try {
        DDP.connect(url, o).close();
        return "no error";
      } catch (e) {
        return e.code;
      }
    });
  }, wsUrl(scenario("offline-options")));
  assert.deepEqual(codes, ["invalid-options", "invalid-options", "invalid-options", "invalid-options"]);
  await context.close();
});

test("a bundler resolves ddp-live/offline through package.json exports to the offline part and its wasm", () => {
  const dir = mkdtempSync(join(tmpdir(), "ddp-offline-bundle-"));
  try {
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(resolve("pkg"), join(dir, "node_modules", "ddp-live"), "dir");
    const app = join(dir, "app.js");
    const bundle = (entry) => {
      writeFileSync(app, `import init, { DDP } from "${entry}"; await init(); DDP.connect("ws://x");`);
      execFileSync(resolve("node_modules/.bin/esbuild"), [app, "--bundle", "--format=esm", "--log-level=error", `--outfile=${join(dir, "out.js")}`]);
      return readFileSync(join(dir, "out.js"), "utf8");
    };
    const offline = bundle("ddp-live/offline");
    assert.match(offline, /ddp_live_offline_bg\.wasm/);
    assert.match(offline, /connect_offline/);
    const core = bundle("ddp-live");
    assert.match(core, /ddp_live_bg\.wasm/);
    assert.doesNotMatch(core, /ddp_live_offline_bg\.wasm|connect_offline/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the demo with ?offline=1: two tabs on one socket; a todo added while the server refuses survives a reload and lands once in both", async () => {
  const sc = "demo"; // the demo page's scenario
  await control(sc, "reset");
  const runsBefore = (await control(sc, "executions")).runs.insertDoc ?? 0;
  const context = await shared.browser.newContext();
  const open = async () => {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(`${base}/?offline=1`);
    await page.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
    return page;
  };
  const [a, b] = [await open(), await open()];
  assert.equal(await a.textContent("#mode"), "Module: ddp-live/offline (persist + shareAcrossTabs).");
  // Each tab's connection and chat client: one socket for all four.
  let stats = await control(sc, "stats");
  for (let i = 0; i < 100 && stats.connections !== 1; i++) {
    await new Promise((r) => setTimeout(r, 50));
    stats = await control(sc, "stats");
  }
  assert.equal(stats.connections, 1, JSON.stringify(stats));
  await a.waitForFunction(() => document.querySelector("#sockets").textContent === "1", null, { timeout: 10000 });
  await control(sc, "refuse?on=true");
  await control(sc, "drop");
  await a.waitForFunction(() => document.querySelector("#badge").textContent !== "connected");
  const text = `demo todo ${process.pid}-${Date.now()}`;
  await a.fill("#todo-input", text);
  await a.click("#todo-form button");
  await a.waitForFunction(() => window.conn.persistedCalls().length === 1 && window.conn.persistedCalls()[0].durable, null, { timeout: 5000 });
  assert.equal(await a.textContent("#kept"), "1");
  await a.reload();
  await a.waitForFunction(() => document.querySelector("#kept")?.textContent === "1 (some from an earlier page)", null, { timeout: 10000 });
  await control(sc, "reset");
  for (const p of [a, b]) {
    await p.waitForFunction((t) => [...document.querySelectorAll("#todos li")].filter((li) => li.textContent === t).length === 1, text, { timeout: 15000 });
  }
  await a.waitForFunction(() => document.querySelector("#kept").textContent === "0", null, { timeout: 10000 });
  assert.equal((await control(sc, "executions")).runs.insertDoc, runsBefore + 1, "the todo's insert ran once");
  await context.close();
  // Without the flag: the core module, and the offline card says how to turn it on.
  const plain = await shared.browser.newContext();
  const page = await plain.newPage();
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
  assert.equal(await page.textContent("#mode"), "Module: ddp-live (the core).");
  assert.equal(await page.isVisible("#offline-off"), true);
  assert.equal(await page.isVisible("#offline-on"), false);
  await plain.close();
});

test("close() lets go of everything the offline part holds: its locks (the browser's lock manager) and its socket (the server's stats)", async () => {
  const sc = scenario("off-cleanup");
  const context = await shared.browser.newContext();
  const page = await openOffline(context);
  await connect(page, sc, { ...fast, persist: "cleanup", shareAcrossTabs: true });
  await connected(page);
  const held = () => page.evaluate(async () => {
    const q = await navigator.locks.query();
    return [...q.held, ...q.pending].map((l) => l.name);
  });
  const during = await held();
  assert.ok(during.length >= 3, `the group's lock, the member's and the store's page lock, held while open: ${JSON.stringify(during)}`);
  assert.equal((await control(sc, "stats")).connections, 1);
  await page.evaluate(() => window.t.conn.close());
  let left = await held();
  for (let i = 0; i < 100 && left.length !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    left = await held();
  }
  assert.deepEqual(left, [], "no lock held or asked for after close()");
  let s = await control(sc, "stats");
  for (let i = 0; i < 100 && s.connections !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    s = await control(sc, "stats");
  }
  assert.equal(s.connections, 0, `no socket left: ${JSON.stringify(s)}`);
  await context.close();
});
