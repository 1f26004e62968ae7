// Subscriptions and collections through the npm package's JavaScript API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("subscribe → onReady → find/findOne; onChange delivers added/changed/removed with EJSON values", async () => {
  const sc = scenario("js-sub");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const notes = conn.collection("notes");
    const changes = [];
    const watch = notes.onChange((c) => changes.push(c));
    await new Promise((res) => conn.subscribe("docs", "notes", { onReady: res }));
    await conn.call("insertDoc", "notes", { _id: "n1", text: "hi", when: new Date(5) });
    const afterInsert = notes.findOne("n1");
    await conn.call("updateDoc", "notes", "n1", { text: null, n: 2 });
    await conn.call("removeDoc", "notes", "n1");
    watch.stop();
    await conn.call("insertDoc", "notes", { _id: "n2" });
    const out = {
      changes: changes.map((c) =>
        c.fields ? { ...c, fields: Object.fromEntries(Object.entries(c.fields).map(([k, v]) => [k, v instanceof Date ? ["date", v.getTime()] : v])) } : c,
      ),
      whenIsDate: afterInsert.when instanceof Date,
      afterInsert: { _id: afterInsert._id, text: afterInsert.text },
      count: notes.count(),
      all: notes.find().map((d) => d._id),
    };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r.changes, [
    { type: "added", id: "n1", fields: { text: "hi", when: ["date", 5] } },
    { type: "changed", id: "n1", fields: { n: 2 }, cleared: ["text"] },
    { type: "removed", id: "n1" },
  ]);
  assert.equal(r.whenIsDate, true);
  assert.deepEqual(r.afterInsert, { _id: "n1", text: "hi" });
  assert.equal(r.count, 1, "the stopped watcher missed n2 but the collection has it");
  assert.deepEqual(r.all, ["n2"]);
});

test("find, findOne, onChange and call results give the same values on the plain-JSON and the EJSON paths, in the server's field order", async () => {
  const sc = scenario("js-docvalues");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const docs = conn.collection("values");
    const seen = [];
    const watch = docs.onChange((c) => seen.push(c));
    await new Promise((res) => conn.subscribe("docs", "values", { onReady: res }));
    // Plain JSON (read with one JSON.parse), with awkward keys and values.
    const plain = { _id: "p", n: 1.5, big: 2 ** 53, neg: -0.1, s: 'q"\\u00e9\n', deep: { a: [1, { b: null }], e: {} }, ["__proto__"]: { polluted: 1 } };
    // Holding EJSON values (read key by key).
    const typed = { _id: "t", when: new Date(7), bin: new Uint8Array([1, 2]), inner: { nan: NaN, look: { $date: "not a date" } }, ["__proto__"]: { p: 2 } };
    await conn.call("insertDoc", "values", JSON.parse(JSON.stringify(plain)));
    await conn.call("insertDoc", "values", typed);
    await conn.call("insertDoc", "values", { _id: "o", z: 1, a: 2, m: { y: 1, b: 2 } });
    const order = { doc: Object.keys(docs.findOne("o")), nested: Object.keys(docs.findOne("o").m), change: Object.keys(seen.at(-1).fields) };
    const echoed = await conn.call("echoAll", { x: [1, "y", { z: true }] }, new Date(9));
    const describe = (d) => ({
      keys: Object.keys(d).sort(),
      proto: Object.getPrototypeOf(d) === Object.prototype,
      ownProto: Object.prototype.hasOwnProperty.call(d, "__proto__") ? JSON.stringify(d["__proto__"]) : null,
      n: d.n ?? null, big: d.big ?? null, neg: d.neg ?? null, s: d.s ?? null, deep: d.deep ? JSON.stringify(d.deep) : null,
      when: d.when instanceof Date ? d.when.getTime() : null,
      bin: d.bin instanceof Uint8Array ? [...d.bin] : null,
      nan: d.inner ? Number.isNaN(d.inner.nan) : null,
      look: d.inner ? JSON.stringify(d.inner.look) : null,
    });
    const out = {
      one: ["p", "t"].map((id) => describe(docs.findOne(id))),
      all: docs.find().filter((d) => d._id !== "o").map(describe),
      order,
      changes: seen.filter((c) => c.id !== "o").map((c) => ({ type: c.type, id: c.id, doc: describe(c.fields) })),
      echoed: [JSON.stringify(echoed[0]), echoed[1] instanceof Date ? echoed[1].getTime() : null],
      polluted: ({}).polluted === undefined,
    };
    watch.stop();
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  const p = { keys: ["__proto__", "_id", "big", "deep", "n", "neg", "s"], proto: true, ownProto: '{"polluted":1}', n: 1.5, big: 2 ** 53, neg: -0.1, s: 'q"\\u00e9\n', deep: '{"a":[1,{"b":null}],"e":{}}', when: null, bin: null, nan: null, look: null };
  const t = { keys: ["__proto__", "_id", "bin", "inner", "when"], proto: true, ownProto: '{"p":2}', n: null, big: null, neg: null, s: null, deep: null, when: 7, bin: [1, 2], nan: true, look: '{"$date":"not a date"}' };
  assert.deepEqual(r.one, [p, t]);
  assert.deepEqual(r.all, [p, t]);
  const without = ({ keys, ...rest }) => ({ ...rest, keys: keys.filter((k) => k !== "_id") });
  assert.deepEqual(r.changes, [{ type: "added", id: "p", doc: without(p) }, { type: "added", id: "t", doc: without(t) }]);
  assert.deepEqual(r.order, { doc: ["_id", "z", "a", "m"], nested: ["y", "b"], change: ["z", "a", "m"] }, "fields keep the server's order");
  assert.deepEqual(r.echoed, ['{"x":[1,"y",{"z":true}]}', 9]);
  assert.equal(r.polluted, true, "no prototype was polluted");
});

