// The JavaScript surface of the built npm package, in headless Chromium
// against the real test server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("DDP.connect: status() has exactly Meteor's fields, onStatusChange fires at once, connect event, id", async () => {
  const sc = scenario("js-connect");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const seen = [];
    const handle = conn.onStatusChange((s) => seen.push(s));
    const first = conn.status();
    const idBefore = conn.id;
    await new Promise((res) => conn.once("connect", res));
    const connected = conn.status();
    const out = { first, seenFirst: seen[0], idBefore, id: conn.id, connected, flag: conn.connected, url: conn.url, statuses: seen.map((s) => s.status) };
    handle.stop();
    conn.close();
    out.afterStop = seen.length;
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r.first, { connected: false, status: "connecting", retryCount: 0 });
  assert.deepEqual(r.seenFirst, r.first, "called at once with the current value");
  assert.equal(r.idBefore, undefined);
  assert.equal(r.id.length, 17);
  assert.deepEqual(r.connected, { connected: true, status: "connected", retryCount: 0 });
  assert.equal(r.flag, true);
  assert.equal(r.url, wsUrl(sc));
  assert.deepEqual(r.statuses, ["connecting", "connected"]);
  assert.equal(r.afterStop, 2, "stop() stopped the callbacks before close()");
  // The server sees the close a moment later.
  let stats = await control(sc, "stats");
  for (let i = 0; i < 100 && stats.connections !== 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    stats = await control(sc, "stats");
  }
  assert.equal(stats.connections, 0);
});

test("server drop: disconnect(reason), reconnect_attempt, reconnect, waiting with retryTime, new id", async () => {
  const sc = scenario("js-drop");
  await control(sc, "resume?on=false"); // a server without resumption: a new session
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    const log = [];
    const statuses = [];
    conn.on("disconnect", (r) => log.push(["disconnect", r]));
    conn.on("reconnect_attempt", (n) => log.push(["reconnect_attempt", n]));
    conn.on("reconnectAttempts", (n) => log.push(["reconnectAttempts", n]));
    conn.on("reconnect", (n) => log.push(["reconnect", n]));
    conn.onStatusChange((s) => statuses.push(s));
    await new Promise((res) => conn.once("connect", res));
    (window.t ??= {})[sc] = { conn, log, statuses, firstId: conn.id };
  }, wsUrl(sc), fast, sc);
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { conn, log, statuses, firstId } = window.t[sc];
    // The log was listening before the drop: waiting on it cannot miss a
    // reconnect that happened before this code ran.
    while (!log.some(([e]) => e === "reconnect")) await new Promise((res) => setTimeout(res, 5));
    const out = { log, statuses, firstId, id: conn.id };
    conn.close();
    return out;
  }, sc);
  assert.deepEqual(r.log[0], ["disconnect", "transport close"]);
  assert.deepEqual(r.log[1], ["reconnect_attempt", 1]);
  assert.deepEqual(r.log[2], ["reconnectAttempts", 1], "the alias hears the same event");
  assert.ok(r.log.some(([e, n]) => e === "reconnect" && n >= 1));
  const waiting = r.statuses.find((s) => s.status === "waiting");
  assert.equal(typeof waiting.retryTime, "number");
  assert.equal(waiting.connected, false);
  assert.ok(!("reason" in waiting));
  assert.notEqual(r.id, r.firstId);
});

test("disconnect() → offline with 'client disconnect'; reconnect() → connected", async () => {
  const sc = scenario("js-offline");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((res) => conn.once("connect", res));
    let reason;
    conn.on("disconnect", (x) => (reason = x));
    conn.disconnect();
    const offline = conn.status();
    await new Promise((res) => setTimeout(res, 300));
    const still = conn.status().status;
    conn.reconnect();
    await new Promise((res) => conn.once("connect", res));
    const back = conn.status();
    conn.close();
    return { reason, offline, still, back };
  }, wsUrl(sc), fast);
  assert.equal(r.reason, "client disconnect");
  assert.deepEqual(r.offline, { connected: false, status: "offline", retryCount: 0 });
  assert.equal(r.still, "offline");
  assert.equal(r.back.status, "connected");
});

test("version mismatch: failed with Meteor's reason", async () => {
  const sc = scenario("js-version");
  await control(sc, "versions?v=2");
  const s = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    await new Promise((res) => conn.onStatusChange((s) => s.status === "failed" && res()));
    const s = conn.status();
    conn.close();
    return s;
  }, wsUrl(sc), fast);
  assert.deepEqual(s, {
    connected: false,
    status: "failed",
    retryCount: 0,
    reason: "DDP version negotiation failed; server requested version 2",
  });
});

