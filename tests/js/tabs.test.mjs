// One socket for every tab (`share_across_tabs`), with real tabs: the
// Leptos example app (examples/leptos-todos, built by
// scripts/build-example.sh with cargo feature `tabs`) opened in several
// pages of one browser context (one origin's tabs: they share their
// BroadcastChannel and Web Locks) in headless Chromium. The test server's
// stats show one socket for 2 and for 5 tabs and every tab shows the
// todos, and the server runs each subscription once (as for one tab);
// when the leading tab closes or reloads, another takes over and todos
// added in the other tabs meanwhile land once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { useBrowser, base, control, scenario } from "./harness.mjs";

const shared = useBrowser(before, after, assert);
const errors = shared.errors;

/** Opens `n` tabs of the app on scenario `sc`, one after the other, in `context`. */
async function openTabs(context, sc, n) {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(`${base}/leptos/?scenario=${sc}&tabs=1`);
    await page.waitForFunction(() => document.querySelector("#badge")?.textContent === "connected", null, { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector("#todos-ready")?.textContent.includes("live"), null, { timeout: 20000 });
    pages.push(page);
  }
  return pages;
}

const todoTexts = (page) => page.$$eval("#todos li .text", (els) => els.map((e) => e.textContent).sort());
const stats = (sc) => control(sc, "stats");

async function add(page, text) {
  await page.fill("#new-todo", text);
  await page.click("#add-todo");
}

async function waitTodos(page, texts, timeout = 15000) {
  await page.waitForFunction((want) => {
    const have = [...document.querySelectorAll("#todos li .text")].map((e) => e.textContent).sort();
    return JSON.stringify(have) === JSON.stringify(want);
  }, [...texts].sort(), { timeout });
}

for (const n of [2, 5]) {
  test(`${n} tabs share one socket, and every tab gets the todos`, async () => {
    const sc = scenario(`tabs-${n}`);
    const context = await shared.browser.newContext();
    // One tab alone, on a scenario of its own, for comparison.
    const scOne = scenario(`tabs-one-${n}`);
    const one = await shared.browser.newContext();
    await openTabs(one, scOne, 1);
    const pages = await openTabs(context, sc, n);
    const s = await stats(sc);
    assert.equal(s.connections, 1, `${n} tabs, one socket: ${JSON.stringify(s)}`);
    assert.equal(s.accepted, 1, "no tab ever opened a socket of its own");
    // A todo added in the last tab reaches every tab, once.
    await add(pages.at(-1), "from the last tab");
    for (const p of pages) await waitTodos(p, ["from the last tab"]);
    assert.equal((await control(sc, "executions")).runs.insertDoc, 1);
    // Every tab subscribes alike (the todos, the chat room's inbox): the
    // server runs each subscription once, however many tabs.
    const alone = await stats(scOne);
    assert.equal(s.subscriptions, alone.subscriptions, `${n} tabs, the subscriptions of one: ${JSON.stringify(s)}`);
    // A follower's tab closed (none of the app's code runs): the others go on.
    await pages.at(-1).close();
    await add(pages[0], "after a tab closed");
    for (const p of pages.slice(0, -1)) await waitTodos(p, ["from the last tab", "after a tab closed"]);
    assert.equal((await stats(sc)).connections, 1);
    await one.close();
    await context.close();
  });
}

for (const how of ["closed", "reloaded"]) {
  test(`the leading tab ${how}: another takes over, and todos added meanwhile land once`, async () => {
    const sc = scenario(`tabs-${how}`);
    const context = await shared.browser.newContext();
    const [leader, ...followers] = await openTabs(context, sc, 3);
    await add(leader, "before");
    for (const p of followers) await waitTodos(p, ["before"]);
    const started = Date.now();
    // Closing a page runs none of the app's code: the browser lets go of
    // its lock as when the tab dies.
    const going = how === "closed" ? leader.close() : leader.reload();
    // Added right away, while no tab may lead yet.
    await add(followers[0], "during one");
    await add(followers[1], "during two");
    for (const p of followers) await waitTodos(p, ["before", "during one", "during two"]);
    const back = Date.now() - started;
    await going;
    if (how === "reloaded") followers.push(leader);
    for (const p of followers) {
      await p.waitForFunction(() => document.querySelector("#badge").textContent === "connected", null, { timeout: 15000 });
      await p.waitForFunction(() => document.querySelector("#outbox").textContent === "0 queued, 0 in flight", null, { timeout: 15000 });
    }
    assert.equal((await control(sc, "executions")).runs.insertDoc, 3, "each insert ran once");
    let s = await stats(sc);
    for (let i = 0; i < 100 && s.connections !== 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await stats(sc);
    }
    assert.equal(s.connections, 1, `one socket again, from the new leader: ${JSON.stringify(s)}`);
    console.log(`failover (${how}): the todos of both followers everywhere ${back} ms after the leader went`);
    await context.close();
  });
}

test("a leading tab that hangs (runs no code) loses its lead: another takes over, todos added meanwhile land once, and it follows on", async () => {
  const sc = scenario("tabs-hung");
  const context = await shared.browser.newContext();
  const [leader, ...followers] = await openTabs(context, sc, 3);
  await add(leader, "before");
  for (const p of followers) await waitTodos(p, ["before"]);
  const session = (await stats(sc)).sessions[0];
  // The leading tab runs no code for 12 s (as a frozen page: it keeps its
  // lock and its socket, and answers nothing).
  await leader.evaluate(() => setTimeout(() => {
    const end = Date.now() + 12000;
    while (Date.now() < end);
  }, 0));
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  await add(followers[0], "while it hangs");
  for (const p of followers) await waitTodos(p, ["before", "while it hangs"]);
  const back = Date.now() - started;
  assert.ok(back < 11000, `taken over while the old leader still hangs (${back} ms)`);
  // The old leader runs again: it follows the new one, with everything.
  await waitTodos(leader, ["before", "while it hangs"], 20000);
  await add(leader, "after");
  for (const p of [leader, ...followers]) await waitTodos(p, ["before", "while it hangs", "after"]);
  for (const p of [leader, ...followers]) {
    await p.waitForFunction(() => document.querySelector("#badge").textContent === "connected", null, { timeout: 15000 });
  }
  assert.equal((await control(sc, "executions")).runs.insertDoc, 3, "each insert ran once");
  let s = await stats(sc);
  for (let i = 0; i < 100 && s.connections !== 1; i++) {
    await new Promise((r) => setTimeout(r, 50));
    s = await stats(sc);
  }
  assert.equal(s.connections, 1, `one socket, the new leader's: ${JSON.stringify(s)}`);
  assert.deepEqual(s.sessions, [session], "the session taken over, not a new one");
  console.log(`failover (hung leader): the todo in every other tab ${back} ms after it was added`);
  await context.close();
});
