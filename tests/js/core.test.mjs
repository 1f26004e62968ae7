// The npm package's core part ("ddp-live/core": pkg/core.js over the wasm
// built with cargo feature `js` alone, issue 23) in headless Chromium
// against the test server: status, calls with their stubs, subscriptions
// and collections (every document, one by id, their changes) work as in
// the complete package; live queries, accounts and rooms throw a typed
// DDPError "part-not-loaded" and leave the connection working. The
// bundler's view (package.json "exports") is checked with esbuild, and the
// core's wasm is checked to have none of the parts it leaves out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, symlinkSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { useBrowser, pageReady, base, scenario, wsUrl, control } from "./harness.mjs";

const shared = useBrowser(before, after, assert);
const errors = shared.errors;

async function openCore() {
  const page = await shared.browser.newPage();
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${base}/js-tests/core.html`);
  await pageReady(page);
  return page;
}

test("the core part connects, calls with a stub, subscribes, and reads every document, one by id, and their changes", async () => {
  const sc = scenario("core-part");
  const page = await openCore();
  const r = await page.evaluate(async (url) => {
    const { DDP } = window.ddp;
    const conn = DDP.connect(url);
    const statuses = [];
    conn.onStatusChange((s) => statuses.push(s.status));
    conn.methods({
      insertDoc(collection, doc) {
        return this.insert(collection, doc);
      },
    });
    const sum = await conn.call("add", 2, 3);
    const todos = conn.collection("todos");
    const changes = [];
    const stop = todos.onChange((c) => changes.push(c.type));
    const sub = conn.subscribe("docs", "todos");
    await new Promise((ok) => sub.onReadyChange((r) => r && ok()));
    const id = await conn.call("insertDoc", "todos", { title: "core" });
    const all = todos.find();
    const one = todos.findOne(id);
    stop.stop();
    conn.close();
    return { sum, statuses, id, all: all.map((d) => d.title), one: one && one.title, count: all.length, changes };
  }, wsUrl(sc));
  assert.equal(r.sum, 5);
  assert.ok(r.statuses.includes("connected"), JSON.stringify(r.statuses));
  assert.equal(typeof r.id, "string");
  assert.deepEqual(r.all, ["core"]);
  assert.equal(r.one, "core");
  assert.ok(r.changes.includes("added"), JSON.stringify(r.changes));
  // The insert ran once on the server.
  assert.equal((await control(sc, "executions")).runs.insertDoc, 1);
  assert.deepEqual(errors, []);
  await page.close();
});

test("live queries, accounts and rooms throw a typed DDPError part-not-loaded in the core part; the connection keeps working", async () => {
  const page = await openCore();
  const r = await page.evaluate(async (url) => {
    const { DDP, Client } = window.ddp;
    const conn = DDP.connect(url);
    const todos = conn.collection("todos");
    const code = (f) => {
      try {
        f();
        return "no error";
      } catch (e) {
        return `${e.name}:${e.code}:${/ddp-live\/core/.test(e.message)}`;
      }
    };
    const codes = {
      findSelector: code(() => todos.find({ title: "x" })),
      findOneSelector: code(() => todos.findOne({ title: "x" })),
      findOptions: code(() => todos.find({}, { sort: { title: 1 } })),
      observe: code(() => todos.observe({}, {}, { added() {} })),
      observeChanges: code(() => todos.observeChanges({}, {}, { added() {} })),
      login: code(() => conn.loginWithPassword("ada", "pw")),
      logout: code(() => conn.logout()),
      userId: code(() => conn.userId()),
      onUserIdChange: code(() => conn.onUserIdChange(() => {})),
      persistLogin: code(() => conn.persistLogin()),
      rooms: code(() => new Client(url)),
    };
    const sum = await conn.call("add", 20, 22);
    conn.close();
    return { codes, sum };
  }, wsUrl(scenario("core-part-missing")));
  for (const [what, c] of Object.entries(r.codes)) assert.equal(c, "DDPError:part-not-loaded:true", what);
  assert.equal(r.sum, 42);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a bundler resolves ddp-live/core through package.json exports to the core part, whose wasm has no query, accounts or rooms exports", () => {
  const dir = mkdtempSync(join(tmpdir(), "ddp-core-bundle-"));
  try {
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(resolve("pkg"), join(dir, "node_modules", "ddp-live"), "dir");
    const app = join(dir, "app.js");
    writeFileSync(app, `import init, { DDP } from "ddp-live/core"; await init(); DDP.connect("ws://x");`);
    execFileSync(resolve("node_modules/.bin/esbuild"), [app, "--bundle", "--format=esm", "--log-level=error", `--outfile=${join(dir, "out.js")}`]);
    const out = readFileSync(join(dir, "out.js"), "utf8");
    assert.match(out, /ddp_live_core_bg\.wasm/);
    assert.doesNotMatch(out, /ddp_live_bg\.wasm|ddp_live_offline_bg\.wasm/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The wasm's exports: the complete package's have login, observe, join;
  // the core's do not (their code is not linked in).
  const exportsOf = async (file) => WebAssembly.Module.exports(await WebAssembly.compile(readFileSync(file))).map((e) => e.name);
  return Promise.all([exportsOf("pkg/ddp_live_bg.wasm"), exportsOf("pkg/ddp_live_core_bg.wasm")]).then(([full, core]) => {
    for (const name of ["login", "observe", "join", "persist_login"]) {
      assert.ok(full.includes(name), `complete: ${name}`);
      assert.ok(!core.includes(name), `core: ${name}`);
    }
    for (const name of ["connect", "apply", "subscribe", "find", "on_change"]) assert.ok(core.includes(name), `core: ${name}`);
  });
});