test("silent server: disconnect with 'ping timeout'", async () => {
  const sc = scenario("js-silent");
  await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, { ...fast, heartbeatInterval: 200, heartbeatTimeout: 300 });
    await new Promise((res) => conn.once("connect", res));
    (window.t ??= {})[sc] = { conn, reason: new Promise((res) => conn.once("disconnect", res)) };
  }, wsUrl(sc), fast, sc);
  await control(sc, "silent?on=true");
  const reason = await inPage(async ([sc]) => {
    const r = await window.t[sc].reason;
    window.t[sc].conn.close();
    return r;
  }, sc);
  assert.equal(reason, "ping timeout");
});

test("retry limit: reconnect_failed and reconnectFailed, status failed", async () => {
  const r = await inPage(async ([fast]) => {
    const conn = ddp.DDP.connect("ws://127.0.0.1:3399", { ...fast, maxRetries: 2 });
    const attempts = [];
    conn.on("reconnect_attempt", (n) => attempts.push(n));
    let alias = 0;
    conn.on("reconnectFailed", () => alias++);
    await new Promise((res) => conn.once("reconnect_failed", res));
    const s = conn.status();
    conn.close();
    return { attempts, alias, s };
  }, fast);
  assert.deepEqual(r.attempts, [1, 2]);
  assert.equal(r.alias, 1);
  assert.deepEqual(r.s, { connected: false, status: "failed", retryCount: 2, reason: "gave up after 2 reconnect attempts" });
});

test("typed errors: bad URL, unknown option, unknown event", async () => {
  const r = await inPage(async () => {
    const grab = (f) => {
      try {
        f();
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, message: e.message, isError: e instanceof Error };
      }
    };
    return {
      url: grab(() => ddp.DDP.connect("ftp://x")),
      option: grab(() => ddp.DDP.connect("ws://127.0.0.1:3399", { heartbeatIntervall: 5 })),
      value: grab(() => ddp.DDP.connect("ws://127.0.0.1:3399", { versions: ["7"] })),
      event: grab(() => {
        const c = ddp.DDP.connect("ws://127.0.0.1:3399", { watchPage: false });
        try {
          c.on("conect", () => {});
        } finally {
          c.close();
        }
      }),
    };
  });
  assert.deepEqual({ ...r.url, message: undefined }, { name: "DDPError", code: "invalid-url", message: undefined, isError: true });
  assert.match(r.url.message, /scheme/);
  assert.equal(r.option.code, "invalid-options");
  assert.match(r.option.message, /heartbeatIntervall/);
  assert.equal(r.value.code, "invalid-options");
  assert.equal(r.event.code, "unknown-event");
});

test("on/once/off: once fires once, off removes one listener or all, a throwing listener harms nobody", async () => {
  const sc = scenario("js-events");
  const r = await inPage(async ([url, fast, sc]) => {
    const conn = ddp.DDP.connect(url, fast);
    const calls = { once: 0, kept: 0, removed: 0, all: 0, afterThrow: 0 };
    const removed = () => calls.removed++;
    conn.once("connect", () => calls.once++);
    conn.on("connect", () => calls.kept++);
    conn.on("connect", removed);
    conn.on("disconnect", () => calls.all++);
    conn.on("connect", () => {
      throw new Error("listener bug");
    });
    conn.on("connect", () => calls.afterThrow++);
    conn.off("connect", removed);
    conn.off("disconnect");
    await new Promise((res) => conn.once("connect", res));
    conn.disconnect();
    conn.reconnect();
    await new Promise((res) => conn.once("connect", res));
    conn.close();
    return calls;
  }, wsUrl(sc), fast, sc);
  assert.deepEqual(r, { once: 1, kept: 2, removed: 0, all: 0, afterThrow: 2 });
});

test("TypeScript definitions name real types", async () => {
  const dts = await readFile(new URL("../../pkg/ddp_live.d.ts", import.meta.url), "utf8");
  assert.match(dts, /status\(\): DDPStatus;/);
  assert.match(dts, /onStatusChange\(callback: \(status: DDPStatus\) => void\): StopHandle;/);
  assert.match(dts, /static connect\(url: string, options\?: DDPConnectOptions \| null\): DDPConnection;/);
  assert.match(dts, /export interface DDPConnection extends DDPEmitter<DDPConnectionEvents> \{/);
  assert.match(dts, /export interface DDPStatus \{/);
  // The public class declarations use no `any`.
  const classes = dts.split("export interface InitOutput")[0];
  assert.doesNotMatch(classes, /:\s*any\b/);
});
