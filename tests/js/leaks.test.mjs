// Every handle cleans up after itself: 500 connections and 500 room
// clients (1,000 sockets) made and dropped in one page leave no socket open on the server
// and no growth of the wasm memory or the JS heap. Dropped means both ways
// an app drops one: close(), and simply losing the last reference (the
// garbage collector frees the wrapper, and the socket closes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, pageReady, base, scenario, control, wsUrl, fast } from "./harness.mjs";

async function heapAfterGc(page, cdp) {
  // Collect until the finalizers have run (the wrappers free their Rust side).
  for (let i = 0; i < 4; i++) {
    await cdp.send("HeapProfiler.collectGarbage");
    await page.evaluate(() => new Promise((ok) => setTimeout(ok, 50)));
  }
  const { usedSize } = await cdp.send("Runtime.getHeapUsage");
  const wasm = await page.evaluate(() => window.ddpWasm.memory.buffer.byteLength);
  return { js: usedSize, wasm };
}

test("1,000 connections and room clients dropped: 0 sockets on the server, heaps back near baseline", async () => {
  const sc = scenario("js-leaks");
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/js-tests/index.html`);
    await pageReady(page, 30000);
    const cdp = await page.context().newCDPSession(page);
    // One round: 50 connections and 50 room clients (one room each, the
    // `connection` getter read twice, listeners and a status watch added);
    // half are closed, half just forgotten.
    const round = (url, fast) =>
      page.evaluate(async ([url, fast]) => {
        const made = [];
        for (let i = 0; i < 50; i++) {
          const conn = ddp.DDP.connect(url, fast);
          conn.on("connect", () => {});
          conn.onStatusChange(() => {});
          const client = new ddp.Client(url, fast);
          const room = client.connect(`room-${i % 7}`);
          room.on("message", () => {});
          client.connection.on("disconnect", () => {});
          if (client.connection !== client.connection) throw new Error("connection is not one object");
          made.push({ conn, client, room });
        }
        await Promise.all(made.map(({ conn, room }) => Promise.all([
          new Promise((ok) => conn.once("connect", ok)),
          new Promise((ok) => room.once("connect", ok)),
        ])));
        made.forEach(({ conn, client }, i) => {
          if (i % 2 === 0) { conn.close(); client.close(); }
        });
      }, [url, fast]);
    // Warm-up rounds: code paths, the allocator's free lists, caches. The
    // forgotten half is freed by the garbage collector, forced after each round.
    for (let r = 0; r < 2; r++) { await round(wsUrl(sc), fast); await heapAfterGc(page, cdp); }
    const before = await heapAfterGc(page, cdp);
    const trace = [];
    for (let r = 0; r < 10; r++) { await round(wsUrl(sc), fast); trace.push(await heapAfterGc(page, cdp)); }
    const after = trace.at(-1);
    console.log(trace.map((t) => `${t.js}/${t.wasm}`).join(" "));
    let sockets = -1;
    for (let i = 0; i < 100 && sockets !== 0; i++) {
      sockets = (await control(sc, "stats")).connections;
      if (sockets !== 0) await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(sockets, 0, "the server sees every socket closed");
    const grewJs = after.js - before.js;
    const grewWasm = after.wasm - before.wasm;
    console.log(`JS heap ${before.js} → ${after.js} (${grewJs} B), wasm memory ${before.wasm} → ${after.wasm} (${grewWasm} B)`);
    // 1,000 connections leaking even 1 KB each would be 1 MB.
    assert.ok(grewJs < 512 << 10, `JS heap grew by ${grewJs} bytes`);
    assert.ok(grewWasm < 512 << 10, `wasm memory grew by ${grewWasm} bytes`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("a call's AbortSignal does not keep its connection: a freed connection closes its socket", async () => {
  const sc = scenario("js-abort-leak");
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/js-tests/index.html`);
    await pageReady(page, 30000);
    const cdp = await page.context().newCDPSession(page);
    await page.evaluate(async ([url, fast]) => {
      // No closure made here captures a connection (a promise handler that
      // did would keep it reachable, as in any JavaScript program).
      window.noop = function () {};
      window.keep = [];
      const open = async function () { const conn = ddp.DDP.connect(url, fast); await conn.call("add", 1, 1); return conn; };
      const start = function (conn, signal) { conn.apply("sleep", [60000], { signal }).catch(window.noop); };
      for (let i = 0; i < 5; i++) {
        const abort = new AbortController();
        window.keep.push(abort); // the app keeps its AbortController...
        start(await open(), abort.signal); // ...and forgets the connection, its call pending
      }
    }, [wsUrl(sc), fast]);
    assert.equal((await control(sc, "stats")).connections, 5);
    await heapAfterGc(page, cdp);
    let sockets = -1;
    for (let i = 0; i < 100 && sockets !== 0; i++) {
      sockets = (await control(sc, "stats")).connections;
      if (sockets !== 0) {
        await cdp.send("HeapProfiler.collectGarbage");
        await new Promise((ok) => setTimeout(ok, 100));
      }
    }
    assert.equal(sockets, 0, "every forgotten connection closed its socket");
    // A call answered with its stub's value leaves nothing behind.
    const before = await heapAfterGc(page, cdp);
    await page.evaluate(async ([url, fast]) => {
      const conn = ddp.DDP.connect(url, fast);
      conn.methods({ add(a, b) { return a + b; } });
      for (let round = 0; round < 10; round++) {
        const ps = [];
        for (let i = 0; i < 500; i++) ps.push(conn.apply("add", [i, 1], { returnStubValue: true }));
        await Promise.all(ps);
        while (conn.outbox().inFlight + conn.outbox().queued > 0) await new Promise((ok) => setTimeout(ok, 10));
      }
      conn.close();
    }, [wsUrl(sc), fast]);
    const after = await heapAfterGc(page, cdp);
    const grew = after.js - before.js;
    assert.ok(grew < 256 << 10, `JS heap grew by ${grew} bytes over 5,000 calls answered by their stub`);
  } finally {
    await browser.close();
  }
});
