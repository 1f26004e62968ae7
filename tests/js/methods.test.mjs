// Method calls through the npm package's JavaScript API, in headless
// Chromium against the real test server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("call resolves with the result; EJSON types survive the round trip", async () => {
  const sc = scenario("js-call");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    class Point {
      constructor(x, y) { this.x = x; this.y = y; }
      typeName() { return "point"; }
      toJSONValue() { return { x: this.x, y: this.y }; }
    }
    ddp.EJSON.addType("point", (v) => new Point(v.x, v.y));
    const sum = await conn.call("add", 2, 3);
    const value = {
      when: new Date(1700000000123),
      bytes: new Uint8Array([0, 1, 254, 255]),
      nan: NaN, inf: -Infinity,
      re: /a+b/gi,
      lookalike: { $date: "not a date" },
      p: new Point(1, 2),
      nested: [{ d: new Date(0) }],
    };
    const back = await conn.apply("echo", [value]);
    const nothing = await conn.call("noResult");
    conn.close();
    return {
      sum,
      when: back.when instanceof Date && back.when.getTime(),
      bytes: back.bytes instanceof Uint8Array && Array.from(back.bytes),
      nan: Number.isNaN(back.nan), inf: back.inf,
      re: back.re instanceof RegExp && [back.re.source, back.re.flags],
      lookalike: back.lookalike,
      point: back.p instanceof Point && [back.p.x, back.p.y],
      nested: back.nested[0].d instanceof Date,
      nothing,
    };
  }, wsUrl(sc), fast);
  assert.deepEqual(r, {
    sum: 5, when: 1700000000123, bytes: [0, 1, 254, 255], nan: true, inf: -Infinity,
    re: ["a+b", "gi"], lookalike: { $date: "not a date" }, point: [1, 2], nested: true, nothing: undefined,
  });
});

test("every double survives the round trip exactly, both ways (the wasm reads and writes numbers with the browser's own conversions)", async () => {
  const sc = scenario("js-doubles");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const xs = [0.1, 0.1 + 0.2, 1 / 3, -2.5, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e21, 1e-7,
      123456789.12345678, 9007199254740993, 2 ** 53 + 2, -(2 ** 63), 2 ** 64, 1e15 + 0.5, 4.35, 0.000001, 1e22, 1e23, 3];
    // And doubles of every magnitude, from random bits.
    const view = new DataView(new ArrayBuffer(8));
    let seed = 12345;
    while (xs.length < 400) {
      for (let i = 0; i < 8; i++) { seed = (seed * 1103515245 + 12345) >>> 0; view.setUint8(i, seed >>> 24); }
      const x = view.getFloat64(0);
      if (Number.isFinite(x)) xs.push(x);
    }
    const back = await conn.apply("echo", [xs]);
    conn.close();
    return xs.map((x, i) => (Object.is(back[i], x) || (x === 0 && back[i] === 0) ? null : [String(x), String(back[i])])).filter(Boolean);
  }, wsUrl(sc), fast);
  assert.deepEqual(r, []);
});

test("errors are Meteor.Error-shaped: error, reason, details, errorType", async () => {
  const sc = scenario("js-err");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const grab = (p) => p.then(() => null, (e) => ({ error: e.error, reason: e.reason, details: e.details, errorType: e.errorType, isError: e instanceof Error, message: e.message }));
    const server = await grab(conn.call("fail", "not-allowed", "No way", { field: "x" }));
    const missing = await grab(conn.call("nope"));
    let usage;
    try { conn.call("add", 1, 2, () => {}); } catch (e) { usage = e.code; }
    const bad = await grab(conn.call("echo", { f: () => 1 }));
    conn.close();
    return { server, missing, usage, bad };
  }, wsUrl(sc), fast);
  assert.deepEqual(r.server, { error: "not-allowed", reason: "No way", details: { field: "x" }, errorType: "Meteor.Error", isError: true, message: "No way [not-allowed]" });
  assert.equal(r.missing.error, 404);
  assert.equal(r.missing.reason, "Method 'nope' not found");
  assert.equal(r.usage, "invalid-argument", "a trailing callback is a usage error");
  assert.equal(r.bad.error, "bad-arguments");
});

