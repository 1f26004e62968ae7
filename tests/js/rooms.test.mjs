// Rooms through the npm package: new Client(url).connect(roomId) gives a
// js-collaboration-style Connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("two clients: connect events, 20-char ids, typed messages both ways, one socket per client", async () => {
  const sc = scenario("js-rooms");
  const r = await inPage(async ([url, fast]) => {
    const a = new ddp.Client(url, fast);
    const b = new ddp.Client(url, fast);
    const ra = a.connect("lobby");
    const rb = b.connect("lobby", { auth: { user: "b" }, query: { x: 1 } });
    const gotA = [];
    const gotB = [];
    ra.on("message", (data, type) => gotA.push([data, type ?? null]));
    rb.on("message", (data, type) => gotB.push([data, type ?? null]));
    const before = { id: ra.id, connected: ra.connected, roomId: ra.roomId };
    await Promise.all([new Promise((res) => ra.once("connect", res)), new Promise((res) => rb.once("connect", res))]);
    const acks = [await ra.send({ text: "hi" }, "chat"), await rb.send([1, "two"]), await rb.send(3.5, "n")];
    while (gotA.length < 2 || gotB.length < 1) await new Promise((r) => setTimeout(r, 10));
    const out = { before, idA: ra.id, connected: ra.connected, acks, gotA, gotB };
    window.t ??= {};
    window.t.rooms = { a, b };
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r.before, { id: undefined, connected: false, roomId: "lobby" });
  assert.equal(r.idA.length, 20);
  assert.equal(r.connected, true);
  assert.deepEqual(r.acks, [true, true, true]);
  assert.deepEqual(r.gotB, [[{ text: "hi" }, "chat"]]);
  assert.deepEqual(r.gotA, [[[1, "two"], null], [3.5, "n"]]);
  const stats = await control(sc, "stats?room=lobby");
  assert.equal(stats.connections, 2);
  assert.ok(stats.members.includes(r.idA));
  await inPage(async () => {
    window.t.rooms.a.close();
    window.t.rooms.b.close();
  });
});

test("a rejected join: error event with the server's reason, no retry; close() gives 'client disconnect'", async () => {
  const sc = scenario("js-rooms-reject");
  const r = await inPage(async ([url, fast]) => {
    const c = new ddp.Client(url, fast);
    const bad = c.connect("vault", { auth: { reject: "invalid token" } });
    const err = await new Promise((res) => bad.on("error", res));
    const good = c.connect("open");
    await new Promise((res) => good.once("connect", res));
    let reason;
    good.on("disconnect", (x) => (reason = x));
    good.close();
    let unknown;
    try {
      good.on("mesage", () => {});
    } catch (e) {
      unknown = e.code;
    }
    const sendAfterClose = await good.send("x").then(() => "sent", (e) => e.error);
    c.close();
    return { code: err.code, message: err.message, connected: bad.connected, reason, unknown, sendAfterClose };
  }, wsUrl(sc), fast);
  assert.deepEqual(r, {
    code: "join-rejected",
    message: "invalid token",
    connected: false,
    reason: "client disconnect",
    unknown: "unknown-event",
    sendAfterClose: "closed",
  });
  const ex = await control(sc, "executions");
  assert.equal(ex.runs["rooms.join"], 2, "one rejected attempt, one good join: no retry loop");
});

test("after a drop: disconnect, reconnect_attempt / reconnectAttempts, reconnect; a new id; offline sends delivered once", async () => {
  const sc = scenario("js-rooms-drop");
  await control(sc, "resume?on=false");
  await inPage(async ([url, fast, sc]) => {
    const a = new ddp.Client(url, fast);
    const b = new ddp.Client(url, fast);
    const ra = a.connect("r");
    const rb = b.connect("r");
    const log = [];
    for (const e of ["disconnect", "reconnect_attempt", "reconnectAttempts", "reconnect"]) ra.on(e, (x) => log.push([e, x]));
    const got = [];
    rb.on("message", (d) => got.push(d));
    await Promise.all([new Promise((res) => ra.once("connect", res)), new Promise((res) => rb.once("connect", res))]);
    // a stays offline after the drop (disconnect() right in the event), so
    // its sends wait in the outbox while b comes back; rooms keep no
    // history, so b must be in the room when they are delivered.
    const down = new Promise((res) =>
      ra.once("disconnect", () => {
        a.connection.disconnect();
        res();
      }),
    );
    (window.t ??= {})[sc] = { a, b, ra, rb, log, got, id: ra.id, idb: rb.id, down };
  }, wsUrl(sc), fast, sc);
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { a, b, ra, rb, log, got, id, idb, down } = window.t[sc];
    await down;
    const acks = Promise.all([1, 2, 3].map((i) => ra.send(i)));
    while (!rb.connected || rb.id === idb) await new Promise((r) => setTimeout(r, 5));
    a.connection.reconnect();
    await acks; // acknowledged after a's rejoin
    while (ra.id === id || !ra.connected) await new Promise((r) => setTimeout(r, 5));
    while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    const out = { log: log.map(([e]) => e), newId: ra.id !== id && ra.id.length === 20, newIdB: rb.id !== idb, got };
    a.close();
    b.close();
    return out;
  }, sc);
  assert.equal(r.log[0], "disconnect");
  assert.ok(r.log.includes("reconnect_attempt") && r.log.includes("reconnectAttempts") && r.log.includes("reconnect"), r.log.join());
  assert.equal(r.newId, true);
  assert.equal(r.newIdB, true);
  assert.deepEqual(r.got, [1, 2, 3]);
});
