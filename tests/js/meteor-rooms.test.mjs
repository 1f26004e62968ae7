// Rooms served by a real Meteor app: Meteor 3.0.4's own ddp-server (the
// fixture ../shared/meteor-server) with server/meteor/rooms.js installed by
// server/meteor/test-app.mjs, driven through the npm package in headless
// Chromium. Without the fixture these tests print one "skipped" line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, fast } from "./harness.mjs";
import { findFixture, ensureFixtureDeps, startApp, startRedis } from "../../server/meteor/fixture.mjs";

const fixture = findFixture();

if (!fixture) {
  console.log("skipped: no Meteor fixture");
  test("rooms on Meteor's own server", { skip: "no Meteor fixture" }, () => {});
} else {
  // Root-level hooks start at once, not one after the other: the page's
  // waits for the app through this promise.
  let app;
  let starting;
  const ready = () =>
    (starting ??= (async () => {
      ensureFixtureDeps(fixture);
      app = await startApp(fixture);
      return app;
    })());
  before(ready);
  after(async () => (await starting)?.stop());
  const inPage = usePage(before, after, assert, async () => (await ready()).base);
  const stats = async (room = "") => (await fetch(`${app.base}/control/stats?room=${encodeURIComponent(room)}`)).json();

  test("two clients on Meteor: 20-char ids, typed EJSON messages both ways, acks", async () => {
    const r = await inPage(async ([url, fast]) => {
      const a = new ddp.Client(url, fast);
      const b = new ddp.Client(url, fast);
      const ra = a.connect("lobby");
      const rb = b.connect("lobby", { auth: { user: "b" }, query: { x: 1 } });
      const gotA = [];
      const gotB = [];
      ra.on("message", (data, type) => gotA.push([data, type ?? null]));
      rb.on("message", (data, type) => gotB.push([data, type ?? null]));
      await Promise.all([new Promise((res) => ra.once("connect", res)), new Promise((res) => rb.once("connect", res))]);
      const acks = [await ra.send({ text: "hi", at: new Date(5) }, "chat"), await rb.send([1, "two"]), await rb.send(3.5, "n")];
      while (gotA.length < 2 || gotB.length < 1) await new Promise((r) => setTimeout(r, 10));
      const at = gotB[0][0].at;
      const out = { ids: [ra.id, rb.id], acks, gotA, gotB: [[gotB[0][0].text, gotB[0][1]]], isDate: at instanceof Date, ms: at?.getTime() };
      (window.t ??= {}).lobby = { a, b };
      return out;
    }, app.ws, fast);
    assert.equal(r.ids[0].length, 20);
    assert.notEqual(r.ids[0], r.ids[1]);
    assert.deepEqual(r.acks, [true, true, true]);
    assert.deepEqual(r.gotB, [["hi", "chat"]]);
    assert.deepEqual([r.isDate, r.ms], [true, 5]);
    assert.deepEqual(r.gotA, [[[1, "two"], null], [3.5, "n"]]);
    const s = await stats("lobby");
    assert.deepEqual(s.members.sort(), [...r.ids].sort(), "the server's connection ids are the clients'");
    assert.equal(new Set(s.memberSessions).size, 2);
    assert.equal(s.mergeBoxViews, 0, "nothing of rooms.inbox in any merge box");
    await inPage(async () => {
      window.t.lobby.a.close();
      window.t.lobby.b.close();
    });
  });

  test("broadcast excludes the sender unless includeSelf; send() reaches the sender only", async () => {
    const r = await inPage(async ([url, fast]) => {
      const a = new ddp.Client(url, fast);
      const b = new ddp.Client(url, fast);
      const ra = a.connect("bcast");
      const rb = b.connect("bcast");
      const gotA = [];
      const gotB = [];
      ra.on("message", (d) => gotA.push(d));
      rb.on("message", (d) => gotB.push(d));
      await Promise.all([new Promise((res) => ra.once("connect", res)), new Promise((res) => rb.once("connect", res))]);
      await ra.send("others"); // broadcast(data, type): not to a
      await ra.send("everybody", "all"); // broadcast(data, type, true)
      await ra.send("me", "echo"); // connection.send(data, type)
      // a's frames were written before its acks; b's last message closes both streams.
      await rb.send("end", "all");
      while (gotA.at(-1) !== "end" || gotB.at(-1) !== "end") await new Promise((r) => setTimeout(r, 10));
      a.close();
      b.close();
      return { gotA, gotB };
    }, app.ws, fast);
    assert.deepEqual(r.gotA, ["everybody", "me", "end"]);
    assert.deepEqual(r.gotB, ["others", "everybody", "end"]);
  });

  test("middleware rejections: a join reaches the error event, a message rejects its send", async () => {
    const r = await inPage(async ([url, fast]) => {
      const c = new ddp.Client(url, fast);
      const bad = c.connect("vault", { auth: { reject: "invalid token" } });
      const err = await Promise.race([
        new Promise((res) => bad.on("error", res)),
        new Promise((res) => setTimeout(() => res({ code: "no error event within 3 s" }), 3000)),
      ]);
      const good = c.connect("vault");
      await new Promise((res) => good.once("connect", res));
      const refused = await good.send("x", "forbidden").then(() => "sent", (e) => [e.error, e.reason]);
      const accepted = await good.send("y", "echo");
      const goodId = good.id;
      c.close();
      return { code: err.code, message: err.message, connected: bad.connected, refused, accepted, goodId };
    }, app.ws, fast);
    assert.deepEqual(
      { code: r.code, message: r.message, connected: r.connected, refused: r.refused, accepted: r.accepted },
      { code: "join-rejected", message: "invalid token", connected: false, refused: ["message-rejected", "forbidden type"], accepted: true },
    );
    const joins = (await stats()).log.filter(([e, room]) => e === "connect" && room === "vault");
    assert.deepEqual(joins.map(([, , id]) => id), [r.goodId], "the rejected join never reached the connect hook");
  });

  test("after a drop: the memberships end with the sessions, rooms rejoin with new ids, offline sends arrive once", async () => {
    await inPage(async ([url, fast]) => {
      const a = new ddp.Client(url, fast);
      const b = new ddp.Client(url, fast);
      const ra = a.connect("r");
      const rb = b.connect("r");
      const log = [];
      for (const e of ["disconnect", "reconnect_attempt", "reconnect"]) ra.on(e, (x) => log.push([e, x]));
      const got = [];
      rb.on("message", (d) => got.push(d));
      await Promise.all([new Promise((res) => ra.once("connect", res)), new Promise((res) => rb.once("connect", res))]);
      // a stays offline after the drop, so its sends wait in the outbox.
      const down = new Promise((res) =>
        ra.once("disconnect", () => {
          a.connection.disconnect();
          res();
        }),
      );
      (window.t ??= {}).drop = { a, b, ra, rb, log, got, id: ra.id, idb: rb.id, down };
    }, app.ws, fast);
    const old = await inPage(() => [window.t.drop.id, window.t.drop.idb]);
    const { dropped } = await (await fetch(`${app.base}/control/drop`)).json();
    assert.ok(dropped >= 2, `dropped ${dropped}`);
    const r = await inPage(async () => {
      const { a, b, ra, rb, log, got, id, idb, down } = window.t.drop;
      await down;
      const acks = Promise.all([1, 2, 3].map((i) => ra.send(i)));
      while (!rb.connected || rb.id === idb) await new Promise((r) => setTimeout(r, 5));
      a.connection.reconnect();
      await acks;
      while (ra.id === id || !ra.connected) await new Promise((r) => setTimeout(r, 5));
      while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      const out = { log: log.map(([e]) => e), ids: [ra.id, rb.id], got };
      a.close();
      b.close();
      return out;
    });
    assert.equal(r.log[0], "disconnect");
    assert.ok(r.log.includes("reconnect_attempt") && r.log.includes("reconnect"), r.log.join());
    assert.ok(r.ids.every((id, i) => id.length === 20 && id !== old[i]), "new ids after the rejoin");
    assert.deepEqual(r.got, [1, 2, 3]);
    const ends = (await stats()).log.filter(([e, room]) => e === "disconnect" && room === "r");
    for (const id of old) assert.deepEqual(ends.filter((x) => x[2] === id).map((x) => x[3]), ["transport close"], `old membership ${id}`);
  });

  test("three rooms share one socket; messages reach the right room", async () => {
    const r = await inPage(async ([url, fast]) => {
      const c = new ddp.Client(url, fast);
      const d = new ddp.Client(url, fast);
      const names = ["one", "two", "three"];
      const mine = names.map((n) => c.connect(`multi-${n}`));
      const theirs = names.map((n) => d.connect(`multi-${n}`));
      const got = names.map(() => []);
      mine.forEach((room, i) => room.on("message", (data) => got[i].push(data)));
      await Promise.all([...mine, ...theirs].map((room) => new Promise((res) => room.once("connect", res))));
      for (let i = 0; i < 3; i++) await theirs[i].send(`to-${names[i]}`);
      await theirs[0].send("last", "all");
      while (got[0].at(-1) !== "last") await new Promise((r) => setTimeout(r, 10));
      (window.t ??= {}).multi = { c, d };
      return { got, ids: mine.map((x) => x.id) };
    }, app.ws, fast);
    assert.deepEqual(r.got, [["to-one", "last"], ["to-two"], ["to-three"]]);
    const rooms = await Promise.all(["one", "two", "three"].map((n) => stats(`multi-${n}`)));
    const sessionOf = (s, id) => s.memberSessions[s.members.indexOf(id)];
    const sessions = rooms.map((s, i) => sessionOf(s, r.ids[i]));
    assert.equal(new Set(sessions).size, 1, "one DDP session (one socket) carries the three memberships");
    assert.ok(sessions[0]);
    await inPage(async () => {
      window.t.multi.c.close();
      window.t.multi.d.close();
    });
  });

  test("a broadcast is serialised once, whatever the room's size (no per-member merge-box work)", async () => {
    const n = 6;
    const before = (await stats()).serialised["rooms.inbox"] ?? 0;
    const r = await inPage(async ([url, fast, n]) => {
      const clients = Array.from({ length: n }, () => new ddp.Client(url, fast));
      const rooms = clients.map((c) => c.connect("big"));
      const got = rooms.map(() => []);
      rooms.forEach((room, i) => room.on("message", (d) => got[i].push(d)));
      await Promise.all(rooms.map((room) => new Promise((res) => room.once("connect", res))));
      await rooms[0].send("hello all", "all");
      while (got.some((g) => g.length < 1)) await new Promise((r) => setTimeout(r, 10));
      clients.forEach((c) => c.close());
      return got;
    }, app.ws, fast, n);
    assert.deepEqual(r, Array.from({ length: n }, () => ["hello all"]));
    const s = await stats();
    assert.equal(s.serialised["rooms.inbox"] - before, 1, `one frame serialised for ${n} members`);
    assert.equal(s.mergeBoxViews, 0);
  });

  test("two Meteor instances with a Redis backplane: a room spans both, exclusion and includeSelf hold", async (t) => {
    const redis = await startRedis();
    if (!redis) {
      console.log("skipped: no redis-server (the Redis backplane test)");
      return t.skip("no redis-server");
    }
    const apps = [];
    try {
      for (let i = 0; i < 2; i++) apps.push(await startApp(fixture, { ROOMS_REDIS_URL: redis.url }));
      const r = await inPage(async ([urls, fast]) => {
        const a = new ddp.Client(urls[0], fast); // on instance 1
        const b = new ddp.Client(urls[1], fast); // on instance 2
        const c = new ddp.Client(urls[1], fast); // on instance 2
        const rooms = [a, b, c].map((x) => x.connect("cluster"));
        const got = rooms.map(() => []);
        rooms.forEach((room, i) => room.on("message", (d) => got[i].push(d)));
        await Promise.all(rooms.map((room) => new Promise((res) => room.once("connect", res))));
        await rooms[0].send("from-a"); // to b and c, through Redis
        await rooms[0].send("a-to-all", "all"); // a once (locally), b and c
        await rooms[2].send("from-c"); // to b (locally) and a (through Redis)
        const want = [2, 3, 2];
        const deadline = Date.now() + 3000;
        while (got.some((g, i) => g.length < want[i]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, 150)); // nothing more may come
        [a, b, c].forEach((x) => x.close());
        return got.map((g) => [...g].sort());
      }, apps.map((a) => a.ws), fast);
      assert.deepEqual(r, [
        ["a-to-all", "from-c"],
        ["a-to-all", "from-a", "from-c"],
        ["a-to-all", "from-a"],
      ]);
    } finally {
      await Promise.all(apps.map((a) => a.stop()));
      await redis.stop();
    }
  });
}