test("200 calls made offline resolve in order after reconnect; outbox counts follow", async () => {
  const sc = scenario("js-offline");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((res) => conn.once("connect", res));
    conn.disconnect();
    const seen = [];
    conn.onOutboxChange((o) => seen.push(o));
    const order = [];
    const calls = [];
    for (let i = 0; i < 200; i++) calls.push(conn.call("echo", i).then((v) => order.push(v)));
    const offline = conn.outbox();
    conn.reconnect();
    await Promise.all(calls);
    const after = conn.outbox();
    conn.close();
    return { order, offline, after, first: seen[0], max: Math.max(...seen.map((o) => o.queued)) };
  }, wsUrl(sc), fast);
  assert.deepEqual(r.order, Array.from({ length: 200 }, (_, i) => i));
  assert.deepEqual(r.offline, { queued: 200, inFlight: 0 });
  assert.deepEqual(r.after, { queued: 0, inFlight: 0 });
  assert.deepEqual(r.first, { queued: 0, inFlight: 0 }, "called at once");
  assert.equal(r.max, 200);
  const ex = await control(sc, "executions");
  assert.equal(ex.runs.echo, 200);
});

test("a forced drop with resumption: every call resolves and runs exactly once", async () => {
  const sc = scenario("js-resume");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((res) => conn.once("connect", res));
    const calls = [conn.call("sleep", 300)];
    for (let i = 0; i < 10; i++) calls.push(conn.call("inc", "k"));
    (window.t ??= {})[sc] = { conn, all: Promise.all(calls), id: conn.id };
  }, wsUrl(sc), fast, sc);
  await new Promise((r) => setTimeout(r, 50));
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { conn, all, id } = window.t[sc];
    const values = await all;
    const out = { values, resumed: conn.resumed, sameId: conn.id === id };
    conn.close();
    return out;
  }, sc);
  assert.deepEqual(r.values.slice(1).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(r.resumed, true);
  assert.equal(r.sameId, true);
  const ex = await control(sc, "executions");
  assert.equal(ex.runs.inc, 10);
  assert.equal(ex.runs.sleep, 1);
});

test("apply options: noRetry, wait, timeoutMs, AbortSignal, onResultReceived", async () => {
  const sc = scenario("js-options");
  await control(sc, "resume?on=false");
  const r = await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((res) => conn.once("connect", res));
    const grab = (p) => p.then((v) => ({ ok: v }), (e) => ({ error: e.error }));
    // wait: the later call stays unsent while the wait call runs.
    const w = conn.apply("sleep", [100], { wait: true });
    const later = conn.call("echo", "later");
    const duringWait = conn.outbox();
    await Promise.all([w, later]);
    // timeout
    const timeout = await grab(conn.apply("sleep", [1000], { timeoutMs: 100 }));
    // onResultReceived fires with the result
    let early;
    const v = await conn.apply("updatedFirst", ["x"], { onResultReceived: (err, res) => (early = [err, res]) });
    // AbortSignal: aborting an unsent call cancels it; an aborted signal rejects at once
    conn.disconnect();
    const ac = new AbortController();
    const aborted = grab(conn.apply("inc", ["never"], { signal: ac.signal }));
    ac.abort();
    const pre = await grab(conn.apply("inc", ["never"], { signal: AbortSignal.abort() }));
    const abortedResult = await aborted;
    conn.reconnect();
    await new Promise((res) => conn.once("connect", res));
    // noRetry: in flight when the link drops → invocation-failed
    const nr = grab(conn.apply("sleep", [300], { noRetry: true }));
    (window.t ??= {})[sc] = { conn, nr };
    return { duringWait, timeout, early, v, abortedResult, pre };
  }, wsUrl(sc), fast, sc);
  assert.deepEqual(r.duringWait, { queued: 1, inFlight: 1 });
  assert.deepEqual(r.timeout, { error: "timeout" });
  assert.deepEqual(r.early, [undefined, "x"]);
  assert.equal(r.v, "x");
  assert.deepEqual(r.abortedResult, { error: "cancelled" });
  assert.deepEqual(r.pre, { error: "cancelled" });
  await new Promise((res) => setTimeout(res, 50));
  await control(sc, "drop");
  const nr = await inPage(async ([sc]) => {
    const out = await window.t[sc].nr;
    window.t[sc].conn.close();
    return out;
  }, sc);
  assert.deepEqual(nr, { error: "invocation-failed" });
  const ex = await control(sc, "executions");
  assert.equal(ex.counters.never, undefined, "cancelled calls never ran");
});

