// Queries over the local cache through the npm package's JavaScript API:
// find/findOne with Mongo selectors and options, observe/observeChanges
// (Meteor's callbacks), and a live query through a drop.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, scenario, control, wsUrl, fast } from "./harness.mjs";

const inPage = usePage(before, after, assert);

test("find(selector, options) and findOne: operators, array semantics, EJSON values, sort/skip/limit/fields, typed errors", async () => {
  const sc = scenario("js-q-find");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const todos = conn.collection("todos");
    await new Promise((res) => conn.subscribe("docs", "todos", res));
    const rows = [
      { _id: "a", title: "Apples", done: false, n: 3, tags: ["home", "food"], when: new Date(30), meta: { p: 1 } },
      { _id: "b", title: "bread", done: true, n: 1, tags: ["food"], when: new Date(10), meta: { p: 2 } },
      { _id: "c", title: "Cake", done: false, n: 2, tags: [], when: new Date(20) },
      { _id: "d", title: "dishes", done: false, n: 5, tags: "home", when: new Date(40), meta: { p: 1 } },
    ];
    for (const row of rows) await conn.call("insertDoc", "todos", row);
    const ids = (docs) => docs.map((d) => d._id);
    const caught = (f) => { try { f(); return null; } catch (e) { return e.code; } };
    const out = {
      all: ids(todos.find()),
      open: ids(todos.find({ done: false }, { sort: { n: -1 } })),
      openLimited: todos.find({ done: false }, { sort: { when: 1 }, skip: 1, limit: 1, fields: { title: 1 } }),
      tag: ids(todos.find({ tags: "home" })),
      regex: ids(todos.find({ title: /^[a-c]/i }, { sort: [["title", "desc"]] })),
      dates: ids(todos.find({ when: { $gte: new Date(20), $lt: new Date(40) } })),
      dotted: ids(todos.find({ "meta.p": 1 })),
      ops: ids(todos.find({ $or: [{ n: { $in: [1, 2] } }, { tags: { $size: 2 } }], title: { $not: /cake/i } })),
      missing: ids(todos.find({ meta: { $exists: false } })),
      elem: ids(todos.find({ tags: { $elemMatch: { $eq: "food" } }, n: { $ne: 1 } })),
      all2: ids(todos.find({ tags: { $all: ["food", "home"] } })),
      byId: todos.findOne("b").title,
      one: todos.findOne({ done: false }, { sort: { n: 1 } })._id,
      oneFields: todos.findOne("a", { fields: { n: 1, _id: 0 } }),
      none: todos.findOne({ n: { $gt: 99 } }),
      nullSel: todos.find(null).length,
      excluded: Object.keys(todos.find({ _id: "a" }, { fields: { tags: 0, meta: 0, when: 0 } })[0]).sort(),
      unsupported: caught(() => todos.find({ $where: "this.n > 1" })),
      unsupportedField: caught(() => todos.find({ n: { $type: 2 } })),
      badRegex: caught(() => todos.find({ title: { $regex: "(" } })),
      badOptions: caught(() => todos.find({}, { limit: -1 })),
      badOption: caught(() => todos.find({}, { transform: null })),
    };
    conn.close();
    return out;
  }, wsUrl(sc), fast);
  assert.deepEqual(r.all, ["a", "b", "c", "d"]);
  assert.deepEqual(r.open, ["d", "a", "c"]);
  assert.deepEqual(r.openLimited, [{ _id: "a", title: "Apples" }]);
  assert.deepEqual(r.tag, ["a", "d"]);
  assert.deepEqual(r.regex, ["b", "c", "a"], "JavaScript's string order: bread > Cake > Apples");
  assert.deepEqual(r.dates, ["a", "c"]);
  assert.deepEqual(r.dotted, ["a", "d"]);
  assert.deepEqual(r.ops, ["a", "b"]);
  assert.deepEqual(r.missing, ["c"]);
  assert.deepEqual(r.elem, ["a"]);
  assert.deepEqual(r.all2, ["a"]);
  assert.equal(r.byId, "bread");
  assert.equal(r.one, "c");
  assert.deepEqual(r.oneFields, { n: 3 });
  assert.equal(r.none, undefined);
  assert.equal(r.nullSel, 0, "minimongo's safety rule: a null selector matches nothing");
  assert.deepEqual(r.excluded, ["_id", "done", "n", "title"]);
  assert.equal(r.unsupported, "unsupported-operator");
  assert.equal(r.unsupportedField, "unsupported-operator");
  assert.equal(r.badRegex, "bad-regex");
  assert.equal(r.badOptions, "bad-options");
  assert.equal(r.badOption, "bad-options");
});

