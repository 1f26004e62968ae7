// The Leptos SSR example (examples/leptos-ssr, built by
// scripts/build-ssr-example.sh) against the test server: its server
// process is started here (port chosen by the system), pages are loaded in
// headless Chromium, and the other client is the npm package in a page of
// its own.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { launchBrowser, openPage, port, control, scenario, wsUrl, fast } from "./harness.mjs";

let ssr;
let ssrBase;
let browser;
let helper;
let ssrErr = "";

before(async () => {
  ssr = spawn(`${process.env.CARGO_TARGET_DIR ?? "target"}/debug/leptos-ssr-example`, [], {
    env: { ...process.env, DDP_SERVER: `ws://127.0.0.1:${port}`, SSR_ADDR: "127.0.0.1:0", SSR_TIMEOUT_MS: "1500" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  ssr.stderr.on("data", (d) => (ssrErr += d));
  ssrBase = await new Promise((resolve, reject) => {
    let out = "";
    ssr.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/on (http:\/\/[0-9.:]+)\//);
      if (m) resolve(m[1]);
    });
    ssr.on("exit", (code) => reject(new Error(`the SSR server exited (${code}): ${ssrErr}`)));
  });
  browser = await launchBrowser();
  helper = await openPage();
});

after(async () => {
  await helper?.browser.close();
  await browser?.close();
  const alive = ssr && ssr.exitCode === null;
  ssr?.kill();
  assert.ok(alive, `the SSR server process is still running: ${ssrErr}`);
  assert.doesNotMatch(ssrErr, /panicked/, "the SSR server never panicked");
});

const pageUrl = (sc) => `${ssrBase}/?scenario=${sc}`;

/** Another client (the npm package in the helper page) inserts todos; resolves to their ids. */
function insertTodos(sc, texts) {
  return helper.page.evaluate(async ([url, fast, texts]) => {
    const c = ddp.DDP.connect(url, fast);
    const ids = [];
    let at = 1;
    for (const text of texts) ids.push(await c.call("insertDoc", "todos", { text, done: false, at: at++ }));
    c.close();
    return ids;
  }, [wsUrl(sc), fast, texts]);
}

/** Another client calls `method` with `args`. */
function callAs(sc, method, ...args) {
  return helper.page.evaluate(async ([url, fast, method, args]) => {
    const c = ddp.DDP.connect(url, fast);
    const r = await c.call(method, ...args);
    c.close();
    return r;
  }, [wsUrl(sc), fast, method, args]);
}

const texts = (page) => page.$$eval("#todos li .text", (els) => els.map((e) => e.textContent));

test("the server's HTML holds the todos, with JavaScript disabled", async () => {
  const sc = scenario("ssr-nojs");
  await insertTodos(sc, ["milk", "eggs"]);
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await page.goto(pageUrl(sc));
  assert.deepEqual(await texts(page), ["milk", "eggs"]);
  assert.equal(await page.textContent("#todos-ready"), " (ready)");
  assert.equal(await page.textContent("#todo-count"), "2 todos");
  assert.equal(await page.textContent("#badge"), "connecting", "the status every browser connection starts with");
  // The documents travel with the page, for the browser's cache.
  const html = await (await fetch(pageUrl(sc))).text();
  assert.match(html, /__RESOLVED_RESOURCES/);
  await ctx.close();
});

test("hydration: no warning, the server's rows kept, then the reconciliation and another client's change", async () => {
  const sc = scenario("ssr-hydrate");
  const [milk, eggs, jam] = await insertTodos(sc, ["milk", "eggs", "jam"]);
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e}`));
  // Every row the page loses, and every text node replaced inside a row,
  // from the first parse on (before any wasm runs).
  await page.addInitScript(() => {
    window.removedRows = [];
    window.replacedText = [];
    document.addEventListener("DOMContentLoaded", () => {
      const ul = document.querySelector("#todos");
      window.serverRows = Object.fromEntries([...ul.querySelectorAll("li")].map((li) => [li.dataset.id, li]));
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.removedNodes) {
            if (n.nodeName === "LI") window.removedRows.push(n.dataset.id);
            else if (r.target.closest?.("li")) window.replacedText.push(r.target.closest("li").dataset.id);
          }
        }
      }).observe(ul, { childList: true, subtree: true });
    });
  });
  // The wasm waits until the data has changed behind the server's render.
  let release;
  const held = new Promise((r) => (release = r));
  await page.route("**/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(pageUrl(sc));
  assert.deepEqual(await texts(page), ["milk", "eggs", "jam"]);
  await callAs(sc, "removeDoc", "todos", jam);
  await callAs(sc, "updateDoc", "todos", eggs, { done: true });
  release();
  await page.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
  // The browser's own subscription became ready: the removed todo goes, the changed one changes.
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 2, null, { timeout: 10000 });
  await page.waitForFunction((id) => document.querySelector(`li[data-id="${id}"]`)?.classList.contains("done"), eggs, { timeout: 10000 });
  const seen = await page.evaluate(([milk, eggs]) => ({
    removed: window.removedRows,
    replacedText: window.replacedText,
    milkKept: window.serverRows[milk].isConnected,
    eggsKept: window.serverRows[eggs].isConnected,
    rows: Object.keys(window.serverRows).length,
  }), [milk, eggs]);
  assert.equal(seen.rows, 3, "the observer saw the server's three rows");
  assert.deepEqual(seen.removed, [jam], "only the removed todo's row went: no row was replaced");
  assert.ok(seen.milkKept && seen.eggsKept, "the server's rows are the hydrated rows");
  assert.ok(!seen.replacedText.includes(milk), `nothing inside the unchanged todo's row was replaced: ${seen.replacedText}`);
  // Another client's change appears.
  await insertTodos(sc, ["bread"]);
  await page.waitForFunction(() => [...document.querySelectorAll("#todos li .text")].some((e) => e.textContent === "bread"), null, { timeout: 10000 });
  assert.deepEqual(logs.filter((l) => /^(error|warning)|pageerror|hydrat/i.test(l)), [], "no hydration warning, no error");
  await page.close();
});

