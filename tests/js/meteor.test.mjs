// The npm package against Meteor's own server code (the fixture beside the
// repository): what a real Meteor app's server does on the wire.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { usePage, fast } from "./harness.mjs";
import { startMeteor, hasFixture } from "./meteor.mjs";

const inPage = usePage(before, after, assert);
let meteor = null;
before(async () => (meteor = await startMeteor()));
after(() => meteor?.stop());

const needsMeteor = { skip: hasFixture ? false : "skipped: no Meteor fixture" };

test("a stub's randomId equals the id Meteor's server derives from the same randomSeed", needsMeteor, async () => {
  const scopes = ["/collection/todos", "/collection/messages", "default", "scope ünïcödé 🎉", "/rpc/insertTodo"];
  const r = await inPage(async ([url, fast, scopes]) => {
    const conn = ddp.DDP.connect(url, fast);
    const stub = [];
    // Meteor's newId(scope) returns DDP.randomStream(scope).id(): the id an
    // insert into collection "todos" gets for scope "/collection/todos".
    conn.methods({ newId(scope) { const id = this.randomId(scope); stub.push(id); return id; } });
    const server = [];
    for (let round = 0; round < 20; round++) {
      for (const scope of scopes) server.push(await conn.call("newId", scope));
    }
    conn.close();
    return { stub, server };
  }, meteor.url, fast, scopes);
  assert.equal(r.server.length, 100);
  assert.equal(new Set(r.server).size, 100, "a fresh seed per call");
  assert.deepEqual(r.stub, r.server);
});