test("a failing publication: onStop(err) with the server's error, and an error event", async () => {
  const sc = scenario("js-subfail");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const events = [];
    conn.on("error", (e) => events.push(e.code));
    const err = await new Promise((res) => conn.subscribe("failing", { onStop: res }));
    const missing = await new Promise((res) => conn.subscribe("nope", 1, 2, { onStop: res }));
    conn.close();
    return { error: err.error, reason: err.reason, errorType: err.errorType, missing: missing.error, events };
  }, wsUrl(sc), fast);
  assert.deepEqual(r, {
    error: "sub-failed",
    reason: "This publication always fails",
    errorType: "Meteor.Error",
    missing: 404,
    events: ["subscription-failed", "subscription-failed"],
  });
});

test("stop() calls onStop without an error and removes the documents; ready() and subscriptionId", async () => {
  const sc = scenario("js-substop");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const items = conn.collection("items");
    let stopped = "not yet";
    let sub;
    await new Promise((res) => (sub = conn.subscribe("items", 5, { onReady: res, onStop: (e) => (stopped = e) })));
    const before = { ready: sub.ready(), n: items.count(), idLength: sub.subscriptionId.length };
    sub.stop();
    while (items.count() > 0) await new Promise((r) => setTimeout(r, 10));
    const out = { before, stopped, after: items.count() };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r, { before: { ready: true, n: 5, idLength: 17 }, stopped: undefined, after: 0 });
});

test("a forced drop without resumption: the list never empties and converges to the server", async () => {
  const sc = scenario("js-flicker");
  await control(sc, "resume?on=false");
  await inPage(async ([url, fast, sc]) => {
    const writer = ddp.DDP.connect(url, fast);
    for (let i = 0; i < 5; i++) await writer.call("insertDoc", "r", { _id: `d${i}`, v: i });
    const conn = ddp.DDP.connect(url, fast);
    const docs = conn.collection("r");
    await new Promise((res) => conn.subscribe("docs", "r", res));
    const seen = [];
    let min = Infinity;
    docs.onChange((c) => {
      seen.push([c.type, c.id]);
      min = Math.min(min, docs.count());
    });
    const down = new Promise((res) => conn.once("disconnect", res));
    (window.t ??= {})[sc] = { writer, conn, docs, seen, getMin: () => min, id: conn.id, down };
  }, wsUrl(sc), fast, sc);
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { writer, conn, docs, seen, getMin, id, down } = window.t[sc];
    await down;
    await writer.call("removeDoc", "r", "d4");
    while (!conn.connected || conn.id === id) await new Promise((r) => setTimeout(r, 5));
    while (docs.findOne("d4")) await new Promise((r) => setTimeout(r, 5));
    const out = { seen, min: getMin(), ids: docs.find().map((d) => d._id).sort() };
    conn.close();
    writer.close();
    return out;
  }, sc);
  assert.deepEqual(r.seen, [["removed", "d4"]]);
  assert.equal(r.min, 4);
  assert.deepEqual(r.ids, ["d0", "d1", "d2", "d3"]);
});

test("stub writes show at once and give way to the server's version; the stub's id is the server's", async () => {
  const sc = scenario("js-stubwrite");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const notes = conn.collection("notes");
    await new Promise((res) => conn.subscribe("docs", "notes", res));
    conn.methods({
      insertDoc(collection, doc) {
        return this.insert(collection, { ...doc, pending: true });
      },
    });
    const changes = [];
    notes.onChange((c) => changes.push([c.type, c.fields?.pending ?? null, c.cleared ?? null]));
    const p = conn.call("insertDoc", "notes", { text: "hi" });
    const local = notes.find();
    const serverId = await p;
    const doc = notes.findOne(serverId);
    conn.close();
    return { localId: local[0]._id, localPending: local[0].pending, serverId, doc, changes };
  }, wsUrl(sc), fast);
  assert.equal(r.localPending, true);
  assert.equal(r.localId, r.serverId);
  assert.deepEqual(r.doc, { _id: r.serverId, text: "hi" });
  assert.deepEqual(r.changes, [["added", true, null], ["changed", null, ["pending"]]]);
});