// In-page helper: applies observe callbacks to a list, as a UI would.
const replayer = `
  window.replayer = () => {
    const list = [];
    const log = [];
    const callbacks = {
      addedAt(doc, i, before) { log.push(["addedAt", doc._id, i, before]); list.splice(i, 0, doc); },
      changedAt(doc, old, i) { log.push(["changedAt", doc._id, i, old.n]); list[i] = doc; },
      removedAt(old, i) { log.push(["removedAt", old._id, i]); list.splice(i, 1); },
      movedTo(doc, from, to, before) { log.push(["movedTo", doc._id, from, to, before]); list.splice(from, 1); list.splice(to, 0, doc); },
    };
    return { list, log, callbacks };
  };
`;

test("observe: initial results as addedAt in order, then server-side changes as changedAt/movedTo/removedAt with the window refilled; replaying them equals find(); stop() stops", async () => {
  const sc = scenario("js-q-observe");
  const r = await inPage(async ([url, fast, replayer]) => {
    eval(replayer);
    const conn = ddp.DDP.connect(url, fast);
    const items = conn.collection("tasks");
    await new Promise((res) => conn.subscribe("docs", "tasks", res));
    for (const [id, n, status] of [["a", 1, "open"], ["b", 2, "open"], ["c", 3, "open"], ["d", 4, "closed"]]) {
      await conn.call("insertDoc", "tasks", { _id: id, n, status });
    }
    const sel = { status: "open" };
    const opts = { sort: { n: 1 }, limit: 2 };
    const { list, log, callbacks } = window.replayer();
    const handle = items.observe(sel, opts, callbacks);
    const initial = log.splice(0);
    const steps = [];
    const step = async (name, ...args) => {
      await conn.call(name, "tasks", ...args);
      steps.push({ log: log.splice(0), same: JSON.stringify(list) === JSON.stringify(items.find(sel, opts)) });
    };
    await step("updateDoc", "c", { n: 0 });            // c enters first, b leaves the window
    await step("updateDoc", "a", { n: 0.5, x: 1 });     // a changes in place
    await step("updateDoc", "c", { n: 1.5 });          // c moves after a
    await step("removeDoc", "a");                       // a leaves, b comes back from outside
    await step("updateDoc", "d", { status: "open", n: -1 }); // d starts matching, first
    await step("updateDoc", "b", { status: "closed" }); // b stops matching, outside the window: nothing
    handle.stop();
    await conn.call("insertDoc", "tasks", { _id: "e", n: -5, status: "open" });
    const out = { initial, steps, afterStop: log.length, final: items.find(sel, opts).map((d) => d._id) };
    conn.close();
    return out;
  }, wsUrl(sc), fast, replayer);
  assert.deepEqual(r.initial, [["addedAt", "a", 0, null], ["addedAt", "b", 1, null]], "appended in order, as Meteor's initial adds");
  assert.deepEqual(r.steps.map((s) => s.log), [
    [["removedAt", "b", 1], ["addedAt", "c", 0, "a"]],
    [["changedAt", "a", 1, 1]],
    [["changedAt", "c", 0, 0], ["movedTo", "c", 0, 1, null]],
    [["removedAt", "a", 0], ["addedAt", "b", 1, null]],
    [["removedAt", "b", 1], ["addedAt", "d", 0, "c"]],
    [],
  ]);
  assert.ok(r.steps.every((s) => s.same), "the replayed list equals find() after every step");
  assert.equal(r.afterStop, 0);
  assert.deepEqual(r.final, ["e", "d"]);
});

