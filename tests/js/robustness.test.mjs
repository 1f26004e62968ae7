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
    conn.on("connect", () => { conn.call("echo", "from a listener").catch(() => {}); });
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

const frame = (sc, text, pad = 0) => control(sc, `frame?text=${encodeURIComponent(text)}&pad=${pad}`);

test("frames of raw UTF-8 arrive intact at every length, across the intake buffer's growth and release", async () => {
  const sc = scenario("js-utf8-frames");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    // Characters of 1, 2, 3 and 4 UTF-8 bytes (the server writes them raw,
    // not escaped), after ASCII runs of every size, so a frame's non-ASCII
    // part starts anywhere in the intake buffer and the buffer grows in the
    // middle of a frame.
    const wide = ["é", "中", "😀", "\u2028", "ß𝄞"];
    let seed = 7;
    const rand = (n) => ((seed = (seed * 48271) % 2147483647), seed % n);
    const strings = [];
    for (const size of [0, 1, 5, 40, 300, 3000, 30000, 200000, 20, 100000, 3]) {
      let s = "";
      while (s.length < size) s += rand(3) === 0 ? wide[rand(wide.length)] : "x".repeat(rand(size + 1));
      strings.push(s, "😀".repeat(size / 4), "a".repeat(size) + "é");
    }
    const back = [];
    for (const s of strings) back.push(await conn.call("echo", s));
    (window.t ??= {})[sc] = { conn, strings, intact: back.filter((b, i) => b === strings[i]).length };
  }, wsUrl(sc), fast, sc);
  // A 2 MB frame (past the 1 MiB the intake buffer keeps), non-ASCII at
  // both ends: the buffer is released after it and grown again after.
  await frame(sc, `{"msg":"added","collection":"wide","id":"w1","fields":{"s":"ü$PAD😀"}}`, 2_000_000);
  const r = await inPage(async ([sc]) => {
    const { conn, strings, intact } = window.t[sc];
    const docs = conn.collection("wide");
    while (!docs.findOne("w1")) await new Promise((ok) => setTimeout(ok, 5));
    const s = docs.findOne("w1").s;
    const again = [];
    for (const x of ["ünïcødé", "x".repeat(5000) + "中", "😀".repeat(20000)]) again.push((await conn.call("echo", x)) === x);
    conn.close();
    return { sent: strings.length, intact, big: [s.length, s.slice(0, 2), s.slice(-3)], again };
  }, sc);
  assert.deepEqual(r, { sent: 33, intact: 33, big: [2_000_003, "üx", "x😀"], again: [true, true, true] });
});

test("a call the server refuses as too large (close 1009) fails with message-too-big instead of looping through reconnects", async () => {
  const sc = scenario("js-too-big");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    const reconnects = [];
    conn.on("reconnect", () => reconnects.push(1));
    // The test server takes messages of up to 1 MiB, as a server behind a
    // limit would: this one is 1.2 MB. Calls around it are not lost.
    const before = conn.call("echo", "before");
    const big = conn.call("echo", "x".repeat(1_200_000)).then(() => "resolved", (e) => [e.error, e.reason]);
    const after = conn.call("echo", "after");
    const results = [await big, await before, await after];
    // The same size again is refused again (nothing is learned from a
    // refusal: a server's limit may count compressed bytes), and fails
    // the same way; the connection goes on.
    const again = await conn.call("echo", "y".repeat(1_300_000)).then(() => "resolved", (e) => e.error);
    const fine = await conn.call("add", 2, 3);
    // Each refusal cost one reconnect, no more: nothing is re-sent in a loop.
    await new Promise((ok) => setTimeout(ok, 300));
    const out = { results, again, fine, reconnects: reconnects.length, status: conn.status().status };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.equal(r.results[0][0], "message-too-big");
  assert.match(r.results[0][1], /too large.*1009/);
  assert.deepEqual(r.results.slice(1), ["before", "after"]);
  assert.deepEqual([r.again, r.fine, r.reconnects, r.status], ["message-too-big", 5, 2, "connected"]);
});

