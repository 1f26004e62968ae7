// No app callback and no hostile frame can kill the wasm instance: app code
// that re-enters the client, oversized and odd frames, leaks. Headless
// Chromium against the real test server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("10,000 calls made one inside another's outbox listener all resolve; the instance survives", async () => {
  const sc = scenario("js-reenter");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    const calls = [];
    let n = 0;
    // Every call changes the outbox, whose listener makes the next call:
    // nested, this would need 10,000 stack frames (the wasm stack is 1 MiB).
    const h = conn.onOutboxChange(() => {
      if (n < 10000) calls.push(conn.call("echo", ++n));
    });
    while (calls.length < 10000) await new Promise((ok) => setTimeout(ok, 5));
    const results = await Promise.all(calls);
    h.stop();
    // The instance still works for this and for a new connection.
    const after = await conn.call("add", 2, 3);
    const other = ddp.DDP.connect(url, fast);
    const fresh = await other.call("add", 4, 5);
    conn.close(); other.close();
    return { count: results.length, inOrder: results.every((v, i) => v === i + 1), after, fresh };
  }, wsUrl(sc), fast);
  assert.deepEqual(r, { count: 10000, inOrder: true, after: 5, fresh: 9 });
});

test("listeners hear events in order even when an earlier listener calls into the connection", async () => {
  const sc = scenario("js-order");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    const log = [];
    // The first listener calls back in; the second must still hear
    // "connect" before "reconnect".
    conn.on("connect", () => { conn.call("echo", "from a listener"); });
    conn.on("connect", () => log.push("connect"));
    conn.on("reconnect", () => log.push("reconnect"));
    conn.on("disconnect", () => log.push("disconnect"));
    await new Promise((ok) => conn.once("connect", ok));
    (window.t ??= {})[sc] = { conn, log };
  }, wsUrl(sc), fast, sc);
  await control(sc, "drop");
  const log = await inPage(async ([sc]) => {
    const { conn, log } = window.t[sc];
    while (!log.includes("reconnect")) await new Promise((ok) => setTimeout(ok, 5));
    const seen = [...log];
    conn.close();
    return seen;
  }, sc);
  assert.deepEqual(log, ["connect", "disconnect", "connect", "reconnect"]);
});