test("observeChanges: ordered (addedBefore/movedBefore) and unordered callbacks with Meteor's meanings, projected fields", async () => {
  const sc = scenario("js-q-changes");
  const r = await inPage(async ([url, fast]) => {
    const conn = ddp.DDP.connect(url, fast);
    const items = conn.collection("things");
    await new Promise((res) => conn.subscribe("docs", "things", res));
    await conn.call("insertDoc", "things", { _id: "a", n: 1, kind: "x", secret: 1 });
    await conn.call("insertDoc", "things", { _id: "b", n: 2, kind: "x", secret: 2 });
    const ordered = [];
    const unordered = [];
    const h1 = items.observeChanges({ kind: "x" }, { sort: { n: -1 }, fields: { secret: 0 } }, {
      addedBefore: (id, fields, before) => ordered.push(["addedBefore", id, fields, before]),
      changed: (id, fields) => ordered.push(["changed", id, Object.entries(fields)]),
      movedBefore: (id, before) => ordered.push(["movedBefore", id, before]),
      removed: (id) => ordered.push(["removed", id]),
    });
    const h2 = items.observeChanges({ kind: "x" }, undefined, {
      added: (id, fields) => unordered.push(["added", id, fields.n]),
      changed: (id, fields) => unordered.push(["changed", id, Object.keys(fields)]),
      removed: (id) => unordered.push(["removed", id]),
    });
    await conn.call("updateDoc", "things", "a", { n: 3, secret: 9 });
    await conn.call("updateDoc", "things", "b", { secret: 7 }); // hidden by fields: no call for h1
    await conn.call("updateDoc", "things", "b", { n: null });
    await conn.call("removeDoc", "things", "a");
    h1.stop();
    h2.stop();
    conn.close();
    return { ordered, unordered };
  }, wsUrl(sc), fast);
  assert.deepEqual(r.ordered, [
    ["addedBefore", "b", { n: 2, kind: "x" }, null],
    ["addedBefore", "a", { n: 1, kind: "x" }, null],
    ["changed", "a", [["n", 3]]],
    ["movedBefore", "a", "b"],
    ["changed", "b", [["n", undefined]]],
    ["removed", "a"],
  ]);
  assert.deepEqual(r.unordered, [
    ["added", "a", 1],
    ["added", "b", 2],
    ["changed", "a", ["n", "secret"]],
    ["changed", "b", ["secret"]],
    ["changed", "b", ["n"]],
    ["removed", "a"],
  ]);
});

test("a drop in the middle of a live query (no resumption): the observer sees only the real differences, never a flicker", async () => {
  const sc = scenario("js-q-drop");
  await control(sc, "resume?on=false");
  await inPage(async ([url, fast, sc, replayer]) => {
    eval(replayer);
    const writer = ddp.DDP.connect(url, fast);
    for (let i = 0; i < 6; i++) await writer.call("insertDoc", "q", { _id: `d${i}`, n: i, status: i % 2 ? "closed" : "open" });
    const conn = ddp.DDP.connect(url, fast);
    const docs = conn.collection("q");
    await new Promise((res) => conn.subscribe("docs", "q", res));
    const rep = window.replayer();
    let min = Infinity;
    const cb = rep.callbacks;
    const handle = docs.observe({ status: "open" }, { sort: { n: -1 } }, {
      ...cb,
      removedAt(old, i) { cb.removedAt(old, i); min = Math.min(min, rep.list.length); },
    });
    rep.log.splice(0);
    const down = new Promise((res) => conn.once("disconnect", res));
    (window.t ??= {})[sc] = { writer, conn, docs, rep, handle, getMin: () => min, id: conn.id, down };
  }, wsUrl(sc), fast, sc, replayer);
  await control(sc, "drop");
  const r = await inPage(async ([sc]) => {
    const { writer, conn, docs, rep, handle, getMin, id, down } = window.t[sc];
    await down;
    await writer.call("removeDoc", "q", "d4");
    await writer.call("updateDoc", "q", "d1", { status: "open" });
    while (!conn.connected || conn.id === id) await new Promise((r) => setTimeout(r, 5));
    // Both server-side changes in (the client may be back before they ran).
    while (docs.findOne("d4") || docs.findOne("d1")?.status !== "open") await new Promise((r) => setTimeout(r, 5));
    const out = {
      log: rep.log,
      min: getMin(),
      list: rep.list.map((d) => d._id),
      find: docs.find({ status: "open" }, { sort: { n: -1 } }).map((d) => d._id),
    };
    handle.stop();
    conn.close();
    writer.close();
    return out;
  }, sc);
  assert.deepEqual(r.log.map((l) => l[0]).sort(), ["addedAt", "removedAt"], `only the two real differences: ${JSON.stringify(r.log)}`);
  // d2 and d0 stayed: a flicker (emptied, then refilled) would go below 2.
  assert.ok(r.min >= 2, `the list never lost a document that stayed (min ${r.min})`);
  assert.deepEqual(r.list, ["d2", "d1", "d0"]);
  assert.deepEqual(r.find, r.list);
});