test("lone surrogate escapes: a result resolves and a document appears (as JSON.parse reads them, U+FFFD in place)", async () => {
  const sc = scenario("js-surrogate");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    const errors = [];
    conn.on("error", (e) => errors.push(e.code));
    // The first call of a connection has id "1": the test answers it by hand.
    const pending = conn.call("sleep", 60000);
    const docs = conn.collection("cut");
    (window.t ??= {})[sc] = { conn, pending, docs, errors };
  }, wsUrl(sc), fast, sc);
  await frame(sc, String.raw`{"msg":"result","id":"1","result":{"text":"cut \ud83d","pair":"\ud83d\ude00"}}`);
  await frame(sc, String.raw`{"msg":"updated","methods":["1"]}`);
  await frame(sc, String.raw`{"msg":"added","collection":"cut","id":"d1","fields":{"name":"half \udc00 emoji"}}`);
  const r = await inPage(async ([sc]) => {
    const { conn, pending, docs, errors } = window.t[sc];
    const result = await pending;
    while (!docs.findOne("d1")) await new Promise((ok) => setTimeout(ok, 5));
    const out = { result, doc: docs.findOne("d1"), errors };
    conn.close();
    return out;
  }, sc);
  assert.deepEqual(r.result, { text: "cut \ufffd", pair: "😀" });
  assert.deepEqual(r.doc, { _id: "d1", name: "half \ufffd emoji" });
  assert.deepEqual(r.errors, []);
});

test("a result that cannot be read fails its call with a typed error instead of leaving it pending", async () => {
  const sc = scenario("js-badresult");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((ok) => conn.once("connect", ok));
    const errors = [];
    conn.on("error", (e) => errors.push(e.code));
    // Methods of a session run one at a time: the real result comes after 1 s.
    const outcome = conn.call("sleep", 1000).then(() => "resolved", (e) => [e.error, e.reason]);
    (window.t ??= {})[sc] = { conn, outcome, errors };
  }, wsUrl(sc), fast, sc);
  await frame(sc, `{"msg":"result","id":"1","result":{"unterminated": [1, 2`);
  const r = await inPage(async ([sc]) => {
    const { conn, outcome, errors } = window.t[sc];
    const out = { outcome: await outcome, errors, after: await conn.call("add", 1, 1) };
    conn.close();
    return out;
  }, sc);
  assert.equal(r.outcome[0], "frame-not-json");
  assert.match(r.outcome[1], /could not be read/);
  assert.equal(r.errors[0], "frame-not-json");
  assert.equal(r.after, 2, "the connection goes on");
});

test("maxFrameBytes bounds memory: a 64 MB frame is rejected before it is copied into wasm memory", async () => {
  const sc = scenario("js-oversized");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, { ...fast, maxFrameBytes: 1 << 20 });
    await new Promise((ok) => conn.once("connect", ok));
    const errors = [];
    conn.on("error", (e) => errors.push([e.code, e.message]));
    const outcome = conn.call("sleep", 1000).then(() => "resolved", (e) => e.error);
    const before = window.ddpWasm.memory.buffer.byteLength;
    (window.t ??= {})[sc] = { conn, outcome, errors, before };
  }, wsUrl(sc), fast, sc);
  // A result for call "1" with 64 MB of padding, and a non-ASCII character.
  await frame(sc, `{"msg":"result","id":"1","result":"é$PAD"}`, 64 << 20);
  const r = await inPage(async ([sc]) => {
    const { conn, outcome, errors, before } = window.t[sc];
    const out = { outcome: await outcome, errors };
    out.grewBy = window.ddpWasm.memory.buffer.byteLength - before;
    out.after = await conn.call("add", 2, 2);
    conn.close();
    return out;
  }, sc);
  assert.equal(r.outcome, "frame-too-large", "the call it answered fails, typed");
  assert.equal(r.errors[0][0], "frame-too-large");
  assert.ok(r.grewBy < 4 << 20, `wasm memory grew by ${r.grewBy} bytes`);
  assert.equal(r.after, 4, "the connection goes on");
});