test("queue-full rejects at once; the queued calls are unharmed", async () => {
  const sc = scenario("js-full");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, { ...fast, maxPendingCalls: 3 });
    conn.disconnect();
    const ok = [1, 2, 3].map((i) => conn.call("echo", i));
    const full = await conn.call("echo", 4).then(() => null, (e) => e.error);
    conn.reconnect();
    const values = await Promise.all(ok);
    conn.close();
    return { full, values };
  }, wsUrl(sc), fast);
  assert.equal(r.full, "queue-full");
  assert.deepEqual(r.values, [1, 2, 3]);
});

test("close() and free() settle every pending call: none is left hanging", async () => {
  const sc = scenario("js-free");
  const r = await inPage(async ([url, fast]) => {
    const settle = (p) => p.then((v) => ({ v }), (e) => ({ error: e.error, name: e.name }));
    // close(): queued calls reject with "closed".
    const a = ddp.DDP.connect(url, fast);
    a.disconnect();
    const closed = [1, 2].map((i) => settle(a.call("echo", i)));
    a.close();
    // free() (the JS object released by hand): the connection goes away
    // with calls still queued, and they reject the same way.
    const b = ddp.DDP.connect(url, fast);
    b.disconnect();
    const freed = [3, 4].map((i) => settle(b.call("echo", i)));
    b.free();
    const deadline = new Promise((res) => setTimeout(() => res("hanging"), 2000));
    return { closed: await Promise.all(closed), freed: await Promise.race([Promise.all(freed), deadline]) };
  }, wsUrl(sc), fast);
  assert.deepEqual(r.closed, [{ error: "closed", name: "DDPMethodError" }, { error: "closed", name: "DDPMethodError" }]);
  assert.deepEqual(r.freed, [{ error: "closed", name: "DDPMethodError" }, { error: "closed", name: "DDPMethodError" }]);
});

test("onReconnect (connection and global) calls go first after a new session", async () => {
  const sc = scenario("js-hooks");
  await control(sc, "resume?on=false");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    const order = [];
    conn.onReconnect(() => conn.apply("echo", ["login"], { wait: true }).then((v) => order.push(v)));
    const global = ddp.DDP.onReconnect(() => conn.call("echo", "global").then((v) => order.push(v)));
    await new Promise((res) => conn.once("connect", res));
    (window.t ??= {})[sc] = { conn, order, global };
  }, wsUrl(sc), fast, sc);
  await control(sc, "refuse?on=true");
  await control(sc, "drop");
  await inPage(async ([sc]) => {
    const { conn, order } = window.t[sc];
    while (conn.connected) await new Promise((r) => setTimeout(r, 10));
    window.t[sc].calls = Promise.all(["a", "b"].map((x) => conn.call("echo", x).then((v) => order.push(v))));
  }, sc);
  await control(sc, "refuse?on=false");
  const order = await inPage(async ([sc]) => {
    const { conn, order, calls, global } = window.t[sc];
    await calls;
    global.stop();
    conn.close();
    return order;
  }, sc);
  assert.deepEqual(order, ["login", "global", "a", "b"]);
});

test("client stubs run at call time; randomId matches the server's via randomSeed", async () => {
  const sc = scenario("js-stubs");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const log = [];
    conn.methods({
      newId(scope) {
        const id = this.randomId(scope);
        log.push(["stub", this.isSimulation, this.name, id]);
        return id;
      },
      add(a, b) {
        return a + b + 1000;
      },
      fail() {
        throw new Error("stub says no");
      },
    });
    const p = conn.call("newId", "items");
    log.push(["after call"]);
    const serverId = await p;
    const stubValue = await conn.apply("add", [1, 2], { returnStubValue: true });
    const thrown = await conn.apply("fail", [], { throwStubExceptions: true }).then(() => null, (e) => e.message);
    conn.close();
    return { log, serverId, stubValue, thrown };
  }, wsUrl(sc), fast);
  assert.deepEqual(r.log, [["stub", true, "newId", r.serverId], ["after call"]], "the stub ran at call time and made the server's id");
  assert.equal(r.serverId.length, 17);
  assert.equal(r.stubValue, 1003);
  assert.equal(r.thrown, "stub says no");
  const ex = await control(sc, "executions");
  assert.equal(ex.runs.fail, undefined, "a throwing stub with throwStubExceptions does not call the server");
});