test("a logged-in page renders the user's own data on the server", async () => {
  const sc = scenario("ssr-login");
  await control(sc, "accounts?op=create&username=ada&email=ada@example.com&password=pw");
  const token = await helper.page.evaluate(async ([url, fast]) => {
    const c = ddp.DDP.connect(url, fast);
    await c.loginWithPassword("ada", "pw");
    const t = c.loginToken();
    c.close();
    return t;
  }, [wsUrl(sc), fast]);
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  await ctx.addCookies([{ name: "ddp_login", value: token, url: ssrBase }]);
  const page = await ctx.newPage();
  await page.goto(pageUrl(sc));
  assert.equal(await page.textContent("#whoami"), "ada");
  assert.match(await page.getAttribute("#login-form", "class"), /hidden/);
  // Without the cookie: logged out.
  const anonymous = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await anonymous.goto(pageUrl(sc));
  assert.equal((await anonymous.textContent("#whoami")).trim(), "");
  assert.doesNotMatch((await anonymous.getAttribute("#login-form", "class")) ?? "", /hidden/);
  await ctx.close();
  // Hydrated (a fresh browser: nothing in localStorage): the server's user
  // stays through hydration and the browser's own login with the cookie's
  // token, with no warning.
  const live = await browser.newContext();
  await live.addCookies([{ name: "ddp_login", value: token, url: ssrBase }]);
  const hydrated = await live.newPage();
  const logs = [];
  hydrated.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  hydrated.on("pageerror", (e) => logs.push(`pageerror: ${e}`));
  await hydrated.addInitScript(() => {
    window.whoamiLog = [];
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.querySelector("#whoami");
      window.whoamiLog.push(el.textContent);
      new MutationObserver(() => window.whoamiLog.push(el.textContent)).observe(el, { subtree: true, childList: true, characterData: true });
    });
  });
  await hydrated.goto(pageUrl(sc));
  await hydrated.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
  // The browser's login settled: the server's token logged it in.
  await hydrated.waitForFunction(() => Object.keys(localStorage).some((k) => k.startsWith("Meteor.userId")), null, { timeout: 10000 });
  assert.equal(await hydrated.textContent("#whoami"), "ada");
  assert.deepEqual([...new Set(await hydrated.evaluate(() => window.whoamiLog))], ["ada"], "the user never changed on the page");
  assert.deepEqual(logs.filter((l) => /^(error|warning)|pageerror|hydrat/i.test(l)), [], "no hydration warning, no error");
  await live.close();
});

test("100 page loads, a quarter with the DDP server refusing: loading, no panic, bounded memory, no connection left", async () => {
  const sc = scenario("ssr-load");
  await insertTodos(sc, ["one", "two"]);
  const rss = () => Number(readFileSync(`/proc/${ssr.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
  let early = 0;
  for (let i = 0; i < 100; i++) {
    const down = i % 4 === 3;
    await control(sc, `refuse?on=${down}`);
    const html = await (await fetch(pageUrl(sc))).text();
    if (down) {
      assert.match(html, /id="todos-ready"[^>]*>[^<]*\(loading…\)/, `load ${i}: loading while the server refuses`);
      assert.doesNotMatch(html, /class="text">(one|two)</);
    } else {
      assert.match(html, /id="todos-ready"[^>]*>[^<]*\(ready\)/, `load ${i}: ready`);
      assert.match(html, /class="text">one</);
    }
    if (i === 19) early = rss();
  }
  await control(sc, "refuse?on=false");
  const late = rss();
  console.log(`SSR server RSS: ${early} kB after 20 loads, ${late} kB after 100`);
  assert.ok(late - early < 16 * 1024, `memory stays bounded: ${early} kB → ${late} kB`);
  // Every request's connection closed (seen by the SSR client and by the DDP server).
  for (;;) {
    const open = JSON.parse(await (await fetch(`${ssrBase}/ssr-stats`)).text()).open;
    const sockets = (await control(sc, "stats")).connections;
    if (open === 0 && sockets === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