test("the wall clock set back an hour while waiting does not stall the retry", async () => {
  const sc = scenario("js-clockback");
  const retry = { minCount: 0, minTimeout: 0, baseTimeout: 1000, exponent: 1, maxTimeout: 1000, fuzz: 0 };
  await inPage(async ([url, fast, retry, sc]) => {
    const conn = ddp.DDP.connect(url, { ...fast, retry });
    await new Promise((ok) => conn.once("connect", ok));
    (window.t ??= {})[sc] = { conn, waiting: new Promise((ok) => conn.onStatusChange((s) => s.status === "waiting" && ok())) };
  }, wsUrl(sc), fast, retry, sc);
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { conn, waiting } = window.t[sc];
    await waiting;
    const realNow = Date.now;
    Date.now = () => realNow() - 3600e3; // the clock is set back an hour
    const t0 = performance.now();
    try {
      await Promise.race([
        new Promise((ok) => conn.once("connect", ok)),
        new Promise((_, fail) => setTimeout(() => fail(new Error("no reconnect within 10 s")), 10000)),
      ]);
    } finally {
      Date.now = realNow;
    }
    conn.close();
    return performance.now() - t0;
  }, sc);
  assert.ok(r < 5000, `reconnected after ${r} ms`);
});

test("arguments whose reading throws (a getter, a revoked Proxy) reject the call; nothing throws", async () => {
  const sc = scenario("js-hostile-args");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const grab = (f) => {
      try {
        return f().then(() => "resolved", (e) => [e.error, e.reason]);
      } catch (e) {
        return Promise.resolve(["threw", String(e)]);
      }
    };
    const getter = { get boom() { throw new Error("getter says no"); } };
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const trap = new Proxy({}, { ownKeys() { throw new Error("trap says no"); } });
    const out = {
      getter: await grab(() => conn.call("echo", getter)),
      revoked: await grab(() => conn.call("echo", [1, proxy])),
      trap: await grab(() => conn.apply("echo", [{ nested: trap }])),
      after: await conn.call("add", 1, 2),
    };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.equal(r.getter[0], "bad-arguments");
  assert.match(r.getter[1], /getter says no/);
  assert.equal(r.revoked[0], "bad-arguments");
  assert.equal(r.trap[0], "bad-arguments");
  assert.match(r.trap[1], /trap says no/);
  assert.equal(r.after, 3);
});

test("a full outbox refuses a call before reading its arguments", async () => {
  const r = await inPage(async ([fast]) => {
    // Offline (nothing listens on this port): calls wait in the outbox.
    const conn = ddp.DDP.connect("ws://127.0.0.1:3399", { ...fast, maxPendingCalls: 3, maxPendingBytes: 1000 });
    let reads = 0;
    const counted = { get x() { reads++; return 1; } };
    const first = [conn.call("a", 1), conn.call("b", 2), conn.call("c", 3)];
    first.forEach((p) => p.catch(() => {}));
    const full = await conn.call("d", counted).then(() => null, (e) => [e.error, e.reason]);
    const readsWhenFull = reads;
    conn.close();
    // Bytes: the second string is already over the room left, so the
    // object after it is never read.
    const other = ddp.DDP.connect("ws://127.0.0.1:3399", { ...fast, maxPendingBytes: 1000 });
    const big = await other.call("e", "x".repeat(600), "y".repeat(600), counted).then(() => null, (e) => [e.error, e.reason]);
    const readsWhenBig = reads;
    other.close();
    return { full, readsWhenFull, big, readsWhenBig };
  }, fast);
  assert.equal(r.full[0], "queue-full");
  assert.match(r.full[1], /maxPendingCalls/);
  assert.equal(r.readsWhenFull, 0, "the arguments of a refused call are not read");
  assert.equal(r.big[0], "queue-full");
  assert.match(r.big[1], /maxPendingBytes/);
  assert.equal(r.readsWhenBig, 0, "reading stops once the room is used up");
});

test("the browser's reason for refusing a WebSocket URL reaches the app", async () => {
  const r = await inPage(async ([fast]) => {
    // Within this client's URL rules, refused by the browser's WebSocket
    // constructor (an IPv6 address with two "::").
    let conn;
    try {
      conn = ddp.DDP.connect("ws://[1::2::3]:3399/x", { ...fast, maxRetries: 0 });
    } catch (e) {
      return { thrown: e.code };
    }
    const error = await new Promise((ok) => conn.once("error", ok));
    conn.close();
    return { code: error.code, message: error.message };
  }, fast);
  assert.equal(r.code, "socket-refused", JSON.stringify(r));
  assert.match(r.message, /could not be opened: .*(invalid|URL)/i);
});
