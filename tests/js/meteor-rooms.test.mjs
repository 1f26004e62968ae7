// Rooms served by a real Meteor app: Meteor 3.0.4's own ddp-server (the
// fixture ../shared/meteor-server) with server/meteor/rooms.js installed by
// server/meteor/test-app.mjs, driven through the npm package in headless
// Chromium. Without the fixture these tests print one "skipped" line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, fast } from "./harness.mjs";
import { findFixture, ensureFixtureDeps, startApp, startRedis } from "../../server/meteor/fixture.mjs";

const fixture = findFixture();

/**
 * Installed in the page: `window.members(urls, roomId, options)` makes one
 * Client per URL, joins each to `roomId` and resolves, once all are in,
 * `{ clients, rooms, got, typed, close() }` (`got[i]`: member i's message
 * data; `typed[i]`: [data, type or null]). `window.until(cond)` polls.
 */
function pageHelpers([fast]) {
  window.members = async (urls, roomId, options) => {
    const clients = urls.map((u) => new ddp.Client(u, fast));
    const rooms = clients.map((c) => c.connect(roomId, options));
    const got = rooms.map(() => []);
    const typed = rooms.map(() => []);
    rooms.forEach((room, i) =>
      room.on("message", (data, type) => {
        got[i].push(data);
        typed[i].push([data, type ?? null]);
      }),
    );
    await Promise.all(rooms.map((room) => new Promise((res) => room.once("connect", res))));
    return { clients, rooms, got, typed, close: () => clients.forEach((c) => c.close()) };
  };
  window.until = async (cond, ms = 3000) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  };
}

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
  const page = usePage(before, after, assert, async () => (await ready()).base);
  let helpers;
  const inPage = async (fn, ...args) => {
    await (helpers ??= page(pageHelpers, fast));
    return page(fn, ...args);
  };
  const stats = async (room = "") => (await fetch(`${app.base}/control/stats?room=${encodeURIComponent(room)}`)).json();

  test("two clients on Meteor: 20-char ids, typed EJSON messages both ways, acks", async () => {
    const r = await inPage(async ([url]) => {
      const m = await members([url, url], "lobby", { auth: { user: "b" }, query: { x: 1 } });
      const [ra, rb] = m.rooms;
      const acks = [await ra.send({ text: "hi", at: new Date(5) }, "chat"), await rb.send([1, "two"]), await rb.send(3.5, "n")];
      await until(() => m.got[0].length >= 2 && m.got[1].length >= 1);
      const [[first, type]] = m.typed[1];
      (window.t ??= {}).lobby = m;
      return { ids: [ra.id, rb.id], acks, gotA: m.typed[0], gotB: [[first.text, type]], isDate: first.at instanceof Date, ms: first.at?.getTime() };
    }, app.ws);
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
    await inPage(() => window.t.lobby.close());
  });

  test("broadcast excludes the sender unless includeSelf; send() reaches the sender only", async () => {
    const r = await inPage(async ([url]) => {
      const m = await members([url, url], "bcast");
      const [ra, rb] = m.rooms;
      await ra.send("others"); // broadcast(data, type): not to a
      await ra.send("everybody", "all"); // broadcast(data, type, true)
      await ra.send("me", "echo"); // connection.send(data, type)
      // a's frames were written before its acks; b's last message closes both streams.
      await rb.send("end", "all");
      await until(() => m.got.every((g) => g.at(-1) === "end"));
      m.close();
      return m.got;
    }, app.ws);
    assert.deepEqual(r, [
      ["everybody", "me", "end"],
      ["others", "everybody", "end"],
    ]);
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
    const old = await inPage(async ([url]) => {
      const m = await members([url, url], "r");
      const [ra] = m.rooms;
      const a = m.clients[0];
      const log = [];
      for (const e of ["disconnect", "reconnect_attempt", "reconnect"]) ra.on(e, (x) => log.push(e));
      // a stays offline after the drop, so its sends wait in the outbox.
      const down = new Promise((res) =>
        ra.once("disconnect", () => {
          a.connection.disconnect();
          res();
        }),
      );
      (window.t ??= {}).drop = { m, log, down, ids: m.rooms.map((x) => x.id) };
      return window.t.drop.ids;
    }, app.ws);
    const { dropped } = await (await fetch(`${app.base}/control/drop`)).json();
    assert.ok(dropped >= 2, `dropped ${dropped}`);
    const r = await inPage(async () => {
      const { m, log, down, ids } = window.t.drop;
      const [ra, rb] = m.rooms;
      await down;
      const acks = Promise.all([1, 2, 3].map((i) => ra.send(i)));
      await until(() => rb.connected && rb.id !== ids[1]);
      m.clients[0].connection.reconnect();
      await acks;
      await until(() => ra.connected && ra.id !== ids[0]);
      await until(() => m.got[1].length >= 3);
      await new Promise((r) => setTimeout(r, 100));
      const out = { log, ids: [ra.id, rb.id], got: m.got[1] };
      m.close();
      return out;
    });
    assert.equal(r.log[0], "disconnect");
    assert.ok(r.log.includes("reconnect_attempt") && r.log.includes("reconnect"), r.log.join());
    assert.ok(r.ids.every((id, i) => id?.length === 20 && id !== old[i]), "new ids after the rejoin");
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
      await until(() => got[0].at(-1) === "last");
      (window.t ??= {}).multi = [c, d];
      return { got, ids: mine.map((x) => x.id) };
    }, app.ws, fast);
    assert.deepEqual(r.got, [["to-one", "last"], ["to-two"], ["to-three"]]);
    const rooms = await Promise.all(["one", "two", "three"].map((n) => stats(`multi-${n}`)));
    const sessionOf = (s, id) => s.memberSessions[s.members.indexOf(id)];
    const sessions = rooms.map((s, i) => sessionOf(s, r.ids[i]));
    assert.equal(new Set(sessions).size, 1, "one DDP session (one socket) carries the three memberships");
    assert.ok(sessions[0]);
    await inPage(() => window.t.multi.forEach((x) => x.close()));
  });

  test("a broadcast is serialised once, whatever the room's size (no per-member merge-box work)", async () => {
    const n = 6;
    const before = (await stats()).serialised["rooms.inbox"] ?? 0;
    const r = await inPage(async ([url, n]) => {
      const m = await members(Array(n).fill(url), "big");
      await m.rooms[0].send("hello all", "all");
      await until(() => m.got.every((g) => g.length >= 1));
      m.close();
      return m.got;
    }, app.ws, n);
    assert.deepEqual(r, Array.from({ length: n }, () => ["hello all"]));
    const s = await stats();
    assert.equal(s.serialised["rooms.inbox"] - before, 1, `one frame serialised for ${n} members`);
    assert.equal(s.mergeBoxViews, 0);
  });

  test("lowLevelSend: false: Meteor's own `added` per member, still nothing in the merge boxes", async () => {
    const plain = await startApp(fixture, { ROOMS_LOW_LEVEL_SEND: "0" });
    try {
      const r = await inPage(async ([url]) => {
        const m = await members([url, url, url], "plain");
        await m.rooms[0].send({ at: new Date(7) }, "all");
        await until(() => m.got.every((g) => g.length >= 1));
        const out = m.got.map(([d]) => d.at instanceof Date && d.at.getTime());
        (window.t ??= {}).plain = m;
        return out;
      }, plain.ws);
      assert.deepEqual(r, [7, 7, 7]);
      const s = await (await fetch(`${plain.base}/control/stats`)).json();
      assert.equal(s.serialised["rooms.inbox"], 1 + 3, "the frame, then one `added` per member");
      assert.equal(s.mergeBoxViews, 0, "NO_MERGE_NO_HISTORY: no member keeps the messages");
      await inPage(() => window.t.plain.close());
    } finally {
      await plain.stop();
    }
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
      // a on instance 1; b and c on instance 2
      const r = await inPage(async ([one, two]) => {
        const m = await members([one, two, two], "cluster");
        const [ra, , rc] = m.rooms;
        await ra.send("from-a"); // to b and c, through Redis
        await ra.send("a-to-all", "all"); // a once (locally), b and c
        await rc.send("from-c"); // to b (locally) and a (through Redis)
        const want = [2, 3, 2];
        await until(() => m.got.every((g, i) => g.length >= want[i]));
        await new Promise((r) => setTimeout(r, 150)); // nothing more may come
        m.close();
        return m.got.map((g) => [...g].sort());
      }, ...apps.map((a) => a.ws));
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
